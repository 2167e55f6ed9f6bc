/*
 * The front of vCards storage: the public functions of storage.h for this
 * area.  Each copies its arguments into a new job and submits it; the job's
 * work calls the store's vcard_store_vfuncs; its reply calls the caller's
 * callback (results only with STORAGE_OK).
 *
 * Loop thread, except the *_work functions (where the store runs jobs:
 * they touch only the job).
 */
#include "storage/vcard-store.h"

#include <assert.h>

/* ---- vcard_get */

static void vcard_get_work(struct storage_req *req, void *conn)
{
	req->res = req->st->vcard->get(conn, (struct vcard_get_job *)req);
}

static void vcard_get_reply(struct storage_req *req)
{
	struct vcard_get_job *r = (struct vcard_get_job *)req;
	bool ok = req->res == STORAGE_OK;
	r->cb(req->res, ok ? r->out_text : NULL, req->ctx);
}

static const struct storage_op vcard_get_op = {
	.name = "vcard_get",
	.area = STORAGE_AREA_VCARD,
	.work = vcard_get_work,
	.reply = vcard_get_reply,
};

struct storage_req *storage_vcard_get(struct storage *st, const char *host, const char *user,
                                      storage_text_cb *cb, void *ctx)
{
	assert(host != NULL && user != NULL && cb != NULL);
	struct vcard_get_job *r = storage_req_new(st, &vcard_get_op, sizeof(*r), host, user, ctx);
	r->cb = cb;
	return storage_req_submit(&r->base);
}

/* ---- vcard_set */

static void vcard_set_work(struct storage_req *req, void *conn)
{
	req->res = req->st->vcard->set(conn, (struct vcard_set_job *)req);
}

static void vcard_set_reply(struct storage_req *req)
{
	struct vcard_set_job *r = (struct vcard_set_job *)req;
	r->cb(req->res, req->ctx);
}

static const struct storage_op vcard_set_op = {
	.name = "vcard_set",
	.area = STORAGE_AREA_VCARD,
	.work = vcard_set_work,
	.reply = vcard_set_reply,
};

struct storage_req *storage_vcard_set(struct storage *st, const char *host, const char *user,
                                      const char *vcard_xml, storage_done_cb *cb, void *ctx)
{
	assert(host != NULL && user != NULL && vcard_xml != NULL && cb != NULL);
	struct vcard_set_job *r = storage_req_new(st, &vcard_set_op, sizeof(*r), host, user, ctx);
	r->cb = cb;
	r->text = pool_strdup(r->base.pool, vcard_xml);
	return storage_req_submit(&r->base);
}
