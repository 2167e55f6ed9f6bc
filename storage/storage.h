/*
 * The storage interface: everything the server keeps for users, as typed
 * operations.  Every call has the form op(storage, args..., cb, ctx) and
 * returns a request handle, never NULL (even an immediate failure such as a
 * full queue is delivered later and can be cancelled); cb runs later on the
 * loop thread, never inside the call.
 * storage_cancel() guarantees cb will not run.  Results say why
 * (STORAGE_TEMPFAIL is never reported as STORAGE_NOT_FOUND).  Operations for
 * one user (host+user) keep their order.
 *
 * Each area (accounts, roster, offline, ...) is a typed interface a
 * backend implements (storage/<area>-store.h, struct <area>_store_vfuncs);
 * the functions here are their fronts.  The SQL implementation
 * (sql-store.c, sql-<area>.c) runs its driver on a worker group.
 * Everything here is called on the loop thread.
 */
#ifndef PARLEY_STORAGE_H
#define PARLEY_STORAGE_H

#include <ev.h>
#include "storage/storage-config.h"
#include "lib/scram.h"
#include "storage/vcard-index.h"

enum storage_result {
	STORAGE_OK,
	STORAGE_NOT_FOUND, /* no such user / item */
	STORAGE_EXISTS,    /* create of something that exists */
	STORAGE_TEMPFAIL,  /* backend down, busy, queue full, timeout: try later */
	STORAGE_ERROR,     /* permanent failure (bad schema, constraint) */
	STORAGE_FULL,      /* a per-user quota is reached (offline messages) */
};
const char *storage_result_str(enum storage_result r);

/* The feature areas of storage (one storage/<area>-store.h each).  A store
 * may hold only some of them (the LDAP stores hold vcard, search or srg);
 * an operation of an area the store does not hold fails with STORAGE_ERROR
 * (logged), so callers check storage_has_area when they pick a store. */
enum storage_area {
	STORAGE_AREA_ACCOUNT,
	STORAGE_AREA_ROSTER,
	STORAGE_AREA_OFFLINE,
	STORAGE_AREA_VCARD,
	STORAGE_AREA_PRIVATE,
	STORAGE_AREA_PRIVACY, /* privacy lists and blocking */
	STORAGE_AREA_LAST,
	STORAGE_AREA_SRG,    /* shared roster groups */
	STORAGE_AREA_SEARCH, /* the user directory */
	STORAGE_AREA_MUC,    /* persistent multi-user chat rooms */
	STORAGE_AREA_PUBSUB, /* publish-subscribe nodes and items, PEP */
	STORAGE_AREA_MAM,    /* message archives (users and rooms) */
	STORAGE_AREA_COUNT
};
/* "vcard", "srg", ... */
const char *storage_area_str(enum storage_area a);

struct storage;
struct storage_req;

/* Open a backend instance described by cfg (schema version checked).
 * Returns -1 with a malloc'd *error_r when it cannot start. */
int storage_open(struct ev_loop *loop, const struct storage_config *cfg, struct storage **st_r,
                 char **error_r);
/* Finish pending work (pending callbacks run before it returns; requests
 * made meanwhile get STORAGE_TEMPFAIL) and close. */
void storage_close(struct storage **st);
void storage_cancel(struct storage_req *req);
const char *storage_describe(const struct storage *st); /* "sqlite:/path" */
/* Requests whose callback has not run yet (queued, running, or waiting
 * on the loop): a stop waits for them while it can. */
unsigned storage_pending(const struct storage *st);
/* Whether st implements area a. */
bool storage_has_area(const struct storage *st, enum storage_area a);
/* Append the store's live state to out, one line ("up: 2 of 2 connections
 * open" / "DOWN for 12 s: <error>; next attempt in 4 s"); "" when the
 * backend has nothing to say. */
void storage_status(struct storage *st, struct buf *out);

/* ---- accounts ------------------------------------------------------------ */
struct storage_account {
	bool has_sha1, has_sha256, has_sha512;
	struct scram_credentials sha1, sha256, sha512; /* sha512: none for accounts older than schema 11 */
	char *plain;     /* clear password, only where the operator kept them; else NULL */
	int64_t created; /* unix time */
};
void storage_account_clear(struct storage_account *a); /* wipes secrets */

typedef void storage_done_cb(enum storage_result res, void *ctx);
typedef void storage_account_cb(enum storage_result res, const struct storage_account *acc, void *ctx);
typedef void storage_list_cb(enum storage_result res, const struct strlist *names, void *ctx);
typedef void storage_count_cb(enum storage_result res, uint64_t count, void *ctx);

struct storage_req *storage_account_get(struct storage *st, const char *host, const char *user,
                                        storage_account_cb *cb, void *ctx);
