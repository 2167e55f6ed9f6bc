/*
 * BOSH (XEP-0124, XMPP over it: XEP-0206) at http.bosh_path.  Loop thread.
 *
 * A session is a stream without a socket (stream_new_virtual) run by the
 * client state machine (c2s_attach), as for TCP and WebSocket: the same
 * SASL, binding, stream management and limits.  Each POSTed <body/> is
 * checked (rid, sid) and its payload fed to the stream's parser in rid
 * order (the bytes between the tags, once: see "the direct path");
 * xmpp:restart='true' feeds a new stream header (to the domain of the
 * creation request when it names none), type='terminate' the stream's
 * end.  What c2s writes is split into elements (the stream header
 * dropped) and queued; a stream error ends the session with
 * 'remote-stream-error' (XEP-0206).  A request is answered as soon as
 * something is queued, or empty after 'wait' seconds; at most 'hold'
 * requests are kept (an older one is answered empty when one more comes).
 *
 * Invariants:
 * - Requests are handled in rid order: one that arrives early (within the
 *   window of 'hold' + 1) waits for the missing ones; a rid already
 *   answered whose answer is still kept (the last BOSH_KEEP ones, fewer
 *   once the client acknowledges them) gets the same answer again; the
 *   last rid, sent again after its connection broke before an answer,
 *   waits again (its input is not taken twice); a rid sent again while
 *   its first copy still waits (held, or early) takes that copy's place,
 *   and the copy is answered empty (it counts once against 'requests');
 *   any other rid ends the session (item-not-found).
 * - More unanswered requests than 'requests' (hold + 1) end the session
 *   (policy-violation), and so does polling too often (XEP-0124 sections
 *   11 and 12; see bosh_too_frequent): an empty request that arrived
 *   sooner than 'polling' seconds after the one before it in rid order,
 *   when it is the last of 'requests' unanswered ones, or, for hold='0',
 *   when that one was an empty request answered empty too.  Times are
 *   arrival times, not when a request's turn came.
 * - A session with no request held is ended after 'inactivity' seconds,
 *   or after the 'pause' the client asked for (up to maxpause), which
 *   lasts until its next request.
 * - A client that asked for acks (ack='1' at creation) gets 'ack' on
 *   answers to all but its latest rid, and 'report'/'time' when its own
 *   'ack' shows that an answer sent over BOSH_REPORT_AFTER seconds ago
 *   never arrived.
 * - Per-account rate limits (the stream's delay hook) hold the session's
 *   input back until the debt is paid, stanza by stanza; the requests
 *   are answered as usual meanwhile.
 * - Session ids are compared in constant time.
 * - Input that arrives while the stream is paused (c2s waits on a
 *   backend) is kept, in order, until it resumes.
 * - The session is freed with its stream (the transport's free hook);
 *   the requests still held are answered then (terminate).
 * - Output waits in the session's queue until a request takes all of it,
 *   so a client that polls reads everything, however big a burst: the
 *   queue is bounded by the stream's ceiling (stream_output_ceiling; past
 *   it the session ends at once), and a client that stops polling by the
 *   inactivity limit.
 */
#include "bosh.h"
#include "c2s.h"
#include "http.h"
#include "server.h"
#include "stream.h"
#include "websocket.h"
#include "lib/latency.h"
#include "lib/log.h"
#include "lib/xml.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NS_HTTPBIND "http://jabber.org/protocol/httpbind"
#define NS_XBOSH "urn:xmpp:xbosh"
#define BOSH_MAX_HOLD 2
#define BOSH_WINDOW (BOSH_MAX_HOLD + 1)
#define BOSH_KEEP (BOSH_WINDOW + 1) /* answers kept for a resend */
#define BOSH_REPORT_AFTER 1.0       /* an unacknowledged answer older than this is reported */
#define BOSH_SID_LEN 32

/* An answer sent, kept until the client acknowledges it (or BOSH_KEEP
 * newer ones were sent). */
struct bosh_sent {
	uint64_t rid;
	double at;
	char *text;
};

/* A request held for output, or one that came before its turn (early,
 * with its body).  malloc'd: the cancel callback points at it. */
struct bosh_req {
	struct http_reply *r;
	uint64_t rid;
	double deadline;
	struct xml_node *body; /* early ones */
	char *inner;           /* early ones on the direct path: the payload */
	size_t inner_len;
	struct bosh_session *s;
	uint64_t report; /* 0, or the rid of an answer the client missed */
	double report_ms;
	double arrived; /* early ones: when the request arrived */
};

