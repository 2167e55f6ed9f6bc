/*
 * mod_adhoc: ad-hoc commands (XEP-0050) on the server JID, and the service
 * administration commands of XEP-0133 for the host's admins (host_config
 * admins).  Loop thread.
 *
 * Protocol: disco#items of the node http://jabber.org/protocol/commands
 * lists the commands the requester may run (admins see the admin ones);
 * disco#info of a command node gives identity automation/command-node.
 * <command action='execute'/> (or no action) without a sessionid starts a
 * session; the answer carries a sessionid that the next submit
 * (execute/next/complete) must repeat, from the same full JID, for the same
 * node; cancel ends it.  prev is not offered and is refused.  Sessions
 * expire after 10 minutes without a step.
 *
 * Invariants: a request is answered exactly once (adhoc_form/done/fail);
 * requests in flight are on the state's list, and a stop cancels their
 * storage/auth work and frees them without an answer (the host is going
 * away).  Non-admins get <forbidden/> for admin commands, and do not see
 * them listed; admins are the host's, and for commands registered with an
 * access function (adhoc_register_all_access) whom it admits too (the
 * admins of a MUC service).
 *
 * XEP-0133 commands here: add-user, delete-user, change-user-password,
 * end-user-session, get-registered-users-num, get-online-users-num,
 * get-active-users-num, get-registered-users-list, get-online-users-list,
 * and Parley's server statistics (urn:parley:admin#stats).  announce and
 * the message of the day are mod_announce's.
 */
#include "builtin.h"
#include "adhoc.h"
#include "errmap.h"
#include "server/host.h"
#include "server/hooks.h"
#include "server/sm.h"
#include "server/c2s.h"
#include "server/router.h"
#include "server/server.h"
#include "lib/i18n.h"
#include "lib/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SESSION_TTL 600.0
#define SESSIONS_MAX 1000

struct adhoc_reg {
	const struct adhoc_command *cmd;
	adhoc_access_fn *access; /* who else may run an admin_only command, or NULL */
	void *ctx;
	struct adhoc_reg *next;
};

struct adhoc_session {
	char id[17];
	const struct adhoc_command *cmd;
	char *jid; /* requester's full JID */
	unsigned stage;
	double expires;
	struct adhoc_session *next;
};

struct adhoc_state {
	struct host *host;
	struct adhoc_reg *regs; /* in registration order */
	struct adhoc_session *sessions;
	unsigned nsessions;
	struct adhoc_request *requests; /* in flight */
};

/* ---- data forms ---------------------------------------------------------------- */

struct xml_node *form_new(const char *type, const char *title, const char *instructions,
                          const char *form_type)
{
	struct xml_node *x = xml_new("x", NS_DATA_FORMS);
	xml_set_attr(x, "type", type);
	if (title != NULL) {
		struct xml_node *t = xml_add_child(x, "title", NS_DATA_FORMS);
		xml_add_text(t, title, strlen(title));
	}
	if (instructions != NULL) {
		struct xml_node *i = xml_add_child(x, "instructions", NS_DATA_FORMS);
		xml_add_text(i, instructions, strlen(instructions));
	}
	if (form_type != NULL)
		form_add_field(x, "FORM_TYPE", "hidden", NULL, form_type, false);
	return x;
}

void form_field_add_value(struct xml_node *field, const char *value)
{
	struct xml_node *v = xml_add_child(field, "value", NS_DATA_FORMS);
	xml_add_text(v, value, strlen(value));
}

struct xml_node *form_add_field(struct xml_node *form, const char *var, const char *type, const char *label,
                                const char *value, bool required)
{
	struct xml_node *f = xml_add_child(form, "field", NS_DATA_FORMS);
	if (type != NULL)
		xml_set_attr(f, "type", type);
	xml_set_attr(f, "var", var);
	if (label != NULL)
		xml_set_attr(f, "label", label);
	if (required)
		xml_add_child(f, "required", NS_DATA_FORMS);
	if (value != NULL)
		form_field_add_value(f, value);
	return f;
}

static const struct xml_node *form_field(const struct xml_node *form, const char *var)
{
	if (form == NULL)
		return NULL;
	for (struct xml_node *f = xml_child(form, "field", NS_DATA_FORMS); f != NULL;
	     f = xml_next(f, "field", NS_DATA_FORMS))
		if (str_eq(xml_attr(f, "var"), var))
			return f;
	return NULL;
}

const char *form_value(const struct xml_node *form, const char *var)
{
	const struct xml_node *f = form_field(form, var);
	return f != NULL ? xml_child_text(f, "value", NS_DATA_FORMS) : NULL;
}

void form_values(const struct xml_node *form, const char *var, struct strlist *out)
{
	const struct xml_node *f = form_field(form, var);
	if (f == NULL)
		return;
	for (struct xml_node *v = xml_child(f, "value", NS_DATA_FORMS); v != NULL;
	     v = xml_next(v, "value", NS_DATA_FORMS)) {
		const char *t = xml_text(v);
		if (t == NULL || *t == '\0')
			continue;
		out->items = xrealloc(out->items, (out->count + 1) * sizeof(*out->items));
		out->items[out->count++] = xstrdup(t);
	}
}

