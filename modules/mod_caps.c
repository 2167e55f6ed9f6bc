/*
 * mod_caps: entity capabilities (XEP-0115) of the sessions of local users,
 * and of the resources of other servers' users that send them presence,
 * learned from the <c/> of their available presence and verified before
 * anyone relies on them (modules/caps.h says what it offers).  Loop
 * thread.
 *
 * Where things come from:
 * - user_send_packet (priority 35: after the privacy and blocking checks,
 *   before mod_presence broadcasts, so that the caps of a cached ver are
 *   known when the presence goes out): a session's broadcast presence.
 *   Available with a <c/> names the session's caps; unavailable forgets
 *   them; available without <c/> changes nothing.
 * - presence_in: presence from a resource of another server to a local
 *   user who is online.  Available with a <c/> (not a room occupant's,
 *   which carries muc#user) names that resource's caps
 *   for that user (a struct caps_sess without session, in the user's
 *   struct caps_remote); unavailable or error forgets them.
 * - session_closed: forgets the session, and when it was the user's last,
 *   the remote resources the user knew.
 * - The disco#info answers of the clients, through iq_send.
 *
 * Queries: one per unknown ver (hash and ver), asked of one of the
 * sessions that announced it, the others waiting for the same answer.  An
 * answer that verifies is cached and becomes the caps of every waiting
 * session.  An answer that does not (a mismatch, an error, a timeout, the
 * asked session leaving) is not cached: the asked session keeps no caps
 * and the next waiting session is asked in its place, so one client with
 * a wrong answer cannot take caps from the others.  A <c/> without hash
 * (legacy) or with a hash not supported here is asked of that session
 * alone and never cached: its answer is that session's own.
 *
 * Invariants:
 * - The cache holds verified entries only, at most max_entries of them;
 *   a hit moves an entry to the front, the entry at the back is dropped.
 * - A caps_info is reference counted: one reference for the cache, one
 *   for each session using it.
 * - Each session that announced caps has one struct caps_sess, found by
 *   its session pointer, until its unavailable presence or its close; it
 *   waits on at most one query, and a query's asked session is one of its
 *   waiters.  A remote resource is the same for the one user that received
 *   its presence, found by that user and its full JID; a user has at most
 *   max_remote_per_user of them, and none while it has no session.
 * - A session announcing what it announced last changes nothing (no new
 *   query, no second caps_known), even when that failed to verify.
 */
#include "builtin.h"
#include "caps.h"
#include "caps-ver.h"
#include "server/host.h"
#include "server/hooks.h"
#include "server/sm.h"
#include "lib/htab.h"
#include "lib/log.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define NS_CAPS "http://jabber.org/protocol/caps"
#define NS_MUC_USER "http://jabber.org/protocol/muc#user"

struct caps_settings {
	unsigned max_entries;
	unsigned max_remote_per_user;
	double query_timeout;
};

static const struct opt_def caps_options[] = {
	{ "max_entries", OPT_UINT, offsetof(struct caps_settings, max_entries), "10000", NULL, 1, 10000000,
	  "most verified capability sets (vers) kept in the cache; the least recently used goes first" },
	{ "max_remote_per_user", OPT_UINT, offsetof(struct caps_settings, max_remote_per_user), "1000", NULL,
	  0, 10000000,
	  "most resources of other servers' users whose caps are kept for one local user (learned from "
	  "the presence it receives); resources beyond get no PEP notifications" },
	{ "query_timeout", OPT_DURATION, offsetof(struct caps_settings, query_timeout), "10", NULL, 0, 0,
	  "how long to wait for a client's disco#info answer about the caps it announced" },
	OPT_END
};

/* ---- state ------------------------------------------------------------------------ */

struct caps_info {
	struct htab_link link; /* first: the cache, by key */
	unsigned refs;
	char *key; /* "hash ver" of a cached entry; NULL for a session's own */
	char **features;
	size_t nfeatures;                      /* sorted, no duplicates */
	struct caps_info *lru_prev, *lru_next; /* in the cache: most recently used first */
};

struct caps_query;

