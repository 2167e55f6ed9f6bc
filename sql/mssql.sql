-- Parley schema for Microsoft SQL Server (2016 and later), through the
-- odbc driver, schema version 15.
--
-- A DBA creates the database and applies this file once, with a login that
-- may create tables:
--     sqlcmd -S db -d xmpp -b -i mssql.sql
-- parleyd never creates or alters tables here: at start it checks
-- schema_version and refuses to start, naming the scripts of
-- migrations/mssql/ to apply, when the version is not the one it was built
-- for.  Parley's own login needs only SELECT, INSERT, UPDATE and DELETE:
--     GRANT SELECT, INSERT, UPDATE, DELETE ON SCHEMA::dbo TO parley;
--
-- Conventions, the same in every dialect's file:
--   * Every table has server_host, the virtual host (a prepared domain) the
--     row belongs to: one database serves many hosts.
--   * username is the local part of the JID after nodeprep; jid columns hold
--     prepared bare JIDs.  Compare them byte for byte: the key columns use
--     the binary collation Latin1_General_100_BIN2 (SQL Server's default
--     collations ignore case; Parley prepares names before they reach the
--     database).
--   * Text is NVARCHAR (UTF-16 in the database; the ODBC driver converts
--     from and to the UTF-8 that Parley sends and reads).
--   * Flags are SMALLINT 0/1; times are BIGINT unix seconds (UTC).
--   * parleyd only runs SELECT, INSERT, UPDATE and DELETE.  Rows are
--     upserted as UPDATE, then INSERT when no row changed, in one
--     transaction.
--   * Each query's index is noted where the table is defined.
--
-- Key lengths: a nonclustered index key holds at most 1700 bytes, and an
-- NVARCHAR character takes 2, so the primary keys are NONCLUSTERED and the
-- indexed columns bounded as in the MySQL schema: server_host 191
-- characters, username 191, jid and namespace 384, privacy list names 255,
-- publish-subscribe owners 384, node names, item ids and subscription ids
-- 191.
--
-- parleyd sets per connection: LOCK_TIMEOUT (the storage timeout) and the
-- ODBC query timeout.
--
-- This schema has not been run against a SQL Server by Parley's test suite
-- (there is none in its CI); the odbc driver's SQL is the same as for the
-- other dialects, in its portable form.

-- One row: the version of this schema.  Migrations update it.
CREATE TABLE schema_version (
    version INT NOT NULL
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
    server_host        NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    username           NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    created_at         BIGINT NOT NULL,
    sha1_salt          NVARCHAR(128),
    sha1_iterations    INT,
    sha1_stored_key    NVARCHAR(128),
    sha1_server_key    NVARCHAR(128),
    sha256_salt        NVARCHAR(128),
    sha256_iterations  INT,
    sha256_stored_key  NVARCHAR(128),
    sha256_server_key  NVARCHAR(128),
    password           NVARCHAR(MAX),
    sha512_salt        NVARCHAR(128),
    sha512_iterations  INT,
    sha512_stored_key  NVARCHAR(128),
    sha512_server_key  NVARCHAR(128),
    CONSTRAINT users_pk PRIMARY KEY NONCLUSTERED (server_host, username)
);