char *form_text(const struct xml_node *form, const char *var)
{
	const struct xml_node *f = form_field(form, var);
	struct buf b = { 0 };
	bool first = true;
	for (struct xml_node *v = f != NULL ? xml_child(f, "value", NS_DATA_FORMS) : NULL; v != NULL;
	     v = xml_next(v, "value", NS_DATA_FORMS), first = false) {
		if (!first)
			buf_append(&b, "\n", 1);
		buf_append_str(&b, xml_text(v));
	}
	return b.data != NULL ? buf_steal(&b) : xstrdup("");
}

void form_field_add_lines(struct xml_node *field, const char *text)
{
	for (const char *line = text;;) {
		const char *nl = strchr(line, '\n');
		if (nl == NULL) {
			form_field_add_value(field, line);
			return;
		}
		char *piece = xstrndup(line, (size_t)(nl - line));
		form_field_add_value(field, piece);
		free(piece);
		line = nl + 1;
	}
}

/* ---- sessions ------------------------------------------------------------------- */

static void session_free(struct adhoc_state *ad, struct adhoc_session *s)
{
	for (struct adhoc_session **pp = &ad->sessions; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == s) {
			*pp = s->next;
			ad->nsessions--;
			break;
		}
	}
	free(s->jid);
	free(s);
}

static void sessions_expire(struct adhoc_state *ad, double now)
{
	for (struct adhoc_session *s = ad->sessions, *next; s != NULL; s = next) {
		next = s->next;
		if (s->expires < now)
			session_free(ad, s);
	}
}

static struct adhoc_session *session_find(struct adhoc_state *ad, const char *id)
{
	for (struct adhoc_session *s = ad->sessions; s != NULL; s = s->next)
		if (strcmp(s->id, id) == 0)
			return s;
	return NULL;
}

/* ---- requests and answers --------------------------------------------------------- */

/* text's element child (title, instructions, note) in the language of c. */
static bool translate_text(struct xml_node *el, const struct i18n_catalog *c)
{
	struct xml_node *t = el->children;
	if (t == NULL || t->type != XML_TEXT || t->next != NULL)
		return false;
	const char *tr = i18n_tr(c, t->text);
	if (tr == t->text)
		return false;
	t->text = pool_strdup(el->pool, tr);
	t->text_len = strlen(tr);
	return true;
}

static bool translate_label(struct xml_node *el, const struct i18n_catalog *c)
{
	const char *label = xml_attr(el, "label");
	const char *tr = i18n_tr(c, label);
	if (label == NULL || tr == label)
		return false;
	xml_set_attr(el, "label", tr);
	return true;
}

const char *form_translate(struct xml_node *form, const char *xml_lang)
{
	const struct i18n_catalog *c = i18n_pick_lang(xml_lang);
	if (c == NULL || form == NULL)
		return "en";
	bool any = false;
	for (struct xml_node *ch = form->children; ch != NULL; ch = ch->next) {
		if (ch->type != XML_ELEMENT)
			continue;
		if (xml_is(ch, "title", NS_DATA_FORMS) || xml_is(ch, "instructions", NS_DATA_FORMS)) {
			any = translate_text(ch, c) || any;
		} else if (xml_is(ch, "field", NS_DATA_FORMS) || xml_is(ch, "reported", NS_DATA_FORMS)) {
			any = translate_label(ch, c) || any;
			for (struct xml_node *o = ch->children; o != NULL; o = o->next)
				if (o->type == XML_ELEMENT &&
				    (xml_is(o, "option", NS_DATA_FORMS) || xml_is(o, "field", NS_DATA_FORMS)))
					any = translate_label(o, c) || any;
		}
	}
	return any ? i18n_lang(c) : "en";
}

/* The request's language (XEP-0050 §4.5): the <command/>'s xml:lang, else
 * the <iq/>'s (which the client's stream stamps with its default). */
static const char *request_lang(const struct adhoc_request *req)
{
	const struct xml_node *cmd = req->iq->payload;
	return i18n_stanza_lang(cmd != NULL ? xml_attr(cmd, "xml:lang") : NULL,
	                        xml_attr(req->iq->iq, "xml:lang"));
}

static void request_free(struct adhoc_request *req)
{
	struct adhoc_state *ad = req->ad;
	for (struct adhoc_request **pp = &ad->requests; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == req) {
			*pp = req->next;
			break;
		}
	}
	if (req->data != NULL && req->data_free != NULL)
		req->data_free(req->data);
	free(req->sessionid);
	free(req);
}

static struct xml_node *command_reply(struct adhoc_request *req, const char *status)
{
	struct xml_node *c = iq_payload_new("command", NS_COMMANDS);
	xml_set_attr(c, "node", req->cmd->node);
	xml_set_attr(c, "sessionid", req->sessionid);
	xml_set_attr(c, "status", status);
	return c;
}

void adhoc_form(struct adhoc_request *req, const struct xml_node *form, bool last)
{
	struct adhoc_session *s = session_find(req->ad, req->sessionid);
	if (s != NULL) {
		s->stage = req->stage + 1;
		s->expires = ev_now(server.loop) + SESSION_TTL;
	}
	struct xml_node *c = command_reply(req, "executing");
	struct xml_node *actions = xml_add_child(c, "actions", NS_COMMANDS);
	xml_set_attr(actions, "execute", last ? "complete" : "next");
	xml_add_child(actions, last ? "complete" : "next", NS_COMMANDS);
	xml_append_copy(c, form);
	xml_set_attr(c, "xml:lang", form_translate(c->last_child, request_lang(req)));
	iq_result(req->iq, c);
	xml_unref(&c);
	request_free(req);
}

