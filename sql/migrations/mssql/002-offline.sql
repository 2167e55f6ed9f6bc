-- Parley schema for Microsoft SQL Server: migration from version 1 to
-- version 2.
--
-- Adds offline message storage (XEP-0160).  Apply it to a database at version 1 (after the
-- earlier scripts for an older one) when parleyd refuses to start and
-- names this file, with a login that may create tables:
--     sqlcmd -S db -d xmpp -b -i 002-offline.sql
-- It runs in one transaction (SQL Server's DDL is transactional; XACT_ABORT
-- rolls everything back at the first error).  The tables are the ones
-- mssql.sql (version 2) creates; see the comments there.

SET XACT_ABORT ON;
BEGIN TRANSACTION;

CREATE TABLE offline_messages (
    seq          BIGINT IDENTITY(1, 1) NOT NULL,
    server_host  NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    username     NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    created_at   BIGINT NOT NULL,
    from_jid     NVARCHAR(MAX) NOT NULL,
    stanza       NVARCHAR(MAX) NOT NULL,
    CONSTRAINT offline_messages_pk PRIMARY KEY (seq)
);
CREATE INDEX offline_messages_user ON offline_messages (server_host, username, seq);

UPDATE schema_version SET version = 2 WHERE version = 1;

COMMIT;
