/*
 * PEP (XEP-0163) of local users, for the modules that keep other
 * protocols in step with it: bookmarks (XEP-0402 compat and XEP-0411,
 * private XML storage of XEP-0049) and avatars (XEP-0398, vCard photos of
 * XEP-0153).  The pubsub module (modules/pubsub/) implements it; each
 * function fails with PEP_UNAVAILABLE when PEP does not run on the host.
 * Loop thread.
 *
 * A publish through pep_publish is the owner's own: the node is created
 * when missing, with opts as its configuration, and the notifications
 * go out as for a client's publish.  HOOK_PEP_PUBLISHED runs after every
 * publish or retract on a local user's PEP node has been stored (a
 * client's or a module's), with origin telling which, so that a module
 * does not answer its own change.
 */
#ifndef PARLEY_MODULES_PEP_H
#define PARLEY_MODULES_PEP_H

#include <stdbool.h>
#include <stddef.h>

struct host;
struct xml_node;

enum pep_result {
	PEP_OK,
	PEP_NOT_FOUND,   /* no such node or item */
	PEP_UNAVAILABLE, /* PEP does not run on the host */
	PEP_REFUSED,     /* a limit or the node's configuration refused it */
	PEP_FAILED,      /* storage failed (logged) */
};

/* The configuration of a node pep_publish creates (and the
 * publish-options it checks on an existing node: a node configured
 * otherwise refuses with PEP_REFUSED). */
struct pep_node_options {
	const char *access_model; /* "presence" (NULL), "open", "whitelist", "roster" */
	unsigned max_items;       /* 0: the module's default; UINT_MAX: "max" */
	bool send_last;           /* send_last_published_item on_sub_and_presence */
	bool send_last_never;     /* send_last_published_item never (XEP-0402, native bookmarks) */
};

typedef void pep_done_fn(enum pep_result r, void *ctx);

/* Publish payload (one element; copied) as item id (NULL: a new unique
 * id) on user's node; origin names the publishing module.  cb (may be
 * NULL) runs once, after the item was stored or refused. */
enum pep_result pep_publish(struct host *h, const char *user, const char *node, const char *id,
                            const struct xml_node *payload, const struct pep_node_options *opts,
                            const char *origin, pep_done_fn *cb, void *ctx);
/* Retract item id of user's node (with notifications); PEP_NOT_FOUND
 * through cb when there is no such item. */
enum pep_result pep_retract(struct host *h, const char *user, const char *node, const char *id,
                            const char *origin, pep_done_fn *cb, void *ctx);

/* One item as pep_items gives it (valid during the callback). */
struct pep_item {
	const char *id;
	const struct xml_node *payload; /* NULL for an item without payload */
};
typedef void pep_items_fn(enum pep_result r, const struct pep_item *items, size_t n, void *ctx);
/* The items of user's node, newest first (n 0 with PEP_OK when empty;
 * PEP_NOT_FOUND when the node does not exist).  cb runs once, maybe
 * before pep_items returns (the user's nodes are loaded). */
enum pep_result pep_items(struct host *h, const char *user, const char *node, pep_items_fn *cb, void *ctx);

/* After a publish or retract on a local user's PEP node was stored. */
#define HOOK_PEP_PUBLISHED "pep_published"
struct hook_pep {
	const char *user;
	const char *node;
	const char *id;                 /* the item */
	const struct xml_node *payload; /* the item's payload; NULL for a retract */
	const char *origin;             /* the module's name given to pep_publish, NULL for a client */
};

#endif
