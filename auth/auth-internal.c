/*
 * The "internal" auth backend: accounts with SCRAM-SHA-1, SCRAM-SHA-256 and
 * SCRAM-SHA-512 credentials in the host's storage (users table).
 *
 * Threads: everything here runs on the loop thread; key derivation (PBKDF2
 * with thousands of iterations, too slow for the loop) runs on the compute
 * group through auth-derive.c.
 *
 * Invariants:
 * - creating an account or setting a password derives fresh credentials
 *   (new random salts, the host's iteration count) for both hashes, then
 *   writes them; the clear password is stored only with auth.store_plain
 *   (legacy migrations, off by default, a warning at start);
 * - a PLAIN check derives with the stored salt and iterations and compares
 *   StoredKey in constant time (SHA-512, else SHA-256, else SHA-1); an
 *   account that has a clear password (imported) is checked against it;
 * - a PLAIN check that succeeds for an account lacking the keys of some
 *   hash (imported with SCRAM-SHA-1 keys only, made before schema 11)
 *   derives them from the password and adds them (only where still
 *   missing: storage_account_add_credentials) before AUTH_OK, so that
 *   every SCRAM mechanism works for it from then on;
 * - storage's STORAGE_TEMPFAIL is always AUTH_TEMPFAIL;
 * - passwords and keys are wiped when their objects are freed;
 * - a cancelled operation never replies: its storage request is cancelled
 *   and its compute job, if any, is cancelled (derive_done never runs).
 */
#include "auth/auth-private.h"
#include "lib/log.h"

#include <time.h>

struct internal {
	struct auth *a;
};

struct internal_op {
	struct internal *in;
	struct auth_req *req;
	struct storage_req *sreq;
	/* its key derivation: fresh credentials for all hashes (create_user,
	 * set_password), or a check (check_password) that, once the password
	 * matched, derives those the account lacks (want_*) */
	struct auth_derive *job;
};

#define OP(b) ((struct internal_op *)(void *)(b))
#define BREQ(op) ((struct auth_breq *)(void *)(op))

static enum auth_result map_storage(enum storage_result r)
{
	switch (r) {
	case STORAGE_OK: return AUTH_OK;
	case STORAGE_NOT_FOUND: return AUTH_NO_USER;
	case STORAGE_EXISTS: return AUTH_EXISTS;
	case STORAGE_TEMPFAIL: return AUTH_TEMPFAIL;
	case STORAGE_ERROR: return AUTH_ERROR;
	case STORAGE_FULL: return AUTH_ERROR; /* a quota: not an auth outcome */
	}
	return AUTH_ERROR;
}

static struct internal_op *op_new(struct internal *in, struct auth_req *req)
{
	struct internal_op *op = xcalloc(1, sizeof(*op));
	op->in = in;
	op->req = req;
	return op;
}

/* Answer and free op.  cred only for get_scram. */
static void op_reply(struct internal_op *op, enum auth_result res, const struct scram_credentials *cred)
{
	struct auth_req *req = op->req;
	free(op);
	auth_backend_reply(req, res, cred);
}

/* ---- key derivation on the compute group ------------------------------------ */

static void derive_done(struct auth_derive *job, enum worker_status status, void *ctx);

/* Queue a derivation for op; false (job freed) when the compute queue is full. */
static bool derive_submit(struct internal_op *op, struct auth_derive *job)
{
	struct auth *a = op->in->a;
	if (!auth_derive_submit(a, op->req->user, job, derive_done, op)) {
		log_warning("host %s: the key derivation queue is full; %s gets a temporary failure", a->host,
		            op->req->user);
		return false;
	}
	op->job = job;
	return true;
}

static struct auth_derive *derive_new_job(struct internal_op *op)
{
	struct auth_derive *job = auth_derive_new(op->req->password, op->in->a->scram_iterations);
	job->want_sha1 = job->want_sha256 = job->want_sha512 = true;
	return job;
}

/* ---- storage answers ------------------------------------------------------------ */

static void written_cb(enum storage_result res, void *ctx)
{
	struct internal_op *op = ctx;
	op->sreq = NULL;
	op_reply(op, map_storage(res), NULL);
}

