/*
 * The HTTP mount interface: modules (BOSH, WebSocket, the admin API,
 * metrics, upload) mount a handler at a path prefix, and every http
 * listener serves every mount.  Loop thread.
 */
#ifndef PARLEY_HTTP_H
#define PARLEY_HTTP_H

#include <stdbool.h>
#include <stddef.h>

/* A parsed request, valid until the reply is sent or the request cancelled. */
struct http_request {
	const char *method;    /* "GET", "POST", "PUT", "DELETE", "OPTIONS", "HEAD" */
	const char *path;      /* percent-decoded path, without the query */
	const char *query;     /* raw query string after '?', or NULL */
	const char *host;      /* Host header without the port, lower case, or NULL */
	const char *remote_ip; /* the peer address */
	bool tls;              /* arrived over TLS */
	const char *body;      /* request body (NUL-terminated for convenience) */
	size_t body_len;
};
/* A request header by name (case-insensitive); NULL when absent. */
const char *http_request_header(const struct http_request *rq, const char *name);

struct http_reply; /* one per request; answer it exactly once, now or later */
/* Add a response header before http_reply_send. */
void http_reply_header(struct http_reply *r, const char *name, const char *value);
/* Send the response (Content-Length set from len) and release r. */
void http_reply_send(struct http_reply *r, int status, const char *content_type, const char *body,
                     size_t len);
/* Called instead when the connection goes away before a deferred reply was
 * sent: the handler must drop r (and cancel its work).  Set while handling. */
void http_reply_on_cancel(struct http_reply *r, void (*fn)(void *ctx), void *ctx);

/* A handler answers rq through r (at once, or later from the loop). */
typedef void http_handler_fn(void *ctx, const struct http_request *rq, struct http_reply *r);
/* Mount fn at prefix ("/metrics", "/api/"): the longest matching prefix
 * wins; every http listener serves every mount.  -1 with *error_r when the
 * prefix is taken. */
int http_mount(const char *prefix, http_handler_fn *fn, void *ctx, char **error_r);
void http_unmount(const char *prefix);

#endif
