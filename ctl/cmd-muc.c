/*
 * parleyctl's multi-user chat commands: muc-list, muc-info, muc-create,
 * muc-destroy and muc-set-affiliation.  They read and change the rooms of
 * the running parleyd's MUC services; the changes are the module's
 * (modules/muc/muc-admin.h, the code of the ad-hoc commands too), this
 * file reads the arguments and prints.  Loop thread.
 *
 * A change answers after the store committed it (a persistent room), so a
 * script that goes on finds it stored.  Listings are sorted (services by
 * domain, rooms by name, affiliations and occupants as the room keeps
 * them) so that their output is stable.
 */
#include "ctl-private.h"
#include "server/host.h"
#include "modules/muc/muc.h"
#include "modules/muc/muc-admin.h"

#include <stdlib.h>
#include <string.h>

static int code_of(enum muc_admin_result r)
{
	switch (r) {
	case MUC_ADMIN_OK: return CTL_OK;
	case MUC_ADMIN_INVALID: return CTL_USAGE;
	case MUC_ADMIN_TEMPFAIL: return CTL_TEMPFAIL;
	default: return CTL_FAILED;
	}
}

static const char *yes_no(bool b)
{
	return b ? "true" : "false";
}

static int cmp_service(const void *a, const void *b)
{
	const struct muc_service *x = *(struct muc_service *const *)a, *y = *(struct muc_service *const *)b;
	return strcmp(x->domain, y->domain);
}

/* The services of h sorted by domain (the caller frees the array). */
static struct muc_service **services_of(const struct host *h, size_t *count_r)
{
	struct muc_service **list = NULL;
	size_t n = 0;
	for (struct muc_service *s = muc_services(); s != NULL; s = s->next) {
		if (s->host != h)
			continue;
		list = xrealloc(list, (n + 1) * sizeof(*list));
		list[n++] = s;
	}
	if (n > 1)
		qsort(list, n, sizeof(*list), cmp_service);
	*count_r = n;
	return list;
}

/* ---- muc-list ------------------------------------------------------------------------ */

static void list_room(struct ctl_call *call, const struct muc_room *r, bool first)
{
	if (!call->json) {
		buf_printf(&call->body, "%-40s %9u %-10s %-7s %s\n", r->jid, r->noccupants,
		           r->cfg.persistent ? "persistent" : "temporary",
		           r->cfg.public_room ? "public" : "hidden", r->cfg.name != NULL ? r->cfg.name : "");
		return;
	}
	buf_append_str(&call->body, first ? "" : ",\n ");
	buf_append_str(&call->body, "{\"jid\": ");
	ctl_json_str(&call->body, r->jid);
	buf_append_str(&call->body, ", \"room\": ");
	ctl_json_str(&call->body, r->name);
	buf_append_str(&call->body, ", \"service\": ");
	ctl_json_str(&call->body, r->svc->domain);
	buf_printf(&call->body,
	           ", \"occupants\": %u, \"persistent\": %s, \"public\": %s, \"name\": ", r->noccupants,
	           yes_no(r->cfg.persistent), yes_no(r->cfg.public_room));
	if (r->cfg.name != NULL)
		ctl_json_str(&call->body, r->cfg.name);
	else
		buf_append_str(&call->body, "null");
	buf_append_str(&call->body, "}");
}

void cmd_muc_list(struct ctl_call *call)
{
	call->host = ctl_call_host(call, 1);
	if (call->host == NULL)
		return;
	size_t nsvc;
	struct muc_service **svcs = services_of(call->host, &nsvc);
	if (nsvc == 0) {
		free(svcs);
		ctl_call_finish(call, CTL_FAILED, "no MUC service on %s (the muc module does not run there)",
		                call->host->name);
		return;
	}
	for (size_t i = 0; i < nsvc; i++) {
		if (!svcs[i]->loaded) {
			ctl_call_finish(call, CTL_TEMPFAIL,
			                "the rooms of %s are not loaded from the store yet; try again",
			                svcs[i]->domain);
			free(svcs);
			return;
		}
	}
	bool first = true;
	if (call->json)
		buf_append_str(&call->body, "[");
	for (size_t i = 0; i < nsvc; i++) {
		size_t n;
		struct muc_room **rooms = muc_rooms_sorted(svcs[i], &n);
		for (size_t k = 0; k < n; k++) {
			if (rooms[k]->destroyed) /* going away */
				continue;
			if (first && !call->json)
				buf_printf(&call->body, "%-40s %9s %-10s %-7s %s\n", "room", "occupants",
				           "type", "listing", "name");
			list_room(call, rooms[k], first);
			first = false;
		}
		free(rooms);
	}
	if (call->json)
		buf_append_str(&call->body, "]\n");
	free(svcs);
	ctl_call_finish(call, CTL_OK, NULL);
}

/* ---- muc-info ------------------------------------------------------------------------ */

