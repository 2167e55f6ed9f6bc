/*
 * HTTP/1.1 connections on the loop.  Loop thread only.
 *
 * An HTTP connection is a struct stream (server/stream.c) with a transport
 * whose input runs http_parser (Node's parser, from Debian's
 * libhttp-parser) instead of the XML parser: the socket, TLS (direct_tls
 * listeners; certificates by SNI), the output queue and the lingering
 * close are the streams' own.  A WebSocket upgrade swaps the transport
 * for server/websocket.c's and hands the stream to the client state
 * machine (c2s_attach).
 *
 * Invariants:
 * - One request at a time: after a complete request the parser is paused
 *   and the rest of the input kept in c->in until the reply is sent.  The
 *   socket is still read meanwhile (so that a client that goes cancels a
 *   deferred reply), up to one request's worth; then reading pauses.
 * - Every limit is checked while the bytes arrive: the request line and
 *   headers (max_header_size, max_headers: 431), the body (max_body_size:
 *   413, told by Content-Length before any of it is read), the time to
 *   send the request line and headers (request_timeout: 408, counted from
 *   the first byte, so a client trickling bytes is cut off), the longest
 *   pause in a body (body_timeout: 408; every byte starts it again, and it
 *   stops while a handler holds the body back) and the idle time between
 *   requests (keepalive_timeout).  An error reply closes the connection.
 * - A streaming mount (http_mount_streaming) gets a request with a body
 *   once its headers are in: the parser pauses at the end of the
 *   headers, the handler runs, and the body goes to its http_body_ops as
 *   it is parsed, its own cap replacing max_body_size.  When data says
 *   stop, the parser pauses again and the socket is read only up to
 *   HTTP_BODY_AHEAD more (back-pressure); http_body_resume continues from
 *   a zero timer, never inside the call.  A reply sent before the body is
 *   complete closes the connection (what is left of the body cannot be
 *   told from a next request).
 * - A streamed reply (http_reply_start) is fed by its handler's more
 *   callback, called from drain_w, a prepare watcher of the lowest
 *   priority (so it runs after the streams' flush) when the output queue
 *   is below HTTP_DRAIN_LOW: a download holds a piece or two, not the
 *   file, however slowly the client reads.
 * - struct http_request points into the connection's buffers, which are
 *   only reset when the next request starts, after the reply.
 * - A reply outstanding when the connection goes is cancelled through its
 *   on_cancel callback, then freed here.
 */
#include "http.h"
#include "bosh.h"
#include "httppoll.h"
#include "c2s.h"
#include "listener.h"
#include "server.h"
#include "stream.h"
#include "websocket.h"
#include "lib/latency.h"
#include "lib/log.h"

#include <assert.h>
#include <http_parser.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define HTTP_MAX_OUTPUT (64u << 20) /* replies queued on one connection */
#define HTTP_DRAIN_LOW (128u << 10) /* a streamed reply wants more below this */
#define HTTP_BODY_AHEAD (64u << 10) /* input kept while a streamed body is paused */
#define IP_BUCKETS 256

struct http_header {
	struct buf name, value;
};

struct http_conn;

struct http_reply {
	struct http_conn *conn;
	struct buf headers; /* "Name: value\r\n" lines */
	bool head;          /* HEAD: no body */
	bool keep_alive;
	void (*cancel)(void *ctx);
	void *cancel_ctx;
	/* a streamed reply (http_reply_start): headers sent, body follows */
	bool streaming;
	int status;
	uint64_t left; /* body bytes still to come */
	void (*more)(void *ctx);
	void *more_ctx;
};

struct http_ip {
	struct http_ip *next;
	unsigned count;
	char ip[64];
};

struct http_conn {
	struct stream *st;
	const struct listen_config *lc;
	const struct limits_config *limits;
	struct http_ip *ipc;
	http_parser parser;
	struct buf in; /* input not yet given to the parser */
	/* the request being read */
	struct buf url, body;
	struct http_header *headers;
	size_t nheaders, headers_cap;
	bool in_value;       /* the last header callback was a value */
	size_t header_bytes; /* request line and headers so far */
	int error_status;    /* a limit broken in a callback: 413, 431, 414 */
	bool complete;       /* on_message_complete ran */
	bool keep_alive;
	double started;   /* ev_now of the request's first byte; 0: between requests */
	bool in_body;     /* headers in, body not complete */
	double body_last; /* ev_now of the last body byte (or of a resume) */
	/* a body taken as it arrives (a streaming mount) */
	bool early;      /* headers in for a streaming mount: dispatch before the body */
	bool dispatched; /* handed to its handler before its body was complete */
	const struct http_body_ops *body_ops;
	void *body_ctx;
	uint64_t body_max, body_got;
	bool body_paused;   /* the handler asked to stop (http_body_resume) */
	ev_timer resume_w;  /* runs http_body_resume's work from the loop */
	ev_prepare drain_w; /* a streamed reply waits for its output to drain */
	/* the request handed to a handler */
	struct http_request rq;
	char *path, *host;
	struct http_reply *pending; /* a deferred reply */
	bool dispatching;           /* inside a handler call */
	struct http_conn *prev, *next;
};

