-- Parley schema for PostgreSQL: migration from version 3 to version 4.
--
-- Adds the blocking command's lists (XEP-0191).  Apply it as the owner of
-- the tables to a database at version 3 (after the earlier scripts for an
-- older one) when parleyd refuses to start and names this file (or let
-- `parleyctl db migrate` apply it):
--     psql -v ON_ERROR_STOP=1 -d xmpp -f 004-blocklist.sql
-- It runs in one transaction (ON_ERROR_STOP stops at the first error, and
-- nothing is changed then).  The table is the one pgsql.sql (version 4)
-- creates; see the comments there.  Give parleyd's role its rights on the
-- new table afterwards (doc/database.md).

BEGIN;

CREATE TABLE blocklist (
    server_host  TEXT NOT NULL,
    username     TEXT NOT NULL,
    jid          TEXT NOT NULL,
    PRIMARY KEY (server_host, username, jid)
);

UPDATE schema_version SET version = 4 WHERE version = 3;

COMMIT;
