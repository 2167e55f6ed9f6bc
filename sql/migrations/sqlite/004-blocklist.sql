-- Parley schema for SQLite: migration from version 3 to version 4.
--
-- Adds the blocking command's lists (XEP-0191).  Apply it to a database at
-- version 3 (after the earlier scripts for an older one) when parleyd
-- refuses to start and names this file, with parleyd stopped:
--     sqlite3 -bail /var/lib/parley/parley.db < 004-blocklist.sql
-- It runs in one transaction (-bail stops at the first error, and nothing
-- is changed then).  The table is the one sqlite.sql (version 4) creates;
-- see the comments there.

BEGIN IMMEDIATE;

CREATE TABLE blocklist (
    server_host  TEXT NOT NULL,
    username     TEXT NOT NULL,
    jid          TEXT NOT NULL,
    PRIMARY KEY (server_host, username, jid)
) WITHOUT ROWID;

UPDATE schema_version SET version = 4 WHERE version = 3;

COMMIT;
