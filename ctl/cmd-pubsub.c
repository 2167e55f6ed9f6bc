/*
 * parleyctl's publish-subscribe commands: pubsub-list, pubsub-info,
 * pubsub-delete and pubsub-purge.  They read and change the nodes of the
 * running parleyd's pubsub services and of its accounts' PEP; finding the
 * owner, loading it and the changes are the module's
 * (modules/pubsub/pubsub-admin.h, the code of the ad-hoc commands too),
 * this file reads the arguments and prints.  Loop thread.
 *
 * An owner not in memory is loaded first (the command waits for the
 * store); a change answers after the store committed it, so a script that
 * goes on finds it stored.  Nodes are listed by name, items newest first,
 * affiliations and subscriptions as the node keeps them.
 */
#include "ctl-private.h"
#include "modules/pubsub/pubsub-admin.h"

#include <stdlib.h>
#include <string.h>

static int code_of(enum ps_admin_result r)
{
	switch (r) {
	case PS_ADMIN_OK: return CTL_OK;
	case PS_ADMIN_INVALID: return CTL_USAGE;
	case PS_ADMIN_TEMPFAIL: return CTL_TEMPFAIL;
	default: return CTL_FAILED;
	}
}

/* ---- waiting for the owner ------------------------------------------------------------- */

typedef void show_fn(struct ctl_call *call, struct ps_owner *o);

/* A listing waiting for its owner's load (call->work). */
struct show_wait {
	struct ctl_call *call;
	struct ps_admin_op *op;
	show_fn *show;
};

static void show_wait_free(void *work)
{
	struct show_wait *w = work;
	if (w->op != NULL)
		ps_admin_cancel(w->op);
	free(w);
}

static void show_ready(void *ctx, enum ps_admin_result r, struct ps_owner *o, const char *message)
{
	struct show_wait *w = ctx;
	struct ctl_call *call = w->call;
	w->op = NULL;
	if (r == PS_ADMIN_OK)
		w->show(call, o);
	else
		ctl_call_finish(call, code_of(r), "%s", message);
}

/* Run show on the owner argv[1] names once it is loaded. */
static void show_owner(struct ctl_call *call, bool host_ok, show_fn *show)
{
	struct ps_owner *o;
	char *err = NULL;
	enum ps_admin_result r = ps_admin_owner(call->argv[1], host_ok, &o, &err);
	if (r != PS_ADMIN_OK) {
		ctl_call_finish(call, code_of(r), "%s", err);
		free(err);
		return;
	}
	struct show_wait *w = xcalloc(1, sizeof(*w));
	w->call = call;
	w->show = show;
	w->op = ps_admin_load(o, show_ready, w, &r, &err);
	if (w->op != NULL) {
		call->work = w;
		call->work_free = show_wait_free;
		return;
	}
	free(w);
	if (r == PS_ADMIN_OK)
		show(call, o);
	else
		ctl_call_finish(call, code_of(r), "%s", err);
	free(err);
}

/* ---- pubsub-list ------------------------------------------------------------------------ */

static void list_node(struct ctl_call *call, const struct ps_node *n, bool first)
{
	struct strlist owners;
	ps_admin_owners(n, &owners);
	const char *access = ps_access_str(n->cfg.access);
	if (!call->json) {
		buf_printf(&call->body, "%-32s %-10s %7zu %13zu ", n->name, access, n->nitems, n->nsubs);
		for (size_t i = 0; i < owners.count; i++)
			buf_printf(&call->body, "%s%s", i > 0 ? "," : "", owners.items[i]);
		buf_append_str(&call->body, "\n");
		strlist_free(&owners);
		return;
	}
	buf_append_str(&call->body, first ? "" : ",\n ");
	buf_append_str(&call->body, "{\"node\": ");
	ctl_json_str(&call->body, n->name);
	buf_append_str(&call->body, ", \"owner\": ");
	ctl_json_str(&call->body, n->owner->key);
	buf_append_str(&call->body, ", \"access_model\": ");
	ctl_json_str(&call->body, access);
	buf_printf(&call->body, ", \"items\": %zu, \"subscriptions\": %zu, \"owners\": ", n->nitems,
	           n->nsubs);
	ctl_json_strlist(&call->body, &owners);
	buf_append_str(&call->body, "}");
	strlist_free(&owners);
}

