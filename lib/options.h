/*
 * The option engine: a section's options are a table of struct opt_def
 * ({key, type, offset, default, range, doc}) over its settings struct; one
 * loader fills the struct from a map of the YAML tree (lib/cfg.h), rejects
 * unknown keys and bad values with file:line:column and the key, and the
 * same table prints the values back (config-dump) and documents them.
 * Generic (no XMPP).  Runs on whichever thread calls (the loop thread and
 * parleyctl).
 */
#ifndef PARLEY_OPTIONS_H
#define PARLEY_OPTIONS_H

#include "lib/cfg.h"

enum opt_type {
	OPT_STRING,   /* char * (malloc'd; NULL default allowed) */
	OPT_BOOL,     /* bool: true/false/yes/no/on/off */
	OPT_INT,      /* int */
	OPT_UINT,     /* unsigned */
	OPT_SIZE,     /* size_t: 1024, 256K, 256KiB, 1M, 1MiB */
	OPT_DURATION, /* double seconds: 30, 1.5, 30s, 500ms, 5m, 1h */
	OPT_ENUM,     /* int index into enum_values */
	OPT_MODE,     /* unsigned: octal file mode ("0660" or 0660) */
	OPT_STRLIST,  /* struct strlist: a list of scalars, or one scalar */
	OPT_NODE,     /* const struct cfg_node *: the raw subtree (not copied) */
	/* Not values: old keys still accepted, with a warning.
	 * OPT_ALIAS: a renamed key; default_value names the new key (in the same
	 *   table), whose type and checks apply.
	 * OPT_REMOVED: a key that no longer does anything; it is ignored and doc
	 *   says why.  Neither has a field (offset unused); dumps and docs skip them. */
	OPT_ALIAS,
	OPT_REMOVED,
};

struct strlist {
	char **items;
	size_t count;
};
void strlist_free(struct strlist *l);
bool strlist_contains(const struct strlist *l, const char *s);
/* Append s to l, which then owns it (malloc'd). */
void strlist_take(struct strlist *l, char *s);

struct opt_def {
	const char *key;
	enum opt_type type;
	size_t offset;                  /* offsetof in the settings struct */
	const char *default_value;      /* as text, parsed like the file's value; NULL: zero/NULL;
	                                   * OPT_STRLIST: items separated by ", " */
	const char *const *enum_values; /* OPT_ENUM: NULL-terminated */
	long min, max;                  /* OPT_INT/UINT/SIZE when max > min */
	const char *doc;                /* one line for docs and config-dump */
};
#define OPT_END                                    \
	{                                          \
		NULL, 0, 0, NULL, NULL, 0, 0, NULL \
	}

/* Warnings while options are applied (renamed or removed keys): appended
 * to sink ("file:line:column: key 'section.key': ...") while one is set,
 * logged otherwise.  Returns the previous sink.  Loop thread / parleyctl. */
struct strlist *opt_set_warning_sink(struct strlist *sink);

/* Set every option of defs to its default in out. */
void opt_defaults(const struct opt_def *defs, void *out);
/* Apply a map node to out (defaults first).  Unknown keys, wrong types and
 * out-of-range values are errors: -1 and *error_r = malloc'd
 * "file:line:column: key 'section.key': reason".  section names the map in
 * messages (e.g. "hosts.example.com.modules.register"); map may be NULL
 * (defaults only). */
int opt_apply(const struct opt_def *defs, const struct cfg_node *map, const char *section, void *out,
              char **error_r);
/* The same over the values out already holds (no defaults first): a host's
 * section over a copy of the global one.  On error out keeps what was set
 * so far (opt_free frees it). */
int opt_apply_over(const struct opt_def *defs, const struct cfg_node *map, const char *section, void *out,
                   char **error_r);
/* Free strings and lists that opt_apply/opt_defaults/opt_copy allocated in out. */
void opt_free(const struct opt_def *defs, void *out);
/* Copy every option of src to dst (strings and lists duplicated; dst's
 * previous contents are not freed). */
void opt_copy(const struct opt_def *defs, void *dst, const void *src);
/* Write "key: value" lines of the current values (for config-dump). */
void opt_dump(const struct opt_def *defs, const void *in, struct buf *out, int indent);

/* A boolean as the tables read it (true/false, yes/no, on/off, any case). */
int opt_parse_bool(const char *s, bool *v_r);
/* s as a YAML scalar that reads back as the same string (quoted when it
 * could be taken for a boolean, a null or a number). */
void opt_dump_scalar(struct buf *out, const char *s);
/* n on one line, flow style: {a: 1, b: [x, y]}. */
void opt_dump_node(const struct cfg_node *n, struct buf *out);

#endif
