/*
 * Tests of the s2s pieces that need no network: dialback keys (XEP-0185)
 * against a value computed independently (Python's hmac and hashlib), and
 * the names s2s certificates are accepted for (certificates built here
 * with OpenSSL, subjectAltName written in OpenSSL's configuration syntax)
 * and the extended key usages they are accepted with.
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
		cmocka_unit_test(test_dialback_key), cmocka_unit_test(test_cert_dnsname),
		cmocka_unit_test(test_cert_srvname), cmocka_unit_test(test_cert_xmppaddr),
		cmocka_unit_test(test_cert_eku),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
