-- Parley schema for PostgreSQL: migration from version 7 to version 8.
--
-- Adds the persistent rooms of multi-user chat (XEP-0045), their
-- affiliations and the nicks registered with a MUC service.  Apply it as
-- the owner of the tables to a database at version 7 (after the earlier
-- scripts for an older one) when parleyd refuses to start and names this
-- file (or let `parleyctl db migrate` apply it):
--     psql -v ON_ERROR_STOP=1 -d xmpp -f 008-muc.sql
-- It runs in one transaction (ON_ERROR_STOP stops at the first error, and
-- nothing is changed then).  The tables are the ones pgsql.sql (version 8)
-- creates; see the comments there.  Give parleyd's role its rights on the
-- new tables afterwards (doc/database.md).

BEGIN;

CREATE TABLE muc_room (
    server_host   TEXT   NOT NULL,
    service       TEXT   NOT NULL,
    name          TEXT   NOT NULL,
    config        TEXT   NOT NULL,
    subject       TEXT   NOT NULL,
    subject_nick  TEXT   NOT NULL,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (service, name)
);

CREATE TABLE muc_affiliation (
    server_host  TEXT NOT NULL,
    service      TEXT NOT NULL,
    room         TEXT NOT NULL,
    jid          TEXT NOT NULL,
    affiliation  TEXT NOT NULL,
    reason       TEXT NOT NULL,
    PRIMARY KEY (service, room, jid)
);

CREATE TABLE muc_registered (
    server_host  TEXT NOT NULL,
    service      TEXT NOT NULL,
    jid          TEXT NOT NULL,
    nick         TEXT NOT NULL,
    PRIMARY KEY (service, jid),
    CONSTRAINT muc_registered_nick UNIQUE (service, nick)
);

UPDATE schema_version SET version = 8 WHERE version = 7;

COMMIT;
