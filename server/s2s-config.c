/*
 * The s2s section: its option table (keys, defaults, docs), the static
 * host map and the checks the table cannot express.  Runs where the
 * configuration is loaded (the loop thread, parleyctl); no state.
 *
 * Invariants: every static map entry has a prepared domain, a numeric
 * address and a port; paths are absolute; backoff <= max_backoff.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "server/s2s-config.h"

#define OFF(st, field) offsetof(struct st, field)

static const struct opt_def s2s_defs[] = {
	{ "enabled", OPT_BOOL, OFF(s2s_config, enabled), "false", NULL, 0, 0,
	  "send stanzas for domains not served here to their servers (an s2s listener takes "
	  "theirs)" },
	{ "require_tls", OPT_BOOL, OFF(s2s_config, require_tls), "true", NULL, 0, 0,
	  "every s2s stream, in and out, must be encrypted with STARTTLS" },
	{ "dialback", OPT_BOOL, OFF(s2s_config, dialback), "true", NULL, 0, 0,
	  "authenticate servers by dialback (XEP-0220) when their certificate does not do it" },
	{ "require_valid_certificate", OPT_BOOL, OFF(s2s_config, require_valid_certificate), "false", NULL, 0,
	  0, "refuse peers whose certificate does not verify for their domain (no dialback)" },
	{ "bidi", OPT_BOOL, OFF(s2s_config, bidi), "true", NULL, 0, 0,
	  "one stream carries both directions (XEP-0288) when both certificates verify" },
	{ "dane", OPT_BOOL, OFF(s2s_config, dane), "false", NULL, 0, 0,
	  "check the certificates of servers we connect to against their DNSSEC-secure TLSA records "
	  "(DANE-EE, DANE-TA); the AD bit is trusted only from DNS servers on loopback, which must "
	  "validate" },
	{ "multiplex", OPT_BOOL, OFF(s2s_config, multiplex), "true", NULL, 0, 0,
	  "a further local domain reaches a remote one over an outgoing stream already open to it "
	  "(XEP-0220 piggybacking) instead of a connection of its own" },
	{ "ca_file", OPT_STRING, OFF(s2s_config, ca_file), NULL, NULL, 0, 0,
	  "PEM bundle of the CAs peer certificates are checked against; unset: the system's" },
	{ "dialback_secret_file", OPT_STRING, OFF(s2s_config, dialback_secret_file), NULL, NULL, 0, 0,
	  "file holding the secret dialback keys derive from (XEP-0185); unset: random at start" },
	{ "max_queue", OPT_UINT, OFF(s2s_config, max_queue), "100", NULL, 1, 1000000,
	  "stanzas a connection queues while it opens; more bounce with resource-constraint" },
	{ "connect_timeout", OPT_DURATION, OFF(s2s_config, connect_timeout), "15s", NULL, 0, 0,
	  "from the start of resolution to an authenticated stream; queued stanzas then bounce "
	  "with remote-server-timeout" },
	{ "connect_delay", OPT_DURATION, OFF(s2s_config, connect_delay), "250ms", NULL, 0, 0,
	  "while a connection attempt is still unanswered, start one to the next address after this "
	  "long and take whichever connects first (RFC 8305 Happy Eyeballs; 0: one at a time)" },
	{ "idle_timeout", OPT_DURATION, OFF(s2s_config, idle_timeout), "10m", NULL, 0, 0,
	  "close an s2s connection after this long without traffic (0: never)" },
	{ "backoff", OPT_DURATION, OFF(s2s_config, backoff), "5s", NULL, 0, 0,
	  "after a failed connection, stanzas for that domain bounce at once for this long, "
	  "doubled at each further failure" },
	{ "max_backoff", OPT_DURATION, OFF(s2s_config, max_backoff), "10m", NULL, 0, 0,
	  "the longest wait between attempts" },
	{ "max_pending_dialback", OPT_UINT, OFF(s2s_config, max_pending_dialback), "8", NULL, 1, 1000,
	  "dialback requests one incoming stream may have in flight; more close it" },
	{ "max_connections_per_ip", OPT_UINT, OFF(s2s_config, max_connections_per_ip), "16", NULL, 0, 1000000,
	  "incoming s2s connections from one address (0: no limit)" },
	{ "allow", OPT_STRLIST, OFF(s2s_config, allow), NULL, NULL, 0, 0,
	  "when set, federate with these domains only" },
	{ "deny", OPT_STRLIST, OFF(s2s_config, deny), NULL, NULL, 0, 0, "never federate with these domains" },
	{ "dns_servers", OPT_STRLIST, OFF(s2s_config, dns_servers), NULL, NULL, 0, 0,
	  "DNS servers for SRV and address lookups, \"address\" or \"address:port\" (\"[v6]:port\"), "
	  "tried in order; unset: those of /etc/resolv.conf" },
	{ "hosts", OPT_NODE, OFF(s2s_config, hosts), NULL, NULL, 0, 0,
	  "static map of remote domain to \"address:port\" (\"[::1]:5269\"; \"tls://...\" for direct "
	  "TLS), used before DNS" },
	OPT_END
};

static char *lower_dup(const char *s)
{
	size_t n = strlen(s);
	if (n > 0 && s[n - 1] == '.')
		n--;
	char *d = xstrndup(s, n);
	for (char *p = d; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return d;
}

/* "address:port" or "[v6]:port" into addr_r (malloc'd) and port_r. */
static int parse_hostport(const char *v, char **addr_r, unsigned *port_r)
{
	const char *colon;
	char *addr;
	if (v[0] == '[') {
		const char *end = strchr(v, ']');
		if (end == NULL || end[1] != ':')
			return -1;
		addr = xstrndup(v + 1, (size_t)(end - v - 1));
		colon = end + 1;
	} else {
		colon = strrchr(v, ':');
		if (colon == NULL || strchr(v, ':') != colon)
			return -1;
		addr = xstrndup(v, (size_t)(colon - v));
	}
	unsigned char sa[16];
	char *endp;
	long port = strtol(colon + 1, &endp, 10);
	if (*endp != '\0' || port < 1 || port > 65535 ||
	    (inet_pton(AF_INET, addr, sa) != 1 && inet_pton(AF_INET6, addr, sa) != 1)) {
		free(addr);
		return -1;
	}
	*addr_r = addr;
	*port_r = (unsigned)port;
	return 0;
}

