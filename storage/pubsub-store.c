/*
 * The front of publish-subscribe storage: the public functions of
 * storage.h for this area.  Each copies its arguments into a new job and
 * submits it; the job's work calls the store's pubsub_store_vfuncs; its
 * reply calls the caller's callback (results only with STORAGE_OK).
 *
 * A node's lists reach the stores in the order a load returns them, with
 * one affiliation per jid and one subscription per subid (the last one
 * given wins), so every store keeps and returns the same lists.  Every
 * job's ordering key is the owner (pubsub-store.h).
 *
 * Loop thread, except the *_work functions and pubsub_load_sort (where
 * the store runs jobs: they touch only the job).
 */
#include "storage/pubsub-store.h"

#include <assert.h>
#include <stddef.h>

int pubsub_cmp_node(const void *a, const void *b)
{
	return strcmp(((const struct pubsub_node_item *)a)->name, ((const struct pubsub_node_item *)b)->name);
}

int pubsub_cmp_affiliation(const void *a, const void *b)
{
	return strcmp(((const struct pubsub_affiliation_item *)a)->jid,
	              ((const struct pubsub_affiliation_item *)b)->jid);
}

int pubsub_cmp_subscription(const void *a, const void *b)
{
	const struct pubsub_subscription_item *x = a, *y = b;
	int c = strcmp(x->jid, y->jid);
	return c != 0 ? c : strcmp(x->subid, y->subid);
}

int pubsub_cmp_item(const void *a, const void *b)
{
	const struct pubsub_item *x = a, *y = b;
	int c = strcmp(x->node, y->node);
	if (c != 0)
		return c;
	if (x->seq != y->seq)
		return x->seq < y->seq ? -1 : 1;
	return strcmp(x->id, y->id);
}

void pubsub_load_sort(struct pubsub_load_job *j)
{
	for (size_t i = 0; i < j->nnodes; i++) {
		struct pubsub_node_item *n = &j->nodes[i];
		if (n->naffs > 1)
			qsort((void *)n->affs, n->naffs, sizeof(*n->affs), pubsub_cmp_affiliation);
		if (n->nsubs > 1)
			qsort((void *)n->subs, n->nsubs, sizeof(*n->subs), pubsub_cmp_subscription);
	}
	if (j->nnodes > 1)
		qsort(j->nodes, j->nnodes, sizeof(*j->nodes), pubsub_cmp_node);
	size_t kept = 0;
	for (size_t i = 0; i < j->nitems; i++) {
		struct pubsub_node_item key = { .name = j->items[i].node };
		if (j->nnodes > 0 &&
		    bsearch(&key, j->nodes, j->nnodes, sizeof(*j->nodes), pubsub_cmp_node) != NULL)
			j->items[kept++] = j->items[i];
	}
	j->nitems = kept;
	if (j->nitems > 1)
		qsort(j->items, j->nitems, sizeof(*j->items), pubsub_cmp_item);
}

/* ---- pubsub_load */

static void pubsub_load_work(struct storage_req *req, void *conn)
{
	req->res = req->st->pubsub->load(conn, (struct pubsub_load_job *)req);
}

static void pubsub_load_reply(struct storage_req *req)
{
	struct pubsub_load_job *r = (struct pubsub_load_job *)req;
	bool ok = req->res == STORAGE_OK;
	r->cb(req->res, ok ? r->nodes : NULL, ok ? r->nnodes : 0, ok ? r->items : NULL, ok ? r->nitems : 0,
	      req->ctx);
}

static const struct storage_op pubsub_load_op = {
	.name = "pubsub_load",
	.area = STORAGE_AREA_PUBSUB,
	.work = pubsub_load_work,
	.reply = pubsub_load_reply,
};

struct storage_req *storage_pubsub_load(struct storage *st, const char *host, const char *owner,
                                        storage_pubsub_load_cb *cb, void *ctx)
{
	assert(host != NULL && owner != NULL && cb != NULL);
	struct pubsub_load_job *r = storage_req_new(st, &pubsub_load_op, sizeof(*r), host, owner, ctx);
	r->cb = cb;
	r->owner = pool_strdup(r->base.pool, owner);
	return storage_req_submit(&r->base);
}

/* ---- pubsub_node_store */

static void pubsub_node_store_work(struct storage_req *req, void *conn)
{
	req->res = req->st->pubsub->node_store(conn, (struct pubsub_node_store_job *)req);
}

/* The replies of the operations that answer only a result: every job
 * struct of this area but the load's starts with base, then cb. */
#define DONE_CB_AT(type) (offsetof(struct type, cb) == offsetof(struct pubsub_node_delete_job, cb))
_Static_assert(DONE_CB_AT(pubsub_node_store_job) && DONE_CB_AT(pubsub_item_store_job) &&
                       DONE_CB_AT(pubsub_item_delete_job) && DONE_CB_AT(pubsub_owner_delete_job),
               "the done callback at one place in every job");

static void pubsub_done_reply(struct storage_req *req)
{
	storage_done_cb *cb;
	memcpy(&cb, (const char *)req + offsetof(struct pubsub_node_delete_job, cb), sizeof(cb));
	cb(req->res, req->ctx);
}

