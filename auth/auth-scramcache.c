/*
 * SCRAM keys for users of the ldap, pam and external methods
 * (auth.scram_cache_ttl): what auth.c does around those backends' answers
 * so that such a host can offer SCRAM.
 *
 * - A password check one of them accepted (really asked, not an answer
 *   from the external method's own cache) derives SCRAM-SHA-1/256/512 keys
 *   from the password (fresh salts, auth.scram_iterations, on the compute
 *   group) and stores them in the host's storage (table scram_cache, apart
 *   from the accounts) until now + scram_cache_ttl, replacing what the user
 *   had.  The password itself is never stored.
 * - get_scram, when no backend of the chain had keys, looks there: a set
 *   still valid answers AUTH_OK, none answers AUTH_NOT_SUPPORTED ("the user
 *   has no keys for this hash": sasl.c then runs the exchange like an
 *   unknown user's, or refuses it at once with reveal_missing_scram_keys),
 *   whether or not the name exists; a storage outage is AUTH_TEMPFAIL.
 * - The set is deleted when one of those methods refuses the password it
 *   was made from (the password changed there; a wrong password, which
 *   anyone can send, leaves it) or does not know the user, when the
 *   password is set and when
 *   the user is removed (whatever the method answered), and when it
 *   expires (at the next lookup, and by a sweep of the host every
 *   scram_cache_ttl, at least every minute and at most every hour).
 *   A fill stores nothing when a delete of the user's keys started after
 *   its password check did (a count per user slot, struct auth drops):
 *   else a change or removal racing a slow derivation would leave keys
 *   from the old password.  A
 *   set expiring later than now + scram_cache_ttl was kept under a longer
 *   TTL and counts as expired; a host started with scram_cache_ttl 0
 *   deletes all of its sets.
 *
 * Loop thread; key derivation runs on the compute group through
 * auth-derive.c.  Invariants: one cache operation per request at a time
 * (req->cache); a cancelled one never calls back (its storage request and
 * its compute job are cancelled), except that a delete already queued always runs
 * (only detached from the request: a removal or password change that
 * succeeded must not leave the keys because its client went away); the
 * password copy and keys are wiped when freed; a
 * failed store or delete is logged and the request goes on (the password
 * answer stands).
 */
#include "auth/auth-private.h"
#include "lib/log.h"

#include <assert.h>
#include <stdint.h>
#include <time.h>

struct scramcache_op {
	struct auth_req *req; /* NULL: a detached delete (scramcache_cancel) */
	scramcache_cb *cb;
	struct storage_req *sreq;
	/* its key derivation: fresh keys for all hashes (fill), or whether
	 * the refused password is the one the kept SHA-256 keys were made
	 * from (drop_refused) */
	struct auth_derive *job;
	const char *why;   /* drop: for the log */
	bool deleting;     /* sreq is a delete of the kept keys */
	char *host, *user; /* a detached delete's, for the log */
};

bool scramcache_enabled(const struct auth *a)
{
	return a->scram_cache_ttl > 0 && a->storage != NULL;
}

static struct scramcache_op *op_new(struct auth_req *req, scramcache_cb *cb)
{
	assert(req->cache == NULL);
	struct scramcache_op *op = xcalloc(1, sizeof(*op));
	op->req = req;
	op->cb = cb;
	req->cache = op;
	return op;
}

/* The operation is over: forget it, then call back. */
static void op_done(struct scramcache_op *op, enum auth_result res, const struct scram_credentials *cred)
{
	struct auth_req *req = op->req;
	scramcache_cb *cb = op->cb;
	req->cache = NULL;
	free(op);
	cb(req, res, cred);
}

/* ---- lookup ------------------------------------------------------------------- */

static void lookup_cb(enum storage_result res, const struct storage_account *acc, void *ctx)
{
	struct scramcache_op *op = ctx;
	op->sreq = NULL;
	if (res == STORAGE_OK) {
		enum scram_hash h = op->req->hash;
		bool has = h == SCRAM_SHA512   ? acc->has_sha512
		           : h == SCRAM_SHA256 ? acc->has_sha256
		                               : acc->has_sha1;
		if (has) {
			auth_backend_detail(op->req, "SCRAM keys kept from a password login");
			op_done(op, AUTH_OK,
			        h == SCRAM_SHA512   ? &acc->sha512
			        : h == SCRAM_SHA256 ? &acc->sha256
			                            : &acc->sha1);
			return;
		}
		res = STORAGE_NOT_FOUND;
	}
	if (res == STORAGE_NOT_FOUND) {
		auth_backend_detail(op->req, "no SCRAM keys kept (no password login within "
		                             "auth.scram_cache_ttl)");
		op_done(op, AUTH_NOT_SUPPORTED, NULL);
		return;
	}
	log_warning("host %s: %s: the kept SCRAM keys cannot be read (%s)", op->req->a->host, op->req->user,
	            storage_result_str(res));
	op_done(op, AUTH_TEMPFAIL, NULL);
}

