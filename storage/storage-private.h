/*
 * What a storage backend implements, and the job machinery every backend
 * shares.  Only storage/ and its tests include this.
 *
 * Shape: each feature area (accounts, roster, offline, ...) has a header
 * storage/<area>-store.h with one job struct per operation and a struct
 * <area>_store_vfuncs of typed operations; its front, storage/<area>-store.c,
 * implements the public functions of storage.h for that area: it copies the
 * arguments into a new job and hands it to storage_req_submit, and, when
 * the job is finished, calls the caller's callback with the job's results.
 * A backend (the SQL store, the memory store, the LDAP read-only store)
 * fills in the vfuncs of the areas it implements (struct storage; NULL for
 * the others, whose jobs then fail with STORAGE_ERROR) and says where the
 * work runs.
 *
 * Threads: a job is created, submitted, cancelled, finished and freed on the
 * loop thread.  Its operation's work (the area vfunc) runs on a thread of the
 * store's worker group when the store has one (then it reads only the job
 * and the store's immutable settings), otherwise on the loop thread from the
 * loop, later.
 *
 * Invariants (kept by storage.c):
 * - a job's callback runs at most once, from the loop, never inside the call
 *   that created the job and never after storage_cancel;
 * - jobs of one host+user run in the order they were submitted (one worker
 *   per host+user);
 * - every job has a deadline (storage.timeout): a job no worker took in time
 *   fails with STORAGE_TEMPFAIL;
 * - a job that cannot be queued (queue full, store closing) fails with
 *   STORAGE_TEMPFAIL from the loop later (the fail-later list);
 * - results are reported only with STORAGE_OK: for any other result the
 *   callback gets NULL / empty results whatever the work left in the job.
 */
#ifndef PARLEY_STORAGE_PRIVATE_H
#define PARLEY_STORAGE_PRIVATE_H

#include "storage/storage.h"
#include "lib/log.h"
#include "lib/worker.h"

#include <pthread.h>

struct storage_req;
struct account_store_vfuncs;
struct roster_store_vfuncs;
struct offline_store_vfuncs;
struct vcard_store_vfuncs;
struct private_store_vfuncs;
struct privacy_store_vfuncs;
struct last_store_vfuncs;
struct srg_store_vfuncs;
struct search_store_vfuncs;
struct muc_store_vfuncs;
struct pubsub_store_vfuncs;
struct mam_store_vfuncs;

/* Work of one job: calls the area vfunc with the backend's per-thread state
 * (conn) and sets req->res.  Worker thread (or loop, for a store without
 * workers). */
typedef void storage_work_fn(struct storage_req *req, void *conn);
/* Work of n consecutive jobs of the same operation at once (group commit).
 * Returns false when it could not do them together and did none of them
 * (nothing committed): the store then runs each alone. */
typedef bool storage_batch_fn(struct storage_req **reqs, size_t n, void *conn);
/* Call the caller's callback with req->res and, when STORAGE_OK, the job's
 * results.  Loop thread. */
typedef void storage_reply_fn(struct storage_req *req);
/* Wipe what must not stay in memory (passwords) before the job is freed. */
typedef void storage_clear_fn(struct storage_req *req);

/* One operation: its name (for logs) and what the front does with its jobs. */
struct storage_op {
	const char *name;       /* "roster_get" */
	enum storage_area area; /* whose vfuncs work calls */
	storage_work_fn *work;
	storage_batch_fn *batch; /* NULL: never batched */
	storage_reply_fn *reply;
	storage_clear_fn *clear; /* optional */
};

/* The base of every job struct (first member).  Also the handle the public
 * functions return. */
