/*
 * mod_privacy: privacy lists (XEP-0016, jabber:iq:privacy).  A user keeps
 * named lists of ordered allow/deny rules (by JID, roster group,
 * subscription or everyone; for messages, iqs, inbound or outbound presence
 * notifications, or every stanza); one list may be the default, and each
 * session may make another list its active one.  Lists are stored with
 * storage_privacy_*; the active list is session state.  Loop thread.
 *
 * Where stanzas come from:
 * - the iq handler (IQ_SCOPE_USER, IQ_ONE_QUEUE: one privacy request in
 *   flight per host, so a request is always judged on a cache that holds
 *   every earlier change): get the names / one list; set one list (create,
 *   replace, or remove with an empty <list/>), the active list, the
 *   default list.  A change is stored first; when storage says OK the
 *   cache is updated, the requester answered and, for a list change, a
 *   push sent to every session of the user (§2.6).  Then a peer that the
 *   list a session applies now denies presence-out, and did not before,
 *   is sent unavailable from that session if it sees it available: a
 *   contact allowed to see the user's presence, or a directed-presence
 *   target of the session (hide_newly_denied).
 * - user_receive_packet (sm.c, once per session a stanza is about to be
 *   written to): the session's active list, else the default list, with
 *   the sender as peer.  HOOK_STOP refuses it for that session (sm.c
 *   bounces messages and iq requests with <service-unavailable/>, drops
 *   presence).
 * - stanza_in (sm_route): an iq request to a user's bare JID (answered by
 *   the server on the user's behalf) is judged on the default list; a
 *   presence from a local user of this or another local host (broadcasts
 *   and probe answers the server sends on the user's behalf) is judged on
 *   the sending session's list (presence-out, from the sender's host's
 *   instance of this module) with the recipient as peer.  That judgement
 *   is privacy_denies_presence, which mod_presence asks too before it
 *   routes such presence to another server or a service (no stanza_in
 *   there): each presence on a user's behalf is judged once.
 * - user_send_packet (priority 11, after mod_blocking, before
 *   mod_presence): what the user sends to a peer its list denies: a
 *   presence is dropped, a message or iq request answered with
 *   <not-acceptable/>.  Outbound messages and iqs are judged on items that
 *   apply to every stanza only (the XEP's message and iq items are about
 *   inbound stanzas).
 * - roster_changed: the cached roster (group and subscription rules): the
 *   roster the user sees, stored items and shared contacts (roster_view).
 * - session_opened / session_closed: the per-user cache (user-cache.h).
 *
 * Privacy lists and the blocking command (XEP-0191, mod_blocking) are kept
 * apart: each has its own table and both are enforced, so a stanza passes
 * only when neither refuses it.  A block list is not a privacy list here.
 *
 * Invariants:
 * - Enforcement reads the cache only.  A user has a cache entry while it
 *   has a session.  Lists and roster are read at the first session's open;
 *   until they have arrived the user is treated as having no list (stanzas
 *   are not held back).  A failed read is retried at the next request or
 *   session open.  A user with no session is not filtered here: the stored
 *   default list is read (builtin_refusal_start) by mod_offline before it
 *   stores a message and by mod_presence before a subscription stanza
 *   changes the roster; an iq request to the user's bare JID waits for it
 *   in stanza_in (builtin_refusal_hold_iq, mod_blocking's when it runs).
 * - Stanzas between a user and its own account or its own host are never
 *   filtered (a deny-all list must not cut a client off its roster pushes).
 * - Unavailable presence sent when a list starts denying presence-out is
 *   routed with ps->bypass set (routing to a local user is synchronous),
 *   so privacy_denies_presence lets it pass.
 * - Every storage call is a struct prv_op on the module's pending list
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

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define NS_PRIVACY "jabber:iq:privacy"

struct privacy_settings {
	unsigned max_lists;
	unsigned max_items;
};

static const struct opt_def privacy_options[] = {
	{ "max_lists", OPT_UINT, offsetof(struct privacy_settings, max_lists), "20", NULL, 1, 1000,
	  "most privacy lists one user may keep; a new list beyond is refused with "
	  "resource-constraint" },
	{ "max_items", OPT_UINT, offsetof(struct privacy_settings, max_items), "250", NULL, 1, 100000,
	  "most items one privacy list may hold; a longer list is refused with "
	  "resource-constraint" },
	OPT_END
};

/* A cached rule: the stored item with its JID parsed. */
struct prv_item {
	enum privacy_type type;
	bool allow;
	uint32_t order;
	unsigned stanzas;
	char *value;
	struct jid jid; /* PRIVACY_JID */
};

struct prv_list {
	char *name;
	struct prv_item *items; /* ascending order */
	size_t nitems;
};

struct prv_contact {
	char *jid; /* bare */
	enum roster_subscription sub;
	struct strlist groups;
};

struct prv_sess {
	uint64_t id;
	char *active; /* NULL: none (the default applies) */
};

struct prv_user {
	struct user_cache_entry e; /* first: e.user is the user */
	bool loaded, roster_loaded;
	struct prv_op *load, *rload; /* reads in flight, or NULL */
	struct prv_list *lists;      /* sorted by name */
	size_t nlists;
	char *default_name;
	struct prv_contact *roster; /* sorted by jid */
	size_t nroster;
	struct prv_sess *sess;
	size_t nsess;
};

enum prv_kind { PK_LOAD, PK_RLOAD, PK_READ_FOR_IQ, PK_SET_LIST, PK_REMOVE_LIST, PK_DEFAULT };

struct prv_state;

struct prv_op {
	struct pending_op p;  /* first: the state's list of ops; p.req the request */
	struct prv_state *ps; /* valid while p is listed */
	enum prv_kind kind;
	char *user;
	char *name;           /* list name (PK_DEFAULT: NULL declines) */
	struct prv_list list; /* PK_SET_LIST: the new list */
};

struct prv_state {
	struct host *host;
	const struct privacy_settings *set;
	struct pending_ops ops;
	struct user_cache users; /* struct prv_user */
	bool bypass;             /* routing our own unavailable presence */
};

/* ---- cache ------------------------------------------------------------------------ */

static struct prv_user *user_get(struct prv_state *ps, const char *name)
{
	return user_cache_get(&ps->users, name);
}

