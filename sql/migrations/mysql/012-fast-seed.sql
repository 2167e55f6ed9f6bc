-- Parley schema for MySQL and MariaDB: migration from version 11 to version 12.
--
-- Replaces the table fast_tokens (XEP-0484 tokens): a row now keeps the
-- random seed the token is derived from (column token_seed) instead of a
-- hash of the token.  No version of parleyd issued tokens into the old
-- table, so it is dropped and made anew.  Apply it to a database at
-- version 11 when parleyd refuses to start and names this file, as a user
-- that may alter tables:
--     mysql --default-character-set=utf8mb4 xmpp < 012-fast-seed.sql
-- (or let `parleyctl db migrate` apply it).  MySQL commits each statement
-- by itself: running it again after a failure is safe, the version is set
-- last.
-- The table is the one mysql.sql (version 12) creates.

DROP TABLE IF EXISTS fast_tokens;

CREATE TABLE fast_tokens (
    server_host  VARCHAR(191)  NOT NULL,
    username     VARCHAR(191)  NOT NULL,
    token_seed   VARCHAR(64)   NOT NULL,
    ua_id        VARCHAR(191)  NOT NULL,
    mechanism    VARCHAR(64)   NOT NULL,
    created_at   BIGINT        NOT NULL,
    expires_at   BIGINT        NOT NULL,
    last_count   BIGINT        NOT NULL,
    PRIMARY KEY (server_host, username, token_seed)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;

UPDATE schema_version SET version = 12 WHERE version = 11;
