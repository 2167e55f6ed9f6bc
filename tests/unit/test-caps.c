/*
 * Unit tests: entity capabilities.  The verification string and ver of
 * XEP-0115's own examples (§5.2, §5.3), in any order of the answer's
 * parts, and the answers it refuses; then mod_caps through the module
 * harness: an unknown ver is asked once and cached, a second session with
 * it is not asked, an answer that does not verify is not cached (the next
 * session is asked again, and a session waiting on the same ver is asked
 * in its place), timeouts, legacy caps, unavailable presence and the
 * cache's bound; and an iq_send the router answers at once.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "module-harness.h"
#include "modules/caps.h"
#include "modules/caps-ver.h"
#include "server/host.h"
#include "server/hooks.h"
#include "server/server.h"

#define NS_CAPS "http://jabber.org/protocol/caps"

/* ---- the verification string ---------------------------------------------------------- */

static struct xml_node *parse(const char *s)
{
	const struct xml_parser_limits lim = { .max_stanza = 65536, .max_depth = 16, .max_attrs = 16 };
	const char *err = NULL;
	struct xml_node *el = xml_parse_string(s, strlen(s), NULL, &lim, &err);
	if (el == NULL)
		fail_msg("%s", err);
	return el;
}

/* The ver (sha-1) of a disco#info query, or NULL when it is refused. */
static char *ver_of(const char *query_xml)
{
	struct xml_node *q = parse(query_xml);
	const char *err = NULL;
	char *s = caps_ver_string(q, &err);
	xml_unref(&q);
	if (s == NULL) {
		assert_non_null(err);
		return NULL;
	}
	char *ver = caps_ver_hash("sha-1", s);
	free(s);
	return ver;
}

#define SIMPLE_QUERY                                                                                  \
	"<query xmlns='http://jabber.org/protocol/disco#info' node='http://code.google.com/p/exodus#" \
	"QgayPKawpkPSDYmwT/WM94uAlu0='>"                                                              \
	"<identity category='client' name='Exodus 0.9.1' type='pc'/>"                                 \
	"<feature var='http://jabber.org/protocol/caps'/>"                                            \
	"<feature var='http://jabber.org/protocol/disco#info'/>"                                      \
	"<feature var='http://jabber.org/protocol/disco#items'/>"                                     \
	"<feature var='http://jabber.org/protocol/muc'/>"                                             \
	"</query>"
#define SIMPLE_VER "QgayPKawpkPSDYmwT/WM94uAlu0="

static void test_simple_example(void **state)
{
	struct xml_node *q = parse(SIMPLE_QUERY);
	const char *err = NULL;
	char *s = caps_ver_string(q, &err);
	assert_string_equal(s, "client/pc//Exodus 0.9.1<http://jabber.org/protocol/caps<"
	                       "http://jabber.org/protocol/disco#info<http://jabber.org/protocol/disco#items<"
	                       "http://jabber.org/protocol/muc<");
	char *ver = caps_ver_hash("sha-1", s);
	assert_string_equal(ver, SIMPLE_VER);
	free(ver);
	free(s);
	xml_unref(&q);
	/* Features in another order: the same ver. */
	ver = ver_of("<query xmlns='http://jabber.org/protocol/disco#info'>"
	             "<feature var='http://jabber.org/protocol/muc'/>"
	             "<feature var='http://jabber.org/protocol/disco#items'/>"
	             "<identity category='client' name='Exodus 0.9.1' type='pc'/>"
	             "<feature var='http://jabber.org/protocol/caps'/>"
	             "<feature var='http://jabber.org/protocol/disco#info'/>"
	             "</query>");
	assert_string_equal(ver, SIMPLE_VER);
	free(ver);
}

/* §5.3, with the parts shuffled: two identities in two languages and an
 * extended information form. */
