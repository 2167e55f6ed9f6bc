/*
 * Unit tests: roster pushes (mod_roster, mod_presence) on the memory store,
 * through the module harness.  A roster set or removal by one resource is
 * pushed to every interested resource of the user and to nobody else, with
 * the item as stored; a subscription request and its approval update both
 * rosters and push both.
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
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	harness_stop();
	return 0;
}

/* The one roster push fs got (an iq set from the user's bare JID to the
 * session's full JID); its <item/>. */
static struct xml_node *push_item(const struct fake_session *fs, const char *user)
{
	struct xml_node *push = NULL;
	for (size_t i = 0; i < fake_count(fs); i++) {
		struct xml_node *el = fake_get(fs, i);
		if (strcmp(el->name, "iq") == 0 && strcmp(xml_attr(el, "type"), "set") == 0) {
			if (push != NULL)
				fail_msg("more than one push");
			push = el;
		}
	}
	if (push == NULL)
		fail_msg("no roster push");
	char *bare = xasprintf("%s@" HARNESS_HOST, user);
	assert_string_equal(xml_attr(push, "from"), bare);
	free(bare);
	char *full = jid_to_string(&fs->s.jid);
	assert_string_equal(xml_attr(push, "to"), full);
	free(full);
	struct xml_node *q = xml_child(push, "query", NS_ROSTER);
	assert_non_null(q);
	assert_non_null(xml_attr(q, "ver"));
	assert_int_equal(xml_element_count(q), 1);
	struct xml_node *item = xml_child(q, "item", NS_ROSTER);
	assert_non_null(item);
	return item;
}

/* The <query/> a pushed item is in. */
static struct xml_node *query_of(struct xml_node *item)
{
	assert_non_null(item->parent);
	return item->parent;
}

static void assert_no_push(const struct fake_session *fs)
{
	for (size_t i = 0; i < fake_count(fs); i++) {
		struct xml_node *el = fake_get(fs, i);
		if (strcmp(el->name, "iq") == 0 && strcmp(xml_attr(el, "type"), "set") == 0 &&
		    xml_child(el, "query", NS_ROSTER) != NULL)
			fail_msg("an unexpected roster push to %s", fs->s.jid.resource);
	}
}

/* The iq result with id for fs, exactly one. */
static void assert_result(const struct fake_session *fs, const char *id)
{
	struct xml_node *r = fake_find(fs, "iq", "id", id);
	if (r == NULL)
		fail_msg("no answer to %s", id);
	assert_string_equal(xml_attr(r, "type"), "result");
}

/* ---- set and remove -------------------------------------------------------------- */

static void test_set_pushed_to_interested(void **state)
{
	(void)state;
	struct fake_session *desk = harness_login("alice", "desk");
	struct fake_session *phone = harness_login("alice", "phone");
	struct fake_session *tv = harness_login("alice", "tv"); /* never asks for the roster */
	struct fake_session *bob = harness_login("bob", "home");
	harness_roster_get(desk);
	harness_roster_get(phone);
	harness_roster_get(bob);

	harness_send(desk, "<iq type='set' id='s1'><query xmlns='jabber:iq:roster'>"
	                   "<item jid='carol@example.org' name='Carol'><group>Friends</group>"
	                   "<group>Work</group></item></query></iq>");
	harness_run();

	assert_result(desk, "s1");
	for (int k = 0; k < 2; k++) {
		struct fake_session *fs = k == 0 ? desk : phone;
		struct xml_node *it = push_item(fs, "alice");
		assert_string_equal(xml_attr(it, "jid"), "carol@example.org");
		assert_string_equal(xml_attr(it, "name"), "Carol");
		assert_string_equal(xml_attr(it, "subscription"), "none");
		assert_null(xml_attr(it, "ask"));
		struct xml_node *g = xml_child(it, "group", NS_ROSTER);
		assert_non_null(g);
		assert_string_equal(xml_text(g), "Friends");
		g = xml_next(g, "group", NS_ROSTER);
		assert_non_null(g);
		assert_string_equal(xml_text(g), "Work");
		assert_null(xml_next(g, "group", NS_ROSTER));
	}
	/* The desk got the answer and the push, the phone the push only. */
	assert_int_equal(fake_count(desk), 2);
	assert_int_equal(fake_count(phone), 1);
	assert_int_equal(fake_count(tv), 0);
	assert_int_equal(fake_count(bob), 0);

	struct roster_item it;
	assert_true(harness_roster_item("alice", "carol@example.org", &it));
	assert_string_equal(it.name, "Carol");
	assert_int_equal(it.subscription, SUB_NONE);
	assert_int_equal(it.groups.count, 2);
	roster_item_clear(&it);
	assert_false(harness_roster_item("bob", "carol@example.org", &it));
}

