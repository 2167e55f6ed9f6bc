/*
 * The ODBC driver of sql.h, over unixODBC: any data source an ODBC driver
 * reaches, as long as it speaks one of the SQL dialects Parley has a
 * schema for: PostgreSQL (sql/pgsql.sql), MySQL/MariaDB (sql/mysql.sql) or
 * Microsoft SQL Server (sql/mssql.sql).
 *
 * Threads: each connection (with its own environment handle) belongs to
 * one worker thread; sql-store.c also uses one on the loop thread at
 * start-up, before the loop runs.  unixODBC and the drivers are used with
 * one thread per connection only.
 *
 * The connection string (storage.dsn) goes to SQLDriverConnect as it is
 * ("DSN=parley;UID=parley" or "Driver={MariaDB Unicode};Server=db;..."),
 * with ";PWD={...}" added when storage.password_file or storage.password
 * gives the password, so it never has to be written in the configuration
 * or odbc.ini.  The dialect is storage.dialect, else what
 * SQLGetInfo(SQL_DBMS_NAME) says; it decides the schema file, the upsert
 * form (pgsql: ON CONFLICT, mysql: ON DUPLICATE KEY, mssql: UPDATE, then
 * INSERT when no row changed) and the session set-up:
 * - pgsql: statement_timeout = the storage timeout;
 * - mysql: the same as the mysql driver (sql_mode STRICT_ALL_TABLES, the
 *   statement time limit, innodb_lock_wait_timeout, READ COMMITTED), and
 *   OPTION=2 (the "found rows" flag of the MySQL and MariaDB ODBC
 *   drivers: an UPDATE reports the rows it matched) added to a connection
 *   string that has no OPTION of its own;
 * - mssql: LOCK_TIMEOUT = the storage timeout.
 * Every statement of the mysql and mssql dialects also gets
 * SQL_ATTR_QUERY_TIMEOUT (whole seconds, the storage timeout rounded up,
 * plus one) as the driver's own backstop (not pgsql: psqlODBC implements it
 * with its own statement_timeout, which would replace the exact one).
 * mysql: the data source must use the utf8mb4 character set (CHARSET=utf8mb4
 * in the connection string or odbc.ini); the connection is refused
 * otherwise, rather than losing characters.
 *
 * Errors are classed by SQLSTATE: 08xxx (connection) temporary and the
 * connection broken; 40001 / 40P01 (serialization failure, deadlock),
 * HYT00 / HYT01 (timeouts), 57014 (cancelled by statement_timeout), 55P03,
 * HY008 temporary; 23xxx constraint when it is a unique key (23505, or
 * 23000 with MySQL's 1062 or SQL Server's 2627 / 2601), else permanent;
 * after a general error (HY000; not for the mysql dialect), a connection
 * the driver says is dead (SQL_ATTR_CONNECTION_DEAD) is broken too.
 * Prepared statements are cached per connection by their SQL text
 * (sql-stmtcache.h); every column is read as text.
 */
#include "storage/sql.h"
#include "storage/sql-stmtcache.h"
#include "lib/log.h"

#include <sql.h>
#include <sqlext.h>
#include <ctype.h>
#include <math.h>
#include <pthread.h>

struct odbc_param {
	bool is_null;
	bool is_int;
	char *text; /* malloc'd copy */
	SQLLEN len; /* bytes of text, or SQL_NULL_DATA */
	SQLBIGINT num;
};

struct odbc_col {
	char *buf;
	size_t cap;
	size_t len;
	bool is_null;
};

struct odbc_stmt {
	struct sql_stmtcache_entry cached; /* in conn->stmts */
	struct odbc_conn *conn;
	SQLHSTMT h;
	unsigned nparams;
	struct odbc_param *params;
	SQLSMALLINT ncols;
	struct odbc_col *cols;
	bool executed;
	bool open_cursor;
	uint64_t changes;
};

struct odbc_conn {
	SQLHENV env;
	SQLHDBC dbc;
	bool connected;
	const struct sql_dialect *dialect;
	unsigned query_timeout;     /* seconds, SQL_ATTR_QUERY_TIMEOUT */
	struct sql_stmtcache stmts; /* the statement cache */
	bool in_tx;
	bool broken;
	bool failed; /* the last call failed: last_* hold why */
	char last_state[6];
	SQLINTEGER last_native;
	char *last_msg;
};

#define CONN(c) ((struct odbc_conn *)(void *)(c))
#define STMT(s) ((struct odbc_stmt *)(void *)(s))

/* ---- dialects ------------------------------------------------------------------ */

