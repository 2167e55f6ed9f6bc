/*
 * Storage of roster: one job struct per operation and what a backend
 * implements for them (struct roster_store_vfuncs).  A user's roster items and
 * its version (RFC 6121).
 *
 * Only storage/ includes this; the public functions and their contracts
 * are in storage.h, the generic job machinery in storage-private.h.  A
 * job's inputs are copies in its pool; its work fills the results (in the
 * pool too) and returns the result.  Each vfunc runs where the store runs
 * jobs (a worker thread, or the loop for a store without workers) and gets
 * that place's connection state as conn.
 */
#ifndef PARLEY_STORAGE_ROSTER_STORE_H
#define PARLEY_STORAGE_ROSTER_STORE_H

#include "storage/storage-private.h"

struct roster_get_job {
	struct storage_req base;
	storage_roster_cb *cb;
	/* results */
	struct roster_item *items; /* in pool */
	size_t nitems;
	uint64_t version;
};

struct roster_set_job {
	struct storage_req base;
	storage_done_cb *cb;
	struct roster_item item; /* strings in pool */
};

struct roster_remove_job {
	struct storage_req base;
	storage_done_cb *cb;
	const char *jid;
};

struct roster_store_vfuncs {
	enum storage_result (*get)(void *conn, struct roster_get_job *j);
	enum storage_result (*set)(void *conn, struct roster_set_job *j);
	enum storage_result (*remove)(void *conn, struct roster_remove_job *j);
};

#endif
