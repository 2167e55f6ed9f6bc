/*
 * The auth section of the configuration ("auth:" at the top level,
 * overridden key by key under a host, with its ldap, external and pam
 * sub-maps): its settings, tables and checks.  server/config.c assembles
 * it into each host's configuration.  Runs where the configuration is
 * loaded (the loop thread, parleyctl).
 */
#ifndef PARLEY_AUTH_CONFIG_H
#define PARLEY_AUTH_CONFIG_H

#include "lib/options.h"
#include "lib/ldap-client.h" /* struct ldap_config: auth.ldap */

/* auth.external: an operator's program speaking the port protocol. */
struct auth_external_config {
	char *program;       /* absolute path (required with method external) */
	struct strlist args; /* extra arguments */
	unsigned instances;  /* processes in the pool (default 1) */
	double timeout;      /* per request (default 5 s) */
	unsigned queue_max;  /* requests waiting for an instance (default 100) */
	double cache_ttl;    /* positive answers cached this long (default 0: off) */
	double restart_max;  /* longest wait between restarts (default 30 s) */
};

/* auth.pam: PAM in helper processes. */
struct auth_pam_config {
	char *service;         /* PAM service name (default "parley") */
	char *helper;          /* helper program (default: the installed parley-pam-helper) */
	unsigned instances;    /* helper processes (default 1) */
	unsigned max_requests; /* a helper is replaced after this many requests (default 1000) */
	double timeout;        /* per request (default 10 s) */
	bool account_check;    /* user_exists through pam_acct_mgmt (default true) */
};

struct auth_config {
	struct strlist methods;           /* "internal" (default); tried in order */
	unsigned scram_iterations;        /* for new credentials (default 4096) */
	const struct cfg_node *ldap_node; /* the "ldap" map as written */
	struct ldap_config ldap;
	bool store_plain;               /* internal: keep clear passwords (legacy migrations; off) */
	bool reveal_missing_scram_keys; /* <invalid-mechanism/> for a hash without keys (off) */
	double scram_cache_ttl;         /* keep SCRAM keys of ldap/pam/external users this long (0: off) */
	unsigned max_failures_per_ip;   /* failed logins per IP within failure_window (0: no limit) */
	unsigned max_failures_per_user; /* failed logins per account within failure_window (0: no limit) */
	double failure_window;          /* the counting window (default 10 min) */
	struct auth_external_config external;
	struct auth_pam_config pam;
	const struct cfg_node *external_node, *pam_node; /* the sub-maps as written */
};

/* The built-in defaults. */
void auth_config_defaults(struct auth_config *a);
/* Apply the auth map (and its ldap, external and pam maps) over what a
 * holds (the defaults, or the global section for a host), check it and make
 * its paths absolute relative to dir.  is_host: a holds a host's effective
 * settings (the global section may leave out what every host then gives,
 * such as ldap.base or external.program).  section names the map in
 * messages ("auth", "hosts.NAME.auth"); fallback is where a message points
 * when the map is absent.  -1 and a malloc'd *error_r naming file, line and
 * key; a is then freed by auth_config_free as usual. */
int auth_config_load(struct auth_config *a, const struct cfg_node *map, const struct cfg_node *fallback,
                     const char *section, const char *dir, bool is_host, char **error_r);
void auth_config_copy(struct auth_config *dst, const struct auth_config *src);
void auth_config_free(struct auth_config *a);
/* The effective options, the sub-maps as "ldap:", "external:", "pam:"
 * (passwords never shown). */
void auth_config_dump(const struct auth_config *a, struct buf *out, int indent);

#endif