static const char *const pgsql_migrations[] = {
	"migrations/pgsql/002-offline.sql",       "migrations/pgsql/003-user-data.sql",
	"migrations/pgsql/004-blocklist.sql",     "migrations/pgsql/005-privacy.sql",
	"migrations/pgsql/006-shared-roster.sql", "migrations/pgsql/007-vcard-search.sql",
	"migrations/pgsql/008-muc.sql",           "migrations/pgsql/009-pubsub.sql",
	"migrations/pgsql/010-mam.sql",           "migrations/pgsql/011-sha512-fast.sql",
	"migrations/pgsql/012-fast-seed.sql",     "migrations/pgsql/013-scram-cache.sql",
	"migrations/pgsql/014-offline-token.sql", "migrations/pgsql/015-subscribe-stanza.sql",
};
static const char *const mysql_migrations[] = {
	"migrations/mysql/002-offline.sql",       "migrations/mysql/003-user-data.sql",
	"migrations/mysql/004-blocklist.sql",     "migrations/mysql/005-privacy.sql",
	"migrations/mysql/006-shared-roster.sql", "migrations/mysql/007-vcard-search.sql",
	"migrations/mysql/008-muc.sql",           "migrations/mysql/009-pubsub.sql",
	"migrations/mysql/010-mam.sql",           "migrations/mysql/011-sha512-fast.sql",
	"migrations/mysql/012-fast-seed.sql",     "migrations/mysql/013-scram-cache.sql",
	"migrations/mysql/014-offline-token.sql", "migrations/mysql/015-subscribe-stanza.sql",
};
static const char *const mssql_migrations[] = {
	"migrations/mssql/002-offline.sql",       "migrations/mssql/003-user-data.sql",
	"migrations/mssql/004-blocklist.sql",     "migrations/mssql/005-privacy.sql",
	"migrations/mssql/006-shared-roster.sql", "migrations/mssql/007-vcard-search.sql",
	"migrations/mssql/008-muc.sql",           "migrations/mssql/009-pubsub.sql",
	"migrations/mssql/010-mam.sql",           "migrations/mssql/011-sha512-fast.sql",
	"migrations/mssql/012-fast-seed.sql",     "migrations/mssql/013-scram-cache.sql",
	"migrations/mssql/014-offline-token.sql", "migrations/mssql/015-subscribe-stanza.sql",
};
_Static_assert(ARRAY_SIZE(pgsql_migrations) == SQL_SCHEMA_VERSION - 1 &&
                       ARRAY_SIZE(mysql_migrations) == SQL_SCHEMA_VERSION - 1 &&
                       ARRAY_SIZE(mssql_migrations) == SQL_SCHEMA_VERSION - 1,
               "one migration script per schema version after the first");

static const struct sql_dialect odbc_pgsql = {
	.name = "pgsql",
	.schema_file = "pgsql.sql",
	.upsert = SQL_UPSERT_ON_CONFLICT,
	.migrations = pgsql_migrations,
};
static const struct sql_dialect odbc_mysql = {
	.name = "mysql",
	.schema_file = "mysql.sql",
	.upsert = SQL_UPSERT_ON_DUPLICATE_KEY,
	.migrations = mysql_migrations,
};
static const struct sql_dialect odbc_mssql = {
	.name = "mssql",
	.schema_file = "mssql.sql",
	.upsert = SQL_UPSERT_NONE,
	.migrations = mssql_migrations,
};
/* Before a connection said which: the portable upsert, valid everywhere. */
static const struct sql_dialect odbc_unknown = {
	.name = "odbc",
	.schema_file = "pgsql.sql",
	.upsert = SQL_UPSERT_NONE,
	.migrations = NULL,
};

static const struct sql_dialect *dialect_named(const char *name)
{
	if (name == NULL)
		return NULL;
	if (strcmp(name, "pgsql") == 0)
		return &odbc_pgsql;
	if (strcmp(name, "mysql") == 0)
		return &odbc_mysql;
	if (strcmp(name, "mssql") == 0)
		return &odbc_mssql;
	return NULL;
}

/* The dialect of a DBMS by the name its ODBC driver gives. */
static const struct sql_dialect *dialect_of_dbms(const char *dbms)
{
	char low[128];
	size_t i;
	for (i = 0; dbms[i] != '\0' && i + 1 < sizeof(low); i++)
		low[i] = (char)tolower((unsigned char)dbms[i]);
	low[i] = '\0';
	if (strstr(low, "postgres") != NULL)
		return &odbc_pgsql;
	if (strstr(low, "mysql") != NULL || strstr(low, "mariadb") != NULL)
		return &odbc_mysql;
	if (strstr(low, "sql server") != NULL)
		return &odbc_mssql;
	return NULL;
}

/* ---- errors ------------------------------------------------------------------------ */

/* Record the first diagnostic record of handle h. */
static void set_error(struct odbc_conn *c, SQLSMALLINT type, SQLHANDLE h, const char *what)
{
	SQLCHAR state[6] = "HY000", msg[1024];
	SQLINTEGER native = 0;
	SQLSMALLINT len = 0;
	msg[0] = '\0';
	SQLRETURN rc = h != SQL_NULL_HANDLE
	                       ? SQLGetDiagRec(type, h, 1, state, &native, msg, sizeof(msg), &len)
	                       : SQL_NO_DATA;
	if (!SQL_SUCCEEDED(rc)) {
		memcpy(state, "HY000", 6);
		snprintf((char *)msg, sizeof(msg), "%s failed (no diagnostic)", what);
	}
	c->failed = true;
	memcpy(c->last_state, state, 5);
	c->last_state[5] = '\0';
	c->last_native = native;
	free(c->last_msg);
	/* psqlODBC's messages hold libpq's line ends and tabs, and its own
	 * ";\n" before a message it adds. */
	c->last_msg = xasprintf("%s [SQLSTATE %s, %ld]", sql_message_one_line((char *)msg), c->last_state,
	                        (long)native);
	if (strncmp(c->last_state, "08", 2) == 0 || strcmp(c->last_state, "57P01") == 0 ||
	    strcmp(c->last_state, "57P02") == 0 || strcmp(c->last_state, "57P03") == 0 ||
	    (c->dialect == &odbc_mysql &&
	     (native == 2006 || native == 2013 || native == 1927 || native == 1053 || native == 4031 ||
	      native == 1615))) /* 1615: re-prepare; a new connection prepares afresh */
		c->broken = true;
	/* A driver may report a lost connection as a general error (psqlODBC:
	 * HY000 "internal SAVEPOINT failed" for a statement in a transaction
	 * when the server went away): ask the driver whether it is dead (a
	 * driver may ask the server to answer, so only for HY000; not for
	 * MySQL, whose native codes above tell, and whose drivers report
	 * most server errors as HY000 and answer with a ping). */
	SQLUINTEGER dead = SQL_CD_FALSE;
	if (!c->broken && c->connected && c->dialect != &odbc_mysql && strcmp(c->last_state, "HY000") == 0 &&
	    SQL_SUCCEEDED(
	            SQLGetConnectAttr(c->dbc, SQL_ATTR_CONNECTION_DEAD, &dead, SQL_IS_UINTEGER, NULL)) &&
	    dead == SQL_CD_TRUE)
		c->broken = true;
}

