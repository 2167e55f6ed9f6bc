/*
 * The SQL implementation of message archive storage (struct
 * mam_store_vfuncs of storage/mam-store.h), over the statement helpers of
 * sql-store.h.  Tables archive (one row per archived message, keyed by
 * server_host, owner and the module's id), archive_prefs and
 * archive_prefs_jid (an owner's archiving preferences).
 *
 * Worker thread: each operation runs on the store's worker that owns the
 * job's key (the owner; the host for expire: see mam-store.h), with that
 * worker's connection (conn is its struct sql_thread); it reads only its
 * job and builds its results in the job's pool.  A temporary failure is
 * STORAGE_TEMPFAIL, never NOT_FOUND; a duplicate id is STORAGE_EXISTS (the
 * driver's constraint class).
 *
 * A query is built from the filters it has (the statement caches of the
 * drivers keep one statement per shape).  What differs per dialect: the
 * page limit (LIMIT, or OFFSET/FETCH on SQL Server), the full-text search
 * (SQLite's FTS5 table archive_fts, PostgreSQL's to_tsvector over a GIN
 * index read in two bounded steps, MySQL's FULLTEXT index; SQL Server a
 * case-insensitive substring),
 * retention's limited delete, and how a group commit writes its rows
 * (multi-row inserts in one transaction; one row per statement on SQL
 * Server and unknown ODBC dialects; with the pgsql driver one statement
 * for the whole batch, its columns as arrays).  The dialect is the connection's (the odbc driver serves
 * several).
 */
#include "storage/mam-store.h"
#include "storage/sql-store.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>

#define OWNER_WHERE "WHERE server_host = ? AND owner = ?"

/* The insert of one message, and of 4, 16 or 64 in one statement (a batch
 * is written in chunks of these sizes: one round trip and one statement
 * run per chunk, and at most four statements in each connection's cache). */
#define MAM_INSERT \
	"INSERT INTO archive (server_host, owner, id, peer, resource, outgoing, body, stanza) VALUES "
#define MAM_ROW "(?, ?, ?, ?, ?, ?, ?, ?)"
#define MAM_ROW_PARAMS 8
#define MAM_ROWS4 MAM_ROW ", " MAM_ROW ", " MAM_ROW ", " MAM_ROW
#define MAM_ROWS16 MAM_ROWS4 ", " MAM_ROWS4 ", " MAM_ROWS4 ", " MAM_ROWS4
#define MAM_ROWS64 MAM_ROWS16 ", " MAM_ROWS16 ", " MAM_ROWS16 ", " MAM_ROWS16
static const char sql_mam_insert[] = MAM_INSERT MAM_ROW;
static const struct {
	size_t rows;
	const char *sql;
} sql_mam_insert_chunks[] = {
	{ 64, MAM_INSERT MAM_ROWS64 },
	{ 16, MAM_INSERT MAM_ROWS16 },
	{ 4, MAM_INSERT MAM_ROWS4 },
	{ 1, sql_mam_insert },
};
#define MAM_CHUNK_MAX 64
/* PostgreSQL (its own driver): a batch's rows in one statement whatever
 * their number, each column one array parameter that the server unnests:
 * one round trip per group commit, and no BEGIN and COMMIT around it (a
 * statement alone is a transaction). */
static const char sql_mam_insert_unnest[] =
        "INSERT INTO archive (server_host, owner, id, peer, resource, outgoing, body, stanza) "
        "SELECT * FROM unnest(?::text[], ?::text[], ?::bigint[], ?::text[], ?::text[], "
        "?::smallint[], ?::text[], ?::text[])";
/* The row with a key, to tell whether it is the same message (compared
 * here, byte for byte: the dialects' text comparisons follow collations). */
static const char sql_mam_row[] = "SELECT peer, resource, outgoing, stanza FROM archive "
                                  "WHERE server_host = ? AND owner = ? AND id = ?";
