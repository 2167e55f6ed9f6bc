-- Parley schema for PostgreSQL: migration from version 2 to version 3.
--
-- Adds vCards (XEP-0054), private XML storage (XEP-0049) and last activity
-- (XEP-0012).  Apply it as the owner of the tables to a database at
-- version 2 (after 002-offline.sql for a database at version 1) when
-- parleyd refuses to start and names this file (or let `parleyctl db
-- migrate` apply it):
--     psql -v ON_ERROR_STOP=1 -d xmpp -f 003-user-data.sql
-- It runs in one transaction (ON_ERROR_STOP stops at the first error, and
-- nothing is changed then).  The tables are the ones pgsql.sql (version 3)
-- creates; see the comments there.  Give parleyd's role its rights on the
-- new tables afterwards (doc/database.md).

BEGIN;

CREATE TABLE vcards (
    server_host  TEXT NOT NULL,
    username     TEXT NOT NULL,
    vcard        TEXT NOT NULL,
    PRIMARY KEY (server_host, username)
);

CREATE TABLE private_storage (
    server_host  TEXT NOT NULL,
    username     TEXT NOT NULL,
    namespace    TEXT NOT NULL,
    data         TEXT NOT NULL,
    PRIMARY KEY (server_host, username, namespace)
);

CREATE TABLE last_activity (
    server_host  TEXT   NOT NULL,
    username     TEXT   NOT NULL,
    seconds      BIGINT NOT NULL,
    status       TEXT   NOT NULL DEFAULT '',
    PRIMARY KEY (server_host, username)
);

UPDATE schema_version SET version = 3 WHERE version = 2;

COMMIT;
