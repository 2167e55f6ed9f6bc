/*
 * Unit tests: the iq handler registry (the three disciplines, answers,
 * pre-auth detach, unregistering with requests pending), stanza replies
 * (errors, results), the module registry and the built-in modules' answers
 * that need no backend.  Answers are captured through
 * IQ_SCOPE_PREAUTH's preauth_reply, so no router is involved.  The iqs the
 * server sends (iq_send) go to a domain nobody serves here, and their
 * answers are handed to iq_response as the router would.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "server/host.h"
#include "server/iq.h"
#include "server/module.h"
#include "server/server.h"
#include "server/stanza.h"
#include "modules/builtin.h"

#define NS_TEST "urn:test:iq"

/* ---- fixtures ------------------------------------------------------------- */

struct capture {
	struct xml_node *replies[64];
	int n;
};

static void capture_reply(void *stream, struct xml_node *reply)
{
	struct capture *c = stream;
	assert_true(c->n < 64);
	c->replies[c->n++] = reply;
}

static void capture_clear(struct capture *c)
{
	for (int i = 0; i < c->n; i++)
		xml_unref(&c->replies[i]);
	c->n = 0;
}

static struct xml_node *make_iq(const char *type, const char *id, const char *ns)
{
	struct xml_node *iq = xml_new("iq", NS_CLIENT);
	xml_set_attr(iq, "type", type);
	xml_set_attr(iq, "id", id);
	xml_add_child(iq, "query", ns);
	return iq;
}

/* Dispatch a pre-auth iq get with id to h; answers land in c. */
static bool dispatch(struct host *h, const char *id, struct capture *c)
{
	struct xml_node *iq = make_iq("get", id, NS_TEST);
	struct iq_request tmpl = { 0 };
	tmpl.preauth_reply = capture_reply;
	tmpl.preauth_stream = c;
	tmpl.remote_ip = "192.0.2.1";
	struct jid to = { .domain = h->name };
	bool r = iq_dispatch(h, IQ_SCOPE_PREAUTH, iq, NULL, &to, &tmpl);
	xml_unref(&iq); /* the request holds its own reference */
	return r;
}

/* Dispatch a pre-auth iq of type with a copy of payload. */
static bool dispatch_payload(struct host *h, const char *type, const char *id, const struct xml_node *payload,
                             struct capture *c)
{
	struct xml_node *iq = xml_new("iq", NS_CLIENT);
	xml_set_attr(iq, "type", type);
	xml_set_attr(iq, "id", id);
	xml_append_copy(iq, payload);
	struct iq_request tmpl = { 0 };
	tmpl.preauth_reply = capture_reply;
	tmpl.preauth_stream = c;
	tmpl.remote_ip = "192.0.2.1";
	struct jid to = { .domain = h->name };
	bool r = iq_dispatch(h, IQ_SCOPE_PREAUTH, iq, NULL, &to, &tmpl);
	xml_unref(&iq);
	return r;
}

/* Handlers that keep requests to answer them later. */
struct held {
	struct iq_request *reqs[64];
	int n;
	int calls;
	bool answer_now;
};

static void hold_handler(struct iq_request *req, void *ctx)
{
	struct held *hd = ctx;
	hd->calls++;
	assert_string_equal(req->ns, NS_TEST);
	assert_string_equal(req->type, "get");
	assert_non_null(req->remote_ip);
	assert_string_equal(req->remote_ip, "192.0.2.1");
	assert_null(req->from.domain);
	if (hd->answer_now) {
		iq_result(req, NULL);
		return;
	}
	hd->reqs[hd->n++] = req;
}

static void echo_handler(struct iq_request *req, void *ctx)
{
	int *calls = ctx;
	(*calls)++;
	struct xml_node *q = iq_payload_new("query", NS_TEST);
	xml_set_attr(q, "echo", xml_attr(req->iq, "id"));
	iq_result(req, q);
	xml_unref(&q);
}

static struct host *host_new(void)
{
	struct host *h = calloc(1, sizeof(*h));
	h->name = strdup("example.com");
	return h;
}

static void host_done(struct host *h)
{
	modules_stop_host(h);
	iq_free_host(h);
	hooks_free_host(h);
	strlist_free(&h->features);
	strlist_free(&h->user_features);
	free(h->name);
	free(h);
}

/* ---- registry -------------------------------------------------------------- */

