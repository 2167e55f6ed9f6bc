/*
 * The SQL implementation of offline messages storage (struct offline_store_vfuncs of
 * storage/offline-store.h), over the statement helpers of sql-store.h.
 *
 * Worker thread: each operation runs on the store's worker that owns the
 * user's jobs, with that worker's connection (conn is its struct
 * sql_thread); it reads only its job and builds its results in the job's
 * pool.  Every change that touches several rows runs in one transaction; a
 * temporary failure is STORAGE_TEMPFAIL, never NOT_FOUND.
 *
 * A stored message is never both stored and reported as failed while the
 * database can still say which: on a database server each message has a
 * token (unique), and a store whose COMMIT's answer was lost is in doubt
 * (sql_q_in_doubt): the store keeps the job until the database answers
 * again, and its next try finds the token (stored: done) or not (it
 * stores the message now).
 */
#include "storage/offline-store.h"
#include "storage/sql-store.h"
#include "lib/log.h"
#include "lib/util.h"

#include <time.h>

/* ---- offline messages (worker thread) ------------------------------------------ */

static const char sql_user_exists[] = "SELECT 1 FROM users WHERE server_host = ? AND username = ?";
static const char sql_offline_count[] =
        "SELECT COUNT(*) FROM offline_messages WHERE server_host = ? AND username = ?";
static const char sql_offline_count_host[] = "SELECT COUNT(*) FROM offline_messages WHERE server_host = ?";
static const char sql_offline_insert[] =
        "INSERT INTO offline_messages (server_host, username, created_at, from_jid, stanza, token) "
        "VALUES (?, ?, ?, ?, ?, ?)";
static const char sql_offline_token[] = "SELECT 1 FROM offline_messages WHERE token = ?";
static const char sql_offline_get[] =
        "SELECT seq, created_at, stanza FROM offline_messages WHERE server_host = ? AND username = ? "
        "ORDER BY seq";
/* A page after a seq: LIMIT, or OFFSET/FETCH on SQL Server (drivers fetch
 * a result whole, so the page is cut in SQL).  A row without a stanza
 * (the schema forbids it, but a database changed by hand may hold one) is
 * no message: the page and its counts leave it out in SQL, so that it
 * neither takes a place of the page nor makes the page look like the
 * last one. */
static const char sql_offline_page[] =
        "SELECT seq, created_at, stanza FROM offline_messages WHERE server_host = ? AND username = ? "
        "AND seq > ? AND stanza IS NOT NULL ORDER BY seq LIMIT ?";
static const char sql_offline_page_mssql[] =
        "SELECT seq, created_at, stanza FROM offline_messages WHERE server_host = ? AND username = ? "
        "AND seq > ? AND stanza IS NOT NULL ORDER BY seq OFFSET 0 ROWS FETCH NEXT ? ROWS ONLY";
static const char sql_offline_count_listed[] =
        "SELECT COUNT(*) FROM offline_messages WHERE server_host = ? AND username = ? "
        "AND stanza IS NOT NULL";
static const char sql_offline_count_after[] =
        "SELECT COUNT(*) FROM offline_messages WHERE server_host = ? AND username = ? AND seq > ? "
        "AND stanza IS NOT NULL";
static const char sql_offline_delete[] =
        "DELETE FROM offline_messages WHERE server_host = ? AND username = ? AND seq <= ?";

/* The job's token, drawn at its first try and the same for the tries
 * after; NULL on a connection that cannot be lost (SQLite, in the
 * process), where no try runs again after its COMMIT was applied. */
static const char *job_token(const struct sql_thread *t, struct offline_store_job *r)
{
	if (t->ss->drv->is_broken == NULL)
		return NULL;
	if (r->token[0] == '\0')
		random_id(r->token, OFFLINE_TOKEN_LEN);
	return r->token;
}

/* Whether an earlier try of the job stored it (1, 0, or -1 on error):
 * the answer to that try's COMMIT was lost with the connection, and the
 * store (or a batch falling back to single jobs) ran it again.  The
 * token's unique index turns the second insert into a constraint
 * failure; a full queue's refusal comes before the insert, so that path
 * asks too.  Run outside a transaction. */
static int token_stored(struct sql_thread *t, const struct offline_store_job *r)
{
	if (r->token[0] == '\0')
		return 0;
	struct sql_param p[] = { PTEXT(r->token) };
	int64_t v = 0;
	return sql_q_int(t, sql_offline_token, p, ARRAY_SIZE(p), &v);
}

/* Account check, quota check and insert in one write transaction: two
 * stores racing for the last free place cannot both take it. */
