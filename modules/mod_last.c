/*
 * mod_last: last activity (XEP-0012, jabber:iq:last).  A query to the
 * server JID answers the server's uptime; a query to a user's bare JID
 * answers 0 while the user has an available session, else the seconds
 * since the user's last session closed, with the status text of the last
 * unavailable presence it sent (item-not-found when the user was never
 * seen).  Loop thread.
 *
 * Invariants:
 * - Only the user and their presence subscribers learn it (XEP-0012 §4):
 *   a requester other than the user must have a 'from' or 'both' item in
 *   the user's roster, else <forbidden/>; the roster is read before any
 *   answer is given.
 * - The time is stored (storage_last_set) when a user's last session
 *   closes (HOOK_SESSION_CLOSED with no other session left), not at every
 *   unavailable presence.  The status is the one of the last broadcast
 *   unavailable presence the closing session sent ("" when it sent none).
 * - Account removal must leave no row behind.  The sessions of an account
 *   being removed are kicked before the removal starts (sm_kick_user), so
 *   the time they store is deleted by it (one user's storage jobs run in
 *   order); a session still open when HOOK_REMOVE_USER runs stores nothing
 *   when it closes.
 * - Per-session notes (status, removed) live in a list in the module
 *   state, only for sessions that sent unavailable presence or whose
 *   account was removed; they are dropped when the session closes or
 *   becomes available again.
 * - Reads run through a struct last_op on the module's pending list
 *   (pending.h): stop answers and cancels them.  Writes outlive a stop;
 *   their callbacks need no module state and free them.
 */
#include "builtin.h"
#include "errmap.h"
#include "pending.h"
#include "server/host.h"
#include "lib/log.h"
#include "server/server.h"
#include "server/sm.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NS_LAST "jabber:iq:last"

struct last_settings {
	unsigned unused;
};

static const struct opt_def last_options[] = { OPT_END };

enum last_op_kind { OP_ROSTER, OP_READ, OP_WRITE };

struct last_state;

struct last_op {
	struct pending_op p;   /* first: the state's list of ops; p.req for
	                                  OP_ROSTER and OP_READ */
	struct last_state *ls; /* valid while p is listed */
	enum last_op_kind kind;
	char *user;      /* whose last activity */
	char *requester; /* OP_ROSTER: the requester's bare JID */
	char *host_name; /* OP_WRITE: for the log line */
};

/* What the module notes about one session. */
struct last_note {
	struct last_note *next; /* the state's list of notes */
	uint64_t session_id;
	char *status; /* of the last unavailable presence, or NULL */
	bool removed; /* the account was removed: store nothing */
};

struct last_state {
	struct host *host;
	struct pending_ops ops;
	struct last_note *notes;
};

/* ---- ops ---------------------------------------------------------------------- */

static void op_free(struct pending_op *p)
{
	struct last_op *op = (struct last_op *)p;
	pending_untrack(p);
	free(op->user);
	free(op->requester);
	free(op->host_name);
	free(op);
}

/* Writes outlive a stop: their callbacks need no module state. */
static struct last_op *op_new(struct last_state *ls, enum last_op_kind kind, const char *user)
{
	struct last_op *op = xcalloc(1, sizeof(*op));
	op->ls = ls;
	op->kind = kind;
	op->user = xstrdup(user);
	op->p.outlives_stop = kind == OP_WRITE;
	pending_track(&ls->ops, &op->p, op_free);
	return op;
}

static void answer_seconds(struct iq_request *req, int64_t seconds, const char *status)
{
	char num[24];
	snprintf(num, sizeof(num), "%" PRId64, seconds < 0 ? (int64_t)0 : seconds);
	struct xml_node *q = iq_payload_new("query", NS_LAST);
	xml_set_attr(q, "seconds", num);
	if (status != NULL && *status != '\0')
		xml_add_text(q, status, strlen(status));
	iq_result(req, q);
	xml_unref(&q);
}

static bool user_available(struct host *h, const char *user)
{
	for (struct session *s = sm_user_sessions(h, user); s != NULL; s = s->next_of_user)
		if (s->available)
			return true;
	return false;
}