static void list_clear(struct prv_list *l)
{
	for (size_t i = 0; i < l->nitems; i++) {
		free(l->items[i].value);
		jid_clear(&l->items[i].jid);
	}
	free(l->items);
	free(l->name);
	memset(l, 0, sizeof(*l));
}

static void lists_clear(struct prv_user *u)
{
	for (size_t i = 0; i < u->nlists; i++)
		list_clear(&u->lists[i]);
	free(u->lists);
	u->lists = NULL;
	u->nlists = 0;
	free(u->default_name);
	u->default_name = NULL;
}

static void roster_clear(struct prv_user *u)
{
	for (size_t i = 0; i < u->nroster; i++) {
		free(u->roster[i].jid);
		strlist_free(&u->roster[i].groups);
	}
	free(u->roster);
	u->roster = NULL;
	u->nroster = 0;
}

static struct prv_list *list_find(struct prv_user *u, const char *name)
{
	for (size_t i = 0; i < u->nlists; i++)
		if (strcmp(u->lists[i].name, name) == 0)
			return &u->lists[i];
	return NULL;
}

static int cmp_list(const void *a, const void *b)
{
	return strcmp(((const struct prv_list *)a)->name, ((const struct prv_list *)b)->name);
}

static int cmp_item(const void *a, const void *b)
{
	uint32_t x = ((const struct prv_item *)a)->order, y = ((const struct prv_item *)b)->order;
	return x < y ? -1 : x > y;
}

static int cmp_contact(const void *a, const void *b)
{
	return strcmp(((const struct prv_contact *)a)->jid, ((const struct prv_contact *)b)->jid);
}

/* Copy a stored list into the cache form. */
static void list_from_storage(struct prv_list *dst, const struct privacy_list *src)
{
	dst->name = xstrdup(src->name);
	dst->nitems = src->nitems;
	dst->items = src->nitems > 0 ? xcalloc(src->nitems, sizeof(*dst->items)) : NULL;
	for (size_t i = 0; i < src->nitems; i++) {
		const struct privacy_item *s = &src->items[i];
		struct prv_item *d = &dst->items[i];
		d->type = s->type;
		d->allow = s->allow;
		d->order = s->order;
		d->stanzas = s->stanzas;
		d->value = s->value != NULL ? xstrdup(s->value) : NULL;
		const char *err;
		if (d->type == PRIVACY_JID && jid_parse(d->value, &d->jid, &err) != 0)
			memset(&d->jid, 0, sizeof(d->jid)); /* matches nobody */
	}
	if (dst->nitems > 1)
		qsort(dst->items, dst->nitems, sizeof(*dst->items), cmp_item);
}

/* Deep copy (for a list change that goes into the cache). */
static void list_copy(struct prv_list *dst, const struct prv_list *src)
{
	dst->name = xstrdup(src->name);
	dst->nitems = src->nitems;
	dst->items = xcalloc(src->nitems, sizeof(*dst->items));
	for (size_t i = 0; i < src->nitems; i++) {
		dst->items[i] = src->items[i];
		dst->items[i].value = src->items[i].value != NULL ? xstrdup(src->items[i].value) : NULL;
		memset(&dst->items[i].jid, 0, sizeof(struct jid));
		if (src->items[i].jid.domain != NULL)
			jid_copy(&dst->items[i].jid, &src->items[i].jid);
	}
}

static void cache_set_list(struct prv_user *u, const struct prv_list *l)
{
	struct prv_list *old = list_find(u, l->name);
	if (old != NULL) {
		list_clear(old);
		list_copy(old, l);
	} else {
		u->lists = xrealloc(u->lists, (u->nlists + 1) * sizeof(*u->lists));
		list_copy(&u->lists[u->nlists++], l);
	}
	if (u->nlists > 1)
		qsort(u->lists, u->nlists, sizeof(*u->lists), cmp_list);
}

static void cache_remove_list(struct prv_user *u, const char *name)
{
	struct prv_list *l = list_find(u, name);
	if (l == NULL)
		return;
	size_t i = (size_t)(l - u->lists);
	list_clear(l);
	memmove(&u->lists[i], &u->lists[i + 1], (u->nlists - i - 1) * sizeof(*u->lists));
	u->nlists--;
	if (u->default_name != NULL && strcmp(u->default_name, name) == 0) {
		free(u->default_name);
		u->default_name = NULL;
	}
	for (size_t k = 0; k < u->nsess; k++) {
		if (u->sess[k].active != NULL && strcmp(u->sess[k].active, name) == 0) {
			free(u->sess[k].active);
			u->sess[k].active = NULL;
		}
	}
}

static void cache_roster_set(struct prv_user *u, const struct roster_item *it)
{
	struct prv_contact key = { .jid = it->jid };
	struct prv_contact *c =
	        u->nroster > 0 ? bsearch(&key, u->roster, u->nroster, sizeof(*u->roster), cmp_contact) : NULL;
	if (it->subscription == SUB_REMOVE) {
		if (c != NULL) {
			size_t i = (size_t)(c - u->roster);
			free(c->jid);
			strlist_free(&c->groups);
			memmove(&u->roster[i], &u->roster[i + 1], (u->nroster - i - 1) * sizeof(*c));
			u->nroster--;
		}
		return;
	}
	if (c == NULL) {
		u->roster = xrealloc(u->roster, (u->nroster + 1) * sizeof(*u->roster));
		c = &u->roster[u->nroster++];
		memset(c, 0, sizeof(*c));
		c->jid = xstrdup(it->jid);
	} else {
		strlist_free(&c->groups);
	}
	c->sub = it->subscription;
	c->groups.count = it->groups.count;
	c->groups.items = it->groups.count > 0 ? xcalloc(it->groups.count, sizeof(char *)) : NULL;
	for (size_t i = 0; i < it->groups.count; i++)
		c->groups.items[i] = xstrdup(it->groups.items[i]);
	if (u->nroster > 1)
		qsort(u->roster, u->nroster, sizeof(*u->roster), cmp_contact);
}

static struct prv_sess *sess_find(struct prv_user *u, uint64_t id)
{
	for (size_t i = 0; i < u->nsess; i++)
		if (u->sess[i].id == id)
			return &u->sess[i];
	return NULL;
}

/* ---- matching (XEP-0016 §2.1) ------------------------------------------------------- */