-- FAST tokens (XEP-0484) of accounts: the random seed each token is
-- derived from (base64; the derivation key lives outside the database,
-- see the admin guide), never the token; the client (ua_id) it was issued to, its SASL
-- mechanism, creation and expiry (unix time) and the highest 'count' a
-- login used.  Deleted with the account; looked up by the primary key,
-- listed and revoked per user by its prefix (server_host, username).
CREATE TABLE fast_tokens (
    server_host  NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    username     NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    token_seed   NVARCHAR(64) COLLATE Latin1_General_100_BIN2 NOT NULL,
    ua_id        NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    mechanism    NVARCHAR(64) NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    last_count   BIGINT NOT NULL,
    CONSTRAINT fast_tokens_pk PRIMARY KEY NONCLUSTERED (server_host, username, token_seed)
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
    server_host        NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    username           NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    expires_at         BIGINT NOT NULL,
    sha1_salt          NVARCHAR(128) NOT NULL,
    sha1_iterations    INT NOT NULL,
    sha1_stored_key    NVARCHAR(128) NOT NULL,
    sha1_server_key    NVARCHAR(128) NOT NULL,
    sha256_salt        NVARCHAR(128) NOT NULL,
    sha256_iterations  INT NOT NULL,
    sha256_stored_key  NVARCHAR(128) NOT NULL,
    sha256_server_key  NVARCHAR(128) NOT NULL,
    sha512_salt        NVARCHAR(128) NOT NULL,
    sha512_iterations  INT NOT NULL,
    sha512_stored_key  NVARCHAR(128) NOT NULL,
    sha512_server_key  NVARCHAR(128) NOT NULL,
    CONSTRAINT scram_cache_pk PRIMARY KEY NONCLUSTERED (server_host, username)
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
    server_host   NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    username      NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    jid           NVARCHAR(384) COLLATE Latin1_General_100_BIN2 NOT NULL,
    name          NVARCHAR(MAX),
    subscription  NCHAR(1) NOT NULL DEFAULT 'N',
    ask_out       SMALLINT NOT NULL DEFAULT 0,
    ask_in        SMALLINT NOT NULL DEFAULT 0,
    approved      SMALLINT NOT NULL DEFAULT 0,
    ask_in_stanza NVARCHAR(MAX) NULL,
    in_roster     SMALLINT NOT NULL CONSTRAINT roster_items_in_roster_default DEFAULT 1,
    CONSTRAINT roster_items_pk PRIMARY KEY NONCLUSTERED (server_host, username, jid),
    CONSTRAINT roster_items_subscription CHECK (subscription IN ('N', 'T', 'F', 'B')),
    CONSTRAINT roster_items_flags CHECK (ask_out IN (0, 1) AND ask_in IN (0, 1) AND approved IN (0, 1)),
    CONSTRAINT roster_items_in_roster CHECK (in_roster IN (0, 1))
);

