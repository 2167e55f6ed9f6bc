/*
 * The SQL implementation of privacy lists and the block list storage
 * (struct privacy_store_vfuncs of storage/privacy-store.h), over the
 * statement helpers of sql-store.h.
 *
 * Worker thread: each operation runs on the store's worker that owns the
 * user's jobs, with that worker's connection (conn is its struct
 * sql_thread); it reads only its job and builds its results in the job's
 * pool.  Every change that touches several rows runs in one transaction; a
 * temporary failure is STORAGE_TEMPFAIL, never NOT_FOUND.
 */
#include "storage/privacy-store.h"
#include "storage/sql-store.h"
#include "lib/log.h"

/* ---- blocking command (worker thread) ------------------------------------------ */

static const char sql_blocklist_get[] = "SELECT jid FROM blocklist WHERE server_host = ? AND username = ?";
static const char sql_blocklist_exists[] =
        "SELECT COUNT(*) FROM blocklist WHERE server_host = ? AND username = ? AND jid = ?";
static const char sql_blocklist_insert[] =
        "INSERT INTO blocklist (server_host, username, jid) VALUES (?, ?, ?)";
static const char sql_blocklist_delete[] =
        "DELETE FROM blocklist WHERE server_host = ? AND username = ? AND jid = ?";
static const char sql_blocklist_delete_all[] = "DELETE FROM blocklist WHERE server_host = ? AND username = ?";

static enum storage_result op_blocklist_get(void *conn, struct blocklist_get_job *r)
{
	struct sql_thread *t = conn;
	struct sql_param p[] = { PTEXT(r->base.host), PTEXT(r->base.user) };
	return sql_q_names(t, &r->base, sql_blocklist_get, p, ARRAY_SIZE(p), &r->names);
}

/* Insert the JIDs not there yet (a plain INSERT per missing row: the same
 * SQL for every dialect). */
static enum storage_result op_blocklist_add(void *conn, struct blocklist_add_job *r)
{
	struct sql_thread *t = conn;
	if (sql_q_begin(t, true) < 0)
		return sql_q_fail(t, &r->base);
	for (size_t i = 0; i < r->njids; i++) {
		struct sql_param p[] = { PTEXT(r->base.host), PTEXT(r->base.user), PTEXT(r->jids[i]) };
		int64_t n = 0;
		if (sql_q_int(t, sql_blocklist_exists, p, ARRAY_SIZE(p), &n) < 0)
			return sql_q_abort(t, &r->base);
		if (n == 0 && sql_q_exec(t, sql_blocklist_insert, p, ARRAY_SIZE(p), NULL) < 0)
			return sql_q_abort(t, &r->base);
	}
	if (sql_q_commit(t) < 0)
		return sql_q_abort(t, &r->base);
	return STORAGE_OK;
}

static enum storage_result op_blocklist_remove(void *conn, struct blocklist_remove_job *r)
{
	struct sql_thread *t = conn;
	if (sql_q_begin(t, true) < 0)
		return sql_q_fail(t, &r->base);
	if (r->njids == 0) {
		struct sql_param p[] = { PTEXT(r->base.host), PTEXT(r->base.user) };
		if (sql_q_exec(t, sql_blocklist_delete_all, p, ARRAY_SIZE(p), NULL) < 0)
			return sql_q_abort(t, &r->base);
	}
	for (size_t i = 0; i < r->njids; i++) {
		struct sql_param p[] = { PTEXT(r->base.host), PTEXT(r->base.user), PTEXT(r->jids[i]) };
		if (sql_q_exec(t, sql_blocklist_delete, p, ARRAY_SIZE(p), NULL) < 0)
			return sql_q_abort(t, &r->base);
	}
	if (sql_q_commit(t) < 0)
		return sql_q_abort(t, &r->base);
	return STORAGE_OK;
}

/* ---- privacy lists (worker thread) ------------------------------------------------ */

static const char sql_privacy_lists[] =
        "SELECT name, is_default FROM privacy_lists WHERE server_host = ? AND username = ?";
static const char sql_privacy_items[] =
        "SELECT list_name, item_order, item_type, item_value, action, stanzas FROM privacy_items "
        "WHERE server_host = ? AND username = ?";
static const char sql_privacy_exists[] =
        "SELECT COUNT(*) FROM privacy_lists WHERE server_host = ? AND username = ? AND name = ?";
static const char sql_privacy_insert_list[] =
        "INSERT INTO privacy_lists (server_host, username, name, is_default) VALUES (?, ?, ?, 0)";
static const char sql_privacy_delete_items[] =
        "DELETE FROM privacy_items WHERE server_host = ? AND username = ? AND list_name = ?";