static bool jid_item_matches(const struct jid *j, const struct jid *peer)
{
	if (j->domain == NULL || peer->domain == NULL || strcmp(j->domain, peer->domain) != 0)
		return false;
	if (j->node == NULL && j->resource == NULL)
		return true; /* <domain>: everything there */
	if (j->node == NULL) /* <domain/resource>: any user there with that resource */
		return peer->resource != NULL && strcmp(j->resource, peer->resource) == 0;
	if (peer->node == NULL || strcmp(j->node, peer->node) != 0)
		return false;
	return j->resource == NULL || (peer->resource != NULL && strcmp(j->resource, peer->resource) == 0);
}

static const struct prv_contact *contact_of(const struct prv_user *u, const struct jid *peer)
{
	if (u->nroster == 0)
		return NULL;
	char *bare = jid_bare_string(peer);
	struct prv_contact key = { .jid = bare };
	const struct prv_contact *c = bsearch(&key, u->roster, u->nroster, sizeof(*u->roster), cmp_contact);
	free(bare);
	return c;
}

static bool item_matches(const struct prv_user *u, const struct prv_item *it, const struct jid *peer)
{
	switch (it->type) {
	case PRIVACY_ALL: return true;
	case PRIVACY_JID: return jid_item_matches(&it->jid, peer);
	case PRIVACY_GROUP: {
		const struct prv_contact *c = contact_of(u, peer);
		return c != NULL && strlist_contains(&c->groups, it->value);
	}
	case PRIVACY_SUBSCRIPTION: {
		const struct prv_contact *c = contact_of(u, peer);
		enum roster_subscription s = c != NULL ? c->sub : SUB_NONE;
		return strcmp(roster_subscription_str(s), it->value) == 0;
	}
	}
	return false;
}

/* Whether list l denies a stanza of kind bit (a PRIVACY_* bit, or 0 for
 * what only items applying to every stanza cover) with peer. */
static bool list_denies(const struct prv_user *u, const struct prv_list *l, unsigned bit,
                        const struct jid *peer)
{
	if (l == NULL || peer == NULL || peer->domain == NULL)
		return false;
	for (size_t i = 0; i < l->nitems; i++) {
		const struct prv_item *it = &l->items[i];
		if (it->stanzas != 0 && (it->stanzas & bit) == 0)
			continue;
		if (item_matches(u, it, peer))
			return !it->allow;
	}
	return false;
}

/* The list that applies to a session (NULL: the user's default). */
static struct prv_list *effective_list(struct prv_user *u, const struct session *s)
{
	if (u == NULL || !u->loaded)
		return NULL;
	struct prv_sess *ps = s != NULL ? sess_find(u, s->id) : NULL;
	if (ps != NULL && ps->active != NULL)
		return list_find(u, ps->active);
	return u->default_name != NULL ? list_find(u, u->default_name) : NULL;
}

/* Presence notifications (no type, or unavailable) are what presence-in and
 * presence-out items cover; other presence only items for every stanza. */
static bool is_notification(const struct xml_node *stanza)
{
	const char *type = xml_attr(stanza, "type");
	return type == NULL || strcmp(type, "unavailable") == 0;
}

static unsigned inbound_bit(const struct xml_node *stanza)
{
	switch (stanza_kind(stanza)) {
	case STANZA_MESSAGE: return PRIVACY_MESSAGE;
	case STANZA_IQ: return PRIVACY_IQ;
	case STANZA_PRESENCE: return is_notification(stanza) ? PRIVACY_PRESENCE_IN : 0;
	default: return 0;
	}
}

/* The same rules over a stored list (mod_offline, for users with no
 * session). */
bool privacy_list_denies(const struct privacy_list *list, const struct roster_item *roster, size_t nroster,
                         unsigned bit, const struct jid *peer)
{
	if (list == NULL || peer == NULL || peer->domain == NULL)
		return false;
	char *bare = jid_bare_string(peer);
	const struct roster_item *contact = NULL;
	for (size_t i = 0; i < nroster; i++)
		if (strcmp(roster[i].jid, bare) == 0)
			contact = &roster[i];
	free(bare);
	for (size_t i = 0; i < list->nitems; i++) {
		const struct privacy_item *it = &list->items[i];
		if (it->stanzas != 0 && (it->stanzas & bit) == 0)
			continue;
		bool match = false;
		switch (it->type) {
		case PRIVACY_ALL: match = true; break;
		case PRIVACY_JID: {
			struct jid j;
			const char *err;
			if (jid_parse(it->value, &j, &err) == 0) {
				match = jid_item_matches(&j, peer);
				jid_clear(&j);
			}
			break;
		}
		case PRIVACY_GROUP:
			match = contact != NULL && strlist_contains(&contact->groups, it->value);
			break;
		case PRIVACY_SUBSCRIPTION: {
			enum roster_subscription sub = contact != NULL ? contact->subscription : SUB_NONE;
			match = strcmp(roster_subscription_str(sub), it->value) == 0;
			break;
		}
		}
		if (match)
			return !it->allow;
	}
	return false;
}

bool privacy_list_needs_roster(const struct privacy_list *list)
{
	for (size_t i = 0; list != NULL && i < list->nitems; i++)
		if (list->items[i].type == PRIVACY_GROUP || list->items[i].type == PRIVACY_SUBSCRIPTION)
			return true;
	return false;
}

/* ---- operations --------------------------------------------------------------------- */

static void op_free(struct pending_op *p)
{
	struct prv_op *op = (struct prv_op *)p;
	pending_untrack(p);
	free(op->user);
	free(op->name);
	list_clear(&op->list);
	free(op);
}

static struct prv_op *op_new(struct prv_state *ps, enum prv_kind kind, const char *user,
                             struct iq_request *req)
{
	struct prv_op *op = xcalloc(1, sizeof(*op));
	op->ps = ps;
	op->kind = kind;
	op->p.req = req;
	op->user = xstrdup(user);
	pending_track(&ps->ops, &op->p, op_free);
	return op;
}

static void lists_read(enum storage_result res, const struct privacy_list *lists, size_t n,
                       const char *default_name, void *ctx);
static void roster_read(enum storage_result res, const struct roster_item *items, size_t count,
                        uint64_t version, void *ctx);