static void last_read(enum storage_result res, const struct last_activity *last, void *ctx)
{
	struct last_op *op = ctx;
	if (!pending_resume(&op->p))
		return;
	struct iq_request *req = op->p.req;
	if (res == STORAGE_NOT_FOUND)
		iq_error(req, SE_ITEM_NOT_FOUND, "no activity known for this user");
	else if (res != STORAGE_OK)
		errmap_iq_storage(req, res, "the last activity store");
	else if (user_available(op->ls->host, op->user))
		answer_seconds(req, 0, NULL); /* came online meanwhile */
	else
		answer_seconds(req, (int64_t)time(NULL) - last->seconds, last->status);
	op_free(&op->p);
}

/* The requester may know: answer from the sessions or from storage. */
static void answer_user(struct last_op *op)
{
	struct last_state *ls = op->ls;
	struct host *h = ls->host;
	if (user_available(h, op->user)) {
		answer_seconds(op->p.req, 0, NULL);
		op_free(&op->p);
		return;
	}
	op->kind = OP_READ;
	pending_wait_storage(&op->p, storage_last_get(h->storage, h->name, op->user, last_read, op));
}

static void roster_read(enum storage_result res, const struct roster_item *items, size_t count,
                        uint64_t version, void *ctx)
{
	struct last_op *op = ctx;
	if (!pending_resume(&op->p))
		return;
	if (res != STORAGE_OK && res != STORAGE_NOT_FOUND) {
		errmap_iq_storage(op->p.req, res, "the roster store");
		op_free(&op->p);
		return;
	}
	bool subscribed = false;
	for (size_t i = 0; res == STORAGE_OK && i < count && !subscribed; i++)
		subscribed = strcmp(items[i].jid, op->requester) == 0 &&
		             (items[i].subscription == SUB_FROM || items[i].subscription == SUB_BOTH);
	if (!subscribed) {
		iq_error(op->p.req, SE_FORBIDDEN, "only the user's presence subscribers may ask");
		op_free(&op->p);
		return;
	}
	answer_user(op);
}

static void last_written(enum storage_result res, void *ctx)
{
	struct last_op *op = ctx;
	pending_resume(&op->p); /* an OP_WRITE: goes on after a stop too */
	if (res != STORAGE_OK)
		log_warning("last: cannot store the last activity of %s@%s: %s", op->user, op->host_name,
		            storage_result_str(res));
	op_free(&op->p);
}

/* ---- iqs ----------------------------------------------------------------------- */

static bool check_request(struct iq_request *req)
{
	if (!xml_is(req->payload, "query", NS_LAST)) {
		iq_error(req, SE_BAD_REQUEST, NULL);
		return false;
	}
	if (strcmp(req->type, "get") != 0) {
		iq_error(req, SE_BAD_REQUEST, "last activity is only read");
		return false;
	}
	return true;
}

static void last_server_iq(struct iq_request *req, void *ctx)
{
	if (!check_request(req))
		return;
	double up = ev_time() - server.started;
	answer_seconds(req, server.started > 0 && up > 0 ? (int64_t)up : 0, NULL);
}

static void last_user_iq(struct iq_request *req, void *ctx)
{
	struct last_state *ls = ctx;
	struct host *h = ls->host;
	if (!check_request(req))
		return;
	if (req->to.node == NULL) {
		iq_error(req, SE_BAD_REQUEST, NULL);
		return;
	}
	struct last_op *op = op_new(ls, OP_ROSTER, req->to.node);
	op->p.req = req;
	if (req->from.node != NULL && jid_bare_equal(&req->from, &req->to)) {
		answer_user(op); /* one's own */
		return;
	}
	op->requester = jid_bare_string(&req->from);
	pending_wait_storage(&op->p, storage_roster_get(h->storage, h->name, op->user, roster_read, op));
}

/* ---- session notes and hooks ---------------------------------------------------------- */

static struct last_note *note_find(struct last_state *ls, uint64_t id)
{
	for (struct last_note *n = ls->notes; n != NULL; n = n->next)
		if (n->session_id == id)
			return n;
	return NULL;
}

static struct last_note *note_get(struct last_state *ls, uint64_t id)
{
	struct last_note *n = note_find(ls, id);
	if (n == NULL) {
		n = xcalloc(1, sizeof(*n));
		n->session_id = id;
		n->next = ls->notes;
		ls->notes = n;
	}
	return n;
}

/* Unlink n from ls's notes and free it. */
static void note_free(struct last_state *ls, struct last_note *n)
{
	for (struct last_note **pp = &ls->notes; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == n) {
			*pp = n->next;
			break;
		}
	}
	free(n->status);
	free(n);
}

