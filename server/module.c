/*
 * The module registry and the per-host module instances.  Loop thread.
 *
 * Invariants: modules are registered once at start-up (built-in ones by
 * modules_register_builtin) and never unregistered.  A host's instances are
 * started in registration order and kept newest first, so stopping walks the
 * list from its head: the reverse of the start order.  An instance owns its
 * settings (filled by opt_apply, freed with opt_free after stop).
 */
#include "module.h"
#include "host.h"
#include "lib/log.h"

#include <stdlib.h>
#include <string.h>

struct module_instance {
	const struct module_def *def;
	void *settings;
	void *state;
	struct module_instance *next;
};

static const struct module_def **registry;
static size_t registry_count;

/* Used for modules without options: any key is then unknown. */
static const struct opt_def no_options[] = { OPT_END };

void module_register(const struct module_def *m)
{
	if (module_find(m->name) != NULL) {
		log_warning("module %s registered twice; keeping the first", m->name);
		return;
	}
	registry = xrealloc(registry, (registry_count + 1) * sizeof(*registry));
	registry[registry_count++] = m;
}

const struct module_def *module_find(const char *name)
{
	for (size_t i = 0; i < registry_count; i++)
		if (strcmp(registry[i]->name, name) == 0)
			return registry[i];
	return NULL;
}

const struct module_def *const *module_list(size_t *count_r)
{
	*count_r = registry_count;
	return registry;
}

static struct module_instance *instance_find(const struct host *h, const char *name)
{
	for (struct module_instance *mi = h->modules; mi != NULL; mi = mi->next)
		if (strcmp(mi->def->name, name) == 0)
			return mi;
	return NULL;
}

bool module_running(const struct host *h, const char *name)
{
	return instance_find(h, name) != NULL;
}

void *module_state(const struct host *h, const char *name)
{
	struct module_instance *mi = instance_find(h, name);
	return mi != NULL ? mi->state : NULL;
}

/* Whether def runs on h, and its options map (NULL: defaults). */
static bool module_enabled_cfg(const struct host_config *hc, const struct module_def *def,
                               const struct cfg_node **opts_r, const struct cfg_node **where_r)
{
	*opts_r = NULL;
	*where_r = NULL;
	if (hc == NULL || hc->modules == NULL)
		return def->default_enabled;
	const struct cfg_node *named = cfg_get(hc->modules, def->name);
	if (named == NULL)
		return def->default_enabled;
	*where_r = named;
	bool enabled = false;
	const struct cfg_node *opts = config_module(hc, def->name, &enabled);
	if (!enabled)
		return false;
	if (opts != NULL && opts->type == CFG_MAP)
		*opts_r = opts;
	return true;
}

static bool module_enabled(const struct host *h, const struct module_def *def, const struct cfg_node **opts_r,
                           const struct cfg_node **where_r)
{
	return module_enabled_cfg(h->cfg, def, opts_r, where_r);
}

/* A name nobody registered is a typo worth stopping for. */
static int check_module_names(const struct host_config *hc, char **error_r)
{
	if (hc == NULL || hc->modules == NULL)
		return 0;
	for (const struct cfg_node *n = hc->modules->children; n != NULL; n = n->next) {
		if (n->key != NULL && module_find(n->key) == NULL) {
			*error_r = xasprintf("%s:%u:%u: unknown module '%s'", n->file, n->key_line,
			                     n->key_column, n->key);
			return -1;
		}
	}
	return 0;
}

/* The settings of def on hc, applied to a new struct (NULL with *error_r). */
static void *module_settings(const struct host_config *hc, const struct module_def *def,
                             const struct cfg_node *opts, const struct cfg_node *where, char **error_r)
{
	if (where != NULL && where->type == CFG_LIST) {
		*error_r = xasprintf("%s:%u:%u: module '%s': options must be a map, not a list", where->file,
		                     where->key_line, where->key_column, def->name);
		return NULL;
	}
	const struct opt_def *defs = def->options != NULL ? def->options : no_options;
	void *settings = xcalloc(1, def->settings_size > 0 ? def->settings_size : 1);
	/* A host started without a configuration (tests) has no section. */
	char *section = hc != NULL ? xasprintf("hosts.%s.modules.%s", hc->name, def->name)
	                           : xasprintf("modules.%s", def->name);
	char *err = NULL;
	int ret = opt_apply(defs, opts, section, settings, &err);
	free(section);
	if (ret < 0) {
		*error_r = err != NULL ? err : xasprintf("module '%s': bad options", def->name);
		free(settings);
		return NULL;
	}
	return settings;
}

