/*
 * The front of last activity storage: the public functions of storage.h for
 * this area.  Each copies its arguments into a new job and submits it; the
 * job's work calls the store's last_store_vfuncs; its reply calls the caller's
 * callback (results only with STORAGE_OK).
 *
 * Loop thread, except the *_work functions (where the store runs jobs:
 * they touch only the job).
 */
#include "storage/last-store.h"

#include <assert.h>

/* ---- last_get */

static void last_get_work(struct storage_req *req, void *conn)
{
	req->res = req->st->last->get(conn, (struct last_get_job *)req);
}

static void last_get_reply(struct storage_req *req)
{
	struct last_get_job *r = (struct last_get_job *)req;
	bool ok = req->res == STORAGE_OK;
	r->cb(req->res, ok ? &r->last : NULL, req->ctx);
}

static const struct storage_op last_get_op = {
	.name = "last_get",
	.area = STORAGE_AREA_LAST,
	.work = last_get_work,
	.reply = last_get_reply,
};

struct storage_req *storage_last_get(struct storage *st, const char *host, const char *user,
                                     storage_last_cb *cb, void *ctx)
{
	assert(host != NULL && user != NULL && cb != NULL);
	struct last_get_job *r = storage_req_new(st, &last_get_op, sizeof(*r), host, user, ctx);
	r->cb = cb;
	return storage_req_submit(&r->base);
}

/* ---- last_set */

static void last_set_work(struct storage_req *req, void *conn)
{
	req->res = req->st->last->set(conn, (struct last_set_job *)req);
}

static void last_set_reply(struct storage_req *req)
{
	struct last_set_job *r = (struct last_set_job *)req;
	r->cb(req->res, req->ctx);
}

static const struct storage_op last_set_op = {
	.name = "last_set",
	.area = STORAGE_AREA_LAST,
	.work = last_set_work,
	.reply = last_set_reply,
};

struct storage_req *storage_last_set(struct storage *st, const char *host, const char *user, int64_t seconds,
                                     const char *status, storage_done_cb *cb, void *ctx)
{
	assert(host != NULL && user != NULL && cb != NULL);
	struct last_set_job *r = storage_req_new(st, &last_set_op, sizeof(*r), host, user, ctx);
	r->cb = cb;
	r->when = seconds;
	r->text = status != NULL ? pool_strdup(r->base.pool, status) : NULL;
	return storage_req_submit(&r->base);
}