static void test_register(void **state)
{
	struct host *h = host_new();
	int calls = 0;
	struct capture c = { 0 };
	assert_false(iq_has_handler(h, IQ_SCOPE_PREAUTH, NS_TEST));
	assert_false(dispatch(h, "a", &c));
	assert_int_equal(iq_register(h, IQ_SCOPE_PREAUTH, NS_TEST, IQ_NO_QUEUE, echo_handler, &calls), 0);
	assert_int_equal(iq_register(h, IQ_SCOPE_PREAUTH, NS_TEST, IQ_PARALLEL, echo_handler, &calls), -1);
	assert_true(iq_has_handler(h, IQ_SCOPE_PREAUTH, NS_TEST));
	/* Scopes are separate tables. */
	assert_false(iq_has_handler(h, IQ_SCOPE_SERVER, NS_TEST));
	assert_int_equal(iq_register(h, IQ_SCOPE_SERVER, NS_TEST, IQ_NO_QUEUE, echo_handler, &calls), 0);
	iq_unregister(h, IQ_SCOPE_PREAUTH, NS_TEST);
	assert_false(iq_has_handler(h, IQ_SCOPE_PREAUTH, NS_TEST));
	assert_true(iq_has_handler(h, IQ_SCOPE_SERVER, NS_TEST));
	assert_int_equal(iq_register(h, IQ_SCOPE_PREAUTH, NS_TEST, IQ_NO_QUEUE, echo_handler, &calls), 0);
	assert_false(iq_has_handler(h, IQ_SCOPE_PREAUTH, "urn:other"));
	host_done(h);
}

/* ---- disciplines ------------------------------------------------------------ */

static void test_no_queue(void **state)
{
	struct host *h = host_new();
	int calls = 0;
	struct capture c = { 0 };
	iq_register(h, IQ_SCOPE_PREAUTH, NS_TEST, IQ_NO_QUEUE, echo_handler, &calls);
	assert_true(dispatch(h, "q1", &c));
	assert_int_equal(calls, 1);
	assert_int_equal(c.n, 1);
	struct xml_node *r = c.replies[0];
	assert_true(xml_is(r, "iq", NS_CLIENT));
	assert_string_equal(xml_attr(r, "type"), "result");
	assert_string_equal(xml_attr(r, "id"), "q1");
	assert_null(xml_attr(r, "to"));
	struct xml_node *q = xml_child(r, "query", NS_TEST);
	assert_non_null(q);
	assert_string_equal(xml_attr(q, "echo"), "q1");
	capture_clear(&c);
	host_done(h);
}

static void test_one_queue_order(void **state)
{
	struct host *h = host_new();
	struct held hd = { 0 };
	struct capture c = { 0 };
	iq_register(h, IQ_SCOPE_PREAUTH, NS_TEST, IQ_ONE_QUEUE, hold_handler, &hd);
	assert_true(dispatch(h, "1", &c));
	assert_true(dispatch(h, "2", &c));
	assert_true(dispatch(h, "3", &c));
	/* Only the first one reached the handler. */
	assert_int_equal(hd.calls, 1);
	assert_int_equal(c.n, 0);
	iq_result(hd.reqs[0], NULL);
	assert_int_equal(c.n, 1);
	assert_string_equal(xml_attr(c.replies[0], "id"), "1");
	assert_int_equal(hd.calls, 2);
	assert_string_equal(xml_attr(hd.reqs[1]->iq, "id"), "2");
	iq_error(hd.reqs[1], SE_NOT_ALLOWED, NULL);
	assert_int_equal(hd.calls, 3);
	iq_result(hd.reqs[2], NULL);
	assert_int_equal(c.n, 3);
	assert_string_equal(xml_attr(c.replies[1], "id"), "2");
	assert_string_equal(xml_attr(c.replies[1], "type"), "error");
	assert_string_equal(xml_attr(c.replies[2], "id"), "3");
	/* Idle again: the next one goes straight through. */
	hd.answer_now = true;
	assert_true(dispatch(h, "4", &c));
	assert_int_equal(hd.calls, 4);
	assert_int_equal(c.n, 4);
	capture_clear(&c);
	host_done(h);
}

/* A handler answering inside its call drains a long queue by the pump's
 * loop, in order. */
static void test_one_queue_sync_drain(void **state)
{
	struct host *h = host_new();
	struct held hd = { 0 };
	struct capture c = { 0 };
	iq_register(h, IQ_SCOPE_PREAUTH, NS_TEST, IQ_ONE_QUEUE, hold_handler, &hd);
	assert_true(dispatch(h, "first", &c));
	char id[16];
	for (int i = 0; i < 50; i++) {
		snprintf(id, sizeof(id), "n%d", i);
		assert_true(dispatch(h, id, &c));
	}
	assert_int_equal(hd.calls, 1);
	hd.answer_now = true;
	iq_result(hd.reqs[0], NULL);
	assert_int_equal(hd.calls, 51);
	assert_int_equal(c.n, 51);
	assert_string_equal(xml_attr(c.replies[0], "id"), "first");
	for (int i = 0; i < 50; i++) {
		snprintf(id, sizeof(id), "n%d", i);
		assert_string_equal(xml_attr(c.replies[i + 1], "id"), id);
	}
	capture_clear(&c);
	host_done(h);
}

