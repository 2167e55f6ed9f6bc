/*
 * The s2s section of the configuration: federation with other XMPP
 * servers (server/s2s.h).  Its option table, checks and dump.  Runs where
 * the configuration is loaded (the loop thread, parleyctl); no state.
 */
#ifndef PARLEY_S2S_CONFIG_H
#define PARLEY_S2S_CONFIG_H

#include "lib/options.h"

/* One entry of the static host map: remote domain -> address and port. */
struct s2s_static_host {
	char *domain;  /* prepared (lower case) */
	char *address; /* numeric IPv4 or IPv6 address */
	unsigned port;
	bool direct_tls; /* "tls://": TLS from the first byte (XEP-0368) */
};

struct s2s_config {
	bool enabled;                   /* route remote domains to other servers (false) */
	bool require_tls;               /* STARTTLS on every s2s stream, both ways (true) */
	bool dialback;                  /* XEP-0220 dialback allowed (true) */
	bool require_valid_certificate; /* peers must present a certificate that verifies (false) */
	bool bidi;                  /* XEP-0288 bidirectional streams when both certificates verify (true) */
	bool dane;                  /* check outgoing peers against DNSSEC-secure TLSA records (false) */
	bool multiplex;             /* further local domains piggyback on an open stream (true) */
	char *ca_file;              /* CA bundle for peer certificates (NULL: the system's) */
	char *dialback_secret_file; /* secret of the dialback keys (NULL: random at start) */
	unsigned max_queue;         /* stanzas queued per connection while it opens (100) */
	double connect_timeout;     /* from resolution to an authenticated stream (15 s) */
	double connect_delay;       /* Happy Eyeballs: next address after this (250 ms) */
	double idle_timeout;        /* an unused connection closes after this (10 min) */
	double backoff;             /* first wait after a failed connection (5 s) */
	double max_backoff;         /* longest wait (10 min) */
	unsigned max_pending_dialback;   /* dialback requests in flight per incoming stream (8) */
	unsigned max_connections_per_ip; /* incoming s2s connections from one address (16; 0: no limit) */
	struct strlist allow;            /* if not empty: only these remote domains */
	struct strlist deny;             /* never these remote domains */
	struct strlist dns_servers;      /* "address[:port]" for c-ares (empty: resolv.conf's) */
	const struct cfg_node *hosts;    /* the static map as written */
	struct s2s_static_host *static_hosts;
	size_t nstatic_hosts;
};

/* Read the s2s map (NULL: defaults, s2s disabled); ca_file and
 * dialback_secret_file are made absolute relative to dir.  -1 and a
 * malloc'd *error_r naming file, line and key. */
int s2s_config_load(struct s2s_config *c, const struct cfg_node *map, const struct cfg_node *fallback,
                    const char *dir, char **error_r);
void s2s_config_free(struct s2s_config *c);
void s2s_config_dump(const struct s2s_config *c, struct buf *out, int indent);
/* The static map entry of domain, or NULL. */
const struct s2s_static_host *s2s_config_static(const struct s2s_config *c, const char *domain);
/* Whether policy lets us talk with domain (allow and deny lists). */
bool s2s_config_allowed(const struct s2s_config *c, const char *domain);

#endif
