/*
 * The auth section: the option tables of auth and of its ldap, external and
 * pam maps (keys, defaults, docs), the checks the tables cannot express
 * (methods known and built, what each method needs), and the merging of a
 * host's section over the global one.  Runs where the configuration is
 * loaded (the loop thread at start-up and on reload, parleyctl); no state.
 *
 * Invariants: a loaded section lists at least one method, each once and
 * each built into this parleyd; a host's effective settings give what its
 * methods need (ldap.base, external.program, timeouts above 0); ldap has at
 * least one ldap:// or ldaps:// server and one uid attribute; paths are
 * absolute.
 */
#include <stddef.h>
#include <string.h>

#include "auth/auth-config.h"

#define OFF(st, field) offsetof(struct st, field)

static const struct opt_def auth_defs[] = {
	{ "methods", OPT_STRLIST, OFF(auth_config, methods), "internal", NULL, 0, 0,
	  "authentication backends, tried in order: internal, external, pam, ldap, anonymous" },
	{ "scram_iterations", OPT_UINT, OFF(auth_config, scram_iterations), "4096", NULL, 4096, 10000000,
	  "PBKDF2 iterations of newly stored SCRAM credentials" },
	{ "store_plain", OPT_BOOL, OFF(auth_config, store_plain), "false", NULL, 0, 0,
	  "internal: also keep clear passwords (legacy migrations only; a warning at start)" },
	{ "reveal_missing_scram_keys", OPT_BOOL, OFF(auth_config, reveal_missing_scram_keys), "false", NULL,
	  0, 0,
	  "answer a SCRAM hash the account has no keys for with <invalid-mechanism/> at once, which tells "
	  "anyone that the account exists; false: an exchange like an unknown user's" },
	{ "scram_cache_ttl", OPT_DURATION, OFF(auth_config, scram_cache_ttl), "0", NULL, 0, 0,
	  "ldap, pam, external: keep SCRAM keys derived from a password the method accepted (PLAIN) this "
	  "long and offer SCRAM-SHA-256; at most external.cache_ttl where that is set; 0: off, PLAIN only" },
	{ "max_failures_per_ip", OPT_UINT, OFF(auth_config, max_failures_per_ip), "0", NULL, 0, 1000000,
	  "failed logins from one IP address within failure_window before it is refused; 0: no limit" },
	{ "max_failures_per_user", OPT_UINT, OFF(auth_config, max_failures_per_user), "0", NULL, 0, 1000000,
	  "failed logins to one account within failure_window before it is refused; 0: no limit" },
	{ "failure_window", OPT_DURATION, OFF(auth_config, failure_window), "10m", NULL, 0, 0,
	  "how long failed logins are counted" },
	{ "external", OPT_NODE, OFF(auth_config, external_node), NULL, NULL, 0, 0,
	  "options of the external method" },
	{ "pam", OPT_NODE, OFF(auth_config, pam_node), NULL, NULL, 0, 0, "options of the pam method" },
	{ "ldap", OPT_NODE, OFF(auth_config, ldap_node), NULL, NULL, 0, 0,
	  "the directory: options of the ldap method and of LDAP vCards" },
	OPT_END
};

static const struct opt_def auth_external_defs[] = {
	{ "program", OPT_STRING, OFF(auth_external_config, program), NULL, NULL, 0, 0,
	  "the authentication program (port protocol on stdin/stdout)" },
	{ "args", OPT_STRLIST, OFF(auth_external_config, args), NULL, NULL, 0, 0,
	  "arguments given to the program" },
	{ "instances", OPT_UINT, OFF(auth_external_config, instances), "1", NULL, 1, 64,
	  "program processes run at once, one request in flight each" },
	{ "timeout", OPT_DURATION, OFF(auth_external_config, timeout), "5s", NULL, 0, 0,
	  "deadline of one request; a process that misses it is killed and replaced" },
	{ "queue_max", OPT_UINT, OFF(auth_external_config, queue_max), "100", NULL, 0, 1000000,
	  "requests waiting for a free process before new ones fail at once (temporary failure)" },
	{ "cache_ttl", OPT_DURATION, OFF(auth_external_config, cache_ttl), "0", NULL, 0, 0,
	  "keep positive answers this long (password answers as salted hashes); 0: no cache" },
	{ "restart_max", OPT_DURATION, OFF(auth_external_config, restart_max), "30s", NULL, 0, 0,
	  "longest wait before restarting a process that keeps failing (the wait doubles from 0.1 s)" },
	OPT_END
};