static void test_parallel(void **state)
{
	struct host *h = host_new();
	struct held hd = { 0 };
	struct capture c = { 0 };
	iq_register(h, IQ_SCOPE_PREAUTH, NS_TEST, IQ_PARALLEL, hold_handler, &hd);
	assert_true(dispatch(h, "1", &c));
	assert_true(dispatch(h, "2", &c));
	assert_true(dispatch(h, "3", &c));
	assert_int_equal(hd.calls, 3);
	/* Any order. */
	iq_result(hd.reqs[2], NULL);
	iq_result(hd.reqs[0], NULL);
	iq_result(hd.reqs[1], NULL);
	assert_int_equal(c.n, 3);
	assert_string_equal(xml_attr(c.replies[0], "id"), "3");
	assert_string_equal(xml_attr(c.replies[1], "id"), "1");
	assert_string_equal(xml_attr(c.replies[2], "id"), "2");
	capture_clear(&c);
	host_done(h);
}

/* ---- answers ---------------------------------------------------------------- */

static void test_error_answer(void **state)
{
	struct host *h = host_new();
	struct held hd = { 0 };
	struct capture c = { 0 };
	iq_register(h, IQ_SCOPE_PREAUTH, NS_TEST, IQ_PARALLEL, hold_handler, &hd);
	assert_true(dispatch(h, "e1", &c));
	iq_error(hd.reqs[0], SE_RESOURCE_CONSTRAINT, "slow down");
	assert_int_equal(c.n, 1);
	struct xml_node *r = c.replies[0];
	assert_string_equal(xml_attr(r, "type"), "error");
	assert_string_equal(xml_attr(r, "id"), "e1");
	assert_non_null(xml_child(r, "query", NS_TEST)); /* the original payload */
	struct xml_node *err = xml_child(r, "error", NS_CLIENT);
	assert_non_null(err);
	assert_string_equal(xml_attr(err, "type"), "wait");
	assert_non_null(xml_child(err, "resource-constraint", NS_STANZAS));
	assert_string_equal(xml_child_text(err, "text", NS_STANZAS), "slow down");
	capture_clear(&c);
	host_done(h);
}

static void test_result_tree(void **state)
{
	struct host *h = host_new();
	struct held hd = { 0 };
	struct capture c = { 0 };
	iq_register(h, IQ_SCOPE_PREAUTH, NS_TEST, IQ_PARALLEL, hold_handler, &hd);
	assert_true(dispatch(h, "t1", &c));
	struct xml_node *res = stanza_iq_result(hd.reqs[0]->iq);
	xml_add_child(res, "done", NS_TEST);
	iq_result_tree(hd.reqs[0], res);
	assert_int_equal(c.n, 1);
	assert_string_equal(xml_attr(c.replies[0], "id"), "t1");
	assert_string_equal(xml_attr(c.replies[0], "type"), "result");
	assert_non_null(xml_child(c.replies[0], "done", NS_TEST));
	capture_clear(&c);
	host_done(h);
}

/* ---- lifetimes ---------------------------------------------------------------- */

static void test_preauth_detach(void **state)
{
	struct host *h = host_new();
	struct held hd = { 0 };
	struct capture gone = { 0 }, alive = { 0 };
	iq_register(h, IQ_SCOPE_PREAUTH, NS_TEST, IQ_ONE_QUEUE, hold_handler, &hd);
	assert_true(dispatch(h, "g1", &gone));  /* in flight */
	assert_true(dispatch(h, "g2", &gone));  /* queued */
	assert_true(dispatch(h, "a1", &alive)); /* queued */
	iq_preauth_detach(&gone);
	assert_int_equal(hd.calls, 1);
	/* The in-flight answer is dropped; g2 never reaches the handler. */
	iq_result(hd.reqs[0], NULL);
	assert_int_equal(gone.n, 0);
	assert_int_equal(hd.calls, 2);
	assert_string_equal(xml_attr(hd.reqs[1]->iq, "id"), "a1");
	iq_result(hd.reqs[1], NULL);
	assert_int_equal(alive.n, 1);
	assert_string_equal(xml_attr(alive.replies[0], "id"), "a1");
	capture_clear(&alive);
	host_done(h);
}

