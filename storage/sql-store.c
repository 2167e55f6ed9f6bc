/*
 * The SQL store: the storage backend family that serves every area with
 * SQL over the driver interface of sql.h (sqlite, pgsql, mysql, odbc; the
 * dialect differences are in the drivers' struct sql_dialect).  This file
 * holds what the areas share: opening and closing the store, the worker
 * connections (made on their thread, checked when idle, remade when the
 * driver says they broke; outages and backoff through storage-outage.c),
 * running a job or a batch of jobs on a connection, and the statement
 * helpers.  The SQL of
 * each area is in sql-<area>.c, the schema checks and `parleyctl db` in
 * sql-schema.c.
 *
 * Threads: storage_open runs on the loop thread before the loop starts (it
 * connects once to create a new embedded database from sql/<dialect>.sql
 * and to check the schema version).  Every operation is then a job of this
 * store's worker group (storage.c): each worker thread owns one connection
 * and runs the job's SQL there; the answer comes back to the loop thread
 * through the group.
 *
 * Invariants:
 * - worker code reads only its job and the store's immutable settings
 *   (driver, configuration copy, description); the outage state
 *   (storage-outage.c) has its own lock;
 * - while the database is down, only one worker at a time tries to
 *   connect, not before the backoff has passed; the others' jobs fail at
 *   once with STORAGE_TEMPFAIL (logged at most once a second);
 * - a temporary failure (busy, lost connection, timeout, queue full) is
 *   STORAGE_TEMPFAIL, never NOT_FOUND; a duplicate key on create is EXISTS;
 * - a job runs at most twice, unless it is in doubt (sql_q_in_doubt: its
 *   COMMIT's answer was lost and the work can learn the outcome): then its
 *   worker keeps it, reconnecting with the outage's backoff, and runs it
 *   again until the database answers it, SQL_DOUBT_TIMEOUTS storage
 *   timeouts after the lost answer have passed, or the store closes; the
 *   last two fail it with STORAGE_TEMPFAIL and log that it is in doubt.
 */
#include "storage/sql-store.h"
#include "lib/log.h"
#include "lib/worker.h"

#include <assert.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

static const struct sql_driver_vfuncs *const sql_drivers[] = {
	&sql_driver_sqlite,
#ifdef HAVE_BACKEND_PGSQL
	&sql_driver_pgsql,
#endif
#ifdef HAVE_BACKEND_MYSQL
	&sql_driver_mysql,
#endif
#ifdef HAVE_BACKEND_ODBC
	&sql_driver_odbc,
#endif
};
/* Every driver Parley has, whether this binary was built with it or not. */
static const char *const sql_driver_names[] = { "sqlite", "pgsql", "mysql", "odbc" };

/* A connection that sat idle this long is checked (driver's ping) before
 * it is used again: a server restart or a firewall that dropped the idle
 * TCP connection is found before a user's request runs on it. */
#define SQL_IDLE_CHECK 30.0

/* How long a job in doubt (sql_q_in_doubt) keeps its worker to learn what
 * became of its COMMIT, in storage timeouts from the lost answer: long
 * enough for a database server that froze or restarted to answer again,
 * short enough that the sender of a message hears within a minute (at the
 * default timeout) that it was not stored, and that a worker is not taken
 * away from its other jobs for long. */
#define SQL_DOUBT_TIMEOUTS 6
/* The pause before a job in doubt runs again after a try that did not
 * tell (a connection that broke again, a busy server). */
#define SQL_DOUBT_PAUSE 1.0

const struct sql_driver_vfuncs *sql_driver_find(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(sql_drivers); i++)
		if (strcmp(sql_drivers[i]->name, name) == 0)
			return sql_drivers[i];
	return NULL;
}

bool sql_driver_known(const char *name, bool *built_r)
{
	*built_r = sql_driver_find(name) != NULL;
	for (size_t i = 0; i < ARRAY_SIZE(sql_driver_names); i++)
		if (strcmp(sql_driver_names[i], name) == 0)
			return true;
	return *built_r;
}

/* ---- statements (worker thread) --------------------------------------------- */

/* The statement that last failed, for the log line. */
static _Thread_local const char *failed_sql;

/* Prepare, bind and take the first step.  NULL on error (the connection
 * holds the error). */