/* STORAGE_EXISTS if the account exists.  (A job that a database store
 * runs again after the connection broke under its first try counts an
 * account holding its own salts and keys as created by that try:
 * storage_account_is_same.) */
struct storage_req *storage_account_create(struct storage *st, const char *host, const char *user,
                                           const struct storage_account *acc, storage_done_cb *cb, void *ctx);
/* Replace credentials; STORAGE_NOT_FOUND if there is no such account. */
struct storage_req *storage_account_update(struct storage *st, const char *host, const char *user,
                                           const struct storage_account *acc, storage_done_cb *cb, void *ctx);
/* Add the credentials of acc (each hash with has_* set) that the account
 * lacks: a hash the account already has keys for keeps them, so a password
 * set meanwhile is never overwritten by credentials derived from the old
 * one; acc's plain password and created time are ignored.
 * STORAGE_NOT_FOUND if there is no such account. */
struct storage_req *storage_account_add_credentials(struct storage *st, const char *host, const char *user,
                                                    const struct storage_account *acc, storage_done_cb *cb,
                                                    void *ctx);
/* SCRAM keys kept for a while for a user of another auth method (ldap,
 * pam, external: auth.scram_cache_ttl), apart from the accounts: acc's
 * credentials of all three hashes, valid until expires (unix time).  Get
 * answers STORAGE_NOT_FOUND when there are none or they expired (an
 * expired set is deleted then); a set that expires later than now + ttl
 * was written under a longer TTL than the host's current one and counts
 * as expired too (ttl <= 0: no such bound); set replaces what the user had; delete
 * answers STORAGE_NOT_FOUND when there was nothing; expire deletes every
 * set of host that expired at or before `before` and gives how many.
 * Removing an account removes them too. */
struct storage_req *storage_scram_cache_get(struct storage *st, const char *host, const char *user,
                                            int64_t ttl, storage_account_cb *cb, void *ctx);
struct storage_req *storage_scram_cache_set(struct storage *st, const char *host, const char *user,
                                            const struct storage_account *acc, int64_t expires,
                                            storage_done_cb *cb, void *ctx);
struct storage_req *storage_scram_cache_delete(struct storage *st, const char *host, const char *user,
                                               storage_done_cb *cb, void *ctx);
struct storage_req *storage_scram_cache_expire(struct storage *st, const char *host, int64_t before,
                                               storage_count_cb *cb, void *ctx);
/* Remove the account and every piece of the user's data, in one transaction. */
struct storage_req *storage_account_remove(struct storage *st, const char *host, const char *user,
                                           storage_done_cb *cb, void *ctx);
struct storage_req *storage_account_list(struct storage *st, const char *host, storage_list_cb *cb,
                                         void *ctx);
/* One page of the accounts of host: at most limit names (limit >= 1)
 * after the name after (NULL or "": from the first) and containing match
 * (NULL or "": any; an SQL database compares as its collation does), in
 * the store's order (an SQL database's collation), so the last name of a
 * page is where the next one starts.  A page shorter than limit is the
 * last one. */
struct storage_req *storage_account_list_page(struct storage *st, const char *host, const char *after,
                                              const char *match, unsigned limit, storage_list_cb *cb,
                                              void *ctx);
struct storage_req *storage_account_count(struct storage *st, const char *host, storage_count_cb *cb,
                                          void *ctx);

/* FAST tokens (XEP-0484) of an account, kept by their seed: the token is
 * derived from the seed with a key the server keeps outside the store
 * (server/fast.c), so the store never holds a token; a user may hold
 * several (one per client, and a client's previous one until the new one
 * is used).  Removing the account removes them. */
#define STORAGE_FAST_SEED_LEN 32
struct storage_fast_token {
	char *ua_id;                               /* the client's user-agent id */
	unsigned char seed[STORAGE_FAST_SEED_LEN]; /* random; the token derives from it */
	char *mechanism;                           /* "HT-SHA-256-NONE", ... */
	int64_t created, expires;                  /* unix time */
	uint64_t count;                            /* 1 + the highest XEP-0484 count used; 0: none */
};
typedef void storage_fast_token_cb(enum storage_result res, const struct storage_fast_token *t, void *ctx);
typedef void storage_fast_tokens_cb(enum storage_result res, const struct storage_fast_token *t, size_t n,
                                    void *ctx);
/* Store a token, replacing the one with the same seed. */
struct storage_req *storage_fast_token_set(struct storage *st, const char *host, const char *user,
                                           const struct storage_fast_token *t, storage_done_cb *cb,
                                           void *ctx);
/* The token with this seed; STORAGE_NOT_FOUND when there is none. */
struct storage_req *storage_fast_token_get(struct storage *st, const char *host, const char *user,
                                           const unsigned char seed[STORAGE_FAST_SEED_LEN],
                                           storage_fast_token_cb *cb, void *ctx);
