/*
 * The storage interface's front: picks the backend family for a
 * configuration, dispatches every operation to its vfuncs, and holds what
 * all backends share (request base, the fail-later list, result strings,
 * account and roster item helpers).
 *
 * Loop thread only.  Invariants: a request's callback runs at most once and
 * never inside the call that created it nor after storage_cancel; a request
 * answered "later" by storage.c itself (queue full, closing) is delivered
 * from an ev_timer of 0 seconds, and storage_close delivers what is left.
 */
#include "storage/storage-private.h"
#include "lib/log.h"

#include <assert.h>

static const struct storage_vfuncs *const storage_backends[] = {
	&storage_sql_vfuncs,
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

const char *storage_op_name(enum storage_op op)
{
	switch (op) {
	case STORAGE_OP_ACCOUNT_GET: return "account_get";
	case STORAGE_OP_ACCOUNT_CREATE: return "account_create";
	case STORAGE_OP_ACCOUNT_UPDATE: return "account_update";
	case STORAGE_OP_ACCOUNT_REMOVE: return "account_remove";
	case STORAGE_OP_ACCOUNT_LIST: return "account_list";
	case STORAGE_OP_ACCOUNT_COUNT: return "account_count";
	case STORAGE_OP_ROSTER_GET: return "roster_get";
	case STORAGE_OP_ROSTER_SET: return "roster_set";
	case STORAGE_OP_ROSTER_REMOVE: return "roster_remove";
	case STORAGE_OP_OFFLINE_STORE: return "offline_store";
	case STORAGE_OP_OFFLINE_GET: return "offline_get";
	case STORAGE_OP_OFFLINE_DELETE: return "offline_delete_upto";
	case STORAGE_OP_OFFLINE_COUNT: return "offline_count";
	case STORAGE_OP_VCARD_GET: return "vcard_get";
	case STORAGE_OP_VCARD_SET: return "vcard_set";
	case STORAGE_OP_PRIVATE_GET: return "private_get";
	case STORAGE_OP_PRIVATE_SET: return "private_set";
	case STORAGE_OP_LAST_GET: return "last_get";
	case STORAGE_OP_LAST_SET: return "last_set";
	case STORAGE_OP_BLOCKLIST_GET: return "blocklist_get";
	case STORAGE_OP_BLOCKLIST_ADD: return "blocklist_add";
	case STORAGE_OP_BLOCKLIST_REMOVE: return "blocklist_remove";
	case STORAGE_OP_PRIVACY_GET: return "privacy_get";
	case STORAGE_OP_PRIVACY_SET_LIST: return "privacy_set_list";
	case STORAGE_OP_PRIVACY_REMOVE_LIST: return "privacy_remove_list";
	case STORAGE_OP_PRIVACY_SET_DEFAULT: return "privacy_set_default";
	case STORAGE_OP_SRG_LIST: return "srg_list";
	case STORAGE_OP_SRG_GET: return "srg_get";
	case STORAGE_OP_SRG_CREATE: return "srg_create";
	case STORAGE_OP_SRG_DELETE: return "srg_delete";
	case STORAGE_OP_SRG_MEMBER_ADD: return "srg_member_add";
	case STORAGE_OP_SRG_MEMBER_REMOVE: return "srg_member_remove";
	case STORAGE_OP_SRG_USER_GROUPS: return "srg_user_groups";
	case STORAGE_OP_PRIVATE_LIST: return "private_list";
	case STORAGE_OP_VCARD_SEARCH: return "vcard_search";
	case STORAGE_OP_VCARD_REINDEX: return "vcard_reindex";
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
	memset(it, 0, sizeof(*it));
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

/* ---- the shared request machinery ------------------------------------------- */

static void defer_cb(struct ev_loop *loop, ev_timer *w, int revents);

void storage_base_init(struct storage *st, const struct storage_vfuncs *v, struct ev_loop *loop,
                       const char *description)
{
	st->v = v;
	st->loop = loop;
	st->description = xstrdup(description);
	ev_timer_init(&st->defer_timer, defer_cb, 0, 0);
	st->defer_timer.data = st;
}

void storage_req_init(struct storage_req *req, struct storage *st, enum storage_op op, void *ctx)
{
	req->st = st;
	req->op = op;
	req->ctx = ctx;
	req->cancelled = false;
	req->deferred = false;
	req->defer_next = NULL;
}

void storage_req_reply(struct storage_req *req, const struct storage_reply *r)
{
	if (req->cancelled)
		return;
	bool ok = r->res == STORAGE_OK;
	switch (req->op) {
	case STORAGE_OP_ACCOUNT_GET:
		req->cb.account(r->res, ok ? r->account : NULL, req->ctx);
		break;
	case STORAGE_OP_ACCOUNT_LIST:
	case STORAGE_OP_BLOCKLIST_GET:
	case STORAGE_OP_SRG_LIST:
	case STORAGE_OP_SRG_USER_GROUPS: {
		static const struct strlist empty = { NULL, 0 };
		req->cb.list(r->res, ok && r->names != NULL ? r->names : &empty, req->ctx);
		break;
	}
	case STORAGE_OP_ACCOUNT_COUNT:
	case STORAGE_OP_OFFLINE_COUNT:
	case STORAGE_OP_VCARD_REINDEX:
		req->cb.count(r->res, ok ? r->count : 0, req->ctx);
		break;
	case STORAGE_OP_OFFLINE_GET:
		req->cb.offline(r->res, ok ? r->messages : NULL, ok ? r->nmessages : 0, req->ctx);
		break;
	case STORAGE_OP_VCARD_GET:
	case STORAGE_OP_PRIVATE_GET:
		req->cb.text(r->res, ok ? r->text : NULL, req->ctx);
		break;
	case STORAGE_OP_LAST_GET:
		req->cb.last(r->res, ok ? r->last : NULL, req->ctx);
		break;
	case STORAGE_OP_SRG_GET:
		req->cb.srg(r->res, ok ? r->groups : NULL, ok ? r->ngroups : 0, req->ctx);
		break;
	case STORAGE_OP_VCARD_SEARCH:
		req->cb.search(r->res, ok ? r->entries : NULL, ok ? r->nentries : 0, ok && r->more,
		               req->ctx);
		break;
	case STORAGE_OP_ROSTER_GET:
		req->cb.roster(r->res, ok ? r->items : NULL, ok ? r->nitems : 0, ok ? r->version : 0,
		               req->ctx);
		break;
	case STORAGE_OP_PRIVATE_LIST:
		req->cb.private_list(r->res, ok ? r->pitems : NULL, ok ? r->npitems : 0, req->ctx);
		break;
	case STORAGE_OP_PRIVACY_GET:
		req->cb.privacy(r->res, ok ? r->lists : NULL, ok ? r->nlists : 0,
		                ok ? r->default_name : NULL, req->ctx);
		break;
	case STORAGE_OP_ACCOUNT_CREATE:
	case STORAGE_OP_ACCOUNT_UPDATE:
	case STORAGE_OP_ACCOUNT_REMOVE:
	case STORAGE_OP_ROSTER_SET:
	case STORAGE_OP_ROSTER_REMOVE:
	case STORAGE_OP_OFFLINE_STORE:
	case STORAGE_OP_OFFLINE_DELETE:
	case STORAGE_OP_VCARD_SET:
	case STORAGE_OP_PRIVATE_SET:
	case STORAGE_OP_LAST_SET:
	case STORAGE_OP_BLOCKLIST_ADD:
	case STORAGE_OP_BLOCKLIST_REMOVE:
	case STORAGE_OP_PRIVACY_SET_LIST:
	case STORAGE_OP_PRIVACY_REMOVE_LIST:
	case STORAGE_OP_PRIVACY_SET_DEFAULT:
	case STORAGE_OP_SRG_CREATE:
	case STORAGE_OP_SRG_DELETE:
	case STORAGE_OP_SRG_MEMBER_ADD:
	case STORAGE_OP_SRG_MEMBER_REMOVE:
		req->cb.done(r->res, req->ctx);
		break;
	}
}

void storage_req_fail_later(struct storage_req *req, enum storage_result res)
{
	struct storage *st = req->st;
	assert(!req->deferred);
	req->deferred = true;
	req->deferred_res = res;
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

/* Deliver every request on the fail-later list, including those its
 * callbacks add. */
static void defer_drain(struct storage *st)
{
	while (st->defer_head != NULL) {
		struct storage_req *req = st->defer_head;
		st->defer_head = req->defer_next;
		if (st->defer_head == NULL)
			st->defer_tail = NULL;
		struct storage_reply r = { .res = req->deferred_res };
		storage_req_reply(req, &r);
		st->v->req_free(req);
	}
}

static void defer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct storage *st = w->data;
	defer_drain(st);
}

void storage_base_deinit(struct storage *st)
{
	defer_drain(st);
	ev_timer_stop(st->loop, &st->defer_timer);
	free(st->description);
	st->description = NULL;
}

/* ---- public interface: dispatch ----------------------------------------------- */

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
	*error_r = xasprintf("unknown storage driver '%s' (built: sqlite)", driver);
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
	if (!req->deferred)
		req->st->v->cancel(req);
}

const char *storage_describe(const struct storage *st)
{
	return st->description;
}

void storage_status(struct storage *st, struct buf *out)
{
	if (st->v->status != NULL)
		st->v->status(st, out);
}

struct storage_req *storage_account_get(struct storage *st, const char *host, const char *user,
                                        storage_account_cb *cb, void *ctx)
{
	assert(host != NULL && user != NULL && cb != NULL);
	return st->v->account_get(st, host, user, cb, ctx);
}

struct storage_req *storage_account_create(struct storage *st, const char *host, const char *user,
                                           const struct storage_account *acc, storage_done_cb *cb,
                                           void *ctx)
{
	assert(host != NULL && user != NULL && acc != NULL && cb != NULL);
	return st->v->account_create(st, host, user, acc, cb, ctx);
}

struct storage_req *storage_account_update(struct storage *st, const char *host, const char *user,
                                           const struct storage_account *acc, storage_done_cb *cb,
                                           void *ctx)
{
	assert(host != NULL && user != NULL && acc != NULL && cb != NULL);
	return st->v->account_update(st, host, user, acc, cb, ctx);
}

struct storage_req *storage_account_remove(struct storage *st, const char *host, const char *user,
                                           storage_done_cb *cb, void *ctx)
{
	assert(host != NULL && user != NULL && cb != NULL);
	return st->v->account_remove(st, host, user, cb, ctx);
}

struct storage_req *storage_account_list(struct storage *st, const char *host,
                                         storage_list_cb *cb, void *ctx)
{
	assert(host != NULL && cb != NULL);
	return st->v->account_list(st, host, cb, ctx);
}

struct storage_req *storage_account_count(struct storage *st, const char *host,
                                          storage_count_cb *cb, void *ctx)
{
	assert(host != NULL && cb != NULL);
	return st->v->account_count(st, host, cb, ctx);
}

struct storage_req *storage_roster_get(struct storage *st, const char *host, const char *user,
                                       storage_roster_cb *cb, void *ctx)
{
	assert(host != NULL && user != NULL && cb != NULL);
	return st->v->roster_get(st, host, user, cb, ctx);
}

struct storage_req *storage_roster_set(struct storage *st, const char *host, const char *user,
                                       const struct roster_item *item, storage_done_cb *cb,
                                       void *ctx)
{
	assert(host != NULL && user != NULL && item != NULL && item->jid != NULL && cb != NULL);
	return st->v->roster_set(st, host, user, item, cb, ctx);
}

struct storage_req *storage_roster_remove(struct storage *st, const char *host, const char *user,
                                          const char *jid, storage_done_cb *cb, void *ctx)
{
	assert(host != NULL && user != NULL && jid != NULL && cb != NULL);
	return st->v->roster_remove(st, host, user, jid, cb, ctx);
}

struct storage_req *storage_offline_store(struct storage *st, const char *host, const char *user,
                                          const char *from_jid, const char *stanza_xml,
                                          unsigned max_per_user, storage_done_cb *cb, void *ctx)
{
	assert(host != NULL && user != NULL && from_jid != NULL && stanza_xml != NULL && cb != NULL);
	return st->v->offline_store(st, host, user, from_jid, stanza_xml, max_per_user, cb, ctx);
}

struct storage_req *storage_offline_get(struct storage *st, const char *host, const char *user,
                                        storage_offline_cb *cb, void *ctx)
{
	assert(host != NULL && user != NULL && cb != NULL);
	return st->v->offline_get(st, host, user, cb, ctx);
}

struct storage_req *storage_offline_delete_upto(struct storage *st, const char *host,
                                                const char *user, int64_t last_seq,
                                                storage_done_cb *cb, void *ctx)
{
	assert(host != NULL && user != NULL && cb != NULL);
	return st->v->offline_delete_upto(st, host, user, last_seq, cb, ctx);
}

struct storage_req *storage_offline_count(struct storage *st, const char *host, const char *user,
                                          storage_count_cb *cb, void *ctx)
{
	assert(host != NULL && user != NULL && cb != NULL);
	return st->v->offline_count(st, host, user, cb, ctx);
}

struct storage_req *storage_vcard_get(struct storage *st, const char *host, const char *user,
                                      storage_text_cb *cb, void *ctx)
{
	assert(host != NULL && user != NULL && cb != NULL);
	return st->v->vcard_get(st, host, user, cb, ctx);
}

struct storage_req *storage_vcard_set(struct storage *st, const char *host, const char *user,
                                      const char *vcard_xml, storage_done_cb *cb, void *ctx)
{
	assert(host != NULL && user != NULL && vcard_xml != NULL && cb != NULL);
	return st->v->vcard_set(st, host, user, vcard_xml, cb, ctx);
}

struct storage_req *storage_private_get(struct storage *st, const char *host, const char *user,
                                        const char *ns, storage_text_cb *cb, void *ctx)
{
	assert(host != NULL && user != NULL && ns != NULL && cb != NULL);
	return st->v->private_get(st, host, user, ns, cb, ctx);
}

struct storage_req *storage_private_set(struct storage *st, const char *host, const char *user,
                                        const struct private_item *items, size_t count,
                                        storage_done_cb *cb, void *ctx)
{
	assert(host != NULL && user != NULL && items != NULL && count > 0 && cb != NULL);
	for (size_t i = 0; i < count; i++)
		assert(items[i].ns != NULL && items[i].data != NULL);
	return st->v->private_set(st, host, user, items, count, cb, ctx);
}

struct storage_req *storage_last_get(struct storage *st, const char *host, const char *user,
                                     storage_last_cb *cb, void *ctx)
{
	assert(host != NULL && user != NULL && cb != NULL);
	return st->v->last_get(st, host, user, cb, ctx);
}

struct storage_req *storage_last_set(struct storage *st, const char *host, const char *user,
                                     int64_t seconds, const char *status, storage_done_cb *cb,
                                     void *ctx)
{
	assert(host != NULL && user != NULL && cb != NULL);
	return st->v->last_set(st, host, user, seconds, status, cb, ctx);
}

struct storage_req *storage_blocklist_get(struct storage *st, const char *host, const char *user,
                                          storage_list_cb *cb, void *ctx)
{
	assert(host != NULL && user != NULL && cb != NULL);
	return st->v->blocklist_get(st, host, user, cb, ctx);
}

struct storage_req *storage_blocklist_add(struct storage *st, const char *host, const char *user,
                                          const char *const *jids, size_t n,
                                          storage_done_cb *cb, void *ctx)
{
	assert(host != NULL && user != NULL && jids != NULL && n > 0 && cb != NULL);
	for (size_t i = 0; i < n; i++)
		assert(jids[i] != NULL);
	return st->v->blocklist_add(st, host, user, jids, n, cb, ctx);
}

struct storage_req *storage_blocklist_remove(struct storage *st, const char *host,
                                             const char *user, const char *const *jids,
                                             size_t n, storage_done_cb *cb, void *ctx)
{
	assert(host != NULL && user != NULL && (n == 0 || jids != NULL) && cb != NULL);
	for (size_t i = 0; i < n; i++)
		assert(jids[i] != NULL);
	return st->v->blocklist_remove(st, host, user, jids, n, cb, ctx);
}

struct storage_req *storage_privacy_get(struct storage *st, const char *host, const char *user,
                                        storage_privacy_cb *cb, void *ctx)
{
	assert(host != NULL && user != NULL && cb != NULL);
	return st->v->privacy_get(st, host, user, cb, ctx);
}

struct storage_req *storage_privacy_set_list(struct storage *st, const char *host,
                                             const char *user, const char *name,
                                             const struct privacy_item *items, size_t n,
                                             storage_done_cb *cb, void *ctx)
{
	assert(host != NULL && user != NULL && name != NULL && items != NULL && n > 0 && cb != NULL);
	for (size_t i = 0; i < n; i++)
		assert(items[i].type == PRIVACY_ALL || items[i].value != NULL);
	return st->v->privacy_set_list(st, host, user, name, items, n, cb, ctx);
}

struct storage_req *storage_privacy_remove_list(struct storage *st, const char *host,
                                                const char *user, const char *name,
                                                storage_done_cb *cb, void *ctx)
{
	assert(host != NULL && user != NULL && name != NULL && cb != NULL);
	return st->v->privacy_remove_list(st, host, user, name, cb, ctx);
}

struct storage_req *storage_privacy_set_default(struct storage *st, const char *host,
                                                const char *user, const char *name,
                                                storage_done_cb *cb, void *ctx)
{
	assert(host != NULL && user != NULL && cb != NULL);
	return st->v->privacy_set_default(st, host, user, name, cb, ctx);
}

struct storage_req *storage_srg_list(struct storage *st, const char *host, storage_list_cb *cb,
                                     void *ctx)
{
	assert(host != NULL && cb != NULL);
	return st->v->srg_list(st, host, cb, ctx);
}

struct storage_req *storage_srg_get(struct storage *st, const char *host, const char *name,
                                    storage_srg_cb *cb, void *ctx)
{
	assert(host != NULL && cb != NULL);
	return st->v->srg_get(st, host, name, cb, ctx);
}

struct storage_req *storage_srg_create(struct storage *st, const char *host,
                                       const struct srg_group *g, storage_done_cb *cb, void *ctx)
{
	assert(host != NULL && g != NULL && g->name != NULL && cb != NULL);
	return st->v->srg_create(st, host, g, cb, ctx);
}

struct storage_req *storage_srg_delete(struct storage *st, const char *host, const char *name,
                                       storage_done_cb *cb, void *ctx)
{
	assert(host != NULL && name != NULL && cb != NULL);
	return st->v->srg_delete(st, host, name, cb, ctx);
}

struct storage_req *storage_srg_member_add(struct storage *st, const char *host,
                                           const char *group, const char *member,
                                           storage_done_cb *cb, void *ctx)
{
	assert(host != NULL && group != NULL && member != NULL && cb != NULL);
	return st->v->srg_member_add(st, host, group, member, cb, ctx);
}

struct storage_req *storage_srg_member_remove(struct storage *st, const char *host,
                                              const char *group, const char *member,
                                              storage_done_cb *cb, void *ctx)
{
	assert(host != NULL && group != NULL && member != NULL && cb != NULL);
	return st->v->srg_member_remove(st, host, group, member, cb, ctx);
}

struct storage_req *storage_srg_user_groups(struct storage *st, const char *host,
                                            const char *bare_jid, storage_list_cb *cb, void *ctx)
{
	assert(host != NULL && bare_jid != NULL && cb != NULL);
	return st->v->srg_user_groups(st, host, bare_jid, cb, ctx);
}

struct storage_req *storage_private_list(struct storage *st, const char *host, const char *user,
                                         storage_private_list_cb *cb, void *ctx)
{
	assert(host != NULL && user != NULL && cb != NULL);
	return st->v->private_list(st, host, user, cb, ctx);
}

struct storage_req *storage_vcard_search(struct storage *st, const char *host,
                                         const struct vcard_term *terms, size_t n,
                                         bool listed_only, unsigned limit,
                                         storage_vcard_search_cb *cb, void *ctx)
{
	assert(host != NULL && (n == 0 || terms != NULL) && cb != NULL);
	for (size_t i = 0; i < n; i++)
		assert(terms[i].value != NULL && terms[i].field < VF_COUNT);
	return st->v->vcard_search(st, host, terms, n, listed_only, limit, cb, ctx);
}

struct storage_req *storage_vcard_reindex(struct storage *st, const char *host,
                                          storage_count_cb *cb, void *ctx)
{
	assert(host != NULL && cb != NULL);
	return st->v->vcard_reindex(st, host, cb, ctx);
}
