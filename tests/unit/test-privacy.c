/*
 * Unit tests: the matching rules of privacy lists (XEP-0016 §2.1) and block
 * lists (XEP-0191) that modules/mod_privacy.c and modules/mod_blocking.c
 * export for mod_offline: JID forms (full, bare, domain/resource, domain),
 * roster group and subscription items, first match by order, what an item
 * applies to (stanza kinds, presence notifications only), allow before
 * deny.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "modules/builtin.h"
#include "lib/jid.h"
#include "storage/storage.h"

static bool denies(const struct privacy_item *items, size_t n, const struct roster_item *roster,
                   size_t nroster, unsigned bit, const char *peer_s)
{
	struct privacy_list l = { .name = "t", .items = items, .nitems = n };
	struct jid peer;
	const char *err;
	assert_int_equal(jid_parse(peer_s, &peer, &err), 0);
	bool r = privacy_list_denies(&l, roster, nroster, bit, &peer);
	jid_clear(&peer);
	return r;
}

static void test_jid_forms(void **state)
{
	(void)state;
	const struct privacy_item full[] = { { PRIVACY_JID, "romeo@a.example/balcony", false, 1, 0 } };
	assert_true(denies(full, 1, NULL, 0, PRIVACY_MESSAGE, "romeo@a.example/balcony"));
	assert_false(denies(full, 1, NULL, 0, PRIVACY_MESSAGE, "romeo@a.example/garden"));
	assert_false(denies(full, 1, NULL, 0, PRIVACY_MESSAGE, "romeo@a.example"));
	const struct privacy_item bare[] = { { PRIVACY_JID, "romeo@a.example", false, 1, 0 } };
	assert_true(denies(bare, 1, NULL, 0, PRIVACY_MESSAGE, "romeo@a.example/garden"));
	assert_true(denies(bare, 1, NULL, 0, PRIVACY_MESSAGE, "romeo@a.example"));
	assert_false(denies(bare, 1, NULL, 0, PRIVACY_MESSAGE, "juliet@a.example"));
	assert_false(denies(bare, 1, NULL, 0, PRIVACY_MESSAGE, "a.example"));
	const struct privacy_item dres[] = { { PRIVACY_JID, "a.example/bot", false, 1, 0 } };
	assert_true(denies(dres, 1, NULL, 0, PRIVACY_MESSAGE, "a.example/bot"));
	/* XEP-0016 §2.1: user@domain/resource is matched as domain/resource
	 * too (after its full and bare JID), as the blocking command does. */
	assert_true(denies(dres, 1, NULL, 0, PRIVACY_MESSAGE, "romeo@a.example/bot"));
	assert_false(denies(dres, 1, NULL, 0, PRIVACY_MESSAGE, "romeo@a.example/garden"));
	assert_false(denies(dres, 1, NULL, 0, PRIVACY_MESSAGE, "romeo@b.example/bot"));
	assert_false(denies(dres, 1, NULL, 0, PRIVACY_MESSAGE, "a.example"));
	const struct privacy_item dom[] = { { PRIVACY_JID, "a.example", false, 1, 0 } };
	assert_true(denies(dom, 1, NULL, 0, PRIVACY_MESSAGE, "a.example"));
	assert_true(denies(dom, 1, NULL, 0, PRIVACY_MESSAGE, "romeo@a.example/x"));
	assert_true(denies(dom, 1, NULL, 0, PRIVACY_MESSAGE, "a.example/x"));
	assert_false(denies(dom, 1, NULL, 0, PRIVACY_MESSAGE, "romeo@b.example"));
	assert_false(denies(dom, 1, NULL, 0, PRIVACY_MESSAGE, "sub.a.example"));
}

