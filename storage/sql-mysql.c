/*
 * The MySQL / MariaDB driver of sql.h, over MariaDB Connector/C
 * (libmariadb) with server-side prepared statements (mysql_stmt_*).  Works
 * with MariaDB (10.3 and later) and MySQL (8.0 and later).
 *
 * Threads: each connection belongs to one worker thread (Connector/C
 * handles are not shared); sql-store.c also uses one on the loop thread
 * at start-up, before the loop runs.  mysql_library_init runs once, before
 * the first connection, under pthread_once.
 *
 * The connection string (storage.dsn) has the libpq form shared by every
 * network driver: "host=db port=3306 dbname=xmpp user=xmpp sslmode=verify-full
 * sslrootcert=/etc/ssl/db-ca.pem"; the password comes from
 * storage.password_file, else storage.password, else a password= keyword
 * (the docs advise the file).  A host starting with '/' is a UNIX socket path.
 *
 * Settings of every connection, and why:
 * - CLIENT_FOUND_ROWS: an UPDATE reports the rows it matched, not the rows
 *   whose values changed, so "update; insert when nothing was updated"
 *   and "no such account" both work when the new values equal the old;
 * - character set utf8mb4 (all of Unicode; MySQL's "utf8" is 3 bytes);
 * - sql_mode with STRICT_ALL_TABLES: a value too long for its column is an
 *   error, never silently cut;
 * - the storage timeout as the statement time limit (MariaDB:
 *   max_statement_time, which also ends lock waits; MySQL 8:
 *   max_execution_time, SELECT only), as innodb_lock_wait_timeout (whole
 *   seconds, at least 1) and, with a margin, as the client's read and
 *   write timeouts, so a server that stops answering costs one timeout,
 *   not a hung worker;
 * - isolation READ COMMITTED: InnoDB then takes no gap locks for searches,
 *   so two workers that each look for a missing row and insert it (the
 *   UPDATE-then-INSERT path, a new roster version row) do not deadlock
 *   each other.  One user's jobs run on one worker, in order, so nothing
 *   Parley does depends on a snapshot older than the statement;
 * - no automatic reconnection by the library: a lost connection is
 *   reported (is_broken) and sql-store.c makes a new one, so a
 *   transaction is never silently cut in two.
 * Prepared statements are cached per connection by their SQL text
 * (sql-stmtcache.h); results are buffered on the client
 * (mysql_stmt_store_result) so that a statement never holds the
 * connection while its rows are read.
 */
#include "storage/sql.h"
#include "storage/sql-stmtcache.h"
#include "lib/log.h"

#include <mysql.h>
#include <errmsg.h>
#include <mysqld_error.h>
#include <math.h>
#include <pthread.h>

/* Codes Connector/C or the server may not define, by number. */
#define MY_ER_STATEMENT_TIMEOUT 1969          /* MariaDB: max_statement_time exceeded */
#define MY_ER_QUERY_TIMEOUT 3024              /* MySQL: max_execution_time exceeded */
#define MY_ER_CONNECTION_KILLED 1927          /* MariaDB: connection was killed */
#define MY_ER_CLIENT_INTERACTION_TIMEOUT 4031 /* MySQL 8: idle too long, disconnected */
#define MY_ER_NEED_REPREPARE 1615             /* table changed under a prepared statement */
#define MY_ER_DUP_ENTRY_WITH_KEY_NAME 1586

struct my_param {
	enum enum_field_types type;
	char *text; /* malloc'd copy (text, blob) */
	unsigned long len;
	long long num;
	my_bool is_null;
};

struct my_col {
	char *buf;
	unsigned long cap;
	unsigned long len;
	my_bool is_null;
	my_bool error; /* truncated */
};

struct my_stmt {
	struct sql_stmtcache_entry cached; /* in conn->stmts */
	struct my_conn *conn;
	MYSQL_STMT *stmt;
	unsigned nparams;
	struct my_param *params;
	MYSQL_BIND *pbind;
	unsigned ncols;
	struct my_col *cols;
	MYSQL_BIND *cbind;
	bool executed;
	bool has_result; /* store_result done: free_result at reset */
	uint64_t changes;
};