struct http_mount_entry {
	char *prefix;
	size_t len;
	http_handler_fn *fn;
	void *ctx;
	bool stream_body; /* http_mount_streaming */
};

static struct http_mount_entry *mounts;
static size_t nmounts;
static size_t nstreaming; /* mounts with stream_body */
static struct http_ip *ip_table[IP_BUCKETS];
static struct http_conn *conns_head;
static unsigned nconns;

static const struct stream_ops http_stream_ops;
static const struct stream_transport http_transport;
static bool http_process(struct http_conn *c);
static const struct http_mount_entry *http_find_mount(const char *path);
static char *http_decode_path(const char *s, size_t len);

static const struct http_config *http_cfg(void)
{
	return &server_config()->http;
}

/* ---- per-address counts ------------------------------------------------------ */

static struct http_ip *http_ip_get(const char *ip)
{
	uint32_t b = hash_str(ip) % IP_BUCKETS;
	for (struct http_ip *e = ip_table[b]; e != NULL; e = e->next)
		if (strcmp(e->ip, ip) == 0)
			return e;
	struct http_ip *e = xcalloc(1, sizeof(*e));
	snprintf(e->ip, sizeof(e->ip), "%s", ip);
	e->next = ip_table[b];
	ip_table[b] = e;
	return e;
}

static void http_ip_release(struct http_ip **ipcp)
{
	struct http_ip *ipc = *ipcp;
	*ipcp = NULL;
	if (ipc == NULL || --ipc->count > 0)
		return;
	uint32_t b = hash_str(ipc->ip) % IP_BUCKETS;
	for (struct http_ip **pp = &ip_table[b]; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == ipc) {
			*pp = ipc->next;
			free(ipc);
			return;
		}
	}
}

/* ---- status lines --------------------------------------------------------------- */

const char *http_status_text(int status)
{
	switch (status) {
	case 101: return "Switching Protocols";
	case 200: return "OK";
	case 201: return "Created";
	case 204: return "No Content";
	case 206: return "Partial Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 415: return "Unsupported Media Type";
	case 416: return "Range Not Satisfiable";
	case 422: return "Unprocessable Content";
	case 426: return "Upgrade Required";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	default:
		return status < 300   ? "OK"
		       : status < 400 ? "Redirect"
		       : status < 500 ? "Client Error"
		                      : "Server Error";
	}
}

/* ---- the request ---------------------------------------------------------------- */

static void http_request_reset(struct http_conn *c)
{
	buf_reset(&c->url);
	buf_free(&c->body);
	for (size_t i = 0; i < c->nheaders; i++) {
		buf_free(&c->headers[i].name);
		buf_free(&c->headers[i].value);
	}
	c->nheaders = 0;
	c->in_value = false;
	c->header_bytes = 0;
	c->error_status = 0;
	c->complete = false;
	free(c->path);
	free(c->host);
	c->path = c->host = NULL;
	memset(&c->rq, 0, sizeof(c->rq));
}

const char *http_request_header(const struct http_request *rq, const char *name)
{
	/* rq is the first member's address of nothing else: find the conn */
	const struct http_conn *c =
	        (const struct http_conn *)((const char *)rq - offsetof(struct http_conn, rq));
	for (size_t i = 0; i < c->nheaders; i++)
		if (c->headers[i].name.data != NULL && strcasecmp(c->headers[i].name.data, name) == 0)
			return c->headers[i].value.data != NULL ? c->headers[i].value.data : "";
	return NULL;
}

static struct http_conn *conn_of(http_parser *p)
{
	return p->data;
}

static int http_limit(struct http_conn *c, int status)
{
	c->error_status = status;
	return -1;
}

static int on_message_begin(http_parser *p)
{
	struct http_conn *c = conn_of(p);
	http_request_reset(c);
	return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
	struct http_conn *c = conn_of(p);
	c->header_bytes += len;
	if (c->header_bytes > http_cfg()->max_header_size)
		return http_limit(c, 414);
	buf_append(&c->url, at, len);
	return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
	struct http_conn *c = conn_of(p);
	const struct http_config *hc = http_cfg();
	c->header_bytes += len;
	if (c->header_bytes > hc->max_header_size)
		return http_limit(c, 431);
	if (c->nheaders == 0 || c->in_value) {
		if (c->nheaders >= hc->max_headers)
			return http_limit(c, 431);
		if (c->nheaders == c->headers_cap) {
			c->headers_cap = c->headers_cap == 0 ? 16 : c->headers_cap * 2;
			c->headers = xrealloc(c->headers, c->headers_cap * sizeof(*c->headers));
		}
		memset(&c->headers[c->nheaders], 0, sizeof(c->headers[0]));
		c->nheaders++;
		c->in_value = false;
	}
	buf_append(&c->headers[c->nheaders - 1].name, at, len);
	return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
	struct http_conn *c = conn_of(p);
	c->header_bytes += len;
	if (c->header_bytes > http_cfg()->max_header_size)
		return http_limit(c, 431);
	if (c->nheaders == 0)
		return http_limit(c, 400);
	c->in_value = true;
	struct buf *v = &c->headers[c->nheaders - 1].value;
	if (v->data == NULL)
		buf_append(v, "", 0); /* an empty value is "" */
	buf_append(v, at, len);
	return 0;
}

