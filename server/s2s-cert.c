/*
 * The name checks of s2s certificates (server/s2s-cert.h): walk the
 * subjectAltName entries and compare dNSName (with the RFC 6125 wildcard
 * rule), SRVName and xmppAddr with the domain, and read the extended
 * key usage; and the DANE match of a certificate with TLSA records
 * (digests of the certificate or its SubjectPublicKeyInfo, and for
 * DANE-TA a chain check with the matching issuer as the only trust
 * anchor).  No state; any thread.
 */
#include "server/s2s-cert.h"

#include <openssl/asn1.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509v3.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* The bytes of an ASN.1 string, or NULL when it holds a NUL (a name
 * forged to look like another to C string functions). */
static const char *asn1_text(const ASN1_STRING *s, size_t *len_r)
{
	if (s == NULL)
		return NULL;
	const unsigned char *data = ASN1_STRING_get0_data(s);
	int len = ASN1_STRING_length(s);
	if (data == NULL || len <= 0 || memchr(data, '\0', (size_t)len) != NULL)
		return NULL;
	*len_r = (size_t)len;
	return (const char *)data;
}

/* name (len bytes, maybe with a trailing dot) equals domain (dn bytes)? */
static bool same_name(const char *name, size_t len, const char *domain, size_t dn)
{
	if (len > 0 && name[len - 1] == '.')
		len--;
	return len == dn && dn > 0 && strncasecmp(name, domain, dn) == 0;
}

static bool dns_matches(const char *name, size_t len, const char *domain, size_t dn)
{
	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len >= 2 && name[0] == '*' && name[1] == '.') {
		/* "*.rest": rest must itself have two labels or more */
		const char *rest = name + 2;
		size_t rlen = len - 2;
		if (rlen == 0 || memchr(rest, '.', rlen) == NULL || memchr(rest, '*', rlen) != NULL)
			return false;
		const char *dot = memchr(domain, '.', dn);
		if (dot == NULL || dot == domain)
			return false; /* the wildcard stands for one non-empty label */
		return same_name(rest, rlen, dot + 1, dn - (size_t)(dot + 1 - domain));
	}
	if (memchr(name, '*', len) != NULL)
		return false; /* partial wildcards ("x*.example") are not honoured */
	return same_name(name, len, domain, dn);
}

static bool srv_matches(const char *name, size_t len, const char *domain, size_t dn)
{
	static const char *const services[] = { "_xmpp-server.", "_xmpps-server." };
	for (size_t i = 0; i < sizeof(services) / sizeof(services[0]); i++) {
		size_t sl = strlen(services[i]);
		if (len > sl && strncasecmp(name, services[i], sl) == 0 &&
		    memchr(name + sl, '*', len - sl) == NULL && same_name(name + sl, len - sl, domain, dn))
			return true;
	}
	return false;
}

/* dns_only: dNSName entries only (an SRV target host name). */
static bool names_match(X509 *cert, const char *domain, bool dns_only)
{
	if (cert == NULL || domain == NULL)
		return false;
	size_t dn = strlen(domain);
	if (dn > 0 && domain[dn - 1] == '.')
		dn--;
	if (dn == 0)
		return false;
	GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	if (names == NULL)
		return false;
	bool ok = false;
	for (int i = 0; !ok && i < sk_GENERAL_NAME_num(names); i++) {
		const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
		const char *text;
		size_t len = 0;
		if (gn->type == GEN_DNS) {
			text = asn1_text(gn->d.dNSName, &len);
			ok = text != NULL && dns_matches(text, len, domain, dn);
		} else if (!dns_only && gn->type == GEN_OTHERNAME && gn->d.otherName != NULL &&
		           gn->d.otherName->value != NULL) {
			const OTHERNAME *on = gn->d.otherName;
			int nid = OBJ_obj2nid(on->type_id);
			if (nid == NID_SRVName && on->value->type == V_ASN1_IA5STRING) {
				text = asn1_text(on->value->value.ia5string, &len);
				ok = text != NULL && srv_matches(text, len, domain, dn);
			} else if (nid == NID_XmppAddr && on->value->type == V_ASN1_UTF8STRING) {
				text = asn1_text(on->value->value.utf8string, &len);
				ok = text != NULL && same_name(text, len, domain, dn);
			}
		}
	}
	GENERAL_NAMES_free(names);
	return ok;
}

bool s2s_cert_names_domain(X509 *cert, const char *domain)
{
	return names_match(cert, domain, false);
}

