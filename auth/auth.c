/*
 * The auth interface: one chain of backends per virtual host, walked for
 * each request, and the shared compute worker group (key derivation).
 *
 * Loop thread only (the compute group's threads run only the work functions
 * backends give them).  Invariants:
 * - a request's callback runs exactly once, from the loop, never inside the
 *   call that created it, never after auth_cancel; auth_free answers every
 *   request still pending with AUTH_TEMPFAIL before it returns;
 * - a backend that cannot answer now makes the whole answer AUTH_TEMPFAIL
 *   unless another backend gives a positive answer: an outage is never
 *   reported as "no such user" or "wrong password";
 * - passwords copied into requests are wiped when the request is freed.
 *
 * How the chain answers (backends in auth.methods order):
 *   check_password  first AUTH_OK wins; else TEMPFAIL > ERROR > BAD_PASSWORD
 *                   > NO_USER, from what the backends said;
 *   get_scram       first OK, TEMPFAIL or ERROR stops; else, with
 *                   auth.scram_cache_ttl, the keys kept from a password
 *                   login (OK), or NOT_SUPPORTED; without it NOT_SUPPORTED
 *                   if a backend has the user without keys for that hash,
 *                   else NO_USER;
 *   user_exists     first OK wins; else TEMPFAIL > ERROR > NO_USER;
 *   create_user     on a chain of several backends, first the lookup: the
 *                   chain's user_exists; a backend has the user: EXISTS;
 *                   else TEMPFAIL or ERROR as user_exists answers; a
 *                   backend that cannot tell (pam without account_check):
 *                   NOT_SUPPORTED; only when every backend that can tell
 *                   says NO_USER does the first backend that can create
 *                   answer (alone, it answers at once: its own EXISTS);
 *   set_password,
 *   remove_user     on a chain of several backends, the lookup first; the
 *                   backend that has the user answers (NOT_SUPPORTED when
 *                   it cannot do it); else the lookup's TEMPFAIL > ERROR >
 *                   NO_USER.  Alone, the backend answers at once.
 * So an account is never made in one backend for a name another has (a
 * password of either would then open it), and another backend's "no such
 * user" or refusal never hides the one that has the user.
 * With auth.scram_cache_ttl (auth-scramcache.c) a password check that an
 * ldap, pam or external backend accepted keeps SCRAM keys before AUTH_OK is
 * answered; their "no such user", or their refusal of the password the
 * keys were made from, drops them before the chain goes on, and so do
 * set_password and remove_user before their answer.
 */
#include "auth/auth-private.h"
#include "lib/latency.h"
#include "lib/log.h"
#include "lib/worker.h"

#include <assert.h>
#include <stdarg.h>
#include <unistd.h>

static const struct auth_vfuncs *const auth_backends[] = {
	&auth_internal_vfuncs,
#ifdef HAVE_BACKEND_LDAP
	&auth_ldap_vfuncs,
#endif
	&auth_external_vfuncs, &auth_anonymous_vfuncs,
#ifdef HAVE_BACKEND_PAM
	&auth_pam_vfuncs,
#endif
};

static struct worker_group *compute_group;

const char *auth_result_str(enum auth_result r)
{
	switch (r) {
	case AUTH_OK: return "ok";
	case AUTH_BAD_PASSWORD: return "bad password";
	case AUTH_NO_USER: return "no such user";
	case AUTH_EXISTS: return "exists";
	case AUTH_TEMPFAIL: return "temporary failure";
	case AUTH_NOT_SUPPORTED: return "not supported";
	case AUTH_ERROR: return "error";
	}
	return "unknown";
}

/* ---- compute group -------------------------------------------------------------- */

struct worker_group *auth_compute_group(struct ev_loop *loop)
{
	if (compute_group == NULL) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		unsigned threads = n >= 2 ? 2 : 1;
		compute_group = worker_group_new(loop, "auth-compute", threads, 1024, NULL, NULL, NULL);
	}
	return compute_group;
}

void auth_global_shutdown(void)
{
	worker_group_free(&compute_group);
}

/* ---- requests ------------------------------------------------------------------- */

static void defer_cb(struct ev_loop *loop, ev_timer *w, int revents);
static void auth_limits_free(struct auth *a);