/* Join repeated headers ("a, b"), so that lookups see one value. */
static void http_join_headers(struct http_conn *c)
{
	for (size_t i = 0; i < c->nheaders; i++) {
		if (c->headers[i].value.data == NULL)
			buf_append(&c->headers[i].value, "", 0);
		for (size_t j = i + 1; j < c->nheaders;) {
			if (strcasecmp(c->headers[i].name.data, c->headers[j].name.data) != 0) {
				j++;
				continue;
			}
			buf_append_str(&c->headers[i].value, ", ");
			if (c->headers[j].value.data != NULL)
				buf_append_str(&c->headers[i].value, c->headers[j].value.data);
			buf_free(&c->headers[j].name);
			buf_free(&c->headers[j].value);
			memmove(&c->headers[j], &c->headers[j + 1],
			        (c->nheaders - j - 1) * sizeof(c->headers[0]));
			c->nheaders--;
		}
	}
}

/* Whether the request whose headers are in goes to a streaming mount. */
static bool http_streaming_target(struct http_conn *c)
{
	if (nstreaming == 0 || c->url.data == NULL)
		return false;
	struct http_parser_url u;
	http_parser_url_init(&u);
	if (http_parser_parse_url(c->url.data, c->url.len, c->parser.method == HTTP_CONNECT, &u) != 0 ||
	    !(u.field_set & (1 << UF_PATH)))
		return false; /* the dispatch says why */
	char *path = http_decode_path(c->url.data + u.field_data[UF_PATH].off, u.field_data[UF_PATH].len);
	if (path == NULL)
		return false;
	const struct http_config *hc = http_cfg();
	bool streaming = !(hc->websocket && strcmp(path, hc->websocket_path) == 0);
	if (streaming) {
		const struct http_mount_entry *m = http_find_mount(path);
		streaming = m != NULL && m->stream_body;
	}
	free(path);
	return streaming;
}

/* RFC 9110 section 10.1.1: a request that expects 100-continue gets it
 * as soon as its headers are accepted, not after its body; an HTTP/1.0
 * one's expectation is ignored. */
static void http_expect_continue(struct http_conn *c)
{
	const char *expect = http_request_header(&c->rq, "Expect");
	if (expect != NULL && strcasecmp(expect, "100-continue") == 0 &&
	    (c->parser.http_major > 1 || (c->parser.http_major == 1 && c->parser.http_minor >= 1)))
		stream_write_raw(c->st, "HTTP/1.1 100 Continue\r\n\r\n", 25);
}

static int on_headers_complete(http_parser *p)
{
	struct http_conn *c = conn_of(p);
	http_join_headers(c);
	bool body = (p->flags & F_CHUNKED) || ((p->flags & F_CONTENTLENGTH) && p->content_length > 0);
	if (body && !p->upgrade && http_streaming_target(c)) {
		/* handed over now; its handler sets the cap */
		c->early = true;
		c->keep_alive = http_should_keep_alive(p) != 0;
		c->in_body = true;
		c->body_last = ev_now(c->st->loop);
		http_parser_pause(p, 1);
		return 0;
	}
	/* Content-Length beyond the cap: refused before any of it is read. */
	if ((p->flags & F_CONTENTLENGTH) && p->content_length > http_cfg()->max_body_size)
		return http_limit(c, 413);
	c->in_body = body;
	c->body_last = ev_now(c->st->loop);
	if (body)
		http_expect_continue(c);
	return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
	struct http_conn *c = conn_of(p);
	c->body_last = ev_now(c->st->loop);
	if (c->dispatched) {
		if (c->body_ops == NULL)
			return http_limit(c, 500); /* not reached: no data without a reader */
		if (c->body_got + len > c->body_max)
			return http_limit(c, 413);
		c->body_got += len;
		bool more = c->body_ops->data(c->body_ctx, at, len);
		if (c->pending == NULL || c->st->closing || c->st->dead) {
			/* answered from data: no more of the body */
			http_parser_pause(p, 1);
			return 0;
		}
		if (!more) {
			c->body_paused = true;
			http_parser_pause(p, 1);
		}
		return 0;
	}
	if (c->body.len + len > http_cfg()->max_body_size)
		return http_limit(c, 413);
	buf_append(&c->body, at, len);
	return 0;
}

static int on_message_complete(http_parser *p)
{
	struct http_conn *c = conn_of(p);
	c->complete = true;
	c->in_body = false;
	c->keep_alive = http_should_keep_alive(p) != 0;
	http_parser_pause(p, 1); /* one request at a time */
	return 0;
}

static const http_parser_settings parser_settings = {
	.on_message_begin = on_message_begin,
	.on_url = on_url,
	.on_header_field = on_header_field,
	.on_header_value = on_header_value,
	.on_headers_complete = on_headers_complete,
	.on_body = on_body,
	.on_message_complete = on_message_complete,
};

/* ---- replies -------------------------------------------------------------------- */

static bool header_text_ok(const char *s)
{
	return strpbrk(s, "\r\n") == NULL;
}

