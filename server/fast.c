/*
 * FAST (XEP-0484) tokens: the key, the HT mechanisms offered, and the
 * storage work of a login (see fast.h).  Loop thread; the storage calls
 * answer on it.
 *
 * Invariants:
 *  - no token is ever stored or logged: rows hold seeds, tokens are
 *    derived on demand and wiped once used;
 *  - a job runs one storage request at a time, in order (the writes of a
 *    login, then the new token), and reports once;
 *  - a client keeps at most two tokens: the one it logged in with (or,
 *    after a password login, its newest) and the one just issued; using
 *    a token deletes the client's older ones.
 */
#include "server/fast.h"
#include "server/server.h"
#include "server/tls.h"
#include "lib/log.h"
#include "lib/util.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <openssl/crypto.h>

static unsigned char fast_key[HT_KEY_LEN];
static bool fast_key_loaded;

/* ---- the key ------------------------------------------------------------------ */

static int key_create(const char *path, char **error_r)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		*error_r = xasprintf("fast.key_file %s: cannot create it: %s", path, strerror(errno));
		return -1;
	}
	random_bytes(fast_key, sizeof(fast_key));
	ssize_t n = write(fd, fast_key, sizeof(fast_key));
	if (n != (ssize_t)sizeof(fast_key) || fsync(fd) < 0) {
		*error_r = xasprintf("fast.key_file %s: cannot write it: %s", path,
		                     n < 0 ? strerror(errno) : "short write");
		close(fd);
		unlink(path);
		explicit_bzero(fast_key, sizeof(fast_key));
		return -1;
	}
	close(fd);
	log_notice("fast: made a new token key in %s", path);
	return 0;
}

int fast_key_load(const char *path, char **error_r)
{
	fast_key_clear();
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		if (key_create(path, error_r) < 0)
			return -1;
		fast_key_loaded = true;
		return 0;
	}
	if (fd < 0) {
		*error_r = xasprintf("fast.key_file %s: cannot read it: %s", path, strerror(errno));
		return -1;
	}
	unsigned char buf[HT_KEY_LEN + 1];
	ssize_t n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n != HT_KEY_LEN) {
		explicit_bzero(buf, sizeof(buf));
		*error_r = n < 0 ? xasprintf("fast.key_file %s: cannot read it: %s", path, strerror(errno))
		                 : xasprintf("fast.key_file %s: must hold exactly %d bytes (a key "
		                             "parleyd made); remove it to have a new one made, "
		                             "which invalidates every token issued",
		                             path, HT_KEY_LEN);
		return -1;
	}
	memcpy(fast_key, buf, HT_KEY_LEN);
	explicit_bzero(buf, sizeof(buf));
	fast_key_loaded = true;
	return 0;
}

void fast_key_clear(void)
{
	explicit_bzero(fast_key, sizeof(fast_key));
	fast_key_loaded = false;
}

bool fast_available(void)
{
	return fast_key_loaded && server_config()->fast.enabled;
}

/* ---- mechanisms ------------------------------------------------------------------ */

static const struct {
	const char *name;
	const char *cbind; /* NULL: none */
} ht_mechs[] = {
	{ "HT-SHA-256-EXPR", "tls-exporter" },
	{ "HT-SHA-256-ENDP", "tls-server-end-point" },
	{ "HT-SHA-256-UNIQ", "tls-unique" },
	{ "HT-SHA-256-NONE", NULL },
};

size_t fast_mechanisms(SSL *ssl, const char *names[FAST_MAX_MECHS])
{
	const char *types[TLS_CBIND_MAX_TYPES];
	size_t ntypes = ssl != NULL ? tls_channel_binding_types(ssl, types) : 0;
	size_t n = 0;
	for (size_t i = 0; i < ARRAY_SIZE(ht_mechs); i++) {
		bool ok = ht_mechs[i].cbind == NULL;
		for (size_t k = 0; !ok && k < ntypes; k++)
			ok = strcmp(types[k], ht_mechs[i].cbind) == 0;
		if (ok)
			names[n++] = ht_mechs[i].name;
	}
	return n;
}

