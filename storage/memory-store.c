/*
 * The memory store: every storage area kept in this process's memory, for
 * tests (storage driver "memory").  Nothing survives storage_close.  It
 * answers like the SQL store (same results, same orders, same quota and
 * existence rules), so the storage test cases and module tests run on it
 * without a database.
 *
 * Threads: loop thread only.  The store has no worker group: storage.c
 * runs each job's work on the loop, later (never inside the call that
 * submitted it), in submission order; conn is the store itself.
 *
 * Invariants: every string the store keeps is malloc'd and owned by it;
 * results are copied into the job's pool (valid until the job is freed);
 * a user's record exists while any of its data does (an account or not:
 * as in SQL, rosters, vCards and the rest do not require an account).
 */
#include "storage/account-store.h"
#include "storage/roster-store.h"
#include "storage/offline-store.h"
#include "storage/vcard-store.h"
#include "storage/private-store.h"
#include "storage/privacy-store.h"
#include "storage/last-store.h"
#include "storage/srg-store.h"
#include "storage/search-store.h"
#include "storage/muc-store.h"
#include "storage/pubsub-store.h"
#include "storage/mam-store.h"
#include "storage/vcard-index.h"
#include "lib/log.h"

#include <assert.h>
#include <ctype.h>
#include <time.h>

struct mem_msg {
	int64_t seq, created;
	char *stanza;
};

struct mem_plist {
	char *name;
	struct privacy_item *items; /* values malloc'd; ascending order */
	size_t nitems;
};

struct mem_user {
	char *host, *user;
	bool has_account;
	struct storage_account acc; /* strings malloc'd */
	struct roster_item *items;  /* deep, malloc'd */
	size_t nitems;
	uint64_t roster_version;
	struct mem_msg *msgs;
	size_t nmsgs;
	char *vcard;                 /* NULL: none */
	struct vcard_index vi;       /* of vcard */
	char *folded[VF_COUNT];      /* vcard_fold of vi.fields */
	struct private_item *pitems; /* strings malloc'd (cast away const) */
	size_t npitems;
	bool has_last;
	int64_t last_seconds;
	char *last_status;
	struct strlist blocked;
	struct mem_plist *plists;
	size_t nplists;
	char *default_list;
	struct storage_fast_token *fast; /* strings malloc'd */
	size_t nfast;
	bool has_scram_cache;               /* SCRAM keys of another auth method */
	struct storage_account scram_cache; /* strings malloc'd */
	int64_t scram_cache_expires;
};

struct mem_group {
	char *host;
	struct srg_group g; /* displayed and members: sets */
};

/* A stored MUC room; affs sorted by jid, one per jid (as the front
 * hands them over). */
struct mem_room {
	char *host, *service;
	struct muc_room_item r; /* strings and affs malloc'd (const cast away) */
};

struct mem_nick {
	char *host, *service, *jid, *nick;
};

/* A stored pubsub node of host's owner; affs and subs in the order the
 * front hands them over. */
struct mem_ps_node {
	char *host, *owner;
	struct pubsub_node_item n; /* strings and lists malloc'd (const cast away) */
};

/* A stored pubsub item of host's owner. */
struct mem_ps_item {
	char *host, *owner;
	struct pubsub_item it; /* strings malloc'd (const cast away) */
};

/* The message archive of host's owner and its preferences; msgs in
 * ascending id order. */
struct mem_archive {
	char *host, *owner;
	struct mam_message *msgs; /* strings malloc'd (const cast away) */
	size_t nmsgs, cap;
	bool has_prefs;
	enum mam_default def;
	struct strlist always, never; /* sorted */
};

struct mem_store {
	struct storage base;
	struct mem_user **users;
	size_t nusers;
	struct mem_group *groups;
	size_t ngroups;
	int64_t next_seq;
	struct mem_room *rooms;
	size_t nrooms;
	struct mem_nick *nicks;
	size_t nnicks;
	struct mem_ps_node *ps_nodes;
	size_t nps_nodes;
	struct mem_ps_item *ps_items;
	size_t nps_items;
	struct mem_archive **archives;
	size_t narchives;
};

/* ---- helpers ------------------------------------------------------------------ */

static struct mem_user *user_find(struct mem_store *ms, const char *host, const char *user)
{
	for (size_t i = 0; i < ms->nusers; i++)
		if (strcmp(ms->users[i]->host, host) == 0 && strcmp(ms->users[i]->user, user) == 0)
			return ms->users[i];
	return NULL;
}

static struct mem_user *user_get(struct mem_store *ms, const char *host, const char *user)
{
	struct mem_user *u = user_find(ms, host, user);
	if (u != NULL)
		return u;
	u = xcalloc(1, sizeof(*u));
	u->host = xstrdup(host);
	u->user = xstrdup(user);
	ms->users = xrealloc(ms->users, (ms->nusers + 1) * sizeof(*ms->users));
	ms->users[ms->nusers++] = u;
	return u;
}

static void plist_clear(struct mem_plist *l)
{
	for (size_t i = 0; i < l->nitems; i++)
		free((char *)l->items[i].value);
	free(l->items);
	free(l->name);
}

static void user_vcard_clear(struct mem_user *u)
{
	free(u->vcard);
	u->vcard = NULL;
	vcard_index_clear(&u->vi);
	for (size_t i = 0; i < VF_COUNT; i++) {
		free(u->folded[i]);
		u->folded[i] = NULL;
	}
}

static void fast_clear(struct storage_fast_token *t)
{
	free(t->ua_id);
	free(t->mechanism);
	explicit_bzero(t, sizeof(*t));
}

static void user_free(struct mem_user *u)
{
	storage_account_clear(&u->acc);
	storage_account_clear(&u->scram_cache);
	for (size_t i = 0; i < u->nfast; i++)
		fast_clear(&u->fast[i]);
	free(u->fast);
	for (size_t i = 0; i < u->nitems; i++)
		roster_item_clear(&u->items[i]);
	free(u->items);
	for (size_t i = 0; i < u->nmsgs; i++)
		free(u->msgs[i].stanza);
	free(u->msgs);
	user_vcard_clear(u);
	for (size_t i = 0; i < u->npitems; i++) {
		free((char *)u->pitems[i].ns);
		free((char *)u->pitems[i].data);
	}
	free(u->pitems);
	free(u->last_status);
	strlist_free(&u->blocked);
	for (size_t i = 0; i < u->nplists; i++)
		plist_clear(&u->plists[i]);
	free(u->plists);
	free(u->default_list);
	free(u->host);
	free(u->user);
	free(u);
}

static void strlist_push(struct strlist *l, const char *s)
{
	l->items = xrealloc(l->items, (l->count + 1) * sizeof(char *));
	l->items[l->count++] = xstrdup(s);
}

static ssize_t strlist_index(const struct strlist *l, const char *s)
{
	for (size_t i = 0; i < l->count; i++)
		if (strcmp(l->items[i], s) == 0)
			return (ssize_t)i;
	return -1;
}

