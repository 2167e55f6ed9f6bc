/*
 * What the SQL store's files share: the store object, a worker's
 * connection state, the statement helpers every area's SQL uses, the
 * schema checks and the areas' vfuncs.  Only the SQL store's files
 * (sql-store.c, sql-schema.c, sql-<area>.c) include this.
 *
 * Threads: the helpers taking a struct sql_thread run on that worker
 * thread, with its connection; they touch no loop-owned object.
 */
#ifndef PARLEY_STORAGE_SQL_STORE_H
#define PARLEY_STORAGE_SQL_STORE_H

#include "storage/storage-private.h"
#include "storage/sql.h"


struct sql_storage {
	struct storage base;
	const struct sql_driver_vfuncs *drv;
	struct storage_config cfg; /* copy; immutable after open */
	enum sql_upsert upsert;    /* the dialect's, or a test's choice */

	struct storage_outage outage;  /* the database's, as the workers see it */
	_Atomic unsigned long batched; /* jobs done in batches of two or more */
	_Atomic bool closing;          /* close has begun: a job in doubt stops waiting */

	bool test_fail_batches; /* tests: every batch fails before its commit */
};

/* One per worker thread: the conn the areas' operations get. */
struct sql_thread {
	struct sql_storage *ss;
	unsigned index;
	struct sql_conn *conn;
	double last_used; /* monotonic seconds */
};

/* ---- statements (worker thread) ---------------------------------------------- */

enum sql_param_type { PT_NULL, PT_TEXT, PT_INT };
struct sql_param {
	enum sql_param_type type;
	const char *text;
	int64_t num;
};
#define PTEXT(s)                                        \
	{                                               \
		(s) != NULL ? PT_TEXT : PT_NULL, (s), 0 \
	}
#define PINT(n)                            \
	{                                  \
		PT_INT, NULL, (int64_t)(n) \
	}

/* Prepare, bind and take the first step.  NULL on error (the connection
 * holds the error). */
struct sql_stmt *sql_q_start(struct sql_thread *t, const char *sql, const struct sql_param *p, size_t n,
                             enum sql_step *step_r);
/* Run a statement that returns no rows.  0 or -1; *changes_r (optional)
 * gets the number of rows changed. */
int sql_q_exec(struct sql_thread *t, const char *sql, const struct sql_param *p, size_t n,
               uint64_t *changes_r);
int sql_q_begin(struct sql_thread *t, bool write);
int sql_q_commit(struct sql_thread *t);
/* The result for the error on the connection; logged with req's context. */
enum storage_result sql_q_fail(struct sql_thread *t, const struct storage_req *req);
/* Roll back after a failure; the failure's class decides the result. */
enum storage_result sql_q_abort(struct sql_thread *t, const struct storage_req *req);
/* A job run again finds what it writes already there: an earlier try
 * wrote it, and that try's answer was lost with the connection.  Logs
 * "<done> by an earlier try (its answer was lost), not <done> again"
 * ("stored", "created", ...) and returns STORAGE_OK. */
enum storage_result sql_q_done_before(struct sql_thread *t, const struct storage_req *req, const char *done);
/* The COMMIT of req's transaction just failed: when the connection broke
 * under it (its answer lost, the outcome unknown), req is in doubt
 * (struct storage_req): the store keeps it, reconnecting with the
 * outage's backoff, and runs it again until the database answers or 6
 * storage timeouts after the first lost answer have passed.  Only for a
 * work that, run again, finds its own rows of an applied COMMIT (the
 * offline store's token) and otherwise writes them anew. */
void sql_q_in_doubt(struct sql_thread *t, struct storage_req *req);
/* Begin a write transaction and run the n statements of sql with the same
 * parameters, in order.  STORAGE_OK leaves the transaction open for the
 * caller to finish (more writes, then sql_q_commit); when the last
 * statement changed no row, the transaction is rolled back and the result
 * is STORAGE_NOT_FOUND; on a failure, rolled back with its result. */
enum storage_result sql_q_delete_open(struct sql_thread *t, const struct storage_req *req,
                                      const char *const *sql, size_t nsql, const struct sql_param *p,
                                      size_t n);
