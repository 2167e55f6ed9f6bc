/*
 * mod_mam: message archives (XEP-0313 urn:xmpp:mam:2) with unique and
 * stable stanza ids (XEP-0359).  Every user has an archive of the
 * messages it sent and received; rooms of the MUC service have one of
 * their groupchat messages (modules/muc/ calls mam_room_*).  Loop thread.
 *
 * What is archived (XEP-0313 §5.1.1): a message of type normal or chat
 * (no type is normal) that carries a <body/> or an encrypted payload
 * (OMEMO, OpenPGP for XMPP), or the XEP-0334 <store/> hint; never one with
 * <no-store/> or <no-permanent-store/>, never type error, headline or
 * groupchat (groupchat is the room's archive).  Chat states, receipts and
 * markers alone are not archived.  Incoming messages go to the
 * recipient's archive (stanza_in, priority 90: blocking and privacy run
 * first and may stop them), outgoing ones to the sender's (user_send_packet,
 * priority 55, after blocking).  A message between two local users is in
 * both archives.  A room's private message to a nick that several
 * resources of one user share comes as one copy per resource: the archive
 * keeps it once (struct last_in), and every copy carries its id.
 *
 * Invariants:
 * - Ids are mam_next_id's (mam.h): unique and growing in this process.
 *   An incoming message that is archived is delivered (and stored
 *   offline) as a copy with <stanza-id by=user's bare JID id=archive id/>;
 *   a stanza-id claiming the user's JID that the sender put there is
 *   removed from what is delivered whether or not it is archived.
 * - Preferences (§6) are kept in memory for users with a session (read at
 *   the first session's open); for the others, and while that read is in
 *   flight, the message gets its stanza-id at once and the store reads the
 *   preferences (and with default roster the roster) before it writes, so
 *   a message the preferences refuse may carry a stanza-id that names no
 *   archived message.  A read that fails archives the message.  A message
 *   to a user without a session is archived only when the account exists
 *   (auth_user_exists): nobody fills archives of accounts that are not.
 * - A store holds the barrier current when the message was accepted
 *   (barrier_take): the sender's stream answers nothing it sent later
 *   before the archive has it.  A failed store is logged, and so is a
 *   failed read of the preferences or the roster before a store; an
 *   outage fails them for every message, so these lines are written at
 *   most once a second, and the ones left out are counted in a summary
 *   line a second after the last one written (module-wide: the stores
 *   that log outlive a stop).  The message is still delivered.
 *   STORAGE_EXISTS (a clock set back) retries with a new id;
 *   STORAGE_TEMPFAIL (the backend's queue is full after a burst, or the
 *   backend is down) retries the same store later (RETRY_*), holding the
 *   barrier for the first tries only (RETRY_HOLD_TRIES): the message
 *   itself was delivered or stored offline, and an outage must not stall
 *   the sender's answers for the whole retry.
 * - A query answers its results, then the iq result, through the
 *   requester's ordered output; every storage call runs through a struct
 *   mam_op on the module's pending list.  Stores outlive a stop.
 * - Retention (max_age > 0): every expire_interval, storage_mam_expire in
 *   batches until a batch removes fewer than its limit; the timer does not
 *   keep the loop alive.
 */
#include "builtin.h"
#include "errmap.h"
#include "mam.h"
#include "pending.h"
#include "user-cache.h"
#include "server/host.h"
#include "server/router.h"
#include "server/server.h"
#include "server/sm.h"
#include "lib/barrier.h"
#include "lib/latency.h"
#include "lib/log.h"
#include "lib/log-summary.h"
#include "storage/storage.h"
#include "auth/auth.h"

#include <ev.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NS_FORWARD "urn:xmpp:forward:0"
#define NS_HINTS "urn:xmpp:hints"
#define NS_RSM "http://jabber.org/protocol/rsm"
#define NS_FULLTEXT "urn:xmpp:fulltext:0"
#define NS_XDATA_VALIDATE "http://jabber.org/protocol/xdata-validate"
#define FIELD_FULLTEXT "{urn:xmpp:fulltext:0}fulltext"
#define NS_OMEMO "eu.siacs.conversations.axolotl"
#define NS_OX "urn:xmpp:openpgp:0"
#define DEFAULT_PAGE 50
#define MAX_IDS 1000
#define EXPIRE_BATCH 1000
#define STORE_TRIES 5
/* A store the backend cannot take now (its queue is full) is tried again
 * after RETRY_FIRST seconds, doubling up to RETRY_MAX, RETRY_TRIES times. */
#define RETRY_FIRST 0.05
#define RETRY_MAX 2.0
#define RETRY_TRIES 12
/* After this many tries (about 0.75 s), the sender's answers stop waiting
 * for the store: a burst has cleared by then; a backend that is down
 * (an outage) must not stall the sender's stream for the whole retry. */
#define RETRY_HOLD_TRIES 4

struct mam_settings {
	int def; /* enum mam_default */
	unsigned max_page;
	double max_age;
	double expire_interval;
	bool fulltext;
	bool muc;
};

static const char *const default_names[] = { "always", "never", "roster", NULL };

static const struct opt_def mam_options[] = {
	{ "default", OPT_ENUM, offsetof(struct mam_settings, def), "always", default_names, 0, 0,
	  "what is archived for a user who stored no preferences: always, never, or roster (messages "
	  "with contacts in the roster)" },
	{ "max_page", OPT_UINT, offsetof(struct mam_settings, max_page), "100", NULL, 1, 10000,
	  "most messages in one page of results; a bigger RSM max is capped (a query without max gets "
	  "50, or max_page when smaller)" },
	{ "max_age", OPT_DURATION, offsetof(struct mam_settings, max_age), "0", NULL, 0, 0,
	  "archived messages older than this are removed (0: kept forever)" },
	{ "expire_interval", OPT_DURATION, offsetof(struct mam_settings, expire_interval), "1h", NULL, 0, 0,
	  "how often old messages are removed when max_age is set" },
	{ "fulltext", OPT_BOOL, offsetof(struct mam_settings, fulltext), "true", NULL, 0, 0,
	  "offer full-text search of message bodies (the {urn:xmpp:fulltext:0}fulltext form field)" },
	{ "muc", OPT_BOOL, offsetof(struct mam_settings, muc), "true", NULL, 0, 0,
	  "new rooms of the host's MUC services keep an archive (a room option switches it)" },
	OPT_END
};

/* ---- ids and stanza-ids ---------------------------------------------------- */

static int64_t last_id;

int64_t mam_next_id(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	int64_t now = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
	last_id = now > last_id ? now : last_id + 1;
	return last_id;
}

bool mam_id_parse(const char *s, int64_t *id_r)
{
	if (s == NULL || *s == '\0' || strlen(s) > 18)
		return false;
	int64_t v = 0;
	for (const char *p = s; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			return false;
		v = v * 10 + (*p - '0');
	}
	if (v <= 0)
		return false;
	*id_r = v;
	return true;
}

static void id_str(char out[24], int64_t id)
{
	snprintf(out, 24, "%" PRId64, id);
}

bool mam_has_stanza_id(const struct xml_node *msg, const char *by)
{
	for (const struct xml_node *c = xml_child(msg, "stanza-id", NS_SID); c != NULL;
	     c = xml_next(c, "stanza-id", NS_SID)) {
		const char *b = xml_attr(c, "by");
		if (b != NULL && strcmp(b, by) == 0)
			return true;
	}
	return false;
}