struct caps_sess {
	struct htab_link link;    /* first: the state's sessions, by session pointer */
	struct session *s;        /* NULL: a resource of another server */
	char *announced;          /* "hash node ver" of its last <c/> */
	struct caps_info *caps;   /* known caps, or NULL */
	struct caps_query *query; /* the query it waits for, or NULL */
	struct caps_sess *next_waiter;
	/* a resource of another server: its full JID, and the local user
	 * that received its presence (whose list holds it) */
	struct jid jid;
	struct caps_remote *remote;
	struct caps_sess *next_remote;
};

/* The resources of other servers whose available presence one local user
 * received while online. */
struct caps_remote {
	struct htab_link link; /* first: the state's remote, by user */
	char *user;
	struct caps_sess *list;
	unsigned count;
};

struct caps_state;

struct caps_query {
	struct caps_state *cs;
	char *key; /* as caps_info's: NULL for a session's own question */
	char *hash, *node, *ver;
	struct iq_out *out;
	bool sending; /* inside iq_send */
	struct caps_sess *asked;
	struct caps_sess *waiters; /* asked among them */
	struct caps_query *next;
};

struct caps_state {
	struct host *host;
	const struct caps_settings *set;
	struct htab cache; /* struct caps_info */
	struct caps_info *lru_head, *lru_tail;
	struct htab sessions; /* struct caps_sess of local sessions */
	struct htab remote;   /* struct caps_remote */
	struct caps_query *queries;
	struct caps_stats stats;
};

static uint32_t ptr_hash(const void *p)
{
	return hash_bytes(&p, sizeof(p));
}

static void info_unref(struct caps_info **cp)
{
	struct caps_info *c = *cp;
	*cp = NULL;
	if (c == NULL || --c->refs > 0)
		return;
	for (size_t i = 0; i < c->nfeatures; i++)
		free(c->features[i]);
	free(c->features);
	free(c->key);
	free(c);
}

