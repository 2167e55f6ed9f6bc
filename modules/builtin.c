/*
 * The list of built-in modules and the helpers they share.  Loop thread.
 *
 * The order of the list is the order modules start on a host (and the
 * reverse of the order they stop): disco first, so that it is there when
 * the others add their features; adhoc before the modules that register
 * ad-hoc commands (announce, shared_roster).
 */
#include "builtin.h"
#include "errmap.h"
#include "pending.h"
#include "server/host.h"
#include "server/router.h"
#include "server/sm.h"
#include "lib/log.h"
#include "storage/storage.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void modules_register_builtin(void)
{
	static bool done;
	if (done)
		return;
	done = true;
	module_register(&mod_disco);
	module_register(&mod_version);
	module_register(&mod_ping);
	module_register(&mod_time);
	module_register(&mod_register);
	module_register(&mod_roster);
	module_register(&mod_offline);
	module_register(&mod_presence);
	module_register(&mod_vcard);
	module_register(&mod_private);
	module_register(&mod_bookmarks);
	module_register(&mod_last);
	module_register(&mod_blocking);
	module_register(&mod_privacy);
	module_register(&mod_limits);
	module_register(&mod_carbons);
	module_register(&mod_csi);
	module_register(&mod_avatar);
	module_register(&mod_vjud);
	module_register(&mod_adhoc);
	module_register(&mod_announce);
	module_register(&mod_shared_roster);
	module_register(&mod_caps);
	module_register(&mod_muc);
	module_register(&mod_pubsub);
	module_register(&mod_push);
	module_register(&mod_extdisco);
	module_register(&mod_mam);
	module_register(&mod_upload);
}

static const char *const scope_names[IQ_SCOPE_COUNT] = {
	[IQ_SCOPE_SERVER] = "server",
	[IQ_SCOPE_USER] = "user",
	[IQ_SCOPE_PREAUTH] = "pre-auth",
};

int builtin_iq_register(struct host *h, const struct builtin_iq *table, size_t n, void *ctx, char **error_r)
{
	for (size_t i = 0; i < n; i++) {
		if (iq_register(h, table[i].scope, table[i].ns, table[i].discipline, table[i].fn, ctx) < 0) {
			*error_r = xasprintf("another module already handles %s (%s scope)", table[i].ns,
			                     scope_names[table[i].scope]);
			builtin_iq_unregister(h, table, i);
			return -1;
		}
	}
	return 0;
}

void builtin_iq_unregister(struct host *h, const struct builtin_iq *table, size_t n)
{
	for (size_t i = n; i > 0; i--)
		iq_unregister(h, table[i - 1].scope, table[i - 1].ns);
}

int builtin_parts_add(struct host *h, const struct builtin_parts *parts, void *ctx, char **error_r)
{
	if (builtin_iq_register(h, parts->iqs, parts->niqs, ctx, error_r) < 0)
		return -1;
	for (size_t i = 0; i < parts->nhooks; i++)
		hook_add(h, parts->hooks[i].name, parts->hooks[i].priority, parts->hooks[i].fn, ctx);
	if (parts->feature != NULL)
		host_add_feature(h, parts->feature);
	if (parts->user_feature != NULL)
		host_add_user_feature(h, parts->user_feature);
	return 0;
}

void builtin_parts_remove(struct host *h, const struct builtin_parts *parts, void *ctx)
{
	for (size_t i = parts->nhooks; i > 0; i--)
		hook_remove(h, parts->hooks[i - 1].name, parts->hooks[i - 1].fn, ctx);
	builtin_iq_unregister(h, parts->iqs, parts->niqs);
	if (parts->feature != NULL)
		host_remove_feature(h, parts->feature);
	if (parts->user_feature != NULL)
		host_remove_user_feature(h, parts->user_feature);
}

/* ---- what a user's stored lists say ---------------------------------------------- */

struct builtin_refusal_check {
	struct host *h;
	char *user;
	struct jid peer;
	unsigned bit;
	struct storage_req *call;   /* the read in flight */
	struct privacy_item *items; /* the default list, while the roster is read */
	size_t nitems;
	builtin_refusal_fn *cb;
	void *ctx;
};

static void refusal_free(struct builtin_refusal_check *c)
{
	for (size_t i = 0; i < c->nitems; i++)
		free((char *)c->items[i].value);
	free(c->items);
	free(c->user);
	jid_clear(&c->peer);
	free(c);
}

static void refusal_end(struct builtin_refusal_check *c, enum builtin_refusal r, enum storage_result res,
                        const char *what)
{
	c->call = NULL;
	c->cb(r, res, what, c->ctx);
	refusal_free(c);
}

