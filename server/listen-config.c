/*
 * The network side of the configuration: the option tables of the listen
 * list, the limits section and the tls section (keys, defaults, docs), and
 * the checks the tables cannot express.  Runs where the configuration is
 * loaded (the loop thread at start-up and on reload, parleyctl); no state.
 *
 * Invariants: there is at least one listener, each with a port and no two
 * on the same address and port; max_output is at least max_stanza_size and
 * the timeouts that must run are above 0; tls.min_version is "1.2" or
 * "1.3"; paths are absolute.
 */
#include <stddef.h>
#include <string.h>

#include "server/listen-config.h"

#define OFF(st, field) offsetof(struct st, field)

static const struct opt_def limits_defs[] = {
	{ "max_stanza_size", OPT_SIZE, OFF(limits_config, max_stanza_size), "256K", NULL, 1024, 64L << 20,
	  "largest stanza accepted from a stream, in bytes" },
	{ "max_depth", OPT_UINT, OFF(limits_config, max_depth), "64", NULL, 2, 1024,
	  "deepest XML element nesting accepted" },
	{ "max_attrs", OPT_UINT, OFF(limits_config, max_attrs), "64", NULL, 1, 1024,
	  "most attributes accepted on one XML element" },
	{ "max_output", OPT_SIZE, OFF(limits_config, max_output), "1M", NULL, 1024, 1L << 30,
	  "output queue a stream must keep reading: over it for 60 s with less than this taken, or over "
	  "16 times it at once, the stream is disconnected (at least max_stanza_size)" },
	{ "max_connections_per_ip", OPT_UINT, OFF(limits_config, max_conn_per_ip), "64", NULL, 0, 1000000,
	  "concurrent connections from one IP address, and stream management sessions from it that "
	  "wait to be resumed; 0: unlimited" },
	{ "max_sessions_per_user", OPT_UINT, OFF(limits_config, max_sessions_per_user), "50", NULL, 0,
	  1000000,
	  "sessions of one account at once, bound or waiting to be resumed; past it a new bind ends "
	  "the one detached longest, or is refused (resource-constraint); 0: no limit" },
	{ "handshake_timeout", OPT_DURATION, OFF(limits_config, handshake_timeout), "60s", NULL, 0, 0,
	  "time from accept to a bound session before the stream is closed" },
	{ "idle_timeout", OPT_DURATION, OFF(limits_config, idle_timeout), "10m", NULL, 0, 0,
	  "close a stream that sent nothing for this long; 0: never" },
	{ "keepalive", OPT_DURATION, OFF(limits_config, keepalive), "60s", NULL, 0, 0,
	  "send a whitespace keepalive after this much output silence" },
	{ "auth_attempts", OPT_UINT, OFF(limits_config, auth_attempts), "3", NULL, 1, 100,
	  "failed SASL attempts on one stream before it is closed" },
	{ "auth_failure_delay", OPT_DURATION, OFF(limits_config, auth_failure_delay), "1s", NULL, 0, 0,
	  "delay before a failed authentication is answered" },
	OPT_END
};

static const struct opt_def compression_defs[] = {
	{ "enabled", OPT_BOOL, OFF(compression_config, enabled), "false", NULL, 0, 0,
	  "offer XEP-0138 zlib stream compression to authenticated client TCP streams (not "
	  "WebSocket or BOSH); off because compression under TLS leaks secrets (CRIME-class attacks)" },
	{ "s2s", OPT_BOOL, OFF(compression_config, s2s), "false", NULL, 0, 0,
	  "offer zlib compression on incoming s2s streams and ask for it on outgoing ones, once "
	  "authenticated (not on XEP-0288 bidirectional streams); off for the same reason" },
	OPT_END
};

static const struct opt_def shaper_defs[] = {
	{ "c2s", OPT_SIZE, OFF(shaper_config, c2s), "0", NULL, 0, 1L << 40,
	  "input rate of one client connection, bytes per second (K, M suffixes); a faster sender "
	  "is read more slowly, never disconnected; 0: unlimited" },
	{ "s2s", OPT_SIZE, OFF(shaper_config, s2s), "0", NULL, 0, 1L << 40,
	  "input rate of one server-to-server connection, bytes per second; 0: unlimited" },
	{ "component", OPT_SIZE, OFF(shaper_config, component), "0", NULL, 0, 1L << 40,
	  "input rate of one external component connection, bytes per second; 0: unlimited" },
	OPT_END
};