static enum storage_result op_offline_store(void *conn, struct offline_store_job *r)
{
	struct sql_thread *t = conn;
	struct sql_param p[] = { PTEXT(r->base.host), PTEXT(r->base.user) };
	int64_t v = 0;
	if (sql_q_begin(t, true) < 0)
		return sql_q_fail(t, &r->base);
	int found = sql_q_int(t, sql_user_exists, p, ARRAY_SIZE(p), &v);
	if (found < 0)
		return sql_q_abort(t, &r->base);
	if (found == 0) {
		t->ss->drv->rollback(t->conn);
		return STORAGE_NOT_FOUND;
	}
	if (r->max > 0) {
		if (sql_q_int(t, sql_offline_count, p, ARRAY_SIZE(p), &v) < 0)
			return sql_q_abort(t, &r->base);
		if (v >= (int64_t)r->max) {
			t->ss->drv->rollback(t->conn);
			found = token_stored(t, r);
			if (found < 0)
				return sql_q_fail(t, &r->base);
			return found > 0 ? sql_q_done_before(t, &r->base, "stored") : STORAGE_FULL;
		}
	}
	const char *token = job_token(t, r);
	struct sql_param pi[] = { PTEXT(r->base.host), PTEXT(r->base.user), PINT(time(NULL)),
		                  PTEXT(r->from),      PTEXT(r->stanza),    PTEXT(token) };
	bool committing = false;
	int rc = sql_q_exec(t, sql_offline_insert, pi, ARRAY_SIZE(pi), NULL);
	if (rc == 0) {
		committing = true;
		rc = sql_q_commit(t);
	}
	if (rc < 0) {
		enum storage_result res = sql_q_abort(t, &r->base);
		if (committing && token != NULL)
			sql_q_in_doubt(t, &r->base); /* its next try asks for the token */
		if (res != STORAGE_EXISTS || token == NULL)
			return res;
		/* a driver that cannot tell one constraint from another must
		 * not make a message count as stored when it is not */
		found = token_stored(t, r);
		if (found < 0)
			return sql_q_fail(t, &r->base);
		if (found > 0)
			return sql_q_done_before(t, &r->base, "stored");
		char who[512];
		log_error("storage %s: %s %s: the insert broke a constraint, but no row holds its token",
		          t->ss->base.description, r->base.op->name,
		          storage_req_who(&r->base, who, sizeof(who)));
		return STORAGE_ERROR;
	}
	return STORAGE_OK;
}

/* Group commit: the jobs' account checks, quota checks and inserts, in
 * order, in one write transaction, so that each job gets the result it
 * would have got alone after the ones before it (a job's quota check sees
 * the rows of the earlier jobs of the batch).  What one user's run of
 * jobs learnt (the account exists, the queue's length) is reused by the
 * next job of that user.  false, with nothing stored, when a statement or
 * the commit failed: the store then runs each job alone. */
static bool op_offline_store_batch(void *conn, struct offline_store_job **jobs, size_t n)
{
	struct sql_thread *t = conn;
	if (sql_q_begin(t, true) < 0)
		return false;
	int64_t now = time(NULL);
	const char *host = NULL, *user = NULL;
	int exists = 0;
	int64_t queued = -1; /* the user's queue length; -1: not read */
	for (size_t i = 0; i < n; i++) {
		struct offline_store_job *r = jobs[i];
		struct sql_param p[] = { PTEXT(r->base.host), PTEXT(r->base.user) };
		int64_t v = 0;
		if (host == NULL || strcmp(host, r->base.host) != 0 || strcmp(user, r->base.user) != 0) {
			host = r->base.host;
			user = r->base.user;
			queued = -1;
			exists = sql_q_int(t, sql_user_exists, p, ARRAY_SIZE(p), &v);
			if (exists < 0)
				goto fail;
		}
		if (exists == 0) {
			r->base.res = STORAGE_NOT_FOUND;
			continue;
		}
		if (r->max > 0 && queued < 0) {
			if (sql_q_int(t, sql_offline_count, p, ARRAY_SIZE(p), &queued) < 0)
				goto fail;
		}
		if (r->max > 0 && queued >= (int64_t)r->max) {
			r->base.res = STORAGE_FULL;
			continue;
		}
		struct sql_param pi[] = { PTEXT(r->base.host), PTEXT(r->base.user), PINT(now),
			                  PTEXT(r->from),      PTEXT(r->stanza),    PTEXT(job_token(t, r)) };
		if (sql_q_exec(t, sql_offline_insert, pi, ARRAY_SIZE(pi), NULL) < 0)
			goto fail;
		if (queued >= 0)
			queued++;
		r->base.res = STORAGE_OK;
	}
	if (t->ss->test_fail_batches)
		goto fail;
	if (sql_q_commit(t) < 0) {
		for (size_t i = 0; i < n; i++)
			if (jobs[i]->base.res == STORAGE_OK && jobs[i]->token[0] != '\0')
				sql_q_in_doubt(t, &jobs[i]->base);
		goto fail;
	}
	return true;
fail:
	t->ss->drv->rollback(t->conn);
	return false;
}