const char *fast_mechanism(const char *mech, const char **cbind_r)
{
	for (size_t i = 0; mech != NULL && i < ARRAY_SIZE(ht_mechs); i++)
		if (strcmp(mech, ht_mechs[i].name) == 0) {
			*cbind_r = ht_mechs[i].cbind;
			return ht_mechs[i].name;
		}
	return NULL;
}

void fast_add_inline(struct xml_node *parent, SSL *ssl)
{
	const char *names[FAST_MAX_MECHS];
	size_t n = fast_mechanisms(ssl, names);
	struct xml_node *f = xml_add_child(parent, "fast", NS_FAST);
	for (size_t i = 0; i < n; i++) {
		struct xml_node *m = xml_add_child(f, "mechanism", NULL);
		xml_add_text(m, names[i], strlen(names[i]));
	}
}

void fast_request_clear(struct fast_request *r)
{
	free(r->ua_id);
	free(r->request_mech);
	memset(r, 0, sizeof(*r));
}

void fast_add_token(struct xml_node *parent, const char *token, int64_t expires)
{
	char stamp[XEP82_STAMP_LEN];
	xep82_stamp(stamp, expires);
	struct xml_node *el = xml_add_child(parent, "token", NS_FAST);
	xml_set_attr(el, "expiry", stamp);
	xml_set_attr(el, "token", token);
}

int fast_request_parse(struct fast_request *r, const struct xml_node *authenticate, const char *ua_id,
                       const char **error_r)
{
	memset(r, 0, sizeof(*r));
	const struct xml_node *rt = xml_child(authenticate, "request-token", NS_FAST);
	const struct xml_node *f = xml_child(authenticate, "fast", NS_FAST);
	const char *cbind, *mech = rt != NULL ? fast_mechanism(xml_attr(rt, "mechanism"), &cbind) : NULL;
	const char *count = f != NULL ? xml_attr(f, "count") : NULL;
	const char *inv = f != NULL ? xml_attr(f, "invalidate") : NULL;
	*error_r = NULL;
	if (rt != NULL && mech == NULL)
		*error_r = "request-token names no HT-SHA-256 mechanism";
	else if (rt != NULL && ua_id == NULL)
		*error_r = "request-token without a <user-agent id=''/>";
	if (count != NULL) {
		char *end = NULL;
		errno = 0;
		r->count = strtoull(count, &end, 10);
		r->has_count = true;
		if (*count < '0' || *count > '9' || errno != 0 || *end != '\0')
			*error_r = "a malformed FAST count";
	}
	if (*error_r != NULL) {
		memset(r, 0, sizeof(*r));
		return -1;
	}
	r->invalidate = inv != NULL && (strcmp(inv, "true") == 0 || strcmp(inv, "1") == 0);
	r->request_mech = mech != NULL ? xstrdup(mech) : NULL;
	r->ua_id = ua_id != NULL ? xstrdup(ua_id) : NULL;
	return 0;
}

/* ---- a login's storage work ---------------------------------------------------- */

struct fast_op {
	bool del;
	struct storage_fast_token t; /* strings malloc'd */
};

struct fast_job {
	struct storage *st;
	char *host, *user;
	struct storage_req *req;
	struct storage_fast_token *toks; /* the user's tokens; strings malloc'd */
	size_t ntoks;
	bool listed;
	ssize_t used; /* index in toks of the verified token; -1: none */
	/* verify */
	unsigned char proof[HT_HMAC_LEN];
	unsigned char cb_data[TLS_CBIND_MAX_DATA];
	size_t cb_len;
	const char *mech; /* the login's HT mechanism (static) */
	bool has_count;
	uint64_t count;
	bool account_checked, account_exists; /* check_account's answer */
	fast_verify_cb *vcb;
	/* commit */
	struct fast_op *ops;
	size_t nops, next;
	char *ua_id, *request_mech;
	bool invalidate;
	double ttl;
	char token[HT_TOKEN_LEN + 1];
	int64_t expires;
	bool issued;
	fast_commit_cb *ccb;
	void *ctx;
};

