/*
 * Administration of rooms from outside them (muc-admin.h): finding a room
 * by its JID, creating, destroying, setting affiliations, for parleyctl
 * and the ad-hoc commands.  Loop thread.
 *
 * The changes go through the room code (muc-room.c) as a room owner's
 * would, then through muc_room_save / muc_room_forget; an operation waits
 * for the store's answer in a muc_admin_op.  Invariant: an op is freed by
 * its store callback, never before: a cancelled op only stops caring, so
 * the callback always finds it.
 */
#include "muc-admin.h"
#include "lib/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct muc_admin_op {
	muc_admin_done_fn *done;
	void *ctx;
	bool cancelled;
	char *message; /* what was done, said when the store committed it */
	char *what;    /* the same in words for a failure: "room a@b created" */
	/* create: the room, taken down again when the store fails */
	bool undo_create;
	char *service, *name;
};

/* ---- rooms by JID ----------------------------------------------------------------- */

enum muc_admin_result muc_admin_service(const char *room_jid, struct muc_service **svc_r, char **name_r,
                                        char **error_r)
{
	const char *at = strchr(room_jid, '@');
	if (at == NULL || at == room_jid || at[1] == '\0' || strchr(at + 1, '/') != NULL) {
		*error_r = xasprintf("'%s' is not a room JID (NAME@SERVICE)", room_jid);
		return MUC_ADMIN_INVALID;
	}
	char *domain = jid_nameprep(at + 1);
	struct muc_service *svc = domain != NULL ? muc_service_find(domain) : NULL;
	if (svc == NULL) {
		*error_r = xasprintf("no MUC service %s", domain != NULL ? domain : at + 1);
		free(domain);
		return MUC_ADMIN_NOT_FOUND;
	}
	free(domain);
	char *node = xstrndup(room_jid, (size_t)(at - room_jid));
	char *name = jid_nodeprep(node);
	if (name == NULL || *name == '\0' || strlen(name) > JID_PART_MAX) {
		*error_r = xasprintf("'%s' is not a valid room name (it fails nodeprep)", node);
		free(node);
		free(name);
		return MUC_ADMIN_INVALID;
	}
	free(node);
	if (!svc->loaded) {
		*error_r = xasprintf("the rooms of %s are not loaded from the store yet; try again",
		                     svc->domain);
		free(name);
		return MUC_ADMIN_TEMPFAIL;
	}
	*svc_r = svc;
	*name_r = name;
	return MUC_ADMIN_OK;
}

enum muc_admin_result muc_admin_room(const char *room_jid, struct muc_room **room_r, char **error_r)
{
	struct muc_service *svc;
	char *name;
	enum muc_admin_result r = muc_admin_service(room_jid, &svc, &name, error_r);
	if (r != MUC_ADMIN_OK)
		return r;
	struct muc_room *room = muc_room_find(svc, name);
	if (room == NULL || room->destroyed) {
		*error_r = xasprintf("no room %s@%s", name, svc->domain);
		free(name);
		return MUC_ADMIN_NOT_FOUND;
	}
	free(name);
	*room_r = room;
	return MUC_ADMIN_OK;
}

char *muc_admin_bare(const char *s, const char **error_r)
{
	struct jid j;
	if (jid_parse(s, &j, error_r) != 0)
		return NULL;
	if (j.resource != NULL) {
		*error_r = "a bare JID or a domain has no resource";
		jid_clear(&j);
		return NULL;
	}
	char *bare = jid_bare_string(&j);
	jid_clear(&j);
	return bare;
}

/* ---- waiting for the store ------------------------------------------------------------ */

static struct muc_admin_op *op_new(muc_admin_done_fn *done, void *ctx, char *message, char *what)
{
	struct muc_admin_op *op = xcalloc(1, sizeof(*op));
	op->done = done;
	op->ctx = ctx;
	op->message = message;
	op->what = what;
	return op;
}

static void op_free(struct muc_admin_op *op)
{
	free(op->message);
	free(op->what);
	free(op->service);
	free(op->name);
	free(op);
}

static enum muc_admin_result result_of(enum storage_result res)
{
	return res == STORAGE_TEMPFAIL || res == STORAGE_FULL ? MUC_ADMIN_TEMPFAIL : MUC_ADMIN_FAILED;
}

/* The store failed to keep a room just created: take it down again while
 * nobody uses it, so that a failed create leaves nothing behind.  What
 * happened, for the answer. */
static char *undo_create(struct muc_admin_op *op, enum storage_result res)
{
	struct muc_service *svc = muc_service_find(op->service);
	struct muc_room *r = svc != NULL ? muc_room_find(svc, op->name) : NULL;
	if (r != NULL && !r->destroyed && r->occupants == NULL && r->saving == 0) {
		log_warning("muc: room %s not created: the store failed (%s)", r->jid,
		            storage_result_str(res));
		muc_room_free(r);
		return xasprintf("room %s@%s not created: the store failed (%s)", op->name, op->service,
		                 storage_result_str(res));
	}
	return xasprintf("room %s@%s runs, but the store failed to keep it (%s): it is lost at a restart "
	                 "unless it is saved again",
	                 op->name, op->service, storage_result_str(res));
}

static void op_saved(enum storage_result res, void *ctx)
{
	struct muc_admin_op *op = ctx;
	if (res == STORAGE_OK) {
		if (!op->cancelled)
			op->done(op->ctx, MUC_ADMIN_OK, op->message);
		op_free(op);
		return;
	}
	char *text;
	if (op->undo_create) {
		text = undo_create(op, res);
	} else {
		log_warning("muc: %s, but the store failed (%s)", op->what, storage_result_str(res));
		text = xasprintf("%s, but the store failed (%s): the stored room is not up to date", op->what,
		                 storage_result_str(res));
	}
	if (!op->cancelled)
		op->done(op->ctx, result_of(res), text);
	free(text);
	op_free(op);
}

