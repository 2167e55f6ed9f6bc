/*
 * SASL exchanges for client streams.  Loop thread.
 *
 * PLAIN checks the password through the auth chain (asynchronous); SCRAM
 * fetches the stored keys (asynchronous) and does the proof arithmetic here,
 * which costs a few HMACs; with keys kept from a password login
 * (auth.scram_cache_ttl) a good proof is followed by asking the chain
 * whether the user still exists, as for a FAST token.  The HT-SHA-256 mechanisms of FAST (SASL2 only)
 * check a token through server/fast.c, then that the account still exists
 * in the auth chain (in the token's own storage job when the chain is the
 * internal method on that store); FAST's writes (count, logout, a new token) are done
 * before success is reported.  A backend that cannot answer yields a failure
 * marked tempfail, which the stream reports as <temporary-auth-failure/>,
 * never as a wrong password.  A SCRAM hash the account has no keys for
 * (an account imported with SCRAM-SHA-1 keys only) runs like an unknown
 * user's exchange and fails marked no_credentials; the stream counts it
 * like a failure for an unknown user (c2s_note_declined).
 */
#include "sasl.h"
#include "lib/scram.h"
#include "lib/jid.h"
#include "tls.h"
#include "lib/log.h"

#include <stdlib.h>
#include <string.h>

enum sasl_mech { MECH_PLAIN, MECH_SCRAM_SHA1, MECH_SCRAM_SHA256, MECH_SCRAM_SHA512, MECH_ANONYMOUS, MECH_HT };

struct sasl {
	enum sasl_mech mech;
	bool plus;
	struct auth *auth;
	SSL *ssl;
	bool secure;
	const char *mech_name; /* static */
	char *cbind_type;      /* -PLUS: the type the client bound to */
	sasl_cb *cb;
	void *ctx;
	struct scram_server *scram;
	struct auth_req *req;
	char *username;
	char *ip;
	bool no_user;   /* SCRAM: the backends do not know the user */
	bool no_creds;  /* SCRAM: the user exists without keys for this hash */
	bool kept_keys; /* SCRAM: keys kept from a password login (auth.scram_cache_ttl) */
	char *final;    /* SCRAM: the server-final message, while the user is checked */
	size_t final_len;
	bool done;
	/* SASL2 with FAST (sasl_set_fast) */
	struct storage *fast_st; /* NULL: no FAST on this exchange */
	char *fast_host;
	struct fast_request freq;
	double fast_ttl;
	struct fast_job *fast;
	const char *ht_cbind; /* HT: the channel binding type, NULL for -NONE */
	bool ht_account_read; /* HT: the token's storage job read the account too */
	unsigned char ht_responder[HT_HMAC_LEN];
	char *held; /* success data waiting for the FAST writes */
	size_t held_len;
};

static const struct {
	const char *name;
	enum sasl_mech mech;
	bool plus;
} mechs[] = {
	{ "SCRAM-SHA-512-PLUS", MECH_SCRAM_SHA512, true },
	{ "SCRAM-SHA-256-PLUS", MECH_SCRAM_SHA256, true },
	{ "SCRAM-SHA-1-PLUS", MECH_SCRAM_SHA1, true },
	{ "SCRAM-SHA-512", MECH_SCRAM_SHA512, false },
	{ "SCRAM-SHA-256", MECH_SCRAM_SHA256, false },
	{ "SCRAM-SHA-1", MECH_SCRAM_SHA1, false },
	{ "PLAIN", MECH_PLAIN, false },
	{ "ANONYMOUS", MECH_ANONYMOUS, false },
};

static enum scram_hash mech_hash(enum sasl_mech m)
{
	return m == MECH_SCRAM_SHA1 ? SCRAM_SHA1 : m == MECH_SCRAM_SHA256 ? SCRAM_SHA256 : SCRAM_SHA512;
}

static bool have_cbind(SSL *ssl)
{
	const char *types[TLS_CBIND_MAX_TYPES];
	return ssl != NULL && tls_channel_binding_types(ssl, types) > 0;
}

static bool mech_allowed(size_t i, struct auth *a, bool secure, bool cbind)
{
	if (mechs[i].mech == MECH_PLAIN)
		return secure && auth_can_plain(a);
	if (mechs[i].mech == MECH_ANONYMOUS)
		return auth_can_anonymous(a);
	if (!auth_offers_scram(a, mech_hash(mechs[i].mech)))
		return false;
	return !mechs[i].plus || cbind;
}

