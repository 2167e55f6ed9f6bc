/*
 * Streams: sockets with TLS, an XML parser and an output queue.
 * Loop thread only.
 *
 * Invariants:
 * - Output is appended to s->out and written by the prepare watcher just
 *   before the loop sleeps, in one SSL_write per stream where possible, and
 *   also after every FLUSH_AFTER_READS stream reads in one iteration (so
 *   that a stanza read early in a busy iteration does not wait for all the
 *   other reads); the write watcher runs only while the socket is full.
 *   On the message path a delivered stanza costs one read() on the
 *   sender's socket and one write() on the recipient's (in the common case
 *   of one stanza per TLS record): reads stop at a short read instead of
 *   waiting for EAGAIN, writes are tried first and the write watcher is
 *   started only when one does not go through, and a write event retries a
 *   read only when the last SSL_read wanted to write (or SSL_write to read).
 * - What is queued (s->out and z->wire) never exceeds STREAM_OUTPUT_CEILING
 *   times s->max_output: an append past it aborts the stream.  Past
 *   s->max_output alone nothing happens at once (a burst for a peer that
 *   reads drains in a moment): over_since and over_taken note when and at
 *   which bytes_out the queue went over, and the sweep aborts a stream
 *   whose queue is still over after STREAM_OUTPUT_WINDOW seconds and that
 *   took less than max_output bytes in them (a peer that does not read, or
 *   reads a trickle); one that took that much gets a new window.  So a
 *   peer that does not read holds at most the ceiling, for at most a
 *   window (and a second of the sweep).
 * - A stream is never freed inside a call into it: stream_abort and the end
 *   of stream_close put it on the dead list, and the prepare watcher calls
 *   ops->closed and frees it.  Code holding a stream pointer during one
 *   callback chain may therefore keep using it (checking s->dead).
 * - Expat is never freed or restarted from inside one of its callbacks:
 *   restarts requested there are done when the feed returns.
 * - With a transport (WebSocket, HTTP), input goes through transport->input
 *   and what the owner writes through transport->output, which frames it
 *   with stream_write_raw; the owner's code is the same as over TCP.
 * - With compression (XEP-0138), s->out holds plaintext and z->wire the
 *   deflated bytes: a flush deflates all of s->out with one Z_SYNC_FLUSH
 *   and writes z->wire.  Compressed input waits in z->pending and is
 *   inflated a chunk at a time into the parser, so a paused stream never
 *   inflates more than one chunk ahead.
 * - A shaped stream (s->rate) reads while its bucket holds tokens; in debt
 *   its read watcher is stopped and shape_w starts it again.
 * - Work that comes in waves is bounded per loop iteration, so that a
 *   login or logout wave does not hold up the stanzas of everyone else:
 *   at most HANDSHAKES_PER_ITERATION TLS handshake steps (each may sign
 *   and do a key exchange, about half a millisecond with RSA-2048) and
 *   CLOSES_PER_ITERATION session ends.  A stream over the handshake budget
 *   waits on the handshake queue (FIFO, its read watcher stopped) and the
 *   check watcher gives it the next iteration's budget first; dead streams
 *   over the close budget stay on the dead list.  While either waits, the
 *   idle watcher keeps the poll from sleeping.
 */
#include "stream.h"
#include "tls.h"
#include "lib/latency.h"
#include "lib/log.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <malloc.h>
#include <zlib.h>
#include <openssl/err.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define READ_CHUNK 16384
#define CLOSE_GRACE 5.0   /* seconds a closing stream may take to flush */
#define COMPACT_AFTER 1.0 /* seconds of input silence before compacting */
#define HANDSHAKES_PER_ITERATION 4
#define SWEEP_SLICES 10     /* the sweep's ticks per round (a second) */
#define COMPACT_PER_TICK 32 /* parsers compacted in one tick at most */
#define TRIM_AFTER 64       /* parsers compacted in a wave before malloc_trim */
#define CLOSES_PER_ITERATION 16
#define FLUSH_AFTER_READS 64 /* stream reads in one iteration before a flush */

static struct ev_loop *loop_;
static struct stream *streams_head;
static unsigned nstreams;
static struct stream *flush_head;
static struct stream *dead_head;
static uint64_t next_stream_id = 1;
static ev_prepare prepare_w;
static ev_timer sweep_w;
static ev_check backlog_check_w;                            /* gives waiting handshakes their turn */
static ev_idle backlog_idle_w;                              /* no sleep while work waits */
static struct stream *hs_head, *hs_tail;                    /* the handshake queue, oldest first */
static unsigned handshakes_left = HANDSHAKES_PER_ITERATION; /* this iteration's budget */
static struct stream *hs_turn;      /* the queued stream whose turn it is (check watcher) */
static unsigned reads_unflushed;    /* stream reads since the last flush */
static unsigned untrimmed;          /* parsers compacted since the last malloc_trim */
static unsigned round_compacted;    /* parsers compacted in this round of the sweep */
static struct stream *sweep_cursor; /* the next stream the sweep visits in this round */
static bool sweep_round_started;

struct stream_zlib {
	z_stream in, out;
	struct buf wire;       /* deflated output not yet written */
	struct buf pending;    /* compressed input not yet inflated */
	size_t inflated;       /* bytes inflated since a stanza last completed */
	uint64_t stanzas_seen; /* s->stanzas_in when inflated was reset */
	bool in_ended;         /* the peer's zlib stream ended */
};

static void stream_read_cb(struct ev_loop *loop, ev_io *w, int revents);
static void stream_write_cb(struct ev_loop *loop, ev_io *w, int revents);
static void stream_flush(struct stream *s);
static void stream_shape_cb(struct ev_loop *loop, ev_timer *w, int revents);
static void stream_zlib_free(struct stream *s);

/* Output queued and not yet written (plaintext and deflated). */
static size_t stream_queued(const struct stream *s)
{
	return s->out.len + (s->z != NULL ? s->z->wire.len : 0);
}

