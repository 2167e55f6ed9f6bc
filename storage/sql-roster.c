/*
 * The SQL implementation of roster storage (struct roster_store_vfuncs of
 * storage/roster-store.h), over the statement helpers of sql-store.h.
 *
 * Worker thread: each operation runs on the store's worker that owns the
 * user's jobs, with that worker's connection (conn is its struct
 * sql_thread); it reads only its job and builds its results in the job's
 * pool.  Every change that touches several rows runs in one transaction; a
 * temporary failure is STORAGE_TEMPFAIL, never NOT_FOUND.  Every change bumps
 * the roster version in the same transaction.
 */
#include "storage/roster-store.h"
#include "storage/sql-store.h"
#include "lib/log.h"

/* ---- roster (worker thread) -------------------------------------------------- */

static int cmp_item(const void *a, const void *b)
{
	return strcmp(((const struct roster_item *)a)->jid, ((const struct roster_item *)b)->jid);
}

static const char sql_roster_items[] =
        "SELECT jid, name, subscription, ask_out, ask_in, approved, ask_in_stanza, in_roster "
        "FROM roster_items WHERE server_host = ? AND username = ?";
static const char sql_roster_groups[] =
        "SELECT jid, grp FROM roster_groups WHERE server_host = ? AND username = ?";
static const char sql_roster_version[] =
        "SELECT version FROM roster_version WHERE server_host = ? AND username = ?";
static const char sql_item_groups_delete[] =
        "DELETE FROM roster_groups WHERE server_host = ? AND username = ? AND jid = ?";
static const char sql_item_group_insert[] =
        "INSERT INTO roster_groups (server_host, username, jid, grp) VALUES (?, ?, ?, ?)";
static const char sql_item_delete[] =
        "DELETE FROM roster_items WHERE server_host = ? AND username = ? AND jid = ?";

/* Upsert of an item: parameters host, user, jid, name, subscription,
 * ask_out, ask_in, approved, ask_in_stanza, in_roster. */
#define ITEM_INSERT                                                                                   \
	"INSERT INTO roster_items (server_host, username, jid, name, subscription, ask_out, ask_in, " \
	"approved, ask_in_stanza, in_roster) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
static const char sql_item_upsert_on_conflict[] = ITEM_INSERT
        " ON CONFLICT (server_host, username, jid) DO UPDATE SET name = excluded.name, "
        "subscription = excluded.subscription, ask_out = excluded.ask_out, ask_in = excluded.ask_in, "
        "approved = excluded.approved, ask_in_stanza = excluded.ask_in_stanza, "
        "in_roster = excluded.in_roster";
static const char sql_item_upsert_on_duplicate[] =
        ITEM_INSERT " ON DUPLICATE KEY UPDATE name = VALUES(name), subscription = VALUES(subscription), "
                    "ask_out = VALUES(ask_out), ask_in = VALUES(ask_in), approved = VALUES(approved), "
                    "ask_in_stanza = VALUES(ask_in_stanza), in_roster = VALUES(in_roster)";
static const char sql_item_insert[] = ITEM_INSERT;
/* Parameters name, subscription, ask_out, ask_in, approved, ask_in_stanza,
 * in_roster, host, user, jid. */
static const char sql_item_update[] =
        "UPDATE roster_items SET name = ?, subscription = ?, ask_out = ?, ask_in = ?, approved = ?, "
        "ask_in_stanza = ?, in_roster = ? WHERE server_host = ? AND username = ? AND jid = ?";

/* Version increment: parameters host, user. */
#define VERSION_INSERT "INSERT INTO roster_version (server_host, username, version) VALUES (?, ?, 1)"
static const char sql_version_upsert_on_conflict[] = VERSION_INSERT
        " ON CONFLICT (server_host, username) DO UPDATE SET version = roster_version.version + 1";
static const char sql_version_upsert_on_duplicate[] =
        VERSION_INSERT " ON DUPLICATE KEY UPDATE version = version + 1";
static const char sql_version_insert[] = VERSION_INSERT;
static const char sql_version_update[] =
        "UPDATE roster_version SET version = version + 1 WHERE server_host = ? AND username = ?";

static char sub_char(enum roster_subscription s)
{
	switch (s) {
	case SUB_TO: return 'T';
	case SUB_FROM: return 'F';
	case SUB_BOTH: return 'B';
	default: return 'N';
	}
}

static enum roster_subscription sub_from_char(const char *s)
{
	switch (s != NULL ? s[0] : 'N') {
	case 'T': return SUB_TO;
	case 'F': return SUB_FROM;
	case 'B': return SUB_BOTH;
	default: return SUB_NONE;
	}
}