void scramcache_lookup(struct auth_req *req, scramcache_cb *cb)
{
	struct auth *a = req->a;
	struct scramcache_op *op = op_new(req, cb);
	op->sreq = storage_scram_cache_get(a->storage, a->host, req->user, (int64_t)a->scram_cache_ttl,
	                                   lookup_cb, op);
}

/* ---- fill ------------------------------------------------------------------------ */

static void stored_cb(enum storage_result res, void *ctx)
{
	struct scramcache_op *op = ctx;
	struct auth *a = op->req->a;
	op->sreq = NULL;
	if (res == STORAGE_OK)
		log_info("host %s: %s: SCRAM keys kept for %.0f s from the password the %s method accepted "
		         "(auth.scram_cache_ttl)",
		         a->host, op->req->user, a->scram_cache_ttl, op->why);
	else
		log_warning("host %s: %s: SCRAM keys from the accepted password could not be stored (%s); "
		            "the next password login tries again",
		            a->host, op->req->user, storage_result_str(res));
	op_done(op, AUTH_OK, NULL);
}

static void dropped_cb(enum storage_result res, void *ctx);

uint32_t scramcache_drops(const struct auth *a, const char *user)
{
	return a->drops[hash_str(user) % AUTH_DROP_SLOTS];
}

/* Delete the kept keys of op's user (dropped_cb ends op). */
static void op_delete(struct scramcache_op *op)
{
	struct auth *a = op->req->a;
	a->drops[hash_str(op->req->user) % AUTH_DROP_SLOTS]++;
	op->deleting = true;
	op->sreq = storage_scram_cache_delete(a->storage, a->host, op->req->user, dropped_cb, op);
}

/* The job is freed when this returns (storage copies what it is given). */
static void derive_done(struct auth_derive *job, enum worker_status status, void *ctx)
{
	struct scramcache_op *op = ctx;
	op->job = NULL;
	struct auth *a = op->req->a;
	if (job->check) {
		/* a wrong password leaves the kept keys; a derivation that
		 * waited too long cannot tell: dropped, the safe side */
		bool keep = status == WORKER_DONE && !job->match;
		if (keep) {
			op_done(op, AUTH_OK, NULL);
			return;
		}
		op_delete(op);
		return;
	}
	if (status != WORKER_DONE || job->rc < 0) {
		if (status != WORKER_DONE)
			log_warning("host %s: %s: no SCRAM keys kept: the key derivation waited too long",
			            a->host, op->req->user);
		else
			log_info("host %s: %s: no SCRAM keys kept: SASLprep refuses the password", a->host,
			         op->req->user);
		op_done(op, AUTH_OK, NULL);
		return;
	}
	if (scramcache_drops(a, op->req->user) != op->req->drops_seen) {
		/* A password change or removal dropped the keys after this
		 * check started: the password may be the old one. */
		log_info("host %s: %s: no SCRAM keys kept: they were dropped while the password was "
		         "checked",
		         a->host, op->req->user);
		op_done(op, AUTH_OK, NULL);
		return;
	}
	struct storage_account acc = { 0 };
	acc.has_sha1 = acc.has_sha256 = acc.has_sha512 = true;
	acc.sha1 = job->sha1;
	acc.sha256 = job->sha256;
	acc.sha512 = job->sha512;
	int64_t expires = (int64_t)time(NULL) + (int64_t)a->scram_cache_ttl;
	/* storage copies the keys: job keeps (and wipes) its own. */
	op->sreq = storage_scram_cache_set(a->storage, a->host, op->req->user, &acc, expires, stored_cb, op);
	explicit_bzero(&acc, sizeof(acc));
}

/* Queue job for op on the compute group; false (job freed) when full. */
static bool derive_submit(struct scramcache_op *op, struct auth_derive *job)
{
	if (!auth_derive_submit(op->req->a, op->req->user, job, derive_done, op))
		return false;
	op->job = job;
	return true;
}

void scramcache_fill(struct auth_req *req, const char *method, scramcache_cb *cb)
{
	struct scramcache_op *op = op_new(req, cb);
	op->why = method;
	struct auth_derive *job = auth_derive_new(req->password, req->a->scram_iterations);
	job->want_sha1 = job->want_sha256 = job->want_sha512 = true;
	if (!derive_submit(op, job)) {
		/* The password answer stands; only the keys are not kept. */
		log_warning("host %s: %s: no SCRAM keys kept: the key derivation queue is full", req->a->host,
		            req->user);
		/* From a backend's reply (never inside a public call): the
		 * callback may run now. */
		op_done(op, AUTH_OK, NULL);
	}
}

/* ---- drop ------------------------------------------------------------------------- */

