/*
 * A stream owns one connected socket: its TLS state, its XML parser and its
 * output queue.  The owner (the c2s state machine) gets parsed events through
 * struct stream_ops and writes with stream_send.
 *
 * Output is queued and written just before the loop sleeps (one SSL_write
 * per stream per loop iteration); a write watcher is started only when the
 * socket is full.  The queue is judged by what the peer takes, not by the
 * size of one burst: a stream whose queue stays over max_output must take
 * at least max_output bytes every STREAM_OUTPUT_WINDOW seconds, and one
 * whose queue goes over STREAM_OUTPUT_CEILING times max_output is ended at
 * once, so a peer that does not read is disconnected, not buffered
 * forever, while one that reads gets a burst bigger than max_output (all
 * stored offline messages, a room's history, a resumed session's queue).
 * Input is paused while the owner waits on a backend (later stanzas wait,
 * in order).  Loop thread only.
 */
#ifndef PARLEY_STREAM_H
#define PARLEY_STREAM_H

#include <ev.h>
#include <openssl/ssl.h>
#include "lib/xml.h"
#include "stanza.h"

struct stream;

/* Seconds in which a stream whose output queue stays over max_output must
 * take (have written) max_output bytes; less ends it as not reading. */
#define STREAM_OUTPUT_WINDOW 60.0
/* Output queued past this many times max_output ends a stream at once. */
#define STREAM_OUTPUT_CEILING 16

struct stream_ops {
	void (*stream_start)(struct stream *s, struct xml_node *header, const char *default_ns);
	/* Return true to pause input after this stanza (resume with stream_resume). */
	bool (*stanza)(struct stream *s, struct xml_node *stanza);
	void (*stream_end)(struct stream *s);
	/* The TLS handshake finished (after stream_start_tls, or direct TLS). */
	void (*tls_ready)(struct stream *s);
	/* The input broke a rule of the parser (not-well-formed, restricted-xml,
	 * policy-violation, invalid-namespace): the owner closes the stream. */
	void (*error)(struct stream *s, enum stream_error e, const char *text);
	/* Called about once a second for timeouts and keepalives. */
	void (*tick)(struct stream *s, double now);
	/* The stream is gone (closed by either side, error, or stream_close done);
	 * the owner must not touch it after this returns (it is freed). */
	void (*closed)(struct stream *s);
};

/* A transport between the socket and the XML parser, for streams that are
 * not plain XML over TCP: XMPP over WebSocket (RFC 7395), and the HTTP
 * connection that may become one.  Without one, bytes go straight to the
 * parser and output straight to the socket. */
struct stream_transport {
	/* Bytes read from the socket (after TLS).  XML goes to the parser
	 * through stream_feed_xml.  Return false when reading must stop
	 * (paused, closing or dead). */
	bool (*input)(struct stream *s, const char *data, size_t len);
	/* What the owner wrote (stream headers, complete elements, whitespace);
	 * the transport queues its framing with stream_write_raw.  NULL: the
	 * bytes go out as they are. */
	void (*output)(struct stream *s, const char *data, size_t len);
	/* Input resumes after stream_pause (the parser's own suspension is
	 * resumed first): hand on what was held back.  False when reading
	 * must stop again.  Optional. */
	bool (*resume)(struct stream *s);
	/* The stream is freed: release the transport's state.  Optional. */
	void (*free)(struct stream *s);
	/* stream_delay_input on a stream without a socket: hold input back
	 * for seconds (per-account rate limits).  Optional. */
	void (*delay)(struct stream *s, double seconds);
};