/* def's own check of its settings against the rest of hc (0 without one). */
static int module_check(const struct host_config *hc, const struct module_def *def, const void *settings,
                        const struct cfg_node *opts, char **error_r)
{
	if (def->check == NULL)
		return 0;
	/* A host started without a configuration (tests) has no section. */
	char *section = hc != NULL ? xasprintf("hosts.%s.modules.%s", hc->name, def->name)
	                           : xasprintf("modules.%s", def->name);
	int rc = def->check(hc, settings, opts, section, error_r);
	free(section);
	return rc;
}

int modules_check_host(const struct host_config *hc, char **error_r)
{
	if (check_module_names(hc, error_r) < 0)
		return -1;
	for (size_t i = 0; i < registry_count; i++) {
		const struct module_def *def = registry[i];
		const struct cfg_node *opts, *where;
		if (!module_enabled_cfg(hc, def, &opts, &where))
			continue;
		void *settings = module_settings(hc, def, opts, where, error_r);
		if (settings == NULL)
			return -1;
		int rc = module_check(hc, def, settings, opts, error_r);
		opt_free(def->options != NULL ? def->options : no_options, settings);
		free(settings);
		if (rc < 0)
			return -1;
	}
	return 0;
}

/* Whether domain is a host's or a component's of cfg, or in taken. */
static bool domain_served(const struct parley_config *cfg, const struct strlist *taken, const char *domain)
{
	if (config_host(cfg, domain) != NULL || strlist_contains(taken, domain))
		return true;
	for (size_t i = 0; i < cfg->ncomponents; i++)
		if (strcmp(cfg->components[i].domain, domain) == 0)
			return true;
	return false;
}

int modules_check_domains(const struct parley_config *cfg, char **error_r)
{
	struct strlist taken = { 0 };
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < cfg->nhosts; i++) {
		const struct host_config *hc = &cfg->hosts[i];
		for (size_t m = 0; rc == 0 && m < registry_count; m++) {
			const struct module_def *def = registry[m];
			const struct cfg_node *opts, *where;
			if (def->domains == NULL || !module_enabled_cfg(hc, def, &opts, &where))
				continue;
			void *settings = module_settings(hc, def, opts, where, error_r);
			if (settings == NULL) {
				rc = -1;
				break;
			}
			struct strlist domains = { 0 };
			def->domains(hc, settings, &domains);
			for (size_t d = 0; rc == 0 && d < domains.count; d++) {
				const char *domain = domains.items[d];
				if (!domain_served(cfg, &taken, domain)) {
					strlist_take(&taken, xstrdup(domain));
					continue;
				}
				/* as module_start_one words a refusal of the router */
				if (where != NULL)
					*error_r = xasprintf(
					        "%s:%u:%u: module '%s' on host %s: the domain %s is "
					        "already served here",
					        where->file, where->key_line, where->key_column, def->name,
					        hc->name, domain);
				else
					*error_r =
					        xasprintf("module '%s' on host %s: the domain %s is already "
					                  "served here",
					                  def->name, hc->name, domain);
				rc = -1;
			}
			strlist_free(&domains);
			opt_free(def->options != NULL ? def->options : no_options, settings);
			free(settings);
		}
	}
	strlist_free(&taken);
	return rc;
}

void *module_host_settings(const struct host_config *hc, const char *name, char **error_r)
{
	*error_r = NULL;
	const struct module_def *def = module_find(name);
	const struct cfg_node *opts, *where;
	if (def == NULL || !module_enabled_cfg(hc, def, &opts, &where))
		return NULL;
	return module_settings(hc, def, opts, where, error_r);
}