void builtin_refusal_cancel(void *check)
{
	struct builtin_refusal_check *c = check;
	if (c->call != NULL)
		storage_cancel(c->call);
	refusal_free(c);
}

static void refusal_roster(enum storage_result res, const struct roster_item *items, size_t count,
                           uint64_t version, void *ctx)
{
	(void)version;
	struct builtin_refusal_check *c = ctx;
	if (res == STORAGE_NOT_FOUND)
		count = 0;
	else if (res != STORAGE_OK) {
		refusal_end(c, BUILTIN_UNKNOWN, res, "the roster");
		return;
	}
	/* Group and subscription items judge the roster the user sees. */
	struct roster_view view;
	roster_view_make(&view, c->h, c->user, items, count, false);
	struct privacy_list def = { .name = "", .items = c->items, .nitems = c->nitems };
	bool denied = privacy_list_denies(&def, view.items, view.count, c->bit, &c->peer);
	roster_view_clear(&view);
	refusal_end(c, denied ? BUILTIN_DENIED : BUILTIN_PASSES, STORAGE_OK, NULL);
}

static void refusal_privacy(enum storage_result res, const struct privacy_list *lists, size_t n,
                            const char *default_name, void *ctx)
{
	struct builtin_refusal_check *c = ctx;
	if (res != STORAGE_OK) {
		refusal_end(c, BUILTIN_UNKNOWN, res, "the privacy lists");
		return;
	}
	const struct privacy_list *def = NULL;
	for (size_t i = 0; default_name != NULL && i < n; i++)
		if (strcmp(lists[i].name, default_name) == 0)
			def = &lists[i];
	if (def == NULL || !privacy_list_needs_roster(def)) {
		bool denied = privacy_list_denies(def, NULL, 0, c->bit, &c->peer);
		refusal_end(c, denied ? BUILTIN_DENIED : BUILTIN_PASSES, STORAGE_OK, NULL);
		return;
	}
	/* The list is copied meanwhile: the answer goes away. */
	c->items = xcalloc(def->nitems, sizeof(*c->items));
	for (size_t i = 0; i < def->nitems; i++) {
		c->items[i] = def->items[i];
		c->items[i].value = def->items[i].value != NULL ? xstrdup(def->items[i].value) : NULL;
	}
	c->nitems = def->nitems;
	c->call = storage_roster_get(c->h->storage, c->h->name, c->user, refusal_roster, c);
}

static void refusal_privacy_start(struct builtin_refusal_check *c)
{
	if (!module_running(c->h, "privacy")) {
		refusal_end(c, BUILTIN_PASSES, STORAGE_OK, NULL);
		return;
	}
	c->call = storage_privacy_get(c->h->storage, c->h->name, c->user, refusal_privacy, c);
}

static void refusal_blocklist(enum storage_result res, const struct strlist *names, void *ctx)
{
	struct builtin_refusal_check *c = ctx;
	if (res != STORAGE_OK) {
		refusal_end(c, BUILTIN_UNKNOWN, res, "the block list");
		return;
	}
	if (blocking_list_matches(names, &c->peer)) {
		refusal_end(c, BUILTIN_BLOCKED, STORAGE_OK, NULL);
		return;
	}
	refusal_privacy_start(c);
}

/* An iq held by builtin_refusal_hold_iq. */
struct refusal_hold {
	struct pending_op p; /* first: the module's list */
	struct host *h;
	struct xml_node *stanza; /* NULL once answered or routed on */
	struct jid from, to;
};

/* The stanza builtin_refusal_hold_iq is routing on (its hook lets it pass). */
static const struct xml_node *refusal_routing;

static void refusal_hold_free(struct pending_op *p)
{
	struct refusal_hold *o = (struct refusal_hold *)p;
	pending_untrack(p);
	if (o->stanza != NULL) {
		router_bounce(o->stanza, SE_SERVICE_UNAVAILABLE, NULL); /* a stop */
		xml_unref(&o->stanza);
	}
	jid_clear(&o->from);
	jid_clear(&o->to);
	free(o);
}

static void refusal_held(enum builtin_refusal r, enum storage_result res, const char *what, void *ctx)
{
	struct refusal_hold *o = ctx;
	if (!pending_resume(&o->p))
		return;
	struct xml_node *stanza = o->stanza;
	o->stanza = NULL;
	if (r == BUILTIN_UNKNOWN) {
		log_warning("%s: an iq for %s refused: %s unreadable (storage %s)", o->h->name, o->to.node,
		            what, storage_result_str(res));
		router_bounce(stanza, errmap_storage(res), NULL);
	} else if (r != BUILTIN_PASSES) {
		router_bounce(stanza, SE_SERVICE_UNAVAILABLE, NULL);
	} else {
		const struct xml_node *outer = refusal_routing;
		refusal_routing = stanza;
		sm_route(o->h, stanza, &o->from, &o->to);
		refusal_routing = outer;
	}
	xml_unref(&stanza);
	refusal_hold_free(&o->p);
}

