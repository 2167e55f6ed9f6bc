/*
 * The front of vCard search storage: the public functions of storage.h for
 * this area.  Each copies its arguments into a new job and submits it; the
 * job's work calls the store's search_store_vfuncs; its reply calls the
 * caller's callback (results only with STORAGE_OK).
 *
 * Loop thread, except the *_work functions (where the store runs jobs:
 * they touch only the job).
 */
#include "storage/search-store.h"

#include <assert.h>
#include "storage/vcard-index.h"

/* ---- vcard_search */

static void vcard_search_work(struct storage_req *req, void *conn)
{
	req->res = req->st->search->search(conn, (struct vcard_search_job *)req);
}

static void vcard_search_reply(struct storage_req *req)
{
	struct vcard_search_job *r = (struct vcard_search_job *)req;
	bool ok = req->res == STORAGE_OK;
	r->cb(req->res, ok ? r->entries : NULL, ok ? r->nentries : 0, ok && r->more, req->ctx);
}

static const struct storage_op vcard_search_op = {
	.name = "vcard_search",
	.area = STORAGE_AREA_SEARCH,
	.work = vcard_search_work,
	.reply = vcard_search_reply,
};

struct storage_req *storage_vcard_search(struct storage *st, const char *host, const struct vcard_term *terms,
                                         size_t n, bool listed_only, unsigned limit,
                                         storage_vcard_search_cb *cb, void *ctx)
{
	assert(host != NULL && (n == 0 || terms != NULL) && cb != NULL);
	for (size_t i = 0; i < n; i++)
		assert(terms[i].value != NULL && terms[i].field < VF_COUNT);
	struct vcard_search_job *r = storage_req_new(st, &vcard_search_op, sizeof(*r), host, NULL, ctx);
	r->cb = cb;
	r->terms = n > 0 ? pool_alloc(r->base.pool, n * sizeof(*r->terms)) : NULL;
	r->raw_terms = n > 0 ? pool_alloc(r->base.pool, n * sizeof(*r->raw_terms)) : NULL;
	for (size_t i = 0; i < n; i++) {
		r->raw_terms[i] = terms[i];
		r->raw_terms[i].value = pool_strdup(r->base.pool, terms[i].value);
		char *folded = vcard_fold(terms[i].value);
		r->terms[i].field = terms[i].field;
		r->terms[i].value = pool_strdup(r->base.pool, folded);
		r->terms[i].prefix = terms[i].prefix;
		free(folded);
	}
	r->nterms = n;
	r->listed_only = listed_only;
	r->limit = limit;
	return storage_req_submit(&r->base);
}

/* ---- vcard_reindex */

static void vcard_reindex_work(struct storage_req *req, void *conn)
{
	req->res = req->st->search->reindex(conn, (struct vcard_reindex_job *)req);
}

static void vcard_reindex_reply(struct storage_req *req)
{
	struct vcard_reindex_job *r = (struct vcard_reindex_job *)req;
	bool ok = req->res == STORAGE_OK;
	r->cb(req->res, ok ? r->count : 0, req->ctx);
}

static const struct storage_op vcard_reindex_op = {
	.name = "vcard_reindex",
	.area = STORAGE_AREA_SEARCH,
	.work = vcard_reindex_work,
	.reply = vcard_reindex_reply,
};

struct storage_req *storage_vcard_reindex(struct storage *st, const char *host, storage_count_cb *cb,
                                          void *ctx)
{
	assert(host != NULL && cb != NULL);
	struct vcard_reindex_job *r = storage_req_new(st, &vcard_reindex_op, sizeof(*r), host, NULL, ctx);
	r->cb = cb;
	return storage_req_submit(&r->base);
}