void sasl_add_mechanisms(struct xml_node *mechanisms, struct auth *a, SSL *ssl, bool secure)
{
	bool cbind = have_cbind(ssl);
	for (size_t i = 0; i < ARRAY_SIZE(mechs); i++) {
		if (!mech_allowed(i, a, secure, cbind))
			continue;
		struct xml_node *m = xml_add_child(mechanisms, "mechanism", NULL);
		xml_add_text(m, mechs[i].name, strlen(mechs[i].name));
	}
}

void sasl_add_cbind_feature(struct xml_node *features, SSL *ssl)
{
	const char *types[TLS_CBIND_MAX_TYPES];
	size_t n = ssl != NULL ? tls_channel_binding_types(ssl, types) : 0;
	if (n == 0)
		return;
	struct xml_node *f = xml_add_child(features, "sasl-channel-binding", "urn:xmpp:sasl-cb:0");
	for (size_t i = 0; i < n; i++) {
		struct xml_node *cb = xml_add_child(f, "channel-binding", NULL);
		xml_set_attr(cb, "type", types[i]);
	}
}

bool sasl_mechanism_offered(const char *mech, struct auth *a, SSL *ssl, bool secure)
{
	for (size_t i = 0; i < ARRAY_SIZE(mechs); i++)
		if (strcmp(mechs[i].name, mech) == 0)
			return mech_allowed(i, a, secure, have_cbind(ssl));
	return false;
}

static int compare_names(const void *a, const void *b)
{
	/* "i;octet" (RFC 4790 §9.3): strcmp compares as unsigned char. */
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Append names sorted by octet, joined by 0x1E. */
static void append_sorted(struct buf *b, const char **names, size_t n)
{
	qsort(names, n, sizeof(*names), compare_names);
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			buf_append(b, "\x1e", 1);
		buf_append_str(b, names[i]);
	}
}

/* XEP-0474: the string S over what sasl_add_mechanisms and
 * sasl_add_cbind_feature advertised on this connection. */
static void ssdp_string(const struct sasl *s, struct buf *b)
{
	const char *names[ARRAY_SIZE(mechs) + FAST_MAX_MECHS];
	const char *types[TLS_CBIND_MAX_TYPES];
	size_t ntypes = s->ssl != NULL ? tls_channel_binding_types(s->ssl, types) : 0;
	size_t n = 0;
	for (size_t i = 0; i < ARRAY_SIZE(mechs); i++)
		if (mech_allowed(i, s->auth, s->secure, ntypes > 0))
			names[n++] = mechs[i].name;
	/* SASL2 with FAST lists the HT mechanisms too */
	if (s->fast_st != NULL)
		n += fast_mechanisms(s->ssl, names + n);
	append_sorted(b, names, n);
	if (ntypes > 0) {
		buf_append(b, "\x1f", 1);
		append_sorted(b, types, ntypes);
	}
}

/* Whether a client's gs2 flag 'y' reveals a stripped mechanism list.
 * 'y' says "I support channel binding but think you do not".  Before
 * XEP-0440 and RFC 9266 a SCRAM client that supports channel binding
 * supports tls-unique (RFC 5802 §6.1: mandatory to implement), so where
 * the server offers -PLUS with tls-unique (TLS 1.2), 'y' means someone
 * removed the -PLUS mechanisms: fail.  On TLS 1.3 tls-unique is undefined
 * (RFC 9266) and not offered: a client that knows only tls-unique cannot
 * bind and rightly says 'y'; it is accepted there.  A client that knows
 * the types offered on TLS 1.3 is protected from a stripped list by the
 * XEP-0474 hash in server-first. */
static bool y_is_downgrade(const struct sasl *s)
{
	const char *types[TLS_CBIND_MAX_TYPES];
	size_t n = s->ssl != NULL ? tls_channel_binding_types(s->ssl, types) : 0;
	if (!auth_offers_scram(s->auth, SCRAM_SHA256))
		return false;
	for (size_t i = 0; i < n; i++)
		if (strcmp(types[i], "tls-unique") == 0)
			return true;
	return false;
}

