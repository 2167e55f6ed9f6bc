/*
 * Administration of publish-subscribe nodes from outside the protocol:
 * what parleyctl's pubsub-* commands (ctl/cmd-pubsub.c) and the ad-hoc
 * commands of pubsub-adhoc.c both do, with the same checks and the same
 * messages.  Loop thread.
 *
 * An owner is named by a pubsub service's domain (pubsub.example.com), a
 * local account's bare JID (its PEP nodes) or, where a listing allows it,
 * a virtual host (its first service).  Owners are loaded on first use, so
 * every operation may wait for the store; a handle lets the caller that
 * goes away cancel its wait (a change itself goes on).
 */
#ifndef PARLEY_MODULES_PUBSUB_ADMIN_H
#define PARLEY_MODULES_PUBSUB_ADMIN_H

#include "pubsub.h"

enum ps_admin_result {
	PS_ADMIN_OK,
	PS_ADMIN_INVALID,   /* a malformed owner or node name */
	PS_ADMIN_NOT_FOUND, /* no such host, service, PEP or node */
	PS_ADMIN_TEMPFAIL,  /* the store is unavailable: the nodes cannot be loaded or the change stored */
};

/* Called once with the outcome; message says what was done (OK) or what
 * is wrong, and is valid during the call. */
typedef void ps_admin_done_fn(void *ctx, enum ps_admin_result r, const char *message);
/* Called once when the owner o is loaded (r OK) or cannot be (o NULL,
 * message says why). */
typedef void ps_admin_ready_fn(void *ctx, enum ps_admin_result r, struct ps_owner *o, const char *message);
struct ps_admin_op;

/* The owner name names: a pubsub service's domain, USER@HOST for the PEP
 * of a local account (made when it is not in memory, its load started),
 * or, when host_ok, a served virtual host for the first of its services.
 * PS_ADMIN_OK with *o_r, which may still be loading; else the result with
 * *error_r (malloc'd): INVALID for a malformed name, NOT_FOUND when
 * nothing of that name is served (no such host or service, the host runs
 * no pubsub service, PEP is off). */
enum ps_admin_result ps_admin_owner(const char *name, bool host_ok, struct ps_owner **o_r, char **error_r);

/* Wait until o is loaded.  Returns a handle while it waits (fn runs later,
 * from the loop); NULL when o is ready now: then fn does not run and *r_r
 * says whether o may be read (OK) or why not (TEMPFAIL, *message_r
 * malloc'd). */
struct ps_admin_op *ps_admin_load(struct ps_owner *o, ps_admin_ready_fn *fn, void *ctx,
                                  enum ps_admin_result *r_r, char **message_r);

/* The changes, on node of the owner named owner (as ps_admin_owner, no
 * host).  Each returns a handle while it waits for the load or the store
 * (done runs later, from the loop), or NULL when it finished at once: then
 * done does not run and *r_r, *message_r (malloc'd) hold the outcome. */

/* Delete the node as its owner would: subscribers are notified when the
 * node's configuration says so; answers after the store committed the
 * removal. */
struct ps_admin_op *ps_admin_delete(const char *owner, const char *node, ps_admin_done_fn *done, void *ctx,
                                    enum ps_admin_result *r_r, char **message_r);
/* Remove every item of the node (a purge notification as for its owner's
 * purge); answers after the store committed it. */
struct ps_admin_op *ps_admin_purge(const char *owner, const char *node, ps_admin_done_fn *done, void *ctx,
                                   enum ps_admin_result *r_r, char **message_r);
/* fn or done will not run; what was changed stays changed. */
void ps_admin_cancel(struct ps_admin_op *op);

/* ---- what the listings show ---- */

/* The subscription state in XEP-0060's words. */
const char *ps_admin_sub_state_str(enum ps_sub_state s);
/* The bare JIDs that own n (PEP: the account) into *out (strlist_free). */
void ps_admin_owners(const struct ps_node *n, struct strlist *out);
/* Bytes of the item's payload as XML (0 without one). */
size_t ps_admin_payload_size(const struct ps_item *it);

/* One configuration field of a node: its name without "pubsub#", its
 * values (one, or any number for a multiple one: the roster groups),
 * whether it is a boolean ("true"/"false" in values). */
struct ps_admin_field {
	const char *name;
	const char *const *values;
	size_t nvalues;
	bool boolean, multi;
};
/* Call fn for each field of n's configuration, in the form's order. */
void ps_admin_config_fields(const struct ps_node *n, void (*fn)(const struct ps_admin_field *f, void *ctx),
                            void *ctx);

#endif
