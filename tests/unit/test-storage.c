/*
 * Unit tests for the storage interface (storage/storage.c, the area
 * fronts storage/<area>-store.c, the SQL store sql-store.c and sql-<area>.c,
 * sql-sqlite.c), including offline messages, vCards, private storage, last
 * activity and the schema migrations, and
 * the internal auth backend on top of it (auth/auth.c, auth-internal.c).
 *
 * Every test runs once per entry of the backends table: sqlite on a
 * temporary file, twice (with the dialect's upsert and with the portable
 * UPDATE-then-INSERT path), and PostgreSQL when the build has libpq and
 * PARLEY_TEST_PGSQL_DSN names a server (tests/db/pgsql.sh starts one; see
 * tests/db/storage-pgsql.sh).  A new driver adds an entry (how to make a
 * fresh store, and optional hooks for the tests that need to reach into
 * the database: schema version, holding a lock).
 *
 * MySQL likewise when the build has libmariadb and PARLEY_TEST_MYSQL_DSN
 * names a server (tests/db/mariadb.sh; see tests/db/storage-mysql.sh):
 * a fresh database per test, made from sql/mysql.sql by the server's root.
 *
 * The odbc driver runs the suite through unixODBC against those same
 * servers when PARLEY_TEST_ODBC_PGSQL_DSN / PARLEY_TEST_ODBC_MYSQL_DSN name
 * ODBC data sources for them (tests/db/storage-odbc.sh): the entries
 * odbc-pgsql and odbc-mysql reset the database the way pgsql and mysql do,
 * then connect through ODBC.
 *
 * The memory store (storage/memory-store.c) runs the suite too, with no
 * hooks; tests of what only a database does (durability across a reopen,
 * schemas, locks, group commit) skip it.
 *
 * PARLEY_TEST_BACKENDS=pgsql (a comma-separated list of entry names or
 * their prefixes) runs only those entries.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <pthread.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "storage/storage-private.h"
#include "storage/sql.h"
#include "storage/account-store.h"
#include "storage/offline-store.h"
#include "storage/vcard-store.h"
#include "storage/muc-store.h"
#include "storage/pubsub-store.h"
#include "storage/mam-store.h"
#include "auth/auth.h"
#include "lib/worker.h"
#include "lib/log.h"

#ifdef HAVE_BACKEND_PGSQL
#include <libpq-fe.h>
#endif
#ifdef HAVE_BACKEND_MYSQL
#include <mysql.h>
#endif

/* ---- backends ------------------------------------------------------------------- */

struct fixture;

struct backend {
	const char *name;
	/* Fill f->cfg for a new, empty store. */
	void (*make)(struct fixture *f);
	void (*destroy)(struct fixture *f);
	/* After storage_open (optional). */
	void (*opened)(struct fixture *f);
	/* Optional hooks; tests that need them are skipped without. */
	void (*set_schema_version)(struct fixture *f, int version);
	void (*lock)(struct fixture *f); /* hold the write lock from outside */
	void (*unlock)(struct fixture *f);
	/* Run an SQL script on the store from outside (a DBA's client). */
	void (*exec_sql)(struct fixture *f, const char *script);
	bool embedded;       /* created from sql/ on first open */
	const char *dialect; /* the directory of its migrations */
};

struct fixture {
	const struct backend *be;
	struct ev_loop *loop;
	struct storage_config cfg;
	struct storage *st;
	char dir[64];
	char path[128];
	sqlite3 *locker;
	void *pg_locker; /* PGconn holding the lock */
	void *my_locker; /* MYSQL holding row locks */
};

static void sqlite_make(struct fixture *f)
{
	strcpy(f->dir, "/tmp/parley-test-storage-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/parley.db", f->dir);
	f->cfg.driver = "sqlite";
	f->cfg.path = f->path;
}

static void sqlite_destroy(struct fixture *f)
{
	DIR *d = opendir(f->dir);
	if (d != NULL) {
		struct dirent *e;
		while ((e = readdir(d)) != NULL) {
			if (e->d_name[0] == '.')
				continue;
			char p[512];
			snprintf(p, sizeof(p), "%s/%s", f->dir, e->d_name);
			unlink(p);
		}
		closedir(d);
	}
	rmdir(f->dir);
}

static void sqlite_portable_opened(struct fixture *f)
{
	storage_sql_test_set_upsert(f->st, SQL_UPSERT_NONE);
}

