/*
 * Which domains a peer's certificate names for server-to-server use
 * (RFC 6120 section 13.7.1.2, XEP-0178, RFC 6125), and whether it
 * matches the DANE TLSA records of the server we connected to (RFC 6698,
 * RFC 7671, RFC 7673).  Pure functions on a parsed certificate; any
 * thread.  Whether the certificate chains to a trusted CA is
 * tls_peer_verified's business (server/tls.h); whether the TLSA records
 * are DNSSEC-secure is server/resolve.c's.
 */
#ifndef PARLEY_S2S_CERT_H
#define PARLEY_S2S_CERT_H

#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>

/* Whether cert's subjectAltName names domain (ASCII, compared without
 * regard to case; a trailing dot ignored) through any of:
 *   - a dNSName equal to domain, or "*.REST" where domain is one more
 *     label followed by ".REST" (RFC 6125 6.4.3: the wildcard only as the
 *     whole left-most label, matching exactly one label; never "*.tld"
 *     alone: REST must hold a dot);
 *   - an SRVName otherName (id-on-dnsSRV, RFC 4985) "_xmpp-server.DOMAIN"
 *     (or "_xmpps-server.DOMAIN", XEP-0368), no wildcard;
 *   - an xmppAddr otherName (id-on-xmppAddr) equal to domain.
 * The subject's common name is never used (RFC 6125 6.4.4: not when a
 * subjectAltName is there, and every certificate we accept has one).  A
 * name holding a NUL byte never matches.  false for a NULL cert. */
bool s2s_cert_names_domain(X509 *cert, const char *domain);

/* Whether cert's extended key usage lets it serve the s2s role: a peer we
 * connected to presents its certificate as a TLS server, so it needs
 * serverAuth (incoming false); a peer that connected to us presents it as
 * a TLS client, and servers commonly use one certificate for both, so
 * clientAuth or serverAuth will do (incoming true).  A certificate
 * without the extension, or with anyExtendedKeyUsage, may be used for
 * anything (RFC 5280 4.2.1.12).  false for a NULL cert. */
bool s2s_cert_eku_allows(X509 *cert, bool incoming);

/* One TLSA record (RFC 6698 2.1): certificate usage, selector, matching
 * type and the association data (len bytes). */
struct s2s_tlsa {
	unsigned char usage, selector, mtype;
	size_t len;
	unsigned char *data;
};

enum s2s_dane_result {
	S2S_DANE_NO_USABLE, /* no usable record: DANE does not decide */
	S2S_DANE_MISMATCH,  /* usable records, and the certificate matches none */
	S2S_DANE_MATCH_EE,  /* a DANE-EE(3) record matches the certificate */
	S2S_DANE_MATCH_TA,  /* a DANE-TA(2) record matches an issuer; chain and names hold */
};

/* Whether a record is one we can use: usage DANE-TA(2) or DANE-EE(3),
 * selector Cert(0) or SPKI(1), matching Full(0), SHA2-256(1) or
 * SHA2-512(2) with the digest's length.  PKIX-TA(0) and PKIX-EE(1) are
 * not used (they would add nothing to the CA check that runs anyway;
 * RFC 7672 3.1.3 treats them the same way for SMTP). */
bool s2s_tlsa_usable(const struct s2s_tlsa *r);

/* Check the peer's certificate cert and the chain it sent (chain may hold
 * cert too, or be NULL) against recs (n of them, from a DNSSEC-secure
 * answer):
 *   - DANE-EE(3): the certificate, or its public key, matches; names,
 *     issuer and dates are not looked at (RFC 7672 3.1.1);
 *   - DANE-TA(2): a certificate of the chain other than the peer's
 *     matches and the peer's certificate verifies up to it (signatures,
 *     dates; it is the trust anchor even if not self-signed), and names
 *     domain (as s2s_cert_names_domain) or, when not NULL, target, the
 *     SRV target host the records were found for, by a dNSName (RFC 7672
 *     3.2.2, RFC 7673 4.2).
 * Records that are not usable are skipped; none usable:
 * S2S_DANE_NO_USABLE.  *why_r (optional) says why on a mismatch. */
enum s2s_dane_result s2s_cert_dane_check(X509 *cert, STACK_OF(X509) * chain, const struct s2s_tlsa *recs,
                                         size_t n, const char *domain, const char *target,
                                         const char **why_r);

#endif
