/*
 * The PostgreSQL driver of sql.h, over libpq's asynchronous API driven
 * synchronously: each call sends its query (PQsend*), then waits in poll()
 * on the connection's socket while the server keeps answering.
 *
 * Threads: a connection belongs to one worker thread (libpq connections
 * are not shared between threads); at start-up sql-store.c and parleyctl
 * also use one connection on the calling thread before any worker runs.
 *
 * How the interface maps onto libpq:
 * - the SQL store writes '?' placeholders; prepare() rewrites them to $1,
 *   $2, ... (the SQL we get never has a '?' inside a literal) and prepares
 *   the statement once per connection under a generated name ("p1", ...);
 *   the cache (sql-stmtcache.h) is keyed by the original text;
 * - parameters are sent as text (the server casts them to the column's
 *   type), blobs in binary; results come back as text in one PGresult,
 *   which step() walks row by row;
 * - binding copies nothing but blobs: a text parameter is sent from the
 *   caller's string at the first step (sql.h: it stays valid until then),
 *   an integer is formatted into the statement's own slot for it; a
 *   multi-row insert binds hundreds of parameters per statement;
 * - the session is set up at connect: statement_timeout = the storage
 *   timeout, client_encoding UTF8, application_name parleyd, and the
 *   connect_timeout of the conninfo defaults to the storage timeout too;
 * - the read timeout, as the mysql driver's: the storage timeout rounded up
 *   plus 5 s, so the server's statement_timeout always speaks first.  A
 *   server that sends nothing for that long during a call (frozen,
 *   partitioned away) gets its connection dropped: the call fails as a
 *   lost connection does (is_broken), and sql-store.c's reconnection and
 *   outage handling take over.  No cancel request is sent: it would go
 *   to the same silent server, and PQcancel waits for its answer without a
 *   time limit; the closed socket ends the session when the server reads
 *   again (after whatever it had already received, a COMMIT included).
 *   exec() (migration scripts) waits without this limit: the server
 *   answers a script only at its end;
 * - a COMMIT whose answer never came (the connection lost while it
 *   waited) is looked up, not guessed: begin(write) fetches the
 *   transaction's id and the server's start time with BEGIN in one round
 *   trip (so every write transaction takes an id, even one that ends up
 *   writing nothing), and commit then asks txid_status() on a new
 *   connection made with the same settings (see commit_outcome for how
 *   long), polling while the server still has it in progress.
 *   Committed: commit succeeds (the job is done; the store replaces the
 *   lost connection before the next one).  Rolled back, or unknown (no
 *   new connection, no answer, a server started since, still in
 *   progress): commit fails as a lost connection does, and the job fails
 *   or runs again on a new connection; only when unknown can that store a
 *   row twice.  A COMMIT the read
 *   timeout ended is not looked up (the server is silent: a new connection
 *   would wait as long) and is in doubt: the server applies it if it
 *   wakes, while the job fails or runs again (a job that can find its own
 *   rows, the offline store, waits for the server first: sql-store.c's
 *   sql_q_in_doubt).  Not caught: a crash and
 *   recovery of the same postmaster inside those seconds, after which the
 *   id may belong to another transaction;
 * - SQLSTATE classes decide enum sql_error: 08 (connection), 57P01..57P03
 *   (shutdown, cannot connect now), 53 (resources), 40001/40P01
 *   (serialization, deadlock), 57014 (statement timeout), 55P03 (lock not
 *   available) are temporary; 23505 (unique) is a constraint; the rest is
 *   permanent.  A connection whose PQstatus is CONNECTION_BAD is broken.
 *
 * The password comes from storage.password or is read from
 * storage.password_file at each connect (so a rotated file is picked up on
 * reconnection); it is passed to libpq as a parameter, wiped after use and
 * never logged; describe() drops any password= from the conninfo.
 * TLS is libpq's: sslmode, sslrootcert, sslcert, sslkey in the conninfo.
 */
#include "storage/sql.h"
#include "storage/sql-stmtcache.h"
#include "lib/log.h"

#include <libpq-fe.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <time.h>

struct pgsql_stmt {
	struct sql_stmtcache_entry cached; /* in conn->stmts, by the text the store gave */
	struct pgsql_conn *conn;
	char name[16]; /* the server-side prepared statement */
	unsigned nparams;
	/* Bound parameters, nparams of each: values[i] is the caller's text,
	 * ints[i], or a malloc'd blob (owned[i]). */
	const char **values;
	int *lengths, *formats;
	char (*ints)[24];
	bool *owned;
	PGresult *res; /* result of the current execution */
	int row;       /* the current row (-1 before the first step) */
	bool executed;
	uint64_t changes;
	unsigned char *blob; /* column_blob's decoded value */
};