static const struct opt_def stream_mgmt_defs[] = {
	{ "enabled", OPT_BOOL, OFF(stream_mgmt_config, enabled), "true", NULL, 0, 0,
	  "offer stream management (XEP-0198) to bound client streams" },
	{ "resume_timeout", OPT_DURATION, OFF(stream_mgmt_config, resume_timeout), "300s", NULL, 0, 0,
	  "how long a resumable session whose connection dropped waits to be resumed; 0: no resumption" },
	{ "max_resume_timeout", OPT_DURATION, OFF(stream_mgmt_config, max_resume_timeout), "1h", NULL, 0, 0,
	  "the longest resume time a client may ask for with max=''" },
	{ "max_unacked", OPT_UINT, OFF(stream_mgmt_config, max_unacked), "1000", NULL, 1, 1000000,
	  "stanzas sent to a client and not acknowledged before its session ends (policy-violation)" },
	{ "ack_interval", OPT_UINT, OFF(stream_mgmt_config, ack_interval), "5", NULL, 1, 1000000,
	  "request an acknowledgement (<r/>) after this many stanzas; an idle stream with "
	  "unacknowledged stanzas is asked every second or so" },
	OPT_END
};

static const struct opt_def fast_defs[] = {
	{ "enabled", OPT_BOOL, OFF(fast_config, enabled), "true", NULL, 0, 0,
	  "offer FAST tokens (XEP-0484) and the HT-SHA-256 mechanisms in SASL2" },
	{ "token_ttl", OPT_DURATION, OFF(fast_config, token_ttl), "14d", NULL, 0, 0,
	  "how long a token stays valid after it is issued" },
	{ "key_file", OPT_STRING, OFF(fast_config, key_file), "fast.key", NULL, 0, 0,
	  "file of the 32-byte key tokens are derived from (made, mode 0600, when missing)" },
	OPT_END
};

static const struct opt_def tls_defs[] = {
	{ "certificate", OPT_STRING, OFF(tls_config, certificate), NULL, NULL, 0, 0,
	  "PEM file: the certificate and its chain" },
	{ "key", OPT_STRING, OFF(tls_config, key), NULL, NULL, 0, 0,
	  "PEM file: the private key (may be the certificate file)" },
	{ "ciphers", OPT_STRING, OFF(tls_config, ciphers), NULL, NULL, 0, 0,
	  "TLS 1.2 cipher list (OpenSSL syntax); unset: OpenSSL's default" },
	{ "min_version", OPT_STRING, OFF(tls_config, min_version), "1.2", NULL, 0, 0,
	  "oldest TLS version accepted: \"1.2\" or \"1.3\"" },
	OPT_END
};

static const char *const listen_module_names[] = { "c2s", "s2s", "component", "http", NULL };
static const char *const starttls_names[] = { "required", "optional", "off", NULL };
_Static_assert(LISTEN_C2S == 0 && LISTEN_S2S == 1 && LISTEN_COMPONENT == 2 && LISTEN_HTTP == 3,
               "listen_module_names follows the LISTEN_ enum");
_Static_assert(STARTTLS_REQUIRED == 0 && STARTTLS_OPTIONAL == 1 && STARTTLS_OFF == 2,
               "starttls_names follows the STARTTLS_ enum");

