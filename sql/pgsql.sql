-- Parley schema for PostgreSQL (10 or later), schema version 15.
--
-- A DBA applies this file once, as the owner of the database, to an empty
-- database (or schema):
--     psql -v ON_ERROR_STOP=1 -1 -d xmpp -f pgsql.sql
-- (-1 runs it in one transaction: all of it or nothing.)  parleyd never
-- creates or alters tables on PostgreSQL by itself: at start it reads
-- schema_version and refuses to run on a version it was not built for,
-- naming the scripts of migrations/pgsql/ to apply (or run
-- `parleyctl db migrate` when you want Parley to apply them).
--
-- parleyd itself needs only DML rights; see doc/database.md:
--     GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO parley;
--     GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO parley;
--
-- Conventions, the same in every dialect's file:
--   * Every table has server_host, the virtual host (a prepared domain) the
--     row belongs to: one database serves many hosts.
--   * username is the local part of the JID after nodeprep; jid columns hold
--     prepared bare JIDs.  Compare them byte for byte (no case folding in
--     SQL: Parley prepares them before they reach the database).  Create the
--     database with encoding UTF8.
--   * Flags are SMALLINT 0/1; times are BIGINT unix seconds (UTC).
--   * parleyd only runs SELECT, INSERT, UPDATE and DELETE.
--   * Each query's index is noted where the table is defined.
-- parleyd sets these per session: statement_timeout (the storage timeout),
-- client_encoding UTF8, application_name 'parleyd'.

-- One row: the version of this schema.  Migrations update it.
CREATE TABLE schema_version (
    version INTEGER NOT NULL
);
INSERT INTO schema_version (version) VALUES (15);

-- Accounts kept by the "internal" auth method.  Credentials are SCRAM
-- (RFC 5802 / RFC 7677): per hash a salt, an iteration count, StoredKey and
-- ServerKey, all base64 text.  A hash whose four columns are not all set is
-- not offered.  password is a clear-text password, NULL unless an operator
-- imported one (the internal auth method stores SCRAM keys only, and clears
-- it when the password changes); when it is set, PLAIN logins compare
-- against it.
-- Queries: by (server_host, username) for log-in, update, removal (primary
-- key); list and count by server_host (primary key prefix).
CREATE TABLE users (
    server_host        TEXT    NOT NULL,
    username           TEXT    NOT NULL,
    created_at         BIGINT  NOT NULL,
    sha1_salt          TEXT,
    sha1_iterations    INTEGER,
    sha1_stored_key    TEXT,
    sha1_server_key    TEXT,
    sha256_salt        TEXT,
    sha256_iterations  INTEGER,
    sha256_stored_key  TEXT,
    sha256_server_key  TEXT,
    password           TEXT,
    sha512_salt        TEXT,
    sha512_iterations  INTEGER,
    sha512_stored_key  TEXT,
    sha512_server_key  TEXT,
    PRIMARY KEY (server_host, username)
);

-- FAST tokens (XEP-0484) of accounts: the random seed each token is
-- derived from (base64; the derivation key lives outside the database,
-- see the admin guide), never the token; the client (ua_id) it was issued to, its SASL
-- mechanism, creation and expiry (unix time) and the highest 'count' a
-- login used.  Deleted with the account; looked up by the primary key,
-- listed and revoked per user by its prefix (server_host, username).
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

-- SCRAM keys kept for users of the ldap, pam and external auth methods
-- (auth.scram_cache_ttl): derived from a password that method accepted
-- in a PLAIN login, never the password itself, and used until expires_at
-- (unix time), then deleted.  The same four columns per hash as users;
-- these rows are no accounts.  Deleted when the method later refuses the
-- password or the user, when the password is set or the account removed.
-- Queries: by (server_host, username) (primary key); expiry by server_host
-- (primary key prefix).
CREATE TABLE scram_cache (
    server_host        TEXT NOT NULL,
    username           TEXT NOT NULL,
    expires_at         BIGINT NOT NULL,
    sha1_salt          TEXT NOT NULL,
    sha1_iterations    INTEGER NOT NULL,
    sha1_stored_key    TEXT NOT NULL,
    sha1_server_key    TEXT NOT NULL,
    sha256_salt        TEXT NOT NULL,
    sha256_iterations  INTEGER NOT NULL,
    sha256_stored_key  TEXT NOT NULL,
    sha256_server_key  TEXT NOT NULL,
    sha512_salt        TEXT NOT NULL,
    sha512_iterations  INTEGER NOT NULL,
    sha512_stored_key  TEXT NOT NULL,
    sha512_server_key  TEXT NOT NULL,
    PRIMARY KEY (server_host, username)
);

