/*
 * Ad-hoc commands (XEP-0050, with XEP-0004 forms, in the style of the
 * XEP-0133 administration commands) that administer pubsub and PEP nodes
 * from a client: what parleyctl pubsub-list, pubsub-info, pubsub-delete
 * and pubsub-purge do, through the same code (pubsub-admin.h).  The pubsub
 * module registers them on each host where mod_adhoc runs.  Loop thread.
 *
 * Who: the host's admins only.  A command acts only on the services of
 * the host it is sent to and on the PEP of the host's accounts; an owner
 * of another host is answered as if it did not exist.
 *
 * Invariants: a command checks its input before it changes anything; a
 * wait for a load or the store is held in the request's data, whose free
 * function cancels the wait, so a request that mod_adhoc ends (a stop, an
 * unregistration) never gets a late answer.
 */
#include "pubsub-adhoc.h"
#include "pubsub-admin.h"
#include "modules/adhoc.h"
#include "modules/errmap.h"
#include "server/host.h"
#include "server/module.h"
#include "lib/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NS_PARLEY_ADMIN "urn:parley:admin"

typedef void show_fn(struct adhoc_request *req, struct ps_owner *o);

/* One command's wait for one request (req->data). */
struct ps_cmd {
	struct adhoc_request *req;
	struct ps_admin_op *op; /* the load or change waited for, or NULL */
	show_fn *show;          /* a listing: what to answer once loaded */
};

static void ps_cmd_free(void *p)
{
	struct ps_cmd *c = p;
	if (c->op != NULL)
		ps_admin_cancel(c->op);
	free(c);
}

static struct ps_cmd *ps_cmd_of(struct adhoc_request *req)
{
	struct ps_cmd *c = xcalloc(1, sizeof(*c));
	c->req = req;
	req->data = c;
	req->data_free = ps_cmd_free;
	return c;
}

static enum stanza_error error_of(enum ps_admin_result r)
{
	switch (r) {
	case PS_ADMIN_INVALID: return SE_BAD_REQUEST;
	case PS_ADMIN_NOT_FOUND: return SE_ITEM_NOT_FOUND;
	case PS_ADMIN_TEMPFAIL: return errmap_storage(STORAGE_TEMPFAIL);
	default: return errmap_storage(STORAGE_ERROR);
	}
}

/* ---- forms ------------------------------------------------------------------------- */

static const char *optional(const struct adhoc_request *req, const char *var)
{
	const char *v = form_value(req->form, var);
	return v != NULL && *v != '\0' ? v : NULL;
}

/* A form asking for an owner and, with_node, a node. */
static struct xml_node *owner_form(const char *title, const char *instructions, bool with_node)
{
	struct xml_node *f = form_new("form", title, instructions, NS_PARLEY_ADMIN);
	form_add_field(f, "owner", "jid-single",
	               with_node ? "Service (pubsub.HOST) or account (USER@HOST)"
	                         : "Service (pubsub.HOST) or account (USER@HOST); none: the host's first "
	                           "service",
	               NULL, with_node);
	if (with_node)
		form_add_field(f, "node", "text-single", "Node", NULL, true);
	return f;
}

/* The owner the submitted form names (with_host: or the host's first
 * service), when it is one of this host's; NULL when req was answered. */
static struct ps_owner *form_owner(struct adhoc_request *req, bool with_host)
{
	const char *name = optional(req, "owner");
	if (name == NULL && !with_host) {
		adhoc_fail(req, SE_BAD_REQUEST, "no owner given");
		return NULL;
	}
	struct ps_owner *o;
	char *err = NULL;
	enum ps_admin_result r = ps_admin_owner(name != NULL ? name : req->host->name, with_host, &o, &err);
	if (r == PS_ADMIN_OK && o->st->h != req->host) {
		r = PS_ADMIN_NOT_FOUND;
		err = xasprintf("%s is not served by %s", o->key, req->host->name);
	}
	if (r != PS_ADMIN_OK) {
		adhoc_fail(req, error_of(r), err);
		free(err);
		return NULL;
	}
	return o;
}

/* ---- listings -------------------------------------------------------------------------- */

static void show_ready(void *ctx, enum ps_admin_result r, struct ps_owner *o, const char *message)
{
	struct ps_cmd *c = ctx;
	c->op = NULL;
	if (r == PS_ADMIN_OK)
		c->show(c->req, o);
	else
		adhoc_fail(c->req, error_of(r), message);
}

