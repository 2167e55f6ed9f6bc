/*
 * The iq handler registry: per host and scope, a list of handlers keyed by
 * the namespace of the request's one child, each with its queueing
 * discipline (no_queue, one_queue, parallel: the model of ejabberd's
 * gen_iq_handler).  Loop thread.
 *
 * Invariants:
 * - A request is answered exactly once (iq_result, iq_result_tree or
 *   iq_error), which frees it.  A NO_QUEUE handler answers before it
 *   returns (asserted).
 * - A handler is reference counted: the registration holds one reference
 *   and every live request of the handler (queued or in flight) holds one,
 *   so a module can unregister while answers are still on their way.
 *   Unregistering answers the queued requests with <service-unavailable/>.
 * - ONE_QUEUE: at most one request of the handler is in flight; the next
 *   one is dispatched from the answer path by a loop (pump), never by
 *   recursion, so a handler that answers at once does not grow the stack.
 * - A set from a stream holds that stream's barrier (lib/barrier.h) until it
 *   is answered (iq_result_holding: until the handler releases the hold):
 *   answers to what the stream sent later wait for it.
 * - Pre-auth requests are also linked in a list of their own so that
 *   iq_preauth_detach can find them when their stream closes: the answer is
 *   then dropped (in flight) or the request is dropped unseen (queued).
 * - An iq the server sends (iq_send) waits in its host's table under a
 *   random id until its answer, its timeout, iq_send_cancel or the host's
 *   end, whichever comes first; its callback runs at most once and the
 *   entry is gone before it runs.  An answer counts only when it comes
 *   from the JID the iq was sent to and is addressed to the JID it came
 *   from; an answer that arrives inside iq_send itself (the router
 *   bounced the iq at once) is delivered from the loop, never inside the
 *   call that sent it.
 */
#include "iq.h"
#include "host.h"
#include "router.h"
#include "server.h"
#include "lib/latency.h"
#include "lib/log.h"
#include "lib/barrier.h"
#include "lib/htab.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

struct iq_handler {
	struct host *host;
	enum iq_scope scope;
	char *ns;
	enum iq_discipline discipline;
	iq_handler_fn *fn;
	void *ctx;
	unsigned refs;
	bool registered; /* in host->iq[scope] */
	bool busy;       /* ONE_QUEUE: a request is in flight */
	bool pumping;    /* ONE_QUEUE: the pump loop is running */
	struct iq_request *queue_head, *queue_tail;
	struct iq_handler *next;
};

/* What iq.c keeps beside the public request. */
struct iq_request_priv {
	struct iq_request req;                     /* first: a request pointer is a priv pointer */
	bool *answered_r;                          /* NO_QUEUE: set true on answer */
	bool queued;                               /* ONE_QUEUE: waiting in the handler's queue */
	bool in_flight;                            /* ONE_QUEUE: the one request handed to the handler */
	struct iq_request_priv *pa_prev, *pa_next; /* pre-auth list */
	struct barrier_hold *hold;                 /* a set: the sender's later answers wait for it */
	bool keep_hold;                            /* iq_result_holding: the caller releases hold */
};

/* Pending pre-auth requests (of every host; a handful at any time). */
static struct iq_request_priv *preauth_head;

static struct iq_request_priv *priv_of(struct iq_request *req)
{
	return (struct iq_request_priv *)req;
}

static struct iq_handler *handler_find(struct host *h, enum iq_scope scope, const char *ns)
{
	assert(scope < IQ_SCOPE_COUNT);
	if (ns == NULL)
		return NULL;
	for (struct iq_handler *ih = h->iq[scope]; ih != NULL; ih = ih->next)
		if (strcmp(ih->ns, ns) == 0)
			return ih;
	return NULL;
}

static void handler_unref(struct iq_handler *ih)
{
	assert(ih->refs > 0);
	if (--ih->refs > 0)
		return;
	assert(!ih->registered && ih->queue_head == NULL);
	free(ih->ns);
	free(ih);
}