static const struct opt_def auth_pam_defs[] = {
	{ "service", OPT_STRING, OFF(auth_pam_config, service), "parley", NULL, 0, 0,
	  "PAM service name (/etc/pam.d/NAME)" },
	{ "helper", OPT_STRING, OFF(auth_pam_config, helper), NULL, NULL, 0, 0,
	  "the PAM helper program; unset: the installed parley-pam-helper" },
	{ "instances", OPT_UINT, OFF(auth_pam_config, instances), "1", NULL, 1, 64,
	  "helper processes run at once" },
	{ "max_requests", OPT_UINT, OFF(auth_pam_config, max_requests), "1000", NULL, 1, 100000000,
	  "a helper is replaced after this many requests" },
	{ "timeout", OPT_DURATION, OFF(auth_pam_config, timeout), "10s", NULL, 0, 0,
	  "deadline of one PAM request" },
	{ "account_check", OPT_BOOL, OFF(auth_pam_config, account_check), "true", NULL, 0, 0,
	  "answer 'does this user exist' through pam_acct_mgmt (see the admin guide for its limits)" },
	OPT_END
};

static const char *const ldap_starttls_names[] = { "off", "required", NULL };
static const char *const ldap_method_names[] = { "bind", "compare", NULL };
static const char *const ldap_deref_names[] = { "never", "searching", "finding", "always", NULL };
_Static_assert(LDAPCFG_STARTTLS_OFF == 0 && LDAPCFG_STARTTLS_REQUIRED == 1,
               "ldap_starttls_names follows the LDAPCFG_STARTTLS_ enum");
_Static_assert(LDAPCFG_METHOD_BIND == 0 && LDAPCFG_METHOD_COMPARE == 1,
               "ldap_method_names follows the LDAPCFG_METHOD_ enum");

static const struct opt_def ldap_defs[] = {
	{ "servers", OPT_STRLIST, OFF(ldap_config, servers), "ldap://localhost", NULL, 0, 0,
	  "ldap:// or ldaps:// URIs, tried in order; one that fails is skipped for retry_interval" },
	{ "starttls", OPT_ENUM, OFF(ldap_config, starttls), "off", ldap_starttls_names, 0, 0,
	  "StartTLS on ldap:// connections: off or required" },
	{ "tls_ca_file", OPT_STRING, OFF(ldap_config, tls_ca_file), NULL, NULL, 0, 0,
	  "PEM file of the CAs that sign the servers' certificates (default: the system's)" },
	{ "tls_verify", OPT_BOOL, OFF(ldap_config, tls_verify), "true", NULL, 0, 0,
	  "check the server certificate and name (StartTLS and ldaps://)" },
	{ "base", OPT_STRING, OFF(ldap_config, base), NULL, NULL, 0, 0,
	  "DN under which users are searched (subtree)" },
	{ "uids", OPT_STRLIST, OFF(ldap_config, uids), "uid", NULL, 0, 0,
	  "attributes that hold the user name; any of them may match" },
	{ "filter", OPT_STRING, OFF(ldap_config, filter), NULL, NULL, 0, 0,
	  "extra search filter ANDed with the user match; %u is the user name, escaped" },
	{ "bind_dn", OPT_STRING, OFF(ldap_config, bind_dn), NULL, NULL, 0, 0,
	  "DN of the service account that searches (default: anonymous)" },
	{ "password", OPT_STRING, OFF(ldap_config, password), NULL, NULL, 0, 0, "password of bind_dn" },
	{ "password_file", OPT_STRING, OFF(ldap_config, password_file), NULL, NULL, 0, 0,
	  "file whose first line is the password of bind_dn (instead of password)" },
	{ "method", OPT_ENUM, OFF(ldap_config, method), "bind", ldap_method_names, 0, 0,
	  "how a password is checked: bind (as the user) or compare (userPassword)" },
	{ "network_timeout", OPT_DURATION, OFF(ldap_config, network_timeout), "5s", NULL, 0, 0,
	  "deadline of a TCP connection to a server" },
	{ "timeout", OPT_DURATION, OFF(ldap_config, timeout), "10s", NULL, 0, 0,
	  "deadline of one LDAP operation" },
	{ "referrals", OPT_BOOL, OFF(ldap_config, referrals), "false", NULL, 0, 0,
	  "follow referrals the server returns" },
	{ "deref", OPT_ENUM, OFF(ldap_config, deref), "never", ldap_deref_names, 0, 0,
	  "alias dereferencing: never, searching, finding or always" },
	{ "pool_size", OPT_UINT, OFF(ldap_config, pool_size), "2", NULL, 1, 64,
	  "connections, each run by its own worker thread" },
	{ "queue_max", OPT_UINT, OFF(ldap_config, queue_max), "1000", NULL, 1, 1000000,
	  "requests waiting for a connection before new ones fail at once (temporary failure)" },
	{ "retry_interval", OPT_DURATION, OFF(ldap_config, retry_interval), "30s", NULL, 0, 0,
	  "how long a server that failed is skipped" },
	{ "allow_password_change", OPT_BOOL, OFF(ldap_config, allow_password_change), "false", NULL, 0, 0,
	  "let users change their password (LDAP Password Modify, RFC 3062)" },
	OPT_END
};

