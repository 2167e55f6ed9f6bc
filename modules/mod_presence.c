/*
 * mod_presence: RFC 6121 presence subscriptions (§3) and presence
 * broadcast (§4).  Loop thread.
 *
 * Where stanzas come from:
 * - user_send_packet: a client's presence.  Without 'to' it is broadcast
 *   (initial presence also probes the contacts we are subscribed to and
 *   redelivers stored inbound requests); with 'to' and a subscription type
 *   it changes the sender's roster and is routed by us (from the bare
 *   JID); other directed presence is routed by the c2s unchanged and only
 *   remembered, so the session's end can send unavailable to it.
 * - presence_in (sm_route): presence to a local user.  Subscription types
 *   are first judged on the recipient's stored block list and default
 *   privacy list (dropped when refused, session or not); then they change
 *   the recipient's roster and are delivered (or kept as a pending
 *   request), past each session's block list and user_receive_packet.  A
 *   pending request keeps what it said (its <status/>s and XEP-0172
 *   <nick/>) in its roster item, for the redelivery; a later request
 *   replaces it (stored, not delivered again), an answer or a cancel
 *   clears it with the request.  A request of a contact the user does not
 *   have in the roster is a roster item of its own that the user does not
 *   see (roster_item_pending_only); at most max_pending_requests of them
 *   wait per user (a bound RFC 6121 §3.1.3 does not have, against
 *   floods): one more is dropped, neither stored nor delivered, and the
 *   sender is told nothing, so it cannot learn what waits for the user; to
 *   it the user is one who has not answered yet.  Probes are answered to
 *   subscribers only: with the presence of each available resource, or,
 *   when there is none, with unavailable presence carrying the status and
 *   time of the user's last unavailable presence (the last activity record
 *   mod_last keeps).  Everything else goes on to the session manager's
 *   default delivery, unless a subscription op between the user and its
 *   sender is queued: then it waits behind it as an op of its own
 *   (PK_HELD) and is delivered by sm_deliver_presence when its turn
 *   comes.
 * - session_closed: unavailable to subscribers and directed-presence
 *   targets.
 *
 * What this module routes on a user's behalf goes through route_presence:
 * to a local user stanza_in applies the sender's block list and privacy
 * list (mod_blocking, mod_privacy); to another server or a service
 * route_presence applies them (blocking_blocks, privacy_denies_presence),
 * so each is applied once whatever the destination.  The directed-presence
 * targets of a session are read by mod_blocking and mod_privacy
 * (presence_directed), which send them unavailable when a block or a
 * privacy list starts to cover them.
 *
 * Invariants:
 * - Every piece of work that reads a user's roster is a struct pres_op on
 *   one FIFO list; at most one op per user runs (read, decide, write,
 *   then act), so one user's subscription changes and broadcasts keep the
 *   order they arrived in and never decide on a stale read.  Ops of
 *   different users run in parallel.  Presence to the user that is no
 *   subscription stanza or probe goes through the queue only when a
 *   subscription op of the user with the sender's bare JID (or presence
 *   of the sender held behind one) is queued or running, and then waits
 *   behind the user's ops: a
 *   contact's 'subscribed' and the presence it sends right after reach
 *   the user's resources in that order (RFC 6120 §10.1), with the roster
 *   push first; otherwise the session manager delivers it at once.  It
 *   is delivered as the session manager would have
 *   (blocking was judged at stanza_in when it came; each session's
 *   user_receive_packet runs at delivery).  What does not go through the
 *   queue is not held back by it: messages and iqs to the user, and a
 *   message or directed presence the user sends after a subscription
 *   stanza, which may reach the contact before it (the stanza waits for
 *   the roster read and write; the client's input is not paused).  Known
 *   gap: mod_roster's own read-then-write of an item is not ordered
 *   against ours (see there).
 * - The c2s has already marked the session available when user_send_packet
 *   runs, so "initial presence" is judged from this module's per-session
 *   record (struct pres_sess), which lives from the session's first
 *   presence until session_closed.
 * - A stanza delivered to a user's resources from presence_in goes to the
 *   sessions directly, never back through the router (that would run
 *   presence_in again).
 * - Broadcasts and probes decide on the roster view (builtin.h): contacts
 *   of shared roster groups count as subscriptions there; subscription
 *   changes read and write the stored items only.
 * - The FIFO is the module's pending list (pending.h): stop cancels every
 *   storage call and frees the ops (held presence not yet delivered is
 *   dropped with them); of this module nothing runs after it
 *   (a removal whose op goes is told to go on, so it may start during
 *   the stop, without its broadcast, and its contacts are not told).
 * - A removal of an account is an op of the user (PK_REMOVAL,
 *   presence_wait_user), queued after the ops queued when its sessions
 *   were kicked, so that every closing session's broadcast reads the
 *   roster before the removal deletes it.  Its turn come, it reads the
 *   stored items (not the view: a shared roster group is no subscription
 *   to cancel), notes which contacts get 'unsubscribe' and which
 *   'unsubscribed', lets the removal go and stays running, holding the
 *   user's queue, until the remover says how it went
 *   (presence_wait_end): removed, the contacts are told, after the
 *   account is gone; not removed, nothing is sent.  A subscription
 *   stanza to the user meanwhile is handled after the removal.  Anonymous
 *   accounts (removed by the c2s at the end of their stream) do not come
 *   here: their contacts are not told.
 * - A subscription stanza holds the barrier of the stream it came from
 *   (lib/barrier.h) until its op is done: the roster write committed or
 *   failed, and what follows routed.  The subscription stanza it routes
 *   to a local contact takes the hold over until the contact's write is
 *   done, so an answer to anything the stream sent later waits for both
 *   rosters.  What the op sends the stream (pushes, presence) is held
 *   behind answers already waiting, in the order it was sent.
 */
#include "builtin.h"
#include "pending.h"
#include "lib/barrier.h"
#include "server/host.h"
#include "server/hooks.h"
#include "server/router.h"
#include "server/sm.h"
#include "lib/log.h"
#include "lib/log-summary.h"
#include "server/server.h"
#include "storage/storage.h"

#include <assert.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SESS_BUCKETS 4096
#define DIRECTED_MAX 100 /* directed-presence targets remembered per session */

struct presence_settings {
	unsigned max_pending_requests;
};

static const struct opt_def presence_options[] = {
	{ "max_pending_requests", OPT_UINT, offsetof(struct presence_settings, max_pending_requests), "100",
	  NULL, 1, 1000000,
	  "most subscription requests of contacts not in the roster kept waiting for one user; one "
	  "more is dropped" },
	OPT_END
};

enum pres_kind {
	PK_OUT_SUB,   /* the user sent a subscription stanza to peer */
	PK_IN_SUB,    /* peer sent a subscription stanza to the user */
	PK_BROADCAST, /* a session of the user sent presence without 'to' */
	PK_PROBE_IN,  /* peer probes the user */
	PK_CLOSED,    /* a session of the user ended while available */
	PK_HELD,      /* other presence to the user, behind the user's earlier ops */
	PK_REMOVAL,   /* the user's account is being removed (presence_wait_user) */
};

