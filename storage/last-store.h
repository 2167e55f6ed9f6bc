/*
 * Storage of last activity: one job struct per operation and what a backend
 * implements for them (struct last_store_vfuncs).  When a user last logged
 * out, and the status it left (XEP-0012).
 *
 * Only storage/ includes this; the public functions and their contracts
 * are in storage.h, the generic job machinery in storage-private.h.  A
 * job's inputs are copies in its pool; its work fills the results (in the
 * pool too) and returns the result.  Each vfunc runs where the store runs
 * jobs (a worker thread, or the loop for a store without workers) and gets
 * that place's connection state as conn.
 */
#ifndef PARLEY_STORAGE_LAST_STORE_H
#define PARLEY_STORAGE_LAST_STORE_H

#include "storage/storage-private.h"

struct last_get_job {
	struct storage_req base;
	storage_last_cb *cb;
	/* results */
	struct last_activity last; /* status in pool */
};

struct last_set_job {
	struct storage_req base;
	storage_done_cb *cb;
	int64_t when;
	const char *text; /* the status; NULL: none */
};

struct last_store_vfuncs {
	enum storage_result (*get)(void *conn, struct last_get_job *j);
	enum storage_result (*set)(void *conn, struct last_set_job *j);
};

#endif