static enum sql_error odbc_error_class(struct sql_conn *conn)
{
	struct odbc_conn *c = CONN(conn);
	if (!c->failed)
		return SQL_ERR_NONE;
	const char *st = c->last_state;
	long native = (long)c->last_native;
	if (c->broken || strncmp(st, "08", 2) == 0)
		return SQL_ERR_TEMPORARY;
	if (strcmp(st, "23505") == 0)
		return SQL_ERR_CONSTRAINT;
	if (strncmp(st, "23", 2) == 0) {
		if (native == 1062 || native == 1586 || native == 2627 || native == 2601)
			return SQL_ERR_CONSTRAINT;
		/* A bare 23000 from a driver that gives no native code: the
		 * statements Parley runs can only break a unique key. */
		if (strcmp(st, "23000") == 0 && native == 0)
			return SQL_ERR_CONSTRAINT;
		return SQL_ERR_PERMANENT;
	}
	if (strcmp(st, "40001") == 0 || strcmp(st, "40P01") == 0 || strcmp(st, "HYT00") == 0 ||
	    strcmp(st, "HYT01") == 0 || strcmp(st, "57014") == 0 || strcmp(st, "55P03") == 0 ||
	    strcmp(st, "HY008") == 0 || strcmp(st, "HY001") == 0 || strcmp(st, "53300") == 0 ||
	    strcmp(st, "53200") == 0 || strcmp(st, "53100") == 0)
		return SQL_ERR_TEMPORARY;
	if (c->dialect == &odbc_mysql &&
	    (native == 1205 || native == 1213 || native == 1969 || native == 3024 || native == 1317 ||
	     native == 1040 || native == 1203 || native == 1290))
		return SQL_ERR_TEMPORARY;
	if (c->dialect == &odbc_mssql && (native == 1222 || native == 1205))
		return SQL_ERR_TEMPORARY; /* lock request time out, deadlock victim */
	return SQL_ERR_PERMANENT;
}

static const char *odbc_error_message(struct sql_conn *conn)
{
	struct odbc_conn *c = CONN(conn);
	return c->failed && c->last_msg != NULL ? c->last_msg : "no error";
}

static bool odbc_is_broken(struct sql_conn *conn)
{
	return CONN(conn)->broken;
}

/* ---- connection ------------------------------------------------------------------------ */

/* The connection string without its password (PWD=...), for messages. */
static char *odbc_describe(const struct storage_config *cfg)
{
	struct buf b = { 0 };
	buf_append_str(&b, "odbc:");
	const char *p = cfg->dsn != NULL ? cfg->dsn : "";
	bool first = true;
	while (*p != '\0') {
		const char *end = p;
		/* A value in braces may hold ';'. */
		while (*end != '\0' && *end != ';') {
			if (*end == '{') {
				while (*end != '\0' && *end != '}')
					end++;
				if (*end == '}')
					end++;
				continue;
			}
			end++;
		}
		size_t n = (size_t)(end - p);
		if (!(n >= 4 && (strncasecmp(p, "PWD=", 4) == 0)) &&
		    !(n >= 9 && strncasecmp(p, "PASSWORD=", 9) == 0) && n > 0) {
			if (!first)
				buf_append_str(&b, ";");
			buf_append(&b, p, n);
			first = false;
		}
		p = *end == ';' ? end + 1 : end;
	}
	return buf_steal(&b);
}

static void stmt_free(struct odbc_stmt *s)
{
	for (unsigned i = 0; i < s->nparams; i++)
		free(s->params[i].text);
	for (SQLSMALLINT i = 0; i < s->ncols; i++)
		free(s->cols[i].buf);
	free(s->params);
	free(s->cols);
	if (s->h != SQL_NULL_HSTMT)
		SQLFreeHandle(SQL_HANDLE_STMT, s->h);
	free(s);
}

static void stmt_finalize(struct sql_stmtcache_entry *e, void *ctx)
{
	stmt_free(SQL_STMTCACHE_OWNER(e, struct odbc_stmt, cached));
}

static void odbc_disconnect(struct sql_conn *conn)
{
	struct odbc_conn *c = CONN(conn);
	if (c == NULL)
		return;
	sql_stmtcache_free(&c->stmts, stmt_finalize, NULL);
	if (c->dbc != SQL_NULL_HDBC) {
		if (c->connected) {
			if (c->in_tx)
				SQLEndTran(SQL_HANDLE_DBC, c->dbc, SQL_ROLLBACK);
			SQLDisconnect(c->dbc);
		}
		SQLFreeHandle(SQL_HANDLE_DBC, c->dbc);
	}
	if (c->env != SQL_NULL_HENV)
		SQLFreeHandle(SQL_HANDLE_ENV, c->env);
	free(c->last_msg);
	free(c);
}

