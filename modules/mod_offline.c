/*
 * mod_offline: offline messages (XEP-0160, RFC 6121 §8.5.2.1.1).  A normal
 * or chat message that no resource of its recipient can take is stored,
 * with a <delay/> (XEP-0203) saying when, and delivered oldest first to the
 * first session of the user that sends available presence with a
 * non-negative priority; then it is deleted.  A session that goes
 * unavailable or to a negative priority without closing fetches again
 * when it sends such presence next.  Loop thread.
 *
 * Invariants:
 * - No accepted message is lost silently: the offline_message hook stops
 *   the chain (no <service-unavailable/> from the session manager) and
 *   keeps a reference to the message until the store answers; a store that
 *   fails (no such account, quota full, backend down) bounces it to the
 *   sender from the callback.  Messages that carry nothing worth keeping
 *   (no body and nothing but chat states, XEP-0160 §3 / XEP-0085 §5.4)
 *   are dropped without a bounce unless store_empty is set.
 * - Before a message is stored, the recipient's block list (XEP-0191, when
 *   mod_blocking runs on the host) and default privacy list (XEP-0016,
 *   when mod_privacy runs; with the roster when the list has group or
 *   subscription items) are read (builtin_refusal_start, as mod_presence
 *   does for subscription stanzas): a message they refuse is bounced with
 *   <service-unavailable/>, not stored.  A message with the XEP-0334
 *   <no-store/> hint is not stored either (the session manager bounces it
 *   like any message nobody could take).
 * - The messages read are handed to the session while less than
 *   PACE_BYTES of its output is unwritten, the next ones as it writes
 *   (checked every 20 ms): however many and big they are, they never pile
 *   up in its output queue (past the stream's ceiling, stream.h, it would
 *   be disconnected at every login and the messages never delivered).
 *   Messages that arrive meanwhile go to the session at once.
 * - Messages are deleted only after every byte of them was written to the
 *   session's socket (the session's out_written reached the out_queued
 *   taken right after the last one was queued; checked every 20 ms).  If
 *   the session closes first, nothing is deleted: they are delivered again
 *   at the next login (a duplicate for the client that did read them,
 *   never a loss).  What this does not cover: bytes the kernel accepted
 *   but the client never read (a dead network, a client crash); only
 *   stream management (XEP-0198) acknowledges what the client received.
 *   A delete that fails also leaves them to be delivered again.
 * - A stored message is handled once it is committed: its op holds the
 *   sender's barrier (lib/barrier.h) from acceptance until the store (or
 *   the bounce) is done, so the sender's stream answers nothing it sent
 *   later before that (RFC 6120 §10.1), and a crash after an answer
 *   loses no message sent before it.  A bounce is routed as the answer of
 *   that hold, so it comes in the order of the sender's stanzas.
 * - One fetch per user at a time: a second session that becomes available
 *   while the first one's fetch (or its wait for the write) is in flight
 *   gets nothing (no duplicates).
 * - A fetch never overtakes a store: when a session becomes available
 *   while messages for its user are still being stored (the checks before
 *   storing, or the write itself), its fetch waits (an OP_FETCH without a
 *   storage call) until the last of those stores has finished, so a message
 *   accepted before the presence is in what it reads instead of waiting in
 *   the store for the next login.  Messages that arrive meanwhile go to the
 *   session at once, so they can come before the stored ones.
 * - A message stored runs message_unseen (push) after the commit, with
 *   the devices that were told of it already when stream management
 *   stores what a session never acknowledged (hook_packet.told): push
 *   counts it once per device.
 * - offline_store_from_host (announcements to users who are away) takes
 *   the same path as the hook, but its caller hears the outcome, the
 *   commit included, instead of a bounce going to the sender.
 * - Every storage call runs through a struct offline_op on the module's
 *   pending list (pending.h).  A fetch belongs to its session:
 *   session_closed and stop cancel it.  Stores and deletes outlive a stop
 *   (the message may already be written): their callbacks, which need no
 *   module state, finish them (bounce on failure) and free them.
 * - An outage of the store fails every message: the line saying that one
 *   was bounced is written at most once a second, and the ones left out
 *   are counted in a summary line a second after the last one written
 *   (module-wide, as the store callbacks that log outlive a stop).
 */