/* Each change is pushed with a newer version, and the version of the last
 * push is the roster's: a client that has it is up to date. */
static void test_push_versions(void **state)
{
	(void)state;
	struct fake_session *desk = harness_login("alice", "desk");
	harness_roster_get(desk);
	harness_send(desk, "<iq type='set' id='s1'><query xmlns='jabber:iq:roster'>"
	                   "<item jid='carol@example.org'/></query></iq>");
	harness_run();
	char *v1 = xstrdup(xml_attr(query_of(push_item(desk, "alice")), "ver"));
	fake_clear(desk);
	harness_send(desk, "<iq type='set' id='s2'><query xmlns='jabber:iq:roster'>"
	                   "<item jid='carol@example.org' name='C'/></query></iq>");
	harness_run();
	struct xml_node *it = push_item(desk, "alice");
	assert_string_equal(xml_attr(it, "name"), "C");
	char *v2 = xstrdup(xml_attr(query_of(it), "ver"));
	assert_string_not_equal(v1, v2);

	/* With the last push's version: nothing to send (RFC 6121 §2.6.3). */
	fake_clear(desk);
	harness_send(desk, "<iq type='get' id='g2'><query xmlns='jabber:iq:roster' ver='%s'/></iq>", v2);
	harness_run();
	struct xml_node *r = fake_find(desk, "iq", "id", "g2");
	assert_non_null(r);
	assert_string_equal(xml_attr(r, "type"), "result");
	assert_null(xml_first_element(r));
	/* With the one before: the roster, with the last version. */
	harness_send(desk, "<iq type='get' id='g1'><query xmlns='jabber:iq:roster' ver='%s'/></iq>", v1);
	harness_run();
	r = fake_find(desk, "iq", "id", "g1");
	assert_non_null(r);
	struct xml_node *q = xml_child(r, "query", NS_ROSTER);
	assert_non_null(q);
	assert_string_equal(xml_attr(q, "ver"), v2);
	assert_non_null(xml_child(q, "item", NS_ROSTER));
	free(v1);
	free(v2);
}

static void test_remove_pushed(void **state)
{
	(void)state;
	struct fake_session *desk = harness_login("alice", "desk");
	struct fake_session *phone = harness_login("alice", "phone");
	struct fake_session *tv = harness_login("alice", "tv");
	harness_roster_get(desk);
	harness_roster_get(phone);
	harness_send(desk, "<iq type='set' id='s1'><query xmlns='jabber:iq:roster'>"
	                   "<item jid='carol@example.org' name='Carol'><group>Friends</group>"
	                   "</item></query></iq>");
	harness_run();
	fake_clear(desk);
	fake_clear(phone);

	harness_send(phone, "<iq type='set' id='r1'><query xmlns='jabber:iq:roster'>"
	                    "<item jid='carol@example.org' subscription='remove'/></query></iq>");
	harness_run();
	assert_result(phone, "r1");
	for (int k = 0; k < 2; k++) {
		struct fake_session *fs = k == 0 ? desk : phone;
		struct xml_node *it = push_item(fs, "alice");
		assert_string_equal(xml_attr(it, "jid"), "carol@example.org");
		assert_string_equal(xml_attr(it, "subscription"), "remove");
		assert_null(xml_attr(it, "name"));
		assert_null(xml_child(it, "group", NS_ROSTER));
	}
	assert_int_equal(fake_count(tv), 0);
	struct roster_item it;
	assert_false(harness_roster_item("alice", "carol@example.org", &it));

	/* Removing what is not there: item-not-found, and no push. */
	fake_clear(desk);
	fake_clear(phone);
	harness_send(phone, "<iq type='set' id='r2'><query xmlns='jabber:iq:roster'>"
	                    "<item jid='carol@example.org' subscription='remove'/></query></iq>");
	harness_run();
	struct xml_node *r = fake_find(phone, "iq", "id", "r2");
	assert_non_null(r);
	assert_string_equal(harness_error_condition(r, NULL), "item-not-found");
	assert_no_push(phone);
	assert_no_push(desk);
}

