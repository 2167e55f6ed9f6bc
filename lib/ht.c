/*
 * FAST token derivation and the HT mechanism's HMACs (lib/ht.h).  Any
 * thread; no state.  Keys and tokens are the caller's to wipe.
 */
#include "lib/ht.h"
#include "lib/util.h"

#include <string.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

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
	unsigned int mlen = sizeof(mac);
	HMAC(EVP_sha256(), key, HT_KEY_LEN, msg, len, mac, &mlen);
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
	unsigned int mlen = HT_HMAC_LEN;
	HMAC(EVP_sha256(), token, (int)strlen(token), msg, llen + cb_len, out, &mlen);
	free(msg);
}
