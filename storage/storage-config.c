/*
 * The storage section: its option table (keys, defaults, docs), the checks
 * the table cannot express, and the merging of a host's section over the
 * global one.  Runs where the configuration is loaded (the loop thread at
 * start-up and on reload, parleyctl); no state.
 *
 * Invariants: a loaded section names a driver that this parleyd knows and
 * was built with, has a dsn for every driver but sqlite, never both
 * password and password_file, a dialect only for odbc, and absolute paths.
 */
#include <stddef.h>
#include <string.h>

#include "storage/storage-config.h"
#include "storage/sql.h"

#define OFF(st, field) offsetof(struct st, field)

static const struct opt_def storage_defs[] = {
	{ "driver", OPT_STRING, OFF(storage_config, driver), "sqlite", NULL, 0, 0,
	  "storage driver: sqlite (embedded), pgsql (PostgreSQL), mysql (MySQL/MariaDB) or odbc, as built" },
	{ "path", OPT_STRING, OFF(storage_config, path), "parley.db", NULL, 0, 0,
	  "sqlite: the database file" },
	{ "dsn", OPT_STRING, OFF(storage_config, dsn), NULL, NULL, 0, 0,
	  "connection string of the database (drivers other than sqlite): key=value pairs for pgsql "
	  "and mysql, an ODBC connection string for odbc" },
	{ "password", OPT_STRING, OFF(storage_config, password), NULL, NULL, 0, 0,
	  "password of the database user (never logged; prefer password_file)" },
	{ "password_file", OPT_STRING, OFF(storage_config, password_file), NULL, NULL, 0, 0,
	  "file whose first line is the database password, read at each connection" },
	{ "dialect", OPT_STRING, OFF(storage_config, dialect), NULL, NULL, 0, 0,
	  "odbc: the SQL of the data source, pgsql, mysql or mssql; unset: asked from the driver" },
	{ "pool_size", OPT_UINT, OFF(storage_config, pool_size), "2", NULL, 1, 256,
	  "worker threads, each with its own connection" },
	{ "queue_max", OPT_UINT, OFF(storage_config, queue_max), "10000", NULL, 1, 10000000,
	  "jobs waiting for a worker before new ones fail at once (temporary error)" },
	{ "timeout", OPT_DURATION, OFF(storage_config, timeout), "10s", NULL, 0, 0,
	  "deadline of one storage job; pgsql and mysql also stop waiting for a silent database "
	  "server after it, rounded up, plus 5 s (the read timeout); an offline message whose "
	  "COMMIT is in doubt waits six times it for the database before it bounces" },
	OPT_END
};

static int check_storage(const struct storage_config *st, const struct cfg_node *map,
                         const struct cfg_node *fallback, const char *section, char **error_r)
{
	bool built = false;
	if (strcmp(st->driver, "memory") == 0)
		return 0; /* the memory store, for tests */
	if (!sql_driver_known(st->driver, &built)) {
		*error_r = cfg_error_for_key(
		        map, fallback, section, "driver",
		        "unknown storage driver '%s' (known: sqlite, pgsql, mysql, odbc)", st->driver);
		return -1;
	}
	if (!built) {
		*error_r = cfg_error_for_key(map, fallback, section, "driver",
		                             "storage driver '%s' is not built into this parleyd (configure "
		                             "did not find its client library, or it is not supported yet)",
		                             st->driver);
		return -1;
	}
	if (strcmp(st->driver, "sqlite") != 0 && (st->dsn == NULL || *st->dsn == '\0')) {
		*error_r = cfg_error_for_key(map, fallback, section, "dsn",
		                             "storage driver '%s' needs a dsn (the connection string)",
		                             st->driver);
		return -1;
	}
	if (st->password != NULL && st->password_file != NULL) {
		*error_r = cfg_error_for_key(map, fallback, section, "password_file",
		                             "give password or password_file, not both");
		return -1;
	}
	if (st->dialect != NULL && strcmp(st->driver, "odbc") != 0) {
		*error_r = cfg_error_for_key(
		        map, fallback, section, "dialect",
		        "only the odbc driver takes a dialect (the %s driver knows its own)", st->driver);
		return -1;
	}
	if (st->dialect != NULL && strcmp(st->dialect, "pgsql") != 0 && strcmp(st->dialect, "mysql") != 0 &&
	    strcmp(st->dialect, "mssql") != 0) {
		*error_r = cfg_error_for_key(map, fallback, section, "dialect",
		                             "expected pgsql, mysql or mssql, got '%s'", st->dialect);
		return -1;
	}
	if (st->timeout <= 0) {
		*error_r = cfg_error_for_key(map, fallback, section, "timeout", "must be more than 0");
		return -1;
	}
	return 0;
}

void storage_config_defaults(struct storage_config *st)
{
	opt_defaults(storage_defs, st);
}

int storage_config_load(struct storage_config *st, const struct cfg_node *map,
                        const struct cfg_node *fallback, const char *section, const char *dir, char **error_r)
{
	if (opt_apply_over(storage_defs, map, section, st, error_r) < 0 ||
	    check_storage(st, map, fallback, section, error_r) < 0 ||
	    cfg_resolve_path(&st->path, dir, map, fallback, section, "path", error_r) < 0 ||
	    cfg_resolve_path(&st->password_file, dir, map, fallback, section, "password_file", error_r) < 0)
		return -1;
	return 0;
}

void storage_config_copy(struct storage_config *dst, const struct storage_config *src)
{
	opt_copy(storage_defs, dst, src);
}

void storage_config_free(struct storage_config *st)
{
	if (st->password != NULL)
		explicit_bzero(st->password, strlen(st->password));
	opt_free(storage_defs, st);
}

void storage_config_dump(const struct storage_config *st, struct buf *out, int indent)
{
	opt_dump(storage_defs, st, out, indent);
}