/* Answer req with show once o is loaded. */
static void show_owner(struct adhoc_request *req, struct ps_owner *o, show_fn *show)
{
	struct ps_cmd *c = ps_cmd_of(req);
	c->show = show;
	enum ps_admin_result r = PS_ADMIN_OK;
	char *err = NULL;
	c->op = ps_admin_load(o, show_ready, c, &r, &err);
	if (c->op != NULL)
		return;
	if (r == PS_ADMIN_OK)
		show(req, o);
	else
		adhoc_fail(req, error_of(r), err);
	free(err);
}

static void show_list(struct adhoc_request *req, struct ps_owner *o)
{
	char *title = xasprintf("Nodes of %s", o->key);
	struct xml_node *f = form_new("result", title, NULL, NS_PARLEY_ADMIN);
	free(title);
	struct xml_node *rep = xml_add_child(f, "reported", NS_DATA_FORMS);
	form_add_field(rep, "node", "text-single", "Node", NULL, false);
	form_add_field(rep, "access_model", "text-single", "Access model", NULL, false);
	form_add_field(rep, "items", "text-single", "Items", NULL, false);
	form_add_field(rep, "subscriptions", "text-single", "Subscriptions", NULL, false);
	form_add_field(rep, "owners", "jid-multi", "Owners", NULL, false);
	for (const struct ps_node *n = o->nodes; n != NULL; n = n->next) {
		struct xml_node *it = xml_add_child(f, "item", NS_DATA_FORMS);
		char items[24], subs[24];
		snprintf(items, sizeof(items), "%zu", n->nitems);
		snprintf(subs, sizeof(subs), "%zu", n->nsubs);
		form_add_field(it, "node", NULL, NULL, n->name, false);
		form_add_field(it, "access_model", NULL, NULL, ps_access_str(n->cfg.access), false);
		form_add_field(it, "items", NULL, NULL, items, false);
		form_add_field(it, "subscriptions", NULL, NULL, subs, false);
		struct xml_node *owners = form_add_field(it, "owners", NULL, NULL, NULL, false);
		struct strlist l;
		ps_admin_owners(n, &l);
		for (size_t i = 0; i < l.count; i++)
			form_field_add_value(owners, l.items[i]);
		strlist_free(&l);
	}
	adhoc_done(req, o->nodes == NULL ? "There are no nodes." : NULL, f);
	xml_unref(&f);
}

static void cmd_list(struct adhoc_request *req, void *ctx)
{
	(void)ctx;
	if (req->form == NULL) {
		struct xml_node *f = owner_form(N_("Listing Publish-Subscribe Nodes"),
		                                N_("The nodes of a service or of an account's PEP."), false);
		adhoc_form(req, f, true);
		xml_unref(&f);
		return;
	}
	struct ps_owner *o = form_owner(req, true);
	if (o != NULL)
		show_owner(req, o, show_list);
}

static void info_field(const struct ps_admin_field *field, void *ctx)
{
	struct xml_node *f = ctx;
	if (field->boolean) {
		form_add_field(f, field->name, "boolean", NULL,
		               field->nvalues > 0 && strcmp(field->values[0], "true") == 0 ? "1" : "0",
		               false);
		return;
	}
	struct xml_node *fl = form_add_field(f, field->name, field->multi ? "text-multi" : "text-single",
	                                     NULL, NULL, false);
	for (size_t i = 0; i < field->nvalues; i++)
		form_field_add_value(fl, field->values[i]);
}

static void show_info(struct adhoc_request *req, struct ps_owner *o)
{
	const char *name = form_value(req->form, "node");
	const struct ps_node *n = ps_node_find(o, name);
	if (n == NULL) {
		char *text = xasprintf("no node %s of %s", name, o->key);
		adhoc_fail(req, SE_ITEM_NOT_FOUND, text);
		free(text);
		return;
	}
	struct xml_node *f = form_new("result", N_("Publish-Subscribe Node"), NULL, NS_PARLEY_ADMIN);
	form_add_field(f, "owner", "jid-single", "Owner", o->key, false);
	form_add_field(f, "node", "text-single", "Node", n->name, false);
	char stamp[XEP82_STAMP_LEN];
	xep82_stamp(stamp, (int64_t)n->created);
	form_add_field(f, "created", "text-single", "Created", stamp, false);
	ps_admin_config_fields(n, info_field, f);
	struct xml_node *affs = form_add_field(f, "affiliations", "text-multi",
	                                       "Affiliations (JID: affiliation)", NULL, false);
	for (size_t i = 0; i < n->naffs; i++) {
		char *line = xasprintf("%s: %s", n->affs[i].jid, ps_aff_str(n->affs[i].aff));
		form_field_add_value(affs, line);
		free(line);
	}
	struct xml_node *subs = form_add_field(f, "subscriptions", "text-multi",
	                                       "Subscriptions (JID, subid, state)", NULL, false);
	for (size_t i = 0; i < n->nsubs; i++) {
		char *line = xasprintf("%s %s %s", n->subs[i].jid, n->subs[i].subid,
		                       ps_admin_sub_state_str(n->subs[i].state));
		form_field_add_value(subs, line);
		free(line);
	}
	struct xml_node *items =
	        form_add_field(f, "items", "text-multi",
	                       "Items, newest first (id, publisher, time, payload bytes)", NULL, false);
	for (const struct ps_item *it = n->newest; it != NULL; it = it->older) {
		xep82_stamp(stamp, (int64_t)it->published);
		char *line = xasprintf("%s %s %s %zu", it->id, it->publisher[0] != '\0' ? it->publisher : "-",
		                       stamp, ps_admin_payload_size(it));
		form_field_add_value(items, line);
		free(line);
	}
	adhoc_done(req, NULL, f);
	xml_unref(&f);
}