static const char sql_privacy_insert_item[] =
        "INSERT INTO privacy_items (server_host, username, list_name, item_order, item_type, "
        "item_value, action, stanzas) VALUES (?, ?, ?, ?, ?, ?, ?, ?)";
static const char sql_privacy_delete_list[] =
        "DELETE FROM privacy_lists WHERE server_host = ? AND username = ? AND name = ?";
static const char sql_privacy_clear_default[] =
        "UPDATE privacy_lists SET is_default = 0 WHERE server_host = ? AND username = ?";
static const char sql_privacy_make_default[] =
        "UPDATE privacy_lists SET is_default = 1 WHERE server_host = ? AND username = ? AND name = ?";

static int cmp_plist(const void *a, const void *b)
{
	return strcmp(((const struct privacy_list *)a)->name, ((const struct privacy_list *)b)->name);
}

static int cmp_pitem(const void *a, const void *b)
{
	uint32_t x = ((const struct privacy_item *)a)->order, y = ((const struct privacy_item *)b)->order;
	return x < y ? -1 : x > y;
}

static bool privacy_type_parse(const char *s, enum privacy_type *t_r)
{
	static const enum privacy_type all[] = { PRIVACY_JID, PRIVACY_GROUP, PRIVACY_SUBSCRIPTION };
	if (s == NULL || strcmp(s, "all") == 0) {
		*t_r = PRIVACY_ALL;
		return true;
	}
	for (size_t i = 0; i < ARRAY_SIZE(all); i++) {
		if (strcmp(s, privacy_type_str(all[i])) == 0) {
			*t_r = all[i];
			return true;
		}
	}
	return false;
}

static enum storage_result op_privacy_get(void *conn, struct privacy_get_job *r)
{
	struct sql_thread *t = conn;
	const struct sql_driver_vfuncs *d = t->ss->drv;
	struct sql_param p[] = { PTEXT(r->base.host), PTEXT(r->base.user) };
	enum sql_step st;
	size_t cap = 0;
	r->plists = NULL;
	r->nplists = 0;
	r->default_name = NULL;
	/* One read transaction: the lists and their items agree. */
	if (sql_q_begin(t, false) < 0)
		return sql_q_fail(t, &r->base);
	struct sql_stmt *s = sql_q_start(t, sql_privacy_lists, p, ARRAY_SIZE(p), &st);
	if (s == NULL)
		return sql_q_abort(t, &r->base);
	while (st == SQL_STEP_ROW) {
		char *name = sql_col_str(t, r->base.pool, s, 0);
		if (name != NULL) {
			r->plists =
			        sql_pool_grow(r->base.pool, r->plists, r->nplists, &cap, sizeof(*r->plists));
			r->plists[r->nplists++] = (struct privacy_list){ .name = name };
			if (d->column_int64(s, 1) != 0)
				r->default_name = name;
		}
		st = d->step(s);
	}
	d->reset(s);
	if (st == SQL_STEP_ERROR)
		return sql_q_abort(t, &r->base);
	if (r->nplists > 1)
		qsort(r->plists, r->nplists, sizeof(*r->plists), cmp_plist);
	size_t *caps = r->nplists > 0 ? pool_alloc(r->base.pool, r->nplists * sizeof(size_t)) : NULL;
	for (size_t i = 0; i < r->nplists; i++)
		caps[i] = 0;
	s = sql_q_start(t, sql_privacy_items, p, ARRAY_SIZE(p), &st);
	if (s == NULL)
		return sql_q_abort(t, &r->base);
	while (st == SQL_STEP_ROW) {
		const char *lname = d->column_text(s, 0);
		struct privacy_list key = { .name = lname };
		struct privacy_list *l =
		        lname == NULL ? NULL
		                      : bsearch(&key, r->plists, r->nplists, sizeof(*r->plists), cmp_plist);
		enum privacy_type type;
		char *tname = sql_col_str(t, r->base.pool, s, 2);
		char *action = sql_col_str(t, r->base.pool, s, 4);
		int64_t order = d->column_int64(s, 1);
		if (l == NULL || !privacy_type_parse(tname, &type) || action == NULL || order < 0 ||
		    order > UINT32_MAX) {
			log_error("storage %s: %s@%s: a malformed privacy item in the database; ignoring it",
			          t->ss->base.description, r->base.user, r->base.host);
		} else {
			size_t li = (size_t)(l - r->plists);
			struct privacy_item *items = (struct privacy_item *)l->items;
			items = sql_pool_grow(r->base.pool, items, l->nitems, &caps[li], sizeof(*items));
			items[l->nitems] = (struct privacy_item){
				.type = type,
				.value = type == PRIVACY_ALL ? NULL : sql_col_str(t, r->base.pool, s, 3),
				.allow = strcmp(action, "allow") == 0,
				.order = (uint32_t)order,
				.stanzas = (unsigned)d->column_int64(s, 5) & 15u,
			};
			if (type != PRIVACY_ALL && items[l->nitems].value == NULL)
				items[l->nitems].value = "";
			l->items = items;
			l->nitems++;
		}
		st = d->step(s);
	}
	d->reset(s);
	if (st == SQL_STEP_ERROR)
		return sql_q_abort(t, &r->base);
	d->rollback(t->conn); /* read only: nothing to keep */
	for (size_t i = 0; i < r->nplists; i++)
		if (r->plists[i].nitems > 1)
			qsort((void *)r->plists[i].items, r->plists[i].nitems, sizeof(struct privacy_item),
			      cmp_pitem);
	return STORAGE_OK;
}