static void sqlite_set_schema_version(struct fixture *f, int version)
{
	sqlite3 *db;
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	char sql[64];
	snprintf(sql, sizeof(sql), "UPDATE schema_version SET version = %d", version);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

static void sqlite_lock(struct fixture *f)
{
	assert_int_equal(sqlite3_open(f->path, &f->locker), SQLITE_OK);
	/* The store's workers may hold a lock for a moment (connecting, WAL
	 * recovery): wait for it like they do. */
	sqlite3_busy_timeout(f->locker, 5000);
	assert_int_equal(sqlite3_exec(f->locker, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
}

static void sqlite_unlock(struct fixture *f)
{
	sqlite3_exec(f->locker, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_close(f->locker);
	f->locker = NULL;
}

static void sqlite_exec_sql(struct fixture *f, const char *script)
{
	sqlite3 *db;
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	/* The store's workers may hold a lock for a moment: wait like they do. */
	sqlite3_busy_timeout(db, 5000);
	char *msg = NULL;
	if (sqlite3_exec(db, script, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("the script failed: %s", msg);
	sqlite3_close(db);
}

#ifdef HAVE_BACKEND_PGSQL
/* PostgreSQL: one database for the whole run (PARLEY_TEST_PGSQL_DSN, with
 * a DML-only role for parleyd and PARLEY_TEST_PGSQL_OWNER_DSN for the
 * owner of the tables).  Each test starts from an empty schema: the owner
 * drops every table and applies sql/pgsql.sql again. */
static const char pg_drop_all[] =
        "DROP TABLE IF EXISTS schema_version, users, roster_groups, roster_items, roster_version, "
        "offline_messages, vcards, private_storage, last_activity, blocklist, privacy_items, "
        "privacy_lists, sr_groups, sr_displayed, sr_members, vcard_search, muc_room, "
        "muc_affiliation, muc_registered, pubsub_node, pubsub_affiliation, pubsub_subscription, "
        "pubsub_item, archive, archive_prefs, archive_prefs_jid, fast_tokens, scram_cache CASCADE";

static void pg_owner_exec(const char *script)
{
	const char *dsn = getenv("PARLEY_TEST_PGSQL_OWNER_DSN");
	assert_non_null(dsn);
	PGconn *c = PQconnectdb(dsn);
	if (PQstatus(c) != CONNECTION_OK)
		fail_msg("cannot connect as the owner (%s): %s", dsn, PQerrorMessage(c));
	PGresult *res = PQexec(c, "SET client_min_messages = warning");
	PQclear(res);
	res = PQexec(c, script);
	if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
		fail_msg("the script failed: %s", PQerrorMessage(c));
	PQclear(res);
	PQfinish(c);
}

static void pgsql_make(struct fixture *f)
{
	char path[1024];
	snprintf(path, sizeof(path), "%s/pgsql.sql", getenv("PARLEY_SQL_DIR"));
	FILE *fp = fopen(path, "r");
	if (fp == NULL)
		fail_msg("cannot read %s", path);
	struct buf b = { 0 };
	buf_append_str(&b, pg_drop_all);
	buf_append_str(&b, ";\n");
	char chunk[4096];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
		buf_append(&b, chunk, n);
	fclose(fp);
	buf_append_str(&b, "\0");
	pg_owner_exec(b.data);
	buf_free(&b);
	f->cfg.driver = "pgsql";
	f->cfg.dsn = getenv("PARLEY_TEST_PGSQL_DSN");
	f->cfg.password = getenv("PARLEY_TEST_PGSQL_PASSWORD");
}

static void pgsql_destroy(struct fixture *f)
{
}

static void pgsql_set_schema_version(struct fixture *f, int version)
{
	char sql[64];
	snprintf(sql, sizeof(sql), "UPDATE schema_version SET version = %d", version);
	pg_owner_exec(sql);
}

static void pgsql_lock(struct fixture *f)
{
	PGconn *c = PQconnectdb(getenv("PARLEY_TEST_PGSQL_OWNER_DSN"));
	assert_int_equal(PQstatus(c), CONNECTION_OK);
	/* Writers wait (until their statement_timeout), readers do not. */
	PGresult *res = PQexec(c, "BEGIN; LOCK TABLE users, roster_items, roster_groups, "
	                          "roster_version, offline_messages, vcards, private_storage, "
	                          "last_activity, blocklist, privacy_lists, privacy_items, archive "
	                          "IN SHARE ROW EXCLUSIVE MODE");
	assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
	PQclear(res);
	f->pg_locker = c;
}

static void pgsql_unlock(struct fixture *f)
{
	PGconn *c = f->pg_locker;
	PQclear(PQexec(c, "ROLLBACK"));
	PQfinish(c);
	f->pg_locker = NULL;
}

static void pgsql_exec_sql(struct fixture *f, const char *script)
{
	pg_owner_exec(script);
}
#endif

#ifdef HAVE_BACKEND_MYSQL
/* MySQL / MariaDB (PARLEY_TEST_MYSQL_DSN for parleyd's DML-only user,
 * PARLEY_TEST_MYSQL_SOCKET and PARLEY_TEST_MYSQL_ADMIN_PASSWORD for the
 * server's root).  Each test starts from a new database "parley" made from
 * sql/mysql.sql; the user's grants (on parley.*) outlive the database. */
static MYSQL *my_admin(const char *db)
{
	MYSQL *m = mysql_init(NULL);
	assert_non_null(m);
	if (mysql_real_connect(m, "localhost", "root", getenv("PARLEY_TEST_MYSQL_ADMIN_PASSWORD"), db, 0,
	                       getenv("PARLEY_TEST_MYSQL_SOCKET"), CLIENT_MULTI_STATEMENTS) == NULL)
		fail_msg("mysql admin connection: %s", mysql_error(m));
	return m;
}

/* Run a script of statements: NULL, or the server's message (static). */
static const char *my_run(MYSQL *m, const char *script)
{
	static char msg[512];
	if (mysql_query(m, script) != 0) {
		snprintf(msg, sizeof(msg), "%s", mysql_error(m));
		return msg;
	}
	for (;;) {
		MYSQL_RES *res = mysql_store_result(m);
		if (res != NULL)
			mysql_free_result(res);
		int next = mysql_next_result(m);
		if (next > 0) {
			snprintf(msg, sizeof(msg), "%s", mysql_error(m));
			return msg;
		}
		if (next < 0)
			return NULL;
	}
}

static void mysql_exec_sql(struct fixture *f, const char *script)
{
	MYSQL *m = my_admin("parley");
	const char *err = my_run(m, script);
	mysql_close(m);
	if (err != NULL)
		fail_msg("the script failed: %s", err);
}

static void mysql_make(struct fixture *f)
{
	MYSQL *m = my_admin(NULL);
	const char *err = my_run(m, "DROP DATABASE IF EXISTS parley; "
	                            "CREATE DATABASE parley CHARACTER SET utf8mb4 COLLATE utf8mb4_bin");
	if (err != NULL)
		fail_msg("cannot make the database: %s", err);
	mysql_close(m);
	char path[1024];
	snprintf(path, sizeof(path), "%s/mysql.sql", getenv("PARLEY_SQL_DIR"));
	FILE *fp = fopen(path, "r");
	if (fp == NULL)
		fail_msg("cannot read %s", path);
	struct buf b = { 0 };
	char chunk[4096];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
		buf_append(&b, chunk, n);
	fclose(fp);
	mysql_exec_sql(f, b.data);
	buf_free(&b);
	f->cfg.driver = "mysql";
	f->cfg.dsn = getenv("PARLEY_TEST_MYSQL_DSN");
	f->cfg.password_file = getenv("PARLEY_TEST_MYSQL_PASSWORD_FILE");
}

static void mysql_destroy(struct fixture *f)
{
}

static void mysql_set_schema_version(struct fixture *f, int version)
{
	char sql[64];
	snprintf(sql, sizeof(sql), "UPDATE schema_version SET version = %d", version);
	mysql_exec_sql(f, sql);
}

/* Hold row locks the way another writer would: an open transaction that
 * wrote the rows alice@a.example's roster and account changes need
 * (InnoDB: writers of those rows wait, plain reads do not). */
static void mysql_lock(struct fixture *f)
{
	MYSQL *m = my_admin("parley");
	const char *err = my_run(m, "START TRANSACTION; "
	                            "INSERT INTO roster_version (server_host, username, version) "
	                            "VALUES ('a.example', 'alice', 100); "
	                            "INSERT INTO users (server_host, username, created_at) "
	                            "VALUES ('a.example', 'alice', 0)");
	if (err != NULL)
		fail_msg("cannot lock: %s", err);
	f->my_locker = m;
}

static void mysql_unlock(struct fixture *f)
{
	MYSQL *m = f->my_locker;
	my_run(m, "ROLLBACK");
	mysql_close(m);
	f->my_locker = NULL;
}
#endif

#if defined(HAVE_BACKEND_ODBC) && defined(HAVE_BACKEND_PGSQL)
static void odbc_pgsql_make(struct fixture *f)
{
	pgsql_make(f);
	f->cfg.driver = "odbc";
	f->cfg.dsn = getenv("PARLEY_TEST_ODBC_PGSQL_DSN");
}
#endif
#if defined(HAVE_BACKEND_ODBC) && defined(HAVE_BACKEND_MYSQL)
static void odbc_mysql_make(struct fixture *f)
{
	mysql_make(f);
	f->cfg.driver = "odbc";
	f->cfg.dsn = getenv("PARLEY_TEST_ODBC_MYSQL_DSN");
}
#endif

static void memory_make(struct fixture *f)
{
	f->cfg.driver = "memory";
}

static void memory_destroy(struct fixture *f)
{
}

static const struct backend backends[] = {
	/* No hooks: the tests that reach into a database skip it. */
	{ "memory", memory_make, memory_destroy, NULL, NULL, NULL, NULL, NULL, false, "memory" },
	{ "sqlite", sqlite_make, sqlite_destroy, NULL, sqlite_set_schema_version, sqlite_lock, sqlite_unlock,
	  sqlite_exec_sql, true, "sqlite" },
	{ "sqlite/portable-upsert", sqlite_make, sqlite_destroy, sqlite_portable_opened,
	  sqlite_set_schema_version, sqlite_lock, sqlite_unlock, sqlite_exec_sql, true, "sqlite" },
#ifdef HAVE_BACKEND_PGSQL
	{ "pgsql", pgsql_make, pgsql_destroy, NULL, pgsql_set_schema_version, pgsql_lock, pgsql_unlock,
	  pgsql_exec_sql, false, "pgsql" },
	{ "pgsql/portable-upsert", pgsql_make, pgsql_destroy, sqlite_portable_opened,
	  pgsql_set_schema_version, pgsql_lock, pgsql_unlock, pgsql_exec_sql, false, "pgsql" },
#endif
#ifdef HAVE_BACKEND_MYSQL
	{ "mysql", mysql_make, mysql_destroy, NULL, mysql_set_schema_version, mysql_lock, mysql_unlock,
	  mysql_exec_sql, false, "mysql" },
	{ "mysql/portable-upsert", mysql_make, mysql_destroy, sqlite_portable_opened,
	  mysql_set_schema_version, mysql_lock, mysql_unlock, mysql_exec_sql, false, "mysql" },
#endif
#if defined(HAVE_BACKEND_ODBC) && defined(HAVE_BACKEND_PGSQL)
	{ "odbc-pgsql", odbc_pgsql_make, pgsql_destroy, NULL, pgsql_set_schema_version, pgsql_lock,
	  pgsql_unlock, pgsql_exec_sql, false, "pgsql" },
	{ "odbc-pgsql/portable-upsert", odbc_pgsql_make, pgsql_destroy, sqlite_portable_opened,
	  pgsql_set_schema_version, pgsql_lock, pgsql_unlock, pgsql_exec_sql, false, "pgsql" },
#endif
#if defined(HAVE_BACKEND_ODBC) && defined(HAVE_BACKEND_MYSQL)
	{ "odbc-mysql", odbc_mysql_make, mysql_destroy, NULL, mysql_set_schema_version, mysql_lock,
	  mysql_unlock, mysql_exec_sql, false, "mysql" },
#endif
};

/* Whether the backend entry runs in this run (see the top of the file). */
static bool backend_selected(const struct backend *be)
{
	const char *want = getenv("PARLEY_TEST_BACKENDS");
	if (want == NULL || *want == '\0')
		return (strncmp(be->name, "pgsql", 5) != 0 || getenv("PARLEY_TEST_PGSQL_DSN") != NULL) &&
		       (strncmp(be->name, "mysql", 5) != 0 || getenv("PARLEY_TEST_MYSQL_DSN") != NULL) &&
		       (strncmp(be->name, "odbc-pgsql", 10) != 0 ||
		        getenv("PARLEY_TEST_ODBC_PGSQL_DSN") != NULL) &&
		       (strncmp(be->name, "odbc-mysql", 10) != 0 ||
		        getenv("PARLEY_TEST_ODBC_MYSQL_DSN") != NULL);
	char *list = strdup(want), *save = NULL;
	bool found = false;
	for (char *w = strtok_r(list, ",", &save); w != NULL && !found; w = strtok_r(NULL, ",", &save))
		found = strncmp(be->name, w, strlen(w)) == 0;
	free(list);
	return found;
}

/* The memory store: nothing survives a close. */
static bool in_memory(const struct fixture *f)
{
	return strcmp(f->cfg.driver, "memory") == 0;
}

/* ---- loop helpers --------------------------------------------------------------- */

static pthread_t loop_thread;
static bool in_call; /* inside a storage_* / auth_* call */

static void watchdog_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	fail_msg("the loop waited too long (a callback never came?)");
}

/* Run the loop until no work is outstanding. */
static void run(struct fixture *f)
{
	ev_timer wd;
	ev_timer_init(&wd, watchdog_cb, 20, 0);
	ev_timer_start(f->loop, &wd);
	ev_unref(f->loop);
	ev_run(f->loop, 0);
	ev_ref(f->loop);
	ev_timer_stop(f->loop, &wd);
}

static void check_context(void)
{
	assert_true(pthread_equal(pthread_self(), loop_thread));
	assert_false(in_call);
}

#define CALL(expr)                       \
	({                               \
		in_call = true;          \
		__auto_type r_ = (expr); \
		in_call = false;         \
		r_;                      \
	})

static int open_store(struct fixture *f, char **error_r)
{
	int rc = storage_open(f->loop, &f->cfg, &f->st, error_r);
	if (rc == 0 && f->be->opened != NULL)
		f->be->opened(f);
	return rc;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	f->be = *state;
	loop_thread = pthread_self();
	f->loop = ev_loop_new(EVFLAG_AUTO);
	f->cfg.pool_size = 2;
	f->cfg.queue_max = 1000;
	f->cfg.timeout = 5;
	f->be->make(f);
	char *err = NULL;
	if (open_store(f, &err) < 0) {
		fprintf(stderr, "storage_open: %s\n", err);
		free(err);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	auth_global_shutdown();
	storage_close(&f->st);
	if (f->locker != NULL || f->pg_locker != NULL || f->my_locker != NULL)
		f->be->unlock(f);
	f->be->destroy(f);
	ev_loop_destroy(f->loop);
	free(f);
	return 0;
}

/* ---- result recorders ----------------------------------------------------------- */

struct res {
	int calls;
	enum storage_result r;
	struct storage_account acc; /* deep copy */
	bool acc_null;
	struct strlist names;
	uint64_t count;
	struct roster_item *items;
	size_t nitems;
	uint64_t version;
	struct offline_message *msgs; /* deep copy */
	size_t nmsgs;
	bool msgs_null;
	uint64_t page_total, page_more; /* offline_page */
	char *text;                     /* vcard_get, private_get; last status */
	bool text_null;
	int64_t seconds;          /* last_get */
	struct srg_group *groups; /* srg_get, deep copy */
	size_t ngroups;
	struct strlist found; /* vcard_search: "user|fn|given|...", in order */
	bool more;
	int *order; /* completion order log */
	int *order_len;
	int tag;
};

static void res_clear(struct res *r)
{
	storage_account_clear(&r->acc);
	strlist_free(&r->names);
	for (size_t i = 0; i < r->nitems; i++)
		roster_item_clear(&r->items[i]);
	free(r->items);
	for (size_t i = 0; i < r->nmsgs; i++)
		free((char *)r->msgs[i].stanza);
	free(r->msgs);
	free(r->text);
	for (size_t i = 0; i < r->ngroups; i++)
		srg_group_clear(&r->groups[i]);
	free(r->groups);
	strlist_free(&r->found);
	memset(r, 0, sizeof(*r));
}

static void note(struct res *r, enum storage_result res)
{
	check_context();
	r->calls++;
	r->r = res;
	if (r->order != NULL)
		r->order[(*r->order_len)++] = r->tag;
}

static void copy_creds(struct scram_credentials *dst, const struct scram_credentials *src)
{
	*dst = *src;
	dst->salt_b64 = src->salt_b64 != NULL ? strdup(src->salt_b64) : NULL;
}

static void done_cb(enum storage_result res, void *ctx)
{
	note(ctx, res);
}

static void account_cb(enum storage_result res, const struct storage_account *acc, void *ctx)
{
	struct res *r = ctx;
	note(r, res);
	storage_account_clear(&r->acc);
	r->acc_null = acc == NULL;
	if (acc != NULL) {
		r->acc = *acc;
		copy_creds(&r->acc.sha1, &acc->sha1);
		copy_creds(&r->acc.sha256, &acc->sha256);
		copy_creds(&r->acc.sha512, &acc->sha512);
		r->acc.plain = acc->plain != NULL ? strdup(acc->plain) : NULL;
	}
}

static void strlist_copy(struct strlist *dst, const struct strlist *src)
{
	dst->count = src->count;
	dst->items = src->count > 0 ? calloc(src->count, sizeof(char *)) : NULL;
	for (size_t i = 0; i < src->count; i++)
		dst->items[i] = strdup(src->items[i]);
}

static void list_cb(enum storage_result res, const struct strlist *names, void *ctx)
{
	struct res *r = ctx;
	note(r, res);
	assert_non_null(names);
	strlist_free(&r->names);
	strlist_copy(&r->names, names);
}

static void count_cb(enum storage_result res, uint64_t count, void *ctx)
{
	struct res *r = ctx;
	note(r, res);
	r->count = count;
}

static void roster_cb(enum storage_result res, const struct roster_item *items, size_t count,
                      uint64_t version, void *ctx)
{
	struct res *r = ctx;
	note(r, res);
	for (size_t i = 0; i < r->nitems; i++)
		roster_item_clear(&r->items[i]);
	free(r->items);
	r->items = count > 0 ? calloc(count, sizeof(*r->items)) : NULL;
	r->nitems = count;
	r->version = version;
	for (size_t i = 0; i < count; i++) {
		r->items[i] = items[i];
		r->items[i].jid = strdup(items[i].jid);
		r->items[i].name = items[i].name != NULL ? strdup(items[i].name) : NULL;
		r->items[i].ask_in_stanza =
		        items[i].ask_in_stanza != NULL ? strdup(items[i].ask_in_stanza) : NULL;
		strlist_copy(&r->items[i].groups, &items[i].groups);
	}
}

static void offline_cb(enum storage_result res, const struct offline_message *msgs, size_t count, void *ctx)
{
	struct res *r = ctx;
	note(r, res);
	for (size_t i = 0; i < r->nmsgs; i++)
		free((char *)r->msgs[i].stanza);
	free(r->msgs);
	r->msgs_null = msgs == NULL;
	r->msgs = count > 0 ? calloc(count, sizeof(*r->msgs)) : NULL;
	r->nmsgs = count;
	for (size_t i = 0; i < count; i++) {
		r->msgs[i] = msgs[i];
		r->msgs[i].stanza = strdup(msgs[i].stanza);
	}
}

static void offline_page_cb(enum storage_result res, const struct offline_message *msgs, size_t count,
                            uint64_t total, uint64_t more, void *ctx)
{
	struct res *r = ctx;
	offline_cb(res, msgs, count, ctx);
	r->page_total = total;
	r->page_more = more;
}

static void text_cb(enum storage_result res, const char *text, void *ctx)
{
	struct res *r = ctx;
	note(r, res);
	free(r->text);
	r->text_null = text == NULL;
	r->text = text != NULL ? strdup(text) : NULL;
}

static void last_cb(enum storage_result res, const struct last_activity *last, void *ctx)
{
	struct res *r = ctx;
	note(r, res);
	free(r->text);
	r->text_null = last == NULL;
	r->text = last != NULL ? strdup(last->status) : NULL;
	r->seconds = last != NULL ? last->seconds : -1;
}

/* ---- synchronous wrappers for the tests ------------------------------------------- */

static enum storage_result acc_get(struct fixture *f, const char *host, const char *user, struct res *r)
{
	int before = r->calls;
	assert_non_null(CALL(storage_account_get(f->st, host, user, account_cb, r)));
	assert_int_equal(r->calls, before);
	run(f);
	assert_int_equal(r->calls, before + 1);
	return r->r;
}

static enum storage_result acc_create(struct fixture *f, const char *host, const char *user,
                                      const struct storage_account *acc)
{
	struct res r = { 0 };
	assert_non_null(CALL(storage_account_create(f->st, host, user, acc, done_cb, &r)));
	assert_int_equal(r.calls, 0);
	run(f);
	assert_int_equal(r.calls, 1);
	return r.r;
}

static enum storage_result acc_add_credentials(struct fixture *f, const char *host, const char *user,
                                               const struct storage_account *acc)
{
	struct res r = { 0 };
	assert_non_null(CALL(storage_account_add_credentials(f->st, host, user, acc, done_cb, &r)));
	assert_int_equal(r.calls, 0);
	run(f);
	assert_int_equal(r.calls, 1);
	return r.r;
}

static enum storage_result acc_update(struct fixture *f, const char *host, const char *user,
                                      const struct storage_account *acc)
{
	struct res r = { 0 };
	assert_non_null(CALL(storage_account_update(f->st, host, user, acc, done_cb, &r)));
	assert_int_equal(r.calls, 0);
	run(f);
	assert_int_equal(r.calls, 1);
	return r.r;
}

static enum storage_result acc_remove(struct fixture *f, const char *host, const char *user)
{
	struct res r = { 0 };
	assert_non_null(CALL(storage_account_remove(f->st, host, user, done_cb, &r)));
	assert_int_equal(r.calls, 0);
	run(f);
	assert_int_equal(r.calls, 1);
	return r.r;
}

/* SCRAM keys kept for users of other auth methods. */
static enum storage_result sc_get_ttl(struct fixture *f, const char *host, const char *user, int64_t ttl,
                                      struct res *r)
{
	int before = r->calls;
	assert_non_null(CALL(storage_scram_cache_get(f->st, host, user, ttl, account_cb, r)));
	assert_int_equal(r->calls, before);
	run(f);
	assert_int_equal(r->calls, before + 1);
	return r->r;
}

static enum storage_result sc_get(struct fixture *f, const char *host, const char *user, struct res *r)
{
	return sc_get_ttl(f, host, user, 3600, r);
}

static enum storage_result sc_set(struct fixture *f, const char *host, const char *user,
                                  const struct storage_account *acc, int64_t expires)
{
	struct res r = { 0 };
	assert_non_null(CALL(storage_scram_cache_set(f->st, host, user, acc, expires, done_cb, &r)));
	assert_int_equal(r.calls, 0);
	run(f);
	assert_int_equal(r.calls, 1);
	return r.r;
}

static enum storage_result sc_delete(struct fixture *f, const char *host, const char *user)
{
	struct res r = { 0 };
	assert_non_null(CALL(storage_scram_cache_delete(f->st, host, user, done_cb, &r)));
	run(f);
	assert_int_equal(r.calls, 1);
	return r.r;
}

static uint64_t sc_expire(struct fixture *f, const char *host, int64_t before)
{
	struct res r = { 0 };
	assert_non_null(CALL(storage_scram_cache_expire(f->st, host, before, count_cb, &r)));
	run(f);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.r, STORAGE_OK);
	return r.count;
}

static enum storage_result acc_list(struct fixture *f, const char *host, struct res *r)
{
	assert_non_null(CALL(storage_account_list(f->st, host, list_cb, r)));
	assert_int_equal(r->calls, 0);
	run(f);
	assert_int_equal(r->calls, 1);
	return r->r;
}

static enum storage_result acc_page(struct fixture *f, const char *host, const char *after, const char *match,
                                    unsigned limit, struct res *r)
{
	assert_non_null(CALL(storage_account_list_page(f->st, host, after, match, limit, list_cb, r)));
	assert_int_equal(r->calls, 0);
	run(f);
	assert_int_equal(r->calls, 1);
	return r->r;
}

static uint64_t off_count_host(struct fixture *f, const char *host)
{
	struct res r = { 0 };
	assert_non_null(CALL(storage_offline_count_host(f->st, host, count_cb, &r)));
	assert_int_equal(r.calls, 0);
	run(f);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.r, STORAGE_OK);
	return r.count;
}

static uint64_t acc_count(struct fixture *f, const char *host)
{
	struct res r = { 0 };
	assert_non_null(CALL(storage_account_count(f->st, host, count_cb, &r)));
	assert_int_equal(r.calls, 0);
	run(f);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.r, STORAGE_OK);
	return r.count;
}

static enum storage_result roster_get(struct fixture *f, const char *host, const char *user, struct res *r)
{
	int before = r->calls;
	assert_non_null(CALL(storage_roster_get(f->st, host, user, roster_cb, r)));
	assert_int_equal(r->calls, before);
	run(f);
	assert_int_equal(r->calls, before + 1);
	return r->r;
}

static enum storage_result roster_set(struct fixture *f, const char *host, const char *user,
                                      const struct roster_item *it)
{
	struct res r = { 0 };
	assert_non_null(CALL(storage_roster_set(f->st, host, user, it, done_cb, &r)));
	assert_int_equal(r.calls, 0);
	run(f);
	assert_int_equal(r.calls, 1);
	return r.r;
}

static enum storage_result roster_remove(struct fixture *f, const char *host, const char *user,
                                         const char *jid)
{
	struct res r = { 0 };
	assert_non_null(CALL(storage_roster_remove(f->st, host, user, jid, done_cb, &r)));
	assert_int_equal(r.calls, 0);
	run(f);
	assert_int_equal(r.calls, 1);
	return r.r;
}

static enum storage_result off_store(struct fixture *f, const char *host, const char *user,
                                     const char *stanza, unsigned max)
{
	struct res r = { 0 };
	assert_non_null(CALL(storage_offline_store(f->st, host, user, "romeo@montague.example/orchard",
	                                           stanza, max, done_cb, &r)));
	assert_int_equal(r.calls, 0);
	run(f);
	assert_int_equal(r.calls, 1);
	return r.r;
}

static enum storage_result off_get(struct fixture *f, const char *host, const char *user, struct res *r)
{
	int before = r->calls;
	assert_non_null(CALL(storage_offline_get(f->st, host, user, offline_cb, r)));
	assert_int_equal(r->calls, before);
	run(f);
	assert_int_equal(r->calls, before + 1);
	return r->r;
}

static enum storage_result off_page(struct fixture *f, const char *host, const char *user, int64_t after,
                                    unsigned limit, struct res *r)
{
	int before = r->calls;
	assert_non_null(CALL(storage_offline_page(f->st, host, user, after, limit, offline_page_cb, r)));
	assert_int_equal(r->calls, before);
	run(f);
	assert_int_equal(r->calls, before + 1);
	return r->r;
}

static enum storage_result off_delete(struct fixture *f, const char *host, const char *user, int64_t last)
{
	struct res r = { 0 };
	assert_non_null(CALL(storage_offline_delete_upto(f->st, host, user, last, done_cb, &r)));
	assert_int_equal(r.calls, 0);
	run(f);
	assert_int_equal(r.calls, 1);
	return r.r;
}

static uint64_t off_count(struct fixture *f, const char *host, const char *user)
{
	struct res r = { 0 };
	assert_non_null(CALL(storage_offline_count(f->st, host, user, count_cb, &r)));
	assert_int_equal(r.calls, 0);
	run(f);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.r, STORAGE_OK);
	return r.count;
}

static enum storage_result vcard_get(struct fixture *f, const char *host, const char *user, struct res *r)
{
	int before = r->calls;
	assert_non_null(CALL(storage_vcard_get(f->st, host, user, text_cb, r)));
	assert_int_equal(r->calls, before);
	run(f);
	assert_int_equal(r->calls, before + 1);
	return r->r;
}

static enum storage_result vcard_set(struct fixture *f, const char *host, const char *user, const char *xml)
{
	struct res r = { 0 };
	assert_non_null(CALL(storage_vcard_set(f->st, host, user, xml, done_cb, &r)));
	assert_int_equal(r.calls, 0);
	run(f);
	assert_int_equal(r.calls, 1);
	return r.r;
}

static enum storage_result priv_get(struct fixture *f, const char *host, const char *user, const char *ns,
                                    struct res *r)
{
	int before = r->calls;
	assert_non_null(CALL(storage_private_get(f->st, host, user, ns, text_cb, r)));
	assert_int_equal(r->calls, before);
	run(f);
	assert_int_equal(r->calls, before + 1);
	return r->r;
}

static enum storage_result priv_set(struct fixture *f, const char *host, const char *user,
                                    const struct private_item *items, size_t n)
{
	struct res r = { 0 };
	assert_non_null(CALL(storage_private_set(f->st, host, user, items, n, done_cb, &r)));
	assert_int_equal(r.calls, 0);
	run(f);
	assert_int_equal(r.calls, 1);
	return r.r;
}

/* private_list's answer as "ns=data|ns=data". */
static void private_list_cb(enum storage_result res, const struct private_item *items, size_t n, void *ctx)
{
	struct res *r = ctx;
	note(r, res);
	free(r->text);
	struct buf b = { 0 };
	buf_append_str(&b, "");
	for (size_t i = 0; i < n; i++)
		buf_printf(&b, "%s%s=%s", i > 0 ? "|" : "", items[i].ns, items[i].data);
	r->text = buf_steal(&b);
}

static enum storage_result priv_list(struct fixture *f, const char *host, const char *user, struct res *r)
{
	int before = r->calls;
	assert_non_null(CALL(storage_private_list(f->st, host, user, private_list_cb, r)));
	assert_int_equal(r->calls, before);
	run(f);
	assert_int_equal(r->calls, before + 1);
	return r->r;
}

static enum storage_result blk_get(struct fixture *f, const char *host, const char *user, struct res *r)
{
	int before = r->calls;
	strlist_free(&r->names);
	assert_non_null(CALL(storage_blocklist_get(f->st, host, user, list_cb, r)));
	assert_int_equal(r->calls, before);
	run(f);
	assert_int_equal(r->calls, before + 1);
	return r->r;
}

static enum storage_result blk_change(struct fixture *f, bool add, const char *host, const char *user,
                                      const char *const *jids, size_t n)
{
	struct res r = { 0 };
	if (add)
		assert_non_null(CALL(storage_blocklist_add(f->st, host, user, jids, n, done_cb, &r)));
	else
		assert_non_null(CALL(storage_blocklist_remove(f->st, host, user, jids, n, done_cb, &r)));
	assert_int_equal(r.calls, 0);
	run(f);
	assert_int_equal(r.calls, 1);
	return r.r;
}

static void srg_cb(enum storage_result res, const struct srg_group *groups, size_t count, void *ctx)
{
	struct res *r = ctx;
	note(r, res);
	for (size_t i = 0; i < r->ngroups; i++)
		srg_group_clear(&r->groups[i]);
	free(r->groups);
	r->groups = count > 0 ? calloc(count, sizeof(*r->groups)) : NULL;
	r->ngroups = count;
	for (size_t i = 0; i < count; i++) {
		r->groups[i].name = strdup(groups[i].name);
		r->groups[i].label = strdup(groups[i].label);
		r->groups[i].description = strdup(groups[i].description);
		strlist_copy(&r->groups[i].displayed, &groups[i].displayed);
		strlist_copy(&r->groups[i].members, &groups[i].members);
	}
}

static enum storage_result srg_get(struct fixture *f, const char *host, const char *name, struct res *r)
{
	int before = r->calls;
	assert_non_null(CALL(storage_srg_get(f->st, host, name, srg_cb, r)));
	assert_int_equal(r->calls, before);
	run(f);
	assert_int_equal(r->calls, before + 1);
	return r->r;
}

static enum storage_result srg_list(struct fixture *f, const char *host, struct res *r)
{
	int before = r->calls;
	strlist_free(&r->names);
	assert_non_null(CALL(storage_srg_list(f->st, host, list_cb, r)));
	assert_int_equal(r->calls, before);
	run(f);
	assert_int_equal(r->calls, before + 1);
	return r->r;
}

static enum storage_result srg_user_groups(struct fixture *f, const char *host, const char *jid,
                                           struct res *r)
{
	int before = r->calls;
	strlist_free(&r->names);
	assert_non_null(CALL(storage_srg_user_groups(f->st, host, jid, list_cb, r)));
	assert_int_equal(r->calls, before);
	run(f);
	assert_int_equal(r->calls, before + 1);
	return r->r;
}

static enum storage_result srg_create(struct fixture *f, const char *host, const struct srg_group *g)
{
	struct res r = { 0 };
	assert_non_null(CALL(storage_srg_create(f->st, host, g, done_cb, &r)));
	assert_int_equal(r.calls, 0);
	run(f);
	assert_int_equal(r.calls, 1);
	return r.r;
}

static enum storage_result srg_delete(struct fixture *f, const char *host, const char *name)
{
	struct res r = { 0 };
	assert_non_null(CALL(storage_srg_delete(f->st, host, name, done_cb, &r)));
	assert_int_equal(r.calls, 0);
	run(f);
	assert_int_equal(r.calls, 1);
	return r.r;
}

static enum storage_result srg_member(struct fixture *f, bool add, const char *host, const char *group,
                                      const char *member)
{
	struct res r = { 0 };
	if (add)
		assert_non_null(CALL(storage_srg_member_add(f->st, host, group, member, done_cb, &r)));
	else
		assert_non_null(CALL(storage_srg_member_remove(f->st, host, group, member, done_cb, &r)));
	assert_int_equal(r.calls, 0);
	run(f);
	assert_int_equal(r.calls, 1);
	return r.r;
}

static void search_cb(enum storage_result res, const struct vcard_entry *entries, size_t count, bool more,
                      void *ctx)
{
	struct res *r = ctx;
	note(r, res);
	strlist_free(&r->found);
	r->more = more;
	r->found.items = count > 0 ? calloc(count, sizeof(char *)) : NULL;
	r->found.count = count;
	for (size_t i = 0; i < count; i++) {
		struct buf b = { 0 };
		for (size_t k = 0; k < VF_COUNT; k++)
			buf_printf(&b, "%s%s", k > 0 ? "|" : "", entries[i].fields[k]);
		r->found.items[i] = buf_steal(&b);
	}
}

/* Search with terms given as "field=value" ("*" suffix: prefix). */
static enum storage_result vsearch(struct fixture *f, const char *host, bool listed_only, unsigned limit,
                                   struct res *r, const char *const *spec, size_t n)
{
	static const char *const names[VF_COUNT] = { "user", "fn",    "first",    "last",
		                                     "nick", "email", "locality", "org" };
	struct vcard_term t[8];
	assert_true(n <= 8);
	for (size_t i = 0; i < n; i++) {
		const char *eq = strchr(spec[i], '=');
		assert_non_null(eq);
		size_t k = 0;
		while (k < VF_COUNT && (strlen(names[k]) != (size_t)(eq - spec[i]) ||
		                        strncmp(names[k], spec[i], (size_t)(eq - spec[i])) != 0))
			k++;
		assert_true(k < VF_COUNT);
		size_t len = strlen(eq + 1);
		t[i].field = (enum vcard_field)k;
		t[i].prefix = len > 0 && eq[len] == '*';
		t[i].value = strndup(eq + 1, t[i].prefix ? len - 1 : len);
	}
	int before = r->calls;
	assert_non_null(CALL(storage_vcard_search(f->st, host, t, n, listed_only, limit, search_cb, r)));
	for (size_t i = 0; i < n; i++)
		free((char *)t[i].value);
	assert_int_equal(r->calls, before);
	run(f);
	assert_int_equal(r->calls, before + 1);
	return r->r;
}

/* The account names r found, joined with ','. */
static char *found_users(const struct res *r)
{
	struct buf b = { 0 };
	for (size_t i = 0; i < r->found.count; i++)
		buf_printf(&b, "%s%.*s", i > 0 ? "," : "", (int)strcspn(r->found.items[i], "|"),
		           r->found.items[i]);
	return b.data != NULL ? buf_steal(&b) : strdup("");
}

#define ASSERT_FOUND(r, want)                    \
	do {                                     \
		char *got_ = found_users(r);     \
		assert_string_equal(got_, want); \
		free(got_);                      \
	} while (0)

/* The list r holds is exactly want (sorted). */
static void assert_names(const struct res *r, const char *const *want, size_t n)
{
	assert_int_equal(r->names.count, n);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(r->names.items[i], want[i]);
}

static enum storage_result last_get(struct fixture *f, const char *host, const char *user, struct res *r)
{
	int before = r->calls;
	assert_non_null(CALL(storage_last_get(f->st, host, user, last_cb, r)));
	assert_int_equal(r->calls, before);
	run(f);
	assert_int_equal(r->calls, before + 1);
	return r->r;
}

static enum storage_result last_set(struct fixture *f, const char *host, const char *user, int64_t seconds,
                                    const char *status)
{
	struct res r = { 0 };
	assert_non_null(CALL(storage_last_set(f->st, host, user, seconds, status, done_cb, &r)));
	assert_int_equal(r.calls, 0);
	run(f);
	assert_int_equal(r.calls, 1);
	return r.r;
}

/* privacy_get's answer as one line: "default=NAME|list:ORDER TYPE VALUE ACTION STANZAS,...|..." */
static void privacy_cb(enum storage_result res, const struct privacy_list *lists, size_t n,
                       const char *default_name, void *ctx)
{
	struct res *r = ctx;
	note(r, res);
	free(r->text);
	r->text = NULL;
	if (res != STORAGE_OK) {
		assert_null(lists);
		assert_null(default_name);
		return;
	}
	struct buf b = { 0 };
	buf_printf(&b, "default=%s", default_name != NULL ? default_name : "");
	for (size_t i = 0; i < n; i++) {
		buf_printf(&b, "|%s:", lists[i].name);
		for (size_t k = 0; k < lists[i].nitems; k++) {
			const struct privacy_item *it = &lists[i].items[k];
			buf_printf(&b, "%s%u %s %s %s %u", k > 0 ? "," : "", it->order,
			           it->type == PRIVACY_ALL ? "all" : privacy_type_str(it->type),
			           it->value != NULL ? it->value : "-", it->allow ? "allow" : "deny",
			           it->stanzas);
		}
	}
	r->text = buf_steal(&b);
}

static enum storage_result prv_get(struct fixture *f, const char *host, const char *user, struct res *r)
{
	int before = r->calls;
	assert_non_null(CALL(storage_privacy_get(f->st, host, user, privacy_cb, r)));
	assert_int_equal(r->calls, before);
	run(f);
	assert_int_equal(r->calls, before + 1);
	return r->r;
}

enum prv_change { PRV_SET, PRV_REMOVE, PRV_DEFAULT };

static enum storage_result prv_change(struct fixture *f, enum prv_change what, const char *host,
                                      const char *user, const char *name, const struct privacy_item *items,
                                      size_t n)
{
	struct res r = { 0 };
	if (what == PRV_SET)
		assert_non_null(
		        CALL(storage_privacy_set_list(f->st, host, user, name, items, n, done_cb, &r)));
	else if (what == PRV_REMOVE)
		assert_non_null(CALL(storage_privacy_remove_list(f->st, host, user, name, done_cb, &r)));
	else
		assert_non_null(CALL(storage_privacy_set_default(f->st, host, user, name, done_cb, &r)));
	assert_int_equal(r.calls, 0);
	run(f);
	assert_int_equal(r.calls, 1);
	return r.r;
}

/* Made-up keys: byte i of the stored key is seed * m1 + i, of the server key seed * m2 + i. */
static void fake_creds(struct scram_credentials *c, enum scram_hash h, unsigned iterations, const char *salt,
                       unsigned seed, unsigned m1, unsigned m2)
{
	c->hash = h;
	c->iterations = iterations;
	c->salt_b64 = strdup(salt);
	for (size_t i = 0; i < scram_hash_len(h); i++) {
		c->stored_key[i] = (unsigned char)(seed * m1 + i);
		c->server_key[i] = (unsigned char)(seed * m2 + i);
	}
}

/* Made-up credentials (storage does not care whether they are real);
 * SHA-512 keys come with SHA-256 ones (accounts of schema 11). */
static void make_account(struct storage_account *a, unsigned seed, bool sha1, bool sha256, const char *plain)
{
	memset(a, 0, sizeof(*a));
	a->has_sha1 = sha1;
	if (sha1)
		fake_creds(&a->sha1, SCRAM_SHA1, 4096 + seed, "c2FsdDE=", seed, 1, 3);
	a->has_sha256 = a->has_sha512 = sha256;
	if (sha256) {
		fake_creds(&a->sha256, SCRAM_SHA256, 8192 + seed, "c2FsdDI1Ng==", seed, 5, 7);
		fake_creds(&a->sha512, SCRAM_SHA512, 16384 + seed, "c2FsdDUxMg==", seed, 11, 13);
	}
	a->plain = plain != NULL ? strdup(plain) : NULL;
	a->created = 1700000000 + seed;
}

static void assert_creds_equal(const struct scram_credentials *a, const struct scram_credentials *b,
                               size_t len)
{
	assert_int_equal(a->hash, b->hash);
	assert_int_equal(a->iterations, b->iterations);
	assert_string_equal(a->salt_b64, b->salt_b64);
	assert_memory_equal(a->stored_key, b->stored_key, len);
	assert_memory_equal(a->server_key, b->server_key, len);
}

static void assert_account_equal(const struct storage_account *got, const struct storage_account *want)
{
	assert_int_equal(got->has_sha1, want->has_sha1);
	assert_int_equal(got->has_sha256, want->has_sha256);
	if (want->has_sha1)
		assert_creds_equal(&got->sha1, &want->sha1, 20);
	if (want->has_sha256)
		assert_creds_equal(&got->sha256, &want->sha256, 32);
	assert_int_equal(got->has_sha512, want->has_sha512);
	if (want->has_sha512)
		assert_creds_equal(&got->sha512, &want->sha512, 64);
	if (want->plain == NULL)
		assert_null(got->plain);
	else
		assert_string_equal(got->plain, want->plain);
}

/* ---- tests: accounts ------------------------------------------------------------------ */

/* SQLite: two connections of the process to one file write in turn; the
 * second waits for the first's commit however long it lasts, where
 * SQLite's own busy timeout (here 0.1 s) would fail it with SQLITE_BUSY. */
struct sqlite_writer {
	struct sql_conn *conn;
	enum sql_step step;
};

static void *sqlite_writer_main(void *arg)
{
	struct sqlite_writer *w = arg;
	const struct sql_driver_vfuncs *d = &sql_driver_sqlite;
	struct sql_stmt *s = d->prepare(
	        w->conn, "INSERT INTO archive_prefs (server_host, owner, def) VALUES ('h', 'o', 'always')");
	w->step = s != NULL ? d->step(s) : SQL_STEP_ERROR;
	if (s != NULL)
		d->reset(s);
	return NULL;
}

static void test_sqlite_writers_take_turns(void **state)
{
	struct fixture *f = *state;
	if (f->cfg.driver == NULL || strcmp(f->cfg.driver, "sqlite") != 0)
		skip();
	const struct sql_driver_vfuncs *d = &sql_driver_sqlite;
	struct storage_config cfg = f->cfg;
	cfg.timeout = 0.1;
	char *err = NULL;
	struct sql_conn *a = d->connect(&cfg, &err);
	assert_non_null(a);
	struct sql_conn *b = d->connect(&cfg, &err);
	assert_non_null(b);
	assert_int_equal(d->begin(a, true), 0);
	struct sqlite_writer w = { .conn = b, .step = SQL_STEP_ERROR };
	pthread_t tid;
	assert_int_equal(pthread_create(&tid, NULL, sqlite_writer_main, &w), 0);
	usleep(400000);
	assert_int_equal(d->commit(a), 0);
	assert_int_equal(pthread_join(tid, NULL), 0);
	assert_int_equal(w.step, SQL_STEP_DONE);
	/* The turn is given back: the first connection writes again at once. */
	assert_int_equal(d->begin(a, true), 0);
	assert_int_equal(d->commit(a), 0);
	d->disconnect(b);
	d->disconnect(a);
}

/* Every SQL driver: the statement cache (sql-stmtcache.h) answers by the
 * SQL text, whatever buffer holds it: a copy finds the statement prepared
 * from a static string, a buffer that held one statement's SQL and now
 * holds another's finds the other, and hundreds of statements each keep
 * their own.  A new connection has a cache of its own. */
static void test_sql_statement_cache(void **state)
{
	struct fixture *f = *state;
	const struct sql_driver_vfuncs *d = f->cfg.driver != NULL ? sql_driver_find(f->cfg.driver) : NULL;
	if (d == NULL)
		skip(); /* the memory store */
	char *err = NULL;
	struct sql_conn *c = d->connect(&f->cfg, &err);
	if (c == NULL)
		fail_msg("connect: %s", err);
	static const char one[] = "SELECT 1";
	static const char two[] = "SELECT 2";
	struct sql_stmt *s1 = d->prepare(c, one);
	assert_non_null(s1);
	assert_ptr_equal(d->prepare(c, one), s1);
	char *copy = xstrdup(one);
	assert_ptr_equal(d->prepare(c, copy), s1);
	/* The same buffer, now with other SQL: another statement. */
	strcpy(copy, two);
	struct sql_stmt *s2 = d->prepare(c, copy);
	assert_non_null(s2);
	assert_ptr_not_equal(s2, s1);
	assert_ptr_equal(d->prepare(c, two), s2);
	assert_int_equal(d->step(s2), SQL_STEP_ROW);
	assert_int_equal(d->column_int64(s2, 0), 2);
	d->reset(s2);
	strcpy(copy, one);
	assert_ptr_equal(d->prepare(c, copy), s1);
	assert_ptr_equal(d->prepare(c, two), s2);
	free(copy);

	enum { N = 300 };
	struct sql_stmt *many[N];
	char sql[N][32];
	for (int i = 0; i < N; i++) {
		snprintf(sql[i], sizeof(sql[i]), "SELECT %d", i + 10);
		many[i] = d->prepare(c, sql[i]);
		assert_non_null(many[i]);
		for (int j = 0; j < i; j++)
			assert_ptr_not_equal(many[i], many[j]);
	}
	for (int i = 0; i < N; i++) {
		char again[32];
		snprintf(again, sizeof(again), "SELECT %d", i + 10);
		assert_ptr_equal(d->prepare(c, again), many[i]);
		assert_ptr_equal(d->prepare(c, sql[i]), many[i]);
		assert_int_equal(d->step(many[i]), SQL_STEP_ROW);
		assert_int_equal(d->column_int64(many[i], 0), i + 10);
		d->reset(many[i]);
	}
	assert_ptr_equal(d->prepare(c, one), s1);
	/* A statement that does not compile is not cached (ODBC drivers may
	 * send the text to the server only at the first execution). */
	if (strcmp(d->name, "odbc") != 0) {
		assert_null(d->prepare(c, "SELEC 1"));
		assert_null(d->prepare(c, "SELEC 1"));
	}
	/* Another connection prepares its own statements. */
	struct sql_conn *c2 = d->connect(&f->cfg, &err);
	if (c2 == NULL)
		fail_msg("connect: %s", err);
	struct sql_stmt *t1 = d->prepare(c2, one);
	assert_non_null(t1);
	assert_ptr_not_equal(t1, s1);
	assert_int_equal(d->step(t1), SQL_STEP_ROW);
	assert_int_equal(d->column_int64(t1, 0), 1);
	d->reset(t1);
	d->disconnect(c2);
	assert_ptr_equal(d->prepare(c, one), s1);
	d->disconnect(c);
}

static void test_accounts(void **state)
{
	struct fixture *f = *state;
	struct storage_account a1, a2, b1;
	make_account(&a1, 1, true, true, NULL);
	make_account(&a2, 2, true, false, "secret");
	make_account(&b1, 3, false, true, NULL);

	assert_int_equal(acc_create(f, "a.example", "alice", &a1), STORAGE_OK);
	assert_int_equal(acc_create(f, "a.example", "bob", &a2), STORAGE_OK);
	assert_int_equal(acc_create(f, "b.example", "alice", &b1), STORAGE_OK);
	assert_int_equal(acc_create(f, "a.example", "alice", &a2), STORAGE_EXISTS);
	assert_int_equal(acc_create(f, "a.example", "alice", &a1), STORAGE_EXISTS);
	/* What a job run again after a lost answer takes for its own
	 * account (storage_account_is_same): a1's salts and keys. */
	assert_true(storage_account_is_same(&a1, &a1));
	assert_false(storage_account_is_same(&a1, &a2));
	struct storage_account other;
	make_account(&other, 1, true, true, NULL);
	assert_true(storage_account_is_same(&other, &a1));
	other.sha256.stored_key[0] ^= 1; /* one key differs: another account */
	assert_false(storage_account_is_same(&other, &a1));
	storage_account_clear(&other);
	make_account(&other, 1, true, true, NULL);
	other.created++;
	assert_false(storage_account_is_same(&other, &a1));
	storage_account_clear(&other);
	/* nothing random in a clear password alone: never taken for its own */
	make_account(&other, 4, false, false, "clear");
	assert_false(storage_account_is_same(&other, &other));
	storage_account_clear(&other);

	if (f->be->embedded) {
		char want[200];
		snprintf(want, sizeof(want), "sqlite:%s", f->path);
		assert_string_equal(storage_describe(f->st), want);
	}
	struct res r = { 0 };
	assert_int_equal(acc_get(f, "a.example", "alice", &r), STORAGE_OK);
	assert_account_equal(&r.acc, &a1);
	assert_int_equal(r.acc.created, a1.created);
	assert_int_equal(acc_get(f, "a.example", "bob", &r), STORAGE_OK);
	assert_account_equal(&r.acc, &a2);
	/* Same user name, other host: another account. */
	assert_int_equal(acc_get(f, "b.example", "alice", &r), STORAGE_OK);
	assert_account_equal(&r.acc, &b1);
	assert_int_equal(acc_get(f, "a.example", "carol", &r), STORAGE_NOT_FOUND);
	assert_true(r.acc_null);
	assert_int_equal(acc_get(f, "c.example", "alice", &r), STORAGE_NOT_FOUND);

	/* Update replaces the credentials, keeps the creation time. */
	struct storage_account n;
	make_account(&n, 9, true, false, NULL);
	n.created = 0;
	assert_int_equal(acc_update(f, "a.example", "alice", &n), STORAGE_OK);
	assert_int_equal(acc_get(f, "a.example", "alice", &r), STORAGE_OK);
	assert_account_equal(&r.acc, &n);
	assert_int_equal(r.acc.created, a1.created);
	assert_int_equal(acc_update(f, "a.example", "nobody", &n), STORAGE_NOT_FOUND);
	assert_int_equal(acc_get(f, "b.example", "alice", &r), STORAGE_OK);
	assert_account_equal(&r.acc, &b1);

	/* Adding credentials sets only the hashes the account lacks. */
	struct storage_account add;
	make_account(&add, 7, true, true, "ignored");
	assert_int_equal(acc_add_credentials(f, "a.example", "alice", &add), STORAGE_OK);
	assert_int_equal(acc_get(f, "a.example", "alice", &r), STORAGE_OK);
	assert_true(r.acc.has_sha1 && r.acc.has_sha256 && r.acc.has_sha512);
	assert_creds_equal(&r.acc.sha1, &n.sha1, 20); /* kept */
	assert_creds_equal(&r.acc.sha256, &add.sha256, 32);
	assert_creds_equal(&r.acc.sha512, &add.sha512, 64);
	assert_null(r.acc.plain);
	assert_int_equal(r.acc.created, a1.created);
	struct storage_account again;
	make_account(&again, 8, true, true, NULL);
	assert_int_equal(acc_add_credentials(f, "a.example", "alice", &again), STORAGE_OK);
	assert_int_equal(acc_get(f, "a.example", "alice", &r), STORAGE_OK);
	assert_creds_equal(&r.acc.sha256, &add.sha256, 32); /* already there: kept */
	assert_int_equal(acc_add_credentials(f, "a.example", "nobody", &again), STORAGE_NOT_FOUND);
	/* an account with a clear password keeps it */
	assert_int_equal(acc_create(f, "a.example", "dave", &a2), STORAGE_OK);
	assert_int_equal(acc_add_credentials(f, "a.example", "dave", &again), STORAGE_OK);
	assert_int_equal(acc_get(f, "a.example", "dave", &r), STORAGE_OK);
	assert_string_equal(r.acc.plain, "secret");
	assert_creds_equal(&r.acc.sha1, &a2.sha1, 20);
	assert_creds_equal(&r.acc.sha256, &again.sha256, 32);
	assert_creds_equal(&r.acc.sha512, &again.sha512, 64);
	assert_int_equal(acc_remove(f, "a.example", "dave"), STORAGE_OK);
	storage_account_clear(&add);
	storage_account_clear(&again);

	struct res l = { 0 };
	assert_int_equal(acc_list(f, "a.example", &l), STORAGE_OK);
	assert_int_equal(l.names.count, 2);
	assert_string_equal(l.names.items[0], "alice");
	assert_string_equal(l.names.items[1], "bob");
	res_clear(&l);
	assert_int_equal(acc_list(f, "b.example", &l), STORAGE_OK);
	assert_int_equal(l.names.count, 1);
	assert_string_equal(l.names.items[0], "alice");
	res_clear(&l);
	assert_int_equal(acc_list(f, "c.example", &l), STORAGE_OK);
	assert_int_equal(l.names.count, 0);
	res_clear(&l);
	assert_int_equal(acc_count(f, "a.example"), 2);
	assert_int_equal(acc_count(f, "b.example"), 1);
	assert_int_equal(acc_count(f, "c.example"), 0);
	/* pages: one name at a time after the last, then an empty page */
	assert_int_equal(acc_page(f, "a.example", NULL, NULL, 1, &l), STORAGE_OK);
	assert_int_equal(l.names.count, 1);
	assert_string_equal(l.names.items[0], "alice");
	res_clear(&l);
	assert_int_equal(acc_page(f, "a.example", "alice", NULL, 1, &l), STORAGE_OK);
	assert_int_equal(l.names.count, 1);
	assert_string_equal(l.names.items[0], "bob");
	res_clear(&l);
	assert_int_equal(acc_page(f, "a.example", "bob", NULL, 5, &l), STORAGE_OK);
	assert_int_equal(l.names.count, 0);
	res_clear(&l);
	assert_int_equal(acc_page(f, "a.example", "", NULL, 5, &l), STORAGE_OK);
	assert_int_equal(l.names.count, 2);
	res_clear(&l);
	assert_int_equal(acc_page(f, "a.example", "b", NULL, 5, &l), STORAGE_OK); /* after a name not there */
	assert_int_equal(l.names.count, 1);
	assert_string_equal(l.names.items[0], "bob");
	res_clear(&l);
	/* names containing a text; LIKE's wildcards are plain characters */
	assert_int_equal(acc_page(f, "a.example", NULL, "li", 5, &l), STORAGE_OK);
	assert_int_equal(l.names.count, 1);
	assert_string_equal(l.names.items[0], "alice");
	res_clear(&l);
	assert_int_equal(acc_page(f, "a.example", "alice", "b", 5, &l), STORAGE_OK);
	assert_int_equal(l.names.count, 1);
	assert_string_equal(l.names.items[0], "bob");
	res_clear(&l);
	for (size_t i = 0; i < 4; i++) {
		static const char *const wild[] = { "%", "_", "a%", "!" };
		assert_int_equal(acc_page(f, "a.example", NULL, wild[i], 5, &l), STORAGE_OK);
		assert_int_equal(l.names.count, 0);
		res_clear(&l);
	}

	assert_int_equal(acc_remove(f, "a.example", "alice"), STORAGE_OK);
	assert_int_equal(acc_get(f, "a.example", "alice", &r), STORAGE_NOT_FOUND);
	assert_int_equal(acc_get(f, "b.example", "alice", &r), STORAGE_OK);
	assert_int_equal(acc_remove(f, "a.example", "alice"), STORAGE_NOT_FOUND);
	assert_int_equal(acc_count(f, "a.example"), 1);
	assert_int_equal(acc_count(f, "b.example"), 1);

	/* The store survives a close and reopen (schema already there). */
	if (!in_memory(f)) {
		storage_close(&f->st);
		char *err = NULL;
		assert_int_equal(open_store(f, &err), 0);
		assert_int_equal(acc_get(f, "a.example", "bob", &r), STORAGE_OK);
		assert_account_equal(&r.acc, &a2);
	}

	res_clear(&r);
	storage_account_clear(&a1);
	storage_account_clear(&a2);
	storage_account_clear(&b1);
	storage_account_clear(&n);
}

/* ---- tests: roster ---------------------------------------------------------------------- */

static void item_init(struct roster_item *it, const char *jid, const char *name, enum roster_subscription sub,
                      const char *const *groups)
{
	memset(it, 0, sizeof(*it));
	it->jid = strdup(jid);
	it->name = name != NULL ? strdup(name) : NULL;
	it->subscription = sub;
	for (size_t n = 0; groups != NULL && groups[n] != NULL; n++) {
		it->groups.items = realloc(it->groups.items, (n + 1) * sizeof(char *));
		it->groups.items[n] = strdup(groups[n]);
		it->groups.count = n + 1;
	}
}

static const struct roster_item *find(const struct res *r, const char *jid)
{
	for (size_t i = 0; i < r->nitems; i++)
		if (strcmp(r->items[i].jid, jid) == 0)
			return &r->items[i];
	return NULL;
}

static void test_roster(void **state)
{
	struct fixture *f = *state;
	struct res r = { 0 };
	/* A user who never had a roster: empty, version 0. */
	assert_int_equal(roster_get(f, "a.example", "alice", &r), STORAGE_OK);
	assert_int_equal(r.nitems, 0);
	assert_int_equal(r.version, 0);

	static const char *const g1[] = { "Work", "Friends", "Work", NULL };
	struct roster_item it;
	item_init(&it, "romeo@montague.example", "Romeo", SUB_TO, g1);
	it.ask_in = true;
	assert_int_equal(roster_set(f, "a.example", "alice", &it), STORAGE_OK);
	assert_int_equal(roster_get(f, "a.example", "alice", &r), STORAGE_OK);
	assert_int_equal(r.version, 1);
	assert_int_equal(r.nitems, 1);
	assert_string_equal(r.items[0].jid, "romeo@montague.example");
	assert_string_equal(r.items[0].name, "Romeo");
	assert_int_equal(r.items[0].subscription, SUB_TO);
	assert_false(r.items[0].ask_out);
	assert_true(r.items[0].ask_in);
	assert_false(r.items[0].approved);
	assert_int_equal(r.items[0].groups.count, 2); /* the duplicate is stored once */
	assert_string_equal(r.items[0].groups.items[0], "Friends");
	assert_string_equal(r.items[0].groups.items[1], "Work");

	/* Replace: every field and the groups. */
	roster_item_clear(&it);
	static const char *const g2[] = { "Family", NULL };
	item_init(&it, "romeo@montague.example", NULL, SUB_BOTH, g2);
	it.ask_out = true;
	it.approved = true;
	assert_int_equal(roster_set(f, "a.example", "alice", &it), STORAGE_OK);
	roster_item_clear(&it);
	item_init(&it, "juliet@capulet.example", "Juliet", SUB_FROM, NULL);
	assert_int_equal(roster_set(f, "a.example", "alice", &it), STORAGE_OK);
	roster_item_clear(&it);
	assert_int_equal(roster_get(f, "a.example", "alice", &r), STORAGE_OK);
	assert_int_equal(r.version, 3);
	assert_int_equal(r.nitems, 2);
	assert_string_equal(r.items[0].jid, "juliet@capulet.example"); /* sorted by jid */
	const struct roster_item *romeo = find(&r, "romeo@montague.example");
	assert_non_null(romeo);
	assert_null(romeo->name);
	assert_int_equal(romeo->subscription, SUB_BOTH);
	assert_true(romeo->ask_out);
	assert_false(romeo->ask_in);
	assert_true(romeo->approved);
	assert_int_equal(romeo->groups.count, 1);
	assert_string_equal(romeo->groups.items[0], "Family");
	const struct roster_item *juliet = find(&r, "juliet@capulet.example");
	assert_int_equal(juliet->subscription, SUB_FROM);
	assert_int_equal(juliet->groups.count, 0);

	/* Other users and other hosts are separate rosters. */
	struct res o = { 0 };
	assert_int_equal(roster_get(f, "b.example", "alice", &o), STORAGE_OK);
	assert_int_equal(o.nitems, 0);
	assert_int_equal(o.version, 0);
	item_init(&it, "romeo@montague.example", "R", SUB_NONE, g2);
	assert_int_equal(roster_set(f, "b.example", "alice", &it), STORAGE_OK);
	assert_int_equal(roster_set(f, "a.example", "bob", &it), STORAGE_OK);
	roster_item_clear(&it);
	assert_int_equal(roster_get(f, "b.example", "alice", &o), STORAGE_OK);
	assert_int_equal(o.nitems, 1);
	assert_int_equal(o.version, 1);
	assert_string_equal(o.items[0].name, "R");

	/* Remove: version goes up; a missing item is NOT_FOUND and changes nothing. */
	assert_int_equal(roster_remove(f, "a.example", "alice", "romeo@montague.example"), STORAGE_OK);
	assert_int_equal(roster_remove(f, "a.example", "alice", "romeo@montague.example"), STORAGE_NOT_FOUND);
	assert_int_equal(roster_get(f, "a.example", "alice", &r), STORAGE_OK);
	assert_int_equal(r.version, 4);
	assert_int_equal(r.nitems, 1);
	assert_string_equal(r.items[0].jid, "juliet@capulet.example");
	/* Removing the item removed its groups: set it again without any. */
	item_init(&it, "romeo@montague.example", NULL, SUB_NONE, NULL);
	assert_int_equal(roster_set(f, "a.example", "alice", &it), STORAGE_OK);
	roster_item_clear(&it);
	assert_int_equal(roster_get(f, "a.example", "alice", &r), STORAGE_OK);
	assert_int_equal(find(&r, "romeo@montague.example")->groups.count, 0);
	assert_int_equal(r.version, 5);
	/* bob@a.example's copy of romeo is untouched. */
	assert_int_equal(roster_get(f, "a.example", "bob", &o), STORAGE_OK);
	assert_int_equal(o.nitems, 1);
	assert_int_equal(o.items[0].groups.count, 1);

	res_clear(&r);
	res_clear(&o);
}

/* What a pending inbound request said is kept with it, replaced by the
 * next write, and not kept once the request is answered (ask_in off). */
static void test_roster_request_stanza(void **state)
{
	struct fixture *f = *state;
	struct res r = { 0 };
	static const char said[] = "<presence><status xml:lang='en'>Hi, I&apos;m Romeo</status>"
	                           "<nick xmlns='http://jabber.org/protocol/nick'>Romeo</nick></presence>";
	struct roster_item it;
	item_init(&it, "romeo@montague.example", NULL, SUB_NONE, NULL);
	it.ask_in = true;
	it.ask_in_stanza = strdup(said);
	assert_int_equal(roster_set(f, "a.example", "alice", &it), STORAGE_OK);
	assert_int_equal(roster_get(f, "a.example", "alice", &r), STORAGE_OK);
	assert_int_equal(r.nitems, 1);
	assert_true(r.items[0].ask_in);
	assert_non_null(r.items[0].ask_in_stanza);
	assert_string_equal(r.items[0].ask_in_stanza, said);

	/* A later request replaces it; one that said nothing clears it. */
	free(it.ask_in_stanza);
	it.ask_in_stanza = strdup("<presence><status>again</status></presence>");
	assert_int_equal(roster_set(f, "a.example", "alice", &it), STORAGE_OK);
	assert_int_equal(roster_get(f, "a.example", "alice", &r), STORAGE_OK);
	assert_string_equal(r.items[0].ask_in_stanza, "<presence><status>again</status></presence>");
	free(it.ask_in_stanza);
	it.ask_in_stanza = NULL;
	assert_int_equal(roster_set(f, "a.example", "alice", &it), STORAGE_OK);
	assert_int_equal(roster_get(f, "a.example", "alice", &r), STORAGE_OK);
	assert_null(r.items[0].ask_in_stanza);

	/* Answered: the item goes on without the request, and without what
	 * it said even when the caller still holds it. */
	it.ask_in_stanza = strdup(said);
	assert_int_equal(roster_set(f, "a.example", "alice", &it), STORAGE_OK);
	it.ask_in = false;
	it.subscription = SUB_FROM;
	assert_int_equal(roster_set(f, "a.example", "alice", &it), STORAGE_OK);
	roster_item_clear(&it);
	assert_int_equal(roster_get(f, "a.example", "alice", &r), STORAGE_OK);
	assert_int_equal(r.nitems, 1);
	assert_false(r.items[0].ask_in);
	assert_null(r.items[0].ask_in_stanza);
	res_clear(&r);
}

/* Whether the user has an item in the roster is kept apart from the
 * request it may have waiting: only an item that is nothing but a request
 * and that the user never put in the roster is pending-only; anything
 * else is stored in the roster whatever the caller said. */
static void test_roster_in_roster(void **state)
{
	struct fixture *f = *state;
	struct res r = { 0 };
	struct roster_item it;
	/* a request alone */
	item_init(&it, "romeo@montague.example", NULL, SUB_NONE, NULL);
	it.ask_in = true;
	assert_int_equal(roster_set(f, "a.example", "alice", &it), STORAGE_OK);
	roster_item_clear(&it);
	/* the same, added by the user (a roster set with a JID alone) */
	item_init(&it, "juliet@capulet.example", NULL, SUB_NONE, NULL);
	it.ask_in = true;
	it.in_roster = true;
	assert_int_equal(roster_set(f, "a.example", "alice", &it), STORAGE_OK);
	roster_item_clear(&it);
	/* a request on an item with a name, or with nothing waiting: in the
	 * roster even when the caller did not say so */
	item_init(&it, "nurse@capulet.example", "Nurse", SUB_NONE, NULL);
	it.ask_in = true;
	assert_int_equal(roster_set(f, "a.example", "alice", &it), STORAGE_OK);
	roster_item_clear(&it);
	item_init(&it, "tybalt@capulet.example", NULL, SUB_NONE, NULL);
	assert_int_equal(roster_set(f, "a.example", "alice", &it), STORAGE_OK);
	roster_item_clear(&it);
	assert_int_equal(roster_get(f, "a.example", "alice", &r), STORAGE_OK);
	assert_int_equal(r.nitems, 4);
	assert_false(find(&r, "romeo@montague.example")->in_roster);
	assert_true(roster_item_pending_only(find(&r, "romeo@montague.example")));
	assert_true(find(&r, "juliet@capulet.example")->in_roster);
	assert_false(roster_item_pending_only(find(&r, "juliet@capulet.example")));
	assert_true(find(&r, "nurse@capulet.example")->in_roster);
	assert_true(find(&r, "tybalt@capulet.example")->in_roster);

	/* The request answered, then cancelled: still in the roster (what is
	 * read is written back, in_roster with it). */
	it = *find(&r, "romeo@montague.example");
	it.ask_in = false;
	it.subscription = SUB_FROM;
	assert_int_equal(roster_set(f, "a.example", "alice", &it), STORAGE_OK);
	assert_int_equal(roster_get(f, "a.example", "alice", &r), STORAGE_OK);
	it = *find(&r, "romeo@montague.example");
	assert_true(it.in_roster);
	it.subscription = SUB_NONE;
	it.ask_in = true;
	assert_int_equal(roster_set(f, "a.example", "alice", &it), STORAGE_OK);
	assert_int_equal(roster_get(f, "a.example", "alice", &r), STORAGE_OK);
	assert_true(find(&r, "romeo@montague.example")->in_roster);
	assert_false(roster_item_pending_only(find(&r, "romeo@montague.example")));
	res_clear(&r);
}

static void test_remove_user_removes_roster(void **state)
{
	struct fixture *f = *state;
	struct storage_account a;
	make_account(&a, 4, true, true, NULL);
	assert_int_equal(acc_create(f, "a.example", "alice", &a), STORAGE_OK);
	assert_int_equal(acc_create(f, "b.example", "alice", &a), STORAGE_OK);
	static const char *const g[] = { "Friends", NULL };
	struct roster_item it;
	item_init(&it, "romeo@montague.example", "Romeo", SUB_BOTH, g);
	assert_int_equal(roster_set(f, "a.example", "alice", &it), STORAGE_OK);
	assert_int_equal(roster_set(f, "b.example", "alice", &it), STORAGE_OK);
	/* A user with a roster and no account (e.g. an LDAP user). */
	assert_int_equal(roster_set(f, "a.example", "ldapuser", &it), STORAGE_OK);
	roster_item_clear(&it);

	assert_int_equal(acc_remove(f, "a.example", "alice"), STORAGE_OK);
	struct res r = { 0 };
	assert_int_equal(roster_get(f, "a.example", "alice", &r), STORAGE_OK);
	assert_int_equal(r.nitems, 0);
	assert_int_equal(r.version, 0);
	assert_int_equal(roster_get(f, "b.example", "alice", &r), STORAGE_OK);
	assert_int_equal(r.nitems, 1);
	assert_int_equal(r.items[0].groups.count, 1);
	assert_int_equal(r.version, 1);
	assert_int_equal(acc_get(f, "b.example", "alice", &r), STORAGE_OK);

	/* No account: NOT_FOUND, but the user's data is gone all the same. */
	assert_int_equal(acc_remove(f, "a.example", "ldapuser"), STORAGE_NOT_FOUND);
	assert_int_equal(roster_get(f, "a.example", "ldapuser", &r), STORAGE_OK);
	assert_int_equal(r.nitems, 0);

	/* A new account of the same name starts empty, groups included. */
	assert_int_equal(acc_create(f, "a.example", "alice", &a), STORAGE_OK);
	item_init(&it, "romeo@montague.example", NULL, SUB_NONE, NULL);
	assert_int_equal(roster_set(f, "a.example", "alice", &it), STORAGE_OK);
	roster_item_clear(&it);
	assert_int_equal(roster_get(f, "a.example", "alice", &r), STORAGE_OK);
	assert_int_equal(r.nitems, 1);
	assert_int_equal(r.items[0].groups.count, 0);
	assert_int_equal(r.version, 1);
	res_clear(&r);
	storage_account_clear(&a);
}

/* ---- tests: offline messages ------------------------------------------------------ */

static void msg_text(char *out, size_t len, int i)
{
	snprintf(out, len,
	         "<message to='alice@a.example' type='chat'><body>m%d &amp; \xc3\xa9</body>"
	         "<delay xmlns='urn:xmpp:delay' from='a.example' stamp='2026-01-01T00:00:00Z'/>"
	         "</message>",
	         i);
}

static void test_offline(void **state)
{
	struct fixture *f = *state;
	struct storage_account a;
	make_account(&a, 11, true, true, NULL);
	char m[8][256];
	for (int i = 0; i < 8; i++)
		msg_text(m[i], sizeof(m[i]), i);

	/* No account: nothing stored. */
	assert_int_equal(off_store(f, "a.example", "alice", m[0], 10), STORAGE_NOT_FOUND);
	assert_int_equal(off_count(f, "a.example", "alice"), 0);

	assert_int_equal(acc_create(f, "a.example", "alice", &a), STORAGE_OK);
	assert_int_equal(acc_create(f, "b.example", "alice", &a), STORAGE_OK);
	struct res r = { 0 };
	assert_int_equal(off_get(f, "a.example", "alice", &r), STORAGE_OK);
	assert_int_equal(r.nmsgs, 0);

	/* Up to the quota; the next one is FULL and not stored. */
	for (int i = 0; i < 3; i++)
		assert_int_equal(off_store(f, "a.example", "alice", m[i], 3), STORAGE_OK);
	assert_int_equal(off_store(f, "a.example", "alice", m[3], 3), STORAGE_FULL);
	assert_int_equal(off_count(f, "a.example", "alice"), 3);
	/* 0: no quota. */
	assert_int_equal(off_store(f, "a.example", "alice", m[3], 0), STORAGE_OK);
	/* Another host's user of the same name has a queue of its own. */
	assert_int_equal(off_store(f, "b.example", "alice", m[7], 1), STORAGE_OK);
	assert_int_equal(off_store(f, "b.example", "alice", m[6], 1), STORAGE_FULL);
	/* A host's queues together. */
	assert_int_equal(off_count_host(f, "a.example"), 4);
	assert_int_equal(off_count_host(f, "b.example"), 1);
	assert_int_equal(off_count_host(f, "c.example"), 0);

	/* Oldest first, text kept byte for byte, seq rising, a creation time. */
	int64_t now = (int64_t)time(NULL);
	assert_int_equal(off_get(f, "a.example", "alice", &r), STORAGE_OK);
	assert_false(r.msgs_null);
	assert_int_equal(r.nmsgs, 4);
	for (size_t i = 0; i < 4; i++) {
		assert_string_equal(r.msgs[i].stanza, m[i]);
		if (i > 0)
			assert_true(r.msgs[i].seq > r.msgs[i - 1].seq);
		assert_true(r.msgs[i].created >= now - 60 && r.msgs[i].created <= now + 60);
	}
	int64_t seq1 = r.msgs[1].seq, seq3 = r.msgs[3].seq;

	/* Delete a prefix; the rest stays, in order. */
	assert_int_equal(off_delete(f, "a.example", "alice", 0), STORAGE_OK);
	assert_int_equal(off_count(f, "a.example", "alice"), 4);
	assert_int_equal(off_delete(f, "a.example", "alice", seq1), STORAGE_OK);
	assert_int_equal(off_get(f, "a.example", "alice", &r), STORAGE_OK);
	assert_int_equal(r.nmsgs, 2);
	assert_string_equal(r.msgs[0].stanza, m[2]);
	assert_string_equal(r.msgs[1].stanza, m[3]);
	/* The other host's queue was not touched. */
	assert_int_equal(off_count(f, "b.example", "alice"), 1);

	/* Emptied, then a new message: a seq never used before, so a stale
	 * "delete up to" cannot reach it. */
	assert_int_equal(off_delete(f, "a.example", "alice", seq3), STORAGE_OK);
	assert_int_equal(off_count(f, "a.example", "alice"), 0);
	assert_int_equal(off_store(f, "a.example", "alice", m[4], 3), STORAGE_OK);
	assert_int_equal(off_delete(f, "a.example", "alice", seq3), STORAGE_OK);
	assert_int_equal(off_get(f, "a.example", "alice", &r), STORAGE_OK);
	assert_int_equal(r.nmsgs, 1);
	assert_true(r.msgs[0].seq > seq3);
	assert_string_equal(r.msgs[0].stanza, m[4]);

	/* Account removal takes the queue with it (and only that user's). */
	assert_int_equal(off_store(f, "a.example", "alice", m[5], 3), STORAGE_OK);
	assert_int_equal(acc_remove(f, "a.example", "alice"), STORAGE_OK);
	assert_int_equal(off_count(f, "a.example", "alice"), 0);
	assert_int_equal(acc_create(f, "a.example", "alice", &a), STORAGE_OK);
	assert_int_equal(off_get(f, "a.example", "alice", &r), STORAGE_OK);
	assert_int_equal(r.nmsgs, 0);
	assert_int_equal(off_count(f, "b.example", "alice"), 1);

	/* Stored means stored: the queue survives a close and reopen. */
	assert_int_equal(off_store(f, "a.example", "alice", m[6], 3), STORAGE_OK);
	if (!in_memory(f)) {
		storage_close(&f->st);
		char *err = NULL;
		assert_int_equal(open_store(f, &err), 0);
	}
	assert_int_equal(off_get(f, "a.example", "alice", &r), STORAGE_OK);
	assert_int_equal(r.nmsgs, 1);
	assert_string_equal(r.msgs[0].stanza, m[6]);

	assert_string_equal(storage_result_str(STORAGE_FULL), "quota full");
	res_clear(&r);
	storage_account_clear(&a);
}

/* A queue read a page at a time: each page is the next messages in order,
 * with the queue's length and how many follow; other queues never mix in. */
static void test_offline_page(void **state)
{
	struct fixture *f = *state;
	struct storage_account a;
	make_account(&a, 13, true, true, NULL);
	assert_int_equal(acc_create(f, "a.example", "alice", &a), STORAGE_OK);
	assert_int_equal(acc_create(f, "a.example", "bob", &a), STORAGE_OK);
	assert_int_equal(acc_create(f, "b.example", "alice", &a), STORAGE_OK);
	struct res r = { 0 };
	assert_int_equal(off_page(f, "a.example", "alice", 0, 3, &r), STORAGE_OK);
	assert_int_equal(r.nmsgs, 0);
	assert_int_equal(r.page_total, 0);
	assert_int_equal(r.page_more, 0);
	char m[7][256];
	for (int i = 0; i < 7; i++) {
		msg_text(m[i], sizeof(m[i]), i);
		assert_int_equal(off_store(f, "a.example", "alice", m[i], 0), STORAGE_OK);
		/* other queues' messages between alice's */
		assert_int_equal(off_store(f, "a.example", "bob", m[i], 0), STORAGE_OK);
		assert_int_equal(off_store(f, "b.example", "alice", m[i], 0), STORAGE_OK);
	}
	int64_t after = 0;
	static const size_t sizes[] = { 3, 3, 1 }, follow[] = { 4, 1, 0 };
	for (size_t p = 0, seen = 0; p < 3; p++) {
		assert_int_equal(off_page(f, "a.example", "alice", after, 3, &r), STORAGE_OK);
		assert_int_equal(r.nmsgs, sizes[p]);
		assert_int_equal(r.page_total, 7);
		assert_int_equal(r.page_more, follow[p]);
		for (size_t i = 0; i < r.nmsgs; i++) {
			assert_string_equal(r.msgs[i].stanza, m[seen + i]);
			assert_true(r.msgs[i].seq > after);
			after = r.msgs[i].seq;
		}
		seen += r.nmsgs;
	}
	/* after the last one: nothing, and nothing follows */
	assert_int_equal(off_page(f, "a.example", "alice", after, 3, &r), STORAGE_OK);
	assert_int_equal(r.nmsgs, 0);
	assert_int_equal(r.page_total, 7);
	assert_int_equal(r.page_more, 0);
	/* a page that ends exactly at the last message */
	assert_int_equal(off_page(f, "a.example", "alice", 0, 7, &r), STORAGE_OK);
	assert_int_equal(r.nmsgs, 7);
	assert_int_equal(r.page_more, 0);
	/* a page of one, and reading changes nothing */
	assert_int_equal(off_page(f, "a.example", "alice", 0, 1, &r), STORAGE_OK);
	assert_int_equal(r.nmsgs, 1);
	assert_string_equal(r.msgs[0].stanza, m[0]);
	assert_int_equal(r.page_more, 6);
	assert_int_equal(off_count(f, "a.example", "alice"), 7);
	assert_int_equal(off_count(f, "a.example", "bob"), 7);
	/* no such account: an empty queue */
	assert_int_equal(off_page(f, "a.example", "nobody", 0, 5, &r), STORAGE_OK);
	assert_int_equal(r.nmsgs, 0);
	assert_int_equal(r.page_total, 0);
	res_clear(&r);
	storage_account_clear(&a);
}

static void test_offline_order_and_cancel(void **state)
{
	struct fixture *f = *state;
	struct storage_account a;
	make_account(&a, 12, true, true, NULL);
	assert_int_equal(acc_create(f, "a.example", "alice", &a), STORAGE_OK);
	char m[10][256];
	struct res w[10], g = { 0 }, c = { 0 };
	memset(w, 0, sizeof(w));
	/* Stores queued back to back, then a read: the read sees them all, in
	 * the order they were asked for; a cancelled read never answers. */
	for (int i = 0; i < 10; i++) {
		msg_text(m[i], sizeof(m[i]), i);
		assert_non_null(CALL(storage_offline_store(f->st, "a.example", "alice", "x@y.example", m[i],
		                                           100, done_cb, &w[i])));
	}
	struct storage_req *cq = CALL(storage_offline_get(f->st, "a.example", "alice", offline_cb, &c));
	assert_non_null(CALL(storage_offline_get(f->st, "a.example", "alice", offline_cb, &g)));
	storage_cancel(cq);
	run(f);
	for (int i = 0; i < 10; i++) {
		assert_int_equal(w[i].calls, 1);
		assert_int_equal(w[i].r, STORAGE_OK);
	}
	assert_int_equal(c.calls, 0);
	assert_int_equal(g.calls, 1);
	assert_int_equal(g.nmsgs, 10);
	for (int i = 0; i < 10; i++)
		assert_string_equal(g.msgs[i].stanza, m[i]);
	res_clear(&g);
	storage_account_clear(&a);
}

/* Group commit: offline stores queued behind a busy one are stored in one
 * transaction, and each still gets the answer it would have got alone, in
 * the order asked: the quota is exact inside a batch, a user without an
 * account is NOT_FOUND, and every stored message is there once, in order.
 * Then the same with every batch failing before its commit: the store
 * runs each job alone and the answers and rows are the same. */
static void run_offline_batch(struct fixture *f, const char *alice, const char *bob, bool fail_batches)
{
	enum { N = 60, QUOTA = 7 };
	char m[N][256];
	struct res w[N], warm = { 0 };
	int order[N], len = 0;
	memset(w, 0, sizeof(w));
	storage_sql_test_fail_batches(f->st, fail_batches);
	unsigned long batched0 = storage_sql_test_batched(f->st);
	/* The worker has its connection before the timing below. */
	assert_int_equal(off_get(f, "b.example", alice, &warm), STORAGE_OK);
	res_clear(&warm);
	bool locked = f->be->lock != NULL && strcmp(f->cfg.driver, "odbc") != 0 &&
	              strcmp(f->cfg.driver, "mysql") != 0;
	if (locked)
		f->be->lock(f);
	for (int i = 0; i < N; i++) {
		/* alice (quota QUOTA), bob (no quota), carol (no account). */
		const char *user = i % 3 == 0 ? alice : i % 3 == 1 ? bob : "carol";
		msg_text(m[i], sizeof(m[i]), i);
		w[i].order = order;
		w[i].order_len = &len;
		w[i].tag = i;
		assert_non_null(CALL(storage_offline_store(f->st, "b.example", user, "x@y.example", m[i],
		                                           i % 3 == 0 ? QUOTA : 0, done_cb, &w[i])));
		if (i == 0 && locked)
			usleep(200000); /* the worker waits on the lock with job 0 */
	}
	if (locked)
		f->be->unlock(f);
	run(f);
	assert_int_equal(len, N);
	for (int i = 0; i < N; i++) {
		assert_int_equal(w[i].calls, 1);
		assert_int_equal(order[i], i); /* one worker: answered in order */
		enum storage_result want = i % 3 == 2                    ? STORAGE_NOT_FOUND
		                           : i % 3 == 1 || i / 3 < QUOTA ? STORAGE_OK
		                                                         : STORAGE_FULL;
		if (w[i].r != want)
			fail_msg("job %d: %s, expected %s", i, storage_result_str(w[i].r),
			         storage_result_str(want));
	}
	struct res a = { 0 }, b = { 0 };
	assert_int_equal(off_get(f, "b.example", alice, &a), STORAGE_OK);
	assert_int_equal(off_get(f, "b.example", bob, &b), STORAGE_OK);
	assert_int_equal(a.nmsgs, QUOTA);
	assert_int_equal(b.nmsgs, N / 3);
	for (int k = 0; k < QUOTA; k++)
		assert_string_equal(a.msgs[k].stanza, m[3 * k]);
	for (int k = 0; k < N / 3; k++)
		assert_string_equal(b.msgs[k].stanza, m[3 * k + 1]);
	unsigned long batched = storage_sql_test_batched(f->st) - batched0;
	if (fail_batches)
		assert_int_equal(batched, 0);
	else if (locked && (strncmp(f->be->name, "sqlite", 6) == 0 || strncmp(f->be->name, "pgsql", 5) == 0))
		assert_true(batched >= N / 2); /* the queue was stored in batches */
	storage_sql_test_fail_batches(f->st, false);
	res_clear(&a);
	res_clear(&b);
}

static void test_offline_batch(void **state)
{
	struct fixture *f = *state;
	if (in_memory(f))
		skip(); /* no transactions to group */
	storage_close(&f->st);
	f->cfg.pool_size = 1;
	char *err = NULL;
	assert_int_equal(open_store(f, &err), 0);
	const char *users[] = { "dora", "bob", "erin", "frank" };
	for (size_t i = 0; i < ARRAY_SIZE(users); i++) {
		struct storage_account a;
		make_account(&a, 14, true, true, NULL);
		assert_int_equal(acc_create(f, "b.example", users[i], &a), STORAGE_OK);
		storage_account_clear(&a);
	}
	run_offline_batch(f, "dora", "bob", false);
	run_offline_batch(f, "erin", "frank", true);
}

/* Submit (not run) an offline store job with a given token. */
static void off_submit_token(struct fixture *f, const char *user, unsigned max, const char *token,
                             struct res *r)
{
	assert_non_null(
	        CALL(storage_offline_store_token(f->st, "a.example", user, "romeo@montague.example/orchard",
	                                         "<message id='same'/>", max, token, done_cb, r)));
}

static enum storage_result off_token_run(struct fixture *f, const char *user, unsigned max, const char *token)
{
	struct res r = { 0 };
	off_submit_token(f, user, max, token, &r);
	run(f);
	assert_int_equal(r.calls, 1);
	return r.r;
}

/* A job run again after the answer to its COMMIT was lost (the same
 * token) counts as stored and is not stored twice, also when it filled
 * the queue itself; another job with the same text is another message.
 * The same again with the two tries queued together (a batch that falls
 * back to single jobs). */
static void test_offline_token(void **state)
{
	struct fixture *f = *state;
	if (in_memory(f))
		skip(); /* no connection to lose, no token kept */
	const char *users[] = { "bob", "carol", "dora" };
	for (size_t i = 0; i < ARRAY_SIZE(users); i++) {
		struct storage_account a;
		make_account(&a, 26, true, true, NULL);
		assert_int_equal(acc_create(f, "a.example", users[i], &a), STORAGE_OK);
		storage_account_clear(&a);
	}
	if (strcmp(f->cfg.driver, "sqlite") == 0) {
		/* no answer to lose either: no token drawn */
		assert_int_equal(off_store(f, "a.example", "bob", "<message/>", 0), STORAGE_OK);
		sqlite3 *db;
		sqlite3_stmt *q;
		assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
		assert_int_equal(sqlite3_prepare_v2(db, "SELECT COUNT(*), COUNT(token) FROM offline_messages",
		                                    -1, &q, NULL),
		                 SQLITE_OK);
		assert_int_equal(sqlite3_step(q), SQLITE_ROW);
		assert_int_equal(sqlite3_column_int(q, 0), 1);
		assert_int_equal(sqlite3_column_int(q, 1), 0);
		sqlite3_finalize(q);
		sqlite3_close(db);
		return;
	}
	struct res r = { 0 };
	assert_int_equal(off_token_run(f, "bob", 0, "tokenaaaaaaaaaaaaaaaaaa1"), STORAGE_OK);
	assert_int_equal(off_token_run(f, "bob", 0, "tokenaaaaaaaaaaaaaaaaaa1"), STORAGE_OK);
	assert_int_equal(off_get(f, "a.example", "bob", &r), STORAGE_OK);
	assert_int_equal(r.nmsgs, 1);
	assert_int_equal(off_token_run(f, "bob", 0, "tokenaaaaaaaaaaaaaaaaaa2"), STORAGE_OK);
	assert_int_equal(off_get(f, "a.example", "bob", &r), STORAGE_OK);
	assert_int_equal(r.nmsgs, 2);
	/* the last free place, taken by the first try */
	assert_int_equal(off_token_run(f, "carol", 1, "tokenaaaaaaaaaaaaaaaaaa3"), STORAGE_OK);
	assert_int_equal(off_token_run(f, "carol", 1, "tokenaaaaaaaaaaaaaaaaaa3"), STORAGE_OK);
	assert_int_equal(off_token_run(f, "carol", 1, "tokenaaaaaaaaaaaaaaaaaa4"), STORAGE_FULL);
	assert_int_equal(off_get(f, "a.example", "carol", &r), STORAGE_OK);
	assert_int_equal(r.nmsgs, 1);
	/* queued together behind a locked database: one worker takes them as
	 * a batch, which the repeated token makes fail and run job by job */
	storage_close(&f->st);
	f->cfg.pool_size = 1;
	char *err = NULL;
	assert_int_equal(open_store(f, &err), 0);
	assert_int_equal(off_get(f, "a.example", "dora", &r), STORAGE_OK);
	bool locked = f->be->lock != NULL && strcmp(f->cfg.driver, "odbc") != 0 &&
	              strcmp(f->cfg.driver, "mysql") != 0;
	struct res w[3];
	memset(w, 0, sizeof(w));
	const char *tokens[3] = { "tokenaaaaaaaaaaaaaaaaaa5", "tokenaaaaaaaaaaaaaaaaaa5",
		                  "tokenaaaaaaaaaaaaaaaaaa6" };
	if (locked)
		f->be->lock(f);
	for (int i = 0; i < 3; i++) {
		off_submit_token(f, "dora", 0, tokens[i], &w[i]);
		if (i == 0 && locked)
			usleep(200000); /* the worker waits on the lock with the first */
	}
	if (locked)
		f->be->unlock(f);
	run(f);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(w[i].calls, 1);
		assert_int_equal(w[i].r, STORAGE_OK);
	}
	assert_int_equal(off_get(f, "a.example", "dora", &r), STORAGE_OK);
	assert_int_equal(r.nmsgs, 2);
	res_clear(&r);
}

/* Texts of every length around the drivers' buffer sizes come back whole,
 * in one read: a value that exactly fills a column buffer, one just longer,
 * and ones that fill the buffer a longer value before them grew. */
static void test_offline_lengths(void **state)
{
	struct fixture *f = *state;
	struct storage_account a;
	make_account(&a, 13, true, true, NULL);
	assert_int_equal(acc_create(f, "a.example", "carol", &a), STORAGE_OK);
	static const size_t lens[] = { 255,  256,  257,   1000,  1001,  1002, 999,
		                       4096, 4097, 60000, 60001, 60002, 1 };
	enum { N = sizeof(lens) / sizeof(lens[0]) };
	char *m[N];
	for (size_t i = 0; i < N; i++) {
		m[i] = xmalloc(lens[i] + 1);
		for (size_t k = 0; k < lens[i]; k++)
			m[i][k] = (char)('a' + (k + i) % 26);
		m[i][lens[i]] = '\0';
		assert_int_equal(off_store(f, "a.example", "carol", m[i], 0), STORAGE_OK);
	}
	struct res r = { 0 };
	assert_int_equal(off_get(f, "a.example", "carol", &r), STORAGE_OK);
	assert_int_equal(r.nmsgs, N);
	for (size_t i = 0; i < N; i++) {
		assert_int_equal(strlen(r.msgs[i].stanza), lens[i]);
		assert_string_equal(r.msgs[i].stanza, m[i]);
		free(m[i]);
	}
	res_clear(&r);
	storage_account_clear(&a);
}

/* ---- tests: vCards, private storage, last activity --------------------------------- */

static const char vcard1[] = "<vCard xmlns='vcard-temp'><FN>Juliet Capulet</FN></vCard>";
static const char vcard2[] = "<vCard xmlns='vcard-temp'><FN>J. \xc3\xa9</FN><NICKNAME>jc</NICKNAME></vCard>";

static void test_vcard(void **state)
{
	struct fixture *f = *state;
	struct res r = { 0 };
	assert_int_equal(vcard_get(f, "a.example", "juliet", &r), STORAGE_NOT_FOUND);
	assert_true(r.text_null);
	assert_int_equal(vcard_set(f, "a.example", "juliet", vcard1), STORAGE_OK);
	assert_int_equal(vcard_get(f, "a.example", "juliet", &r), STORAGE_OK);
	assert_string_equal(r.text, vcard1);
	/* Replaced, not added. */
	assert_int_equal(vcard_set(f, "a.example", "juliet", vcard2), STORAGE_OK);
	assert_int_equal(vcard_get(f, "a.example", "juliet", &r), STORAGE_OK);
	assert_string_equal(r.text, vcard2);
	/* Per host and per user. */
	assert_int_equal(vcard_get(f, "b.example", "juliet", &r), STORAGE_NOT_FOUND);
	assert_int_equal(vcard_get(f, "a.example", "romeo", &r), STORAGE_NOT_FOUND);
	assert_int_equal(vcard_set(f, "b.example", "juliet", vcard1), STORAGE_OK);
	assert_int_equal(vcard_get(f, "a.example", "juliet", &r), STORAGE_OK);
	assert_string_equal(r.text, vcard2);
	/* A large one (64 KiB) comes back whole. */
	size_t big = 65536;
	char *xml = malloc(big + 64);
	int off = snprintf(xml, big + 64, "<vCard xmlns='vcard-temp'><DESC>");
	memset(xml + off, 'x', big);
	strcpy(xml + off + big, "</DESC></vCard>");
	assert_int_equal(vcard_set(f, "a.example", "big", xml), STORAGE_OK);
	assert_int_equal(vcard_get(f, "a.example", "big", &r), STORAGE_OK);
	assert_string_equal(r.text, xml);
	free(xml);
	res_clear(&r);
}

/* A store that does not hold an area (the LDAP stores hold only some):
 * its operations fail with a permanent error, later, and the store says
 * so. */
static void test_missing_area(void **state)
{
	struct fixture *f = *state;
	assert_true(storage_has_area(f->st, STORAGE_AREA_VCARD));
	const struct vcard_store_vfuncs *vcard = f->st->vcard;
	f->st->vcard = NULL;
	assert_false(storage_has_area(f->st, STORAGE_AREA_VCARD));
	assert_true(storage_has_area(f->st, STORAGE_AREA_ROSTER));
	struct res r = { 0 };
	assert_int_equal(vcard_get(f, "a.example", "juliet", &r), STORAGE_ERROR);
	assert_true(r.text_null);
	f->st->vcard = vcard;
	assert_int_equal(vcard_get(f, "a.example", "juliet", &r), STORAGE_NOT_FOUND);
	assert_string_equal(storage_area_str(STORAGE_AREA_SRG), "srg");
	res_clear(&r);
}

/* A store without workers whose vCard gets answer later on the loop (as
 * the LDAP stores do): it holds each job and the test releases it. */
static struct vcard_get_job *held_job;

static enum storage_result held_get(void *conn, struct vcard_get_job *j)
{
	(void)conn;
	assert_null(held_job);
	held_job = j;
	storage_req_hold(&j->base);
	return STORAGE_OK;
}

static const struct vcard_store_vfuncs held_vcard = { .get = held_get };

static void held_release(enum storage_result res)
{
	struct vcard_get_job *j = held_job;
	assert_non_null(j);
	held_job = NULL;
	if (res == STORAGE_OK)
		j->out_text = pool_strdup(j->base.pool, "<vCard xmlns='vcard-temp'/>");
	storage_req_release(&j->base, res);
}

static void held_close(struct storage *st)
{
	if (held_job != NULL)
		held_release(STORAGE_TEMPFAIL);
	storage_base_deinit(st);
	free(st);
}

static const struct storage_vfuncs held_vfuncs = { .name = "held", .close = held_close };

static void test_held_jobs(void **state)
{
	struct fixture *f = *state;
	struct storage *st = xcalloc(1, sizeof(*st));
	storage_base_init(st, &held_vfuncs, f->loop, "held");
	st->vcard = &held_vcard;
	assert_true(storage_has_area(st, STORAGE_AREA_VCARD));
	assert_false(storage_has_area(st, STORAGE_AREA_ROSTER));

	/* Held after its work; answered when released, with what it left. */
	struct res r = { 0 };
	assert_non_null(CALL(storage_vcard_get(st, "a.example", "juliet", text_cb, &r)));
	run(f);
	assert_non_null(held_job);
	assert_int_equal(r.calls, 0);
	held_release(STORAGE_OK);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.r, STORAGE_OK);
	assert_string_equal(r.text, "<vCard xmlns='vcard-temp'/>");

	/* Cancelled while held: the release frees it without an answer. */
	struct res c = { 0 };
	struct storage_req *q = CALL(storage_vcard_get(st, "a.example", "romeo", text_cb, &c));
	run(f);
	assert_non_null(held_job);
	storage_cancel(q);
	held_release(STORAGE_OK);
	assert_int_equal(c.calls, 0);

	/* An area the store does not hold: a permanent error, later. */
	struct res e = { 0 };
	assert_non_null(CALL(storage_roster_get(st, "a.example", "juliet", roster_cb, &e)));
	assert_int_equal(e.calls, 0);
	run(f);
	assert_int_equal(e.calls, 1);
	assert_int_equal(e.r, STORAGE_ERROR);

	/* Held when the store closes: the close releases it. */
	struct res z = { 0 };
	assert_non_null(CALL(storage_vcard_get(st, "a.example", "juliet", text_cb, &z)));
	run(f);
	storage_close(&st);
	assert_null(held_job);
	assert_int_equal(z.calls, 1);
	assert_int_equal(z.r, STORAGE_TEMPFAIL);
	res_clear(&r);
	res_clear(&c);
	res_clear(&e);
	res_clear(&z);
}

