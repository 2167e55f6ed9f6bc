/*
 * Ad-hoc commands (XEP-0050, with XEP-0004 forms, in the style of the
 * XEP-0133 administration commands) that manage a host's shared roster
 * groups from a client: what parleyctl srg-list, srg-info, srg-create,
 * srg-delete, srg-user-add and srg-user-del do.  mod_shared_roster
 * registers them with mod_adhoc (admins only) while both run on a host.
 * Loop thread.
 *
 * Every read and change goes through srg_admin_groups / srg_admin_change
 * (mod_shared_roster.c), the path of parleyctl: the same checks, the same
 * group source, the same roster pushes and presence to connected users.
 *
 * Invariants: a command validates all of its input before it changes
 * anything (a bad JID, an unknown group, a member already in the group or
 * not in it are answered with an error and change nothing); the one call
 * to mod_shared_roster in flight is held in the request's data, whose free
 * function cancels it, so a request that mod_adhoc ends (a stop, an
 * unregistration) never gets a late answer.  On a host whose groups come
 * from a read-only source, the change commands answer <not-allowed/> at
 * their first step with the message parleyctl gives.
 */
#include "builtin.h"
#include "adhoc.h"
#include "errmap.h"
#include "shared_roster.h"
#include "server/host.h"
#include "lib/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NS_PARLEY_ADMIN "urn:parley:admin"

/* One command's work for one request (req->data). */
struct srg_cmd {
	struct adhoc_request *req;
	struct srg_admin *work; /* the call in flight, or NULL */
	char *group;
	struct strlist members; /* prepared members to add or remove */
	size_t next;            /* members[next] is the next to change */
	struct buf changed;     /* the members changed so far, for the answer */
	/* load_group: what goes on with the group c names, once it is read */
	void (*then)(struct srg_cmd *c, const struct srg_group *g);
};

static void srg_cmd_free(void *p)
{
	struct srg_cmd *c = p;
	if (c->work != NULL)
		srg_admin_cancel(c->work);
	free(c->group);
	strlist_free(&c->members);
	buf_free(&c->changed);
	free(c);
}

static struct srg_cmd *srg_cmd_of(struct adhoc_request *req)
{
	if (req->data == NULL) {
		struct srg_cmd *c = xcalloc(1, sizeof(*c));
		c->req = req;
		req->data = c;
		req->data_free = srg_cmd_free;
	}
	return req->data;
}

/* The results that come from storage read as storage results do (errmap.h). */
static enum stanza_error error_of(enum srg_admin_result r)
{
	switch (r) {
	case SRG_ADMIN_INVALID: return SE_BAD_REQUEST;
	case SRG_ADMIN_READ_ONLY: return SE_NOT_ALLOWED;
	case SRG_ADMIN_EXISTS: return errmap_storage(STORAGE_EXISTS);
	case SRG_ADMIN_NOT_FOUND: return errmap_storage(STORAGE_NOT_FOUND);
	case SRG_ADMIN_TEMPFAIL: return errmap_storage(STORAGE_TEMPFAIL);
	default: return errmap_storage(STORAGE_ERROR);
	}
}

/* The call of c (ctx) answered r: c, or NULL when r is a failure and the
 * request was failed with message. */
static struct srg_cmd *call_done(void *ctx, enum srg_admin_result r, const char *message)
{
	struct srg_cmd *c = ctx;
	c->work = NULL;
	if (r != SRG_ADMIN_OK) {
		adhoc_fail(c->req, error_of(r), message);
		return NULL;
	}
	return c;
}

/* <not-allowed/> when the host's groups are read-only; true when answered. */
static bool refuse_read_only(struct adhoc_request *req)
{
	char *why = srg_admin_read_only(req->host);
	if (why == NULL)
		return false;
	adhoc_fail(req, SE_NOT_ALLOWED, why);
	free(why);
	return true;
}

/* Start reading the groups; cb answers req.  False when req was answered. */
static bool load_groups(struct adhoc_request *req, srg_admin_result_fn *cb)
{
	struct srg_cmd *c = srg_cmd_of(req);
	char *err = NULL;
	c->work = srg_admin_groups(req->host, cb, c, &err);
	if (c->work == NULL) {
		adhoc_fail(req, SE_SERVICE_UNAVAILABLE, err);
		free(err);
		return false;
	}
	return true;
}

static const struct srg_group *group_in(const struct srg_group *groups, size_t count, const char *name)
{
	for (size_t i = 0; i < count; i++)
		if (strcmp(groups[i].name, name) == 0)
			return &groups[i];
	return NULL;
}