/* Delete the tokens of one client (ua_id), or all of the user's (ua_id
 * NULL); with seed (STORAGE_FAST_SEED_LEN bytes) only the token with that
 * seed among them.  STORAGE_NOT_FOUND when there were none. */
struct storage_req *storage_fast_token_delete(struct storage *st, const char *host, const char *user,
                                              const char *ua_id, const unsigned char *seed,
                                              storage_done_cb *cb, void *ctx);
/* Delete the tokens of every user of host that expired at or before
 * `before` (unix time); cb gets how many. */
struct storage_req *storage_fast_token_expire(struct storage *st, const char *host, int64_t before,
                                              storage_count_cb *cb, void *ctx);
/* The user's tokens, by ua_id then creation time. */
struct storage_req *storage_fast_token_list(struct storage *st, const char *host, const char *user,
                                            storage_fast_tokens_cb *cb, void *ctx);
/* The same, and in the same job whether the store holds the user's
 * account (as storage_account_get would find it): what a token login
 * needs when the host's accounts live in this store, in one trip to a
 * worker instead of two. */
typedef void storage_fast_login_cb(enum storage_result res, const struct storage_fast_token *t, size_t n,
                                   bool account_exists, void *ctx);
struct storage_req *storage_fast_token_list_login(struct storage *st, const char *host, const char *user,
                                                  storage_fast_login_cb *cb, void *ctx);

/* ---- roster --------------------------------------------------------------- */
enum roster_subscription { SUB_NONE, SUB_TO, SUB_FROM, SUB_BOTH, SUB_REMOVE };
const char *roster_subscription_str(enum roster_subscription s);

struct roster_item {
	char *jid;  /* bare contact JID (prepared) */
	char *name; /* NULL when none */
	enum roster_subscription subscription;
	bool ask_out;  /* we asked for their presence (ask='subscribe') */
	bool ask_in;   /* they asked for ours and we have not answered */
	bool approved; /* pre-approved (RFC 6121 §3.4) */
	struct strlist groups;
	/* With ask_in: what the request said, for its redelivery: a serialized
	 * <presence/> (default namespace jabber:client, no attributes) with
	 * the request's <status/> and XEP-0172 <nick/> children; NULL when it
	 * had none.  Stored only with ask_in (NULL otherwise). */
	char *ask_in_stanza;
	/* The user has the item in the roster (a roster set, a subscription
	 * either way, a request or approval of the user's, a name, a group).
	 * false only for an item that is nothing but the contact's waiting
	 * request (roster_item_pending_only); once true it stays true until
	 * the item is removed. */
	bool in_roster;
};
void roster_item_clear(struct roster_item *it);
/* True for an item that only records a waiting inbound subscription
 * request (RFC 6121 §3.1.3): not in_roster, ask_in, subscription none,
 * nothing asked or approved by the user, no name, no group.  It is kept so
 * that the request survives, but it is not part of the roster the user
 * sees (gets, pushes, max_items, exports). */
bool roster_item_pending_only(const struct roster_item *it);

typedef void storage_roster_cb(enum storage_result res, const struct roster_item *items, size_t count,
                               uint64_t version, void *ctx);
/* All items and the roster version (0 for an empty, never changed roster). */
struct storage_req *storage_roster_get(struct storage *st, const char *host, const char *user,
                                       storage_roster_cb *cb, void *ctx);
/* Insert or replace one item (its ask_in_stanza only with ask_in; its
 * in_roster set unless the item is roster_item_pending_only); the roster
 * version is incremented. */
struct storage_req *storage_roster_set(struct storage *st, const char *host, const char *user,
                                       const struct roster_item *item, storage_done_cb *cb, void *ctx);
/* Remove one item (STORAGE_NOT_FOUND if absent); the version is incremented. */
struct storage_req *storage_roster_remove(struct storage *st, const char *host, const char *user,
                                          const char *jid, storage_done_cb *cb, void *ctx);

/* ---- offline messages (XEP-0160) -------------------------------------------- */
/* A user's queue of messages that arrived while no resource could take
 * them, oldest first.  seq grows with every message stored (in the whole
 * store, never reused), so "everything up to seq" names a prefix of one
 * user's queue. */
struct offline_message {
	int64_t seq;
	const char *stanza; /* the serialized <message/>, default namespace jabber:client */
	int64_t created;    /* unix time it was stored */
};

typedef void storage_offline_cb(enum storage_result res, const struct offline_message *msgs, size_t count,
                                void *ctx);
/* Append a message to user's queue, in one transaction, durably (the
 * message survives a crash once cb reports STORAGE_OK).  from_jid is the
 * sender (kept for administration).  STORAGE_NOT_FOUND: the host has no
 * such account (users table); STORAGE_FULL: the queue already holds
 * max_per_user messages (0: no limit); nothing is stored then. */
