/*
 * Barriers (see barrier.h).  Loop thread only: the current barrier is one
 * pointer of the loop thread.
 *
 * Invariants:
 * - Holds are linked in the order they were taken (numbers increase from
 *   head to tail), so the oldest hold still out is the head and
 *   barrier_passed is one comparison.
 * - refs counts the owner (until barrier_free) and every hold out; the
 *   barrier is freed when it reaches zero.
 */
#include "barrier.h"
#include "util.h"

#include <assert.h>
#include <stdlib.h>

struct barrier_hold {
	struct barrier *b;
	uint64_t seq;
	struct barrier_hold *prev, *next;
};

struct barrier {
	barrier_advance_cb *advance; /* NULL once the owner is gone */
	void *ctx;
	uint64_t taken; /* number of the last hold taken */
	unsigned refs;
	struct barrier_hold *head, *tail;
};

static struct barrier *current;
static struct barrier_hold *answering;
static struct barrier_hold **handing; /* barrier_hand_on's hold, or NULL */

struct barrier *barrier_new(barrier_advance_cb *advance, void *ctx)
{
	struct barrier *b = xcalloc(1, sizeof(*b));
	b->advance = advance;
	b->ctx = ctx;
	b->refs = 1;
	return b;
}

static void barrier_unref(struct barrier *b)
{
	assert(b->refs > 0);
	if (--b->refs == 0) {
		assert(b->head == NULL);
		if (current == b)
			current = NULL;
		free(b);
	}
}

void barrier_free(struct barrier **bp)
{
	struct barrier *b = *bp;
	if (b == NULL)
		return;
	*bp = NULL;
	b->advance = NULL;
	b->ctx = NULL;
	barrier_unref(b);
}

struct barrier *barrier_enter(struct barrier *b)
{
	struct barrier *previous = current;
	current = b;
	return previous;
}

void barrier_leave(struct barrier *previous)
{
	current = previous;
}

struct barrier *barrier_current(void)
{
	return current;
}

struct barrier_hold *barrier_hold(struct barrier *b)
{
	if (b == NULL)
		return NULL;
	struct barrier_hold *h = xcalloc(1, sizeof(*h));
	h->b = b;
	h->seq = ++b->taken;
	h->prev = b->tail;
	if (b->tail != NULL)
		b->tail->next = h;
	else
		b->head = h;
	b->tail = h;
	b->refs++;
	return h;
}

struct barrier_hold *barrier_hold_current(void)
{
	return barrier_hold(current);
}

void barrier_release(struct barrier_hold **hp)
{
	struct barrier_hold *h = *hp;
	if (h == NULL)
		return;
	*hp = NULL;
	assert(answering != h); /* released inside its own answer */
	struct barrier *b = h->b;
	if (h->prev != NULL)
		h->prev->next = h->next;
	else
		b->head = h->next;
	if (h->next != NULL)
		h->next->prev = h->prev;
	else
		b->tail = h->prev;
	free(h);
	if (b->advance != NULL)
		b->advance(b->ctx);
	barrier_unref(b);
}

struct barrier_hold *barrier_answer_enter(struct barrier_hold *h)
{
	struct barrier_hold *previous = answering;
	answering = h;
	return previous;
}

void barrier_answer_leave(struct barrier_hold *previous)
{
	answering = previous;
}

uint64_t barrier_answering(const struct barrier *b)
{
	return answering != NULL && answering->b == b ? answering->seq : 0;
}

struct barrier_hold **barrier_hand_on(struct barrier_hold **hold)
{
	struct barrier_hold **previous = handing;
	handing = hold;
	return previous;
}

void barrier_hand_on_end(struct barrier_hold **previous)
{
	handing = previous;
}

struct barrier_hold *barrier_take(void)
{
	if (handing != NULL && *handing != NULL) {
		struct barrier_hold *h = *handing;
		*handing = NULL;
		return h;
	}
	return barrier_hold_current();
}

uint64_t barrier_mark(const struct barrier *b)
{
	return b->taken;
}

bool barrier_passed(const struct barrier *b, uint64_t mark)
{
	return b->head == NULL || b->head->seq > mark;
}

bool barrier_busy(const struct barrier *b)
{
	return b->head != NULL;
}
