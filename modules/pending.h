/*
 * The operations a module instance has in flight (storage, auth, LDAP or
 * other backend calls it waits for), written once for every module: a
 * list in the module's state, each operation's call and the request it
 * answers, and what a stop does with them.  Loop thread.
 *
 * How a module uses it: its op struct starts with a struct pending_op, its
 * state holds a struct pending_ops.
 *
 *   op = xcalloc(1, sizeof(*op));
 *   pending_track(&state->ops, &op->p, op_free_fn);   // op_free_fn frees the whole op
 *   op->p.req = req;                                   // answered if the module stops
 *   pending_wait_storage(&op->p, storage_roster_get(..., callback, op));
 *
 *   static void callback(enum storage_result res, ..., void *ctx)
 *   {
 *           struct my_op *op = ctx;
 *           if (!pending_resume(&op->p))
 *                   return;               // the module stopped: op is freed
 *           ... answer, or wait again ...
 *   }
 *
 * and in stop: pending_stop(&state->ops) once the hooks and iq handlers are
 * gone.  Nothing here keeps the module state: an op that outlives its
 * module (outlives_stop) must not touch it once pending_listed() is false.
 *
 * Invariants: an op is on at most one list, oldest first; an op has at most
 * one call in flight; pending_stop leaves no listed op behind, and after it
 * no callback of a cancelled call runs.
 */
#ifndef PARLEY_MODULES_PENDING_H
#define PARLEY_MODULES_PENDING_H

#include <stdbool.h>
#include <stddef.h>

struct iq_request;
struct storage_req;
struct auth_req;
struct pending_ops;
struct pending_op;

typedef void pending_cancel_fn(void *call);
typedef void pending_free_fn(struct pending_op *op);

struct pending_op {
	struct pending_op *prev, *next; /* the list, oldest first */
	struct pending_ops *list;       /* NULL when not listed (orphaned by a stop) */
	struct iq_request *req;         /* the request it answers, or NULL */
	void *call;                     /* the call in flight, or NULL */
	pending_cancel_fn *cancel;      /* cancels call: its callback will not run */
	pending_free_fn *free;          /* frees the module's whole op */
	bool outlives_stop;             /* a stop leaves its call running (a write that
	                                     must finish); its callback frees it */
	bool in_callback;               /* between pending_resume and the next wait */
};

struct pending_ops {
	struct pending_op *head, *tail;
	size_t count;
};

/* List op (zeroed by the caller, the first member of the module's op) at
 * the tail of l; free_fn frees the whole op (it calls pending_untrack or
 * nothing: an op is unlisted before it is freed by these functions). */
void pending_track(struct pending_ops *l, struct pending_op *op, pending_free_fn *free_fn);
/* Take op off its list (nothing happens when it is not listed). */
void pending_untrack(struct pending_op *op);
static inline bool pending_listed(const struct pending_op *op)
{
	return op->list != NULL;
}

/* op waits for call (cancelled with cancel at a stop); call NULL: it waits
 * for nothing (it is idle: queued behind another op, or waiting for a
 * timer of the module). */
void pending_wait(struct pending_op *op, void *call, pending_cancel_fn *cancel);
/* A callback keeps op without a new call: op is idle (a stop frees it). */
static inline void pending_idle(struct pending_op *op)
{
	pending_wait(op, NULL, NULL);
}
void pending_wait_storage(struct pending_op *op, struct storage_req *call);
/* op waits for a callback the module cannot cancel and that runs even
 * when the module stops meanwhile (another module's answer: PEP's,
 * modules/pep.h): a stop leaves op to it, as an outlives_stop op. */
void pending_wait_answer(struct pending_op *op);
/* In such a callback: true when the module still runs (op goes on as an
 * ordinary op); false when it stopped meanwhile (op has been freed). */
bool pending_resume_answer(struct pending_op *op);
void pending_wait_auth(struct pending_op *op, struct auth_req *call);

/* In the callback of op's call: the call has answered.  Returns true when
 * the callback goes on; false when the module stopped meanwhile and op was
 * not outlives_stop (op has been freed).  An outlives_stop op gets true
 * either way: check pending_listed before touching module state. */
bool pending_resume(struct pending_op *op);

/* Cancel op's call and free op (off its list); false, with nothing done,
 * when op has no call in flight (it is inside its callback, which frees
 * it). */
bool pending_cancel(struct pending_op *op);
/* Cancel op's call only (op stays as it is, waiting for nothing): for a
 * module that answers its own way before freeing op.  False when op had
 * no call. */
bool pending_cancel_call(struct pending_op *op);

/* The module stops: every op is taken off l; its request, if any, is
 * answered with <service-unavailable/> ("the service is shutting down");
 * then an outlives_stop op is left to its callback, an op with a call has
 * it cancelled and is freed, an op inside its callback is left to that
 * callback, which frees it (pending_resume said true: it must not touch
 * the module state once it returns), and an idle op is freed. */
void pending_stop(struct pending_ops *l);

#endif
