/*
 * Listening sockets from the config's listen entries (IPv4 and IPv6).
 * Loop thread.
 */
#ifndef PARLEY_LISTENER_H
#define PARLEY_LISTENER_H

#include <ev.h>
#include "config.h"

/* What takes an accepted socket (non-blocking, TCP_NODELAY set) of a
 * listener of one module (LISTEN_C2S, ...).  The stream kinds register
 * theirs before listeners_open; c2s is built in. */
typedef void listener_accept_fn(struct ev_loop *loop, int fd, const char *ip, unsigned port,
                                const struct listen_config *lc, const struct limits_config *limits);
void listener_register(int module, listener_accept_fn *fn);

/* Bind every listener (before dropping privileges).  -1 with a message. */
int listeners_open(const struct parley_config *cfg, char **error_r);
/* Start accepting on the loop. */
void listeners_start(struct ev_loop *loop);
void listeners_close(void);

#endif
