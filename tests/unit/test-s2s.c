/*
 * Tests of the s2s pieces that need no network: dialback keys (XEP-0185)
 * against a value computed independently (Python's hmac and hashlib), and
 * the names s2s certificates are accepted for (certificates built here
 * with OpenSSL, subjectAltName written in OpenSSL's configuration syntax)
 * and the extended key usages they are accepted with; the order SRV
 * records are tried in (RFC 2782 weights) with a fixed random source.
 * Single-threaded.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "server/resolve.h"
#include "server/s2s-cert.h"
#include "server/s2s.h"

#define XMPPADDR "otherName:1.3.6.1.5.5.7.8.5;UTF8:"
#define SRVNAME "otherName:1.3.6.1.5.5.7.8.7;IA5STRING:"

/* A certificate (unsigned: only names matter here) with subject CN cn
 * and, when san is not NULL, that subjectAltName. */
static X509 *make_cert(const char *cn, const char *san)
{
	X509 *x = X509_new();
	assert_non_null(x);
	X509_NAME *name = X509_get_subject_name(x);
	assert_int_equal(
	        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0),
	        1);
	if (san != NULL) {
		X509V3_CTX ctx;
		X509V3_set_ctx_nodb(&ctx);
		X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
		X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, san);
		assert_non_null(ext);
		assert_int_equal(X509_add_ext(x, ext, -1), 1);
		X509_EXTENSION_free(ext);
	}
	return x;
}

static bool names(const char *san, const char *domain)
{
	X509 *x = make_cert("cn.example", san);
	bool ok = s2s_cert_names_domain(x, domain);
	X509_free(x);
	return ok;
}

static void test_cert_dnsname(void **state)
{
	(void)state;
	assert_true(names("DNS:example.org", "example.org"));
	assert_true(names("DNS:Example.ORG", "example.org"));
	assert_true(names("DNS:example.org.", "example.org"));
	assert_true(names("DNS:other.example, DNS:example.org", "example.org"));
	assert_false(names("DNS:example.org", "xmpp.example.org"));
	assert_false(names("DNS:xmpp.example.org", "example.org"));
	assert_false(names("DNS:example.org.evil", "example.org"));
	/* RFC 6125 6.4.3: the whole left-most label, exactly one label */
	assert_true(names("DNS:*.example.org", "xmpp.example.org"));
	assert_false(names("DNS:*.example.org", "example.org"));
	assert_false(names("DNS:*.example.org", "a.b.example.org"));
	assert_false(names("DNS:x*.example.org", "xmpp.example.org"));
	assert_false(names("DNS:*mpp.example.org", "xmpp.example.org"));
	assert_false(names("DNS:xmpp.*.org", "xmpp.example.org"));
	assert_false(names("DNS:*.org", "example.org"));
	assert_false(names("DNS:*", "example"));
	/* the common name is never used */
	X509 *x = make_cert("example.org", NULL);
	assert_false(s2s_cert_names_domain(x, "example.org"));
	X509_free(x);
	x = make_cert("example.org", "DNS:other.example");
	assert_false(s2s_cert_names_domain(x, "example.org"));
	X509_free(x);
	assert_false(s2s_cert_names_domain(NULL, "example.org"));
}

static void test_cert_srvname(void **state)
{
	(void)state;
	assert_true(names(SRVNAME "_xmpp-server.example.org", "example.org"));
	assert_true(names(SRVNAME "_XMPP-Server.Example.org", "example.org"));
	assert_true(names(SRVNAME "_xmpps-server.example.org", "example.org"));
	/* a client certificate's service names a client service, not ours */
	assert_false(names(SRVNAME "_xmpp-client.example.org", "example.org"));
	assert_false(names(SRVNAME "example.org", "example.org"));
	assert_false(names(SRVNAME "_xmpp-server.*.org", "example.org"));
	assert_false(names(SRVNAME "_xmpp-server.example.org", "xmpp.example.org"));
	assert_false(names(SRVNAME "_xmpp-server.", ""));
	/* with a dNSName for another domain beside it */
	assert_true(names("DNS:hosting.example, " SRVNAME "_xmpp-server.example.org", "example.org"));
	assert_true(names("DNS:hosting.example, " SRVNAME "_xmpp-server.example.org", "hosting.example"));
}

