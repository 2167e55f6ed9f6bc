/*
 * HTTP/1.1 on the loop: the listeners of `module: http` (plain, or TLS with
 * direct_tls and the hosts' certificates by SNI), requests parsed by
 * http_parser, keep-alive, limits (the http section), and handlers mounted
 * at path prefixes.  XMPP over WebSocket (server/websocket.c) takes over
 * a connection at http.websocket_path.  Loop thread only.
 *
 * A handler answers each request exactly once, at once or later from the
 * loop; while a reply is outstanding the connection reads no further
 * request (pipelined requests wait, in order).
 */
#ifndef PARLEY_HTTP_H
#define PARLEY_HTTP_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"

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
/* A request header by name (case-insensitive); NULL when absent.  Repeated
 * headers are joined with ", " (RFC 9110 §5.3).  rq must be one given to a
 * handler (it is found in its connection). */
const char *http_request_header(const struct http_request *rq, const char *name);

struct http_reply; /* one per request; answer it exactly once, now or later */
/* Add a response header before http_reply_send.  Name and value must not
 * hold CR or LF (such a header is dropped, and logged). */
void http_reply_header(struct http_reply *r, const char *name, const char *value);
/* Send the response (Content-Length set from len) and release r.  The body
 * is left out for HEAD requests (Content-Length stays that of GET). */
void http_reply_send(struct http_reply *r, int status, const char *content_type, const char *body,
                     size_t len);
/* Called instead when the connection goes away before a deferred reply was
 * sent: the handler must drop r (and cancel its work).  Set while handling. */
void http_reply_on_cancel(struct http_reply *r, void (*fn)(void *ctx), void *ctx);

/* A handler answers rq through r (at once, or later from the loop). */
typedef void http_handler_fn(void *ctx, const struct http_request *rq, struct http_reply *r);
/* Mount fn at prefix ("/metrics", "/api/"): the longest matching prefix
 * wins; every http listener serves every mount.  A prefix ending in '/'
 * matches every path below it; another matches itself and the paths below
 * it ("/metrics" serves "/metrics" and "/metrics/x", not "/metricsx").
 * -1 with *error_r when the prefix is taken. */
int http_mount(const char *prefix, http_handler_fn *fn, void *ctx, char **error_r);
void http_unmount(const char *prefix);

/* ---- additions ------------------------------------------------------------- */

/* The reason phrase of a status ("Not Found"). */
const char *http_status_text(int status);
/* Send a short text/plain error reply (status and its reason). */
void http_reply_error(struct http_reply *r, int status, const char *detail);

/* Register the http listener kind and mount the built-in handlers
 * (host-meta); before listeners_open. */
void http_start(void);
/* Take over an accepted, non-blocking socket of an http listener (what
 * the listener calls; tests call it with a socketpair).  lc and limits
 * must outlive the connection. */
void http_accept(struct ev_loop *loop, int fd, const char *ip, unsigned port, const struct listen_config *lc,
                 const struct limits_config *limits);
/* Close every HTTP connection that is not a WebSocket stream (server stop):
 * outstanding replies are cancelled. */
void http_close_all(void);
/* HTTP connections open now (WebSocket streams are client streams). */
unsigned http_count(void);

/* server/http-hostmeta.c: mount /.well-known/host-meta[.json]. */
void http_hostmeta_start(void);
/* Add the CORS headers of the http section for rq's Origin, if allowed;
 * true when they were added. */
bool http_cors_headers(const struct http_request *rq, struct http_reply *r);

#endif
