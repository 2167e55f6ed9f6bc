/*
 * Server-wide actions: graceful stop and configuration reload.  Loop thread.
 *
 * Stopping closes every client stream with <system-shutdown/>, then waits
 * (at most a few seconds) for their output to drain before leaving the loop;
 * main() then stops the hosts, which lets pending storage work finish.
 */
#include "server.h"
#include "listener.h"
#include "c2s.h"
#include "stream.h"
#include "log.h"
#include "ctl.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define STOP_GRACE 3.0

struct server_state server;

static ev_timer stop_timer;
static double stop_started;

static void stop_check_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	if (streams_count() == 0 || ev_now(loop) - stop_started > STOP_GRACE) {
		ev_timer_stop(loop, w);
		ev_break(loop, EVBREAK_ALL);
	}
}

void server_stop(void)
{
	if (server.stopping)
		return;
	server.stopping = true;
	log_notice("parleyd stopping: closing %u client connections", c2s_count());
	listeners_close();
	ctl_stop_accepting();
	c2s_shutdown_all();
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

static bool str_changed(const char *a, const char *b)
{
	return !str_eq(a, b);
}

int server_reload(struct buf *report)
{
	struct parley_config *ncfg;
	char *err = NULL;
	if (config_load(server.cfg->file, &ncfg, &err) < 0) {
		log_error("reload: %s", err);
		buf_printf(report, "%s\n", err);
		free(err);
		return -1;
	}
	struct parley_config *ocfg = server.cfg;
	int lvl = log_level_parse(ncfg->loglevel);
	if (lvl >= 0 && str_changed(ocfg->loglevel, ncfg->loglevel)) {
		log_set_level((enum log_level)lvl);
		buf_printf(report, "loglevel: now %s\n", ncfg->loglevel);
		free(ocfg->loglevel);
		ocfg->loglevel = xstrdup(ncfg->loglevel);
	}
	log_reopen();
	buf_append_str(report, "log file reopened\n");
	/* What cannot change on a running server yet: say so. */
	bool hosts_differ = ocfg->nhosts != ncfg->nhosts;
	for (size_t i = 0; !hosts_differ && i < ncfg->nhosts; i++)
		hosts_differ = strcmp(ocfg->hosts[i].name, ncfg->hosts[i].name) != 0;
	if (hosts_differ)
		buf_append_str(report, "hosts: changed; restart parleyd to apply\n");
	bool listen_differ = ocfg->nlisten != ncfg->nlisten;
	for (size_t i = 0; !listen_differ && i < ncfg->nlisten; i++)
		listen_differ = ocfg->listen[i].port != ncfg->listen[i].port ||
		                str_changed(ocfg->listen[i].address, ncfg->listen[i].address) ||
		                ocfg->listen[i].starttls != ncfg->listen[i].starttls ||
		                ocfg->listen[i].direct_tls != ncfg->listen[i].direct_tls;
	if (listen_differ)
		buf_append_str(report, "listen: changed; restart parleyd to apply\n");
	if (memcmp(&ocfg->limits, &ncfg->limits, sizeof(ocfg->limits)) != 0) {
		ocfg->limits = ncfg->limits;   /* read at each use: applies to new and current streams */
		buf_append_str(report, "limits: applied\n");
	}
	log_notice("configuration reloaded from %s", ocfg->file);
	config_free(&ncfg);
	return 0;
}