/* The read of load_group answered: go on with the group c names, or fail
 * the request (the read failed, or there is no such group). */
static void group_loaded(void *ctx, enum srg_admin_result r, const char *message,
                         const struct srg_group *groups, size_t count)
{
	struct srg_cmd *c = call_done(ctx, r, message);
	if (c == NULL)
		return;
	struct adhoc_request *req = c->req;
	const struct srg_group *g = group_in(groups, count, c->group);
	if (g == NULL) {
		char *text = xasprintf("no group %s on %s", c->group, req->host->name);
		adhoc_fail(req, SE_ITEM_NOT_FOUND, text);
		free(text);
		return;
	}
	c->then(c, g);
}

/* Read the group c->group names, then call then with it (then answers). */
static void load_group(struct adhoc_request *req, void (*then)(struct srg_cmd *c, const struct srg_group *g))
{
	srg_cmd_of(req)->then = then;
	load_groups(req, group_loaded);
}

static const char *label_of(const struct srg_group *g)
{
	return g->label != NULL && g->label[0] != '\0' ? g->label : g->name;
}

static bool is_special(const char *member)
{
	return strcmp(member, SRG_MEMBER_ALL) == 0 || strcmp(member, SRG_MEMBER_ONLINE) == 0;
}

static void list_add(struct strlist *l, const char *s)
{
	l->items = xrealloc(l->items, (l->count + 1) * sizeof(char *));
	l->items[l->count++] = xstrdup(s);
}

static bool form_true(const struct xml_node *form, const char *var)
{
	const char *v = form_value(form, var);
	return v != NULL && (strcmp(v, "1") == 0 || strcmp(v, "true") == 0);
}

static void add_option(struct xml_node *field, const char *label, const char *value)
{
	struct xml_node *o = xml_add_child(field, "option", NS_DATA_FORMS);
	if (label != NULL)
		xml_set_attr(o, "label", label);
	struct xml_node *v = xml_add_child(o, "value", NS_DATA_FORMS);
	xml_add_text(v, value, strlen(value));
}

/* A required list-single "group" with every group as an option. */
static void add_group_choice(struct xml_node *form, const struct srg_group *groups, size_t count)
{
	struct xml_node *f = form_add_field(form, "group", "list-single", "Group", NULL, true);
	for (size_t i = 0; i < count; i++)
		add_option(f, label_of(&groups[i]), groups[i].name);
}

static void add_member_fields(struct xml_node *form, const char *label)
{
	form_add_field(form, "members", "jid-multi", label, NULL, false);
	form_add_field(form, "all-users", "boolean", "Every registered user of this host (@all@)", "0",
	               false);
	form_add_field(form, "online-users", "boolean", "Every online user of this host (@online@)", "0",
	               false);
}

/* The members a submitted form names (jid-multi members, the booleans for
 * the special members), prepared, without duplicates.  -1 when one is not
 * valid (req answered). */
static int members_of_form(struct adhoc_request *req, struct strlist *out)
{
	struct strlist in = { 0 };
	form_values(req->form, "members", &in);
	if (form_true(req->form, "all-users"))
		list_add(&in, SRG_MEMBER_ALL);
	if (form_true(req->form, "online-users"))
		list_add(&in, SRG_MEMBER_ONLINE);
	for (size_t i = 0; i < in.count; i++) {
		char *m = NULL;
		const char *err = NULL;
		if (srg_admin_member(req->host, in.items[i], &m, &err) < 0) {
			char *text = xasprintf("%s: %s", in.items[i], err);
			adhoc_fail(req, SE_BAD_REQUEST, text);
			free(text);
			strlist_free(&in);
			return -1;
		}
		if (!strlist_contains(out, m))
			list_add(out, m);
		free(m);
	}
	strlist_free(&in);
	return 0;
}

/* The submitted group name (required). */
static const char *form_group(struct adhoc_request *req)
{
	const char *g = form_value(req->form, "group");
	if (g == NULL || *g == '\0') {
		adhoc_fail(req, SE_BAD_REQUEST, "no group given");
		return NULL;
	}
	return g;
}

/* ---- list ------------------------------------------------------------------------ */

static void add_cell(struct xml_node *item, const char *var, const char *value)
{
	struct xml_node *f = xml_add_child(item, "field", NS_DATA_FORMS);
	xml_set_attr(f, "var", var);
	form_field_add_value(f, value);
}