/* Run one statement with no parameters and no result rows. */
static int run_direct(struct odbc_conn *c, const char *sql)
{
	SQLHSTMT h = SQL_NULL_HSTMT;
	if (!SQL_SUCCEEDED(SQLAllocHandle(SQL_HANDLE_STMT, c->dbc, &h))) {
		set_error(c, SQL_HANDLE_DBC, c->dbc, "SQLAllocHandle");
		return -1;
	}
	SQLRETURN rc = SQLExecDirect(h, (SQLCHAR *)sql, SQL_NTS);
	int ret = 0;
	if (!SQL_SUCCEEDED(rc) && rc != SQL_NO_DATA) {
		set_error(c, SQL_HANDLE_STMT, h, "SQLExecDirect");
		ret = -1;
	} else {
		/* Drain every result (a script gives one per statement). */
		while (SQL_SUCCEEDED(SQLMoreResults(h)))
			;
	}
	SQLFreeHandle(SQL_HANDLE_STMT, h);
	return ret;
}

/* Whether the connection string has key (case-insensitive) at the start
 * of one of its attributes. */
static bool has_key(const char *cs, const char *key)
{
	size_t klen = strlen(key);
	const char *p = cs;
	for (;;) {
		while (*p == ' ' || *p == ';')
			p++;
		if (*p == '\0')
			return false;
		if (strncasecmp(p, key, klen) == 0) {
			const char *q = p + klen;
			while (*q == ' ')
				q++;
			if (*q == '=')
				return true;
		}
		while (*p != '\0' && *p != ';') {
			if (*p == '{')
				while (*p != '\0' && *p != '}')
					p++;
			if (*p != '\0')
				p++;
		}
	}
}

/* The connection string handed to the driver manager: the configured one,
 * the password in braces (a '}' in it doubled), OPTION=2 for a MySQL data
 * source.  Malloc'd; wipe it after use. */
static char *conn_string(const char *dsn, const char *password, bool mysql_found_rows)
{
	struct buf b = { 0 };
	buf_append_str(&b, dsn);
	while (b.len > 0 && (b.data[b.len - 1] == ';' || b.data[b.len - 1] == ' '))
		b.data[--b.len] = '\0';
	if (mysql_found_rows && !has_key(dsn, "OPTION") && !has_key(dsn, "OPTIONS"))
		buf_append_str(&b, ";OPTION=2");
	if (password != NULL) {
		buf_append_str(&b, ";PWD={");
		for (const char *p = password; *p != '\0'; p++) {
			buf_append(&b, p, 1);
			if (*p == '}')
				buf_append(&b, "}", 1);
		}
		buf_append_str(&b, "}");
	}
	return buf_steal(&b);
}

static pthread_mutex_t connect_lock = PTHREAD_MUTEX_INITIALIZER;

/* Allocate the handles and connect with the connection string cs. */
static int open_dbc(struct odbc_conn *c, const char *cs, double t, char **error_r)
{
	if (!SQL_SUCCEEDED(SQLAllocHandle(SQL_HANDLE_ENV, SQL_NULL_HANDLE, &c->env)) ||
	    !SQL_SUCCEEDED(SQLSetEnvAttr(c->env, SQL_ATTR_ODBC_VERSION, (SQLPOINTER)SQL_OV_ODBC3, 0))) {
		*error_r = xstrdup("odbc: cannot set up the ODBC environment (unixODBC)");
		return -1;
	}
	if (!SQL_SUCCEEDED(SQLAllocHandle(SQL_HANDLE_DBC, c->env, &c->dbc))) {
		*error_r = xstrdup("odbc: cannot allocate a connection handle");
		return -1;
	}
	SQLULEN secs = (SQLULEN)ceil(t);
	SQLSetConnectAttr(c->dbc, SQL_ATTR_LOGIN_TIMEOUT, (SQLPOINTER)secs, 0);
	SQLSetConnectAttr(c->dbc, SQL_ATTR_CONNECTION_TIMEOUT, (SQLPOINTER)(secs + 5), 0);
	SQLCHAR out[1024];
	SQLSMALLINT outlen = 0;
	/* One connect at a time in the process: drivers are not all safe to
	 * connect from several threads at once (psqlODBC calls setlocale(),
	 * which frees the locale name another connecting thread may be
	 * reading).  Connects are rare: at start and after a lost connection. */
	pthread_mutex_lock(&connect_lock);
	SQLRETURN rc = SQLDriverConnect(c->dbc, NULL, (SQLCHAR *)cs, SQL_NTS, out, sizeof(out), &outlen,
	                                SQL_DRIVER_NOPROMPT);
	pthread_mutex_unlock(&connect_lock);
	explicit_bzero(out, sizeof(out));
	if (!SQL_SUCCEEDED(rc)) {
		set_error(c, SQL_HANDLE_DBC, c->dbc, "SQLDriverConnect");
		*error_r = xasprintf("odbc: cannot connect: %s", c->last_msg);
		return -1;
	}
	c->connected = true;
	return 0;
}