bool builtin_refusal_hold_iq(struct pending_ops *ops, struct host *h, const struct hook_packet *hp)
{
	const char *type = xml_attr(hp->stanza, "type");
	if (hp->stanza == refusal_routing || hp->from == NULL || hp->to == NULL || hp->to->node == NULL ||
	    hp->to->resource != NULL || stanza_kind(hp->stanza) != STANZA_IQ || type == NULL ||
	    (strcmp(type, "get") != 0 && strcmp(type, "set") != 0) ||
	    sm_user_sessions(h, hp->to->node) != NULL)
		return false;
	struct refusal_hold *o = xcalloc(1, sizeof(*o));
	struct builtin_refusal_check *c =
	        builtin_refusal_start(h, hp->to->node, hp->from, PRIVACY_IQ, refusal_held, o);
	if (c == NULL) {
		free(o);
		return false;
	}
	o->h = h;
	xml_ref(hp->stanza);
	o->stanza = hp->stanza;
	jid_copy(&o->from, hp->from);
	jid_copy(&o->to, hp->to);
	pending_track(ops, &o->p, refusal_hold_free);
	pending_wait(&o->p, c, builtin_refusal_cancel);
	return true;
}

struct builtin_refusal_check *builtin_refusal_start(struct host *h, const char *user, const struct jid *peer,
                                                    unsigned bit, builtin_refusal_fn *cb, void *ctx)
{
	bool blocking = module_running(h, "blocking");
	if ((!blocking && !module_running(h, "privacy")) || builtin_filter_exempt(h, user, peer))
		return NULL;
	struct builtin_refusal_check *c = xcalloc(1, sizeof(*c));
	c->h = h;
	c->user = xstrdup(user);
	jid_copy(&c->peer, peer);
	c->bit = bit;
	c->cb = cb;
	c->ctx = ctx;
	if (blocking)
		c->call = storage_blocklist_get(h->storage, h->name, user, refusal_blocklist, c);
	else
		c->call = storage_privacy_get(h->storage, h->name, user, refusal_privacy, c);
	return c;
}

void builtin_route_unavailable(struct jid *from, struct jid *to, size_t n, bool *bypass)
{
	for (size_t i = 0; i < n; i++) {
		struct xml_node *p = xml_new("presence", NS_CLIENT);
		xml_set_attr(p, "type", "unavailable");
		xml_set_attr(p, "from", jid_to_pool(p->pool, &from[i]));
		xml_set_attr(p, "to", jid_to_pool(p->pool, &to[i]));
		*bypass = true;
		router_route(p, &from[i], &to[i]);
		*bypass = false;
		xml_unref(&p);
		jid_clear(&from[i]);
		jid_clear(&to[i]);
	}
	free(from);
	free(to);
}

bool builtin_filter_exempt(const struct host *h, const char *user, const struct jid *peer)
{
	if (peer == NULL || peer->domain == NULL || strcmp(peer->domain, h->name) != 0)
		return false;
	return peer->node == NULL ? peer->resource == NULL : strcmp(peer->node, user) == 0;
}

void builtin_refuse_sent(struct session *s, const struct xml_node *stanza, enum stanza_error cond,
                         const char *text, const char *app, const char *app_ns)
{
	struct xml_node *reply = stanza_error_reply(stanza, cond, text);
	if (reply == NULL)
		return;
	struct xml_node *err = app != NULL ? xml_child(reply, "error", NULL) : NULL;
	if (err != NULL)
		xml_add_child(err, app, app_ns);
	s->ops->deliver(s->owner, reply);
	xml_unref(&reply);
}

size_t builtin_sessions(struct host *h, const char *user, bool (*want)(const struct session *s, void *ctx),
                        void *ctx, struct jid **targets_r)
{
	size_t n = 0;
	for (struct session *s = sm_user_sessions(h, user); s != NULL; s = s->next_of_user)
		if (want == NULL || want(s, ctx))
			n++;
	*targets_r = NULL;
	if (n == 0)
		return 0;
	struct jid *targets = xcalloc(n, sizeof(*targets));
	size_t k = 0;
	for (struct session *s = sm_user_sessions(h, user); s != NULL && k < n; s = s->next_of_user)
		if (want == NULL || want(s, ctx))
			jid_copy(&targets[k++], &s->jid);
	*targets_r = targets;
	return k;
}

bool builtin_session_available(const struct session *s, void *ctx)
{
	(void)ctx;
	return s->available;
}