static void test_private(void **state)
{
	struct fixture *f = *state;
	struct res r = { 0 };
	assert_int_equal(priv_get(f, "a.example", "juliet", "storage:bookmarks", &r), STORAGE_NOT_FOUND);
	assert_true(r.text_null);
	const struct private_item two[] = {
		{ "storage:bookmarks",
		  "<storage xmlns='storage:bookmarks'><url name='x' url='http://x/'/></storage>" },
		{ "urn:example:prefs", "<prefs xmlns='urn:example:prefs'>dark</prefs>" },
	};
	assert_int_equal(priv_set(f, "a.example", "juliet", two, 2), STORAGE_OK);
	assert_int_equal(priv_get(f, "a.example", "juliet", "storage:bookmarks", &r), STORAGE_OK);
	assert_string_equal(r.text, two[0].data);
	assert_int_equal(priv_get(f, "a.example", "juliet", "urn:example:prefs", &r), STORAGE_OK);
	assert_string_equal(r.text, two[1].data);
	/* Replacing one namespace leaves the other. */
	const struct private_item one[] = {
		{ "urn:example:prefs", "<prefs xmlns='urn:example:prefs'>light</prefs>" },
	};
	assert_int_equal(priv_set(f, "a.example", "juliet", one, 1), STORAGE_OK);
	assert_int_equal(priv_get(f, "a.example", "juliet", "urn:example:prefs", &r), STORAGE_OK);
	assert_string_equal(r.text, one[0].data);
	assert_int_equal(priv_get(f, "a.example", "juliet", "storage:bookmarks", &r), STORAGE_OK);
	assert_string_equal(r.text, two[0].data);
	/* Per host, per user, per namespace. */
	assert_int_equal(priv_get(f, "b.example", "juliet", "urn:example:prefs", &r), STORAGE_NOT_FOUND);
	assert_int_equal(priv_get(f, "a.example", "romeo", "urn:example:prefs", &r), STORAGE_NOT_FOUND);
	assert_int_equal(priv_get(f, "a.example", "juliet", "urn:example:other", &r), STORAGE_NOT_FOUND);
	/* All of a user's elements, by namespace. */
	assert_int_equal(priv_list(f, "a.example", "juliet", &r), STORAGE_OK);
	char *want = xasprintf("storage:bookmarks=%s|urn:example:prefs=%s", two[0].data, one[0].data);
	assert_string_equal(r.text, want);
	free(want);
	assert_int_equal(priv_list(f, "a.example", "romeo", &r), STORAGE_OK);
	assert_string_equal(r.text, "");
	res_clear(&r);
}

/* A set of several items is one transaction: when the second insert fails
 * (a trigger refuses it), the first is not kept either. */
/* Make the database refuse some rows from outside (a trigger), in the
 * dialect of the backend: event INSERT or DELETE, cond on NEW/OLD. */
static void refuse_rows(struct fixture *f, const char *name, const char *event, const char *table,
                        const char *cond)
{
	char sql[1024];
	if (strcmp(f->be->dialect, "pgsql") == 0)
		snprintf(sql, sizeof(sql),
		         "CREATE FUNCTION %s_fn() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
		         "IF %s THEN RAISE EXCEPTION 'refused'; END IF; "
		         "IF TG_OP = 'DELETE' THEN RETURN OLD; END IF; RETURN NEW; END $$; "
		         "CREATE TRIGGER %s BEFORE %s ON %s FOR EACH ROW EXECUTE FUNCTION %s_fn()",
		         name, cond, name, event, table, name);
	else if (strcmp(f->be->dialect, "mysql") == 0)
		snprintf(sql, sizeof(sql),
		         "CREATE TRIGGER %s BEFORE %s ON %s FOR EACH ROW IF %s THEN "
		         "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused'; END IF",
		         name, event, table, cond);
	else
		snprintf(
		        sql, sizeof(sql),
		        "CREATE TRIGGER %s BEFORE %s ON %s WHEN %s BEGIN SELECT RAISE(ABORT, 'refused'); END",
		        name, event, table, cond);
	f->be->exec_sql(f, sql);
}

static void allow_rows(struct fixture *f, const char *name, const char *table)
{
	char sql[256];
	if (strcmp(f->be->dialect, "pgsql") == 0)
		snprintf(sql, sizeof(sql), "DROP TRIGGER %s ON %s; DROP FUNCTION %s_fn()", name, table, name);
	else
		snprintf(sql, sizeof(sql), "DROP TRIGGER %s", name);
	f->be->exec_sql(f, sql);
}

static void test_private_all_or_nothing(void **state)
{
	struct fixture *f = *state;
	if (f->be->exec_sql == NULL)
		skip();
	struct res r = { 0 };
	const struct private_item two[] = {
		{ "urn:example:a", "<a xmlns='urn:example:a'/>" },
		{ "urn:example:bad", "<bad xmlns='urn:example:bad'/>" },
	};
	refuse_rows(f, "refuse_bad", "INSERT", "private_storage", "NEW.namespace = 'urn:example:bad'");
	assert_int_not_equal(priv_set(f, "a.example", "juliet", two, 2), STORAGE_OK);
	assert_int_equal(priv_get(f, "a.example", "juliet", "urn:example:a", &r), STORAGE_NOT_FOUND);
	assert_int_equal(priv_get(f, "a.example", "juliet", "urn:example:bad", &r), STORAGE_NOT_FOUND);
	allow_rows(f, "refuse_bad", "private_storage");
	assert_int_equal(priv_set(f, "a.example", "juliet", two, 2), STORAGE_OK);
	assert_int_equal(priv_get(f, "a.example", "juliet", "urn:example:a", &r), STORAGE_OK);
	assert_int_equal(priv_get(f, "a.example", "juliet", "urn:example:bad", &r), STORAGE_OK);
	res_clear(&r);
}

static void test_last(void **state)
{
	struct fixture *f = *state;
	struct res r = { 0 };
	assert_int_equal(last_get(f, "a.example", "juliet", &r), STORAGE_NOT_FOUND);
	assert_true(r.text_null);
	assert_int_equal(last_set(f, "a.example", "juliet", 1700000000, "Heading home"), STORAGE_OK);
	assert_int_equal(last_get(f, "a.example", "juliet", &r), STORAGE_OK);
	assert_int_equal(r.seconds, 1700000000);
	assert_string_equal(r.text, "Heading home");
	/* Replaced; no status reads back as "". */
	assert_int_equal(last_set(f, "a.example", "juliet", 1700000100, NULL), STORAGE_OK);
	assert_int_equal(last_get(f, "a.example", "juliet", &r), STORAGE_OK);
	assert_int_equal(r.seconds, 1700000100);
	assert_string_equal(r.text, "");
	assert_int_equal(last_get(f, "b.example", "juliet", &r), STORAGE_NOT_FOUND);
	assert_int_equal(last_get(f, "a.example", "romeo", &r), STORAGE_NOT_FOUND);
	res_clear(&r);
}

/* Account removal deletes the user's vCard, private data and last activity,
 * on that host only. */
static void test_remove_user_removes_user_data(void **state)
{
	struct fixture *f = *state;
	struct storage_account a;
	make_account(&a, 21, true, true, NULL);
	const struct private_item it[] = { { "urn:example:a", "<a xmlns='urn:example:a'/>" } };
	const char *hosts[] = { "a.example", "b.example" };
	for (int i = 0; i < 2; i++) {
		assert_int_equal(acc_create(f, hosts[i], "alice", &a), STORAGE_OK);
		assert_int_equal(vcard_set(f, hosts[i], "alice", vcard1), STORAGE_OK);
		assert_int_equal(priv_set(f, hosts[i], "alice", it, 1), STORAGE_OK);
		assert_int_equal(last_set(f, hosts[i], "alice", 1700000000, "away"), STORAGE_OK);
	}
	assert_int_equal(acc_remove(f, "a.example", "alice"), STORAGE_OK);
	struct res r = { 0 };
	assert_int_equal(vcard_get(f, "a.example", "alice", &r), STORAGE_NOT_FOUND);
	assert_int_equal(priv_get(f, "a.example", "alice", "urn:example:a", &r), STORAGE_NOT_FOUND);
	assert_int_equal(last_get(f, "a.example", "alice", &r), STORAGE_NOT_FOUND);
	assert_int_equal(vcard_get(f, "b.example", "alice", &r), STORAGE_OK);
	assert_int_equal(priv_get(f, "b.example", "alice", "urn:example:a", &r), STORAGE_OK);
	assert_int_equal(last_get(f, "b.example", "alice", &r), STORAGE_OK);
	res_clear(&r);
	storage_account_clear(&a);
}