static int version_bump(struct sql_thread *t, struct storage_req *r)
{
	struct sql_param p[] = { PTEXT(r->host), PTEXT(r->user) };
	switch (t->ss->upsert) {
	case SQL_UPSERT_ON_CONFLICT:
		return sql_q_exec(t, sql_version_upsert_on_conflict, p, ARRAY_SIZE(p), NULL);
	case SQL_UPSERT_ON_DUPLICATE_KEY:
		return sql_q_exec(t, sql_version_upsert_on_duplicate, p, ARRAY_SIZE(p), NULL);
	case SQL_UPSERT_NONE:
	default: {
		/* Inside the caller's transaction; one user's jobs run on one
		 * thread, so nothing of ours races between the two. */
		uint64_t changes = 0;
		if (sql_q_exec(t, sql_version_update, p, ARRAY_SIZE(p), &changes) < 0)
			return -1;
		return changes > 0 ? 0 : sql_q_exec(t, sql_version_insert, p, ARRAY_SIZE(p), NULL);
	}
	}
}

static int item_upsert(struct sql_thread *t, struct roster_set_job *r)
{
	const struct roster_item *it = &r->item;
	char sub[2] = { sub_char(it->subscription), '\0' };
	struct sql_param p[] = {
		PTEXT(r->base.host), PTEXT(r->base.user), PTEXT(it->jid),
		PTEXT(it->name),     PTEXT(sub),          PINT(it->ask_out),
		PINT(it->ask_in),    PINT(it->approved),  PTEXT(it->ask_in_stanza),
		PINT(it->in_roster),
	};
	switch (t->ss->upsert) {
	case SQL_UPSERT_ON_CONFLICT:
		return sql_q_exec(t, sql_item_upsert_on_conflict, p, ARRAY_SIZE(p), NULL);
	case SQL_UPSERT_ON_DUPLICATE_KEY:
		return sql_q_exec(t, sql_item_upsert_on_duplicate, p, ARRAY_SIZE(p), NULL);
	case SQL_UPSERT_NONE:
	default: {
		struct sql_param u[] = {
			PTEXT(it->name),     PTEXT(sub),          PINT(it->ask_out),
			PINT(it->ask_in),    PINT(it->approved),  PTEXT(it->ask_in_stanza),
			PINT(it->in_roster), PTEXT(r->base.host), PTEXT(r->base.user),
			PTEXT(it->jid),
		};
		uint64_t changes = 0;
		if (sql_q_exec(t, sql_item_update, u, ARRAY_SIZE(u), &changes) < 0)
			return -1;
		return changes > 0 ? 0 : sql_q_exec(t, sql_item_insert, p, ARRAY_SIZE(p), NULL);
	}
	}
}

static enum storage_result op_roster_get(void *conn, struct roster_get_job *r)
{
	struct sql_thread *t = conn;
	const struct sql_driver_vfuncs *d = t->ss->drv;
	struct sql_param p[] = { PTEXT(r->base.host), PTEXT(r->base.user) };
	enum sql_step st;
	size_t cap = 0;
	r->items = NULL;
	r->nitems = 0;
	r->version = 0;

	/* One read transaction: items, groups and version agree. */
	if (sql_q_begin(t, false) < 0)
		return sql_q_fail(t, &r->base);
	struct sql_stmt *s = sql_q_start(t, sql_roster_items, p, ARRAY_SIZE(p), &st);
	if (s == NULL)
		return sql_q_abort(t, &r->base);
	while (st == SQL_STEP_ROW) {
		char *jid = sql_col_str(t, r->base.pool, s, 0);
		if (jid != NULL) {
			r->items = sql_pool_grow(r->base.pool, r->items, r->nitems, &cap, sizeof(*r->items));
			struct roster_item *it = &r->items[r->nitems++];
			memset(it, 0, sizeof(*it));
			it->jid = jid;
			it->name = sql_col_str(t, r->base.pool, s, 1);
			it->subscription = sub_from_char(d->column_text(s, 2));
			it->ask_out = d->column_int64(s, 3) != 0;
			it->ask_in = d->column_int64(s, 4) != 0;
			it->approved = d->column_int64(s, 5) != 0;
			it->ask_in_stanza = it->ask_in ? sql_col_str(t, r->base.pool, s, 6) : NULL;
			it->in_roster = d->column_int64(s, 7) != 0;
		}
		st = d->step(s);
	}
	if (st == SQL_STEP_ERROR) {
		d->reset(s);
		return sql_q_abort(t, &r->base);
	}
	d->reset(s);
	/* Sorted here, byte-wise: the database's collation may differ. */
	if (r->nitems > 1)
		qsort(r->items, r->nitems, sizeof(*r->items), cmp_item);

