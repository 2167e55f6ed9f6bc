/*
 * The session manager.  Loop thread.
 *
 * Sessions are kept per (host, user) in one hash table; each user entry
 * lists the user's bound sessions.  Delivery follows RFC 6121 §8.5: to a
 * full JID the exact session (or the bare-JID rules where the RFC says so),
 * to a bare JID the available resources with the highest non-negative
 * priority for messages, every available resource for presence, and the
 * user-scope iq handlers for iqs (for a user with no session, once the auth
 * chain says the account exists: RFC 6121 §8.5.1).  A message nobody can take goes through the
 * offline_message hook; if no module stores it, the sender gets
 * <service-unavailable/>.  Every stanza first goes through the stanza_in hook
 * (mod_blocking drops or refuses what a blocked JID sends), and presence
 * then through presence_in (mod_presence handles subscriptions and probes,
 * and holds other presence back behind the user's subscription work; it
 * delivers that later with sm_deliver_presence, by the same rules).
 * Each write to a session first runs user_receive_packet for that session
 * (mod_privacy refuses what the session's privacy list denies).
 *
 * A message to a bare JID that goes to several sessions carries, while it
 * is delivered, a record of them (struct sm_copies, sm_copies_of) that
 * their stream management queues keep.
 *
 * Invariants: a session is in the table exactly while s->user != NULL.
 * A replaced session is removed first, then told to close (conflict);
 * told, it settles what its client never acknowledged at once (stream
 * management stores those messages offline), before the new session is
 * registered, so that the new one's first presence finds them stored.
 * A record of copies lists the ids of the sessions that took the message
 * (not those that refused it) and have not left it (sm_copies_leave), and
 * the resources of those that left it after their device was told of it
 * (sm_copies_tell); it lives as long as a queue holds a reference.
 */
#include "sm.h"
#include "host.h"
#include "hooks.h"
#include "iq.h"
#include "router.h"
#include "c2s.h"
#include "auth/auth.h"
#include "lib/log.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

struct sm_user {
	struct host *host;
	char *name;
	uint32_t hash;
	struct session *sessions;
	struct sm_user *next;
};

/* An iq request to the bare JID of a user with no session, waiting for
 * the auth chain to say whether the account exists; listed so that a
 * host that stops cancels its own (sm_host_stop). */
struct exists_wait {
	struct exists_wait *prev, *next;
	struct host *h;
	struct xml_node *iq;
	struct jid from, to;
	struct auth_req *req;
};
static struct exists_wait *exists_waits;
static unsigned nexists_waits;
/* Most iqs waiting at once (a peer sending many to users with no session
 * would otherwise queue an auth lookup for each): past it, an iq is
 * answered at once, as for an account. */
#define EXISTS_WAITS_MAX 1024

static struct sm_user **table;
static size_t table_size;
static size_t nusers;
static unsigned nsessions;

static uint32_t user_hash(const struct host *h, const char *user)
{
	return hash_str(user) ^ (uint32_t)((uintptr_t)h >> 4) * 2654435761u;
}

static void table_grow(void)
{
	size_t nsize = table_size == 0 ? 1024 : table_size * 2;
	struct sm_user **nt = xcalloc(nsize, sizeof(*nt));
	for (size_t i = 0; i < table_size; i++) {
		for (struct sm_user *u = table[i], *next; u != NULL; u = next) {
			next = u->next;
			u->next = nt[u->hash & (nsize - 1)];
			nt[u->hash & (nsize - 1)] = u;
		}
	}
	free(table);
	table = nt;
	table_size = nsize;
}

static struct sm_user *user_find(struct host *h, const char *user, bool create)
{
	if (table_size == 0) {
		if (!create)
			return NULL;
		table_grow();
	}
	uint32_t hv = user_hash(h, user);
	for (struct sm_user *u = table[hv & (table_size - 1)]; u != NULL; u = u->next)
		if (u->hash == hv && u->host == h && strcmp(u->name, user) == 0)
			return u;
	if (!create)
		return NULL;
	if (nusers + 1 > table_size)
		table_grow();
	struct sm_user *u = xcalloc(1, sizeof(*u));
	u->host = h;
	u->name = xstrdup(user);
	u->hash = hv;
	u->next = table[hv & (table_size - 1)];
	table[hv & (table_size - 1)] = u;
	nusers++;
	return u;
}

static void user_remove(struct sm_user *u)
{
	for (struct sm_user **pp = &table[u->hash & (table_size - 1)]; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == u) {
			*pp = u->next;
			nusers--;
			free(u->name);
			free(u);
			return;
		}
	}
}

