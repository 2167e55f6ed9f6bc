/*
 * The SQL implementation of the vCard search (user directory) storage
 * (struct search_store_vfuncs of storage/search-store.h), over the
 * statement helpers of sql-store.h.
 *
 * Worker thread: each operation runs on the store's worker that owns the
 * user's jobs, with that worker's connection (conn is its struct
 * sql_thread); it reads only its job and builds its results in the job's
 * pool.  Every change that touches several rows runs in one transaction; a
 * temporary failure is STORAGE_TEMPFAIL, never NOT_FOUND.
 */
#include "storage/search-store.h"
#include "storage/sql-store.h"
#include "lib/log.h"

#include "storage/vcard-index.h"


/* The folded column of each field (VF_USER: the key itself). */
static const char *const vsearch_column[VF_COUNT] = {
	[VF_USER] = "username",  [VF_FN] = "lfn",       [VF_FIRST] = "lgiven",       [VF_LAST] = "lfamily",
	[VF_NICK] = "lnickname", [VF_EMAIL] = "lemail", [VF_LOCALITY] = "llocality", [VF_ORG] = "lorgname",
};

/* Above every string that starts with a given prefix and continues with
 * valid UTF-8: the prefix followed by U+10FFFF.  An index range, the same
 * in every dialect (no LIKE and its escapes). */
#define PREFIX_END "\xF4\x8F\xBF\xBF"

static enum storage_result op_vcard_search(void *conn, struct vcard_search_job *r)
{
	struct sql_thread *t = conn;
	const struct sql_driver_vfuncs *d = t->ss->drv;
	struct buf sql = { 0 };
	struct sql_param p[1 + 2 * VF_COUNT * 4];
	size_t np = 0;
	buf_append_str(&sql, "SELECT username, fn, given, family, nickname, email, locality, orgname "
	                     "FROM vcard_search WHERE server_host = ?");
	p[np++] = (struct sql_param)PTEXT(r->base.host);
	for (size_t i = 0; i < r->nterms && np + 2 <= ARRAY_SIZE(p); i++) {
		const struct vcard_term *tm = &r->terms[i];
		const char *col = vsearch_column[tm->field];
		if (tm->prefix && tm->value[0] == '\0')
			continue; /* "*": anything */
		if (tm->prefix) {
			buf_printf(&sql, " AND %s >= ? AND %s < ?", col, col);
			p[np++] = (struct sql_param)PTEXT(tm->value);
			p[np++] = (struct sql_param)PTEXT(
			        pool_printf(r->base.pool, "%s" PREFIX_END, tm->value));
		} else {
			buf_printf(&sql, " AND %s = ?", col);
			p[np++] = (struct sql_param)PTEXT(tm->value);
		}
	}
	if (r->listed_only)
		buf_append_str(&sql, " AND listed = 1");
	buf_append_str(&sql, " ORDER BY username");
	enum sql_step st;
	size_t cap = 0;
	r->entries = NULL;
	r->nentries = 0;
	r->more = false;
	struct sql_stmt *s = sql_q_start(t, sql.data, p, np, &st);
	if (s == NULL) {
		enum storage_result res = sql_q_fail(t, &r->base);
		buf_free(&sql);
		return res;
	}
	while (st == SQL_STEP_ROW) {
		if (r->limit > 0 && r->nentries >= r->limit) {
			r->more = true;
			break;
		}
		r->entries = sql_pool_grow(r->base.pool, r->entries, r->nentries, &cap, sizeof(*r->entries));
		struct vcard_entry *e = &r->entries[r->nentries++];
		static const enum vcard_field cols[] = { VF_USER, VF_FN,    VF_FIRST,    VF_LAST,
			                                 VF_NICK, VF_EMAIL, VF_LOCALITY, VF_ORG };
		for (unsigned c = 0; c < ARRAY_SIZE(cols); c++) {
			char *v = sql_col_str(t, r->base.pool, s, c);
			e->fields[cols[c]] = v != NULL ? v : "";
		}
		st = d->step(s);
	}
	if (st == SQL_STEP_ERROR) {
		enum storage_result res = sql_q_fail(t, &r->base);
		d->reset(s);
		buf_free(&sql);
		return res;
	}
	d->reset(s);
	buf_free(&sql);
	return STORAGE_OK;
}

static const char sql_vcard_unindexed[] =
        "SELECT username, vcard FROM vcards WHERE server_host = ? AND NOT EXISTS "
        "(SELECT 1 FROM vcard_search WHERE vcard_search.server_host = vcards.server_host "
        "AND vcard_search.username = vcards.username)";

static enum storage_result op_vcard_reindex(void *conn, struct vcard_reindex_job *r)
{
	struct sql_thread *t = conn;
	const struct sql_driver_vfuncs *d = t->ss->drv;
	struct sql_param p[] = { PTEXT(r->base.host) };
	enum sql_step st;
	size_t cap = 0, n = 0;
	struct private_item *todo = NULL; /* (user, vcard) pairs */
	r->count = 0;
	if (sql_q_begin(t, true) < 0)
		return sql_q_fail(t, &r->base);
	struct sql_stmt *s = sql_q_start(t, sql_vcard_unindexed, p, ARRAY_SIZE(p), &st);
	if (s == NULL)
		return sql_q_abort(t, &r->base);
	while (st == SQL_STEP_ROW) {
		char *user = sql_col_str(t, r->base.pool, s, 0), *vcard = sql_col_str(t, r->base.pool, s, 1);
		if (user != NULL && vcard != NULL) {
			todo = sql_pool_grow(r->base.pool, todo, n, &cap, sizeof(*todo));
			todo[n].ns = user;
			todo[n++].data = vcard;
		}
		st = d->step(s);
	}
	d->reset(s);
	if (st == SQL_STEP_ERROR)
		return sql_q_abort(t, &r->base);
	for (size_t i = 0; i < n; i++)
		if (sql_vcard_index_write(t, r->base.host, todo[i].ns, todo[i].data) < 0)
			return sql_q_abort(t, &r->base);
	if (sql_q_commit(t) < 0)
		return sql_q_abort(t, &r->base);
	r->count = n;
	return STORAGE_OK;
}

const struct search_store_vfuncs sql_search_vfuncs = {
	.search = op_vcard_search,
	.reindex = op_vcard_reindex,
};
