-- Parley schema for PostgreSQL: migration from version 13 to version 14.
--
-- Adds the column offline_messages.token and its unique index: each
-- message stored offline gets a random token, so that a store that runs
-- again after its COMMIT's answer was lost finds its own row instead of
-- storing the message twice.  Rows stored before keep a NULL token.
-- Apply it to a database at version 13 when parleyd refuses to start and
-- names this file, as the owner of the tables (or let `parleyctl db
-- migrate` apply it):
--     psql -v ON_ERROR_STOP=1 -d xmpp -f 014-offline-token.sql
-- It runs in one transaction.  parleyd's rights on offline_messages cover
-- the new column.
-- The column and index are the ones pgsql.sql (version 14) creates.

BEGIN;

ALTER TABLE offline_messages ADD COLUMN token TEXT;
CREATE UNIQUE INDEX offline_messages_token ON offline_messages (token);

UPDATE schema_version SET version = 14 WHERE version = 13;

COMMIT;
