/*
 * Barriers: a stream's answers wait for the durable work its earlier input
 * started.  Loop thread only.
 *
 * RFC 6120 §10.1 asks for in-order processing: once the server has answered
 * a stanza of a stream, every earlier stanza of that stream must have been
 * handled, and for a message stored offline "handled" means committed.  The
 * owner of an input (a client stream, a control connection) keeps a barrier;
 * while it hands one stanza or command on, it makes the barrier current
 * (barrier_enter / barrier_leave).  Whoever accepts work on the way that
 * finishes later (an offline store, an iq set in flight) takes a hold on the
 * current barrier and releases it when the work is durable, or failed and
 * was answered.  The owner takes a mark for each answer it would write and
 * writes the answer once the barrier has passed that mark, that is once
 * every hold taken before the mark was released.
 *
 * Holds are numbered in the order they are taken; a mark is the number of
 * the last hold taken so far.  Releasing a hold calls the owner's advance
 * callback (from the release, on the loop thread) so it can write what now
 * passes.  A barrier outlives its owner while holds are out: barrier_free
 * detaches the owner, and the last release frees it.
 */
#ifndef PARLEY_BARRIER_H
#define PARLEY_BARRIER_H

#include <stdbool.h>
#include <stdint.h>

struct barrier;
struct barrier_hold;

/* Called after a hold was released (the barrier may have advanced). */
typedef void barrier_advance_cb(void *ctx);

struct barrier *barrier_new(barrier_advance_cb *advance, void *ctx);
/* Detach the owner (advance is not called again) and drop its reference;
 * the barrier is freed now or at the last release.  NULLs *b. */
void barrier_free(struct barrier **b);

/* Make b current while one input is handed on (nesting keeps the outer one
 * and restores it on leave).  enter returns what leave restores. */
struct barrier *barrier_enter(struct barrier *b);
void barrier_leave(struct barrier *previous);
/* The barrier current now, or NULL (work not started by an input). */
struct barrier *barrier_current(void);

/* A hold on the current barrier (NULL when there is none: nothing to
 * order against), released with barrier_release. */
struct barrier_hold *barrier_hold_current(void);
struct barrier_hold *barrier_hold(struct barrier *b);
/* Release (NULL is fine); NULLs *h. */
void barrier_release(struct barrier_hold **h);

/* While the work behind hold h answers (routes its reply, or a bounce),
 * make it the hold being answered: the owner puts that output where h's
 * input stood, before what it was given for later input, so answers come
 * in the order of the input.  enter returns what leave restores; h may be
 * NULL (nothing to place). */
struct barrier_hold *barrier_answer_enter(struct barrier_hold *h);
void barrier_answer_leave(struct barrier_hold *previous);
/* The number of the hold of b being answered now, or 0. */
uint64_t barrier_answering(const struct barrier *b);

/* Work that holds a barrier and hands on a stanza that starts more
 * durable work (a subscription stanza to a local contact, whose roster is
 * written next) hands its hold on: a hold taken then would come after
 * answers already waiting, and would not hold them back.  Between
 * barrier_hand_on(hold) and barrier_hand_on_end(previous), the first
 * barrier_take() takes *hold over (and NULLs it); the caller releases
 * *hold when nobody took it. */
struct barrier_hold **barrier_hand_on(struct barrier_hold **hold);
void barrier_hand_on_end(struct barrier_hold **previous);
/* For work accepted now that must be durable before its input is answered
 * again: the hold handed on, or else a hold on the current barrier (NULL
 * when there is none). */
struct barrier_hold *barrier_take(void);

/* What an answer written now must wait for. */
uint64_t barrier_mark(const struct barrier *b);
/* Whether every hold taken up to mark has been released. */
bool barrier_passed(const struct barrier *b, uint64_t mark);
/* Whether any hold is out. */
bool barrier_busy(const struct barrier *b);

#endif
