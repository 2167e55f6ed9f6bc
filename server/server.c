/*
 * Server-wide actions: graceful stop and configuration reload.  Loop thread.
 *
 * Stopping closes every client stream with <system-shutdown/>, then waits
 * (at most a few seconds) for their output to drain and for the storage
 * work they started (the unacknowledged messages of stream management
 * going to offline storage, with the checks before it) to be answered,
 * before leaving the loop; main() then stops the hosts, which lets what
 * is still pending finish.
 */
#include "server.h"
#include "listener.h"
#include "c2s.h"
#include "component.h"
#include "s2s.h"
#include "http.h"
#include "stream.h"
#include "lib/latency.h"
#include "lib/log.h"
#include "host.h"
#include "module.h"
#include "sm.h"
#include "tls.h"

#include <errno.h>
#include <sys/stat.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define STOP_GRACE 3.0

struct server_state server;

static ev_timer stop_timer;
static double stop_started;

static void stop_check_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	latency_begin(LATENCY_TIMER, "stop");
	if ((streams_count() == 0 && hosts_storage_pending() == 0) ||
	    ev_now(loop) - stop_started > STOP_GRACE) {
		ev_timer_stop(loop, w);
		ev_break(loop, EVBREAK_ALL);
	}
	latency_end();
}

void server_stop(void)
{
	if (server.stopping)
		return;
	server.stopping = true;
	log_notice("parleyd stopping: closing %u client connections", c2s_count());
	listeners_close();
	if (server.control != NULL && server.control->stop_accepting != NULL)
		server.control->stop_accepting();
	c2s_shutdown_all();
	components_shutdown_all();
	s2s_shutdown_all();
	http_close_all();
	stop_started = ev_now(server.loop);
	ev_timer_init(&stop_timer, stop_check_cb, 0.05, 0.05);
	ev_timer_start(server.loop, &stop_timer);
}

void server_restart(void)
{
	server.restart = true;
	server_stop();
}

const char *server_restart_refusal(void)
{
	static char why[128];
	if (server.argv == NULL)
		return "not started from main";
	if (geteuid() == 0)
		return NULL;
	for (size_t i = 0; i < server.cfg->nlisten; i++) {
		if (server.cfg->listen[i].port < 1024) {
			snprintf(why, sizeof(why), "port %u needs root, and parleyd no longer runs as root",
			         server.cfg->listen[i].port);
			return why;
		}
	}
	return NULL;
}

/* The map holding key of section (like "tls" or "storage") as the file
 * gives it: the host's when it gives key there, else the global one, else
 * where the host is.  *section_r names it for messages (malloc'd). */
static const struct cfg_node *setting_map(const struct parley_config *cfg, const struct host_config *hc,
                                          const char *section, const char *sub, const char *key,
                                          char **section_r)
{
	const struct cfg_node *m = hc != NULL ? cfg_get(hc->node, section) : NULL;
	if (m != NULL && sub != NULL)
		m = cfg_get(m, sub);
	if (m != NULL && cfg_get(m, key) != NULL) {
		*section_r = sub != NULL ? xasprintf("hosts.%s.%s.%s", hc->name, section, sub)
		                         : xasprintf("hosts.%s.%s", hc->name, section);
		return m;
	}
	m = cfg_get(cfg->root, section);
	if (m != NULL && sub != NULL)
		m = cfg_get(m, sub);
	*section_r = sub != NULL ? xasprintf("%s.%s", section, sub) : xstrdup(section);
	return m != NULL ? m : hc != NULL ? hc->node : cfg->root;
}

/* Whether the folder of path exists (what a file made there at start
 * needs); -1 with errno otherwise. */
static int folder_exists(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir = slash == NULL   ? xstrdup(".")
	            : slash == path ? xstrdup("/")
	                            : xstrndup(path, (size_t)(slash - path));
	struct stat st;
	int rc = stat(dir, &st);
	if (rc == 0 && !S_ISDIR(st.st_mode)) {
		errno = ENOTDIR;
		rc = -1;
	}
	free(dir);
	return rc;
}

static int check_folder(const struct cfg_node *map, const char *section, const char *key, const char *path,
                        char **error_r)
{
	if (path == NULL || folder_exists(path) == 0)
		return 0;
	*error_r = cfg_error_for_key(map, map, section, key, "the folder of %s: %s", path, strerror(errno));
	return -1;
}