static const char sql_mam_owner_delete[] = "DELETE FROM archive " OWNER_WHERE;
static const char sql_mam_prefs_get[] = "SELECT def FROM archive_prefs " OWNER_WHERE;
static const char sql_mam_prefs_jids[] = "SELECT jid, always FROM archive_prefs_jid " OWNER_WHERE;
static const char sql_mam_prefs_insert[] =
        "INSERT INTO archive_prefs (server_host, owner, def) VALUES (?, ?, ?)";
static const char sql_mam_prefs_jid_insert[] =
        "INSERT INTO archive_prefs_jid (server_host, owner, jid, always) VALUES (?, ?, ?, ?)";
static const char *const sql_mam_prefs_deletes[] = {
	"DELETE FROM archive_prefs_jid " OWNER_WHERE,
	"DELETE FROM archive_prefs " OWNER_WHERE,
};

/* Retention: the rows of a host older than an id; with a limit, per
 * dialect (oldest first where the dialect can say so). */
static const char sql_mam_expire_all[] = "DELETE FROM archive WHERE server_host = ? AND id < ?";
static const char sql_mam_expire_sqlite[] =
        "DELETE FROM archive WHERE seq IN (SELECT seq FROM archive WHERE server_host = ? AND id < ? "
        "ORDER BY id LIMIT ?)";
static const char sql_mam_expire_pgsql[] =
        "DELETE FROM archive WHERE ctid = ANY (ARRAY(SELECT ctid FROM archive WHERE server_host = ? "
        "AND id < ? ORDER BY id LIMIT ?))";
static const char sql_mam_expire_mysql[] =
        "DELETE FROM archive WHERE server_host = ? AND id < ? ORDER BY id LIMIT ?";
/* SQL Server: the limit is the first parameter. */
static const char sql_mam_expire_mssql[] = "DELETE TOP (?) FROM archive WHERE server_host = ? AND id < ?";

enum mam_dialect { MAM_SQLITE, MAM_PGSQL, MAM_MYSQL, MAM_MSSQL };

static enum mam_dialect dialect_of(struct sql_thread *t)
{
	const struct sql_driver_vfuncs *d = t->ss->drv;
	const struct sql_dialect *dia = d->conn_dialect != NULL ? d->conn_dialect(t->conn) : d->dialect;
	const char *name = dia != NULL && dia->name != NULL ? dia->name : "";
	if (strcmp(name, "sqlite") == 0)
		return MAM_SQLITE;
	if (strcmp(name, "pgsql") == 0)
		return MAM_PGSQL;
	if (strcmp(name, "mysql") == 0)
		return MAM_MYSQL;
	return MAM_MSSQL; /* the portable forms */
}

/* ---- store --------------------------------------------------------------------- */

/* The parameters of job r's row (MAM_ROW_PARAMS of them) into p. */
static void msg_params(struct sql_param *p, const struct mam_store_job *r)
{
	const struct mam_message *m = &r->msg;
	const struct sql_param row[MAM_ROW_PARAMS] = {
		PTEXT(r->base.host), PTEXT(r->owner),           PINT(m->id),    PTEXT(m->peer),
		PTEXT(m->resource),  PINT(m->outgoing ? 1 : 0), PTEXT(m->body), PTEXT(m->stanza),
	};
	memcpy(p, row, sizeof(row));
}

static int insert_msg(struct sql_thread *t, const struct mam_store_job *r)
{
	struct sql_param p[MAM_ROW_PARAMS];
	msg_params(p, r);
	return sql_q_exec(t, sql_mam_insert, p, ARRAY_SIZE(p), NULL);
}

/* A key already taken: by this very message when an earlier try of the
 * job was stored after all (its answer was lost with the connection, and
 * the store or the module ran it again), else by another message (the
 * clock went back: EXISTS, and the module picks a new id). */