#include "builtin.h"
#include "errmap.h"
#include "pending.h"
#include "server/host.h"
#include "server/router.h"
#include "server/sm.h"
#include "lib/latency.h"
#include "lib/log.h"
#include "lib/log-summary.h"
#include "lib/barrier.h"
#include "server/server.h"
#include "storage/storage.h"

#include <ev.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NS_CHATSTATES "http://jabber.org/protocol/chatstates"
#define NS_HINTS "urn:xmpp:hints"
#define WRITE_POLL 0.02
#define PACE_BYTES (128 * 1024) /* unwritten output below which more messages are delivered */
#define FEATURE_MSGOFFLINE "msgoffline"

struct offline_settings {
	unsigned max_per_user;
	bool store_empty;
};

static const struct opt_def offline_options[] = {
	{ "max_per_user", OPT_UINT, offsetof(struct offline_settings, max_per_user), "100", NULL, 1, 1000000,
	  "most messages kept for one user; later ones bounce with resource-constraint" },
	{ "store_empty", OPT_BOOL, offsetof(struct offline_settings, store_empty), "false", NULL, 0, 0,
	  "also keep messages without a body that carry only chat states" },
	OPT_END
};

enum offline_op_kind { OP_STORE, OP_FETCH, OP_WAIT_WRITE, OP_DELETE };

/* A message read for a session, waiting for its turn (see the top). */
struct offline_copy {
	int64_t seq;
	char *stanza;
};

struct offline_state;

struct offline_op {
	struct pending_op p;      /* first: the state's list of ops; p.call the storage call */
	struct offline_state *os; /* valid while p is listed */
	enum offline_op_kind kind;
	struct host *host;
	char *user;
	struct xml_node *stanza; /* OP_STORE: the original message (a reference) */
	offline_stored_fn *done; /* OP_STORE: told the outcome instead of the sender
	                               * (offline_store_from_host); NULL: the hook's */
	void *done_ctx;
	char *text;                /* OP_STORE: what to store */
	struct jid from;           /* OP_STORE: the sender */
	unsigned max;              /* OP_STORE: the quota */
	struct session *session;   /* OP_FETCH, OP_WAIT_WRITE: the session delivered to */
	bool waiting;              /* OP_FETCH: waits for the user's stores to finish */
	int64_t last_seq;          /* OP_WAIT_WRITE: delete up to this one once written */
	uint64_t mark;             /* OP_WAIT_WRITE: the session's out_queued after them */
	struct offline_copy *rest; /* OP_WAIT_WRITE: the messages read, oldest first */
	size_t nrest, next;        /* how many; the next one to deliver */
	size_t delivered;          /* OP_WAIT_WRITE: how many went to the session */
	ev_timer poll;             /* OP_WAIT_WRITE */
	struct barrier_hold *hold; /* OP_STORE: the sender's later answers wait for it */
	char **told;               /* OP_STORE: the devices told of it already (hook_packet) */
	size_t ntold;
};

struct offline_state {
	struct host *host;
	const struct offline_settings *set;
	struct pending_ops ops;
};

/* ---- ops ---------------------------------------------------------------------- */

static void op_free_pending(struct pending_op *p);

/* Stores and deletes outlive a stop (see the top). */
static struct offline_op *op_new(struct offline_state *os, enum offline_op_kind kind, const char *user)
{
	struct offline_op *op = xcalloc(1, sizeof(*op));
	op->os = os;
	op->kind = kind;
	op->host = os->host;
	op->user = xstrdup(user);
	op->p.outlives_stop = kind == OP_STORE;
	pending_track(&os->ops, &op->p, op_free_pending);
	return op;
}

static void fetch_kick(struct offline_state *os, const char *user);

