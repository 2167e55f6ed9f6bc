/*
 * TLS contexts (OpenSSL): one per certificate, chosen per connection by SNI
 * among the virtual hosts' certificates.  TLS 1.2 or later, no session
 * tickets or session cache (no resumption is offered), buffers released on
 * idle connections.  Loop thread.
 */
#ifndef PARLEY_TLS_H
#define PARLEY_TLS_H

#include <openssl/ssl.h>
#include "config.h"

struct tls_ctx;

/* Load the certificate and key of cfg.  -1 with a malloc'd message. */
int tls_ctx_new(const char *name, const struct tls_config *cfg, struct tls_ctx **ctx_r, char **error_r);
void tls_ctx_free(struct tls_ctx **ctx);
/* Load cfg's certificate, key and ciphers into a context made for the
 * check and freed (config-check, parleyd -t).  -1 with a malloc'd message
 * and *key_r the key of tls that failed ("certificate", "key", "ciphers"). */
int tls_config_check(const char *name, const struct tls_config *cfg, const char **key_r, char **error_r);

/* Register ctx as the certificate for server name (SNI); the first one
 * registered is the default for connections without SNI or unknown names. */
void tls_sni_add(const char *server_name, struct tls_ctx *ctx);
/* Forget server_name (a removed host); its context stays loaded. */
void tls_sni_remove(const char *server_name);
void tls_sni_clear(void);
/* A new server-side SSL object for an accepted socket (default context;
 * switched by the SNI callback).  NULL when no certificate is configured. */
SSL *tls_new_server(int fd);
bool tls_available(void);

/* ---- server-to-server ------------------------------------------------------
 * Outgoing s2s streams are TLS clients; both directions check the peer's
 * certificate themselves after the handshake (tls_peer_verified), so a
 * certificate that does not verify still lets the stream fall back to
 * dialback when policy allows it. */

/* The trust store peer certificates are checked against: the system's
 * default CAs, plus ca_file when not NULL.  Called at start (s2s enabled or
 * an s2s listener); -1 with a malloc'd message. */
int tls_s2s_init(const char *ca_file, char **error_r);
void tls_s2s_shutdown(void);
/* A client-side SSL object for an outgoing stream: SNI server_name, and
 * the certificate of the virtual host local_name (for the peer to check;
 * none when that host has no certificate); alpn, when not NULL, is the
 * one ALPN protocol offered ("xmpp-server" on direct TLS, XEP-0368).
 * NULL when TLS cannot start. */
SSL *tls_new_client(int fd, const char *server_name, const char *local_name, const char *alpn);
/* Ask the peer of a server-side SSL object for its certificate (an
 * incoming s2s stream), without requiring one. */
void tls_request_peer_certificate(SSL *ssl);
/* Whether the peer presented a certificate that verifies against the
 * trust store and names domain (RFC 6125: a subjectAltName dNSName, a
 * wildcard only as the whole left-most label).  domain NULL: the chain
 * only (s2s checks the names itself, server/s2s-cert.h).  *why_r
 * (optional) says why not. */
bool tls_peer_verified(SSL *ssl, const char *domain, const char **why_r);

/* ---- channel binding (RFC 5056) for SCRAM-PLUS ----------------------------
 * The types a connection supports, by its TLS version:
 *   tls-exporter          TLS 1.3 only (RFC 9266; not offered on TLS 1.2,
 *                         where it would need extended master secret)
 *   tls-server-end-point  any version (RFC 5929 §4: hash of our certificate)
 *   tls-unique            TLS 1.2 only (RFC 5929; undefined on TLS 1.3 by
 *                         RFC 9266) */
#define TLS_CBIND_MAX_TYPES 3
#define TLS_CBIND_MAX_DATA 64 /* bytes of the largest binding (SHA-512) */

/* Store in types_r (room for TLS_CBIND_MAX_TYPES) the names of the types
 * this connection supports, strongest first; returns how many.  0 without
 * TLS or before the handshake ended.  Cheap: nothing is derived or hashed
 * (the stream features ask several times per connection). */
size_t tls_channel_binding_types(SSL *ssl, const char **types_r);
/* The data of one named type on this connection into out (out_size at
 * least TLS_CBIND_MAX_DATA); returns the length, or 0 when the type is
 * unknown or not defined for this connection. */
size_t tls_channel_binding_type(SSL *ssl, const char *type, unsigned char *out, size_t out_size);

#endif
