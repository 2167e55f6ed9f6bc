-- Parley schema for Microsoft SQL Server: migration from version 8 to
-- version 9.
--
-- Adds publish-subscribe (XEP-0060) and PEP (XEP-0163): the nodes of a
-- pubsub service or a user, their affiliations, subscriptions and items.
-- Apply it to a database at version 8 (after the earlier scripts for an
-- older one) when parleyd refuses to start and names this file, with a
-- login that may create tables:
--     sqlcmd -S db -d xmpp -b -i 009-pubsub.sql
-- It runs in one transaction (SQL Server's DDL is transactional; XACT_ABORT
-- rolls everything back at the first error).  The tables are the ones
-- mssql.sql (version 9) creates; see the comments there.

SET XACT_ABORT ON;
BEGIN TRANSACTION;

CREATE TABLE pubsub_node (
    server_host  NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    owner        NVARCHAR(384) COLLATE Latin1_General_100_BIN2 NOT NULL,
    node         NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    config       NVARCHAR(MAX) NOT NULL,
    created_at   BIGINT NOT NULL,
    CONSTRAINT pubsub_node_pk PRIMARY KEY NONCLUSTERED (owner, node)
);

CREATE TABLE pubsub_affiliation (
    server_host  NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    owner        NVARCHAR(384) COLLATE Latin1_General_100_BIN2 NOT NULL,
    node         NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    pos          INT NOT NULL,
    jid          NVARCHAR(384) COLLATE Latin1_General_100_BIN2 NOT NULL,
    affiliation  NVARCHAR(16) NOT NULL,
    CONSTRAINT pubsub_affiliation_pk PRIMARY KEY NONCLUSTERED (owner, node, pos)
);

CREATE TABLE pubsub_subscription (
    server_host  NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    owner        NVARCHAR(384) COLLATE Latin1_General_100_BIN2 NOT NULL,
    node         NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    subid        NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    jid          NVARCHAR(3072) NOT NULL,
    state        NVARCHAR(16) NOT NULL,
    options      NVARCHAR(MAX) NOT NULL,
    CONSTRAINT pubsub_subscription_pk PRIMARY KEY NONCLUSTERED (owner, node, subid)
);

CREATE TABLE pubsub_item (
    server_host   NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    owner         NVARCHAR(384) COLLATE Latin1_General_100_BIN2 NOT NULL,
    node          NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    item_id       NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    publisher     NVARCHAR(3072) NOT NULL,
    published_at  BIGINT NOT NULL,
    seq           BIGINT NOT NULL,
    payload       NVARCHAR(MAX) NOT NULL,
    CONSTRAINT pubsub_item_pk PRIMARY KEY NONCLUSTERED (owner, node, item_id)
);

UPDATE schema_version SET version = 9 WHERE version = 8;

COMMIT;
