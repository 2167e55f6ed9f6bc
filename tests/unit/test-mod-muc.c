/*
 * Unit tests: the rooms of mod_muc on the memory store, through the module
 * harness.  A groupchat message reaches every occupant's every session
 * from the sender's room JID with its occupant id; a client that does not
 * read is removed with status 333 while the others go on; an occupant
 * whose session ended unseen leaves at the next broadcast; the message
 * rate answers a flooder with resource-constraint and nobody else; history
 * honours maxstanzas; a persistent room's affiliations reach the store and
 * come back when the service starts again; a removed account loses its
 * affiliations; an exit presence's status text reaches the others.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "module-harness.h"
#include "modules/muc/muc.h"
#include "server/host.h"
#include "server/module.h"

#define ROOM "room@conference.example.com"

static void accounts(void)
{
	harness_account("alice");
	harness_account("bob");
	harness_account("carol");
}

static int setup(void **state)
{
	(void)state;
	harness_start("  muc: { message_rate: 0, history_size: 5 }\n");
	accounts();
	return 0;
}

/* No directed-presence tracking: a session that ends does not tell the room. */
static int setup_no_presence(void **state)
{
	(void)state;
	harness_start("  presence: false\n  muc: { message_rate: 0 }\n");
	accounts();
	return 0;
}

static int setup_rate(void **state)
{
	(void)state;
	harness_start("  muc: { message_rate: 1, message_burst: 2 }\n");
	accounts();
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	harness_stop();
	return 0;
}

/* Join ROOM as nick; the first joiner accepts the instant room. */
static void join(struct fake_session *fs, const char *nick, bool first)
{
	harness_send(fs, "<presence to='" ROOM "/%s'><x xmlns='http://jabber.org/protocol/muc'/></presence>",
	             nick);
	harness_run();
	if (first) {
		harness_send(fs,
		             "<iq type='set' id='cfg' to='" ROOM "'><query xmlns='http://jabber.org/protocol/"
		             "muc#owner'><x xmlns='jabber:x:data' type='submit'/></query></iq>");
		harness_run();
		assert_non_null(fake_find(fs, "iq", "id", "cfg"));
		assert_string_equal(xml_attr(fake_find(fs, "iq", "id", "cfg"), "type"), "result");
	}
	fake_clear(fs);
}

static void say(struct fake_session *fs, const char *id, const char *body)
{
	harness_send(fs, "<message to='" ROOM "' type='groupchat' id='%s'><body>%s</body></message>", id,
	             body);
}

static struct muc_room *the_room(void)
{
	struct muc_service *svc = muc_service_find("conference.example.com");
	assert_non_null(svc);
	return muc_room_find(svc, "room");
}

static void test_groupchat_to_every_session(void **state)
{
	(void)state;
	struct fake_session *a = harness_login("alice", "a");
	struct fake_session *b1 = harness_login("bob", "one");
	struct fake_session *b2 = harness_login("bob", "two");
	join(a, "Alice", true);
	join(b1, "Bob", false);
	join(b2, "Bob", false); /* the same nick: a second session of one occupant */
	fake_clear(a);
	assert_int_equal(the_room()->noccupants, 2);
	say(a, "m1", "hello");
	harness_run();
	struct fake_session *all[] = { a, b1, b2 };
	for (size_t i = 0; i < 3; i++) {
		struct xml_node *m = fake_find(all[i], "message", "id", "m1");
		assert_non_null(m);
		assert_string_equal(xml_attr(m, "from"), ROOM "/Alice");
		assert_string_equal(xml_attr(m, "type"), "groupchat");
		assert_non_null(xml_child(m, "occupant-id", NS_OCCUPANT_ID));
	}
	/* The occupant id is the same in every copy and differs from Bob's. */
	const char *id = xml_attr(xml_child(fake_find(b1, "message", "id", "m1"), "occupant-id", NULL), "id");
	assert_string_equal(
	        xml_attr(xml_child(fake_find(b2, "message", "id", "m1"), "occupant-id", NULL), "id"), id);
	harness_logout(&a);
	harness_logout(&b1);
	harness_logout(&b2);
}

