/*
 * mod_roster: RFC 6121 roster management (get, set, remove, pushes, roster
 * versioning).  The client can never change a subscription here, only add,
 * rename, regroup and remove items; the subscription state machine is
 * mod_presence, which shares roster_push.
 * Loop thread.
 *
 * Invariants:
 * - IQ_ONE_QUEUE: one roster request of the host is in flight at a time,
 *   so a set reads the current item and writes it back without racing
 *   another request (storage keeps one user's operations in order too).
 * - A set or remove first reads the roster (limits, existing
 *   subscription, current version); the push then carries that version
 *   plus one.  Should another writer have moved the version meanwhile, the
 *   client's version is merely behind and its next login gets the full
 *   roster: never a stale roster taken for current.
 * - Every storage call runs through a struct roster_op on the module's
 *   pending list (pending.h); stop cancels them and answers their
 *   requests.
 * - An item that only records a pending inbound subscription request
 *   (roster_item_pending_only: the user never put it in the roster,
 *   roster_item.in_roster) is not part of the roster the client sees: not
 *   in gets, not pushed, not counted against max_items (mod_presence
 *   bounds them).  A set puts the item in the roster for good (in_roster),
 *   a request waiting on it or not, so gets and pushes name the same
 *   roster at every version (RFC 6121 §2.6).
 * - A remove takes the item away whole: a request waiting on it is
 *   refused with 'unsubscribed' (§2.5.2), not kept.
 * - What the client sees is the roster view (builtin.h): the stored items
 *   merged with the contacts of shared roster groups, whose state is part
 *   of the version string.  A contact that only a shared group puts there
 *   cannot be removed (<not-allowed/>); removing a stored item of a shared
 *   contact leaves the shared one (the push shows it).
 * - Known gap: a set reads and writes back the subscription fields (and
 *   what a waiting request said); a subscription change by mod_presence
 *   between the two is overwritten (mod_presence orders its own
 *   operations per user, not against ours).
 * - A remove that ends subscriptions (§2.5.2) takes the iq's hold on the
 *   remover's stream over and hands it on to the unsubscribe/unsubscribed
 *   it routes: a local contact's roster write that follows is done before
 *   that stream answers anything later, the remove itself included.
 */
#include "builtin.h"
#include "errmap.h"
#include "pending.h"
#include "server/host.h"
#include "server/router.h"
#include "server/sm.h"
#include "lib/barrier.h"
#include "lib/log.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NS_FEATURE_ROSTERVER "urn:xmpp:features:rosterver"
#define ROSTER_TEXT_MAX 1023  /* bytes of a name or a group */
#define ROSTER_GROUPS_MAX 256 /* groups of one item */

struct roster_settings {
	unsigned max_items;
};

static const struct opt_def roster_options[] = {
	{ "max_items", OPT_UINT, offsetof(struct roster_settings, max_items), "1000", NULL, 1, 1000000,
	  "most items a roster may hold (waiting subscription requests not counted)" },
	OPT_END
};

enum roster_op_kind { OP_GET, OP_SET, OP_REMOVE };

struct roster_state;

struct roster_op {
	struct pending_op p;     /* first: the state's list of ops; p.req the request */
	struct roster_state *rs; /* valid while p is listed */
	enum roster_op_kind kind;
	char *user;
	char *client_ver;            /* OP_GET: the 'ver' the client sent, or NULL */
	struct roster_item item;     /* OP_SET/OP_REMOVE: the item (owned) */
	uint64_t version;            /* roster version before the change */
	bool cancel_to, cancel_from; /* OP_REMOVE: send unsubscribe / unsubscribed (§2.5.2) */
};

struct roster_state {
	struct host *host;
	const struct roster_settings *set;
	struct pending_ops ops;
};

/* ---- items ---------------------------------------------------------------- */

static void item_free(struct roster_item *it)
{
	free(it->jid);
	free(it->name);
	for (size_t i = 0; i < it->groups.count; i++)
		free(it->groups.items[i]);
	free(it->groups.items);
	free(it->ask_in_stanza);
	memset(it, 0, sizeof(*it));
}

