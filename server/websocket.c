/*
 * XMPP over WebSocket (RFC 7395).  Loop thread only.
 *
 * After the upgrade (server/http.c), the connection's stream gets this
 * transport and the client state machine (c2s_attach): everything c2s does
 * over TCP (SASL, bind, stream management, limits, timeouts) it does here.
 * wslay does the framing (RFC 6455): masking required from the client,
 * fragments joined, ping answered, close handshake, messages capped at
 * limits.max_stanza_size (close 1009).
 *
 * Input: each text message must be valid UTF-8 (else close 1007) and one
 * complete element (else <not-well-formed/>).  <open/> is fed to the stream's XML parser as the stream header
 * it stands for, <close/> as </stream:stream>, anything else as it is.
 * Binary messages are refused (close 1003), frame errors close with 1002
 * (those wslay's frame parser finds too: see ws_fail_frame).
 *
 * Output: c2s writes what it writes over TCP; the transport splits it into
 * its top-level elements (it is our own serialiser's output: complete
 * elements, quoted attributes, '<' escaped in text) and sends each as one
 * text message, with the namespace declarations a standalone element needs
 * (xmlns='jabber:client', xmlns:stream).  The stream header becomes
 * <open/>, </stream:stream> becomes <close/> and a close frame (1000), and
 * a whitespace keepalive becomes a ping.
 *
 * Invariants: wslay is never re-entered (in_recv); messages that arrive
 * while input is paused (c2s waits on a backend) are held, in order, and
 * handed on when it resumes; wslay's queue is sent into the stream's
 * output queue, which keeps its cap.
 */
#include "websocket.h"
#include "c2s.h"
#include "stream.h"
#include "lib/log.h"
#include "lib/xml.h"

#include <openssl/sha.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <wslay/wslay.h>

#define NS_FRAMING "urn:ietf:params:xml:ns:xmpp-framing"
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

struct ws {
	struct stream *st;
	wslay_event_context_ptr ctx;
	const char *in; /* the bytes wslay reads next */
	size_t in_len;
	struct buf held; /* messages while paused: a size_t length, then the bytes */
	size_t held_off;
	bool in_recv;
	bool close_pending; /* a close frame (1000) goes after the queued messages */
	bool failed;        /* ws_fail logged why */
	/* the data message being received (wslay does not buffer them) */
	struct buf msg;
	size_t max_msg;  /* limits.max_stanza_size */
	bool frame_ctrl; /* the frame being received is a control frame */
	bool msg_over;   /* the message went over max_msg: dropped */
};

/* ---- the handshake ------------------------------------------------------------ */

/* Whether a comma-separated header value holds token (case-insensitive or not). */
static bool header_has_token(const char *v, const char *token, bool nocase)
{
	if (v == NULL)
		return false;
	size_t tl = strlen(token);
	while (*v != '\0') {
		while (*v == ' ' || *v == '\t' || *v == ',')
			v++;
		const char *end = v;
		while (*end != '\0' && *end != ',')
			end++;
		const char *e = end;
		while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if ((size_t)(e - v) == tl &&
		    (nocase ? strncasecmp(v, token, tl) : strncmp(v, token, tl)) == 0)
			return true;
		v = end;
	}
	return false;
}

