-- Parley schema for SQLite: migration from version 13 to version 14.
--
-- Adds the column offline_messages.token, as on the other databases
-- (where each message stored offline gets a random token in a unique
-- column, so that a store that runs again after its COMMIT's answer was
-- lost finds its own row); parleyd leaves it NULL on SQLite, which cannot
-- lose an answer, and it has no index here.
-- Apply it to a database at version 13 when parleyd refuses to start and
-- names this file, with parleyd stopped:
--     sqlite3 -bail /var/lib/parley/parley.db < 014-offline-token.sql
-- (or let `parleyctl db migrate` apply it).  It runs in one transaction.
-- The column is the one sqlite.sql (version 14) creates.

BEGIN IMMEDIATE;

ALTER TABLE offline_messages ADD COLUMN token TEXT;

UPDATE schema_version SET version = 14 WHERE version = 13;

COMMIT;