-- The groups of a roster item, one row per group name.  A group name is
-- not part of an index (the key would pass SQL Server's 1700-byte limit):
-- rows are found by their item, and Parley writes each name of an item once.
-- Queries: all groups of a user (roster_groups_item prefix), the groups of
-- one item (roster_groups_item).  Deleted with their item by Parley.
CREATE TABLE roster_groups (
    id           BIGINT IDENTITY(1, 1) NOT NULL,
    server_host  NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    username     NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    jid          NVARCHAR(384) COLLATE Latin1_General_100_BIN2 NOT NULL,
    grp          NVARCHAR(MAX) NOT NULL,
    CONSTRAINT roster_groups_pk PRIMARY KEY (id)
);
CREATE INDEX roster_groups_item ON roster_groups (server_host, username, jid);

-- Roster versioning (RFC 6121 section 2.6): a counter per user, incremented
-- by every change of the user's roster.  No row means version 0.
-- Queries: by (server_host, username) (primary key).
CREATE TABLE roster_version (
    server_host  NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    username     NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    version      BIGINT NOT NULL,
    CONSTRAINT roster_version_pk PRIMARY KEY NONCLUSTERED (server_host, username)
);

-- Offline messages (XEP-0160): messages that arrived for a user while none
-- of the user's resources could take them, delivered (oldest first) and
-- deleted when the user comes online.  seq (IDENTITY) orders them and is
-- never used twice, so "delete up to seq N" never reaches a message stored
-- after the read that saw N.
--   stanza: the serialized <message/> (default namespace jabber:client),
--     with the <delay xmlns='urn:xmpp:delay'/> the server added;
--   from_jid: the sender's full JID, for administration.
--   token: a random token the server gives each message it stores, so
--     that a store run again after its COMMIT's answer was lost finds its
--     own row ('seq-' and the seq in rows stored before schema version
--     14: SQL Server's unique index takes one NULL only).
-- Queries: a user's messages in order, their count, deletion of a prefix:
-- all by (server_host, username, seq) (offline_messages_user); a store run
-- again looks for its token (offline_messages_token).
-- Account removal deletes a user's rows.
CREATE TABLE offline_messages (
    seq          BIGINT IDENTITY(1, 1) NOT NULL,
    server_host  NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    username     NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    created_at   BIGINT NOT NULL,
    from_jid     NVARCHAR(MAX) NOT NULL,
    stanza       NVARCHAR(MAX) NOT NULL,
    token        NVARCHAR(64) COLLATE Latin1_General_100_BIN2 NULL,
    CONSTRAINT offline_messages_pk PRIMARY KEY (seq)
);
CREATE INDEX offline_messages_user ON offline_messages (server_host, username, seq);
CREATE UNIQUE INDEX offline_messages_token ON offline_messages (token);

-- vCards (XEP-0054): one per user, the serialized <vCard xmlns='vcard-temp'/>
-- element as the user last set it.
-- Queries: by (server_host, username) (primary key).
-- Account removal deletes a user's row.
CREATE TABLE vcards (
    server_host  NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    username     NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    vcard        NVARCHAR(MAX) NOT NULL,
    CONSTRAINT vcards_pk PRIMARY KEY NONCLUSTERED (server_host, username)
);

-- Private XML storage (XEP-0049): one element per user and namespace, the
-- serialized element (with its xmlns) in data.
-- Queries: by (server_host, username, namespace) (primary key).
-- Account removal deletes a user's rows (primary key prefix).
CREATE TABLE private_storage (
    server_host  NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    username     NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    namespace    NVARCHAR(384) COLLATE Latin1_General_100_BIN2 NOT NULL,
    data         NVARCHAR(MAX) NOT NULL,
    CONSTRAINT private_storage_pk PRIMARY KEY NONCLUSTERED (server_host, username, namespace)
);

-- Last activity (XEP-0012): when the user's last session closed (unix
-- seconds) and the status text of the last unavailable presence it sent
-- ('' when none).
-- Queries: by (server_host, username) (primary key).
-- Account removal deletes a user's row.
CREATE TABLE last_activity (
    server_host  NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    username     NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    seconds      BIGINT NOT NULL,
    status       NVARCHAR(MAX) NOT NULL DEFAULT '',
    CONSTRAINT last_activity_pk PRIMARY KEY NONCLUSTERED (server_host, username)
);

-- Blocking command (XEP-0191): the JIDs a user blocks, one row each (a
-- full JID, a bare JID, a domain or domain/resource, normalised).
-- Queries: a user's list, by (server_host, username) (primary key prefix);
-- one row by the whole key.
-- Account removal deletes a user's rows.
CREATE TABLE blocklist (
    server_host  NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    username     NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    jid          NVARCHAR(384) COLLATE Latin1_General_100_BIN2 NOT NULL,
    CONSTRAINT blocklist_pk PRIMARY KEY NONCLUSTERED (server_host, username, jid)
);

-- Privacy lists (XEP-0016): a user's named lists (is_default 1 on at most
-- one of them) and their rules.  A rule: item_order (unique in its list,
-- rules apply in ascending order), item_type 'all' (matches everyone; then
-- item_value is ''), 'jid', 'group' or 'subscription' with item_value the
-- JID / roster group / 'both'|'to'|'from'|'none', action 'allow' or 'deny',
-- stanzas a bit set of what the rule applies to (1 message, 2 iq,
-- 4 presence-in, 8 presence-out; 0 every stanza).  List names are at most
-- 255 characters here (they are part of the keys).
-- Queries: a user's lists and items by (server_host, username) (primary key
-- prefixes); one list's items by (server_host, username, list_name).
-- Account removal deletes a user's rows.
CREATE TABLE privacy_lists (
    server_host  NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    username     NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    name         NVARCHAR(255) COLLATE Latin1_General_100_BIN2 NOT NULL,
    is_default   SMALLINT NOT NULL DEFAULT 0,
    CONSTRAINT privacy_lists_pk PRIMARY KEY NONCLUSTERED (server_host, username, name)
);

