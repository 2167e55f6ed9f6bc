/*
 * mod_announce: announcements and the message of the day, as ad-hoc
 * commands for the host's admins (through mod_adhoc) and as the calls of
 * announce.h (parleyctl announce and motd).  Loop thread.
 *
 * - announce (XEP-0133): a message from the host to every session of the
 *   host now;
 * - urn:parley:admin#announce-all: a message to every registered user of
 *   the host: users with an available session get it at once (sent to the
 *   bare JID, so the usual delivery applies), the others get it stored
 *   offline through mod_offline (its checks and quota apply); the command
 *   answers once every offline copy is committed;
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
 * Invariants: a request (struct announce_req) is on the module's list
 * exactly while its storage call is in flight; a stop cancels those calls
 * and answers their requests.  An announcement whose offline copies are
 * being stored needs no module state: mod_offline answers each copy, even
 * after a stop, and the last answer finishes (or, once cancelled, frees)
 * it.  A session is greeted at most once (the greeted list is cleaned at
 * session close).  The start-up read is the module's and is cancelled at
 * stop.
 */
#include "builtin.h"
#include "adhoc.h"
#include "announce.h"
#include "errmap.h"
#include "pending.h"
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
	char *motd;               /* NULL: none */
	bool motd_known;          /* motd was read from the store (or set since) */
	struct storage_req *load; /* the start-up read */
	struct pending_ops reqs;  /* requests with a storage call in flight */
	uint64_t *greeted;        /* session ids that got it */
	size_t ngreeted, greeted_cap;
};

/* ---- sending ----------------------------------------------------------------------- */