struct xml_node *mam_stamp_copy(const struct xml_node *msg, const char *by, int64_t id)
{
	struct xml_node *copy = xml_copy(msg);
	for (struct xml_node *c = xml_child(copy, "stanza-id", NS_SID), *next; c != NULL; c = next) {
		next = xml_next(c, "stanza-id", NS_SID);
		const char *b = xml_attr(c, "by");
		if (b != NULL && strcmp(b, by) == 0)
			xml_remove(c);
	}
	if (id != 0) {
		char ids[24];
		id_str(ids, id);
		struct xml_node *sid = xml_add_child(copy, "stanza-id", NS_SID);
		xml_set_attr(sid, "id", ids);
		xml_set_attr(sid, "by", by);
	}
	return copy;
}

/* ---- state ------------------------------------------------------------------ */

struct mam_user {
	struct user_cache_entry e; /* first */
	bool loaded;               /* the preferences below were read */
	unsigned gen;              /* bumped by each change (a read started before is stale) */
	enum mam_default def;
	struct strlist always, never;
};

/* The last incoming message archived for a resource of a user: a copy of
 * it to another resource of the same user, from the same sender in the
 * same loop iteration (a room's private message to a nick that several
 * sessions of one user share, XEP-0045 §7.2), is that message again. */
struct last_in {
	struct xml_node *msg; /* a reference, or NULL; its 'from' and 'to' say
	                         whose it was (read only when a copy may have come) */
	int64_t id;
	unsigned iteration; /* ev_iteration when it was archived */
};

struct mam_state {
	struct host *host;
	const struct mam_settings *set;
	struct pending_ops ops;
	struct user_cache cache;
	ev_timer expire;
	bool expiring;
	struct last_in last_in;
};

enum mam_op_kind { OP_STORE, OP_LOAD, OP_QUERY, OP_PREFS_GET, OP_PREFS_SET, OP_META, OP_EXPIRE };
/* What a store must read before it writes. */
enum mam_check { CHECK_NONE, CHECK_PREFS, CHECK_ROSTER };

struct mam_op {
	struct pending_op p;  /* first */
	struct mam_state *ms; /* valid while p is listed */
	enum mam_op_kind kind;
	struct host *host;
	char *owner; /* bare JID of the archive */
	char *user;  /* local part (user archives), else NULL */
	/* OP_STORE */
	struct mam_message msg; /* peer and resource owned; no body and no
	                         * stanza: store_write takes them from tree */
	struct xml_node *tree;  /* what is stored (a reference) */
	bool fulltext;          /* the body is indexed (the setting at the start) */
	bool packed;            /* owner, user, peer, resource in the op's allocation */
	enum mam_check check;
	unsigned tries;
	unsigned retries; /* after STORAGE_TEMPFAIL */
	ev_timer retry;
	struct barrier_hold *hold;
	/* OP_LOAD */
	unsigned gen;
	/* OP_QUERY, OP_META, OP_PREFS_*: the answer goes to req (user
	 * archives) or, for a room, as a reply to iq from 'archive' to
	 * 'requester'. */
	struct xml_node *iq;
	struct jid archive, requester;
	char *queryid;
	struct mam_query q;
	int64_t *ids;
	char *with, *with_resource, *text;
	int stage; /* OP_QUERY: 0 check the ids, 2 the page; OP_META: 0, 1 */
	/* OP_QUERY: the ids the query names (form after-id, before-id and
	 * ids, RSM after and before), each once: every one must name a
	 * message of the archive (XEP-0313, "Limiting results by id") */
	int64_t *checks;
	size_t nchecks;
	bool empty;             /* answer an empty complete page without asking */
	bool zero;              /* RSM max 0: an empty page, not complete */
	bool flip;              /* <flip-page/>: the page in descending order */
	struct xml_node *meta;  /* OP_META: the answer built so far */
	struct mam_prefs prefs; /* OP_PREFS_SET: what is written (strings owned) */
};

static void op_free(struct mam_op *op);

static void op_free_pending(struct pending_op *p)
{
	op_free((struct mam_op *)p);
}

static void op_init(struct mam_op *op, struct mam_state *ms, enum mam_op_kind kind)
{
	op->ms = ms;
	op->kind = kind;
	op->host = ms->host;
	op->p.outlives_stop = kind == OP_STORE;
	pending_track(&ms->ops, &op->p, op_free_pending);
}

static struct mam_op *op_new(struct mam_state *ms, enum mam_op_kind kind, const char *owner)
{
	struct mam_op *op = xcalloc(1, sizeof(*op));
	op->owner = xstrdup(owner);
	op_init(op, ms, kind);
	return op;
}

/* A store's op with its strings in the same allocation (a store runs per
 * archived message): the owner's bare JID (node@host), the user (NULL for
 * a room), the peer's bare JID and the resource. */
static struct mam_op *store_op_new(struct mam_state *ms, const char *node, const char *host, const char *user,
                                   const struct jid *peer, const char *resource)
{
	size_t l_node = strlen(node), l_host = strlen(host);
	size_t l_user = user != NULL ? strlen(user) + 1 : 0;
	size_t l_pnode = peer->node != NULL ? strlen(peer->node) + 1 : 0;
	size_t l_pdomain = strlen(peer->domain), l_res = strlen(resource);
	size_t total = l_node + 1 + l_host + 1 + l_user + l_pnode + l_pdomain + 1 + l_res + 1;
	struct mam_op *op = xcalloc(1, sizeof(*op) + total);
	char *w = (char *)(op + 1);
	op->packed = true;
	op->owner = w;
	w = (char *)memcpy(w, node, l_node) + l_node;
	*w++ = '@';
	w = (char *)memcpy(w, host, l_host + 1) + l_host + 1;
	if (user != NULL) {
		op->user = w;
		w = (char *)memcpy(w, user, l_user) + l_user;
	}
	op->msg.peer = w;
	if (peer->node != NULL) {
		w = (char *)memcpy(w, peer->node, l_pnode - 1) + l_pnode - 1;
		*w++ = '@';
	}
	w = (char *)memcpy(w, peer->domain, l_pdomain + 1) + l_pdomain + 1;
	op->msg.resource = memcpy(w, resource, l_res + 1);
	op_init(op, ms, OP_STORE);
	return op;
}

static void prefs_clear(struct mam_prefs *p)
{
	for (size_t i = 0; i < p->n_always; i++)
		free((char *)p->always[i]);
	for (size_t i = 0; i < p->n_never; i++)
		free((char *)p->never[i]);
	free((void *)p->always);
	free((void *)p->never);
	memset(p, 0, sizeof(*p));
}

static void op_free(struct mam_op *op)
{
	pending_untrack(&op->p);
	if (ev_is_active(&op->retry))
		ev_timer_stop(server.loop, &op->retry);
	barrier_release(&op->hold);
	if (!op->packed) {
		free((char *)op->msg.peer);
		free((char *)op->msg.resource);
		free(op->owner);
		free(op->user);
	}
	if (op->tree != NULL)
		xml_unref(&op->tree);
	if (op->iq != NULL)
		xml_unref(&op->iq);
	if (op->meta != NULL)
		xml_unref(&op->meta);
	jid_clear(&op->archive);
	jid_clear(&op->requester);
	free(op->queryid);
	free(op->ids);
	free(op->checks);
	free(op->with);
	free(op->with_resource);
	free(op->text);
	prefs_clear(&op->prefs);
	free(op);
}

static struct storage *mam_store(const struct host *h)
{
	return host_store(h, STORAGE_AREA_MAM);
}

/* ---- what is archived --------------------------------------------------------- */