/* ---- parser callbacks ---------------------------------------------------- */

static void parser_stream_start(void *ctx, struct xml_node *header, const char *default_ns)
{
	struct stream *s = ctx;
	if (s->dead || s->closing) {
		xml_unref(&header);
		return;
	}
	s->ops->stream_start(s, header, default_ns);
}

static bool parser_stanza(void *ctx, struct xml_node *stanza)
{
	struct stream *s = ctx;
	s->stanzas_in++;
	if (s->dead || s->closing) {
		xml_unref(&stanza);
		return true;
	}
	return s->ops->stanza(s, stanza);
}

static void parser_stream_end(void *ctx)
{
	struct stream *s = ctx;
	if (!s->dead && !s->closing)
		s->ops->stream_end(s);
}

static const struct xml_parser_callbacks parser_cbs = {
	.stream_start = parser_stream_start,
	.stanza = parser_stanza,
	.stream_end = parser_stream_end,
};

/* ---- lifecycle ------------------------------------------------------------- */

static void stream_link_flush(struct stream *s)
{
	if (s->in_flush_list || s->dead)
		return;
	s->in_flush_list = true;
	s->flush_next = flush_head;
	flush_head = s;
}

struct stream *stream_new(struct ev_loop *loop, int fd, const char *ip, unsigned port,
                          const struct xml_parser_limits *limits, size_t max_output, bool direct_tls,
                          const struct stream_ops *ops, void *owner)
{
	struct stream *s = xcalloc(1, sizeof(*s));
	s->id = next_stream_id++;
	s->fd = fd;
	s->loop = loop;
	s->ops = ops;
	s->owner = owner;
	snprintf(s->ip, sizeof(s->ip), "%s", ip);
	s->port = port;
	s->limits = *limits;
	s->max_output = max_output;
	s->parser = xml_parser_new(limits, &parser_cbs, s);
	s->last_in = s->last_out = ev_now(loop);
	ev_io_init(&s->rio, stream_read_cb, fd, EV_READ);
	ev_io_init(&s->wio, stream_write_cb, fd, EV_WRITE);
	s->rio.data = s->wio.data = s;
	ev_timer_init(&s->shape_w, stream_shape_cb, 0, 0);
	s->shape_w.data = s;
	if (direct_tls) {
		s->ssl = tls_new_server(fd);
		if (s->ssl == NULL) {
			log_warning("stream %llu from %s: no TLS certificate for direct TLS",
			            (unsigned long long)s->id, s->ip);
			s->dead = true;
		}
		s->tls_handshake = true;
	}
	s->next = streams_head;
	if (streams_head != NULL)
		streams_head->prev = s;
	streams_head = s;
	nstreams++;
	if (s->dead) {
		s->dead_next = dead_head;
		dead_head = s;
	} else if (fd >= 0) {
		ev_io_start(loop, &s->rio);
	}
	return s;
}

struct stream *stream_new_virtual(struct ev_loop *loop, const char *ip, unsigned port,
                                  const struct xml_parser_limits *limits, size_t max_output,
                                  const struct stream_ops *ops, void *owner)
{
	return stream_new(loop, -1, ip, port, limits, max_output, false, ops, owner);
}

static void stream_handshake_unqueue(struct stream *s);

static void stream_free(struct stream *s)
{
	stream_handshake_unqueue(s);
	if (sweep_cursor == s)
		sweep_cursor = s->next;
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		streams_head = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	nstreams--;
	ev_io_stop(s->loop, &s->rio);
	ev_io_stop(s->loop, &s->wio);
	ev_timer_stop(s->loop, &s->shape_w);
	stream_zlib_free(s);
	if (s->ssl != NULL) {
		if (s->tls_done && !s->tls_handshake && !s->tls_fatal)
			SSL_shutdown(s->ssl); /* best effort close_notify; non-blocking */
		SSL_free(s->ssl);
		ERR_clear_error();
	}
	SSL_free(s->client_ssl);
	if (s->fd >= 0)
		close(s->fd);
	if (s->transport != NULL && s->transport->free != NULL)
		s->transport->free(s);
	xml_parser_free(&s->parser);
	buf_free(&s->out);
	free(s);
}

void stream_abort(struct stream *s)
{
	if (s->dead)
		return;
	s->dead = true;
	ev_io_stop(s->loop, &s->rio);
	ev_io_stop(s->loop, &s->wio);
	ev_timer_stop(s->loop, &s->shape_w);
	/* It may stay on the flush list (stream_flush skips dead streams):
	 * searching that list here made a wave of closes quadratic. */
	s->dead_next = dead_head;
	dead_head = s;
}

/* ---- output -------------------------------------------------------------------- */

size_t stream_output_ceiling(const struct stream *s)
{
	if (s->max_output > SIZE_MAX / STREAM_OUTPUT_CEILING)
		return SIZE_MAX;
	return s->max_output * STREAM_OUTPUT_CEILING;
}

/* Whether queued bytes may be queued on s (the rule at the top); notes
 * when the queue goes over max_output.  False: the caller aborts s. */
static bool stream_output_fits(struct stream *s, size_t queued)
{
	if (queued > stream_output_ceiling(s)) {
		log_warning("stream %llu from %s: output queue over %zu bytes, %d times max_output (peer "
		            "not reading): disconnecting",
		            (unsigned long long)s->id, s->ip, stream_output_ceiling(s),
		            STREAM_OUTPUT_CEILING);
		return false;
	}
	if (queued > s->max_output && s->over_since == 0) {
		s->over_since = ev_now(s->loop);
		s->over_taken = s->bytes_out;
	}
	return true;
}

/* The sweep's part of the rule: a queue over max_output for a window in
 * which the peer took less than max_output ends the stream. */
