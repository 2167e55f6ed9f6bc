/*
 * The front of private XML storage storage: the public functions of storage.h
 * for this area.  Each copies its arguments into a new job and submits it; the
 * job's work calls the store's private_store_vfuncs; its reply calls the
 * caller's callback (results only with STORAGE_OK).
 *
 * Loop thread, except the *_work functions (where the store runs jobs:
 * they touch only the job).
 */
#include "storage/private-store.h"

#include <assert.h>

/* ---- private_get */

static void private_get_work(struct storage_req *req, void *conn)
{
	req->res = req->st->priv->get(conn, (struct private_get_job *)req);
}

static void private_get_reply(struct storage_req *req)
{
	struct private_get_job *r = (struct private_get_job *)req;
	bool ok = req->res == STORAGE_OK;
	r->cb(req->res, ok ? r->out_text : NULL, req->ctx);
}

static const struct storage_op private_get_op = {
	.name = "private_get",
	.area = STORAGE_AREA_PRIVATE,
	.work = private_get_work,
	.reply = private_get_reply,
};

struct storage_req *storage_private_get(struct storage *st, const char *host, const char *user,
                                        const char *ns, storage_text_cb *cb, void *ctx)
{
	assert(host != NULL && user != NULL && ns != NULL && cb != NULL);
	struct private_get_job *r = storage_req_new(st, &private_get_op, sizeof(*r), host, user, ctx);
	r->cb = cb;
	r->ns = pool_strdup(r->base.pool, ns);
	return storage_req_submit(&r->base);
}

/* ---- private_set */

static void private_set_work(struct storage_req *req, void *conn)
{
	req->res = req->st->priv->set(conn, (struct private_set_job *)req);
}

static void private_set_reply(struct storage_req *req)
{
	struct private_set_job *r = (struct private_set_job *)req;
	r->cb(req->res, req->ctx);
}

static const struct storage_op private_set_op = {
	.name = "private_set",
	.area = STORAGE_AREA_PRIVATE,
	.work = private_set_work,
	.reply = private_set_reply,
};

struct storage_req *storage_private_set(struct storage *st, const char *host, const char *user,
                                        const struct private_item *items, size_t count, storage_done_cb *cb,
                                        void *ctx)
{
	assert(host != NULL && user != NULL && items != NULL && count > 0 && cb != NULL);
	for (size_t i = 0; i < count; i++)
		assert(items[i].ns != NULL && items[i].data != NULL);
	struct private_set_job *r = storage_req_new(st, &private_set_op, sizeof(*r), host, user, ctx);
	r->cb = cb;
	r->pitems = pool_alloc(r->base.pool, count * sizeof(*r->pitems));
	for (size_t i = 0; i < count; i++) {
		r->pitems[i].ns = pool_strdup(r->base.pool, items[i].ns);
		r->pitems[i].data = pool_strdup(r->base.pool, items[i].data);
	}
	r->npitems = count;
	return storage_req_submit(&r->base);
}

/* ---- private_list */

static void private_list_work(struct storage_req *req, void *conn)
{
	req->res = req->st->priv->list(conn, (struct private_list_job *)req);
}

static void private_list_reply(struct storage_req *req)
{
	struct private_list_job *r = (struct private_list_job *)req;
	bool ok = req->res == STORAGE_OK;
	r->cb(req->res, ok ? r->pitems : NULL, ok ? r->npitems : 0, req->ctx);
}

static const struct storage_op private_list_op = {
	.name = "private_list",
	.area = STORAGE_AREA_PRIVATE,
	.work = private_list_work,
	.reply = private_list_reply,
};

struct storage_req *storage_private_list(struct storage *st, const char *host, const char *user,
                                         storage_private_list_cb *cb, void *ctx)
{
	assert(host != NULL && user != NULL && cb != NULL);
	struct private_list_job *r = storage_req_new(st, &private_list_op, sizeof(*r), host, user, ctx);
	r->cb = cb;
	return storage_req_submit(&r->base);
}