static void item_add_group(struct roster_item *it, const char *group)
{
	it->groups.items = xrealloc(it->groups.items, (it->groups.count + 1) * sizeof(char *));
	it->groups.items[it->groups.count++] = xstrdup(group);
}

static const char *subscription_name(enum roster_subscription s)
{
	switch (s) {
	case SUB_TO: return "to";
	case SUB_FROM: return "from";
	case SUB_BOTH: return "both";
	case SUB_REMOVE: return "remove";
	case SUB_NONE:
	default: return "none";
	}
}

static void item_to_xml(struct xml_node *query, const struct roster_item *it)
{
	struct xml_node *el = xml_add_child(query, "item", NULL);
	xml_set_attr(el, "jid", it->jid);
	if (it->name != NULL && it->subscription != SUB_REMOVE)
		xml_set_attr(el, "name", it->name);
	xml_set_attr(el, "subscription", subscription_name(it->subscription));
	if (it->subscription == SUB_REMOVE)
		return;
	if (it->ask_out)
		xml_set_attr(el, "ask", "subscribe");
	if (it->approved)
		xml_set_attr(el, "approved", "true"); /* RFC 6121 §3.4 pre-approval */
	for (size_t i = 0; i < it->groups.count; i++) {
		struct xml_node *g = xml_add_child(el, "group", NULL);
		xml_add_text(g, it->groups.items[i], strlen(it->groups.items[i]));
	}
}

/* ---- ops ------------------------------------------------------------------- */

static void op_free(struct pending_op *p)
{
	struct roster_op *op = (struct roster_op *)p;
	pending_untrack(p);
	free(op->user);
	free(op->client_ver);
	item_free(&op->item);
	free(op);
}

static struct roster_op *op_new(struct roster_state *rs, struct iq_request *req, enum roster_op_kind kind)
{
	struct roster_op *op = xcalloc(1, sizeof(*op));
	op->rs = rs;
	op->p.req = req;
	op->kind = kind;
	op->user = xstrdup(req->from.node);
	pending_track(&rs->ops, &op->p, op_free);
	return op;
}

/* Answer a failed storage call (errmap.h); true when res is a failure. */
static bool answer_storage_failure(struct iq_request *req, enum storage_result res)
{
	if (res == STORAGE_OK)
		return false;
	errmap_iq_storage(req, res, "the roster store");
	return true;
}

const struct roster_item *roster_find_item(const struct roster_item *items, size_t count, const char *jid)
{
	for (size_t i = 0; i < count; i++)
		if (items[i].jid != NULL && strcmp(items[i].jid, jid) == 0)
			return &items[i];
	return NULL;
}

/* The sessions that asked for the roster (RFC 6121 §2.1.6: pushes go to
 * interested resources). */
static bool session_interested(const struct session *s, void *ctx)
{
	(void)ctx;
	return s->interested;
}

void roster_push(struct host *h, const char *user, const struct roster_item *it, uint64_t version)
{
	struct hook_roster hr = { .user = user, .item = it };
	hook_run(h, HOOK_ROSTER_CHANGED, &hr);
	struct jid *targets;
	size_t n = builtin_sessions(h, user, session_interested, NULL, &targets);
	if (n == 0)
		return;

	/* Shared roster groups may change what the client sees of the item. */
	struct hook_roster_view hv = { .user = user, .single = true, .stored = it, .nstored = 1 };
	hook_run(h, HOOK_ROSTER_VIEW, &hv);
	if (hv.items != NULL && hv.count == 1)
		it = &hv.items[0];
	char ver[32];
	roster_version_string(ver, version, hv.tag);
	struct xml_node *q = iq_payload_new("query", NS_ROSTER);
	xml_set_attr(q, "ver", ver);
	item_to_xml(q, it);
	builtin_push(h, user, targets, n, q);
	xml_unref(&q);
	for (size_t k = 0; k < hv.count && hv.items != NULL; k++)
		roster_item_clear(&hv.items[k]);
	free(hv.items);
}

/* RFC 6121 §2.5.2: removing an item ends the subscriptions both ways; the
 * contact's side is updated by the presence module where it receives them.
 * hold, when not NULL, is handed on to that update (barrier_hand_on). */
