/*
 * Which domains a peer's certificate names for server-to-server use
 * (RFC 6120 section 13.7.1.2, XEP-0178, RFC 6125).  Pure functions on a
 * parsed certificate; any thread.  Whether the certificate chains to a
 * trusted CA is tls_peer_verified's business (server/tls.h).
 */
#ifndef PARLEY_S2S_CERT_H
#define PARLEY_S2S_CERT_H

#include <openssl/x509.h>
#include <stdbool.h>

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

#endif
