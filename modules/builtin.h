/*
 * The modules built into parleyd, and small helpers they share.  Loop
 * thread.
 */
#ifndef PARLEY_MODULES_BUILTIN_H
#define PARLEY_MODULES_BUILTIN_H

#include "pep.h"
#include "server/module.h"
#include "server/hooks.h"
#include "server/iq.h"
#include "server/stanza.h"

extern const struct module_def mod_disco;
extern const struct module_def mod_version;
extern const struct module_def mod_ping;
extern const struct module_def mod_time;
extern const struct module_def mod_register;
extern const struct module_def mod_roster;
extern const struct module_def mod_offline;
extern const struct module_def mod_presence;
extern const struct module_def mod_vcard;
extern const struct module_def mod_private;
extern const struct module_def mod_bookmarks;
extern const struct module_def mod_last;
extern const struct module_def mod_blocking;
extern const struct module_def mod_privacy;
extern const struct module_def mod_limits;
extern const struct module_def mod_carbons;
extern const struct module_def mod_csi;
extern const struct module_def mod_avatar;
extern const struct module_def mod_shared_roster;
extern const struct module_def mod_vjud;
extern const struct module_def mod_adhoc;
extern const struct module_def mod_announce;
extern const struct module_def mod_caps;
extern const struct module_def mod_muc;
extern const struct module_def mod_pubsub;
extern const struct module_def mod_push;
extern const struct module_def mod_extdisco;
extern const struct module_def mod_mam;
extern const struct module_def mod_upload;

/* Register every built-in module with module_register (once; later calls
 * do nothing).  Registration order is start order on each host. */
void modules_register_builtin(void);

/* ---- helpers for module code ------------------------------------------ */

/* One iq handler of a module. */
struct builtin_iq {
	enum iq_scope scope;
	const char *ns;
	enum iq_discipline discipline;
	iq_handler_fn *fn;
};
/* Register every handler of table with ctx, all or nothing: on a conflict
 * the ones registered so far are unregistered and -1 is returned with a
 * malloc'd *error_r naming the namespace. */
int builtin_iq_register(struct host *h, const struct builtin_iq *table, size_t n, void *ctx, char **error_r);
void builtin_iq_unregister(struct host *h, const struct builtin_iq *table, size_t n);

/* One hook callback of a module. */
struct builtin_hook {
	const char *name; /* HOOK_* */
	int priority;
	hook_fn *fn;
};
/* What a module adds to its host while it runs: its iq handlers, its hook
 * callbacks and the feature it announces (a table any of may be empty). */
struct builtin_parts {
	const struct builtin_iq *iqs;
	size_t niqs;
	const struct builtin_hook *hooks;
	size_t nhooks;
	const char *feature;      /* of the server JID (disco#info), or NULL */
	const char *user_feature; /* of every account's bare JID too, or NULL */
};
/* Add every part with ctx, all or nothing: -1 with *error_r as for
 * builtin_iq_register, and nothing added. */
int builtin_parts_add(struct host *h, const struct builtin_parts *parts, void *ctx, char **error_r);
/* Remove what builtin_parts_add added (hooks first, then the iq handlers,
 * which answers the requests queued for them, then the features). */
void builtin_parts_remove(struct host *h, const struct builtin_parts *parts, void *ctx);

/* ---- shared by mod_blocking and mod_privacy ------------------------------------ */

struct session;
struct jid;

/* Whether stanzas between user of h and peer are never filtered: peer is
 * the user's own account (any resource) or h itself (a user who blocks
 * its own domain can still talk to its server and account). */
bool builtin_filter_exempt(const struct host *h, const char *user, const struct jid *peer);
/* Route <presence type='unavailable'/> from from[i] to to[i] for each of
 * the n pairs, with *bypass true meanwhile (the calling filter module lets
 * its own notices pass), then clear the JIDs and free both arrays: what a
 * block or a privacy list that starts denying presence-out sends. */
void builtin_route_unavailable(struct jid *from, struct jid *to, size_t n, bool *bypass);
/* Refuse a stanza that session s sent and that is not routed: s alone
 * gets the error reply of cond (with text, or NULL); app, when not NULL,
 * names an application-specific condition element (in namespace app_ns)
 * added to the <error/>. */
