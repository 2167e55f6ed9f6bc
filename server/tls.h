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

/* Channel binding data for SCRAM-PLUS: tls-exporter on TLS 1.3, tls-unique
 * on TLS 1.2.  Writes the type name and up to 64 bytes; returns the length,
 * or 0 when none is available. */
size_t tls_channel_binding(SSL *ssl, const char **type_r, unsigned char *out, size_t out_size);
/* The data of one named type ("tls-exporter" or "tls-unique"); 0 when
 * unavailable.  tls-unique is the client's first Finished message, which
 * OpenSSL keeps on TLS 1.3 too: clients that use it there interoperate. */
size_t tls_channel_binding_type(SSL *ssl, const char *type, unsigned char *out, size_t out_size);

#endif
