/*
 * Administration of multi-user chat rooms from outside a room: what
 * parleyctl's muc-* commands (ctl/cmd-muc.c) and the ad-hoc commands of
 * muc-adhoc.c both do, with the same checks and the same messages.  Loop
 * thread.
 *
 * A room is named by its JID (NAME@SERVICE).  The changes act on the
 * running room (occupants hear of them at once) and answer after the store
 * committed what a persistent room keeps; a handle lets the caller that
 * goes away cancel its wait (the change itself goes on).
 */
#ifndef PARLEY_MODULES_MUC_ADMIN_H
#define PARLEY_MODULES_MUC_ADMIN_H

#include "muc.h"

enum muc_admin_result {
	MUC_ADMIN_OK,
	MUC_ADMIN_INVALID,   /* a malformed JID, room name or affiliation */
	MUC_ADMIN_NOT_FOUND, /* no such service or room */
	MUC_ADMIN_EXISTS,    /* the room to create exists */
	MUC_ADMIN_TEMPFAIL,  /* the store is unavailable, or the service's rooms are not loaded yet */
	MUC_ADMIN_FAILED,    /* any other failure of the store */
};

/* Called once with the outcome; message says what was done (OK) or what
 * is wrong, and is valid during the call. */
typedef void muc_admin_done_fn(void *ctx, enum muc_admin_result r, const char *message);
struct muc_admin_op;

/* The service and the prepared room name of room_jid (NAME@SERVICE, no
 * resource), whether or not the room exists.  MUC_ADMIN_OK with *svc_r and
 * *name_r (malloc'd); else the result with *error_r (malloc'd): INVALID
 * for a malformed JID or a name that fails nodeprep, NOT_FOUND when no MUC
 * service runs on the domain, TEMPFAIL while the service's stored rooms
 * are not loaded yet. */
enum muc_admin_result muc_admin_service(const char *room_jid, struct muc_service **svc_r, char **name_r,
                                        char **error_r);
/* The room room_jid names: as muc_admin_service, and NOT_FOUND ("no room
 * NAME@SERVICE") when the service has no such room. */
enum muc_admin_result muc_admin_room(const char *room_jid, struct muc_room **room_r, char **error_r);
/* A bare JID or a domain (the JIDs affiliations name), prepared; NULL when
 * s is neither (*error_r static). */
char *muc_admin_bare(const char *s, const char **error_r);

/* The changes.  Each returns a handle while it waits for the store (done
 * runs later, from the loop), or NULL when it finished at once: then done
 * does not run and *r_r, *message_r (malloc'd) hold the outcome. */

/* A new persistent room name@svc with the service's defaults, unlocked,
 * owned by owner (a bare JID or domain; NULL: no owner, only the service's
 * admins manage it).  EXISTS when the room exists.  Answers after the
 * store committed it; when the store fails, the room is taken down again
 * unless someone entered it meanwhile. */
struct muc_admin_op *muc_admin_create(struct muc_service *svc, const char *name, const char *owner,
                                      muc_admin_done_fn *done, void *ctx, enum muc_admin_result *r_r,
                                      char **message_r);
/* Destroy r (its occupants get the destroy presence with reason, which may
 * be NULL) and remove it from the store; answers after the removal
 * committed. */
struct muc_admin_op *muc_admin_destroy(struct muc_room *r, const char *reason, muc_admin_done_fn *done,
                                       void *ctx, enum muc_admin_result *r_r, char **message_r);
/* Give jid (a bare JID or domain, unprepared) the affiliation aff in r
 * (MUC_AFF_NONE: none), with reason (may be NULL), as the room's owner
 * would: occupants get their new roles, outcasts are removed.  A
 * persistent room answers after the store committed the change. */
struct muc_admin_op *muc_admin_set_affiliation(struct muc_room *r, const char *jid, enum muc_aff aff,
                                               const char *reason, muc_admin_done_fn *done, void *ctx,
                                               enum muc_admin_result *r_r, char **message_r);
/* done will not run; what was changed stays changed. */
void muc_admin_cancel(struct muc_admin_op *op);

/* Words for what the configuration holds: "moderators", "anyone", ...;
 * the roles of a mask, comma-separated, into out ("" for none). */
const char *muc_admin_who_str(enum muc_who w);
void muc_admin_roles_str(unsigned mask, char *out, size_t size);

#endif
