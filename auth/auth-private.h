/*
 * What an auth backend implements.  Only auth.c, the backends
 * (auth-internal.c, auth-ldap.c, auth-pam.c, auth-external.c,
 * auth-anonymous.c), the kept SCRAM keys (auth-scramcache.c), the key
 * derivation (auth-derive.c) and the process pool (procpool.c) include
 * this.
 * Loop thread only.
 *
 * A host's struct auth holds a chain of backends (auth.methods, in order).
 * auth.c walks the chain for each request and decides the final answer;
 * a backend answers one question for one request:
 *   - its vfunc starts the work and returns a handle (struct auth_breq,
 *     the backend's own type), or NULL after auth_backend_reply_later();
 *   - later, from the loop, it calls auth_backend_reply() exactly once,
 *     unless auth.c called its cancel first (then it never replies);
 *   - a NULL vfunc means "this backend cannot do that" (AUTH_NOT_SUPPORTED).
 * A backend that cannot reach its source answers AUTH_TEMPFAIL, never
 * AUTH_NO_USER or AUTH_BAD_PASSWORD.
 */
#ifndef PARLEY_AUTH_PRIVATE_H
#define PARLEY_AUTH_PRIVATE_H

#include "auth/auth.h"
#include "lib/worker.h"

enum auth_op {
	AUTH_OP_CHECK_PASSWORD,
	AUTH_OP_GET_SCRAM,
	AUTH_OP_USER_EXISTS,
	AUTH_OP_CREATE_USER,
	AUTH_OP_SET_PASSWORD,
	AUTH_OP_REMOVE_USER,
};

struct auth_breq; /* a backend's pending operation */

/* One request of the auth interface, as backends see it. */
struct auth_req {
	struct auth *a;
	enum auth_op op;
	char *user;           /* prepared local part */
	char *password;       /* check/create/set_password; wiped when freed */
	enum scram_hash hash; /* get_scram */

	/* auth.c's own state */
	auth_cb *cb;
	auth_scram_cb *scram_cb;
	void *ctx;
	size_t next_backend;      /* index of the next backend to ask */
	struct auth_backend *cur; /* the backend working on it, or NULL */
	struct auth_breq *breq;   /* its handle */
	unsigned seen;            /* bit (1 << result) for every answer so far */
	bool tried;               /* some backend was asked */
	/* create_user, set_password, remove_user on a chain of several
	 * backends: op is AUTH_OP_USER_EXISTS while the chain looks for the
	 * user (auth.c), then_op the operation that follows */
	bool looking_up;
	enum auth_op then_op;
	const char *unsure; /* the lookup: a method that cannot tell, or NULL */
	bool starting;      /* inside the public call that created it */
	bool answering;     /* inside its callback (auth_cancel is a no-op) */
	bool deferred, deferred_final;
	enum auth_result deferred_res;
	struct auth_req *prev, *next; /* the host's live requests */
	struct auth_req *defer_next;
	size_t end_backend;      /* ask backends before this index only */
	auth_probe_cb *probe_cb; /* auth_probe: the answer with its detail */
	char *detail;            /* why, from the backend that answered (or NULL) */
	/* auth.scram_cache_ttl (auth-scramcache.c) */
	bool cached_answer;          /* the backend answered from its own cache */
	bool fill_cache;             /* check_password: keep keys before AUTH_OK */
	bool cache_done;             /* finish: the cache work is done */
	const char *answered_by;     /* the method that accepted the password */
	enum auth_result cache_res;  /* the answer waiting for the cache work */
	struct scramcache_op *cache; /* its pending operation, or NULL */
	bool kept_keys;              /* get_scram: AUTH_OK from the kept keys */
	uint32_t drops_seen;         /* scramcache_drops(a, user) when it started */
};

/* One operation of a backend for req (see the top of this file). */
typedef struct auth_breq *auth_backend_op_fn(void *state, struct auth_req *req);

