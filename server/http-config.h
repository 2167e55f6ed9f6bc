/*
 * The http section: limits of the HTTP listeners (request and body size,
 * header count, time to send a request's headers, body no-progress time, keep-alive idle time, connections
 * per address), XMPP over WebSocket (RFC 7395) and host metadata
 * (XEP-0156) with its CORS origins.  server/config.c reads it.  Runs where
 * the configuration is loaded (the loop thread, parleyctl); no state.
 */
#ifndef PARLEY_HTTP_CONFIG_H
#define PARLEY_HTTP_CONFIG_H

#include "lib/cfg.h"
#include "lib/options.h"
#include "lib/util.h"

struct http_config {
	size_t max_header_size;      /* request line and headers, bytes (16K) -> 431 */
	unsigned max_headers;        /* header lines (64) -> 431 */
	size_t max_body_size;        /* request body (1M) -> 413 */
	double request_timeout;      /* from the first byte to the end of the headers (10 s) -> 408 */
	double body_timeout;         /* longest wait for a byte of a body being read (30 s) -> 408 */
	double keepalive_timeout;    /* idle connection between requests (60 s) */
	unsigned max_conn_per_ip;    /* concurrent HTTP connections from one address (32; 0: unlimited) */
	bool websocket;              /* serve XMPP over WebSocket (true) */
	char *websocket_path;        /* "/xmpp-websocket" */
	char *websocket_url;         /* advertised in host-meta; NULL: from the request */
	bool bosh;                   /* serve BOSH (XEP-0124/0206) at bosh_path (true) */
	char *bosh_path;             /* "/http-bind" */
	double bosh_max_wait;        /* the longest 'wait' a client may ask for (60 s) */
	double bosh_inactivity;      /* a session with no request for this long ends (60 s) */
	double bosh_max_pause;       /* the longest 'pause' a client may ask for (120 s; 0: none) */
	double bosh_polling;         /* the shortest interval between empty polls (2 s) */
	bool http_poll;              /* serve XEP-0025 HTTP polling at http_poll_path (false) */
	char *http_poll_path;        /* "/http-poll" */
	char *bosh_url;              /* advertised in host-meta; NULL: from the request */
	bool host_meta;              /* serve /.well-known/host-meta[.json] (true) */
	struct strlist cors_origins; /* Access-Control-Allow-Origin values; "*" for any */
};

/* The http map (defaults first) and its checks; fallback is where
 * messages point when the map is absent.  -1 and a malloc'd *error_r
 * naming file, line and key. */
int http_config_load(struct http_config *h, const struct cfg_node *map, const struct cfg_node *fallback,
                     char **error_r);
void http_config_free(struct http_config *h);
void http_config_dump(const struct http_config *h, struct buf *out, int indent);
/* The option table (for the documentation generator and tests). */
extern const struct opt_def http_config_defs[];

#endif
