/*
 * The SQLite driver of sql.h: the embedded default store.
 *
 * Threads: each connection belongs to one worker thread (opened with
 * SQLITE_OPEN_NOMUTEX: SQLite does no locking of its own for it); at
 * start-up sql-store.c also uses one connection on the loop thread before
 * the loop runs.  Several connections (one per worker) share the file
 * through SQLite's file locks.
 *
 * Settings of every connection, and why:
 * - journal_mode=WAL: readers do not block the writer nor the writer
 *   readers, so one slow roster read never holds back a log-in elsewhere;
 * - synchronous=FULL: in WAL mode NORMAL does not sync the log at each
 *   commit, so a power cut can lose the last transactions although they
 *   were reported done.  Parley tells a sender that an offline message is
 *   stored, and a user that their password changed, right after the commit:
 *   that answer must survive a crash.  FULL costs one fsync of the WAL per
 *   write transaction, which our write rate easily affords;
 * - foreign_keys=ON: roster_groups rows follow their roster item;
 * - cache_size 16 MiB per connection (SQLite's default is 2 MiB): the
 *   message archive's index inserts touch a leaf per owner, and with the
 *   small cache each group commit read them back from the file (pread and
 *   copies were a tenth of the archive's cost); the cache fills only as
 *   far as pages are used;
 * - busy_timeout = the storage timeout: a writer waits for another instead
 *   of failing at once; past it the error is temporary (SQLITE_BUSY).
 * Writers of one process take turns on a mutex shared by the connections
 * to the same file before they ask SQLite for its write lock (BEGIN
 * IMMEDIATE, or the first step of a writing statement outside a
 * transaction) and give it back after the commit or rollback.  SQLite's
 * own busy handler polls with sleeps of up to 100 ms, so two workers
 * writing at once would wait far longer than the other's transaction
 * lasts; the mutex wakes the next writer as soon as the lock is free, and
 * the busy timeout is left for other processes (parleyctl) using the file.
 * Prepared statements are cached per connection, keyed by their SQL text
 * (sql-stmtcache.h).
 */
#include "storage/sql.h"
#include "storage/sql-stmtcache.h"
#include "lib/log.h"

#include <sqlite3.h>
#include <sys/stat.h>
#include <errno.h>
#include <pthread.h>

/* The writers' mutex of one database file, shared by its connections. */
struct sqlite_file {
	struct sqlite_file *next;
	char *path;
	unsigned refs;
	pthread_mutex_t write;
};

static pthread_mutex_t files_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sqlite_file *files;

struct sqlite_stmt {
	struct sql_stmtcache_entry cached; /* in conn->stmts */
	struct sqlite_conn *conn;
	sqlite3_stmt *stmt;
	uint64_t changes;
};

struct sqlite_conn {
	sqlite3 *db;
	struct sqlite_file *file;
	bool writing;                   /* holds file->write */
	struct sqlite_stmt *autocommit; /* the writing statement it holds it for */
	struct sql_stmtcache stmts;     /* the statement cache */
	int last_code;                  /* extended result code of the last error */
	char *last_msg;
};

#define CONN(c) ((struct sqlite_conn *)(void *)(c))
#define STMT(s) ((struct sqlite_stmt *)(void *)(s))

static void set_error(struct sqlite_conn *c, int code, const char *msg)
{
	c->last_code = code;
	free(c->last_msg);
	c->last_msg = xstrdup(msg != NULL ? msg : sqlite3_errstr(code));
}

static void set_db_error(struct sqlite_conn *c)
{
	set_error(c, sqlite3_extended_errcode(c->db), sqlite3_errmsg(c->db));
}

static void clear_error(struct sqlite_conn *c)
{
	c->last_code = SQLITE_OK;
}

static struct sqlite_file *file_ref(const char *path)
{
	pthread_mutex_lock(&files_lock);
	struct sqlite_file *f = files;
	while (f != NULL && strcmp(f->path, path) != 0)
		f = f->next;
	if (f == NULL) {
		f = xcalloc(1, sizeof(*f));
		f->path = xstrdup(path);
		pthread_mutex_init(&f->write, NULL);
		f->next = files;
		files = f;
	}
	f->refs++;
	pthread_mutex_unlock(&files_lock);
	return f;
}

static void file_unref(struct sqlite_file *f)
{
	if (f == NULL)
		return;
	pthread_mutex_lock(&files_lock);
	if (--f->refs == 0) {
		struct sqlite_file **pp = &files;
		while (*pp != f)
			pp = &(*pp)->next;
		*pp = f->next;
		pthread_mutex_destroy(&f->write);
		free(f->path);
		free(f);
	}
	pthread_mutex_unlock(&files_lock);
}