struct stream {
	uint64_t id;
	int fd;
	struct ev_loop *loop;
	const struct stream_ops *ops;
	void *owner;
	char ip[64];
	unsigned port;
	SSL *ssl;
	bool tls_handshake; /* handshake in progress */
	bool tls_done;      /* established */
	/* OpenSSL reported a fatal error (a reset connection, a bad record):
	 * no close_notify is attempted, as OpenSSL requires */
	bool tls_fatal;
	struct xml_parser *parser;
	struct xml_parser_limits limits;
	const struct stream_transport *transport; /* NULL: plain XML stream */
	void *transport_ctx;
	struct buf out; /* queued output (plaintext) */
	size_t max_output;
	bool paused;    /* owner asked to pause input */
	bool closing;   /* no more input; close when output is written */
	bool lingering; /* output done and write side shut: draining input */
	bool dead;      /* closed: freed at the next loop iteration */
	bool in_flush_list;
	bool in_read;         /* inside the read handler */
	bool in_parser;       /* inside an expat call (feed/resume/restart) */
	bool pending_tls;     /* start TLS when the parser returns */
	bool pending_restart; /* restart the XML stream when the parser returns */
	ev_io rio, wio;
	double last_in, last_out; /* ev_now of the last byte in / out */
	struct stream *flush_next;
	struct stream *dead_next;         /* the dead list (the flush list may still hold it) */
	struct stream *prev, *next;       /* all streams, for sweeps and shutdown */
	struct stream *hs_prev, *hs_next; /* waiting for a handshake step (budget spent) */
	bool hs_waiting;                  /* on that queue */
	uint64_t bytes_in, bytes_out;
	/* The output rule (stream.c): when the queue went over max_output
	 * (ev_now; 0: not over), and bytes_out then. */
	double over_since;
	uint64_t over_taken;
	SSL *client_ssl;        /* stream_start_tls_client: the SSL object to start */
	bool request_peer_cert; /* server side: ask the peer for a certificate (s2s) */
	uint64_t stanzas_in;    /* depth-1 elements the parser completed */
	struct stream_zlib *z;  /* XEP-0138 compression, once started */
	bool pending_compress;  /* start compression when the parser returns */
	/* Input shaping (stream_set_rate): a token bucket of bytes. */
	size_t rate;      /* bytes per second; 0: unlimited */
	double tokens;    /* bytes that may be read now (negative: debt) */
	double tokens_at; /* ev_now when tokens was last refilled */
	bool shaped;      /* reading stopped until shape_w fires */
	ev_timer shape_w;

	/* The last SSL_read wanted to write, or an SSL_write wanted to read:
	 * the next write event is followed by a read. */
	bool read_after_write;
};

/* Global set-up (the prepare watcher that flushes output, the sweep timer). */
void streams_init(struct ev_loop *loop);
void streams_shutdown(void);
/* Call fn for every live stream. */
void streams_foreach(void (*fn)(struct stream *s, void *ctx), void *ctx);
unsigned streams_count(void);

/* Take over an accepted, non-blocking socket.  direct_tls starts TLS at once. */
struct stream *stream_new(struct ev_loop *loop, int fd, const char *ip, unsigned port,
                          const struct xml_parser_limits *limits, size_t max_output, bool direct_tls,
                          const struct stream_ops *ops, void *owner);

/* A stream without a socket (a BOSH session): input comes only through
 * stream_feed_xml, output only through its transport's output hook (set
 * it before writing); closing it completes at once. */
struct stream *stream_new_virtual(struct ev_loop *loop, const char *ip, unsigned port,
                                  const struct xml_parser_limits *limits, size_t max_output,
                                  const struct stream_ops *ops, void *owner);

/* Queue bytes / a stanza (serialised with default_ns in scope). */
void stream_write(struct stream *s, const char *data, size_t len);
void stream_write_str(struct stream *s, const char *str);
void stream_send(struct stream *s, const struct xml_node *el, const char *default_ns);
/* stream_send of a fan-out copy: w's head, to escaped, w's tail. */
void stream_send_wire(struct stream *s, const struct xml_wire *w, const char *to);

/* Start TLS after <proceed/> was queued: the queued plaintext is written
 * first, the parser restarts and bytes after <starttls/> are discarded. */
void stream_start_tls(struct stream *s);
/* The client side of STARTTLS (an outgoing s2s stream, after <proceed/>
 * was read): start ssl (from tls_new_client; the stream owns it now) on
 * the socket as stream_start_tls does; ops->tls_ready runs when the
 * handshake is done. */
void stream_start_tls_client(struct stream *s, SSL *ssl);
/* Start XEP-0138 zlib compression after <compressed/> was queued: what is
 * queued goes out as it is, everything after it deflated (one
 * Z_SYNC_FLUSH per flush); input is inflated before the parser, and the
 * XML stream restarts with bytes after <compress/> discarded.  Inflated
 * bytes count against the stanza size limit as they arrive (a
 * decompression bomb gets <policy-violation/>, never inflated whole);
 * undecodable input closes the stream.  Only for socket streams without a
 * transport.  Returns -1 (nothing changed) when zlib cannot be set up. */
