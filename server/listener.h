/*
 * Listening sockets from the config's listen entries (IPv4 and IPv6).
 * Loop thread.
 */
#ifndef PARLEY_LISTENER_H
#define PARLEY_LISTENER_H

#include <ev.h>
#include "config.h"

/* Bind every listener (before dropping privileges).  -1 with a message. */
int listeners_open(const struct parley_config *cfg, char **error_r);
/* Start accepting on the loop. */
void listeners_start(struct ev_loop *loop);
void listeners_close(void);

#endif
