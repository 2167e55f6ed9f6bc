-- Parley schema for SQLite: migration from version 12 to version 13.
--
-- Adds the table scram_cache: SCRAM keys kept for a while for users of the
-- ldap, pam and external auth methods (auth.scram_cache_ttl).  Apply it to
-- a database at version 12 when parleyd refuses to start and names this
-- file, with parleyd stopped:
--     sqlite3 -bail /var/lib/parley/parley.db < 013-scram-cache.sql
-- (or let `parleyctl db migrate` apply it).  It runs in one transaction.
-- The table is the one sqlite.sql (version 13) creates.

BEGIN IMMEDIATE;

CREATE TABLE scram_cache (
    server_host        TEXT NOT NULL,
    username           TEXT NOT NULL,
    expires_at         INTEGER NOT NULL,
    sha1_salt          TEXT NOT NULL,
    sha1_iterations    INTEGER NOT NULL,
    sha1_stored_key    TEXT NOT NULL,
    sha1_server_key    TEXT NOT NULL,
    sha256_salt        TEXT NOT NULL,
    sha256_iterations  INTEGER NOT NULL,
    sha256_stored_key  TEXT NOT NULL,
    sha256_server_key  TEXT NOT NULL,
    sha512_salt        TEXT NOT NULL,
    sha512_iterations  INTEGER NOT NULL,
    sha512_stored_key  TEXT NOT NULL,
    sha512_server_key  TEXT NOT NULL,
    PRIMARY KEY (server_host, username)
) WITHOUT ROWID;

UPDATE schema_version SET version = 13 WHERE version = 12;

COMMIT;
