/*
 * External components (XEP-0114).  Loop thread only.
 *
 * States of a component stream: HEADER (waiting for the stream header,
 * whose 'to' names a configured component domain), HANDSHAKE (our header
 * sent with a fresh stream id; waiting for <handshake/> with the hex
 * SHA-1 of id + secret), OPEN (stanzas flow both ways).
 *
 * Invariants:
 * - Every configured component domain has one struct comp_route, which is
 *   the ctx of its router route (added at start-up or by a reload, removed
 *   by a reload).  r->conn is the one OPEN stream of that domain, or NULL;
 *   c->route points back while OPEN.  Stanzas routed while conn is NULL
 *   bounce with <service-unavailable/>: the domain is served here, its
 *   service is down (RFC 6120 §8.3.3.19), and the sender is not sent to
 *   the s2s manager for a domain that is ours.
 * - A stanza from a component is routed only when its 'from' is the
 *   component domain or a JID in it (else <invalid-from/>), and its 'to'
 *   parsed as a JID; its tree is moved from jabber:component:accept to
 *   jabber:client before it is routed, so the rest of the server sees the
 *   stanzas of one namespace.  Stanzas to a component are written with
 *   jabber:client in scope: they carry no xmlns and are read in the
 *   stream's jabber:component:accept.
 * - A secret is compared in constant time and never logged.
 * - No idle timeout once OPEN (a gateway may be silent for hours); the
 *   whitespace keepalive of limits.keepalive finds dead peers.  The
 *   handshake must finish within limits.handshake_timeout.  At most
 *   limits.max_connections_per_ip component streams from one address.
 */
#include "component.h"
#include "stream.h"
#include "router.h"
#include "host.h"
#include "listener.h"
#include "server.h"
#include "lib/jid.h"
#include "lib/log.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum comp_state { COMP_HEADER, COMP_HANDSHAKE, COMP_OPEN };

struct comp_route;

struct comp {
	struct stream *st;
	enum comp_state state;
	bool header_sent;
	char stream_id[17];
	char *domain; /* from the header, prepared */
	struct comp_route *route;
	const struct limits_config *limits;
	double opened, since;
	uint64_t in, out;
};

struct comp_route {
	char *domain;
	struct comp *conn;
	struct comp_route *next;
};

static struct comp_route *routes; /* in configuration order */
static struct component_stats stats;

const struct component_stats *component_stats(void)
{
	unsigned configured = 0, connected = 0;
	for (struct comp_route *r = routes; r != NULL; r = r->next) {
		configured++;
		if (r->conn != NULL)
			connected++;
	}
	stats.configured = configured;
	stats.connected = connected;
	return &stats;
}

static struct comp_route *route_of(const char *domain)
{
	for (struct comp_route *r = routes; r != NULL; r = r->next)
		if (strcmp(r->domain, domain) == 0)
			return r;
	return NULL;
}

/* ---- output ------------------------------------------------------------- */

static void comp_send_header(struct comp *c)
{
	if (c->header_sent)
		return;
	random_id(c->stream_id, 16);
	struct buf b = { 0 };
	buf_append_str(&b, "<?xml version='1.0'?><stream:stream xmlns='" NS_COMPONENT
	                   "' xmlns:stream='" NS_STREAM "' id='");
	buf_append_str(&b, c->stream_id);
	if (c->domain != NULL) {
		buf_append_str(&b, "' from='");
		xml_escape(&b, c->domain, strlen(c->domain), true);
	}
	buf_append_str(&b, "'>");
	stream_write(c->st, b.data, b.len);
	buf_free(&b);
	c->header_sent = true;
}

static void comp_fail(struct comp *c, enum stream_error e, const char *text)
{
	if (c->st->dead || c->st->closing)
		return;
	comp_send_header(c);
	log_info("component %llu %s from %s: closing with <%s/>%s%s", (unsigned long long)c->st->id,
	         c->domain != NULL ? c->domain : "(no domain)", c->st->ip, stream_error_name(e),
	         text != NULL ? ": " : "", text != NULL ? text : "");
	stream_close(c->st, (int)e, text);
}

/* The route no longer delivers to c (it is closing or gone). */
static void comp_unroute(struct comp *c)
{
	if (c->route != NULL && c->route->conn == c)
		c->route->conn = NULL;
	c->route = NULL;
}