static bool archivable(const struct xml_node *msg)
{
	const char *type = xml_attr(msg, "type");
	if (type != NULL && strcmp(type, "normal") != 0 && strcmp(type, "chat") != 0)
		return false;
	if (xml_child(msg, "no-store", NS_HINTS) != NULL ||
	    xml_child(msg, "no-permanent-store", NS_HINTS) != NULL)
		return false;
	return xml_child(msg, "body", NULL) != NULL || xml_child(msg, "encrypted", NS_OMEMO) != NULL ||
	       xml_child(msg, "openpgp", NS_OX) != NULL || xml_child(msg, "store", NS_HINTS) != NULL;
}

/* Whether user archives a message with peer (a bare JID), as far as the
 * cache knows: CHECK_NONE with *yes_r, or what must be read first. */
static enum mam_check decide(struct mam_state *ms, const char *user, const char *peer, bool *yes_r)
{
	*yes_r = true;
	struct mam_user *u = user_cache_get(&ms->cache, user);
	if (u == NULL || !u->loaded)
		return CHECK_PREFS;
	if (strlist_contains(&u->always, peer))
		return CHECK_NONE;
	if (strlist_contains(&u->never, peer)) {
		*yes_r = false;
		return CHECK_NONE;
	}
	switch (u->def) {
	case MAM_DEFAULT_ALWAYS: return CHECK_NONE;
	case MAM_DEFAULT_NEVER: *yes_r = false; return CHECK_NONE;
	case MAM_DEFAULT_ROSTER: return CHECK_ROSTER;
	}
	return CHECK_NONE;
}

/* ---- storing ------------------------------------------------------------------------ */

static void failed_say(const struct log_summary *s, unsigned n)
{
	(void)s;
	log_warning("mam: %u more storage failure%s while archiving messages (left out of the "
	            "log since the last line)",
	            n, n == 1 ? "" : "s");
}

static struct log_summary failed_logs = { .limit.every = 1.0, .module = "mam", .say = failed_say };

/* A failure while archiving op's message: "cannot <what> (storage <res>)
 * <then>", written now or left out and counted (see the top). */
static void store_failed_log(const struct mam_op *op, const char *what, enum storage_result res,
                             const char *then)
{
	unsigned more;
	if (!log_summary_pass(&failed_logs, server.loop, &more))
		return;
	char extra[LOG_LIMIT_MORE_SIZE];
	log_limit_more(more, extra);
	log_warning("mam: cannot %s %s (storage %s)%s%s", what, op->owner, storage_result_str(res), then,
	            extra);
}

static void store_write(struct mam_op *op);

static void store_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
	latency_begin(LATENCY_MODULE, "mam");
	struct mam_op *op = w->data;
	(void)loop;
	(void)revents;
	store_write(op);
	latency_end();
}

static void stored(enum storage_result res, void *ctx)
{
	struct mam_op *op = ctx;
	pending_resume(&op->p); /* a store goes on after a stop too */
	if (res == STORAGE_TEMPFAIL && op->retries < RETRY_TRIES) {
		/* The backend is busy (a burst filled its queue): later, still
		 * holding the sender's answers back. */
		double delay = RETRY_FIRST * (double)(1u << op->retries);
		op->retries++;
		if (op->retries > RETRY_HOLD_TRIES)
			barrier_release(&op->hold);
		ev_timer_init(&op->retry, store_retry, delay < RETRY_MAX ? delay : RETRY_MAX, 0);
		op->retry.data = op;
		ev_timer_start(server.loop, &op->retry);
		pending_idle(&op->p);
		return;
	}
	if (res == STORAGE_EXISTS && ++op->tries < STORE_TRIES) {
		/* Another message has this id (the clock went back): a new one. */
		op->msg.id = mam_next_id();
		if (mam_has_stanza_id(op->tree, op->owner)) {
			struct xml_node *t = mam_stamp_copy(op->tree, op->owner, op->msg.id);
			xml_unref(&op->tree);
			op->tree = t;
		}
		store_write(op);
		return;
	}
	if (res != STORAGE_OK)
		store_failed_log(op, "archive a message of", res, "");
	else
		log_debug("mam: archived %" PRId64 " for %s", op->msg.id, op->owner);
	op_free(op);
}

/* The stanza of the row being written: serialised into one buffer of the
 * loop thread, which the store's job copies (an op keeps its tree, not a
 * serialised copy of it, from the start to the commit). */
static struct buf row_stanza;

static void store_write(struct mam_op *op)
{
	struct mam_message m = op->msg;
	buf_reset(&row_stanza);
	xml_serialize(&row_stanza, op->tree, op->tree->ns);
	m.stanza = row_stanza.data;
	/* The body a store indexes for full-text search, or NULL: none, or
	 * full-text search is off (the store then keeps no index of it). */
	m.body = op->fulltext ? xml_child_text(op->tree, "body", NULL) : NULL;
	pending_wait_storage(
	        &op->p, storage_mam_store(mam_store(op->host), op->host->name, op->owner, &m, stored, op));
}

static void store_roster_read(enum storage_result res, const struct roster_item *items, size_t count,
                              uint64_t version, void *ctx)
{
	struct mam_op *op = ctx;
	(void)version;
	if (!pending_resume(&op->p))
		return;
	if (res == STORAGE_OK || res == STORAGE_NOT_FOUND) {
		const struct roster_item *it =
		        res == STORAGE_OK ? roster_find_item(items, count, op->msg.peer) : NULL;
		if (it == NULL || roster_item_pending_only(it)) {
			log_debug("mam: %s is not in the roster of %s: not archived", op->msg.peer,
			          op->owner);
			op_free(op);
			return;
		}
	} else {
		store_failed_log(op, "read the roster of", res, "; archiving a message");
	}
	store_write(op);
}

static void store_prefs_read(enum storage_result res, const struct mam_prefs *prefs, void *ctx)
{
	struct mam_op *op = ctx;
	if (!pending_resume(&op->p))
		return;
	if (!pending_listed(&op->p)) {
		store_write(op); /* the module stopped: the stanza-id was given */
		return;
	}
	enum mam_default def = (enum mam_default)op->ms->set->def;
	if (res == STORAGE_OK) {
		for (size_t i = 0; i < prefs->n_always; i++)
			if (strcmp(prefs->always[i], op->msg.peer) == 0)
				goto write;
		for (size_t i = 0; i < prefs->n_never; i++) {
			if (strcmp(prefs->never[i], op->msg.peer) == 0) {
				op_free(op);
				return;
			}
		}
		def = prefs->def;
	} else if (res != STORAGE_NOT_FOUND) {
		store_failed_log(op, "read the preferences of", res, "; archiving a message");
		goto write;
	}
	if (def == MAM_DEFAULT_NEVER) {
		op_free(op);
		return;
	}
	if (def == MAM_DEFAULT_ROSTER) {
		pending_wait_storage(&op->p,
		                     storage_roster_get(host_store(op->host, STORAGE_AREA_ROSTER),
		                                        op->host->name, op->user, store_roster_read, op));
		return;
	}
write:
	store_write(op);
}

static void store_prefs_start(struct mam_op *op)
{
	pending_wait_storage(&op->p, storage_mam_prefs_get(mam_store(op->host), op->host->name, op->owner,
	                                                   store_prefs_read, op));
}

static void store_account_read(enum auth_result res, void *ctx)
{
	struct mam_op *op = ctx;
	if (!pending_resume(&op->p))
		return;
	if (res == AUTH_NO_USER) {
		log_debug("mam: no account %s: not archived", op->owner);
		op_free(op);
		return;
	}
	if (!pending_listed(&op->p)) {
		store_write(op);
		return;
	}
	store_prefs_start(op);
}

/* Archive tree (a reference is taken) for user (its local part) with
 * peer under id. */