/* One configuration value, as a text line or a JSON member. */
static void info_str(struct ctl_call *call, const char *key, const char *value)
{
	if (call->json) {
		buf_printf(&call->body, ",\n \"%s\": ", key);
		if (value != NULL)
			ctl_json_str(&call->body, value);
		else
			buf_append_str(&call->body, "null");
	} else {
		buf_printf(&call->body, "%s: %s\n", key, value != NULL ? value : "");
	}
}

static void info_bool(struct ctl_call *call, const char *key, bool value)
{
	if (call->json)
		buf_printf(&call->body, ",\n \"%s\": %s", key, yes_no(value));
	else
		buf_printf(&call->body, "%s: %s\n", key, yes_no(value));
}

/* A mask of roles: a comma-separated text value, a JSON list. */
static void info_roles(struct ctl_call *call, const char *key, unsigned mask)
{
	if (!call->json) {
		char roles[64];
		muc_admin_roles_str(mask, roles, sizeof(roles));
		buf_printf(&call->body, "%s: %s\n", key, roles);
		return;
	}
	buf_printf(&call->body, ",\n \"%s\": [", key);
	bool first = true;
	for (int role = MUC_ROLE_VISITOR; role <= MUC_ROLE_MODERATOR; role++) {
		if ((mask & MUC_ROLE_BIT(role)) == 0)
			continue;
		buf_append_str(&call->body, first ? "" : ", ");
		ctl_json_str(&call->body, muc_role_str((enum muc_role)role));
		first = false;
	}
	buf_append_str(&call->body, "]");
}

static void info_uint(struct ctl_call *call, const char *key, unsigned value)
{
	if (call->json)
		buf_printf(&call->body, ",\n \"%s\": %u", key, value);
	else
		buf_printf(&call->body, "%s: %u\n", key, value);
}

/* The configuration, the subject and when the room was created. */
static void info_config(struct ctl_call *call, const struct muc_room *r)
{
	const struct muc_config *c = &r->cfg;
	char created[XEP82_STAMP_LEN];
	info_str(call, "name", c->name);
	info_str(call, "description", c->description);
	info_str(call, "language", c->lang);
	info_bool(call, "public", c->public_room);
	info_bool(call, "persistent", c->persistent);
	info_bool(call, "members_only", c->members_only);
	info_bool(call, "moderated", c->moderated);
	info_bool(call, "password_protected", c->password_protected); /* never the password */
	info_str(call, "whois", muc_admin_who_str(c->whois));
	info_str(call, "allow_private_messages", muc_admin_who_str(c->allow_pm));
	info_bool(call, "change_subject", c->change_subject);
	info_bool(call, "allow_invites", c->allow_invites);
	info_bool(call, "allow_voice_requests", c->allow_voice_requests);
	info_uint(call, "voice_request_interval", c->voice_request_interval);
	info_bool(call, "enable_logging", c->enable_logging);
	info_bool(call, "public_list", c->public_list);
	info_roles(call, "get_member_list", c->get_member_list);
	info_roles(call, "presence_broadcast", c->presence_broadcast);
	info_uint(call, "max_users", c->max_users);
	info_uint(call, "max_history", c->max_history);
	info_str(call, "pubsub", c->pubsub);
	info_bool(call, "locked", r->locked);
	info_str(call, "subject", r->subject);
	info_str(call, "subject_by", r->subject_nick);
	xep82_stamp(created, (int64_t)r->created);
	info_str(call, "created", created);
	info_uint(call, "occupants_count", r->noccupants);
}

static void info_affiliations(struct ctl_call *call, const struct muc_room *r)
{
	unsigned n = 0;
	for (const struct muc_affiliation *a = r->affs; a != NULL; a = a->next)
		n++;
	if (call->json)
		buf_append_str(&call->body, ",\n \"affiliations\": [");
	else
		buf_printf(&call->body, "affiliations: %u\n", n);
	for (const struct muc_affiliation *a = r->affs; a != NULL; a = a->next) {
		const char *reason = a->reason != NULL ? a->reason : "";
		if (!call->json) {
			buf_printf(&call->body, "  %s\t%s%s%s\n", a->jid, muc_aff_str(a->aff),
			           *reason != '\0' ? "\t" : "", reason);
			continue;
		}
		buf_append_str(&call->body, a == r->affs ? "" : ", ");
		buf_append_str(&call->body, "{\"jid\": ");
		ctl_json_str(&call->body, a->jid);
		buf_append_str(&call->body, ", \"affiliation\": ");
		ctl_json_str(&call->body, muc_aff_str(a->aff));
		buf_append_str(&call->body, ", \"reason\": ");
		ctl_json_str(&call->body, reason);
		buf_append_str(&call->body, "}");
	}
	if (call->json)
		buf_append_str(&call->body, "]");
}

