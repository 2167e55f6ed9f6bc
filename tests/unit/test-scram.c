/*
 * Unit tests for lib/scram.c: the RFC 5802 and RFC 7677 test vectors, a
 * small independent SCRAM client (OpenSSL directly) to drive full
 * exchanges, unknown users, channel binding and malformed messages.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "lib/scram.h"

/* ---- helpers ----------------------------------------------------------- */

static void derive_b64salt(enum scram_hash h, const char *password, const char *salt_b64, unsigned iterations,
                           struct scram_credentials *cred)
{
	unsigned char *salt;
	size_t salt_len;
	assert_int_equal(base64_decode(salt_b64, strlen(salt_b64), &salt, &salt_len), 0);
	assert_int_equal(scram_derive(h, password, salt, salt_len, iterations, cred), 0);
	free(salt);
}

static enum scram_step first(struct scram_server *s, const char *msg, const char **username_r,
                             const char **error_r)
{
	return scram_server_client_first(s, msg, strlen(msg), username_r, error_r);
}

static enum scram_step final(struct scram_server *s, const char *msg, char **out_r, const char **error_r)
{
	size_t len;
	return scram_server_client_final(s, msg, strlen(msg), out_r, &len, error_r);
}

/* What a client computes.  Returns the client-final message for the given
 * channel-binding attribute value, password and exchange so far, and the
 * server-final it should expect in *v_r. */
static char *client_final(enum scram_hash h, const char *password, const char *client_first_bare,
                          const char *server_first, const char *cbind_b64, char **v_r)
{
	const EVP_MD *md = h == SCRAM_SHA1 ? EVP_sha1() : EVP_sha256();
	int hlen = EVP_MD_get_size(md);
	char nonce[256], salt_b64[256];
	unsigned iterations;
	unsigned char salted[64], ck[64], sk[64], svk[64], sig[64], ss[64], proof[64];
	unsigned int l;

	assert_int_equal(sscanf(server_first, "r=%255[^,],s=%255[^,],i=%u", nonce, salt_b64, &iterations), 3);
	unsigned char *salt;
	size_t salt_len;
	assert_int_equal(base64_decode(salt_b64, strlen(salt_b64), &salt, &salt_len), 0);
	assert_int_equal(PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, (int)salt_len,
	                                   (int)iterations, md, hlen, salted),
	                 1);
	free(salt);
	HMAC(md, salted, hlen, (const unsigned char *)"Client Key", 10, ck, &l);
	EVP_Digest(ck, (size_t)hlen, sk, &l, md, NULL);
	HMAC(md, salted, hlen, (const unsigned char *)"Server Key", 10, svk, &l);

	char *without_proof = xasprintf("c=%s,r=%s", cbind_b64, nonce);
	char *auth = xasprintf("%s,%s,%s", client_first_bare, server_first, without_proof);
	HMAC(md, sk, hlen, (const unsigned char *)auth, strlen(auth), sig, &l);
	for (int i = 0; i < hlen; i++)
		proof[i] = ck[i] ^ sig[i];
	HMAC(md, svk, hlen, (const unsigned char *)auth, strlen(auth), ss, &l);
	char *p64 = base64_encode(proof, (size_t)hlen);
	char *v64 = base64_encode(ss, (size_t)hlen);
	char *msg = xasprintf("%s,p=%s", without_proof, p64);
	*v_r = xasprintf("v=%s", v64);
	free(p64);
	free(v64);
	free(auth);
	free(without_proof);
	return msg;
}

/* Run client-first and the challenge for a known user; returns server-first. */
static char *start(struct scram_server *s, const char *client_first, const struct scram_credentials *cred)
{
	const char *username = NULL, *error = NULL;
	char *out = NULL;
	size_t out_len = 0;
	assert_int_equal(first(s, client_first, &username, &error), SCRAM_CONTINUE);
	assert_non_null(username);
	assert_int_equal(scram_server_challenge(s, cred, &out, &out_len), SCRAM_CONTINUE);
	assert_non_null(out);
	assert_int_equal(out_len, strlen(out));
	return out;
}

/* ---- test vectors -------------------------------------------------------- */

static void test_rfc5802_sha1(void **state)
{
	struct scram_credentials cred;
	derive_b64salt(SCRAM_SHA1, "pencil", "QSXCR+Q6sek8bf92", 4096, &cred);
	assert_int_equal(cred.hash, SCRAM_SHA1);
	assert_int_equal(cred.iterations, 4096);
	assert_string_equal(cred.salt_b64, "QSXCR+Q6sek8bf92");

	struct scram_server *s = scram_server_new(SCRAM_SHA1, false, NULL, NULL, 0, false);
	const char *username = NULL, *error = NULL;
	assert_int_equal(first(s, "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL", &username, &error), SCRAM_CONTINUE);
	assert_string_equal(username, "user");
	assert_null(scram_server_authzid(s));
	scram_server_set_nonce(s, "3rfcNHYJY1ZVvWVs7j");
	char *out = NULL;
	size_t out_len;
	assert_int_equal(scram_server_challenge(s, &cred, &out, &out_len), SCRAM_CONTINUE);
	assert_string_equal(out, "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096");
	assert_int_equal(out_len, strlen(out));
	free(out);

	out = NULL;
	error = NULL;
	assert_int_equal(
	        final(s, "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
	              &out, &error),
	        SCRAM_SUCCESS);
	assert_string_equal(out, "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=");
	free(out);

	/* nothing more after success */
	out = NULL;
	assert_int_equal(
	        final(s, "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
	              &out, &error),
	        SCRAM_FAIL);
	assert_null(out);
	assert_string_equal(error, "malformed-request");
	scram_server_free(&s);
	assert_null(s);
	scram_credentials_clear(&cred);
	assert_null(cred.salt_b64);
}