void http_reply_header(struct http_reply *r, const char *name, const char *value)
{
	if (!header_text_ok(name) || !header_text_ok(value) || name[0] == '\0') {
		log_warning("http: a handler gave a header with a line break (%s): dropped",
		            header_text_ok(name) ? name : "?");
		return;
	}
	buf_printf(&r->headers, "%s: %s\r\n", name, value);
}

void http_reply_on_cancel(struct http_reply *r, void (*fn)(void *ctx), void *ctx)
{
	r->cancel = fn;
	r->cancel_ctx = ctx;
}

static void http_reply_free(struct http_reply *r)
{
	buf_free(&r->headers);
	free(r);
}

/* Continue with the pipelined input after a deferred reply. */
static void http_continue(struct http_conn *c)
{
	struct stream *st = c->st;
	if (st->dead || st->closing)
		return;
	if (st->paused)
		stream_resume(st); /* runs http_resume, then reads again */
	else
		http_process(c);
}

/* The status line and headers of r into b. */
static void http_reply_head(struct http_reply *r, struct buf *b, int status, const char *content_type,
                            uint64_t len)
{
	struct http_conn *c = r->conn;
	if (c->dispatched) {
		/* answered before its body was read: the rest of the body cannot
		 * be told from a next request */
		r->keep_alive = false;
		c->body_ops = NULL;
	}
	buf_printf(b, "HTTP/1.1 %d %s\r\n", status, http_status_text(status));
	char date[64];
	time_t now = time(NULL);
	struct tm tm;
	if (gmtime_r(&now, &tm) != NULL && strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm) > 0)
		buf_printf(b, "Date: %s\r\n", date);
	if (content_type != NULL && header_text_ok(content_type))
		buf_printf(b, "Content-Type: %s\r\n", content_type);
	buf_printf(b, "Content-Length: %" PRIu64 "\r\n", len);
	if (!r->keep_alive)
		buf_append_str(b, "Connection: close\r\n");
	if (r->headers.len > 0)
		buf_append(b, r->headers.data, r->headers.len);
	buf_append_str(b, "\r\n");
}

/* The reply is all queued: release it, then close or go on with the
 * next request. */
static void http_reply_done(struct http_reply *r, int status)
{
	struct http_conn *c = r->conn;
	struct stream *st = c->st;
	log_debug("http %llu from %s: %s %s: %d", (unsigned long long)st->id, st->ip,
	          c->rq.method != NULL ? c->rq.method : "-", c->rq.path != NULL ? c->rq.path : "-", status);
	bool keep = r->keep_alive;
	c->pending = NULL;
	http_reply_free(r);
	c->started = 0;
	ev_prepare_stop(st->loop, &c->drain_w);
	if (!keep) {
		stream_finish(st);
		return;
	}
	if (!c->dispatching)
		http_continue(c);
}

void http_reply_send(struct http_reply *r, int status, const char *content_type, const char *body, size_t len)
{
	struct http_conn *c = r->conn;
	assert(c != NULL && c->pending == r && !r->streaming);
	struct buf b = { 0 };
	http_reply_head(r, &b, status, content_type, len);
	if (!r->head && len > 0)
		buf_append(&b, body, len);
	stream_write_raw(c->st, b.data, b.len);
	buf_free(&b);
	http_reply_done(r, status);
}

/* Wait for the output of a streamed reply to drain before asking for more:
 * drain_w runs after the streams' own prepare watcher has flushed. */
static void http_drain_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	(void)revents;
	struct http_conn *c = w->data;
	struct http_reply *r = c->pending;
	if (c->st->dead || c->st->closing || r == NULL || !r->streaming) {
		ev_prepare_stop(loop, w);
		return;
	}
	if (c->st->out.len > HTTP_DRAIN_LOW)
		return; /* the socket is full: its write watcher wakes us */
	ev_prepare_stop(loop, w);
	latency_begin(LATENCY_STREAM_WRITE, "http-drained");
	r->more(r->more_ctx);
	latency_end();
}

void http_reply_start(struct http_reply *r, int status, const char *content_type, uint64_t len,
                      void (*more)(void *ctx), void *ctx)
{
	struct http_conn *c = r->conn;
	assert(c != NULL && c->pending == r && !r->streaming);
	struct buf b = { 0 };
	http_reply_head(r, &b, status, content_type, len);
	stream_write_raw(c->st, b.data, b.len);
	buf_free(&b);
	if (r->head || len == 0) {
		http_reply_done(r, status);
		return;
	}
	r->streaming = true;
	r->status = status;
	r->left = len;
	r->more = more;
	r->more_ctx = ctx;
	log_debug("http %llu from %s: %s %s: %d, %" PRIu64 " bytes to stream", (unsigned long long)c->st->id,
	          c->st->ip, c->rq.method, c->rq.path != NULL ? c->rq.path : "-", status, len);
	ev_prepare_start(c->st->loop, &c->drain_w);
}