struct bosh_session {
	char sid[33];
	char *domain; /* 'to' at creation: a restart without one is for it */
	struct stream *st;
	struct ev_loop *loop;
	uint64_t rid; /* the last rid handled */
	double wait;
	unsigned hold;
	struct bosh_req *held[BOSH_MAX_HOLD + 1];
	size_t nheld;
	struct bosh_req *early[BOSH_WINDOW];
	size_t nearly;
	struct buf out;                   /* elements queued for the client */
	struct held_input input;          /* held back while paused or slowed */
	bool ended;                       /* the stream ended: answer with terminate */
	const char *condition;            /* with terminate: why (NULL: a normal end) */
	struct bosh_sent sent[BOSH_KEEP]; /* answers for a resend, oldest first */
	size_t nsent;
	bool acks;           /* the client acknowledges answers */
	ev_timer timer;      /* wait deadlines, inactivity, rate limits */
	double inactivity;   /* http.bosh_inactivity when the session began */
	double pause;        /* the inactivity limit until the next request */
	double maxpause;     /* 0: no pauses */
	double polling;      /* the shortest interval between empty polls */
	double last_arrived; /* when the request with rid 'rid' arrived */
	bool last_empty;     /* it was an empty request (no pause, no terminate) */
	uint64_t answered;   /* the rid answered last */
	bool answered_empty; /* and its answer carried no payload */
	double idle_since;   /* no request held since; 0: one is held */
	struct bosh_session *next;
};

static struct bosh_session *sessions;
static unsigned nsessions;
/* The client listener settings of BOSH sessions: TLS is the HTTP
 * connection's, so no STARTTLS. */
static const struct listen_config bosh_lc = { .module = LISTEN_C2S, .starttls = STARTTLS_OFF };

static void bosh_answer(struct bosh_session *s, struct bosh_req *q);
static void bosh_req_cancel(void *ctx);
static const char *bosh_element_end(const char *p, const char *end);
static void bosh_schedule(struct bosh_session *s);

static struct bosh_session *bosh_find(const char *sid)
{
	if (strlen(sid) != BOSH_SID_LEN)
		return NULL;
	for (struct bosh_session *s = sessions; s != NULL; s = s->next)
		if (secure_memeq(s->sid, sid, BOSH_SID_LEN))
			return s;
	return NULL;
}

/* Keep an answer for a resend (the oldest goes when all are taken). */
static void bosh_keep(struct bosh_session *s, uint64_t rid, const char *text, size_t len)
{
	if (s->nsent == BOSH_KEEP) {
		free(s->sent[0].text);
		memmove(&s->sent[0], &s->sent[1], (BOSH_KEEP - 1) * sizeof(s->sent[0]));
		s->nsent--;
	}
	size_t i = s->nsent;
	while (i > 0 && s->sent[i - 1].rid > rid) /* answers may go out of rid order */
		i--;
	memmove(&s->sent[i + 1], &s->sent[i], (s->nsent - i) * sizeof(s->sent[0]));
	s->sent[i] = (struct bosh_sent){ .rid = rid, .at = ev_now(s->loop), .text = xstrndup(text, len) };
	s->nsent++;
}

static const struct bosh_sent *bosh_kept(const struct bosh_session *s, uint64_t rid)
{
	for (size_t i = 0; i < s->nsent; i++)
		if (s->sent[i].rid == rid)
			return &s->sent[i];
	return NULL;
}

/* The client has every answer up to rid: forget them. */
static void bosh_acked(struct bosh_session *s, uint64_t rid)
{
	size_t n = 0;
	while (n < s->nsent && s->sent[n].rid <= rid)
		free(s->sent[n++].text);
	memmove(&s->sent[0], &s->sent[n], (s->nsent - n) * sizeof(s->sent[0]));
	s->nsent -= n;
}

static const char *attr_ns(const struct xml_node *el, const char *name, const char *ns)
{
	for (const struct xml_attr *a = el->attrs; a != NULL; a = a->next)
		if (strcmp(a->name, name) == 0 && str_eq(a->ns, ns))
			return a->value;
	return NULL;
}

static bool parse_u64(const char *v, uint64_t *out)
{
	if (v == NULL || *v < '0' || *v > '9')
		return false;
	char *end;
	errno = 0;
	unsigned long long x = strtoull(v, &end, 10);
	if (*end != '\0' || errno != 0 || x > (1ULL << 53))
		return false;
	*out = x;
	return true;
}

/* An answer that is only a <body/> (errors, terminate). */
static void bosh_reply_body(const struct http_request *rq, struct http_reply *r, const char *attrs)
{
	char *b = xasprintf("<body xmlns='" NS_HTTPBIND "'%s/>", attrs);
	http_reply_send(r, 200, "text/xml; charset=utf-8", b, strlen(b));
	free(b);
}

/* ---- output ------------------------------------------------------------------ */

static void bosh_out_part(void *ctx, enum websocket_out_kind kind, const char *p, size_t len)
{
	struct bosh_session *s = ctx;
	if (kind == WS_OUT_ELEMENT) {
		buf_append(&s->out, p, len);
		/* XEP-0206 section 2: a <body/> with a stream error terminates
		 * the session with 'remote-stream-error' (the stream ends) */
		if (len > 14 && memcmp(p, "<stream:error", 13) == 0 &&
		    (p[13] == '>' || p[13] == ' ' || p[13] == '/')) {
			s->ended = true;
			s->condition = "remote-stream-error";
		}
	} else if (kind == WS_OUT_END) {
		s->ended = true;
	}
}

