/*
 * Tests of DANE for outgoing s2s (RFC 6698, RFC 7671, RFC 7673): which
 * TLSA records are usable, how certificates built and signed here with
 * OpenSSL match DANE-EE(3) and DANE-TA(2) records (digests computed here
 * from the DER, independently of server/s2s-cert.c), and the parsing of
 * TLSA answers written here byte by byte.  Single-threaded.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "server/resolve.h"
#include "server/s2s-cert.h"

static EVP_PKEY *new_key(void)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	assert_non_null(k);
	return k;
}

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	assert_non_null(ext);
	assert_int_equal(X509_add_ext(x, ext, -1), 1);
	X509_EXTENSION_free(ext);
}

/* A certificate for key with subject CN cn, subjectAltName san (NULL:
 * none), valid from `from` to `to` seconds from now, signed by issuer
 * with issuer_key (NULL, NULL: self-signed), a CA when ca. */
static X509 *make_cert(const char *cn, const char *san, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key,
                       bool ca, long from, long to)
{
	static long serial = 1;
	X509 *x = X509_new();
	assert_non_null(x);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
	X509_gmtime_adj(X509_getm_notBefore(x), from);
	X509_gmtime_adj(X509_getm_notAfter(x), to);
	X509_NAME *name = X509_get_subject_name(x);
	assert_int_equal(
	        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0),
	        1);
	X509_set_issuer_name(x, issuer != NULL ? X509_get_subject_name(issuer) : name);
	X509_set_pubkey(x, key);
	if (ca) {
		add_ext(x, issuer != NULL ? issuer : x, NID_basic_constraints, "critical,CA:TRUE");
		add_ext(x, issuer != NULL ? issuer : x, NID_key_usage, "critical,keyCertSign,cRLSign");
	}
	if (san != NULL)
		add_ext(x, issuer != NULL ? issuer : x, NID_subject_alt_name, san);
	assert_true(X509_sign(x, issuer_key != NULL ? issuer_key : key, EVP_sha256()) > 0);
	return x;
}

/* The record usage selector mtype for cert, its data computed here. */
static struct s2s_tlsa rec(X509 *cert, unsigned char usage, unsigned char selector, unsigned char mtype)
{
	unsigned char *der = NULL;
	int len = selector == 0 ? i2d_X509(cert, &der) : i2d_PUBKEY(X509_get0_pubkey(cert), &der);
	assert_true(len > 0);
	struct s2s_tlsa r = { .usage = usage, .selector = selector, .mtype = mtype };
	if (mtype == 0) {
		r.len = (size_t)len;
		r.data = malloc(r.len);
		memcpy(r.data, der, r.len);
	} else {
		unsigned int n = 0;
		r.data = malloc(EVP_MAX_MD_SIZE);
		assert_int_equal(EVP_Digest(der, (size_t)len, r.data, &n,
		                            mtype == 1 ? EVP_sha256() : EVP_sha512(), NULL),
		                 1);
		r.len = n;
	}
	OPENSSL_free(der);
	return r;
}

static void free_recs(struct s2s_tlsa *r, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(r[i].data);
}

static void test_usable(void **state)
{
	(void)state;
	unsigned char d[64] = { 0 };
	static const struct {
		unsigned char u, s, m;
		size_t len;
		bool usable;
	} cases[] = {
		{ 3, 1, 1, 32, true },  { 3, 0, 1, 32, true },  { 3, 1, 2, 64, true },
		{ 3, 0, 0, 10, true },  { 2, 0, 1, 32, true },  { 2, 1, 2, 64, true },
		{ 0, 0, 1, 32, false }, { 1, 1, 1, 32, false }, { 4, 1, 1, 32, false },
		{ 3, 2, 1, 32, false }, { 3, 1, 3, 32, false }, { 3, 1, 1, 31, false },
		{ 3, 1, 2, 32, false }, { 3, 0, 0, 0, false },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct s2s_tlsa r = { cases[i].u, cases[i].s, cases[i].m, cases[i].len, d };
		assert_int_equal(s2s_tlsa_usable(&r), cases[i].usable);
	}
}