static void stream_judge_output(struct stream *s, double now)
{
	if (stream_queued(s) <= s->max_output) {
		s->over_since = 0;
		return;
	}
	if (s->over_since == 0) {
		s->over_since = now;
		s->over_taken = s->bytes_out;
		return;
	}
	if (now - s->over_since < STREAM_OUTPUT_WINDOW)
		return;
	if (s->bytes_out - s->over_taken < s->max_output) {
		log_warning("stream %llu from %s: output queue over %zu bytes for %.0f s with %llu bytes "
		            "written (peer not reading): disconnecting",
		            (unsigned long long)s->id, s->ip, s->max_output, now - s->over_since,
		            (unsigned long long)(s->bytes_out - s->over_taken));
		stream_abort(s);
		return;
	}
	s->over_since = now;
	s->over_taken = s->bytes_out;
}

void stream_write_raw(struct stream *s, const char *data, size_t len)
{
	if (s->dead)
		return;
	if (!stream_output_fits(s, stream_queued(s) + len)) {
		stream_abort(s);
		return;
	}
	buf_append(&s->out, data, len);
	stream_link_flush(s);
}

void stream_write(struct stream *s, const char *data, size_t len)
{
	if (s->transport != NULL && s->transport->output != NULL) {
		if (!s->dead)
			s->transport->output(s, data, len);
		return;
	}
	stream_write_raw(s, data, len);
}

void stream_write_str(struct stream *s, const char *str)
{
	stream_write(s, str, strlen(str));
}

/* What was appended to s->out since before is queued unless it takes the
 * queue over its ceiling: then it is taken back and the stream aborted. */
static void queued_or_abort(struct stream *s, size_t before)
{
	if (!stream_output_fits(s, stream_queued(s))) {
		s->out.len = before;
		stream_abort(s);
		return;
	}
	stream_link_flush(s);
}

/* Serialised output of a stream with an output transport: built here,
 * then framed by the transport. */
static struct buf transport_scratch;

static void transport_out(struct stream *s)
{
	s->transport->output(s, transport_scratch.data, transport_scratch.len);
	buf_reset(&transport_scratch);
	if (transport_scratch.cap > 65536)
		buf_free(&transport_scratch);
}

void stream_send(struct stream *s, const struct xml_node *el, const char *default_ns)
{
	if (s->dead)
		return;
	if (s->transport != NULL && s->transport->output != NULL) {
		xml_serialize(&transport_scratch, el, default_ns);
		transport_out(s);
		return;
	}
	size_t before = s->out.len;
	xml_serialize(&s->out, el, default_ns);
	queued_or_abort(s, before);
}

void stream_send_wire(struct stream *s, const struct xml_wire *w, const char *to)
{
	if (s->dead)
		return;
	if (s->transport != NULL && s->transport->output != NULL) {
		buf_append(&transport_scratch, w->head.data, w->head.len);
		xml_escape(&transport_scratch, to, strlen(to), true);
		buf_append(&transport_scratch, w->tail.data, w->tail.len);
		transport_out(s);
		return;
	}
	size_t before = s->out.len;
	buf_append(&s->out, w->head.data, w->head.len);
	xml_escape(&s->out, to, strlen(to), true);
	buf_append(&s->out, w->tail.data, w->tail.len);
	queued_or_abort(s, before);
}

/* Output is written: shut the write side and read what the peer still
 * sends until it closes (or CLOSE_GRACE passes).  Closing with unread input
 * would make the kernel send a reset, which can destroy the stream error
 * before the peer reads it. */
static void stream_finish_close(struct stream *s)
{
	if (s->lingering)
		return;
	if (s->fd < 0) { /* no socket: nothing to linger on */
		stream_abort(s);
		return;
	}
	if (s->ssl != NULL && s->tls_done && !s->tls_handshake && !s->tls_fatal)
		SSL_shutdown(s->ssl);
	shutdown(s->fd, SHUT_WR);
	s->lingering = true;
	s->last_in = ev_now(s->loop);
	ev_io_start(s->loop, &s->rio);
}

static void stream_drain(struct stream *s)
{
	char buf[4096];
	for (;;) {
		ssize_t n = read(s->fd, buf, sizeof(buf));
		if (n > 0)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return;
		stream_abort(s); /* EOF or error: the peer is done */
		return;
	}
}

/* Deflate all of s->out onto z->wire, ending with a sync flush so that the
 * peer can parse everything queued so far. */
static int stream_deflate(struct stream *s)
{
	struct stream_zlib *z = s->z;
	char chunk[READ_CHUNK];
	z->out.next_in = (Bytef *)s->out.data;
	z->out.avail_in = (uInt)s->out.len;
	do {
		z->out.next_out = (Bytef *)chunk;
		z->out.avail_out = sizeof(chunk);
		int r = deflate(&z->out, Z_SYNC_FLUSH);
		if (r != Z_OK && r != Z_BUF_ERROR) {
			log_warning("stream %llu from %s: deflate failed (%d): disconnecting",
			            (unsigned long long)s->id, s->ip, r);
			stream_abort(s);
			return -1;
		}
		buf_append(&z->wire, chunk, sizeof(chunk) - z->out.avail_out);
	} while (z->out.avail_out == 0);
	buf_reset(&s->out);
	return 0;
}

