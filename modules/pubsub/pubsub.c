/*
 * mod_pubsub: publish-subscribe services (XEP-0060) and PEP on every
 * account (XEP-0163).  Loop thread.
 *
 * Each entry of the hosts option is a service: a domain with a local route
 * in the router, listed in its virtual host's disco#items.  With pep on,
 * <pubsub/> iqs to a user's bare JID reach that user's PEP owner.  This
 * file holds the module and the owners (pubsub.h): making and loading
 * them (a request waits for the load), evicting PEP owners nobody used
 * for a while, disco, the hooks (caps known: last items; roster changes:
 * the cached roster, and the subscriptions of a contact that lost access
 * cancelled; removed accounts) and the pep.h interface.  The protocol itself is in
 * pubsub-node.c.
 *
 * Invariants:
 * - One owner per service and per local user in use; an owner's state is
 *   only read once loaded (its waiters run after the load).
 * - An owner with writes or loads in flight (busy) is not freed; at stop
 *   its waiting requests and those whose writes are in flight are
 *   answered, and it is freed when its last store call returns.
 */
#include "pubsub.h"
#include "pubsub-adhoc.h"

#include "modules/builtin.h"
#include "modules/caps.h"
#include "modules/pep.h"
#include "server/host.h"
#include "server/hooks.h"
#include "server/router.h"
#include "server/server.h"
#include "server/sm.h"
#include "lib/latency.h"
#include "lib/log.h"
#include "lib/options.h"

#include <ev.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define EVICT_INTERVAL 60.0

static const char *const access_values[] = { "anyone", "local", "admins", "list", NULL };

static const struct opt_def pubsub_options[] = {
	{ "hosts", OPT_STRLIST, offsetof(struct pubsub_settings, hosts), "pubsub.@HOST@", NULL, 0, 0,
	  "the pubsub services (domains; @HOST@ is the virtual host); [] for none" },
	{ "pep", OPT_BOOL, offsetof(struct pubsub_settings, pep), "true", NULL, 0, 0,
	  "personal eventing (XEP-0163) on every account" },
	{ "access_create", OPT_ENUM, offsetof(struct pubsub_settings, access_create), "local", access_values,
	  0, 0, "who may create nodes on the services: anyone, local users, admins, or the create_list" },
	{ "create_list", OPT_STRLIST, offsetof(struct pubsub_settings, create_list), NULL, NULL, 0, 0,
	  "bare JIDs that may create nodes when access_create is list" },
	{ "max_item_size", OPT_SIZE, offsetof(struct pubsub_settings, max_item_size), "256K", NULL, 1,
	  64 << 20, "largest item payload (bytes of its XML); a bigger one is refused with payload-too-big" },
	{ "max_items_per_node", OPT_UINT, offsetof(struct pubsub_settings, max_items_per_node), "1000", NULL,
	  1, 1000000, "most items a node keeps (what pubsub#max_items max means)" },
	{ "default_max_items", OPT_UINT, offsetof(struct pubsub_settings, default_max_items), "10", NULL, 1,
	  1000000, "pubsub#max_items of a new service node (PEP nodes keep 1 unless configured)" },
	{ "max_nodes_per_user", OPT_UINT, offsetof(struct pubsub_settings, max_nodes_per_user), "200", NULL,
	  1, 1000000, "most PEP nodes of an account, and most service nodes one user owns" },
	{ "max_subscriptions", OPT_UINT, offsetof(struct pubsub_settings, max_subscriptions), "10000", NULL,
	  0, 0, "most subscriptions of one node (0: no limit)" },
	{ "idle_owner_time", OPT_UINT, offsetof(struct pubsub_settings, idle_owner_time), "600", NULL, 10,
	  86400, "seconds a PEP account nobody uses and without sessions stays in memory" },
	OPT_END
};

struct ps_waiter {
	ps_ready_fn *fn;
	void *ctx;
	struct ps_waiter *next;
};

struct storage *ps_store(struct ps_state *st)
{
	struct storage *s = host_store(st->h, STORAGE_AREA_PUBSUB);
	return s != NULL && storage_has_area(s, STORAGE_AREA_PUBSUB) ? s : NULL;
}

/* ---- owners -------------------------------------------------------------- */

static void roster_free(struct ps_owner *o)
{
	for (size_t i = 0; i < o->nroster; i++)
		roster_item_clear(&o->roster[i]);
	free(o->roster);
	o->roster = NULL;
	o->nroster = 0;
}

static void owner_final_free(struct ps_owner *o)
{
	while (o->nodes != NULL) {
		struct ps_node *n = o->nodes;
		o->nodes = n->next;
		ps_node_free(n);
	}
	roster_free(o);
	jid_clear(&o->jid);
	free(o->key);
	free(o->user);
	free(o);
}

static void run_waiters(struct ps_owner *o, bool ok)
{
	struct ps_waiter *w = o->waiters;
	o->waiters = NULL;
	/* in the order they came */
	struct ps_waiter *rev = NULL;
	while (w != NULL) {
		struct ps_waiter *next = w->next;
		w->next = rev;
		rev = w;
		w = next;
	}
	while (rev != NULL) {
		struct ps_waiter *next = rev->next;
		rev->fn(o, ok, rev->ctx);
		free(rev);
		rev = next;
	}
}

static bool owner_ready(const struct ps_owner *o)
{
	return o->state != PS_LOADING && o->roster_state != PS_LOADING;
}

static void maybe_ready(struct ps_owner *o)
{
	if (owner_ready(o))
		run_waiters(o, o->state == PS_LOADED);
}

void ps_owner_when_ready(struct ps_owner *o, ps_ready_fn *fn, void *ctx)
{
	if (fn == NULL) {
		/* a store call of a stopped owner returned */
		if (o->stopping && o->busy == 0)
			owner_final_free(o);
		return;
	}
	if (o->stopping) {
		fn(o, false, ctx);
		return;
	}
	if (owner_ready(o)) {
		fn(o, o->state == PS_LOADED, ctx);
		return;
	}
	struct ps_waiter *w = xmalloc(sizeof(*w));
	*w = (struct ps_waiter){ fn, ctx, o->waiters };
	o->waiters = w;
}