static void op_free(struct offline_op *op)
{
	bool listed = pending_listed(&op->p);
	pending_untrack(&op->p);
	if (op->kind == OP_STORE && listed)
		fetch_kick(op->os, op->user); /* a fetch may wait for this store */
	if (op->kind == OP_WAIT_WRITE)
		ev_timer_stop(server.loop, &op->poll);
	if (op->stanza != NULL)
		xml_unref(&op->stanza);
	barrier_release(&op->hold); /* after any bounce, which the hold orders too */
	for (size_t i = 0; i < op->nrest; i++)
		free(op->rest[i].stanza);
	free(op->rest);
	for (size_t i = 0; i < op->ntold; i++)
		free(op->told[i]);
	free(op->told);
	free(op->text);
	jid_clear(&op->from);
	free(op->user);
	free(op);
}

static void op_free_pending(struct pending_op *p)
{
	op_free((struct offline_op *)p);
}

/* ---- the log of failed stores ------------------------------------------------------ */

static void failed_say(const struct log_summary *s, unsigned n)
{
	(void)s;
	log_warning("offline: %u more message%s not stored because of a storage failure; bounced, "
	            "or counted for an announcement (left out of the log since the last line)",
	            n, n == 1 ? "" : "s");
}

static struct log_summary failed_logs = { .limit.every = 1.0, .module = "offline", .say = failed_say };

/* Whether a failure line is written now (with *more_r, the lines left out
 * before it); false: it is left out, and the summary will count it. */
static bool failed_log_pass(unsigned *more_r)
{
	return log_summary_pass(&failed_logs, server.loop, more_r);
}

/* ---- storing ------------------------------------------------------------------ */

/* A message was not stored: the sender hears e (a bounce), or the caller
 * of offline_store_from_host hears r. */
static void not_stored(struct offline_op *op, enum offline_result r, enum stanza_error e, const char *text)
{
	if (op->done != NULL) {
		op->done(r, op->done_ctx);
	} else {
		struct barrier_hold *outer = barrier_answer_enter(op->hold);
		router_bounce(op->stanza, e, text);
		barrier_answer_leave(outer);
	}
}

/* The message could not be stored because of res: the store failed, or
 * a read that judges the message (what: "block list") did (it might be
 * one the recipient refuses).  The condition is errmap's (a temporary
 * failure or a full queue is <resource-constraint/>, type wait), except
 * that a message for an account that does not exist is
 * <service-unavailable/> (RFC 6121 §8.5), never <item-not-found/>. */
static void store_failed(struct offline_op *op, enum storage_result res, const char *what)
{
	enum offline_result r;
	switch (res) {
	case STORAGE_NOT_FOUND:
		log_debug("offline: no account %s@%s; bouncing a message", op->user, op->host->name);
		not_stored(op, OFFLINE_NO_USER, SE_SERVICE_UNAVAILABLE, NULL);
		return;
	case STORAGE_FULL:
		log_info("offline: the offline store of %s@%s is full; bouncing a message", op->user,
		         op->host->name);
		not_stored(op, OFFLINE_FULL, errmap_storage(res),
		           "the recipient is offline and cannot take more offline messages");
		return;
	case STORAGE_TEMPFAIL: r = OFFLINE_TEMPFAIL; break;
	default: r = OFFLINE_FAILED; break;
	}
	unsigned more;
	if (failed_log_pass(&more)) {
		char extra[LOG_LIMIT_MORE_SIZE];
		log_limit_more(more, extra);
		/* an announcement's message is not bounced: its sender hears
		 * how many were stored */
		log_warning("offline: cannot %s for %s@%s (storage %s); %s%s", what, op->user, op->host->name,
		            storage_result_str(res),
		            op->done != NULL ? "an announcement not stored" : "bouncing a message", extra);
	}
	char *text = errmap_storage_text(res, "the recipient's offline store");
	not_stored(op, r, errmap_storage(res), text);
	free(text);
}

