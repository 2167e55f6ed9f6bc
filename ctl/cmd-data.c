/*
 * parleyctl's data commands: backup and restore of the SQLite store, the
 * database schema (db: ctl-db.c), XEP-0227 export and import and
 * rename-domain (ctl-xep0227.c), import-ejabberd-sql (ctl-ejabberd-sql.c).
 * Loop thread; the copies and the database work run on one-thread worker
 * groups, so the loop never waits for a database file.
 *
 * backup copies the SQLite file with SQLite's online backup API while
 * parleyd runs; restore, export, import and rename-domain run only while
 * parleyd is stopped (inside parleyctl).  A copy whose call was cancelled
 * finishes on its worker and frees itself.
 */
#include "ctl-private.h"
#include "ctl-db.h"
#include "ctl-prosody-sql.h"
#include "ctl-ejabberd-sql.h"
#include "ctl-xep0227.h"
#include "server/server.h"
#include "lib/jid.h"
#include "lib/log.h"
#include "lib/worker.h"
#include "storage/sqlite-copy.h"

#include <string.h>

/* ---- backup and restore of the SQLite store ------------------------------------------ */

struct copy_job {
	struct ctl_call *call; /* NULL when the call was cancelled */
	char *src, *dst;
	bool restore;
	int rc;
	int64_t pages;
	char *error;
};

static struct worker_group *copy_group;

/* The call was cancelled: the job finishes on its own and frees itself. */
static void copy_detach(void *work)
{
	struct copy_job *cj = work;
	cj->call = NULL;
}

static void copy_work(void *job, void *thread_state)
{
	struct copy_job *cj = job;
	(void)thread_state;
	cj->rc = sqlite_copy(cj->src, cj->dst, !cj->restore, cj->restore, &cj->pages, &cj->error);
}

static void copy_done(void *job, enum worker_status status)
{
	struct copy_job *cj = job;
	struct ctl_call *call = cj->call;
	if (call != NULL) {
		call->work = NULL;
		if (status != WORKER_DONE)
			ctl_call_finish(call, CTL_TEMPFAIL, "the copy did not run (expired)");
		else if (cj->rc < 0)
			ctl_call_finish(call, CTL_FAILED, "%s", cj->error);
		else {
			if (cj->restore)
				log_notice("ctl: %s restored from %s", cj->dst, cj->src);
			else
				log_notice("ctl: %s backed up to %s", cj->src, cj->dst);
			buf_printf(&call->body, "%s %s to %s (%lld pages)\n",
			           cj->restore ? "restored" : "copied", cj->src, cj->dst,
			           (long long)cj->pages);
			ctl_call_finish(call, CTL_OK, NULL);
		}
	}
	free(cj->src);
	free(cj->dst);
	free(cj->error);
	free(cj);
}

/* The SQLite file of the store of host argv[idx], or of every host when
 * argc <= idx (which must then be one file); NULL when the call finished. */
static const char *call_sqlite_path(struct ctl_call *call, int idx)
{
	const struct storage_config *sc = NULL;
	if (call->argc > idx) {
		char *domain = jid_nameprep(call->argv[idx]);
		const struct host_config *hc = domain != NULL ? config_host(server.cfg, domain) : NULL;
		free(domain);
		if (hc == NULL) {
			ctl_call_finish(call, CTL_FAILED, "host %s is not in %s", call->argv[idx],
			                server.cfg->file);
			return NULL;
		}
		sc = &hc->storage;
	} else {
		for (size_t i = 0; i < server.cfg->nhosts; i++) {
			const struct storage_config *hs = &server.cfg->hosts[i].storage;
			if (sc != NULL && (!str_eq(sc->driver, hs->driver) || !str_eq(sc->path, hs->path))) {
				ctl_call_finish(call, CTL_USAGE,
				                "the hosts use different stores: name a HOST");
				return NULL;
			}
			sc = hs;
		}
	}
	if (sc == NULL || !str_eq(sc->driver, "sqlite") || sc->path == NULL) {
		ctl_call_finish(call, CTL_FAILED,
		                "backup and restore work on the embedded SQLite store; "
		                "this store is %s (use the database's own tools)",
		                sc != NULL ? sc->driver : "?");
		return NULL;
	}
	return sc->path;
}

static void copy_start(struct ctl_call *call, bool restore)
{
	const char *path = call_sqlite_path(call, 2);
	if (path == NULL)
		return;
	const char *file = call->argv[1];
	if (file[0] != '/') {
		ctl_call_finish(call, CTL_USAGE, "FILE must be an absolute path (parleyctl makes it one)");
		return;
	}
	if (strcmp(file, path) == 0) {
		ctl_call_finish(call, CTL_USAGE, "FILE is the store itself");
		return;
	}
	if (copy_group == NULL)
		copy_group = worker_group_new(call->loop, "ctl-copy", 1, 4, NULL, NULL, NULL);
	struct copy_job *cj = xcalloc(1, sizeof(*cj));
	cj->call = call;
	cj->restore = restore;
	cj->src = xstrdup(restore ? file : path);
	cj->dst = xstrdup(restore ? path : file);
	if (worker_submit(copy_group, 0, copy_work, copy_done, cj, 0) == NULL) {
		free(cj->src);
		free(cj->dst);
		free(cj);
		ctl_call_finish(call, CTL_TEMPFAIL, "another backup or restore is running");
		return;
	}
	call->work = cj;
	call->work_free = copy_detach;
}

void cmd_backup(struct ctl_call *call)
{
	copy_start(call, false);
}