static struct ps_node *node_from_store(struct ps_owner *o, const struct pubsub_node_item *ni)
{
	struct ps_node *n = xcalloc(1, sizeof(*n));
	n->owner = o;
	n->name = xstrdup(ni->name);
	ps_config_defaults(&n->cfg, o->st->set, o->user != NULL);
	ps_config_parse(&n->cfg, ni->config);
	n->created = ni->created;
	n->affs = xcalloc(ni->naffs + 1, sizeof(*n->affs));
	for (size_t i = 0; i < ni->naffs; i++) {
		int a = ps_aff_parse(ni->affs[i].affiliation);
		if (a < 0)
			continue;
		n->affs[n->naffs++] = (struct ps_affiliation){ xstrdup(ni->affs[i].jid), (enum ps_aff)a };
	}
	n->subs = xcalloc(ni->nsubs + 1, sizeof(*n->subs));
	for (size_t i = 0; i < ni->nsubs; i++) {
		const struct pubsub_subscription_item *s = &ni->subs[i];
		enum ps_sub_state state = strcmp(s->state, "subscribed") == 0     ? PS_SUB_SUBSCRIBED
		                          : strcmp(s->state, "pending") == 0      ? PS_SUB_PENDING
		                          : strcmp(s->state, "unconfigured") == 0 ? PS_SUB_UNCONFIGURED
		                                                                  : PS_SUB_NONE;
		n->subs[n->nsubs++] =
		        (struct ps_subscription){ .jid = xstrdup(s->jid),
			                          .subid = xstrdup(s->subid),
			                          .state = state,
			                          .deliver = strstr(s->options, "deliver=0") == NULL };
	}
	return n;
}

static void item_from_store(struct ps_owner *o, struct ps_node *n, const struct pubsub_item *pi)
{
	struct ps_item *it = xcalloc(1, sizeof(*it));
	it->id = xstrdup(pi->id);
	it->publisher = xstrdup(pi->publisher);
	it->published = pi->published;
	it->seq = pi->seq;
	if (pi->payload[0] != '\0') {
		const char *err = NULL;
		size_t len = strlen(pi->payload);
		const struct xml_parser_limits lim = { .max_stanza = len + 1,
			                               .max_depth = 256,
			                               .max_attrs = 1024 };
		it->payload = xml_parse_string(pi->payload, len, NULL, &lim, &err);
		if (it->payload == NULL)
			log_error("pubsub %s: item %s of node %s does not parse (%s); kept without payload",
			          o->key, pi->id, n->name, err != NULL ? err : "?");
	}
	/* items come oldest first: each is the newest so far */
	it->older = n->newest;
	if (n->newest != NULL)
		n->newest->newer = it;
	else
		n->oldest = it;
	n->newest = it;
	n->nitems++;
	if (it->seq > n->seq)
		n->seq = it->seq;
}

static void loaded(enum storage_result res, const struct pubsub_node_item *nodes, size_t nnodes,
                   const struct pubsub_item *items, size_t nitems, void *ctx)
{
	struct ps_owner *o = ctx;
	o->busy--;
	if (o->stopping) {
		ps_owner_when_ready(o, NULL, NULL);
		return;
	}
	if (res != STORAGE_OK) {
		log_error("pubsub %s: the nodes cannot be loaded: %s", o->key, storage_result_str(res));
		o->state = PS_LOAD_FAILED;
		maybe_ready(o);
		return;
	}
	struct ps_node **tail = &o->nodes;
	for (size_t i = 0; i < nnodes; i++) {
		struct ps_node *n = node_from_store(o, &nodes[i]);
		*tail = n;
		tail = &n->next;
		o->nnodes++;
	}
	struct ps_node *n = o->nodes;
	for (size_t i = 0; i < nitems; i++) {
		if (n == NULL || strcmp(n->name, items[i].node) != 0)
			n = ps_node_find(o, items[i].node);
		if (n != NULL)
			item_from_store(o, n, &items[i]);
	}
	o->state = PS_LOADED;
	maybe_ready(o);
}

static void roster_copy_item(struct roster_item *dst, const struct roster_item *src)
{
	*dst = (struct roster_item){ .jid = xstrdup(src->jid),
		                     .name = src->name != NULL ? xstrdup(src->name) : NULL,
		                     .subscription = src->subscription,
		                     .ask_out = src->ask_out,
		                     .ask_in = src->ask_in,
		                     .approved = src->approved,
		                     .in_roster = src->in_roster };
	dst->groups.count = src->groups.count;
	dst->groups.items = src->groups.count > 0 ? xcalloc(src->groups.count, sizeof(char *)) : NULL;
	for (size_t i = 0; i < src->groups.count; i++)
		dst->groups.items[i] = xstrdup(src->groups.items[i]);
}

static void roster_loaded(enum storage_result res, const struct roster_item *items, size_t count,
                          uint64_t version, void *ctx)
{
	(void)version;
	struct ps_owner *o = ctx;
	o->busy--;
	if (o->stopping) {
		ps_owner_when_ready(o, NULL, NULL);
		return;
	}
	if (res != STORAGE_OK && res != STORAGE_NOT_FOUND) {
		log_error("pubsub %s: the roster cannot be read: %s", o->key, storage_result_str(res));
		o->roster_state = PS_LOAD_FAILED;
		o->state = PS_LOAD_FAILED;
		maybe_ready(o);
		return;
	}
	struct roster_view v;
	roster_view_make(&v, o->st->h, o->user, res == STORAGE_OK ? items : NULL,
	                 res == STORAGE_OK ? count : 0, true);
	o->roster = xcalloc(v.count + 1, sizeof(*o->roster));
	for (size_t i = 0; i < v.count; i++)
		roster_copy_item(&o->roster[o->nroster++], &v.items[i]);
	roster_view_clear(&v);
	o->roster_state = PS_LOADED;
	maybe_ready(o);
}