static void test_slow_reader_removed(void **state)
{
	(void)state;
	struct fake_session *a = harness_login("alice", "a");
	struct fake_session *b = harness_login("bob", "b");
	struct fake_session *c = harness_login("carol", "c");
	join(a, "Alice", true);
	join(b, "Bob", false);
	join(c, "Carol", false);
	fake_clear(a);
	fake_clear(b);
	/* Carol's client stops reading with over half a megabyte queued. */
	c->hold_writes = true;
	c->written = 0;
	c->queued = 600 * 1024;
	fake_clear(c);
	say(a, "m1", "one");
	harness_run();
	assert_non_null(fake_find(b, "message", "id", "m1"));
	assert_null(fake_find(c, "message", "id", "m1"));
	/* The others hear Carol left with 333. */
	struct xml_node *p = fake_find(b, "presence", "from", ROOM "/Carol");
	assert_non_null(p);
	assert_string_equal(xml_attr(p, "type"), "unavailable");
	struct xml_node *x = xml_child(p, "x", NS_MUC_USER);
	assert_non_null(x);
	assert_string_equal(xml_attr(xml_child(x, "status", NULL), "code"), "333");
	assert_int_equal(the_room()->noccupants, 2);
	/* The room goes on for the others. */
	fake_clear(b);
	say(a, "m2", "two");
	harness_run();
	assert_non_null(fake_find(b, "message", "id", "m2"));
	harness_logout(&a);
	harness_logout(&b);
	harness_logout(&c);
}

static void test_gone_session_leaves(void **state)
{
	(void)state;
	struct fake_session *a = harness_login("alice", "a");
	struct fake_session *b = harness_login("bob", "b");
	join(a, "Alice", true);
	join(b, "Bob", false);
	harness_logout(&b); /* no unavailable presence reaches the room */
	assert_int_equal(the_room()->noccupants, 2);
	fake_clear(a);
	say(a, "m1", "anyone?");
	harness_run();
	assert_int_equal(the_room()->noccupants, 1);
	struct xml_node *p = fake_find(a, "presence", "from", ROOM "/Bob");
	assert_non_null(p);
	assert_string_equal(xml_attr(p, "type"), "unavailable");
	harness_logout(&a);
}

static void test_flood_limited(void **state)
{
	(void)state;
	struct fake_session *a = harness_login("alice", "a");
	struct fake_session *b = harness_login("bob", "b");
	join(a, "Alice", true);
	join(b, "Bob", false);
	fake_clear(a);
	fake_clear(b);
	say(a, "m1", "1");
	say(a, "m2", "2");
	say(a, "m3", "3"); /* past the burst of 2 */
	say(b, "b1", "mine");
	harness_run();
	assert_non_null(fake_find(b, "message", "id", "m1"));
	assert_non_null(fake_find(b, "message", "id", "m2"));
	assert_null(fake_find(b, "message", "id", "m3"));
	struct xml_node *err = fake_find(a, "message", "id", "m3");
	assert_non_null(err);
	assert_string_equal(harness_error_condition(err, NULL), "resource-constraint");
	/* Bob is not limited by Alice's flood. */
	assert_non_null(fake_find(a, "message", "id", "b1"));
	harness_logout(&a);
	harness_logout(&b);
}

static void test_history_maxstanzas(void **state)
{
	(void)state;
	struct fake_session *a = harness_login("alice", "a");
	join(a, "Alice", true);
	char id[8];
	for (int i = 0; i < 7; i++) {
		snprintf(id, sizeof(id), "h%d", i);
		say(a, id, "past");
	}
	harness_run();
	struct fake_session *b = harness_login("bob", "b");
	harness_send(b, "<presence to='" ROOM "/Bob'><x xmlns='http://jabber.org/protocol/muc'>"
	                "<history maxstanzas='3'/></x></presence>");
	harness_run();
	/* history_size 5 keeps h2..h6; maxstanzas 3 sends h4..h6, with delay. */
	assert_null(fake_find(b, "message", "id", "h3"));
	for (int i = 4; i < 7; i++) {
		snprintf(id, sizeof(id), "h%d", i);
		struct xml_node *m = fake_find(b, "message", "id", id);
		assert_non_null(m);
		struct xml_node *d = xml_child(m, "delay", "urn:xmpp:delay");
		assert_non_null(d);
		assert_string_equal(xml_attr(d, "from"), ROOM);
	}
	harness_logout(&a);
	harness_logout(&b);
}