static void defer_push(struct auth_req *req, enum auth_result res, bool final)
{
	struct auth *a = req->a;
	assert(!req->deferred);
	req->deferred = true;
	req->deferred_final = final;
	req->deferred_res = res;
	req->defer_next = NULL;
	if (a->defer_tail != NULL)
		a->defer_tail->defer_next = req;
	else
		a->defer_head = req;
	a->defer_tail = req;
	if (!ev_is_active(&a->defer_timer)) {
		ev_timer_set(&a->defer_timer, 0, 0);
		ev_timer_start(a->loop, &a->defer_timer);
	}
}

static void defer_unlink(struct auth_req *req)
{
	struct auth *a = req->a;
	struct auth_req **pp = &a->defer_head, *prev = NULL;
	while (*pp != NULL && *pp != req) {
		prev = *pp;
		pp = &(*pp)->defer_next;
	}
	if (*pp == req) {
		*pp = req->defer_next;
		if (a->defer_tail == req)
			a->defer_tail = prev;
	}
	req->deferred = false;
	req->defer_next = NULL;
}

static struct auth_req *req_new(struct auth *a, enum auth_op op, const char *user, const char *password,
                                void *ctx)
{
	struct auth_req *req = xcalloc(1, sizeof(*req));
	req->a = a;
	req->op = op;
	req->user = xstrdup(user);
	req->password = password != NULL ? xstrdup(password) : NULL;
	req->ctx = ctx;
	req->end_backend = a->nbackends;
	req->drops_seen = scramcache_drops(a, user);
	req->next = a->reqs;
	if (a->reqs != NULL)
		a->reqs->prev = req;
	a->reqs = req;
	return req;
}

static void req_free(struct auth_req *req)
{
	struct auth *a = req->a;
	if (req->prev != NULL)
		req->prev->next = req->next;
	else if (a->reqs == req)
		a->reqs = req->next;
	if (req->next != NULL)
		req->next->prev = req->prev;
	if (req->password != NULL) {
		explicit_bzero(req->password, strlen(req->password));
		free(req->password);
	}
	free(req->user);
	free(req->detail);
	free(req);
}

void auth_backend_detail(struct auth_req *req, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *d = xvasprintf(fmt, ap);
	va_end(ap);
	free(req->detail);
	req->detail = d;
}

static void finish(struct auth_req *req, enum auth_result res, const struct scram_credentials *cred);

/* The cache work that finish() started is done: answer what it held. */
static void finish_after_cache(struct auth_req *req, enum auth_result r, const struct scram_credentials *cred)
{
	finish(req, req->cache_res, NULL);
}

/* Whether finish() has cache work to do before answering res: keep keys
 * from a password a cacheable method accepted; forget them when the
 * password is set or the user removed. */
static bool finish_cache_work(struct auth_req *req, enum auth_result res)
{
	if (req->cache_done || req->a->freeing || req->probe_cb != NULL || !scramcache_enabled(req->a))
		return false;
	req->cache_res = res;
	if (req->op == AUTH_OP_CHECK_PASSWORD && res == AUTH_OK && req->fill_cache) {
		req->cache_done = true;
		scramcache_fill(req, req->answered_by, finish_after_cache);
		return true;
	}
	if ((req->op == AUTH_OP_SET_PASSWORD && res == AUTH_OK) ||
	    (req->op == AUTH_OP_REMOVE_USER && res != AUTH_TEMPFAIL)) {
		req->cache_done = true;
		scramcache_drop(req,
		                req->op == AUTH_OP_SET_PASSWORD ? "the password was set"
		                                                : "the user was removed",
		                finish_after_cache);
		return true;
	}
	return false;
}

/* The final answer: the caller's callback, then the request is gone. */
static void finish(struct auth_req *req, enum auth_result res, const struct scram_credentials *cred)
{
	if (req->starting) {
		/* Known inside the public call: answer from the loop instead. */
		defer_push(req, res, true);
		return;
	}
	if (finish_cache_work(req, res))
		return;
	req->answering = true;
	if (req->probe_cb != NULL)
		req->probe_cb(res, req->detail, req->ctx);
	else if (req->op == AUTH_OP_GET_SCRAM)
		req->scram_cb(res, res == AUTH_OK ? cred : NULL, req->ctx);
	else
		req->cb(res, req->ctx);
	req_free(req);
}

