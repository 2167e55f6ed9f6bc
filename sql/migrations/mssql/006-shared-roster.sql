-- Parley schema for Microsoft SQL Server: migration from version 5 to
-- version 6.
--
-- Adds shared roster groups.  Apply it to a database at version 5 (after the
-- earlier scripts for an older one) when parleyd refuses to start and
-- names this file, with a login that may create tables:
--     sqlcmd -S db -d xmpp -b -i 006-shared-roster.sql
-- It runs in one transaction (SQL Server's DDL is transactional; XACT_ABORT
-- rolls everything back at the first error).  The tables are the ones
-- mssql.sql (version 6) creates; see the comments there.

SET XACT_ABORT ON;
BEGIN TRANSACTION;

CREATE TABLE sr_groups (
    server_host  NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    name         NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    label        NVARCHAR(255) NOT NULL DEFAULT '',
    description  NVARCHAR(1024) NOT NULL DEFAULT '',
    CONSTRAINT sr_groups_pk PRIMARY KEY NONCLUSTERED (server_host, name)
);

CREATE TABLE sr_displayed (
    server_host  NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    grp          NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    displayed    NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    CONSTRAINT sr_displayed_pk PRIMARY KEY NONCLUSTERED (server_host, grp, displayed)
);

CREATE TABLE sr_members (
    server_host  NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    grp          NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    member       NVARCHAR(384) COLLATE Latin1_General_100_BIN2 NOT NULL,
    CONSTRAINT sr_members_pk PRIMARY KEY NONCLUSTERED (server_host, grp, member)
);
CREATE INDEX sr_members_member ON sr_members (server_host, member);

UPDATE schema_version SET version = 6 WHERE version = 5;

COMMIT;