-- Roster (RFC 6121) items: one row per contact of a user.
--   subscription: 'N' none, 'T' to, 'F' from, 'B' both.
--   ask_out: we asked for the contact's presence (pending out);
--   ask_in: the contact asked for ours, unanswered (pending in);
--   approved: subscription pre-approved (RFC 6121 section 3.4);
--   ask_in_stanza: with ask_in, what the request said, for its redelivery
--     at the user's next initial presence: a serialized <presence/>
--     (default namespace jabber:client) holding only the request's
--     <status/> and XEP-0172 <nick/> children; NULL when it had none, and
--     cleared with ask_in (at most the size of the stanza it came in,
--     which limits.max_stanza_size bounds);
--   in_roster: the user has the item in the roster (a roster set, a
--     subscription either way, a request or approval of the user's, a
--     name or a group); 0 only for a row that is nothing but the
--     contact's waiting request (subscription 'N', ask_in 1, ask_out and
--     approved 0, no name, no group), which the user does not see.
-- Queries: all items of a user (primary key prefix), one item (primary key).
-- Rows exist for users of any auth method (LDAP users have no users row),
-- hence no foreign key to users.
CREATE TABLE roster_items (
    server_host   TEXT     NOT NULL,
    username      TEXT     NOT NULL,
    jid           TEXT     NOT NULL,
    name          TEXT,
    subscription  CHAR(1)  NOT NULL DEFAULT 'N' CHECK (subscription IN ('N', 'T', 'F', 'B')),
    ask_out       SMALLINT NOT NULL DEFAULT 0 CHECK (ask_out IN (0, 1)),
    ask_in        SMALLINT NOT NULL DEFAULT 0 CHECK (ask_in IN (0, 1)),
    approved      SMALLINT NOT NULL DEFAULT 0 CHECK (approved IN (0, 1)),
    ask_in_stanza TEXT,
    in_roster     SMALLINT NOT NULL DEFAULT 1 CHECK (in_roster IN (0, 1)),
    PRIMARY KEY (server_host, username, jid)
);

-- The groups of a roster item, one row per group name.
-- Queries: all groups of a user (primary key prefix), the groups of one item
-- (primary key prefix, also used by the foreign key).
CREATE TABLE roster_groups (
    server_host  TEXT NOT NULL,
    username     TEXT NOT NULL,
    jid          TEXT NOT NULL,
    grp          TEXT NOT NULL,
    PRIMARY KEY (server_host, username, jid, grp),
    FOREIGN KEY (server_host, username, jid)
        REFERENCES roster_items (server_host, username, jid) ON DELETE CASCADE
);

-- Roster versioning (RFC 6121 section 2.6): a counter per user, incremented
-- by every change of the user's roster.  No row means version 0.
-- Queries: by (server_host, username) (primary key).
CREATE TABLE roster_version (
    server_host  TEXT   NOT NULL,
    username     TEXT   NOT NULL,
    version      BIGINT NOT NULL,
    PRIMARY KEY (server_host, username)
);