/* The answer of the kept keys (auth_scram_keys_kept). */
static void finish_kept(struct auth_req *req, enum auth_result res, const struct scram_credentials *cred)
{
	req->kept_keys = res == AUTH_OK;
	finish(req, res, cred);
}

static auth_backend_op_fn *op_fn(const struct auth_vfuncs *v, enum auth_op op)
{
	switch (op) {
	case AUTH_OP_CHECK_PASSWORD: return v->check_password;
	case AUTH_OP_GET_SCRAM: return v->get_scram;
	case AUTH_OP_USER_EXISTS: return v->user_exists;
	case AUTH_OP_CREATE_USER: return v->create_user;
	case AUTH_OP_SET_PASSWORD: return v->set_password;
	case AUTH_OP_REMOVE_USER: return v->remove_user;
	}
	return NULL;
}

#define SEEN(req, r) (((req)->seen & (1u << (r))) != 0)

/* The answer when no backend is left to ask. */
static enum auth_result chain_final(const struct auth_req *req)
{
	if (!req->tried)
		return AUTH_NOT_SUPPORTED;
	switch (req->op) {
	case AUTH_OP_CHECK_PASSWORD:
	case AUTH_OP_USER_EXISTS:
		if (SEEN(req, AUTH_TEMPFAIL))
			return AUTH_TEMPFAIL;
		if (SEEN(req, AUTH_ERROR))
			return AUTH_ERROR;
		if (SEEN(req, AUTH_BAD_PASSWORD))
			return AUTH_BAD_PASSWORD;
		return SEEN(req, AUTH_NO_USER) ? AUTH_NO_USER : AUTH_NOT_SUPPORTED;
	case AUTH_OP_GET_SCRAM:
		if (SEEN(req, AUTH_NOT_SUPPORTED))
			return AUTH_NOT_SUPPORTED;
		return SEEN(req, AUTH_NO_USER) ? AUTH_NO_USER : AUTH_NOT_SUPPORTED;
	case AUTH_OP_CREATE_USER: return AUTH_NOT_SUPPORTED;
	case AUTH_OP_SET_PASSWORD:
	case AUTH_OP_REMOVE_USER: return SEEN(req, AUTH_NO_USER) ? AUTH_NO_USER : AUTH_NOT_SUPPORTED;
	}
	return AUTH_ERROR;
}

static void lookup_done(struct auth_req *req, enum auth_result r, size_t found);

/* Ask the next backend that implements the operation, or finish. */
static void chain_next(struct auth_req *req)
{
	struct auth *a = req->a;
	while (!a->freeing && req->next_backend < req->end_backend) {
		struct auth_backend *b = &a->backends[req->next_backend++];
		auth_backend_op_fn *fn = op_fn(b->v, req->op);
		if (fn == NULL)
			continue;
		req->tried = true;
		req->cur = b;
		req->breq = fn(b->state, req);
		return;
	}
	enum auth_result r = a->freeing ? AUTH_TEMPFAIL : chain_final(req);
	if (req->looking_up && !a->freeing) {
		lookup_done(req, r, a->nbackends);
		return;
	}
	if (req->op == AUTH_OP_GET_SCRAM && (r == AUTH_NO_USER || r == AUTH_NOT_SUPPORTED) &&
	    !req->cache_done && req->probe_cb == NULL && scramcache_enabled(a)) {
		/* No backend keeps keys for the user: those kept from a
		 * password login, if any (auth-scramcache.c). */
		req->cache_done = true;
		scramcache_lookup(req, finish_kept);
		return;
	}
	finish(req, r, NULL);
}

/* The end of the lookup (req->looking_up) with the chain's user_exists
 * answer r; found is the index of the backend that has the user (r is
 * AUTH_OK), else a->nbackends.  The operation goes on, or the request is
 * answered. */
static void lookup_done(struct auth_req *req, enum auth_result r, size_t found)
{
	struct auth *a = req->a;
	const char *unsure = req->unsure;
	req->looking_up = false;
	req->op = req->then_op;
	req->seen = 0;
	req->tried = false;
	free(req->detail);
	req->detail = NULL;
	if (req->op != AUTH_OP_CREATE_USER) {
		/* set_password, remove_user: the backend that has the user */
		if (r != AUTH_OK) {
			finish(req, r, NULL);
			return;
		}
		req->next_backend = found;
		req->end_backend = found + 1;
		chain_next(req);
		return;
	}
	if (r == AUTH_OK) {
		finish(req, AUTH_EXISTS, NULL);
		return;
	}
	if (unsure != NULL && (r == AUTH_NO_USER || r == AUTH_NOT_SUPPORTED)) {
		log_warning("host %s: account %s not created: the %s method cannot tell whether the "
		            "user exists",
		            a->host, req->user, unsure);
		r = AUTH_NOT_SUPPORTED;
	}
	if (r != AUTH_NO_USER) {
		finish(req, r, NULL);
		return;
	}
	req->next_backend = 0;
	req->end_backend = a->nbackends;
	chain_next(req);
}

