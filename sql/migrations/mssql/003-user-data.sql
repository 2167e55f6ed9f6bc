-- Parley schema for Microsoft SQL Server: migration from version 2 to
-- version 3.
--
-- Adds vCards (XEP-0054), private XML storage (XEP-0049) and last
-- activity (XEP-0012).  Apply it to a database at version 2 (after the
-- earlier scripts for an older one) when parleyd refuses to start and
-- names this file, with a login that may create tables:
--     sqlcmd -S db -d xmpp -b -i 003-user-data.sql
-- It runs in one transaction (SQL Server's DDL is transactional; XACT_ABORT
-- rolls everything back at the first error).  The tables are the ones
-- mssql.sql (version 3) creates; see the comments there.

SET XACT_ABORT ON;
BEGIN TRANSACTION;

CREATE TABLE vcards (
    server_host  NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    username     NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    vcard        NVARCHAR(MAX) NOT NULL,
    CONSTRAINT vcards_pk PRIMARY KEY NONCLUSTERED (server_host, username)
);

CREATE TABLE private_storage (
    server_host  NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    username     NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    namespace    NVARCHAR(384) COLLATE Latin1_General_100_BIN2 NOT NULL,
    data         NVARCHAR(MAX) NOT NULL,
    CONSTRAINT private_storage_pk PRIMARY KEY NONCLUSTERED (server_host, username, namespace)
);

CREATE TABLE last_activity (
    server_host  NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    username     NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    seconds      BIGINT NOT NULL,
    status       NVARCHAR(MAX) NOT NULL DEFAULT '',
    CONSTRAINT last_activity_pk PRIMARY KEY NONCLUSTERED (server_host, username)
);

UPDATE schema_version SET version = 3 WHERE version = 2;

COMMIT;
