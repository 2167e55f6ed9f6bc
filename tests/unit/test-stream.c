/*
 * Streams (server/stream.c): queued output is written by the loop's prepare
 * pass, an aborted stream is closed from the loop, and aborting one stream
 * never loses the output queued for others; the output queue is judged by
 * what the peer takes (a burst over max_output is written, a queue that
 * stays over it without being read ends the stream, and so does one past
 * the ceiling); compression only on a plain socket stream, once.  Plain
 * sockets (socketpair); no TLS.
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

/* A burst over max_output in one go is queued and written: only what the
 * peer does not take is judged (the offline messages of a login, a room's
 * history, a resumed session's queue come at once). */
static void test_output_burst_over_cap_is_written(void **state)
{
	struct peer p;
	char buf[2048];
	peer_open(&p);
	p.st->max_output = 1024;
	char big[1200];
	memset(big, 'x', sizeof(big));
	stream_write(p.st, big, sizeof(big)); /* 1200 > 1024 queued at once */
	assert_false(p.st->dead);
	run_once();
	assert_false(p.closed);
	assert_int_equal(peer_read(&p, buf, sizeof(buf)), sizeof(big));
	assert_int_equal(p.st->over_since, 0); /* written: no longer over */
	stream_abort(p.st);
	run_once();
	close(p.fd);
}

/* Past STREAM_OUTPUT_CEILING times max_output a stream ends at once. */
static void test_output_ceiling_disconnects(void **state)
{
	struct peer p;
	peer_open(&p);
	p.st->max_output = 1024;
	char big[1024];
	memset(big, 'x', sizeof(big));
	for (int i = 0; i < STREAM_OUTPUT_CEILING; i++)
		stream_write(p.st, big, sizeof(big));
	assert_false(p.st->dead);
	stream_write(p.st, "x", 1); /* one byte over the ceiling */
	assert_true(p.st->dead);
	assert_false(p.closed); /* closed from the loop, not inside the call */
	run_once();
	assert_true(p.closed);
	close(p.fd);
}

/* Fill the (small) socket buffer between the stream and the peer, so that
 * what the stream queues now stays queued until the peer reads.  Small
 * writes: reading a little frees room again. */
static void fill_socket(struct peer *p)
{
	int size = 4096;
	assert_int_equal(setsockopt(p->st->fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size)), 0);
	char chunk[512];
	memset(chunk, 'f', sizeof(chunk));
	while (write(p->st->fd, chunk, sizeof(chunk)) > 0)
		;
	assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
}

/* Run the loop until the sweep has visited the streams once more. */
static void run_sweep(void)
{
	for (int i = 0; i < 3; i++)
		ev_run(loop, EVRUN_ONCE); /* the sweep ticks every 0.1 s */
}

/* A queue that stays over max_output is judged once a window has passed:
 * a peer that took max_output bytes in it gets another window, one that
 * took less (it does not read) is disconnected. */
static void test_output_over_cap_judged_by_what_is_taken(void **state)
{
	struct peer p;
	char buf[4096];
	peer_open(&p);
	p.st->max_output = 1024;
	fill_socket(&p);
	char big[12000];
	memset(big, 'x', sizeof(big));
	stream_write(p.st, big, sizeof(big));
	run_once();
	assert_false(p.st->dead);
	assert_true(p.st->over_since > 0);
	/* The peer reads a little: the stream writes some of its queue (at
	 * its next flush: a byte more asks for one). */
	uint64_t taken = p.st->bytes_out;
	for (size_t got = 0; got < 2048;)
		got += peer_read(&p, buf, sizeof(buf) / 2 + 1);
	stream_write(p.st, "y", 1);
	run_once();
	assert_true(p.st->bytes_out - taken >= 1024);
	assert_true(p.st->out.len > 1024);
	/* A window later it is still over, but it was read: it stays. */
	p.st->over_since = ev_now(loop) - STREAM_OUTPUT_WINDOW - 1;
	run_sweep();
	assert_false(p.closed);
	assert_true(p.st->over_since >= ev_now(loop) - 1); /* a new window */
	/* A window in which the peer read nothing: disconnected. */
	p.st->over_since = ev_now(loop) - STREAM_OUTPUT_WINDOW - 1;
	run_sweep();
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
		cmocka_unit_test_setup_teardown(test_output_burst_over_cap_is_written, setup, teardown),
		cmocka_unit_test_setup_teardown(test_output_ceiling_disconnects, setup, teardown),
		cmocka_unit_test_setup_teardown(test_output_over_cap_judged_by_what_is_taken, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_compression_on_plain_socket_once, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
