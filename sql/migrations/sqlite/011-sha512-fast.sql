-- Parley schema for SQLite: migration from version 10 to version 11.
--
-- Adds the table fast_tokens (XEP-0484 tokens) and SCRAM-SHA-512
-- credentials to users (four nullable columns: an
-- account made before this version has none until its password is set
-- again, and logs in with SCRAM-SHA-256 meanwhile).  Apply it to a
-- database at version 10 when parleyd refuses to start and names this
-- file, with parleyd stopped:
--     sqlite3 -bail /var/lib/parley/parley.db < 011-sha512-fast.sql
-- (or let `parleyctl db migrate` apply it).  It runs in one transaction.
-- The table and columns are the ones sqlite.sql (version 11) creates.

BEGIN IMMEDIATE;

CREATE TABLE fast_tokens (
    server_host  TEXT    NOT NULL,
    username     TEXT    NOT NULL,
    token_hash   TEXT    NOT NULL,
    ua_id        TEXT    NOT NULL,
    mechanism    TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    last_count   INTEGER NOT NULL,
    PRIMARY KEY (server_host, username, token_hash)
) WITHOUT ROWID;

ALTER TABLE users ADD COLUMN sha512_salt TEXT;
ALTER TABLE users ADD COLUMN sha512_iterations INTEGER;
ALTER TABLE users ADD COLUMN sha512_stored_key TEXT;
ALTER TABLE users ADD COLUMN sha512_server_key TEXT;

UPDATE schema_version SET version = 11 WHERE version = 10;

COMMIT;
