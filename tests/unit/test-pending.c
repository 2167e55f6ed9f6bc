/*
 * Unit tests: the pending-operation list of modules (modules/pending.c):
 * order and counting, waiting and resuming, cancelling one op, and what a
 * stop does with ops that wait for a call, that outlive it, and that are
 * inside their callback.  Calls are fakes that record their cancellation.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "modules/pending.h"

struct fake_op {
	struct pending_op p;
	int *freed;
};

static int cancelled;

static void fake_cancel(void *call)
{
	(void)call;
	cancelled++;
}

static void fake_free(struct pending_op *p)
{
	struct fake_op *op = (struct fake_op *)p;
	assert_false(pending_listed(p));
	(*op->freed)++;
	free(op);
}

static struct fake_op *fake_new(struct pending_ops *l, int *freed)
{
	struct fake_op *op = calloc(1, sizeof(*op));
	assert_non_null(op);
	op->freed = freed;
	pending_track(l, &op->p, fake_free);
	return op;
}

static void test_order(void **state)
{
	(void)state;
	struct pending_ops l = { 0 };
	int freed = 0;
	struct fake_op *a = fake_new(&l, &freed), *b = fake_new(&l, &freed), *c = fake_new(&l, &freed);
	assert_int_equal(l.count, 3);
	assert_ptr_equal(l.head, &a->p);
	assert_ptr_equal(l.tail, &c->p);
	pending_untrack(&b->p);
	assert_false(pending_listed(&b->p));
	assert_ptr_equal(a->p.next, &c->p);
	assert_ptr_equal(c->p.prev, &a->p);
	pending_untrack(&b->p); /* twice: nothing happens */
	assert_int_equal(l.count, 2);
	fake_free(&b->p);
	pending_stop(&l); /* neither waits for anything: idle, freed */
	assert_int_equal(l.count, 0);
	assert_null(l.head);
	assert_null(l.tail);
	assert_int_equal(freed, 3);
}

static void test_resume_and_cancel(void **state)
{
	(void)state;
	struct pending_ops l = { 0 };
	int freed = 0, call;
	cancelled = 0;
	struct fake_op *a = fake_new(&l, &freed);
	pending_wait(&a->p, &call, fake_cancel);
	assert_true(pending_resume(&a->p)); /* listed: the callback goes on */
	assert_null(a->p.call);
	assert_false(pending_cancel(&a->p)); /* no call: nothing to cancel */
	pending_wait(&a->p, &call, fake_cancel);
	assert_true(pending_cancel(&a->p));
	assert_int_equal(cancelled, 1);
	assert_int_equal(freed, 1);
	assert_int_equal(l.count, 0);
	/* a call that could not start */
	struct fake_op *b = fake_new(&l, &freed);
	pending_wait(&b->p, NULL, fake_cancel);
	assert_null(b->p.cancel);
	pending_untrack(&b->p);
	fake_free(&b->p);
}

static void test_stop(void **state)
{
	(void)state;
	struct pending_ops l = { 0 };
	int freed = 0, call1, call2;
	cancelled = 0;
	struct fake_op *waiting = fake_new(&l, &freed);
	pending_wait(&waiting->p, &call1, fake_cancel);
	struct fake_op *writer = fake_new(&l, &freed);
	writer->p.outlives_stop = true;
	pending_wait(&writer->p, &call2, fake_cancel);
	struct fake_op *inside = fake_new(&l, &freed); /* in its callback */
	pending_wait(&inside->p, &call1, fake_cancel);
	assert_true(pending_resume(&inside->p));
	fake_new(&l, &freed); /* idle: queued behind another */
	pending_stop(&l);
	assert_int_equal(cancelled, 1); /* the waiting op only */
	assert_int_equal(freed, 2);     /* and the idle one */
	assert_int_equal(l.count, 0);
	/* the write's callback runs later and goes on without its module */
	assert_true(pending_resume(&writer->p));
	assert_false(pending_listed(&writer->p));
	fake_free(&writer->p);
	/* the op that was inside its callback frees itself */
	fake_free(&inside->p);
	assert_int_equal(freed, 4);
	/* a callback that runs after the stop for an op that was not cancelled
	 * (its call had answered already) frees it and stops */
	struct fake_op *late = fake_new(&l, &freed);
	pending_untrack(&late->p);
	assert_false(pending_resume(&late->p));
	assert_int_equal(freed, 5);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_order),
		cmocka_unit_test(test_resume_and_cancel),
		cmocka_unit_test(test_stop),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
