/*
 * Ad-hoc commands (XEP-0050, with XEP-0004 forms, in the style of the
 * XEP-0133 administration commands) that administer chat rooms from a
 * client: what parleyctl muc-list, muc-info, muc-create, muc-destroy and
 * muc-set-affiliation do, through the same code (muc-admin.h).  The MUC
 * module registers them on each host where mod_adhoc runs.  Loop thread.
 *
 * Who: the host's admins and the admins of the host's MUC services
 * (muc_is_service_admin) see and run them; mod_adhoc asks service_admin
 * for the latter.  A command acts only on services of the host it is sent
 * to, and only on those whose admin the requester is (a host admin is
 * admin of every service of the host).
 *
 * Invariants: a command checks its input before it changes anything; a
 * change waiting for the store is held in the request's data, whose free
 * function cancels the wait, so a request that mod_adhoc ends (a stop, an
 * unregistration) never gets a late answer.
 */
#include "muc-adhoc.h"
#include "muc-admin.h"
#include "modules/adhoc.h"
#include "modules/errmap.h"
#include "server/host.h"
#include "server/module.h"
#include "lib/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NS_PARLEY_ADMIN "urn:parley:admin"

/* One command's wait for one request (req->data). */
struct muc_cmd {
	struct adhoc_request *req;
	struct muc_admin_op *op; /* the change waiting for the store, or NULL */
};

static void muc_cmd_free(void *p)
{
	struct muc_cmd *c = p;
	if (c->op != NULL)
		muc_admin_cancel(c->op);
	free(c);
}

static enum stanza_error error_of(enum muc_admin_result r)
{
	switch (r) {
	case MUC_ADMIN_INVALID: return SE_BAD_REQUEST;
	case MUC_ADMIN_NOT_FOUND: return SE_ITEM_NOT_FOUND;
	case MUC_ADMIN_EXISTS: return SE_CONFLICT;
	case MUC_ADMIN_TEMPFAIL: return errmap_storage(STORAGE_TEMPFAIL);
	default: return errmap_storage(STORAGE_ERROR);
	}
}

/* ---- who may do what --------------------------------------------------------------- */

/* mod_adhoc's question: is from an admin of a MUC service of h? */
static bool service_admin(struct host *h, const struct jid *from, void *ctx)
{
	(void)ctx;
	for (struct muc_service *s = muc_services(); s != NULL; s = s->next)
		if (s->host == h && muc_is_service_admin(s, from))
			return true;
	return false;
}

static bool may_manage(const struct adhoc_request *req, const struct muc_service *svc)
{
	return svc->host == req->host &&
	       (host_is_admin(req->host, req->from) || muc_is_service_admin(svc, req->from));
}

/* Refuse svc when it is not the host's or not the requester's to manage;
 * true when req was answered. */
static bool refuse_service(struct adhoc_request *req, const struct muc_service *svc)
{
	if (may_manage(req, svc))
		return false;
	char *text;
	if (svc->host != req->host) {
		text = xasprintf("no MUC service %s on %s", svc->domain, req->host->name);
		adhoc_fail(req, SE_ITEM_NOT_FOUND, text);
	} else {
		text = xasprintf("only the admins of %s may manage its rooms", svc->domain);
		adhoc_fail(req, SE_FORBIDDEN, text);
	}
	free(text);
	return true;
}

/* The services of the host the requester manages, in muc_services() order. */
static size_t managed_services(const struct adhoc_request *req, struct muc_service ***list_r)
{
	struct muc_service **list = NULL;
	size_t n = 0;
	for (struct muc_service *s = muc_services(); s != NULL; s = s->next) {
		if (!may_manage(req, s))
			continue;
		list = xrealloc(list, (n + 1) * sizeof(*list));
		list[n++] = s;
	}
	*list_r = list;
	return n;
}

/* ---- forms ------------------------------------------------------------------------- */

/* A required text field of the submitted form; NULL when missing (req
 * answered). */
static const char *required(struct adhoc_request *req, const char *var)
{
	const char *v = form_value(req->form, var);
	if (v == NULL || *v == '\0') {
		char *text = xasprintf("no %s given", var);
		adhoc_fail(req, SE_BAD_REQUEST, text);
		free(text);
		return NULL;
	}
	return v;
}

