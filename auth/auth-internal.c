/*
 * The "internal" auth backend: accounts with SCRAM-SHA-1, SCRAM-SHA-256 and
 * SCRAM-SHA-512 credentials in the host's storage (users table).
 *
 * Threads: everything here runs on the loop thread except derive_work,
 * which runs on the compute worker group (auth_compute_group): PBKDF2 with
 * thousands of iterations is too slow for the loop.  derive_work reads and
 * writes only its struct derive_job (password copy, salt, results).
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
 *   and its compute job, if any, is told so (derive_done then only frees).
 */
#include "auth/auth-private.h"
#include "lib/log.h"
#include "lib/worker.h"

#include <time.h>

struct internal {
	struct auth *a;
};

enum derive_kind {
	DERIVE_NEW,   /* fresh credentials for both hashes */
	DERIVE_CHECK, /* derive with stored parameters, compare StoredKey */
};

struct derive_job {
	struct internal_op *op; /* valid only when done sees WORKER_DONE */
	enum derive_kind kind;
	char *password;
	unsigned iterations;
	/* DERIVE_CHECK */
	enum scram_hash hash;
	unsigned char *salt;
	size_t salt_len;
	unsigned char expected[SCRAM_MAX_HASH];
	bool checked; /* the password was checked already (a clear one) */
	/* the hashes the account has no credentials for: derived (fresh salt,
	 * new_iterations) once the password matched */
	bool add_sha1, add_sha256, add_sha512;
	unsigned new_iterations;
	/* results */
	int rc;
	bool match;
	struct scram_credentials sha1, sha256, sha512;
};

