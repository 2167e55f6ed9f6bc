-- Parley schema for SQLite: migration from version 2 to version 3.
--
-- Adds vCards (XEP-0054), private XML storage (XEP-0049) and last activity
-- (XEP-0012).  Apply it to a database at version 2 (after 002-offline.sql
-- for a database at version 1) when parleyd refuses to start and names
-- this file, with parleyd stopped:
--     sqlite3 -bail /var/lib/parley/parley.db < 003-user-data.sql
-- It runs in one transaction (-bail stops at the first error, and nothing
-- is changed then).  The tables are the ones sqlite.sql (version 3)
-- creates; see the comments there.

BEGIN IMMEDIATE;

CREATE TABLE vcards (
    server_host  TEXT NOT NULL,
    username     TEXT NOT NULL,
    vcard        TEXT NOT NULL,
    PRIMARY KEY (server_host, username)
) WITHOUT ROWID;

CREATE TABLE private_storage (
    server_host  TEXT NOT NULL,
    username     TEXT NOT NULL,
    namespace    TEXT NOT NULL,
    data         TEXT NOT NULL,
    PRIMARY KEY (server_host, username, namespace)
) WITHOUT ROWID;

CREATE TABLE last_activity (
    server_host  TEXT    NOT NULL,
    username     TEXT    NOT NULL,
    seconds      INTEGER NOT NULL,
    status       TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (server_host, username)
) WITHOUT ROWID;

UPDATE schema_version SET version = 3 WHERE version = 2;

COMMIT;