struct my_conn {
	MYSQL *db;
	struct sql_stmtcache stmts; /* the statement cache */
	bool in_tx;
	bool broken;        /* the server went away: reconnect */
	unsigned last_code; /* server or client error number, 0: none */
	char last_state[6]; /* SQLSTATE */
	char *last_msg;
};

#define CONN(c) ((struct my_conn *)(void *)(c))
#define STMT(s) ((struct my_stmt *)(void *)(s))

static pthread_once_t my_once = PTHREAD_ONCE_INIT;
static int my_init_rc;

static void my_lib_init(void)
{
	my_init_rc = mysql_library_init(0, NULL, NULL);
}

/* ---- errors ------------------------------------------------------------------------ */

static bool code_is_gone(unsigned code)
{
	switch (code) {
	case CR_SERVER_GONE_ERROR:    /* 2006 */
	case CR_SERVER_LOST:          /* 2013 */
	case CR_CONNECTION_ERROR:     /* 2002 */
	case CR_CONN_HOST_ERROR:      /* 2003 */
	case CR_COMMANDS_OUT_OF_SYNC: /* 2014: the session state is unknown */
	case ER_SERVER_SHUTDOWN:      /* 1053 */
	case MY_ER_CONNECTION_KILLED:
	case MY_ER_CLIENT_INTERACTION_TIMEOUT:
	case MY_ER_NEED_REPREPARE: /* a new connection prepares afresh */
#ifdef CR_SERVER_LOST_EXTENDED
	case CR_SERVER_LOST_EXTENDED: /* 2055 */
#endif
		return true;
	default: return false;
	}
}

static void set_error(struct my_conn *c, unsigned code, const char *state, const char *msg)
{
	c->last_code = code;
	snprintf(c->last_state, sizeof(c->last_state), "%s", state != NULL ? state : "HY000");
	free(c->last_msg);
	c->last_msg = xasprintf("%s (%u)", msg != NULL && *msg != '\0' ? msg : "unknown error", code);
	if (code_is_gone(code))
		c->broken = true;
}

static void set_db_error(struct my_conn *c)
{
	set_error(c, mysql_errno(c->db), mysql_sqlstate(c->db), mysql_error(c->db));
}

static void set_stmt_error(struct my_stmt *s)
{
	set_error(s->conn, mysql_stmt_errno(s->stmt), mysql_stmt_sqlstate(s->stmt),
	          mysql_stmt_error(s->stmt));
}

static void clear_error(struct my_conn *c)
{
	c->last_code = 0;
}

static enum sql_error my_error_class(struct sql_conn *conn)
{
	struct my_conn *c = CONN(conn);
	unsigned code = c->last_code;
	if (code == 0)
		return SQL_ERR_NONE;
	if (code_is_gone(code) || (code >= 2000 && code < 3000))
		return SQL_ERR_TEMPORARY; /* client side: connection, out of memory */
	switch (code) {
	case ER_DUP_ENTRY: /* 1062 */
	case ER_DUP_KEY:   /* 1022 */
	case MY_ER_DUP_ENTRY_WITH_KEY_NAME: return SQL_ERR_CONSTRAINT;
	case ER_LOCK_WAIT_TIMEOUT: /* 1205 */
	case ER_LOCK_DEADLOCK:     /* 1213 */
	case MY_ER_STATEMENT_TIMEOUT:
	case MY_ER_QUERY_TIMEOUT:
	case ER_QUERY_INTERRUPTED:         /* 1317 */
	case ER_CON_COUNT_ERROR:           /* 1040 too many connections */
	case ER_TOO_MANY_USER_CONNECTIONS: /* 1203 */
	case ER_RECORD_FILE_FULL:          /* 1114 table full */
	case ER_DISK_FULL:                 /* 1021 */
	case ER_OUTOFMEMORY:               /* 1037 */
	case ER_OUT_OF_SORTMEMORY:         /* 1038 */
	case ER_OPTION_PREVENTS_STATEMENT: /* 1290: --read-only (a fail-over under way) */
	case ER_LOCK_TABLE_FULL: /* 1206 */ return SQL_ERR_TEMPORARY;
	default: return SQL_ERR_PERMANENT;
	}
}