static void user_load(struct prv_state *ps, struct prv_user *u)
{
	struct host *h = ps->host;
	if (!u->loaded && u->load == NULL) {
		struct prv_op *op = op_new(ps, PK_LOAD, u->e.user, NULL);
		u->load = op;
		pending_wait_storage(&op->p,
		                     storage_privacy_get(h->storage, h->name, u->e.user, lists_read, op));
	}
	if (!u->roster_loaded && u->rload == NULL) {
		struct prv_op *op = op_new(ps, PK_RLOAD, u->e.user, NULL);
		u->rload = op;
		pending_wait_storage(&op->p,
		                     storage_roster_get(h->storage, h->name, u->e.user, roster_read, op));
	}
}

/* The user's last session closed, or the module stops (user_cache clear):
 * reads in flight are cancelled (inside its callback, a read finds no
 * user). */
static void user_clear(struct user_cache_entry *e, void *ctx)
{
	(void)ctx;
	struct prv_user *u = (struct prv_user *)e;
	if (u->load != NULL)
		pending_cancel(&u->load->p);
	if (u->rload != NULL)
		pending_cancel(&u->rload->p);
	lists_clear(u);
	roster_clear(u);
	for (size_t i = 0; i < u->nsess; i++)
		free(u->sess[i].active);
	free(u->sess);
}

static void handle_iq(struct prv_state *ps, struct iq_request *req, struct prv_user *u);

static void cache_fill(struct prv_user *u, const struct privacy_list *lists, size_t n,
                       const char *default_name)
{
	lists_clear(u);
	u->lists = n > 0 ? xcalloc(n, sizeof(*u->lists)) : NULL;
	for (size_t i = 0; i < n; i++)
		list_from_storage(&u->lists[i], &lists[i]);
	u->nlists = n;
	if (u->nlists > 1)
		qsort(u->lists, u->nlists, sizeof(*u->lists), cmp_list);
	u->default_name = default_name != NULL ? xstrdup(default_name) : NULL;
	u->loaded = true;
}

static void lists_read(enum storage_result res, const struct privacy_list *lists, size_t n,
                       const char *default_name, void *ctx)
{
	struct prv_op *op = ctx;
	if (!pending_resume(&op->p))
		return;
	struct prv_state *ps = op->ps;
	struct prv_user *u = user_get(ps, op->user);
	if (op->kind == PK_LOAD && u != NULL && u->load == op)
		u->load = NULL;
	if (res == STORAGE_OK && u != NULL && !u->loaded)
		cache_fill(u, lists, n, default_name);
	else if (res != STORAGE_OK && op->kind == PK_LOAD)
		log_warning("privacy %s: the privacy lists of %s cannot be read (storage %s); not "
		            "enforced until they can",
		            ps->host->name, op->user, storage_result_str(res));
	if (op->kind == PK_READ_FOR_IQ) {
		struct iq_request *req = op->p.req;
		op->p.req = NULL;
		if (res != STORAGE_OK)
			errmap_iq_storage(req, res, "the privacy store");
		else if (u == NULL)
			iq_error(req, SE_SERVICE_UNAVAILABLE, "the session has ended");
		else
			handle_iq(ps, req, u);
	}
	op_free(&op->p);
}

static void roster_read(enum storage_result res, const struct roster_item *items, size_t count,
                        uint64_t version, void *ctx)
{
	struct prv_op *op = ctx;
	if (!pending_resume(&op->p))
		return;
	struct prv_state *ps = op->ps;
	struct prv_user *u = user_get(ps, op->user);
	if (u != NULL && u->rload == op)
		u->rload = NULL;
	if (res == STORAGE_NOT_FOUND) {
		res = STORAGE_OK;
		count = 0;
	}
	if (res == STORAGE_OK && u != NULL && !u->roster_loaded) {
		/* The roster the user sees: shared contacts count as contacts in
		 * their groups with their subscription (later changes to them
		 * arrive through roster_changed, like stored ones). */
		struct roster_view view;
		roster_view_make(&view, ps->host, op->user, items, count, false);
		roster_clear(u);
		for (size_t i = 0; i < view.count; i++)
			cache_roster_set(u, &view.items[i]);
		roster_view_clear(&view);
		u->roster_loaded = true;
	} else if (res != STORAGE_OK) {
		log_warning("privacy %s: the roster of %s cannot be read (storage %s); group and "
		            "subscription rules see no contacts",
		            ps->host->name, op->user, storage_result_str(res));
	}
	op_free(&op->p);
}

/* The list a session of a user applied before a change (a copy). */
struct prv_before {
	uint64_t id;
	bool has;
	struct prv_list list;
};

/* What each session of u applies now, copied; *n_r entries (NULL when 0). */
static struct prv_before *before_take(struct prv_state *ps, struct prv_user *u, size_t *n_r)
{
	size_t n = 0;
	for (struct session *s = sm_user_sessions(ps->host, u->e.user); s != NULL; s = s->next_of_user)
		n++;
	*n_r = n;
	if (n == 0)
		return NULL;
	struct prv_before *b = xcalloc(n, sizeof(*b));
	size_t i = 0;
	for (struct session *s = sm_user_sessions(ps->host, u->e.user); s != NULL && i < n;
	     s = s->next_of_user, i++) {
		const struct prv_list *l = effective_list(u, s);
		b[i].id = s->id;
		b[i].has = l != NULL;
		if (l != NULL)
			list_copy(&b[i].list, l);
	}
	return b;
}

static bool has_from(enum roster_subscription sub)
{
	return sub == SUB_FROM || sub == SUB_BOTH;
}

/* Whether a session's list went from not denying presence-out to peer
 * (old) to denying it (now), and nothing else keeps peer from the user's
 * presence already (the peer is not exempt, the block list does not block
 * it). */
static bool newly_denied(struct prv_state *ps, struct prv_user *u, const struct prv_list *old,
                         const struct prv_list *now, const struct jid *peer)
{
	return !builtin_filter_exempt(ps->host, u->e.user, peer) &&
	       list_denies(u, now, PRIVACY_PRESENCE_OUT, peer) &&
	       !list_denies(u, old, PRIVACY_PRESENCE_OUT, peer) &&
	       !blocking_blocks(ps->host, u->e.user, peer);
}

/* XEP-0016 presence-out (as XEP-0191 §3.3 says for a block): a change that
 * makes the list a session applies deny presence-out to a peer that sees
 * the session available sends the peer unavailable from that session: a
 * contact allowed to see the user's presence (subscription from or both,
 * when the session is available) or a directed-presence target of the
 * session (presence_directed; skipped when its bare JID is told as a
 * contact).  A peer the block list blocks has been told by it.  before (n
 * entries, from before_take) is freed here.  The user is looked up again:
 * answering the request may have closed its last session. */