static void bosh_output(struct stream *st, const char *data, size_t len)
{
	struct bosh_session *s = st->transport_ctx;
	size_t before = s->out.len;
	websocket_split_output(data, len, bosh_out_part, s);
	if (s->out.len > stream_output_ceiling(st)) {
		log_warning("bosh %llu from %s: output queue over %zu bytes (client not polling): ending",
		            (unsigned long long)st->id, st->ip, stream_output_ceiling(st));
		s->out.len = before;
		s->ended = true;
		stream_abort(st);
	}
	bosh_schedule(s);
}

/* Answer the oldest held request with what is queued. */
static void bosh_answer(struct bosh_session *s, struct bosh_req *q)
{
	struct buf b = { 0 };
	buf_append_str(&b, "<body xmlns='" NS_HTTPBIND "' xmlns:stream='" NS_STREAM "'");
	if (s->ended)
		buf_printf(&b, " type='terminate'%s%s%s", s->condition != NULL ? " condition='" : "",
		           s->condition != NULL ? s->condition : "", s->condition != NULL ? "'" : "");
	if (s->acks && q->rid < s->rid)
		buf_printf(&b, " ack='%llu'", (unsigned long long)s->rid);
	if (q->report != 0)
		buf_printf(&b, " report='%llu' time='%.0f'", (unsigned long long)q->report, q->report_ms);
	buf_append_str(&b, ">");
	buf_append(&b, s->out.data, s->out.len);
	buf_append_str(&b, "</body>");
	s->answered = q->rid;
	s->answered_empty = s->out.len == 0;
	buf_free(&s->out);
	bosh_keep(s, q->rid, b.data, b.len);
	http_reply_send(q->r, 200, "text/xml; charset=utf-8", b.data, b.len);
	buf_free(&b);
	free(q);
}

/* Take held[i] off the list (the caller answers or drops it). */
static void bosh_pop(struct bosh_session *s, size_t i)
{
	memmove(&s->held[i], &s->held[i + 1], (s->nheld - i - 1) * sizeof(s->held[0]));
	s->nheld--;
	if (s->nheld == 0)
		s->idle_since = ev_now(s->loop);
}

/* Answer what can be answered now: queued output (or the end) to the
 * oldest request, requests over 'hold' or past 'wait' empty. */
static void bosh_flush(struct bosh_session *s)
{
	double now = ev_now(s->loop);
	while (s->nheld > 0) {
		bool due = s->out.len > 0 || s->ended || s->nheld > s->hold || now >= s->held[0]->deadline;
		if (!due)
			break;
		struct bosh_req *q = s->held[0];
		bosh_pop(s, 0);
		bosh_answer(s, q);
	}
}

static void bosh_drain(struct bosh_session *s);

/* The inactivity limit now: a pause the client asked for, else the usual. */
static double bosh_idle_limit(const struct bosh_session *s)
{
	return s->pause > 0 ? s->pause : s->inactivity;
}

static void bosh_timer_event(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct bosh_session *s = w->data;
	(void)revents;
	if (held_input_waiting(&s->input) && ev_now(loop) >= s->input.until)
		bosh_drain(s);
	if (s->st == NULL || s->st->dead)
		return;
	bosh_flush(s);
	if (s->nheld == 0 && !s->st->dead && ev_now(loop) - s->idle_since > bosh_idle_limit(s)) {
		log_info("bosh %llu from %s: no request for %g s: session ended",
		         (unsigned long long)s->st->id, s->st->ip, bosh_idle_limit(s));
		s->ended = true;
		stream_abort(s->st);
		return;
	}
	bosh_schedule(s);
}

static void bosh_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	latency_begin(LATENCY_TIMER, "bosh");
	bosh_timer_event(loop, w, revents);
	latency_end();
}

/* Run the timer for the next thing due (at once when output is queued). */
static void bosh_schedule(struct bosh_session *s)
{
	if (s->st == NULL)
		return;
	double now = ev_now(s->loop), at;
	if (s->nheld > 0 && (s->out.len > 0 || s->ended))
		at = now;
	else if (s->nheld > 0)
		at = s->held[0]->deadline;
	else
		at = s->idle_since + bosh_idle_limit(s) + 0.01;
	if (held_input_waiting(&s->input) && s->input.until > now && s->input.until < at)
		at = s->input.until;
	ev_timer_stop(s->loop, &s->timer);
	ev_timer_set(&s->timer, at > now ? at - now : 0, 0);
	ev_timer_start(s->loop, &s->timer);
}

/* ---- input --------------------------------------------------------------------- */

static void bosh_feed(struct bosh_session *s, const char *xml, size_t len)
{
	struct stream *st = s->st;
	if (st->dead || st->closing)
		return;
	held_input_feed(&s->input, st, xml, len);
}

/* Feed what was held back, in order, until the stream pauses or the rate
 * limit holds it again. */
static void bosh_drain(struct bosh_session *s)
{
	struct stream *st = s->st;
	held_input_drain(&s->input, &s->st, ev_now(s->loop));
	if (!st->dead)
		bosh_schedule(s);
}

static bool bosh_resume(struct stream *st)
{
	bosh_drain(st->transport_ctx);
	return false; /* no socket to read */
}

/* Per-account rate limits: input waits (the HTTP requests are still
 * answered); what is already fed goes on. */