/* ---- subscriptions ----------------------------------------------------------------- */

static const char *sub_of(const struct xml_node *item)
{
	return xml_attr(item, "subscription");
}

static void test_subscription_approval(void **state)
{
	(void)state;
	struct fake_session *alice = harness_login("alice", "desk");
	struct fake_session *alice2 = harness_login("alice", "phone");
	struct fake_session *bob = harness_login("bob", "home");
	harness_roster_get(alice);
	harness_roster_get(alice2);
	harness_roster_get(bob);
	harness_available(alice, 1);
	harness_available(alice2, 1);
	harness_available(bob, 1);
	fake_clear(alice);
	fake_clear(alice2);
	fake_clear(bob);

	/* alice asks: her roster gets bob with ask='subscribe' (pushed to both
	 * of her resources); bob gets the request from her bare JID and no
	 * push (a pending inbound request is not shown). */
	harness_send(alice, "<presence to='bob@example.com' type='subscribe'/>");
	harness_run();
	for (int k = 0; k < 2; k++) {
		struct xml_node *it = push_item(k == 0 ? alice : alice2, "alice");
		assert_string_equal(xml_attr(it, "jid"), "bob@example.com");
		assert_string_equal(sub_of(it), "none");
		assert_string_equal(xml_attr(it, "ask"), "subscribe");
	}
	struct xml_node *req = fake_find(bob, "presence", "type", "subscribe");
	assert_non_null(req);
	assert_string_equal(xml_attr(req, "from"), "alice@example.com");
	assert_no_push(bob);
	struct roster_item it;
	assert_true(harness_roster_item("alice", "bob@example.com", &it));
	assert_int_equal(it.subscription, SUB_NONE);
	assert_true(it.ask_out);
	roster_item_clear(&it);
	assert_true(harness_roster_item("bob", "alice@example.com", &it));
	assert_true(it.ask_in);
	roster_item_clear(&it);
	fake_clear(alice);
	fake_clear(alice2);
	fake_clear(bob);

	/* bob approves: both rosters change and both are pushed. */
	harness_send(bob, "<presence to='alice@example.com' type='subscribed'/>");
	harness_run();
	struct xml_node *bi = push_item(bob, "bob");
	assert_string_equal(xml_attr(bi, "jid"), "alice@example.com");
	assert_string_equal(sub_of(bi), "from");
	assert_null(xml_attr(bi, "ask"));
	for (int k = 0; k < 2; k++) {
		struct fake_session *fs = k == 0 ? alice : alice2;
		struct xml_node *ai = push_item(fs, "alice");
		assert_string_equal(xml_attr(ai, "jid"), "bob@example.com");
		assert_string_equal(sub_of(ai), "to");
		assert_null(xml_attr(ai, "ask"));
		/* The approval itself, from bob's bare JID, and bob's presence. */
		struct xml_node *ok = fake_find(fs, "presence", "type", "subscribed");
		assert_non_null(ok);
		assert_string_equal(xml_attr(ok, "from"), "bob@example.com");
		struct xml_node *avail = fake_find(fs, "presence", "from", "bob@example.com/home");
		assert_non_null(avail);
		assert_null(xml_attr(avail, "type"));
	}
	assert_true(harness_roster_item("alice", "bob@example.com", &it));
	assert_int_equal(it.subscription, SUB_TO);
	assert_false(it.ask_out);
	roster_item_clear(&it);
	assert_true(harness_roster_item("bob", "alice@example.com", &it));
	assert_int_equal(it.subscription, SUB_FROM);
	assert_false(it.ask_in);
	roster_item_clear(&it);
}

/* Make alice and bob subscribed to each other, through presence. */
static void subscribe_both(struct fake_session *alice, struct fake_session *bob)
{
	harness_send(alice, "<presence to='bob@example.com' type='subscribe'/>");
	harness_run();
	harness_send(bob, "<presence to='alice@example.com' type='subscribed'/>");
	harness_run();
	harness_send(bob, "<presence to='alice@example.com' type='subscribe'/>");
	harness_run();
	harness_send(alice, "<presence to='bob@example.com' type='subscribed'/>");
	harness_run();
	struct roster_item it;
	assert_true(harness_roster_item("alice", "bob@example.com", &it));
	assert_int_equal(it.subscription, SUB_BOTH);
	roster_item_clear(&it);
	assert_true(harness_roster_item("bob", "alice@example.com", &it));
	assert_int_equal(it.subscription, SUB_BOTH);
	roster_item_clear(&it);
}

