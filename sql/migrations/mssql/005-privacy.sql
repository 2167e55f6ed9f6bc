-- Parley schema for Microsoft SQL Server: migration from version 4 to
-- version 5.
--
-- Adds privacy lists (XEP-0016).  Apply it to a database at version 4 (after the
-- earlier scripts for an older one) when parleyd refuses to start and
-- names this file, with a login that may create tables:
--     sqlcmd -S db -d xmpp -b -i 005-privacy.sql
-- It runs in one transaction (SQL Server's DDL is transactional; XACT_ABORT
-- rolls everything back at the first error).  The tables are the ones
-- mssql.sql (version 5) creates; see the comments there.

SET XACT_ABORT ON;
BEGIN TRANSACTION;

CREATE TABLE privacy_lists (
    server_host  NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    username     NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    name         NVARCHAR(255) COLLATE Latin1_General_100_BIN2 NOT NULL,
    is_default   SMALLINT NOT NULL DEFAULT 0,
    CONSTRAINT privacy_lists_pk PRIMARY KEY NONCLUSTERED (server_host, username, name)
);

CREATE TABLE privacy_items (
    server_host  NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    username     NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    list_name    NVARCHAR(255) COLLATE Latin1_General_100_BIN2 NOT NULL,
    item_order   BIGINT NOT NULL,
    item_type    NVARCHAR(16) NOT NULL,
    item_value   NVARCHAR(3072) NOT NULL DEFAULT '',
    action       NVARCHAR(8) NOT NULL,
    stanzas      INT NOT NULL DEFAULT 0,
    CONSTRAINT privacy_items_pk PRIMARY KEY NONCLUSTERED (server_host, username, list_name, item_order)
);

UPDATE schema_version SET version = 5 WHERE version = 4;

COMMIT;