static const char *optional(const struct adhoc_request *req, const char *var)
{
	const char *v = form_value(req->form, var);
	return v != NULL && *v != '\0' ? v : NULL;
}

/* A form asking for a room, naming the services the requester manages. */
static struct xml_node *room_form(struct adhoc_request *req, const char *title, const char *what)
{
	struct muc_service **svcs;
	size_t n = managed_services(req, &svcs);
	struct buf b = { 0 };
	buf_printf(&b, "%s (NAME@SERVICE; the services here:", what);
	for (size_t i = 0; i < n; i++)
		buf_printf(&b, " %s", svcs[i]->domain);
	buf_append_str(&b, n == 0 ? " none)." : ").");
	free(svcs);
	struct xml_node *f = form_new("form", title, b.data, NS_PARLEY_ADMIN);
	buf_free(&b);
	form_add_field(f, "room", "jid-single", "Room (NAME@SERVICE)", NULL, true);
	return f;
}

/* The room the submitted form names, when the requester may manage it;
 * NULL when req was answered. */
static struct muc_room *form_room(struct adhoc_request *req)
{
	const char *jid = required(req, "room");
	if (jid == NULL)
		return NULL;
	struct muc_room *r;
	char *err = NULL;
	enum muc_admin_result res = muc_admin_room(jid, &r, &err);
	if (res != MUC_ADMIN_OK) {
		adhoc_fail(req, error_of(res), err);
		free(err);
		return NULL;
	}
	return refuse_service(req, r->svc) ? NULL : r;
}

static void add_option(struct xml_node *field, const char *value)
{
	struct xml_node *o = xml_add_child(field, "option", NS_DATA_FORMS);
	xml_set_attr(o, "label", value);
	struct xml_node *v = xml_add_child(o, "value", NS_DATA_FORMS);
	xml_add_text(v, value, strlen(value));
}

static void add_column(struct xml_node *reported, const char *var, const char *type, const char *label)
{
	struct xml_node *f = xml_add_child(reported, "field", NS_DATA_FORMS);
	xml_set_attr(f, "var", var);
	xml_set_attr(f, "type", type);
	xml_set_attr(f, "label", label);
}

static void add_cell(struct xml_node *item, const char *var, const char *value)
{
	struct xml_node *f = xml_add_child(item, "field", NS_DATA_FORMS);
	xml_set_attr(f, "var", var);
	form_field_add_value(f, value);
}

/* ---- answers of changes ------------------------------------------------------------- */

static void change_done(void *ctx, enum muc_admin_result r, const char *message)
{
	struct muc_cmd *c = ctx;
	struct adhoc_request *req = c->req;
	c->op = NULL;
	if (r == MUC_ADMIN_OK)
		adhoc_done(req, message, NULL); /* frees c */
	else
		adhoc_fail(req, error_of(r), message);
}

/* Start waiting for op, or answer what finished at once. */
static void change_started(struct adhoc_request *req, struct muc_cmd *c, struct muc_admin_op *op,
                           enum muc_admin_result r, char *message)
{
	if (op != NULL) {
		c->op = op;
		return;
	}
	change_done(c, r, message);
	free(message);
}

static struct muc_cmd *muc_cmd_of(struct adhoc_request *req)
{
	struct muc_cmd *c = xcalloc(1, sizeof(*c));
	c->req = req;
	req->data = c;
	req->data_free = muc_cmd_free;
	return c;
}

/* ---- list ---------------------------------------------------------------------------- */