/* Whether this answer of one backend is the final one. */
static bool answer_is_final(enum auth_op op, enum auth_result res)
{
	switch (op) {
	case AUTH_OP_CHECK_PASSWORD:
	case AUTH_OP_USER_EXISTS: return res == AUTH_OK;
	case AUTH_OP_GET_SCRAM: return res == AUTH_OK || res == AUTH_TEMPFAIL || res == AUTH_ERROR;
	case AUTH_OP_CREATE_USER: return res != AUTH_NOT_SUPPORTED;
	case AUTH_OP_SET_PASSWORD:
	case AUTH_OP_REMOVE_USER: return res != AUTH_NOT_SUPPORTED && res != AUTH_NO_USER;
	}
	return true;
}

static void reply_go_on(struct auth_req *req, enum auth_result res, const struct scram_credentials *cred);

/* The kept keys of a refused or unknown user are gone: on with the chain. */
static void reply_after_drop(struct auth_req *req, enum auth_result r, const struct scram_credentials *cred)
{
	reply_go_on(req, req->cache_res, NULL);
}

void auth_backend_reply(struct auth_req *req, enum auth_result res, const struct scram_credentials *cred)
{
	assert(!req->starting);
	req->cur = NULL;
	req->breq = NULL;
	struct auth_backend *b = req->next_backend > 0 ? &req->a->backends[req->next_backend - 1] : NULL;
	if ((req->op == AUTH_OP_CHECK_PASSWORD || req->op == AUTH_OP_GET_SCRAM) && b != NULL &&
	    (unsigned)res <= AUTH_ERROR)
		b->login_answers[req->op == AUTH_OP_GET_SCRAM][res]++;
	if (b != NULL && b->v->scram_cacheable && req->probe_cb == NULL && scramcache_enabled(req->a)) {
		bool check = req->op == AUTH_OP_CHECK_PASSWORD;
		if (check && res == AUTH_OK && !req->cached_answer) {
			/* A password the method really checked: keys from it
			 * are kept before the answer (finish). */
			req->fill_cache = true;
			req->answered_by = b->v->name;
		} else if ((check && (res == AUTH_BAD_PASSWORD || res == AUTH_NO_USER)) ||
		           (req->op == AUTH_OP_USER_EXISTS && res == AUTH_NO_USER)) {
			req->cache_res = res;
			if (res == AUTH_BAD_PASSWORD)
				scramcache_drop_refused(req, reply_after_drop);
			else
				scramcache_drop(req, "the method does not know the user", reply_after_drop);
			return;
		}
	}
	reply_go_on(req, res, cred);
}

/* A backend's answer, after any cache work it asked for. */
static void reply_go_on(struct auth_req *req, enum auth_result res, const struct scram_credentials *cred)
{
	if (req->looking_up && res == AUTH_OK) {
		lookup_done(req, res, req->next_backend - 1);
		return;
	}
	if (req->looking_up && res == AUTH_NOT_SUPPORTED && req->unsure == NULL)
		req->unsure = req->a->backends[req->next_backend - 1].v->name;
	if (answer_is_final(req->op, res)) {
		finish(req, res, cred);
		return;
	}
	req->seen |= 1u << res;
	if (res == AUTH_TEMPFAIL && req->detail != NULL)
		log_info("host %s: auth backend answered for %s: temporary failure (%s); asking the next one",
		         req->a->host, req->user, req->detail);
	chain_next(req);
}

void auth_backend_reply_later(struct auth_req *req, enum auth_result res)
{
	req->cur = NULL;
	req->breq = NULL;
	defer_push(req, res, false);
}