/* Broadcast presence from a client: remember the status of unavailable. */
static enum hook_result last_presence(struct host *h, void *args, void *ctx)
{
	struct last_state *ls = ctx;
	struct hook_packet *hp = args;
	if (hp->to != NULL || hp->session == NULL || !xml_is(hp->stanza, "presence", NS_CLIENT))
		return HOOK_CONTINUE;
	const char *type = xml_attr(hp->stanza, "type");
	if (type != NULL && strcmp(type, "unavailable") == 0) {
		struct last_note *n = note_get(ls, hp->session->id);
		const char *status = xml_child_text(hp->stanza, "status", NS_CLIENT);
		free(n->status);
		n->status = status != NULL && *status != '\0' ? xstrdup(status) : NULL;
	} else if (type == NULL) {
		struct last_note *n = note_find(ls, hp->session->id);
		if (n != NULL) {
			free(n->status);
			n->status = NULL;
			if (!n->removed)
				note_free(ls, n);
		}
	}
	return HOOK_CONTINUE;
}

static enum hook_result last_session_closed(struct host *h, void *args, void *ctx)
{
	struct last_state *ls = ctx;
	struct hook_session *hs = args;
	struct session *s = hs->session;
	struct last_note *n = note_find(ls, s->id);
	bool removed = n != NULL && n->removed;
	char *status = n != NULL ? n->status : NULL;
	if (n != NULL) {
		n->status = NULL;
		note_free(ls, n);
	}
	/* The session is no longer listed: no other session means the last one. */
	if (!removed && s->jid.node != NULL && sm_user_sessions(h, s->jid.node) == NULL) {
		struct last_op *op = op_new(ls, OP_WRITE, s->jid.node);
		op->host_name = xstrdup(h->name);
		pending_wait_storage(&op->p, storage_last_set(h->storage, h->name, op->user,
		                                              (int64_t)time(NULL), status, last_written, op));
	}
	free(status);
	return HOOK_CONTINUE;
}

/* The account is being removed; sessions still open are kicked next. */
static enum hook_result last_remove_user(struct host *h, void *args, void *ctx)
{
	struct last_state *ls = ctx;
	struct hook_user *hu = args;
	for (struct session *s = sm_user_sessions(h, hu->user); s != NULL; s = s->next_of_user)
		note_get(ls, s->id)->removed = true;
	return HOOK_CONTINUE;
}

/* ---- module ---------------------------------------------------------------------------- */

static const struct builtin_iq last_iqs[] = {
	{ IQ_SCOPE_SERVER, NS_LAST, IQ_NO_QUEUE, last_server_iq },
	{ IQ_SCOPE_USER, NS_LAST, IQ_PARALLEL, last_user_iq },
};

static const struct builtin_hook last_hooks[] = {
	{ HOOK_USER_SEND_PACKET, 60, last_presence },
	{ HOOK_SESSION_CLOSED, 60, last_session_closed },
	{ HOOK_REMOVE_USER, 60, last_remove_user },
};

static const struct builtin_parts last_parts = {
	.iqs = last_iqs,
	.niqs = ARRAY_SIZE(last_iqs),
	.hooks = last_hooks,
	.nhooks = ARRAY_SIZE(last_hooks),
	.feature = NS_LAST,
	.user_feature = NS_LAST,
};

static int last_start(struct host *h, const void *settings, void **state_r, char **error_r)
{
	struct last_state *ls = xcalloc(1, sizeof(*ls));
	ls->host = h;
	if (builtin_parts_add(h, &last_parts, ls, error_r) < 0) {
		free(ls);
		return -1;
	}
	*state_r = ls;
	return 0;
}

static void last_stop(struct host *h, void *state)
{
	struct last_state *ls = state;
	builtin_parts_remove(h, &last_parts, ls);
	pending_stop(&ls->ops);
	while (ls->notes != NULL)
		note_free(ls, ls->notes);
	free(ls);
}

const struct module_def mod_last = {
	.name = "last",
	.description = "XEP-0012 last activity: server uptime, and when a user was last seen (for "
	               "their subscribers)",
	.options = last_options,
	.settings_size = sizeof(struct last_settings),
	.default_enabled = true,
	.start = last_start,
	.stop = last_stop,
};