static enum storage_result op_privacy_set_list(void *conn, struct privacy_set_list_job *r)
{
	struct sql_thread *t = conn;
	struct sql_param p[] = { PTEXT(r->base.host), PTEXT(r->base.user), PTEXT(r->lname) };
	int64_t n = 0;
	if (sql_q_begin(t, true) < 0)
		return sql_q_fail(t, &r->base);
	if (sql_q_int(t, sql_privacy_exists, p, ARRAY_SIZE(p), &n) < 0)
		return sql_q_abort(t, &r->base);
	if (n == 0 && sql_q_exec(t, sql_privacy_insert_list, p, ARRAY_SIZE(p), NULL) < 0)
		return sql_q_abort(t, &r->base);
	if (sql_q_exec(t, sql_privacy_delete_items, p, ARRAY_SIZE(p), NULL) < 0)
		return sql_q_abort(t, &r->base);
	for (size_t i = 0; i < r->nprv_in; i++) {
		const struct privacy_item *it = &r->prv_in[i];
		struct sql_param pi[] = {
			PTEXT(r->base.host),
			PTEXT(r->base.user),
			PTEXT(r->lname),
			PINT(it->order),
			PTEXT(it->type == PRIVACY_ALL ? "all" : privacy_type_str(it->type)),
			PTEXT(it->type == PRIVACY_ALL ? "" : it->value),
			PTEXT(it->allow ? "allow" : "deny"),
			PINT(it->stanzas),
		};
		if (sql_q_exec(t, sql_privacy_insert_item, pi, ARRAY_SIZE(pi), NULL) < 0)
			return sql_q_abort(t, &r->base);
	}
	if (sql_q_commit(t) < 0)
		return sql_q_abort(t, &r->base);
	return STORAGE_OK;
}

static enum storage_result op_privacy_remove_list(void *conn, struct privacy_remove_list_job *r)
{
	struct sql_thread *t = conn;
	struct sql_param p[] = { PTEXT(r->base.host), PTEXT(r->base.user), PTEXT(r->lname) };
	static const char *const sql[] = { sql_privacy_delete_items, sql_privacy_delete_list };
	enum storage_result res = sql_q_delete_open(t, &r->base, sql, ARRAY_SIZE(sql), p, ARRAY_SIZE(p));
	if (res != STORAGE_OK)
		return res;
	if (sql_q_commit(t) < 0)
		return sql_q_abort(t, &r->base);
	return STORAGE_OK;
}

static enum storage_result op_privacy_set_default(void *conn, struct privacy_set_default_job *r)
{
	struct sql_thread *t = conn;
	struct sql_param p[] = { PTEXT(r->base.host), PTEXT(r->base.user), PTEXT(r->lname) };
	int64_t n = 0;
	if (sql_q_begin(t, true) < 0)
		return sql_q_fail(t, &r->base);
	if (r->lname != NULL) {
		if (sql_q_int(t, sql_privacy_exists, p, ARRAY_SIZE(p), &n) < 0)
			return sql_q_abort(t, &r->base);
		if (n == 0) {
			t->ss->drv->rollback(t->conn);
			return STORAGE_NOT_FOUND;
		}
	}
	if (sql_q_exec(t, sql_privacy_clear_default, p, 2, NULL) < 0)
		return sql_q_abort(t, &r->base);
	if (r->lname != NULL && sql_q_exec(t, sql_privacy_make_default, p, ARRAY_SIZE(p), NULL) < 0)
		return sql_q_abort(t, &r->base);
	if (sql_q_commit(t) < 0)
		return sql_q_abort(t, &r->base);
	return STORAGE_OK;
}

const struct privacy_store_vfuncs sql_privacy_vfuncs = {
	.get = op_privacy_get,
	.set_list = op_privacy_set_list,
	.remove_list = op_privacy_remove_list,
	.set_default = op_privacy_set_default,
	.blocklist_get = op_blocklist_get,
	.blocklist_add = op_blocklist_add,
	.blocklist_remove = op_blocklist_remove,
};