static struct caps_info *info_ref(struct caps_info *c)
{
	c->refs++;
	return c;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The features of a disco#info query, sorted, without duplicates. */
static struct caps_info *info_new(const struct xml_node *query, const char *key)
{
	struct caps_info *c = xcalloc(1, sizeof(*c));
	c->refs = 1;
	c->key = key != NULL ? xstrdup(key) : NULL;
	size_t n = 0;
	for (const struct xml_node *f = xml_child(query, "feature", NS_DISCO_INFO); f != NULL;
	     f = xml_next(f, "feature", NS_DISCO_INFO))
		n++;
	c->features = xcalloc(n + 1, sizeof(*c->features));
	for (const struct xml_node *f = xml_child(query, "feature", NS_DISCO_INFO); f != NULL;
	     f = xml_next(f, "feature", NS_DISCO_INFO))
		if (xml_attr(f, "var") != NULL)
			c->features[c->nfeatures++] = xstrdup(xml_attr(f, "var"));
	qsort(c->features, c->nfeatures, sizeof(*c->features), cmp_str);
	size_t k = 0;
	for (size_t i = 0; i < c->nfeatures; i++) {
		if (k > 0 && strcmp(c->features[k - 1], c->features[i]) == 0)
			free(c->features[i]);
		else
			c->features[k++] = c->features[i];
	}
	c->nfeatures = k;
	return c;
}

/* ---- the cache -------------------------------------------------------------------- */

static void lru_unlink(struct caps_state *cs, struct caps_info *c)
{
	if (c->lru_prev != NULL)
		c->lru_prev->lru_next = c->lru_next;
	else
		cs->lru_head = c->lru_next;
	if (c->lru_next != NULL)
		c->lru_next->lru_prev = c->lru_prev;
	else
		cs->lru_tail = c->lru_prev;
	c->lru_prev = c->lru_next = NULL;
}

static void lru_push_front(struct caps_state *cs, struct caps_info *c)
{
	c->lru_next = cs->lru_head;
	if (cs->lru_head != NULL)
		cs->lru_head->lru_prev = c;
	cs->lru_head = c;
	if (cs->lru_tail == NULL)
		cs->lru_tail = c;
}

static void cache_drop(struct caps_state *cs, struct caps_info *c)
{
	lru_unlink(cs, c);
	htab_remove(&cs->cache, &c->link);
	info_unref(&c);
}

/* The cached entry of key (made the most recently used), or NULL. */
static struct caps_info *cache_get(struct caps_state *cs, const char *key)
{
	uint32_t h = hash_str(key);
	for (struct htab_link *l = htab_chain(&cs->cache, h); l != NULL; l = l->next) {
		struct caps_info *c = (struct caps_info *)l;
		if (l->hash == h && strcmp(c->key, key) == 0) {
			lru_unlink(cs, c);
			lru_push_front(cs, c);
			return c;
		}
	}
	return NULL;
}

/* Cache c (the cache takes a reference), dropping the least recently used
 * entries beyond max_entries. */
static void cache_put(struct caps_state *cs, struct caps_info *c)
{
	struct caps_info *old = cache_get(cs, c->key);
	if (old != NULL)
		cache_drop(cs, old);
	htab_add(&cs->cache, &info_ref(c)->link, hash_str(c->key));
	lru_push_front(cs, c);
	while (cs->cache.count > cs->set->max_entries)
		cache_drop(cs, cs->lru_tail);
}

/* ---- sessions ---------------------------------------------------------------------- */

static struct caps_sess *sess_find(const struct caps_state *cs, const struct session *s)
{
	uint32_t h = ptr_hash(s);
	for (struct htab_link *l = htab_chain(&cs->sessions, h); l != NULL; l = l->next)
		if (l->hash == h && ((struct caps_sess *)l)->s == s)
			return (struct caps_sess *)l;
	return NULL;
}

/* The full JID a query about e goes to. */
static const struct jid *sess_jid(const struct caps_sess *e)
{
	return e->s != NULL ? &e->s->jid : &e->jid;
}

static struct caps_remote *remote_find(const struct caps_state *cs, const char *user)
{
	uint32_t h = hash_str(user);
	for (struct htab_link *l = htab_chain(&cs->remote, h); l != NULL; l = l->next)
		if (l->hash == h && strcmp(((struct caps_remote *)l)->user, user) == 0)
			return (struct caps_remote *)l;
	return NULL;
}

static struct caps_sess *remote_sess_find(const struct caps_state *cs, const char *user,
                                          const struct jid *full)
{
	struct caps_remote *r = remote_find(cs, user);
	for (struct caps_sess *e = r != NULL ? r->list : NULL; e != NULL; e = e->next_remote)
		if (jid_equal(&e->jid, full))
			return e;
	return NULL;
}

static void query_ask(struct caps_query *q);

static void query_free(struct caps_query *q)
{
	struct caps_state *cs = q->cs;
	for (struct caps_query **pp = &cs->queries; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == q) {
			*pp = q->next;
			break;
		}
	}
	iq_send_cancel(q->out);
	for (struct caps_sess *w = q->waiters; w != NULL;) {
		struct caps_sess *next = w->next_waiter;
		w->query = NULL;
		w->next_waiter = NULL;
		w = next;
	}
	free(q->key);
	free(q->hash);
	free(q->node);
	free(q->ver);
	free(q);
}

/* Take e off its query's waiters; when it was the one asked, ask the next
 * one (or end the query when none is left). */
static void sess_leave_query(struct caps_sess *e)
{
	struct caps_query *q = e->query;
	if (q == NULL)
		return;
	for (struct caps_sess **pp = &q->waiters; *pp != NULL; pp = &(*pp)->next_waiter) {
		if (*pp == e) {
			*pp = e->next_waiter;
			break;
		}
	}
	e->next_waiter = NULL;
	e->query = NULL;
	if (q->asked != e)
		return;
	iq_send_cancel(q->out);
	q->out = NULL;
	q->asked = NULL;
	if (q->sending)
		return; /* query_ask goes on */
	if (q->waiters == NULL)
		query_free(q);
	else
		query_ask(q);
}

static void sess_forget(struct caps_state *cs, struct caps_sess *e)
{
	sess_leave_query(e);
	info_unref(&e->caps);
	struct caps_remote *r = e->remote;
	if (r == NULL) {
		htab_remove(&cs->sessions, &e->link);
	} else {
		for (struct caps_sess **pp = &r->list; *pp != NULL; pp = &(*pp)->next_remote) {
			if (*pp == e) {
				*pp = e->next_remote;
				break;
			}
		}
		r->count--;
		if (r->list == NULL) {
			htab_remove(&cs->remote, &r->link);
			free(r->user);
			free(r);
		}
		jid_clear(&e->jid);
	}
	free(e->announced);
	free(e);
}

