/*
 * SCRAM (RFC 5802, RFC 7677): credential derivation and the server side of
 * one exchange, with channel binding for the -PLUS mechanisms.
 *
 * Any thread: pure computation on the caller's object; the only shared state
 * is the process secret for fake salts, created once under pthread_once.
 *
 * Invariants:
 *  - an exchange moves strictly client-first -> challenge -> client-final;
 *    a call out of order, or any call after a failure or success, fails;
 *  - an unknown user (NULL credentials) gets a challenge built exactly like
 *    a real one (salt derived from a process secret and the username, so
 *    repeated attempts see the same salt; default iteration count), the
 *    proof is computed against dummy keys all the same, and the exchange
 *    always ends in "not-authorized", as a wrong password does;
 *  - keys, proofs and passwords are wiped with explicit_bzero once used.
 *
 * The error strings (*error_r) are this small set; the SASL layer maps
 * "malformed-request" to <malformed-request/> and everything else to
 * <not-authorized/>:
 *   "malformed-request"                   syntax, encoding, base64, unknown
 *                                         "m=" extension, missing attribute,
 *                                         -PLUS without the 'p' flag, calls
 *                                         out of order
 *   "not-authorized"                      wrong proof, unknown user, wrong
 *                                         nonce, username refused by SASLprep
 *   "server-does-support-channel-binding" flag 'y' when the caller says it
 *                                         is a downgrade (y_is_downgrade)
 *   "channel-binding-not-supported"       flag 'p' with a non-PLUS mechanism
 *   "unsupported-channel-binding-type"    p=<type> the link does not support
 *   "channel-bindings-dont-match"         c= is not gs2-header + binding data
 * All but the first two are RFC 5802 §7 server-error-value names.
 */
#include "scram.h"

#include <assert.h>
#include <limits.h>
#include <pthread.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stringprep.h>

#define E_MALFORMED "malformed-request"
#define E_NOT_AUTHORIZED "not-authorized"
#define E_CB_DOWNGRADE "server-does-support-channel-binding"
#define E_CB_NOT_SUPPORTED "channel-binding-not-supported"
#define E_CB_TYPE "unsupported-channel-binding-type"
#define E_CB_MISMATCH "channel-bindings-dont-match"

#define SCRAM_SALT_LEN 16      /* bytes of a salt we make */
#define SCRAM_SNONCE_BYTES 18  /* random bytes of the server nonce: 24 base64 chars */
#define SCRAM_MAX_MESSAGE 4096 /* a client message longer than this is refused */

size_t scram_hash_len(enum scram_hash h)
{
	return h == SCRAM_SHA1 ? 20 : h == SCRAM_SHA256 ? 32 : 64;
}

const char *scram_hash_name(enum scram_hash h)
{
	return h == SCRAM_SHA1 ? "SHA-1" : h == SCRAM_SHA256 ? "SHA-256" : "SHA-512";
}

static const EVP_MD *scram_md(enum scram_hash h)
{
	return h == SCRAM_SHA1 ? EVP_sha1() : h == SCRAM_SHA256 ? EVP_sha256() : EVP_sha512();
}

static void scram_hmac(enum scram_hash h, const unsigned char *key, size_t key_len, const void *data,
                       size_t len, unsigned char *out)
{
	unsigned int out_len = 0;
	assert(key_len <= INT_MAX);
	if (HMAC(scram_md(h), key, (int)key_len, data, len, out, &out_len) == NULL)
		abort();
	assert(out_len == scram_hash_len(h));
}

static void scram_digest(enum scram_hash h, const unsigned char *data, size_t len, unsigned char *out)
{
	unsigned int out_len = 0;
	if (EVP_Digest(data, len, out, &out_len, scram_md(h), NULL) != 1)
		abort();
	assert(out_len == scram_hash_len(h));
}

/* ---- credentials ------------------------------------------------------- */

char *scram_saslprep(const char *s)
{
	char *out = NULL;
	if (s == NULL || !utf8_valid(s, strlen(s)))
		return NULL;
	if (stringprep_profile(s, &out, "SASLprep", 0) != STRINGPREP_OK) {
		free(out);
		return NULL;
	}
	/* libidn allocated it with malloc: hand over a copy we own and wipe
	 * the original, since it is usually a password. */
	char *copy = xstrdup(out);
	explicit_bzero(out, strlen(out));
	free(out);
	return copy;
}

