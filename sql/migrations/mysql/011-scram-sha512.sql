-- Parley schema for MySQL and MariaDB: migration from version 10 to version 11.
--
-- Adds SCRAM-SHA-512 credentials to users (four nullable columns: an
-- account made before this version has none until its password is set
-- again, and logs in with SCRAM-SHA-256 meanwhile).  Apply it to a
-- database at version 10 when parleyd refuses to start and names this
-- file, as a user that may alter
-- tables:
--     mysql --default-character-set=utf8mb4 xmpp < 011-scram-sha512.sql
-- (or let `parleyctl db migrate` apply it).  MySQL commits the ALTER TABLE
-- by itself; the version is set last.
-- The columns are the ones mysql.sql (version 11) creates.

ALTER TABLE users
    ADD COLUMN sha512_salt VARCHAR(128),
    ADD COLUMN sha512_iterations INT,
    ADD COLUMN sha512_stored_key VARCHAR(128),
    ADD COLUMN sha512_server_key VARCHAR(128);

UPDATE schema_version SET version = 11 WHERE version = 10;
