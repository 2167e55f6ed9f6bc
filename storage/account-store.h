/*
 * Storage of accounts: one job struct per operation and what a backend
 * implements for them (struct account_store_vfuncs).  The accounts of a host:
 * SCRAM credentials (and a plain password where the host keeps one).
 *
 * Only storage/ includes this; the public functions and their contracts
 * are in storage.h, the generic job machinery in storage-private.h.  A
 * job's inputs are copies in its pool; its work fills the results (in the
 * pool too) and returns the result.  Each vfunc runs where the store runs
 * jobs (a worker thread, or the loop for a store without workers) and gets
 * that place's connection state as conn.
 */
#ifndef PARLEY_STORAGE_ACCOUNT_STORE_H
#define PARLEY_STORAGE_ACCOUNT_STORE_H

#include "storage/storage-private.h"

struct account_get_job {
	struct storage_req base;
	storage_account_cb *cb;
	int64_t ttl; /* scram_cache_get: a set expiring after now + ttl is expired */
	/* results */
	struct storage_account acc; /* salts in pool; wiped on free */
};

struct account_create_job {
	struct storage_req base;
	storage_done_cb *cb;
	struct storage_account acc; /* strings in pool; wiped on free */
};

/* Whether the stored account have is want itself: the create of want ran
 * before (an earlier try whose answer was lost).  Each new account's
 * salts are drawn at random, so the same salts and keys (and creation
 * time and clear password) are want's own; an account with no SCRAM
 * salt has nothing random and is never taken for another's.  (An import
 * brings the salts of its file: two imports of one file could match in
 * the same second, but an import looks for the account before it
 * creates it.)  Any thread. */
bool storage_account_is_same(const struct storage_account *have, const struct storage_account *want);

/* account_update, account_add_credentials and scram_cache_set (the same
 * inputs) */
struct account_update_job {
	struct storage_req base;
	storage_done_cb *cb;
	struct storage_account acc; /* strings in pool; wiped on free */
	int64_t expires;            /* scram_cache_set: unix time */
};

struct account_remove_job {
	struct storage_req base;
	storage_done_cb *cb;
};

/* account_list, and account_list_page (paged: limit > 0) */
struct account_list_job {
	struct storage_req base;
	storage_list_cb *cb;
	const char *after; /* in pool; NULL: from the first name */
	const char *match; /* in pool; NULL: every name, else those containing it */
	unsigned limit;    /* 0: every name */
	/* results */
	struct strlist names; /* in pool */
};

struct account_count_job {
	struct storage_req base;
	storage_count_cb *cb;
	/* results */
	uint64_t count;
};

struct fast_token_set_job {
	struct storage_req base;
	storage_done_cb *cb;
	struct storage_fast_token t; /* strings in pool */
};

struct fast_token_get_job {
	struct storage_req base;
	storage_fast_token_cb *cb;
	unsigned char seed[STORAGE_FAST_SEED_LEN];
	/* results */
	struct storage_fast_token t; /* strings in pool */
};

struct fast_token_delete_job {
	struct storage_req base;
	storage_done_cb *cb;
	const char *ua_id; /* in pool; NULL: all */
	bool by_seed;      /* only the token with this seed */
	unsigned char seed[STORAGE_FAST_SEED_LEN];
};

struct fast_token_expire_job {
	struct storage_req base;
	storage_count_cb *cb;
	int64_t before;
	/* result */
	uint64_t count;
};

struct fast_token_list_job {
	struct storage_req base;
	storage_fast_tokens_cb *cb;
	storage_fast_login_cb *login_cb; /* storage_fast_token_list_login */
	bool with_account;               /* ask account_exists too */
	/* results */
	struct storage_fast_token *tokens; /* in pool */
	size_t ntokens;
	bool account_exists; /* with_account: the store holds the account */
};

struct account_store_vfuncs {
	enum storage_result (*get)(void *conn, struct account_get_job *j);
	enum storage_result (*create)(void *conn, struct account_create_job *j);
	enum storage_result (*update)(void *conn, struct account_update_job *j);
	/* Set the credentials of each hash j->acc has (has_*) where the
	 * account has none for that hash; the rest of the account stays. */
	enum storage_result (*add_credentials)(void *conn, struct account_update_job *j);
	enum storage_result (*remove)(void *conn, struct account_remove_job *j);
	/* Every name of the host, or (j->limit > 0) at most limit names
	 * after j->after (when not NULL) that contain j->match (when not
	 * NULL), in sorted order. */
	enum storage_result (*list)(void *conn, struct account_list_job *j);
	enum storage_result (*count)(void *conn, struct account_count_job *j);
	enum storage_result (*fast_set)(void *conn, struct fast_token_set_job *j);
	enum storage_result (*fast_get)(void *conn, struct fast_token_get_job *j);
	enum storage_result (*fast_delete)(void *conn, struct fast_token_delete_job *j);
	enum storage_result (*fast_list)(void *conn, struct fast_token_list_job *j);
	enum storage_result (*fast_expire)(void *conn, struct fast_token_expire_job *j);
	/* SCRAM keys of users of other auth methods (storage.h): get fills
	 * j->acc when a set valid now exists (deleting an expired one); set
	 * replaces the user's set with j->acc (all three hashes), valid until
	 * j->expires; delete reuses the remove job; expire deletes every set
	 * of the host that expired at or before j->before (j->count). */
	enum storage_result (*scram_cache_get)(void *conn, struct account_get_job *j);
	enum storage_result (*scram_cache_set)(void *conn, struct account_update_job *j);
	enum storage_result (*scram_cache_delete)(void *conn, struct account_remove_job *j);
	enum storage_result (*scram_cache_expire)(void *conn, struct fast_token_expire_job *j);
};

#endif