struct sql_stmt *sql_q_start(struct sql_thread *t, const char *sql, const struct sql_param *p, size_t n,
                             enum sql_step *step_r)
{
	const struct sql_driver_vfuncs *d = t->ss->drv;
	failed_sql = sql;
	struct sql_stmt *s = d->prepare(t->conn, sql);
	if (s == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		int rc;
		unsigned idx = (unsigned)i + 1;
		switch (p[i].type) {
		case PT_TEXT: rc = d->bind_text(s, idx, p[i].text); break;
		case PT_INT: rc = d->bind_int64(s, idx, p[i].num); break;
		default: rc = d->bind_null(s, idx); break;
		}
		if (rc < 0) {
			d->reset(s);
			return NULL;
		}
	}
	*step_r = d->step(s);
	if (*step_r == SQL_STEP_ERROR) {
		d->reset(s);
		return NULL;
	}
	return s;
}

/* Run a statement that returns no rows.  0 or -1; *changes_r (optional)
 * gets the number of rows changed. */
int sql_q_exec(struct sql_thread *t, const char *sql, const struct sql_param *p, size_t n,
               uint64_t *changes_r)
{
	const struct sql_driver_vfuncs *d = t->ss->drv;
	enum sql_step st;
	struct sql_stmt *s = sql_q_start(t, sql, p, n, &st);
	if (s == NULL)
		return -1;
	while (st == SQL_STEP_ROW)
		st = d->step(s);
	if (st == SQL_STEP_ERROR) {
		d->reset(s);
		return -1;
	}
	if (changes_r != NULL)
		*changes_r = d->changes(s);
	d->reset(s);
	return 0;
}

int sql_q_begin(struct sql_thread *t, bool write)
{
	failed_sql = write ? "BEGIN (write)" : "BEGIN";
	return t->ss->drv->begin(t->conn, write);
}

int sql_q_commit(struct sql_thread *t)
{
	failed_sql = "COMMIT";
	return t->ss->drv->commit(t->conn);
}

/* The result for the error on the connection; logged with context. */
enum storage_result sql_q_fail(struct sql_thread *t, const struct storage_req *r)
{
	const struct sql_driver_vfuncs *d = t->ss->drv;
	char who[512];
	switch (d->error_class(t->conn)) {
	case SQL_ERR_CONSTRAINT: return STORAGE_EXISTS;
	case SQL_ERR_TEMPORARY:
	case SQL_ERR_NONE:
		log_warning("storage %s: %s %s: temporary failure: %s [%s]", t->ss->base.description,
		            r->op->name, storage_req_who(r, who, sizeof(who)), d->error_message(t->conn),
		            failed_sql != NULL ? failed_sql : "");
		return STORAGE_TEMPFAIL;
	case SQL_ERR_PERMANENT:
	default:
		log_error("storage %s: %s %s: %s [%s]", t->ss->base.description, r->op->name,
		          storage_req_who(r, who, sizeof(who)), d->error_message(t->conn),
		          failed_sql != NULL ? failed_sql : "");
		return STORAGE_ERROR;
	}
}

enum storage_result sql_q_done_before(struct sql_thread *t, const struct storage_req *r, const char *done)
{
	char who[512];
	log_notice("storage %s: %s %s: %s by an earlier try (its answer was lost), not %s again",
	           t->ss->base.description, r->op->name, storage_req_who(r, who, sizeof(who)), done, done);
	return STORAGE_OK;
}

void sql_q_in_doubt(struct sql_thread *t, struct storage_req *req)
{
	const struct sql_driver_vfuncs *d = t->ss->drv;
	if (d->is_broken == NULL || !d->is_broken(t->conn) || req->in_doubt)
		return;
	req->in_doubt = true;
	req->in_doubt_since = mono_now();
}

/* Roll back after a failure; the failure's class decides the result. */
enum storage_result sql_q_abort(struct sql_thread *t, const struct storage_req *r)
{
	enum storage_result res = sql_q_fail(t, r);
	t->ss->drv->rollback(t->conn);
	return res;
}

enum storage_result sql_q_delete_open(struct sql_thread *t, const struct storage_req *req,
                                      const char *const *sql, size_t nsql, const struct sql_param *p,
                                      size_t n)
{
	uint64_t changes = 0;
	if (sql_q_begin(t, true) < 0)
		return sql_q_fail(t, req);
	for (size_t i = 0; i < nsql; i++)
		if (sql_q_exec(t, sql[i], p, n, i + 1 == nsql ? &changes : NULL) < 0)
			return sql_q_abort(t, req);
	if (changes == 0) {
		t->ss->drv->rollback(t->conn);
		return STORAGE_NOT_FOUND;
	}
	return STORAGE_OK;
}