struct session *sm_find(struct host *h, const struct jid *full)
{
	if (full->node == NULL || full->resource == NULL)
		return NULL;
	struct sm_user *u = user_find(h, full->node, false);
	if (u == NULL)
		return NULL;
	for (struct session *s = u->sessions; s != NULL; s = s->next_of_user)
		if (strcmp(s->jid.resource, full->resource) == 0)
			return s;
	return NULL;
}

struct session *sm_user_sessions(struct host *h, const char *user)
{
	struct sm_user *u = user_find(h, user, false);
	return u != NULL ? u->sessions : NULL;
}

void sm_session_close(struct session *s)
{
	struct sm_user *u = s->user;
	if (u == NULL)
		return;
	for (struct session **pp = &u->sessions; *pp != NULL; pp = &(*pp)->next_of_user) {
		if (*pp == s) {
			*pp = s->next_of_user;
			break;
		}
	}
	s->user = NULL;
	s->next_of_user = NULL;
	nsessions--;
	struct hook_session hs = { .session = s };
	hook_run(s->host, HOOK_SESSION_CLOSED, &hs);
	if (u->sessions == NULL)
		user_remove(u);
}

void sm_session_open(struct session *s)
{
	struct session *old = sm_find(s->host, &s->jid);
	if (old != NULL) {
		log_info("sm: %s@%s/%s logged in again: the older session is replaced", s->jid.node,
		         s->jid.domain, s->jid.resource);
		sm_session_close(old);
		old->ops->kick(old->owner, STE_CONFLICT, "replaced by a new session");
	}
	struct sm_user *u = user_find(s->host, s->jid.node, true);
	s->user = u;
	s->next_of_user = u->sessions;
	u->sessions = s;
	nsessions++;
	struct hook_session hs = { .session = s };
	hook_run(s->host, HOOK_SESSION_OPENED, &hs);
}

/* The serialised form of the stanza sm_route_wire is routing, or NULL. */
static const struct xml_wire *current_wire;
static const struct xml_node *current_wire_stanza;

/* Write stanza to session s unless a user_receive_packet hook refuses it
 * for s (privacy lists); false when refused.  The stanza sm_route_wire
 * routes is written from its serialised form where the session can. */
static bool deliver(struct session *s, struct xml_node *stanza, const struct jid *from, const struct jid *to)
{
	struct hook_packet hp = { .from = from, .to = to, .stanza = stanza, .session = s };
	if (hook_run(s->host, HOOK_USER_RECEIVE_PACKET, &hp) == HOOK_STOP)
		return hp.queued;
	if (current_wire != NULL && stanza == current_wire_stanza && s->ops->deliver_wire != NULL)
		s->ops->deliver_wire(s->owner, stanza, current_wire);
	else
		s->ops->deliver(s->owner, stanza);
	return true;
}

void sm_route_wire(struct host *h, struct xml_node *stanza, const struct jid *from, const struct jid *to,
                   const struct xml_wire *w)
{
	/* A hook may route another fan-out meanwhile: restore, not clear. */
	const struct xml_wire *outer = current_wire;
	const struct xml_node *outer_stanza = current_wire_stanza;
	current_wire = w;
	current_wire_stanza = stanza;
	sm_route(h, stanza, from, to);
	current_wire = outer;
	current_wire_stanza = outer_stanza;
}

struct sm_copies {
	unsigned refs;
	unsigned n, cap;
	char **told; /* the resources whose devices were told of it */
	size_t ntold;
	uint64_t ids[]; /* the sessions that got it and have not given it up */
};

/* The message deliver_highest gives to several sessions, and their record. */
static const struct xml_node *copies_stanza;
static struct sm_copies *copies_current;

struct sm_copies *sm_copies_of(const struct xml_node *stanza)
{
	return stanza != NULL && stanza == copies_stanza ? copies_current : NULL;
}

struct sm_copies *sm_copies_ref(struct sm_copies *cp)
{
	if (cp != NULL)
		cp->refs++;
	return cp;
}

void sm_copies_unref(struct sm_copies **cpp)
{
	struct sm_copies *cp = *cpp;
	if (cp == NULL)
		return;
	*cpp = NULL;
	assert(cp->refs > 0);
	if (--cp->refs > 0)
		return;
	for (size_t i = 0; i < cp->ntold; i++)
		free(cp->told[i]);
	free(cp->told);
	free(cp);
}

