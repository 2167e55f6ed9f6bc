/*
 * mod_csi: client state indication (XEP-0352, urn:xmpp:csi:0).  A client
 * says <inactive/> when its user does not look at it (a phone in a
 * pocket) and <active/> when the user is back; while it is inactive, the
 * server holds back what the user need not see at once.  Loop thread.
 *
 * Where stanzas come from:
 * - stream_features: <csi/> once the stream is authenticated.
 * - c2s_nonza: <inactive/> and <active/> set session->inactive; <active/>
 *   writes what was held back, in order, and then, if the session was
 *   inactive, runs session_active (push: the device is back).
 * - session_resumed (priority 10, before the other callbacks): a resumed
 *   stream begins active (XEP-0352 §4.2; the state is not restored on
 *   resumption): session->inactive is cleared and what was held back is
 *   written.  The hook runs after the unacknowledged stanzas were sent
 *   again; the queue was never written to any connection, so it comes
 *   after them, in the order it came.
 * - user_receive_packet (priority 90, after mod_privacy and mod_carbons):
 *   for an inactive session, presence updates (available and unavailable)
 *   and messages that carry only chat states (with hints, ids, a delay or
 *   a thread; also such a message wrapped as a carbon copy) are queued: the hook stops the chain with hp->queued set.
 *   Anything else (a message with a body or subject, receipts and chat
 *   markers, presence subscriptions, errors, iqs, anything unknown) is
 *   written at once, after
 *   the queue: the queue is written first so the session sees stanzas in
 *   the order they came.  A message with a body written to an inactive
 *   session runs message_unseen (push may wake the device).
 * - session_closed: the queue is dropped.
 *
 * Invariants:
 * - A session is inactive from its client's <inactive/> (on the stream, or
 *   in its Bind 2 request) until its <active/> or the session's
 *   resumption; its queue is empty whenever it is active.
 * - A queue holds at most one presence per sending full JID: a newer one
 *   (available or unavailable) removes the older, and goes at the end.
 * - A queue that reaches queue_size entries is written at once, whole; the
 *   session stays inactive and queuing goes on.
 * - Dropping a queue loses presence and chat states only, which are
 *   passing states: a client learns presence again (probes at its next
 *   login), and the next chat state replaces the last.  Receipts and chat
 *   markers record something (delivered, read) and are not queued.
 * - Queues are per session (struct csi_queue, in a table by session id);
 *   an entry holds a copy of the routed tree (a fan-out changes the tree's
 *   'to' from one recipient to the next) and was already through the
 *   privacy filter.
 */
#include "builtin.h"
#include "server/host.h"
#include "server/hooks.h"
#include "server/sm.h"
#include "lib/htab.h"
#include "lib/log.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define NS_CSI "urn:xmpp:csi:0"
#define NS_CARBONS "urn:xmpp:carbons:2"

struct csi_settings {
	unsigned queue_size;
};

static const struct opt_def csi_options[] = {
	{ "queue_size", OPT_UINT, offsetof(struct csi_settings, queue_size), "100", NULL, 1, 100000,
	  "most stanzas held back for one inactive session; a queue that reaches it is written to "
	  "the client at once, and queuing goes on" },
	OPT_END
};

struct csi_entry {
	struct xml_node *stanza;
	char *from; /* presence: the sender's full JID (the key), else NULL */
};

struct csi_queue {
	struct htab_link link;
	uint64_t id; /* the session's */
	struct csi_entry *e;
	size_t n, cap;
};

struct csi_state {
	struct host *host;
	const struct csi_settings *set;
	struct htab queues;
	uint64_t queued, flushed, dropped; /* counters, logged at stop */
};

static uint32_t id_hash(uint64_t id)
{
	return hash_bytes(&id, sizeof(id));
}

static struct csi_queue *queue_find(struct csi_state *st, uint64_t id, bool create)
{
	uint32_t hv = id_hash(id);
	for (struct htab_link *l = htab_chain(&st->queues, hv); l != NULL; l = l->next) {
		struct csi_queue *q = (struct csi_queue *)l;
		if (l->hash == hv && q->id == id)
			return q;
	}
	if (!create)
		return NULL;
	struct csi_queue *q = xcalloc(1, sizeof(*q));
	q->id = id;
	htab_add(&st->queues, &q->link, hv);
	return q;
}

static void entry_clear(struct csi_entry *e)
{
	xml_unref(&e->stanza);
	free(e->from);
	e->from = NULL;
}