static void close_dbc(struct odbc_conn *c)
{
	if (c->connected)
		SQLDisconnect(c->dbc);
	c->connected = false;
	if (c->dbc != SQL_NULL_HDBC)
		SQLFreeHandle(SQL_HANDLE_DBC, c->dbc);
	if (c->env != SQL_NULL_HENV)
		SQLFreeHandle(SQL_HANDLE_ENV, c->env);
	c->dbc = SQL_NULL_HDBC;
	c->env = SQL_NULL_HENV;
}

/* The first column of the first row of sql, as text, into buf. */
static int query_text(struct odbc_conn *c, const char *sql, char *buf, size_t len)
{
	SQLHSTMT h = SQL_NULL_HSTMT;
	if (!SQL_SUCCEEDED(SQLAllocHandle(SQL_HANDLE_STMT, c->dbc, &h))) {
		set_error(c, SQL_HANDLE_DBC, c->dbc, "SQLAllocHandle");
		return -1;
	}
	int ret = -1;
	SQLLEN ind = 0;
	if (!SQL_SUCCEEDED(SQLExecDirect(h, (SQLCHAR *)sql, SQL_NTS)))
		set_error(c, SQL_HANDLE_STMT, h, "SQLExecDirect");
	else if (!SQL_SUCCEEDED(SQLFetch(h)))
		set_error(c, SQL_HANDLE_STMT, h, "SQLFetch");
	else if (!SQL_SUCCEEDED(SQLGetData(h, 1, SQL_C_CHAR, buf, (SQLLEN)len, &ind)))
		set_error(c, SQL_HANDLE_STMT, h, "SQLGetData");
	else
		ret = 0;
	if (ret == 0 && ind == SQL_NULL_DATA)
		buf[0] = '\0';
	SQLFreeHandle(SQL_HANDLE_STMT, h);
	return ret;
}

/* Session settings of the dialect (see the top of the file). */
static int set_up_session(struct odbc_conn *c, double t)
{
	char *sql = NULL;
	int rc = 0;
	if (c->dialect == &odbc_pgsql) {
		sql = xasprintf("SET statement_timeout = %ld", (long)ceil(t * 1000));
		rc = run_direct(c, sql);
	} else if (c->dialect == &odbc_mysql) {
		/* SQL_DBMS_VER is only numbers: ask the server. */
		char low[256] = "";
		if (query_text(c, "SELECT VERSION()", low, sizeof(low)) < 0)
			return -1;
		for (size_t i = 0; low[i] != '\0'; i++)
			low[i] = (char)tolower((unsigned char)low[i]);
		unsigned lock_wait = (unsigned)ceil(t);
		if (strstr(low, "mariadb") != NULL)
			sql = xasprintf("SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION,"
			                "NO_AUTO_VALUE_ON_ZERO', max_statement_time = %.3f, "
			                "innodb_lock_wait_timeout = %u",
			                t, lock_wait > 0 ? lock_wait : 1);
		else
			sql = xasprintf("SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION,"
			                "NO_AUTO_VALUE_ON_ZERO', max_execution_time = %lu, "
			                "innodb_lock_wait_timeout = %u",
			                (unsigned long)ceil(t * 1000), lock_wait > 0 ? lock_wait : 1);
		rc = run_direct(c, sql);
		if (rc == 0)
			rc = run_direct(c, "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED");
		/* The ODBC driver owns the character set (SET NAMES is refused):
		 * check that it is all of Unicode. */
		char cs[64] = "";
		if (rc == 0 &&
		    (rc = query_text(c, "SELECT @@character_set_connection", cs, sizeof(cs))) == 0 &&
		    strcmp(cs, "utf8mb4") != 0) {
			c->failed = true;
			memcpy(c->last_state, "HY000", 6);
			c->last_native = 0;
			free(c->last_msg);
			c->last_msg = xasprintf("the connection's character set is %s, not utf8mb4: add "
			                        "CHARSET=utf8mb4 to the data source or connection string",
			                        cs);
			rc = -1;
		}
	} else if (c->dialect == &odbc_mssql) {
		sql = xasprintf("SET LOCK_TIMEOUT %ld", (long)ceil(t * 1000));
		rc = run_direct(c, sql);
	}
	free(sql);
	return rc;
}

static struct sql_conn *odbc_connect(const struct storage_config *cfg, char **error_r)
{
	char *password = NULL, *err = NULL;
	if (cfg->password_file != NULL) {
		password = sql_read_password_file(cfg->password_file, &err);
		if (password == NULL) {
			*error_r = xasprintf("odbc: %s", err);
			free(err);
			return NULL;
		}
	} else if (cfg->password != NULL) {
		password = xstrdup(cfg->password);
	}
	const struct sql_dialect *want = dialect_named(cfg->dialect);
	double t = cfg->timeout > 0 ? cfg->timeout : 10;
	struct odbc_conn *c = xcalloc(1, sizeof(*c));
	char *cs = conn_string(cfg->dsn != NULL ? cfg->dsn : "", password, want == &odbc_mysql);
	int rc = open_dbc(c, cs, t, error_r);
	explicit_bzero(cs, strlen(cs));
	free(cs);
	if (rc < 0)
		goto fail;

