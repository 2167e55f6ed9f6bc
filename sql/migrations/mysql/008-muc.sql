-- Parley schema for MySQL and MariaDB: migration from version 7 to version 8.
--
-- Adds the persistent rooms of multi-user chat (XEP-0045), their
-- affiliations and the nicks registered with a MUC service.  Apply it to a
-- database at version 7 (after the earlier scripts for an older one) when
-- parleyd refuses to start and names this file, as a user that may create
-- tables:
--     mysql --default-character-set=utf8mb4 xmpp < 008-muc.sql
-- MySQL commits each CREATE TABLE by itself (DDL is not transactional
-- there): the script may be run again after a failure half-way, it creates
-- only what is missing and sets the version last.  The tables are the ones
-- mysql.sql (version 8) creates; see the comments there.

CREATE TABLE IF NOT EXISTS muc_room (
    server_host   VARCHAR(191)  NOT NULL,
    service       VARCHAR(191)  NOT NULL,
    name          VARCHAR(191)  NOT NULL,
    config        MEDIUMTEXT    NOT NULL,
    subject       TEXT          NOT NULL,
    subject_nick  VARCHAR(255)  NOT NULL,
    created_at    BIGINT        NOT NULL,
    PRIMARY KEY (service, name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;

CREATE TABLE IF NOT EXISTS muc_affiliation (
    server_host  VARCHAR(191)  NOT NULL,
    service      VARCHAR(191)  NOT NULL,
    room         VARCHAR(191)  NOT NULL,
    jid          VARCHAR(384)  NOT NULL,
    affiliation  VARCHAR(16)   NOT NULL,
    reason       TEXT          NOT NULL,
    PRIMARY KEY (service, room, jid)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;

CREATE TABLE IF NOT EXISTS muc_registered (
    server_host  VARCHAR(191)  NOT NULL,
    service      VARCHAR(191)  NOT NULL,
    jid          VARCHAR(384)  NOT NULL,
    nick         VARCHAR(255)  NOT NULL,
    PRIMARY KEY (service, jid),
    UNIQUE KEY muc_registered_nick (service, nick)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;

UPDATE schema_version SET version = 8 WHERE version = 7;