static void stored(enum storage_result res, void *ctx)
{
	struct offline_op *op = ctx;
	pending_resume(&op->p); /* a store: goes on after a stop too */
	if (res == STORAGE_OK) {
		log_debug("offline: message for %s@%s stored", op->user, op->host->name);
		if (op->done != NULL) {
			op->done(OFFLINE_STORED, op->done_ctx);
		} else if (pending_listed(&op->p)) {
			/* The module still runs on its host: push may wake the user. */
			struct jid to = { .node = op->user, .domain = op->host->name };
			struct hook_packet hp = { .from = &op->from,
				                  .to = &to,
				                  .stanza = op->stanza,
				                  .told = (const char *const *)op->told,
				                  .ntold = op->ntold };
			hook_run(op->host, HOOK_MESSAGE_UNSEEN, &hp);
		}
	} else {
		store_failed(op, res, "store a message");
	}
	op_free(op);
}

/* Whether a message carries something a user would miss: a child element
 * other than chat states and <thread/>. */
static bool worth_storing(const struct xml_node *msg)
{
	for (const struct xml_node *c = xml_first_element(msg); c != NULL; c = xml_next(c, NULL, NULL)) {
		if (strcmp(c->ns, NS_CHATSTATES) == 0)
			continue;
		if (strcmp(c->name, "thread") == 0 && strcmp(c->ns, NS_CLIENT) == 0)
			continue;
		return true;
	}
	return false;
}

/* ---- checks before storing (the recipient has no session) ------------------------ */

static void store(struct offline_op *op)
{
	const char *from = xml_attr(op->stanza, "from");
	pending_wait_storage(&op->p,
	                     storage_offline_store(op->host->storage, op->host->name, op->user,
	                                           from != NULL ? from : "", op->text, op->max, stored, op));
}

/* A read needed to judge the message failed: it is not stored. */
static void check_failed(struct offline_op *op, const char *what, enum storage_result res)
{
	store_failed(op, res, what);
	op_free(op);
}

static void refused(struct offline_op *op, const char *why)
{
	log_debug("offline: a message for %s@%s is refused by the %s", op->user, op->host->name, why);
	not_stored(op, OFFLINE_REFUSED, SE_SERVICE_UNAVAILABLE, NULL);
	op_free(op);
}

/* What the recipient's block list and default privacy list say of it. */
static void checked(enum builtin_refusal r, enum storage_result res, const char *what, void *ctx)
{
	struct offline_op *op = ctx;
	pending_resume(&op->p);
	switch (r) {
	case BUILTIN_PASSES: store(op); break;
	case BUILTIN_BLOCKED: refused(op, "block list"); break;
	case BUILTIN_DENIED: refused(op, "default privacy list"); break;
	case BUILTIN_UNKNOWN: {
		char *text = xasprintf("read %s", what);
		check_failed(op, text, res);
		free(text);
		break;
	}
	}
}

/* Store msg for user, after the checks (block list, privacy list); done
 * (NULL: the sender, by a bounce) hears a failure.  told[0..ntold): the
 * devices told of it already (hook_packet), for message_unseen. */
static void store_start(struct offline_state *os, struct xml_node *msg, const struct jid *from,
                        const char *user, offline_stored_fn *done, void *done_ctx, const char *const *told,
                        size_t ntold)
{
	struct host *h = os->host;
	/* The stored copy says when it arrived (XEP-0203), unless this server
	 * already said so (stream management stores the messages a client
	 * never acknowledged with the time they first came). */
	struct xml_node *copy = xml_copy(msg);
	struct xml_node *had = xml_child(copy, "delay", NS_DELAY);
	if (had == NULL || !str_eq(xml_attr(had, "from"), h->name)) {
		struct xml_node *delay = xml_add_child(copy, "delay", NS_DELAY);
		char stamp[XEP82_STAMP_LEN];
		xep82_stamp(stamp, (int64_t)time(NULL));
		xml_set_attr(delay, "from", h->name);
		xml_set_attr(delay, "stamp", stamp);
	}
	char *text = xml_to_string(copy, NS_CLIENT);
	xml_unref(&copy);

	struct offline_op *op = op_new(os, OP_STORE, user);
	op->hold = barrier_hold_current();
	xml_ref(msg);
	op->stanza = msg;
	op->text = text;
	op->done = done;
	op->done_ctx = done_ctx;
	if (ntold > 0) {
		op->told = xcalloc(ntold, sizeof(*op->told));
		for (size_t i = 0; i < ntold; i++)
			op->told[i] = xstrdup(told[i]);
		op->ntold = ntold;
	}
	if (from != NULL && from->domain != NULL)
		jid_copy(&op->from, from);
	op->max = os->set->max_per_user;
	struct builtin_refusal_check *c =
	        op->from.domain != NULL
	                ? builtin_refusal_start(h, op->user, &op->from, PRIVACY_MESSAGE, checked, op)
	                : NULL;
	if (c != NULL)
		pending_wait(&op->p, c, builtin_refusal_cancel);
	else
		store(op);
}

