/*
 * The SQL implementation of accounts storage (struct account_store_vfuncs of
 * storage/account-store.h), over the statement helpers of sql-store.h.
 *
 * Worker thread: each operation runs on the store's worker that owns the
 * user's jobs, with that worker's connection (conn is its struct
 * sql_thread); it reads only its job and builds its results in the job's
 * pool.  Every change that touches several rows runs in one transaction; a
 * temporary failure is STORAGE_TEMPFAIL, never NOT_FOUND.  Removing an
 * account removes the user's rows of every table (sql_user_deletes).
 */
#include "storage/account-store.h"
#include "storage/sql-store.h"
#include "lib/log.h"

#include <limits.h>
#include <time.h>

/* ---- accounts (worker thread) -------------------------------------------------- */

#define USER_COLS                                                                          \
	"sha1_salt, sha1_iterations, sha1_stored_key, sha1_server_key, "                   \
	"sha256_salt, sha256_iterations, sha256_stored_key, sha256_server_key, password, " \
	"sha512_salt, sha512_iterations, sha512_stored_key, sha512_server_key"

static const char sql_account_get[] =
        "SELECT created_at, " USER_COLS " FROM users WHERE server_host = ? AND username = ?";
static const char sql_account_create[] =
        "INSERT INTO users (server_host, username, created_at, " USER_COLS ") "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
static const char sql_account_update[] =
        "UPDATE users SET sha1_salt = ?, sha1_iterations = ?, sha1_stored_key = ?, sha1_server_key = ?, "
        "sha256_salt = ?, sha256_iterations = ?, sha256_stored_key = ?, sha256_server_key = ?, "
        "password = ?, sha512_salt = ?, sha512_iterations = ?, sha512_stored_key = ?, "
        "sha512_server_key = ? WHERE server_host = ? AND username = ?";
static const char sql_account_list[] = "SELECT username FROM users WHERE server_host = ?";
/* Paged, after a name (the first page after ""), names containing a text
 * (LIKE with '!' as the escape; '%' for every name): LIMIT, or OFFSET/FETCH
 * on SQL Server (drivers fetch a result whole, so the page is cut in SQL). */
static const char sql_account_page[] =
        "SELECT username FROM users WHERE server_host = ? AND username > ? AND username LIKE ? ESCAPE '!' "
        "ORDER BY username LIMIT ?";
static const char sql_account_page_mssql[] =
        "SELECT username FROM users WHERE server_host = ? AND username > ? AND username LIKE ? ESCAPE '!' "
        "ORDER BY username OFFSET 0 ROWS FETCH NEXT ? ROWS ONLY";

/* '%' + match with its LIKE wildcards and '!' escaped + '%', in pool. */
static const char *like_pattern(struct pool *pool, const char *match)
{
	if (match == NULL)
		return "%";
	char *out = pool_alloc(pool, 2 * strlen(match) + 3), *o = out;
	*o++ = '%';
	for (const char *m = match; *m != '\0'; m++) {
		if (*m == '%' || *m == '_' || *m == '!')
			*o++ = '!';
		*o++ = *m;
	}
	*o++ = '%';
	*o = '\0';
	return out;
}
static const char sql_account_count[] = "SELECT COUNT(*) FROM users WHERE server_host = ?";

/* Every table that holds a user's rows, children first; users last.  A new
 * per-user table is added here so that account removal deletes its rows. */
static const char *const sql_user_deletes[] = {
	"DELETE FROM roster_groups WHERE server_host = ? AND username = ?",
	"DELETE FROM roster_items WHERE server_host = ? AND username = ?",
	"DELETE FROM roster_version WHERE server_host = ? AND username = ?",
	"DELETE FROM offline_messages WHERE server_host = ? AND username = ?",
	"DELETE FROM vcards WHERE server_host = ? AND username = ?",
	"DELETE FROM vcard_search WHERE server_host = ? AND username = ?",
	"DELETE FROM private_storage WHERE server_host = ? AND username = ?",
	"DELETE FROM last_activity WHERE server_host = ? AND username = ?",
	"DELETE FROM blocklist WHERE server_host = ? AND username = ?",
	"DELETE FROM privacy_items WHERE server_host = ? AND username = ?",
	"DELETE FROM privacy_lists WHERE server_host = ? AND username = ?",
	"DELETE FROM fast_tokens WHERE server_host = ? AND username = ?",
	"DELETE FROM scram_cache WHERE server_host = ? AND username = ?",
	"DELETE FROM users WHERE server_host = ? AND username = ?",
};
/* The user's rows keyed by the bare JID (parameters host, bare JID): its
 * memberships in shared roster groups, its message archive and archiving
 * preferences. */