struct internal_op {
	struct internal *in;
	struct auth_req *req;
	struct storage_req *sreq;
	struct worker_job *wj;
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

static void derive_job_free(struct derive_job *job)
{
	if (job->password != NULL) {
		explicit_bzero(job->password, strlen(job->password));
		free(job->password);
	}
	free(job->salt);
	scram_credentials_clear(&job->sha1);
	scram_credentials_clear(&job->sha256);
	scram_credentials_clear(&job->sha512);
	explicit_bzero(job, sizeof(*job));
	free(job);
}

static void derive_work(void *arg, void *thread_state)
{
	struct derive_job *job = arg;
	if (job->kind == DERIVE_NEW) {
		job->rc = scram_derive(SCRAM_SHA1, job->password, NULL, 0, job->iterations, &job->sha1);
		if (job->rc == 0)
			job->rc = scram_derive(SCRAM_SHA256, job->password, NULL, 0, job->iterations,
			                       &job->sha256);
		if (job->rc == 0)
			job->rc = scram_derive(SCRAM_SHA512, job->password, NULL, 0, job->iterations,
			                       &job->sha512);
		return;
	}
	if (job->checked) {
		job->match = true;
	} else {
		struct scram_credentials c = { 0 };
		job->rc =
		        scram_derive(job->hash, job->password, job->salt, job->salt_len, job->iterations, &c);
		job->match =
		        job->rc == 0 && secure_memeq(c.stored_key, job->expected, scram_hash_len(job->hash));
		scram_credentials_clear(&c);
	}
	if (!job->match)
		return;
	/* The password is known to be right: the keys the account lacks.  A
	 * failure (SASLprep refuses the password) only leaves them out. */
	const char *pw = job->password;
	unsigned it = job->new_iterations;
	if (job->add_sha1 && scram_derive(SCRAM_SHA1, pw, NULL, 0, it, &job->sha1) < 0)
		job->add_sha1 = false;
	if (job->add_sha256 && scram_derive(SCRAM_SHA256, pw, NULL, 0, it, &job->sha256) < 0)
		job->add_sha256 = false;
	if (job->add_sha512 && scram_derive(SCRAM_SHA512, pw, NULL, 0, it, &job->sha512) < 0)
		job->add_sha512 = false;
}

static void derive_done(void *arg, enum worker_status status);

/* Queue a derivation for op; false when the compute queue is full. */
static bool derive_submit(struct internal_op *op, struct derive_job *job)
{
	struct auth *a = op->in->a;
	job->op = op;
	char *key = xasprintf("%s@%s", op->req->user, a->host);
	uint32_t shard = hash_str(key);
	free(key);
	op->wj = worker_submit(auth_compute_group(a->loop), shard, derive_work, derive_done, job,
	                       AUTH_COMPUTE_TIMEOUT);
	if (op->wj == NULL) {
		log_warning("host %s: the key derivation queue is full; %s gets a temporary failure", a->host,
		            op->req->user);
		derive_job_free(job);
		return false;
	}
	return true;
}

static struct derive_job *derive_new_job(struct internal_op *op)
{
	struct derive_job *job = xcalloc(1, sizeof(*job));
	job->kind = DERIVE_NEW;
	job->password = xstrdup(op->req->password);
	job->iterations = op->in->a->scram_iterations;
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
static void store_new_credentials(struct internal_op *op, struct derive_job *job)
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
static void store_missing_credentials(struct internal_op *op, struct derive_job *job)
{
	struct auth *a = op->in->a;
	struct storage_account acc = { 0 };
	acc.has_sha1 = job->add_sha1;
	acc.has_sha256 = job->add_sha256;
	acc.has_sha512 = job->add_sha512;
	acc.sha1 = job->sha1;
	acc.sha256 = job->sha256;
	acc.sha512 = job->sha512;
	/* storage copies the account: job keeps ownership of the strings. */
	op->sreq = storage_account_add_credentials(a->storage, a->host, op->req->user, &acc, added_cb, op);
	explicit_bzero(&acc, sizeof(acc));
}

static void derive_done(void *arg, enum worker_status status)
{
	struct derive_job *job = arg;
	if (status == WORKER_CANCELLED) {
		derive_job_free(job);
		return;
	}
	struct internal_op *op = job->op;
	op->wj = NULL;
	if (status == WORKER_EXPIRED) {
		log_warning("host %s: key derivation for %s waited too long", op->in->a->host, op->req->user);
		derive_job_free(job);
		op_reply(op, AUTH_TEMPFAIL, NULL);
		return;
	}
	if (job->kind == DERIVE_CHECK) {
		enum auth_result res = job->match ? AUTH_OK : AUTH_BAD_PASSWORD;
		if (res == AUTH_OK && (job->add_sha1 || job->add_sha256 || job->add_sha512))
			store_missing_credentials(op, job);
		else
			op_reply(op, res, NULL);
		derive_job_free(job);
		return;
	}
	if (job->rc < 0) {
		/* SASLprep refused the password: it cannot be used. */
		derive_job_free(job);
		op_reply(op, AUTH_BAD_PASSWORD, NULL);
		return;
	}
	store_new_credentials(op, job);
	derive_job_free(job);
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
	struct derive_job *job = xcalloc(1, sizeof(*job));
	job->kind = DERIVE_CHECK;
	job->add_sha1 = add_sha1;
	job->add_sha256 = add_sha256;
	job->add_sha512 = add_sha512;
	job->new_iterations = op->in->a->scram_iterations;
	if (acc->plain != NULL) {
		/* checked above; only the missing keys are derived */
		job->checked = true;
		job->password = xstrdup(pw);
		if (!derive_submit(op, job))
			op_reply(op, AUTH_OK, NULL);
		return;
	}
	job->hash = c->hash;
	job->iterations = c->iterations;
	memcpy(job->expected, c->stored_key, sizeof(job->expected));
	if (base64_decode(c->salt_b64, strlen(c->salt_b64), &job->salt, &job->salt_len) < 0) {
		log_error("host %s: user %s has a malformed SCRAM salt", op->in->a->host, op->req->user);
		derive_job_free(job);
		op_reply(op, AUTH_ERROR, NULL);
		return;
	}
	job->password = xstrdup(pw);
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
	if (op->wj != NULL)
		worker_cancel(op->wj); /* derive_done frees the job */
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
