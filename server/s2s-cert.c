/*
 * The name checks of s2s certificates (server/s2s-cert.h): walk the
 * subjectAltName entries and compare dNSName (with the RFC 6125 wildcard
 * rule), SRVName and xmppAddr with the domain, and read the extended
 * key usage.  No state; any thread.
 */
#include "server/s2s-cert.h"

#include <openssl/asn1.h>
#include <openssl/objects.h>
#include <openssl/x509v3.h>
#include <stdint.h>
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

bool s2s_cert_names_domain(X509 *cert, const char *domain)
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
		} else if (gn->type == GEN_OTHERNAME && gn->d.otherName != NULL &&
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