enum sub_type { ST_SUBSCRIBE, ST_SUBSCRIBED, ST_UNSUBSCRIBE, ST_UNSUBSCRIBED, ST_NONE };

struct pres_state;

struct pres_op {
	struct pending_op p; /* first: the state's FIFO of ops */
	struct pres_state *ps;
	enum pres_kind kind;
	enum sub_type sub;
	bool running;
	bool initial;              /* PK_BROADCAST: the session's first available presence */
	bool account_checked;      /* PK_IN_SUB subscribe: the account is known to exist */
	bool judged;               /* PK_IN_SUB: the user's lists let it through */
	char *user;                /* the local user whose roster is read */
	struct jid peer;           /* bare contact JID (sub ops, probe); PK_HELD: the sender */
	struct jid full;           /* the session's full JID (broadcast, closed); PK_HELD: the
	                              recipient, as addressed */
	struct xml_node *stanza;   /* what to route or deliver (owned) */
	struct strlist directed;   /* PK_CLOSED/PK_BROADCAST unavailable: directed targets */
	struct roster_item item;   /* the item being written (owned) */
	struct barrier_hold *hold; /* sub ops: on the barrier of the stream that sent
	                                the stanza (or NULL), until the op is done */
	bool item_visible_before;
	struct roster_item before; /* subscription fields as read (no strings) */
	bool remove;               /* write removes the item */
	bool changed;              /* the write changes the subscription state */
	bool view_from;            /* PK_IN_SUB subscribe: a shared roster group gives
	                              the contact the user's presence already */
	bool said_changed;         /* PK_IN_SUB subscribe: what the waiting request
	                              says changed (item.ask_in_stanza) */
	uint64_t version;
	struct presence_wait *wait; /* PK_REMOVAL: the removal's handle, or NULL */
};

/* A removal's handle: owned by the remover from presence_wait_user until
 * presence_wait_end or presence_wait_cancel; linked with its PK_REMOVAL
 * op while that op lives. */
struct presence_wait {
	struct pres_op *op; /* NULL once the op is gone (a stop) */
	presence_settled_fn *done;
	void *ctx;
	bool settled;                /* done has run */
	struct strlist unsubscribe;  /* the contacts the user had a subscription to */
	struct strlist unsubscribed; /* the contacts that had one from the user */
};

/* What this module remembers of a session that sent presence. */
struct pres_sess {
	const struct session *s;
	uint64_t id;
	bool available;
	struct strlist directed;
	struct pres_sess *next;
};

struct pres_state {
	struct host *host;
	const struct presence_settings *set;
	struct pending_ops ops; /* struct pres_op, in arrival order */
	struct pres_sess **sess;
};

/* ---- small helpers ------------------------------------------------------- */

static enum sub_type sub_type_of(const char *type)
{
	if (type == NULL)
		return ST_NONE;
	if (strcmp(type, "subscribe") == 0)
		return ST_SUBSCRIBE;
	if (strcmp(type, "subscribed") == 0)
		return ST_SUBSCRIBED;
	if (strcmp(type, "unsubscribe") == 0)
		return ST_UNSUBSCRIBE;
	if (strcmp(type, "unsubscribed") == 0)
		return ST_UNSUBSCRIBED;
	return ST_NONE;
}

static const char *const sub_type_names[] = { "subscribe", "subscribed", "unsubscribe", "unsubscribed" };

static bool has_from(enum roster_subscription s)
{
	return s == SUB_FROM || s == SUB_BOTH;
}

static bool has_to(enum roster_subscription s)
{
	return s == SUB_TO || s == SUB_BOTH;
}

static void strlist_add(struct strlist *l, const char *s)
{
	l->items = xrealloc(l->items, (l->count + 1) * sizeof(char *));
	l->items[l->count++] = xstrdup(s);
}

static void strlist_del(struct strlist *l, const char *s)
{
	for (size_t i = 0; i < l->count; i++) {
		if (strcmp(l->items[i], s) == 0) {
			free(l->items[i]);
			l->items[i] = l->items[--l->count];
			return;
		}
	}
}

static void item_copy(struct roster_item *dst, const struct roster_item *src)
{
	memset(dst, 0, sizeof(*dst));
	dst->jid = xstrdup(src->jid);
	dst->name = src->name != NULL ? xstrdup(src->name) : NULL;
	dst->subscription = src->subscription;
	dst->ask_out = src->ask_out;
	dst->ask_in = src->ask_in;
	dst->approved = src->approved;
	for (size_t i = 0; i < src->groups.count; i++)
		strlist_add(&dst->groups, src->groups.items[i]);
	dst->ask_in_stanza = src->ask_in_stanza != NULL ? xstrdup(src->ask_in_stanza) : NULL;
	dst->in_roster = src->in_roster;
}

char *roster_request_said(const struct xml_node *stanza)
{
	struct xml_node *said = NULL;
	for (struct xml_node *c = xml_first_element(stanza); c != NULL; c = xml_next(c, NULL, NULL)) {
		if (!xml_is(c, "status", NS_CLIENT) && !xml_is(c, "nick", NS_NICK))
			continue;
		if (said == NULL)
			said = xml_new("presence", NS_CLIENT);
		xml_append_copy(said, c);
	}
	if (said == NULL)
		return NULL;
	char *text = xml_to_string(said, NS_CLIENT);
	xml_unref(&said);
	return text;
}

struct xml_node *roster_request_stanza(const struct roster_item *it, const char **error_r)
{
	struct xml_node *p = NULL;
	if (it->ask_in_stanza != NULL) {
		size_t len = strlen(it->ask_in_stanza);
		/* written by us from a stanza the stream's limits let in */
		const struct xml_parser_limits lim = { .max_stanza = len + 1,
			                               .max_depth = 1024,
			                               .max_attrs = 1024 };
		const char *err = NULL;
		p = xml_parse_string(it->ask_in_stanza, len, NS_CLIENT, &lim, &err);
		if (p == NULL || !xml_is(p, "presence", NS_CLIENT)) {
			if (error_r != NULL)
				*error_r = err != NULL ? err : "another element";
			xml_unref(&p);
		}
	}
	if (p == NULL)
		p = xml_new("presence", NS_CLIENT);
	xml_set_attr(p, "type", "subscribe");
	xml_set_attr(p, "from", it->jid);
	return p;
}

/* Route presence p on a user's behalf.  What goes to a local host passes
 * that host's stanza_in, where the sender's block list and privacy list
 * are applied; to another server (or a service) nothing else would apply
 * them (XEP-0191 §3.3, XEP-0016 presence-out), so they are applied here,
 * once. */
static void route_presence(struct xml_node *p, const struct jid *from, const struct jid *to)
{
	struct host *fh = from->node != NULL ? host_find(from->domain) : NULL;
	if (fh != NULL && host_find(to->domain) == NULL &&
	    (blocking_blocks(fh, from->node, to) || privacy_denies_presence(fh, p, from, to)))
		return;
	router_route(p, from, to);
}