static void defer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	latency_begin(LATENCY_AUTH, NULL);
	struct auth *a = w->data;
	while (a->defer_head != NULL) {
		struct auth_req *req = a->defer_head;
		defer_unlink(req);
		if (req->deferred_final)
			finish(req, req->deferred_res, NULL);
		else
			auth_backend_reply(req, req->deferred_res, NULL);
	}
	latency_end();
}

/* Start a request: the chain's first step, with callbacks held back. */
static struct auth_req *req_start(struct auth_req *req)
{
	if ((req->op == AUTH_OP_CREATE_USER || req->op == AUTH_OP_SET_PASSWORD ||
	     req->op == AUTH_OP_REMOVE_USER) &&
	    req->a->nbackends > 1) {
		/* The lookup first (the top of this file). */
		req->looking_up = true;
		req->then_op = req->op;
		req->op = AUTH_OP_USER_EXISTS;
	}
	req->starting = true;
	chain_next(req);
	req->starting = false;
	return req;
}

/* Drop whatever backend work or deferred answer the request has. */
static void req_detach(struct auth_req *req)
{
	if (req->breq != NULL && req->cur != NULL)
		req->cur->v->cancel(req->breq);
	req->breq = NULL;
	req->cur = NULL;
	scramcache_cancel(req);
	if (req->deferred)
		defer_unlink(req);
}

/* ---- public interface ---------------------------------------------------------- */

static const struct auth_vfuncs *backend_find(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(auth_backends); i++)
		if (strcmp(auth_backends[i]->name, name) == 0)
			return auth_backends[i];
	return NULL;
}

int auth_new(struct ev_loop *loop, const char *host, const struct auth_config *cfg, struct storage *storage,
             struct auth **auth_r, char **error_r)
{
	static char *const default_methods[] = { "internal" };
	struct strlist defaults = { (char **)default_methods, 1 };
	const struct strlist *methods = cfg != NULL && cfg->methods.count > 0 ? &cfg->methods : &defaults;

	struct auth *a = xcalloc(1, sizeof(*a));
	a->loop = loop;
	a->host = xstrdup(host);
	a->cfg = cfg;
	if (cfg != NULL) {
		a->store_plain = cfg->store_plain;
		a->reveal_missing_keys = cfg->reveal_missing_scram_keys;
		a->max_failures_ip = cfg->max_failures_per_ip;
		a->max_failures_user = cfg->max_failures_per_user;
		a->failure_window = cfg->failure_window;
		a->scram_cache_ttl = cfg->scram_cache_ttl;
	}
	a->storage = storage;
	a->scram_iterations =
	        cfg != NULL && cfg->scram_iterations > 0 ? cfg->scram_iterations : SCRAM_DEFAULT_ITERATIONS;
	a->ldap_cfg = cfg != NULL ? &cfg->ldap : NULL;
	ev_timer_init(&a->defer_timer, defer_cb, 0, 0);
	a->defer_timer.data = a;
	a->backends = xcalloc(methods->count, sizeof(*a->backends));
	for (size_t i = 0; i < methods->count; i++) {
		const struct auth_vfuncs *v = backend_find(methods->items[i]);
		if (v == NULL) {
			*error_r = xasprintf("host %s: unknown auth method '%s' (built: internal, external, "
			                     "anonymous"
#ifdef HAVE_BACKEND_LDAP
			                     ", ldap"
#endif
#ifdef HAVE_BACKEND_PAM
			                     ", pam"
#endif
			                     ")",
			                     host, methods->items[i]);
			goto fail;
		}
		char *err = NULL;
		if (v->init(a, &a->backends[i].state, &err) < 0) {
			*error_r = xasprintf("host %s: auth method %s: %s", host, v->name,
			                     err != NULL ? err : "cannot start");
			free(err);
			goto fail;
		}
		a->backends[i].v = v;
		a->nbackends++;
	}
	if (a->scram_cache_ttl > 0) {
		bool served = false;
		for (size_t i = 0; i < a->nbackends; i++)
			served = served || a->backends[i].v->scram_cacheable;
		if (!served) {
			log_info("host %s: auth.scram_cache_ttl has no effect: no ldap, pam or external "
			         "method",
			         host);
			a->scram_cache_ttl = 0;
		} else if (storage == NULL || !storage_has_area(storage, STORAGE_AREA_ACCOUNT)) {
			*error_r = xasprintf("host %s: auth.scram_cache_ttl keeps SCRAM keys in the host's "
			                     "storage, and the host has none that keeps accounts",
			                     host);
			goto fail;
		} else {
			if (auth_can_scram(a))
				log_warning("host %s: auth.scram_cache_ttl with the internal method: every "
				            "SCRAM hash is offered, and a user of another method without "
				            "kept keys fails each before PLAIN (limits.auth_attempts may "
				            "close the stream first); keep such users on a host of their own",
				            host);
			scramcache_start(a);
		}
	}
	if (a->scram_cache_ttl <= 0 && storage != NULL && storage_has_area(storage, STORAGE_AREA_ACCOUNT))
		scramcache_purge(a);
	a->cfg = NULL; /* the caller's; backends copied what they need */
	*auth_r = a;
	return 0;
fail:
	auth_free(&a);
	*auth_r = NULL;
	return -1;
}