static void test_complex_example(void **state)
{
	const char *query =
	        "<query xmlns='http://jabber.org/protocol/disco#info' "
	        "node='http://psi-im.org#q07IKJEyjvHSyhy//CH0CxmKi8w='>"
	        "<identity xml:lang='en' category='client' name='Psi 0.11' type='pc'/>"
	        "<identity xml:lang='el' category='client' name='\xce\xa8 0.11' type='pc'/>"
	        "<feature var='http://jabber.org/protocol/disco#items'/>"
	        "<feature var='http://jabber.org/protocol/caps'/>"
	        "<feature var='http://jabber.org/protocol/disco#info'/>"
	        "<feature var='http://jabber.org/protocol/muc'/>"
	        "<x xmlns='jabber:x:data' type='result'>"
	        "<field var='FORM_TYPE' type='hidden'><value>urn:xmpp:dataforms:softwareinfo</value></field>"
	        "<field var='software'><value>Psi</value></field>"
	        "<field var='ip_version'><value>ipv6</value><value>ipv4</value></field>"
	        "<field var='os'><value>Mac</value></field>"
	        "<field var='os_version'><value>10.5.1</value></field>"
	        "<field var='software_version'><value>0.11</value></field>"
	        "</x></query>";
	struct xml_node *q = parse(query);
	const char *err = NULL;
	char *s = caps_ver_string(q, &err);
	assert_string_equal(s, "client/pc/el/\xce\xa8 0.11<client/pc/en/Psi 0.11<"
	                       "http://jabber.org/protocol/caps<http://jabber.org/protocol/disco#info<"
	                       "http://jabber.org/protocol/disco#items<http://jabber.org/protocol/muc<"
	                       "urn:xmpp:dataforms:softwareinfo<ip_version<ipv4<ipv6<os<Mac<os_version<"
	                       "10.5.1<software<Psi<software_version<0.11<");
	char *ver = caps_ver_hash("sha-1", s);
	assert_string_equal(ver, "q07IKJEyjvHSyhy//CH0CxmKi8w=");
	free(ver);
	/* The stronger hashes by their IANA names. */
	ver = caps_ver_hash("sha-256", s);
	assert_non_null(ver);
	assert_int_equal(strlen(ver), 44);
	free(ver);
	free(s);
	xml_unref(&q);
}

static void test_refused_answers(void **state)
{
	/* An identity, a feature, a FORM_TYPE twice (§5.4). */
	assert_null(ver_of("<query xmlns='http://jabber.org/protocol/disco#info'>"
	                   "<identity category='client' type='pc' name='A'/>"
	                   "<identity category='client' type='pc' name='A'/></query>"));
	assert_null(ver_of("<query xmlns='http://jabber.org/protocol/disco#info'>"
	                   "<feature var='urn:x'/><feature var='urn:x'/></query>"));
	assert_null(ver_of("<query xmlns='http://jabber.org/protocol/disco#info'>"
	                   "<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' type='hidden'>"
	                   "<value>urn:f</value></field></x>"
	                   "<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' type='hidden'>"
	                   "<value>urn:f</value></field></x></query>"));
	/* A separator inside a part: "a<b" would read as "a" and "b". */
	assert_null(ver_of("<query xmlns='http://jabber.org/protocol/disco#info'>"
	                   "<feature var='urn:a&lt;urn:b'/></query>"));
	assert_null(ver_of("<query xmlns='http://jabber.org/protocol/disco#info'>"
	                   "<identity category='client/pc' type='x'/></query>"));
	/* A form whose FORM_TYPE is not hidden takes no part. */
	char *a = ver_of("<query xmlns='http://jabber.org/protocol/disco#info'><feature var='urn:x'/>"
	                 "<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE'>"
	                 "<value>urn:f</value></field></x></query>");
	char *b =
	        ver_of("<query xmlns='http://jabber.org/protocol/disco#info'><feature var='urn:x'/></query>");
	assert_string_equal(a, b);
	free(a);
	free(b);
	assert_true(caps_hash_supported("sha-1"));
	assert_true(caps_hash_supported("sha-512"));
	assert_false(caps_hash_supported("md5"));
	assert_false(caps_hash_supported("SHA1"));
	assert_false(caps_hash_supported(NULL));
	assert_null(caps_ver_hash("md5", "x"));
}

/* ---- the module --------------------------------------------------------------------------- */

#define NODE "http://code.google.com/p/exodus"

/* Let the loop deliver what is due, without waiting for the timers of the
 * queries under way (harness_run would). */
static void pump(void)
{
	for (int i = 0; i < 20; i++)
		ev_run(server.loop, EVRUN_NOWAIT);
}

static int known_calls;
static const struct caps_info *known_last;

static enum hook_result on_known(struct host *h, void *args, void *ctx)
{
	struct hook_caps *hc = args;
	assert_ptr_equal(caps_of_session(hc->session), hc->caps);
	known_calls++;
	known_last = hc->caps;
	return HOOK_CONTINUE;
}

static void start(const char *yaml)
{
	harness_start(yaml);
	harness_account("alice");
	harness_account("bob");
	known_calls = 0;
	known_last = NULL;
	hook_add(harness_host(), HOOK_CAPS_KNOWN, 50, on_known, NULL);
}

static int setup(void **state)
{
	start(NULL);
	return 0;
}

static int setup_short(void **state)
{
	start("  caps: { query_timeout: 50ms, max_entries: 2 }\n");
	return 0;
}

