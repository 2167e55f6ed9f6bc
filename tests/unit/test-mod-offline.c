/*
 * Unit tests: offline messages (mod_offline) on the memory store, through
 * the module harness.  Messages to a user with no session are stored and
 * delivered oldest first, with <delay/>, at the first available presence
 * with a non-negative priority, and deleted once written; the quota
 * bounces what is past it with resource-constraint; <no-store/>, chat
 * states alone and types other than normal and chat are not stored; the
 * sender's barrier is held until the message is stored.
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

static void accounts(void)
{
	harness_account("alice");
	harness_account("bob");
}

static int setup(void **state)
{
	(void)state;
	harness_start(NULL);
	accounts();
	return 0;
}

static int setup_quota(void **state)
{
	(void)state;
	harness_start("  offline: { max_per_user: 2 }\n");
	accounts();
	return 0;
}

static int setup_store_empty(void **state)
{
	(void)state;
	harness_start("  offline: { store_empty: true }\n");
	accounts();
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	harness_stop();
	return 0;
}

static void send_chat(struct fake_session *from, const char *id, const char *body)
{
	harness_send(from,
	             "<message to='alice@example.com' type='chat' id='%s'><body>%s</body>"
	             "</message>",
	             id, body);
}

/* The i-th stanza fs got is a message from bob with this body and a
 * <delay/> from the host. */
static void assert_delayed(const struct fake_session *fs, size_t i, const char *body)
{
	struct xml_node *m = fake_get(fs, i);
	assert_string_equal(m->name, "message");
	assert_string_equal(xml_attr(m, "from"), "bob@example.com/home");
	assert_string_equal(xml_child_text(m, "body", NULL), body);
	struct xml_node *d = xml_child(m, "delay", NS_DELAY);
	if (d == NULL)
		fail_msg("message %zu (%s) has no <delay/>", i, body);
	assert_string_equal(xml_attr(d, "from"), HARNESS_HOST);
	const char *stamp = xml_attr(d, "stamp");
	assert_non_null(stamp);
	assert_int_equal(strlen(stamp), 20); /* 2026-01-02T03:04:05Z */
	assert_int_equal(stamp[19], 'Z');
}

struct want_count {
	const struct fake_session *fs;
	size_t n;
};

static bool has_count(void *ctx)
{
	struct want_count *w = ctx;
	return fake_count(w->fs) >= w->n;
}

/* ---- storing and delivering ------------------------------------------------------------- */

static void test_stored_then_delivered_in_order(void **state)
{
	(void)state;
	struct fake_session *bob = harness_login("bob", "home");
	send_chat(bob, "m1", "one");
	send_chat(bob, "m2", "two");
	send_chat(bob, "m3", "three");
	harness_run();
	assert_int_equal(fake_count(bob), 0); /* no bounce */
	assert_int_equal(harness_offline_count("alice"), 3);

	struct fake_session *alice = harness_login("alice", "desk");
	harness_run();
	assert_int_equal(fake_count(alice), 0); /* bound, but not available yet */
	harness_available(alice, 0);
	assert_int_equal(fake_count_named(alice, "message"), 3);
	size_t first = 0;
	while (strcmp(fake_get(alice, first)->name, "message") != 0)
		first++;
	assert_delayed(alice, first, "one");
	assert_delayed(alice, first + 1, "two");
	assert_delayed(alice, first + 2, "three");
	/* Written (the fake session writes everything at once): deleted. */
	assert_int_equal(harness_offline_count("alice"), 0);

	/* Another resource becoming available gets nothing more. */
	struct fake_session *phone = harness_login("alice", "phone");
	harness_available(phone, 0);
	assert_int_equal(fake_count_named(phone, "message"), 0);
}

static void test_negative_priority_waits(void **state)
{
	(void)state;
	struct fake_session *bob = harness_login("bob", "home");
	send_chat(bob, "m1", "one");
	send_chat(bob, "m2", "two");
	harness_run();
	struct fake_session *alice = harness_login("alice", "desk");
	harness_available(alice, -1);
	assert_int_equal(fake_count_named(alice, "message"), 0);
	assert_int_equal(harness_offline_count("alice"), 2);
	/* A message sent now still goes offline: nobody takes it (priority -1). */
	send_chat(bob, "m3", "three");
	harness_run();
	assert_int_equal(fake_count_named(alice, "message"), 0);
	assert_int_equal(harness_offline_count("alice"), 3);

	harness_available(alice, 5);
	assert_int_equal(fake_count_named(alice, "message"), 3);
	assert_delayed(alice, 0, "one");
	assert_delayed(alice, 1, "two");
	assert_delayed(alice, 2, "three");
	assert_int_equal(harness_offline_count("alice"), 0);
	assert_int_equal(fake_count(bob), 0);
}

/* Stored messages are deleted only once the session has written them; a
 * session that ends first leaves them for the next one. */
