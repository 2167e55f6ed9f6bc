/*
 * The front of offline messages storage: the public functions of storage.h for
 * this area.  Each copies its arguments into a new job and submits it; the
 * job's work calls the store's offline_store_vfuncs; its reply calls the
 * caller's callback (results only with STORAGE_OK).
 *
 * Loop thread, except the *_work functions (where the store runs jobs:
 * they touch only the job).
 */
#include "storage/offline-store.h"

#include <assert.h>
#include <string.h>

/* ---- offline_store */

static void offline_store_work(struct storage_req *req, void *conn)
{
	req->res = req->st->offline->store(conn, (struct offline_store_job *)req);
}

static void offline_store_reply(struct storage_req *req)
{
	struct offline_store_job *r = (struct offline_store_job *)req;
	r->cb(req->res, req->ctx);
}

static bool offline_store_batch(struct storage_req **reqs, size_t n, void *conn)
{
	struct offline_store_job *jobs[WORKER_BATCH_MAX];
	assert(n <= WORKER_BATCH_MAX);
	for (size_t i = 0; i < n; i++)
		jobs[i] = (struct offline_store_job *)reqs[i];
	const struct offline_store_vfuncs *v = reqs[0]->st->offline;
	return v->store_batch != NULL && v->store_batch(conn, jobs, n);
}

static const struct storage_op offline_store_op = {
	.name = "offline_store",
	.area = STORAGE_AREA_OFFLINE,
	.work = offline_store_work,
	.batch = offline_store_batch,
	.reply = offline_store_reply,
};

struct storage_req *storage_offline_store_token(struct storage *st, const char *host, const char *user,
                                                const char *from_jid, const char *stanza_xml,
                                                unsigned max_per_user, const char *token, storage_done_cb *cb,
                                                void *ctx)
{
	assert(host != NULL && user != NULL && from_jid != NULL && stanza_xml != NULL && cb != NULL);
	assert(token == NULL || strlen(token) == OFFLINE_TOKEN_LEN);
	struct offline_store_job *r;
	r = storage_req_new(st, &offline_store_op, sizeof(*r), host, user, ctx);
	r->cb = cb;
	r->from = pool_strdup(r->base.pool, from_jid);
	r->stanza = pool_strdup(r->base.pool, stanza_xml);
	r->max = max_per_user;
	if (token != NULL)
		memcpy(r->token, token, OFFLINE_TOKEN_LEN + 1);
	else
		r->token[0] = '\0'; /* drawn by a store that keeps one */
	return storage_req_submit(&r->base);
}

struct storage_req *storage_offline_store(struct storage *st, const char *host, const char *user,
                                          const char *from_jid, const char *stanza_xml, unsigned max_per_user,
                                          storage_done_cb *cb, void *ctx)
{
	return storage_offline_store_token(st, host, user, from_jid, stanza_xml, max_per_user, NULL, cb, ctx);
}

/* ---- offline_get */

static void offline_get_work(struct storage_req *req, void *conn)
{
	req->res = req->st->offline->get(conn, (struct offline_get_job *)req);
}

static void offline_get_reply(struct storage_req *req)
{
	struct offline_get_job *r = (struct offline_get_job *)req;
	bool ok = req->res == STORAGE_OK;
	if (r->page_cb != NULL)
		r->page_cb(req->res, ok ? r->msgs : NULL, ok ? r->nmsgs : 0, ok ? r->total : 0,
		           ok ? r->more : 0, req->ctx);
	else
		r->cb(req->res, ok ? r->msgs : NULL, ok ? r->nmsgs : 0, req->ctx);
}

static const struct storage_op offline_get_op = {
	.name = "offline_get",
	.area = STORAGE_AREA_OFFLINE,
	.work = offline_get_work,
	.reply = offline_get_reply,
};

struct storage_req *storage_offline_get(struct storage *st, const char *host, const char *user,
                                        storage_offline_cb *cb, void *ctx)
{
	assert(host != NULL && user != NULL && cb != NULL);
	struct offline_get_job *r = storage_req_new(st, &offline_get_op, sizeof(*r), host, user, ctx);
	r->cb = cb;
	return storage_req_submit(&r->base);
}

struct storage_req *storage_offline_page(struct storage *st, const char *host, const char *user,
                                         int64_t after, unsigned limit, storage_offline_page_cb *cb,
                                         void *ctx)
{
	assert(host != NULL && user != NULL && limit > 0 && cb != NULL);
	struct offline_get_job *r = storage_req_new(st, &offline_get_op, sizeof(*r), host, user, ctx);
	r->page_cb = cb;
	r->after = after;
	r->limit = limit;
	return storage_req_submit(&r->base);
}

/* ---- offline_delete_upto */

static void offline_delete_upto_work(struct storage_req *req, void *conn)
{
	req->res = req->st->offline->delete_upto(conn, (struct offline_delete_upto_job *)req);
}

static void offline_delete_upto_reply(struct storage_req *req)
{
	struct offline_delete_upto_job *r = (struct offline_delete_upto_job *)req;
	r->cb(req->res, req->ctx);
}

static const struct storage_op offline_delete_upto_op = {
	.name = "offline_delete_upto",
	.area = STORAGE_AREA_OFFLINE,
	.work = offline_delete_upto_work,
	.reply = offline_delete_upto_reply,
};

struct storage_req *storage_offline_delete_upto(struct storage *st, const char *host, const char *user,
                                                int64_t last_seq, storage_done_cb *cb, void *ctx)
{
	assert(host != NULL && user != NULL && cb != NULL);
	struct offline_delete_upto_job *r;
	r = storage_req_new(st, &offline_delete_upto_op, sizeof(*r), host, user, ctx);
	r->cb = cb;
	r->seq = last_seq;
	return storage_req_submit(&r->base);
}

/* ---- offline_count */

static void offline_count_work(struct storage_req *req, void *conn)
{
	req->res = req->st->offline->count(conn, (struct offline_count_job *)req);
}

static void offline_count_reply(struct storage_req *req)
{
	struct offline_count_job *r = (struct offline_count_job *)req;
	bool ok = req->res == STORAGE_OK;
	r->cb(req->res, ok ? r->count : 0, req->ctx);
}

static const struct storage_op offline_count_op = {
	.name = "offline_count",
	.area = STORAGE_AREA_OFFLINE,
	.work = offline_count_work,
	.reply = offline_count_reply,
};

struct storage_req *storage_offline_count(struct storage *st, const char *host, const char *user,
                                          storage_count_cb *cb, void *ctx)
{
	assert(host != NULL && user != NULL && cb != NULL);
	struct offline_count_job *r;
	r = storage_req_new(st, &offline_count_op, sizeof(*r), host, user, ctx);
	r->cb = cb;
	return storage_req_submit(&r->base);
}

struct storage_req *storage_offline_count_host(struct storage *st, const char *host, storage_count_cb *cb,
                                               void *ctx)
{
	assert(host != NULL && cb != NULL);
	struct offline_count_job *r;
	r = storage_req_new(st, &offline_count_op, sizeof(*r), host, NULL, ctx);
	r->cb = cb;
	return storage_req_submit(&r->base);
}
