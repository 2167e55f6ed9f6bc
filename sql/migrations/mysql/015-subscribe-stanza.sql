-- Parley schema for MySQL and MariaDB: migration from version 14 to version 15.
--
-- Adds the column roster_items.ask_in_stanza: what a pending inbound
-- subscription request said (its <status/> and XEP-0172 <nick/>), kept
-- with the request so that its redelivery at the user's next initial
-- presence says it again.  Requests stored before keep NULL there and are
-- redelivered without them, as before.
-- Apply it to a database at version 14 when parleyd refuses to start and
-- names this file, as a user that may alter tables:
--     mysql --default-character-set=utf8mb4 xmpp < 015-subscribe-stanza.sql
-- (or let `parleyctl db migrate` apply it).  MySQL commits each statement
-- by itself; the column comes in one statement, and the version is set
-- last.
-- The column is the one mysql.sql (version 15) creates.

ALTER TABLE roster_items ADD COLUMN ask_in_stanza MEDIUMTEXT NULL;

UPDATE schema_version SET version = 15 WHERE version = 14;