/* ---- tests: blocking command ------------------------------------------------------------ */

static void test_blocklist(void **state)
{
	struct fixture *f = *state;
	struct res r = { 0 };
	assert_int_equal(blk_get(f, "a.example", "juliet", &r), STORAGE_OK);
	assert_int_equal(r.names.count, 0);
	const char *const three[] = { "romeo@b.example", "spam.example", "nurse@a.example/balcony" };
	assert_int_equal(blk_change(f, true, "a.example", "juliet", three, 3), STORAGE_OK);
	assert_int_equal(blk_get(f, "a.example", "juliet", &r), STORAGE_OK);
	const char *const sorted[] = { "nurse@a.example/balcony", "romeo@b.example", "spam.example" };
	assert_names(&r, sorted, 3);
	/* Adding one already there (and a new one) keeps one row each. */
	const char *const again[] = { "romeo@b.example", "tybalt@a.example" };
	assert_int_equal(blk_change(f, true, "a.example", "juliet", again, 2), STORAGE_OK);
	assert_int_equal(blk_get(f, "a.example", "juliet", &r), STORAGE_OK);
	const char *const four[] = { "nurse@a.example/balcony", "romeo@b.example", "spam.example",
		                     "tybalt@a.example" };
	assert_names(&r, four, 4);
	/* Per host and per user. */
	assert_int_equal(blk_get(f, "b.example", "juliet", &r), STORAGE_OK);
	assert_int_equal(r.names.count, 0);
	assert_int_equal(blk_get(f, "a.example", "romeo", &r), STORAGE_OK);
	assert_int_equal(r.names.count, 0);
	assert_int_equal(blk_change(f, true, "a.example", "romeo", again, 1), STORAGE_OK);
	/* Remove some (one absent: ignored). */
	const char *const rm[] = { "spam.example", "nobody@c.example" };
	assert_int_equal(blk_change(f, false, "a.example", "juliet", rm, 2), STORAGE_OK);
	assert_int_equal(blk_get(f, "a.example", "juliet", &r), STORAGE_OK);
	const char *const left[] = { "nurse@a.example/balcony", "romeo@b.example", "tybalt@a.example" };
	assert_names(&r, left, 3);
	/* Remove all: that user only. */
	assert_int_equal(blk_change(f, false, "a.example", "juliet", NULL, 0), STORAGE_OK);
	assert_int_equal(blk_get(f, "a.example", "juliet", &r), STORAGE_OK);
	assert_int_equal(r.names.count, 0);
	assert_int_equal(blk_get(f, "a.example", "romeo", &r), STORAGE_OK);
	assert_names(&r, again, 1);
	res_clear(&r);
}

/* An add of several JIDs is one transaction: when one insert fails, none
 * is kept; a remove of several likewise. */
static void test_blocklist_all_or_nothing(void **state)
{
	struct fixture *f = *state;
	if (f->be->exec_sql == NULL)
		skip();
	struct res r = { 0 };
	const char *const two[] = { "good@b.example", "bad@b.example" };
	refuse_rows(f, "refuse_bad", "INSERT", "blocklist", "NEW.jid = 'bad@b.example'");
	assert_int_not_equal(blk_change(f, true, "a.example", "juliet", two, 2), STORAGE_OK);
	assert_int_equal(blk_get(f, "a.example", "juliet", &r), STORAGE_OK);
	assert_int_equal(r.names.count, 0);
	allow_rows(f, "refuse_bad", "blocklist");
	assert_int_equal(blk_change(f, true, "a.example", "juliet", two, 2), STORAGE_OK);
	refuse_rows(f, "keep_bad", "DELETE", "blocklist", "OLD.jid = 'bad@b.example'");
	const char *const rm[] = { "good@b.example", "bad@b.example" };
	assert_int_not_equal(blk_change(f, false, "a.example", "juliet", rm, 2), STORAGE_OK);
	assert_int_equal(blk_get(f, "a.example", "juliet", &r), STORAGE_OK);
	assert_int_equal(r.names.count, 2);
	allow_rows(f, "keep_bad", "blocklist");
	res_clear(&r);
}

/* Account removal deletes the user's blocklist, on that host only. */
static void test_remove_user_removes_blocklist(void **state)
{
	struct fixture *f = *state;
	struct storage_account a;
	make_account(&a, 22, true, true, NULL);
	const char *const one[] = { "romeo@b.example" };
	const char *hosts[] = { "a.example", "b.example" };
	for (int i = 0; i < 2; i++) {
		assert_int_equal(acc_create(f, hosts[i], "alice", &a), STORAGE_OK);
		assert_int_equal(blk_change(f, true, hosts[i], "alice", one, 1), STORAGE_OK);
	}
	assert_int_equal(acc_remove(f, "a.example", "alice"), STORAGE_OK);
	struct res r = { 0 };
	assert_int_equal(blk_get(f, "a.example", "alice", &r), STORAGE_OK);
	assert_int_equal(r.names.count, 0);
	assert_int_equal(blk_get(f, "b.example", "alice", &r), STORAGE_OK);
	assert_names(&r, one, 1);
	res_clear(&r);
	storage_account_clear(&a);
}

/* ---- tests: privacy lists ---------------------------------------------------------------- */

static const struct privacy_item prv_public[] = {
	{ PRIVACY_ALL, NULL, true, 30, 0 },
	{ PRIVACY_JID, "tybalt@b.example", false, 5, PRIVACY_MESSAGE | PRIVACY_PRESENCE_IN },
	{ PRIVACY_SUBSCRIPTION, "none", false, 10, PRIVACY_PRESENCE_OUT },
	{ PRIVACY_GROUP, "Family", true, 7, PRIVACY_IQ },
};

static void test_privacy(void **state)
{
	struct fixture *f = *state;
	struct res r = { 0 };
	assert_int_equal(prv_get(f, "a.example", "juliet", &r), STORAGE_OK);
	assert_string_equal(r.text, "default=");
	assert_int_equal(prv_change(f, PRV_SET, "a.example", "juliet", "public", prv_public, 4), STORAGE_OK);
	const struct privacy_item block_all[] = { { PRIVACY_ALL, NULL, false, 1, 0 } };
	assert_int_equal(prv_change(f, PRV_SET, "a.example", "juliet", "invisible", block_all, 1),
	                 STORAGE_OK);
	assert_int_equal(prv_get(f, "a.example", "juliet", &r), STORAGE_OK);
	/* Lists by name, items by order. */
	assert_string_equal(r.text, "default=|invisible:1 all - deny 0|public:5 jid "
	                            "tybalt@b.example deny 5,7 group Family allow 2,10 subscription "
	                            "none deny 8,30 all - allow 0");
	/* Default: only a list that exists. */
	assert_int_equal(prv_change(f, PRV_DEFAULT, "a.example", "juliet", "nosuch", NULL, 0),
	                 STORAGE_NOT_FOUND);
	assert_int_equal(prv_change(f, PRV_DEFAULT, "a.example", "juliet", "public", NULL, 0), STORAGE_OK);
	assert_int_equal(prv_change(f, PRV_DEFAULT, "a.example", "juliet", "invisible", NULL, 0), STORAGE_OK);
	assert_int_equal(prv_get(f, "a.example", "juliet", &r), STORAGE_OK);
	assert_true(strncmp(r.text, "default=invisible|", 18) == 0);
	/* Replacing a list keeps it the default and drops its old items. */
	const struct privacy_item one[] = { { PRIVACY_JID, "nurse@a.example", true, 2, 0 } };
	assert_int_equal(prv_change(f, PRV_SET, "a.example", "juliet", "invisible", one, 1), STORAGE_OK);
	assert_int_equal(prv_get(f, "a.example", "juliet", &r), STORAGE_OK);
	assert_true(strncmp(r.text, "default=invisible|invisible:2 jid nurse@a.example allow 0|", 57) == 0);
	/* Per host and user. */
	assert_int_equal(prv_get(f, "b.example", "juliet", &r), STORAGE_OK);
	assert_string_equal(r.text, "default=");
	assert_int_equal(prv_get(f, "a.example", "romeo", &r), STORAGE_OK);
	assert_string_equal(r.text, "default=");
	/* Removing the default list leaves no default. */
	assert_int_equal(prv_change(f, PRV_REMOVE, "a.example", "juliet", "invisible", NULL, 0), STORAGE_OK);
	assert_int_equal(prv_change(f, PRV_REMOVE, "a.example", "juliet", "invisible", NULL, 0),
	                 STORAGE_NOT_FOUND);
	assert_int_equal(prv_get(f, "a.example", "juliet", &r), STORAGE_OK);
	assert_true(strncmp(r.text, "default=|public:", 16) == 0);
	assert_int_equal(prv_change(f, PRV_DEFAULT, "a.example", "juliet", "public", NULL, 0), STORAGE_OK);
	assert_int_equal(prv_change(f, PRV_DEFAULT, "a.example", "juliet", NULL, NULL, 0), STORAGE_OK);
	assert_int_equal(prv_get(f, "a.example", "juliet", &r), STORAGE_OK);
	assert_true(strncmp(r.text, "default=|public:", 16) == 0);
	res_clear(&r);
}

/* A list is written in one transaction: when one item cannot be stored,
 * the list keeps its old items. */
static void test_privacy_all_or_nothing(void **state)
{
	struct fixture *f = *state;
	if (f->be->exec_sql == NULL)
		skip();
	struct res r = { 0 };
	const struct privacy_item one[] = { { PRIVACY_JID, "nurse@a.example", true, 2, 0 } };
	assert_int_equal(prv_change(f, PRV_SET, "a.example", "juliet", "l", one, 1), STORAGE_OK);
	refuse_rows(f, "refuse_bad", "INSERT", "privacy_items", "NEW.item_value = 'bad@b.example'");
	const struct privacy_item two[] = { { PRIVACY_JID, "good@b.example", true, 1, 0 },
		                            { PRIVACY_JID, "bad@b.example", false, 2, 0 } };
	assert_int_not_equal(prv_change(f, PRV_SET, "a.example", "juliet", "l", two, 2), STORAGE_OK);
	assert_int_not_equal(prv_change(f, PRV_SET, "a.example", "juliet", "m", two, 2), STORAGE_OK);
	assert_int_equal(prv_get(f, "a.example", "juliet", &r), STORAGE_OK);
	assert_string_equal(r.text, "default=|l:2 jid nurse@a.example allow 0");
	allow_rows(f, "refuse_bad", "privacy_items");
	res_clear(&r);
}

/* Account removal deletes the user's privacy lists, on that host only. */
static void test_remove_user_removes_privacy(void **state)
{
	struct fixture *f = *state;
	struct storage_account a;
	make_account(&a, 23, true, true, NULL);
	const char *hosts[] = { "a.example", "b.example" };
	for (int i = 0; i < 2; i++) {
		assert_int_equal(acc_create(f, hosts[i], "alice", &a), STORAGE_OK);
		assert_int_equal(prv_change(f, PRV_SET, hosts[i], "alice", "p", prv_public, 1), STORAGE_OK);
		assert_int_equal(prv_change(f, PRV_DEFAULT, hosts[i], "alice", "p", NULL, 0), STORAGE_OK);
	}
	assert_int_equal(acc_remove(f, "a.example", "alice"), STORAGE_OK);
	struct res r = { 0 };
	assert_int_equal(prv_get(f, "a.example", "alice", &r), STORAGE_OK);
	assert_string_equal(r.text, "default=");
	assert_int_equal(prv_get(f, "b.example", "alice", &r), STORAGE_OK);
	assert_string_equal(r.text, "default=p|p:30 all - allow 0");
	res_clear(&r);
	storage_account_clear(&a);
}

/* ---- tests: shared roster groups ------------------------------------------------------ */

static void strlist_set(struct strlist *l, const char *const *v, size_t n)
{
	l->items = (char **)v;
	l->count = n;
}

static void assert_list(const struct strlist *l, const char *const *want, size_t n)
{
	assert_int_equal(l->count, n);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(l->items[i], want[i]);
}

static void test_shared_roster_groups(void **state)
{
	struct fixture *f = *state;
	struct res r = { 0 };
	/* Nothing yet: empty lists, not errors. */
	assert_int_equal(srg_list(f, "a.example", &r), STORAGE_OK);
	assert_int_equal(r.names.count, 0);
	assert_int_equal(srg_get(f, "a.example", NULL, &r), STORAGE_OK);
	assert_int_equal(r.ngroups, 0);
	assert_int_equal(srg_get(f, "a.example", "staff", &r), STORAGE_NOT_FOUND);
	assert_null(r.groups);

	const char *const disp[] = { "staff", "all" };
	const char *const members[] = { "bob@a.example", "alice@a.example", "bob@a.example" };
	struct srg_group staff = { .name = "staff", .label = "Staff", .description = "the crew" };
	strlist_set(&staff.displayed, disp, 2);
	strlist_set(&staff.members, members, 3);
	assert_int_equal(srg_create(f, "a.example", &staff), STORAGE_OK);
	assert_int_equal(srg_create(f, "a.example", &staff), STORAGE_EXISTS);
	struct srg_group all = { .name = "all", .label = "", .description = "" };
	assert_int_equal(srg_create(f, "a.example", &all), STORAGE_OK);
	/* Same name on another host: another group. */
	assert_int_equal(srg_create(f, "b.example", &all), STORAGE_OK);

	assert_int_equal(srg_get(f, "a.example", "staff", &r), STORAGE_OK);
	assert_int_equal(r.ngroups, 1);
	assert_string_equal(r.groups[0].name, "staff");
	assert_string_equal(r.groups[0].label, "Staff");
	assert_string_equal(r.groups[0].description, "the crew");
	const char *const disp_sorted[] = { "all", "staff" };
	assert_list(&r.groups[0].displayed, disp_sorted, 2);
	const char *const m2[] = { "alice@a.example", "bob@a.example" };
	assert_list(&r.groups[0].members, m2, 2);

	assert_int_equal(srg_member(f, true, "a.example", "all", SRG_MEMBER_ALL), STORAGE_OK);
	assert_int_equal(srg_member(f, true, "a.example", "all", SRG_MEMBER_ALL), STORAGE_EXISTS);
	assert_int_equal(srg_member(f, true, "a.example", "nosuch", "carol@a.example"), STORAGE_NOT_FOUND);
	assert_int_equal(srg_member(f, true, "a.example", "staff", "carol@a.example"), STORAGE_OK);

	assert_int_equal(srg_get(f, "a.example", NULL, &r), STORAGE_OK);
	assert_int_equal(r.ngroups, 2);
	assert_string_equal(r.groups[0].name, "all");
	assert_string_equal(r.groups[0].label, "");
	assert_int_equal(r.groups[0].displayed.count, 0);
	const char *const mall[] = { SRG_MEMBER_ALL };
	assert_list(&r.groups[0].members, mall, 1);
	assert_string_equal(r.groups[1].name, "staff");
	const char *const m3[] = { "alice@a.example", "bob@a.example", "carol@a.example" };
	assert_list(&r.groups[1].members, m3, 3);

	assert_int_equal(srg_list(f, "a.example", &r), STORAGE_OK);
	assert_list(&r.names, disp_sorted, 2);
	/* Groups of a user: explicit memberships and @all@ groups. */
	assert_int_equal(srg_user_groups(f, "a.example", "carol@a.example", &r), STORAGE_OK);
	assert_list(&r.names, disp_sorted, 2);
	assert_int_equal(srg_user_groups(f, "a.example", "zoe@a.example", &r), STORAGE_OK);
	const char *const only_all[] = { "all" };
	assert_list(&r.names, only_all, 1);
	assert_int_equal(srg_user_groups(f, "b.example", "carol@b.example", &r), STORAGE_OK);
	assert_int_equal(r.names.count, 0);

	assert_int_equal(srg_member(f, false, "a.example", "staff", "bob@a.example"), STORAGE_OK);
	assert_int_equal(srg_member(f, false, "a.example", "staff", "bob@a.example"), STORAGE_NOT_FOUND);
	assert_int_equal(srg_get(f, "a.example", "staff", &r), STORAGE_OK);
	const char *const m4[] = { "alice@a.example", "carol@a.example" };
	assert_list(&r.groups[0].members, m4, 2);

	/* Delete takes members and displayed lists along; others stay. */
	assert_int_equal(srg_delete(f, "a.example", "staff"), STORAGE_OK);
	assert_int_equal(srg_delete(f, "a.example", "staff"), STORAGE_NOT_FOUND);
	assert_int_equal(srg_get(f, "a.example", "staff", &r), STORAGE_NOT_FOUND);
	assert_int_equal(srg_create(f, "a.example", &all), STORAGE_EXISTS);
	struct srg_group again = { .name = "staff", .label = "", .description = "" };
	assert_int_equal(srg_create(f, "a.example", &again), STORAGE_OK);
	assert_int_equal(srg_get(f, "a.example", "staff", &r), STORAGE_OK);
	assert_int_equal(r.groups[0].members.count, 0);
	assert_int_equal(r.groups[0].displayed.count, 0);
	assert_int_equal(srg_get(f, "b.example", NULL, &r), STORAGE_OK);
	assert_int_equal(r.ngroups, 1);
	res_clear(&r);
}

/* Removing an account removes its memberships (not @all@ ones). */
static void test_remove_user_removes_memberships(void **state)
{
	struct fixture *f = *state;
	struct storage_account a;
	make_account(&a, 21, true, true, NULL);
	assert_int_equal(acc_create(f, "a.example", "alice", &a), STORAGE_OK);
	struct srg_group g = { .name = "g", .label = "", .description = "" };
	const char *const m[] = { "alice@a.example", "bob@a.example", SRG_MEMBER_ALL };
	strlist_set(&g.members, m, 3);
	assert_int_equal(srg_create(f, "a.example", &g), STORAGE_OK);
	assert_int_equal(acc_remove(f, "a.example", "alice"), STORAGE_OK);
	struct res r = { 0 };
	assert_int_equal(srg_get(f, "a.example", "g", &r), STORAGE_OK);
	const char *const left[] = { SRG_MEMBER_ALL, "bob@a.example" };
	assert_list(&r.groups[0].members, left, 2);
	res_clear(&r);
	storage_account_clear(&a);
}

/* ---- tests: the user directory's vCard index ------------------------------------------- */

static const char vc_romeo[] =
        "<vCard xmlns='vcard-temp'><FN>Romeo Montague</FN><N><FAMILY>Montague</FAMILY>"
        "<GIVEN>Romeo</GIVEN></N><NICKNAME>Rom</NICKNAME><EMAIL><INTERNET/><USERID>"
        "romeo@Verona.example</USERID></EMAIL><ADR><HOME/><LOCALITY>Verona</LOCALITY></ADR>"
        "<ORG><ORGNAME>House Montague</ORGNAME></ORG></vCard>";
static const char vc_juliet[] =
        "<vCard xmlns='vcard-temp'><FN>Juliet Capulet</FN><N><FAMILY>Capulet</FAMILY>"
        "<GIVEN>Juliet</GIVEN></N><EMAIL>juliet@verona.example</EMAIL><ADR><LOCALITY>Verona"
        "</LOCALITY></ADR><CLASS><PUBLIC/></CLASS></vCard>";
static const char vc_emile[] =
        "<vCard xmlns='vcard-temp'><FN>\xc3\x89mile Zola</FN><N><FAMILY>Zola</FAMILY><GIVEN>"
        "\xc3\x89mile</GIVEN></N><ADR><LOCALITY>Paris</LOCALITY></ADR></vCard>";

static void test_vcard_search(void **state)
{
	struct fixture *f = *state;
	struct res r = { 0 };
	assert_int_equal(vcard_set(f, "a.example", "romeo", vc_romeo), STORAGE_OK);
	assert_int_equal(vcard_set(f, "a.example", "juliet", vc_juliet), STORAGE_OK);
	assert_int_equal(vcard_set(f, "a.example", "emile", vc_emile), STORAGE_OK);
	assert_int_equal(vcard_set(f, "b.example", "tybalt", vc_romeo), STORAGE_OK);

	/* Exact, case-insensitive; fields as stored in the result. */
	const char *const s1[] = { "last=MONTAGUE" };
	assert_int_equal(vsearch(f, "a.example", false, 0, &r, s1, 1), STORAGE_OK);
	assert_int_equal(r.found.count, 1);
	assert_string_equal(r.found.items[0], "romeo|Romeo Montague|Romeo|Montague|Rom|"
	                                      "romeo@Verona.example|Verona|House Montague");
	assert_false(r.more);
	/* Exact means the whole field. */
	const char *const s2[] = { "last=Monta" };
	assert_int_equal(vsearch(f, "a.example", false, 0, &r, s2, 1), STORAGE_OK);
	ASSERT_FOUND(&r, "");
	/* Prefix; several terms AND; sorted by account. */
	const char *const s3[] = { "locality=ver*" };
	assert_int_equal(vsearch(f, "a.example", false, 0, &r, s3, 1), STORAGE_OK);
	ASSERT_FOUND(&r, "juliet,romeo");
	const char *const s4[] = { "locality=verona", "first=j*" };
	assert_int_equal(vsearch(f, "a.example", false, 0, &r, s4, 2), STORAGE_OK);
	ASSERT_FOUND(&r, "juliet");
	/* Email: the USERID child or the element's own text. */
	const char *const s5[] = { "email=ROMEO@verona.example" };
	assert_int_equal(vsearch(f, "a.example", false, 0, &r, s5, 1), STORAGE_OK);
	ASSERT_FOUND(&r, "romeo");
	const char *const s6[] = { "email=juliet@*" };
	assert_int_equal(vsearch(f, "a.example", false, 0, &r, s6, 1), STORAGE_OK);
	ASSERT_FOUND(&r, "juliet");
	/* Non-ASCII letters fold too. */
	const char *const s7[] = { "first=\xc3\xa9MILE" };
	assert_int_equal(vsearch(f, "a.example", false, 0, &r, s7, 1), STORAGE_OK);
	ASSERT_FOUND(&r, "emile");
	const char *const s8[] = { "org=house*", "nick=rom", "fn=romeo montague", "user=rom*" };
	assert_int_equal(vsearch(f, "a.example", false, 0, &r, s8, 4), STORAGE_OK);
	ASSERT_FOUND(&r, "romeo");
	/* Everyone ("*"), a limit, only listed users, another host. */
	const char *const all[] = { "fn=*" };
	assert_int_equal(vsearch(f, "a.example", false, 0, &r, all, 1), STORAGE_OK);
	ASSERT_FOUND(&r, "emile,juliet,romeo");
	assert_int_equal(vsearch(f, "a.example", false, 2, &r, all, 1), STORAGE_OK);
	ASSERT_FOUND(&r, "emile,juliet");
	assert_true(r.more);
	assert_int_equal(vsearch(f, "a.example", false, 3, &r, all, 1), STORAGE_OK);
	assert_false(r.more);
	assert_int_equal(vsearch(f, "a.example", true, 0, &r, all, 1), STORAGE_OK);
	ASSERT_FOUND(&r, "juliet");
	assert_int_equal(vsearch(f, "b.example", false, 0, &r, s1, 1), STORAGE_OK);
	ASSERT_FOUND(&r, "tybalt");
	/* A new vCard replaces the index; account removal deletes it. */
	assert_int_equal(vcard_set(f, "a.example", "romeo", vc_emile), STORAGE_OK);
	assert_int_equal(vsearch(f, "a.example", false, 0, &r, s1, 1), STORAGE_OK);
	ASSERT_FOUND(&r, "");
	assert_int_equal(vsearch(f, "a.example", false, 0, &r, s7, 1), STORAGE_OK);
	ASSERT_FOUND(&r, "emile,romeo");
	struct storage_account a;
	make_account(&a, 31, true, true, NULL);
	assert_int_equal(acc_create(f, "a.example", "emile", &a), STORAGE_OK);
	assert_int_equal(acc_remove(f, "a.example", "emile"), STORAGE_OK);
	assert_int_equal(vsearch(f, "a.example", false, 0, &r, s7, 1), STORAGE_OK);
	ASSERT_FOUND(&r, "romeo");
	storage_account_clear(&a);
	res_clear(&r);
}

/* vCards stored without an index (before the index existed) are indexed
 * by storage_vcard_reindex, once. */
static void test_vcard_reindex(void **state)
{
	struct fixture *f = *state;
	if (f->be->exec_sql == NULL)
		skip();
	assert_int_equal(vcard_set(f, "a.example", "romeo", vc_romeo), STORAGE_OK);
	assert_int_equal(vcard_set(f, "a.example", "juliet", vc_juliet), STORAGE_OK);
	f->be->exec_sql(f, "DELETE FROM vcard_search");
	struct res r = { 0 };
	const char *const all[] = { "fn=*" };
	assert_int_equal(vsearch(f, "a.example", false, 0, &r, all, 1), STORAGE_OK);
	ASSERT_FOUND(&r, "");
	assert_non_null(CALL(storage_vcard_reindex(f->st, "a.example", count_cb, &r)));
	run(f);
	assert_int_equal(r.r, STORAGE_OK);
	assert_int_equal(r.count, 2);
	assert_non_null(CALL(storage_vcard_reindex(f->st, "a.example", count_cb, &r)));
	run(f);
	assert_int_equal(r.count, 0);
	const char *const s[] = { "locality=verona" };
	assert_int_equal(vsearch(f, "a.example", true, 0, &r, s, 1), STORAGE_OK);
	ASSERT_FOUND(&r, "juliet");
	res_clear(&r);
}

/* ---- tests: multi-user chat rooms -------------------------------------------------- */

/* The load's answer as text: r->text holds the rooms, "name{config}
 * [subject/nick]@created: jid=aff(reason) ...", joined by " | "; r->names
 * the nicks, "jid=nick"; r->count the number of rooms. */
static void muc_load_cb(enum storage_result res, const struct muc_room_item *rooms, size_t nrooms,
                        const struct muc_nick_item *nicks, size_t nnicks, void *ctx)
{
	struct res *r = ctx;
	note(r, res);
	free(r->text);
	strlist_free(&r->names);
	r->text_null = rooms == NULL && nrooms > 0;
	r->count = nrooms;
	struct buf b = { 0 };
	buf_append_str(&b, "");
	for (size_t i = 0; i < nrooms; i++) {
		const struct muc_room_item *m = &rooms[i];
		buf_printf(&b, "%s%s{%s}[%s/%s]@%.0f:", i > 0 ? " | " : "", m->name, m->config, m->subject,
		           m->subject_nick, m->created);
		for (size_t k = 0; k < m->naffs; k++)
			buf_printf(&b, " %s=%s(%s)", m->affs[k].jid, m->affs[k].affiliation,
			           m->affs[k].reason);
	}
	r->text = strdup(b.data != NULL ? b.data : "");
	buf_free(&b);
	r->names.count = nnicks;
	r->names.items = nnicks > 0 ? calloc(nnicks, sizeof(char *)) : NULL;
	for (size_t i = 0; i < nnicks; i++)
		r->names.items[i] = xasprintf("%s=%s", nicks[i].jid, nicks[i].nick);
}

static enum storage_result muc_load(struct fixture *f, const char *host, const char *service, struct res *r)
{
	int before = r->calls;
	assert_non_null(CALL(storage_muc_load(f->st, host, service, muc_load_cb, r)));
	assert_int_equal(r->calls, before);
	run(f);
	assert_int_equal(r->calls, before + 1);
	return r->r;
}

static enum storage_result muc_store(struct fixture *f, const char *host, const char *service,
                                     const struct muc_room_item *room)
{
	struct res r = { 0 };
	assert_non_null(CALL(storage_muc_room_store(f->st, host, service, room, done_cb, &r)));
	assert_int_equal(r.calls, 0);
	run(f);
	assert_int_equal(r.calls, 1);
	return r.r;
}

static enum storage_result muc_delete(struct fixture *f, const char *host, const char *service,
                                      const char *name)
{
	struct res r = { 0 };
	assert_non_null(CALL(storage_muc_room_delete(f->st, host, service, name, done_cb, &r)));
	assert_int_equal(r.calls, 0);
	run(f);
	assert_int_equal(r.calls, 1);
	return r.r;
}

static enum storage_result muc_nick(struct fixture *f, const char *host, const char *service, const char *jid,
                                    const char *nick)
{
	struct res r = { 0 };
	assert_non_null(CALL(storage_muc_nick_set(f->st, host, service, jid, nick, done_cb, &r)));
	assert_int_equal(r.calls, 0);
	run(f);
	assert_int_equal(r.calls, 1);
	return r.r;
}

static const char muc_conf[] = "<x xmlns='jabber:x:data' type='submit'><field var='muc#roomconfig_"
                               "persistentroom'><value>1</value></field></x>";

static const struct muc_affiliation_item muc_affs1[] = {
	{ "romeo@a.example", "owner", "" },
	{ "tybalt@b.example", "outcast", "draws on \xc3\xa9veryone" },
	{ "b.example", "member", "" },
	{ "juliet@a.example", "admin", "" },
};

static void test_muc_rooms(void **state)
{
	struct fixture *f = *state;
	struct res r = { 0 };
	const char *svc = "conference.a.example";
	assert_true(storage_has_area(f->st, STORAGE_AREA_MUC));
	assert_string_equal(storage_area_str(STORAGE_AREA_MUC), "muc");
	/* Nothing stored: empty lists. */
	assert_int_equal(muc_load(f, "a.example", svc, &r), STORAGE_OK);
	assert_string_equal(r.text, "");
	assert_int_equal(r.count, 0);
	assert_int_equal(r.names.count, 0);

	/* Rooms come back sorted by name, each with its affiliations by jid. */
	struct muc_room_item balcony = { "balcony",     muc_conf,  "Wherefore art thou", "juliet",
		                         1700000000.75, muc_affs1, ARRAY_SIZE(muc_affs1) };
	struct muc_room_item ball = { "arbour", "<x/>", "", "", 1600000000, NULL, 0 };
	assert_int_equal(muc_store(f, "a.example", svc, &balcony), STORAGE_OK);
	assert_int_equal(muc_store(f, "a.example", svc, &ball), STORAGE_OK);
	/* Another service, and the same room name there. */
	struct muc_room_item other = { "balcony", "<y/>", "s", "n", 1, muc_affs1, 1 };
	assert_int_equal(muc_store(f, "b.example", "rooms.b.example", &other), STORAGE_OK);
	assert_int_equal(muc_load(f, "a.example", svc, &r), STORAGE_OK);
	assert_int_equal(r.count, 2);
	char *want = xasprintf("arbour{<x/>}[/]@1600000000: | balcony{%s}[Wherefore art thou/juliet]"
	                       "@1700000000: b.example=member() juliet@a.example=admin() "
	                       "romeo@a.example=owner() tybalt@b.example=outcast(draws on \xc3\xa9veryone)",
	                       muc_conf);
	assert_string_equal(r.text, want);
	free(want);
	assert_int_equal(muc_load(f, "b.example", "rooms.b.example", &r), STORAGE_OK);
	assert_string_equal(r.text, "balcony{<y/>}[s/n]@1: romeo@a.example=owner()");

	/* Storing again replaces the row and the whole affiliation list:
	 * affiliations left out are gone, changed ones changed. */
	const struct muc_affiliation_item affs2[] = {
		{ "juliet@a.example", "owner", "" },
		{ "tybalt@b.example", "member", "forgiven" },
	};
	struct muc_room_item balcony2 = { "balcony", "<x/>", "", "", 1700000001, affs2, ARRAY_SIZE(affs2) };
	assert_int_equal(muc_store(f, "a.example", svc, &balcony2), STORAGE_OK);
	assert_int_equal(muc_load(f, "a.example", svc, &r), STORAGE_OK);
	assert_string_equal(r.text, "arbour{<x/>}[/]@1600000000: | balcony{<x/>}[/]@1700000001: "
	                            "juliet@a.example=owner() tybalt@b.example=member(forgiven)");
	/* An empty list empties it; a jid given twice keeps the last. */
	const struct muc_affiliation_item twice[] = {
		{ "romeo@a.example", "member", "first" },
		{ "nurse@a.example", "member", "" },
		{ "romeo@a.example", "admin", "second" },
	};
	struct muc_room_item ball2 = { "arbour", "<x/>", "", "", 1600000000, twice, ARRAY_SIZE(twice) };
	balcony2.naffs = 0;
	assert_int_equal(muc_store(f, "a.example", svc, &balcony2), STORAGE_OK);
	assert_int_equal(muc_store(f, "a.example", svc, &ball2), STORAGE_OK);
	assert_int_equal(muc_load(f, "a.example", svc, &r), STORAGE_OK);
	assert_string_equal(r.text, "arbour{<x/>}[/]@1600000000: nurse@a.example=member() "
	                            "romeo@a.example=admin(second) | balcony{<x/>}[/]@1700000001:");

	/* Delete removes the room and its affiliations, only that room; a
	 * room that is not stored is fine. */
	assert_int_equal(muc_delete(f, "a.example", svc, "arbour"), STORAGE_OK);
	assert_int_equal(muc_delete(f, "a.example", svc, "arbour"), STORAGE_OK);
	assert_int_equal(muc_delete(f, "a.example", svc, "nosuch"), STORAGE_OK);
	assert_int_equal(muc_load(f, "a.example", svc, &r), STORAGE_OK);
	assert_string_equal(r.text, "balcony{<x/>}[/]@1700000001:");
	/* A room stored again after its delete starts from its new list. */
	assert_int_equal(muc_store(f, "a.example", svc, &ball), STORAGE_OK);
	assert_int_equal(muc_load(f, "a.example", svc, &r), STORAGE_OK);
	assert_string_equal(r.text, "arbour{<x/>}[/]@1600000000: | balcony{<x/>}[/]@1700000001:");
	assert_int_equal(muc_load(f, "b.example", "rooms.b.example", &r), STORAGE_OK);
	assert_int_equal(r.count, 1);
	res_clear(&r);
}

static void test_muc_nicks(void **state)
{
	struct fixture *f = *state;
	struct res r = { 0 };
	const char *svc = "conference.a.example";
	assert_int_equal(muc_nick(f, "a.example", svc, "romeo@a.example", "Romeo"), STORAGE_OK);
	assert_int_equal(muc_nick(f, "a.example", svc, "juliet@a.example", "Juliet"), STORAGE_OK);
	assert_int_equal(muc_load(f, "a.example", svc, &r), STORAGE_OK);
	const char *const two[] = { "juliet@a.example=Juliet", "romeo@a.example=Romeo" };
	assert_names(&r, two, 2);
	/* Another jid's nick is refused and changes nothing. */
	assert_int_equal(muc_nick(f, "a.example", svc, "tybalt@b.example", "Romeo"), STORAGE_EXISTS);
	assert_int_equal(muc_nick(f, "a.example", svc, "juliet@a.example", "Romeo"), STORAGE_EXISTS);
	assert_int_equal(muc_load(f, "a.example", svc, &r), STORAGE_OK);
	assert_names(&r, two, 2);
	/* Registering one's own nick again is fine; a new nick replaces the
	 * old one, which is free for others then. */
	assert_int_equal(muc_nick(f, "a.example", svc, "romeo@a.example", "Romeo"), STORAGE_OK);
	assert_int_equal(muc_nick(f, "a.example", svc, "romeo@a.example", "Montague"), STORAGE_OK);
	assert_int_equal(muc_nick(f, "a.example", svc, "tybalt@b.example", "Romeo"), STORAGE_OK);
	assert_int_equal(muc_load(f, "a.example", svc, &r), STORAGE_OK);
	const char *const three[] = { "juliet@a.example=Juliet", "romeo@a.example=Montague",
		                      "tybalt@b.example=Romeo" };
	assert_names(&r, three, 3);
	/* Nicks are per service. */
	assert_int_equal(muc_nick(f, "b.example", "rooms.b.example", "juliet@a.example", "Romeo"),
	                 STORAGE_OK);
	assert_int_equal(muc_load(f, "b.example", "rooms.b.example", &r), STORAGE_OK);
	const char *const b[] = { "juliet@a.example=Romeo" };
	assert_names(&r, b, 1);
	/* NULL removes (also when there is none). */
	assert_int_equal(muc_nick(f, "a.example", svc, "tybalt@b.example", NULL), STORAGE_OK);
	assert_int_equal(muc_nick(f, "a.example", svc, "nobody@a.example", NULL), STORAGE_OK);
	assert_int_equal(muc_load(f, "a.example", svc, &r), STORAGE_OK);
	assert_names(&r, three, 2);
	assert_int_equal(muc_nick(f, "a.example", svc, "juliet@a.example", "Romeo"), STORAGE_OK);
	/* Rooms and nicks do not touch each other. */
	assert_string_equal(r.text, "");
	res_clear(&r);
}

