/*
 * XEP-0025 HTTP polling at http.http_poll_path (off by default; the
 * protocol is obsolete, superseded by BOSH).  Loop thread.
 *
 * Each POST body is "id;key[;newkey],xml": id is "0" for a new session,
 * key the next one of the client's key sequence (K(n) = base64(SHA-1(
 * K(n-1))), sent from the last to the first: a key is good when base64(
 * SHA-1(key)) is the key sent before it), newkey the last of a new
 * sequence when the client starts one.  xml is raw XML stream text, the
 * stream header included, as over TCP.  The answer is whatever the server
 * wrote since the last request, with the cookie ID=id; errors are
 * ID=-1:0 (server error), ID=-2:0 (bad request: unknown session, bad
 * format) and ID=-3:0 (key sequence error), with an empty body.
 *
 * As for BOSH, a session is a stream without a socket (stream_new_virtual)
 * run by c2s_attach: the same SASL, binding and limits.
 *
 * Invariants:
 * - A request with a bad key is refused whole: none of its XML is read,
 *   and the session goes on (a guessed id cannot end someone's session).
 * - Input that arrives while the stream is paused is kept, in order.
 * - Per-account rate limits (the stream's delay hook, as for BOSH) hold
 *   the session's input back until the debt is paid, request by request;
 *   polls are answered as usual meanwhile, and nothing is lost.
 * - When the stream ends, the session stays until its last output was
 *   fetched or 'inactivity' passed; a session with no request for
 *   http.bosh_inactivity seconds ends.
 * - Ids and keys are compared in constant time.
 * - Output waits in the session's queue until a request takes all of it:
 *   past the stream's ceiling (stream_output_ceiling) the session ends at
 *   once; a client that stops polling is ended by the inactivity limit.
 */
#include "httppoll.h"
#include "c2s.h"
#include "http.h"
#include "server.h"
#include "stream.h"
#include "lib/log.h"

#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>

#define HP_ID_LEN 32
#define HP_MAX_KEY 128

struct hp_session {
	char id[HP_ID_LEN + 1];
	char key[HP_MAX_KEY + 1]; /* the key the next one must hash to */
	struct stream *st;        /* NULL once the stream is freed */
	struct ev_loop *loop;
	struct buf out;          /* written by the server, not fetched yet */
	struct held_input input; /* held back while paused or slowed */
	double last_seen;
	double inactivity;
	bool expired;
	ev_timer timer;
	ev_timer slow; /* feeds what waited when input.until passes */
	struct hp_session *next;
};

static struct hp_session *sessions;
static unsigned nsessions;
static const struct listen_config hp_lc = { .module = LISTEN_C2S, .starttls = STARTTLS_OFF };

static void hp_session_free(struct hp_session *s)
{
	for (struct hp_session **pp = &sessions; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	}
	nsessions--;
	ev_timer_stop(s->loop, &s->timer);
	ev_timer_stop(s->loop, &s->slow);
	buf_free(&s->out);
	held_input_free(&s->input);
	explicit_bzero(s->key, sizeof(s->key));
	free(s);
}

static struct hp_session *hp_find(const char *id, size_t len)
{
	if (len != HP_ID_LEN)
		return NULL;
	for (struct hp_session *s = sessions; s != NULL; s = s->next)
		if (secure_memeq(s->id, id, HP_ID_LEN))
			return s;
	return NULL;
}

/* ---- the transport ---------------------------------------------------------------- */

static void hp_output(struct stream *st, const char *data, size_t len)
{
	struct hp_session *s = st->transport_ctx;
	if (s->out.len + len > stream_output_ceiling(st)) {
		log_warning("httppoll %llu from %s: output queue over %zu bytes (client not polling): ending",
		            (unsigned long long)st->id, st->ip, stream_output_ceiling(st));
		stream_abort(st);
		return;
	}
	buf_append(&s->out, data, len);
}

static void hp_feed(struct hp_session *s, const char *xml, size_t len)
{
	struct stream *st = s->st;
	if (st == NULL || st->dead || st->closing || len == 0)
		return;
	held_input_feed(&s->input, st, xml, len);
}

