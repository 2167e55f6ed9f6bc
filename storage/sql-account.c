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

#define USER_COLS                                                        \
	"sha1_salt, sha1_iterations, sha1_stored_key, sha1_server_key, " \
	"sha256_salt, sha256_iterations, sha256_stored_key, sha256_server_key, password"

static const char sql_account_get[] =
        "SELECT created_at, " USER_COLS " FROM users WHERE server_host = ? AND username = ?";
static const char sql_account_create[] =
        "INSERT INTO users (server_host, username, created_at, " USER_COLS ") "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
static const char sql_account_update[] =
        "UPDATE users SET sha1_salt = ?, sha1_iterations = ?, sha1_stored_key = ?, sha1_server_key = ?, "
        "sha256_salt = ?, sha256_iterations = ?, sha256_stored_key = ?, sha256_server_key = ?, "
        "password = ? WHERE server_host = ? AND username = ?";
static const char sql_account_list[] = "SELECT username FROM users WHERE server_host = ?";
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
static bool read_creds(struct sql_thread *t, struct account_get_job *r, struct sql_stmt *s, unsigned col,
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
		          t->ss->base.description, r->base.user, r->base.host, scram_hash_name(h));
		explicit_bzero(c, sizeof(*c));
		return false;
	}
	c->iterations = (unsigned)it;
	c->salt_b64 = sql_col_str(t, r->base.pool, s, col);
	return true;
}

static enum storage_result op_account_get(void *conn, struct account_get_job *r)
{
	struct sql_thread *t = conn;
	const struct sql_driver_vfuncs *d = t->ss->drv;
	struct sql_param p[] = { PTEXT(r->base.host), PTEXT(r->base.user) };
	enum sql_step st;
	memset(&r->acc, 0, sizeof(r->acc));
	struct sql_stmt *s = sql_q_start(t, sql_account_get, p, ARRAY_SIZE(p), &st);
	if (s == NULL)
		return sql_q_fail(t, &r->base);
	if (st != SQL_STEP_ROW) {
		d->reset(s);
		return STORAGE_NOT_FOUND;
	}
	r->acc.created = d->column_int64(s, 0);
	r->acc.has_sha1 = read_creds(t, r, s, 1, SCRAM_SHA1, &r->acc.sha1);
	r->acc.has_sha256 = read_creds(t, r, s, 5, SCRAM_SHA256, &r->acc.sha256);
	r->acc.plain = sql_col_str(t, r->base.pool, s, 9);
	d->reset(s);
	return STORAGE_OK;
}

/* Parameters for the credential columns of acc (9 of them) into p; the
 * base64 keys are malloc'd into keys[4] (wiped and freed by keys_free). */
static void creds_params(const struct storage_account *a, struct sql_param *p, char *keys[4])
{
	const struct scram_credentials *c[2] = { &a->sha1, &a->sha256 };
	const bool has[2] = { a->has_sha1, a->has_sha256 };
	for (unsigned i = 0; i < 2; i++) {
		struct sql_param *q = &p[i * 4];
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

static void keys_free(char *keys[4])
{
	for (unsigned i = 0; i < 4; i++) {
		if (keys[i] != NULL) {
			explicit_bzero(keys[i], strlen(keys[i]));
			free(keys[i]);
		}
	}
}

static enum storage_result op_account_create(void *conn, struct account_create_job *r)
{
	struct sql_thread *t = conn;
	struct sql_param p[12] = { PTEXT(r->base.host), PTEXT(r->base.user), PINT(r->acc.created) };
	char *keys[4];
	creds_params(&r->acc, &p[3], keys);
	int rc = sql_q_exec(t, sql_account_create, p, ARRAY_SIZE(p), NULL);
	keys_free(keys);
	return rc < 0 ? sql_q_fail(t, &r->base) : STORAGE_OK;
}

static enum storage_result op_account_update(void *conn, struct account_update_job *r)
{
	struct sql_thread *t = conn;
	struct sql_param p[11];
	char *keys[4];
	creds_params(&r->acc, p, keys);
	p[9] = (struct sql_param)PTEXT(r->base.host);
	p[10] = (struct sql_param)PTEXT(r->base.user);
	uint64_t changes = 0;
	int rc = sql_q_exec(t, sql_account_update, p, ARRAY_SIZE(p), &changes);
	keys_free(keys);
	if (rc < 0)
		return sql_q_fail(t, &r->base);
	return changes > 0 ? STORAGE_OK : STORAGE_NOT_FOUND;
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
	struct sql_param p[] = { PTEXT(r->base.host) };
	return sql_q_names(t, &r->base, sql_account_list, p, ARRAY_SIZE(p), &r->names);
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

const struct account_store_vfuncs sql_account_vfuncs = {
	.get = op_account_get,
	.create = op_account_create,
	.update = op_account_update,
	.remove = op_account_remove,
	.list = op_account_list,
	.count = op_account_count,
};
