/*
 * The auth interface: one chain of backends per virtual host (auth.methods,
 * tried in order: internal, i.e. SCRAM credentials kept in the host's
 * storage, ldap, pam, external, anonymous).  Every call is
 * asynchronous like storage calls: cb runs later on the loop thread, never
 * inside the call; auth_cancel() guarantees it will not run.  Results say
 * why: a backend that cannot answer now says AUTH_TEMPFAIL, never
 * AUTH_BAD_PASSWORD or AUTH_NO_USER.  Called on the loop thread only.
 */
#ifndef PARLEY_AUTH_H
#define PARLEY_AUTH_H

#include <ev.h>
#include "auth/auth-config.h"
#include "lib/scram.h"
#include "storage/storage.h"

enum auth_result {
	AUTH_OK,
	AUTH_BAD_PASSWORD,
	AUTH_NO_USER,
	AUTH_EXISTS,        /* create: the account exists */
	AUTH_TEMPFAIL,      /* backend unreachable, slow or busy */
	AUTH_NOT_SUPPORTED, /* the backend cannot do this (e.g. no SCRAM keys) */
	AUTH_ERROR,         /* permanent failure */
};
const char *auth_result_str(enum auth_result r);

struct auth;
struct auth_req;

/* Why the external program of cfg (when its methods name external) could
 * not run, as auth_new would refuse it ("auth method external: program
 * ...: No such file or directory"), or NULL; nothing is started
 * (config-check, parleyd -t).  Malloc'd. */
char *auth_external_probe(const struct auth_config *cfg);

/* Build the chain for one host; storage is the host's store (internal
 * backend).  Returns -1 with a malloc'd *error_r for a bad configuration. */
int auth_new(struct ev_loop *loop, const char *host, const struct auth_config *cfg, struct storage *storage,
             struct auth **auth_r, char **error_r);
/* Requests still pending are answered with AUTH_TEMPFAIL before it returns. */
void auth_free(struct auth **a);
void auth_cancel(struct auth_req *req);

/* What SASL may offer: SCRAM needs stored SCRAM keys; PLAIN works with any
 * backend that checks passwords. */
bool auth_can_scram(const struct auth *a);
bool auth_can_plain(const struct auth *a);
/* Whether SASL offers SCRAM with hash h (and its -PLUS variant): every
 * hash where a backend keeps keys (auth_can_scram); SCRAM-SHA-256 alone
 * where only keys kept from password logins of ldap, pam or external
 * users serve it (auth.scram_cache_ttl): each set holds all three hashes,
 * so one mechanism serves them, and a user without a set fails one
 * mechanism, not three, before falling back to PLAIN. */
bool auth_offers_scram(const struct auth *a, enum scram_hash h);
/* Whether a SCRAM hash an account has no keys for is refused at once with
 * <invalid-mechanism/> (auth.reveal_missing_scram_keys) rather than by an
 * exchange like an unknown user's. */
bool auth_reveal_missing_scram_keys(const struct auth *a);
/* The iteration count for new SCRAM credentials (auth.scram_iterations). */
unsigned auth_scram_iterations(const struct auth *a);

typedef void auth_cb(enum auth_result res, void *ctx);
/* An answer with the backend's explanation (detail may be NULL). */
typedef void auth_probe_cb(enum auth_result res, const char *detail, void *ctx);
typedef void auth_scram_cb(enum auth_result res, const struct scram_credentials *cred, void *ctx);

struct auth_req *auth_check_password(struct auth *a, const char *user, const char *password, auth_cb *cb,
                                     void *ctx);
/* The SCRAM credentials of user for hash h (AUTH_NO_USER when unknown). */
struct auth_req *auth_get_scram(struct auth *a, const char *user, enum scram_hash h, auth_scram_cb *cb,
                                void *ctx);
struct auth_req *auth_user_exists(struct auth *a, const char *user, auth_cb *cb, void *ctx);
/* Inside the callback of auth_get_scram req with AUTH_OK: whether the
 * credentials are SCRAM keys kept from an earlier password login
 * (auth.scram_cache_ttl) rather than a backend's own, so that no backend
 * was asked about the user now (the caller asks auth_user_exists after a
 * good proof). */