void builtin_refuse_sent(struct session *s, const struct xml_node *stanza, enum stanza_error cond,
                         const char *text, const char *app, const char *app_ns);

/* ---- pushes to a user's sessions ---------------------------------------------- */

struct session;
struct jid;
/* The full JIDs of user's sessions on h that want says yes to (want NULL:
 * every session), copied: routing to one may close another.  Returns the
 * count, with a malloc'd array in *targets_r (NULL when 0). */
size_t builtin_sessions(struct host *h, const char *user, bool (*want)(const struct session *s, void *ctx),
                        void *ctx, struct jid **targets_r);
/* A want for builtin_sessions: the sessions that are available. */
bool builtin_session_available(const struct session *s, void *ctx);
/* Send each target an <iq type='set'/> (a push) from user's bare JID with
 * a copy of payload; the targets are cleared and freed. */
void builtin_push(struct host *h, const char *user, struct jid *targets, size_t n,
                  const struct xml_node *payload);

/* ---- shared by the modules that follow PEP (mod_bookmarks, mod_avatar) ---- */

/* An element as a store keeps it (serialized text), parsed with the
 * limits of stored data; NULL when it does not parse or is not name in
 * ns. */
struct xml_node *builtin_parse_stored(const char *text, const char *name, const char *ns);
/* Log that what (a PEP call of module, about user of h) came to r: a
 * warning, or a debug line when PEP does not run on h. */
void builtin_log_pep(const struct host *h, const char *module, const char *user, const char *what,
                     enum pep_result r);

/* The domain of a service (MUC, pubsub) from its configured pattern:
 * "@HOST@" replaced by host, nameprepped; NULL when that is no valid
 * domain.  malloc'd. */
char *builtin_service_domain(const char *pattern, const char *host);
/* Append the domain of each pattern of patterns (builtin_service_domain)
 * that is a valid domain to domains: a service module's module_def
 * domains, for the reload's check of names a host and a service share
 * (the module's start says what is wrong with the others). */
void builtin_service_domains(const struct strlist *patterns, const char *host, struct strlist *domains);

/* ---- shared by mod_roster and mod_presence ------------------------------- */

struct roster_item;
/* Send a roster push of it (at roster version) to every interested resource
 * of user on h; items that are roster_item_pending_only (storage.h) are
 * not pushed by mod_presence (callers decide). */
void roster_push(struct host *h, const char *user, const struct roster_item *it, uint64_t version);
/* The item of jid (a bare JID string) among items, or NULL. */
const struct roster_item *roster_find_item(const struct roster_item *items, size_t count, const char *jid);
#define NS_NICK "http://jabber.org/protocol/nick" /* XEP-0172 */
/* What a subscription request says that its redelivery says again (and
 * XEP-0227 carries): the <status/>s (each with its xml:lang) and the
 * XEP-0172 <nick/> of stanza, as roster_item.ask_in_stanza keeps them (a
 * serialized <presence/> of their own), or NULL when it has none.
 * Malloc'd; no larger than stanza, which the stream's max_stanza_size let
 * in.  (mod_presence) */
char *roster_request_said(const struct xml_node *stanza);
/* The pending request of it: a new <presence type='subscribe' from=it's
 * JID/> (no 'to') with what it said.  When the stored ask_in_stanza does
 * not parse, *error_r (optional) says why and the request says nothing.
 * (mod_presence) */
struct xml_node *roster_request_stanza(const struct roster_item *it, const char **error_r);

/* ---- shared by mod_offline, mod_blocking and mod_privacy ------------------- */

struct jid;
struct strlist;
struct privacy_list;
/* Whether a block list (byte-wise sorted, as storage_blocklist_get gives
 * it) blocks peer: its full JID, bare JID, domain/resource or domain is
 * on it (XEP-0191 §3.5). */
bool blocking_list_matches(const struct strlist *sorted, const struct jid *peer);
/* Whether local user of h blocks peer, as far as mod_blocking knows now:
 * it keeps the block lists of users with sessions (false for a user
 * without one, or when mod_blocking does not run on h). */
