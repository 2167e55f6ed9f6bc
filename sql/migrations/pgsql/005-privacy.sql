-- Parley schema for PostgreSQL: migration from version 4 to version 5.
--
-- Adds privacy lists (XEP-0016).  Apply it as the owner of the tables to a
-- database at version 4 (after the earlier scripts for an older one) when
-- parleyd refuses to start and names this file (or let `parleyctl db
-- migrate` apply it):
--     psql -v ON_ERROR_STOP=1 -d xmpp -f 005-privacy.sql
-- It runs in one transaction (ON_ERROR_STOP stops at the first error, and
-- nothing is changed then).  The tables are the ones pgsql.sql (version 5)
-- creates; see the comments there.  Give parleyd's role its rights on the
-- new tables afterwards (doc/database.md).

BEGIN;

CREATE TABLE privacy_lists (
    server_host  TEXT     NOT NULL,
    username     TEXT     NOT NULL,
    name         TEXT     NOT NULL,
    is_default   SMALLINT NOT NULL DEFAULT 0,
    PRIMARY KEY (server_host, username, name)
);

CREATE TABLE privacy_items (
    server_host  TEXT    NOT NULL,
    username     TEXT    NOT NULL,
    list_name    TEXT    NOT NULL,
    item_order   BIGINT  NOT NULL,
    item_type    TEXT    NOT NULL,
    item_value   TEXT    NOT NULL DEFAULT '',
    action       TEXT    NOT NULL,
    stanzas      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (server_host, username, list_name, item_order)
);

UPDATE schema_version SET version = 5 WHERE version = 4;

COMMIT;