static void queue_free(struct csi_state *st, struct csi_queue *q)
{
	for (size_t i = 0; i < q->n; i++)
		entry_clear(&q->e[i]);
	st->dropped += q->n;
	htab_remove(&st->queues, &q->link);
	free(q->e);
	free(q);
}

/* Write what s's queue holds, in order, and forget the queue. */
static void queue_flush(struct csi_state *st, struct session *s)
{
	struct csi_queue *q = queue_find(st, s->id, false);
	if (q == NULL)
		return;
	/* Take the entries first: a write may not come back here, but the
	 * queue is gone before anything else can. */
	struct csi_entry *e = q->e;
	size_t n = q->n;
	q->e = NULL;
	q->n = q->cap = 0;
	queue_free(st, q);
	for (size_t i = 0; i < n; i++) {
		s->ops->deliver(s->owner, e[i].stanza);
		entry_clear(&e[i]);
	}
	st->flushed += n;
	free(e);
}

static void queue_add(struct csi_state *st, struct session *s, struct xml_node *stanza, const char *from)
{
	struct csi_queue *q = queue_find(st, s->id, true);
	if (from != NULL) {
		for (size_t i = 0; i < q->n; i++) {
			if (q->e[i].from != NULL && strcmp(q->e[i].from, from) == 0) {
				entry_clear(&q->e[i]);
				memmove(&q->e[i], &q->e[i + 1], (q->n - i - 1) * sizeof(*q->e));
				q->n--;
				st->dropped++;
				break;
			}
		}
	}
	if (q->n == q->cap) {
		q->cap = q->cap ? q->cap * 2 : 8;
		q->e = xrealloc(q->e, q->cap * sizeof(*q->e));
	}
	/* A copy: a fan-out (MUC, pubsub) changes the routed tree's 'to' for
	 * each recipient. */
	q->e[q->n++] =
	        (struct csi_entry){ .stanza = xml_copy(stanza), .from = from != NULL ? xstrdup(from) : NULL };
	st->queued++;
	if (q->n >= st->set->queue_size)
		queue_flush(st, s);
}

/* ---- what may wait ------------------------------------------------------------- */

/* Namespaces of message payloads that nobody needs to see at once and
 * that lose nothing when dropped (not receipts or chat markers: they
 * record that a message was delivered or read). */
static const char *const quiet_ns[] = {
	"http://jabber.org/protocol/chatstates", /* XEP-0085 */
	"urn:xmpp:hints",                        /* XEP-0334 */
	"urn:xmpp:sid:0",                        /* XEP-0359 stanza-id, origin-id */
	"urn:xmpp:delay",                        /* XEP-0203 */
	NULL,
};

static bool quiet_child(const struct xml_node *c)
{
	if (strcmp(c->ns, NS_CLIENT) == 0)
		return strcmp(c->name, "thread") == 0;
	for (const char *const *ns = quiet_ns; *ns != NULL; ns++)
		if (strcmp(c->ns, *ns) == 0)
			return true;
	return false;
}

/* A message with nothing a user must see now: no body, no subject, only
 * quiet payloads (a carbon copy: of such a message). */
static bool quiet_message(const struct xml_node *msg, int depth)
{
	const char *type = xml_attr(msg, "type");
	if (type != NULL && strcmp(type, "error") == 0)
		return false;
	for (const struct xml_node *c = xml_first_element(msg); c != NULL; c = xml_next(c, NULL, NULL)) {
		if (depth == 0 && (xml_is(c, "received", NS_CARBONS) || xml_is(c, "sent", NS_CARBONS))) {
			const struct xml_node *inner = xml_path(c, "forwarded/message");
			if (inner == NULL || !quiet_message(inner, 1))
				return false;
			continue;
		}
		if (!quiet_child(c))
			return false;
	}
	return true;
}

/* ---- hooks ------------------------------------------------------------------------ */

static enum hook_result csi_receive(struct host *h, void *args, void *ctx)
{
	struct csi_state *st = ctx;
	struct hook_packet *hp = args;
	struct session *s = hp->session;
	if (s == NULL || !s->inactive)
		return HOOK_CONTINUE;
	enum stanza_kind kind = stanza_kind(hp->stanza);
	const char *type = xml_attr(hp->stanza, "type");
	if (kind == STANZA_PRESENCE && (type == NULL || strcmp(type, "unavailable") == 0)) {
		const char *from = xml_attr(hp->stanza, "from");
		queue_add(st, s, hp->stanza, from != NULL ? from : "");
		hp->queued = true;
		return HOOK_STOP;
	}
	if (kind == STANZA_MESSAGE && quiet_message(hp->stanza, 0)) {
		queue_add(st, s, hp->stanza, NULL);
		hp->queued = true;
		return HOOK_STOP;
	}
	/* Written now: what waited goes first. */
	queue_flush(st, s);
	if (kind == STANZA_MESSAGE && xml_child(hp->stanza, "body", NS_CLIENT) != NULL) {
		struct hook_packet unseen = {
			.from = hp->from, .to = &s->jid, .stanza = hp->stanza, .session = s
		};
		hook_run(h, HOOK_MESSAGE_UNSEEN, &unseen);
	}
	return HOOK_CONTINUE;
}