struct storage_req *storage_offline_store(struct storage *st, const char *host, const char *user,
                                          const char *from_jid, const char *stanza_xml, unsigned max_per_user,
                                          storage_done_cb *cb, void *ctx);
/* Every message of user's queue, oldest first (an empty list when there is
 * none, with STORAGE_OK).  The array and its strings are valid during cb. */
struct storage_req *storage_offline_get(struct storage *st, const char *host, const char *user,
                                        storage_offline_cb *cb, void *ctx);
/* One page of user's queue, for administration: at most limit (> 0)
 * messages with seq > after (0: from the first), oldest first; total is
 * how many messages the queue holds, more how many follow the last one
 * given (0 when the page reaches the end).  The array and its strings are
 * valid during cb. */
typedef void storage_offline_page_cb(enum storage_result res, const struct offline_message *msgs,
                                     size_t count, uint64_t total, uint64_t more, void *ctx);
struct storage_req *storage_offline_page(struct storage *st, const char *host, const char *user,
                                         int64_t after, unsigned limit, storage_offline_page_cb *cb,
                                         void *ctx);
/* Remove the messages of user's queue with seq <= last_seq (STORAGE_OK
 * whether or not there were any). */
struct storage_req *storage_offline_delete_upto(struct storage *st, const char *host, const char *user,
                                                int64_t last_seq, storage_done_cb *cb, void *ctx);
/* How many messages user's queue holds. */
struct storage_req *storage_offline_count(struct storage *st, const char *host, const char *user,
                                          storage_count_cb *cb, void *ctx);
/* How many messages the queues of every user of host hold together. */
struct storage_req *storage_offline_count_host(struct storage *st, const char *host, storage_count_cb *cb,
                                               void *ctx);

/* ---- vCard (XEP-0054) ------------------------------------------------------ */
/* A user's vCard, kept as the serialized <vCard xmlns='vcard-temp'/>
 * element (the module checks and serializes it; storage keeps the text). */
typedef void storage_text_cb(enum storage_result res, const char *text, void *ctx);
/* The stored vCard; STORAGE_NOT_FOUND when the user has none.  text is
 * valid during cb (NULL unless STORAGE_OK). */
struct storage_req *storage_vcard_get(struct storage *st, const char *host, const char *user,
                                      storage_text_cb *cb, void *ctx);
/* Insert or replace the user's vCard. */
struct storage_req *storage_vcard_set(struct storage *st, const char *host, const char *user,
                                      const char *vcard_xml, storage_done_cb *cb, void *ctx);

/* ---- private XML storage (XEP-0049) ------------------------------------------- */
/* One element a user stored, keyed by its namespace (one per namespace). */
struct private_item {
	const char *ns;   /* the namespace of the element */
	const char *data; /* the serialized element */
};
/* The element stored under ns; STORAGE_NOT_FOUND when there is none. */
struct storage_req *storage_private_get(struct storage *st, const char *host, const char *user,
                                        const char *ns, storage_text_cb *cb, void *ctx);
/* Insert or replace every item (count >= 1, namespaces distinct) in one
 * transaction: all are stored or none. */
struct storage_req *storage_private_set(struct storage *st, const char *host, const char *user,
                                        const struct private_item *items, size_t count, storage_done_cb *cb,
                                        void *ctx);

typedef void storage_private_list_cb(enum storage_result res, const struct private_item *items, size_t count,
                                     void *ctx);
/* Every element the user stored, sorted by namespace (byte-wise; an empty
 * list with STORAGE_OK when there is none); valid during cb.  For
 * administration (XEP-0227 export). */
struct storage_req *storage_private_list(struct storage *st, const char *host, const char *user,
                                         storage_private_list_cb *cb, void *ctx);

/* ---- last activity (XEP-0012) -------------------------------------------------- */
/* When the user's last session closed and the status of the last
 * unavailable presence it sent. */
struct last_activity {
	int64_t seconds;    /* unix time of the logout */
	const char *status; /* "" when none */
};
typedef void storage_last_cb(enum storage_result res, const struct last_activity *last, void *ctx);
/* STORAGE_NOT_FOUND when nothing was recorded for the user.  last is valid
 * during cb (NULL unless STORAGE_OK). */
struct storage_req *storage_last_get(struct storage *st, const char *host, const char *user,
                                     storage_last_cb *cb, void *ctx);
/* Insert or replace the user's record (status NULL: none). */
struct storage_req *storage_last_set(struct storage *st, const char *host, const char *user, int64_t seconds,
                                     const char *status, storage_done_cb *cb, void *ctx);

/* ---- blocking command (XEP-0191) ------------------------------------------------ */
/* The JIDs a user blocks: each a prepared full JID, bare JID, domain or
 * domain/resource, as the module normalised it.
 * Every blocked JID of user, byte-wise sorted (an empty list with
 * STORAGE_OK when there is none).  The list is valid during cb. */