static void test_unregister_pending(void **state)
{
	struct host *h = host_new();
	struct held hd = { 0 };
	struct capture c = { 0 };
	iq_register(h, IQ_SCOPE_PREAUTH, NS_TEST, IQ_ONE_QUEUE, hold_handler, &hd);
	assert_true(dispatch(h, "1", &c));
	assert_true(dispatch(h, "2", &c));
	assert_true(dispatch(h, "3", &c));
	iq_unregister(h, IQ_SCOPE_PREAUTH, NS_TEST);
	/* The queued requests are answered at once, in order, without
	 * reaching the handler. */
	assert_int_equal(c.n, 2);
	assert_int_equal(hd.calls, 1);
	assert_string_equal(xml_attr(c.replies[0], "id"), "2");
	assert_non_null(xml_path(c.replies[0], "error/service-unavailable"));
	assert_string_equal(xml_attr(c.replies[1], "id"), "3");
	assert_false(iq_has_handler(h, IQ_SCOPE_PREAUTH, NS_TEST));
	assert_false(dispatch(h, "4", &c));
	/* The one in flight can still answer (the handler outlives its
	 * registration until then). */
	iq_result(hd.reqs[0], NULL);
	assert_int_equal(c.n, 3);
	assert_string_equal(xml_attr(c.replies[2], "id"), "1");
	assert_int_equal(hd.calls, 1);
	capture_clear(&c);
	host_done(h);
}

static void test_free_host_pending(void **state)
{
	struct host *h = host_new();
	struct held hd = { 0 };
	struct capture c = { 0 };
	iq_register(h, IQ_SCOPE_PREAUTH, NS_TEST, IQ_ONE_QUEUE, hold_handler, &hd);
	assert_true(dispatch(h, "1", &c));
	assert_true(dispatch(h, "2", &c));
	iq_free_host(h);
	assert_int_equal(c.n, 0); /* queued ones are dropped unanswered */
	iq_result(hd.reqs[0], NULL);
	assert_int_equal(c.n, 1);
	capture_clear(&c);
	host_done(h);
}

/* ---- iqs the server sends ------------------------------------------------------------ */

#define PEER "peer@remote.example/res"

struct answers {
	int calls;
	bool got_null;
	char type[16];
	char id[32];
};

static void answer_cb(struct xml_node *answer, void *ctx)
{
	struct answers *a = ctx;
	a->calls++;
	a->got_null = answer == NULL;
	if (answer != NULL) {
		snprintf(a->type, sizeof(a->type), "%s", xml_attr(answer, "type"));
		snprintf(a->id, sizeof(a->id), "%s", xml_attr(answer, "id"));
	}
}

/* Send a disco#info get from h to PEER; the id it got into id_r. */
static struct iq_out *send_one(struct host *h, double timeout, struct answers *a, char *id_r, size_t id_len)
{
	struct jid from = { 0 }, to = { 0 };
	const char *err;
	jid_set(&from, NULL, h->name, NULL);
	assert_int_equal(jid_parse(PEER, &to, &err), 0);
	struct xml_node *iq = make_iq("get", "caller-id", NS_DISCO_INFO);
	struct iq_out *o = iq_send(h, iq, &from, &to, timeout, answer_cb, a);
	assert_non_null(o);
	const char *id = xml_attr(iq, "id");
	assert_string_not_equal(id, "caller-id");
	assert_string_equal(xml_attr(iq, "from"), h->name);
	assert_string_equal(xml_attr(iq, "to"), PEER);
	snprintf(id_r, id_len, "%s", id);
	xml_unref(&iq);
	jid_clear(&from);
	jid_clear(&to);
	return o;
}

/* Hand h an answer of type with id, from sender to addressee. */
static bool respond(struct host *h, const char *type, const char *id, const char *sender,
                    const char *addressee)
{
	struct jid from = { 0 };
	const char *err;
	assert_int_equal(jid_parse(sender, &from, &err), 0);
	struct xml_node *answer = xml_new("iq", NS_CLIENT);
	xml_set_attr(answer, "type", type);
	xml_set_attr(answer, "id", id);
	xml_set_attr(answer, "from", sender);
	xml_set_attr(answer, "to", addressee);
	bool r = iq_response(h, answer, &from);
	xml_unref(&answer);
	jid_clear(&from);
	return r;
}

static void test_send_answered(void **state)
{
	server.loop = EV_DEFAULT;
	struct host *h = host_new();
	struct answers a = { 0 }, b = { 0 };
	char id_a[32], id_b[32];
	send_one(h, 30, &a, id_a, sizeof(id_a));
	send_one(h, 30, &b, id_b, sizeof(id_b));
	assert_string_not_equal(id_a, id_b); /* unique ids */
	assert_int_equal(a.calls + b.calls, 0);
	/* An id nobody sent, a get with a known id: not answers. */
	assert_false(respond(h, "result", "nope", PEER, "example.com"));
	assert_false(respond(h, "get", id_a, PEER, "example.com"));
	assert_true(respond(h, "result", id_b, PEER, "example.com"));
	assert_int_equal(b.calls, 1);
	assert_string_equal(b.type, "result");
	assert_string_equal(b.id, id_b);
	assert_true(respond(h, "error", id_a, PEER, "example.com"));
	assert_int_equal(a.calls, 1);
	assert_string_equal(a.type, "error");
	/* Answered once: the second answer is nobody's. */
	assert_false(respond(h, "result", id_a, PEER, "example.com"));
	assert_int_equal(a.calls, 1);
	host_done(h);
	assert_int_equal(a.calls, 1);
	assert_int_equal(b.calls, 1);
}