static const char *const sql_user_bare_deletes[] = {
	"DELETE FROM sr_members WHERE server_host = ? AND member = ?",
	"DELETE FROM archive WHERE server_host = ? AND owner = ?",
	"DELETE FROM archive_prefs_jid WHERE server_host = ? AND owner = ?",
	"DELETE FROM archive_prefs WHERE server_host = ? AND owner = ?",
};

/* Decode a base64 key of exactly len bytes into out. */
static bool decode_key(const char *b64, unsigned char *out, size_t len)
{
	unsigned char *raw = NULL;
	size_t raw_len = 0;
	if (base64_decode(b64, strlen(b64), &raw, &raw_len) < 0)
		return false;
	bool ok = raw_len == len;
	if (ok)
		memcpy(out, raw, len);
	explicit_bzero(raw, raw_len);
	free(raw);
	return ok;
}

/* Columns col..col+3: salt, iterations, stored key, server key. */
static bool read_creds(struct sql_thread *t, const struct storage_req *r, struct sql_stmt *s, unsigned col,
                       enum scram_hash h, struct scram_credentials *c)
{
	const struct sql_driver_vfuncs *d = t->ss->drv;
	for (unsigned i = 0; i < 4; i++)
		if (d->column_is_null(s, col + i))
			return false;
	int64_t it = d->column_int64(s, col + 1);
	const char *stored = d->column_text(s, col + 2);
	const char *server = d->column_text(s, col + 3);
	c->hash = h;
	if (it <= 0 || it > UINT_MAX || stored == NULL || server == NULL ||
	    !decode_key(stored, c->stored_key, scram_hash_len(h)) ||
	    !decode_key(server, c->server_key, scram_hash_len(h))) {
		log_error("storage %s: %s@%s: the SCRAM-%s credentials in the database are malformed; "
		          "ignoring them",
		          t->ss->base.description, r->user, r->host, scram_hash_name(h));
		explicit_bzero(c, sizeof(*c));
		return false;
	}
	c->iterations = (unsigned)it;
	c->salt_b64 = sql_col_str(t, r->pool, s, col);
	return true;
}

/* The account r names into acc (strings in r's pool). */
static enum storage_result read_account(struct sql_thread *t, const struct storage_req *r,
                                        struct storage_account *acc)
{
	const struct sql_driver_vfuncs *d = t->ss->drv;
	struct sql_param p[] = { PTEXT(r->host), PTEXT(r->user) };
	enum sql_step st;
	memset(acc, 0, sizeof(*acc));
	struct sql_stmt *s = sql_q_start(t, sql_account_get, p, ARRAY_SIZE(p), &st);
	if (s == NULL)
		return sql_q_fail(t, r);
	if (st != SQL_STEP_ROW) {
		d->reset(s);
		return STORAGE_NOT_FOUND;
	}
	acc->created = d->column_int64(s, 0);
	acc->has_sha1 = read_creds(t, r, s, 1, SCRAM_SHA1, &acc->sha1);
	acc->has_sha256 = read_creds(t, r, s, 5, SCRAM_SHA256, &acc->sha256);
	acc->plain = sql_col_str(t, r->pool, s, 9);
	acc->has_sha512 = read_creds(t, r, s, 10, SCRAM_SHA512, &acc->sha512);
	d->reset(s);
	return STORAGE_OK;
}

static enum storage_result op_account_get(void *conn, struct account_get_job *r)
{
	return read_account(conn, &r->base, &r->acc);
}

/* Parameters for the credential columns of acc (13 of them, in USER_COLS
 * order) into p; the base64 keys are malloc'd into keys[6] (wiped and
 * freed by keys_free). */
