/*
 * SCRAM key derivation off the loop, for the internal method (new
 * credentials, password checks) and for the keys kept for ldap, pam and
 * external users (auth-scramcache.c): PBKDF2 with thousands of iterations
 * is too slow for the loop thread.
 *
 * Threads: auth_derive_submit, auth_derive_cancel and the owner's callback
 * run on the loop thread; derive_work runs on the compute group
 * (auth_compute_group) and reads and writes only its struct auth_derive.
 *
 * Invariants: one user's jobs go to one thread of the group (shard
 * user@host); a job's callback runs at most once, from the loop, never
 * after auth_derive_cancel and never inside auth_derive_submit; the job is
 * freed right after its callback (or its cancellation) with its password
 * copy, salt and keys wiped.
 */
#include "auth/auth-private.h"

struct auth_derive *auth_derive_new(const char *password, unsigned iterations)
{
	struct auth_derive *job = xcalloc(1, sizeof(*job));
	job->password = xstrdup(password);
	job->iterations = iterations;
	return job;
}

void auth_derive_free(struct auth_derive *job)
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

/* Fresh keys for hash h when *want: a failure unsets it and sets rc. */
static void derive_fresh(struct auth_derive *job, enum scram_hash h, bool *want,
                         struct scram_credentials *out)
{
	if (*want && scram_derive(h, job->password, NULL, 0, job->iterations, out) < 0) {
		*want = false;
		job->rc = -1;
	}
}

static void derive_work(void *arg, void *thread_state)
{
	struct auth_derive *job = arg;
	if (job->check) {
		if (job->checked) {
			job->match = true;
		} else {
			struct scram_credentials c = { 0 };
			job->rc = scram_derive(job->hash, job->password, job->salt, job->salt_len,
			                       job->check_iterations, &c);
			job->match = job->rc == 0 &&
			             secure_memeq(c.stored_key, job->expected, scram_hash_len(job->hash));
			scram_credentials_clear(&c);
		}
		if (!job->match)
			return;
	}
	derive_fresh(job, SCRAM_SHA1, &job->want_sha1, &job->sha1);
	derive_fresh(job, SCRAM_SHA256, &job->want_sha256, &job->sha256);
	derive_fresh(job, SCRAM_SHA512, &job->want_sha512, &job->sha512);
}

static void derive_done(void *arg, enum worker_status status)
{
	struct auth_derive *job = arg;
	job->wj = NULL;
	if (status != WORKER_CANCELLED && job->cb != NULL)
		job->cb(job, status, job->ctx);
	auth_derive_free(job);
}

bool auth_derive_submit(struct auth *a, const char *user, struct auth_derive *job, auth_derive_cb *cb,
                        void *ctx)
{
	job->cb = cb;
	job->ctx = ctx;
	char *key = xasprintf("%s@%s", user, a->host);
	uint32_t shard = hash_str(key);
	free(key);
	job->wj = worker_submit(auth_compute_group(a->loop), shard, derive_work, derive_done, job,
	                        AUTH_COMPUTE_TIMEOUT);
	if (job->wj != NULL)
		return true;
	auth_derive_free(job);
	return false;
}

void auth_derive_cancel(struct auth_derive *job)
{
	job->cb = NULL; /* derive_done only frees it */
	job->ctx = NULL;
	worker_cancel(job->wj);
}