/* The router's delivery to a component domain. */
static void comp_route_fn(void *ctx, struct xml_node *stanza, const struct jid *from, const struct jid *to)
{
	struct comp_route *r = ctx;
	struct comp *c = r->conn;
	if (c == NULL || c->st->dead || c->st->closing) {
		stats.bounced_offline++;
		log_debug("component %s: not connected; a stanza from %s bounces", r->domain, from->domain);
		router_bounce(stanza, SE_SERVICE_UNAVAILABLE,
		              "the component serving this domain is not connected");
		return;
	}
	c->out++;
	stats.stanzas_out++;
	stream_send(c->st, stanza, NS_CLIENT);
}

/* ---- stream header and handshake ----------------------------------------- */

static void comp_stream_start(struct stream *st, struct xml_node *header, const char *default_ns)
{
	struct comp *c = st->owner;
	const char *to = xml_attr(header, "to");
	char *domain = to != NULL ? jid_nameprep(to) : NULL;
	bool ns_ok = strcmp(default_ns, NS_COMPONENT) == 0;
	xml_unref(&header);
	if (c->state != COMP_HEADER) {
		free(domain);
		comp_fail(c, STE_NOT_WELL_FORMED, "a second stream header");
		return;
	}
	const struct parley_config *cfg = server_config();
	const struct component_config *cc =
	        domain != NULL ? component_config_find(cfg->components, cfg->ncomponents, domain) : NULL;
	if (cc != NULL) {
		c->domain = domain;
	} else {
		stats.unknown_domain += ns_ok ? 1 : 0;
		log_notice("component %llu from %s: no component '%s' is configured",
		           (unsigned long long)st->id, st->ip, domain != NULL ? domain : "(none)");
		free(domain);
	}
	if (!ns_ok) {
		comp_fail(c, STE_INVALID_NAMESPACE, "the default namespace must be " NS_COMPONENT);
		return;
	}
	if (cc == NULL || route_of(cc->domain) == NULL) {
		comp_fail(c, STE_HOST_UNKNOWN, "no component of that domain is configured here");
		return;
	}
	comp_send_header(c);
	c->state = COMP_HANDSHAKE;
}

/* Lower-case hex SHA-1 of id + secret into out[41]. */
static void comp_digest(const char *id, const char *secret, char out[41])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned md_len = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) != 1 ||
	    EVP_DigestUpdate(ctx, id, strlen(id)) != 1 ||
	    EVP_DigestUpdate(ctx, secret, strlen(secret)) != 1 || EVP_DigestFinal_ex(ctx, md, &md_len) != 1 ||
	    md_len != 20)
		abort();
	EVP_MD_CTX_free(ctx);
	static const char hex[] = "0123456789abcdef";
	for (unsigned i = 0; i < 20; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[40] = '\0';
	explicit_bzero(md, sizeof(md));
}

static void comp_handshake(struct comp *c, struct xml_node *el)
{
	if (!xml_is(el, "handshake", NS_COMPONENT)) {
		comp_fail(c, STE_NOT_AUTHORIZED, "send <handshake/> first");
		return;
	}
	const struct parley_config *cfg = server_config();
	const struct component_config *cc =
	        component_config_find(cfg->components, cfg->ncomponents, c->domain);
	struct comp_route *r = route_of(c->domain);
	if (cc == NULL || r == NULL) {
		comp_fail(c, STE_HOST_UNKNOWN, "the component is no longer configured");
		return;
	}
	/* The proof: 40 hex digits (either case), white space around them
	 * ignored. */
	const char *text = xml_text(el);
	size_t len = strlen(text);
	while (len > 0 && strchr(" \t\r\n", text[len - 1]) != NULL)
		len--;
	while (len > 0 && strchr(" \t\r\n", *text) != NULL) {
		text++;
		len--;
	}
	char given[41] = { 0 };
	for (size_t i = 0; i < len && i < 40; i++)
		given[i] = (char)(text[i] >= 'A' && text[i] <= 'Z' ? text[i] - 'A' + 'a' : text[i]);
	char want[41];
	comp_digest(c->stream_id, cc->secret, want);
	bool ok = len == 40 && secure_memeq(given, want, 40);
	explicit_bzero(want, sizeof(want));
	if (!ok) {
		stats.bad_secret++;
		log_warning("component %s from %s: handshake failed (wrong secret)", c->domain, c->st->ip);
		comp_fail(c, STE_NOT_AUTHORIZED, "the handshake does not match the secret");
		return;
	}
	if (r->conn != NULL) {
		struct comp *old = r->conn;
		if (cc->on_conflict == COMPONENT_CONFLICT_REFUSE) {
			stats.refused++;
			log_notice("component %s: a second connection from %s refused (connected from %s; "
			           "on_conflict: refuse)",
			           c->domain, c->st->ip, old->st->ip);
			comp_fail(c, STE_CONFLICT, "this component is already connected");
			return;
		}
		stats.replaced++;
		log_notice("component %s: the connection from %s replaces the one from %s (on_conflict: "
		           "replace)",
		           c->domain, c->st->ip, old->st->ip);
		comp_unroute(old);
		comp_fail(old, STE_CONFLICT, "replaced by a new connection of this component");
	}
	r->conn = c;
	c->route = r;
	c->state = COMP_OPEN;
	c->since = ev_now(c->st->loop);
	stats.handshakes++;
	stream_write_str(c->st, "<handshake/>");
	log_info("component %s connected from %s port %u", c->domain, c->st->ip, c->st->port);
}

