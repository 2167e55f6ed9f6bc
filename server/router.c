/*
 * The router and the local router.  Loop thread.
 *
 * router_route looks the destination domain up among the local virtual
 * hosts: a user JID goes to the session manager; the host's own JID goes to
 * the iq handler registry (IQ_SCOPE_SERVER), and answers to the iqs the
 * server sent to iq_response.  Then among the local routes
 * (services with domains of their own: MUC, pubsub, external components).
 * Other domains go to the remote route (the s2s manager) when one is set,
 * else they are answered with <remote-server-not-found/>.
 */
#include "router.h"
#include "host.h"
#include "sm.h"
#include "lib/log.h"

#include <stdlib.h>
#include <string.h>

static struct router_stats stats;

struct route {
	char *domain;
	const struct host *owner;
	router_route_fn *fn;
	void *ctx;
	struct route *next;
};
/* Few entries (a service or two per host): a list. */
static struct route *routes;
static router_route_fn *remote_fn;
static void *remote_ctx;

void router_set_remote(router_route_fn *fn, void *ctx)
{
	remote_fn = fn;
	remote_ctx = ctx;
}

/* The live route of domain: its owner (if any) is still the host of that
 * name. */
static struct route *route_find(const char *domain)
{
	for (struct route *r = routes; r != NULL; r = r->next)
		if (strcmp(r->domain, domain) == 0 &&
		    (r->owner == NULL || host_find(r->owner->name) == r->owner))
			return r;
	return NULL;
}

int router_add_route(const char *domain, const struct host *owner, router_route_fn *fn, void *ctx,
                     char **error_r)
{
	if (host_find(domain) != NULL || route_find(domain) != NULL) {
		*error_r = xasprintf("the domain %s is already served here", domain);
		return -1;
	}
	struct route *r = xcalloc(1, sizeof(*r));
	r->domain = xstrdup(domain);
	r->owner = owner;
	r->fn = fn;
	r->ctx = ctx;
	r->next = routes;
	routes = r;
	return 0;
}

void router_remove_route(const char *domain, void *ctx)
{
	for (struct route **p = &routes; *p != NULL; p = &(*p)->next) {
		if (strcmp((*p)->domain, domain) == 0 && (*p)->ctx == ctx) {
			struct route *r = *p;
			*p = r->next;
			free(r->domain);
			free(r);
			return;
		}
	}
}

bool router_is_local(const char *domain)
{
	return host_find(domain) != NULL || route_find(domain) != NULL;
}

const struct router_stats *router_stats(void)
{
	return &stats;
}

void router_bounce(const struct xml_node *stanza, enum stanza_error e, const char *text)
{
	struct xml_node *reply = stanza_error_reply(stanza, e, text);
	if (reply == NULL)
		return;
	const char *from = xml_attr(reply, "from");
	const char *to = xml_attr(reply, "to");
	struct jid fj = { 0 }, tj = { 0 };
	const char *err;
	if (to != NULL && jid_parse(to, &tj, &err) == 0) {
		if (from == NULL || jid_parse(from, &fj, &err) != 0) {
			jid_clear(&fj);
			jid_set(&fj, NULL, tj.domain, NULL);
		}
		router_route(reply, &fj, &tj);
	}
	jid_clear(&fj);
	jid_clear(&tj);
	xml_unref(&reply);
}

static void local_route(struct host *h, struct xml_node *stanza, const struct jid *from, const struct jid *to)
{
	if (stanza_kind(stanza) != STANZA_IQ)
		return; /* messages and presence to the server itself: nothing handles them yet */
	const char *type = xml_attr(stanza, "type");
	if (type == NULL)
		return;
	if (strcmp(type, "result") == 0 || strcmp(type, "error") == 0) {
		/* An answer to an iq the server sent (iq_send), or nothing. */
		if (!iq_response(h, stanza, from))
			log_debug("router: an unexpected iq %s to %s dropped", type, h->name);
		return;
	}
	if (strcmp(type, "get") != 0 && strcmp(type, "set") != 0)
		return;
	stats.local_iq++;
	if (to->resource != NULL) {
		router_bounce(stanza, SE_SERVICE_UNAVAILABLE, NULL);
		return;
	}
	struct xml_node *payload = xml_first_element(stanza);
	if (payload == NULL || xml_element_count(stanza) != 1) {
		router_bounce(stanza, SE_BAD_REQUEST, NULL);
		return;
	}
	if (!iq_dispatch(h, IQ_SCOPE_SERVER, stanza, from, to, NULL))
		router_bounce(stanza, SE_SERVICE_UNAVAILABLE, NULL);
}

void router_route(struct xml_node *stanza, const struct jid *from, const struct jid *to)
{
	stats.routed++;
	struct host *h = host_find(to->domain);
	if (h == NULL) {
		struct route *r = route_find(to->domain);
		if (r != NULL) {
			stats.to_route++;
			r->fn(r->ctx, stanza, from, to);
			return;
		}
		if (remote_fn != NULL) {
			stats.to_remote++;
			remote_fn(remote_ctx, stanza, from, to);
			return;
		}
		stats.undeliverable++;
		log_debug("router: no route to %s", to->domain);
		router_bounce(stanza, SE_REMOTE_SERVER_NOT_FOUND, "server-to-server is not enabled");
		return;
	}
	if (to->node == NULL) {
		local_route(h, stanza, from, to);
		return;
	}
	stats.to_sm++;
	sm_route(h, stanza, from, to);
}