static enum hook_result csi_nonza(struct host *h, void *args, void *ctx)
{
	struct csi_state *st = ctx;
	struct hook_packet *hp = args;
	struct session *s = hp->session;
	if (s == NULL)
		return HOOK_CONTINUE;
	if (xml_is(hp->stanza, "inactive", NS_CSI)) {
		s->inactive = true;
		return HOOK_STOP;
	}
	if (xml_is(hp->stanza, "active", NS_CSI)) {
		bool was_inactive = s->inactive;
		s->inactive = false;
		queue_flush(st, s);
		if (was_inactive) {
			struct hook_session hs = { .session = s };
			hook_run(h, HOOK_SESSION_ACTIVE, &hs);
		}
		return HOOK_STOP;
	}
	return HOOK_CONTINUE;
}

/* A resumed session is active (XEP-0352 §4.2: a stream begins active);
 * what waited goes after what was sent again on resumption. */
static enum hook_result csi_resumed(struct host *h, void *args, void *ctx)
{
	(void)h;
	struct hook_session *hs = args;
	hs->session->inactive = false;
	queue_flush(ctx, hs->session);
	return HOOK_CONTINUE;
}

static enum hook_result csi_closed(struct host *h, void *args, void *ctx)
{
	(void)h;
	struct csi_state *st = ctx;
	struct hook_session *hs = args;
	struct csi_queue *q = queue_find(st, hs->session->id, false);
	if (q != NULL)
		queue_free(st, q);
	return HOOK_CONTINUE;
}

static enum hook_result csi_features(struct host *h, void *args, void *ctx)
{
	(void)h;
	(void)ctx;
	struct hook_features *hf = args;
	if (hf->authenticated)
		xml_add_child(hf->features, "csi", NS_CSI);
	return HOOK_CONTINUE;
}

/* ---- module -------------------------------------------------------------------------- */

static const struct builtin_hook csi_hooks[] = {
	{ HOOK_USER_RECEIVE_PACKET, 90, csi_receive },
	{ HOOK_C2S_NONZA, 50, csi_nonza },
	{ HOOK_SESSION_CLOSED, 50, csi_closed },
	/* Before the others: they see the resumed session active. */
	{ HOOK_SESSION_RESUMED, 10, csi_resumed },
	{ HOOK_STREAM_FEATURES, 50, csi_features },
};

static const struct builtin_parts csi_parts = {
	.hooks = csi_hooks,
	.nhooks = ARRAY_SIZE(csi_hooks),
};

static int csi_start(struct host *h, const void *settings, void **state_r, char **error_r)
{
	struct csi_state *st = xcalloc(1, sizeof(*st));
	st->host = h;
	st->set = settings;
	if (builtin_parts_add(h, &csi_parts, st, error_r) < 0) {
		free(st);
		return -1;
	}
	*state_r = st;
	return 0;
}

/* The module stops (its host goes, the server stops) while sessions may
 * still be there: they get what was held for them, and are active again
 * as far as anyone can tell. */
static void stop_session(struct session *s, void *ctx)
{
	queue_flush(ctx, s);
	s->inactive = false;
}

static void csi_stop(struct host *h, void *state)
{
	struct csi_state *st = state;
	builtin_parts_remove(h, &csi_parts, st);
	sm_foreach(h, stop_session, st);
	struct htab_link *l;
	while ((l = htab_any(&st->queues)) != NULL)
		queue_free(st, (struct csi_queue *)l);
	htab_free(&st->queues);
	log_debug("csi %s: %llu stanzas queued, %llu written later, %llu replaced or dropped", h->name,
	          (unsigned long long)st->queued, (unsigned long long)st->flushed,
	          (unsigned long long)st->dropped);
	free(st);
}

const struct module_def mod_csi = {
	.name = "csi",
	.description = "XEP-0352 client state indication: while a client says it is inactive, presence "
	               "updates and chat states wait for it",
	.options = csi_options,
	.settings_size = sizeof(struct csi_settings),
	.default_enabled = true,
	.start = csi_start,
	.stop = csi_stop,
};