int scram_derive(enum scram_hash h, const char *password, const unsigned char *salt, size_t salt_len,
                 unsigned iterations, struct scram_credentials *out)
{
	unsigned char random_salt[SCRAM_SALT_LEN];
	unsigned char salted[SCRAM_MAX_HASH];
	size_t hlen = scram_hash_len(h);
	int ret = -1;

	memset(out, 0, sizeof(*out));
	if (iterations == 0)
		iterations = SCRAM_DEFAULT_ITERATIONS;
	if (salt == NULL) {
		random_bytes(random_salt, sizeof(random_salt));
		salt = random_salt;
		salt_len = sizeof(random_salt);
	}
	if (iterations > INT_MAX || salt_len > INT_MAX)
		return -1;
	char *prepped = scram_saslprep(password);
	if (prepped == NULL)
		return -1;
	size_t plen = strlen(prepped);
	if (plen > INT_MAX)
		goto out;

	/* SaltedPassword = Hi(Normalize(password), salt, i) */
	if (PKCS5_PBKDF2_HMAC(prepped, (int)plen, salt, (int)salt_len, (int)iterations, scram_md(h),
	                      (int)hlen, salted) != 1)
		goto out;
	scram_from_salted(h, salted, salt, salt_len, iterations, out);
	ret = 0;
out:
	explicit_bzero(salted, sizeof(salted));
	explicit_bzero(prepped, plen);
	free(prepped);
	return ret;
}

void scram_from_salted(enum scram_hash h, const unsigned char *salted, const unsigned char *salt,
                       size_t salt_len, unsigned iterations, struct scram_credentials *out)
{
	unsigned char client_key[SCRAM_MAX_HASH];
	size_t hlen = scram_hash_len(h);
	memset(out, 0, sizeof(*out));
	scram_hmac(h, salted, hlen, "Client Key", strlen("Client Key"), client_key);
	scram_digest(h, client_key, hlen, out->stored_key);
	scram_hmac(h, salted, hlen, "Server Key", strlen("Server Key"), out->server_key);
	out->hash = h;
	out->iterations = iterations;
	out->salt_b64 = base64_encode(salt, salt_len);
	explicit_bzero(client_key, sizeof(client_key));
}

void scram_credentials_clear(struct scram_credentials *c)
{
	free(c->salt_b64);
	explicit_bzero(c, sizeof(*c));
}

/* ---- the process secret for fake salts --------------------------------- */

static unsigned char fake_secret[32];
static pthread_once_t fake_secret_once = PTHREAD_ONCE_INIT;

static void fake_secret_init(void)
{
	random_bytes(fake_secret, sizeof(fake_secret));
}

/* A salt for an unknown user: stable for the life of the process, unique
 * per user and hash, unpredictable without the secret. */
static char *fake_salt_b64(enum scram_hash h, const char *username)
{
	unsigned char mac[32];
	unsigned int mac_len = 0;
	struct buf in = { 0 };

	pthread_once(&fake_secret_once, fake_secret_init);
	buf_append_str(&in, scram_hash_name(h));
	buf_append(&in, "", 1);
	buf_append_str(&in, username);
	if (HMAC(EVP_sha256(), fake_secret, sizeof(fake_secret), (const unsigned char *)in.data, in.len, mac,
	         &mac_len) == NULL)
		abort();
	buf_free(&in);
	char *salt = base64_encode(mac, SCRAM_SALT_LEN);
	explicit_bzero(mac, sizeof(mac));
	return salt;
}

/* ---- the exchange -------------------------------------------------------- */

enum scram_state {
	SCRAM_STATE_CLIENT_FIRST, /* waiting for client-first */
	SCRAM_STATE_CHALLENGE,    /* waiting for the caller's credentials */
	SCRAM_STATE_CLIENT_FINAL, /* server-first sent, waiting for client-final */
	SCRAM_STATE_DONE,         /* succeeded or failed: nothing more */
};

struct scram_server {
	enum scram_hash hash;
	enum scram_state state;
	bool plus;
	bool y_is_downgrade;
	char *cbind_type;          /* NULL unless plus */
	unsigned char *cbind_data; /* NULL unless plus and the type is supported */
	size_t cbind_len;

