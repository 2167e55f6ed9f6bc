/*
 * The http section's option table and checks.  Runs where the
 * configuration is loaded (the loop thread at start-up and on reload,
 * parleyctl); no state.
 *
 * Invariants: websocket_path starts with '/' and differs from the
 * host-meta paths; the limits that must be positive are.
 */
#include <stddef.h>
#include <string.h>

#include "server/http-config.h"

#define OFF(st, field) offsetof(struct st, field)

const struct opt_def http_config_defs[] = {
	{ "max_header_size", OPT_SIZE, OFF(http_config, max_header_size), "16K", NULL, 1024, 64L << 10,
	  "largest request line plus headers accepted, in bytes (431 beyond)" },
	{ "max_headers", OPT_UINT, OFF(http_config, max_headers), "64", NULL, 4, 1000,
	  "most header lines accepted in one request (431 beyond)" },
	{ "max_body_size", OPT_SIZE, OFF(http_config, max_body_size), "1M", NULL, 0, 1L << 30,
	  "largest request body accepted, in bytes (413 beyond, refused before it is read)" },
	{ "request_timeout", OPT_DURATION, OFF(http_config, request_timeout), "10s", NULL, 0, 0,
	  "time a client has from the first byte of a request to the end of its headers (408 and "
	  "close beyond)" },
	{ "body_timeout", OPT_DURATION, OFF(http_config, body_timeout), "30s", NULL, 0, 0,
	  "longest time without a byte of a request body being read (408 and close beyond); each "
	  "byte that arrives starts it again, so a slow upload goes on as long as it moves" },
	{ "keepalive_timeout", OPT_DURATION, OFF(http_config, keepalive_timeout), "60s", NULL, 0, 0,
	  "an idle keep-alive connection is closed after this long" },
	{ "max_connections_per_ip", OPT_UINT, OFF(http_config, max_conn_per_ip), "32", NULL, 0, 1000000,
	  "concurrent HTTP connections from one IP address (WebSocket ones then count as client "
	  "streams); 0: unlimited" },
	{ "websocket", OPT_BOOL, OFF(http_config, websocket), "true", NULL, 0, 0,
	  "serve XMPP over WebSocket (RFC 7395) at websocket_path" },
	{ "websocket_path", OPT_STRING, OFF(http_config, websocket_path), "/xmpp-websocket", NULL, 0, 0,
	  "the path WebSocket clients connect to" },
	{ "websocket_url", OPT_STRING, OFF(http_config, websocket_url), NULL, NULL, 0, 0,
	  "the WebSocket URL host-meta advertises (behind a reverse proxy); unset: "
	  "ws:// or wss:// with the request's Host and websocket_path" },
	{ "bosh", OPT_BOOL, OFF(http_config, bosh), "true", NULL, 0, 0,
	  "serve XMPP over BOSH (XEP-0124, XEP-0206) at bosh_path" },
	{ "bosh_path", OPT_STRING, OFF(http_config, bosh_path), "/http-bind", NULL, 0, 0,
	  "the path BOSH clients post to" },
	{ "bosh_max_wait", OPT_DURATION, OFF(http_config, bosh_max_wait), "60s", NULL, 0, 0,
	  "the longest time a BOSH request is held (a client's 'wait' is cut to this)" },
	{ "bosh_inactivity", OPT_DURATION, OFF(http_config, bosh_inactivity), "60s", NULL, 0, 0,
	  "a BOSH session with no request for this long ends" },
	{ "bosh_max_pause", OPT_DURATION, OFF(http_config, bosh_max_pause), "120s", NULL, 0, 0,
	  "the longest 'pause' a BOSH client may ask for (advertised as maxpause; the session's "
	  "inactivity limit is that long until its next request); 0: no pauses" },
	{ "bosh_polling", OPT_DURATION, OFF(http_config, bosh_polling), "2s", NULL, 0, 0,
	  "the shortest time between two empty BOSH requests when none is held (advertised as "
	  "polling; faster ends the session with policy-violation)" },
	{ "http_poll", OPT_BOOL, OFF(http_config, http_poll), "false", NULL, 0, 0,
	  "serve the obsolete XEP-0025 HTTP polling at http_poll_path, for old clients only "
	  "(sessions end after bosh_inactivity without a request)" },
	{ "http_poll_path", OPT_STRING, OFF(http_config, http_poll_path), "/http-poll", NULL, 0, 0,
	  "the path XEP-0025 HTTP polling clients post to" },
	{ "bosh_url", OPT_STRING, OFF(http_config, bosh_url), NULL, NULL, 0, 0,
	  "the BOSH URL host-meta advertises (behind a reverse proxy); unset: http:// or https:// "
	  "with the request's Host and bosh_path" },
	{ "host_meta", OPT_BOOL, OFF(http_config, host_meta), "true", NULL, 0, 0,
	  "serve /.well-known/host-meta and host-meta.json (XEP-0156)" },
	{ "cors_origins", OPT_STRLIST, OFF(http_config, cors_origins), NULL, NULL, 0, 0,
	  "origins allowed to read host-meta from a browser (Access-Control-Allow-Origin); "
	  "\"*\" for any; empty: no CORS headers" },
	OPT_END
};