bool http_reply_write(struct http_reply *r, const char *data, size_t len)
{
	struct http_conn *c = r->conn;
	assert(c != NULL && c->pending == r && r->streaming && len <= r->left);
	stream_write_raw(c->st, data, len);
	r->left -= len;
	if (r->left == 0) {
		http_reply_done(r, r->status);
		return true;
	}
	ev_prepare_start(c->st->loop, &c->drain_w);
	return false;
}

void http_reply_abort(struct http_reply *r)
{
	struct http_conn *c = r->conn;
	assert(c != NULL && c->pending == r);
	log_info("http %llu from %s: %s %s: reply given up, closing", (unsigned long long)c->st->id,
	         c->st->ip, c->rq.method != NULL ? c->rq.method : "-", c->rq.path != NULL ? c->rq.path : "-");
	c->pending = NULL;
	http_reply_free(r);
	ev_prepare_stop(c->st->loop, &c->drain_w);
	stream_abort(c->st);
}

/* Drop the outstanding reply (its handler is told through on_cancel). */
static void http_cancel_pending(struct http_conn *c)
{
	struct http_reply *r = c->pending;
	c->body_ops = NULL;
	c->body_paused = false;
	c->dispatched = false;
	ev_timer_stop(c->st->loop, &c->resume_w);
	ev_prepare_stop(c->st->loop, &c->drain_w);
	if (r == NULL)
		return;
	c->pending = NULL;
	if (r->cancel != NULL)
		r->cancel(r->cancel_ctx);
	http_reply_free(r);
}

/* ---- streamed request bodies -------------------------------------------------- */

void http_reply_take_body(struct http_reply *r, const struct http_body_ops *ops, void *ctx, uint64_t max)
{
	struct http_conn *c = r->conn;
	assert(c != NULL && c->pending == r && c->dispatched && c->dispatching && c->body_ops == NULL);
	c->body_ops = ops;
	c->body_ctx = ctx;
	c->body_max = max;
	c->body_got = 0;
	c->body_paused = false;
	c->body_last = ev_now(c->st->loop);
	http_expect_continue(c);
	/* the caller's http_process goes on reading after the handler */
}

static void http_resume_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	struct http_conn *c = w->data;
	latency_begin(LATENCY_STREAM_READ, "http-body-resume");
	http_continue(c);
	latency_end();
}

void http_body_resume(struct http_reply *r)
{
	struct http_conn *c = r->conn;
	assert(c != NULL && c->pending == r);
	if (!c->body_paused || c->body_ops == NULL)
		return;
	c->body_paused = false;
	c->body_last = ev_now(c->st->loop); /* the wait was ours, not the client's */
	http_parser_pause(&c->parser, 0);
	ev_timer_set(&c->resume_w, 0, 0);
	ev_timer_start(c->st->loop, &c->resume_w);
}

/* Reading the body of a request whose handler takes it as it comes. */
static bool http_body_flowing(const struct http_conn *c)
{
	return c->dispatched && c->body_ops != NULL && !c->body_paused;
}

void http_reply_error(struct http_reply *r, int status, const char *detail)
{
	struct buf b = { 0 };
	buf_printf(&b, "%d %s%s%s\n", status, http_status_text(status), detail != NULL ? ": " : "",
	           detail != NULL ? detail : "");
	http_reply_send(r, status, "text/plain; charset=utf-8", b.data, b.len);
	buf_free(&b);
}

static struct http_reply *http_reply_new(struct http_conn *c, bool keep_alive)
{
	struct http_reply *r = xcalloc(1, sizeof(*r));
	r->conn = c;
	r->keep_alive = keep_alive && !server.stopping;
	c->pending = r;
	return r;
}

/* An error before a request could be handled: reply and close. */
static void http_fail(struct http_conn *c, int status, const char *detail)
{
	log_info("http %llu from %s: %d %s%s%s", (unsigned long long)c->st->id, c->st->ip, status,
	         http_status_text(status), detail != NULL ? ": " : "", detail != NULL ? detail : "");
	if (c->pending != NULL)
		return; /* a reply is outstanding: no second one */
	struct http_reply *r = http_reply_new(c, false);
	http_reply_error(r, status, detail);
}

/* ---- mounts ------------------------------------------------------------------------ */

int http_mount(const char *prefix, http_handler_fn *fn, void *ctx, char **error_r)
{
	if (prefix == NULL || prefix[0] != '/') {
		*error_r = xasprintf("http: mount prefix %s does not start with '/'",
		                     prefix != NULL ? prefix : "(null)");
		return -1;
	}
	for (size_t i = 0; i < nmounts; i++) {
		if (strcmp(mounts[i].prefix, prefix) == 0) {
			*error_r = xasprintf("http: %s is already mounted", prefix);
			return -1;
		}
	}
	mounts = xrealloc(mounts, (nmounts + 1) * sizeof(*mounts));
	mounts[nmounts++] = (struct http_mount_entry){ xstrdup(prefix), strlen(prefix), fn, ctx, false };
	return 0;
}

int http_mount_streaming(const char *prefix, http_handler_fn *fn, void *ctx, char **error_r)
{
	if (http_mount(prefix, fn, ctx, error_r) < 0)
		return -1;
	mounts[nmounts - 1].stream_body = true;
	nstreaming++;
	return 0;
}