static void tok_copy(struct storage_fast_token *dst, const struct storage_fast_token *src)
{
	*dst = *src;
	dst->ua_id = xstrdup(src->ua_id);
	dst->mechanism = xstrdup(src->mechanism);
}

static void tok_clear(struct storage_fast_token *t)
{
	free(t->ua_id);
	free(t->mechanism);
	explicit_bzero(t->seed, sizeof(t->seed));
}

struct fast_job *fast_job_new(struct storage *st, const char *host, const char *user)
{
	struct fast_job *j = xcalloc(1, sizeof(*j));
	j->st = st;
	j->host = xstrdup(host);
	j->user = xstrdup(user);
	j->used = -1;
	return j;
}

void fast_job_free(struct fast_job **jp)
{
	struct fast_job *j = *jp;
	if (j == NULL)
		return;
	if (j->req != NULL)
		storage_cancel(j->req);
	for (size_t i = 0; i < j->ntoks; i++)
		tok_clear(&j->toks[i]);
	free(j->toks);
	for (size_t i = 0; i < j->nops; i++)
		tok_clear(&j->ops[i].t);
	free(j->ops);
	free(j->host);
	free(j->user);
	free(j->ua_id);
	free(j->request_mech);
	explicit_bzero(j->token, sizeof(j->token));
	explicit_bzero(j->proof, sizeof(j->proof));
	explicit_bzero(j->cb_data, sizeof(j->cb_data));
	xfree(jp);
}

static enum fast_result from_storage(enum storage_result r)
{
	return r == STORAGE_OK ? FAST_OK : FAST_TEMPFAIL;
}

/* Keep the listed tokens; false (and a log line) when the list failed. */
static bool keep_list(struct fast_job *j, enum storage_result res, const struct storage_fast_token *t,
                      size_t n)
{
	j->req = NULL;
	if (res != STORAGE_OK) {
		log_warning("fast: cannot list the tokens of %s@%s: %s", j->user, j->host,
		            storage_result_str(res));
		return false;
	}
	j->toks = xcalloc(n > 0 ? n : 1, sizeof(*j->toks));
	for (size_t i = 0; i < n; i++)
		tok_copy(&j->toks[i], &t[i]);
	j->ntoks = n;
	j->listed = true;
	return true;
}

static void verify_listed(enum storage_result res, const struct storage_fast_token *t, size_t n, void *ctx);

static void verify_listed_login(enum storage_result res, const struct storage_fast_token *t, size_t n,
                                bool account_exists, void *ctx)
{
	struct fast_job *j = ctx;
	j->account_checked = true;
	j->account_exists = account_exists;
	verify_listed(res, t, n, ctx);
}

static void verify_listed(enum storage_result res, const struct storage_fast_token *t, size_t n, void *ctx)
{
	struct fast_job *j = ctx;
	if (!keep_list(j, res, t, n)) {
		j->vcb(FAST_TEMPFAIL, NULL, NULL, j->ctx);
		return;
	}
	int64_t now = (int64_t)time(NULL);
	unsigned char responder[HT_HMAC_LEN];
	const char *reason = "bad-token";
	enum fast_result refused = FAST_REFUSED;
	for (size_t i = 0; i < j->ntoks && j->used < 0; i++) {
		char token[HT_TOKEN_LEN + 1];
		unsigned char mac[HT_HMAC_LEN];
		ht_token_derive(fast_key, j->toks[i].seed, j->user, j->host, token);
		ht_hmac(token, "Initiator", j->cb_data, j->cb_len, mac);
		if (CRYPTO_memcmp(mac, j->proof, sizeof(mac)) == 0) {
			/* a token serves the mechanism it was asked for only
			 * (XEP-0484 3.4): its channel binding cannot be dropped */
			if (strcmp(j->toks[i].mechanism, j->mech) != 0) {
				reason = "wrong-mechanism";
			} else if (j->toks[i].expires <= now) {
				reason = "expired-token";
				refused = FAST_EXPIRED;
			} else {
				j->used = (ssize_t)i;
			}
			if (j->used >= 0)
				ht_hmac(token, "Responder", j->cb_data, j->cb_len, responder);
		}
		explicit_bzero(token, sizeof(token));
		explicit_bzero(mac, sizeof(mac));
	}
	if (j->used < 0) {
		j->vcb(refused, reason, NULL, j->ctx);
		return;
	}
	/* The stored count is 1 + the highest count a login used (0: none). */
	if (j->has_count && (j->count == UINT64_MAX || j->count + 1 <= j->toks[j->used].count)) {
		j->used = -1;
		explicit_bzero(responder, sizeof(responder));
		j->vcb(FAST_REFUSED, "replayed-count", NULL, j->ctx);
		return;
	}
	if (j->account_checked && !j->account_exists) {
		/* a token that outlived its account */
		j->used = -1;
		explicit_bzero(responder, sizeof(responder));
		j->vcb(FAST_NO_ACCOUNT, NULL, NULL, j->ctx);
		return;
	}
	j->vcb(FAST_OK, NULL, responder, j->ctx);
	explicit_bzero(responder, sizeof(responder));
}