void sm_copies_tell(struct sm_copies *cp, const char *resource)
{
	for (size_t i = 0; i < cp->ntold; i++)
		if (strcmp(cp->told[i], resource) == 0)
			return;
	cp->told = xrealloc(cp->told, (cp->ntold + 1) * sizeof(*cp->told));
	cp->told[cp->ntold++] = xstrdup(resource);
}

const char *const *sm_copies_told(const struct sm_copies *cp, size_t *n_r)
{
	*n_r = cp->ntold;
	return (const char *const *)cp->told;
}

bool sm_copies_leave(struct sm_copies *cp, const struct session *s)
{
	for (unsigned i = 0; i < cp->n; i++) {
		if (cp->ids[i] == s->id) {
			cp->ids[i] = cp->ids[--cp->n];
			break;
		}
	}
	struct sm_user *u = s->jid.node != NULL ? user_find(s->host, s->jid.node, false) : NULL;
	for (struct session *t = u != NULL ? u->sessions : NULL; t != NULL; t = t->next_of_user) {
		if (t == s || !t->available)
			continue;
		for (unsigned i = 0; i < cp->n; i++)
			if (cp->ids[i] == t->id)
				return true;
	}
	return false;
}

/* Deliver to the available sessions with the highest non-negative priority;
 * returns how many got it (*refused_r: how many refused it).  When there
 * are several, their copies share a record of who got it (sm_copies_of). */
static unsigned deliver_highest(struct sm_user *u, struct xml_node *stanza, const struct jid *from,
                                const struct jid *to, unsigned *refused_r)
{
	*refused_r = 0;
	int best = -1;
	unsigned nbest = 0;
	if (u == NULL)
		return 0;
	for (struct session *s = u->sessions; s != NULL; s = s->next_of_user) {
		if (!s->available || s->priority < 0 || s->priority < best)
			continue;
		if (s->priority > best)
			nbest = 0;
		best = s->priority;
		nbest++;
	}
	if (best < 0)
		return 0;
	/* A hook may deliver another message meanwhile: restore, not clear. */
	const struct xml_node *outer_stanza = copies_stanza;
	struct sm_copies *outer = copies_current, *cp = NULL;
	if (nbest > 1) {
		cp = xcalloc(1, sizeof(*cp) + nbest * sizeof(cp->ids[0]));
		cp->refs = 1;
		cp->cap = nbest;
		copies_stanza = stanza;
		copies_current = cp;
	}
	unsigned n = 0;
	for (struct session *s = u->sessions, *next; s != NULL; s = next) {
		next = s->next_of_user;
		if (s->available && s->priority == best) {
			if (deliver(s, stanza, from, to)) {
				n++;
				if (cp != NULL && cp->n < cp->cap)
					cp->ids[cp->n++] = s->id;
			} else {
				(*refused_r)++;
			}
		}
	}
	copies_stanza = outer_stanza;
	copies_current = outer;
	sm_copies_unref(&cp);
	return n;
}

/* Deliver to every available session (with a non-negative priority only
 * when nonneg: headline messages, RFC 6121 §8.5.2.1.1; presence goes to all
 * available resources, §8.5.2.1.2). */
static unsigned deliver_available(struct sm_user *u, struct xml_node *stanza, bool nonneg,
                                  const struct jid *from, const struct jid *to)
{
	unsigned n = 0;
	if (u == NULL)
		return 0;
	for (struct session *s = u->sessions, *next; s != NULL; s = next) {
		next = s->next_of_user;
		if (s->available && (!nonneg || s->priority >= 0) && deliver(s, stanza, from, to))
			n++;
	}
	return n;
}

static void route_message_bare(struct host *h, struct sm_user *u, struct xml_node *stanza,
                               const struct jid *from, const struct jid *to)
{
	const char *type = xml_attr(stanza, "type");
	if (type != NULL && strcmp(type, "error") == 0)
		return;
	if (type != NULL && strcmp(type, "groupchat") == 0) {
		router_bounce(stanza, SE_SERVICE_UNAVAILABLE, NULL);
		return;
	}
	if (type != NULL && strcmp(type, "headline") == 0) {
		deliver_available(u, stanza, true, from, to);
		return;
	}
	unsigned refused = 0;
	if (deliver_highest(u, stanza, from, to, &refused) > 0)
		return;
	if (refused > 0) {
		/* Every session that would take it refused it: not stored offline. */
		router_bounce(stanza, SE_SERVICE_UNAVAILABLE, NULL);
		return;
	}
	struct hook_packet hp = { .from = from, .to = to, .stanza = stanza };
	if (hook_run(h, HOOK_OFFLINE_MESSAGE, &hp) == HOOK_STOP)
		return;
	router_bounce(stanza, SE_SERVICE_UNAVAILABLE, NULL);
}