static void bosh_delay(struct stream *st, double seconds)
{
	struct bosh_session *s = st->transport_ctx;
	double until = ev_now(s->loop) + seconds;
	if (until > s->input.until)
		s->input.until = until;
	bosh_schedule(s);
}

static void bosh_stream_header(struct bosh_session *s, const char *to)
{
	struct buf h = { 0 };
	buf_append_str(&h, "<stream:stream xmlns='" NS_CLIENT "' xmlns:stream='" NS_STREAM
	                   "' version='1.0' to='");
	xml_escape(&h, to, strlen(to), true);
	buf_append_str(&h, "'>");
	bosh_feed(s, h.data, h.len);
	buf_free(&h);
}

static void bosh_req_cancel(void *ctx)
{
	struct bosh_req *q = ctx;
	struct bosh_session *s = q->s;
	for (size_t i = 0; i < s->nheld; i++) {
		if (s->held[i] == q) {
			bosh_pop(s, i);
			break;
		}
	}
	for (size_t i = 0; i < s->nearly; i++) {
		if (s->early[i] == q) {
			s->early[i] = s->early[--s->nearly];
			break;
		}
	}
	xml_unref(&q->body);
	free(q->inner);
	free(q);
	bosh_schedule(s);
}

/* Keep r until there is output for it, its wait ends, or a newer request
 * takes its place (hold exceeded). */
static void bosh_hold(struct bosh_session *s, uint64_t rid, struct http_reply *r, uint64_t report,
                      double report_ms)
{
	struct bosh_req *q = xcalloc(1, sizeof(*q));
	q->r = r;
	q->rid = rid;
	q->report = report;
	q->report_ms = report_ms;
	q->deadline = ev_now(s->loop) + s->wait;
	q->s = s;
	http_reply_on_cancel(r, bosh_req_cancel, q);
	s->held[s->nheld++] = q;
	s->idle_since = 0;
	bosh_flush(s);
	bosh_schedule(s);
}

/* The request with rid still waiting (held, or early), or NULL. */
static struct bosh_req *bosh_waiting(const struct bosh_session *s, uint64_t rid)
{
	for (size_t i = 0; i < s->nheld; i++)
		if (s->held[i]->rid == rid)
			return s->held[i];
	for (size_t i = 0; i < s->nearly; i++)
		if (s->early[i]->rid == rid)
			return s->early[i];
	return NULL;
}

/* End the session for a terminal binding condition: r (if any) and the
 * requests held get it. */
static void bosh_end(struct bosh_session *s, struct http_reply *r, const char *condition)
{
	log_info("bosh %llu from %s: %s: session ended", (unsigned long long)s->st->id, s->st->ip, condition);
	if (r != NULL) {
		char attrs[96];
		snprintf(attrs, sizeof(attrs), " type='terminate' condition='%s'", condition);
		bosh_reply_body(NULL, r, attrs);
	}
	s->ended = true;
	s->condition = condition;
	stream_abort(s->st);
}

static bool bosh_has_payload(const struct xml_node *body)
{
	for (const struct xml_node *ch = body->children; ch != NULL; ch = ch->next)
		if (ch->type == XML_ELEMENT)
			return true;
	return false;
}

/* XEP-0124: is the empty request rid (no pause, no terminate), which
 * arrived at 'arrived' and whose turn has come (it follows s->rid),
 * polling too often?  Only when it arrived less than 'polling' seconds
 * before or after the request before it in rid order, and
 * - in a session that holds requests (section 11): it is the last of
 *   'requests' (hold + 1) requests none of which is answered.  With a
 *   later rid already waiting, that one is the last, and it is judged
 *   when its own turn comes;
 * - in a polling session, hold='0' (section 12): the request before it
 *   was empty as well and was answered without a payload. */
static bool bosh_too_frequent(const struct bosh_session *s, uint64_t rid, double arrived)
{
	double since = arrived - s->last_arrived;
	if (rid != s->rid + 1 || since >= s->polling || -since >= s->polling)
		return false;
	if (s->hold == 0)
		return s->last_empty && s->answered == s->rid && s->answered_empty;
	return s->nearly == 0 && s->nheld + 1 >= s->hold + 1;
}

/* One request in rid order: its input, then it waits for output.  The
 * input is inner (inner_len bytes, checked by bosh_split) when it is not
 * NULL, else the element children of body.  arrived: when the request
 * came (earlier than now for one that waited for its turn). */
