/*
 * The server's configuration, assembled: the top-level options (log,
 * pidfile, user, control socket), the sections read by their own tables
 * beside their subsystems (limits, listen and tls in server/listen-config.c,
 * storage in storage/storage-config.c, auth in auth/auth-config.c, the
 * components in server/component-config.c), the
 * hosts with their per-host overrides of storage, auth and tls, the module
 * maps merged per host, and config-dump.  The YAML reader and the option
 * engine are lib/cfg.c and lib/options.c.
 *
 * Thread: whoever calls (the loop thread at start-up and on reload, and
 * parleyctl).  Nothing here keeps global state.
 *
 * Invariants: a loaded configuration has at least one listener and one
 * host; each host holds its own copy of every section (the global values
 * with its overrides applied), so a host never points into another's
 * settings; host names are lower-case and unique; every error message
 * names file, line and key; on error nothing leaks.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "metrics.h"
#include "lib/log.h"

static char ascii_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* ---- the top level and the hosts' tables ---------------------------------- */

#define OFF(st, field) offsetof(struct st, field)

static const char *const loglevel_names[] = { "debug", "info", "notice", "warning", "error", NULL };
_Static_assert(LOG_LEVEL_DEBUG == 0 && LOG_LEVEL_ERROR == 4, "loglevel_names follows enum log_level");

/* The top level: plain options plus the sections, which are read by their
 * own tables (control and the hosts' below, the others beside their
 * subsystems). */
struct top_settings {
	int loglevel;
	char *log_file, *pidfile, *user, *group;
	double latency_threshold;
	bool latency_usage;
	const struct cfg_node *control, *limits, *compression, *shaper, *stream_management, *fast, *http,
	        *metrics, *http_api, *admin_web, *tls, *storage, *auth, *listen, *modules, *hosts,
	        *components, *s2s;
};

static const struct opt_def top_defs[] = {
	{ "loglevel", OPT_ENUM, OFF(top_settings, loglevel), "info", loglevel_names, 0, 0,
	  "least severe level logged: debug, info, notice, warning or error" },
	{ "log_file", OPT_STRING, OFF(top_settings, log_file), NULL, NULL, 0, 0,
	  "append log lines to this file (reopened on SIGHUP); unset: stderr" },
	{ "pidfile", OPT_STRING, OFF(top_settings, pidfile), NULL, NULL, 0, 0,
	  "write the daemon's process id here; unset: no pid file" },
	{ "user", OPT_STRING, OFF(top_settings, user), NULL, NULL, 0, 0,
	  "when started as root, switch to this user after binding the listeners" },
	{ "group", OPT_STRING, OFF(top_settings, group), NULL, NULL, 0, 0,
	  "when started as root, switch to this group (default: the user's primary group)" },
	{ "latency_threshold", OPT_DURATION, OFF(top_settings, latency_threshold), "20ms", NULL, 0, 0,
	  "log a warning when one event loop iteration is busy longer than this (naming the "
	  "callback class that used the time); 0: never" },
	{ "latency_usage", OPT_BOOL, OFF(top_settings, latency_usage), "false", NULL, 0, 0,
	  "give the loop thread's CPU time, blocking and preemption in the slowest iterations "
	  "(one getrusage call per iteration)" },
	{ "control", OPT_NODE, OFF(top_settings, control), NULL, NULL, 0, 0,
	  "the control socket (parleyctl)" },
	{ "limits", OPT_NODE, OFF(top_settings, limits), NULL, NULL, 0, 0,
	  "resource limits of every stream" },
	{ "compression", OPT_NODE, OFF(top_settings, compression), NULL, NULL, 0, 0,
	  "stream compression (XEP-0138) of client and s2s streams" },
	{ "shaper", OPT_NODE, OFF(top_settings, shaper), NULL, NULL, 0, 0,
	  "input rate limits per connection (traffic shaping)" },
	{ "stream_management", OPT_NODE, OFF(top_settings, stream_management), NULL, NULL, 0, 0,
	  "stream management (XEP-0198) of client streams" },
	{ "fast", OPT_NODE, OFF(top_settings, fast), NULL, NULL, 0, 0,
	  "FAST tokens (XEP-0484) of SASL2 logins" },
	{ "http", OPT_NODE, OFF(top_settings, http), NULL, NULL, 0, 0,
	  "HTTP listeners: limits, WebSocket, BOSH, host metadata" },
	{ "metrics", OPT_NODE, OFF(top_settings, metrics), NULL, NULL, 0, 0,
	  "Prometheus metrics at /metrics of the http listeners" },
	{ "http_api", OPT_NODE, OFF(top_settings, http_api), NULL, NULL, 0, 0,
	  "the HTTP admin API at /api/ of the http listeners" },
	{ "admin_web", OPT_NODE, OFF(top_settings, admin_web), NULL, NULL, 0, 0,
	  "web administration in the browser at /admin/ of the http listeners" },
	{ "tls", OPT_NODE, OFF(top_settings, tls), NULL, NULL, 0, 0, "TLS defaults for every host" },
	{ "storage", OPT_NODE, OFF(top_settings, storage), NULL, NULL, 0, 0,
	  "storage defaults for every host" },
	{ "auth", OPT_NODE, OFF(top_settings, auth), NULL, NULL, 0, 0,
	  "authentication defaults for every host" },
	{ "listen", OPT_NODE, OFF(top_settings, listen), NULL, NULL, 0, 0,
	  "listening sockets (a list, required)" },
	{ "modules", OPT_NODE, OFF(top_settings, modules), NULL, NULL, 0, 0,
	  "modules enabled on every host" },
	{ "hosts", OPT_NODE, OFF(top_settings, hosts), NULL, NULL, 0, 0, "the virtual hosts (required)" },
	{ "components", OPT_NODE, OFF(top_settings, components), NULL, NULL, 0, 0,
	  "external components (XEP-0114): domain -> secret and policy" },
	{ "s2s", OPT_NODE, OFF(top_settings, s2s), NULL, NULL, 0, 0,
	  "federation with other servers (server-to-server)" },
	OPT_END
};

