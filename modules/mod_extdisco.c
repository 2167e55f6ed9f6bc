/*
 * mod_extdisco: external service discovery (XEP-0215, urn:xmpp:extdisco:2).
 * The operator lists STUN and TURN servers; a local user asks the server
 * JID for them (<services/>, optionally of one type) or for the
 * credentials of one (<credentials/>), and gets each with time-limited
 * credentials where the service has a shared secret.  Loop thread.
 *
 * Credentials follow the shared-secret scheme of the TURN REST API that
 * coturn (use-auth-secret, static-auth-secret) and eturnal accept:
 * username "<expiry unix time>:<user bare JID>", password
 * base64(HMAC-SHA1(secret, username)), valid until the expiry (now + ttl).
 * The TURN server recomputes the password from the username: nothing is
 * stored and nothing is sent to it.
 *
 * Invariants: only accounts of this host get an answer (others get
 * <forbidden/>); the services are parsed from the options at start into
 * the module's own copy, and their secrets are wiped at stop; a secret is
 * never logged.
 */
#include "builtin.h"
#include "server/host.h"
#include "server/server.h"
#include "lib/log.h"

#include <inttypes.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NS_EXTDISCO "urn:xmpp:extdisco:2"

struct extdisco_settings {
	const struct cfg_node *services;
};

static const struct opt_def extdisco_options[] = {
	{ "services", OPT_NODE, offsetof(struct extdisco_settings, services), NULL, NULL, 0, 0,
	  "the STUN and TURN services offered: a list of maps {type, host, port, transport, secret, "
	  "ttl, restricted, name} (see the options of one service)" },
	OPT_END
};

static const char *const service_types[] = { "stun", "turn", "stuns", "turns", NULL };
static const char *const transports[] = { "udp", "tcp", NULL };

/* One service as configured. */
struct ext_service {
	int type;      /* index into service_types */
	char *host;    /* host name or address */
	unsigned port; /* 0: the default of the type (3478, 5349 for stuns/turns) */
	int transport; /* index into transports */
	char *secret;  /* shared secret for credentials, or NULL */
	double ttl;    /* seconds credentials stay valid */
	bool restricted;
	char *name; /* shown to users, or NULL */
};

static const struct opt_def service_options[] = {
	{ "type", OPT_ENUM, offsetof(struct ext_service, type), "turn", service_types, 0, 0,
	  "stun, turn, stuns or turns" },
	{ "host", OPT_STRING, offsetof(struct ext_service, host), NULL, NULL, 0, 0,
	  "the service's host name or address (required)" },
	{ "port", OPT_UINT, offsetof(struct ext_service, port), "0", NULL, 0, 65535,
	  "the service's port (0: 3478, or 5349 for stuns and turns)" },
	{ "transport", OPT_ENUM, offsetof(struct ext_service, transport), "udp", transports, 0, 0,
	  "udp or tcp" },
	{ "secret", OPT_STRING, offsetof(struct ext_service, secret), NULL, NULL, 0, 0,
	  "the shared secret of the TURN REST API scheme (coturn static-auth-secret): users get "
	  "time-limited credentials; none: no credentials" },
	{ "ttl", OPT_DURATION, offsetof(struct ext_service, ttl), "86400", NULL, 0, 0,
	  "how long credentials stay valid" },
	{ "restricted", OPT_BOOL, offsetof(struct ext_service, restricted), "false", NULL, 0, 0,
	  "marks the service restricted='1': clients must use the credentials" },
	{ "name", OPT_STRING, offsetof(struct ext_service, name), NULL, NULL, 0, 0,
	  "a name for the service shown to users" },
	OPT_END
};

struct extdisco_state {
	struct host *host;
	struct ext_service *services;
	size_t count;
};

static void services_free(struct ext_service *sv, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (sv[i].secret != NULL)
			explicit_bzero(sv[i].secret, strlen(sv[i].secret));
		opt_free(service_options, &sv[i]);
	}
	free(sv);
}

/* The services of the option (a non-empty list of maps) into a malloc'd
 * array; -1 with *error_r naming the position. */
