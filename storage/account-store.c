/*
 * The front of accounts storage: the public functions of storage.h for this
 * area.  Each copies its arguments into a new job and submits it; the job's
 * work calls the store's account_store_vfuncs; its reply calls the caller's
 * callback (results only with STORAGE_OK).
 *
 * Loop thread, except the *_work functions (where the store runs jobs:
 * they touch only the job).
 */
#include "storage/account-store.h"

#include <openssl/crypto.h>

#include <assert.h>
#include <string.h>
#include <time.h>

/* Copy a's strings into p (the keys are arrays: copied with it). */
static void copy_account(struct pool *p, struct storage_account *dst, const struct storage_account *a)
{
	*dst = *a;
	if (a->sha1.salt_b64 != NULL)
		dst->sha1.salt_b64 = pool_strdup(p, a->sha1.salt_b64);
	if (a->sha256.salt_b64 != NULL)
		dst->sha256.salt_b64 = pool_strdup(p, a->sha256.salt_b64);
	if (a->sha512.salt_b64 != NULL)
		dst->sha512.salt_b64 = pool_strdup(p, a->sha512.salt_b64);
	if (a->plain != NULL)
		dst->plain = pool_strdup(p, a->plain);
	if (dst->created == 0)
		dst->created = (int64_t)time(NULL);
}

/* One hash's credentials as stored: present (with a salt), and equal. */
static bool creds_same(bool has_a, const struct scram_credentials *a, bool has_b,
                       const struct scram_credentials *b)
{
	has_a = has_a && a->salt_b64 != NULL;
	has_b = has_b && b->salt_b64 != NULL;
	if (!has_a || !has_b)
		return has_a == has_b;
	size_t len = scram_hash_len(a->hash);
	return a->hash == b->hash && a->iterations == b->iterations &&
	       strcmp(a->salt_b64, b->salt_b64) == 0 &&
	       CRYPTO_memcmp(a->stored_key, b->stored_key, len) == 0 &&
	       CRYPTO_memcmp(a->server_key, b->server_key, len) == 0;
}

bool storage_account_is_same(const struct storage_account *have, const struct storage_account *want)
{
	bool salted = (want->has_sha1 && want->sha1.salt_b64 != NULL) ||
	              (want->has_sha256 && want->sha256.salt_b64 != NULL) ||
	              (want->has_sha512 && want->sha512.salt_b64 != NULL);
	return salted && have->created == want->created &&
	       creds_same(have->has_sha1, &have->sha1, want->has_sha1, &want->sha1) &&
	       creds_same(have->has_sha256, &have->sha256, want->has_sha256, &want->sha256) &&
	       creds_same(have->has_sha512, &have->sha512, want->has_sha512, &want->sha512) &&
	       (have->plain == NULL) == (want->plain == NULL) &&
	       (have->plain == NULL || strcmp(have->plain, want->plain) == 0);
}

/* The job's account (input or result) holds secrets: wipe them. */
static void account_clear(struct storage_account *acc)
{
	if (acc->plain != NULL)
		explicit_bzero(acc->plain, strlen(acc->plain));
	explicit_bzero(acc, sizeof(*acc));
}

/* ---- account_get */

static void account_get_work(struct storage_req *req, void *conn)
{
	req->res = req->st->account->get(conn, (struct account_get_job *)req);
}

static void account_get_reply(struct storage_req *req)
{
	struct account_get_job *r = (struct account_get_job *)req;
	bool ok = req->res == STORAGE_OK;
	r->cb(req->res, ok ? &r->acc : NULL, req->ctx);
}

static void account_get_clear(struct storage_req *req)
{
	account_clear(&((struct account_get_job *)req)->acc);
}

static const struct storage_op account_get_op = {
	.name = "account_get",
	.area = STORAGE_AREA_ACCOUNT,
	.work = account_get_work,
	.reply = account_get_reply,
	.clear = account_get_clear,
};

struct storage_req *storage_account_get(struct storage *st, const char *host, const char *user,
                                        storage_account_cb *cb, void *ctx)
{
	assert(host != NULL && user != NULL && cb != NULL);
	struct account_get_job *r = storage_req_new(st, &account_get_op, sizeof(*r), host, user, ctx);
	r->cb = cb;
	return storage_req_submit(&r->base);
}

/* ---- account_create */

