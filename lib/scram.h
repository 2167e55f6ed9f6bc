/*
 * SCRAM (RFC 5802, RFC 7677) for the server: credential derivation and the
 * server side of one exchange, with channel binding (any type the caller
 * supplies: tls-exporter, tls-server-end-point, tls-unique) for the -PLUS
 * variants and the XEP-0474 downgrade protection attribute.  Pure computation; thread-safe.
 */
#ifndef PARLEY_SCRAM_H
#define PARLEY_SCRAM_H

#include "util.h"

enum scram_hash { SCRAM_SHA1, SCRAM_SHA256, SCRAM_SHA512 };
#define SCRAM_MAX_HASH 64 /* bytes of the largest digest */
#define SCRAM_DEFAULT_ITERATIONS 4096

size_t scram_hash_len(enum scram_hash h);
const char *scram_hash_name(enum scram_hash h); /* "SHA-1", "SHA-256", "SHA-512" */

/* What the store keeps for one user and one hash. */
struct scram_credentials {
	enum scram_hash hash;
	unsigned iterations;
	char *salt_b64; /* base64 of the salt */
	unsigned char stored_key[SCRAM_MAX_HASH];
	unsigned char server_key[SCRAM_MAX_HASH];
};

/* Derive credentials from a password (already SASLprep'd by the caller or
 * not: see scram_saslprep).  salt NULL: 16 random bytes.  iterations 0: the
 * default.  Returns 0, or -1 if the password cannot be prepared. */
int scram_derive(enum scram_hash h, const char *password, const unsigned char *salt, size_t salt_len,
                 unsigned iterations, struct scram_credentials *out);
/* Credentials from SaltedPassword (scram_hash_len(h) bytes), as a client
 * computed it with this salt and iteration count (XEP-0480 upgrades). */
void scram_from_salted(enum scram_hash h, const unsigned char *salted, const unsigned char *salt,
                       size_t salt_len, unsigned iterations, struct scram_credentials *out);
void scram_credentials_clear(struct scram_credentials *c); /* wipes keys */

/* SASLprep (RFC 4013, libidn's stringprep profile) of a password into a
 * malloc'd string; NULL when the string is prohibited. */
char *scram_saslprep(const char *s);

/* ---- the server side of one exchange ----------------------------------- */
enum scram_step {
	SCRAM_CONTINUE, /* send *out_r as <challenge/> and wait for a response */
	SCRAM_SUCCESS,  /* send *out_r as additional data in <success/> */
	SCRAM_FAIL,     /* fail with *error_r ("malformed-request", "not-authorized", ...) */
};

struct scram_server;
/* plus: the -PLUS mechanism.  cbind_type: for -PLUS, the channel binding
 * type the client names in its gs2 header ("p=<type>"), or NULL when the
 * client names none; cbind_data: that type's data on this connection, NULL
 * when the connection does not support the type (the exchange then fails
 * with "unsupported-channel-binding-type").
 * y_is_downgrade: whether a client flag 'y' ("I can bind, but I think you
 * cannot") means the mechanism list was tampered with and must fail; the
 * caller decides from what it offered (see server/sasl.c). */
struct scram_server *scram_server_new(enum scram_hash h, bool plus, const char *cbind_type,
                                      const unsigned char *cbind_data, size_t cbind_len, bool y_is_downgrade);
void scram_server_free(struct scram_server **s);

/* Step 1: parse the client-first message.  On SCRAM_CONTINUE the caller must
 * look up the credentials of *username_r (SASLprep'd, "=2C"/"=3D" decoded,
 * owned by the server object) and call scram_server_challenge. */
enum scram_step scram_server_client_first(struct scram_server *s, const char *msg, size_t len,
                                          const char **username_r, const char **error_r);
/* Step 2: with the user's credentials (NULL when the user is unknown: a fake
 * but indistinguishable challenge is produced), build server-first. */
enum scram_step scram_server_challenge(struct scram_server *s, const struct scram_credentials *cred,
                                       char **out_r, size_t *out_len_r);
/* Step 3: verify client-final; on success *out_r is server-final ("v=..."). */
enum scram_step scram_server_client_final(struct scram_server *s, const char *msg, size_t len, char **out_r,
                                          size_t *out_len_r, const char **error_r);
/* The authorization identity the client asked for ("a=" field), or NULL. */
const char *scram_server_authzid(const struct scram_server *s);

/* XEP-0474 (SASL SCRAM Downgrade Protection): advertised is the string S
 * of what the server advertised (sorted mechanisms joined by 0x1E, then
 * 0x1F and the sorted channel binding types when XEP-0440 was used); its
 * hash (with this exchange's hash function, base64) goes into server-first
 * as the attribute "h".  Call before scram_server_challenge. */
void scram_server_set_ssdp(struct scram_server *s, const char *advertised, size_t len);

/* Test hook: use this server nonce instead of a random one. */
void scram_server_set_nonce(struct scram_server *s, const char *nonce);

#endif
