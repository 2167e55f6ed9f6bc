/*
 * The small SQL driver interface under sql-store.c.  A driver is plain
 * blocking code: every function runs on the worker thread that owns the
 * connection (one connection per worker thread; a connection is never used
 * by two threads), except connect/exec/disconnect at start-up which
 * sql-store.c also calls on the loop thread before the loop runs.
 *
 * The SQL text the store (sql-*.c) hands to prepare() is written once for every
 * database: '?' placeholders (a driver whose library wants $1, $2, ...
 * rewrites them; there is never a '?' inside a literal), no identifier
 * quoting, integers for flags (0/1), text for everything else.  What really
 * differs between databases is described by struct sql_dialect.
 */
#ifndef PARLEY_SQL_H
#define PARLEY_SQL_H

#include "storage/storage-config.h"
#include "lib/util.h"

/* The schema version this code reads and writes (sql/<dialect>.sql inserts
 * it into schema_version; migrations bump it).  2: offline_messages;
 * 3: vcards, private_storage, last_activity; 4: blocklist; 5: privacy_lists,
 * privacy_items; 6: shared roster groups (sr_groups, sr_displayed,
 * sr_members); 7: vcard_search; 8: muc_room, muc_affiliation,
 * muc_registered; 9: pubsub_node, pubsub_affiliation, pubsub_subscription,
 * pubsub_item; 10: archive, archive_fts (SQLite), archive_prefs,
 * archive_prefs_jid; 11: fast_tokens, the SCRAM-SHA-512 columns of users;
 * 12: fast_tokens made anew (token_seed); 13: scram_cache;
 * 14: offline_messages.token; 15: roster_items.ask_in_stanza and
 * roster_items.in_roster. */
#define SQL_SCHEMA_VERSION 15

/* Class of the last error on a connection: what sql-store.c may do next. */
enum sql_error {
	SQL_ERR_NONE,
	SQL_ERR_TEMPORARY,  /* connection lost, busy/locked, timeout, disk full: try later */
	SQL_ERR_PERMANENT,  /* syntax, missing table, type mismatch: a bug or a bad schema */
	SQL_ERR_CONSTRAINT, /* unique / primary key violation (the row exists) */
};

enum sql_step {
	SQL_STEP_ROW,   /* a row is available through the column functions */
	SQL_STEP_DONE,  /* no (more) rows; changes() is valid */
	SQL_STEP_ERROR, /* see error_class / error_message of the connection */
};

/* How to write "insert or update this row". */
enum sql_upsert {
	SQL_UPSERT_NONE,             /* none: UPDATE, then INSERT when no row changed */
	SQL_UPSERT_ON_CONFLICT,      /* INSERT ... ON CONFLICT (keys) DO UPDATE SET c = excluded.c
	                                  * (SQLite >= 3.24, PostgreSQL >= 9.5) */
	SQL_UPSERT_ON_DUPLICATE_KEY, /* INSERT ... ON DUPLICATE KEY UPDATE c = VALUES(c) (MySQL) */
};

struct sql_dialect {
	const char *name;        /* "sqlite", "pgsql", "mysql", "mssql" */
	const char *schema_file; /* "sqlite.sql": in the SQL directory */
	enum sql_upsert upsert;
	/* The migration scripts, relative to the SQL directory: migrations[i]
	 * takes a database from version i + 1 to i + 2 (and sets the version);
	 * SQL_SCHEMA_VERSION - 1 of them. */
	const char *const *migrations;
};

struct sql_conn; /* a driver's connection (its own struct) */
struct sql_stmt; /* a driver's prepared statement, owned by its connection */

struct sql_driver_vfuncs {
	const char *name; /* the storage_config.driver value: "sqlite" */
	const struct sql_dialect *dialect;

	/* "sqlite:/path", "pgsql:host=db dbname=xmpp" (never a password): malloc'd. */
	char *(*describe)(const struct storage_config *cfg);
	/* True when the store does not exist yet and may be created from the
	 * schema file (embedded databases).  NULL: never (a DBA creates it). */
	bool (*is_new)(const struct storage_config *cfg);

	/* Connect and set the session up (timeouts from cfg->timeout, encoding,
	 * pragmas).  NULL with a malloc'd *error_r on failure. */
	struct sql_conn *(*connect)(const struct storage_config *cfg, char **error_r);
	/* Close, finalising every cached statement. */
	void (*disconnect)(struct sql_conn *c);
	/* The dialect of this connection, for a driver that serves several
	 * databases (odbc: from the data source or storage.dialect).  NULL:
	 * always .dialect. */
	const struct sql_dialect *(*conn_dialect)(struct sql_conn *c);
	/* After an error: the connection is unusable (server gone) and must be
	 * reconnected.  NULL: never. */
	bool (*is_broken)(struct sql_conn *c);

	/* A cheap round trip that proves the connection still works (used
	 * before a connection that sat idle is used again): 0, or -1 when it
	 * does not.  NULL: never needed (embedded databases). */
	int (*ping)(struct sql_conn *c);

	/* Run a script of several statements (the schema), no results. */
	int (*exec)(struct sql_conn *c, const char *script);

