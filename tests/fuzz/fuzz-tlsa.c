/*
 * TLSA answers (server/resolve.c resolve_parse_tlsa) and the DANE match
 * of a fixed certificate with the records parsed from them
 * (server/s2s-cert.c s2s_cert_dane_check), without a network.
 *
 * Input: one control byte, then a whole DNS response as a resolver sends
 * it.  The control byte's low two bits choose what the peer presents:
 * 0 the leaf certificate and its chain (leaf, CA), 1 the leaf alone,
 * 2 the CA certificate and the leaf as its chain, 3 no certificate; bit
 * 2 names b.test as the domain (else c.test), bit 3 gives b.test as the
 * SRV target the records were found for (else none).  The leaf (EC
 * P-256, "b.test" in its subjectAltName, serverAuth) is signed by the CA
 * ("Fuzz root"), both valid until 2109, so matching records (DANE-EE of
 * the leaf, DANE-TA of the CA; in the seed corpus, answers written with
 * python3-dnslib) reach every branch of the check.
 *
 * Checks beyond the sanitizers: a parsed answer holds 1 to 16 records,
 * each usable, its host and port those asked; the TTL fits in 31 bits;
 * a malformed answer gives no records; the check answers "no usable"
 * exactly when there are no records, and a match only with a
 * certificate.
 */
#include "tests/fuzz/fuzz.h"
#include "server/resolve.h"
#include "server/s2s-cert.h"

#include <assert.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char ca_pem[] = "-----BEGIN CERTIFICATE-----\n"
                             "MIIBjzCCATWgAwIBAgIUZvY9M+qbCO5nO7TYHmGt9wVBUVYwCgYIKoZIzj0EAwIw\n"
                             "FDESMBAGA1UEAwwJRnV6eiByb290MCAXDTI2MTIwNzA2MTc0NVoYDzIxMDkwMTI2\n"
                             "MDYxNzQ1WjAUMRIwEAYDVQQDDAlGdXp6IHJvb3QwWTATBgcqhkjOPQIBBggqhkjO\n"
                             "PQMBBwNCAAQzFXV296XXw1SDC8DjskA5Rz5dv/UBxKz7GMkb00JkOGwWwobcdY6o\n"
                             "nHfjPXgkYXdsXcbcJzFa0rqeQlUEcII9o2MwYTAdBgNVHQ4EFgQUquwWV5T3Dw6H\n"
                             "97voNy5T9RQT7BwwHwYDVR0jBBgwFoAUquwWV5T3Dw6H97voNy5T9RQT7BwwDwYD\n"
                             "VR0TAQH/BAUwAwEB/zAOBgNVHQ8BAf8EBAMCAgQwCgYIKoZIzj0EAwIDSAAwRQIg\n"
                             "bUrPTSuK5vvljQGfTNRmzGN9+5pfoxzUW752xrdyUZECIQCwym25Rrq2cHkujO2l\n"
                             "OJT5xVB99neHda2AOMS3M+vx1g==\n"
                             "-----END CERTIFICATE-----\n";

static const char leaf_pem[] = "-----BEGIN CERTIFICATE-----\n"
                               "MIIBkzCCATmgAwIBAgIUPUBVf1wOEgtEUwQLk48aUt7Y/9IwCgYIKoZIzj0EAwIw\n"
                               "FDESMBAGA1UEAwwJRnV6eiByb290MCAXDTI2MTIwNzA2MTc0NVoYDzIxMDkwMTI2\n"
                               "MDYxNzQ1WjARMQ8wDQYDVQQDDAZiLnRlc3QwWTATBgcqhkjOPQIBBggqhkjOPQMB\n"
                               "BwNCAAQHugiG4wl6YXtH5EViYKy/fQhJncJdr0/W+vciQTamIkXXM+osN++ANgon\n"
                               "oX83O1lC66aA8V0IXjYWhlrEIKAko2owaDARBgNVHREECjAIggZiLnRlc3QwEwYD\n"
                               "VR0lBAwwCgYIKwYBBQUHAwEwHQYDVR0OBBYEFGe7DFyyKb9VqxbbcNxCbSVXhBta\n"
                               "MB8GA1UdIwQYMBaAFKrsFleU9w8Oh/e76DcuU/UUE+wcMAoGCCqGSM49BAMCA0gA\n"
                               "MEUCIQCS6PRzrF2Eq8Ai8zGB5HlJktT2hoMyM+aoC6wGRFCwHAIgV9w0ud9gcS82\n"
                               "1VXg/YlftRnb8qrdprUSupyQ8rMgzFI=\n"
                               "-----END CERTIFICATE-----\n";

static X509 *ca, *leaf;
static STACK_OF(X509) * chain_full, *chain_leaf;

static X509 *load(const char *pem)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509 *x = b != NULL ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	if (x == NULL) {
		fprintf(stderr, "fuzz-tlsa: cannot read a built-in certificate\n");
		abort();
	}
	return x;
}

static STACK_OF(X509) * stack_of(X509 *first, X509 *second)
{
	STACK_OF(X509) *s = sk_X509_new_null();
	if (s == NULL || !sk_X509_push(s, first) || (second != NULL && !sk_X509_push(s, second)))
		abort();
	return s;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_quiet();
	ca = load(ca_pem);
	leaf = load(leaf_pem);
	chain_full = stack_of(leaf, ca);
	chain_leaf = stack_of(leaf, NULL);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 65536 + 1)
		return 0;
	uint8_t ctl = data[0];
	const unsigned char *abuf = data + 1;
	int alen = (int)(size - 1);
	int rcode = -1;
	bool ad = false;
	unsigned ttl = 12345;
	struct resolve_tlsa *t = NULL;
	int r = resolve_parse_tlsa(alen > 0 ? abuf : NULL, alen, "srv-b.test", 5269, &rcode, &ad, &ttl, &t);
	assert(r == 0 || r == -1);
	assert(ttl <= 0x7fffffffu);
	if (r < 0) {
		assert(t == NULL);
		assert(ttl == 0);
		return 0;
	}
	assert(rcode >= 0 && rcode <= 15);
	if (t == NULL)
		return 0;
	assert(t->refs == 1 && t->n >= 1 && t->n <= 16 && t->port == 5269);
	assert(strcmp(t->host, "srv-b.test") == 0);
	for (size_t i = 0; i < t->n; i++)
		assert(s2s_tlsa_usable(&t->recs[i]));

	X509 *cert = NULL;
	STACK_OF(X509) *chain = NULL;
	switch (ctl & 3) {
	case 0: cert = leaf, chain = chain_full; break;
	case 1: cert = leaf, chain = chain_leaf; break;
	case 2: cert = ca, chain = chain_leaf; break;
	default: break;
	}
	const char *domain = (ctl & 4) ? "b.test" : "c.test";
	const char *target = (ctl & 8) ? "b.test" : NULL;
	const char *why = NULL;
	enum s2s_dane_result d = s2s_cert_dane_check(cert, chain, t->recs, t->n, domain, target, &why);
	assert(d != S2S_DANE_NO_USABLE);
	if (d == S2S_DANE_MISMATCH)
		assert(why != NULL && why[0] != '\0');
	else
		assert(cert != NULL);
	if (d == S2S_DANE_MATCH_TA)
		assert(cert == leaf && chain == chain_full); /* only the CA can be its anchor */
	/* the same records, unreferenced by an extra holder, stay intact */
	struct resolve_tlsa *t2 = resolve_tlsa_ref(t);
	resolve_tlsa_unref(&t);
	assert(t == NULL && t2->refs == 1);
	resolve_tlsa_unref(&t2);
	return 0;
}
