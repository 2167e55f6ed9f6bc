/*
 * TLS contexts and the SNI switch.  Runs on the loop thread only.
 *
 * Each distinct certificate gets one SSL_CTX.  A connection starts on the
 * default context; the servername callback moves it to the context of the
 * virtual host it names.
 *
 * TLS 1.3 connections may be resumed with stateless session tickets (one
 * per handshake, encrypted with keys OpenSSL makes at start; a restart
 * invalidates them): a client that comes back after a dropped connection
 * (stream management resumption, a phone changing networks) skips the
 * certificate signature.  Tickets are always encrypted and decrypted with
 * the default context's keys (the SNI switch does not change them), and
 * every context has the same session id context, so a ticket works
 * whichever virtual host the connection ends up on.  TLS 1.2 sessions are
 * never resumed (tickets are refused at decryption, the session cache is
 * off): tls-unique, offered on TLS 1.2 only, would be unsafe on a resumed
 * session without the extended master secret.
 * SSL_MODE_RELEASE_BUFFERS lets idle connections give their record buffers
 * back.
 */
#include "tls.h"
#include "lib/log.h"

#include <assert.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

struct tls_ctx {
	char *name;
	SSL_CTX *ctx;
};

struct sni_entry {
	char *name;
	struct tls_ctx *ctx;
	struct sni_entry *next;
};

static struct sni_entry *sni_list;
static struct tls_ctx *default_ctx;

static const char *tls_last_error(void)
{
	static char msg[256];
	unsigned long e = ERR_get_error();
	if (e == 0)
		return "unknown TLS error";
	ERR_error_string_n(e, msg, sizeof(msg));
	ERR_clear_error();
	return msg;
}

static int tls_servername_cb(SSL *ssl, int *al, void *arg)
{
	const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	if (name == NULL)
		return SSL_TLSEXT_ERR_NOACK;
	for (struct sni_entry *e = sni_list; e != NULL; e = e->next) {
		if (strcasecmp(e->name, name) == 0) {
			if (e->ctx->ctx != SSL_get_SSL_CTX(ssl))
				SSL_set_SSL_CTX(ssl, e->ctx->ctx);
			return SSL_TLSEXT_ERR_OK;
		}
	}
	/* Unknown name: keep the default certificate; the stream header's
	 * 'to' decides later whether the host exists. */
	return SSL_TLSEXT_ERR_NOACK;
}

/* A ticket the client offered was decrypted: resume TLS 1.3 sessions
 * only (see the top). */
static SSL_TICKET_RETURN tls_ticket_decrypted(SSL *ssl, SSL_SESSION *sess, const unsigned char *keyname,
                                              size_t keyname_len, SSL_TICKET_STATUS status, void *arg)
{
	(void)ssl;
	(void)keyname;
	(void)keyname_len;
	(void)arg;
	switch (status) {
	case SSL_TICKET_SUCCESS:
	case SSL_TICKET_SUCCESS_RENEW:
		if (SSL_SESSION_get_protocol_version(sess) < TLS1_3_VERSION)
			return SSL_TICKET_RETURN_IGNORE;
		return status == SSL_TICKET_SUCCESS ? SSL_TICKET_RETURN_USE : SSL_TICKET_RETURN_USE_RENEW;
	case SSL_TICKET_EMPTY:
	case SSL_TICKET_NO_DECRYPT: return SSL_TICKET_RETURN_IGNORE_RENEW;
	default: return SSL_TICKET_RETURN_ABORT;
	}
}

