/*
 * The network side of the configuration: the listen list, the limits
 * section (every stream's resource limits) and the tls section (global,
 * overridden key by key under a host): their settings, tables and checks.
 * server/config.c assembles them.  Runs where the configuration is loaded
 * (the loop thread, parleyctl).
 */
#ifndef PARLEY_LISTEN_CONFIG_H
#define PARLEY_LISTEN_CONFIG_H

#include "lib/options.h"

struct listen_config {
	char *address; /* "::" (default: all IPv4 and IPv6), "127.0.0.1", ... */
	unsigned port;
	int module;       /* LISTEN_C2S, LISTEN_S2S, LISTEN_COMPONENT, LISTEN_HTTP */
	bool direct_tls;  /* XEP-0368: TLS from the first byte */
	int starttls;     /* STARTTLS_REQUIRED (default), STARTTLS_OPTIONAL, STARTTLS_OFF */
	unsigned backlog; /* default 1024 */
	const struct cfg_node *node;
};
enum { LISTEN_C2S, LISTEN_S2S, LISTEN_COMPONENT, LISTEN_HTTP, LISTEN_KINDS };
enum { STARTTLS_REQUIRED, STARTTLS_OPTIONAL, STARTTLS_OFF };

struct tls_config {
	char *certificate; /* PEM: certificate (and chain) */
	char *key;         /* PEM private key (may be the same file) */
	char *ciphers;     /* TLS 1.2 cipher list (OpenSSL syntax) */
	char *min_version; /* "1.2" (default) or "1.3" */
};

struct limits_config {
	size_t max_stanza_size;         /* 256K */
	unsigned max_depth;             /* 64 */
	unsigned max_attrs;             /* 64 */
	size_t max_output;              /* per-stream output queue a stream must read, 1M (stream.h) */
	unsigned max_conn_per_ip;       /* 0: unlimited; default 64 (detached sessions count) */
	unsigned max_sessions_per_user; /* sessions of one account, bound or detached (50; 0: no limit) */
	double handshake_timeout;       /* from accept to bound session, 60 s */
	double idle_timeout;            /* no input at all for this long: close (0: never); 600 s */
	double keepalive;               /* send whitespace after this much output silence; 60 s */
	unsigned auth_attempts;         /* failed SASL attempts per stream before closing (3) */
	double auth_failure_delay;      /* seconds before a failure is answered (1.0) */
};

/* Stream compression (XEP-0138) of client streams: the compression
 * section.  Off by default: compression under TLS leaks secrets. */
struct compression_config {
	bool enabled; /* offer zlib to authenticated client TCP streams (false) */
	bool s2s;     /* offer it on s2s streams and ask for it on ours (false) */
};

/* Input rate limits per connection, bytes per second (0: unlimited): the
 * shaper section. */
struct shaper_config {
	size_t c2s;       /* client streams (0) */
	size_t s2s;       /* server-to-server streams (0) */
	size_t component; /* external components (0) */
};

/* Stream management (XEP-0198) of client streams: the stream_management
 * section. */
struct stream_mgmt_config {
	bool enabled;              /* offer <sm xmlns='urn:xmpp:sm:3'/> (true) */
	double resume_timeout;     /* a dropped resumable session waits this long (300 s) */
	double max_resume_timeout; /* the most a client's max='' may ask for (3600 s) */
	unsigned max_unacked;      /* unacknowledged stanzas before the session ends (1000) */
	unsigned ack_interval;     /* request an ack after this many stanzas (5) */
};

/* FAST tokens (XEP-0484) for SASL2 logins: the fast section. */
struct fast_config {
	bool enabled;     /* offer tokens and the HT mechanisms (true) */
	double token_ttl; /* a token is valid this long after it is issued (14 days) */
	char *key_file;   /* the 32-byte key tokens derive from ("fast.key" beside the file) */
};

/* The listen list: *listen_r gets an array of *count_r entries (set before
 * any entry is read, so that listen_config_free_all frees what was filled
 * when this fails).  root is where a message points when the list is
 * absent.  -1 and a malloc'd *error_r naming file, line and key. */
int listen_config_load(struct listen_config **listen_r, size_t *count_r, const struct cfg_node *list,
                       const struct cfg_node *root, char **error_r);
void listen_config_free_all(struct listen_config **listen, size_t count);
/* One listener as a YAML list item ("- port: ..."). */
void listen_config_dump(const struct listen_config *l, struct buf *out, int indent);

/* The limits map (defaults first) and its checks; fallback as above. */
int limits_config_load(struct limits_config *l, const struct cfg_node *map, const struct cfg_node *fallback,
                       char **error_r);
void limits_config_dump(const struct limits_config *l, struct buf *out, int indent);
/* The compression and shaper maps; as limits_config_load. */
int compression_config_load(struct compression_config *c, const struct cfg_node *map, char **error_r);
void compression_config_dump(const struct compression_config *c, struct buf *out, int indent);
int shaper_config_load(struct shaper_config *sh, const struct cfg_node *map, char **error_r);
void shaper_config_dump(const struct shaper_config *sh, struct buf *out, int indent);

/* The stream_management map (defaults first) and its checks. */
int stream_mgmt_config_load(struct stream_mgmt_config *m, const struct cfg_node *map,
                            const struct cfg_node *fallback, char **error_r);
void stream_mgmt_config_dump(const struct stream_mgmt_config *m, struct buf *out, int indent);

/* The fast map (defaults first), key_file made absolute relative to dir. */
int fast_config_load(struct fast_config *f, const struct cfg_node *map, const struct cfg_node *fallback,
                     const char *dir, char **error_r);
void fast_config_free(struct fast_config *f);
void fast_config_dump(const struct fast_config *f, struct buf *out, int indent);

/* The built-in tls defaults. */
void tls_config_defaults(struct tls_config *t);
/* Apply a tls map over what t holds (the defaults, or the global section
 * for a host), check it and make its paths absolute relative to dir;
 * section names the map in messages ("tls", "hosts.NAME.tls"). */
int tls_config_load(struct tls_config *t, const struct cfg_node *map, const struct cfg_node *fallback,
                    const char *section, const char *dir, char **error_r);
void tls_config_copy(struct tls_config *dst, const struct tls_config *src);
void tls_config_free(struct tls_config *t);
void tls_config_dump(const struct tls_config *t, struct buf *out, int indent);

#endif