static const struct opt_def control_defs[] = {
	{ "socket", OPT_STRING, OFF(parley_config, control_socket), "parley.sock", NULL, 0, 0,
	  "UNIX socket parleyctl talks to" },
	{ "mode", OPT_MODE, OFF(parley_config, control_mode), "0600", NULL, 0, 0,
	  "permissions of the socket (octal)" },
	{ "group", OPT_STRING, OFF(parley_config, control_group), NULL, NULL, 0, 0,
	  "group owner of the socket; unset: the daemon's group" },
	OPT_END
};

static const struct opt_def metrics_defs[] = {
	{ "enabled", OPT_BOOL, OFF(metrics_config, enabled), "false", NULL, 0, 0,
	  "serve /metrics (Prometheus text format) on every http listener" },
	{ "allow", OPT_STRLIST, OFF(metrics_config, allow), "127.0.0.0/8, ::1/128", NULL, 0, 0,
	  "addresses or CIDR blocks that may read /metrics (others get 403)" },
	{ "store_counts_interval", OPT_DURATION, OFF(metrics_config, store_counts_interval), "30s", NULL, 0,
	  0,
	  "registered users and offline messages per host are counted by the store at most this often "
	  "(off the loop, when /metrics is read)" },
	OPT_END
};

static const struct opt_def http_api_defs[] = {
	{ "enabled", OPT_BOOL, OFF(http_api_config, enabled), "false", NULL, 0, 0,
	  "serve the admin API (parleyctl's commands, JSON) at /api/ on every http listener" },
	{ "allow", OPT_STRLIST, OFF(http_api_config, allow), "127.0.0.0/8, ::1/128", NULL, 0, 0,
	  "addresses or CIDR blocks that may call the API (others get 403)" },
	{ "tokens_file", OPT_STRING, OFF(http_api_config, tokens_file), "api-tokens", NULL, 0, 0,
	  "the API's bearer tokens, SHA-256 hashed (parleyctl api-token-create writes it); "
	  "relative to the configuration file's folder" },
	OPT_END
};