void adhoc_done(struct adhoc_request *req, const char *note, const struct xml_node *result)
{
	struct adhoc_session *s = session_find(req->ad, req->sessionid);
	if (s != NULL)
		session_free(req->ad, s);
	struct xml_node *c = command_reply(req, "completed");
	const char *want = request_lang(req);
	const char *lang = "en";
	if (note != NULL) {
		struct xml_node *n = xml_add_child(c, "note", NS_COMMANDS);
		xml_set_attr(n, "type", "info");
		note = i18n_tr_lang(want, note, &lang);
		xml_add_text(n, note, strlen(note));
	}
	if (result != NULL) {
		xml_append_copy(c, result);
		const char *flang = form_translate(c->last_child, want);
		if (strcmp(flang, "en") != 0)
			lang = flang;
	}
	xml_set_attr(c, "xml:lang", lang);
	iq_result(req->iq, c);
	xml_unref(&c);
	request_free(req);
}

void adhoc_fail(struct adhoc_request *req, enum stanza_error e, const char *text)
{
	struct adhoc_session *s = session_find(req->ad, req->sessionid);
	if (s != NULL)
		session_free(req->ad, s);
	iq_error(req->iq, e, text);
	request_free(req);
}

/* An error with a commands-specific condition (bad-action, bad-sessionid, ...). */
static void iq_error_specific(struct iq_request *iq, enum stanza_error e, const char *specific)
{
	struct xml_node *reply = stanza_error_reply(iq->iq, e, NULL);
	if (reply == NULL) {
		iq_error(iq, e, NULL);
		return;
	}
	struct xml_node *err = xml_child(reply, "error", NULL);
	if (err != NULL)
		xml_add_child(err, specific, NS_COMMANDS);
	iq_result_tree(iq, reply);
}

/* ---- registry ----------------------------------------------------------------------- */

static struct adhoc_reg *reg_find(struct adhoc_state *ad, const char *node)
{
	for (struct adhoc_reg *r = ad->regs; r != NULL; r = r->next)
		if (strcmp(r->cmd->node, node) == 0)
			return r;
	return NULL;
}

static int reg_add(struct host *h, const struct adhoc_command *cmd, adhoc_access_fn *access, void *ctx,
                   char **error_r)
{
	struct adhoc_state *ad = module_state(h, "adhoc");
	if (ad == NULL) {
		*error_r = xasprintf("needs the adhoc module on host %s", h->name);
		return -1;
	}
	if (reg_find(ad, cmd->node) != NULL) {
		*error_r = xasprintf("ad-hoc command %s is registered twice", cmd->node);
		return -1;
	}
	struct adhoc_reg *r = xcalloc(1, sizeof(*r));
	r->cmd = cmd;
	r->access = access;
	r->ctx = ctx;
	struct adhoc_reg **tail = &ad->regs;
	while (*tail != NULL)
		tail = &(*tail)->next;
	*tail = r;
	return 0;
}

int adhoc_register(struct host *h, const struct adhoc_command *cmd, void *ctx, char **error_r)
{
	return reg_add(h, cmd, NULL, ctx, error_r);
}

void adhoc_unregister(struct host *h, const char *node)
{
	struct adhoc_state *ad = module_state(h, "adhoc");
	if (ad == NULL)
		return;
	for (struct adhoc_reg **pp = &ad->regs; *pp != NULL; pp = &(*pp)->next) {
		struct adhoc_reg *r = *pp;
		if (strcmp(r->cmd->node, node) != 0)
			continue;
		*pp = r->next;
		/* sessions and requests of that command end */
		for (struct adhoc_session *s = ad->sessions, *next; s != NULL; s = next) {
			next = s->next;
			if (s->cmd == r->cmd)
				session_free(ad, s);
		}
		for (struct adhoc_request *q = ad->requests, *next; q != NULL; q = next) {
			next = q->next;
			if (q->cmd == r->cmd) {
				if (q->storage != NULL)
					storage_cancel(q->storage);
				if (q->auth != NULL)
					auth_cancel(q->auth);
				q->storage = NULL;
				q->auth = NULL;
				adhoc_fail(q, SE_SERVICE_UNAVAILABLE, "the command was removed");
			}
		}
		free(r);
		return;
	}
}

int adhoc_register_all(struct host *h, const struct adhoc_command *table, size_t n, void *ctx, char **error_r)
{
	return adhoc_register_all_access(h, table, n, NULL, ctx, error_r);
}

int adhoc_register_all_access(struct host *h, const struct adhoc_command *table, size_t n,
                              adhoc_access_fn *access, void *ctx, char **error_r)
{
	for (size_t i = 0; i < n; i++) {
		if (reg_add(h, &table[i], access, ctx, error_r) < 0) {
			adhoc_unregister_all(h, table, i);
			return -1;
		}
	}
	return 0;
}

void adhoc_unregister_all(struct host *h, const struct adhoc_command *table, size_t n)
{
	for (size_t i = 0; i < n; i++)
		adhoc_unregister(h, table[i].node);
}

static bool may_run(struct adhoc_state *ad, const struct adhoc_reg *r, const struct jid *from)
{
	if (!r->cmd->admin_only)
		return true;
	if (from->domain == NULL)
		return false;
	return host_is_admin(ad->host, from) || (r->access != NULL && r->access(ad->host, from, r->ctx));
}