#define RFC7677_NONCE "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"

/* The exchange of the RFC 7677 vector (user "user", password "pencil",
 * its salt and nonces) with hash h and the client proof p64; returns the
 * result of client-final, *out_r the server-final message. */
static enum scram_step rfc7677_exchange(enum scram_hash h, const char *p64, char **out_r)
{
	struct scram_credentials cred;
	derive_b64salt(h, "pencil", "W22ZaJ0SNY7soEsUEjb6gQ==", 4096, &cred);
	struct scram_server *s = scram_server_new(h, false, NULL, NULL, 0, false);
	const char *username = NULL, *error = NULL;
	assert_int_equal(first(s, "n,,n=user,r=rOprNGfwEbeRWgbNEkqO", &username, &error), SCRAM_CONTINUE);
	assert_string_equal(username, "user");
	scram_server_set_nonce(s, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
	char *out = NULL;
	size_t out_len;
	assert_int_equal(scram_server_challenge(s, &cred, &out, &out_len), SCRAM_CONTINUE);
	assert_string_equal(out, "r=" RFC7677_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096");
	free(out);
	char *msg = xasprintf("c=biws,r=%s,p=%s", RFC7677_NONCE, p64);
	*out_r = NULL;
	enum scram_step st = final(s, msg, out_r, &error);
	free(msg);
	scram_server_free(&s);
	scram_credentials_clear(&cred);
	return st;
}

static void test_rfc7677_sha256(void **state)
{
	char *out;
	assert_int_equal(rfc7677_exchange(SCRAM_SHA256, "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", &out),
	                 SCRAM_SUCCESS);
	assert_string_equal(out, "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
	free(out);
}

/* The RFC 7677 inputs with SHA-512; the expected values were computed
 * independently (Python's hashlib and hmac). */
static void test_sha512_vector(void **state)
{
	char *out;
	assert_int_equal(
	        rfc7677_exchange(SCRAM_SHA512,
	                         "gMGXRcevScNtxZ6/"
	                         "8lQYpGtnsNAc3mGcmNomv+xnoOMw+3R2xNJdMNnzMlTN8PPC6wdp6dybEmDYXYTxwnYPJQ==",
	                         &out),
	        SCRAM_SUCCESS);
	assert_string_equal(
	        out,
	        "v=ZQnYEgWQMFmmsM8aQMF0nDDCy/AgCzkwk8CmMZYcMg0vSVlKDanekLtifDSeVGT4+5ZxXnJq199RVG2rR7N7Zw==");
	free(out);
	/* the SHA-256 proof of the same inputs fails */
	assert_int_equal(rfc7677_exchange(SCRAM_SHA512, "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", &out),
	                 SCRAM_FAIL);
	assert_null(out);
}

static void test_wrong_proof(void **state)
{
	struct scram_credentials cred;
	derive_b64salt(SCRAM_SHA1, "pencil", "QSXCR+Q6sek8bf92", 4096, &cred);
	struct scram_server *s = scram_server_new(SCRAM_SHA1, false, NULL, NULL, 0, false);
	scram_server_set_nonce(s, "3rfcNHYJY1ZVvWVs7j");
	free(start(s, "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL", &cred));
	char *out = NULL;
	const char *error = NULL;
	/* one bit of the RFC proof changed (v0X8 -> w0X8) */
	assert_int_equal(
	        final(s, "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=w0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
	              &out, &error),
	        SCRAM_FAIL);
	assert_null(out);
	assert_string_equal(error, "not-authorized");
	scram_server_free(&s);

	/* the right password through the test client succeeds, a wrong one fails */
	for (int good = 0; good < 2; good++) {
		s = scram_server_new(SCRAM_SHA1, false, NULL, NULL, 0, false);
		char *sf = start(s, "n,,n=user,r=abcdefgh", &cred);
		char *v;
		char *cf = client_final(SCRAM_SHA1, good ? "pencil" : "pencil2", "n=user,r=abcdefgh", sf,
		                        "biws", &v);
		out = NULL;
		error = NULL;
		enum scram_step st = final(s, cf, &out, &error);
		if (good) {
			assert_int_equal(st, SCRAM_SUCCESS);
			assert_string_equal(out, v);
		} else {
			assert_int_equal(st, SCRAM_FAIL);
			assert_string_equal(error, "not-authorized");
			assert_null(out);
		}
		free(out);
		free(v);
		free(cf);
		free(sf);
		scram_server_free(&s);
	}
	scram_credentials_clear(&cred);
}

/* ---- unknown users ------------------------------------------------------- */

static char *unknown_challenge(enum scram_hash h, const char *client_first, struct scram_server **s_r)
{
	struct scram_server *s = scram_server_new(h, false, NULL, NULL, 0, false);
	const char *username = NULL, *error = NULL;
	char *out = NULL;
	size_t out_len;
	assert_int_equal(first(s, client_first, &username, &error), SCRAM_CONTINUE);
	assert_int_equal(scram_server_challenge(s, NULL, &out, &out_len), SCRAM_CONTINUE);
	*s_r = s;
	return out;
}

static void salt_of(const char *server_first, char *salt, size_t size)
{
	const char *p = strstr(server_first, ",s=");
	assert_non_null(p);
	p += 3;
	size_t n = strcspn(p, ",");
	assert_true(n < size);
	memcpy(salt, p, n);
	salt[n] = '\0';
}

static void test_unknown_user(void **state)
{
	struct scram_server *s, *s2;
	char salt1[64], salt2[64], salt3[64];

	char *sf = unknown_challenge(SCRAM_SHA256, "n,,n=nobody,r=cnonce1", &s);
	/* looks like any other challenge: our nonce appended, 16-byte salt, default count */
	assert_true(str_has_prefix(sf, "r=cnonce1"));
	const char *r_end = strchr(sf, ',');
	assert_int_equal((size_t)(r_end - sf), strlen("r=cnonce1") + 24);
	salt_of(sf, salt1, sizeof(salt1));
	assert_int_equal(strlen(salt1), 24);
	assert_true(strstr(sf, ",i=4096") != NULL);
	/* even the right computation for some password fails, as not-authorized */
	char *v;
	char *cf = client_final(SCRAM_SHA256, "pencil", "n=nobody,r=cnonce1", sf, "biws", &v);
	char *out = NULL;
	const char *error = NULL;
	assert_int_equal(final(s, cf, &out, &error), SCRAM_FAIL);
	assert_string_equal(error, "not-authorized");
	assert_null(out);
	free(cf);
	free(v);
	free(sf);
	scram_server_free(&s);

	/* the same user gets the same salt; another user, or another hash, another */
	sf = unknown_challenge(SCRAM_SHA256, "n,,n=nobody,r=cnonce2", &s2);
	salt_of(sf, salt2, sizeof(salt2));
	assert_string_equal(salt1, salt2);
	free(sf);
	scram_server_free(&s2);
	sf = unknown_challenge(SCRAM_SHA256, "n,,n=somebody,r=cnonce2", &s2);
	salt_of(sf, salt3, sizeof(salt3));
	assert_string_not_equal(salt1, salt3);
	free(sf);
	scram_server_free(&s2);
	sf = unknown_challenge(SCRAM_SHA1, "n,,n=nobody,r=cnonce2", &s2);
	salt_of(sf, salt3, sizeof(salt3));
	assert_string_not_equal(salt1, salt3);
	free(sf);
	scram_server_free(&s2);
}

static void test_random_nonce(void **state)
{
	struct scram_credentials cred;
	assert_int_equal(scram_derive(SCRAM_SHA256, "pw", NULL, 0, 0, &cred), 0);
	struct scram_server *a = scram_server_new(SCRAM_SHA256, false, NULL, NULL, 0, false);
	struct scram_server *b = scram_server_new(SCRAM_SHA256, false, NULL, NULL, 0, false);
	char *sa = start(a, "n,,n=u,r=x", &cred);
	char *sb = start(b, "n,,n=u,r=x", &cred);
	assert_string_not_equal(sa, sb);
	assert_int_equal(strcspn(sa, ","), strlen("r=x") + 24);
	free(sa);
	free(sb);
	scram_server_free(&a);
	scram_server_free(&b);
	scram_credentials_clear(&cred);
}

/* ---- usernames and authzid ----------------------------------------------- */

static void test_username_escapes(void **state)
{
	static const struct {
		const char *msg;
		const char *user; /* NULL: must fail */
		const char *authzid;
		const char *error;
	} t[] = {
		{ "n,,n=a=2Cb=3Dc,r=abc", "a,b=c", NULL, NULL },
		{ "n,,n==3D,r=abc", "=", NULL, NULL },
		{ "n,a=juliet@example.com,n=juliet,r=abc", "juliet", "juliet@example.com", NULL },
		{ "n,a=x=2Cy=3D,n=juliet,r=abc", "juliet", "x,y=", NULL },
		{ "n,,n=I\xc2\xadX,r=abc", "IX", NULL, NULL }, /* RFC 4013: soft hyphen mapped out */
		{ "n,,n=a\xc2\xa0"
		  "b,r=abc",
		  "a b", NULL, NULL },                                   /* non-ASCII space to space */
		{ "n,,n=\xe2\x85\xa8,r=abc", "IX", NULL, NULL },         /* U+2168 ROMAN NUMERAL NINE, NFKC */
		{ "n,,n=a=2cb,r=abc", NULL, NULL, "malformed-request" }, /* lower case escape */
		{ "n,,n=a=41,r=abc", NULL, NULL, "malformed-request" },
		{ "n,,n=a=,r=abc", NULL, NULL, "malformed-request" },
		{ "n,,n=a=2,r=abc", NULL, NULL, "malformed-request" },
		{ "n,,n=,r=abc", NULL, NULL, "malformed-request" },
		{ "n,a=,n=u,r=abc", NULL, NULL, "malformed-request" },
		{ "n,a=x=20,n=u,r=abc", NULL, NULL, "malformed-request" },
		{ "n,,n=a\x07"
		  "b,r=abc",
		  NULL, NULL, "not-authorized" },                        /* SASLprep: control character */
		{ "n,,n=\xc2\xad,r=abc", NULL, NULL, "not-authorized" }, /* SASLprep: empty */
	};
	for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
		struct scram_server *s = scram_server_new(SCRAM_SHA256, false, NULL, NULL, 0, false);
		const char *username = "unset", *error = NULL;
		enum scram_step st = first(s, t[i].msg, &username, &error);
		if (t[i].user != NULL) {
			if (st != SCRAM_CONTINUE)
				print_error("case %zu: %s\n", i, error);
			assert_int_equal(st, SCRAM_CONTINUE);
			assert_string_equal(username, t[i].user);
			if (t[i].authzid != NULL)
				assert_string_equal(scram_server_authzid(s), t[i].authzid);
			else
				assert_null(scram_server_authzid(s));
		} else {
			if (st != SCRAM_FAIL)
				print_error("case %zu accepted\n", i);
			assert_int_equal(st, SCRAM_FAIL);
			assert_null(username);
			assert_string_equal(error, t[i].error);
		}
		scram_server_free(&s);
	}
}

/* ---- channel binding ----------------------------------------------------- */

static const unsigned char cbdata[32] = {
	0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10,
	0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20,
};

/* c= value: base64(gs2-header + data). */
static char *cbind_attr(const char *gs2, const unsigned char *data, size_t len)
{
	struct buf b = { 0 };
	buf_append_str(&b, gs2);
	if (data != NULL)
		buf_append(&b, data, len);
	char *r = base64_encode(b.data, b.len);
	buf_free(&b);
	return r;
}

/* A full PLUS exchange whose client binds to client_data; returns the step. */
static enum scram_step plus_exchange(const unsigned char *client_data, const char **error_r, char **out_r)
{
	struct scram_credentials cred;
	assert_int_equal(scram_derive(SCRAM_SHA256, "secret", NULL, 0, 0, &cred), 0);
	struct scram_server *s =
	        scram_server_new(SCRAM_SHA256, true, "tls-exporter", cbdata, sizeof(cbdata), true);
	char *sf = start(s, "p=tls-exporter,,n=juliet,r=nonce", &cred);
	char *c = cbind_attr("p=tls-exporter,,", client_data, sizeof(cbdata));
	char *v;
	char *cf = client_final(SCRAM_SHA256, "secret", "n=juliet,r=nonce", sf, c, &v);
	*out_r = NULL;
	*error_r = NULL;
	enum scram_step st = final(s, cf, out_r, error_r);
	if (st == SCRAM_SUCCESS)
		assert_string_equal(*out_r, v);
	free(v);
	free(cf);
	free(c);
	free(sf);
	scram_server_free(&s);
	scram_credentials_clear(&cred);
	return st;
}

static void test_channel_binding(void **state)
{
	const char *error;
	char *out;

	assert_int_equal(plus_exchange(cbdata, &error, &out), SCRAM_SUCCESS);
	free(out);

	unsigned char wrong[sizeof(cbdata)];
	memcpy(wrong, cbdata, sizeof(wrong));
	wrong[31] ^= 1;
	assert_int_equal(plus_exchange(wrong, &error, &out), SCRAM_FAIL);
	assert_string_equal(error, "channel-bindings-dont-match");
	assert_null(out);

	/* PLUS: the data alone, or the header alone, does not do */
	struct scram_credentials cred;
	assert_int_equal(scram_derive(SCRAM_SHA256, "secret", NULL, 0, 0, &cred), 0);
	const char *c_values[2];
	char *hdr_only = cbind_attr("p=tls-exporter,,", NULL, 0);
	char *wrong_hdr = cbind_attr("n,,", cbdata, sizeof(cbdata));
	c_values[0] = hdr_only;
	c_values[1] = wrong_hdr;
	for (int i = 0; i < 2; i++) {
		struct scram_server *s =
		        scram_server_new(SCRAM_SHA256, true, "tls-exporter", cbdata, sizeof(cbdata), true);
		char *sf = start(s, "p=tls-exporter,,n=juliet,r=nonce", &cred);
		char *v;
		char *cf = client_final(SCRAM_SHA256, "secret", "n=juliet,r=nonce", sf, c_values[i], &v);
		out = NULL;
		assert_int_equal(final(s, cf, &out, &error), SCRAM_FAIL);
		assert_string_equal(error, "channel-bindings-dont-match");
		free(v);
		free(cf);
		free(sf);
		scram_server_free(&s);
	}
	free(hdr_only);
	free(wrong_hdr);
	scram_credentials_clear(&cred);

	static const struct {
		bool plus;
		bool offered;
		const char *msg;
		const char *error; /* NULL: accepted */
	} t[] = {
		{ true, true, "p=tls-exporter,,n=u,r=x", NULL },
		{ true, true, "p=tls-unique,,n=u,r=x", "unsupported-channel-binding-type" },
		{ true, true, "n,,n=u,r=x", "malformed-request" },
		{ true, true, "y,,n=u,r=x", "malformed-request" },
		{ true, true, "p=,,n=u,r=x", "malformed-request" },
		{ true, true, "p=tls_x,,n=u,r=x", "malformed-request" },
		{ false, true, "y,,n=u,r=x", "server-does-support-channel-binding" },
		{ false, false, "y,,n=u,r=x", NULL },
		{ false, true, "n,,n=u,r=x", NULL },
		{ false, true, "p=tls-exporter,,n=u,r=x", "channel-binding-not-supported" },
		{ false, false, "p=tls-unique,,n=u,r=x", "channel-binding-not-supported" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
		struct scram_server *s = scram_server_new(
		        SCRAM_SHA1, t[i].plus, t[i].plus ? "tls-exporter" : NULL, t[i].plus ? cbdata : NULL,
		        t[i].plus ? sizeof(cbdata) : 0, t[i].offered);
		const char *username = NULL;
		error = NULL;
		enum scram_step st = first(s, t[i].msg, &username, &error);
		if (t[i].error == NULL) {
			assert_int_equal(st, SCRAM_CONTINUE);
		} else {
			if (st != SCRAM_FAIL || strcmp(error, t[i].error) != 0)
				print_error("case %zu: %d %s\n", i, st, error);
			assert_int_equal(st, SCRAM_FAIL);
			assert_string_equal(error, t[i].error);
		}
		scram_server_free(&s);
	}

	/* the client names a type this link does not support (tls-unique on
	 * TLS 1.3): the caller passes the name without data */
	struct scram_server *u = scram_server_new(SCRAM_SHA256, true, "tls-unique", NULL, 0, false);
	const char *uname;
	assert_int_equal(first(u, "p=tls-unique,,n=u,r=x", &uname, &error), SCRAM_FAIL);
	assert_string_equal(error, "unsupported-channel-binding-type");
	scram_server_free(&u);

	/* PLUS selected but the link gave no binding data */
	struct scram_server *s = scram_server_new(SCRAM_SHA256, true, NULL, NULL, 0, true);
	const char *username;
	assert_int_equal(first(s, "p=tls-exporter,,n=u,r=x", &username, &error), SCRAM_FAIL);
	assert_string_equal(error, "channel-binding-not-supported");
	scram_server_free(&s);
}

static void test_y_flag_exchange(void **state)
{
	/* 'y' without PLUS on offer: the c= attribute carries "y,," */
	struct scram_credentials cred;
	assert_int_equal(scram_derive(SCRAM_SHA1, "secret", NULL, 0, 1000, &cred), 0);
	for (int right = 0; right < 2; right++) {
		struct scram_server *s = scram_server_new(SCRAM_SHA1, false, NULL, NULL, 0, false);
		char *sf = start(s, "y,,n=u,r=x", &cred);
		assert_true(strstr(sf, ",i=1000") != NULL);
		char *v;
		char *cf = client_final(SCRAM_SHA1, "secret", "n=u,r=x", sf, right ? "eSws" : "biws", &v);
		char *out = NULL;
		const char *error = NULL;
		if (right) {
			assert_int_equal(final(s, cf, &out, &error), SCRAM_SUCCESS);
			assert_string_equal(out, v);
			free(out);
		} else {
			assert_int_equal(final(s, cf, &out, &error), SCRAM_FAIL);
			assert_string_equal(error, "channel-bindings-dont-match");
		}
		free(v);
		free(cf);
		free(sf);
		scram_server_free(&s);
	}
	scram_credentials_clear(&cred);
}

/* ---- XEP-0474 downgrade protection ------------------------------------- */

static void test_ssdp(void **state)
{
	/* The example of XEP-0474 §5.3: SHA-1 of the advertised lists. */
	static const char advertised[] =
	        "SCRAM-SHA-1\x1eSCRAM-SHA-1-PLUS\x1ftls-exporter\x1etls-server-end-point";
	struct scram_credentials cred;
	derive_b64salt(SCRAM_SHA1, "pencil", "QSXCR+Q6sek8bf92", 4096, &cred);
	struct scram_server *s = scram_server_new(SCRAM_SHA1, false, NULL, NULL, 0, false);
	scram_server_set_nonce(s, "a09117a6");
	scram_server_set_ssdp(s, advertised, strlen(advertised));
	char *sf = start(s, "n,,n=user,r=12C4CD5C", &cred);
	assert_string_equal(sf,
	                    "r=12C4CD5Ca09117a6,s=QSXCR+Q6sek8bf92,i=4096,h=G6k/rBLDqgOhRRaCuuatSDFkJ08=");
	/* the attribute is part of AuthMessage: a client that signs it logs in */
	char *v;
	char *cf = client_final(SCRAM_SHA1, "pencil", "n=user,r=12C4CD5C", sf, "biws", &v);
	char *out = NULL;
	const char *error = NULL;
	assert_int_equal(final(s, cf, &out, &error), SCRAM_SUCCESS);
	assert_string_equal(out, v);
	free(out);
	free(v);
	free(cf);
	scram_server_free(&s);

	/* a client that saw another list (and signs without h) fails */
	s = scram_server_new(SCRAM_SHA1, false, NULL, NULL, 0, false);
	scram_server_set_nonce(s, "a09117a6");
	scram_server_set_ssdp(s, advertised, strlen(advertised));
	free(start(s, "n,,n=user,r=12C4CD5C", &cred));
	cf = client_final(SCRAM_SHA1, "pencil", "n=user,r=12C4CD5C",
	                  "r=12C4CD5Ca09117a6,s=QSXCR+Q6sek8bf92,i=4096", "biws", &v);
	assert_int_equal(final(s, cf, &out, &error), SCRAM_FAIL);
	assert_string_equal(error, "not-authorized");
	free(v);
	free(cf);
	free(sf);
	scram_server_free(&s);

	/* SHA-256 exchanges hash with SHA-256; unknown users get h= as well */
	s = scram_server_new(SCRAM_SHA256, false, NULL, NULL, 0, false);
	scram_server_set_ssdp(s, "PLAIN", 5);
	const char *username;
	assert_int_equal(first(s, "n,,n=nobody,r=abc", &username, &error), SCRAM_CONTINUE);
	size_t out_len;
	assert_int_equal(scram_server_challenge(s, NULL, &out, &out_len), SCRAM_CONTINUE);
	/* base64 of SHA-256("PLAIN") */
	assert_non_null(strstr(out, ",h=ANsJqwaeZFEHIoJ5cVa0Q0l5K4KVNGSTSqakdMrhdr8="));
	free(out);
	scram_server_free(&s);
	scram_credentials_clear(&cred);
}

/* ---- malformed messages ------------------------------------------------- */

static void test_malformed_first(void **state)
{
	static const char *bad[] = {
		"",
		"n,,",
		"n,,r=abc",        /* no username */
		"n,,n=user",       /* no nonce */
		"n,,n=user,r=",    /* empty nonce */
		"n,,n=user,r=a b", /* nonce not printable */
		"n,,n=user,r=ab\x7f",
		"n,,r=abc,n=user", /* order */
		"m=ext,n=user,r=abc",
		"n,,m=ext,n=user,r=abc", /* mandatory extension */
		"x,,n=user,r=abc",       /* unknown gs2 flag */
		"n,n=user,r=abc",        /* gs2 header cut short */
		"n,b=x,n=user,r=abc",    /* not an authzid */
		"nn,,n=user,r=abc",
		"n,,n=user,r=abc,",    /* empty extension */
		"n,,n=user,r=abc,1=x", /* extension name not ALPHA */
		"n,,n=user,r=abc,x",   /* extension without value */
		"n,,n=user,r=abc,x=",
		"n,,n=us\xffr,r=abc", /* not UTF-8 */
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct scram_server *s = scram_server_new(SCRAM_SHA256, false, NULL, NULL, 0, false);
		const char *username = "unset", *error = NULL;
		enum scram_step st = first(s, bad[i], &username, &error);
		if (st != SCRAM_FAIL)
			print_error("case %zu \"%s\" accepted\n", i, bad[i]);
		assert_int_equal(st, SCRAM_FAIL);
		assert_string_equal(error, "malformed-request");
		assert_null(username);
		/* and the object refuses to go on */
		char *out = NULL;
		size_t out_len;
		assert_int_equal(scram_server_challenge(s, NULL, &out, &out_len), SCRAM_FAIL);
		assert_null(out);
		scram_server_free(&s);
	}

	/* an embedded NUL */
	struct scram_server *s = scram_server_new(SCRAM_SHA256, false, NULL, NULL, 0, false);
	const char *username, *error = NULL;
	assert_int_equal(scram_server_client_first(s, "n,,n=u\0x,r=abc", 14, &username, &error), SCRAM_FAIL);
	assert_string_equal(error, "malformed-request");
	scram_server_free(&s);

	/* optional extension after the nonce is accepted */
	s = scram_server_new(SCRAM_SHA256, false, NULL, NULL, 0, false);
	assert_int_equal(first(s, "n,,n=u,r=abc,x=1=2", &username, &error), SCRAM_CONTINUE);
	assert_string_equal(username, "u");
	scram_server_free(&s);
}

static void test_malformed_final(void **state)
{
	struct scram_credentials cred;
	derive_b64salt(SCRAM_SHA1, "pencil", "QSXCR+Q6sek8bf92", 4096, &cred);
#define NONCE "fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j"
#define PROOF "v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
	static const struct {
		const char *msg;
		const char *error;
	} t[] = {
		{ "", "malformed-request" },
		{ "c=biws,r=" NONCE, "malformed-request" },      /* no proof */
		{ "r=" NONCE ",p=" PROOF, "malformed-request" }, /* no c= */
		{ "c=biws,p=" PROOF, "malformed-request" },      /* no r= */
		{ "c=biws,r=" NONCE ",p=", "malformed-request" },
		{ "c=biws,r=" NONCE ",p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts", "malformed-request" }, /* padding */
		{ "c=biws,r=" NONCE ",p=v0X8v3Bz2T0CJGbJQy!0X+HI4Ts=", "malformed-request" },
		{ "c=biws,r=" NONCE ",p=" PROOF ",x=y", "malformed-request" }, /* proof not last */
		{ "c=bi!s,r=" NONCE ",p=" PROOF, "malformed-request" },        /* bad base64 */
		{ "c=biws,r=" NONCE ",1=2,p=" PROOF, "malformed-request" },
		{ "c=biws,r=" NONCE ",p=" PROOF "\xff", "malformed-request" },
		{ "c=eSws,r=" NONCE ",p=" PROOF, "channel-bindings-dont-match" },
		{ "c=,r=" NONCE ",p=" PROOF, "malformed-request" },
		{ "c=biws,r=fyko+d2lbbFgONRv9qkxdawL,p=" PROOF, "not-authorized" }, /* nonce cut */
		{ "c=biws,r=" NONCE "x,p=" PROOF, "not-authorized" },
		{ "c=biws,r=,p=" PROOF, "not-authorized" },
		{ "c=biws,r=" NONCE ",p=dGVzdA==", "not-authorized" },   /* proof of the wrong size */
		{ "c=biws,r=" NONCE ",x=y,p=" PROOF, "not-authorized" }, /* extension is in AuthMessage */
	};
	for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
		struct scram_server *s = scram_server_new(SCRAM_SHA1, false, NULL, NULL, 0, false);
		scram_server_set_nonce(s, "3rfcNHYJY1ZVvWVs7j");
		free(start(s, "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL", &cred));
		char *out = NULL;
		const char *error = NULL;
		enum scram_step st = final(s, t[i].msg, &out, &error);
		if (st != SCRAM_FAIL || strcmp(error, t[i].error) != 0)
			print_error("case %zu \"%s\": %d %s\n", i, t[i].msg, st, error);
		assert_int_equal(st, SCRAM_FAIL);
		assert_string_equal(error, t[i].error);
		assert_null(out);
		scram_server_free(&s);
	}

	/* an extension before the proof, counted into AuthMessage by a client, works */
	struct scram_server *s = scram_server_new(SCRAM_SHA1, false, NULL, NULL, 0, false);
	char *sf = start(s, "n,,n=user,r=abc", &cred);
	char *v;
	char *cf = client_final(SCRAM_SHA1, "pencil", "n=user,r=abc", sf, "biws", &v);
	char *p = strstr(cf, ",p=");
	char *with_ext = xasprintf("%.*s,x=y%s", (int)(p - cf), cf, p);
	free(cf);
	char *out = NULL;
	const char *error = NULL;
	/* the proof was computed without ",x=y": it must not verify */
	assert_int_equal(final(s, with_ext, &out, &error), SCRAM_FAIL);
	assert_string_equal(error, "not-authorized");
	free(with_ext);
	free(v);
	free(sf);
	scram_server_free(&s);
	scram_credentials_clear(&cred);
#undef NONCE
#undef PROOF
}

static void test_order(void **state)
{
	struct scram_credentials cred;
	derive_b64salt(SCRAM_SHA1, "pencil", "QSXCR+Q6sek8bf92", 4096, &cred);
	char *out = NULL;
	size_t out_len;
	const char *username, *error = NULL;

	/* challenge before client-first */
	struct scram_server *s = scram_server_new(SCRAM_SHA1, false, NULL, NULL, 0, false);
	assert_int_equal(scram_server_challenge(s, &cred, &out, &out_len), SCRAM_FAIL);
	assert_null(out);
	scram_server_free(&s);

	/* client-final before the challenge */
	s = scram_server_new(SCRAM_SHA1, false, NULL, NULL, 0, false);
	assert_int_equal(first(s, "n,,n=user,r=abc", &username, &error), SCRAM_CONTINUE);
	assert_int_equal(final(s,
	                       "c=biws,r=abc,p="
	                       "v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
	                       &out, &error),
	                 SCRAM_FAIL);
	assert_string_equal(error, "malformed-request");
	scram_server_free(&s);

	/* client-first twice */
	s = scram_server_new(SCRAM_SHA1, false, NULL, NULL, 0, false);
	assert_int_equal(first(s, "n,,n=user,r=abc", &username, &error), SCRAM_CONTINUE);
	assert_int_equal(first(s, "n,,n=user,r=abc", &username, &error), SCRAM_FAIL);
	assert_string_equal(error, "malformed-request");
	scram_server_free(&s);

	/* credentials for the other hash are refused */
	s = scram_server_new(SCRAM_SHA256, false, NULL, NULL, 0, false);
	assert_int_equal(first(s, "n,,n=user,r=abc", &username, &error), SCRAM_CONTINUE);
	assert_int_equal(scram_server_challenge(s, &cred, &out, &out_len), SCRAM_FAIL);
	assert_null(out);
	scram_server_free(&s);

	/* after a failed final, a retry with the right proof fails too */
	s = scram_server_new(SCRAM_SHA1, false, NULL, NULL, 0, false);
	scram_server_set_nonce(s, "3rfcNHYJY1ZVvWVs7j");
	free(start(s, "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL", &cred));
	assert_int_equal(final(s, "c=biws,r=x,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=", &out, &error), SCRAM_FAIL);
	assert_int_equal(
	        final(s, "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
	              &out, &error),
	        SCRAM_FAIL);
	assert_null(out);
	scram_server_free(&s);
	scram_server_free(&s); /* NULL is fine */
	scram_credentials_clear(&cred);
}

/* ---- derivation ---------------------------------------------------------- */

static void test_derive(void **state)
{
	struct scram_credentials a, b;

	assert_int_equal(scram_hash_len(SCRAM_SHA1), 20);
	assert_int_equal(scram_hash_len(SCRAM_SHA256), 32);
	assert_string_equal(scram_hash_name(SCRAM_SHA1), "SHA-1");
	assert_string_equal(scram_hash_name(SCRAM_SHA256), "SHA-256");
	assert_int_equal(scram_hash_len(SCRAM_SHA512), 64);
	assert_string_equal(scram_hash_name(SCRAM_SHA512), "SHA-512");

	/* defaults: random 16-byte salt, 4096 iterations */
	assert_int_equal(scram_derive(SCRAM_SHA256, "pw", NULL, 0, 0, &a), 0);
	assert_int_equal(scram_derive(SCRAM_SHA256, "pw", NULL, 0, 0, &b), 0);
	assert_int_equal(a.iterations, SCRAM_DEFAULT_ITERATIONS);
	assert_int_equal(strlen(a.salt_b64), 24);
	assert_string_not_equal(a.salt_b64, b.salt_b64);
	assert_memory_not_equal(a.stored_key, b.stored_key, 32);
	scram_credentials_clear(&a);
	scram_credentials_clear(&b);

	/* SASLprep applies: "I<soft hyphen>X" and "IX" are one password */
	static const unsigned char salt[] = "saltsaltsaltsalt";
	assert_int_equal(scram_derive(SCRAM_SHA1, "I\xc2\xadX", salt, 16, 100, &a), 0);
	assert_int_equal(scram_derive(SCRAM_SHA1, "IX", salt, 16, 100, &b), 0);
	assert_memory_equal(a.stored_key, b.stored_key, 20);
	assert_memory_equal(a.server_key, b.server_key, 20);
	scram_credentials_clear(&b);
	assert_int_equal(scram_derive(SCRAM_SHA1, "ix", salt, 16, 100, &b), 0);
	assert_memory_not_equal(a.stored_key, b.stored_key, 20);
	scram_credentials_clear(&a);
	scram_credentials_clear(&b);

	/* prohibited or broken passwords */
	assert_int_equal(scram_derive(SCRAM_SHA1,
	                              "a\x07"
	                              "b",
	                              salt, 16, 100, &a),
	                 -1);
	assert_null(a.salt_b64);
	assert_int_equal(scram_derive(SCRAM_SHA1, "a\xff", salt, 16, 100, &a), -1);
	assert_int_equal(scram_derive(SCRAM_SHA1,
	                              "\xd8\xa7"
	                              "a",
	                              salt, 16, 100, &a),
	                 -1); /* bidi */

	char *p = scram_saslprep("I\xc2\xadX");
	assert_string_equal(p, "IX");
	free(p);
	p = scram_saslprep("\xe2\x85\xa8");
	assert_string_equal(p, "IX");
	free(p);
	p = scram_saslprep("user");
	assert_string_equal(p, "user");
	free(p);
	assert_null(scram_saslprep("\x07"));
	assert_null(scram_saslprep("\xc0\x80"));

	/* clearing wipes the keys */
	assert_int_equal(scram_derive(SCRAM_SHA256, "pw", salt, 16, 10, &a), 0);
	scram_credentials_clear(&a);
	static const unsigned char zero[SCRAM_MAX_HASH];
	assert_memory_equal(a.stored_key, zero, SCRAM_MAX_HASH);
	assert_memory_equal(a.server_key, zero, SCRAM_MAX_HASH);
	assert_null(a.salt_b64);
}

/* XEP-0480: the keys from a client's SaltedPassword are those the server
 * would derive from the password, with the same salt and iterations. */
static void test_from_salted(void **state)
{
	static const unsigned char salt[] = "0123456789abcdef";
	const enum scram_hash hashes[] = { SCRAM_SHA1, SCRAM_SHA256, SCRAM_SHA512 };
	const EVP_MD *mds[] = { EVP_sha1(), EVP_sha256(), EVP_sha512() };
	for (size_t i = 0; i < 3; i++) {
		size_t len = scram_hash_len(hashes[i]);
		unsigned char salted[SCRAM_MAX_HASH];
		assert_int_equal(PKCS5_PBKDF2_HMAC("pencil", 6, salt, 16, 1000, mds[i], (int)len, salted), 1);
		struct scram_credentials a, b;
		scram_from_salted(hashes[i], salted, salt, 16, 1000, &a);
		assert_int_equal(scram_derive(hashes[i], "pencil", salt, 16, 1000, &b), 0);
		assert_int_equal(a.hash, hashes[i]);
		assert_int_equal(a.iterations, 1000);
		assert_string_equal(a.salt_b64, b.salt_b64);
		assert_memory_equal(a.stored_key, b.stored_key, len);
		assert_memory_equal(a.server_key, b.server_key, len);
		scram_credentials_clear(&a);
		scram_credentials_clear(&b);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_from_salted),     cmocka_unit_test(test_rfc5802_sha1),
		cmocka_unit_test(test_rfc7677_sha256),  cmocka_unit_test(test_sha512_vector),
		cmocka_unit_test(test_wrong_proof),     cmocka_unit_test(test_unknown_user),
		cmocka_unit_test(test_random_nonce),    cmocka_unit_test(test_username_escapes),
		cmocka_unit_test(test_channel_binding), cmocka_unit_test(test_ssdp),
		cmocka_unit_test(test_y_flag_exchange), cmocka_unit_test(test_malformed_first),
		cmocka_unit_test(test_malformed_final), cmocka_unit_test(test_order),
		cmocka_unit_test(test_derive),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