static void hide_newly_denied(struct prv_state *ps, const char *user, struct prv_before *before, size_t n)
{
	struct host *h = ps->host;
	struct prv_user *u = user_get(ps, user);
	/* Copied first: routing may close a session. */
	struct jid *from = NULL, *to = NULL;
	size_t m = 0;
	for (struct session *s = u != NULL ? sm_user_sessions(h, user) : NULL; s != NULL;
	     s = s->next_of_user) {
		const struct prv_before *b = NULL;
		for (size_t i = 0; i < n && b == NULL; i++)
			if (before[i].id == s->id)
				b = &before[i];
		const struct prv_list *now = effective_list(u, s);
		if (b == NULL || now == NULL)
			continue;
		const struct prv_list *old = b->has ? &b->list : NULL;
		size_t nc = s->available ? u->nroster : 0;
		const struct strlist *directed = presence_directed(h, s);
		size_t nd = directed != NULL ? directed->count : 0;
		for (size_t i = 0; i < nc + nd; i++) {
			struct jid peer;
			const char *err;
			if (i < nc && !has_from(u->roster[i].sub))
				continue;
			if (jid_parse(i < nc ? u->roster[i].jid : directed->items[i - nc], &peer, &err) != 0)
				continue;
			bool tell = newly_denied(ps, u, old, now, &peer);
			if (tell && i >= nc && s->available && peer.node != NULL) {
				const struct prv_contact *c = contact_of(u, &peer);
				struct jid bare = { 0 };
				jid_set(&bare, peer.node, peer.domain, NULL);
				tell = c == NULL || !has_from(c->sub) ||
				       !newly_denied(ps, u, old, now, &bare);
				jid_clear(&bare);
			}
			if (!tell) {
				jid_clear(&peer);
				continue;
			}
			from = xrealloc(from, (m + 1) * sizeof(*from));
			to = xrealloc(to, (m + 1) * sizeof(*to));
			jid_copy(&from[m], &s->jid);
			to[m++] = peer;
		}
	}
	for (size_t i = 0; i < n; i++)
		if (before[i].has)
			list_clear(&before[i].list);
	free(before);
	builtin_route_unavailable(from, to, m, &ps->bypass);
}

/* §2.6: tell every session of the user that list name changed. */
static void push(struct prv_state *ps, const char *user, const char *name)
{
	struct jid *targets;
	size_t n = builtin_sessions(ps->host, user, NULL, NULL, &targets);
	if (n == 0)
		return;
	struct xml_node *q = iq_payload_new("query", NS_PRIVACY);
	xml_set_attr(xml_add_child(q, "list", NS_PRIVACY), "name", name);
	builtin_push(ps->host, user, targets, n, q);
	xml_unref(&q);
}

static void written(enum storage_result res, void *ctx)
{
	struct prv_op *op = ctx;
	if (!pending_resume(&op->p))
		return;
	struct prv_state *ps = op->ps;
	if (res == STORAGE_NOT_FOUND) {
		iq_error(op->p.req, errmap_storage(res), "no such privacy list");
		op_free(&op->p);
		return;
	}
	if (res != STORAGE_OK) {
		errmap_iq_storage(op->p.req, res, "the privacy store");
		op_free(&op->p);
		return;
	}
	struct prv_user *u = user_get(ps, op->user);
	size_t nbefore = 0;
	struct prv_before *before = u != NULL && u->loaded ? before_take(ps, u, &nbefore) : NULL;
	if (u != NULL && u->loaded) {
		switch (op->kind) {
		case PK_SET_LIST: cache_set_list(u, &op->list); break;
		case PK_REMOVE_LIST: cache_remove_list(u, op->name); break;
		case PK_DEFAULT:
			free(u->default_name);
			u->default_name = op->name != NULL ? xstrdup(op->name) : NULL;
			break;
		default: break;
		}
	}
	iq_result(op->p.req, NULL);
	op->p.req = NULL;
	if (op->kind == PK_SET_LIST)
		push(ps, op->user, op->list.name);
	else if (op->kind == PK_REMOVE_LIST)
		push(ps, op->user, op->name);
	if (before != NULL)
		hide_newly_denied(ps, op->user, before, nbefore);
	op_free(&op->p);
}

/* ---- the iq handler ---------------------------------------------------------------------- */

static const char *const stanza_names[] = { "message", "iq", "presence-in", "presence-out" };

static struct xml_node *list_to_xml(const struct prv_list *l)
{
	struct xml_node *q = iq_payload_new("query", NS_PRIVACY);
	struct xml_node *el = xml_add_child(q, "list", NS_PRIVACY);
	xml_set_attr(el, "name", l->name);
	for (size_t i = 0; i < l->nitems; i++) {
		const struct prv_item *it = &l->items[i];
		struct xml_node *x = xml_add_child(el, "item", NS_PRIVACY);
		if (it->type != PRIVACY_ALL) {
			xml_set_attr(x, "type", privacy_type_str(it->type));
			xml_set_attr(x, "value", it->value);
		}
		xml_set_attr(x, "action", it->allow ? "allow" : "deny");
		char order[16];
		snprintf(order, sizeof(order), "%u", (unsigned)it->order);
		xml_set_attr(x, "order", order);
		for (unsigned b = 0; b < 4; b++)
			if (it->stanzas & (1u << b))
				xml_add_child(x, stanza_names[b], NS_PRIVACY);
	}
	return q;
}

