/*
 * External components (XEP-0114, jabber:component:accept): a gateway or
 * a bot connects to a listener with module: component, names its domain
 * in the stream header and proves the shared secret of the components
 * section with <handshake/>.  Each configured component domain is a route
 * of the router (owner NULL) from start-up until a reload removes it:
 * while the component is connected, stanzas for the domain (and any JID
 * in it) are written to its stream; while it is not, they bounce with
 * <service-unavailable/>.  Loop thread only.
 */
#ifndef PARLEY_COMPONENT_H
#define PARLEY_COMPONENT_H

#include <ev.h>
#include "config.h"
#include "lib/xml.h"

#define NS_COMPONENT "jabber:component:accept"

struct host;

/* Register the listener kind and add a route for every component of cfg
 * (before listeners_open and the hosts).  -1 with a malloc'd *error_r when
 * a component's domain is already served here. */
int components_start(const struct parley_config *cfg, char **error_r);
/* Apply a reloaded configuration: routes for new components, removed ones
 * closed (<host-gone/>) and unrouted; a changed secret or policy applies
 * to the next connection.  Lines for the reload report go to report. */
void components_reload(const struct parley_config *ncfg, struct buf *report);
/* Close every component stream with <system-shutdown/> (server stop). */
void components_shutdown_all(void);
/* Free the routes (after the loop ended). */
void components_stop(void);

/* A connected component, for parleyctl. */
struct component_info {
	const char *domain;
	const char *ip; /* peer address */
	unsigned port;
	double since; /* ev_now() at the handshake (wall clock) */
	uint64_t stanzas_in, stanzas_out;
	uint64_t bytes_in, bytes_out;
};
/* Call fn for every configured component, connected (info->ip set) or
 * not (ip NULL), in the configuration's order. */
void components_foreach(void (*fn)(const struct component_info *info, void *ctx), void *ctx);

struct component_stats {
	unsigned configured, connected;
	uint64_t handshakes, bad_secret, unknown_domain, refused, replaced, invalid_from;
	uint64_t stanzas_in, stanzas_out, bounced_offline;
};
const struct component_stats *component_stats(void);

/* Add an <item/> for every connected component listed in disco (host's
 * disco#items). */
void components_disco_items(const struct host *h, struct xml_node *query);

#endif
