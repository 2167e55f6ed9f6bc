-- Parley schema for Microsoft SQL Server: migration from version 12 to
-- version 13.
--
-- Adds the table scram_cache: SCRAM keys kept for a while for users of the
-- ldap, pam and external auth methods (auth.scram_cache_ttl).  Apply it to
-- a database at version 12 when parleyd refuses to start and names this
-- file, with a login that may create tables:
--     sqlcmd -S db -d xmpp -b -i 013-scram-cache.sql
-- (or let `parleyctl db migrate` apply it).  It runs in one transaction.
-- The table is the one mssql.sql (version 13) creates.

SET XACT_ABORT ON;
BEGIN TRANSACTION;

CREATE TABLE scram_cache (
    server_host        NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    username           NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    expires_at         BIGINT NOT NULL,
    sha1_salt          NVARCHAR(128) NOT NULL,
    sha1_iterations    INT NOT NULL,
    sha1_stored_key    NVARCHAR(128) NOT NULL,
    sha1_server_key    NVARCHAR(128) NOT NULL,
    sha256_salt        NVARCHAR(128) NOT NULL,
    sha256_iterations  INT NOT NULL,
    sha256_stored_key  NVARCHAR(128) NOT NULL,
    sha256_server_key  NVARCHAR(128) NOT NULL,
    sha512_salt        NVARCHAR(128) NOT NULL,
    sha512_iterations  INT NOT NULL,
    sha512_stored_key  NVARCHAR(128) NOT NULL,
    sha512_server_key  NVARCHAR(128) NOT NULL,
    CONSTRAINT scram_cache_pk PRIMARY KEY NONCLUSTERED (server_host, username)
);

UPDATE schema_version SET version = 13 WHERE version = 12;

COMMIT;