static void answer_get(struct iq_request *req, struct prv_user *u, const struct session *s)
{
	struct xml_node *first = xml_first_element(req->payload);
	if (first == NULL) {
		struct xml_node *q = iq_payload_new("query", NS_PRIVACY);
		struct prv_sess *ps = s != NULL ? sess_find(u, s->id) : NULL;
		if (ps != NULL && ps->active != NULL)
			xml_set_attr(xml_add_child(q, "active", NS_PRIVACY), "name", ps->active);
		if (u->default_name != NULL)
			xml_set_attr(xml_add_child(q, "default", NS_PRIVACY), "name", u->default_name);
		for (size_t i = 0; i < u->nlists; i++)
			xml_set_attr(xml_add_child(q, "list", NS_PRIVACY), "name", u->lists[i].name);
		iq_result(req, q);
		xml_unref(&q);
		return;
	}
	if (xml_element_count(req->payload) != 1 || !xml_is(first, "list", NS_PRIVACY) ||
	    xml_attr(first, "name") == NULL) {
		iq_error(req, SE_BAD_REQUEST, "ask for the list names, or for exactly one list");
		return;
	}
	const struct prv_list *l = list_find(u, xml_attr(first, "name"));
	if (l == NULL) {
		iq_error(req, SE_ITEM_NOT_FOUND, "no such privacy list");
		return;
	}
	struct xml_node *q = list_to_xml(l);
	iq_result(req, q);
	xml_unref(&q);
}

/* Whether another session than self applies list name (as its active list,
 * or as the default when it has no active list and name is the default). */
static bool used_by_other(struct prv_state *ps, struct prv_user *u, const struct session *self,
                          const char *name)
{
	bool is_default = u->default_name != NULL && strcmp(u->default_name, name) == 0;
	for (struct session *s = sm_user_sessions(ps->host, u->e.user); s != NULL; s = s->next_of_user) {
		if (self != NULL && s->id == self->id)
			continue;
		struct prv_sess *r = sess_find(u, s->id);
		const char *active = r != NULL ? r->active : NULL;
		if (active != NULL ? strcmp(active, name) == 0 : is_default)
			return true;
	}
	return false;
}

/* Parse the items of a <list/> into l (sorted); answers req and returns
 * false when one is bad. */
static bool read_list(struct prv_state *ps, struct iq_request *req, const struct xml_node *el,
                      struct prv_list *l)
{
	size_t n = xml_element_count(el);
	if (n > ps->set->max_items) {
		char *text = xasprintf("a privacy list holds at most %u items", ps->set->max_items);
		iq_error(req, SE_RESOURCE_CONSTRAINT, text);
		free(text);
		return false;
	}
	l->items = xcalloc(n, sizeof(*l->items));
	for (struct xml_node *x = xml_first_element(el); x != NULL; x = xml_next(x, NULL, NULL)) {
		if (!xml_is(x, "item", NS_PRIVACY)) {
			iq_error(req, SE_BAD_REQUEST, "a list holds <item/> elements only");
			return false;
		}
		struct prv_item *it = &l->items[l->nitems++];
		const char *type = xml_attr(x, "type"), *value = xml_attr(x, "value");
		const char *action = xml_attr(x, "action"), *order = xml_attr(x, "order");
		if (action == NULL || (strcmp(action, "allow") != 0 && strcmp(action, "deny") != 0)) {
			iq_error(req, SE_BAD_REQUEST, "an item's action is 'allow' or 'deny'");
			return false;
		}
		it->allow = strcmp(action, "allow") == 0;
		char *end = NULL;
		errno = 0;
		unsigned long long o = order != NULL ? strtoull(order, &end, 10) : 0;
		if (order == NULL || *order == '\0' || *order == '-' || *end != '\0' || errno != 0 ||
		    o > UINT32_MAX) {
			iq_error(req, SE_BAD_REQUEST, "an item's order is an unsigned integer");
			return false;
		}
		it->order = (uint32_t)o;
		for (size_t k = 0; k + 1 < l->nitems; k++) {
			if (l->items[k].order == it->order) {
				iq_error(req, SE_BAD_REQUEST, "two items of a list have the same order");
				return false;
			}
		}
		if (type == NULL) {
			it->type = PRIVACY_ALL;
		} else if (value == NULL) {
			iq_error(req, SE_BAD_REQUEST, "an item with a type needs a value");
			return false;
		} else if (strcmp(type, "jid") == 0) {
			const char *err;
			it->type = PRIVACY_JID;
			if (jid_parse(value, &it->jid, &err) != 0) {
				iq_error(req, SE_BAD_REQUEST, "an item's JID is not valid");
				return false;
			}
			it->value = jid_to_string(&it->jid);
		} else if (strcmp(type, "group") == 0) {
			it->type = PRIVACY_GROUP;
		} else if (strcmp(type, "subscription") == 0) {
			it->type = PRIVACY_SUBSCRIPTION;
			if (strcmp(value, "both") != 0 && strcmp(value, "to") != 0 &&
			    strcmp(value, "from") != 0 && strcmp(value, "none") != 0) {
				iq_error(req, SE_BAD_REQUEST,
				         "a subscription item's value is both, to, from or none");
				return false;
			}
		} else {
			iq_error(req, SE_BAD_REQUEST, "an item's type is jid, group or subscription");
			return false;
		}
		if (it->value == NULL && it->type != PRIVACY_ALL)
			it->value = xstrdup(value);
		for (struct xml_node *c = xml_first_element(x); c != NULL; c = xml_next(c, NULL, NULL)) {
			unsigned b = 0;
			for (; b < 4; b++)
				if (xml_is(c, stanza_names[b], NS_PRIVACY))
					break;
			if (b == 4) {
				iq_error(req, SE_BAD_REQUEST,
				         "an item's children are message, iq, "
				         "presence-in or presence-out");
				return false;
			}
			it->stanzas |= 1u << b;
		}
	}
	if (l->nitems > 1)
		qsort(l->items, l->nitems, sizeof(*l->items), cmp_item);
	return true;
}