int stream_start_compression(struct stream *s);
/* Whether s can take XEP-0138 compression at all: a socket stream without
 * a transport (not WebSocket or BOSH) that is not compressed yet.  The
 * stream's side of the decision; whether to offer it (configuration,
 * authentication) is its owner's. */
bool stream_can_compress(const struct stream *s);
#define NS_COMPRESS "http://jabber.org/protocol/compress"         /* XEP-0138 */
#define NS_COMPRESS_FEATURE "http://jabber.org/features/compress" /* XEP-0138 */

/* Answer a <compress/> request (el) on s: when allowed (the owner's
 * policy), s can be compressed (stream_can_compress) and its method is
 * zlib, queue <compressed/> and start compression (the XML stream then
 * restarts: returns 0); else queue a <failure/> and return -1, *failure_r
 * naming its condition. */
int stream_answer_compress(struct stream *s, const struct xml_node *el, bool allowed, const char **failure_r);
/* Limit the input rate to bytes_per_sec (0: unlimited), with a burst of
 * one read: past it the socket is not read until the bucket refills, so a
 * fast sender is slowed down, never disconnected for it.  Set by the owner,
 * usually right after stream_new. */
void stream_set_rate(struct stream *s, size_t bytes_per_sec);
/* Read nothing more from the socket for seconds (longer if the shaper
 * already waits longer); what was read is still parsed.  For per-account
 * rate limits.  A stream without a socket passes it to its transport's
 * delay hook (none: no effect). */
void stream_delay_input(struct stream *s, double seconds);
/* Restart the XML stream (after SASL success); pipelined bytes are kept. */
void stream_restart(struct stream *s);

/* Put a transport between the socket and the parser (see above), or take
 * it away (NULL); the transport's free is not called for the old one. */
void stream_set_transport(struct stream *s, const struct stream_transport *t, void *ctx);
/* For transports: feed XML to the parser, as if it had been read; false
 * when reading must stop (paused, closing or dead).  Not while paused. */
bool stream_feed_xml(struct stream *s, const char *data, size_t len);
/* For transports: queue bytes as they are (no output translation). */
void stream_write_raw(struct stream *s, const char *data, size_t len);
/* The most output s may have queued at once: STREAM_OUTPUT_CEILING times
 * max_output.  For queues kept outside s->out (a transport without a
 * socket, output held for earlier input): past it the owner ends s. */
size_t stream_output_ceiling(const struct stream *s);

/* For transports without a socket (BOSH, HTTP polling), which answer
 * their requests while the stream's input waits: the input held back
 * while the stream is paused or slowed by the rate limits, in order. */
struct held_input {
	struct buf buf; /* size_t length, then the bytes, per piece */
	size_t off;     /* where the next piece starts */
	double until;   /* input waits until then (stream_delay_input) */
};
/* Feed xml to s now, or hold it back when s is paused, input already
 * waits or it is before h->until.  Held input past s->max_output ends
 * the stream with a policy-violation (false). */
bool held_input_feed(struct held_input *h, struct stream *s, const char *xml, size_t len);
/* Feed what waits, in order, until the stream pauses or is slowed again.
 * *sp is read again after each piece: the owner may set it to NULL when
 * the stream ends. */
void held_input_drain(struct held_input *h, struct stream **sp, double now);
static inline bool held_input_waiting(const struct held_input *h)
{
	return h->buf.len > h->off;
}
void held_input_free(struct held_input *h);
/* Close once the queued output is written, writing nothing more (no
 * stream error, no </stream:stream>); the same lingering close as
 * stream_close. */
void stream_finish(struct stream *s);

void stream_pause(struct stream *s);
void stream_resume(struct stream *s);

/* Send a stream error (when e is not -1) and </stream:stream>, flush and
 * close.  The owner sends a stream header first when none was sent yet.
 * Every close is completed from the loop (ops->closed never runs inside a
 * call into the stream), so a stream may be closed while it is being
 * delivered to. */
void stream_close(struct stream *s, int e, const char *text);
/* Close immediately without writing anything more. */
void stream_abort(struct stream *s);

#endif