struct pgsql_conn {
	PGconn *pg;                 /* NULL once dropped (PQstatus says CONNECTION_BAD) */
	double read_timeout;        /* seconds a call waits for the server */
	struct sql_stmtcache stmts; /* the statement cache */
	unsigned next_name;
	char sqlstate[6]; /* of the last error; "" when none or unknown */
	char *last_msg;
	bool failed; /* the last operation failed */
	bool in_tx;
	/* A copy of the settings it was made with: the look-up of a COMMIT
	 * whose answer never came connects again with them. */
	struct storage_config cfg;
	/* The id of the open write transaction (txid_current(), digits), ""
	 * when none: what that look-up asks about. */
	char xid[24];
	/* pg_postmaster_start_time() read with it: the look-up trusts only
	 * the same server, not one restarted or failed over to meanwhile,
	 * where the same id may be another transaction. */
	char boot[48];
	bool timed_out; /* the connection was dropped by the read timeout */
};

#define CONN(c) ((struct pgsql_conn *)(void *)(c))
#define STMT(s) ((struct pgsql_stmt *)(void *)(s))

/* ---- errors ------------------------------------------------------------------ */

static void set_error(struct pgsql_conn *c, const char *sqlstate, const char *msg)
{
	c->failed = true;
	snprintf(c->sqlstate, sizeof(c->sqlstate), "%s", sqlstate != NULL ? sqlstate : "");
	free(c->last_msg);
	/* libpq messages have several lines; keep the log line on one. */
	c->last_msg = sql_message_one_line(xstrdup(msg != NULL ? msg : ""));
	if (c->last_msg[0] == '\0') {
		free(c->last_msg);
		c->last_msg = xstrdup("unknown error");
	}
}

/* The error of a result (or of the connection when res is NULL). */
static void set_result_error(struct pgsql_conn *c, const PGresult *res)
{
	const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *msg = res != NULL ? PQresultErrorMessage(res) : NULL;
	if (msg == NULL || *msg == '\0')
		msg = PQerrorMessage(c->pg);
	set_error(c, state, msg);
}

static void clear_error(struct pgsql_conn *c)
{
	c->failed = false;
	c->sqlstate[0] = '\0';
}

/* ---- describe, connect ---------------------------------------------------------- */

/* The conninfo without its password, for messages: "host=db dbname=xmpp". */
static char *pgsql_describe(const struct storage_config *cfg)
{
	const char *dsn = cfg->dsn != NULL ? cfg->dsn : "";
	char *err = NULL;
	PQconninfoOption *opts = PQconninfoParse(dsn, &err);
	if (opts == NULL) {
		PQfreemem(err);
		return xstrdup("pgsql:(unparsable dsn)");
	}
	struct buf b = { 0 };
	buf_append_str(&b, "pgsql:");
	bool first = true;
	for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
		if (o->val == NULL || strcmp(o->keyword, "password") == 0)
			continue;
		buf_printf(&b, "%s%s=%s", first ? "" : " ", o->keyword, o->val);
		first = false;
	}
	PQconninfoFree(opts);
	return buf_steal(&b);
}

/* The password: storage.password, else the first line of
 * storage.password_file (sql_read_password_file), else NULL (libpq's own
 * ~/.pgpass or none).  An empty first line is an error here: libpq would
 * only send an empty password the server refuses.  0, or -1 with *error_r. */
static int read_password(const struct storage_config *cfg, char **pw_r, char **error_r)
{
	*pw_r = NULL;
	if (cfg->password != NULL && *cfg->password != '\0') {
		*pw_r = xstrdup(cfg->password);
		return 0;
	}
	if (cfg->password_file == NULL || *cfg->password_file == '\0')
		return 0;
	char *pw = sql_read_password_file(cfg->password_file, error_r);
	if (pw == NULL)
		return -1;
	if (*pw == '\0') {
		free(pw);
		*error_r = xasprintf("the password file %s is empty", cfg->password_file);
		return -1;
	}
	*pw_r = pw;
	return 0;
}

static void stmt_clear_bindings(struct pgsql_stmt *s);

static void stmt_free(struct sql_stmtcache_entry *e, void *ctx)
{
	struct pgsql_stmt *s = SQL_STMTCACHE_OWNER(e, struct pgsql_stmt, cached);
	PQclear(s->res);
	stmt_clear_bindings(s);
	free(s->values);
	free(s->lengths);
	free(s->formats);
	free(s->ints);
	free(s->owned);
	PQfreemem(s->blob);
	free(s);
}

static void pgsql_disconnect(struct sql_conn *conn)
{
	struct pgsql_conn *c = CONN(conn);
	if (c == NULL)
		return;
	sql_stmtcache_free(&c->stmts, stmt_free, NULL);
	PQfinish(c->pg);
	free(c->last_msg);
	storage_config_free(&c->cfg);
	free(c);
}