struct sasl *sasl_new(const char *mech, struct auth *a, SSL *ssl, bool secure, const char *ip, sasl_cb *cb,
                      void *ctx)
{
	enum sasl_mech m = MECH_HT;
	bool plus = false;
	const char *name = NULL, *cbind = NULL;
	for (size_t i = 0; name == NULL && i < ARRAY_SIZE(mechs); i++)
		if (strcmp(mechs[i].name, mech) == 0) {
			m = mechs[i].mech;
			plus = mechs[i].plus;
			name = mechs[i].name;
		}
	if (name == NULL)
		name = fast_mechanism(mech, &cbind); /* an HT mechanism, or none */
	if (name == NULL)
		return NULL;
	struct sasl *s = xcalloc(1, sizeof(*s));
	s->mech = m;
	s->plus = plus;
	s->mech_name = name;
	s->ht_cbind = cbind;
	s->auth = a;
	s->ssl = ssl;
	s->secure = secure;
	s->cb = cb;
	s->ctx = ctx;
	s->ip = ip != NULL ? xstrdup(ip) : NULL;
	return s;
}

void sasl_set_fast(struct sasl *s, struct storage *st, const char *host, const struct fast_request *req,
                   double ttl)
{
	s->fast_st = st;
	s->fast_host = xstrdup(host);
	s->freq.ua_id = req->ua_id != NULL ? xstrdup(req->ua_id) : NULL;
	s->freq.request_mech = req->request_mech != NULL ? xstrdup(req->request_mech) : NULL;
	s->freq.has_count = req->has_count;
	s->freq.count = req->count;
	s->freq.invalidate = req->invalidate;
	s->fast_ttl = ttl;
}

void sasl_free(struct sasl **sp)
{
	struct sasl *s = *sp;
	if (s == NULL)
		return;
	if (s->req != NULL)
		auth_cancel(s->req);
	scram_server_free(&s->scram);
	free(s->username);
	free(s->ip);
	free(s->cbind_type);
	fast_job_free(&s->fast);
	free(s->fast_host);
	fast_request_clear(&s->freq);
	explicit_bzero(s->ht_responder, sizeof(s->ht_responder));
	if (s->held != NULL) {
		explicit_bzero(s->held, s->held_len);
		free(s->held);
	}
	if (s->final != NULL) {
		explicit_bzero(s->final, s->final_len);
		free(s->final);
	}
	xfree(sp);
}

const char *sasl_username(const struct sasl *s)
{
	return s->username;
}

const char *sasl_mechanism(const struct sasl *s)
{
	return s->mech_name;
}

const char *sasl_cbind_type(const struct sasl *s)
{
	return s->cbind_type;
}

bool sasl_is_anonymous(const struct sasl *s)
{
	return s->mech == MECH_ANONYMOUS;
}

void sasl_result_clear(struct sasl_result *r)
{
	if (r->data != NULL) {
		explicit_bzero(r->data, r->len);
		free(r->data);
	}
	if (r->fast_token != NULL) {
		explicit_bzero(r->fast_token, strlen(r->fast_token));
		free(r->fast_token);
	}
	memset(r, 0, sizeof(*r));
}

static void fail(struct sasl_result *res, const char *cond)
{
	res->status = SASL_FAILURE;
	res->condition = cond;
}

/* A failed login attempt for the given reason (<not-authorized/>). */
static void fail_login(struct sasl_result *res, const char *reason)
{
	fail(res, "not-authorized");
	res->reason = reason;
}

/* Whether the failed-login limits refuse this attempt (user may be NULL). */
static bool limited(struct sasl *s, const char *user, struct sasl_result *res)
{
	if (!auth_limited(s->auth, s->ip, user))
		return false;
	fail_login(res, "rate-limited");
	res->limited = true;
	return true;
}

/* ---- FAST's writes after success ------------------------------------------------ */

static void fast_committed(enum fast_result r, const char *token, int64_t expires, void *ctx)
{
	struct sasl *s = ctx;
	struct sasl_result res = { 0 };
	if (r != FAST_OK) {
		fail(&res, "temporary-auth-failure");
		res.tempfail = true;
	} else {
		res.status = SASL_SUCCESS;
		res.data = s->held;
		res.len = s->held_len;
		s->held = NULL;
		s->held_len = 0;
		if (token != NULL) {
			res.fast_token = xstrdup(token);
			res.fast_expires = expires;
		}
	}
	s->cb(s->ctx, &res); /* may free s */
}

/* A success that FAST has work for becomes SASL_PENDING until that work is
 * stored (fast_committed reports it).  True when res was taken. */