static void show_list(struct ctl_call *call, struct ps_owner *o)
{
	if (call->json)
		buf_append_str(&call->body, "[");
	else if (o->nodes != NULL)
		buf_printf(&call->body, "%-32s %-10s %7s %13s %s\n", "node", "access", "items",
		           "subscriptions", "owners");
	for (const struct ps_node *n = o->nodes; n != NULL; n = n->next)
		list_node(call, n, n == o->nodes);
	if (call->json)
		buf_append_str(&call->body, "]\n");
	ctl_call_finish(call, CTL_OK, NULL);
}

void cmd_pubsub_list(struct ctl_call *call)
{
	show_owner(call, true, show_list);
}

/* ---- pubsub-info ------------------------------------------------------------------------ */

static void info_field(const struct ps_admin_field *f, void *ctx)
{
	struct ctl_call *call = ctx;
	bool list = f->multi;
	if (!call->json) {
		buf_printf(&call->body, "%s: ", f->name);
		for (size_t i = 0; i < f->nvalues; i++)
			buf_printf(&call->body, "%s%s", i > 0 ? "," : "", f->values[i]);
		buf_append_str(&call->body, "\n");
		return;
	}
	bool first = call->body.data[call->body.len - 1] == '{';
	buf_printf(&call->body, "%s\n  \"%s\": ", first ? "" : ",", f->name);
	if (f->boolean)
		buf_append_str(&call->body, f->nvalues > 0 ? f->values[0] : "false");
	else if (!list)
		ctl_json_str(&call->body, f->nvalues > 0 ? f->values[0] : "");
	if (!list)
		return;
	buf_append_str(&call->body, "[");
	for (size_t i = 0; i < f->nvalues; i++) {
		buf_append_str(&call->body, i > 0 ? ", " : "");
		ctl_json_str(&call->body, f->values[i]);
	}
	buf_append_str(&call->body, "]");
}

static void info_affiliations(struct ctl_call *call, const struct ps_node *n)
{
	if (call->json)
		buf_append_str(&call->body, ",\n \"affiliations\": [");
	else
		buf_printf(&call->body, "affiliations: %zu\n", n->naffs);
	for (size_t i = 0; i < n->naffs; i++) {
		const struct ps_affiliation *a = &n->affs[i];
		if (!call->json) {
			buf_printf(&call->body, "  %s\t%s\n", a->jid, ps_aff_str(a->aff));
			continue;
		}
		buf_append_str(&call->body, i > 0 ? ", " : "");
		buf_append_str(&call->body, "{\"jid\": ");
		ctl_json_str(&call->body, a->jid);
		buf_append_str(&call->body, ", \"affiliation\": ");
		ctl_json_str(&call->body, ps_aff_str(a->aff));
		buf_append_str(&call->body, "}");
	}
	if (call->json)
		buf_append_str(&call->body, "]");
}

static void info_subscriptions(struct ctl_call *call, const struct ps_node *n)
{
	if (call->json)
		buf_append_str(&call->body, ",\n \"subscriptions\": [");
	else
		buf_printf(&call->body, "subscriptions: %zu\n", n->nsubs);
	for (size_t i = 0; i < n->nsubs; i++) {
		const struct ps_subscription *s = &n->subs[i];
		const char *state = ps_admin_sub_state_str(s->state);
		if (!call->json) {
			buf_printf(&call->body, "  %s\t%s\t%s\n", s->jid, s->subid, state);
			continue;
		}
		buf_append_str(&call->body, i > 0 ? ",\n  " : "");
		buf_append_str(&call->body, "{\"jid\": ");
		ctl_json_str(&call->body, s->jid);
		buf_append_str(&call->body, ", \"subid\": ");
		ctl_json_str(&call->body, s->subid);
		buf_append_str(&call->body, ", \"state\": ");
		ctl_json_str(&call->body, state);
		buf_append_str(&call->body, "}");
	}
	if (call->json)
		buf_append_str(&call->body, "]");
}

