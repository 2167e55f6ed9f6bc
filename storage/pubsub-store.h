/*
 * Storage of publish-subscribe nodes and items: one job struct per
 * operation and what a backend implements for them (struct
 * pubsub_store_vfuncs).  The nodes of one owner (a pubsub service's
 * domain, or a user's bare JID for PEP) with their affiliation and
 * subscription lists, and the items published to them.
 *
 * A job's base.user is not a user: it is the key that orders the jobs
 * (storage.c runs the jobs of one host+user on one worker, in order): the
 * owner, for every operation, so one owner's writes and loads keep their
 * order while different owners are written in parallel.  The work reads
 * the owner from the job's own field.
 *
 * An owner belongs to one virtual host (a service's domain is routed to
 * one host; a bare JID is a user of one): the SQL tables are keyed by
 * owner and record the host beside it, so one owner name stored under two
 * hosts is not supported.  Every operation still names the host, and the
 * stores answer only the owner's rows of that host.
 *
 * Only storage/ includes this; the public functions and their contracts
 * are in storage.h, the generic job machinery in storage-private.h.  A
 * job's inputs are copies in its pool; its work fills the results (in the
 * pool too) and returns the result.  Each vfunc runs where the store runs
 * jobs (a worker thread, or the loop for a store without workers) and gets
 * that place's connection state as conn.
 */
#ifndef PARLEY_STORAGE_PUBSUB_STORE_H
#define PARLEY_STORAGE_PUBSUB_STORE_H

#include "storage/storage-private.h"

struct pubsub_load_job {
	struct storage_req base;
	storage_pubsub_load_cb *cb;
	const char *owner;
	/* results, in pool: nodes sorted by name (byte-wise), each node's
	 * affiliations by jid and subscriptions by jid then subid; items by
	 * node, then seq (then id); only the items of the nodes returned */
	struct pubsub_node_item *nodes;
	size_t nnodes;
	struct pubsub_item *items;
	size_t nitems;
};

struct pubsub_node_store_job {
	struct storage_req base;
	storage_done_cb *cb;
	const char *owner;
	/* deep copy in pool; affs sorted by jid, one per jid; subs sorted by
	 * jid then subid, one per subid (the last one the caller gave wins) */
	struct pubsub_node_item node;
};

struct pubsub_node_delete_job {
	struct storage_req base;
	storage_done_cb *cb;
	const char *owner;
	const char *node;
};

struct pubsub_item_store_job {
	struct storage_req base;
	storage_done_cb *cb;
	const char *owner;
	struct pubsub_item item; /* copy in pool */
	/* ids of item.node to remove, in pool; never item.id itself (the
	 * front leaves it out: the item stored is kept) */
	const char **evict;
	size_t nevict;
};

struct pubsub_item_delete_job {
	struct storage_req base;
	storage_done_cb *cb;
	const char *owner;
	const char *node;
	const char **ids; /* in pool; n == 0: every item of node */
	size_t n;
};

struct pubsub_owner_delete_job {
	struct storage_req base;
	storage_done_cb *cb;
	const char *owner;
};

/* Every operation is one transaction; base.host is the virtual host of
 * the owner. */
struct pubsub_store_vfuncs {
	enum storage_result (*load)(void *conn, struct pubsub_load_job *j);
	enum storage_result (*node_store)(void *conn, struct pubsub_node_store_job *j);
	/* STORAGE_OK also when the node was not stored. */
	enum storage_result (*node_delete)(void *conn, struct pubsub_node_delete_job *j);
	enum storage_result (*item_store)(void *conn, struct pubsub_item_store_job *j);
	/* STORAGE_OK also when none of the items was stored. */
	enum storage_result (*item_delete)(void *conn, struct pubsub_item_delete_job *j);
	/* STORAGE_OK also when the owner had nothing stored. */
	enum storage_result (*owner_delete)(void *conn, struct pubsub_owner_delete_job *j);
};

/* Sorting helpers every implementation uses, so all answer in one order. */
int pubsub_cmp_node(const void *a, const void *b);
int pubsub_cmp_affiliation(const void *a, const void *b);
int pubsub_cmp_subscription(const void *a, const void *b);
int pubsub_cmp_item(const void *a, const void *b);
/* Sort a load's results (each node's lists, then the nodes and the items)
 * and drop the items whose node is not among the nodes. */
void pubsub_load_sort(struct pubsub_load_job *j);

#endif
