/*
 * Storage of offline messages: one job struct per operation and what a backend
 * implements for them (struct offline_store_vfuncs).  A user's queue of
 * offline messages (XEP-0160).
 *
 * Only storage/ includes this; the public functions and their contracts
 * are in storage.h, the generic job machinery in storage-private.h.  A
 * job's inputs are copies in its pool; its work fills the results (in the
 * pool too) and returns the result.  Each vfunc runs where the store runs
 * jobs (a worker thread, or the loop for a store without workers) and gets
 * that place's connection state as conn.
 */
#ifndef PARLEY_STORAGE_OFFLINE_STORE_H
#define PARLEY_STORAGE_OFFLINE_STORE_H

#include "storage/storage-private.h"

#define OFFLINE_TOKEN_LEN 24

struct offline_store_job {
	struct storage_req base;
	storage_done_cb *cb;
	const char *from;
	const char *stanza;
	unsigned max; /* quota (0: none) */
	/* random, the same for every try of the job: a try that runs again
	 * after the answer to an earlier try's COMMIT was lost finds the row
	 * that try stored (the SQL stores on a database server keep it in a
	 * unique column and draw it at the first try; "" until then) */
	char token[OFFLINE_TOKEN_LEN + 1];
};

/* storage_offline_store with the job's token given (OFFLINE_TOKEN_LEN
 * characters) instead of one drawn by the store: the store's tests run
 * a job "again" with it. */
struct storage_req *storage_offline_store_token(struct storage *st, const char *host, const char *user,
                                                const char *from_jid, const char *stanza_xml,
                                                unsigned max_per_user, const char *token, storage_done_cb *cb,
                                                void *ctx);

/* offline_get, and offline_page (limit > 0) */
struct offline_get_job {
	struct storage_req base;
	storage_offline_cb *cb;
	storage_offline_page_cb *page_cb;
	int64_t after;  /* paged: only messages with a greater seq */
	unsigned limit; /* 0: the whole queue */
	/* results */
	struct offline_message *msgs; /* in pool */
	size_t nmsgs;
	uint64_t total, more; /* paged: the queue's length, messages after msgs */
};

struct offline_delete_upto_job {
	struct storage_req base;
	storage_done_cb *cb;
	int64_t seq;
};

/* base.user NULL: every queue of the host together */
struct offline_count_job {
	struct storage_req base;
	storage_count_cb *cb;
	/* results */
	uint64_t count;
};

struct offline_store_vfuncs {
	enum storage_result (*store)(void *conn, struct offline_store_job *j);
	/* Optional: store n jobs (in order) in one transaction, each job's
	 * result in its base.res, as if each had been stored alone after the
	 * ones before it.  false: nothing was stored (each job is then run
	 * alone). */
	bool (*store_batch)(void *conn, struct offline_store_job **jobs, size_t n);
	/* The whole queue, or (j->limit > 0) at most limit messages after
	 * j->after with the counts total and more. */
	enum storage_result (*get)(void *conn, struct offline_get_job *j);
	enum storage_result (*delete_upto)(void *conn, struct offline_delete_upto_job *j);
	enum storage_result (*count)(void *conn, struct offline_count_job *j);
};

#endif