static void handle_set(struct prv_state *ps, struct iq_request *req, struct prv_user *u,
                       const struct session *s)
{
	struct host *h = ps->host;
	struct xml_node *el = xml_first_element(req->payload);
	if (el == NULL || xml_element_count(req->payload) != 1) {
		iq_error(req, SE_BAD_REQUEST, "a privacy set holds exactly one element");
		return;
	}
	const char *name = xml_attr(el, "name");
	if (xml_is(el, "active", NS_PRIVACY)) {
		struct prv_sess *r = s != NULL ? sess_find(u, s->id) : NULL;
		if (name != NULL && list_find(u, name) == NULL) {
			iq_error(req, SE_ITEM_NOT_FOUND, "no such privacy list");
			return;
		}
		if (r == NULL) {
			iq_error(req, SE_BAD_REQUEST, "an active list belongs to a session");
			return;
		}
		size_t nbefore;
		struct prv_before *before = before_take(ps, u, &nbefore);
		char *user = xstrdup(u->e.user); /* the answer frees req */
		free(r->active);
		r->active = name != NULL ? xstrdup(name) : NULL;
		iq_result(req, NULL);
		hide_newly_denied(ps, user, before, nbefore);
		free(user);
		return;
	}
	if (xml_is(el, "default", NS_PRIVACY)) {
		if (name != NULL && list_find(u, name) == NULL) {
			iq_error(req, SE_ITEM_NOT_FOUND, "no such privacy list");
			return;
		}
		/* §2.5: the current default must not be in use by another resource. */
		if (u->default_name != NULL && !(name != NULL && strcmp(name, u->default_name) == 0) &&
		    used_by_other(ps, u, s, u->default_name)) {
			iq_error(req, SE_CONFLICT, "the default list is in use by another resource");
			return;
		}
		struct prv_op *op = op_new(ps, PK_DEFAULT, u->e.user, req);
		op->name = name != NULL ? xstrdup(name) : NULL;
		pending_wait_storage(&op->p, storage_privacy_set_default(h->storage, h->name, u->e.user, name,
		                                                         written, op));
		return;
	}
	if (!xml_is(el, "list", NS_PRIVACY) || name == NULL || *name == '\0') {
		iq_error(req, SE_BAD_REQUEST, "expected <active/>, <default/> or <list name=.../>");
		return;
	}
	if (xml_first_element(el) == NULL) {
		/* §2.6: an empty list removes it. */
		if (list_find(u, name) == NULL) {
			iq_error(req, SE_ITEM_NOT_FOUND, "no such privacy list");
			return;
		}
		if (used_by_other(ps, u, s, name)) {
			iq_error(req, SE_CONFLICT, "the list is in use by another resource");
			return;
		}
		struct prv_op *op = op_new(ps, PK_REMOVE_LIST, u->e.user, req);
		op->name = xstrdup(name);
		pending_wait_storage(&op->p, storage_privacy_remove_list(h->storage, h->name, u->e.user, name,
		                                                         written, op));
		return;
	}
	if (list_find(u, name) == NULL && u->nlists >= ps->set->max_lists) {
		char *text = xasprintf("at most %u privacy lists can be kept", ps->set->max_lists);
		iq_error(req, SE_RESOURCE_CONSTRAINT, text);
		free(text);
		return;
	}
	struct prv_op *op = op_new(ps, PK_SET_LIST, u->e.user, req);
	op->list.name = xstrdup(name);
	if (!read_list(ps, req, el, &op->list)) {
		op_free(&op->p); /* read_list answered */
		return;
	}
	struct privacy_item *items = xcalloc(op->list.nitems, sizeof(*items));
	for (size_t i = 0; i < op->list.nitems; i++) {
		const struct prv_item *it = &op->list.items[i];
		items[i] = (struct privacy_item){ it->type, it->value, it->allow, it->order, it->stanzas };
	}
	pending_wait_storage(&op->p, storage_privacy_set_list(h->storage, h->name, u->e.user, name, items,
	                                                      op->list.nitems, written, op));
	free(items);
}

static void handle_iq(struct prv_state *ps, struct iq_request *req, struct prv_user *u)
{
	struct session *s = sm_find(ps->host, &req->from);
	if (strcmp(req->type, "get") == 0)
		answer_get(req, u, s);
	else
		handle_set(ps, req, u, s);
}

static void privacy_iq(struct iq_request *req, void *ctx)
{
	struct prv_state *ps = ctx;
	struct host *h = ps->host;
	if (req->from.node == NULL || strcmp(req->from.domain, h->name) != 0 ||
	    !jid_bare_equal(&req->from, &req->to)) {
		iq_error(req, SE_FORBIDDEN, "privacy lists are the owner's only");
		return;
	}
	if (!xml_is(req->payload, "query", NS_PRIVACY)) {
		iq_error(req, SE_BAD_REQUEST, NULL);
		return;
	}
	struct prv_user *u = user_get(ps, req->from.node);
	if (u != NULL && u->loaded) {
		handle_iq(ps, req, u);
		return;
	}
	if (u == NULL) {
		iq_error(req, SE_SERVICE_UNAVAILABLE, "privacy lists need a session");
		return;
	}
	/* Not read yet (or the read failed): read, then answer. */
	struct prv_op *op = op_new(ps, PK_READ_FOR_IQ, u->e.user, req);
	pending_wait_storage(&op->p, storage_privacy_get(h->storage, h->name, u->e.user, lists_read, op));
}

/* ---- hooks -------------------------------------------------------------------------------- */

/* A session opened (user_cache): its record; lists and roster are read at
 * the first one. */
static void privacy_opened(struct user_cache_entry *e, struct session *s, void *ctx)
{
	struct prv_user *u = (struct prv_user *)e;
	if (sess_find(u, s->id) == NULL) {
		u->sess = xrealloc(u->sess, (u->nsess + 1) * sizeof(*u->sess));
		u->sess[u->nsess++] = (struct prv_sess){ .id = s->id };
	}
	user_load(ctx, u);
}

static void privacy_closed(struct user_cache_entry *e, struct session *s, void *ctx)
{
	(void)ctx;
	struct prv_user *u = (struct prv_user *)e;
	struct prv_sess *r = sess_find(u, s->id);
	if (r != NULL) {
		free(r->active);
		*r = u->sess[--u->nsess];
	}
}

static enum hook_result privacy_roster(struct host *h, void *args, void *ctx)
{
	struct hook_roster *hr = args;
	struct prv_user *u = user_get(ctx, hr->user);
	if (u != NULL && u->roster_loaded)
		cache_roster_set(u, hr->item);
	return HOOK_CONTINUE;
}

/* The list that judges the stanzas between session s and peer, with its
 * user in *u_r; NULL when none does (peer is exempt, or no list is in
 * force). */
static struct prv_list *session_list(struct prv_state *ps, const struct session *s, const struct jid *peer,
                                     struct prv_user **u_r)
{
	const char *user = s->jid.node;
	if (builtin_filter_exempt(ps->host, user, peer))
		return NULL;
	*u_r = user_get(ps, user);
	return effective_list(*u_r, s);
}