static const struct opt_def admin_web_defs[] = {
	{ "enabled", OPT_BOOL, OFF(admin_web_config, enabled), "false", NULL, 0, 0,
	  "serve the web administration at /admin/ on every http listener (use it over TLS)" },
	{ "hosts", OPT_STRLIST, OFF(admin_web_config, hosts), NULL, NULL, 0, 0,
	  "the hosts whose admins (hosts.HOST.admins) may log in; empty: every host's" },
	{ "allow", OPT_STRLIST, OFF(admin_web_config, allow), "127.0.0.0/8, ::1/128", NULL, 0, 0,
	  "addresses or CIDR blocks that may open the pages (others get 403)" },
	{ "session_timeout", OPT_DURATION, OFF(admin_web_config, session_timeout), "30m", NULL, 0, 0,
	  "a login session ends after this long without a request" },
	OPT_END
};

/* Every entry of an allow list is an address or a CIDR block. */
static int check_allow(const struct strlist *allow, const struct cfg_node *map, const struct cfg_node *root,
                       const char *section, char **error_r)
{
	for (size_t i = 0; i < allow->count; i++) {
		if (!metrics_cidr_check(allow->items[i])) {
			*error_r = cfg_error_for_key(map, root, section, "allow",
			                             "'%s' is not an address or a CIDR block (192.0.2.0/24, "
			                             "2001:db8::/32)",
			                             allow->items[i]);
			return -1;
		}
	}
	return 0;
}

/* What a host may say; storage, auth and tls go over the global values. */
struct host_settings {
	const struct cfg_node *storage, *auth, *tls, *modules;
	struct strlist admins;
};

static const struct opt_def host_defs[] = {
	{ "storage", OPT_NODE, OFF(host_settings, storage), NULL, NULL, 0, 0,
	  "storage options over the global ones" },
	{ "auth", OPT_NODE, OFF(host_settings, auth), NULL, NULL, 0, 0, "auth options over the global ones" },
	{ "tls", OPT_NODE, OFF(host_settings, tls), NULL, NULL, 0, 0, "tls options over the global ones" },
	{ "admins", OPT_STRLIST, OFF(host_settings, admins), NULL, NULL, 0, 0,
	  "bare JIDs with administrative rights on this host" },
	{ "modules", OPT_NODE, OFF(host_settings, modules), NULL, NULL, 0, 0,
	  "modules merged over the global ones (name: false disables one)" },
	OPT_END
};

/* The section name for messages: "storage" or "hosts.example.com.storage". */
static char *section_name(const char *host, const char *section)
{
	return host != NULL ? xasprintf("hosts.%s.%s", host, section) : xstrdup(section);
}

/* The directory relative paths are taken from: the config file's, made
 * absolute so that a later chdir changes nothing. */
static char *config_dir(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir;
	if (slash == NULL)
		dir = xstrdup(".");
	else if (slash == path)
		dir = xstrdup("/");
	else
		dir = xstrndup(path, (size_t)(slash - path));
	char *real = realpath(dir, NULL);
	if (real == NULL)
		return dir;
	free(dir);
	return real;
}

/* Make *p absolute (relative to dir); NULL stays NULL, "" is an error. */

/* ---- hosts and modules -------------------------------------------------- */

/* Lower-case a host name and check it as a domain: dot-separated labels of
 * 1..63 bytes, each byte a letter, digit, hyphen or non-ASCII (UTF-8).  The
 * JID code applies nameprep later.  One trailing dot is dropped. */
static int host_name_prepare(const char *in, char **out_r, const char **why_r)
{
	size_t len = strlen(in);
	if (len > 0 && in[len - 1] == '.')
		len--;
	if (len == 0) {
		*why_r = "empty host name";
		return -1;
	}
	if (len > 1023) {
		*why_r = "host name longer than 1023 bytes";
		return -1;
	}
	if (!utf8_valid(in, len)) {
		*why_r = "host name is not valid UTF-8";
		return -1;
	}
	char *name = xstrndup(in, len);
	size_t label = 0;
	for (size_t i = 0; i <= len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c == '.' || c == '\0') {
			if (label == 0 || label > 63) {
				*why_r = label == 0 ? "empty label in host name"
				                    : "label longer than 63 bytes in host name";
				free(name);
				return -1;
			}
			label = 0;
			continue;
		}
		name[i] = ascii_lower((char)c);
		c = (unsigned char)name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c >= 0x80)) {
			*why_r = "host names are made of letters, digits, hyphens and dots";
			free(name);
			return -1;
		}
		label++;
	}
	*out_r = name;
	return 0;
}

