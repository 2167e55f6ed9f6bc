-- Parley schema for MySQL (8.0 and later) and MariaDB (10.3 and later),
-- schema version 15.
--
-- A DBA creates the database and applies this file once, with the
-- database's own client and a user that may create tables:
--     mysql --default-character-set=utf8mb4 xmpp < mysql.sql
-- (mariadb on MariaDB).  parleyd never creates or alters tables on these
-- servers: at start it checks schema_version and refuses to start, naming
-- the scripts of migrations/mysql/ to apply, when the version is not the
-- one it was built for.  Parley's own user needs only
--     GRANT SELECT, INSERT, UPDATE, DELETE ON xmpp.* TO 'parley'@'%';
--
-- Conventions, the same in every dialect's file:
--   * Every table has server_host, the virtual host (a prepared domain) the
--     row belongs to: one database serves many hosts.
--   * username is the local part of the JID after nodeprep; jid columns hold
--     prepared bare JIDs.  Compare them byte for byte: the columns use the
--     binary collation utf8mb4_bin (no case or accent folding in SQL:
--     Parley prepares them before they reach the database).  Note that
--     utf8mb4_bin ignores trailing spaces in comparisons (PAD SPACE).
--   * Flags are TINYINT 0/1; times are BIGINT unix seconds (UTC).
--   * parleyd only runs SELECT, INSERT, UPDATE and DELETE.
--   * Each query's index is noted where the table is defined.
-- Storage engine InnoDB (transactions, row locks) and character set utf8mb4
-- (all of Unicode; MySQL's "utf8" stores 3 bytes at most) everywhere.
--
-- Key lengths: an InnoDB index holds at most 3072 bytes (row format
-- DYNAMIC, the default of both servers) and a utf8mb4 character counts as 4
-- bytes, so indexed columns are bounded: server_host 191 characters,
-- username 191, jid and namespace 384 (191 + 191 + 384 = 766 characters =
-- 3064 bytes).  Longer values are refused with an error (parleyd sets
-- sql_mode STRICT_ALL_TABLES, so nothing is cut silently).  Domain names
-- are at most 253 bytes in DNS; a longer JID in a roster or block list is
-- rare enough that refusing it is the right trade for a full index.
-- Publish-subscribe keys: owner 384 (a bare JID), node names, item ids and
-- subscription ids 191 (384 + 191 + 191 = 766).
--
-- parleyd sets per connection: character set utf8mb4, sql_mode
-- STRICT_ALL_TABLES, the statement time limit and innodb_lock_wait_timeout
-- from the storage timeout.

-- One row: the version of this schema.  Migrations update it.
CREATE TABLE schema_version (
    version INT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
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
    server_host        VARCHAR(191)  NOT NULL,
    username           VARCHAR(191)  NOT NULL,
    created_at         BIGINT        NOT NULL,
    sha1_salt          VARCHAR(128),
    sha1_iterations    INT,
    sha1_stored_key    VARCHAR(128),
    sha1_server_key    VARCHAR(128),
    sha256_salt        VARCHAR(128),
    sha256_iterations  INT,
    sha256_stored_key  VARCHAR(128),
    sha256_server_key  VARCHAR(128),
    password           TEXT,
    sha512_salt        VARCHAR(128),
    sha512_iterations  INT,
    sha512_stored_key  VARCHAR(128),
    sha512_server_key  VARCHAR(128),
    PRIMARY KEY (server_host, username)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;

-- FAST tokens (XEP-0484) of accounts: the random seed each token is
-- derived from (base64; the derivation key lives outside the database,
-- see the admin guide), never the token; the client (ua_id) it was issued to, its SASL
-- mechanism, creation and expiry (unix time) and the highest 'count' a
-- login used.  Deleted with the account; looked up by the primary key,
-- listed and revoked per user by its prefix (server_host, username).
CREATE TABLE fast_tokens (
    server_host  VARCHAR(191)  NOT NULL,
    username     VARCHAR(191)  NOT NULL,
    token_seed   VARCHAR(64)   NOT NULL,
    ua_id        VARCHAR(191)  NOT NULL,
    mechanism    VARCHAR(64)   NOT NULL,
    created_at   BIGINT        NOT NULL,
    expires_at   BIGINT        NOT NULL,
    last_count   BIGINT        NOT NULL,
    PRIMARY KEY (server_host, username, token_seed)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;

-- SCRAM keys kept for users of the ldap, pam and external auth methods
-- (auth.scram_cache_ttl): derived from a password that method accepted
-- in a PLAIN login, never the password itself, and used until expires_at
-- (unix time), then deleted.  The same four columns per hash as users;
-- these rows are no accounts.  Deleted when the method later refuses the
-- password or the user, when the password is set or the account removed.
-- Queries: by (server_host, username) (primary key); expiry by server_host
-- (primary key prefix).
CREATE TABLE scram_cache (
    server_host        VARCHAR(191) NOT NULL,
    username           VARCHAR(191) NOT NULL,
    expires_at         BIGINT NOT NULL,
    sha1_salt          VARCHAR(128) NOT NULL,
    sha1_iterations    INT NOT NULL,
    sha1_stored_key    VARCHAR(128) NOT NULL,
    sha1_server_key    VARCHAR(128) NOT NULL,
    sha256_salt        VARCHAR(128) NOT NULL,
    sha256_iterations  INT NOT NULL,
    sha256_stored_key  VARCHAR(128) NOT NULL,
    sha256_server_key  VARCHAR(128) NOT NULL,
    sha512_salt        VARCHAR(128) NOT NULL,
    sha512_iterations  INT NOT NULL,
    sha512_stored_key  VARCHAR(128) NOT NULL,
    sha512_server_key  VARCHAR(128) NOT NULL,
    PRIMARY KEY (server_host, username)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;

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
    server_host   VARCHAR(191)  NOT NULL,
    username      VARCHAR(191)  NOT NULL,
    jid           VARCHAR(384)  NOT NULL,
    name          TEXT,
    subscription  CHAR(1)       NOT NULL DEFAULT 'N',
    ask_out       TINYINT       NOT NULL DEFAULT 0,
    ask_in        TINYINT       NOT NULL DEFAULT 0,
    approved      TINYINT       NOT NULL DEFAULT 0,
    ask_in_stanza MEDIUMTEXT    NULL,
    in_roster     TINYINT       NOT NULL DEFAULT 1,
    PRIMARY KEY (server_host, username, jid),
    CONSTRAINT roster_items_subscription CHECK (subscription IN ('N', 'T', 'F', 'B')),
    CONSTRAINT roster_items_flags CHECK (ask_out IN (0, 1) AND ask_in IN (0, 1) AND approved IN (0, 1)),
    CONSTRAINT roster_items_in_roster CHECK (in_roster IN (0, 1))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;

-- The groups of a roster item, one row per group name.  A group name is
-- not part of an index (the key would pass InnoDB's limit): rows are found
-- by their item, and Parley writes each name of an item once.
-- Queries: all groups of a user (roster_groups_item prefix), the groups of
-- one item (roster_groups_item).  Deleted with their item by Parley (no
-- foreign key: the item's key is already the index's prefix).
CREATE TABLE roster_groups (
    id           BIGINT        NOT NULL AUTO_INCREMENT,
    server_host  VARCHAR(191)  NOT NULL,
    username     VARCHAR(191)  NOT NULL,
    jid          VARCHAR(384)  NOT NULL,
    grp          TEXT          NOT NULL,
    PRIMARY KEY (id),
    KEY roster_groups_item (server_host, username, jid)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;

-- Roster versioning (RFC 6121 section 2.6): a counter per user, incremented
-- by every change of the user's roster.  No row means version 0.
-- Queries: by (server_host, username) (primary key).
CREATE TABLE roster_version (
    server_host  VARCHAR(191)  NOT NULL,
    username     VARCHAR(191)  NOT NULL,
    version      BIGINT        NOT NULL,
    PRIMARY KEY (server_host, username)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;

-- Offline messages (XEP-0160): messages that arrived for a user while none
-- of the user's resources could take them, delivered (oldest first) and
-- deleted when the user comes online.  seq orders them and is never used
-- twice, so "delete up to seq N" never reaches a message stored after the
-- read that saw N (InnoDB keeps the AUTO_INCREMENT counter across restarts
-- since MySQL 8.0 and MariaDB 10.2.4).
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
    seq          BIGINT        NOT NULL AUTO_INCREMENT,
    server_host  VARCHAR(191)  NOT NULL,
    username     VARCHAR(191)  NOT NULL,
    created_at   BIGINT        NOT NULL,
    from_jid     TEXT          NOT NULL,
    stanza       MEDIUMTEXT    NOT NULL,
    token        VARCHAR(64)   NULL,
    PRIMARY KEY (seq),
    KEY offline_messages_user (server_host, username, seq),
    UNIQUE KEY offline_messages_token (token)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;

-- vCards (XEP-0054): one per user, the serialized <vCard xmlns='vcard-temp'/>
-- element as the user last set it (its size is bounded by the vcard
-- module's max_size option; MEDIUMTEXT holds up to 16 MiB).
-- Queries: by (server_host, username) (primary key).
-- Account removal deletes a user's row.
CREATE TABLE vcards (
    server_host  VARCHAR(191)  NOT NULL,
    username     VARCHAR(191)  NOT NULL,
    vcard        MEDIUMTEXT    NOT NULL,
    PRIMARY KEY (server_host, username)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;

-- Private XML storage (XEP-0049): one element per user and namespace, the
-- serialized element (with its xmlns) in data.
-- Queries: by (server_host, username, namespace) (primary key).
-- Account removal deletes a user's rows (primary key prefix).
CREATE TABLE private_storage (
    server_host  VARCHAR(191)  NOT NULL,
    username     VARCHAR(191)  NOT NULL,
    namespace    VARCHAR(384)  NOT NULL,
    data         MEDIUMTEXT    NOT NULL,
    PRIMARY KEY (server_host, username, namespace)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;

-- Last activity (XEP-0012): when the user's last session closed (unix
-- seconds) and the status text of the last unavailable presence it sent
-- ('' when none).
-- Queries: by (server_host, username) (primary key).
-- Account removal deletes a user's row.
CREATE TABLE last_activity (
    server_host  VARCHAR(191)  NOT NULL,
    username     VARCHAR(191)  NOT NULL,
    seconds      BIGINT        NOT NULL,
    status       TEXT          NOT NULL,
    PRIMARY KEY (server_host, username)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;

-- Blocking command (XEP-0191): the JIDs a user blocks, one row each (a
-- full JID, a bare JID, a domain or domain/resource, normalised).
-- Queries: a user's list, by (server_host, username) (primary key prefix);
-- one row by the whole key.
-- Account removal deletes a user's rows.
CREATE TABLE blocklist (
    server_host  VARCHAR(191)  NOT NULL,
    username     VARCHAR(191)  NOT NULL,
    jid          VARCHAR(384)  NOT NULL,
    PRIMARY KEY (server_host, username, jid)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;

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
    server_host  VARCHAR(191)  NOT NULL,
    username     VARCHAR(191)  NOT NULL,
    name         VARCHAR(255)  NOT NULL,
    is_default   TINYINT       NOT NULL DEFAULT 0,
    PRIMARY KEY (server_host, username, name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;

CREATE TABLE privacy_items (
    server_host  VARCHAR(191)   NOT NULL,
    username     VARCHAR(191)   NOT NULL,
    list_name    VARCHAR(255)   NOT NULL,
    item_order   BIGINT         NOT NULL,
    item_type    VARCHAR(16)    NOT NULL,
    item_value   VARCHAR(3072)  NOT NULL DEFAULT '',
    action       VARCHAR(8)     NOT NULL,
    stanzas      INT            NOT NULL DEFAULT 0,
    PRIMARY KEY (server_host, username, list_name, item_order)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;

-- Shared roster groups: groups an administrator defines per host, whose
-- members see each other in their rosters without subscribing.
--   name: the group's key on its host; label: the roster group name clients
--   show ('' means name); description: free text for administrators.
-- Queries: every group of a host (primary key prefix), one group (primary key).
CREATE TABLE sr_groups (
    server_host  VARCHAR(191)   NOT NULL,
    name         VARCHAR(191)   NOT NULL,
    label        VARCHAR(255)   NOT NULL DEFAULT '',
    description  VARCHAR(1024)  NOT NULL DEFAULT '',
    PRIMARY KEY (server_host, name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;

-- The groups whose members a group's members see ("displayed groups"); a
-- group without rows here shows its own members.  displayed names a group
-- of the same host (it may not exist yet: then it shows nothing).
-- Queries: by (server_host, grp) (primary key prefix); every row of a host.
-- Deleting a group deletes its rows (parleyd does it, in one transaction).
CREATE TABLE sr_displayed (
    server_host  VARCHAR(191)  NOT NULL,
    grp          VARCHAR(191)  NOT NULL,
    displayed    VARCHAR(191)  NOT NULL,
    PRIMARY KEY (server_host, grp, displayed)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;

-- Members of shared roster groups: a prepared bare JID of the host, or
-- '@all@' (every registered user of the host) or '@online@' (every user
-- with a session).
-- Queries: a group's members (primary key prefix); the groups of a member
-- (sr_members_member); account removal deletes the user's rows by member.
CREATE TABLE sr_members (
    server_host  VARCHAR(191)  NOT NULL,
    grp          VARCHAR(191)  NOT NULL,
    member       VARCHAR(384)  NOT NULL,
    PRIMARY KEY (server_host, grp, member),
    KEY sr_members_member (server_host, member)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;

-- The user directory's index of the vCards (XEP-0055 search): one row per
-- stored vCard, written with it in the same transaction.  Each searchable
-- field is kept as the user wrote it (shown in results) and folded to lower
-- case (l* columns, compared by searches); '' when the vCard has none.
--   listed: 1 when the vCard holds <CLASS><PUBLIC/></CLASS>, the user's
--   consent to be found when the directory lists only consenting users.
-- Queries: a field equal to a value or within a prefix range, per host
-- (vcard_search_<field>); by account name (primary key).
-- Account removal deletes a user's row.
CREATE TABLE vcard_search (
    server_host  VARCHAR(191)  NOT NULL,
    username     VARCHAR(191)  NOT NULL,
    fn           VARCHAR(255)  NOT NULL DEFAULT '',
    lfn          VARCHAR(255)  NOT NULL DEFAULT '',
    given        VARCHAR(255)  NOT NULL DEFAULT '',
    lgiven       VARCHAR(255)  NOT NULL DEFAULT '',
    family       VARCHAR(255)  NOT NULL DEFAULT '',
    lfamily      VARCHAR(255)  NOT NULL DEFAULT '',
    nickname     VARCHAR(255)  NOT NULL DEFAULT '',
    lnickname    VARCHAR(255)  NOT NULL DEFAULT '',
    email        VARCHAR(255)  NOT NULL DEFAULT '',
    lemail       VARCHAR(255)  NOT NULL DEFAULT '',
    locality     VARCHAR(255)  NOT NULL DEFAULT '',
    llocality    VARCHAR(255)  NOT NULL DEFAULT '',
    orgname      VARCHAR(255)  NOT NULL DEFAULT '',
    lorgname     VARCHAR(255)  NOT NULL DEFAULT '',
    listed       TINYINT       NOT NULL DEFAULT 0,
    PRIMARY KEY (server_host, username),
    KEY vcard_search_fn (server_host, lfn),
    KEY vcard_search_given (server_host, lgiven),
    KEY vcard_search_family (server_host, lfamily),
    KEY vcard_search_nickname (server_host, lnickname),
    KEY vcard_search_email (server_host, lemail),
    KEY vcard_search_locality (server_host, llocality),
    KEY vcard_search_orgname (server_host, lorgname)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;

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
    server_host   VARCHAR(191)  NOT NULL,
    service       VARCHAR(191)  NOT NULL,
    name          VARCHAR(191)  NOT NULL,
    config        MEDIUMTEXT    NOT NULL,
    subject       TEXT          NOT NULL,
    subject_nick  VARCHAR(255)  NOT NULL,
    created_at    BIGINT        NOT NULL,
    PRIMARY KEY (service, name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;

-- Affiliations with the persistent rooms: one row per room and JID.
--   jid: a bare JID or a domain; affiliation: 'owner', 'admin', 'member'
--   or 'outcast'; reason: '' when none.
-- Queries: every row of a service (primary key prefix) when it starts; a
-- room's rows (primary key prefix) are replaced when the room is stored
-- and deleted with it.
CREATE TABLE muc_affiliation (
    server_host  VARCHAR(191)  NOT NULL,
    service      VARCHAR(191)  NOT NULL,
    room         VARCHAR(191)  NOT NULL,
    jid          VARCHAR(384)  NOT NULL,
    affiliation  VARCHAR(16)   NOT NULL,
    reason       TEXT          NOT NULL,
    PRIMARY KEY (service, room, jid)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;

-- Nicks registered with a MUC service (XEP-0045 section 7.10): one per
-- bare JID, unique within the service.
-- Queries: every row of a service (primary key prefix) when it starts; by
-- jid (primary key) and by nick (muc_registered_nick) on registration.
CREATE TABLE muc_registered (
    server_host  VARCHAR(191)  NOT NULL,
    service      VARCHAR(191)  NOT NULL,
    jid          VARCHAR(384)  NOT NULL,
    nick         VARCHAR(255)  NOT NULL,
    PRIMARY KEY (service, jid),
    UNIQUE KEY muc_registered_nick (service, nick)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;

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
    server_host  VARCHAR(191)  NOT NULL,
    owner        VARCHAR(384)  NOT NULL,
    node         VARCHAR(191)  NOT NULL,
    config       MEDIUMTEXT    NOT NULL,
    created_at   BIGINT        NOT NULL,
    PRIMARY KEY (owner, node)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;

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
    server_host  VARCHAR(191)  NOT NULL,
    owner        VARCHAR(384)  NOT NULL,
    node         VARCHAR(191)  NOT NULL,
    pos          INT           NOT NULL,
    jid          VARCHAR(384)  NOT NULL,
    affiliation  VARCHAR(16)   NOT NULL,
    PRIMARY KEY (owner, node, pos)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;

-- Subscriptions to those nodes: one row per subscription.
--   subid: the subscription's id, unique within the node; jid: the
--   subscriber, a full or bare JID; state: 'subscribed', 'pending' or
--   'unconfigured'; options: the subscription's options as the pubsub
--   module writes them ('' when none).
-- Queries: every row of an owner (primary key prefix) when it is loaded; a
-- node's rows (primary key prefix) are replaced when the node is stored and
-- deleted with it.
CREATE TABLE pubsub_subscription (
    server_host  VARCHAR(191)   NOT NULL,
    owner        VARCHAR(384)   NOT NULL,
    node         VARCHAR(191)   NOT NULL,
    subid        VARCHAR(191)   NOT NULL,
    jid          VARCHAR(3072)  NOT NULL,
    state        VARCHAR(16)    NOT NULL,
    options      MEDIUMTEXT     NOT NULL,
    PRIMARY KEY (owner, node, subid)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;

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
-- MEDIUMTEXT holds up to 16 MiB; the server's max_allowed_packet must be
-- larger than the largest item (MariaDB's default is 16 MiB).
CREATE TABLE pubsub_item (
    server_host   VARCHAR(191)   NOT NULL,
    owner         VARCHAR(384)   NOT NULL,
    node          VARCHAR(191)   NOT NULL,
    item_id       VARCHAR(191)   NOT NULL,
    publisher     VARCHAR(3072)  NOT NULL,
    published_at  BIGINT         NOT NULL,
    seq           BIGINT         NOT NULL,
    payload       MEDIUMTEXT     NOT NULL,
    PRIMARY KEY (owner, node, item_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;

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
-- ids (the primary key); full-text search with MATCH (body) AGAINST (...
-- IN BOOLEAN MODE), every word required (FULLTEXT index archive_fts;
-- words shorter than innodb_ft_min_token_size, 3 by default, and InnoDB's
-- stop words are not indexed); deleting an owner's rows (primary key
-- prefix); retention: DELETE ... ORDER BY id LIMIT n of the rows of a
-- host older than an id (index archive_expire).
-- Key lengths: owner and peer are 383 characters (a bare JID of a local
-- user: 191 + 1 + 191), so that (owner, peer, id) fits in an index
-- (766 characters and a BIGINT: 3072 bytes); server_host is left out of
-- that index (an owner belongs to one host).  body uses a case-insensitive
-- collation, for the full-text search.  MEDIUMTEXT holds up to 16 MiB.
CREATE TABLE archive (
    server_host  VARCHAR(191)  NOT NULL,
    owner        VARCHAR(383)  NOT NULL,
    id           BIGINT        NOT NULL,
    peer         VARCHAR(383)  NOT NULL,
    resource     VARCHAR(1023) NOT NULL,
    outgoing     TINYINT       NOT NULL,
    body         MEDIUMTEXT    COLLATE utf8mb4_unicode_ci NULL,
    stanza       MEDIUMTEXT    NOT NULL,
    PRIMARY KEY (server_host, owner, id),
    KEY archive_with (owner, peer, id),
    KEY archive_expire (server_host, id),
    FULLTEXT KEY archive_fts (body)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;

-- Archiving preferences (XEP-0313 section 6) of an owner.
--   def: the default, 'always', 'never' or 'roster'.
-- Queries: one owner's row (primary key), read, replaced (delete and
-- insert, with its JIDs, in one transaction) and deleted with the account.
CREATE TABLE archive_prefs (
    server_host  VARCHAR(191)  NOT NULL,
    owner        VARCHAR(383)  NOT NULL,
    def          VARCHAR(16)   NOT NULL,
    PRIMARY KEY (server_host, owner)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;

-- The JIDs of those preferences: always 1, the JID's messages are always
-- archived; 0, never.
-- Queries: one owner's rows (primary key prefix), with its preferences.
-- The key is (owner, jid): server_host, owner and jid would not fit.
CREATE TABLE archive_prefs_jid (
    server_host  VARCHAR(191)  NOT NULL,
    owner        VARCHAR(383)  NOT NULL,
    jid          VARCHAR(383)  NOT NULL,
    always       TINYINT       NOT NULL,
    PRIMARY KEY (owner, jid)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;