int http_config_load(struct http_config *h, const struct cfg_node *map, const struct cfg_node *fallback,
                     char **error_r)
{
	if (opt_apply(http_config_defs, map, "http", h, error_r) < 0)
		return -1;
	if (h->websocket_path == NULL || h->websocket_path[0] != '/' ||
	    strchr(h->websocket_path, '?') != NULL || strchr(h->websocket_path, '#') != NULL) {
		*error_r = cfg_error_for_key(map, fallback, "http", "websocket_path",
		                             "must be a path starting with '/' (no query)");
		return -1;
	}
	if (h->bosh_path == NULL || h->bosh_path[0] != '/' || strcmp(h->bosh_path, h->websocket_path) == 0 ||
	    str_has_prefix(h->bosh_path, "/.well-known/")) {
		*error_r = cfg_error_for_key(map, fallback, "http", "bosh_path",
		                             "must be a path starting with '/', not websocket_path, not "
		                             "under /.well-known/");
		return -1;
	}
	if (h->http_poll_path == NULL || h->http_poll_path[0] != '/' ||
	    strcmp(h->http_poll_path, h->websocket_path) == 0 ||
	    strcmp(h->http_poll_path, h->bosh_path) == 0 ||
	    str_has_prefix(h->http_poll_path, "/.well-known/")) {
		*error_r = cfg_error_for_key(map, fallback, "http", "http_poll_path",
		                             "must be a path starting with '/', not websocket_path or "
		                             "bosh_path, not under /.well-known/");
		return -1;
	}
	if (h->bosh_polling > h->bosh_inactivity) {
		*error_r = cfg_error_for_key(map, fallback, "http", "bosh_polling",
		                             "must not be longer than bosh_inactivity");
		return -1;
	}
	if (str_has_prefix(h->websocket_path, "/.well-known/")) {
		*error_r = cfg_error_for_key(map, fallback, "http", "websocket_path",
		                             "must not be under /.well-known/");
		return -1;
	}
	if (h->bosh_max_wait < 1 || h->bosh_inactivity < 1) {
		*error_r = cfg_error_for_key(map, fallback, "http",
		                             h->bosh_max_wait < 1 ? "bosh_max_wait" : "bosh_inactivity",
		                             "must be at least 1s");
		return -1;
	}
	if (h->request_timeout < 0.1) {
		*error_r =
		        cfg_error_for_key(map, fallback, "http", "request_timeout", "must be at least 100ms");
		return -1;
	}
	if (h->body_timeout < 0.1) {
		*error_r = cfg_error_for_key(map, fallback, "http", "body_timeout", "must be at least 100ms");
		return -1;
	}
	if (h->keepalive_timeout < 0.1) {
		*error_r = cfg_error_for_key(map, fallback, "http", "keepalive_timeout",
		                             "must be at least 100ms");
		return -1;
	}
	return 0;
}

void http_config_free(struct http_config *h)
{
	opt_free(http_config_defs, h);
}

void http_config_dump(const struct http_config *h, struct buf *out, int indent)
{
	opt_dump(http_config_defs, h, out, indent);
}