static enum storage_result op_mam_store(void *conn, struct mam_store_job *r)
{
	struct sql_thread *t = conn;
	if (insert_msg(t, r) == 0)
		return STORAGE_OK;
	enum storage_result res = sql_q_fail(t, &r->base);
	if (res != STORAGE_EXISTS)
		return res;
	const struct mam_message *m = &r->msg;
	struct sql_param p[] = { PTEXT(r->base.host), PTEXT(r->owner), PINT(m->id) };
	const struct sql_driver_vfuncs *d = t->ss->drv;
	enum sql_step st;
	struct sql_stmt *s = sql_q_start(t, sql_mam_row, p, ARRAY_SIZE(p), &st);
	if (s == NULL)
		return sql_q_fail(t, &r->base);
	bool same = false;
	if (st == SQL_STEP_ROW) {
		const char *peer = d->column_text(s, 0), *resource = d->column_text(s, 1);
		const char *stanza = d->column_text(s, 3);
		same = peer != NULL && strcmp(peer, m->peer) == 0 && resource != NULL &&
		       strcmp(resource, m->resource) == 0 && (d->column_int64(s, 2) != 0) == m->outgoing &&
		       stanza != NULL && strcmp(stanza, m->stanza) == 0;
	}
	d->reset(s);
	return same ? STORAGE_OK : STORAGE_EXISTS;
}

/* The n jobs' rows: with multi-row inserts in chunks of 64, 16, 4 and 1
 * rows (SQL Server and unknown ODBC dialects: one row per statement). */
static int insert_msgs(struct sql_thread *t, struct mam_store_job **jobs, size_t n)
{
	struct sql_param p[MAM_CHUNK_MAX * MAM_ROW_PARAMS];
	bool multi = dialect_of(t) != MAM_MSSQL;
	size_t done = 0;
	for (size_t c = multi ? 0 : ARRAY_SIZE(sql_mam_insert_chunks) - 1; done < n;) {
		size_t rows = sql_mam_insert_chunks[c].rows;
		if (n - done < rows) {
			c++;
			continue;
		}
		for (size_t i = 0; i < rows; i++)
			msg_params(p + i * MAM_ROW_PARAMS, jobs[done + i]);
		if (sql_q_exec(t, sql_mam_insert_chunks[c].sql, p, rows * MAM_ROW_PARAMS, NULL) < 0)
			return -1;
		done += rows;
	}
	return 0;
}

/* Column c of job r's row as text (id: room for an int64's digits). */
static const char *row_text(const struct mam_store_job *r, size_t c, char id[24])
{
	const struct mam_message *m = &r->msg;
	switch (c) {
	case 0: return r->base.host;
	case 1: return r->owner;
	case 2: snprintf(id, 24, "%" PRId64, m->id); return id;
	case 3: return m->peer;
	case 4: return m->resource;
	case 5: return m->outgoing ? "1" : "0";
	case 6: return m->body;
	default: return m->stanza;
	}
}

/* Column c of the n jobs' rows as a PostgreSQL array literal: {"v",NULL,...},
 * each value quoted, its double quotes and backslashes escaped (malloc'd). */
static char *array_literal(struct mam_store_job **jobs, size_t n, size_t c)
{
	char id[24];
	size_t need = 3; /* {} and the NUL */
	for (size_t i = 0; i < n; i++) {
		const char *v = row_text(jobs[i], c, id);
		need += v != NULL ? 2 * strlen(v) + 3 : 5; /* every byte escaped, quotes, comma */
	}
	char *out = xmalloc(need), *w = out;
	*w++ = '{';
	for (size_t i = 0; i < n; i++) {
		const char *v = row_text(jobs[i], c, id);
		if (i > 0)
			*w++ = ',';
		if (v == NULL) {
			memcpy(w, "NULL", 4);
			w += 4;
			continue;
		}
		*w++ = '"';
		for (; *v != '\0'; v++) {
			if (*v == '"' || *v == '\\')
				*w++ = '\\';
			*w++ = *v;
		}
		*w++ = '"';
	}
	*w++ = '}';
	*w = '\0';
	return out;
}

/* PostgreSQL: the n jobs' rows in one statement (sql_mam_insert_unnest).
 * true when they are stored. */