void builtin_push(struct host *h, const char *user, struct jid *targets, size_t n,
                  const struct xml_node *payload)
{
	struct jid bare = { 0 };
	jid_set(&bare, user, h->name, NULL);
	for (size_t i = 0; i < n; i++) {
		char id[17];
		random_id(id, 16);
		struct xml_node *iq = xml_new("iq", NS_CLIENT);
		xml_set_attr(iq, "type", "set");
		xml_set_attr(iq, "id", id);
		xml_set_attr(iq, "from", jid_bare_to_pool(iq->pool, &bare));
		xml_set_attr(iq, "to", jid_to_pool(iq->pool, &targets[i]));
		xml_append_copy(iq, payload);
		router_route(iq, &bare, &targets[i]);
		xml_unref(&iq);
		jid_clear(&targets[i]);
	}
	jid_clear(&bare);
	free(targets);
}

static const char *pep_result_str(enum pep_result r)
{
	switch (r) {
	case PEP_OK: return "ok";
	case PEP_NOT_FOUND: return "no such node or item";
	case PEP_UNAVAILABLE: return "PEP does not run on the host";
	case PEP_REFUSED: return "refused by the node's configuration or a limit";
	case PEP_FAILED: return "storage failed";
	}
	return "unknown PEP result";
}

struct xml_node *builtin_parse_stored(const char *text, const char *name, const char *ns)
{
	size_t len = strlen(text);
	const struct xml_parser_limits lim = {
		.max_stanza = len + 1,
		.max_depth = 64,
		.max_attrs = 64,
	};
	struct xml_node *el = xml_parse_string(text, len, NULL, &lim, NULL);
	if (el != NULL && !xml_is(el, name, ns))
		xml_unref(&el);
	return el;
}

void builtin_log_pep(const struct host *h, const char *module, const char *user, const char *what,
                     enum pep_result r)
{
	if (r == PEP_UNAVAILABLE)
		log_debug("%s %s: %s of %s: %s", module, h->name, what, user, pep_result_str(r));
	else
		log_warning("%s %s: %s of %s: %s", module, h->name, what, user, pep_result_str(r));
}

/* Run the roster_view hook on hv; v is what it added, or else stored. */
static void roster_view_run(struct roster_view *v, struct host *h, struct hook_roster_view *hv,
                            const struct roster_item *stored, size_t nstored)
{
	hook_run(h, HOOK_ROSTER_VIEW, hv);
	v->tag = hv->tag;
	v->owned = hv->items;
	if (hv->items != NULL) {
		v->items = hv->items;
		v->count = hv->count;
	} else {
		v->items = stored;
		v->count = nstored;
	}
}

void roster_view_make(struct roster_view *v, struct host *h, const char *user,
                      const struct roster_item *stored, size_t nstored, bool presence)
{
	struct hook_roster_view hv = {
		.user = user,
		.presence = presence,
		.stored = stored,
		.nstored = nstored,
	};
	roster_view_run(v, h, &hv, stored, nstored);
}

void roster_view_one(struct roster_view *v, struct host *h, const char *user,
                     const struct roster_item *stored, const char *jid, bool presence)
{
	struct roster_item none = { .jid = (char *)jid, .subscription = SUB_REMOVE };
	struct hook_roster_view hv = {
		.user = user,
		.presence = presence,
		.single = true,
		.stored = stored != NULL ? stored : &none,
		.nstored = 1,
	};
	roster_view_run(v, h, &hv, stored, stored != NULL ? 1 : 0);
}

void roster_view_clear(struct roster_view *v)
{
	if (v->owned != NULL) {
		for (size_t i = 0; i < v->count; i++)
			roster_item_clear(&v->owned[i]);
		free(v->owned);
	}
	memset(v, 0, sizeof(*v));
}

void roster_version_string(char out[32], uint64_t version, uint32_t tag)
{
	if (tag != 0)
		snprintf(out, 32, "%" PRIu64 "-%08" PRIx32, version, tag);
	else
		snprintf(out, 32, "%" PRIu64, version);
}

char *builtin_service_domain(const char *pattern, const char *host)
{
	struct buf b = { 0 };
	const char *p = pattern;
	const char *at;
	while ((at = strstr(p, "@HOST@")) != NULL) {
		buf_append(&b, p, (size_t)(at - p));
		buf_append_str(&b, host);
		p = at + 6;
	}
	buf_append_str(&b, p);
	char *raw = buf_steal(&b);
	char *prepped = jid_nameprep(raw);
	free(raw);
	return prepped;
}

void builtin_service_domains(const struct strlist *patterns, const char *host, struct strlist *domains)
{
	for (size_t i = 0; i < patterns->count; i++) {
		char *domain = builtin_service_domain(patterns->items[i], host);
		if (domain != NULL)
			strlist_take(domains, domain);
	}
}