static bool divert_success(struct sasl *s, struct sasl_result *res)
{
	if (res->status != SASL_SUCCESS || s->fast_st == NULL || s->mech == MECH_ANONYMOUS)
		return false;
	if (s->fast == NULL)
		s->fast = fast_job_new(s->fast_st, s->fast_host, s->username);
	if (!fast_job_needed(s->fast, &s->freq))
		return false;
	s->held = res->data;
	s->held_len = res->len;
	res->data = NULL;
	res->len = 0;
	res->status = SASL_PENDING;
	fast_job_commit(s->fast, &s->freq, s->fast_ttl, fast_committed, s);
	return true;
}

/* Report an asynchronous result. */
static void deliver(struct sasl *s, struct sasl_result *res)
{
	if (!divert_success(s, res))
		s->cb(s->ctx, res);
}

/* ---- PLAIN ------------------------------------------------------------------ */

/* Whether authzid, the authorization identity a client asked for, is
 * user's own bare JID on this host: only the identity itself may be asked
 * for (no proxy authorization); anything else is <invalid-authzid/>. */
static bool authzid_own(const struct sasl *s, const char *authzid, const char *user)
{
	struct jid z;
	const char *err;
	if (jid_parse(authzid, &z, &err) < 0)
		return false;
	bool own = z.node != NULL && strcmp(z.node, user) == 0 && strcmp(z.domain, auth_host(s->auth)) == 0 &&
	           z.resource == NULL;
	jid_clear(&z);
	return own;
}

static void plain_done(enum auth_result r, void *ctx)
{
	struct sasl *s = ctx;
	struct sasl_result res = { 0 };
	s->req = NULL;
	switch (r) {
	case AUTH_OK: res.status = SASL_SUCCESS; break;
	case AUTH_TEMPFAIL:
		fail(&res, "temporary-auth-failure");
		res.tempfail = true;
		break;
	case AUTH_BAD_PASSWORD: fail_login(&res, "bad-password"); break;
	case AUTH_NO_USER: fail_login(&res, "unknown-user"); break;
	default:
		fail(&res, "temporary-auth-failure");
		res.tempfail = true;
		break;
	}
	deliver(s, &res);
}

static void plain_step(struct sasl *s, const char *in, size_t len, struct sasl_result *res)
{
	/* message = [authzid] NUL authcid NUL passwd (RFC 4616) */
	const char *nul1 = memchr(in, '\0', len);
	const char *nul2 = nul1 != NULL ? memchr(nul1 + 1, '\0', len - (size_t)(nul1 + 1 - in)) : NULL;
	if (nul1 == NULL || nul2 == NULL || nul2 + 1 > in + len) {
		fail(res, "malformed-request");
		return;
	}
	char *authzid = xstrndup(in, (size_t)(nul1 - in));
	char *authcid = xstrndup(nul1 + 1, (size_t)(nul2 - nul1 - 1));
	char *password = xstrndup(nul2 + 1, (size_t)(in + len - nul2 - 1));
	if (memchr(nul2 + 1, '\0', (size_t)(in + len - nul2 - 1)) != NULL ||
	    !utf8_valid(authcid, strlen(authcid)) || !utf8_valid(password, strlen(password))) {
		fail(res, "malformed-request");
		goto out;
	}
	char *user = jid_nodeprep(authcid);
	if (user == NULL || *password == '\0') {
		fail_login(res, user == NULL ? "bad-username" : "empty-password");
		free(user);
		goto out;
	}
	if (limited(s, user, res)) {
		s->username = user;
		goto out;
	}
	if (*authzid != '\0') {
		/* Only the identity itself may be asked for (no proxy authorization). */
		if (!authzid_own(s, authzid, user)) {
			free(user);
			fail(res, "invalid-authzid");
			goto out;
		}
	}
	s->username = user;
	res->status = SASL_PENDING;
	s->req = auth_check_password(s->auth, user, password, plain_done, s);
out:
	explicit_bzero(password, strlen(password));
	free(password);
	free(authzid);
	free(authcid);
}

/* ---- SCRAM ------------------------------------------------------------------ */