/* Forget what user learned of other servers' resources. */
static void remote_forget_user(struct caps_state *cs, const char *user)
{
	struct caps_remote *r = remote_find(cs, user);
	while (r != NULL) {
		bool last = r->count == 1;
		sess_forget(cs, r->list);
		if (last)
			break;
	}
}

/* Run HOOK_CAPS_KNOWN for e, which has caps c. */
static void run_known(struct caps_state *cs, struct caps_sess *e, const struct caps_info *c)
{
	struct hook_caps hc = { .session = e->s,
		                .user = e->s != NULL ? e->s->jid.node : e->remote->user,
		                .jid = sess_jid(e),
		                .caps = c };
	hook_run(cs->host, HOOK_CAPS_KNOWN, &hc);
}

/* Who learned caps: a session (user NULL), or a resource of another
 * server that user received presence from. */
struct known {
	struct jid jid;
	char *user;
};

/* Run HOOK_CAPS_KNOWN for each of them (cleared and freed here) that
 * still has caps c: a hook may close a session. */
static void announce_known(struct caps_state *cs, struct known *k, size_t n, const struct caps_info *c)
{
	for (size_t i = 0; i < n; i++) {
		struct caps_sess *e;
		if (k[i].user != NULL) {
			e = remote_sess_find(cs, k[i].user, &k[i].jid);
		} else {
			struct session *s = sm_find(cs->host, &k[i].jid);
			e = s != NULL ? sess_find(cs, s) : NULL;
		}
		if (e != NULL && e->caps == c)
			run_known(cs, e, c);
		jid_clear(&k[i].jid);
		free(k[i].user);
	}
	free(k);
}

/* ---- queries ------------------------------------------------------------------------ */

static void query_answered(struct xml_node *answer, void *ctx);

/* Send the disco#info request to the first waiter. */
static void query_ask(struct caps_query *q)
{
	struct caps_state *cs = q->cs;
	q->asked = q->waiters;
	struct xml_node *iq = xml_new("iq", NS_CLIENT);
	xml_set_attr(iq, "type", "get");
	struct xml_node *query = xml_add_child(iq, "query", NS_DISCO_INFO);
	char *node = xasprintf("%s#%s", q->node, q->ver);
	xml_set_attr(query, "node", node);
	free(node);
	struct jid from = { 0 };
	jid_set(&from, NULL, cs->host->name, NULL);
	cs->stats.queries++;
	q->sending = true;
	struct iq_out *out =
	        iq_send(cs->host, iq, &from, sess_jid(q->asked), cs->set->query_timeout, query_answered, q);
	q->sending = false;
	jid_clear(&from);
	xml_unref(&iq);
	if (q->asked != NULL) {
		q->out = out;
		return;
	}
	/* The asked session left while the request was routed. */
	iq_send_cancel(out);
	if (q->waiters == NULL)
		query_free(q);
	else
		query_ask(q);
}

/* Why answer does not give the caps of q (NULL: it does); a verified
 * entry in *caps_r. */
static const char *query_check(struct caps_query *q, const struct xml_node *answer, struct caps_info **caps_r)
{
	*caps_r = NULL;
	if (answer == NULL)
		return "no answer in time";
	if (!str_eq(xml_attr(answer, "type"), "result"))
		return "an error answer";
	const struct xml_node *query = xml_child(answer, "query", NS_DISCO_INFO);
	if (query == NULL)
		return "no disco#info in the answer";
	const char *node = xml_attr(query, "node");
	if (node != NULL) {
		size_t len = strlen(q->node);
		if (strncmp(node, q->node, len) != 0 || node[len] != '#' ||
		    strcmp(node + len + 1, q->ver) != 0)
			return "the answer is about another node";
	}
	if (q->key == NULL) {
		/* Not verifiable: the session's own. */
		*caps_r = info_new(query, NULL);
		return NULL;
	}
	const char *why = NULL;
	char *s = caps_ver_string(query, &why);
	if (s == NULL)
		return why;
	char *ver = caps_ver_hash(q->hash, s);
	free(s);
	bool match = ver != NULL && strcmp(ver, q->ver) == 0;
	free(ver);
	if (!match)
		return "the answer does not match the ver";
	*caps_r = info_new(query, q->key);
	return NULL;
}

