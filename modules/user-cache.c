/*
 * The per-user cache of modules (user-cache.h): a hash table of entries
 * keyed by the user's local part, made at a user's first session and
 * dropped at the last one's close, driven by the host's session hooks.
 * Loop thread.
 *
 * Invariants: an entry is in exactly one bucket chain; its sessions count
 * is at least one while it is there; clear runs once per entry, just
 * before it is freed.
 */
#include "user-cache.h"
#include "server/hooks.h"
#include "server/sm.h"
#include "lib/util.h"

#include <stdlib.h>
#include <string.h>

#define USER_CACHE_BUCKETS 1024

static struct user_cache_entry **slot(const struct user_cache *c, const char *user)
{
	struct user_cache_entry **pp = &c->buckets[hash_str(user) % USER_CACHE_BUCKETS];
	while (*pp != NULL && strcmp((*pp)->user, user) != 0)
		pp = &(*pp)->next;
	return pp;
}

void *user_cache_get(const struct user_cache *c, const char *user)
{
	return user != NULL && c->buckets != NULL ? *slot(c, user) : NULL;
}

static void entry_free(struct user_cache *c, struct user_cache_entry *e)
{
	if (c->clear != NULL)
		c->clear(e, c->ctx);
	free(e->user);
	free(e);
}

static void session_add(struct user_cache *c, struct session *s)
{
	struct user_cache_entry **pp = slot(c, s->jid.node);
	if (*pp == NULL) {
		struct user_cache_entry *e = xcalloc(1, c->entry_size);
		e->user = xstrdup(s->jid.node);
		*pp = e;
	}
	struct user_cache_entry *e = *pp;
	e->sessions++;
	if (c->opened != NULL)
		c->opened(e, s, c->ctx);
}

static enum hook_result cache_opened(struct host *h, void *args, void *ctx)
{
	(void)h;
	session_add(ctx, ((struct hook_session *)args)->session);
	return HOOK_CONTINUE;
}

static enum hook_result cache_closed(struct host *h, void *args, void *ctx)
{
	(void)h;
	struct user_cache *c = ctx;
	struct session *s = ((struct hook_session *)args)->session;
	struct user_cache_entry **pp = slot(c, s->jid.node);
	struct user_cache_entry *e = *pp;
	if (e == NULL)
		return HOOK_CONTINUE;
	if (c->closed != NULL)
		c->closed(e, s, c->ctx);
	/* closed may not have dropped e: find it again */
	pp = slot(c, s->jid.node);
	if (*pp != e)
		return HOOK_CONTINUE;
	if (e->sessions > 0)
		e->sessions--;
	if (e->sessions == 0) {
		*pp = e->next;
		entry_free(c, e);
	}
	return HOOK_CONTINUE;
}

static void add_existing(struct session *s, void *ctx)
{
	session_add(ctx, s);
}

void user_cache_start(struct user_cache *c, struct host *h)
{
	c->host = h;
	c->buckets = xcalloc(USER_CACHE_BUCKETS, sizeof(*c->buckets));
	hook_add(h, HOOK_SESSION_OPENED, 50, cache_opened, c);
	hook_add(h, HOOK_SESSION_CLOSED, 50, cache_closed, c);
	sm_foreach(h, add_existing, c);
}

void user_cache_stop(struct user_cache *c)
{
	if (c->buckets == NULL)
		return;
	hook_remove(c->host, HOOK_SESSION_OPENED, cache_opened, c);
	hook_remove(c->host, HOOK_SESSION_CLOSED, cache_closed, c);
	for (size_t i = 0; i < USER_CACHE_BUCKETS; i++) {
		while (c->buckets[i] != NULL) {
			struct user_cache_entry *e = c->buckets[i];
			c->buckets[i] = e->next;
			entry_free(c, e);
		}
	}
	free(c->buckets);
	c->buckets = NULL;
}