static const char *my_error_message(struct sql_conn *conn)
{
	struct my_conn *c = CONN(conn);
	return c->last_code != 0 && c->last_msg != NULL ? c->last_msg : "no error";
}

static bool my_is_broken(struct sql_conn *conn)
{
	return CONN(conn)->broken;
}

static int my_ping(struct sql_conn *conn)
{
	struct my_conn *c = CONN(conn);
	if (mysql_ping(c->db) != 0) {
		set_db_error(c);
		c->broken = true;
		return -1;
	}
	return 0;
}

/* ---- connection ------------------------------------------------------------------------ */

static char *my_describe(const struct storage_config *cfg)
{
	struct sql_conninfo ci = { 0 };
	char *err = NULL;
	if (sql_conninfo_parse(cfg->dsn, &ci, &err) < 0) {
		free(err);
		return xstrdup("mysql:(bad connection string)");
	}
	const char *host = sql_conninfo_get(&ci, "host");
	const char *port = sql_conninfo_get(&ci, "port");
	const char *db = sql_conninfo_get(&ci, "dbname");
	const char *user = sql_conninfo_get(&ci, "user");
	char *d = xasprintf("mysql:host=%s%s%s dbname=%s user=%s", host != NULL ? host : "localhost",
	                    port != NULL ? " port=" : "", port != NULL ? port : "", db != NULL ? db : "",
	                    user != NULL ? user : "");
	sql_conninfo_free(&ci);
	return d;
}

static void stmt_free(struct my_stmt *s)
{
	for (unsigned i = 0; i < s->nparams; i++)
		free(s->params[i].text);
	for (unsigned i = 0; i < s->ncols; i++)
		free(s->cols[i].buf);
	free(s->params);
	free(s->pbind);
	free(s->cols);
	free(s->cbind);
	if (s->stmt != NULL)
		mysql_stmt_close(s->stmt);
	free(s);
}

static void stmt_finalize(struct sql_stmtcache_entry *e, void *ctx)
{
	stmt_free(SQL_STMTCACHE_OWNER(e, struct my_stmt, cached));
}

static void my_disconnect(struct sql_conn *conn)
{
	struct my_conn *c = CONN(conn);
	if (c == NULL)
		return;
	sql_stmtcache_free(&c->stmts, stmt_finalize, NULL);
	mysql_close(c->db);
	free(c->last_msg);
	free(c);
}

/* Run one statement with no parameters and no result (session set-up,
 * transactions). */
static int run_simple(struct my_conn *c, const char *sql)
{
	if (mysql_real_query(c->db, sql, strlen(sql)) != 0) {
		set_db_error(c);
		return -1;
	}
	MYSQL_RES *res = mysql_store_result(c->db);
	if (res != NULL)
		mysql_free_result(res);
	return 0;
}

/* The TLS keywords (libpq's names): sslmode disable | prefer (default:
 * TLS when the server offers it) | require | verify-ca | verify-full;
 * sslrootcert, sslcert, sslkey, sslcrl. */
static int set_tls(MYSQL *db, const struct sql_conninfo *ci, char **error_r)
{
	const char *mode = sql_conninfo_get(ci, "sslmode");
	const char *ca = sql_conninfo_get(ci, "sslrootcert");
	const char *cert = sql_conninfo_get(ci, "sslcert");
	const char *key = sql_conninfo_get(ci, "sslkey");
	const char *crl = sql_conninfo_get(ci, "sslcrl");
	my_bool yes = 1, no = 0;
	if (mode == NULL)
		mode = "prefer";
	if (strcmp(mode, "disable") == 0) {
		if (ca != NULL || cert != NULL || key != NULL) {
			*error_r = xstrdup("sslmode=disable with TLS files given: choose one");
			return -1;
		}
		/* Connector/C only uses TLS when asked to. */
		mysql_optionsv(db, MYSQL_OPT_SSL_ENFORCE, &no);
		mysql_optionsv(db, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &no);
		return 0;
	}
	if (ca != NULL)
		mysql_optionsv(db, MYSQL_OPT_SSL_CA, ca);
	if (cert != NULL)
		mysql_optionsv(db, MYSQL_OPT_SSL_CERT, cert);
	if (key != NULL)
		mysql_optionsv(db, MYSQL_OPT_SSL_KEY, key);
	if (crl != NULL)
		mysql_optionsv(db, MYSQL_OPT_SSL_CRL, crl);
	if (strcmp(mode, "prefer") == 0) {
		mysql_optionsv(db, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &no);
		return 0;
	}
	if (strcmp(mode, "require") == 0) {
		mysql_optionsv(db, MYSQL_OPT_SSL_ENFORCE, &yes);
		mysql_optionsv(db, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &no);
		return 0;
	}
	if (strcmp(mode, "verify-ca") == 0 || strcmp(mode, "verify-full") == 0) {
		/* Connector/C checks the chain and the host name together. */
		mysql_optionsv(db, MYSQL_OPT_SSL_ENFORCE, &yes);
		mysql_optionsv(db, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &yes);
		return 0;
	}
	*error_r =
	        xasprintf("sslmode '%s': expected disable, prefer, require, verify-ca or verify-full", mode);
	return -1;
}