static void test_dane_ee(void **state)
{
	(void)state;
	EVP_PKEY *k = new_key(), *other = new_key();
	/* self-signed, naming another domain, expired: DANE-EE looks at none of it */
	X509 *cert = make_cert("elsewhere.example", "DNS:elsewhere.example", k, NULL, NULL, false,
	                       -86400 * 10, -86400);
	X509 *stranger = make_cert("b.test", "DNS:b.test", other, NULL, NULL, false, 0, 86400);
	static const unsigned char forms[][2] = {
		{ 1, 1 }, { 0, 1 }, { 1, 2 }, { 0, 2 }, { 0, 0 }, { 1, 0 }
	};
	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		struct s2s_tlsa r = rec(cert, 3, forms[i][0], forms[i][1]);
		assert_int_equal(s2s_cert_dane_check(cert, NULL, &r, 1, "b.test", NULL, NULL),
		                 S2S_DANE_MATCH_EE);
		const char *why = NULL;
		assert_int_equal(s2s_cert_dane_check(stranger, NULL, &r, 1, "b.test", NULL, &why),
		                 S2S_DANE_MISMATCH);
		assert_non_null(why);
		free_recs(&r, 1);
	}
	/* the same key in a new certificate still matches 3 1 1, not 3 0 1 */
	X509 *renewed = make_cert("b.test", NULL, k, NULL, NULL, false, 0, 86400);
	struct s2s_tlsa spki = rec(cert, 3, 1, 1), full = rec(cert, 3, 0, 1);
	assert_int_equal(s2s_cert_dane_check(renewed, NULL, &spki, 1, "b.test", NULL, NULL),
	                 S2S_DANE_MATCH_EE);
	assert_int_equal(s2s_cert_dane_check(renewed, NULL, &full, 1, "b.test", NULL, NULL),
	                 S2S_DANE_MISMATCH);
	/* one matching record among others is enough; a flipped bit is not */
	struct s2s_tlsa set[2] = { rec(stranger, 3, 1, 1), rec(cert, 3, 1, 1) };
	assert_int_equal(s2s_cert_dane_check(cert, NULL, set, 2, "b.test", NULL, NULL), S2S_DANE_MATCH_EE);
	set[1].data[5] ^= 1;
	assert_int_equal(s2s_cert_dane_check(cert, NULL, set, 2, "b.test", NULL, NULL), S2S_DANE_MISMATCH);
	/* no certificate at all */
	assert_int_equal(s2s_cert_dane_check(NULL, NULL, set, 2, "b.test", NULL, NULL), S2S_DANE_MISMATCH);
	free_recs(set, 2);
	free_recs(&spki, 1);
	free_recs(&full, 1);
	X509_free(renewed);
	X509_free(stranger);
	X509_free(cert);
	EVP_PKEY_free(k);
	EVP_PKEY_free(other);
}

static void test_unusable_records_decide_nothing(void **state)
{
	(void)state;
	EVP_PKEY *k = new_key();
	X509 *cert = make_cert("b.test", "DNS:b.test", k, NULL, NULL, false, 0, 86400);
	struct s2s_tlsa set[3] = { rec(cert, 1, 1, 1), rec(cert, 0, 0, 1), rec(cert, 3, 1, 1) };
	set[2].len = 20; /* a SHA-256 of the wrong length */
	assert_int_equal(s2s_cert_dane_check(cert, NULL, set, 3, "b.test", NULL, NULL), S2S_DANE_NO_USABLE);
	assert_int_equal(s2s_cert_dane_check(cert, NULL, set, 0, "b.test", NULL, NULL), S2S_DANE_NO_USABLE);
	free_recs(set, 3);
	X509_free(cert);
	EVP_PKEY_free(k);
}