static void bosh_handle(struct bosh_session *s, uint64_t rid, struct xml_node *body, const char *inner,
                        size_t inner_len, struct http_reply *r, double arrived)
{
	double now = ev_now(s->loop);
	const char *type = xml_attr(body, "type");
	bool terminate = type != NULL && strcmp(type, "terminate") == 0;
	const char *restart = attr_ns(body, "restart", NS_XBOSH);
	bool restarting = restart != NULL && strcmp(restart, "true") == 0;
	const char *pause_v = xml_attr(body, "pause");
	uint64_t pause = 0;
	if (pause_v != NULL &&
	    (s->maxpause <= 0 || !parse_u64(pause_v, &pause) || (double)pause > s->maxpause)) {
		bosh_end(s, r, "policy-violation");
		return;
	}
	bool payload = inner != NULL ? inner_len > 0 : bosh_has_payload(body);
	bool empty = !payload && !terminate && !restarting && pause_v == NULL;
	if (empty && bosh_too_frequent(s, rid, arrived)) {
		bosh_end(s, r, "policy-violation");
		return;
	}
	s->last_arrived = arrived;
	s->last_empty = empty;
	s->pause = 0;
	uint64_t report = 0, ack;
	double report_ms = 0;
	if (s->acks && parse_u64(xml_attr(body, "ack"), &ack)) {
		for (size_t i = 0; i < s->nsent; i++) {
			if (s->sent[i].rid > ack && s->sent[i].rid < rid &&
			    now - s->sent[i].at >= BOSH_REPORT_AFTER) {
				report = s->sent[i].rid;
				report_ms = (now - s->sent[i].at) * 1000.0;
				break;
			}
		}
		bosh_acked(s, ack);
	}
	s->rid = rid;
	s->st->last_in = now;
	if (restarting) { /* 'to' may be left out: the session's domain */
		const char *to = xml_attr(body, "to");
		bosh_stream_header(s, to != NULL ? to : s->domain);
	}
	/* element by element, so that a rate limit holds the rest back */
	for (const char *p = inner, *end = inner + inner_len, *e; inner != NULL && p < end; p = e) {
		e = bosh_element_end(p, end);
		if (e == NULL || e == p)
			break; /* not after bosh_split */
		bosh_feed(s, p, (size_t)(e - p));
	}
	for (struct xml_node *ch = inner != NULL ? NULL : body->children; ch != NULL; ch = ch->next) {
		if (ch->type != XML_ELEMENT)
			continue;
		/* Unqualified children of <body/> (in its namespace) are the
		 * stream's jabber:client content (XEP-0206 §2): serialised
		 * without that namespace, the stream's parser gives them its
		 * own default. */
		struct buf b = { 0 };
		xml_serialize(&b, ch, NS_HTTPBIND);
		bosh_feed(s, b.data, b.len);
		buf_free(&b);
	}
	if (terminate)
		bosh_feed(s, "</stream:stream>", 16);
	bosh_hold(s, rid, r, report, report_ms);
	if (pause > 0 && !s->st->dead) { /* every request is answered now */
		while (s->nheld > 0) {
			struct bosh_req *q = s->held[0];
			bosh_pop(s, 0);
			bosh_answer(s, q);
		}
		s->pause = (double)pause;
		log_info("bosh %llu from %s: paused for %llu s", (unsigned long long)s->st->id, s->st->ip,
		         (unsigned long long)pause);
		bosh_schedule(s);
	}
}

static void bosh_free(struct stream *st)
{
	struct bosh_session *s = st->transport_ctx;
	if (s == NULL)
		return;
	s->ended = true;
	while (s->nheld > 0) {
		struct bosh_req *q = s->held[0];
		bosh_pop(s, 0);
		bosh_answer(s, q);
	}
	for (size_t i = 0; i < s->nearly; i++) {
		struct bosh_req *q = s->early[i];
		xml_unref(&q->body);
		free(q->inner);
		bosh_reply_body(NULL, q->r, " type='terminate' condition='item-not-found'");
		free(q);
	}
	s->nearly = 0;
	ev_timer_stop(s->loop, &s->timer);
	for (struct bosh_session **pp = &sessions; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	}
	nsessions--;
	buf_free(&s->out);
	held_input_free(&s->input);
	bosh_acked(s, UINT64_MAX);
	free(s->domain);
	free(s);
	st->transport_ctx = NULL;
}

static const struct stream_transport bosh_transport = {
	.input = NULL,
	.output = bosh_output,
	.resume = bosh_resume,
	.free = bosh_free,
	.delay = bosh_delay,
};

/* ---- the direct path ------------------------------------------------------------- */

/*
 * Most requests are fed without building a tree of their payload: the
 * <body> start tag is parsed alone (its namespace, attributes and the
 * attribute limit checked as on the tree path) and the bytes between the
 * tags go once to the stream's parser, which checks stanza size, depth and
 * the XML wall as it does for TCP.  A request takes this path only when its
 * payload means the same there as inside <body>: a sequence of balanced
 * elements, each declaring its default namespace, with only whitespace
 * between them, no comment, processing instruction or declaration, no use
 * of a prefix that <body> declares, and the whole request within the
 * stanza size limit (the tree path's limit on the <body> element).  Any
 * other request takes the tree path and is answered as before.
 */

static bool bosh_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* The start tag [p, e) (name first) declares a default namespace: an
 * attribute named xmlns, outside quoted values. */
static bool bosh_declares_default(const char *p, const char *e)
{
	char quote = 0;
	for (const char *x = p; x < e; x++) {
		if (quote != 0) {
			if (*x == quote)
				quote = 0;
		} else if (*x == '\'' || *x == '"') {
			quote = *x;
		} else if (bosh_space(*x) && e - x > 6 && memcmp(x + 1, "xmlns", 5) == 0) {
			const char *y = x + 6;
			while (y < e && bosh_space(*y))
				y++;
			if (y < e && *y == '=')
				return true;
		}
	}
	return false;
}

