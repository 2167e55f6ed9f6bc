/*
 * Web administration in the browser at /admin/ of the http listeners
 * (web-admin.c): server-rendered pages for the admins of the hosts named
 * in admin_web.hosts, each action run through the command table
 * (ctl_run), as parleyctl and the HTTP API run it.  Loop thread.
 */
#ifndef PARLEY_WEB_ADMIN_H
#define PARLEY_WEB_ADMIN_H

#include <ev.h>
#include "server/config.h"
#include "server/http.h"

/* Read the static files and mount /admin/ when cfg enables the web
 * admin.  -1 with a malloc'd *error_r (the prefix taken). */
int web_admin_start(struct ev_loop *loop, const struct parley_config *cfg, char **error_r);
/* Unmount /admin/ (the start of a stop); work already started finishes. */
void web_admin_stop_accepting(void);
/* Unmount, cancel what still runs (its pages answer 503) and end every
 * session; at exit. */
void web_admin_stop(void);

/* The folder of the static files: $PARLEY_WEB_DIR when set, else the
 * installed one (PKGDATADIR/web), else ./share/web. */
const char *web_admin_static_dir(void);

#endif