void fast_job_verify(struct fast_job *j, const char *mech, const unsigned char proof[HT_HMAC_LEN],
                     const unsigned char *cb_data, size_t cb_len, const struct fast_request *req,
                     bool check_account, fast_verify_cb *cb, void *ctx)
{
	assert(j->req == NULL && cb_len <= sizeof(j->cb_data));
	j->mech = mech;
	memcpy(j->proof, proof, sizeof(j->proof));
	if (cb_len > 0)
		memcpy(j->cb_data, cb_data, cb_len);
	j->cb_len = cb_len;
	j->has_count = req->has_count;
	j->count = req->count;
	j->vcb = cb;
	j->ctx = ctx;
	j->req = check_account
	                 ? storage_fast_token_list_login(j->st, j->host, j->user, verify_listed_login, j)
	                 : storage_fast_token_list(j->st, j->host, j->user, verify_listed, j);
}

bool fast_job_needed(const struct fast_job *j, const struct fast_request *req)
{
	return j->used >= 0 || (req->request_mech != NULL && req->ua_id != NULL);
}

static void add_op(struct fast_job *j, bool del, const struct storage_fast_token *t)
{
	j->ops = xrealloc(j->ops, (j->nops + 1) * sizeof(*j->ops));
	j->ops[j->nops].del = del;
	tok_copy(&j->ops[j->nops].t, t);
	j->nops++;
}