void muc_admin_cancel(struct muc_admin_op *op)
{
	op->cancelled = true;
}

/* ---- the changes ------------------------------------------------------------------------ */

struct muc_admin_op *muc_admin_create(struct muc_service *svc, const char *name, const char *owner,
                                      muc_admin_done_fn *done, void *ctx, enum muc_admin_result *r_r,
                                      char **message_r)
{
	const struct muc_room *old = muc_room_find(svc, name);
	if (old != NULL && old->destroyed) {
		*r_r = MUC_ADMIN_TEMPFAIL;
		*message_r = xasprintf("room %s@%s is being destroyed; try again", name, svc->domain);
		return NULL;
	}
	if (old != NULL) {
		*r_r = MUC_ADMIN_EXISTS;
		*message_r = xasprintf("room %s@%s exists", name, svc->domain);
		return NULL;
	}
	char *owner_p = NULL;
	if (owner != NULL) {
		const char *err;
		owner_p = muc_admin_bare(owner, &err);
		if (owner_p == NULL) {
			*r_r = MUC_ADMIN_INVALID;
			*message_r = xasprintf("'%s' is not a bare JID or a domain: %s", owner, err);
			return NULL;
		}
	}
	struct muc_room *r = muc_room_new(svc, name, owner_p, false);
	if (r == NULL) {
		*r_r = MUC_ADMIN_FAILED;
		*message_r = xasprintf("room %s@%s could not be created (see the log)", name, svc->domain);
		free(owner_p);
		return NULL;
	}
	r->cfg.persistent = true;
	log_notice("muc: room %s created by an administrator, owner %s", r->jid,
	           owner_p != NULL ? owner_p : "none");
	struct muc_admin_op *op =
	        op_new(done, ctx,
	               owner_p != NULL ? xasprintf("room %s created, owner %s", r->jid, owner_p)
	                               : xasprintf("room %s created, without an owner", r->jid),
	               xasprintf("room %s created", r->jid));
	op->undo_create = true;
	op->service = xstrdup(svc->domain);
	op->name = xstrdup(name);
	free(owner_p);
	muc_room_save(r, op_saved, op);
	return op;
}

struct muc_admin_op *muc_admin_destroy(struct muc_room *r, const char *reason, muc_admin_done_fn *done,
                                       void *ctx, enum muc_admin_result *r_r, char **message_r)
{
	(void)r_r;
	(void)message_r;
	log_notice("muc: room %s destroyed by an administrator%s%s", r->jid, reason != NULL ? ": " : "",
	           reason != NULL ? reason : "");
	struct muc_admin_op *op = op_new(done, ctx, xasprintf("room %s destroyed", r->jid),
	                                 xasprintf("room %s destroyed", r->jid));
	/* Our own removal, to answer once it is committed; the one destroy
	 * makes runs beside it (a removal of what is gone is no failure). */
	muc_room_forget(r, op_saved, op);
	muc_room_destroy(r, reason, NULL);
	return op;
}

struct muc_admin_op *muc_admin_set_affiliation(struct muc_room *r, const char *jid, enum muc_aff aff,
                                               const char *reason, muc_admin_done_fn *done, void *ctx,
                                               enum muc_admin_result *r_r, char **message_r)
{
	const char *err;
	char *bare = muc_admin_bare(jid, &err);
	if (bare == NULL) {
		*r_r = MUC_ADMIN_INVALID;
		*message_r = xasprintf("'%s' is not a bare JID or a domain: %s", jid, err);
		return NULL;
	}
	if (reason != NULL && *reason == '\0')
		reason = NULL;
	char *message = aff == MUC_AFF_NONE
	                        ? xasprintf("%s has no affiliation with room %s now", bare, r->jid)
	                        : xasprintf("%s is %s of room %s now", bare, muc_aff_str(aff), r->jid);
	log_notice("muc: room %s: %s made %s by an administrator", r->jid, bare, muc_aff_str(aff));
	/* A temporary room may go away with the change (its last occupant made
	 * an outcast); a persistent one stays. */
	bool persistent = r->cfg.persistent;
	muc_room_set_affiliation(r, bare, aff, reason, NULL);
	free(bare);
	if (!persistent) {
		*r_r = MUC_ADMIN_OK;
		*message_r = message;
		return NULL;
	}
	struct muc_admin_op *op = op_new(done, ctx, message, xstrdup(message));
	muc_room_save(r, op_saved, op);
	return op;
}

/* ---- words ------------------------------------------------------------------------------- */

const char *muc_admin_who_str(enum muc_who w)
{
	switch (w) {
	case MUC_WHO_NONE: return "nobody";
	case MUC_WHO_MODERATORS: return "moderators";
	case MUC_WHO_PARTICIPANTS: return "participants";
	case MUC_WHO_ANYONE: return "anyone";
	}
	return "?";
}

void muc_admin_roles_str(unsigned mask, char *out, size_t size)
{
	size_t len = 0;
	out[0] = '\0';
	for (int role = MUC_ROLE_VISITOR; role <= MUC_ROLE_MODERATOR; role++) {
		if ((mask & MUC_ROLE_BIT(role)) == 0)
			continue;
		int n = snprintf(out + len, size - len, "%s%s", len > 0 ? "," : "", muc_role_str(role));
		if (n < 0 || (size_t)n >= size - len)
			break;
		len += (size_t)n;
	}
}
