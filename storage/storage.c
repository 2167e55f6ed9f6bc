/*
 * The storage machinery every area and backend shares: picks the backend
 * family for a configuration, and runs jobs (storage-private.h): submission
 * to the store's worker group with one worker per host+user, deadlines,
 * cancellation, the fail-later list, running on the loop for a store
 * without workers (and holding a job whose work answers later), and
 * refusing jobs of an area a store does not implement.  Also the result strings and the account, roster item
 * and group helpers.  The operations themselves are in the areas' fronts
 * (storage/<area>-store.c).
 *
 * Loop thread, except job_work and job_batch (worker threads, which touch
 * only the job).  Invariants: a job's callback runs at most once and never
 * inside the call that created it nor after storage_cancel; a job answered
 * "later" by storage.c itself (queue full, closing) or run on the loop is
 * delivered from an ev_timer of 0 seconds, and storage_close delivers what
 * is left.
 */
#include "storage/storage-private.h"
#include "lib/latency.h"
#include "lib/log.h"

#include <assert.h>

static const struct storage_vfuncs *const storage_backends[] = {
	&storage_sql_vfuncs,
	&storage_memory_vfuncs,
};

const char *storage_result_str(enum storage_result r)
{
	switch (r) {
	case STORAGE_OK: return "ok";
	case STORAGE_NOT_FOUND: return "not found";
	case STORAGE_EXISTS: return "exists";
	case STORAGE_TEMPFAIL: return "temporary failure";
	case STORAGE_ERROR: return "error";
	case STORAGE_FULL: return "quota full";
	}
	return "unknown";
}

const char *storage_area_str(enum storage_area a)
{
	switch (a) {
	case STORAGE_AREA_ACCOUNT: return "account";
	case STORAGE_AREA_ROSTER: return "roster";
	case STORAGE_AREA_OFFLINE: return "offline";
	case STORAGE_AREA_VCARD: return "vcard";
	case STORAGE_AREA_PRIVATE: return "private";
	case STORAGE_AREA_PRIVACY: return "privacy";
	case STORAGE_AREA_LAST: return "last";
	case STORAGE_AREA_SRG: return "srg";
	case STORAGE_AREA_SEARCH: return "search";
	case STORAGE_AREA_MUC: return "muc";
	case STORAGE_AREA_PUBSUB: return "pubsub";
	case STORAGE_AREA_MAM: return "mam";
	case STORAGE_AREA_COUNT: break;
	}
	return "unknown";
}

const char *privacy_type_str(enum privacy_type t)
{
	switch (t) {
	case PRIVACY_ALL: return "";
	case PRIVACY_JID: return "jid";
	case PRIVACY_GROUP: return "group";
	case PRIVACY_SUBSCRIPTION: return "subscription";
	}
	return "";
}

const char *roster_subscription_str(enum roster_subscription s)
{
	switch (s) {
	case SUB_NONE: return "none";
	case SUB_TO: return "to";
	case SUB_FROM: return "from";
	case SUB_BOTH: return "both";
	case SUB_REMOVE: return "remove";
	}
	return "none";
}

void storage_account_clear(struct storage_account *a)
{
	if (a == NULL)
		return;
	scram_credentials_clear(&a->sha1);
	scram_credentials_clear(&a->sha256);
	scram_credentials_clear(&a->sha512);
	if (a->plain != NULL) {
		explicit_bzero(a->plain, strlen(a->plain));
		free(a->plain);
	}
	explicit_bzero(a, sizeof(*a));
}

void roster_item_clear(struct roster_item *it)
{
	if (it == NULL)
		return;
	free(it->jid);
	free(it->name);
	strlist_free(&it->groups);
	free(it->ask_in_stanza);
	memset(it, 0, sizeof(*it));
}

bool roster_item_pending_only(const struct roster_item *it)
{
	return !it->in_roster && it->ask_in && it->subscription == SUB_NONE && !it->ask_out &&
	       !it->approved && it->name == NULL && it->groups.count == 0;
}

void srg_group_clear(struct srg_group *g)
{
	if (g == NULL)
		return;
	free(g->name);
	free(g->label);
	free(g->description);
	strlist_free(&g->displayed);
	strlist_free(&g->members);
	memset(g, 0, sizeof(*g));
}

/* ---- the shared job machinery ---------------------------------------------------- */

static void defer_cb(struct ev_loop *loop, ev_timer *w, int revents);

void storage_base_init(struct storage *st, const struct storage_vfuncs *v, struct ev_loop *loop,
                       const char *description)
{
	st->v = v;
	st->loop = loop;
	st->description = xstrdup(description);
	st->full_log.every = 1.0;
	st->expired_log.every = 1.0;
	ev_timer_init(&st->defer_timer, defer_cb, 0, 0);
	st->defer_timer.data = st;
}