int iq_register(struct host *h, enum iq_scope scope, const char *ns, enum iq_discipline d, iq_handler_fn *fn,
                void *ctx)
{
	assert(scope < IQ_SCOPE_COUNT && ns != NULL && fn != NULL);
	if (handler_find(h, scope, ns) != NULL)
		return -1;
	struct iq_handler *ih = xcalloc(1, sizeof(*ih));
	ih->host = h;
	ih->scope = scope;
	ih->ns = xstrdup(ns);
	ih->discipline = d;
	ih->fn = fn;
	ih->ctx = ctx;
	ih->refs = 1;
	ih->registered = true;
	struct iq_handler **tail = &h->iq[scope];
	while (*tail != NULL)
		tail = &(*tail)->next;
	*tail = ih;
	return 0;
}

bool iq_has_handler(struct host *h, enum iq_scope scope, const char *ns)
{
	return handler_find(h, scope, ns) != NULL;
}

static void preauth_unlink(struct iq_request_priv *p)
{
	if (p->pa_prev != NULL)
		p->pa_prev->pa_next = p->pa_next;
	else if (preauth_head == p)
		preauth_head = p->pa_next;
	if (p->pa_next != NULL)
		p->pa_next->pa_prev = p->pa_prev;
	p->pa_prev = p->pa_next = NULL;
}

/* Free a request (its handler reference is the caller's business). */
static void request_free(struct iq_request_priv *p)
{
	struct iq_request *req = &p->req;
	if (req->handler->scope == IQ_SCOPE_PREAUTH)
		preauth_unlink(p);
	if (!p->keep_hold)
		barrier_release(&p->hold); /* after the answer, which it orders too */
	jid_clear(&req->from);
	jid_clear(&req->to);
	xml_unref(&req->iq);
	free((char *)req->remote_ip);
	free(p);
}

static void queue_remove(struct iq_handler *ih, struct iq_request *req)
{
	struct iq_request **pp = &ih->queue_head;
	struct iq_request *prev = NULL;
	while (*pp != NULL && *pp != req) {
		prev = *pp;
		pp = &(*pp)->next;
	}
	assert(*pp == req);
	*pp = req->next;
	if (ih->queue_tail == req)
		ih->queue_tail = prev;
	req->next = NULL;
	priv_of(req)->queued = false;
}

/* ONE_QUEUE: dispatch queued requests while the handler is idle.  Re-entry
 * (a handler answering inside its call) returns at once; the outer loop
 * goes on. */
static void handler_pump(struct iq_handler *ih)
{
	if (ih->pumping)
		return;
	ih->pumping = true;
	ih->refs++;
	while (ih->registered && !ih->busy && ih->queue_head != NULL) {
		struct iq_request *req = ih->queue_head;
		queue_remove(ih, req);
		ih->busy = true;
		priv_of(req)->in_flight = true;
		ih->fn(req, ih->ctx);
	}
	ih->pumping = false;
	handler_unref(ih);
}

void iq_unregister(struct host *h, enum iq_scope scope, const char *ns)
{
	struct iq_handler *ih = handler_find(h, scope, ns);
	if (ih == NULL)
		return;
	struct iq_handler **pp = &h->iq[scope];
	while (*pp != ih)
		pp = &(*pp)->next;
	*pp = ih->next;
	ih->next = NULL;
	ih->registered = false;
	ih->refs++;
	/* Requests that never reached the handler: it is gone. */
	while (ih->queue_head != NULL) {
		struct iq_request *req = ih->queue_head;
		queue_remove(ih, req);
		iq_error(req, SE_SERVICE_UNAVAILABLE, NULL);
	}
	handler_unref(ih); /* our temporary reference */
	handler_unref(ih); /* the registration's */
}