static void strlist_remove_at(struct strlist *l, size_t i)
{
	free(l->items[i]);
	memmove(&l->items[i], &l->items[i + 1], (l->count - i - 1) * sizeof(char *));
	l->count--;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A sorted copy of l in pool. */
static void names_copy(struct pool *p, struct strlist *out, const struct strlist *l)
{
	out->count = l->count;
	out->items = l->count > 0 ? pool_alloc(p, l->count * sizeof(char *)) : NULL;
	for (size_t i = 0; i < l->count; i++)
		out->items[i] = pool_strdup(p, l->items[i]);
	if (out->count > 1)
		qsort(out->items, out->count, sizeof(char *), cmp_str);
}

static char *dup_or_null(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

/* ---- accounts ---------------------------------------------------------------------- */

static void account_copy(struct storage_account *dst, const struct storage_account *a)
{
	/* As the SQL store keeps it: credentials only with their salt. */
	memset(dst, 0, sizeof(*dst));
	dst->created = a->created;
	if (a->has_sha1 && a->sha1.salt_b64 != NULL) {
		dst->has_sha1 = true;
		dst->sha1 = a->sha1;
		dst->sha1.salt_b64 = xstrdup(a->sha1.salt_b64);
	}
	if (a->has_sha256 && a->sha256.salt_b64 != NULL) {
		dst->has_sha256 = true;
		dst->sha256 = a->sha256;
		dst->sha256.salt_b64 = xstrdup(a->sha256.salt_b64);
	}
	if (a->has_sha512 && a->sha512.salt_b64 != NULL) {
		dst->has_sha512 = true;
		dst->sha512 = a->sha512;
		dst->sha512.salt_b64 = xstrdup(a->sha512.salt_b64);
	}
	dst->plain = dup_or_null(a->plain);
}

static enum storage_result mem_account_get(void *conn, struct account_get_job *r)
{
	struct mem_user *u = user_find(conn, r->base.host, r->base.user);
	if (u == NULL || !u->has_account)
		return STORAGE_NOT_FOUND;
	r->acc = u->acc;
	struct pool *p = r->base.pool;
	if (u->acc.sha1.salt_b64 != NULL)
		r->acc.sha1.salt_b64 = pool_strdup(p, u->acc.sha1.salt_b64);
	if (u->acc.sha256.salt_b64 != NULL)
		r->acc.sha256.salt_b64 = pool_strdup(p, u->acc.sha256.salt_b64);
	if (u->acc.sha512.salt_b64 != NULL)
		r->acc.sha512.salt_b64 = pool_strdup(p, u->acc.sha512.salt_b64);
	r->acc.plain = u->acc.plain != NULL ? pool_strdup(p, u->acc.plain) : NULL;
	return STORAGE_OK;
}

static enum storage_result mem_account_create(void *conn, struct account_create_job *r)
{
	struct mem_user *u = user_get(conn, r->base.host, r->base.user);
	if (u->has_account)
		return STORAGE_EXISTS;
	account_copy(&u->acc, &r->acc);
	u->has_account = true;
	return STORAGE_OK;
}

static enum storage_result mem_account_update(void *conn, struct account_update_job *r)
{
	struct mem_user *u = user_find(conn, r->base.host, r->base.user);
	if (u == NULL || !u->has_account)
		return STORAGE_NOT_FOUND;
	int64_t created = u->acc.created;
	storage_account_clear(&u->acc);
	account_copy(&u->acc, &r->acc);
	u->acc.created = created;
	return STORAGE_OK;
}

static enum storage_result mem_account_add_credentials(void *conn, struct account_update_job *r)
{
	struct mem_user *u = user_find(conn, r->base.host, r->base.user);
	if (u == NULL || !u->has_account)
		return STORAGE_NOT_FOUND;
	struct storage_account add;
	account_copy(&add, &r->acc);
	if (add.has_sha1 && !u->acc.has_sha1) {
		u->acc.has_sha1 = true;
		u->acc.sha1 = add.sha1;
		add.sha1.salt_b64 = NULL;
	}
	if (add.has_sha256 && !u->acc.has_sha256) {
		u->acc.has_sha256 = true;
		u->acc.sha256 = add.sha256;
		add.sha256.salt_b64 = NULL;
	}
	if (add.has_sha512 && !u->acc.has_sha512) {
		u->acc.has_sha512 = true;
		u->acc.sha512 = add.sha512;
		add.sha512.salt_b64 = NULL;
	}
	storage_account_clear(&add);
	return STORAGE_OK;
}

static void archive_remove(struct mem_store *ms, const char *host, const char *owner);

/* The account and every row of the user, and its memberships in the
 * host's shared groups. */
static enum storage_result mem_account_remove(void *conn, struct account_remove_job *r)
{
	struct mem_store *ms = conn;
	char *bare = pool_printf(r->base.pool, "%s@%s", r->base.user, r->base.host);
	for (size_t i = 0; i < ms->ngroups; i++) {
		struct mem_group *g = &ms->groups[i];
		ssize_t k;
		if (strcmp(g->host, r->base.host) == 0 && (k = strlist_index(&g->g.members, bare)) >= 0)
			strlist_remove_at(&g->g.members, (size_t)k);
	}
	archive_remove(ms, r->base.host, bare);
	for (size_t i = 0; i < ms->nusers; i++) {
		struct mem_user *u = ms->users[i];
		if (strcmp(u->host, r->base.host) != 0 || strcmp(u->user, r->base.user) != 0)
			continue;
		bool had = u->has_account;
		user_free(u);
		ms->users[i] = ms->users[--ms->nusers];
		return had ? STORAGE_OK : STORAGE_NOT_FOUND;
	}
	return STORAGE_NOT_FOUND;
}

static enum storage_result mem_account_list(void *conn, struct account_list_job *r)
{
	struct mem_store *ms = conn;
	struct strlist l = { 0 };
	for (size_t i = 0; i < ms->nusers; i++)
		if (ms->users[i]->has_account && strcmp(ms->users[i]->host, r->base.host) == 0 &&
		    (r->after == NULL || strcmp(ms->users[i]->user, r->after) > 0) &&
		    (r->match == NULL || strstr(ms->users[i]->user, r->match) != NULL))
			strlist_push(&l, ms->users[i]->user);
	if (r->limit > 0 && l.count > 0) {
		qsort(l.items, l.count, sizeof(*l.items), cmp_str);
		while (l.count > r->limit)
			free(l.items[--l.count]);
	}
	names_copy(r->base.pool, &r->names, &l);
	strlist_free(&l);
	return STORAGE_OK;
}

static enum storage_result mem_account_count(void *conn, struct account_count_job *r)
{
	struct mem_store *ms = conn;
	r->count = 0;
	for (size_t i = 0; i < ms->nusers; i++)
		if (ms->users[i]->has_account && strcmp(ms->users[i]->host, r->base.host) == 0)
			r->count++;
	return STORAGE_OK;
}

/* FAST tokens: kept in the user's record, in insertion order. */
static void fast_copy(struct pool *p, struct storage_fast_token *dst, const struct storage_fast_token *t)
{
	*dst = *t;
	dst->ua_id = pool_strdup(p, t->ua_id);
	dst->mechanism = pool_strdup(p, t->mechanism);
}

static void fast_remove_at(struct mem_user *u, size_t i)
{
	fast_clear(&u->fast[i]);
	memmove(&u->fast[i], &u->fast[i + 1], (u->nfast - i - 1) * sizeof(*u->fast));
	u->nfast--;
}

static enum storage_result mem_fast_set(void *conn, struct fast_token_set_job *r)
{
	struct mem_user *u = user_get(conn, r->base.host, r->base.user);
	for (size_t i = 0; i < u->nfast; i++)
		if (memcmp(u->fast[i].seed, r->t.seed, sizeof(r->t.seed)) == 0) {
			fast_remove_at(u, i);
			break;
		}
	u->fast = xrealloc(u->fast, (u->nfast + 1) * sizeof(*u->fast));
	struct storage_fast_token *t = &u->fast[u->nfast++];
	*t = r->t;
	t->ua_id = xstrdup(r->t.ua_id);
	t->mechanism = xstrdup(r->t.mechanism);
	return STORAGE_OK;
}

static enum storage_result mem_fast_get(void *conn, struct fast_token_get_job *r)
{
	struct mem_user *u = user_find(conn, r->base.host, r->base.user);
	for (size_t i = 0; u != NULL && i < u->nfast; i++)
		if (memcmp(u->fast[i].seed, r->seed, sizeof(r->seed)) == 0) {
			fast_copy(r->base.pool, &r->t, &u->fast[i]);
			return STORAGE_OK;
		}
	return STORAGE_NOT_FOUND;
}

static enum storage_result mem_fast_delete(void *conn, struct fast_token_delete_job *r)
{
	struct mem_user *u = user_find(conn, r->base.host, r->base.user);
	bool any = false;
	for (size_t i = 0; u != NULL && i < u->nfast;) {
		if ((r->ua_id == NULL || strcmp(u->fast[i].ua_id, r->ua_id) == 0) &&
		    (!r->by_seed || memcmp(u->fast[i].seed, r->seed, sizeof(r->seed)) == 0)) {
			fast_remove_at(u, i);
			any = true;
		} else {
			i++;
		}
	}
	return any ? STORAGE_OK : STORAGE_NOT_FOUND;
}

static int fast_cmp(const void *a, const void *b)
{
	const struct storage_fast_token *x = a, *y = b;
	int c = strcmp(x->ua_id, y->ua_id);
	return c != 0 ? c : (x->created > y->created) - (x->created < y->created);
}

static enum storage_result mem_fast_list(void *conn, struct fast_token_list_job *r)
{
	struct mem_user *u = user_find(conn, r->base.host, r->base.user);
	r->account_exists = u != NULL && u->has_account;
	if (u == NULL || u->nfast == 0)
		return STORAGE_OK;
	r->tokens = pool_alloc(r->base.pool, u->nfast * sizeof(*r->tokens));
	for (size_t i = 0; i < u->nfast; i++)
		fast_copy(r->base.pool, &r->tokens[i], &u->fast[i]);
	r->ntokens = u->nfast;
	qsort(r->tokens, r->ntokens, sizeof(*r->tokens), fast_cmp);
	return STORAGE_OK;
}

static enum storage_result mem_fast_expire(void *conn, struct fast_token_expire_job *r)
{
	struct mem_store *ms = conn;
	r->count = 0;
	for (size_t i = 0; i < ms->nusers; i++) {
		struct mem_user *u = ms->users[i];
		if (strcmp(u->host, r->base.host) != 0)
			continue;
		for (size_t k = 0; k < u->nfast;) {
			if (u->fast[k].expires <= r->before) {
				fast_remove_at(u, k);
				r->count++;
			} else {
				k++;
			}
		}
	}
	return STORAGE_OK;
}

/* SCRAM keys of users of other auth methods: kept in the user's record,
 * apart from its account. */
static void scram_cache_drop(struct mem_user *u)
{
	storage_account_clear(&u->scram_cache);
	u->has_scram_cache = false;
	u->scram_cache_expires = 0;
}

static enum storage_result mem_scram_cache_get(void *conn, struct account_get_job *r)
{
	struct mem_user *u = user_find(conn, r->base.host, r->base.user);
	if (u == NULL || !u->has_scram_cache)
		return STORAGE_NOT_FOUND;
	int64_t now = (int64_t)time(NULL);
	/* beyond now + ttl: written under a longer TTL than today's */
	if (u->scram_cache_expires <= now || (r->ttl > 0 && u->scram_cache_expires > now + r->ttl)) {
		scram_cache_drop(u);
		return STORAGE_NOT_FOUND;
	}
	struct pool *p = r->base.pool;
	r->acc = u->scram_cache;
	r->acc.sha1.salt_b64 = pool_strdup(p, u->scram_cache.sha1.salt_b64);
	r->acc.sha256.salt_b64 = pool_strdup(p, u->scram_cache.sha256.salt_b64);
	r->acc.sha512.salt_b64 = pool_strdup(p, u->scram_cache.sha512.salt_b64);
	r->acc.plain = NULL;
	return STORAGE_OK;
}

static enum storage_result mem_scram_cache_set(void *conn, struct account_update_job *r)
{
	struct mem_user *u = user_get(conn, r->base.host, r->base.user);
	scram_cache_drop(u);
	account_copy(&u->scram_cache, &r->acc);
	if (u->scram_cache.plain != NULL) {
		explicit_bzero(u->scram_cache.plain, strlen(u->scram_cache.plain));
		xfree(&u->scram_cache.plain);
	}
	u->has_scram_cache = true;
	u->scram_cache_expires = r->expires;
	return STORAGE_OK;
}

static enum storage_result mem_scram_cache_delete(void *conn, struct account_remove_job *r)
{
	struct mem_user *u = user_find(conn, r->base.host, r->base.user);
	if (u == NULL || !u->has_scram_cache)
		return STORAGE_NOT_FOUND;
	scram_cache_drop(u);
	return STORAGE_OK;
}

static enum storage_result mem_scram_cache_expire(void *conn, struct fast_token_expire_job *r)
{
	struct mem_store *ms = conn;
	r->count = 0;
	for (size_t i = 0; i < ms->nusers; i++) {
		struct mem_user *u = ms->users[i];
		if (strcmp(u->host, r->base.host) == 0 && u->has_scram_cache &&
		    u->scram_cache_expires <= r->before) {
			scram_cache_drop(u);
			r->count++;
		}
	}
	return STORAGE_OK;
}

static const struct account_store_vfuncs mem_account_vfuncs = {
	.get = mem_account_get,
	.create = mem_account_create,
	.update = mem_account_update,
	.add_credentials = mem_account_add_credentials,
	.remove = mem_account_remove,
	.list = mem_account_list,
	.count = mem_account_count,
	.fast_set = mem_fast_set,
	.fast_get = mem_fast_get,
	.fast_delete = mem_fast_delete,
	.fast_list = mem_fast_list,
	.fast_expire = mem_fast_expire,
	.scram_cache_get = mem_scram_cache_get,
	.scram_cache_set = mem_scram_cache_set,
	.scram_cache_delete = mem_scram_cache_delete,
	.scram_cache_expire = mem_scram_cache_expire,
};

/* ---- roster ------------------------------------------------------------------------ */

static int cmp_item(const void *a, const void *b)
{
	return strcmp(((const struct roster_item *)a)->jid, ((const struct roster_item *)b)->jid);
}

static enum storage_result mem_roster_get(void *conn, struct roster_get_job *r)
{
	struct mem_user *u = user_find(conn, r->base.host, r->base.user);
	struct pool *p = r->base.pool;
	r->items = NULL;
	r->nitems = 0;
	r->version = 0;
	if (u == NULL)
		return STORAGE_OK;
	r->version = u->roster_version;
	if (u->nitems == 0)
		return STORAGE_OK;
	r->items = pool_alloc(p, u->nitems * sizeof(*r->items));
	for (size_t i = 0; i < u->nitems; i++) {
		const struct roster_item *src = &u->items[i];
		struct roster_item *it = &r->items[i];
		*it = *src;
		it->jid = pool_strdup(p, src->jid);
		it->name = src->name != NULL ? pool_strdup(p, src->name) : NULL;
		it->ask_in_stanza = src->ask_in_stanza != NULL ? pool_strdup(p, src->ask_in_stanza) : NULL;
		names_copy(p, &it->groups, &src->groups);
	}
	r->nitems = u->nitems;
	qsort(r->items, r->nitems, sizeof(*r->items), cmp_item);
	return STORAGE_OK;
}

static enum storage_result mem_roster_set(void *conn, struct roster_set_job *r)
{
	const struct roster_item *in = &r->item;
	if (in->subscription == SUB_REMOVE)
		return STORAGE_ERROR;
	struct mem_user *u = user_get(conn, r->base.host, r->base.user);
	struct roster_item *it = NULL;
	for (size_t i = 0; i < u->nitems && it == NULL; i++)
		if (strcmp(u->items[i].jid, in->jid) == 0)
			it = &u->items[i];
	if (it == NULL) {
		u->items = xrealloc(u->items, (u->nitems + 1) * sizeof(*u->items));
		it = &u->items[u->nitems++];
	} else {
		roster_item_clear(it);
	}
	memset(it, 0, sizeof(*it));
	it->jid = xstrdup(in->jid);
	it->name = dup_or_null(in->name);
	it->subscription = in->subscription;
	it->ask_out = in->ask_out;
	it->ask_in = in->ask_in;
	it->approved = in->approved;
	it->ask_in_stanza = dup_or_null(in->ask_in_stanza);
	it->in_roster = in->in_roster;
	for (size_t i = 0; i < in->groups.count; i++)
		if (strlist_index(&it->groups, in->groups.items[i]) < 0)
			strlist_push(&it->groups, in->groups.items[i]);
	u->roster_version++;
	return STORAGE_OK;
}

static enum storage_result mem_roster_remove(void *conn, struct roster_remove_job *r)
{
	struct mem_user *u = user_find(conn, r->base.host, r->base.user);
	for (size_t i = 0; u != NULL && i < u->nitems; i++) {
		if (strcmp(u->items[i].jid, r->jid) != 0)
			continue;
		roster_item_clear(&u->items[i]);
		u->items[i] = u->items[--u->nitems];
		u->roster_version++;
		return STORAGE_OK;
	}
	return STORAGE_NOT_FOUND;
}

static const struct roster_store_vfuncs mem_roster_vfuncs = {
	.get = mem_roster_get,
	.set = mem_roster_set,
	.remove = mem_roster_remove,
};

/* ---- offline messages ------------------------------------------------------------ */

static enum storage_result mem_offline_store(void *conn, struct offline_store_job *r)
{
	struct mem_store *ms = conn;
	struct mem_user *u = user_find(ms, r->base.host, r->base.user);
	if (u == NULL || !u->has_account)
		return STORAGE_NOT_FOUND;
	if (r->max > 0 && u->nmsgs >= r->max)
		return STORAGE_FULL;
	u->msgs = xrealloc(u->msgs, (u->nmsgs + 1) * sizeof(*u->msgs));
	struct mem_msg *m = &u->msgs[u->nmsgs++];
	m->seq = ++ms->next_seq;
	m->created = (int64_t)time(NULL);
	m->stanza = xstrdup(r->stanza);
	return STORAGE_OK;
}

static enum storage_result mem_offline_get(void *conn, struct offline_get_job *r)
{
	struct mem_user *u = user_find(conn, r->base.host, r->base.user);
	r->msgs = NULL;
	r->nmsgs = 0;
	if (u == NULL || u->nmsgs == 0)
		return STORAGE_OK;
	r->total = u->nmsgs;
	size_t first = 0, n = u->nmsgs;
	if (r->limit > 0) {
		while (first < u->nmsgs && u->msgs[first].seq <= r->after)
			first++;
		n = u->nmsgs - first < r->limit ? u->nmsgs - first : r->limit;
		r->more = u->nmsgs - first - n;
	}
	if (n == 0)
		return STORAGE_OK;
	r->msgs = pool_alloc(r->base.pool, n * sizeof(*r->msgs));
	for (size_t i = 0; i < n; i++) {
		r->msgs[i].seq = u->msgs[first + i].seq;
		r->msgs[i].created = u->msgs[first + i].created;
		r->msgs[i].stanza = pool_strdup(r->base.pool, u->msgs[first + i].stanza);
	}
	r->nmsgs = n;
	return STORAGE_OK;
}

static enum storage_result mem_offline_delete_upto(void *conn, struct offline_delete_upto_job *r)
{
	struct mem_user *u = user_find(conn, r->base.host, r->base.user);
	if (u == NULL)
		return STORAGE_OK;
	size_t k = 0;
	for (size_t i = 0; i < u->nmsgs; i++) {
		if (u->msgs[i].seq <= r->seq)
			free(u->msgs[i].stanza);
		else
			u->msgs[k++] = u->msgs[i];
	}
	u->nmsgs = k;
	return STORAGE_OK;
}

static enum storage_result mem_offline_count(void *conn, struct offline_count_job *r)
{
	if (r->base.user == NULL) {
		struct mem_store *ms = conn;
		r->count = 0;
		for (size_t i = 0; i < ms->nusers; i++)
			if (strcmp(ms->users[i]->host, r->base.host) == 0)
				r->count += ms->users[i]->nmsgs;
		return STORAGE_OK;
	}
	struct mem_user *u = user_find(conn, r->base.host, r->base.user);
	r->count = u != NULL ? u->nmsgs : 0;
	return STORAGE_OK;
}

static const struct offline_store_vfuncs mem_offline_vfuncs = {
	.store = mem_offline_store,
	.get = mem_offline_get,
	.delete_upto = mem_offline_delete_upto,
	.count = mem_offline_count,
};

/* ---- vCards and their search index ---------------------------------------------- */

static enum storage_result mem_vcard_get(void *conn, struct vcard_get_job *r)
{
	struct mem_user *u = user_find(conn, r->base.host, r->base.user);
	if (u == NULL || u->vcard == NULL)
		return STORAGE_NOT_FOUND;
	r->out_text = pool_strdup(r->base.pool, u->vcard);
	return STORAGE_OK;
}

static enum storage_result mem_vcard_set(void *conn, struct vcard_set_job *r)
{
	struct mem_user *u = user_get(conn, r->base.host, r->base.user);
	user_vcard_clear(u);
	u->vcard = xstrdup(r->text);
	if (vcard_index_extract(u->vcard, &u->vi) < 0) {
		for (size_t i = 1; i < VF_COUNT; i++)
			u->vi.fields[i] = xstrdup("");
		u->vi.listed = false;
	}
	for (size_t i = 1; i < VF_COUNT; i++)
		u->folded[i] = vcard_fold(u->vi.fields[i]);
	return STORAGE_OK;
}

static const struct vcard_store_vfuncs mem_vcard_vfuncs = {
	.get = mem_vcard_get,
	.set = mem_vcard_set,
};

static bool term_matches(const struct mem_user *u, const struct vcard_term *tm)
{
	const char *v = tm->field == VF_USER ? u->user : u->folded[tm->field];
	if (v == NULL)
		v = "";
	if (tm->prefix)
		return strncmp(v, tm->value, strlen(tm->value)) == 0;
	return strcmp(v, tm->value) == 0;
}

static int cmp_user(const void *a, const void *b)
{
	return strcmp((*(struct mem_user *const *)a)->user, (*(struct mem_user *const *)b)->user);
}

static enum storage_result mem_vcard_search(void *conn, struct vcard_search_job *r)
{
	struct mem_store *ms = conn;
	struct mem_user **found = ms->nusers > 0 ? xmalloc(ms->nusers * sizeof(*found)) : NULL;
	size_t n = 0;
	for (size_t i = 0; i < ms->nusers; i++) {
		struct mem_user *u = ms->users[i];
		if (u->vcard == NULL || strcmp(u->host, r->base.host) != 0 ||
		    (r->listed_only && !u->vi.listed))
			continue;
		bool ok = true;
		for (size_t k = 0; k < r->nterms && ok; k++)
			ok = term_matches(u, &r->terms[k]);
		if (ok)
			found[n++] = u;
	}
	if (n > 1)
		qsort(found, n, sizeof(*found), cmp_user);
	r->more = r->limit > 0 && n > r->limit;
	r->nentries = r->more ? r->limit : n;
	r->entries = r->nentries > 0 ? pool_alloc(r->base.pool, r->nentries * sizeof(*r->entries)) : NULL;
	for (size_t i = 0; i < r->nentries; i++) {
		r->entries[i].fields[VF_USER] = pool_strdup(r->base.pool, found[i]->user);
		for (size_t f = 1; f < VF_COUNT; f++)
			r->entries[i].fields[f] = pool_strdup(r->base.pool, found[i]->vi.fields[f]);
	}
	free(found);
	return STORAGE_OK;
}

/* Every vCard is indexed when it is set: nothing is ever left to index. */
static enum storage_result mem_vcard_reindex(void *conn, struct vcard_reindex_job *r)
{
	r->count = 0;
	return STORAGE_OK;
}

static const struct search_store_vfuncs mem_search_vfuncs = {
	.search = mem_vcard_search,
	.reindex = mem_vcard_reindex,
};

/* ---- private XML storage -------------------------------------------------------- */

static enum storage_result mem_private_get(void *conn, struct private_get_job *r)
{
	struct mem_user *u = user_find(conn, r->base.host, r->base.user);
	for (size_t i = 0; u != NULL && i < u->npitems; i++) {
		if (strcmp(u->pitems[i].ns, r->ns) == 0) {
			r->out_text = pool_strdup(r->base.pool, u->pitems[i].data);
			return STORAGE_OK;
		}
	}
	return STORAGE_NOT_FOUND;
}

static enum storage_result mem_private_set(void *conn, struct private_set_job *r)
{
	struct mem_user *u = user_get(conn, r->base.host, r->base.user);
	for (size_t k = 0; k < r->npitems; k++) {
		struct private_item *it = NULL;
		for (size_t i = 0; i < u->npitems && it == NULL; i++)
			if (strcmp(u->pitems[i].ns, r->pitems[k].ns) == 0)
				it = &u->pitems[i];
		if (it == NULL) {
			u->pitems = xrealloc(u->pitems, (u->npitems + 1) * sizeof(*u->pitems));
			it = &u->pitems[u->npitems++];
			it->ns = xstrdup(r->pitems[k].ns);
		} else {
			free((char *)it->data);
		}
		it->data = xstrdup(r->pitems[k].data);
	}
	return STORAGE_OK;
}

static int cmp_private(const void *a, const void *b)
{
	return strcmp(((const struct private_item *)a)->ns, ((const struct private_item *)b)->ns);
}

static enum storage_result mem_private_list(void *conn, struct private_list_job *r)
{
	struct mem_user *u = user_find(conn, r->base.host, r->base.user);
	r->pitems = NULL;
	r->npitems = 0;
	if (u == NULL || u->npitems == 0)
		return STORAGE_OK;
	r->pitems = pool_alloc(r->base.pool, u->npitems * sizeof(*r->pitems));
	for (size_t i = 0; i < u->npitems; i++) {
		r->pitems[i].ns = pool_strdup(r->base.pool, u->pitems[i].ns);
		r->pitems[i].data = pool_strdup(r->base.pool, u->pitems[i].data);
	}
	r->npitems = u->npitems;
	qsort(r->pitems, r->npitems, sizeof(*r->pitems), cmp_private);
	return STORAGE_OK;
}

static const struct private_store_vfuncs mem_private_vfuncs = {
	.get = mem_private_get,
	.set = mem_private_set,
	.list = mem_private_list,
};

/* ---- last activity ------------------------------------------------------------------ */

static enum storage_result mem_last_get(void *conn, struct last_get_job *r)
{
	struct mem_user *u = user_find(conn, r->base.host, r->base.user);
	if (u == NULL || !u->has_last)
		return STORAGE_NOT_FOUND;
	r->last.seconds = u->last_seconds;
	r->last.status = pool_strdup(r->base.pool, u->last_status != NULL ? u->last_status : "");
	return STORAGE_OK;
}

static enum storage_result mem_last_set(void *conn, struct last_set_job *r)
{
	struct mem_user *u = user_get(conn, r->base.host, r->base.user);
	u->has_last = true;
	u->last_seconds = r->when;
	free(u->last_status);
	u->last_status = dup_or_null(r->text);
	return STORAGE_OK;
}

static const struct last_store_vfuncs mem_last_vfuncs = {
	.get = mem_last_get,
	.set = mem_last_set,
};

/* ---- privacy lists and the block list ----------------------------------------------- */

static int cmp_plist(const void *a, const void *b)
{
	return strcmp(((const struct privacy_list *)a)->name, ((const struct privacy_list *)b)->name);
}

static int cmp_pitem(const void *a, const void *b)
{
	uint32_t x = ((const struct privacy_item *)a)->order, y = ((const struct privacy_item *)b)->order;
	return x < y ? -1 : x > y;
}

static struct mem_plist *plist_find(struct mem_user *u, const char *name)
{
	for (size_t i = 0; u != NULL && i < u->nplists; i++)
		if (strcmp(u->plists[i].name, name) == 0)
			return &u->plists[i];
	return NULL;
}

static enum storage_result mem_privacy_get(void *conn, struct privacy_get_job *r)
{
	struct mem_user *u = user_find(conn, r->base.host, r->base.user);
	struct pool *p = r->base.pool;
	r->plists = NULL;
	r->nplists = 0;
	r->default_name = NULL;
	if (u == NULL || u->nplists == 0)
		return STORAGE_OK;
	r->plists = pool_alloc(p, u->nplists * sizeof(*r->plists));
	for (size_t i = 0; i < u->nplists; i++) {
		const struct mem_plist *l = &u->plists[i];
		struct privacy_item *items = pool_alloc(p, (l->nitems + 1) * sizeof(*items));
		for (size_t k = 0; k < l->nitems; k++) {
			items[k] = l->items[k];
			items[k].value = l->items[k].value != NULL ? pool_strdup(p, l->items[k].value) : NULL;
		}
		if (l->nitems > 1)
			qsort(items, l->nitems, sizeof(*items), cmp_pitem);
		r->plists[i].name = pool_strdup(p, l->name);
		r->plists[i].items = items;
		r->plists[i].nitems = l->nitems;
	}
	r->nplists = u->nplists;
	qsort(r->plists, r->nplists, sizeof(*r->plists), cmp_plist);
	if (u->default_list != NULL)
		r->default_name = pool_strdup(p, u->default_list);
	return STORAGE_OK;
}

static enum storage_result mem_privacy_set_list(void *conn, struct privacy_set_list_job *r)
{
	struct mem_user *u = user_get(conn, r->base.host, r->base.user);
	struct mem_plist *l = plist_find(u, r->lname);
	if (l == NULL) {
		u->plists = xrealloc(u->plists, (u->nplists + 1) * sizeof(*u->plists));
		l = &u->plists[u->nplists++];
		memset(l, 0, sizeof(*l));
		l->name = xstrdup(r->lname);
	} else {
		for (size_t i = 0; i < l->nitems; i++)
			free((char *)l->items[i].value);
		free(l->items);
	}
	l->items = xmalloc(r->nprv_in * sizeof(*l->items));
	for (size_t i = 0; i < r->nprv_in; i++) {
		l->items[i] = r->prv_in[i];
		l->items[i].value = r->prv_in[i].type == PRIVACY_ALL ? NULL : dup_or_null(r->prv_in[i].value);
	}
	l->nitems = r->nprv_in;
	return STORAGE_OK;
}

static enum storage_result mem_privacy_remove_list(void *conn, struct privacy_remove_list_job *r)
{
	struct mem_user *u = user_find(conn, r->base.host, r->base.user);
	struct mem_plist *l = plist_find(u, r->lname);
	if (l == NULL)
		return STORAGE_NOT_FOUND;
	if (u->default_list != NULL && strcmp(u->default_list, r->lname) == 0) {
		free(u->default_list);
		u->default_list = NULL;
	}
	plist_clear(l);
	*l = u->plists[--u->nplists];
	return STORAGE_OK;
}

static enum storage_result mem_privacy_set_default(void *conn, struct privacy_set_default_job *r)
{
	struct mem_user *u = user_find(conn, r->base.host, r->base.user);
	if (r->lname != NULL && plist_find(u, r->lname) == NULL)
		return STORAGE_NOT_FOUND;
	if (u == NULL)
		return STORAGE_OK;
	free(u->default_list);
	u->default_list = dup_or_null(r->lname);
	return STORAGE_OK;
}

static enum storage_result mem_blocklist_get(void *conn, struct blocklist_get_job *r)
{
	struct mem_user *u = user_find(conn, r->base.host, r->base.user);
	static const struct strlist empty = { NULL, 0 };
	names_copy(r->base.pool, &r->names, u != NULL ? &u->blocked : &empty);
	return STORAGE_OK;
}

static enum storage_result mem_blocklist_add(void *conn, struct blocklist_add_job *r)
{
	struct mem_user *u = user_get(conn, r->base.host, r->base.user);
	for (size_t i = 0; i < r->njids; i++)
		if (strlist_index(&u->blocked, r->jids[i]) < 0)
			strlist_push(&u->blocked, r->jids[i]);
	return STORAGE_OK;
}

static enum storage_result mem_blocklist_remove(void *conn, struct blocklist_remove_job *r)
{
	struct mem_user *u = user_find(conn, r->base.host, r->base.user);
	if (u == NULL)
		return STORAGE_OK;
	if (r->njids == 0) {
		strlist_free(&u->blocked);
		return STORAGE_OK;
	}
	for (size_t i = 0; i < r->njids; i++) {
		ssize_t k = strlist_index(&u->blocked, r->jids[i]);
		if (k >= 0)
			strlist_remove_at(&u->blocked, (size_t)k);
	}
	return STORAGE_OK;
}

static const struct privacy_store_vfuncs mem_privacy_vfuncs = {
	.get = mem_privacy_get,
	.set_list = mem_privacy_set_list,
	.remove_list = mem_privacy_remove_list,
	.set_default = mem_privacy_set_default,
	.blocklist_get = mem_blocklist_get,
	.blocklist_add = mem_blocklist_add,
	.blocklist_remove = mem_blocklist_remove,
};

/* ---- shared roster groups ---------------------------------------------------------- */

static struct mem_group *group_find(struct mem_store *ms, const char *host, const char *name)
{
	for (size_t i = 0; i < ms->ngroups; i++)
		if (strcmp(ms->groups[i].host, host) == 0 && strcmp(ms->groups[i].g.name, name) == 0)
			return &ms->groups[i];
	return NULL;
}

static void group_free(struct mem_group *g)
{
	srg_group_clear(&g->g);
	free(g->host);
}

static enum storage_result mem_srg_list(void *conn, struct srg_list_job *r)
{
	struct mem_store *ms = conn;
	struct strlist l = { 0 };
	for (size_t i = 0; i < ms->ngroups; i++)
		if (strcmp(ms->groups[i].host, r->base.host) == 0)
			strlist_push(&l, ms->groups[i].g.name);
	names_copy(r->base.pool, &r->names, &l);
	strlist_free(&l);
	return STORAGE_OK;
}

static int cmp_group(const void *a, const void *b)
{
	return strcmp(((const struct srg_group *)a)->name, ((const struct srg_group *)b)->name);
}

static enum storage_result mem_srg_get(void *conn, struct srg_get_job *r)
{
	struct mem_store *ms = conn;
	struct pool *p = r->base.pool;
	r->groups = NULL;
	r->ngroups = 0;
	if (ms->ngroups > 0)
		r->groups = pool_alloc(p, ms->ngroups * sizeof(*r->groups));
	for (size_t i = 0; i < ms->ngroups; i++) {
		const struct mem_group *g = &ms->groups[i];
		if (strcmp(g->host, r->base.host) != 0 ||
		    (r->name != NULL && strcmp(g->g.name, r->name) != 0))
			continue;
		struct srg_group *out = &r->groups[r->ngroups++];
		out->name = pool_strdup(p, g->g.name);
		out->label = pool_strdup(p, g->g.label);
		out->description = pool_strdup(p, g->g.description);
		names_copy(p, &out->displayed, &g->g.displayed);
		names_copy(p, &out->members, &g->g.members);
	}
	if (r->name != NULL && r->ngroups == 0)
		return STORAGE_NOT_FOUND;
	if (r->ngroups > 1)
		qsort(r->groups, r->ngroups, sizeof(*r->groups), cmp_group);
	return STORAGE_OK;
}

static void set_copy(struct strlist *dst, const struct strlist *src)
{
	for (size_t i = 0; i < src->count; i++)
		if (strlist_index(dst, src->items[i]) < 0)
			strlist_push(dst, src->items[i]);
}

static enum storage_result mem_srg_create(void *conn, struct srg_create_job *r)
{
	struct mem_store *ms = conn;
	if (group_find(ms, r->base.host, r->grp.name) != NULL)
		return STORAGE_EXISTS;
	ms->groups = xrealloc(ms->groups, (ms->ngroups + 1) * sizeof(*ms->groups));
	struct mem_group *g = &ms->groups[ms->ngroups++];
	memset(g, 0, sizeof(*g));
	g->host = xstrdup(r->base.host);
	g->g.name = xstrdup(r->grp.name);
	g->g.label = xstrdup(r->grp.label);
	g->g.description = xstrdup(r->grp.description);
	set_copy(&g->g.displayed, &r->grp.displayed);
	set_copy(&g->g.members, &r->grp.members);
	return STORAGE_OK;
}

static enum storage_result mem_srg_delete(void *conn, struct srg_delete_job *r)
{
	struct mem_store *ms = conn;
	struct mem_group *g = group_find(ms, r->base.host, r->name);
	if (g == NULL)
		return STORAGE_NOT_FOUND;
	group_free(g);
	*g = ms->groups[--ms->ngroups];
	return STORAGE_OK;
}

static enum storage_result mem_srg_member_add(void *conn, struct srg_member_add_job *r)
{
	struct mem_group *g = group_find(conn, r->base.host, r->name);
	if (g == NULL)
		return STORAGE_NOT_FOUND;
	if (strlist_index(&g->g.members, r->member) >= 0)
		return STORAGE_EXISTS;
	strlist_push(&g->g.members, r->member);
	return STORAGE_OK;
}

static enum storage_result mem_srg_member_remove(void *conn, struct srg_member_remove_job *r)
{
	struct mem_group *g = group_find(conn, r->base.host, r->name);
	ssize_t k = g != NULL ? strlist_index(&g->g.members, r->member) : -1;
	if (k < 0)
		return STORAGE_NOT_FOUND;
	strlist_remove_at(&g->g.members, (size_t)k);
	return STORAGE_OK;
}

static enum storage_result mem_srg_user_groups(void *conn, struct srg_user_groups_job *r)
{
	struct mem_store *ms = conn;
	struct strlist l = { 0 };
	for (size_t i = 0; i < ms->ngroups; i++) {
		const struct mem_group *g = &ms->groups[i];
		if (strcmp(g->host, r->base.host) == 0 && (strlist_index(&g->g.members, r->member) >= 0 ||
		                                           strlist_index(&g->g.members, SRG_MEMBER_ALL) >= 0))
			strlist_push(&l, g->g.name);
	}
	names_copy(r->base.pool, &r->names, &l);
	strlist_free(&l);
	return STORAGE_OK;
}

static const struct srg_store_vfuncs mem_srg_vfuncs = {
	.list = mem_srg_list,
	.get = mem_srg_get,
	.create = mem_srg_create,
	.delete = mem_srg_delete,
	.member_add = mem_srg_member_add,
	.member_remove = mem_srg_member_remove,
	.user_groups = mem_srg_user_groups,
};

/* ---- multi-user chat rooms ------------------------------------------------------- */

static struct mem_room *room_find(struct mem_store *ms, const char *service, const char *name)
{
	for (size_t i = 0; i < ms->nrooms; i++)
		if (strcmp(ms->rooms[i].service, service) == 0 && strcmp(ms->rooms[i].r.name, name) == 0)
			return &ms->rooms[i];
	return NULL;
}

static void room_clear(struct mem_room *m)
{
	for (size_t i = 0; i < m->r.naffs; i++) {
		free((char *)m->r.affs[i].jid);
		free((char *)m->r.affs[i].affiliation);
		free((char *)m->r.affs[i].reason);
	}
	free((void *)m->r.affs);
	free((char *)m->r.name);
	free((char *)m->r.config);
	free((char *)m->r.subject);
	free((char *)m->r.subject_nick);
	free(m->host);
	free(m->service);
	memset(m, 0, sizeof(*m));
}

static void nick_clear(struct mem_nick *n)
{
	free(n->host);
	free(n->service);
	free(n->jid);
	free(n->nick);
}

static enum storage_result mem_muc_load(void *conn, struct muc_load_job *r)
{
	struct mem_store *ms = conn;
	struct pool *p = r->base.pool;
	r->rooms = ms->nrooms > 0 ? pool_alloc(p, ms->nrooms * sizeof(*r->rooms)) : NULL;
	r->nrooms = 0;
	for (size_t i = 0; i < ms->nrooms; i++) {
		const struct mem_room *m = &ms->rooms[i];
		if (strcmp(m->service, r->service) != 0)
			continue;
		struct muc_room_item *out = &r->rooms[r->nrooms++];
		*out = m->r;
		out->name = pool_strdup(p, m->r.name);
		out->config = pool_strdup(p, m->r.config);
		out->subject = pool_strdup(p, m->r.subject);
		out->subject_nick = pool_strdup(p, m->r.subject_nick);
		struct muc_affiliation_item *affs =
		        m->r.naffs > 0 ? pool_alloc(p, m->r.naffs * sizeof(*affs)) : NULL;
		for (size_t k = 0; k < m->r.naffs; k++) {
			affs[k].jid = pool_strdup(p, m->r.affs[k].jid);
			affs[k].affiliation = pool_strdup(p, m->r.affs[k].affiliation);
			affs[k].reason = pool_strdup(p, m->r.affs[k].reason);
		}
		out->affs = affs;
	}
	if (r->nrooms > 1)
		qsort(r->rooms, r->nrooms, sizeof(*r->rooms), muc_cmp_room);
	r->nicks = ms->nnicks > 0 ? pool_alloc(p, ms->nnicks * sizeof(*r->nicks)) : NULL;
	r->nnicks = 0;
	for (size_t i = 0; i < ms->nnicks; i++)
		if (strcmp(ms->nicks[i].service, r->service) == 0)
			r->nicks[r->nnicks++] = (struct muc_nick_item){ pool_strdup(p, ms->nicks[i].jid),
				                                        pool_strdup(p, ms->nicks[i].nick) };
	if (r->nnicks > 1)
		qsort(r->nicks, r->nnicks, sizeof(*r->nicks), muc_cmp_nick);
	return STORAGE_OK;
}

static enum storage_result mem_muc_room_store(void *conn, struct muc_room_store_job *r)
{
	struct mem_store *ms = conn;
	const struct muc_room_item *in = &r->room;
	struct mem_room *m = room_find(ms, r->service, in->name);
	if (m != NULL) {
		room_clear(m);
	} else {
		ms->rooms = xrealloc(ms->rooms, (ms->nrooms + 1) * sizeof(*ms->rooms));
		m = &ms->rooms[ms->nrooms++];
	}
	m->host = xstrdup(r->base.host);
	m->service = xstrdup(r->service);
	m->r.name = xstrdup(in->name);
	m->r.config = xstrdup(in->config);
	m->r.subject = xstrdup(in->subject);
	m->r.subject_nick = xstrdup(in->subject_nick);
	m->r.created = (double)(int64_t)in->created; /* whole seconds, as SQL keeps it */
	struct muc_affiliation_item *affs = in->naffs > 0 ? xmalloc(in->naffs * sizeof(*affs)) : NULL;
	for (size_t i = 0; i < in->naffs; i++) {
		affs[i].jid = xstrdup(in->affs[i].jid);
		affs[i].affiliation = xstrdup(in->affs[i].affiliation);
		affs[i].reason = xstrdup(in->affs[i].reason);
	}
	m->r.affs = affs;
	m->r.naffs = in->naffs;
	return STORAGE_OK;
}

static enum storage_result mem_muc_room_delete(void *conn, struct muc_room_delete_job *r)
{
	struct mem_store *ms = conn;
	struct mem_room *m = room_find(ms, r->service, r->name);
	if (m != NULL) {
		room_clear(m);
		*m = ms->rooms[--ms->nrooms];
	}
	return STORAGE_OK;
}

static enum storage_result mem_muc_nick_set(void *conn, struct muc_nick_set_job *r)
{
	struct mem_store *ms = conn;
	ssize_t mine = -1;
	for (size_t i = 0; i < ms->nnicks; i++) {
		const struct mem_nick *n = &ms->nicks[i];
		if (strcmp(n->service, r->service) != 0)
			continue;
		if (strcmp(n->jid, r->jid) == 0)
			mine = (ssize_t)i;
		else if (r->nick != NULL && strcmp(n->nick, r->nick) == 0)
			return STORAGE_EXISTS;
	}
	if (mine >= 0) {
		nick_clear(&ms->nicks[mine]);
		ms->nicks[mine] = ms->nicks[--ms->nnicks];
	}
	if (r->nick == NULL)
		return STORAGE_OK;
	ms->nicks = xrealloc(ms->nicks, (ms->nnicks + 1) * sizeof(*ms->nicks));
	ms->nicks[ms->nnicks++] = (struct mem_nick){ xstrdup(r->base.host), xstrdup(r->service),
		                                     xstrdup(r->jid), xstrdup(r->nick) };
	return STORAGE_OK;
}

static const struct muc_store_vfuncs mem_muc_vfuncs = {
	.load = mem_muc_load,
	.room_store = mem_muc_room_store,
	.room_delete = mem_muc_room_delete,
	.nick_set = mem_muc_nick_set,
};

/* ---- publish-subscribe nodes and items ---------------------------------------------- */

static bool ps_owned(const char *host, const char *owner, const struct storage_req *req, const char *want)
{
	return strcmp(host, req->host) == 0 && strcmp(owner, want) == 0;
}

static void ps_node_clear(struct mem_ps_node *m)
{
	for (size_t i = 0; i < m->n.naffs; i++) {
		free((char *)m->n.affs[i].jid);
		free((char *)m->n.affs[i].affiliation);
	}
	free((void *)m->n.affs);
	for (size_t i = 0; i < m->n.nsubs; i++) {
		free((char *)m->n.subs[i].jid);
		free((char *)m->n.subs[i].subid);
		free((char *)m->n.subs[i].state);
		free((char *)m->n.subs[i].options);
	}
	free((void *)m->n.subs);
	free((char *)m->n.name);
	free((char *)m->n.config);
	free(m->host);
	free(m->owner);
	memset(m, 0, sizeof(*m));
}

static void ps_item_clear(struct mem_ps_item *m)
{
	free((char *)m->it.node);
	free((char *)m->it.id);
	free((char *)m->it.publisher);
	free((char *)m->it.payload);
	free(m->host);
	free(m->owner);
	memset(m, 0, sizeof(*m));
}

/* Remove the items of the job's owner in node (NULL: any node) whose id
 * is one of the n ids (n == 0: any id). */
static void ps_items_remove(struct mem_store *ms, const struct storage_req *req, const char *owner,
                            const char *node, const char *const *ids, size_t n)
{
	for (size_t i = ms->nps_items; i-- > 0;) {
		struct mem_ps_item *m = &ms->ps_items[i];
		if (!ps_owned(m->host, m->owner, req, owner) ||
		    (node != NULL && strcmp(m->it.node, node) != 0))
			continue;
		bool named = n == 0;
		for (size_t k = 0; k < n && !named; k++)
			named = strcmp(m->it.id, ids[k]) == 0;
		if (!named)
			continue;
		ps_item_clear(m);
		*m = ms->ps_items[--ms->nps_items];
	}
}

/* Remove the nodes of the job's owner named name (NULL: all). */
static void ps_nodes_remove(struct mem_store *ms, const struct storage_req *req, const char *owner,
                            const char *name)
{
	for (size_t i = ms->nps_nodes; i-- > 0;) {
		struct mem_ps_node *m = &ms->ps_nodes[i];
		if (!ps_owned(m->host, m->owner, req, owner) ||
		    (name != NULL && strcmp(m->n.name, name) != 0))
			continue;
		ps_node_clear(m);
		*m = ms->ps_nodes[--ms->nps_nodes];
	}
}

static enum storage_result mem_pubsub_load(void *conn, struct pubsub_load_job *r)
{
	struct mem_store *ms = conn;
	struct pool *p = r->base.pool;
	r->nodes = ms->nps_nodes > 0 ? pool_alloc(p, ms->nps_nodes * sizeof(*r->nodes)) : NULL;
	r->nnodes = 0;
	for (size_t i = 0; i < ms->nps_nodes; i++) {
		const struct mem_ps_node *m = &ms->ps_nodes[i];
		if (!ps_owned(m->host, m->owner, &r->base, r->owner))
			continue;
		struct pubsub_node_item *out = &r->nodes[r->nnodes++];
		*out = m->n;
		out->name = pool_strdup(p, m->n.name);
		out->config = pool_strdup(p, m->n.config);
		struct pubsub_affiliation_item *affs =
		        m->n.naffs > 0 ? pool_alloc(p, m->n.naffs * sizeof(*affs)) : NULL;
		for (size_t k = 0; k < m->n.naffs; k++)
			affs[k] =
			        (struct pubsub_affiliation_item){ pool_strdup(p, m->n.affs[k].jid),
				                                  pool_strdup(p, m->n.affs[k].affiliation) };
		out->affs = affs;
		struct pubsub_subscription_item *subs =
		        m->n.nsubs > 0 ? pool_alloc(p, m->n.nsubs * sizeof(*subs)) : NULL;
		for (size_t k = 0; k < m->n.nsubs; k++) {
			const struct pubsub_subscription_item *s = &m->n.subs[k];
			subs[k] = (struct pubsub_subscription_item){ pool_strdup(p, s->jid),
				                                     pool_strdup(p, s->subid),
				                                     pool_strdup(p, s->state),
				                                     pool_strdup(p, s->options) };
		}
		out->subs = subs;
	}
	r->items = ms->nps_items > 0 ? pool_alloc(p, ms->nps_items * sizeof(*r->items)) : NULL;
	r->nitems = 0;
	for (size_t i = 0; i < ms->nps_items; i++) {
		const struct mem_ps_item *m = &ms->ps_items[i];
		if (ps_owned(m->host, m->owner, &r->base, r->owner))
			r->items[r->nitems++] = (struct pubsub_item){ pool_strdup(p, m->it.node),
				                                      pool_strdup(p, m->it.id),
				                                      pool_strdup(p, m->it.publisher),
				                                      m->it.published,
				                                      m->it.seq,
				                                      pool_strdup(p, m->it.payload) };
	}
	pubsub_load_sort(r);
	return STORAGE_OK;
}

static enum storage_result mem_pubsub_node_store(void *conn, struct pubsub_node_store_job *r)
{
	struct mem_store *ms = conn;
	const struct pubsub_node_item *in = &r->node;
	ps_nodes_remove(ms, &r->base, r->owner, in->name);
	ms->ps_nodes = xrealloc(ms->ps_nodes, (ms->nps_nodes + 1) * sizeof(*ms->ps_nodes));
	struct mem_ps_node *m = &ms->ps_nodes[ms->nps_nodes++];
	m->host = xstrdup(r->base.host);
	m->owner = xstrdup(r->owner);
	m->n.name = xstrdup(in->name);
	m->n.config = xstrdup(in->config);
	m->n.created = (double)(int64_t)in->created; /* whole seconds, as SQL keeps it */
	struct pubsub_affiliation_item *affs = in->naffs > 0 ? xmalloc(in->naffs * sizeof(*affs)) : NULL;
	for (size_t i = 0; i < in->naffs; i++)
		affs[i] = (struct pubsub_affiliation_item){ xstrdup(in->affs[i].jid),
			                                    xstrdup(in->affs[i].affiliation) };
	m->n.affs = affs;
	m->n.naffs = in->naffs;
	struct pubsub_subscription_item *subs = in->nsubs > 0 ? xmalloc(in->nsubs * sizeof(*subs)) : NULL;
	for (size_t i = 0; i < in->nsubs; i++) {
		const struct pubsub_subscription_item *s = &in->subs[i];
		subs[i] = (struct pubsub_subscription_item){ xstrdup(s->jid), xstrdup(s->subid),
			                                     xstrdup(s->state), xstrdup(s->options) };
	}
	m->n.subs = subs;
	m->n.nsubs = in->nsubs;
	return STORAGE_OK;
}

static enum storage_result mem_pubsub_node_delete(void *conn, struct pubsub_node_delete_job *r)
{
	struct mem_store *ms = conn;
	ps_items_remove(ms, &r->base, r->owner, r->node, NULL, 0);
	ps_nodes_remove(ms, &r->base, r->owner, r->node);
	return STORAGE_OK;
}

static enum storage_result mem_pubsub_item_store(void *conn, struct pubsub_item_store_job *r)
{
	struct mem_store *ms = conn;
	const struct pubsub_item *in = &r->item;
	ps_items_remove(ms, &r->base, r->owner, in->node, &in->id, 1);
	if (r->nevict > 0)
		ps_items_remove(ms, &r->base, r->owner, in->node, r->evict, r->nevict);
	ms->ps_items = xrealloc(ms->ps_items, (ms->nps_items + 1) * sizeof(*ms->ps_items));
	ms->ps_items[ms->nps_items++] = (struct mem_ps_item){
		xstrdup(r->base.host),
		xstrdup(r->owner),
		{ xstrdup(in->node), xstrdup(in->id), xstrdup(in->publisher), (double)(int64_t)in->published,
		  in->seq, xstrdup(in->payload) },
	};
	return STORAGE_OK;
}

static enum storage_result mem_pubsub_item_delete(void *conn, struct pubsub_item_delete_job *r)
{
	ps_items_remove(conn, &r->base, r->owner, r->node, r->ids, r->n);
	return STORAGE_OK;
}

static enum storage_result mem_pubsub_owner_delete(void *conn, struct pubsub_owner_delete_job *r)
{
	ps_items_remove(conn, &r->base, r->owner, NULL, NULL, 0);
	ps_nodes_remove(conn, &r->base, r->owner, NULL);
	return STORAGE_OK;
}

static const struct pubsub_store_vfuncs mem_pubsub_vfuncs = {
	.load = mem_pubsub_load,
	.node_store = mem_pubsub_node_store,
	.node_delete = mem_pubsub_node_delete,
	.item_store = mem_pubsub_item_store,
	.item_delete = mem_pubsub_item_delete,
	.owner_delete = mem_pubsub_owner_delete,
};

/* ---- message archives ---------------------------------------------------------------- */

static void mam_msg_clear(struct mam_message *m)
{
	free((char *)m->peer);
	free((char *)m->resource);
	free((char *)m->body);
	free((char *)m->stanza);
}

static void archive_free(struct mem_archive *a)
{
	for (size_t i = 0; i < a->nmsgs; i++)
		mam_msg_clear(&a->msgs[i]);
	free(a->msgs);
	strlist_free(&a->always);
	strlist_free(&a->never);
	free(a->host);
	free(a->owner);
	free(a);
}

static struct mem_archive *archive_find(struct mem_store *ms, const char *host, const char *owner)
{
	for (size_t i = 0; i < ms->narchives; i++)
		if (strcmp(ms->archives[i]->host, host) == 0 && strcmp(ms->archives[i]->owner, owner) == 0)
			return ms->archives[i];
	return NULL;
}

static struct mem_archive *archive_get(struct mem_store *ms, const char *host, const char *owner)
{
	struct mem_archive *a = archive_find(ms, host, owner);
	if (a != NULL)
		return a;
	a = xcalloc(1, sizeof(*a));
	a->host = xstrdup(host);
	a->owner = xstrdup(owner);
	ms->archives = xrealloc(ms->archives, (ms->narchives + 1) * sizeof(*ms->archives));
	ms->archives[ms->narchives++] = a;
	return a;
}

/* The archive and the preferences of owner (account removal). */
static void archive_remove(struct mem_store *ms, const char *host, const char *owner)
{
	for (size_t i = 0; i < ms->narchives; i++) {
		if (strcmp(ms->archives[i]->host, host) == 0 && strcmp(ms->archives[i]->owner, owner) == 0) {
			archive_free(ms->archives[i]);
			ms->archives[i] = ms->archives[--ms->narchives];
			return;
		}
	}
}

/* The place of the first message of a with an id >= id. */
static size_t archive_lower_bound(const struct mem_archive *a, int64_t id)
{
	size_t lo = 0, hi = a->nmsgs;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (a->msgs[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static enum storage_result mem_mam_store(void *conn, struct mam_store_job *r)
{
	struct mem_archive *a = archive_get(conn, r->base.host, r->owner);
	const struct mam_message *in = &r->msg;
	size_t at = archive_lower_bound(a, in->id);
	if (at < a->nmsgs && a->msgs[at].id == in->id) {
		/* the same message again (a retry, as the SQL store) is done */
		const struct mam_message *m = &a->msgs[at];
		bool same = strcmp(m->peer, in->peer) == 0 && strcmp(m->resource, in->resource) == 0 &&
		            m->outgoing == in->outgoing && strcmp(m->stanza, in->stanza) == 0;
		return same ? STORAGE_OK : STORAGE_EXISTS;
	}
	if (a->nmsgs == a->cap) {
		a->cap = a->cap == 0 ? 16 : a->cap * 2;
		a->msgs = xrealloc(a->msgs, a->cap * sizeof(*a->msgs));
	}
	memmove(&a->msgs[at + 1], &a->msgs[at], (a->nmsgs - at) * sizeof(*a->msgs));
	a->msgs[at] = (struct mam_message){ in->id,
		                            xstrdup(in->peer),
		                            xstrdup(in->resource),
		                            in->outgoing,
		                            in->body != NULL ? xstrdup(in->body) : NULL,
		                            xstrdup(in->stanza) };
	a->nmsgs++;
	return STORAGE_OK;
}

static int cmp_int64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* ASCII case-insensitive substring (the memory store has no text index). */
static bool text_contains(const char *hay, const char *needle)
{
	size_t n = strlen(needle);
	for (const char *h = hay; *h != '\0'; h++) {
		size_t i = 0;
		while (i < n && h[i] != '\0' &&
		       tolower((unsigned char)h[i]) == tolower((unsigned char)needle[i]))
			i++;
		if (i == n)
			return true;
	}
	return n == 0;
}

static bool mam_matches(const struct mam_query *q, const struct mam_message *m)
{
	if (q->with != NULL && strcmp(m->peer, q->with) != 0)
		return false;
	if (q->with != NULL && q->with_resource != NULL && strcmp(m->resource, q->with_resource) != 0)
		return false;
	if ((q->start != 0 && m->id < q->start) || (q->end != 0 && m->id > q->end))
		return false;
	if ((q->after_id != 0 && m->id <= q->after_id) || (q->before_id != 0 && m->id >= q->before_id))
		return false;
	if (q->ids != NULL &&
	    (q->nids == 0 || bsearch(&m->id, q->ids, q->nids, sizeof(*q->ids), cmp_int64) == NULL))
		return false;
	if (q->text != NULL && (m->body == NULL || !text_contains(m->body, q->text)))
		return false;
	return true;
}

static void mam_msg_copy(struct pool *p, struct mam_message *dst, const struct mam_message *m)
{
	*dst = (struct mam_message){ m->id,
		                     pool_strdup(p, m->peer),
		                     pool_strdup(p, m->resource),
		                     m->outgoing,
		                     m->body != NULL ? pool_strdup(p, m->body) : NULL,
		                     pool_strdup(p, m->stanza) };
}

static enum storage_result mem_mam_query(void *conn, struct mam_query_job *r)
{
	struct mem_archive *a = archive_find(conn, r->base.host, r->owner);
	const struct mam_query *q = &r->q;
	size_t max = q->max, found = 0;
	r->msgs = pool_alloc(r->base.pool, max * sizeof(*r->msgs));
	r->nmsgs = 0;
	r->complete = true;
	if (a == NULL)
		return STORAGE_OK;
	/* Forwards: the first max after after_id; backwards: the last max
	 * before before_id, filled from the end. */
	for (size_t k = 0; k < a->nmsgs; k++) {
		size_t i = q->backwards ? a->nmsgs - 1 - k : k;
		if (!mam_matches(q, &a->msgs[i]))
			continue;
		if (found == max) {
			r->complete = false;
			break;
		}
		size_t at = q->backwards ? max - 1 - found : found;
		mam_msg_copy(r->base.pool, &r->msgs[at], &a->msgs[i]);
		found++;
	}
	if (q->backwards && found < max)
		memmove(r->msgs, r->msgs + (max - found), found * sizeof(*r->msgs));
	r->nmsgs = found;
	return STORAGE_OK;
}

static enum storage_result mem_mam_owner_delete(void *conn, struct mam_owner_delete_job *r)
{
	struct mem_archive *a = archive_find(conn, r->base.host, r->owner);
	if (a == NULL)
		return STORAGE_OK;
	for (size_t i = 0; i < a->nmsgs; i++)
		mam_msg_clear(&a->msgs[i]);
	a->nmsgs = 0;
	return STORAGE_OK;
}

static enum storage_result mem_mam_expire(void *conn, struct mam_expire_job *r)
{
	struct mem_store *ms = conn;
	r->count = 0;
	for (size_t i = 0; i < ms->narchives; i++) {
		struct mem_archive *a = ms->archives[i];
		if (strcmp(a->host, r->base.host) != 0)
			continue;
		size_t n = archive_lower_bound(a, r->before);
		if (r->limit > 0 && n > r->limit - r->count)
			n = r->limit - r->count;
		for (size_t k = 0; k < n; k++)
			mam_msg_clear(&a->msgs[k]);
		memmove(a->msgs, a->msgs + n, (a->nmsgs - n) * sizeof(*a->msgs));
		a->nmsgs -= n;
		r->count += n;
		if (r->limit > 0 && r->count == r->limit)
			break;
	}
	return STORAGE_OK;
}

static void names_to_list(struct pool *p, const char *const **out, size_t *n_r, const struct strlist *l)
{
	const char **v = pool_alloc(p, (l->count > 0 ? l->count : 1) * sizeof(*v));
	for (size_t i = 0; i < l->count; i++)
		v[i] = pool_strdup(p, l->items[i]);
	*out = v;
	*n_r = l->count;
}

static enum storage_result mem_mam_prefs_get(void *conn, struct mam_prefs_get_job *r)
{
	struct mem_archive *a = archive_find(conn, r->base.host, r->owner);
	if (a == NULL || !a->has_prefs)
		return STORAGE_NOT_FOUND;
	r->prefs.def = a->def;
	names_to_list(r->base.pool, &r->prefs.always, &r->prefs.n_always, &a->always);
	names_to_list(r->base.pool, &r->prefs.never, &r->prefs.n_never, &a->never);
	return STORAGE_OK;
}

static enum storage_result mem_mam_prefs_set(void *conn, struct mam_prefs_set_job *r)
{
	struct mem_archive *a = archive_get(conn, r->base.host, r->owner);
	strlist_free(&a->always);
	strlist_free(&a->never);
	a->has_prefs = true;
	a->def = r->prefs.def;
	for (size_t i = 0; i < r->prefs.n_always; i++)
		strlist_push(&a->always, r->prefs.always[i]);
	for (size_t i = 0; i < r->prefs.n_never; i++)
		strlist_push(&a->never, r->prefs.never[i]);
	return STORAGE_OK;
}

static const struct mam_store_vfuncs mem_mam_vfuncs = {
	.store = mem_mam_store,
	.query = mem_mam_query,
	.owner_delete = mem_mam_owner_delete,
	.expire = mem_mam_expire,
	.prefs_get = mem_mam_prefs_get,
	.prefs_set = mem_mam_prefs_set,
};

/* ---- the store ---------------------------------------------------------------------- */

static bool mem_accepts(const char *driver)
{
	return strcmp(driver, "memory") == 0;
}

static int mem_open(struct ev_loop *loop, const struct storage_config *cfg, struct storage **st_r,
                    char **error_r)
{
	struct mem_store *ms = xcalloc(1, sizeof(*ms));
	storage_base_init(&ms->base, &storage_memory_vfuncs, loop, "memory");
	ms->base.account = &mem_account_vfuncs;
	ms->base.roster = &mem_roster_vfuncs;
	ms->base.offline = &mem_offline_vfuncs;
	ms->base.vcard = &mem_vcard_vfuncs;
	ms->base.priv = &mem_private_vfuncs;
	ms->base.privacy = &mem_privacy_vfuncs;
	ms->base.last = &mem_last_vfuncs;
	ms->base.srg = &mem_srg_vfuncs;
	ms->base.search = &mem_search_vfuncs;
	ms->base.muc = &mem_muc_vfuncs;
	ms->base.pubsub = &mem_pubsub_vfuncs;
	ms->base.mam = &mem_mam_vfuncs;
	*st_r = &ms->base;
	return 0;
}

static void mem_close(struct storage *st)
{
	struct mem_store *ms = (struct mem_store *)st;
	storage_base_deinit(st);
	for (size_t i = 0; i < ms->nusers; i++)
		user_free(ms->users[i]);
	free(ms->users);
	for (size_t i = 0; i < ms->ngroups; i++)
		group_free(&ms->groups[i]);
	free(ms->groups);
	for (size_t i = 0; i < ms->nrooms; i++)
		room_clear(&ms->rooms[i]);
	free(ms->rooms);
	for (size_t i = 0; i < ms->nnicks; i++)
		nick_clear(&ms->nicks[i]);
	free(ms->nicks);
	for (size_t i = 0; i < ms->nps_nodes; i++)
		ps_node_clear(&ms->ps_nodes[i]);
	free(ms->ps_nodes);
	for (size_t i = 0; i < ms->nps_items; i++)
		ps_item_clear(&ms->ps_items[i]);
	free(ms->ps_items);
	for (size_t i = 0; i < ms->narchives; i++)
		archive_free(ms->archives[i]);
	free(ms->archives);
	free(ms);
}

static void mem_status(struct storage *st, struct buf *out)
{
	struct mem_store *ms = (struct mem_store *)st;
	buf_printf(out, "in memory: %zu users, %zu shared groups, %zu rooms, %zu pubsub nodes, %zu archives",
	           ms->nusers, ms->ngroups, ms->nrooms, ms->nps_nodes, ms->narchives);
}

const struct storage_vfuncs storage_memory_vfuncs = {
	.name = "memory",
	.accepts = mem_accepts,
	.open = mem_open,
	.close = mem_close,
	.status = mem_status,
};