static void scram_creds(enum auth_result r, const struct scram_credentials *cred, void *ctx)
{
	struct sasl *s = ctx;
	struct sasl_result res = { 0 };
	s->kept_keys = r == AUTH_OK && auth_scram_keys_kept(s->req);
	s->req = NULL;
	if (r == AUTH_TEMPFAIL || r == AUTH_ERROR) {
		fail(&res, "temporary-auth-failure");
		res.tempfail = true;
		s->cb(s->ctx, &res);
		return;
	}
	/* AUTH_NOT_SUPPORTED: the account exists but has no keys for this
	 * hash (imported with SCRAM-SHA-1 values only, or made before schema
	 * 11 for SHA-512).  The exchange goes on exactly as for an unknown
	 * user, a challenge with a fake salt, and fails at the proof with
	 * <not-authorized/>: on the wire it cannot be told from an unknown
	 * user or a wrong password, so it reveals nothing about accounts.
	 * <not-authorized/> is also the condition RFC 6120 §6.5.10 gives for
	 * a generic failure, after which §6.4.5 lets the client try another
	 * mechanism on the same stream (slixmpp, for one, goes on to
	 * SCRAM-SHA-1).  <invalid-mechanism/> at this point would tell the
	 * account apart from an unknown user, so it is given only where the
	 * operator allows that (below), and <mechanism-too-weak/> means the
	 * opposite (a stronger one is required).  XEP-0388 keeps the RFC 6120
	 * conditions for SASL2.  Only the log tells it apart (reason
	 * no-credentials-for-mechanism); the limits count it like an unknown
	 * user's failure and forgive it when the client falls back and logs
	 * in (server/c2s.c, c2s_note_declined). */
	if (r == AUTH_NOT_SUPPORTED && auth_reveal_missing_scram_keys(s->auth)) {
		/* auth.reveal_missing_scram_keys: where the operator does not
		 * mind that anyone can learn which accounts lack keys for a
		 * hash (every user name is public in the directory anyway),
		 * the exchange stops here with <invalid-mechanism/>.  This is
		 * the earliest point at which the user is known: in SASL and
		 * in SASL2 alike the mechanism list goes out before it, and
		 * the client-first message that names the user comes with
		 * the choice of mechanism.  RFC 6120 §6.5.7 defines the
		 * condition for a mechanism the receiving entity does not
		 * support, which for this account is the case, and clients
		 * take it as "try another mechanism" (RFC 6120 §6.4.5; the
		 * conditions are the same in XEP-0388's <failure/>).  The
		 * <text/> says why.  It reveals that such an account exists;
		 * unknown names and accounts with keys still cannot be told
		 * apart (the challenge, with a fake salt for unknown ones). */
		fail(&res, "invalid-mechanism");
		res.reason = "no-credentials-for-mechanism";
		res.no_credentials = true;
		s->cb(s->ctx, &res);
		return;
	}
	s->no_creds = r == AUTH_NOT_SUPPORTED;
	s->no_user = r != AUTH_OK;
	/* Unknown user or no keys for this hash: a challenge all the same, and
	 * the exchange fails at the proof (no user enumeration). */
	enum scram_step st =
	        scram_server_challenge(s->scram, r == AUTH_OK ? cred : NULL, &res.data, &res.len);
	if (st != SCRAM_CONTINUE)
		fail(&res, "not-authorized");
	else
		res.status = SASL_CHALLENGE;
	s->cb(s->ctx, &res);
}

/* The SCRAM server object, made at the client-first message: for -PLUS the
 * channel binding type is the one the client names in "p=<type>"; the
 * data is computed when this connection supports that type, and a type it
 * does not support makes the exchange fail. */
static void scram_create(struct sasl *s, const char *in, size_t len)
{
	unsigned char cb_data[TLS_CBIND_MAX_DATA];
	size_t cb_len = 0;
	if (s->plus && len > 2 && in[0] == 'p' && in[1] == '=') {
		const char *comma = memchr(in, ',', len);
		size_t tlen = comma != NULL ? (size_t)(comma - in - 2) : len - 2;
		if (tlen > 0 && tlen <= 64 && memchr(in + 2, '\0', tlen) == NULL) {
			s->cbind_type = xstrndup(in + 2, tlen);
			cb_len = tls_channel_binding_type(s->ssl, s->cbind_type, cb_data, sizeof(cb_data));
		}
	}
	s->scram = scram_server_new(mech_hash(s->mech), s->plus, s->cbind_type, cb_len > 0 ? cb_data : NULL,
	                            cb_len, y_is_downgrade(s));
	explicit_bzero(cb_data, sizeof(cb_data));
	struct buf ssdp = { 0 };
	ssdp_string(s, &ssdp);
	scram_server_set_ssdp(s->scram, ssdp.data, ssdp.len);
	buf_free(&ssdp);
}