static void owner_load(struct ps_owner *o)
{
	struct ps_state *st = o->st;
	struct storage *s = ps_store(st);
	o->state = PS_LOADED;
	o->roster_state = PS_LOADED;
	if (o->user != NULL) {
		struct storage *rs = host_store(st->h, STORAGE_AREA_ROSTER);
		if (rs != NULL && storage_has_area(rs, STORAGE_AREA_ROSTER)) {
			o->roster_state = PS_LOADING;
			o->busy++;
		}
	}
	if (s != NULL) {
		o->state = PS_LOADING;
		o->busy++;
		storage_pubsub_load(s, st->h->name, o->key, loaded, o);
	}
	if (o->roster_state == PS_LOADING)
		storage_roster_get(host_store(st->h, STORAGE_AREA_ROSTER), st->h->name, o->user,
		                   roster_loaded, o);
}

static struct ps_owner *owner_new(struct ps_state *st, const char *key, const char *user)
{
	struct ps_owner *o = xcalloc(1, sizeof(*o));
	o->st = st;
	o->key = xstrdup(key);
	o->user = user != NULL ? xstrdup(user) : NULL;
	const char *err;
	if (jid_parse(key, &o->jid, &err) != 0)
		jid_set(&o->jid, NULL, key, NULL);
	o->last_used = ev_now(server.loop);
	struct ps_owner **p = &st->owners;
	while (*p != NULL)
		p = &(*p)->next;
	*p = o;
	return o;
}

static void owner_unlink(struct ps_owner *o)
{
	for (struct ps_owner **p = &o->st->owners; *p != NULL; p = &(*p)->next) {
		if (*p == o) {
			*p = o->next;
			return;
		}
	}
}

/* Stop o: its waiters and in-flight requests are answered; freed now or
 * when its last store call returns. */
static void owner_stop(struct ps_owner *o)
{
	run_waiters(o, false);
	ps_owner_abort_writes(o);
	owner_unlink(o);
	o->stopping = true;
	if (o->busy == 0)
		owner_final_free(o);
}

struct ps_owner *ps_pep_owner_find(struct ps_state *st, const char *user)
{
	for (struct ps_owner *o = st->owners; o != NULL; o = o->next)
		if (o->user != NULL && strcmp(o->user, user) == 0)
			return o;
	return NULL;
}

struct ps_owner *ps_pep_owner(struct ps_state *st, const char *user)
{
	if (!st->set->pep || st->stopping)
		return NULL;
	struct ps_owner *o = ps_pep_owner_find(st, user);
	if (o != NULL && o->state == PS_LOAD_FAILED && o->busy == 0 && o->waiters == NULL) {
		/* the last load failed: try again */
		owner_stop(o);
		o = NULL;
	}
	if (o != NULL) {
		o->last_used = ev_now(server.loop);
		return o;
	}
	char *key = xasprintf("%s@%s", user, st->h->name);
	o = owner_new(st, key, user);
	free(key);
	owner_load(o);
	return o;
}

/* PEP owners of users without sessions that nobody asked for a while. */
static void evict(struct ev_loop *loop, ev_timer *t, int revents)
{
	latency_begin(LATENCY_MODULE, "pubsub");
	(void)revents;
	struct ps_state *st = t->data;
	double now = ev_now(loop);
	struct ps_owner *o = st->owners;
	while (o != NULL) {
		struct ps_owner *next = o->next;
		if (o->user != NULL && o->busy == 0 && o->waiters == NULL &&
		    now - o->last_used > st->set->idle_owner_time && sm_user_sessions(st->h, o->user) == NULL)
			owner_stop(o);
		o = next;
	}
	latency_end();
}

/* ---- answering ------------------------------------------------------------- */

static void req_free(struct ps_req *r)
{
	xml_unref(&r->iq);
	jid_clear(&r->from);
	free(r);
}

void ps_send(struct ps_owner *o, struct xml_node *stanza, const struct jid *to)
{
	char *s = jid_to_string(to);
	xml_set_attr(stanza, "from", o->key);
	xml_set_attr(stanza, "to", s);
	free(s);
	router_route(stanza, &o->jid, to);
	xml_unref(&stanza);
}

void ps_reply(struct ps_req *r, const struct xml_node *payload)
{
	if (r->ireq != NULL) {
		iq_result(r->ireq, payload);
	} else {
		struct xml_node *res = stanza_iq_result(r->iq);
		if (payload != NULL)
			xml_append_copy(res, payload);
		ps_send(r->o, res, &r->from);
	}
	req_free(r);
}

void ps_reply_error(struct ps_req *r, enum stanza_error e, const char *app, const char *app_feature,
                    const char *text)
{
	struct xml_node *reply = stanza_error_reply(r->iq, e, text);
	if (reply != NULL && app != NULL) {
		struct xml_node *err = xml_child(reply, "error", NULL);
		if (err != NULL) {
			struct xml_node *a = xml_add_child(err, app, NS_PUBSUB_ERRORS);
			if (app_feature != NULL)
				xml_set_attr(a, "feature", app_feature);
		}
	}
	if (r->ireq != NULL) {
		if (reply != NULL)
			iq_result_tree(r->ireq, reply);
		else
			iq_error(r->ireq, e, text);
	} else if (reply != NULL) {
		ps_send(r->o, reply, &r->from);
	}
	req_free(r);
}

static void req_go(struct ps_owner *o, bool ok, void *ctx)
{
	struct ps_req *r = ctx;
	(void)o;
	if (!ok) {
		ps_reply_error(r, SE_RESOURCE_CONSTRAINT, NULL, NULL, "the nodes cannot be read now");
		return;
	}
	ps_handle(r);
}

/* ---- disco --------------------------------------------------------------------- */

static const char *const features[] = {
	"access-authorize",
	"access-open",
	"access-presence",
	"access-roster",
	"access-whitelist",
	"auto-create",
	"auto-subscribe",
	"config-node",
	"create-and-configure",
	"create-nodes",
	"delete-items",
	"delete-nodes",
	"filtered-notifications",
	"get-pending",
	"instant-nodes",
	"item-ids",
	"last-published",
	"manage-subscriptions",
	"member-affiliation",
	"modify-affiliations",
	"multi-subscribe",
	"outcast-affiliation",
	"persistent-items",
	"presence-notifications",
	"publish",
	"publish-only-affiliation",
	"publish-options",
	"publisher-affiliation",
	"purge-nodes",
	"retract-items",
	"retrieve-affiliations",
	"retrieve-default",
	"retrieve-items",
	"retrieve-subscriptions",
	"subscribe",
	"subscription-options",
	"subscription-notifications",
};

