/*
 * The computations of FAST (XEP-0484) tokens and of the HT SASL mechanism
 * family (draft-schmaus-kitten-sasl-ht) with SHA-256.  Pure functions, any
 * thread.
 */
#ifndef PARLEY_HT_H
#define PARLEY_HT_H

#include <stddef.h>

#define HT_KEY_LEN 32   /* the server's token key */
#define HT_SEED_LEN 32  /* a token's random seed (what the store keeps) */
#define HT_HMAC_LEN 32  /* HMAC-SHA-256 */
#define HT_TOKEN_LEN 44 /* base64 of HT_HMAC_LEN bytes */

/* The token of a seed: base64(HMAC-SHA-256(key, seed || user "@" host)),
 * written NUL-terminated into token (HT_TOKEN_LEN + 1 bytes).  Wipe it
 * once used. */
void ht_token_derive(const unsigned char key[HT_KEY_LEN], const unsigned char seed[HT_SEED_LEN],
                     const char *user, const char *host, char token[HT_TOKEN_LEN + 1]);

/* HMAC-SHA-256(token, label || cb_data): the initiator's proof with label
 * "Initiator", the responder's additional data with "Responder"; cb_data
 * is the channel binding data of the mechanism (none for -NONE). */
void ht_hmac(const char *token, const char *label, const unsigned char *cb_data, size_t cb_len,
             unsigned char out[HT_HMAC_LEN]);

#endif
