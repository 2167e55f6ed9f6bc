/*
 * The list of built-in modules and the helpers they share.  Loop thread.
 *
 * The order of the list is the order modules start on a host (and the
 * reverse of the order they stop): disco first, so that it is there when
 * the others add their features; adhoc before the modules that register
 * ad-hoc commands (announce, shared_roster).
 */
#include "builtin.h"
#include "server/host.h"
#include "server/router.h"
#include "server/sm.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

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
	module_register(&mod_last);
	module_register(&mod_blocking);
	module_register(&mod_privacy);
	module_register(&mod_avatar);
	module_register(&mod_vjud);
	module_register(&mod_adhoc);
	module_register(&mod_announce);
	module_register(&mod_shared_roster);
}

static const char *const scope_names[IQ_SCOPE_COUNT] = {
	[IQ_SCOPE_SERVER] = "server", [IQ_SCOPE_USER] = "user", [IQ_SCOPE_PREAUTH] = "pre-auth",
};

int builtin_iq_register(struct host *h, const struct builtin_iq *table, size_t n, void *ctx,
                        char **error_r)
{
	for (size_t i = 0; i < n; i++) {
		if (iq_register(h, table[i].scope, table[i].ns, table[i].discipline, table[i].fn,
		                ctx) < 0) {
			*error_r = xasprintf("another module already handles %s (%s scope)",
			                     table[i].ns, scope_names[table[i].scope]);
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

size_t builtin_sessions(struct host *h, const char *user,
                        bool (*want)(const struct session *s, void *ctx), void *ctx,
                        struct jid **targets_r)
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
	struct jid bare = {0};
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

void roster_view_make(struct roster_view *v, struct host *h, const char *user,
                      const struct roster_item *stored, size_t nstored, bool presence)
{
	struct hook_roster_view hv = {
		.user = user, .presence = presence, .stored = stored, .nstored = nstored,
	};
	hook_run(h, HOOK_ROSTER_VIEW, &hv);
	v->tag = hv.tag;
	v->owned = hv.items;
	if (hv.items != NULL) {
		v->items = hv.items;
		v->count = hv.count;
	} else {
		v->items = stored;
		v->count = nstored;
	}
}

void roster_view_one(struct roster_view *v, struct host *h, const char *user,
                     const struct roster_item *stored, const char *jid, bool presence)
{
	struct roster_item none = { .jid = (char *)jid, .subscription = SUB_REMOVE };
	struct hook_roster_view hv = {
		.user = user, .presence = presence, .single = true,
		.stored = stored != NULL ? stored : &none, .nstored = 1,
	};
	hook_run(h, HOOK_ROSTER_VIEW, &hv);
	v->tag = hv.tag;
	v->owned = hv.items;
	if (hv.items != NULL) {
		v->items = hv.items;
		v->count = hv.count;
	} else {
		v->items = stored;
		v->count = stored != NULL ? 1 : 0;
	}
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
