/*
 * Administration of pubsub and PEP nodes from outside the protocol
 * (pubsub-admin.h): finding an owner by name, waiting for its load,
 * deleting and purging nodes, and the words the listings use, for
 * parleyctl and the ad-hoc commands.  Loop thread.
 *
 * The changes go through the protocol's own code (ps_node_delete,
 * ps_node_purge in pubsub-node.c), so subscribers hear of them as they
 * would of the owner's request.  An operation waits for the owner's load
 * and then for the store in a ps_admin_op.  Invariant: an op is freed by
 * the callback that ends it, never before: a cancelled op only stops
 * caring, so that callback always finds it.  An op that ends inside the
 * call that started it (a loaded owner, a host without a pubsub store)
 * hands its outcome back to that call instead.
 */
#include "pubsub-admin.h"
#include "server/host.h"
#include "server/module.h"
#include "server/server.h"
#include "lib/log.h"

#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum op_kind { OP_LOAD, OP_DELETE, OP_PURGE };

struct ps_admin_op {
	enum op_kind kind;
	ps_admin_ready_fn *ready;
	ps_admin_done_fn *done;
	void *ctx;
	bool cancelled;
	char *owner, *node; /* the change's: prepared owner key, node name */
	size_t nitems;      /* purge: items removed */
	/* while the starting call runs: an outcome reached inside it */
	bool starting, ended;
	enum ps_admin_result result;
	char *message;
};

/* ---- owners by name ----------------------------------------------------------------- */

/* The pubsub state of h, or NULL when the module does not run there. */
static struct ps_state *state_of(const struct host *h)
{
	if (!module_running(h, "pubsub"))
		return NULL;
	struct ps_state *st = module_state(h, "pubsub");
	return st != NULL && !st->stopping ? st : NULL;
}

static struct ps_owner *service_find(const char *domain)
{
	for (struct host *h = host_first(); h != NULL; h = h->next) {
		struct ps_state *st = state_of(h);
		for (struct ps_owner *o = st != NULL ? st->owners : NULL; o != NULL; o = o->next)
			if (o->user == NULL && strcmp(o->key, domain) == 0)
				return o;
	}
	return NULL;
}

static enum ps_admin_result pep_owner(const char *name, const char *at, struct ps_owner **o_r, char **error_r)
{
	char *domain = jid_nameprep(at + 1);
	struct host *h = domain != NULL ? host_find(domain) : NULL;
	free(domain);
	if (h == NULL) {
		*error_r = xasprintf("host %s is not served here", at + 1);
		return PS_ADMIN_NOT_FOUND;
	}
	char *node = xstrndup(name, (size_t)(at - name));
	char *user = jid_nodeprep(node);
	free(node);
	if (user == NULL || *user == '\0' || strlen(user) > JID_PART_MAX) {
		*error_r = xasprintf("'%s' has no valid user name", name);
		free(user);
		return PS_ADMIN_INVALID;
	}
	struct ps_state *st = state_of(h);
	struct ps_owner *o = st != NULL ? ps_pep_owner(st, user) : NULL;
	free(user);
	if (o == NULL) {
		*error_r = xasprintf("PEP is off on %s (the pubsub module or its pep option)", h->name);
		return PS_ADMIN_NOT_FOUND;
	}
	*o_r = o;
	return PS_ADMIN_OK;
}

enum ps_admin_result ps_admin_owner(const char *name, bool host_ok, struct ps_owner **o_r, char **error_r)
{
	const char *at = strchr(name, '@');
	if (strchr(name, '/') != NULL || (at != NULL && (at == name || at[1] == '\0'))) {
		*error_r = xasprintf("'%s' is not a pubsub service or USER@HOST", name);
		return PS_ADMIN_INVALID;
	}
	if (at != NULL)
		return pep_owner(name, at, o_r, error_r);
	char *domain = jid_nameprep(name);
	if (domain == NULL || *domain == '\0') {
		*error_r = xasprintf("'%s' is not a valid domain", name);
		free(domain);
		return PS_ADMIN_INVALID;
	}
	struct ps_owner *o = service_find(domain);
	struct host *h = o == NULL && host_ok ? host_find(domain) : NULL;
	if (h != NULL) {
		struct ps_state *st = state_of(h);
		o = st != NULL && st->nservices > 0 ? st->owners : NULL; /* services come first */
		if (o == NULL) {
			*error_r = xasprintf("no pubsub service on %s", h->name);
			free(domain);
			return PS_ADMIN_NOT_FOUND;
		}
	}
	if (o == NULL) {
		*error_r = host_ok ? xasprintf("no pubsub service or host %s", domain)
		                   : xasprintf("no pubsub service %s", domain);
		free(domain);
		return PS_ADMIN_NOT_FOUND;
	}
	free(domain);
	*o_r = o;
	return PS_ADMIN_OK;
}