static void query_answered(struct xml_node *answer, void *ctx)
{
	struct caps_query *q = ctx;
	struct caps_state *cs = q->cs;
	q->out = NULL;
	struct caps_sess *asked = q->asked;
	struct caps_info *c = NULL;
	const char *why = query_check(q, answer, &c);
	if (why != NULL) {
		/* Nothing cached; the asked session keeps no caps; the next
		 * waiting one is asked. */
		char *jid = jid_to_string(sess_jid(asked));
		if (q->key != NULL && answer != NULL && str_eq(xml_attr(answer, "type"), "result")) {
			cs->stats.mismatches++;
			log_info("caps %s: %s announced ver %s (hash %s) but its disco#info does not verify "
			         "(%s): "
			         "not cached",
			         cs->host->name, jid, q->ver, q->hash, why);
		} else {
			cs->stats.failures++;
			log_debug("caps %s: the caps of %s (ver %s) are not known: %s", cs->host->name, jid,
			          q->ver, why);
		}
		free(jid);
		sess_leave_query(asked); /* asks the next one, or frees q */
		return;
	}

	if (q->key != NULL) {
		cs->stats.verified++;
		cache_put(cs, c);
	}
	size_t n = 0;
	for (struct caps_sess *w = q->waiters; w != NULL; w = w->next_waiter)
		n++;
	struct known *known = xcalloc(n, sizeof(*known));
	size_t k = 0;
	for (struct caps_sess *w = q->waiters; w != NULL; w = w->next_waiter) {
		info_unref(&w->caps);
		w->caps = info_ref(c);
		jid_copy(&known[k].jid, sess_jid(w));
		known[k++].user = w->remote != NULL ? xstrdup(w->remote->user) : NULL;
	}
	query_free(q);
	announce_known(cs, known, k, c);
	info_unref(&c);
}

/* A query for key; a new one when none is under way (or key is NULL). */
static void query_join(struct caps_state *cs, struct caps_sess *e, const char *key, const char *hash,
                       const char *node, const char *ver)
{
	struct caps_query *q = NULL;
	if (key != NULL)
		for (q = cs->queries; q != NULL; q = q->next)
			if (q->key != NULL && strcmp(q->key, key) == 0)
				break;
	bool fresh = q == NULL;
	if (fresh) {
		q = xcalloc(1, sizeof(*q));
		q->cs = cs;
		q->key = key != NULL ? xstrdup(key) : NULL;
		q->hash = hash != NULL ? xstrdup(hash) : NULL;
		q->node = xstrdup(node);
		q->ver = xstrdup(ver);
		q->next = cs->queries;
		cs->queries = q;
	}
	/* At the end: the earlier ones are asked first. */
	struct caps_sess **pp = &q->waiters;
	while (*pp != NULL)
		pp = &(*pp)->next_waiter;
	*pp = e;
	e->query = q;
	if (fresh)
		query_ask(q);
}

/* ---- hooks ---------------------------------------------------------------------------- */

/* The "hash node ver" a <c/> announces, NULL when it names no ver. */
static char *announced_of(const struct xml_node *c)
{
	const char *hash = xml_attr(c, "hash"), *node = xml_attr(c, "node"), *ver = xml_attr(c, "ver");
	if (node == NULL || ver == NULL || *ver == '\0')
		return NULL;
	return xasprintf("%s %s %s", hash != NULL ? hash : "", node, ver);
}

/* e (new: announced NULL) announced c, which says announced (taken). */
static void sess_announced(struct caps_state *cs, struct caps_sess *e, const struct xml_node *c,
                           char *announced)
{
	const char *hash = xml_attr(c, "hash"), *node = xml_attr(c, "node"), *ver = xml_attr(c, "ver");
	if (e->announced != NULL && strcmp(e->announced, announced) == 0) {
		free(announced);
		return;
	}
	sess_leave_query(e);
	info_unref(&e->caps);
	free(e->announced);
	e->announced = announced;
	cs->stats.lookups++;

	/* Only a hash that verifies names caps others may share. */
	char *key = hash != NULL && caps_hash_supported(hash) ? xasprintf("%s %s", hash, ver) : NULL;
	struct caps_info *cached = key != NULL ? cache_get(cs, key) : NULL;
	if (cached == NULL) {
		query_join(cs, e, key, hash, node, ver);
		free(key);
		return;
	}
	free(key);
	cs->stats.hits++;
	e->caps = info_ref(cached);
	run_known(cs, e, cached);
}

