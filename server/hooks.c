/*
 * Hooks: per virtual host, a chain of callbacks per hook name, ordered by
 * priority (lower first; equal priorities run in the order they were
 * added).  Loop thread.
 *
 * Invariants: a chain may change while it runs.  A callback removed during
 * a run (itself or another) is only marked dead and never called again; the
 * dead entries are unlinked when the outermost run of that chain ends.  An
 * entry added during a run may or may not run in that run (it does when it
 * lands after the current position).  Chains are short lists; the chains
 * of a host are found by name in a hash table, since every stanza runs
 * several hooks and a list of a few dozen names searched with strcmp
 * showed in profiles.
 */
#include "hooks.h"
#include "host.h"
#include "lib/htab.h"

#include <stdlib.h>
#include <string.h>

struct hook_entry {
	int priority;
	hook_fn *fn; /* NULL once removed */
	void *ctx;
	struct hook_entry *next;
};

struct hook_chain {
	struct htab_link link; /* in hook_list.chains, hash of name */
	char *name;
	struct hook_entry *entries;
	unsigned running; /* nesting depth of hook_run on this chain */
	bool has_dead;    /* entries removed during a run wait for the sweep */
};

struct hook_list {
	struct htab chains; /* struct hook_chain */
};

static struct hook_chain *chain_find(struct host *h, const char *name, bool create)
{
	if (h->hooks == NULL) {
		if (!create)
			return NULL;
		h->hooks = xcalloc(1, sizeof(*h->hooks));
	}
	uint32_t hash = hash_str(name);
	for (struct htab_link *l = htab_chain(&h->hooks->chains, hash); l != NULL; l = l->next) {
		struct hook_chain *c = (struct hook_chain *)l;
		if (l->hash == hash && strcmp(c->name, name) == 0)
			return c;
	}
	if (!create)
		return NULL;
	struct hook_chain *c = xcalloc(1, sizeof(*c));
	c->name = xstrdup(name);
	htab_add(&h->hooks->chains, &c->link, hash);
	return c;
}

void hook_add(struct host *h, const char *name, int priority, hook_fn *fn, void *ctx)
{
	struct hook_chain *c = chain_find(h, name, true);
	struct hook_entry *e = xcalloc(1, sizeof(*e));
	e->priority = priority;
	e->fn = fn;
	e->ctx = ctx;
	struct hook_entry **pp = &c->entries;
	while (*pp != NULL && (*pp)->priority <= priority)
		pp = &(*pp)->next;
	e->next = *pp;
	*pp = e;
}

static void chain_sweep(struct hook_chain *c)
{
	struct hook_entry **pp = &c->entries;
	while (*pp != NULL) {
		struct hook_entry *e = *pp;
		if (e->fn == NULL) {
			*pp = e->next;
			free(e);
		} else {
			pp = &e->next;
		}
	}
	c->has_dead = false;
}

void hook_remove(struct host *h, const char *name, hook_fn *fn, void *ctx)
{
	struct hook_chain *c = chain_find(h, name, false);
	if (c == NULL)
		return;
	for (struct hook_entry *e = c->entries; e != NULL; e = e->next) {
		if (e->fn == fn && e->ctx == ctx) {
			e->fn = NULL;
			c->has_dead = true;
			break;
		}
	}
	if (c->running == 0)
		chain_sweep(c);
}

enum hook_result hook_run(struct host *h, const char *name, void *args)
{
	if (h == NULL)
		return HOOK_CONTINUE;
	struct hook_chain *c = chain_find(h, name, false);
	if (c == NULL)
		return HOOK_CONTINUE;
	enum hook_result res = HOOK_CONTINUE;
	c->running++;
	for (struct hook_entry *e = c->entries; e != NULL; e = e->next) {
		if (e->fn == NULL)
			continue;
		if (e->fn(h, args, e->ctx) == HOOK_STOP) {
			res = HOOK_STOP;
			break;
		}
	}
	if (--c->running == 0 && c->has_dead)
		chain_sweep(c);
	return res;
}

void hooks_free_host(struct host *h)
{
	if (h->hooks == NULL)
		return;
	struct htab_link *l;
	while ((l = htab_any(&h->hooks->chains)) != NULL) {
		struct hook_chain *c = (struct hook_chain *)l;
		htab_remove(&h->hooks->chains, l);
		while (c->entries != NULL) {
			struct hook_entry *e = c->entries;
			c->entries = e->next;
			free(e);
		}
		free(c->name);
		free(c);
	}
	htab_free(&h->hooks->chains);
	xfree(&h->hooks);
}