static void store_start(struct mam_state *ms, const char *user, const struct jid *peer, bool outgoing,
                        struct xml_node *tree, int64_t id, enum mam_check check)
{
	struct host *h = ms->host;
	struct mam_op *op =
	        store_op_new(ms, user, h->name, user, peer, peer->resource != NULL ? peer->resource : "");
	xml_ref(tree);
	op->tree = tree;
	op->msg.id = id;
	op->msg.outgoing = outgoing;
	op->fulltext = ms->set->fulltext;
	op->check = check;
	op->hold = barrier_take();
	if (check == CHECK_PREFS && !outgoing && user_cache_get(&ms->cache, user) == NULL)
		/* No session: is there such an account at all? */
		pending_wait_auth(&op->p, auth_user_exists(h->auth, op->user, store_account_read, op));
	else if (check == CHECK_PREFS)
		store_prefs_start(op);
	else if (check == CHECK_ROSTER)
		pending_wait_storage(&op->p, storage_roster_get(host_store(h, STORAGE_AREA_ROSTER), h->name,
		                                                op->user, store_roster_read, op));
	else
		store_write(op);
}

static void last_in_clear(struct last_in *l)
{
	if (l->msg != NULL)
		xml_unref(&l->msg);
	memset(l, 0, sizeof(*l));
}

/* Whether attribute attr of msg names j (bare: its bare JID). */
static bool attr_names(const struct xml_node *msg, const char *attr, const struct jid *j, bool bare)
{
	const char *v = xml_attr(msg, attr);
	struct jid a = { 0 };
	bool same =
	        v != NULL && jid_parse(v, &a, NULL) == 0 && (bare ? jid_bare_equal(&a, j) : jid_equal(&a, j));
	jid_clear(&a);
	return same;
}

/* The id under which msg, from from to a resource of to's user, was
 * archived already (see struct last_in), or 0.  The whole messages are
 * compared first: the addresses are parsed only for a copy. */
static int64_t last_in_id(const struct last_in *l, const struct jid *to, const struct jid *from,
                          const struct xml_node *msg)
{
	if (l->msg == NULL || l->iteration != ev_iteration(server.loop) || !xml_same(msg, l->msg, "to") ||
	    !attr_names(l->msg, "from", from, false) || !attr_names(l->msg, "to", to, true))
		return 0;
	return l->id;
}

/* Remember msg as the last incoming message archived, under id: a
 * reference, nothing copied (the hot path of every archived message). */
static void last_in_set(struct last_in *l, struct xml_node *msg, int64_t id)
{
	last_in_clear(l);
	xml_ref(msg);
	l->msg = msg;
	l->id = id;
	l->iteration = ev_iteration(server.loop);
}

/* A message to a local user: archived in the user's archive, delivered
 * with its stanza-id.  A copy to a resource of a message archived for
 * another resource of the user in this loop iteration (struct last_in)
 * is delivered under that message's id and not archived again. */
static enum hook_result mam_stanza_in(struct host *h, void *args, void *ctx)
{
	struct mam_state *ms = ctx;
	struct hook_packet *hp = args;
	struct xml_node *msg = hp->replace != NULL ? hp->replace : hp->stanza;
	if (hp->to == NULL || hp->to->node == NULL || stanza_kind(msg) != STANZA_MESSAGE ||
	    strcmp(hp->to->domain, h->name) != 0)
		return HOOK_CONTINUE;
	char owner[3 * 1024 + 2];
	snprintf(owner, sizeof(owner), "%s@%s", hp->to->node, h->name);
	bool yes = false;
	enum mam_check check = CHECK_NONE;
	if (hp->from != NULL && archivable(msg)) {
		char *peer = jid_bare_string(hp->from);
		check = decide(ms, hp->to->node, peer, &yes);
		free(peer);
	}
	if (!yes && !mam_has_stanza_id(msg, owner))
		return HOOK_CONTINUE;
	int64_t id = 0;
	if (yes && hp->to->resource != NULL && hp->from->resource != NULL) {
		id = last_in_id(&ms->last_in, hp->to, hp->from, msg);
		if (id != 0)
			yes = false; /* archived already */
		else
			last_in_set(&ms->last_in, msg, id = mam_next_id());
	} else if (yes) {
		id = mam_next_id();
	}
	struct xml_node *copy = mam_stamp_copy(msg, owner, id);
	if (yes)
		store_start(ms, hp->to->node, hp->from, false, copy, id, check);
	if (hp->replace != NULL)
		xml_unref(&hp->replace);
	hp->replace = copy;
	return HOOK_CONTINUE;
}

/* A message a local user sends: archived in the sender's archive; its id
 * is hp->archive_id for the callbacks after this one.  A message to the
 * user's own account is archived once, as it comes in (mam_stanza_in):
 * XEP-0313 keeps a stanza only once in one archive. */
static enum hook_result mam_send(struct host *h, void *args, void *ctx)
{
	struct mam_state *ms = ctx;
	struct hook_packet *hp = args;
	(void)h;
	if (hp->session == NULL || hp->to == NULL || stanza_kind(hp->stanza) != STANZA_MESSAGE ||
	    !archivable(hp->stanza))
		return HOOK_CONTINUE;
	if (jid_bare_equal(&hp->session->jid, hp->to))
		return HOOK_CONTINUE;
	const char *user = hp->session->jid.node;
	char *peer = jid_bare_string(hp->to);
	bool yes;
	enum mam_check check = decide(ms, user, peer, &yes);
	free(peer);
	if (yes) {
		hp->archive_id = mam_next_id();
		store_start(ms, user, hp->to, true, hp->stanza, hp->archive_id, check);
	}
	return HOOK_CONTINUE;
}

/* ---- preferences cache ----------------------------------------------------------- */

static void strlist_from(struct strlist *l, const char *const *items, size_t n)
{
	strlist_free(l);
	l->items = n > 0 ? xcalloc(n, sizeof(*l->items)) : NULL;
	for (size_t i = 0; i < n; i++)
		l->items[i] = xstrdup(items[i]);
	l->count = n;
}

static void user_set_prefs(struct mam_user *u, const struct mam_prefs *p)
{
	u->def = p->def;
	strlist_from(&u->always, p->always, p->n_always);
	strlist_from(&u->never, p->never, p->n_never);
	u->loaded = true;
}

static void loaded(enum storage_result res, const struct mam_prefs *prefs, void *ctx)
{
	struct mam_op *op = ctx;
	if (!pending_resume(&op->p))
		return;
	struct mam_user *u = user_cache_get(&op->ms->cache, op->user);
	if (u != NULL && u->gen == op->gen && !u->loaded) {
		if (res == STORAGE_OK) {
			user_set_prefs(u, prefs);
		} else if (res == STORAGE_NOT_FOUND) {
			struct mam_prefs def = { .def = (enum mam_default)op->ms->set->def };
			user_set_prefs(u, &def);
		} else {
			log_warning(
			        "mam: cannot read the preferences of %s (storage %s); its stores read them",
			        op->owner, storage_result_str(res));
		}
	}
	op_free(op);
}

static void user_opened(struct user_cache_entry *e, struct session *s, void *ctx)
{
	struct mam_state *ms = ctx;
	struct mam_user *u = (struct mam_user *)e;
	(void)s;
	if (e->sessions != 1)
		return;
	char *owner = xasprintf("%s@%s", e->user, ms->host->name);
	struct mam_op *op = op_new(ms, OP_LOAD, owner);
	free(owner);
	op->user = xstrdup(e->user);
	op->gen = u->gen;
	pending_wait_storage(
	        &op->p, storage_mam_prefs_get(mam_store(ms->host), ms->host->name, op->owner, loaded, op));
}