static void creds_params(const struct storage_account *a, struct sql_param *p, char *keys[6])
{
	const struct scram_credentials *c[3] = { &a->sha1, &a->sha256, &a->sha512 };
	const bool has[3] = { a->has_sha1, a->has_sha256, a->has_sha512 };
	for (unsigned i = 0; i < 3; i++) {
		/* sha512 comes after the password column */
		struct sql_param *q = &p[i * 4 + (i == 2 ? 1 : 0)];
		if (!has[i] || c[i]->salt_b64 == NULL) {
			keys[i * 2] = keys[i * 2 + 1] = NULL;
			for (unsigned k = 0; k < 4; k++)
				q[k] = (struct sql_param)PTEXT(NULL);
			continue;
		}
		size_t len = scram_hash_len(c[i]->hash);
		keys[i * 2] = base64_encode(c[i]->stored_key, len);
		keys[i * 2 + 1] = base64_encode(c[i]->server_key, len);
		q[0] = (struct sql_param)PTEXT(c[i]->salt_b64);
		q[1] = (struct sql_param)PINT(c[i]->iterations);
		q[2] = (struct sql_param)PTEXT(keys[i * 2]);
		q[3] = (struct sql_param)PTEXT(keys[i * 2 + 1]);
	}
	p[8] = (struct sql_param)PTEXT(a->plain);
}

static void keys_free(char *keys[6])
{
	for (unsigned i = 0; i < 6; i++) {
		if (keys[i] != NULL) {
			explicit_bzero(keys[i], strlen(keys[i]));
			free(keys[i]);
		}
	}
}

/* r's insert failed on the account's key in a job run again (r->base.rerun):
 * STORAGE_OK when the account is the one r inserts, created by the first
 * try, whose answer was lost with the connection (the store runs a job
 * again on a new connection; MySQL and ODBC cannot ask whether the lost
 * statement was applied); STORAGE_EXISTS when it is another; the failure
 * (logged) when it cannot be read. */
static enum storage_result created_by_earlier_try(struct sql_thread *t, struct account_create_job *r)
{
	struct storage_account have;
	enum storage_result res = read_account(t, &r->base, &have);
	if (res == STORAGE_NOT_FOUND)
		return STORAGE_EXISTS;
	if (res != STORAGE_OK)
		return res;
	bool same = storage_account_is_same(&have, &r->acc);
	if (have.plain != NULL) /* in the job's pool until it is freed */
		explicit_bzero(have.plain, strlen(have.plain));
	explicit_bzero(&have, sizeof(have));
	return same ? sql_q_done_before(t, &r->base, "created") : STORAGE_EXISTS;
}

static enum storage_result op_account_create(void *conn, struct account_create_job *r)
{
	struct sql_thread *t = conn;
	struct sql_param p[16] = { PTEXT(r->base.host), PTEXT(r->base.user), PINT(r->acc.created) };
	char *keys[6];
	creds_params(&r->acc, &p[3], keys);
	int rc = sql_q_exec(t, sql_account_create, p, ARRAY_SIZE(p), NULL);
	keys_free(keys);
	if (rc >= 0)
		return STORAGE_OK;
	enum storage_result res = sql_q_fail(t, &r->base);
	return res == STORAGE_EXISTS && r->base.rerun ? created_by_earlier_try(t, r) : res;
}

static enum storage_result op_account_update(void *conn, struct account_update_job *r)
{
	struct sql_thread *t = conn;
	struct sql_param p[15];
	char *keys[6];
	creds_params(&r->acc, p, keys);
	p[13] = (struct sql_param)PTEXT(r->base.host);
	p[14] = (struct sql_param)PTEXT(r->base.user);
	uint64_t changes = 0;
	int rc = sql_q_exec(t, sql_account_update, p, ARRAY_SIZE(p), &changes);
	keys_free(keys);
	if (rc < 0)
		return sql_q_fail(t, &r->base);
	return changes > 0 ? STORAGE_OK : STORAGE_NOT_FOUND;
}

/* One hash's credentials, set only where the account has none complete
 * (a column NULL): a password set meanwhile keeps its keys. */
