/*
 * The running server's global state: the loop, the configuration, start
 * time, and the actions the control socket and signals trigger.  Loop thread.
 * (Per-connection state never lives here.)
 */
#ifndef PARLEY_SERVER_H
#define PARLEY_SERVER_H

#include <ev.h>
#include <sys/types.h>
#include "config.h"

/* The daemon's control channel (the control socket of ctl/), registered by
 * parleyd's main() through server_main: its points in the daemon's life.
 * Any entry may be NULL. */
struct server_control {
	/* Open it, before privileges are dropped; -1 with a malloc'd *error_r. */
	int (*listen)(struct ev_loop *loop, const struct parley_config *cfg, char **error_r);
	/* Give it to the user parleyd drops privileges to. */
	void (*chown)(uid_t uid, gid_t gid);
	/* Take no new requests (the start of a stop); those read are answered. */
	void (*stop_accepting)(void);
	/* After the hosts stopped: free what its commands keep. */
	void (*shutdown)(void);
	/* At exit: close its connections and remove it. */
	void (*close)(void);
};

struct server_state {
	struct ev_loop *loop;
	struct parley_config *cfg;
	double started; /* ev_time() at start */
	bool online;    /* false inside parleyctl's offline mode */
	bool stopping;
	bool restart;                         /* execute parleyd again after the stop */
	char **argv;                          /* parleyd's arguments, for a restart */
	const struct server_control *control; /* NULL: none (parleyctl, tests) */
	/* Configurations read by reloads, oldest first: kept until exit, because
	 * running hosts and modules point into them.  The newest is
	 * server_config(); cfg (listeners, limits, control socket) stays the
	 * one parleyd started with. */
	struct parley_config **reloaded;
	size_t nreloaded;
};
extern struct server_state server;

/* parleyd: parse argv (-c FILE -d -t -V), start and run the daemon until
 * it stops, with control as its control channel (may be NULL).  The
 * modules must be registered before.  Returns the process's exit code. */
int server_main(int argc, char **argv, const struct server_control *control);
/* Load path and check it completely, module options included (parleyd -t,
 * reload, parleyctl config-check).  -1 with a malloc'd message naming
 * file, line and key. */
int server_config_check(const char *path, struct parley_config **cfg_r, char **error_r);

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
 * in report what needs a restart.  -1 when the file has errors or a new
 * host's store, auth or certificate fails (report says which; nothing
 * changed), 1 when all was applied but a new host whose modules refused
 * to start (report says which). */
int server_reload(struct buf *report);
/* What the configuration last loaded changes that does not run until a
 * restart, one line each ("listen: changed; restart parleyd to apply"),
 * to out; nothing when it is the one parleyd started with. */
void server_restart_pending(struct buf *out);

#endif