char *sql_col_str(struct sql_thread *t, struct pool *pool, struct sql_stmt *s, unsigned col)
{
	const struct sql_driver_vfuncs *d = t->ss->drv;
	if (d->column_is_null(s, col))
		return NULL;
	const char *v = d->column_text(s, col);
	return v != NULL ? pool_strdup(pool, v) : NULL;
}

char *sql_col_text(struct sql_thread *t, struct pool *pool, struct sql_stmt *s, unsigned col)
{
	char *v = sql_col_str(t, pool, s, col);
	return v != NULL ? v : pool_strdup(pool, "");
}

/* Grow a pool array of n elements of size sz to hold n + 1. */
void *sql_pool_grow(struct pool *p, void *arr, size_t n, size_t *cap, size_t sz)
{
	if (n < *cap)
		return arr;
	size_t ncap = *cap == 0 ? 8 : *cap * 2;
	void *na = pool_alloc(p, ncap * sz);
	if (n > 0)
		memcpy(na, arr, n * sz);
	*cap = ncap;
	return na;
}

int sql_cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Run sql and collect its first column (text, NULLs skipped) into *out,
 * sorted here, byte-wise: the database's collation may differ. */
enum storage_result sql_q_names(struct sql_thread *t, const struct storage_req *req, const char *sql,
                                const struct sql_param *p, size_t np, struct strlist *out)
{
	const struct sql_driver_vfuncs *d = t->ss->drv;
	enum sql_step st;
	size_t cap = 0;
	out->items = NULL;
	out->count = 0;
	struct sql_stmt *s = sql_q_start(t, sql, p, np, &st);
	if (s == NULL)
		return sql_q_fail(t, req);
	while (st == SQL_STEP_ROW) {
		char *name = sql_col_str(t, req->pool, s, 0);
		if (name != NULL) {
			out->items = sql_pool_grow(req->pool, out->items, out->count, &cap, sizeof(char *));
			out->items[out->count++] = name;
		}
		st = d->step(s);
	}
	if (st == SQL_STEP_ERROR) {
		enum storage_result res = sql_q_fail(t, req);
		d->reset(s);
		return res;
	}
	d->reset(s);
	if (out->count > 1)
		qsort(out->items, out->count, sizeof(char *), sql_cmp_str);
	return STORAGE_OK;
}

/* Run a one-row, one-integer query: 1 and *v_r when there is a row, 0 when
 * there is none, -1 on error. */
int sql_q_int(struct sql_thread *t, const char *sql, const struct sql_param *p, size_t n, int64_t *v_r)
{
	const struct sql_driver_vfuncs *d = t->ss->drv;
	enum sql_step st;
	struct sql_stmt *s = sql_q_start(t, sql, p, n, &st);
	if (s == NULL)
		return -1;
	int found = st == SQL_STEP_ROW;
	if (found)
		*v_r = d->column_int64(s, 0);
	d->reset(s);
	return found;
}

/* Insert or replace: p holds the insert's parameters, the key's nkey first. */
int sql_q_upsert(struct sql_thread *t, const struct upsert_sql *u, const struct sql_param *p, size_t n,
                 size_t nkey)
{
	switch (t->ss->upsert) {
	case SQL_UPSERT_ON_CONFLICT: return sql_q_exec(t, u->on_conflict, p, n, NULL);
	case SQL_UPSERT_ON_DUPLICATE_KEY: return sql_q_exec(t, u->on_duplicate, p, n, NULL);
	case SQL_UPSERT_NONE:
	default: {
		/* UPDATE takes the values first, then the key. */
		struct sql_param up[8];
		assert(n <= ARRAY_SIZE(up) && nkey < n);
		size_t k = 0;
		for (size_t i = nkey; i < n; i++)
			up[k++] = p[i];
		for (size_t i = 0; i < nkey; i++)
			up[k++] = p[i];
		uint64_t changes = 0;
		if (sql_q_exec(t, u->update, up, n, &changes) < 0)
			return -1;
		return changes > 0 ? 0 : sql_q_exec(t, u->insert, p, n, NULL);
	}
	}
}

/* Run a one-row, one-text-column query into *out_r (pool copy): 1 when
 * there is a row, 0 when there is none, -1 on error. */
int sql_q_text(struct sql_thread *t, struct pool *pool, const char *sql, const struct sql_param *p, size_t n,
               char **out_r)
{
	const struct sql_driver_vfuncs *d = t->ss->drv;
	enum sql_step st;
	struct sql_stmt *s = sql_q_start(t, sql, p, n, &st);
	if (s == NULL)
		return -1;
	int found = st == SQL_STEP_ROW;
	if (found) {
		*out_r = sql_col_str(t, pool, s, 0);
		if (*out_r == NULL)
			*out_r = pool_strdup(pool, "");
	}
	d->reset(s);
	return found;
}