/* One room's writes keep their order (they share a worker), also when
 * all are queued before any runs; different rooms do not wait for each
 * other's results. */
static void test_muc_order(void **state)
{
	struct fixture *f = *state;
	const char *svc = "conference.a.example";
	struct res w[30];
	memset(w, 0, sizeof(w));
	char subj[30][16];
	for (int i = 0; i < 30; i++) {
		snprintf(subj[i], sizeof(subj[i]), "s%02d", i);
		struct muc_room_item room = { i % 3 == 0 ? "a" : "b", "<x/>", subj[i], "", i, muc_affs1,
			                      (size_t)(i % 4) };
		if (i == 28)
			assert_non_null(
			        CALL(storage_muc_room_delete(f->st, "a.example", svc, "b", done_cb, &w[i])));
		else
			assert_non_null(
			        CALL(storage_muc_room_store(f->st, "a.example", svc, &room, done_cb, &w[i])));
	}
	struct res n[3];
	memset(n, 0, sizeof(n));
	assert_non_null(
	        CALL(storage_muc_nick_set(f->st, "a.example", svc, "x@a.example", "X", done_cb, &n[0])));
	assert_non_null(
	        CALL(storage_muc_nick_set(f->st, "a.example", svc, "x@a.example", NULL, done_cb, &n[1])));
	assert_non_null(
	        CALL(storage_muc_nick_set(f->st, "a.example", svc, "y@a.example", "X", done_cb, &n[2])));
	run(f);
	for (int i = 0; i < 30; i++)
		assert_int_equal(w[i].r, STORAGE_OK);
	for (int i = 0; i < 3; i++)
		assert_int_equal(n[i].r, STORAGE_OK);
	struct res r = { 0 };
	assert_int_equal(muc_load(f, "a.example", svc, &r), STORAGE_OK);
	/* a: last store i = 27 (3 affiliations); b: deleted at 28, stored at 29 (1). */
	assert_string_equal(r.text, "a{<x/>}[s27/]@27: b.example=member() romeo@a.example=owner() "
	                            "tybalt@b.example=outcast(draws on \xc3\xa9veryone) | "
	                            "b{<x/>}[s29/]@29: romeo@a.example=owner()");
	const char *const nick[] = { "y@a.example=X" };
	assert_names(&r, nick, 1);
	res_clear(&r);
}

/* A room is stored all or nothing: when an affiliation cannot be written
 * (a trigger refuses it), the room keeps its old row and list. */
static void test_muc_all_or_nothing(void **state)
{
	struct fixture *f = *state;
	if (f->be->exec_sql == NULL)
		skip();
	const char *svc = "conference.a.example";
	struct muc_room_item room = { "balcony", "<old/>", "old", "", 5, muc_affs1, 2 };
	assert_int_equal(muc_store(f, "a.example", svc, &room), STORAGE_OK);
	refuse_rows(f, "refuse_bad_aff", "INSERT", "muc_affiliation", "NEW.jid = 'bad@a.example'");
	const struct muc_affiliation_item bad[] = {
		{ "bad@a.example", "member", "" },
		{ "good@a.example", "member", "" },
	};
	struct muc_room_item changed = { "balcony", "<new/>", "new", "", 6, bad, 2 };
	assert_int_not_equal(muc_store(f, "a.example", svc, &changed), STORAGE_OK);
	struct res r = { 0 };
	assert_int_equal(muc_load(f, "a.example", svc, &r), STORAGE_OK);
	assert_string_equal(r.text, "balcony{<old/>}[old/]@5: romeo@a.example=owner() "
	                            "tybalt@b.example=outcast(draws on \xc3\xa9veryone)");
	/* A delete that fails half-way leaves the room too. */
	refuse_rows(f, "refuse_del", "DELETE", "muc_room", "OLD.name = 'balcony'");
	assert_int_not_equal(muc_delete(f, "a.example", svc, "balcony"), STORAGE_OK);
	assert_int_equal(muc_load(f, "a.example", svc, &r), STORAGE_OK);
	assert_int_equal(r.count, 1);
	assert_string_equal(r.text, "balcony{<old/>}[old/]@5: romeo@a.example=owner() "
	                            "tybalt@b.example=outcast(draws on \xc3\xa9veryone)");
	allow_rows(f, "refuse_del", "muc_room");
	allow_rows(f, "refuse_bad_aff", "muc_affiliation");
	assert_int_equal(muc_store(f, "a.example", svc, &changed), STORAGE_OK);
	assert_int_equal(muc_delete(f, "a.example", svc, "balcony"), STORAGE_OK);
	assert_int_equal(muc_load(f, "a.example", svc, &r), STORAGE_OK);
	assert_int_equal(r.count, 0);
	res_clear(&r);
}

/* ---- tests: publish-subscribe nodes and items ------------------------------------------ */

/* The load's answer as text: r->text holds the nodes, "name{config}@created:
 * jid=aff ... ; jid/subid=state(options) ...", joined by " | "; r->names
 * the items in order, "node/id<publisher>@published#seq:payload"; r->count
 * the number of nodes. */
static void ps_load_cb(enum storage_result res, const struct pubsub_node_item *nodes, size_t nnodes,
                       const struct pubsub_item *items, size_t nitems, void *ctx)
{
	struct res *r = ctx;
	note(r, res);
	free(r->text);
	strlist_free(&r->names);
	r->text_null = (nodes == NULL && nnodes > 0) || (items == NULL && nitems > 0);
	r->count = nnodes;
	struct buf b = { 0 };
	buf_append_str(&b, "");
	for (size_t i = 0; i < nnodes; i++) {
		const struct pubsub_node_item *n = &nodes[i];
		buf_printf(&b, "%s%s{%s}@%.0f:", i > 0 ? " | " : "", n->name, n->config, n->created);
		for (size_t k = 0; k < n->naffs; k++)
			buf_printf(&b, " %s=%s", n->affs[k].jid, n->affs[k].affiliation);
		buf_append_str(&b, " ;");
		for (size_t k = 0; k < n->nsubs; k++)
			buf_printf(&b, " %s/%s=%s(%s)", n->subs[k].jid, n->subs[k].subid, n->subs[k].state,
			           n->subs[k].options);
	}
	r->text = strdup(b.data != NULL ? b.data : "");
	buf_free(&b);
	r->names.count = nitems;
	r->names.items = nitems > 0 ? calloc(nitems, sizeof(char *)) : NULL;
	for (size_t i = 0; i < nitems; i++) {
		const struct pubsub_item *it = &items[i];
		r->names.items[i] = xasprintf("%s/%s<%s>@%.0f#%llu:%s", it->node, it->id, it->publisher,
		                              it->published, (unsigned long long)it->seq, it->payload);
	}
}

static enum storage_result ps_load(struct fixture *f, const char *host, const char *owner, struct res *r)
{
	int before = r->calls;
	assert_non_null(CALL(storage_pubsub_load(f->st, host, owner, ps_load_cb, r)));
	assert_int_equal(r->calls, before);
	run(f);
	assert_int_equal(r->calls, before + 1);
	return r->r;
}

/* Run a submitted write to its end: its result. */
static enum storage_result ps_wait(struct fixture *f, struct storage_req *req, struct res *r)
{
	assert_non_null(req);
	assert_int_equal(r->calls, 0);
	run(f);
	assert_int_equal(r->calls, 1);
	return r->r;
}

static enum storage_result ps_node_store(struct fixture *f, const char *host, const char *owner,
                                         const struct pubsub_node_item *node)
{
	struct res r = { 0 };
	return ps_wait(f, CALL(storage_pubsub_node_store(f->st, host, owner, node, done_cb, &r)), &r);
}

static enum storage_result ps_node_delete(struct fixture *f, const char *host, const char *owner,
                                          const char *node)
{
	struct res r = { 0 };
	return ps_wait(f, CALL(storage_pubsub_node_delete(f->st, host, owner, node, done_cb, &r)), &r);
}

static enum storage_result ps_item_store(struct fixture *f, const char *host, const char *owner,
                                         const struct pubsub_item *item, const char *const *evict, size_t n)
{
	struct res r = { 0 };
	return ps_wait(f, CALL(storage_pubsub_item_store(f->st, host, owner, item, evict, n, done_cb, &r)),
	               &r);
}

static enum storage_result ps_item_delete(struct fixture *f, const char *host, const char *owner,
                                          const char *node, const char *const *ids, size_t n)
{
	struct res r = { 0 };
	return ps_wait(f, CALL(storage_pubsub_item_delete(f->st, host, owner, node, ids, n, done_cb, &r)),
	               &r);
}

static enum storage_result ps_owner_delete(struct fixture *f, const char *host, const char *owner)
{
	struct res r = { 0 };
	return ps_wait(f, CALL(storage_pubsub_owner_delete(f->st, host, owner, done_cb, &r)), &r);
}

/* An item of node with id, seq and payload (published by romeo). */
static struct pubsub_item ps_item(const char *node, const char *id, uint64_t seq, const char *payload)
{
	return (struct pubsub_item){ node, id,     "romeo@a.example/balcony", 1700000000.5 + (double)seq,
		                     seq,  payload };
}

static const char ps_conf[] = "<x xmlns='jabber:x:data' type='submit'><field var='pubsub#max_items'>"
                              "<value>10</value></field></x>";

static const struct pubsub_affiliation_item ps_affs1[] = {
	{ "romeo@a.example", "owner" },
	{ "tybalt@b.example", "outcast" },
	{ "juliet@a.example", "publisher" },
	{ "romeo@a.example", "member" }, /* given twice: the last one counts */
};

static const struct pubsub_subscription_item ps_subs1[] = {
	{ "juliet@a.example/balcony", "s2", "subscribed", "<options/>" },
	{ "juliet@a.example", "s1", "pending", "" },
	{ "b.example", "s3", "unconfigured", "" },
	{ "nurse@a.example", "s2", "subscribed", "" }, /* s2 again: replaces the first */
};

static void test_pubsub_nodes(void **state)
{
	struct fixture *f = *state;
	struct res r = { 0 };
	const char *svc = "pubsub.a.example";
	assert_true(storage_has_area(f->st, STORAGE_AREA_PUBSUB));
	assert_string_equal(storage_area_str(STORAGE_AREA_PUBSUB), "pubsub");
	/* Nothing stored: empty lists. */
	assert_int_equal(ps_load(f, "a.example", svc, &r), STORAGE_OK);
	assert_string_equal(r.text, "");
	assert_int_equal(r.count, 0);
	assert_int_equal(r.names.count, 0);

	/* Nodes come back sorted by name, each with its affiliations by jid
	 * (one per jid) and its subscriptions by jid then subid (one per
	 * subid). */
	struct pubsub_node_item news = { "princes/news",       ps_conf,  1700000000.75,       ps_affs1,
		                         ARRAY_SIZE(ps_affs1), ps_subs1, ARRAY_SIZE(ps_subs1) };
	struct pubsub_node_item blog = { "blog", "<x/>", 1600000000, NULL, 0, NULL, 0 };
	assert_int_equal(ps_node_store(f, "a.example", svc, &news), STORAGE_OK);
	assert_int_equal(ps_node_store(f, "a.example", svc, &blog), STORAGE_OK);
	char *want = xasprintf("blog{<x/>}@1600000000: ; | princes/news{%s}@1700000000: "
	                       "juliet@a.example=publisher romeo@a.example=member tybalt@b.example=outcast ; "
	                       "b.example/s3=unconfigured() juliet@a.example/s1=pending() "
	                       "nurse@a.example/s2=subscribed()",
	                       ps_conf);
	assert_int_equal(ps_load(f, "a.example", svc, &r), STORAGE_OK);
	assert_int_equal(r.count, 2);
	assert_string_equal(r.text, want);
	free(want);

	/* Another owner (a user's PEP), with the same node name, and the same
	 * owner name on another host: neither sees the other's nodes. */
	struct pubsub_node_item pep = { "princes/news", "<pep/>", 5, ps_affs1, 1, NULL, 0 };
	assert_int_equal(ps_node_store(f, "a.example", "juliet@a.example", &pep), STORAGE_OK);
	struct pubsub_item it = ps_item("princes/news", "i1", 1, "<entry/>");
	assert_int_equal(ps_item_store(f, "a.example", "juliet@a.example", &it, NULL, 0), STORAGE_OK);
	assert_int_equal(ps_load(f, "a.example", "juliet@a.example", &r), STORAGE_OK);
	assert_string_equal(r.text, "princes/news{<pep/>}@5: romeo@a.example=owner ;");
	const char *const pep_items[] = { "princes/news/i1<romeo@a.example/balcony>@1700000001#1:<entry/>" };
	assert_names(&r, pep_items, 1);
	assert_int_equal(ps_load(f, "a.example", svc, &r), STORAGE_OK);
	assert_int_equal(r.count, 2);
	assert_int_equal(r.names.count, 0);
	assert_int_equal(ps_load(f, "b.example", "juliet@a.example", &r), STORAGE_OK);
	assert_int_equal(r.count, 0);
	assert_int_equal(r.names.count, 0);

	/* Storing again replaces the row and both lists as a whole (entries
	 * left out are gone); the node's items stay. */
	it = ps_item("blog", "first", 7, "<p>hello</p>");
	assert_int_equal(ps_item_store(f, "a.example", svc, &it, NULL, 0), STORAGE_OK);
	const struct pubsub_affiliation_item affs2[] = { { "tybalt@b.example", "member" } };
	const struct pubsub_subscription_item subs2[] = { { "nurse@a.example", "s9", "subscribed", "<o/>" } };
	struct pubsub_node_item news2 = { "princes/news", "<x/>", 1700000001, affs2, 1, subs2, 1 };
	struct pubsub_node_item blog2 = { "blog", "<y/>", 1600000000, affs2, 1, NULL, 0 };
	assert_int_equal(ps_node_store(f, "a.example", svc, &news2), STORAGE_OK);
	assert_int_equal(ps_node_store(f, "a.example", svc, &blog2), STORAGE_OK);
	assert_int_equal(ps_load(f, "a.example", svc, &r), STORAGE_OK);
	assert_string_equal(r.text, "blog{<y/>}@1600000000: tybalt@b.example=member ; | "
	                            "princes/news{<x/>}@1700000001: tybalt@b.example=member ; "
	                            "nurse@a.example/s9=subscribed(<o/>)");
	const char *const blog_items[] = { "blog/first<romeo@a.example/balcony>@1700000007#7:<p>hello</p>" };
	assert_names(&r, blog_items, 1);

	/* Delete removes the node with its lists and items, only that node;
	 * a node that is not stored is fine. */
	assert_int_equal(ps_node_delete(f, "a.example", svc, "blog"), STORAGE_OK);
	assert_int_equal(ps_node_delete(f, "a.example", svc, "blog"), STORAGE_OK);
	assert_int_equal(ps_node_delete(f, "a.example", svc, "nosuch"), STORAGE_OK);
	assert_int_equal(ps_load(f, "a.example", svc, &r), STORAGE_OK);
	assert_string_equal(r.text, "princes/news{<x/>}@1700000001: tybalt@b.example=member ; "
	                            "nurse@a.example/s9=subscribed(<o/>)");
	assert_int_equal(r.names.count, 0);
	/* Made again, it starts empty. */
	assert_int_equal(ps_node_store(f, "a.example", svc, &blog), STORAGE_OK);
	assert_int_equal(ps_load(f, "a.example", svc, &r), STORAGE_OK);
	assert_int_equal(r.count, 2);
	assert_int_equal(r.names.count, 0);
	assert_true(strncmp(r.text, "blog{<x/>}@1600000000: ; | ", 27) == 0);
	/* The other owner's node of the same name was not touched. */
	assert_int_equal(ps_load(f, "a.example", "juliet@a.example", &r), STORAGE_OK);
	assert_string_equal(r.text, "princes/news{<pep/>}@5: romeo@a.example=owner ;");
	assert_names(&r, pep_items, 1);
	res_clear(&r);
}

static void test_pubsub_items(void **state)
{
	struct fixture *f = *state;
	struct res r = { 0 };
	const char *o = "romeo@a.example";
	struct pubsub_node_item a = { "a", "<x/>", 1, NULL, 0, NULL, 0 };
	struct pubsub_node_item b = { "b", "<x/>", 2, NULL, 0, NULL, 0 };
	assert_int_equal(ps_node_store(f, "a.example", o, &b), STORAGE_OK);
	assert_int_equal(ps_node_store(f, "a.example", o, &a), STORAGE_OK);
	/* Items come back by node, then seq (not by id, not by arrival). */
	const struct {
		const char *node, *id;
		uint64_t seq;
	} in[] = { { "b", "z", 3 }, { "a", "y", 5 }, { "a", "x", 2 }, { "b", "a", 1 }, { "a", "w", 9 } };
	for (size_t i = 0; i < ARRAY_SIZE(in); i++) {
		struct pubsub_item it = ps_item(in[i].node, in[i].id, in[i].seq, in[i].id);
		assert_int_equal(ps_item_store(f, "a.example", o, &it, NULL, 0), STORAGE_OK);
	}
	assert_int_equal(ps_load(f, "a.example", o, &r), STORAGE_OK);
	const char *const five[] = {
		"a/x<romeo@a.example/balcony>@1700000002#2:x", "a/y<romeo@a.example/balcony>@1700000005#5:y",
		"a/w<romeo@a.example/balcony>@1700000009#9:w", "b/a<romeo@a.example/balcony>@1700000001#1:a",
		"b/z<romeo@a.example/balcony>@1700000003#3:z",
	};
	assert_names(&r, five, 5);

	/* Publishing an id again replaces it (one row, its new seq, publisher
	 * and payload); eviction happens in the same call, and ids not stored
	 * (or the item's own id) are ignored. */
	struct pubsub_item again = { "a", "x", "", 1800000000, 10, "" };
	const char *const evict[] = { "y", "nosuch", "x", "z" };
	assert_int_equal(ps_item_store(f, "a.example", o, &again, evict, ARRAY_SIZE(evict)), STORAGE_OK);
	assert_int_equal(ps_load(f, "a.example", o, &r), STORAGE_OK);
	const char *const four[] = {
		"a/w<romeo@a.example/balcony>@1700000009#9:w",
		"a/x<>@1800000000#10:",
		"b/a<romeo@a.example/balcony>@1700000001#1:a",
		"b/z<romeo@a.example/balcony>@1700000003#3:z",
	};
	assert_names(&r, four, 4);

	/* Delete by ids (unknown ones ignored, other nodes untouched). */
	const char *const del[] = { "w", "nosuch", "z" };
	assert_int_equal(ps_item_delete(f, "a.example", o, "a", del, ARRAY_SIZE(del)), STORAGE_OK);
	assert_int_equal(ps_load(f, "a.example", o, &r), STORAGE_OK);
	const char *const after_del[] = { "a/x<>@1800000000#10:",
		                          "b/a<romeo@a.example/balcony>@1700000001#1:a",
		                          "b/z<romeo@a.example/balcony>@1700000003#3:z" };
	assert_names(&r, after_del, 3);
	/* Purge (no ids): every item of the node, only that node; also when
	 * there is none. */
	assert_int_equal(ps_item_delete(f, "a.example", o, "b", NULL, 0), STORAGE_OK);
	assert_int_equal(ps_item_delete(f, "a.example", o, "b", NULL, 0), STORAGE_OK);
	assert_int_equal(ps_item_delete(f, "a.example", o, "nosuch", del, 1), STORAGE_OK);
	assert_int_equal(ps_load(f, "a.example", o, &r), STORAGE_OK);
	assert_names(&r, after_del, 1);
	assert_int_equal(r.count, 2);

	/* Owner delete: every node and item of the owner, no other's. */
	struct pubsub_item keep = ps_item("a", "k", 1, "<k/>");
	assert_int_equal(ps_node_store(f, "a.example", "juliet@a.example", &a), STORAGE_OK);
	assert_int_equal(ps_item_store(f, "a.example", "juliet@a.example", &keep, NULL, 0), STORAGE_OK);
	assert_int_equal(ps_owner_delete(f, "a.example", o), STORAGE_OK);
	assert_int_equal(ps_owner_delete(f, "a.example", o), STORAGE_OK);
	assert_int_equal(ps_load(f, "a.example", o, &r), STORAGE_OK);
	assert_int_equal(r.count, 0);
	assert_int_equal(r.names.count, 0);
	assert_int_equal(ps_load(f, "a.example", "juliet@a.example", &r), STORAGE_OK);
	assert_int_equal(r.count, 1);
	assert_int_equal(r.names.count, 1);
	/* Items of a node that is not stored are not loaded. */
	struct pubsub_item stray = ps_item("gone", "s", 1, "<s/>");
	assert_int_equal(ps_item_store(f, "a.example", "juliet@a.example", &stray, NULL, 0), STORAGE_OK);
	assert_int_equal(ps_load(f, "a.example", "juliet@a.example", &r), STORAGE_OK);
	assert_int_equal(r.names.count, 1);
	res_clear(&r);
}

/* A payload of 1 MiB with non-ASCII UTF-8 and XML's special characters
 * comes back byte for byte. */
static void test_pubsub_big_payload(void **state)
{
	struct fixture *f = *state;
	const char *o = "juliet@a.example";
	static const char piece[] = "<p a=\"&amp;&lt;'\">\xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x8c\xb9 "
	                            "&#x1F339; ]]&gt; \\ %s %% ' \"</p>\n";
	size_t len = 1024 * 1024, plen = strlen(piece);
	struct buf b = { 0 };
	buf_append_str(&b, "<item-body xmlns='urn:example:big'>");
	while (b.len + plen + 32 < len)
		buf_append(&b, piece, plen);
	buf_append_str(&b, "</item-body>");
	struct pubsub_node_item node = { "urn:xmpp:avatar:data", "<x/>", 1, NULL, 0, NULL, 0 };
	assert_int_equal(ps_node_store(f, "a.example", o, &node), STORAGE_OK);
	struct pubsub_item it = {
		"urn:xmpp:avatar:data", "0123abcd", "juliet@a.example/phone", 1700000000, 1, b.data
	};
	assert_int_equal(ps_item_store(f, "a.example", o, &it, NULL, 0), STORAGE_OK);
	struct res r = { 0 };
	assert_int_equal(ps_load(f, "a.example", o, &r), STORAGE_OK);
	assert_int_equal(r.names.count, 1);
	const char *got = strchr(strchr(r.names.items[0], '#'), ':') + 1;
	assert_int_equal(strlen(got), b.len);
	assert_memory_equal(got, b.data, b.len);
	buf_free(&b);
	res_clear(&r);
}

/* One owner's operations keep their order (they share a worker), also
 * when all are queued before any runs. */
static void test_pubsub_order(void **state)
{
	struct fixture *f = *state;
	const char *o = "pubsub.a.example";
	struct res w[40];
	memset(w, 0, sizeof(w));
	char cfg[40][16];
	for (int i = 0; i < 40; i++) {
		snprintf(cfg[i], sizeof(cfg[i]), "c%02d", i);
		struct pubsub_node_item node = {
			i % 2 == 0 ? "a" : "b", cfg[i], i, ps_affs1, (size_t)(i % 3), ps_subs1,
			(size_t)(i % 2)
		};
		struct pubsub_item it = ps_item(node.name, cfg[i], (uint64_t)i, cfg[i]);
		const char *const ev[] = { cfg[i - 2 >= 0 ? i - 2 : 0] };
		if (i % 10 == 9)
			assert_non_null(
			        CALL(storage_pubsub_node_delete(f->st, "a.example", o, "b", done_cb, &w[i])));
		else if (i % 4 == 1)
			assert_non_null(CALL(storage_pubsub_item_store(f->st, "a.example", o, &it, ev,
			                                               i >= 2 ? 1 : 0, done_cb, &w[i])));
		else
			assert_non_null(CALL(
			        storage_pubsub_node_store(f->st, "a.example", o, &node, done_cb, &w[i])));
	}
	run(f);
	for (int i = 0; i < 40; i++)
		assert_int_equal(w[i].r, STORAGE_OK);
	struct res r = { 0 };
	assert_int_equal(ps_load(f, "a.example", o, &r), STORAGE_OK);
	/* a: last stored at 38 (2 affiliations); b: deleted at 39; the items
	 * of b were deleted with it. */
	assert_string_equal(r.text, "a{c38}@38: romeo@a.example=owner tybalt@b.example=outcast ;");
	assert_int_equal(r.names.count, 0);
	res_clear(&r);
}

/* A node and an item are stored all or nothing: when a row cannot be
 * written (a trigger refuses it), the old rows stay. */
static void test_pubsub_all_or_nothing(void **state)
{
	struct fixture *f = *state;
	if (f->be->exec_sql == NULL)
		skip();
	const char *o = "pubsub.a.example";
	struct pubsub_node_item node = { "n", "<old/>", 5, ps_affs1, 1, ps_subs1, 1 };
	assert_int_equal(ps_node_store(f, "a.example", o, &node), STORAGE_OK);
	struct pubsub_item one = ps_item("n", "one", 1, "<one/>");
	assert_int_equal(ps_item_store(f, "a.example", o, &one, NULL, 0), STORAGE_OK);
	refuse_rows(f, "refuse_bad_sub", "INSERT", "pubsub_subscription", "NEW.subid = 'bad'");
	const struct pubsub_subscription_item bad[] = {
		{ "a@a.example", "good", "subscribed", "" },
		{ "b@a.example", "bad", "subscribed", "" },
	};
	struct pubsub_node_item changed = { "n", "<new/>", 6, NULL, 0, bad, 2 };
	assert_int_not_equal(ps_node_store(f, "a.example", o, &changed), STORAGE_OK);
	const char *old = "n{<old/>}@5: romeo@a.example=owner ; "
	                  "juliet@a.example/balcony/s2=subscribed(<options/>)";
	struct res r = { 0 };
	assert_int_equal(ps_load(f, "a.example", o, &r), STORAGE_OK);
	assert_string_equal(r.text, old);
	/* An item whose insert fails evicts nothing. */
	refuse_rows(f, "refuse_bad_item", "INSERT", "pubsub_item", "NEW.item_id = 'bad'");
	struct pubsub_item bad_item = ps_item("n", "bad", 2, "<bad/>");
	const char *const evict[] = { "one" };
	assert_int_not_equal(ps_item_store(f, "a.example", o, &bad_item, evict, 1), STORAGE_OK);
	/* A node delete that fails half-way leaves the node and its items. */
	refuse_rows(f, "refuse_del", "DELETE", "pubsub_node", "OLD.node = 'n'");
	assert_int_not_equal(ps_node_delete(f, "a.example", o, "n"), STORAGE_OK);
	assert_int_equal(ps_load(f, "a.example", o, &r), STORAGE_OK);
	assert_string_equal(r.text, old);
	const char *const items[] = { "n/one<romeo@a.example/balcony>@1700000001#1:<one/>" };
	assert_names(&r, items, 1);
	allow_rows(f, "refuse_del", "pubsub_node");
	allow_rows(f, "refuse_bad_item", "pubsub_item");
	allow_rows(f, "refuse_bad_sub", "pubsub_subscription");
	assert_int_equal(ps_node_store(f, "a.example", o, &changed), STORAGE_OK);
	assert_int_equal(ps_node_delete(f, "a.example", o, "n"), STORAGE_OK);
	assert_int_equal(ps_load(f, "a.example", o, &r), STORAGE_OK);
	assert_int_equal(r.count, 0);
	assert_int_equal(r.names.count, 0);
	res_clear(&r);
}

/* Read a migration script named in a message. */
static char *read_script(const char *path)
{
	FILE *fp = fopen(path, "r");
	if (fp == NULL)
		fail_msg("the message names %s, which cannot be read", path);
	char *script = calloc(1, 16384);
	size_t n = fread(script, 1, 16383, fp);
	script[n] = '\0';
	fclose(fp);
	return script;
}

/* Take the store back to schema version `from` (dropping the tables added
 * since), check that opening it is refused with exactly the scripts
 * `expect` named in order, apply them, and open it again. */
static void migrate_from(struct fixture *f, int from, const char *const *expect, size_t nexpect)
{
	storage_close(&f->st);
	if (from < 10 && strcmp(f->be->dialect, "sqlite") == 0)
		f->be->exec_sql(f, "DROP TABLE archive_fts");
	if (from < 10)
		f->be->exec_sql(f,
		                "DROP TABLE archive_prefs_jid; DROP TABLE archive_prefs; DROP TABLE archive");
	if (from < 9)
		f->be->exec_sql(f, "DROP TABLE pubsub_item; DROP TABLE pubsub_subscription; "
		                   "DROP TABLE pubsub_affiliation; DROP TABLE pubsub_node");
	if (from < 8)
		f->be->exec_sql(f,
		                "DROP TABLE muc_registered; DROP TABLE muc_affiliation; DROP TABLE muc_room");
	if (from < 7)
		f->be->exec_sql(f, "DROP TABLE vcard_search");
	if (from < 6)
		f->be->exec_sql(f, "DROP TABLE sr_members; DROP TABLE sr_displayed; DROP TABLE sr_groups");
	if (from < 5)
		f->be->exec_sql(f, "DROP TABLE privacy_items; DROP TABLE privacy_lists");
	if (from < 4)
		f->be->exec_sql(f, "DROP TABLE blocklist");
	if (from < 3)
		f->be->exec_sql(f, "DROP TABLE vcards; DROP TABLE private_storage; "
		                   "DROP TABLE last_activity");
	if (from < 2)
		f->be->exec_sql(f, "DROP TABLE offline_messages");
	/* The column of version 14, its index first (SQL Server keeps an
	 * indexed column; SQLite has no index on it). */
	if (from >= 2 && from < 14) {
		bool on_table = strcmp(f->be->dialect, "mysql") == 0 || strcmp(f->be->dialect, "mssql") == 0;
		if (strcmp(f->be->dialect, "sqlite") != 0)
			f->be->exec_sql(f, on_table ? "DROP INDEX offline_messages_token ON offline_messages"
			                            : "DROP INDEX offline_messages_token");
		f->be->exec_sql(f, "ALTER TABLE offline_messages DROP COLUMN token");
	}
	/* The columns of version 15 (SQL Server keeps a column with a
	 * constraint; the others drop a constraint of the column alone). */
	if (from < 15) {
		f->be->exec_sql(f, "ALTER TABLE roster_items DROP COLUMN ask_in_stanza");
		if (strcmp(f->be->dialect, "mssql") == 0)
			f->be->exec_sql(f, "ALTER TABLE roster_items DROP CONSTRAINT roster_items_in_roster, "
			                   "roster_items_in_roster_default");
		f->be->exec_sql(f, "ALTER TABLE roster_items DROP COLUMN in_roster");
	}
	if (from < 13)
		f->be->exec_sql(f, "DROP TABLE scram_cache");
	/* The table of version 12 (no trigger may refer to a dropped table);
	 * 012 recreates it whether or not 011 made it. */
	if (from < 12)
		f->be->exec_sql(f, "DROP TABLE fast_tokens");
	/* The columns of version 11. */
	const char *drop_sha512 =
	        strcmp(f->be->dialect, "sqlite") == 0 ? "ALTER TABLE users DROP COLUMN sha512_salt; "
	                                                "ALTER TABLE users DROP COLUMN sha512_iterations; "
	                                                "ALTER TABLE users DROP COLUMN sha512_stored_key; "
	                                                "ALTER TABLE users DROP COLUMN sha512_server_key"
	        : strcmp(f->be->dialect, "mssql") == 0
	                ? "ALTER TABLE users DROP COLUMN sha512_salt, sha512_iterations, "
	                  "sha512_stored_key, sha512_server_key"
	                : "ALTER TABLE users DROP COLUMN sha512_salt, DROP COLUMN sha512_iterations, "
	                  "DROP COLUMN sha512_stored_key, DROP COLUMN sha512_server_key";
	if (from < 11)
		f->be->exec_sql(f, drop_sha512);
	f->be->set_schema_version(f, from);
	char *err = NULL;
	assert_int_equal(open_store(f, &err), -1);
	assert_null(f->st);
	char want[64];
	snprintf(want, sizeof(want), "has schema version %d, this parleyd needs %d", from,
	         SQL_SCHEMA_VERSION);
	const char *at = strstr(err, "apply ");
	const char *end = at != NULL ? strstr(at, " to it") : NULL;
	if (strstr(err, want) == NULL || at == NULL || end == NULL)
		fail_msg("unexpected message: %s", err);
	/* "apply A, then B to it" */
	char *list = strndup(at + 6, (size_t)(end - at - 6));
	char *save = NULL;
	size_t k = 0;
	for (char *path = strtok_r(list, ",", &save); path != NULL; path = strtok_r(NULL, ",", &save)) {
		if (strncmp(path, " then ", 6) == 0)
			path += 6;
		char want_file[128];
		snprintf(want_file, sizeof(want_file), "migrations/%s/%s", f->be->dialect,
		         k < nexpect ? expect[k] : "");
		if (k >= nexpect || strstr(path, want_file) == NULL)
			fail_msg("unexpected script %zu in: %s", k, err);
		char *script = read_script(path);
		f->be->exec_sql(f, script);
		free(script);
		k++;
	}
	if (k != nexpect)
		fail_msg("%zu scripts named, %zu expected: %s", k, nexpect, err);
	free(list);
	free(err);
	err = NULL;
	assert_int_equal(open_store(f, &err), 0);
}

/* Everything of the current schema version works on a migrated store. */
static void check_migrated(struct fixture *f)
{
	struct res r = { 0 };
	assert_int_equal(acc_get(f, "a.example", "alice", &r), STORAGE_OK);
	assert_int_equal(off_store(f, "a.example", "alice", "<message/>", 1), STORAGE_OK);
	assert_int_equal(off_store(f, "a.example", "alice", "<message/>", 1), STORAGE_FULL);
	assert_int_equal(off_get(f, "a.example", "alice", &r), STORAGE_OK);
	assert_int_equal(r.nmsgs, 1);
	assert_int_equal(vcard_set(f, "a.example", "alice", vcard1), STORAGE_OK);
	assert_int_equal(vcard_get(f, "a.example", "alice", &r), STORAGE_OK);
	assert_string_equal(r.text, vcard1);
	const struct private_item it[] = { { "urn:example:a", "<a xmlns='urn:example:a'/>" } };
	assert_int_equal(priv_set(f, "a.example", "alice", it, 1), STORAGE_OK);
	assert_int_equal(priv_get(f, "a.example", "alice", "urn:example:a", &r), STORAGE_OK);
	assert_int_equal(last_set(f, "a.example", "alice", 1700000000, "gone"), STORAGE_OK);
	assert_int_equal(last_get(f, "a.example", "alice", &r), STORAGE_OK);
	const char *const blk[] = { "romeo@b.example" };
	assert_int_equal(blk_change(f, true, "a.example", "alice", blk, 1), STORAGE_OK);
	assert_int_equal(blk_get(f, "a.example", "alice", &r), STORAGE_OK);
	assert_names(&r, blk, 1);
	assert_int_equal(prv_change(f, PRV_SET, "a.example", "alice", "p", prv_public, 1), STORAGE_OK);
	assert_int_equal(prv_change(f, PRV_DEFAULT, "a.example", "alice", "p", NULL, 0), STORAGE_OK);
	assert_int_equal(prv_get(f, "a.example", "alice", &r), STORAGE_OK);
	assert_string_equal(r.text, "default=p|p:30 all - allow 0");
	struct srg_group g = { .name = "staff", .label = "Staff", .description = "" };
	assert_int_equal(srg_create(f, "a.example", &g), STORAGE_OK);
	assert_int_equal(srg_member(f, true, "a.example", "staff", "alice@a.example"), STORAGE_OK);
	struct storage_account kept;
	make_account(&kept, 31, true, true, NULL);
	assert_int_equal(sc_set(f, "a.example", "alice", &kept, (int64_t)time(NULL) + 60), STORAGE_OK);
	assert_int_equal(sc_get(f, "a.example", "alice", &r), STORAGE_OK);
	assert_account_equal(&r.acc, &kept);
	storage_account_clear(&kept);
	assert_int_equal(acc_remove(f, "a.example", "alice"), STORAGE_OK);
	assert_int_equal(sc_get(f, "a.example", "alice", &r), STORAGE_NOT_FOUND);
	assert_int_equal(srg_get(f, "a.example", "staff", &r), STORAGE_OK);
	assert_int_equal(r.groups[0].members.count, 0);
	assert_int_equal(vcard_get(f, "a.example", "alice", &r), STORAGE_NOT_FOUND);
	assert_int_equal(blk_get(f, "a.example", "alice", &r), STORAGE_OK);
	assert_int_equal(r.names.count, 0);
	const struct muc_affiliation_item aff[] = { { "alice@a.example", "owner", "" } };
	struct muc_room_item room = { "lobby", "<x/>", "hi", "alice", 1700000000, aff, 1 };
	assert_int_equal(muc_store(f, "a.example", "muc.a.example", &room), STORAGE_OK);
	assert_int_equal(muc_nick(f, "a.example", "muc.a.example", "alice@a.example", "Alice"), STORAGE_OK);
	assert_int_equal(muc_load(f, "a.example", "muc.a.example", &r), STORAGE_OK);
	assert_string_equal(r.text, "lobby{<x/>}[hi/alice]@1700000000: alice@a.example=owner()");
	const char *const nick[] = { "alice@a.example=Alice" };
	assert_names(&r, nick, 1);
	struct pubsub_node_item node = { "urn:xmpp:bookmarks:1", "<x/>", 1700000000, NULL, 0, NULL, 0 };
	struct pubsub_item item = {
		"urn:xmpp:bookmarks:1", "lobby@muc.a.example", "", 1700000001, 1, "<c/>"
	};
	assert_int_equal(ps_node_store(f, "a.example", "alice@a.example", &node), STORAGE_OK);
	assert_int_equal(ps_item_store(f, "a.example", "alice@a.example", &item, NULL, 0), STORAGE_OK);
	assert_int_equal(ps_load(f, "a.example", "alice@a.example", &r), STORAGE_OK);
	assert_string_equal(r.text, "urn:xmpp:bookmarks:1{<x/>}@1700000000: ;");
	const char *const items[] = { "urn:xmpp:bookmarks:1/lobby@muc.a.example<>@1700000001#1:<c/>" };
	assert_names(&r, items, 1);
	res_clear(&r);
}