struct storage_req *storage_blocklist_get(struct storage *st, const char *host, const char *user,
                                          storage_list_cb *cb, void *ctx);
/* Add every JID of jids (n >= 1) in one transaction; JIDs already blocked
 * stay as they are. */
struct storage_req *storage_blocklist_add(struct storage *st, const char *host, const char *user,
                                          const char *const *jids, size_t n, storage_done_cb *cb, void *ctx);
/* Remove every JID of jids in one transaction (absent ones are ignored);
 * n == 0 removes the whole list.  STORAGE_OK either way. */
struct storage_req *storage_blocklist_remove(struct storage *st, const char *host, const char *user,
                                             const char *const *jids, size_t n, storage_done_cb *cb,
                                             void *ctx);

/* ---- privacy lists (XEP-0016) ------------------------------------------------------ */
/* A user's named lists of ordered allow/deny rules and the name of the
 * default one.  Which list a session uses (the active list) is session
 * state, not stored. */
enum privacy_type { PRIVACY_ALL, PRIVACY_JID, PRIVACY_GROUP, PRIVACY_SUBSCRIPTION };
/* What an item applies to (a bit set; 0: every stanza). */
#define PRIVACY_MESSAGE 1u
#define PRIVACY_IQ 2u
#define PRIVACY_PRESENCE_IN 4u
#define PRIVACY_PRESENCE_OUT 8u
struct privacy_item {
	enum privacy_type type;
	const char *value; /* JID, group or subscription; NULL for PRIVACY_ALL */
	bool allow;        /* else deny */
	uint32_t order;    /* unique within a list */
	unsigned stanzas;  /* PRIVACY_* bits, 0: all */
};
struct privacy_list {
	const char *name;
	const struct privacy_item *items; /* ascending order */
	size_t nitems;
};
const char *privacy_type_str(enum privacy_type t); /* "jid", ...; "" for ALL */

/* lists sorted by name (byte-wise), default_name NULL when there is no
 * default list; everything valid during cb (empty with STORAGE_OK when the
 * user has no list). */
typedef void storage_privacy_cb(enum storage_result res, const struct privacy_list *lists, size_t nlists,
                                const char *default_name, void *ctx);
struct storage_req *storage_privacy_get(struct storage *st, const char *host, const char *user,
                                        storage_privacy_cb *cb, void *ctx);
/* Create or replace the list name with items (n >= 1) in one transaction
 * (whether it is the default stays as it was). */
struct storage_req *storage_privacy_set_list(struct storage *st, const char *host, const char *user,
                                             const char *name, const struct privacy_item *items, size_t n,
                                             storage_done_cb *cb, void *ctx);
/* Remove the list name (if it was the default, there is no default any
 * more); STORAGE_NOT_FOUND when there is no such list. */
struct storage_req *storage_privacy_remove_list(struct storage *st, const char *host, const char *user,
                                                const char *name, storage_done_cb *cb, void *ctx);
/* Make the list name the default (NULL: no default list);
 * STORAGE_NOT_FOUND when there is no such list (nothing changes). */
struct storage_req *storage_privacy_set_default(struct storage *st, const char *host, const char *user,
                                                const char *name, storage_done_cb *cb, void *ctx);
/* ---- shared roster groups ----------------------------------------------------- */
/* Groups an administrator defines per host; their members see each other
 * in their rosters (mod_shared_roster).  A member is a prepared bare JID of
 * the host, or one of the special members SRG_MEMBER_ALL (every registered
 * user of the host) and SRG_MEMBER_ONLINE (every user with a session). */
#define SRG_MEMBER_ALL "@all@"
#define SRG_MEMBER_ONLINE "@online@"
struct srg_group {
	char *name;               /* the group's key on its host */
	char *label;              /* the name shown as roster group ("" : name) */
	char *description;        /* "" when none */
	struct strlist displayed; /* groups whose members this group's members
	                             * see; empty: the group itself */
	struct strlist members;   /* byte-wise sorted */
};
void srg_group_clear(struct srg_group *g);

typedef void storage_srg_cb(enum storage_result res, const struct srg_group *groups, size_t count, void *ctx);
/* The names of the host's groups, byte-wise sorted (empty list, STORAGE_OK,
 * when there is none). */
struct storage_req *storage_srg_list(struct storage *st, const char *host, storage_list_cb *cb, void *ctx);
/* One group (name) with its displayed groups and members, or every group
 * of the host when name is NULL (sorted by name; count 0 with STORAGE_OK
 * when there is none).  STORAGE_NOT_FOUND: no group name. */
struct storage_req *storage_srg_get(struct storage *st, const char *host, const char *name,
                                    storage_srg_cb *cb, void *ctx);
/* Create g (its displayed groups and members too) in one transaction;
 * STORAGE_EXISTS when the host has a group of that name. */
