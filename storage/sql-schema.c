/*
 * The SQL schema: finding and reading the schema files of sql/, creating
 * a new embedded database, checking that a connection's schema version is
 * the one this Parley needs (and saying exactly what to apply when it is
 * not), and the work behind `parleyctl db` (report, migrate, print the
 * schema).
 *
 * Threads: any thread, blocking; no loop objects.  parleyd calls these at
 * start (loop thread, before the loop runs) and on each new worker
 * connection (worker thread); parleyctl calls them directly.
 */
#include "storage/sql-store.h"
#include "lib/log.h"

#include <errno.h>
#include <unistd.h>

#ifndef PARLEY_SQL_DIR
#define PARLEY_SQL_DIR "./sql"
#endif

/* Read dir/file into a malloc'd string; NULL if it cannot be read. */
static char *read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return NULL;
	struct buf b = { 0 };
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
char *sql_schema_read(const struct sql_dialect *dia, char **path_r, char **error_r)
{
	const char *dirs[2];
	size_t ndirs = sql_dirs(dirs);
	struct buf tried = { 0 };
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
	                     "directory of %s",
	                     tried.data, dia->schema_file);
	buf_free(&tried);
	return NULL;
}

int sql_schema_create(const struct sql_driver_vfuncs *d, struct sql_conn *c, const char *desc,
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

int sql_schema_check(const struct sql_driver_vfuncs *d, struct sql_conn *c, const char *desc, char **error_r)
{
	const struct sql_dialect *dia = d->conn_dialect != NULL ? d->conn_dialect(c) : d->dialect;
	struct sql_stmt *s = d->prepare(c, "SELECT version FROM schema_version");
	enum sql_step st = s != NULL ? d->step(s) : SQL_STEP_ERROR;
	if (st == SQL_STEP_ERROR) {
		*error_r = xasprintf("database %s has no Parley schema (reading schema_version: %s): "
		                     "create it from sql/%s with the database's own client",
		                     desc, d->error_message(c), dia->schema_file);
		if (s != NULL)
			d->reset(s);
		return -1;
	}
	if (st == SQL_STEP_DONE) {
		*error_r = xasprintf(
		        "database %s: the schema_version table is empty (it must hold one "
		        "row, the schema version): if the schema is Parley's, insert the version of "
		        "the sql/ file it was created from",
		        desc);
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
		struct buf todo = { 0 };
		const char *const *mig = dia->migrations;
		for (int64_t from = v < 1 ? 1 : v; mig != NULL && from < SQL_SCHEMA_VERSION; from++) {
			char *path = sql_file_path(mig[from - 1]);
			buf_printf(&todo, "%s%s", todo.len > 0 ? ", then " : "", path);
			free(path);
		}
		if (v >= 1 && todo.len > 0)
			*error_r = xasprintf(
			        "database %s has schema version %lld, this parleyd needs %d: "
			        "apply %s to it with the database's own client "
			        "(sqlite3, psql, ...) or run `parleyctl db migrate`, then start again",
			        desc, (long long)v, SQL_SCHEMA_VERSION, todo.data);
		else
			*error_r = xasprintf("database %s has schema version %lld, this parleyd needs %d: "
			                     "it was not made from a Parley schema file",
			                     desc, (long long)v, SQL_SCHEMA_VERSION);
		buf_free(&todo);
		return -1;
	}
	if (v > SQL_SCHEMA_VERSION) {
		*error_r = xasprintf("database %s has schema version %lld, this parleyd needs %d: "
		                     "the database belongs to a newer parleyd",
		                     desc, (long long)v, SQL_SCHEMA_VERSION);
		return -1;
	}
	return 0;
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
	*text_r = sql_schema_read(d->dialect, path_r, error_r);
	return *text_r != NULL ? 0 : -1;
}

/* The one row of schema_version: 0 and *v_r, or -1 with a malloc'd error. */
static int read_version(const struct sql_driver_vfuncs *d, struct sql_conn *c, int64_t *v_r, char **error_r)
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
				buf_printf(out,
				           "  migration: %s FAILED: %s (nothing of it was applied; the "
				           "database stays at version %lld)\n",
				           path, d->error_message(c), (long long)from);
				d->rollback(c);
				free(path);
				rc = -1;
				break;
			}
			if (read_version(d, c, &now, &err) < 0 || now != from + 1) {
				buf_printf(out, "  migration: %s ran but the version is %s%lld, not %lld\n",
				           path, err != NULL ? err : "", (long long)now,
				           (long long)(from + 1));
				free(err);
				free(path);
				rc = -1;
				break;
			}
			buf_printf(out, "  applied %s: now version %lld\n", path, (long long)now);
			log_notice("storage %s: applied %s (schema version %lld)",
			           cfg->dsn != NULL ? cfg->dsn : (cfg->path != NULL ? cfg->path : ""), path,
			           (long long)now);
			free(path);
		}
	}
	d->disconnect(c);
	return rc;
}