-- Offline messages (XEP-0160): messages that arrived for a user while none
-- of the user's resources could take them, delivered (oldest first) and
-- deleted when the user comes online.  seq orders them; an identity column
-- never gives a number twice, so "delete up to seq N" never reaches a
-- message stored after the read that saw N.  (parleyd's role needs USAGE
-- on its sequence.)
--   stanza: the serialized <message/> (default namespace jabber:client),
--     with the <delay xmlns='urn:xmpp:delay'/> the server added;
--   from_jid: the sender's full JID, for administration.
--   token: a random token the server gives each message it stores, so
--     that a store run again after its COMMIT's answer was lost finds its
--     own row (NULL in rows stored before schema version 14).
-- Queries: a user's messages in order, their count, deletion of a prefix:
-- all by (server_host, username, seq) (offline_messages_user); a store run
-- again looks for its token (offline_messages_token).
-- Account removal deletes a user's rows.
CREATE TABLE offline_messages (
    seq          BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    server_host  TEXT   NOT NULL,
    username     TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    from_jid     TEXT   NOT NULL,
    stanza       TEXT   NOT NULL,
    token        TEXT
);
CREATE INDEX offline_messages_user ON offline_messages (server_host, username, seq);
CREATE UNIQUE INDEX offline_messages_token ON offline_messages (token);

-- vCards (XEP-0054): one per user, the serialized <vCard xmlns='vcard-temp'/>
-- element as the user last set it (its size is bounded by the vcard
-- module's max_size option).
-- Queries: by (server_host, username) (primary key).
-- Account removal deletes a user's row.
CREATE TABLE vcards (
    server_host  TEXT NOT NULL,
    username     TEXT NOT NULL,
    vcard        TEXT NOT NULL,
    PRIMARY KEY (server_host, username)
);

-- Private XML storage (XEP-0049): one element per user and namespace, the
-- serialized element (with its xmlns) in data.
-- Queries: by (server_host, username, namespace) (primary key).
-- Account removal deletes a user's rows (primary key prefix).
CREATE TABLE private_storage (
    server_host  TEXT NOT NULL,
    username     TEXT NOT NULL,
    namespace    TEXT NOT NULL,
    data         TEXT NOT NULL,
    PRIMARY KEY (server_host, username, namespace)
);

-- Last activity (XEP-0012): when the user's last session closed (unix
-- seconds) and the status text of the last unavailable presence it sent
-- ('' when none).
-- Queries: by (server_host, username) (primary key).
-- Account removal deletes a user's row.
CREATE TABLE last_activity (
    server_host  TEXT   NOT NULL,
    username     TEXT   NOT NULL,
    seconds      BIGINT NOT NULL,
    status       TEXT   NOT NULL DEFAULT '',
    PRIMARY KEY (server_host, username)
);

-- Blocking command (XEP-0191): the JIDs a user blocks, one row each (a
-- full JID, a bare JID, a domain or domain/resource, normalised).
-- Queries: a user's list, by (server_host, username) (primary key prefix);
-- one row by the whole key.
-- Account removal deletes a user's rows.
CREATE TABLE blocklist (
    server_host  TEXT NOT NULL,
    username     TEXT NOT NULL,
    jid          TEXT NOT NULL,
    PRIMARY KEY (server_host, username, jid)
);

-- Privacy lists (XEP-0016): a user's named lists (is_default 1 on at most
-- one of them) and their rules.  A rule: item_order (unique in its list,
-- rules apply in ascending order), item_type 'all' (matches everyone; then
-- item_value is ''), 'jid', 'group' or 'subscription' with item_value the
-- JID / roster group / 'both'|'to'|'from'|'none', action 'allow' or 'deny',
-- stanzas a bit set of what the rule applies to (1 message, 2 iq,
-- 4 presence-in, 8 presence-out; 0 every stanza).
-- Queries: a user's lists and items by (server_host, username) (primary key
-- prefixes); one list's items by (server_host, username, list_name).
-- Account removal deletes a user's rows.
CREATE TABLE privacy_lists (
    server_host  TEXT     NOT NULL,
    username     TEXT     NOT NULL,
    name         TEXT     NOT NULL,
    is_default   SMALLINT NOT NULL DEFAULT 0,
    PRIMARY KEY (server_host, username, name)
);

CREATE TABLE privacy_items (
    server_host  TEXT    NOT NULL,
    username     TEXT    NOT NULL,
    list_name    TEXT    NOT NULL,
    item_order   BIGINT  NOT NULL,
    item_type    TEXT    NOT NULL,
    item_value   TEXT    NOT NULL DEFAULT '',
    action       TEXT    NOT NULL,
    stanzas      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (server_host, username, list_name, item_order)
);