/* tls_ctx_new, with *key_r the key of cfg that failed. */
static int ctx_make(const char *name, const struct tls_config *cfg, struct tls_ctx **ctx_r,
                    const char **key_r, char **error_r)
{
	if (cfg->certificate == NULL || cfg->key == NULL) {
		*key_r = cfg->certificate == NULL ? "certificate" : "key";
		*error_r = xasprintf("host %s: tls.certificate and tls.key are required", name);
		return -1;
	}
	SSL_CTX *c = SSL_CTX_new(TLS_server_method());
	if (c == NULL) {
		*key_r = "certificate";
		*error_r = xasprintf("host %s: SSL_CTX_new: %s", name, tls_last_error());
		return -1;
	}
	int minv = TLS1_2_VERSION;
	if (cfg->min_version != NULL && strcmp(cfg->min_version, "1.3") == 0)
		minv = TLS1_3_VERSION;
	SSL_CTX_set_min_proto_version(c, minv);
	SSL_CTX_set_options(c, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
	                               SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(c, 1);
	SSL_CTX_set_session_ticket_cb(c, NULL, tls_ticket_decrypted, NULL);
	static const unsigned char sid_ctx[] = "parley";
	SSL_CTX_set_session_id_context(c, sid_ctx, sizeof(sid_ctx) - 1);
	SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
	                            SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (cfg->ciphers != NULL && SSL_CTX_set_cipher_list(c, cfg->ciphers) != 1) {
		*key_r = "ciphers";
		*error_r = xasprintf("host %s: tls.ciphers '%s': %s", name, cfg->ciphers, tls_last_error());
		SSL_CTX_free(c);
		return -1;
	}
	if (SSL_CTX_use_certificate_chain_file(c, cfg->certificate) != 1) {
		*key_r = "certificate";
		*error_r = xasprintf("host %s: cannot load certificate %s: %s", name, cfg->certificate,
		                     tls_last_error());
		SSL_CTX_free(c);
		return -1;
	}
	if (SSL_CTX_use_PrivateKey_file(c, cfg->key, SSL_FILETYPE_PEM) != 1) {
		*key_r = "key";
		*error_r = xasprintf("host %s: cannot load key %s: %s", name, cfg->key, tls_last_error());
		SSL_CTX_free(c);
		return -1;
	}
	if (SSL_CTX_check_private_key(c) != 1) {
		*key_r = "key";
		*error_r = xasprintf("host %s: key %s does not match certificate %s", name, cfg->key,
		                     cfg->certificate);
		SSL_CTX_free(c);
		return -1;
	}
	SSL_CTX_set_tlsext_servername_callback(c, tls_servername_cb);
	struct tls_ctx *t = xcalloc(1, sizeof(*t));
	t->name = xstrdup(name);
	t->ctx = c;
	*ctx_r = t;
	return 0;
}

int tls_ctx_new(const char *name, const struct tls_config *cfg, struct tls_ctx **ctx_r, char **error_r)
{
	const char *key;
	return ctx_make(name, cfg, ctx_r, &key, error_r);
}

int tls_config_check(const char *name, const struct tls_config *cfg, const char **key_r, char **error_r)
{
	struct tls_ctx *ctx;
	if (ctx_make(name, cfg, &ctx, key_r, error_r) < 0)
		return -1;
	tls_ctx_free(&ctx);
	return 0;
}

void tls_ctx_free(struct tls_ctx **ctx)
{
	if (*ctx == NULL)
		return;
	SSL_CTX_free((*ctx)->ctx);
	free((*ctx)->name);
	xfree(ctx);
}

void tls_sni_add(const char *server_name, struct tls_ctx *ctx)
{
	struct sni_entry *e = xcalloc(1, sizeof(*e));
	e->name = xstrdup(server_name);
	e->ctx = ctx;
	e->next = sni_list;
	sni_list = e;
	if (default_ctx == NULL)
		default_ctx = ctx;
}

void tls_sni_remove(const char *server_name)
{
	for (struct sni_entry **pp = &sni_list; *pp != NULL; pp = &(*pp)->next) {
		struct sni_entry *e = *pp;
		if (strcasecmp(e->name, server_name) == 0) {
			*pp = e->next;
			free(e->name);
			free(e);
			return;
		}
	}
}

void tls_sni_clear(void)
{
	while (sni_list != NULL) {
		struct sni_entry *e = sni_list;
		sni_list = e->next;
		free(e->name);
		free(e);
	}
	default_ctx = NULL;
}

bool tls_available(void)
{
	return default_ctx != NULL;
}

SSL *tls_new_server(int fd)
{
	if (default_ctx == NULL)
		return NULL;
	SSL *ssl = SSL_new(default_ctx->ctx);
	if (ssl == NULL) {
		log_error("SSL_new: %s", tls_last_error());
		return NULL;
	}
	SSL_set_fd(ssl, fd);
	SSL_set_accept_state(ssl);
	SSL_set_read_ahead(ssl, 1);
	return ssl;
}

/* RFC 5929 §4.1: the hash function of tls-server-end-point for our
 * certificate: that of its signature, SHA-256 when that is MD5 or SHA-1.
 * A signature without a separate hash (Ed25519, RSA-PSS) leaves the type
 * undefined here (NULL).  A table look-up, no hashing. */
static const EVP_MD *server_end_point_md(SSL *ssl, X509 **cert_r)
{
	X509 *cert = SSL_get_certificate(ssl);
	int md_nid = NID_undef, pk_nid = NID_undef;
	if (cert == NULL || OBJ_find_sigid_algs(X509_get_signature_nid(cert), &md_nid, &pk_nid) != 1)
		return NULL;
	const EVP_MD *md;
	if (md_nid == NID_md5 || md_nid == NID_sha1)
		md = EVP_sha256();
	else if (md_nid == NID_undef)
		return NULL;
	else
		md = EVP_get_digestbynid(md_nid);
	if (md == NULL || EVP_MD_get_size(md) <= 0 || EVP_MD_get_size(md) > TLS_CBIND_MAX_DATA)
		return NULL;
	*cert_r = cert;
	return md;
}

static size_t server_end_point(SSL *ssl, unsigned char *out, size_t out_size)
{
	X509 *cert = NULL;
	const EVP_MD *md = server_end_point_md(ssl, &cert);
	unsigned int n = 0;
	if (md == NULL || (size_t)EVP_MD_get_size(md) > out_size || X509_digest(cert, md, out, &n) != 1)
		return 0;
	return n;
}

size_t tls_channel_binding_type(SSL *ssl, const char *type, unsigned char *out, size_t out_size)
{
	if (ssl == NULL || out_size < TLS_CBIND_MAX_DATA || !SSL_is_init_finished(ssl))
		return 0;
	bool tls13 = SSL_version(ssl) >= TLS1_3_VERSION;
	if (strcmp(type, "tls-exporter") == 0) {
		/* RFC 9266 §2: label "EXPORTER-Channel-Binding", no context,
		 * 32 bytes. */
		static const char label[] = "EXPORTER-Channel-Binding";
		if (!tls13 ||
		    SSL_export_keying_material(ssl, out, 32, label, sizeof(label) - 1, NULL, 0, 0) != 1)
			return 0;
		return 32;
	}
	if (strcmp(type, "tls-server-end-point") == 0)
		return server_end_point(ssl, out, out_size);
	if (strcmp(type, "tls-unique") == 0) {
		/* RFC 5929 §3: the first Finished of the handshake, the
		 * client's in a full handshake (TLS 1.2 is never resumed). */
		if (tls13)
			return 0;
		size_t n = SSL_get_peer_finished(ssl, out, out_size);
		return n > out_size ? 0 : n;
	}
	return 0;
}

size_t tls_channel_binding_types(SSL *ssl, const char **types_r)
{
	/* Which types tls_channel_binding_type would answer, without
	 * deriving or hashing anything: the features of every stream ask
	 * this several times, and the data is needed only by a -PLUS or HT
	 * exchange that names its type. */
	if (ssl == NULL || !SSL_is_init_finished(ssl))
		return 0;
	bool tls13 = SSL_version(ssl) >= TLS1_3_VERSION;
	X509 *cert = NULL;
	size_t n = 0;
	if (tls13)
		types_r[n++] = "tls-exporter";
	if (server_end_point_md(ssl, &cert) != NULL)
		types_r[n++] = "tls-server-end-point";
	if (!tls13) {
		size_t len = SSL_get_peer_finished(ssl, NULL, 0);
		if (len > 0 && len <= TLS_CBIND_MAX_DATA)
			types_r[n++] = "tls-unique";
	}
	return n;
}

/* ---- server-to-server --------------------------------------------------------- */

static SSL_CTX *client_ctx;
static X509_STORE *peer_store;

int tls_s2s_init(const char *ca_file, char **error_r)
{
	if (client_ctx != NULL)
		return 0;
	SSL_CTX *c = SSL_CTX_new(TLS_client_method());
	if (c == NULL) {
		*error_r = xasprintf("s2s: SSL_CTX_new: %s", tls_last_error());
		return -1;
	}
	SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
	SSL_CTX_set_options(c, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET);
	SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
	                            SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_verify(c, SSL_VERIFY_NONE, NULL); /* checked after the handshake */
	X509_STORE *st = X509_STORE_new();
	if (X509_STORE_set_default_paths(st) != 1)
		ERR_clear_error(); /* no system CAs: ca_file may still do */
	if (ca_file != NULL && X509_STORE_load_file(st, ca_file) != 1) {
		*error_r = xasprintf("s2s.ca_file %s: %s", ca_file, tls_last_error());
		X509_STORE_free(st);
		SSL_CTX_free(c);
		return -1;
	}
	client_ctx = c;
	peer_store = st;
	return 0;
}

void tls_s2s_shutdown(void)
{
	SSL_CTX_free(client_ctx);
	client_ctx = NULL;
	X509_STORE_free(peer_store);
	peer_store = NULL;
}

SSL *tls_new_client(int fd, const char *server_name, const char *local_name, const char *alpn)
{
	if (client_ctx == NULL)
		return NULL;
	SSL *ssl = SSL_new(client_ctx);
	if (ssl == NULL) {
		log_error("SSL_new: %s", tls_last_error());
		return NULL;
	}
	SSL_set_tlsext_host_name(ssl, server_name);
	if (alpn != NULL) {
		/* wire format: each protocol name preceded by its length */
		unsigned char protos[64];
		size_t len = strlen(alpn);
		assert(len > 0 && len < sizeof(protos));
		protos[0] = (unsigned char)len;
		memcpy(protos + 1, alpn, len);
		if (SSL_set_alpn_protos(ssl, protos, (unsigned)(len + 1)) != 0)
			log_warning("s2s to %s: cannot offer ALPN %s: %s", server_name, alpn,
			            tls_last_error());
	}
	for (struct sni_entry *e = sni_list; e != NULL; e = e->next) {
		if (strcasecmp(e->name, local_name) != 0)
			continue;
		X509 *cert = SSL_CTX_get0_certificate(e->ctx->ctx);
		EVP_PKEY *key = SSL_CTX_get0_privatekey(e->ctx->ctx);
		STACK_OF(X509) *chain = NULL;
		SSL_CTX_get0_chain_certs(e->ctx->ctx, &chain);
		if (cert != NULL && key != NULL) {
			if (SSL_use_certificate(ssl, cert) != 1 || SSL_use_PrivateKey(ssl, key) != 1 ||
			    (chain != NULL && SSL_set1_chain(ssl, chain) != 1))
				log_warning("s2s to %s: cannot present the certificate of %s: %s",
				            server_name, local_name, tls_last_error());
		}
		break;
	}
	SSL_set_fd(ssl, fd);
	SSL_set_connect_state(ssl);
	return ssl;
}

static int accept_any_cert(int ok, X509_STORE_CTX *ctx)
{
	(void)ok;
	(void)ctx;
	return 1; /* checked after the handshake (tls_peer_verified) */
}

void tls_request_peer_certificate(SSL *ssl)
{
	SSL_set_verify(ssl, SSL_VERIFY_PEER | SSL_VERIFY_CLIENT_ONCE, accept_any_cert);
}

bool tls_peer_verified(SSL *ssl, const char *domain, const char **why_r)
{
	static char why[256];
	const char *dummy;
	if (why_r == NULL)
		why_r = &dummy;
	*why_r = "no TLS";
	if (ssl == NULL || peer_store == NULL || !SSL_is_init_finished(ssl))
		return false;
	X509 *cert = SSL_get0_peer_certificate(ssl);
	if (cert == NULL) {
		*why_r = "no certificate";
		return false;
	}
	STACK_OF(X509) *chain = SSL_get_peer_cert_chain(ssl);
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	bool ok = ctx != NULL && X509_STORE_CTX_init(ctx, peer_store, cert, chain) == 1;
	if (ok) {
		X509_VERIFY_PARAM *param = X509_STORE_CTX_get0_param(ctx);
		X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS |
		                                               X509_CHECK_FLAG_NEVER_CHECK_SUBJECT);
		X509_VERIFY_PARAM_set1_host(param, domain, 0);
		ok = X509_verify_cert(ctx) == 1;
		if (!ok) {
			snprintf(why, sizeof(why), "certificate: %s",
			         X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
			*why_r = why;
		}
	} else {
		*why_r = "cannot check the certificate";
	}
	X509_STORE_CTX_free(ctx);
	ERR_clear_error();
	return ok;
}