static void account_create_work(struct storage_req *req, void *conn)
{
	req->res = req->st->account->create(conn, (struct account_create_job *)req);
}

static void account_create_reply(struct storage_req *req)
{
	struct account_create_job *r = (struct account_create_job *)req;
	r->cb(req->res, req->ctx);
}

static void account_create_clear(struct storage_req *req)
{
	account_clear(&((struct account_create_job *)req)->acc);
}

static const struct storage_op account_create_op = {
	.name = "account_create",
	.area = STORAGE_AREA_ACCOUNT,
	.work = account_create_work,
	.reply = account_create_reply,
	.clear = account_create_clear,
};

struct storage_req *storage_account_create(struct storage *st, const char *host, const char *user,
                                           const struct storage_account *acc, storage_done_cb *cb, void *ctx)
{
	assert(host != NULL && user != NULL && acc != NULL && cb != NULL);
	struct account_create_job *r = storage_req_new(st, &account_create_op, sizeof(*r), host, user, ctx);
	r->cb = cb;
	copy_account(r->base.pool, &r->acc, acc);
	return storage_req_submit(&r->base);
}

/* ---- account_update */

static void account_update_work(struct storage_req *req, void *conn)
{
	req->res = req->st->account->update(conn, (struct account_update_job *)req);
}

static void account_update_reply(struct storage_req *req)
{
	struct account_update_job *r = (struct account_update_job *)req;
	r->cb(req->res, req->ctx);
}

static void account_update_clear(struct storage_req *req)
{
	account_clear(&((struct account_update_job *)req)->acc);
}

static const struct storage_op account_update_op = {
	.name = "account_update",
	.area = STORAGE_AREA_ACCOUNT,
	.work = account_update_work,
	.reply = account_update_reply,
	.clear = account_update_clear,
};

struct storage_req *storage_account_update(struct storage *st, const char *host, const char *user,
                                           const struct storage_account *acc, storage_done_cb *cb, void *ctx)
{
	assert(host != NULL && user != NULL && acc != NULL && cb != NULL);
	struct account_update_job *r = storage_req_new(st, &account_update_op, sizeof(*r), host, user, ctx);
	r->cb = cb;
	copy_account(r->base.pool, &r->acc, acc);
	return storage_req_submit(&r->base);
}

/* ---- account_add_credentials */

static void account_add_credentials_work(struct storage_req *req, void *conn)
{
	const struct account_store_vfuncs *v = req->st->account;
	req->res = v->add_credentials != NULL ? v->add_credentials(conn, (struct account_update_job *)req)
	                                      : STORAGE_ERROR;
}

static const struct storage_op account_add_credentials_op = {
	.name = "account_add_credentials",
	.area = STORAGE_AREA_ACCOUNT,
	.work = account_add_credentials_work,
	.reply = account_update_reply,
	.clear = account_update_clear,
};

struct storage_req *storage_account_add_credentials(struct storage *st, const char *host, const char *user,
                                                    const struct storage_account *acc, storage_done_cb *cb,
                                                    void *ctx)
{
	assert(host != NULL && user != NULL && acc != NULL && cb != NULL);
	struct account_update_job *r =
	        storage_req_new(st, &account_add_credentials_op, sizeof(*r), host, user, ctx);
	r->cb = cb;
	copy_account(r->base.pool, &r->acc, acc);
	r->acc.plain = NULL;
	return storage_req_submit(&r->base);
}

/* ---- account_remove */

static void account_remove_work(struct storage_req *req, void *conn)
{
	req->res = req->st->account->remove(conn, (struct account_remove_job *)req);
}

static void account_remove_reply(struct storage_req *req)
{
	struct account_remove_job *r = (struct account_remove_job *)req;
	r->cb(req->res, req->ctx);
}

static const struct storage_op account_remove_op = {
	.name = "account_remove",
	.area = STORAGE_AREA_ACCOUNT,
	.work = account_remove_work,
	.reply = account_remove_reply,
};

struct storage_req *storage_account_remove(struct storage *st, const char *host, const char *user,
                                           storage_done_cb *cb, void *ctx)
{
	assert(host != NULL && user != NULL && cb != NULL);
	struct account_remove_job *r = storage_req_new(st, &account_remove_op, sizeof(*r), host, user, ctx);
	r->cb = cb;
	return storage_req_submit(&r->base);
}

/* ---- account_list */

