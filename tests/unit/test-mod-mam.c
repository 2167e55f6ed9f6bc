/*
 * Unit tests: message archives (mod_mam) on the memory store, through the
 * module harness.  A chat message between two users is in both archives
 * and is delivered with the recipient's stanza-id, which names the
 * archived copy; the sender's barrier is held until both stores are done;
 * a forged stanza-id is removed; hints and preferences keep messages out;
 * queries page with RSM and refuse what is not the requester's.  (The
 * harness writes output at once, where c2s holds it in order: the order
 * of results and <fin/> is checked by the integration tests.)
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "module-harness.h"
#include "lib/barrier.h"

#define NS_MAM "urn:xmpp:mam:2"
#define NS_SID "urn:xmpp:sid:0"
#define NS_FORWARD "urn:xmpp:forward:0"
#define NS_RSM "http://jabber.org/protocol/rsm"

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

static struct fake_session *online(const char *user)
{
	struct fake_session *fs = harness_login(user, "home");
	harness_available(fs, 0);
	harness_run();
	fake_clear(fs);
	return fs;
}

static void chat(struct fake_session *from, const char *to, const char *body, const char *extra)
{
	harness_send(from, "<message to='%s@example.com' type='chat'><body>%s</body>%s</message>", to, body,
	             extra);
}

/* The stanza-id by by of msg, or NULL (fails when there are several). */
static const char *stanza_id(const struct xml_node *msg, const char *by)
{
	const char *found = NULL;
	for (const struct xml_node *c = xml_child(msg, "stanza-id", NS_SID); c != NULL;
	     c = xml_next(c, "stanza-id", NS_SID)) {
		if (strcmp(xml_attr(c, "by"), by) == 0) {
			assert_null(found);
			found = xml_attr(c, "id");
		}
	}
	return found;
}

/* Query fs's own archive with an RSM max; the results and the answer are
 * left in fs (cleared first). */
static void query(struct fake_session *fs, const char *rsm)
{
	fake_clear(fs);
	harness_send(fs,
	             "<iq type='set' id='q1'><query xmlns='" NS_MAM "' queryid='x'><set xmlns='" NS_RSM
	             "'>%s</set></query></iq>",
	             rsm);
	harness_run();
}

static const struct xml_node *answer(const struct fake_session *fs)
{
	const struct xml_node *iq = fake_find(fs, "iq", "id", "q1");
	assert_non_null(iq);
	return iq;
}

/* The body of the forwarded message of result message m. */
static const char *result_body(const struct xml_node *m)
{
	const struct xml_node *r = xml_child(m, "result", NS_MAM);
	assert_non_null(r);
	assert_string_equal(xml_attr(r, "queryid"), "x");
	const struct xml_node *fwd = xml_child(r, "forwarded", NS_FORWARD);
	assert_non_null(fwd);
	return xml_child_text(xml_child(fwd, "message", NULL), "body", NULL);
}

static void test_both_archives_and_stanza_id(void **state)
{
	(void)state;
	struct fake_session *alice = online("alice"), *bob = online("bob");
	chat(bob, "alice", "hi", "");
	assert_true(barrier_busy(bob->barrier)); /* both stores in flight */
	harness_run();
	assert_false(barrier_busy(bob->barrier));
	const struct xml_node *m = fake_find(alice, "message", NULL, NULL);
	assert_non_null(m);
	const char *sid = stanza_id(m, "alice@example.com");
	assert_non_null(sid);
	char *sid_copy = strdup(sid);

	query(alice, "<max>10</max>");
	assert_int_equal(fake_count_named(alice, "message"), 1);
	const struct xml_node *res = fake_find(alice, "message", NULL, NULL);
	assert_string_equal(result_body(res), "hi");
	assert_string_equal(xml_attr(xml_child(res, "result", NS_MAM), "id"), sid_copy);
	const struct xml_node *fin = xml_child(answer(alice), "fin", NS_MAM);
	assert_non_null(fin);
	assert_string_equal(xml_attr(fin, "complete"), "true");
	free(sid_copy);

	query(bob, "<max>10</max>");
	assert_int_equal(fake_count_named(bob, "message"), 1);
	assert_string_equal(result_body(fake_find(bob, "message", NULL, NULL)), "hi");
}