/* ---- sending and waiting ------------------------------------------------------ */

/* The connection is lost or the server went silent: close it, so that
 * is_broken says so and nothing waits on it again.  The error is msg,
 * class 08 (connection exception). */
static void drop_connection(struct pgsql_conn *c, const char *msg)
{
	set_error(c, "08006", msg);
	PQfinish(c->pg);
	c->pg = NULL;
	c->timed_out = false;
}

/* After a PQsend* that returned sent: flush the query and wait until its
 * results are in, giving up when the server sends nothing for
 * c->read_timeout (bounded; else no limit).  The result PQexec would give
 * (the first error, else the last result), to PQclear; NULL, with the
 * error on c, when the query could not be sent, the connection broke or
 * the server fell silent (the connection is then dropped). */
static PGresult *await_result(struct pgsql_conn *c, int sent, bool bounded)
{
	if (c->pg == NULL) {
		set_error(c, "08003", "no connection to the server");
		return NULL;
	}
	if (!sent) {
		/* refused by libpq itself (too many parameters, no memory) on a
		 * good connection: an error of this statement, not of the link */
		if (PQstatus(c->pg) == CONNECTION_OK)
			set_error(c, "XX000", PQerrorMessage(c->pg));
		else
			drop_connection(c, PQerrorMessage(c->pg));
		return NULL;
	}
	double deadline = mono_now() + c->read_timeout;
	PGresult *keep = NULL;
	for (;;) {
		int unsent = PQflush(c->pg);
		if (unsent < 0)
			break;
		if (unsent == 0 && !PQisBusy(c->pg)) {
			PGresult *res = PQgetResult(c->pg);
			if (res == NULL)
				return keep;
			ExecStatusType rs = PQresultStatus(res);
			if (rs == PGRES_COPY_IN || rs == PGRES_COPY_OUT || rs == PGRES_COPY_BOTH) {
				/* COPY would hand out a new result forever: the store
				 * never sends one, and the connection is stuck in it */
				PQclear(res);
				PQclear(keep);
				drop_connection(c, "COPY is not supported; connection dropped");
				return NULL;
			}
			if (keep != NULL && PQresultStatus(keep) == PGRES_FATAL_ERROR) {
				PQclear(res);
			} else {
				PQclear(keep);
				keep = res;
			}
			continue;
		}
		double left = deadline - mono_now();
		if (bounded && left <= 0) {
			PQclear(keep);
			char msg[128];
			snprintf(msg, sizeof(msg),
			         "read timeout: nothing from the server for %.0f s; connection dropped",
			         c->read_timeout);
			drop_connection(c, msg);
			c->timed_out = true;
			return NULL;
		}
		/* Bytes TLS or GSS already read and decrypted are not on the
		 * socket any more: take them in before poll() waits for more. */
		if (unsent == 0 && (PQsslInUse(c->pg) || PQgssEncInUse(c->pg))) {
			if (!PQconsumeInput(c->pg))
				break;
			if (!PQisBusy(c->pg))
				continue;
		}
		struct pollfd pfd = { .fd = PQsocket(c->pg), .events = POLLIN };
		if (unsent > 0)
			pfd.events |= POLLOUT;
		int n = poll(&pfd, 1, bounded ? (int)ceil(left * 1000) : -1);
		if (n < 0 && errno != EINTR)
			break;
		if (n <= 0)
			continue;
		/* libpq reads what came, also while it still has bytes to send. */
		if ((pfd.revents & (POLLIN | POLLERR | POLLHUP)) != 0 && !PQconsumeInput(c->pg))
			break;
		/* The server is alive: a long result or script may go on. */
		deadline = mono_now() + c->read_timeout;
	}
	PQclear(keep);
	drop_connection(c, PQerrorMessage(c->pg));
	return NULL;
}

/* Run sql (one command, or a script of several) by the simple query
 * protocol: the result to PQclear, or NULL (error on c). */
static PGresult *run_query(struct pgsql_conn *c, const char *sql, bool bounded)
{
	return await_result(c, c->pg != NULL && PQsendQuery(c->pg, sql), bounded);
}

/* Run one command, or a script of several (bounded: false, see
 * pgsql_exec), with no result rows; 0 or -1 (error on c). */
static int exec_simple(struct pgsql_conn *c, const char *sql, bool bounded)
{
	PGresult *res = run_query(c, sql, bounded);
	if (res == NULL)
		return -1;
	ExecStatusType st = PQresultStatus(res);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY) {
		set_result_error(c, res);
		PQclear(res);
		return -1;
	}
	PQclear(res);
	clear_error(c);
	return 0;
}

