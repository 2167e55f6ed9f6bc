-- Parley schema for Microsoft SQL Server: migration from version 9 to
-- version 10.
--
-- Adds message archives (XEP-0313): archived messages and archiving
-- preferences.  Apply it to a database at version 9 (after the earlier
-- scripts for an older one) when parleyd refuses to start and names this
-- file, with a login that may create tables:
--     sqlcmd -S db -d xmpp -b -i 010-mam.sql
-- It runs in one transaction (SQL Server's DDL is transactional; XACT_ABORT
-- rolls everything back at the first error).  The tables are the ones
-- mssql.sql (version 10) creates; see the comments there.

SET XACT_ABORT ON;
BEGIN TRANSACTION;

CREATE TABLE archive (
    server_host  NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    owner        NVARCHAR(384) COLLATE Latin1_General_100_BIN2 NOT NULL,
    id           BIGINT NOT NULL,
    peer         NVARCHAR(384) COLLATE Latin1_General_100_BIN2 NOT NULL,
    resource     NVARCHAR(1023) NOT NULL,
    outgoing     SMALLINT NOT NULL,
    body         NVARCHAR(MAX) NULL,
    stanza       NVARCHAR(MAX) NOT NULL,
    CONSTRAINT archive_pk PRIMARY KEY NONCLUSTERED (server_host, owner, id)
);
CREATE INDEX archive_with ON archive (owner, peer, id);
CREATE INDEX archive_expire ON archive (server_host, id);

CREATE TABLE archive_prefs (
    server_host  NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    owner        NVARCHAR(384) COLLATE Latin1_General_100_BIN2 NOT NULL,
    def          NVARCHAR(16) NOT NULL,
    CONSTRAINT archive_prefs_pk PRIMARY KEY NONCLUSTERED (server_host, owner)
);

CREATE TABLE archive_prefs_jid (
    server_host  NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    owner        NVARCHAR(384) COLLATE Latin1_General_100_BIN2 NOT NULL,
    jid          NVARCHAR(384) COLLATE Latin1_General_100_BIN2 NOT NULL,
    always       SMALLINT NOT NULL,
    CONSTRAINT archive_prefs_jid_pk PRIMARY KEY NONCLUSTERED (owner, jid)
);

UPDATE schema_version SET version = 10 WHERE version = 9;

COMMIT;