/* ---- operations --------------------------------------------------------------------- */

static struct ps_admin_op *op_new(enum op_kind kind, void *ctx)
{
	struct ps_admin_op *op = xcalloc(1, sizeof(*op));
	op->kind = kind;
	op->ctx = ctx;
	op->starting = true;
	return op;
}

static void op_free(struct ps_admin_op *op)
{
	free(op->owner);
	free(op->node);
	free(op->message);
	free(op);
}

/* The outcome: to the starting call while it runs, else to the caller;
 * o is the loaded owner (OP_LOAD). */
static void op_end(struct ps_admin_op *op, enum ps_admin_result r, struct ps_owner *o, char *message)
{
	if (op->starting) {
		op->ended = true;
		op->result = r;
		op->message = message;
		return;
	}
	if (!op->cancelled) {
		if (op->kind == OP_LOAD)
			op->ready(op->ctx, r, r == PS_ADMIN_OK ? o : NULL, message);
		else
			op->done(op->ctx, r, message);
	}
	free(message);
	op_free(op);
}

/* The starting call is done: the op's handle, or NULL with the outcome
 * reached meanwhile. */
static struct ps_admin_op *op_started(struct ps_admin_op *op, enum ps_admin_result *r_r, char **message_r)
{
	op->starting = false;
	if (!op->ended)
		return op;
	*r_r = op->result;
	*message_r = op->message;
	op->message = NULL;
	op_free(op);
	return NULL;
}

static char *load_failed(const struct ps_owner *o)
{
	return xasprintf("the nodes of %s cannot be loaded from the store now; try again", o->key);
}

static void loaded(struct ps_owner *o, bool ok, void *ctx)
{
	struct ps_admin_op *op = ctx;
	op_end(op, ok ? PS_ADMIN_OK : PS_ADMIN_TEMPFAIL, o, ok ? NULL : load_failed(o));
}

struct ps_admin_op *ps_admin_load(struct ps_owner *o, ps_admin_ready_fn *fn, void *ctx,
                                  enum ps_admin_result *r_r, char **message_r)
{
	struct ps_admin_op *op = op_new(OP_LOAD, ctx);
	op->ready = fn;
	ps_owner_when_ready(o, loaded, op);
	return op_started(op, r_r, message_r);
}

static void stored(enum stanza_error e, bool ok, void *ctx)
{
	(void)e;
	struct ps_admin_op *op = ctx;
	const char *what = op->kind == OP_DELETE ? "deleted" : "purged";
	if (!ok) {
		log_warning("pubsub %s: node %s %s by an administrator, but the store failed", op->owner,
		            op->node, what);
		op_end(op, PS_ADMIN_TEMPFAIL, NULL,
		       xasprintf("node %s of %s %s, but the store failed: the stored node is not up to "
		                 "date",
		                 op->node, op->owner, what));
	} else if (op->kind == OP_DELETE) {
		op_end(op, PS_ADMIN_OK, NULL, xasprintf("node %s of %s deleted", op->node, op->owner));
	} else {
		op_end(op, PS_ADMIN_OK, NULL,
		       xasprintf("node %s of %s purged: %zu item%s removed", op->node, op->owner, op->nitems,
		                 op->nitems == 1 ? "" : "s"));
	}
}

/* The owner of a change is loaded: find the node and change it. */
static void change_ready(struct ps_owner *o, bool ok, void *ctx)
{
	struct ps_admin_op *op = ctx;
	if (!ok) {
		op_end(op, PS_ADMIN_TEMPFAIL, NULL, load_failed(o));
		return;
	}
	struct ps_node *n = ps_node_find(o, op->node);
	if (n == NULL) {
		op_end(op, PS_ADMIN_NOT_FOUND, NULL, xasprintf("no node %s of %s", op->node, o->key));
		return;
	}
	o->last_used = ev_now(server.loop);
	log_notice("pubsub %s: node %s %s by an administrator", o->key, n->name,
	           op->kind == OP_DELETE ? "deleted" : "purged");
	if (op->kind == OP_DELETE) {
		ps_node_delete(n, stored, op);
	} else {
		op->nitems = n->nitems;
		ps_node_purge(n, stored, op);
	}
}