/* A module entry: a map of options, null (no options), true or false. */
static int check_modules(const struct cfg_node *mods, const char *section, char **error_r)
{
	if (cfg_is_null(mods))
		return 0;
	if (mods->type != CFG_MAP) {
		*error_r = cfg_error_at(mods, NULL, section,
		                        "expected a map of module name to options, got %s", cfg_kind(mods));
		return -1;
	}
	for (const struct cfg_node *c = mods->children; c != NULL; c = c->next) {
		bool b;
		if (c->type == CFG_MAP || cfg_is_null(c))
			continue;
		if (c->type == CFG_SCALAR && !c->quoted && opt_parse_bool(c->value, &b) == 0)
			continue;
		char *v = c->type == CFG_SCALAR ? cfg_value_for_msg(c->value) : NULL;
		if (v != NULL)
			*error_r = cfg_error_at(
			        c, section, c->key,
			        "expected a map of module options, nothing, or false; got '%s'", v);
		else
			*error_r = cfg_error_at(c, section, c->key,
			                        "expected a map of module options, nothing, or false; got %s",
			                        cfg_kind(c));
		free(v);
		return -1;
	}
	return 0;
}

/* The merged copy of one entry: "false" for a disabled module, null for
 * enabled without options, else the options map. */
static struct cfg_node *module_entry_copy(const struct cfg_node *e, const char *file)
{
	bool b = true;
	if (e->type == CFG_SCALAR) {
		struct cfg_node *c = cfg_node_new(CFG_SCALAR, file, e->line, e->column);
		c->key_line = e->key_line;
		c->key_column = e->key_column;
		c->key = xstrdup(e->key);
		if (!cfg_is_null(e))
			(void)opt_parse_bool(e->value, &b);
		c->value = xstrdup(b ? "" : "false");
		return c;
	}
	return cfg_node_copy(e, file);
}

/* global's entries, each replaced by the host's entry of the same name,
 * then the host's other entries. */
static struct cfg_node *modules_merge(const struct cfg_node *global, const struct cfg_node *host,
                                      const struct cfg_node *pos)
{
	char *file = xstrdup(pos->file);
	const struct cfg_node *where = !cfg_is_null(host) ? host : !cfg_is_null(global) ? global : pos;
	struct cfg_node *root = cfg_node_new(CFG_MAP, file, where->line, where->column);
	struct cfg_node **tail = &root->children;
	if (!cfg_is_null(global)) {
		for (const struct cfg_node *g = global->children; g != NULL; g = g->next) {
			const struct cfg_node *h = cfg_get(host, g->key);
			*tail = module_entry_copy(h != NULL ? h : g, file);
			tail = &(*tail)->next;
		}
	}
	if (!cfg_is_null(host)) {
		for (const struct cfg_node *h = host->children; h != NULL; h = h->next) {
			if (cfg_get(global, h->key) != NULL)
				continue;
			*tail = module_entry_copy(h, file);
			tail = &(*tail)->next;
		}
	}
	return root;
}

static bool module_disabled(const struct cfg_node *n)
{
	return n->type == CFG_SCALAR && !n->quoted && strcmp(n->value, "false") == 0;
}

const struct cfg_node *config_module(const struct host_config *host, const char *module, bool *enabled_r)
{
	const struct cfg_node *n = cfg_get(host->modules, module);
	bool enabled = n != NULL && !module_disabled(n);
	if (enabled_r != NULL)
		*enabled_r = enabled;
	if (!enabled || n->type != CFG_MAP || n->children == NULL)
		return NULL;
	return n;
}

const struct host_config *config_host(const struct parley_config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->nhosts; i++)
		if (strcasecmp(cfg->hosts[i].name, name) == 0)
			return &cfg->hosts[i];
	return NULL;
}

/* ---- the whole file ------------------------------------------------------ */

struct globals {
	struct storage_config storage;
	struct auth_config auth;
	struct tls_config tls;
};

