/*
 * The SQL implementation of the storage interface, over the driver
 * interface of sql.h (sqlite today; pgsql, mysql, odbc later with no change
 * here beyond dialect strings).
 *
 * Threads: storage_open runs on the loop thread before the loop starts (it
 * connects once to create a new embedded database from sql/<dialect>.sql
 * and to check the schema version).  Every operation then becomes a job of
 * this store's worker group: each worker thread owns one connection (made
 * on that thread, remade when the driver says it broke) and runs the job's
 * SQL; the answer comes back to the loop thread through the group.
 *
 * Invariants:
 * - a job carries copies of its inputs in its own pool and builds its
 *   results there; worker code reads only the job and the store's immutable
 *   settings (driver, configuration copy, description);
 * - jobs of one user (host + user) go to one thread: shard = hash of
 *   "user@host", so one user's operations keep their order;
 * - every change that touches several rows runs in one transaction;
 * - a temporary failure (busy, lost connection, timeout, queue full) is
 *   STORAGE_TEMPFAIL, never NOT_FOUND; a duplicate key on create is EXISTS.
 */
#include "storage/storage-private.h"
#include "storage/sql.h"
#include "lib/log.h"
#include "lib/worker.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#ifndef PARLEY_SQL_DIR
#define PARLEY_SQL_DIR "./sql"
#endif

static const struct sql_driver_vfuncs *const sql_drivers[] = {
	&sql_driver_sqlite,
#ifdef HAVE_BACKEND_PGSQL
	&sql_driver_pgsql,
#endif
#ifdef HAVE_BACKEND_MYSQL
	&sql_driver_mysql,
#endif
#ifdef HAVE_BACKEND_ODBC
	&sql_driver_odbc,
#endif
};
/* Every driver Parley has, whether this binary was built with it or not. */
static const char *const sql_driver_names[] = { "sqlite", "pgsql", "mysql", "odbc" };

/* A connection that sat idle this long is checked (driver's ping) before
 * it is used again: a server restart or a firewall that dropped the idle
 * TCP connection is found before a user's request runs on it. */
#define SQL_IDLE_CHECK 30.0
/* Reconnection attempts after a failure: the first at once, then after
 * 1 s, 2 s, 4 s, ... up to this. */
#define SQL_BACKOFF_MAX 30.0

struct sql_storage {
	struct storage base;
	const struct sql_driver_vfuncs *drv;
	struct storage_config cfg;      /* copy; immutable after open */
	enum sql_upsert upsert;         /* the dialect's, or a test's choice */
	struct worker_group *workers;
	double last_full_log;           /* loop: rate limit of "queue full" */

	/* The database's state as the workers see it (guarded by lock): while
	 * it is down, jobs of workers without a connection fail at once, and
	 * one worker tries to connect when retry_at has passed. */
	pthread_mutex_t lock;
	bool down;                      /* the last connection attempt failed */
	bool connecting;                /* a worker is trying to connect now */
	double down_since;              /* monotonic seconds */
	double retry_at;
	double backoff;                 /* wait after the next failure */
	double last_outage_log;         /* rate limit of "failing fast" lines */
	unsigned suppressed;            /* lines not written since */
	unsigned nconns;                /* connections open now */
	char *last_error;               /* of the last failed attempt (malloc'd) */
};

/* One per worker thread. */
struct sql_thread {
	struct sql_storage *ss;
	unsigned index;
	struct sql_conn *conn;
	double last_used;               /* monotonic seconds */
};

struct sql_req {
	struct storage_req base;        /* first */
	struct worker_job *wj;
	struct pool *pool;              /* inputs and results */
	const char *host, *user, *jid;
	struct storage_account acc;     /* create/update input; get result */
	struct roster_item item;        /* roster_set input */
	const char *from, *stanza;      /* offline_store input */
	unsigned max;                   /* offline_store: quota (0: none) */
	int64_t seq;                    /* offline_delete_upto input */
	const char *text;               /* vcard_set: the vCard; last_set: the status */
	const char *ns;                 /* private_get input */
	struct private_item *pitems;    /* private_set input */
	size_t npitems;
	int64_t when;                   /* last_set input */
	const char **jids;              /* blocklist_add/remove input */
	size_t njids;
	const char *lname;              /* privacy set/remove/default input (default: NULL ok) */
	struct privacy_item *prv_in;    /* privacy_set_list input */
	size_t nprv_in;
	struct srg_group grp;           /* srg_create input (pool strings) */
	const char *name;               /* srg_get/delete/member ops: the group (NULL: all) */
	const char *member;             /* srg member ops: the member; user_groups: the JID */
	struct vcard_term *terms;       /* vcard_search input (values folded, pool) */
	size_t nterms;
	bool listed_only;
	unsigned limit;
	/* results */
	enum storage_result res;
	struct strlist names;
	uint64_t count;
	struct roster_item *items;
	size_t nitems;
	uint64_t version;
	struct offline_message *msgs;
	size_t nmsgs;
	char *out_text;                 /* vcard_get, private_get */
	struct last_activity last;      /* last_get */
	struct privacy_list *plists;    /* privacy_get */
	size_t nplists;
	char *default_name;
	struct srg_group *groups;       /* srg_get (pool) */
	size_t ngroups;
	struct vcard_entry *entries;    /* vcard_search (pool) */
	size_t nentries;
	bool more;
};

const struct sql_driver_vfuncs *sql_driver_find(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(sql_drivers); i++)
		if (strcmp(sql_drivers[i]->name, name) == 0)
			return sql_drivers[i];
	return NULL;
}

bool sql_driver_known(const char *name, bool *built_r)
{
	*built_r = sql_driver_find(name) != NULL;
	for (size_t i = 0; i < ARRAY_SIZE(sql_driver_names); i++)
		if (strcmp(sql_driver_names[i], name) == 0)
			return true;
	return *built_r;
}

static double mono_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- statements (worker thread) --------------------------------------------- */

enum param_type { PT_NULL, PT_TEXT, PT_INT };
struct sql_param {
	enum param_type type;
	const char *text;
	int64_t num;
};
#define PTEXT(s) { (s) != NULL ? PT_TEXT : PT_NULL, (s), 0 }
#define PINT(n) { PT_INT, NULL, (int64_t)(n) }

/* The statement that last failed, for the log line. */
static _Thread_local const char *failed_sql;

/* Prepare, bind and take the first step.  NULL on error (the connection
 * holds the error). */
static struct sql_stmt *q_start(struct sql_thread *t, const char *sql, const struct sql_param *p,
                                size_t n, enum sql_step *step_r)
{
	const struct sql_driver_vfuncs *d = t->ss->drv;
	failed_sql = sql;
	struct sql_stmt *s = d->prepare(t->conn, sql);
	if (s == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		int rc;
		unsigned idx = (unsigned)i + 1;
		switch (p[i].type) {
		case PT_TEXT: rc = d->bind_text(s, idx, p[i].text); break;
		case PT_INT: rc = d->bind_int64(s, idx, p[i].num); break;
		default: rc = d->bind_null(s, idx); break;
		}
		if (rc < 0) {
			d->reset(s);
			return NULL;
		}
	}
	*step_r = d->step(s);
	if (*step_r == SQL_STEP_ERROR) {
		d->reset(s);
		return NULL;
	}
	return s;
}

/* Run a statement that returns no rows.  0 or -1; *changes_r (optional)
 * gets the number of rows changed. */
static int q_exec(struct sql_thread *t, const char *sql, const struct sql_param *p, size_t n,
                  uint64_t *changes_r)
{
	const struct sql_driver_vfuncs *d = t->ss->drv;
	enum sql_step st;
	struct sql_stmt *s = q_start(t, sql, p, n, &st);
	if (s == NULL)
		return -1;
	while (st == SQL_STEP_ROW)
		st = d->step(s);
	if (st == SQL_STEP_ERROR) {
		d->reset(s);
		return -1;
	}
	if (changes_r != NULL)
		*changes_r = d->changes(s);
	d->reset(s);
	return 0;
}

static int q_begin(struct sql_thread *t, bool write)
{
	failed_sql = write ? "BEGIN (write)" : "BEGIN";
	return t->ss->drv->begin(t->conn, write);
}

static int q_commit(struct sql_thread *t)
{
	failed_sql = "COMMIT";
	return t->ss->drv->commit(t->conn);
}

/* The result for the error on the connection; logged with context. */
static enum storage_result q_fail(struct sql_thread *t, struct sql_req *r)
{
	const struct sql_driver_vfuncs *d = t->ss->drv;
	const char *who = r->user != NULL ? r->user : "";
	switch (d->error_class(t->conn)) {
	case SQL_ERR_CONSTRAINT:
		return STORAGE_EXISTS;
	case SQL_ERR_TEMPORARY:
	case SQL_ERR_NONE:
		log_warning("storage %s: %s %s@%s: temporary failure: %s [%s]", t->ss->base.description,
		            storage_op_name(r->base.op), who, r->host, d->error_message(t->conn),
		            failed_sql != NULL ? failed_sql : "");
		return STORAGE_TEMPFAIL;
	case SQL_ERR_PERMANENT:
	default:
		log_error("storage %s: %s %s@%s: %s [%s]", t->ss->base.description,
		          storage_op_name(r->base.op), who, r->host, d->error_message(t->conn),
		          failed_sql != NULL ? failed_sql : "");
		return STORAGE_ERROR;
	}
}

/* Roll back after a failure; the failure's class decides the result. */
static enum storage_result q_abort(struct sql_thread *t, struct sql_req *r)
{
	enum storage_result res = q_fail(t, r);
	t->ss->drv->rollback(t->conn);
	return res;
}

static char *col_str(struct sql_thread *t, struct sql_req *r, struct sql_stmt *s, unsigned col)
{
	const struct sql_driver_vfuncs *d = t->ss->drv;
	if (d->column_is_null(s, col))
		return NULL;
	const char *v = d->column_text(s, col);
	return v != NULL ? pool_strdup(r->pool, v) : NULL;
}

/* Grow a pool array of n elements of size sz to hold n + 1. */
static void *pool_grow(struct pool *p, void *arr, size_t n, size_t *cap, size_t sz)
{
	if (n < *cap)
		return arr;
	size_t ncap = *cap == 0 ? 8 : *cap * 2;
	void *na = pool_alloc(p, ncap * sz);
	if (n > 0)
		memcpy(na, arr, n * sz);
	*cap = ncap;
	return na;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_item(const void *a, const void *b)
{
	return strcmp(((const struct roster_item *)a)->jid, ((const struct roster_item *)b)->jid);
}

/* ---- accounts (worker thread) -------------------------------------------------- */

#define USER_COLS \
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
/* The user's memberships in shared roster groups: parameters host, bare JID. */
static const char sql_user_srg_delete[] =
	"DELETE FROM sr_members WHERE server_host = ? AND member = ?";

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
static bool read_creds(struct sql_thread *t, struct sql_req *r, struct sql_stmt *s, unsigned col,
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
		          "ignoring them", t->ss->base.description, r->user, r->host, scram_hash_name(h));
		explicit_bzero(c, sizeof(*c));
		return false;
	}
	c->iterations = (unsigned)it;
	c->salt_b64 = col_str(t, r, s, col);
	return true;
}