static int services_parse(const struct cfg_node *list, const char *section, struct ext_service **sv_r,
                          size_t *n_r, char **error_r)
{
	*sv_r = NULL;
	*n_r = 0;
	if (list == NULL || cfg_is_null(list) || list->type != CFG_LIST || list->children == NULL) {
		if (list == NULL || cfg_is_null(list))
			*error_r =
			        xasprintf("%s: key 'services': extdisco needs at least one service", section);
		else if (list->type != CFG_LIST)
			*error_r = cfg_error_at(list, section, "services", "a list of services is expected");
		else
			*error_r = cfg_error_at(list, section, "services",
			                        "extdisco needs at least one service");
		return -1;
	}
	size_t n = 0;
	for (const struct cfg_node *c = list->children; c != NULL; c = c->next)
		n++;
	struct ext_service *sv = xcalloc(n, sizeof(*sv));
	size_t i = 0;
	for (const struct cfg_node *c = list->children; c != NULL; c = c->next, i++) {
		char *where = xasprintf("%s.services[%zu]", section, i);
		int rc = 0;
		if (c->type != CFG_MAP) {
			*error_r = cfg_error_at(c, section, "services", "a service is a map");
			rc = -1;
		} else if (opt_apply(service_options, c, where, &sv[i], error_r) < 0) {
			rc = -1;
		} else if (sv[i].host == NULL || sv[i].host[0] == '\0') {
			*error_r = cfg_error_at(c, where, "host", "a service needs a host");
			rc = -1;
		} else if (sv[i].secret != NULL && sv[i].secret[0] == '\0') {
			*error_r = cfg_error_at(c, where, "secret", "an empty secret");
			rc = -1;
		}
		free(where);
		if (rc < 0) {
			services_free(sv, i + 1);
			return -1;
		}
		if (sv[i].port == 0)
			sv[i].port = sv[i].type == 2 || sv[i].type == 3 ? 5349 : 3478;
	}
	*sv_r = sv;
	*n_r = n;
	return 0;
}

/* ---- answers ------------------------------------------------------------------ */

/* Add the <service/> of sv to parent, with credentials for user (a bare
 * JID) when sv has a secret. */
static void add_service(struct xml_node *parent, const struct ext_service *sv, const char *user)
{
	struct xml_node *el = xml_add_child(parent, "service", NS_EXTDISCO);
	char port[8];
	snprintf(port, sizeof(port), "%u", sv->port);
	xml_set_attr(el, "type", service_types[sv->type]);
	xml_set_attr(el, "host", sv->host);
	xml_set_attr(el, "port", port);
	xml_set_attr(el, "transport", transports[sv->transport]);
	if (sv->name != NULL)
		xml_set_attr(el, "name", sv->name);
	if (sv->restricted)
		xml_set_attr(el, "restricted", "1");
	if (sv->secret == NULL)
		return;
	int64_t expiry = (int64_t)ev_now(server.loop) + (int64_t)sv->ttl;
	char *username = xasprintf("%" PRId64 ":%s", expiry, user);
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned maclen = 0;
	HMAC(EVP_sha1(), sv->secret, (int)strlen(sv->secret), (const unsigned char *)username,
	     strlen(username), mac, &maclen);
	char *password = base64_encode(mac, maclen);
	explicit_bzero(mac, sizeof(mac));
	char expires[XEP82_STAMP_LEN];
	xep82_stamp(expires, expiry);
	xml_set_attr(el, "username", username);
	xml_set_attr(el, "password", password);
	xml_set_attr(el, "expires", expires);
	explicit_bzero(password, strlen(password));
	free(password);
	free(username);
}