static const char *const sql_account_add[3] = {
	"UPDATE users SET sha1_salt = ?, sha1_iterations = ?, sha1_stored_key = ?, sha1_server_key = ? "
	"WHERE server_host = ? AND username = ? AND (sha1_salt IS NULL OR sha1_iterations IS NULL OR "
	"sha1_stored_key IS NULL OR sha1_server_key IS NULL)",
	"UPDATE users SET sha256_salt = ?, sha256_iterations = ?, sha256_stored_key = ?, "
	"sha256_server_key = ? WHERE server_host = ? AND username = ? AND (sha256_salt IS NULL OR "
	"sha256_iterations IS NULL OR sha256_stored_key IS NULL OR sha256_server_key IS NULL)",
	"UPDATE users SET sha512_salt = ?, sha512_iterations = ?, sha512_stored_key = ?, "
	"sha512_server_key = ? WHERE server_host = ? AND username = ? AND (sha512_salt IS NULL OR "
	"sha512_iterations IS NULL OR sha512_stored_key IS NULL OR sha512_server_key IS NULL)",
};
static const char sql_account_exists[] = "SELECT 1 FROM users WHERE server_host = ? AND username = ?";

static enum storage_result op_account_add_credentials(void *conn, struct account_update_job *r)
{
	struct sql_thread *t = conn;
	struct sql_param p[15];
	char *keys[6];
	creds_params(&r->acc, p, keys);
	/* the four parameters of each hash, as creds_params laid them out */
	const struct sql_param *hp[3] = { &p[0], &p[4], &p[9] };
	const bool has[3] = { r->acc.has_sha1, r->acc.has_sha256, r->acc.has_sha512 };
	enum storage_result res = STORAGE_OK;
	if (sql_q_begin(t, true) < 0) {
		res = sql_q_fail(t, &r->base);
		goto out;
	}
	struct sql_param key[] = { PTEXT(r->base.host), PTEXT(r->base.user) };
	enum sql_step st;
	struct sql_stmt *s = sql_q_start(t, sql_account_exists, key, ARRAY_SIZE(key), &st);
	if (s == NULL) {
		res = sql_q_abort(t, &r->base);
		goto out;
	}
	t->ss->drv->reset(s);
	if (st != SQL_STEP_ROW) {
		sql_q_commit(t);
		res = STORAGE_NOT_FOUND;
		goto out;
	}
	for (unsigned i = 0; i < 3; i++) {
		if (!has[i] || hp[i][0].text == NULL)
			continue;
		struct sql_param q[6] = { hp[i][0], hp[i][1], hp[i][2], hp[i][3], key[0], key[1] };
		if (sql_q_exec(t, sql_account_add[i], q, ARRAY_SIZE(q), NULL) < 0) {
			res = sql_q_abort(t, &r->base);
			goto out;
		}
	}
	if (sql_q_commit(t) < 0)
		res = sql_q_abort(t, &r->base);
out:
	keys_free(keys);
	return res;
}

static enum storage_result op_account_remove(void *conn, struct account_remove_job *r)
{
	struct sql_thread *t = conn;
	struct sql_param p[] = { PTEXT(r->base.host), PTEXT(r->base.user) };
	uint64_t changes = 0;
	if (sql_q_begin(t, true) < 0)
		return sql_q_fail(t, &r->base);
	char *bare = pool_printf(r->base.pool, "%s@%s", r->base.user, r->base.host);
	struct sql_param pm[] = { PTEXT(r->base.host), PTEXT(bare) };
	for (size_t i = 0; i < ARRAY_SIZE(sql_user_bare_deletes); i++)
		if (sql_q_exec(t, sql_user_bare_deletes[i], pm, ARRAY_SIZE(pm), NULL) < 0)
			return sql_q_abort(t, &r->base);
	for (size_t i = 0; i < ARRAY_SIZE(sql_user_deletes); i++)
		if (sql_q_exec(t, sql_user_deletes[i], p, ARRAY_SIZE(p), &changes) < 0)
			return sql_q_abort(t, &r->base);
	/* changes: of the last delete, the users row. */
	if (sql_q_commit(t) < 0)
		return sql_q_abort(t, &r->base);
	return changes > 0 ? STORAGE_OK : STORAGE_NOT_FOUND;
}


