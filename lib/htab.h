/*
 * An intrusive hash table with chains, for tables of long-lived objects
 * keyed by whatever their owner likes: an entry embeds a struct htab_link,
 * the owner computes the hash (hash_str, hash_bytes) and compares its own
 * keys while it walks a chain.  The table grows so that chains stay short
 * (at most one entry a bucket on average).  Not thread-safe: a table
 * belongs to one thread.
 */
#ifndef PARLEY_HTAB_H
#define PARLEY_HTAB_H

#include <stdint.h>

struct htab_link {
	struct htab_link *next;
	uint32_t hash; /* set by htab_add */
};

struct htab {
	struct htab_link **buckets;
	unsigned nbuckets, count;
};

/* The first entry of the chain where entries of hash live (it holds
 * entries of other hashes too: compare link->hash, then the key); NULL
 * when there is none. */
struct htab_link *htab_chain(const struct htab *t, uint32_t hash);
/* Add l (not in a table) under hash.  Equal keys are the owner's concern. */
void htab_add(struct htab *t, struct htab_link *l, uint32_t hash);
/* Remove l (in t). */
void htab_remove(struct htab *t, struct htab_link *l);
/* Some entry of t, NULL when it is empty (to empty a table one by one). */
struct htab_link *htab_any(const struct htab *t);
/* Free the buckets (the entries are the owner's) and empty t. */
void htab_free(struct htab *t);

#endif
