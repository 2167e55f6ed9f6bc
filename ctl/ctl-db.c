/*
 * parleyctl db status | migrate | print-schema (see ctl-db.h).
 *
 * Threads: ctl_db_run, the done callback and cancel run on the loop
 * thread; the job's work (connect, read schema_version, apply migration
 * scripts) runs on the "ctl-db" worker thread with connections of its own
 * (sql_db_report), never through a running store's pool.  The job owns
 * copies of every configuration string it uses.
 *
 * Stores are the distinct databases of the configured hosts (sqlite: the
 * path; other drivers: the dsn), each reported once with the hosts on it;
 * when parleyd runs, the live state of the store (connections, outage) is
 * added from the loop after the job.
 */
#include "ctl-db.h"
#include "ctl-proto.h"
#include "server/host.h"
#include "lib/jid.h"
#include "lib/log.h"
#include "lib/worker.h"
#include "storage/sql.h"
#include "storage/storage.h"

#include <string.h>

struct db_store {
	struct storage_config cfg; /* strings are copies */
	char *key;                 /* driver + path or dsn */
	struct buf hosts;          /* "a.example, b.example" */
	char *first_host;          /* for the live state */
	char *desc;
	size_t report_end; /* worker: where its part of the report ends */
};

struct ctl_db_job {
	struct db_store *stores;
	size_t nstores;
	bool migrate;
	int rc;               /* worker: 0, or -1 when a store is not usable */
	struct buf out;       /* worker: the report */
	ctl_db_done_fn *done; /* NULL once cancelled */
	void *ctx;
	struct worker_job *wj;
};

static struct worker_group *db_group;

static void store_free(struct db_store *s)
{
	free(s->cfg.driver);
	free(s->cfg.path);
	free(s->cfg.dsn);
	if (s->cfg.password != NULL)
		explicit_bzero(s->cfg.password, strlen(s->cfg.password));
	free(s->cfg.password);
	free(s->cfg.password_file);
	free(s->key);
	buf_free(&s->hosts);
	free(s->first_host);
	free(s->desc);
}

static void job_free(struct ctl_db_job *j)
{
	for (size_t i = 0; i < j->nstores; i++)
		store_free(&j->stores[i]);
	free(j->stores);
	buf_free(&j->out);
	free(j);
}

static char *store_key(const struct storage_config *sc)
{
	bool embedded = sc->driver == NULL || strcmp(sc->driver, "sqlite") == 0;
	return xasprintf("%s\x1f%s", sc->driver != NULL ? sc->driver : "sqlite",
	                 embedded ? (sc->path != NULL ? sc->path : "") : (sc->dsn != NULL ? sc->dsn : ""));
}

static char *store_describe(const struct storage_config *sc)
{
	const struct sql_driver_vfuncs *d = sql_driver_find(sc->driver != NULL ? sc->driver : "sqlite");
	return d != NULL ? d->describe(sc) : xasprintf("%s:(not built)", sc->driver);
}

/* Add host's store to the job (once per database). */
static void add_store(struct ctl_db_job *j, const struct host_config *hc, const char *dsn_override)
{
	struct storage_config sc = hc->storage;
	if (dsn_override != NULL) {
		sc.dsn = (char *)dsn_override;
		sc.password = NULL; /* the owner's: libpq's PGPASSWORD / ~/.pgpass */
		sc.password_file = NULL;
	}
	char *key = store_key(&sc);
	for (size_t i = 0; i < j->nstores; i++) {
		if (strcmp(j->stores[i].key, key) == 0) {
			buf_printf(&j->stores[i].hosts, ", %s", hc->name);
			free(key);
			return;
		}
	}
	j->stores = xrealloc(j->stores, (j->nstores + 1) * sizeof(*j->stores));
	struct db_store *s = &j->stores[j->nstores++];
	memset(s, 0, sizeof(*s));
	s->cfg = sc;
	s->cfg.driver = xstrdup(sc.driver != NULL ? sc.driver : "sqlite");
	s->cfg.path = sc.path != NULL ? xstrdup(sc.path) : NULL;
	s->cfg.dsn = sc.dsn != NULL ? xstrdup(sc.dsn) : NULL;
	s->cfg.password = sc.password != NULL ? xstrdup(sc.password) : NULL;
	s->cfg.password_file = sc.password_file != NULL ? xstrdup(sc.password_file) : NULL;
	s->key = key;
	buf_append_str(&s->hosts, hc->name);
	s->first_host = xstrdup(hc->name);
	s->desc = store_describe(&s->cfg);
}

static void db_work(void *job, void *thread_state)
{
	struct ctl_db_job *j = job;
	(void)thread_state;
	for (size_t i = 0; i < j->nstores; i++) {
		struct db_store *s = &j->stores[i];
		buf_printf(&j->out, "store %s (hosts: %s)\n", s->desc, s->hosts.data);
		if (sql_db_report(&s->cfg, j->migrate, &j->out) < 0)
			j->rc = -1;
		s->report_end = j->out.len;
	}
}