static void add_feature(struct xml_node *q, const char *var)
{
	xml_set_attr(xml_add_child(q, "feature", NULL), "var", var);
}

static void add_identity(struct xml_node *q, const char *cat, const char *type, const char *name)
{
	struct xml_node *i = xml_add_child(q, "identity", NULL);
	xml_set_attr(i, "category", cat);
	xml_set_attr(i, "type", type);
	if (name != NULL)
		xml_set_attr(i, "name", name);
}

static void add_pubsub_features(struct xml_node *q)
{
	add_feature(q, NS_PUBSUB);
	for (size_t i = 0; i < ARRAY_SIZE(features); i++) {
		char var[128];
		snprintf(var, sizeof(var), "%s#%s", NS_PUBSUB, features[i]);
		add_feature(q, var);
	}
}

/* disco#info of a node (identity and meta-data) into q; false when o has
 * no such node. */
static bool node_info(struct ps_owner *o, const char *node, struct xml_node *q)
{
	struct ps_node *n = ps_node_find(o, node);
	if (n == NULL)
		return false;
	add_identity(q, "pubsub", "leaf", NULL);
	add_feature(q, NS_PUBSUB);
	ps_config_meta(q, &n->cfg, n->name);
	return true;
}

static void answer_iq(struct ps_owner *o, struct xml_node *iq, const struct jid *from,
                      const struct xml_node *q)
{
	struct xml_node *res = stanza_iq_result(iq);
	if (q != NULL)
		xml_append_copy(res, q);
	ps_send(o, res, from);
}

/* disco#items of o as from sees it: its nodes (node NULL; with their
 * titles as names when titles), or the ids of node's items.  false when
 * o has no such node. */
static bool disco_items(struct ps_owner *o, const char *node, const struct jid *from, bool titles,
                        struct xml_node *ans)
{
	if (node == NULL) {
		for (struct ps_node *n = o->nodes; n != NULL; n = n->next) {
			if (!ps_node_visible(o, n, from))
				continue;
			struct xml_node *it = xml_add_child(ans, "item", NULL);
			xml_set_attr(it, "jid", o->key);
			xml_set_attr(it, "node", n->name);
			if (titles && n->cfg.title != NULL)
				xml_set_attr(it, "name", n->cfg.title);
		}
		return true;
	}
	struct ps_node *n = ps_node_find(o, node);
	if (n == NULL)
		return false;
	if (ps_node_visible(o, n, from)) {
		for (struct ps_item *it = n->newest; it != NULL; it = it->older) {
			struct xml_node *e = xml_add_child(ans, "item", NULL);
			xml_set_attr(e, "jid", o->key);
			xml_set_attr(e, "name", it->id);
		}
	}
	return true;
}

static void service_disco(struct ps_owner *o, struct xml_node *iq, const struct jid *from,
                          const struct xml_node *q, bool info)
{
	const char *node = xml_attr(q, "node");
	if (node != NULL && *node == '\0')
		node = NULL;
	struct xml_node *ans = xml_new("query", info ? NS_DISCO_INFO : NS_DISCO_ITEMS);
	if (node != NULL)
		xml_set_attr(ans, "node", node);
	if (info && node == NULL) {
		add_identity(ans, "pubsub", "service", "Publish-Subscribe");
		add_feature(ans, NS_DISCO_INFO);
		add_feature(ans, NS_DISCO_ITEMS);
		add_pubsub_features(ans);
	} else if (info) {
		if (!node_info(o, node, ans)) {
			xml_unref(&ans);
			router_bounce(iq, SE_ITEM_NOT_FOUND, NULL);
			return;
		}
	} else if (!disco_items(o, node, from, true, ans)) {
		xml_unref(&ans);
		router_bounce(iq, SE_ITEM_NOT_FOUND, NULL);
		return;
	}
	answer_iq(o, iq, from, ans);
	xml_unref(&ans);
}

/* ---- the service's route ------------------------------------------------------ */

struct service_stanza {
	struct xml_node *stanza;
	struct jid from;
};

static void service_dispatch(struct ps_owner *o, struct xml_node *stanza, const struct jid *from,
                             const struct jid *to)
{
	enum stanza_kind kind = stanza_kind(stanza);
	if (to->node != NULL || to->resource != NULL) {
		router_bounce(stanza, SE_SERVICE_UNAVAILABLE, NULL);
		return;
	}
	if (kind == STANZA_MESSAGE) {
		if (!ps_approval(o, stanza, from))
			router_bounce(stanza, SE_SERVICE_UNAVAILABLE, NULL);
		return;
	}
	if (kind != STANZA_IQ)
		return;
	const char *type = xml_attr(stanza, "type");
	if (type == NULL || (strcmp(type, "get") != 0 && strcmp(type, "set") != 0))
		return;
	struct xml_node *q = xml_first_element(stanza);
	if (q == NULL || xml_element_count(stanza) != 1) {
		router_bounce(stanza, SE_BAD_REQUEST, NULL);
		return;
	}
	bool get = strcmp(type, "get") == 0;
	if (get && xml_is(q, "query", NS_DISCO_INFO)) {
		service_disco(o, stanza, from, q, true);
	} else if (get && xml_is(q, "query", NS_DISCO_ITEMS)) {
		service_disco(o, stanza, from, q, false);
	} else if (get && xml_is(q, "ping", NS_PING)) {
		answer_iq(o, stanza, from, NULL);
	} else if (xml_is(q, "pubsub", NS_PUBSUB) || xml_is(q, "pubsub", NS_PUBSUB_OWNER)) {
		struct ps_req *r = xcalloc(1, sizeof(*r));
		r->o = o;
		r->iq = stanza;
		xml_ref(stanza);
		jid_copy(&r->from, from);
		ps_handle(r);
	} else {
		router_bounce(stanza, SE_SERVICE_UNAVAILABLE, NULL);
	}
}

