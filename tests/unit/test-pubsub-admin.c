/*
 * Unit tests: the administration of pubsub nodes (modules/pubsub/
 * pubsub-admin.h) on the memory store, through the module harness.
 * Owners are found by service, host and account, and malformed or unknown
 * names are told apart; an account's PEP is loaded before it is read; a
 * purge and a delete answer from the loop once stored, notify the
 * subscriber and leave nothing behind; a missing node is answered at
 * once; a cancelled delete still deletes but does not answer.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "module-harness.h"
#include "modules/pubsub/pubsub-admin.h"

#define SERVICE "pubsub." HARNESS_HOST
#define NS_PS "http://jabber.org/protocol/pubsub"

static int setup(void **state)
{
	(void)state;
	harness_start(NULL);
	harness_account("alice");
	harness_account("bob");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	harness_stop();
	return 0;
}

/* An answer of a change or a load. */
struct outcome {
	bool called;
	enum ps_admin_result r;
	char *message;
	struct ps_owner *o;
};

static void done_cb(void *ctx, enum ps_admin_result r, const char *message)
{
	struct outcome *out = ctx;
	assert_false(out->called);
	out->called = true;
	out->r = r;
	out->message = message != NULL ? xstrdup(message) : NULL;
}

static void ready_cb(void *ctx, enum ps_admin_result r, struct ps_owner *o, const char *message)
{
	struct outcome *out = ctx;
	done_cb(ctx, r, message);
	out->o = o;
}

static bool called(void *ctx)
{
	return ((struct outcome *)ctx)->called;
}

static void outcome_clear(struct outcome *out)
{
	free(out->message);
	memset(out, 0, sizeof(*out));
}

/* Send an iq from fs and check that it was answered with a result. */
static void iq_ok(struct fake_session *fs, const char *id, const char *to, const char *payload)
{
	harness_send(fs, "<iq type='set' id='%s' to='%s'>%s</iq>", id, to, payload);
	harness_run();
	struct xml_node *answer = fake_find(fs, "iq", "id", id);
	assert_non_null(answer);
	assert_string_equal(xml_attr(answer, "type"), "result");
	fake_clear(fs);
}

/* news on the service, alice's, with two items, bob subscribed. */
static void make_node(struct fake_session *alice, struct fake_session *bob)
{
	iq_ok(alice, "c1", SERVICE, "<pubsub xmlns='" NS_PS "'><create node='news'/></pubsub>");
	iq_ok(alice, "p1", SERVICE,
	      "<pubsub xmlns='" NS_PS "'><publish node='news'><item id='a'><x xmlns='urn:t'/></item>"
	      "</publish></pubsub>");
	iq_ok(alice, "p2", SERVICE,
	      "<pubsub xmlns='" NS_PS "'><publish node='news'><item id='b'><x xmlns='urn:t'>text</x></item>"
	      "</publish></pubsub>");
	iq_ok(bob, "s1", SERVICE,
	      "<pubsub xmlns='" NS_PS "'><subscribe node='news' jid='bob@" HARNESS_HOST "/r'/></pubsub>");
	fake_clear(bob);
}

/* Whether fs got a notification with <what node='news'/>. */
static bool notified(const struct fake_session *fs, const char *what)
{
	for (size_t i = 0; i < fake_count(fs); i++) {
		struct xml_node *ev = xml_child(fake_get(fs, i), "event", NS_PS "#event");
		struct xml_node *el = ev != NULL ? xml_child(ev, what, NULL) : NULL;
		if (el != NULL && strcmp(xml_attr(el, "node"), "news") == 0)
			return true;
	}
	return false;
}

static void test_owner_names(void **state)
{
	(void)state;
	struct ps_owner *o;
	char *err = NULL;
	assert_int_equal(ps_admin_owner(SERVICE, false, &o, &err), PS_ADMIN_OK);
	assert_string_equal(o->key, SERVICE);
	assert_null(o->user);
	struct ps_owner *first;
	assert_int_equal(ps_admin_owner(HARNESS_HOST, true, &first, &err), PS_ADMIN_OK);
	assert_ptr_equal(first, o);
	assert_int_equal(ps_admin_owner("Alice@" HARNESS_HOST, false, &o, &err), PS_ADMIN_OK);
	assert_string_equal(o->key, "alice@" HARNESS_HOST);
	assert_string_equal(o->user, "alice");

	static const struct {
		const char *name;
		bool host_ok;
		enum ps_admin_result r;
	} bad[] = {
		{ HARNESS_HOST, false, PS_ADMIN_NOT_FOUND },
		{ "pubsub.elsewhere.example", true, PS_ADMIN_NOT_FOUND },
		{ "alice@elsewhere.example", true, PS_ADMIN_NOT_FOUND },
		{ "alice@", true, PS_ADMIN_INVALID },
		{ "@" HARNESS_HOST, true, PS_ADMIN_INVALID },
		{ SERVICE "/res", true, PS_ADMIN_INVALID },
		{ "a b@" HARNESS_HOST, true, PS_ADMIN_INVALID },
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		err = NULL;
		assert_int_equal(ps_admin_owner(bad[i].name, bad[i].host_ok, &o, &err), bad[i].r);
		assert_non_null(err);
		free(err);
	}
}