/* ---- the protocol --------------------------------------------------------------------- */

static void commands_iq(struct iq_request *iq, void *ctx)
{
	struct adhoc_state *ad = ctx;
	if (strcmp(iq->type, "set") != 0 || !xml_is(iq->payload, "command", NS_COMMANDS)) {
		iq_error(iq, SE_BAD_REQUEST, NULL);
		return;
	}
	const char *node = xml_attr(iq->payload, "node");
	const char *action = xml_attr(iq->payload, "action");
	const char *sid = xml_attr(iq->payload, "sessionid");
	if (action == NULL || *action == '\0')
		action = "execute";
	struct adhoc_reg *reg = node != NULL ? reg_find(ad, node) : NULL;
	if (reg == NULL) {
		iq_error(iq, SE_ITEM_NOT_FOUND, "no such command");
		return;
	}
	if (!may_run(ad, reg, &iq->from)) {
		log_notice("adhoc: %s@%s/%s may not run %s", iq->from.node != NULL ? iq->from.node : "",
		           iq->from.domain, iq->from.resource != NULL ? iq->from.resource : "", node);
		iq_error(iq, SE_FORBIDDEN, "only the administrators of this host may run this command");
		return;
	}
	double now = ev_now(server.loop);
	sessions_expire(ad, now);
	char *from = jid_to_string(&iq->from);
	struct adhoc_session *s = NULL;
	if (sid != NULL) {
		s = session_find(ad, sid);
		if (s == NULL || s->cmd != reg->cmd || strcmp(s->jid, from) != 0) {
			free(from);
			iq_error_specific(iq, SE_BAD_REQUEST, "bad-sessionid");
			return;
		}
	}
	free(from);
	if (strcmp(action, "cancel") == 0) {
		if (s == NULL) {
			iq_error_specific(iq, SE_BAD_REQUEST, "bad-sessionid");
			return;
		}
		struct xml_node *c = iq_payload_new("command", NS_COMMANDS);
		xml_set_attr(c, "node", reg->cmd->node);
		xml_set_attr(c, "sessionid", s->id);
		xml_set_attr(c, "status", "canceled");
		session_free(ad, s);
		iq_result(iq, c);
		xml_unref(&c);
		return;
	}
	if (strcmp(action, "execute") != 0 && strcmp(action, "next") != 0 &&
	    strcmp(action, "complete") != 0) {
		iq_error_specific(iq, SE_BAD_REQUEST, "bad-action");
		return;
	}
	if (s == NULL && strcmp(action, "execute") != 0) {
		iq_error_specific(iq, SE_BAD_REQUEST, "bad-sessionid");
		return;
	}
	const struct xml_node *form = xml_child(iq->payload, "x", NS_DATA_FORMS);
	if (form != NULL && !str_eq(xml_attr(form, "type"), "submit"))
		form = NULL;
	if (s != NULL && s->stage > 0 && form == NULL) {
		iq_error_specific(iq, SE_BAD_REQUEST, "bad-payload");
		return;
	}
	if (s == NULL) {
		if (ad->nsessions >= SESSIONS_MAX) {
			iq_error(iq, SE_RESOURCE_CONSTRAINT, "too many command sessions");
			return;
		}
		s = xcalloc(1, sizeof(*s));
		random_id(s->id, 16);
		s->cmd = reg->cmd;
		s->jid = jid_to_string(&iq->from);
		s->next = ad->sessions;
		ad->sessions = s;
		ad->nsessions++;
	}
	s->expires = now + SESSION_TTL;
	struct adhoc_request *req = xcalloc(1, sizeof(*req));
	req->host = ad->host;
	req->from = &iq->from;
	req->cmd = reg->cmd;
	req->stage = s->stage;
	req->form = form;
	req->ctx = reg->ctx;
	req->iq = iq;
	req->sessionid = xstrdup(s->id);
	req->ad = ad;
	req->next = ad->requests;
	ad->requests = req;
	reg->cmd->run(req, reg->ctx);
}

static enum hook_result adhoc_disco_items(struct host *h, void *args, void *ctx)
{
	struct adhoc_state *ad = ctx;
	struct hook_disco *hd = args;
	if (hd->node == NULL || strcmp(hd->node, NS_COMMANDS) != 0)
		return HOOK_CONTINUE;
	hd->handled = true;
	for (struct adhoc_reg *r = ad->regs; r != NULL; r = r->next) {
		if (!may_run(ad, r, hd->from))
			continue;
		struct xml_node *it = xml_add_child(hd->query, "item", NULL);
		xml_set_attr(it, "jid", h->name);
		xml_set_attr(it, "node", r->cmd->node);
		xml_set_attr(it, "name", r->cmd->name);
	}
	return HOOK_STOP;
}

