/*
 * mod_offline: offline messages (XEP-0160, RFC 6121 §8.5.2.1.1).  A normal
 * or chat message that no resource of its recipient can take is stored,
 * with a <delay/> (XEP-0203) saying when, and delivered oldest first to the
 * first session of the user that sends available presence with a
 * non-negative priority; then it is deleted.  Loop thread.
 *
 * Invariants:
 * - No accepted message is lost silently: the offline_message hook stops
 *   the chain (no <service-unavailable/> from the session manager) and
 *   keeps a reference to the message until the store answers; a store that
 *   fails (no such account, quota full, backend down) bounces it to the
 *   sender from the callback.  Messages that carry nothing worth keeping
 *   (no body and nothing but chat states, XEP-0160 §3 / XEP-0085 §5.4)
 *   are dropped without a bounce unless store_empty is set.
 * - Messages are deleted only after they were handed to the session's
 *   stream (queued in its output buffer), up to the last one handed over.
 *   The gap: a crash, or the stream closing, between that queueing and the
 *   socket write loses them (there is no "output flushed" callback; stream
 *   management, XEP-0198, is the real fix).  A delete that fails leaves
 *   them to be delivered again next time: a duplicate, never a loss.
 * - One fetch per user at a time: a second session that becomes available
 *   while the first one's fetch is in flight gets nothing (no duplicates).
 * - Every storage call runs through a struct offline_op on the module's
 *   list.  A fetch belongs to its session: session_closed and stop cancel
 *   it.  Stores and deletes are not cancelled on stop (the message may
 *   already be written): they are orphaned, and their callbacks, which
 *   need no module state, finish them (bounce on failure) and free them.
 */
#include "builtin.h"
#include "server/host.h"
#include "server/router.h"
#include "server/sm.h"
#include "server/log.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NS_CHATSTATES "http://jabber.org/protocol/chatstates"
#define FEATURE_MSGOFFLINE "msgoffline"

struct offline_settings {
	unsigned max_per_user;
	bool store_empty;
};

static const struct opt_def offline_options[] = {
	{ "max_per_user", OPT_UINT, offsetof(struct offline_settings, max_per_user), "100", NULL, 1,
	  1000000, "most messages kept for one user; later ones bounce with resource-constraint" },
	{ "store_empty", OPT_BOOL, offsetof(struct offline_settings, store_empty), "false", NULL, 0,
	  0, "also keep messages without a body that carry only chat states" },
	OPT_END
};

enum offline_op_kind { OP_STORE, OP_FETCH, OP_DELETE };

struct offline_state;

struct offline_op {
	struct pending_link link;     /* first: the state's list of ops */
	struct offline_state *os;     /* NULL once orphaned */
	struct storage_req *sreq;
	enum offline_op_kind kind;
	struct host *host;
	char *user;
	struct xml_node *stanza;      /* OP_STORE: the original message (a reference) */
	struct session *session;      /* OP_FETCH: the session to deliver to */
};

struct offline_state {
	struct host *host;
	const struct offline_settings *set;
	struct pending_list ops;
};

/* ---- ops ---------------------------------------------------------------------- */

static struct offline_op *op_new(struct offline_state *os, enum offline_op_kind kind,
                                 const char *user)
{
	struct offline_op *op = xcalloc(1, sizeof(*op));
	op->os = os;
	op->kind = kind;
	op->host = os->host;
	op->user = xstrdup(user);
	pending_add(&os->ops, &op->link);
	return op;
}

static void op_unlink(struct offline_op *op)
{
	if (op->os == NULL)
		return;
	pending_remove(&op->link);
	op->os = NULL;
}

static void op_free(struct offline_op *op)
{
	op_unlink(op);
	if (op->stanza != NULL)
		xml_unref(&op->stanza);
	free(op->user);
	free(op);
}

/* ---- storing ------------------------------------------------------------------ */

