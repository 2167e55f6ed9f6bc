-- Parley schema for MySQL and MariaDB: migration from version 4 to version 5.
--
-- Adds privacy lists (XEP-0016).  Apply it to a database at version 4
-- (after the earlier scripts for an older one) when parleyd refuses to
-- start and names this file, as a user that may create tables:
--     mysql --default-character-set=utf8mb4 xmpp < 005-privacy.sql
-- MySQL commits each CREATE TABLE by itself (DDL is not transactional
-- there): the script may be run again after a failure half-way, it creates
-- only what is missing and sets the version last.  The tables are the ones
-- mysql.sql (version 5) creates; see the comments there.

CREATE TABLE IF NOT EXISTS privacy_lists (
    server_host  VARCHAR(191)  NOT NULL,
    username     VARCHAR(191)  NOT NULL,
    name         VARCHAR(255)  NOT NULL,
    is_default   TINYINT       NOT NULL DEFAULT 0,
    PRIMARY KEY (server_host, username, name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;

CREATE TABLE IF NOT EXISTS privacy_items (
    server_host  VARCHAR(191)   NOT NULL,
    username     VARCHAR(191)   NOT NULL,
    list_name    VARCHAR(255)   NOT NULL,
    item_order   BIGINT         NOT NULL,
    item_type    VARCHAR(16)    NOT NULL,
    item_value   VARCHAR(3072)  NOT NULL DEFAULT '',
    action       VARCHAR(8)     NOT NULL,
    stanzas      INT            NOT NULL DEFAULT 0,
    PRIMARY KEY (server_host, username, list_name, item_order)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;

UPDATE schema_version SET version = 5 WHERE version = 4;
