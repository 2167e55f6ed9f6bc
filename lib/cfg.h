/*
 * The YAML reader: a file read (libyaml) into a tree of nodes that keep
 * their file, line and column, and the messages that name them
 * ("file:line:column: key 'section.key': why").  Generic (no XMPP); the
 * option engine (lib/options.h) fills settings structs from the tree.
 * Runs on whichever thread calls (the loop thread and parleyctl).
 */
#ifndef PARLEY_CFG_H
#define PARLEY_CFG_H

#include "lib/util.h"

enum cfg_type { CFG_SCALAR, CFG_MAP, CFG_LIST };

struct cfg_node {
	enum cfg_type type;
	char *key;                 /* when this node is a value in a map */
	char *value;               /* scalars: the text ("" for an empty/null value) */
	bool quoted;               /* scalar was quoted in the file */
	struct cfg_node *children; /* map values (with key set) / list items, in order */
	struct cfg_node *next;
	const char *file;              /* shared string owned by the root */
	unsigned line, column;         /* 1-based, where the value starts */
	unsigned key_line, key_column; /* 1-based, where its key starts (= line, column
	                                * for list items and the root) */
};

/* Load a file / a string (file names the source in messages).  On error
 * returns -1 and *error_r is a malloc'd "file:line:column: message". Duplicate
 * keys in a map are an error.  Anchors and aliases are refused. */
int cfg_load_file(const char *path, struct cfg_node **root_r, char **error_r);
int cfg_load_string(const char *text, const char *file, struct cfg_node **root_r, char **error_r);
/* Free a tree made by cfg_load_* (or a root made by cfg_node_new whose
 * file is malloc'd) and the file name it owns; NULLs *root. */
void cfg_free(struct cfg_node **root);
/* The value of key in a map node, or NULL. */
const struct cfg_node *cfg_get(const struct cfg_node *map, const char *key);
/* A message about key of map: "file:line:column: key 'section.key': why"
 * (where key was written; where the map was when it does not hold key;
 * "key 'section.key': why" without a map).  Malloc'd. */
char *cfg_key_error(const struct cfg_node *map, const char *key, const char *section, const char *fmt, ...)
        ATTR_PRINTF(4, 5);

/* A new node at file:line:column; file is not copied (it must live as long
 * as the tree's root owns it). */
struct cfg_node *cfg_node_new(enum cfg_type type, const char *file, unsigned line, unsigned column);
/* A deep copy of n (siblings not included) whose nodes point at file. */
struct cfg_node *cfg_node_copy(const struct cfg_node *n, const char *file);
/* No node, or an unquoted empty/null scalar. */
bool cfg_is_null(const struct cfg_node *n);
/* "a map", "a list", "an empty value" or "a scalar", for messages. */
const char *cfg_kind(const struct cfg_node *n);
/* The scalar's text for messages, cut when long.  Malloc'd. */
char *cfg_value_for_msg(const char *s);

/* Malloc'd messages "file:line:column: key 'section.key': why" (the key
 * part left out when section and key are NULL; section alone when key is
 * NULL):
 * - cfg_error_at: at the position of n's value;
 * - cfg_error_at_key: at the position of n's key (unknown, duplicate keys);
 * - cfg_error_for_key: at key's value in map when the file gives it, else
 *   at map, else at fallback (which is never NULL). */
char *cfg_error_at(const struct cfg_node *n, const char *section, const char *key, const char *fmt, ...)
        ATTR_PRINTF(4, 5);
char *cfg_error_at_key(const struct cfg_node *n, const char *section, const char *key, const char *fmt, ...)
        ATTR_PRINTF(4, 5);
char *cfg_error_for_key(const struct cfg_node *map, const struct cfg_node *fallback, const char *section,
                        const char *key, const char *fmt, ...) ATTR_PRINTF(5, 6);

/* Make the path *p absolute, relative to dir (the configuration file's
 * directory); NULL stays NULL.  An empty path is an error about key
 * (placed as cfg_error_for_key places it): -1 and *error_r. */
int cfg_resolve_path(char **p, const char *dir, const struct cfg_node *map, const struct cfg_node *fallback,
                     const char *section, const char *key, char **error_r);

#endif
