/*
 * FAST (XEP-0484): the server's token key, the HT-SHA-256 mechanisms a
 * connection may use, and the storage work of a token login and of issuing
 * a token.  Loop thread.
 *
 * A token is never stored: the store keeps a random seed per token, and
 * the token is HMAC-SHA-256(key, seed || user@host) (lib/ht.h) with a key
 * kept in a file outside the database (fast.key_file).
 */
#ifndef PARLEY_FAST_H
#define PARLEY_FAST_H

#include <stdbool.h>
#include <stdint.h>
#include <openssl/ssl.h>

#include "lib/ht.h"
#include "lib/xml.h"
#include "storage/storage.h"

#define NS_FAST "urn:xmpp:fast:0"
#define FAST_MAX_MECHS 4

/* Read the key from path, or make it (32 random bytes, mode 0600) when the
 * file does not exist.  -1 and a malloc'd message naming the file when it
 * cannot be read or made, or does not hold exactly 32 bytes. */
int fast_key_load(const char *path, char **error_r);
void fast_key_clear(void);
/* Whether FAST is enabled and its key loaded. */
bool fast_available(void);

/* The HT mechanisms this connection may use: -NONE always, a channel
 * binding variant for each type the connection offers.  Returns their
 * number; names are static. */
size_t fast_mechanisms(SSL *ssl, const char *names[FAST_MAX_MECHS]);
/* For an HT-SHA-256 mechanism name: its static name, and *cbind_r the
 * channel binding type it uses (NULL for -NONE).  NULL for any other name. */
const char *fast_mechanism(const char *mech, const char **cbind_r);
/* <fast xmlns='urn:xmpp:fast:0'> with the mechanisms, into parent (SASL2's
 * <inline/>). */
void fast_add_inline(struct xml_node *parent, SSL *ssl);

/* What the client's <authenticate/> asked of FAST. */
struct fast_request {
	char *ua_id;        /* <user-agent id=''/>, or NULL */
	char *request_mech; /* <request-token mechanism=''/>, or NULL */
	bool has_count;     /* <fast count=''/> */
	uint64_t count;
	bool invalidate; /* <fast invalidate='true'/> */
};
void fast_request_clear(struct fast_request *r);
/* Fill r from the <request-token/> and <fast/> children of a SASL2
 * <authenticate/>; ua_id is its user-agent id (NULL: none).  -1 with
 * *error_r (static, for the log) when they are malformed or a token is
 * asked for without a user-agent id; r is then left empty. */
int fast_request_parse(struct fast_request *r, const struct xml_node *authenticate, const char *ua_id,
                       const char **error_r);
/* Add <token xmlns='urn:xmpp:fast:0' token='' expiry=''/> (expiry an
 * XEP-0082 stamp) to parent. */
void fast_add_token(struct xml_node *parent, const char *token, int64_t expires);

/* FAST_NO_ACCOUNT: the token is good but the store holds no account for
 * the user (fast_job_verify with check_account only).  FAST_EXPIRED: the
 * proof is good for a token of the mechanism that has expired. */
enum fast_result { FAST_OK, FAST_REFUSED, FAST_TEMPFAIL, FAST_NO_ACCOUNT, FAST_EXPIRED };

struct fast_job;
/* One login's FAST work, for user (prepared) of host, on storage st. */
struct fast_job *fast_job_new(struct storage *st, const char *host, const char *user);
void fast_job_free(struct fast_job **j); /* cancels what is in flight */

/* A token login with the HT mechanism mech (static, as fast_mechanism
 * returns it): cb runs later with FAST_OK when proof is
 * HMAC(token, "Initiator" || cb_data) for one of the user's unexpired
 * tokens that was issued for mech and whose count the request does not
 * replay; responder is then HMAC(token, "Responder" || cb_data).
 * FAST_REFUSED with reason ("bad-token", "wrong-mechanism",
 * "replayed-count"); FAST_EXPIRED with "expired-token".  With check_account (the host's accounts are in
 * this store: auth_exists_in_storage) the same storage job reads whether
 * the account exists, and a good token of a user without one gives
 * FAST_NO_ACCOUNT; otherwise the caller asks the auth
 * chain after FAST_OK.  Nothing is written yet. */
typedef void fast_verify_cb(enum fast_result r, const char *reason, const unsigned char *responder,
                            void *ctx);
void fast_job_verify(struct fast_job *j, const char *mech, const unsigned char proof[HT_HMAC_LEN],
                     const unsigned char *cb_data, size_t cb_len, const struct fast_request *req,
                     bool check_account, fast_verify_cb *cb, void *ctx);

/* Whether fast_job_commit has work for this login. */
bool fast_job_needed(const struct fast_job *j, const struct fast_request *req);
/* After a successful login: record the verified token's count, or delete
 * it (invalidate); delete that client's older tokens and expired ones; and
 * with request_mech issue a token for ua_id, keeping beside it only the
 * client's token this login used (a password login: its newest), which
 * the new one replaces once it is first used.  cb runs when all of it is stored:
 * token (NUL-terminated, wiped after cb) and its expiry when one was
 * issued, else NULL. */
typedef void fast_commit_cb(enum fast_result r, const char *token, int64_t expires, void *ctx);
void fast_job_commit(struct fast_job *j, const struct fast_request *req, double ttl, fast_commit_cb *cb,
                     void *ctx);

#endif