	char cbind_flag;  /* 'n', 'y' or 'p' from the client */
	char *gs2_header; /* "n,,", "p=tls-unique,a=...,", ... */
	char *client_first_bare;
	char *server_first;
	char *username; /* decoded and SASLprep'd */
	char *authzid;  /* decoded, or NULL */
	char *cnonce;
	char *snonce_override; /* test hook */
	char *ssdp_b64;        /* XEP-0474 hash, or NULL */
	char *nonce;           /* cnonce + snonce */

	bool known_user;
	unsigned char stored_key[SCRAM_MAX_HASH];
	unsigned char server_key[SCRAM_MAX_HASH];
};

struct scram_server *scram_server_new(enum scram_hash h, bool plus, const char *cbind_type,
                                      const unsigned char *cbind_data, size_t cbind_len, bool y_is_downgrade)
{
	struct scram_server *s = xcalloc(1, sizeof(*s));
	s->hash = h;
	s->plus = plus;
	s->y_is_downgrade = y_is_downgrade;
	s->state = SCRAM_STATE_CLIENT_FIRST;
	if (plus && cbind_type != NULL)
		s->cbind_type = xstrdup(cbind_type);
	if (plus && cbind_type != NULL && cbind_data != NULL && cbind_len > 0) {
		s->cbind_data = xmalloc(cbind_len);
		memcpy(s->cbind_data, cbind_data, cbind_len);
		s->cbind_len = cbind_len;
	}
	return s;
}

static void free_string(char **p)
{
	if (*p != NULL)
		explicit_bzero(*p, strlen(*p));
	xfree(p);
}

void scram_server_free(struct scram_server **sp)
{
	struct scram_server *s = *sp;
	if (s == NULL)
		return;
	free(s->cbind_type);
	if (s->cbind_data != NULL)
		explicit_bzero(s->cbind_data, s->cbind_len);
	free(s->cbind_data);
	free_string(&s->gs2_header);
	free_string(&s->client_first_bare);
	free_string(&s->server_first);
	free_string(&s->username);
	free_string(&s->authzid);
	free_string(&s->cnonce);
	free_string(&s->snonce_override);
	free_string(&s->ssdp_b64);
	free_string(&s->nonce);
	explicit_bzero(s, sizeof(*s));
	xfree(sp);
}

const char *scram_server_authzid(const struct scram_server *s)
{
	return s->authzid;
}

void scram_server_set_ssdp(struct scram_server *s, const char *advertised, size_t len)
{
	unsigned char md[SCRAM_MAX_HASH];
	scram_digest(s->hash, (const unsigned char *)advertised, len, md);
	free(s->ssdp_b64);
	s->ssdp_b64 = base64_encode(md, scram_hash_len(s->hash));
}

void scram_server_set_nonce(struct scram_server *s, const char *nonce)
{
	assert(nonce != NULL && *nonce != '\0' && strchr(nonce, ',') == NULL);
	free(s->snonce_override);
	s->snonce_override = xstrdup(nonce);
}

/* ---- parsing helpers ----------------------------------------------------- */

static bool is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Copy a client message into a NUL-terminated string; NULL if it is too
 * long, holds a NUL or is not UTF-8. */
static char *message_dup(const char *msg, size_t len)
{
	if (msg == NULL || len == 0 || len > SCRAM_MAX_MESSAGE || memchr(msg, '\0', len) != NULL ||
	    !utf8_valid(msg, len))
		return NULL;
	return xstrndup(msg, len);
}

/* Length of the attribute value at p (up to ',' or the end). */
static size_t value_len(const char *p)
{
	return strcspn(p, ",");
}

/* saslname = 1*(value-safe-char / "=2C" / "=3D"): decode into a malloc'd
 * string; -1 when empty or when '=' starts any other sequence. */
static int saslname_decode(const char *p, size_t n, char **out_r)
{
	char *out = xmalloc(n + 1);
	size_t o = 0;

	*out_r = NULL;
	for (size_t i = 0; i < n; i++) {
		if (p[i] != '=') {
			out[o++] = p[i];
		} else if (n - i >= 3 && p[i + 1] == '2' && p[i + 2] == 'C') {
			out[o++] = ',';
			i += 2;
		} else if (n - i >= 3 && p[i + 1] == '3' && p[i + 2] == 'D') {
			out[o++] = '=';
			i += 2;
		} else {
			free(out);
			return -1;
		}
	}
	if (o == 0) {
		free(out);
		return -1;
	}
	out[o] = '\0';
	*out_r = out;
	return 0;
}