static void write_lock(struct sqlite_conn *c)
{
	if (!c->writing) {
		pthread_mutex_lock(&c->file->write);
		c->writing = true;
	}
}

static void write_unlock(struct sqlite_conn *c)
{
	if (c->writing) {
		c->writing = false;
		c->autocommit = NULL;
		pthread_mutex_unlock(&c->file->write);
	}
}

/* After a statement ended: a writing statement outside a transaction has
 * committed (or failed), and the turn goes to the next writer. */
static void statement_ended(struct sqlite_stmt *s)
{
	struct sqlite_conn *c = s->conn;
	if (c->autocommit == s && sqlite3_get_autocommit(c->db))
		write_unlock(c);
}

static char *sqlite_describe(const struct storage_config *cfg)
{
	return xasprintf("sqlite:%s", cfg->path != NULL ? cfg->path : "");
}

static bool sqlite_is_new(const struct storage_config *cfg)
{
	struct stat sb;
	if (cfg->path == NULL)
		return false;
	if (stat(cfg->path, &sb) < 0)
		return errno == ENOENT;
	/* An empty file (a creation that failed half-way) counts as new. */
	return S_ISREG(sb.st_mode) && sb.st_size == 0;
}

static int exec_simple(struct sqlite_conn *c, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(c->db, sql, NULL, NULL, &msg);
	if (rc != SQLITE_OK) {
		set_error(c, sqlite3_extended_errcode(c->db), msg);
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

static void stmt_free(struct sql_stmtcache_entry *e, void *ctx)
{
	struct sqlite_stmt *s = SQL_STMTCACHE_OWNER(e, struct sqlite_stmt, cached);
	sqlite3_finalize(s->stmt);
	free(s);
}

static void sqlite_disconnect(struct sql_conn *conn)
{
	struct sqlite_conn *c = CONN(conn);
	if (c == NULL)
		return;
	sql_stmtcache_free(&c->stmts, stmt_free, NULL);
	sqlite3_close(c->db);
	write_unlock(c);
	file_unref(c->file);
	free(c->last_msg);
	free(c);
}

static struct sql_conn *sqlite_connect(const struct storage_config *cfg, char **error_r)
{
	if (cfg->path == NULL || *cfg->path == '\0') {
		*error_r = xstrdup("sqlite: no database path (storage.path)");
		return NULL;
	}
	if (strcmp(cfg->path, ":memory:") == 0 || str_has_prefix(cfg->path, "file:")) {
		*error_r = xasprintf("sqlite: '%s': give the path of a database file (every worker "
		                     "thread opens its own connection to it)",
		                     cfg->path);
		return NULL;
	}
	struct sqlite_conn *c = xcalloc(1, sizeof(*c));
	c->file = file_ref(cfg->path);
	int rc = sqlite3_open_v2(cfg->path, &c->db,
	                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		*error_r = xasprintf("sqlite: cannot open %s: %s", cfg->path,
		                     c->db != NULL ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
		sqlite3_close(c->db);
		file_unref(c->file);
		free(c);
		return NULL;
	}
	sqlite3_extended_result_codes(c->db, 1);
	double t = cfg->timeout > 0 ? cfg->timeout : 10;
	sqlite3_busy_timeout(c->db, t * 1000 > 600000 ? 600000 : (int)(t * 1000));
	if (exec_simple(c, "PRAGMA journal_mode=WAL") < 0)
		log_warning("sqlite %s: cannot use WAL mode (%s); using the rollback journal", cfg->path,
		            c->last_msg);
	if (exec_simple(c, "PRAGMA synchronous=FULL") < 0 || exec_simple(c, "PRAGMA foreign_keys=ON") < 0 ||
	    exec_simple(c, "PRAGMA cache_size=-16384") < 0) {
		*error_r = xasprintf("sqlite: cannot set up %s: %s", cfg->path, c->last_msg);
		sqlite_disconnect((struct sql_conn *)(void *)c);
		return NULL;
	}
	clear_error(c);
	return (struct sql_conn *)(void *)c;
}

static int sqlite_exec(struct sql_conn *conn, const char *script)
{
	return exec_simple(CONN(conn), script);
}

static struct sql_stmt *sqlite_prepare(struct sql_conn *conn, const char *sql)
{
	struct sqlite_conn *c = CONN(conn);
	struct sql_stmtcache_entry *e = sql_stmtcache_find(&c->stmts, sql);
	if (e != NULL) {
		struct sqlite_stmt *s = SQL_STMTCACHE_OWNER(e, struct sqlite_stmt, cached);
		sqlite3_reset(s->stmt);
		statement_ended(s);
		sqlite3_clear_bindings(s->stmt);
		s->changes = 0;
		return (struct sql_stmt *)(void *)s;
	}
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
	if (rc != SQLITE_OK) {
		set_db_error(c);
		sqlite3_finalize(st);
		return NULL;
	}
	struct sqlite_stmt *s = xcalloc(1, sizeof(*s));
	s->conn = c;
	s->stmt = st;
	sql_stmtcache_add(&c->stmts, &s->cached, sql);
	return (struct sql_stmt *)(void *)s;
}

static int bind_rc(struct sqlite_stmt *s, int rc)
{
	if (rc == SQLITE_OK)
		return 0;
	set_db_error(s->conn);
	return -1;
}

static int sqlite_bind_text(struct sql_stmt *st, unsigned idx, const char *value)
{
	struct sqlite_stmt *s = STMT(st);
	if (value == NULL)
		return bind_rc(s, sqlite3_bind_null(s->stmt, (int)idx));
	return bind_rc(s, sqlite3_bind_text(s->stmt, (int)idx, value, -1, SQLITE_TRANSIENT));
}

static int sqlite_bind_int64(struct sql_stmt *st, unsigned idx, int64_t value)
{
	struct sqlite_stmt *s = STMT(st);
	return bind_rc(s, sqlite3_bind_int64(s->stmt, (int)idx, value));
}

static int sqlite_bind_blob(struct sql_stmt *st, unsigned idx, const void *data, size_t len)
{
	struct sqlite_stmt *s = STMT(st);
	return bind_rc(s, sqlite3_bind_blob64(s->stmt, (int)idx, data, len, SQLITE_TRANSIENT));
}

static int sqlite_bind_null(struct sql_stmt *st, unsigned idx)
{
	struct sqlite_stmt *s = STMT(st);
	return bind_rc(s, sqlite3_bind_null(s->stmt, (int)idx));
}

static enum sql_step sqlite_step(struct sql_stmt *st)
{
	struct sqlite_stmt *s = STMT(st);
	struct sqlite_conn *c = s->conn;
	if (!c->writing && !sqlite3_stmt_readonly(s->stmt) && !sqlite3_stmt_busy(s->stmt)) {
		/* A write outside BEGIN IMMEDIATE: its turn lasts until it ends,
		 * or until the transaction it is part of ends. */
		write_lock(c);
		if (sqlite3_get_autocommit(c->db))
			c->autocommit = s;
	}
	int rc = sqlite3_step(s->stmt);
	if (rc == SQLITE_ROW)
		return SQL_STEP_ROW;
	if (rc == SQLITE_DONE) {
		s->changes = (uint64_t)sqlite3_changes(c->db);
		statement_ended(s);
		return SQL_STEP_DONE;
	}
	set_db_error(c);
	/* Release the statement's locks now; the error stays on the connection. */
	sqlite3_reset(s->stmt);
	statement_ended(s);
	return SQL_STEP_ERROR;
}

static bool sqlite_column_is_null(struct sql_stmt *st, unsigned col)
{
	return sqlite3_column_type(STMT(st)->stmt, (int)col) == SQLITE_NULL;
}

static const char *sqlite_column_text(struct sql_stmt *st, unsigned col)
{
	return (const char *)sqlite3_column_text(STMT(st)->stmt, (int)col);
}

static int64_t sqlite_column_int64(struct sql_stmt *st, unsigned col)
{
	return sqlite3_column_int64(STMT(st)->stmt, (int)col);
}

static const void *sqlite_column_blob(struct sql_stmt *st, unsigned col, size_t *len_r)
{
	struct sqlite_stmt *s = STMT(st);
	const void *p = sqlite3_column_blob(s->stmt, (int)col);
	*len_r = (size_t)sqlite3_column_bytes(s->stmt, (int)col);
	return p;
}

static uint64_t sqlite_changes(struct sql_stmt *st)
{
	return STMT(st)->changes;
}

static void sqlite_reset(struct sql_stmt *st)
{
	struct sqlite_stmt *s = STMT(st);
	sqlite3_reset(s->stmt);
	sqlite3_clear_bindings(s->stmt);
	statement_ended(s);
}

static int run_cached(struct sqlite_conn *c, const char *sql)
{
	struct sql_stmt *st = sqlite_prepare((struct sql_conn *)(void *)c, sql);
	if (st == NULL)
		return -1;
	enum sql_step r = sqlite_step(st);
	sqlite_reset(st);
	return r == SQL_STEP_ERROR ? -1 : 0;
}

static int sqlite_begin(struct sql_conn *conn, bool write)
{
	/* IMMEDIATE takes the write lock at once: a deferred transaction that
	 * reads and then writes can hit SQLITE_BUSY at the write with no way
	 * for busy_timeout to help. */
	struct sqlite_conn *c = CONN(conn);
	if (write)
		write_lock(c);
	int r = run_cached(c, write ? "BEGIN IMMEDIATE" : "BEGIN");
	if (r < 0 && sqlite3_get_autocommit(c->db))
		write_unlock(c);
	return r;
}

static int sqlite_commit(struct sql_conn *conn)
{
	struct sqlite_conn *c = CONN(conn);
	int r = run_cached(c, "COMMIT");
	/* A failed COMMIT may leave the transaction open: the rollback that
	 * follows ends the turn then. */
	if (sqlite3_get_autocommit(c->db))
		write_unlock(c);
	return r;
}

static void sqlite_rollback(struct sql_conn *conn)
{
	struct sqlite_conn *c = CONN(conn);
	if (sqlite3_get_autocommit(c->db)) {
		write_unlock(c);
		return; /* nothing open (SQLite may have rolled back by itself) */
	}
	int code = c->last_code;
	char *msg = c->last_msg != NULL ? xstrdup(c->last_msg) : NULL;
	if (run_cached(c, "ROLLBACK") < 0)
		log_warning("sqlite: rollback failed: %s", c->last_msg);
	if (sqlite3_get_autocommit(c->db))
		write_unlock(c);
	/* Keep the error that caused the rollback. */
	set_error(c, code, msg);
	free(msg);
}

static enum sql_error sqlite_error_class(struct sql_conn *conn)
{
	struct sqlite_conn *c = CONN(conn);
	int code = c->last_code;
	switch (code & 0xff) {
	case SQLITE_OK:
	case SQLITE_ROW:
	case SQLITE_DONE: return SQL_ERR_NONE;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
	case SQLITE_IOERR:
	case SQLITE_FULL:
	case SQLITE_NOMEM:
	case SQLITE_PROTOCOL:
	case SQLITE_INTERRUPT:
	case SQLITE_CANTOPEN: return SQL_ERR_TEMPORARY;
	case SQLITE_CONSTRAINT:
		if (code == SQLITE_CONSTRAINT_PRIMARYKEY || code == SQLITE_CONSTRAINT_UNIQUE)
			return SQL_ERR_CONSTRAINT;
		return SQL_ERR_PERMANENT;
	default: return SQL_ERR_PERMANENT;
	}
}

static const char *sqlite_error_message(struct sql_conn *conn)
{
	struct sqlite_conn *c = CONN(conn);
	return c->last_msg != NULL && c->last_code != SQLITE_OK ? c->last_msg : "no error";
}

static const char *const sqlite_migrations[] = {
	"migrations/sqlite/002-offline.sql",       "migrations/sqlite/003-user-data.sql",
	"migrations/sqlite/004-blocklist.sql",     "migrations/sqlite/005-privacy.sql",
	"migrations/sqlite/006-shared-roster.sql", "migrations/sqlite/007-vcard-search.sql",
	"migrations/sqlite/008-muc.sql",           "migrations/sqlite/009-pubsub.sql",
	"migrations/sqlite/010-mam.sql",           "migrations/sqlite/011-sha512-fast.sql",
	"migrations/sqlite/012-fast-seed.sql",     "migrations/sqlite/013-scram-cache.sql",
	"migrations/sqlite/014-offline-token.sql", "migrations/sqlite/015-subscribe-stanza.sql",
};
_Static_assert(ARRAY_SIZE(sqlite_migrations) == SQL_SCHEMA_VERSION - 1,
               "one migration script per schema version after the first");

static const struct sql_dialect sqlite_dialect = {
	.name = "sqlite",
	.schema_file = "sqlite.sql",
	.upsert = SQL_UPSERT_ON_CONFLICT,
	.migrations = sqlite_migrations,
};

const struct sql_driver_vfuncs sql_driver_sqlite = {
	.name = "sqlite",
	.dialect = &sqlite_dialect,
	.describe = sqlite_describe,
	.is_new = sqlite_is_new,
	.connect = sqlite_connect,
	.disconnect = sqlite_disconnect,
	/* no is_broken: a file, not a server, so there is nothing to
	 * reconnect to and no answer to lose */
	.exec = sqlite_exec,
	.prepare = sqlite_prepare,
	.bind_text = sqlite_bind_text,
	.bind_int64 = sqlite_bind_int64,
	.bind_blob = sqlite_bind_blob,
	.bind_null = sqlite_bind_null,
	.step = sqlite_step,
	.column_is_null = sqlite_column_is_null,
	.column_text = sqlite_column_text,
	.column_int64 = sqlite_column_int64,
	.column_blob = sqlite_column_blob,
	.changes = sqlite_changes,
	.reset = sqlite_reset,
	.begin = sqlite_begin,
	.commit = sqlite_commit,
	.rollback = sqlite_rollback,
	.error_class = sqlite_error_class,
	.error_message = sqlite_error_message,
};