	const struct sql_dialect *dia = want;
	if (dia == NULL) {
		SQLCHAR dbms[128] = "";
		SQLSMALLINT len = 0;
		if (!SQL_SUCCEEDED(SQLGetInfo(c->dbc, SQL_DBMS_NAME, dbms, sizeof(dbms), &len))) {
			set_error(c, SQL_HANDLE_DBC, c->dbc, "SQLGetInfo");
			*error_r = xasprintf("odbc: cannot ask the data source what it is (%s): set "
			                     "storage.dialect",
			                     c->last_msg);
			goto fail;
		}
		dia = dialect_of_dbms((const char *)dbms);
		if (dia == NULL) {
			*error_r = xasprintf("odbc: the data source is '%s', which has no Parley schema "
			                     "(pgsql, mysql, mssql); if it speaks one of those, set "
			                     "storage.dialect",
			                     (const char *)dbms);
			goto fail;
		}
		if (dia == &odbc_mysql && !has_key(cfg->dsn, "OPTION") && !has_key(cfg->dsn, "OPTIONS")) {
			/* Again with the "found rows" flag, which only the
			 * connection string can set. */
			close_dbc(c);
			cs = conn_string(cfg->dsn, password, true);
			rc = open_dbc(c, cs, t, error_r);
			explicit_bzero(cs, strlen(cs));
			free(cs);
			if (rc < 0)
				goto fail;
		}
	}
	c->dialect = dia;
	/* psqlODBC turns the query timeout into its own statement_timeout,
	 * in whole seconds: the session's (exact) one is set instead. */
	c->query_timeout = dia == &odbc_pgsql ? 0 : (unsigned)ceil(t) + 1;
	if (password != NULL) {
		explicit_bzero(password, strlen(password));
		xfree(&password);
	}
	if (set_up_session(c, t) < 0) {
		*error_r = xasprintf("odbc: cannot set the %s session up: %s", dia->name, c->last_msg);
		goto fail;
	}
	c->failed = false;
	return (struct sql_conn *)(void *)c;
fail:
	if (password != NULL) {
		explicit_bzero(password, strlen(password));
		free(password);
	}
	odbc_disconnect((struct sql_conn *)(void *)c);
	return NULL;
}

static const struct sql_dialect *odbc_conn_dialect(struct sql_conn *conn)
{
	return CONN(conn)->dialect;
}

static int odbc_ping(struct sql_conn *conn)
{
	struct odbc_conn *c = CONN(conn);
	if (run_direct(c, "SELECT 1") < 0) {
		c->broken = true;
		return -1;
	}
	return 0;
}

static int odbc_exec(struct sql_conn *conn, const char *script)
{
	return run_direct(CONN(conn), script);
}

/* ---- statements ------------------------------------------------------------------------ */

static void params_clear(struct odbc_stmt *s)
{
	for (unsigned i = 0; i < s->nparams; i++) {
		struct odbc_param *p = &s->params[i];
		if (p->text != NULL) {
			explicit_bzero(p->text, (size_t)p->len);
			xfree(&p->text);
		}
		p->is_null = true;
		p->is_int = false;
		p->len = SQL_NULL_DATA;
	}
}

static void odbc_reset(struct sql_stmt *st)
{
	struct odbc_stmt *s = STMT(st);
	if (s->executed)
		SQLFreeStmt(s->h, SQL_CLOSE);
	SQLFreeStmt(s->h, SQL_RESET_PARAMS);
	s->executed = false;
	s->open_cursor = false;
	s->changes = 0;
	params_clear(s);
}

static struct sql_stmt *odbc_prepare(struct sql_conn *conn, const char *sql)
{
	struct odbc_conn *c = CONN(conn);
	struct sql_stmtcache_entry *e = sql_stmtcache_find(&c->stmts, sql);
	if (e != NULL) {
		struct sql_stmt *st =
		        (struct sql_stmt *)(void *)SQL_STMTCACHE_OWNER(e, struct odbc_stmt, cached);
		odbc_reset(st);
		return st;
	}
	struct odbc_stmt *s = xcalloc(1, sizeof(*s));
	s->conn = c;
	if (!SQL_SUCCEEDED(SQLAllocHandle(SQL_HANDLE_STMT, c->dbc, &s->h))) {
		set_error(c, SQL_HANDLE_DBC, c->dbc, "SQLAllocHandle");
		free(s);
		return NULL;
	}
	if (c->query_timeout > 0)
		SQLSetStmtAttr(s->h, SQL_ATTR_QUERY_TIMEOUT, (SQLPOINTER)(SQLULEN)c->query_timeout, 0);
	if (!SQL_SUCCEEDED(SQLPrepare(s->h, (SQLCHAR *)sql, SQL_NTS))) {
		set_error(c, SQL_HANDLE_STMT, s->h, "SQLPrepare");
		stmt_free(s);
		return NULL;
	}
	/* sql.h: there is never a '?' inside a literal. */
	for (const char *p = sql; *p != '\0'; p++)
		s->nparams += *p == '?';
	if (s->nparams > 0)
		s->params = xcalloc(s->nparams, sizeof(*s->params));
	params_clear(s);
	sql_stmtcache_add(&c->stmts, &s->cached, sql);
	return (struct sql_stmt *)(void *)s;
}

static struct odbc_param *param_at(struct odbc_stmt *s, unsigned idx)
{
	if (idx == 0 || idx > s->nparams) {
		s->conn->failed = true;
		memcpy(s->conn->last_state, "07009", 6);
		s->conn->last_native = 0;
		free(s->conn->last_msg);
		s->conn->last_msg = xstrdup("parameter number out of range [SQLSTATE 07009]");
		return NULL;
	}
	struct odbc_param *p = &s->params[idx - 1];
	if (p->text != NULL) {
		explicit_bzero(p->text, (size_t)p->len);
		xfree(&p->text);
	}
	p->is_null = false;
	p->is_int = false;
	return p;
}

