/*
 * The SQL implementation of private XML storage (struct private_store_vfuncs of
 * storage/private-store.h), over the statement helpers of sql-store.h.
 *
 * Worker thread: each operation runs on the store's worker that owns the
 * user's jobs, with that worker's connection (conn is its struct
 * sql_thread); it reads only its job and builds its results in the job's
 * pool.  Every change that touches several rows runs in one transaction; a
 * temporary failure is STORAGE_TEMPFAIL, never NOT_FOUND.
 */
#include "storage/private-store.h"
#include "storage/sql-store.h"
#include "lib/log.h"

#define PRIVATE_INSERT \
	"INSERT INTO private_storage (server_host, username, namespace, data) VALUES (?, ?, ?, ?)"
static const struct upsert_sql sql_private_upsert = {
	PRIVATE_INSERT " ON CONFLICT (server_host, username, namespace) DO UPDATE SET data = excluded.data",
	PRIVATE_INSERT " ON DUPLICATE KEY UPDATE data = VALUES(data)",
	PRIVATE_INSERT,
	"UPDATE private_storage SET data = ? WHERE server_host = ? AND username = ? AND namespace = ?",
};
static const char sql_private_get[] =
        "SELECT data FROM private_storage WHERE server_host = ? AND username = ? AND namespace = ?";
static enum storage_result op_private_get(void *conn, struct private_get_job *r)
{
	struct sql_thread *t = conn;
	struct sql_param p[] = { PTEXT(r->base.host), PTEXT(r->base.user), PTEXT(r->ns) };
	int found = sql_q_text(t, r->base.pool, sql_private_get, p, ARRAY_SIZE(p), &r->out_text);
	if (found < 0)
		return sql_q_fail(t, &r->base);
	return found ? STORAGE_OK : STORAGE_NOT_FOUND;
}

static const char sql_private_list[] =
        "SELECT namespace, data FROM private_storage WHERE server_host = ? AND username = ?";

static int cmp_private(const void *a, const void *b)
{
	return strcmp(((const struct private_item *)a)->ns, ((const struct private_item *)b)->ns);
}

static enum storage_result op_private_list(void *conn, struct private_list_job *r)
{
	struct sql_thread *t = conn;
	const struct sql_driver_vfuncs *d = t->ss->drv;
	struct sql_param p[] = { PTEXT(r->base.host), PTEXT(r->base.user) };
	enum sql_step st;
	size_t cap = 0;
	r->pitems = NULL;
	r->npitems = 0;
	struct sql_stmt *s = sql_q_start(t, sql_private_list, p, ARRAY_SIZE(p), &st);
	if (s == NULL)
		return sql_q_fail(t, &r->base);
	while (st == SQL_STEP_ROW) {
		char *ns = sql_col_str(t, r->base.pool, s, 0), *data = sql_col_str(t, r->base.pool, s, 1);
		if (ns != NULL && data != NULL) {
			r->pitems =
			        sql_pool_grow(r->base.pool, r->pitems, r->npitems, &cap, sizeof(*r->pitems));
			r->pitems[r->npitems++] = (struct private_item){ ns, data };
		}
		st = d->step(s);
	}
	if (st == SQL_STEP_ERROR) {
		enum storage_result res = sql_q_fail(t, &r->base);
		d->reset(s);
		return res;
	}
	d->reset(s);
	if (r->npitems > 1)
		qsort(r->pitems, r->npitems, sizeof(*r->pitems), cmp_private);
	return STORAGE_OK;
}

static enum storage_result op_private_set(void *conn, struct private_set_job *r)
{
	struct sql_thread *t = conn;
	if (sql_q_begin(t, true) < 0)
		return sql_q_fail(t, &r->base);
	for (size_t i = 0; i < r->npitems; i++) {
		struct sql_param p[] = { PTEXT(r->base.host), PTEXT(r->base.user), PTEXT(r->pitems[i].ns),
			                 PTEXT(r->pitems[i].data) };
		if (sql_q_upsert(t, &sql_private_upsert, p, ARRAY_SIZE(p), 3) < 0)
			return sql_q_abort(t, &r->base);
	}
	if (sql_q_commit(t) < 0)
		return sql_q_abort(t, &r->base);
	return STORAGE_OK;
}

const struct private_store_vfuncs sql_private_vfuncs = {
	.get = op_private_get,
	.set = op_private_set,
	.list = op_private_list,
};