struct storage_req *storage_srg_create(struct storage *st, const char *host, const struct srg_group *g,
                                       storage_done_cb *cb, void *ctx);
/* Delete a group with its members and displayed list; STORAGE_NOT_FOUND
 * when there is none.  Other groups that display it keep the name (it
 * shows nothing until a group of that name exists again). */
struct storage_req *storage_srg_delete(struct storage *st, const char *host, const char *name,
                                       storage_done_cb *cb, void *ctx);
/* Add member to group: STORAGE_NOT_FOUND when there is no such group,
 * STORAGE_EXISTS when it is a member already. */
struct storage_req *storage_srg_member_add(struct storage *st, const char *host, const char *group,
                                           const char *member, storage_done_cb *cb, void *ctx);
/* Remove member from group: STORAGE_NOT_FOUND when it is not a member (or
 * there is no such group). */
struct storage_req *storage_srg_member_remove(struct storage *st, const char *host, const char *group,
                                              const char *member, storage_done_cb *cb, void *ctx);
/* A user of the host and the name a directory gives it. */
struct srg_name {
	const char *jid; /* user@host */
	const char *name;
};
typedef void storage_srg_names_cb(enum storage_result res, const struct srg_name *names, size_t count,
                                  void *ctx);
/* The names of the host's users as the group store knows them (the LDAP
 * store: ldap_user_name_attr), sorted by jid.  STORAGE_ERROR from a store
 * that keeps none (the SQL store: shared contacts are named by their
 * vCards). */
struct storage_req *storage_srg_names(struct storage *st, const char *host, storage_srg_names_cb *cb,
                                      void *ctx);
/* The groups whose stored members name bare_jid or SRG_MEMBER_ALL (not
 * SRG_MEMBER_ONLINE: that depends on sessions), byte-wise sorted. */
struct storage_req *storage_srg_user_groups(struct storage *st, const char *host, const char *bare_jid,
                                            storage_list_cb *cb, void *ctx);

/* ---- user directory (XEP-0055) ------------------------------------------------ */
/* Every vCard a store keeps is also indexed by the fields of
 * storage/vcard-index.h (the SQL store extracts them in storage_vcard_set,
 * in the same transaction).  A term matches a field equal to value, or
 * starting with it when prefix is set; comparison is on vcard_fold()ed
 * text.  Terms are ANDed. */
struct vcard_term {
	enum vcard_field field;
	const char *value; /* as the user typed it (folded by the store) */
	bool prefix;
};
/* One user found: fields[VF_USER] is the account name, the others as
 * stored (original case, "" when absent). */
struct vcard_entry {
	const char *fields[VF_COUNT];
};
typedef void storage_vcard_search_cb(enum storage_result res, const struct vcard_entry *entries, size_t count,
                                     bool more, void *ctx);
/* The users of host whose indexed vCard matches every term (n may be 0:
 * everyone), sorted by account name, at most limit of them (0: no limit);
 * more tells that there were more.  listed_only: only vCards with
 * <CLASS><PUBLIC/></CLASS>.  Entries are valid during cb. */
struct storage_req *storage_vcard_search(struct storage *st, const char *host, const struct vcard_term *terms,
                                         size_t n, bool listed_only, unsigned limit,
                                         storage_vcard_search_cb *cb, void *ctx);
/* Index the host's stored vCards that have no index yet (kept before the
 * index existed); cb's count says how many were indexed. */
struct storage_req *storage_vcard_reindex(struct storage *st, const char *host, storage_count_cb *cb,
                                          void *ctx);

/* ---- multi-user chat rooms (XEP-0045) ---------------------------------------- */
/* A persistent room of a MUC service (service is the service's domain,
 * "conference.example.com"; host the virtual host it belongs to).  Its
 * configuration is kept as text the module writes and reads (an XML
 * element of its own); the store does not look inside.
 * Order: the operations on one room keep their order, and so do a
 * service's load and nick registrations; a load is not ordered after room
 * writes submitted before it (load when the service starts). */
struct muc_affiliation_item {
	const char *jid;         /* bare JID or domain, as prepared by the module */
	const char *affiliation; /* "owner", "admin", "member" or "outcast" */
	const char *reason;      /* "" when none */
};
struct muc_room_item {
	const char *name;         /* the room's node (localpart) */
	const char *config;       /* the module's serialized configuration */
	const char *subject;      /* "" when none */
	const char *subject_nick; /* who set it, "" when none */
	double created;           /* seconds since the epoch (stores keep whole seconds) */
	const struct muc_affiliation_item *affs;
	size_t naffs;
};
/* A nick registered with a service (XEP-0045 §7.10): one per bare JID,
 * unique within the service. */
struct muc_nick_item {
	const char *jid; /* bare JID */
	const char *nick;
};
typedef void storage_muc_load_cb(enum storage_result res, const struct muc_room_item *rooms, size_t nrooms,
                                 const struct muc_nick_item *nicks, size_t nnicks, void *ctx);
