/*
 * Storage of vCard search: one job struct per operation and what a backend
 * implements for them (struct search_store_vfuncs).  The user directory
 * (XEP-0055): a search over the indexed fields of the stored vCards.
 * Host-wide: its jobs have no user.
 *
 * Only storage/ includes this; the public functions and their contracts
 * are in storage.h, the generic job machinery in storage-private.h.  A
 * job's inputs are copies in its pool; its work fills the results (in the
 * pool too) and returns the result.  Each vfunc runs where the store runs
 * jobs (a worker thread, or the loop for a store without workers) and gets
 * that place's connection state as conn.
 */
#ifndef PARLEY_STORAGE_SEARCH_STORE_H
#define PARLEY_STORAGE_SEARCH_STORE_H

#include "storage/storage-private.h"

struct vcard_search_job {
	struct storage_req base;
	storage_vcard_search_cb *cb;
	struct vcard_term *terms;     /* values folded, in pool */
	struct vcard_term *raw_terms; /* the same as given, for a directory that
	                                      compares by its own rules (in pool) */
	size_t nterms;
	bool listed_only;
	unsigned limit;
	/* results */
	struct vcard_entry *entries; /* in pool */
	size_t nentries;
	bool more;
};

struct vcard_reindex_job {
	struct storage_req base;
	storage_count_cb *cb;
	/* results */
	uint64_t count;
};

struct search_store_vfuncs {
	enum storage_result (*search)(void *conn, struct vcard_search_job *j);
	enum storage_result (*reindex)(void *conn, struct vcard_reindex_job *j);
};

#endif
