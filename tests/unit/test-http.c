/*
 * HTTP connections (server/http.c) over a socketpair: mounts and the
 * longest matching prefix, the request a handler sees (path decoded,
 * query, host, headers, body), a deferred reply holding back the
 * pipelined request after it (answered in order), the cancel callback
 * when the client goes before a deferred reply (or at a stop), and HEAD.
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

int main(void)
{
	log_set_level(LOG_LEVEL_WARNING);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_longest_prefix_and_request),
		cmocka_unit_test(test_deferred_reply_keeps_order),
		cmocka_unit_test(test_cancel_when_client_goes),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