static void test_forged_id_and_hints(void **state)
{
	(void)state;
	struct fake_session *alice = online("alice"), *bob = online("bob");
	chat(bob, "alice", "forged", "<stanza-id xmlns='" NS_SID "' by='alice@example.com' id='1234'/>");
	chat(bob, "alice", "hinted",
	     "<no-store xmlns='urn:xmpp:hints'/><stanza-id xmlns='" NS_SID
	     "' by='alice@example.com' id='99'/>");
	harness_send(bob, "<message to='alice@example.com' type='chat'>"
	                  "<active xmlns='http://jabber.org/protocol/chatstates'/></message>");
	harness_run();
	assert_int_equal(fake_count_named(alice, "message"), 3);
	const struct xml_node *forged = fake_get(alice, 0), *hinted = fake_get(alice, 1);
	assert_string_equal(xml_child_text(forged, "body", NULL), "forged");
	assert_string_not_equal(stanza_id(forged, "alice@example.com"), "1234");
	assert_null(stanza_id(hinted, "alice@example.com"));
	assert_null(stanza_id(fake_get(alice, 2), "alice@example.com"));
	query(alice, "<max>10</max>");
	assert_int_equal(fake_count_named(alice, "message"), 1);
	assert_string_equal(result_body(fake_find(alice, "message", NULL, NULL)), "forged");
}

static void test_prefs_never(void **state)
{
	(void)state;
	struct fake_session *alice = online("alice"), *bob = online("bob");
	harness_send(alice, "<iq type='set' id='p1'><prefs xmlns='" NS_MAM "' default='never'/></iq>");
	harness_run();
	assert_string_equal(xml_attr(fake_find(alice, "iq", "id", "p1"), "type"), "result");
	fake_clear(alice);
	chat(bob, "alice", "unkept", "");
	harness_run();
	const struct xml_node *m = fake_find(alice, "message", NULL, NULL);
	assert_non_null(m);
	assert_null(stanza_id(m, "alice@example.com"));
	query(alice, "<max>10</max>");
	assert_int_equal(fake_count_named(alice, "message"), 0);
	/* bob's own archive still has what he sent */
	query(bob, "<max>10</max>");
	assert_int_equal(fake_count_named(bob, "message"), 1);
}

static void test_paging_and_errors(void **state)
{
	(void)state;
	struct fake_session *alice = online("alice"), *bob = online("bob");
	for (int i = 0; i < 5; i++) {
		char body[8];
		snprintf(body, sizeof(body), "n%d", i);
		chat(bob, "alice", body, "");
	}
	harness_run();
	query(alice, "<max>2</max>");
	assert_int_equal(fake_count_named(alice, "message"), 2);
	const struct xml_node *fin = xml_child(answer(alice), "fin", NS_MAM);
	assert_null(xml_attr(fin, "complete"));
	query(alice, "<max>2</max><before/>");
	assert_int_equal(fake_count_named(alice, "message"), 2);
	fin = xml_child(answer(alice), "fin", NS_MAM);
	assert_null(xml_attr(fin, "complete"));
	query(alice, "<max>-3</max>");
	assert_string_equal(harness_error_condition(answer(alice), NULL), "bad-request");
	query(alice, "<max>2</max><after>42</after>");
	assert_string_equal(harness_error_condition(answer(alice), NULL), "item-not-found");
	fake_clear(alice);
	harness_send(alice, "<iq type='set' id='q1' to='bob@example.com'><query xmlns='" NS_MAM "'/></iq>");
	harness_run();
	assert_string_equal(harness_error_condition(answer(alice), NULL), "forbidden");
}

#define CASE(test) cmocka_unit_test_setup_teardown(test, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		CASE(test_both_archives_and_stanza_id),
		CASE(test_forged_id_and_hints),
		CASE(test_prefs_never),
		CASE(test_paging_and_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