/* Session s announced c (a <c/> of its available presence). */
static void caps_announced(struct caps_state *cs, struct session *s, const struct xml_node *c)
{
	char *announced = announced_of(c);
	if (announced == NULL)
		return;
	struct caps_sess *e = sess_find(cs, s);
	if (e == NULL) {
		e = xcalloc(1, sizeof(*e));
		e->s = s;
		htab_add(&cs->sessions, &e->link, ptr_hash(s));
	}
	sess_announced(cs, e, c, announced);
}

/* Presence from a resource of another server to a local user who is
 * online: its caps are kept for that user while both are available, so
 * that PEP notifies contacts on other servers as it does local ones. */
static enum hook_result caps_presence_in(struct host *h, void *args, void *ctx)
{
	struct caps_state *cs = ctx;
	struct hook_packet *hp = args;
	const struct jid *from = hp->from, *to = hp->to;
	if (from == NULL || to == NULL || from->resource == NULL || from->node == NULL || to->node == NULL ||
	    strcmp(to->domain, h->name) != 0 || host_find(from->domain) != NULL)
		return HOOK_CONTINUE;
	const char *type = xml_attr(hp->stanza, "type");
	if (type != NULL) {
		if (strcmp(type, "unavailable") == 0 || strcmp(type, "error") == 0) {
			struct caps_sess *e = remote_sess_find(cs, to->node, from);
			if (e != NULL)
				sess_forget(cs, e);
		}
		return HOOK_CONTINUE;
	}
	/* a room occupant's presence (XEP-0045) is no contact's */
	const struct xml_node *c = xml_child(hp->stanza, "c", NS_CAPS);
	if (c == NULL || xml_child(hp->stanza, "x", NS_MUC_USER) != NULL ||
	    sm_user_sessions(h, to->node) == NULL)
		return HOOK_CONTINUE;
	char *announced = announced_of(c);
	if (announced == NULL)
		return HOOK_CONTINUE;
	struct caps_sess *e = remote_sess_find(cs, to->node, from);
	if (e == NULL) {
		struct caps_remote *r = remote_find(cs, to->node);
		if ((r != NULL ? r->count : 0) >= cs->set->max_remote_per_user) {
			free(announced);
			return HOOK_CONTINUE;
		}
		if (r == NULL) {
			r = xcalloc(1, sizeof(*r));
			r->user = xstrdup(to->node);
			htab_add(&cs->remote, &r->link, hash_str(r->user));
		}
		e = xcalloc(1, sizeof(*e));
		jid_copy(&e->jid, from);
		e->remote = r;
		e->next_remote = r->list;
		r->list = e;
		r->count++;
	}
	sess_announced(cs, e, c, announced);
	return HOOK_CONTINUE;
}

static enum hook_result caps_presence(struct host *h, void *args, void *ctx)
{
	(void)h;
	struct caps_state *cs = ctx;
	struct hook_packet *hp = args;
	if (hp->session == NULL || hp->to != NULL || stanza_kind(hp->stanza) != STANZA_PRESENCE)
		return HOOK_CONTINUE;
	const char *type = xml_attr(hp->stanza, "type");
	if (type == NULL) {
		const struct xml_node *c = xml_child(hp->stanza, "c", NS_CAPS);
		if (c != NULL)
			caps_announced(cs, hp->session, c);
	} else if (strcmp(type, "unavailable") == 0) {
		struct caps_sess *e = sess_find(cs, hp->session);
		if (e != NULL)
			sess_forget(cs, e);
	}
	return HOOK_CONTINUE;
}

static enum hook_result caps_session_closed(struct host *h, void *args, void *ctx)
{
	struct caps_state *cs = ctx;
	struct hook_session *hs = args;
	struct caps_sess *e = sess_find(cs, hs->session);
	if (e != NULL)
		sess_forget(cs, e);
	/* The session is no longer listed: none left means the user's last. */
	const char *user = hs->session->jid.node;
	if (user != NULL && sm_user_sessions(h, user) == NULL)
		remote_forget_user(cs, user);
	return HOOK_CONTINUE;
}