static void user_clear(struct user_cache_entry *e, void *ctx)
{
	struct mam_user *u = (struct mam_user *)e;
	(void)ctx;
	strlist_free(&u->always);
	strlist_free(&u->never);
}

/* ---- answers ------------------------------------------------------------------------ */

static void answer_error(struct mam_op *op, enum stanza_error e, const char *text)
{
	if (op->p.req != NULL) {
		iq_error(op->p.req, e, text);
		op->p.req = NULL;
		return;
	}
	struct xml_node *reply = stanza_error_reply(op->iq, e, text);
	if (reply != NULL) {
		xml_set_attr(reply, "from", jid_to_pool(reply->pool, &op->archive));
		xml_set_attr(reply, "to", jid_to_pool(reply->pool, &op->requester));
		router_route(reply, &op->archive, &op->requester);
		xml_unref(&reply);
	}
}

/* Answer a failed storage call and free op. */
static void answer_storage(struct mam_op *op, enum storage_result res)
{
	if (op->p.req != NULL) {
		errmap_iq_storage(op->p.req, res, "the message archive");
		op->p.req = NULL;
	} else {
		answer_error(op, errmap_storage(res), NULL);
	}
	op_free(op);
}

static void answer_result(struct mam_op *op, const struct xml_node *payload)
{
	if (op->p.req != NULL) {
		iq_result(op->p.req, payload);
		op->p.req = NULL;
		return;
	}
	struct xml_node *reply = stanza_iq_result(op->iq);
	if (payload != NULL)
		xml_append_copy(reply, payload);
	xml_set_attr(reply, "from", jid_to_pool(reply->pool, &op->archive));
	xml_set_attr(reply, "to", jid_to_pool(reply->pool, &op->requester));
	router_route(reply, &op->archive, &op->requester);
	xml_unref(&reply);
}

/* ---- queries ------------------------------------------------------------------------ */

static const struct xml_parser_limits stored_limits = {
	.max_stanza = 1024 * 1024,
	.max_depth = 64,
	.max_attrs = 64,
};

/* The <message/> that carries one result. */
static struct xml_node *result_message(struct mam_op *op, const struct mam_message *m)
{
	const char *err = NULL;
	struct xml_node *orig =
	        xml_parse_string(m->stanza, strlen(m->stanza), NS_CLIENT, &stored_limits, &err);
	if (orig == NULL) {
		log_error("mam: message %" PRId64 " of %s does not parse (%s); left out", m->id, op->owner,
		          err != NULL ? err : "?");
		return NULL;
	}
	char ids[24], stamp[XEP82_STAMP_LEN];
	id_str(ids, m->id);
	xep82_stamp_us(stamp, m->id, 6);
	struct xml_node *msg = xml_new("message", NS_CLIENT);
	xml_set_attr(msg, "from", jid_to_pool(msg->pool, &op->archive));
	xml_set_attr(msg, "to", jid_to_pool(msg->pool, &op->requester));
	xml_set_attr(msg, "id", ids);
	struct xml_node *res = xml_add_child(msg, "result", NS_MAM);
	if (op->queryid != NULL)
		xml_set_attr(res, "queryid", op->queryid);
	xml_set_attr(res, "id", ids);
	struct xml_node *fwd = xml_add_child(res, "forwarded", NS_FORWARD);
	struct xml_node *delay = xml_add_child(fwd, "delay", NS_DELAY);
	xml_set_attr(delay, "stamp", stamp);
	orig->ns = NS_CLIENT;
	xml_append_copy(fwd, orig);
	xml_unref(&orig);
	return msg;
}

static void query_page(enum storage_result res, const struct mam_message *msgs, size_t count, bool complete,
                       void *ctx);

static void query_run(struct mam_op *op)
{
	struct storage *st = mam_store(op->host);
	if (op->stage == 0 && op->nchecks == 0)
		op->stage = 2;
	if (op->stage < 2) {
		/* Do the ids the query names all name messages of the archive? */
		struct mam_query check = { .max = (unsigned)op->nchecks };
		check.ids = op->checks;
		check.nids = op->nchecks;
		pending_wait_storage(
		        &op->p, storage_mam_query(st, op->host->name, op->owner, &check, query_page, op));
		return;
	}
	if (op->empty || op->zero) {
		query_page(STORAGE_OK, NULL, 0, op->empty, op);
		return;
	}
	pending_wait_storage(&op->p,
	                     storage_mam_query(st, op->host->name, op->owner, &op->q, query_page, op));
}

static void query_page(enum storage_result res, const struct mam_message *msgs, size_t count, bool complete,
                       void *ctx)
{
	struct mam_op *op = ctx;
	if (op->stage < 2 || !(op->empty || op->zero)) {
		if (!pending_resume(&op->p))
			return;
	}
	if (res != STORAGE_OK) {
		answer_storage(op, res);
		return;
	}
	if (op->stage < 2) {
		if (count < op->nchecks) {
			answer_error(op, SE_ITEM_NOT_FOUND, "no message in the archive has that id");
			op_free(op);
			return;
		}
		op->stage = 2;
		query_run(op);
		return;
	}
	log_debug("mam: query of the archive of %s by %s%s%s: %zu messages%s", op->owner,
	          op->requester.node != NULL ? op->requester.node : "", op->requester.node != NULL ? "@" : "",
	          op->requester.domain, count, complete ? ", complete" : "");
	struct xml_node **out = count > 0 ? xcalloc(count, sizeof(*out)) : NULL;
	for (size_t i = 0; i < count; i++)
		out[i] = result_message(op, &msgs[op->flip ? count - 1 - i : i]);
	struct xml_node *fin = xml_new("fin", NS_MAM);
	if (complete)
		xml_set_attr(fin, "complete", "true");
	struct xml_node *set = xml_add_child(fin, "set", NS_RSM);
	if (count > 0) {
		char ids[24];
		id_str(ids, msgs[0].id);
		xml_add_text(xml_add_child(set, "first", NS_RSM), ids, strlen(ids));
		id_str(ids, msgs[count - 1].id);
		xml_add_text(xml_add_child(set, "last", NS_RSM), ids, strlen(ids));
	}
	/* The results, then the iq result (XEP-0313 §4.1): routed as answers
	 * to the query's hold, they keep that order and their place before
	 * the answers to what the requester sent later. */
	struct barrier_hold *outer =
	        barrier_answer_enter(op->p.req != NULL ? iq_request_hold(op->p.req) : NULL);
	for (size_t i = 0; i < count; i++)
		if (out[i] != NULL)
			router_route(out[i], &op->archive, &op->requester);
	barrier_answer_leave(outer);
	answer_result(op, fin);
	for (size_t i = 0; i < count; i++)
		if (out[i] != NULL)
			xml_unref(&out[i]);
	free(out);
	xml_unref(&fin);
	op_free(op);
}

static void add_field(struct xml_node *x, const char *var, const char *type, const char *value)
{
	struct xml_node *f = xml_add_child(x, "field", NS_DATA_FORMS);
	xml_set_attr(f, "var", var);
	xml_set_attr(f, "type", type);
	if (value != NULL)
		xml_add_text(xml_add_child(f, "value", NS_DATA_FORMS), value, strlen(value));
}

