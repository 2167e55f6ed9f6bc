-- Parley schema for SQLite: migration from version 7 to version 8.
--
-- Adds the persistent rooms of multi-user chat (XEP-0045), their
-- affiliations and the nicks registered with a MUC service.  Apply it to a
-- database at version 7 (after the earlier scripts for an older one) when
-- parleyd refuses to start and names this file, with parleyd stopped:
--     sqlite3 -bail /var/lib/parley/parley.db < 008-muc.sql
-- (or let `parleyctl db migrate` apply it).  It runs in one transaction
-- (-bail stops at the first error, and nothing is changed then).  The
-- tables are the ones sqlite.sql (version 8) creates; see the comments
-- there.

BEGIN IMMEDIATE;

CREATE TABLE muc_room (
    server_host   TEXT    NOT NULL,
    service       TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    config        TEXT    NOT NULL,
    subject       TEXT    NOT NULL,
    subject_nick  TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (service, name)
) WITHOUT ROWID;

CREATE TABLE muc_affiliation (
    server_host  TEXT NOT NULL,
    service      TEXT NOT NULL,
    room         TEXT NOT NULL,
    jid          TEXT NOT NULL,
    affiliation  TEXT NOT NULL,
    reason       TEXT NOT NULL,
    PRIMARY KEY (service, room, jid)
) WITHOUT ROWID;

CREATE TABLE muc_registered (
    server_host  TEXT NOT NULL,
    service      TEXT NOT NULL,
    jid          TEXT NOT NULL,
    nick         TEXT NOT NULL,
    PRIMARY KEY (service, jid),
    CONSTRAINT muc_registered_nick UNIQUE (service, nick)
) WITHOUT ROWID;

UPDATE schema_version SET version = 8 WHERE version = 7;

COMMIT;