/* After a good proof with kept keys: the auth chain's word on the user.
 * Unknown fails the login (and the chain drops the keys: auth.c). */
static void scram_exists(enum auth_result r, void *ctx)
{
	struct sasl *s = ctx;
	struct sasl_result res = { 0 };
	s->req = NULL;
	if (r == AUTH_OK) {
		res.status = SASL_SUCCESS;
		res.data = s->final;
		res.len = s->final_len;
		s->final = NULL;
		s->final_len = 0;
		deliver(s, &res);
		return;
	}
	if (r == AUTH_NO_USER) {
		fail_login(&res, "unknown-user");
	} else {
		fail(&res, "temporary-auth-failure");
		res.tempfail = true;
	}
	s->cb(s->ctx, &res);
}

static void scram_step(struct sasl *s, const char *in, size_t len, struct sasl_result *res)
{
	const char *error = NULL;
	if (s->scram == NULL)
		scram_create(s, in, len);
	if (s->username == NULL) {
		const char *username = NULL;
		enum scram_step st = scram_server_client_first(s->scram, in, len, &username, &error);
		if (st != SCRAM_CONTINUE) {
			if (error != NULL && strcmp(error, "malformed-request") == 0) {
				fail(res, "malformed-request");
			} else if (error != NULL && strcmp(error, "not-authorized") == 0) {
				fail_login(res, "bad-username");
			} else {
				/* A channel binding mismatch of client and server:
				 * no password was tried, so no failed login. */
				fail(res, "not-authorized");
				res->detail = error;
			}
			return;
		}
		char *user = jid_nodeprep(username);
		const char *authzid = scram_server_authzid(s->scram);
		if (user == NULL) {
			/* Not a valid local part: no such user, answered like one. */
			s->username = xstrdup("");
			s->no_user = true;
			res->status = SASL_CHALLENGE;
			if (scram_server_challenge(s->scram, NULL, &res->data, &res->len) != SCRAM_CONTINUE)
				fail(res, "not-authorized");
			return;
		}
		if (authzid != NULL) {
			if (!authzid_own(s, authzid, user)) {
				free(user);
				fail(res, "invalid-authzid");
				return;
			}
		}
		s->username = user;
		if (limited(s, user, res))
			return;
		res->status = SASL_PENDING;
		s->req = auth_get_scram(s->auth, user, mech_hash(s->mech), scram_creds, s);
		return;
	}
	enum scram_step st = scram_server_client_final(s->scram, in, len, &res->data, &res->len, &error);
	if (st == SCRAM_SUCCESS && s->username[0] != '\0' && s->kept_keys) {
		/* Keys kept from a password login: no backend was asked about
		 * the user, who may have been deleted or disabled since.  Ask
		 * now, as after a FAST token (scram_exists). */
		s->final = res->data;
		s->final_len = res->len;
		res->data = NULL;
		res->len = 0;
		res->status = SASL_PENDING;
		s->req = auth_user_exists(s->auth, s->username, scram_exists, s);
		return;
	}
	if (st == SCRAM_SUCCESS && s->username[0] != '\0') {
		res->status = SASL_SUCCESS;
		return;
	}
	if (res->data != NULL) {
		free(res->data);
		res->data = NULL;
		res->len = 0;
	}
	if (error != NULL && strcmp(error, "malformed-request") == 0) {
		fail(res, "malformed-request");
	} else if (s->no_creds) {
		fail_login(res, "no-credentials-for-mechanism");
		res->no_credentials = true;
	} else {
		fail_login(res, s->no_user ? "unknown-user" : "bad-password");
	}
}

/* ---- HT-SHA-256 (FAST tokens) ------------------------------------------------------ */

static void ht_exists(enum auth_result r, void *ctx)
{
	struct sasl *s = ctx;
	struct sasl_result res = { 0 };
	s->req = NULL;
	if (r == AUTH_OK) {
		res.status = SASL_SUCCESS;
		res.data = xmalloc(HT_HMAC_LEN);
		memcpy(res.data, s->ht_responder, HT_HMAC_LEN);
		res.len = HT_HMAC_LEN;
	} else if (r == AUTH_NO_USER) {
		/* a token outlived its account (deleted, or disabled in the
		 * directory) */
		fail_login(&res, "unknown-user");
	} else {
		fail(&res, "temporary-auth-failure");
		res.tempfail = true;
	}
	deliver(s, &res);
}