static void add_column(struct xml_node *reported, const char *var, const char *type, const char *label)
{
	struct xml_node *f = xml_add_child(reported, "field", NS_DATA_FORMS);
	xml_set_attr(f, "var", var);
	xml_set_attr(f, "type", type);
	xml_set_attr(f, "label", label);
}

static void list_loaded(void *ctx, enum srg_admin_result r, const char *message,
                        const struct srg_group *groups, size_t count)
{
	struct srg_cmd *c = call_done(ctx, r, message);
	if (c == NULL)
		return;
	struct xml_node *f = form_new("result", N_("Shared Roster Groups"), NULL, NS_PARLEY_ADMIN);
	struct xml_node *rep = xml_add_child(f, "reported", NS_DATA_FORMS);
	add_column(rep, "group", "text-single", "Group");
	add_column(rep, "name", "text-single", "Display name");
	add_column(rep, "description", "text-single", "Description");
	add_column(rep, "members", "text-single", "Members");
	for (size_t i = 0; i < count; i++) {
		const struct srg_group *g = &groups[i];
		struct xml_node *it = xml_add_child(f, "item", NS_DATA_FORMS);
		add_cell(it, "group", g->name);
		add_cell(it, "name", label_of(g));
		add_cell(it, "description", g->description != NULL ? g->description : "");
		char n[32];
		snprintf(n, sizeof(n), "%zu", g->members.count);
		add_cell(it, "members", n);
	}
	adhoc_done(c->req, count == 0 ? "There are no shared roster groups on this host." : NULL, f);
	xml_unref(&f);
}

static void cmd_list(struct adhoc_request *req, void *ctx)
{
	(void)ctx;
	load_groups(req, list_loaded);
}

/* ---- info ------------------------------------------------------------------------ */

/* Stage 0 of info, delete, user-add and user-del: the form that chooses a
 * group (and, for user-add/-del, the members). */
static void choice_loaded(void *ctx, enum srg_admin_result r, const char *message,
                          const struct srg_group *groups, size_t count)
{
	struct srg_cmd *c = call_done(ctx, r, message);
	if (c == NULL)
		return;
	struct adhoc_request *req = c->req;
	const char *node = req->cmd->node;
	if (count == 0) {
		adhoc_done(req, "There are no shared roster groups on this host.", NULL);
		return;
	}
	struct xml_node *f;
	if (strstr(node, "#srg-info") != NULL) {
		f = form_new("form", N_("Showing a Shared Roster Group"), N_("Choose the group to show."),
		             NS_PARLEY_ADMIN);
	} else if (strstr(node, "#srg-delete") != NULL) {
		f = form_new("form", N_("Deleting a Shared Roster Group"),
		             N_("Choose the group to delete.  Its members no longer see each other "
		                "through it."),
		             NS_PARLEY_ADMIN);
	} else if (strstr(node, "#srg-user-add") != NULL) {
		f = form_new("form", N_("Adding Members to a Shared Roster Group"),
		             N_("Choose the group and the users to add."), NS_PARLEY_ADMIN);
	} else {
		f = form_new("form", N_("Removing Members from a Shared Roster Group"),
		             N_("Choose the group and the users to remove."), NS_PARLEY_ADMIN);
	}
	add_group_choice(f, groups, count);
	if (strstr(node, "#srg-user-") != NULL)
		add_member_fields(f, "Users (USER@HOST)");
	adhoc_form(req, f, true);
	xml_unref(&f);
}

static void info_loaded(struct srg_cmd *c, const struct srg_group *g)
{
	struct adhoc_request *req = c->req;
	struct xml_node *f = form_new("result", N_("Shared Roster Group"), NULL, NS_PARLEY_ADMIN);
	form_add_field(f, "group", "text-single", "Group", g->name, false);
	form_add_field(f, "name", "text-single", "Display name", label_of(g), false);
	form_add_field(f, "description", "text-single", "Description",
	               g->description != NULL ? g->description : "", false);
	struct xml_node *d = form_add_field(f, "displayed", "text-multi", "Displayed groups", NULL, false);
	if (g->displayed.count == 0)
		form_field_add_value(d, g->name);
	for (size_t i = 0; i < g->displayed.count; i++)
		form_field_add_value(d, g->displayed.items[i]);
	struct xml_node *m = form_add_field(f, "members", "jid-multi", "Members", NULL, false);
	for (size_t i = 0; i < g->members.count; i++)
		if (!is_special(g->members.items[i]))
			form_field_add_value(m, g->members.items[i]);
	form_add_field(f, "all-users", "boolean", "Every registered user of this host (@all@)",
	               strlist_contains(&g->members, SRG_MEMBER_ALL) ? "1" : "0", false);
	form_add_field(f, "online-users", "boolean", "Every online user of this host (@online@)",
	               strlist_contains(&g->members, SRG_MEMBER_ONLINE) ? "1" : "0", false);
	adhoc_done(req, NULL, f);
	xml_unref(&f);
}

