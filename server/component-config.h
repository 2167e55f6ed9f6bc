/*
 * The components section of the configuration: each external component
 * (XEP-0114) domain with its shared secret (given inline or read from a
 * file), what a second connection for the same domain does, and whether
 * the hosts list it in disco#items.  server/config.c reads it beside the
 * other sections.  Runs where the configuration is loaded (the loop thread,
 * parleyctl).
 */
#ifndef PARLEY_COMPONENT_CONFIG_H
#define PARLEY_COMPONENT_CONFIG_H

#include "lib/options.h"

enum { COMPONENT_CONFLICT_REPLACE, COMPONENT_CONFLICT_REFUSE };

struct component_config {
	char *domain;      /* prepared (lower case) */
	char *secret;      /* inline, or the first line of secret_file; wiped when freed */
	char *secret_file; /* absolute path, or NULL */
	int on_conflict;   /* COMPONENT_CONFLICT_REPLACE (default) or _REFUSE */
	bool disco;        /* listed in disco#items of every host while connected (true) */
	char *name;        /* the disco item's name, or NULL */
	const struct cfg_node *node;
};

/* The components map (may be absent: none).  *list_r gets *count_r
 * entries, set before any is read so that component_config_free_all frees
 * what was filled when this fails.  dir makes secret_file absolute.  -1
 * and a malloc'd *error_r naming file, line and key. */
int component_config_load(struct component_config **list_r, size_t *count_r, const struct cfg_node *map,
                          const char *dir, char **error_r);
void component_config_free_all(struct component_config **list, size_t count);
/* One component as YAML lines (the secret is not written). */
void component_config_dump(const struct component_config *c, struct buf *out, int indent);
/* The entry of domain (prepared), or NULL. */
const struct component_config *component_config_find(const struct component_config *list, size_t count,
                                                     const char *domain);

#endif