static void test_deleted_once_written(void **state)
{
	(void)state;
	struct fake_session *bob = harness_login("bob", "home");
	send_chat(bob, "m1", "one");
	send_chat(bob, "m2", "two");
	harness_run();

	struct fake_session *alice = harness_login("alice", "desk");
	alice->hold_writes = true;
	harness_send(alice, "<presence/>");
	struct want_count w = { alice, 2 };
	harness_run_until(has_count, &w);
	assert_int_equal(fake_count_named(alice, "message"), 2);
	/* Queued, not written: still stored. */
	assert_int_equal(harness_offline_count("alice"), 2);
	/* The stream ends before writing them. */
	harness_logout(&alice);
	harness_run();
	assert_int_equal(harness_offline_count("alice"), 2);

	/* The next session gets them again; once it wrote them they go. */
	alice = harness_login("alice", "desk");
	alice->hold_writes = true;
	harness_send(alice, "<presence/>");
	harness_run_until(has_count, &(struct want_count){ alice, 2 });
	assert_delayed(alice, 0, "one");
	assert_delayed(alice, 1, "two");
	assert_int_equal(harness_offline_count("alice"), 2);
	alice->written = alice->queued;
	harness_run();
	assert_int_equal(harness_offline_count("alice"), 0);
}

/* Two resources available in the same turn: the messages go to one of
 * them, once. */
static void test_one_fetch_per_user(void **state)
{
	(void)state;
	struct fake_session *bob = harness_login("bob", "home");
	send_chat(bob, "m1", "one");
	send_chat(bob, "m2", "two");
	harness_run();
	struct fake_session *desk = harness_login("alice", "desk");
	struct fake_session *phone = harness_login("alice", "phone");
	harness_send(desk, "<presence/>");
	harness_send(phone, "<presence/>");
	harness_run();
	size_t nd = fake_count_named(desk, "message"), np = fake_count_named(phone, "message");
	assert_int_equal(nd + np, 2);
	assert_true(nd == 0 || np == 0);
	struct fake_session *got = nd > 0 ? desk : phone;
	size_t first = 0;
	while (strcmp(fake_get(got, first)->name, "message") != 0)
		first++;
	assert_delayed(got, first, "one");
	assert_delayed(got, first + 1, "two");
	assert_int_equal(harness_offline_count("alice"), 0);
}

/* A presence that comes while a message is being stored: the fetch waits
 * for the store, so the message is delivered now, not at the next login. */
static void test_fetch_waits_for_store(void **state)
{
	(void)state;
	struct fake_session *bob = harness_login("bob", "home");
	struct fake_session *alice = harness_login("alice", "desk");
	send_chat(bob, "m1", "one");        /* alice is not available: stored */
	harness_send(alice, "<presence/>"); /* before the store has answered */
	harness_run();
	assert_int_equal(fake_count_named(alice, "message"), 1);
	assert_delayed(alice, 0, "one");
	assert_int_equal(harness_offline_count("alice"), 0);
	assert_int_equal(fake_count(bob), 0);
}

/* The sender's later answers wait until the message is stored (the
 * barrier of its stream is held meanwhile). */
static void test_sender_barrier_held_until_stored(void **state)
{
	(void)state;
	struct fake_session *bob = harness_login("bob", "home");
	send_chat(bob, "m1", "one");
	assert_true(barrier_busy(bob->barrier));
	harness_run();
	assert_false(barrier_busy(bob->barrier));
	assert_int_equal(harness_offline_count("alice"), 1);
}

/* ---- what is not stored ------------------------------------------------------------------ */

static void test_quota_bounces(void **state)
{
	(void)state;
	struct fake_session *bob = harness_login("bob", "home");
	send_chat(bob, "m1", "one");
	send_chat(bob, "m2", "two");
	send_chat(bob, "m3", "three");
	harness_run();
	assert_int_equal(harness_offline_count("alice"), 2);
	/* The one past the quota comes back to its sender. */
	assert_int_equal(fake_count(bob), 1);
	struct xml_node *e = fake_get(bob, 0);
	assert_string_equal(e->name, "message");
	assert_string_equal(xml_attr(e, "id"), "m3");
	assert_string_equal(xml_attr(e, "to"), "bob@example.com/home");
	const char *type = NULL;
	assert_string_equal(harness_error_condition(e, &type), "resource-constraint");
	assert_string_equal(type, "wait");
	/* The first two are the ones kept. */
	struct fake_session *alice = harness_login("alice", "desk");
	harness_available(alice, 0);
	assert_int_equal(fake_count_named(alice, "message"), 2);
	assert_delayed(alice, 0, "one");
	assert_delayed(alice, 1, "two");
	/* Delivered and deleted: room again. */
	harness_logout(&alice);
	fake_clear(bob);
	send_chat(bob, "m4", "four");
	harness_run();
	assert_int_equal(fake_count(bob), 0);
	assert_int_equal(harness_offline_count("alice"), 1);
}