static bool insert_unnest(struct sql_thread *t, struct mam_store_job **jobs, size_t n)
{
	if (t->ss->test_fail_batches)
		return false;
	char *cols[MAM_ROW_PARAMS];
	struct sql_param p[MAM_ROW_PARAMS];
	for (size_t c = 0; c < MAM_ROW_PARAMS; c++) {
		cols[c] = array_literal(jobs, n, c);
		p[c] = (struct sql_param)PTEXT(cols[c]);
	}
	bool ok = sql_q_exec(t, sql_mam_insert_unnest, p, ARRAY_SIZE(p), NULL) == 0;
	for (size_t c = 0; c < MAM_ROW_PARAMS; c++)
		free(cols[c]);
	return ok;
}

/* Group commit: the jobs' inserts in one write transaction (with the pgsql
 * driver one statement).  false, with nothing stored, when one failed (a
 * duplicate id among them too) or the commit did: the store then runs each
 * job alone, and each gets its own result. */
static bool op_mam_store_batch(void *conn, struct mam_store_job **jobs, size_t n)
{
	struct sql_thread *t = conn;
	if (strcmp(t->ss->drv->name, "pgsql") == 0) {
		if (!insert_unnest(t, jobs, n))
			return false;
		for (size_t i = 0; i < n; i++)
			jobs[i]->base.res = STORAGE_OK;
		return true;
	}
	if (sql_q_begin(t, true) < 0)
		return false;
	if (insert_msgs(t, jobs, n) < 0 || t->ss->test_fail_batches || sql_q_commit(t) < 0) {
		t->ss->drv->rollback(t->conn);
		return false;
	}
	for (size_t i = 0; i < n; i++)
		jobs[i]->base.res = STORAGE_OK;
	return true;
}

/* ---- query --------------------------------------------------------------------- */

/* The search words of text, each quoted and required, joined by spaces;
 * NULL when text has no word.  FTS5 (mark ""): "word", a double quote in
 * a word doubled; MySQL's boolean mode (mark "+"): +"word", double quotes
 * dropped (a phrase cannot hold one). */
static char *words_query(struct pool *p, const char *text, const char *mark)
{
	bool fts5 = *mark == '\0';
	struct buf b = { 0 };
	const char *s = text;
	while (*s != '\0') {
		while (*s != '\0' && isspace((unsigned char)*s))
			s++;
		if (*s == '\0')
			break;
		buf_printf(&b, "%s%s\"", b.len > 0 ? " " : "", mark);
		for (; *s != '\0' && !isspace((unsigned char)*s); s++)
			if (*s != '"')
				buf_append(&b, s, 1);
			else if (fts5)
				buf_append_str(&b, "\"\"");
		buf_append_str(&b, "\"");
	}
	char *out = b.len > 0 ? pool_strdup(p, b.data) : NULL;
	buf_free(&b);
	return out;
}

/* A LIKE pattern matching text anywhere, with ! escaping the pattern
 * characters (% _ [ and ! itself). */
static char *like_pattern(struct pool *p, const char *text)
{
	struct buf b = { 0 };
	buf_append_str(&b, "%");
	for (const char *s = text; *s != '\0'; s++) {
		if (*s == '%' || *s == '_' || *s == '[' || *s == '!')
			buf_append_str(&b, "!");
		buf_append(&b, s, 1);
	}
	buf_append_str(&b, "%");
	char *out = pool_strdup(p, b.data);
	buf_free(&b);
	return out;
}

static bool blank(const char *s)
{
	for (; *s != '\0'; s++)
		if (!isspace((unsigned char)*s))
			return false;
	return true;
}

/* SQLite: a search whose words match at least this many messages (of
 * every owner) is "common": the page is then read in id order along the
 * owner's key, each row checked against the matches, rather than every
 * match fetched and sorted (which grows with the number of matches). */
#define FTS5_COMMON 1000
static const char sql_mam_fts5_probe[] =
        "SELECT COUNT(*) FROM (SELECT rowid FROM archive_fts WHERE archive_fts MATCH ? LIMIT ?)";

/* The full-text condition for text and its parameter (*param_r, NULL:
 * none); the text without a word matches every message with a body.  -1
 * on an error (SQLite's probe). */