/* Feed what was held back, in order, until the stream pauses or the rate
 * limit holds it again (s->st is NULL once the stream ended). */
static void hp_drain(struct hp_session *s)
{
	held_input_drain(&s->input, &s->st, ev_now(s->loop));
}

static bool hp_resume(struct stream *st)
{
	hp_drain(st->transport_ctx);
	return false;
}

static void hp_slow_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct hp_session *s = w->data;
	(void)loop;
	(void)revents;
	hp_drain(s);
	if (s->st != NULL && held_input_waiting(&s->input) && !ev_is_active(&s->slow) &&
	    s->input.until > ev_now(s->loop)) {
		ev_timer_set(&s->slow, s->input.until - ev_now(s->loop), 0);
		ev_timer_start(s->loop, &s->slow);
	}
}

/* Per-account rate limits: input waits (the polls are still answered);
 * what is already fed goes on. */
static void hp_delay(struct stream *st, double seconds)
{
	struct hp_session *s = st->transport_ctx;
	double until = ev_now(s->loop) + seconds;
	if (until <= s->input.until)
		return;
	s->input.until = until;
	ev_timer_stop(s->loop, &s->slow);
	ev_timer_set(&s->slow, seconds, 0);
	ev_timer_start(s->loop, &s->slow);
}

static void hp_free(struct stream *st)
{
	struct hp_session *s = st->transport_ctx;
	if (s == NULL)
		return;
	st->transport_ctx = NULL;
	s->st = NULL;
	if (s->expired)
		hp_session_free(s);
}

static const struct stream_transport hp_transport = {
	.output = hp_output,
	.resume = hp_resume,
	.free = hp_free,
	.delay = hp_delay,
};

static void hp_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct hp_session *s = w->data;
	(void)revents;
	double idle = ev_now(loop) - s->last_seen;
	if (idle < s->inactivity) {
		ev_timer_set(w, s->inactivity - idle + 0.01, 0);
		ev_timer_start(loop, w);
		return;
	}
	s->expired = true;
	if (s->st == NULL) {
		hp_session_free(s);
		return;
	}
	log_info("httppoll %llu from %s: no request for %g s: session ended", (unsigned long long)s->st->id,
	         s->st->ip, s->inactivity);
	stream_abort(s->st); /* hp_free frees the session */
}

/* ---- the handler ------------------------------------------------------------------ */

static void hp_reply(struct http_reply *r, const char *cookie, const char *body, size_t len)
{
	char *c = xasprintf("ID=%s", cookie);
	http_reply_header(r, "Set-Cookie", c);
	http_reply_header(r, "Cache-Control", "no-store");
	free(c);
	http_reply_send(r, 200, "text/xml; charset=utf-8", body, len);
}

/* base64(SHA-1(key)) equals expected, in constant time. */
static bool hp_key_ok(const char *key, size_t len, const char *expected)
{
	unsigned char md[SHA_DIGEST_LENGTH];
	SHA1((const unsigned char *)key, len, md);
	char *b = base64_encode(md, sizeof(md));
	size_t blen = strlen(b);
	bool ok = blen == strlen(expected) && secure_memeq(b, expected, blen);
	free(b);
	return ok;
}