int websocket_check_upgrade(const struct http_request *rq, struct buf *headers, const char **why)
{
	if (!header_has_token(http_request_header(rq, "Upgrade"), "websocket", true)) {
		*why = "Upgrade must be websocket";
		return 426;
	}
	const char *version = http_request_header(rq, "Sec-WebSocket-Version");
	if (version == NULL || strcmp(version, "13") != 0) {
		*why = "Sec-WebSocket-Version must be 13";
		return 426;
	}
	const char *key = http_request_header(rq, "Sec-WebSocket-Key");
	unsigned char *raw = NULL;
	size_t raw_len = 0;
	if (key == NULL || base64_decode(key, strlen(key), &raw, &raw_len) < 0 || raw_len != 16) {
		free(raw);
		*why = "Sec-WebSocket-Key must be 16 bytes in base64";
		return 400;
	}
	free(raw);
	if (!header_has_token(http_request_header(rq, "Sec-WebSocket-Protocol"), "xmpp", false)) {
		*why = "Sec-WebSocket-Protocol must offer xmpp (RFC 7395)";
		return 400;
	}
	unsigned char digest[SHA_DIGEST_LENGTH];
	struct buf k = { 0 };
	buf_append_str(&k, key);
	buf_append_str(&k, WS_GUID);
	SHA1((const unsigned char *)k.data, k.len, digest);
	buf_free(&k);
	char *accept = base64_encode(digest, sizeof(digest));
	buf_printf(headers,
	           "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n"
	           "Sec-WebSocket-Protocol: xmpp\r\n",
	           accept);
	free(accept);
	return 0;
}

/* ---- wslay's side ---------------------------------------------------------------- */

static ssize_t ws_recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *user)
{
	struct ws *ws = user;
	if (ws->in_len == 0) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	size_t n = len < ws->in_len ? len : ws->in_len;
	memcpy(buf, ws->in, n);
	ws->in += n;
	ws->in_len -= n;
	return (ssize_t)n;
}

static ssize_t ws_send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags, void *user)
{
	struct ws *ws = user;
	stream_write_raw(ws->st, (const char *)data, len);
	return (ssize_t)len;
}

static void ws_flush(struct ws *ws)
{
	if (ws->in_recv || ws->st->dead)
		return;
	/* wslay sends control frames first: the close frame is queued only
	 * once the messages before it are out (the send callback takes all). */
	for (int round = 0; round < 2; round++) {
		if (wslay_event_want_write(ws->ctx) && wslay_event_send(ws->ctx) < 0) {
			log_info("websocket %llu from %s: cannot frame output",
			         (unsigned long long)ws->st->id, ws->st->ip);
			stream_abort(ws->st);
			return;
		}
		if (!ws->close_pending)
			return;
		ws->close_pending = false;
		wslay_event_queue_close(ws->ctx, WSLAY_CODE_NORMAL_CLOSURE, NULL, 0);
	}
}

/* Fail the connection with a close code (RFC 6455 §7.1.7). */
static void ws_fail(struct ws *ws, uint16_t code, const char *reason)
{
	log_info("websocket %llu from %s: closing with %u: %s", (unsigned long long)ws->st->id, ws->st->ip,
	         code, reason);
	wslay_event_queue_close(ws->ctx, code, (const uint8_t *)reason, strlen(reason));
	wslay_event_shutdown_read(ws->ctx);
	ws->failed = true;
}

/* A frame wslay's frame parser refused (a control frame over 125 bytes or
 * fragmented, a reserved opcode): wslay queued a close frame without a
 * code and gave up; RFC 6455 §7.1.7 wants 1002, so that one is dropped and
 * ours written instead, after what is already framed. */
static void ws_fail_frame(struct ws *ws)
{
	static const char reason[] = "frame breaks RFC 6455";
	unsigned char f[4 + sizeof(reason) - 1];
	f[0] = 0x88; /* FIN and the close opcode; a server's frames are not masked */
	f[1] = (unsigned char)(2 + sizeof(reason) - 1);
	f[2] = (unsigned char)(WSLAY_CODE_PROTOCOL_ERROR >> 8);
	f[3] = (unsigned char)(WSLAY_CODE_PROTOCOL_ERROR & 0xff);
	memcpy(f + 4, reason, sizeof(reason) - 1);
	log_info("websocket %llu from %s: closing with %u: %s", (unsigned long long)ws->st->id, ws->st->ip,
	         WSLAY_CODE_PROTOCOL_ERROR, reason);
	wslay_event_shutdown_write(ws->ctx);
	stream_write_raw(ws->st, (const char *)f, sizeof(f));
	ws->failed = true;
}

