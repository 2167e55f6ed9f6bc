-- Parley schema for MySQL and MariaDB: migration from version 6 to version 7.
--
-- Adds the user directory's index of the vCards (XEP-0055 search).  Apply
-- it to a database at version 6 (after the earlier scripts for an older
-- one) when parleyd refuses to start and names this file, as a user that
-- may create tables:
--     mysql --default-character-set=utf8mb4 xmpp < 007-vcard-search.sql
-- MySQL commits each CREATE TABLE by itself: the script may be run again
-- after a failure half-way.  The table is the one mysql.sql (version 7)
-- creates; see the comments there.  The vCards stored before are indexed
-- by parleyd itself (SQL cannot read them): the vjud module does it when
-- it starts on a host, and logs how many it indexed.

CREATE TABLE IF NOT EXISTS vcard_search (
    server_host  VARCHAR(191)  NOT NULL,
    username     VARCHAR(191)  NOT NULL,
    fn           VARCHAR(255)  NOT NULL DEFAULT '',
    lfn          VARCHAR(255)  NOT NULL DEFAULT '',
    given        VARCHAR(255)  NOT NULL DEFAULT '',
    lgiven       VARCHAR(255)  NOT NULL DEFAULT '',
    family       VARCHAR(255)  NOT NULL DEFAULT '',
    lfamily      VARCHAR(255)  NOT NULL DEFAULT '',
    nickname     VARCHAR(255)  NOT NULL DEFAULT '',
    lnickname    VARCHAR(255)  NOT NULL DEFAULT '',
    email        VARCHAR(255)  NOT NULL DEFAULT '',
    lemail       VARCHAR(255)  NOT NULL DEFAULT '',
    locality     VARCHAR(255)  NOT NULL DEFAULT '',
    llocality    VARCHAR(255)  NOT NULL DEFAULT '',
    orgname      VARCHAR(255)  NOT NULL DEFAULT '',
    lorgname     VARCHAR(255)  NOT NULL DEFAULT '',
    listed       TINYINT       NOT NULL DEFAULT 0,
    PRIMARY KEY (server_host, username),
    KEY vcard_search_fn (server_host, lfn),
    KEY vcard_search_given (server_host, lgiven),
    KEY vcard_search_family (server_host, lfamily),
    KEY vcard_search_nickname (server_host, lnickname),
    KEY vcard_search_email (server_host, lemail),
    KEY vcard_search_locality (server_host, llocality),
    KEY vcard_search_orgname (server_host, lorgname)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;

UPDATE schema_version SET version = 7 WHERE version = 6;