/* A job lives at the start of its own pool, with the copies of its inputs
 * and its results: one allocation for most jobs, small enough (with the
 * pool's header, under 1 KiB) for malloc's per-thread cache.  Some
 * operations run a job per message (the archive's stores). */
#define REQ_POOL_FIRST 960

void *storage_req_new(struct storage *st, const struct storage_op *op, size_t size, const char *host,
                      const char *user, void *ctx)
{
	assert(size >= sizeof(struct storage_req));
	struct pool *pool = pool_new(REQ_POOL_FIRST);
	struct storage_req *req = pool_alloc(pool, size); /* zeroed */
	req->st = st;
	req->op = op;
	req->ctx = ctx;
	req->pool = pool;
	req->host = pool_strdup(req->pool, host);
	req->user = user != NULL ? pool_strdup(req->pool, user) : NULL;
	return req;
}

static void req_free(struct storage_req *req)
{
	if (req->op->clear != NULL)
		req->op->clear(req);
	struct pool *p = req->pool; /* req is in it */
	pool_unref(&p);
}

/* Answer and free a job whose work ran (or could not).  Loop thread. */
static void req_finish(struct storage_req *req)
{
	if (!req->cancelled)
		req->op->reply(req);
	req_free(req);
}

static void defer_push(struct storage_req *req)
{
	struct storage *st = req->st;
	assert(!req->deferred);
	req->deferred = true;
	req->defer_next = NULL;
	if (st->defer_tail != NULL)
		st->defer_tail->defer_next = req;
	else
		st->defer_head = req;
	st->defer_tail = req;
	if (!ev_is_active(&st->defer_timer)) {
		ev_timer_set(&st->defer_timer, 0, 0);
		ev_timer_start(st->loop, &st->defer_timer);
	}
}

static void fail_later(struct storage_req *req, enum storage_result res)
{
	req->res = res;
	defer_push(req);
}

/* Run or fail every job on the list, including those its callbacks add. */
static void defer_drain(struct storage *st)
{
	while (st->defer_head != NULL) {
		struct storage_req *req = st->defer_head;
		st->defer_head = req->defer_next;
		if (st->defer_head == NULL)
			st->defer_tail = NULL;
		if (req->to_run && !req->cancelled) {
			req->op->work(req, st);
			if (req->held)
				continue; /* storage_req_release finishes it */
		}
		req_finish(req);
	}
}

static void defer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	latency_begin(LATENCY_WORKER, "storage");
	struct storage *st = w->data;
	defer_drain(st);
	latency_end();
}

/* Worker thread. */
static void job_work(void *arg, void *thread_state)
{
	struct storage_req *req = arg;
	req->st->v->run(req->st, req, thread_state);
}

/* Worker thread: jobs of one batchable operation queued together. */
static void job_batch(void **args, size_t n, void *thread_state)
{
	struct storage_req *reqs[WORKER_BATCH_MAX];
	assert(n > 0 && n <= WORKER_BATCH_MAX);
	for (size_t i = 0; i < n; i++)
		reqs[i] = args[i];
	reqs[0]->st->v->run_batch(reqs[0]->st, reqs, n, thread_state);
}

const char *storage_req_who(const struct storage_req *req, char *buf, size_t size)
{
	if (req->user != NULL && strchr(req->user, '@') != NULL)
		return req->user;
	snprintf(buf, size, "%s@%s", req->user != NULL ? req->user : "", req->host);
	return buf;
}

/* Loop thread. */
static void job_done(void *arg, enum worker_status status)
{
	struct storage_req *req = arg;
	req->wj = NULL;
	if (status == WORKER_CANCELLED) {
		req->cancelled = true;
	} else if (status == WORKER_EXPIRED) {
		/* a stalled database expires every queued job at once: one
		 * line a second, saying how many were left out before it */
		char who[512], extra[LOG_LIMIT_MORE_SIZE];
		unsigned more = 0;
		if (log_limit_pass(&req->st->expired_log, mono_now(), &more))
			log_warning("storage %s: %s %s: no worker took the job in time%s",
			            req->st->description, req->op->name,
			            storage_req_who(req, who, sizeof(who)), log_limit_more(more, extra));
		req->res = STORAGE_TEMPFAIL;
	}
	req_finish(req);
}

void storage_req_hold(struct storage_req *req)
{
	assert(req->st->workers == NULL && !req->held);
	req->held = true;
}

void storage_req_release(struct storage_req *req, enum storage_result res)
{
	assert(req->held);
	req->held = false;
	req->res = res;
	req_finish(req);
}

/* The worker of "user@host" (user NULL: ""): FNV-1a over it, without
 * building the string (a job per archived message). */
