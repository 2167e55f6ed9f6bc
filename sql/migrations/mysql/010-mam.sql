-- Parley schema for MySQL and MariaDB: migration from version 9 to version 10.
--
-- Adds message archives (XEP-0313): archived messages with their
-- full-text index, and archiving preferences.  Apply it to a database at
-- version 9 (after the earlier scripts for an older one) when parleyd
-- refuses to start and names this file, as a user that may create tables:
--     mysql --default-character-set=utf8mb4 xmpp < 010-mam.sql
-- MySQL commits each CREATE TABLE by itself (DDL is not transactional
-- there): the script may be run again after a failure half-way, it creates
-- only what is missing and sets the version last.  The tables are the ones
-- mysql.sql (version 10) creates; see the comments there.

CREATE TABLE IF NOT EXISTS archive (
    server_host  VARCHAR(191)  NOT NULL,
    owner        VARCHAR(383)  NOT NULL,
    id           BIGINT        NOT NULL,
    peer         VARCHAR(383)  NOT NULL,
    resource     VARCHAR(1023) NOT NULL,
    outgoing     TINYINT       NOT NULL,
    body         MEDIUMTEXT    COLLATE utf8mb4_unicode_ci NULL,
    stanza       MEDIUMTEXT    NOT NULL,
    PRIMARY KEY (server_host, owner, id),
    KEY archive_with (owner, peer, id),
    KEY archive_expire (server_host, id),
    FULLTEXT KEY archive_fts (body)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;

CREATE TABLE IF NOT EXISTS archive_prefs (
    server_host  VARCHAR(191)  NOT NULL,
    owner        VARCHAR(383)  NOT NULL,
    def          VARCHAR(16)   NOT NULL,
    PRIMARY KEY (server_host, owner)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;

CREATE TABLE IF NOT EXISTS archive_prefs_jid (
    server_host  VARCHAR(191)  NOT NULL,
    owner        VARCHAR(383)  NOT NULL,
    jid          VARCHAR(383)  NOT NULL,
    always       TINYINT       NOT NULL,
    PRIMARY KEY (owner, jid)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;

UPDATE schema_version SET version = 10 WHERE version = 9;