-- Shared roster groups: groups an administrator defines per host, whose
-- members see each other in their rosters without subscribing.
--   name: the group's key on its host; label: the roster group name clients
--   show ('' means name); description: free text for administrators.
-- Queries: every group of a host (primary key prefix), one group (primary key).
CREATE TABLE sr_groups (
    server_host  TEXT NOT NULL,
    name         TEXT NOT NULL,
    label        TEXT NOT NULL DEFAULT '',
    description  TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (server_host, name)
);

-- The groups whose members a group's members see ("displayed groups"); a
-- group without rows here shows its own members.  displayed names a group
-- of the same host (it may not exist yet: then it shows nothing).
-- Queries: by (server_host, grp) (primary key prefix); every row of a host.
-- Deleting a group deletes its rows (parleyd does it, in one transaction).
CREATE TABLE sr_displayed (
    server_host  TEXT NOT NULL,
    grp          TEXT NOT NULL,
    displayed    TEXT NOT NULL,
    PRIMARY KEY (server_host, grp, displayed)
);

-- Members of shared roster groups: a prepared bare JID of the host, or
-- '@all@' (every registered user of the host) or '@online@' (every user
-- with a session).
-- Queries: a group's members (primary key prefix); the groups of a member
-- (sr_members_member); account removal deletes the user's rows by member.
CREATE TABLE sr_members (
    server_host  TEXT NOT NULL,
    grp          TEXT NOT NULL,
    member       TEXT NOT NULL,
    PRIMARY KEY (server_host, grp, member)
);
CREATE INDEX sr_members_member ON sr_members (server_host, member);

-- The user directory's index of the vCards (XEP-0055 search): one row per
-- stored vCard, written with it in the same transaction.  Each searchable
-- field is kept as the user wrote it (shown in results) and folded to lower
-- case (l* columns, compared by searches); '' when the vCard has none.
--   listed: 1 when the vCard holds <CLASS><PUBLIC/></CLASS>, the user's
--   consent to be found when the directory lists only consenting users.
-- Queries: a field equal to a value or within a prefix range, per host
-- (vcard_search_<field>); by account name (primary key).
-- Account removal deletes a user's row.
-- The folded columns and username compare byte-wise (COLLATE "C"): a
-- prefix search is an index range whatever the database's collation.
CREATE TABLE vcard_search (
    server_host  TEXT     NOT NULL,
    username     TEXT     COLLATE "C" NOT NULL,
    fn           TEXT     NOT NULL DEFAULT '',
    lfn          TEXT     COLLATE "C" NOT NULL DEFAULT '',
    given        TEXT     NOT NULL DEFAULT '',
    lgiven       TEXT     COLLATE "C" NOT NULL DEFAULT '',
    family       TEXT     NOT NULL DEFAULT '',
    lfamily      TEXT     COLLATE "C" NOT NULL DEFAULT '',
    nickname     TEXT     NOT NULL DEFAULT '',
    lnickname    TEXT     COLLATE "C" NOT NULL DEFAULT '',
    email        TEXT     NOT NULL DEFAULT '',
    lemail       TEXT     COLLATE "C" NOT NULL DEFAULT '',
    locality     TEXT     NOT NULL DEFAULT '',
    llocality    TEXT     COLLATE "C" NOT NULL DEFAULT '',
    orgname      TEXT     NOT NULL DEFAULT '',
    lorgname     TEXT     COLLATE "C" NOT NULL DEFAULT '',
    listed       SMALLINT NOT NULL DEFAULT 0,
    PRIMARY KEY (server_host, username)
);
CREATE INDEX vcard_search_fn ON vcard_search (server_host, lfn);
CREATE INDEX vcard_search_given ON vcard_search (server_host, lgiven);
CREATE INDEX vcard_search_family ON vcard_search (server_host, lfamily);
CREATE INDEX vcard_search_nickname ON vcard_search (server_host, lnickname);
CREATE INDEX vcard_search_email ON vcard_search (server_host, lemail);
CREATE INDEX vcard_search_locality ON vcard_search (server_host, llocality);
CREATE INDEX vcard_search_orgname ON vcard_search (server_host, lorgname);

