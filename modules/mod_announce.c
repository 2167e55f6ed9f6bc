/*
 * mod_announce: announcements and the message of the day, as ad-hoc
 * commands for the host's admins (through mod_adhoc).  Loop thread.
 *
 * - announce (XEP-0133): a message from the host to every session of the
 *   host now;
 * - urn:parley:admin#announce-all: a message to every registered user of
 *   the host, sent to the bare JID, so the usual delivery applies: users
 *   online get it, the others get it from offline storage at their next
 *   login (the offline module's quota applies);
 * - set-motd, edit-motd, delete-motd (XEP-0133): the message of the day,
 *   sent to each session when it first becomes available.
 *
 * The message of the day is kept in the host's store as a private-storage
 * item of the server itself: user '' (no account can have an empty name),
 * namespace urn:parley:motd, element <motd xmlns='urn:parley:motd'>text</motd>;
 * deleting it stores an empty element.  The module keeps a copy, read at
 * start; sessions that became available before that read finished get no
 * message of the day.
 *
 * Invariants: storage calls of commands are the adhoc request's (cancelled
 * by mod_adhoc); the start-up read is the module's and is cancelled at
 * stop.  A session is greeted at most once (the greeted list is cleaned at
 * session close).
 */
#include "builtin.h"
#include "adhoc.h"
#include "server/host.h"
#include "server/hooks.h"
#include "server/router.h"
#include "server/sm.h"
#include "lib/log.h"

#include <stdlib.h>
#include <string.h>

#define NS_MOTD "urn:parley:motd"
#define MOTD_OWNER ""

struct announce_state {
	struct host *host;
	char *motd;                      /* NULL: none */
	struct storage_req *load;        /* the start-up read */
	uint64_t *greeted;               /* session ids that got it */
	size_t ngreeted, greeted_cap;
};

/* ---- sending ----------------------------------------------------------------------- */

static struct xml_node *announcement(struct host *h, const char *subject, const char *body)
{
	struct xml_node *m = xml_new("message", NS_CLIENT);
	xml_set_attr(m, "type", "normal");
	char id[17];
	random_id(id, 16);
	xml_set_attr(m, "id", id);
	xml_set_attr(m, "from", h->name);
	if (subject != NULL && *subject != '\0') {
		struct xml_node *s = xml_add_child(m, "subject", NS_CLIENT);
		xml_add_text(s, subject, strlen(subject));
	}
	struct xml_node *b = xml_add_child(m, "body", NS_CLIENT);
	xml_add_text(b, body, strlen(body));
	return m;
}

static void send_to(struct host *h, struct xml_node *m, const struct jid *to)
{
	struct jid from = { .domain = h->name };
	char *ts = jid_to_string(to);
	xml_set_attr(m, "to", ts);
	free(ts);
	router_route(m, &from, to);
}

/* A form's text-multi field as one text (values joined by newlines). */
static char *multi_text(const struct xml_node *form, const char *var)
{
	struct strlist l = {0};
	form_values(form, var, &l);
	struct buf b = {0};
	for (size_t i = 0; i < l.count; i++)
		buf_printf(&b, "%s%s", i > 0 ? "\n" : "", l.items[i]);
	strlist_free(&l);
	return b.data != NULL ? buf_steal(&b) : xstrdup("");
}

/* ---- announce -------------------------------------------------------------------------- */

struct online_send { struct host *h; struct xml_node *m; unsigned n; };

static void send_one(struct session *s, void *ctx)
{
	struct online_send *os = ctx;
	/* a copy each: routed stanzas are not changed afterwards */
	struct xml_node *m = xml_copy(os->m);
	send_to(os->h, m, &s->jid);
	xml_unref(&m);
	os->n++;
}

/* The announcement of an announce command: at the first stage the form
 * (title, instructions) is sent and NULL returned; at the second, its text
 * (malloc'd), or NULL after refusing an empty one. */
static char *announcement_text(struct adhoc_request *req, const char *title,
                               const char *instructions)
{
	if (req->form == NULL) {
		struct xml_node *f = form_new("form", title, instructions, NS_ADMIN);
		form_add_field(f, "subject", "text-single", "Subject", NULL, false);
		form_add_field(f, "announcement", "text-multi", "Announcement", NULL, true);
		adhoc_form(req, f, true);
		xml_unref(&f);
		return NULL;
	}
	char *body = multi_text(req->form, "announcement");
	if (*body == '\0') {
		free(body);
		adhoc_fail(req, SE_NOT_ACCEPTABLE, "the announcement is empty");
		return NULL;
	}
	return body;
}

static void cmd_announce(struct adhoc_request *req, void *ctx)
{
	char *body = announcement_text(req, "Making an Announcement",
	                               "Fill out this form to make an announcement to all active users of this service.");
	if (body == NULL)
		return;
	struct online_send os = { .h = req->host, .m = announcement(req->host, form_value(req->form, "subject"), body) };
	sm_foreach(req->host, send_one, &os);
	xml_unref(&os.m);
	free(body);
	log_notice("announce: sent to %u sessions of %s", os.n, req->host->name);
	char note[64];
	snprintf(note, sizeof(note), "Sent to %u sessions.", os.n);
	adhoc_done(req, note, NULL);
}