/* A database made by the first release of the schema is refused with the
 * migrations to apply named, in order, and those scripts bring it up to
 * date. */
static void test_schema_migration(void **state)
{
	struct fixture *f = *state;
	if (f->be->exec_sql == NULL || f->be->set_schema_version == NULL)
		skip();
	struct storage_account a;
	make_account(&a, 13, true, true, NULL);
	assert_int_equal(acc_create(f, "a.example", "alice", &a), STORAGE_OK);
	static const char *const scripts[] = { "002-offline.sql",       "003-user-data.sql",
		                               "004-blocklist.sql",     "005-privacy.sql",
		                               "006-shared-roster.sql", "007-vcard-search.sql",
		                               "008-muc.sql",           "009-pubsub.sql",
		                               "010-mam.sql",           "011-sha512-fast.sql",
		                               "012-fast-seed.sql",     "013-scram-cache.sql",
		                               "014-offline-token.sql", "015-subscribe-stanza.sql" };
	migrate_from(f, 1, scripts, ARRAY_SIZE(scripts));
	check_migrated(f);
	storage_account_clear(&a);
}

/* The same from version 2 (offline messages kept). */
static void test_schema_migration_2_to_3(void **state)
{
	struct fixture *f = *state;
	if (f->be->exec_sql == NULL || f->be->set_schema_version == NULL)
		skip();
	struct storage_account a;
	make_account(&a, 14, true, true, NULL);
	assert_int_equal(acc_create(f, "a.example", "alice", &a), STORAGE_OK);
	assert_int_equal(off_store(f, "a.example", "bob", "<message/>", 0), STORAGE_NOT_FOUND);
	static const char *const scripts[] = { "003-user-data.sql",       "004-blocklist.sql",
		                               "005-privacy.sql",         "006-shared-roster.sql",
		                               "007-vcard-search.sql",    "008-muc.sql",
		                               "009-pubsub.sql",          "010-mam.sql",
		                               "011-sha512-fast.sql",     "012-fast-seed.sql",
		                               "013-scram-cache.sql",     "014-offline-token.sql",
		                               "015-subscribe-stanza.sql" };
	migrate_from(f, 2, scripts, ARRAY_SIZE(scripts));
	check_migrated(f);
	storage_account_clear(&a);
}

/* The same from version 3 (user data kept). */
static void test_schema_migration_3_to_4(void **state)
{
	struct fixture *f = *state;
	if (f->be->exec_sql == NULL || f->be->set_schema_version == NULL)
		skip();
	struct storage_account a;
	make_account(&a, 15, true, true, NULL);
	assert_int_equal(acc_create(f, "a.example", "alice", &a), STORAGE_OK);
	assert_int_equal(vcard_set(f, "a.example", "bob", vcard2), STORAGE_OK);
	static const char *const scripts[] = { "004-blocklist.sql",     "005-privacy.sql",
		                               "006-shared-roster.sql", "007-vcard-search.sql",
		                               "008-muc.sql",           "009-pubsub.sql",
		                               "010-mam.sql",           "011-sha512-fast.sql",
		                               "012-fast-seed.sql",     "013-scram-cache.sql",
		                               "014-offline-token.sql", "015-subscribe-stanza.sql" };
	migrate_from(f, 3, scripts, ARRAY_SIZE(scripts));
	struct res r = { 0 };
	assert_int_equal(vcard_get(f, "a.example", "bob", &r), STORAGE_OK);
	assert_string_equal(r.text, vcard2);
	res_clear(&r);
	check_migrated(f);
	storage_account_clear(&a);
}

/* The same from version 4 (block lists kept). */
static void test_schema_migration_4_to_5(void **state)
{
	struct fixture *f = *state;
	if (f->be->exec_sql == NULL || f->be->set_schema_version == NULL)
		skip();
	struct storage_account a;
	make_account(&a, 16, true, true, NULL);
	assert_int_equal(acc_create(f, "a.example", "alice", &a), STORAGE_OK);
	const char *const blk[] = { "tybalt@b.example" };
	assert_int_equal(blk_change(f, true, "a.example", "bob", blk, 1), STORAGE_OK);
	static const char *const scripts[] = { "005-privacy.sql",         "006-shared-roster.sql",
		                               "007-vcard-search.sql",    "008-muc.sql",
		                               "009-pubsub.sql",          "010-mam.sql",
		                               "011-sha512-fast.sql",     "012-fast-seed.sql",
		                               "013-scram-cache.sql",     "014-offline-token.sql",
		                               "015-subscribe-stanza.sql" };
	migrate_from(f, 4, scripts, ARRAY_SIZE(scripts));
	struct res r = { 0 };
	assert_int_equal(blk_get(f, "a.example", "bob", &r), STORAGE_OK);
	assert_names(&r, blk, 1);
	res_clear(&r);
	check_migrated(f);
	storage_account_clear(&a);
}

/* The same from version 5 (privacy lists kept). */
static void test_schema_migration_5_to_6(void **state)
{
	struct fixture *f = *state;
	if (f->be->exec_sql == NULL || f->be->set_schema_version == NULL)
		skip();
	struct storage_account a;
	make_account(&a, 17, true, true, NULL);
	assert_int_equal(acc_create(f, "a.example", "alice", &a), STORAGE_OK);
	assert_int_equal(prv_change(f, PRV_SET, "a.example", "bob", "p", prv_public, 1), STORAGE_OK);
	static const char *const scripts[] = { "006-shared-roster.sql", "007-vcard-search.sql",
		                               "008-muc.sql",           "009-pubsub.sql",
		                               "010-mam.sql",           "011-sha512-fast.sql",
		                               "012-fast-seed.sql",     "013-scram-cache.sql",
		                               "014-offline-token.sql", "015-subscribe-stanza.sql" };
	migrate_from(f, 5, scripts, ARRAY_SIZE(scripts));
	struct res r = { 0 };
	assert_int_equal(prv_get(f, "a.example", "bob", &r), STORAGE_OK);
	assert_string_equal(r.text, "default=|p:30 all - allow 0");
	res_clear(&r);
	check_migrated(f);
	storage_account_clear(&a);
}

/* The same from version 6 (groups kept; vCards stored before are indexed
 * by storage_vcard_reindex). */
static void test_schema_migration_6_to_7(void **state)
{
	struct fixture *f = *state;
	if (f->be->exec_sql == NULL || f->be->set_schema_version == NULL)
		skip();
	struct storage_account a;
	make_account(&a, 18, true, true, NULL);
	assert_int_equal(acc_create(f, "a.example", "alice", &a), STORAGE_OK);
	struct srg_group g = { .name = "kept", .label = "", .description = "" };
	assert_int_equal(srg_create(f, "a.example", &g), STORAGE_OK);
	assert_int_equal(vcard_set(f, "a.example", "romeo", vc_romeo), STORAGE_OK);
	static const char *const scripts[] = { "007-vcard-search.sql",    "008-muc.sql",
		                               "009-pubsub.sql",          "010-mam.sql",
		                               "011-sha512-fast.sql",     "012-fast-seed.sql",
		                               "013-scram-cache.sql",     "014-offline-token.sql",
		                               "015-subscribe-stanza.sql" };
	migrate_from(f, 6, scripts, ARRAY_SIZE(scripts));
	struct res r = { 0 };
	assert_int_equal(srg_get(f, "a.example", "kept", &r), STORAGE_OK);
	const char *const s[] = { "nick=rom" };
	assert_int_equal(vsearch(f, "a.example", false, 0, &r, s, 1), STORAGE_OK);
	ASSERT_FOUND(&r, "");
	assert_non_null(CALL(storage_vcard_reindex(f->st, "a.example", count_cb, &r)));
	run(f);
	assert_int_equal(r.count, 1);
	assert_int_equal(vsearch(f, "a.example", false, 0, &r, s, 1), STORAGE_OK);
	ASSERT_FOUND(&r, "romeo");
	res_clear(&r);
	check_migrated(f);
	storage_account_clear(&a);
}

/* The same from version 7 (the directory's index kept). */
static void test_schema_migration_7_to_8(void **state)
{
	struct fixture *f = *state;
	if (f->be->exec_sql == NULL || f->be->set_schema_version == NULL)
		skip();
	struct storage_account a;
	make_account(&a, 19, true, true, NULL);
	assert_int_equal(acc_create(f, "a.example", "alice", &a), STORAGE_OK);
	assert_int_equal(vcard_set(f, "a.example", "romeo", vc_romeo), STORAGE_OK);
	static const char *const scripts[] = { "008-muc.sql",           "009-pubsub.sql",
		                               "010-mam.sql",           "011-sha512-fast.sql",
		                               "012-fast-seed.sql",     "013-scram-cache.sql",
		                               "014-offline-token.sql", "015-subscribe-stanza.sql" };
	migrate_from(f, 7, scripts, ARRAY_SIZE(scripts));
	struct res r = { 0 };
	const char *const s[] = { "nick=rom" };
	assert_int_equal(vsearch(f, "a.example", false, 0, &r, s, 1), STORAGE_OK);
	ASSERT_FOUND(&r, "romeo");
	res_clear(&r);
	check_migrated(f);
	storage_account_clear(&a);
}

/* The same from version 8 (the MUC rooms kept). */
static void test_schema_migration_8_to_9(void **state)
{
	struct fixture *f = *state;
	if (f->be->exec_sql == NULL || f->be->set_schema_version == NULL)
		skip();
	struct storage_account a;
	make_account(&a, 20, true, true, NULL);
	assert_int_equal(acc_create(f, "a.example", "alice", &a), STORAGE_OK);
	struct muc_room_item room = { "kept", "<x/>", "", "", 1, NULL, 0 };
	assert_int_equal(muc_store(f, "a.example", "rooms.a.example", &room), STORAGE_OK);
	static const char *const scripts[] = { "009-pubsub.sql",          "010-mam.sql",
		                               "011-sha512-fast.sql",     "012-fast-seed.sql",
		                               "013-scram-cache.sql",     "014-offline-token.sql",
		                               "015-subscribe-stanza.sql" };
	migrate_from(f, 8, scripts, ARRAY_SIZE(scripts));
	struct res r = { 0 };
	assert_int_equal(muc_load(f, "a.example", "rooms.a.example", &r), STORAGE_OK);
	assert_string_equal(r.text, "kept{<x/>}[/]@1:");
	res_clear(&r);
	check_migrated(f);
	storage_account_clear(&a);
}

/* ---- tests: message archives ---------------------------------------------------------- */

/* A query's answer as text: r->text "id,id,..." (ascending as answered),
 * r->more: not complete; r->names the messages as
 * "id peer/resource >|< body|- stanza". */
static void mam_query_cb(enum storage_result res, const struct mam_message *msgs, size_t count, bool complete,
                         void *ctx)
{
	struct res *r = ctx;
	note(r, res);
	free(r->text);
	strlist_free(&r->names);
	r->text_null = msgs == NULL && count > 0;
	r->more = !complete;
	r->count = count;
	struct buf b = { 0 };
	buf_append_str(&b, "");
	r->names.count = count;
	r->names.items = count > 0 ? calloc(count, sizeof(char *)) : NULL;
	for (size_t i = 0; i < count; i++) {
		const struct mam_message *m = &msgs[i];
		buf_printf(&b, "%s%lld", i > 0 ? "," : "", (long long)m->id);
		r->names.items[i] =
		        xasprintf("%lld %s/%s %s %s %s", (long long)m->id, m->peer, m->resource,
		                  m->outgoing ? ">" : "<", m->body != NULL ? m->body : "-", m->stanza);
	}
	r->text = strdup(b.data);
	buf_free(&b);
}

static enum storage_result mam_query(struct fixture *f, const char *host, const char *owner,
                                     const struct mam_query *q, struct res *r)
{
	int before = r->calls;
	assert_non_null(CALL(storage_mam_query(f->st, host, owner, q, mam_query_cb, r)));
	assert_int_equal(r->calls, before);
	run(f);
	assert_int_equal(r->calls, before + 1);
	return r->r;
}

/* The ids of a query's page and whether it is complete: "1,2,3" or
 * "1,2,3+" (more beyond the page). */
static const char *mam_page(struct fixture *f, const char *owner, const struct mam_query *q)
{
	static char out[512];
	struct res r = { 0 };
	enum storage_result res = mam_query(f, "a.example", owner, q, &r);
	if (res != STORAGE_OK)
		fail_msg("query: %s", storage_result_str(res));
	snprintf(out, sizeof(out), "%s%s", r.text, r.more ? "+" : "");
	res_clear(&r);
	return out;
}

static enum storage_result mam_store(struct fixture *f, const char *host, const char *owner, int64_t id,
                                     const char *peer, const char *resource, bool outgoing, const char *body)
{
	char stanza[128];
	snprintf(stanza, sizeof(stanza), "<message xmlns='jabber:client' id='m%lld'/>", (long long)id);
	struct mam_message m = { id, peer, resource, outgoing, body, stanza };
	struct res r = { 0 };
	return ps_wait(f, CALL(storage_mam_store(f->st, host, owner, &m, done_cb, &r)), &r);
}

static enum storage_result mam_owner_delete(struct fixture *f, const char *host, const char *owner)
{
	struct res r = { 0 };
	return ps_wait(f, CALL(storage_mam_owner_delete(f->st, host, owner, done_cb, &r)), &r);
}

static enum storage_result mam_expire(struct fixture *f, const char *host, int64_t before, unsigned limit,
                                      uint64_t *count_r)
{
	struct res r = { 0 };
	enum storage_result res =
	        ps_wait(f, CALL(storage_mam_expire(f->st, host, before, limit, count_cb, &r)), &r);
	*count_r = r.count;
	return res;
}

/* Preferences as text: "def a: x y n: z". */
static void mam_prefs_cb(enum storage_result res, const struct mam_prefs *prefs, void *ctx)
{
	struct res *r = ctx;
	note(r, res);
	free(r->text);
	r->text = NULL;
	r->text_null = prefs == NULL;
	if (prefs == NULL)
		return;
	struct buf b = { 0 };
	buf_printf(&b, "%s a:", mam_default_str(prefs->def));
	for (size_t i = 0; i < prefs->n_always; i++)
		buf_printf(&b, " %s", prefs->always[i]);
	buf_append_str(&b, " n:");
	for (size_t i = 0; i < prefs->n_never; i++)
		buf_printf(&b, " %s", prefs->never[i]);
	r->text = buf_steal(&b);
}

static enum storage_result mam_prefs_get(struct fixture *f, const char *host, const char *owner,
                                         struct res *r)
{
	int before = r->calls;
	assert_non_null(CALL(storage_mam_prefs_get(f->st, host, owner, mam_prefs_cb, r)));
	run(f);
	assert_int_equal(r->calls, before + 1);
	return r->r;
}

static enum storage_result mam_prefs_set(struct fixture *f, const char *host, const char *owner,
                                         const struct mam_prefs *p)
{
	struct res r = { 0 };
	return ps_wait(f, CALL(storage_mam_prefs_set(f->st, host, owner, p, done_cb, &r)), &r);
}

#define ALICE "alice@a.example"
#define ROMEO "romeo@b.example"
#define NURSE "nurse@a.example"

/* Ten messages of alice: ids 10, 20, ..., 100; romeo at the odd tens
 * (balcony, then garden from 70 on), the nurse at the even ones. */
static void mam_fill(struct fixture *f)
{
	for (int i = 1; i <= 10; i++) {
		bool romeo = i % 2 == 1;
		char body[32];
		snprintf(body, sizeof(body), "line %d", i);
		assert_int_equal(mam_store(f, "a.example", ALICE, i * 10, romeo ? ROMEO : NURSE,
		                           romeo ? (i < 7 ? "balcony" : "garden") : "", i % 3 == 0,
		                           i == 4 ? NULL : body),
		                 STORAGE_OK);
	}
}

static void test_mam_store_query(void **state)
{
	struct fixture *f = *state;
	assert_string_equal(storage_area_str(STORAGE_AREA_MAM), "mam");
	assert_true(storage_has_area(f->st, STORAGE_AREA_MAM));
	struct mam_query q = { .max = 100 };
	assert_string_equal(mam_page(f, ALICE, &q), "");
	mam_fill(f);
	/* A duplicate id stores nothing. */
	assert_int_equal(mam_store(f, "a.example", ALICE, 30, NURSE, "", false, "again"), STORAGE_EXISTS);
	/* The same message again (a retry of a store whose answer was lost)
	 * is done, and stays one row; one that differs in its resource, its
	 * direction or its stanza is another message under a taken id. */
	assert_int_equal(mam_store(f, "a.example", ALICE, 30, ROMEO, "balcony", true, "line 3"), STORAGE_OK);
	assert_int_equal(mam_store(f, "a.example", ALICE, 30, ROMEO, "garden", true, "line 3"),
	                 STORAGE_EXISTS);
	assert_int_equal(mam_store(f, "a.example", ALICE, 30, ROMEO, "balcony", false, "line 3"),
	                 STORAGE_EXISTS);
	struct mam_message other = { 30, ROMEO, "balcony", true, "line 3", "<message id='other'/>" };
	struct res o = { 0 };
	assert_int_equal(
	        ps_wait(f, CALL(storage_mam_store(f->st, "a.example", ALICE, &other, done_cb, &o)), &o),
	        STORAGE_EXISTS);
	/* The same id for another owner, or on another host, is another message. */
	assert_int_equal(mam_store(f, "a.example", NURSE, 30, ALICE, "", true, "other owner"), STORAGE_OK);
	assert_int_equal(mam_store(f, "b.example", ALICE, 30, NURSE, "", true, "other host"), STORAGE_OK);

	struct res r = { 0 };
	assert_int_equal(mam_query(f, "a.example", ALICE, &q, &r), STORAGE_OK);
	assert_string_equal(r.text, "10,20,30,40,50,60,70,80,90,100");
	assert_false(r.more);
	assert_string_equal(r.names.items[0], "10 romeo@b.example/balcony < line 1 "
	                                      "<message xmlns='jabber:client' id='m10'/>");
	assert_string_equal(r.names.items[2], "30 romeo@b.example/balcony > line 3 "
	                                      "<message xmlns='jabber:client' id='m30'/>");
	assert_string_equal(r.names.items[3],
	                    "40 nurse@a.example/ < - <message xmlns='jabber:client' id='m40'/>");
	res_clear(&r);
	memset(&r, 0, sizeof(r));
	assert_int_equal(mam_query(f, "b.example", ALICE, &q, &r), STORAGE_OK);
	assert_int_equal(r.names.count, 1);
	assert_string_equal(r.names.items[0], "30 nurse@a.example/ > other host "
	                                      "<message xmlns='jabber:client' id='m30'/>");
	res_clear(&r);

	/* with, with a resource */
	q = (struct mam_query){ .with = ROMEO, .max = 100 };
	assert_string_equal(mam_page(f, ALICE, &q), "10,30,50,70,90");
	q.with_resource = "garden";
	assert_string_equal(mam_page(f, ALICE, &q), "70,90");
	q.with_resource = "kitchen";
	assert_string_equal(mam_page(f, ALICE, &q), "");
	q = (struct mam_query){ .with = "tybalt@b.example", .max = 100 };
	assert_string_equal(mam_page(f, ALICE, &q), "");
	/* start and end are inclusive */
	q = (struct mam_query){ .start = 30, .end = 70, .max = 100 };
	assert_string_equal(mam_page(f, ALICE, &q), "30,40,50,60,70");
	q = (struct mam_query){ .start = 31, .max = 100 };
	assert_string_equal(mam_page(f, ALICE, &q), "40,50,60,70,80,90,100");
	q = (struct mam_query){ .end = 29, .with = NURSE, .max = 100 };
	assert_string_equal(mam_page(f, ALICE, &q), "20");

	/* Forward paging: the first max after after_id. */
	q = (struct mam_query){ .max = 4 };
	assert_string_equal(mam_page(f, ALICE, &q), "10,20,30,40+");
	q.after_id = 40;
	assert_string_equal(mam_page(f, ALICE, &q), "50,60,70,80+");
	q.after_id = 80;
	assert_string_equal(mam_page(f, ALICE, &q), "90,100");
	q.after_id = 60;
	assert_string_equal(mam_page(f, ALICE, &q), "70,80,90,100");
	q.after_id = 100;
	assert_string_equal(mam_page(f, ALICE, &q), "");
	q = (struct mam_query){ .with = ROMEO, .after_id = 10, .max = 2 };
	assert_string_equal(mam_page(f, ALICE, &q), "30,50+");

	/* Backwards: the last max before before_id (0: the newest page),
	 * ascending. */
	q = (struct mam_query){ .backwards = true, .max = 4 };
	assert_string_equal(mam_page(f, ALICE, &q), "70,80,90,100+");
	q.before_id = 70;
	assert_string_equal(mam_page(f, ALICE, &q), "30,40,50,60+");
	q.before_id = 30;
	assert_string_equal(mam_page(f, ALICE, &q), "10,20");
	q.before_id = 50;
	assert_string_equal(mam_page(f, ALICE, &q), "10,20,30,40");
	q = (struct mam_query){ .backwards = true, .with = NURSE, .end = 80, .max = 3 };
	assert_string_equal(mam_page(f, ALICE, &q), "40,60,80+");
	q = (struct mam_query){ .backwards = true, .max = 1 };
	assert_string_equal(mam_page(f, ALICE, &q), "100+");
	/* Both bounds. */
	q = (struct mam_query){ .after_id = 20, .before_id = 60, .max = 10 };
	assert_string_equal(mam_page(f, ALICE, &q), "30,40,50");
	q.backwards = true;
	q.max = 2;
	assert_string_equal(mam_page(f, ALICE, &q), "40,50+");

	/* ids: only those (given in any order, repeated, unknown ones); none
	 * at all matches nothing. */
	const int64_t ids[] = { 90, 20, 55, 20, 70 };
	q = (struct mam_query){ .ids = ids, .nids = ARRAY_SIZE(ids), .max = 100 };
	assert_string_equal(mam_page(f, ALICE, &q), "20,70,90");
	q.with = ROMEO;
	assert_string_equal(mam_page(f, ALICE, &q), "70,90");
	q = (struct mam_query){ .ids = ids, .nids = 0, .max = 100 };
	assert_string_equal(mam_page(f, ALICE, &q), "");
	q = (struct mam_query){ .ids = ids, .nids = ARRAY_SIZE(ids), .max = 2 };
	assert_string_equal(mam_page(f, ALICE, &q), "20,70+");

	/* Owner delete: that owner's messages only. */
	assert_int_equal(mam_owner_delete(f, "a.example", ALICE), STORAGE_OK);
	assert_int_equal(mam_owner_delete(f, "a.example", "nobody@a.example"), STORAGE_OK);
	q = (struct mam_query){ .max = 100 };
	assert_string_equal(mam_page(f, ALICE, &q), "");
	assert_string_equal(mam_page(f, NURSE, &q), "30");
	memset(&r, 0, sizeof(r));
	assert_int_equal(mam_query(f, "b.example", ALICE, &q, &r), STORAGE_OK);
	assert_string_equal(r.text, "30");
	res_clear(&r);
	/* The id is free again. */
	assert_int_equal(mam_store(f, "a.example", ALICE, 30, NURSE, "", false, NULL), STORAGE_OK);
}

static void test_mam_text(void **state)
{
	struct fixture *f = *state;
	static const char *const bodies[] = { "Hello world",
		                              "goodbye world",
		                              "say HELLO again",
		                              NULL,
		                              "nothing here",
		                              "100% _sure_ [x] !bang \"quoted\" 'single'",
		                              "caf\xc3\xa9 cr\xc3\xa8me" };
	for (size_t i = 0; i < ARRAY_SIZE(bodies); i++)
		assert_int_equal(
		        mam_store(f, "a.example", ALICE, (int64_t)i + 1, ROMEO, "", false, bodies[i]),
		        STORAGE_OK);
	assert_int_equal(mam_store(f, "a.example", NURSE, 1, ROMEO, "", false, "hello nurse"), STORAGE_OK);
	struct mam_query q = { .text = "hello", .max = 10 };
	assert_string_equal(mam_page(f, ALICE, &q), "1,3");
	q.text = "WORLD";
	assert_string_equal(mam_page(f, ALICE, &q), "1,2");
	q.text = "hello world";
	assert_string_equal(mam_page(f, ALICE, &q), "1");
	q.text = "caf\xc3\xa9";
	assert_string_equal(mam_page(f, ALICE, &q), "7");
	q.text = "absent";
	assert_string_equal(mam_page(f, ALICE, &q), "");
	/* The search's own syntax is not the user's: quotes, wildcards,
	 * operators are text. */
	static const char *const odd[] = {
		"\"",      "'", "%", "_", "[x]", "!", "*", "-hello", "hello OR nothing", "NEAR(hello world)",
		"\"quoted"
	};
	for (size_t i = 0; i < ARRAY_SIZE(odd); i++) {
		q.text = odd[i];
		struct res r = { 0 };
		assert_int_equal(mam_query(f, "a.example", ALICE, &q, &r), STORAGE_OK);
		res_clear(&r);
	}
	q.text = "%";
	const char *page = mam_page(f, ALICE, &q);
	if (strcmp(page, "") != 0 && strcmp(page, "6") != 0)
		fail_msg("'%%' matched %s", page);
	/* With the other filters and paging. */
	q = (struct mam_query){ .text = "world", .max = 1 };
	assert_string_equal(mam_page(f, ALICE, &q), "1+");
	q.after_id = 1;
	assert_string_equal(mam_page(f, ALICE, &q), "2");
	q = (struct mam_query){ .text = "hello", .backwards = true, .max = 1 };
	assert_string_equal(mam_page(f, ALICE, &q), "3+");
	q = (struct mam_query){ .text = "hello", .with = NURSE, .max = 10 };
	assert_string_equal(mam_page(f, ALICE, &q), "");
	q = (struct mam_query){ .text = "hello", .max = 10 };
	assert_string_equal(mam_page(f, NURSE, &q), "1");
	/* Deleted messages are no longer found. */
	assert_int_equal(mam_owner_delete(f, "a.example", ALICE), STORAGE_OK);
	q = (struct mam_query){ .text = "hello", .max = 10 };
	assert_string_equal(mam_page(f, ALICE, &q), "");
	assert_string_equal(mam_page(f, NURSE, &q), "1");
}

/* A word in many messages (more than SQLite's store reads as a list of
 * matches, and than PostgreSQL's reads along the key before it takes the
 * text index): the pages are the same; so are those of words found only
 * in the oldest messages or too rarely to fill a page from the newest. */
static void test_mam_text_common(void **state)
{
	struct fixture *f = *state;
	enum { N = 1100 };
	static struct res w[N + 5];
	static char body[N + 5][48];
	memset(w, 0, sizeof(w));
	/* Queued 500 at a time (the test stores' queue holds 1000): the SQL
	 * stores group-commit them. */
	for (int i = 0; i < N + 5; i++) {
		bool nurse = i >= N;
		snprintf(body[i], sizeof(body[i]), "a common word %d%s%s", i, i % 400 == 0 ? " sparse" : "",
		         i < 3 ? " oldest" : "");
		struct mam_message m = { nurse ? i - N + 1 : i + 1, ROMEO, "", false, body[i], "<message/>" };
		assert_non_null(CALL(
		        storage_mam_store(f->st, "a.example", nurse ? NURSE : ALICE, &m, done_cb, &w[i])));
		if (i % 500 == 499)
			run(f);
	}
	run(f);
	for (int i = 0; i < N + 5; i++)
		assert_int_equal(w[i].r, STORAGE_OK);
	struct mam_query q = { .text = "COMMON", .backwards = true, .max = 3 };
	assert_string_equal(mam_page(f, ALICE, &q), "1098,1099,1100+");
	q.before_id = 1098;
	assert_string_equal(mam_page(f, ALICE, &q), "1095,1096,1097+");
	q = (struct mam_query){ .text = "common word", .after_id = 1097, .max = 3 };
	assert_string_equal(mam_page(f, ALICE, &q), "1098,1099,1100");
	q = (struct mam_query){ .text = "word 1050", .max = 3 };
	assert_string_equal(mam_page(f, ALICE, &q), "1051");
	q = (struct mam_query){ .text = "common", .max = 10 };
	assert_string_equal(mam_page(f, NURSE, &q), "1,2,3,4,5");
	q = (struct mam_query){ .text = "common", .with = NURSE, .max = 10 };
	assert_string_equal(mam_page(f, ALICE, &q), "");
	q = (struct mam_query){ .text = "oldest", .backwards = true, .max = 2 };
	assert_string_equal(mam_page(f, ALICE, &q), "2,3+");
	q.before_id = 2;
	assert_string_equal(mam_page(f, ALICE, &q), "1");
	q = (struct mam_query){ .text = "sparse", .backwards = true, .max = 2 };
	assert_string_equal(mam_page(f, ALICE, &q), "401,801+");
	q = (struct mam_query){ .text = "sparse", .after_id = 1, .max = 5 };
	assert_string_equal(mam_page(f, ALICE, &q), "401,801");
	q = (struct mam_query){ .text = "sparse", .backwards = true, .end = 800, .max = 5 };
	assert_string_equal(mam_page(f, ALICE, &q), "1,401");
}

static void test_mam_expire(void **state)
{
	struct fixture *f = *state;
	for (int i = 1; i <= 5; i++) {
		assert_int_equal(mam_store(f, "a.example", ALICE, i * 10, ROMEO, "", false, "x"), STORAGE_OK);
		assert_int_equal(mam_store(f, "a.example", NURSE, i * 10 + 1, ROMEO, "", false, "x"),
		                 STORAGE_OK);
		assert_int_equal(mam_store(f, "b.example", ROMEO, i * 10, ALICE, "", true, "x"), STORAGE_OK);
	}
	uint64_t n = 99;
	/* Before 41: alice's 10..40 and the nurse's 11..31: 7 messages, 3 at a time. */
	assert_int_equal(mam_expire(f, "a.example", 41, 3, &n), STORAGE_OK);
	assert_int_equal(n, 3);
	assert_int_equal(mam_expire(f, "a.example", 41, 3, &n), STORAGE_OK);
	assert_int_equal(n, 3);
	assert_int_equal(mam_expire(f, "a.example", 41, 3, &n), STORAGE_OK);
	assert_int_equal(n, 1);
	assert_int_equal(mam_expire(f, "a.example", 41, 3, &n), STORAGE_OK);
	assert_int_equal(n, 0);
	struct mam_query q = { .max = 100 };
	assert_string_equal(mam_page(f, ALICE, &q), "50");
	assert_string_equal(mam_page(f, NURSE, &q), "41,51");
	/* No limit. */
	assert_int_equal(mam_expire(f, "a.example", 1000, 0, &n), STORAGE_OK);
	assert_int_equal(n, 3);
	assert_string_equal(mam_page(f, NURSE, &q), "");
	/* The other host is untouched. */
	struct res r = { 0 };
	assert_int_equal(mam_query(f, "b.example", ROMEO, &q, &r), STORAGE_OK);
	assert_string_equal(r.text, "10,20,30,40,50");
	res_clear(&r);
}

static void test_mam_prefs(void **state)
{
	struct fixture *f = *state;
	struct res r = { 0 };
	assert_int_equal(mam_prefs_get(f, "a.example", ALICE, &r), STORAGE_NOT_FOUND);
	assert_true(r.text_null);
	const char *const always[] = { ROMEO, "juliet@c.example", NURSE, ROMEO };
	const char *const never[] = { "tybalt@b.example", NURSE };
	struct mam_prefs p = { MAM_DEFAULT_ROSTER, always, ARRAY_SIZE(always), never, ARRAY_SIZE(never) };
	assert_int_equal(mam_prefs_set(f, "a.example", ALICE, &p), STORAGE_OK);
	assert_int_equal(mam_prefs_get(f, "a.example", ALICE, &r), STORAGE_OK);
	/* Sorted, once each; a JID in both lists is never archived. */
	assert_string_equal(r.text,
	                    "roster a: juliet@c.example romeo@b.example n: nurse@a.example tybalt@b.example");
	p = (struct mam_prefs){ MAM_DEFAULT_NEVER, NULL, 0, never, 1 };
	assert_int_equal(mam_prefs_set(f, "a.example", ALICE, &p), STORAGE_OK);
	assert_int_equal(mam_prefs_get(f, "a.example", ALICE, &r), STORAGE_OK);
	assert_string_equal(r.text, "never a: n: tybalt@b.example");
	p = (struct mam_prefs){ MAM_DEFAULT_ALWAYS, NULL, 0, NULL, 0 };
	assert_int_equal(mam_prefs_set(f, "a.example", ALICE, &p), STORAGE_OK);
	assert_int_equal(mam_prefs_get(f, "a.example", ALICE, &r), STORAGE_OK);
	assert_string_equal(r.text, "always a: n:");
	/* Kept per owner and host. */
	assert_int_equal(mam_prefs_get(f, "a.example", NURSE, &r), STORAGE_NOT_FOUND);
	assert_int_equal(mam_prefs_get(f, "b.example", ALICE, &r), STORAGE_NOT_FOUND);
	/* An archive purge keeps the preferences. */
	assert_int_equal(mam_owner_delete(f, "a.example", ALICE), STORAGE_OK);
	assert_int_equal(mam_prefs_get(f, "a.example", ALICE, &r), STORAGE_OK);
	assert_string_equal(r.text, "always a: n:");
	res_clear(&r);
}

static void test_remove_user_removes_archive(void **state)
{
	struct fixture *f = *state;
	struct storage_account a;
	make_account(&a, 21, true, true, NULL);
	assert_int_equal(acc_create(f, "a.example", "alice", &a), STORAGE_OK);
	assert_int_equal(acc_create(f, "a.example", "nurse", &a), STORAGE_OK);
	mam_fill(f);
	assert_int_equal(mam_store(f, "a.example", NURSE, 5, ALICE, "", false, "kept"), STORAGE_OK);
	const char *const never[] = { ROMEO };
	struct mam_prefs p = { MAM_DEFAULT_ALWAYS, never, 1, never, 1 };
	assert_int_equal(mam_prefs_set(f, "a.example", ALICE, &p), STORAGE_OK);
	assert_int_equal(mam_prefs_set(f, "a.example", NURSE, &p), STORAGE_OK);
	assert_int_equal(acc_remove(f, "a.example", "alice"), STORAGE_OK);
	struct mam_query q = { .max = 100 };
	assert_string_equal(mam_page(f, ALICE, &q), "");
	struct res r = { 0 };
	assert_int_equal(mam_prefs_get(f, "a.example", ALICE, &r), STORAGE_NOT_FOUND);
	assert_string_equal(mam_page(f, NURSE, &q), "5");
	assert_int_equal(mam_prefs_get(f, "a.example", NURSE, &r), STORAGE_OK);
	assert_string_equal(r.text, "always a: n: romeo@b.example");
	/* The text index forgot the removed messages. */
	q.text = "line";
	assert_string_equal(mam_page(f, ALICE, &q), "");
	res_clear(&r);
	storage_account_clear(&a);
}