/* A DNS server entry ("address", or "address:port" parsed into addr) on
 * loopback? */
static bool loopback_server(const char *v, const char *addr)
{
	const char *a = addr != NULL ? addr : v;
	struct in_addr a4;
	struct in6_addr a6;
	if (inet_pton(AF_INET, a, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	return inet_pton(AF_INET6, a, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

int s2s_config_load(struct s2s_config *c, const struct cfg_node *map, const struct cfg_node *fallback,
                    const char *dir, char **error_r)
{
	memset(c, 0, sizeof(*c));
	if (opt_apply(s2s_defs, map, "s2s", c, error_r) < 0)
		return -1;
	if (cfg_resolve_path(&c->ca_file, dir, map, fallback, "s2s", "ca_file", error_r) < 0 ||
	    cfg_resolve_path(&c->dialback_secret_file, dir, map, fallback, "s2s", "dialback_secret_file",
	                     error_r) < 0)
		return -1;
	if (c->backoff <= 0 || c->max_backoff < c->backoff) {
		*error_r = cfg_error_for_key(map, fallback, "s2s", "backoff",
		                             "must be more than 0 and at most max_backoff");
		return -1;
	}
	if (c->connect_timeout <= 0) {
		*error_r = cfg_error_for_key(map, fallback, "s2s", "connect_timeout", "must be more than 0");
		return -1;
	}
	if (!c->dialback && !c->require_valid_certificate) {
		/* Nothing else could authenticate a peer without a valid
		 * certificate: say so rather than fail every connection. */
		c->require_valid_certificate = true;
	}
	for (size_t i = 0; i < c->dns_servers.count; i++) {
		const char *v = c->dns_servers.items[i];
		unsigned char sa[16];
		char *addr = NULL;
		unsigned port;
		if (inet_pton(AF_INET, v, sa) != 1 && inet_pton(AF_INET6, v, sa) != 1 &&
		    parse_hostport(v, &addr, &port) < 0) {
			char *m = cfg_value_for_msg(v);
			*error_r = cfg_error_for_key(map, fallback, "s2s", "dns_servers",
			                             "expected numeric \"address\" or \"address:port\" "
			                             "(\"127.0.0.1:5353\", \"[::1]:53\"), got '%s'",
			                             m);
			free(m);
			return -1;
		}
		if (c->dane && !loopback_server(v, addr)) {
			char *m = cfg_value_for_msg(v);
			*error_r = cfg_error_for_key(map, fallback, "s2s", "dns_servers",
			                             "s2s.dane trusts the AD bit only from a validating "
			                             "resolver on loopback (127.0.0.1, ::1), got '%s'",
			                             m);
			free(m);
			free(addr);
			return -1;
		}
		free(addr);
	}
	for (size_t i = 0; i < c->allow.count; i++) {
		char *l = lower_dup(c->allow.items[i]);
		free(c->allow.items[i]);
		c->allow.items[i] = l;
	}
	for (size_t i = 0; i < c->deny.count; i++) {
		char *l = lower_dup(c->deny.items[i]);
		free(c->deny.items[i]);
		c->deny.items[i] = l;
	}
	if (c->hosts == NULL || cfg_is_null(c->hosts))
		return 0;
	if (c->hosts->type != CFG_MAP) {
		*error_r = cfg_error_at(c->hosts, "s2s", "hosts",
		                        "expected a map of domain to \"address:port\", got %s",
		                        cfg_kind(c->hosts));
		return -1;
	}
	size_t n = 0;
	for (const struct cfg_node *e = c->hosts->children; e != NULL; e = e->next)
		n++;
	c->static_hosts = xcalloc(n > 0 ? n : 1, sizeof(*c->static_hosts));
	for (const struct cfg_node *e = c->hosts->children; e != NULL; e = e->next) {
		struct s2s_static_host *h = &c->static_hosts[c->nstatic_hosts];
		const char *hp = e->type == CFG_SCALAR ? e->value : "";
		if (str_has_prefix(hp, "tls://")) {
			h->direct_tls = true;
			hp += 6;
		} else if (str_has_prefix(hp, "tcp://")) {
			hp += 6;
		}
		if (e->type != CFG_SCALAR || cfg_is_null(e) ||
		    parse_hostport(hp, &h->address, &h->port) < 0) {
			char *v = e->type == CFG_SCALAR ? cfg_value_for_msg(e->value) : NULL;
			*error_r = cfg_error_at(e, "s2s.hosts", e->key,
			                        "expected \"address:port\" with a numeric address "
			                        "(\"192.0.2.1:5269\", \"[2001:db8::1]:5269\", "
			                        "\"tls://192.0.2.1:5270\" for direct TLS), got '%s'",
			                        v != NULL ? v : cfg_kind(e));
			free(v);
			return -1;
		}
		h->domain = lower_dup(e->key);
		c->nstatic_hosts++;
	}
	return 0;
}

void s2s_config_free(struct s2s_config *c)
{
	for (size_t i = 0; i < c->nstatic_hosts; i++) {
		free(c->static_hosts[i].domain);
		free(c->static_hosts[i].address);
	}
	free(c->static_hosts);
	c->static_hosts = NULL;
	c->nstatic_hosts = 0;
	opt_free(s2s_defs, c);
}

void s2s_config_dump(const struct s2s_config *c, struct buf *out, int indent)
{
	opt_dump(s2s_defs, c, out, indent);
}

const struct s2s_static_host *s2s_config_static(const struct s2s_config *c, const char *domain)
{
	for (size_t i = 0; i < c->nstatic_hosts; i++)
		if (strcasecmp(c->static_hosts[i].domain, domain) == 0)
			return &c->static_hosts[i];
	return NULL;
}

bool s2s_config_allowed(const struct s2s_config *c, const char *domain)
{
	if (strlist_contains(&c->deny, domain))
		return false;
	return c->allow.count == 0 || strlist_contains(&c->allow, domain);
}