-- Multi-user chat (XEP-0045): the persistent rooms of a MUC service.
--   service: the service's domain ("conference.example.com"); it belongs
--   to one virtual host, server_host, so the rows are keyed by service.
--   name: the room's node.  config: the room's configuration as the muc
--   module writes it (text SQL does not look into).  subject,
--   subject_nick: the room's subject and the nick that set it ('' when
--   none).  created_at: when the room was made.
-- Queries: every room of a service (primary key prefix) when the service
-- starts; one room (primary key) when it is stored or destroyed.  A room
-- is stored with its affiliations in one transaction (its rows replaced).
CREATE TABLE muc_room (
    server_host   TEXT   NOT NULL,
    service       TEXT   NOT NULL,
    name          TEXT   NOT NULL,
    config        TEXT   NOT NULL,
    subject       TEXT   NOT NULL,
    subject_nick  TEXT   NOT NULL,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (service, name)
);

-- Affiliations with the persistent rooms: one row per room and JID.
--   jid: a bare JID or a domain; affiliation: 'owner', 'admin', 'member'
--   or 'outcast'; reason: '' when none.
-- Queries: every row of a service (primary key prefix) when it starts; a
-- room's rows (primary key prefix) are replaced when the room is stored
-- and deleted with it.
CREATE TABLE muc_affiliation (
    server_host  TEXT NOT NULL,
    service      TEXT NOT NULL,
    room         TEXT NOT NULL,
    jid          TEXT NOT NULL,
    affiliation  TEXT NOT NULL,
    reason       TEXT NOT NULL,
    PRIMARY KEY (service, room, jid)
);

-- Nicks registered with a MUC service (XEP-0045 section 7.10): one per
-- bare JID, unique within the service.
-- Queries: every row of a service (primary key prefix) when it starts; by
-- jid (primary key) and by nick (muc_registered_nick) on registration.
CREATE TABLE muc_registered (
    server_host  TEXT NOT NULL,
    service      TEXT NOT NULL,
    jid          TEXT NOT NULL,
    nick         TEXT NOT NULL,
    PRIMARY KEY (service, jid),
    CONSTRAINT muc_registered_nick UNIQUE (service, nick)
);

-- Publish-subscribe (XEP-0060) and PEP (XEP-0163): the nodes of an owner.
--   owner: a pubsub service's domain ("pubsub.example.com") or, for PEP, a
--   user's bare JID; it belongs to one virtual host, server_host, so the
--   rows are keyed by owner.  node: the node's name (NodeID).  config: the
--   node's configuration as the pubsub module writes it (text SQL does not
--   look into).  created_at: when the node was made.
-- Queries: every node of an owner (primary key prefix) when the owner's
-- nodes are loaded; one node (primary key) when it is stored or deleted.
-- A node is stored with its affiliations and subscriptions in one
-- transaction (their rows replaced; its items stay).  Deleting a node
-- deletes its rows in the four pubsub tables.
CREATE TABLE pubsub_node (
    server_host  TEXT    NOT NULL,
    owner        TEXT    NOT NULL,
    node         TEXT    NOT NULL,
    config       TEXT    NOT NULL,
    created_at   BIGINT  NOT NULL,
    PRIMARY KEY (owner, node)
);

-- Affiliations with those nodes: one row per node and JID.
--   pos: the row's place in the node's list (0, 1, ...: the list is
--   replaced as a whole, and holds one row per jid); jid: a bare JID;
--   affiliation: 'owner', 'publisher', 'publish-only', 'member' or
--   'outcast'.
-- Queries: every row of an owner (primary key prefix) when it is loaded; a
-- node's rows (primary key prefix) are replaced when the node is stored and
-- deleted with it.
-- The key is (owner, node, pos), as in the MySQL and SQL Server schemas
-- (where owner, node and jid would not fit in an index).
CREATE TABLE pubsub_affiliation (
    server_host  TEXT     NOT NULL,
    owner        TEXT     NOT NULL,
    node         TEXT     NOT NULL,
    pos          INTEGER  NOT NULL,
    jid          TEXT     NOT NULL,
    affiliation  TEXT     NOT NULL,
    PRIMARY KEY (owner, node, pos)
);