static struct xml_node *query_form(const struct mam_settings *set)
{
	struct xml_node *q = iq_payload_new("query", NS_MAM);
	struct xml_node *x = xml_add_child(q, "x", NS_DATA_FORMS);
	xml_set_attr(x, "type", "form");
	add_field(x, "FORM_TYPE", "hidden", NS_MAM);
	add_field(x, "with", "jid-single", NULL);
	add_field(x, "start", "text-single", NULL);
	add_field(x, "end", "text-single", NULL);
	add_field(x, "before-id", "text-single", NULL);
	add_field(x, "after-id", "text-single", NULL);
	add_field(x, "ids", "list-multi", NULL);
	struct xml_node *v = xml_add_child(x->last_child, "validate", NS_XDATA_VALIDATE);
	xml_set_attr(v, "datatype", "xs:string");
	xml_add_child(v, "open", NS_XDATA_VALIDATE);
	if (set->fulltext)
		add_field(x, FIELD_FULLTEXT, "text-single", NULL);
	return q;
}

/* An id the query names: parsed into *id_r and kept to be checked (false,
 * op answered, when it cannot name a message). */
static bool check_id(struct mam_op *op, const char *text, int64_t *id_r)
{
	if (!mam_id_parse(text, id_r)) {
		answer_error(op, SE_ITEM_NOT_FOUND, "no message in the archive has that id");
		return false;
	}
	for (size_t i = 0; i < op->nchecks; i++)
		if (op->checks[i] == *id_r)
			return true;
	op->checks = xrealloc(op->checks, (op->nchecks + 1) * sizeof(*op->checks));
	op->checks[op->nchecks++] = *id_r;
	return true;
}

/* Parse the query's form and RSM set into op; false (op answered) on a
 * bad one. */
static bool query_parse(struct mam_op *op, const struct mam_settings *set, const struct xml_node *query)
{
	int64_t start = 0, end = 0;
	const struct xml_node *x = xml_child(query, "x", NS_DATA_FORMS);
	for (const struct xml_node *f = x != NULL ? xml_child(x, "field", NS_DATA_FORMS) : NULL; f != NULL;
	     f = xml_next(f, "field", NS_DATA_FORMS)) {
		const char *var = xml_attr(f, "var");
		const char *value = xml_child_text(f, "value", NS_DATA_FORMS);
		if (var == NULL) {
			answer_error(op, SE_BAD_REQUEST, "a field without var");
			return false;
		}
		if (strcmp(var, "ids") == 0) {
			for (const struct xml_node *v = xml_child(f, "value", NS_DATA_FORMS); v != NULL;
			     v = xml_next(v, "value", NS_DATA_FORMS)) {
				if (op->q.nids == MAX_IDS) {
					answer_error(op, SE_BAD_REQUEST, "too many ids");
					return false;
				}
				int64_t id;
				if (!check_id(op, xml_text(v), &id))
					return false;
				op->ids = xrealloc(op->ids, (op->q.nids + 1) * sizeof(*op->ids));
				op->ids[op->q.nids++] = id;
			}
			if (op->q.nids == 0)
				op->empty = true; /* no id asked for: nothing matches */
			continue;
		}
		if (value == NULL || *value == '\0')
			continue;
		if (strcmp(var, "FORM_TYPE") == 0) {
			if (strcmp(value, NS_MAM) != 0) {
				answer_error(op, SE_BAD_REQUEST, "FORM_TYPE is not " NS_MAM);
				return false;
			}
		} else if (strcmp(var, "with") == 0) {
			struct jid w;
			const char *err;
			if (jid_parse(value, &w, &err) != 0) {
				answer_error(op, SE_BAD_REQUEST, "with: not a JID");
				return false;
			}
			free(op->with);
			free(op->with_resource);
			op->with = jid_bare_string(&w);
			op->with_resource = w.resource != NULL ? xstrdup(w.resource) : NULL;
			jid_clear(&w);
		} else if (strcmp(var, "start") == 0 || strcmp(var, "end") == 0) {
			int64_t t;
			if (!xep82_parse(value, &t)) {
				answer_error(op, SE_BAD_REQUEST, "start and end are XEP-0082 date-times");
				return false;
			}
			if (var[0] == 's')
				start = t;
			else
				end = t;
		} else if (strcmp(var, "after-id") == 0 || strcmp(var, "before-id") == 0) {
			int64_t id;
			if (!check_id(op, value, &id))
				return false;
			if (var[0] == 'a')
				op->q.after_id = id;
			else
				op->q.before_id = id;
		} else if (strcmp(var, FIELD_FULLTEXT) == 0 && set->fulltext) {
			free(op->text);
			op->text = xstrdup(value);
		} else {
			/* a field the server does not know (XEP-0313, "Retrieving form fields") */
			char *text = xasprintf("the field %s is not supported", var);
			answer_error(op, SE_FEATURE_NOT_IMPLEMENTED, text);
			free(text);
			return false;
		}
	}
	/* Form ids bound the range (exclusive); RSM ids page. */
	if (op->q.after_id != 0 && (start == 0 || op->q.after_id + 1 > start))
		start = op->q.after_id + 1;
	if (op->q.before_id != 0 && (end == 0 || op->q.before_id - 1 < end))
		end = op->q.before_id - 1;
	op->q.after_id = op->q.before_id = 0;
	op->q.start = start;
	op->q.end = end;
	if ((start != 0 && end != 0 && start > end) || end < 0)
		op->empty = true;

	unsigned max = set->max_page < DEFAULT_PAGE ? set->max_page : DEFAULT_PAGE;
	const struct xml_node *rsm = xml_child(query, "set", NS_RSM);
	if (rsm != NULL) {
		if (xml_child(rsm, "index", NS_RSM) != NULL) {
			answer_error(op, SE_FEATURE_NOT_IMPLEMENTED, "RSM index is not supported");
			return false;
		}
		const char *m = xml_child_text(rsm, "max", NS_RSM);
		if (m != NULL) {
			char *endp;
			if (*m < '0' || *m > '9' || strlen(m) > 12) {
				answer_error(op, SE_BAD_REQUEST, "max is a non-negative integer");
				return false;
			}
			unsigned long long v = strtoull(m, &endp, 10);
			if (*endp != '\0') {
				answer_error(op, SE_BAD_REQUEST, "max is a non-negative integer");
				return false;
			}
			max = v > set->max_page ? set->max_page : (unsigned)v;
			if (v == 0)
				op->zero = true;
		}
		const char *after = xml_child_text(rsm, "after", NS_RSM);
		const char *before = xml_child_text(rsm, "before", NS_RSM);
		if (after != NULL && !check_id(op, after, &op->q.after_id))
			return false;
		if (before != NULL) {
			op->q.backwards = true;
			if (*before != '\0' && !check_id(op, before, &op->q.before_id))
				return false;
		}
	}
	op->q.max = max > 0 ? max : 1;
	op->q.with = op->with;
	op->q.with_resource = op->with_resource;
	op->q.ids = op->ids;
	op->q.text = op->text;
	return true;
}

/* Start answering a query of owner's archive; op->archive, requester and
 * the answer's way are set. */
static void query_start(struct mam_op *op, const struct mam_settings *set, const struct xml_node *query,
                        bool get)
{
	if (get) {
		struct xml_node *form = query_form(set);
		answer_result(op, form);
		xml_unref(&form);
		op_free(op);
		return;
	}
	op->flip = xml_child(query, "flip-page", NS_MAM) != NULL;
	const char *qid = xml_attr(query, "queryid");
	op->queryid = qid != NULL ? xstrdup(qid) : NULL;
	if (!query_parse(op, set, query)) {
		op_free(op);
		return;
	}
	query_run(op);
}

/* ---- metadata (§7) ------------------------------------------------------------------- */

