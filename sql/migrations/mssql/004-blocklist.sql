-- Parley schema for Microsoft SQL Server: migration from version 3 to
-- version 4.
--
-- Adds the blocking command's lists (XEP-0191).  Apply it to a database at version 3 (after the
-- earlier scripts for an older one) when parleyd refuses to start and
-- names this file, with a login that may create tables:
--     sqlcmd -S db -d xmpp -b -i 004-blocklist.sql
-- It runs in one transaction (SQL Server's DDL is transactional; XACT_ABORT
-- rolls everything back at the first error).  The tables are the ones
-- mssql.sql (version 4) creates; see the comments there.

SET XACT_ABORT ON;
BEGIN TRANSACTION;

CREATE TABLE blocklist (
    server_host  NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    username     NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    jid          NVARCHAR(384) COLLATE Latin1_General_100_BIN2 NOT NULL,
    CONSTRAINT blocklist_pk PRIMARY KEY NONCLUSTERED (server_host, username, jid)
);

UPDATE schema_version SET version = 4 WHERE version = 3;

COMMIT;