struct all_op { char *subject, *body; };

static void all_op_free(void *p)
{
	struct all_op *op = p;
	free(op->subject);
	free(op->body);
	free(op);
}

static void announce_all_users(enum storage_result r, const struct strlist *names, void *ctx)
{
	struct adhoc_request *req = ctx;
	struct all_op *op = req->data;
	req->storage = NULL;
	if (r != STORAGE_OK) {
		adhoc_fail(req, r == STORAGE_TEMPFAIL ? SE_RESOURCE_CONSTRAINT : SE_INTERNAL_SERVER_ERROR,
		           storage_result_str(r));
		return;
	}
	struct xml_node *tmpl = announcement(req->host, op->subject, op->body);
	for (size_t i = 0; i < names->count; i++) {
		struct xml_node *m = xml_copy(tmpl);
		struct jid to = { .node = names->items[i], .domain = req->host->name };
		send_to(req->host, m, &to);
		xml_unref(&m);
	}
	xml_unref(&tmpl);
	log_notice("announce: sent to all %zu users of %s", names->count, req->host->name);
	char note[80];
	snprintf(note, sizeof(note), "Sent to %zu users (stored for those offline).", names->count);
	adhoc_done(req, note, NULL);
}

static void cmd_announce_all(struct adhoc_request *req, void *ctx)
{
	char *body = announcement_text(req, "Announcement to all users",
	                               "Every registered user of this host gets it; those offline at their next login.");
	if (body == NULL)
		return;
	struct all_op *op = xcalloc(1, sizeof(*op));
	const char *subject = form_value(req->form, "subject");
	op->subject = subject != NULL ? xstrdup(subject) : NULL;
	op->body = body;
	req->data = op;
	req->data_free = all_op_free;
	req->storage = storage_account_list(req->host->storage, req->host->name, announce_all_users, req);
}

/* ---- message of the day ------------------------------------------------------------------- */

struct motd_op { struct announce_state *as; char *text; };

static void motd_op_free(void *p)
{
	struct motd_op *op = p;
	free(op->text);
	free(op);
}

static void motd_stored(enum storage_result r, void *ctx)
{
	struct adhoc_request *req = ctx;
	struct motd_op *op = req->data;
	req->storage = NULL;
	if (r != STORAGE_OK) {
		adhoc_fail(req, r == STORAGE_TEMPFAIL ? SE_RESOURCE_CONSTRAINT : SE_INTERNAL_SERVER_ERROR,
		           storage_result_str(r));
		return;
	}
	free(op->as->motd);
	op->as->motd = op->text != NULL && *op->text != '\0' ? xstrdup(op->text) : NULL;
	log_notice("announce: message of the day of %s %s", req->host->name, op->as->motd != NULL ? "set" : "deleted");
	adhoc_done(req, op->as->motd != NULL ? "The message of the day is set." : "The message of the day is deleted.",
	           NULL);
}

static void motd_store(struct adhoc_request *req, struct announce_state *as, char *text)
{
	struct xml_node *el = xml_new("motd", NS_MOTD);
	if (text != NULL && *text != '\0')
		xml_add_text(el, text, strlen(text));
	char *data = xml_to_string(el, NULL);
	xml_unref(&el);
	struct motd_op *op = xcalloc(1, sizeof(*op));
	op->as = as;
	op->text = text;
	req->data = op;
	req->data_free = motd_op_free;
	struct private_item item = { .ns = NS_MOTD, .data = data };
	req->storage = storage_private_set(req->host->storage, req->host->name, MOTD_OWNER, &item, 1,
	                                   motd_stored, req);
	free(data);
}

static void cmd_set_motd(struct adhoc_request *req, void *ctx)
{
	struct announce_state *as = ctx;
	bool edit = strstr(req->cmd->node, "#edit-motd") != NULL;
	if (req->form == NULL) {
		struct xml_node *f = form_new("form", edit ? "Editing the Message of the Day" : "Setting the Message of the Day",
		                              "Fill out this form to set the message of the day.", NS_ADMIN);
		struct xml_node *field = form_add_field(f, "motd", "text-multi", "Message of the day", NULL, true);
		if (edit && as->motd != NULL) {
			/* one value per line */
			char *copy = xstrdup(as->motd), *save = NULL;
			for (char *line = strtok_r(copy, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save))
				form_field_add_value(field, line);
			free(copy);
		}
		adhoc_form(req, f, true);
		xml_unref(&f);
		return;
	}
	char *text = multi_text(req->form, "motd");
	if (*text == '\0') {
		free(text);
		adhoc_fail(req, SE_NOT_ACCEPTABLE, "the message of the day is empty (use delete-motd)");
		return;
	}
	motd_store(req, as, text);
}