bool auth_scram_keys_kept(const struct auth_req *req);
/* Whether auth_user_exists answers exactly whether st holds the account:
 * the chain is the internal method alone, keeping its accounts in st.  A
 * caller that reads st anyway (a FAST token login) may then ask it in the
 * same storage job. */
bool auth_exists_in_storage(const struct auth *a, const struct storage *st);
/* Create (AUTH_EXISTS if taken: some method of the chain has the user),
 * set password (AUTH_NO_USER if missing), remove (every piece of the
 * user's data); the last two go to the method that has the user. */
struct auth_req *auth_create_user(struct auth *a, const char *user, const char *password, auth_cb *cb,
                                  void *ctx);
struct auth_req *auth_set_password(struct auth *a, const char *user, const char *password, auth_cb *cb,
                                   void *ctx);
struct auth_req *auth_remove_user(struct auth *a, const char *user, auth_cb *cb, void *ctx);

/* ---- diagnostics ---- */
/* The virtual host whose accounts a checks. */
const char *auth_host(const struct auth *a);
/* The number of backends in the chain and the method name of one. */
size_t auth_backend_count(const struct auth *a);
const char *auth_backend_name(const struct auth *a, size_t i);
/* How often backend i answered r to a login question since the host
 * started: a password check (PLAIN) or, with scram, a SCRAM credentials
 * lookup. */
uint64_t auth_backend_login_answers(const struct auth *a, size_t i, bool scram, enum auth_result r);
/* Ask backend i alone: op is AUTH_OP_CHECK_PASSWORD-like "check" (password
 * non-NULL) or "exists" (password NULL).  cb as for the other calls. */
struct auth_req *auth_probe(struct auth *a, size_t i, const char *user, const char *password,
                            auth_probe_cb *cb, void *ctx);
/* Append each backend's state (pool processes, restarts, last error). */
void auth_status(const struct auth *a, struct buf *out);

/* ---- failed-login limits (auth.max_failures_per_ip / _per_user) ---- */
/* Whether a login from ip to user (either may be NULL) is refused now
 * because of earlier failures. */
bool auth_limited(struct auth *a, const char *ip, const char *user);
/* Count one failed login and log the stable line
 * "auth failed: ip=IP user=USER@HOST reason=REASON" (fail2ban). */
void auth_note_failure(struct auth *a, const char *ip, const char *user, const char *reason);
/* A login that could not be tried because the account has no credentials
 * for the mechanism (SCRAM-SHA-256 for an account with SCRAM-SHA-1 keys
 * only).  With counted, it counts towards the limits exactly like a failed
 * login for an unknown user, so that the limits do not tell such an
 * account from a name that does not exist; auth_forgive_declined takes it
 * back when the same client then logs in to that account.  Not counted:
 * refused at once with <invalid-mechanism/> (auth.reveal_missing_scram_keys),
 * where nothing is hidden.  Logged as the stable line
 * "auth declined: ip=IP user=USER@HOST mechanism=MECH
 * reason=no-credentials-for-mechanism", which a fail2ban filter for
 * "auth failed:" does not match. */
void auth_note_no_credentials(struct auth *a, const char *ip, const char *user, const char *mechanism,
                              bool counted);
/* Take back n declined logins (auth_note_no_credentials) from ip's count,
 * the first of them made at since (ev_now): a client that fell back to a
 * mechanism the account can do and logged in.  A count whose window began
 * after since (the declined ones already expired) is left alone. */
void auth_forgive_declined(struct auth *a, const char *ip, unsigned n, double since);
/* A successful login clears the account's counter. */
void auth_note_success(struct auth *a, const char *user);

/* Whether a method of the chain can remove accounts at all. */
bool auth_can_remove_users(const struct auth *a);
/* Whether the chain lets anyone in without credentials (SASL ANONYMOUS). */
bool auth_can_anonymous(const struct auth *a);

/* A shared worker group for CPU-heavy work (key derivation), created on
 * first use with loop; freed by auth_global_shutdown. */
struct worker_group *auth_compute_group(struct ev_loop *loop);
void auth_global_shutdown(void);

/* The LDAP client of the first ldap backend of auth chain a, or NULL when
 * the chain has none (auth/auth-ldap.c). */
struct ldap_client;
struct ldap_client *auth_ldap_client(const struct auth *a);

#endif