/* Route p (consumed) with type (NULL: as it is), from and to set. */
static void route_stamped(struct xml_node *p, const char *type, const struct jid *from, const struct jid *to,
                          bool from_bare)
{
	if (type != NULL)
		xml_set_attr(p, "type", type);
	xml_set_attr(p, "from", from_bare ? jid_bare_to_pool(p->pool, from) : jid_to_pool(p->pool, from));
	xml_set_attr(p, "to", jid_to_pool(p->pool, to));
	route_presence(p, from, to);
	xml_unref(&p);
}

/* Route a copy of src with from/to set (the router keeps its own refs). */
static void route_copy(const struct xml_node *src, const char *type, const struct jid *from,
                       const struct jid *to, bool from_bare)
{
	route_stamped(xml_copy(src), type, from, to, from_bare);
}

/* Route a new <presence/> of type (NULL: available) from -> to. */
static void route_new(const char *type, const struct jid *from, const struct jid *to, bool from_bare)
{
	route_stamped(xml_new("presence", NS_CLIENT), type, from, to, from_bare);
}

/* Write a subscription stanza from peer (a bare JID) to session s, as the
 * session manager's delivery does: not when the user blocks peer, and past
 * user_receive_packet (the session's privacy list; client state
 * indication).  False when it was refused for s. */
static bool deliver_to_session(struct host *h, struct session *s, struct xml_node *stanza,
                               const struct jid *peer)
{
	if (blocking_blocks(h, s->jid.node, peer))
		return false;
	struct hook_packet hp = { .from = peer, .to = &s->jid, .stanza = stanza, .session = s };
	if (hook_run(h, HOOK_USER_RECEIVE_PACKET, &hp) == HOOK_STOP)
		return hp.queued;
	s->ops->deliver(s->owner, stanza);
	return true;
}

/* Deliver a subscription stanza from peer to every available resource of
 * user, directly (not through the router: see the invariants); returns
 * how many got it. */
static unsigned deliver_to_user(struct host *h, const char *user, struct xml_node *stanza,
                                const struct jid *peer)
{
	unsigned n = 0;
	for (struct session *s = sm_user_sessions(h, user), *next; s != NULL; s = next) {
		next = s->next_of_user;
		if (s->available && deliver_to_session(h, s, stanza, peer))
			n++;
	}
	return n;
}

/* Send the current presence of every available resource of user to 'to'
 * (type unavailable instead when unavailable is set), except the resource
 * named skip (NULL: none). */
static void send_presence_of(struct host *h, const char *user, const struct jid *to, bool unavailable,
                             const char *skip)
{
	/* Copy the senders first: routing may close a session under us. */
	size_t n = 0;
	for (struct session *s = sm_user_sessions(h, user); s != NULL; s = s->next_of_user)
		if (s->available && s->presence != NULL &&
		    (skip == NULL || strcmp(s->jid.resource, skip) != 0))
			n++;
	if (n == 0)
		return;
	struct jid *from = xcalloc(n, sizeof(*from));
	struct xml_node **pres = xcalloc(n, sizeof(*pres));
	size_t i = 0;
	for (struct session *s = sm_user_sessions(h, user); s != NULL && i < n; s = s->next_of_user) {
		if (s->available && s->presence != NULL &&
		    (skip == NULL || strcmp(s->jid.resource, skip) != 0)) {
			jid_copy(&from[i], &s->jid);
			pres[i] = s->presence;
			xml_ref(pres[i]);
			i++;
		}
	}
	for (size_t k = 0; k < i; k++) {
		if (unavailable)
			route_new("unavailable", &from[k], to, false);
		else
			route_copy(pres[k], NULL, &from[k], to, false);
		xml_unref(&pres[k]);
		jid_clear(&from[k]);
	}
	free(pres);
	free(from);
}

/* ---- per-session records ------------------------------------------------- */

static struct pres_sess **sess_slot(struct pres_state *ps, const struct session *s)
{
	struct pres_sess **pp = &ps->sess[s->id % SESS_BUCKETS];
	while (*pp != NULL && (*pp)->s != s)
		pp = &(*pp)->next;
	return pp;
}

static struct pres_sess *sess_get(struct pres_state *ps, const struct session *s, bool create)
{
	struct pres_sess **pp = sess_slot(ps, s);
	if (*pp == NULL && create) {
		struct pres_sess *r = xcalloc(1, sizeof(*r));
		r->s = s;
		r->id = s->id;
		*pp = r;
	}
	return *pp;
}

static void sess_free(struct pres_sess *r)
{
	strlist_free(&r->directed);
	free(r);
}

const struct strlist *presence_directed(struct host *h, const struct session *s)
{
	struct pres_state *ps = module_running(h, "presence") ? module_state(h, "presence") : NULL;
	struct pres_sess *r = ps != NULL ? sess_get(ps, s, false) : NULL;
	return r != NULL && r->directed.count > 0 ? &r->directed : NULL;
}

/* ---- the op queue ---------------------------------------------------------- */

static void op_start(struct pres_op *op);
static void op_done(struct pres_op *op);

static struct pres_op *op_new(struct pres_state *ps, enum pres_kind kind, const char *user)
{
	struct pres_op *op = xcalloc(1, sizeof(*op));
	op->ps = ps;
	op->kind = kind;
	op->sub = ST_NONE;
	op->user = xstrdup(user);
	return op;
}

static void op_free(struct pending_op *p)
{
	struct pres_op *op = (struct pres_op *)p;
	struct presence_wait *w = op->wait;
	pending_untrack(p);
	free(op->user);
	jid_clear(&op->peer);
	jid_clear(&op->full);
	if (op->stanza != NULL)
		xml_unref(&op->stanza);
	strlist_free(&op->directed);
	roster_item_clear(&op->item);
	barrier_release(&op->hold); /* after what op_act routed */
	free(op);
	if (w != NULL) {
		/* Dropped by a stop: the removal goes on, nobody is told. */
		w->op = NULL;
		if (!w->settled) {
			w->settled = true;
			w->done(w->ctx);
		}
	}
}

/* A subscription stanza from a stream (the stream's barrier is current),
 * or routed by another op's op_act (a local contact's side of the change,
 * which takes that op's hold over: barrier_take): the stream answers
 * nothing it sent later before op's roster write is done and what follows
 * from it has been routed. */
static void op_hold(struct pres_op *op)
{
	op->hold = barrier_take();
}


/* The oldest op of user, queued or running, or NULL. */
static struct pres_op *user_first_op(const struct pres_state *ps, const char *user)
{
	for (struct pending_op *o = ps->ops.head; o != NULL; o = o->next)
		if (strcmp(((struct pres_op *)o)->user, user) == 0)
			return (struct pres_op *)o;
	return NULL;
}

/* Is a subscription op of user with the bare JID of peer queued or
 * running, or presence from it held behind one? */
