/*
 * Storage of shared roster groups: one job struct per operation and what a
 * backend implements for them (struct srg_store_vfuncs).  The groups an
 * administrator defines per host (mod_shared_roster).  Host-wide: their jobs
 * have no user.
 *
 * Only storage/ includes this; the public functions and their contracts
 * are in storage.h, the generic job machinery in storage-private.h.  A
 * job's inputs are copies in its pool; its work fills the results (in the
 * pool too) and returns the result.  Each vfunc runs where the store runs
 * jobs (a worker thread, or the loop for a store without workers) and gets
 * that place's connection state as conn.
 */
#ifndef PARLEY_STORAGE_SRG_STORE_H
#define PARLEY_STORAGE_SRG_STORE_H

#include "storage/storage-private.h"

struct srg_list_job {
	struct storage_req base;
	storage_list_cb *cb;
	/* results */
	struct strlist names; /* in pool */
};

struct srg_get_job {
	struct storage_req base;
	storage_srg_cb *cb;
	const char *name; /* NULL: every group */
	/* results */
	struct srg_group *groups; /* in pool */
	size_t ngroups;
};

struct srg_create_job {
	struct storage_req base;
	storage_done_cb *cb;
	struct srg_group grp; /* strings in pool */
};

struct srg_delete_job {
	struct storage_req base;
	storage_done_cb *cb;
	const char *name;
};

struct srg_member_add_job {
	struct storage_req base;
	storage_done_cb *cb;
	const char *name; /* the group */
	const char *member;
};

struct srg_member_remove_job {
	struct storage_req base;
	storage_done_cb *cb;
	const char *name; /* the group */
	const char *member;
};

struct srg_user_groups_job {
	struct storage_req base;
	storage_list_cb *cb;
	const char *member; /* the bare JID */
	/* results */
	struct strlist names; /* in pool */
};

struct srg_names_job {
	struct storage_req base;
	storage_srg_names_cb *cb;
	/* results */
	struct srg_name *names; /* in pool */
	size_t nnames;
};

struct srg_store_vfuncs {
	enum storage_result (*list)(void *conn, struct srg_list_job *j);
	enum storage_result (*get)(void *conn, struct srg_get_job *j);
	enum storage_result (*create)(void *conn, struct srg_create_job *j);
	enum storage_result (*delete)(void *conn, struct srg_delete_job *j);
	enum storage_result (*member_add)(void *conn, struct srg_member_add_job *j);
	enum storage_result (*member_remove)(void *conn, struct srg_member_remove_job *j);
	enum storage_result (*user_groups)(void *conn, struct srg_user_groups_job *j);
	/* Optional (NULL: STORAGE_ERROR): the users' names the store keeps. */
	enum storage_result (*names)(void *conn, struct srg_names_job *j);
};

#endif