/* What start-up would fail on that the file alone does not say, found
 * without starting anything: certificates and keys that do not load or
 * match, cipher lists OpenSSL refuses, an external auth program that is
 * not there, files to be made in folders that do not exist. */
static int check_startable(const struct parley_config *cfg, char **error_r)
{
	const struct cfg_node *root = cfg->root;
	if (check_folder(root, NULL, "log_file", cfg->log_file, error_r) < 0 ||
	    check_folder(root, NULL, "pidfile", cfg->pidfile, error_r) < 0)
		return -1;
	if (cfg->control_socket != NULL && folder_exists(cfg->control_socket) < 0) {
		*error_r = cfg_error_for_key(cfg_get(root, "control"), root, "control", "socket",
		                             "the folder of %s: %s", cfg->control_socket, strerror(errno));
		return -1;
	}
	for (size_t i = 0; i < cfg->nhosts; i++) {
		const struct host_config *hc = &cfg->hosts[i];
		char *section = NULL;
		const char *key = NULL;
		char *err = NULL;
		if (hc->tls.certificate != NULL && tls_config_check(hc->name, &hc->tls, &key, &err) < 0) {
			const struct cfg_node *m = setting_map(cfg, hc, "tls", NULL, key, &section);
			*error_r = cfg_error_for_key(m, m, section, key, "%s", err);
			free(section);
			free(err);
			return -1;
		}
		const struct storage_config *sc = &hc->storage;
		if ((sc->driver == NULL || strcmp(sc->driver, "sqlite") == 0) && sc->path != NULL &&
		    folder_exists(sc->path) < 0) {
			const struct cfg_node *m = setting_map(cfg, hc, "storage", NULL, "path", &section);
			*error_r = cfg_error_for_key(m, m, section, "path", "the folder of %s: %s", sc->path,
			                             strerror(errno));
			free(section);
			return -1;
		}
		if ((err = auth_external_probe(&hc->auth)) != NULL) {
			const struct cfg_node *m =
			        setting_map(cfg, hc, "auth", "external", "program", &section);
			*error_r = cfg_error_for_key(m, m, section, "program", "%s", err);
			free(section);
			free(err);
			return -1;
		}
	}
	return 0;
}

int server_config_check(const char *path, struct parley_config **cfg_r, char **error_r)
{
	if (config_load(path, cfg_r, error_r) < 0)
		return -1;
	for (size_t i = 0; i < (*cfg_r)->nhosts; i++) {
		if (modules_check_host(&(*cfg_r)->hosts[i], error_r) < 0) {
			config_free(cfg_r);
			return -1;
		}
	}
	if (modules_check_domains(*cfg_r, error_r) < 0 || check_startable(*cfg_r, error_r) < 0) {
		config_free(cfg_r);
		return -1;
	}
	return 0;
}

static bool str_changed(const char *a, const char *b)
{
	return !str_eq(a, b);
}

static bool strlist_equal(const struct strlist *a, const struct strlist *b)
{
	if (a->count != b->count)
		return false;
	for (size_t i = 0; i < a->count; i++)
		if (strcmp(a->items[i], b->items[i]) != 0)
			return false;
	return true;
}

const struct parley_config *server_config(void)
{
	return server.nreloaded > 0 ? server.reloaded[server.nreloaded - 1] : server.cfg;
}

void server_free_configs(void)
{
	for (size_t i = 0; i < server.nreloaded; i++)
		config_free(&server.reloaded[i]);
	free(server.reloaded);
	server.reloaded = NULL;
	server.nreloaded = 0;
}

/* A host's effective settings as text, without its admins (which change
 * live). */