/* The writes of this login, from the user's tokens (see the top). */
static void plan(struct fast_job *j)
{
	int64_t now = (int64_t)time(NULL);
	bool *gone = xcalloc(j->ntoks > 0 ? j->ntoks : 1, sizeof(*gone));
	for (size_t i = 0; i < j->ntoks; i++)
		gone[i] = j->toks[i].expires <= now;
	if (j->used >= 0) {
		const struct storage_fast_token *u = &j->toks[j->used];
		for (size_t i = 0; i < j->ntoks; i++)
			if ((ssize_t)i != j->used && strcmp(j->toks[i].ua_id, u->ua_id) == 0 &&
			    j->toks[i].created <= u->created)
				gone[i] = true;
		if (j->invalidate) {
			gone[j->used] = true;
		} else if (j->has_count) {
			struct storage_fast_token t = *u;
			t.count = j->count + 1;
			add_op(j, false, &t);
		}
	}
	if (j->request_mech != NULL && j->ua_id != NULL) {
		/* One token of the client stays until the new one is used
		 * (XEP-0484 3.5): the one this login used, which the client
		 * surely holds, else (a password login, a logout) its newest.  A token
		 * issued since the one used was never used: its answer may
		 * have been lost, and the new one replaces it. */
		bool in_use = j->used >= 0 && !gone[j->used] && strcmp(j->toks[j->used].ua_id, j->ua_id) == 0;
		ssize_t keep = in_use ? j->used : -1;
		for (size_t i = 0; !in_use && i < j->ntoks; i++)
			if (!gone[i] && strcmp(j->toks[i].ua_id, j->ua_id) == 0 &&
			    (keep < 0 || j->toks[i].created >= j->toks[keep].created))
				keep = (ssize_t)i;
		for (size_t i = 0; i < j->ntoks; i++)
			if ((ssize_t)i != keep && strcmp(j->toks[i].ua_id, j->ua_id) == 0)
				gone[i] = true;
	}
	for (size_t i = 0; i < j->ntoks; i++)
		if (gone[i])
			add_op(j, true, &j->toks[i]);
	free(gone);
	if (j->request_mech != NULL && j->ua_id != NULL) {
		/* A client's tokens are ordered by creation: a new one is made
		 * at least a second after the client's newest, so that using
		 * either one tells which is older. */
		int64_t created = now;
		for (size_t i = 0; i < j->ntoks; i++)
			if (strcmp(j->toks[i].ua_id, j->ua_id) == 0 && j->toks[i].created >= created)
				created = j->toks[i].created + 1;
		struct storage_fast_token t = { .ua_id = j->ua_id,
			                        .mechanism = j->request_mech,
			                        .created = created,
			                        .expires = now + (int64_t)j->ttl };
		random_bytes(t.seed, sizeof(t.seed));
		ht_token_derive(fast_key, t.seed, j->user, j->host, j->token);
		j->expires = t.expires;
		j->issued = true;
		add_op(j, false, &t);
		explicit_bzero(t.seed, sizeof(t.seed));
	}
}

static void run_next(struct fast_job *j);

static void op_done(enum storage_result res, void *ctx)
{
	struct fast_job *j = ctx;
	j->req = NULL;
	const struct fast_op *op = &j->ops[j->next - 1];
	if (res != STORAGE_OK && !(op->del && res == STORAGE_NOT_FOUND)) {
		log_warning("fast: cannot %s a token of %s@%s: %s", op->del ? "delete" : "store", j->user,
		            j->host, storage_result_str(res));
		j->ccb(from_storage(res), NULL, 0, j->ctx);
		return;
	}
	run_next(j);
}

static void run_next(struct fast_job *j)
{
	if (j->next == j->nops) {
		/* the callback may free j */
		char token[HT_TOKEN_LEN + 1];
		bool issued = j->issued;
		memcpy(token, j->token, sizeof(token));
		explicit_bzero(j->token, sizeof(j->token));
		j->ccb(FAST_OK, issued ? token : NULL, j->expires, j->ctx);
		explicit_bzero(token, sizeof(token));
		return;
	}
	const struct fast_op *op = &j->ops[j->next++];
	if (op->del)
		j->req = storage_fast_token_delete(j->st, j->host, j->user, NULL, op->t.seed, op_done, j);
	else
		j->req = storage_fast_token_set(j->st, j->host, j->user, &op->t, op_done, j);
}

static void commit_listed(enum storage_result res, const struct storage_fast_token *t, size_t n, void *ctx)
{
	struct fast_job *j = ctx;
	if (!keep_list(j, res, t, n)) {
		j->ccb(FAST_TEMPFAIL, NULL, 0, j->ctx);
		return;
	}
	plan(j);
	run_next(j);
}

void fast_job_commit(struct fast_job *j, const struct fast_request *req, double ttl, fast_commit_cb *cb,
                     void *ctx)
{
	assert(j->req == NULL);
	j->ua_id = req->ua_id != NULL ? xstrdup(req->ua_id) : NULL;
	j->request_mech = req->request_mech != NULL ? xstrdup(req->request_mech) : NULL;
	j->invalidate = req->invalidate;
	j->has_count = req->has_count;
	j->count = req->count;
	j->ttl = ttl;
	j->ccb = cb;
	j->ctx = ctx;
	if (!j->listed) {
		j->req = storage_fast_token_list(j->st, j->host, j->user, commit_listed, j);
		return;
	}
	plan(j);
	run_next(j);
}
