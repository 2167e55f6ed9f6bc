/*
 * mod_blocking: the blocking command (XEP-0191, urn:xmpp:blocking).  A user
 * keeps a list of JIDs (full JIDs, bare JIDs, domains, domain/resource) it
 * does not want to hear from or talk to; the list is stored with
 * storage_blocklist_* and enforced here.  Loop thread.
 *
 * Where stanzas come from:
 * - the iq handler (IQ_SCOPE_USER): get <blocklist/>, set <block/> and
 *   <unblock/>.  A change is stored first; when storage says OK the
 *   cache is updated, the requester answered and the change pushed to
 *   every session of the user that asked for the list (§3.2-§3.4).
 *   Then, when the user is available, the roster is read and the
 *   contacts the change covers that may see the user's presence are sent
 *   unavailable (block) or the current presence (unblock); a block also
 *   sends unavailable to the directed-presence targets it covers, from
 *   each session that sent them presence (presence_directed).
 * - stanza_in (sm_route, every stanza to a local user): from a JID the
 *   recipient blocks, messages and iq get/set are answered with
 *   <service-unavailable/>, everything else is dropped (§3.5).  Presence
 *   from a local user (of this or another local host) to a JID that user
 *   blocks is dropped too: the server's broadcasts and probe answers on
 *   the user's behalf stop there.  Those to another server pass no
 *   stanza_in: mod_presence asks blocking_blocks before routing them.
 * - user_send_packet (priority 10, before mod_presence): a stanza the user
 *   sends to a blocked JID is not routed; a message, presence or iq
 *   get/set is answered with <not-acceptable/> and
 *   <blocked xmlns='urn:xmpp:blocking:errors'/> (§3.6); errors and iq
 *   results are dropped.
 * - session_opened / session_closed: the per-user cache (user-cache.h).
 *
 * Invariants:
 * - Enforcement reads the cache only, never storage.  A user has a cache
 *   entry (struct blk_user) while it has a session (created at module
 *   start for sessions that exist then).  The list is read at the first
 *   session's open; until it has arrived the user is treated as blocking
 *   nobody (stanzas are not held back).  A failed read is retried at the
 *   next get or the next session open.  Users without a session have no
 *   cache: what must not wait for a session is judged on the stored list
 *   (builtin_refusal_start): mod_offline before storing a message,
 *   mod_presence before a subscription stanza changes the roster, and
 *   stanza_in for an iq request to the user's bare JID
 *   (builtin_refusal_hold_iq, which reads the privacy list too).
 * - The cache changes only from storage callbacks of this user, which
 *   arrive in the order their requests were made (storage keeps one user's
 *   order), so it is never older than a read that completed before it.
 * - A JID in the list is the normalised form (jid_parse + jid_to_string);
 *   the cache is sorted byte-wise for bsearch.
 * - The user's own bare JID and the own host are never filtered, so a user
 *   blocking its own domain can still talk to its server and account.
 * - Unavailable presence sent when blocking is routed with ps->bypass set
 *   (routing to a local user is synchronous), so the filter lets it pass.
 * - Every storage call is a struct blk_op on the module's pending list
 *   (pending.h); stop answers their requests and cancels their calls.
 */
#include "builtin.h"
#include "errmap.h"
#include "pending.h"
#include "user-cache.h"
#include "server/host.h"
#include "server/hooks.h"
#include "server/router.h"
#include "server/sm.h"
#include "lib/log.h"
#include "storage/storage.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define NS_BLOCKING "urn:xmpp:blocking"
#define NS_BLOCKING_ERRORS "urn:xmpp:blocking:errors"

struct blocking_settings {
	unsigned max_items;
};

static const struct opt_def blocking_options[] = {
	{ "max_items", OPT_UINT, offsetof(struct blocking_settings, max_items), "1000", NULL, 1, 1000000,
	  "most JIDs one user may block; a block that would go beyond is refused with "
	  "resource-constraint" },
	OPT_END
};

struct blk_state;

