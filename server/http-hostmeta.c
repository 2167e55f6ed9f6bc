/*
 * Host metadata (XEP-0156): /.well-known/host-meta (XRD, RFC 6415) and
 * /.well-known/host-meta.json advertise the XMPP over WebSocket and BOSH
 * endpoints to web clients, with the CORS headers of http.cors_origins so that
 * browser code from those origins may read them.  Loop thread.
 *
 * XEP-0025 HTTP polling (server/httppoll.c) is not advertised: the
 * host-meta method of XEP-0156 (1.4.0) defines link relations for BOSH
 * and WebSocket only (urn:xmpp:alt-connections:xbosh and :websocket).
 * The alt-connections registry's _xmpp-client-httppoll is an attribute of
 * the DNS TXT method, which XEP-0156 no longer has; polling clients are
 * given the URL by hand.
 */
#include "http.h"
#include "server.h"
#include "lib/log.h"
#include "lib/xml.h"

#include <string.h>

#define NS_XRD "http://docs.oasis-open.org/ns/xri/xrd-1.0"
#define REL_WEBSOCKET "urn:xmpp:alt-connections:websocket"
#define REL_BOSH "urn:xmpp:alt-connections:xbosh"

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

/* An endpoint's URL: configured, or from the request's scheme, Host and
 * the path; NULL when there is none to give (or it holds characters the
 * documents would have to escape in JSON). */
static char *hostmeta_url(const struct http_request *rq, const char *configured, const char *scheme_tls,
                          const char *scheme_plain, const char *path)
{
	char *url;
	if (configured != NULL) {
		url = xstrdup(configured);
	} else {
		const char *host = http_request_header(rq, "Host");
		if (host == NULL || host[0] == '\0' || strpbrk(host, " \t\"'<>\\/") != NULL)
			return NULL;
		url = xasprintf("%s://%s%s", rq->tls ? scheme_tls : scheme_plain, host, path);
	}
	if (strpbrk(url, "\"\\") != NULL)
		xfree(&url);
	return url;
}

static void hostmeta_link(struct buf *b, bool json, bool *first, const char *rel, const char *url)
{
	if (url == NULL)
		return;
	if (json) {
		buf_printf(b, "%s{\"rel\":\"%s\",\"href\":\"%s\"}", *first ? "" : ",", rel, url);
	} else {
		buf_printf(b, "  <Link rel='%s' href='", rel);
		xml_escape(b, url, strlen(url), true);
		buf_append_str(b, "'/>\n");
	}
	*first = false;
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
	char *ws =
	        hc->websocket ? hostmeta_url(rq, hc->websocket_url, "wss", "ws", hc->websocket_path) : NULL;
	char *bosh = hc->bosh ? hostmeta_url(rq, hc->bosh_url, "https", "http", hc->bosh_path) : NULL;
	struct buf b = { 0 };
	bool first = true;
	if (json)
		buf_append_str(&b, "{\"links\":[");
	else
		buf_append_str(&b, "<?xml version='1.0' encoding='utf-8'?>\n<XRD xmlns='" NS_XRD "'>\n");
	hostmeta_link(&b, json, &first, REL_WEBSOCKET, ws);
	hostmeta_link(&b, json, &first, REL_BOSH, bosh);
	buf_append_str(&b, json ? "]}\n" : "</XRD>\n");
	free(ws);
	free(bosh);
	http_cors_headers(rq, r);
	http_reply_send(r, 200, json ? "application/json" : "application/xrd+xml; charset=utf-8", b.data,
	                b.len);
	buf_free(&b);
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