/* ---- checks the tables cannot express ---------------------------------- */

/* The ldap map of an auth section over the values ldap already has. */
static int load_ldap(struct ldap_config *l, const struct cfg_node *auth_map, const struct cfg_node *fallback,
                     const char *section, const char *dir, char **error_r)
{
	const struct cfg_node *map =
	        auth_map != NULL && auth_map->type == CFG_MAP ? cfg_get(auth_map, "ldap") : NULL;
	char *sec = xasprintf("%s.ldap", section);
	int ret = -1;
	if (opt_apply_over(ldap_defs, map, sec, l, error_r) < 0)
		goto out;
	if (map != NULL && !cfg_is_null(map))
		l->node = map;
	const struct cfg_node *at = l->node != NULL ? l->node : fallback;
	if (l->servers.count == 0) {
		*error_r = cfg_error_for_key(map, at, sec, "servers", "at least one server is required");
		goto out;
	}
	for (size_t i = 0; i < l->servers.count; i++) {
		const char *u = l->servers.items[i];
		if (!str_has_prefix(u, "ldap://") && !str_has_prefix(u, "ldaps://")) {
			*error_r = cfg_error_for_key(map, at, sec, "servers",
			                             "'%s' is not an ldap:// or ldaps:// URI", u);
			goto out;
		}
	}
	if (l->uids.count == 0) {
		*error_r = cfg_error_for_key(map, at, sec, "uids", "at least one attribute is required");
		goto out;
	}
	if (l->timeout <= 0 || l->network_timeout <= 0) {
		*error_r = cfg_error_for_key(map, at, sec, l->timeout <= 0 ? "timeout" : "network_timeout",
		                             "must be more than 0");
		goto out;
	}
	if (l->password != NULL && l->password_file != NULL) {
		*error_r = cfg_error_for_key(map, at, sec, "password_file",
		                             "give password or password_file, not both");
		goto out;
	}
	if (cfg_resolve_path(&l->password_file, dir, map, at, sec, "password_file", error_r) < 0 ||
	    cfg_resolve_path(&l->tls_ca_file, dir, map, at, sec, "tls_ca_file", error_r) < 0)
		goto out;
	ret = 0;
out:
	free(sec);
	return ret;
}

/* The auth section's sub-maps (external, pam) over what *a holds. */
static int apply_auth_sub(struct auth_config *a, const struct cfg_node *auth_map, const char *section,
                          const char *dir, char **error_r)
{
	const struct cfg_node *ext = cfg_get(auth_map, "external");
	const struct cfg_node *pam = cfg_get(auth_map, "pam");
	int ret = 0;
	if (ext != NULL) {
		char *sec = xasprintf("%s.external", section);
		ret = opt_apply_over(auth_external_defs, ext, sec, &a->external, error_r);
		if (ret == 0)
			ret = cfg_resolve_path(&a->external.program, dir, ext, ext, sec, "program", error_r);
		free(sec);
	}
	if (ret == 0 && pam != NULL) {
		char *sec = xasprintf("%s.pam", section);
		ret = opt_apply_over(auth_pam_defs, pam, sec, &a->pam, error_r);
		if (ret == 0)
			ret = cfg_resolve_path(&a->pam.helper, dir, pam, pam, sec, "helper", error_r);
		free(sec);
	}
	return ret;
}

void auth_config_free(struct auth_config *a)
{
	opt_free(auth_defs, a);
	opt_free(ldap_defs, &a->ldap);
	opt_free(auth_external_defs, &a->external);
	opt_free(auth_pam_defs, &a->pam);
}

/* is_host: the effective settings of a host (global ones may leave out
 * what every host then gives). */
