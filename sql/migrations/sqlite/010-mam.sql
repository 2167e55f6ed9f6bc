-- Parley schema for SQLite: migration from version 9 to version 10.
--
-- Adds message archives (XEP-0313): archived messages with their
-- full-text index, and archiving preferences.  Apply it to a database at
-- version 9 (after the earlier scripts for an older one) when parleyd
-- refuses to start and names this file, with parleyd stopped:
--     sqlite3 -bail /var/lib/parley/parley.db < 010-mam.sql
-- (or let `parleyctl db migrate` apply it).  It runs in one transaction
-- (-bail stops at the first error, and nothing is changed then).  The
-- tables are the ones sqlite.sql (version 10) creates; see the comments
-- there.

BEGIN IMMEDIATE;

CREATE TABLE archive (
    seq          INTEGER  PRIMARY KEY,
    server_host  TEXT     NOT NULL,
    owner        TEXT     NOT NULL,
    id           INTEGER  NOT NULL,
    peer         TEXT     NOT NULL,
    resource     TEXT     NOT NULL,
    outgoing     INTEGER  NOT NULL,
    body         TEXT,
    stanza       TEXT     NOT NULL,
    UNIQUE (server_host, owner, id)
);
CREATE INDEX archive_with ON archive (owner, peer, id);
CREATE INDEX archive_expire ON archive (server_host, id);

CREATE VIRTUAL TABLE archive_fts USING fts5(body, content='archive', content_rowid='seq');
CREATE TRIGGER archive_fts_insert AFTER INSERT ON archive WHEN new.body IS NOT NULL BEGIN
    INSERT INTO archive_fts (rowid, body) VALUES (new.seq, new.body);
END;
CREATE TRIGGER archive_fts_delete AFTER DELETE ON archive WHEN old.body IS NOT NULL BEGIN
    INSERT INTO archive_fts (archive_fts, rowid, body) VALUES ('delete', old.seq, old.body);
END;
CREATE TRIGGER archive_fts_update AFTER UPDATE OF body ON archive BEGIN
    INSERT INTO archive_fts (archive_fts, rowid, body)
        SELECT 'delete', old.seq, old.body WHERE old.body IS NOT NULL;
    INSERT INTO archive_fts (rowid, body) SELECT new.seq, new.body WHERE new.body IS NOT NULL;
END;

CREATE TABLE archive_prefs (
    server_host  TEXT  NOT NULL,
    owner        TEXT  NOT NULL,
    def          TEXT  NOT NULL,
    PRIMARY KEY (server_host, owner)
) WITHOUT ROWID;

CREATE TABLE archive_prefs_jid (
    server_host  TEXT     NOT NULL,
    owner        TEXT     NOT NULL,
    jid          TEXT     NOT NULL,
    always       INTEGER  NOT NULL,
    PRIMARY KEY (owner, jid)
) WITHOUT ROWID;

UPDATE schema_version SET version = 10 WHERE version = 9;

COMMIT;
