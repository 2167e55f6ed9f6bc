-- Parley schema for Microsoft SQL Server: migration from version 11 to
-- version 12.
--
-- Replaces the table fast_tokens (XEP-0484 tokens): a row now keeps the
-- random seed the token is derived from (column token_seed) instead of a
-- hash of the token.  No version of parleyd issued tokens into the old
-- table, so it is dropped and made anew.  Apply it to a database at
-- version 11 when parleyd refuses to start and names this file, with a
-- login that may alter tables:
--     sqlcmd -S db -d xmpp -b -i 012-fast-seed.sql
-- (or let `parleyctl db migrate` apply it).  It runs in one transaction.
-- The table is the one mssql.sql (version 12) creates.

SET XACT_ABORT ON;
BEGIN TRANSACTION;

DROP TABLE IF EXISTS fast_tokens;

CREATE TABLE fast_tokens (
    server_host  NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    username     NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    token_seed   NVARCHAR(64) COLLATE Latin1_General_100_BIN2 NOT NULL,
    ua_id        NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    mechanism    NVARCHAR(64) NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    last_count   BIGINT NOT NULL,
    CONSTRAINT fast_tokens_pk PRIMARY KEY NONCLUSTERED (server_host, username, token_seed)
);

UPDATE schema_version SET version = 12 WHERE version = 11;

COMMIT;