/* printable = %x21-2B / %x2D-7E, at least one. */
static bool nonce_valid(const char *p, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c < 0x21 || c > 0x7e || c == ',')
			return false;
	}
	return true;
}

/* cb-name = 1*(ALPHA / DIGIT / "." / "-") */
static bool cb_name_valid(const char *p, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!is_alpha(p[i]) && !(p[i] >= '0' && p[i] <= '9') && p[i] != '.' && p[i] != '-')
			return false;
	return true;
}

/* Skip ["," attr-val]* at *pp, stopping before ",p=" when stop_at_proof:
 * attr-val = ALPHA "=" 1*value-char.  -1 on a malformed extension. */
static int skip_extensions(const char **pp, bool stop_at_proof)
{
	const char *p = *pp;
	while (*p == ',') {
		if (stop_at_proof && p[1] == 'p' && p[2] == '=')
			break;
		if (!is_alpha(p[1]) || p[2] != '=' || value_len(p + 3) == 0)
			return -1;
		p += 3 + value_len(p + 3);
	}
	*pp = p;
	return 0;
}

/* Parse client-first into s; returns NULL or an error string. */
static const char *parse_client_first(struct scram_server *s, const char *m)
{
	const char *p = m;
	const char *cb_name = NULL;
	size_t n, cb_name_len = 0;

	/* gs2-header = gs2-cbind-flag "," [ authzid ] "," */
	s->cbind_flag = *p;
	if (*p == 'n' || *p == 'y') {
		p++;
	} else if (p[0] == 'p' && p[1] == '=') {
		cb_name = p + 2;
		cb_name_len = value_len(cb_name);
		if (!cb_name_valid(cb_name, cb_name_len))
			return E_MALFORMED;
		p = cb_name + cb_name_len;
	} else {
		return E_MALFORMED;
	}
	if (*p++ != ',')
		return E_MALFORMED;
	if (*p != ',') {
		if (p[0] != 'a' || p[1] != '=')
			return E_MALFORMED;
		n = value_len(p + 2);
		if (saslname_decode(p + 2, n, &s->authzid) != 0)
			return E_MALFORMED;
		p += 2 + n;
		if (*p != ',')
			return E_MALFORMED;
	}
	p++;
	s->gs2_header = xstrndup(m, (size_t)(p - m));

	/* client-first-message-bare = [reserved-mext ","] username "," nonce
	 *                             ["," extensions]
	 * A mandatory extension (m=) is one we cannot know: fail. */
	const char *bare = p;
	if (p[0] != 'n' || p[1] != '=')
		return E_MALFORMED;
	n = value_len(p + 2);
	char *raw_user;
	if (saslname_decode(p + 2, n, &raw_user) != 0)
		return E_MALFORMED;
	p += 2 + n;
	if (p[0] != ',' || p[1] != 'r' || p[2] != '=') {
		free(raw_user);
		return E_MALFORMED;
	}
	p += 3;
	n = value_len(p);
	if (!nonce_valid(p, n)) {
		free(raw_user);
		return E_MALFORMED;
	}
	s->cnonce = xstrndup(p, n);
	p += n;
	if (skip_extensions(&p, false) != 0 || *p != '\0') {
		free(raw_user);
		return E_MALFORMED;
	}
	s->client_first_bare = xstrdup(bare);

	/* Channel binding policy (RFC 5802 §6). */
	const char *error = NULL;
	if (s->plus) {
		if (s->cbind_flag != 'p')
			error = E_MALFORMED;
		else if (s->cbind_type == NULL)
			error = E_CB_NOT_SUPPORTED;
		else if (strlen(s->cbind_type) != cb_name_len ||
		         memcmp(s->cbind_type, cb_name, cb_name_len) != 0 || s->cbind_data == NULL)
			error = E_CB_TYPE;
	} else if (s->cbind_flag == 'p') {
		error = E_CB_NOT_SUPPORTED;
	} else if (s->cbind_flag == 'y' && s->y_is_downgrade) {
		error = E_CB_DOWNGRADE;
	}
	if (error != NULL) {
		free(raw_user);
		return error;
	}

	s->username = scram_saslprep(raw_user);
	free(raw_user);
	if (s->username == NULL || *s->username == '\0')
		return E_NOT_AUTHORIZED;
	return NULL;
}