static enum hook_result offline_message(struct host *h, void *args, void *ctx)
{
	struct offline_state *os = ctx;
	struct hook_packet *hp = args;
	struct xml_node *msg = hp->stanza;
	if (hp->to == NULL || hp->to->node == NULL)
		return HOOK_CONTINUE;
	/* RFC 6121 §8.5.2.1.1: normal and chat messages are stored; other
	 * types never reach this hook or are not ours to keep. */
	const char *type = xml_attr(msg, "type");
	if (type != NULL && strcmp(type, "normal") != 0 && strcmp(type, "chat") != 0)
		return HOOK_CONTINUE;
	if (!os->set->store_empty && !worth_storing(msg))
		return HOOK_STOP; /* a chat state for nobody: dropped, as XEP-0160 asks */
	/* XEP-0334: the sender asked that it not be stored. */
	if (xml_child(msg, "no-store", NS_HINTS) != NULL)
		return HOOK_CONTINUE;
	store_start(os, msg, hp->from, hp->to->node, NULL, NULL, hp->told, hp->ntold);
	return HOOK_STOP;
}

int offline_store_from_host(struct host *h, const char *user, struct xml_node *msg, offline_stored_fn *done,
                            void *ctx)
{
	struct offline_state *os = module_state(h, "offline");
	if (os == NULL)
		return -1;
	struct jid from = { .domain = h->name };
	store_start(os, msg, &from, user, done, ctx, NULL, 0);
	return 0;
}

/* ---- delivering ---------------------------------------------------------------- */

static void deleted(enum storage_result res, void *ctx)
{
	struct offline_op *op = ctx;
	pending_resume(&op->p); /* a delete: goes on after a stop too */
	if (res != STORAGE_OK)
		log_warning("offline: cannot delete the delivered offline messages of %s@%s: %s; they "
		            "will be delivered again",
		            op->user, op->host->name, storage_result_str(res));
	op_free(op);
}

/* Deliver the messages read, oldest first, while less than PACE_BYTES of
 * the session's output is unwritten; once all went, note where they end
 * (op->mark). */
static void deliver_some(struct offline_op *op)
{
	struct session *s = op->session;
	while (op->next < op->nrest) {
		if (s->ops->out_queued(s->owner) - s->ops->out_written(s->owner) >= PACE_BYTES)
			return;
		struct offline_copy *m = &op->rest[op->next++];
		const char *err = NULL;
		struct xml_parser_limits lim = {
			/* written by us after the stream's own limits let it in */
			.max_stanza = strlen(m->stanza) + 1,
			.max_depth = 1024,
			.max_attrs = 1024,
		};
		struct xml_node *el = xml_parse_string(m->stanza, strlen(m->stanza), NS_CLIENT, &lim, &err);
		free(m->stanza); /* what was handed on is not kept twice */
		m->stanza = NULL;
		op->last_seq = m->seq;
		if (el == NULL || !xml_is(el, "message", NS_CLIENT)) {
			log_error("offline: offline message %" PRId64 " of %s@%s is not a message (%s); "
			          "dropping it",
			          m->seq, op->user, op->host->name, err != NULL ? err : "another element");
			xml_unref(&el);
			continue;
		}
		s->ops->deliver(s->owner, el);
		xml_unref(&el);
		op->delivered++;
	}
	log_info("offline: %zu offline message%s delivered to %s@%s/%s", op->delivered,
	         op->delivered == 1 ? "" : "s", s->jid.node, s->jid.domain, s->jid.resource);
	/* Queued: they go once written to the socket (see the top). */
	op->mark = s->ops->out_queued(s->owner);
}