/* What the module keeps of a user with a session. */
struct blk_user {
	struct user_cache_entry e; /* first: e.user is the user */
	bool loaded;
	struct blk_op *load;  /* the read in flight, or NULL */
	struct strlist jids;  /* sorted; valid when loaded */
	uint64_t *interested; /* ids of the sessions that asked for the list */
	size_t ninterested;
};

enum blk_kind { BK_LOAD, BK_GET, BK_BLOCK, BK_UNBLOCK };

struct blk_op {
	struct pending_op p;  /* first: the state's list of ops; p.req the request
	                                  (NULL for BK_LOAD) */
	struct blk_state *ps; /* valid while p is listed */
	enum blk_kind kind;
	char *user;
	struct strlist jids; /* block/unblock: normalised (empty unblock: all) */
	struct strlist told; /* block/unblock done: the JIDs whose contacts are told
	                        (sorted) */
};

struct blk_state {
	struct host *host;
	const struct blocking_settings *set;
	struct pending_ops ops;
	struct user_cache users; /* struct blk_user */
	bool bypass;             /* routing our own unavailable presence */
};

/* ---- the per-user cache ------------------------------------------------------ */

static struct blk_user *user_get(struct blk_state *ps, const char *name)
{
	return user_cache_get(&ps->users, name);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool list_has(const struct strlist *l, const char *jid)
{
	return l->count > 0 && bsearch(&jid, l->items, l->count, sizeof(char *), cmp_str) != NULL;
}

static void list_add(struct strlist *l, const char *jid)
{
	if (list_has(l, jid))
		return;
	l->items = xrealloc(l->items, (l->count + 1) * sizeof(char *));
	l->items[l->count++] = xstrdup(jid);
	qsort(l->items, l->count, sizeof(char *), cmp_str);
}

static void list_del(struct strlist *l, const char *jid)
{
	for (size_t i = 0; i < l->count; i++) {
		if (strcmp(l->items[i], jid) == 0) {
			free(l->items[i]);
			memmove(&l->items[i], &l->items[i + 1], (l->count - i - 1) * sizeof(char *));
			l->count--;
			return;
		}
	}
}

static void list_copy_sorted(struct strlist *dst, const struct strlist *src)
{
	strlist_free(dst);
	dst->items = src->count > 0 ? xcalloc(src->count, sizeof(char *)) : NULL;
	for (size_t i = 0; i < src->count; i++)
		dst->items[i] = xstrdup(src->items[i]);
	dst->count = src->count;
	if (dst->count > 1)
		qsort(dst->items, dst->count, sizeof(char *), cmp_str);
}

bool blocking_list_matches(const struct strlist *sorted, const struct jid *peer)
{
	if (sorted->count == 0 || peer == NULL || peer->domain == NULL)
		return false;
	bool hit = false;
	if (peer->resource != NULL && peer->node != NULL) {
		char *s = jid_to_string(peer);
		hit = list_has(sorted, s);
		free(s);
	}
	if (!hit && peer->node != NULL) {
		char *s = jid_bare_string(peer);
		hit = list_has(sorted, s);
		free(s);
	}
	if (!hit && peer->resource != NULL) {
		char *s = xasprintf("%s/%s", peer->domain, peer->resource);
		hit = list_has(sorted, s);
		free(s);
	}
	if (!hit)
		hit = list_has(sorted, peer->domain);
	return hit;
}

/* Whether peer is blocked by u. */
static bool user_blocks(const struct blk_user *u, const struct jid *peer)
{
	return u != NULL && u->loaded && blocking_list_matches(&u->jids, peer);
}

/* Whether user's filter applies to peer and blocks it (stanzas between a
 * user and its own account or its own host are never filtered). */
static bool blocks(struct blk_state *ps, const char *user, const struct jid *peer)
{
	return !builtin_filter_exempt(ps->host, user, peer) && user_blocks(user_get(ps, user), peer);
}

bool blocking_blocks(struct host *h, const char *user, const struct jid *peer)
{
	if (!module_running(h, "blocking"))
		return false;
	struct blk_state *ps = module_state(h, "blocking");
	return ps != NULL && blocks(ps, user, peer);
}

/* ---- operations ------------------------------------------------------------------ */

static void op_free(struct pending_op *p)
{
	struct blk_op *op = (struct blk_op *)p;
	pending_untrack(p);
	free(op->user);
	strlist_free(&op->jids);
	strlist_free(&op->told);
	free(op);
}

static struct blk_op *op_new(struct blk_state *ps, enum blk_kind kind, const char *user,
                             struct iq_request *req)
{
	struct blk_op *op = xcalloc(1, sizeof(*op));
	op->ps = ps;
	op->kind = kind;
	op->p.req = req;
	op->user = xstrdup(user);
	pending_track(&ps->ops, &op->p, op_free);
	return op;
}

static void blocklist_read(enum storage_result res, const struct strlist *names, void *ctx);

static void user_load(struct blk_state *ps, struct blk_user *u)
{
	if (u->loaded || u->load != NULL)
		return;
	struct blk_op *op = op_new(ps, BK_LOAD, u->e.user, NULL);
	u->load = op;
	pending_wait_storage(&op->p, storage_blocklist_get(ps->host->storage, ps->host->name, u->e.user,
	                                                   blocklist_read, op));
}

/* The user's last session closed, or the module stops (user_cache clear). */
static void user_clear(struct user_cache_entry *e, void *ctx)
{
	(void)ctx;
	struct blk_user *u = (struct blk_user *)e;
	if (u->load != NULL)
		pending_cancel(&u->load->p); /* inside its callback: it finds no user */
	strlist_free(&u->jids);
	free(u->interested);
}

static void set_interested(struct blk_user *u, uint64_t id)
{
	for (size_t i = 0; i < u->ninterested; i++)
		if (u->interested[i] == id)
			return;
	u->interested = xrealloc(u->interested, (u->ninterested + 1) * sizeof(uint64_t));
	u->interested[u->ninterested++] = id;
}

static bool is_interested(const struct blk_user *u, uint64_t id)
{
	for (size_t i = 0; i < u->ninterested; i++)
		if (u->interested[i] == id)
			return true;
	return false;
}

static bool session_interested(const struct session *s, void *ctx)
{
	return is_interested(ctx, s->id);
}

static struct xml_node *list_element(const char *name, const struct strlist *jids)
{
	struct xml_node *el = iq_payload_new(name, NS_BLOCKING);
	for (size_t i = 0; i < jids->count; i++) {
		struct xml_node *it = xml_add_child(el, "item", NS_BLOCKING);
		xml_set_attr(it, "jid", jids->items[i]);
	}
	return el;
}

/* Push the change (a <block/> or <unblock/> element) to every interested
 * session of u. */
static void push(struct blk_state *ps, const struct blk_user *u, const struct xml_node *change)
{
	struct jid *targets;
	size_t n = builtin_sessions(ps->host, u->e.user, session_interested, (void *)u, &targets);
	builtin_push(ps->host, u->e.user, targets, n, change);
}

/* Whether a block (op->told) has told to's bare JID already: a contact
 * that may see the user's presence (in view), sent unavailable from each
 * available resource of the user. */
static bool told_as_contact(struct blk_state *ps, struct blk_op *op, const struct roster_view *view,
                            const struct jid *to)
{
	if (to->node == NULL)
		return false;
	struct jid bare = { 0 };
	jid_set(&bare, to->node, to->domain, NULL);
	char *s = jid_to_string(&bare);
	const struct roster_item *it = roster_find_item(view->items, view->count, s);
	bool told = it != NULL && (it->subscription == SUB_FROM || it->subscription == SUB_BOTH) &&
	            blocking_list_matches(&op->told, &bare) &&
	            !builtin_filter_exempt(ps->host, op->user, &bare);
	free(s);
	jid_clear(&bare);
	return told;
}

/* XEP-0191 §3.3 for the JIDs a session of the user sent directed presence
 * to: they see that session available without a subscription, so a block
 * that covers one sends it unavailable from that session (unless the
 * roster part has told it already). */
static void tell_directed(struct blk_state *ps, struct blk_op *op, const struct roster_view *view)
{
	/* Copied first: routing may close a session. */
	struct jid *from = NULL, *to = NULL;
	size_t n = 0;
	for (struct session *s = sm_user_sessions(ps->host, op->user); s != NULL; s = s->next_of_user) {
		const struct strlist *targets = presence_directed(ps->host, s);
		for (size_t i = 0; targets != NULL && i < targets->count; i++) {
			struct jid t;
			const char *err;
			if (jid_parse(targets->items[i], &t, &err) != 0)
				continue;
			if (!blocking_list_matches(&op->told, &t) ||
			    builtin_filter_exempt(ps->host, op->user, &t) ||
			    (s->available && told_as_contact(ps, op, view, &t))) {
				jid_clear(&t);
				continue;
			}
			from = xrealloc(from, (n + 1) * sizeof(*from));
			to = xrealloc(to, (n + 1) * sizeof(*to));
			jid_copy(&from[n], &s->jid);
			to[n++] = t;
		}
	}
	builtin_route_unavailable(from, to, n, &ps->bypass);
}

/* What a contact of the user is told when a block or unblock covers it
 * (op->told): XEP-0191 §3.3, unavailable presence from each available
 * resource of the user; §3.4, the current presence of each.  Only contacts
 * allowed to see the user's presence (subscription from or both, in the
 * roster view) are told: anyone else would learn that the user is online.
 * A contact an unblock leaves blocked by another item is not told.  A
 * block also tells the session's directed-presence targets it covers
 * (tell_directed); an unblock sends them nothing (directed presence is
 * not resent). */
static void contacts_read(enum storage_result res, const struct roster_item *items, size_t count,
                          uint64_t version, void *ctx)
{
	(void)version;
	struct blk_op *op = ctx;
	if (!pending_resume(&op->p))
		return;
	struct blk_state *ps = op->ps;
	if (res == STORAGE_NOT_FOUND)
		count = 0;
	else if (res != STORAGE_OK) {
		log_warning("blocking %s: the roster of %s cannot be read (storage %s); contacts are "
		            "not sent presence for the %s",
		            ps->host->name, op->user, storage_result_str(res),
		            op->kind == BK_BLOCK ? "block" : "unblock");
		op_free(&op->p);
		return;
	}
	bool block = op->kind == BK_BLOCK;
	struct jid *from;
	size_t k = builtin_sessions(ps->host, op->user, builtin_session_available, NULL, &from);
	struct roster_view view;
	roster_view_make(&view, ps->host, op->user, items, count, true);
	for (size_t j = 0; j < view.count && k > 0; j++) {
		enum roster_subscription sub = view.items[j].subscription;
		struct jid to;
		const char *err;
		if ((sub != SUB_FROM && sub != SUB_BOTH) || jid_parse(view.items[j].jid, &to, &err) != 0)
			continue;
		if (blocking_list_matches(&op->told, &to) &&
		    !builtin_filter_exempt(ps->host, op->user, &to) &&
		    (block || !blocks(ps, op->user, &to))) {
			for (size_t i = 0; i < k; i++) {
				struct xml_node *p;
				if (block) {
					p = xml_new("presence", NS_CLIENT);
					xml_set_attr(p, "type", "unavailable");
				} else {
					/* Looked up each time: routing may close a session. */
					struct session *s = sm_find(ps->host, &from[i]);
					if (s == NULL || !s->available || s->presence == NULL)
						continue;
					p = xml_copy(s->presence);
				}
				xml_set_attr(p, "from", jid_to_pool(p->pool, &from[i]));
				xml_set_attr(p, "to", jid_to_pool(p->pool, &to));
				ps->bypass = block;
				router_route(p, &from[i], &to);
				ps->bypass = false;
				xml_unref(&p);
			}
		}
		jid_clear(&to);
	}
	if (block)
		tell_directed(ps, op, &view);
	roster_view_clear(&view);
	for (size_t i = 0; i < k; i++)
		jid_clear(&from[i]);
	free(from);
	op_free(&op->p);
}

static void blocklist_read(enum storage_result res, const struct strlist *names, void *ctx)
{
	struct blk_op *op = ctx;
	if (!pending_resume(&op->p))
		return;
	struct blk_state *ps = op->ps;
	struct blk_user *u = user_get(ps, op->user);
	if (op->kind == BK_LOAD && u != NULL && u->load == op)
		u->load = NULL;
	if (res == STORAGE_OK && u != NULL && !u->loaded) {
		list_copy_sorted(&u->jids, names);
		u->loaded = true;
	} else if (res != STORAGE_OK && op->kind == BK_LOAD) {
		log_warning("blocking %s: the blocklist of %s cannot be read (storage %s); not "
		            "enforced until it can",
		            ps->host->name, op->user, storage_result_str(res));
	}
	if (op->kind == BK_GET) {
		if (res == STORAGE_OK) {
			struct strlist sorted = { 0 };
			list_copy_sorted(&sorted, names);
			struct xml_node *el = list_element("blocklist", &sorted);
			iq_result(op->p.req, el);
			xml_unref(&el);
			strlist_free(&sorted);
		} else {
			errmap_iq_storage(op->p.req, res, "the blocklist");
		}
	}
	op_free(&op->p);
}

static void blocklist_written(enum storage_result res, void *ctx)
{
	struct blk_op *op = ctx;
	if (!pending_resume(&op->p))
		return;
	struct blk_state *ps = op->ps;
	if (res != STORAGE_OK) {
		errmap_iq_storage(op->p.req, res, "the blocklist");
		op_free(&op->p);
		return;
	}
	struct blk_user *u = user_get(ps, op->user);
	bool block = op->kind == BK_BLOCK;
	/* What the contacts are told is about these (an unblock of all: the
	 * list as the cache has it). */
	list_copy_sorted(&op->told, op->jids.count > 0 || u == NULL || !u->loaded ? &op->jids : &u->jids);
	if (u != NULL && u->loaded) {
		if (!block && op->jids.count == 0)
			strlist_free(&u->jids);
		for (size_t i = 0; i < op->jids.count; i++) {
			if (block)
				list_add(&u->jids, op->jids.items[i]);
			else
				list_del(&u->jids, op->jids.items[i]);
		}
	}
	iq_result(op->p.req, NULL);
	op->p.req = NULL;
	if (u != NULL) {
		struct xml_node *el = list_element(block ? "block" : "unblock", &op->jids);
		push(ps, u, el);
		xml_unref(&el);
	}
	/* Then the contacts, from the roster, and the directed-presence
	 * targets (the unavailable presence of a block passes the filter with
	 * ps->bypass). */
	bool seen = false;
	for (struct session *s = sm_user_sessions(ps->host, op->user); s != NULL; s = s->next_of_user)
		seen = seen || s->available || (block && presence_directed(ps->host, s) != NULL);
	if (!seen || op->told.count == 0) {
		op_free(&op->p);
		return;
	}
	pending_wait_storage(
	        &op->p, storage_roster_get(ps->host->storage, ps->host->name, op->user, contacts_read, op));
}

/* ---- the iq handler ----------------------------------------------------------------- */

/* The items of a block/unblock into jids (normalised, no duplicates);
 * answers req and returns false when one is bad. */
static bool read_items(struct iq_request *req, struct strlist *jids)
{
	for (struct xml_node *el = xml_first_element(req->payload); el != NULL;
	     el = xml_next(el, NULL, NULL)) {
		if (!xml_is(el, "item", NS_BLOCKING)) {
			iq_error(req, SE_BAD_REQUEST, "only <item/> elements are allowed");
			return false;
		}
		const char *s = xml_attr(el, "jid");
		struct jid j;
		const char *err = NULL;
		if (s == NULL || jid_parse(s, &j, &err) != 0) {
			iq_error(req, SE_JID_MALFORMED, s == NULL ? "an item has no jid" : err);
			return false;
		}
		char *norm = jid_to_string(&j);
		jid_clear(&j);
		if (!strlist_contains(jids, norm)) {
			jids->items = xrealloc(jids->items, (jids->count + 1) * sizeof(char *));
			jids->items[jids->count++] = norm;
		} else {
			free(norm);
		}
	}
	return true;
}

static void blocking_iq(struct iq_request *req, void *ctx)
{
	struct blk_state *ps = ctx;
	struct host *h = ps->host;
	if (req->from.node == NULL || strcmp(req->from.domain, h->name) != 0 ||
	    !jid_bare_equal(&req->from, &req->to)) {
		iq_error(req, SE_FORBIDDEN, "a blocklist is the owner's only");
		return;
	}
	const char *user = req->from.node;
	struct blk_user *u = user_get(ps, user);
	bool get = strcmp(req->type, "get") == 0;
	if (get) {
		if (!xml_is(req->payload, "blocklist", NS_BLOCKING)) {
			iq_error(req, SE_BAD_REQUEST, NULL);
			return;
		}
		struct session *s = sm_find(h, &req->from);
		if (u != NULL && s != NULL)
			set_interested(u, s->id);
		if (u != NULL && u->loaded) {
			struct xml_node *el = list_element("blocklist", &u->jids);
			iq_result(req, el);
			xml_unref(&el);
			return;
		}
		struct blk_op *op = op_new(ps, BK_GET, user, req);
		pending_wait_storage(&op->p,
		                     storage_blocklist_get(h->storage, h->name, user, blocklist_read, op));
		return;
	}
	bool block = xml_is(req->payload, "block", NS_BLOCKING);
	if (!block && !xml_is(req->payload, "unblock", NS_BLOCKING)) {
		iq_error(req, SE_BAD_REQUEST, NULL);
		return;
	}
	struct strlist jids = { 0 };
	if (!read_items(req, &jids)) {
		strlist_free(&jids);
		return;
	}
	if (block && jids.count == 0) {
		iq_error(req, SE_BAD_REQUEST, "a block names at least one JID");
		return;
	}
	if (block) {
		/* Judged on the cache when it is there (else on the request only). */
		size_t total = jids.count;
		if (u != NULL && u->loaded) {
			total = u->jids.count;
			for (size_t i = 0; i < jids.count; i++)
				if (!list_has(&u->jids, jids.items[i]))
					total++;
		}
		if (total > ps->set->max_items) {
			char *text = xasprintf("at most %u JIDs can be blocked", ps->set->max_items);
			iq_error(req, SE_RESOURCE_CONSTRAINT, text);
			free(text);
			strlist_free(&jids);
			return;
		}
	}
	struct blk_op *op = op_new(ps, block ? BK_BLOCK : BK_UNBLOCK, user, req);
	op->jids = jids;
	if (block)
		pending_wait_storage(&op->p, storage_blocklist_add(h->storage, h->name, user,
		                                                   (const char *const *)jids.items,
		                                                   jids.count, blocklist_written, op));
	else
		pending_wait_storage(&op->p, storage_blocklist_remove(h->storage, h->name, user,
		                                                      (const char *const *)jids.items,
		                                                      jids.count, blocklist_written, op));
}

/* ---- hooks --------------------------------------------------------------------------- */

/* A session opened (user_cache): the list is read at the first one. */
static void blocking_opened(struct user_cache_entry *e, struct session *s, void *ctx)
{
	(void)s;
	user_load(ctx, (struct blk_user *)e);
}

static void blocking_closed(struct user_cache_entry *e, struct session *s, void *ctx)
{
	(void)ctx;
	struct blk_user *u = (struct blk_user *)e;
	for (size_t i = 0; i < u->ninterested; i++) {
		if (u->interested[i] == s->id) {
			u->interested[i] = u->interested[--u->ninterested];
			break;
		}
	}
}

/* XEP-0191 §3.5: stanzas to a local user from a JID it blocks. */
static enum hook_result blocking_in(struct host *h, void *args, void *ctx)
{
	struct blk_state *ps = ctx;
	struct hook_packet *hp = args;
	if (ps->bypass || hp->to == NULL || hp->to->node == NULL || hp->from == NULL)
		return HOOK_CONTINUE;
	/* A user with no session has no cache: what the server answers on
	 * its behalf waits for the stored lists (the privacy list's too). */
	if (builtin_refusal_hold_iq(&ps->ops, h, hp))
		return HOOK_STOP;
	enum stanza_kind kind = stanza_kind(hp->stanza);
	if (blocks(ps, hp->to->node, hp->from)) {
		const char *type = xml_attr(hp->stanza, "type");
		bool request = kind == STANZA_IQ && type != NULL &&
		               (strcmp(type, "get") == 0 || strcmp(type, "set") == 0);
		if (kind == STANZA_MESSAGE || request)
			router_bounce(hp->stanza, SE_SERVICE_UNAVAILABLE, NULL);
		return HOOK_STOP;
	}
	/* Presence the server sends on a local user's behalf (broadcast, probe
	 * answers) to a JID that user blocks.  The sender's list is kept by
	 * the blocking module of its own host (this one, or another local
	 * host). */
	if (kind != STANZA_PRESENCE || hp->from->node == NULL || hp->from->domain == NULL)
		return HOOK_CONTINUE;
	struct host *fh = strcmp(hp->from->domain, h->name) == 0 ? h : host_find(hp->from->domain);
	struct blk_state *fps = fh == h ? ps : fh != NULL ? module_state(fh, "blocking") : NULL;
	if (fps != NULL && !fps->bypass && blocks(fps, hp->from->node, hp->to))
		return HOOK_STOP;
	return HOOK_CONTINUE;
}

/* XEP-0191 §3.6: a stanza the user sends to a JID it blocks. */
static enum hook_result blocking_send(struct host *h, void *args, void *ctx)
{
	struct blk_state *ps = ctx;
	struct hook_packet *hp = args;
	if (hp->session == NULL || hp->to == NULL)
		return HOOK_CONTINUE;
	const char *user = hp->session->jid.node;
	if (!blocks(ps, user, hp->to))
		return HOOK_CONTINUE;
	const char *type = xml_attr(hp->stanza, "type");
	if (type != NULL && (strcmp(type, "error") == 0 ||
	                     (stanza_kind(hp->stanza) == STANZA_IQ && strcmp(type, "result") == 0)))
		return HOOK_STOP;
	builtin_refuse_sent(hp->session, hp->stanza, SE_NOT_ACCEPTABLE, NULL, "blocked", NS_BLOCKING_ERRORS);
	return HOOK_STOP;
}

/* ---- module ------------------------------------------------------------------------------ */

static const struct builtin_iq blocking_iqs[] = {
	{ IQ_SCOPE_USER, NS_BLOCKING, IQ_PARALLEL, blocking_iq },
};

static const struct builtin_hook blocking_hooks[] = {
	/* Before mod_presence (40) sees a subscription stanza to a blocked JID. */
	{ HOOK_USER_SEND_PACKET, 10, blocking_send },
	{ HOOK_STANZA_IN, 10, blocking_in },
};

static const struct builtin_parts blocking_parts = {
	.iqs = blocking_iqs,
	.niqs = ARRAY_SIZE(blocking_iqs),
	.hooks = blocking_hooks,
	.nhooks = ARRAY_SIZE(blocking_hooks),
	.feature = NS_BLOCKING,
	.user_feature = NS_BLOCKING,
};

static int blocking_start(struct host *h, const void *settings, void **state_r, char **error_r)
{
	struct blk_state *ps = xcalloc(1, sizeof(*ps));
	ps->host = h;
	ps->set = settings;
	if (builtin_parts_add(h, &blocking_parts, ps, error_r) < 0) {
		free(ps);
		return -1;
	}
	/* With the sessions bound before this module started (a reload). */
	ps->users = (struct user_cache){
		.entry_size = sizeof(struct blk_user),
		.opened = blocking_opened,
		.closed = blocking_closed,
		.clear = user_clear,
		.ctx = ps,
	};
	user_cache_start(&ps->users, h);
	*state_r = ps;
	return 0;
}

static void blocking_stop(struct host *h, void *state)
{
	struct blk_state *ps = state;
	builtin_parts_remove(h, &blocking_parts, ps);
	user_cache_stop(&ps->users); /* cancels the reads of the cache */
	pending_stop(&ps->ops);
	free(ps);
}

const struct module_def mod_blocking = {
	.name = "blocking",
	.description = "XEP-0191 blocking command: users block JIDs, whose stanzas are not "
	               "delivered to them and to whom theirs are not sent",
	.options = blocking_options,
	.settings_size = sizeof(struct blocking_settings),
	.default_enabled = true,
	.start = blocking_start,
	.stop = blocking_stop,
};