	size_t *gcap = r->nitems > 0 ? pool_alloc(r->base.pool, r->nitems * sizeof(size_t)) : NULL;
	s = sql_q_start(t, sql_roster_groups, p, ARRAY_SIZE(p), &st);
	if (s == NULL)
		return sql_q_abort(t, &r->base);
	while (st == SQL_STEP_ROW) {
		const char *jid = d->column_text(s, 0);
		struct roster_item key = { .jid = (char *)jid };
		struct roster_item *it = jid != NULL && r->nitems > 0 ? bsearch(&key, r->items, r->nitems,
		                                                                sizeof(*r->items), cmp_item)
		                                                      : NULL;
		char *grp = sql_col_str(t, r->base.pool, s, 1);
		if (it != NULL && grp != NULL) {
			size_t k = (size_t)(it - r->items);
			it->groups.items = sql_pool_grow(r->base.pool, it->groups.items, it->groups.count,
			                                 &gcap[k], sizeof(char *));
			it->groups.items[it->groups.count++] = grp;
		}
		st = d->step(s);
	}
	if (st == SQL_STEP_ERROR) {
		d->reset(s);
		return sql_q_abort(t, &r->base);
	}
	d->reset(s);
	for (size_t i = 0; i < r->nitems; i++)
		if (r->items[i].groups.count > 1)
			qsort(r->items[i].groups.items, r->items[i].groups.count, sizeof(char *),
			      sql_cmp_str);

	s = sql_q_start(t, sql_roster_version, p, ARRAY_SIZE(p), &st);
	if (s == NULL)
		return sql_q_abort(t, &r->base);
	if (st == SQL_STEP_ROW) {
		int64_t v = d->column_int64(s, 0);
		r->version = v > 0 ? (uint64_t)v : 0;
	}
	d->reset(s);
	if (sql_q_commit(t) < 0)
		return sql_q_abort(t, &r->base);
	return STORAGE_OK;
}

static enum storage_result op_roster_set(void *conn, struct roster_set_job *r)
{
	struct sql_thread *t = conn;
	const struct roster_item *it = &r->item;
	if (it->subscription == SUB_REMOVE) {
		log_error("storage %s: roster_set %s@%s: subscription 'remove' is not a state to store",
		          t->ss->base.description, r->base.user, r->base.host);
		return STORAGE_ERROR;
	}
	struct sql_param pj[] = { PTEXT(r->base.host), PTEXT(r->base.user), PTEXT(it->jid) };
	if (sql_q_begin(t, true) < 0)
		return sql_q_fail(t, &r->base);
	if (item_upsert(t, r) < 0 || sql_q_exec(t, sql_item_groups_delete, pj, ARRAY_SIZE(pj), NULL) < 0)
		return sql_q_abort(t, &r->base);
	for (size_t i = 0; i < it->groups.count; i++) {
		bool dup = false;
		for (size_t k = 0; k < i && !dup; k++)
			dup = strcmp(it->groups.items[k], it->groups.items[i]) == 0;
		if (dup)
			continue;
		struct sql_param pg[] = { PTEXT(r->base.host), PTEXT(r->base.user), PTEXT(it->jid),
			                  PTEXT(it->groups.items[i]) };
		if (sql_q_exec(t, sql_item_group_insert, pg, ARRAY_SIZE(pg), NULL) < 0)
			return sql_q_abort(t, &r->base);
	}
	if (version_bump(t, &r->base) < 0 || sql_q_commit(t) < 0)
		return sql_q_abort(t, &r->base);
	return STORAGE_OK;
}

static enum storage_result op_roster_remove(void *conn, struct roster_remove_job *r)
{
	struct sql_thread *t = conn;
	struct sql_param pj[] = { PTEXT(r->base.host), PTEXT(r->base.user), PTEXT(r->jid) };
	static const char *const sql[] = { sql_item_groups_delete, sql_item_delete };
	enum storage_result res = sql_q_delete_open(t, &r->base, sql, ARRAY_SIZE(sql), pj, ARRAY_SIZE(pj));
	if (res != STORAGE_OK)
		return res;
	if (version_bump(t, &r->base) < 0 || sql_q_commit(t) < 0)
		return sql_q_abort(t, &r->base);
	return STORAGE_OK;
}

const struct roster_store_vfuncs sql_roster_vfuncs = {
	.get = op_roster_get,
	.set = op_roster_set,
	.remove = op_roster_remove,
};