static struct sql_conn *pgsql_connect(const struct storage_config *cfg, char **error_r)
{
	if (cfg->dsn == NULL || *cfg->dsn == '\0') {
		*error_r = xstrdup("pgsql: no connection string (storage.dsn)");
		return NULL;
	}
	char *pw = NULL;
	if (read_password(cfg, &pw, error_r) < 0)
		return NULL;
	double t = cfg->timeout > 0 ? cfg->timeout : 10;
	char ctimeout[32];
	/* libpq's connect_timeout is whole seconds, at least 2. */
	snprintf(ctimeout, sizeof(ctimeout), "%d", t < 2 ? 2 : (int)(t + 0.5));
	/* Earlier keywords are defaults the conninfo (dbname, expanded) may
	 * override; the password after it overrides one written there. */
	const char *keys[8], *vals[8];
	size_t n = 0;
	keys[n] = "connect_timeout";
	vals[n++] = ctimeout;
	keys[n] = "application_name";
	vals[n++] = "parleyd";
	keys[n] = "client_encoding";
	vals[n++] = "UTF8";
	keys[n] = "dbname";
	vals[n++] = cfg->dsn;
	if (pw != NULL) {
		keys[n] = "password";
		vals[n++] = pw;
	}
	keys[n] = NULL;
	vals[n] = NULL;
	struct pgsql_conn *c = xcalloc(1, sizeof(*c));
	storage_config_copy(&c->cfg, cfg);
	c->pg = PQconnectdbParams(keys, vals, 1);
	if (pw != NULL) {
		explicit_bzero(pw, strlen(pw));
		free(pw);
	}
	if (c->pg == NULL || PQstatus(c->pg) != CONNECTION_OK) {
		set_error(c, NULL, c->pg != NULL ? PQerrorMessage(c->pg) : "out of memory");
		*error_r = xasprintf("pgsql: cannot connect: %s", c->last_msg);
		pgsql_disconnect((struct sql_conn *)(void *)c);
		return NULL;
	}
	/* Queries are sent without blocking and waited for in poll(). */
	c->read_timeout = ceil(t) + 5;
	if (PQsetnonblocking(c->pg, 1) != 0) {
		set_error(c, NULL, PQerrorMessage(c->pg));
		*error_r = xasprintf("pgsql: cannot set up the connection: %s", c->last_msg);
		pgsql_disconnect((struct sql_conn *)(void *)c);
		return NULL;
	}
	/* Every statement of this session ends within the storage timeout. */
	char set[96];
	long ms = t * 1000 > 3600000 ? 3600000 : (long)(t * 1000);
	snprintf(set, sizeof(set), "SET statement_timeout = %ld", ms);
	if (exec_simple(c, set, true) < 0) {
		*error_r = xasprintf("pgsql: cannot set up the session: %s", c->last_msg);
		pgsql_disconnect((struct sql_conn *)(void *)c);
		return NULL;
	}
	return (struct sql_conn *)(void *)c;
}

static bool pgsql_is_broken(struct sql_conn *conn)
{
	return PQstatus(CONN(conn)->pg) != CONNECTION_OK;
}

static int pgsql_ping(struct sql_conn *conn)
{
	struct pgsql_conn *c = CONN(conn);
	if (PQstatus(c->pg) != CONNECTION_OK)
		return -1;
	/* An empty query is a round trip that finds a dead server or socket. */
	return exec_simple(c, "", true);
}

static int pgsql_exec(struct sql_conn *conn, const char *script)
{
	/* A script of several statements (simple query protocol): the
	 * migrations of `parleyctl db migrate`.  Each statement has the
	 * statement_timeout, but the server answers only after the last one,
	 * so the read timeout does not apply. */
	return exec_simple(CONN(conn), script, false);
}

/* ---- statements ----------------------------------------------------------------- */

/* Rewrite '?' to $1, $2, ...; *n_r gets the count.  Malloc'd. */
static char *rewrite_placeholders(const char *sql, unsigned *n_r)
{
	struct buf b = { 0 };
	unsigned n = 0;
	for (const char *p = sql; *p != '\0'; p++) {
		if (*p == '?')
			buf_printf(&b, "$%u", ++n);
		else
			buf_append(&b, p, 1);
	}
	*n_r = n;
	return buf_steal(&b);
}

static void stmt_clear_result(struct pgsql_stmt *s)
{
	PQclear(s->res);
	s->res = NULL;
	s->row = -1;
	s->executed = false;
	s->changes = 0;
	PQfreemem(s->blob);
	s->blob = NULL;
}

static void stmt_clear_bindings(struct pgsql_stmt *s)
{
	for (unsigned i = 0; i < s->nparams; i++) {
		if (s->owned[i]) {
			char *v = (char *)s->values[i];
			explicit_bzero(v, (size_t)s->lengths[i]);
			free(v);
			s->owned[i] = false;
		}
		s->values[i] = NULL;
		s->lengths[i] = 0;
		s->formats[i] = 0;
	}
}

