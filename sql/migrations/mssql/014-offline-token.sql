-- Parley schema for Microsoft SQL Server: migration from version 13 to
-- version 14.
--
-- Adds the column offline_messages.token and its unique index: each
-- message stored offline gets a random token, so that a store that runs
-- again after its COMMIT's answer was lost finds its own row instead of
-- storing the message twice.  A unique index of SQL Server takes one NULL
-- only (and a filtered one would tie every insert to the session's ANSI
-- options), so rows stored before get the token 'seq-' and their seq,
-- which no random token looks like.
-- Apply it to a database at version 13 when parleyd refuses to start and
-- names this file, with a login that may alter tables:
--     sqlcmd -S db -d xmpp -b -i 014-offline-token.sql
-- (or let `parleyctl db migrate` apply it).  It runs in one transaction.
-- The column and index are the ones mssql.sql (version 14) creates.

SET XACT_ABORT ON;
BEGIN TRANSACTION;

ALTER TABLE offline_messages ADD
    token NVARCHAR(64) COLLATE Latin1_General_100_BIN2 NULL;
-- compiled when they run, after the column exists (not with the batch)
EXEC('UPDATE offline_messages SET token = CONCAT(''seq-'', seq) WHERE token IS NULL');
EXEC('CREATE UNIQUE INDEX offline_messages_token ON offline_messages (token)');

UPDATE schema_version SET version = 14 WHERE version = 13;

COMMIT;