static int load_globals(struct globals *g, const struct top_settings *top, const struct cfg_node *root,
                        const char *dir, char **error_r)
{
	storage_config_defaults(&g->storage);
	if (storage_config_load(&g->storage, top->storage, root, "storage", dir, error_r) < 0)
		return -1;
	auth_config_defaults(&g->auth);
	if (auth_config_load(&g->auth, top->auth, root, "auth", dir, false, error_r) < 0)
		return -1;
	tls_config_defaults(&g->tls);
	if (tls_config_load(&g->tls, top->tls, root, "tls", dir, error_r) < 0)
		return -1;
	return check_modules(top->modules, "modules", error_r);
}

static void globals_free(struct globals *g)
{
	storage_config_free(&g->storage);
	auth_config_free(&g->auth);
	tls_config_free(&g->tls);
}

/* One host: h->name and h->node are set; the rest is filled here. */
static int load_host(struct host_config *h, const struct cfg_node *entry, const struct globals *g,
                     const struct top_settings *top, const char *dir, char **error_r)
{
	struct host_settings hs;
	char *sec_host = xasprintf("hosts.%s", h->name);
	char *sec_storage = section_name(h->name, "storage");
	char *sec_auth = section_name(h->name, "auth");
	char *sec_tls = section_name(h->name, "tls");
	char *sec_modules = section_name(h->name, "modules");
	int ret = -1;

	/* The copies first, so that config_free finds something to free
	 * whatever fails below. */
	storage_config_copy(&h->storage, &g->storage);
	auth_config_copy(&h->auth, &g->auth);
	tls_config_copy(&h->tls, &g->tls);

	if (entry != NULL && !cfg_is_null(entry) && entry->type != CFG_MAP) {
		char *v = entry->type == CFG_SCALAR ? cfg_value_for_msg(entry->value) : NULL;
		if (v != NULL)
			*error_r = cfg_error_at(entry, NULL, sec_host,
			                        "expected a map of host options, got '%s'", v);
		else
			*error_r = cfg_error_at(entry, NULL, sec_host,
			                        "expected a map of host options, got %s", cfg_kind(entry));
		free(v);
		goto out;
	}
	if (opt_apply(host_defs, entry, sec_host, &hs, error_r) < 0)
		goto out;
	h->admins = hs.admins;
	hs.admins.items = NULL;
	hs.admins.count = 0;
	for (size_t i = 0; i < h->admins.count; i++) {
		const char *a = h->admins.items[i];
		if (*a == '\0' || strchr(a, '/') != NULL || strchr(a, ' ') != NULL) {
			*error_r = cfg_error_for_key(entry, h->node, sec_host, "admins",
			                             "'%s' is not a bare JID", a);
			goto out;
		}
	}
	if (storage_config_load(&h->storage, hs.storage, h->node, sec_storage, dir, error_r) < 0 ||
	    auth_config_load(&h->auth, hs.auth, h->node, sec_auth, dir, true, error_r) < 0 ||
	    tls_config_load(&h->tls, hs.tls, h->node, sec_tls, dir, error_r) < 0)
		goto out;
	if (check_modules(hs.modules, sec_modules, error_r) < 0)
		goto out;
	h->modules = modules_merge(top->modules, hs.modules, h->node);
	ret = 0;
out:
	free(sec_host);
	free(sec_storage);
	free(sec_auth);
	free(sec_tls);
	free(sec_modules);
	return ret;
}

