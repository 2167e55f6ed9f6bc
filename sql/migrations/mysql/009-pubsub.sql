-- Parley schema for MySQL and MariaDB: migration from version 8 to version 9.
--
-- Adds publish-subscribe (XEP-0060) and PEP (XEP-0163): the nodes of a
-- pubsub service or a user, their affiliations, subscriptions and items.
-- Apply it to a database at version 8 (after the earlier scripts for an
-- older one) when parleyd refuses to start and names this file, as a user
-- that may create tables:
--     mysql --default-character-set=utf8mb4 xmpp < 009-pubsub.sql
-- MySQL commits each CREATE TABLE by itself (DDL is not transactional
-- there): the script may be run again after a failure half-way, it creates
-- only what is missing and sets the version last.  The tables are the ones
-- mysql.sql (version 9) creates; see the comments there (items up to 16 MiB
-- need a max_allowed_packet larger than that).

CREATE TABLE IF NOT EXISTS pubsub_node (
    server_host  VARCHAR(191)  NOT NULL,
    owner        VARCHAR(384)  NOT NULL,
    node         VARCHAR(191)  NOT NULL,
    config       MEDIUMTEXT    NOT NULL,
    created_at   BIGINT        NOT NULL,
    PRIMARY KEY (owner, node)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;

CREATE TABLE IF NOT EXISTS pubsub_affiliation (
    server_host  VARCHAR(191)  NOT NULL,
    owner        VARCHAR(384)  NOT NULL,
    node         VARCHAR(191)  NOT NULL,
    pos          INT           NOT NULL,
    jid          VARCHAR(384)  NOT NULL,
    affiliation  VARCHAR(16)   NOT NULL,
    PRIMARY KEY (owner, node, pos)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;

CREATE TABLE IF NOT EXISTS pubsub_subscription (
    server_host  VARCHAR(191)   NOT NULL,
    owner        VARCHAR(384)   NOT NULL,
    node         VARCHAR(191)   NOT NULL,
    subid        VARCHAR(191)   NOT NULL,
    jid          VARCHAR(3072)  NOT NULL,
    state        VARCHAR(16)    NOT NULL,
    options      MEDIUMTEXT     NOT NULL,
    PRIMARY KEY (owner, node, subid)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;

CREATE TABLE IF NOT EXISTS pubsub_item (
    server_host   VARCHAR(191)   NOT NULL,
    owner         VARCHAR(384)   NOT NULL,
    node          VARCHAR(191)   NOT NULL,
    item_id       VARCHAR(191)   NOT NULL,
    publisher     VARCHAR(3072)  NOT NULL,
    published_at  BIGINT         NOT NULL,
    seq           BIGINT         NOT NULL,
    payload       MEDIUMTEXT     NOT NULL,
    PRIMARY KEY (owner, node, item_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;

UPDATE schema_version SET version = 9 WHERE version = 8;