static void test_order_and_kinds(void **state)
{
	(void)state;
	/* Allow romeo first, then deny every message; iqs are not covered. */
	const struct privacy_item l[] = {
		{ PRIVACY_JID, "romeo@a.example", true, 1, 0 },
		{ PRIVACY_ALL, NULL, false, 2, PRIVACY_MESSAGE },
	};
	assert_false(denies(l, 2, NULL, 0, PRIVACY_MESSAGE, "romeo@a.example/x"));
	assert_true(denies(l, 2, NULL, 0, PRIVACY_MESSAGE, "tybalt@a.example/x"));
	assert_false(denies(l, 2, NULL, 0, PRIVACY_IQ, "tybalt@a.example/x"));
	/* Kind 0 (a subscription request, an outbound message): only items for
	 * every stanza apply. */
	assert_false(denies(l, 2, NULL, 0, 0, "tybalt@a.example/x"));
	const struct privacy_item all[] = { { PRIVACY_JID, "tybalt@a.example", false, 5, 0 } };
	assert_true(denies(all, 1, NULL, 0, 0, "tybalt@a.example"));
	assert_true(denies(all, 1, NULL, 0, PRIVACY_PRESENCE_OUT, "tybalt@a.example"));
	/* Nothing matches: allowed. */
	assert_false(denies(all, 1, NULL, 0, PRIVACY_MESSAGE, "nurse@a.example"));
	assert_false(denies(NULL, 0, NULL, 0, PRIVACY_MESSAGE, "nurse@a.example"));
}

static void test_group_and_subscription(void **state)
{
	(void)state;
	char *g1[] = { "Family", "Verona" };
	struct roster_item roster[] = {
		{ .jid = "juliet@a.example", .subscription = SUB_BOTH, .groups = { g1, 2 } },
		{ .jid = "nurse@a.example", .subscription = SUB_FROM },
		{ .jid = "paris@a.example", .subscription = SUB_NONE, .ask_in = true },
	};
	const struct privacy_item grp[] = { { PRIVACY_GROUP, "Verona", false, 1, 0 } };
	assert_true(denies(grp, 1, roster, 3, PRIVACY_MESSAGE, "juliet@a.example/r"));
	assert_false(denies(grp, 1, roster, 3, PRIVACY_MESSAGE, "nurse@a.example/r"));
	const struct privacy_item none[] = { { PRIVACY_SUBSCRIPTION, "none", false, 1, 0 } };
	/* Not in the roster, or in it with none: subscription none. */
	assert_true(denies(none, 1, roster, 3, PRIVACY_MESSAGE, "tybalt@a.example"));
	assert_true(denies(none, 1, roster, 3, PRIVACY_MESSAGE, "paris@a.example"));
	assert_false(denies(none, 1, roster, 3, PRIVACY_MESSAGE, "juliet@a.example"));
	const struct privacy_item from[] = { { PRIVACY_SUBSCRIPTION, "from", false, 1, 0 } };
	assert_true(denies(from, 1, roster, 3, PRIVACY_MESSAGE, "nurse@a.example"));
	assert_false(denies(from, 1, roster, 3, PRIVACY_MESSAGE, "juliet@a.example"));
	assert_true(privacy_list_needs_roster(&(struct privacy_list){ "t", from, 1 }));
	const struct privacy_item jid_only[] = { { PRIVACY_JID, "romeo@a.example", false, 1, 0 } };
	assert_false(privacy_list_needs_roster(&(struct privacy_list){ "t", jid_only, 1 }));
}

static void test_blocklist(void **state)
{
	(void)state;
	char *items[] = { "a.example/bot", "b.example", "romeo@a.example", "tybalt@a.example/x" };
	struct strlist l = { items, 4 };
	const char *yes[] = { "romeo@a.example", "romeo@a.example/any", "a.example/bot",
		              "b.example",       "anyone@b.example/r",  "tybalt@a.example/x" };
	const char *no[] = { "juliet@a.example", "tybalt@a.example/y", "tybalt@a.example", "a.example",
		             "c.example" };
	for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
		struct jid j;
		const char *err;
		assert_int_equal(jid_parse(yes[i], &j, &err), 0);
		if (!blocking_list_matches(&l, &j))
			fail_msg("%s should be blocked", yes[i]);
		jid_clear(&j);
	}
	for (size_t i = 0; i < ARRAY_SIZE(no); i++) {
		struct jid j;
		const char *err;
		assert_int_equal(jid_parse(no[i], &j, &err), 0);
		if (blocking_list_matches(&l, &j))
			fail_msg("%s should not be blocked", no[i]);
		jid_clear(&j);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_jid_forms),
		cmocka_unit_test(test_order_and_kinds),
		cmocka_unit_test(test_group_and_subscription),
		cmocka_unit_test(test_blocklist),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