/* Every stored room of service with its affiliations, and every nick
 * registered with it (empty lists with STORAGE_OK when none), rooms sorted
 * by name; valid during cb.  Called when the service starts. */
struct storage_req *storage_muc_load(struct storage *st, const char *host, const char *service,
                                     storage_muc_load_cb *cb, void *ctx);
/* Insert or replace room (its row and its whole affiliation list) in one
 * transaction. */
struct storage_req *storage_muc_room_store(struct storage *st, const char *host, const char *service,
                                           const struct muc_room_item *room, storage_done_cb *cb, void *ctx);
/* Remove the room and its affiliations; STORAGE_OK when it was not stored. */
struct storage_req *storage_muc_room_delete(struct storage *st, const char *host, const char *service,
                                            const char *name, storage_done_cb *cb, void *ctx);
/* Register nick for bare jid with service, replacing jid's earlier one;
 * nick NULL removes jid's registration.  STORAGE_EXISTS when another jid
 * holds nick. */
struct storage_req *storage_muc_nick_set(struct storage *st, const char *host, const char *service,
                                         const char *jid, const char *nick, storage_done_cb *cb, void *ctx);

/* ---- publish-subscribe nodes and items (XEP-0060, XEP-0163) --------------- */
/* The nodes of one pubsub owner: a pubsub service's domain
 * ("pubsub.example.com") or, for PEP, a user's bare JID
 * ("alice@example.com"); host is the virtual host the owner belongs to.  A
 * node's configuration and a subscription's options are text the module
 * writes and reads; the store does not look inside.  An item's payload is
 * its serialized XML, kept byte for byte.
 * Order: the operations on one owner keep their order (the owner is the
 * job's ordering key); different owners are written in parallel. */
struct pubsub_affiliation_item {
	const char *jid;         /* bare JID, as prepared by the module */
	const char *affiliation; /* "owner", "publisher", "publish-only", "member", "outcast" */
};
struct pubsub_subscription_item {
	const char *jid;     /* full or bare JID, as prepared by the module */
	const char *subid;   /* unique within the node */
	const char *state;   /* "subscribed", "pending" or "unconfigured" */
	const char *options; /* the module's serialized options, "" when none */
};
struct pubsub_node_item {
	const char *name;   /* the node's name (NodeID) */
	const char *config; /* the module's serialized configuration */
	double created;     /* seconds since the epoch (stores keep whole seconds) */
	const struct pubsub_affiliation_item *affs;
	size_t naffs;
	const struct pubsub_subscription_item *subs;
	size_t nsubs;
};
struct pubsub_item {
	const char *node;      /* the node it belongs to */
	const char *id;        /* ItemID, unique within the node */
	const char *publisher; /* full JID of the publisher, "" when unknown */
	double published;      /* seconds since the epoch (stores keep whole seconds) */
	uint64_t seq;          /* the module's publication order within the node (higher: newer) */
	const char *payload;   /* serialized XML, "" for an item without payload */
};
typedef void storage_pubsub_load_cb(enum storage_result res, const struct pubsub_node_item *nodes,
                                    size_t nnodes, const struct pubsub_item *items, size_t nitems, void *ctx);
/* Every node of owner with its affiliations and subscriptions, and every
 * item of those nodes (empty lists with STORAGE_OK when none): nodes sorted
 * by name (byte-wise), affiliations by jid, subscriptions by jid then
 * subid; items by node name, then seq from oldest to newest.  Valid during
 * cb. */
struct storage_req *storage_pubsub_load(struct storage *st, const char *host, const char *owner,
                                        storage_pubsub_load_cb *cb, void *ctx);
/* Insert or replace node (its row, its whole affiliation list and its
 * whole subscription list; not its items) in one transaction. */
struct storage_req *storage_pubsub_node_store(struct storage *st, const char *host, const char *owner,
                                              const struct pubsub_node_item *node, storage_done_cb *cb,
                                              void *ctx);
/* Remove the node with its affiliations, subscriptions and items;
 * STORAGE_OK when it was not stored. */
struct storage_req *storage_pubsub_node_delete(struct storage *st, const char *host, const char *owner,
                                               const char *node, storage_done_cb *cb, void *ctx);
/* Insert or replace item (by node and id) and remove the items of the
 * same node named in evict (n of them; ids not stored are ignored), in
 * one transaction. */
struct storage_req *storage_pubsub_item_store(struct storage *st, const char *host, const char *owner,
                                              const struct pubsub_item *item, const char *const *evict,
                                              size_t nevict, storage_done_cb *cb, void *ctx);
/* Remove the items of node named in ids (n of them), or every item of the
 * node when n is 0 (purge); STORAGE_OK also when none was stored. */
