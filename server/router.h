/*
 * The router: delivers a stanza to its destination domain.  Local virtual
 * hosts go to the local router (user JIDs to the session manager, the server
 * JID to the iq handler registry); other domains go to the remote route
 * (the s2s manager, server/s2s.h, when federation is enabled; else
 * remote-server-not-found).  Loop thread.
 */
#ifndef PARLEY_ROUTER_H
#define PARLEY_ROUTER_H

#include "stanza.h"

struct host;

/* Route stanza (from and to attributes already stamped and valid).  The
 * router takes its own references where it keeps the tree; the caller keeps
 * its reference. */
void router_route(struct xml_node *stanza, const struct jid *from, const struct jid *to);
/* Route an error reply to stanza's sender (nothing for an error stanza). */
void router_bounce(const struct xml_node *stanza, enum stanza_error e, const char *text);

/* Local routes besides the virtual hosts: a service on this node with a
 * domain of its own (a MUC or pubsub service, later components) gets every
 * stanza addressed to that domain or a JID in it.  fn takes its own
 * references where it keeps the tree. */
typedef void router_route_fn(void *ctx, struct xml_node *stanza, const struct jid *from,
                             const struct jid *to);
/* Add a route for domain (prepared) on behalf of host owner: the route
 * lasts while owner is in service (a host a reload removed no longer
 * routes, and its domain may be taken again at once).  With owner NULL (an
 * external component) it lasts until it is removed.  -1 with a malloc'd
 * *error_r when a virtual host or another live route has that domain. */
int router_add_route(const char *domain, const struct host *owner, router_route_fn *fn, void *ctx,
                     char **error_r);
/* Remove the route of domain that ctx added. */
void router_remove_route(const char *domain, void *ctx);
/* Where stanzas for domains that are not served here go (the s2s
 * manager); NULL: they bounce with remote-server-not-found. */
void router_set_remote(router_route_fn *fn, void *ctx);

/* Whether domain is served here (a virtual host or a local route). */
bool router_is_local(const char *domain);

/* Counters for status and stats. */
struct router_stats {
	uint64_t routed, local_iq, to_sm, to_route, to_remote, undeliverable;
};
const struct router_stats *router_stats(void);

#endif