static void cmd_list(struct adhoc_request *req, void *ctx)
{
	(void)ctx;
	struct muc_service **svcs;
	size_t nsvc = managed_services(req, &svcs);
	if (nsvc == 0) {
		free(svcs);
		adhoc_done(req, "There is no MUC service on this host.", NULL);
		return;
	}
	for (size_t i = 0; i < nsvc; i++) {
		if (!svcs[i]->loaded) {
			char *text = xasprintf("the rooms of %s are not loaded from the store yet; try again",
			                       svcs[i]->domain);
			adhoc_fail(req, error_of(MUC_ADMIN_TEMPFAIL), text);
			free(text);
			free(svcs);
			return;
		}
	}
	struct xml_node *f = form_new("result", N_("Chat Rooms"), NULL, NS_PARLEY_ADMIN);
	struct xml_node *rep = xml_add_child(f, "reported", NS_DATA_FORMS);
	add_column(rep, "jid", "jid-single", "Room");
	add_column(rep, "occupants", "text-single", "Occupants");
	add_column(rep, "persistent", "boolean", "Persistent");
	add_column(rep, "public", "boolean", "Public");
	add_column(rep, "name", "text-single", "Name");
	size_t total = 0;
	for (size_t i = 0; i < nsvc; i++) {
		size_t n;
		struct muc_room **rooms = muc_rooms_sorted(svcs[i], &n);
		for (size_t k = 0; k < n; k++) {
			const struct muc_room *r = rooms[k];
			if (r->destroyed) /* going away */
				continue;
			total++;
			struct xml_node *it = xml_add_child(f, "item", NS_DATA_FORMS);
			char count[16];
			snprintf(count, sizeof(count), "%u", r->noccupants);
			add_cell(it, "jid", r->jid);
			add_cell(it, "occupants", count);
			add_cell(it, "persistent", r->cfg.persistent ? "1" : "0");
			add_cell(it, "public", r->cfg.public_room ? "1" : "0");
			add_cell(it, "name", r->cfg.name != NULL ? r->cfg.name : "");
		}
		free(rooms);
	}
	free(svcs);
	adhoc_done(req, total == 0 ? "There are no chat rooms on this host." : NULL, f);
	xml_unref(&f);
}

/* ---- info ---------------------------------------------------------------------------- */

static void add_bool(struct xml_node *f, const char *var, const char *label, bool value)
{
	form_add_field(f, var, "boolean", label, value ? "1" : "0", false);
}

static void add_text(struct xml_node *f, const char *var, const char *label, const char *value)
{
	form_add_field(f, var, "text-single", label, value != NULL ? value : "", false);
}

static void add_number(struct xml_node *f, const char *var, const char *label, unsigned value)
{
	char n[16];
	snprintf(n, sizeof(n), "%u", value);
	add_text(f, var, label, n);
}