static struct ps_admin_op *change(enum op_kind kind, const char *owner, const char *node,
                                  ps_admin_done_fn *done, void *ctx, enum ps_admin_result *r_r,
                                  char **message_r)
{
	if (*node == '\0') {
		*r_r = PS_ADMIN_INVALID;
		*message_r = xstrdup("the node name is empty");
		return NULL;
	}
	struct ps_owner *o;
	enum ps_admin_result r = ps_admin_owner(owner, false, &o, message_r);
	if (r != PS_ADMIN_OK) {
		*r_r = r;
		return NULL;
	}
	struct ps_admin_op *op = op_new(kind, ctx);
	op->done = done;
	op->owner = xstrdup(o->key);
	op->node = xstrdup(node);
	ps_owner_when_ready(o, change_ready, op);
	return op_started(op, r_r, message_r);
}

struct ps_admin_op *ps_admin_delete(const char *owner, const char *node, ps_admin_done_fn *done, void *ctx,
                                    enum ps_admin_result *r_r, char **message_r)
{
	return change(OP_DELETE, owner, node, done, ctx, r_r, message_r);
}

struct ps_admin_op *ps_admin_purge(const char *owner, const char *node, ps_admin_done_fn *done, void *ctx,
                                   enum ps_admin_result *r_r, char **message_r)
{
	return change(OP_PURGE, owner, node, done, ctx, r_r, message_r);
}

void ps_admin_cancel(struct ps_admin_op *op)
{
	op->cancelled = true;
}

/* ---- words ------------------------------------------------------------------------ */

const char *ps_admin_sub_state_str(enum ps_sub_state s)
{
	static const char *const names[] = { "none", "pending", "unconfigured", "subscribed" };
	return (size_t)s < ARRAY_SIZE(names) ? names[s] : "none";
}

void ps_admin_owners(const struct ps_node *n, struct strlist *out)
{
	*out = (struct strlist){ xcalloc(n->naffs + 1, sizeof(char *)), 0 };
	if (n->owner->user != NULL) {
		out->items[out->count++] = xstrdup(n->owner->key);
		return;
	}
	for (size_t i = 0; i < n->naffs; i++)
		if (n->affs[i].aff == PS_AFF_OWNER)
			out->items[out->count++] = xstrdup(n->affs[i].jid);
}

size_t ps_admin_payload_size(const struct ps_item *it)
{
	if (it->payload == NULL)
		return 0;
	char *text = xml_to_string(it->payload, NULL);
	size_t size = strlen(text);
	free(text);
	return size;
}

void ps_admin_config_fields(const struct ps_node *n, void (*fn)(const struct ps_admin_field *f, void *ctx),
                            void *ctx)
{
	struct xml_node *x = ps_config_form(&n->cfg, n->name, n->owner->st->set);
	for (struct xml_node *f = xml_child(x, "field", NULL); f != NULL; f = xml_next(f, "field", NULL)) {
		const char *var = xml_attr(f, "var");
		if (var == NULL || strncmp(var, "pubsub#", 7) != 0)
			continue;
		const char *type = xml_attr(f, "type");
		struct ps_admin_field field = { .name = var + 7,
			                        .boolean = type != NULL && strcmp(type, "boolean") == 0,
			                        .multi = type != NULL && strcmp(type, "list-multi") == 0 };
		const char **values = xcalloc(xml_element_count(f) + 1, sizeof(*values));
		for (struct xml_node *v = xml_child(f, "value", NULL); v != NULL;
		     v = xml_next(v, "value", NULL)) {
			const char *text = xml_text(v) != NULL ? xml_text(v) : "";
			if (field.boolean)
				text = strcmp(text, "1") == 0 || strcmp(text, "true") == 0 ? "true" : "false";
			values[field.nvalues++] = text;
		}
		field.values = values;
		fn(&field, ctx);
		free(values);
	}
	xml_unref(&x);
}