static uint32_t shard_of(const char *user, const char *host)
{
	uint32_t h = 2166136261u;
	const char *parts[] = { user != NULL ? user : "", "@", host };
	for (size_t i = 0; i < ARRAY_SIZE(parts); i++) {
		for (const char *c = parts[i]; *c != '\0'; c++) {
			h ^= (unsigned char)*c;
			h *= 16777619u;
		}
	}
	return h;
}

struct storage_req *storage_req_submit(struct storage_req *req)
{
	struct storage *st = req->st;
	if (!storage_has_area(st, req->op->area)) {
		char who[512];
		log_error("storage %s: %s %s: this store holds no %s", st->description, req->op->name,
		          storage_req_who(req, who, sizeof(who)), storage_area_str(req->op->area));
		fail_later(req, STORAGE_ERROR);
		return req;
	}
	if (st->closing) {
		fail_later(req, STORAGE_TEMPFAIL);
		return req;
	}
	if (st->workers == NULL) {
		req->to_run = true;
		defer_push(req);
		return req;
	}
	/* One user's jobs go to one worker: they keep their order. */
	uint32_t shard = shard_of(req->user, req->host);
	bool batch = req->op->batch != NULL && st->v->run_batch != NULL;
	req->wj = worker_submit_batch(st->workers, shard, job_work, batch ? job_batch : NULL, req->op,
	                              job_done, req, st->timeout);
	if (req->wj == NULL) {
		char extra[LOG_LIMIT_MORE_SIZE];
		unsigned more = 0;
		if (log_limit_pass(&st->full_log, mono_now(), &more))
			log_warning(
			        "storage %s: queue full (%u jobs): failing requests with a temporary error%s",
			        st->description, worker_group_pending(st->workers),
			        log_limit_more(more, extra));
		fail_later(req, STORAGE_TEMPFAIL);
	}
	return req;
}

void storage_base_deinit(struct storage *st)
{
	/* Every queued job runs (or expires) and its callback runs; callbacks
	 * that ask for more get a temporary failure (closing). */
	worker_group_free(&st->workers);
	defer_drain(st);
	ev_timer_stop(st->loop, &st->defer_timer);
	free(st->description);
	st->description = NULL;
}

/* ---- public interface ------------------------------------------------------------- */

int storage_open(struct ev_loop *loop, const struct storage_config *cfg, struct storage **st_r,
                 char **error_r)
{
	const char *driver = cfg->driver != NULL ? cfg->driver : "sqlite";
	*st_r = NULL;
	for (size_t i = 0; i < ARRAY_SIZE(storage_backends); i++) {
		const struct storage_vfuncs *v = storage_backends[i];
		if (v->accepts(driver))
			return v->open(loop, cfg, st_r, error_r);
	}
	*error_r = xasprintf("unknown storage driver '%s'", driver);
	return -1;
}

void storage_close(struct storage **stp)
{
	struct storage *st = *stp;
	if (st == NULL)
		return;
	*stp = NULL;
	st->closing = true;
	st->v->close(st);
}

void storage_cancel(struct storage_req *req)
{
	if (req == NULL || req->cancelled)
		return;
	req->cancelled = true;
	/* On a worker: job_done frees it once the group reports back (with
	 * WORKER_CANCELLED).  Deferred: defer_drain frees it.  Held by its
	 * store: storage_req_release frees it.  None of these: we are inside
	 * its callback (req_finish frees it). */
	if (req->wj != NULL)
		worker_cancel(req->wj);
}

const char *storage_describe(const struct storage *st)
{
	return st->description;
}

unsigned storage_pending(const struct storage *st)
{
	unsigned n = st->workers != NULL ? worker_group_pending(st->workers) : 0;
	for (const struct storage_req *r = st->defer_head; r != NULL; r = r->defer_next)
		n++;
	return n;
}

bool storage_has_area(const struct storage *st, enum storage_area a)
{
	switch (a) {
	case STORAGE_AREA_ACCOUNT: return st->account != NULL;
	case STORAGE_AREA_ROSTER: return st->roster != NULL;
	case STORAGE_AREA_OFFLINE: return st->offline != NULL;
	case STORAGE_AREA_VCARD: return st->vcard != NULL;
	case STORAGE_AREA_PRIVATE: return st->priv != NULL;
	case STORAGE_AREA_PRIVACY: return st->privacy != NULL;
	case STORAGE_AREA_LAST: return st->last != NULL;
	case STORAGE_AREA_SRG: return st->srg != NULL;
	case STORAGE_AREA_SEARCH: return st->search != NULL;
	case STORAGE_AREA_MUC: return st->muc != NULL;
	case STORAGE_AREA_PUBSUB: return st->pubsub != NULL;
	case STORAGE_AREA_MAM: return st->mam != NULL;
	case STORAGE_AREA_COUNT: break;
	}
	return false;
}

void storage_status(struct storage *st, struct buf *out)
{
	if (st->v->status != NULL)
		st->v->status(st, out);
}