static int check_auth(const struct auth_config *a, const struct cfg_node *map,
                      const struct cfg_node *fallback, const char *section, bool is_host, char **error_r)
{
	static const char *const built[] = { "internal", "external", "anonymous",
#ifdef HAVE_BACKEND_PAM
		                             "pam",
#endif
		                             NULL };
	static const char *const later[] = { "ldap", "pam", NULL };
	if (a->methods.count == 0) {
		*error_r = cfg_error_for_key(map, fallback, section, "methods",
		                             "at least one method is required");
		return -1;
	}
	for (size_t i = 0; i < a->methods.count; i++) {
		const char *m = a->methods.items[i];
		for (size_t k = 0; k < i; k++) {
			if (strcmp(a->methods.items[k], m) == 0) {
				*error_r = cfg_error_for_key(map, fallback, section, "methods",
				                             "auth method '%s' is listed twice", m);
				return -1;
			}
		}
		bool ok = false;
		for (size_t k = 0; built[k] != NULL; k++)
			ok = ok || strcmp(m, built[k]) == 0;
		if (ok)
			continue;
#ifdef HAVE_BACKEND_LDAP
		if (strcmp(m, "ldap") == 0) {
			if (is_host && a->ldap.base == NULL) {
				*error_r =
				        cfg_error_for_key(map, fallback, section, "methods",
				                          "auth method 'ldap' needs ldap.base (the DN under "
				                          "which users are searched)");
				return -1;
			}
			continue;
		}
#endif
		bool known = false;
		for (size_t k = 0; later[k] != NULL; k++)
			known = known || strcmp(m, later[k]) == 0;
		if (known)
			*error_r = cfg_error_for_key(map, fallback, section, "methods",
			                             "auth method '%s' is not built / not supported yet", m);
		else
			*error_r =
			        cfg_error_for_key(map, fallback, section, "methods",
			                          "unknown auth method '%s' (known: internal, external, pam, "
			                          "ldap, anonymous)",
			                          m);
		return -1;
	}
	if (is_host && strlist_contains(&a->methods, "external")) {
		const struct cfg_node *ext = cfg_get(map, "external");
		char *sec = xasprintf("%s.external", section);
		int ret = 0;
		if (a->external.program == NULL) {
			*error_r = cfg_error_for_key(ext, map != NULL ? map : fallback, sec, "program",
			                             "required with the external method");
			ret = -1;
		} else if (a->external.timeout <= 0) {
			*error_r = cfg_error_for_key(ext, map != NULL ? map : fallback, sec, "timeout",
			                             "must be more than 0");
			ret = -1;
		}
		free(sec);
		if (ret < 0)
			return -1;
	}
	if (is_host && strlist_contains(&a->methods, "pam") && a->pam.timeout <= 0) {
		char *sec = xasprintf("%s.pam", section);
		*error_r = cfg_error_for_key(cfg_get(map, "pam"), map != NULL ? map : fallback, sec,
		                             "timeout", "must be more than 0");
		free(sec);
		return -1;
	}
	if (is_host && a->scram_cache_ttl > 0 && strlist_contains(&a->methods, "external") &&
	    a->external.cache_ttl > 0 && a->scram_cache_ttl > a->external.cache_ttl) {
		*error_r = cfg_error_for_key(
		        map, fallback, section, "scram_cache_ttl",
		        "%.0f s is longer than external.cache_ttl (%.0f s): kept SCRAM keys "
		        "must not let a password in longer than the external method's "
		        "cache does",
		        a->scram_cache_ttl, a->external.cache_ttl);
		return -1;
	}
	if (a->failure_window <= 0 && (a->max_failures_per_ip > 0 || a->max_failures_per_user > 0)) {
		*error_r = cfg_error_for_key(map, fallback, section, "failure_window", "must be more than 0");
		return -1;
	}
	return 0;
}

void auth_config_defaults(struct auth_config *a)
{
	opt_defaults(ldap_defs, &a->ldap);
	opt_defaults(auth_external_defs, &a->external);
	opt_defaults(auth_pam_defs, &a->pam);
	opt_defaults(auth_defs, a);
}

int auth_config_load(struct auth_config *a, const struct cfg_node *map, const struct cfg_node *fallback,
                     const char *section, const char *dir, bool is_host, char **error_r)
{
	if (opt_apply_over(auth_defs, map, section, a, error_r) < 0 ||
	    load_ldap(&a->ldap, map, fallback, section, dir, error_r) < 0 ||
	    apply_auth_sub(a, map, section, dir, error_r) < 0 ||
	    check_auth(a, map, fallback, section, is_host, error_r) < 0)
		return -1;
	return 0;
}

void auth_config_copy(struct auth_config *dst, const struct auth_config *src)
{
	opt_copy(auth_defs, dst, src);
	opt_copy(ldap_defs, &dst->ldap, &src->ldap);
	dst->ldap.node = src->ldap.node;
	opt_copy(auth_external_defs, &dst->external, &src->external);
	opt_copy(auth_pam_defs, &dst->pam, &src->pam);
}

void auth_config_dump(const struct auth_config *a, struct buf *out, int indent)
{
	for (const struct opt_def *d = auth_defs; d->key != NULL; d++) {
		if (d->type == OPT_NODE)
			continue;
		const struct opt_def one[] = { *d, OPT_END };
		opt_dump(one, a, out, indent);
	}
	/* the effective ldap options (opt_dump never shows the password) */
	buf_printf(out, "%*sldap:\n", indent, "");
	opt_dump(ldap_defs, &a->ldap, out, indent + 2);
	buf_printf(out, "%*sexternal:\n", indent, "");
	opt_dump(auth_external_defs, &a->external, out, indent + 2);
	buf_printf(out, "%*spam:\n", indent, "");
	opt_dump(auth_pam_defs, &a->pam, out, indent + 2);
}