static struct xml_node *announcement(struct host *h, const char *type, const char *subject, const char *body)
{
	struct xml_node *m = xml_new("message", NS_CLIENT);
	xml_set_attr(m, "type", type);
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

/* Nothing but empty lines and spaces. */
static bool blank(const char *text)
{
	return text[strspn(text, " \t\r\n")] == '\0';
}

/* ---- announcements ---------------------------------------------------------------------- */

/* What a failed storage call means to the caller of announce_all or
 * motd_set: a temporary failure, as errmap.h judges it, or another. */
static enum announce_result announce_result_of(enum storage_result r)
{
	return errmap_storage_temporary(r) ? ANNOUNCE_TEMPFAIL : ANNOUNCE_FAILED;
}

struct online_send {
	struct host *h;
	struct xml_node *m;
	unsigned sessions, users;
};

static void send_one(struct session *s, void *ctx)
{
	struct online_send *os = ctx;
	/* a copy each: routed stanzas are not changed afterwards */
	struct xml_node *m = xml_copy(os->m);
	send_to(os->h, m, &s->jid);
	xml_unref(&m);
	os->sessions++;
	/* a user counts once: at the first of their sessions */
	if (sm_user_sessions(s->host, s->jid.node) == s)
		os->users++;
}

enum announce_result announce_online(struct host *h, const char *type, const char *subject, const char *body,
                                     unsigned *sessions_r, unsigned *users_r)
{
	if (module_state(h, "announce") == NULL)
		return ANNOUNCE_OFF;
	struct online_send os = { .h = h, .m = announcement(h, type, subject, body) };
	sm_foreach(h, send_one, &os);
	xml_unref(&os.m);
	log_notice("announce: sent to %u sessions of %s", os.sessions, h->name);
	if (sessions_r != NULL)
		*sessions_r = os.sessions;
	if (users_r != NULL)
		*users_r = os.users;
	return ANNOUNCE_OK;
}

enum req_kind { REQ_ALL, REQ_MOTD };

struct announce_req {
	struct pending_op p;       /* first: the module's list, while sreq is in flight */
	struct announce_state *as; /* while on the list */
	enum req_kind kind;
	char *host;               /* the host's name (for messages) */
	struct storage_req *sreq; /* the account list read; the motd write */
	bool cancelled;           /* done will not run */
	void *ctx;
	/* REQ_ALL */
	announce_all_fn *all_done;
	struct xml_node *msg; /* the announcement, without a to */
	unsigned pending;     /* offline copies not answered yet */
	bool all_sent;        /* every user was sent to (or handed to mod_offline) */
	bool all_temp;        /* every failure so far was temporary */
	char *first_failure;  /* "user: why" of the first failure */
	struct announce_report report;
	/* REQ_MOTD */
	announce_motd_fn *motd_done;
	char *text; /* the new message of the day; NULL: delete it */
};

static void req_free(struct announce_req *req);

static void req_free_op(struct pending_op *p)
{
	req_free((struct announce_req *)p);
}

static struct announce_req *req_new(struct announce_state *as, enum req_kind kind, void *ctx)
{
	struct announce_req *req = xcalloc(1, sizeof(*req));
	req->as = as;
	req->kind = kind;
	req->host = xstrdup(as->host->name);
	req->ctx = ctx;
	pending_track(&as->reqs, &req->p, req_free_op);
	return req;
}

/* Its storage call answered (or was cancelled): off the module's list. */
static void req_unlink(struct announce_req *req)
{
	pending_untrack(&req->p);
	req->as = NULL;
}

static void req_free(struct announce_req *req)
{
	req_unlink(req);
	if (req->msg != NULL)
		xml_unref(&req->msg);
	free(req->first_failure);
	free(req->text);
	free(req->host);
	free(req);
}

/* Every user was handled: tell the caller (unless cancelled) and free. */
static void all_finish(struct announce_req *req)
{
	struct announce_report *r = &req->report;
	char *error = NULL;
	if (r->result == ANNOUNCE_OK && r->failed > 0) {
		r->result = req->all_temp ? ANNOUNCE_TEMPFAIL : ANNOUNCE_FAILED;
		error = xasprintf("the announcement could not be stored for %u user%s of %s (%s%s)",
		                  r->failed, r->failed == 1 ? "" : "s", req->host,
		                  r->failed == 1 ? "" : "the first: ", req->first_failure);
		r->error = error;
	}
	log_notice("announce: to all users of %s: %u online, %u stored offline, %u skipped, %u failed",
	           req->host, r->online, r->stored, r->skipped, r->failed);
	if (!req->cancelled)
		req->all_done(req->ctx, r);
	free(error);
	req_free(req);
}

static void all_failed_for(struct announce_req *req, const char *user, const char *why, bool temp)
{
	req->report.failed++;
	if (!temp)
		req->all_temp = false;
	if (req->first_failure == NULL)
		req->first_failure = xasprintf("%s: %s", user, why);
}

struct copy_ctx {
	struct announce_req *req;
	char *user;
};

static void all_stored(enum offline_result r, void *ctx)
{
	struct copy_ctx *cc = ctx;
	struct announce_req *req = cc->req;
	switch (r) {
	case OFFLINE_STORED: req->report.stored++; break;
	case OFFLINE_REFUSED:
	case OFFLINE_NO_USER: req->report.skipped++; break;
	case OFFLINE_FULL: all_failed_for(req, cc->user, "the offline queue is full", false); break;
	case OFFLINE_TEMPFAIL: all_failed_for(req, cc->user, "the store is unavailable", true); break;
	default: all_failed_for(req, cc->user, "the store failed", false); break;
	}
	free(cc->user);
	free(cc);
	if (--req->pending == 0 && req->all_sent)
		all_finish(req);
}

/* Whether user has a session that takes a message to the bare JID now. */
static bool user_reachable(struct host *h, const char *user)
{
	for (struct session *s = sm_user_sessions(h, user); s != NULL; s = s->next_of_user)
		if (s->available && s->priority >= 0)
			return true;
	return false;
}

static void all_listed(enum storage_result r, const struct strlist *names, void *ctx)
{
	struct announce_req *req = ctx;
	struct host *h = req->as->host;
	req->sreq = NULL;
	req_unlink(req);
	if (r != STORAGE_OK) {
		char *error =
		        xasprintf("cannot list the accounts of %s: %s", req->host, storage_result_str(r));
		req->report.result = announce_result_of(r);
		req->report.error = error;
		if (!req->cancelled)
			req->all_done(req->ctx, &req->report);
		free(error);
		req_free(req);
		return;
	}
	req->all_temp = true;
	for (size_t i = 0; i < names->count; i++) {
		struct xml_node *m = xml_copy(req->msg);
		struct jid to = { .node = names->items[i], .domain = h->name };
		char *ts = jid_to_string(&to);
		xml_set_attr(m, "to", ts);
		free(ts);
		if (user_reachable(h, names->items[i])) {
			send_to(h, m, &to);
			req->report.online++;
		} else {
			struct copy_ctx *cc = xmalloc(sizeof(*cc));
			cc->req = req;
			cc->user = xstrdup(names->items[i]);
			if (offline_store_from_host(h, names->items[i], m, all_stored, cc) == 0) {
				req->pending++;
			} else {
				all_failed_for(req, cc->user, "offline messages are off (module offline)",
				               false);
				free(cc->user);
				free(cc);
			}
		}
		xml_unref(&m);
	}
	req->all_sent = true;
	if (req->pending == 0)
		all_finish(req);
}

struct announce_req *announce_all(struct host *h, const char *type, const char *subject, const char *body,
                                  announce_all_fn *done, void *ctx)
{
	struct announce_state *as = module_state(h, "announce");
	if (as == NULL)
		return NULL;
	struct announce_req *req = req_new(as, REQ_ALL, ctx);
	req->all_done = done;
	req->msg = announcement(h, type, subject, body);
	req->sreq = storage_account_list(h->storage, h->name, all_listed, req);
	return req;
}

/* ---- the message of the day ------------------------------------------------------------ */

enum announce_result announce_motd(struct host *h, const char **text_r)
{
	struct announce_state *as = module_state(h, "announce");
	if (as == NULL)
		return ANNOUNCE_OFF;
	*text_r = as->motd;
	return as->motd_known ? ANNOUNCE_OK : ANNOUNCE_TEMPFAIL;
}

static void motd_stored(enum storage_result r, void *ctx)
{
	struct announce_req *req = ctx;
	struct announce_state *as = req->as;
	req->sreq = NULL;
	req_unlink(req);
	if (r != STORAGE_OK) {
		char *error = xasprintf("cannot store the message of the day of %s: %s", req->host,
		                        storage_result_str(r));
		if (!req->cancelled)
			req->motd_done(req->ctx, announce_result_of(r), error);
		free(error);
		req_free(req);
		return;
	}
	free(as->motd);
	as->motd = req->text;
	req->text = NULL;
	as->motd_known = true;
	log_notice("announce: message of the day of %s %s", req->host, as->motd != NULL ? "set" : "deleted");
	if (!req->cancelled)
		req->motd_done(req->ctx, ANNOUNCE_OK, NULL);
	req_free(req);
}

struct announce_req *announce_motd_set(struct host *h, const char *text, announce_motd_fn *done, void *ctx)
{
	struct announce_state *as = module_state(h, "announce");
	if (as == NULL)
		return NULL;
	struct announce_req *req = req_new(as, REQ_MOTD, ctx);
	req->motd_done = done;
	req->text = text != NULL && *text != '\0' ? xstrdup(text) : NULL;
	struct xml_node *el = xml_new("motd", NS_MOTD);
	if (req->text != NULL)
		xml_add_text(el, req->text, strlen(req->text));
	char *data = xml_to_string(el, NULL);
	xml_unref(&el);
	struct private_item item = { .ns = NS_MOTD, .data = data };
	req->sreq = storage_private_set(h->storage, h->name, MOTD_OWNER, &item, 1, motd_stored, req);
	free(data);
	return req;
}

void announce_cancel(struct announce_req *req)
{
	if (req->sreq != NULL) {
		storage_cancel(req->sreq);
		req_free(req);
	} else {
		req->cancelled = true; /* the last offline copy's answer frees it */
	}
}

/* The module stops while req's storage call is in flight. */
static void req_stopped(struct announce_req *req)
{
	storage_cancel(req->sreq);
	req->sreq = NULL;
	req_unlink(req);
	char *error = xasprintf("the announce module stopped on %s", req->host);
	if (req->cancelled) {
		/* nobody to tell */
	} else if (req->kind == REQ_ALL) {
		req->report.result = ANNOUNCE_TEMPFAIL;
		req->report.error = error;
		req->all_done(req->ctx, &req->report);
	} else {
		req->motd_done(req->ctx, ANNOUNCE_TEMPFAIL, error);
	}
	free(error);
	req_free(req);
}

/* ---- the ad-hoc commands ---------------------------------------------------------------- */

/* The stanza error of a failed announcement: errmap.h's, for a temporary
 * or another failure of the store. */
static enum stanza_error announce_error(enum announce_result r)
{
	return errmap_storage(r == ANNOUNCE_TEMPFAIL ? STORAGE_TEMPFAIL : STORAGE_ERROR);
}

/* An ad-hoc request's call of announce.h in flight (cancelled when the
 * request ends first). */
struct cmd_work {
	struct announce_req *work;
	bool deleting; /* set-motd / delete-motd: which */
};

static void cmd_work_free(void *p)
{
	struct cmd_work *w = p;
	if (w->work != NULL)
		announce_cancel(w->work);
	free(w);
}

static struct cmd_work *cmd_work_new(struct adhoc_request *req)
{
	struct cmd_work *w = xcalloc(1, sizeof(*w));
	req->data = w;
	req->data_free = cmd_work_free;
	return w;
}

/* The announcement of an announce command: at the first stage the form
 * (title, instructions) is sent and NULL returned; at the second, its text
 * (malloc'd), or NULL after refusing an empty one. */
static char *announcement_text(struct adhoc_request *req, const char *title, const char *instructions)
{
	if (req->form == NULL) {
		struct xml_node *f = form_new("form", title, instructions, NS_ADMIN);
		form_add_field(f, "subject", "text-single", "Subject", NULL, false);
		form_add_field(f, "announcement", "text-multi", "Announcement", NULL, true);
		adhoc_form(req, f, true);
		xml_unref(&f);
		return NULL;
	}
	char *body = form_text(req->form, "announcement");
	if (blank(body)) {
		free(body);
		adhoc_fail(req, SE_NOT_ACCEPTABLE, "the announcement is empty");
		return NULL;
	}
	return body;
}

static void cmd_announce(struct adhoc_request *req, void *ctx)
{
	char *body = announcement_text(
	        req, N_("Making an Announcement"),
	        N_("Fill out this form to make an announcement to all active users of this service."));
	if (body == NULL)
		return;
	unsigned sessions = 0;
	announce_online(req->host, "normal", form_value(req->form, "subject"), body, &sessions, NULL);
	free(body);
	char note[64];
	snprintf(note, sizeof(note), "Sent to %u sessions.", sessions);
	adhoc_done(req, note, NULL);
}

static void announce_all_done(void *ctx, const struct announce_report *r)
{
	struct adhoc_request *req = ctx;
	struct cmd_work *w = req->data;
	w->work = NULL;
	if (r->result != ANNOUNCE_OK) {
		adhoc_fail(req, announce_error(r->result), r->error);
		return;
	}
	char note[120];
	snprintf(note, sizeof(note), "Sent to %u users (%u online, %u stored for those offline).",
	         r->online + r->stored, r->online, r->stored);
	adhoc_done(req, note, NULL);
}

static void cmd_announce_all(struct adhoc_request *req, void *ctx)
{
	char *body = announcement_text(
	        req, N_("Announcement to all users"),
	        N_("Every registered user of this host gets it; those offline at their next login."));
	if (body == NULL)
		return;
	struct cmd_work *w = cmd_work_new(req);
	w->work = announce_all(req->host, "normal", form_value(req->form, "subject"), body, announce_all_done,
	                       req);
	free(body);
	if (w->work == NULL)
		adhoc_fail(req, SE_SERVICE_UNAVAILABLE, "the announce module does not run here");
}

static void motd_set_done(void *ctx, enum announce_result r, const char *error)
{
	struct adhoc_request *req = ctx;
	struct cmd_work *w = req->data;
	w->work = NULL;
	if (r != ANNOUNCE_OK) {
		adhoc_fail(req, announce_error(r), error);
		return;
	}
	adhoc_done(req, w->deleting ? "The message of the day is deleted." : "The message of the day is set.",
	           NULL);
}

static void motd_store(struct adhoc_request *req, const char *text)
{
	struct cmd_work *w = cmd_work_new(req);
	w->deleting = text == NULL;
	w->work = announce_motd_set(req->host, text, motd_set_done, req);
	if (w->work == NULL)
		adhoc_fail(req, SE_SERVICE_UNAVAILABLE, "the announce module does not run here");
}

static void cmd_set_motd(struct adhoc_request *req, void *ctx)
{
	struct announce_state *as = ctx;
	bool edit = strstr(req->cmd->node, "#edit-motd") != NULL;
	if (req->form == NULL) {
		struct xml_node *f = form_new(
		        "form",
		        edit ? N_("Editing the Message of the Day") : N_("Setting the Message of the Day"),
		        N_("Fill out this form to set the message of the day."), NS_ADMIN);
		struct xml_node *field =
		        form_add_field(f, "motd", "text-multi", "Message of the day", NULL, true);
		if (edit && as->motd != NULL)
			form_field_add_lines(field, as->motd);
		adhoc_form(req, f, true);
		xml_unref(&f);
		return;
	}
	char *text = form_text(req->form, "motd");
	if (blank(text)) {
		free(text);
		adhoc_fail(req, SE_NOT_ACCEPTABLE, "the message of the day is empty (use delete-motd)");
		return;
	}
	motd_store(req, text);
	free(text);
}

static void cmd_delete_motd(struct adhoc_request *req, void *ctx)
{
	motd_store(req, NULL);
}

static void motd_loaded(enum storage_result r, const char *text, void *ctx)
{
	struct announce_state *as = ctx;
	as->load = NULL;
	if (r == STORAGE_NOT_FOUND) {
		as->motd_known = true;
		return;
	}
	if (r != STORAGE_OK) {
		log_warning("announce: cannot read the message of the day of %s: %s", as->host->name,
		            storage_result_str(r));
		return;
	}
	as->motd_known = true;
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
	struct xml_node *m = announcement(h, "normal", NULL, as->motd);
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
	if (adhoc_register_all(h, announce_commands, ARRAY_SIZE(announce_commands), as, error_r) < 0) {
		free(as);
		return -1;
	}
	hook_add(h, HOOK_USER_SEND_PACKET, 80, motd_on_presence, as);
	hook_add(h, HOOK_SESSION_CLOSED, 50, motd_session_closed, as);
	if (h->storage != NULL) /* (hosts of unit tests may have none) */
		as->load = storage_private_get(h->storage, h->name, MOTD_OWNER, NS_MOTD, motd_loaded, as);
	*state_r = as;
	return 0;
}

static void announce_stop(struct host *h, void *state)
{
	struct announce_state *as = state;
	adhoc_unregister_all(h, announce_commands, ARRAY_SIZE(announce_commands));
	hook_remove(h, HOOK_USER_SEND_PACKET, motd_on_presence, as);
	hook_remove(h, HOOK_SESSION_CLOSED, motd_session_closed, as);
	if (as->load != NULL)
		storage_cancel(as->load);
	while (as->reqs.head != NULL)
		req_stopped((struct announce_req *)(void *)as->reqs.head);
	free(as->motd);
	free(as->greeted);
	free(as);
}

const struct module_def mod_announce = {
	.name = "announce",
	.description = "announcements to online or all users, and the message of the day (ad-hoc commands "
	               "for admins)",
	.options = NULL,
	.settings_size = 0,
	.default_enabled = true,
	.start = announce_start,
	.stop = announce_stop,
};