static void test_dane_ta(void **state)
{
	(void)state;
	EVP_PKEY *cak = new_key(), *ik = new_key(), *lk = new_key(), *otherk = new_key();
	X509 *ca = make_cert("Test root", NULL, cak, NULL, NULL, true, -3600, 86400);
	X509 *inter = make_cert("Test intermediate", NULL, ik, ca, cak, true, -3600, 86400);
	X509 *leaf = make_cert("b.test", "DNS:b.test", lk, inter, ik, false, -3600, 86400);
	X509 *srv = make_cert("srv-b.test", "DNS:srv-b.test", lk, inter, ik, false, -3600, 86400);
	X509 *expired = make_cert("b.test", "DNS:b.test", lk, inter, ik, false, -86400 * 10, -86400);
	X509 *other_ca = make_cert("Other root", NULL, otherk, NULL, NULL, true, -3600, 86400);
	X509 *foreign = make_cert("b.test", "DNS:b.test", lk, other_ca, otherk, false, -3600, 86400);

	STACK_OF(X509) *chain = sk_X509_new_null();
	sk_X509_push(chain, leaf);
	sk_X509_push(chain, inter);
	sk_X509_push(chain, ca);
	/* the root (not trusted anywhere else) or the intermediate as anchor */
	struct s2s_tlsa root_rec = rec(ca, 2, 0, 1), inter_rec = rec(inter, 2, 1, 1);
	assert_int_equal(s2s_cert_dane_check(leaf, chain, &root_rec, 1, "b.test", NULL, NULL),
	                 S2S_DANE_MATCH_TA);
	assert_int_equal(s2s_cert_dane_check(leaf, chain, &inter_rec, 1, "b.test", NULL, NULL),
	                 S2S_DANE_MATCH_TA);
	/* names: the domain, or the SRV target by dNSName; nothing else */
	const char *why = NULL;
	assert_int_equal(s2s_cert_dane_check(leaf, chain, &root_rec, 1, "c.test", NULL, &why),
	                 S2S_DANE_MISMATCH);
	assert_non_null(strstr(why, "names"));
	sk_X509_set(chain, 0, srv);
	assert_int_equal(s2s_cert_dane_check(srv, chain, &root_rec, 1, "b.test", "srv-b.test", NULL),
	                 S2S_DANE_MATCH_TA);
	assert_int_equal(s2s_cert_dane_check(srv, chain, &root_rec, 1, "b.test", NULL, NULL),
	                 S2S_DANE_MISMATCH);
	/* dates count with DANE-TA */
	sk_X509_set(chain, 0, expired);
	why = NULL;
	assert_int_equal(s2s_cert_dane_check(expired, chain, &root_rec, 1, "b.test", NULL, &why),
	                 S2S_DANE_MISMATCH);
	assert_non_null(strstr(why, "expired"));
	/* a matching CA sent along does not vouch for a certificate it did not sign */
	sk_X509_set(chain, 0, foreign);
	assert_int_equal(s2s_cert_dane_check(foreign, chain, &root_rec, 1, "b.test", NULL, NULL),
	                 S2S_DANE_MISMATCH);
	/* the anchor must be in the chain the peer sent */
	STACK_OF(X509) *short_chain = sk_X509_new_null();
	sk_X509_push(short_chain, leaf);
	assert_int_equal(s2s_cert_dane_check(leaf, short_chain, &root_rec, 1, "b.test", NULL, NULL),
	                 S2S_DANE_MISMATCH);
	/* a DANE-TA record of the peer's own certificate is not an anchor */
	struct s2s_tlsa self = rec(leaf, 2, 0, 1);
	sk_X509_set(chain, 0, leaf);
	assert_int_equal(s2s_cert_dane_check(leaf, chain, &self, 1, "b.test", NULL, NULL), S2S_DANE_MISMATCH);

	free_recs(&self, 1);
	free_recs(&root_rec, 1);
	free_recs(&inter_rec, 1);
	sk_X509_free(short_chain);
	sk_X509_free(chain);
	X509 *all[] = { ca, inter, leaf, srv, expired, other_ca, foreign };
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		X509_free(all[i]);
	EVP_PKEY *keys[] = { cak, ik, lk, otherk };
	for (size_t i = 0; i < 4; i++)
		EVP_PKEY_free(keys[i]);
}

/* A DNS response for _5269._tcp.b.test TLSA: flags (AD 0x20), rcode,
 * then answers: each {usage, selector, mtype, datalen}, data bytes i. */
static size_t dns_answer(unsigned char *out, bool ad, int rcode, const unsigned char (*ans)[4], size_t nans)
{
	static const unsigned char qname[] = "\x05_5269\x04_tcp\x01"
	                                     "b\x04test";
	size_t n = 0;
	unsigned char hdr[12] = { 0x12, 0x34, 0x81, (unsigned char)((ad ? 0x20 : 0) | 0x80 | rcode),
		                  0,    1,    0,    (unsigned char)nans,
		                  0,    0,    0,    0 };
	memcpy(out, hdr, 12);
	n = 12;
	memcpy(out + n, qname, sizeof(qname)); /* with its final 0 */
	n += sizeof(qname);
	unsigned char qt[4] = { 0, 52, 0, 1 };
	memcpy(out + n, qt, 4);
	n += 4;
	for (size_t i = 0; i < nans; i++) {
		size_t dl = ans[i][3];
		unsigned char rr[12] = {
			0xc0, 12, 0, 52, 0, 1, 0, 0, 0x0e, 0x10, 0, (unsigned char)(3 + dl)
		};
		memcpy(out + n, rr, 12);
		n += 12;
		out[n++] = ans[i][0];
		out[n++] = ans[i][1];
		out[n++] = ans[i][2];
		for (size_t k = 0; k < dl; k++)
			out[n++] = (unsigned char)(i * 16 + k);
	}
	return n;
}