static const char *const known_keys[] = { "host",     "port",    "dbname",          "user",
	                                  "password", "sslmode", "sslrootcert",     "sslcert",
	                                  "sslkey",   "sslcrl",  "connect_timeout", NULL };

static struct sql_conn *my_connect(const struct storage_config *cfg, char **error_r)
{
	pthread_once(&my_once, my_lib_init);
	if (my_init_rc != 0) {
		*error_r = xstrdup("mysql: the client library cannot start");
		return NULL;
	}
	struct sql_conninfo ci = { 0 };
	char *err = NULL, *password = NULL;
	if (sql_conninfo_parse(cfg->dsn, &ci, &err) < 0) {
		*error_r = xasprintf("mysql: %s", err);
		free(err);
		return NULL;
	}
	for (size_t i = 0; i < ci.count; i++) {
		bool known = false;
		for (size_t k = 0; known_keys[k] != NULL && !known; k++)
			known = strcmp(ci.items[i].key, known_keys[k]) == 0;
		if (!known) {
			*error_r = xasprintf("mysql: connection string: unknown keyword '%s' (known: host, "
			                     "port, dbname, user, password, sslmode, sslrootcert, sslcert, "
			                     "sslkey, sslcrl, connect_timeout)",
			                     ci.items[i].key);
			sql_conninfo_free(&ci);
			return NULL;
		}
	}
	const char *host = sql_conninfo_get(&ci, "host");
	const char *port_s = sql_conninfo_get(&ci, "port");
	const char *dbname = sql_conninfo_get(&ci, "dbname");
	const char *user = sql_conninfo_get(&ci, "user");
	const char *ct_s = sql_conninfo_get(&ci, "connect_timeout");
	unsigned port = 0;
	if (port_s != NULL) {
		char *end;
		unsigned long v = strtoul(port_s, &end, 10);
		if (*port_s == '\0' || *end != '\0' || v == 0 || v > 65535) {
			*error_r =
			        xasprintf("mysql: connection string: port '%s' is not a port number", port_s);
			sql_conninfo_free(&ci);
			return NULL;
		}
		port = (unsigned)v;
	}
	if (cfg->password_file != NULL) {
		password = sql_read_password_file(cfg->password_file, &err);
		if (password == NULL) {
			*error_r = xasprintf("mysql: %s", err);
			free(err);
			sql_conninfo_free(&ci);
			return NULL;
		}
	} else if (cfg->password != NULL) {
		password = xstrdup(cfg->password);
	} else if (sql_conninfo_get(&ci, "password") != NULL) {
		password = xstrdup(sql_conninfo_get(&ci, "password"));
	}

