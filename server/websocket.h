/*
 * XMPP over WebSocket (RFC 7395, framing RFC 6455 by wslay): the upgrade
 * handshake of an HTTP request, then a stream transport that turns each
 * text message into input of the client state machine (server/c2s.c, the
 * same as over TCP) and each element it writes into one message.  <open/>
 * and <close/> stand for the stream header and its end.  Loop thread.
 */
#ifndef PARLEY_WEBSOCKET_H
#define PARLEY_WEBSOCKET_H

#include "http.h"
#include "lib/util.h"

struct stream;

/* Check rq as a WebSocket upgrade for XMPP (RFC 6455 §4.2.1, RFC 7395
 * §3.2): 0 and the 101 response's header lines (CRLF-ended) in headers, or
 * the HTTP status to refuse it with (400, 426) and *why. */
int websocket_check_upgrade(const struct http_request *rq, struct buf *headers, const char **why);

/* Turn st (an HTTP connection whose 101 response is queued) into an XMPP
 * client stream over WebSocket; rest is what the client sent after the
 * request (WebSocket frames already).  lc is the HTTP listener. */
void websocket_start(struct stream *st, const struct listen_config *lc, const struct limits_config *limits,
                     const char *rest, size_t rest_len);

/* What a client stream writes (stream headers, complete elements, its
 * end, whitespace), split for transports that frame each element: fn gets
 * the header's start tag, each top-level element with the namespace
 * declarations it needs on its own (xmlns='jabber:client', xmlns:stream),
 * </stream:stream>, or a chunk that is only whitespace (a keepalive). */
enum websocket_out_kind { WS_OUT_HEADER, WS_OUT_END, WS_OUT_ELEMENT, WS_OUT_SPACE };
typedef void websocket_out_fn(void *ctx, enum websocket_out_kind kind, const char *p, size_t len);
void websocket_split_output(const char *data, size_t len, websocket_out_fn *fn, void *ctx);

/* The client listener settings of streams of an HTTP listener: lc's, with
 * module c2s and no STARTTLS (TLS is the HTTP connection's). */
const struct listen_config *websocket_listen_config(const struct listen_config *lc);

#endif
