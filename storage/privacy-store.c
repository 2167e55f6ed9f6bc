/*
 * The front of privacy lists and blocking storage: the public functions of
 * storage.h for this area.  Each copies its arguments into a new job and
 * submits it; the job's work calls the store's privacy_store_vfuncs; its reply
 * calls the caller's callback (results only with STORAGE_OK).
 *
 * Loop thread, except the *_work functions (where the store runs jobs:
 * they touch only the job).
 */
#include "storage/privacy-store.h"

#include <assert.h>

static const char **copy_jids(struct pool *p, const char *const *jids, size_t n)
{
	const char **out = n > 0 ? pool_alloc(p, n * sizeof(*out)) : NULL;
	for (size_t i = 0; i < n; i++)
		out[i] = pool_strdup(p, jids[i]);
	return out;
}

/* ---- privacy_get */

static void privacy_get_work(struct storage_req *req, void *conn)
{
	req->res = req->st->privacy->get(conn, (struct privacy_get_job *)req);
}

static void privacy_get_reply(struct storage_req *req)
{
	struct privacy_get_job *r = (struct privacy_get_job *)req;
	bool ok = req->res == STORAGE_OK;
	r->cb(req->res, ok ? r->plists : NULL, ok ? r->nplists : 0, ok ? r->default_name : NULL, req->ctx);
}

static const struct storage_op privacy_get_op = {
	.name = "privacy_get",
	.area = STORAGE_AREA_PRIVACY,
	.work = privacy_get_work,
	.reply = privacy_get_reply,
};

struct storage_req *storage_privacy_get(struct storage *st, const char *host, const char *user,
                                        storage_privacy_cb *cb, void *ctx)
{
	assert(host != NULL && user != NULL && cb != NULL);
	struct privacy_get_job *r = storage_req_new(st, &privacy_get_op, sizeof(*r), host, user, ctx);
	r->cb = cb;
	return storage_req_submit(&r->base);
}

/* ---- privacy_set_list */

static void privacy_set_list_work(struct storage_req *req, void *conn)
{
	req->res = req->st->privacy->set_list(conn, (struct privacy_set_list_job *)req);
}

static void privacy_set_list_reply(struct storage_req *req)
{
	struct privacy_set_list_job *r = (struct privacy_set_list_job *)req;
	r->cb(req->res, req->ctx);
}

static const struct storage_op privacy_set_list_op = {
	.name = "privacy_set_list",
	.area = STORAGE_AREA_PRIVACY,
	.work = privacy_set_list_work,
	.reply = privacy_set_list_reply,
};

struct storage_req *storage_privacy_set_list(struct storage *st, const char *host, const char *user,
                                             const char *name, const struct privacy_item *items, size_t n,
                                             storage_done_cb *cb, void *ctx)
{
	assert(host != NULL && user != NULL && name != NULL && items != NULL && n > 0 && cb != NULL);
	for (size_t i = 0; i < n; i++)
		assert(items[i].type == PRIVACY_ALL || items[i].value != NULL);
	struct privacy_set_list_job *r;
	r = storage_req_new(st, &privacy_set_list_op, sizeof(*r), host, user, ctx);
	r->cb = cb;
	r->lname = pool_strdup(r->base.pool, name);
	r->prv_in = pool_alloc(r->base.pool, n * sizeof(*r->prv_in));
	for (size_t i = 0; i < n; i++) {
		r->prv_in[i] = items[i];
		r->prv_in[i].value =
		        items[i].value != NULL ? pool_strdup(r->base.pool, items[i].value) : NULL;
	}
	r->nprv_in = n;
	return storage_req_submit(&r->base);
}

/* ---- privacy_remove_list */

static void privacy_remove_list_work(struct storage_req *req, void *conn)
{
	req->res = req->st->privacy->remove_list(conn, (struct privacy_remove_list_job *)req);
}

static void privacy_remove_list_reply(struct storage_req *req)
{
	struct privacy_remove_list_job *r = (struct privacy_remove_list_job *)req;
	r->cb(req->res, req->ctx);
}

static const struct storage_op privacy_remove_list_op = {
	.name = "privacy_remove_list",
	.area = STORAGE_AREA_PRIVACY,
	.work = privacy_remove_list_work,
	.reply = privacy_remove_list_reply,
};

struct storage_req *storage_privacy_remove_list(struct storage *st, const char *host, const char *user,
                                                const char *name, storage_done_cb *cb, void *ctx)
{
	assert(host != NULL && user != NULL && name != NULL && cb != NULL);
	struct privacy_remove_list_job *r;
	r = storage_req_new(st, &privacy_remove_list_op, sizeof(*r), host, user, ctx);
	r->cb = cb;
	r->lname = pool_strdup(r->base.pool, name);
	return storage_req_submit(&r->base);
}

/* ---- privacy_set_default */