	struct my_conn *c = xcalloc(1, sizeof(*c));
	c->db = mysql_init(NULL);
	if (c->db == NULL) {
		*error_r = xstrdup("mysql: out of memory");
		goto fail;
	}
	double t = cfg->timeout > 0 ? cfg->timeout : 10;
	unsigned connect_timeout = (unsigned)ceil(t);
	if (ct_s != NULL)
		connect_timeout = (unsigned)strtoul(ct_s, NULL, 10);
	if (connect_timeout == 0)
		connect_timeout = 1;
	/* The read timeout must outlast the server's own statement limit (the
	 * server's answer then says what happened). */
	unsigned io_timeout = (unsigned)ceil(t) + 5;
	my_bool no = 0;
	mysql_optionsv(c->db, MYSQL_OPT_CONNECT_TIMEOUT, &connect_timeout);
	mysql_optionsv(c->db, MYSQL_OPT_READ_TIMEOUT, &io_timeout);
	mysql_optionsv(c->db, MYSQL_OPT_WRITE_TIMEOUT, &io_timeout);
	mysql_optionsv(c->db, MYSQL_SET_CHARSET_NAME, "utf8mb4");
	mysql_optionsv(c->db, MYSQL_OPT_RECONNECT, &no);
	mysql_optionsv(c->db, MYSQL_OPT_LOCAL_INFILE, &no);
	if (set_tls(c->db, &ci, &err) < 0) {
		*error_r = xasprintf("mysql: connection string: %s", err);
		free(err);
		goto fail;
	}
	const char *socket = NULL;
	if (host != NULL && host[0] == '/') {
		socket = host;
		host = "localhost";
	}
	if (mysql_real_connect(c->db, host != NULL ? host : "localhost", user, password, dbname, port, socket,
	                       CLIENT_FOUND_ROWS) == NULL) {
		*error_r =
		        xasprintf("mysql: cannot connect: %s (%u)", mysql_error(c->db), mysql_errno(c->db));
		goto fail;
	}
	if (password != NULL) {
		explicit_bzero(password, strlen(password));
		xfree(&password);
	}
	sql_conninfo_free(&ci);

	const char *server = mysql_get_server_info(c->db);
	bool mariadb = server != NULL && strstr(server, "MariaDB") != NULL;
	unsigned lock_wait = (unsigned)ceil(t);
	char *setup = mariadb ? xasprintf("SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION,"
	                                  "NO_AUTO_VALUE_ON_ZERO', max_statement_time = %.3f, "
	                                  "innodb_lock_wait_timeout = %u",
	                                  t, lock_wait > 0 ? lock_wait : 1)
	                      : xasprintf("SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION,"
	                                  "NO_AUTO_VALUE_ON_ZERO', max_execution_time = %lu, "
	                                  "innodb_lock_wait_timeout = %u",
	                                  (unsigned long)ceil(t * 1000), lock_wait > 0 ? lock_wait : 1);
	int rc = run_simple(c, setup);
	free(setup);
	if (rc == 0)
		rc = run_simple(c, "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED");
	if (rc < 0) {
		*error_r = xasprintf("mysql: cannot set the session up: %s", c->last_msg);
		goto fail;
	}
	clear_error(c);
	return (struct sql_conn *)(void *)c;
fail:
	if (password != NULL) {
		explicit_bzero(password, strlen(password));
		free(password);
	}
	sql_conninfo_free(&ci);
	my_disconnect((struct sql_conn *)(void *)c);
	return NULL;
}

static int my_exec(struct sql_conn *conn, const char *script)
{
	struct my_conn *c = CONN(conn);
	if (mysql_set_server_option(c->db, MYSQL_OPTION_MULTI_STATEMENTS_ON) != 0) {
		set_db_error(c);
		return -1;
	}
	int rc = 0;
	if (mysql_real_query(c->db, script, strlen(script)) != 0) {
		set_db_error(c);
		rc = -1;
	} else {
		for (;;) {
			MYSQL_RES *res = mysql_store_result(c->db);
			if (res != NULL)
				mysql_free_result(res);
			int next = mysql_next_result(c->db);
			if (next > 0) {
				set_db_error(c);
				rc = -1;
				break;
			}
			if (next < 0)
				break;
		}
	}
	if (mysql_set_server_option(c->db, MYSQL_OPTION_MULTI_STATEMENTS_OFF) != 0 && rc == 0) {
		set_db_error(c);
		rc = -1;
	}
	return rc;
}

/* ---- statements ------------------------------------------------------------------------ */

static void params_clear(struct my_stmt *s)
{
	for (unsigned i = 0; i < s->nparams; i++) {
		struct my_param *p = &s->params[i];
		if (p->text != NULL) {
			explicit_bzero(p->text, p->len); /* may be a key or a password */
			xfree(&p->text);
		}
		p->type = MYSQL_TYPE_NULL;
		p->is_null = 1;
		p->len = 0;
		p->num = 0;
	}
}