static enum storage_result op_account_get(struct sql_thread *t, struct sql_req *r)
{
	const struct sql_driver_vfuncs *d = t->ss->drv;
	struct sql_param p[] = { PTEXT(r->host), PTEXT(r->user) };
	enum sql_step st;
	memset(&r->acc, 0, sizeof(r->acc));
	struct sql_stmt *s = q_start(t, sql_account_get, p, ARRAY_SIZE(p), &st);
	if (s == NULL)
		return q_fail(t, r);
	if (st != SQL_STEP_ROW) {
		d->reset(s);
		return STORAGE_NOT_FOUND;
	}
	r->acc.created = d->column_int64(s, 0);
	r->acc.has_sha1 = read_creds(t, r, s, 1, SCRAM_SHA1, &r->acc.sha1);
	r->acc.has_sha256 = read_creds(t, r, s, 5, SCRAM_SHA256, &r->acc.sha256);
	r->acc.plain = col_str(t, r, s, 9);
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

static enum storage_result op_account_create(struct sql_thread *t, struct sql_req *r)
{
	struct sql_param p[12] = { PTEXT(r->host), PTEXT(r->user), PINT(r->acc.created) };
	char *keys[4];
	creds_params(&r->acc, &p[3], keys);
	int rc = q_exec(t, sql_account_create, p, ARRAY_SIZE(p), NULL);
	keys_free(keys);
	return rc < 0 ? q_fail(t, r) : STORAGE_OK;
}

static enum storage_result op_account_update(struct sql_thread *t, struct sql_req *r)
{
	struct sql_param p[11];
	char *keys[4];
	creds_params(&r->acc, p, keys);
	p[9] = (struct sql_param)PTEXT(r->host);
	p[10] = (struct sql_param)PTEXT(r->user);
	uint64_t changes = 0;
	int rc = q_exec(t, sql_account_update, p, ARRAY_SIZE(p), &changes);
	keys_free(keys);
	if (rc < 0)
		return q_fail(t, r);
	return changes > 0 ? STORAGE_OK : STORAGE_NOT_FOUND;
}

static enum storage_result op_account_remove(struct sql_thread *t, struct sql_req *r)
{
	struct sql_param p[] = { PTEXT(r->host), PTEXT(r->user) };
	uint64_t changes = 0;
	if (q_begin(t, true) < 0)
		return q_fail(t, r);
	char *bare = pool_printf(r->pool, "%s@%s", r->user, r->host);
	struct sql_param pm[] = { PTEXT(r->host), PTEXT(bare) };
	if (q_exec(t, sql_user_srg_delete, pm, ARRAY_SIZE(pm), NULL) < 0)
		return q_abort(t, r);
	for (size_t i = 0; i < ARRAY_SIZE(sql_user_deletes); i++)
		if (q_exec(t, sql_user_deletes[i], p, ARRAY_SIZE(p), &changes) < 0)
			return q_abort(t, r);
	/* changes: of the last delete, the users row. */
	if (q_commit(t) < 0)
		return q_abort(t, r);
	return changes > 0 ? STORAGE_OK : STORAGE_NOT_FOUND;
}

/* Run sql and collect its first column (text, NULLs skipped) into
 * r->names, sorted here, byte-wise: the database's collation may differ. */
static enum storage_result q_names(struct sql_thread *t, struct sql_req *r, const char *sql,
                                   const struct sql_param *p, size_t np)
{
	const struct sql_driver_vfuncs *d = t->ss->drv;
	enum sql_step st;
	size_t cap = 0;
	r->names.items = NULL;
	r->names.count = 0;
	struct sql_stmt *s = q_start(t, sql, p, np, &st);
	if (s == NULL)
		return q_fail(t, r);
	while (st == SQL_STEP_ROW) {
		char *name = col_str(t, r, s, 0);
		if (name != NULL) {
			r->names.items = pool_grow(r->pool, r->names.items, r->names.count, &cap,
			                           sizeof(char *));
			r->names.items[r->names.count++] = name;
		}
		st = d->step(s);
	}
	if (st == SQL_STEP_ERROR) {
		enum storage_result res = q_fail(t, r);
		d->reset(s);
		return res;
	}
	d->reset(s);
	if (r->names.count > 1)
		qsort(r->names.items, r->names.count, sizeof(char *), cmp_str);
	return STORAGE_OK;
}

static enum storage_result op_account_list(struct sql_thread *t, struct sql_req *r)
{
	struct sql_param p[] = { PTEXT(r->host) };
	return q_names(t, r, sql_account_list, p, ARRAY_SIZE(p));
}

static enum storage_result op_account_count(struct sql_thread *t, struct sql_req *r)
{
	const struct sql_driver_vfuncs *d = t->ss->drv;
	struct sql_param p[] = { PTEXT(r->host) };
	enum sql_step st;
	struct sql_stmt *s = q_start(t, sql_account_count, p, ARRAY_SIZE(p), &st);
	if (s == NULL)
		return q_fail(t, r);
	int64_t n = st == SQL_STEP_ROW ? d->column_int64(s, 0) : 0;
	r->count = n > 0 ? (uint64_t)n : 0;
	d->reset(s);
	return STORAGE_OK;
}

/* ---- roster (worker thread) -------------------------------------------------- */

static const char sql_roster_items[] =
	"SELECT jid, name, subscription, ask_out, ask_in, approved FROM roster_items "
	"WHERE server_host = ? AND username = ?";
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
 * ask_out, ask_in, approved. */
#define ITEM_INSERT \
	"INSERT INTO roster_items (server_host, username, jid, name, subscription, ask_out, ask_in, " \
	"approved) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
static const char sql_item_upsert_on_conflict[] =
	ITEM_INSERT " ON CONFLICT (server_host, username, jid) DO UPDATE SET name = excluded.name, "
	"subscription = excluded.subscription, ask_out = excluded.ask_out, ask_in = excluded.ask_in, "
	"approved = excluded.approved";
static const char sql_item_upsert_on_duplicate[] =
	ITEM_INSERT " ON DUPLICATE KEY UPDATE name = VALUES(name), subscription = VALUES(subscription), "
	"ask_out = VALUES(ask_out), ask_in = VALUES(ask_in), approved = VALUES(approved)";
static const char sql_item_insert[] = ITEM_INSERT;
/* Parameters name, subscription, ask_out, ask_in, approved, host, user, jid. */
static const char sql_item_update[] =
	"UPDATE roster_items SET name = ?, subscription = ?, ask_out = ?, ask_in = ?, approved = ? "
	"WHERE server_host = ? AND username = ? AND jid = ?";

/* Version increment: parameters host, user. */
#define VERSION_INSERT "INSERT INTO roster_version (server_host, username, version) VALUES (?, ?, 1)"
static const char sql_version_upsert_on_conflict[] =
	VERSION_INSERT " ON CONFLICT (server_host, username) DO UPDATE SET version = roster_version.version + 1";
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

static int version_bump(struct sql_thread *t, struct sql_req *r)
{
	struct sql_param p[] = { PTEXT(r->host), PTEXT(r->user) };
	switch (t->ss->upsert) {
	case SQL_UPSERT_ON_CONFLICT:
		return q_exec(t, sql_version_upsert_on_conflict, p, ARRAY_SIZE(p), NULL);
	case SQL_UPSERT_ON_DUPLICATE_KEY:
		return q_exec(t, sql_version_upsert_on_duplicate, p, ARRAY_SIZE(p), NULL);
	case SQL_UPSERT_NONE:
	default: {
		/* Inside the caller's transaction; one user's jobs run on one
		 * thread, so nothing of ours races between the two. */
		uint64_t changes = 0;
		if (q_exec(t, sql_version_update, p, ARRAY_SIZE(p), &changes) < 0)
			return -1;
		return changes > 0 ? 0 : q_exec(t, sql_version_insert, p, ARRAY_SIZE(p), NULL);
	}
	}
}

static int item_upsert(struct sql_thread *t, struct sql_req *r)
{
	const struct roster_item *it = &r->item;
	char sub[2] = { sub_char(it->subscription), '\0' };
	struct sql_param p[] = {
		PTEXT(r->host), PTEXT(r->user), PTEXT(it->jid), PTEXT(it->name), PTEXT(sub),
		PINT(it->ask_out), PINT(it->ask_in), PINT(it->approved),
	};
	switch (t->ss->upsert) {
	case SQL_UPSERT_ON_CONFLICT:
		return q_exec(t, sql_item_upsert_on_conflict, p, ARRAY_SIZE(p), NULL);
	case SQL_UPSERT_ON_DUPLICATE_KEY:
		return q_exec(t, sql_item_upsert_on_duplicate, p, ARRAY_SIZE(p), NULL);
	case SQL_UPSERT_NONE:
	default: {
		struct sql_param u[] = {
			PTEXT(it->name), PTEXT(sub), PINT(it->ask_out), PINT(it->ask_in), PINT(it->approved),
			PTEXT(r->host), PTEXT(r->user), PTEXT(it->jid),
		};
		uint64_t changes = 0;
		if (q_exec(t, sql_item_update, u, ARRAY_SIZE(u), &changes) < 0)
			return -1;
		return changes > 0 ? 0 : q_exec(t, sql_item_insert, p, ARRAY_SIZE(p), NULL);
	}
	}
}

static enum storage_result op_roster_get(struct sql_thread *t, struct sql_req *r)
{
	const struct sql_driver_vfuncs *d = t->ss->drv;
	struct sql_param p[] = { PTEXT(r->host), PTEXT(r->user) };
	enum sql_step st;
	size_t cap = 0;
	r->items = NULL;
	r->nitems = 0;
	r->version = 0;

	/* One read transaction: items, groups and version agree. */
	if (q_begin(t, false) < 0)
		return q_fail(t, r);
	struct sql_stmt *s = q_start(t, sql_roster_items, p, ARRAY_SIZE(p), &st);
	if (s == NULL)
		return q_abort(t, r);
	while (st == SQL_STEP_ROW) {
		char *jid = col_str(t, r, s, 0);
		if (jid != NULL) {
			r->items = pool_grow(r->pool, r->items, r->nitems, &cap, sizeof(*r->items));
			struct roster_item *it = &r->items[r->nitems++];
			memset(it, 0, sizeof(*it));
			it->jid = jid;
			it->name = col_str(t, r, s, 1);
			it->subscription = sub_from_char(d->column_text(s, 2));
			it->ask_out = d->column_int64(s, 3) != 0;
			it->ask_in = d->column_int64(s, 4) != 0;
			it->approved = d->column_int64(s, 5) != 0;
		}
		st = d->step(s);
	}
	if (st == SQL_STEP_ERROR) {
		d->reset(s);
		return q_abort(t, r);
	}
	d->reset(s);
	/* Sorted here, byte-wise: the database's collation may differ. */
	if (r->nitems > 1)
		qsort(r->items, r->nitems, sizeof(*r->items), cmp_item);

	size_t *gcap = r->nitems > 0 ? pool_alloc(r->pool, r->nitems * sizeof(size_t)) : NULL;
	s = q_start(t, sql_roster_groups, p, ARRAY_SIZE(p), &st);
	if (s == NULL)
		return q_abort(t, r);
	while (st == SQL_STEP_ROW) {
		const char *jid = d->column_text(s, 0);
		struct roster_item key = { .jid = (char *)jid };
		struct roster_item *it = jid != NULL && r->nitems > 0
		                         ? bsearch(&key, r->items, r->nitems, sizeof(*r->items), cmp_item)
		                         : NULL;
		char *grp = col_str(t, r, s, 1);
		if (it != NULL && grp != NULL) {
			size_t k = (size_t)(it - r->items);
			it->groups.items = pool_grow(r->pool, it->groups.items, it->groups.count, &gcap[k],
			                             sizeof(char *));
			it->groups.items[it->groups.count++] = grp;
		}
		st = d->step(s);
	}
	if (st == SQL_STEP_ERROR) {
		d->reset(s);
		return q_abort(t, r);
	}
	d->reset(s);
	for (size_t i = 0; i < r->nitems; i++)
		if (r->items[i].groups.count > 1)
			qsort(r->items[i].groups.items, r->items[i].groups.count, sizeof(char *), cmp_str);

