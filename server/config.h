/*
 * The server's configuration: one YAML file (lib/cfg.h) whose sections are
 * read through option tables (lib/options.h) kept beside their subsystems:
 * limits, listen and tls (server/listen-config.h), storage
 * (storage/storage-config.h), auth (auth/auth-config.h); modules declare
 * their own tables (server/module.h).  Every error names the file, the
 * line and the key.  The same tables document the options.
 * Runs on the loop thread (start-up and reload) and in parleyctl.
 */
#ifndef PARLEY_CONFIG_H
#define PARLEY_CONFIG_H

#include "lib/util.h"
#include "lib/cfg.h"
#include "lib/options.h"
#include "server/listen-config.h"
#include "server/component-config.h"
#include "server/s2s-config.h"
#include "server/http-config.h"
#include "storage/storage-config.h"
#include "auth/auth-config.h"

/* ---- the server's configuration -------------------------------------- */

/* metrics: /metrics on the http listeners (server/metrics.c). */
struct metrics_config {
	bool enabled;
	struct strlist allow;         /* addresses or CIDR blocks that may scrape */
	double store_counts_interval; /* seconds: how old the store's counts may get */
};

/* http_api: the admin API at /api/ on the http listeners (ctl/http-api.c). */
struct http_api_config {
	bool enabled;
	struct strlist allow; /* addresses or CIDR blocks that may call it */
	char *tokens_file;    /* the bearer tokens, hashed ("api-tokens" beside the file) */
};

/* admin_web: web administration at /admin/ on the http listeners
 * (ctl/web-admin.c). */
struct admin_web_config {
	bool enabled;
	struct strlist hosts;   /* whose admins may log in; empty: every host's */
	struct strlist allow;   /* addresses or CIDR blocks that may open the pages */
	double session_timeout; /* seconds without a request before a session ends */
};

struct host_config {
	char *name;                    /* prepared domain */
	struct storage_config storage; /* global storage, overridden per host */
	struct auth_config auth;
	struct tls_config tls; /* global tls, overridden per host */
	struct strlist admins; /* bare JIDs */
	/* modules: map of module name -> options map; global "modules" with the
	 * host's "modules" merged over it (a host entry "name: false" disables). */
	struct cfg_node *modules;    /* owned (a merged copy) */
	const struct cfg_node *node; /* the host's map in the file */
};

struct parley_config {
	char *file;     /* path as given */
	char *loglevel; /* "info" */
	char *log_file; /* NULL: stderr */
	char *pidfile;
	char *user, *group;       /* drop privileges to these after binding */
	double latency_threshold; /* seconds; a loop iteration busy longer is logged; 0: never */
	bool latency_usage;       /* read the loop thread's CPU time and context switches */
	char *control_socket;     /* UNIX socket path for parleyctl */
	unsigned control_mode;    /* 0600 */
	char *control_group;      /* group owner of the socket (optional) */
	struct limits_config limits;
	struct compression_config compression;
	struct shaper_config shaper;
	struct stream_mgmt_config stream_management;
	struct fast_config fast;
	struct s2s_config s2s;
	struct http_config http;
	struct metrics_config metrics;
	struct http_api_config http_api;
	struct admin_web_config admin_web;
	struct listen_config *listen;
	size_t nlisten;
	struct host_config *hosts;
	size_t nhosts;
	struct component_config *components; /* external components (XEP-0114) */
	size_t ncomponents;
	struct cfg_node *root;
	struct strlist warnings; /* renamed or removed keys that were accepted */
};

/* Load and validate the whole file.  On error: -1 and a malloc'd message
 * naming file, line and key. */
int config_load(const char *path, struct parley_config **cfg_r, char **error_r);
void config_free(struct parley_config **cfg);
const struct host_config *config_host(const struct parley_config *cfg, const char *name);
/* Options map of a module for a host, or NULL when the module is not enabled. */
const struct cfg_node *config_module(const struct host_config *host, const char *module, bool *enabled_r);
/* Write the effective configuration (of one host or all) as YAML-ish text. */
void config_dump(const struct parley_config *cfg, const char *host, struct buf *out);
/* The same; each host's modules are written by modules (the module
 * registry knows their options and defaults) instead of as configured. */
typedef void config_dump_modules_fn(const struct host_config *h, struct buf *out, int indent);
void config_dump_ex(const struct parley_config *cfg, const char *host, struct buf *out,
                    config_dump_modules_fn *modules);
/* The "hosts:" entry of h alone (its storage, auth, tls, admins, modules). */
void config_dump_host(const struct host_config *h, struct buf *out, config_dump_modules_fn *modules);

#endif