static void cmd_delete_motd(struct adhoc_request *req, void *ctx)
{
	motd_store(req, ctx, NULL);
}

static void motd_loaded(enum storage_result r, const char *text, void *ctx)
{
	struct announce_state *as = ctx;
	as->load = NULL;
	if (r == STORAGE_NOT_FOUND)
		return;
	if (r != STORAGE_OK) {
		log_warning("announce: cannot read the message of the day of %s: %s", as->host->name,
		            storage_result_str(r));
		return;
	}
	struct xml_node *el = xml_parse_string(text, strlen(text), NULL, NULL, NULL);
	if (el == NULL)
		return;
	const char *t = xml_text(el);
	if (t != NULL && *t != '\0')
		as->motd = xstrdup(t);
	xml_unref(&el);
}

static bool greeted(struct announce_state *as, uint64_t id)
{
	for (size_t i = 0; i < as->ngreeted; i++)
		if (as->greeted[i] == id)
			return true;
	return false;
}

static enum hook_result motd_on_presence(struct host *h, void *args, void *ctx)
{
	struct announce_state *as = ctx;
	struct hook_packet *hp = args;
	if (as->motd == NULL || hp->session == NULL || hp->to != NULL ||
	    stanza_kind(hp->stanza) != STANZA_PRESENCE || xml_attr(hp->stanza, "type") != NULL ||
	    greeted(as, hp->session->id))
		return HOOK_CONTINUE;
	if (as->ngreeted == as->greeted_cap) {
		as->greeted_cap = as->greeted_cap == 0 ? 64 : as->greeted_cap * 2;
		as->greeted = xrealloc(as->greeted, as->greeted_cap * sizeof(*as->greeted));
	}
	as->greeted[as->ngreeted++] = hp->session->id;
	struct xml_node *m = announcement(h, NULL, as->motd);
	send_to(h, m, &hp->session->jid);
	xml_unref(&m);
	return HOOK_CONTINUE;
}

static enum hook_result motd_session_closed(struct host *h, void *args, void *ctx)
{
	struct announce_state *as = ctx;
	struct hook_session *hs = args;
	for (size_t i = 0; i < as->ngreeted; i++) {
		if (as->greeted[i] == hs->session->id) {
			as->greeted[i] = as->greeted[--as->ngreeted];
			break;
		}
	}
	return HOOK_CONTINUE;
}

/* ---- the module ----------------------------------------------------------------------------- */

static const struct adhoc_command announce_commands[] = {
	{ NS_ADMIN "#announce", "Send Announcement to Online Users", true, cmd_announce },
	{ "urn:parley:admin#announce-all", "Send Announcement to All Users", true, cmd_announce_all },
	{ NS_ADMIN "#set-motd", "Set Message of the Day", true, cmd_set_motd },
	{ NS_ADMIN "#edit-motd", "Edit Message of the Day", true, cmd_set_motd },
	{ NS_ADMIN "#delete-motd", "Delete Message of the Day", true, cmd_delete_motd },
};

static void announce_stop(struct host *h, void *state);

static int announce_start(struct host *h, const void *settings, void **state_r, char **error_r)
{
	struct announce_state *as = xcalloc(1, sizeof(*as));
	as->host = h;
	for (size_t i = 0; i < ARRAY_SIZE(announce_commands); i++) {
		if (adhoc_register(h, &announce_commands[i], as, error_r) < 0) {
			for (size_t k = 0; k < i; k++)
				adhoc_unregister(h, announce_commands[k].node);
			free(as);
			return -1;
		}
	}
	hook_add(h, HOOK_USER_SEND_PACKET, 80, motd_on_presence, as);
	hook_add(h, HOOK_SESSION_CLOSED, 50, motd_session_closed, as);
	if (h->storage != NULL)   /* (hosts of unit tests may have none) */
		as->load = storage_private_get(h->storage, h->name, MOTD_OWNER, NS_MOTD, motd_loaded, as);
	*state_r = as;
	return 0;
}

static void announce_stop(struct host *h, void *state)
{
	struct announce_state *as = state;
	for (size_t i = 0; i < ARRAY_SIZE(announce_commands); i++)
		adhoc_unregister(h, announce_commands[i].node);
	hook_remove(h, HOOK_USER_SEND_PACKET, motd_on_presence, as);
	hook_remove(h, HOOK_SESSION_CLOSED, motd_session_closed, as);
	if (as->load != NULL)
		storage_cancel(as->load);
	free(as->motd);
	free(as->greeted);
	free(as);
}

const struct module_def mod_announce = {
	.name = "announce",
	.description = "announcements to online or all users, and the message of the day (ad-hoc commands for admins)",
	.options = NULL,
	.settings_size = 0,
	.default_enabled = true,
	.start = announce_start,
	.stop = announce_stop,
};