static int odbc_bind_blob(struct sql_stmt *st, unsigned idx, const void *data, size_t len)
{
	struct odbc_param *p = param_at(STMT(st), idx);
	if (p == NULL)
		return -1;
	p->text = xmalloc(len + 1);
	if (len > 0)
		memcpy(p->text, data, len);
	p->text[len] = '\0';
	p->len = (SQLLEN)len;
	return 0;
}

static int odbc_bind_null(struct sql_stmt *st, unsigned idx)
{
	struct odbc_param *p = param_at(STMT(st), idx);
	if (p == NULL)
		return -1;
	p->is_null = true;
	p->len = SQL_NULL_DATA;
	return 0;
}

static int odbc_bind_text(struct sql_stmt *st, unsigned idx, const char *value)
{
	if (value == NULL)
		return odbc_bind_null(st, idx);
	return odbc_bind_blob(st, idx, value, strlen(value));
}

static int odbc_bind_int64(struct sql_stmt *st, unsigned idx, int64_t value)
{
	struct odbc_param *p = param_at(STMT(st), idx);
	if (p == NULL)
		return -1;
	p->is_int = true;
	p->num = (SQLBIGINT)value;
	p->len = 0;
	return 0;
}

/* Read every column of the current row as text (in column order, as
 * SQLGetData wants). */
static int read_row(struct odbc_stmt *s)
{
	for (SQLSMALLINT i = 0; i < s->ncols; i++) {
		struct odbc_col *col = &s->cols[i];
		col->len = 0;
		col->is_null = false;
		for (;;) {
			if (col->cap - col->len < 256) {
				col->cap = col->cap == 0 ? 256 : col->cap * 2;
				col->buf = xrealloc(col->buf, col->cap);
			}
			SQLLEN ind = 0;
			SQLRETURN rc = SQLGetData(s->h, (SQLUSMALLINT)(i + 1), SQL_C_CHAR,
			                          col->buf + col->len, (SQLLEN)(col->cap - col->len), &ind);
			if (rc == SQL_NO_DATA)
				break;
			if (!SQL_SUCCEEDED(rc)) {
				set_error(s->conn, SQL_HANDLE_STMT, s->h, "SQLGetData");
				return -1;
			}
			if (ind == SQL_NULL_DATA) {
				col->is_null = true;
				break;
			}
			size_t room = col->cap - col->len - 1; /* the driver wrote a NUL */
			if (rc == SQL_SUCCESS_WITH_INFO && (ind == SQL_NO_TOTAL || (size_t)ind > room)) {
				col->len += room; /* more to come */
				continue;
			}
			col->len += (size_t)ind;
			break;
		}
		if (!col->is_null)
			col->buf[col->len] = '\0';
	}
	return 0;
}

static enum sql_step fetch_row(struct odbc_stmt *s)
{
	SQLRETURN rc = SQLFetch(s->h);
	if (rc == SQL_NO_DATA)
		return SQL_STEP_DONE;
	if (!SQL_SUCCEEDED(rc)) {
		set_error(s->conn, SQL_HANDLE_STMT, s->h, "SQLFetch");
		return SQL_STEP_ERROR;
	}
	return read_row(s) < 0 ? SQL_STEP_ERROR : SQL_STEP_ROW;
}

static enum sql_step odbc_step(struct sql_stmt *st)
{
	struct odbc_stmt *s = STMT(st);
	if (s->executed)
		return s->open_cursor ? fetch_row(s) : SQL_STEP_DONE;
	s->executed = true;
	for (unsigned i = 0; i < s->nparams; i++) {
		struct odbc_param *p = &s->params[i];
		SQLRETURN rc;
		if (p->is_int) {
			rc = SQLBindParameter(s->h, (SQLUSMALLINT)(i + 1), SQL_PARAM_INPUT, SQL_C_SBIGINT,
			                      SQL_BIGINT, 0, 0, &p->num, 0, NULL);
		} else {
			/* Long text as LONGVARCHAR (SQL Server's VARCHAR stops at
			 * 8000 bytes). */
			SQLSMALLINT type = p->len > 4000 ? SQL_LONGVARCHAR : SQL_VARCHAR;
			SQLULEN size = p->is_null || p->len < 1 ? 1 : (SQLULEN)p->len;
			rc = SQLBindParameter(s->h, (SQLUSMALLINT)(i + 1), SQL_PARAM_INPUT, SQL_C_CHAR, type,
			                      size, 0, p->is_null ? NULL : p->text, p->is_null ? 0 : p->len,
			                      &p->len);
		}
		if (!SQL_SUCCEEDED(rc)) {
			set_error(s->conn, SQL_HANDLE_STMT, s->h, "SQLBindParameter");
			return SQL_STEP_ERROR;
		}
	}
	SQLRETURN rc = SQLExecute(s->h);
	if (!SQL_SUCCEEDED(rc) && rc != SQL_NO_DATA) {
		set_error(s->conn, SQL_HANDLE_STMT, s->h, "SQLExecute");
		return SQL_STEP_ERROR;
	}
	SQLSMALLINT ncols = 0;
	if (rc != SQL_NO_DATA && !SQL_SUCCEEDED(SQLNumResultCols(s->h, &ncols))) {
		set_error(s->conn, SQL_HANDLE_STMT, s->h, "SQLNumResultCols");
		return SQL_STEP_ERROR;
	}
	if (ncols <= 0) {
		SQLLEN n = 0;
		if (rc != SQL_NO_DATA && !SQL_SUCCEEDED(SQLRowCount(s->h, &n)))
			n = 0;
		s->changes = n > 0 ? (uint64_t)n : 0;
		return SQL_STEP_DONE;
	}
	if (ncols != s->ncols) {
		for (SQLSMALLINT i = 0; i < s->ncols; i++)
			free(s->cols[i].buf);
		free(s->cols);
		s->cols = xcalloc((size_t)ncols, sizeof(*s->cols));
		s->ncols = ncols;
	}
	s->open_cursor = true;
	return fetch_row(s);
}