void auth_free(struct auth **ap)
{
	struct auth *a = *ap;
	if (a == NULL)
		return;
	*ap = NULL;
	a->freeing = true;
	/* Pending requests are answered now (temporary failure) so that their
	 * owners drop their handles; new ones made meanwhile get the same. */
	while (a->reqs != NULL) {
		struct auth_req *req = a->reqs;
		req_detach(req);
		req->starting = false;
		finish(req, AUTH_TEMPFAIL, NULL);
	}
	scramcache_stop(a);
	for (size_t i = 0; i < a->nbackends; i++)
		if (a->backends[i].v->deinit != NULL)
			a->backends[i].v->deinit(a->backends[i].state);
	ev_timer_stop(a->loop, &a->defer_timer);
	auth_limits_free(a);
	free(a->backends);
	free(a->host);
	free(a);
}

void auth_cancel(struct auth_req *req)
{
	if (req == NULL || req->answering)
		return;
	req_detach(req);
	req_free(req);
}

bool auth_scram_keys_kept(const struct auth_req *req)
{
	return req->kept_keys;
}

bool auth_can_scram(const struct auth *a)
{
	for (size_t i = 0; i < a->nbackends; i++)
		if (a->backends[i].v->can_scram != NULL && a->backends[i].v->can_scram(a->backends[i].state))
			return true;
	return false;
}

bool auth_offers_scram(const struct auth *a, enum scram_hash h)
{
	if (auth_can_scram(a))
		return true;
	return h == SCRAM_SHA256 && scramcache_enabled(a);
}

bool auth_can_plain(const struct auth *a)
{
	for (size_t i = 0; i < a->nbackends; i++)
		if (a->backends[i].v->can_plain != NULL && a->backends[i].v->can_plain(a->backends[i].state))
			return true;
	return false;
}

const char *auth_host(const struct auth *a)
{
	return a->host;
}

bool auth_reveal_missing_scram_keys(const struct auth *a)
{
	return a->reveal_missing_keys;
}

unsigned auth_scram_iterations(const struct auth *a)
{
	return a->scram_iterations;
}

struct auth_req *auth_check_password(struct auth *a, const char *user, const char *password, auth_cb *cb,
                                     void *ctx)
{
	assert(user != NULL && password != NULL && cb != NULL);
	struct auth_req *req = req_new(a, AUTH_OP_CHECK_PASSWORD, user, password, ctx);
	req->cb = cb;
	return req_start(req);
}

struct auth_req *auth_get_scram(struct auth *a, const char *user, enum scram_hash h, auth_scram_cb *cb,
                                void *ctx)
{
	assert(user != NULL && cb != NULL);
	struct auth_req *req = req_new(a, AUTH_OP_GET_SCRAM, user, NULL, ctx);
	req->hash = h;
	req->scram_cb = cb;
	return req_start(req);
}

struct auth_req *auth_user_exists(struct auth *a, const char *user, auth_cb *cb, void *ctx)
{
	assert(user != NULL && cb != NULL);
	struct auth_req *req = req_new(a, AUTH_OP_USER_EXISTS, user, NULL, ctx);
	req->cb = cb;
	return req_start(req);
}

bool auth_exists_in_storage(const struct auth *a, const struct storage *st)
{
	return st != NULL && a->storage == st && a->nbackends == 1 &&
	       a->backends[0].v == &auth_internal_vfuncs;
}