static const struct opt_def listen_defs[] = {
	{ "port", OPT_UINT, OFF(listen_config, port), NULL, NULL, 1, 65535, "TCP port (required)" },
	{ "address", OPT_STRING, OFF(listen_config, address), "::", NULL, 0, 0,
	  "address to bind; \"::\" is every IPv6 and IPv4 address" },
	{ "module", OPT_ENUM, OFF(listen_config, module), "c2s", listen_module_names, 0, 0,
	  "what the port serves: c2s (clients), s2s (other servers), component (XEP-0114 "
	  "external components) or http (BOSH, WebSocket, administration)" },
	{ "starttls", OPT_ENUM, OFF(listen_config, starttls), "required", starttls_names, 0, 0,
	  "STARTTLS: required, optional or off" },
	{ "direct_tls", OPT_BOOL, OFF(listen_config, direct_tls), "false", NULL, 0, 0,
	  "TLS from the first byte (XEP-0368), usually on port 5223" },
	{ "backlog", OPT_UINT, OFF(listen_config, backlog), "1024", NULL, 1, 65535, "listen(2) backlog" },
	OPT_END
};

/* ---- listen --------------------------------------------------------------- */

int listen_config_load(struct listen_config **listen_r, size_t *count_r, const struct cfg_node *list,
                       const struct cfg_node *root, char **error_r)
{
	if (cfg_is_null(list)) {
		*error_r = cfg_error_at(root, NULL, "listen", "required (a list of at least one listener)");
		return -1;
	}
	if (list->type != CFG_LIST || list->children == NULL) {
		*error_r =
		        cfg_error_at(list, NULL, "listen", "expected a list of at least one listener, got %s",
		                     list->type == CFG_LIST ? "an empty list" : cfg_kind(list));
		return -1;
	}
	size_t count = 0;
	for (const struct cfg_node *c = list->children; c != NULL; c = c->next)
		count++;
	struct listen_config *ls = xcalloc(count, sizeof(*ls));
	*listen_r = ls;
	*count_r = count;
	size_t i = 0;
	for (const struct cfg_node *c = list->children; c != NULL; c = c->next, i++) {
		char *section = xasprintf("listen[%zu]", i);
		struct listen_config *l = &ls[i];
		int ret = -1;
		if (c->type != CFG_MAP) {
			*error_r = cfg_error_at(c, NULL, section, "expected a map, got %s", cfg_kind(c));
		} else if (opt_apply(listen_defs, c, section, l, error_r) < 0) {
			/* message set */
		} else if (cfg_get(c, "port") == NULL) {
			*error_r = cfg_error_at(c, section, "port", "required");
		} else {
			ret = 0;
			l->node = c;
			for (size_t k = 0; k < i; k++) {
				if (ls[k].port == l->port && strcmp(ls[k].address, l->address) == 0) {
					*error_r = cfg_error_at(cfg_get(c, "port"), section, "port",
					                        "listener [%s]:%u is also defined at line %u",
					                        l->address, l->port, ls[k].node->line);
					ret = -1;
					break;
				}
			}
		}
		free(section);
		if (ret < 0)
			return -1;
	}
	return 0;
}

void listen_config_free_all(struct listen_config **listen, size_t count)
{
	if (*listen == NULL)
		return;
	for (size_t i = 0; i < count; i++)
		opt_free(listen_defs, &(*listen)[i]);
	xfree(listen);
}

/* A list item: "- " in place of the indent of its first line. */
void listen_config_dump(const struct listen_config *l, struct buf *out, int indent)
{
	struct buf item = { 0 };
	opt_dump(listen_defs, l, &item, indent + 2);
	if (item.len > 0) {
		buf_printf(out, "%*s- ", indent, "");
		buf_append_str(out, item.data + indent + 2);
	}
	buf_free(&item);
}

/* ---- limits --------------------------------------------------------------- */

int limits_config_load(struct limits_config *l, const struct cfg_node *map, const struct cfg_node *fallback,
                       char **error_r)
{
	if (opt_apply(limits_defs, map, "limits", l, error_r) < 0)
		return -1;
	if (l->max_output < l->max_stanza_size) {
		*error_r =
		        cfg_error_for_key(map, fallback, "limits", "max_output",
		                          "must be at least max_stanza_size (%zu bytes)", l->max_stanza_size);
		return -1;
	}
	if (l->handshake_timeout <= 0) {
		*error_r = cfg_error_for_key(map, fallback, "limits", "handshake_timeout",
		                             "must be more than 0");
		return -1;
	}
	if (l->keepalive <= 0) {
		*error_r = cfg_error_for_key(map, fallback, "limits", "keepalive", "must be more than 0");
		return -1;
	}
	return 0;
}