static struct hp_session *hp_create(const struct http_request *rq)
{
	const struct limits_config *limits = &server.cfg->limits;
	if (!c2s_ip_admits(rq->remote_ip, limits))
		return NULL;
	struct hp_session *s = xcalloc(1, sizeof(*s));
	random_id(s->id, HP_ID_LEN);
	s->loop = server.loop;
	s->inactivity = server_config()->http.bosh_inactivity;
	s->last_seen = ev_now(s->loop);
	ev_timer_init(&s->timer, hp_timer_cb, s->inactivity, 0);
	s->timer.data = s;
	ev_timer_start(s->loop, &s->timer);
	ev_timer_init(&s->slow, hp_slow_cb, 0, 0);
	s->slow.data = s;
	struct xml_parser_limits pl = {
		.max_stanza = limits->max_stanza_size,
		.max_depth = limits->max_depth,
		.max_attrs = limits->max_attrs,
	};
	s->st = stream_new_virtual(s->loop, rq->remote_ip, 0, &pl, limits->max_output, NULL, NULL);
	s->st->tls_done = rq->tls;
	stream_set_transport(s->st, &hp_transport, s);
	s->next = sessions;
	sessions = s;
	nsessions++;
	c2s_attach(s->st, &hp_lc, limits);
	log_info("httppoll %llu from %s: session%s", (unsigned long long)s->st->id, rq->remote_ip,
	         rq->tls ? " over TLS" : "");
	return s;
}

static void hp_handler(void *ctx, const struct http_request *rq, struct http_reply *r)
{
	(void)ctx;
	if (strcmp(rq->method, "POST") != 0) {
		http_reply_header(r, "Allow", "POST");
		http_reply_error(r, 405, "HTTP polling requests are POSTs");
		return;
	}
	/* id;key[;newkey],xml */
	const char *p = rq->body, *end = rq->body + rq->body_len;
	const char *comma = memchr(p, ',', rq->body_len);
	const char *f[3];
	size_t flen[3], n = 0;
	if (comma != NULL) {
		const char *q = p;
		for (;;) {
			const char *semi = memchr(q, ';', (size_t)(comma - q));
			if (n == 3) { /* more than three fields */
				n = 0;
				break;
			}
			f[n] = q;
			flen[n++] = (size_t)((semi != NULL ? semi : comma) - q);
			if (semi == NULL)
				break;
			q = semi + 1;
		}
	}
	if (comma == NULL || n < 2 || flen[1] == 0 || flen[1] > HP_MAX_KEY ||
	    (n == 3 && (flen[2] == 0 || flen[2] > HP_MAX_KEY))) {
		log_info("httppoll from %s: a request not of the form id;key[;newkey],xml", rq->remote_ip);
		hp_reply(r, "-2:0", "", 0);
		return;
	}
	const char *xml = comma + 1;
	size_t xml_len = (size_t)(end - xml);
	struct hp_session *s;
	if (flen[0] == 1 && f[0][0] == '0') {
		s = hp_create(rq);
		if (s == NULL) {
			hp_reply(r, "-1:0", "", 0);
			return;
		}
		memcpy(s->key, f[1], flen[1]);
		s->key[flen[1]] = '\0';
	} else {
		s = hp_find(f[0], flen[0]);
		if (s == NULL || s->expired) {
			hp_reply(r, "-2:0", "", 0);
			return;
		}
		if (!hp_key_ok(f[1], flen[1], s->key)) {
			log_info("httppoll %s from %s: key sequence error: request refused",
			         s->st != NULL ? "session" : "ended session", rq->remote_ip);
			hp_reply(r, "-3:0", "", 0);
			return;
		}
		size_t k = n == 3 ? 2 : 1;
		memcpy(s->key, f[k], flen[k]);
		s->key[flen[k]] = '\0';
	}
	s->last_seen = ev_now(s->loop);
	if (s->st != NULL)
		s->st->last_in = s->last_seen;
	hp_feed(s, xml, xml_len);
	char id[HP_ID_LEN + 1];
	memcpy(id, s->id, sizeof(id));
	hp_reply(r, id, s->out.data != NULL ? s->out.data : "", s->out.len);
	buf_free(&s->out);
	if (s->st == NULL) { /* ended, and its last output fetched */
		s->expired = true;
		hp_session_free(s);
	}
}

void http_poll_start(void)
{
	const struct http_config *hc = &server_config()->http;
	char *err = NULL;
	if (!hc->http_poll)
		return;
	if (http_mount(hc->http_poll_path, hp_handler, NULL, &err) < 0) {
		log_warning("%s", err);
		free(err);
	}
}

unsigned http_poll_count(void)
{
	return nsessions;
}