static void test_send_wrong_sender(void **state)
{
	server.loop = EV_DEFAULT;
	struct host *h = host_new();
	struct answers a = { 0 };
	char id[32];
	send_one(h, 30, &a, id, sizeof(id));
	/* Another resource, the bare JID, another user: not the addressee. */
	assert_false(respond(h, "result", id, "peer@remote.example/other", "example.com"));
	assert_false(respond(h, "result", id, "peer@remote.example", "example.com"));
	assert_false(respond(h, "result", id, "mallory@remote.example/res", "example.com"));
	/* Addressed to someone else than the sender. */
	assert_false(respond(h, "result", id, PEER, "other.example"));
	assert_int_equal(a.calls, 0);
	assert_true(respond(h, "result", id, PEER, "example.com"));
	assert_int_equal(a.calls, 1);
	assert_false(a.got_null);
	host_done(h);
}

static void test_send_timeout(void **state)
{
	server.loop = EV_DEFAULT;
	struct host *h = host_new();
	struct answers a = { 0 }, b = { 0 };
	char id_a[32], id_b[32];
	send_one(h, 0.01, &a, id_a, sizeof(id_a));
	send_one(h, 30, &b, id_b, sizeof(id_b));
	while (a.calls == 0)
		ev_run(server.loop, EVRUN_ONCE);
	assert_int_equal(a.calls, 1);
	assert_true(a.got_null);
	assert_int_equal(b.calls, 0);
	/* Too late: timed out already. */
	assert_false(respond(h, "result", id_a, PEER, "example.com"));
	assert_int_equal(a.calls, 1);
	host_done(h);
	assert_int_equal(b.calls, 1); /* the host stopped */
	assert_true(b.got_null);
}

static void test_send_cancel(void **state)
{
	server.loop = EV_DEFAULT;
	struct host *h = host_new();
	struct answers a = { 0 }, b = { 0 };
	char id_a[32], id_b[32];
	struct iq_out *o = send_one(h, 0.01, &a, id_a, sizeof(id_a));
	send_one(h, 0.02, &b, id_b, sizeof(id_b));
	iq_send_cancel(o);
	iq_send_cancel(NULL);
	assert_false(respond(h, "result", id_a, PEER, "example.com"));
	while (b.calls == 0)
		ev_run(server.loop, EVRUN_ONCE); /* b times out; a's timer is gone */
	assert_int_equal(a.calls, 0);
	assert_true(b.got_null);
	host_done(h);
	assert_int_equal(a.calls, 0);
}

static void test_send_host_stop(void **state)
{
	server.loop = EV_DEFAULT;
	struct host *h = host_new();
	struct answers a[40] = { 0 };
	char id[32];
	/* Enough to grow the table a few times. */
	for (size_t i = 0; i < ARRAY_SIZE(a); i++)
		send_one(h, 30, &a[i], id, sizeof(id));
	assert_true(respond(h, "result", id, PEER, "example.com"));
	assert_int_equal(a[ARRAY_SIZE(a) - 1].calls, 1);
	iq_free_host(h);
	for (size_t i = 0; i + 1 < ARRAY_SIZE(a); i++) {
		assert_int_equal(a[i].calls, 1);
		assert_true(a[i].got_null);
	}
	assert_false(ev_run(server.loop, EVRUN_NOWAIT)); /* no timer left */
	host_done(h);
}

/* ---- stanza replies ---------------------------------------------------------------- */

static void test_stanza_error_reply(void **state)
{
	struct xml_node *m = xml_new("message", NS_CLIENT);
	xml_set_attr(m, "from", "a@example.com/r");
	xml_set_attr(m, "to", "b@example.com");
	xml_set_attr(m, "id", "m1");
	xml_set_attr(m, "type", "chat");
	xml_set_attr(m, "xml:lang", "en");
	struct xml_node *body = xml_add_child(m, "body", NULL);
	xml_add_text(body, "hi", 2);
	assert_int_equal(stanza_kind(m), STANZA_MESSAGE);

	struct xml_node *r = stanza_error_reply(m, SE_SERVICE_UNAVAILABLE, NULL);
	assert_non_null(r);
	assert_true(xml_is(r, "message", NS_CLIENT));
	assert_string_equal(xml_attr(r, "from"), "b@example.com");
	assert_string_equal(xml_attr(r, "to"), "a@example.com/r");
	assert_string_equal(xml_attr(r, "id"), "m1");
	assert_string_equal(xml_attr(r, "xml:lang"), "en");
	assert_string_equal(xml_attr(r, "type"), "error");
	assert_string_equal(xml_child_text(r, "body", NULL), "hi");
	struct xml_node *err = xml_child(r, "error", NULL);
	assert_string_equal(xml_attr(err, "type"), "cancel");
	assert_non_null(xml_child(err, "service-unavailable", NS_STANZAS));
	assert_null(xml_child(err, "text", NULL));
	/* The request is untouched. */
	assert_string_equal(xml_attr(m, "type"), "chat");
	assert_null(xml_child(m, "error", NULL));

	/* Never answer an error. */
	assert_null(stanza_error_reply(r, SE_BAD_REQUEST, NULL));
	xml_unref(&r);
	xml_unref(&m);
}