static void test_cert_xmppaddr(void **state)
{
	(void)state;
	assert_true(names(XMPPADDR "example.org", "example.org"));
	assert_true(names(XMPPADDR "chat.example.org, " XMPPADDR "example.org", "example.org"));
	assert_false(names(XMPPADDR "user@example.org", "example.org"));
	assert_false(names(XMPPADDR "*.example.org", "xmpp.example.org"));
	assert_false(names(XMPPADDR "example.org", "other.example"));
	/* the right OID with the wrong string type is not an xmppAddr */
	assert_false(names("otherName:1.3.6.1.5.5.7.8.5;IA5STRING:example.org", "example.org"));
	/* an unrelated otherName holding the domain */
	assert_false(names("otherName:1.2.3.4;UTF8:example.org", "example.org"));
}

/* A certificate with, when eku is not NULL, that extendedKeyUsage. */
static X509 *make_eku_cert(const char *eku)
{
	X509 *x = make_cert("e.example", "DNS:e.example");
	if (eku != NULL) {
		X509V3_CTX ctx;
		X509V3_set_ctx_nodb(&ctx);
		X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
		X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_ext_key_usage, eku);
		assert_non_null(ext);
		assert_int_equal(X509_add_ext(x, ext, -1), 1);
		X509_EXTENSION_free(ext);
	}
	/* Signed (by itself), as every certificate a peer presents is: OpenSSL
	 * reads the extensions of a certificate it can fingerprint. */
	EVP_PKEY *key = EVP_EC_gen("P-256");
	assert_non_null(key);
	assert_int_equal(X509_set_pubkey(x, key), 1);
	assert_true(X509_sign(x, key, EVP_sha256()) > 0);
	EVP_PKEY_free(key);
	return x;
}

static void test_cert_eku(void **state)
{
	(void)state;
	static const struct {
		const char *eku;
		bool out, in; /* allowed for a peer we connected to / that connected */
	} cases[] = {
		{ NULL, true, true },
		{ "serverAuth", true, true },
		{ "clientAuth", false, true },
		{ "serverAuth,clientAuth", true, true },
		{ "emailProtection", false, false },
		{ "codeSigning,clientAuth", false, true },
		{ "anyExtendedKeyUsage", true, true },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		X509 *x = make_eku_cert(cases[i].eku);
		if (s2s_cert_eku_allows(x, false) != cases[i].out ||
		    s2s_cert_eku_allows(x, true) != cases[i].in)
			fail_msg("extendedKeyUsage %s: got out %d in %d",
			         cases[i].eku ? cases[i].eku : "(none)", s2s_cert_eku_allows(x, false),
			         s2s_cert_eku_allows(x, true));
		X509_free(x);
	}
	assert_false(s2s_cert_eku_allows(NULL, true));
}

/* A scripted random source: returns the draws in turn and records the
 * bounds it was asked for. */
struct script {
	const unsigned long *draws;
	size_t next;
	unsigned long bounds[16];
	size_t nbounds;
};

static unsigned long scripted(void *ctx, unsigned long bound)
{
	struct script *s = ctx;
	assert_true(s->nbounds < 16);
	s->bounds[s->nbounds++] = bound;
	unsigned long v = s->draws[s->next++];
	assert_true(v <= bound);
	return v;
}

static void order_of(struct resolve_srv *recs, size_t n, size_t *out)
{
	for (size_t i = 0; i < n; i++)
		out[i] = recs[i].index;
}

