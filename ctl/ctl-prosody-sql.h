/*
 * parleyctl import-prosody-sql: the users of a Prosody SQL store, with
 * their data, into the configured hosts (parleyd stopped; loop thread of
 * parleyctl, which runs nothing else).
 */
#ifndef PARLEY_CTL_PROSODY_SQL_H
#define PARLEY_CTL_PROSODY_SQL_H

#include <ev.h>
#include "server/config.h"
#include "lib/util.h"

/* Import the users of Prosody's "prosody" and "prosodyarchive" tables,
 * read with driver ("sqlite": source is the database file, opened
 * read-only; "pgsql", "mysql": source is the connection string), of every
 * host in it (a host that is not configured is a failure), or of only_host
 * alone; password_file (or NULL): a file whose first line is the database
 * password.  Accounts (plain and SCRAM-SHA-1), rosters with groups and
 * pending requests, vCards, private XML, offline messages, block lists and
 * PEP nodes with their items are imported as xep0227_import does
 * (existing accounts are skipped); privacy lists and archives are counted
 * and noted.  Counts per
 * kind and a summary go into report.  0 when nothing failed, or -1 with a
 * malloc'd *error_r. */
int prosody_sql_import(struct ev_loop *loop, const struct parley_config *cfg, const char *only_host,
                       const char *driver, const char *source, const char *password_file, struct buf *report,
                       char **error_r);

#endif