static int load_hosts(struct parley_config *cfg, const struct top_settings *top, const struct globals *g,
                      const char *dir, char **error_r)
{
	const struct cfg_node *hosts = top->hosts;
	if (cfg_is_null(hosts)) {
		*error_r = cfg_error_at(cfg->root, NULL, "hosts", "required (at least one virtual host)");
		return -1;
	}
	if (hosts->type == CFG_SCALAR) {
		*error_r = cfg_error_at(
		        hosts, NULL, "hosts",
		        "expected a map of host names to options, or a list of host names; got %s",
		        cfg_kind(hosts));
		return -1;
	}
	if (hosts->children == NULL) {
		*error_r = cfg_error_at(hosts, NULL, "hosts", "at least one virtual host is required, got %s",
		                        hosts->type == CFG_MAP ? "an empty map" : "an empty list");
		return -1;
	}
	size_t count = 0;
	for (const struct cfg_node *c = hosts->children; c != NULL; c = c->next)
		count++;
	cfg->hosts = xcalloc(count, sizeof(*cfg->hosts));
	cfg->nhosts = count;
	size_t i = 0;
	for (const struct cfg_node *c = hosts->children; c != NULL; c = c->next, i++) {
		struct host_config *h = &cfg->hosts[i];
		const char *raw;
		const struct cfg_node *entry;
		if (hosts->type == CFG_MAP) {
			raw = c->key;
			entry = c;
		} else {
			if (c->type != CFG_SCALAR || cfg_is_null(c)) {
				*error_r = cfg_error_at(c, NULL, "hosts", "expected a host name, got %s",
				                        cfg_kind(c));
				return -1;
			}
			raw = c->value;
			entry = NULL;
		}
		const char *why;
		if (host_name_prepare(raw, &h->name, &why) < 0) {
			char *v = cfg_value_for_msg(raw);
			*error_r = cfg_error_at_key(c, NULL, "hosts", "'%s': %s", v, why);
			free(v);
			return -1;
		}
		h->node = c;
		for (size_t k = 0; k < i; k++) {
			if (strcmp(cfg->hosts[k].name, h->name) == 0) {
				*error_r = cfg_error_at_key(c, NULL, "hosts",
				                            "duplicate host '%s' (first at line %u)", h->name,
				                            cfg->hosts[k].node->key_line);
				return -1;
			}
		}
		if (load_host(h, entry, g, top, dir, error_r) < 0)
			return -1;
	}
	return 0;
}

int config_load(const char *path, struct parley_config **cfg_r, char **error_r)
{
	struct parley_config *cfg = xcalloc(1, sizeof(*cfg));
	struct top_settings top;
	struct globals g;
	char *dir = NULL;
	int ret = -1;

	memset(&g, 0, sizeof(g));
	*cfg_r = NULL;
	cfg->file = xstrdup(path);
	struct strlist *old_sink = opt_set_warning_sink(&cfg->warnings);
	if (cfg_load_file(path, &cfg->root, error_r) < 0)
		goto out_nodir;
	if (cfg_is_null(cfg->root)) {
		/* "---" and nothing else: no keys at all. */
		const char *file = cfg->root->file;
		cfg->root->file = NULL;
		cfg_free(&cfg->root);
		cfg->root = cfg_node_new(CFG_MAP, file, 1, 1);
	}
	if (cfg->root->type != CFG_MAP) {
		*error_r = cfg_error_at(cfg->root, NULL, NULL, "the top level must be a map, got %s",
		                        cfg_kind(cfg->root));
		goto out_nodir;
	}
	dir = config_dir(path);
	if (opt_apply(top_defs, cfg->root, NULL, &top, error_r) < 0)
		goto out;
	cfg->loglevel = xstrdup(loglevel_names[top.loglevel]);
	cfg->log_file = top.log_file;
	cfg->pidfile = top.pidfile;
	cfg->user = top.user;
	cfg->group = top.group;
	cfg->latency_threshold = top.latency_threshold;
	cfg->latency_usage = top.latency_usage;
	if (cfg_resolve_path(&cfg->log_file, dir, cfg->root, cfg->root, NULL, "log_file", error_r) < 0 ||
	    cfg_resolve_path(&cfg->pidfile, dir, cfg->root, cfg->root, NULL, "pidfile", error_r) < 0)
		goto out;
	if (opt_apply(control_defs, top.control, "control", cfg, error_r) < 0 ||
	    cfg_resolve_path(&cfg->control_socket, dir, top.control, cfg->root, "control", "socket",
	                     error_r) < 0)
		goto out;
	if (limits_config_load(&cfg->limits, top.limits, cfg->root, error_r) < 0)
		goto out;
	if (compression_config_load(&cfg->compression, top.compression, error_r) < 0 ||
	    shaper_config_load(&cfg->shaper, top.shaper, error_r) < 0)
		goto out;
	if (stream_mgmt_config_load(&cfg->stream_management, top.stream_management, cfg->root, error_r) < 0)
		goto out;
	if (fast_config_load(&cfg->fast, top.fast, cfg->root, dir, error_r) < 0)
		goto out;
	if (s2s_config_load(&cfg->s2s, top.s2s, cfg->root, dir, error_r) < 0)
		goto out;
	if (http_config_load(&cfg->http, top.http, cfg->root, error_r) < 0)
		goto out;
	if (opt_apply(metrics_defs, top.metrics, "metrics", &cfg->metrics, error_r) < 0 ||
	    check_allow(&cfg->metrics.allow, top.metrics, cfg->root, "metrics", error_r) < 0)
		goto out;
	if (opt_apply(http_api_defs, top.http_api, "http_api", &cfg->http_api, error_r) < 0 ||
	    check_allow(&cfg->http_api.allow, top.http_api, cfg->root, "http_api", error_r) < 0 ||
	    cfg_resolve_path(&cfg->http_api.tokens_file, dir, top.http_api, cfg->root, "http_api",
	                     "tokens_file", error_r) < 0)
		goto out;
	if (opt_apply(admin_web_defs, top.admin_web, "admin_web", &cfg->admin_web, error_r) < 0 ||
	    check_allow(&cfg->admin_web.allow, top.admin_web, cfg->root, "admin_web", error_r) < 0)
		goto out;
	if (listen_config_load(&cfg->listen, &cfg->nlisten, top.listen, cfg->root, error_r) < 0)
		goto out;
	if (load_globals(&g, &top, cfg->root, dir, error_r) < 0)
		goto out;
	if (load_hosts(cfg, &top, &g, dir, error_r) < 0)
		goto out;
	if (component_config_load(&cfg->components, &cfg->ncomponents, top.components, dir, error_r) < 0)
		goto out;
	for (size_t i = 0; i < cfg->ncomponents; i++) {
		const struct component_config *c = &cfg->components[i];
		if (config_host(cfg, c->domain) != NULL) {
			*error_r = cfg_error_at_key(
			        c->node, NULL, "components",
			        "'%s' is a virtual host; a component needs a domain of its own", c->domain);
			goto out;
		}
	}
	ret = 0;
out:
	free(dir);
	globals_free(&g);
out_nodir:
	opt_set_warning_sink(old_sink);
	if (ret < 0)
		config_free(&cfg);
	*cfg_r = cfg;
	return ret;
}