static void cmd_info(struct adhoc_request *req, void *ctx)
{
	(void)ctx;
	if (req->form == NULL) {
		struct xml_node *f = owner_form(
		        N_("Showing a Publish-Subscribe Node"),
		        N_("A node's configuration, affiliations, subscriptions and items."), true);
		adhoc_form(req, f, true);
		xml_unref(&f);
		return;
	}
	if (optional(req, "node") == NULL) {
		adhoc_fail(req, SE_BAD_REQUEST, "no node given");
		return;
	}
	struct ps_owner *o = form_owner(req, false);
	if (o != NULL)
		show_owner(req, o, show_info);
}

/* ---- delete, purge ------------------------------------------------------------------------ */

static void change_done(void *ctx, enum ps_admin_result r, const char *message)
{
	struct ps_cmd *c = ctx;
	c->op = NULL;
	if (r == PS_ADMIN_OK)
		adhoc_done(c->req, message, NULL); /* frees c */
	else
		adhoc_fail(c->req, error_of(r), message);
}

typedef struct ps_admin_op *change_fn(const char *owner, const char *node, ps_admin_done_fn *done, void *ctx,
                                      enum ps_admin_result *r_r, char **message_r);

static void run_change(struct adhoc_request *req, const char *title, const char *instructions,
                       change_fn *change)
{
	if (req->form == NULL) {
		struct xml_node *f = owner_form(title, instructions, true);
		adhoc_form(req, f, true);
		xml_unref(&f);
		return;
	}
	const char *node = optional(req, "node");
	if (node == NULL) {
		adhoc_fail(req, SE_BAD_REQUEST, "no node given");
		return;
	}
	struct ps_owner *o = form_owner(req, false);
	if (o == NULL)
		return;
	struct ps_cmd *c = ps_cmd_of(req);
	enum ps_admin_result r = PS_ADMIN_OK;
	char *message = NULL;
	c->op = change(o->key, node, change_done, c, &r, &message);
	if (c->op != NULL)
		return;
	change_done(c, r, message);
	free(message);
}

static void cmd_delete(struct adhoc_request *req, void *ctx)
{
	(void)ctx;
	run_change(req, "Deleting a Publish-Subscribe Node",
	           "Its subscribers are notified as for its owner's delete.", ps_admin_delete);
}

static void cmd_purge(struct adhoc_request *req, void *ctx)
{
	(void)ctx;
	run_change(req, "Purging a Publish-Subscribe Node", "Every item of the node is removed.",
	           ps_admin_purge);
}

/* ---- registration ------------------------------------------------------------------- */

static const struct adhoc_command ps_commands[] = {
	{ NS_PARLEY_ADMIN "#pubsub-list", "List Publish-Subscribe Nodes", true, cmd_list },
	{ NS_PARLEY_ADMIN "#pubsub-info", "Show a Publish-Subscribe Node", true, cmd_info },
	{ NS_PARLEY_ADMIN "#pubsub-delete", "Delete a Publish-Subscribe Node", true, cmd_delete },
	{ NS_PARLEY_ADMIN "#pubsub-purge", "Purge a Publish-Subscribe Node", true, cmd_purge },
};

int ps_adhoc_start(struct host *h, char **error_r)
{
	if (module_state(h, "adhoc") == NULL) {
		log_info("pubsub %s: the adhoc module does not run here; no ad-hoc commands for the nodes",
		         h->name);
		return 0;
	}
	return adhoc_register_all(h, ps_commands, ARRAY_SIZE(ps_commands), NULL, error_r);
}

void ps_adhoc_stop(struct host *h)
{
	adhoc_unregister_all(h, ps_commands, ARRAY_SIZE(ps_commands));
}