static void my_reset(struct sql_stmt *st)
{
	struct my_stmt *s = STMT(st);
	if (s->has_result)
		mysql_stmt_free_result(s->stmt);
	s->has_result = false;
	s->executed = false;
	s->changes = 0;
	params_clear(s);
}

static struct sql_stmt *my_prepare(struct sql_conn *conn, const char *sql)
{
	struct my_conn *c = CONN(conn);
	struct sql_stmtcache_entry *e = sql_stmtcache_find(&c->stmts, sql);
	if (e != NULL) {
		struct sql_stmt *st =
		        (struct sql_stmt *)(void *)SQL_STMTCACHE_OWNER(e, struct my_stmt, cached);
		my_reset(st);
		return st;
	}
	struct my_stmt *s = xcalloc(1, sizeof(*s));
	s->conn = c;
	s->stmt = mysql_stmt_init(c->db);
	if (s->stmt == NULL) {
		set_db_error(c);
		free(s);
		return NULL;
	}
	if (mysql_stmt_prepare(s->stmt, sql, strlen(sql)) != 0) {
		set_stmt_error(s);
		stmt_free(s);
		return NULL;
	}
	s->nparams = (unsigned)mysql_stmt_param_count(s->stmt);
	if (s->nparams > 0) {
		s->params = xcalloc(s->nparams, sizeof(*s->params));
		s->pbind = xcalloc(s->nparams, sizeof(*s->pbind));
	}
	s->ncols = mysql_stmt_field_count(s->stmt);
	if (s->ncols > 0) {
		s->cols = xcalloc(s->ncols, sizeof(*s->cols));
		s->cbind = xcalloc(s->ncols, sizeof(*s->cbind));
		for (unsigned i = 0; i < s->ncols; i++) {
			struct my_col *col = &s->cols[i];
			col->cap = 256;
			col->buf = xmalloc(col->cap);
			s->cbind[i].buffer_type = MYSQL_TYPE_STRING;
			s->cbind[i].buffer = col->buf;
			/* one byte kept for the terminator: a value that fills the
			 * buffer exactly is reported as truncated and fetched again */
			s->cbind[i].buffer_length = col->cap - 1;
			s->cbind[i].length = &col->len;
			s->cbind[i].is_null = &col->is_null;
			s->cbind[i].error = &col->error;
		}
		if (mysql_stmt_bind_result(s->stmt, s->cbind) != 0) {
			set_stmt_error(s);
			stmt_free(s);
			return NULL;
		}
	}
	params_clear(s);
	sql_stmtcache_add(&c->stmts, &s->cached, sql);
	return (struct sql_stmt *)(void *)s;
}

static struct my_param *param_at(struct my_stmt *s, unsigned idx)
{
	if (idx == 0 || idx > s->nparams) {
		set_error(s->conn, CR_INVALID_PARAMETER_NO, "HY000", "parameter number out of range");
		return NULL;
	}
	struct my_param *p = &s->params[idx - 1];
	if (p->text != NULL) {
		explicit_bzero(p->text, p->len);
		xfree(&p->text);
	}
	return p;
}

static int my_bind_blob(struct sql_stmt *st, unsigned idx, const void *data, size_t len)
{
	struct my_param *p = param_at(STMT(st), idx);
	if (p == NULL)
		return -1;
	p->type = MYSQL_TYPE_BLOB;
	p->text = xmalloc(len + 1);
	if (len > 0)
		memcpy(p->text, data, len);
	p->text[len] = '\0';
	p->len = (unsigned long)len;
	p->is_null = 0;
	return 0;
}

static int my_bind_null(struct sql_stmt *st, unsigned idx)
{
	struct my_param *p = param_at(STMT(st), idx);
	if (p == NULL)
		return -1;
	p->type = MYSQL_TYPE_NULL;
	p->is_null = 1;
	return 0;
}

static int my_bind_text(struct sql_stmt *st, unsigned idx, const char *value)
{
	if (value == NULL)
		return my_bind_null(st, idx);
	if (my_bind_blob(st, idx, value, strlen(value)) < 0)
		return -1;
	STMT(st)->params[idx - 1].type = MYSQL_TYPE_STRING;
	return 0;
}

