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
#include <stdint.h>

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
/* Send the status line and headers of a reply whose body, len bytes,
 * follows in pieces (http_reply_write), so that a large answer is never
 * held whole.  more(ctx) is called from the loop (never inside a call of
 * these functions) whenever the connection's output has drained below a
 * low-water mark and the body is not all written: after this call and
 * after each http_reply_write that did not end the reply.  For HEAD, or
 * len 0, the reply ends here and r is released (more is never called). */
void http_reply_start(struct http_reply *r, int status, const char *content_type, uint64_t len,
                      void (*more)(void *ctx), void *ctx);
/* Queue the next bytes of a started reply (at most what is left).  True
 * when they were the last: r is then released. */
bool http_reply_write(struct http_reply *r, const char *data, size_t len);
/* Give up a started reply (its body cannot be read): the connection is
 * closed at once, so the client sees a short body; r is released. */
void http_reply_abort(struct http_reply *r);
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
/* The same, for a handler that takes request bodies as they arrive (file
 * uploads).  A request with a body is handed to fn as soon as its headers
 * are in, with an empty rq->body; fn then either answers at once (the body
 * is not read, and the connection closes after the reply) or calls
 * http_reply_take_body before it returns.  http.max_body_size does not
 * apply: the handler gives its own cap.  Requests without a body are
 * handled as on any mount. */
int http_mount_streaming(const char *prefix, http_handler_fn *fn, void *ctx, char **error_r);

/* What takes a streamed request body (http_reply_take_body). */
struct http_body_ops {
	/* The next bytes of the body, in order (only valid during the call).
	 * Return false to stop reading it until http_body_resume: the socket
	 * is then read no further than a small buffer (back-pressure), and the
	 * body timeout does not run. */
	bool (*data)(void *ctx, const char *data, size_t len);
	/* The whole body arrived: answer the reply now or later. */
	void (*end)(void *ctx);
};
/* In a handler of a streaming mount: read rq's body into ops (never inside
 * this call), at most max bytes (413 and close beyond).  When the body goes
 * wrong (the client stalls for http.body_timeout, sends bad chunking or too
 * much, or goes away), r's on_cancel callback runs and the layer answers
 * (408, 400, 413) or just closes; set on_cancel first.  Answering r before
 * end closes the connection after the reply.  A request with
 * "Expect: 100-continue" gets its 100 here. */
void http_reply_take_body(struct http_reply *r, const struct http_body_ops *ops, void *ctx, uint64_t max);
/* Read the body again after data returned false; data is called from the
 * loop later, never inside this call. */
void http_body_resume(struct http_reply *r);

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