static void test_parse_tlsa(void **state)
{
	(void)state;
	unsigned char buf[1024];
	static const unsigned char two[][4] = { { 3, 1, 1, 32 }, { 1, 1, 1, 32 }, { 2, 0, 2, 64 } };
	size_t n = dns_answer(buf, true, 0, two, 3);
	int rcode = -1;
	bool ad = false;
	unsigned ttl = 0;
	struct resolve_tlsa *t = NULL;
	assert_int_equal(resolve_parse_tlsa(buf, (int)n, "b.test", 5269, &rcode, &ad, &ttl, &t), 0);
	assert_int_equal(rcode, 0);
	assert_true(ad);
	assert_int_equal(ttl, 3600);
	assert_non_null(t);
	assert_int_equal(t->n, 2); /* PKIX-EE(1) left out */
	assert_string_equal(t->host, "b.test");
	assert_int_equal(t->port, 5269);
	assert_int_equal(t->recs[0].usage, 3);
	assert_int_equal(t->recs[0].len, 32);
	assert_int_equal(t->recs[0].data[31], 31);
	assert_int_equal(t->recs[1].usage, 2);
	assert_int_equal(t->recs[1].mtype, 2);
	assert_int_equal(t->recs[1].data[0], 32);
	struct resolve_tlsa *t2 = resolve_tlsa_ref(t);
	resolve_tlsa_unref(&t);
	assert_null(t);
	resolve_tlsa_unref(&t2);

	/* without AD, the records still parse: the caller decides */
	n = dns_answer(buf, false, 0, two, 1);
	assert_int_equal(resolve_parse_tlsa(buf, (int)n, "b.test", 5269, &rcode, &ad, &ttl, &t), 0);
	assert_false(ad);
	assert_non_null(t);
	resolve_tlsa_unref(&t);

	/* NXDOMAIN, secure: no records */
	n = dns_answer(buf, true, 3, two, 0);
	assert_int_equal(resolve_parse_tlsa(buf, (int)n, "b.test", 5269, &rcode, &ad, &ttl, &t), 0);
	assert_int_equal(rcode, 3);
	assert_int_equal(ttl, 0); /* no SOA: not to be kept */
	assert_null(t);

	/* only unusable records: none */
	n = dns_answer(buf, true, 0, two + 1, 1);
	assert_int_equal(resolve_parse_tlsa(buf, (int)n, "b.test", 5269, &rcode, &ad, &ttl, &t), 0);
	assert_null(t);

	/* cut anywhere inside the answer: malformed, nothing leaks */
	n = dns_answer(buf, true, 0, two, 3);
	for (size_t cut = 0; cut < n; cut++) {
		int r = resolve_parse_tlsa(buf, (int)cut, "b.test", 5269, &rcode, &ad, &ttl, &t);
		assert_int_equal(r, -1);
		assert_null(t);
	}
	/* a compression pointer that loops */
	n = dns_answer(buf, true, 0, two, 1);
	buf[12 + 19 + 4 + 1] = (unsigned char)(12 + 19 + 4);
	assert_int_equal(resolve_parse_tlsa(buf, (int)n, "b.test", 5269, &rcode, &ad, &ttl, &t), -1);
	assert_null(t);
}

/* A denial (rcode) with one SOA record in the authority section: its own
 * TTL soa_ttl, its MINIMUM field minimum; rdata cut short by `cut`
 * bytes (its RDLENGTH still says so). */