/* The stream header an <open/> stands for, to the XML parser. */
static void ws_open(struct ws *ws, const char *msg, size_t len)
{
	struct stream *st = ws->st;
	const char *err = NULL;
	struct xml_node *el = xml_parse_string(msg, len, NULL, &st->limits, &err);
	if (el == NULL) {
		st->ops->error(st, STE_NOT_WELL_FORMED, err != NULL ? err : "bad <open/>");
		return;
	}
	bool open = xml_is(el, "open", NS_FRAMING);
	if (!open && !xml_is(el, "close", NS_FRAMING)) {
		xml_unref(&el);
		st->ops->error(st, STE_INVALID_NAMESPACE, "<open/> and <close/> are in " NS_FRAMING);
		return;
	}
	if (!open) {
		xml_unref(&el);
		stream_feed_xml(st, "</stream:stream>", 16);
		return;
	}
	struct buf h = { 0 };
	buf_append_str(&h, "<stream:stream xmlns='" NS_CLIENT "' xmlns:stream='" NS_STREAM "'");
	static const char *const attrs[] = { "to", "from", "id", "version", "xml:lang" };
	for (size_t i = 0; i < ARRAY_SIZE(attrs); i++) {
		const char *v = xml_attr(el, attrs[i]);
		if (v == NULL)
			continue;
		buf_printf(&h, " %s='", attrs[i]);
		xml_escape(&h, v, strlen(v), true);
		buf_append_str(&h, "'");
	}
	buf_append_str(&h, ">");
	xml_unref(&el);
	stream_feed_xml(st, h.data, h.len);
	buf_free(&h);
}

static bool starts_with_tag(const char *p, const char *end, const char *tag)
{
	size_t n = strlen(tag);
	if ((size_t)(end - p) <= n || memcmp(p, tag, n) != 0)
		return false;
	char ch = p[n];
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n' || ch == '/' || ch == '>';
}

/* One text message of the client, in order. */
static void ws_message(struct ws *ws, const char *msg, size_t len)
{
	const char *p = msg, *end = msg + len;
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
		p++;
	if (p == end)
		return; /* whitespace: nothing */
	if (starts_with_tag(p, end, "<open") || starts_with_tag(p, end, "<close")) {
		ws_open(ws, msg, len);
		return;
	}
	struct stream *st = ws->st;
	uint64_t before = st->stanzas_in;
	stream_feed_xml(st, msg, len);
	/* One complete element per message (RFC 7395 §3.3.3).  A message that
	 * paused input after its element may still hold more: that is fed
	 * on resume, not checked. */
	if (!st->dead && !st->closing && !st->paused && st->stanzas_in - before != 1)
		st->ops->error(st, STE_NOT_WELL_FORMED,
		               st->stanzas_in == before ? "a WebSocket message must hold a complete element"
		                                        : "a WebSocket message must hold one element");
}

static bool ws_held_pending(const struct ws *ws)
{
	return ws->held.len > ws->held_off;
}

static void ws_hold(struct ws *ws, const char *msg, size_t len)
{
	buf_append(&ws->held, &len, sizeof(len));
	buf_append(&ws->held, msg, len);
}

/* Hand on held messages while input is not paused. */
static void ws_drain_held(struct ws *ws)
{
	struct stream *st = ws->st;
	while (ws_held_pending(ws) && !st->paused && !st->closing && !st->dead) {
		size_t len;
		memcpy(&len, ws->held.data + ws->held_off, sizeof(len));
		const char *msg = ws->held.data + ws->held_off + sizeof(len);
		ws->held_off += sizeof(len) + len;
		ws_message(ws, msg, len);
	}
	if (!ws_held_pending(ws)) {
		buf_free(&ws->held);
		ws->held_off = 0;
	}
}

/* Data messages are gathered here rather than by wslay, which allocates a
 * chunk per frame and a joined copy per message: ws->msg is reused from
 * one message to the next.  Control frames are still wslay's. */