/* Stores queued while the store's lock is held wait behind the first, on
 * the one worker, and are then written as one batch: lock where the
 * backend can (not through odbc or mysql), queue (the first job then
 * waits for the worker to take it), unlock and run. */
static bool mam_batch_lock(struct fixture *f)
{
	bool locked = f->be->lock != NULL && strcmp(f->cfg.driver, "odbc") != 0 &&
	              strcmp(f->cfg.driver, "mysql") != 0;
	if (locked)
		f->be->lock(f);
	return locked;
}

static void mam_batch_queue(struct fixture *f, const char *owner, const struct mam_message *m, struct res *w,
                            bool first)
{
	assert_non_null(CALL(storage_mam_store(f->st, "a.example", owner, m, done_cb, w)));
	if (first)
		usleep(200000); /* the worker waits on the lock with job 0 */
}

static void mam_batch_run(struct fixture *f, bool locked)
{
	if (locked)
		f->be->unlock(f);
	run(f);
}

/* Stores queued together are written in one transaction (group commit);
 * a duplicate among them, or a batch that fails, still gives each job its
 * own result. */
static void run_mam_batch(struct fixture *f, bool fail_batches, bool dup)
{
	enum { N = 40 };
	struct res w[N];
	int order[N], len = 0;
	memset(w, 0, sizeof(w));
	storage_sql_test_fail_batches(f->st, fail_batches);
	unsigned long batched0 = storage_sql_test_batched(f->st);
	struct mam_query q0 = { .max = 1 };
	assert_string_equal(mam_page(f, ALICE, &q0), "");
	bool locked = mam_batch_lock(f);
	for (int i = 0; i < N; i++) {
		/* alice and the nurse by turns; with dup, job 21 is another
		 * message under alice's id 1. */
		bool again = dup && i == 21;
		const char *owner = i % 2 == 0 || again ? ALICE : NURSE;
		struct mam_message m = { again ? 1 : i + 1,
			                 ROMEO,
			                 "",
			                 false,
			                 "b",
			                 again ? "<message id='another'/>" : "<message/>" };
		w[i].order = order;
		w[i].order_len = &len;
		w[i].tag = i;
		mam_batch_queue(f, owner, &m, &w[i], i == 0 && locked);
	}
	mam_batch_run(f, locked);
	assert_int_equal(len, N);
	for (int i = 0; i < N; i++) {
		assert_int_equal(w[i].calls, 1);
		assert_int_equal(order[i], i);
		enum storage_result want = dup && i == 21 ? STORAGE_EXISTS : STORAGE_OK;
		if (w[i].r != want)
			fail_msg("job %d: %s, expected %s", i, storage_result_str(w[i].r),
			         storage_result_str(want));
	}
	struct mam_query q = { .max = 100 };
	struct res r = { 0 };
	assert_int_equal(mam_query(f, "a.example", ALICE, &q, &r), STORAGE_OK);
	assert_int_equal(r.count, N / 2);
	res_clear(&r);
	memset(&r, 0, sizeof(r));
	assert_int_equal(mam_query(f, "a.example", NURSE, &q, &r), STORAGE_OK);
	assert_int_equal(r.count, dup ? N / 2 - 1 : N / 2);
	res_clear(&r);
	if (locked && !fail_batches && !dup)
		assert_true(storage_sql_test_batched(f->st) > batched0);
	if (fail_batches)
		assert_int_equal(storage_sql_test_batched(f->st), batched0);
	storage_sql_test_fail_batches(f->st, false);
}

static void test_mam_batch(void **state)
{
	struct fixture *f = *state;
	if (in_memory(f))
		skip(); /* no transactions to group */
	storage_close(&f->st);
	f->cfg.pool_size = 1;
	char *err = NULL;
	assert_int_equal(open_store(f, &err), 0);
	for (int run = 0; run < 3; run++) {
		run_mam_batch(f, run == 2, run == 1);
		assert_int_equal(mam_owner_delete(f, "a.example", ALICE), STORAGE_OK);
		assert_int_equal(mam_owner_delete(f, "a.example", NURSE), STORAGE_OK);
	}
}

/* A batch written with multi-row inserts (85 jobs: chunks of 64, 16, 4
 * and 1 rows) keeps every row's own values: peer, resource, direction,
 * body (or none) and stanza. */
static void test_mam_batch_rows(void **state)
{
	struct fixture *f = *state;
	if (in_memory(f))
		skip(); /* no transactions to group */
	enum { N = 85 };
	storage_close(&f->st);
	f->cfg.pool_size = 1;
	char *err = NULL;
	assert_int_equal(open_store(f, &err), 0);
	static struct res w[N];
	static char peer[N][32], resource[N][16], body[N][16], stanza[N][80];
	memset(w, 0, sizeof(w));
	unsigned long batched0 = storage_sql_test_batched(f->st);
	bool locked = mam_batch_lock(f);
	for (int i = 0; i < N; i++) {
		snprintf(peer[i], sizeof(peer[i]), "peer%d@b.example", i % 7);
		snprintf(resource[i], sizeof(resource[i]),
		         i % 5 == 0   ? ""
		         : i % 5 == 2 ? " r\"{%d}, "
		                      : "r%d",
		         i);
		/* What a store must pass through unchanged, whatever its way of
		 * writing a batch: quotes, backslashes, braces, commas, spaces,
		 * the word NULL, non-ASCII. */
		snprintf(body[i], sizeof(body[i]),
		         i % 6 == 2   ? "NULL"
		         : i % 6 == 4 ? " \"\\{,}\xc3\xa9 %d"
		                      : "body %d",
		         i);
		snprintf(stanza[i], sizeof(stanza[i]),
		         "<message xmlns='jabber:client' id='s%d'>\\\"</message>", i);
		struct mam_message m = {
			1000 + i, peer[i], resource[i], i % 3 == 0, i % 4 == 1 ? NULL : body[i], stanza[i]
		};
		mam_batch_queue(f, ALICE, &m, &w[i], i == 0 && locked);
	}
	mam_batch_run(f, locked);
	for (int i = 0; i < N; i++)
		assert_int_equal(w[i].r, STORAGE_OK);
	if (locked)
		assert_true(storage_sql_test_batched(f->st) >= batched0 + N - 1);
	struct mam_query q = { .max = 100 };
	struct res r = { 0 };
	assert_int_equal(mam_query(f, "a.example", ALICE, &q, &r), STORAGE_OK);
	assert_int_equal(r.count, N);
	for (int i = 0; i < N; i++) {
		char want[200];
		snprintf(want, sizeof(want), "%d %s/%s %s %s %s", 1000 + i, peer[i], resource[i],
		         i % 3 == 0 ? ">" : "<", i % 4 == 1 ? "-" : body[i], stanza[i]);
		assert_string_equal(r.names.items[i], want);
	}
	res_clear(&r);
}

/* From version 10: an account made before has no SHA-512 keys and keeps
 * the others; new credentials get all three. */
/* Submit call, run the loop, expect exactly one answer into r. */
#define FAST_WAIT(f, r, call)                   \
	do {                                    \
		assert_non_null(CALL(call));    \
		assert_int_equal((r).calls, 0); \
		run(f);                         \
		assert_int_equal((r).calls, 1); \
	} while (0)

static void fast_token_cb(enum storage_result res, const struct storage_fast_token *t, void *ctx)
{
	struct res *r = ctx;
	note(r, res);
	free(r->text);
	r->text = t != NULL ? xasprintf("%s %s %lld %lld %llu %02x", t->ua_id, t->mechanism,
	                                (long long)t->created, (long long)t->expires,
	                                (unsigned long long)t->count, t->seed[0])
	                    : NULL;
}

static void fast_tokens_cb(enum storage_result res, const struct storage_fast_token *t, size_t n, void *ctx)
{
	struct res *r = ctx;
	note(r, res);
	struct buf b = { 0 };
	for (size_t i = 0; i < n; i++)
		buf_printf(&b, "%s:%02x:%lld;", t[i].ua_id, t[i].seed[0], (long long)t[i].created);
	free(r->text);
	r->text = b.data != NULL ? xstrndup(b.data, b.len) : xstrdup("");
	buf_free(&b);
}

static enum storage_result fast_set(struct fixture *f, const char *user, const char *ua, unsigned char h,
                                    int64_t created, uint64_t count)
{
	struct storage_fast_token t = { .ua_id = (char *)ua,
		                        .mechanism = (char *)"HT-SHA-256-NONE",
		                        .created = created,
		                        .expires = created + 86400,
		                        .count = count };
	memset(t.seed, h, sizeof(t.seed));
	struct res r = { 0 };
	FAST_WAIT(f, r, storage_fast_token_set(f->st, "a.example", user, &t, done_cb, &r));
	return r.r;
}

static enum storage_result fast_get(struct fixture *f, const char *user, unsigned char h, struct res *r)
{
	unsigned char seed[STORAGE_FAST_SEED_LEN];
	memset(seed, h, sizeof(seed));
	r->calls = 0;
	FAST_WAIT(f, (*r), storage_fast_token_get(f->st, "a.example", user, seed, fast_token_cb, r));
	return r->r;
}

static const char *fast_list(struct fixture *f, const char *user, struct res *r)
{
	r->calls = 0;
	FAST_WAIT(f, (*r), storage_fast_token_list(f->st, "a.example", user, fast_tokens_cb, r));
	assert_int_equal(r->r, STORAGE_OK);
	return r->text;
}

static enum storage_result fast_delete(struct fixture *f, const char *user, const char *ua)
{
	struct res r = { 0 };
	FAST_WAIT(f, r, storage_fast_token_delete(f->st, "a.example", user, ua, NULL, done_cb, &r));
	return r.r;
}

static enum storage_result fast_delete_seed(struct fixture *f, const char *user, const char *ua,
                                            unsigned char h)
{
	unsigned char seed[STORAGE_FAST_SEED_LEN];
	memset(seed, h, sizeof(seed));
	struct res r = { 0 };
	FAST_WAIT(f, r, storage_fast_token_delete(f->st, "a.example", user, ua, seed, done_cb, &r));
	return r.r;
}

/* FAST tokens: stored by seed, replaced by seed, listed, deleted one by
 * seed, per client or all, and removed with the account. */
static void test_fast_tokens(void **state)
{
	struct fixture *f = *state;
	struct storage_account a;
	struct res r = { 0 };
	make_account(&a, 30, true, true, NULL);
	assert_int_equal(acc_create(f, "a.example", "alice", &a), STORAGE_OK);
	assert_int_equal(fast_get(f, "alice", 0xaa, &r), STORAGE_NOT_FOUND);
	assert_int_equal(fast_set(f, "alice", "ua-1", 0xaa, 1000, 0), STORAGE_OK);
	assert_int_equal(fast_set(f, "alice", "ua-1", 0xab, 2000, 0), STORAGE_OK);
	assert_int_equal(fast_set(f, "alice", "ua-2", 0xbb, 1500, 0), STORAGE_OK);
	assert_int_equal(fast_set(f, "bob", "ua-1", 0xcc, 1000, 0), STORAGE_OK);
	assert_int_equal(fast_get(f, "alice", 0xaa, &r), STORAGE_OK);
	assert_string_equal(r.text, "ua-1 HT-SHA-256-NONE 1000 87400 0 aa");
	assert_int_equal(fast_get(f, "alice", 0xcc, &r), STORAGE_NOT_FOUND);
	/* the same hash again replaces the row (a new count) */
	assert_int_equal(fast_set(f, "alice", "ua-1", 0xaa, 1000, 7), STORAGE_OK);
	assert_int_equal(fast_get(f, "alice", 0xaa, &r), STORAGE_OK);
	assert_string_equal(r.text, "ua-1 HT-SHA-256-NONE 1000 87400 7 aa");
	assert_string_equal(fast_list(f, "alice", &r), "ua-1:aa:1000;ua-1:ab:2000;ua-2:bb:1500;");
	assert_int_equal(fast_delete_seed(f, "alice", "ua-2", 0xab), STORAGE_NOT_FOUND);
	assert_int_equal(fast_delete_seed(f, "alice", NULL, 0xab), STORAGE_OK);
	assert_int_equal(fast_delete_seed(f, "alice", "ua-1", 0xab), STORAGE_NOT_FOUND);
	assert_string_equal(fast_list(f, "alice", &r), "ua-1:aa:1000;ua-2:bb:1500;");
	assert_int_equal(fast_set(f, "alice", "ua-1", 0xab, 2000, 0), STORAGE_OK);
	assert_int_equal(fast_delete(f, "alice", "ua-1"), STORAGE_OK);
	assert_int_equal(fast_delete(f, "alice", "ua-1"), STORAGE_NOT_FOUND);
	assert_string_equal(fast_list(f, "alice", &r), "ua-2:bb:1500;");
	assert_int_equal(fast_set(f, "alice", "ua-3", 0xdd, 3000, 0), STORAGE_OK);
	assert_int_equal(fast_delete(f, "alice", NULL), STORAGE_OK);
	assert_string_equal(fast_list(f, "alice", &r), "");
	assert_int_equal(fast_set(f, "alice", "ua-4", 0xee, 4000, 0), STORAGE_OK);
	assert_int_equal(acc_remove(f, "a.example", "alice"), STORAGE_OK);
	assert_string_equal(fast_list(f, "alice", &r), "");
	assert_string_equal(fast_list(f, "bob", &r), "ua-1:cc:1000;");
	/* expired tokens of the whole host go; another host's stay */
	assert_int_equal(fast_set(f, "bob", "ua-2", 0xc1, 200000, 0), STORAGE_OK);
	assert_int_equal(fast_set(f, "carol", "ua-1", 0xc2, 1000, 0), STORAGE_OK);
	r.calls = 0;
	FAST_WAIT(f, r, storage_fast_token_expire(f->st, "b.example", 100000, count_cb, &r));
	assert_int_equal(r.count, 0);
	r.calls = 0;
	FAST_WAIT(f, r, storage_fast_token_expire(f->st, "a.example", 87400, count_cb, &r));
	assert_int_equal(r.r, STORAGE_OK);
	assert_int_equal(r.count, 2);
	assert_string_equal(fast_list(f, "bob", &r), "ua-2:c1:200000;");
	assert_string_equal(fast_list(f, "carol", &r), "");
	res_clear(&r);
	storage_account_clear(&a);
}

static void fast_login_cb(enum storage_result res, const struct storage_fast_token *t, size_t n,
                          bool account_exists, void *ctx)
{
	struct res *r = ctx;
	fast_tokens_cb(res, t, n, ctx);
	r->more = account_exists;
}

/* The user's tokens and whether the account exists, from one job (a
 * token login): true only while the account row is there, whatever
 * tokens the user has. */
static const char *fast_list_login(struct fixture *f, const char *user, bool *exists_r, struct res *r)
{
	r->calls = 0;
	r->more = !*exists_r;
	FAST_WAIT(f, (*r), storage_fast_token_list_login(f->st, "a.example", user, fast_login_cb, r));
	assert_int_equal(r->r, STORAGE_OK);
	*exists_r = r->more;
	return r->text;
}

static void test_fast_token_list_login(void **state)
{
	struct fixture *f = *state;
	struct storage_account a;
	struct res r = { 0 };
	bool exists = false;
	make_account(&a, 31, true, true, NULL);
	assert_int_equal(acc_create(f, "a.example", "alice", &a), STORAGE_OK);
	assert_string_equal(fast_list_login(f, "alice", &exists, &r), "");
	assert_true(exists);
	assert_int_equal(fast_set(f, "alice", "ua-1", 0xaa, 1000, 0), STORAGE_OK);
	assert_int_equal(fast_set(f, "alice", "ua-2", 0xbb, 1500, 0), STORAGE_OK);
	assert_string_equal(fast_list_login(f, "alice", &exists, &r), "ua-1:aa:1000;ua-2:bb:1500;");
	assert_true(exists);
	/* tokens without an account (rows a removal did not reach) */
	assert_int_equal(fast_set(f, "bob", "ua-1", 0xcc, 1000, 0), STORAGE_OK);
	exists = true;
	assert_string_equal(fast_list_login(f, "bob", &exists, &r), "ua-1:cc:1000;");
	assert_false(exists);
	exists = true;
	assert_string_equal(fast_list_login(f, "nobody", &exists, &r), "");
	assert_false(exists);
	/* another host's account is not this one */
	assert_int_equal(acc_create(f, "b.example", "carol", &a), STORAGE_OK);
	exists = true;
	fast_list_login(f, "carol", &exists, &r);
	assert_false(exists);
	assert_int_equal(acc_remove(f, "a.example", "alice"), STORAGE_OK);
	exists = true;
	assert_string_equal(fast_list_login(f, "alice", &exists, &r), "");
	assert_false(exists);
	res_clear(&r);
	storage_account_clear(&a);
}

static void test_schema_migration_10_to_11(void **state)
{
	struct fixture *f = *state;
	if (f->be->exec_sql == NULL || f->be->set_schema_version == NULL)
		skip();
	struct storage_account a;
	make_account(&a, 21, true, true, NULL);
	assert_int_equal(acc_create(f, "a.example", "alice", &a), STORAGE_OK);
	static const char *const scripts[] = { "011-sha512-fast.sql", "012-fast-seed.sql",
		                               "013-scram-cache.sql", "014-offline-token.sql",
		                               "015-subscribe-stanza.sql" };
	migrate_from(f, 10, scripts, ARRAY_SIZE(scripts));
	struct res r = { 0 };
	assert_int_equal(acc_get(f, "a.example", "alice", &r), STORAGE_OK);
	a.has_sha512 = false;
	assert_account_equal(&r.acc, &a);
	res_clear(&r);
	storage_account_clear(&a);
	make_account(&a, 22, true, true, "pw");
	assert_int_equal(acc_update(f, "a.example", "alice", &a), STORAGE_OK);
	assert_int_equal(acc_get(f, "a.example", "alice", &r), STORAGE_OK);
	assert_account_equal(&r.acc, &a);
	res_clear(&r);
	storage_account_clear(&a);
	check_migrated(f);
}

/* 012 replaces the table of FAST tokens (seeds instead of hashes). */
static void test_schema_migration_11_to_12(void **state)
{
	struct fixture *f = *state;
	if (f->be->exec_sql == NULL || f->be->set_schema_version == NULL)
		skip();
	struct storage_account a;
	make_account(&a, 23, true, true, NULL);
	assert_int_equal(acc_create(f, "a.example", "alice", &a), STORAGE_OK);
	static const char *const scripts[] = { "012-fast-seed.sql", "013-scram-cache.sql",
		                               "014-offline-token.sql", "015-subscribe-stanza.sql" };
	migrate_from(f, 11, scripts, ARRAY_SIZE(scripts));
	struct res r = { 0 };
	assert_int_equal(acc_get(f, "a.example", "alice", &r), STORAGE_OK);
	assert_account_equal(&r.acc, &a);
	res_clear(&r);
	storage_account_clear(&a);
	check_migrated(f);
}

/* 013 adds the table of kept SCRAM keys. */
static void test_schema_migration_12_to_13(void **state)
{
	struct fixture *f = *state;
	if (f->be->exec_sql == NULL || f->be->set_schema_version == NULL)
		skip();
	struct storage_account a;
	make_account(&a, 24, true, true, NULL);
	assert_int_equal(acc_create(f, "a.example", "alice", &a), STORAGE_OK);
	static const char *const scripts[] = { "013-scram-cache.sql", "014-offline-token.sql",
		                               "015-subscribe-stanza.sql" };
	migrate_from(f, 12, scripts, ARRAY_SIZE(scripts));
	struct res r = { 0 };
	assert_int_equal(acc_get(f, "a.example", "alice", &r), STORAGE_OK);
	assert_account_equal(&r.acc, &a);
	res_clear(&r);
	storage_account_clear(&a);
	check_migrated(f);
}

/* 014 gives offline messages a token; the ones stored before keep theirs
 * without one, in order, and new ones queue after them. */
static void test_schema_migration_13_to_14(void **state)
{
	struct fixture *f = *state;
	if (f->be->exec_sql == NULL || f->be->set_schema_version == NULL)
		skip();
	struct storage_account a;
	make_account(&a, 25, true, true, NULL);
	assert_int_equal(acc_create(f, "a.example", "alice", &a), STORAGE_OK);
	assert_int_equal(acc_create(f, "a.example", "bob", &a), STORAGE_OK);
	assert_int_equal(off_store(f, "a.example", "bob", "<message id='1'/>", 0), STORAGE_OK);
	assert_int_equal(off_store(f, "a.example", "bob", "<message id='2'/>", 0), STORAGE_OK);
	static const char *const scripts[] = { "014-offline-token.sql", "015-subscribe-stanza.sql" };
	migrate_from(f, 13, scripts, ARRAY_SIZE(scripts));
	assert_int_equal(off_store(f, "a.example", "bob", "<message id='3'/>", 0), STORAGE_OK);
	struct res r = { 0 };
	assert_int_equal(off_get(f, "a.example", "bob", &r), STORAGE_OK);
	assert_int_equal(r.nmsgs, 3);
	assert_string_equal(r.msgs[0].stanza, "<message id='1'/>");
	assert_string_equal(r.msgs[2].stanza, "<message id='3'/>");
	res_clear(&r);
	storage_account_clear(&a);
	check_migrated(f);
}

/* 015 gives roster items what a pending request said; requests stored
 * before stay pending without it, and new ones keep it.  It tells the
 * items in the roster from the rows that are only a waiting request by the
 * rule that hid them before: subscription none, a request, nothing else,
 * no name, no group (of the same user's item: the groups of another
 * user's item of the same JID do not count). */
static void test_schema_migration_14_to_15(void **state)
{
	struct fixture *f = *state;
	if (f->be->exec_sql == NULL || f->be->set_schema_version == NULL)
		skip();
	struct storage_account a;
	make_account(&a, 26, true, true, NULL);
	assert_int_equal(acc_create(f, "a.example", "alice", &a), STORAGE_OK);
	static const char *const friends[] = { "Friends", NULL };
	static const struct {
		const char *jid, *name;
		enum roster_subscription sub;
		bool ask_out, ask_in, approved, group, in_roster;
	} rows[] = {
		{ "romeo@montague.example", NULL, SUB_NONE, false, true, false, false, false },
		{ "juliet@capulet.example", "Juliet", SUB_NONE, false, true, false, false, true },
		{ "nurse@capulet.example", NULL, SUB_NONE, false, true, false, true, true },
		{ "tybalt@capulet.example", NULL, SUB_FROM, false, false, false, false, true },
		{ "mercutio@verona.example", NULL, SUB_NONE, true, true, false, false, true },
		{ "paris@verona.example", NULL, SUB_NONE, false, true, true, false, true },
		{ "benvolio@montague.example", NULL, SUB_NONE, false, false, false, false, true },
	};
	struct roster_item it;
	for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
		item_init(&it, rows[i].jid, rows[i].name, rows[i].sub, rows[i].group ? friends : NULL);
		it.ask_out = rows[i].ask_out;
		it.ask_in = rows[i].ask_in;
		it.approved = rows[i].approved;
		assert_int_equal(roster_set(f, "a.example", "alice", &it), STORAGE_OK);
		roster_item_clear(&it);
	}
	/* bob has romeo in a group */
	item_init(&it, "romeo@montague.example", NULL, SUB_NONE, friends);
	it.ask_in = true;
	assert_int_equal(roster_set(f, "a.example", "bob", &it), STORAGE_OK);
	roster_item_clear(&it);
	static const char *const scripts[] = { "015-subscribe-stanza.sql" };
	migrate_from(f, 14, scripts, ARRAY_SIZE(scripts));
	struct res r = { 0 };
	assert_int_equal(roster_get(f, "a.example", "alice", &r), STORAGE_OK);
	assert_int_equal(r.nitems, ARRAY_SIZE(rows));
	const struct roster_item *romeo = find(&r, "romeo@montague.example");
	assert_true(romeo->ask_in);
	assert_null(romeo->ask_in_stanza);
	for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
		const struct roster_item *got = find(&r, rows[i].jid);
		assert_non_null(got);
		if (got->in_roster != rows[i].in_roster)
			fail_msg("%s: in_roster %d after the migration, not %d", rows[i].jid, got->in_roster,
			         rows[i].in_roster);
		assert_int_equal(roster_item_pending_only(got), !rows[i].in_roster);
	}
	assert_int_equal(roster_get(f, "a.example", "bob", &r), STORAGE_OK);
	assert_int_equal(r.nitems, 1);
	assert_true(r.items[0].in_roster);
	item_init(&it, "juliet@capulet.example", NULL, SUB_NONE, NULL);
	it.ask_in = true;
	it.ask_in_stanza = strdup("<presence><status>hi</status></presence>");
	assert_int_equal(roster_set(f, "a.example", "alice", &it), STORAGE_OK);
	roster_item_clear(&it);
	assert_int_equal(roster_get(f, "a.example", "alice", &r), STORAGE_OK);
	assert_int_equal(r.nitems, ARRAY_SIZE(rows));
	assert_string_equal(find(&r, "juliet@capulet.example")->ask_in_stanza,
	                    "<presence><status>hi</status></presence>");
	res_clear(&r);
	storage_account_clear(&a);
	check_migrated(f);
}

/* SCRAM keys kept for users of other auth methods: apart from the
 * accounts, replaced by a new set, gone once expired (at a lookup or by
 * the sweep), deleted, and removed with an account of the same name. */
static void test_scram_cache(void **state)
{
	struct fixture *f = *state;
	struct res r = { 0 };
	int64_t now = (int64_t)time(NULL);
	struct storage_account k1, k2;
	make_account(&k1, 41, true, true, NULL);
	make_account(&k2, 42, true, true, NULL);
	assert_int_equal(sc_get(f, "a.example", "carol", &r), STORAGE_NOT_FOUND);
	assert_true(r.acc_null);
	assert_int_equal(sc_delete(f, "a.example", "carol"), STORAGE_NOT_FOUND);
	assert_int_equal(sc_set(f, "a.example", "carol", &k1, now + 60), STORAGE_OK);
	assert_int_equal(sc_get(f, "a.example", "carol", &r), STORAGE_OK);
	assert_account_equal(&r.acc, &k1);
	/* no account: the kept keys are none */
	assert_int_equal(acc_get(f, "a.example", "carol", &r), STORAGE_NOT_FOUND);
	assert_int_equal(acc_count(f, "a.example"), 0);
	/* another host, another user: nothing */
	assert_int_equal(sc_get(f, "b.example", "carol", &r), STORAGE_NOT_FOUND);
	assert_int_equal(sc_get(f, "a.example", "dave", &r), STORAGE_NOT_FOUND);
	/* a new set replaces the old one */
	assert_int_equal(sc_set(f, "a.example", "carol", &k2, now + 60), STORAGE_OK);
	assert_int_equal(sc_get(f, "a.example", "carol", &r), STORAGE_OK);
	assert_account_equal(&r.acc, &k2);
	assert_int_equal(sc_delete(f, "a.example", "carol"), STORAGE_OK);
	assert_int_equal(sc_get(f, "a.example", "carol", &r), STORAGE_NOT_FOUND);
	/* expired: not given, and deleted by the lookup */
	assert_int_equal(sc_set(f, "a.example", "carol", &k1, now - 1), STORAGE_OK);
	assert_int_equal(sc_get(f, "a.example", "carol", &r), STORAGE_NOT_FOUND);
	assert_int_equal(sc_delete(f, "a.example", "carol"), STORAGE_NOT_FOUND);
	/* the sweep: only what expired at or before `before`, of that host */
	assert_int_equal(sc_set(f, "a.example", "carol", &k1, now + 10), STORAGE_OK);
	assert_int_equal(sc_set(f, "a.example", "dave", &k1, now + 100), STORAGE_OK);
	assert_int_equal(sc_set(f, "b.example", "erin", &k1, now + 10), STORAGE_OK);
	assert_int_equal(sc_expire(f, "a.example", now + 10), 1);
	assert_int_equal(sc_expire(f, "a.example", now + 10), 0);
	assert_int_equal(sc_get(f, "a.example", "dave", &r), STORAGE_OK);
	assert_int_equal(sc_get(f, "b.example", "erin", &r), STORAGE_OK);
	/* an account of the same name removed: its kept keys go too */
	assert_int_equal(acc_create(f, "a.example", "dave", &k2), STORAGE_OK);
	assert_int_equal(acc_remove(f, "a.example", "dave"), STORAGE_OK);
	assert_int_equal(sc_get(f, "a.example", "dave", &r), STORAGE_NOT_FOUND);
	/* written under a longer TTL than the one asked with: expired, and
	 * deleted by the lookup */
	assert_int_equal(sc_set(f, "a.example", "carol", &k1, now + 3000), STORAGE_OK);
	assert_int_equal(sc_get_ttl(f, "a.example", "carol", 3600, &r), STORAGE_OK);
	assert_int_equal(sc_get_ttl(f, "a.example", "carol", 60, &r), STORAGE_NOT_FOUND);
	assert_int_equal(sc_delete(f, "a.example", "carol"), STORAGE_NOT_FOUND);
	res_clear(&r);
	storage_account_clear(&k1);
	storage_account_clear(&k2);
}

static void test_schema_migration_9_to_10(void **state)
{
	struct fixture *f = *state;
	if (f->be->exec_sql == NULL || f->be->set_schema_version == NULL)
		skip();
	struct storage_account a;
	make_account(&a, 20, true, true, NULL);
	assert_int_equal(acc_create(f, "a.example", "alice", &a), STORAGE_OK);
	struct pubsub_node_item node = { "kept", "<x/>", 1, NULL, 0, NULL, 0 };
	assert_int_equal(ps_node_store(f, "a.example", "pubsub.a.example", &node), STORAGE_OK);
	static const char *const scripts[] = { "010-mam.sql",           "011-sha512-fast.sql",
		                               "012-fast-seed.sql",     "013-scram-cache.sql",
		                               "014-offline-token.sql", "015-subscribe-stanza.sql" };
	migrate_from(f, 9, scripts, ARRAY_SIZE(scripts));
	struct res r = { 0 };
	assert_int_equal(ps_load(f, "a.example", "pubsub.a.example", &r), STORAGE_OK);
	assert_string_equal(r.text, "kept{<x/>}@1: ;");
	res_clear(&r);
	check_migrated(f);
	/* The archive, its text index and the preferences work. */
	assert_int_equal(
	        mam_store(f, "a.example", ALICE, 1700000000000001, ROMEO, "balcony", true, "Hello there"),
	        STORAGE_OK);
	struct mam_query q = { .text = "hello", .max = 10 };
	assert_string_equal(mam_page(f, ALICE, &q), "1700000000000001");
	const char *const never[] = { ROMEO };
	struct mam_prefs p = { MAM_DEFAULT_ROSTER, NULL, 0, never, 1 };
	assert_int_equal(mam_prefs_set(f, "a.example", ALICE, &p), STORAGE_OK);
	assert_int_equal(mam_prefs_get(f, "a.example", ALICE, &r), STORAGE_OK);
	assert_string_equal(r.text, "roster a: n: romeo@b.example");
	res_clear(&r);
	storage_account_clear(&a);
}

/* ---- tests: order, cancel, callbacks --------------------------------------------------- */

static void test_order_per_user(void **state)
{
	struct fixture *f = *state;
	struct storage_account a, b;
	make_account(&a, 5, true, true, NULL);
	make_account(&b, 6, true, true, NULL);
	int order[64], len = 0;
	struct res r[8];
	memset(r, 0, sizeof(r));
	for (int i = 0; i < 8; i++) {
		r[i].order = order;
		r[i].order_len = &len;
		r[i].tag = i;
	}
	/* All queued before any runs: one user's operations keep their order. */
	assert_non_null(CALL(storage_account_get(f->st, "a.example", "alice", account_cb, &r[0])));
	assert_non_null(CALL(storage_account_create(f->st, "a.example", "alice", &a, done_cb, &r[1])));
	assert_non_null(CALL(storage_account_get(f->st, "a.example", "alice", account_cb, &r[2])));
	assert_non_null(CALL(storage_account_update(f->st, "a.example", "alice", &b, done_cb, &r[3])));
	assert_non_null(CALL(storage_account_get(f->st, "a.example", "alice", account_cb, &r[4])));
	assert_non_null(CALL(storage_account_remove(f->st, "a.example", "alice", done_cb, &r[5])));
	assert_non_null(CALL(storage_account_get(f->st, "a.example", "alice", account_cb, &r[6])));
	assert_non_null(CALL(storage_account_create(f->st, "a.example", "alice", &b, done_cb, &r[7])));
	for (int i = 0; i < 8; i++)
		assert_int_equal(r[i].calls, 0);
	run(f);
	assert_int_equal(len, 8);
	for (int i = 0; i < 8; i++) {
		assert_int_equal(order[i], i);
		assert_int_equal(r[i].calls, 1);
	}
	assert_int_equal(r[0].r, STORAGE_NOT_FOUND);
	assert_int_equal(r[1].r, STORAGE_OK);
	assert_int_equal(r[2].r, STORAGE_OK);
	assert_account_equal(&r[2].acc, &a);
	assert_int_equal(r[3].r, STORAGE_OK);
	assert_int_equal(r[4].r, STORAGE_OK);
	assert_account_equal(&r[4].acc, &b);
	assert_int_equal(r[5].r, STORAGE_OK);
	assert_int_equal(r[6].r, STORAGE_NOT_FOUND);
	assert_int_equal(r[7].r, STORAGE_OK);

	/* Many roster changes in a row: every one counted. */
	struct res w[20];
	memset(w, 0, sizeof(w));
	for (int i = 0; i < 20; i++) {
		struct roster_item it;
		char jid[32];
		snprintf(jid, sizeof(jid), "c%02d@x.example", i);
		item_init(&it, jid, NULL, SUB_NONE, NULL);
		assert_non_null(CALL(storage_roster_set(f->st, "a.example", "alice", &it, done_cb, &w[i])));
		roster_item_clear(&it);
	}
	struct res g = { 0 };
	assert_int_equal(roster_get(f, "a.example", "alice", &g), STORAGE_OK);
	for (int i = 0; i < 20; i++)
		assert_int_equal(w[i].r, STORAGE_OK);
	assert_int_equal(g.nitems, 20);
	assert_int_equal(g.version, 20);

	for (int i = 0; i < 8; i++)
		res_clear(&r[i]);
	res_clear(&g);
	storage_account_clear(&a);
	storage_account_clear(&b);
}

static void test_cancel(void **state)
{
	struct fixture *f = *state;
	struct storage_account a;
	make_account(&a, 7, true, true, NULL);
	struct res r1 = { 0 }, r2 = { 0 }, r3 = { 0 };
	struct storage_req *q1 = CALL(storage_account_create(f->st, "a.example", "alice", &a, done_cb, &r1));
	struct storage_req *q2 = CALL(storage_account_get(f->st, "a.example", "alice", account_cb, &r2));
	struct storage_req *q3 = CALL(storage_roster_get(f->st, "a.example", "alice", roster_cb, &r3));
	assert_non_null(q1);
	assert_non_null(q2);
	assert_non_null(q3);
	storage_cancel(q2);
	storage_cancel(q3);
	run(f);
	assert_int_equal(r1.calls, 1);
	assert_int_equal(r1.r, STORAGE_OK);
	assert_int_equal(r2.calls, 0);
	assert_int_equal(r3.calls, 0);
	/* A write that was cancelled may have happened; it just never answers. */
	struct res r4 = { 0 };
	struct storage_req *q4 = CALL(storage_account_remove(f->st, "a.example", "alice", done_cb, &r4));
	storage_cancel(q4);
	run(f);
	assert_int_equal(r4.calls, 0);
	storage_cancel(NULL);
	res_clear(&r2);
	storage_account_clear(&a);
}

static struct storage *closing_store;
static struct res late_res;

static void close_cb(enum storage_result res, void *ctx)
{
	note(ctx, res);
	/* A request made while the store closes: a temporary failure, still
	 * delivered before storage_close returns (the store is going away). */
	if (closing_store != NULL) {
		struct storage *st = closing_store;
		closing_store = NULL;
		assert_non_null(CALL(storage_account_count(st, "a.example", count_cb, &late_res)));
		assert_int_equal(late_res.calls, 0);
	}
}

