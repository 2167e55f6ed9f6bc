-- Parley schema for MySQL and MariaDB: migration from version 10 to version 11.
--
-- Adds the table fast_tokens (XEP-0484 tokens) and SCRAM-SHA-512
-- credentials to users (four nullable columns: an
-- account made before this version has none until its password is set
-- again, and logs in with SCRAM-SHA-256 meanwhile).  Apply it to a
-- database at version 10 when parleyd refuses to start and names this
-- file, as a user that may alter
-- tables:
--     mysql --default-character-set=utf8mb4 xmpp < 011-sha512-fast.sql
-- (or let `parleyctl db migrate` apply it).  MySQL commits each statement
-- by itself: the table is created only when missing, the version is set
-- last.
-- The table and columns are the ones mysql.sql (version 11) creates.

CREATE TABLE IF NOT EXISTS fast_tokens (
    server_host  VARCHAR(191)  NOT NULL,
    username     VARCHAR(191)  NOT NULL,
    token_hash   VARCHAR(64)   NOT NULL,
    ua_id        VARCHAR(191)  NOT NULL,
    mechanism    VARCHAR(64)   NOT NULL,
    created_at   BIGINT        NOT NULL,
    expires_at   BIGINT        NOT NULL,
    last_count   BIGINT        NOT NULL,
    PRIMARY KEY (server_host, username, token_hash)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;

ALTER TABLE users
    ADD COLUMN sha512_salt VARCHAR(128),
    ADD COLUMN sha512_iterations INT,
    ADD COLUMN sha512_stored_key VARCHAR(128),
    ADD COLUMN sha512_server_key VARCHAR(128);

UPDATE schema_version SET version = 11 WHERE version = 10;
