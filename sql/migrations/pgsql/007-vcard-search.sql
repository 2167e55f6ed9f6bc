-- Parley schema for PostgreSQL: migration from version 6 to version 7.
--
-- Adds the user directory's index of the vCards (XEP-0055 search).  Apply
-- it as the owner of the tables to a database at version 6 (after the
-- earlier scripts for an older one) when parleyd refuses to start and
-- names this file (or let `parleyctl db migrate` apply it):
--     psql -v ON_ERROR_STOP=1 -d xmpp -f 007-vcard-search.sql
-- It runs in one transaction (ON_ERROR_STOP stops at the first error, and
-- nothing is changed then).  The table is the one pgsql.sql (version 7)
-- creates; see the comments there.  Give parleyd's role its rights on the
-- new table afterwards (doc/database.md).  The vCards stored before are
-- indexed by parleyd itself (SQL cannot read them): the vjud module does
-- it when it starts on a host, and logs how many it indexed.

BEGIN;

CREATE TABLE vcard_search (
    server_host  TEXT     NOT NULL,
    username     TEXT     COLLATE "C" NOT NULL,
    fn           TEXT     NOT NULL DEFAULT '',
    lfn          TEXT     COLLATE "C" NOT NULL DEFAULT '',
    given        TEXT     NOT NULL DEFAULT '',
    lgiven       TEXT     COLLATE "C" NOT NULL DEFAULT '',
    family       TEXT     NOT NULL DEFAULT '',
    lfamily      TEXT     COLLATE "C" NOT NULL DEFAULT '',
    nickname     TEXT     NOT NULL DEFAULT '',
    lnickname    TEXT     COLLATE "C" NOT NULL DEFAULT '',
    email        TEXT     NOT NULL DEFAULT '',
    lemail       TEXT     COLLATE "C" NOT NULL DEFAULT '',
    locality     TEXT     NOT NULL DEFAULT '',
    llocality    TEXT     COLLATE "C" NOT NULL DEFAULT '',
    orgname      TEXT     NOT NULL DEFAULT '',
    lorgname     TEXT     COLLATE "C" NOT NULL DEFAULT '',
    listed       SMALLINT NOT NULL DEFAULT 0,
    PRIMARY KEY (server_host, username)
);
CREATE INDEX vcard_search_fn ON vcard_search (server_host, lfn);
CREATE INDEX vcard_search_given ON vcard_search (server_host, lgiven);
CREATE INDEX vcard_search_family ON vcard_search (server_host, lfamily);
CREATE INDEX vcard_search_nickname ON vcard_search (server_host, lnickname);
CREATE INDEX vcard_search_email ON vcard_search (server_host, lemail);
CREATE INDEX vcard_search_locality ON vcard_search (server_host, llocality);
CREATE INDEX vcard_search_orgname ON vcard_search (server_host, lorgname);

UPDATE schema_version SET version = 7 WHERE version = 6;

COMMIT;