void config_free(struct parley_config **cfgp)
{
	struct parley_config *cfg = *cfgp;
	if (cfg == NULL)
		return;
	free(cfg->file);
	free(cfg->loglevel);
	free(cfg->log_file);
	free(cfg->pidfile);
	free(cfg->user);
	free(cfg->group);
	opt_free(control_defs, cfg);
	listen_config_free_all(&cfg->listen, cfg->nlisten);
	fast_config_free(&cfg->fast);
	s2s_config_free(&cfg->s2s);
	http_config_free(&cfg->http);
	opt_free(metrics_defs, &cfg->metrics);
	opt_free(http_api_defs, &cfg->http_api);
	opt_free(admin_web_defs, &cfg->admin_web);
	for (size_t i = 0; i < cfg->nhosts; i++) {
		struct host_config *h = &cfg->hosts[i];
		free(h->name);
		storage_config_free(&h->storage);
		auth_config_free(&h->auth);
		tls_config_free(&h->tls);
		strlist_free(&h->admins);
		cfg_free(&h->modules);
	}
	free(cfg->hosts);
	component_config_free_all(&cfg->components, cfg->ncomponents);
	cfg_free(&cfg->root);
	strlist_free(&cfg->warnings);
	xfree(cfgp);
}

/* ---- config-dump -------------------------------------------------------- */