static void info_items(struct ctl_call *call, const struct ps_node *n)
{
	if (call->json)
		buf_append_str(&call->body, ",\n \"items\": [");
	else
		buf_printf(&call->body, "items: %zu\n", n->nitems);
	for (const struct ps_item *it = n->newest; it != NULL; it = it->older) {
		char published[XEP82_STAMP_LEN];
		xep82_stamp(published, (int64_t)it->published);
		size_t size = ps_admin_payload_size(it);
		if (!call->json) {
			buf_printf(&call->body, "  %s\t%s\t%s\t%zu\n", it->id,
			           it->publisher[0] != '\0' ? it->publisher : "-", published, size);
			continue;
		}
		buf_append_str(&call->body, it != n->newest ? ",\n  " : "");
		buf_append_str(&call->body, "{\"id\": ");
		ctl_json_str(&call->body, it->id);
		buf_append_str(&call->body, ", \"publisher\": ");
		ctl_json_str(&call->body, it->publisher);
		buf_append_str(&call->body, ", \"published\": ");
		ctl_json_str(&call->body, published);
		buf_printf(&call->body, ", \"payload_size\": %zu}", size);
	}
	if (call->json)
		buf_append_str(&call->body, "]");
}

static void show_info(struct ctl_call *call, struct ps_owner *o)
{
	const char *name = call->argv[2];
	const struct ps_node *n = ps_node_find(o, name);
	if (n == NULL) {
		ctl_call_finish(call, CTL_FAILED, "no node %s of %s", name, o->key);
		return;
	}
	char created[XEP82_STAMP_LEN];
	xep82_stamp(created, (int64_t)n->created);
	if (call->json) {
		buf_append_str(&call->body, "{\"owner\": ");
		ctl_json_str(&call->body, o->key);
		buf_append_str(&call->body, ", \"node\": ");
		ctl_json_str(&call->body, n->name);
		buf_append_str(&call->body, ", \"created\": ");
		ctl_json_str(&call->body, created);
		buf_append_str(&call->body, ",\n \"config\": {");
	} else {
		buf_printf(&call->body, "owner: %s\nnode: %s\ncreated: %s\n", o->key, n->name, created);
	}
	ps_admin_config_fields(n, info_field, call);
	if (call->json)
		buf_append_str(&call->body, "}");
	info_affiliations(call, n);
	info_subscriptions(call, n);
	info_items(call, n);
	if (call->json)
		buf_append_str(&call->body, "}\n");
	ctl_call_finish(call, CTL_OK, NULL);
}

void cmd_pubsub_info(struct ctl_call *call)
{
	show_owner(call, false, show_info);
}

/* ---- the changes ------------------------------------------------------------------------ */

static void change_done(void *ctx, enum ps_admin_result r, const char *message)
{
	struct ctl_call *call = ctx;
	call->work = NULL;
	if (r == PS_ADMIN_OK) {
		buf_printf(&call->body, "%s\n", message);
		ctl_call_finish(call, CTL_OK, NULL);
	} else {
		ctl_call_finish(call, code_of(r), "%s", message);
	}
}

static void change_cancel(void *work)
{
	ps_admin_cancel(work);
}

/* Wait for op, or answer what finished at once. */
static void change_started(struct ctl_call *call, struct ps_admin_op *op, enum ps_admin_result r,
                           char *message)
{
	if (op != NULL) {
		call->work = op;
		call->work_free = change_cancel;
		return;
	}
	change_done(call, r, message);
	free(message);
}

void cmd_pubsub_delete(struct ctl_call *call)
{
	enum ps_admin_result r = PS_ADMIN_OK;
	char *message = NULL;
	struct ps_admin_op *op =
	        ps_admin_delete(call->argv[1], call->argv[2], change_done, call, &r, &message);
	change_started(call, op, r, message);
}

void cmd_pubsub_purge(struct ctl_call *call)
{
	enum ps_admin_result r = PS_ADMIN_OK;
	char *message = NULL;
	struct ps_admin_op *op =
	        ps_admin_purge(call->argv[1], call->argv[2], change_done, call, &r, &message);
	change_started(call, op, r, message);
}