static struct sql_stmt *pgsql_prepare(struct sql_conn *conn, const char *sql)
{
	struct pgsql_conn *c = CONN(conn);
	struct sql_stmtcache_entry *e = sql_stmtcache_find(&c->stmts, sql);
	if (e != NULL) {
		struct pgsql_stmt *s = SQL_STMTCACHE_OWNER(e, struct pgsql_stmt, cached);
		stmt_clear_result(s);
		stmt_clear_bindings(s);
		return (struct sql_stmt *)(void *)s;
	}
	unsigned n = 0;
	char *text = rewrite_placeholders(sql, &n);
	char name[16];
	snprintf(name, sizeof(name), "p%u", ++c->next_name);
	PGresult *res = await_result(c, c->pg != NULL && PQsendPrepare(c->pg, name, text, 0, NULL), true);
	free(text);
	if (res == NULL)
		return NULL;
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		set_result_error(c, res);
		PQclear(res);
		return NULL;
	}
	PQclear(res);
	struct pgsql_stmt *s = xcalloc(1, sizeof(*s));
	s->conn = c;
	memcpy(s->name, name, sizeof(name));
	s->nparams = n;
	s->values = xcalloc(n > 0 ? n : 1, sizeof(*s->values));
	s->lengths = xcalloc(n > 0 ? n : 1, sizeof(*s->lengths));
	s->formats = xcalloc(n > 0 ? n : 1, sizeof(*s->formats));
	s->ints = xcalloc(n > 0 ? n : 1, sizeof(*s->ints));
	s->owned = xcalloc(n > 0 ? n : 1, sizeof(*s->owned));
	s->row = -1;
	sql_stmtcache_add(&c->stmts, &s->cached, sql);
	return (struct sql_stmt *)(void *)s;
}

/* Parameter idx (from 1) of s: value, kept as it is (owned: a malloc'd
 * blob, freed at the next bind or reset). */
static int bind_value(struct pgsql_stmt *s, unsigned idx, const char *value, int len, int format, bool owned)
{
	if (idx < 1 || idx > s->nparams) {
		if (owned)
			free((char *)value);
		set_error(s->conn, NULL, "parameter index out of range");
		return -1;
	}
	unsigned i = idx - 1;
	if (s->owned[i])
		free((char *)s->values[i]);
	s->values[i] = value;
	s->lengths[i] = len;
	s->formats[i] = format;
	s->owned[i] = owned;
	return 0;
}

/* Text goes as a C string (libpq ignores the length of a text parameter). */
static int pgsql_bind_text(struct sql_stmt *st, unsigned idx, const char *value)
{
	return bind_value(STMT(st), idx, value, 0, 0, false);
}

static int pgsql_bind_int64(struct sql_stmt *st, unsigned idx, int64_t value)
{
	struct pgsql_stmt *s = STMT(st);
	if (idx < 1 || idx > s->nparams)
		return bind_value(s, idx, NULL, 0, 0, false);
	/* Formatted by hand: snprintf's cost shows in multi-row inserts. */
	char tmp[24], *p = tmp + sizeof(tmp);
	uint64_t u = value < 0 ? 0 - (uint64_t)value : (uint64_t)value;
	*--p = '\0';
	do
		*--p = (char)('0' + u % 10);
	while ((u /= 10) != 0);
	if (value < 0)
		*--p = '-';
	char *slot = s->ints[idx - 1];
	memcpy(slot, p, (size_t)(tmp + sizeof(tmp) - p));
	return bind_value(s, idx, slot, 0, 0, false);
}

static int pgsql_bind_blob(struct sql_stmt *st, unsigned idx, const void *data, size_t len)
{
	char *v = xmalloc(len > 0 ? len : 1);
	if (len > 0)
		memcpy(v, data, len);
	return bind_value(STMT(st), idx, v, (int)len, 1, true);
}

static int pgsql_bind_null(struct sql_stmt *st, unsigned idx)
{
	return bind_value(STMT(st), idx, NULL, 0, 0, false);
}

static enum sql_step pgsql_step(struct sql_stmt *st)
{
	struct pgsql_stmt *s = STMT(st);
	struct pgsql_conn *c = s->conn;
	if (!s->executed) {
		s->executed = true;
		s->res = await_result(c,
		                      c->pg != NULL &&
		                              PQsendQueryPrepared(c->pg, s->name, (int)s->nparams, s->values,
		                                                  s->lengths, s->formats, 0),
		                      true);
		if (s->res == NULL)
			return SQL_STEP_ERROR;
		ExecStatusType rs = PQresultStatus(s->res);
		if (rs != PGRES_COMMAND_OK && rs != PGRES_TUPLES_OK) {
			set_result_error(c, s->res);
			PQclear(s->res);
			s->res = NULL;
			return SQL_STEP_ERROR;
		}
		clear_error(c);
		const char *ct = PQcmdTuples(s->res);
		s->changes = ct != NULL && *ct != '\0' ? strtoull(ct, NULL, 10) : 0;
		s->row = -1;
	}
	PQfreemem(s->blob);
	s->blob = NULL;
	if (s->res != NULL && s->row + 1 < PQntuples(s->res)) {
		s->row++;
		return SQL_STEP_ROW;
	}
	return SQL_STEP_DONE;
}