static int teardown(void **state)
{
	hook_remove(harness_host(), HOOK_CAPS_KNOWN, on_known, NULL);
	harness_stop();
	return 0;
}

/* Announce ver (with hash, NULL: legacy) in fs's available presence. */
static void announce(struct fake_session *fs, const char *hash, const char *ver)
{
	if (hash != NULL)
		harness_send(fs,
		             "<presence><c xmlns='" NS_CAPS "' hash='%s' node='" NODE
		             "' ver='%s'/></presence>",
		             hash, ver);
	else
		harness_send(fs, "<presence><c xmlns='" NS_CAPS "' node='" NODE "' ver='%s'/></presence>",
		             ver);
}

/* The disco#info request fs got about ver, or NULL. */
static struct xml_node *request_for(struct fake_session *fs, const char *ver)
{
	for (size_t i = 0; i < fake_count(fs); i++) {
		struct xml_node *iq = fake_get(fs, i);
		const struct xml_node *q = xml_child(iq, "query", NS_DISCO_INFO);
		if (!xml_is(iq, "iq", NULL) || !str_eq(xml_attr(iq, "type"), "get") || q == NULL)
			continue;
		char node[256];
		snprintf(node, sizeof(node), NODE "#%s", ver);
		if (str_eq(xml_attr(q, "node"), node)) {
			assert_string_equal(xml_attr(iq, "from"), HARNESS_HOST);
			return iq;
		}
	}
	return NULL;
}

/* Answer the request about ver with the simple example's features
 * (plus extra, a feature or NULL). */
static void answer(struct fake_session *fs, const char *ver, const char *extra)
{
	struct xml_node *req = request_for(fs, ver);
	assert_non_null(req);
	char *id = xstrdup(xml_attr(req, "id"));
	fake_clear(fs);
	harness_send(fs,
	             "<iq type='result' id='%s' to='" HARNESS_HOST "'>"
	             "<query xmlns='http://jabber.org/protocol/disco#info' node='" NODE "#%s'>"
	             "<identity category='client' name='Exodus 0.9.1' type='pc'/>"
	             "<feature var='http://jabber.org/protocol/caps'/>"
	             "<feature var='http://jabber.org/protocol/disco#info'/>"
	             "<feature var='http://jabber.org/protocol/disco#items'/>"
	             "<feature var='http://jabber.org/protocol/muc'/>%s%s%s"
	             "</query></iq>",
	             id, ver, extra != NULL ? "<feature var='" : "", extra != NULL ? extra : "",
	             extra != NULL ? "'/>" : "");
	free(id);
	pump();
}

static void test_asked_once_and_cached(void **state)
{
	struct host *h = harness_host();
	struct fake_session *a = harness_login("alice", "a");
	struct fake_session *b = harness_login("bob", "b");
	announce(a, "sha-1", SIMPLE_VER);
	pump();
	assert_non_null(request_for(a, SIMPLE_VER));
	assert_null(caps_of_session(&a->s)); /* not verified yet */
	answer(a, SIMPLE_VER, NULL);
	const struct caps_info *c = caps_of_session(&a->s);
	assert_non_null(c);
	assert_ptr_equal(caps_of(h, &a->s.jid), c);
	assert_true(caps_has(c, "http://jabber.org/protocol/muc"));
	assert_false(caps_has(c, "urn:xmpp:nothing"));
	assert_int_equal(known_calls, 1);

	/* The same ver again: known at once, nobody asked. */
	announce(b, "sha-1", SIMPLE_VER);
	pump();
	assert_null(request_for(b, SIMPLE_VER));
	assert_ptr_equal(caps_of_session(&b->s), c);
	assert_int_equal(known_calls, 2);
	/* The same presence again changes nothing. */
	announce(b, "sha-1", SIMPLE_VER);
	pump();
	assert_int_equal(known_calls, 2);

	struct caps_stats st = caps_stats(h);
	assert_int_equal(st.queries, 1);
	assert_int_equal(st.verified, 1);
	assert_int_equal(st.hits, 1);
	assert_int_equal(st.lookups, 2);
	assert_int_equal(st.entries, 1);

	/* Unavailable presence and the session's close forget. */
	harness_send(a, "<presence type='unavailable'/>");
	pump();
	assert_null(caps_of_session(&a->s));
	harness_logout(&b);
	harness_logout(&a);
	assert_int_equal(caps_stats(h).entries, 1); /* the cache keeps the ver */
}