/* Removing a contact ends the subscriptions both ways (RFC 6121 §2.5.2):
 * the contact's roster changes too, and is pushed. */
static void test_remove_cancels_subscriptions(void **state)
{
	(void)state;
	struct fake_session *alice = harness_login("alice", "desk");
	struct fake_session *bob = harness_login("bob", "home");
	harness_roster_get(alice);
	harness_roster_get(bob);
	harness_available(alice, 0);
	harness_available(bob, 0);
	subscribe_both(alice, bob);
	fake_clear(alice);
	fake_clear(bob);

	harness_send(alice, "<iq type='set' id='r1'><query xmlns='jabber:iq:roster'>"
	                    "<item jid='bob@example.com' subscription='remove'/></query></iq>");
	harness_run();
	assert_result(alice, "r1");
	assert_string_equal(sub_of(push_item(alice, "alice")), "remove");
	struct roster_item it;
	assert_false(harness_roster_item("alice", "bob@example.com", &it));

	/* bob hears both cancels from alice's bare JID, sees her go
	 * unavailable, and his roster says none (pushed after each change). */
	struct xml_node *p = fake_find(bob, "presence", "type", "unsubscribe");
	assert_non_null(p);
	assert_string_equal(xml_attr(p, "from"), "alice@example.com");
	p = fake_find(bob, "presence", "type", "unsubscribed");
	assert_non_null(p);
	assert_string_equal(xml_attr(p, "from"), "alice@example.com");
	p = fake_find(bob, "presence", "from", "alice@example.com/desk");
	assert_non_null(p);
	assert_string_equal(xml_attr(p, "type"), "unavailable");
	const char *last = NULL;
	for (size_t i = 0; i < fake_count(bob); i++) {
		struct xml_node *el = fake_get(bob, i);
		struct xml_node *q = xml_child(el, "query", NS_ROSTER);
		if (strcmp(el->name, "iq") == 0 && q != NULL)
			last = sub_of(xml_child(q, "item", NS_ROSTER));
	}
	assert_non_null(last);
	assert_string_equal(last, "none");
	assert_true(harness_roster_item("bob", "alice@example.com", &it));
	assert_int_equal(it.subscription, SUB_NONE);
	assert_false(it.ask_out);
	assert_false(it.ask_in);
	roster_item_clear(&it);
}

/* A request to a user with no session waits in the roster and reaches
 * the first resource that becomes available; approving it then works as
 * above. */
static void test_subscription_request_waits(void **state)
{
	(void)state;
	struct fake_session *alice = harness_login("alice", "desk");
	harness_roster_get(alice);
	harness_available(alice, 0);
	fake_clear(alice);
	harness_send(alice, "<presence to='bob@example.com' type='subscribe'/>");
	harness_run();
	struct roster_item it;
	assert_true(harness_roster_item("bob", "alice@example.com", &it));
	assert_true(it.ask_in);
	roster_item_clear(&it);

	struct fake_session *bob = harness_login("bob", "home");
	harness_roster_get(bob);
	assert_null(fake_find(bob, "presence", "type", "subscribe"));
	harness_available(bob, 0);
	struct xml_node *req = fake_find(bob, "presence", "type", "subscribe");
	assert_non_null(req);
	assert_string_equal(xml_attr(req, "from"), "alice@example.com");
	fake_clear(bob);
	fake_clear(alice);

	harness_send(bob, "<presence to='alice@example.com' type='subscribed'/>");
	harness_run();
	assert_string_equal(sub_of(push_item(bob, "bob")), "from");
	assert_string_equal(sub_of(push_item(alice, "alice")), "to");
}

/* A case with its own host: started by setup, stopped after it. */
#define CASE(test, setup) cmocka_unit_test_setup_teardown(test, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		CASE(test_set_pushed_to_interested, setup),
		CASE(test_push_versions, setup),
		CASE(test_remove_pushed, setup),
		CASE(test_subscription_approval, setup),
		CASE(test_remove_cancels_subscriptions, setup),
		CASE(test_subscription_request_waits, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