CREATE TABLE privacy_items (
    server_host  NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    username     NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    list_name    NVARCHAR(255) COLLATE Latin1_General_100_BIN2 NOT NULL,
    item_order   BIGINT NOT NULL,
    item_type    NVARCHAR(16) NOT NULL,
    item_value   NVARCHAR(3072) NOT NULL DEFAULT '',
    action       NVARCHAR(8) NOT NULL,
    stanzas      INT NOT NULL DEFAULT 0,
    CONSTRAINT privacy_items_pk PRIMARY KEY NONCLUSTERED (server_host, username, list_name, item_order)
);

-- Shared roster groups: groups an administrator defines per host, whose
-- members see each other in their rosters without subscribing.
--   name: the group's key on its host; label: the roster group name clients
--   show ('' means name); description: free text for administrators.
-- Queries: every group of a host (primary key prefix), one group (primary key).
CREATE TABLE sr_groups (
    server_host  NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    name         NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    label        NVARCHAR(255) NOT NULL DEFAULT '',
    description  NVARCHAR(1024) NOT NULL DEFAULT '',
    CONSTRAINT sr_groups_pk PRIMARY KEY NONCLUSTERED (server_host, name)
);

-- The groups whose members a group's members see ("displayed groups"); a
-- group without rows here shows its own members.  displayed names a group
-- of the same host (it may not exist yet: then it shows nothing).
-- Queries: by (server_host, grp) (primary key prefix); every row of a host.
-- Deleting a group deletes its rows (parleyd does it, in one transaction).
CREATE TABLE sr_displayed (
    server_host  NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    grp          NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    displayed    NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    CONSTRAINT sr_displayed_pk PRIMARY KEY NONCLUSTERED (server_host, grp, displayed)
);

-- Members of shared roster groups: a prepared bare JID of the host, or
-- '@all@' (every registered user of the host) or '@online@' (every user
-- with a session).
-- Queries: a group's members (primary key prefix); the groups of a member
-- (sr_members_member); account removal deletes the user's rows by member.
CREATE TABLE sr_members (
    server_host  NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    grp          NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    member       NVARCHAR(384) COLLATE Latin1_General_100_BIN2 NOT NULL,
    CONSTRAINT sr_members_pk PRIMARY KEY NONCLUSTERED (server_host, grp, member)
);
CREATE INDEX sr_members_member ON sr_members (server_host, member);