/* ---- stanzas from the component -------------------------------------------- */

/* Move el's tree from the component namespace to jabber:client. */
static void comp_to_client_ns(struct xml_node *el)
{
	if (el->type != XML_ELEMENT)
		return;
	if (strcmp(el->ns, NS_COMPONENT) == 0)
		el->ns = NS_CLIENT;
	for (struct xml_node *ch = el->children; ch != NULL; ch = ch->next)
		comp_to_client_ns(ch);
}

/* An error answered to the component itself (not routed). */
static void comp_reply_error(struct comp *c, const struct xml_node *el, enum stanza_error e, const char *text)
{
	struct xml_node *reply = stanza_error_reply(el, e, text);
	if (reply == NULL)
		return;
	/* From the server: the stanza's 'to' (now 'from') may be what was
	 * wrong with it. */
	xml_set_attr(reply, "from", NULL);
	c->out++;
	stats.stanzas_out++;
	stream_send(c->st, reply, NS_CLIENT);
	xml_unref(&reply);
}

static bool valid_type(const char *type, const char *const *allowed)
{
	for (; *allowed != NULL; allowed++)
		if (strcmp(type, *allowed) == 0)
			return true;
	return false;
}

static void comp_stanza_open(struct comp *c, struct xml_node *el)
{
	enum stanza_kind kind = stanza_kind(el);
	if (kind == STANZA_OTHER || strcmp(el->ns, NS_COMPONENT) != 0) {
		comp_fail(c, STE_UNSUPPORTED_STANZA_TYPE, NULL);
		return;
	}
	c->in++;
	stats.stanzas_in++;
	const char *from_s = xml_attr(el, "from");
	const char *to_s = xml_attr(el, "to");
	if (from_s == NULL || to_s == NULL) {
		comp_fail(c, STE_IMPROPER_ADDRESSING, "a stanza from a component needs 'from' and 'to'");
		return;
	}
	struct jid from, to;
	const char *err;
	if (jid_parse(from_s, &from, &err) != 0) {
		stats.invalid_from++;
		comp_fail(c, STE_INVALID_FROM, "'from' is not a valid JID");
		return;
	}
	if (strcmp(from.domain, c->domain) != 0) {
		stats.invalid_from++;
		log_warning("component %s from %s: a stanza from %s, a domain it does not serve", c->domain,
		            c->st->ip, from.domain);
		jid_clear(&from);
		comp_fail(c, STE_INVALID_FROM, "'from' must be the component's domain or a JID in it");
		return;
	}
	comp_to_client_ns(el);
	const char *type = xml_attr(el, "type");
	if (kind == STANZA_IQ) {
		static const char *const iq_types[] = { "get", "set", "result", "error", NULL };
		if (type == NULL || !valid_type(type, iq_types) || xml_attr(el, "id") == NULL) {
			comp_reply_error(c, el, SE_BAD_REQUEST, "an iq needs an id and a valid type");
			jid_clear(&from);
			return;
		}
		if ((type[0] == 'g' || type[0] == 's') && xml_element_count(el) != 1) {
			comp_reply_error(c, el, SE_BAD_REQUEST,
			                 "an iq get or set has exactly one child element");
			jid_clear(&from);
			return;
		}
	}
	if (jid_parse(to_s, &to, &err) != 0) {
		comp_reply_error(c, el, SE_JID_MALFORMED, err);
		jid_clear(&from);
		return;
	}
	router_route(el, &from, &to);
	jid_clear(&from);
	jid_clear(&to);
}

