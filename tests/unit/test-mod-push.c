/*
 * Unit tests: push notifications (mod_push) on the memory store, through
 * the module harness.  The app server is a fake session (app@example.com/srv)
 * that receives the publishes and answers them.  Covered: the push for a
 * message unseen by an inactive or a detached session (the hook's session
 * cases, which the integration tests cannot reach without stream
 * management and client state indication), which registrations a message
 * wakes (the device that enabled one, while it does not see its
 * messages), the summary form and the
 * registered publish-options, the count across pushes, the rate limit, an
 * answer taken from the user's bare JID, and a permanent error removing
 * the device while a temporary one keeps it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "module-harness.h"
#include "server/hooks.h"
#include "server/host.h"
#include "server/server.h"

#include <ev.h>

#define NS_PUSH "urn:xmpp:push:0"
#define NS_PUBSUB "http://jabber.org/protocol/pubsub"
#define APP "app@example.com/srv"

/* Run the loop until what is ready has run: the memory store answers at
 * once, while a push waiting for its answer keeps a timer running (so
 * harness_run would wait for its timeout). */
static void settle(void)
{
	for (int i = 0; i < 200; i++)
		ev_run(server.loop, EVRUN_NOWAIT);
}

static void start(const char *push_options)
{
	char *yaml = xasprintf("  push: { %s, timeout: 1s }\n", push_options);
	harness_start(yaml);
	free(yaml);
	harness_account("juliet");
	harness_account("app");
}

static int setup(void **state)
{
	(void)state;
	start("min_interval: 0");
	return 0;
}

static int setup_rate(void **state)
{
	(void)state;
	start("min_interval: 1s, include_body: true");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	harness_stop();
	return 0;
}

/* A session of juliet (resource) that registered a device at APP with the
 * <enable/> payload (its answer, iq id 'en', was a result). */
static struct fake_session *enabled_session(const char *resource, const char *enable)
{
	struct fake_session *fs = harness_login("juliet", resource);
	harness_send(fs, "<iq type='set' id='en'>%s</iq>", enable);
	settle();
	struct xml_node *r = fake_find(fs, "iq", "id", "en");
	assert_non_null(r);
	assert_string_equal(xml_attr(r, "type"), "result");
	fake_clear(fs);
	return fs;
}

/* juliet's phone, with a device registered at APP (node n1). */
static struct fake_session *enabled_phone(void)
{
	return enabled_session(
	        "phone", "<enable xmlns='" NS_PUSH "' jid='" APP "' node='n1'>"
	                 "<x xmlns='jabber:x:data' type='submit'>"
	                 "<field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options"
	                 "</value></field><field var='secret'><value>tok</value></field></x></enable>");
}

/* Run message_unseen for a message from romeo to juliet, seen by no one
 * on session s (NULL: stored offline). */
static void unseen(struct session *s, const char *body)
{
	struct jid from = { 0 }, to = { 0 };
	jid_set(&from, "romeo", "example.org", "balcony");
	jid_set(&to, "juliet", HARNESS_HOST, NULL);
	struct xml_node *m = xml_new("message", NS_CLIENT);
	xml_set_attr(m, "type", "chat");
	struct xml_node *b = xml_add_child(m, "body", NS_CLIENT);
	xml_add_text(b, body, strlen(body));
	struct hook_packet hp = { .from = &from, .to = &to, .stanza = m, .session = s };
	hook_run(harness_host(), HOOK_MESSAGE_UNSEEN, &hp);
	xml_unref(&m);
	jid_clear(&from);
	jid_clear(&to);
	settle();
}

/* The summary fields of a push iq: the value of var, or NULL. */
static const char *field(const struct xml_node *iq, const char *var)
{
	struct xml_node *x = xml_path(iq, "pubsub/publish/item/notification/x");
	assert_non_null(x);
	for (struct xml_node *f = xml_child(x, "field", NULL); f != NULL; f = xml_next(f, "field", NULL))
		if (strcmp(xml_attr(f, "var"), var) == 0)
			return xml_child_text(f, "value", NULL);
	return NULL;
}

