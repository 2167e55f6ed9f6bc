/*
 * Unit tests: the per-user cache of modules (modules/user-cache.c): an
 * entry from a user's first session to the last one's close, found by the
 * local part, the opened/closed/clear callbacks in order, and a stop that
 * clears every entry and follows no more sessions.  Sessions are fakes
 * announced through the host's session hooks.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "modules/user-cache.h"
#include "server/host.h"
#include "server/hooks.h"
#include "server/sm.h"

struct entry {
	struct user_cache_entry e;
	int opened, closed;
	char *data;
};

struct counts {
	int opened, closed, cleared;
};

static void on_opened(struct user_cache_entry *e, struct session *s, void *ctx)
{
	(void)s;
	struct entry *x = (struct entry *)e;
	x->opened++;
	if (x->data == NULL)
		x->data = strdup(e->user);
	((struct counts *)ctx)->opened++;
}

static void on_closed(struct user_cache_entry *e, struct session *s, void *ctx)
{
	(void)s;
	((struct entry *)e)->closed++;
	((struct counts *)ctx)->closed++;
}

static void on_clear(struct user_cache_entry *e, void *ctx)
{
	free(((struct entry *)e)->data);
	((struct counts *)ctx)->cleared++;
}

static void announce(struct host *h, const char *hook, struct session *s)
{
	struct hook_session hs = { .session = s };
	hook_run(h, hook, &hs);
}

static void test_lifetime(void **state)
{
	(void)state;
	struct host *h = calloc(1, sizeof(*h));
	h->name = strdup("example.com");
	struct counts n = { 0 };
	struct user_cache c = {
		.entry_size = sizeof(struct entry),
		.opened = on_opened,
		.closed = on_closed,
		.clear = on_clear,
		.ctx = &n,
	};
	user_cache_start(&c, h);
	assert_null(user_cache_get(&c, "romeo"));
	assert_null(user_cache_get(&c, NULL));

	struct session a = { .id = 1 }, b = { .id = 2 }, j = { .id = 3 };
	a.jid.node = "romeo";
	b.jid.node = "romeo";
	j.jid.node = "juliet";
	announce(h, HOOK_SESSION_OPENED, &a);
	struct entry *r = user_cache_get(&c, "romeo");
	assert_non_null(r);
	assert_string_equal(r->e.user, "romeo");
	assert_int_equal(r->e.sessions, 1);
	assert_string_equal(r->data, "romeo");
	announce(h, HOOK_SESSION_OPENED, &b);
	announce(h, HOOK_SESSION_OPENED, &j);
	assert_ptr_equal(user_cache_get(&c, "romeo"), r);
	assert_int_equal(r->e.sessions, 2);
	assert_int_equal(r->opened, 2);
	assert_int_equal(n.opened, 3);

	announce(h, HOOK_SESSION_CLOSED, &a);
	assert_ptr_equal(user_cache_get(&c, "romeo"), r);
	assert_int_equal(r->closed, 1);
	assert_int_equal(n.cleared, 0);
	announce(h, HOOK_SESSION_CLOSED, &b);
	assert_null(user_cache_get(&c, "romeo"));
	assert_int_equal(n.closed, 2);
	assert_int_equal(n.cleared, 1);
	/* a session the cache never saw open */
	struct session x = { .id = 9 };
	x.jid.node = "nobody";
	announce(h, HOOK_SESSION_CLOSED, &x);
	assert_int_equal(n.closed, 2);

	user_cache_stop(&c);
	assert_int_equal(n.cleared, 2); /* juliet's */
	announce(h, HOOK_SESSION_OPENED, &a);
	assert_int_equal(n.opened, 3); /* no longer followed */
	user_cache_stop(&c);           /* twice: nothing happens */
	hooks_free_host(h);
	free(h->name);
	free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lifetime),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
