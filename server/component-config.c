/*
 * The components section: its option table (keys, defaults, docs) and the
 * checks the table cannot express.  Runs where the configuration is loaded
 * (the loop thread at start-up and on reload, parleyctl); no state.
 *
 * Invariants: every entry has a prepared, unique domain and a non-empty
 * secret, from exactly one of secret and secret_file; secret_file is
 * absolute and was readable when the configuration was loaded (it is read
 * then, before privileges are dropped); secrets are wiped when freed.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/component-config.h"
#include "lib/jid.h"

#define OFF(st, field) offsetof(struct st, field)

static const char *const conflict_names[] = { "replace", "refuse", NULL };
_Static_assert(COMPONENT_CONFLICT_REPLACE == 0 && COMPONENT_CONFLICT_REFUSE == 1,
               "conflict_names follows the COMPONENT_CONFLICT_ enum");

static const struct opt_def component_defs[] = {
	{ "secret", OPT_STRING, OFF(component_config, secret), NULL, NULL, 0, 0,
	  "the shared secret of the component's handshake (or secret_file)" },
	{ "secret_file", OPT_STRING, OFF(component_config, secret_file), NULL, NULL, 0, 0,
	  "a file whose first line is the secret, so that it stays out of this file" },
	{ "on_conflict", OPT_ENUM, OFF(component_config, on_conflict), "replace", conflict_names, 0, 0,
	  "a second connection for the domain: replace (the first gets <conflict/>) or refuse "
	  "(the second gets <conflict/>)" },
	{ "disco", OPT_BOOL, OFF(component_config, disco), "true", NULL, 0, 0,
	  "list the component in disco#items of every host while it is connected" },
	{ "name", OPT_STRING, OFF(component_config, name), NULL, NULL, 0, 0,
	  "the name of its disco#items entry" },
	OPT_END
};

/* The first line of path (without its line end) as the secret. */
static int read_secret_file(struct component_config *c, const char *section, char **error_r)
{
	FILE *f = fopen(c->secret_file, "r");
	if (f == NULL) {
		*error_r = cfg_error_for_key(c->node, c->node, section, "secret_file", "%s: %s",
		                             c->secret_file, strerror(errno));
		return -1;
	}
	char line[1024];
	bool got = fgets(line, sizeof(line), f) != NULL;
	fclose(f);
	size_t len = got ? strcspn(line, "\r\n") : 0;
	line[len] = '\0';
	if (len == 0) {
		explicit_bzero(line, sizeof(line));
		*error_r = cfg_error_for_key(c->node, c->node, section, "secret_file",
		                             "%s: the first line (the secret) is empty", c->secret_file);
		return -1;
	}
	c->secret = xstrdup(line);
	explicit_bzero(line, sizeof(line));
	return 0;
}

static int load_one(struct component_config *c, const struct cfg_node *entry, const char *dir, char **error_r)
{
	char *section = xasprintf("components.%s", entry->key);
	int ret = -1;
	c->node = entry;
	c->domain = jid_nameprep(entry->key);
	if (c->domain == NULL || strchr(c->domain, '.') == NULL || strchr(c->domain, '@') != NULL ||
	    strchr(c->domain, '/') != NULL) {
		char *v = cfg_value_for_msg(entry->key);
		*error_r = cfg_error_at_key(entry, NULL, "components", "'%s' is not a domain name", v);
		free(v);
		goto out;
	}
	if (entry->type != CFG_MAP) {
		*error_r = cfg_error_at(entry, NULL, section,
		                        "expected a map of component options ({ secret: ... }), got %s",
		                        cfg_kind(entry));
		goto out;
	}
	if (opt_apply(component_defs, entry, section, c, error_r) < 0)
		goto out;
	if (c->secret != NULL && c->secret_file != NULL) {
		*error_r = cfg_error_for_key(entry, entry, section, "secret_file",
		                             "give secret or secret_file, not both");
		goto out;
	}
	if (c->secret == NULL && c->secret_file == NULL) {
		*error_r = cfg_error_at(entry, NULL, section, "secret or secret_file is required");
		goto out;
	}
	if (c->secret != NULL && c->secret[0] == '\0') {
		*error_r = cfg_error_for_key(entry, entry, section, "secret", "the secret is empty");
		goto out;
	}
	if (c->secret_file != NULL &&
	    (cfg_resolve_path(&c->secret_file, dir, entry, entry, section, "secret_file", error_r) < 0 ||
	     read_secret_file(c, section, error_r) < 0))
		goto out;
	ret = 0;
out:
	free(section);
	return ret;
}

int component_config_load(struct component_config **list_r, size_t *count_r, const struct cfg_node *map,
                          const char *dir, char **error_r)
{
	*list_r = NULL;
	*count_r = 0;
	if (cfg_is_null(map))
		return 0;
	if (map->type != CFG_MAP) {
		*error_r =
		        cfg_error_at(map, NULL, "components",
		                     "expected a map of component domain to options, got %s", cfg_kind(map));
		return -1;
	}
	size_t count = 0;
	for (const struct cfg_node *c = map->children; c != NULL; c = c->next)
		count++;
	struct component_config *list = xcalloc(count > 0 ? count : 1, sizeof(*list));
	*list_r = list;
	*count_r = count;
	size_t i = 0;
	for (const struct cfg_node *e = map->children; e != NULL; e = e->next, i++) {
		if (load_one(&list[i], e, dir, error_r) < 0)
			return -1;
		for (size_t k = 0; k < i; k++) {
			if (strcmp(list[k].domain, list[i].domain) == 0) {
				*error_r = cfg_error_at_key(e, NULL, "components",
				                            "duplicate component '%s' (first at line %u)",
				                            list[i].domain, list[k].node->key_line);
				return -1;
			}
		}
	}
	return 0;
}

void component_config_free_all(struct component_config **listp, size_t count)
{
	struct component_config *list = *listp;
	if (list == NULL)
		return;
	for (size_t i = 0; i < count; i++) {
		struct component_config *c = &list[i];
		if (c->secret != NULL)
			explicit_bzero(c->secret, strlen(c->secret));
		free(c->domain);
		opt_free(component_defs, c);
	}
	xfree(listp);
}

void component_config_dump(const struct component_config *c, struct buf *out, int indent)
{
	buf_printf(out, "%*s", indent, "");
	opt_dump_scalar(out, c->domain);
	buf_append_str(out, ":\n");
	struct component_config shown = *c;
	shown.secret = c->secret_file != NULL ? NULL : "(hidden)";
	opt_dump(component_defs, &shown, out, indent + 2);
}

const struct component_config *component_config_find(const struct component_config *list, size_t count,
                                                     const char *domain)
{
	for (size_t i = 0; i < count; i++)
		if (strcmp(list[i].domain, domain) == 0)
			return &list[i];
	return NULL;
}