/* ---- connections and running jobs (worker threads) --------------------------- */

/* Give t a working connection.  While the database is down only one worker
 * at a time tries, and not before the backoff has passed; the others fail
 * at once.  A new connection's schema version is checked. */
static bool thread_connect(struct sql_thread *t, const struct storage_req *r)
{
	struct sql_storage *ss = t->ss;
	const struct sql_driver_vfuncs *d = ss->drv;
	double now = mono_now();
	if (t->conn != NULL && d->is_broken != NULL && d->is_broken(t->conn)) {
		/* it broke under an earlier job that did not run again on a new
		 * one: a job that succeeded all the same (a COMMIT the pgsql
		 * driver found committed after the connection went), or a batch
		 * whose jobs now run one by one */
		log_notice("storage %s: worker %u: replacing the connection that broke under an earlier job",
		           ss->base.description, t->index);
		d->disconnect(t->conn);
		t->conn = NULL;
		storage_outage_disconnected(&ss->outage);
	} else if (t->conn != NULL && d->ping != NULL && now - t->last_used >= SQL_IDLE_CHECK &&
	           d->ping(t->conn) < 0) {
		log_notice("storage %s: worker %u: the idle connection no longer works (%s); reconnecting",
		           ss->base.description, t->index, d->error_message(t->conn));
		d->disconnect(t->conn);
		t->conn = NULL;
		storage_outage_disconnected(&ss->outage);
	}
	if (t->conn != NULL) {
		t->last_used = now;
		return true;
	}

	if (!storage_outage_may_connect(&ss->outage, r))
		return false;
	char *err = NULL;
	struct sql_conn *c = d->connect(&ss->cfg, &err);
	if (c != NULL && sql_schema_check(d, c, ss->base.description, &err) < 0) {
		d->disconnect(c);
		c = NULL;
	}
	now = mono_now();
	if (c == NULL) {
		storage_outage_failed(&ss->outage, err);
		free(err);
		return false;
	}
	storage_outage_connected(&ss->outage, t->index);
	t->conn = c;
	t->last_used = now;
	return true;
}

/* Worker thread: a job in doubt waits secs before it tries again, in
 * short slices that watch for the store closing.  false, logged, when it
 * must give up instead: its doubt deadline passed, or the store is
 * closing. */
static bool doubt_wait(struct sql_thread *t, struct storage_req *req, double secs)
{
	double until = mono_now() + secs;
	double deadline = req->in_doubt_since + SQL_DOUBT_TIMEOUTS * t->ss->cfg.timeout;
	for (;;) {
		double now = mono_now();
		bool closing = atomic_load(&t->ss->closing);
		if (closing || now >= deadline) {
			char who[512];
			log_error("storage %s: %s %s: in doubt: %s %.0f s after the answer to its COMMIT "
			          "was lost, without learning whether the database applied it; it "
			          "fails, and what it wrote may be there all the same (an offline "
			          "message both stored and bounced)",
			          t->ss->base.description, req->op->name,
			          storage_req_who(req, who, sizeof(who)),
			          closing ? "the store is closing" : "giving up", now - req->in_doubt_since);
			return false;
		}
		if (now >= until)
			return true;
		double left = (until < deadline ? until : deadline) - now;
		double slice = left < 0.1 ? left : 0.1;
		struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)(slice * 1e9) };
		nanosleep(&ts, NULL);
	}
}

/* Worker thread: t's connection for req.  A job in doubt waits for one:
 * connection attempts keep to the outage's backoff, shared with the other
 * workers. */
static bool run_connect(struct sql_thread *t, struct storage_req *req)
{
	if (thread_connect(t, req->in_doubt ? NULL : req))
		return true;
	while (req->in_doubt) {
		if (!doubt_wait(t, req, 0.1))
			return false;
		if (thread_connect(t, NULL))
			return true;
	}
	return false;
}

/* Worker thread: run one job on t's connection; when the connection broke
 * under it, a new connection and one more try (every operation is one
 * transaction or one statement).  A job in doubt tries until the database
 * tells it what became of its COMMIT, or until its doubt deadline. */
