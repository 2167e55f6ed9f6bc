/*
 * The YAML reader: libyaml parser events become a tree of struct cfg_node
 * that remembers file, line and column, and the messages about that tree
 * ("file:line:column: key 'section.key': why").  Generic: it knows nothing
 * of XMPP or of Parley's sections (lib/options.c fills settings structs
 * from the tree, server/config.c assembles the server's configuration).
 *
 * Thread: whoever calls (the loop thread at start-up and on reload, and
 * parleyctl).  Nothing here keeps global state.
 *
 * Invariants: every node of a tree points at the file name owned by that
 * tree's root; a scalar's value is never NULL and "" unquoted is YAML null;
 * every error message starts with "file:line:column: " when a position is
 * known; anchors, aliases, unknown tags and a second document are refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

#include "lib/cfg.h"
#include "lib/log.h"

#define CFG_MAX_DEPTH 64              /* nesting of maps and lists */
#define CFG_MAX_FILE_SIZE (16u << 20) /* a config file larger than this is a mistake */

/* ---- messages ------------------------------------------------------------ */

/* "file:line:column: [key 'section.key': ]message" */
static char *verror_at(const char *file, unsigned line, unsigned column, const char *section, const char *key,
                       const char *fmt, va_list ap)
{
	struct buf b = { 0 };
	if (line > 0)
		buf_printf(&b, "%s:%u:%u: ", file != NULL ? file : "(config)", line, column);
	else
		buf_printf(&b, "%s: ", file != NULL ? file : "(config)");
	if (key != NULL || (section != NULL && *section != '\0')) {
		buf_append_str(&b, "key '");
		if (section != NULL && *section != '\0') {
			buf_append_str(&b, section);
			if (key != NULL)
				buf_append_str(&b, ".");
		}
		if (key != NULL)
			buf_append_str(&b, key);
		buf_append_str(&b, "': ");
	}
	char *msg = xvasprintf(fmt, ap);
	buf_append_str(&b, msg);
	free(msg);
	return buf_steal(&b);
}

char *cfg_error_at(const struct cfg_node *n, const char *section, const char *key, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *e = verror_at(n->file, n->line, n->column, section, key, fmt, ap);
	va_end(ap);
	return e;
}

char *cfg_error_at_key(const struct cfg_node *n, const char *section, const char *key, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *e = verror_at(n->file, n->key_line, n->key_column, section, key, fmt, ap);
	va_end(ap);
	return e;
}

char *cfg_error_for_key(const struct cfg_node *map, const struct cfg_node *fallback, const char *section,
                        const char *key, const char *fmt, ...)
{
	const struct cfg_node *n = cfg_get(map, key);
	if (n == NULL)
		n = map != NULL ? map : fallback;
	va_list ap;
	va_start(ap, fmt);
	char *e = verror_at(n->file, n->line, n->column, section, key, fmt, ap);
	va_end(ap);
	return e;
}

bool cfg_is_null(const struct cfg_node *n)
{
	return n == NULL || (n->type == CFG_SCALAR && !n->quoted && n->value[0] == '\0');
}

const char *cfg_kind(const struct cfg_node *n)
{
	switch (n->type) {
	case CFG_MAP: return "a map";
	case CFG_LIST: return "a list";
	case CFG_SCALAR: break;
	}
	return cfg_is_null(n) ? "an empty value" : "a scalar";
}

char *cfg_value_for_msg(const char *s)
{
	size_t len = strlen(s);
	if (len <= 60)
		return xstrdup(s);
	char *c = xmalloc(64);
	memcpy(c, s, 57);
	memcpy(c + 57, "...", 4);
	return c;
}

/* ---- the node tree ---------------------------------------------------- */

struct cfg_node *cfg_node_new(enum cfg_type type, const char *file, unsigned line, unsigned column)
{
	struct cfg_node *n = xcalloc(1, sizeof(*n));
	n->type = type;
	n->file = file;
	n->line = n->key_line = line;
	n->column = n->key_column = column;
	return n;
}