bool iq_dispatch(struct host *h, enum iq_scope scope, struct xml_node *iq, const struct jid *from,
                 const struct jid *to, struct iq_request *preauth_template)
{
	struct xml_node *payload = xml_first_element(iq);
	if (payload == NULL)
		return false;
	assert(xml_attr(iq, "type") != NULL); /* get or set: the caller checked */
	struct iq_handler *ih = handler_find(h, scope, payload->ns);
	if (ih == NULL)
		return false;

	struct iq_request_priv *p = xcalloc(1, sizeof(*p));
	struct iq_request *req = &p->req;
	if (scope == IQ_SCOPE_PREAUTH && preauth_template != NULL) {
		req->preauth_reply = preauth_template->preauth_reply;
		req->preauth_stream = preauth_template->preauth_stream;
		if (preauth_template->remote_ip != NULL)
			req->remote_ip = xstrdup(preauth_template->remote_ip);
	}
	req->host = h;
	if (from != NULL && from->domain != NULL)
		jid_copy(&req->from, from);
	if (to != NULL && to->domain != NULL)
		jid_copy(&req->to, to);
	else if (scope == IQ_SCOPE_USER && req->from.domain != NULL)
		jid_set(&req->to, req->from.node, req->from.domain, NULL);
	else
		jid_set(&req->to, NULL, h->name, NULL);
	xml_ref(iq);
	req->iq = iq;
	req->payload = payload;
	req->type = xml_attr(iq, "type");
	req->ns = payload->ns;
	req->handler = ih;
	ih->refs++;
	/* A set changes something: the sender's stream answers nothing it
	 * sent later before this one is answered (RFC 6120 §10.1). */
	if (strcmp(req->type, "set") == 0)
		p->hold = barrier_hold_current();
	if (scope == IQ_SCOPE_PREAUTH) {
		p->pa_next = preauth_head;
		if (preauth_head != NULL)
			preauth_head->pa_prev = p;
		preauth_head = p;
	}

	switch (ih->discipline) {
	case IQ_NO_QUEUE: {
		bool answered = false;
		p->answered_r = &answered;
		ih->fn(req, ih->ctx);
		if (!answered)
			log_fatal("iq handler for %s on %s returned without answering (no_queue)", ih->ns,
			          h->name);
		break;
	}
	case IQ_ONE_QUEUE:
		p->queued = true;
		if (ih->queue_tail != NULL)
			ih->queue_tail->next = req;
		else
			ih->queue_head = req;
		ih->queue_tail = req;
		handler_pump(ih);
		break;
	case IQ_PARALLEL: ih->fn(req, ih->ctx); break;
	}
	return true;
}

/* Send reply (consumed) for req and free req. */
static void iq_answer(struct iq_request *req, struct xml_node *reply)
{
	struct iq_request_priv *p = priv_of(req);
	struct iq_handler *ih = req->handler;
	assert(!req->answered && !p->queued);
	req->answered = true;
	if (p->answered_r != NULL)
		*p->answered_r = true;

	if (reply == NULL) {
		/* Nothing to send (the request was itself an error). */
	} else if (ih->scope == IQ_SCOPE_PREAUTH) {
		/* The client has no address yet. */
		xml_set_attr(reply, "to", NULL);
		if (req->preauth_reply != NULL)
			req->preauth_reply(req->preauth_stream, reply); /* consumes */
		else
			xml_unref(&reply);
	} else if (req->from.domain != NULL) {
		/* Addresses as the router saw them (the request may have had no
		 * 'to': the user's own account answers as the bare JID). */
		xml_set_attr(reply, "from", jid_to_pool(reply->pool, &req->to));
		xml_set_attr(reply, "to", jid_to_pool(reply->pool, &req->from));
		struct barrier_hold *outer = barrier_answer_enter(p->hold);
		router_route(reply, &req->to, &req->from);
		barrier_answer_leave(outer);
		xml_unref(&reply);
	} else {
		xml_unref(&reply);
	}

	bool was_in_flight = p->in_flight;
	request_free(p);
	if (was_in_flight) {
		ih->busy = false;
		handler_pump(ih);
	}
	handler_unref(ih);
}

void iq_result(struct iq_request *req, const struct xml_node *payload)
{
	struct xml_node *reply = stanza_iq_result(req->iq);
	if (payload != NULL)
		xml_append_copy(reply, payload);
	iq_answer(req, reply);
}

struct barrier_hold *iq_result_holding(struct iq_request *req, const struct xml_node *payload)
{
	struct iq_request_priv *p = priv_of(req);
	struct barrier_hold *h = p->hold;
	p->keep_hold = true;
	iq_result(req, payload);
	return h;
}