-- The user directory's index of the vCards (XEP-0055 search): one row per
-- stored vCard, written with it in the same transaction.  Each searchable
-- field is kept as the user wrote it (shown in results) and folded to lower
-- case (l* columns, binary collation, compared by searches); '' when the
-- vCard has none.
--   listed: 1 when the vCard holds <CLASS><PUBLIC/></CLASS>, the user's
--   consent to be found when the directory lists only consenting users.
-- Queries: a field equal to a value or within a prefix range, per host
-- (vcard_search_<field>); by account name (primary key).
-- Account removal deletes a user's row.
CREATE TABLE vcard_search (
    server_host  NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    username     NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    fn           NVARCHAR(255) NOT NULL DEFAULT '',
    lfn          NVARCHAR(255) COLLATE Latin1_General_100_BIN2 NOT NULL DEFAULT '',
    given        NVARCHAR(255) NOT NULL DEFAULT '',
    lgiven       NVARCHAR(255) COLLATE Latin1_General_100_BIN2 NOT NULL DEFAULT '',
    family       NVARCHAR(255) NOT NULL DEFAULT '',
    lfamily      NVARCHAR(255) COLLATE Latin1_General_100_BIN2 NOT NULL DEFAULT '',
    nickname     NVARCHAR(255) NOT NULL DEFAULT '',
    lnickname    NVARCHAR(255) COLLATE Latin1_General_100_BIN2 NOT NULL DEFAULT '',
    email        NVARCHAR(255) NOT NULL DEFAULT '',
    lemail       NVARCHAR(255) COLLATE Latin1_General_100_BIN2 NOT NULL DEFAULT '',
    locality     NVARCHAR(255) NOT NULL DEFAULT '',
    llocality    NVARCHAR(255) COLLATE Latin1_General_100_BIN2 NOT NULL DEFAULT '',
    orgname      NVARCHAR(255) NOT NULL DEFAULT '',
    lorgname     NVARCHAR(255) COLLATE Latin1_General_100_BIN2 NOT NULL DEFAULT '',
    listed       SMALLINT NOT NULL DEFAULT 0,
    CONSTRAINT vcard_search_pk PRIMARY KEY NONCLUSTERED (server_host, username)
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
    server_host   NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    service       NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    name          NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    config        NVARCHAR(MAX) NOT NULL,
    subject       NVARCHAR(MAX) NOT NULL,
    subject_nick  NVARCHAR(255) NOT NULL,
    created_at    BIGINT NOT NULL,
    CONSTRAINT muc_room_pk PRIMARY KEY NONCLUSTERED (service, name)
);

-- Affiliations with the persistent rooms: one row per room and JID.
--   jid: a bare JID or a domain; affiliation: 'owner', 'admin', 'member'
--   or 'outcast'; reason: '' when none.
-- Queries: every row of a service (primary key prefix) when it starts; a
-- room's rows (primary key prefix) are replaced when the room is stored
-- and deleted with it.
CREATE TABLE muc_affiliation (
    server_host  NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    service      NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    room         NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    jid          NVARCHAR(384) COLLATE Latin1_General_100_BIN2 NOT NULL,
    affiliation  NVARCHAR(16) NOT NULL,
    reason       NVARCHAR(MAX) NOT NULL,
    CONSTRAINT muc_affiliation_pk PRIMARY KEY NONCLUSTERED (service, room, jid)
);

-- Nicks registered with a MUC service (XEP-0045 section 7.10): one per
-- bare JID, unique within the service.
-- Queries: every row of a service (primary key prefix) when it starts; by
-- jid (primary key) and by nick (muc_registered_nick) on registration.
CREATE TABLE muc_registered (
    server_host  NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    service      NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    jid          NVARCHAR(384) COLLATE Latin1_General_100_BIN2 NOT NULL,
    nick         NVARCHAR(255) COLLATE Latin1_General_100_BIN2 NOT NULL,
    CONSTRAINT muc_registered_pk PRIMARY KEY NONCLUSTERED (service, jid),
    CONSTRAINT muc_registered_nick UNIQUE NONCLUSTERED (service, nick)
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
    server_host  NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    owner        NVARCHAR(384) COLLATE Latin1_General_100_BIN2 NOT NULL,
    node         NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    config       NVARCHAR(MAX) NOT NULL,
    created_at   BIGINT NOT NULL,
    CONSTRAINT pubsub_node_pk PRIMARY KEY NONCLUSTERED (owner, node)
);