	/* A statement for this SQL text, ready for binding.  Statements are
	 * cached per connection by their text: preparing the same text again is
	 * cheap and returns the cached one, reset.  NULL on error. */
	struct sql_stmt *(*prepare)(struct sql_conn *c, const char *sql);
	/* Parameters are numbered from 1.  A text value must stay valid until
	 * the statement's first step (a driver may send it from the caller's
	 * string then; sql_q_start binds and steps in one call); a blob is
	 * copied by the driver.  Return 0 or -1. */
	int (*bind_text)(struct sql_stmt *s, unsigned idx, const char *value);
	int (*bind_int64)(struct sql_stmt *s, unsigned idx, int64_t value);
	int (*bind_blob)(struct sql_stmt *s, unsigned idx, const void *data, size_t len);
	int (*bind_null)(struct sql_stmt *s, unsigned idx);
	/* Execute (first call) / fetch the next row. */
	enum sql_step (*step)(struct sql_stmt *s);
	/* Columns of the current row, numbered from 0.  Text and blobs stay
	 * valid until the next step or reset. */
	bool (*column_is_null)(struct sql_stmt *s, unsigned col);
	const char *(*column_text)(struct sql_stmt *s, unsigned col); /* NULL for NULL */
	int64_t (*column_int64)(struct sql_stmt *s, unsigned col);
	const void *(*column_blob)(struct sql_stmt *s, unsigned col, size_t *len_r);
	/* Rows changed by the statement that just returned SQL_STEP_DONE. */
	uint64_t (*changes)(struct sql_stmt *s);
	/* Done with this execution: release its results and locks, clear the
	 * bindings; the statement stays cached. */
	void (*reset)(struct sql_stmt *s);

	/* Transactions.  write: the transaction will write (SQLite takes the
	 * write lock up front with BEGIN IMMEDIATE; others may ignore it). */
	int (*begin)(struct sql_conn *c, bool write);
	int (*commit)(struct sql_conn *c);
	/* Safe to call when no transaction is open. */
	void (*rollback)(struct sql_conn *c);

	/* The last error of the connection. */
	enum sql_error (*error_class)(struct sql_conn *c);
	const char *(*error_message)(struct sql_conn *c);
};

/* Drivers built into this binary. */
extern const struct sql_driver_vfuncs sql_driver_sqlite;
#ifdef HAVE_BACKEND_PGSQL
extern const struct sql_driver_vfuncs sql_driver_pgsql;
#endif

/* The driver called name, if this binary has it; NULL otherwise. */
const struct sql_driver_vfuncs *sql_driver_find(const char *name);
/* Whether name is a driver Parley knows, built here or not ("pgsql" in a
 * build without libpq: true, *built_r false). */
bool sql_driver_known(const char *name, bool *built_r);
#ifdef HAVE_BACKEND_MYSQL
extern const struct sql_driver_vfuncs sql_driver_mysql;
#endif
#ifdef HAVE_BACKEND_ODBC
extern const struct sql_driver_vfuncs sql_driver_odbc;
#endif

/* ---- helpers for the network drivers (sql-util.c, any thread) ---------------- */

/* One "keyword=value" of a connection string. */
struct sql_conninfo_item {
	char *key;
	char *value;
};

struct sql_conninfo {
	struct sql_conninfo_item *items;
	size_t count;
};

/* Parse a connection string of the libpq form: "key=value" pairs separated
 * by blanks; a value may be single-quoted ('it''s' or 'it\'s'), with a
 * backslash escaping the next character.  Keys are lower-cased.  0, or -1
 * with a malloc'd *error_r that never quotes a value (it may be a
 * password). */
int sql_conninfo_parse(const char *dsn, struct sql_conninfo *ci_r, char **error_r);
/* The value of key, or NULL.  A key given twice: the last one counts. */
const char *sql_conninfo_get(const struct sql_conninfo *ci, const char *key);
/* Wipe the values (a password may be among them) and free. */
void sql_conninfo_free(struct sql_conninfo *ci);

/* A driver's error message made fit for one log line, in place: line
 * ends, tabs and other control characters become spaces, runs of blanks
 * one space, and leading and trailing blanks go (libpq and psqlODBC write
 * messages of several lines).  Returns msg. */
char *sql_message_one_line(char *msg);

/* The password kept in path: its first line, without the line end.
 * Malloc'd (wipe it with explicit_bzero after use), or NULL with a
 * malloc'd *error_r. */
char *sql_read_password_file(const char *path, char **error_r);

/* ---- parleyctl db: blocking, on any thread (a worker or parleyctl's own),
 * with connections of their own (no store object, no loop). ---- */

/* The schema file of driver's dialect (see PARLEY_SQL_DIR): 0 with the
 * malloc'd text and path, or -1 with a malloc'd *error_r. */
int sql_db_schema(const char *driver, char **text_r, char **path_r, char **error_r);
/* Connect to the database of cfg and describe it into out (indented
 * lines: driver, connection, schema version found and expected, the
 * migrations to apply).  migrate: apply the missing migration scripts in
 * order, each in its own transaction, reporting each.  0 when the
 * database is usable by this Parley at the end, -1 otherwise. */
int sql_db_report(const struct storage_config *cfg, bool migrate, struct buf *out);

#endif
