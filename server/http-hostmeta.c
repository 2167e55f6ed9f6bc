/*
 * Host metadata (XEP-0156): /.well-known/host-meta (XRD, RFC 6415) and
 * /.well-known/host-meta.json advertise the XMPP over WebSocket endpoint
 * to web clients, with the CORS headers of http.cors_origins so that
 * browser code from those origins may read them.  Loop thread.
 */
#include "http.h"
#include "server.h"
#include "lib/log.h"
#include "lib/xml.h"

#include <string.h>

#define NS_XRD "http://docs.oasis-open.org/ns/xri/xrd-1.0"
#define REL_WEBSOCKET "urn:xmpp:alt-connections:websocket"

bool http_cors_headers(const struct http_request *rq, struct http_reply *r)
{
	const struct strlist *origins = &server_config()->http.cors_origins;
	const char *origin = http_request_header(rq, "Origin");
	if (origins->count == 0)
		return false;
	if (strlist_contains(origins, "*")) {
		http_reply_header(r, "Access-Control-Allow-Origin", "*");
	} else if (origin != NULL && strlist_contains(origins, origin)) {
		http_reply_header(r, "Access-Control-Allow-Origin", origin);
		http_reply_header(r, "Vary", "Origin");
	} else {
		return false;
	}
	return true;
}

/* The WebSocket URL: configured, or from the request's Host and scheme. */
static char *hostmeta_websocket_url(const struct http_request *rq)
{
	const struct http_config *hc = &server_config()->http;
	if (hc->websocket_url != NULL)
		return xstrdup(hc->websocket_url);
	const char *host = http_request_header(rq, "Host");
	if (host == NULL || host[0] == '\0' || strpbrk(host, " \t\"'<>\\/") != NULL)
		return NULL;
	return xasprintf("%s://%s%s", rq->tls ? "wss" : "ws", host, hc->websocket_path);
}

static void hostmeta_handler(void *ctx, const struct http_request *rq, struct http_reply *r)
{
	bool json = ctx != NULL;
	if (strcmp(rq->method, "OPTIONS") == 0) {
		if (http_cors_headers(rq, r)) {
			http_reply_header(r, "Access-Control-Allow-Methods", "GET, HEAD, OPTIONS");
			http_reply_header(r, "Access-Control-Max-Age", "86400");
		}
		http_reply_header(r, "Allow", "GET, HEAD, OPTIONS");
		http_reply_send(r, 204, NULL, NULL, 0);
		return;
	}
	if (strcmp(rq->method, "GET") != 0 && strcmp(rq->method, "HEAD") != 0) {
		http_reply_header(r, "Allow", "GET, HEAD, OPTIONS");
		http_reply_error(r, 405, NULL);
		return;
	}
	if (strcmp(rq->path, json ? "/.well-known/host-meta.json" : "/.well-known/host-meta") != 0) {
		http_reply_error(r, 404, NULL);
		return;
	}
	const struct http_config *hc = &server_config()->http;
	if (!hc->host_meta) {
		http_reply_error(r, 404, NULL);
		return;
	}
	char *url = hc->websocket ? hostmeta_websocket_url(rq) : NULL;
	if (url != NULL && strpbrk(url, "\"\\") != NULL)
		xfree(&url);
	struct buf b = { 0 };
	if (json) {
		buf_append_str(&b, "{\"links\":[");
		if (url != NULL) {
			/* the URL holds no '"' or '\\' (checked above, or the
			 * operator's own) */
			buf_printf(&b, "{\"rel\":\"" REL_WEBSOCKET "\",\"href\":\"%s\"}", url);
		}
		buf_append_str(&b, "]}\n");
	} else {
		buf_append_str(&b, "<?xml version='1.0' encoding='utf-8'?>\n<XRD xmlns='" NS_XRD "'>\n");
		if (url != NULL) {
			buf_append_str(&b, "  <Link rel='" REL_WEBSOCKET "' href='");
			xml_escape(&b, url, strlen(url), true);
			buf_append_str(&b, "'/>\n");
		}
		buf_append_str(&b, "</XRD>\n");
	}
	http_cors_headers(rq, r);
	http_reply_send(r, 200, json ? "application/json" : "application/xrd+xml; charset=utf-8", b.data,
	                b.len);
	buf_free(&b);
	free(url);
}

void http_hostmeta_start(void)
{
	char *err = NULL;
	static const char one = 1;
	if (http_mount("/.well-known/host-meta", hostmeta_handler, NULL, &err) < 0 ||
	    http_mount("/.well-known/host-meta.json", hostmeta_handler, (void *)&one, &err) < 0) {
		log_warning("%s", err);
		free(err);
	}
}
