/*
 * Unit tests: stream management counters and queue (server/c2s-sm.h):
 * h compares across the 2^32 wrap, an ack drops exactly the acknowledged
 * stanzas (also across the wrap) and refuses one that acks more than was
 * sent, held stanzas (also an answer moved before later output) reach the
 * queue in wire order (with whether the device was told of each), resumption
 * ids are found only whole.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "lib/xml.h"
#include "server/c2s-sm.h"

static struct xml_node *msg(const char *id)
{
	struct xml_node *m = xml_new("message", NS_CLIENT);
	xml_set_attr(m, "id", id);
	return m;
}

static void send_msg(struct c2s_sm *sm, const char *id)
{
	struct xml_node *m = msg(id);
	c2s_sm_sent(sm, m, 0, NULL, false);
	xml_unref(&m);
}

static const char *entry_id(struct c2s_sm *sm, size_t i)
{
	return xml_attr(c2s_sm_entry(sm, i)->el, "id");
}

static void test_h_compare_wraps(void **state)
{
	(void)state;
	assert_true(c2s_sm_h_ge(5, 3));
	assert_true(c2s_sm_h_ge(3, 3));
	assert_false(c2s_sm_h_ge(3, 5));
	assert_true(c2s_sm_h_ge(2, UINT32_MAX - 1));
	assert_false(c2s_sm_h_ge(UINT32_MAX - 1, 2));
}

static void test_ack_drops_the_acknowledged(void **state)
{
	(void)state;
	struct c2s_sm *sm = c2s_sm_new(NULL);
	send_msg(sm, "a");
	send_msg(sm, "b");
	send_msg(sm, "c");
	assert_int_equal(c2s_sm_count(sm), 3);
	assert_int_equal(c2s_sm_ack(sm, 4), -1); /* more than was sent */
	assert_int_equal(c2s_sm_count(sm), 3);
	assert_int_equal(c2s_sm_ack(sm, 2), 0);
	assert_int_equal(c2s_sm_count(sm), 1);
	assert_string_equal(entry_id(sm, 0), "c");
	assert_int_equal(c2s_sm_ack(sm, 2), 0); /* the same h again: nothing */
	assert_int_equal(c2s_sm_count(sm), 1);
	assert_int_equal(c2s_sm_ack(sm, 1), -1); /* backwards */
	c2s_sm_free(&sm);
	assert_null(sm);
}

static void test_ack_across_the_wrap(void **state)
{
	(void)state;
	struct c2s_sm *sm = c2s_sm_new(NULL);
	sm->out = sm->acked = UINT32_MAX - 1;
	char id[8];
	for (int i = 0; i < 40; i++) { /* also grows the ring */
		snprintf(id, sizeof(id), "%d", i);
		send_msg(sm, id);
	}
	assert_int_equal(sm->out, 38);
	assert_int_equal(c2s_sm_ack(sm, 39), -1);
	assert_int_equal(c2s_sm_ack(sm, 3), 0); /* 2^32 - 2 + 5 */
	assert_int_equal(c2s_sm_count(sm), 35);
	assert_string_equal(entry_id(sm, 0), "5");
	assert_int_equal(c2s_sm_ack(sm, 38), 0);
	assert_int_equal(c2s_sm_count(sm), 0);
	c2s_sm_free(&sm);
}

static void test_held_reach_the_queue_in_wire_order(void **state)
{
	(void)state;
	struct c2s_sm *sm = c2s_sm_new(NULL);
	struct xml_node *a = msg("a"), *b = msg("b"), *c = msg("c");
	/* held bytes: a at [0,10), c at [10,20); then b is put at 10 (an
	 * answer to earlier input goes before later output) */
	c2s_sm_held_insert(sm, 0, 10, a, 0, NULL, false);
	c2s_sm_held_insert(sm, 10, 10, c, 0, NULL, false);
	c2s_sm_held_insert(sm, 10, 5, b, 0, NULL, false);
	assert_int_equal(c2s_sm_count(sm), 0);
	c2s_sm_held_written(sm, 15); /* a and b went out */
	assert_int_equal(c2s_sm_count(sm), 2);
	assert_string_equal(entry_id(sm, 0), "a");
	assert_string_equal(entry_id(sm, 1), "b");
	assert_int_equal(sm->held[0].end, 10);
	c2s_sm_held_written(sm, 10);
	assert_int_equal(c2s_sm_count(sm), 3);
	assert_string_equal(entry_id(sm, 2), "c");
	assert_int_equal(sm->out, 3);
	xml_unref(&a);
	xml_unref(&b);
	xml_unref(&c);
	c2s_sm_free(&sm);
}

static void test_held_moved_answer(void **state)
{
	(void)state;
	struct c2s_sm *sm = c2s_sm_new(NULL);
	struct xml_node *a = msg("a"), *b = msg("b"), *c = msg("c");
	/* a [0,10), b [10,14), then c serialised at the end [14,20) and
	 * moved to 10 (before b) */
	c2s_sm_held_insert(sm, 0, 10, a, 0, NULL, false);
	c2s_sm_held_insert(sm, 10, 4, b, 0, NULL, false);
	c2s_sm_held_insert(sm, 14, 6, c, 0, NULL, true);
	c2s_sm_held_move_last(sm, 10, 6);
	assert_int_equal(sm->nheld, 3);
	assert_int_equal(sm->held[1].end, 16);
	assert_int_equal(sm->held[2].end, 20);
	c2s_sm_held_written(sm, 20);
	assert_string_equal(entry_id(sm, 0), "a");
	assert_string_equal(entry_id(sm, 1), "c");
	assert_string_equal(entry_id(sm, 2), "b");
	/* whether the device was told of it goes with the stanza */
	assert_false(c2s_sm_entry(sm, 0)->told);
	assert_true(c2s_sm_entry(sm, 1)->told);
	assert_false(c2s_sm_entry(sm, 2)->told);
	xml_unref(&a);
	xml_unref(&b);
	xml_unref(&c);
	c2s_sm_free(&sm);
}

static void test_resumption_ids(void **state)
{
	(void)state;
	struct c2s_sm *one = c2s_sm_new(NULL), *two = c2s_sm_new(NULL);
	c2s_sm_make_resumable(one, 60);
	c2s_sm_make_resumable(two, 60);
	assert_int_equal(strlen(one->id), 24);
	assert_string_not_equal(one->id, two->id);
	assert_ptr_equal(c2s_sm_find(one->id), one);
	assert_ptr_equal(c2s_sm_find(two->id), two);
	char part[25];
	memcpy(part, one->id, 23);
	part[23] = '\0';
	assert_null(c2s_sm_find(part));
	assert_null(c2s_sm_find(NULL));
	c2s_sm_free(&one);
	assert_null(c2s_sm_find(part));
	char id[25];
	strcpy(id, two->id);
	c2s_sm_free(&two);
	assert_null(c2s_sm_find(id));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_h_compare_wraps),
		cmocka_unit_test(test_ack_drops_the_acknowledged),
		cmocka_unit_test(test_ack_across_the_wrap),
		cmocka_unit_test(test_held_reach_the_queue_in_wire_order),
		cmocka_unit_test(test_held_moved_answer),
		cmocka_unit_test(test_resumption_ids),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