static enum hook_result adhoc_disco_info(struct host *h, void *args, void *ctx)
{
	struct adhoc_state *ad = ctx;
	struct hook_disco *hd = args;
	if (hd->node == NULL)
		return HOOK_CONTINUE;
	if (strcmp(hd->node, NS_COMMANDS) == 0) {
		struct xml_node *id = xml_add_child(hd->query, "identity", NULL);
		xml_set_attr(id, "category", "automation");
		xml_set_attr(id, "type", "command-list");
		xml_set_attr(id, "name", "Commands");
		return HOOK_STOP;
	}
	struct adhoc_reg *r = reg_find(ad, hd->node);
	if (r == NULL || !may_run(ad, r, hd->from))
		return HOOK_CONTINUE;
	struct xml_node *id = xml_add_child(hd->query, "identity", NULL);
	xml_set_attr(id, "category", "automation");
	xml_set_attr(id, "type", "command-node");
	xml_set_attr(id, "name", r->cmd->name);
	struct xml_node *f = xml_add_child(hd->query, "feature", NULL);
	xml_set_attr(f, "var", NS_COMMANDS);
	f = xml_add_child(hd->query, "feature", NULL);
	xml_set_attr(f, "var", NS_DATA_FORMS);
	return HOOK_STOP;
}

/* ---- XEP-0133 commands -------------------------------------------------------------------- */

/* The local part of jid_s when it is a bare or full JID of req's host. */
static char *host_user(struct adhoc_request *req, const char *jid_s)
{
	struct jid j;
	const char *err;
	if (jid_s == NULL || jid_parse(jid_s, &j, &err) != 0)
		return NULL;
	char *user = NULL;
	if (j.node != NULL && strcmp(j.domain, req->host->name) == 0)
		user = xstrdup(j.node);
	jid_clear(&j);
	return user;
}

static struct xml_node *admin_form(const char *title, const char *instructions)
{
	return form_new("form", title, instructions, NS_ADMIN);
}

static void auth_fail(struct adhoc_request *req, enum auth_result r, const char *what)
{
	char *text = xasprintf("%s: %s", what, auth_result_str(r));
	adhoc_fail(req, errmap_auth(r), text);
	free(text);
}

struct user_op {
	char *user;
};

static void user_op_free(void *p)
{
	struct user_op *op = p;
	free(op->user);
	free(op);
}

/* add-user */
static void add_user_done(enum auth_result r, void *ctx)
{
	struct adhoc_request *req = ctx;
	struct user_op *op = req->data;
	req->auth = NULL;
	if (r != AUTH_OK) {
		auth_fail(req, r, "cannot create the account");
		return;
	}
	struct hook_user hu = { .user = op->user };
	hook_run(req->host, HOOK_REGISTER_USER, &hu);
	log_notice("adhoc: user %s@%s created by an administrator", op->user, req->host->name);
	adhoc_done(req, "The account was created.", NULL);
}

static void cmd_add_user(struct adhoc_request *req, void *ctx)
{
	if (req->form == NULL) {
		struct xml_node *f = admin_form(N_("Adding a user"), N_("Fill out this form to add a user."));
		form_add_field(f, "accountjid", "jid-single", "The Jabber ID for the account to be added",
		               NULL, true);
		form_add_field(f, "password", "text-private", "The password for this account", NULL, true);
		form_add_field(f, "password-verify", "text-private", "Retype password", NULL, true);
		adhoc_form(req, f, true);
		xml_unref(&f);
		return;
	}
	char *user = host_user(req, form_value(req->form, "accountjid"));
	const char *pw = form_value(req->form, "password");
	const char *pw2 = form_value(req->form, "password-verify");
	if (user == NULL) {
		adhoc_fail(req, SE_BAD_REQUEST, "accountjid must be a user JID of this host");
		return;
	}
	if (pw == NULL || *pw == '\0' || (pw2 != NULL && strcmp(pw, pw2) != 0)) {
		free(user);
		adhoc_fail(req, SE_NOT_ACCEPTABLE, "the passwords are empty or differ");
		return;
	}
	struct user_op *op = xcalloc(1, sizeof(*op));
	op->user = user;
	req->data = op;
	req->data_free = user_op_free;
	req->auth = auth_create_user(req->host->auth, user, pw, add_user_done, req);
}

/* change-user-password */
static void passwd_done(enum auth_result r, void *ctx)
{
	struct adhoc_request *req = ctx;
	req->auth = NULL;
	if (r != AUTH_OK) {
		auth_fail(req, r, "cannot change the password");
		return;
	}
	log_notice("adhoc: password of %s@%s changed by an administrator",
	           ((struct user_op *)req->data)->user, req->host->name);
	adhoc_done(req, "The password was changed.", NULL);
}

static void cmd_change_password(struct adhoc_request *req, void *ctx)
{
	if (req->form == NULL) {
		struct xml_node *f = admin_form(N_("Changing a User Password"),
		                                N_("Fill out this form to change a user's password."));
		form_add_field(f, "accountjid", "jid-single", "The Jabber ID for this account", NULL, true);
		form_add_field(f, "password", "text-private", "The password for this account", NULL, true);
		adhoc_form(req, f, true);
		xml_unref(&f);
		return;
	}
	char *user = host_user(req, form_value(req->form, "accountjid"));
	const char *pw = form_value(req->form, "password");
	if (user == NULL || pw == NULL || *pw == '\0') {
		free(user);
		adhoc_fail(req, SE_BAD_REQUEST, "a user JID of this host and a password are needed");
		return;
	}
	struct user_op *op = xcalloc(1, sizeof(*op));
	op->user = user;
	req->data = op;
	req->data_free = user_op_free;
	req->auth = auth_set_password(req->host->auth, user, pw, passwd_done, req);
}