static const struct storage_op pubsub_node_store_op = {
	.name = "pubsub_node_store",
	.area = STORAGE_AREA_PUBSUB,
	.work = pubsub_node_store_work,
	.reply = pubsub_done_reply,
};

/* An entry of a caller's list with its place in it, so that sorting by a
 * key keeps the caller's order among equal keys. */
struct pubsub_at {
	const char *key;
	size_t at;
};

static int cmp_at(const void *a, const void *b)
{
	const struct pubsub_at *x = a, *y = b;
	int c = strcmp(x->key, y->key);
	return c != 0 ? c : (x->at > y->at) - (x->at < y->at);
}

/* The places in the caller's list of the entries to keep, one per key,
 * the last one given: *n_r of them, malloc'd, in key order. */
static size_t *last_per_key(const char *const *keys, size_t n, size_t *n_r)
{
	struct pubsub_at *in = xmalloc(n * sizeof(*in));
	for (size_t i = 0; i < n; i++)
		in[i] = (struct pubsub_at){ keys[i], i };
	qsort(in, n, sizeof(*in), cmp_at);
	size_t *out = xmalloc(n * sizeof(*out)), k = 0;
	for (size_t i = 0; i < n; i++)
		if (i + 1 == n || strcmp(in[i].key, in[i + 1].key) != 0)
			out[k++] = in[i].at;
	free(in);
	*n_r = k;
	return out;
}

static void copy_affiliations(struct pool *p, struct pubsub_node_item *dst,
                              const struct pubsub_node_item *src)
{
	const char **keys = xmalloc(src->naffs * sizeof(*keys));
	for (size_t i = 0; i < src->naffs; i++) {
		assert(src->affs[i].jid != NULL && src->affs[i].affiliation != NULL);
		keys[i] = src->affs[i].jid;
	}
	size_t n;
	size_t *keep = last_per_key(keys, src->naffs, &n);
	struct pubsub_affiliation_item *out = pool_alloc(p, n * sizeof(*out));
	for (size_t i = 0; i < n; i++) {
		const struct pubsub_affiliation_item *a = &src->affs[keep[i]];
		out[i] = (struct pubsub_affiliation_item){ pool_strdup(p, a->jid),
			                                   pool_strdup(p, a->affiliation) };
	}
	free(keep);
	free(keys);
	dst->affs = out;
	dst->naffs = n;
}

static void copy_subscriptions(struct pool *p, struct pubsub_node_item *dst,
                               const struct pubsub_node_item *src)
{
	const char **keys = xmalloc(src->nsubs * sizeof(*keys));
	for (size_t i = 0; i < src->nsubs; i++) {
		const struct pubsub_subscription_item *s = &src->subs[i];
		assert(s->jid != NULL && s->subid != NULL && s->state != NULL && s->options != NULL);
		keys[i] = s->subid;
	}
	size_t n;
	size_t *keep = last_per_key(keys, src->nsubs, &n);
	struct pubsub_subscription_item *out = pool_alloc(p, n * sizeof(*out));
	for (size_t i = 0; i < n; i++) {
		const struct pubsub_subscription_item *s = &src->subs[keep[i]];
		out[i] = (struct pubsub_subscription_item){ pool_strdup(p, s->jid), pool_strdup(p, s->subid),
			                                    pool_strdup(p, s->state),
			                                    pool_strdup(p, s->options) };
	}
	free(keep);
	free(keys);
	if (n > 1)
		qsort(out, n, sizeof(*out), pubsub_cmp_subscription);
	dst->subs = out;
	dst->nsubs = n;
}

struct storage_req *storage_pubsub_node_store(struct storage *st, const char *host, const char *owner,
                                              const struct pubsub_node_item *node, storage_done_cb *cb,
                                              void *ctx)
{
	assert(host != NULL && owner != NULL && node != NULL && cb != NULL);
	assert(node->name != NULL && node->config != NULL && (node->naffs == 0 || node->affs != NULL) &&
	       (node->nsubs == 0 || node->subs != NULL));
	struct pubsub_node_store_job *r =
	        storage_req_new(st, &pubsub_node_store_op, sizeof(*r), host, owner, ctx);
	struct pool *p = r->base.pool;
	r->cb = cb;
	r->owner = pool_strdup(p, owner);
	r->node = (struct pubsub_node_item){ .name = pool_strdup(p, node->name),
		                             .config = pool_strdup(p, node->config),
		                             .created = node->created };
	if (node->naffs > 0)
		copy_affiliations(p, &r->node, node);
	if (node->nsubs > 0)
		copy_subscriptions(p, &r->node, node);
	return storage_req_submit(&r->base);
}

/* ---- pubsub_node_delete */

static void pubsub_node_delete_work(struct storage_req *req, void *conn)
{
	req->res = req->st->pubsub->node_delete(conn, (struct pubsub_node_delete_job *)req);
}

static const struct storage_op pubsub_node_delete_op = {
	.name = "pubsub_node_delete",
	.area = STORAGE_AREA_PUBSUB,
	.work = pubsub_node_delete_work,
	.reply = pubsub_done_reply,
};