void http_unmount(const char *prefix)
{
	for (size_t i = 0; i < nmounts; i++) {
		if (strcmp(mounts[i].prefix, prefix) == 0) {
			if (mounts[i].stream_body)
				nstreaming--;
			free(mounts[i].prefix);
			mounts[i] = mounts[--nmounts];
			return;
		}
	}
}

static const struct http_mount_entry *http_find_mount(const char *path)
{
	const struct http_mount_entry *best = NULL;
	for (size_t i = 0; i < nmounts; i++) {
		const struct http_mount_entry *m = &mounts[i];
		if (strncmp(path, m->prefix, m->len) != 0)
			continue;
		if (m->prefix[m->len - 1] != '/' && path[m->len] != '\0' && path[m->len] != '/')
			continue;
		if (best == NULL || m->len > best->len)
			best = m;
	}
	return best;
}

/* Free c (its stream is gone, or belongs to another owner now). */
static void http_conn_free(struct http_conn *c)
{
	ev_timer_stop(c->st->loop, &c->resume_w);
	ev_prepare_stop(c->st->loop, &c->drain_w);
	http_request_reset(c);
	free(c->headers);
	buf_free(&c->url);
	buf_free(&c->in);
	http_ip_release(&c->ipc);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		conns_head = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	nconns--;
	free(c);
}

/* ---- dispatch ----------------------------------------------------------------------- */

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* Percent-decode a path; NULL when it holds a bad escape or a NUL. */
static char *http_decode_path(const char *s, size_t len)
{
	char *out = xmalloc(len + 1), *o = out;
	for (size_t i = 0; i < len; i++) {
		if (s[i] != '%') {
			*o++ = s[i];
			continue;
		}
		if (i + 2 >= len) {
			free(out);
			return NULL;
		}
		int a = hexval(s[i + 1]), b = hexval(s[i + 2]);
		if (a < 0 || b < 0 || (a == 0 && b == 0)) {
			free(out);
			return NULL;
		}
		*o++ = (char)(a * 16 + b);
		i += 2;
	}
	*o = '\0';
	return out;
}