/* The group a command works on: at the first stage (no form yet) the form
 * choosing it is sent and NULL returned; at the second, the request's
 * srg_cmd with the chosen group, or NULL after failing the request. */
static struct srg_cmd *group_chosen(struct adhoc_request *req)
{
	if (req->form == NULL) {
		load_groups(req, choice_loaded);
		return NULL;
	}
	const char *name = form_group(req);
	if (name == NULL)
		return NULL;
	struct srg_cmd *c = srg_cmd_of(req);
	c->group = xstrdup(name);
	return c;
}

/* group_chosen for a command that changes the group: NULL, answered, when
 * the host's groups are read-only. */
static struct srg_cmd *group_to_change(struct adhoc_request *req)
{
	return refuse_read_only(req) ? NULL : group_chosen(req);
}

static void cmd_info(struct adhoc_request *req, void *ctx)
{
	(void)ctx;
	if (group_chosen(req) != NULL)
		load_group(req, info_loaded);
}

/* ---- create and delete ------------------------------------------------------------ */

static void changed(void *ctx, enum srg_admin_result r, const char *message, const struct srg_group *groups,
                    size_t count)
{
	(void)groups;
	(void)count;
	struct srg_cmd *c = call_done(ctx, r, message);
	if (c == NULL)
		return;
	struct adhoc_request *req = c->req;
	bool create = strstr(req->cmd->node, "#srg-create") != NULL;
	char *note = xasprintf("Group %s %s.", c->group, create ? "created" : "deleted");
	log_notice("adhoc: shared roster group %s@%s %s by an administrator", c->group, req->host->name,
	           create ? "created" : "deleted");
	adhoc_done(req, note, NULL);
	free(note);
}

/* Send one change; false when it was refused at once (req answered). */
static bool change(struct srg_cmd *c, enum srg_admin_op op, const struct srg_group *g, const char *member,
                   srg_admin_result_fn *cb)
{
	enum srg_admin_result r;
	char *err = NULL;
	c->work = srg_admin_change(c->req->host, op, g, member, cb, c, &r, &err);
	if (c->work != NULL)
		return true;
	adhoc_fail(c->req, error_of(r), err);
	free(err);
	return false;
}

static void cmd_create(struct adhoc_request *req, void *ctx)
{
	(void)ctx;
	if (refuse_read_only(req))
		return;
	if (req->form == NULL) {
		struct xml_node *f = form_new("form", N_("Creating a Shared Roster Group"),
		                              N_("Fill out this form to create a group.  Its members see "
		                                 "the members of the displayed groups in their rosters."),
		                              NS_PARLEY_ADMIN);
		form_add_field(f, "group", "text-single", "Group (its key)", NULL, true);
		form_add_field(f, "name", "text-single", "Display name (the roster group; empty: the group)",
		               NULL, false);
		form_add_field(f, "description", "text-single", "Description", NULL, false);
		form_add_field(f, "displayed", "text-multi",
		               "Displayed groups, one a line (none: the group itself)", NULL, false);
		add_member_fields(f, "Members (USER@HOST)");
		adhoc_form(req, f, true);
		xml_unref(&f);
		return;
	}
	const char *name = form_group(req);
	if (name == NULL)
		return;
	struct srg_cmd *c = srg_cmd_of(req);
	c->group = xstrdup(name);
	struct srg_group g = { 0 };
	if (members_of_form(req, &g.members) < 0) {
		srg_group_clear(&g);
		return;
	}
	form_values(req->form, "displayed", &g.displayed);
	const char *label = form_value(req->form, "name");
	const char *desc = form_value(req->form, "description");
	g.name = xstrdup(name);
	g.label = xstrdup(label != NULL ? label : "");
	g.description = xstrdup(desc != NULL ? desc : "");
	change(c, SRG_ADMIN_CREATE, &g, NULL, changed);
	srg_group_clear(&g);
}