static void test_mismatch_not_cached(void **state)
{
	struct host *h = harness_host();
	struct fake_session *a = harness_login("alice", "a");
	struct fake_session *b = harness_login("bob", "b");
	/* a's answer has one more feature than the ver says. */
	announce(a, "sha-1", SIMPLE_VER);
	pump();
	answer(a, SIMPLE_VER, "urn:xmpp:poison");
	assert_null(caps_of_session(&a->s));
	assert_int_equal(known_calls, 0);
	assert_int_equal(caps_stats(h).mismatches, 1);
	assert_int_equal(caps_stats(h).entries, 0);
	/* b announces the same ver: asked again, and its answer verifies. */
	announce(b, "sha-1", SIMPLE_VER);
	pump();
	assert_non_null(request_for(b, SIMPLE_VER));
	answer(b, SIMPLE_VER, NULL);
	assert_non_null(caps_of_session(&b->s));
	assert_false(caps_has(caps_of_session(&b->s), "urn:xmpp:poison"));
	assert_null(caps_of_session(&a->s));
	assert_int_equal(caps_stats(h).queries, 2);
	harness_logout(&a);
	harness_logout(&b);
}

static void test_waiter_asked_after_mismatch(void **state)
{
	struct fake_session *a = harness_login("alice", "a");
	struct fake_session *b = harness_login("bob", "b");
	announce(a, "sha-1", SIMPLE_VER);
	announce(b, "sha-1", SIMPLE_VER);
	pump();
	assert_non_null(request_for(a, SIMPLE_VER));
	assert_null(request_for(b, SIMPLE_VER)); /* waits for a's answer */
	answer(a, SIMPLE_VER, "urn:xmpp:poison");
	assert_non_null(request_for(b, SIMPLE_VER)); /* asked in a's place */
	answer(b, SIMPLE_VER, NULL);
	assert_non_null(caps_of_session(&b->s));
	assert_null(caps_of_session(&a->s));
	assert_int_equal(known_calls, 1);
	assert_ptr_equal(known_last, caps_of_session(&b->s));
	harness_logout(&a);
	harness_logout(&b);
}

static void test_waiters_share_answer(void **state)
{
	struct fake_session *a = harness_login("alice", "a");
	struct fake_session *a2 = harness_login("alice", "a2");
	struct fake_session *b = harness_login("bob", "b");
	announce(a, "sha-1", SIMPLE_VER);
	announce(a2, "sha-1", SIMPLE_VER);
	announce(b, "sha-1", SIMPLE_VER);
	pump();
	/* The asked session leaves: the next one is asked. */
	harness_logout(&a);
	assert_non_null(request_for(a2, SIMPLE_VER));
	answer(a2, SIMPLE_VER, NULL);
	assert_non_null(caps_of_session(&a2->s));
	assert_ptr_equal(caps_of_session(&a2->s), caps_of_session(&b->s));
	assert_int_equal(known_calls, 2);
	assert_int_equal(caps_stats(harness_host()).queries, 2);
	harness_logout(&a2);
	harness_logout(&b);
}

static bool failed_once(void *ctx)
{
	return caps_stats(harness_host()).failures >= *(unsigned long long *)ctx;
}

static void test_timeout_and_error(void **state)
{
	struct host *h = harness_host();
	struct fake_session *a = harness_login("alice", "a");
	struct fake_session *b = harness_login("bob", "b");
	announce(a, "sha-1", SIMPLE_VER);
	unsigned long long want = 1;
	harness_run_until(failed_once, &want);
	assert_null(caps_of_session(&a->s));
	assert_int_equal(caps_stats(h).entries, 0);
	/* An error answer: nothing either. */
	announce(b, "sha-1", SIMPLE_VER);
	struct xml_node *req = request_for(b, SIMPLE_VER);
	assert_non_null(req);
	harness_send(b,
	             "<iq type='error' id='%s' to='" HARNESS_HOST "'><error type='cancel'>"
	             "<service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
	             xml_attr(req, "id"));
	pump();
	assert_null(caps_of_session(&b->s));
	assert_int_equal(caps_stats(h).failures, 2);
	assert_int_equal(caps_stats(h).mismatches, 0);
	harness_logout(&a);
	harness_logout(&b);
}

static void test_answer_from_another(void **state)
{
	struct fake_session *a = harness_login("alice", "a");
	struct fake_session *b = harness_login("bob", "b");
	announce(a, "sha-1", SIMPLE_VER);
	pump();
	struct xml_node *req = request_for(a, SIMPLE_VER);
	assert_non_null(req);
	/* b answers a's request: not the answer. */
	harness_send(b,
	             "<iq type='result' id='%s' to='" HARNESS_HOST "'>"
	             "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
	             xml_attr(req, "id"));
	pump();
	assert_null(caps_of_session(&a->s));
	assert_int_equal(caps_stats(harness_host()).failures + caps_stats(harness_host()).mismatches, 0);
	answer(a, SIMPLE_VER, NULL);
	assert_non_null(caps_of_session(&a->s));
	harness_logout(&a);
	harness_logout(&b);
}