/* Inbound, per session (sm.c's delivery). */
static enum hook_result privacy_receive(struct host *h, void *args, void *ctx)
{
	struct prv_state *ps = ctx;
	struct hook_packet *hp = args;
	if (hp->session == NULL || hp->from == NULL)
		return HOOK_CONTINUE;
	struct prv_user *u;
	struct prv_list *l = session_list(ps, hp->session, hp->from, &u);
	if (l == NULL)
		return HOOK_CONTINUE;
	return list_denies(u, l, inbound_bit(hp->stanza), hp->from) ? HOOK_STOP : HOOK_CONTINUE;
}

static bool iq_request(const struct xml_node *stanza)
{
	const char *type = xml_attr(stanza, "type");
	return type != NULL && (strcmp(type, "get") == 0 || strcmp(type, "set") == 0);
}

bool privacy_denies_presence(struct host *h, const struct xml_node *p, const struct jid *from,
                             const struct jid *to)
{
	if (from->node == NULL || !module_running(h, "privacy"))
		return false;
	struct prv_state *ps = module_state(h, "privacy");
	if (ps == NULL || ps->bypass || builtin_filter_exempt(h, from->node, to))
		return false;
	struct prv_user *u = user_get(ps, from->node);
	if (u == NULL)
		return false;
	struct session *s = from->resource != NULL ? sm_find(h, from) : NULL;
	unsigned bit = is_notification(p) ? PRIVACY_PRESENCE_OUT : 0;
	return list_denies(u, effective_list(u, s), bit, to);
}

/* Before the session manager: iqs the server answers for a user, and
 * presence it sends on a user's behalf. */
static enum hook_result privacy_in(struct host *h, void *args, void *ctx)
{
	struct prv_state *ps = ctx;
	struct hook_packet *hp = args;
	if (hp->to == NULL || hp->to->node == NULL || hp->from == NULL)
		return HOOK_CONTINUE;
	/* A user with no session: the stored default list (mod_blocking, when
	 * it runs, has read it with the block list already). */
	if (!module_running(h, "blocking") && builtin_refusal_hold_iq(&ps->ops, h, hp))
		return HOOK_STOP;
	enum stanza_kind kind = stanza_kind(hp->stanza);
	if (kind == STANZA_IQ && hp->to->resource == NULL && iq_request(hp->stanza) &&
	    !builtin_filter_exempt(ps->host, hp->to->node, hp->from)) {
		struct prv_user *u = user_get(ps, hp->to->node);
		if (list_denies(u, effective_list(u, NULL), PRIVACY_IQ, hp->from)) {
			router_bounce(hp->stanza, SE_SERVICE_UNAVAILABLE, NULL);
			return HOOK_STOP;
		}
		return HOOK_CONTINUE;
	}
	if (kind != STANZA_PRESENCE || hp->from->node == NULL || hp->from->domain == NULL)
		return HOOK_CONTINUE;
	/* The sender's lists are kept by the privacy module of its own host
	 * (this one, or another local host). */
	struct host *fh = strcmp(hp->from->domain, h->name) == 0 ? h : host_find(hp->from->domain);
	return fh != NULL && privacy_denies_presence(fh, hp->stanza, hp->from, hp->to) ? HOOK_STOP
	                                                                               : HOOK_CONTINUE;
}

/* Outbound: what the user sends. */
static enum hook_result privacy_send(struct host *h, void *args, void *ctx)
{
	struct prv_state *ps = ctx;
	struct hook_packet *hp = args;
	if (hp->session == NULL || hp->to == NULL)
		return HOOK_CONTINUE;
	struct prv_user *u;
	struct prv_list *l = session_list(ps, hp->session, hp->to, &u);
	if (l == NULL)
		return HOOK_CONTINUE;
	enum stanza_kind kind = stanza_kind(hp->stanza);
	unsigned bit = kind == STANZA_PRESENCE && is_notification(hp->stanza) ? PRIVACY_PRESENCE_OUT : 0;
	if (!list_denies(u, l, bit, hp->to))
		return HOOK_CONTINUE;
	if (kind == STANZA_MESSAGE || (kind == STANZA_IQ && iq_request(hp->stanza))) {
		builtin_refuse_sent(hp->session, hp->stanza, SE_NOT_ACCEPTABLE,
		                    "a privacy list of yours blocks this contact", NULL, NULL);
	}
	return HOOK_STOP;
}

/* ---- module ---------------------------------------------------------------------------------- */

static const struct builtin_iq privacy_iqs[] = {
	{ IQ_SCOPE_USER, NS_PRIVACY, IQ_ONE_QUEUE, privacy_iq },
};

static const struct builtin_hook privacy_hooks[] = {
	{ HOOK_USER_SEND_PACKET, 11, privacy_send },
	{ HOOK_STANZA_IN, 11, privacy_in },
	{ HOOK_USER_RECEIVE_PACKET, 50, privacy_receive },
	{ HOOK_ROSTER_CHANGED, 50, privacy_roster },
};

static const struct builtin_parts privacy_parts = {
	.iqs = privacy_iqs,
	.niqs = ARRAY_SIZE(privacy_iqs),
	.hooks = privacy_hooks,
	.nhooks = ARRAY_SIZE(privacy_hooks),
	.feature = NS_PRIVACY,
};

static int privacy_start(struct host *h, const void *settings, void **state_r, char **error_r)
{
	struct prv_state *ps = xcalloc(1, sizeof(*ps));
	ps->host = h;
	ps->set = settings;
	if (builtin_parts_add(h, &privacy_parts, ps, error_r) < 0) {
		free(ps);
		return -1;
	}
	ps->users = (struct user_cache){
		.entry_size = sizeof(struct prv_user),
		.opened = privacy_opened,
		.closed = privacy_closed,
		.clear = user_clear,
		.ctx = ps,
	};
	user_cache_start(&ps->users, h);
	*state_r = ps;
	return 0;
}

static void privacy_stop(struct host *h, void *state)
{
	struct prv_state *ps = state;
	builtin_parts_remove(h, &privacy_parts, ps);
	user_cache_stop(&ps->users); /* cancels the reads of the cache */
	pending_stop(&ps->ops);
	free(ps);
}

const struct module_def mod_privacy = {
	.name = "privacy",
	.description = "XEP-0016 privacy lists: named allow/deny rules by JID, roster group or "
	               "subscription, a default list and a per-session active list",
	.options = privacy_options,
	.settings_size = sizeof(struct privacy_settings),
	.default_enabled = true,
	.start = privacy_start,
	.stop = privacy_stop,
};