/* Write as much queued output as the socket takes. */
static void stream_flush(struct stream *s)
{
	if (s->dead || s->tls_handshake)
		return;
	if (s->z != NULL && s->out.len > 0 && stream_deflate(s) < 0)
		return;
	struct buf *wire = s->z != NULL ? &s->z->wire : &s->out;
	while (wire->len > 0) {
		ssize_t n;
		if (s->ssl != NULL) {
			int len = wire->len > (1u << 30) ? (1 << 30) : (int)wire->len;
			int r = SSL_write(s->ssl, wire->data, len);
			if (r <= 0) {
				int err = SSL_get_error(s->ssl, r);
				if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) {
					/* A write that wants to read (a handshake message
					 * from the peer first) gets the read retried too. */
					if (err == SSL_ERROR_WANT_READ)
						s->read_after_write = true;
					ev_io_start(s->loop, &s->wio);
					return;
				}
				ERR_clear_error();
				s->tls_fatal = err == SSL_ERROR_SYSCALL || err == SSL_ERROR_SSL;
				log_info("stream %llu from %s: TLS write failed", (unsigned long long)s->id,
				         s->ip);
				stream_abort(s);
				return;
			}
			n = r;
		} else {
			n = write(s->fd, wire->data, wire->len);
			if (n < 0) {
				if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
					ev_io_start(s->loop, &s->wio);
					return;
				}
				log_info("stream %llu from %s: write failed: %s", (unsigned long long)s->id,
				         s->ip, strerror(errno));
				stream_abort(s);
				return;
			}
		}
		s->bytes_out += (uint64_t)n;
		s->last_out = ev_now(s->loop);
		buf_consume(wire, (size_t)n);
	}
	ev_io_stop(s->loop, &s->wio);
	buf_free(wire); /* idle streams keep no output memory */
	buf_free(&s->out);
	s->over_since = 0;
	if (s->closing)
		stream_finish_close(s);
}

void stream_close(struct stream *s, int e, const char *text)
{
	if (s->dead || s->closing)
		return;
	if (e >= 0) {
		struct buf b = { 0 };
		buf_printf(&b, "<stream:error><%s xmlns='" NS_STREAMS "'/>", stream_error_name(e));
		if (text != NULL) {
			buf_append_str(&b, "<text xmlns='" NS_STREAMS "'>");
			xml_escape(&b, text, strlen(text), false);
			buf_append_str(&b, "</text>");
		}
		buf_append_str(&b, "</stream:error>");
		stream_write(s, b.data, b.len);
		buf_free(&b);
	}
	stream_write_str(s, "</stream:stream>");
	stream_finish(s);
}

void stream_finish(struct stream *s)
{
	if (s->dead || s->closing)
		return;
	s->closing = true;
	s->last_in = ev_now(s->loop); /* the close grace counts from now */
	ev_io_stop(s->loop, &s->rio);
	stream_link_flush(s);
}

/* ---- TLS ------------------------------------------------------------------------ */

/* ---- the handshake budget --------------------------------------------------------- */

static void backlog_update(void)
{
	if (loop_ == NULL)
		return;
	if (hs_head != NULL || dead_head != NULL) {
		ev_idle_start(loop_, &backlog_idle_w);
		if (hs_head != NULL)
			ev_check_start(loop_, &backlog_check_w);
	} else {
		ev_idle_stop(loop_, &backlog_idle_w);
		ev_check_stop(loop_, &backlog_check_w);
	}
}

static void stream_handshake_unqueue(struct stream *s)
{
	if (!s->hs_waiting)
		return;
	if (s->hs_prev != NULL)
		s->hs_prev->hs_next = s->hs_next;
	else
		hs_head = s->hs_next;
	if (s->hs_next != NULL)
		s->hs_next->hs_prev = s->hs_prev;
	else
		hs_tail = s->hs_prev;
	s->hs_prev = s->hs_next = NULL;
	s->hs_waiting = false;
}

/* Whether s may do a handshake step now; if not, it waits on the queue
 * (with its read watcher stopped) and runs in a later iteration.  The
 * queue goes before any newcomer. */
static bool stream_handshake_admit(struct stream *s)
{
	if (handshakes_left > 0 && (s == hs_turn || hs_head == NULL)) {
		handshakes_left--;
		return true;
	}
	ev_io_stop(s->loop, &s->rio);
	if (!s->hs_waiting) {
		s->hs_waiting = true;
		s->hs_next = NULL;
		s->hs_prev = hs_tail;
		if (hs_tail != NULL)
			hs_tail->hs_next = s;
		else
			hs_head = s;
		hs_tail = s;
		backlog_update();
	}
	return false;
}

static void stream_handshake(struct stream *s)
{
	latency_begin(LATENCY_TLS_HANDSHAKE, NULL);
	ERR_clear_error();
	int r = SSL_do_handshake(s->ssl);
	latency_end();
	if (r == 1) {
		s->tls_handshake = false;
		s->tls_done = true;
		ev_io_stop(s->loop, &s->wio);
		log_debug("stream %llu from %s: TLS established (%s, %s)", (unsigned long long)s->id, s->ip,
		          SSL_get_version(s->ssl), SSL_get_cipher_name(s->ssl));
		if (s->ops->tls_ready != NULL)
			s->ops->tls_ready(s);
		if (s->out.len > 0)
			stream_link_flush(s);
		return;
	}
	int err = SSL_get_error(s->ssl, r);
	if (err == SSL_ERROR_WANT_READ) {
		ev_io_stop(s->loop, &s->wio);
		return;
	}
	if (err == SSL_ERROR_WANT_WRITE) {
		ev_io_start(s->loop, &s->wio);
		return;
	}
	unsigned long e = ERR_peek_error();
	char msg[200] = "connection closed";
	if (e != 0)
		ERR_error_string_n(e, msg, sizeof(msg));
	log_info("stream %llu from %s: TLS handshake failed: %s", (unsigned long long)s->id, s->ip, msg);
	ERR_clear_error();
	stream_abort(s);
}

static void stream_do_start_tls(struct stream *s)
{
	bool client = s->client_ssl != NULL;
	if (client) {
		s->ssl = s->client_ssl;
		s->client_ssl = NULL;
	} else {
		s->ssl = tls_new_server(s->fd);
		if (s->ssl != NULL && s->request_peer_cert)
			tls_request_peer_certificate(s->ssl);
	}
	if (s->ssl == NULL) {
		stream_abort(s);
		return;
	}
	s->tls_handshake = true;
	/* Bytes after <starttls/> were sent in plaintext: never honour them. */
	xml_parser_restart(s->parser, false);
	s->paused = false;
	/* The client speaks first: start the handshake from the loop. */
	if (client)
		ev_feed_event(s->loop, &s->rio, EV_READ);
}

