/*
 * The front of multi-user chat room storage: the public functions of
 * storage.h for this area.  Each copies its arguments into a new job and
 * submits it; the job's work calls the store's muc_store_vfuncs; its reply
 * calls the caller's callback (results only with STORAGE_OK).
 *
 * A room's affiliation list reaches the stores sorted by jid with one
 * entry per jid (the last one given wins), so every store keeps and
 * returns the same list.  The jobs' ordering keys are described in
 * muc-store.h.
 *
 * Loop thread, except the *_work functions (where the store runs jobs:
 * they touch only the job).
 */
#include "storage/muc-store.h"

#include <assert.h>

int muc_cmp_room(const void *a, const void *b)
{
	return strcmp(((const struct muc_room_item *)a)->name, ((const struct muc_room_item *)b)->name);
}

int muc_cmp_affiliation(const void *a, const void *b)
{
	return strcmp(((const struct muc_affiliation_item *)a)->jid,
	              ((const struct muc_affiliation_item *)b)->jid);
}

int muc_cmp_nick(const void *a, const void *b)
{
	return strcmp(((const struct muc_nick_item *)a)->jid, ((const struct muc_nick_item *)b)->jid);
}

/* ---- muc_load */

static void muc_load_work(struct storage_req *req, void *conn)
{
	req->res = req->st->muc->load(conn, (struct muc_load_job *)req);
}

static void muc_load_reply(struct storage_req *req)
{
	struct muc_load_job *r = (struct muc_load_job *)req;
	bool ok = req->res == STORAGE_OK;
	r->cb(req->res, ok ? r->rooms : NULL, ok ? r->nrooms : 0, ok ? r->nicks : NULL, ok ? r->nnicks : 0,
	      req->ctx);
}

static const struct storage_op muc_load_op = {
	.name = "muc_load",
	.area = STORAGE_AREA_MUC,
	.work = muc_load_work,
	.reply = muc_load_reply,
};

struct storage_req *storage_muc_load(struct storage *st, const char *host, const char *service,
                                     storage_muc_load_cb *cb, void *ctx)
{
	assert(host != NULL && service != NULL && cb != NULL);
	struct muc_load_job *r = storage_req_new(st, &muc_load_op, sizeof(*r), host, service, ctx);
	r->cb = cb;
	r->service = pool_strdup(r->base.pool, service);
	return storage_req_submit(&r->base);
}

/* ---- muc_room_store */

static void muc_room_store_work(struct storage_req *req, void *conn)
{
	req->res = req->st->muc->room_store(conn, (struct muc_room_store_job *)req);
}

static void muc_room_store_reply(struct storage_req *req)
{
	struct muc_room_store_job *r = (struct muc_room_store_job *)req;
	r->cb(req->res, req->ctx);
}

static const struct storage_op muc_room_store_op = {
	.name = "muc_room_store",
	.area = STORAGE_AREA_MUC,
	.work = muc_room_store_work,
	.reply = muc_room_store_reply,
};

/* An affiliation with its place in the caller's list (sorts stably). */
struct muc_aff_at {
	struct muc_affiliation_item a;
	size_t at;
};

static int cmp_aff_at(const void *a, const void *b)
{
	const struct muc_aff_at *x = a, *y = b;
	int c = strcmp(x->a.jid, y->a.jid);
	return c != 0 ? c : (x->at > y->at) - (x->at < y->at);
}

/* The key that orders one room's jobs: "room@service". */
static char *room_key(const char *service, const char *name)
{
	return xasprintf("%s@%s", name, service);
}

