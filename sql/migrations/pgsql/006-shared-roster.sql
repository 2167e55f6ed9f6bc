-- Parley schema for PostgreSQL: migration from version 5 to version 6.
--
-- Adds shared roster groups.  Apply it as the owner of the tables to a
-- database at version 5 (after the earlier scripts for an older one) when
-- parleyd refuses to start and names this file (or let `parleyctl db
-- migrate` apply it):
--     psql -v ON_ERROR_STOP=1 -d xmpp -f 006-shared-roster.sql
-- It runs in one transaction (ON_ERROR_STOP stops at the first error, and
-- nothing is changed then).  The tables are the ones pgsql.sql (version 6)
-- creates; see the comments there.  Give parleyd's role its rights on the
-- new tables afterwards (doc/database.md).

BEGIN;

CREATE TABLE sr_groups (
    server_host  TEXT NOT NULL,
    name         TEXT NOT NULL,
    label        TEXT NOT NULL DEFAULT '',
    description  TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (server_host, name)
);

CREATE TABLE sr_displayed (
    server_host  TEXT NOT NULL,
    grp          TEXT NOT NULL,
    displayed    TEXT NOT NULL,
    PRIMARY KEY (server_host, grp, displayed)
);

CREATE TABLE sr_members (
    server_host  TEXT NOT NULL,
    grp          TEXT NOT NULL,
    member       TEXT NOT NULL,
    PRIMARY KEY (server_host, grp, member)
);
CREATE INDEX sr_members_member ON sr_members (server_host, member);

UPDATE schema_version SET version = 6 WHERE version = 5;

COMMIT;