static size_t dns_denial(unsigned char *out, int rcode, uint32_t soa_ttl, uint32_t minimum, size_t cut)
{
	static const unsigned char qname[] = "\x05_5269\x04_tcp\x01"
	                                     "b\x04test";
	unsigned char hdr[12] = { 0x12, 0x34, 0x81, (unsigned char)(0xa0 | rcode), 0, 1, 0, 0, 0, 1, 0, 0 };
	size_t n = 0;
	memcpy(out, hdr, 12);
	n = 12;
	memcpy(out + n, qname, sizeof(qname));
	n += sizeof(qname);
	unsigned char qt[4] = { 0, 52, 0, 1 };
	memcpy(out + n, qt, 4);
	n += 4;
	/* owner: "b.test" inside the question (a compression pointer) */
	size_t rdlen = 4 + 4 + 20 - cut;
	unsigned char rr[12] = { 0xc0,
		                 (unsigned char)(12 + 11),
		                 0,
		                 6,
		                 0,
		                 1,
		                 (unsigned char)(soa_ttl >> 24),
		                 (unsigned char)(soa_ttl >> 16),
		                 (unsigned char)(soa_ttl >> 8),
		                 (unsigned char)soa_ttl,
		                 0,
		                 (unsigned char)rdlen };
	memcpy(out + n, rr, 12);
	n += 12;
	static const unsigned char names[] = { 2, 'n', 's', 0, 2, 'h', 'm', 0 };
	memcpy(out + n, names, 8);
	n += 8;
	for (int i = 0; i < 16; i++)
		out[n++] = (unsigned char)(i + 1); /* serial, refresh, retry, expire */
	out[n++] = (unsigned char)(minimum >> 24);
	out[n++] = (unsigned char)(minimum >> 16);
	out[n++] = (unsigned char)(minimum >> 8);
	out[n++] = (unsigned char)minimum;
	return n - cut;
}

/* How long an answer may be kept: its records' least TTL; a denial's
 * SOA (RFC 2308 5); never a TTL with the top bit set (RFC 2181 8). */
static void test_tlsa_ttl(void **state)
{
	(void)state;
	unsigned char buf[1024];
	int rcode = -1;
	bool ad = false;
	unsigned ttl = 99;
	struct resolve_tlsa *t = NULL;
	static const unsigned char one[][4] = { { 3, 1, 1, 32 }, { 3, 1, 2, 64 } };
	size_t n = dns_answer(buf, true, 0, one, 2);
	/* the second record's TTL 3600 -> 60: the least counts */
	buf[n - 64 - 3 - 12 + 6 + 2] = 0;
	buf[n - 64 - 3 - 12 + 6 + 3] = 60;
	assert_int_equal(resolve_parse_tlsa(buf, (int)n, "b.test", 5269, &rcode, &ad, &ttl, &t), 0);
	assert_non_null(t);
	assert_int_equal(t->n, 2);
	assert_int_equal(ttl, 60);
	resolve_tlsa_unref(&t);
	buf[n - 64 - 3 - 12 + 6] = 0x80; /* 2^31 + 60: taken as 0 */
	assert_int_equal(resolve_parse_tlsa(buf, (int)n, "b.test", 5269, &rcode, &ad, &ttl, &t), 0);
	assert_int_equal(ttl, 0);
	resolve_tlsa_unref(&t);

	/* NXDOMAIN and NODATA: the least of the SOA's TTL and MINIMUM */
	n = dns_denial(buf, 3, 3600, 300, 0);
	assert_int_equal(resolve_parse_tlsa(buf, (int)n, "b.test", 5269, &rcode, &ad, &ttl, &t), 0);
	assert_int_equal(rcode, 3);
	assert_null(t);
	assert_int_equal(ttl, 300);
	n = dns_denial(buf, 0, 120, 86400, 0);
	assert_int_equal(resolve_parse_tlsa(buf, (int)n, "b.test", 5269, &rcode, &ad, &ttl, &t), 0);
	assert_int_equal(rcode, 0);
	assert_int_equal(ttl, 120);
	/* an SOA whose rdata is short: the answer stands, but is not kept */
	n = dns_denial(buf, 3, 3600, 300, 4);
	assert_int_equal(resolve_parse_tlsa(buf, (int)n, "b.test", 5269, &rcode, &ad, &ttl, &t), 0);
	assert_int_equal(ttl, 0);
	/* cut inside the authority section: likewise */
	n = dns_denial(buf, 3, 3600, 300, 0);
	for (size_t cut = n - 30; cut < n; cut++) {
		ttl = 99;
		assert_int_equal(resolve_parse_tlsa(buf, (int)cut, "b.test", 5269, &rcode, &ad, &ttl, &t), 0);
		assert_int_equal(ttl, 0);
		assert_null(t);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_usable),
		cmocka_unit_test(test_dane_ee),
		cmocka_unit_test(test_unusable_records_decide_nothing),
		cmocka_unit_test(test_dane_ta),
		cmocka_unit_test(test_parse_tlsa),
		cmocka_unit_test(test_tlsa_ttl),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