	s = q_start(t, sql_roster_version, p, ARRAY_SIZE(p), &st);
	if (s == NULL)
		return q_abort(t, r);
	if (st == SQL_STEP_ROW) {
		int64_t v = d->column_int64(s, 0);
		r->version = v > 0 ? (uint64_t)v : 0;
	}
	d->reset(s);
	if (q_commit(t) < 0)
		return q_abort(t, r);
	return STORAGE_OK;
}

static enum storage_result op_roster_set(struct sql_thread *t, struct sql_req *r)
{
	const struct roster_item *it = &r->item;
	if (it->subscription == SUB_REMOVE) {
		log_error("storage %s: roster_set %s@%s: subscription 'remove' is not a state to store",
		          t->ss->base.description, r->user, r->host);
		return STORAGE_ERROR;
	}
	struct sql_param pj[] = { PTEXT(r->host), PTEXT(r->user), PTEXT(it->jid) };
	if (q_begin(t, true) < 0)
		return q_fail(t, r);
	if (item_upsert(t, r) < 0 || q_exec(t, sql_item_groups_delete, pj, ARRAY_SIZE(pj), NULL) < 0)
		return q_abort(t, r);
	for (size_t i = 0; i < it->groups.count; i++) {
		bool dup = false;
		for (size_t k = 0; k < i && !dup; k++)
			dup = strcmp(it->groups.items[k], it->groups.items[i]) == 0;
		if (dup)
			continue;
		struct sql_param pg[] = { PTEXT(r->host), PTEXT(r->user), PTEXT(it->jid),
		                          PTEXT(it->groups.items[i]) };
		if (q_exec(t, sql_item_group_insert, pg, ARRAY_SIZE(pg), NULL) < 0)
			return q_abort(t, r);
	}
	if (version_bump(t, r) < 0 || q_commit(t) < 0)
		return q_abort(t, r);
	return STORAGE_OK;
}

static enum storage_result op_roster_remove(struct sql_thread *t, struct sql_req *r)
{
	const struct sql_driver_vfuncs *d = t->ss->drv;
	struct sql_param pj[] = { PTEXT(r->host), PTEXT(r->user), PTEXT(r->jid) };
	uint64_t changes = 0;
	if (q_begin(t, true) < 0)
		return q_fail(t, r);
	if (q_exec(t, sql_item_groups_delete, pj, ARRAY_SIZE(pj), NULL) < 0 ||
	    q_exec(t, sql_item_delete, pj, ARRAY_SIZE(pj), &changes) < 0)
		return q_abort(t, r);
	if (changes == 0) {
		d->rollback(t->conn);
		return STORAGE_NOT_FOUND;
	}
	if (version_bump(t, r) < 0 || q_commit(t) < 0)
		return q_abort(t, r);
	return STORAGE_OK;
}

/* ---- offline messages (worker thread) ------------------------------------------ */

static const char sql_user_exists[] =
	"SELECT 1 FROM users WHERE server_host = ? AND username = ?";
static const char sql_offline_count[] =
	"SELECT COUNT(*) FROM offline_messages WHERE server_host = ? AND username = ?";
static const char sql_offline_insert[] =
	"INSERT INTO offline_messages (server_host, username, created_at, from_jid, stanza) "
	"VALUES (?, ?, ?, ?, ?)";
static const char sql_offline_get[] =
	"SELECT seq, created_at, stanza FROM offline_messages WHERE server_host = ? AND username = ? "
	"ORDER BY seq";
static const char sql_offline_delete[] =
	"DELETE FROM offline_messages WHERE server_host = ? AND username = ? AND seq <= ?";

/* Run a one-row, one-integer query: 1 and *v_r when there is a row, 0 when
 * there is none, -1 on error. */
static int q_int(struct sql_thread *t, const char *sql, const struct sql_param *p, size_t n,
                 int64_t *v_r)
{
	const struct sql_driver_vfuncs *d = t->ss->drv;
	enum sql_step st;
	struct sql_stmt *s = q_start(t, sql, p, n, &st);
	if (s == NULL)
		return -1;
	int found = st == SQL_STEP_ROW;
	if (found)
		*v_r = d->column_int64(s, 0);
	d->reset(s);
	return found;
}

/* Account check, quota check and insert in one write transaction: two
 * stores racing for the last free place cannot both take it. */
static enum storage_result op_offline_store(struct sql_thread *t, struct sql_req *r)
{
	struct sql_param p[] = { PTEXT(r->host), PTEXT(r->user) };
	int64_t v = 0;
	if (q_begin(t, true) < 0)
		return q_fail(t, r);
	int found = q_int(t, sql_user_exists, p, ARRAY_SIZE(p), &v);
	if (found < 0)
		return q_abort(t, r);
	if (found == 0) {
		t->ss->drv->rollback(t->conn);
		return STORAGE_NOT_FOUND;
	}
	if (r->max > 0) {
		if (q_int(t, sql_offline_count, p, ARRAY_SIZE(p), &v) < 0)
			return q_abort(t, r);
		if (v >= (int64_t)r->max) {
			t->ss->drv->rollback(t->conn);
			return STORAGE_FULL;
		}
	}
	struct sql_param pi[] = { PTEXT(r->host), PTEXT(r->user), PINT(time(NULL)), PTEXT(r->from),
	                          PTEXT(r->stanza) };
	if (q_exec(t, sql_offline_insert, pi, ARRAY_SIZE(pi), NULL) < 0 || q_commit(t) < 0)
		return q_abort(t, r);
	return STORAGE_OK;
}

static enum storage_result op_offline_get(struct sql_thread *t, struct sql_req *r)
{
	const struct sql_driver_vfuncs *d = t->ss->drv;
	struct sql_param p[] = { PTEXT(r->host), PTEXT(r->user) };
	enum sql_step st;
	size_t cap = 0;
	r->msgs = NULL;
	r->nmsgs = 0;
	struct sql_stmt *s = q_start(t, sql_offline_get, p, ARRAY_SIZE(p), &st);
	if (s == NULL)
		return q_fail(t, r);
	while (st == SQL_STEP_ROW) {
		char *stanza = col_str(t, r, s, 2);
		if (stanza != NULL) {
			r->msgs = pool_grow(r->pool, r->msgs, r->nmsgs, &cap, sizeof(*r->msgs));
			struct offline_message *m = &r->msgs[r->nmsgs++];
			m->seq = d->column_int64(s, 0);
			m->created = d->column_int64(s, 1);
			m->stanza = stanza;
		}
		st = d->step(s);
	}
	if (st == SQL_STEP_ERROR) {
		enum storage_result res = q_fail(t, r);
		d->reset(s);
		return res;
	}
	d->reset(s);
	return STORAGE_OK;
}

static enum storage_result op_offline_delete(struct sql_thread *t, struct sql_req *r)
{
	struct sql_param p[] = { PTEXT(r->host), PTEXT(r->user), PINT(r->seq) };
	return q_exec(t, sql_offline_delete, p, ARRAY_SIZE(p), NULL) < 0 ? q_fail(t, r) : STORAGE_OK;
}

static enum storage_result op_offline_count(struct sql_thread *t, struct sql_req *r)
{
	struct sql_param p[] = { PTEXT(r->host), PTEXT(r->user) };
	int64_t n = 0;
	if (q_int(t, sql_offline_count, p, ARRAY_SIZE(p), &n) < 0)
		return q_fail(t, r);
	r->count = n > 0 ? (uint64_t)n : 0;
	return STORAGE_OK;
}

/* ---- vCards, private storage, last activity (worker thread) --------------------- */

/* The three ways of writing "insert or replace one row" for a table whose
 * key is the first nkey columns of the insert. */
struct upsert_sql {
	const char *on_conflict;      /* INSERT ... ON CONFLICT (key) DO UPDATE */
	const char *on_duplicate;     /* INSERT ... ON DUPLICATE KEY UPDATE */
	const char *insert;           /* plain INSERT (same parameters) */
	const char *update;           /* UPDATE: value columns, then the key columns */
};

/* Insert or replace: p holds the insert's parameters, the key's nkey first. */
static int q_upsert(struct sql_thread *t, const struct upsert_sql *u, const struct sql_param *p,
                    size_t n, size_t nkey)
{
	switch (t->ss->upsert) {
	case SQL_UPSERT_ON_CONFLICT:
		return q_exec(t, u->on_conflict, p, n, NULL);
	case SQL_UPSERT_ON_DUPLICATE_KEY:
		return q_exec(t, u->on_duplicate, p, n, NULL);
	case SQL_UPSERT_NONE:
	default: {
		/* UPDATE takes the values first, then the key. */
		struct sql_param up[8];
		assert(n <= ARRAY_SIZE(up) && nkey < n);
		size_t k = 0;
		for (size_t i = nkey; i < n; i++)
			up[k++] = p[i];
		for (size_t i = 0; i < nkey; i++)
			up[k++] = p[i];
		uint64_t changes = 0;
		if (q_exec(t, u->update, up, n, &changes) < 0)
			return -1;
		return changes > 0 ? 0 : q_exec(t, u->insert, p, n, NULL);
	}
	}
}

/* Run a one-row, one-text-column query into *out_r (pool copy): 1 when
 * there is a row, 0 when there is none, -1 on error. */
static int q_text(struct sql_thread *t, struct sql_req *r, const char *sql,
                  const struct sql_param *p, size_t n, char **out_r)
{
	const struct sql_driver_vfuncs *d = t->ss->drv;
	enum sql_step st;
	struct sql_stmt *s = q_start(t, sql, p, n, &st);
	if (s == NULL)
		return -1;
	int found = st == SQL_STEP_ROW;
	if (found) {
		*out_r = col_str(t, r, s, 0);
		if (*out_r == NULL)
			*out_r = pool_strdup(r->pool, "");
	}
	d->reset(s);
	return found;
}

#define VCARD_INSERT "INSERT INTO vcards (server_host, username, vcard) VALUES (?, ?, ?)"
static const struct upsert_sql sql_vcard_upsert = {
	VCARD_INSERT " ON CONFLICT (server_host, username) DO UPDATE SET vcard = excluded.vcard",
	VCARD_INSERT " ON DUPLICATE KEY UPDATE vcard = VALUES(vcard)",
	VCARD_INSERT,
	"UPDATE vcards SET vcard = ? WHERE server_host = ? AND username = ?",
};
static const char sql_vcard_get[] =
	"SELECT vcard FROM vcards WHERE server_host = ? AND username = ?";

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

#define LAST_INSERT \
	"INSERT INTO last_activity (server_host, username, seconds, status) VALUES (?, ?, ?, ?)"
static const struct upsert_sql sql_last_upsert = {
	LAST_INSERT " ON CONFLICT (server_host, username) DO UPDATE SET seconds = excluded.seconds, "
	"status = excluded.status",
	LAST_INSERT " ON DUPLICATE KEY UPDATE seconds = VALUES(seconds), status = VALUES(status)",
	LAST_INSERT,
	"UPDATE last_activity SET seconds = ?, status = ? WHERE server_host = ? AND username = ?",
};
static const char sql_last_get[] =
	"SELECT seconds, status FROM last_activity WHERE server_host = ? AND username = ?";

static enum storage_result op_vcard_get(struct sql_thread *t, struct sql_req *r)
{
	struct sql_param p[] = { PTEXT(r->host), PTEXT(r->user) };
	int found = q_text(t, r, sql_vcard_get, p, ARRAY_SIZE(p), &r->out_text);
	if (found < 0)
		return q_fail(t, r);
	return found ? STORAGE_OK : STORAGE_NOT_FOUND;
}

/* The directory's index of a vCard: one row per user, the fields as
 * stored and folded (vcard-index.h). */
static const char sql_vsearch_delete[] =
	"DELETE FROM vcard_search WHERE server_host = ? AND username = ?";
static const char sql_vsearch_insert[] =
	"INSERT INTO vcard_search (server_host, username, fn, lfn, given, lgiven, family, lfamily, "
	"nickname, lnickname, email, lemail, locality, llocality, orgname, lorgname, listed) "
	"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

/* Replace user's index row from the vCard text (inside the caller's write
 * transaction).  A text that is not a vCard is indexed as empty. */
static int vsearch_write(struct sql_thread *t, const char *host, const char *user,
                         const char *vcard)
{
	struct vcard_index vi;
	if (vcard_index_extract(vcard, &vi) < 0) {
		for (size_t i = 1; i < VF_COUNT; i++)
			vi.fields[i] = xstrdup("");
	}
	static const enum vcard_field order[] = { VF_FN, VF_FIRST, VF_LAST, VF_NICK, VF_EMAIL,
		                                      VF_LOCALITY, VF_ORG };
	char *folded[ARRAY_SIZE(order)];
	struct sql_param p[17] = { PTEXT(host), PTEXT(user) };
	for (size_t i = 0; i < ARRAY_SIZE(order); i++) {
		folded[i] = vcard_fold(vi.fields[order[i]]);
		p[2 + 2 * i] = (struct sql_param)PTEXT(vi.fields[order[i]]);
		p[3 + 2 * i] = (struct sql_param)PTEXT(folded[i]);
	}
	p[16] = (struct sql_param)PINT(vi.listed ? 1 : 0);
	struct sql_param pk[] = { PTEXT(host), PTEXT(user) };
	int rc = q_exec(t, sql_vsearch_delete, pk, ARRAY_SIZE(pk), NULL);
	if (rc == 0)
		rc = q_exec(t, sql_vsearch_insert, p, ARRAY_SIZE(p), NULL);
	for (size_t i = 0; i < ARRAY_SIZE(order); i++)
		free(folded[i]);
	vcard_index_clear(&vi);
	return rc;
}

static enum storage_result op_vcard_set(struct sql_thread *t, struct sql_req *r)
{
	struct sql_param p[] = { PTEXT(r->host), PTEXT(r->user), PTEXT(r->text) };
	if (q_begin(t, true) < 0)
		return q_fail(t, r);
	if (q_upsert(t, &sql_vcard_upsert, p, ARRAY_SIZE(p), 2) < 0 ||
	    vsearch_write(t, r->host, r->user, r->text) < 0 || q_commit(t) < 0)
		return q_abort(t, r);
	return STORAGE_OK;
}

/* The folded column of each field (VF_USER: the key itself). */
static const char *const vsearch_column[VF_COUNT] = {
	[VF_USER] = "username", [VF_FN] = "lfn", [VF_FIRST] = "lgiven", [VF_LAST] = "lfamily",
	[VF_NICK] = "lnickname", [VF_EMAIL] = "lemail", [VF_LOCALITY] = "llocality",
	[VF_ORG] = "lorgname",
};

/* Above every string that starts with a given prefix and continues with
 * valid UTF-8: the prefix followed by U+10FFFF.  An index range, the same
 * in every dialect (no LIKE and its escapes). */
#define PREFIX_END "\xF4\x8F\xBF\xBF"

static enum storage_result op_vcard_search(struct sql_thread *t, struct sql_req *r)
{
	const struct sql_driver_vfuncs *d = t->ss->drv;
	struct buf sql = {0};
	struct sql_param p[1 + 2 * VF_COUNT * 4];
	size_t np = 0;
	buf_append_str(&sql, "SELECT username, fn, given, family, nickname, email, locality, orgname "
	                     "FROM vcard_search WHERE server_host = ?");
	p[np++] = (struct sql_param)PTEXT(r->host);
	for (size_t i = 0; i < r->nterms && np + 2 <= ARRAY_SIZE(p); i++) {
		const struct vcard_term *tm = &r->terms[i];
		const char *col = vsearch_column[tm->field];
		if (tm->prefix && tm->value[0] == '\0')
			continue;   /* "*": anything */
		if (tm->prefix) {
			buf_printf(&sql, " AND %s >= ? AND %s < ?", col, col);
			p[np++] = (struct sql_param)PTEXT(tm->value);
			p[np++] = (struct sql_param)PTEXT(pool_printf(r->pool, "%s" PREFIX_END, tm->value));
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
	struct sql_stmt *s = q_start(t, sql.data, p, np, &st);
	if (s == NULL) {
		enum storage_result res = q_fail(t, r);
		buf_free(&sql);
		return res;
	}
	while (st == SQL_STEP_ROW) {
		if (r->limit > 0 && r->nentries >= r->limit) {
			r->more = true;
			break;
		}
		r->entries = pool_grow(r->pool, r->entries, r->nentries, &cap, sizeof(*r->entries));
		struct vcard_entry *e = &r->entries[r->nentries++];
		static const enum vcard_field cols[] = { VF_USER, VF_FN, VF_FIRST, VF_LAST, VF_NICK,
			                                     VF_EMAIL, VF_LOCALITY, VF_ORG };
		for (unsigned c = 0; c < ARRAY_SIZE(cols); c++) {
			char *v = col_str(t, r, s, c);
			e->fields[cols[c]] = v != NULL ? v : "";
		}
		st = d->step(s);
	}
	if (st == SQL_STEP_ERROR) {
		enum storage_result res = q_fail(t, r);
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

static enum storage_result op_vcard_reindex(struct sql_thread *t, struct sql_req *r)
{
	const struct sql_driver_vfuncs *d = t->ss->drv;
	struct sql_param p[] = { PTEXT(r->host) };
	enum sql_step st;
	size_t cap = 0, n = 0;
	struct private_item *todo = NULL;   /* (user, vcard) pairs */
	r->count = 0;
	if (q_begin(t, true) < 0)
		return q_fail(t, r);
	struct sql_stmt *s = q_start(t, sql_vcard_unindexed, p, ARRAY_SIZE(p), &st);
	if (s == NULL)
		return q_abort(t, r);
	while (st == SQL_STEP_ROW) {
		char *user = col_str(t, r, s, 0), *vcard = col_str(t, r, s, 1);
		if (user != NULL && vcard != NULL) {
			todo = pool_grow(r->pool, todo, n, &cap, sizeof(*todo));
			todo[n].ns = user;
			todo[n++].data = vcard;
		}
		st = d->step(s);
	}
	d->reset(s);
	if (st == SQL_STEP_ERROR)
		return q_abort(t, r);
	for (size_t i = 0; i < n; i++)
		if (vsearch_write(t, r->host, todo[i].ns, todo[i].data) < 0)
			return q_abort(t, r);
	if (q_commit(t) < 0)
		return q_abort(t, r);
	r->count = n;
	return STORAGE_OK;
}

static enum storage_result op_private_get(struct sql_thread *t, struct sql_req *r)
{
	struct sql_param p[] = { PTEXT(r->host), PTEXT(r->user), PTEXT(r->ns) };
	int found = q_text(t, r, sql_private_get, p, ARRAY_SIZE(p), &r->out_text);
	if (found < 0)
		return q_fail(t, r);
	return found ? STORAGE_OK : STORAGE_NOT_FOUND;
}

static const char sql_private_list[] =
	"SELECT namespace, data FROM private_storage WHERE server_host = ? AND username = ?";

static int cmp_private(const void *a, const void *b)
{
	return strcmp(((const struct private_item *)a)->ns, ((const struct private_item *)b)->ns);
}

static enum storage_result op_private_list(struct sql_thread *t, struct sql_req *r)
{
	const struct sql_driver_vfuncs *d = t->ss->drv;
	struct sql_param p[] = { PTEXT(r->host), PTEXT(r->user) };
	enum sql_step st;
	size_t cap = 0;
	r->pitems = NULL;
	r->npitems = 0;
	struct sql_stmt *s = q_start(t, sql_private_list, p, ARRAY_SIZE(p), &st);
	if (s == NULL)
		return q_fail(t, r);
	while (st == SQL_STEP_ROW) {
		char *ns = col_str(t, r, s, 0), *data = col_str(t, r, s, 1);
		if (ns != NULL && data != NULL) {
			r->pitems = pool_grow(r->pool, r->pitems, r->npitems, &cap, sizeof(*r->pitems));
			r->pitems[r->npitems++] = (struct private_item){ ns, data };
		}
		st = d->step(s);
	}
	if (st == SQL_STEP_ERROR) {
		enum storage_result res = q_fail(t, r);
		d->reset(s);
		return res;
	}
	d->reset(s);
	if (r->npitems > 1)
		qsort(r->pitems, r->npitems, sizeof(*r->pitems), cmp_private);
	return STORAGE_OK;
}

static enum storage_result op_private_set(struct sql_thread *t, struct sql_req *r)
{
	if (q_begin(t, true) < 0)
		return q_fail(t, r);
	for (size_t i = 0; i < r->npitems; i++) {
		struct sql_param p[] = { PTEXT(r->host), PTEXT(r->user), PTEXT(r->pitems[i].ns),
		                         PTEXT(r->pitems[i].data) };
		if (q_upsert(t, &sql_private_upsert, p, ARRAY_SIZE(p), 3) < 0)
			return q_abort(t, r);
	}
	if (q_commit(t) < 0)
		return q_abort(t, r);
	return STORAGE_OK;
}

static enum storage_result op_last_get(struct sql_thread *t, struct sql_req *r)
{
	const struct sql_driver_vfuncs *d = t->ss->drv;
	struct sql_param p[] = { PTEXT(r->host), PTEXT(r->user) };
	enum sql_step st;
	struct sql_stmt *s = q_start(t, sql_last_get, p, ARRAY_SIZE(p), &st);
	if (s == NULL)
		return q_fail(t, r);
	if (st != SQL_STEP_ROW) {
		d->reset(s);
		return STORAGE_NOT_FOUND;
	}
	r->last.seconds = d->column_int64(s, 0);
	char *status = col_str(t, r, s, 1);
	r->last.status = status != NULL ? status : "";
	d->reset(s);
	return STORAGE_OK;
}

static enum storage_result op_last_set(struct sql_thread *t, struct sql_req *r)
{
	struct sql_param p[] = { PTEXT(r->host), PTEXT(r->user), PINT(r->when),
	                         PTEXT(r->text != NULL ? r->text : "") };
	if (q_begin(t, true) < 0)
		return q_fail(t, r);
	if (q_upsert(t, &sql_last_upsert, p, ARRAY_SIZE(p), 2) < 0 || q_commit(t) < 0)
		return q_abort(t, r);
	return STORAGE_OK;
}

/* ---- blocking command (worker thread) ------------------------------------------ */

static const char sql_blocklist_get[] =
	"SELECT jid FROM blocklist WHERE server_host = ? AND username = ?";
static const char sql_blocklist_exists[] =
	"SELECT COUNT(*) FROM blocklist WHERE server_host = ? AND username = ? AND jid = ?";
static const char sql_blocklist_insert[] =
	"INSERT INTO blocklist (server_host, username, jid) VALUES (?, ?, ?)";
static const char sql_blocklist_delete[] =
	"DELETE FROM blocklist WHERE server_host = ? AND username = ? AND jid = ?";
static const char sql_blocklist_delete_all[] =
	"DELETE FROM blocklist WHERE server_host = ? AND username = ?";

static enum storage_result op_blocklist_get(struct sql_thread *t, struct sql_req *r)
{
	struct sql_param p[] = { PTEXT(r->host), PTEXT(r->user) };
	return q_names(t, r, sql_blocklist_get, p, ARRAY_SIZE(p));
}

/* Insert the JIDs not there yet (a plain INSERT per missing row: the same
 * SQL for every dialect). */
static enum storage_result op_blocklist_add(struct sql_thread *t, struct sql_req *r)
{
	if (q_begin(t, true) < 0)
		return q_fail(t, r);
	for (size_t i = 0; i < r->njids; i++) {
		struct sql_param p[] = { PTEXT(r->host), PTEXT(r->user), PTEXT(r->jids[i]) };
		int64_t n = 0;
		if (q_int(t, sql_blocklist_exists, p, ARRAY_SIZE(p), &n) < 0)
			return q_abort(t, r);
		if (n == 0 && q_exec(t, sql_blocklist_insert, p, ARRAY_SIZE(p), NULL) < 0)
			return q_abort(t, r);
	}
	if (q_commit(t) < 0)
		return q_abort(t, r);
	return STORAGE_OK;
}

static enum storage_result op_blocklist_remove(struct sql_thread *t, struct sql_req *r)
{
	if (q_begin(t, true) < 0)
		return q_fail(t, r);
	if (r->njids == 0) {
		struct sql_param p[] = { PTEXT(r->host), PTEXT(r->user) };
		if (q_exec(t, sql_blocklist_delete_all, p, ARRAY_SIZE(p), NULL) < 0)
			return q_abort(t, r);
	}
	for (size_t i = 0; i < r->njids; i++) {
		struct sql_param p[] = { PTEXT(r->host), PTEXT(r->user), PTEXT(r->jids[i]) };
		if (q_exec(t, sql_blocklist_delete, p, ARRAY_SIZE(p), NULL) < 0)
			return q_abort(t, r);
	}
	if (q_commit(t) < 0)
		return q_abort(t, r);
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

static enum storage_result op_privacy_get(struct sql_thread *t, struct sql_req *r)
{
	const struct sql_driver_vfuncs *d = t->ss->drv;
	struct sql_param p[] = { PTEXT(r->host), PTEXT(r->user) };
	enum sql_step st;
	size_t cap = 0;
	r->plists = NULL;
	r->nplists = 0;
	r->default_name = NULL;
	/* One read transaction: the lists and their items agree. */
	if (q_begin(t, false) < 0)
		return q_fail(t, r);
	struct sql_stmt *s = q_start(t, sql_privacy_lists, p, ARRAY_SIZE(p), &st);
	if (s == NULL)
		return q_abort(t, r);
	while (st == SQL_STEP_ROW) {
		char *name = col_str(t, r, s, 0);
		if (name != NULL) {
			r->plists = pool_grow(r->pool, r->plists, r->nplists, &cap, sizeof(*r->plists));
			r->plists[r->nplists++] = (struct privacy_list){ .name = name };
			if (d->column_int64(s, 1) != 0)
				r->default_name = name;
		}
		st = d->step(s);
	}
	d->reset(s);
	if (st == SQL_STEP_ERROR)
		return q_abort(t, r);
	if (r->nplists > 1)
		qsort(r->plists, r->nplists, sizeof(*r->plists), cmp_plist);
	size_t *caps = r->nplists > 0 ? pool_alloc(r->pool, r->nplists * sizeof(size_t)) : NULL;
	for (size_t i = 0; i < r->nplists; i++)
		caps[i] = 0;
	s = q_start(t, sql_privacy_items, p, ARRAY_SIZE(p), &st);
	if (s == NULL)
		return q_abort(t, r);
	while (st == SQL_STEP_ROW) {
		const char *lname = d->column_text(s, 0);
		struct privacy_list key = { .name = lname };
		struct privacy_list *l = lname == NULL ? NULL :
			bsearch(&key, r->plists, r->nplists, sizeof(*r->plists), cmp_plist);
		enum privacy_type type;
		char *tname = col_str(t, r, s, 2);
		char *action = col_str(t, r, s, 4);
		int64_t order = d->column_int64(s, 1);
		if (l == NULL || !privacy_type_parse(tname, &type) || action == NULL ||
		    order < 0 || order > UINT32_MAX) {
			log_error("storage %s: %s@%s: a malformed privacy item in the database; ignoring it",
			          t->ss->base.description, r->user, r->host);
		} else {
			size_t li = (size_t)(l - r->plists);
			struct privacy_item *items = (struct privacy_item *)l->items;
			items = pool_grow(r->pool, items, l->nitems, &caps[li], sizeof(*items));
			items[l->nitems] = (struct privacy_item){
				.type = type,
				.value = type == PRIVACY_ALL ? NULL : col_str(t, r, s, 3),
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
		return q_abort(t, r);
	d->rollback(t->conn);    /* read only: nothing to keep */
	for (size_t i = 0; i < r->nplists; i++)
		if (r->plists[i].nitems > 1)
			qsort((void *)r->plists[i].items, r->plists[i].nitems, sizeof(struct privacy_item),
			      cmp_pitem);
	return STORAGE_OK;
}

static enum storage_result op_privacy_set_list(struct sql_thread *t, struct sql_req *r)
{
	struct sql_param p[] = { PTEXT(r->host), PTEXT(r->user), PTEXT(r->lname) };
	int64_t n = 0;
	if (q_begin(t, true) < 0)
		return q_fail(t, r);
	if (q_int(t, sql_privacy_exists, p, ARRAY_SIZE(p), &n) < 0)
		return q_abort(t, r);
	if (n == 0 && q_exec(t, sql_privacy_insert_list, p, ARRAY_SIZE(p), NULL) < 0)
		return q_abort(t, r);
	if (q_exec(t, sql_privacy_delete_items, p, ARRAY_SIZE(p), NULL) < 0)
		return q_abort(t, r);
	for (size_t i = 0; i < r->nprv_in; i++) {
		const struct privacy_item *it = &r->prv_in[i];
		struct sql_param pi[] = {
			PTEXT(r->host), PTEXT(r->user), PTEXT(r->lname), PINT(it->order),
			PTEXT(it->type == PRIVACY_ALL ? "all" : privacy_type_str(it->type)),
			PTEXT(it->type == PRIVACY_ALL ? "" : it->value),
			PTEXT(it->allow ? "allow" : "deny"), PINT(it->stanzas),
		};
		if (q_exec(t, sql_privacy_insert_item, pi, ARRAY_SIZE(pi), NULL) < 0)
			return q_abort(t, r);
	}
	if (q_commit(t) < 0)
		return q_abort(t, r);
	return STORAGE_OK;
}

static enum storage_result op_privacy_remove_list(struct sql_thread *t, struct sql_req *r)
{
	struct sql_param p[] = { PTEXT(r->host), PTEXT(r->user), PTEXT(r->lname) };
	uint64_t changes = 0;
	if (q_begin(t, true) < 0)
		return q_fail(t, r);
	if (q_exec(t, sql_privacy_delete_items, p, ARRAY_SIZE(p), NULL) < 0 ||
	    q_exec(t, sql_privacy_delete_list, p, ARRAY_SIZE(p), &changes) < 0)
		return q_abort(t, r);
	if (changes == 0) {
		t->ss->drv->rollback(t->conn);
		return STORAGE_NOT_FOUND;
	}
	if (q_commit(t) < 0)
		return q_abort(t, r);
	return STORAGE_OK;
}

static enum storage_result op_privacy_set_default(struct sql_thread *t, struct sql_req *r)
{
	struct sql_param p[] = { PTEXT(r->host), PTEXT(r->user), PTEXT(r->lname) };
	int64_t n = 0;
	if (q_begin(t, true) < 0)
		return q_fail(t, r);
	if (r->lname != NULL) {
		if (q_int(t, sql_privacy_exists, p, ARRAY_SIZE(p), &n) < 0)
			return q_abort(t, r);
		if (n == 0) {
			t->ss->drv->rollback(t->conn);
			return STORAGE_NOT_FOUND;
		}
	}
	if (q_exec(t, sql_privacy_clear_default, p, 2, NULL) < 0)
		return q_abort(t, r);
	if (r->lname != NULL && q_exec(t, sql_privacy_make_default, p, ARRAY_SIZE(p), NULL) < 0)
		return q_abort(t, r);
	if (q_commit(t) < 0)
		return q_abort(t, r);
	return STORAGE_OK;
}

/* ---- shared roster groups (worker thread) --------------------------------------- */

static const char sql_srg_list[] = "SELECT name FROM sr_groups WHERE server_host = ?";
static const char sql_srg_get_one[] =
	"SELECT name, label, description FROM sr_groups WHERE server_host = ? AND name = ?";
static const char sql_srg_get_all[] =
	"SELECT name, label, description FROM sr_groups WHERE server_host = ?";
static const char sql_srg_displayed_one[] =
	"SELECT grp, displayed FROM sr_displayed WHERE server_host = ? AND grp = ?";
static const char sql_srg_displayed_all[] =
	"SELECT grp, displayed FROM sr_displayed WHERE server_host = ?";
static const char sql_srg_members_one[] =
	"SELECT grp, member FROM sr_members WHERE server_host = ? AND grp = ?";
static const char sql_srg_members_all[] =
	"SELECT grp, member FROM sr_members WHERE server_host = ?";
static const char sql_srg_insert[] =
	"INSERT INTO sr_groups (server_host, name, label, description) VALUES (?, ?, ?, ?)";
static const char sql_srg_displayed_insert[] =
	"INSERT INTO sr_displayed (server_host, grp, displayed) VALUES (?, ?, ?)";
static const char sql_srg_member_insert[] =
	"INSERT INTO sr_members (server_host, grp, member) VALUES (?, ?, ?)";
static const char sql_srg_exists[] = "SELECT 1 FROM sr_groups WHERE server_host = ? AND name = ?";
static const char sql_srg_member_exists[] =
	"SELECT 1 FROM sr_members WHERE server_host = ? AND grp = ? AND member = ?";
static const char sql_srg_member_delete[] =
	"DELETE FROM sr_members WHERE server_host = ? AND grp = ? AND member = ?";
static const char sql_srg_members_delete[] =
	"DELETE FROM sr_members WHERE server_host = ? AND grp = ?";
static const char sql_srg_displayed_delete[] =
	"DELETE FROM sr_displayed WHERE server_host = ? AND grp = ?";
static const char sql_srg_delete[] = "DELETE FROM sr_groups WHERE server_host = ? AND name = ?";
static const char sql_srg_user_groups[] =
	"SELECT DISTINCT grp FROM sr_members WHERE server_host = ? AND (member = ? OR member = ?)";

static int cmp_group(const void *a, const void *b)
{
	return strcmp(((const struct srg_group *)a)->name, ((const struct srg_group *)b)->name);
}

/* Rows of (group, value) into the named groups' lists (which) of r->groups. */
static int srg_read_lists(struct sql_thread *t, struct sql_req *r, const char *sql,
                          const struct sql_param *p, size_t n, bool members)
{
	const struct sql_driver_vfuncs *d = t->ss->drv;
	enum sql_step st;
	size_t *caps = r->ngroups > 0 ? pool_alloc(r->pool, r->ngroups * sizeof(size_t)) : NULL;
	struct sql_stmt *s = q_start(t, sql, p, n, &st);
	if (s == NULL)
		return -1;
	while (st == SQL_STEP_ROW) {
		const char *grp = d->column_text(s, 0);
		struct srg_group key = { .name = (char *)grp };
		struct srg_group *g = grp != NULL && r->ngroups > 0
		                      ? bsearch(&key, r->groups, r->ngroups, sizeof(*g), cmp_group) : NULL;
		char *v = col_str(t, r, s, 1);
		if (g != NULL && v != NULL) {
			struct strlist *l = members ? &g->members : &g->displayed;
			size_t k = (size_t)(g - r->groups);
			l->items = pool_grow(r->pool, l->items, l->count, &caps[k], sizeof(char *));
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
			qsort(l->items, l->count, sizeof(char *), cmp_str);
	}
	return 0;
}

static enum storage_result op_srg_list(struct sql_thread *t, struct sql_req *r)
{
	struct sql_param p[] = { PTEXT(r->host) };
	return q_names(t, r, sql_srg_list, p, ARRAY_SIZE(p));
}

static enum storage_result op_srg_get(struct sql_thread *t, struct sql_req *r)
{
	const struct sql_driver_vfuncs *d = t->ss->drv;
	struct sql_param p[] = { PTEXT(r->host), PTEXT(r->name) };
	size_t np = r->name != NULL ? 2 : 1;
	enum sql_step st;
	size_t cap = 0;
	r->groups = NULL;
	r->ngroups = 0;
	/* One read transaction: groups, lists and members agree. */
	if (q_begin(t, false) < 0)
		return q_fail(t, r);
	struct sql_stmt *s = q_start(t, r->name != NULL ? sql_srg_get_one : sql_srg_get_all, p, np,
	                             &st);
	if (s == NULL)
		return q_abort(t, r);
	while (st == SQL_STEP_ROW) {
		char *name = col_str(t, r, s, 0);
		if (name != NULL) {
			r->groups = pool_grow(r->pool, r->groups, r->ngroups, &cap, sizeof(*r->groups));
			struct srg_group *g = &r->groups[r->ngroups++];
			memset(g, 0, sizeof(*g));
			g->name = name;
			g->label = col_str(t, r, s, 1);
			g->description = col_str(t, r, s, 2);
			if (g->label == NULL)
				g->label = pool_strdup(r->pool, "");
			if (g->description == NULL)
				g->description = pool_strdup(r->pool, "");
		}
		st = d->step(s);
	}
	d->reset(s);
	if (st == SQL_STEP_ERROR)
		return q_abort(t, r);
	if (r->ngroups > 1)
		qsort(r->groups, r->ngroups, sizeof(*r->groups), cmp_group);
	if (srg_read_lists(t, r, r->name != NULL ? sql_srg_displayed_one : sql_srg_displayed_all, p,
	                   np, false) < 0 ||
	    srg_read_lists(t, r, r->name != NULL ? sql_srg_members_one : sql_srg_members_all, p, np,
	                   true) < 0)
		return q_abort(t, r);
	if (q_commit(t) < 0)
		return q_abort(t, r);
	if (r->name != NULL && r->ngroups == 0)
		return STORAGE_NOT_FOUND;
	return STORAGE_OK;
}

/* Insert every distinct value of l as a row (host, group, value). */
static int srg_insert_list(struct sql_thread *t, struct sql_req *r, const char *sql,
                           const struct strlist *l)
{
	for (size_t i = 0; i < l->count; i++) {
		bool dup = false;
		for (size_t k = 0; k < i && !dup; k++)
			dup = strcmp(l->items[k], l->items[i]) == 0;
		if (dup)
			continue;
		struct sql_param p[] = { PTEXT(r->host), PTEXT(r->grp.name), PTEXT(l->items[i]) };
		if (q_exec(t, sql, p, ARRAY_SIZE(p), NULL) < 0)
			return -1;
	}
	return 0;
}

static enum storage_result op_srg_create(struct sql_thread *t, struct sql_req *r)
{
	struct sql_param pk[] = { PTEXT(r->host), PTEXT(r->grp.name) };
	struct sql_param p[] = { PTEXT(r->host), PTEXT(r->grp.name), PTEXT(r->grp.label),
	                         PTEXT(r->grp.description) };
	int64_t v = 0;
	if (q_begin(t, true) < 0)
		return q_fail(t, r);
	int found = q_int(t, sql_srg_exists, pk, ARRAY_SIZE(pk), &v);
	if (found < 0)
		return q_abort(t, r);
	if (found > 0) {
		t->ss->drv->rollback(t->conn);
		return STORAGE_EXISTS;
	}
	if (q_exec(t, sql_srg_insert, p, ARRAY_SIZE(p), NULL) < 0 ||
	    srg_insert_list(t, r, sql_srg_displayed_insert, &r->grp.displayed) < 0 ||
	    srg_insert_list(t, r, sql_srg_member_insert, &r->grp.members) < 0 || q_commit(t) < 0)
		return q_abort(t, r);
	return STORAGE_OK;
}

static enum storage_result op_srg_delete(struct sql_thread *t, struct sql_req *r)
{
	struct sql_param p[] = { PTEXT(r->host), PTEXT(r->name) };
	uint64_t changes = 0;
	if (q_begin(t, true) < 0)
		return q_fail(t, r);
	if (q_exec(t, sql_srg_members_delete, p, ARRAY_SIZE(p), NULL) < 0 ||
	    q_exec(t, sql_srg_displayed_delete, p, ARRAY_SIZE(p), NULL) < 0 ||
	    q_exec(t, sql_srg_delete, p, ARRAY_SIZE(p), &changes) < 0)
		return q_abort(t, r);
	if (changes == 0) {
		t->ss->drv->rollback(t->conn);
		return STORAGE_NOT_FOUND;
	}
	if (q_commit(t) < 0)
		return q_abort(t, r);
	return STORAGE_OK;
}

static enum storage_result op_srg_member_add(struct sql_thread *t, struct sql_req *r)
{
	struct sql_param pk[] = { PTEXT(r->host), PTEXT(r->name) };
	struct sql_param pm[] = { PTEXT(r->host), PTEXT(r->name), PTEXT(r->member) };
	int64_t v = 0;
	if (q_begin(t, true) < 0)
		return q_fail(t, r);
	int found = q_int(t, sql_srg_exists, pk, ARRAY_SIZE(pk), &v);
	if (found < 0)
		return q_abort(t, r);
	if (found == 0) {
		t->ss->drv->rollback(t->conn);
		return STORAGE_NOT_FOUND;
	}
	found = q_int(t, sql_srg_member_exists, pm, ARRAY_SIZE(pm), &v);
	if (found < 0)
		return q_abort(t, r);
	if (found > 0) {
		t->ss->drv->rollback(t->conn);
		return STORAGE_EXISTS;
	}
	if (q_exec(t, sql_srg_member_insert, pm, ARRAY_SIZE(pm), NULL) < 0 || q_commit(t) < 0)
		return q_abort(t, r);
	return STORAGE_OK;
}

static enum storage_result op_srg_member_remove(struct sql_thread *t, struct sql_req *r)
{
	struct sql_param pm[] = { PTEXT(r->host), PTEXT(r->name), PTEXT(r->member) };
	uint64_t changes = 0;
	if (q_exec(t, sql_srg_member_delete, pm, ARRAY_SIZE(pm), &changes) < 0)
		return q_fail(t, r);
	return changes > 0 ? STORAGE_OK : STORAGE_NOT_FOUND;
}

static enum storage_result op_srg_user_groups(struct sql_thread *t, struct sql_req *r)
{
	struct sql_param p[] = { PTEXT(r->host), PTEXT(r->member), PTEXT(SRG_MEMBER_ALL) };
	return q_names(t, r, sql_srg_user_groups, p, ARRAY_SIZE(p));
}

/* ---- the worker side of a job ------------------------------------------------ */

static int check_version(const struct sql_driver_vfuncs *d, struct sql_conn *c, const char *desc,
                         char **error_r);

/* A job of r could not get a connection: say so, at most once a second
 * per store (the count of the lines left out follows). */
static void log_outage(struct sql_thread *t, struct sql_req *r, double now, const char *why)
{
	struct sql_storage *ss = t->ss;
	pthread_mutex_lock(&ss->lock);
	bool say = now - ss->last_outage_log >= 1.0;
	unsigned more = ss->suppressed;
	if (say) {
		ss->last_outage_log = now;
		ss->suppressed = 0;
	} else {
		ss->suppressed++;
	}
	double since = now - ss->down_since;
	double next = ss->retry_at - now;
	pthread_mutex_unlock(&ss->lock);
	if (!say)
		return;
	char extra[64] = "";
	if (more > 0)
		snprintf(extra, sizeof(extra), " (and %u more since the last line)", more);
	log_warning("storage %s: %s %s@%s failed at once: %s (down for %.0f s, next connection "
	            "attempt in %.1f s)%s", ss->base.description, storage_op_name(r->base.op),
	            r->user != NULL ? r->user : "", r->host, why, since, next > 0 ? next : 0, extra);
}

/* Give t a working connection.  While the database is down only one worker
 * at a time tries, and not before the backoff has passed; the others fail
 * at once.  A new connection's schema version is checked. */
static bool thread_connect(struct sql_thread *t, struct sql_req *r)
{
	struct sql_storage *ss = t->ss;
	const struct sql_driver_vfuncs *d = ss->drv;
	double now = mono_now();
	if (t->conn != NULL && d->ping != NULL && now - t->last_used >= SQL_IDLE_CHECK &&
	    d->ping(t->conn) < 0) {
		log_notice("storage %s: worker %u: the idle connection no longer works (%s); reconnecting",
		           ss->base.description, t->index, d->error_message(t->conn));
		d->disconnect(t->conn);
		t->conn = NULL;
		pthread_mutex_lock(&ss->lock);
		ss->nconns--;
		pthread_mutex_unlock(&ss->lock);
	}
	if (t->conn != NULL) {
		t->last_used = now;
		return true;
	}

	pthread_mutex_lock(&ss->lock);
	if (ss->down && (ss->connecting || now < ss->retry_at)) {
		pthread_mutex_unlock(&ss->lock);
		if (r != NULL)
			log_outage(t, r, now, "the database is unreachable");
		return false;
	}
	ss->connecting = true;
	pthread_mutex_unlock(&ss->lock);

	char *err = NULL;
	struct sql_conn *c = d->connect(&ss->cfg, &err);
	if (c != NULL && check_version(d, c, ss->base.description, &err) < 0) {
		d->disconnect(c);
		c = NULL;
	}
	now = mono_now();
	pthread_mutex_lock(&ss->lock);
	ss->connecting = false;
	if (c == NULL) {
		bool first = !ss->down;
		if (first) {
			ss->down = true;
			ss->down_since = now;
			ss->backoff = 1.0;
		} else {
			ss->backoff = ss->backoff * 2 > SQL_BACKOFF_MAX ? SQL_BACKOFF_MAX : ss->backoff * 2;
		}
		ss->retry_at = now + ss->backoff;
		free(ss->last_error);
		ss->last_error = xstrdup(err != NULL ? err : "unknown error");
		double wait = ss->backoff;
		double since = now - ss->down_since;
		pthread_mutex_unlock(&ss->lock);
		if (first)
			log_error("storage %s: cannot connect: %s; the hosts on this store are degraded "
			          "(their storage requests fail with a temporary error) until it comes back; "
			          "next attempt in %.0f s", ss->base.description,
			          err != NULL ? err : "unknown error", wait);
		else
			log_warning("storage %s: still cannot connect (down for %.0f s): %s; next attempt "
			            "in %.0f s", ss->base.description, since,
			            err != NULL ? err : "unknown error", wait);
		free(err);
		return false;
	}
	bool was_down = ss->down;
	double since = now - ss->down_since;
	ss->down = false;
	ss->backoff = 0;
	ss->nconns++;
	pthread_mutex_unlock(&ss->lock);
	if (was_down)
		log_notice("storage %s: connected again (worker %u) after %.0f s; the hosts on this "
		           "store work again", ss->base.description, t->index, since);
	t->conn = c;
	t->last_used = now;
	return true;
}

static enum storage_result run_op(struct sql_thread *t, struct sql_req *r)
{
	switch (r->base.op) {
	case STORAGE_OP_ACCOUNT_GET: return op_account_get(t, r);
	case STORAGE_OP_ACCOUNT_CREATE: return op_account_create(t, r);
	case STORAGE_OP_ACCOUNT_UPDATE: return op_account_update(t, r);
	case STORAGE_OP_ACCOUNT_REMOVE: return op_account_remove(t, r);
	case STORAGE_OP_ACCOUNT_LIST: return op_account_list(t, r);
	case STORAGE_OP_ACCOUNT_COUNT: return op_account_count(t, r);
	case STORAGE_OP_ROSTER_GET: return op_roster_get(t, r);
	case STORAGE_OP_ROSTER_SET: return op_roster_set(t, r);
	case STORAGE_OP_ROSTER_REMOVE: return op_roster_remove(t, r);
	case STORAGE_OP_OFFLINE_STORE: return op_offline_store(t, r);
	case STORAGE_OP_OFFLINE_GET: return op_offline_get(t, r);
	case STORAGE_OP_OFFLINE_DELETE: return op_offline_delete(t, r);
	case STORAGE_OP_OFFLINE_COUNT: return op_offline_count(t, r);
	case STORAGE_OP_VCARD_GET: return op_vcard_get(t, r);
	case STORAGE_OP_VCARD_SET: return op_vcard_set(t, r);
	case STORAGE_OP_PRIVATE_GET: return op_private_get(t, r);
	case STORAGE_OP_PRIVATE_SET: return op_private_set(t, r);
	case STORAGE_OP_LAST_GET: return op_last_get(t, r);
	case STORAGE_OP_LAST_SET: return op_last_set(t, r);
	case STORAGE_OP_BLOCKLIST_GET: return op_blocklist_get(t, r);
	case STORAGE_OP_BLOCKLIST_ADD: return op_blocklist_add(t, r);
	case STORAGE_OP_BLOCKLIST_REMOVE: return op_blocklist_remove(t, r);
	case STORAGE_OP_PRIVACY_GET: return op_privacy_get(t, r);
	case STORAGE_OP_PRIVATE_LIST: return op_private_list(t, r);
	case STORAGE_OP_PRIVACY_SET_LIST: return op_privacy_set_list(t, r);
	case STORAGE_OP_PRIVACY_REMOVE_LIST: return op_privacy_remove_list(t, r);
	case STORAGE_OP_PRIVACY_SET_DEFAULT: return op_privacy_set_default(t, r);
	case STORAGE_OP_SRG_LIST: return op_srg_list(t, r);
	case STORAGE_OP_SRG_GET: return op_srg_get(t, r);
	case STORAGE_OP_SRG_CREATE: return op_srg_create(t, r);
	case STORAGE_OP_SRG_DELETE: return op_srg_delete(t, r);
	case STORAGE_OP_SRG_MEMBER_ADD: return op_srg_member_add(t, r);
	case STORAGE_OP_SRG_MEMBER_REMOVE: return op_srg_member_remove(t, r);
	case STORAGE_OP_SRG_USER_GROUPS: return op_srg_user_groups(t, r);
	case STORAGE_OP_VCARD_SEARCH: return op_vcard_search(t, r);
	case STORAGE_OP_VCARD_REINDEX: return op_vcard_reindex(t, r);
	}
	return STORAGE_ERROR;
}

static void sql_work(void *job, void *thread_state)
{
	struct sql_req *r = job;
	struct sql_thread *t = thread_state;
	const struct sql_driver_vfuncs *d = t->ss->drv;
	for (unsigned attempt = 0;; attempt++) {
		if (!thread_connect(t, r)) {
			r->res = STORAGE_TEMPFAIL;
			return;
		}
		failed_sql = NULL;
		r->res = run_op(t, r);
		t->last_used = mono_now();
		if (r->res != STORAGE_TEMPFAIL || d->is_broken == NULL || !d->is_broken(t->conn))
			return;
		/* The server went away: a new connection, and one more try (every
		 * operation is one transaction or one statement). */
		log_warning("storage %s: worker %u lost its connection (%s); reconnecting",
		            t->ss->base.description, t->index, d->error_message(t->conn));
		d->disconnect(t->conn);
		t->conn = NULL;
		pthread_mutex_lock(&t->ss->lock);
		t->ss->nconns--;
		pthread_mutex_unlock(&t->ss->lock);
		if (attempt > 0)
			return;
	}
}

static void *sql_thread_init(void *group_ctx, unsigned index)
{
	struct sql_thread *t = xcalloc(1, sizeof(*t));
	t->ss = group_ctx;
	t->index = index;
	thread_connect(t, NULL);     /* failures are retried at each job */
	return t;
}

static void sql_thread_deinit(void *group_ctx, void *state)
{
	struct sql_thread *t = state;
	if (t->conn != NULL) {
		t->ss->drv->disconnect(t->conn);
		pthread_mutex_lock(&t->ss->lock);
		t->ss->nconns--;
		pthread_mutex_unlock(&t->ss->lock);
	}
	free(t);
}

/* ---- the loop side of a job ------------------------------------------------- */

static void req_free(struct sql_req *r)
{
	if (r->acc.plain != NULL)
		explicit_bzero(r->acc.plain, strlen(r->acc.plain));
	explicit_bzero(&r->acc, sizeof(r->acc));
	pool_unref(&r->pool);
	free(r);
}

static void sql_req_free(struct storage_req *req)
{
	req_free((struct sql_req *)req);
}

static void sql_done(void *job, enum worker_status status)
{
	struct sql_req *r = job;
	r->wj = NULL;
	if (status != WORKER_CANCELLED && !r->base.cancelled) {
		struct storage_reply out = { .res = r->res };
		if (status == WORKER_EXPIRED) {
			log_warning("storage %s: %s %s@%s: no worker took the job in time",
			            r->base.st->description, storage_op_name(r->base.op),
			            r->user != NULL ? r->user : "", r->host);
			out.res = STORAGE_TEMPFAIL;
		} else {
			out.account = &r->acc;
			out.names = &r->names;
			out.count = r->count;
			out.items = r->items;
			out.nitems = r->nitems;
			out.version = r->version;
			out.messages = r->msgs;
			out.nmessages = r->nmsgs;
			out.text = r->out_text;
			out.last = &r->last;
			out.lists = r->plists;
			out.nlists = r->nplists;
			out.default_name = r->default_name;
			out.groups = r->groups;
			out.ngroups = r->ngroups;
			out.pitems = r->pitems;
			out.npitems = r->npitems;
			out.entries = r->entries;
			out.nentries = r->nentries;
			out.more = r->more;
		}
		storage_req_reply(&r->base, &out);
	}
	req_free(r);
}

static void sql_cancel(struct storage_req *req)
{
	struct sql_req *r = (struct sql_req *)req;
	/* The worker may be running it: sql_done frees it once the group
	 * reports back (with WORKER_CANCELLED).  No job: we are inside its
	 * callback (a cancel there is a no-op; sql_done frees it). */
	if (r->wj != NULL)
		worker_cancel(r->wj);
}

static struct sql_req *req_new(struct storage *st, enum storage_op op, const char *host,
                               const char *user, void *ctx)
{
	struct sql_req *r = xcalloc(1, sizeof(*r));
	storage_req_init(&r->base, st, op, ctx);
	r->pool = pool_new(1024);
	r->host = pool_strdup(r->pool, host);
	r->user = user != NULL ? pool_strdup(r->pool, user) : NULL;
	return r;
}

static struct storage_req *req_submit(struct sql_req *r)
{
	struct sql_storage *ss = (struct sql_storage *)r->base.st;
	if (ss->base.closing || ss->workers == NULL) {
		storage_req_fail_later(&r->base, STORAGE_TEMPFAIL);
		return &r->base;
	}
	char *key = xasprintf("%s@%s", r->user != NULL ? r->user : "", r->host);
	uint32_t shard = hash_str(key);
	free(key);
	r->wj = worker_submit(ss->workers, shard, sql_work, sql_done, r, ss->cfg.timeout);
	if (r->wj == NULL) {
		double now = ev_now(ss->base.loop);
		if (now - ss->last_full_log >= 1.0) {
			log_warning("storage %s: queue full (%u jobs): failing requests with a temporary error",
			            ss->base.description, worker_group_pending(ss->workers));
			ss->last_full_log = now;
		}
		storage_req_fail_later(&r->base, STORAGE_TEMPFAIL);
	}
	return &r->base;
}

static void copy_account(struct sql_req *r, const struct storage_account *a)
{
	r->acc = *a;
	if (a->sha1.salt_b64 != NULL)
		r->acc.sha1.salt_b64 = pool_strdup(r->pool, a->sha1.salt_b64);
	if (a->sha256.salt_b64 != NULL)
		r->acc.sha256.salt_b64 = pool_strdup(r->pool, a->sha256.salt_b64);
	if (a->plain != NULL)
		r->acc.plain = pool_strdup(r->pool, a->plain);
	if (r->acc.created == 0)
		r->acc.created = (int64_t)time(NULL);
}

/* ---- vfuncs ------------------------------------------------------------------ */

static struct storage_req *sql_account_get_op(struct storage *st, const char *host,
                                              const char *user, storage_account_cb *cb, void *ctx)
{
	struct sql_req *r = req_new(st, STORAGE_OP_ACCOUNT_GET, host, user, ctx);
	r->base.cb.account = cb;
	return req_submit(r);
}

static struct storage_req *sql_account_create_op(struct storage *st, const char *host,
                                                 const char *user, const struct storage_account *acc,
                                                 storage_done_cb *cb, void *ctx)
{
	struct sql_req *r = req_new(st, STORAGE_OP_ACCOUNT_CREATE, host, user, ctx);
	r->base.cb.done = cb;
	copy_account(r, acc);
	return req_submit(r);
}

static struct storage_req *sql_account_update_op(struct storage *st, const char *host,
                                                 const char *user, const struct storage_account *acc,
                                                 storage_done_cb *cb, void *ctx)
{
	struct sql_req *r = req_new(st, STORAGE_OP_ACCOUNT_UPDATE, host, user, ctx);
	r->base.cb.done = cb;
	copy_account(r, acc);
	return req_submit(r);
}

static struct storage_req *sql_account_remove_op(struct storage *st, const char *host,
                                                 const char *user, storage_done_cb *cb, void *ctx)
{
	struct sql_req *r = req_new(st, STORAGE_OP_ACCOUNT_REMOVE, host, user, ctx);
	r->base.cb.done = cb;
	return req_submit(r);
}

static struct storage_req *sql_account_list_op(struct storage *st, const char *host,
                                               storage_list_cb *cb, void *ctx)
{
	struct sql_req *r = req_new(st, STORAGE_OP_ACCOUNT_LIST, host, NULL, ctx);
	r->base.cb.list = cb;
	return req_submit(r);
}

static struct storage_req *sql_account_count_op(struct storage *st, const char *host,
                                                storage_count_cb *cb, void *ctx)
{
	struct sql_req *r = req_new(st, STORAGE_OP_ACCOUNT_COUNT, host, NULL, ctx);
	r->base.cb.count = cb;
	return req_submit(r);
}

static struct storage_req *sql_roster_get_op(struct storage *st, const char *host,
                                             const char *user, storage_roster_cb *cb, void *ctx)
{
	struct sql_req *r = req_new(st, STORAGE_OP_ROSTER_GET, host, user, ctx);
	r->base.cb.roster = cb;
	return req_submit(r);
}

static struct storage_req *sql_roster_set_op(struct storage *st, const char *host,
                                             const char *user, const struct roster_item *item,
                                             storage_done_cb *cb, void *ctx)
{
	struct sql_req *r = req_new(st, STORAGE_OP_ROSTER_SET, host, user, ctx);
	r->base.cb.done = cb;
	r->item.jid = pool_strdup(r->pool, item->jid);
	r->item.name = item->name != NULL ? pool_strdup(r->pool, item->name) : NULL;
	r->item.subscription = item->subscription;
	r->item.ask_out = item->ask_out;
	r->item.ask_in = item->ask_in;
	r->item.approved = item->approved;
	if (item->groups.count > 0) {
		r->item.groups.items = pool_alloc(r->pool, item->groups.count * sizeof(char *));
		for (size_t i = 0; i < item->groups.count; i++)
			r->item.groups.items[i] = pool_strdup(r->pool, item->groups.items[i]);
		r->item.groups.count = item->groups.count;
	}
	return req_submit(r);
}

static struct storage_req *sql_roster_remove_op(struct storage *st, const char *host,
                                                const char *user, const char *jid,
                                                storage_done_cb *cb, void *ctx)
{
	struct sql_req *r = req_new(st, STORAGE_OP_ROSTER_REMOVE, host, user, ctx);
	r->base.cb.done = cb;
	r->jid = pool_strdup(r->pool, jid);
	return req_submit(r);
}

static struct storage_req *sql_offline_store_op(struct storage *st, const char *host,
                                                const char *user, const char *from_jid,
                                                const char *stanza_xml, unsigned max_per_user,
                                                storage_done_cb *cb, void *ctx)
{
	struct sql_req *r = req_new(st, STORAGE_OP_OFFLINE_STORE, host, user, ctx);
	r->base.cb.done = cb;
	r->from = pool_strdup(r->pool, from_jid);
	r->stanza = pool_strdup(r->pool, stanza_xml);
	r->max = max_per_user;
	return req_submit(r);
}

static struct storage_req *sql_offline_get_op(struct storage *st, const char *host,
                                              const char *user, storage_offline_cb *cb, void *ctx)
{
	struct sql_req *r = req_new(st, STORAGE_OP_OFFLINE_GET, host, user, ctx);
	r->base.cb.offline = cb;
	return req_submit(r);
}

static struct storage_req *sql_offline_delete_op(struct storage *st, const char *host,
                                                 const char *user, int64_t last_seq,
                                                 storage_done_cb *cb, void *ctx)
{
	struct sql_req *r = req_new(st, STORAGE_OP_OFFLINE_DELETE, host, user, ctx);
	r->base.cb.done = cb;
	r->seq = last_seq;
	return req_submit(r);
}

static struct storage_req *sql_offline_count_op(struct storage *st, const char *host,
                                                const char *user, storage_count_cb *cb, void *ctx)
{
	struct sql_req *r = req_new(st, STORAGE_OP_OFFLINE_COUNT, host, user, ctx);
	r->base.cb.count = cb;
	return req_submit(r);
}

static struct storage_req *sql_vcard_get_op(struct storage *st, const char *host,
                                            const char *user, storage_text_cb *cb, void *ctx)
{
	struct sql_req *r = req_new(st, STORAGE_OP_VCARD_GET, host, user, ctx);
	r->base.cb.text = cb;
	return req_submit(r);
}

static struct storage_req *sql_vcard_set_op(struct storage *st, const char *host,
                                            const char *user, const char *vcard_xml,
                                            storage_done_cb *cb, void *ctx)
{
	struct sql_req *r = req_new(st, STORAGE_OP_VCARD_SET, host, user, ctx);
	r->base.cb.done = cb;
	r->text = pool_strdup(r->pool, vcard_xml);
	return req_submit(r);
}

static struct storage_req *sql_private_get_op(struct storage *st, const char *host,
                                              const char *user, const char *ns,
                                              storage_text_cb *cb, void *ctx)
{
	struct sql_req *r = req_new(st, STORAGE_OP_PRIVATE_GET, host, user, ctx);
	r->base.cb.text = cb;
	r->ns = pool_strdup(r->pool, ns);
	return req_submit(r);
}

static struct storage_req *sql_private_set_op(struct storage *st, const char *host,
                                              const char *user, const struct private_item *items,
                                              size_t count, storage_done_cb *cb, void *ctx)
{
	struct sql_req *r = req_new(st, STORAGE_OP_PRIVATE_SET, host, user, ctx);
	r->base.cb.done = cb;
	r->pitems = pool_alloc(r->pool, count * sizeof(*r->pitems));
	for (size_t i = 0; i < count; i++) {
		r->pitems[i].ns = pool_strdup(r->pool, items[i].ns);
		r->pitems[i].data = pool_strdup(r->pool, items[i].data);
	}
	r->npitems = count;
	return req_submit(r);
}

static struct storage_req *sql_last_get_op(struct storage *st, const char *host,
                                           const char *user, storage_last_cb *cb, void *ctx)
{
	struct sql_req *r = req_new(st, STORAGE_OP_LAST_GET, host, user, ctx);
	r->base.cb.last = cb;
	return req_submit(r);
}

static struct storage_req *sql_last_set_op(struct storage *st, const char *host,
                                           const char *user, int64_t seconds, const char *status,
                                           storage_done_cb *cb, void *ctx)
{
	struct sql_req *r = req_new(st, STORAGE_OP_LAST_SET, host, user, ctx);
	r->base.cb.done = cb;
	r->when = seconds;
	r->text = status != NULL ? pool_strdup(r->pool, status) : NULL;
	return req_submit(r);
}

static struct storage_req *sql_blocklist_get_op(struct storage *st, const char *host,
                                                const char *user, storage_list_cb *cb, void *ctx)
{
	struct sql_req *r = req_new(st, STORAGE_OP_BLOCKLIST_GET, host, user, ctx);
	r->base.cb.list = cb;
	return req_submit(r);
}

static void copy_jids(struct sql_req *r, const char *const *jids, size_t n)
{
	r->jids = n > 0 ? pool_alloc(r->pool, n * sizeof(*r->jids)) : NULL;
	for (size_t i = 0; i < n; i++)
		r->jids[i] = pool_strdup(r->pool, jids[i]);
	r->njids = n;
}

static struct storage_req *sql_blocklist_add_op(struct storage *st, const char *host,
                                                const char *user, const char *const *jids,
                                                size_t n, storage_done_cb *cb, void *ctx)
{
	struct sql_req *r = req_new(st, STORAGE_OP_BLOCKLIST_ADD, host, user, ctx);
	r->base.cb.done = cb;
	copy_jids(r, jids, n);
	return req_submit(r);
}

static struct storage_req *sql_blocklist_remove_op(struct storage *st, const char *host,
                                                   const char *user, const char *const *jids,
                                                   size_t n, storage_done_cb *cb, void *ctx)
{
	struct sql_req *r = req_new(st, STORAGE_OP_BLOCKLIST_REMOVE, host, user, ctx);
	r->base.cb.done = cb;
	copy_jids(r, jids, n);
	return req_submit(r);
}

static struct storage_req *sql_private_list_op(struct storage *st, const char *host,
                                               const char *user, storage_private_list_cb *cb,
                                               void *ctx)
{
	struct sql_req *r = req_new(st, STORAGE_OP_PRIVATE_LIST, host, user, ctx);
	r->base.cb.private_list = cb;
	return req_submit(r);
}

static struct storage_req *sql_privacy_get_op(struct storage *st, const char *host,
                                              const char *user, storage_privacy_cb *cb, void *ctx)
{
	struct sql_req *r = req_new(st, STORAGE_OP_PRIVACY_GET, host, user, ctx);
	r->base.cb.privacy = cb;
	return req_submit(r);
}

static struct storage_req *sql_privacy_set_list_op(struct storage *st, const char *host,
                                                   const char *user, const char *name,
                                                   const struct privacy_item *items, size_t n,
                                                   storage_done_cb *cb, void *ctx)
{
	struct sql_req *r = req_new(st, STORAGE_OP_PRIVACY_SET_LIST, host, user, ctx);
	r->base.cb.done = cb;
	r->lname = pool_strdup(r->pool, name);
	r->prv_in = pool_alloc(r->pool, n * sizeof(*r->prv_in));
	for (size_t i = 0; i < n; i++) {
		r->prv_in[i] = items[i];
		r->prv_in[i].value = items[i].value != NULL ? pool_strdup(r->pool, items[i].value) : NULL;
	}
	r->nprv_in = n;
	return req_submit(r);
}

static struct storage_req *sql_privacy_remove_list_op(struct storage *st, const char *host,
                                                      const char *user, const char *name,
                                                      storage_done_cb *cb, void *ctx)
{
	struct sql_req *r = req_new(st, STORAGE_OP_PRIVACY_REMOVE_LIST, host, user, ctx);
	r->base.cb.done = cb;
	r->lname = pool_strdup(r->pool, name);
	return req_submit(r);
}

static struct storage_req *sql_privacy_set_default_op(struct storage *st, const char *host,
                                                      const char *user, const char *name,
                                                      storage_done_cb *cb, void *ctx)
{
	struct sql_req *r = req_new(st, STORAGE_OP_PRIVACY_SET_DEFAULT, host, user, ctx);
	r->base.cb.done = cb;
	r->lname = name != NULL ? pool_strdup(r->pool, name) : NULL;
	return req_submit(r);
}

static struct storage_req *sql_srg_list_op(struct storage *st, const char *host,
                                           storage_list_cb *cb, void *ctx)
{
	struct sql_req *r = req_new(st, STORAGE_OP_SRG_LIST, host, NULL, ctx);
	r->base.cb.list = cb;
	return req_submit(r);
}

static struct storage_req *sql_srg_get_op(struct storage *st, const char *host, const char *name,
                                          storage_srg_cb *cb, void *ctx)
{
	struct sql_req *r = req_new(st, STORAGE_OP_SRG_GET, host, NULL, ctx);
	r->base.cb.srg = cb;
	r->name = name != NULL ? pool_strdup(r->pool, name) : NULL;
	return req_submit(r);
}

static void copy_strlist(struct sql_req *r, struct strlist *dst, const struct strlist *src)
{
	dst->count = src->count;
	dst->items = src->count > 0 ? pool_alloc(r->pool, src->count * sizeof(char *)) : NULL;
	for (size_t i = 0; i < src->count; i++)
		dst->items[i] = pool_strdup(r->pool, src->items[i]);
}

static struct storage_req *sql_srg_create_op(struct storage *st, const char *host,
                                             const struct srg_group *g, storage_done_cb *cb,
                                             void *ctx)
{
	struct sql_req *r = req_new(st, STORAGE_OP_SRG_CREATE, host, NULL, ctx);
	r->base.cb.done = cb;
	r->grp.name = pool_strdup(r->pool, g->name);
	r->grp.label = pool_strdup(r->pool, g->label != NULL ? g->label : "");
	r->grp.description = pool_strdup(r->pool, g->description != NULL ? g->description : "");
	copy_strlist(r, &r->grp.displayed, &g->displayed);
	copy_strlist(r, &r->grp.members, &g->members);
	return req_submit(r);
}

static struct storage_req *sql_srg_delete_op(struct storage *st, const char *host,
                                             const char *name, storage_done_cb *cb, void *ctx)
{
	struct sql_req *r = req_new(st, STORAGE_OP_SRG_DELETE, host, NULL, ctx);
	r->base.cb.done = cb;
	r->name = pool_strdup(r->pool, name);
	return req_submit(r);
}

static struct storage_req *sql_srg_member_op(struct storage *st, enum storage_op op,
                                             const char *host, const char *group,
                                             const char *member, storage_done_cb *cb, void *ctx)
{
	struct sql_req *r = req_new(st, op, host, NULL, ctx);
	r->base.cb.done = cb;
	r->name = pool_strdup(r->pool, group);
	r->member = pool_strdup(r->pool, member);
	return req_submit(r);
}

static struct storage_req *sql_srg_member_add_op(struct storage *st, const char *host,
                                                 const char *group, const char *member,
                                                 storage_done_cb *cb, void *ctx)
{
	return sql_srg_member_op(st, STORAGE_OP_SRG_MEMBER_ADD, host, group, member, cb, ctx);
}

static struct storage_req *sql_srg_member_remove_op(struct storage *st, const char *host,
                                                    const char *group, const char *member,
                                                    storage_done_cb *cb, void *ctx)
{
	return sql_srg_member_op(st, STORAGE_OP_SRG_MEMBER_REMOVE, host, group, member, cb, ctx);
}

static struct storage_req *sql_srg_user_groups_op(struct storage *st, const char *host,
                                                  const char *bare_jid, storage_list_cb *cb,
                                                  void *ctx)
{
	struct sql_req *r = req_new(st, STORAGE_OP_SRG_USER_GROUPS, host, NULL, ctx);
	r->base.cb.list = cb;
	r->member = pool_strdup(r->pool, bare_jid);
	return req_submit(r);
}

static struct storage_req *sql_vcard_search_op(struct storage *st, const char *host,
                                               const struct vcard_term *terms, size_t n,
                                               bool listed_only, unsigned limit,
                                               storage_vcard_search_cb *cb, void *ctx)
{
	struct sql_req *r = req_new(st, STORAGE_OP_VCARD_SEARCH, host, NULL, ctx);
	r->base.cb.search = cb;
	r->terms = n > 0 ? pool_alloc(r->pool, n * sizeof(*r->terms)) : NULL;
	for (size_t i = 0; i < n; i++) {
		char *folded = vcard_fold(terms[i].value);
		r->terms[i].field = terms[i].field;
		r->terms[i].value = pool_strdup(r->pool, folded);
		r->terms[i].prefix = terms[i].prefix;
		free(folded);
	}
	r->nterms = n;
	r->listed_only = listed_only;
	r->limit = limit;
	return req_submit(r);
}

static struct storage_req *sql_vcard_reindex_op(struct storage *st, const char *host,
                                                storage_count_cb *cb, void *ctx)
{
	struct sql_req *r = req_new(st, STORAGE_OP_VCARD_REINDEX, host, NULL, ctx);
	r->base.cb.count = cb;
	return req_submit(r);
}

/* ---- open and close (loop thread, synchronous) ------------------------------------ */

static bool sql_accepts(const char *driver)
{
	return sql_driver_find(driver) != NULL;
}

/* Read dir/file into a malloc'd string; NULL if it cannot be read. */
static char *read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return NULL;
	struct buf b = {0};
	char chunk[4096];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_append(&b, chunk, n);
	bool err = ferror(f);
	fclose(f);
	if (err) {
		buf_free(&b);
		return NULL;
	}
	if (b.data == NULL)
		buf_append(&b, "", 0);
	return buf_steal(&b);
}

/* Where the SQL files are looked for, in order: $PARLEY_SQL_DIR when set,
 * else the installed directory, then ./sql.  Returns how many. */
static size_t sql_dirs(const char *dirs[2])
{
	const char *env = getenv("PARLEY_SQL_DIR");
	size_t ndirs = 0;
	if (env != NULL && *env != '\0') {
		dirs[ndirs++] = env;
	} else {
		dirs[ndirs++] = PARLEY_SQL_DIR;
		if (strcmp(PARLEY_SQL_DIR, "./sql") != 0)
			dirs[ndirs++] = "./sql";
	}
	return ndirs;
}

/* The path of an SQL file for messages: the first directory that has it,
 * else where it would be installed.  Malloc'd. */
static char *sql_file_path(const char *file)
{
	const char *dirs[2];
	size_t ndirs = sql_dirs(dirs);
	for (size_t i = 0; i < ndirs; i++) {
		char *path = xasprintf("%s/%s", dirs[i], file);
		if (access(path, R_OK) == 0)
			return path;
		free(path);
	}
	return xasprintf("%s/%s", dirs[0], file);
}

/* The schema script of the dialect (see sql_dirs for where). */
static char *read_schema(const struct sql_dialect *dia, char **path_r, char **error_r)
{
	const char *dirs[2];
	size_t ndirs = sql_dirs(dirs);
	struct buf tried = {0};
	for (size_t i = 0; i < ndirs; i++) {
		char *path = xasprintf("%s/%s", dirs[i], dia->schema_file);
		char *text = read_file(path);
		if (text != NULL) {
			*path_r = path;
			buf_free(&tried);
			return text;
		}
		buf_printf(&tried, "%s%s (%s)", i > 0 ? ", " : "", path, strerror(errno));
		free(path);
	}
	*error_r = xasprintf("cannot read the schema file: tried %s; set PARLEY_SQL_DIR to the "
	                     "directory of %s", tried.data, dia->schema_file);
	buf_free(&tried);
	return NULL;
}

static int create_schema(const struct sql_driver_vfuncs *d, struct sql_conn *c, const char *desc,
                         const char *script, const char *schema_path, char **error_r)
{
	if (d->begin(c, true) < 0 || d->exec(c, script) < 0 || d->commit(c) < 0) {
		*error_r = xasprintf("database %s: cannot create the schema from %s: %s", desc, schema_path,
		                     d->error_message(c));
		d->rollback(c);
		return -1;
	}
	log_notice("storage %s: new database created from %s (schema version %d)", desc, schema_path,
	           SQL_SCHEMA_VERSION);
	return 0;
}

static int check_version(const struct sql_driver_vfuncs *d, struct sql_conn *c, const char *desc,
                         char **error_r)
{
	const struct sql_dialect *dia = d->conn_dialect != NULL ? d->conn_dialect(c) : d->dialect;
	struct sql_stmt *s = d->prepare(c, "SELECT version FROM schema_version");
	enum sql_step st = s != NULL ? d->step(s) : SQL_STEP_ERROR;
	if (st == SQL_STEP_ERROR) {
		*error_r = xasprintf("database %s has no Parley schema (reading schema_version: %s): "
		                     "create it from sql/%s with the database's own client", desc,
		                     d->error_message(c), dia->schema_file);
		if (s != NULL)
			d->reset(s);
		return -1;
	}
	if (st == SQL_STEP_DONE) {
		*error_r = xasprintf("database %s: the schema_version table is empty (it must hold one "
		                     "row, the schema version): if the schema is Parley's, insert the version of "
		                     "the sql/ file it was created from", desc);
		d->reset(s);
		return -1;
	}
	int64_t v = d->column_int64(s, 0);
	st = d->step(s);
	d->reset(s);
	if (st != SQL_STEP_DONE) {
		*error_r = xasprintf("database %s: the schema_version table must hold exactly one row", desc);
		return -1;
	}
	if (v < SQL_SCHEMA_VERSION) {
		/* Name the scripts that take it to our version, in order. */
		struct buf todo = {0};
		const char *const *mig = dia->migrations;
		for (int64_t from = v < 1 ? 1 : v; mig != NULL && from < SQL_SCHEMA_VERSION; from++) {
			char *path = sql_file_path(mig[from - 1]);
			buf_printf(&todo, "%s%s", todo.len > 0 ? ", then " : "", path);
			free(path);
		}
		if (v >= 1 && todo.len > 0)
			*error_r = xasprintf("database %s has schema version %lld, this parleyd needs %d: "
			                     "apply %s to it with the database's own client "
			                     "(sqlite3, psql, ...) or run `parleyctl db migrate`, then start again", desc, (long long)v,
			                     SQL_SCHEMA_VERSION, todo.data);
		else
			*error_r = xasprintf("database %s has schema version %lld, this parleyd needs %d: "
			                     "it was not made from a Parley schema file", desc, (long long)v,
			                     SQL_SCHEMA_VERSION);
		buf_free(&todo);
		return -1;
	}
	if (v > SQL_SCHEMA_VERSION) {
		*error_r = xasprintf("database %s has schema version %lld, this parleyd needs %d: "
		                     "the database belongs to a newer parleyd", desc, (long long)v,
		                     SQL_SCHEMA_VERSION);
		return -1;
	}
	return 0;
}

static int sql_open(struct ev_loop *loop, const struct storage_config *cfg, struct storage **st_r,
                    char **error_r)
{
	const struct sql_driver_vfuncs *d = sql_driver_find(cfg->driver != NULL ? cfg->driver : "sqlite");
	if (d == NULL) {
		*error_r = xasprintf("unknown SQL driver '%s'", cfg->driver);
		return -1;
	}
	char *desc = d->describe(cfg);
	/* A driver that serves several dialects (odbc) says which once
	 * connected; until then its .dialect (portable upserts) stands. */
	const struct sql_dialect *dia = d->dialect;
	char *script = NULL, *schema_path = NULL, *err = NULL;
	bool is_new = d->is_new != NULL && d->is_new(cfg);
	if (is_new && (script = read_schema(d->dialect, &schema_path, &err)) == NULL) {
		*error_r = xasprintf("database %s does not exist and %s", desc, err);
		goto fail;
	}
	struct sql_conn *c = d->connect(cfg, &err);
	bool down = false;
	if (c == NULL && d->is_new == NULL) {
		/* A database server that is down now may come back: start
		 * degraded (requests fail with a temporary error) and let the
		 * workers reconnect; the version is checked when they do. */
		log_error("storage %s: cannot connect at start: %s; starting without it: the hosts on "
		          "this store are degraded until it can be reached (retried in the background)",
		          desc, err);
		down = true;
	} else if (c == NULL) {
		*error_r = xasprintf("database %s: %s", desc, err);
		goto fail;
	} else {
		if ((is_new && create_schema(d, c, desc, script, schema_path, error_r) < 0) ||
		    check_version(d, c, desc, error_r) < 0) {
			d->disconnect(c);
			goto fail;
		}
		if (d->conn_dialect != NULL)
			dia = d->conn_dialect(c);
		d->disconnect(c);
	}

	struct sql_storage *ss = xcalloc(1, sizeof(*ss));
	storage_base_init(&ss->base, &storage_sql_vfuncs, loop, desc);
	pthread_mutex_init(&ss->lock, NULL);
	if (down) {
		ss->down = true;
		ss->down_since = mono_now();
		ss->retry_at = ss->down_since;      /* the first worker tries at once */
		ss->backoff = 1.0;
		ss->last_error = err;
		err = NULL;
	}
	ss->drv = d;
	ss->upsert = dia->upsert;
	ss->cfg = *cfg;
	ss->cfg.driver = xstrdup(d->name);
	ss->cfg.path = cfg->path != NULL ? xstrdup(cfg->path) : NULL;
	ss->cfg.dsn = cfg->dsn != NULL ? xstrdup(cfg->dsn) : NULL;
	ss->cfg.password = cfg->password != NULL ? xstrdup(cfg->password) : NULL;
	ss->cfg.password_file = cfg->password_file != NULL ? xstrdup(cfg->password_file) : NULL;
	ss->cfg.dialect = cfg->dialect != NULL ? xstrdup(cfg->dialect) : NULL;
	if (ss->cfg.pool_size == 0)
		ss->cfg.pool_size = 2;
	if (ss->cfg.timeout <= 0)
		ss->cfg.timeout = 10;
	ss->workers = worker_group_new(loop, d->name, ss->cfg.pool_size, ss->cfg.queue_max,
	                               sql_thread_init, sql_thread_deinit, ss);
	*st_r = &ss->base;
	free(desc);
	free(script);
	free(schema_path);
	return 0;
fail:
	free(err);
	free(desc);
	free(script);
	free(schema_path);
	return -1;
}

static void sql_close(struct storage *st)
{
	struct sql_storage *ss = (struct sql_storage *)st;
	/* Every queued job runs (or expires) and its callback runs; callbacks
	 * that ask for more get a temporary failure (closing). */
	worker_group_free(&ss->workers);
	storage_base_deinit(st);
	free(ss->cfg.driver);
	free(ss->cfg.path);
	free(ss->cfg.dsn);
	if (ss->cfg.password != NULL)
		explicit_bzero(ss->cfg.password, strlen(ss->cfg.password));
	free(ss->cfg.password);
	free(ss->cfg.password_file);
	free(ss->cfg.dialect);
	free(ss->last_error);
	pthread_mutex_destroy(&ss->lock);
	free(ss);
}

/* Loop thread: the workers' view of the database, for parleyctl. */
static void sql_status(struct storage *st, struct buf *out)
{
	struct sql_storage *ss = (struct sql_storage *)st;
	pthread_mutex_lock(&ss->lock);
	double now = mono_now();
	if (ss->down)
		buf_printf(out, "DOWN for %.0f s (%s); next connection attempt in %.1f s; %u of %u "
		                "connections open", now - ss->down_since,
		           ss->last_error != NULL ? ss->last_error : "?",
		           ss->retry_at > now ? ss->retry_at - now : 0.0, ss->nconns, ss->cfg.pool_size);
	else
		buf_printf(out, "up: %u of %u connections open", ss->nconns, ss->cfg.pool_size);
	pthread_mutex_unlock(&ss->lock);
	if (ss->workers != NULL)
		buf_printf(out, ", %u jobs queued or running", worker_group_pending(ss->workers));
}

/* ---- parleyctl db (blocking; any thread, no loop objects) ------------------------------ */

int sql_db_schema(const char *driver, char **text_r, char **path_r, char **error_r)
{
	const struct sql_driver_vfuncs *d = sql_driver_find(driver);
	if (d == NULL) {
		bool built = false;
		*error_r = sql_driver_known(driver, &built)
		           ? xasprintf("the %s driver is not built into this Parley", driver)
		           : xasprintf("unknown storage driver '%s'", driver);
		return -1;
	}
	*text_r = read_schema(d->dialect, path_r, error_r);
	return *text_r != NULL ? 0 : -1;
}

/* The one row of schema_version: 0 and *v_r, or -1 with a malloc'd error. */
static int read_version(const struct sql_driver_vfuncs *d, struct sql_conn *c, int64_t *v_r,
                        char **error_r)
{
	struct sql_stmt *s = d->prepare(c, "SELECT version FROM schema_version");
	enum sql_step st = s != NULL ? d->step(s) : SQL_STEP_ERROR;
	if (st == SQL_STEP_ERROR) {
		*error_r = xasprintf("no Parley schema (reading schema_version: %s)", d->error_message(c));
		if (s != NULL)
			d->reset(s);
		return -1;
	}
	if (st != SQL_STEP_ROW) {
		d->reset(s);
		*error_r = xstrdup("the schema_version table is empty");
		return -1;
	}
	*v_r = d->column_int64(s, 0);
	st = d->step(s);
	d->reset(s);
	if (st != SQL_STEP_DONE) {
		*error_r = xstrdup("the schema_version table holds more than one row");
		return -1;
	}
	return 0;
}

int sql_db_report(const struct storage_config *cfg, bool migrate, struct buf *out)
{
	const struct sql_driver_vfuncs *d = sql_driver_find(cfg->driver != NULL ? cfg->driver : "sqlite");
	if (d == NULL) {
		buf_printf(out, "  driver: %s is not built into this Parley\n", cfg->driver);
		return -1;
	}
	const struct sql_dialect *dia = d->dialect;
	char *schema_path = sql_file_path(dia->schema_file);
	buf_printf(out, "  driver: %s (schema file %s)\n", d->name, schema_path);
	free(schema_path);
	if (d->is_new != NULL && d->is_new(cfg)) {
		buf_printf(out, "  database: does not exist yet (parleyd creates it from the schema file "
		                "at start)\n");
		return 0;
	}
	char *err = NULL;
	struct sql_conn *c = d->connect(cfg, &err);
	if (c == NULL) {
		buf_printf(out, "  connection: FAILED: %s\n", err);
		free(err);
		return -1;
	}
	buf_printf(out, "  connection: ok\n");
	int rc = 0;
	int64_t v = 0;
	if (read_version(d, c, &v, &err) < 0) {
		buf_printf(out, "  schema: %s; expected version %d: create it from %s\n", err,
		           SQL_SCHEMA_VERSION, dia->schema_file);
		free(err);
		d->disconnect(c);
		return -1;
	}
	buf_printf(out, "  schema version: %lld found, %d expected", (long long)v, SQL_SCHEMA_VERSION);
	if (v == SQL_SCHEMA_VERSION) {
		buf_printf(out, " (up to date)\n");
	} else if (v > SQL_SCHEMA_VERSION) {
		buf_printf(out, " (the database belongs to a newer Parley)\n");
		rc = -1;
	} else if (v < 1) {
		buf_printf(out, " (not made from a Parley schema file)\n");
		rc = -1;
	} else if (!migrate) {
		buf_printf(out, "\n  to apply, in order (or run: parleyctl db migrate):\n");
		for (int64_t from = v; from < SQL_SCHEMA_VERSION; from++) {
			char *path = sql_file_path(dia->migrations[from - 1]);
			buf_printf(out, "    %s\n", path);
			free(path);
		}
		rc = -1;
	} else {
		buf_printf(out, "\n");
		for (int64_t from = v; from < SQL_SCHEMA_VERSION; from++) {
			char *path = sql_file_path(dia->migrations[from - 1]);
			char *script = read_file(path);
			if (script == NULL) {
				buf_printf(out, "  migration: cannot read %s: %s\n", path, strerror(errno));
				free(path);
				rc = -1;
				break;
			}
			int erc = d->exec(c, script);
			free(script);
			int64_t now = 0;
			if (erc < 0) {
				buf_printf(out, "  migration: %s FAILED: %s (nothing of it was applied; the "
				                "database stays at version %lld)\n", path, d->error_message(c),
				           (long long)from);
				d->rollback(c);
				free(path);
				rc = -1;
				break;
			}
			if (read_version(d, c, &now, &err) < 0 || now != from + 1) {
				buf_printf(out, "  migration: %s ran but the version is %s%lld, not %lld\n", path,
				           err != NULL ? err : "", (long long)now, (long long)(from + 1));
				free(err);
				free(path);
				rc = -1;
				break;
			}
			buf_printf(out, "  applied %s: now version %lld\n", path, (long long)now);
			log_notice("storage %s: applied %s (schema version %lld)", cfg->dsn != NULL ?
			           cfg->dsn : (cfg->path != NULL ? cfg->path : ""), path, (long long)now);
			free(path);
		}
	}
	d->disconnect(c);
	return rc;
}

/* Test hook (storage-private.h): write upserts another dialect's way. */
void storage_sql_test_set_upsert(struct storage *st, int style)
{
	assert(st->v == &storage_sql_vfuncs);
	((struct sql_storage *)st)->upsert = (enum sql_upsert)style;
}

const struct storage_vfuncs storage_sql_vfuncs = {
	.name = "sql",
	.accepts = sql_accepts,
	.open = sql_open,
	.close = sql_close,
	.status = sql_status,
	.cancel = sql_cancel,
	.req_free = sql_req_free,
	.account_get = sql_account_get_op,
	.account_create = sql_account_create_op,
	.account_update = sql_account_update_op,
	.account_remove = sql_account_remove_op,
	.account_list = sql_account_list_op,
	.account_count = sql_account_count_op,
	.roster_get = sql_roster_get_op,
	.roster_set = sql_roster_set_op,
	.roster_remove = sql_roster_remove_op,
	.offline_store = sql_offline_store_op,
	.offline_get = sql_offline_get_op,
	.offline_delete_upto = sql_offline_delete_op,
	.offline_count = sql_offline_count_op,
	.vcard_get = sql_vcard_get_op,
	.vcard_set = sql_vcard_set_op,
	.private_get = sql_private_get_op,
	.private_set = sql_private_set_op,
	.last_get = sql_last_get_op,
	.last_set = sql_last_set_op,
	.blocklist_get = sql_blocklist_get_op,
	.blocklist_add = sql_blocklist_add_op,
	.blocklist_remove = sql_blocklist_remove_op,
	.privacy_get = sql_privacy_get_op,
	.private_list = sql_private_list_op,
	.privacy_set_list = sql_privacy_set_list_op,
	.privacy_remove_list = sql_privacy_remove_list_op,
	.privacy_set_default = sql_privacy_set_default_op,
	.srg_list = sql_srg_list_op,
	.srg_get = sql_srg_get_op,
	.srg_create = sql_srg_create_op,
	.srg_delete = sql_srg_delete_op,
	.srg_member_add = sql_srg_member_add_op,
	.srg_member_remove = sql_srg_member_remove_op,
	.srg_user_groups = sql_srg_user_groups_op,
	.vcard_search = sql_vcard_search_op,
	.vcard_reindex = sql_vcard_reindex_op,
};