static void service_ready(struct ps_owner *o, bool ok, void *ctx)
{
	struct service_stanza *s = ctx;
	struct jid to = { 0 };
	const char *err;
	const char *to_s = xml_attr(s->stanza, "to");
	if (!ok) {
		router_bounce(s->stanza, SE_RESOURCE_CONSTRAINT, "the nodes cannot be read now");
	} else if (to_s != NULL && jid_parse(to_s, &to, &err) == 0) {
		service_dispatch(o, s->stanza, &s->from, &to);
	}
	jid_clear(&to);
	xml_unref(&s->stanza);
	jid_clear(&s->from);
	free(s);
}

static void service_route(void *ctx, struct xml_node *stanza, const struct jid *from, const struct jid *to)
{
	struct ps_owner *o = ctx;
	if (stanza_kind(stanza) == STANZA_IQ) {
		const char *type = xml_attr(stanza, "type");
		if (type != NULL && (strcmp(type, "result") == 0 || strcmp(type, "error") == 0)) {
			iq_response(o->st->h, stanza, from);
			return;
		}
	}
	if (o->state == PS_LOAD_FAILED && o->busy == 0)
		owner_load(o); /* the store failed at start: try again */
	if (owner_ready(o)) {
		service_dispatch(o, stanza, from, to);
		return;
	}
	struct service_stanza *s = xmalloc(sizeof(*s));
	s->stanza = stanza;
	xml_ref(stanza);
	jid_copy(&s->from, from);
	ps_owner_when_ready(o, service_ready, s);
}

/* ---- PEP iqs -------------------------------------------------------------------- */

static void pep_iq(struct iq_request *req, void *ctx)
{
	struct ps_state *st = ctx;
	if (req->to.node == NULL || strcmp(req->to.domain, st->h->name) != 0) {
		iq_error(req, SE_SERVICE_UNAVAILABLE, NULL);
		return;
	}
	struct ps_owner *o = ps_pep_owner(st, req->to.node);
	if (o == NULL) {
		iq_error(req, SE_SERVICE_UNAVAILABLE, NULL);
		return;
	}
	struct ps_req *r = xcalloc(1, sizeof(*r));
	r->o = o;
	r->iq = req->iq;
	xml_ref(r->iq);
	jid_copy(&r->from, &req->from);
	r->ireq = req;
	ps_owner_when_ready(o, req_go, r);
}

static void pep_items_ready(struct ps_owner *o, bool ok, void *ctx)
{
	struct iq_request *req = ctx;
	if (!ok) {
		iq_error(req, SE_RESOURCE_CONSTRAINT, "the nodes cannot be read now");
		return;
	}
	const char *node = xml_attr(req->payload, "node");
	if (node != NULL && *node == '\0')
		node = NULL;
	struct xml_node *ans = iq_payload_new("query", NS_DISCO_ITEMS);
	if (node != NULL)
		xml_set_attr(ans, "node", node);
	if (!disco_items(o, node, &req->from, false, ans)) {
		xml_unref(&ans);
		iq_error(req, SE_ITEM_NOT_FOUND, NULL);
		return;
	}
	iq_result(req, ans);
	xml_unref(&ans);
}

static void pep_disco_items(struct iq_request *req, void *ctx)
{
	struct ps_state *st = ctx;
	if (strcmp(req->type, "get") != 0) {
		iq_error(req, SE_NOT_ALLOWED, NULL);
		return;
	}
	struct ps_owner *o = req->to.node != NULL ? ps_pep_owner(st, req->to.node) : NULL;
	if (o == NULL) {
		struct xml_node *ans = iq_payload_new("query", NS_DISCO_ITEMS);
		iq_result(req, ans);
		xml_unref(&ans);
		return;
	}
	ps_owner_when_ready(o, pep_items_ready, req);
}

static const struct builtin_iq pep_iqs[] = {
	{ IQ_SCOPE_USER, NS_PUBSUB, IQ_PARALLEL, pep_iq },
	{ IQ_SCOPE_USER, NS_PUBSUB_OWNER, IQ_PARALLEL, pep_iq },
	{ IQ_SCOPE_USER, NS_DISCO_ITEMS, IQ_PARALLEL, pep_disco_items },
};

/* ---- hooks ---------------------------------------------------------------------- */

static enum hook_result disco_info_hook(struct host *h, void *args, void *ctx)
{
	(void)h;
	struct ps_state *st = ctx;
	struct hook_disco *hd = args;
	if (hd->to->node == NULL) {
		if (hd->node == NULL && st->set->pep) {
			/* the server: PEP is offered to its accounts */
			add_identity(hd->query, "pubsub", "pep", NULL);
		}
		return HOOK_CONTINUE;
	}
	if (!st->set->pep)
		return HOOK_CONTINUE;
	if (hd->node == NULL) {
		add_identity(hd->query, "pubsub", "pep", NULL);
		return HOOK_CONTINUE;
	}
	struct ps_owner *o = ps_pep_owner_find(st, hd->to->node);
	if (o != NULL && o->state == PS_LOADED && node_info(o, hd->node, hd->query))
		hd->handled = true;
	return HOOK_CONTINUE;
}

static enum hook_result disco_items_hook(struct host *h, void *args, void *ctx)
{
	(void)h;
	struct ps_state *st = ctx;
	struct hook_disco *hd = args;
	if (hd->node != NULL)
		return HOOK_CONTINUE;
	for (struct ps_owner *o = st->owners; o != NULL; o = o->next) {
		if (o->user != NULL)
			continue;
		struct xml_node *it = xml_add_child(hd->query, "item", NULL);
		xml_set_attr(it, "jid", o->key);
		xml_set_attr(it, "name", "Publish-Subscribe");
	}
	return HOOK_CONTINUE;
}

/* Last items for a session whose caps became known: its own account's
 * nodes, then those of each local contact whose presence it receives. */