struct auth_req *auth_create_user(struct auth *a, const char *user, const char *password, auth_cb *cb,
                                  void *ctx)
{
	assert(user != NULL && password != NULL && cb != NULL);
	struct auth_req *req = req_new(a, AUTH_OP_CREATE_USER, user, password, ctx);
	req->cb = cb;
	return req_start(req);
}

struct auth_req *auth_set_password(struct auth *a, const char *user, const char *password, auth_cb *cb,
                                   void *ctx)
{
	assert(user != NULL && password != NULL && cb != NULL);
	struct auth_req *req = req_new(a, AUTH_OP_SET_PASSWORD, user, password, ctx);
	req->cb = cb;
	return req_start(req);
}

struct auth_req *auth_remove_user(struct auth *a, const char *user, auth_cb *cb, void *ctx)
{
	assert(user != NULL && cb != NULL);
	struct auth_req *req = req_new(a, AUTH_OP_REMOVE_USER, user, NULL, ctx);
	req->cb = cb;
	return req_start(req);
}

/* ---- diagnostics --------------------------------------------------------------- */

size_t auth_backend_count(const struct auth *a)
{
	return a->nbackends;
}

const char *auth_backend_name(const struct auth *a, size_t i)
{
	return i < a->nbackends ? a->backends[i].v->name : NULL;
}

struct auth_req *auth_probe(struct auth *a, size_t i, const char *user, const char *password,
                            auth_probe_cb *cb, void *ctx)
{
	assert(user != NULL && cb != NULL && i < a->nbackends);
	struct auth_req *req = req_new(a, password != NULL ? AUTH_OP_CHECK_PASSWORD : AUTH_OP_USER_EXISTS,
	                               user, password, ctx);
	req->probe_cb = cb;
	req->next_backend = i;
	req->end_backend = i + 1;
	return req_start(req);
}

uint64_t auth_backend_login_answers(const struct auth *a, size_t i, bool scram, enum auth_result r)
{
	if (i >= a->nbackends || (unsigned)r > AUTH_ERROR)
		return 0;
	return a->backends[i].login_answers[scram ? 1 : 0][r];
}

void auth_status(const struct auth *a, struct buf *out)
{
	for (size_t i = 0; i < a->nbackends; i++) {
		if (a->backends[i].v->status == NULL)
			continue;
		buf_printf(out, "host %s: auth %s: ", a->host, a->backends[i].v->name);
		a->backends[i].v->status(a->backends[i].state, out);
		buf_append_str(out, "\n");
	}
}

bool auth_can_remove_users(const struct auth *a)
{
	for (size_t i = 0; i < a->nbackends; i++)
		if (a->backends[i].v->remove_user != NULL)
			return true;
	return false;
}

bool auth_can_anonymous(const struct auth *a)
{
	for (size_t i = 0; i < a->nbackends; i++)
		if (a->backends[i].v == &auth_anonymous_vfuncs)
			return true;
	return false;
}

/* ---- failed-login limits ------------------------------------------------------- */

/* A fixed window per key: count failures from the first one for
 * failure_window seconds.  The table is small and bounded: expired entries
 * go as they are met, and past LIMIT_MAX entries the oldest are dropped. */
#define LIMIT_BUCKETS 256
#define LIMIT_MAX 65536

struct limit_entry {
	char *key;
	double first; /* ev_now of the first failure of the window */
	unsigned count;
	struct limit_entry *next;
};

struct auth_limit {
	struct limit_entry *b[LIMIT_BUCKETS];
	unsigned n;
};

static void limit_free(struct auth_limit **lp)
{
	struct auth_limit *l = *lp;
	if (l == NULL)
		return;
	for (size_t i = 0; i < LIMIT_BUCKETS; i++) {
		while (l->b[i] != NULL) {
			struct limit_entry *e = l->b[i];
			l->b[i] = e->next;
			free(e->key);
			free(e);
		}
	}
	xfree(lp);
}

static void auth_limits_free(struct auth *a)
{
	limit_free(&a->limit_ip);
	limit_free(&a->limit_user);
}

/* The entry of key (NULL if none or expired, which is then dropped). */
static struct limit_entry *limit_find(struct auth_limit *l, const char *key, double now, double window)
{
	struct limit_entry **pp = &l->b[hash_str(key) % LIMIT_BUCKETS];
	while (*pp != NULL) {
		struct limit_entry *e = *pp;
		if (now - e->first >= window) {
			*pp = e->next;
			free(e->key);
			free(e);
			l->n--;
			continue;
		}
		if (strcmp(e->key, key) == 0)
			return e;
		pp = &e->next;
	}
	return NULL;
}