static void db_done(void *job, enum worker_status status)
{
	struct ctl_db_job *j = job;
	if (j->done != NULL) {
		if (status != WORKER_DONE) {
			j->done(j->ctx, CTL_TEMPFAIL, "the database check did not run (expired)", "");
		} else {
			/* Inside parleyd: what the running stores see. */
			struct buf body = { 0 };
			size_t at = 0;
			for (size_t i = 0; i < j->nstores; i++) {
				struct db_store *s = &j->stores[i];
				buf_append(&body, j->out.data + at, s->report_end - at);
				at = s->report_end;
				struct host *h = host_find(s->first_host);
				if (h != NULL && h->storage != NULL) {
					buf_append_str(&body, "  live: ");
					storage_status(h->storage, &body);
					buf_append_str(&body, "\n");
				}
			}
			j->done(j->ctx, j->rc == 0 ? CTL_OK : CTL_FAILED,
			        j->rc == 0 ? NULL : "a store is not usable by this Parley (see above)",
			        body.data != NULL ? body.data : "");
			buf_free(&body);
		}
	}
	job_free(j);
}

static int usage(char **message_r)
{
	*message_r = xstrdup("usage: db status [HOST] | db migrate [--dsn CONNINFO] [HOST] | "
	                     "db print-schema [DRIVER|HOST]");
	return CTL_USAGE;
}

/* The configured host argv names (nameprep'd), or NULL. */
static const struct host_config *named_host(const struct parley_config *cfg, const char *name)
{
	char *domain = jid_nameprep(name);
	const struct host_config *hc = domain != NULL ? config_host(cfg, domain) : NULL;
	free(domain);
	return hc;
}

static int print_schema(const struct parley_config *cfg, int argc, char **argv, struct buf *body,
                        char **message_r)
{
	const char *driver = NULL;
	if (argc > 2)
		return usage(message_r);
	if (argc == 2) {
		bool built = false;
		if (sql_driver_known(argv[1], &built)) {
			driver = argv[1];
		} else {
			const struct host_config *hc = named_host(cfg, argv[1]);
			if (hc == NULL) {
				*message_r = xasprintf("'%s' is neither a storage driver nor a host of %s",
				                       argv[1], cfg->file);
				return CTL_FAILED;
			}
			driver = hc->storage.driver;
		}
	} else if (cfg->nhosts > 0) {
		driver = cfg->hosts[0].storage.driver;
	} else {
		driver = "sqlite";
	}
	char *text = NULL, *path = NULL, *err = NULL;
	if (sql_db_schema(driver != NULL ? driver : "sqlite", &text, &path, &err) < 0) {
		*message_r = err;
		return CTL_FAILED;
	}
	buf_append_str(body, text);
	free(text);
	free(path);
	return CTL_OK;
}

int ctl_db_run(struct ev_loop *loop, const struct parley_config *cfg, int argc, char **argv, struct buf *body,
               char **message_r, ctl_db_done_fn *done, void *ctx, struct ctl_db_job **job_r)
{
	*job_r = NULL;
	*message_r = NULL;
	if (argc < 1)
		return usage(message_r);
	if (strcmp(argv[0], "print-schema") == 0)
		return print_schema(cfg, argc, argv, body, message_r);
	bool migrate = strcmp(argv[0], "migrate") == 0;
	if (!migrate && strcmp(argv[0], "status") != 0)
		return usage(message_r);
	const char *dsn = NULL, *host = NULL;
	for (int i = 1; i < argc; i++) {
		if (migrate && strcmp(argv[i], "--dsn") == 0 && i + 1 < argc && dsn == NULL)
			dsn = argv[++i];
		else if (host == NULL && argv[i][0] != '-')
			host = argv[i];
		else
			return usage(message_r);
	}
	struct ctl_db_job *j = xcalloc(1, sizeof(*j));
	j->migrate = migrate;
	if (host != NULL) {
		const struct host_config *hc = named_host(cfg, host);
		if (hc == NULL) {
			job_free(j);
			*message_r = xasprintf("host %s is not in %s", host, cfg->file);
			return CTL_FAILED;
		}
		add_store(j, hc, dsn);
	} else {
		for (size_t i = 0; i < cfg->nhosts; i++)
			add_store(j, &cfg->hosts[i], dsn);
	}
	if (dsn != NULL && j->nstores > 1) {
		job_free(j);
		*message_r = xstrdup("--dsn names one database: give the HOST whose store it is");
		return CTL_USAGE;
	}
	if (j->nstores == 0) {
		job_free(j);
		*message_r = xstrdup("no host is configured");
		return CTL_FAILED;
	}
	if (db_group == NULL)
		db_group = worker_group_new(loop, "ctl-db", 1, 4, NULL, NULL, NULL);
	j->done = done;
	j->ctx = ctx;
	j->wj = worker_submit(db_group, 0, db_work, db_done, j, 0);
	if (j->wj == NULL) {
		job_free(j);
		*message_r = xstrdup("other db commands are running; try again");
		return CTL_TEMPFAIL;
	}
	*job_r = j;
	return -1;
}

void ctl_db_cancel(struct ctl_db_job *job)
{
	if (job != NULL)
		job->done = NULL;
}

void ctl_db_shutdown(void)
{
	if (db_group != NULL)
		worker_group_free(&db_group);
}
