/*
 * The SQL implementation of last activity storage (struct last_store_vfuncs of
 * storage/last-store.h), over the statement helpers of sql-store.h.
 *
 * Worker thread: each operation runs on the store's worker that owns the
 * user's jobs, with that worker's connection (conn is its struct
 * sql_thread); it reads only its job and builds its results in the job's
 * pool.  Every change that touches several rows runs in one transaction; a
 * temporary failure is STORAGE_TEMPFAIL, never NOT_FOUND.
 */
#include "storage/last-store.h"
#include "storage/sql-store.h"
#include "lib/log.h"

#define LAST_INSERT "INSERT INTO last_activity (server_host, username, seconds, status) VALUES (?, ?, ?, ?)"
static const struct upsert_sql sql_last_upsert = {
	LAST_INSERT " ON CONFLICT (server_host, username) DO UPDATE SET seconds = excluded.seconds, "
	            "status = excluded.status",
	LAST_INSERT " ON DUPLICATE KEY UPDATE seconds = VALUES(seconds), status = VALUES(status)",
	LAST_INSERT,
	"UPDATE last_activity SET seconds = ?, status = ? WHERE server_host = ? AND username = ?",
};
static const char sql_last_get[] =
        "SELECT seconds, status FROM last_activity WHERE server_host = ? AND username = ?";
static enum storage_result op_last_get(void *conn, struct last_get_job *r)
{
	struct sql_thread *t = conn;
	const struct sql_driver_vfuncs *d = t->ss->drv;
	struct sql_param p[] = { PTEXT(r->base.host), PTEXT(r->base.user) };
	enum sql_step st;
	struct sql_stmt *s = sql_q_start(t, sql_last_get, p, ARRAY_SIZE(p), &st);
	if (s == NULL)
		return sql_q_fail(t, &r->base);
	if (st != SQL_STEP_ROW) {
		d->reset(s);
		return STORAGE_NOT_FOUND;
	}
	r->last.seconds = d->column_int64(s, 0);
	char *status = sql_col_str(t, r->base.pool, s, 1);
	r->last.status = status != NULL ? status : "";
	d->reset(s);
	return STORAGE_OK;
}

static enum storage_result op_last_set(void *conn, struct last_set_job *r)
{
	struct sql_thread *t = conn;
	struct sql_param p[] = { PTEXT(r->base.host), PTEXT(r->base.user), PINT(r->when),
		                 PTEXT(r->text != NULL ? r->text : "") };
	if (sql_q_begin(t, true) < 0)
		return sql_q_fail(t, &r->base);
	if (sql_q_upsert(t, &sql_last_upsert, p, ARRAY_SIZE(p), 2) < 0 || sql_q_commit(t) < 0)
		return sql_q_abort(t, &r->base);
	return STORAGE_OK;
}

const struct last_store_vfuncs sql_last_vfuncs = {
	.get = op_last_get,
	.set = op_last_set,
};