/* Fresh credentials are ready: write them. */
static void store_new_credentials(struct internal_op *op, const struct auth_derive *job)
{
	struct auth *a = op->in->a;
	struct storage_account acc = { 0 };
	acc.has_sha1 = acc.has_sha256 = acc.has_sha512 = true;
	acc.sha1 = job->sha1;
	acc.sha256 = job->sha256;
	acc.sha512 = job->sha512;
	acc.created = (int64_t)time(NULL);
	/* A new password supersedes an imported one; the clear password is
	 * kept only when auth.store_plain asks for it (legacy migrations). */
	acc.plain = a->store_plain ? job->password : NULL;
	/* storage copies the account: job keeps ownership of the strings. */
	if (op->req->op == AUTH_OP_CREATE_USER)
		op->sreq = storage_account_create(a->storage, a->host, op->req->user, &acc, written_cb, op);
	else
		op->sreq = storage_account_update(a->storage, a->host, op->req->user, &acc, written_cb, op);
	explicit_bzero(&acc, sizeof(acc));
}

static void added_cb(enum storage_result res, void *ctx)
{
	struct internal_op *op = ctx;
	op->sreq = NULL;
	if (res == STORAGE_OK)
		log_info("host %s: %s: the SCRAM credentials the account lacked were added from the "
		         "password of its login",
		         op->in->a->host, op->req->user);
	else
		log_warning("host %s: %s: the SCRAM credentials the account lacks could not be added (%s); "
		            "the next password login tries again",
		            op->in->a->host, op->req->user, storage_result_str(res));
	/* The password was right whatever the write did. */
	op_reply(op, AUTH_OK, NULL);
}

/* A password login succeeded for an account without credentials for some
 * hash (imported with SCRAM-SHA-1 keys only, or made before schema 11):
 * store what the derivation added, then answer AUTH_OK. */
static void store_missing_credentials(struct internal_op *op, const struct auth_derive *job)
{
	struct auth *a = op->in->a;
	struct storage_account acc = { 0 };
	acc.has_sha1 = job->want_sha1;
	acc.has_sha256 = job->want_sha256;
	acc.has_sha512 = job->want_sha512;
	acc.sha1 = job->sha1;
	acc.sha256 = job->sha256;
	acc.sha512 = job->sha512;
	/* storage copies the account: job keeps ownership of the strings. */
	op->sreq = storage_account_add_credentials(a->storage, a->host, op->req->user, &acc, added_cb, op);
	explicit_bzero(&acc, sizeof(acc));
}

/* The job is freed when this returns (storage copies what it is given). */
static void derive_done(struct auth_derive *job, enum worker_status status, void *ctx)
{
	struct internal_op *op = ctx;
	op->job = NULL;
	if (status == WORKER_EXPIRED) {
		log_warning("host %s: key derivation for %s waited too long", op->in->a->host, op->req->user);
		op_reply(op, AUTH_TEMPFAIL, NULL);
		return;
	}
	if (job->check) {
		enum auth_result res = job->match ? AUTH_OK : AUTH_BAD_PASSWORD;
		if (res == AUTH_OK && (job->want_sha1 || job->want_sha256 || job->want_sha512))
			store_missing_credentials(op, job);
		else
			op_reply(op, res, NULL);
		return;
	}
	if (job->rc < 0) {
		/* SASLprep refused the password: it cannot be used. */
		op_reply(op, AUTH_BAD_PASSWORD, NULL);
		return;
	}
	store_new_credentials(op, job);
}

/* Start a check of req->password against the account's credentials. */
static void check_account(struct internal_op *op, const struct storage_account *acc)
{
	const char *pw = op->req->password;
	bool add_sha1 = !acc->has_sha1 || acc->sha1.salt_b64 == NULL;
	bool add_sha256 = !acc->has_sha256 || acc->sha256.salt_b64 == NULL;
	bool add_sha512 = !acc->has_sha512 || acc->sha512.salt_b64 == NULL;
	bool add = add_sha1 || add_sha256 || add_sha512;
	if (acc->plain != NULL) {
		size_t a = strlen(acc->plain), b = strlen(pw);
		bool ok = a == b && secure_memeq(acc->plain, pw, a);
		if (!ok || !add) {
			op_reply(op, ok ? AUTH_OK : AUTH_BAD_PASSWORD, NULL);
			return;
		}
	}
	const struct scram_credentials *c = acc->has_sha512   ? &acc->sha512
	                                    : acc->has_sha256 ? &acc->sha256
	                                    : acc->has_sha1   ? &acc->sha1
	                                                      : NULL;
	if (acc->plain == NULL && (c == NULL || c->salt_b64 == NULL)) {
		op_reply(op, AUTH_BAD_PASSWORD, NULL); /* an account nobody can log in to */
		return;
	}
	/* the hashes the account lacks: derived (fresh salt, the host's
	 * iterations) once the password matched */
	struct auth_derive *job = auth_derive_new(pw, op->in->a->scram_iterations);
	job->check = true;
	job->want_sha1 = add_sha1;
	job->want_sha256 = add_sha256;
	job->want_sha512 = add_sha512;
	if (acc->plain != NULL) {
		/* checked above; only the missing keys are derived */
		job->checked = true;
		if (!derive_submit(op, job))
			op_reply(op, AUTH_OK, NULL);
		return;
	}
	job->hash = c->hash;
	job->check_iterations = c->iterations;
	memcpy(job->expected, c->stored_key, sizeof(job->expected));
	if (base64_decode(c->salt_b64, strlen(c->salt_b64), &job->salt, &job->salt_len) < 0) {
		log_error("host %s: user %s has a malformed SCRAM salt", op->in->a->host, op->req->user);
		auth_derive_free(job);
		op_reply(op, AUTH_ERROR, NULL);
		return;
	}
	/* From a storage callback: a full queue can be answered at once. */
	if (!derive_submit(op, job))
		op_reply(op, AUTH_TEMPFAIL, NULL);
}