struct storage_req {
	struct storage *st;
	const struct storage_op *op;
	void *ctx;
	struct pool *pool;       /* copies of inputs, results */
	const char *host;        /* copy in pool */
	const char *user;        /* copy in pool; NULL for host-wide ops */
	enum storage_result res; /* set by work */
	bool cancelled;          /* storage_cancel was called */
	bool deferred;           /* on the fail-later or loop-run list */
	bool to_run;             /* on that list to run (no workers) */
	bool held;               /* storage_req_hold: work finishes later */
	bool rerun;              /* work runs again: the connection broke under its first try
	                            (alone or in a batch), which the server may have applied */
	bool in_doubt;           /* a try's COMMIT was sent and its answer lost, and the work
	                            finds out by itself what became of it when it runs again
	                            (the offline store's token): the store keeps the job and
	                            tries again until in_doubt_since plus its doubt deadline */
	double in_doubt_since;   /* monotonic seconds: when the answer was lost */
	struct storage_req *defer_next;
	struct worker_job *wj; /* while on the store's worker group */
};

struct storage_vfuncs {
	const char *name; /* "sql" */
	/* accepts and open: for the families storage_open chooses from (NULL
	 * for a store a module opens itself, like the LDAP stores). */
	/* Whether this backend family serves storage_config.driver. */
	bool (*accepts)(const char *driver);
	/* Open synchronously (start-up: the loop is not running yet).  On success
	 * *st_r is a backend object embedding struct storage, initialised with
	 * storage_base_init, its area vfuncs set.  On failure -1 with a malloc'd
	 * *error_r. */
	int (*open)(struct ev_loop *loop, const struct storage_config *cfg, struct storage **st_r,
	            char **error_r);
	/* Finish pending work (callbacks run: storage_base_deinit does it), then
	 * free. */
	void (*close)(struct storage *st);
	/* Append the live state for parleyctl (connections, outage); optional. */
	void (*status)(struct storage *st, struct buf *out);
	/* Run req->op->work(req, conn) with the calling worker's state, taking
	 * care of the connection (outage, backoff, reconnect and one retry;
	 * for a job in doubt, retries until its doubt deadline).  Worker
	 * thread; only for stores with workers. */
	void (*run)(struct storage *st, struct storage_req *req, void *thread_state);
	/* The same for n jobs of one batchable operation: runs
	 * reqs[0]->op->batch, or each job alone when it returns false.
	 * Optional: without it jobs are never batched. */
	void (*run_batch)(struct storage *st, struct storage_req **reqs, size_t n, void *thread_state);
};

/* The part of every backend object that storage.c owns. */
struct storage {
	const struct storage_vfuncs *v;
	struct ev_loop *loop;
	char *description; /* "sqlite:/var/lib/parley/parley.db" */
	bool closing;      /* storage_close has started */
	double timeout;    /* a job's deadline, seconds (0: none) */
	/* Where jobs run: the backend's worker group (created by its open,
	 * freed by storage_base_deinit), or NULL: on the loop, later. */
	struct worker_group *workers;
	struct log_limit full_log;    /* rate limit of "queue full" */
	struct log_limit expired_log; /* of "no worker took the job in time" */
	ev_timer defer_timer;         /* runs the fail-later and loop-run lists */
	struct storage_req *defer_head, *defer_tail;

	/* The areas, set by the backend's open (NULL: not implemented). */
	const struct account_store_vfuncs *account;
	const struct roster_store_vfuncs *roster;
	const struct offline_store_vfuncs *offline;
	const struct vcard_store_vfuncs *vcard;
	const struct private_store_vfuncs *priv;
	const struct privacy_store_vfuncs *privacy;
	const struct last_store_vfuncs *last;
	const struct srg_store_vfuncs *srg;
	const struct search_store_vfuncs *search;
	const struct muc_store_vfuncs *muc;
	const struct pubsub_store_vfuncs *pubsub;
	const struct mam_store_vfuncs *mam;
};

void storage_base_init(struct storage *st, const struct storage_vfuncs *v, struct ev_loop *loop,
                       const char *description);
/* Finish every job (the worker group's queued ones run or expire; their
 * callbacks, and those of the fail-later list, run), free the group and the
 * base's fields.  Called by the backend's close before it frees its own. */