static void account_list_work(struct storage_req *req, void *conn)
{
	req->res = req->st->account->list(conn, (struct account_list_job *)req);
}

static void account_list_reply(struct storage_req *req)
{
	struct account_list_job *r = (struct account_list_job *)req;
	bool ok = req->res == STORAGE_OK;
	static const struct strlist empty = { NULL, 0 };
	r->cb(req->res, ok ? &r->names : &empty, req->ctx);
}

static const struct storage_op account_list_op = {
	.name = "account_list",
	.area = STORAGE_AREA_ACCOUNT,
	.work = account_list_work,
	.reply = account_list_reply,
};

struct storage_req *storage_account_list(struct storage *st, const char *host, storage_list_cb *cb, void *ctx)
{
	assert(host != NULL && cb != NULL);
	struct account_list_job *r = storage_req_new(st, &account_list_op, sizeof(*r), host, NULL, ctx);
	r->cb = cb;
	return storage_req_submit(&r->base);
}

struct storage_req *storage_account_list_page(struct storage *st, const char *host, const char *after,
                                              const char *match, unsigned limit, storage_list_cb *cb,
                                              void *ctx)
{
	assert(host != NULL && cb != NULL && limit > 0);
	struct account_list_job *r = storage_req_new(st, &account_list_op, sizeof(*r), host, NULL, ctx);
	r->cb = cb;
	r->after = after != NULL && after[0] != '\0' ? pool_strdup(r->base.pool, after) : NULL;
	r->match = match != NULL && match[0] != '\0' ? pool_strdup(r->base.pool, match) : NULL;
	r->limit = limit;
	return storage_req_submit(&r->base);
}

/* ---- account_count */

static void account_count_work(struct storage_req *req, void *conn)
{
	req->res = req->st->account->count(conn, (struct account_count_job *)req);
}

static void account_count_reply(struct storage_req *req)
{
	struct account_count_job *r = (struct account_count_job *)req;
	bool ok = req->res == STORAGE_OK;
	r->cb(req->res, ok ? r->count : 0, req->ctx);
}

static const struct storage_op account_count_op = {
	.name = "account_count",
	.area = STORAGE_AREA_ACCOUNT,
	.work = account_count_work,
	.reply = account_count_reply,
};

struct storage_req *storage_account_count(struct storage *st, const char *host, storage_count_cb *cb,
                                          void *ctx)
{
	assert(host != NULL && cb != NULL);
	struct account_count_job *r = storage_req_new(st, &account_count_op, sizeof(*r), host, NULL, ctx);
	r->cb = cb;
	return storage_req_submit(&r->base);
}

/* ---- FAST tokens */

static void fast_set_work(struct storage_req *req, void *conn)
{
	req->res = req->st->account->fast_set(conn, (struct fast_token_set_job *)req);
}

static void fast_set_reply(struct storage_req *req)
{
	((struct fast_token_set_job *)req)->cb(req->res, req->ctx);
}

static const struct storage_op fast_set_op = {
	.name = "fast_token_set",
	.area = STORAGE_AREA_ACCOUNT,
	.work = fast_set_work,
	.reply = fast_set_reply,
};

struct storage_req *storage_fast_token_set(struct storage *st, const char *host, const char *user,
                                           const struct storage_fast_token *t, storage_done_cb *cb, void *ctx)
{
	assert(host != NULL && user != NULL && t != NULL && t->ua_id != NULL && t->mechanism != NULL &&
	       cb != NULL);
	struct fast_token_set_job *r = storage_req_new(st, &fast_set_op, sizeof(*r), host, user, ctx);
	r->cb = cb;
	r->t = *t;
	r->t.ua_id = pool_strdup(r->base.pool, t->ua_id);
	r->t.mechanism = pool_strdup(r->base.pool, t->mechanism);
	return storage_req_submit(&r->base);
}

static void fast_get_work(struct storage_req *req, void *conn)
{
	req->res = req->st->account->fast_get(conn, (struct fast_token_get_job *)req);
}

static void fast_get_reply(struct storage_req *req)
{
	struct fast_token_get_job *r = (struct fast_token_get_job *)req;
	r->cb(req->res, req->res == STORAGE_OK ? &r->t : NULL, req->ctx);
}

static const struct storage_op fast_get_op = {
	.name = "fast_token_get",
	.area = STORAGE_AREA_ACCOUNT,
	.work = fast_get_work,
	.reply = fast_get_reply,
};