/* delete-user: every JID of accountjids, one after the other */
struct delete_op {
	struct strlist users;
	size_t next;
	unsigned removed;
	struct buf failed;
	bool temporary;             /* a removal failed for now only */
	struct presence_wait *wait; /* mod_presence's side of the removal, or NULL */
};

static void delete_op_free(void *p)
{
	struct delete_op *op = p;
	if (op->wait != NULL)
		presence_wait_cancel(op->wait);
	strlist_free(&op->users);
	buf_free(&op->failed);
	free(op);
}

static void delete_next(struct adhoc_request *req);

static void delete_done(enum auth_result r, void *ctx)
{
	struct adhoc_request *req = ctx;
	struct delete_op *op = req->data;
	req->auth = NULL;
	const char *user = op->users.items[op->next - 1];
	if (r == AUTH_OK) {
		struct hook_user hu = { .user = user };
		hook_run(req->host, HOOK_REMOVE_USER, &hu);
		/* a login in the meantime (the account still existed) */
		sm_kick_user(req->host, user, STE_NOT_AUTHORIZED, "the account was removed");
		/* and the contacts are told */
		presence_wait_end(op->wait, true);
		op->wait = NULL;
		log_notice("adhoc: user %s@%s removed by an administrator", user, req->host->name);
		op->removed++;
	} else {
		presence_wait_end(op->wait, false);
		op->wait = NULL;
		buf_printf(&op->failed, "%s%s@%s (%s)", op->failed.len > 0 ? ", " : "", user, req->host->name,
		           auth_result_str(r));
		op->temporary |= errmap_auth_temporary(r);
	}
	delete_next(req);
}

/* The unavailable presence of the user's closed sessions has been
 * broadcast: the account goes (op->wait is ended with the answer). */
static void delete_settled(void *ctx)
{
	struct adhoc_request *req = ctx;
	struct delete_op *op = req->data;
	req->auth = auth_remove_user(req->host->auth, op->users.items[op->next - 1], delete_done, req);
}

static void delete_next(struct adhoc_request *req)
{
	struct delete_op *op = req->data;
	if (op->next < op->users.count) {
		const char *user = op->users.items[op->next++];
		/* The sessions end first, and the account goes once their
		 * unavailable presence has read the roster and the contacts
		 * to tell are known (presence_wait_user). */
		sm_kick_user(req->host, user, STE_NOT_AUTHORIZED, "the account was removed");
		op->wait = presence_wait_user(req->host, user, delete_settled, req);
		if (op->wait == NULL)
			delete_settled(req);
		return;
	}
	if (op->failed.len > 0) {
		char *text = xasprintf("removed %u; not removed: %s", op->removed, op->failed.data);
		/* A backend that could not answer is no "no such user". */
		adhoc_fail(req, op->temporary ? errmap_auth(AUTH_TEMPFAIL) : SE_ITEM_NOT_FOUND, text);
		free(text);
		return;
	}
	adhoc_done(req, "The accounts were removed.", NULL);
}

static void cmd_delete_user(struct adhoc_request *req, void *ctx)
{
	if (req->form == NULL) {
		struct xml_node *f =
		        admin_form(N_("Deleting a User"), N_("Fill out this form to delete a user."));
		form_add_field(f, "accountjids", "jid-multi", "The Jabber ID(s) to delete", NULL, true);
		adhoc_form(req, f, true);
		xml_unref(&f);
		return;
	}
	struct strlist jids = { 0 };
	form_values(req->form, "accountjids", &jids);
	struct delete_op *op = xcalloc(1, sizeof(*op));
	for (size_t i = 0; i < jids.count; i++) {
		char *user = host_user(req, jids.items[i]);
		if (user == NULL) {
			strlist_free(&jids);
			strlist_free(&op->users);
			free(op);
			adhoc_fail(req, SE_BAD_REQUEST, "every JID must be a user of this host");
			return;
		}
		op->users.items = xrealloc(op->users.items, (op->users.count + 1) * sizeof(char *));
		op->users.items[op->users.count++] = user;
	}
	strlist_free(&jids);
	if (op->users.count == 0) {
		free(op);
		adhoc_fail(req, SE_BAD_REQUEST, "no JID given");
		return;
	}
	req->data = op;
	req->data_free = delete_op_free;
	delete_next(req);
}

/* end-user-session: a full JID ends that session, a bare JID all of them */
static void cmd_end_session(struct adhoc_request *req, void *ctx)
{
	if (req->form == NULL) {
		struct xml_node *f = admin_form(N_("Ending a User Session"),
		                                N_("Fill out this form to end a user's session."));
		form_add_field(f, "accountjids", "jid-multi", "The Jabber ID(s) for which to end sessions",
		               NULL, true);
		adhoc_form(req, f, true);
		xml_unref(&f);
		return;
	}
	struct strlist jids = { 0 };
	form_values(req->form, "accountjids", &jids);
	unsigned ended = 0;
	for (size_t i = 0; i < jids.count; i++) {
		struct jid j;
		const char *err;
		if (jid_parse(jids.items[i], &j, &err) != 0)
			continue;
		if (j.node != NULL && strcmp(j.domain, req->host->name) == 0) {
			for (struct session *s = sm_user_sessions(req->host, j.node), *next; s != NULL;
			     s = next) {
				next = s->next_of_user;
				if (j.resource != NULL && strcmp(j.resource, s->jid.resource) != 0)
					continue;
				sm_session_close(s);
				s->ops->kick(s->owner, STE_POLICY_VIOLATION,
				             "your session was ended by an administrator");
				ended++;
			}
		}
		jid_clear(&j);
	}
	strlist_free(&jids);
	char note[64];
	snprintf(note, sizeof(note), "%u sessions ended.", ended);
	adhoc_done(req, note, NULL);
}