static void send_cancel(struct host *h, const char *user, const char *contact, const char *type,
                        struct barrier_hold **hold)
{
	struct jid to;
	const char *err;
	if (jid_parse(contact, &to, &err) != 0)
		return;
	struct jid from = { 0 };
	jid_set(&from, user, h->name, NULL);
	struct xml_node *p = xml_new("presence", NS_CLIENT);
	xml_set_attr(p, "type", type);
	xml_set_attr(p, "from", jid_bare_to_pool(p->pool, &from));
	xml_set_attr(p, "to", contact);
	struct barrier_hold **outer = barrier_hand_on(hold);
	router_route(p, &from, &to);
	barrier_hand_on_end(outer);
	xml_unref(&p);
	if (strcmp(type, "unsubscribed") == 0) {
		/* The contact no longer sees us: unavailable from each resource. */
		struct jid *res;
		size_t n = builtin_sessions(h, user, builtin_session_available, NULL, &res);
		for (size_t k = 0; k < n; k++) {
			struct xml_node *u = xml_new("presence", NS_CLIENT);
			xml_set_attr(u, "type", "unavailable");
			xml_set_attr(u, "from", jid_to_pool(u->pool, &res[k]));
			xml_set_attr(u, "to", contact);
			router_route(u, &res[k], &to);
			xml_unref(&u);
			jid_clear(&res[k]);
		}
		free(res);
	}
	jid_clear(&from);
	jid_clear(&to);
}

static void op_written(enum storage_result res, void *ctx)
{
	struct roster_op *op = ctx;
	if (!pending_resume(&op->p))
		return;
	struct host *h = op->rs->host;
	if (!answer_storage_failure(op->p.req, res)) {
		roster_push(h, op->user, &op->item, op->version + 1);
		/* The contact's roster changes after the answer: the remove's
		 * hold goes on to that change, to the last stanza (a local
		 * contact's changes are made one after the other). */
		struct barrier_hold *hold = NULL;
		if (op->cancel_to || op->cancel_from)
			hold = iq_result_holding(op->p.req, NULL);
		else
			iq_result(op->p.req, NULL);
		if (op->cancel_to)
			send_cancel(h, op->user, op->item.jid, "unsubscribe", op->cancel_from ? NULL : &hold);
		if (op->cancel_from)
			send_cancel(h, op->user, op->item.jid, "unsubscribed", &hold);
		barrier_release(&hold); /* a remote contact: nobody took it */
	}
	op_free(&op->p);
}

