-- Parley schema for SQLite: migration from version 5 to version 6.
--
-- Adds shared roster groups.  Apply it to a database at version 5 (after
-- the earlier scripts for an older one) when parleyd refuses to start and
-- names this file, with parleyd stopped:
--     sqlite3 -bail /var/lib/parley/parley.db < 006-shared-roster.sql
-- It runs in one transaction (-bail stops at the first error, and nothing
-- is changed then).  The tables are the ones sqlite.sql (version 6)
-- creates; see the comments there.

BEGIN IMMEDIATE;

CREATE TABLE sr_groups (
    server_host  TEXT NOT NULL,
    name         TEXT NOT NULL,
    label        TEXT NOT NULL DEFAULT '',
    description  TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (server_host, name)
) WITHOUT ROWID;

CREATE TABLE sr_displayed (
    server_host  TEXT NOT NULL,
    grp          TEXT NOT NULL,
    displayed    TEXT NOT NULL,
    PRIMARY KEY (server_host, grp, displayed)
) WITHOUT ROWID;

CREATE TABLE sr_members (
    server_host  TEXT NOT NULL,
    grp          TEXT NOT NULL,
    member       TEXT NOT NULL,
    PRIMARY KEY (server_host, grp, member)
) WITHOUT ROWID;
CREATE INDEX sr_members_member ON sr_members (server_host, member);

UPDATE schema_version SET version = 6 WHERE version = 5;

COMMIT;