static bool user_busy_with(const struct pres_state *ps, const char *user, const struct jid *peer)
{
	for (struct pending_op *o = ps->ops.head; o != NULL; o = o->next) {
		const struct pres_op *op = (const struct pres_op *)o;
		if ((op->kind == PK_IN_SUB || op->kind == PK_OUT_SUB || op->kind == PK_HELD) &&
		    strcmp(op->user, user) == 0 && jid_bare_equal(&op->peer, peer))
			return true;
	}
	return false;
}

/* Append op; it starts now unless an earlier op of the same user is queued. */
static void op_enqueue(struct pres_op *op)
{
	struct pres_state *ps = op->ps;
	bool busy = user_first_op(ps, op->user) != NULL;
	pending_track(&ps->ops, &op->p, op_free);
	if (!busy)
		op_start(op);
}

struct presence_wait *presence_wait_user(struct host *h, const char *user, presence_settled_fn *done,
                                         void *ctx)
{
	struct pres_state *ps = module_state(h, "presence");
	if (ps == NULL)
		return NULL;
	struct presence_wait *w = xcalloc(1, sizeof(*w));
	w->done = done;
	w->ctx = ctx;
	struct pres_op *op = op_new(ps, PK_REMOVAL, user);
	op->wait = w;
	w->op = op;
	op_enqueue(op);
	return w;
}

void presence_wait_cancel(void *wait)
{
	struct presence_wait *w = wait;
	struct pres_op *op = w->op;
	if (op != NULL) {
		op->wait = NULL;
		if (op->running) {
			pending_cancel_call(&op->p);
			op_done(op);
		} else {
			op_free(&op->p);
		}
	}
	strlist_free(&w->unsubscribe);
	strlist_free(&w->unsubscribed);
	free(w);
}

void presence_wait_end(struct presence_wait *w, bool removed)
{
	if (w == NULL)
		return;
	assert(w->settled);
	struct pres_op *op = w->op;
	if (op != NULL && removed) {
		/* XEP-0077 §3.2, RFC 6121 §2.5.2: as if the user had removed
		 * each item; from the bare JID, after the account is gone. */
		struct jid self = { 0 };
		jid_set(&self, op->user, op->ps->host->name, NULL);
		for (int k = 0; k < 2; k++) {
			const struct strlist *l = k == 0 ? &w->unsubscribe : &w->unsubscribed;
			for (size_t i = 0; i < l->count; i++) {
				struct jid c;
				const char *err;
				if (jid_parse(l->items[i], &c, &err) != 0)
					continue;
				route_new(k == 0 ? "unsubscribe" : "unsubscribed", &self, &c, true);
				jid_clear(&c);
			}
		}
		jid_clear(&self);
	}
	w->op = NULL;
	if (op != NULL) {
		op->wait = NULL;
		op_done(op);
	}
	strlist_free(&w->unsubscribe);
	strlist_free(&w->unsubscribed);
	free(w);
}

/* PK_HELD: the presence's turn has come; it is delivered as the session
 * manager would have delivered it when it came. */
static void op_deliver_held(struct pres_op *op)
{
	op->running = true;
	sm_deliver_presence(op->ps->host, op->stanza, &op->peer, &op->full);
}

/* Remove a finished op and start the next one of the same user.  Held
 * presence is delivered here, in a loop, so that a long run of it does
 * not nest calls. */
static void op_done(struct pres_op *op)
{
	for (;;) {
		struct pres_state *ps = op->ps;
		pending_untrack(&op->p);
		struct pres_op *nextop = user_first_op(ps, op->user);
		op_free(&op->p);
		if (nextop == NULL || nextop->running)
			return;
		if (nextop->kind != PK_HELD) {
			op_start(nextop);
			return;
		}
		op_deliver_held(nextop);
		op = nextop;
	}
}

/* ---- deciding ---------------------------------------------------------------- */

static void op_roster_read(enum storage_result res, const struct roster_item *items, size_t count,
                           uint64_t version, void *ctx);

static void op_account_read(enum storage_result res, const struct storage_account *acc, void *ctx)
{
	struct pres_op *op = ctx;
	struct host *h = op->ps->host;
	(void)acc;
	if (!pending_resume(&op->p))
		return;
	if (res == STORAGE_NOT_FOUND) {
		/* No such user: the requester's pending request is refused. */
		struct jid to = { 0 };
		jid_set(&to, op->user, h->name, NULL);
		struct barrier_hold **outer = barrier_hand_on(&op->hold);
		route_new("unsubscribed", &to, &op->peer, true);
		barrier_hand_on_end(outer);
		jid_clear(&to);
		op_done(op);
		return;
	}
	if (res != STORAGE_OK) {
		log_warning("presence %s: subscription request from %s@%s to %s dropped: storage %s", h->name,
		            op->peer.node != NULL ? op->peer.node : "", op->peer.domain, op->user,
		            storage_result_str(res));
		op_done(op);
		return;
	}
	op->account_checked = true;
	pending_wait_storage(&op->p, storage_roster_get(h->storage, h->name, op->user, op_roster_read, op));
}

/* What the user's block list and default privacy list say of an inbound
 * subscription stanza (read from storage, so the same whether the user
 * has a session or not): a refused one is dropped before the roster is
 * touched (XEP-0191 §3.5, XEP-0016 §2.1: a list decides before the
 * subscription handling). */
static void op_judged(enum builtin_refusal r, enum storage_result res, const char *what, void *ctx)
{
	struct pres_op *op = ctx;
	struct host *h = op->ps->host;
	if (!pending_resume(&op->p))
		return;
	if (r == BUILTIN_UNKNOWN) {
		log_warning("presence %s: subscription stanza from %s@%s to %s dropped: %s unreadable "
		            "(storage %s)",
		            h->name, op->peer.node != NULL ? op->peer.node : "", op->peer.domain, op->user,
		            what, storage_result_str(res));
		op_done(op);
		return;
	}
	if (r != BUILTIN_PASSES) {
		log_debug("presence %s: subscription stanza from %s@%s to %s refused by the %s", h->name,
		          op->peer.node != NULL ? op->peer.node : "", op->peer.domain, op->user,
		          r == BUILTIN_BLOCKED ? "block list" : "default privacy list");
		op_done(op);
		return;
	}
	op_start(op);
}

static void op_start(struct pres_op *op)
{
	struct host *h = op->ps->host;
	if (op->kind == PK_HELD) {
		op_deliver_held(op);
		op_done(op);
		return;
	}
	op->running = true;
	if (op->kind == PK_IN_SUB && !op->judged) {
		op->judged = true;
		struct builtin_refusal_check *c =
		        builtin_refusal_start(h, op->user, &op->peer, 0, op_judged, op);
		if (c != NULL) {
			pending_wait(&op->p, c, builtin_refusal_cancel);
			return;
		}
	}
	if (op->kind == PK_IN_SUB && op->sub == ST_SUBSCRIBE && !op->account_checked &&
	    sm_user_sessions(h, op->user) == NULL) {
		pending_wait_storage(&op->p,
		                     storage_account_get(h->storage, h->name, op->user, op_account_read, op));
		return;
	}
	pending_wait_storage(&op->p, storage_roster_get(h->storage, h->name, op->user, op_roster_read, op));
}