struct host;
bool blocking_blocks(struct host *h, const char *user, const struct jid *peer);
struct xml_node;
/* Whether the privacy list in force for from, a user of h (the active list
 * of from's session, else the default list), denies presence p to 'to':
 * presence-out items for presence notifications (no type, unavailable),
 * items for every stanza for other presence.  As far as mod_privacy knows
 * now: it keeps the lists of users with sessions (false for a user without
 * one, or when mod_privacy does not run on h).  mod_privacy's stanza_in
 * asks it for presence to a local user, mod_presence before it routes
 * presence on a user's behalf to another server. */
bool privacy_denies_presence(struct host *h, const struct xml_node *p, const struct jid *from,
                             const struct jid *to);
/* Whether list (items in ascending order, as storage gives them) denies a
 * stanza of kind bit (a PRIVACY_* bit; 0 for what only items covering
 * every stanza apply to) from peer, with the user's roster (for group and
 * subscription items; roster may be NULL when nroster is 0). */
bool privacy_list_denies(const struct privacy_list *list, const struct roster_item *roster, size_t nroster,
                         unsigned bit, const struct jid *peer);
/* Whether list has group or subscription items (its judgement needs the
 * roster). */
bool privacy_list_needs_roster(const struct privacy_list *list);

/* What the stored lists of a user say of a stanza from a peer (mod_presence;
 * the caches of mod_blocking and mod_privacy exist only while the user has
 * a session). */
enum builtin_refusal {
	BUILTIN_PASSES,
	BUILTIN_BLOCKED, /* the block list (XEP-0191) */
	BUILTIN_DENIED,  /* the default privacy list (XEP-0016) */
	BUILTIN_UNKNOWN, /* a read failed: res and what (\"the block list\", ...) say which */
};
enum storage_result;
typedef void builtin_refusal_fn(enum builtin_refusal r, enum storage_result res, const char *what, void *ctx);
struct builtin_refusal_check;
/* Judge a stanza of kind bit (a PRIVACY_* bit; 0 for what only items
 * covering every stanza apply to) from peer to user of h on user's stored
 * block list (when mod_blocking runs on h) and stored default privacy list
 * (when mod_privacy runs; with the roster view when the list needs it),
 * read in that order from storage: a user with no session gets the answer
 * one with a session would.  cb runs once, later, never inside this call
 * (unless builtin_refusal_cancel is called first).  NULL, and cb never
 * runs, when nothing refuses it: neither module runs on h, or peer is
 * exempt (builtin_filter_exempt).  Wait on it with
 * pending_wait(op, check, builtin_refusal_cancel). */
struct builtin_refusal_check *builtin_refusal_start(struct host *h, const char *user, const struct jid *peer,
                                                    unsigned bit, builtin_refusal_fn *cb, void *ctx);
/* Cancel a check (a struct builtin_refusal_check): its cb will not run. */
void builtin_refusal_cancel(void *check);
struct pending_ops;
struct hook_packet;
/* stanza_in of mod_blocking (or of mod_privacy when mod_blocking does not
 * run): an iq get/set to the bare JID of a user of h who has no session
 * (answered by the server on the user's behalf: vCard, last activity)
 * waits, as an op on ops, for builtin_refusal_start with PRIVACY_IQ; a
 * refused one is bounced with <service-unavailable/>, as when the user has
 * a session, any other routed on (sm_route again).  True when it took the
 * stanza (the hook stops); false for a stanza it has nothing to do with,
 * and for the one it routes on.  A stop bounces the ones still waiting. */
bool builtin_refusal_hold_iq(struct pending_ops *ops, struct host *h, const struct hook_packet *hp);

/* ---- offline storage of the server's own messages (mod_offline) ------------ */

