-- Parley schema for PostgreSQL: migration from version 14 to version 15.
--
-- Adds two columns to roster_items:
-- - ask_in_stanza: what a pending inbound subscription request said (its
--   <status/> and XEP-0172 <nick/>), kept with the request so that its
--   redelivery at the user's next initial presence says it again.
--   Requests stored before keep NULL there and are redelivered without
--   them, as before.
-- - in_roster: whether the user has the item in the roster, or the row
--   is only a contact's waiting request, which the user does not see.
--   Before, a row with subscription 'N', ask_in 1, ask_out and approved 0,
--   no name and no group was taken for a waiting request alone; such rows
--   get 0 (an item the user had added with a JID alone and that then got
--   a request cannot be told apart: it stays hidden, as it was), every
--   other row 1.
-- Apply it to a database at version 14 when parleyd refuses to start and
-- names this file, as the owner of the tables (or let `parleyctl db
-- migrate` apply it):
--     psql -v ON_ERROR_STOP=1 -d xmpp -f 015-subscribe-stanza.sql
-- It runs in one transaction.  parleyd's rights on roster_items cover the
-- new column.
-- The columns are the ones pgsql.sql (version 15) creates.

BEGIN;

ALTER TABLE roster_items ADD COLUMN ask_in_stanza TEXT;
ALTER TABLE roster_items ADD COLUMN in_roster SMALLINT NOT NULL DEFAULT 1 CHECK (in_roster IN (0, 1));
UPDATE roster_items SET in_roster = 0
    WHERE subscription = 'N' AND ask_out = 0 AND ask_in = 1 AND approved = 0 AND name IS NULL
      AND NOT EXISTS (SELECT 1 FROM roster_groups g
                      WHERE g.server_host = roster_items.server_host
                        AND g.username = roster_items.username AND g.jid = roster_items.jid);

UPDATE schema_version SET version = 15 WHERE version = 14;

COMMIT;
