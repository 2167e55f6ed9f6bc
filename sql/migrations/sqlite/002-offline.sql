-- Parley schema for SQLite: migration from version 1 to version 2.
--
-- Adds offline message storage (XEP-0160).  Apply it to a database at
-- version 1 when parleyd refuses to start and names this file, with
-- parleyd stopped:
--     sqlite3 -bail /var/lib/parley/parley.db < 002-offline.sql
-- It runs in one transaction (-bail stops at the first error, and nothing
-- is changed then).  The table is the one sqlite.sql (version 2) creates;
-- see the comments there.

BEGIN IMMEDIATE;

CREATE TABLE offline_messages (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    server_host  TEXT    NOT NULL,
    username     TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    from_jid     TEXT    NOT NULL,
    stanza       TEXT    NOT NULL
);
CREATE INDEX offline_messages_user ON offline_messages (server_host, username, seq);

UPDATE schema_version SET version = 2 WHERE version = 1;

COMMIT;