/* What came of offline_store_from_host. */
enum offline_result {
	OFFLINE_STORED,   /* committed: the user gets it at the next login */
	OFFLINE_REFUSED,  /* the user's block list or privacy list refuses it */
	OFFLINE_NO_USER,  /* the host has no such account */
	OFFLINE_FULL,     /* the user's offline queue is full (max_per_user) */
	OFFLINE_TEMPFAIL, /* the store cannot be written now */
	OFFLINE_FAILED,   /* any other failure */
};
typedef void offline_stored_fn(enum offline_result r, void *ctx);
struct xml_node;
/* Store msg, a <message/> from h's domain to user of h (from and to set),
 * as mod_offline stores a message no session could take: the user's block
 * list and default privacy list are read first, the quota applies, a
 * <delay/> is added, and a session that becomes available meanwhile waits
 * for it.  Nothing is bounced: done runs once with the outcome, from the
 * loop, never inside this call, even when mod_offline stops meanwhile (it
 * cannot be cancelled: ctx must live until then).  -1 when mod_offline
 * does not run on h (done will not run). */
int offline_store_from_host(struct host *h, const char *user, struct xml_node *msg, offline_stored_fn *done,
                            void *ctx);

/* ---- account removal (mod_register, mod_adhoc, parleyctl unregister) ----- */

typedef void presence_settled_fn(void *ctx);
struct presence_wait;
/* An account's removal, as mod_presence sees it.  After sm_kick_user:
 * wait until the presence work of user on h queued now is done (the
 * unavailable presence of each closed session has been broadcast, its
 * roster read), then read the user's stored roster items and hold the
 * user's presence work until the removal is over; then done runs, and
 * the account (roster included) may go.  done runs once, later, never
 * inside this call, also when mod_presence stops meanwhile (the work is
 * dropped then, and nobody is told of the removal).  The wait is the
 * caller's until it passes it to presence_wait_end (done has run) or to
 * presence_wait_cancel.  NULL, and done never runs, when mod_presence
 * does not run on h. */
struct presence_wait *presence_wait_user(struct host *h, const char *user, presence_settled_fn *done,
                                         void *ctx);
/* Cancel a wait (a struct presence_wait), before or after its done ran:
 * done will not run, nothing is sent, the user's presence work goes on;
 * wait is freed. */
void presence_wait_cancel(void *wait);
/* After done ran: the removal is over, removed when the auth chain
 * answered AUTH_OK (and HOOK_REMOVE_USER has run).  When removed, each
 * contact of a stored item is told, from the user's bare JID, as if the
 * user had removed the item (RFC 6121 §2.5.2, XEP-0077 §3.2):
 * 'unsubscribe' when the user had a subscription to it or had asked for
 * one, 'unsubscribed' when it had one from the user, had asked, or was
 * approved in advance.  Not removed: nothing is sent.  Either way the
 * user's presence work goes on and w is freed.  w NULL: nothing. */
void presence_wait_end(struct presence_wait *w, bool removed);

/* ---- directed presence (mod_blocking, mod_privacy) ------------------------- */

struct strlist;
/* The JIDs session s of h sent directed available presence to and no
 * unavailable since (they see it available without a subscription), as
 * mod_presence keeps them; NULL when there is none, or mod_presence does
 * not run on h.  Valid until s sends presence again or closes. */
const struct strlist *presence_directed(struct host *h, const struct session *s);

/* ---- roster view (mod_roster, mod_presence; shared roster groups) ---------- */

/* The roster of user as it is seen (stored items merged with what the
 * roster_view hook adds: shared roster groups).  items/count point either
 * at the stored items or at the view's own copy; valid until
 * roster_view_clear.  presence: see struct hook_roster_view. */
struct roster_view {
	const struct roster_item *items;
	size_t count;
	uint32_t tag;              /* nonzero when the view holds added contacts */
	struct roster_item *owned; /* private */
};
void roster_view_make(struct roster_view *v, struct host *h, const char *user,
                      const struct roster_item *stored, size_t nstored, bool presence);
void roster_view_clear(struct roster_view *v);
/* The view of one contact (jid) only: stored is the user's stored item for
 * it or NULL; v holds at most one item (none when neither the store nor a
 * module has the contact).  Cheaper than the whole view: for decisions
 * about one contact (a probe). */
void roster_view_one(struct roster_view *v, struct host *h, const char *user,
                     const struct roster_item *stored, const char *jid, bool presence);
/* The roster version string clients see: the stored version, and when the
 * view holds added contacts, "-" and their tag in hex. */
void roster_version_string(char out[32], uint64_t version, uint32_t tag);

#endif