struct last_for {
	struct ps_state *st;
	struct jid jid; /* the session */
	bool contacts;  /* the account's roster is loaded: go on to contacts */
};

static void last_for_free(struct last_for *l)
{
	jid_clear(&l->jid);
	free(l);
}

static void contact_ready(struct ps_owner *o, bool ok, void *ctx)
{
	struct last_for *l = ctx;
	/* the session's host, looked up again: the contact may be another
	 * host's, whose load may outlast this one */
	struct host *sh = ok ? host_find(l->jid.domain) : NULL;
	struct session *s = sh != NULL ? sm_find(sh, &l->jid) : NULL;
	if (s != NULL && s->available)
		ps_send_last_items(o, s);
	last_for_free(l);
}

static void own_ready(struct ps_owner *o, bool ok, void *ctx)
{
	struct last_for *l = ctx;
	struct ps_state *st = l->st;
	struct session *s = ok ? sm_find(st->h, &l->jid) : NULL;
	if (s == NULL || !s->available) {
		last_for_free(l);
		return;
	}
	ps_send_last_items(o, s);
	for (size_t i = 0; i < o->nroster; i++) {
		const struct roster_item *it = &o->roster[i];
		if (it->subscription != SUB_TO && it->subscription != SUB_BOTH)
			continue;
		struct jid cj = { 0 };
		const char *err;
		struct host *ch = NULL;
		if (jid_parse(it->jid, &cj, &err) == 0 && cj.node != NULL && cj.resource == NULL)
			ch = strcmp(cj.domain, st->h->name) == 0 ? st->h : host_find(cj.domain);
		struct ps_state *cst = ch == st->h ? st
		                       : ch != NULL && module_running(ch, "pubsub")
		                               ? module_state(ch, "pubsub")
		                               : NULL;
		if (cst != NULL) {
			struct ps_owner *co = ps_pep_owner(cst, cj.node);
			if (co != NULL) {
				struct last_for *c = xcalloc(1, sizeof(*c));
				c->st = st;
				jid_copy(&c->jid, &l->jid);
				ps_owner_when_ready(co, contact_ready, c);
			}
		}
		jid_clear(&cj);
	}
	last_for_free(l);
}

static void remote_ready(struct ps_owner *o, bool ok, void *ctx)
{
	struct last_for *l = ctx;
	if (ok)
		ps_send_last_remote(o, &l->jid);
	last_for_free(l);
}

static enum hook_result caps_known_hook(struct host *h, void *args, void *ctx)
{
	(void)h;
	struct ps_state *st = ctx;
	struct hook_caps *hc = args;
	struct session *s = hc->session;
	if (s == NULL) {
		/* a contact's resource on another server (XEP-0163 §4.3.3) */
		struct ps_owner *o = ps_pep_owner(st, hc->user);
		if (o == NULL)
			return HOOK_CONTINUE;
		struct last_for *l = xcalloc(1, sizeof(*l));
		l->st = st;
		jid_copy(&l->jid, hc->jid);
		ps_owner_when_ready(o, remote_ready, l);
		return HOOK_CONTINUE;
	}
	if (s->jid.node == NULL)
		return HOOK_CONTINUE;
	struct ps_owner *o = ps_pep_owner(st, s->jid.node);
	if (o == NULL)
		return HOOK_CONTINUE;
	struct last_for *l = xcalloc(1, sizeof(*l));
	l->st = st;
	jid_copy(&l->jid, &s->jid);
	ps_owner_when_ready(o, own_ready, l);
	return HOOK_CONTINUE;
}

static bool sub_has_from(enum roster_subscription sub)
{
	return sub == SUB_FROM || sub == SUB_BOTH;
}

static enum hook_result roster_changed_hook(struct host *h, void *args, void *ctx)
{
	(void)h;
	struct ps_state *st = ctx;
	struct hook_roster *hr = args;
	struct ps_owner *o = ps_pep_owner_find(st, hr->user);
	if (o == NULL || o->roster_state != PS_LOADED)
		return HOOK_CONTINUE;
	bool had = false, found = false;
	for (size_t i = 0; i < o->nroster && !found; i++) {
		if (strcmp(o->roster[i].jid, hr->item->jid) != 0)
			continue;
		found = true;
		had = sub_has_from(o->roster[i].subscription);
		roster_item_clear(&o->roster[i]);
		if (hr->item->subscription == SUB_REMOVE)
			o->roster[i] = o->roster[--o->nroster];
		else
			roster_copy_item(&o->roster[i], hr->item);
	}
	if (!found && hr->item->subscription != SUB_REMOVE) {
		o->roster = xrealloc(o->roster, (o->nroster + 1) * sizeof(*o->roster));
		roster_copy_item(&o->roster[o->nroster++], hr->item);
	}
	/* a contact that lost presence access (or left an allowed roster
	 * group) loses its subscriptions (XEP-0060 §12) */
	if (found)
		ps_contact_changed(o, hr->item->jid);
	/* a new subscriber to the owner's presence: the last items now
	 * (XEP-0163 §4.3.4), not at the next publish or its next login */
	if (!had && sub_has_from(hr->item->subscription))
		ps_send_last_to_contact(o, hr->item->jid);
	return HOOK_CONTINUE;
}

static void owner_deleted(enum storage_result res, void *ctx)
{
	char *key = ctx;
	if (res != STORAGE_OK)
		log_error("pubsub: the PEP nodes of the removed account %s could not be deleted: %s", key,
		          storage_result_str(res));
	free(key);
}

