-- Parley schema for MySQL and MariaDB: migration from version 1 to version 2.
--
-- Adds offline message storage (XEP-0160).  Apply it to a database at
-- version 1 when parleyd refuses to start and names this file, as a user
-- that may create tables:
--     mysql --default-character-set=utf8mb4 xmpp < 002-offline.sql
-- MySQL commits each CREATE TABLE by itself (DDL is not transactional
-- there): the script may be run again after a failure half-way, it creates
-- only what is missing and sets the version last.  The table is the ones
-- mysql.sql (version 2) creates; see the comments there.

CREATE TABLE IF NOT EXISTS offline_messages (
    seq          BIGINT        NOT NULL AUTO_INCREMENT,
    server_host  VARCHAR(191)  NOT NULL,
    username     VARCHAR(191)  NOT NULL,
    created_at   BIGINT        NOT NULL,
    from_jid     TEXT          NOT NULL,
    stanza       MEDIUMTEXT    NOT NULL,
    PRIMARY KEY (seq),
    KEY offline_messages_user (server_host, username, seq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;

UPDATE schema_version SET version = 2 WHERE version = 1;