static void meta_page(enum storage_result res, const struct mam_message *msgs, size_t count, bool complete,
                      void *ctx)
{
	struct mam_op *op = ctx;
	(void)complete;
	if (!pending_resume(&op->p))
		return;
	if (res != STORAGE_OK) {
		answer_storage(op, res);
		return;
	}
	if (op->meta == NULL)
		op->meta = iq_payload_new("metadata", NS_MAM);
	if (count > 0) {
		char ids[24], stamp[XEP82_STAMP_LEN];
		id_str(ids, msgs[0].id);
		xep82_stamp_us(stamp, msgs[0].id, 6);
		struct xml_node *e = xml_add_child(op->meta, op->stage == 0 ? "start" : "end", NS_MAM);
		xml_set_attr(e, "id", ids);
		xml_set_attr(e, "timestamp", stamp);
	}
	if (op->stage == 0 && count > 0) {
		op->stage = 1;
		struct mam_query q = { .max = 1, .backwards = true };
		pending_wait_storage(&op->p, storage_mam_query(mam_store(op->host), op->host->name, op->owner,
		                                               &q, meta_page, op));
		return;
	}
	answer_result(op, op->meta);
	op_free(op);
}

static void meta_start(struct mam_op *op)
{
	struct mam_query q = { .max = 1 };
	pending_wait_storage(
	        &op->p, storage_mam_query(mam_store(op->host), op->host->name, op->owner, &q, meta_page, op));
}

/* ---- preferences (§6) ----------------------------------------------------------------- */

static struct xml_node *prefs_element(const struct mam_prefs *p)
{
	struct xml_node *el = iq_payload_new("prefs", NS_MAM);
	xml_set_attr(el, "default", default_names[p->def]);
	struct xml_node *a = xml_add_child(el, "always", NS_MAM);
	for (size_t i = 0; i < p->n_always; i++)
		xml_add_text(xml_add_child(a, "jid", NS_MAM), p->always[i], strlen(p->always[i]));
	struct xml_node *n = xml_add_child(el, "never", NS_MAM);
	for (size_t i = 0; i < p->n_never; i++)
		xml_add_text(xml_add_child(n, "jid", NS_MAM), p->never[i], strlen(p->never[i]));
	return el;
}

/* Answer with p and free op. */
static void answer_prefs(struct mam_op *op, const struct mam_prefs *p)
{
	struct xml_node *el = prefs_element(p);
	answer_result(op, el);
	xml_unref(&el);
	op_free(op);
}

static void prefs_read(enum storage_result res, const struct mam_prefs *prefs, void *ctx)
{
	struct mam_op *op = ctx;
	if (!pending_resume(&op->p))
		return;
	struct mam_prefs def = { .def = (enum mam_default)op->ms->set->def };
	if (res == STORAGE_NOT_FOUND) {
		prefs = &def;
	} else if (res != STORAGE_OK) {
		answer_storage(op, res);
		return;
	}
	answer_prefs(op, prefs);
}

static void prefs_written(enum storage_result res, void *ctx)
{
	struct mam_op *op = ctx;
	if (!pending_resume(&op->p))
		return;
	if (res != STORAGE_OK) {
		answer_storage(op, res);
		return;
	}
	struct mam_user *u = user_cache_get(&op->ms->cache, op->user);
	if (u != NULL) {
		user_set_prefs(u, &op->prefs);
		u->gen++;
	}
	answer_prefs(op, &op->prefs);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The bare JIDs of list (<always/> or <never/>), sorted, without
 * duplicates; -1 on a bad one. */
static int prefs_list(const struct xml_node *list, const char ***out_r, size_t *n_r)
{
	*out_r = NULL;
	*n_r = 0;
	if (list == NULL)
		return 0;
	size_t n = 0;
	const char **out = NULL;
	for (const struct xml_node *j = xml_child(list, "jid", NS_MAM); j != NULL;
	     j = xml_next(j, "jid", NS_MAM)) {
		struct jid parsed;
		const char *err;
		if (jid_parse(xml_text(j), &parsed, &err) != 0) {
			for (size_t i = 0; i < n; i++)
				free((char *)out[i]);
			free(out);
			return -1;
		}
		out = xrealloc(out, (n + 1) * sizeof(*out));
		out[n++] = jid_bare_string(&parsed);
		jid_clear(&parsed);
	}
	if (n > 1)
		qsort(out, n, sizeof(*out), cmp_str);
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (k > 0 && strcmp(out[k - 1], out[i]) == 0)
			free((char *)out[i]);
		else
			out[k++] = out[i];
	}
	*out_r = out;
	*n_r = k;
	return 0;
}

static void prefs_set(struct mam_op *op, const struct xml_node *el)
{
	const char *d = xml_attr(el, "default");
	int def = -1;
	for (int i = 0; d != NULL && default_names[i] != NULL; i++)
		if (strcmp(d, default_names[i]) == 0)
			def = i;
	if (def < 0) {
		answer_error(op, SE_BAD_REQUEST, "default is always, never or roster");
		op_free(op);
		return;
	}
	op->prefs.def = (enum mam_default)def;
	const char **a, **n;
	if (prefs_list(xml_child(el, "always", NS_MAM), &a, &op->prefs.n_always) < 0) {
		answer_error(op, SE_JID_MALFORMED, NULL);
		op_free(op);
		return;
	}
	op->prefs.always = a;
	if (prefs_list(xml_child(el, "never", NS_MAM), &n, &op->prefs.n_never) < 0) {
		answer_error(op, SE_JID_MALFORMED, NULL);
		op_free(op);
		return;
	}
	op->prefs.never = n;
	pending_wait_storage(&op->p, storage_mam_prefs_set(mam_store(op->host), op->host->name, op->owner,
	                                                   &op->prefs, prefs_written, op));
}

/* ---- the user iq handler ----------------------------------------------------------------- */

static void mam_iq(struct iq_request *req, void *ctx)
{
	struct mam_state *ms = ctx;
	struct host *h = ms->host;
	if (req->from.node == NULL || strcmp(req->from.domain, h->name) != 0 ||
	    !jid_bare_equal(&req->from, &req->to)) {
		iq_error(req, SE_FORBIDDEN, "an archive is its owner's only");
		return;
	}
	bool get = strcmp(req->type, "get") == 0;
	const struct xml_node *pl = req->payload;
	enum mam_op_kind kind;
	if (strcmp(pl->name, "query") == 0)
		kind = OP_QUERY;
	else if (strcmp(pl->name, "prefs") == 0)
		kind = get ? OP_PREFS_GET : OP_PREFS_SET;
	else if (strcmp(pl->name, "metadata") == 0 && get)
		kind = OP_META;
	else {
		iq_error(req, SE_BAD_REQUEST, NULL);
		return;
	}
	char *owner = jid_bare_string(&req->from);
	struct mam_op *op = op_new(ms, kind, owner);
	free(owner);
	op->p.req = req;
	op->user = xstrdup(req->from.node);
	jid_copy(&op->requester, &req->from);
	jid_set(&op->archive, req->from.node, req->from.domain, NULL);
	switch (kind) {
	case OP_QUERY: query_start(op, ms->set, pl, get); break;
	case OP_PREFS_GET: {
		struct mam_user *u = user_cache_get(&ms->cache, op->user);
		if (u != NULL && u->loaded) {
			struct mam_prefs p = { .def = u->def,
				               .always = (const char *const *)u->always.items,
				               .n_always = u->always.count,
				               .never = (const char *const *)u->never.items,
				               .n_never = u->never.count };
			answer_prefs(op, &p);
			break;
		}
		pending_wait_storage(&op->p,
		                     storage_mam_prefs_get(mam_store(h), h->name, op->owner, prefs_read, op));
		break;
	}
	case OP_PREFS_SET: prefs_set(op, pl); break;
	case OP_META: meta_start(op); break;
	default: break;
	}
}

/* ---- rooms (modules/muc/) ----------------------------------------------------------------- */