/* The Host header's name: without the port, lower case; NULL if absent. */
static char *http_host_name(const char *h)
{
	if (h == NULL || h[0] == '\0')
		return NULL;
	size_t len;
	if (h[0] == '[') {
		const char *end = strchr(h, ']');
		len = end != NULL ? (size_t)(end - h) + 1 : strlen(h);
	} else {
		const char *colon = strchr(h, ':');
		len = colon != NULL ? (size_t)(colon - h) : strlen(h);
	}
	char *out = xstrndup(h, len);
	for (char *p = out; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return out;
}

enum dispatch_result { DISPATCH_DONE, DISPATCH_UPGRADED };

static enum dispatch_result http_dispatch(struct http_conn *c)
{
	struct stream *st = c->st;
	http_parser *p = &c->parser;
	const struct http_config *hc = http_cfg();
	buf_append(&c->body, "", 0); /* NUL-terminated even when empty */
	c->rq.method = http_method_str((enum http_method)p->method);
	c->rq.remote_ip = st->ip;
	c->rq.tls = st->ssl != NULL;
	c->rq.body = c->body.data;
	c->rq.body_len = c->body.len;

	struct http_parser_url u;
	http_parser_url_init(&u);
	if (c->url.data == NULL ||
	    http_parser_parse_url(c->url.data, c->url.len, p->method == HTTP_CONNECT, &u) != 0 ||
	    !(u.field_set & (1 << UF_PATH))) {
		http_fail(c, 400, "bad request target");
		return DISPATCH_DONE;
	}
	c->path = http_decode_path(c->url.data + u.field_data[UF_PATH].off, u.field_data[UF_PATH].len);
	if (c->path == NULL) {
		http_fail(c, 400, "bad percent-encoding in the path");
		return DISPATCH_DONE;
	}
	c->rq.path = c->path;
	if (u.field_set & (1 << UF_QUERY)) {
		c->url.data[u.field_data[UF_QUERY].off + u.field_data[UF_QUERY].len] = '\0';
		c->rq.query = c->url.data + u.field_data[UF_QUERY].off;
	}
	const char *hosth = http_request_header(&c->rq, "Host");
	if (hosth == NULL && p->http_major == 1 && p->http_minor >= 1) {
		http_fail(c, 400, "no Host header");
		return DISPATCH_DONE;
	}
	c->host = http_host_name(hosth);
	c->rq.host = c->host;

	if (hc->websocket && strcmp(c->path, hc->websocket_path) == 0) {
		if (p->method != HTTP_GET) {
			struct http_reply *r = http_reply_new(c, c->keep_alive);
			http_reply_header(r, "Allow", "GET");
			http_reply_error(r, 405, "WebSocket upgrades are GET requests");
			return DISPATCH_DONE;
		}
		struct buf headers = { 0 };
		const char *why = NULL;
		int status = p->upgrade ? websocket_check_upgrade(&c->rq, &headers, &why) : 426;
		if (status == 426 && why == NULL)
			why = "this is the XMPP WebSocket endpoint: upgrade to websocket with the xmpp "
			      "protocol";
		if (status == 0 && !c2s_ip_admits(st->ip, c->limits)) {
			status = 503;
			why = "too many client streams from this address (limits.max_connections_per_ip)";
		}
		if (status != 0) {
			struct http_reply *r = http_reply_new(c, false);
			if (status == 426) {
				http_reply_header(r, "Upgrade", "websocket");
				http_reply_header(r, "Sec-WebSocket-Version", "13");
			}
			log_info("http %llu from %s: WebSocket upgrade refused (%d): %s",
			         (unsigned long long)st->id, st->ip, status, why);
			http_reply_error(r, status, why);
			buf_free(&headers);
			return DISPATCH_DONE;
		}
		struct buf b = { 0 };
		buf_append_str(&b, "HTTP/1.1 101 Switching Protocols\r\n");
		buf_append(&b, headers.data, headers.len);
		buf_append_str(&b, "\r\n");
		stream_write_raw(st, b.data, b.len);
		buf_free(&b);
		buf_free(&headers);
		log_info("http %llu from %s: XMPP over WebSocket%s", (unsigned long long)st->id, st->ip,
		         st->ssl != NULL ? " (TLS)" : "");
		return DISPATCH_UPGRADED;
	}
	if (p->upgrade && p->method == HTTP_CONNECT) {
		http_fail(c, 405, "CONNECT is not served");
		return DISPATCH_DONE;
	}

	const struct http_mount_entry *m = http_find_mount(c->path);
	struct http_reply *r = http_reply_new(c, c->keep_alive && !p->upgrade);
	r->head = p->method == HTTP_HEAD;
	if (m == NULL) {
		http_reply_error(r, 404, NULL);
		return DISPATCH_DONE;
	}
	c->dispatching = true;
	m->fn(m->ctx, &c->rq, r);
	c->dispatching = false;
	return DISPATCH_DONE;
}

/* Run the parser over the buffered input, one request at a time; false
 * when reading must stop (a deferred reply, closing, an upgrade done). */
static bool http_process(struct http_conn *c)
{
	struct stream *st = c->st;
	while (!st->dead && !st->closing && (c->pending == NULL || http_body_flowing(c)) && c->in.len > 0) {
		if (c->started == 0)
			c->started = ev_now(st->loop);
		size_t n = http_parser_execute(&c->parser, &parser_settings, c->in.data, c->in.len);
		enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
		if (e != HPE_OK && e != HPE_PAUSED) {
			int status = c->error_status;
			if (status == 0)
				status = e == HPE_HEADER_OVERFLOW ? 431 : 400;
			if (c->dispatched)
				http_cancel_pending(c); /* a body gone wrong */
			http_fail(c, status, status == 400 ? http_errno_description(e) : NULL);
			return false;
		}
		buf_consume(&c->in, n);
		if (c->early) {
			/* Headers in, for a handler that takes the body as it comes. */
			c->early = false;
			http_parser_pause(&c->parser, 0);
			c->dispatched = true;
			http_dispatch(c); /* never an upgrade: not the WebSocket path */
			continue;
		}
		if (!c->complete) {
			if (n == 0 && e == HPE_OK)
				break;
			continue;
		}
		/* A whole request: handle it, the parser paused until the reply. */
		http_parser_pause(&c->parser, 0);
		c->complete = false;
		if (c->dispatched) {
			/* its handler has it already: tell it the body is all in */
			const struct http_body_ops *ops = c->body_ops;
			c->dispatched = false;
			c->body_ops = NULL;
			if (ops != NULL && c->pending != NULL) {
				c->dispatching = true; /* an answer from end: this loop goes on */
				ops->end(c->body_ctx);
				c->dispatching = false;
			}
			if (c->pending != NULL)
				return false;
			continue;
		}
		if (http_dispatch(c) == DISPATCH_UPGRADED) {
			struct buf rest = c->in;
			c->in = (struct buf){ 0 };
			const struct listen_config *lc = c->lc;
			const struct limits_config *limits = c->limits;
			/* The stream now belongs to the client state machine. */
			stream_set_transport(st, NULL, NULL);
			st->owner = NULL;
			http_conn_free(c);
			websocket_start(st, lc, limits, rest.data, rest.len);
			buf_free(&rest);
			return false;
		}
		if (c->pending != NULL)
			return false; /* deferred: the next request waits for it */
	}
	if (c->in.len == 0)
		buf_free(&c->in);
	return !st->dead && !st->closing && !st->paused;
}

/* ---- the transport and the stream's owner -------------------------------------- */

static bool http_input(struct stream *st, const char *data, size_t len)
{
	struct http_conn *c = st->transport_ctx;
	buf_append(&c->in, data, len);
	if (c->pending != NULL && !http_body_flowing(c)) {
		/* A deferred reply: the socket is still read (a client that
		 * goes cancels it), but what it sends only waits, up to the
		 * size of a request, or a little when it is a body its
		 * handler is not ready for (back-pressure). */
		size_t cap = c->dispatched ? HTTP_BODY_AHEAD
		                           : http_cfg()->max_header_size + http_cfg()->max_body_size;
		if (c->in.len > cap)
			stream_pause(st);
		return false;
	}
	http_process(c);
	/* after an upgrade st has another transport: go on reading with it */
	return !st->dead && !st->closing && !st->paused &&
	       (st->transport != &http_transport || c->pending == NULL);
}

static bool http_resume(struct stream *st)
{
	struct http_conn *c = st->transport_ctx;
	http_process(c); /* c may be gone: an upgrade */
	return !st->dead && !st->closing && !st->paused;
}

static const struct stream_transport http_transport = {
	.input = http_input,
	.resume = http_resume,
};

static void http_stream_start(struct stream *st, struct xml_node *header, const char *default_ns)
{
	xml_unref(&header); /* no XML is fed to an HTTP connection's parser */
}

static bool http_stanza(struct stream *st, struct xml_node *el)
{
	xml_unref(&el);
	return true;
}

static void http_stream_end(struct stream *st)
{
}

static void http_parse_error(struct stream *st, enum stream_error e, const char *text)
{
	stream_abort(st);
}

static void http_tick(struct stream *st, double now)
{
	struct http_conn *c = st->owner;
	const struct http_config *hc = http_cfg();
	if (c->in_body) {
		/* a body: it must keep moving, unless its handler holds it back
		 * (or, handed over early, never took it: a GET whose answer is
		 * still going out must not be cut off by a body nobody reads) */
		if (!c->body_paused && (c->pending == NULL || (c->dispatched && c->body_ops != NULL)) &&
		    now - c->body_last > hc->body_timeout) {
			log_info("http %llu from %s: no byte of the request body for %g s: 408 and closing",
			         (unsigned long long)st->id, st->ip, hc->body_timeout);
			c->in_body = false;
			c->started = 0;
			http_cancel_pending(c);
			http_fail(c, 408, "the request body stopped coming");
		}
		return;
	}
	if (c->pending != NULL)
		return; /* the handler's turn */
	if (c->started != 0) {
		if (now - c->started > hc->request_timeout) {
			log_info("http %llu from %s: request headers not complete after %g s: 408 and "
			         "closing",
			         (unsigned long long)st->id, st->ip, hc->request_timeout);
			c->started = 0;
			http_fail(c, 408, "the request took too long");
		}
		return;
	}
	if (now - st->last_in > hc->keepalive_timeout && st->out.len == 0) {
		log_debug("http %llu from %s: idle keep-alive connection closed", (unsigned long long)st->id,
		          st->ip);
		stream_finish(st);
	}
}

static void http_closed(struct stream *st)
{
	struct http_conn *c = st->owner;
	if (c == NULL)
		return; /* upgraded, or never set up */
	http_cancel_pending(c);
	http_conn_free(c);
}

static const struct stream_ops http_stream_ops = {
	.stream_start = http_stream_start,
	.stanza = http_stanza,
	.stream_end = http_stream_end,
	.error = http_parse_error,
	.tick = http_tick,
	.closed = http_closed,
};

void http_accept(struct ev_loop *loop, int fd, const char *ip, unsigned port, const struct listen_config *lc,
                 const struct limits_config *limits)
{
	const struct http_config *hc = http_cfg();
	struct http_ip *ipc = http_ip_get(ip);
	if (hc->max_conn_per_ip > 0 && ipc->count >= hc->max_conn_per_ip) {
		log_notice("http: refusing a connection from %s: already %u HTTP connections from that "
		           "address (http.max_connections_per_ip)",
		           ip, ipc->count);
		ipc->count++;
		http_ip_release(&ipc);
		close(fd);
		return;
	}
	ipc->count++;
	struct http_conn *c = xcalloc(1, sizeof(*c));
	c->lc = lc;
	c->limits = limits;
	c->ipc = ipc;
	http_parser_init(&c->parser, HTTP_REQUEST);
	c->parser.data = c;
	struct xml_parser_limits pl = {
		.max_stanza = limits->max_stanza_size,
		.max_depth = limits->max_depth,
		.max_attrs = limits->max_attrs,
	};
	c->st = stream_new(loop, fd, ip, port, &pl, HTTP_MAX_OUTPUT, lc->direct_tls, &http_stream_ops, c);
	ev_timer_init(&c->resume_w, http_resume_cb, 0, 0);
	c->resume_w.data = c;
	ev_prepare_init(&c->drain_w, http_drain_cb);
	ev_set_priority(&c->drain_w, EV_MINPRI); /* after the streams' flush */
	c->drain_w.data = c;
	stream_set_transport(c->st, &http_transport, c);
	c->next = conns_head;
	if (conns_head != NULL)
		conns_head->prev = c;
	conns_head = c;
	nconns++;
	log_debug("http %llu: connection from %s port %u%s", (unsigned long long)c->st->id, ip, port,
	          lc->direct_tls ? " (TLS)" : "");
}

void http_start(void)
{
	listener_register(LISTEN_HTTP, http_accept);
	http_hostmeta_start();
	http_bosh_start();
	http_poll_start();
}

void http_close_all(void)
{
	for (struct http_conn *c = conns_head; c != NULL; c = c->next) {
		http_cancel_pending(c);
		stream_finish(c->st);
	}
}

unsigned http_count(void)
{
	return nconns;
}
