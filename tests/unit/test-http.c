/*
 * HTTP connections (server/http.c) over a socketpair: mounts and the
 * longest matching prefix, the request a handler sees (path decoded,
 * query, host, headers, body), a deferred reply holding back the
 * pipelined request after it (answered in order), the cancel callback
 * when the client goes before a deferred reply (or at a stop), and HEAD;
 * a streaming mount's body in pieces with back-pressure (no reading while
 * its handler holds it back, resumed from the loop, the next request on
 * the same connection after it), a reply before the body closing the
 * connection, and a streamed reply fed only as the client drains it.
 * The limits and WebSocket are tested against a running parleyd
 * (tests/integration/test_http.py, test_websocket.py).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server/http.h"
#include "server/server.h"
#include "server/stream.h"
#include "lib/log.h"

static struct ev_loop *loop;
static struct parley_config cfg;
static struct listen_config lc;
static struct limits_config limits;

struct seen {
	char path[128], query[128], host[64], header[64], body[64], method[16];
	const char *name; /* which handler */
	int calls;
	struct http_reply *deferred;
	int cancelled;
};
static struct seen seen;

static void remember(const char *name, const struct http_request *rq)
{
	seen.name = name;
	seen.calls++;
	snprintf(seen.method, sizeof(seen.method), "%s", rq->method);
	snprintf(seen.path, sizeof(seen.path), "%s", rq->path);
	snprintf(seen.query, sizeof(seen.query), "%s", rq->query != NULL ? rq->query : "(none)");
	snprintf(seen.host, sizeof(seen.host), "%s", rq->host != NULL ? rq->host : "(none)");
	const char *h = http_request_header(rq, "x-test");
	snprintf(seen.header, sizeof(seen.header), "%s", h != NULL ? h : "(none)");
	snprintf(seen.body, sizeof(seen.body), "%s", rq->body);
}

static void h_api(void *ctx, const struct http_request *rq, struct http_reply *r)
{
	remember("api", rq);
	http_reply_header(r, "X-Handler", "api");
	http_reply_send(r, 200, "text/plain", "api", 3);
}

static void h_users(void *ctx, const struct http_request *rq, struct http_reply *r)
{
	remember("users", rq);
	http_reply_send(r, 200, "text/plain", "users", 5);
}

static void on_cancel(void *ctx)
{
	seen.cancelled++;
	seen.deferred = NULL;
}

static void h_defer(void *ctx, const struct http_request *rq, struct http_reply *r)
{
	remember("defer", rq);
	seen.deferred = r;
	http_reply_on_cancel(r, on_cancel, NULL);
}

/* A streaming mount: takes the body, holding it back after each piece
 * while stream.hold is set; answers 201 with the byte count at the end. */
struct streamed {
	struct http_reply *r;
	size_t got, pieces;
	bool hold, ended, in_call;
	unsigned sum;
	int cancelled;
	/* the streamed reply */
	size_t out_left, more_calls;
	bool more_inside; /* more was called inside a call of ours */
};
static struct streamed stream;

static bool sb_data(void *ctx, const char *data, size_t len)
{
	assert_false(stream.in_call);
	stream.got += len;
	stream.pieces++;
	for (size_t i = 0; i < len; i++)
		stream.sum += (unsigned char)data[i];
	return !stream.hold;
}

static void sb_end(void *ctx)
{
	char text[64];
	int n = snprintf(text, sizeof(text), "%zu %u", stream.got, stream.sum);
	stream.ended = true;
	http_reply_send(stream.r, 201, "text/plain", text, (size_t)n);
	stream.r = NULL;
}

static const struct http_body_ops sb_ops = { .data = sb_data, .end = sb_end };

static void sb_cancel(void *ctx)
{
	stream.cancelled++;
	stream.r = NULL;
}

static void sb_more(void *ctx)
{
	if (stream.in_call)
		stream.more_inside = true;
	stream.more_calls++;
	char piece[32768];
	size_t n = stream.out_left < sizeof(piece) ? stream.out_left : sizeof(piece);
	memset(piece, 'z', n);
	stream.out_left -= n;
	stream.in_call = true;
	bool last = http_reply_write(stream.r, piece, n);
	stream.in_call = false;
	if (last)
		stream.r = NULL;
}