static void node_free_tree(struct cfg_node *n)
{
	while (n != NULL) {
		struct cfg_node *next = n->next;
		node_free_tree(n->children);
		free(n->key);
		free(n->value);
		free(n);
		n = next;
	}
}

void cfg_free(struct cfg_node **root)
{
	if (*root == NULL)
		return;
	char *file = (char *)(*root)->file;
	node_free_tree(*root);
	free(file);
	*root = NULL;
}

const struct cfg_node *cfg_get(const struct cfg_node *map, const char *key)
{
	if (map == NULL || map->type != CFG_MAP)
		return NULL;
	for (const struct cfg_node *c = map->children; c != NULL; c = c->next)
		if (strcmp(c->key, key) == 0)
			return c;
	return NULL;
}

char *cfg_key_error(const struct cfg_node *map, const char *key, const char *section, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *why = xvasprintf(fmt, ap);
	va_end(ap);
	const struct cfg_node *at = cfg_get(map, key);
	if (at == NULL)
		at = map;
	char *msg;
	if (at != NULL)
		msg = xasprintf("%s:%u:%u: key '%s.%s': %s", at->file != NULL ? at->file : "?", at->key_line,
		                at->key_column, section, key, why);
	else
		msg = xasprintf("key '%s.%s': %s", section, key, why);
	free(why);
	return msg;
}

struct cfg_node *cfg_node_copy(const struct cfg_node *n, const char *file)
{
	struct cfg_node *c = cfg_node_new(n->type, file, n->line, n->column);
	c->key_line = n->key_line;
	c->key_column = n->key_column;
	c->key = n->key != NULL ? xstrdup(n->key) : NULL;
	c->value = n->value != NULL ? xstrdup(n->value) : NULL;
	c->quoted = n->quoted;
	struct cfg_node **tail = &c->children;
	for (const struct cfg_node *k = n->children; k != NULL; k = k->next) {
		*tail = cfg_node_copy(k, file);
		tail = &(*tail)->next;
	}
	return c;
}

/* ---- loading YAML --------------------------------------------------------- */

struct loader {
	yaml_parser_t parser;
	const char *text;
	const char *file; /* owned by the root being built */
	char *error;
	unsigned depth;
};

static char *loader_error_at(const struct loader *l, const yaml_mark_t *m, const char *fmt, ...)
        ATTR_PRINTF(3, 4);
static char *loader_error_at(const struct loader *l, const yaml_mark_t *m, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *e = verror_at(l->file, (unsigned)m->line + 1, (unsigned)m->column + 1, NULL, NULL, fmt, ap);
	va_end(ap);
	return e;
}

/* libyaml's own error, as "file:line:column: problem (context at line N)". */
static char *loader_yaml_error(const struct loader *l)
{
	const yaml_parser_t *p = &l->parser;
	if (p->error == YAML_MEMORY_ERROR)
		log_fatal("libyaml: out of memory");
	unsigned line, column;
	if (p->error == YAML_READER_ERROR) {
		/* Reader errors carry a byte offset, not a mark. */
		line = 1;
		column = 1;
		for (size_t i = 0; i < p->problem_offset && l->text[i] != '\0'; i++) {
			if (l->text[i] == '\n') {
				line++;
				column = 1;
			} else {
				column++;
			}
		}
	} else {
		line = (unsigned)p->problem_mark.line + 1;
		column = (unsigned)p->problem_mark.column + 1;
	}
	const char *problem = p->problem != NULL ? p->problem : "invalid YAML";
	if (p->context != NULL)
		return xasprintf("%s:%u:%u: %s (%s at line %u)", l->file, line, column, problem, p->context,
		                 (unsigned)p->context_mark.line + 1);
	return xasprintf("%s:%u:%u: %s", l->file, line, column, problem);
}

static int loader_next(struct loader *l, yaml_event_t *ev)
{
	if (!yaml_parser_parse(&l->parser, ev)) {
		l->error = loader_yaml_error(l);
		return -1;
	}
	return 0;
}

#define YAML_TAG_PREFIX "tag:yaml.org,2002:"

