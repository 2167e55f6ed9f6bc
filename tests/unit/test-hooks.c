/*
 * Unit tests: hooks (priority order, stable order for equal priorities,
 * HOOK_STOP, removal, a callback removing itself or another during a run,
 * nested runs, separate hosts and names).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "server/host.h"
#include "server/hooks.h"

#define HOOK_T "test_hook"

struct trace {
	char s[64];
};

static void trace_add(struct trace *t, char c)
{
	size_t n = strlen(t->s);
	assert_true(n + 1 < sizeof(t->s));
	t->s[n] = c;
	t->s[n + 1] = '\0';
}

/* ctx is the letter to trace; args the trace. */
static enum hook_result cb_letter(struct host *h, void *args, void *ctx)
{
	trace_add(args, (char)(uintptr_t)ctx);
	return HOOK_CONTINUE;
}

static enum hook_result cb_stop(struct host *h, void *args, void *ctx)
{
	trace_add(args, (char)(uintptr_t)ctx);
	return HOOK_STOP;
}

static enum hook_result cb_remove_self(struct host *h, void *args, void *ctx)
{
	trace_add(args, (char)(uintptr_t)ctx);
	hook_remove(h, HOOK_T, cb_remove_self, ctx);
	return HOOK_CONTINUE;
}

/* Removes the 'z' letter callback (registered after it). */
static enum hook_result cb_remove_other(struct host *h, void *args, void *ctx)
{
	trace_add(args, (char)(uintptr_t)ctx);
	hook_remove(h, HOOK_T, cb_letter, (void *)(uintptr_t)'z');
	return HOOK_CONTINUE;
}

static int nested_depth;
static enum hook_result cb_nested(struct host *h, void *args, void *ctx)
{
	trace_add(args, (char)(uintptr_t)ctx);
	if (nested_depth++ == 0) {
		hook_run(h, HOOK_T, args);
		/* Removed inside the inner run: gone for the rest of this one too. */
	}
	return HOOK_CONTINUE;
}

#define L(c) ((void *)(uintptr_t)(c))

static struct host *host_new(const char *name)
{
	struct host *h = calloc(1, sizeof(*h));
	h->name = strdup(name);
	return h;
}

static void host_done(struct host *h)
{
	hooks_free_host(h);
	assert_null(h->hooks);
	free(h->name);
	free(h);
}

static void test_empty(void **state)
{
	struct host *h = host_new("example.com");
	struct trace t = { 0 };
	assert_int_equal(hook_run(h, HOOK_T, &t), HOOK_CONTINUE);
	assert_int_equal(hook_run(NULL, HOOK_T, &t), HOOK_CONTINUE);
	hook_remove(h, HOOK_T, cb_letter, L('a')); /* nothing to remove: harmless */
	assert_string_equal(t.s, "");
	host_done(h);
}

static void test_priority_order(void **state)
{
	struct host *h = host_new("example.com");
	struct trace t = { 0 };
	hook_add(h, HOOK_T, 50, cb_letter, L('c'));
	hook_add(h, HOOK_T, 10, cb_letter, L('a'));
	hook_add(h, HOOK_T, 50, cb_letter, L('d')); /* same priority: after c */
	hook_add(h, HOOK_T, 20, cb_letter, L('b'));
	hook_add(h, HOOK_T, -5, cb_letter, L('0'));
	hook_add(h, HOOK_T, 90, cb_letter, L('e'));
	hook_add(h, HOOK_T, 50, cb_letter, L('D'));
	assert_int_equal(hook_run(h, HOOK_T, &t), HOOK_CONTINUE);
	assert_string_equal(t.s, "0abcdDe");
	host_done(h);
}

static void test_stop(void **state)
{
	struct host *h = host_new("example.com");
	struct trace t = { 0 };
	hook_add(h, HOOK_T, 10, cb_letter, L('a'));
	hook_add(h, HOOK_T, 20, cb_stop, L('S'));
	hook_add(h, HOOK_T, 30, cb_letter, L('c'));
	assert_int_equal(hook_run(h, HOOK_T, &t), HOOK_STOP);
	assert_string_equal(t.s, "aS");
	hook_remove(h, HOOK_T, cb_stop, L('S'));
	t.s[0] = '\0';
	assert_int_equal(hook_run(h, HOOK_T, &t), HOOK_CONTINUE);
	assert_string_equal(t.s, "ac");
	host_done(h);
}

