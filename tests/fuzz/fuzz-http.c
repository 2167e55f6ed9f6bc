/*
 * One HTTP/1.1 connection as server/http.c serves it: http_parser's glue
 * (request line, headers and their limits, bodies, chunked encoding,
 * keep-alive and pipelining, percent-decoding of the path, the Host
 * header), the longest-prefix mount lookup and the replies.  The client
 * end of a socketpair writes the input; the loop runs between writes.
 * Two handlers are mounted: "/api/" answers at once (reading the request's
 * headers, query and body), "/defer" answers from the loop later (so the
 * pipelined requests after it wait).  WebSocket and BOSH are off (their
 * own targets are fuzz-websocket and fuzz-bosh).
 *
 * Input: 1 byte choosing the limits (bit 0: small header, header count
 * and body limits, so the 431/413 paths are reached with short inputs),
 * 1 byte giving the write size (0: everything at once), then the bytes the
 * client sends.  The client then half-closes its end.
 *
 * Checks beyond the sanitizers: the connection is gone after the client
 * has left (http_count() back to 0, every reply of the handler sent or
 * cancelled).
 */
#include "tests/fuzz/fuzz.h"
#include "server/http.h"
#include "server/server.h"
#include "server/stream.h"

#include <assert.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

static struct ev_loop *loop;
static struct parley_config cfg;
static struct listen_config lc;
static struct limits_config limits;
static struct http_reply *deferred;
static size_t default_header_size, default_body_size;
static unsigned default_headers;

static void h_api(void *ctx, const struct http_request *rq, struct http_reply *r)
{
	(void)ctx;
	struct buf b = { 0 };
	buf_printf(&b, "%s %s %s %s %zu ", rq->method, rq->path, rq->query != NULL ? rq->query : "-",
	           rq->host != NULL ? rq->host : "-", rq->body_len);
	const char *h = http_request_header(rq, "x-test");
	if (h != NULL)
		buf_append_str(&b, h);
	http_cors_headers(rq, r);
	http_reply_header(r, "X-Echo", rq->path); /* dropped when it holds CR or LF */
	http_reply_send(r, 200, "text/plain", b.data, b.len);
	buf_free(&b);
}

static void on_cancel(void *ctx)
{
	(void)ctx;
	deferred = NULL;
}

static void h_defer(void *ctx, const struct http_request *rq, struct http_reply *r)
{
	(void)ctx;
	(void)rq;
	assert(deferred == NULL); /* one outstanding reply per connection */
	deferred = r;
	http_reply_on_cancel(r, on_cancel, NULL);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_quiet();
	signal(SIGPIPE, SIG_IGN); /* the daemon ignores it too; a write to a closed peer fails */
	char *err = NULL;
	if (http_config_load(&cfg.http, NULL, NULL, &err) < 0) {
		fprintf(stderr, "fuzz-http: %s\n", err);
		abort();
	}
	cfg.http.websocket = false;
	cfg.http.bosh = false;
	cfg.http.max_conn_per_ip = 0;
	cfg.http.request_timeout = 3600;
	cfg.http.keepalive_timeout = 3600;
	strlist_free(&cfg.http.cors_origins);
	cfg.http.cors_origins.items = xcalloc(1, sizeof(char *));
	cfg.http.cors_origins.items[0] = xstrdup("https://app.example");
	cfg.http.cors_origins.count = 1;
	default_header_size = cfg.http.max_header_size;
	default_headers = cfg.http.max_headers;
	default_body_size = cfg.http.max_body_size;
	server.cfg = &cfg;
	lc.module = LISTEN_HTTP;
	lc.port = 5280;
	limits.max_stanza_size = 65536;
	limits.max_depth = 16;
	limits.max_attrs = 16;
	limits.max_output = 1 << 20;
	loop = ev_default_loop(EVFLAG_AUTO);
	server.loop = loop;
	streams_init(loop);
	if (http_mount("/api/", h_api, NULL, &err) < 0 || http_mount("/defer", h_defer, NULL, &err) < 0) {
		fprintf(stderr, "fuzz-http: %s\n", err);
		abort();
	}
	return 0;
}

static void drain(int fd)
{
	char buf[4096];
	while (fd >= 0 && read(fd, buf, sizeof(buf)) > 0)
		;
}

/* Run the loop a little, answering a deferred reply; drain the replies. */
static void turn(int fd)
{
	for (int i = 0; i < 3; i++)
		ev_run(loop, EVRUN_NOWAIT);
	if (deferred != NULL) {
		struct http_reply *r = deferred;
		deferred = NULL;
		http_reply_send(r, 204, "text/plain", "", 0);
		ev_run(loop, EVRUN_NOWAIT);
	}
	drain(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_input in = { data, size };
	uint8_t mode = fuzz_byte(&in);
	size_t chunk = fuzz_byte(&in);
	if (mode & 1) {
		cfg.http.max_header_size = 256;
		cfg.http.max_headers = 4;
		cfg.http.max_body_size = 64;
	} else {
		cfg.http.max_header_size = default_header_size;
		cfg.http.max_headers = default_headers;
		cfg.http.max_body_size = default_body_size;
	}
	if (chunk == 0)
		chunk = in.len > 0 ? in.len : 1;

	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		abort();
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	http_accept(loop, sv[0], "192.0.2.1", 1234, &lc, &limits);
	assert(http_count() == 1);

	while (in.len > 0) {
		size_t n = in.len < chunk ? in.len : chunk;
		ssize_t w = write(sv[1], in.data, n);
		if (w < 0)
			break; /* the server closed its end */
		in.data += w;
		in.len -= (size_t)w;
		turn(sv[1]);
	}
	shutdown(sv[1], SHUT_WR);
	for (int i = 0; i < 20 && http_count() > 0; i++)
		turn(sv[1]);
	close(sv[1]);
	for (int i = 0; i < 20 && http_count() > 0; i++)
		turn(-1);
	/* a connection still waiting for nothing is a bug: close it anyway */
	assert(http_count() == 0);
	assert(deferred == NULL);
	for (int i = 0; i < 3; i++)
		ev_run(loop, EVRUN_NOWAIT);
	return 0;
}
