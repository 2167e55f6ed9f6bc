-- Parley schema for Microsoft SQL Server: migration from version 10 to version 11.
--
-- Adds the table fast_tokens (XEP-0484 tokens) and SCRAM-SHA-512
-- credentials to users (four nullable columns: an
-- account made before this version has none until its password is set
-- again, and logs in with SCRAM-SHA-256 meanwhile).  Apply it to a
-- database at version 10 when parleyd refuses to start and names this
-- file, with a login that may alter
-- tables:
--     sqlcmd -S db -d xmpp -b -i 011-sha512-fast.sql
-- (or let `parleyctl db migrate` apply it).  It runs in one transaction.
-- The table and columns are the ones mssql.sql (version 11) creates.

SET XACT_ABORT ON;
BEGIN TRANSACTION;

CREATE TABLE fast_tokens (
    server_host  NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    username     NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    token_hash   NVARCHAR(64) COLLATE Latin1_General_100_BIN2 NOT NULL,
    ua_id        NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    mechanism    NVARCHAR(64) NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    last_count   BIGINT NOT NULL,
    CONSTRAINT fast_tokens_pk PRIMARY KEY NONCLUSTERED (server_host, username, token_hash)
);

ALTER TABLE users ADD
    sha512_salt NVARCHAR(128),
    sha512_iterations INT,
    sha512_stored_key NVARCHAR(128),
    sha512_server_key NVARCHAR(128);

UPDATE schema_version SET version = 11 WHERE version = 10;

COMMIT;