struct auth_vfuncs {
	const char *name; /* the auth.methods entry: "internal" */
	/* Set up the backend for host a (a->host, a->storage, a->loop are set). */
	int (*init)(struct auth *a, void **state_r, char **error_r);
	void (*deinit)(void *state);
	bool (*can_scram)(void *state);
	bool (*can_plain)(void *state);
	/* Its users may get SCRAM keys kept from their password logins
	 * (auth.scram_cache_ttl): ldap, pam, external. */
	bool scram_cacheable;

	auth_backend_op_fn *check_password;
	/* Reply with the credentials for req->hash (AUTH_NOT_SUPPORTED when the
	 * user has none for that hash); cred need only live during the reply. */
	auth_backend_op_fn *get_scram;
	auth_backend_op_fn *user_exists;
	auth_backend_op_fn *create_user;
	auth_backend_op_fn *set_password;
	auth_backend_op_fn *remove_user;
	/* Stop the work of b; its reply must never come.  Frees b (now or
	 * when its workers finish). */
	void (*cancel)(struct auth_breq *b);
	/* Optional: lines about the backend's state for parleyctl status. */
	void (*status)(void *state, struct buf *out);
};

struct auth_backend {
	const struct auth_vfuncs *v;
	void *state;
	/* Its answers to login questions, by result: [0] check_password,
	 * [1] get_scram (for /metrics). */
	uint64_t login_answers[2][AUTH_ERROR + 1];
};

struct auth_limit;

#define AUTH_DROP_SLOTS 256

struct auth {
	struct ev_loop *loop;
	char *host;
	const struct auth_config *cfg; /* the host's auth section: valid in init only */
	bool store_plain;              /* auth.store_plain */
	bool reveal_missing_keys;      /* auth.reveal_missing_scram_keys */
	double scram_cache_ttl;        /* auth.scram_cache_ttl; 0: off (or no method to serve) */
	ev_timer sweep_timer;          /* deletes expired kept keys */
	/* Deletes of kept keys started, by hash_str(user) % AUTH_DROP_SLOTS:
	 * a fill skips its store when its user's count moved since its
	 * password check started (scramcache_drops). */
	uint32_t drops[AUTH_DROP_SLOTS];
	struct storage_req *sweep_req;
	unsigned max_failures_ip, max_failures_user;
	double failure_window;
	struct storage *storage;
	unsigned scram_iterations;          /* for new credentials */
	const struct ldap_config *ldap_cfg; /* the host's auth.ldap (valid during init) */
	struct auth_backend *backends;
	size_t nbackends;
	struct auth_req *reqs; /* live requests */
	struct auth_req *defer_head, *defer_tail;
	ev_timer defer_timer;
	bool freeing;
	struct auth_limit *limit_ip, *limit_user; /* failed-login counters */
};

/* The backend's answer for req (from the loop, never inside its vfunc). */
void auth_backend_reply(struct auth_req *req, enum auth_result res, const struct scram_credentials *cred);
/* The backend knows the answer at once (e.g. its queue is full): auth.c
 * delivers it from the loop; the vfunc then returns NULL. */
void auth_backend_reply_later(struct auth_req *req, enum auth_result res);

/* Why the answer is what it is, for logs and parleyctl auth-test (e.g.
 * "timeout after 5 s"); call before auth_backend_reply. */
void auth_backend_detail(struct auth_req *req, const char *fmt, ...) ATTR_PRINTF(2, 3);

/* ---- SCRAM keys kept for ldap, pam and external users (auth-scramcache.c) ---- */
struct scramcache_op;
/* The end of a cache operation for req: lookup gives AUTH_OK with cred,
 * AUTH_NOT_SUPPORTED or AUTH_TEMPFAIL; fill and drop always AUTH_OK (a
 * failure is logged). */
typedef void scramcache_cb(struct auth_req *req, enum auth_result res, const struct scram_credentials *cred);
/* Whether the host keeps such keys (scram_cache_ttl set, storage there). */
bool scramcache_enabled(const struct auth *a);
/* The kept keys of req->user for req->hash. */
void scramcache_lookup(struct auth_req *req, scramcache_cb *cb);
/* Keep keys derived from req->password, which method accepted.  cb may run
 * inside the call (a full compute queue): call it from a reply only. */