bool s2s_cert_eku_allows(X509 *cert, bool incoming)
{
	if (cert == NULL)
		return false;
	/* UINT32_MAX when the extension is absent: any usage. */
	uint32_t xku = X509_get_extended_key_usage(cert);
	if (xku & XKU_ANYEKU)
		return true;
	if (xku & XKU_SSL_SERVER)
		return true;
	return incoming && (xku & XKU_SSL_CLIENT) != 0;
}

bool s2s_tlsa_usable(const struct s2s_tlsa *r)
{
	if ((r->usage != 2 && r->usage != 3) || r->selector > 1 || r->data == NULL)
		return false;
	switch (r->mtype) {
	case 0: return r->len > 0;
	case 1: return r->len == 32;
	case 2: return r->len == 64;
	default: return false;
	}
}

/* Whether cert, seen through r's selector and matching type, is r's data. */
static bool tlsa_matches(X509 *cert, const struct s2s_tlsa *r)
{
	unsigned char *der = NULL;
	int len = r->selector == 0 ? i2d_X509(cert, &der) : i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
	if (len <= 0 || der == NULL) {
		ERR_clear_error();
		return false;
	}
	bool ok = false;
	if (r->mtype == 0) {
		ok = (size_t)len == r->len && CRYPTO_memcmp(der, r->data, r->len) == 0;
	} else {
		unsigned char md[EVP_MAX_MD_SIZE];
		unsigned int mdlen = 0;
		const EVP_MD *type = r->mtype == 1 ? EVP_sha256() : EVP_sha512();
		ok = EVP_Digest(der, (size_t)len, md, &mdlen, type, NULL) == 1 && mdlen == r->len &&
		     CRYPTO_memcmp(md, r->data, r->len) == 0;
	}
	OPENSSL_free(der);
	return ok;
}

/* cert verifies up to anchor (trusted as it is, self-signed or not) with
 * the peer's chain as the untrusted intermediates. */
static bool chain_to_anchor(X509 *cert, STACK_OF(X509) * chain, X509 *anchor, const char **why_r)
{
	static _Thread_local char why[160];
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	bool ok = store != NULL && ctx != NULL && X509_STORE_add_cert(store, anchor) == 1 &&
	          X509_STORE_CTX_init(ctx, store, cert, chain) == 1;
	if (ok) {
		X509_VERIFY_PARAM *param = X509_STORE_CTX_get0_param(ctx);
		X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_PARTIAL_CHAIN);
		ok = X509_verify_cert(ctx) == 1;
		if (!ok) {
			snprintf(why, sizeof(why),
			         "DANE-TA: the chain does not verify up to the TLSA issuer: %s",
			         X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
			*why_r = why;
		}
	} else {
		*why_r = "DANE-TA: cannot check the chain";
	}
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	ERR_clear_error();
	return ok;
}

enum s2s_dane_result s2s_cert_dane_check(X509 *cert, STACK_OF(X509) * chain, const struct s2s_tlsa *recs,
                                         size_t n, const char *domain, const char *target, const char **why_r)
{
	const char *dummy;
	if (why_r == NULL)
		why_r = &dummy;
	size_t usable = 0;
	for (size_t i = 0; i < n; i++)
		usable += s2s_tlsa_usable(&recs[i]);
	if (usable == 0)
		return S2S_DANE_NO_USABLE;
	*why_r = "no certificate";
	if (cert == NULL)
		return S2S_DANE_MISMATCH;
	*why_r = "the certificate matches no TLSA record";
	for (size_t i = 0; i < n; i++)
		if (recs[i].usage == 3 && s2s_tlsa_usable(&recs[i]) && tlsa_matches(cert, &recs[i]))
			return S2S_DANE_MATCH_EE;
	for (int k = 0; chain != NULL && k < sk_X509_num(chain); k++) {
		X509 *ta = sk_X509_value(chain, k);
		if (X509_cmp(ta, cert) == 0)
			continue; /* the peer's own certificate is no issuer */
		for (size_t i = 0; i < n; i++) {
			if (recs[i].usage != 2 || !s2s_tlsa_usable(&recs[i]) || !tlsa_matches(ta, &recs[i]))
				continue;
			if (!chain_to_anchor(cert, chain, ta, why_r))
				break;
			if (names_match(cert, domain, false) ||
			    (target != NULL && names_match(cert, target, true)))
				return S2S_DANE_MATCH_TA;
			*why_r = "DANE-TA: the certificate names neither the domain nor the SRV target";
			break;
		}
	}
	return S2S_DANE_MISMATCH;
}
