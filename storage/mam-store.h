/*
 * Storage of message archives (XEP-0313): one job struct per operation
 * and what a backend implements for them (struct mam_store_vfuncs).  The
 * archive of one owner (a user's or a room's bare JID) is a list of
 * messages ordered by the id the module gives each; the owner's archiving
 * preferences sit beside it.
 *
 * A job's base.user is not a user: it is the key that orders the jobs
 * (storage.c runs the jobs of one host+user on one worker, in order): the
 * owner, so one owner's stores, queries and deletes keep their order while
 * different owners are written in parallel.  The work reads the owner from
 * the job's own field.  Retention (expire) covers every owner of a host:
 * its key is NULL (a host-wide job).
 *
 * Only storage/ includes this; the public functions and their contracts
 * are in storage.h, the generic job machinery in storage-private.h.  A
 * job's inputs are copies in its pool; its work fills the results (in the
 * pool too) and returns the result.  Each vfunc runs where the store runs
 * jobs (a worker thread, or the loop for a store without workers) and gets
 * that place's connection state as conn.
 */
#ifndef PARLEY_STORAGE_MAM_STORE_H
#define PARLEY_STORAGE_MAM_STORE_H

#include "storage/storage-private.h"

struct mam_store_job {
	struct storage_req base;
	storage_done_cb *cb;
	const char *owner;
	struct mam_message msg; /* copy in pool; body may be NULL */
};

struct mam_query_job {
	struct storage_req base;
	storage_mam_query_cb *cb;
	const char *owner;
	/* copy in pool; ids sorted ascending, without repeats; max >= 1 */
	struct mam_query q;
	/* results, in pool: ascending id order, at most q.max of them */
	struct mam_message *msgs;
	size_t nmsgs;
	bool complete;
};

struct mam_owner_delete_job {
	struct storage_req base;
	storage_done_cb *cb;
	const char *owner;
};

struct mam_expire_job {
	struct storage_req base;
	storage_count_cb *cb;
	int64_t before;
	unsigned limit; /* 0: no limit */
	/* result */
	uint64_t count;
};

struct mam_prefs_get_job {
	struct storage_req base;
	storage_mam_prefs_cb *cb;
	const char *owner;
	/* result, in pool: lists sorted byte-wise */
	struct mam_prefs prefs;
};

struct mam_prefs_set_job {
	struct storage_req base;
	storage_done_cb *cb;
	const char *owner;
	/* copy in pool: lists sorted byte-wise without repeats; a JID in both
	 * lists is kept in never only */
	struct mam_prefs prefs;
};

/* Every operation is one transaction; base.host is the virtual host. */
struct mam_store_vfuncs {
	/* STORAGE_EXISTS when owner has another message with that id; the
	 * same message (peer, resource, direction and stanza) already there is
	 * STORAGE_OK: a retry of a store whose answer was lost. */
	enum storage_result (*store)(void *conn, struct mam_store_job *j);
	/* Optional: store n jobs (in order) in one transaction, each job's
	 * result in its base.res.  false: nothing was stored (each job is
	 * then run alone: a duplicate id among them makes the batch fail). */
	bool (*store_batch)(void *conn, struct mam_store_job **jobs, size_t n);
	enum storage_result (*query)(void *conn, struct mam_query_job *j);
	/* The owner's messages (not its preferences); STORAGE_OK also when
	 * the owner had nothing stored. */
	enum storage_result (*owner_delete)(void *conn, struct mam_owner_delete_job *j);
	enum storage_result (*expire)(void *conn, struct mam_expire_job *j);
	/* STORAGE_NOT_FOUND when none were stored. */
	enum storage_result (*prefs_get)(void *conn, struct mam_prefs_get_job *j);
	enum storage_result (*prefs_set)(void *conn, struct mam_prefs_set_job *j);
};

/* "always", "never", "roster" and back (-1: none of them). */
const char *mam_default_str(enum mam_default d);
int mam_default_parse(const char *s);

#endif