static bool pgsql_column_is_null(struct sql_stmt *st, unsigned col)
{
	struct pgsql_stmt *s = STMT(st);
	return s->res == NULL || s->row < 0 || PQgetisnull(s->res, s->row, (int)col);
}

static const char *pgsql_column_text(struct sql_stmt *st, unsigned col)
{
	struct pgsql_stmt *s = STMT(st);
	if (pgsql_column_is_null(st, col))
		return NULL;
	return PQgetvalue(s->res, s->row, (int)col);
}

static int64_t pgsql_column_int64(struct sql_stmt *st, unsigned col)
{
	const char *v = pgsql_column_text(st, col);
	return v != NULL ? (int64_t)strtoll(v, NULL, 10) : 0;
}

static const void *pgsql_column_blob(struct sql_stmt *st, unsigned col, size_t *len_r)
{
	struct pgsql_stmt *s = STMT(st);
	const char *v = pgsql_column_text(st, col);
	*len_r = 0;
	if (v == NULL)
		return NULL;
	PQfreemem(s->blob);
	/* Text format: bytea comes as its escaped (hex) form. */
	s->blob = PQunescapeBytea((const unsigned char *)v, len_r);
	return s->blob;
}

static uint64_t pgsql_changes(struct sql_stmt *st)
{
	return STMT(st)->changes;
}

static void pgsql_reset(struct sql_stmt *st)
{
	struct pgsql_stmt *s = STMT(st);
	stmt_clear_result(s);
	stmt_clear_bindings(s);
}

/* ---- transactions ---------------------------------------------------------------- */

static void pgsql_rollback(struct sql_conn *conn);

/* A write transaction learns its id in the same round trip as BEGIN, so
 * that a COMMIT whose answer is lost can be looked up (commit_outcome). */
static int pgsql_begin(struct sql_conn *conn, bool write)
{
	struct pgsql_conn *c = CONN(conn);
	c->xid[0] = '\0';
	if (!write) {
		if (exec_simple(c, "BEGIN", true) < 0)
			return -1;
		c->in_tx = true;
		return 0;
	}
	PGresult *res = run_query(
	        c, "BEGIN; SELECT txid_current(), extract(epoch FROM pg_postmaster_start_time())::text",
	        true);
	if (res == NULL)
		return -1;
	bool row = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 && PQnfields(res) == 2 &&
	           !PQgetisnull(res, 0, 0) && !PQgetisnull(res, 0, 1);
	const char *v = row ? PQgetvalue(res, 0, 0) : "";
	const char *boot = row ? PQgetvalue(res, 0, 1) : "";
	if (*v == '\0' || strlen(v) >= sizeof(c->xid) || strspn(v, "0123456789") != strlen(v) ||
	    *boot == '\0' || strlen(boot) >= sizeof(c->boot)) {
		if (PQresultStatus(res) == PGRES_FATAL_ERROR)
			set_result_error(c, res);
		else
			set_error(c, "XX000", "BEGIN: no transaction id from txid_current()");
		PQclear(res);
		c->in_tx = true;
		pgsql_rollback(conn);
		return -1;
	}
	snprintf(c->xid, sizeof(c->xid), "%s", v);
	snprintf(c->boot, sizeof(c->boot), "%s", boot);
	PQclear(res);
	clear_error(c);
	c->in_tx = true;
	return 0;
}

/* How long the look-up of a lost COMMIT (commit_outcome) asks and waits
 * while the server still has the transaction in progress (it may not have
 * noticed yet that its client went away); connecting comes on top. */
#define OUTCOME_WAIT 5.0

/* The connection was lost while COMMIT of transaction c->xid waited for its
 * answer: ask the server, on a new connection made with the same settings,
 * what became of it (txid_status, PostgreSQL 10 or later): connecting with
 * a 2 s connect_timeout (libpq's, per address, unless the dsn sets its own;
 * then the session's SET, up to 7 s on a server that stalls), then asking
 * until OUTCOME_WAIT from the start has passed.  1 committed, 0 rolled
 * back, -1 unknown (no new connection, no answer, another server than the
 * transaction's, or still in progress at the end).  c keeps its error. */
