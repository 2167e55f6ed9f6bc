/*
 * The front of shared roster groups storage: the public functions of storage.h
 * for this area.  Each copies its arguments into a new job and submits it; the
 * job's work calls the store's srg_store_vfuncs; its reply calls the caller's
 * callback (results only with STORAGE_OK).
 *
 * Loop thread, except the *_work functions (where the store runs jobs:
 * they touch only the job).
 */
#include "storage/srg-store.h"

#include <assert.h>

static void copy_strlist(struct pool *p, struct strlist *dst, const struct strlist *src)
{
	dst->count = src->count;
	dst->items = src->count > 0 ? pool_alloc(p, src->count * sizeof(char *)) : NULL;
	for (size_t i = 0; i < src->count; i++)
		dst->items[i] = pool_strdup(p, src->items[i]);
}

/* ---- srg_list */

static void srg_list_work(struct storage_req *req, void *conn)
{
	req->res = req->st->srg->list(conn, (struct srg_list_job *)req);
}

static void srg_list_reply(struct storage_req *req)
{
	struct srg_list_job *r = (struct srg_list_job *)req;
	bool ok = req->res == STORAGE_OK;
	static const struct strlist empty = { NULL, 0 };
	r->cb(req->res, ok ? &r->names : &empty, req->ctx);
}

static const struct storage_op srg_list_op = {
	.name = "srg_list",
	.area = STORAGE_AREA_SRG,
	.work = srg_list_work,
	.reply = srg_list_reply,
};

struct storage_req *storage_srg_list(struct storage *st, const char *host, storage_list_cb *cb, void *ctx)
{
	assert(host != NULL && cb != NULL);
	struct srg_list_job *r = storage_req_new(st, &srg_list_op, sizeof(*r), host, NULL, ctx);
	r->cb = cb;
	return storage_req_submit(&r->base);
}

/* ---- srg_get */

static void srg_get_work(struct storage_req *req, void *conn)
{
	req->res = req->st->srg->get(conn, (struct srg_get_job *)req);
}

static void srg_get_reply(struct storage_req *req)
{
	struct srg_get_job *r = (struct srg_get_job *)req;
	bool ok = req->res == STORAGE_OK;
	r->cb(req->res, ok ? r->groups : NULL, ok ? r->ngroups : 0, req->ctx);
}

static const struct storage_op srg_get_op = {
	.name = "srg_get",
	.area = STORAGE_AREA_SRG,
	.work = srg_get_work,
	.reply = srg_get_reply,
};

struct storage_req *storage_srg_get(struct storage *st, const char *host, const char *name,
                                    storage_srg_cb *cb, void *ctx)
{
	assert(host != NULL && cb != NULL);
	struct srg_get_job *r = storage_req_new(st, &srg_get_op, sizeof(*r), host, NULL, ctx);
	r->cb = cb;
	r->name = name != NULL ? pool_strdup(r->base.pool, name) : NULL;
	return storage_req_submit(&r->base);
}

/* ---- srg_create */

static void srg_create_work(struct storage_req *req, void *conn)
{
	req->res = req->st->srg->create(conn, (struct srg_create_job *)req);
}

static void srg_create_reply(struct storage_req *req)
{
	struct srg_create_job *r = (struct srg_create_job *)req;
	r->cb(req->res, req->ctx);
}

static const struct storage_op srg_create_op = {
	.name = "srg_create",
	.area = STORAGE_AREA_SRG,
	.work = srg_create_work,
	.reply = srg_create_reply,
};

struct storage_req *storage_srg_create(struct storage *st, const char *host, const struct srg_group *g,
                                       storage_done_cb *cb, void *ctx)
{
	assert(host != NULL && g != NULL && g->name != NULL && cb != NULL);
	struct srg_create_job *r = storage_req_new(st, &srg_create_op, sizeof(*r), host, NULL, ctx);
	r->cb = cb;
	r->grp.name = pool_strdup(r->base.pool, g->name);
	r->grp.label = pool_strdup(r->base.pool, g->label != NULL ? g->label : "");
	r->grp.description = pool_strdup(r->base.pool, g->description != NULL ? g->description : "");
	copy_strlist(r->base.pool, &r->grp.displayed, &g->displayed);
	copy_strlist(r->base.pool, &r->grp.members, &g->members);
	return storage_req_submit(&r->base);
}

/* ---- srg_delete */

static void srg_delete_work(struct storage_req *req, void *conn)
{
	req->res = req->st->srg->delete (conn, (struct srg_delete_job *)req);
}

static void srg_delete_reply(struct storage_req *req)
{
	struct srg_delete_job *r = (struct srg_delete_job *)req;
	r->cb(req->res, req->ctx);
}

static const struct storage_op srg_delete_op = {
	.name = "srg_delete",
	.area = STORAGE_AREA_SRG,
	.work = srg_delete_work,
	.reply = srg_delete_reply,
};