/* After the write (or when nothing had to be written): push, route, deliver. */
static void op_act(struct pres_op *op, bool changed)
{
	struct host *h = op->ps->host;
	/* What is routed now continues the stanza's work (op_hold). */
	struct barrier_hold **outer = barrier_hand_on(&op->hold);
	struct jid self = { 0 };
	jid_set(&self, op->user, h->name, NULL);
	const struct roster_item *it = &op->item;

	/* Push what a client can see change (ask_in is not shown). */
	bool shown_change = op->remove || op->item_visible_before != !roster_item_pending_only(it) ||
	                    op->before.subscription != it->subscription ||
	                    op->before.ask_out != it->ask_out || op->before.approved != it->approved;
	if (changed && shown_change && (op->item_visible_before || !roster_item_pending_only(it))) {
		if (op->remove) {
			struct roster_item gone = { .jid = it->jid, .subscription = SUB_REMOVE };
			roster_push(h, op->user, &gone, op->version + 1);
		} else if (!roster_item_pending_only(it)) {
			roster_push(h, op->user, it, op->version + 1);
		}
	}

	if (op->kind == PK_OUT_SUB) {
		bool route = true;
		if (op->sub == ST_SUBSCRIBED && !changed)
			route = false; /* already approved: nothing to say */
		if (op->sub == ST_SUBSCRIBED && changed && op->item.approved)
			route = false; /* pre-approval (§3.4): stays here */
		if (route)
			route_copy(op->stanza, NULL, &self, &op->peer, true);
		if (route && op->sub == ST_SUBSCRIBED)
			send_presence_of(h, op->user, &op->peer, false, NULL); /* §3.1.5 */
		if (op->sub == ST_UNSUBSCRIBED && changed)
			send_presence_of(h, op->user, &op->peer, true, NULL); /* §3.2.2 */
	} else if (op->kind == PK_IN_SUB) {
		switch (op->sub) {
		case ST_SUBSCRIBE:
			if (has_from(it->subscription) || op->view_from) {
				/* Already subscribed (stored, or through a shared
				 * roster group) or approved in advance: answer. */
				route_new("subscribed", &self, &op->peer, true);
				if (changed)
					send_presence_of(h, op->user, &op->peer, false, NULL);
			} else if (changed) {
				/* A request already waiting is not delivered again
				 * (RFC 6121 Appendix A.3.1: None + Pending In); each
				 * new session gets the waiting ones anyway. */
				deliver_to_user(h, op->user, op->stanza, &op->peer);
			}
			break;
		case ST_UNSUBSCRIBE:
			if (changed) {
				deliver_to_user(h, op->user, op->stanza, &op->peer);
				send_presence_of(h, op->user, &op->peer, true, NULL); /* §3.3.3 */
			}
			break;
		case ST_SUBSCRIBED:
		case ST_UNSUBSCRIBED:
			if (changed)
				deliver_to_user(h, op->user, op->stanza, &op->peer);
			break;
		default: break;
		}
	}
	jid_clear(&self);
	barrier_hand_on_end(outer);
	op_done(op);
}

static void op_written(enum storage_result res, void *ctx)
{
	struct pres_op *op = ctx;
	if (!pending_resume(&op->p))
		return;
	if (res != STORAGE_OK && !(op->remove && res == STORAGE_NOT_FOUND)) {
		log_warning("presence %s: roster of %s not updated for %s from/to %s: storage %s",
		            op->ps->host->name, op->user, sub_type_names[op->sub], op->item.jid,
		            storage_result_str(res));
		op_done(op);
		return;
	}
	op_act(op, op->changed);
}

/* The contact gets the user's presence from now on (an approval); no
 * request or pre-approval is left. */
static void grant_from(struct roster_item *it)
{
	it->ask_in = false;
	it->approved = false;
	it->subscription = has_to(it->subscription) ? SUB_BOTH : SUB_FROM;
}

/* The contact no longer gets the user's presence (an unsubscribe from
 * it, or an unsubscribed from the user): no request, no pre-approval. */
static void end_from(struct roster_item *it)
{
	it->ask_in = false;
	it->approved = false;
	if (it->subscription == SUB_FROM)
		it->subscription = SUB_NONE;
	else if (it->subscription == SUB_BOTH)
		it->subscription = SUB_TO;
}

/* The user no longer gets the contact's presence (an unsubscribe from
 * the user, or an unsubscribed from it): no request of the user left. */
static void end_to(struct roster_item *it)
{
	it->ask_out = false;
	if (it->subscription == SUB_TO)
		it->subscription = SUB_NONE;
	else if (it->subscription == SUB_BOTH)
		it->subscription = SUB_FROM;
}

/* Apply the RFC 6121 §3 tables to op->item; true when it changed. */
static bool decide_sub(struct pres_op *op, bool existed)
{
	struct roster_item *it = &op->item;
	enum roster_subscription s0 = it->subscription;
	bool a_out = it->ask_out, a_in = it->ask_in, appr = it->approved;

	if (op->kind == PK_OUT_SUB) {
		switch (op->sub) {
		case ST_SUBSCRIBE:
			if (!has_to(it->subscription))
				it->ask_out = true;
			break;
		case ST_SUBSCRIBED:
			if (it->ask_in)
				grant_from(it);
			else if (!has_from(it->subscription))
				it->approved = true; /* pre-approval */
			break;
		case ST_UNSUBSCRIBE: end_to(it); break;
		case ST_UNSUBSCRIBED: end_from(it); break;
		default: break;
		}
	} else {
		switch (op->sub) {
		case ST_SUBSCRIBE:
			if (has_from(it->subscription) || op->view_from)
				break;
			if (it->approved) {
				grant_from(it);
			} else {
				/* waiting: what it says replaces what an earlier one said */
				char *said = roster_request_said(op->stanza);
				op->said_changed = (said == NULL) != (it->ask_in_stanza == NULL) ||
				                   (said != NULL && strcmp(said, it->ask_in_stanza) != 0);
				free(it->ask_in_stanza);
				it->ask_in_stanza = said;
				it->ask_in = true;
			}
			break;
		case ST_SUBSCRIBED:
			if (!it->ask_out)
				break; /* we never asked: ignored (§3.1.6) */
			it->ask_out = false;
			it->subscription = has_from(it->subscription) ? SUB_BOTH : SUB_TO;
			break;
		case ST_UNSUBSCRIBE: end_from(it); break;
		case ST_UNSUBSCRIBED: end_to(it); break;
		default: break;
		}
	}
	if (!it->ask_in) {
		/* no request waits (any more): nothing it said is kept */
		free(it->ask_in_stanza);
		it->ask_in_stanza = NULL;
	}
	bool changed =
	        it->subscription != s0 || it->ask_out != a_out || it->ask_in != a_in || it->approved != appr;
	if (!existed) {
		/* Only a subscribe, an inbound subscribe or a pre-approval creates. */
		bool creates =
		        (op->kind == PK_OUT_SUB && (op->sub == ST_SUBSCRIBE || op->sub == ST_SUBSCRIBED)) ||
		        (op->kind == PK_IN_SUB && op->sub == ST_SUBSCRIBE);
		return creates && changed;
	}
	return changed;
}