static int commit_outcome(struct pgsql_conn *c)
{
	double deadline = mono_now() + OUTCOME_WAIT;
	char *desc = pgsql_describe(&c->cfg);
	struct storage_config cfg;
	storage_config_copy(&cfg, &c->cfg);
	cfg.timeout = 2; /* connect_timeout, and the session's statement_timeout */
	char *err = NULL;
	struct pgsql_conn *o = CONN(pgsql_connect(&cfg, &err));
	storage_config_free(&cfg);
	int outcome = -1;
	char why[160] = "";
	if (o == NULL) {
		snprintf(why, sizeof(why), "cannot connect: %s", err);
		free(err);
		goto out;
	}
	char sql[128];
	snprintf(sql, sizeof(sql),
	         "SELECT txid_status(%s), extract(epoch FROM pg_postmaster_start_time())::text", c->xid);
	for (;;) {
		double left = deadline - mono_now();
		if (left <= 0) {
			snprintf(why, sizeof(why), "no answer within %.0f s", OUTCOME_WAIT);
			break;
		}
		o->read_timeout = left;
		PGresult *res = run_query(o, sql, true);
		if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 ||
		    PQnfields(res) != 2) {
			const char *m = res != NULL ? PQresultErrorMessage(res) : o->last_msg;
			snprintf(why, sizeof(why), "no answer (%s)", m != NULL && *m != '\0' ? m : "?");
			PQclear(res);
			break;
		}
		char v[32], boot[48];
		snprintf(v, sizeof(v), "%s", PQgetisnull(res, 0, 0) ? "" : PQgetvalue(res, 0, 0));
		snprintf(boot, sizeof(boot), "%s", PQgetisnull(res, 0, 1) ? "" : PQgetvalue(res, 0, 1));
		PQclear(res);
		if (strcmp(boot, c->boot) != 0) {
			snprintf(why, sizeof(why),
			         "the server was restarted or is another one (started %s, "
			         "not %s)",
			         boot, c->boot);
			break;
		}
		outcome = strcmp(v, "committed") == 0 ? 1 : strcmp(v, "aborted") == 0 ? 0 : -1;
		if (outcome >= 0)
			break;
		if (strcmp(v, "in progress") != 0 || mono_now() + 0.05 >= deadline) {
			snprintf(why, sizeof(why), "the server says '%s'",
			         *v != '\0' ? v : "no such transaction");
			break;
		}
		struct timespec ts = { .tv_nsec = 50 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	pgsql_disconnect((struct sql_conn *)(void *)o);
out:
	if (outcome >= 0)
		log_notice("storage %s: lost the connection during COMMIT of transaction %s; the "
		           "server says it was %s",
		           desc, c->xid, outcome ? "committed" : "rolled back");
	else
		log_warning("storage %s: lost the connection during COMMIT of transaction %s; its "
		            "outcome is unknown: %s",
		            desc, c->xid, why);
	free(desc);
	return outcome;
}

static int pgsql_commit(struct sql_conn *conn)
{
	struct pgsql_conn *c = CONN(conn);
	bool sent = c->pg != NULL; /* else COMMIT never left: nothing to look up */
	PGresult *res = run_query(c, "COMMIT", true);
	if (res == NULL && sent && c->pg == NULL && c->xid[0] != '\0') {
		/* The answer never came: committed or not, the connection is
		 * gone (is_broken says so, and the store makes a new one). */
		c->in_tx = false;
		int outcome = -1;
		if (c->timed_out) {
			/* a silent server: asking again would wait as long */
			char *desc = pgsql_describe(&c->cfg);
			log_warning("storage %s: no answer to COMMIT of transaction %s within the read "
			            "timeout; its outcome is unknown",
			            desc, c->xid);
			free(desc);
		} else {
			outcome = commit_outcome(c);
		}
		c->xid[0] = '\0';
		if (outcome == 1) {
			clear_error(c);
			return 0;
		}
		return -1;
	}
	c->xid[0] = '\0';
	ExecStatusType st = res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	/* COMMIT of a transaction that failed answers ROLLBACK, not an error. */
	bool ok = st == PGRES_COMMAND_OK && strcmp(PQcmdStatus(res), "COMMIT") == 0;
	if (!ok) {
		if (st == PGRES_COMMAND_OK)
			set_error(c, "25P02", "the transaction was rolled back");
		else if (res != NULL)
			set_result_error(c, res);
	} else {
		clear_error(c);
	}
	PQclear(res);
	c->in_tx = !ok && PQtransactionStatus(c->pg) != PQTRANS_IDLE;
	return ok ? 0 : -1;
}

static void pgsql_rollback(struct sql_conn *conn)
{
	struct pgsql_conn *c = CONN(conn);
	PGTransactionStatusType ts = PQtransactionStatus(c->pg);
	c->in_tx = false;
	c->xid[0] = '\0';
	if (ts == PQTRANS_IDLE || ts == PQTRANS_UNKNOWN)
		return; /* nothing open, or no connection left to roll back on */
	/* Keep the error that caused the rollback. */
	char state[6];
	memcpy(state, c->sqlstate, sizeof(state));
	char *msg = c->last_msg != NULL ? xstrdup(c->last_msg) : NULL;
	bool failed = c->failed;
	PGresult *res = run_query(c, "ROLLBACK", true);
	if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK)
		log_warning("pgsql: rollback failed: %s",
		            res != NULL ? PQresultErrorMessage(res) : c->last_msg);
	PQclear(res);
	if (failed)
		set_error(c, state, msg);
	free(msg);
}