static void sql_run(struct storage *st, struct storage_req *req, void *thread_state)
{
	struct sql_thread *t = thread_state;
	const struct sql_driver_vfuncs *d = t->ss->drv;
	for (unsigned attempt = 0;; attempt++) {
		if (!run_connect(t, req)) {
			req->res = STORAGE_TEMPFAIL;
			return;
		}
		failed_sql = NULL;
		req->op->work(req, t);
		t->last_used = mono_now();
		bool broken = req->res == STORAGE_TEMPFAIL && d->is_broken != NULL && d->is_broken(t->conn);
		if (broken) {
			log_warning("storage %s: worker %u lost its connection (%s); reconnecting",
			            st->description, t->index, d->error_message(t->conn));
			d->disconnect(t->conn);
			t->conn = NULL;
			storage_outage_disconnected(&t->ss->outage);
		}
		if (req->res != STORAGE_TEMPFAIL && req->in_doubt) {
			char who[512];
			log_notice("storage %s: %s %s: out of doubt: the database answered %.0f s after "
			           "the answer to its COMMIT was lost",
			           st->description, req->op->name, storage_req_who(req, who, sizeof(who)),
			           mono_now() - req->in_doubt_since);
		}
		if (req->res != STORAGE_TEMPFAIL || !req->in_doubt) {
			if (!broken || attempt > 0)
				return;
		} else if (attempt > 0 || !broken) {
			/* this try did not tell either: not at once again */
			if (!doubt_wait(t, req, SQL_DOUBT_PAUSE))
				return;
		}
		req->rerun = true;
	}
}

/* Worker thread: n jobs of one batchable operation (group commit).  The
 * operation's batch does them in one transaction; when it cannot (a
 * statement failed, the connection broke: nothing was committed), each job
 * runs alone and gets the result it would have got without the batch. */
static void sql_run_batch(struct storage *st, struct storage_req **reqs, size_t n, void *thread_state)
{
	struct sql_thread *t = thread_state;
	if (!thread_connect(t, reqs[0])) {
		for (size_t i = 0; i < n; i++)
			reqs[i]->res = STORAGE_TEMPFAIL;
		return;
	}
	failed_sql = NULL;
	bool done = reqs[0]->op->batch(reqs, n, t);
	t->last_used = mono_now();
	if (done) {
		atomic_fetch_add(&t->ss->batched, n);
		return;
	}
	/* a batch whose connection broke may have been committed (a COMMIT
	 * whose answer was lost): its jobs run again */
	const struct sql_driver_vfuncs *d = t->ss->drv;
	bool broke = t->conn != NULL && d->is_broken != NULL && d->is_broken(t->conn);
	for (size_t i = 0; i < n; i++) {
		reqs[i]->rerun = reqs[i]->rerun || broke;
		sql_run(st, reqs[i], t);
	}
}

static void *sql_thread_init(void *group_ctx, unsigned index)
{
	struct sql_thread *t = xcalloc(1, sizeof(*t));
	t->ss = group_ctx;
	t->index = index;
	thread_connect(t, NULL); /* failures are retried at each job */
	return t;
}

static void sql_thread_deinit(void *group_ctx, void *state)
{
	struct sql_thread *t = state;
	if (t->conn != NULL) {
		t->ss->drv->disconnect(t->conn);
		storage_outage_disconnected(&t->ss->outage);
	}
	free(t);
}
/* ---- open and close (loop thread, synchronous) ------------------------------------ */

static bool sql_accepts(const char *driver)
{
	return sql_driver_find(driver) != NULL;
}