enum scram_step scram_server_client_first(struct scram_server *s, const char *msg, size_t len,
                                          const char **username_r, const char **error_r)
{
	const char *unused;
	if (error_r == NULL)
		error_r = &unused;
	*username_r = NULL;
	if (s->state != SCRAM_STATE_CLIENT_FIRST) {
		s->state = SCRAM_STATE_DONE;
		*error_r = E_MALFORMED;
		return SCRAM_FAIL;
	}
	s->state = SCRAM_STATE_DONE;
	char *m = message_dup(msg, len);
	if (m == NULL) {
		*error_r = E_MALFORMED;
		return SCRAM_FAIL;
	}
	const char *error = parse_client_first(s, m);
	free(m);
	if (error != NULL) {
		*error_r = error;
		return SCRAM_FAIL;
	}
	s->state = SCRAM_STATE_CHALLENGE;
	*username_r = s->username;
	return SCRAM_CONTINUE;
}

enum scram_step scram_server_challenge(struct scram_server *s, const struct scram_credentials *cred,
                                       char **out_r, size_t *out_len_r)
{
	*out_r = NULL;
	*out_len_r = 0;
	if (s->state != SCRAM_STATE_CHALLENGE) {
		s->state = SCRAM_STATE_DONE;
		return SCRAM_FAIL;
	}
	s->state = SCRAM_STATE_DONE;

	char *salt;
	unsigned iterations;
	if (cred != NULL) {
		/* Stored data the exchange cannot use is an error of the store,
		 * not a login failure to disguise. */
		unsigned char *raw;
		size_t raw_len;
		if (cred->hash != s->hash || cred->iterations == 0 || cred->salt_b64 == NULL ||
		    base64_decode(cred->salt_b64, strlen(cred->salt_b64), &raw, &raw_len) != 0)
			return SCRAM_FAIL;
		free(raw);
		if (raw_len == 0)
			return SCRAM_FAIL;
		salt = xstrdup(cred->salt_b64);
		iterations = cred->iterations;
		memcpy(s->stored_key, cred->stored_key, sizeof(s->stored_key));
		memcpy(s->server_key, cred->server_key, sizeof(s->server_key));
		s->known_user = true;
	} else {
		salt = fake_salt_b64(s->hash, s->username);
		iterations = SCRAM_DEFAULT_ITERATIONS;
		/* Dummy keys: the final step does the same work and then fails. */
		random_bytes(s->stored_key, sizeof(s->stored_key));
		random_bytes(s->server_key, sizeof(s->server_key));
		s->known_user = false;
	}

	char *snonce;
	if (s->snonce_override != NULL) {
		snonce = xstrdup(s->snonce_override);
	} else {
		unsigned char r[SCRAM_SNONCE_BYTES];
		random_bytes(r, sizeof(r));
		snonce = base64_encode(r, sizeof(r));
	}
	s->nonce = xasprintf("%s%s", s->cnonce, snonce);
	free(snonce);
	/* server-first-message = nonce "," salt "," iteration-count
	 *                        ["," extensions]: XEP-0474 adds h=. */
	if (s->ssdp_b64 != NULL)
		s->server_first = xasprintf("r=%s,s=%s,i=%u,h=%s", s->nonce, salt, iterations, s->ssdp_b64);
	else
		s->server_first = xasprintf("r=%s,s=%s,i=%u", s->nonce, salt, iterations);
	free(salt);

	*out_r = xstrdup(s->server_first);
	*out_len_r = strlen(s->server_first);
	s->state = SCRAM_STATE_CLIENT_FINAL;
	return SCRAM_CONTINUE;
}

/* The c= attribute must be base64 of gs2-header followed, with the 'p'
 * flag, by the channel binding data. */
static bool cbind_matches(const struct scram_server *s, const char *b64, size_t b64_len, const char **error_r)
{
	unsigned char *got;
	size_t got_len;
	if (base64_decode(b64, b64_len, &got, &got_len) != 0) {
		*error_r = E_MALFORMED;
		return false;
	}
	size_t hdr_len = strlen(s->gs2_header);
	size_t cb_len = s->cbind_flag == 'p' ? s->cbind_len : 0;
	bool ok = got_len == hdr_len + cb_len && memcmp(got, s->gs2_header, hdr_len) == 0 &&
	          (cb_len == 0 || secure_memeq(got + hdr_len, s->cbind_data, cb_len));
	free(got);
	if (!ok)
		*error_r = E_CB_MISMATCH;
	return ok;
}