void stream_start_tls(struct stream *s)
{
	if (s->dead)
		return;
	/* <proceed/> and anything queued before it go out in plaintext first;
	 * it is a few bytes, which an empty socket buffer always takes. */
	while (s->out.len > 0) {
		ssize_t n = write(s->fd, s->out.data, s->out.len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			log_info("stream %llu from %s: cannot write <proceed/>", (unsigned long long)s->id,
			         s->ip);
			stream_abort(s);
			return;
		}
		s->bytes_out += (uint64_t)n;
		buf_consume(&s->out, (size_t)n);
	}
	buf_free(&s->out);
	if (s->in_parser) {
		s->pending_tls = true;
		return;
	}
	stream_do_start_tls(s);
	if (!s->dead && !s->in_read) {
		ev_io_start(s->loop, &s->rio);
		ev_feed_event(s->loop, &s->rio, EV_READ);
	}
}

void stream_start_tls_client(struct stream *s, SSL *ssl)
{
	if (s->dead || s->ssl != NULL) {
		SSL_free(ssl);
		return;
	}
	SSL_free(s->client_ssl);
	s->client_ssl = ssl;
	stream_start_tls(s);
}

static bool stream_after_feed(struct stream *s, enum xml_feed_result r);

void stream_restart(struct stream *s)
{
	if (s->dead)
		return;
	if (s->in_parser) {
		s->pending_restart = true;
		return;
	}
	s->paused = false;
	s->in_parser = true;
	enum xml_feed_result r = xml_parser_restart(s->parser, true);
	s->in_parser = false;
	stream_after_feed(s, r);
}

/* ---- input ------------------------------------------------------------------------ */

static void stream_parse_error(struct stream *s)
{
	enum stream_error e;
	switch (xml_parser_error(s->parser)) {
	case XML_PARSE_RESTRICTED: e = STE_RESTRICTED_XML; break;
	case XML_PARSE_POLICY: e = STE_POLICY_VIOLATION; break;
	case XML_PARSE_BAD_NAMESPACE: e = STE_INVALID_NAMESPACE; break;
	case XML_PARSE_BAD_ENCODING: e = STE_UNSUPPORTED_ENCODING; break;
	default: e = STE_NOT_WELL_FORMED; break;
	}
	log_info("stream %llu from %s: %s: %s", (unsigned long long)s->id, s->ip, stream_error_name(e),
	         xml_parser_error_text(s->parser));
	s->ops->error(s, e, xml_parser_error_text(s->parser));
}

/* Handle one feed/resume result, doing what callbacks asked for while
 * expat was running; false when reading must stop. */
static bool stream_after_feed(struct stream *s, enum xml_feed_result r)
{
	for (;;) {
		if (s->dead || s->closing)
			return false;
		if (r == XML_FEED_ERROR) {
			stream_parse_error(s);
			return false;
		}
		if (s->pending_tls) {
			s->pending_tls = false;
			s->pending_restart = false;
			stream_do_start_tls(s);
			return !s->dead;
		}
		if (s->pending_compress) {
			/* Bytes after <compress/> were not compressed: drop them. */
			s->pending_compress = false;
			s->pending_restart = false;
			s->paused = false;
			s->in_parser = true;
			r = xml_parser_restart(s->parser, false);
			s->in_parser = false;
			continue;
		}
		if (s->pending_restart) {
			s->pending_restart = false;
			s->paused = false;
			s->in_parser = true;
			r = xml_parser_restart(s->parser, true);
			s->in_parser = false;
			continue;
		}
		if (r == XML_FEED_SUSPENDED && xml_parser_suspended(s->parser)) {
			s->paused = true;
			return false;
		}
		return true;
	}
}

static enum xml_feed_result stream_feed(struct stream *s, const char *data, size_t len)
{
	s->in_parser = true;
	enum xml_feed_result r = xml_parser_feed(s->parser, data, len);
	s->in_parser = false;
	return r;
}

bool held_input_feed(struct held_input *h, struct stream *s, const char *xml, size_t len)
{
	if (!s->paused && !held_input_waiting(h) && ev_now(s->loop) >= h->until) {
		stream_feed_xml(s, xml, len);
		return true;
	}
	/* The requests are still answered, so nothing else stops the client. */
	if (h->buf.len - h->off + len > s->max_output) {
		s->ops->error(s, STE_POLICY_VIOLATION, "too much input while the session is held back");
		return false;
	}
	buf_append(&h->buf, &len, sizeof(len));
	buf_append(&h->buf, xml, len);
	return true;
}

void held_input_drain(struct held_input *h, struct stream **sp, double now)
{
	struct stream *s = *sp;
	while (s != NULL && held_input_waiting(h) && !s->paused && !s->closing && !s->dead &&
	       now >= h->until) {
		size_t len;
		memcpy(&len, h->buf.data + h->off, sizeof(len));
		const char *xml = h->buf.data + h->off + sizeof(len);
		h->off += sizeof(len) + len;
		stream_feed_xml(s, xml, len);
		s = *sp;
	}
	if (!held_input_waiting(h))
		held_input_free(h);
}

void held_input_free(struct held_input *h)
{
	buf_free(&h->buf);
	h->off = 0;
}

bool stream_feed_xml(struct stream *s, const char *data, size_t len)
{
	if (s->dead || s->closing || s->paused)
		return false;
	return stream_after_feed(s, stream_feed(s, data, len));
}

/* ---- compression (XEP-0138) ------------------------------------------------------ */

static void stream_zlib_free(struct stream *s)
{
	struct stream_zlib *z = s->z;
	if (z == NULL)
		return;
	inflateEnd(&z->in);
	deflateEnd(&z->out);
	buf_free(&z->wire);
	buf_free(&z->pending);
	free(z);
	s->z = NULL;
}

bool stream_can_compress(const struct stream *s)
{
	return s->z == NULL && s->fd >= 0 && s->transport == NULL;
}