struct storage_req *storage_srg_delete(struct storage *st, const char *host, const char *name,
                                       storage_done_cb *cb, void *ctx)
{
	assert(host != NULL && name != NULL && cb != NULL);
	struct srg_delete_job *r = storage_req_new(st, &srg_delete_op, sizeof(*r), host, NULL, ctx);
	r->cb = cb;
	r->name = pool_strdup(r->base.pool, name);
	return storage_req_submit(&r->base);
}

/* ---- srg_member_add */

static void srg_member_add_work(struct storage_req *req, void *conn)
{
	req->res = req->st->srg->member_add(conn, (struct srg_member_add_job *)req);
}

static void srg_member_add_reply(struct storage_req *req)
{
	struct srg_member_add_job *r = (struct srg_member_add_job *)req;
	r->cb(req->res, req->ctx);
}

static const struct storage_op srg_member_add_op = {
	.name = "srg_member_add",
	.area = STORAGE_AREA_SRG,
	.work = srg_member_add_work,
	.reply = srg_member_add_reply,
};

struct storage_req *storage_srg_member_add(struct storage *st, const char *host, const char *group,
                                           const char *member, storage_done_cb *cb, void *ctx)
{
	assert(host != NULL && group != NULL && member != NULL && cb != NULL);
	struct srg_member_add_job *r;
	r = storage_req_new(st, &srg_member_add_op, sizeof(*r), host, NULL, ctx);
	r->cb = cb;
	r->name = pool_strdup(r->base.pool, group);
	r->member = pool_strdup(r->base.pool, member);
	return storage_req_submit(&r->base);
}

/* ---- srg_member_remove */

static void srg_member_remove_work(struct storage_req *req, void *conn)
{
	req->res = req->st->srg->member_remove(conn, (struct srg_member_remove_job *)req);
}

static void srg_member_remove_reply(struct storage_req *req)
{
	struct srg_member_remove_job *r = (struct srg_member_remove_job *)req;
	r->cb(req->res, req->ctx);
}

static const struct storage_op srg_member_remove_op = {
	.name = "srg_member_remove",
	.area = STORAGE_AREA_SRG,
	.work = srg_member_remove_work,
	.reply = srg_member_remove_reply,
};

struct storage_req *storage_srg_member_remove(struct storage *st, const char *host, const char *group,
                                              const char *member, storage_done_cb *cb, void *ctx)
{
	assert(host != NULL && group != NULL && member != NULL && cb != NULL);
	struct srg_member_remove_job *r;
	r = storage_req_new(st, &srg_member_remove_op, sizeof(*r), host, NULL, ctx);
	r->cb = cb;
	r->name = pool_strdup(r->base.pool, group);
	r->member = pool_strdup(r->base.pool, member);
	return storage_req_submit(&r->base);
}

/* ---- srg_user_groups */

static void srg_user_groups_work(struct storage_req *req, void *conn)
{
	req->res = req->st->srg->user_groups(conn, (struct srg_user_groups_job *)req);
}

static void srg_user_groups_reply(struct storage_req *req)
{
	struct srg_user_groups_job *r = (struct srg_user_groups_job *)req;
	bool ok = req->res == STORAGE_OK;
	static const struct strlist empty = { NULL, 0 };
	r->cb(req->res, ok ? &r->names : &empty, req->ctx);
}

static const struct storage_op srg_user_groups_op = {
	.name = "srg_user_groups",
	.area = STORAGE_AREA_SRG,
	.work = srg_user_groups_work,
	.reply = srg_user_groups_reply,
};

struct storage_req *storage_srg_user_groups(struct storage *st, const char *host, const char *bare_jid,
                                            storage_list_cb *cb, void *ctx)
{
	assert(host != NULL && bare_jid != NULL && cb != NULL);
	struct srg_user_groups_job *r;
	r = storage_req_new(st, &srg_user_groups_op, sizeof(*r), host, NULL, ctx);
	r->cb = cb;
	r->member = pool_strdup(r->base.pool, bare_jid);
	return storage_req_submit(&r->base);
}

/* ---- srg_names */

static void srg_names_work(struct storage_req *req, void *conn)
{
	if (req->st->srg->names == NULL)
		req->res = STORAGE_ERROR; /* the store keeps no names */
	else
		req->res = req->st->srg->names(conn, (struct srg_names_job *)req);
}

static void srg_names_reply(struct storage_req *req)
{
	struct srg_names_job *r = (struct srg_names_job *)req;
	bool ok = req->res == STORAGE_OK;
	r->cb(req->res, ok ? r->names : NULL, ok ? r->nnames : 0, req->ctx);
}

static const struct storage_op srg_names_op = {
	.name = "srg_names",
	.area = STORAGE_AREA_SRG,
	.work = srg_names_work,
	.reply = srg_names_reply,
};

struct storage_req *storage_srg_names(struct storage *st, const char *host, storage_srg_names_cb *cb,
                                      void *ctx)
{
	assert(host != NULL && cb != NULL);
	struct srg_names_job *r = storage_req_new(st, &srg_names_op, sizeof(*r), host, NULL, ctx);
	r->cb = cb;
	return storage_req_submit(&r->base);
}
