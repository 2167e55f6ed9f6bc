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
};
extern struct server_state server;

/* Begin a graceful shutdown: stop accepting, close every stream with
 * <system-shutdown/>, let output drain, then leave the loop. */
void server_stop(void);
/* Re-read the configuration file; apply what can change live and describe
 * in report what needs a restart.  -1 when the file has errors (report says
 * which). */
int server_reload(struct buf *report);

#endif
