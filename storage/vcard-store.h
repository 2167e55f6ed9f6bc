/*
 * Storage of vCards: one job struct per operation and what a backend
 * implements for them (struct vcard_store_vfuncs).  A user's vCard (XEP-0054),
 * kept as text.
 *
 * Only storage/ includes this; the public functions and their contracts
 * are in storage.h, the generic job machinery in storage-private.h.  A
 * job's inputs are copies in its pool; its work fills the results (in the
 * pool too) and returns the result.  Each vfunc runs where the store runs
 * jobs (a worker thread, or the loop for a store without workers) and gets
 * that place's connection state as conn.
 */
#ifndef PARLEY_STORAGE_VCARD_STORE_H
#define PARLEY_STORAGE_VCARD_STORE_H

#include "storage/storage-private.h"

struct vcard_get_job {
	struct storage_req base;
	storage_text_cb *cb;
	/* results */
	char *out_text; /* in pool */
};

struct vcard_set_job {
	struct storage_req base;
	storage_done_cb *cb;
	const char *text; /* the vCard */
};

struct vcard_store_vfuncs {
	enum storage_result (*get)(void *conn, struct vcard_get_job *j);
	enum storage_result (*set)(void *conn, struct vcard_set_job *j);
};

#endif
