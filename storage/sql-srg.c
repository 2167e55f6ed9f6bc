/*
 * The SQL implementation of shared roster groups storage (struct srg_store_vfuncs of
 * storage/srg-store.h), over the statement helpers of sql-store.h.
 *
 * Worker thread: each operation runs on the store's worker that owns the
 * user's jobs, with that worker's connection (conn is its struct
 * sql_thread); it reads only its job and builds its results in the job's
 * pool.  Every change that touches several rows runs in one transaction; a
 * temporary failure is STORAGE_TEMPFAIL, never NOT_FOUND.  Groups are host-wide:
 * their jobs have no user, and run on the host's worker.
 */
#include "storage/srg-store.h"
#include "storage/sql-store.h"
#include "lib/log.h"

/* ---- shared roster groups (worker thread) --------------------------------------- */

static const char sql_srg_list[] = "SELECT name FROM sr_groups WHERE server_host = ?";
static const char sql_srg_get_one[] =
        "SELECT name, label, description FROM sr_groups WHERE server_host = ? AND name = ?";
static const char sql_srg_get_all[] = "SELECT name, label, description FROM sr_groups WHERE server_host = ?";
static const char sql_srg_displayed_one[] =
        "SELECT grp, displayed FROM sr_displayed WHERE server_host = ? AND grp = ?";
static const char sql_srg_displayed_all[] = "SELECT grp, displayed FROM sr_displayed WHERE server_host = ?";
static const char sql_srg_members_one[] =
        "SELECT grp, member FROM sr_members WHERE server_host = ? AND grp = ?";
static const char sql_srg_members_all[] = "SELECT grp, member FROM sr_members WHERE server_host = ?";
static const char sql_srg_insert[] =
        "INSERT INTO sr_groups (server_host, name, label, description) VALUES (?, ?, ?, ?)";
static const char sql_srg_displayed_insert[] =
        "INSERT INTO sr_displayed (server_host, grp, displayed) VALUES (?, ?, ?)";
static const char sql_srg_member_insert[] =
        "INSERT INTO sr_members (server_host, grp, member) VALUES (?, ?, ?)";
static const char sql_srg_exists[] = "SELECT 1 FROM sr_groups WHERE server_host = ? AND name = ?";
static const char sql_srg_same[] = "SELECT 1 FROM sr_groups WHERE server_host = ? AND name = ? AND "
                                   "label = ? AND description = ?";
static const char sql_srg_member_exists[] =
        "SELECT 1 FROM sr_members WHERE server_host = ? AND grp = ? AND member = ?";
static const char sql_srg_member_delete[] =
        "DELETE FROM sr_members WHERE server_host = ? AND grp = ? AND member = ?";
static const char sql_srg_members_delete[] = "DELETE FROM sr_members WHERE server_host = ? AND grp = ?";
static const char sql_srg_displayed_delete[] = "DELETE FROM sr_displayed WHERE server_host = ? AND grp = ?";
static const char sql_srg_delete[] = "DELETE FROM sr_groups WHERE server_host = ? AND name = ?";
static const char sql_srg_user_groups[] =
        "SELECT DISTINCT grp FROM sr_members WHERE server_host = ? AND (member = ? OR member = ?)";

static int cmp_group(const void *a, const void *b)
{
	return strcmp(((const struct srg_group *)a)->name, ((const struct srg_group *)b)->name);
}

/* Rows of (group, value) into the named groups' lists (which) of r->groups. */
static int srg_read_lists(struct sql_thread *t, struct srg_get_job *r, const char *sql,
                          const struct sql_param *p, size_t n, bool members)
{
	const struct sql_driver_vfuncs *d = t->ss->drv;
	enum sql_step st;
	size_t *caps = r->ngroups > 0 ? pool_alloc(r->base.pool, r->ngroups * sizeof(size_t)) : NULL;
	struct sql_stmt *s = sql_q_start(t, sql, p, n, &st);
	if (s == NULL)
		return -1;
	while (st == SQL_STEP_ROW) {
		const char *grp = d->column_text(s, 0);
		struct srg_group key = { .name = (char *)grp };
		struct srg_group *g = grp != NULL && r->ngroups > 0
		                              ? bsearch(&key, r->groups, r->ngroups, sizeof(*g), cmp_group)
		                              : NULL;
		char *v = sql_col_str(t, r->base.pool, s, 1);
		if (g != NULL && v != NULL) {
			struct strlist *l = members ? &g->members : &g->displayed;
			size_t k = (size_t)(g - r->groups);
			l->items = sql_pool_grow(r->base.pool, l->items, l->count, &caps[k], sizeof(char *));
			l->items[l->count++] = v;
		}
		st = d->step(s);
	}
	d->reset(s);
	if (st == SQL_STEP_ERROR)
		return -1;
	for (size_t i = 0; i < r->ngroups; i++) {
		struct strlist *l = members ? &r->groups[i].members : &r->groups[i].displayed;
		if (l->count > 1)
			qsort(l->items, l->count, sizeof(char *), sql_cmp_str);
	}
	return 0;
}