/* Unavailable presence from 'from' to each directed-presence target: a
 * copy of the user's own unavailable presence when there is one (its
 * status too, as the contacts get it: RFC 6121 §4.5.2), else a bare one
 * (the session closed). */
static void end_directed(const struct jid *from, const struct strlist *targets, const struct xml_node *stanza)
{
	for (size_t i = 0; i < targets->count; i++) {
		struct jid c;
		const char *err;
		if (jid_parse(targets->items[i], &c, &err) != 0)
			continue;
		if (stanza != NULL)
			route_copy(stanza, "unavailable", from, &c, false);
		else
			route_new("unavailable", from, &c, false);
		jid_clear(&c);
	}
}

/* A want for builtin_sessions: available, and not the resource ctx. */
static bool other_available(const struct session *s, void *ctx)
{
	return s->available && strcmp(s->jid.resource, (const char *)ctx) != 0;
}

/* Probes, presence and stored requests for a session's presence broadcast. */
static void do_broadcast(struct pres_op *op, const struct roster_item *items, size_t count)
{
	struct host *h = op->ps->host;
	const char *type = xml_attr(op->stanza, "type");
	bool unavailable = type != NULL && strcmp(type, "unavailable") == 0;
	struct jid self = { 0 };
	jid_set(&self, op->user, h->name, NULL);

	for (size_t i = 0; i < count; i++) {
		struct jid c;
		const char *err;
		if (jid_parse(items[i].jid, &c, &err) != 0)
			continue;
		if (op->initial && has_to(items[i].subscription))
			route_new("probe", &self, &c, true);
		if (has_from(items[i].subscription)) {
			strlist_del(&op->directed, items[i].jid);
			route_copy(op->stanza, unavailable ? "unavailable" : NULL, &op->full, &c, false);
		}
		jid_clear(&c);
	}
	/* Directed-presence targets not covered above (unavailable only). */
	if (unavailable)
		end_directed(&op->full, &op->directed, op->stanza);
	/* The user's other available resources. */
	struct jid *targets;
	size_t n = builtin_sessions(h, op->user, other_available, op->full.resource, &targets);
	for (size_t i = 0; i < n; i++) {
		route_copy(op->stanza, unavailable ? "unavailable" : NULL, &op->full, &targets[i], false);
		jid_clear(&targets[i]);
	}
	free(targets);
	/* Initial presence: the other resources' presence to the new one. */
	if (op->initial)
		send_presence_of(h, op->user, &op->full, false, op->full.resource);
	/* Initial presence: the requests that waited for this user (§3.1.3),
	 * with their status and nick. */
	if (op->initial) {
		for (size_t i = 0; i < count; i++) {
			if (!items[i].ask_in || has_from(items[i].subscription))
				continue;
			struct session *s = sm_find(h, &op->full);
			if (s == NULL || !s->available)
				break;
			struct jid peer;
			const char *err;
			if (jid_parse(items[i].jid, &peer, &err) != 0)
				continue;
			const char *perr = NULL;
			struct xml_node *p = roster_request_stanza(&items[i], &perr);
			if (perr != NULL)
				log_warning("presence %s: the stored request of %s to %s does not parse "
				            "(%s); delivered without its status and nick",
				            h->name, items[i].jid, op->user, perr);
			xml_set_attr(p, "to", jid_bare_to_pool(p->pool, &self));
			deliver_to_session(h, s, p, &peer);
			xml_unref(&p);
			jid_clear(&peer);
		}
	}
	jid_clear(&self);
}

static bool any_available(struct host *h, const char *user)
{
	for (struct session *s = sm_user_sessions(h, user); s != NULL; s = s->next_of_user)
		if (s->available && s->presence != NULL)
			return true;
	return false;
}

/* A probe of a subscribed contact with no available resource: answer
 * unavailable presence from the user's bare JID, with the status of the
 * last unavailable presence and when it was (XEP-0203) when known. */
static void op_last_read(enum storage_result res, const struct last_activity *last, void *ctx)
{
	struct pres_op *op = ctx;
	struct host *h = op->ps->host;
	if (!pending_resume(&op->p))
		return;
	const char *from_s = xml_attr(op->stanza, "from");
	struct jid to;
	const char *err;
	if (from_s != NULL && jid_parse(from_s, &to, &err) == 0) {
		struct jid self = { 0 };
		jid_set(&self, op->user, h->name, NULL);
		struct xml_node *p = xml_new("presence", NS_CLIENT);
		xml_set_attr(p, "type", "unavailable");
		xml_set_attr(p, "from", jid_bare_to_pool(p->pool, &self));
		xml_set_attr(p, "to", jid_to_pool(p->pool, &to));
		if (res == STORAGE_OK) {
			if (last->status != NULL && *last->status != '\0') {
				struct xml_node *st = xml_add_child(p, "status", NS_CLIENT);
				xml_add_text(st, last->status, strlen(last->status));
			}
			char stamp[XEP82_STAMP_LEN];
			if (xep82_stamp(stamp, (int64_t)last->seconds) > 0) {
				struct xml_node *d = xml_add_child(p, "delay", NS_DELAY);
				xml_set_attr(d, "from", jid_bare_to_pool(p->pool, &self));
				xml_set_attr(d, "stamp", stamp);
			}
		} else if (res != STORAGE_NOT_FOUND) {
			log_warning("presence %s: last presence of %s unavailable (storage %s); answering "
			            "a probe with plain unavailable",
			            h->name, op->user, storage_result_str(res));
		}
		route_presence(p, &self, &to);
		xml_unref(&p);
		jid_clear(&self);
		jid_clear(&to);
	}
	op_done(op);
}

/* How many of items are only a waiting request (not in the roster). */
static size_t pending_requests(const struct roster_item *items, size_t count)
{
	size_t n = 0;
	for (size_t i = 0; i < count; i++)
		if (roster_item_pending_only(&items[i]))
			n++;
	return n;
}

static void pending_full_say(const struct log_summary *s, unsigned n)
{
	(void)s;
	log_info("presence: %u more subscription request%s dropped: the recipient had "
	         "max_pending_requests waiting (left out of the log since the last line)",
	         n, n == 1 ? "" : "s");
}

static struct log_summary pending_full_logs = { .limit.every = 1.0,
	                                        .module = "presence",
	                                        .say = pending_full_say };

/* A request of op's peer dropped: the user has max_pending_requests
 * waiting already.  Logged now, or left out and counted. */
