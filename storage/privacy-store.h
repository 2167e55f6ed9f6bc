/*
 * Storage of privacy lists and blocking: one job struct per operation and what
 * a backend implements for them (struct privacy_store_vfuncs).  A user's
 * privacy lists (XEP-0016) and block list (XEP-0191): the two ways of saying
 * whom a user does not want to hear from.
 *
 * Only storage/ includes this; the public functions and their contracts
 * are in storage.h, the generic job machinery in storage-private.h.  A
 * job's inputs are copies in its pool; its work fills the results (in the
 * pool too) and returns the result.  Each vfunc runs where the store runs
 * jobs (a worker thread, or the loop for a store without workers) and gets
 * that place's connection state as conn.
 */
#ifndef PARLEY_STORAGE_PRIVACY_STORE_H
#define PARLEY_STORAGE_PRIVACY_STORE_H

#include "storage/storage-private.h"

struct privacy_get_job {
	struct storage_req base;
	storage_privacy_cb *cb;
	/* results */
	struct privacy_list *plists; /* in pool */
	size_t nplists;
	char *default_name;
};

struct privacy_set_list_job {
	struct storage_req base;
	storage_done_cb *cb;
	const char *lname;
	struct privacy_item *prv_in; /* in pool */
	size_t nprv_in;
};

struct privacy_remove_list_job {
	struct storage_req base;
	storage_done_cb *cb;
	const char *lname;
};

struct privacy_set_default_job {
	struct storage_req base;
	storage_done_cb *cb;
	const char *lname; /* NULL: no default */
};

struct blocklist_get_job {
	struct storage_req base;
	storage_list_cb *cb;
	/* results */
	struct strlist names; /* in pool */
};

struct blocklist_add_job {
	struct storage_req base;
	storage_done_cb *cb;
	const char **jids; /* in pool */
	size_t njids;
};

struct blocklist_remove_job {
	struct storage_req base;
	storage_done_cb *cb;
	const char **jids; /* in pool; NULL when njids is 0 */
	size_t njids;
};

struct privacy_store_vfuncs {
	enum storage_result (*get)(void *conn, struct privacy_get_job *j);
	enum storage_result (*set_list)(void *conn, struct privacy_set_list_job *j);
	enum storage_result (*remove_list)(void *conn, struct privacy_remove_list_job *j);
	enum storage_result (*set_default)(void *conn, struct privacy_set_default_job *j);
	enum storage_result (*blocklist_get)(void *conn, struct blocklist_get_job *j);
	enum storage_result (*blocklist_add)(void *conn, struct blocklist_add_job *j);
	enum storage_result (*blocklist_remove)(void *conn, struct blocklist_remove_job *j);
};

#endif