/* Deliver the next messages once the session has written the ones before;
 * once it has written all of them (op->mark), they are deleted. */
static void write_poll_event(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	struct offline_op *op = w->data;
	struct session *s = op->session;
	if (op->next < op->nrest) {
		size_t before = op->next;
		deliver_some(op);
		if (op->next > before) {
			/* Look again as soon as they are written (the loop
			 * writes before it waits), not a poll later. */
			ev_timer_stop(server.loop, &op->poll);
			ev_timer_set(&op->poll, 0, WRITE_POLL);
			ev_timer_start(server.loop, &op->poll);
		}
		return;
	}
	if (s->ops->out_written(s->owner) < op->mark)
		return;
	ev_timer_stop(server.loop, &op->poll);
	op->kind = OP_DELETE;
	op->p.outlives_stop = true;
	op->session = NULL;
	pending_wait_storage(&op->p, storage_offline_delete_upto(op->host->storage, op->host->name, op->user,
	                                                         op->last_seq, deleted, op));
}

static void write_poll(struct ev_loop *loop, ev_timer *w, int revents)
{
	latency_begin(LATENCY_MODULE, "offline");
	write_poll_event(loop, w, revents);
	latency_end();
}

static void fetched(enum storage_result res, const struct offline_message *msgs, size_t count, void *ctx)
{
	struct offline_op *op = ctx;
	if (!pending_resume(&op->p))
		return;
	struct session *s = op->session;
	if (res != STORAGE_OK) {
		log_warning("offline: cannot read the offline messages of %s@%s: %s; trying again at "
		            "the next available presence",
		            op->user, op->host->name, storage_result_str(res));
		s->offline_flushed = false;
		op_free(op);
		return;
	}
	if (count == 0) {
		op_free(op);
		return;
	}
	op->rest = xcalloc(count, sizeof(*op->rest));
	for (size_t i = 0; i < count; i++) {
		op->rest[i].seq = msgs[i].seq;
		op->rest[i].stanza = xstrdup(msgs[i].stanza);
	}
	op->nrest = count;
	op->kind = OP_WAIT_WRITE;
	ev_timer_init(&op->poll, write_poll, 0, WRITE_POLL);
	op->poll.data = op;
	ev_timer_start(server.loop, &op->poll);
	pending_idle(&op->p);
	deliver_some(op);
}

static bool store_pending(struct offline_state *os, const char *user)
{
	for (struct offline_op *op = (struct offline_op *)os->ops.head; op != NULL;
	     op = (struct offline_op *)op->p.next)
		if (op->kind == OP_STORE && strcmp(op->user, user) == 0)
			return true;
	return false;
}

/* A store of user's finished: start the fetch that waited for it, unless
 * another store is still under way. */
static void fetch_kick(struct offline_state *os, const char *user)
{
	struct offline_op *f = NULL;
	for (struct offline_op *op = (struct offline_op *)os->ops.head; op != NULL;
	     op = (struct offline_op *)op->p.next)
		if (op->kind == OP_FETCH && op->waiting && strcmp(op->user, user) == 0)
			f = op;
	if (f == NULL || store_pending(os, user))
		return;
	f->waiting = false;
	pending_wait_storage(&f->p,
	                     storage_offline_get(os->host->storage, os->host->name, f->user, fetched, f));
}

static bool fetch_pending(struct offline_state *os, const char *user)
{
	for (struct offline_op *op = (struct offline_op *)os->ops.head; op != NULL;
	     op = (struct offline_op *)op->p.next)
		if ((op->kind == OP_FETCH || op->kind == OP_WAIT_WRITE) && strcmp(op->user, user) == 0)
			return true;
	return false;
}