static int text_clause(struct sql_thread *t, enum mam_dialect dia, struct pool *p, const char *text,
                       const char **clause_r, const char **param_r)
{
	*param_r = NULL;
	if (blank(text)) {
		*clause_r = " AND body IS NOT NULL";
		return 0;
	}
	switch (dia) {
	case MAM_SQLITE: {
		*param_r = words_query(p, text, "");
		struct sql_param pp[] = { PTEXT(*param_r), PINT(FTS5_COMMON) };
		int64_t n = 0;
		if (sql_q_int(t, sql_mam_fts5_probe, pp, ARRAY_SIZE(pp), &n) < 0)
			return -1;
		/* "+seq": the matches do not drive the query, the key does. */
		*clause_r = n >= FTS5_COMMON
		                    ? " AND +seq IN (SELECT rowid FROM archive_fts WHERE archive_fts MATCH ?)"
		                    : " AND seq IN (SELECT rowid FROM archive_fts WHERE archive_fts MATCH ?)";
		return 0;
	}
	case MAM_PGSQL:
		*param_r = text;
		*clause_r = " AND to_tsvector('simple', body) @@ plainto_tsquery('simple', ?)";
		return 0;
	case MAM_MYSQL:
		*param_r = words_query(p, text, "+");
		*clause_r = " AND MATCH (body) AGAINST (? IN BOOLEAN MODE)";
		return 0;
	case MAM_MSSQL:
	default:
		*param_r = like_pattern(p, text);
		*clause_r = " AND LOWER(body) LIKE LOWER(?) ESCAPE '!'";
		return 0;
	}
}

/* PostgreSQL: the newest (or oldest) rows of the page's range read along
 * the owner's key before the search falls back to the text index; see
 * pgsql_text_page. */
#define PG_KEY_WINDOW 1000

/* Room for the parameters of a query: owner's two, with, resource,
 * start, end, after, before, text, the key window, limit, and the ids. */
#define QUERY_FIXED_PARAMS 11

#define QUERY_COLUMNS "id, peer, resource, outgoing, body, stanza"

/* Runs sql with its n parameters p and fills r's page from its rows (at
 * most one more than the page: r->complete says whether there was one);
 * the rows in the statement's order. */
static enum storage_result fetch_page(struct sql_thread *t, struct mam_query_job *r, const char *sql,
                                      const struct sql_param *p, size_t n)
{
	const struct sql_driver_vfuncs *d = t->ss->drv;
	struct pool *pool = r->base.pool;
	size_t max = r->q.max;
	enum sql_step st;
	size_t cap = 0;
	r->msgs = NULL;
	r->nmsgs = 0;
	r->complete = true;
	struct sql_stmt *s = sql_q_start(t, sql, p, n, &st);
	if (s == NULL)
		return sql_q_fail(t, &r->base);
	while (st == SQL_STEP_ROW) {
		if (r->nmsgs == max) {
			r->complete = false;
			break;
		}
		r->msgs = sql_pool_grow(pool, r->msgs, r->nmsgs, &cap, sizeof(*r->msgs));
		r->msgs[r->nmsgs++] = (struct mam_message){
			.id = d->column_int64(s, 0),
			.peer = sql_col_text(t, pool, s, 1),
			.resource = sql_col_text(t, pool, s, 2),
			.outgoing = d->column_int64(s, 3) != 0,
			.body = sql_col_str(t, pool, s, 4),
			.stanza = sql_col_text(t, pool, s, 5),
		};
		st = d->step(s);
	}
	if (st == SQL_STEP_ERROR) {
		enum storage_result res = sql_q_fail(t, &r->base);
		d->reset(s);
		return res;
	}
	d->reset(s);
	return STORAGE_OK;
}

/* PostgreSQL's full-text page, where the planner cannot tell a rare word
 * from a common one (a word it has no statistics for, a prepared
 * statement's generic plan, a word frequent only in old messages): first
 * the PG_KEY_WINDOW rows of the range nearest the page's start, read
 * along the owner's key and filtered by the text, which fills the page of
 * a common word; when that does not,
 * every match of the range through the text index (the subquery with
 * OFFSET 0 is planned alone, so not along the key), sorted, unless the
 * window already held the whole range.  The second costs the number of
 * matches, which is small when the first did not fill the page unless
 * the word is frequent only further back. */
