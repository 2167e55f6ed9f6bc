-- Parley schema for PostgreSQL: migration from version 9 to version 10.
--
-- Adds message archives (XEP-0313): archived messages with their
-- full-text index, and archiving preferences.  Apply it as the owner of
-- the tables to a database at version 9 (after the earlier scripts for an
-- older one) when parleyd refuses to start and names this file (or let
-- `parleyctl db migrate` apply it):
--     psql -v ON_ERROR_STOP=1 -d xmpp -f 010-mam.sql
-- It runs in one transaction (ON_ERROR_STOP stops at the first error, and
-- nothing is changed then).  The tables are the ones pgsql.sql (version
-- 10) creates; see the comments there.  Give parleyd's role its rights on
-- the new tables afterwards (doc/database.md).

BEGIN;

CREATE TABLE archive (
    server_host  TEXT      NOT NULL,
    owner        TEXT      NOT NULL,
    id           BIGINT    NOT NULL,
    peer         TEXT      NOT NULL,
    resource     TEXT      NOT NULL,
    outgoing     SMALLINT  NOT NULL,
    body         TEXT,
    stanza       TEXT      NOT NULL,
    PRIMARY KEY (server_host, owner, id)
);
CREATE INDEX archive_with ON archive (owner, peer, id);
CREATE INDEX archive_expire ON archive (server_host, id);
CREATE INDEX archive_fts ON archive USING GIN (to_tsvector('simple', body));

CREATE TABLE archive_prefs (
    server_host  TEXT  NOT NULL,
    owner        TEXT  NOT NULL,
    def          TEXT  NOT NULL,
    PRIMARY KEY (server_host, owner)
);

CREATE TABLE archive_prefs_jid (
    server_host  TEXT      NOT NULL,
    owner        TEXT      NOT NULL,
    jid          TEXT      NOT NULL,
    always       SMALLINT  NOT NULL,
    PRIMARY KEY (owner, jid)
);

UPDATE schema_version SET version = 10 WHERE version = 9;

COMMIT;
