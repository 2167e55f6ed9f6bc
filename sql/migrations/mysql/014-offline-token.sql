-- Parley schema for MySQL and MariaDB: migration from version 13 to version 14.
--
-- Adds the column offline_messages.token and its unique index: each
-- message stored offline gets a random token, so that a store that runs
-- again after its COMMIT's answer was lost finds its own row instead of
-- storing the message twice.  Rows stored before keep a NULL token.
-- Apply it to a database at version 13 when parleyd refuses to start and
-- names this file, as a user that may alter tables:
--     mysql --default-character-set=utf8mb4 xmpp < 014-offline-token.sql
-- (or let `parleyctl db migrate` apply it).  MySQL commits each statement
-- by itself; the column and its index come in one statement, and the
-- version is set last.
-- The column and index are the ones mysql.sql (version 14) creates.

ALTER TABLE offline_messages ADD COLUMN token VARCHAR(64) NULL,
    ADD UNIQUE KEY offline_messages_token (token);

UPDATE schema_version SET version = 14 WHERE version = 13;