static enum storage_result op_srg_list(void *conn, struct srg_list_job *r)
{
	struct sql_thread *t = conn;
	struct sql_param p[] = { PTEXT(r->base.host) };
	return sql_q_names(t, &r->base, sql_srg_list, p, ARRAY_SIZE(p), &r->names);
}

static enum storage_result op_srg_get(void *conn, struct srg_get_job *r)
{
	struct sql_thread *t = conn;
	const struct sql_driver_vfuncs *d = t->ss->drv;
	struct sql_param p[] = { PTEXT(r->base.host), PTEXT(r->name) };
	size_t np = r->name != NULL ? 2 : 1;
	enum sql_step st;
	size_t cap = 0;
	r->groups = NULL;
	r->ngroups = 0;
	/* One read transaction: groups, lists and members agree. */
	if (sql_q_begin(t, false) < 0)
		return sql_q_fail(t, &r->base);
	struct sql_stmt *s = sql_q_start(t, r->name != NULL ? sql_srg_get_one : sql_srg_get_all, p, np, &st);
	if (s == NULL)
		return sql_q_abort(t, &r->base);
	while (st == SQL_STEP_ROW) {
		char *name = sql_col_str(t, r->base.pool, s, 0);
		if (name != NULL) {
			r->groups =
			        sql_pool_grow(r->base.pool, r->groups, r->ngroups, &cap, sizeof(*r->groups));
			struct srg_group *g = &r->groups[r->ngroups++];
			memset(g, 0, sizeof(*g));
			g->name = name;
			g->label = sql_col_str(t, r->base.pool, s, 1);
			g->description = sql_col_str(t, r->base.pool, s, 2);
			if (g->label == NULL)
				g->label = pool_strdup(r->base.pool, "");
			if (g->description == NULL)
				g->description = pool_strdup(r->base.pool, "");
		}
		st = d->step(s);
	}
	d->reset(s);
	if (st == SQL_STEP_ERROR)
		return sql_q_abort(t, &r->base);
	if (r->ngroups > 1)
		qsort(r->groups, r->ngroups, sizeof(*r->groups), cmp_group);
	if (srg_read_lists(t, r, r->name != NULL ? sql_srg_displayed_one : sql_srg_displayed_all, p, np,
	                   false) < 0 ||
	    srg_read_lists(t, r, r->name != NULL ? sql_srg_members_one : sql_srg_members_all, p, np, true) <
	            0)
		return sql_q_abort(t, &r->base);
	if (sql_q_commit(t) < 0)
		return sql_q_abort(t, &r->base);
	if (r->name != NULL && r->ngroups == 0)
		return STORAGE_NOT_FOUND;
	return STORAGE_OK;
}

/* Insert every distinct value of l as a row (host, group, value). */
static int srg_insert_list(struct sql_thread *t, struct srg_create_job *r, const char *sql,
                           const struct strlist *l)
{
	for (size_t i = 0; i < l->count; i++) {
		bool dup = false;
		for (size_t k = 0; k < i && !dup; k++)
			dup = strcmp(l->items[k], l->items[i]) == 0;
		if (dup)
			continue;
		struct sql_param p[] = { PTEXT(r->base.host), PTEXT(r->grp.name), PTEXT(l->items[i]) };
		if (sql_q_exec(t, sql, p, ARRAY_SIZE(p), NULL) < 0)
			return -1;
	}
	return 0;
}