static bool odbc_column_is_null(struct sql_stmt *st, unsigned col)
{
	struct odbc_stmt *s = STMT(st);
	return col >= (unsigned)s->ncols || s->cols[col].is_null;
}

static const char *odbc_column_text(struct sql_stmt *st, unsigned col)
{
	struct odbc_stmt *s = STMT(st);
	if (col >= (unsigned)s->ncols || s->cols[col].is_null)
		return NULL;
	return s->cols[col].buf;
}

static int64_t odbc_column_int64(struct sql_stmt *st, unsigned col)
{
	const char *v = odbc_column_text(st, col);
	return v != NULL ? (int64_t)strtoll(v, NULL, 10) : 0;
}

static const void *odbc_column_blob(struct sql_stmt *st, unsigned col, size_t *len_r)
{
	struct odbc_stmt *s = STMT(st);
	if (col >= (unsigned)s->ncols || s->cols[col].is_null) {
		*len_r = 0;
		return NULL;
	}
	*len_r = s->cols[col].len;
	return s->cols[col].buf;
}

static uint64_t odbc_changes(struct sql_stmt *st)
{
	return STMT(st)->changes;
}

/* ---- transactions ------------------------------------------------------------------------ */

static int odbc_begin(struct sql_conn *conn, bool write)
{
	struct odbc_conn *c = CONN(conn);
	if (!SQL_SUCCEEDED(
	            SQLSetConnectAttr(c->dbc, SQL_ATTR_AUTOCOMMIT, (SQLPOINTER)SQL_AUTOCOMMIT_OFF, 0))) {
		set_error(c, SQL_HANDLE_DBC, c->dbc, "SQLSetConnectAttr(AUTOCOMMIT)");
		return -1;
	}
	c->in_tx = true;
	return 0;
}

/* Back to autocommit once a transaction ended. */
static void end_tx(struct odbc_conn *c)
{
	c->in_tx = false;
	SQLSetConnectAttr(c->dbc, SQL_ATTR_AUTOCOMMIT, (SQLPOINTER)SQL_AUTOCOMMIT_ON, 0);
}

static int odbc_commit(struct sql_conn *conn)
{
	struct odbc_conn *c = CONN(conn);
	if (!SQL_SUCCEEDED(SQLEndTran(SQL_HANDLE_DBC, c->dbc, SQL_COMMIT))) {
		set_error(c, SQL_HANDLE_DBC, c->dbc, "SQLEndTran(COMMIT)");
		return -1; /* the caller rolls back */
	}
	end_tx(c);
	return 0;
}

static void odbc_rollback(struct sql_conn *conn)
{
	struct odbc_conn *c = CONN(conn);
	if (!c->in_tx)
		return;
	if (c->broken) {
		c->in_tx = false;
		return;
	}
	/* Keep the error that caused the rollback. */
	bool failed = c->failed;
	char state[6];
	memcpy(state, c->last_state, sizeof(state));
	SQLINTEGER native = c->last_native;
	char *msg = c->last_msg != NULL ? xstrdup(c->last_msg) : NULL;
	bool broken = c->broken;
	if (!SQL_SUCCEEDED(SQLEndTran(SQL_HANDLE_DBC, c->dbc, SQL_ROLLBACK))) {
		set_error(c, SQL_HANDLE_DBC, c->dbc, "SQLEndTran(ROLLBACK)");
		log_warning("odbc: rollback failed: %s", c->last_msg);
		broken = broken || c->broken;
	}
	end_tx(c);
	c->failed = failed;
	memcpy(c->last_state, state, sizeof(state));
	c->last_native = native;
	free(c->last_msg);
	c->last_msg = msg;
	c->broken = broken;
}

const struct sql_driver_vfuncs sql_driver_odbc = {
	.name = "odbc",
	.dialect = &odbc_unknown,
	.describe = odbc_describe,
	.is_new = NULL,
	.connect = odbc_connect,
	.disconnect = odbc_disconnect,
	.conn_dialect = odbc_conn_dialect,
	.is_broken = odbc_is_broken,
	.ping = odbc_ping,
	.exec = odbc_exec,
	.prepare = odbc_prepare,
	.bind_text = odbc_bind_text,
	.bind_int64 = odbc_bind_int64,
	.bind_blob = odbc_bind_blob,
	.bind_null = odbc_bind_null,
	.step = odbc_step,
	.column_is_null = odbc_column_is_null,
	.column_text = odbc_column_text,
	.column_int64 = odbc_column_int64,
	.column_blob = odbc_column_blob,
	.changes = odbc_changes,
	.reset = odbc_reset,
	.begin = odbc_begin,
	.commit = odbc_commit,
	.rollback = odbc_rollback,
	.error_class = odbc_error_class,
	.error_message = odbc_error_message,
};