static void info_occupants(struct ctl_call *call, const struct muc_room *r)
{
	if (call->json)
		buf_append_str(&call->body, ",\n \"occupants\": [");
	else
		buf_printf(&call->body, "occupants: %u\n", r->noccupants);
	for (const struct muc_occupant *o = r->occupants; o != NULL; o = o->next) {
		const char *aff = muc_aff_str(muc_room_affiliation(r, &o->bare));
		if (call->json) {
			buf_append_str(&call->body, o == r->occupants ? "" : ",\n  ");
			buf_append_str(&call->body, "{\"nick\": ");
			ctl_json_str(&call->body, o->nick);
			buf_append_str(&call->body, ", \"jids\": [");
		} else {
			buf_printf(&call->body, "  %s\t", o->nick);
		}
		for (const struct muc_session *s = o->sessions; s != NULL; s = s->next) {
			char *jid = jid_to_string(&s->jid);
			if (call->json) {
				buf_append_str(&call->body, s == o->sessions ? "" : ", ");
				ctl_json_str(&call->body, jid);
			} else {
				buf_printf(&call->body, "%s%s", s == o->sessions ? "" : ",", jid);
			}
			free(jid);
		}
		if (call->json) {
			buf_append_str(&call->body, "], \"role\": ");
			ctl_json_str(&call->body, muc_role_str(o->role));
			buf_append_str(&call->body, ", \"affiliation\": ");
			ctl_json_str(&call->body, aff);
			buf_append_str(&call->body, "}");
		} else {
			buf_printf(&call->body, "\t%s\t%s\n", muc_role_str(o->role), aff);
		}
	}
	if (call->json)
		buf_append_str(&call->body, "]");
}

void cmd_muc_info(struct ctl_call *call)
{
	struct muc_room *r;
	char *err = NULL;
	enum muc_admin_result res = muc_admin_room(call->argv[1], &r, &err);
	if (res != MUC_ADMIN_OK) {
		ctl_call_finish(call, code_of(res), "%s", err);
		free(err);
		return;
	}
	if (call->json) {
		buf_append_str(&call->body, "{\"jid\": ");
		ctl_json_str(&call->body, r->jid);
	} else {
		buf_printf(&call->body, "jid: %s\n", r->jid);
	}
	info_config(call, r);
	info_affiliations(call, r);
	info_occupants(call, r);
	if (call->json)
		buf_append_str(&call->body, "}\n");
	ctl_call_finish(call, CTL_OK, NULL);
}

/* ---- the changes ------------------------------------------------------------------------ */

static void change_done(void *ctx, enum muc_admin_result r, const char *message)
{
	struct ctl_call *call = ctx;
	call->work = NULL;
	if (r == MUC_ADMIN_OK) {
		buf_printf(&call->body, "%s\n", message);
		ctl_call_finish(call, CTL_OK, NULL);
	} else {
		ctl_call_finish(call, code_of(r), "%s", message);
	}
}

static void change_cancel(void *work)
{
	muc_admin_cancel(work);
}

/* Wait for op, or answer what finished at once. */
static void change_started(struct ctl_call *call, struct muc_admin_op *op, enum muc_admin_result r,
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

/* The room argv[1] names, or NULL (the call is finished). */
static struct muc_room *room_arg(struct ctl_call *call)
{
	struct muc_room *r;
	char *err = NULL;
	enum muc_admin_result res = muc_admin_room(call->argv[1], &r, &err);
	if (res == MUC_ADMIN_OK)
		return r;
	ctl_call_finish(call, code_of(res), "%s", err);
	free(err);
	return NULL;
}

void cmd_muc_create(struct ctl_call *call)
{
	struct muc_service *svc;
	char *name = NULL, *err = NULL;
	enum muc_admin_result res = muc_admin_service(call->argv[1], &svc, &name, &err);
	if (res != MUC_ADMIN_OK) {
		ctl_call_finish(call, code_of(res), "%s", err);
		free(err);
		return;
	}
	char *message = NULL;
	struct muc_admin_op *op = muc_admin_create(svc, name, call->argc > 2 ? call->argv[2] : NULL,
	                                           change_done, call, &res, &message);
	free(name);
	change_started(call, op, res, message);
}

void cmd_muc_destroy(struct ctl_call *call)
{
	struct muc_room *r = room_arg(call);
	if (r == NULL)
		return;
	const char *reason = call->argc > 2 && call->argv[2][0] != '\0' ? call->argv[2] : NULL;
	enum muc_admin_result res = MUC_ADMIN_OK;
	char *message = NULL;
	struct muc_admin_op *op = muc_admin_destroy(r, reason, change_done, call, &res, &message);
	change_started(call, op, res, message);
}

void cmd_muc_set_affiliation(struct ctl_call *call)
{
	int aff = muc_aff_parse(call->argv[3]);
	if (aff < 0) {
		ctl_call_finish(call, CTL_USAGE,
		                "'%s' is not an affiliation (owner, admin, member, outcast or none)",
		                call->argv[3]);
		return;
	}
	struct muc_room *r = room_arg(call);
	if (r == NULL)
		return;
	enum muc_admin_result res = MUC_ADMIN_OK;
	char *message = NULL;
	struct muc_admin_op *op = muc_admin_set_affiliation(r, call->argv[2], (enum muc_aff)aff,
	                                                    call->argc > 4 ? call->argv[4] : NULL,
	                                                    change_done, call, &res, &message);
	change_started(call, op, res, message);
}