static enum storage_result op_account_list(void *conn, struct account_list_job *r)
{
	struct sql_thread *t = conn;
	struct sql_param p[] = { PTEXT(r->base.host), PTEXT(r->after != NULL ? r->after : ""),
		                 PTEXT(like_pattern(r->base.pool, r->match)), PINT(r->limit) };
	if (r->limit == 0)
		return sql_q_names(t, &r->base, sql_account_list, p, 1, &r->names);
	const struct sql_driver_vfuncs *d = t->ss->drv;
	const struct sql_dialect *dia = d->conn_dialect != NULL ? d->conn_dialect(t->conn) : d->dialect;
	bool mssql = dia != NULL && dia->name != NULL && strcmp(dia->name, "mssql") == 0;
	enum sql_step st;
	struct sql_stmt *s =
	        sql_q_start(t, mssql ? sql_account_page_mssql : sql_account_page, p, ARRAY_SIZE(p), &st);
	if (s == NULL)
		return sql_q_fail(t, &r->base);
	/* kept in the database's order: the last name is the next page's start
	 * under the database's collation, which need not be strcmp's */
	r->names.items = pool_alloc(r->base.pool, (size_t)r->limit * sizeof(char *));
	r->names.count = 0;
	while (st == SQL_STEP_ROW && r->names.count < r->limit) {
		char *name = sql_col_str(t, r->base.pool, s, 0);
		if (name != NULL)
			r->names.items[r->names.count++] = name;
		st = d->step(s);
	}
	enum storage_result res = st == SQL_STEP_ERROR ? sql_q_fail(t, &r->base) : STORAGE_OK;
	d->reset(s);
	return res;
}

static enum storage_result op_account_count(void *conn, struct account_count_job *r)
{
	struct sql_thread *t = conn;
	const struct sql_driver_vfuncs *d = t->ss->drv;
	struct sql_param p[] = { PTEXT(r->base.host) };
	enum sql_step st;
	struct sql_stmt *s = sql_q_start(t, sql_account_count, p, ARRAY_SIZE(p), &st);
	if (s == NULL)
		return sql_q_fail(t, &r->base);
	int64_t n = st == SQL_STEP_ROW ? d->column_int64(s, 0) : 0;
	r->count = n > 0 ? (uint64_t)n : 0;
	d->reset(s);
	return STORAGE_OK;
}

/* ---- FAST tokens (worker thread) ---------------------------------------------- */

#define FAST_COLS "ua_id, token_seed, mechanism, created_at, expires_at, last_count"

static const char sql_fast_delete_seed[] =
        "DELETE FROM fast_tokens WHERE server_host = ? AND username = ? AND token_seed = ?";
static const char sql_fast_delete_seed_ua[] =
        "DELETE FROM fast_tokens WHERE server_host = ? AND username = ? "
        "AND token_seed = ? AND ua_id = ?";
static const char sql_fast_insert[] =
        "INSERT INTO fast_tokens (server_host, username, " FAST_COLS ") VALUES (?, ?, ?, ?, ?, ?, ?, ?)";
static const char sql_fast_get[] =
        "SELECT " FAST_COLS " FROM fast_tokens WHERE server_host = ? AND username = ? AND token_seed = ?";
static const char sql_fast_delete_ua[] =
        "DELETE FROM fast_tokens WHERE server_host = ? AND username = ? AND ua_id = ?";
static const char sql_fast_delete_all[] = "DELETE FROM fast_tokens WHERE server_host = ? AND username = ?";
static const char sql_fast_list[] = "SELECT " FAST_COLS " FROM fast_tokens WHERE server_host = ? AND "
                                    "username = ? ORDER BY ua_id, created_at";

