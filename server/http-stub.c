/*
 * Stand-in for the HTTP listener's mount interface (server/http.h) in a
 * build without server/http.c: mounting fails, so parleyd refuses to start
 * with metrics or the admin API enabled instead of pretending to serve
 * them.  Remove this file (and its Makefile.am entry) where server/http.c
 * is built.  Loop thread.
 */
#include "http.h"
#include "lib/util.h"

#include <stdlib.h>

const char *http_request_header(const struct http_request *rq, const char *name)
{
	return NULL;
}

void http_reply_header(struct http_reply *r, const char *name, const char *value)
{
}

void http_reply_send(struct http_reply *r, int status, const char *content_type, const char *body, size_t len)
{
}

void http_reply_on_cancel(struct http_reply *r, void (*fn)(void *ctx), void *ctx)
{
}

int http_mount(const char *prefix, http_handler_fn *fn, void *ctx, char **error_r)
{
	*error_r = xasprintf("cannot serve %s: this build has no HTTP listener", prefix);
	return -1;
}

void http_unmount(const char *prefix)
{
}