/* the numbers and lists */
static struct xml_node *result_form(const char *title)
{
	return form_new("result", title, NULL, NS_ADMIN);
}

static void count_users(struct session *s, void *ctx)
{
	unsigned *n = ctx;
	if (sm_user_sessions(s->host, s->jid.node) == s)
		n[0]++;
	/* active: at least one available resource; counted at the first one */
	struct session *first = NULL;
	for (struct session *x = sm_user_sessions(s->host, s->jid.node); x != NULL; x = x->next_of_user)
		if (x->available) {
			first = x;
			break;
		}
	if (first == s)
		n[1]++;
}

static void cmd_online_num(struct adhoc_request *req, void *ctx)
{
	bool active = ctx != NULL;
	unsigned n[2] = { 0, 0 };
	sm_foreach(req->host, count_users, n);
	char v[32];
	snprintf(v, sizeof(v), "%u", n[active ? 1 : 0]);
	struct xml_node *f =
	        result_form(active ? N_("Number of Active Users") : N_("Number of Online Users"));
	form_add_field(f, active ? "activeusersnum" : "onlineusersnum", NULL,
	               active ? "The number of active users" : "The number of online users", v, false);
	adhoc_done(req, NULL, f);
	xml_unref(&f);
}

static void registered_num_done(enum storage_result r, uint64_t count, void *ctx)
{
	struct adhoc_request *req = ctx;
	req->storage = NULL;
	if (r != STORAGE_OK) {
		adhoc_fail(req, errmap_storage(r), storage_result_str(r));
		return;
	}
	char v[32];
	snprintf(v, sizeof(v), "%llu", (unsigned long long)count);
	struct xml_node *f = result_form(N_("Number of Registered Users"));
	form_add_field(f, "registeredusersnum", NULL, "The number of registered users", v, false);
	adhoc_done(req, NULL, f);
	xml_unref(&f);
}

