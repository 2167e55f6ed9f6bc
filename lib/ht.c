/*
 * FAST token derivation and the HT mechanism's HMACs (lib/ht.h).  Any
 * thread.  Keys and tokens are the caller's to wipe.
 *
 * The only state is an HMAC-SHA-256 context without a key, made once
 * (pthread_once) and never changed after: each HMAC starts from a copy of
 * it, so OpenSSL 3 does not look the HMAC and SHA-256 implementations up
 * again (HMAC() fetches both on every call, a measurable part of a FAST
 * login).
 */
#include "lib/ht.h"
#include "lib/util.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

static EVP_MAC_CTX *hmac_template;
static pthread_once_t hmac_once = PTHREAD_ONCE_INIT;

static void hmac_template_make(void)
{
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *ctx = mac != NULL ? EVP_MAC_CTX_new(mac) : NULL;
	OSSL_PARAM params[] = { OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
		                OSSL_PARAM_construct_end() };
	if (ctx != NULL && EVP_MAC_CTX_set_params(ctx, params) != 1) {
		EVP_MAC_CTX_free(ctx);
		ctx = NULL;
	}
	EVP_MAC_free(mac); /* the context keeps its own reference */
	hmac_template = ctx;
}

/* HMAC-SHA-256(key, msg) into out (HT_HMAC_LEN bytes). */
static void hmac_sha256(const void *key, size_t key_len, const unsigned char *msg, size_t len,
                        unsigned char out[HT_HMAC_LEN])
{
	pthread_once(&hmac_once, hmac_template_make);
	EVP_MAC_CTX *ctx = hmac_template != NULL ? EVP_MAC_CTX_dup(hmac_template) : NULL;
	size_t olen = 0;
	bool ok = ctx != NULL && EVP_MAC_init(ctx, key, key_len, NULL) == 1 &&
	          EVP_MAC_update(ctx, msg, len) == 1 && EVP_MAC_final(ctx, out, &olen, HT_HMAC_LEN) == 1 &&
	          olen == HT_HMAC_LEN;
	EVP_MAC_CTX_free(ctx); /* wipes the keyed state */
	/* The default provider always has HMAC-SHA-256; without it no
	 * token could be checked at all. */
	if (!ok)
		abort();
}

void ht_token_derive(const unsigned char key[HT_KEY_LEN], const unsigned char seed[HT_SEED_LEN],
                     const char *user, const char *host, char token[HT_TOKEN_LEN + 1])
{
	size_t ulen = strlen(user), hlen = strlen(host);
	size_t len = HT_SEED_LEN + ulen + 1 + hlen;
	unsigned char *msg = xmalloc(len);
	memcpy(msg, seed, HT_SEED_LEN);
	memcpy(msg + HT_SEED_LEN, user, ulen);
	msg[HT_SEED_LEN + ulen] = '@';
	memcpy(msg + HT_SEED_LEN + ulen + 1, host, hlen);
	unsigned char mac[HT_HMAC_LEN];
	hmac_sha256(key, HT_KEY_LEN, msg, len, mac);
	free(msg);
	char *b64 = base64_encode(mac, sizeof(mac));
	memcpy(token, b64, HT_TOKEN_LEN);
	token[HT_TOKEN_LEN] = '\0';
	explicit_bzero(b64, HT_TOKEN_LEN);
	free(b64);
	explicit_bzero(mac, sizeof(mac));
}

void ht_hmac(const char *token, const char *label, const unsigned char *cb_data, size_t cb_len,
             unsigned char out[HT_HMAC_LEN])
{
	size_t llen = strlen(label);
	unsigned char *msg = xmalloc(llen + cb_len + 1);
	memcpy(msg, label, llen);
	if (cb_len > 0)
		memcpy(msg + llen, cb_data, cb_len);
	hmac_sha256(token, strlen(token), msg, llen + cb_len, out);
	free(msg);
}