static enum hook_result remove_user_hook(struct host *h, void *args, void *ctx)
{
	struct ps_state *st = ctx;
	const struct hook_user *hu = args;
	char *bare = xasprintf("%s@%s", hu->user, h->name);
	struct ps_owner *o = ps_pep_owner_find(st, hu->user);
	if (o != NULL)
		owner_stop(o);
	struct storage *s = ps_store(st);
	if (s != NULL)
		storage_pubsub_owner_delete(s, h->name, bare, owner_deleted, xstrdup(bare));
	/* its affiliations and subscriptions on the services go */
	for (struct ps_owner *svc = st->owners; svc != NULL; svc = svc->next) {
		if (svc->user != NULL || svc->state != PS_LOADED)
			continue;
		for (struct ps_node *n = svc->nodes; n != NULL; n = n->next) {
			bool changed = false;
			for (size_t i = 0; i < n->naffs;) {
				if (strcmp(n->affs[i].jid, bare) == 0) {
					free(n->affs[i].jid);
					n->affs[i] = n->affs[--n->naffs];
					changed = true;
				} else {
					i++;
				}
			}
			for (size_t i = 0; i < n->nsubs;) {
				struct jid sj = { 0 };
				const char *err;
				bool mine = jid_parse(n->subs[i].jid, &sj, &err) == 0 && sj.node != NULL &&
				            strcmp(sj.node, hu->user) == 0 && strcmp(sj.domain, h->name) == 0;
				jid_clear(&sj);
				if (mine) {
					free(n->subs[i].jid);
					free(n->subs[i].subid);
					n->subs[i] = n->subs[--n->nsubs];
					changed = true;
				} else {
					i++;
				}
			}
			if (changed)
				ps_node_save(n);
		}
	}
	free(bare);
	return HOOK_CONTINUE;
}

/* ---- pep.h ------------------------------------------------------------------------ */

static struct ps_state *pep_state(struct host *h)
{
	if (!module_running(h, "pubsub"))
		return NULL;
	struct ps_state *st = module_state(h, "pubsub");
	return st != NULL && st->set->pep && !st->stopping ? st : NULL;
}

struct pep_call {
	char *node, *id, *origin;
	struct xml_node *payload;
	struct pep_node_options opts;
	char *access;
	bool retract;
	pep_done_fn *cb;
	pep_items_fn *items_cb;
	void *ctx;
};

static void pep_call_free(struct pep_call *c)
{
	free(c->node);
	free(c->id);
	free(c->origin);
	free(c->access);
	xml_unref(&c->payload);
	free(c);
}

static void pep_published(enum stanza_error e, bool ok, void *ctx)
{
	struct pep_call *c = ctx;
	if (c->cb != NULL)
		c->cb(ok                                                             ? PEP_OK
		      : e == SE_RESOURCE_CONSTRAINT || e == SE_INTERNAL_SERVER_ERROR ? PEP_FAILED
		                                                                     : PEP_REFUSED,
		      c->ctx);
	pep_call_free(c);
}

static int access_parse(const char *s)
{
	static const char *const names[] = { "open", "presence", "roster", "whitelist", "authorize" };
	for (size_t i = 0; s != NULL && i < ARRAY_SIZE(names); i++)
		if (strcmp(s, names[i]) == 0)
			return (int)i;
	return -1;
}

static void pep_call_ready(struct ps_owner *o, bool ok, void *ctx)
{
	struct pep_call *c = ctx;
	if (!ok) {
		pep_published(SE_RESOURCE_CONSTRAINT, false, c);
		return;
	}
	struct ps_node *n = ps_node_find(o, c->node);
	if (c->retract) {
		if (n == NULL || ps_retract_item(o, n, c->id, false, c->origin, NULL, pep_published, c) < 0) {
			if (c->cb != NULL)
				c->cb(PEP_NOT_FOUND, c->ctx);
			pep_call_free(c);
		}
		return;
	}
	struct ps_config cfg;
	ps_config_defaults(&cfg, o->st->set, true);
	int acc = access_parse(c->access);
	if (acc >= 0)
		cfg.access = (enum ps_access)acc;
	if (c->opts.max_items != 0)
		cfg.max_items = c->opts.max_items == UINT_MAX ? PS_MAX_ITEMS_MAX : c->opts.max_items;
	if (c->opts.send_last)
		cfg.send_last = PS_SEND_LAST_ON_SUB_AND_PRESENCE;
	if (c->opts.send_last_never)
		cfg.send_last = PS_SEND_LAST_NEVER;
	if (n != NULL && acc >= 0 && n->cfg.access != (enum ps_access)acc) {
		ps_config_clear(&cfg);
		pep_published(SE_CONFLICT, false, c);
		return;
	}
	struct jid publisher = { 0 };
	jid_copy(&publisher, &o->jid);
	enum stanza_error e;
	const char *app, *text;
	ps_publish(o, &publisher, c->node, c->id, c->payload, &cfg, NULL, c->origin, pep_published, c, &e,
	           &app, &text);
	jid_clear(&publisher);
	ps_config_clear(&cfg);
}

static enum pep_result pep_start_call(struct host *h, const char *user, struct pep_call *c)
{
	struct ps_state *st = pep_state(h);
	struct ps_owner *o = st != NULL ? ps_pep_owner(st, user) : NULL;
	if (o == NULL) {
		pep_call_free(c);
		return PEP_UNAVAILABLE;
	}
	ps_owner_when_ready(o, pep_call_ready, c);
	return PEP_OK;
}

enum pep_result pep_publish(struct host *h, const char *user, const char *node, const char *id,
                            const struct xml_node *payload, const struct pep_node_options *opts,
                            const char *origin, pep_done_fn *cb, void *ctx)
{
	struct pep_call *c = xcalloc(1, sizeof(*c));
	c->node = xstrdup(node);
	c->id = id != NULL ? xstrdup(id) : NULL;
	c->origin = origin != NULL ? xstrdup(origin) : NULL;
	c->payload = payload != NULL ? xml_copy(payload) : NULL;
	if (opts != NULL) {
		c->opts = *opts;
		c->access = opts->access_model != NULL ? xstrdup(opts->access_model) : NULL;
	}
	c->cb = cb;
	c->ctx = ctx;
	return pep_start_call(h, user, c);
}

enum pep_result pep_retract(struct host *h, const char *user, const char *node, const char *id,
                            const char *origin, pep_done_fn *cb, void *ctx)
{
	struct pep_call *c = xcalloc(1, sizeof(*c));
	c->node = xstrdup(node);
	c->id = xstrdup(id);
	c->origin = origin != NULL ? xstrdup(origin) : NULL;
	c->retract = true;
	c->cb = cb;
	c->ctx = ctx;
	return pep_start_call(h, user, c);
}