static enum storage_result op_srg_create(void *conn, struct srg_create_job *r)
{
	struct sql_thread *t = conn;
	struct sql_param pk[] = { PTEXT(r->base.host), PTEXT(r->grp.name) };
	struct sql_param p[] = { PTEXT(r->base.host), PTEXT(r->grp.name), PTEXT(r->grp.label),
		                 PTEXT(r->grp.description) };
	int64_t v = 0;
	if (sql_q_begin(t, true) < 0)
		return sql_q_fail(t, &r->base);
	int found = sql_q_int(t, sql_srg_exists, pk, ARRAY_SIZE(pk), &v);
	if (found > 0 && r->base.rerun) {
		/* the first try's COMMIT may have been applied, its answer lost:
		 * the group it made (with its lists, in the same transaction)
		 * counts as made by this job */
		int same = sql_q_int(t, sql_srg_same, p, ARRAY_SIZE(p), &v);
		if (same < 0)
			return sql_q_abort(t, &r->base);
		if (same > 0) {
			t->ss->drv->rollback(t->conn);
			return sql_q_done_before(t, &r->base, "done");
		}
	}
	if (found < 0)
		return sql_q_abort(t, &r->base);
	if (found > 0) {
		t->ss->drv->rollback(t->conn);
		return STORAGE_EXISTS;
	}
	if (sql_q_exec(t, sql_srg_insert, p, ARRAY_SIZE(p), NULL) < 0 ||
	    srg_insert_list(t, r, sql_srg_displayed_insert, &r->grp.displayed) < 0 ||
	    srg_insert_list(t, r, sql_srg_member_insert, &r->grp.members) < 0 || sql_q_commit(t) < 0)
		return sql_q_abort(t, &r->base);
	return STORAGE_OK;
}

static enum storage_result op_srg_delete(void *conn, struct srg_delete_job *r)
{
	struct sql_thread *t = conn;
	struct sql_param p[] = { PTEXT(r->base.host), PTEXT(r->name) };
	static const char *const sql[] = { sql_srg_members_delete, sql_srg_displayed_delete, sql_srg_delete };
	enum storage_result res = sql_q_delete_open(t, &r->base, sql, ARRAY_SIZE(sql), p, ARRAY_SIZE(p));
	if (res != STORAGE_OK)
		return res;
	if (sql_q_commit(t) < 0)
		return sql_q_abort(t, &r->base);
	return STORAGE_OK;
}

static enum storage_result op_srg_member_add(void *conn, struct srg_member_add_job *r)
{
	struct sql_thread *t = conn;
	struct sql_param pk[] = { PTEXT(r->base.host), PTEXT(r->name) };
	struct sql_param pm[] = { PTEXT(r->base.host), PTEXT(r->name), PTEXT(r->member) };
	int64_t v = 0;
	if (sql_q_begin(t, true) < 0)
		return sql_q_fail(t, &r->base);
	int found = sql_q_int(t, sql_srg_exists, pk, ARRAY_SIZE(pk), &v);
	if (found < 0)
		return sql_q_abort(t, &r->base);
	if (found == 0) {
		t->ss->drv->rollback(t->conn);
		return STORAGE_NOT_FOUND;
	}
	found = sql_q_int(t, sql_srg_member_exists, pm, ARRAY_SIZE(pm), &v);
	if (found < 0)
		return sql_q_abort(t, &r->base);
	if (found > 0) {
		t->ss->drv->rollback(t->conn);
		/* a first try whose answer was lost may have added it */
		return r->base.rerun ? sql_q_done_before(t, &r->base, "done") : STORAGE_EXISTS;
	}
	if (sql_q_exec(t, sql_srg_member_insert, pm, ARRAY_SIZE(pm), NULL) < 0 || sql_q_commit(t) < 0)
		return sql_q_abort(t, &r->base);
	return STORAGE_OK;
}

static enum storage_result op_srg_member_remove(void *conn, struct srg_member_remove_job *r)
{
	struct sql_thread *t = conn;
	struct sql_param pm[] = { PTEXT(r->base.host), PTEXT(r->name), PTEXT(r->member) };
	uint64_t changes = 0;
	if (sql_q_exec(t, sql_srg_member_delete, pm, ARRAY_SIZE(pm), &changes) < 0)
		return sql_q_fail(t, &r->base);
	return changes > 0 ? STORAGE_OK : STORAGE_NOT_FOUND;
}

static enum storage_result op_srg_user_groups(void *conn, struct srg_user_groups_job *r)
{
	struct sql_thread *t = conn;
	struct sql_param p[] = { PTEXT(r->base.host), PTEXT(r->member), PTEXT(SRG_MEMBER_ALL) };
	return sql_q_names(t, &r->base, sql_srg_user_groups, p, ARRAY_SIZE(p), &r->names);
}

const struct srg_store_vfuncs sql_srg_vfuncs = {
	.list = op_srg_list,
	.get = op_srg_get,
	.create = op_srg_create,
	.delete = op_srg_delete,
	.member_add = op_srg_member_add,
	.member_remove = op_srg_member_remove,
	.user_groups = op_srg_user_groups,
};