/* The end of the element that starts at p (after whitespace): balanced,
 * declaring its default namespace, not prefixed; NULL if it is not one,
 * or p when only whitespace is left. */
static const char *bosh_element_end(const char *p, const char *end)
{
	while (p < end && bosh_space(*p))
		p++;
	if (p == end)
		return p;
	if (*p != '<')
		return NULL;
	unsigned depth = 0;
	do {
		if (*p != '<') {
			const char *lt = memchr(p, '<', (size_t)(end - p));
			if (lt == NULL)
				return NULL;
			p = lt;
		}
		const char *t = p + 1;
		if (t >= end || *t == '?')
			return NULL;
		if (*t == '!') {
			if (depth == 0 || (size_t)(end - t) < 8 || memcmp(t, "![CDATA[", 8) != 0)
				return NULL;
			const char *c = memmem(t + 8, (size_t)(end - t - 8), "]]>", 3);
			if (c == NULL)
				return NULL;
			p = c + 3;
			continue;
		}
		const char *e = xml_tag_end(t, end);
		if (e == NULL)
			return NULL;
		if (*t == '/') {
			if (depth == 0)
				return NULL;
			depth--;
		} else {
			if (depth == 0) {
				for (const char *n = t; n < e && !bosh_space(*n) && *n != '/'; n++)
					if (*n == ':')
						return NULL;
				if (!bosh_declares_default(t, e))
					return NULL;
			}
			if (e[-1] != '/')
				depth++;
		}
		p = e + 1;
	} while (depth > 0 && p < end);
	return depth == 0 ? p : NULL;
}

/* [p, end) is such elements with whitespace between them. */
static bool bosh_payload_plain(const char *p, const char *end)
{
	while (p < end) {
		const char *e = bosh_element_end(p, end);
		if (e == NULL)
			return false;
		p = e;
	}
	return true;
}

/* A prefix declared on <body/> ("P:" at [x, x + n]) is used in [p, end) as
 * a name (after '<', '/' or whitespace).  Text that only looks so sends the
 * request down the tree path, which is right as well. */
static bool bosh_prefix_used(const char *p, const char *end, const char *prefix, size_t n)
{
	for (const char *x = p; (x = memmem(x, (size_t)(end - x), prefix, n)) != NULL; x += n)
		if (x == p || x[-1] == '<' || x[-1] == '/' || bosh_space(x[-1]))
			return true;
	return false;
}

/* The <body/> of a request that can take the direct path (its start tag
 * alone, as an element without children) and its payload in *inner; NULL
 * for a request that takes the tree path. */
static struct xml_node *bosh_split(const char *data, size_t len, const struct xml_parser_limits *pl,
                                   const char **inner, size_t *inner_len)
{
	if (data == NULL || len > pl->max_stanza)
		return NULL;
	const char *p = data, *end = data + len;
	while (p < end && bosh_space(*p))
		p++;
	while (end > p && bosh_space(end[-1]))
		end--;
	if (end - p < 7 || memcmp(p, "<body", 5) != 0 || !(bosh_space(p[5]) || p[5] == '>' || p[5] == '/'))
		return NULL;
	const char *e = xml_tag_end(p + 1, end);
	if (e == NULL)
		return NULL;
	const char *in = end, *in_end = end;
	if (e[-1] != '/') {
		if (end - (e + 1) < 7 || memcmp(end - 7, "</body>", 7) != 0)
			return NULL;
		in = e + 1;
		in_end = end - 7;
	} else if (e + 1 != end) {
		return NULL;
	}
	while (in < in_end && bosh_space(*in))
		in++;
	while (in_end > in && bosh_space(in_end[-1]))
		in_end--;
	/* a prefix declared on <body> is unknown to the stream's parser */
	for (const char *x = p; (x = memmem(x, (size_t)(e - x), "xmlns:", 6)) != NULL;) {
		x += 6;
		const char *y = x;
		while (y < e && *y != '=' && !bosh_space(*y))
			y++;
		char prefix[64];
		size_t n = (size_t)(y - x);
		if (n == 0 || n + 1 > sizeof(prefix))
			return NULL;
		memcpy(prefix, x, n);
		prefix[n] = ':';
		if (bosh_prefix_used(in, in_end, prefix, n + 1))
			return NULL;
	}
	if (!bosh_payload_plain(in, in_end))
		return NULL;
	struct buf head = { 0 };
	buf_append(&head, p, (size_t)(e - p));
	buf_append_str(&head, e[-1] == '/' ? ">" : "/>");
	struct xml_node *body = xml_parse_string(head.data, head.len, NULL, pl, NULL);
	buf_free(&head);
	if (body != NULL) {
		*inner = in;
		*inner_len = (size_t)(in_end - in);
	}
	return body;
}

/* ---- the handler ------------------------------------------------------------------ */

/* XEP-0124 section 7.2: the version the creation answer says is the
 * client's 'ver' or ours (1.11), whichever is lower, as major and minor
 * numbers; ours when the client's is not a version. */