static void op_read(enum storage_result res, const struct roster_item *items, size_t count, uint64_t version,
                    void *ctx)
{
	struct roster_op *op = ctx;
	if (!pending_resume(&op->p))
		return;
	struct roster_state *rs = op->rs;
	struct host *h = rs->host;
	struct iq_request *req = op->p.req;
	if (res == STORAGE_NOT_FOUND) {
		/* A user who never had a roster. */
		res = STORAGE_OK;
		count = 0;
		version = 0;
	}
	if (answer_storage_failure(req, res)) {
		op_free(&op->p);
		return;
	}
	op->version = version;

	switch (op->kind) {
	case OP_GET: {
		/* The stored items and the shared roster groups' contacts; the
		 * version names both. */
		struct roster_view view;
		roster_view_make(&view, h, op->user, items, count, false);
		char ver[32];
		roster_version_string(ver, version, view.tag);
		if (op->client_ver != NULL && strcmp(op->client_ver, ver) == 0) {
			roster_view_clear(&view);
			iq_result(req, NULL); /* RFC 6121 §2.6.3: the client is up to date */
			break;
		}
		struct xml_node *q = iq_payload_new("query", NS_ROSTER);
		if (op->client_ver != NULL)
			xml_set_attr(q, "ver", ver);
		for (size_t i = 0; i < view.count; i++)
			if (!roster_item_pending_only(&view.items[i]))
				item_to_xml(q, &view.items[i]);
		roster_view_clear(&view);
		iq_result(req, q);
		xml_unref(&q);
		break;
	}
	case OP_SET: {
		const struct roster_item *old = roster_find_item(items, count, op->item.jid);
		if (old == NULL || roster_item_pending_only(old)) {
			/* A new item: the items the user has count, not the
			 * requests that wait (mod_presence bounds those). */
			size_t have = 0;
			for (size_t i = 0; i < count; i++)
				if (!roster_item_pending_only(&items[i]))
					have++;
			if (have >= rs->set->max_items) {
				char *text = xasprintf("the roster is full (%u items at most)",
				                       rs->set->max_items);
				iq_error(req, SE_NOT_ALLOWED, text);
				free(text);
				break;
			}
		}
		/* The user puts it in the roster, a waiting request or not. */
		op->item.in_roster = true;
		if (old != NULL) {
			op->item.subscription = old->subscription;
			op->item.ask_out = old->ask_out;
			op->item.ask_in = old->ask_in;
			op->item.approved = old->approved;
			/* a request that waits keeps what it said */
			op->item.ask_in_stanza =
			        old->ask_in_stanza != NULL ? xstrdup(old->ask_in_stanza) : NULL;
		}
		pending_wait_storage(
		        &op->p, storage_roster_set(h->storage, h->name, op->user, &op->item, op_written, op));
		return;
	}
	case OP_REMOVE: {
		const struct roster_item *old = roster_find_item(items, count, op->item.jid);
		if (old == NULL) {
			/* A contact of a shared roster group only: the administrator
			 * manages it, the user cannot remove it. */
			struct roster_view view;
			roster_view_make(&view, h, op->user, items, count, false);
			bool shared = roster_find_item(view.items, view.count, op->item.jid) != NULL;
			roster_view_clear(&view);
			if (shared)
				iq_error(req, SE_NOT_ALLOWED,
				         "the contact comes from a shared roster group; "
				         "only an administrator can remove it");
			else
				iq_error(req, SE_ITEM_NOT_FOUND, NULL);
			break;
		}
		op->cancel_to = old->subscription == SUB_TO || old->subscription == SUB_BOTH || old->ask_out;
		op->cancel_from = old->subscription == SUB_FROM || old->subscription == SUB_BOTH ||
		                  old->ask_in || old->approved;
		pending_wait_storage(&op->p, storage_roster_remove(h->storage, h->name, op->user,
		                                                   op->item.jid, op_written, op));
		return;
	}
	}
	op_free(&op->p);
}

/* ---- requests --------------------------------------------------------------- */

/* Parse the one <item/> of a roster set into it; answers req and returns
 * false when the set is unacceptable (RFC 6121 §2.3.3). */
static bool parse_set(struct iq_request *req, struct roster_item *it)
{
	struct xml_node *el = xml_child(req->payload, "item", NS_ROSTER);
	if (el == NULL) {
		iq_error(req, SE_BAD_REQUEST, "a roster set needs one <item/>");
		return false;
	}
	if (xml_next(el, "item", NS_ROSTER) != NULL) {
		iq_error(req, SE_BAD_REQUEST, "a roster set holds exactly one <item/>");
		return false;
	}
	const char *jid_s = xml_attr(el, "jid");
	if (jid_s == NULL) {
		iq_error(req, SE_BAD_REQUEST, "the item has no 'jid'");
		return false;
	}
	struct jid j;
	const char *err;
	if (jid_parse(jid_s, &j, &err) != 0) {
		iq_error(req, SE_JID_MALFORMED, err);
		return false;
	}
	if (j.resource != NULL) {
		jid_clear(&j);
		iq_error(req, SE_BAD_REQUEST, "a roster item is a bare JID");
		return false;
	}
	it->jid = jid_bare_string(&j);
	jid_clear(&j);

	const char *sub = xml_attr(el, "subscription");
	if (sub != NULL && strcmp(sub, "remove") == 0) {
		it->subscription = SUB_REMOVE;
		return true;
	}
	/* Any other subscription or ask value from the client is ignored. */
	it->subscription = SUB_NONE;
	const char *name = xml_attr(el, "name");
	if (name != NULL && strlen(name) > ROSTER_TEXT_MAX) {
		iq_error(req, SE_NOT_ACCEPTABLE, "the item name is too long");
		return false;
	}
	if (name != NULL && *name != '\0')
		it->name = xstrdup(name);
	for (struct xml_node *g = xml_child(el, "group", NS_ROSTER); g != NULL;
	     g = xml_next(g, "group", NS_ROSTER)) {
		const char *group = xml_text(g);
		if (*group == '\0') {
			iq_error(req, SE_NOT_ACCEPTABLE, "a group name is empty");
			return false;
		}
		if (strlen(group) > ROSTER_TEXT_MAX) {
			iq_error(req, SE_NOT_ACCEPTABLE, "a group name is too long");
			return false;
		}
		if (strlist_contains(&it->groups, group)) {
			iq_error(req, SE_BAD_REQUEST, "a group is named twice");
			return false;
		}
		if (it->groups.count >= ROSTER_GROUPS_MAX) {
			iq_error(req, SE_NOT_ACCEPTABLE, "too many groups");
			return false;
		}
		item_add_group(it, group);
	}
	return true;
}

