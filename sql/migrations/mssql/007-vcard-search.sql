-- Parley schema for Microsoft SQL Server: migration from version 6 to
-- version 7.
--
-- Adds the user directory's index of the vCards (XEP-0055 search);
-- parleyd indexes the vCards stored before itself when the vjud module
-- starts.  Apply it to a database at version 6 (after the
-- earlier scripts for an older one) when parleyd refuses to start and
-- names this file, with a login that may create tables:
--     sqlcmd -S db -d xmpp -b -i 007-vcard-search.sql
-- It runs in one transaction (SQL Server's DDL is transactional; XACT_ABORT
-- rolls everything back at the first error).  The tables are the ones
-- mssql.sql (version 7) creates; see the comments there.

SET XACT_ABORT ON;
BEGIN TRANSACTION;

CREATE TABLE vcard_search (
    server_host  NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    username     NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    fn           NVARCHAR(255) NOT NULL DEFAULT '',
    lfn          NVARCHAR(255) COLLATE Latin1_General_100_BIN2 NOT NULL DEFAULT '',
    given        NVARCHAR(255) NOT NULL DEFAULT '',
    lgiven       NVARCHAR(255) COLLATE Latin1_General_100_BIN2 NOT NULL DEFAULT '',
    family       NVARCHAR(255) NOT NULL DEFAULT '',
    lfamily      NVARCHAR(255) COLLATE Latin1_General_100_BIN2 NOT NULL DEFAULT '',
    nickname     NVARCHAR(255) NOT NULL DEFAULT '',
    lnickname    NVARCHAR(255) COLLATE Latin1_General_100_BIN2 NOT NULL DEFAULT '',
    email        NVARCHAR(255) NOT NULL DEFAULT '',
    lemail       NVARCHAR(255) COLLATE Latin1_General_100_BIN2 NOT NULL DEFAULT '',
    locality     NVARCHAR(255) NOT NULL DEFAULT '',
    llocality    NVARCHAR(255) COLLATE Latin1_General_100_BIN2 NOT NULL DEFAULT '',
    orgname      NVARCHAR(255) NOT NULL DEFAULT '',
    lorgname     NVARCHAR(255) COLLATE Latin1_General_100_BIN2 NOT NULL DEFAULT '',
    listed       SMALLINT NOT NULL DEFAULT 0,
    CONSTRAINT vcard_search_pk PRIMARY KEY NONCLUSTERED (server_host, username)
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
