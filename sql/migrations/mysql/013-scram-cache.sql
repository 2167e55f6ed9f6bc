-- Parley schema for MySQL and MariaDB: migration from version 12 to version 13.
--
-- Adds the table scram_cache: SCRAM keys kept for a while for users of the
-- ldap, pam and external auth methods (auth.scram_cache_ttl).  Apply it to
-- a database at version 12 when parleyd refuses to start and names this
-- file, as a user that may create tables:
--     mysql --default-character-set=utf8mb4 xmpp < 013-scram-cache.sql
-- (or let `parleyctl db migrate` apply it).  MySQL commits each statement
-- by itself: running it again after a failure is safe, the version is set
-- last.
-- The table is the one mysql.sql (version 13) creates.

DROP TABLE IF EXISTS scram_cache;

CREATE TABLE scram_cache (
    server_host        VARCHAR(191) NOT NULL,
    username           VARCHAR(191) NOT NULL,
    expires_at         BIGINT NOT NULL,
    sha1_salt          VARCHAR(128) NOT NULL,
    sha1_iterations    INT NOT NULL,
    sha1_stored_key    VARCHAR(128) NOT NULL,
    sha1_server_key    VARCHAR(128) NOT NULL,
    sha256_salt        VARCHAR(128) NOT NULL,
    sha256_iterations  INT NOT NULL,
    sha256_stored_key  VARCHAR(128) NOT NULL,
    sha256_server_key  VARCHAR(128) NOT NULL,
    sha512_salt        VARCHAR(128) NOT NULL,
    sha512_iterations  INT NOT NULL,
    sha512_stored_key  VARCHAR(128) NOT NULL,
    sha512_server_key  VARCHAR(128) NOT NULL,
    PRIMARY KEY (server_host, username)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;

UPDATE schema_version SET version = 13 WHERE version = 12;