static void roster_iq(struct iq_request *req, void *ctx)
{
	struct roster_state *rs = ctx;
	struct host *h = rs->host;
	/* RFC 6121 §2.1.5 / §2.3.3: only the user's own resources. */
	if (req->from.node == NULL || strcmp(req->from.domain, h->name) != 0 ||
	    !jid_bare_equal(&req->from, &req->to)) {
		iq_error(req, SE_FORBIDDEN, NULL);
		return;
	}
	if (!xml_is(req->payload, "query", NS_ROSTER)) {
		iq_error(req, SE_BAD_REQUEST, NULL);
		return;
	}
	if (strcmp(req->type, "get") == 0) {
		struct session *s = sm_find(h, &req->from);
		if (s != NULL)
			s->interested = true;
		struct roster_op *op = op_new(rs, req, OP_GET);
		const char *ver = xml_attr(req->payload, "ver");
		if (ver != NULL)
			op->client_ver = xstrdup(ver);
		pending_wait_storage(&op->p, storage_roster_get(h->storage, h->name, op->user, op_read, op));
		return;
	}
	struct roster_item it = { 0 };
	if (!parse_set(req, &it)) {
		item_free(&it);
		return;
	}
	struct roster_op *op = op_new(rs, req, it.subscription == SUB_REMOVE ? OP_REMOVE : OP_SET);
	op->item = it;
	pending_wait_storage(&op->p, storage_roster_get(h->storage, h->name, op->user, op_read, op));
}

/* ---- stream feature ----------------------------------------------------------- */

static enum hook_result roster_features(struct host *h, void *args, void *ctx)
{
	struct hook_features *hf = args;
	if (hf->authenticated)
		xml_add_child(hf->features, "ver", NS_FEATURE_ROSTERVER);
	return HOOK_CONTINUE;
}

/* ---- module --------------------------------------------------------------------- */

static const struct builtin_iq roster_iqs[] = {
	{ IQ_SCOPE_USER, NS_ROSTER, IQ_ONE_QUEUE, roster_iq },
};

static int roster_start(struct host *h, const void *settings, void **state_r, char **error_r)
{
	struct roster_state *rs = xcalloc(1, sizeof(*rs));
	rs->host = h;
	rs->set = settings;
	if (builtin_iq_register(h, roster_iqs, ARRAY_SIZE(roster_iqs), rs, error_r) < 0) {
		free(rs);
		return -1;
	}
	hook_add(h, HOOK_STREAM_FEATURES, 50, roster_features, rs);
	*state_r = rs;
	return 0;
}

static void roster_stop(struct host *h, void *state)
{
	struct roster_state *rs = state;
	hook_remove(h, HOOK_STREAM_FEATURES, roster_features, rs);
	builtin_iq_unregister(h, roster_iqs, ARRAY_SIZE(roster_iqs));
	pending_stop(&rs->ops);
	free(rs);
}

const struct module_def mod_roster = {
	.name = "roster",
	.description = "RFC 6121 roster management with roster versioning",
	.options = roster_options,
	.settings_size = sizeof(struct roster_settings),
	.default_enabled = true,
	.start = roster_start,
	.stop = roster_stop,
};