/* Drop the oldest entries until there is room for one more. */
static void limit_trim(struct auth_limit *l)
{
	while (l->n >= LIMIT_MAX) {
		struct limit_entry **oldest = NULL;
		for (size_t i = 0; i < LIMIT_BUCKETS; i++)
			for (struct limit_entry **pp = &l->b[i]; *pp != NULL; pp = &(*pp)->next)
				if (oldest == NULL || (*pp)->first < (*oldest)->first)
					oldest = pp;
		struct limit_entry *e = *oldest;
		*oldest = e->next;
		free(e->key);
		free(e);
		l->n--;
	}
}

static void limit_count(struct auth_limit **lp, const char *key, double now, double window)
{
	if (*lp == NULL)
		*lp = xcalloc(1, sizeof(**lp));
	struct auth_limit *l = *lp;
	struct limit_entry *e = limit_find(l, key, now, window);
	if (e == NULL) {
		limit_trim(l);
		e = xcalloc(1, sizeof(*e));
		e->key = xstrdup(key);
		e->first = now;
		uint32_t b = hash_str(key) % LIMIT_BUCKETS;
		e->next = l->b[b];
		l->b[b] = e;
		l->n++;
	}
	e->count++;
}

static bool limit_over(struct auth_limit *l, const char *key, unsigned max, double now, double window)
{
	if (l == NULL || max == 0 || key == NULL)
		return false;
	struct limit_entry *e = limit_find(l, key, now, window);
	return e != NULL && e->count >= max;
}

bool auth_limited(struct auth *a, const char *ip, const char *user)
{
	double now = ev_now(a->loop), w = a->failure_window;
	return limit_over(a->limit_ip, ip, a->max_failures_ip, now, w) ||
	       limit_over(a->limit_user, user, a->max_failures_user, now, w);
}

/* One more failure for ip and for user (either may be NULL). */
static void limits_count(struct auth *a, const char *ip, const char *user)
{
	if (a->failure_window <= 0)
		return;
	double now = ev_now(a->loop), w = a->failure_window;
	if (ip != NULL && a->max_failures_ip > 0)
		limit_count(&a->limit_ip, ip, now, w);
	if (user != NULL && *user != '\0' && a->max_failures_user > 0)
		limit_count(&a->limit_user, user, now, w);
}

void auth_note_failure(struct auth *a, const char *ip, const char *user, const char *reason)
{
	log_notice("auth failed: ip=%s user=%s%s%s reason=%s", ip != NULL ? ip : "-",
	           user != NULL && *user != '\0' ? user : "-", user != NULL && *user != '\0' ? "@" : "",
	           user != NULL && *user != '\0' ? a->host : "", reason);
	limits_count(a, ip, user);
}

/* Counted like a failed login (unless told not to): see auth.h for why. */
void auth_note_no_credentials(struct auth *a, const char *ip, const char *user, const char *mechanism,
                              bool counted)
{
	bool named = user != NULL && *user != '\0';
	log_notice("auth declined: ip=%s user=%s%s%s mechanism=%s reason=no-credentials-for-mechanism",
	           ip != NULL ? ip : "-", named ? user : "-", named ? "@" : "", named ? a->host : "",
	           mechanism);
	if (counted)
		limits_count(a, ip, user);
}

void auth_forgive_declined(struct auth *a, const char *ip, unsigned n, double since)
{
	if (a->limit_ip == NULL || ip == NULL || n == 0)
		return;
	struct limit_entry *e = limit_find(a->limit_ip, ip, ev_now(a->loop), a->failure_window);
	if (e == NULL || e->first > since)
		return;
	e->count -= n < e->count ? n : e->count;
}

void auth_note_success(struct auth *a, const char *user)
{
	if (a->limit_user == NULL || user == NULL)
		return;
	struct limit_entry **pp = &a->limit_user->b[hash_str(user) % LIMIT_BUCKETS];
	for (; *pp != NULL; pp = &(*pp)->next) {
		if (strcmp((*pp)->key, user) == 0) {
			struct limit_entry *e = *pp;
			*pp = e->next;
			free(e->key);
			free(e);
			a->limit_user->n--;
			return;
		}
	}
}
