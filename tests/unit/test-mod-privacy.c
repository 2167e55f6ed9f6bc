/*
 * Unit tests: privacy decisions of mod_privacy (XEP-0016) and mod_blocking
 * (XEP-0191) on the memory store, through the module harness.  A default
 * list that denies a JID stops its messages to the user, live or offline;
 * a block list entry refuses stanzas both ways with the errors the XEPs
 * name; a session's active list overrides the default for that session
 * only.  (The matching rules themselves are tests/unit/test-privacy.c.)
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "module-harness.h"

static int setup(void **state)
{
	(void)state;
	harness_start(NULL);
	harness_account("alice");
	harness_account("bob");
	harness_account("carol");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	harness_stop();
	return 0;
}

/* alice's list "strict": deny messages from bob. */
static const struct privacy_item deny_bob[] = {
	{ PRIVACY_JID, "bob@example.com", false, 1, PRIVACY_MESSAGE },
};
/* alice's list "open": allow everything. */
static const struct privacy_item allow_all[] = {
	{ PRIVACY_ALL, NULL, true, 1, 0 },
};

static void send_chat(struct fake_session *from, const char *to, const char *id)
{
	harness_send(from, "<message to='%s' type='chat' id='%s'><body>hello</body></message>", to, id);
}

/* fs got exactly one stanza: an error answer to id with this condition. */
static struct xml_node *assert_bounced(const struct fake_session *fs, const char *id, const char *condition)
{
	if (fake_count(fs) != 1)
		fail_msg("%s: %zu stanzas instead of one error", fs->s.jid.node, fake_count(fs));
	struct xml_node *e = fake_get(fs, 0);
	assert_string_equal(xml_attr(e, "id"), id);
	const char *cond = harness_error_condition(e, NULL);
	if (cond == NULL || strcmp(cond, condition) != 0)
		fail_msg("%s: the answer to %s is %s, not %s", fs->s.jid.node, id,
		         cond != NULL ? cond : "not an error", condition);
	return e;
}

/* fs got a message with id (and nothing refused it). */
static void assert_got_message(const struct fake_session *fs, const char *id)
{
	struct xml_node *m = fake_find(fs, "message", "id", id);
	if (m == NULL)
		fail_msg("%s/%s did not get %s", fs->s.jid.node, fs->s.jid.resource, id);
	assert_null(harness_error_condition(m, NULL));
}

/* ---- default list --------------------------------------------------------------------- */

static void test_default_list_live(void **state)
{
	(void)state;
	harness_privacy_list("alice", "strict", deny_bob, 1, true);
	struct fake_session *alice = harness_login("alice", "desk");
	harness_run(); /* the lists are read at the first session's open */
	harness_available(alice, 0);
	struct fake_session *bob = harness_login("bob", "home");
	struct fake_session *carol = harness_login("carol", "home");
	fake_clear(alice);

	send_chat(bob, "alice@example.com", "b1");
	send_chat(bob, "alice@example.com/desk", "b2");
	send_chat(carol, "alice@example.com", "c1");
	harness_run();
	/* bob hears nobody took them; alice gets carol's only. */
	assert_int_equal(fake_count(bob), 2);
	assert_string_equal(harness_error_condition(fake_find(bob, "message", "id", "b1"), NULL),
	                    "service-unavailable");
	assert_string_equal(harness_error_condition(fake_find(bob, "message", "id", "b2"), NULL),
	                    "service-unavailable");
	assert_int_equal(fake_count(alice), 1);
	assert_got_message(alice, "c1");
	assert_int_equal(fake_count(carol), 0);
	assert_int_equal(harness_offline_count("alice"), 0);
}

static void test_default_list_offline(void **state)
{
	(void)state;
	harness_privacy_list("alice", "strict", deny_bob, 1, true);
	struct fake_session *bob = harness_login("bob", "home");
	struct fake_session *carol = harness_login("carol", "home");
	send_chat(bob, "alice@example.com", "b1");
	send_chat(carol, "alice@example.com", "c1");
	harness_run();
	assert_bounced(bob, "b1", "service-unavailable");
	assert_int_equal(fake_count(carol), 0);
	assert_int_equal(harness_offline_count("alice"), 1);

	struct fake_session *alice = harness_login("alice", "desk");
	harness_available(alice, 0);
	assert_int_equal(fake_count_named(alice, "message"), 1);
	assert_got_message(alice, "c1");
}

/* A list with a subscription item: judged on the roster (offline, the
 * module reads it before storing). */
