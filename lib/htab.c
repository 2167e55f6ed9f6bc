/*
 * The intrusive hash table of htab.h.  Invariant: nbuckets is 0 (no
 * entry yet) or at least count; an entry sits in bucket hash % nbuckets.
 */
#include "htab.h"
#include "util.h"

#include <assert.h>

struct htab_link *htab_chain(const struct htab *t, uint32_t hash)
{
	return t->nbuckets == 0 ? NULL : t->buckets[hash % t->nbuckets];
}

static void htab_grow(struct htab *t)
{
	unsigned n = t->nbuckets == 0 ? 16 : t->nbuckets * 2;
	struct htab_link **b = xcalloc(n, sizeof(*b));
	for (unsigned i = 0; i < t->nbuckets; i++) {
		while (t->buckets[i] != NULL) {
			struct htab_link *l = t->buckets[i];
			t->buckets[i] = l->next;
			l->next = b[l->hash % n];
			b[l->hash % n] = l;
		}
	}
	free(t->buckets);
	t->buckets = b;
	t->nbuckets = n;
}

void htab_add(struct htab *t, struct htab_link *l, uint32_t hash)
{
	if (t->count >= t->nbuckets)
		htab_grow(t);
	l->hash = hash;
	l->next = t->buckets[hash % t->nbuckets];
	t->buckets[hash % t->nbuckets] = l;
	t->count++;
}

void htab_remove(struct htab *t, struct htab_link *l)
{
	assert(t->nbuckets > 0);
	struct htab_link **pp = &t->buckets[l->hash % t->nbuckets];
	while (*pp != l) {
		assert(*pp != NULL);
		pp = &(*pp)->next;
	}
	*pp = l->next;
	l->next = NULL;
	t->count--;
}

struct htab_link *htab_any(const struct htab *t)
{
	for (unsigned i = 0; t->count > 0 && i < t->nbuckets; i++)
		if (t->buckets[i] != NULL)
			return t->buckets[i];
	return NULL;
}

void htab_free(struct htab *t)
{
	free(t->buckets);
	t->buckets = NULL;
	t->nbuckets = t->count = 0;
}