-- Affiliations with those nodes: one row per node and JID.
--   pos: the row's place in the node's list (0, 1, ...: the list is
--   replaced as a whole, and holds one row per jid); jid: a bare JID;
--   affiliation: 'owner', 'publisher', 'publish-only', 'member' or
--   'outcast'.
-- Queries: every row of an owner (primary key prefix) when it is loaded; a
-- node's rows (primary key prefix) are replaced when the node is stored and
-- deleted with it.
-- The key is (owner, node, pos), not jid: owner, node and a 384-character
-- jid would not fit in an index (see Key lengths above).
CREATE TABLE pubsub_affiliation (
    server_host  NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    owner        NVARCHAR(384) COLLATE Latin1_General_100_BIN2 NOT NULL,
    node         NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    pos          INT NOT NULL,
    jid          NVARCHAR(384) COLLATE Latin1_General_100_BIN2 NOT NULL,
    affiliation  NVARCHAR(16) NOT NULL,
    CONSTRAINT pubsub_affiliation_pk PRIMARY KEY NONCLUSTERED (owner, node, pos)
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
    server_host  NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    owner        NVARCHAR(384) COLLATE Latin1_General_100_BIN2 NOT NULL,
    node         NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    subid        NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    jid          NVARCHAR(3072) NOT NULL,
    state        NVARCHAR(16) NOT NULL,
    options      NVARCHAR(MAX) NOT NULL,
    CONSTRAINT pubsub_subscription_pk PRIMARY KEY NONCLUSTERED (owner, node, subid)
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
    server_host   NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    owner         NVARCHAR(384) COLLATE Latin1_General_100_BIN2 NOT NULL,
    node          NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    item_id       NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    publisher     NVARCHAR(3072) NOT NULL,
    published_at  BIGINT NOT NULL,
    seq           BIGINT NOT NULL,
    payload       NVARCHAR(MAX) NOT NULL,
    CONSTRAINT pubsub_item_pk PRIMARY KEY NONCLUSTERED (owner, node, item_id)
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
-- after/before: the primary key in id order, forwards or backwards, with
-- OFFSET 0 ROWS FETCH NEXT n ROWS ONLY) or by ids (the primary key);
-- text search is a case-insensitive substring, LOWER(body) LIKE (no
-- index: it reads the owner's rows); deleting an owner's rows (primary
-- key prefix); retention: DELETE TOP (n) of the rows of a host older than
-- an id (index archive_expire).
-- The 'with' index is (owner, peer, id), without server_host (an owner
-- belongs to one host), as in the other schemas.
CREATE TABLE archive (
    server_host  NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    owner        NVARCHAR(384) COLLATE Latin1_General_100_BIN2 NOT NULL,
    id           BIGINT NOT NULL,
    peer         NVARCHAR(384) COLLATE Latin1_General_100_BIN2 NOT NULL,
    resource     NVARCHAR(1023) NOT NULL,
    outgoing     SMALLINT NOT NULL,
    body         NVARCHAR(MAX) NULL,
    stanza       NVARCHAR(MAX) NOT NULL,
    CONSTRAINT archive_pk PRIMARY KEY NONCLUSTERED (server_host, owner, id)
);
CREATE INDEX archive_with ON archive (owner, peer, id);
CREATE INDEX archive_expire ON archive (server_host, id);

-- Archiving preferences (XEP-0313 section 6) of an owner.
--   def: the default, 'always', 'never' or 'roster'.
-- Queries: one owner's row (primary key), read, replaced (delete and
-- insert, with its JIDs, in one transaction) and deleted with the account.
CREATE TABLE archive_prefs (
    server_host  NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    owner        NVARCHAR(384) COLLATE Latin1_General_100_BIN2 NOT NULL,
    def          NVARCHAR(16) NOT NULL,
    CONSTRAINT archive_prefs_pk PRIMARY KEY NONCLUSTERED (server_host, owner)
);

-- The JIDs of those preferences: always 1, the JID's messages are always
-- archived; 0, never.
-- Queries: one owner's rows (primary key prefix), with its preferences.
-- The key is (owner, jid), as in the MySQL schema.
CREATE TABLE archive_prefs_jid (
    server_host  NVARCHAR(191) COLLATE Latin1_General_100_BIN2 NOT NULL,
    owner        NVARCHAR(384) COLLATE Latin1_General_100_BIN2 NOT NULL,
    jid          NVARCHAR(384) COLLATE Latin1_General_100_BIN2 NOT NULL,
    always       SMALLINT NOT NULL,
    CONSTRAINT archive_prefs_jid_pk PRIMARY KEY NONCLUSTERED (owner, jid)
);
