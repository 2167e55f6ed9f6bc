-- Parley schema for PostgreSQL: migration from version 11 to version 12.
--
-- Replaces the table fast_tokens (XEP-0484 tokens): a row now keeps the
-- random seed the token is derived from (column token_seed) instead of a
-- hash of the token.  No version of parleyd issued tokens into the old
-- table, so it is dropped and made anew.  Apply it to a database at
-- version 11 when parleyd refuses to start and names this file, as the
-- owner of the table (or let `parleyctl db migrate` apply it):
--     psql -v ON_ERROR_STOP=1 -d xmpp -f 012-fast-seed.sql
-- It runs in one transaction.  Give parleyd's role its rights on the new
-- table fast_tokens afterwards (doc/database.md).
-- The table is the one pgsql.sql (version 12) creates.

BEGIN;

DROP TABLE IF EXISTS fast_tokens;

CREATE TABLE fast_tokens (
    server_host  TEXT    NOT NULL,
    username     TEXT    NOT NULL,
    token_seed   TEXT    NOT NULL,
    ua_id        TEXT    NOT NULL,
    mechanism    TEXT    NOT NULL,
    created_at   BIGINT  NOT NULL,
    expires_at   BIGINT  NOT NULL,
    last_count   BIGINT  NOT NULL,
    PRIMARY KEY (server_host, username, token_seed)
);

UPDATE schema_version SET version = 12 WHERE version = 11;

COMMIT;
