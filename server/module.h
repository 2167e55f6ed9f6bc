/*
 * Modules: protocol features started per virtual host from the config.  A
 * module is a struct module_def registered by name (built-in ones in
 * modules/builtin.c; the same struct is what a loadable module exports).
 * Options are data: the module's opt_def table is applied to its settings
 * struct before start, and unknown keys are config errors.  Loop thread.
 */
#ifndef PARLEY_MODULE_H
#define PARLEY_MODULE_H

#include "config.h"

struct host;

struct module_def {
	const char *name; /* "disco": configured as modules: { disco: {...} } */
	const char *description;
	const struct opt_def *options; /* may be NULL (no options) */
	size_t settings_size;          /* size of the settings struct options fill */
	bool default_enabled;          /* started even when the config does not name it */
	/* Start on host with the applied settings (owned by the loader, valid
	 * until stop).  Return -1 with a malloc'd *error_r to refuse. */
	int (*start)(struct host *h, const void *settings, void **state_r, char **error_r);
	void (*stop)(struct host *h, void *state);
	/* Optional: check the applied settings against the rest of the host's
	 * configuration (another module's options, auth), at the configuration
	 * check and before start.  opts is the module's option map (NULL:
	 * defaults only) and section its name in messages
	 * ("hosts.example.com.modules.vjud").  -1 with a malloc'd *error_r
	 * naming the file, line and key (cfg_key_error). */
	int (*check)(const struct host_config *hc, const void *settings, const struct cfg_node *opts,
	             const char *section, char **error_r);
	/* Optional: add to domains the domains the module serves on hc with
	 * these settings (a MUC service's conference.example.com); the
	 * configuration check refuses one that a host, a component or
	 * another service has too (modules_check_domains). */
	void (*domains)(const struct host_config *hc, const void *settings, struct strlist *domains);
};

void module_register(const struct module_def *m);
const struct module_def *module_find(const char *name);
/* All registered modules, for docs and list-commands. */
const struct module_def *const *module_list(size_t *count_r);

/* Start every module the host's config enables (and default_enabled ones not
 * disabled), in registration order.  -1 with a message naming the module and
 * the config position on failure. */
int modules_start_host(struct host *h, char **error_r);
void modules_stop_host(struct host *h);
/* Check the module part of a host's configuration without starting
 * anything: unknown module names and every enabled module's options
 * (config-check, parleyd -t).  -1 with a message naming the position. */
int modules_check_host(const struct host_config *hc, char **error_r);
/* Check that the service domains of every host's modules are no host's,
 * no component's and no other service's, as start-up would find when
 * routing them (config-check, parleyd -t, a reload, which is then refused
 * as a whole).  -1 with the message start-up gives. */
int modules_check_domains(const struct parley_config *cfg, char **error_r);
/* Every registered module on hc: "name: false" when it does not run there,
 * else its options with the defaults filled in (config-dump). */
void modules_dump_host(const struct host_config *hc, struct buf *out, int indent);
/* The settings module name would start with on hc, for offline tools that
 * write a module's data without starting it (an import): a malloc'd
 * settings struct (free with module_host_settings_free), or NULL when the
 * module does not run on hc (*error_r NULL) or its options are wrong
 * (*error_r says where). */
void *module_host_settings(const struct host_config *hc, const char *name, char **error_r);
void module_host_settings_free(const char *name, void **settings);
bool module_running(const struct host *h, const char *name);
/* The running instance's state, or NULL. */
void *module_state(const struct host *h, const char *name);

#endif
