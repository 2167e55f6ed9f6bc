-- Parley schema for SQLite: migration from version 11 to version 12.
--
-- Replaces the table fast_tokens (XEP-0484 tokens): a row now keeps the
-- random seed the token is derived from (column token_seed) instead of a
-- hash of the token.  No version of parleyd issued tokens into the old
-- table, so it is dropped and made anew.  Apply it to a database at
-- version 11 when parleyd refuses to start and names this file, with
-- parleyd stopped:
--     sqlite3 -bail /var/lib/parley/parley.db < 012-fast-seed.sql
-- (or let `parleyctl db migrate` apply it).  It runs in one transaction.
-- The table is the one sqlite.sql (version 12) creates.

BEGIN IMMEDIATE;

DROP TABLE IF EXISTS fast_tokens;

CREATE TABLE fast_tokens (
    server_host  TEXT    NOT NULL,
    username     TEXT    NOT NULL,
    token_seed   TEXT    NOT NULL,
    ua_id        TEXT    NOT NULL,
    mechanism    TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    last_count   INTEGER NOT NULL,
    PRIMARY KEY (server_host, username, token_seed)
) WITHOUT ROWID;

UPDATE schema_version SET version = 12 WHERE version = 11;

COMMIT;