struct storage_req *storage_pubsub_item_delete(struct storage *st, const char *host, const char *owner,
                                               const char *node, const char *const *ids, size_t n,
                                               storage_done_cb *cb, void *ctx);
/* Remove every node and item of owner (a PEP owner whose account goes). */
struct storage_req *storage_pubsub_owner_delete(struct storage *st, const char *host, const char *owner,
                                                storage_done_cb *cb, void *ctx);

/* ---- message archive (XEP-0313) ---------------------------------------------- */
/* The archive of one owner: a user's bare JID ("alice@example.com") or a
 * room's ("room@conference.example.com"); host is the virtual host the
 * owner belongs to.  Every message has an id the module chooses: unique in
 * the owner's archive, growing with time (microseconds since the epoch,
 * made unique by the module), so the id is also the message's time and the
 * order of the archive.  The module derives the XEP-0359 stanza-id from it.
 * Order: the operations on one owner keep their order (the owner is the
 * job's ordering key); different owners are written in parallel. */
struct mam_message {
	int64_t id;           /* see above; > 0 */
	const char *peer;     /* bare JID of the other party (a room archive: the sender's room JID, bare) */
	const char *resource; /* the other party's resource ("" when none; a room archive: the nick) */
	bool outgoing;        /* sent by the owner (user archives) */
	const char *body;     /* the <body/> text for full-text search, NULL when none */
	const char *stanza;   /* the serialized <message/>, default namespace jabber:client */
};
/* A query: every filter is optional.  Results are always in ascending id
 * order.  The page is the first max matching messages after after_id, or,
 * with backwards, the last max matching messages before before_id (the
 * newest page when before_id is 0: RSM <before/> with no id). */
struct mam_query {
	const char *with;          /* bare JID of the other party, NULL: any */
	const char *with_resource; /* with a full 'with': the resource too, NULL: any */
	int64_t start, end;        /* inclusive bounds on id; 0: none */
	int64_t after_id;          /* exclusive; 0: none */
	int64_t before_id;         /* exclusive; 0: none */
	const int64_t *ids;        /* XEP-0313 'ids': only these (n of them); NULL: any */
	size_t nids;
	const char *text; /* full-text search in body, NULL: none (stores without
	                   * an index match a case-insensitive substring) */
	unsigned max;     /* page size (>= 1; the module caps it) */
	bool backwards;
};
typedef void storage_mam_query_cb(enum storage_result res, const struct mam_message *msgs, size_t count,
                                  bool complete, void *ctx);
/* Append msg to owner's archive, durably (it survives a crash once cb says
 * STORAGE_OK).  STORAGE_EXISTS when owner already has a message with that
 * id (nothing stored: the module picks another id). */
struct storage_req *storage_mam_store(struct storage *st, const char *host, const char *owner,
                                      const struct mam_message *msg, storage_done_cb *cb, void *ctx);
/* One page of owner's archive (see struct mam_query); complete: no more
 * matching messages exist beyond the page in the paging direction (after
 * the last one forwards, before the first one backwards).  Valid during cb. */
struct storage_req *storage_mam_query(struct storage *st, const char *host, const char *owner,
                                      const struct mam_query *q, storage_mam_query_cb *cb, void *ctx);
/* Remove every message of owner (a room destroyed, an archive purged;
 * removing an account removes its archive and preferences too). */
struct storage_req *storage_mam_owner_delete(struct storage *st, const char *host, const char *owner,
                                             storage_done_cb *cb, void *ctx);
/* Remove every message of host (all owners) with id < before (retention),
 * at most limit of them in one call (0: no limit); count_r in cb: how many
 * went (call again while it is limit). */
struct storage_req *storage_mam_expire(struct storage *st, const char *host, int64_t before, unsigned limit,
                                       storage_count_cb *cb, void *ctx);

/* Archiving preferences (XEP-0313 §6). */
enum mam_default { MAM_DEFAULT_ALWAYS, MAM_DEFAULT_NEVER, MAM_DEFAULT_ROSTER };
struct mam_prefs {
	enum mam_default def;
	const char *const *always; /* bare JIDs, n_always of them */
	size_t n_always;
	const char *const *never;
	size_t n_never;
};
typedef void storage_mam_prefs_cb(enum storage_result res, const struct mam_prefs *prefs, void *ctx);
/* owner's preferences; STORAGE_NOT_FOUND when none were stored (the module
 * applies its default).  Lists sorted byte-wise; valid during cb. */
struct storage_req *storage_mam_prefs_get(struct storage *st, const char *host, const char *owner,
                                          storage_mam_prefs_cb *cb, void *ctx);
/* Insert or replace owner's preferences, in one transaction. */
struct storage_req *storage_mam_prefs_set(struct storage *st, const char *host, const char *owner,
                                          const struct mam_prefs *prefs, storage_done_cb *cb, void *ctx);

#endif