static void test_stanza_iq_result(void **state)
{
	struct xml_node *iq = make_iq("get", "x1", NS_TEST);
	xml_set_attr(iq, "from", "a@example.com/r");
	assert_int_equal(stanza_kind(iq), STANZA_IQ);
	struct xml_node *r = stanza_iq_result(iq);
	assert_string_equal(xml_attr(r, "type"), "result");
	assert_string_equal(xml_attr(r, "id"), "x1");
	assert_string_equal(xml_attr(r, "to"), "a@example.com/r");
	assert_null(xml_attr(r, "from")); /* the request had no 'to' */
	assert_null(xml_first_element(r));
	xml_unref(&r);
	xml_set_attr(iq, "to", "example.com");
	r = stanza_iq_result(iq);
	assert_string_equal(xml_attr(r, "from"), "example.com");
	xml_unref(&r);
	xml_unref(&iq);
}

static void test_condition_names(void **state)
{
	assert_string_equal(stanza_error_name(SE_BAD_REQUEST), "bad-request");
	assert_string_equal(stanza_error_type(SE_BAD_REQUEST), "modify");
	assert_string_equal(stanza_error_name(SE_UNEXPECTED_REQUEST), "unexpected-request");
	assert_string_equal(stanza_error_type(SE_FORBIDDEN), "auth");
	assert_string_equal(stanza_error_type(SE_RESOURCE_CONSTRAINT), "wait");
	assert_string_equal(stanza_error_name(SE_ITEM_NOT_FOUND), "item-not-found");
	assert_string_equal(stream_error_name(STE_NOT_AUTHORIZED), "not-authorized");
	assert_string_equal(stream_error_name(STE_UNSUPPORTED_VERSION), "unsupported-version");
	assert_string_equal(stream_error_name(STE_SEE_OTHER_HOST), "see-other-host");
	struct xml_node *p = xml_new("presence", NS_CLIENT);
	assert_int_equal(stanza_kind(p), STANZA_PRESENCE);
	xml_unref(&p);
	p = xml_new("starttls", NS_TLS);
	assert_int_equal(stanza_kind(p), STANZA_OTHER);
	xml_unref(&p);
}

/* ---- built-in modules (the parts answered without a backend) ----------------------- */

static struct xml_node *register_query(const char *username, const char *password, bool remove)
{
	struct xml_node *q = xml_new("query", NS_REGISTER);
	if (username != NULL)
		xml_add_text(xml_add_child(q, "username", NULL), username, strlen(username));
	if (password != NULL)
		xml_add_text(xml_add_child(q, "password", NULL), password, strlen(password));
	if (remove)
		xml_add_child(q, "remove", NULL);
	return q;
}

/* The condition of an error reply, or NULL. */
static const char *error_condition(const struct xml_node *reply)
{
	struct xml_node *err = xml_child(reply, "error", NULL);
	if (err == NULL)
		return NULL;
	struct xml_node *cond = xml_child(err, NULL, NS_STANZAS);
	return cond != NULL ? cond->name : NULL;
}

static struct host *host_with_modules(const char *yaml, struct host_config *hc, struct cfg_node **root_r)
{
	char *err = NULL;
	if (cfg_load_string(yaml, "test.yml", root_r, &err) < 0)
		fail_msg("%s", err);
	memset(hc, 0, sizeof(*hc));
	hc->name = "example.com";
	hc->modules = *root_r;
	struct host *h = host_new();
	h->cfg = hc;
	return h;
}