static enum storage_result pgsql_text_page(struct sql_thread *t, struct mam_query_job *r, const char *where,
                                           struct sql_param *p, size_t np, const char *clause,
                                           const char *param)
{
	struct pool *pool = r->base.pool;
	const char *order = r->q.backwards ? " ORDER BY id DESC" : " ORDER BY id";
	struct sql_param limit = PINT((int64_t)r->q.max + 1);
	size_t n = np;
	p[n++] = (struct sql_param)PINT(PG_KEY_WINDOW);
	p[n++] = (struct sql_param)PTEXT(param);
	p[n++] = limit;
	char *sql = pool_printf(pool,
	                        "SELECT " QUERY_COLUMNS " FROM (SELECT " QUERY_COLUMNS
	                        " FROM archive %s%s LIMIT ?) s WHERE true%s%s LIMIT ?",
	                        where, order, clause, order);
	enum storage_result res = fetch_page(t, r, sql, p, n);
	if (res != STORAGE_OK || !r->complete)
		return res;
	/* The window held the whole range (a small archive, a narrow range):
	 * the page is complete, and the text index, whose matches are every
	 * owner's, is not read. */
	int64_t in_range = 0;
	p[np] = (struct sql_param)PINT(PG_KEY_WINDOW + 1);
	sql = pool_printf(pool, "SELECT COUNT(*) FROM (SELECT 1 FROM archive %s LIMIT ?) s", where);
	if (sql_q_int(t, sql, p, np + 1, &in_range) < 0)
		return sql_q_fail(t, &r->base);
	if (in_range <= PG_KEY_WINDOW)
		return STORAGE_OK;
	n = np;
	p[n++] = (struct sql_param)PTEXT(param);
	p[n++] = limit;
	sql = pool_printf(pool,
	                  "SELECT " QUERY_COLUMNS " FROM (SELECT " QUERY_COLUMNS
	                  " FROM archive %s%s OFFSET 0) s%s LIMIT ?",
	                  where, clause, order);
	return fetch_page(t, r, sql, p, n);
}

static enum storage_result op_mam_query(void *conn, struct mam_query_job *r)
{
	struct sql_thread *t = conn;
	const struct mam_query *q = &r->q;
	struct pool *pool = r->base.pool;
	enum mam_dialect dia = dialect_of(t);
	r->msgs = NULL;
	r->nmsgs = 0;
	r->complete = true;
	if (q->ids != NULL && q->nids == 0)
		return STORAGE_OK;