static void test_default_list_by_subscription_offline(void **state)
{
	(void)state;
	/* alice and carol are subscribed to each other; bob is a stranger. */
	struct fake_session *alice = harness_login("alice", "desk");
	struct fake_session *carol = harness_login("carol", "home");
	harness_available(alice, 0);
	harness_available(carol, 0);
	harness_send(alice, "<presence to='carol@example.com' type='subscribe'/>");
	harness_run();
	harness_send(carol, "<presence to='alice@example.com' type='subscribed'/>");
	harness_run();
	struct roster_item it;
	assert_true(harness_roster_item("alice", "carol@example.com", &it));
	assert_int_equal(it.subscription, SUB_TO);
	roster_item_clear(&it);
	harness_logout(&alice);
	harness_run();
	fake_clear(carol);

	const struct privacy_item strangers[] = {
		{ PRIVACY_SUBSCRIPTION, "none", false, 1, PRIVACY_MESSAGE },
	};
	harness_privacy_list("alice", "friends-only", strangers, 1, true);
	struct fake_session *bob = harness_login("bob", "home");
	send_chat(bob, "alice@example.com", "b1");
	send_chat(carol, "alice@example.com", "c1");
	harness_run();
	assert_bounced(bob, "b1", "service-unavailable");
	assert_int_equal(fake_count(carol), 0);
	assert_int_equal(harness_offline_count("alice"), 1);
}

/* A default list set over XEP-0016 applies at once to the live session. */
static void test_default_list_set_by_iq(void **state)
{
	(void)state;
	struct fake_session *alice = harness_login("alice", "desk");
	harness_available(alice, 0);
	struct fake_session *bob = harness_login("bob", "home");
	fake_clear(alice);
	send_chat(bob, "alice@example.com", "before");
	harness_run();
	assert_got_message(alice, "before");
	fake_clear(alice);

	harness_send(alice, "<iq type='set' id='p1'><query xmlns='jabber:iq:privacy'>"
	                    "<list name='strict'><item type='jid' value='bob@example.com' "
	                    "action='deny' order='1'><message/></item></list></query></iq>");
	harness_run();
	harness_send(alice, "<iq type='set' id='p2'><query xmlns='jabber:iq:privacy'>"
	                    "<default name='strict'/></query></iq>");
	harness_run();
	assert_string_equal(xml_attr(fake_find(alice, "iq", "id", "p1"), "type"), "result");
	assert_string_equal(xml_attr(fake_find(alice, "iq", "id", "p2"), "type"), "result");
	fake_clear(alice);

	send_chat(bob, "alice@example.com", "after");
	harness_run();
	assert_int_equal(fake_count(alice), 0);
	assert_bounced(bob, "after", "service-unavailable");
}

/* An item for every stanza also stops what the user sends (not-acceptable,
 * and the peer gets nothing). */
static void test_default_list_outbound(void **state)
{
	(void)state;
	const struct privacy_item deny_all_bob[] = {
		{ PRIVACY_JID, "bob@example.com", false, 1, 0 },
	};
	harness_privacy_list("alice", "strict", deny_all_bob, 1, true);
	struct fake_session *alice = harness_login("alice", "desk");
	struct fake_session *bob = harness_login("bob", "home");
	struct fake_session *carol = harness_login("carol", "home");
	harness_run();
	harness_available(alice, 0);
	harness_available(bob, 0);
	harness_available(carol, 0);
	fake_clear(alice);
	fake_clear(bob);
	fake_clear(carol);

	send_chat(alice, "bob@example.com", "a1");
	harness_run();
	assert_bounced(alice, "a1", "not-acceptable");
	assert_int_equal(fake_count(bob), 0);
	fake_clear(alice);
	send_chat(alice, "carol@example.com", "a2");
	harness_run();
	assert_int_equal(fake_count(alice), 0);
	assert_got_message(carol, "a2");
}

/* ---- active list ------------------------------------------------------------------------ */

static void test_active_list_overrides_default(void **state)
{
	(void)state;
	harness_privacy_list("alice", "strict", deny_bob, 1, true);
	harness_privacy_list("alice", "open", allow_all, 1, false);
	struct fake_session *desk = harness_login("alice", "desk");
	struct fake_session *phone = harness_login("alice", "phone");
	harness_run();
	harness_available(desk, 0);
	harness_available(phone, 0);
	harness_send(desk, "<iq type='set' id='a1'><query xmlns='jabber:iq:privacy'>"
	                   "<active name='open'/></query></iq>");
	harness_run();
	assert_string_equal(xml_attr(fake_find(desk, "iq", "id", "a1"), "type"), "result");
	struct fake_session *bob = harness_login("bob", "home");
	fake_clear(desk);
	fake_clear(phone);

	/* To each full JID: the desk's active list lets bob in, the phone's
	 * default list does not. */
	send_chat(bob, "alice@example.com/desk", "to-desk");
	send_chat(bob, "alice@example.com/phone", "to-phone");
	harness_run();
	assert_int_equal(fake_count(desk), 1);
	assert_got_message(desk, "to-desk");
	assert_int_equal(fake_count(phone), 0);
	assert_bounced(bob, "to-phone", "service-unavailable");
	fake_clear(bob);

	/* To the bare JID: the desk takes it, the phone refuses it, and since
	 * one session took it the sender hears nothing. */
	send_chat(bob, "alice@example.com", "to-bare");
	harness_run();
	assert_got_message(desk, "to-bare");
	assert_int_equal(fake_count(phone), 0);
	assert_int_equal(fake_count(bob), 0);

	/* Declining the active list brings the default back for the desk. */
	fake_clear(desk);
	harness_send(desk, "<iq type='set' id='a2'><query xmlns='jabber:iq:privacy'><active/>"
	                   "</query></iq>");
	harness_run();
	fake_clear(desk);
	send_chat(bob, "alice@example.com/desk", "again");
	harness_run();
	assert_int_equal(fake_count(desk), 0);
	assert_bounced(bob, "again", "service-unavailable");
}