/* Tags we understand: none, the non-specific "!", and the core schema's.
 * Returns -1 for anything else. */
static int loader_check_tag(struct loader *l, const yaml_char_t *tag, const yaml_mark_t *m,
                            enum cfg_type type, bool *force_string_r, bool *force_null_r)
{
	*force_string_r = false;
	*force_null_r = false;
	if (tag == NULL)
		return 0;
	const char *t = (const char *)tag;
	if (strcmp(t, "!") == 0) {
		*force_string_r = true;
		return 0;
	}
	if (str_has_prefix(t, YAML_TAG_PREFIX)) {
		const char *name = t + strlen(YAML_TAG_PREFIX);
		if (type == CFG_MAP && strcmp(name, "map") == 0)
			return 0;
		if (type == CFG_LIST && strcmp(name, "seq") == 0)
			return 0;
		if (type == CFG_SCALAR) {
			if (strcmp(name, "str") == 0) {
				*force_string_r = true;
				return 0;
			}
			if (strcmp(name, "null") == 0) {
				*force_null_r = true;
				return 0;
			}
			if (strcmp(name, "int") == 0 || strcmp(name, "bool") == 0 ||
			    strcmp(name, "float") == 0)
				return 0;
		}
	}
	l->error = loader_error_at(l, m, "unsupported YAML tag '%s'", t);
	return -1;
}

static bool yaml_null_word(const char *s)
{
	return s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 ||
	       strcmp(s, "NULL") == 0;
}

static int load_node(struct loader *l, yaml_event_t *ev, struct cfg_node **node_r);

static int load_scalar(struct loader *l, yaml_event_t *ev, struct cfg_node **node_r)
{
	const yaml_mark_t *m = &ev->start_mark;
	if (ev->data.scalar.anchor != NULL) {
		l->error = loader_error_at(l, m, "YAML anchors and aliases are not supported");
		return -1;
	}
	bool force_string, force_null;
	if (loader_check_tag(l, ev->data.scalar.tag, m, CFG_SCALAR, &force_string, &force_null) < 0)
		return -1;
	const char *text = (const char *)ev->data.scalar.value;
	size_t len = ev->data.scalar.length;
	if (memchr(text, '\0', len) != NULL) {
		l->error = loader_error_at(l, m, "NUL character in a value");
		return -1;
	}
	struct cfg_node *n =
	        cfg_node_new(CFG_SCALAR, l->file, (unsigned)m->line + 1, (unsigned)m->column + 1);
	n->quoted = force_string || ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
	if (force_null || (!n->quoted && yaml_null_word(text))) {
		n->value = xstrdup("");
		n->quoted = false;
	} else {
		n->value = xstrndup(text, len);
	}
	*node_r = n;
	return 0;
}

static int load_list(struct loader *l, yaml_event_t *start, struct cfg_node **node_r)
{
	const yaml_mark_t *m = &start->start_mark;
	if (start->data.sequence_start.anchor != NULL) {
		l->error = loader_error_at(l, m, "YAML anchors and aliases are not supported");
		return -1;
	}
	bool force_string, force_null;
	if (loader_check_tag(l, start->data.sequence_start.tag, m, CFG_LIST, &force_string, &force_null) < 0)
		return -1;
	struct cfg_node *n = cfg_node_new(CFG_LIST, l->file, (unsigned)m->line + 1, (unsigned)m->column + 1);
	struct cfg_node **tail = &n->children;
	for (;;) {
		yaml_event_t ev;
		if (loader_next(l, &ev) < 0)
			goto fail;
		if (ev.type == YAML_SEQUENCE_END_EVENT) {
			yaml_event_delete(&ev);
			break;
		}
		struct cfg_node *item;
		int ret = load_node(l, &ev, &item);
		yaml_event_delete(&ev);
		if (ret < 0)
			goto fail;
		*tail = item;
		tail = &item->next;
	}
	*node_r = n;
	return 0;
fail:
	node_free_tree(n);
	return -1;
}