static bool comp_stanza(struct stream *st, struct xml_node *el)
{
	struct comp *c = st->owner;
	if (xml_is(el, "error", NS_STREAM)) {
		/* The component gives up (a stream error of its own): no error
		 * back, just the end of the stream. */
		const struct xml_node *cond = xml_first_element(el);
		log_notice("component %s from %s: the component sent the stream error <%s/>",
		           c->domain != NULL ? c->domain : "(no domain)", st->ip,
		           cond != NULL ? cond->name : "?");
		comp_unroute(c);
		comp_send_header(c);
		stream_close(st, -1, NULL);
		xml_unref(&el);
		return true;
	}
	switch (c->state) {
	case COMP_HEADER: comp_fail(c, STE_NOT_WELL_FORMED, "stanza before the stream header"); break;
	case COMP_HANDSHAKE: comp_handshake(c, el); break;
	case COMP_OPEN: comp_stanza_open(c, el); break;
	}
	xml_unref(&el);
	return false;
}

/* ---- lifecycle -------------------------------------------------------------- */

static void comp_stream_end(struct stream *st)
{
	struct comp *c = st->owner;
	log_debug("component %llu: the peer closed the stream", (unsigned long long)st->id);
	comp_unroute(c);
	comp_send_header(c);
	stream_close(st, -1, NULL);
}

static void comp_parse_error(struct stream *st, enum stream_error e, const char *text)
{
	comp_fail(st->owner, e, text);
}

static void comp_tick(struct stream *st, double now)
{
	struct comp *c = st->owner;
	const struct limits_config *l = c->limits;
	if (c->state != COMP_OPEN) {
		if (l->handshake_timeout > 0 && now - c->opened > l->handshake_timeout)
			comp_fail(c, STE_CONNECTION_TIMEOUT, "the handshake took too long");
		return;
	}
	if (l->keepalive > 0 && now - st->last_out > l->keepalive && st->out.len == 0)
		stream_write(st, " ", 1);
}

static void comp_closed(struct stream *st)
{
	struct comp *c = st->owner;
	if (c->state == COMP_OPEN && (c->route == NULL || c->route->conn == c))
		log_info("component %s from %s disconnected (%llu stanzas in, %llu out)", c->domain, st->ip,
		         (unsigned long long)c->in, (unsigned long long)c->out);
	comp_unroute(c);
	free(c->domain);
	free(c);
}

static const struct stream_ops comp_stream_ops = {
	.stream_start = comp_stream_start,
	.stanza = comp_stanza,
	.stream_end = comp_stream_end,
	.error = comp_parse_error,
	.tick = comp_tick,
	.closed = comp_closed,
};

struct ip_count {
	const char *ip;
	unsigned n;
};

static void comp_count_ip(struct stream *st, void *ctx)
{
	struct ip_count *ic = ctx;
	if (st->ops == &comp_stream_ops && !st->dead && strcmp(st->ip, ic->ip) == 0)
		ic->n++;
}

static void component_accept(struct ev_loop *loop, int fd, const char *ip, unsigned port,
                             const struct listen_config *lc, const struct limits_config *limits)
{
	/* limits.max_connections_per_ip counts component streams (open or
	 * in their handshake) apart from client and server ones, as s2s
	 * counts its own: a flood of half-open component connections from
	 * one address cannot hold the listener's memory. */
	if (limits->max_conn_per_ip > 0) {
		struct ip_count ic = { .ip = ip };
		streams_foreach(comp_count_ip, &ic);
		if (ic.n >= limits->max_conn_per_ip) {
			log_notice(
			        "component: refusing a connection from %s: already %u component connections "
			        "from that address (limits.max_connections_per_ip)",
			        ip, ic.n);
			close(fd);
			return;
		}
	}
	struct comp *c = xcalloc(1, sizeof(*c));
	c->limits = limits;
	c->opened = ev_now(loop);
	struct xml_parser_limits pl = {
		.max_stanza = limits->max_stanza_size,
		.max_depth = limits->max_depth,
		.max_attrs = limits->max_attrs,
	};
	c->st = stream_new(loop, fd, ip, port, &pl, limits->max_output, lc->direct_tls, &comp_stream_ops, c);
	stream_set_rate(c->st, server_config()->shaper.component);
	log_debug("component %llu: connection from %s port %u", (unsigned long long)c->st->id, ip, port);
}

/* ---- routes ----------------------------------------------------------------- */

static int route_add(const char *domain, char **error_r)
{
	struct comp_route *r = xcalloc(1, sizeof(*r));
	r->domain = xstrdup(domain);
	if (router_add_route(domain, NULL, comp_route_fn, r, error_r) < 0) {
		free(r->domain);
		free(r);
		return -1;
	}
	struct comp_route **tail = &routes;
	while (*tail != NULL)
		tail = &(*tail)->next;
	*tail = r;
	return 0;
}