static void extdisco_iq(struct iq_request *req, void *ctx)
{
	struct extdisco_state *st = ctx;
	if (req->from.node == NULL || strcmp(req->from.domain, st->host->name) != 0) {
		iq_error(req, SE_FORBIDDEN, "external services are for the accounts of this server");
		return;
	}
	if (strcmp(req->type, "get") != 0) {
		iq_error(req, SE_BAD_REQUEST, NULL);
		return;
	}
	char *user = jid_bare_string(&req->from);
	if (xml_is(req->payload, "services", NS_EXTDISCO)) {
		const char *type = xml_attr(req->payload, "type");
		struct xml_node *el = iq_payload_new("services", NS_EXTDISCO);
		if (type != NULL)
			xml_set_attr(el, "type", type);
		for (size_t i = 0; i < st->count; i++)
			if (type == NULL || strcmp(type, service_types[st->services[i].type]) == 0)
				add_service(el, &st->services[i], user);
		iq_result(req, el);
		xml_unref(&el);
	} else if (xml_is(req->payload, "credentials", NS_EXTDISCO)) {
		/* XEP-0215 §3.3: the services named (by host, and type or port
		 * when given) that have credentials. */
		struct xml_node *el = iq_payload_new("credentials", NS_EXTDISCO);
		bool asked = false, found = false;
		for (struct xml_node *q = xml_child(req->payload, "service", NS_EXTDISCO); q != NULL;
		     q = xml_next(q, "service", NS_EXTDISCO)) {
			asked = true;
			const char *host = xml_attr(q, "host");
			const char *type = xml_attr(q, "type");
			const char *port = xml_attr(q, "port");
			for (size_t i = 0; host != NULL && i < st->count; i++) {
				const struct ext_service *sv = &st->services[i];
				if (sv->secret == NULL || strcmp(host, sv->host) != 0 ||
				    (type != NULL && strcmp(type, service_types[sv->type]) != 0) ||
				    (port != NULL && strtoul(port, NULL, 10) != sv->port))
					continue;
				add_service(el, sv, user);
				found = true;
			}
		}
		if (!asked)
			iq_error(req, SE_BAD_REQUEST, "name a service");
		else if (!found)
			iq_error(req, SE_ITEM_NOT_FOUND, "no such service with credentials");
		else
			iq_result(req, el);
		xml_unref(&el);
	} else {
		iq_error(req, SE_BAD_REQUEST, NULL);
	}
	free(user);
}

/* ---- module -------------------------------------------------------------------- */

static const struct builtin_iq extdisco_iqs[] = {
	{ IQ_SCOPE_SERVER, NS_EXTDISCO, IQ_NO_QUEUE, extdisco_iq },
};

static const struct builtin_parts extdisco_parts = {
	.iqs = extdisco_iqs,
	.niqs = ARRAY_SIZE(extdisco_iqs),
	.feature = NS_EXTDISCO,
};

static int extdisco_check(const struct host_config *hc, const void *settings, const struct cfg_node *opts,
                          const char *section, char **error_r)
{
	(void)hc;
	(void)opts;
	const struct extdisco_settings *set = settings;
	struct ext_service *sv;
	size_t n;
	if (services_parse(set->services, section, &sv, &n, error_r) < 0)
		return -1;
	services_free(sv, n);
	return 0;
}

static int extdisco_start(struct host *h, const void *settings, void **state_r, char **error_r)
{
	const struct extdisco_settings *set = settings;
	struct extdisco_state *st = xcalloc(1, sizeof(*st));
	st->host = h;
	char *section = xasprintf("hosts.%s.modules.extdisco", h->name);
	int rc = services_parse(set->services, section, &st->services, &st->count, error_r);
	free(section);
	if (rc < 0 || builtin_parts_add(h, &extdisco_parts, st, error_r) < 0) {
		services_free(st->services, st->count);
		free(st);
		return -1;
	}
	*state_r = st;
	return 0;
}

static void extdisco_stop(struct host *h, void *state)
{
	struct extdisco_state *st = state;
	builtin_parts_remove(h, &extdisco_parts, st);
	services_free(st->services, st->count);
	free(st);
}

const struct module_def mod_extdisco = {
	.name = "extdisco",
	.description = "STUN and TURN services with time-limited credentials (XEP-0215)",
	.options = extdisco_options,
	.settings_size = sizeof(struct extdisco_settings),
	.default_enabled = false,
	.check = extdisco_check,
	.start = extdisco_start,
	.stop = extdisco_stop,
};