static int load_map(struct loader *l, yaml_event_t *start, struct cfg_node **node_r)
{
	const yaml_mark_t *m = &start->start_mark;
	if (start->data.mapping_start.anchor != NULL) {
		l->error = loader_error_at(l, m, "YAML anchors and aliases are not supported");
		return -1;
	}
	bool force_string, force_null;
	if (loader_check_tag(l, start->data.mapping_start.tag, m, CFG_MAP, &force_string, &force_null) < 0)
		return -1;
	struct cfg_node *n = cfg_node_new(CFG_MAP, l->file, (unsigned)m->line + 1, (unsigned)m->column + 1);
	struct cfg_node **tail = &n->children;
	for (;;) {
		yaml_event_t kev;
		if (loader_next(l, &kev) < 0)
			goto fail;
		if (kev.type == YAML_MAPPING_END_EVENT) {
			yaml_event_delete(&kev);
			break;
		}
		if (kev.type == YAML_ALIAS_EVENT) {
			l->error = loader_error_at(l, &kev.start_mark,
			                           "YAML anchors and aliases are not supported");
			yaml_event_delete(&kev);
			goto fail;
		}
		if (kev.type != YAML_SCALAR_EVENT) {
			l->error = loader_error_at(l, &kev.start_mark, "map keys must be scalars");
			yaml_event_delete(&kev);
			goto fail;
		}
		struct cfg_node *key;
		int ret = load_scalar(l, &kev, &key);
		yaml_event_delete(&kev);
		if (ret < 0)
			goto fail;
		if (key->value[0] == '\0') {
			l->error = cfg_error_at(key, NULL, NULL, "empty key");
			node_free_tree(key);
			goto fail;
		}
		for (const struct cfg_node *c = n->children; c != NULL; c = c->next) {
			if (strcmp(c->key, key->value) == 0) {
				l->error =
				        cfg_error_at(key, NULL, NULL, "duplicate key '%s' (first at line %u)",
				                     key->value, c->key_line);
				node_free_tree(key);
				goto fail;
			}
		}
		yaml_event_t vev;
		struct cfg_node *value = NULL;
		if (loader_next(l, &vev) < 0) {
			node_free_tree(key);
			goto fail;
		}
		ret = load_node(l, &vev, &value);
		yaml_event_delete(&vev);
		if (ret < 0) {
			node_free_tree(key);
			goto fail;
		}
		value->key = key->value;
		key->value = NULL;
		value->key_line = key->line;
		value->key_column = key->column;
		node_free_tree(key);
		*tail = value;
		tail = &value->next;
	}
	*node_r = n;
	return 0;
fail:
	node_free_tree(n);
	return -1;
}

/* ev is the first event of the node; the caller deletes it. */
static int load_node(struct loader *l, yaml_event_t *ev, struct cfg_node **node_r)
{
	int ret;
	switch (ev->type) {
	case YAML_SCALAR_EVENT: return load_scalar(l, ev, node_r);
	case YAML_SEQUENCE_START_EVENT:
	case YAML_MAPPING_START_EVENT:
		if (l->depth >= CFG_MAX_DEPTH) {
			l->error = loader_error_at(l, &ev->start_mark, "nesting deeper than %d levels",
			                           CFG_MAX_DEPTH);
			return -1;
		}
		l->depth++;
		ret = ev->type == YAML_MAPPING_START_EVENT ? load_map(l, ev, node_r)
		                                           : load_list(l, ev, node_r);
		l->depth--;
		return ret;
	case YAML_ALIAS_EVENT:
		l->error = loader_error_at(l, &ev->start_mark, "YAML anchors and aliases are not supported");
		return -1;
	default:
		l->error = loader_error_at(l, &ev->start_mark, "unexpected YAML event %d", (int)ev->type);
		return -1;
	}
}

