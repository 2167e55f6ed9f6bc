/*
 * The front of message archive storage: the public functions of storage.h
 * for this area.  Each copies its arguments into a new job and submits
 * it; the job's work calls the store's mam_store_vfuncs; its reply calls
 * the caller's callback (results only with STORAGE_OK).
 *
 * The front hands the stores their inputs in one shape, so every store
 * answers alike: a query's ids sorted without repeats, preference lists
 * sorted without repeats (a JID in both lists is kept in never only).
 * Every job's ordering key is the owner, expire's the host (mam-store.h).
 *
 * Loop thread, except the *_work and *_batch functions (where the store
 * runs jobs: they touch only the jobs).
 */
#include "storage/mam-store.h"

#include <assert.h>
#include <stddef.h>

const char *mam_default_str(enum mam_default d)
{
	switch (d) {
	case MAM_DEFAULT_ALWAYS: return "always";
	case MAM_DEFAULT_NEVER: return "never";
	case MAM_DEFAULT_ROSTER: return "roster";
	}
	return "roster";
}

int mam_default_parse(const char *s)
{
	if (s == NULL)
		return -1;
	if (strcmp(s, "always") == 0)
		return MAM_DEFAULT_ALWAYS;
	if (strcmp(s, "never") == 0)
		return MAM_DEFAULT_NEVER;
	if (strcmp(s, "roster") == 0)
		return MAM_DEFAULT_ROSTER;
	return -1;
}

/* The replies of the operations that answer only a result. */
#define DONE_CB_AT(type) (offsetof(struct type, cb) == offsetof(struct mam_store_job, cb))
_Static_assert(DONE_CB_AT(mam_owner_delete_job) && DONE_CB_AT(mam_prefs_set_job),
               "the done callback at one place in every job that answers only a result");

static void mam_done_reply(struct storage_req *req)
{
	storage_done_cb *cb;
	memcpy(&cb, (const char *)req + offsetof(struct mam_store_job, cb), sizeof(cb));
	cb(req->res, req->ctx);
}

/* ---- mam_store */

static void mam_store_work(struct storage_req *req, void *conn)
{
	req->res = req->st->mam->store(conn, (struct mam_store_job *)req);
}

static bool mam_store_batch(struct storage_req **reqs, size_t n, void *conn)
{
	struct mam_store_job *jobs[WORKER_BATCH_MAX];
	assert(n <= WORKER_BATCH_MAX);
	for (size_t i = 0; i < n; i++)
		jobs[i] = (struct mam_store_job *)reqs[i];
	const struct mam_store_vfuncs *v = reqs[0]->st->mam;
	return v->store_batch != NULL && v->store_batch(conn, jobs, n);
}

static const struct storage_op mam_store_op = {
	.name = "mam_store",
	.area = STORAGE_AREA_MAM,
	.work = mam_store_work,
	.batch = mam_store_batch,
	.reply = mam_done_reply,
};

struct storage_req *storage_mam_store(struct storage *st, const char *host, const char *owner,
                                      const struct mam_message *msg, storage_done_cb *cb, void *ctx)
{
	assert(host != NULL && owner != NULL && msg != NULL && cb != NULL);
	assert(msg->id > 0 && msg->peer != NULL && msg->resource != NULL && msg->stanza != NULL);
	struct mam_store_job *r = storage_req_new(st, &mam_store_op, sizeof(*r), host, owner, ctx);
	struct pool *p = r->base.pool;
	r->cb = cb;
	r->owner = pool_strdup(p, owner);
	r->msg = (struct mam_message){
		.id = msg->id,
		.peer = pool_strdup(p, msg->peer),
		.resource = pool_strdup(p, msg->resource),
		.outgoing = msg->outgoing,
		.body = msg->body != NULL ? pool_strdup(p, msg->body) : NULL,
		.stanza = pool_strdup(p, msg->stanza),
	};
	return storage_req_submit(&r->base);
}

/* ---- mam_query */