static void test_close_finishes_pending(void **state)
{
	struct fixture *f = *state;
	struct res r[10];
	memset(r, 0, sizeof(r));
	memset(&late_res, 0, sizeof(late_res));
	for (int i = 0; i < 10; i++) {
		struct roster_item it;
		char jid[32];
		snprintf(jid, sizeof(jid), "c%02d@x.example", i);
		item_init(&it, jid, NULL, SUB_NONE, NULL);
		assert_non_null(CALL(storage_roster_set(f->st, "a.example", i % 2 ? "alice" : "bob", &it,
		                                        close_cb, &r[i])));
		roster_item_clear(&it);
	}
	/* storage_close clears the caller's pointer first: the callback uses a copy. */
	closing_store = f->st;
	storage_close(&f->st);
	assert_null(f->st);
	for (int i = 0; i < 10; i++) {
		assert_int_equal(r[i].calls, 1);
		assert_int_equal(r[i].r, STORAGE_OK);
	}
	assert_int_equal(late_res.calls, 1);
	assert_int_equal(late_res.r, STORAGE_TEMPFAIL);
	/* Reopen: the writes are there. */
	if (in_memory(f))
		return;
	char *err = NULL;
	assert_int_equal(open_store(f, &err), 0);
	struct res g = { 0 };
	assert_int_equal(roster_get(f, "a.example", "alice", &g), STORAGE_OK);
	assert_int_equal(g.nitems, 5);
	assert_int_equal(g.version, 5);
	res_clear(&g);
}

/* ---- tests: failures ----------------------------------------------------------------------- */

static void test_schema_version_refused(void **state)
{
	struct fixture *f = *state;
	if (f->be->set_schema_version == NULL)
		skip();
	storage_close(&f->st);
	char *err = NULL;
	f->be->set_schema_version(f, SQL_SCHEMA_VERSION - 1);
	assert_int_equal(open_store(f, &err), -1);
	assert_null(f->st);
	assert_non_null(err);
	char want[256];
	snprintf(want, sizeof(want), "has schema version %d, this parleyd needs %d: apply ",
	         SQL_SCHEMA_VERSION - 1, SQL_SCHEMA_VERSION);
	if (strstr(err, want) == NULL || strstr(err, "database ") == NULL)
		fail_msg("unexpected message: %s", err);
	if (f->be->embedded && strstr(err, f->path) == NULL)
		fail_msg("the message does not name the database: %s", err);
	free(err);
	err = NULL;

	f->be->set_schema_version(f, SQL_SCHEMA_VERSION + 1);
	assert_int_equal(open_store(f, &err), -1);
	snprintf(want, sizeof(want), "has schema version %d, this parleyd needs %d", SQL_SCHEMA_VERSION + 1,
	         SQL_SCHEMA_VERSION);
	if (strstr(err, want) == NULL)
		fail_msg("unexpected message: %s", err);
	free(err);

	f->be->set_schema_version(f, SQL_SCHEMA_VERSION);
	assert_int_equal(open_store(f, &err), 0);
}

static void test_new_store_without_schema_file(void **state)
{
	struct fixture *f = *state;
	if (!f->be->embedded)
		skip();
	char *old = getenv("PARLEY_SQL_DIR") != NULL ? strdup(getenv("PARLEY_SQL_DIR")) : NULL;
	setenv("PARLEY_SQL_DIR", "/nonexistent/parley-sql", 1);
	struct storage_config cfg = f->cfg;
	char path[200];
	snprintf(path, sizeof(path), "%s/other.db", f->dir);
	cfg.path = path;
	struct storage *st = NULL;
	char *err = NULL;
	assert_int_equal(storage_open(f->loop, &cfg, &st, &err), -1);
	if (old != NULL)
		setenv("PARLEY_SQL_DIR", old, 1);
	else
		unsetenv("PARLEY_SQL_DIR");
	free(old);
	assert_null(st);
	if (strstr(err, "/nonexistent/parley-sql/sqlite.sql") == NULL ||
	    strstr(err, "PARLEY_SQL_DIR") == NULL)
		fail_msg("unexpected message: %s", err);
	free(err);
	struct stat sb;
	assert_int_equal(stat(path, &sb), -1); /* nothing half-made left behind */

	/* An existing file that is not a Parley database is refused, not altered. */
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	fclose(fp);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "CREATE TABLE t (x INTEGER)", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(storage_open(f->loop, &cfg, &st, &err), -1);
	if (strstr(err, "no Parley schema") == NULL)
		fail_msg("unexpected message: %s", err);
	free(err);

	cfg.driver = "nosuchdb";
	assert_int_equal(storage_open(f->loop, &cfg, &st, &err), -1);
	if (strstr(err, "nosuchdb") == NULL)
		fail_msg("unexpected message: %s", err);
	free(err);
}

static void test_tempfail_busy_full_expired(void **state)
{
	struct fixture *f = *state;
	/* Not through ODBC: the drivers add round trips of their own (psqlODBC
	 * a savepoint around each statement of a transaction) that eat the
	 * margins below on a loaded machine.  The ODBC backends' busy
	 * path is covered by test_auth_tempfail. */
	if (f->be->lock == NULL || strcmp(f->cfg.driver, "odbc") == 0)
		skip();
	storage_close(&f->st);
	f->cfg.pool_size = 1;
	f->cfg.queue_max = 2;
	f->cfg.timeout = 1.0;
	char *err = NULL;
	assert_int_equal(open_store(f, &err), 0);
	/* The thread has its connection (a server login may take a while on a
	 * loaded machine) before the timing below starts. */
	struct res warm = { 0 };
	assert_int_equal(roster_get(f, "a.example", "alice", &warm), STORAGE_OK);
	res_clear(&warm);

	f->be->lock(f);
	struct roster_item it;
	item_init(&it, "romeo@montague.example", NULL, SUB_NONE, NULL);
	struct res busy1 = { 0 }, busy2 = { 0 }, expired = { 0 }, full = { 0 };
	/* One thread, a queue of two, the database locked from outside:
	 * 1: the thread waits for the lock (busy timeout = 1 s) and gives up;
	 * 2: queued at 0.4 s, taken at 1 s (before its deadline, 1.4 s), busy
	 *    in its turn until 2 s;
	 * 3: queued behind it, expires in the queue at 1.4 s;
	 * 4: finds the queue full.
	 * The margins are 0.4 s or more, for a loaded machine. */
	double t0 = ev_time();
	assert_non_null(CALL(storage_roster_set(f->st, "a.example", "alice", &it, done_cb, &busy1)));
	usleep(400000); /* the thread has taken job 1 */
	assert_non_null(CALL(storage_roster_set(f->st, "a.example", "alice", &it, done_cb, &busy2)));
	assert_non_null(CALL(storage_roster_set(f->st, "a.example", "alice", &it, done_cb, &expired)));
	assert_non_null(CALL(storage_roster_set(f->st, "a.example", "alice", &it, done_cb, &full)));
	assert_int_equal(full.calls, 0); /* even an immediate failure comes later */
	int order[4], len = 0;
	struct res *all[] = { &busy1, &busy2, &expired, &full };
	for (int i = 0; i < 4; i++) {
		all[i]->order = order;
		all[i]->order_len = &len;
		all[i]->tag = i;
	}
	run(f);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(all[i]->calls, 1);
		assert_int_equal(all[i]->r, STORAGE_TEMPFAIL);
	}
	/* Order of the answers: full at once, then busy1 (1 s), the expired
	 * one (1.4 s, while the thread is still stuck on busy2), busy2 (2 s). */
	assert_int_equal(len, 4);
	assert_int_equal(order[0], 3);
	assert_int_equal(order[1], 0);
	assert_int_equal(order[2], 2);
	assert_int_equal(order[3], 1);
	assert_true(ev_time() - t0 >= 1.85);

	/* Reads still work under a writer in WAL mode; writes again once free. */
	struct res g = { 0 };
	assert_int_equal(roster_get(f, "a.example", "alice", &g), STORAGE_OK);
	f->be->unlock(f);
	assert_int_equal(roster_set(f, "a.example", "alice", &it), STORAGE_OK);
	assert_int_equal(roster_get(f, "a.example", "alice", &g), STORAGE_OK);
	assert_int_equal(g.nitems, 1);
	roster_item_clear(&it);
	res_clear(&g);
}

/* ---- tests: auth (internal) over this store -------------------------------------------------- */

struct ares {
	int calls;
	enum auth_result r;
	bool has_cred;
	struct scram_credentials cred;
};

static void auth_done(enum auth_result res, void *ctx)
{
	struct ares *a = ctx;
	check_context();
	a->calls++;
	a->r = res;
}

static void auth_scram_done(enum auth_result res, const struct scram_credentials *cred, void *ctx)
{
	struct ares *a = ctx;
	check_context();
	a->calls++;
	a->r = res;
	scram_credentials_clear(&a->cred);
	a->has_cred = cred != NULL;
	if (cred != NULL)
		copy_creds(&a->cred, cred);
}

static struct auth *auth_for(struct fixture *f, const char *host)
{
	struct auth_config cfg = { 0 };
	char *methods[] = { "internal" };
	cfg.methods.items = methods;
	cfg.methods.count = 1;
	cfg.scram_iterations = 4096;
	struct auth *a = NULL;
	char *err = NULL;
	if (auth_new(f->loop, host, &cfg, f->st, &a, &err) < 0)
		fail_msg("auth_new: %s", err);
	return a;
}

#define AUTH_WAIT(f, r, expr)                             \
	do {                                              \
		int before_ = (r).calls;                  \
		assert_non_null(CALL(expr));              \
		assert_int_equal((r).calls, before_);     \
		run(f);                                   \
		assert_int_equal((r).calls, before_ + 1); \
	} while (0)

static enum auth_result check_pw(struct fixture *f, struct auth *a, const char *user, const char *pw)
{
	struct ares r = { 0 };
	AUTH_WAIT(f, r, auth_check_password(a, user, pw, auth_done, &r));
	return r.r;
}

/* The credentials verify the password the way a SCRAM client would. */
static void assert_scram_verifies(const struct scram_credentials *c, enum scram_hash h, const char *pw)
{
	unsigned char *salt;
	size_t salt_len;
	assert_int_equal(c->hash, h);
	assert_int_equal(c->iterations, 4096);
	assert_int_equal(base64_decode(c->salt_b64, strlen(c->salt_b64), &salt, &salt_len), 0);
	assert_true(salt_len >= 16);
	struct scram_credentials d = { 0 };
	assert_int_equal(scram_derive(h, pw, salt, salt_len, c->iterations, &d), 0);
	assert_memory_equal(d.stored_key, c->stored_key, scram_hash_len(h));
	assert_memory_equal(d.server_key, c->server_key, scram_hash_len(h));
	scram_credentials_clear(&d);
	free(salt);
}

static void test_auth_internal(void **state)
{
	struct fixture *f = *state;
	struct auth *a = auth_for(f, "a.example");
	struct auth *b = auth_for(f, "b.example");
	assert_true(auth_can_scram(a));
	assert_true(auth_can_plain(a));

	struct ares r = { 0 };
	AUTH_WAIT(f, r, auth_create_user(a, "alice", "s3cret", auth_done, &r));
	assert_int_equal(r.r, AUTH_OK);
	AUTH_WAIT(f, r, auth_create_user(a, "alice", "other", auth_done, &r));
	assert_int_equal(r.r, AUTH_EXISTS);

	assert_int_equal(check_pw(f, a, "alice", "s3cret"), AUTH_OK);
	assert_int_equal(check_pw(f, a, "alice", "wrong"), AUTH_BAD_PASSWORD);
	assert_int_equal(check_pw(f, a, "alice", ""), AUTH_BAD_PASSWORD);
	assert_int_equal(check_pw(f, a, "nobody", "s3cret"), AUTH_NO_USER);
	assert_int_equal(check_pw(f, b, "alice", "s3cret"), AUTH_NO_USER); /* other host */

	AUTH_WAIT(f, r, auth_user_exists(a, "alice", auth_done, &r));
	assert_int_equal(r.r, AUTH_OK);
	AUTH_WAIT(f, r, auth_user_exists(a, "nobody", auth_done, &r));
	assert_int_equal(r.r, AUTH_NO_USER);

	AUTH_WAIT(f, r, auth_get_scram(a, "alice", SCRAM_SHA256, auth_scram_done, &r));
	assert_int_equal(r.r, AUTH_OK);
	assert_true(r.has_cred);
	assert_scram_verifies(&r.cred, SCRAM_SHA256, "s3cret");
	AUTH_WAIT(f, r, auth_get_scram(a, "alice", SCRAM_SHA1, auth_scram_done, &r));
	assert_int_equal(r.r, AUTH_OK);
	assert_scram_verifies(&r.cred, SCRAM_SHA1, "s3cret");
	AUTH_WAIT(f, r, auth_get_scram(a, "nobody", SCRAM_SHA1, auth_scram_done, &r));
	assert_int_equal(r.r, AUTH_NO_USER);
	assert_false(r.has_cred);

	/* The password is not stored in clear. */
	struct res g = { 0 };
	assert_int_equal(acc_get(f, "a.example", "alice", &g), STORAGE_OK);
	assert_null(g.acc.plain);
	res_clear(&g);

	AUTH_WAIT(f, r, auth_set_password(a, "alice", "n3w", auth_done, &r));
	assert_int_equal(r.r, AUTH_OK);
	assert_int_equal(check_pw(f, a, "alice", "s3cret"), AUTH_BAD_PASSWORD);
	assert_int_equal(check_pw(f, a, "alice", "n3w"), AUTH_OK);
	AUTH_WAIT(f, r, auth_get_scram(a, "alice", SCRAM_SHA256, auth_scram_done, &r));
	assert_scram_verifies(&r.cred, SCRAM_SHA256, "n3w");
	AUTH_WAIT(f, r, auth_set_password(a, "nobody", "x", auth_done, &r));
	assert_int_equal(r.r, AUTH_NO_USER);

	AUTH_WAIT(f, r, auth_remove_user(a, "alice", auth_done, &r));
	assert_int_equal(r.r, AUTH_OK);
	assert_int_equal(check_pw(f, a, "alice", "n3w"), AUTH_NO_USER);
	AUTH_WAIT(f, r, auth_remove_user(a, "alice", auth_done, &r));
	assert_int_equal(r.r, AUTH_NO_USER);

	scram_credentials_clear(&r.cred);
	auth_free(&a);
	auth_free(&b);
	assert_null(a);
}

/* The account's credentials for h verify pw (pw NULL: it has none). */
static void assert_scram_of(struct fixture *f, struct auth *a, const char *user, enum scram_hash h,
                            const char *pw)
{
	struct ares r = { 0 };
	AUTH_WAIT(f, r, auth_get_scram(a, user, h, auth_scram_done, &r));
	assert_int_equal(r.r, pw != NULL ? AUTH_OK : AUTH_NOT_SUPPORTED);
	if (pw != NULL)
		assert_scram_verifies(&r.cred, h, pw);
	scram_credentials_clear(&r.cred);
}

static void test_auth_stored_variants(void **state)
{
	struct fixture *f = *state;
	struct auth *a = auth_for(f, "a.example");
	/* SHA-1 keys only (an import from ejabberd or Prosody): the other
	 * hashes are AUTH_NOT_SUPPORTED (not AUTH_NO_USER), PLAIN checks
	 * against SHA-1. */
	struct scram_credentials c1 = { 0 };
	assert_int_equal(scram_derive(SCRAM_SHA1, "pencil", NULL, 0, 4096, &c1), 0);
	struct storage_account acc = { 0 };
	acc.has_sha1 = true;
	acc.sha1 = c1;
	assert_int_equal(acc_create(f, "a.example", "old", &acc), STORAGE_OK);
	struct ares r = { 0 };
	AUTH_WAIT(f, r, auth_get_scram(a, "old", SCRAM_SHA256, auth_scram_done, &r));
	assert_int_equal(r.r, AUTH_NOT_SUPPORTED);
	assert_false(r.has_cred);
	assert_scram_of(f, a, "old", SCRAM_SHA512, NULL);
	assert_scram_of(f, a, "old", SCRAM_SHA1, "pencil");
	/* A wrong password adds nothing. */
	assert_int_equal(check_pw(f, a, "old", "pen"), AUTH_BAD_PASSWORD);
	assert_scram_of(f, a, "old", SCRAM_SHA256, NULL);
	/* The right one adds the keys the account lacked, from that password;
	 * the SHA-1 keys stay as they were. */
	assert_int_equal(check_pw(f, a, "old", "pencil"), AUTH_OK);
	assert_scram_of(f, a, "old", SCRAM_SHA256, "pencil");
	assert_scram_of(f, a, "old", SCRAM_SHA512, "pencil");
	AUTH_WAIT(f, r, auth_get_scram(a, "old", SCRAM_SHA1, auth_scram_done, &r));
	assert_int_equal(r.r, AUTH_OK);
	assert_creds_equal(&r.cred, &c1, 20);
	assert_int_equal(check_pw(f, a, "old", "pencil"), AUTH_OK);
	assert_int_equal(check_pw(f, a, "old", "pen"), AUTH_BAD_PASSWORD);

	/* A clear password kept by the operator: PLAIN compares it. */
	struct storage_account p = { 0 };
	p.plain = "hunter2";
	assert_int_equal(acc_create(f, "a.example", "plain", &p), STORAGE_OK);
	assert_int_equal(check_pw(f, a, "plain", "hunter3"), AUTH_BAD_PASSWORD);
	assert_int_equal(check_pw(f, a, "plain", "hunter"), AUTH_BAD_PASSWORD);
	AUTH_WAIT(f, r, auth_get_scram(a, "plain", SCRAM_SHA256, auth_scram_done, &r));
	assert_int_equal(r.r, AUTH_NOT_SUPPORTED);
	/* A successful check adds SCRAM keys for every hash. */
	assert_int_equal(check_pw(f, a, "plain", "hunter2"), AUTH_OK);
	assert_scram_of(f, a, "plain", SCRAM_SHA1, "hunter2");
	assert_scram_of(f, a, "plain", SCRAM_SHA256, "hunter2");
	assert_int_equal(check_pw(f, a, "plain", "hunter2"), AUTH_OK);
	/* Setting a password replaces the clear one with SCRAM keys. */
	AUTH_WAIT(f, r, auth_set_password(a, "plain", "better", auth_done, &r));
	assert_int_equal(r.r, AUTH_OK);
	assert_int_equal(check_pw(f, a, "plain", "hunter2"), AUTH_BAD_PASSWORD);
	assert_int_equal(check_pw(f, a, "plain", "better"), AUTH_OK);
	struct res g = { 0 };
	assert_int_equal(acc_get(f, "a.example", "plain", &g), STORAGE_OK);
	assert_null(g.acc.plain);
	res_clear(&g);

	scram_credentials_clear(&c1);
	scram_credentials_clear(&r.cred);
	auth_free(&a);
}

static struct ares freed_res, freed_res2;
static struct auth *freeing_auth;

static void freed_cb(enum auth_result res, void *ctx)
{
	auth_done(res, ctx);
	/* Asking a host's auth while it is being freed: answered (temporary
	 * failure), and not from inside the call. */
	if (freeing_auth != NULL) {
		struct auth *a = freeing_auth;
		freeing_auth = NULL;
		assert_non_null(CALL(auth_user_exists(a, "alice", auth_done, &freed_res2)));
		assert_int_equal(freed_res2.calls, 0);
	}
}

static void test_auth_cancel_and_free(void **state)
{
	struct fixture *f = *state;
	struct auth *a = auth_for(f, "a.example");
	struct ares r = { 0 };
	AUTH_WAIT(f, r, auth_create_user(a, "alice", "pw", auth_done, &r));
	assert_int_equal(r.r, AUTH_OK);

	/* Cancelled at each stage: in storage, in the compute queue. */
	struct ares c1 = { 0 }, c2 = { 0 }, c3 = { 0 };
	struct auth_req *q1 = CALL(auth_check_password(a, "alice", "pw", auth_done, &c1));
	struct auth_req *q2 = CALL(auth_create_user(a, "bob", "pw", auth_done, &c2));
	struct auth_req *q3 = CALL(auth_get_scram(a, "alice", SCRAM_SHA1, auth_scram_done, &c3));
	auth_cancel(q1);
	auth_cancel(q2);
	auth_cancel(q3);
	run(f);
	assert_int_equal(c1.calls, 0);
	assert_int_equal(c2.calls, 0);
	assert_int_equal(c3.calls, 0);
	AUTH_WAIT(f, r, auth_user_exists(a, "bob", auth_done, &r));
	assert_int_equal(r.r, AUTH_NO_USER); /* the create never reached storage */

	/* Let a check reach the compute stage, then cancel. */
	struct ares c4 = { 0 };
	struct auth_req *q4 = CALL(auth_check_password(a, "alice", "pw", auth_done, &c4));
	for (int i = 0; i < 200 && worker_group_pending(auth_compute_group(f->loop)) == 0; i++)
		ev_run(f->loop, EVRUN_ONCE | EVRUN_NOWAIT), usleep(1000);
	auth_cancel(q4);
	run(f);
	assert_int_equal(c4.calls, 0);

	/* auth_free answers what is pending (temporary failure) before returning. */
	memset(&freed_res, 0, sizeof(freed_res));
	memset(&freed_res2, 0, sizeof(freed_res2));
	assert_non_null(CALL(auth_check_password(a, "alice", "pw", freed_cb, &freed_res)));
	freeing_auth = a;
	auth_free(&a);
	assert_int_equal(freed_res.calls, 1);
	assert_int_equal(freed_res.r, AUTH_TEMPFAIL);
	assert_int_equal(freed_res2.calls, 1);
	assert_int_equal(freed_res2.r, AUTH_TEMPFAIL);
	run(f);
	assert_int_equal(freed_res.calls, 1);
	assert_int_equal(freed_res2.calls, 1);
	scram_credentials_clear(&c3.cred);
}

static void test_auth_tempfail(void **state)
{
	struct fixture *f = *state;
	if (f->be->lock == NULL)
		skip();
	storage_close(&f->st);
	f->cfg.timeout = 0.2;
	char *err = NULL;
	assert_int_equal(open_store(f, &err), 0);
	struct auth *a = auth_for(f, "a.example");
	f->be->lock(f);
	struct ares r = { 0 };
	/* The store is busy: a temporary failure, not "exists" or "no user". */
	AUTH_WAIT(f, r, auth_create_user(a, "alice", "pw", auth_done, &r));
	assert_int_equal(r.r, AUTH_TEMPFAIL);
	AUTH_WAIT(f, r, auth_remove_user(a, "alice", auth_done, &r));
	assert_int_equal(r.r, AUTH_TEMPFAIL);
	f->be->unlock(f);
	AUTH_WAIT(f, r, auth_create_user(a, "alice", "pw", auth_done, &r));
	assert_int_equal(r.r, AUTH_OK);
	auth_free(&a);
}

static void test_auth_bad_config(void **state)
{
	struct fixture *f = *state;
	struct auth_config cfg = { 0 };
	char *methods[] = { "internal", "carrier-pigeon" };
	cfg.methods.items = methods;
	cfg.methods.count = 2;
	struct auth *a = NULL;
	char *err = NULL;
	assert_int_equal(auth_new(f->loop, "a.example", &cfg, f->st, &a, &err), -1);
	assert_null(a);
	if (strstr(err, "carrier-pigeon") == NULL || strstr(err, "a.example") == NULL)
		fail_msg("unexpected message: %s", err);
	free(err);
	cfg.methods.count = 1;
	assert_int_equal(auth_new(f->loop, "a.example", &cfg, NULL, &a, &err), -1);
	free(err);
	assert_string_equal(auth_result_str(AUTH_TEMPFAIL), "temporary failure");
	assert_string_equal(storage_result_str(STORAGE_NOT_FOUND), "not found");
	assert_string_equal(roster_subscription_str(SUB_BOTH), "both");
}

/* ---- tests: PostgreSQL connections ---------------------------------------------------------- */

#ifdef HAVE_BACKEND_PGSQL
/* Run SQL as the cluster's superuser (PARLEY_TEST_PGSQL_SUPER_DSN). */
static void pg_super_exec(const char *sql)
{
	const char *dsn = getenv("PARLEY_TEST_PGSQL_SUPER_DSN");
	assert_non_null(dsn);
	PGconn *c = PQconnectdb(dsn);
	assert_int_equal(PQstatus(c), CONNECTION_OK);
	PGresult *res = PQexec(c, sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK && PQresultStatus(res) != PGRES_COMMAND_OK)
		fail_msg("%s: %s", sql, PQerrorMessage(c));
	PQclear(res);
	PQfinish(c);
}
#endif

/* The server closes every connection of parleyd (a restart, a DBA's
 * pg_terminate_backend): the next requests, on every worker, reconnect and
 * get real answers, not temporary failures. */
static void test_pgsql_reconnect(void **state)
{
	struct fixture *f = *state;
#ifdef HAVE_BACKEND_PGSQL
	/* (libpq's connections only: they carry application_name parleyd) */
	if (strcmp(f->be->dialect, "pgsql") != 0 || strcmp(f->cfg.driver, "pgsql") != 0 ||
	    getenv("PARLEY_TEST_PGSQL_SUPER_DSN") == NULL)
		skip();
	struct storage_account a;
	make_account(&a, 21, true, true, NULL);
	assert_int_equal(acc_create(f, "a.example", "alice", &a), STORAGE_OK);
	struct res r = { 0 };
	char user[16];
	for (int i = 0; i < 8; i++) { /* every worker has a connection */
		snprintf(user, sizeof(user), "u%d", i);
		assert_int_equal(acc_get(f, "a.example", user, &r), STORAGE_NOT_FOUND);
	}
	pg_super_exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
	              "WHERE usename = 'parley' AND application_name = 'parleyd'");
	for (int i = 0; i < 8; i++) {
		snprintf(user, sizeof(user), "u%d", i);
		assert_int_equal(acc_get(f, "a.example", user, &r), STORAGE_NOT_FOUND);
	}
	assert_int_equal(acc_get(f, "a.example", "alice", &r), STORAGE_OK);
	assert_account_equal(&r.acc, &a);
	res_clear(&r);
	storage_account_clear(&a);
#else
	(void)f;
	skip();
#endif
}

/* The database cannot be reached at start: the store opens anyway
 * (degraded), requests fail at once with a temporary error, and the
 * description never shows the password. */
static void test_pgsql_start_degraded(void **state)
{
	struct fixture *f = *state;
	if (strcmp(f->be->dialect, "pgsql") != 0 || strcmp(f->cfg.driver, "pgsql") != 0)
		skip();
	storage_close(&f->st);
	/* Port 1 on loopback: nothing listens, connections are refused. */
	f->cfg.dsn = "host=127.0.0.1 port=1 dbname=parley user=parley password=hunter2-secret";
	char *err = NULL;
	assert_int_equal(open_store(f, &err), 0);
	const char *desc = storage_describe(f->st);
	if (strstr(desc, "hunter2") != NULL || strstr(desc, "port=1") == NULL)
		fail_msg("unexpected description: %s", desc);
	struct res r = { 0 };
	double t0 = ev_time();
	for (int i = 0; i < 5; i++)
		assert_int_equal(acc_get(f, "a.example", "alice", &r), STORAGE_TEMPFAIL);
	assert_true(ev_time() - t0 < 2.0);
	storage_close(&f->st);
}

/* The password read from password_file; a wrong one is a temporary
 * failure of every request, never "no such user". */
static void test_pgsql_password_file(void **state)
{
	struct fixture *f = *state;
	if (strcmp(f->be->dialect, "pgsql") != 0 || f->cfg.password == NULL)
		skip();
	storage_close(&f->st);
	char path[] = "/tmp/parley-test-pw-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	FILE *fp = fdopen(fd, "w");
	fprintf(fp, "%s\n", f->cfg.password);
	fclose(fp);
	f->cfg.password = NULL;
	f->cfg.password_file = path;
	char *err = NULL;
	assert_int_equal(open_store(f, &err), 0);
	struct res r = { 0 };
	assert_int_equal(acc_get(f, "a.example", "alice", &r), STORAGE_NOT_FOUND);
	storage_close(&f->st);
	fp = fopen(path, "w");
	fprintf(fp, "not-the-password\n");
	fclose(fp);
	assert_int_equal(open_store(f, &err), 0); /* degraded */
	assert_int_equal(acc_get(f, "a.example", "alice", &r), STORAGE_TEMPFAIL);
	storage_close(&f->st);
	unlink(path);
	f->cfg.password_file = NULL;
}

/* The server cuts every connection of parleyd (a restart, a fail-over, a
 * DBA's KILL): the next requests, on every worker, reconnect and get real
 * answers; what they write is kept. */
static void test_mysql_reconnect(void **state)
{
	struct fixture *f = *state;
#ifdef HAVE_BACKEND_MYSQL
	if (strcmp(f->be->dialect, "mysql") != 0)
		skip();
	struct storage_account a;
	make_account(&a, 31, true, true, NULL);
	assert_int_equal(acc_create(f, "a.example", "alice", &a), STORAGE_OK);
	assert_int_equal(acc_create(f, "a.example", "bob", &a), STORAGE_OK);
	for (int round = 0; round < 2; round++) {
		/* KILL every connection of parleyd's user. */
		MYSQL *m = my_admin(NULL);
		assert_int_equal(mysql_query(m, "SELECT id FROM information_schema.processlist "
		                                "WHERE user = 'parley'"),
		                 0);
		MYSQL_RES *res = mysql_store_result(m);
		assert_non_null(res);
		MYSQL_ROW row;
		unsigned killed = 0;
		while ((row = mysql_fetch_row(res)) != NULL) {
			char sql[64];
			snprintf(sql, sizeof(sql), "KILL CONNECTION %s", row[0]);
			if (mysql_query(m, sql) == 0)
				killed++;
		}
		mysql_free_result(res);
		mysql_close(m);
		assert_true(killed >= 1);
		/* Reads and writes, for two users (two workers). */
		struct res r = { 0 };
		assert_int_equal(acc_get(f, "a.example", "alice", &r), STORAGE_OK);
		assert_account_equal(&r.acc, &a);
		char msg[64];
		snprintf(msg, sizeof(msg), "<message><body>%d</body></message>", round);
		assert_int_equal(off_store(f, "a.example", "bob", msg, 0), STORAGE_OK);
		assert_int_equal(off_count(f, "a.example", "bob"), (uint64_t)round + 1);
		res_clear(&r);
	}
	storage_account_clear(&a);
#else
	(void)f;
	skip();
#endif
}

/* Values the schema cannot hold are a permanent error, never cut short
 * nor a temporary failure (sql_mode STRICT_ALL_TABLES); the password from
 * password_file, and a wrong one is a temporary failure, not "no user". */
static void test_mysql_strict_and_password(void **state)
{
	struct fixture *f = *state;
	if (strcmp(f->be->dialect, "mysql") != 0)
		skip();
	char jid[512];
	memset(jid, 'x', sizeof(jid) - 1);
	jid[sizeof(jid) - 1] = '\0';
	memcpy(jid + sizeof(jid) - 11, "@b.example", 10);
	struct roster_item it;
	item_init(&it, jid, NULL, SUB_NONE, NULL);
	assert_int_equal(roster_set(f, "a.example", "alice", &it), STORAGE_ERROR);
	roster_item_clear(&it);
	struct res r = { 0 };
	assert_int_equal(roster_get(f, "a.example", "alice", &r), STORAGE_OK);
	assert_int_equal(r.nitems, 0);
	res_clear(&r);

	storage_close(&f->st);
	char path[] = "/tmp/parley-test-pw-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	FILE *fp = fdopen(fd, "w");
	fprintf(fp, "not-the-password\n");
	fclose(fp);
	char *good = f->cfg.password_file;
	f->cfg.password_file = path;
	char *err = NULL;
	assert_int_equal(open_store(f, &err), 0); /* degraded */
	assert_int_equal(acc_get(f, "a.example", "alice", &r), STORAGE_TEMPFAIL);
	storage_close(&f->st);
	unlink(path);
	f->cfg.password_file = good;
	assert_int_equal(open_store(f, &err), 0);
	assert_int_equal(acc_get(f, "a.example", "alice", &r), STORAGE_NOT_FOUND);
}

/* ---- main -------------------------------------------------------------------------------- */

struct test_def {
	const char *name;
	CMUnitTestFunction fn;
};

#define T(f)          \
	{             \
#f, f \
	}
static const struct test_def tests[] = {
	T(test_accounts),
	T(test_roster),
	T(test_roster_request_stanza),
	T(test_roster_in_roster),
	T(test_remove_user_removes_roster),
	T(test_offline),
	T(test_offline_page),
	T(test_offline_token),
	T(test_offline_order_and_cancel),
	T(test_offline_batch),
	T(test_offline_lengths),
	T(test_vcard),
	T(test_missing_area),
	T(test_held_jobs),
	T(test_private),
	T(test_private_all_or_nothing),
	T(test_last),
	T(test_remove_user_removes_user_data),
	T(test_schema_migration),
	T(test_schema_migration_2_to_3),
	T(test_schema_migration_3_to_4),
	T(test_blocklist),
	T(test_blocklist_all_or_nothing),
	T(test_remove_user_removes_blocklist),
	T(test_schema_migration_4_to_5),
	T(test_privacy),
	T(test_privacy_all_or_nothing),
	T(test_remove_user_removes_privacy),
	T(test_schema_migration_5_to_6),
	T(test_shared_roster_groups),
	T(test_remove_user_removes_memberships),
	T(test_schema_migration_6_to_7),
	T(test_vcard_search),
	T(test_vcard_reindex),
	T(test_muc_rooms),
	T(test_muc_nicks),
	T(test_muc_order),
	T(test_muc_all_or_nothing),
	T(test_schema_migration_7_to_8),
	T(test_pubsub_nodes),
	T(test_pubsub_items),
	T(test_pubsub_big_payload),
	T(test_pubsub_order),
	T(test_pubsub_all_or_nothing),
	T(test_schema_migration_8_to_9),
	T(test_mam_store_query),
	T(test_mam_text),
	T(test_mam_text_common),
	T(test_mam_expire),
	T(test_mam_prefs),
	T(test_remove_user_removes_archive),
	T(test_mam_batch),
	T(test_mam_batch_rows),
	T(test_schema_migration_9_to_10),
	T(test_schema_migration_10_to_11),
	T(test_schema_migration_11_to_12),
	T(test_schema_migration_12_to_13),
	T(test_schema_migration_13_to_14),
	T(test_schema_migration_14_to_15),
	T(test_fast_tokens),
	T(test_fast_token_list_login),
	T(test_scram_cache),
	T(test_order_per_user),
	T(test_cancel),
	T(test_close_finishes_pending),
	T(test_schema_version_refused),
	T(test_new_store_without_schema_file),
	T(test_tempfail_busy_full_expired),
	T(test_sqlite_writers_take_turns),
	T(test_sql_statement_cache),
	T(test_auth_internal),
	T(test_auth_stored_variants),
	T(test_auth_cancel_and_free),
	T(test_auth_tempfail),
	T(test_auth_bad_config),
	T(test_pgsql_reconnect),
	T(test_pgsql_start_degraded),
	T(test_pgsql_password_file),
	T(test_mysql_reconnect),
	T(test_mysql_strict_and_password),
};

int main(void)
{
	/* make check exports PARLEY_SQL_DIR; by hand, fall back to the source tree. */
	if (getenv("PARLEY_SQL_DIR") == NULL && getenv("top_srcdir") != NULL) {
		char dir[1024];
		snprintf(dir, sizeof(dir), "%s/sql", getenv("top_srcdir"));
		setenv("PARLEY_SQL_DIR", dir, 1);
	}
	/* Temporary failures are logged as warnings; the tests cause many.
	 * PARLEY_TEST_LOG=debug shows them. */
	int lvl = getenv("PARLEY_TEST_LOG") != NULL ? log_level_parse(getenv("PARLEY_TEST_LOG")) : -1;
	log_set_level(lvl >= 0 ? (enum log_level)lvl : LOG_LEVEL_ERROR);
	size_t n = ARRAY_SIZE(tests) * ARRAY_SIZE(backends);
	struct CMUnitTest *all = calloc(n, sizeof(*all));
	size_t k = 0;
	for (size_t b = 0; b < ARRAY_SIZE(backends); b++) {
		if (!backend_selected(&backends[b]))
			continue;
		for (size_t i = 0; i < ARRAY_SIZE(tests); i++) {
			char *name = xasprintf("%s [%s]", tests[i].name, backends[b].name);
			all[k].name = name;
			all[k].test_func = tests[i].fn;
			all[k].setup_func = setup;
			all[k].teardown_func = teardown;
			all[k].initial_state = (void *)&backends[b];
			k++;
		}
	}
	if (k == 0) {
		fprintf(stderr,
		        "test-storage: no backend selected by PARLEY_TEST_BACKENDS=%s (built: "
		        "sqlite%s%s)\n",
		        getenv("PARLEY_TEST_BACKENDS"),
#ifdef HAVE_BACKEND_PGSQL
		        ", pgsql",
#else
		        "",
#endif
#ifdef HAVE_BACKEND_MYSQL
		        ", mysql"
#else
		        ""
#endif
		);
		free(all);
		return 77;
	}
	n = k;
	int rc = _cmocka_run_group_tests("storage", all, n, NULL, NULL);
	for (size_t i = 0; i < n; i++)
		free((char *)all[i].name);
	free(all);
	return rc;
}