static void dump_host(const struct host_config *h, struct buf *out, config_dump_modules_fn *modules)
{
	buf_append_str(out, "  ");
	opt_dump_scalar(out, h->name);
	buf_append_str(out, ":\n    storage:\n");
	storage_config_dump(&h->storage, out, 6);
	buf_append_str(out, "    auth:\n");
	auth_config_dump(&h->auth, out, 6);
	buf_append_str(out, "    tls:\n");
	tls_config_dump(&h->tls, out, 6);
	struct host_settings hs = { .admins = h->admins };
	const struct opt_def *admins = host_defs;
	while (strcmp(admins->key, "admins") != 0)
		admins++;
	const struct opt_def one[] = { *admins, OPT_END };
	opt_dump(one, &hs, out, 4);
	if (modules != NULL) {
		buf_append_str(out, "    modules:\n");
		modules(h, out, 6);
		return;
	}
	if (h->modules == NULL || h->modules->children == NULL) {
		buf_append_str(out, "    modules: {}\n");
		return;
	}
	buf_append_str(out, "    modules:\n");
	for (const struct cfg_node *m = h->modules->children; m != NULL; m = m->next) {
		buf_append_str(out, "      ");
		opt_dump_scalar(out, m->key);
		buf_append_str(out, ": ");
		if (module_disabled(m))
			buf_append_str(out, "false");
		else if (m->type == CFG_MAP)
			opt_dump_node(m, out);
		else
			buf_append_str(out, "{}");
		buf_append_str(out, "\n");
	}
}

void config_dump(const struct parley_config *cfg, const char *host, struct buf *out)
{
	config_dump_ex(cfg, host, out, NULL);
}

void config_dump_host(const struct host_config *h, struct buf *out, config_dump_modules_fn *modules)
{
	buf_append_str(out, "hosts:\n");
	dump_host(h, out, modules);
}

void config_dump_ex(const struct parley_config *cfg, const char *host, struct buf *out,
                    config_dump_modules_fn *modules)
{
	if (host != NULL) {
		const struct host_config *h = config_host(cfg, host);
		if (h == NULL) {
			buf_printf(out, "# no host '%s' in %s\n", host, cfg->file);
			return;
		}
		buf_printf(out, "# effective configuration of host %s (%s)\nhosts:\n", h->name, cfg->file);
		dump_host(h, out, modules);
		return;
	}
	buf_printf(out, "# effective configuration (%s)\n", cfg->file);
	struct top_settings top = {
		.loglevel = 1,
		.log_file = cfg->log_file,
		.pidfile = cfg->pidfile,
		.user = cfg->user,
		.group = cfg->group,
		.latency_threshold = cfg->latency_threshold,
		.latency_usage = cfg->latency_usage,
	};
	for (int i = 0; loglevel_names[i] != NULL; i++)
		if (cfg->loglevel != NULL && strcmp(cfg->loglevel, loglevel_names[i]) == 0)
			top.loglevel = i;
	for (const struct opt_def *d = top_defs; d->key != NULL; d++) {
		if (d->type == OPT_NODE)
			continue;
		const struct opt_def one[] = { *d, OPT_END };
		opt_dump(one, &top, out, 0);
	}
	buf_append_str(out, "control:\n");
	opt_dump(control_defs, cfg, out, 2);
	buf_append_str(out, "limits:\n");
	limits_config_dump(&cfg->limits, out, 2);
	buf_append_str(out, "compression:\n");
	compression_config_dump(&cfg->compression, out, 2);
	buf_append_str(out, "shaper:\n");
	shaper_config_dump(&cfg->shaper, out, 2);
	buf_append_str(out, "stream_management:\n");
	stream_mgmt_config_dump(&cfg->stream_management, out, 2);
	buf_append_str(out, "fast:\n");
	fast_config_dump(&cfg->fast, out, 2);
	buf_append_str(out, "s2s:\n");
	s2s_config_dump(&cfg->s2s, out, 2);
	buf_append_str(out, "http:\n");
	http_config_dump(&cfg->http, out, 2);
	buf_append_str(out, "metrics:\n");
	opt_dump(metrics_defs, &cfg->metrics, out, 2);
	buf_append_str(out, "http_api:\n");
	opt_dump(http_api_defs, &cfg->http_api, out, 2);
	buf_append_str(out, "admin_web:\n");
	opt_dump(admin_web_defs, &cfg->admin_web, out, 2);
	buf_append_str(out, "listen:\n");
	for (size_t i = 0; i < cfg->nlisten; i++)
		listen_config_dump(&cfg->listen[i], out, 2);
	buf_append_str(out, "hosts:\n");
	for (size_t i = 0; i < cfg->nhosts; i++)
		dump_host(&cfg->hosts[i], out, modules);
	if (cfg->ncomponents > 0)
		buf_append_str(out, "components:\n");
	for (size_t i = 0; i < cfg->ncomponents; i++)
		component_config_dump(&cfg->components[i], out, 2);
}