static void dropped_cb(enum storage_result res, void *ctx)
{
	struct scramcache_op *op = ctx;
	const char *host = op->req != NULL ? op->req->a->host : op->host;
	const char *user = op->req != NULL ? op->req->user : op->user;
	op->sreq = NULL;
	if (res == STORAGE_OK)
		log_info("host %s: %s: kept SCRAM keys dropped (%s)", host, user, op->why);
	else if (res != STORAGE_NOT_FOUND)
		log_warning("host %s: %s: kept SCRAM keys could not be dropped (%s): %s", host, user, op->why,
		            storage_result_str(res));
	if (op->req == NULL) {
		free(op->host);
		free(op->user);
		free(op);
		return;
	}
	op_done(op, AUTH_OK, NULL);
}

void scramcache_drop(struct auth_req *req, const char *why, scramcache_cb *cb)
{
	struct scramcache_op *op = op_new(req, cb);
	op->why = why;
	op_delete(op);
}

/* The kept set of a user whose password the method refused: drop it when
 * that password is the one it was made from (changed in the directory). */
static void kept_for_refused_cb(enum storage_result res, const struct storage_account *acc, void *ctx)
{
	struct scramcache_op *op = ctx;
	struct auth *a = op->req->a;
	op->sreq = NULL;
	if (res != STORAGE_OK || !acc->has_sha256) {
		if (res != STORAGE_OK && res != STORAGE_NOT_FOUND)
			log_warning("host %s: %s: the kept SCRAM keys cannot be read (%s)", a->host,
			            op->req->user, storage_result_str(res));
		op_done(op, AUTH_OK, NULL);
		return;
	}
	struct auth_derive *job = auth_derive_new(op->req->password, 0);
	job->check = true;
	job->hash = SCRAM_SHA256;
	job->check_iterations = acc->sha256.iterations;
	memcpy(job->expected, acc->sha256.stored_key, sizeof(job->expected));
	bool decoded = base64_decode(acc->sha256.salt_b64, strlen(acc->sha256.salt_b64), &job->salt,
	                             &job->salt_len) == 0;
	if (!decoded)
		auth_derive_free(job);
	if (decoded && derive_submit(op, job))
		return;
	/* Cannot tell (a malformed salt, a full queue): drop them, the
	 * safe side. */
	op_delete(op);
}

void scramcache_drop_refused(struct auth_req *req, scramcache_cb *cb)
{
	struct auth *a = req->a;
	struct scramcache_op *op = op_new(req, cb);
	op->why = "the method refused the password they were made from";
	op->sreq = storage_scram_cache_get(a->storage, a->host, req->user, (int64_t)a->scram_cache_ttl,
	                                   kept_for_refused_cb, op);
}

void scramcache_cancel(struct auth_req *req)
{
	struct scramcache_op *op = req->cache;
	if (op == NULL)
		return;
	req->cache = NULL;
	if (op->sreq != NULL && op->deleting) {
		/* The delete runs all the same; dropped_cb frees op. */
		op->req = NULL;
		op->cb = NULL;
		op->host = xstrdup(req->a->host);
		op->user = xstrdup(req->user);
		return;
	}
	if (op->sreq != NULL)
		storage_cancel(op->sreq);
	if (op->job != NULL)
		auth_derive_cancel(op->job); /* freed later, derive_done never runs */
	free(op);
}

/* ---- the sweep of expired keys ------------------------------------------------------ */

static void swept_cb(enum storage_result res, uint64_t count, void *ctx)
{
	struct auth *a = ctx;
	a->sweep_req = NULL;
	if (res == STORAGE_OK && count > 0)
		log_info("host %s: %llu expired set%s of kept SCRAM keys deleted", a->host,
		         (unsigned long long)count, count == 1 ? "" : "s");
	else if (res != STORAGE_OK)
		log_warning("host %s: expired SCRAM keys could not be deleted (%s); trying again later",
		            a->host, storage_result_str(res));
}

static void sweep_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct auth *a = w->data;
	if (a->sweep_req == NULL)
		a->sweep_req =
		        storage_scram_cache_expire(a->storage, a->host, (int64_t)time(NULL), swept_cb, a);
}

void scramcache_start(struct auth *a)
{
	double every = a->scram_cache_ttl < 60 ? 60 : a->scram_cache_ttl > 3600 ? 3600 : a->scram_cache_ttl;
	ev_timer_init(&a->sweep_timer, sweep_cb, 1, every);
	a->sweep_timer.data = a;
	ev_timer_start(a->loop, &a->sweep_timer);
	ev_unref(a->loop); /* the sweep alone keeps no loop running */
}

void scramcache_purge(struct auth *a)
{
	a->sweep_req = storage_scram_cache_expire(a->storage, a->host, INT64_MAX, swept_cb, a);
}

void scramcache_stop(struct auth *a)
{
	if (ev_is_active(&a->sweep_timer)) {
		ev_ref(a->loop);
		ev_timer_stop(a->loop, &a->sweep_timer);
	}
	if (a->sweep_req != NULL) {
		storage_cancel(a->sweep_req);
		a->sweep_req = NULL;
	}
}