static void test_push_for_inactive_session(void **state)
{
	(void)state;
	struct fake_session *app = harness_login("app", "srv");
	struct fake_session *phone = enabled_phone();
	phone->s.inactive = true;
	unseen(&phone->s, "hello");
	assert_int_equal(fake_count_named(app, "iq"), 1);
	struct xml_node *iq = fake_find(app, "iq", NULL, NULL);
	assert_string_equal(xml_attr(iq, "type"), "set");
	assert_string_equal(xml_attr(iq, "from"), "juliet@example.com");
	struct xml_node *publish = xml_path(iq, "pubsub/publish");
	assert_non_null(publish);
	assert_string_equal(publish->ns, NS_PUBSUB);
	assert_string_equal(xml_attr(publish, "node"), "n1");
	assert_string_equal(field(iq, "FORM_TYPE"), "urn:xmpp:push:summary");
	assert_string_equal(field(iq, "message-count"), "1");
	assert_string_equal(field(iq, "last-message-sender"), "romeo@example.org/balcony");
	assert_null(field(iq, "last-message-body"));
	struct xml_node *po = xml_path(iq, "pubsub/publish-options/x");
	assert_non_null(po);
	char *text = xml_to_string(po, NULL);
	assert_non_null(strstr(text, "<value>tok</value>"));
	free(text);
	/* the phone itself got nothing from push */
	assert_int_equal(fake_count(phone), 0);
}

static void test_count_and_detached(void **state)
{
	(void)state;
	struct fake_session *app = harness_login("app", "srv");
	struct fake_session *phone = enabled_phone();
	phone->s.detached = true;
	unseen(&phone->s, "one");
	unseen(&phone->s, "two");
	unseen(NULL, "three");
	assert_int_equal(fake_count_named(app, "iq"), 3);
	assert_string_equal(field(fake_get(app, 2), "message-count"), "3");
	/* a session of another device: the phone has still seen nothing */
	struct fake_session *desk = harness_login("juliet", "desk");
	settle();
	fake_clear(app);
	unseen(&phone->s, "four");
	assert_string_equal(field(fake_get(app, 0), "message-count"), "4");
	/* the phone is back (resumed): no push, and counting starts again */
	phone->s.detached = false;
	fake_clear(app);
	unseen(NULL, "five");
	assert_int_equal(fake_count_named(app, "iq"), 0);
	phone->s.detached = true;
	unseen(&phone->s, "six");
	assert_string_equal(field(fake_get(app, 0), "message-count"), "1");
	harness_logout(&desk);
}

/* A second device registered at APP (node n2) from juliet's desk. */
static struct fake_session *enabled_desk(void)
{
	return enabled_session("desk", "<enable xmlns='" NS_PUSH "' jid='" APP "' node='n2'/>");
}

static const char *pushed_node(struct fake_session *app, size_t i)
{
	return xml_attr(xml_path(fake_get(app, i), "pubsub/publish"), "node");
}

/* Each registration wakes the device that enabled it, and only while that
 * device does not see its messages. */
