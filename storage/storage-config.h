/*
 * The storage section of the configuration ("storage:" at the top level,
 * overridden key by key under a host): its settings, table and checks.
 * server/config.c assembles it into each host's configuration.  Runs
 * where the configuration is loaded (the loop thread, parleyctl).
 */
#ifndef PARLEY_STORAGE_CONFIG_H
#define PARLEY_STORAGE_CONFIG_H

#include "lib/options.h"

struct storage_config {
	char *driver;        /* "sqlite" (default), "pgsql", "mysql", "odbc" */
	char *path;          /* sqlite: database file */
	char *dsn;           /* other drivers: connection string */
	char *password;      /* other drivers: password (never logged nor dumped) */
	char *password_file; /* other drivers: file whose first line is the password */
	char *dialect;       /* odbc: pgsql, mysql or mssql; NULL: asked from the data source */
	unsigned pool_size;  /* worker threads / connections (default 2) */
	unsigned queue_max;  /* jobs queued before failing fast (default 10000) */
	double timeout;      /* per-job deadline in seconds (default 10) */
};

/* The built-in defaults. */
void storage_config_defaults(struct storage_config *st);
/* Apply the storage map over what st holds (the defaults, or the global
 * section for a host), check it (driver known and built, a dsn where one
 * is needed, ...) and make its paths absolute relative to dir.  section
 * names the map in messages ("storage", "hosts.NAME.storage"); fallback
 * is where a message points when the map is absent.  -1 and a malloc'd
 * *error_r naming file, line and key; st is then freed by
 * storage_config_free as usual. */
int storage_config_load(struct storage_config *st, const struct cfg_node *map,
                        const struct cfg_node *fallback, const char *section, const char *dir,
                        char **error_r);
void storage_config_copy(struct storage_config *dst, const struct storage_config *src);
/* Frees what st holds; the password is wiped first. */
void storage_config_free(struct storage_config *st);
void storage_config_dump(const struct storage_config *st, struct buf *out, int indent);

#endif
