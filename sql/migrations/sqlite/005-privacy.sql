-- Parley schema for SQLite: migration from version 4 to version 5.
--
-- Adds privacy lists (XEP-0016).  Apply it to a database at version 4
-- (after the earlier scripts for an older one) when parleyd refuses to
-- start and names this file, with parleyd stopped:
--     sqlite3 -bail /var/lib/parley/parley.db < 005-privacy.sql
-- It runs in one transaction (-bail stops at the first error, and nothing
-- is changed then).  The tables are the ones sqlite.sql (version 5)
-- creates; see the comments there.

BEGIN IMMEDIATE;
CREATE TABLE privacy_lists (
    server_host  TEXT    NOT NULL,
    username     TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    is_default   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (server_host, username, name)
) WITHOUT ROWID;

CREATE TABLE privacy_items (
    server_host  TEXT    NOT NULL,
    username     TEXT    NOT NULL,
    list_name    TEXT    NOT NULL,
    item_order   INTEGER NOT NULL,
    item_type    TEXT    NOT NULL,
    item_value   TEXT    NOT NULL DEFAULT '',
    action       TEXT    NOT NULL,
    stanzas      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (server_host, username, list_name, item_order)
) WITHOUT ROWID;

UPDATE schema_version SET version = 5 WHERE version = 4;

COMMIT;
