/*
 * SASL for client streams: which mechanisms to offer and one exchange at a
 * time (PLAIN, SCRAM-SHA-1, SCRAM-SHA-256 and their -PLUS variants,
 * ANONYMOUS where the host allows it) over the
 * host's auth chain.  Loop thread.
 */
#ifndef PARLEY_SASL_H
#define PARLEY_SASL_H

#include <openssl/ssl.h>
#include "lib/xml.h"
#include "auth/auth.h"
#include "server/fast.h"

#define NS_SASL2 "urn:xmpp:sasl:2" /* XEP-0388 */
#define NS_BIND2 "urn:xmpp:bind:0" /* XEP-0386 */
#define NS_CARBONS "urn:xmpp:carbons:2"
#define NS_CSI "urn:xmpp:csi:0" /* XEP-0352 */

enum sasl_status {
	SASL_CHALLENGE, /* send out as <challenge/>, wait for <response/> */
	SASL_SUCCESS,   /* send out (may be empty) in <success/> */
	SASL_FAILURE,   /* send <failure><condition/></failure> */
	SASL_PENDING,   /* the answer comes later through the callback */
};

struct sasl_result {
	enum sasl_status status;
	char *data; /* raw bytes (base64 encoding is the caller's), malloc'd */
	size_t len;
	const char *condition; /* SASL failure condition: "not-authorized", ... */
	bool tempfail;         /* the backend could not answer (not a wrong password) */
	/* A failed login, for the "auth failed" log line and the limits:
	 * "bad-password", "unknown-user", "rate-limited", "bad-username"...;
	 * NULL for failures that are no login attempt (malformed, aborted). */
	const char *reason;
	bool limited; /* refused by the failed-login limits (not counted again) */
	/* A refusal that is no login attempt (reason NULL) may say why here,
	 * for the log: a SCRAM channel binding error such as
	 * "unsupported-channel-binding-type", or "expired-token" (a FAST
	 * token that was good, answered <credentials-expired/>); NULL
	 * otherwise. */
	const char *detail;
	/* The account exists but has no credentials for this SCRAM hash (an
	 * account imported with SCRAM-SHA-1 values only, tried with
	 * SCRAM-SHA-256): no password could be tried.  reason is
	 * "no-credentials-for-mechanism"; the failure is answered like any
	 * <not-authorized/> and counted like an unknown user's failure, but
	 * logged apart (not on the fail2ban line), and the stream takes the
	 * limits' count back when the client falls back and logs in. */
	bool no_credentials;
	/* SASL2 with FAST: the token issued on success (malloc'd, wiped by
	 * sasl_result_clear) and its expiry (unix time); NULL when none. */
	char *fast_token;
	int64_t fast_expires;
};

typedef void sasl_cb(void *ctx, struct sasl_result *res);

struct sasl;

/* Add <mechanism/> children to mechanisms for what auth and this connection
 * allow: SCRAM where the store keeps keys, SCRAM-SHA-256 alone where only
 * keys kept from password logins serve it (auth_offers_scram), -PLUS when
 * channel binding data exists, PLAIN only when secure. */
void sasl_add_mechanisms(struct xml_node *mechanisms, struct auth *a, SSL *ssl, bool secure);
/* XEP-0440: the channel binding types this connection supports, as a
 * stream feature (nothing without TLS); see tls_channel_binding_types. */
void sasl_add_cbind_feature(struct xml_node *features, SSL *ssl);
/* Whether mech is one sasl_add_mechanisms would offer. */
bool sasl_mechanism_offered(const char *mech, struct auth *a, SSL *ssl, bool secure);

/* ip: the client's address, for the failed-login limits (copied).  ssl and
 * secure as given to sasl_add_mechanisms: SCRAM hashes what was advertised
 * into its challenge (XEP-0474). */
struct sasl *sasl_new(const char *mech, struct auth *a, SSL *ssl, bool secure, const char *ip, sasl_cb *cb,
                      void *ctx);
void sasl_free(struct sasl **s); /* cancels a pending backend request */
/* A SASL2 exchange on a connection where FAST is offered (call before the
 * first step): the HT-SHA-256 mechanisms verify tokens of st (the host's
 * storage, host its name); after any successful mechanism req is acted on
 * (count, invalidate, request-token with tokens valid for ttl seconds)
 * before SASL_SUCCESS is reported.  req is copied. */
void sasl_set_fast(struct sasl *s, struct storage *st, const char *host, const struct fast_request *req,
                   double ttl);
/* Feed the initial response or a <response/> (decoded bytes). */
void sasl_step(struct sasl *s, const char *in, size_t len, struct sasl_result *res);
/* The authenticated username (prepared), valid after SASL_SUCCESS. */
const char *sasl_username(const struct sasl *s);
/* The mechanism's name ("SCRAM-SHA-256-PLUS"), static. */
const char *sasl_mechanism(const struct sasl *s);
/* -PLUS: the channel binding type the client named, or NULL. */
const char *sasl_cbind_type(const struct sasl *s);
/* Whether the exchange was SASL ANONYMOUS (the username is a random one). */
bool sasl_is_anonymous(const struct sasl *s);
void sasl_result_clear(struct sasl_result *r);

#endif
