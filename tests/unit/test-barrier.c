/*
 * Unit tests: barriers (lib/barrier.h): marks pass only when every earlier
 * hold is released, whatever order releases come in; the current barrier
 * nests; a barrier whose owner left lives until its last hold is released;
 * the hold being answered is seen only by its own barrier.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "lib/barrier.h"

static unsigned advances;

static void count_advance(void *ctx)
{
	(void)ctx;
	advances++;
}

static void test_idle_barrier_passes(void **state)
{
	(void)state;
	struct barrier *b = barrier_new(count_advance, NULL);
	assert_false(barrier_busy(b));
	assert_true(barrier_passed(b, barrier_mark(b)));
	barrier_free(&b);
	assert_null(b);
}

static void test_mark_waits_for_earlier_holds_only(void **state)
{
	(void)state;
	advances = 0;
	struct barrier *b = barrier_new(count_advance, NULL);
	struct barrier_hold *h1 = barrier_hold(b);
	struct barrier_hold *h2 = barrier_hold(b);
	uint64_t m2 = barrier_mark(b); /* an answer after two holds */
	struct barrier_hold *h3 = barrier_hold(b);
	uint64_t m3 = barrier_mark(b);
	assert_true(barrier_busy(b));
	assert_false(barrier_passed(b, m2));
	/* released out of order: the later hold does not let m2 pass */
	barrier_release(&h2);
	assert_null(h2);
	assert_int_equal(advances, 1);
	assert_false(barrier_passed(b, m2));
	barrier_release(&h1);
	assert_true(barrier_passed(b, m2));
	assert_false(barrier_passed(b, m3));
	barrier_release(&h3);
	assert_true(barrier_passed(b, m3));
	assert_false(barrier_busy(b));
	assert_int_equal(advances, 3);
	barrier_free(&b);
}

static void test_current_nests(void **state)
{
	(void)state;
	struct barrier *a = barrier_new(count_advance, NULL);
	struct barrier *b = barrier_new(count_advance, NULL);
	assert_null(barrier_current());
	assert_null(barrier_hold_current()); /* no input: nothing to order */
	struct barrier *outer = barrier_enter(a);
	assert_null(outer);
	struct barrier *inner = barrier_enter(b);
	assert_ptr_equal(inner, a);
	struct barrier_hold *hb = barrier_hold_current();
	barrier_leave(inner);
	assert_ptr_equal(barrier_current(), a);
	struct barrier_hold *ha = barrier_hold_current();
	barrier_leave(outer);
	assert_null(barrier_current());
	assert_true(barrier_busy(a));
	assert_true(barrier_busy(b));
	barrier_release(&ha);
	barrier_release(&hb);
	assert_false(barrier_busy(a));
	assert_false(barrier_busy(b));
	barrier_free(&a);
	barrier_free(&b);
}

static void test_outlives_its_owner(void **state)
{
	(void)state;
	advances = 0;
	struct barrier *b = barrier_new(count_advance, NULL);
	struct barrier_hold *h = barrier_hold(b);
	barrier_free(&b);    /* the stream closed */
	barrier_release(&h); /* the store finished later */
	assert_null(h);
	assert_int_equal(advances, 0); /* the owner is not called back */
	barrier_release(&h);           /* NULL is fine */
}

static void test_answering_names_the_hold_of_its_barrier(void **state)
{
	(void)state;
	struct barrier *a = barrier_new(count_advance, NULL);
	struct barrier *b = barrier_new(count_advance, NULL);
	struct barrier_hold *h1 = barrier_hold(a);
	struct barrier_hold *h2 = barrier_hold(a);
	assert_int_equal(barrier_answering(a), 0);
	struct barrier_hold *outer = barrier_answer_enter(h2);
	assert_null(outer);
	assert_int_equal(barrier_answering(a), 2);
	assert_int_equal(barrier_answering(b), 0); /* another stream's answer */
	struct barrier_hold *inner = barrier_answer_enter(NULL);
	assert_int_equal(barrier_answering(a), 0);
	barrier_answer_leave(inner);
	assert_int_equal(barrier_answering(a), 2);
	barrier_answer_leave(outer);
	assert_int_equal(barrier_answering(a), 0);
	barrier_release(&h2);
	barrier_release(&h1);
	barrier_free(&a);
	barrier_free(&b);
}

static void test_hand_on_gives_the_hold_to_the_first_taker(void **state)
{
	(void)state;
	struct barrier *b = barrier_new(count_advance, NULL);
	struct barrier *other = barrier_new(count_advance, NULL);
	struct barrier_hold *mine = barrier_hold(b);
	struct barrier *outer = barrier_enter(other);
	struct barrier_hold **previous = barrier_hand_on(&mine);
	struct barrier_hold *first = barrier_take();
	struct barrier_hold *second = barrier_take(); /* a hold on the current barrier */
	barrier_hand_on_end(previous);
	barrier_leave(outer);
	assert_null(mine); /* taken over */
	assert_non_null(first);
	assert_non_null(second);
	assert_true(barrier_busy(b));
	assert_true(barrier_busy(other));
	barrier_release(&first);
	assert_false(barrier_busy(b)); /* the taker releases it */
	barrier_release(&second);
	assert_false(barrier_busy(other));
	assert_null(barrier_take()); /* nothing handed on, no current */
	barrier_free(&b);
	barrier_free(&other);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_idle_barrier_passes),
		cmocka_unit_test(test_mark_waits_for_earlier_holds_only),
		cmocka_unit_test(test_current_nests),
		cmocka_unit_test(test_outlives_its_owner),
		cmocka_unit_test(test_answering_names_the_hold_of_its_barrier),
		cmocka_unit_test(test_hand_on_gives_the_hold_to_the_first_taker),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