static void cmd_registered_num(struct adhoc_request *req, void *ctx)
{
	req->storage = storage_account_count(req->host->storage, req->host->name, registered_num_done, req);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void registered_list_done(enum storage_result r, const struct strlist *names, void *ctx)
{
	struct adhoc_request *req = ctx;
	req->storage = NULL;
	if (r != STORAGE_OK) {
		adhoc_fail(req, errmap_storage(r), storage_result_str(r));
		return;
	}
	char **sorted = xcalloc(names->count + 1, sizeof(*sorted));
	for (size_t i = 0; i < names->count; i++)
		sorted[i] = names->items[i];
	qsort(sorted, names->count, sizeof(*sorted), cmp_str);
	struct xml_node *f = result_form(N_("Registered Users"));
	struct xml_node *field =
	        form_add_field(f, "registereduserjids", "jid-multi", "The list of all users", NULL, false);
	for (size_t i = 0; i < names->count; i++) {
		char *j = xasprintf("%s@%s", sorted[i], req->host->name);
		form_field_add_value(field, j);
		free(j);
	}
	free(sorted);
	adhoc_done(req, NULL, f);
	xml_unref(&f);
}

static void cmd_registered_list(struct adhoc_request *req, void *ctx)
{
	req->storage = storage_account_list(req->host->storage, req->host->name, registered_list_done, req);
}

static void add_online(struct session *s, void *ctx)
{
	struct strlist *l = ctx;
	if (sm_user_sessions(s->host, s->jid.node) != s)
		return;
	char *bare = jid_bare_string(&s->jid);
	l->items = xrealloc(l->items, (l->count + 1) * sizeof(*l->items));
	l->items[l->count++] = bare;
}

static void cmd_online_list(struct adhoc_request *req, void *ctx)
{
	struct strlist l = { 0 };
	sm_foreach(req->host, add_online, &l);
	if (l.count > 0)
		qsort(l.items, l.count, sizeof(*l.items), cmp_str);
	struct xml_node *f = result_form(N_("Online Users"));
	struct xml_node *field =
	        form_add_field(f, "onlineuserjids", "jid-multi", "The list of all online users", NULL, false);
	for (size_t i = 0; i < l.count; i++)
		form_field_add_value(field, l.items[i]);
	strlist_free(&l);
	adhoc_done(req, NULL, f);
	xml_unref(&f);
}

/* Parley's statistics: what parleyctl stats shows for this host. */
static void stats_count_done(enum storage_result r, uint64_t count, void *ctx)
{
	struct adhoc_request *req = ctx;
	req->storage = NULL;
	const struct c2s_stats *cs = c2s_stats();
	unsigned n[2] = { 0, 0 };
	sm_foreach(req->host, count_users, n);
	struct xml_node *f = form_new("result", N_("Server statistics"), NULL, "urn:parley:admin");
	char v[64];
	snprintf(v, sizeof(v), "%.0f", ev_now(server.loop) - server.started);
	form_add_field(f, "uptime", NULL, "Seconds since parleyd started", v, false);
	if (r == STORAGE_OK) {
		snprintf(v, sizeof(v), "%llu", (unsigned long long)count);
		form_add_field(f, "registeredusersnum", NULL, "Registered users of this host", v, false);
	}
	snprintf(v, sizeof(v), "%u", n[0]);
	form_add_field(f, "onlineusersnum", NULL, "Online users of this host", v, false);
	snprintf(v, sizeof(v), "%u", sm_count(req->host));
	form_add_field(f, "sessions", NULL, "Sessions on this host", v, false);
	static const char *const kinds[] = { NULL, "message", "presence", "iq" };
	for (int k = 1; k < 4; k++) {
		char var[32];
		snprintf(var, sizeof(var), "stanzas-in-%s", kinds[k]);
		snprintf(v, sizeof(v), "%llu", (unsigned long long)cs->in[k]);
		form_add_field(f, var, NULL, "Stanzas received from clients (whole server)", v, false);
		snprintf(var, sizeof(var), "stanzas-out-%s", kinds[k]);
		snprintf(v, sizeof(v), "%llu", (unsigned long long)cs->out[k]);
		form_add_field(f, var, NULL, "Stanzas delivered to clients (whole server)", v, false);
	}
	adhoc_done(req, NULL, f);
	xml_unref(&f);
}

static void cmd_stats(struct adhoc_request *req, void *ctx)
{
	req->storage = storage_account_count(req->host->storage, req->host->name, stats_count_done, req);
}

static const struct adhoc_command admin_commands[] = {
	{ NS_ADMIN "#add-user", "Add a User", true, cmd_add_user },
	{ NS_ADMIN "#delete-user", "Delete a User", true, cmd_delete_user },
	{ NS_ADMIN "#change-user-password", "Change a User Password", true, cmd_change_password },
	{ NS_ADMIN "#end-user-session", "End a User Session", true, cmd_end_session },
	{ NS_ADMIN "#get-registered-users-num", "Get Number of Registered Users", true, cmd_registered_num },
	{ NS_ADMIN "#get-online-users-num", "Get Number of Online Users", true, cmd_online_num },
	{ NS_ADMIN "#get-active-users-num", "Get Number of Active Users", true, cmd_online_num },
	{ NS_ADMIN "#get-registered-users-list", "Get List of Registered Users", true, cmd_registered_list },
	{ NS_ADMIN "#get-online-users-list", "Get List of Online Users", true, cmd_online_list },
	{ "urn:parley:admin#stats", "Server Statistics", true, cmd_stats },
};

/* ---- the module ----------------------------------------------------------------------------- */

static const struct builtin_iq adhoc_iqs[] = {
	{ IQ_SCOPE_SERVER, NS_COMMANDS, IQ_PARALLEL, commands_iq },
};

static int adhoc_start(struct host *h, const void *settings, void **state_r, char **error_r)
{
	struct adhoc_state *ad = xcalloc(1, sizeof(*ad));
	ad->host = h;
	if (builtin_iq_register(h, adhoc_iqs, ARRAY_SIZE(adhoc_iqs), ad, error_r) < 0) {
		free(ad);
		return -1;
	}
	host_add_feature(h, NS_COMMANDS);
	hook_add(h, HOOK_DISCO_ITEMS, 50, adhoc_disco_items, ad);
	hook_add(h, HOOK_DISCO_INFO, 50, adhoc_disco_info, ad);
	*state_r = ad;
	/* module_state finds ad only after start returns: register directly */
	for (size_t i = 0; i < ARRAY_SIZE(admin_commands); i++) {
		struct adhoc_reg *r = xcalloc(1, sizeof(*r));
		r->cmd = &admin_commands[i];
		/* get-active-users-num shares cmd_online_num: ctx tells them apart */
		r->ctx = strstr(admin_commands[i].node, "#get-active-users-num") != NULL ? (void *)ad : NULL;
		struct adhoc_reg **tail = &ad->regs;
		while (*tail != NULL)
			tail = &(*tail)->next;
		*tail = r;
	}
	return 0;
}

static void adhoc_stop(struct host *h, void *state)
{
	struct adhoc_state *ad = state;
	host_remove_feature(h, NS_COMMANDS);
	hook_remove(h, HOOK_DISCO_ITEMS, adhoc_disco_items, ad);
	hook_remove(h, HOOK_DISCO_INFO, adhoc_disco_info, ad);
	while (ad->requests != NULL) {
		struct adhoc_request *req = ad->requests;
		if (req->storage != NULL)
			storage_cancel(req->storage);
		if (req->auth != NULL)
			auth_cancel(req->auth);
		req->storage = NULL;
		req->auth = NULL;
		adhoc_fail(req, SE_SERVICE_UNAVAILABLE, "the server is stopping");
	}
	builtin_iq_unregister(h, adhoc_iqs, ARRAY_SIZE(adhoc_iqs));
	while (ad->sessions != NULL)
		session_free(ad, ad->sessions);
	while (ad->regs != NULL) {
		struct adhoc_reg *r = ad->regs;
		ad->regs = r->next;
		free(r);
	}
	free(ad);
}

const struct module_def mod_adhoc = {
	.name = "adhoc",
	.description =
	        "XEP-0050 ad-hoc commands, with the XEP-0133 service administration commands for admins",
	.options = NULL,
	.settings_size = 0,
	.default_enabled = true,
	.start = adhoc_start,
	.stop = adhoc_stop,
};