void cmd_restore(struct ctl_call *call)
{
	copy_start(call, true);
}

/* ---- database schema (ctl-db.c) ------------------------------------------------------ */

static void db_cancel(void *work)
{
	ctl_db_cancel(work);
}

static void db_finished(void *ctx, int code, const char *message, const char *body)
{
	struct ctl_call *call = ctx;
	call->work = NULL;
	ctl_call_finish_with(call, code, message, body);
}

void cmd_db(struct ctl_call *call)
{
	char *message = NULL;
	struct ctl_db_job *job = NULL;
	int code = ctl_db_run(call->loop, server_config(), call->argc - 1, call->argv + 1, &call->body,
	                      &message, db_finished, call, &job);
	if (code < 0) {
		call->work = job; /* db_finished comes later */
		call->work_free = db_cancel;
		return;
	}
	if (message != NULL)
		ctl_call_finish(call, code, "%s", message);
	else
		ctl_call_finish(call, code, NULL);
	free(message);
}

/* ---- XEP-0227 and rename-domain (parleyd stopped: inside parleyctl) ------------------ */

static void finish_tool(struct ctl_call *call, int rc, char *err)
{
	if (rc < 0) {
		ctl_call_finish(call, CTL_FAILED, "%s", err != NULL ? err : "failed");
		free(err);
	} else {
		ctl_call_finish(call, CTL_OK, NULL);
	}
}

void cmd_export_xep0227(struct ctl_call *call)
{
	const char *host = NULL, *path = NULL;
	enum xep0227_target target = XEP0227_FOR_PARLEY;
	bool bad = false;
	int i = 1;
	for (; i + 1 < call->argc && !bad; i += 2) {
		const char *opt = call->argv[i], *val = call->argv[i + 1];
		if (strcmp(opt, "--host") == 0 && host == NULL)
			host = val;
		else if (strcmp(opt, "--for") == 0 && strcmp(val, "parley") == 0)
			target = XEP0227_FOR_PARLEY;
		else if (strcmp(opt, "--for") == 0 && strcmp(val, "ejabberd") == 0)
			target = XEP0227_FOR_EJABBERD;
		else if (strcmp(opt, "--for") == 0 && strcmp(val, "prosody") == 0)
			target = XEP0227_FOR_PROSODY;
		else
			bad = true;
	}
	if (!bad && i == call->argc - 1)
		path = call->argv[i];
	if (path == NULL) {
		ctl_call_finish(
		        call, CTL_USAGE,
		        "usage: export-xep0227 [--host HOST] [--for parley|ejabberd|prosody] FILE|DIR");
		return;
	}
	char *err = NULL;
	int rc = xep0227_export(call->loop, server.cfg, host, path, target, &call->body, &err);
	finish_tool(call, rc, err);
}

void cmd_import_xep0227(struct ctl_call *call)
{
	char *err = NULL;
	int rc = xep0227_import(call->loop, server.cfg, call->argv[1], &call->body, &err);
	finish_tool(call, rc, err);
}

void cmd_import_prosody_sql(struct ctl_call *call)
{
	const char *host = NULL, *password_file = NULL;
	int i = 1;
	for (; i + 1 < call->argc && call->argv[i][0] == '-'; i += 2) {
		if (strcmp(call->argv[i], "--host") == 0 && host == NULL)
			host = call->argv[i + 1];
		else if (strcmp(call->argv[i], "--password-file") == 0 && password_file == NULL)
			password_file = call->argv[i + 1];
		else
			break;
	}
	if (call->argc != i + 2 || call->argv[i][0] == '-') {
		ctl_call_finish(
		        call, CTL_USAGE,
		        "usage: import-prosody-sql [--host HOST] [--password-file FILE] sqlite FILE | "
		        "pgsql CONNINFO | mysql CONNINFO");
		return;
	}
	char *err = NULL;
	int rc = prosody_sql_import(call->loop, server.cfg, host, call->argv[i], call->argv[i + 1],
	                            password_file, &call->body, &err);
	finish_tool(call, rc, err);
}

void cmd_import_ejabberd_sql(struct ctl_call *call)
{
	const char *dsn = NULL, *password_file = NULL, *host = NULL;
	for (int i = 1; i < call->argc; i += 2) {
		const char *opt = call->argv[i], *val = i + 1 < call->argc ? call->argv[i + 1] : NULL;
		const char **slot = strcmp(opt, "--dsn") == 0             ? &dsn
		                    : strcmp(opt, "--password-file") == 0 ? &password_file
		                    : strcmp(opt, "--host") == 0          ? &host
		                                                          : NULL;
		if (slot == NULL || val == NULL || *slot != NULL) {
			slot = NULL;
			dsn = NULL;
			break;
		}
		*slot = val;
	}
	if (dsn == NULL) {
		ctl_call_finish(call, CTL_USAGE,
		                "usage: import-ejabberd-sql --dsn pgsql:CONNINFO|mysql:CONNINFO "
		                "[--password-file FILE] [--host HOST]");
		return;
	}
	char *err = NULL;
	int rc = ejabberd_sql_import(call->loop, server.cfg, dsn, password_file, host, &call->body, &err);
	finish_tool(call, rc, err);
}

void cmd_rename_domain(struct ctl_call *call)
{
	char *err = NULL;
	int rc = xep0227_rename_domain(call->loop, server.cfg, call->argv[1], call->argv[2], &call->body,
	                               &err);
	finish_tool(call, rc, err);
}

void cmd_data_shutdown(void)
{
	if (copy_group != NULL)
		worker_group_free(&copy_group);
	ctl_db_shutdown();
}
