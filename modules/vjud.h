/*
 * The user directory (mod_vjud, XEP-0055): where its searches go.  Loop
 * thread.
 */
#ifndef PARLEY_MODULES_VJUD_H
#define PARLEY_MODULES_VJUD_H

#include "storage/storage.h"

struct host;

/* A directory a host's searches run against: the vCards of the host's
 * storage today (vjud_source_sql, through storage_vcard_search); a host
 * whose vCards come from LDAP can add a table that searches the directory
 * and choose it with the module's `source` option.  search answers later
 * through cb (never inside the call) and returns a handle for cancel,
 * after which cb never runs.  Terms and results as storage_vcard_search. */
struct vjud_source_vfuncs {
	const char *name;
	void *(*search)(struct host *h, const struct vcard_term *terms, size_t n, bool listed_only,
	                unsigned limit, storage_vcard_search_cb *cb, void *ctx);
	void (*cancel)(void *handle);
};

extern const struct vjud_source_vfuncs vjud_source_sql;

#endif