/* ---- caps.h ------------------------------------------------------------------------------ */

static struct caps_state *caps_state_of(struct host *h)
{
	return h != NULL ? module_state(h, "caps") : NULL;
}

const struct caps_info *caps_of_session(const struct session *s)
{
	struct caps_state *cs = caps_state_of(s->host);
	struct caps_sess *e = cs != NULL ? sess_find(cs, s) : NULL;
	return e != NULL ? e->caps : NULL;
}

const struct caps_info *caps_of(struct host *h, const struct jid *full)
{
	if (caps_state_of(h) == NULL)
		return NULL;
	struct session *s = sm_find(h, full);
	return s != NULL ? caps_of_session(s) : NULL;
}

const struct caps_info *caps_of_remote(struct host *h, const char *user, const struct jid *full)
{
	struct caps_state *cs = caps_state_of(h);
	struct caps_sess *e = cs != NULL ? remote_sess_find(cs, user, full) : NULL;
	return e != NULL ? e->caps : NULL;
}

void caps_foreach_remote(struct host *h, const char *user, caps_remote_fn *fn, void *ctx)
{
	struct caps_state *cs = caps_state_of(h);
	struct caps_remote *r = cs != NULL ? remote_find(cs, user) : NULL;
	for (struct caps_sess *e = r != NULL ? r->list : NULL; e != NULL; e = e->next_remote)
		if (e->caps != NULL)
			fn(&e->jid, e->caps, ctx);
}

bool caps_has(const struct caps_info *c, const char *feature)
{
	return c != NULL &&
	       bsearch(&feature, c->features, c->nfeatures, sizeof(*c->features), cmp_str) != NULL;
}

void caps_foreach(const struct caps_info *c, void (*fn)(const char *feature, void *ctx), void *ctx)
{
	for (size_t i = 0; c != NULL && i < c->nfeatures; i++)
		fn(c->features[i], ctx);
}

struct caps_stats caps_stats(struct host *h)
{
	struct caps_state *cs = caps_state_of(h);
	struct caps_stats st = { 0 };
	if (cs != NULL) {
		st = cs->stats;
		st.entries = cs->cache.count;
	}
	return st;
}

/* ---- module ------------------------------------------------------------------------------- */

static const struct builtin_hook caps_hooks[] = {
	{ HOOK_USER_SEND_PACKET, 35, caps_presence },
	{ HOOK_SESSION_CLOSED, 50, caps_session_closed },
	{ HOOK_PRESENCE_IN, 40, caps_presence_in },
};

static const struct builtin_parts caps_parts = {
	.hooks = caps_hooks,
	.nhooks = ARRAY_SIZE(caps_hooks),
};

static int caps_start(struct host *h, const void *settings, void **state_r, char **error_r)
{
	struct caps_state *cs = xcalloc(1, sizeof(*cs));
	cs->host = h;
	cs->set = settings;
	if (builtin_parts_add(h, &caps_parts, cs, error_r) < 0) {
		free(cs);
		return -1;
	}
	*state_r = cs;
	return 0;
}

static void caps_stop(struct host *h, void *state)
{
	struct caps_state *cs = state;
	builtin_parts_remove(h, &caps_parts, cs);
	while (cs->queries != NULL)
		query_free(cs->queries);
	struct htab_link *l;
	while ((l = htab_any(&cs->sessions)) != NULL)
		sess_forget(cs, (struct caps_sess *)l);
	while ((l = htab_any(&cs->remote)) != NULL)
		remote_forget_user(cs, ((struct caps_remote *)l)->user);
	while (cs->lru_head != NULL)
		cache_drop(cs, cs->lru_head);
	htab_free(&cs->sessions);
	htab_free(&cs->remote);
	htab_free(&cs->cache);
	free(cs);
}

const struct module_def mod_caps = {
	.name = "caps",
	.description = "XEP-0115 entity capabilities of local sessions, verified and cached, for PEP "
	               "notifications",
	.options = caps_options,
	.settings_size = sizeof(struct caps_settings),
	.default_enabled = true,
	.start = caps_start,
	.stop = caps_stop,
};
