-- Parley schema for MySQL and MariaDB: migration from version 3 to version 4.
--
-- Adds the blocking command's lists (XEP-0191).  Apply it to a database at
-- version 3 (after the earlier scripts for an older one) when parleyd
-- refuses to start and names this file, as a user that may create tables:
--     mysql --default-character-set=utf8mb4 xmpp < 004-blocklist.sql
-- MySQL commits each CREATE TABLE by itself (DDL is not transactional
-- there): the script may be run again after a failure half-way, it creates
-- only what is missing and sets the version last.  The table is the ones
-- mysql.sql (version 4) creates; see the comments there.

CREATE TABLE IF NOT EXISTS blocklist (
    server_host  VARCHAR(191)  NOT NULL,
    username     VARCHAR(191)  NOT NULL,
    jid          VARCHAR(384)  NOT NULL,
    PRIMARY KEY (server_host, username, jid)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;

UPDATE schema_version SET version = 4 WHERE version = 3;