static int sql_open(struct ev_loop *loop, const struct storage_config *cfg, struct storage **st_r,
                    char **error_r)
{
	const struct sql_driver_vfuncs *d = sql_driver_find(cfg->driver != NULL ? cfg->driver : "sqlite");
	if (d == NULL) {
		*error_r = xasprintf("unknown SQL driver '%s'", cfg->driver);
		return -1;
	}
	char *desc = d->describe(cfg);
	/* A driver that serves several dialects (odbc) says which once
	 * connected; until then its .dialect (portable upserts) stands. */
	const struct sql_dialect *dia = d->dialect;
	char *script = NULL, *schema_path = NULL, *err = NULL;
	bool is_new = d->is_new != NULL && d->is_new(cfg);
	if (is_new && (script = sql_schema_read(d->dialect, &schema_path, &err)) == NULL) {
		*error_r = xasprintf("database %s does not exist and %s", desc, err);
		goto fail;
	}
	struct sql_conn *c = d->connect(cfg, &err);
	bool down = false;
	if (c == NULL && d->is_new == NULL) {
		/* A database server that is down now may come back: start
		 * degraded (requests fail with a temporary error) and let the
		 * workers reconnect; the version is checked when they do. */
		log_error("storage %s: cannot connect at start: %s; starting without it: the hosts on "
		          "this store are degraded until it can be reached (retried in the background)",
		          desc, err);
		down = true;
	} else if (c == NULL) {
		*error_r = xasprintf("database %s: %s", desc, err);
		goto fail;
	} else {
		if ((is_new && sql_schema_create(d, c, desc, script, schema_path, error_r) < 0) ||
		    sql_schema_check(d, c, desc, error_r) < 0) {
			d->disconnect(c);
			goto fail;
		}
		if (d->conn_dialect != NULL)
			dia = d->conn_dialect(c);
		d->disconnect(c);
	}

	struct sql_storage *ss = xcalloc(1, sizeof(*ss));
	storage_base_init(&ss->base, &storage_sql_vfuncs, loop, desc);
	storage_outage_init(&ss->outage, ss->base.description, "database");
	if (down) {
		storage_outage_start_down(&ss->outage, err);
		err = NULL;
	}
	ss->drv = d;
	ss->upsert = dia->upsert;
	storage_config_copy(&ss->cfg, cfg);
	free(ss->cfg.driver);
	ss->cfg.driver = xstrdup(d->name);
	if (ss->cfg.pool_size == 0)
		ss->cfg.pool_size = 2;
	if (ss->cfg.timeout <= 0)
		ss->cfg.timeout = 10;
	ss->base.timeout = ss->cfg.timeout;
	ss->base.account = &sql_account_vfuncs;
	ss->base.roster = &sql_roster_vfuncs;
	ss->base.offline = &sql_offline_vfuncs;
	ss->base.vcard = &sql_vcard_vfuncs;
	ss->base.priv = &sql_private_vfuncs;
	ss->base.privacy = &sql_privacy_vfuncs;
	ss->base.last = &sql_last_vfuncs;
	ss->base.srg = &sql_srg_vfuncs;
	ss->base.search = &sql_search_vfuncs;
	ss->base.muc = &sql_muc_vfuncs;
	ss->base.pubsub = &sql_pubsub_vfuncs;
	ss->base.mam = &sql_mam_vfuncs;
	ss->base.workers = worker_group_new(loop, d->name, ss->cfg.pool_size, ss->cfg.queue_max,
	                                    sql_thread_init, sql_thread_deinit, ss);
	*st_r = &ss->base;
	free(desc);
	free(script);
	free(schema_path);
	return 0;
fail:
	free(err);
	free(desc);
	free(script);
	free(schema_path);
	return -1;
}

static void sql_close(struct storage *st)
{
	struct sql_storage *ss = (struct sql_storage *)st;
	/* Every queued job runs (or expires) and its callback runs; the
	 * workers disconnect.  A job in doubt stops waiting (logged). */
	atomic_store(&ss->closing, true);
	storage_base_deinit(st);
	storage_config_free(&ss->cfg);
	storage_outage_deinit(&ss->outage);
	free(ss);
}

/* Loop thread: the workers' view of the database, for parleyctl. */
static void sql_status(struct storage *st, struct buf *out)
{
	struct sql_storage *ss = (struct sql_storage *)st;
	storage_outage_status(&ss->outage, ss->cfg.pool_size, out);
	if (ss->base.workers != NULL)
		buf_printf(out, ", %u jobs queued or running", worker_group_pending(ss->base.workers));
}

/* Test hook (storage-private.h): write upserts another dialect's way. */
void storage_sql_test_set_upsert(struct storage *st, int style)
{
	assert(st->v == &storage_sql_vfuncs);
	((struct sql_storage *)st)->upsert = (enum sql_upsert)style;
}

/* Test hooks (storage-private.h). */
unsigned long storage_sql_test_batched(struct storage *st)
{
	assert(st->v == &storage_sql_vfuncs);
	struct sql_storage *ss = (struct sql_storage *)st;
	return atomic_load(&ss->batched);
}

void storage_sql_test_fail_batches(struct storage *st, bool fail)
{
	assert(st->v == &storage_sql_vfuncs);
	((struct sql_storage *)st)->test_fail_batches = fail;
}

const struct storage_vfuncs storage_sql_vfuncs = {
	.name = "sql",
	.accepts = sql_accepts,
	.open = sql_open,
	.close = sql_close,
	.status = sql_status,
	.run = sql_run,
	.run_batch = sql_run_batch,
};