static bool iq_is_request(const struct xml_node *stanza)
{
	const char *type = xml_attr(stanza, "type");
	return type != NULL && (strcmp(type, "get") == 0 || strcmp(type, "set") == 0);
}

static void sm_route_stanza(struct host *h, struct xml_node *stanza, const struct jid *from,
                            const struct jid *to);
static void deliver_stanza(struct host *h, struct xml_node *stanza, enum stanza_kind kind,
                           const struct jid *from, const struct jid *to);

/* An iq request to a user's bare JID, to the user-scope handlers. */
static void user_iq(struct host *h, struct xml_node *iq, const struct jid *from, const struct jid *to)
{
	if (!iq_dispatch(h, IQ_SCOPE_USER, iq, from, to, NULL))
		router_bounce(iq, SE_SERVICE_UNAVAILABLE, NULL);
}

static void exists_wait_free(struct exists_wait *w)
{
	if (w->prev != NULL)
		w->prev->next = w->next;
	else
		exists_waits = w->next;
	if (w->next != NULL)
		w->next->prev = w->prev;
	nexists_waits--;
	xml_unref(&w->iq);
	jid_clear(&w->from);
	jid_clear(&w->to);
	free(w);
}

static void exists_answered(enum auth_result res, void *ctx)
{
	struct exists_wait *w = ctx;
	w->req = NULL;
	if (res == AUTH_NO_USER) {
		/* RFC 6121 §8.5.1: no such account */
		router_bounce(w->iq, SE_SERVICE_UNAVAILABLE, NULL);
	} else {
		/* it exists, or the backends cannot say now: the handlers
		 * answer (as they did before anyone asked) */
		if (res != AUTH_OK)
			log_debug(
			        "sm: whether %s@%s exists is not known (%s): an iq to it is answered as for "
			        "an account",
			        w->to.node, w->h->name, auth_result_str(res));
		user_iq(w->h, w->iq, w->from.domain != NULL ? &w->from : NULL, &w->to);
	}
	exists_wait_free(w);
}

static void exists_wait_start(struct host *h, struct xml_node *iq, const struct jid *from,
                              const struct jid *to)
{
	if (nexists_waits >= EXISTS_WAITS_MAX) {
		log_debug("sm: %u iqs wait to learn whether their accounts exist; one to %s@%s is answered "
		          "at once",
		          nexists_waits, to->node, h->name);
		user_iq(h, iq, from, to);
		return;
	}
	nexists_waits++;
	struct exists_wait *w = xcalloc(1, sizeof(*w));
	w->h = h;
	xml_ref(iq);
	w->iq = iq;
	if (from != NULL)
		jid_copy(&w->from, from);
	jid_copy(&w->to, to);
	w->next = exists_waits;
	if (exists_waits != NULL)
		exists_waits->prev = w;
	exists_waits = w;
	w->req = auth_user_exists(h->auth, to->node, exists_answered, w);
}

void sm_host_stop(struct host *h)
{
	for (struct exists_wait *w = exists_waits, *next; w != NULL; w = next) {
		next = w->next;
		if (w->h != h)
			continue;
		if (w->req != NULL)
			auth_cancel(w->req);
		exists_wait_free(w);
	}
}

void sm_route(struct host *h, struct xml_node *stanza, const struct jid *from, const struct jid *to)
{
	struct hook_packet in = { .from = from, .to = to, .stanza = stanza };
	enum hook_result r = hook_run(h, HOOK_STANZA_IN, &in);
	if (in.replace == NULL) {
		if (r != HOOK_STOP)
			sm_route_stanza(h, stanza, from, to);
		return;
	}
	/* A module gave a new tree (its reference is ours): the serialised
	 * form of a fan-out no longer matches it. */
	const struct xml_wire *outer = current_wire;
	current_wire = NULL;
	if (r != HOOK_STOP)
		sm_route_stanza(h, in.replace, from, to);
	current_wire = outer;
	xml_unref(&in.replace);
}