static void h_stream(void *ctx, const struct http_request *rq, struct http_reply *r)
{
	remember("stream", rq);
	stream.r = r;
	http_reply_on_cancel(r, sb_cancel, NULL);
	if (strcmp(rq->method, "GET") == 0) {
		/* a streamed reply of out_left bytes */
		stream.in_call = true;
		http_reply_start(r, 200, "application/octet-stream", stream.out_left, sb_more, NULL);
		stream.in_call = false;
		return;
	}
	if (http_request_header(rq, "X-Refuse") != NULL) {
		http_reply_send(r, 403, "text/plain", "no", 2);
		stream.r = NULL;
		return;
	}
	stream.in_call = true;
	http_reply_take_body(r, &sb_ops, NULL, 1 << 20);
	stream.in_call = false;
}

static void run_once(void)
{
	for (int i = 0; i < 4; i++)
		ev_run(loop, EVRUN_NOWAIT);
}

static int client_open(void)
{
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	http_accept(loop, sv[0], "192.0.2.1", 1234, &lc, &limits);
	return sv[1];
}

static void client_send(int fd, const char *s)
{
	assert_int_equal(write(fd, s, strlen(s)), (ssize_t)strlen(s));
	run_once();
}

/* What the server wrote so far (NUL-terminated in buf). */
static size_t client_read(int fd, char *buf, size_t size)
{
	size_t got = 0;
	for (;;) {
		ssize_t n = read(fd, buf + got, size - 1 - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	buf[got] = '\0';
	return got;
}

static int setup(void **state)
{
	char *err = NULL;
	assert_int_equal(http_config_load(&cfg.http, NULL, NULL, &err), 0);
	server.cfg = &cfg;
	lc.module = LISTEN_HTTP;
	lc.port = 5280;
	limits.max_stanza_size = 65536;
	limits.max_depth = 16;
	limits.max_attrs = 16;
	limits.max_output = 1 << 20;
	loop = ev_loop_new(EVFLAG_AUTO);
	streams_init(loop);
	assert_int_equal(http_mount("/api/", h_api, NULL, &err), 0);
	assert_int_equal(http_mount("/api/users/", h_users, NULL, &err), 0);
	assert_int_equal(http_mount("/defer", h_defer, NULL, &err), 0);
	assert_int_equal(http_mount_streaming("/stream/", h_stream, NULL, &err), 0);
	assert_int_equal(http_mount("/api/", h_api, NULL, &err), -1);
	assert_non_null(err);
	free(err);
	return 0;
}

static int teardown(void **state)
{
	http_unmount("/api/");
	http_unmount("/api/users/");
	http_unmount("/defer");
	http_unmount("/stream/");
	streams_shutdown();
	ev_loop_destroy(loop);
	http_config_free(&cfg.http);
	server.cfg = NULL;
	return 0;
}

static void test_longest_prefix_and_request(void **state)
{
	char buf[4096];
	int fd = client_open();
	memset(&seen, 0, sizeof(seen));
	client_send(fd, "POST /api/users/b%C3%A9a?x=1&y=%20 HTTP/1.1\r\nHost: Chat.Example.COM:5280\r\n"
	                "X-Test: one\r\nx-test: two\r\nContent-Length: 5\r\n\r\nhello");
	assert_string_equal(seen.name, "users");
	assert_string_equal(seen.method, "POST");
	assert_string_equal(seen.path, "/api/users/b\xc3\xa9"
	                               "a");
	assert_string_equal(seen.query, "x=1&y=%20");
	assert_string_equal(seen.host, "chat.example.com");
	assert_string_equal(seen.header, "one, two");
	assert_string_equal(seen.body, "hello");
	client_read(fd, buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
	assert_non_null(strstr(buf, "Content-Length: 5\r\n"));
	assert_non_null(strstr(buf, "\r\n\r\nusers"));

	client_send(fd, "GET /api/other HTTP/1.1\r\nHost: h\r\n\r\n");
	assert_string_equal(seen.name, "api");
	assert_string_equal(seen.query, "(none)");
	client_read(fd, buf, sizeof(buf));
	assert_non_null(strstr(buf, "X-Handler: api\r\n"));

	/* "/defer" does not serve "/deferred", and "/api" is not "/api/" */
	client_send(fd, "GET /deferred HTTP/1.1\r\nHost: h\r\n\r\nGET /api HTTP/1.1\r\nHost: h\r\n\r\n");
	client_read(fd, buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 404 Not Found\r\n"));
	assert_non_null(strstr(strstr(buf, "404") + 3, "HTTP/1.1 404 Not Found\r\n"));

	/* HEAD: the length, no body */
	client_send(fd, "HEAD /api/x HTTP/1.1\r\nHost: h\r\n\r\n");
	size_t n = client_read(fd, buf, sizeof(buf));
	assert_non_null(strstr(buf, "Content-Length: 3\r\n"));
	assert_true(n > 4 && strcmp(buf + n - 4, "\r\n\r\n") == 0);
	close(fd);
	run_once();
}

static void test_deferred_reply_keeps_order(void **state)
{
	char buf[4096];
	int fd = client_open();
	memset(&seen, 0, sizeof(seen));
	client_send(fd, "GET /defer HTTP/1.1\r\nHost: h\r\n\r\nGET /api/after HTTP/1.1\r\nHost: h\r\n\r\n");
	assert_int_equal(seen.calls, 1);
	assert_non_null(seen.deferred);
	assert_int_equal(client_read(fd, buf, sizeof(buf)), 0);
	/* the second request waits for the first reply */
	run_once();
	assert_int_equal(seen.calls, 1);
	http_reply_send(seen.deferred, 202, "text/plain", "later", 5);
	seen.deferred = NULL;
	run_once();
	assert_int_equal(seen.calls, 2);
	assert_string_equal(seen.name, "api");
	client_read(fd, buf, sizeof(buf));
	char *first = strstr(buf, "HTTP/1.1 202 ");
	char *second = strstr(buf, "HTTP/1.1 200 OK");
	assert_non_null(first);
	assert_non_null(second);
	assert_true(first < second);
	/* and the connection goes on */
	client_send(fd, "GET /api/again HTTP/1.1\r\nHost: h\r\n\r\n");
	assert_int_equal(seen.calls, 3);
	close(fd);
	run_once();
}

static void test_cancel_when_client_goes(void **state)
{
	int fd = client_open();
	memset(&seen, 0, sizeof(seen));
	client_send(fd, "GET /defer HTTP/1.1\r\nHost: h\r\n\r\n");
	assert_non_null(seen.deferred);
	close(fd);
	run_once();
	assert_int_equal(seen.cancelled, 1);
	assert_null(seen.deferred);
	/* at a stop, outstanding replies are cancelled too */
	fd = client_open();
	client_send(fd, "GET /defer HTTP/1.1\r\nHost: h\r\n\r\n");
	assert_non_null(seen.deferred);
	http_close_all();
	run_once();
	assert_int_equal(seen.cancelled, 2);
	close(fd);
	run_once();
}

/* Write what the socket takes of data[*off, len), running the loop. */
static void client_push(int fd, const char *data, size_t len, size_t *off)
{
	while (*off < len) {
		ssize_t n = write(fd, data + *off, len - *off);
		if (n <= 0)
			break;
		*off += (size_t)n;
	}
	run_once();
}

static void test_streamed_body_with_back_pressure(void **state)
{
	enum { BODY = 600 * 1024 };
	char *body = malloc(BODY);
	unsigned sum = 0;
	for (size_t i = 0; i < BODY; i++) {
		body[i] = (char)(i * 7 + i / 1000);
		sum += (unsigned char)body[i];
	}
	char head[256], buf[4096];
	int fd = client_open();
	memset(&seen, 0, sizeof(seen));
	memset(&stream, 0, sizeof(stream));
	stream.hold = true;
	snprintf(head, sizeof(head), "PUT /stream/x HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n", BODY);
	client_send(fd, head);
	assert_string_equal(seen.name, "stream"); /* handed over before its body */
	size_t off = 0;
	client_push(fd, body, BODY, &off);
	run_once();
	/* held back: one piece taken, and no more read than a small buffer */
	assert_int_equal(stream.pieces, 1);
	size_t pushed = off;
	client_push(fd, body, BODY, &off);
	assert_true(off < BODY);
	client_push(fd, body, BODY, &off);
	assert_true(off == pushed || off < BODY);
	/* resumed from the loop, never inside the call */
	stream.hold = false;
	http_body_resume(stream.r);
	assert_int_equal(stream.pieces, 1);
	for (int i = 0; i < 50 && !stream.ended; i++)
		client_push(fd, body, BODY, &off);
	assert_true(stream.ended);
	assert_int_equal(stream.got, BODY);
	assert_int_equal(stream.sum, sum);
	run_once();
	client_read(fd, buf, sizeof(buf));
	char want[64];
	snprintf(want, sizeof(want), "\r\n\r\n%d %u", BODY, sum);
	assert_non_null(strstr(buf, "HTTP/1.1 201 "));
	assert_non_null(strstr(buf, want));
	assert_null(strstr(buf, "Connection: close"));
	/* the connection goes on with the next request */
	client_send(fd, "GET /api/next HTTP/1.1\r\nHost: h\r\n\r\n");
	assert_string_equal(seen.name, "api");
	close(fd);
	run_once();

	/* refused before its body: answered, and the connection closes */
	fd = client_open();
	memset(&stream, 0, sizeof(stream));
	snprintf(head, sizeof(head),
	         "PUT /stream/x HTTP/1.1\r\nHost: h\r\nX-Refuse: 1\r\nContent-Length: %d\r\n\r\n", BODY);
	client_send(fd, head);
	client_read(fd, buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 403 "));
	assert_non_null(strstr(buf, "Connection: close\r\n"));
	assert_int_equal(stream.pieces, 0);
	close(fd);
	run_once();

	/* the client going mid-body cancels the reply */
	fd = client_open();
	memset(&stream, 0, sizeof(stream));
	snprintf(head, sizeof(head), "PUT /stream/x HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n", BODY);
	client_send(fd, head);
	off = 0;
	client_push(fd, body, 1000, &off);
	assert_int_equal(stream.got, 1000);
	close(fd);
	run_once();
	assert_int_equal(stream.cancelled, 1);
	assert_false(stream.ended);
	free(body);
}

static void test_streamed_reply_follows_the_reader(void **state)
{
	enum { TOTAL = 3 * 1024 * 1024 };
	int fd = client_open();
	memset(&stream, 0, sizeof(stream));
	stream.out_left = TOTAL;
	client_send(fd, "GET /stream/file HTTP/1.1\r\nHost: h\r\n\r\n");
	for (int i = 0; i < 20; i++)
		run_once();
	/* nobody reads: what was asked for stays near the low-water mark plus
	 * what the socket holds, far from the whole */
	size_t asked = TOTAL - stream.out_left;
	assert_true(asked < TOTAL / 2);
	assert_true(stream.more_calls > 0);
	assert_false(stream.more_inside);
	/* reading it all brings the rest */
	char *buf = malloc(1 << 16);
	size_t got = 0, body = 0;
	char head[512] = "";
	for (int i = 0; i < 100000 && (got == 0 || body < TOTAL); i++) {
		ssize_t n = read(fd, buf, 1 << 16);
		if (n > 0) {
			size_t start = 0;
			if (got == 0) {
				char *end = memmem(buf, (size_t)n, "\r\n\r\n", 4);
				assert_non_null(end);
				start = (size_t)(end - buf) + 4;
				memcpy(head, buf, start < sizeof(head) - 1 ? start : sizeof(head) - 1);
			}
			for (size_t k = start; k < (size_t)n; k++)
				assert_int_equal(buf[k], 'z');
			body += (size_t)n - start;
			got += (size_t)n;
		}
		run_once();
	}
	assert_int_equal(body, TOTAL);
	assert_non_null(strstr(head, "HTTP/1.1 200 OK"));
	assert_non_null(strstr(head, "Content-Length: 3145728\r\n"));
	assert_null(stream.r);
	assert_false(stream.more_inside);
	/* keep-alive: the next request is served */
	client_send(fd, "GET /api/after HTTP/1.1\r\nHost: h\r\n\r\n");
	assert_string_equal(seen.name, "api");
	free(buf);
	close(fd);
	run_once();
}

int main(void)
{
	log_set_level(LOG_LEVEL_WARNING);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_longest_prefix_and_request),
		cmocka_unit_test(test_deferred_reply_keeps_order),
		cmocka_unit_test(test_cancel_when_client_goes),
		cmocka_unit_test(test_streamed_body_with_back_pressure),
		cmocka_unit_test(test_streamed_reply_follows_the_reader),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
