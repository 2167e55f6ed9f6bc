-- Parley schema for SQLite: migration from version 8 to version 9.
--
-- Adds publish-subscribe (XEP-0060) and PEP (XEP-0163): the nodes of a
-- pubsub service or a user, their affiliations, subscriptions and items.
-- Apply it to a database at version 8 (after the earlier scripts for an
-- older one) when parleyd refuses to start and names this file, with
-- parleyd stopped:
--     sqlite3 -bail /var/lib/parley/parley.db < 009-pubsub.sql
-- (or let `parleyctl db migrate` apply it).  It runs in one transaction
-- (-bail stops at the first error, and nothing is changed then).  The
-- tables are the ones sqlite.sql (version 9) creates; see the comments
-- there.

BEGIN IMMEDIATE;

CREATE TABLE pubsub_node (
    server_host  TEXT     NOT NULL,
    owner        TEXT     NOT NULL,
    node         TEXT     NOT NULL,
    config       TEXT     NOT NULL,
    created_at   INTEGER  NOT NULL,
    PRIMARY KEY (owner, node)
) WITHOUT ROWID;

CREATE TABLE pubsub_affiliation (
    server_host  TEXT     NOT NULL,
    owner        TEXT     NOT NULL,
    node         TEXT     NOT NULL,
    pos          INTEGER  NOT NULL,
    jid          TEXT     NOT NULL,
    affiliation  TEXT     NOT NULL,
    PRIMARY KEY (owner, node, pos)
) WITHOUT ROWID;

CREATE TABLE pubsub_subscription (
    server_host  TEXT  NOT NULL,
    owner        TEXT  NOT NULL,
    node         TEXT  NOT NULL,
    subid        TEXT  NOT NULL,
    jid          TEXT  NOT NULL,
    state        TEXT  NOT NULL,
    options      TEXT  NOT NULL,
    PRIMARY KEY (owner, node, subid)
) WITHOUT ROWID;

CREATE TABLE pubsub_item (
    server_host   TEXT     NOT NULL,
    owner         TEXT     NOT NULL,
    node          TEXT     NOT NULL,
    item_id       TEXT     NOT NULL,
    publisher     TEXT     NOT NULL,
    published_at  INTEGER  NOT NULL,
    seq           INTEGER  NOT NULL,
    payload       TEXT     NOT NULL,
    PRIMARY KEY (owner, node, item_id)
);

UPDATE schema_version SET version = 9 WHERE version = 8;

COMMIT;
