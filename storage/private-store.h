/*
 * Storage of private XML storage: one job struct per operation and what a
 * backend implements for them (struct private_store_vfuncs).  The elements a
 * user stored by namespace (XEP-0049).
 *
 * Only storage/ includes this; the public functions and their contracts
 * are in storage.h, the generic job machinery in storage-private.h.  A
 * job's inputs are copies in its pool; its work fills the results (in the
 * pool too) and returns the result.  Each vfunc runs where the store runs
 * jobs (a worker thread, or the loop for a store without workers) and gets
 * that place's connection state as conn.
 */
#ifndef PARLEY_STORAGE_PRIVATE_STORE_H
#define PARLEY_STORAGE_PRIVATE_STORE_H

#include "storage/storage-private.h"

struct private_get_job {
	struct storage_req base;
	storage_text_cb *cb;
	const char *ns;
	/* results */
	char *out_text; /* in pool */
};

struct private_set_job {
	struct storage_req base;
	storage_done_cb *cb;
	struct private_item *pitems; /* in pool */
	size_t npitems;
};

struct private_list_job {
	struct storage_req base;
	storage_private_list_cb *cb;
	/* results */
	struct private_item *pitems; /* in pool */
	size_t npitems;
};

struct private_store_vfuncs {
	enum storage_result (*get)(void *conn, struct private_get_job *j);
	enum storage_result (*set)(void *conn, struct private_set_job *j);
	enum storage_result (*list)(void *conn, struct private_list_job *j);
};

#endif