static void mam_query_work(struct storage_req *req, void *conn)
{
	req->res = req->st->mam->query(conn, (struct mam_query_job *)req);
}

static void mam_query_reply(struct storage_req *req)
{
	struct mam_query_job *r = (struct mam_query_job *)req;
	bool ok = req->res == STORAGE_OK;
	r->cb(req->res, ok ? r->msgs : NULL, ok ? r->nmsgs : 0, ok && r->complete, req->ctx);
}

static const struct storage_op mam_query_op = {
	.name = "mam_query",
	.area = STORAGE_AREA_MAM,
	.work = mam_query_work,
	.reply = mam_query_reply,
};

static int cmp_id(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

struct storage_req *storage_mam_query(struct storage *st, const char *host, const char *owner,
                                      const struct mam_query *q, storage_mam_query_cb *cb, void *ctx)
{
	assert(host != NULL && owner != NULL && q != NULL && cb != NULL && q->max >= 1);
	assert(q->nids == 0 || q->ids != NULL);
	struct mam_query_job *r = storage_req_new(st, &mam_query_op, sizeof(*r), host, owner, ctx);
	struct pool *p = r->base.pool;
	r->cb = cb;
	r->owner = pool_strdup(p, owner);
	r->q = *q;
	r->q.with = q->with != NULL ? pool_strdup(p, q->with) : NULL;
	r->q.with_resource =
	        q->with != NULL && q->with_resource != NULL ? pool_strdup(p, q->with_resource) : NULL;
	r->q.text = q->text != NULL ? pool_strdup(p, q->text) : NULL;
	if (q->ids != NULL) {
		int64_t *ids = pool_alloc(p, (q->nids > 0 ? q->nids : 1) * sizeof(*ids));
		size_t n = 0;
		if (q->nids > 0)
			memcpy(ids, q->ids, q->nids * sizeof(*ids));
		qsort(ids, q->nids, sizeof(*ids), cmp_id);
		for (size_t i = 0; i < q->nids; i++)
			if (n == 0 || ids[n - 1] != ids[i])
				ids[n++] = ids[i];
		r->q.ids = ids;
		r->q.nids = n;
	}
	return storage_req_submit(&r->base);
}

/* ---- mam_owner_delete */

static void mam_owner_delete_work(struct storage_req *req, void *conn)
{
	req->res = req->st->mam->owner_delete(conn, (struct mam_owner_delete_job *)req);
}

static const struct storage_op mam_owner_delete_op = {
	.name = "mam_owner_delete",
	.area = STORAGE_AREA_MAM,
	.work = mam_owner_delete_work,
	.reply = mam_done_reply,
};

struct storage_req *storage_mam_owner_delete(struct storage *st, const char *host, const char *owner,
                                             storage_done_cb *cb, void *ctx)
{
	assert(host != NULL && owner != NULL && cb != NULL);
	struct mam_owner_delete_job *r =
	        storage_req_new(st, &mam_owner_delete_op, sizeof(*r), host, owner, ctx);
	r->cb = cb;
	r->owner = pool_strdup(r->base.pool, owner);
	return storage_req_submit(&r->base);
}

/* ---- mam_expire */

static void mam_expire_work(struct storage_req *req, void *conn)
{
	req->res = req->st->mam->expire(conn, (struct mam_expire_job *)req);
}

static void mam_expire_reply(struct storage_req *req)
{
	struct mam_expire_job *r = (struct mam_expire_job *)req;
	r->cb(req->res, req->res == STORAGE_OK ? r->count : 0, req->ctx);
}

static const struct storage_op mam_expire_op = {
	.name = "mam_expire",
	.area = STORAGE_AREA_MAM,
	.work = mam_expire_work,
	.reply = mam_expire_reply,
};

struct storage_req *storage_mam_expire(struct storage *st, const char *host, int64_t before, unsigned limit,
                                       storage_count_cb *cb, void *ctx)
{
	assert(host != NULL && cb != NULL);
	struct mam_expire_job *r = storage_req_new(st, &mam_expire_op, sizeof(*r), host, NULL, ctx);
	r->cb = cb;
	r->before = before;
	r->limit = limit;
	return storage_req_submit(&r->base);
}

/* ---- mam_prefs_get */

static void mam_prefs_get_work(struct storage_req *req, void *conn)
{
	req->res = req->st->mam->prefs_get(conn, (struct mam_prefs_get_job *)req);
}

static void mam_prefs_get_reply(struct storage_req *req)
{
	struct mam_prefs_get_job *r = (struct mam_prefs_get_job *)req;
	r->cb(req->res, req->res == STORAGE_OK ? &r->prefs : NULL, req->ctx);
}

static const struct storage_op mam_prefs_get_op = {
	.name = "mam_prefs_get",
	.area = STORAGE_AREA_MAM,
	.work = mam_prefs_get_work,
	.reply = mam_prefs_get_reply,
};

struct storage_req *storage_mam_prefs_get(struct storage *st, const char *host, const char *owner,
                                          storage_mam_prefs_cb *cb, void *ctx)
{
	assert(host != NULL && owner != NULL && cb != NULL);
	struct mam_prefs_get_job *r = storage_req_new(st, &mam_prefs_get_op, sizeof(*r), host, owner, ctx);
	r->cb = cb;
	r->owner = pool_strdup(r->base.pool, owner);
	return storage_req_submit(&r->base);
}

/* ---- mam_prefs_set */

static void mam_prefs_set_work(struct storage_req *req, void *conn)
{
	req->res = req->st->mam->prefs_set(conn, (struct mam_prefs_set_job *)req);
}

static const struct storage_op mam_prefs_set_op = {
	.name = "mam_prefs_set",
	.area = STORAGE_AREA_MAM,
	.work = mam_prefs_set_work,
	.reply = mam_done_reply,
};

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static bool in_sorted(const char *const *l, size_t n, const char *s)
{
	return n > 0 && bsearch(&s, l, n, sizeof(*l), cmp_str) != NULL;
}

/* Copies of the n JIDs in pool, sorted, without repeats and without those
 * of the sorted list skip (nskip of them); their number in *n_r. */
static const char *const *copy_jids(struct pool *p, const char *const *jids, size_t n,
                                    const char *const *skip, size_t nskip, size_t *n_r)
{
	const char **out = pool_alloc(p, (n > 0 ? n : 1) * sizeof(*out));
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		assert(jids[i] != NULL);
		if (!in_sorted(skip, nskip, jids[i]))
			out[k++] = pool_strdup(p, jids[i]);
	}
	if (k > 1)
		qsort(out, k, sizeof(*out), cmp_str);
	size_t m = 0;
	for (size_t i = 0; i < k; i++)
		if (m == 0 || strcmp(out[m - 1], out[i]) != 0)
			out[m++] = out[i];
	*n_r = m;
	return out;
}

struct storage_req *storage_mam_prefs_set(struct storage *st, const char *host, const char *owner,
                                          const struct mam_prefs *prefs, storage_done_cb *cb, void *ctx)
{
	assert(host != NULL && owner != NULL && prefs != NULL && cb != NULL);
	assert((prefs->n_always == 0 || prefs->always != NULL) &&
	       (prefs->n_never == 0 || prefs->never != NULL));
	struct mam_prefs_set_job *r = storage_req_new(st, &mam_prefs_set_op, sizeof(*r), host, owner, ctx);
	struct pool *p = r->base.pool;
	r->cb = cb;
	r->owner = pool_strdup(p, owner);
	r->prefs.def = prefs->def;
	r->prefs.never = copy_jids(p, prefs->never, prefs->n_never, NULL, 0, &r->prefs.n_never);
	r->prefs.always = copy_jids(p, prefs->always, prefs->n_always, r->prefs.never, r->prefs.n_never,
	                            &r->prefs.n_always);
	return storage_req_submit(&r->base);
}