static int my_bind_int64(struct sql_stmt *st, unsigned idx, int64_t value)
{
	struct my_param *p = param_at(STMT(st), idx);
	if (p == NULL)
		return -1;
	p->type = MYSQL_TYPE_LONGLONG;
	p->num = (long long)value;
	p->is_null = 0;
	return 0;
}

/* Fetch the columns a fetch truncated, into buffers grown to fit. */
static int fetch_truncated(struct my_stmt *s)
{
	for (unsigned i = 0; i < s->ncols; i++) {
		struct my_col *col = &s->cols[i];
		if (!col->error || col->is_null)
			continue;
		if (col->len + 1 > col->cap) {
			col->cap = col->len + 1;
			col->buf = xrealloc(col->buf, col->cap);
		}
		MYSQL_BIND b = s->cbind[i];
		b.buffer = col->buf;
		b.buffer_length = col->cap;
		unsigned long full = col->len;
		b.length = &col->len;
		if (mysql_stmt_fetch_column(s->stmt, &b, i, 0) != 0) {
			set_stmt_error(s);
			return -1;
		}
		col->len = full;
		col->error = 0;
		/* Later rows fetch into the bigger buffer (less the terminator). */
		s->cbind[i].buffer = col->buf;
		s->cbind[i].buffer_length = col->cap - 1;
		if (mysql_stmt_bind_result(s->stmt, s->cbind) != 0) {
			set_stmt_error(s);
			return -1;
		}
	}
	return 0;
}

static enum sql_step fetch_row(struct my_stmt *s)
{
	int rc = mysql_stmt_fetch(s->stmt);
	if (rc == MYSQL_NO_DATA)
		return SQL_STEP_DONE;
	if (rc == MYSQL_DATA_TRUNCATED) {
		if (fetch_truncated(s) < 0)
			return SQL_STEP_ERROR;
		rc = 0;
	}
	if (rc != 0) {
		set_stmt_error(s);
		return SQL_STEP_ERROR;
	}
	for (unsigned i = 0; i < s->ncols; i++)
		if (!s->cols[i].is_null)
			s->cols[i]
			        .buf[s->cols[i].len < s->cols[i].cap ? s->cols[i].len : s->cols[i].cap - 1] =
			        '\0';
	return SQL_STEP_ROW;
}

static enum sql_step my_step(struct sql_stmt *st)
{
	struct my_stmt *s = STMT(st);
	if (s->executed)
		return s->ncols > 0 ? fetch_row(s) : SQL_STEP_DONE;
	s->executed = true;
	for (unsigned i = 0; i < s->nparams; i++) {
		struct my_param *p = &s->params[i];
		MYSQL_BIND *b = &s->pbind[i];
		memset(b, 0, sizeof(*b));
		b->buffer_type = p->type;
		b->is_null = &p->is_null;
		switch (p->type) {
		case MYSQL_TYPE_LONGLONG: b->buffer = &p->num; break;
		case MYSQL_TYPE_STRING:
		case MYSQL_TYPE_BLOB:
			b->buffer = p->text;
			b->buffer_length = p->len;
			b->length = &p->len;
			break;
		default: break;
		}
	}
	if ((s->nparams > 0 && mysql_stmt_bind_param(s->stmt, s->pbind) != 0) ||
	    mysql_stmt_execute(s->stmt) != 0) {
		set_stmt_error(s);
		return SQL_STEP_ERROR;
	}
	if (s->ncols == 0) {
		my_ulonglong n = mysql_stmt_affected_rows(s->stmt);
		s->changes = n == (my_ulonglong)-1 ? 0 : (uint64_t)n;
		return SQL_STEP_DONE;
	}
	if (mysql_stmt_store_result(s->stmt) != 0) {
		set_stmt_error(s);
		return SQL_STEP_ERROR;
	}
	s->has_result = true;
	return fetch_row(s);
}

static bool my_column_is_null(struct sql_stmt *st, unsigned col)
{
	struct my_stmt *s = STMT(st);
	return col >= s->ncols || s->cols[col].is_null;
}

static const char *my_column_text(struct sql_stmt *st, unsigned col)
{
	struct my_stmt *s = STMT(st);
	if (col >= s->ncols || s->cols[col].is_null)
		return NULL;
	return s->cols[col].buf;
}