int stream_start_compression(struct stream *s)
{
	if (s->dead || !stream_can_compress(s))
		return -1;
	struct stream_zlib *z = xcalloc(1, sizeof(*z));
	if (inflateInit(&z->in) != Z_OK) {
		free(z);
		return -1;
	}
	if (deflateInit(&z->out, Z_DEFAULT_COMPRESSION) != Z_OK) {
		inflateEnd(&z->in);
		free(z);
		return -1;
	}
	/* What is queued (<compressed/>) goes out uncompressed. */
	buf_append(&z->wire, s->out.data, s->out.len);
	buf_free(&s->out);
	z->stanzas_seen = s->stanzas_in;
	s->z = z;
	if (z->wire.len > 0)
		stream_link_flush(s);
	if (s->in_parser) {
		s->pending_compress = true;
		return 0;
	}
	s->paused = false;
	s->in_parser = true;
	enum xml_feed_result r = xml_parser_restart(s->parser, false);
	s->in_parser = false;
	stream_after_feed(s, r);
	return 0;
}

int stream_answer_compress(struct stream *s, const struct xml_node *el, bool allowed, const char **failure_r)
{
	const struct xml_node *m = xml_child(el, "method", NS_COMPRESS);
	const char *method = m != NULL ? xml_text(m) : NULL;
	const char *failure = NULL;
	if (!allowed || !stream_can_compress(s))
		failure = "setup-failed";
	else if (method == NULL || strcmp(method, "zlib") != 0)
		failure = "unsupported-method";
	if (failure == NULL) {
		size_t before = s->out.len;
		stream_write_str(s, "<compressed xmlns='" NS_COMPRESS "'/>");
		if (stream_start_compression(s) == 0)
			return 0;
		/* Nothing changed: take <compressed/> back. */
		if (s->out.len > before)
			s->out.len = before;
		failure = "setup-failed";
	}
	*failure_r = failure;
	struct buf b = { 0 };
	buf_printf(&b, "<failure xmlns='" NS_COMPRESS "'><%s/></failure>", failure);
	stream_write(s, b.data, b.len);
	buf_free(&b);
	return -1;
}

/* Inflate z->pending into the parser a chunk at a time, until it is all
 * used or input must stop (paused, closing, dead: the rest waits). */
static bool stream_inflate_pending(struct stream *s)
{
	struct stream_zlib *z = s->z;
	char chunk[READ_CHUNK];
	size_t off = 0;
	bool go = true;
	while (go && !s->dead && !s->closing && !s->paused) {
		size_t avail = z->pending.len - off;
		z->in.next_in = (Bytef *)z->pending.data + off;
		z->in.avail_in = (uInt)avail;
		z->in.next_out = (Bytef *)chunk;
		z->in.avail_out = sizeof(chunk);
		int r = Z_BUF_ERROR;
		if (!z->in_ended)
			r = inflate(&z->in, Z_SYNC_FLUSH);
		off += avail - z->in.avail_in;
		size_t got = sizeof(chunk) - z->in.avail_out;
		if (r == Z_STREAM_END)
			z->in_ended = true;
		if ((r != Z_OK && r != Z_BUF_ERROR && r != Z_STREAM_END) ||
		    (z->in_ended && off < z->pending.len)) {
			log_info("stream %llu from %s: bad-format: compressed input cannot be inflated (%s)",
			         (unsigned long long)s->id, s->ip,
			         z->in.msg != NULL ? z->in.msg : "data after the end of the zlib stream");
			s->ops->error(s, STE_BAD_FORMAT, "the compressed input cannot be inflated");
			go = false;
			break;
		}
		if (got == 0)
			break; /* all used, or zlib waits for more input */
		if (s->stanzas_in != z->stanzas_seen) {
			z->stanzas_seen = s->stanzas_in;
			z->inflated = 0;
		}
		z->inflated += got;
		/* A chunk may end a stanza and begin the next: allow one chunk
		 * over the limit before calling it a bomb. */
		if (z->inflated > s->limits.max_stanza + sizeof(chunk)) {
			log_info("stream %llu from %s: policy-violation: compressed input inflates past "
			         "the stanza size limit (%zu bytes)",
			         (unsigned long long)s->id, s->ip, s->limits.max_stanza);
			s->ops->error(s, STE_POLICY_VIOLATION,
			              "compressed input inflates past the stanza size limit");
			go = false;
			break;
		}
		go = stream_after_feed(s, stream_feed(s, chunk, got));
	}
	if (off >= z->pending.len)
		buf_reset(&z->pending);
	else if (off > 0)
		buf_consume(&z->pending, off);
	if (z->pending.len == 0 && z->pending.cap > 65536)
		buf_free(&z->pending);
	return go && !s->dead && !s->closing && !s->paused;
}

static bool stream_inflate(struct stream *s, const char *data, size_t len)
{
	buf_append(&s->z->pending, data, len);
	return stream_inflate_pending(s);
}

/* ---- shaping ---------------------------------------------------------------------- */

void stream_set_rate(struct stream *s, size_t bytes_per_sec)
{
	s->rate = bytes_per_sec;
	s->tokens = READ_CHUNK;
	s->tokens_at = ev_now(s->loop);
}

/* Take n bytes read from the bucket; false when it is in debt (reading
 * stops until it is paid back). */
static bool stream_shape_take(struct stream *s, size_t n)
{
	double now = ev_now(s->loop);
	double burst = READ_CHUNK;
	s->tokens += (now - s->tokens_at) * (double)s->rate;
	if (s->tokens > burst)
		s->tokens = burst;
	s->tokens_at = now;
	s->tokens -= (double)n;
	return s->tokens > 0;
}

static void stream_shape_wait(struct stream *s)
{
	if (s->dead || s->shaped)
		return;
	s->shaped = true;
	ev_io_stop(s->loop, &s->rio);
	ev_timer_set(&s->shape_w, -s->tokens / (double)s->rate + 0.001, 0);
	ev_timer_start(s->loop, &s->shape_w);
}