static void bosh_version(const char *ver, unsigned long *major, unsigned long *minor)
{
	*major = 1;
	*minor = 11;
	if (ver == NULL || *ver < '0' || *ver > '9')
		return;
	char *end;
	unsigned long ma = strtoul(ver, &end, 10);
	if (*end != '.' || end[1] < '0' || end[1] > '9')
		return;
	unsigned long mi = strtoul(end + 1, &end, 10);
	if (*end != '\0' || ma > *major || (ma == *major && mi >= *minor))
		return;
	*major = ma;
	*minor = mi;
}

static void bosh_create(const struct http_request *rq, struct http_reply *r, struct xml_node *body,
                        uint64_t rid)
{
	const char *to = xml_attr(body, "to");
	uint64_t wait = 30, hold = 1;
	if (to == NULL || to[0] == '\0') {
		bosh_reply_body(rq, r, " type='terminate' condition='improper-addressing'");
		return;
	}
	parse_u64(xml_attr(body, "wait"), &wait);
	parse_u64(xml_attr(body, "hold"), &hold);
	const struct http_config *hc = &server_config()->http;
	if (wait > (uint64_t)hc->bosh_max_wait)
		wait = (uint64_t)hc->bosh_max_wait;
	if (hold > BOSH_MAX_HOLD)
		hold = BOSH_MAX_HOLD;
	const struct limits_config *limits = &server.cfg->limits;
	if (!c2s_ip_admits(rq->remote_ip, limits)) {
		bosh_reply_body(rq, r, " type='terminate' condition='policy-violation'");
		return;
	}
	struct bosh_session *s = xcalloc(1, sizeof(*s));
	random_id(s->sid, BOSH_SID_LEN);
	s->domain = xstrdup(to);
	s->loop = server.loop;
	s->maxpause = hc->bosh_max_pause;
	s->polling = hc->bosh_polling;
	s->last_arrived = ev_now(s->loop);
	s->acks = xml_attr(body, "ack") != NULL;
	s->wait = (double)wait;
	s->hold = (unsigned)hold;
	s->idle_since = ev_now(s->loop);
	s->inactivity = hc->bosh_inactivity;
	ev_timer_init(&s->timer, bosh_timer_cb, 0, 0);
	s->timer.data = s;
	struct xml_parser_limits pl = {
		.max_stanza = limits->max_stanza_size,
		.max_depth = limits->max_depth,
		.max_attrs = limits->max_attrs,
	};
	s->st = stream_new_virtual(s->loop, rq->remote_ip, 0, &pl, limits->max_output, NULL, NULL);
	s->st->tls_done = rq->tls; /* the HTTP connection's TLS makes it secure */
	stream_set_transport(s->st, &bosh_transport, s);
	s->next = sessions;
	sessions = s;
	nsessions++;
	c2s_attach(s->st, &bosh_lc, limits);
	log_info("bosh %llu from %s: session for %s (wait %llu, hold %llu)%s", (unsigned long long)s->st->id,
	         rq->remote_ip, to, (unsigned long long)wait, (unsigned long long)hold,
	         rq->tls ? " over TLS" : "");
	s->rid = rid;
	bosh_stream_header(s, to);
	/* the creation answer: the session's attributes and the features */
	unsigned long ver_major, ver_minor;
	bosh_version(xml_attr(body, "ver"), &ver_major, &ver_minor);
	struct buf b = { 0 };
	buf_printf(&b,
	           "<body xmlns='" NS_HTTPBIND "' xmlns:xmpp='" NS_XBOSH "' xmlns:stream='" NS_STREAM
	           "' sid='%s' wait='%llu' hold='%llu' requests='%llu' inactivity='%.0f' polling='%.0f' "
	           "ver='%lu.%lu' xmpp:version='1.0' from='",
	           s->sid, (unsigned long long)wait, (unsigned long long)hold, (unsigned long long)hold + 1,
	           s->inactivity, s->polling, ver_major, ver_minor);
	xml_escape(&b, to, strlen(to), true);
	buf_append_str(&b, "'");
	if (s->maxpause > 0)
		buf_printf(&b, " maxpause='%.0f'", s->maxpause);
	if (s->acks)
		buf_printf(&b, " ack='%llu'", (unsigned long long)rid);
	if (s->ended)
		buf_append_str(&b, " type='terminate' condition='remote-stream-error'");
	buf_append_str(&b, ">");
	buf_append(&b, s->out.data, s->out.len);
	buf_free(&s->out);
	buf_append_str(&b, "</body>");
	bosh_keep(s, rid, b.data, b.len);
	http_reply_send(r, 200, "text/xml; charset=utf-8", b.data, b.len);
	buf_free(&b);
	bosh_schedule(s);
}

