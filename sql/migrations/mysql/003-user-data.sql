-- Parley schema for MySQL and MariaDB: migration from version 2 to version 3.
--
-- Adds vCards (XEP-0054), private XML storage (XEP-0049) and last activity
-- (XEP-0012).  Apply it to a database at version 2 (after 002-offline.sql
-- for a database at version 1) when parleyd refuses to start and names
-- this file, as a user that may create tables:
--     mysql --default-character-set=utf8mb4 xmpp < 003-user-data.sql
-- MySQL commits each CREATE TABLE by itself (DDL is not transactional
-- there): the script may be run again after a failure half-way, it creates
-- only what is missing and sets the version last.  The tables are the ones
-- mysql.sql (version 3) creates; see the comments there.

CREATE TABLE IF NOT EXISTS vcards (
    server_host  VARCHAR(191)  NOT NULL,
    username     VARCHAR(191)  NOT NULL,
    vcard        MEDIUMTEXT    NOT NULL,
    PRIMARY KEY (server_host, username)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;

CREATE TABLE IF NOT EXISTS private_storage (
    server_host  VARCHAR(191)  NOT NULL,
    username     VARCHAR(191)  NOT NULL,
    namespace    VARCHAR(384)  NOT NULL,
    data         MEDIUMTEXT    NOT NULL,
    PRIMARY KEY (server_host, username, namespace)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;

CREATE TABLE IF NOT EXISTS last_activity (
    server_host  VARCHAR(191)  NOT NULL,
    username     VARCHAR(191)  NOT NULL,
    seconds      BIGINT        NOT NULL,
    status       TEXT          NOT NULL,
    PRIMARY KEY (server_host, username)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;

UPDATE schema_version SET version = 3 WHERE version = 2;