static void test_persistent_affiliations_stored(void **state)
{
	(void)state;
	struct fake_session *a = harness_login("alice", "a");
	harness_send(a,
	             "<presence to='" ROOM "/Alice'><x xmlns='http://jabber.org/protocol/muc'/></presence>");
	harness_run();
	harness_send(a, "<iq type='set' id='cfg' to='" ROOM
	                "'><query xmlns='http://jabber.org/protocol/muc#owner'>"
	                "<x xmlns='jabber:x:data' type='submit'><field var='muc#roomconfig_persistentroom'>"
	                "<value>1</value></field></x></query></iq>");
	harness_run();
	harness_send(a, "<iq type='set' id='aff' to='" ROOM
	                "'><query xmlns='http://jabber.org/protocol/muc#admin'>"
	                "<item jid='bob@example.com' affiliation='member'/></query></iq>");
	harness_run();
	assert_string_equal(xml_attr(fake_find(a, "iq", "id", "aff"), "type"), "result");
	harness_logout(&a);
	/* Stop the module and start it again: the room comes back from the store. */
	struct host *h = harness_host();
	modules_stop_host(h);
	assert_null(muc_service_find("conference.example.com"));
	char *err = NULL;
	assert_int_equal(modules_start_host(h, &err), 0);
	harness_run();
	struct muc_room *r = the_room();
	assert_non_null(r);
	assert_true(r->cfg.persistent);
	struct jid bob = { 0 };
	jid_set(&bob, "bob", "example.com", "x");
	assert_int_equal(muc_room_affiliation(r, &bob), MUC_AFF_MEMBER);
	jid_clear(&bob);
}

static void test_exit_status_passed_on(void **state)
{
	(void)state;
	struct fake_session *a = harness_login("alice", "a");
	struct fake_session *b = harness_login("bob", "b");
	join(a, "Alice", true);
	harness_send(b, "<presence to='" ROOM "/Bob'><x xmlns='http://jabber.org/protocol/muc'/>"
	                "<status>here</status></presence>");
	harness_run();
	fake_clear(a);
	harness_send(b,
	             "<presence to='" ROOM "/Bob' type='unavailable'><status>gone home</status></presence>");
	harness_run();
	struct xml_node *p = fake_find(a, "presence", "from", ROOM "/Bob");
	assert_non_null(p);
	assert_string_equal(xml_attr(p, "type"), "unavailable");
	assert_string_equal(xml_child_text(p, "status", NULL), "gone home");
	/* A kicked occupant's removal carries the reason, not its status. */
	harness_send(b, "<presence to='" ROOM "/Bob'><x xmlns='http://jabber.org/protocol/muc'/>"
	                "<status>back</status></presence>");
	harness_run();
	fake_clear(a);
	harness_send(a, "<iq type='set' id='k' to='" ROOM
	                "'><query xmlns='http://jabber.org/protocol/muc#admin'>"
	                "<item nick='Bob' role='none'><reason>out</reason></item></query></iq>");
	harness_run();
	p = fake_find(a, "presence", "from", ROOM "/Bob");
	assert_non_null(p);
	assert_null(xml_child(p, "status", NULL));
	harness_logout(&a);
	harness_logout(&b);
}

static void test_removed_account_loses_affiliation(void **state)
{
	(void)state;
	struct fake_session *a = harness_login("alice", "a");
	join(a, "Alice", true);
	harness_send(a, "<iq type='set' id='aff' to='" ROOM
	                "'><query xmlns='http://jabber.org/protocol/muc#admin'>"
	                "<item jid='bob@example.com' affiliation='member'/></query></iq>");
	harness_run();
	struct jid bob = { 0 };
	jid_set(&bob, "bob", "example.com", NULL);
	assert_int_equal(muc_room_affiliation(the_room(), &bob), MUC_AFF_MEMBER);
	struct hook_user hu = { .user = "bob" };
	hook_run(harness_host(), HOOK_REMOVE_USER, &hu);
	harness_run();
	assert_int_equal(muc_room_affiliation(the_room(), &bob), MUC_AFF_NONE);
	jid_clear(&bob);
	harness_logout(&a);
}

#define CASE(test, setup) cmocka_unit_test_setup_teardown(test, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		CASE(test_groupchat_to_every_session, setup),
		CASE(test_slow_reader_removed, setup),
		CASE(test_gone_session_leaves, setup_no_presence),
		CASE(test_flood_limited, setup_rate),
		CASE(test_history_maxstanzas, setup),
		CASE(test_persistent_affiliations_stored, setup),
		CASE(test_exit_status_passed_on, setup),
		CASE(test_removed_account_loses_affiliation, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