static void bosh_handler(void *ctx, const struct http_request *rq, struct http_reply *r)
{
	if (strcmp(rq->method, "OPTIONS") == 0) {
		if (http_cors_headers(rq, r)) {
			http_reply_header(r, "Access-Control-Allow-Methods", "POST, OPTIONS");
			http_reply_header(r, "Access-Control-Allow-Headers", "Content-Type");
			http_reply_header(r, "Access-Control-Max-Age", "86400");
		}
		http_reply_header(r, "Allow", "POST, OPTIONS");
		http_reply_send(r, 204, NULL, NULL, 0);
		return;
	}
	if (strcmp(rq->method, "POST") != 0) {
		http_reply_header(r, "Allow", "POST, OPTIONS");
		http_reply_error(r, 405, "BOSH requests are POSTs of <body/>");
		return;
	}
	http_cors_headers(rq, r);
	const struct limits_config *limits = &server.cfg->limits;
	struct xml_parser_limits pl = {
		.max_stanza = limits->max_stanza_size,
		.max_depth = limits->max_depth,
		.max_attrs = limits->max_attrs,
	};
	const char *err = NULL, *inner = NULL;
	size_t inner_len = 0;
	struct xml_node *body = bosh_split(rq->body, rq->body_len, &pl, &inner, &inner_len);
	if (body == NULL)
		body = xml_parse_string(rq->body, rq->body_len, NULL, &pl, &err);
	uint64_t rid;
	if (body == NULL || !xml_is(body, "body", NS_HTTPBIND) || !parse_u64(xml_attr(body, "rid"), &rid)) {
		xml_unref(&body);
		http_reply_error(r, 400, "a BOSH request is a <body/> with a rid");
		return;
	}
	const char *sid = xml_attr(body, "sid");
	if (sid == NULL) {
		bosh_create(rq, r, body, rid);
		xml_unref(&body);
		return;
	}
	struct bosh_session *s = bosh_find(sid);
	if (s == NULL || s->st == NULL || s->st->dead) {
		xml_unref(&body);
		bosh_reply_body(rq, r, " type='terminate' condition='item-not-found'");
		return;
	}
	const struct bosh_sent *kept = rid <= s->rid ? bosh_kept(s, rid) : NULL;
	if (kept != NULL) { /* a resend: the same answer */
		xml_unref(&body);
		http_reply_send(r, 200, "text/xml; charset=utf-8", kept->text, strlen(kept->text));
		return;
	}
	struct bosh_req *waiting = bosh_waiting(s, rid);
	if (waiting != NULL) {
		/* sent again while the first copy waits (its connection broke
		 * unseen): the copy takes its place, its input is taken once, and
		 * the first is answered empty */
		xml_unref(&body);
		struct http_reply *first = waiting->r;
		waiting->r = r;
		http_reply_on_cancel(r, bosh_req_cancel, waiting);
		http_reply_on_cancel(first, NULL, NULL);
		bosh_reply_body(rq, first, "");
		return;
	}
	if (rid == s->rid) {
		/* sent again after its connection broke, before it was answered:
		 * its input was taken; it waits for output again */
		xml_unref(&body);
		bosh_hold(s, rid, r, 0, 0);
		return;
	}
	if (rid <= s->rid || rid > s->rid + BOSH_WINDOW || s->nearly >= BOSH_WINDOW) {
		log_info("bosh %llu from %s: rid %llu outside the window after %llu: session ended",
		         (unsigned long long)s->st->id, s->st->ip, (unsigned long long)rid,
		         (unsigned long long)s->rid);
		xml_unref(&body);
		bosh_reply_body(rq, r, " type='terminate' condition='item-not-found'");
		s->ended = true;
		stream_abort(s->st);
		return;
	}
	const char *type = xml_attr(body, "type");
	if (s->nheld + s->nearly + 1 > s->hold + 1 && xml_attr(body, "pause") == NULL &&
	    (type == NULL || strcmp(type, "terminate") != 0)) {
		/* overactivity (XEP-0124 section 11): more requests at once than
		 * 'requests' */
		xml_unref(&body);
		bosh_end(s, r, "policy-violation");
		return;
	}
	if (rid != s->rid + 1) { /* early: wait for the ones before it */
		struct bosh_req *q = xcalloc(1, sizeof(*q));
		q->r = r;
		q->rid = rid;
		q->body = body;
		if (inner != NULL) { /* the request's bytes go with it */
			q->inner = xmalloc(inner_len + 1);
			memcpy(q->inner, inner, inner_len);
			q->inner_len = inner_len;
		}
		q->s = s;
		q->arrived = ev_now(s->loop);
		http_reply_on_cancel(r, bosh_req_cancel, q);
		s->early[s->nearly++] = q;
		return;
	}
	bosh_handle(s, rid, body, inner, inner_len, r, ev_now(s->loop));
	xml_unref(&body);
	/* the requests that came early, in order */
	for (bool found = true; found && !s->st->dead;) {
		found = false;
		for (size_t i = 0; i < s->nearly; i++) {
			if (s->early[i]->rid != s->rid + 1)
				continue;
			struct bosh_req *q = s->early[i];
			s->early[i] = s->early[--s->nearly];
			bosh_handle(s, q->rid, q->body, q->inner, q->inner_len, q->r, q->arrived);
			xml_unref(&q->body);
			free(q->inner);
			free(q);
			found = true;
			break;
		}
	}
}

void http_bosh_start(void)
{
	const struct http_config *hc = &server_config()->http;
	char *err = NULL;
	if (!hc->bosh)
		return;
	if (http_mount(hc->bosh_path, bosh_handler, NULL, &err) < 0) {
		log_warning("%s", err);
		free(err);
	}
}

unsigned bosh_count(void)
{
	return nsessions;
}
