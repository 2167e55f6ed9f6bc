/*
 * The running server's global state: the loop, the configuration, start
 * time, and the actions the control socket and signals trigger.  Loop thread.
 * (Per-connection state never lives here.)
 */
#ifndef PARLEY_SERVER_H
#define PARLEY_SERVER_H

#include <ev.h>
#include "config.h"

struct server_state {
	struct ev_loop *loop;
	struct parley_config *cfg;
	double started;              /* ev_time() at start */
	bool online;                 /* false inside parleyctl's offline mode */
	bool stopping;
	bool restart;                /* execute parleyd again after the stop */
	char **argv;                 /* parleyd's arguments, for a restart */
	/* Configurations read by reloads, oldest first: kept until exit, because
	 * running hosts and modules point into them.  The newest is
	 * server_config(); cfg (listeners, limits, control socket) stays the
	 * one parleyd started with. */
	struct parley_config **reloaded;
	size_t nreloaded;
};
extern struct server_state server;

/* The configuration last loaded (cfg, or the newest a reload read). */
const struct parley_config *server_config(void);
/* Free the configurations reloads kept (at exit). */
void server_free_configs(void);

/* Begin a graceful shutdown: stop accepting, close every stream with
 * <system-shutdown/>, let output drain, then leave the loop. */
void server_stop(void);
/* Stop as server_stop, then main() executes parleyd again with the same
 * arguments (same process id: a service manager keeps tracking it). */
void server_restart(void);
/* Why an in-place restart cannot work here (a listener on a port below 1024
 * after dropping root), or NULL when it can. */
const char *server_restart_refusal(void);
/* Re-read the configuration file; apply what can change live and describe
 * in report what needs a restart.  -1 when the file has errors (report says
 * which). */
int server_reload(struct buf *report);

#endif
