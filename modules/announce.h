/*
 * Announcements and the message of the day of a host (mod_announce): what
 * the module's ad-hoc commands do, for other callers too (parleyctl
 * announce and motd).  Loop thread.
 *
 * Messages come from the host's domain.  The message of the day is kept in
 * the host's store and sent to each session when it first becomes
 * available.
 */
#ifndef PARLEY_MODULES_ANNOUNCE_H
#define PARLEY_MODULES_ANNOUNCE_H

#include "lib/util.h"

struct host;
struct announce_req;

enum announce_result {
	ANNOUNCE_OK,
	ANNOUNCE_OFF,      /* mod_announce does not run on the host */
	ANNOUNCE_TEMPFAIL, /* the store is unavailable now, or the module stopped */
	ANNOUNCE_FAILED,   /* any other failure */
};

/* Send a message (type "normal" or "headline", subject NULL or "" for
 * none, body) from h to every session of h, now.  *sessions_r and
 * *users_r (may be NULL) count whom it went to.  ANNOUNCE_OFF (nothing
 * sent) when mod_announce does not run on h. */
enum announce_result announce_online(struct host *h, const char *type, const char *subject, const char *body,
                                     unsigned *sessions_r, unsigned *users_r);

/* What an announcement to every registered user came to. */
struct announce_report {
	enum announce_result result; /* ANNOUNCE_OK: every user got it, has it stored, or was skipped */
	unsigned online;             /* users it was delivered to at once */
	unsigned stored;             /* users it was stored for offline (committed) */
	unsigned skipped;            /* users not stored for: their block or privacy list
	                               * refuses it, or the account went meanwhile */
	unsigned failed;             /* users it could not be stored for */
	const char *error;           /* why, when result is not ANNOUNCE_OK */
};
typedef void announce_all_fn(void *ctx, const struct announce_report *r);

/* Send the message to every registered user of h: a user with an available
 * session of non-negative priority gets it at once (to the bare JID); the
 * others get it stored offline, as mod_offline stores a message for a user
 * who is away (offline_store_from_host).  done runs once, from the loop,
 * never inside this call, after every offline copy was committed or
 * failed; the report is valid during the call.  Returns a handle for
 * announce_cancel, or NULL when mod_announce does not run on h (done will
 * not run). */
struct announce_req *announce_all(struct host *h, const char *type, const char *subject, const char *body,
                                  announce_all_fn *done, void *ctx);

/* h's message of the day: ANNOUNCE_OK with *text_r (NULL: none; valid
 * until the loop runs again), ANNOUNCE_OFF, or ANNOUNCE_TEMPFAIL when it is
 * not known (the read at start is under way, or failed: see the log). */
enum announce_result announce_motd(struct host *h, const char **text_r);

/* error: why, when r is not ANNOUNCE_OK. */
typedef void announce_motd_fn(void *ctx, enum announce_result r, const char *error);
/* Set h's message of the day to text (NULL or "": delete it).  It is
 * stored first; once the store said so, sessions that become available get
 * the new one.  done runs once, from the loop, never inside this call.
 * Returns a handle for announce_cancel, or NULL when mod_announce does not
 * run on h (done will not run). */
struct announce_req *announce_motd_set(struct host *h, const char *text, announce_motd_fn *done, void *ctx);

/* done will not run.  Offline copies of an announcement already handed to
 * mod_offline are still stored. */
void announce_cancel(struct announce_req *req);

#endif