static void cmd_delete(struct adhoc_request *req, void *ctx)
{
	(void)ctx;
	struct srg_cmd *c = group_to_change(req);
	if (c == NULL)
		return;
	struct srg_group g = { .name = c->group };
	change(c, SRG_ADMIN_DELETE, &g, NULL, changed);
}

/* ---- members ---------------------------------------------------------------------- */

static void member_next(struct srg_cmd *c);

static void member_changed(void *ctx, enum srg_admin_result r, const char *message,
                           const struct srg_group *groups, size_t count)
{
	(void)groups;
	(void)count;
	struct srg_cmd *c = ctx;
	c->work = NULL;
	if (r != SRG_ADMIN_OK) {
		/* the source failed between the check and the change */
		char *text = c->changed.len > 0 ? xasprintf("%s (done before: %s)", message, c->changed.data)
		                                : xstrdup(message);
		adhoc_fail(c->req, error_of(r), text);
		free(text);
		return;
	}
	buf_printf(&c->changed, "%s%s", c->changed.len > 0 ? ", " : "", c->members.items[c->next]);
	c->next++;
	member_next(c);
}

static void member_next(struct srg_cmd *c)
{
	struct adhoc_request *req = c->req;
	bool add = strstr(req->cmd->node, "#srg-user-add") != NULL;
	if (c->next < c->members.count) {
		struct srg_group g = { .name = c->group };
		change(c, add ? SRG_ADMIN_MEMBER_ADD : SRG_ADMIN_MEMBER_DEL, &g, c->members.items[c->next],
		       member_changed);
		return;
	}
	char *note = xasprintf("%s %s %s: %s.", add ? "Added to" : "Removed from", c->group, req->host->name,
	                       c->changed.data);
	log_notice("adhoc: %s %s@%s by an administrator: %s", add ? "added to" : "removed from", c->group,
	           req->host->name, c->changed.data);
	adhoc_done(req, note, NULL);
	free(note);
}

/* The group as it is now: check every member before the first change. */
static void members_loaded(struct srg_cmd *c, const struct srg_group *g)
{
	struct adhoc_request *req = c->req;
	bool add = strstr(req->cmd->node, "#srg-user-add") != NULL;
	for (size_t i = 0; i < c->members.count; i++) {
		const char *m = c->members.items[i];
		bool in = strlist_contains(&g->members, m);
		if (add == in) {
			char *text = xasprintf(add ? "%s is a member of %s already; nothing was changed"
			                           : "%s is not a member of %s; nothing was changed",
			                       m, c->group);
			adhoc_fail(req, add ? SE_CONFLICT : SE_ITEM_NOT_FOUND, text);
			free(text);
			return;
		}
	}
	member_next(c);
}

static void cmd_members(struct adhoc_request *req, void *ctx)
{
	(void)ctx;
	struct srg_cmd *c = group_to_change(req);
	if (c == NULL)
		return;
	if (members_of_form(req, &c->members) < 0)
		return;
	if (c->members.count == 0) {
		adhoc_fail(req, SE_BAD_REQUEST, "no member given");
		return;
	}
	load_group(req, members_loaded);
}

/* ---- registration ------------------------------------------------------------------- */

static const struct adhoc_command srg_commands[] = {
	{ NS_PARLEY_ADMIN "#srg-list", "List Shared Roster Groups", true, cmd_list },
	{ NS_PARLEY_ADMIN "#srg-info", "Show a Shared Roster Group", true, cmd_info },
	{ NS_PARLEY_ADMIN "#srg-create", "Create a Shared Roster Group", true, cmd_create },
	{ NS_PARLEY_ADMIN "#srg-delete", "Delete a Shared Roster Group", true, cmd_delete },
	{ NS_PARLEY_ADMIN "#srg-user-add", "Add Members to a Shared Roster Group", true, cmd_members },
	{ NS_PARLEY_ADMIN "#srg-user-del", "Remove Members from a Shared Roster Group", true, cmd_members },
};

int srg_adhoc_start(struct host *h, char **error_r)
{
	if (module_state(h, "adhoc") == NULL) {
		log_info("shared_roster %s: the adhoc module does not run here; no ad-hoc commands "
		         "for the groups",
		         h->name);
		return 0;
	}
	return adhoc_register_all(h, srg_commands, ARRAY_SIZE(srg_commands), NULL, error_r);
}

void srg_adhoc_stop(struct host *h)
{
	adhoc_unregister_all(h, srg_commands, ARRAY_SIZE(srg_commands));
}