/* One row of FAST_COLS into t (strings in pool); false when malformed. */
static bool read_fast(struct sql_thread *t, struct storage_req *r, struct sql_stmt *s,
                      struct storage_fast_token *tok)
{
	const struct sql_driver_vfuncs *d = t->ss->drv;
	const char *seed = d->column_text(s, 1);
	memset(tok, 0, sizeof(*tok));
	if (seed == NULL || !decode_key(seed, tok->seed, sizeof(tok->seed))) {
		log_error("storage %s: %s@%s: a malformed FAST token seed in the database; ignoring it",
		          t->ss->base.description, r->user, r->host);
		return false;
	}
	tok->ua_id = sql_col_text(t, r->pool, s, 0);
	tok->mechanism = sql_col_text(t, r->pool, s, 2);
	tok->created = d->column_int64(s, 3);
	tok->expires = d->column_int64(s, 4);
	int64_t c = d->column_int64(s, 5);
	tok->count = c > 0 ? (uint64_t)c : 0;
	return true;
}

static enum storage_result op_fast_set(void *conn, struct fast_token_set_job *r)
{
	struct sql_thread *t = conn;
	char *seed = base64_encode(r->t.seed, sizeof(r->t.seed));
	struct sql_param p[] = { PTEXT(r->base.host), PTEXT(r->base.user),      PTEXT(r->t.ua_id),
		                 PTEXT(seed),         PTEXT(r->t.mechanism),    PINT(r->t.created),
		                 PINT(r->t.expires),  PINT((int64_t)r->t.count) };
	struct sql_param pd[] = { PTEXT(r->base.host), PTEXT(r->base.user), PTEXT(seed) };
	enum storage_result res = STORAGE_OK;
	if (sql_q_begin(t, true) < 0)
		res = sql_q_fail(t, &r->base);
	else if (sql_q_exec(t, sql_fast_delete_seed, pd, ARRAY_SIZE(pd), NULL) < 0 ||
	         sql_q_exec(t, sql_fast_insert, p, ARRAY_SIZE(p), NULL) < 0 || sql_q_commit(t) < 0)
		res = sql_q_abort(t, &r->base);
	free(seed);
	return res;
}

static enum storage_result op_fast_get(void *conn, struct fast_token_get_job *r)
{
	struct sql_thread *t = conn;
	const struct sql_driver_vfuncs *d = t->ss->drv;
	char *seed = base64_encode(r->seed, sizeof(r->seed));
	struct sql_param p[] = { PTEXT(r->base.host), PTEXT(r->base.user), PTEXT(seed) };
	enum sql_step st;
	struct sql_stmt *s = sql_q_start(t, sql_fast_get, p, ARRAY_SIZE(p), &st);
	free(seed);
	if (s == NULL)
		return sql_q_fail(t, &r->base);
	bool found = st == SQL_STEP_ROW && read_fast(t, &r->base, s, &r->t);
	d->reset(s);
	return found ? STORAGE_OK : STORAGE_NOT_FOUND;
}

static enum storage_result op_fast_delete(void *conn, struct fast_token_delete_job *r)
{
	struct sql_thread *t = conn;
	char *seed = r->by_seed ? base64_encode(r->seed, sizeof(r->seed)) : NULL;
	uint64_t changes = 0;
	int rc;
	if (r->by_seed && r->ua_id != NULL) {
		struct sql_param p[] = { PTEXT(r->base.host), PTEXT(r->base.user), PTEXT(seed),
			                 PTEXT(r->ua_id) };
		rc = sql_q_exec(t, sql_fast_delete_seed_ua, p, ARRAY_SIZE(p), &changes);
	} else if (r->by_seed) {
		struct sql_param p[] = { PTEXT(r->base.host), PTEXT(r->base.user), PTEXT(seed) };
		rc = sql_q_exec(t, sql_fast_delete_seed, p, ARRAY_SIZE(p), &changes);
	} else {
		struct sql_param p[] = { PTEXT(r->base.host), PTEXT(r->base.user), PTEXT(r->ua_id) };
		rc = r->ua_id != NULL ? sql_q_exec(t, sql_fast_delete_ua, p, 3, &changes)
		                      : sql_q_exec(t, sql_fast_delete_all, p, 2, &changes);
	}
	free(seed);
	if (rc < 0)
		return sql_q_fail(t, &r->base);
	return changes > 0 ? STORAGE_OK : STORAGE_NOT_FOUND;
}

