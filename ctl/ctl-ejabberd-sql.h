/*
 * parleyctl import-ejabberd-sql: an ejabberd SQL database (PostgreSQL or
 * MySQL/MariaDB, single-host or server_host schema) read directly and
 * imported into the configured hosts' stores, with parleyd stopped, inside
 * parleyctl.  Loop thread.
 */
#ifndef PARLEY_CTL_EJABBERD_SQL_H
#define PARLEY_CTL_EJABBERD_SQL_H

#include <ev.h>
#include "server/config.h"
#include "lib/util.h"

/* Import the users of the ejabberd database at dsn ("pgsql:CONNINFO" or
 * "mysql:CONNINFO", the forms of the storage dsn; its password in it or in
 * password_file) with their passwords or SCRAM credentials, rosters,
 * pending requests, vCards, private XML, offline messages, privacy and
 * block lists, archives, archiving preferences and last activity, then
 * each host's persistent rooms (options, affiliations, archives) and
 * registered nicks, into the stores of the configured hosts: every
 * host of a server_host database that is configured (only host when not
 * NULL), or host, which the single-host schema needs.  The session on the
 * source is read-only.  A user or room that exists is skipped (reported).
 * One line per user in report, then the counts per kind.  0 when nothing
 * failed, or -1 with a malloc'd *error_r listing the first failures. */
int ejabberd_sql_import(struct ev_loop *loop, const struct parley_config *cfg, const char *dsn,
                        const char *password_file, const char *host, struct buf *report, char **error_r);

#endif