static void test_remove(void **state)
{
	struct host *h = host_new("example.com");
	struct trace t = { 0 };
	hook_add(h, HOOK_T, 10, cb_letter, L('a'));
	hook_add(h, HOOK_T, 10, cb_letter, L('b'));
	hook_add(h, HOOK_T, 10, cb_letter, L('c'));
	/* Matched by function and context together. */
	hook_remove(h, HOOK_T, cb_letter, L('b'));
	hook_remove(h, HOOK_T, cb_stop, L('a'));
	hook_run(h, HOOK_T, &t);
	assert_string_equal(t.s, "ac");
	host_done(h);
}

static void test_remove_during_run(void **state)
{
	struct host *h = host_new("example.com");
	struct trace t = { 0 };
	hook_add(h, HOOK_T, 10, cb_letter, L('a'));
	hook_add(h, HOOK_T, 20, cb_remove_self, L('s'));
	hook_add(h, HOOK_T, 30, cb_remove_other, L('o'));
	hook_add(h, HOOK_T, 40, cb_letter, L('z'));
	hook_add(h, HOOK_T, 50, cb_letter, L('e'));
	hook_run(h, HOOK_T, &t);
	assert_string_equal(t.s, "asoe"); /* z removed before its turn */
	t.s[0] = '\0';
	hook_run(h, HOOK_T, &t);
	assert_string_equal(t.s, "aoe"); /* s removed itself */
	host_done(h);
}

static void test_nested_run(void **state)
{
	struct host *h = host_new("example.com");
	struct trace t = { 0 };
	nested_depth = 0;
	hook_add(h, HOOK_T, 10, cb_nested, L('n'));
	hook_add(h, HOOK_T, 20, cb_remove_self, L('s'));
	hook_add(h, HOOK_T, 30, cb_letter, L('e'));
	hook_run(h, HOOK_T, &t);
	/* outer n, inner n s e, outer: s is gone, e */
	assert_string_equal(t.s, "nnsee");
	host_done(h);
}

static void test_add_during_run(void **state)
{
	struct host *h = host_new("example.com");
	struct trace t = { 0 };
	hook_add(h, HOOK_T, 10, cb_letter, L('a'));
	hook_run(h, HOOK_T, &t);
	hook_add(h, HOOK_T, 5, cb_letter, L('0'));
	t.s[0] = '\0';
	hook_run(h, HOOK_T, &t);
	assert_string_equal(t.s, "0a");
	host_done(h);
}

static void test_names_and_hosts(void **state)
{
	struct host *h1 = host_new("one.example");
	struct host *h2 = host_new("two.example");
	struct trace t = { 0 };
	hook_add(h1, HOOK_T, 10, cb_letter, L('1'));
	hook_add(h2, HOOK_T, 10, cb_letter, L('2'));
	hook_add(h1, HOOK_USER_SEND_PACKET, 10, cb_letter, L('u'));
	hook_run(h1, HOOK_T, &t);
	assert_string_equal(t.s, "1");
	t.s[0] = '\0';
	hook_run(h2, HOOK_T, &t);
	assert_string_equal(t.s, "2");
	t.s[0] = '\0';
	hook_run(h2, HOOK_USER_SEND_PACKET, &t);
	assert_string_equal(t.s, "");
	hook_run(h1, HOOK_USER_SEND_PACKET, &t);
	assert_string_equal(t.s, "u");
	host_done(h1);
	host_done(h2);
}

/* Many hook names on one host: each name keeps its own chain, found by
 * its text whatever buffer holds it, and removing from one leaves the
 * others alone. */
static void test_many_names(void **state)
{
	struct host *h = host_new("one.example");
	struct trace t = { 0 };
	enum { N = 200 };
	char name[32];
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "hook_%d", i);
		hook_add(h, name, 10, cb_letter, L('a' + i % 26));
	}
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "hook_%d", i);
		t.s[0] = '\0';
		hook_run(h, name, &t);
		char want[2] = { (char)('a' + i % 26), '\0' };
		assert_string_equal(t.s, want);
	}
	hook_remove(h, "hook_7", cb_letter, L('a' + 7));
	t.s[0] = '\0';
	hook_run(h, "hook_7", &t);
	hook_run(h, "hook_8", &t);
	hook_run(h, "hook_", &t);
	hook_run(h, "hook_2000", &t);
	assert_string_equal(t.s, "i");
	host_done(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_priority_order),
		cmocka_unit_test(test_stop),
		cmocka_unit_test(test_remove),
		cmocka_unit_test(test_remove_during_run),
		cmocka_unit_test(test_nested_run),
		cmocka_unit_test(test_add_during_run),
		cmocka_unit_test(test_names_and_hosts),
		cmocka_unit_test(test_many_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