static void ws_on_frame_start(wslay_event_context_ptr ctx,
                              const struct wslay_event_on_frame_recv_start_arg *arg, void *user)
{
	struct ws *ws = user;
	ws->frame_ctrl = (arg->opcode & 0x8) != 0;
	if (!ws->frame_ctrl && arg->opcode != WSLAY_CONTINUATION_FRAME) {
		buf_reset(&ws->msg); /* a new message */
		ws->msg_over = false;
	}
}

static void ws_on_frame_chunk(wslay_event_context_ptr ctx,
                              const struct wslay_event_on_frame_recv_chunk_arg *arg, void *user)
{
	struct ws *ws = user;
	if (ws->frame_ctrl || ws->msg_over || ws->failed)
		return;
	if (ws->msg.len + arg->data_length > ws->max_msg) {
		ws->msg_over = true;
		buf_free(&ws->msg);
		ws_fail(ws, WSLAY_CODE_MESSAGE_TOO_BIG, "message over limits.max_stanza_size");
		return;
	}
	buf_append(&ws->msg, (const char *)arg->data, arg->data_length);
}

static void ws_on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg, void *user)
{
	struct ws *ws = user;
	struct stream *st = ws->st;
	if (st->dead || st->closing || ws->failed)
		return;
	if (arg->opcode == WSLAY_BINARY_FRAME) {
		ws_fail(ws, WSLAY_CODE_UNSUPPORTED_DATA, "XMPP messages are text");
		return;
	}
	if (arg->opcode != WSLAY_TEXT_FRAME || ws->msg_over)
		return; /* ping answered and close handled by wslay */
	size_t len = ws->msg.len;
	if (len == 0)
		return; /* empty: nothing, as whitespace */
	const char *msg = ws->msg.data;
	if (!utf8_valid(msg, len)) {
		ws_fail(ws, WSLAY_CODE_INVALID_FRAME_PAYLOAD_DATA, "text message is not UTF-8");
		return;
	}
	if (st->paused || ws_held_pending(ws))
		ws_hold(ws, msg, len);
	else
		ws_message(ws, msg, len);
	/* an idle session keeps no large buffer */
	if (ws->msg.cap > 4096)
		buf_free(&ws->msg);
	else
		buf_reset(&ws->msg);
}

static const struct wslay_event_callbacks ws_callbacks = {
	.recv_callback = ws_recv_cb,
	.send_callback = ws_send_cb,
	.on_frame_recv_start_callback = ws_on_frame_start,
	.on_frame_recv_chunk_callback = ws_on_frame_chunk,
	.on_msg_recv_callback = ws_on_msg,
};

/* ---- the transport ---------------------------------------------------------------- */

static bool ws_input(struct stream *st, const char *data, size_t len)
{
	struct ws *ws = st->transport_ctx;
	if (ws->in_recv)
		return false;
	ws->in = data;
	ws->in_len = len;
	ws->in_recv = true;
	int r = wslay_event_get_read_enabled(ws->ctx) ? wslay_event_recv(ws->ctx) : 0;
	ws->in_recv = false;
	ws->in = NULL;
	ws->in_len = 0;
	if (r == WSLAY_ERR_CALLBACK_FAILURE && !st->dead && !wslay_event_get_close_sent(ws->ctx)) {
		/* our callbacks do not fail: the frame parser refused a frame */
		ws_fail_frame(ws);
		stream_finish(st);
		return false;
	}
	if (r < 0) {
		log_info("websocket %llu from %s: read failed (%d)", (unsigned long long)st->id, st->ip, r);
		stream_abort(st);
		return false;
	}
	ws_drain_held(ws);
	ws_flush(ws);
	if (!st->dead && !wslay_event_get_read_enabled(ws->ctx)) {
		/* the client closed, or a frame broke the rules: the close
		 * frame is queued; the connection ends when it is written */
		if (wslay_event_get_close_received(ws->ctx))
			log_debug("websocket %llu from %s: the client closed (%u)",
			          (unsigned long long)st->id, st->ip,
			          wslay_event_get_status_code_received(ws->ctx));
		else if (!st->closing && !ws->failed)
			log_info("websocket %llu from %s: closing with %u", (unsigned long long)st->id,
			         st->ip, wslay_event_get_status_code_sent(ws->ctx));
		stream_finish(st);
	}
	return !st->dead && !st->closing && !st->paused;
}