static void privacy_set_default_work(struct storage_req *req, void *conn)
{
	req->res = req->st->privacy->set_default(conn, (struct privacy_set_default_job *)req);
}

static void privacy_set_default_reply(struct storage_req *req)
{
	struct privacy_set_default_job *r = (struct privacy_set_default_job *)req;
	r->cb(req->res, req->ctx);
}

static const struct storage_op privacy_set_default_op = {
	.name = "privacy_set_default",
	.area = STORAGE_AREA_PRIVACY,
	.work = privacy_set_default_work,
	.reply = privacy_set_default_reply,
};

struct storage_req *storage_privacy_set_default(struct storage *st, const char *host, const char *user,
                                                const char *name, storage_done_cb *cb, void *ctx)
{
	assert(host != NULL && user != NULL && cb != NULL);
	struct privacy_set_default_job *r;
	r = storage_req_new(st, &privacy_set_default_op, sizeof(*r), host, user, ctx);
	r->cb = cb;
	r->lname = name != NULL ? pool_strdup(r->base.pool, name) : NULL;
	return storage_req_submit(&r->base);
}

/* ---- blocklist_get */

static void blocklist_get_work(struct storage_req *req, void *conn)
{
	req->res = req->st->privacy->blocklist_get(conn, (struct blocklist_get_job *)req);
}

static void blocklist_get_reply(struct storage_req *req)
{
	struct blocklist_get_job *r = (struct blocklist_get_job *)req;
	bool ok = req->res == STORAGE_OK;
	static const struct strlist empty = { NULL, 0 };
	r->cb(req->res, ok ? &r->names : &empty, req->ctx);
}

static const struct storage_op blocklist_get_op = {
	.name = "blocklist_get",
	.area = STORAGE_AREA_PRIVACY,
	.work = blocklist_get_work,
	.reply = blocklist_get_reply,
};

struct storage_req *storage_blocklist_get(struct storage *st, const char *host, const char *user,
                                          storage_list_cb *cb, void *ctx)
{
	assert(host != NULL && user != NULL && cb != NULL);
	struct blocklist_get_job *r;
	r = storage_req_new(st, &blocklist_get_op, sizeof(*r), host, user, ctx);
	r->cb = cb;
	return storage_req_submit(&r->base);
}

/* ---- blocklist_add */

static void blocklist_add_work(struct storage_req *req, void *conn)
{
	req->res = req->st->privacy->blocklist_add(conn, (struct blocklist_add_job *)req);
}

static void blocklist_add_reply(struct storage_req *req)
{
	struct blocklist_add_job *r = (struct blocklist_add_job *)req;
	r->cb(req->res, req->ctx);
}

static const struct storage_op blocklist_add_op = {
	.name = "blocklist_add",
	.area = STORAGE_AREA_PRIVACY,
	.work = blocklist_add_work,
	.reply = blocklist_add_reply,
};

struct storage_req *storage_blocklist_add(struct storage *st, const char *host, const char *user,
                                          const char *const *jids, size_t n, storage_done_cb *cb, void *ctx)
{
	assert(host != NULL && user != NULL && jids != NULL && n > 0 && cb != NULL);
	for (size_t i = 0; i < n; i++)
		assert(jids[i] != NULL);
	struct blocklist_add_job *r;
	r = storage_req_new(st, &blocklist_add_op, sizeof(*r), host, user, ctx);
	r->cb = cb;
	r->jids = copy_jids(r->base.pool, jids, n);
	r->njids = n;
	return storage_req_submit(&r->base);
}

/* ---- blocklist_remove */

static void blocklist_remove_work(struct storage_req *req, void *conn)
{
	req->res = req->st->privacy->blocklist_remove(conn, (struct blocklist_remove_job *)req);
}

static void blocklist_remove_reply(struct storage_req *req)
{
	struct blocklist_remove_job *r = (struct blocklist_remove_job *)req;
	r->cb(req->res, req->ctx);
}

static const struct storage_op blocklist_remove_op = {
	.name = "blocklist_remove",
	.area = STORAGE_AREA_PRIVACY,
	.work = blocklist_remove_work,
	.reply = blocklist_remove_reply,
};

struct storage_req *storage_blocklist_remove(struct storage *st, const char *host, const char *user,
                                             const char *const *jids, size_t n, storage_done_cb *cb,
                                             void *ctx)
{
	assert(host != NULL && user != NULL && (n == 0 || jids != NULL) && cb != NULL);
	for (size_t i = 0; i < n; i++)
		assert(jids[i] != NULL);
	struct blocklist_remove_job *r;
	r = storage_req_new(st, &blocklist_remove_op, sizeof(*r), host, user, ctx);
	r->cb = cb;
	r->jids = copy_jids(r->base.pool, jids, n);
	r->njids = n;
	return storage_req_submit(&r->base);
}