static enum storage_result op_fast_list(void *conn, struct fast_token_list_job *r)
{
	struct sql_thread *t = conn;
	const struct sql_driver_vfuncs *d = t->ss->drv;
	struct sql_param p[] = { PTEXT(r->base.host), PTEXT(r->base.user) };
	enum sql_step st;
	size_t cap = 0;
	struct sql_stmt *s = sql_q_start(t, sql_fast_list, p, ARRAY_SIZE(p), &st);
	if (s == NULL)
		return sql_q_fail(t, &r->base);
	while (st == SQL_STEP_ROW) {
		r->tokens = sql_pool_grow(r->base.pool, r->tokens, r->ntokens, &cap, sizeof(*r->tokens));
		if (read_fast(t, &r->base, s, &r->tokens[r->ntokens]))
			r->ntokens++;
		st = d->step(s);
	}
	d->reset(s);
	if (st == SQL_STEP_ERROR)
		return sql_q_fail(t, &r->base);
	if (!r->with_account)
		return STORAGE_OK;
	/* the row storage_account_get reads (the token login's "does the
	 * account still exist") */
	s = sql_q_start(t, sql_account_exists, p, ARRAY_SIZE(p), &st);
	if (s == NULL)
		return sql_q_fail(t, &r->base);
	r->account_exists = st == SQL_STEP_ROW;
	d->reset(s);
	return st == SQL_STEP_ERROR ? sql_q_fail(t, &r->base) : STORAGE_OK;
}

static const char sql_fast_expire[] = "DELETE FROM fast_tokens WHERE server_host = ? AND expires_at <= ?";

static enum storage_result op_fast_expire(void *conn, struct fast_token_expire_job *r)
{
	struct sql_thread *t = conn;
	struct sql_param p[] = { PTEXT(r->base.host), PINT(r->before) };
	if (sql_q_exec(t, sql_fast_expire, p, ARRAY_SIZE(p), &r->count) < 0)
		return sql_q_fail(t, &r->base);
	return STORAGE_OK;
}

/* ---- SCRAM keys of users of other auth methods (worker thread) ---------------- */

#define CACHE_COLS                                                               \
	"sha1_salt, sha1_iterations, sha1_stored_key, sha1_server_key, "         \
	"sha256_salt, sha256_iterations, sha256_stored_key, sha256_server_key, " \
	"sha512_salt, sha512_iterations, sha512_stored_key, sha512_server_key"

static const char sql_cache_get[] =
        "SELECT expires_at, " CACHE_COLS " FROM scram_cache WHERE server_host = ? AND username = ?";
static const char sql_cache_insert[] =
        "INSERT INTO scram_cache (server_host, username, expires_at, " CACHE_COLS
        ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
static const char sql_cache_delete[] = "DELETE FROM scram_cache WHERE server_host = ? AND username = ?";
static const char sql_cache_expire[] = "DELETE FROM scram_cache WHERE server_host = ? AND expires_at <= ?";
static const char sql_cache_expire_user[] = "DELETE FROM scram_cache WHERE server_host = ? AND username = ? "
                                            "AND (expires_at <= ? OR expires_at > ?)";

static enum storage_result op_scram_cache_get(void *conn, struct account_get_job *r)
{
	struct sql_thread *t = conn;
	const struct sql_driver_vfuncs *d = t->ss->drv;
	struct sql_param p[] = { PTEXT(r->base.host), PTEXT(r->base.user) };
	enum sql_step st;
	memset(&r->acc, 0, sizeof(r->acc));
	struct sql_stmt *s = sql_q_start(t, sql_cache_get, p, ARRAY_SIZE(p), &st);
	if (s == NULL)
		return sql_q_fail(t, &r->base);
	if (st != SQL_STEP_ROW) {
		d->reset(s);
		return STORAGE_NOT_FOUND;
	}
	int64_t now = (int64_t)time(NULL);
	/* beyond now + ttl: written under a longer TTL than today's */
	int64_t latest = r->ttl > 0 ? now + r->ttl : INT64_MAX;
	int64_t expires = d->column_int64(s, 0);
	bool expired = expires <= now || expires > latest;
	if (!expired) {
		r->acc.has_sha1 = read_creds(t, &r->base, s, 1, SCRAM_SHA1, &r->acc.sha1);
		r->acc.has_sha256 = read_creds(t, &r->base, s, 5, SCRAM_SHA256, &r->acc.sha256);
		r->acc.has_sha512 = read_creds(t, &r->base, s, 9, SCRAM_SHA512, &r->acc.sha512);
	}
	d->reset(s);
	if (!expired)
		return STORAGE_OK;
	/* Expired: gone now rather than at the next sweep. */
	struct sql_param pe[] = { PTEXT(r->base.host), PTEXT(r->base.user), PINT(now), PINT(latest) };
	if (sql_q_exec(t, sql_cache_expire_user, pe, ARRAY_SIZE(pe), NULL) < 0)
		return sql_q_fail(t, &r->base);
	return STORAGE_NOT_FOUND;
}