static void pending_full_log(const struct pres_op *op)
{
	unsigned more;
	if (!log_summary_pass(&pending_full_logs, server.loop, &more))
		return;
	char extra[LOG_LIMIT_MORE_SIZE];
	log_limit_more(more, extra);
	log_info("presence %s: subscription request from %s@%s to %s dropped: %u requests wait "
	         "already (max_pending_requests)%s",
	         op->ps->host->name, op->peer.node != NULL ? op->peer.node : "", op->peer.domain, op->user,
	         op->ps->set->max_pending_requests, extra);
}

static void op_roster_read(enum storage_result res, const struct roster_item *items, size_t count,
                           uint64_t version, void *ctx)
{
	struct pres_op *op = ctx;
	struct host *h = op->ps->host;
	if (!pending_resume(&op->p))
		return;
	if (res == STORAGE_NOT_FOUND) {
		res = STORAGE_OK;
		count = 0;
		version = 0;
	}
	if (res != STORAGE_OK) {
		log_warning("presence %s: roster of %s unavailable (storage %s); presence work dropped",
		            h->name, op->user, storage_result_str(res));
		op_done(op);
		return;
	}
	op->version = version;

	switch (op->kind) {
	case PK_OUT_SUB:
	case PK_IN_SUB: {
		char *bare = jid_bare_string(&op->peer);
		const struct roster_item *old = roster_find_item(items, count, bare);
		if (old != NULL) {
			item_copy(&op->item, old);
			op->item_visible_before = !roster_item_pending_only(old);
			op->before.subscription = old->subscription;
			op->before.ask_out = old->ask_out;
			op->before.approved = old->approved;
			free(bare);
		} else {
			op->item.jid = bare;
			op->item.subscription = SUB_NONE;
		}
		if (op->kind == PK_IN_SUB && op->sub == ST_SUBSCRIBE &&
		    (old == NULL || !has_from(old->subscription))) {
			/* A contact of a shared roster group sees the user's
			 * presence as if subscribed: its request is answered,
			 * not stored (RFC 6121 §3.1.3). */
			struct roster_view view;
			roster_view_one(&view, h, op->user, old, op->item.jid, true);
			op->view_from = view.count == 1 && has_from(view.items[0].subscription);
			roster_view_clear(&view);
		}
		op->changed = decide_sub(op, old != NULL);
		if (!op->changed && !(old != NULL && op->said_changed)) {
			op_act(op, false);
			return;
		}
		if (old == NULL && roster_item_pending_only(&op->item) &&
		    pending_requests(items, count) >= op->ps->set->max_pending_requests) {
			pending_full_log(op);
			op_done(op);
			return;
		}
		const struct roster_item *it = &op->item;
		if (old != NULL && !op->item_visible_before && it->subscription == SUB_NONE && !it->ask_out &&
		    !it->ask_in && !it->approved && it->name == NULL && it->groups.count == 0) {
			/* A pending request withdrawn or refused: nothing left to keep. */
			op->remove = true;
			pending_wait_storage(&op->p, storage_roster_remove(h->storage, h->name, op->user,
			                                                   it->jid, op_written, op));
		} else {
			pending_wait_storage(&op->p, storage_roster_set(h->storage, h->name, op->user, it,
			                                                op_written, op));
		}
		return;
	}
	case PK_HELD: break; /* never reads the roster */
	case PK_REMOVAL: {
		/* The stored items only: shared roster groups are no
		 * subscriptions of the user's to cancel. */
		struct presence_wait *w = op->wait;
		for (size_t i = 0; i < count; i++) {
			const struct roster_item *it = &items[i];
			if (has_to(it->subscription) || it->ask_out)
				strlist_add(&w->unsubscribe, it->jid);
			if (has_from(it->subscription) || it->ask_in || it->approved)
				strlist_add(&w->unsubscribed, it->jid);
		}
		/* The op stays, holding the user's queue, until the removal
		 * is over (presence_wait_end). */
		pending_idle(&op->p);
		w->settled = true;
		w->done(w->ctx);
		return;
	}
	case PK_BROADCAST:
	case PK_CLOSED: {
		/* Shared roster groups count as subscriptions (roster view). */
		struct roster_view view;
		roster_view_make(&view, h, op->user, items, count, true);
		do_broadcast(op, view.items, view.count);
		roster_view_clear(&view);
		break;
	}
	case PK_PROBE_IN: {
		char *bare = jid_bare_string(&op->peer);
		struct roster_view view;
		roster_view_one(&view, h, op->user, roster_find_item(items, count, bare), bare, true);
		const struct roster_item *it = view.count > 0 ? &view.items[0] : NULL;
		free(bare);
		if (it != NULL && has_from(it->subscription)) {
			if (!any_available(h, op->user)) {
				/* §4.3.2: no available resource: the last unavailable
				 * presence, from what mod_last keeps. */
				roster_view_clear(&view);
				pending_wait_storage(&op->p, storage_last_get(h->storage, h->name, op->user,
				                                              op_last_read, op));
				return;
			}
			const char *from_s = xml_attr(op->stanza, "from");
			struct jid to;
			const char *err;
			if (from_s != NULL && jid_parse(from_s, &to, &err) == 0) {
				send_presence_of(h, op->user, &to, false, NULL);
				jid_clear(&to);
			}
		} else if (op->peer.node != NULL) {
			/* §4.3.2: a prober the user does not share presence with
			 * (or no such account) is told 'unsubscribed', so that a
			 * roster out of step is mended on its side; the user's
			 * own roster (a pre-approval too) is left as it is. */
			struct jid self = { 0 }, peer = { 0 };
			jid_set(&self, op->user, h->name, NULL);
			jid_set(&peer, op->peer.node, op->peer.domain, NULL);
			route_new("unsubscribed", &self, &peer, true);
			jid_clear(&self);
			jid_clear(&peer);
		}
		roster_view_clear(&view);
		break;
	}
	}
	op_done(op);
}

/* ---- hooks ------------------------------------------------------------------- */

static enum hook_result presence_send(struct host *h, void *args, void *ctx)
{
	struct pres_state *ps = ctx;
	struct hook_packet *hp = args;
	if (hp->session == NULL || stanza_kind(hp->stanza) != STANZA_PRESENCE)
		return HOOK_CONTINUE;
	struct session *s = hp->session;
	const char *type = xml_attr(hp->stanza, "type");

	if (hp->to == NULL) {
		/* Broadcast (the c2s has already updated the session). */
		bool unavailable = type != NULL && strcmp(type, "unavailable") == 0;
		if (type != NULL && !unavailable)
			return HOOK_CONTINUE;
		struct pres_sess *r = sess_get(ps, s, !unavailable);
		if (unavailable && (r == NULL || !r->available)) {
			/* Not available before: only directed presence needs ending. */
			if (r != NULL) {
				end_directed(&s->jid, &r->directed, hp->stanza);
				strlist_free(&r->directed);
			}
			return HOOK_CONTINUE;
		}
		struct pres_op *op = op_new(ps, PK_BROADCAST, s->jid.node);
		op->initial = !unavailable && !r->available;
		r->available = !unavailable;
		jid_copy(&op->full, &s->jid);
		op->stanza = xml_copy(hp->stanza);
		xml_set_attr(op->stanza, "to", NULL);
		if (unavailable) {
			op->directed = r->directed;
			memset(&r->directed, 0, sizeof(r->directed));
		}
		op_enqueue(op);
		return HOOK_CONTINUE;
	}