int components_start(const struct parley_config *cfg, char **error_r)
{
	listener_register(LISTEN_COMPONENT, component_accept);
	bool listening = false;
	for (size_t i = 0; i < cfg->nlisten; i++) {
		const struct listen_config *lc = &cfg->listen[i];
		if (lc->module != LISTEN_COMPONENT)
			continue;
		listening = true;
		if (!lc->direct_tls && lc->starttls != STARTTLS_OFF)
			log_warning(
			        "listen %s port %u: component streams (XEP-0114) have no STARTTLS and are "
			        "not encrypted; keep the listener on loopback or use direct_tls, and set "
			        "starttls: off to say so",
			        lc->address, lc->port);
	}
	if (listening && cfg->ncomponents == 0)
		log_warning("a listener has module: component but no components are configured: every "
		            "component will get <host-unknown/>");
	if (!listening && cfg->ncomponents > 0)
		log_warning("%zu components are configured but no listener has module: component",
		            cfg->ncomponents);
	for (size_t i = 0; i < cfg->ncomponents; i++) {
		char *err = NULL;
		if (route_add(cfg->components[i].domain, &err) < 0) {
			*error_r = xasprintf("component %s: %s", cfg->components[i].domain, err);
			free(err);
			return -1;
		}
	}
	return 0;
}

void components_reload(const struct parley_config *ncfg, struct buf *report)
{
	for (struct comp_route **p = &routes; *p != NULL;) {
		struct comp_route *r = *p;
		if (component_config_find(ncfg->components, ncfg->ncomponents, r->domain) != NULL) {
			p = &r->next;
			continue;
		}
		buf_printf(report, "component %s: removed%s\n", r->domain,
		           r->conn != NULL ? " (disconnected)" : "");
		if (r->conn != NULL) {
			struct comp *c = r->conn;
			comp_unroute(c);
			comp_fail(c, STE_HOST_GONE, "this component is no longer configured");
		}
		router_remove_route(r->domain, r);
		*p = r->next;
		free(r->domain);
		free(r);
	}
	for (size_t i = 0; i < ncfg->ncomponents; i++) {
		const char *d = ncfg->components[i].domain;
		if (route_of(d) != NULL)
			continue;
		char *err = NULL;
		if (route_add(d, &err) < 0) {
			log_error("reload: component %s: %s", d, err);
			buf_printf(report, "component %s: not added: %s\n", d, err);
			free(err);
		} else {
			buf_printf(report, "component %s: added\n", d);
		}
	}
}

static void comp_shutdown_one(struct stream *st, void *ctx)
{
	if (st->ops != &comp_stream_ops)
		return;
	struct comp *c = st->owner;
	comp_unroute(c);
	comp_fail(c, STE_SYSTEM_SHUTDOWN, "the server is shutting down");
}

void components_shutdown_all(void)
{
	streams_foreach(comp_shutdown_one, NULL);
}

void components_stop(void)
{
	while (routes != NULL) {
		struct comp_route *r = routes;
		routes = r->next;
		if (r->conn != NULL)
			r->conn->route = NULL;
		router_remove_route(r->domain, r);
		free(r->domain);
		free(r);
	}
}

void components_foreach(void (*fn)(const struct component_info *info, void *ctx), void *ctx)
{
	for (struct comp_route *r = routes; r != NULL; r = r->next) {
		struct component_info info = { .domain = r->domain };
		struct comp *c = r->conn;
		if (c != NULL) {
			info.ip = c->st->ip;
			info.port = c->st->port;
			info.since = c->since;
			info.stanzas_in = c->in;
			info.stanzas_out = c->out;
			info.bytes_in = c->st->bytes_in;
			info.bytes_out = c->st->bytes_out;
		}
		fn(&info, ctx);
	}
}

void components_disco_items(const struct host *h, struct xml_node *query)
{
	const struct parley_config *cfg = server_config();
	for (struct comp_route *r = routes; r != NULL; r = r->next) {
		if (r->conn == NULL)
			continue;
		const struct component_config *cc =
		        component_config_find(cfg->components, cfg->ncomponents, r->domain);
		if (cc == NULL || !cc->disco)
			continue;
		struct xml_node *item = xml_add_child(query, "item", NULL);
		xml_set_attr(item, "jid", r->domain);
		if (cc->name != NULL)
			xml_set_attr(item, "name", cc->name);
	}
	(void)h;
}
