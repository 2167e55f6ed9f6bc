-- Parley schema for SQLite: migration from version 6 to version 7.
--
-- Adds the user directory's index of the vCards (XEP-0055 search).  Apply
-- it to a database at version 6 (after the earlier scripts for an older
-- one) when parleyd refuses to start and names this file, with parleyd
-- stopped:
--     sqlite3 -bail /var/lib/parley/parley.db < 007-vcard-search.sql
-- It runs in one transaction (-bail stops at the first error, and nothing
-- is changed then).  The table is the one sqlite.sql (version 7) creates;
-- see the comments there.  The vCards stored before are indexed by
-- parleyd itself (SQL cannot read them): the vjud module does it when it
-- starts on a host, and logs how many it indexed.

BEGIN IMMEDIATE;

CREATE TABLE vcard_search (
    server_host  TEXT    NOT NULL,
    username     TEXT    NOT NULL,
    fn           TEXT    NOT NULL DEFAULT '',
    lfn          TEXT    NOT NULL DEFAULT '',
    given        TEXT    NOT NULL DEFAULT '',
    lgiven       TEXT    NOT NULL DEFAULT '',
    family       TEXT    NOT NULL DEFAULT '',
    lfamily      TEXT    NOT NULL DEFAULT '',
    nickname     TEXT    NOT NULL DEFAULT '',
    lnickname    TEXT    NOT NULL DEFAULT '',
    email        TEXT    NOT NULL DEFAULT '',
    lemail       TEXT    NOT NULL DEFAULT '',
    locality     TEXT    NOT NULL DEFAULT '',
    llocality    TEXT    NOT NULL DEFAULT '',
    orgname      TEXT    NOT NULL DEFAULT '',
    lorgname     TEXT    NOT NULL DEFAULT '',
    listed       INTEGER NOT NULL DEFAULT 0 CHECK (listed IN (0, 1)),
    PRIMARY KEY (server_host, username)
) WITHOUT ROWID;
CREATE INDEX vcard_search_fn ON vcard_search (server_host, lfn);
CREATE INDEX vcard_search_given ON vcard_search (server_host, lgiven);
CREATE INDEX vcard_search_family ON vcard_search (server_host, lfamily);
CREATE INDEX vcard_search_nickname ON vcard_search (server_host, lnickname);
CREATE INDEX vcard_search_email ON vcard_search (server_host, lemail);
CREATE INDEX vcard_search_locality ON vcard_search (server_host, llocality);
CREATE INDEX vcard_search_orgname ON vcard_search (server_host, lorgname);

UPDATE schema_version SET version = 7 WHERE version = 6;

COMMIT;
