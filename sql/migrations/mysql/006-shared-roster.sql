-- Parley schema for MySQL and MariaDB: migration from version 5 to version 6.
--
-- Adds shared roster groups.  Apply it to a database at version 5 (after
-- the earlier scripts for an older one) when parleyd refuses to start and
-- names this file, as a user that may create tables:
--     mysql --default-character-set=utf8mb4 xmpp < 006-shared-roster.sql
-- MySQL commits each CREATE TABLE by itself (DDL is not transactional
-- there): the script may be run again after a failure half-way, it creates
-- only what is missing and sets the version last.  The tables are the ones
-- mysql.sql (version 6) creates; see the comments there.

CREATE TABLE IF NOT EXISTS sr_groups (
    server_host  VARCHAR(191)   NOT NULL,
    name         VARCHAR(191)   NOT NULL,
    label        VARCHAR(255)   NOT NULL DEFAULT '',
    description  VARCHAR(1024)  NOT NULL DEFAULT '',
    PRIMARY KEY (server_host, name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;

CREATE TABLE IF NOT EXISTS sr_displayed (
    server_host  VARCHAR(191)  NOT NULL,
    grp          VARCHAR(191)  NOT NULL,
    displayed    VARCHAR(191)  NOT NULL,
    PRIMARY KEY (server_host, grp, displayed)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;

CREATE TABLE IF NOT EXISTS sr_members (
    server_host  VARCHAR(191)  NOT NULL,
    grp          VARCHAR(191)  NOT NULL,
    member       VARCHAR(384)  NOT NULL,
    PRIMARY KEY (server_host, grp, member),
    KEY sr_members_member (server_host, member)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;

UPDATE schema_version SET version = 6 WHERE version = 5;