enum scram_step scram_server_client_final(struct scram_server *s, const char *msg, size_t len, char **out_r,
                                          size_t *out_len_r, const char **error_r)
{
	const char *unused;
	if (error_r == NULL)
		error_r = &unused;
	*out_r = NULL;
	*out_len_r = 0;
	if (s->state != SCRAM_STATE_CLIENT_FINAL) {
		s->state = SCRAM_STATE_DONE;
		*error_r = E_MALFORMED;
		return SCRAM_FAIL;
	}
	s->state = SCRAM_STATE_DONE;
	char *m = message_dup(msg, len);
	if (m == NULL) {
		*error_r = E_MALFORMED;
		return SCRAM_FAIL;
	}

	/* client-final-message = channel-binding "," nonce ["," extensions]
	 *                        "," proof */
	enum scram_step ret = SCRAM_FAIL;
	size_t hlen = scram_hash_len(s->hash);
	unsigned char *proof = NULL;
	size_t proof_len = 0;
	unsigned char sig[SCRAM_MAX_HASH], client_key[SCRAM_MAX_HASH], check[SCRAM_MAX_HASH];
	struct buf auth = { 0 };
	const char *p = m;

	*error_r = E_MALFORMED;
	if (p[0] != 'c' || p[1] != '=')
		goto out;
	const char *cb = p + 2;
	size_t cb_len = value_len(cb);
	if (cb_len == 0)
		goto out;
	p = cb + cb_len;
	if (p[0] != ',' || p[1] != 'r' || p[2] != '=')
		goto out;
	const char *nonce = p + 3;
	size_t nonce_len = value_len(nonce);
	p = nonce + nonce_len;
	if (skip_extensions(&p, true) != 0 || p[0] != ',' || p[1] != 'p' || p[2] != '=')
		goto out;
	const char *without_proof_end = p;
	const char *proof_b64 = p + 3;
	size_t proof_b64_len = value_len(proof_b64);
	if (proof_b64[proof_b64_len] != '\0' || proof_b64_len == 0 ||
	    base64_decode(proof_b64, proof_b64_len, &proof, &proof_len) != 0)
		goto out;

	if (!cbind_matches(s, cb, cb_len, error_r))
		goto out;
	if (nonce_len != strlen(s->nonce) || memcmp(nonce, s->nonce, nonce_len) != 0) {
		*error_r = E_NOT_AUTHORIZED;
		goto out;
	}
	if (proof_len != hlen) {
		*error_r = E_NOT_AUTHORIZED;
		goto out;
	}

	/* AuthMessage = client-first-message-bare "," server-first-message ","
	 *               client-final-message-without-proof */
	buf_append_str(&auth, s->client_first_bare);
	buf_append(&auth, ",", 1);
	buf_append_str(&auth, s->server_first);
	buf_append(&auth, ",", 1);
	buf_append(&auth, m, (size_t)(without_proof_end - m));

	/* ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage);
	 * the proof holds when H(ClientKey) == StoredKey. */
	scram_hmac(s->hash, s->stored_key, hlen, auth.data, auth.len, sig);
	for (size_t i = 0; i < hlen; i++)
		client_key[i] = proof[i] ^ sig[i];
	scram_digest(s->hash, client_key, hlen, check);
	bool proof_ok = secure_memeq(check, s->stored_key, hlen);
	if (!proof_ok || !s->known_user) {
		*error_r = E_NOT_AUTHORIZED;
		goto out;
	}

	/* ServerSignature = HMAC(ServerKey, AuthMessage) */
	scram_hmac(s->hash, s->server_key, hlen, auth.data, auth.len, sig);
	char *v = base64_encode(sig, hlen);
	*out_r = xasprintf("v=%s", v);
	*out_len_r = strlen(*out_r);
	free(v);
	*error_r = NULL;
	ret = SCRAM_SUCCESS;
out:
	explicit_bzero(sig, sizeof(sig));
	explicit_bzero(client_key, sizeof(client_key));
	explicit_bzero(check, sizeof(check));
	if (proof != NULL) {
		explicit_bzero(proof, proof_len);
		free(proof);
	}
	explicit_bzero(s->stored_key, sizeof(s->stored_key));
	explicit_bzero(s->server_key, sizeof(s->server_key));
	buf_free(&auth);
	explicit_bzero(m, len);
	free(m);
	return ret;
}