static void add_affiliations(struct xml_node *f, const struct muc_room *r)
{
	static const struct {
		enum muc_aff aff;
		const char *var, *label;
	} lists[] = {
		{ MUC_AFF_OWNER, "owners", "Owners" },
		{ MUC_AFF_ADMIN, "admins", "Admins" },
		{ MUC_AFF_MEMBER, "members", "Members" },
		{ MUC_AFF_OUTCAST, "outcasts", "Outcasts (banned)" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(lists); i++) {
		struct xml_node *field =
		        form_add_field(f, lists[i].var, "jid-multi", lists[i].label, NULL, false);
		for (const struct muc_affiliation *a = r->affs; a != NULL; a = a->next)
			if (a->aff == lists[i].aff)
				form_field_add_value(field, a->jid);
	}
	struct xml_node *reasons = form_add_field(f, "reasons", "text-multi",
	                                          "Reasons of affiliations (JID: reason)", NULL, false);
	for (const struct muc_affiliation *a = r->affs; a != NULL; a = a->next) {
		if (a->reason == NULL || a->reason[0] == '\0')
			continue;
		char *line = xasprintf("%s: %s", a->jid, a->reason);
		form_field_add_value(reasons, line);
		free(line);
	}
}

static void add_occupants(struct xml_node *f, const struct muc_room *r)
{
	add_number(f, "occupants_count", "Occupants", r->noccupants);
	struct xml_node *field = form_add_field(
	        f, "occupants", "text-multi", "Occupants (nick: real JIDs, role, affiliation)", NULL, false);
	for (const struct muc_occupant *o = r->occupants; o != NULL; o = o->next) {
		struct buf b = { 0 };
		buf_printf(&b, "%s:", o->nick);
		for (const struct muc_session *s = o->sessions; s != NULL; s = s->next) {
			char *jid = jid_to_string(&s->jid);
			buf_printf(&b, " %s%s", jid, s->next != NULL ? "," : ";");
			free(jid);
		}
		buf_printf(&b, " %s, %s", muc_role_str(o->role),
		           muc_aff_str(muc_room_affiliation(r, &o->bare)));
		form_field_add_value(field, b.data);
		buf_free(&b);
	}
}

static void cmd_info(struct adhoc_request *req, void *ctx)
{
	(void)ctx;
	if (req->form == NULL) {
		struct xml_node *f = room_form(req, N_("Showing a Chat Room"), "Choose the room to show");
		adhoc_form(req, f, true);
		xml_unref(&f);
		return;
	}
	struct muc_room *r = form_room(req);
	if (r == NULL)
		return;
	const struct muc_config *c = &r->cfg;
	char created[XEP82_STAMP_LEN], roles[64];
	struct xml_node *f = form_new("result", N_("Chat Room"), NULL, NS_PARLEY_ADMIN);
	form_add_field(f, "room", "jid-single", "Room", r->jid, false);
	add_text(f, "name", "Name", c->name);
	add_text(f, "description", "Description", c->description);
	add_text(f, "language", "Language", c->lang);
	add_text(f, "subject", "Subject", r->subject);
	add_text(f, "subject_by", "Subject set by", r->subject_nick);
	xep82_stamp(created, (int64_t)r->created);
	add_text(f, "created", "Created", created);
	add_bool(f, "public", "Public (listed)", c->public_room);
	add_bool(f, "persistent", "Persistent", c->persistent);
	add_bool(f, "members_only", "Members only", c->members_only);
	add_bool(f, "moderated", "Moderated", c->moderated);
	add_bool(f, "password_protected", "Password protected", c->password_protected);
	add_bool(f, "locked", "Locked (waiting for its configuration)", r->locked);
	add_text(f, "whois", "Who may see real JIDs", muc_admin_who_str(c->whois));
	add_text(f, "allow_private_messages", "Who may send private messages",
	         muc_admin_who_str(c->allow_pm));
	add_bool(f, "change_subject", "Participants may change the subject", c->change_subject);
	add_bool(f, "allow_invites", "Participants may invite", c->allow_invites);
	add_bool(f, "allow_voice_requests", "Voice requests allowed", c->allow_voice_requests);
	add_bool(f, "enable_logging", "Logged", c->enable_logging);
	muc_admin_roles_str(c->get_member_list, roles, sizeof(roles));
	add_text(f, "get_member_list", "Roles that may get the member list", roles);
	muc_admin_roles_str(c->presence_broadcast, roles, sizeof(roles));
	add_text(f, "presence_broadcast", "Roles whose presence is broadcast", roles);
	add_number(f, "max_users", "Maximum occupants (0: the service's)", c->max_users);
	add_number(f, "max_history", "Messages of history sent", c->max_history);
	add_affiliations(f, r);
	add_occupants(f, r);
	adhoc_done(req, NULL, f);
	xml_unref(&f);
}

/* ---- create, destroy, set an affiliation ------------------------------------------------- */

static void cmd_create(struct adhoc_request *req, void *ctx)
{
	(void)ctx;
	if (req->form == NULL) {
		struct xml_node *f = room_form(req, N_("Creating a Chat Room"),
		                               "A persistent room with the service's defaults.  The room");
		form_add_field(f, "owner", "jid-single",
		               "Owner (a bare JID; none: only the service's admins manage it)", NULL, false);
		adhoc_form(req, f, true);
		xml_unref(&f);
		return;
	}
	const char *jid = required(req, "room");
	if (jid == NULL)
		return;
	struct muc_service *svc;
	char *name = NULL, *err = NULL;
	enum muc_admin_result res = muc_admin_service(jid, &svc, &name, &err);
	if (res != MUC_ADMIN_OK) {
		adhoc_fail(req, error_of(res), err);
		free(err);
		return;
	}
	if (refuse_service(req, svc)) {
		free(name);
		return;
	}
	struct muc_cmd *c = muc_cmd_of(req);
	char *message = NULL;
	struct muc_admin_op *op =
	        muc_admin_create(svc, name, optional(req, "owner"), change_done, c, &res, &message);
	free(name);
	change_started(req, c, op, res, message);
}

static void cmd_destroy(struct adhoc_request *req, void *ctx)
{
	(void)ctx;
	if (req->form == NULL) {
		struct xml_node *f =
		        room_form(req, N_("Destroying a Chat Room"),
		                  "Its occupants are told and it is removed from the store.  The room");
		form_add_field(f, "reason", "text-single", "Reason (told to the occupants)", NULL, false);
		adhoc_form(req, f, true);
		xml_unref(&f);
		return;
	}
	struct muc_room *r = form_room(req);
	if (r == NULL)
		return;
	struct muc_cmd *c = muc_cmd_of(req);
	enum muc_admin_result res = MUC_ADMIN_OK;
	char *message = NULL;
	struct muc_admin_op *op =
	        muc_admin_destroy(r, optional(req, "reason"), change_done, c, &res, &message);
	change_started(req, c, op, res, message);
}

static void cmd_set_affiliation(struct adhoc_request *req, void *ctx)
{
	(void)ctx;
	if (req->form == NULL) {
		struct xml_node *f = room_form(
		        req, N_("Setting an Affiliation with a Chat Room"),
		        "Occupants get their new roles; outcasts are removed from the room.  The room");
		form_add_field(f, "jid", "jid-single", "User (a bare JID) or server (a domain)", NULL, true);
		struct xml_node *a =
		        form_add_field(f, "affiliation", "list-single", "Affiliation", "member", true);
		for (int aff = MUC_AFF_OWNER; aff >= MUC_AFF_OUTCAST; aff--)
			add_option(a, muc_aff_str((enum muc_aff)aff));
		form_add_field(f, "reason", "text-single", "Reason", NULL, false);
		adhoc_form(req, f, true);
		xml_unref(&f);
		return;
	}
	const char *room = required(req, "room");
	const char *jid = room != NULL ? required(req, "jid") : NULL;
	const char *aff_s = jid != NULL ? required(req, "affiliation") : NULL;
	if (aff_s == NULL)
		return;
	int aff = muc_aff_parse(aff_s);
	if (aff < 0) {
		char *text = xasprintf("'%s' is not an affiliation (owner, admin, member, outcast or none)",
		                       aff_s);
		adhoc_fail(req, SE_BAD_REQUEST, text);
		free(text);
		return;
	}
	struct muc_room *r = form_room(req);
	if (r == NULL)
		return;
	struct muc_cmd *c = muc_cmd_of(req);
	enum muc_admin_result res = MUC_ADMIN_OK;
	char *message = NULL;
	struct muc_admin_op *op = muc_admin_set_affiliation(
	        r, jid, (enum muc_aff)aff, optional(req, "reason"), change_done, c, &res, &message);
	change_started(req, c, op, res, message);
}

/* ---- registration ------------------------------------------------------------------- */

static const struct adhoc_command muc_commands[] = {
	{ NS_PARLEY_ADMIN "#muc-list", "List Chat Rooms", true, cmd_list },
	{ NS_PARLEY_ADMIN "#muc-info", "Show a Chat Room", true, cmd_info },
	{ NS_PARLEY_ADMIN "#muc-create", "Create a Chat Room", true, cmd_create },
	{ NS_PARLEY_ADMIN "#muc-destroy", "Destroy a Chat Room", true, cmd_destroy },
	{ NS_PARLEY_ADMIN "#muc-set-affiliation", "Set an Affiliation with a Chat Room", true,
	  cmd_set_affiliation },
};

int muc_adhoc_start(struct host *h, char **error_r)
{
	if (module_state(h, "adhoc") == NULL) {
		log_info("muc %s: the adhoc module does not run here; no ad-hoc commands for the rooms",
		         h->name);
		return 0;
	}
	return adhoc_register_all_access(h, muc_commands, ARRAY_SIZE(muc_commands), service_admin, NULL,
	                                 error_r);
}

void muc_adhoc_stop(struct host *h)
{
	adhoc_unregister_all(h, muc_commands, ARRAY_SIZE(muc_commands));
}