static int64_t my_column_int64(struct sql_stmt *st, unsigned col)
{
	const char *v = my_column_text(st, col);
	return v != NULL ? (int64_t)strtoll(v, NULL, 10) : 0;
}

static const void *my_column_blob(struct sql_stmt *st, unsigned col, size_t *len_r)
{
	struct my_stmt *s = STMT(st);
	if (col >= s->ncols || s->cols[col].is_null) {
		*len_r = 0;
		return NULL;
	}
	*len_r = s->cols[col].len;
	return s->cols[col].buf;
}

static uint64_t my_changes(struct sql_stmt *st)
{
	return STMT(st)->changes;
}

/* ---- transactions ------------------------------------------------------------------------ */

static int my_begin(struct sql_conn *conn, bool write)
{
	struct my_conn *c = CONN(conn);
	if (run_simple(c, "START TRANSACTION") < 0)
		return -1;
	c->in_tx = true;
	return 0;
}

static int my_commit(struct sql_conn *conn)
{
	struct my_conn *c = CONN(conn);
	if (mysql_commit(c->db) != 0) {
		set_db_error(c);
		return -1; /* the caller rolls back */
	}
	c->in_tx = false;
	return 0;
}

static void my_rollback(struct sql_conn *conn)
{
	struct my_conn *c = CONN(conn);
	if (!c->in_tx)
		return;
	c->in_tx = false;
	if (c->broken)
		return; /* the server rolled it back when the connection went */
	unsigned code = c->last_code;
	char state[6];
	memcpy(state, c->last_state, sizeof(state));
	char *msg = c->last_msg != NULL ? xstrdup(c->last_msg) : NULL;
	if (mysql_rollback(c->db) != 0) {
		set_db_error(c);
		log_warning("mysql: rollback failed: %s", c->last_msg);
	}
	/* Keep the error that caused the rollback (and the broken flag a
	 * failed rollback may have set). */
	c->last_code = code;
	memcpy(c->last_state, state, sizeof(state));
	free(c->last_msg);
	c->last_msg = msg;
}

static const char *const my_migrations[] = {
	"migrations/mysql/002-offline.sql",       "migrations/mysql/003-user-data.sql",
	"migrations/mysql/004-blocklist.sql",     "migrations/mysql/005-privacy.sql",
	"migrations/mysql/006-shared-roster.sql", "migrations/mysql/007-vcard-search.sql",
	"migrations/mysql/008-muc.sql",           "migrations/mysql/009-pubsub.sql",
	"migrations/mysql/010-mam.sql",           "migrations/mysql/011-sha512-fast.sql",
	"migrations/mysql/012-fast-seed.sql",     "migrations/mysql/013-scram-cache.sql",
	"migrations/mysql/014-offline-token.sql", "migrations/mysql/015-subscribe-stanza.sql",
};
_Static_assert(ARRAY_SIZE(my_migrations) == SQL_SCHEMA_VERSION - 1,
               "one migration script per schema version after the first");

static const struct sql_dialect my_dialect = {
	.name = "mysql",
	.schema_file = "mysql.sql",
	.upsert = SQL_UPSERT_ON_DUPLICATE_KEY,
	.migrations = my_migrations,
};

const struct sql_driver_vfuncs sql_driver_mysql = {
	.name = "mysql",
	.dialect = &my_dialect,
	.describe = my_describe,
	.is_new = NULL,
	.connect = my_connect,
	.disconnect = my_disconnect,
	.is_broken = my_is_broken,
	.ping = my_ping,
	.exec = my_exec,
	.prepare = my_prepare,
	.bind_text = my_bind_text,
	.bind_int64 = my_bind_int64,
	.bind_blob = my_bind_blob,
	.bind_null = my_bind_null,
	.step = my_step,
	.column_is_null = my_column_is_null,
	.column_text = my_column_text,
	.column_int64 = my_column_int64,
	.column_blob = my_column_blob,
	.changes = my_changes,
	.reset = my_reset,
	.begin = my_begin,
	.commit = my_commit,
	.rollback = my_rollback,
	.error_class = my_error_class,
	.error_message = my_error_message,
};