struct storage_req *storage_pubsub_node_delete(struct storage *st, const char *host, const char *owner,
                                               const char *node, storage_done_cb *cb, void *ctx)
{
	assert(host != NULL && owner != NULL && node != NULL && cb != NULL);
	struct pubsub_node_delete_job *r =
	        storage_req_new(st, &pubsub_node_delete_op, sizeof(*r), host, owner, ctx);
	r->cb = cb;
	r->owner = pool_strdup(r->base.pool, owner);
	r->node = pool_strdup(r->base.pool, node);
	return storage_req_submit(&r->base);
}

/* ---- pubsub_item_store */

static void pubsub_item_store_work(struct storage_req *req, void *conn)
{
	req->res = req->st->pubsub->item_store(conn, (struct pubsub_item_store_job *)req);
}

static const struct storage_op pubsub_item_store_op = {
	.name = "pubsub_item_store",
	.area = STORAGE_AREA_PUBSUB,
	.work = pubsub_item_store_work,
	.reply = pubsub_done_reply,
};

/* Copies of the n ids in pool, leaving out skip (NULL: none) and
 * repeated ones; their number in *n_r. */
static const char **copy_ids(struct pool *p, const char *const *ids, size_t n, const char *skip, size_t *n_r)
{
	const char **out = n > 0 ? pool_alloc(p, n * sizeof(*out)) : NULL;
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		assert(ids[i] != NULL);
		bool seen = skip != NULL && strcmp(ids[i], skip) == 0;
		for (size_t m = 0; m < k && !seen; m++)
			seen = strcmp(out[m], ids[i]) == 0;
		if (!seen)
			out[k++] = pool_strdup(p, ids[i]);
	}
	*n_r = k;
	return out;
}

struct storage_req *storage_pubsub_item_store(struct storage *st, const char *host, const char *owner,
                                              const struct pubsub_item *item, const char *const *evict,
                                              size_t nevict, storage_done_cb *cb, void *ctx)
{
	assert(host != NULL && owner != NULL && item != NULL && cb != NULL && (nevict == 0 || evict != NULL));
	assert(item->node != NULL && item->id != NULL && item->publisher != NULL && item->payload != NULL);
	struct pubsub_item_store_job *r =
	        storage_req_new(st, &pubsub_item_store_op, sizeof(*r), host, owner, ctx);
	struct pool *p = r->base.pool;
	r->cb = cb;
	r->owner = pool_strdup(p, owner);
	r->item = (struct pubsub_item){ pool_strdup(p, item->node),
		                        pool_strdup(p, item->id),
		                        pool_strdup(p, item->publisher),
		                        item->published,
		                        item->seq,
		                        pool_strdup(p, item->payload) };
	r->evict = copy_ids(p, evict, nevict, item->id, &r->nevict);
	return storage_req_submit(&r->base);
}

/* ---- pubsub_item_delete */

static void pubsub_item_delete_work(struct storage_req *req, void *conn)
{
	req->res = req->st->pubsub->item_delete(conn, (struct pubsub_item_delete_job *)req);
}

static const struct storage_op pubsub_item_delete_op = {
	.name = "pubsub_item_delete",
	.area = STORAGE_AREA_PUBSUB,
	.work = pubsub_item_delete_work,
	.reply = pubsub_done_reply,
};

struct storage_req *storage_pubsub_item_delete(struct storage *st, const char *host, const char *owner,
                                               const char *node, const char *const *ids, size_t n,
                                               storage_done_cb *cb, void *ctx)
{
	assert(host != NULL && owner != NULL && node != NULL && cb != NULL && (n == 0 || ids != NULL));
	struct pubsub_item_delete_job *r =
	        storage_req_new(st, &pubsub_item_delete_op, sizeof(*r), host, owner, ctx);
	r->cb = cb;
	r->owner = pool_strdup(r->base.pool, owner);
	r->node = pool_strdup(r->base.pool, node);
	r->ids = copy_ids(r->base.pool, ids, n, NULL, &r->n);
	return storage_req_submit(&r->base);
}

/* ---- pubsub_owner_delete */

static void pubsub_owner_delete_work(struct storage_req *req, void *conn)
{
	req->res = req->st->pubsub->owner_delete(conn, (struct pubsub_owner_delete_job *)req);
}

static const struct storage_op pubsub_owner_delete_op = {
	.name = "pubsub_owner_delete",
	.area = STORAGE_AREA_PUBSUB,
	.work = pubsub_owner_delete_work,
	.reply = pubsub_done_reply,
};

struct storage_req *storage_pubsub_owner_delete(struct storage *st, const char *host, const char *owner,
                                                storage_done_cb *cb, void *ctx)
{
	assert(host != NULL && owner != NULL && cb != NULL);
	struct pubsub_owner_delete_job *r =
	        storage_req_new(st, &pubsub_owner_delete_op, sizeof(*r), host, owner, ctx);
	r->cb = cb;
	r->owner = pool_strdup(r->base.pool, owner);
	return storage_req_submit(&r->base);
}
