/*
 * parleyctl db: the database schema of the configured stores, for
 * operators and DBAs (status, migrate, print-schema).  Works inside parleyd
 * (a control request) and inside parleyctl when parleyd is stopped; the
 * database work runs on a one-thread worker group, so the loop never
 * waits for a database.  Loop thread.
 */
#ifndef PARLEY_CTL_DB_H
#define PARLEY_CTL_DB_H

#include <ev.h>
#include "server/config.h"
#include "lib/util.h"

struct ctl_db_job;
/* Called once, from the loop, with an enum ctl_code, a message (may be
 * NULL) and the report. */
typedef void ctl_db_done_fn(void *ctx, int code, const char *message, const char *body);

/* Run "db ARGS" (argv[0] is the subcommand: status [HOST], migrate [--dsn
 * CONNINFO] [HOST], print-schema [DRIVER|HOST]) on the stores of cfg.
 * Returns an enum ctl_code when it finished at once (the report in body,
 * a malloc'd *message_r or NULL); or -1 when a job was started: done runs
 * later with the outcome, *job_r is its handle. */
int ctl_db_run(struct ev_loop *loop, const struct parley_config *cfg, int argc, char **argv, struct buf *body,
               char **message_r, ctl_db_done_fn *done, void *ctx, struct ctl_db_job **job_r);
/* done will not run (the job finishes on its worker and frees itself). */
void ctl_db_cancel(struct ctl_db_job *job);
/* Stop the worker group (at exit). */
void ctl_db_shutdown(void);

#endif