static void pep_items_ready_cb(struct ps_owner *o, bool ok, void *ctx)
{
	struct pep_call *c = ctx;
	struct ps_node *n = ok ? ps_node_find(o, c->node) : NULL;
	if (!ok) {
		c->items_cb(PEP_FAILED, NULL, 0, c->ctx);
	} else if (n == NULL) {
		c->items_cb(PEP_NOT_FOUND, NULL, 0, c->ctx);
	} else {
		struct pep_item *items = xcalloc(n->nitems + 1, sizeof(*items));
		size_t k = 0;
		for (struct ps_item *it = n->newest; it != NULL; it = it->older)
			items[k++] = (struct pep_item){ it->id, it->payload };
		c->items_cb(PEP_OK, items, k, c->ctx);
		free(items);
	}
	pep_call_free(c);
}

enum pep_result pep_items(struct host *h, const char *user, const char *node, pep_items_fn *cb, void *ctx)
{
	struct ps_state *st = pep_state(h);
	struct ps_owner *o = st != NULL ? ps_pep_owner(st, user) : NULL;
	if (o == NULL)
		return PEP_UNAVAILABLE;
	struct pep_call *c = xcalloc(1, sizeof(*c));
	c->node = xstrdup(node);
	c->items_cb = cb;
	c->ctx = ctx;
	ps_owner_when_ready(o, pep_items_ready_cb, c);
	return PEP_OK;
}

/* ---- start and stop ------------------------------------------------------------------ */

static void pubsub_stop(struct host *h, void *state);

static const struct builtin_hook pubsub_hooks[] = {
	{ HOOK_DISCO_INFO, 50, disco_info_hook },   { HOOK_DISCO_ITEMS, 50, disco_items_hook },
	{ HOOK_CAPS_KNOWN, 50, caps_known_hook },   { HOOK_ROSTER_CHANGED, 50, roster_changed_hook },
	{ HOOK_REMOVE_USER, 50, remove_user_hook },
};

static int pubsub_start(struct host *h, const void *settings, void **state_r, char **error_r)
{
	const struct pubsub_settings *set = settings;
	struct ps_state *st = xcalloc(1, sizeof(*st));
	st->h = h;
	st->set = set;
	*state_r = st;
	for (size_t i = 0; i < set->hosts.count; i++) {
		char *domain = builtin_service_domain(set->hosts.items[i], h->name);
		if (domain == NULL) {
			*error_r = xasprintf("modules.pubsub.hosts: '%s' is not a valid domain",
			                     set->hosts.items[i]);
			pubsub_stop(h, st);
			return -1;
		}
		struct ps_owner *o = owner_new(st, domain, NULL);
		free(domain);
		st->nservices++;
		if (router_add_route(o->key, h, service_route, o, error_r) < 0) {
			owner_unlink(o);
			owner_final_free(o);
			pubsub_stop(h, st);
			return -1;
		}
		owner_load(o);
		log_info("pubsub %s: service of %s started", o->key, h->name);
	}
	if (set->pep && builtin_iq_register(h, pep_iqs, ARRAY_SIZE(pep_iqs), st, error_r) < 0) {
		pubsub_stop(h, st);
		return -1;
	}
	for (size_t i = 0; i < ARRAY_SIZE(pubsub_hooks); i++)
		hook_add(h, pubsub_hooks[i].name, pubsub_hooks[i].priority, pubsub_hooks[i].fn, st);
	if (ps_adhoc_start(h, error_r) < 0) {
		pubsub_stop(h, st);
		return -1;
	}
	if (set->pep) {
		host_add_user_feature(h, NS_PUBSUB);
		for (size_t i = 0; i < ARRAY_SIZE(features); i++) {
			char var[128];
			snprintf(var, sizeof(var), "%s#%s", NS_PUBSUB, features[i]);
			host_add_user_feature(h, var);
		}
	}
	ev_timer *t = xcalloc(1, sizeof(*t));
	ev_timer_init(t, evict, EVICT_INTERVAL, EVICT_INTERVAL);
	t->data = st;
	ev_timer_start(server.loop, t);
	ev_unref(server.loop); /* the eviction alone does not keep the loop running */
	st->evict_timer = t;
	return 0;
}

static void pubsub_stop(struct host *h, void *state)
{
	struct ps_state *st = state;
	st->stopping = true;
	ps_adhoc_stop(h);
	if (st->evict_timer != NULL) {
		ev_ref(server.loop);
		ev_timer_stop(server.loop, st->evict_timer);
		free(st->evict_timer);
	}
	for (size_t i = 0; i < ARRAY_SIZE(pubsub_hooks); i++)
		hook_remove(h, pubsub_hooks[i].name, pubsub_hooks[i].fn, st);
	if (st->set->pep && iq_has_handler(h, IQ_SCOPE_USER, NS_PUBSUB)) {
		builtin_iq_unregister(h, pep_iqs, ARRAY_SIZE(pep_iqs));
		host_remove_user_feature(h, NS_PUBSUB);
		for (size_t i = 0; i < ARRAY_SIZE(features); i++) {
			char var[128];
			snprintf(var, sizeof(var), "%s#%s", NS_PUBSUB, features[i]);
			host_remove_user_feature(h, var);
		}
	}
	while (st->owners != NULL) {
		struct ps_owner *o = st->owners;
		if (o->user == NULL)
			router_remove_route(o->key, o);
		owner_stop(o);
	}
	free(st);
}

static void pubsub_domains(const struct host_config *hc, const void *settings, struct strlist *domains)
{
	const struct pubsub_settings *set = settings;
	builtin_service_domains(&set->hosts, hc->name, domains); /* pubsub_start judges the others */
}

const struct module_def mod_pubsub = {
	.name = "pubsub",
	.description = "XEP-0060 publish-subscribe services and XEP-0163 PEP on every account",
	.options = pubsub_options,
	.settings_size = sizeof(struct pubsub_settings),
	.default_enabled = true,
	.start = pubsub_start,
	.stop = pubsub_stop,
	.domains = pubsub_domains,
};