static void test_no_store_hint(void **state)
{
	(void)state;
	struct fake_session *bob = harness_login("bob", "home");
	harness_send(bob, "<message to='alice@example.com' type='chat' id='ns'><body>x</body>"
	                  "<no-store xmlns='urn:xmpp:hints'/></message>");
	harness_run();
	assert_int_equal(harness_offline_count("alice"), 0);
	/* Nobody could take it: the sender hears so. */
	assert_int_equal(fake_count(bob), 1);
	assert_string_equal(xml_attr(fake_get(bob, 0), "id"), "ns");
	assert_string_equal(harness_error_condition(fake_get(bob, 0), NULL), "service-unavailable");
	/* The same message without the hint is stored. */
	fake_clear(bob);
	send_chat(bob, "m1", "x");
	harness_run();
	assert_int_equal(fake_count(bob), 0);
	assert_int_equal(harness_offline_count("alice"), 1);
}

static void test_chat_states_dropped(void **state)
{
	(void)state;
	struct fake_session *bob = harness_login("bob", "home");
	harness_send(bob, "<message to='alice@example.com' type='chat' id='cs'>"
	                  "<composing xmlns='http://jabber.org/protocol/chatstates'/></message>");
	harness_send(bob, "<message to='alice@example.com' type='chat' id='cs2'><thread>t1</thread>"
	                  "<paused xmlns='http://jabber.org/protocol/chatstates'/></message>");
	harness_run();
	assert_int_equal(harness_offline_count("alice"), 0);
	assert_int_equal(fake_count(bob), 0); /* dropped without a bounce */
	/* A chat state with a body is a message like any other. */
	harness_send(bob, "<message to='alice@example.com' type='chat' id='cs3'><body>hi</body>"
	                  "<active xmlns='http://jabber.org/protocol/chatstates'/></message>");
	harness_run();
	assert_int_equal(harness_offline_count("alice"), 1);
}

/* store_empty: chat states alone are kept too. */
static void test_chat_states_store_empty(void **state)
{
	(void)state;
	struct fake_session *bob = harness_login("bob", "home");
	harness_send(bob, "<message to='alice@example.com' type='chat' id='cs'>"
	                  "<composing xmlns='http://jabber.org/protocol/chatstates'/></message>");
	harness_run();
	assert_int_equal(harness_offline_count("alice"), 1);
	assert_int_equal(fake_count(bob), 0);
}

/* Only normal and chat messages are stored (RFC 6121 §8.5.2.1.1): a
 * headline for nobody is dropped silently, a groupchat message bounced. */
static void test_other_types_not_stored(void **state)
{
	(void)state;
	struct fake_session *bob = harness_login("bob", "home");
	harness_send(bob, "<message to='alice@example.com' type='headline' id='h'><body>news</body>"
	                  "</message>");
	harness_run();
	assert_int_equal(harness_offline_count("alice"), 0);
	assert_int_equal(fake_count(bob), 0);
	harness_send(bob, "<message to='alice@example.com' type='groupchat' id='g'><body>all</body>"
	                  "</message>");
	harness_run();
	assert_int_equal(harness_offline_count("alice"), 0);
	assert_int_equal(fake_count(bob), 1);
	assert_string_equal(harness_error_condition(fake_get(bob, 0), NULL), "service-unavailable");
	/* A normal message (no type) is. */
	fake_clear(bob);
	harness_send(bob, "<message to='alice@example.com' id='n'><body>note</body></message>");
	harness_run();
	assert_int_equal(fake_count(bob), 0);
	assert_int_equal(harness_offline_count("alice"), 1);
}

/* No such account: service-unavailable (RFC 6121 §8.5.1), nothing kept. */
static void test_no_account_bounced(void **state)
{
	(void)state;
	struct fake_session *bob = harness_login("bob", "home");
	harness_send(bob, "<message to='nobody@example.com' type='chat' id='nb'><body>x</body>"
	                  "</message>");
	harness_run();
	assert_int_equal(fake_count(bob), 1);
	assert_string_equal(harness_error_condition(fake_get(bob, 0), NULL), "service-unavailable");
	assert_int_equal(harness_offline_count("nobody"), 0);
}

/* A case with its own host: started by setup, stopped after it. */
#define CASE(test, setup) cmocka_unit_test_setup_teardown(test, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		CASE(test_stored_then_delivered_in_order, setup),
		CASE(test_negative_priority_waits, setup),
		CASE(test_deleted_once_written, setup),
		CASE(test_one_fetch_per_user, setup),
		CASE(test_fetch_waits_for_store, setup),
		CASE(test_sender_barrier_held_until_stored, setup),
		CASE(test_quota_bounces, setup_quota),
		CASE(test_no_store_hint, setup),
		CASE(test_chat_states_dropped, setup),
		CASE(test_chat_states_store_empty, setup_store_empty),
		CASE(test_other_types_not_stored, setup),
		CASE(test_no_account_bounced, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