static bool ws_resume(struct stream *st)
{
	struct ws *ws = st->transport_ctx;
	if (ws->in_recv)
		return true; /* ws_input drains the held messages when wslay returns */
	ws_drain_held(ws);
	if (st->paused || st->closing || st->dead)
		return false;
	/* frames wslay read ahead while input was paused */
	return ws_input(st, NULL, 0);
}

/* The '>' that ends the tag at p (start or end tag), or end when none does. */
static const char *tag_end(const char *p, const char *end)
{
	const char *gt = xml_tag_end(p, end);
	return gt != NULL ? gt : end;
}

/* The end of the element that starts at p (our own serialiser's output). */
static const char *element_end(const char *p, const char *end)
{
	int depth = 0;
	while (p < end) {
		if (*p != '<') {
			p = memchr(p, '<', (size_t)(end - p));
			if (p == NULL)
				return end;
			continue;
		}
		bool closing = p + 1 < end && p[1] == '/';
		const char *t = tag_end(p, end);
		if (t >= end)
			return end;
		if (closing)
			depth--;
		else if (t[-1] != '/')
			depth++;
		p = t + 1;
		if (depth <= 0)
			return p;
	}
	return end;
}

static bool tag_has(const char *p, const char *end, const char *needle)
{
	size_t n = strlen(needle);
	for (; p + n <= end; p++)
		if (memcmp(p, needle, n) == 0)
			return true;
	return false;
}

static void ws_queue_text(struct ws *ws, const char *data, size_t len)
{
	struct wslay_event_msg m = { WSLAY_TEXT_FRAME, (const uint8_t *)data, len };
	wslay_event_queue_msg(ws->ctx, &m); /* fails only once a close is queued: dropped */
}

/* <stream:stream ...> -> <open xmlns='...framing' .../> (the namespace
 * declarations dropped, the other attributes kept). */