struct barrier_hold *iq_request_hold(const struct iq_request *req)
{
	return ((const struct iq_request_priv *)req)->hold;
}

void iq_result_tree(struct iq_request *req, struct xml_node *result)
{
	/* The id always matches the request; the rest is the handler's. */
	const char *id = xml_attr(req->iq, "id");
	if (id != NULL)
		xml_set_attr(result, "id", id);
	else
		xml_set_attr(result, "id", NULL);
	if (xml_attr(result, "type") == NULL)
		xml_set_attr(result, "type", "result");
	iq_answer(req, result);
}

void iq_error(struct iq_request *req, enum stanza_error e, const char *text)
{
	iq_answer(req, stanza_error_reply(req->iq, e, text));
}

struct xml_node *iq_payload_new(const char *name, const char *ns)
{
	return xml_new(name, ns);
}

void iq_preauth_detach(void *stream)
{
	struct iq_request_priv *p = preauth_head;
	while (p != NULL) {
		struct iq_request_priv *next = p->pa_next;
		if (p->req.preauth_stream == stream) {
			p->req.preauth_reply = NULL;
			p->req.preauth_stream = NULL;
			if (p->queued) {
				/* Not seen by its handler yet: drop it. */
				struct iq_handler *ih = p->req.handler;
				queue_remove(ih, &p->req);
				request_free(p);
				handler_unref(ih);
			}
		}
		p = next;
	}
}

/* ---- iqs the server sends -------------------------------------------------------- */

#define IQ_OUT_ID_LEN 16

struct iq_out {
	struct htab_link link; /* first: the host's table, by id */
	struct host *host;
	char id[IQ_OUT_ID_LEN + 1];
	struct jid from, to;
	iq_response_fn *cb;
	void *ctx;
	ev_timer timer;         /* the timeout; 0 once an early answer is kept */
	bool sending;           /* inside iq_send's router_route */
	struct xml_node *early; /* the answer that came while sending */
};

/* The outstanding iqs of a host, by id. */
struct iq_out_table {
	struct htab ids;
};

static struct iq_out *out_find(struct host *h, const char *id)
{
	if (h->iq_out == NULL)
		return NULL;
	uint32_t hash = hash_str(id);
	for (struct htab_link *l = htab_chain(&h->iq_out->ids, hash); l != NULL; l = l->next)
		if (l->hash == hash && strcmp(((struct iq_out *)l)->id, id) == 0)
			return (struct iq_out *)l;
	return NULL;
}

static void out_link(struct host *h, struct iq_out *o)
{
	if (h->iq_out == NULL)
		h->iq_out = xcalloc(1, sizeof(*h->iq_out));
	htab_add(&h->iq_out->ids, &o->link, hash_str(o->id));
}

/* Take o out of its host's table and free it; its early answer, if any,
 * is returned (a reference for the caller). */
static struct xml_node *out_free(struct iq_out *o)
{
	htab_remove(&o->host->iq_out->ids, &o->link);
	ev_timer_stop(server.loop, &o->timer);
	struct xml_node *early = o->early;
	jid_clear(&o->from);
	jid_clear(&o->to);
	free(o);
	return early;
}

/* The timeout, or the delivery of an answer that came inside iq_send. */
static void out_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	latency_begin(LATENCY_TIMER, "iq-timeout");
	(void)loop;
	(void)revents;
	struct iq_out *o = w->data;
	iq_response_fn *cb = o->cb;
	void *ctx = o->ctx;
	if (o->early == NULL && log_get_level() <= LOG_LEVEL_DEBUG) {
		char *to = jid_to_string(&o->to);
		log_debug("host %s: no answer from %s to iq %s in time", o->host->name, to, o->id);
		free(to);
	}
	struct xml_node *answer = out_free(o);
	cb(answer, ctx);
	xml_unref(&answer);
	latency_end();
}

