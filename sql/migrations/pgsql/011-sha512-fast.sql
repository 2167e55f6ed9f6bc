-- Parley schema for PostgreSQL: migration from version 10 to version 11.
--
-- Adds the table fast_tokens (XEP-0484 tokens) and SCRAM-SHA-512
-- credentials to users (four nullable columns: an
-- account made before this version has none until its password is set
-- again, and logs in with SCRAM-SHA-256 meanwhile).  Apply it to a
-- database at version 10 when parleyd refuses to start and names this
-- file, as the owner of the table
-- (or let `parleyctl db migrate` apply it):
--     psql -v ON_ERROR_STOP=1 -d xmpp -f 011-sha512-fast.sql
-- It runs in one transaction.  Give parleyd's role its rights on the new
-- table fast_tokens afterwards (doc/database.md).
-- The table and columns are the ones pgsql.sql (version 11) creates.

BEGIN;

CREATE TABLE fast_tokens (
    server_host  TEXT    NOT NULL,
    username     TEXT    NOT NULL,
    token_hash   TEXT    NOT NULL,
    ua_id        TEXT    NOT NULL,
    mechanism    TEXT    NOT NULL,
    created_at   BIGINT  NOT NULL,
    expires_at   BIGINT  NOT NULL,
    last_count   BIGINT  NOT NULL,
    PRIMARY KEY (server_host, username, token_hash)
);

ALTER TABLE users
    ADD COLUMN sha512_salt TEXT,
    ADD COLUMN sha512_iterations INTEGER,
    ADD COLUMN sha512_stored_key TEXT,
    ADD COLUMN sha512_server_key TEXT;

UPDATE schema_version SET version = 11 WHERE version = 10;

COMMIT;