static void ht_verified(enum fast_result r, const char *reason, const unsigned char *responder, void *ctx)
{
	struct sasl *s = ctx;
	struct sasl_result res = { 0 };
	if (r == FAST_OK && !s->ht_account_read) {
		memcpy(s->ht_responder, responder, HT_HMAC_LEN);
		s->req = auth_user_exists(s->auth, s->username, ht_exists, s);
		return;
	}
	if (r == FAST_OK || r == FAST_NO_ACCOUNT) {
		if (r == FAST_OK)
			memcpy(s->ht_responder, responder, HT_HMAC_LEN);
		ht_exists(r == FAST_OK ? AUTH_OK : AUTH_NO_USER, s);
		return;
	}
	if (r == FAST_EXPIRED) {
		/* XEP-0484 4.2: <credentials-expired/>, so that the client
		 * falls back to its password.  Only the token's holder gets
		 * here: no guess, not counted as a failed login. */
		fail(&res, "credentials-expired");
		res.detail = reason;
	} else if (r == FAST_REFUSED) {
		fail_login(&res, reason);
	} else {
		fail(&res, "temporary-auth-failure");
		res.tempfail = true;
	}
	s->cb(s->ctx, &res);
}

/* The message is authcid NUL HMAC(token, "Initiator" || cb-data). */
static void ht_step(struct sasl *s, const char *in, size_t len, struct sasl_result *res)
{
	if (s->fast_st == NULL || s->fast != NULL) {
		fail(res, "malformed-request");
		return;
	}
	const char *nul = memchr(in, '\0', len);
	if (nul == NULL || (size_t)(in + len - nul - 1) != HT_HMAC_LEN ||
	    !utf8_valid(in, (size_t)(nul - in))) {
		fail(res, "malformed-request");
		return;
	}
	char *authcid = xstrndup(in, (size_t)(nul - in));
	char *user = jid_nodeprep(authcid);
	free(authcid);
	if (user == NULL) {
		fail_login(res, "bad-username");
		return;
	}
	s->username = user;
	if (limited(s, user, res))
		return;
	unsigned char cb_data[TLS_CBIND_MAX_DATA];
	size_t cb_len = 0;
	if (s->ht_cbind != NULL) {
		cb_len = s->ssl != NULL
		                 ? tls_channel_binding_type(s->ssl, s->ht_cbind, cb_data, sizeof(cb_data))
		                 : 0;
		if (cb_len == 0) {
			fail(res, "not-authorized");
			res->detail = "the channel binding type of the mechanism is not available";
			return;
		}
	}
	s->fast = fast_job_new(s->fast_st, s->fast_host, user);
	res->status = SASL_PENDING;
	/* the account check in the token's own storage job where the auth
	 * chain would read that store anyway */
	s->ht_account_read = auth_exists_in_storage(s->auth, s->fast_st);
	fast_job_verify(s->fast, s->mech_name, (const unsigned char *)nul + 1, cb_data, cb_len, &s->freq,
	                s->ht_account_read, ht_verified, s);
	explicit_bzero(cb_data, sizeof(cb_data));
}

/* ---- ANONYMOUS (RFC 4505) -------------------------------------------------------- */

static void anonymous_step(struct sasl *s, const char *in, size_t len, struct sasl_result *res)
{
	/* The message is optional trace information: UTF-8, at most 255
	 * characters; it identifies nobody and is not kept. */
	if (len > 255 * 4 || !utf8_valid(in, len) || memchr(in, '\0', len) != NULL) {
		fail(res, "malformed-request");
		return;
	}
	if (limited(s, NULL, res))
		return;
	char rnd[17];
	random_id(rnd, 16);
	s->username = xasprintf("anon-%s", rnd);
	res->status = SASL_SUCCESS;
}

void sasl_step(struct sasl *s, const char *in, size_t len, struct sasl_result *res)
{
	memset(res, 0, sizeof(*res));
	if (s->done || s->req != NULL) {
		fail(res, "malformed-request");
		return;
	}
	if (s->mech == MECH_ANONYMOUS)
		anonymous_step(s, in, len, res);
	else if (s->mech == MECH_PLAIN)
		plain_step(s, in, len, res);
	else if (s->mech == MECH_HT)
		ht_step(s, in, len, res);
	else
		scram_step(s, in, len, res);
	divert_success(s, res);
}