struct iq_out *iq_send(struct host *h, struct xml_node *iq, const struct jid *from, const struct jid *to,
                       double timeout, iq_response_fn *cb, void *ctx)
{
	assert(server.loop != NULL && cb != NULL && from->domain != NULL && to->domain != NULL);
	struct iq_out *o = xcalloc(1, sizeof(*o));
	o->host = h;
	do
		random_id(o->id, IQ_OUT_ID_LEN);
	while (out_find(h, o->id) != NULL);
	jid_copy(&o->from, from);
	jid_copy(&o->to, to);
	o->cb = cb;
	o->ctx = ctx;
	ev_timer_init(&o->timer, out_timer_cb, timeout > 0 ? timeout : 0, 0);
	o->timer.data = o;
	out_link(h, o);

	xml_set_attr(iq, "id", o->id);
	xml_set_attr(iq, "from", jid_to_pool(iq->pool, from));
	xml_set_attr(iq, "to", jid_to_pool(iq->pool, to));
	o->sending = true;
	router_route(iq, from, to);
	o->sending = false;
	if (o->early != NULL)
		ev_timer_set(&o->timer, 0, 0); /* answered already: deliver from the loop */
	ev_timer_start(server.loop, &o->timer);
	return o;
}

void iq_send_cancel(struct iq_out *o)
{
	if (o == NULL)
		return;
	struct xml_node *early = out_free(o);
	xml_unref(&early);
}

bool iq_response(struct host *h, struct xml_node *stanza, const struct jid *from)
{
	const char *id = xml_attr(stanza, "id");
	const char *type = xml_attr(stanza, "type");
	if (id == NULL || type == NULL || (strcmp(type, "result") != 0 && strcmp(type, "error") != 0))
		return false;
	struct iq_out *o = out_find(h, id);
	if (o == NULL || o->early != NULL)
		return false;
	/* Only the addressee answers, and only to the sender. */
	const char *to_s = xml_attr(stanza, "to");
	struct jid to = { 0 };
	const char *err;
	bool ours = from != NULL && from->domain != NULL && jid_equal(from, &o->to) && to_s != NULL &&
	            jid_parse(to_s, &to, &err) == 0 && jid_equal(&to, &o->from);
	jid_clear(&to);
	if (!ours) {
		log_debug("host %s: an answer to iq %s from %s ignored: it was sent to %s", h->name, id,
		          from != NULL && from->domain != NULL ? jid_to_pool(stanza->pool, from) : "nobody",
		          jid_to_pool(stanza->pool, &o->to));
		return false;
	}
	if (o->sending) {
		xml_ref(stanza);
		o->early = stanza;
		return true;
	}
	iq_response_fn *cb = o->cb;
	void *ctx = o->ctx;
	struct xml_node *early = out_free(o);
	assert(early == NULL);
	cb(stanza, ctx);
	return true;
}

void iq_free_host(struct host *h)
{
	/* The host stops: the iqs it sent get no answer. */
	struct htab_link *l;
	while (h->iq_out != NULL && (l = htab_any(&h->iq_out->ids)) != NULL) {
		struct iq_out *o = (struct iq_out *)l;
		iq_response_fn *cb = o->cb;
		void *ctx = o->ctx;
		struct xml_node *early = out_free(o);
		xml_unref(&early);
		cb(NULL, ctx);
	}
	if (h->iq_out != NULL) {
		htab_free(&h->iq_out->ids);
		xfree(&h->iq_out);
	}
	for (int scope = 0; scope < IQ_SCOPE_COUNT; scope++) {
		while (h->iq[scope] != NULL) {
			struct iq_handler *ih = h->iq[scope];
			h->iq[scope] = ih->next;
			ih->next = NULL;
			ih->registered = false;
			/* The host goes away: queued requests are dropped unanswered. */
			while (ih->queue_head != NULL) {
				struct iq_request *req = ih->queue_head;
				queue_remove(ih, req);
				request_free(priv_of(req));
				ih->refs--;
			}
			if (ih->refs > 1)
				log_warning("host %s: iq handler %s freed with %u request(s) in flight",
				            h->name, ih->ns, ih->refs - 1);
			handler_unref(ih);
		}
	}
}