void stream_delay_input(struct stream *s, double seconds)
{
	if (s->fd < 0 && !s->dead && !s->closing && seconds > 0 && s->transport != NULL &&
	    s->transport->delay != NULL) {
		s->transport->delay(s, seconds);
		return;
	}
	if (s->dead || s->closing || s->fd < 0 || seconds <= 0)
		return;
	if (s->shaped && ev_timer_remaining(s->loop, &s->shape_w) >= seconds)
		return;
	s->shaped = true;
	ev_io_stop(s->loop, &s->rio);
	ev_timer_stop(s->loop, &s->shape_w);
	ev_timer_set(&s->shape_w, seconds, 0);
	ev_timer_start(s->loop, &s->shape_w);
}

static void stream_shape_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct stream *s = w->data;
	latency_begin(LATENCY_TIMER, "stream-shape");
	s->shaped = false;
	if (!s->dead && !s->closing && !s->paused && s->fd >= 0) {
		ev_io_start(loop, &s->rio);
		/* TLS may hold decrypted bytes the socket will not signal again. */
		ev_feed_event(loop, &s->rio, EV_READ);
	}
	latency_end();
}

void stream_set_transport(struct stream *s, const struct stream_transport *t, void *ctx)
{
	s->transport = t;
	s->transport_ctx = ctx;
}

static void stream_read(struct stream *s)
{
	char buf[READ_CHUNK];
	s->in_read = true;
	for (;;) {
		if (s->dead || s->closing || s->paused || s->shaped)
			break;
		if (s->tls_handshake) {
			if (!stream_handshake_admit(s))
				break;
			stream_handshake(s);
			if (s->tls_handshake || s->dead)
				break;
			continue;
		}
		ssize_t n;
		if (s->ssl != NULL) {
			/* The error queue is cleared after failures, not before each
			 * call: clearing it costs more than a small record. */
			int r = SSL_read(s->ssl, buf, sizeof(buf));
			s->read_after_write = false;
			if (r <= 0) {
				int err = SSL_get_error(s->ssl, r);
				if (err == SSL_ERROR_WANT_READ)
					break;
				if (err == SSL_ERROR_WANT_WRITE) {
					s->read_after_write = true;
					ev_io_start(s->loop, &s->wio);
					break;
				}
				if (err != SSL_ERROR_ZERO_RETURN)
					log_debug("stream %llu from %s: TLS read error %d",
					          (unsigned long long)s->id, s->ip, err);
				/* a reset connection: writing a close_notify would
				 * only fail (EPIPE) after encrypting it */
				s->tls_fatal = err == SSL_ERROR_SYSCALL || err == SSL_ERROR_SSL;
				ERR_clear_error();
				stream_abort(s);
				break;
			}
			n = r;
		} else {
			n = read(s->fd, buf, sizeof(buf));
			if (n < 0) {
				if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
					break;
				log_debug("stream %llu from %s: read: %s", (unsigned long long)s->id, s->ip,
				          strerror(errno));
				stream_abort(s);
				break;
			}
			if (n == 0) {
				stream_abort(s);
				break;
			}
		}
		s->bytes_in += (uint64_t)n;
		s->last_in = ev_now(s->loop);
		bool in_debt = s->rate > 0 && !stream_shape_take(s, (size_t)n);
		bool more;
		if (s->transport != NULL)
			more = s->transport->input(s, buf, (size_t)n);
		else if (s->z != NULL)
			more = stream_inflate(s, buf, (size_t)n);
		else
			more = stream_after_feed(s, stream_feed(s, buf, (size_t)n));
		if (in_debt)
			stream_shape_wait(s);
		if (!more || in_debt)
			break;
		/* A short read drained the socket (and TLS holds nothing more):
		 * the level-triggered watcher calls again when more arrives, so
		 * skip the read that would only say EAGAIN. */
		if ((size_t)n < sizeof(buf) && (s->ssl == NULL || !SSL_has_pending(s->ssl)))
			break;
	}
	s->in_read = false;
	if (s->paused && !s->dead)
		ev_io_stop(s->loop, &s->rio);
}

static void streams_flush_and_close(unsigned closes);

static void stream_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct stream *s = w->data;
	latency_begin(LATENCY_STREAM_READ, NULL);
	if (s->lingering)
		stream_drain(s);
	else
		stream_read(s);
	latency_end();
	/* An iteration with many readable streams writes what the first ones
	 * routed before it reads the rest. */
	if (++reads_unflushed >= FLUSH_AFTER_READS)
		streams_flush_and_close(0);
}

static void stream_write_event(struct ev_loop *loop, ev_io *w, int revents)
{
	struct stream *s = w->data;
	if (s->tls_handshake) {
		stream_handshake(s);
		if (!s->tls_handshake && !s->dead)
			stream_read(s);
		return;
	}
	stream_flush(s);
	/* An SSL_read that wanted to write (or an SSL_write that wanted to
	 * read) is followed by a read now.  Only then: a read after every
	 * write event of a stream whose peer reads slowly would be a read()
	 * that says EAGAIN each time (new input wakes the read watcher). */
	if (s->read_after_write && !s->dead && !s->paused && !s->closing && !s->shaped)
		ev_feed_event(s->loop, &s->rio, EV_READ);
}

static void stream_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	latency_begin(LATENCY_STREAM_WRITE, NULL);
	stream_write_event(loop, w, revents);
	latency_end();
}

void stream_pause(struct stream *s)
{
	s->paused = true;
	if (!s->in_read)
		ev_io_stop(s->loop, &s->rio);
}

void stream_resume(struct stream *s)
{
	if (s->dead || s->closing)
		return;
	s->paused = false;
	if (xml_parser_suspended(s->parser)) {
		s->in_parser = true;
		enum xml_feed_result r = xml_parser_resume(s->parser);
		s->in_parser = false;
		if (!stream_after_feed(s, r))
			return;
	}
	if (s->transport != NULL && s->transport->resume != NULL && !s->transport->resume(s))
		return;
	if (s->z != NULL && !stream_inflate_pending(s))
		return;
	if (s->in_read || s->fd < 0 || s->shaped)
		return;
	ev_io_start(s->loop, &s->rio);
	/* TLS may hold decrypted bytes the socket will not signal again. */
	ev_feed_event(s->loop, &s->rio, EV_READ);
}