/* Available presence without 'to' (c2s has updated the session): the first
 * time a session is available with a non-negative priority, it gets the
 * stored messages. */
static enum hook_result offline_presence(struct host *h, void *args, void *ctx)
{
	struct offline_state *os = ctx;
	struct hook_packet *hp = args;
	struct session *s = hp->session;
	if (hp->to != NULL || s == NULL || stanza_kind(hp->stanza) != STANZA_PRESENCE)
		return HOOK_CONTINUE;
	if (!s->available || s->priority < 0) {
		/* Unavailable, or a negative priority: messages to the bare JID
		 * may be stored again, and the session fetches them when it is
		 * back (XEP-0160 §2). */
		s->offline_flushed = false;
		return HOOK_CONTINUE;
	}
	if (s->offline_flushed || xml_attr(hp->stanza, "type") != NULL)
		return HOOK_CONTINUE;
	s->offline_flushed = true;
	if (fetch_pending(os, s->jid.node))
		return HOOK_CONTINUE; /* another resource is getting them */
	struct offline_op *op = op_new(os, OP_FETCH, s->jid.node);
	op->session = s;
	if (store_pending(os, op->user)) {
		op->waiting = true; /* started by fetch_kick (see the top) */
		log_debug("offline: the fetch for %s@%s waits for a message being stored", op->user, h->name);
		return HOOK_CONTINUE;
	}
	pending_wait_storage(&op->p, storage_offline_get(h->storage, h->name, op->user, fetched, op));
	return HOOK_CONTINUE;
}

static enum hook_result offline_session_closed(struct host *h, void *args, void *ctx)
{
	struct offline_state *os = ctx;
	struct hook_session *hs = args;
	for (struct offline_op *op = (struct offline_op *)os->ops.head, *next; op != NULL; op = next) {
		next = (struct offline_op *)op->p.next;
		if (op->kind == OP_FETCH && op->session == hs->session) {
			if (!pending_cancel(&op->p))
				op_free(op); /* it waited for a store */
		} else if (op->kind == OP_WAIT_WRITE && op->session == hs->session) {
			log_info("offline: the session of %s@%s closed before its offline messages were "
			         "written; they stay stored",
			         op->user, op->host->name);
			op_free(op);
		}
	}
	return HOOK_CONTINUE;
}

/* ---- module ------------------------------------------------------------------------ */

static const struct builtin_hook offline_hooks[] = {
	{ HOOK_OFFLINE_MESSAGE, 50, offline_message },
	{ HOOK_USER_SEND_PACKET, 50, offline_presence },
	{ HOOK_SESSION_CLOSED, 50, offline_session_closed },
};

static const struct builtin_parts offline_parts = {
	.hooks = offline_hooks,
	.nhooks = ARRAY_SIZE(offline_hooks),
	.feature = FEATURE_MSGOFFLINE,
};

static int offline_start(struct host *h, const void *settings, void **state_r, char **error_r)
{
	struct offline_state *os = xcalloc(1, sizeof(*os));
	os->host = h;
	os->set = settings;
	if (builtin_parts_add(h, &offline_parts, os, error_r) < 0) {
		free(os);
		return -1;
	}
	*state_r = os;
	return 0;
}

static void offline_stop(struct host *h, void *state)
{
	struct offline_state *os = state;
	builtin_parts_remove(h, &offline_parts, os);
	/* The sessions may fetch again when the module is back; waits for a
	 * write end (the messages stay stored, delivered again next time);
	 * stores and deletes finish in their callbacks. */
	for (struct offline_op *op = (struct offline_op *)os->ops.head; op != NULL;
	     op = (struct offline_op *)op->p.next)
		if (op->kind == OP_FETCH)
			op->session->offline_flushed = false;
	pending_stop(&os->ops);
	free(os);
}

const struct module_def mod_offline = {
	.name = "offline",
	.description = "XEP-0160 offline messages: stored while the user is away, delivered at the "
	               "next available presence",
	.options = offline_options,
	.settings_size = sizeof(struct offline_settings),
	.default_enabled = true,
	.start = offline_start,
	.stop = offline_stop,
};