void module_host_settings_free(const char *name, void **settings)
{
	if (*settings == NULL)
		return;
	const struct module_def *def = module_find(name);
	if (def != NULL)
		opt_free(def->options != NULL ? def->options : no_options, *settings);
	free(*settings);
	*settings = NULL;
}

void modules_dump_host(const struct host_config *hc, struct buf *out, int indent)
{
	for (size_t i = 0; i < registry_count; i++) {
		const struct module_def *def = registry[i];
		const struct cfg_node *opts, *where;
		bool enabled = module_enabled_cfg(hc, def, &opts, &where);
		buf_printf(out, "%*s%s:", indent, "", def->name);
		if (!enabled) {
			buf_append_str(out, " false\n");
			continue;
		}
		char *err = NULL;
		void *settings = module_settings(hc, def, opts, where, &err);
		if (settings == NULL) {
			buf_printf(out, " ~   # %s\n", err);
			free(err);
			continue;
		}
		const struct opt_def *defs = def->options != NULL ? def->options : no_options;
		struct buf opts_out = { 0 };
		opt_dump(defs, settings, &opts_out, indent + 2);
		if (opts_out.len == 0)
			buf_append_str(out, " {}\n");
		else {
			buf_append_str(out, "\n");
			buf_append(out, opts_out.data, opts_out.len);
		}
		buf_free(&opts_out);
		opt_free(defs, settings);
		free(settings);
	}
}

static int module_start_one(struct host *h, const struct module_def *def, char **error_r)
{
	const struct cfg_node *opts, *where;
	if (!module_enabled(h, def, &opts, &where))
		return 0;
	if (where != NULL && where->type == CFG_LIST) {
		*error_r = xasprintf("%s:%u:%u: module '%s': options must be a map, not a list", where->file,
		                     where->key_line, where->key_column, def->name);
		return -1;
	}
	const struct opt_def *defs = def->options != NULL ? def->options : no_options;
	void *settings = xcalloc(1, def->settings_size > 0 ? def->settings_size : 1);
	char *section = xasprintf("hosts.%s.modules.%s", h->name, def->name);
	char *err = NULL;
	int ret = opt_apply(defs, opts, section, settings, &err);
	free(section);
	if (ret < 0) {
		*error_r = err != NULL ? err : xasprintf("module '%s': bad options", def->name);
		opt_free(defs, settings);
		free(settings);
		return -1;
	}
	if (module_check(h->cfg, def, settings, opts, error_r) < 0) {
		opt_free(defs, settings);
		free(settings);
		return -1;
	}
	void *state = NULL;
	err = NULL;
	if (def->start != NULL && def->start(h, settings, &state, &err) < 0) {
		const char *why = err != NULL ? err : "refused to start";
		if (where != NULL)
			*error_r = xasprintf("%s:%u:%u: module '%s' on host %s: %s", where->file,
			                     where->key_line, where->key_column, def->name, h->name, why);
		else
			*error_r = xasprintf("module '%s' on host %s: %s", def->name, h->name, why);
		free(err);
		opt_free(defs, settings);
		free(settings);
		return -1;
	}
	struct module_instance *mi = xcalloc(1, sizeof(*mi));
	mi->def = def;
	mi->settings = settings;
	mi->state = state;
	mi->next = h->modules;
	h->modules = mi;
	log_debug("host %s: module %s started", h->name, def->name);
	return 0;
}

int modules_start_host(struct host *h, char **error_r)
{
	if (check_module_names(h->cfg, error_r) < 0)
		return -1;
	for (size_t i = 0; i < registry_count; i++) {
		if (module_running(h, registry[i]->name))
			continue;
		if (module_start_one(h, registry[i], error_r) < 0) {
			modules_stop_host(h);
			return -1;
		}
	}
	return 0;
}

void modules_stop_host(struct host *h)
{
	while (h->modules != NULL) {
		struct module_instance *mi = h->modules;
		h->modules = mi->next;
		if (mi->def->stop != NULL)
			mi->def->stop(h, mi->state);
		opt_free(mi->def->options != NULL ? mi->def->options : no_options, mi->settings);
		free(mi->settings);
		log_debug("host %s: module %s stopped", h->name, mi->def->name);
		free(mi);
	}
}