-- Subscriptions to those nodes: one row per subscription.
--   subid: the subscription's id, unique within the node; jid: the
--   subscriber, a full or bare JID; state: 'subscribed', 'pending' or
--   'unconfigured'; options: the subscription's options as the pubsub
--   module writes them ('' when none).
-- Queries: every row of an owner (primary key prefix) when it is loaded; a
-- node's rows (primary key prefix) are replaced when the node is stored and
-- deleted with it.
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

-- Items published to those nodes: one row per node and ItemID.
--   item_id: the ItemID; publisher: the publisher's full JID ('' when
--   unknown); published_at: when it was published; seq: the pubsub
--   module's publication order within the node (higher: newer); payload:
--   the item's serialized XML, kept byte for byte ('' for an item without
--   payload; its size is bounded by the pubsub module's max_item_size).
-- Queries: every item of an owner (primary key prefix) when its nodes are
-- loaded; one item (primary key) when it is published (replaced by delete
-- and insert), retracted or evicted; a node's items (primary key prefix)
-- when it is purged or deleted.
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

-- Message archives (XEP-0313): the messages of an owner's archive.
--   owner: a user's bare JID, or a room's for a room archive; it belongs
--   to one virtual host, server_host.  id: the archiving module's id of
--   the message, unique in the owner's archive and growing with time
--   (microseconds since the epoch), so it is also the message's time and
--   its place in the archive; the XEP-0359 stanza-id is made from it.
--   peer: the other party's bare JID (a room archive: the room JID of the
--   sender, bare); resource: the other party's resource ('' when none; a
--   room archive: the sender's nick); outgoing: 1 when the owner sent it;
--   body: the <body/> text, for full-text search (NULL when none);
--   stanza: the serialized <message/>.
-- Queries: a page of an owner's archive, filtered by peer ('with', index
-- archive_with: its rows in id order), by id range (start/end, RSM
-- after/before: the primary key in id order, forwards or backwards) or by
-- ids (the primary key); full-text search with
-- to_tsvector('simple', body) @@ plainto_tsquery('simple', ...) (index
-- archive_fts); deleting an owner's rows (primary key prefix); retention:
-- the rows of a host older than an id, a limited number at a time (index
-- archive_expire; the rows are deleted by ctid).
-- The 'with' index is (owner, peer, id), without server_host, as in the
-- MySQL and SQL Server schemas (where server_host, owner and peer would
-- not fit in an index): an owner belongs to one host.
CREATE TABLE archive (
    server_host  TEXT      NOT NULL,
    owner        TEXT      NOT NULL,
    id           BIGINT    NOT NULL,
    peer         TEXT      NOT NULL,
    resource     TEXT      NOT NULL,
    outgoing     SMALLINT  NOT NULL,
    body         TEXT,
    stanza       TEXT      NOT NULL,
    PRIMARY KEY (server_host, owner, id)
);
CREATE INDEX archive_with ON archive (owner, peer, id);
CREATE INDEX archive_expire ON archive (server_host, id);
-- The 'simple' configuration: words lower-cased, no stemming and no stop
-- words (messages are in any language).
CREATE INDEX archive_fts ON archive USING GIN (to_tsvector('simple', body));

-- Archiving preferences (XEP-0313 section 6) of an owner.
--   def: the default, 'always', 'never' or 'roster'.
-- Queries: one owner's row (primary key), read, replaced (delete and
-- insert, with its JIDs, in one transaction) and deleted with the account.
CREATE TABLE archive_prefs (
    server_host  TEXT  NOT NULL,
    owner        TEXT  NOT NULL,
    def          TEXT  NOT NULL,
    PRIMARY KEY (server_host, owner)
);

-- The JIDs of those preferences: always 1, the JID's messages are always
-- archived; 0, never.
-- Queries: one owner's rows (primary key prefix), with its preferences.
-- The key is (owner, jid), without server_host, as in the MySQL and SQL
-- Server schemas: an owner belongs to one host.
CREATE TABLE archive_prefs_jid (
    server_host  TEXT      NOT NULL,
    owner        TEXT      NOT NULL,
    jid          TEXT      NOT NULL,
    always       SMALLINT  NOT NULL,
    PRIMARY KEY (owner, jid)
);