static enum storage_result op_scram_cache_set(void *conn, struct account_update_job *r)
{
	struct sql_thread *t = conn;
	const struct scram_credentials *c[3] = { &r->acc.sha1, &r->acc.sha256, &r->acc.sha512 };
	struct sql_param p[15] = { PTEXT(r->base.host), PTEXT(r->base.user), PINT(r->expires) };
	char *keys[6] = { NULL };
	for (unsigned i = 0; i < 3; i++) {
		size_t len = scram_hash_len(c[i]->hash);
		keys[i * 2] = base64_encode(c[i]->stored_key, len);
		keys[i * 2 + 1] = base64_encode(c[i]->server_key, len);
		p[3 + i * 4] = (struct sql_param)PTEXT(c[i]->salt_b64);
		p[4 + i * 4] = (struct sql_param)PINT(c[i]->iterations);
		p[5 + i * 4] = (struct sql_param)PTEXT(keys[i * 2]);
		p[6 + i * 4] = (struct sql_param)PTEXT(keys[i * 2 + 1]);
	}
	struct sql_param pd[] = { PTEXT(r->base.host), PTEXT(r->base.user) };
	enum storage_result res = STORAGE_OK;
	if (sql_q_begin(t, true) < 0)
		res = sql_q_fail(t, &r->base);
	else if (sql_q_exec(t, sql_cache_delete, pd, ARRAY_SIZE(pd), NULL) < 0 ||
	         sql_q_exec(t, sql_cache_insert, p, ARRAY_SIZE(p), NULL) < 0 || sql_q_commit(t) < 0)
		res = sql_q_abort(t, &r->base);
	keys_free(keys);
	return res;
}

static enum storage_result op_scram_cache_delete(void *conn, struct account_remove_job *r)
{
	struct sql_thread *t = conn;
	struct sql_param p[] = { PTEXT(r->base.host), PTEXT(r->base.user) };
	uint64_t changes = 0;
	if (sql_q_exec(t, sql_cache_delete, p, ARRAY_SIZE(p), &changes) < 0)
		return sql_q_fail(t, &r->base);
	return changes > 0 ? STORAGE_OK : STORAGE_NOT_FOUND;
}

static enum storage_result op_scram_cache_expire(void *conn, struct fast_token_expire_job *r)
{
	struct sql_thread *t = conn;
	struct sql_param p[] = { PTEXT(r->base.host), PINT(r->before) };
	if (sql_q_exec(t, sql_cache_expire, p, ARRAY_SIZE(p), &r->count) < 0)
		return sql_q_fail(t, &r->base);
	return STORAGE_OK;
}

const struct account_store_vfuncs sql_account_vfuncs = {
	.get = op_account_get,
	.create = op_account_create,
	.update = op_account_update,
	.add_credentials = op_account_add_credentials,
	.remove = op_account_remove,
	.list = op_account_list,
	.count = op_account_count,
	.fast_set = op_fast_set,
	.fast_get = op_fast_get,
	.fast_delete = op_fast_delete,
	.fast_list = op_fast_list,
	.fast_expire = op_fast_expire,
	.scram_cache_get = op_scram_cache_get,
	.scram_cache_set = op_scram_cache_set,
	.scram_cache_delete = op_scram_cache_delete,
	.scram_cache_expire = op_scram_cache_expire,
};