static void sm_route_stanza(struct host *h, struct xml_node *stanza, const struct jid *from,
                            const struct jid *to)
{
	enum stanza_kind kind = stanza_kind(stanza);
	if (kind == STANZA_PRESENCE) {
		/* Subscriptions and probes are the presence module's. */
		struct hook_packet hp = { .from = from, .to = to, .stanza = stanza };
		if (hook_run(h, HOOK_PRESENCE_IN, &hp) == HOOK_STOP)
			return;
	}
	deliver_stanza(h, stanza, kind, from, to);
}

void sm_deliver_presence(struct host *h, struct xml_node *stanza, const struct jid *from,
                         const struct jid *to)
{
	deliver_stanza(h, stanza, STANZA_PRESENCE, from, to);
}

/* What sm_route_stanza does once the hooks let stanza through. */
static void deliver_stanza(struct host *h, struct xml_node *stanza, enum stanza_kind kind,
                           const struct jid *from, const struct jid *to)
{
	struct sm_user *u = user_find(h, to->node, false);

	if (to->resource != NULL) {
		struct session *s = NULL;
		if (u != NULL)
			for (s = u->sessions; s != NULL; s = s->next_of_user)
				if (strcmp(s->jid.resource, to->resource) == 0)
					break;
		if (s != NULL) {
			if (!deliver(s, stanza, from, to) &&
			    (kind == STANZA_MESSAGE || (kind == STANZA_IQ && iq_is_request(stanza))))
				router_bounce(stanza, SE_SERVICE_UNAVAILABLE, NULL);
			return;
		}
		/* RFC 6121 §8.5.3.2: no such resource.  A chat message is
		 * handled as if sent to the bare JID; normal (no type) and
		 * groupchat are refused; headline and error are dropped. */
		if (kind == STANZA_MESSAGE) {
			const char *type = xml_attr(stanza, "type");
			if (type != NULL && strcmp(type, "chat") == 0)
				route_message_bare(h, u, stanza, from, to);
			else if (type == NULL || strcmp(type, "normal") == 0 ||
			         strcmp(type, "groupchat") == 0)
				router_bounce(stanza, SE_SERVICE_UNAVAILABLE, NULL);
		} else if (kind == STANZA_IQ && iq_is_request(stanza)) {
			router_bounce(stanza, SE_SERVICE_UNAVAILABLE, NULL);
		}
		return;
	}

	switch (kind) {
	case STANZA_MESSAGE: route_message_bare(h, u, stanza, from, to); break;
	case STANZA_PRESENCE: {
		const char *type = xml_attr(stanza, "type");
		if (type != NULL && strcmp(type, "probe") == 0)
			break; /* mod_presence answers probes (HOOK_PRESENCE_IN); without it, dropped */
		deliver_available(u, stanza, false, from, to);
		break;
	}
	case STANZA_IQ:
		if (!iq_is_request(stanza))
			break;
		if (xml_element_count(stanza) != 1) {
			router_bounce(stanza, SE_BAD_REQUEST, NULL);
			break;
		}
		/* Someone else asks about a user with no session: the handlers
		 * answer only for an account that exists. */
		if (u == NULL && h->auth != NULL && (from == NULL || !jid_bare_equal(from, to))) {
			exists_wait_start(h, stanza, from, to);
			break;
		}
		user_iq(h, stanza, from, to);
		break;
	default: break;
	}
}

unsigned sm_count(const struct host *h)
{
	if (h == NULL)
		return nsessions;
	unsigned n = 0;
	for (size_t i = 0; i < table_size; i++)
		for (struct sm_user *u = table[i]; u != NULL; u = u->next)
			if (u->host == h)
				for (struct session *s = u->sessions; s != NULL; s = s->next_of_user)
					n++;
	return n;
}

void sm_foreach(struct host *h, void (*fn)(struct session *s, void *ctx), void *ctx)
{
	for (size_t i = 0; i < table_size; i++) {
		for (struct sm_user *u = table[i], *unext; u != NULL; u = unext) {
			unext = u->next;
			if (h != NULL && u->host != h)
				continue;
			for (struct session *s = u->sessions, *next; s != NULL; s = next) {
				next = s->next_of_user;
				fn(s, ctx);
			}
		}
	}
}

void sm_kick_user(struct host *h, const char *user, enum stream_error e, const char *text)
{
	struct sm_user *u = user_find(h, user, false);
	while (u != NULL && u->sessions != NULL) {
		struct session *s = u->sessions;
		bool last = s->next_of_user == NULL;
		sm_session_close(s); /* frees u with the last session */
		s->ops->kick(s->owner, e, text);
		if (last)
			break;
	}
	/* and the streams of user that have no session yet */
	c2s_close_user(h, user, e, text);
}