static struct mam_state *state_of(const struct host *h)
{
	return module_state(h, "mam");
}

bool mam_room_default(const struct host *h, bool *running_r)
{
	struct mam_state *ms = state_of(h);
	*running_r = ms != NULL;
	return ms != NULL && ms->set->muc;
}

void mam_room_query(struct host *h, struct xml_node *iq, const struct jid *from, const struct jid *room)
{
	struct mam_state *ms = state_of(h);
	const struct xml_node *q = xml_child(iq, "query", NS_MAM);
	const char *type = xml_attr(iq, "type");
	bool get = type != NULL && strcmp(type, "get") == 0;
	if (ms == NULL || q == NULL) {
		struct xml_node *reply = stanza_error_reply(iq, SE_SERVICE_UNAVAILABLE, NULL);
		if (reply != NULL) {
			xml_set_attr(reply, "from", jid_to_pool(reply->pool, room));
			xml_set_attr(reply, "to", jid_to_pool(reply->pool, from));
			router_route(reply, room, from);
			xml_unref(&reply);
		}
		return;
	}
	char *owner = jid_bare_string(room);
	struct mam_op *op = op_new(ms, OP_QUERY, owner);
	free(owner);
	xml_ref(iq);
	op->iq = iq;
	jid_copy(&op->requester, from);
	jid_set(&op->archive, room->node, room->domain, NULL);
	query_start(op, ms->set, q, get);
}

void mam_room_store(struct host *h, const struct jid *room, const char *nick, const struct xml_node *msg,
                    int64_t id)
{
	struct mam_state *ms = state_of(h);
	if (ms == NULL)
		return;
	struct mam_op *op = store_op_new(ms, room->node, room->domain, NULL, room, nick);
	op->msg.id = id;
	op->fulltext = ms->set->fulltext;
	op->tree = xml_copy(msg);
	op->hold = barrier_take();
	store_write(op);
}

static void room_deleted(enum storage_result res, void *ctx)
{
	struct mam_op *op = ctx;
	pending_resume(&op->p);
	if (res != STORAGE_OK && res != STORAGE_NOT_FOUND)
		log_warning("mam: cannot remove the archive of %s (storage %s)", op->owner,
		            storage_result_str(res));
	op_free(op);
}

void mam_room_delete(struct host *h, const struct jid *room)
{
	struct mam_state *ms = state_of(h);
	if (ms == NULL)
		return;
	char *owner = jid_bare_string(room);
	struct mam_op *op = op_new(ms, OP_STORE, owner);
	free(owner);
	pending_wait_storage(&op->p,
	                     storage_mam_owner_delete(mam_store(h), h->name, op->owner, room_deleted, op));
}

/* ---- retention ---------------------------------------------------------------------- */

static void expire_run(struct mam_state *ms);

static void expired(enum storage_result res, uint64_t count, void *ctx)
{
	struct mam_op *op = ctx;
	if (!pending_resume(&op->p))
		return;
	struct mam_state *ms = op->ms;
	op_free(op);
	if (res != STORAGE_OK) {
		log_warning("mam: cannot remove old messages of %s (storage %s)", ms->host->name,
		            storage_result_str(res));
		ms->expiring = false;
		return;
	}
	if (count > 0)
		log_info("mam: removed %" PRIu64 " old messages of %s", count, ms->host->name);
	if (count >= EXPIRE_BATCH) {
		expire_run(ms);
		return;
	}
	ms->expiring = false;
}

static void expire_run(struct mam_state *ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	int64_t now = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
	int64_t before = now - (int64_t)(ms->set->max_age * 1e6);
	ms->expiring = true;
	struct mam_op *op = op_new(ms, OP_EXPIRE, ms->host->name);
	pending_wait_storage(&op->p, storage_mam_expire(mam_store(ms->host), ms->host->name, before,
	                                                EXPIRE_BATCH, expired, op));
}

static void expire_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	latency_begin(LATENCY_MODULE, "mam");
	struct mam_state *ms = w->data;
	(void)loop;
	(void)revents;
	if (!ms->expiring)
		expire_run(ms);
	latency_end();
}

/* ---- module ---------------------------------------------------------------------------- */

static const struct builtin_iq mam_iqs[] = {
	{ IQ_SCOPE_USER, NS_MAM, IQ_PARALLEL, mam_iq },
};

static const struct builtin_hook mam_hooks[] = {
	{ HOOK_STANZA_IN, 90, mam_stanza_in },
	{ HOOK_USER_SEND_PACKET, 55, mam_send },
};

static const struct builtin_parts mam_parts = {
	.iqs = mam_iqs,
	.niqs = ARRAY_SIZE(mam_iqs),
	.hooks = mam_hooks,
	.nhooks = ARRAY_SIZE(mam_hooks),
	.user_feature = NS_MAM,
};

static const char *const extra_features[] = { NS_MAM_EXTENDED, NS_SID };

static int mam_start(struct host *h, const void *settings, void **state_r, char **error_r)
{
	struct storage *st = mam_store(h);
	if (st == NULL || !storage_has_area(st, STORAGE_AREA_MAM)) {
		/* On by default: a host whose store keeps no archives (a
		 * directory-only store) runs without one, and says so. */
		log_notice("mam: the storage of %s keeps no message archives: nothing is archived there",
		           h->name);
		*state_r = NULL;
		return 0;
	}
	struct mam_state *ms = xcalloc(1, sizeof(*ms));
	ms->host = h;
	ms->set = settings;
	if (builtin_parts_add(h, &mam_parts, ms, error_r) < 0) {
		free(ms);
		return -1;
	}
	for (size_t i = 0; i < ARRAY_SIZE(extra_features); i++)
		host_add_user_feature(h, extra_features[i]);
	/* Also on the server JID: clients that look for the archive among
	 * the server's features (Profanity) find it there. */
	host_add_feature(h, NS_MAM);
	if (ms->set->fulltext)
		host_add_user_feature(h, NS_FULLTEXT);
	ms->cache.entry_size = sizeof(struct mam_user);
	ms->cache.opened = user_opened;
	ms->cache.clear = user_clear;
	ms->cache.ctx = ms;
	user_cache_start(&ms->cache, h);
	if (ms->set->max_age > 0) {
		double every = ms->set->expire_interval > 0 ? ms->set->expire_interval : 3600;
		ev_timer_init(&ms->expire, expire_tick, every, every);
		ms->expire.data = ms;
		ev_timer_start(server.loop, &ms->expire);
		ev_unref(server.loop); /* retention alone does not keep the loop running */
	}
	*state_r = ms;
	return 0;
}

static void mam_stop(struct host *h, void *state)
{
	struct mam_state *ms = state;
	if (ms == NULL)
		return; /* no archive on this host's storage */
	if (ev_is_active(&ms->expire)) {
		ev_ref(server.loop);
		ev_timer_stop(server.loop, &ms->expire);
	}
	builtin_parts_remove(h, &mam_parts, ms);
	for (size_t i = 0; i < ARRAY_SIZE(extra_features); i++)
		host_remove_user_feature(h, extra_features[i]);
	host_remove_feature(h, NS_MAM);
	if (ms->set->fulltext)
		host_remove_user_feature(h, NS_FULLTEXT);
	user_cache_stop(&ms->cache);
	pending_stop(&ms->ops);
	last_in_clear(&ms->last_in);
	free(ms);
}

const struct module_def mod_mam = {
	.name = "mam",
	.description = "XEP-0313 message archives of users and rooms, with XEP-0359 stanza ids",
	.options = mam_options,
	.settings_size = sizeof(struct mam_settings),
	.default_enabled = true,
	.start = mam_start,
	.stop = mam_stop,
};