/* ---- block list ----------------------------------------------------------------------- */

static void test_block_both_ways(void **state)
{
	(void)state;
	struct fake_session *alice = harness_login("alice", "desk");
	struct fake_session *bob = harness_login("bob", "home");
	harness_available(alice, 0);
	harness_available(bob, 0);
	harness_send(alice, "<iq type='set' id='blk'><block xmlns='urn:xmpp:blocking'>"
	                    "<item jid='bob@example.com'/></block></iq>");
	harness_run();
	struct xml_node *r = fake_find(alice, "iq", "id", "blk");
	assert_non_null(r);
	assert_string_equal(xml_attr(r, "type"), "result");
	fake_clear(alice);
	fake_clear(bob);

	/* bob to alice: refused with service-unavailable (XEP-0191 §3.5). */
	send_chat(bob, "alice@example.com", "b1");
	harness_send(bob, "<iq to='alice@example.com/desk' type='get' id='b2'>"
	                  "<ping xmlns='urn:xmpp:ping'/></iq>");
	harness_send(bob, "<presence to='alice@example.com/desk'/>");
	harness_run();
	assert_int_equal(fake_count(alice), 0);
	assert_int_equal(fake_count(bob), 2);
	assert_string_equal(harness_error_condition(fake_find(bob, "message", "id", "b1"), NULL),
	                    "service-unavailable");
	assert_string_equal(harness_error_condition(fake_find(bob, "iq", "id", "b2"), NULL),
	                    "service-unavailable");
	fake_clear(bob);

	/* alice to bob: not-acceptable with <blocked/> (§3.6), bob gets nothing. */
	send_chat(alice, "bob@example.com", "a1");
	harness_run();
	struct xml_node *e = assert_bounced(alice, "a1", "not-acceptable");
	struct xml_node *err = xml_child(e, "error", NULL);
	assert_non_null(xml_child(err, "blocked", "urn:xmpp:blocking:errors"));
	assert_int_equal(fake_count(bob), 0);

	/* Others are not affected. */
	struct fake_session *carol = harness_login("carol", "home");
	harness_available(carol, 0);
	fake_clear(alice);
	fake_clear(carol);
	send_chat(carol, "alice@example.com", "c1");
	send_chat(alice, "carol@example.com", "a2");
	harness_run();
	assert_got_message(alice, "c1");
	assert_got_message(carol, "a2");

	/* Unblocked: bob's messages come through again. */
	fake_clear(alice);
	harness_send(alice, "<iq type='set' id='ublk'><unblock xmlns='urn:xmpp:blocking'>"
	                    "<item jid='bob@example.com'/></unblock></iq>");
	harness_run();
	fake_clear(alice);
	send_chat(bob, "alice@example.com", "b3");
	harness_run();
	assert_got_message(alice, "b3");
	assert_int_equal(fake_count(bob), 0);
}

/* A blocked JID's message to a user with no session is not stored. */
static void test_block_offline(void **state)
{
	(void)state;
	harness_block("alice", "bob@example.com");
	struct fake_session *bob = harness_login("bob", "home");
	struct fake_session *carol = harness_login("carol", "home");
	send_chat(bob, "alice@example.com", "b1");
	send_chat(carol, "alice@example.com", "c1");
	harness_run();
	assert_bounced(bob, "b1", "service-unavailable");
	assert_int_equal(fake_count(carol), 0);
	assert_int_equal(harness_offline_count("alice"), 1);
}

/* A domain in the block list covers every JID of it. */
static void test_block_domain(void **state)
{
	(void)state;
	harness_block("alice", "example.net");
	struct fake_session *alice = harness_login("alice", "desk");
	harness_run();
	harness_available(alice, 0);
	fake_clear(alice);
	send_chat(alice, "mallory@example.net", "a1");
	harness_run();
	assert_bounced(alice, "a1", "not-acceptable");
}

/* A case with its own host: started by setup, stopped after it. */
#define CASE(test, setup) cmocka_unit_test_setup_teardown(test, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		CASE(test_default_list_live, setup),
		CASE(test_default_list_offline, setup),
		CASE(test_default_list_by_subscription_offline, setup),
		CASE(test_default_list_set_by_iq, setup),
		CASE(test_default_list_outbound, setup),
		CASE(test_active_list_overrides_default, setup),
		CASE(test_block_both_ways, setup),
		CASE(test_block_offline, setup),
		CASE(test_block_domain, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