/* The whole queue, or a page of it with its counts (read in one
 * transaction, so that total and more agree with the page). */
static enum storage_result op_offline_get(void *conn, struct offline_get_job *r)
{
	struct sql_thread *t = conn;
	const struct sql_driver_vfuncs *d = t->ss->drv;
	struct sql_param p[] = { PTEXT(r->base.host), PTEXT(r->base.user), PINT(r->after), PINT(r->limit) };
	enum sql_step st;
	size_t cap = 0;
	r->msgs = NULL;
	r->nmsgs = 0;
	r->total = r->more = 0;
	const char *sql = sql_offline_get;
	size_t np = 2;
	if (r->limit > 0) {
		const struct sql_dialect *dia =
		        d->conn_dialect != NULL ? d->conn_dialect(t->conn) : d->dialect;
		bool mssql = dia != NULL && dia->name != NULL && strcmp(dia->name, "mssql") == 0;
		sql = mssql ? sql_offline_page_mssql : sql_offline_page;
		np = ARRAY_SIZE(p);
		if (sql_q_begin(t, false) < 0)
			return sql_q_fail(t, &r->base);
	}
	struct sql_stmt *s = sql_q_start(t, sql, p, np, &st);
	if (s == NULL)
		return r->limit > 0 ? sql_q_abort(t, &r->base) : sql_q_fail(t, &r->base);
	while (st == SQL_STEP_ROW && (r->limit == 0 || r->nmsgs < r->limit)) {
		char *stanza = sql_col_str(t, r->base.pool, s, 2);
		if (stanza != NULL) {
			r->msgs = sql_pool_grow(r->base.pool, r->msgs, r->nmsgs, &cap, sizeof(*r->msgs));
			struct offline_message *m = &r->msgs[r->nmsgs++];
			m->seq = d->column_int64(s, 0);
			m->created = d->column_int64(s, 1);
			m->stanza = stanza;
		}
		st = d->step(s);
	}
	if (st == SQL_STEP_ERROR) {
		enum storage_result res = r->limit > 0 ? sql_q_abort(t, &r->base) : sql_q_fail(t, &r->base);
		d->reset(s);
		return res;
	}
	d->reset(s);
	if (r->limit == 0)
		return STORAGE_OK;
	int64_t total = 0, more = 0;
	if (sql_q_int(t, sql_offline_count_listed, p, 2, &total) < 0)
		return sql_q_abort(t, &r->base);
	if (r->nmsgs == r->limit) {
		struct sql_param pm[] = { PTEXT(r->base.host), PTEXT(r->base.user),
			                  PINT(r->msgs[r->nmsgs - 1].seq) };
		if (sql_q_int(t, sql_offline_count_after, pm, ARRAY_SIZE(pm), &more) < 0)
			return sql_q_abort(t, &r->base);
	}
	if (sql_q_commit(t) < 0)
		return sql_q_abort(t, &r->base);
	r->total = total > 0 ? (uint64_t)total : 0;
	r->more = more > 0 ? (uint64_t)more : 0;
	return STORAGE_OK;
}

static enum storage_result op_offline_delete(void *conn, struct offline_delete_upto_job *r)
{
	struct sql_thread *t = conn;
	struct sql_param p[] = { PTEXT(r->base.host), PTEXT(r->base.user), PINT(r->seq) };
	if (sql_q_exec(t, sql_offline_delete, p, ARRAY_SIZE(p), NULL) < 0)
		return sql_q_fail(t, &r->base);
	return STORAGE_OK;
}

static enum storage_result op_offline_count(void *conn, struct offline_count_job *r)
{
	struct sql_thread *t = conn;
	struct sql_param p[] = { PTEXT(r->base.host), PTEXT(r->base.user) };
	int64_t n = 0;
	bool host = r->base.user == NULL;
	if (sql_q_int(t, host ? sql_offline_count_host : sql_offline_count, p, host ? 1 : ARRAY_SIZE(p), &n) <
	    0)
		return sql_q_fail(t, &r->base);
	r->count = n > 0 ? (uint64_t)n : 0;
	return STORAGE_OK;
}

const struct offline_store_vfuncs sql_offline_vfuncs = {
	.store = op_offline_store,
	.store_batch = op_offline_store_batch,
	.get = op_offline_get,
	.delete_upto = op_offline_delete,
	.count = op_offline_count,
};