void scramcache_fill(struct auth_req *req, const char *method, scramcache_cb *cb);
/* Delete req->user's kept keys; why is for the log. */
void scramcache_drop(struct auth_req *req, const char *why, scramcache_cb *cb);
/* The method refused req->password: delete the kept keys if they were
 * made from it (derived with their salt and compared on the compute
 * group), keep them for any other password. */
void scramcache_drop_refused(struct auth_req *req, scramcache_cb *cb);
/* How many deletes of user's kept keys (or of a user sharing its slot)
 * were started on host a: a fill whose check started before one of them
 * would store keys from a password changed or removed meanwhile. */
uint32_t scramcache_drops(const struct auth *a, const char *user);
/* Stop req's cache operation, if any: its callback never runs.  A delete
 * of kept keys already queued still runs (detached from req). */
void scramcache_cancel(struct auth_req *req);
/* The periodic sweep of expired keys. */
void scramcache_start(struct auth *a);
void scramcache_stop(struct auth *a);
/* A host that keeps no such keys (scram_cache_ttl 0) deletes the sets it
 * kept before, once, at start (scramcache_stop cancels it). */
void scramcache_purge(struct auth *a);

/* Seconds a key derivation may wait in the compute queue. */
#define AUTH_COMPUTE_TIMEOUT 10.0

/* ---- SCRAM key derivation on the compute group (auth-derive.c) ---- */
struct auth_derive;
/* The end of a derivation, on the loop: status WORKER_DONE (the work ran:
 * read the results) or WORKER_EXPIRED (it waited more than
 * AUTH_COMPUTE_TIMEOUT and did not run); never WORKER_CANCELLED.  The job
 * is freed when cb returns: copy (storage does) what must outlive it. */
typedef void auth_derive_cb(struct auth_derive *job, enum worker_status status, void *ctx);
/* One derivation of SCRAM keys from a password.  The owner sets the
 * inputs, the compute group fills the results:
 * - when check is set, first whether the password gives StoredKey
 *   expected for hash with salt and check_iterations (match; checked: it
 *   is known to be right, match without deriving); a mismatch ends the job;
 * - then fresh keys (new random salt, iterations) for each hash whose
 *   want_ flag is set; one that cannot be derived (SASLprep refuses the
 *   password) has its flag unset and makes rc -1. */
struct auth_derive {
	char *password; /* a copy, wiped when the job is freed */
	bool check, checked;
	enum scram_hash hash;
	unsigned char *salt; /* malloc'd, freed with the job */
	size_t salt_len;
	unsigned check_iterations;
	unsigned char expected[SCRAM_MAX_HASH];
	bool want_sha1, want_sha256, want_sha512;
	unsigned iterations;
	/* results */
	int rc;
	bool match;
	struct scram_credentials sha1, sha256, sha512;
	/* auth-derive.c's own */
	auth_derive_cb *cb;
	void *ctx;
	struct worker_job *wj;
};
/* A job for (a copy of) password that asks nothing yet; iterations for
 * fresh keys. */
struct auth_derive *auth_derive_new(const char *password, unsigned iterations);
/* Free a job that was never submitted (password, salt and keys wiped). */
void auth_derive_free(struct auth_derive *job);
/* Run job for user of host a on the compute group (one user's jobs keep
 * their order on one thread); cb(job, status, ctx) runs later from the
 * loop.  false when the compute queue is full: job is freed and cb never
 * runs (the caller may answer at once). */
bool auth_derive_submit(struct auth *a, const char *user, struct auth_derive *job, auth_derive_cb *cb,
                        void *ctx);
/* Stop a submitted job whose callback has not run: it never runs, the job
 * is freed later, from the loop. */
void auth_derive_cancel(struct auth_derive *job);

extern const struct auth_vfuncs auth_internal_vfuncs;
#ifdef HAVE_BACKEND_LDAP
extern const struct auth_vfuncs auth_ldap_vfuncs;
#endif
extern const struct auth_vfuncs auth_external_vfuncs;
extern const struct auth_vfuncs auth_anonymous_vfuncs;
#ifdef HAVE_BACKEND_PAM
extern const struct auth_vfuncs auth_pam_vfuncs;
#endif

#endif