static void ws_queue_open(struct ws *ws, const char *p, const char *end)
{
	const char *te = tag_end(p, end);
	struct buf b = { 0 };
	buf_append_str(&b, "<open xmlns='" NS_FRAMING "'");
	p += strlen("<stream:stream");
	while (p < te) {
		while (p < te && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
			p++;
		const char *name = p;
		while (p < te && *p != '=')
			p++;
		if (p + 1 >= te)
			break;
		size_t name_len = (size_t)(p - name);
		char quote = p[1];
		const char *v = p + 2, *ve = v;
		while (ve < te && *ve != quote)
			ve++;
		p = ve < te ? ve + 1 : te;
		if ((name_len == 5 && memcmp(name, "xmlns", 5) == 0) ||
		    (name_len > 6 && memcmp(name, "xmlns:", 6) == 0))
			continue;
		buf_append_str(&b, " ");
		buf_append(&b, name, (size_t)(v - name));
		buf_append(&b, v, (size_t)(ve - v));
		buf_append(&b, &quote, 1);
	}
	buf_append_str(&b, "/>");
	ws_queue_text(ws, b.data, b.len);
	buf_free(&b);
}

/* An element made standalone, as pieces: [p, ne) (its start up to the end
 * of its name), decl (the namespace declaration it needs, or NULL) and
 * [ne, e) (the rest). */
typedef void element_fn(void *ctx, const char *p, const char *ne, const char *decl, const char *e);

/* Find the namespace declaration the element [p, e) relies on; efn gets it. */
static void split_element(const char *p, const char *e, element_fn *efn, void *ctx)
{
	const char *name = p + 1, *ne = name;
	while (ne < e && *ne != ' ' && *ne != '/' && *ne != '>' && *ne != '\t')
		ne++;
	const char *te = tag_end(p, e);
	const char *decl = NULL;
	if ((size_t)(ne - name) > 7 && memcmp(name, "stream:", 7) == 0) {
		if (!tag_has(ne, te, "xmlns:stream="))
			decl = " xmlns:stream='" NS_STREAM "'";
	} else if (memchr(name, ':', (size_t)(ne - name)) == NULL && !tag_has(ne, te, " xmlns=")) {
		decl = " xmlns='" NS_CLIENT "'";
	}
	efn(ctx, p, ne, decl, e);
}

static void split_output(const char *data, size_t len, websocket_out_fn *fn, element_fn *efn, void *ctx)
{
	const char *p = data, *end = data + len;
	bool only_space = true;
	while (p < end) {
		if (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') {
			p++;
			continue;
		}
		only_space = false;
		if (*p != '<') { /* text between elements: not ours to send */
			const char *lt = memchr(p, '<', (size_t)(end - p));
			p = lt != NULL ? lt : end;
			continue;
		}
		if (end - p >= 2 && p[1] == '?') {
			const char *q = tag_end(p, end);
			p = q < end ? q + 1 : end;
			continue;
		}
		if (starts_with_tag(p, end, "<stream:stream")) {
			const char *q = tag_end(p, end);
			fn(ctx, WS_OUT_HEADER, p, (size_t)((q < end ? q + 1 : end) - p));
			p = q < end ? q + 1 : end;
			continue;
		}
		if (end - p >= 16 && memcmp(p, "</stream:stream>", 16) == 0) {
			fn(ctx, WS_OUT_END, p, 16);
			p += 16;
			continue;
		}
		const char *e = element_end(p, end);
		split_element(p, e, efn, ctx);
		p = e;
	}
	if (only_space && len > 0)
		fn(ctx, WS_OUT_SPACE, data, len);
}

struct join_ctx {
	websocket_out_fn *fn;
	void *ctx;
};

static void join_part(void *ctx, enum websocket_out_kind kind, const char *p, size_t len)
{
	struct join_ctx *jc = ctx;
	jc->fn(jc->ctx, kind, p, len);
}

/* An element in one piece for websocket_split_output's callers. */
static void join_element(void *ctx, const char *p, const char *ne, const char *decl, const char *e)
{
	struct join_ctx *jc = ctx;
	if (decl == NULL) {
		jc->fn(jc->ctx, WS_OUT_ELEMENT, p, (size_t)(e - p));
		return;
	}
	struct buf b = { 0 };
	buf_append(&b, p, (size_t)(ne - p));
	buf_append_str(&b, decl);
	buf_append(&b, ne, (size_t)(e - ne));
	jc->fn(jc->ctx, WS_OUT_ELEMENT, b.data, b.len);
	buf_free(&b);
}

void websocket_split_output(const char *data, size_t len, websocket_out_fn *fn, void *ctx)
{
	struct join_ctx jc = { fn, ctx };
	split_output(data, len, join_part, join_element, &jc);
}

static void ws_out_part(void *ctx, enum websocket_out_kind kind, const char *p, size_t len)
{
	struct ws *ws = ctx;
	switch (kind) {
	case WS_OUT_HEADER: ws_queue_open(ws, p, p + len); break;
	case WS_OUT_END:
		ws_queue_text(ws, "<close xmlns='" NS_FRAMING "'/>",
		              strlen("<close xmlns='" NS_FRAMING "'/>"));
		ws->close_pending = true;
		break;
	case WS_OUT_ELEMENT: ws_queue_text(ws, p, len); break; /* not reached: ws_out_element */
	case WS_OUT_SPACE: {
		struct wslay_event_msg m = { WSLAY_PING, NULL, 0 };
		wslay_event_queue_msg(ws->ctx, &m);
		break;
	}
	}
}

/* One element as a text message.  The common case (nothing queued in
 * wslay, no close under way) frames it straight into the stream's output
 * queue: a header and the pieces, one copy, no allocation.  Otherwise it
 * goes through wslay's queue behind what waits there, in order. */
static void ws_out_element(void *ctx, const char *p, const char *ne, const char *decl, const char *e)
{
	struct ws *ws = ctx;
	size_t head_len = (size_t)(ne - p), decl_len = decl != NULL ? strlen(decl) : 0;
	size_t len = head_len + decl_len + (size_t)(e - ne);
	if (ws->close_pending || wslay_event_want_write(ws->ctx) || wslay_event_get_close_sent(ws->ctx) ||
	    !wslay_event_get_write_enabled(ws->ctx)) {
		if (decl == NULL) {
			ws_queue_text(ws, p, len);
			return;
		}
		struct buf b = { 0 };
		buf_append(&b, p, head_len);
		buf_append(&b, decl, decl_len);
		buf_append(&b, ne, (size_t)(e - ne));
		ws_queue_text(ws, b.data, b.len);
		buf_free(&b);
		return;
	}
	/* RFC 6455 §5.2: FIN and the text opcode; a server's frames are not masked */
	unsigned char h[10];
	size_t hl;
	h[0] = 0x81;
	if (len < 126) {
		h[1] = (unsigned char)len;
		hl = 2;
	} else if (len <= 0xffff) {
		h[1] = 126;
		h[2] = (unsigned char)(len >> 8);
		h[3] = (unsigned char)len;
		hl = 4;
	} else {
		h[1] = 127;
		for (int i = 0; i < 8; i++)
			h[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
		hl = 10;
	}
	struct stream *st = ws->st;
	stream_write_raw(st, (const char *)h, hl);
	stream_write_raw(st, p, head_len);
	if (decl_len > 0)
		stream_write_raw(st, decl, decl_len);
	stream_write_raw(st, ne, (size_t)(e - ne));
}

static void ws_output(struct stream *st, const char *data, size_t len)
{
	struct ws *ws = st->transport_ctx;
	split_output(data, len, ws_out_part, ws_out_element, ws);
	ws_flush(ws);
}

static void ws_free(struct stream *st)
{
	struct ws *ws = st->transport_ctx;
	if (ws == NULL)
		return;
	wslay_event_context_free(ws->ctx);
	buf_free(&ws->held);
	buf_free(&ws->msg);
	free(ws);
	st->transport_ctx = NULL;
}

static const struct stream_transport ws_transport = {
	.input = ws_input,
	.output = ws_output,
	.resume = ws_resume,
	.free = ws_free,
};

/* The client listener settings of WebSocket streams: those of the HTTP
 * listener, without STARTTLS (TLS is the HTTP listener's). */
struct ws_lc {
	const struct listen_config *http;
	struct listen_config *c2s;
};
static struct ws_lc *ws_lcs;
static size_t nws_lcs;

const struct listen_config *websocket_listen_config(const struct listen_config *http)
{
	for (size_t i = 0; i < nws_lcs; i++)
		if (ws_lcs[i].http == http)
			return ws_lcs[i].c2s;
	ws_lcs = xrealloc(ws_lcs, (nws_lcs + 1) * sizeof(*ws_lcs));
	struct listen_config *c = xmalloc(sizeof(*c));
	*c = *http;
	c->module = LISTEN_C2S;
	c->starttls = STARTTLS_OFF;
	ws_lcs[nws_lcs++] = (struct ws_lc){ http, c };
	return c;
}

void websocket_start(struct stream *st, const struct listen_config *lc, const struct limits_config *limits,
                     const char *rest, size_t rest_len)
{
	struct ws *ws = xcalloc(1, sizeof(*ws));
	ws->st = st;
	if (wslay_event_context_server_init(&ws->ctx, &ws_callbacks, ws) != 0) {
		free(ws);
		stream_abort(st);
		return;
	}
	wslay_event_config_set_max_recv_msg_length(ws->ctx, limits->max_stanza_size);
	wslay_event_config_set_no_buffering(ws->ctx, 1);
	ws->max_msg = limits->max_stanza_size;
	st->max_output = limits->max_output;
	stream_set_transport(st, &ws_transport, ws);
	c2s_attach(st, websocket_listen_config(lc), limits);
	if (rest_len > 0)
		ws_input(st, rest, rest_len);
}