static void test_pep_is_loaded_first(void **state)
{
	(void)state;
	struct fake_session *alice = harness_login("alice", "r");
	iq_ok(alice, "pep", "alice@" HARNESS_HOST,
	      "<pubsub xmlns='" NS_PS "'><publish node='urn:t:mood'><item id='current'><x xmlns='urn:t'/>"
	      "</item></publish></pubsub>");
	harness_logout(&alice);
	/* bob's owner is not in memory: the load answers from the loop */
	struct ps_owner *o;
	char *err = NULL;
	assert_int_equal(ps_admin_owner("bob@" HARNESS_HOST, false, &o, &err), PS_ADMIN_OK);
	struct outcome out = { 0 };
	enum ps_admin_result r = PS_ADMIN_OK;
	struct ps_admin_op *op = ps_admin_load(o, ready_cb, &out, &r, &err);
	if (op != NULL) {
		assert_false(out.called);
		harness_run_until(called, &out);
		assert_int_equal(out.r, PS_ADMIN_OK);
		assert_ptr_equal(out.o, o);
	} else {
		assert_int_equal(r, PS_ADMIN_OK);
	}
	assert_null(o->nodes);
	outcome_clear(&out);
	/* alice's node is there, owned by the account */
	assert_int_equal(ps_admin_owner("alice@" HARNESS_HOST, false, &o, &err), PS_ADMIN_OK);
	op = ps_admin_load(o, ready_cb, &out, &r, &err);
	if (op != NULL)
		harness_run_until(called, &out);
	struct ps_node *n = ps_node_find(o, "urn:t:mood");
	assert_non_null(n);
	assert_int_equal(n->nitems, 1);
	assert_int_equal(n->cfg.access, PS_ACCESS_PRESENCE);
	struct strlist owners;
	ps_admin_owners(n, &owners);
	assert_int_equal(owners.count, 1);
	assert_string_equal(owners.items[0], "alice@" HARNESS_HOST);
	strlist_free(&owners);
	outcome_clear(&out);
}

static void test_purge_and_delete(void **state)
{
	(void)state;
	struct fake_session *alice = harness_login("alice", "r");
	struct fake_session *bob = harness_login("bob", "r");
	harness_available(bob, 0);
	make_node(alice, bob);
	struct ps_owner *o;
	char *err = NULL;
	assert_int_equal(ps_admin_owner(SERVICE, false, &o, &err), PS_ADMIN_OK);
	struct ps_node *n = ps_node_find(o, "news");
	assert_non_null(n);
	assert_int_equal(n->nitems, 2);
	assert_int_equal(n->nsubs, 1);
	assert_string_equal(ps_admin_sub_state_str(n->subs[0].state), "subscribed");
	assert_int_equal(ps_admin_payload_size(n->oldest), strlen("<x xmlns='urn:t'/>"));

	struct outcome out = { 0 };
	enum ps_admin_result r = PS_ADMIN_OK;
	char *message = NULL;
	struct ps_admin_op *op = ps_admin_purge(SERVICE, "news", done_cb, &out, &r, &message);
	assert_non_null(op); /* the store answers from the loop */
	assert_false(out.called);
	harness_run_until(called, &out);
	assert_int_equal(out.r, PS_ADMIN_OK);
	assert_non_null(strstr(out.message, "2 items removed"));
	assert_int_equal(n->nitems, 0);
	assert_true(notified(bob, "purge"));
	outcome_clear(&out);
	fake_clear(bob);

	op = ps_admin_delete(SERVICE, "news", done_cb, &out, &r, &message);
	assert_non_null(op);
	harness_run_until(called, &out);
	assert_int_equal(out.r, PS_ADMIN_OK);
	assert_null(ps_node_find(o, "news"));
	assert_true(notified(bob, "delete"));
	outcome_clear(&out);

	/* a missing node is answered at once, done does not run */
	op = ps_admin_delete(SERVICE, "news", done_cb, &out, &r, &message);
	assert_null(op);
	assert_false(out.called);
	assert_int_equal(r, PS_ADMIN_NOT_FOUND);
	assert_non_null(strstr(message, "no node news"));
	free(message);
	op = ps_admin_purge(SERVICE, "", done_cb, &out, &r, &message);
	assert_null(op);
	assert_int_equal(r, PS_ADMIN_INVALID);
	free(message);
	harness_logout(&alice);
	harness_logout(&bob);
}

static void test_cancelled_delete_still_deletes(void **state)
{
	(void)state;
	struct fake_session *alice = harness_login("alice", "r");
	struct fake_session *bob = harness_login("bob", "r");
	harness_available(bob, 0);
	make_node(alice, bob);
	struct outcome out = { 0 };
	enum ps_admin_result r = PS_ADMIN_OK;
	char *message = NULL;
	struct ps_admin_op *op = ps_admin_delete(SERVICE, "news", done_cb, &out, &r, &message);
	assert_non_null(op);
	ps_admin_cancel(op);
	harness_run();
	assert_false(out.called);
	struct ps_owner *o;
	char *err = NULL;
	assert_int_equal(ps_admin_owner(SERVICE, false, &o, &err), PS_ADMIN_OK);
	assert_null(ps_node_find(o, "news"));
	harness_logout(&alice);
	harness_logout(&bob);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_owner_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pep_is_loaded_first, setup, teardown),
		cmocka_unit_test_setup_teardown(test_purge_and_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancelled_delete_still_deletes, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