static char *host_settings_text(const struct host_config *hc)
{
	struct buf b = { 0 };
	config_dump_host(hc, &b, modules_dump_host);
	struct buf out = { 0 };
	char *save = NULL;
	for (char *line = strtok_r(b.data, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		if (line[0] == '#' || str_has_prefix(line, "    admins:"))
			continue;
		buf_printf(&out, "%s\n", line);
	}
	buf_free(&b);
	return out.data != NULL ? buf_steal(&out) : xstrdup("");
}

/* What ncfg changes that applies only after a restart, one line each,
 * compared with what runs: the configuration parleyd started with for the
 * sections read once, each host's start configuration for its storage,
 * auth, tls and modules (a second reload of the same file reports them
 * again). */
static void restart_changes(const struct parley_config *ncfg, struct buf *out)
{
	const struct parley_config *ocfg = server.cfg;
	bool listen_differ = ocfg->nlisten != ncfg->nlisten;
	for (size_t i = 0; !listen_differ && i < ncfg->nlisten; i++)
		listen_differ = ocfg->listen[i].port != ncfg->listen[i].port ||
		                str_changed(ocfg->listen[i].address, ncfg->listen[i].address) ||
		                ocfg->listen[i].starttls != ncfg->listen[i].starttls ||
		                ocfg->listen[i].direct_tls != ncfg->listen[i].direct_tls;
	if (listen_differ)
		buf_append_str(out, "listen: changed; restart parleyd to apply\n");
	if (ocfg->metrics.enabled != ncfg->metrics.enabled ||
	    !strlist_equal(&ocfg->metrics.allow, &ncfg->metrics.allow))
		buf_append_str(out, "metrics: changed; restart parleyd to apply\n");
	if (ocfg->http_api.enabled != ncfg->http_api.enabled ||
	    !strlist_equal(&ocfg->http_api.allow, &ncfg->http_api.allow) ||
	    str_changed(ocfg->http_api.tokens_file, ncfg->http_api.tokens_file))
		buf_append_str(out, "http_api: changed; restart parleyd to apply\n");
	if (ocfg->admin_web.enabled != ncfg->admin_web.enabled ||
	    !strlist_equal(&ocfg->admin_web.hosts, &ncfg->admin_web.hosts) ||
	    !strlist_equal(&ocfg->admin_web.allow, &ncfg->admin_web.allow) ||
	    ocfg->admin_web.session_timeout != ncfg->admin_web.session_timeout)
		buf_append_str(out, "admin_web: changed; restart parleyd to apply\n");
	if (str_changed(ocfg->fast.key_file, ncfg->fast.key_file))
		buf_append_str(out, "fast: key_file changed; restart parleyd to apply\n");
	for (struct host *h = host_first(); h != NULL; h = h->next) {
		const struct host_config *nhc = config_host(ncfg, h->name);
		if (nhc == NULL)
			continue;
		char *a = host_settings_text(h->start_cfg), *b = host_settings_text(nhc);
		if (strcmp(a, b) != 0)
			buf_printf(out,
			           "host %s: storage, auth, tls or modules changed; restart parleyd "
			           "(or remove the host, reload, add it back, reload) to apply\n",
			           h->name);
		free(a);
		free(b);
	}
}

void server_restart_pending(struct buf *out)
{
	if (server_config() != server.cfg)
		restart_changes(server_config(), out);
}

static int reload_hosts(struct parley_config *ncfg, struct buf *report)
{
	int rc = 0;
	/* removed */
	for (struct host *h = host_first(), *next; h != NULL; h = next) {
		next = h->next;
		if (config_host(ncfg, h->name) != NULL)
			continue;
		buf_printf(report, "host %s: removed (%u sessions closed)\n", h->name, sm_count(h));
		host_remove(h, STE_HOST_GONE, "this domain is no longer served here");
	}
	/* kept: they now read the new configuration (admins apply at once) */
	for (struct host *h = host_first(); h != NULL; h = h->next) {
		const struct host_config *nhc = config_host(ncfg, h->name);
		const struct host_config *ohc = h->cfg;
		bool admins_differ = ohc->admins.count != nhc->admins.count;
		for (size_t i = 0; !admins_differ && i < nhc->admins.count; i++)
			admins_differ = strcmp(ohc->admins.items[i], nhc->admins.items[i]) != 0;
		if (admins_differ)
			buf_printf(report, "host %s: admins applied\n", h->name);
		h->cfg = nhc;
	}
	/* added */
	for (size_t i = 0; i < ncfg->nhosts; i++) {
		const struct host_config *hc = &ncfg->hosts[i];
		if (host_find(hc->name) != NULL)
			continue;
		char *err = NULL;
		if (host_add(server.loop, hc, server.online, &err) < 0) {
			log_error("reload: host %s: %s", hc->name, err);
			buf_printf(report, "host %s: not added: %s\n", hc->name, err);
			free(err);
			rc = -1;
		} else {
			buf_printf(report, "host %s: added\n", hc->name);
		}
	}
	return rc;
}

int server_reload(struct buf *report)
{
	struct parley_config *ncfg;
	char *err = NULL;
	if (server_config_check(server.cfg->file, &ncfg, &err) < 0) {
		log_error("reload: %s", err);
		buf_printf(report, "%s\n", err);
		free(err);
		return -1;
	}
	for (size_t i = 0; i < ncfg->warnings.count; i++) {
		log_warning("%s", ncfg->warnings.items[i]);
		buf_printf(report, "warning: %s\n", ncfg->warnings.items[i]);
	}
	/* What a new host opens is tried before anything changes: a store,
	 * an auth backend or a certificate that fails refuses the file. */
	for (size_t i = 0; i < ncfg->nhosts; i++) {
		const struct host_config *hc = &ncfg->hosts[i];
		if (host_find(hc->name) == NULL && host_check_new(server.loop, hc, server.online, &err) < 0) {
			log_error("reload: host %s: %s", hc->name, err);
			buf_printf(report, "host %s: %s\n", hc->name, err);
			free(err);
			config_free(&ncfg);
			return -1;
		}
	}
	struct parley_config *ocfg = server.cfg;
	int lvl = log_level_parse(ncfg->loglevel);
	if (lvl >= 0 && str_changed(ocfg->loglevel, ncfg->loglevel)) {
		log_set_level((enum log_level)lvl);
		buf_printf(report, "loglevel: now %s\n", ncfg->loglevel);
		free(ocfg->loglevel);
		ocfg->loglevel = xstrdup(ncfg->loglevel);
	}
	if (ocfg->latency_threshold != ncfg->latency_threshold) {
		ocfg->latency_threshold = ncfg->latency_threshold;
		latency_set_threshold(ncfg->latency_threshold);
		buf_printf(report, "latency_threshold: now %g ms\n", ncfg->latency_threshold * 1000);
	}
	if (ocfg->latency_usage != ncfg->latency_usage) {
		ocfg->latency_usage = ncfg->latency_usage;
		latency_set_usage(ncfg->latency_usage);
		buf_printf(report, "latency_usage: now %s\n", ncfg->latency_usage ? "true" : "false");
	}
	log_reopen();
	buf_append_str(report, "log file reopened\n");
	if (memcmp(&ocfg->limits, &ncfg->limits, sizeof(ocfg->limits)) != 0) {
		ocfg->limits = ncfg->limits; /* read at each use: applies to new and current streams */
		buf_append_str(report, "limits: applied\n");
	}
	/* Read from the newest configuration at each use (new enables,
	 * resumption timeouts, bounds of current sessions). */
	if (memcmp(&ocfg->stream_management, &ncfg->stream_management, sizeof(ocfg->stream_management)) != 0)
		buf_append_str(report, "stream_management: applied\n");
	struct buf oh = { 0 }, nh = { 0 };
	http_config_dump(&ocfg->http, &oh, 0);
	http_config_dump(&ncfg->http, &nh, 0);
	if (!str_eq(oh.data, nh.data)) /* read from the newest configuration at each use */
		buf_append_str(report, "http: applied (a new bosh_path needs a restart)\n");
	buf_free(&oh);
	buf_free(&nh);
	if (!str_changed(ocfg->fast.key_file, ncfg->fast.key_file) &&
	    (ocfg->fast.enabled != ncfg->fast.enabled || ocfg->fast.token_ttl != ncfg->fast.token_ttl))
		buf_append_str(report, "fast: applied\n"); /* read at each login */
	/* What waits for a restart is logged too (SIGHUP has no one to print
	 * the report to), at each reload until parleyd restarts. */
	struct buf later = { 0 };
	restart_changes(ncfg, &later);
	char *save = NULL;
	for (char *line = later.data != NULL ? strtok_r(later.data, "\n", &save) : NULL; line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		log_warning("reload: %s", line);
		buf_printf(report, "%s\n", line);
	}
	buf_free(&later);
	int rc = reload_hosts(ncfg, report) < 0 ? 1 : 0;
	components_reload(ncfg, report);
	/* Kept until exit: the hosts now point into it. */
	server.reloaded = xrealloc(server.reloaded, (server.nreloaded + 1) * sizeof(*server.reloaded));
	server.reloaded[server.nreloaded++] = ncfg;
	s2s_reload(report);
	if (rc > 0)
		log_warning("configuration reloaded from %s, but a new host did not start", ocfg->file);
	else
		log_notice("configuration reloaded from %s", ocfg->file);
	return rc;
}