void storage_base_deinit(struct storage *st);

/* A new job of size bytes (a job struct with struct storage_req first),
 * zeroed, for op, with host and user (may be NULL) copied.  The front then
 * sets the job's callback and copies its inputs into the job (in
 * req->pool).  The job itself is in req->pool: it goes with the pool. */
void *storage_req_new(struct storage *st, const struct storage_op *op, size_t size, const char *host,
                      const char *user, void *ctx);
/* Whose job req is, for a log line: "user@host", or the user alone when
 * it is an address already (a MAM owner, a room); in buf or req's own. */
const char *storage_req_who(const struct storage_req *req, char *buf, size_t size);
/* Queue the job on its store (never runs anything inside the call).  A job
 * of an area the store does not implement fails with STORAGE_ERROR, later. */
struct storage_req *storage_req_submit(struct storage_req *req);

/* For a store without workers whose work only starts an operation that
 * answers later on the loop (the LDAP store, on its client's worker group):
 * called by the work, it keeps the job after its work returns; the store
 * then calls storage_req_release exactly once, from the loop and never
 * inside the work, with the result.  A job cancelled meanwhile is freed by
 * the release without its callback; the store's close releases every held
 * job before storage_base_deinit. */
void storage_req_hold(struct storage_req *req);
void storage_req_release(struct storage_req *req, enum storage_result res);

/* ---- outage and backoff (storage-outage.c) -------------------------------------- */

/* The server behind a store whose workers each keep a connection: while it
 * is down, only one worker at a time tries to connect, not before the
 * backoff has passed (1 s doubling to 30 s); the others fail their jobs at
 * once with STORAGE_TEMPFAIL.  Any thread; the fields are under lock. */
struct storage_outage {
	pthread_mutex_t lock;
	const char *description; /* the store's, for log lines */
	const char *server;      /* "database", for log lines */
	bool down;               /* the last connection attempt failed */
	bool connecting;         /* a worker is trying to connect now */
	double down_since;       /* monotonic seconds */
	double retry_at;
	double backoff;             /* wait after the next failure */
	struct log_limit fast_logs; /* of "failing fast" lines */
	unsigned nconns;            /* connections open now */
	char *last_error;           /* of the last failed attempt (malloc'd) */
};
void storage_outage_init(struct storage_outage *o, const char *description, const char *server);
/* Start degraded: the server could not be reached at open (takes error). */
void storage_outage_start_down(struct storage_outage *o, char *error);
void storage_outage_deinit(struct storage_outage *o);
/* A worker without a connection: true when it may try to connect now (it
 * then reports with _connected or _failed); false when req (if not NULL)
 * must fail at once (logged, at most once a second per store). */
bool storage_outage_may_connect(struct storage_outage *o, const struct storage_req *req);
void storage_outage_connected(struct storage_outage *o, unsigned worker);
void storage_outage_failed(struct storage_outage *o, const char *error);
/* A connection of a worker went away (broken, idle check, closing). */
void storage_outage_disconnected(struct storage_outage *o);
/* "up: 2 of 4 connections open" or "DOWN for ...", for parleyctl. */
void storage_outage_status(struct storage_outage *o, unsigned pool_size, struct buf *out);

/* Backend families storage_open can choose from. */
extern const struct storage_vfuncs storage_sql_vfuncs;
extern const struct storage_vfuncs storage_memory_vfuncs; /* "memory", for tests */

/* Tests only: make the SQL store write upserts in another style (an enum
 * sql_upsert of sql.h) so every dialect's statements run against sqlite. */
void storage_sql_test_set_upsert(struct storage *st, int style);
/* Tests only: how many jobs the SQL store did in batches (group commit);
 * make every batch fail before its commit (set before the jobs are
 * submitted: the workers read it unlocked). */
unsigned long storage_sql_test_batched(struct storage *st);
void storage_sql_test_fail_batches(struct storage *st, bool fail);

#endif