void limits_config_dump(const struct limits_config *l, struct buf *out, int indent)
{
	opt_dump(limits_defs, l, out, indent);
}

int compression_config_load(struct compression_config *c, const struct cfg_node *map, char **error_r)
{
	return opt_apply(compression_defs, map, "compression", c, error_r);
}

void compression_config_dump(const struct compression_config *c, struct buf *out, int indent)
{
	opt_dump(compression_defs, c, out, indent);
}

int shaper_config_load(struct shaper_config *sh, const struct cfg_node *map, char **error_r)
{
	return opt_apply(shaper_defs, map, "shaper", sh, error_r);
}

void shaper_config_dump(const struct shaper_config *sh, struct buf *out, int indent)
{
	opt_dump(shaper_defs, sh, out, indent);
}

int stream_mgmt_config_load(struct stream_mgmt_config *m, const struct cfg_node *map,
                            const struct cfg_node *fallback, char **error_r)
{
	if (opt_apply(stream_mgmt_defs, map, "stream_management", m, error_r) < 0)
		return -1;
	if (m->max_resume_timeout < m->resume_timeout) {
		*error_r = cfg_error_for_key(map, fallback, "stream_management", "max_resume_timeout",
		                             "must be at least resume_timeout");
		return -1;
	}
	return 0;
}

void stream_mgmt_config_dump(const struct stream_mgmt_config *m, struct buf *out, int indent)
{
	opt_dump(stream_mgmt_defs, m, out, indent);
}

int fast_config_load(struct fast_config *f, const struct cfg_node *map, const struct cfg_node *fallback,
                     const char *dir, char **error_r)
{
	if (opt_apply(fast_defs, map, "fast", f, error_r) < 0 ||
	    cfg_resolve_path(&f->key_file, dir, map, fallback, "fast", "key_file", error_r) < 0)
		return -1;
	if (f->token_ttl < 1) {
		*error_r = cfg_error_for_key(map, fallback, "fast", "token_ttl", "must be at least 1s");
		return -1;
	}
	return 0;
}

void fast_config_free(struct fast_config *f)
{
	opt_free(fast_defs, f);
}

void fast_config_dump(const struct fast_config *f, struct buf *out, int indent)
{
	opt_dump(fast_defs, f, out, indent);
}

/* ---- tls ------------------------------------------------------------------ */

static int check_tls(const struct tls_config *t, const struct cfg_node *map, const struct cfg_node *fallback,
                     const char *section, char **error_r)
{
	if (t->min_version == NULL ||
	    (strcmp(t->min_version, "1.2") != 0 && strcmp(t->min_version, "1.3") != 0)) {
		*error_r = cfg_error_for_key(map, fallback, section, "min_version",
		                             "expected \"1.2\" or \"1.3\", got '%s'",
		                             t->min_version != NULL ? t->min_version : "");
		return -1;
	}
	return 0;
}

void tls_config_defaults(struct tls_config *t)
{
	opt_defaults(tls_defs, t);
}

int tls_config_load(struct tls_config *t, const struct cfg_node *map, const struct cfg_node *fallback,
                    const char *section, const char *dir, char **error_r)
{
	if (opt_apply_over(tls_defs, map, section, t, error_r) < 0 ||
	    check_tls(t, map, fallback, section, error_r) < 0 ||
	    cfg_resolve_path(&t->certificate, dir, map, fallback, section, "certificate", error_r) < 0 ||
	    cfg_resolve_path(&t->key, dir, map, fallback, section, "key", error_r) < 0)
		return -1;
	return 0;
}

void tls_config_copy(struct tls_config *dst, const struct tls_config *src)
{
	opt_copy(tls_defs, dst, src);
}

void tls_config_free(struct tls_config *t)
{
	opt_free(tls_defs, t);
}

void tls_config_dump(const struct tls_config *t, struct buf *out, int indent)
{
	opt_dump(tls_defs, t, out, indent);
}