static void test_builtin_register_open(void **state)
{
	modules_register_builtin();
	struct host_config hc;
	struct cfg_node *root;
	struct host *h = host_with_modules("register:\n  open: true\n  min_password_length: 6\n"
	                                   "roster: false\n",
	                                   &hc, &root);
	char *err = NULL;
	if (modules_start_host(h, &err) < 0)
		fail_msg("%s", err);
	assert_true(module_running(h, "disco"));
	assert_true(module_running(h, "register"));
	assert_false(module_running(h, "roster"));
	assert_true(strlist_contains(&h->features, NS_REGISTER));
	assert_true(strlist_contains(&h->features, NS_DISCO_INFO));
	assert_true(strlist_contains(&h->features, NS_VERSION));
	assert_true(strlist_contains(&h->features, NS_PING));
	assert_true(strlist_contains(&h->features, NS_TIME));
	assert_true(strlist_contains(&h->user_features, NS_PING));

	struct xml_node *f = xml_new("features", NS_STREAM);
	struct hook_features hf = { .features = f, .authenticated = false, .secure = true };
	hook_run(h, HOOK_STREAM_FEATURES, &hf);
	assert_non_null(xml_child(f, "register", NS_FEATURE_REGISTER));
	xml_unref(&f);

	struct capture c = { 0 };
	struct xml_node *q = xml_new("query", NS_REGISTER);
	assert_true(dispatch_payload(h, "get", "r1", q, &c));
	xml_unref(&q);
	assert_int_equal(c.n, 1);
	assert_string_equal(xml_attr(c.replies[0], "type"), "result");
	q = xml_child(c.replies[0], "query", NS_REGISTER);
	assert_non_null(q);
	assert_non_null(xml_child(q, "username", NS_REGISTER));
	assert_non_null(xml_child(q, "password", NS_REGISTER));
	assert_non_null(xml_child(q, "instructions", NS_REGISTER));
	capture_clear(&c);

	static const struct {
		const char *user, *password;
		bool remove;
		const char *condition;
	} cases[] = {
		{ NULL, "secret-enough", false, "not-acceptable" },
		{ "", "secret-enough", false, "not-acceptable" },
		{ "bad@name", "secret-enough", false, "not-acceptable" },
		{ "alice", NULL, false, "not-acceptable" },
		{ "alice", "", false, "not-acceptable" },
		{ "alice", "12345", false, "not-acceptable" },
		{ "alice", "secret-enough", true, "not-allowed" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		q = register_query(cases[i].user, cases[i].password, cases[i].remove);
		assert_true(dispatch_payload(h, "set", "s", q, &c));
		xml_unref(&q);
		assert_int_equal(c.n, 1);
		assert_string_equal(xml_attr(c.replies[0], "type"), "error");
		assert_string_equal(error_condition(c.replies[0]), cases[i].condition);
		capture_clear(&c);
	}

	modules_stop_host(h);
	assert_false(strlist_contains(&h->features, NS_REGISTER));
	assert_false(strlist_contains(&h->features, NS_DISCO_INFO));
	assert_false(iq_has_handler(h, IQ_SCOPE_PREAUTH, NS_REGISTER));
	host_done(h);
	cfg_free(&root);
}

static void test_builtin_register_closed(void **state)
{
	modules_register_builtin();
	struct host_config hc;
	struct cfg_node *root;
	struct host *h = host_with_modules("register: {}\nversion:\n  show_os: false\n", &hc, &root);
	char *err = NULL;
	if (modules_start_host(h, &err) < 0)
		fail_msg("%s", err);
	assert_true(module_running(h, "roster")); /* default */

	struct xml_node *f = xml_new("features", NS_STREAM);
	struct hook_features hf = { .features = f, .authenticated = false, .secure = true };
	hook_run(h, HOOK_STREAM_FEATURES, &hf);
	assert_null(xml_child(f, "register", NS_FEATURE_REGISTER));
	assert_null(xml_child(f, "ver", NULL));
	hf.authenticated = true;
	hook_run(h, HOOK_STREAM_FEATURES, &hf);
	assert_non_null(xml_child(f, "ver", "urn:xmpp:features:rosterver"));
	xml_unref(&f);

	struct capture c = { 0 };
	struct xml_node *q = xml_new("query", NS_REGISTER);
	assert_true(dispatch_payload(h, "get", "r1", q, &c));
	xml_unref(&q);
	q = register_query("alice", "secret", false);
	assert_true(dispatch_payload(h, "set", "r2", q, &c));
	xml_unref(&q);
	assert_int_equal(c.n, 2);
	assert_string_equal(error_condition(c.replies[0]), "not-allowed");
	assert_string_equal(error_condition(c.replies[1]), "not-allowed");
	capture_clear(&c);
	host_done(h);
	cfg_free(&root);
}

static void test_module_config_errors(void **state)
{
	modules_register_builtin();
	struct host_config hc;
	struct cfg_node *root;
	struct host *h = host_with_modules("disco: {}\nregister:\n  open: true\n  bogus: 1\n", &hc, &root);
	char *err = NULL;
	assert_int_equal(modules_start_host(h, &err), -1);
	assert_non_null(strstr(err, "test.yml:4"));
	assert_non_null(strstr(err, "bogus"));
	free(err);
	assert_false(module_running(h, "disco")); /* what had started is stopped */
	host_done(h);
	cfg_free(&root);

	h = host_with_modules("dsico: {}\n", &hc, &root);
	err = NULL;
	assert_int_equal(modules_start_host(h, &err), -1);
	assert_non_null(strstr(err, "test.yml:1"));
	assert_non_null(strstr(err, "dsico"));
	free(err);
	host_done(h);
	cfg_free(&root);

	h = host_with_modules("ping: false\ntime: false\n", &hc, &root);
	if (modules_start_host(h, &err) < 0)
		fail_msg("%s", err);
	assert_false(module_running(h, "ping"));
	assert_false(module_running(h, "time"));
	assert_true(module_running(h, "version"));
	host_done(h);
	cfg_free(&root);
}

/* ---- modules ------------------------------------------------------------------------ */

static char order[64];

static int mod_start(struct host *h, const void *settings, void **state_r, char **error_r, char tag)
{
	size_t n = strlen(order);
	order[n] = tag;
	order[n + 1] = '\0';
	*state_r = (void *)(uintptr_t)tag;
	return 0;
}

static int start_a(struct host *h, const void *s, void **st, char **e)
{
	return mod_start(h, s, st, e, 'a');
}
static int start_b(struct host *h, const void *s, void **st, char **e)
{
	return mod_start(h, s, st, e, 'b');
}
static int start_fail(struct host *h, const void *s, void **st, char **e)
{
	*e = strdup("no way");
	return -1;
}

static void stop_any(struct host *h, void *state)
{
	size_t n = strlen(order);
	order[n] = (char)toupper((int)(uintptr_t)state);
	order[n + 1] = '\0';
}

static const struct module_def test_mod_a = {
	.name = "test_a", .default_enabled = true, .start = start_a, .stop = stop_any
};
static const struct module_def test_mod_off = {
	.name = "test_off", .default_enabled = false, .start = start_fail, .stop = stop_any
};
static const struct module_def test_mod_b = {
	.name = "test_b", .default_enabled = true, .start = start_b, .stop = stop_any
};
static const struct module_def test_mod_fail = {
	.name = "test_fail", .default_enabled = true, .start = start_fail, .stop = stop_any
};

static void test_modules(void **state)
{
	size_t before;
	module_list(&before);
	module_register(&test_mod_a);
	module_register(&test_mod_off);
	module_register(&test_mod_b);
	module_register(&test_mod_b); /* twice: ignored */
	assert_ptr_equal(module_find("test_b"), &test_mod_b);
	assert_null(module_find("nope"));
	size_t count;
	const struct module_def *const *all = module_list(&count);
	assert_int_equal(count, before + 3);
	assert_ptr_equal(all[before], &test_mod_a);

	struct host *h = host_new();
	char *err = NULL;
	order[0] = '\0';
	h->cfg = NULL; /* nothing configured: default_enabled ones run */
	assert_int_equal(modules_start_host(h, &err), 0);
	/* Registration order (after the built-in ones); test_off not enabled. */
	assert_string_equal(order, "ab");
	assert_true(module_running(h, "test_a"));
	assert_false(module_running(h, "test_off"));
	assert_ptr_equal(module_state(h, "test_b"), (void *)(uintptr_t)'b');
	modules_stop_host(h);
	assert_string_equal(order, "abBA"); /* stopped in reverse */
	assert_false(module_running(h, "test_a"));

	/* A module refusing to start: an error naming it; the others are
	 * stopped again. */
	module_register(&test_mod_fail);
	order[0] = '\0';
	assert_int_equal(modules_start_host(h, &err), -1);
	assert_non_null(err);
	assert_non_null(strstr(err, "test_fail"));
	assert_non_null(strstr(err, "no way"));
	free(err);
	assert_string_equal(order, "abBA");
	assert_false(module_running(h, "test_a"));
	host_done(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_register),
		cmocka_unit_test(test_no_queue),
		cmocka_unit_test(test_one_queue_order),
		cmocka_unit_test(test_one_queue_sync_drain),
		cmocka_unit_test(test_parallel),
		cmocka_unit_test(test_error_answer),
		cmocka_unit_test(test_result_tree),
		cmocka_unit_test(test_preauth_detach),
		cmocka_unit_test(test_unregister_pending),
		cmocka_unit_test(test_free_host_pending),
		cmocka_unit_test(test_send_answered),
		cmocka_unit_test(test_send_wrong_sender),
		cmocka_unit_test(test_send_timeout),
		cmocka_unit_test(test_send_cancel),
		cmocka_unit_test(test_send_host_stop),
		cmocka_unit_test(test_stanza_error_reply),
		cmocka_unit_test(test_stanza_iq_result),
		cmocka_unit_test(test_condition_names),
		cmocka_unit_test(test_builtin_register_open),
		cmocka_unit_test(test_builtin_register_closed),
		cmocka_unit_test(test_module_config_errors),
		cmocka_unit_test(test_modules), /* last: it registers a module that fails */
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