/* ---- the loop's housekeeping ---------------------------------------------------- */

/* Write the queued output and end up to `closes` dead streams' sessions.
 * Closing a stream can queue output on others (unavailable presence), so
 * go on until the flush list is empty and the dead list is empty or over
 * budget. */
static void streams_flush_and_close(unsigned closes)
{
	reads_unflushed = 0;
	latency_begin(LATENCY_STREAM_FLUSH, NULL);
	while (flush_head != NULL || (dead_head != NULL && closes > 0)) {
		while (flush_head != NULL) {
			struct stream *s = flush_head;
			flush_head = s->flush_next;
			s->in_flush_list = false;
			s->flush_next = NULL;
			stream_flush(s);
		}
		while (dead_head != NULL && closes > 0) {
			struct stream *s = dead_head;
			if (s->in_flush_list)
				break; /* never free a stream still linked there: flush first */
			dead_head = s->dead_next;
			closes--;
			latency_begin(LATENCY_STREAM_CLOSE, NULL);
			s->ops->closed(s);
			stream_free(s);
			latency_end();
		}
	}
	latency_end();
}

static void streams_prepare_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	streams_flush_and_close(CLOSES_PER_ITERATION);
	handshakes_left = HANDSHAKES_PER_ITERATION; /* the next iteration's */
	backlog_update();
}

/* After the poll, before this iteration's other callbacks: the streams
 * that waited for a handshake step get the budget first. */
static void streams_check_cb(struct ev_loop *loop, ev_check *w, int revents)
{
	while (hs_head != NULL && handshakes_left > 0) {
		struct stream *s = hs_head;
		latency_begin(LATENCY_STREAM_READ, NULL);
		if (!s->dead && s->tls_handshake && !s->closing) {
			hs_turn = s;
			stream_read(s); /* takes one step */
			hs_turn = NULL;
		}
		stream_handshake_unqueue(s);
		/* The read watcher was stopped while it waited (the handshake may
		 * also have ended on the write side meanwhile). */
		if (!s->dead && !s->closing && !s->paused && !s->shaped && s->fd >= 0)
			ev_io_start(loop, &s->rio);
		latency_end();
	}
	backlog_update();
}

static void streams_idle_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
	/* nothing: while it is active, the loop polls without sleeping */
}

/* One slice of the sweep: the next tenth of the streams (a round visits
 * each once a second; the cost of a tick does not grow with the number of
 * users beyond a tenth of them), compacting the parsers of streams silent
 * for COMPACT_AFTER, at most COMPACT_PER_TICK of them. */
static void streams_sweep_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	latency_begin(LATENCY_TIMER, "stream-sweep");
	double now = ev_now(loop);
	unsigned visit = (nstreams + SWEEP_SLICES - 1) / SWEEP_SLICES, compacted = 0;
	struct stream *s = sweep_round_started ? sweep_cursor : streams_head;
	sweep_round_started = true;
	for (struct stream *next; s != NULL && visit > 0; s = next, visit--) {
		next = s->next;
		if (s->dead)
			continue;
		if (s->closing) {
			if (now - s->last_in > CLOSE_GRACE)
				stream_abort(s);
			continue;
		}
		stream_judge_output(s, now);
		if (!s->dead && s->ops->tick != NULL)
			s->ops->tick(s, now);
		if (!s->dead && compacted < COMPACT_PER_TICK && now - s->last_in >= COMPACT_AFTER &&
		    xml_parser_compact(s->parser))
			compacted++;
	}
	sweep_cursor = s;
	round_compacted += compacted;
	if (s == NULL) {
		/* The round is over.  Hand the memory a wave of logins freed
		 * (handshake buffers, parsers) back to the system once the wave
		 * is over: after a round that compacted nothing, when the
		 * rounds before compacted at least TRIM_AFTER parsers.
		 * malloc_trim walks the whole heap with the allocator locked
		 * (1-20 ms with 1000 users), so it runs once per wave, not as
		 * parsers trickle in. */
		untrimmed += round_compacted;
		if (round_compacted == 0 && untrimmed >= TRIM_AFTER) {
			latency_begin(LATENCY_TIMER, "malloc-trim");
			malloc_trim(0);
			latency_end();
			untrimmed = 0;
		}
		round_compacted = 0;
		sweep_round_started = false;
	}
	latency_end();
}

void streams_init(struct ev_loop *loop)
{
	loop_ = loop;
	ev_prepare_init(&prepare_w, streams_prepare_cb);
	ev_prepare_start(loop, &prepare_w);
	ev_check_init(&backlog_check_w, streams_check_cb);
	ev_idle_init(&backlog_idle_w, streams_idle_cb);
	ev_timer_init(&sweep_w, streams_sweep_cb, 1.0 / SWEEP_SLICES, 1.0 / SWEEP_SLICES);
	ev_timer_start(loop, &sweep_w);
	ev_unref(loop); /* the sweep alone does not keep the loop alive */
}

void streams_shutdown(void)
{
	if (loop_ == NULL)
		return;
	ev_ref(loop_);
	ev_timer_stop(loop_, &sweep_w);
	streams_flush_and_close(UINT_MAX);
	ev_prepare_stop(loop_, &prepare_w);
	ev_check_stop(loop_, &backlog_check_w);
	ev_idle_stop(loop_, &backlog_idle_w);
}

void streams_foreach(void (*fn)(struct stream *s, void *ctx), void *ctx)
{
	for (struct stream *s = streams_head, *next; s != NULL; s = next) {
		next = s->next;
		if (!s->dead)
			fn(s, ctx);
	}
}

unsigned streams_count(void)
{
	return nstreams;
}