static void account_cb(enum storage_result res, const struct storage_account *acc, void *ctx)
{
	struct internal_op *op = ctx;
	op->sreq = NULL;
	if (res != STORAGE_OK) {
		op_reply(op, map_storage(res), NULL);
		return;
	}
	switch (op->req->op) {
	case AUTH_OP_CHECK_PASSWORD: check_account(op, acc); break;
	case AUTH_OP_GET_SCRAM: {
		enum scram_hash h = op->req->hash;
		bool has = h == SCRAM_SHA512   ? acc->has_sha512
		           : h == SCRAM_SHA256 ? acc->has_sha256
		                               : acc->has_sha1;
		if (!has)
			op_reply(op, AUTH_NOT_SUPPORTED, NULL);
		else
			op_reply(op, AUTH_OK,
			         h == SCRAM_SHA512   ? &acc->sha512
			         : h == SCRAM_SHA256 ? &acc->sha256
			                             : &acc->sha1);
		break;
	}
	default:
		op_reply(op, AUTH_OK, NULL); /* user_exists */
		break;
	}
}

/* ---- vfuncs ------------------------------------------------------------------- */

static int internal_init(struct auth *a, void **state_r, char **error_r)
{
	if (a->storage == NULL) {
		*error_r = xstrdup("the internal method keeps accounts in the host's storage, and "
		                   "the host has none");
		return -1;
	}
	if (a->store_plain)
		log_warning("host %s: auth.store_plain is on: new and changed passwords are stored in the "
		            "clear next to their SCRAM keys; turn it off once the migration is done",
		            a->host);
	struct internal *in = xcalloc(1, sizeof(*in));
	in->a = a;
	*state_r = in;
	return 0;
}

static void internal_deinit(void *state)
{
	free(state);
}

static bool internal_can(void *state)
{
	return true;
}

static struct auth_breq *internal_lookup(void *state, struct auth_req *req)
{
	struct internal *in = state;
	struct internal_op *op = op_new(in, req);
	op->sreq = storage_account_get(in->a->storage, in->a->host, req->user, account_cb, op);
	return BREQ(op);
}

static struct auth_breq *internal_derive_then_store(void *state, struct auth_req *req)
{
	struct internal *in = state;
	struct internal_op *op = op_new(in, req);
	if (!derive_submit(op, derive_new_job(op))) {
		free(op);
		auth_backend_reply_later(req, AUTH_TEMPFAIL);
		return NULL;
	}
	return BREQ(op);
}

static struct auth_breq *internal_remove_user(void *state, struct auth_req *req)
{
	struct internal *in = state;
	struct internal_op *op = op_new(in, req);
	op->sreq = storage_account_remove(in->a->storage, in->a->host, req->user, written_cb, op);
	return BREQ(op);
}

static void internal_cancel(struct auth_breq *b)
{
	struct internal_op *op = OP(b);
	if (op->sreq != NULL)
		storage_cancel(op->sreq);
	if (op->job != NULL)
		auth_derive_cancel(op->job); /* freed later, derive_done never runs */
	free(op);
}

const struct auth_vfuncs auth_internal_vfuncs = {
	.name = "internal",
	.init = internal_init,
	.deinit = internal_deinit,
	.can_scram = internal_can,
	.can_plain = internal_can,
	.check_password = internal_lookup,
	.get_scram = internal_lookup,
	.user_exists = internal_lookup,
	.create_user = internal_derive_then_store,
	.set_password = internal_derive_then_store,
	.remove_user = internal_remove_user,
	.cancel = internal_cancel,
};