struct storage_req *storage_fast_token_get(struct storage *st, const char *host, const char *user,
                                           const unsigned char seed[STORAGE_FAST_SEED_LEN],
                                           storage_fast_token_cb *cb, void *ctx)
{
	assert(host != NULL && user != NULL && seed != NULL && cb != NULL);
	struct fast_token_get_job *r = storage_req_new(st, &fast_get_op, sizeof(*r), host, user, ctx);
	r->cb = cb;
	memcpy(r->seed, seed, sizeof(r->seed));
	return storage_req_submit(&r->base);
}

static void fast_delete_work(struct storage_req *req, void *conn)
{
	req->res = req->st->account->fast_delete(conn, (struct fast_token_delete_job *)req);
}

static void fast_delete_reply(struct storage_req *req)
{
	((struct fast_token_delete_job *)req)->cb(req->res, req->ctx);
}

static const struct storage_op fast_delete_op = {
	.name = "fast_token_delete",
	.area = STORAGE_AREA_ACCOUNT,
	.work = fast_delete_work,
	.reply = fast_delete_reply,
};

struct storage_req *storage_fast_token_delete(struct storage *st, const char *host, const char *user,
                                              const char *ua_id, const unsigned char *seed,
                                              storage_done_cb *cb, void *ctx)
{
	assert(host != NULL && user != NULL && cb != NULL);
	struct fast_token_delete_job *r = storage_req_new(st, &fast_delete_op, sizeof(*r), host, user, ctx);
	r->cb = cb;
	r->ua_id = ua_id != NULL ? pool_strdup(r->base.pool, ua_id) : NULL;
	if (seed != NULL) {
		r->by_seed = true;
		memcpy(r->seed, seed, sizeof(r->seed));
	}
	return storage_req_submit(&r->base);
}

static void fast_expire_work(struct storage_req *req, void *conn)
{
	req->res = req->st->account->fast_expire(conn, (struct fast_token_expire_job *)req);
}

static void fast_expire_reply(struct storage_req *req)
{
	struct fast_token_expire_job *r = (struct fast_token_expire_job *)req;
	r->cb(req->res, req->res == STORAGE_OK ? r->count : 0, req->ctx);
}

static const struct storage_op fast_expire_op = {
	.name = "fast_token_expire",
	.area = STORAGE_AREA_ACCOUNT,
	.work = fast_expire_work,
	.reply = fast_expire_reply,
};

struct storage_req *storage_fast_token_expire(struct storage *st, const char *host, int64_t before,
                                              storage_count_cb *cb, void *ctx)
{
	assert(host != NULL && cb != NULL);
	struct fast_token_expire_job *r = storage_req_new(st, &fast_expire_op, sizeof(*r), host, NULL, ctx);
	r->cb = cb;
	r->before = before;
	return storage_req_submit(&r->base);
}

static void fast_list_work(struct storage_req *req, void *conn)
{
	req->res = req->st->account->fast_list(conn, (struct fast_token_list_job *)req);
}

static void fast_list_reply(struct storage_req *req)
{
	struct fast_token_list_job *r = (struct fast_token_list_job *)req;
	bool ok = req->res == STORAGE_OK;
	if (r->with_account)
		r->login_cb(req->res, ok ? r->tokens : NULL, ok ? r->ntokens : 0, ok && r->account_exists,
		            req->ctx);
	else
		r->cb(req->res, ok ? r->tokens : NULL, ok ? r->ntokens : 0, req->ctx);
}

static const struct storage_op fast_list_op = {
	.name = "fast_token_list",
	.area = STORAGE_AREA_ACCOUNT,
	.work = fast_list_work,
	.reply = fast_list_reply,
};

struct storage_req *storage_fast_token_list(struct storage *st, const char *host, const char *user,
                                            storage_fast_tokens_cb *cb, void *ctx)
{
	assert(host != NULL && user != NULL && cb != NULL);
	struct fast_token_list_job *r = storage_req_new(st, &fast_list_op, sizeof(*r), host, user, ctx);
	r->cb = cb;
	return storage_req_submit(&r->base);
}

struct storage_req *storage_fast_token_list_login(struct storage *st, const char *host, const char *user,
                                                  storage_fast_login_cb *cb, void *ctx)
{
	assert(host != NULL && user != NULL && cb != NULL);
	struct fast_token_list_job *r = storage_req_new(st, &fast_list_op, sizeof(*r), host, user, ctx);
	r->login_cb = cb;
	r->with_account = true;
	return storage_req_submit(&r->base);
}