static void stored(enum storage_result res, void *ctx)
{
	struct offline_op *op = ctx;
	op->sreq = NULL;
	switch (res) {
	case STORAGE_OK:
		log_debug("offline: message for %s@%s stored", op->user, op->host->name);
		break;
	case STORAGE_NOT_FOUND:
		/* RFC 6121 §8.5.1: no such account. */
		router_bounce(op->stanza, SE_SERVICE_UNAVAILABLE, NULL);
		break;
	case STORAGE_FULL:
		log_info("offline: the offline store of %s@%s is full; bouncing a message", op->user,
		         op->host->name);
		router_bounce(op->stanza, SE_RESOURCE_CONSTRAINT,
		              "the recipient is offline and cannot take more offline messages");
		break;
	default:
		log_warning("offline: cannot store a message for %s@%s: %s; bouncing it", op->user,
		            op->host->name, storage_result_str(res));
		router_bounce(op->stanza, SE_SERVICE_UNAVAILABLE,
		              "the recipient is offline and the message could not be stored");
		break;
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

static void utc_stamp(char out[32])
{
	time_t now = time(NULL);
	struct tm utc;
	gmtime_r(&now, &utc);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &utc);
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
		return HOOK_STOP;   /* a chat state for nobody: dropped, as XEP-0160 asks */

	/* The stored copy says when it arrived (XEP-0203). */
	struct xml_node *copy = xml_copy(msg);
	struct xml_node *delay = xml_add_child(copy, "delay", NS_DELAY);
	char stamp[32];
	utc_stamp(stamp);
	xml_set_attr(delay, "from", h->name);
	xml_set_attr(delay, "stamp", stamp);
	char *text = xml_to_string(copy, NS_CLIENT);
	xml_unref(&copy);

	const char *from = xml_attr(msg, "from");
	struct offline_op *op = op_new(os, OP_STORE, hp->to->node);
	xml_ref(msg);
	op->stanza = msg;
	op->sreq = storage_offline_store(h->storage, h->name, op->user, from != NULL ? from : "",
	                                 text, os->set->max_per_user, stored, op);
	free(text);
	return HOOK_STOP;
}

/* ---- delivering ---------------------------------------------------------------- */

static void deleted(enum storage_result res, void *ctx)
{
	struct offline_op *op = ctx;
	op->sreq = NULL;
	if (res != STORAGE_OK)
		log_warning("offline: cannot delete the delivered offline messages of %s@%s: %s; they "
		            "will be delivered again", op->user, op->host->name, storage_result_str(res));
	op_free(op);
}

static void fetched(enum storage_result res, const struct offline_message *msgs, size_t count,
                    void *ctx)
{
	struct offline_op *op = ctx;
	op->sreq = NULL;
	struct offline_state *os = op->os;
	struct session *s = op->session;
	if (os == NULL) {
		op_free(op);
		return;
	}
	if (res != STORAGE_OK) {
		log_warning("offline: cannot read the offline messages of %s@%s: %s; trying again at "
		            "the next available presence", op->user, op->host->name,
		            storage_result_str(res));
		s->offline_flushed = false;
		op_free(op);
		return;
	}
	int64_t last = 0;
	size_t delivered = 0;
	for (size_t i = 0; i < count; i++) {
		const char *err = NULL;
		struct xml_parser_limits lim = {
			/* written by us after the stream's own limits let it in */
			.max_stanza = strlen(msgs[i].stanza) + 1, .max_depth = 1024, .max_attrs = 1024,
		};
		struct xml_node *el = xml_parse_string(msgs[i].stanza, strlen(msgs[i].stanza), NS_CLIENT,
		                                       &lim, &err);
		last = msgs[i].seq;
		if (el == NULL || !xml_is(el, "message", NS_CLIENT)) {
			log_error("offline: offline message %" PRId64 " of %s@%s is not a message (%s); "
			          "dropping it", msgs[i].seq, op->user, op->host->name,
			          err != NULL ? err : "another element");
			xml_unref(&el);
			continue;
		}
		s->ops->deliver(s->owner, el);
		xml_unref(&el);
		delivered++;
	}
	if (count > 0) {
		log_info("offline: %zu offline message%s delivered to %s@%s/%s", delivered,
		         delivered == 1 ? "" : "s", s->jid.node, s->jid.domain, s->jid.resource);
		/* Handed to the stream: now they may go (see the gap at the top). */
		op->kind = OP_DELETE;
		op->session = NULL;
		op->sreq = storage_offline_delete_upto(op->host->storage, op->host->name, op->user, last,
		                                       deleted, op);
		return;
	}
	op_free(op);
}

static bool fetch_pending(struct offline_state *os, const char *user)
{
	for (struct offline_op *op = (struct offline_op *)(void *)os->ops.head; op != NULL;
	     op = (struct offline_op *)(void *)op->link.next)
		if (op->kind == OP_FETCH && strcmp(op->user, user) == 0)
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
	if (hp->to != NULL || s == NULL || s->offline_flushed || !s->available || s->priority < 0 ||
	    stanza_kind(hp->stanza) != STANZA_PRESENCE || xml_attr(hp->stanza, "type") != NULL)
		return HOOK_CONTINUE;
	s->offline_flushed = true;
	if (fetch_pending(os, s->jid.node))
		return HOOK_CONTINUE;   /* another resource is getting them */
	struct offline_op *op = op_new(os, OP_FETCH, s->jid.node);
	op->session = s;
	op->sreq = storage_offline_get(h->storage, h->name, op->user, fetched, op);
	return HOOK_CONTINUE;
}

static enum hook_result offline_session_closed(struct host *h, void *args, void *ctx)
{
	struct offline_state *os = ctx;
	struct hook_session *hs = args;
	for (struct offline_op *op = (struct offline_op *)(void *)os->ops.head, *next; op != NULL; op = next) {
		next = (struct offline_op *)(void *)op->link.next;
		if (op->kind == OP_FETCH && op->session == hs->session) {
			storage_cancel(op->sreq);
			op_free(op);
		}
	}
	return HOOK_CONTINUE;
}

/* ---- module ------------------------------------------------------------------------ */

static int offline_start(struct host *h, const void *settings, void **state_r, char **error_r)
{
	struct offline_state *os = xcalloc(1, sizeof(*os));
	os->host = h;
	os->set = settings;
	hook_add(h, HOOK_OFFLINE_MESSAGE, 50, offline_message, os);
	hook_add(h, HOOK_USER_SEND_PACKET, 50, offline_presence, os);
	hook_add(h, HOOK_SESSION_CLOSED, 50, offline_session_closed, os);
	host_add_feature(h, FEATURE_MSGOFFLINE);
	*state_r = os;
	return 0;
}

static void offline_stop(struct host *h, void *state)
{
	struct offline_state *os = state;
	hook_remove(h, HOOK_OFFLINE_MESSAGE, offline_message, os);
	hook_remove(h, HOOK_USER_SEND_PACKET, offline_presence, os);
	hook_remove(h, HOOK_SESSION_CLOSED, offline_session_closed, os);
	host_remove_feature(h, FEATURE_MSGOFFLINE);
	while (os->ops.head != NULL) {
		struct offline_op *op = (struct offline_op *)(void *)os->ops.head;
		if (op->kind == OP_FETCH) {
			/* The session may fetch again when the module is back. */
			op->session->offline_flushed = false;
			storage_cancel(op->sreq);
			op_free(op);
		} else {
			op_unlink(op);   /* its callback finishes and frees it */
		}
	}
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
