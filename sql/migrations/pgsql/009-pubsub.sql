-- Parley schema for PostgreSQL: migration from version 8 to version 9.
--
-- Adds publish-subscribe (XEP-0060) and PEP (XEP-0163): the nodes of a
-- pubsub service or a user, their affiliations, subscriptions and items.
-- Apply it as the owner of the tables to a database at version 8 (after
-- the earlier scripts for an older one) when parleyd refuses to start and
-- names this file (or let `parleyctl db migrate` apply it):
--     psql -v ON_ERROR_STOP=1 -d xmpp -f 009-pubsub.sql
-- It runs in one transaction (ON_ERROR_STOP stops at the first error, and
-- nothing is changed then).  The tables are the ones pgsql.sql (version 9)
-- creates; see the comments there.  Give parleyd's role its rights on the
-- new tables afterwards (doc/database.md).

BEGIN;

CREATE TABLE pubsub_node (
    server_host  TEXT    NOT NULL,
    owner        TEXT    NOT NULL,
    node         TEXT    NOT NULL,
    config       TEXT    NOT NULL,
    created_at   BIGINT  NOT NULL,
    PRIMARY KEY (owner, node)
);

CREATE TABLE pubsub_affiliation (
    server_host  TEXT     NOT NULL,
    owner        TEXT     NOT NULL,
    node         TEXT     NOT NULL,
    pos          INTEGER  NOT NULL,
    jid          TEXT     NOT NULL,
    affiliation  TEXT     NOT NULL,
    PRIMARY KEY (owner, node, pos)
);

CREATE TABLE pubsub_subscription (
    server_host  TEXT  NOT NULL,
    owner        TEXT  NOT NULL,
    node         TEXT  NOT NULL,
    subid        TEXT  NOT NULL,
    jid          TEXT  NOT NULL,
    state        TEXT  NOT NULL,
    options      TEXT  NOT NULL,
    PRIMARY KEY (owner, node, subid)
);

CREATE TABLE pubsub_item (
    server_host   TEXT    NOT NULL,
    owner         TEXT    NOT NULL,
    node          TEXT    NOT NULL,
    item_id       TEXT    NOT NULL,
    publisher     TEXT    NOT NULL,
    published_at  BIGINT  NOT NULL,
    seq           BIGINT  NOT NULL,
    payload       TEXT    NOT NULL,
    PRIMARY KEY (owner, node, item_id)
);

UPDATE schema_version SET version = 9 WHERE version = 8;

COMMIT;