static void test_push_per_device(void **state)
{
	(void)state;
	struct fake_session *app = harness_login("app", "srv");
	struct fake_session *phone = enabled_phone();
	struct fake_session *desk = enabled_desk();
	/* both online and active: nobody is pushed, even for a message stored
	 * offline */
	unseen(NULL, "zero");
	assert_int_equal(fake_count_named(app, "iq"), 0);
	/* the phone is detached, the desk active: the phone only */
	phone->s.detached = true;
	unseen(&phone->s, "one");
	assert_int_equal(fake_count_named(app, "iq"), 1);
	assert_string_equal(pushed_node(app, 0), "n1");
	unseen(NULL, "two");
	assert_int_equal(fake_count_named(app, "iq"), 2);
	assert_string_equal(pushed_node(app, 1), "n1");
	/* the desk goes inactive: a message it does not see wakes the desk
	 * only (the phone's session did not get it) */
	desk->s.inactive = true;
	fake_clear(app);
	unseen(&desk->s, "three");
	assert_int_equal(fake_count_named(app, "iq"), 1);
	assert_string_equal(pushed_node(app, 0), "n2");
	assert_string_equal(field(fake_get(app, 0), "message-count"), "1");
	/* stored offline: every device that does not see it */
	fake_clear(app);
	unseen(NULL, "four");
	assert_int_equal(fake_count_named(app, "iq"), 2);
	harness_logout(&desk);
}

/* app answers the i-th push it got with an error of condition cond (type
 * etype) addressed to juliet's bare JID. */
static void answer_error(struct fake_session *app, size_t i, const char *etype, const char *cond)
{
	const char *id = xml_attr(fake_get(app, i), "id");
	harness_send(app,
	             "<iq type='error' to='juliet@example.com' id='%s'><error type='%s'><%s "
	             "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
	             id, etype, cond);
	settle();
}

static void test_errors(void **state)
{
	(void)state;
	struct fake_session *app = harness_login("app", "srv");
	struct fake_session *phone = enabled_phone();
	phone->s.detached = true;
	unseen(NULL, "a");
	assert_int_equal(fake_count_named(app, "iq"), 1);
	/* temporary: the device stays */
	answer_error(app, 0, "wait", "resource-constraint");
	assert_int_equal(fake_count(phone), 0); /* the answer was taken, not delivered */
	fake_clear(app);
	unseen(NULL, "b");
	assert_int_equal(fake_count_named(app, "iq"), 1);
	/* permanent: removed */
	answer_error(app, 0, "cancel", "item-not-found");
	fake_clear(app);
	unseen(NULL, "c");
	assert_int_equal(fake_count_named(app, "iq"), 0);
	/* and gone from the store: a new enable is the only device */
	harness_send(phone,
	             "<iq type='set' id='en2'><enable xmlns='" NS_PUSH "' jid='" APP "' node='n2'/></iq>");
	settle();
	unseen(NULL, "d");
	assert_int_equal(fake_count_named(app, "iq"), 1);
	assert_string_equal(xml_attr(xml_path(fake_get(app, 0), "pubsub/publish"), "node"), "n2");
}

static void test_answer_from_someone_else_ignored(void **state)
{
	(void)state;
	struct fake_session *app = harness_login("app", "srv");
	struct fake_session *mallory = harness_login("app", "other");
	enabled_phone()->s.detached = true;
	unseen(NULL, "a");
	const char *id = xml_attr(fake_get(app, 0), "id");
	harness_send(mallory,
	             "<iq type='error' to='juliet@example.com' id='%s'><error type='cancel'><item-not-found "
	             "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
	             id);
	settle();
	fake_clear(app);
	unseen(NULL, "b");
	assert_int_equal(fake_count_named(app, "iq"), 1); /* still registered */
}

struct want_iqs {
	const struct fake_session *fs;
	size_t n;
	double until; /* ev_now deadline, or 0 */
};

static bool iqs_or_time(void *ctx)
{
	struct want_iqs *w = ctx;
	return fake_count_named(w->fs, "iq") >= w->n || (w->until > 0 && ev_now(server.loop) >= w->until);
}

static void test_rate_limit_and_body(void **state)
{
	(void)state;
	struct fake_session *app = harness_login("app", "srv");
	enabled_phone()->s.detached = true;
	unseen(NULL, "first");
	unseen(NULL, "second");
	unseen(NULL, "third");
	assert_int_equal(fake_count_named(app, "iq"), 1);
	assert_string_equal(field(fake_get(app, 0), "last-message-body"), "first");
	assert_string_equal(field(fake_get(app, 0), "message-count"), "1");
	/* the owed push, when min_interval is over: the count and the last one */
	struct want_iqs w = { app, 2, 0 };
	harness_run_until(iqs_or_time, &w);
	assert_string_equal(field(fake_get(app, 1), "message-count"), "3");
	assert_string_equal(field(fake_get(app, 1), "last-message-body"), "third");
}

