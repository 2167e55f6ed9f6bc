/*
 * BOSH (XEP-0124/0206) as server/bosh.c serves it: <body/> requests
 * POSTed to http.bosh_path over HTTP connections (server/http.c), session
 * creation, the sid lookup, the rid window (replays, early requests held
 * in order, out-of-window ends the session), held requests and their
 * cancelling when a connection goes, and the payloads fed to the session's
 * client stream (server/c2s.c).  No host is served here, so a session's
 * stream ends with host-unknown soon after its creation: the request
 * handling is what is exercised.
 *
 * Input: up to 6 request bodies separated by NUL bytes (XML holds none).
 * Each is POSTed on a connection of its own (a held request keeps its
 * connection); "SID" in a body is replaced by the sid of the session the
 * last creation answer named.  The clients then go, and the sessions are
 * shut down as at a server stop.
 *
 * Checks beyond the sanitizers: no HTTP connection or BOSH session is left
 * afterwards.
 */
#include "tests/fuzz/fuzz.h"
#include "server/bosh.h"
#include "server/c2s.h"
#include "server/http.h"
#include "server/server.h"
#include "server/stream.h"

#include <assert.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_REQUESTS 6

static struct parley_config cfg;
static struct listen_config lc;
static char sid[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_quiet();
	signal(SIGPIPE, SIG_IGN); /* the daemon ignores it too; a write to a closed peer fails */
	char *err = NULL;
	if (http_config_load(&cfg.http, NULL, NULL, &err) < 0) {
		fprintf(stderr, "fuzz-bosh: %s\n", err);
		abort();
	}
	cfg.http.websocket = false;
	cfg.http.max_conn_per_ip = 0;
	server.cfg = &cfg;
	lc.module = LISTEN_HTTP;
	lc.port = 5280;
	cfg.limits.max_stanza_size = 4096;
	cfg.limits.max_depth = 16;
	cfg.limits.max_attrs = 16;
	cfg.limits.max_output = 1 << 20;
	server.loop = ev_default_loop(EVFLAG_AUTO);
	streams_init(server.loop);
	http_bosh_start();
	return 0;
}

/* Read what the server wrote to fd; remember a sid it names. */
static void drain(int fd)
{
	char buf[8192];
	ssize_t n;
	while (fd >= 0 && (n = read(fd, buf, sizeof(buf) - 1)) > 0) {
		buf[n] = '\0';
		const char *p = strstr(buf, " sid='");
		if (p != NULL) {
			p += 6;
			size_t len = strcspn(p, "'");
			if (len < sizeof(sid)) {
				memcpy(sid, p, len);
				sid[len] = '\0';
			}
		}
	}
}

static void turn(const int *fds, size_t n)
{
	for (int i = 0; i < 3; i++)
		ev_run(server.loop, EVRUN_NOWAIT);
	for (size_t i = 0; i < n; i++)
		drain(fds[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_input in = { data, size };
	int fds[MAX_REQUESTS];
	size_t nfds = 0;
	sid[0] = '\0';
	while (in.len > 0 && nfds < MAX_REQUESTS) {
		size_t len;
		const uint8_t *p = fuzz_until(&in, 0, &len);
		struct buf body = { 0 };
		for (size_t i = 0; i < len; i++) {
			if (i + 3 <= len && memcmp(p + i, "SID", 3) == 0) {
				buf_append_str(&body, sid);
				i += 2;
			} else {
				buf_append(&body, (const char *)p + i, 1);
			}
		}
		struct buf rq = { 0 };
		buf_printf(&rq,
		           "POST /http-bind HTTP/1.1\r\nHost: chat.example\r\nContent-Type: text/xml\r\n"
		           "Content-Length: %zu\r\n\r\n",
		           body.len);
		buf_append(&rq, body.data, body.len);
		buf_free(&body);
		int sv[2];
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
			abort();
		fcntl(sv[0], F_SETFL, O_NONBLOCK);
		fcntl(sv[1], F_SETFL, O_NONBLOCK);
		http_accept(server.loop, sv[0], "192.0.2.1", 1234, &lc, &cfg.limits);
		fds[nfds++] = sv[1];
		size_t off = 0;
		for (int tries = 0; off < rq.len && tries < 64; tries++) {
			ssize_t w = write(sv[1], rq.data + off, rq.len - off);
			if (w > 0)
				off += (size_t)w;
			turn(fds, nfds);
		}
		buf_free(&rq);
		turn(fds, nfds);
	}
	for (size_t i = 0; i < nfds; i++)
		close(fds[i]);
	for (int i = 0; i < 20 && http_count() > 0; i++)
		turn(NULL, 0);
	c2s_shutdown_all();
	for (int i = 0; i < 50 && (bosh_count() > 0 || streams_count() > 0); i++)
		turn(NULL, 0);
	assert(http_count() == 0);
	assert(bosh_count() == 0);
	assert(streams_count() == 0);
	return 0;
}