	enum sub_type st = sub_type_of(type);
	if (st == ST_NONE) {
		/* Directed presence: routed by the c2s; remembered here. */
		if (type != NULL && strcmp(type, "unavailable") != 0)
			return HOOK_CONTINUE;
		char *target = jid_to_string(hp->to);
		struct pres_sess *r = sess_get(ps, s, type == NULL);
		if (r != NULL) {
			if (type != NULL)
				strlist_del(&r->directed, target);
			else if (!strlist_contains(&r->directed, target) && r->directed.count < DIRECTED_MAX)
				strlist_add(&r->directed, target);
		}
		free(target);
		return HOOK_CONTINUE;
	}

	/* A subscription stanza (§3): the sender's roster first, then route. */
	struct pres_op *op = op_new(ps, PK_OUT_SUB, s->jid.node);
	op->sub = st;
	jid_set(&op->peer, hp->to->node, hp->to->domain, NULL);
	op->stanza = xml_copy(hp->stanza);
	op_hold(op);
	op_enqueue(op);
	return HOOK_STOP;
}

static enum hook_result presence_in(struct host *h, void *args, void *ctx)
{
	struct pres_state *ps = ctx;
	struct hook_packet *hp = args;
	if (hp->to == NULL || hp->to->node == NULL || hp->from == NULL)
		return HOOK_CONTINUE;
	const char *type = xml_attr(hp->stanza, "type");
	enum sub_type st = sub_type_of(type);
	bool probe = type != NULL && strcmp(type, "probe") == 0;
	if (st == ST_NONE && !probe) {
		/* Other presence is the session manager's to deliver, unless
		 * a subscription stanza between the user and its sender came
		 * before it: it waits its turn (a contact's 'subscribed' and
		 * the presence right behind it reach the client in that
		 * order: RFC 6120 §10.1).  Presence of anyone else (a room's,
		 * say) is not held back behind it: it would overtake what
		 * its sender sent next. */
		if (!user_busy_with(ps, hp->to->node, hp->from))
			return HOOK_CONTINUE;
		struct pres_op *op = op_new(ps, PK_HELD, hp->to->node);
		jid_copy(&op->peer, hp->from);
		jid_copy(&op->full, hp->to);
		op->stanza = xml_copy(hp->stanza);
		op_enqueue(op);
		return HOOK_STOP;
	}
	if (jid_bare_equal(hp->from, hp->to) && probe)
		return HOOK_STOP; /* our own probes to ourselves: nothing to answer */
	struct pres_op *op = op_new(ps, probe ? PK_PROBE_IN : PK_IN_SUB, hp->to->node);
	op->sub = st;
	jid_set(&op->peer, hp->from->node, hp->from->domain, NULL);
	op->stanza = xml_copy(hp->stanza);
	if (!probe) {
		/* Delivered from the contact's bare JID, to the user's bare JID. */
		xml_set_attr(op->stanza, "from", jid_bare_to_pool(op->stanza->pool, hp->from));
		xml_set_attr(op->stanza, "to", jid_bare_to_pool(op->stanza->pool, hp->to));
		op_hold(op); /* from a local user's stream, or from an op_act of ours */
	}
	op_enqueue(op);
	return HOOK_STOP;
}

static enum hook_result presence_closed(struct host *h, void *args, void *ctx)
{
	struct pres_state *ps = ctx;
	struct hook_session *hs = args;
	struct session *s = hs->session;
	struct pres_sess **pp = sess_slot(ps, s);
	struct pres_sess *r = *pp;
	if (r == NULL) {
		/* Available before this module started (a reload): no record. */
		if (!s->available)
			return HOOK_CONTINUE;
		r = xcalloc(1, sizeof(*r));
		r->s = s;
		r->available = true;
	} else {
		*pp = r->next;
	}
	if (r->available) {
		struct pres_op *op = op_new(ps, PK_CLOSED, s->jid.node);
		jid_copy(&op->full, &s->jid);
		op->stanza = xml_new("presence", NS_CLIENT);
		xml_set_attr(op->stanza, "type", "unavailable");
		op->directed = r->directed;
		memset(&r->directed, 0, sizeof(r->directed));
		op_enqueue(op);
	} else {
		end_directed(&s->jid, &r->directed, NULL);
	}
	sess_free(r);
	return HOOK_CONTINUE;
}

/* Subscription pre-approval is supported (RFC 6121 §3.4: advertised). */
static enum hook_result presence_features(struct host *h, void *args, void *ctx)
{
	(void)h;
	(void)ctx;
	struct hook_features *hf = args;
	if (hf->authenticated)
		xml_add_child(hf->features, "sub", "urn:xmpp:features:pre-approval");
	return HOOK_CONTINUE;
}

/* ---- module -------------------------------------------------------------------- */

static int presence_start(struct host *h, const void *settings, void **state_r, char **error_r)
{
	(void)error_r;
	struct pres_state *ps = xcalloc(1, sizeof(*ps));
	ps->host = h;
	ps->set = settings;
	ps->sess = xcalloc(SESS_BUCKETS, sizeof(*ps->sess));
	/* Before other senders' hooks see a subscription stanza we route ourselves. */
	hook_add(h, HOOK_USER_SEND_PACKET, 40, presence_send, ps);
	hook_add(h, HOOK_PRESENCE_IN, 50, presence_in, ps);
	hook_add(h, HOOK_SESSION_CLOSED, 50, presence_closed, ps);
	hook_add(h, HOOK_STREAM_FEATURES, 50, presence_features, ps);
	*state_r = ps;
	return 0;
}

static void presence_stop(struct host *h, void *state)
{
	struct pres_state *ps = state;
	hook_remove(h, HOOK_USER_SEND_PACKET, presence_send, ps);
	hook_remove(h, HOOK_PRESENCE_IN, presence_in, ps);
	hook_remove(h, HOOK_SESSION_CLOSED, presence_closed, ps);
	hook_remove(h, HOOK_STREAM_FEATURES, presence_features, ps);
	pending_stop(&ps->ops);
	for (size_t i = 0; i < SESS_BUCKETS; i++) {
		while (ps->sess[i] != NULL) {
			struct pres_sess *r = ps->sess[i];
			ps->sess[i] = r->next;
			sess_free(r);
		}
	}
	free(ps->sess);
	free(ps);
}

const struct module_def mod_presence = {
	.name = "presence",
	.description = "RFC 6121 presence subscriptions, probes and presence broadcast",
	.options = presence_options,
	.settings_size = sizeof(struct presence_settings),
	.default_enabled = true,
	.start = presence_start,
	.stop = presence_stop,
};