static void tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
}

/* Run the loop for up to 1.5 s or until app got n iqs. */
static void run_for_iqs(struct fake_session *app, size_t n)
{
	/* a tick keeps the loop turning while nothing else is due */
	ev_timer tick;
	ev_timer_init(&tick, tick_cb, 0.1, 0.1);
	ev_timer_start(server.loop, &tick);
	struct want_iqs w = { app, n, ev_now(server.loop) + 1.5 };
	harness_run_until(iqs_or_time, &w);
	ev_timer_stop(server.loop, &tick);
}

static void test_owed_push_dropped_when_back(void **state)
{
	(void)state;
	struct fake_session *app = harness_login("app", "srv");
	struct fake_session *phone = enabled_phone();
	phone->s.detached = true;
	unseen(NULL, "first");
	unseen(NULL, "second");
	assert_int_equal(fake_count_named(app, "iq"), 1);
	/* another device comes: the phone still owes its push */
	struct fake_session *desk = harness_login("juliet", "desk");
	settle();
	run_for_iqs(app, 2);
	assert_int_equal(fake_count_named(app, "iq"), 2);
	assert_string_equal(field(fake_get(app, 1), "last-message-body"), "second");
	/* the phone itself is back (resumed) before the owed push: dropped */
	unseen(NULL, "third");
	phone->s.detached = false;
	run_for_iqs(app, 3);
	assert_int_equal(fake_count_named(app, "iq"), 2);
	harness_logout(&desk);
}

static void written_cb(enum storage_result res, void *ctx)
{
	assert_int_equal(res, STORAGE_OK);
	*(bool *)ctx = true;
}

static bool flag_set(void *ctx)
{
	return *(bool *)ctx;
}

/* A registration written to the store behind the module's back (no
 * private_set hook). */
static void store_device_directly(const char *node)
{
	struct host *h = harness_host();
	char *data = xasprintf("<devices xmlns='urn:parley:push:0'><device jid='" APP "' node='%s' "
	                       "since='1'/></devices>",
	                       node);
	struct private_item item = { .ns = "urn:parley:push:0", .data = data };
	bool done = false;
	storage_private_set(h->storage, h->name, "juliet", &item, 1, written_cb, &done);
	harness_run_until(flag_set, &done);
	free(data);
}

static void test_cached_while_session(void **state)
{
	(void)state;
	struct fake_session *app = harness_login("app", "srv");
	struct fake_session *phone = harness_login("juliet", "phone");
	phone->s.inactive = true;
	unseen(&phone->s, "a"); /* read: no device, kept while the session is */
	store_device_directly("n9");
	unseen(&phone->s, "b");
	assert_int_equal(fake_count_named(app, "iq"), 0); /* not read again */
	harness_logout(&phone);
	settle();
	unseen(NULL, "c"); /* forgotten with the last session: read again */
	assert_int_equal(fake_count_named(app, "iq"), 1);
	assert_string_equal(xml_attr(xml_path(fake_get(app, 0), "pubsub/publish"), "node"), "n9");
}

#define CASE(test, setup) cmocka_unit_test_setup_teardown(test, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		CASE(test_push_for_inactive_session, setup),
		CASE(test_count_and_detached, setup),
		CASE(test_push_per_device, setup),
		CASE(test_errors, setup),
		CASE(test_answer_from_someone_else_ignored, setup),
		CASE(test_cached_while_session, setup),
		CASE(test_rate_limit_and_body, setup_rate),
		CASE(test_owed_push_dropped_when_back, setup_rate),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
