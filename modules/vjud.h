/*
 * The user directory (mod_vjud, XEP-0055): where its searches go.  Loop
 * thread.
 */
#ifndef PARLEY_MODULES_VJUD_H
#define PARLEY_MODULES_VJUD_H

#include "storage/storage.h"

struct host;

/* A directory a host's searches run against: the vCards of the host's
 * storage (vjud_source_sql, through storage_vcard_search) or, on a host
 * whose vCards come from LDAP, the directory itself (vjud_source_ldap,
 * modules/vjud-ldap.c); the module's `source` option chooses.  search
 * answers later through cb (never inside the call) and returns a handle for
 * cancel, after which cb never runs.  Terms and results as
 * storage_vcard_search. */
struct vjud_source_vfuncs {
	const char *name;
	void *(*search)(struct host *h, const struct vcard_term *terms, size_t n, bool listed_only,
	                unsigned limit, storage_vcard_search_cb *cb, void *ctx);
	void (*cancel)(void *handle);
};

extern const struct vjud_source_vfuncs vjud_source_sql;
/* One subtree search under auth.ldap.base through mod_vcard's LDAP client
 * (modules/vcard.h), with the attributes of its ldap_* options; listed_only
 * is not supported (mod_vjud refuses search_all: false with it). */
extern const struct vjud_source_vfuncs vjud_source_ldap;

/* The filter of an LDAP directory search (pure; any thread): the listing
 * filter of ldap_listing_filter (auth/ldap-client.h)
 *   (&(USER=*)(AUTH_FILTER)(TERM)...)
 * where USER is attrs[VF_USER], AUTH_FILTER the auth.ldap filter and each
 * TERM (ATTR=VALUE) for an exact term, (ATTR=VALUE*) for a prefix, VALUE
 * escaped with ldap_filter_escape (RFC 4515).  A prefix term with an empty
 * value matches anything and is left out.  NULL when nothing can match: a
 * term with a value on a field attrs does not map (NULL), no
 * attrs[VF_USER], or an auth.ldap filter with %u (which the configuration
 * check refuses first).  Malloc'd. */
char *vjud_ldap_filter(const char *const attrs[VF_COUNT], const char *auth_filter,
                       const struct vcard_term *terms, size_t n);

#endif