struct storage_req *storage_muc_room_store(struct storage *st, const char *host, const char *service,
                                           const struct muc_room_item *room, storage_done_cb *cb, void *ctx)
{
	assert(host != NULL && service != NULL && room != NULL && cb != NULL);
	assert(room->name != NULL && room->config != NULL && room->subject != NULL &&
	       room->subject_nick != NULL && (room->naffs == 0 || room->affs != NULL));
	char *key = room_key(service, room->name);
	struct muc_room_store_job *r = storage_req_new(st, &muc_room_store_op, sizeof(*r), host, key, ctx);
	free(key);
	struct pool *p = r->base.pool;
	r->cb = cb;
	r->service = pool_strdup(p, service);
	r->room.name = pool_strdup(p, room->name);
	r->room.config = pool_strdup(p, room->config);
	r->room.subject = pool_strdup(p, room->subject);
	r->room.subject_nick = pool_strdup(p, room->subject_nick);
	r->room.created = room->created;
	r->room.affs = NULL;
	r->room.naffs = 0;
	if (room->naffs == 0)
		return storage_req_submit(&r->base);
	/* Sorted by jid, one per jid: the last one the caller gave. */
	struct muc_aff_at *in = xmalloc(room->naffs * sizeof(*in));
	for (size_t i = 0; i < room->naffs; i++) {
		const struct muc_affiliation_item *a = &room->affs[i];
		assert(a->jid != NULL && a->affiliation != NULL && a->reason != NULL);
		in[i] = (struct muc_aff_at){ *a, i };
	}
	qsort(in, room->naffs, sizeof(*in), cmp_aff_at);
	struct muc_affiliation_item *out = pool_alloc(p, room->naffs * sizeof(*out));
	size_t n = 0;
	for (size_t i = 0; i < room->naffs; i++) {
		if (i + 1 < room->naffs && strcmp(in[i].a.jid, in[i + 1].a.jid) == 0)
			continue;
		out[n].jid = pool_strdup(p, in[i].a.jid);
		out[n].affiliation = pool_strdup(p, in[i].a.affiliation);
		out[n].reason = pool_strdup(p, in[i].a.reason);
		n++;
	}
	free(in);
	r->room.affs = out;
	r->room.naffs = n;
	return storage_req_submit(&r->base);
}

/* ---- muc_room_delete */

static void muc_room_delete_work(struct storage_req *req, void *conn)
{
	req->res = req->st->muc->room_delete(conn, (struct muc_room_delete_job *)req);
}

static void muc_room_delete_reply(struct storage_req *req)
{
	struct muc_room_delete_job *r = (struct muc_room_delete_job *)req;
	r->cb(req->res, req->ctx);
}

static const struct storage_op muc_room_delete_op = {
	.name = "muc_room_delete",
	.area = STORAGE_AREA_MUC,
	.work = muc_room_delete_work,
	.reply = muc_room_delete_reply,
};

struct storage_req *storage_muc_room_delete(struct storage *st, const char *host, const char *service,
                                            const char *name, storage_done_cb *cb, void *ctx)
{
	assert(host != NULL && service != NULL && name != NULL && cb != NULL);
	char *key = room_key(service, name);
	struct muc_room_delete_job *r = storage_req_new(st, &muc_room_delete_op, sizeof(*r), host, key, ctx);
	free(key);
	r->cb = cb;
	r->service = pool_strdup(r->base.pool, service);
	r->name = pool_strdup(r->base.pool, name);
	return storage_req_submit(&r->base);
}

/* ---- muc_nick_set */

static void muc_nick_set_work(struct storage_req *req, void *conn)
{
	req->res = req->st->muc->nick_set(conn, (struct muc_nick_set_job *)req);
}

static void muc_nick_set_reply(struct storage_req *req)
{
	struct muc_nick_set_job *r = (struct muc_nick_set_job *)req;
	r->cb(req->res, req->ctx);
}

static const struct storage_op muc_nick_set_op = {
	.name = "muc_nick_set",
	.area = STORAGE_AREA_MUC,
	.work = muc_nick_set_work,
	.reply = muc_nick_set_reply,
};

struct storage_req *storage_muc_nick_set(struct storage *st, const char *host, const char *service,
                                         const char *jid, const char *nick, storage_done_cb *cb, void *ctx)
{
	assert(host != NULL && service != NULL && jid != NULL && cb != NULL);
	struct muc_nick_set_job *r = storage_req_new(st, &muc_nick_set_op, sizeof(*r), host, service, ctx);
	r->cb = cb;
	r->service = pool_strdup(r->base.pool, service);
	r->jid = pool_strdup(r->base.pool, jid);
	r->nick = nick != NULL ? pool_strdup(r->base.pool, nick) : NULL;
	return storage_req_submit(&r->base);
}
