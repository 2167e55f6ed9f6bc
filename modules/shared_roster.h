/*
 * Shared roster groups (mod_shared_roster): where a host's groups come
 * from, and the administration entry point parleyctl's srg-* commands use.
 * Loop thread.
 */
#ifndef PARLEY_MODULES_SHARED_ROSTER_H
#define PARLEY_MODULES_SHARED_ROSTER_H

#include "storage/storage.h"
#include "storage/ldap-store.h"

struct host;

/* Where a host's groups come from: the host's store of the srg area
 * (host_store): the SQL store, or, with the module's `source: ldap`, the
 * read-only LDAP group store the module opens (storage/ldap-store.h, whose
 * struct srg_ldap_config holds the module's ldap_* options). */

/* The first search a load of h's groups sends (source ldap): its base and
 * filter, malloc'd (ldap_groups_from entries: ldap_group_base, else the
 * auth.ldap base, and ldap_group_filter; user_attribute: the search of the
 * user entries).  -1 when h has no LDAP group store. */
int srg_ldap_group_search(const struct host *h, char **base_r, char **filter_r);

/* ---- diagnostics (parleyctl ldap-test) ------------------------------------ */

struct srg_user_group {
	const char *name, *label, *description; /* label and description: "" when none */
	size_t members;                         /* members named in the group */
	bool all, online;                       /* @all@ / @online@ are members */
};
struct srg_user_groups {
	const char *source;            /* "sql" or "ldap" */
	bool loaded;                   /* a load has completed */
	double loaded_at;              /* wall-clock time of the last load that succeeded */
	bool load_failing;             /* the last load failed (the groups held are older) */
	size_t total;                  /* groups held */
	struct srg_user_group *groups; /* malloc'd; strings borrowed until the loop runs again */
	size_t count;
};
/* The groups of h held in memory (what rosters show) that have jid, a bare
 * JID, as a member (@all@ and @online@ evaluated).  -1 when shared_roster
 * does not run on h.  Clear with srg_user_groups_clear. */
int srg_groups_of(const struct host *h, const char *jid, struct srg_user_groups *out);
void srg_user_groups_clear(struct srg_user_groups *g);

/* ---- administration ------------------------------------------------------- */

/* What an administration call came to (srg_admin_run reports usage errors
 * as SRG_ADMIN_INVALID, an unknown host or a host without the module as
 * SRG_ADMIN_FAILED). */
enum srg_admin_result {
	SRG_ADMIN_OK,
	SRG_ADMIN_INVALID,   /* bad input: a name, a JID (nothing was changed) */
	SRG_ADMIN_READ_ONLY, /* the groups come from a read-only source */
	SRG_ADMIN_EXISTS,    /* the group exists; the member is in it already */
	SRG_ADMIN_NOT_FOUND, /* no such group; the member is not in it */
	SRG_ADMIN_TEMPFAIL,  /* the source is unavailable now (or the module stops) */
	SRG_ADMIN_FAILED,    /* any other failure */
};

/* Called once with the outcome r, message for failures (NULL on success),
 * body the command's output. */
typedef void srg_admin_done_fn(void *ctx, enum srg_admin_result r, const char *message, const char *body);
struct srg_admin;

/* Run one srg-* command; argv[0] is its name (srg-create, srg-delete,
 * srg-list, srg-info, srg-user-add, srg-user-del), the rest its arguments
 * as parleyctl documents them.  Changes go to the group source and, on a
 * running server, to the connected users at once (roster pushes and
 * presence).  Returns a handle for srg_admin_cancel, or NULL when done was
 * already called (a usage error, a host without the module). */
struct srg_admin *srg_admin_run(int argc, char **argv, srg_admin_done_fn *done, void *ctx);
/* done will not run. */
void srg_admin_cancel(struct srg_admin *a);
/* Usage of the srg-* commands, one line each (for help). */
extern const char *const srg_admin_usage[];

/* The same administration with structured input and output (the ad-hoc
 * commands of modules/srg-adhoc.c): the same checks, the same source calls
 * and the same live changes as srg_admin_run. */
enum srg_admin_op { SRG_ADMIN_CREATE, SRG_ADMIN_DELETE, SRG_ADMIN_MEMBER_ADD, SRG_ADMIN_MEMBER_DEL };

/* Called once, from the loop, never inside the call that started it:
 * message (NULL on success) says what failed; groups (valid during the
 * call only) is srg_admin_groups' answer. */
typedef void srg_admin_result_fn(void *ctx, enum srg_admin_result r, const char *message,
                                 const struct srg_group *groups, size_t count);

/* Every group of h as the source holds it (what srg-list and srg-info
 * read).  NULL with a malloc'd *error_r when the module does not run on h
 * (cb will not run). */
struct srg_admin *srg_admin_groups(struct host *h, srg_admin_result_fn *cb, void *ctx, char **error_r);
/* Change h's groups.  SRG_ADMIN_CREATE: g (name, label, description,
 * displayed groups and members; any order, duplicates dropped);
 * SRG_ADMIN_DELETE: g->name; SRG_ADMIN_MEMBER_ADD/_DEL: member of group
 * g->name.  Returns a handle for srg_admin_cancel and *result_r
 * SRG_ADMIN_OK when cb will answer; NULL with *result_r (SRG_ADMIN_INVALID,
 * SRG_ADMIN_READ_ONLY, SRG_ADMIN_FAILED) and a malloc'd *error_r when the
 * change was refused at once (cb will not run). */
struct srg_admin *srg_admin_change(struct host *h, enum srg_admin_op op, const struct srg_group *g,
                                   const char *member, srg_admin_result_fn *cb, void *ctx,
                                   enum srg_admin_result *result_r, char **error_r);
/* NULL when h's groups may be changed through srg_admin_*; else, malloc'd,
 * the message a change gets (the source is read-only). */
char *srg_admin_read_only(struct host *h);
/* A member as the commands take it: USER@HOST of h's domain, @all@ or
 * @online@.  0 with the prepared bare JID (malloc'd) in *member_r, or -1
 * with a static *error_r. */
int srg_admin_member(struct host *h, const char *in, char **member_r, const char **error_r);

/* ---- ad-hoc commands (modules/srg-adhoc.c) ---------------------------------- */

/* Register the shared roster commands (admins only) with mod_adhoc on h
 * when mod_adhoc runs there (it starts first); nothing otherwise.  -1 with
 * a malloc'd *error_r when a node is taken. */
int srg_adhoc_start(struct host *h, char **error_r);
/* Unregister them: the commands in flight end (their work is cancelled). */
void srg_adhoc_stop(struct host *h);

#endif
