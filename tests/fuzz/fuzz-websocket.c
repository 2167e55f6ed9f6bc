/*
 * XMPP over WebSocket as server/websocket.c serves it: after a valid
 * upgrade request (server/http.c answers 101), the input reaches wslay's
 * frame parser (masking, fragments, control frames, the message cap of
 * limits.max_stanza_size, close codes) and each text message the
 * RFC 7395 translation (<open/> fed as the stream header, <close/> as
 * </stream:stream>, UTF-8 checks), then the client state machine of
 * server/c2s.c, whose output is split back into one message per element.
 * No host is served here, so an <open/> to any domain gets a stream error
 * (host-unknown): the framing both ways is what is exercised.
 *
 * Input: 1 byte giving the write size (0: everything at once), then the
 * bytes the client sends after the upgrade request (frames: a client's
 * frames are masked, bit 7 of the second byte).  The client then
 * half-closes its end.
 *
 * Checks beyond the sanitizers: the stream is gone after the client has
 * left (streams_count() back to 0).
 */
#include "tests/fuzz/fuzz.h"
#include "server/c2s.h"
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

static const char upgrade[] = "GET /xmpp-websocket HTTP/1.1\r\nHost: chat.example\r\n"
                              "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                              "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: xmpp\r\n\r\n";

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_quiet();
	signal(SIGPIPE, SIG_IGN); /* the daemon ignores it too; a write to a closed peer fails */
	char *err = NULL;
	if (http_config_load(&cfg.http, NULL, NULL, &err) < 0) {
		fprintf(stderr, "fuzz-websocket: %s\n", err);
		abort();
	}
	cfg.http.bosh = false;
	cfg.http.max_conn_per_ip = 0;
	server.cfg = &cfg;
	lc.module = LISTEN_HTTP;
	lc.port = 5280;
	limits.max_stanza_size = 4096; /* small: the 1009 close is reachable */
	limits.max_depth = 16;
	limits.max_attrs = 16;
	limits.max_output = 1 << 20;
	loop = ev_default_loop(EVFLAG_AUTO);
	server.loop = loop;
	streams_init(loop);
	return 0;
}

static void drain(int fd)
{
	char buf[4096];
	while (fd >= 0 && read(fd, buf, sizeof(buf)) > 0)
		;
}

static void turn(int fd)
{
	for (int i = 0; i < 3; i++)
		ev_run(loop, EVRUN_NOWAIT);
	drain(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_input in = { data, size };
	size_t chunk = fuzz_byte(&in);
	if (chunk == 0)
		chunk = in.len > 0 ? in.len : 1;

	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		abort();
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	http_accept(loop, sv[0], "192.0.2.1", 1234, &lc, &limits);
	if (write(sv[1], upgrade, sizeof(upgrade) - 1) != (ssize_t)(sizeof(upgrade) - 1))
		abort();
	turn(sv[1]);
	assert(http_count() == 0); /* upgraded: a client stream now */

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
	for (int i = 0; i < 20 && streams_count() > 0; i++)
		turn(sv[1]);
	close(sv[1]);
	for (int i = 0; i < 20 && streams_count() > 0; i++)
		turn(-1);
	assert(streams_count() == 0);
	for (int i = 0; i < 3; i++)
		ev_run(loop, EVRUN_NOWAIT);
	return 0;
}
