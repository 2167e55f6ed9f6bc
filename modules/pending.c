/*
 * The pending-operation list of a module instance (pending.h): tracking,
 * waiting for a call, resuming in its callback, cancelling one op and
 * draining the list when the module stops.  Loop thread.
 *
 * Invariants: the list is doubly linked, oldest first, and counted; an op
 * is listed on one list or none; free is called only on an op that is off
 * its list; a stop answers each request once and leaves no op listed.
 */
#include "pending.h"
#include "server/iq.h"
#include "storage/storage.h"
#include "auth/auth.h"

#include <assert.h>

void pending_track(struct pending_ops *l, struct pending_op *op, pending_free_fn *free_fn)
{
	assert(op->list == NULL);
	op->free = free_fn;
	op->list = l;
	op->next = NULL;
	op->prev = l->tail;
	if (l->tail != NULL)
		l->tail->next = op;
	else
		l->head = op;
	l->tail = op;
	l->count++;
}

void pending_untrack(struct pending_op *op)
{
	struct pending_ops *l = op->list;
	if (l == NULL)
		return;
	if (op->prev != NULL)
		op->prev->next = op->next;
	else
		l->head = op->next;
	if (op->next != NULL)
		op->next->prev = op->prev;
	else
		l->tail = op->prev;
	l->count--;
	op->prev = op->next = NULL;
	op->list = NULL;
}

void pending_wait(struct pending_op *op, void *call, pending_cancel_fn *cancel)
{
	op->in_callback = false;
	op->call = call;
	op->cancel = call != NULL ? cancel : NULL;
}

static void cancel_storage(void *call)
{
	storage_cancel(call);
}

static void cancel_auth(void *call)
{
	auth_cancel(call);
}

void pending_wait_storage(struct pending_op *op, struct storage_req *call)
{
	pending_wait(op, call, cancel_storage);
}

void pending_wait_auth(struct pending_op *op, struct auth_req *call)
{
	pending_wait(op, call, cancel_auth);
}

void pending_wait_answer(struct pending_op *op)
{
	op->outlives_stop = true;
	pending_wait(op, NULL, NULL);
}

bool pending_resume_answer(struct pending_op *op)
{
	pending_resume(op);
	op->outlives_stop = false;
	if (op->list == NULL) {
		op->free(op);
		return false;
	}
	return true;
}

bool pending_resume(struct pending_op *op)
{
	op->call = NULL;
	op->cancel = NULL;
	if (op->list != NULL || op->outlives_stop) {
		op->in_callback = true;
		return true;
	}
	op->free(op);
	return false;
}

bool pending_cancel_call(struct pending_op *op)
{
	if (op->call == NULL)
		return false;
	pending_cancel_fn *cancel = op->cancel;
	void *call = op->call;
	op->call = NULL;
	op->cancel = NULL;
	cancel(call);
	return true;
}

bool pending_cancel(struct pending_op *op)
{
	if (!pending_cancel_call(op))
		return false;
	pending_untrack(op);
	op->free(op);
	return true;
}

void pending_stop(struct pending_ops *l)
{
	while (l->head != NULL) {
		struct pending_op *op = l->head;
		pending_untrack(op);
		if (op->req != NULL) {
			struct iq_request *req = op->req;
			op->req = NULL;
			iq_error(req, SE_SERVICE_UNAVAILABLE, "the service is shutting down");
		}
		if (op->outlives_stop)
			continue; /* its callback finishes and frees it */
		if (pending_cancel_call(op)) {
			op->free(op);
		} else if (!op->in_callback) {
			op->free(op); /* idle */
		}
		/* else: inside its callback, which frees it */
	}
}
