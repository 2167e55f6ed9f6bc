-- Parley schema for Microsoft SQL Server: migration from version 7 to
-- version 8.
--
-- Adds the persistent rooms of multi-user chat (XEP-0045), their
-- affiliations and the nicks registered with a MUC service.  Apply it to a
-- database at version 7 (after the earlier scripts for an older one) when
-- parleyd refuses to start and names this file, with a login that may
-- create tables:
--     sqlcmd -S db -d xmpp -b -i 008-muc.sql
-- It runs in one transaction (SQL Server's DDL is transactional; XACT_ABORT
-- rolls everything back at the first error).  The tables are the ones
-- mssql.sql (version 8) creates; see the comments there.

SET XACT_ABORT ON;
BEGIN TRANSACTION;

CREATE TABLE muc_room (
    server_host   NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    service       NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    name          NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    config        NVARCHAR(MAX) NOT NULL,
    subject       NVARCHAR(MAX) NOT NULL,
    subject_nick  NVARCHAR(255) NOT NULL,
    created_at    BIGINT NOT NULL,
    CONSTRAINT muc_room_pk PRIMARY KEY NONCLUSTERED (service, name)
);

CREATE TABLE muc_affiliation (
    server_host  NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    service      NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    room         NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    jid          NVARCHAR(384) COLLATE Latin1_General_100_BIN2 NOT NULL,
    affiliation  NVARCHAR(16) NOT NULL,
    reason       NVARCHAR(MAX) NOT NULL,
    CONSTRAINT muc_affiliation_pk PRIMARY KEY NONCLUSTERED (service, room, jid)
);

CREATE TABLE muc_registered (
    server_host  NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    service      NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    jid          NVARCHAR(384) COLLATE Latin1_General_100_BIN2 NOT NULL,
    nick         NVARCHAR(255) COLLATE Latin1_General_100_BIN2 NOT NULL,
    CONSTRAINT muc_registered_pk PRIMARY KEY NONCLUSTERED (service, jid),
    CONSTRAINT muc_registered_nick UNIQUE NONCLUSTERED (service, nick)
);

UPDATE schema_version SET version = 8 WHERE version = 7;

COMMIT;