	struct sql_param *p = pool_alloc(pool, (QUERY_FIXED_PARAMS + q->nids) * sizeof(*p));
	size_t np = 0;
	struct buf sql = { 0 };
	buf_append_str(&sql, OWNER_WHERE);
	p[np++] = (struct sql_param)PTEXT(r->base.host);
	p[np++] = (struct sql_param)PTEXT(r->owner);
	if (q->with != NULL) {
		buf_append_str(&sql, " AND peer = ?");
		p[np++] = (struct sql_param)PTEXT(q->with);
		if (q->with_resource != NULL) {
			buf_append_str(&sql, " AND resource = ?");
			p[np++] = (struct sql_param)PTEXT(q->with_resource);
		}
	}
	const struct {
		int64_t v;
		const char *cond;
	} bounds[] = {
		{ q->start, " AND id >= ?" },
		{ q->end, " AND id <= ?" },
		{ q->after_id, " AND id > ?" },
		{ q->before_id, " AND id < ?" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(bounds); i++) {
		if (bounds[i].v == 0)
			continue;
		buf_append_str(&sql, bounds[i].cond);
		p[np++] = (struct sql_param)PINT(bounds[i].v);
	}
	if (q->ids != NULL) {
		buf_append_str(&sql, " AND id IN (");
		for (size_t i = 0; i < q->nids; i++) {
			buf_append_str(&sql, i > 0 ? ", ?" : "?");
			p[np++] = (struct sql_param)PINT(q->ids[i]);
		}
		buf_append_str(&sql, ")");
	}
	char *where = pool_strdup(pool, sql.data);
	buf_free(&sql);
	const char *clause = "", *param = NULL;
	if (q->text != NULL && text_clause(t, dia, pool, q->text, &clause, &param) < 0)
		return sql_q_fail(t, &r->base);
	enum storage_result res;
	if (dia == MAM_PGSQL && param != NULL && q->ids == NULL) {
		res = pgsql_text_page(t, r, where, p, np, clause, param);
	} else {
		if (param != NULL)
			p[np++] = (struct sql_param)PTEXT(param);
		/* One more than the page: whether there is more. */
		p[np++] = (struct sql_param)PINT((int64_t)q->max + 1);
		char *text =
		        pool_printf(pool, "SELECT " QUERY_COLUMNS " FROM archive %s%s%s%s", where, clause,
		                    q->backwards ? " ORDER BY id DESC" : " ORDER BY id",
		                    dia == MAM_MSSQL ? " OFFSET 0 ROWS FETCH NEXT ? ROWS ONLY" : " LIMIT ?");
		res = fetch_page(t, r, text, p, np);
	}
	if (res != STORAGE_OK)
		return res;
	if (q->backwards)
		for (size_t i = 0, k = r->nmsgs; i + 1 < k; i++, k--) {
			struct mam_message m = r->msgs[i];
			r->msgs[i] = r->msgs[k - 1];
			r->msgs[k - 1] = m;
		}
	return STORAGE_OK;
}

/* ---- deletes ------------------------------------------------------------------- */

static enum storage_result op_mam_owner_delete(void *conn, struct mam_owner_delete_job *r)
{
	struct sql_thread *t = conn;
	struct sql_param p[] = { PTEXT(r->base.host), PTEXT(r->owner) };
	if (sql_q_exec(t, sql_mam_owner_delete, p, ARRAY_SIZE(p), NULL) < 0)
		return sql_q_fail(t, &r->base);
	return STORAGE_OK;
}

static enum storage_result op_mam_expire(void *conn, struct mam_expire_job *r)
{
	struct sql_thread *t = conn;
	uint64_t changes = 0;
	int rc;
	r->count = 0;
	if (r->limit == 0) {
		struct sql_param p[] = { PTEXT(r->base.host), PINT(r->before) };
		rc = sql_q_exec(t, sql_mam_expire_all, p, ARRAY_SIZE(p), &changes);
	} else if (dialect_of(t) == MAM_MSSQL) {
		struct sql_param p[] = { PINT(r->limit), PTEXT(r->base.host), PINT(r->before) };
		rc = sql_q_exec(t, sql_mam_expire_mssql, p, ARRAY_SIZE(p), &changes);
	} else {
		static const char *const by_dialect[] = {
			[MAM_SQLITE] = sql_mam_expire_sqlite,
			[MAM_PGSQL] = sql_mam_expire_pgsql,
			[MAM_MYSQL] = sql_mam_expire_mysql,
		};
		struct sql_param p[] = { PTEXT(r->base.host), PINT(r->before), PINT(r->limit) };
		rc = sql_q_exec(t, by_dialect[dialect_of(t)], p, ARRAY_SIZE(p), &changes);
	}
	if (rc < 0)
		return sql_q_fail(t, &r->base);
	r->count = changes;
	return STORAGE_OK;
}

/* ---- preferences --------------------------------------------------------------- */

static enum storage_result op_mam_prefs_get(void *conn, struct mam_prefs_get_job *r)
{
	struct sql_thread *t = conn;
	const struct sql_driver_vfuncs *d = t->ss->drv;
	struct pool *pool = r->base.pool;
	struct sql_param p[] = { PTEXT(r->base.host), PTEXT(r->owner) };
	char *def = NULL;
	/* One read transaction: the default and the lists agree. */
	if (sql_q_begin(t, false) < 0)
		return sql_q_fail(t, &r->base);
	int found = sql_q_text(t, pool, sql_mam_prefs_get, p, ARRAY_SIZE(p), &def);
	if (found < 0)
		return sql_q_abort(t, &r->base);
	if (found == 0) {
		d->rollback(t->conn);
		return STORAGE_NOT_FOUND;
	}
	int v = mam_default_parse(def);
	r->prefs.def = v >= 0 ? (enum mam_default)v : MAM_DEFAULT_ROSTER;
	const char **always = NULL, **never = NULL;
	size_t cap_always = 0, cap_never = 0;
	enum sql_step st;
	struct sql_stmt *s = sql_q_start(t, sql_mam_prefs_jids, p, ARRAY_SIZE(p), &st);
	if (s == NULL)
		return sql_q_abort(t, &r->base);
	while (st == SQL_STEP_ROW) {
		char *jid = sql_col_str(t, pool, s, 0);
		if (jid != NULL && d->column_int64(s, 1) != 0) {
			always = sql_pool_grow(pool, always, r->prefs.n_always, &cap_always, sizeof(*always));
			always[r->prefs.n_always++] = jid;
		} else if (jid != NULL) {
			never = sql_pool_grow(pool, never, r->prefs.n_never, &cap_never, sizeof(*never));
			never[r->prefs.n_never++] = jid;
		}
		st = d->step(s);
	}
	d->reset(s);
	if (st == SQL_STEP_ERROR || sql_q_commit(t) < 0)
		return sql_q_abort(t, &r->base);
	if (r->prefs.n_always > 1)
		qsort(always, r->prefs.n_always, sizeof(*always), sql_cmp_str);
	if (r->prefs.n_never > 1)
		qsort(never, r->prefs.n_never, sizeof(*never), sql_cmp_str);
	r->prefs.always = always;
	r->prefs.never = never;
	return STORAGE_OK;
}

static int insert_jids(struct sql_thread *t, const struct mam_prefs_set_job *r, const char *const *jids,
                       size_t n, bool always)
{
	for (size_t i = 0; i < n; i++) {
		struct sql_param p[] = { PTEXT(r->base.host), PTEXT(r->owner), PTEXT(jids[i]),
			                 PINT(always ? 1 : 0) };
		if (sql_q_exec(t, sql_mam_prefs_jid_insert, p, ARRAY_SIZE(p), NULL) < 0)
			return -1;
	}
	return 0;
}

/* The row and its JIDs replaced by delete and insert, in one transaction. */
static enum storage_result op_mam_prefs_set(void *conn, struct mam_prefs_set_job *r)
{
	struct sql_thread *t = conn;
	struct sql_param pk[] = { PTEXT(r->base.host), PTEXT(r->owner) };
	struct sql_param p[] = { PTEXT(r->base.host), PTEXT(r->owner), PTEXT(mam_default_str(r->prefs.def)) };
	if (sql_q_begin(t, true) < 0)
		return sql_q_fail(t, &r->base);
	for (size_t i = 0; i < ARRAY_SIZE(sql_mam_prefs_deletes); i++)
		if (sql_q_exec(t, sql_mam_prefs_deletes[i], pk, ARRAY_SIZE(pk), NULL) < 0)
			return sql_q_abort(t, &r->base);
	if (sql_q_exec(t, sql_mam_prefs_insert, p, ARRAY_SIZE(p), NULL) < 0 ||
	    insert_jids(t, r, r->prefs.always, r->prefs.n_always, true) < 0 ||
	    insert_jids(t, r, r->prefs.never, r->prefs.n_never, false) < 0 || sql_q_commit(t) < 0)
		return sql_q_abort(t, &r->base);
	return STORAGE_OK;
}

const struct mam_store_vfuncs sql_mam_vfuncs = {
	.store = op_mam_store,
	.store_batch = op_mam_store_batch,
	.query = op_mam_query,
	.owner_delete = op_mam_owner_delete,
	.expire = op_mam_expire,
	.prefs_get = op_mam_prefs_get,
	.prefs_set = op_mam_prefs_set,
};