/* Expect one event of type t (and nothing else). */
static int loader_expect(struct loader *l, yaml_event_type_t t, yaml_event_t *ev)
{
	if (loader_next(l, ev) < 0)
		return -1;
	if (ev->type != t) {
		if (ev->type == YAML_DOCUMENT_START_EVENT)
			l->error = loader_error_at(l, &ev->start_mark, "only one YAML document is allowed");
		else
			l->error = loader_error_at(l, &ev->start_mark, "unexpected YAML event %d",
			                           (int)ev->type);
		yaml_event_delete(ev);
		return -1;
	}
	return 0;
}

int cfg_load_string(const char *text, const char *file, struct cfg_node **root_r, char **error_r)
{
	struct loader l = { .text = text };
	char *file_copy = xstrdup(file != NULL ? file : "(string)");
	l.file = file_copy;
	struct cfg_node *root = NULL;
	yaml_event_t ev;

	*root_r = NULL;
	if (!yaml_parser_initialize(&l.parser))
		log_fatal("libyaml: cannot initialise a parser");
	yaml_parser_set_input_string(&l.parser, (const unsigned char *)text, strlen(text));

	if (loader_expect(&l, YAML_STREAM_START_EVENT, &ev) < 0)
		goto fail;
	yaml_event_delete(&ev);
	if (loader_next(&l, &ev) < 0)
		goto fail;
	if (ev.type == YAML_STREAM_END_EVENT) {
		/* Nothing but comments: an empty map. */
		yaml_event_delete(&ev);
		root = cfg_node_new(CFG_MAP, l.file, 1, 1);
	} else {
		if (ev.type != YAML_DOCUMENT_START_EVENT) {
			l.error =
			        loader_error_at(&l, &ev.start_mark, "unexpected YAML event %d", (int)ev.type);
			yaml_event_delete(&ev);
			goto fail;
		}
		yaml_event_delete(&ev);
		if (loader_next(&l, &ev) < 0)
			goto fail;
		int ret = load_node(&l, &ev, &root);
		yaml_event_delete(&ev);
		if (ret < 0)
			goto fail;
		if (loader_expect(&l, YAML_DOCUMENT_END_EVENT, &ev) < 0)
			goto fail;
		yaml_event_delete(&ev);
		if (loader_expect(&l, YAML_STREAM_END_EVENT, &ev) < 0)
			goto fail;
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&l.parser);
	*root_r = root;
	return 0;
fail:
	yaml_parser_delete(&l.parser);
	node_free_tree(root);
	*error_r = l.error != NULL ? l.error : xasprintf("%s: cannot parse", file_copy);
	free(file_copy);
	return -1;
}

int cfg_load_file(const char *path, struct cfg_node **root_r, char **error_r)
{
	*root_r = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		*error_r = xasprintf("%s: %s", path, strerror(errno));
		return -1;
	}
	struct buf b = { 0 };
	char chunk[8192];
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			*error_r = xasprintf("%s: %s", path, strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		if (b.len + (size_t)n > CFG_MAX_FILE_SIZE) {
			*error_r = xasprintf("%s: larger than %u bytes", path, CFG_MAX_FILE_SIZE);
			goto fail;
		}
		buf_append(&b, chunk, (size_t)n);
	}
	close(fd);
	if (b.data != NULL && strlen(b.data) != b.len) {
		*error_r = xasprintf("%s: contains a NUL byte", path);
		buf_free(&b);
		return -1;
	}
	int ret = cfg_load_string(b.data != NULL ? b.data : "", path, root_r, error_r);
	buf_free(&b);
	return ret;
fail:
	close(fd);
	buf_free(&b);
	return -1;
}

int cfg_resolve_path(char **p, const char *dir, const struct cfg_node *map, const struct cfg_node *fallback,
                     const char *section, const char *key, char **error_r)
{
	if (*p == NULL)
		return 0;
	if (**p == '\0') {
		*error_r = cfg_error_for_key(map, fallback, section, key, "empty path");
		return -1;
	}
	if (**p == '/')
		return 0;
	const char *rel = *p;
	while (rel[0] == '.' && rel[1] == '/')
		rel += 2;
	char *abs = xasprintf("%s%s%s", dir, strcmp(dir, "/") == 0 ? "" : "/", rel);
	free(*p);
	*p = abs;
	return 0;
}
