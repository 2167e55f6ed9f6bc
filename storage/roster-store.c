/*
 * The front of roster storage: the public functions of storage.h for this
 * area.  Each copies its arguments into a new job and submits it; the job's
 * work calls the store's roster_store_vfuncs; its reply calls the caller's
 * callback (results only with STORAGE_OK).
 *
 * Loop thread, except the *_work functions (where the store runs jobs:
 * they touch only the job).
 */
#include "storage/roster-store.h"

#include <assert.h>

/* ---- roster_get */

static void roster_get_work(struct storage_req *req, void *conn)
{
	req->res = req->st->roster->get(conn, (struct roster_get_job *)req);
}

static void roster_get_reply(struct storage_req *req)
{
	struct roster_get_job *r = (struct roster_get_job *)req;
	bool ok = req->res == STORAGE_OK;
	r->cb(req->res, ok ? r->items : NULL, ok ? r->nitems : 0, ok ? r->version : 0, req->ctx);
}

static const struct storage_op roster_get_op = {
	.name = "roster_get",
	.area = STORAGE_AREA_ROSTER,
	.work = roster_get_work,
	.reply = roster_get_reply,
};

struct storage_req *storage_roster_get(struct storage *st, const char *host, const char *user,
                                       storage_roster_cb *cb, void *ctx)
{
	assert(host != NULL && user != NULL && cb != NULL);
	struct roster_get_job *r = storage_req_new(st, &roster_get_op, sizeof(*r), host, user, ctx);
	r->cb = cb;
	return storage_req_submit(&r->base);
}

/* ---- roster_set */

static void roster_set_work(struct storage_req *req, void *conn)
{
	req->res = req->st->roster->set(conn, (struct roster_set_job *)req);
}

static void roster_set_reply(struct storage_req *req)
{
	struct roster_set_job *r = (struct roster_set_job *)req;
	r->cb(req->res, req->ctx);
}

static const struct storage_op roster_set_op = {
	.name = "roster_set",
	.area = STORAGE_AREA_ROSTER,
	.work = roster_set_work,
	.reply = roster_set_reply,
};

struct storage_req *storage_roster_set(struct storage *st, const char *host, const char *user,
                                       const struct roster_item *item, storage_done_cb *cb, void *ctx)
{
	assert(host != NULL && user != NULL && item != NULL && item->jid != NULL && cb != NULL);
	struct roster_set_job *r = storage_req_new(st, &roster_set_op, sizeof(*r), host, user, ctx);
	r->cb = cb;
	r->item.jid = pool_strdup(r->base.pool, item->jid);
	r->item.name = item->name != NULL ? pool_strdup(r->base.pool, item->name) : NULL;
	r->item.subscription = item->subscription;
	r->item.ask_out = item->ask_out;
	r->item.ask_in = item->ask_in;
	r->item.approved = item->approved;
	/* what a request said is kept only while it waits */
	r->item.ask_in_stanza = item->ask_in && item->ask_in_stanza != NULL
	                                ? pool_strdup(r->base.pool, item->ask_in_stanza)
	                                : NULL;
	/* an item is in the roster once anything but a waiting request is */
	r->item.in_roster = !roster_item_pending_only(item);
	if (item->groups.count > 0) {
		r->item.groups.items = pool_alloc(r->base.pool, item->groups.count * sizeof(char *));
		for (size_t i = 0; i < item->groups.count; i++)
			r->item.groups.items[i] = pool_strdup(r->base.pool, item->groups.items[i]);
		r->item.groups.count = item->groups.count;
	}
	return storage_req_submit(&r->base);
}

/* ---- roster_remove */

static void roster_remove_work(struct storage_req *req, void *conn)
{
	req->res = req->st->roster->remove(conn, (struct roster_remove_job *)req);
}

static void roster_remove_reply(struct storage_req *req)
{
	struct roster_remove_job *r = (struct roster_remove_job *)req;
	r->cb(req->res, req->ctx);
}

static const struct storage_op roster_remove_op = {
	.name = "roster_remove",
	.area = STORAGE_AREA_ROSTER,
	.work = roster_remove_work,
	.reply = roster_remove_reply,
};

struct storage_req *storage_roster_remove(struct storage *st, const char *host, const char *user,
                                          const char *jid, storage_done_cb *cb, void *ctx)
{
	assert(host != NULL && user != NULL && jid != NULL && cb != NULL);
	struct roster_remove_job *r = storage_req_new(st, &roster_remove_op, sizeof(*r), host, user, ctx);
	r->cb = cb;
	r->jid = pool_strdup(r->base.pool, jid);
	return storage_req_submit(&r->base);
}