static enum sql_error pgsql_error_class(struct sql_conn *conn)
{
	struct pgsql_conn *c = CONN(conn);
	if (!c->failed)
		return SQL_ERR_NONE;
	const char *s = c->sqlstate;
	if (PQstatus(c->pg) != CONNECTION_OK || *s == '\0')
		return PQstatus(c->pg) != CONNECTION_OK ? SQL_ERR_TEMPORARY : SQL_ERR_PERMANENT;
	if (strcmp(s, "23505") == 0)
		return SQL_ERR_CONSTRAINT;
	if (strncmp(s, "08", 2) == 0 || /* connection exception */
	    strncmp(s, "53", 2) == 0 || /* insufficient resources (disk, memory, connections) */
	    strcmp(s, "57P01") == 0 ||  /* admin shutdown */
	    strcmp(s, "57P02") == 0 ||  /* crash shutdown */
	    strcmp(s, "57P03") == 0 ||  /* cannot connect now (starting up) */
	    strcmp(s, "57014") == 0 ||  /* query cancelled (statement_timeout) */
	    strcmp(s, "40001") == 0 ||  /* serialization failure */
	    strcmp(s, "40P01") == 0 ||  /* deadlock detected */
	    strcmp(s, "55P03") == 0 ||  /* lock not available */
	    strcmp(s, "25P02") == 0)    /* rolled back at commit */
		return SQL_ERR_TEMPORARY;
	return SQL_ERR_PERMANENT;
}

static const char *pgsql_error_message(struct sql_conn *conn)
{
	struct pgsql_conn *c = CONN(conn);
	return c->failed && c->last_msg != NULL ? c->last_msg : "no error";
}

static const char *const pgsql_migrations[] = {
	"migrations/pgsql/002-offline.sql",       "migrations/pgsql/003-user-data.sql",
	"migrations/pgsql/004-blocklist.sql",     "migrations/pgsql/005-privacy.sql",
	"migrations/pgsql/006-shared-roster.sql", "migrations/pgsql/007-vcard-search.sql",
	"migrations/pgsql/008-muc.sql",           "migrations/pgsql/009-pubsub.sql",
	"migrations/pgsql/010-mam.sql",           "migrations/pgsql/011-sha512-fast.sql",
	"migrations/pgsql/012-fast-seed.sql",     "migrations/pgsql/013-scram-cache.sql",
	"migrations/pgsql/014-offline-token.sql", "migrations/pgsql/015-subscribe-stanza.sql",
};
_Static_assert(ARRAY_SIZE(pgsql_migrations) == SQL_SCHEMA_VERSION - 1,
               "one migration script per schema version after the first");

static const struct sql_dialect pgsql_dialect = {
	.name = "pgsql",
	.schema_file = "pgsql.sql",
	.upsert = SQL_UPSERT_ON_CONFLICT,
	.migrations = pgsql_migrations,
};

const struct sql_driver_vfuncs sql_driver_pgsql = {
	.name = "pgsql",
	.dialect = &pgsql_dialect,
	.describe = pgsql_describe,
	.is_new = NULL, /* a DBA creates the database and applies sql/pgsql.sql */
	.connect = pgsql_connect,
	.disconnect = pgsql_disconnect,
	.is_broken = pgsql_is_broken,
	.ping = pgsql_ping,
	.exec = pgsql_exec,
	.prepare = pgsql_prepare,
	.bind_text = pgsql_bind_text,
	.bind_int64 = pgsql_bind_int64,
	.bind_blob = pgsql_bind_blob,
	.bind_null = pgsql_bind_null,
	.step = pgsql_step,
	.column_is_null = pgsql_column_is_null,
	.column_text = pgsql_column_text,
	.column_int64 = pgsql_column_int64,
	.column_blob = pgsql_column_blob,
	.changes = pgsql_changes,
	.reset = pgsql_reset,
	.begin = pgsql_begin,
	.commit = pgsql_commit,
	.rollback = pgsql_rollback,
	.error_class = pgsql_error_class,
	.error_message = pgsql_error_message,
};