static void test_legacy_and_bound(void **state)
{
	struct host *h = harness_host();
	struct fake_session *a = harness_login("alice", "a");
	struct fake_session *b = harness_login("bob", "b");
	/* Legacy: the session's own, never cached. */
	announce(a, NULL, "1.0");
	pump();
	answer(a, "1.0", "urn:legacy");
	assert_true(caps_has(caps_of_session(&a->s), "urn:legacy"));
	assert_int_equal(caps_stats(h).entries, 0);
	announce(b, NULL, "1.0");
	pump();
	assert_non_null(request_for(b, "1.0")); /* asked again */
	answer(b, "1.0", NULL);
	assert_false(caps_has(caps_of_session(&b->s), "urn:legacy"));

	/* max_entries 2: the least recently used ver goes. */
	const char *extras[] = { "urn:one", "urn:two", "urn:three" };
	for (int i = 0; i < 3; i++) {
		struct xml_node *q = parse("<query xmlns='http://jabber.org/protocol/disco#info'/>");
		xml_set_attr(xml_add_child(q, "identity", NS_DISCO_INFO), "category", "client");
		xml_set_attr(xml_child(q, "identity", NULL), "type", "pc");
		xml_set_attr(xml_child(q, "identity", NULL), "name", "Exodus 0.9.1");
		const char *feats[] = { "http://jabber.org/protocol/caps",
			                "http://jabber.org/protocol/disco#info",
			                "http://jabber.org/protocol/disco#items",
			                "http://jabber.org/protocol/muc", extras[i] };
		for (size_t k = 0; k < ARRAY_SIZE(feats); k++)
			xml_set_attr(xml_add_child(q, "feature", NS_DISCO_INFO), "var", feats[k]);
		const char *err;
		char *s = caps_ver_string(q, &err);
		char *ver = caps_ver_hash("sha-1", s);
		announce(a, "sha-1", ver);
		pump();
		answer(a, ver, extras[i]);
		assert_true(caps_has(caps_of_session(&a->s), extras[i]));
		free(ver);
		free(s);
		xml_unref(&q);
	}
	assert_int_equal(caps_stats(h).verified, 3);
	assert_int_equal(caps_stats(h).entries, 2);
	harness_logout(&a);
	harness_logout(&b);
}

/* ---- iq_send through the router ------------------------------------------------------ */

struct sent {
	int calls;
	char type[16];
};

static void sent_answered(struct xml_node *answer, void *ctx)
{
	struct sent *st = ctx;
	st->calls++;
	snprintf(st->type, sizeof(st->type), "%s", answer != NULL ? xml_attr(answer, "type") : "none");
}

/* An iq to a resource nobody has is answered by the session manager at
 * once, inside iq_send: the callback still runs later, from the loop. */
static void test_send_bounced_at_once(void **state)
{
	struct host *h = harness_host();
	struct jid from = { 0 }, to = { 0 };
	jid_set(&from, NULL, HARNESS_HOST, NULL);
	jid_set(&to, "alice", HARNESS_HOST, "nowhere");
	struct xml_node *iq = xml_new("iq", NS_CLIENT);
	xml_set_attr(iq, "type", "get");
	xml_add_child(iq, "query", NS_DISCO_INFO);
	struct sent st = { 0 };
	assert_non_null(iq_send(h, iq, &from, &to, 30, sent_answered, &st));
	assert_int_equal(st.calls, 0);
	pump();
	assert_int_equal(st.calls, 1);
	assert_string_equal(st.type, "error");
	xml_unref(&iq);
	jid_clear(&from);
	jid_clear(&to);
}

#define CASE(fn, setup_fn) cmocka_unit_test_setup_teardown(fn, setup_fn, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_simple_example), /* the verification string */
		cmocka_unit_test(test_complex_example),  cmocka_unit_test(test_refused_answers),
		CASE(test_asked_once_and_cached, setup), /* the module */
		CASE(test_mismatch_not_cached, setup),   CASE(test_waiter_asked_after_mismatch, setup),
		CASE(test_waiters_share_answer, setup),  CASE(test_timeout_and_error, setup_short),
		CASE(test_answer_from_another, setup),   CASE(test_legacy_and_bound, setup_short),
		CASE(test_send_bounced_at_once, setup), /* iq_send through the router */
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