/* ---- SCRAM keys of users of other auth methods */

static void scram_cache_get_work(struct storage_req *req, void *conn)
{
	const struct account_store_vfuncs *v = req->st->account;
	req->res = v->scram_cache_get != NULL ? v->scram_cache_get(conn, (struct account_get_job *)req)
	                                      : STORAGE_ERROR;
}

static const struct storage_op scram_cache_get_op = {
	.name = "scram_cache_get",
	.area = STORAGE_AREA_ACCOUNT,
	.work = scram_cache_get_work,
	.reply = account_get_reply,
	.clear = account_get_clear,
};

struct storage_req *storage_scram_cache_get(struct storage *st, const char *host, const char *user,
                                            int64_t ttl, storage_account_cb *cb, void *ctx)
{
	assert(host != NULL && user != NULL && cb != NULL);
	struct account_get_job *r = storage_req_new(st, &scram_cache_get_op, sizeof(*r), host, user, ctx);
	r->cb = cb;
	r->ttl = ttl;
	return storage_req_submit(&r->base);
}

static void scram_cache_set_work(struct storage_req *req, void *conn)
{
	const struct account_store_vfuncs *v = req->st->account;
	req->res = v->scram_cache_set != NULL ? v->scram_cache_set(conn, (struct account_update_job *)req)
	                                      : STORAGE_ERROR;
}

static const struct storage_op scram_cache_set_op = {
	.name = "scram_cache_set",
	.area = STORAGE_AREA_ACCOUNT,
	.work = scram_cache_set_work,
	.reply = account_update_reply,
	.clear = account_update_clear,
};

struct storage_req *storage_scram_cache_set(struct storage *st, const char *host, const char *user,
                                            const struct storage_account *acc, int64_t expires,
                                            storage_done_cb *cb, void *ctx)
{
	assert(host != NULL && user != NULL && acc != NULL && cb != NULL);
	assert(acc->has_sha1 && acc->has_sha256 && acc->has_sha512);
	struct account_update_job *r = storage_req_new(st, &scram_cache_set_op, sizeof(*r), host, user, ctx);
	r->cb = cb;
	copy_account(r->base.pool, &r->acc, acc);
	r->acc.plain = NULL;
	r->expires = expires;
	return storage_req_submit(&r->base);
}

static void scram_cache_delete_work(struct storage_req *req, void *conn)
{
	const struct account_store_vfuncs *v = req->st->account;
	req->res = v->scram_cache_delete != NULL
	                   ? v->scram_cache_delete(conn, (struct account_remove_job *)req)
	                   : STORAGE_ERROR;
}

static const struct storage_op scram_cache_delete_op = {
	.name = "scram_cache_delete",
	.area = STORAGE_AREA_ACCOUNT,
	.work = scram_cache_delete_work,
	.reply = account_remove_reply,
};

struct storage_req *storage_scram_cache_delete(struct storage *st, const char *host, const char *user,
                                               storage_done_cb *cb, void *ctx)
{
	assert(host != NULL && user != NULL && cb != NULL);
	struct account_remove_job *r =
	        storage_req_new(st, &scram_cache_delete_op, sizeof(*r), host, user, ctx);
	r->cb = cb;
	return storage_req_submit(&r->base);
}

static void scram_cache_expire_work(struct storage_req *req, void *conn)
{
	const struct account_store_vfuncs *v = req->st->account;
	req->res = v->scram_cache_expire != NULL
	                   ? v->scram_cache_expire(conn, (struct fast_token_expire_job *)req)
	                   : STORAGE_ERROR;
}

static const struct storage_op scram_cache_expire_op = {
	.name = "scram_cache_expire",
	.area = STORAGE_AREA_ACCOUNT,
	.work = scram_cache_expire_work,
	.reply = fast_expire_reply,
};

struct storage_req *storage_scram_cache_expire(struct storage *st, const char *host, int64_t before,
                                               storage_count_cb *cb, void *ctx)
{
	assert(host != NULL && cb != NULL);
	struct fast_token_expire_job *r =
	        storage_req_new(st, &scram_cache_expire_op, sizeof(*r), host, NULL, ctx);
	r->cb = cb;
	r->before = before;
	return storage_req_submit(&r->base);
}