/* Column col as a copy in pool; NULL for SQL NULL. */
char *sql_col_str(struct sql_thread *t, struct pool *pool, struct sql_stmt *s, unsigned col);
/* The same for a NOT NULL text column: '' for SQL NULL (a driver may hand
 * back '' as NULL). */
char *sql_col_text(struct sql_thread *t, struct pool *pool, struct sql_stmt *s, unsigned col);
/* Grow a pool array of n elements of size sz to hold n + 1. */
void *sql_pool_grow(struct pool *p, void *arr, size_t n, size_t *cap, size_t sz);
/* qsort comparison of char * elements, byte-wise. */
int sql_cmp_str(const void *a, const void *b);
/* Run sql and collect its first column (text, NULLs skipped) into *out
 * (pool), sorted here, byte-wise: the database's collation may differ.
 * req is for the log line. */
enum storage_result sql_q_names(struct sql_thread *t, const struct storage_req *req, const char *sql,
                                const struct sql_param *p, size_t np, struct strlist *out);
/* Run a one-row, one-integer query: 1 and *v_r when there is a row, 0 when
 * there is none, -1 on error. */
int sql_q_int(struct sql_thread *t, const char *sql, const struct sql_param *p, size_t n, int64_t *v_r);
/* Run a one-row, one-text-column query into *out_r (pool copy): 1 when
 * there is a row, 0 when there is none, -1 on error. */
int sql_q_text(struct sql_thread *t, struct pool *pool, const char *sql, const struct sql_param *p, size_t n,
               char **out_r);

/* The three ways of writing "insert or replace one row" for a table whose
 * key is the first nkey columns of the insert. */
struct upsert_sql {
	const char *on_conflict;  /* INSERT ... ON CONFLICT (key) DO UPDATE */
	const char *on_duplicate; /* INSERT ... ON DUPLICATE KEY UPDATE */
	const char *insert;       /* plain INSERT (same parameters) */
	const char *update;       /* UPDATE: value columns, then the key columns */
};
/* Insert or replace: p holds the insert's parameters, the key's nkey first. */
int sql_q_upsert(struct sql_thread *t, const struct upsert_sql *u, const struct sql_param *p, size_t n,
                 size_t nkey);

/* Replace user's row of the directory index from the vCard text (inside
 * the caller's write transaction; sql-vcard.c). */
int sql_vcard_index_write(struct sql_thread *t, const char *host, const char *user, const char *vcard);

/* ---- schema (sql-schema.c; any thread, no loop objects) ------------------------- */

/* The dialect's schema script, malloc'd, and where it was read (*path_r). */
char *sql_schema_read(const struct sql_dialect *dia, char **path_r, char **error_r);
/* Create the schema of a new embedded database from script. */
int sql_schema_create(const struct sql_driver_vfuncs *d, struct sql_conn *c, const char *desc,
                      const char *script, const char *schema_path, char **error_r);
/* The connection's schema version is ours; else -1 and a malloc'd error
 * that says what to do. */
int sql_schema_check(const struct sql_driver_vfuncs *d, struct sql_conn *c, const char *desc, char **error_r);

/* ---- the areas (sql-<area>.c) ----------------------------------------------------- */

extern const struct account_store_vfuncs sql_account_vfuncs;
extern const struct roster_store_vfuncs sql_roster_vfuncs;
extern const struct offline_store_vfuncs sql_offline_vfuncs;
extern const struct vcard_store_vfuncs sql_vcard_vfuncs;
extern const struct private_store_vfuncs sql_private_vfuncs;
extern const struct privacy_store_vfuncs sql_privacy_vfuncs;
extern const struct last_store_vfuncs sql_last_vfuncs;
extern const struct srg_store_vfuncs sql_srg_vfuncs;
extern const struct search_store_vfuncs sql_search_vfuncs;
extern const struct muc_store_vfuncs sql_muc_vfuncs;
extern const struct pubsub_store_vfuncs sql_pubsub_vfuncs;
extern const struct mam_store_vfuncs sql_mam_vfuncs;

#endif