static void test_srv_order_fixed_draws(void **state)
{
	(void)state;
	/* Priority first, direct TLS first at equal priority. */
	struct resolve_srv recs[] = {
		{ .priority = 10, .weight = 0, .index = 0 },
		{ .priority = 5, .weight = 0, .index = 1 },
		{ .priority = 5, .weight = 0, .direct_tls = true, .index = 2 },
	};
	static const unsigned long zeros[] = { 0, 0, 0 };
	struct script sc = { .draws = zeros };
	resolve_order_srv(recs, 3, scripted, &sc);
	size_t got[3];
	order_of(recs, 3, got);
	assert_int_equal(got[0], 2);
	assert_int_equal(got[1], 1);
	assert_int_equal(got[2], 0);

	/* Weights 10, 20, 70: running sums 10, 30, 100.  A draw of 50 takes
	 * the third; of the two left (sums 10, 30) a draw of 5 the first. */
	struct resolve_srv w[] = {
		{ .priority = 1, .weight = 10, .index = 0 },
		{ .priority = 1, .weight = 20, .index = 1 },
		{ .priority = 1, .weight = 70, .index = 2 },
	};
	static const unsigned long d1[] = { 50, 5 };
	struct script s1 = { .draws = d1 };
	resolve_order_srv(w, 3, scripted, &s1);
	order_of(w, 3, got);
	assert_int_equal(got[0], 2);
	assert_int_equal(got[1], 0);
	assert_int_equal(got[2], 1);
	assert_int_equal(s1.nbounds, 2);
	assert_int_equal(s1.bounds[0], 100);
	assert_int_equal(s1.bounds[1], 30);

	/* A draw at the top of the range takes the last record. */
	struct resolve_srv t[] = {
		{ .priority = 1, .weight = 10, .index = 0 },
		{ .priority = 1, .weight = 20, .index = 1 },
	};
	static const unsigned long d2[] = { 30 };
	struct script s2 = { .draws = d2 };
	resolve_order_srv(t, 2, scripted, &s2);
	assert_int_equal(t[0].index, 1);

	/* Weight 0 comes first in the draw list: only a draw of 0 takes it. */
	struct resolve_srv z[] = {
		{ .priority = 1, .weight = 5, .index = 0 },
		{ .priority = 1, .weight = 0, .index = 1 },
	};
	static const unsigned long d3[] = { 0 };
	struct script s3 = { .draws = d3 };
	resolve_order_srv(z, 2, scripted, &s3);
	assert_int_equal(z[0].index, 1);
	struct resolve_srv z2[] = {
		{ .priority = 1, .weight = 5, .index = 0 },
		{ .priority = 1, .weight = 0, .index = 1 },
	};
	static const unsigned long d4[] = { 1 };
	struct script s4 = { .draws = d4 };
	resolve_order_srv(z2, 2, scripted, &s4);
	assert_int_equal(z2[0].index, 0);
	assert_int_equal(s4.bounds[0], 5);
}

/* A fixed pseudo-random sequence (a 64-bit LCG), uniform enough here. */
static unsigned long lcg(void *ctx, unsigned long bound)
{
	unsigned long long *x = ctx;
	*x = *x * 6364136223846793005ULL + 1442695040888963407ULL;
	return (unsigned long)((*x >> 33) % (bound + 1));
}

static void test_srv_order_shares(void **state)
{
	(void)state;
	/* Weights 1 and 3: the second goes first about 3 times in 4. */
	unsigned long long seed = 42;
	unsigned first[2] = { 0, 0 };
	for (int i = 0; i < 20000; i++) {
		struct resolve_srv r[] = {
			{ .priority = 0, .weight = 1, .index = 0 },
			{ .priority = 0, .weight = 3, .index = 1 },
		};
		resolve_order_srv(r, 2, lcg, &seed);
		first[r[0].index]++;
	}
	/* Draws in [0, 4]: 0 and 1 take the first (2/5), 2..4 the second
	 * (3/5) -- RFC 2782's inclusive range gives weight w about
	 * (w + [first]) / (sum + 1). */
	assert_in_range(first[1], 11400, 12600);
	assert_in_range(first[0], 7400, 8600);
	/* The real random source keeps every record. */
	struct resolve_srv r[] = {
		{ .priority = 0, .weight = 1, .index = 0 },
		{ .priority = 0, .weight = 1, .index = 1 },
		{ .priority = 0, .weight = 0, .index = 2 },
	};
	resolve_order_srv(r, 3, NULL, NULL);
	assert_int_equal(r[0].index + r[1].index + r[2].index, 3);
}

static void test_dialback_key(void **state)
{
	(void)state;
	char key[65];
	s2s_dialback_set_secret("s3cr3t", 6);
	s2s_dialback_key("xmpp.example.com", "example.org", "D60000229F", key);
	/* hex(HMAC-SHA256(SHA256("s3cr3t"), "xmpp.example.com example.org D60000229F")) */
	assert_string_equal(key, "f1df4b0809353b233bdc1e6c8a26a5576813054874da74c82e54abd7348d3fc4");
	/* any change of the inputs changes the key */
	char other[65];
	s2s_dialback_key("example.org", "xmpp.example.com", "D60000229F", other);
	assert_string_not_equal(key, other);
	s2s_dialback_key("xmpp.example.com", "example.org", "D60000229G", other);
	assert_string_not_equal(key, other);
	s2s_dialback_set_secret("s3cr3u", 6);
	s2s_dialback_key("xmpp.example.com", "example.org", "D60000229F", other);
	assert_string_not_equal(key, other);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dialback_key),     cmocka_unit_test(test_cert_dnsname),
		cmocka_unit_test(test_cert_srvname),     cmocka_unit_test(test_cert_xmppaddr),
		cmocka_unit_test(test_cert_eku),         cmocka_unit_test(test_srv_order_fixed_draws),
		cmocka_unit_test(test_srv_order_shares),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
