/*
 * Streams (server/stream.c): queued output is written by the loop's prepare
 * pass, an aborted stream is closed from the loop, and aborting one stream
 * never loses the output queued for others; compression only on a plain
 * socket stream, once.  Plain sockets (socketpair); no TLS.
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

#include "server/stream.h"
#include "lib/log.h"

struct peer {
	int fd;            /* our end */
	struct stream *st; /* the server's end */
	bool closed;       /* ops->closed ran */
};

static void on_start(struct stream *s, struct xml_node *h, const char *ns)
{
	xml_unref(&h);
}
static bool on_stanza(struct stream *s, struct xml_node *el)
{
	xml_unref(&el);
	return false;
}
static void on_end(struct stream *s)
{
}
static void on_error(struct stream *s, enum stream_error e, const char *t)
{
	stream_abort(s);
}
static void on_closed(struct stream *s)
{
	struct peer *p = s->owner;
	p->closed = true;
	p->st = NULL;
}

static const struct stream_ops ops = {
	.stream_start = on_start,
	.stanza = on_stanza,
	.stream_end = on_end,
	.error = on_error,
	.closed = on_closed,
};

static struct ev_loop *loop;

static void peer_open(struct peer *p)
{
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	struct xml_parser_limits lim = { .max_stanza = 65536, .max_depth = 16, .max_attrs = 16 };
	memset(p, 0, sizeof(*p));
	p->fd = sv[1];
	p->st = stream_new(loop, sv[0], "local", 0, &lim, 1 << 20, false, &ops, p);
}

/* Bytes the server side wrote to this peer so far. */
static size_t peer_read(struct peer *p, char *buf, size_t size)
{
	ssize_t n = read(p->fd, buf, size - 1);
	if (n < 0) {
		assert_true(errno == EAGAIN);
		n = 0;
	}
	buf[n] = '\0';
	return (size_t)n;
}

static void run_once(void)
{
	/* The prepare watcher runs before the loop polls. */
	ev_run(loop, EVRUN_NOWAIT);
	ev_run(loop, EVRUN_NOWAIT);
}

static int setup(void **state)
{
	loop = ev_loop_new(EVFLAG_AUTO);
	streams_init(loop);
	return 0;
}

static int teardown(void **state)
{
	streams_shutdown();
	ev_loop_destroy(loop);
	return 0;
}

static void check_abort_keeps_others(size_t victim)
{
	struct peer p[3];
	char buf[64];
	for (size_t i = 0; i < 3; i++)
		peer_open(&p[i]);
	/* The flush list now holds p2, p1, p0 (newest first). */
	stream_write_str(p[0].st, "zero");
	stream_write_str(p[1].st, "one");
	stream_write_str(p[2].st, "two");
	stream_abort(p[victim].st);
	run_once();
	static const char *const want[] = { "zero", "one", "two" };
	for (size_t i = 0; i < 3; i++) {
		size_t n = peer_read(&p[i], buf, sizeof(buf));
		if (i == victim) {
			assert_true(p[i].closed);
			assert_int_equal(n, 0);
		} else {
			assert_false(p[i].closed);
			assert_string_equal(buf, want[i]);
		}
	}
	/* The survivors still flush what is written later. */
	for (size_t i = 0; i < 3; i++) {
		if (i == victim)
			continue;
		stream_write_str(p[i].st, "again");
		run_once();
		peer_read(&p[i], buf, sizeof(buf));
		assert_string_equal(buf, "again");
	}
	for (size_t i = 0; i < 3; i++) {
		if (p[i].st != NULL)
			stream_abort(p[i].st);
	}
	run_once();
	for (size_t i = 0; i < 3; i++) {
		assert_true(p[i].closed);
		close(p[i].fd);
	}
}

static void test_abort_head_of_flush_list(void **state)
{
	check_abort_keeps_others(2);
}
static void test_abort_middle_of_flush_list(void **state)
{
	check_abort_keeps_others(1);
}
static void test_abort_tail_of_flush_list(void **state)
{
	check_abort_keeps_others(0);
}

static void test_close_sends_end_then_closes(void **state)
{
	struct peer p;
	char buf[256];
	peer_open(&p);
	stream_close(p.st, STE_SYSTEM_SHUTDOWN, "bye");
	run_once();
	size_t n = peer_read(&p, buf, sizeof(buf));
	assert_true(n > 0);
	assert_non_null(strstr(buf, "<system-shutdown"));
	assert_non_null(strstr(buf, "</stream:stream>"));
	/* Half-closed: the server waits for our side to finish, then frees. */
	assert_false(p.closed);
	shutdown(p.fd, SHUT_WR);
	for (int i = 0; i < 10 && !p.closed; i++)
		run_once();
	assert_true(p.closed);
	close(p.fd);
}

static void test_output_cap_disconnects(void **state)
{
	struct peer p;
	peer_open(&p);
	p.st->max_output = 1024;
	char big[600];
	memset(big, 'x', sizeof(big));
	stream_write(p.st, big, sizeof(big));
	assert_false(p.st->dead);
	stream_write(p.st, big, sizeof(big)); /* 1200 > 1024 queued */
	assert_true(p.st->dead);
	assert_false(p.closed); /* closed from the loop, not inside the call */
	run_once();
	assert_true(p.closed);
	close(p.fd);
}

/* XEP-0138 is for plain socket streams, once: not under a transport
 * (WebSocket, BOSH), not again when compressed.  c2s offers it and
 * stream_answer_compress accepts it by the same test. */
static void test_compression_on_plain_socket_once(void **state)
{
	static const struct stream_transport framed = { 0 };
	struct peer p;
	peer_open(&p);
	assert_true(stream_can_compress(p.st));
	stream_set_transport(p.st, &framed, NULL);
	assert_false(stream_can_compress(p.st));
	assert_int_equal(stream_start_compression(p.st), -1);
	stream_set_transport(p.st, NULL, NULL);
	assert_true(stream_can_compress(p.st));
	assert_int_equal(stream_start_compression(p.st), 0);
	assert_false(stream_can_compress(p.st));
	assert_int_equal(stream_start_compression(p.st), -1);
	stream_abort(p.st);
	run_once();
	assert_true(p.closed);
	close(p.fd);
}

int main(void)
{
	log_set_level(LOG_LEVEL_ERROR);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_abort_head_of_flush_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_abort_middle_of_flush_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_abort_tail_of_flush_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_sends_end_then_closes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_output_cap_disconnects, setup, teardown),
		cmocka_unit_test_setup_teardown(test_compression_on_plain_socket_once, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
