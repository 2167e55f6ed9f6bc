/*
 * Configuration: libyaml parser events become a tree of struct cfg_node that
 * remembers file, line and column; option tables (struct opt_def) then fill
 * typed settings structs.  There is one parser per option type and one
 * table per section, so the tables are the single source of keys, defaults
 * and documentation (config_dump prints through them too).
 *
 * Thread: whoever calls (the loop thread at start-up and on reload, and
 * parleyctl).  Nothing here keeps global state.
 *
 * Invariants: every node of a tree points at the file name owned by that
 * tree's root; a scalar's value is never NULL and "" unquoted is YAML null;
 * every error message starts with "file:line:column: " when a position is
 * known; on error nothing leaks and settings that opt_apply filled are
 * already freed.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "config.h"
#include "lib/log.h"
#include "storage/sql.h"

#define CFG_MAX_DEPTH 64                 /* nesting of maps and lists */
#define CFG_MAX_FILE_SIZE (16u << 20)    /* a config file larger than this is a mistake */

/* ---- small helpers ------------------------------------------------------ */

static char ascii_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static bool ascii_eq_nocase(const char *a, const char *b)
{
	for (; *a != '\0' && *b != '\0'; a++, b++)
		if (ascii_lower(*a) != ascii_lower(*b))
			return false;
	return *a == *b;
}

static char *vfmt(const char *fmt, va_list ap)
{
	va_list ap2;
	va_copy(ap2, ap);
	int n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		log_fatal("vsnprintf failed on format '%s'", fmt);
	char *s = xmalloc((size_t)n + 1);
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	return s;
}

/* "file:line:column: [key 'section.key': ]message" */
static char *verror_at(const char *file, unsigned line, unsigned column, const char *section,
                       const char *key, const char *fmt, va_list ap)
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
	char *msg = vfmt(fmt, ap);
	buf_append_str(&b, msg);
	free(msg);
	return buf_steal(&b);
}

/* An error at the position of node n (its value). */
static char *error_at(const struct cfg_node *n, const char *section, const char *key,
                      const char *fmt, ...) ATTR_PRINTF(4, 5);
static char *error_at(const struct cfg_node *n, const char *section, const char *key,
                      const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *e = verror_at(n->file, n->line, n->column, section, key, fmt, ap);
	va_end(ap);
	return e;
}

/* An error at the position of n's key (for unknown and duplicate keys). */
static char *error_at_key(const struct cfg_node *n, const char *section, const char *key,
                          const char *fmt, ...) ATTR_PRINTF(4, 5);
static char *error_at_key(const struct cfg_node *n, const char *section, const char *key,
                          const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *e = verror_at(n->file, n->key_line, n->key_column, section, key, fmt, ap);
	va_end(ap);
	return e;
}

/* An error about key in map: at the key's value when the file gives it,
 * else at the map, else at fallback (which is never NULL). */
static char *error_for_key(const struct cfg_node *map, const struct cfg_node *fallback,
                           const char *section, const char *key, const char *fmt, ...)
	ATTR_PRINTF(5, 6);
static char *error_for_key(const struct cfg_node *map, const struct cfg_node *fallback,
                           const char *section, const char *key, const char *fmt, ...)
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

static bool node_is_null(const struct cfg_node *n)
{
	return n == NULL || (n->type == CFG_SCALAR && !n->quoted && n->value[0] == '\0');
}

static const char *node_kind(const struct cfg_node *n)
{
	switch (n->type) {
	case CFG_MAP:
		return "a map";
	case CFG_LIST:
		return "a list";
	case CFG_SCALAR:
		break;
	}
	return node_is_null(n) ? "an empty value" : "a scalar";
}

/* The scalar's text for messages, cut when long. */
static char *value_for_msg(const char *s)
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

static struct cfg_node *node_new(enum cfg_type type, const char *file, unsigned line,
                                 unsigned column)
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

char *cfg_key_error(const struct cfg_node *map, const char *key, const char *section,
                    const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *why = vfmt(fmt, ap);
	va_end(ap);
	const struct cfg_node *at = cfg_get(map, key);
	if (at == NULL)
		at = map;
	char *msg;
	if (at != NULL)
		msg = xasprintf("%s:%u:%u: key '%s.%s': %s", at->file != NULL ? at->file : "?",
		                at->key_line, at->key_column, section, key, why);
	else
		msg = xasprintf("key '%s.%s': %s", section, key, why);
	free(why);
	return msg;
}

/* A deep copy of n (siblings not included) whose nodes point at file. */
static struct cfg_node *node_copy(const struct cfg_node *n, const char *file)
{
	struct cfg_node *c = node_new(n->type, file, n->line, n->column);
	c->key_line = n->key_line;
	c->key_column = n->key_column;
	c->key = n->key != NULL ? xstrdup(n->key) : NULL;
	c->value = n->value != NULL ? xstrdup(n->value) : NULL;
	c->quoted = n->quoted;
	struct cfg_node **tail = &c->children;
	for (const struct cfg_node *k = n->children; k != NULL; k = k->next) {
		*tail = node_copy(k, file);
		tail = &(*tail)->next;
	}
	return c;
}

/* ---- loading YAML --------------------------------------------------------- */

struct loader {
	yaml_parser_t parser;
	const char *text;
	const char *file;      /* owned by the root being built */
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
		return xasprintf("%s:%u:%u: %s (%s at line %u)", l->file, line, column, problem,
		                 p->context, (unsigned)p->context_mark.line + 1);
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
	return s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
	       strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
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
	struct cfg_node *n = node_new(CFG_SCALAR, l->file, (unsigned)m->line + 1, (unsigned)m->column + 1);
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
	struct cfg_node *n = node_new(CFG_LIST, l->file, (unsigned)m->line + 1, (unsigned)m->column + 1);
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
	struct cfg_node *n = node_new(CFG_MAP, l->file, (unsigned)m->line + 1, (unsigned)m->column + 1);
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
			l->error = loader_error_at(l, &kev.start_mark, "YAML anchors and aliases are not supported");
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
			l->error = error_at(key, NULL, NULL, "empty key");
			node_free_tree(key);
			goto fail;
		}
		for (const struct cfg_node *c = n->children; c != NULL; c = c->next) {
			if (strcmp(c->key, key->value) == 0) {
				l->error = error_at(key, NULL, NULL, "duplicate key '%s' (first at line %u)",
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
	case YAML_SCALAR_EVENT:
		return load_scalar(l, ev, node_r);
	case YAML_SEQUENCE_START_EVENT:
	case YAML_MAPPING_START_EVENT:
		if (l->depth >= CFG_MAX_DEPTH) {
			l->error = loader_error_at(l, &ev->start_mark, "nesting deeper than %d levels",
			                           CFG_MAX_DEPTH);
			return -1;
		}
		l->depth++;
		ret = ev->type == YAML_MAPPING_START_EVENT ? load_map(l, ev, node_r) : load_list(l, ev, node_r);
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
			l->error = loader_error_at(l, &ev->start_mark, "unexpected YAML event %d", (int)ev->type);
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
		root = node_new(CFG_MAP, l.file, 1, 1);
	} else {
		if (ev.type != YAML_DOCUMENT_START_EVENT) {
			l.error = loader_error_at(&l, &ev.start_mark, "unexpected YAML event %d", (int)ev.type);
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

/* ---- string lists ------------------------------------------------------ */

void strlist_free(struct strlist *l)
{
	for (size_t i = 0; i < l->count; i++)
		free(l->items[i]);
	free(l->items);
	l->items = NULL;
	l->count = 0;
}

bool strlist_contains(const struct strlist *l, const char *s)
{
	for (size_t i = 0; i < l->count; i++)
		if (strcmp(l->items[i], s) == 0)
			return true;
	return false;
}

static void strlist_add(struct strlist *l, const char *s)
{
	l->items = xrealloc(l->items, (l->count + 1) * sizeof(*l->items));
	l->items[l->count++] = xstrdup(s);
}

static void strlist_copy(struct strlist *dst, const struct strlist *src)
{
	dst->items = NULL;
	dst->count = 0;
	for (size_t i = 0; i < src->count; i++)
		strlist_add(dst, src->items[i]);
}

/* ---- value parsers --------------------------------------------------- */

static int parse_uint(const char *s, unsigned long long *v_r)
{
	unsigned long long v = 0;
	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		unsigned d = (unsigned)(*s - '0');
		if (v > (ULLONG_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*v_r = v;
	return 0;
}

static int parse_int(const char *s, long long *v_r)
{
	bool neg = *s == '-';
	unsigned long long u;
	if (parse_uint(neg ? s + 1 : s, &u) < 0 || u > (unsigned long long)LLONG_MAX)
		return -1;
	*v_r = neg ? -(long long)u : (long long)u;
	return 0;
}

/* "1024", "256K", "256k", "256KB", "256KiB", "1M", "1MiB", "1G": binary
 * multiples, with an optional space before the unit. */
static int parse_size(const char *s, unsigned long long *v_r)
{
	size_t n = 0;
	while (s[n] >= '0' && s[n] <= '9')
		n++;
	if (n == 0 || n > 20)
		return -1;
	char digits[21];
	memcpy(digits, s, n);
	digits[n] = '\0';
	unsigned long long v;
	if (parse_uint(digits, &v) < 0)
		return -1;
	const char *unit = s + n;
	if (*unit == ' ')
		unit++;
	unsigned long long mult;
	if (*unit == '\0' || ascii_eq_nocase(unit, "b"))
		mult = 1;
	else if (ascii_eq_nocase(unit, "k") || ascii_eq_nocase(unit, "kb") || ascii_eq_nocase(unit, "kib"))
		mult = 1ull << 10;
	else if (ascii_eq_nocase(unit, "m") || ascii_eq_nocase(unit, "mb") || ascii_eq_nocase(unit, "mib"))
		mult = 1ull << 20;
	else if (ascii_eq_nocase(unit, "g") || ascii_eq_nocase(unit, "gb") || ascii_eq_nocase(unit, "gib"))
		mult = 1ull << 30;
	else
		return -1;
	if (v > ULLONG_MAX / mult)
		return -1;
	*v_r = v * mult;
	return 0;
}

/* "30" (seconds), "1.5", "500ms", "30s", "5m", "1h", "1d"; never negative. */
static int parse_duration(const char *s, double *v_r)
{
	size_t n = 0, frac = 0;
	while (s[n] >= '0' && s[n] <= '9')
		n++;
	size_t int_digits = n;
	if (s[n] == '.') {
		n++;
		while (s[n] >= '0' && s[n] <= '9') {
			n++;
			frac++;
		}
	}
	if (int_digits + frac == 0 || n > 40)
		return -1;
	char number[41];
	memcpy(number, s, n);
	number[n] = '\0';
	double v = strtod(number, NULL);
	const char *unit = s + n;
	if (*unit == ' ')
		unit++;
	double mult;
	if (*unit == '\0' || strcmp(unit, "s") == 0)
		mult = 1;
	else if (strcmp(unit, "ms") == 0)
		mult = 0.001;
	else if (strcmp(unit, "m") == 0 || strcmp(unit, "min") == 0)
		mult = 60;
	else if (strcmp(unit, "h") == 0)
		mult = 3600;
	else if (strcmp(unit, "d") == 0)
		mult = 86400;
	else
		return -1;
	v *= mult;
	if (!(v >= 0 && v <= 1e12))   /* also refuses NaN */
		return -1;
	*v_r = v;
	return 0;
}

static int parse_bool(const char *s, bool *v_r)
{
	if (ascii_eq_nocase(s, "true") || ascii_eq_nocase(s, "yes") || ascii_eq_nocase(s, "on")) {
		*v_r = true;
		return 0;
	}
	if (ascii_eq_nocase(s, "false") || ascii_eq_nocase(s, "no") || ascii_eq_nocase(s, "off")) {
		*v_r = false;
		return 0;
	}
	return -1;
}

/* Octal digits ("0600", "600", "0o600"), at most 07777. */
static int parse_mode(const char *s, unsigned *v_r)
{
	if (s[0] == '0' && (s[1] == 'o' || s[1] == 'O'))
		s += 2;
	if (*s == '\0')
		return -1;
	unsigned v = 0;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '7')
			return -1;
		v = v * 8 + (unsigned)(*s - '0');
		if (v > 07777)
			return -1;
	}
	*v_r = v;
	return 0;
}

/* ---- value printers (YAML) ------------------------------------------- */

/* Whether s can be written without quotes and read back as the same text.
 * Unless typed_ok, words and numbers that a YAML reader could take for a
 * boolean, a null or a number are quoted too. */
static bool yaml_plain_safe(const char *s, bool typed_ok)
{
	static const char *const words[] = { "null", "~", "true", "false", "yes", "no", "on", "off",
		                             "y", "n", NULL };
	if (*s == '\0' || strchr("-?:,[]{}#&*!|>'\"%@` \t", s[0]) != NULL)
		return false;
	for (const char *p = s; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;
		if (c < 0x20 || c == 0x7f || strchr(":,[]{}\"", c) != NULL)
			return false;
		if (c == '#' && p[-1] == ' ')
			return false;
	}
	if (s[strlen(s) - 1] == ' ')
		return false;
	if (typed_ok)
		return true;
	for (size_t i = 0; words[i] != NULL; i++)
		if (ascii_eq_nocase(s, words[i]))
			return false;
	/* Anything a YAML reader could take for a number stays a string. */
	char *end;
	(void)strtod(s, &end);
	if (*end == '\0')
		return false;
	return true;
}

static void yaml_scalar_out_ex(struct buf *out, const char *s, bool typed_ok)
{
	if (yaml_plain_safe(s, typed_ok)) {
		buf_append_str(out, s);
		return;
	}
	buf_append_str(out, "\"");
	for (const char *p = s; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;
		switch (c) {
		case '"':
			buf_append_str(out, "\\\"");
			break;
		case '\\':
			buf_append_str(out, "\\\\");
			break;
		case '\n':
			buf_append_str(out, "\\n");
			break;
		case '\t':
			buf_append_str(out, "\\t");
			break;
		case '\r':
			buf_append_str(out, "\\r");
			break;
		default:
			if (c < 0x20 || c == 0x7f)
				buf_printf(out, "\\x%02x", c);
			else
				buf_append(out, p, 1);
		}
	}
	buf_append_str(out, "\"");
}

static void yaml_scalar_out(struct buf *out, const char *s)
{
	yaml_scalar_out_ex(out, s, false);
}

static void size_out(struct buf *out, unsigned long long v)
{
	if (v != 0 && v % (1ull << 30) == 0)
		buf_printf(out, "%lluG", v >> 30);
	else if (v != 0 && v % (1ull << 20) == 0)
		buf_printf(out, "%lluM", v >> 20);
	else if (v != 0 && v % (1ull << 10) == 0)
		buf_printf(out, "%lluK", v >> 10);
	else
		buf_printf(out, "%llu", v);
}

static void duration_out(struct buf *out, double v)
{
	double ms = v * 1000;
	long long msi = (long long)(ms + 0.5);
	if (ms - (double)msi < 1e-6 && (double)msi - ms < 1e-6) {
		if (msi == 0)
			buf_append_str(out, "0");
		else if (msi % 86400000 == 0)
			buf_printf(out, "%lldd", msi / 86400000);
		else if (msi % 3600000 == 0)
			buf_printf(out, "%lldh", msi / 3600000);
		else if (msi % 60000 == 0)
			buf_printf(out, "%lldm", msi / 60000);
		else if (msi % 1000 == 0)
			buf_printf(out, "%llds", msi / 1000);
		else
			buf_printf(out, "%lldms", msi);
		return;
	}
	char tmp[64];
	snprintf(tmp, sizeof(tmp), "%.9f", v);
	size_t len = strlen(tmp);
	while (len > 0 && tmp[len - 1] == '0')
		tmp[--len] = '\0';
	if (len > 0 && tmp[len - 1] == '.')
		tmp[--len] = '\0';
	buf_printf(out, "%ss", tmp);
}

/* One line, flow style: {a: 1, b: [x, y]}. */
static void node_dump_flow(const struct cfg_node *n, struct buf *out)
{
	switch (n->type) {
	case CFG_SCALAR:
		if (node_is_null(n))
			buf_append_str(out, "~");
		else
			yaml_scalar_out_ex(out, n->value, !n->quoted);   /* true stays true, "true" stays "true" */
		return;
	case CFG_LIST:
		buf_append_str(out, "[");
		for (const struct cfg_node *c = n->children; c != NULL; c = c->next) {
			node_dump_flow(c, out);
			if (c->next != NULL)
				buf_append_str(out, ", ");
		}
		buf_append_str(out, "]");
		return;
	case CFG_MAP:
		buf_append_str(out, "{");
		for (const struct cfg_node *c = n->children; c != NULL; c = c->next) {
			yaml_scalar_out(out, c->key);
			buf_append_str(out, ": ");
			node_dump_flow(c, out);
			if (c->next != NULL)
				buf_append_str(out, ", ");
		}
		buf_append_str(out, "}");
		return;
	}
}

/* ---- option tables --------------------------------------------------- */

static size_t opt_field_size(enum opt_type type)
{
	switch (type) {
	case OPT_STRING:
		return sizeof(char *);
	case OPT_BOOL:
		return sizeof(bool);
	case OPT_INT:
	case OPT_ENUM:
		return sizeof(int);
	case OPT_UINT:
	case OPT_MODE:
		return sizeof(unsigned);
	case OPT_SIZE:
		return sizeof(size_t);
	case OPT_DURATION:
		return sizeof(double);
	case OPT_STRLIST:
		return sizeof(struct strlist);
	case OPT_NODE:
		return sizeof(const struct cfg_node *);
	case OPT_ALIAS:
	case OPT_REMOVED:
		return 0;
	}
	log_fatal("opt_field_size: bad option type %d", (int)type);
}

/* What a value of this type looks like, for "expected ..." messages. */
static char *opt_expected(const struct opt_def *d)
{
	switch (d->type) {
	case OPT_STRING:
		return xstrdup("a string");
	case OPT_BOOL:
		return xstrdup("a boolean (true/false, yes/no, on/off)");
	case OPT_INT:
		return xstrdup("an integer");
	case OPT_UINT:
		return xstrdup("an unsigned integer");
	case OPT_SIZE:
		return xstrdup("a size (e.g. 1024, 256K, 1M, 1G)");
	case OPT_DURATION:
		return xstrdup("a duration (e.g. 30, 30s, 500ms, 5m, 1h, 1d)");
	case OPT_MODE:
		return xstrdup("an octal file mode (e.g. \"0600\")");
	case OPT_STRLIST:
		return xstrdup("a string or a list of strings");
	case OPT_NODE:
	case OPT_ALIAS:
	case OPT_REMOVED:
		return xstrdup("a value");
	case OPT_ENUM: {
		struct buf b = { 0 };
		buf_append_str(&b, "one of ");
		for (size_t i = 0; d->enum_values[i] != NULL; i++)
			buf_printf(&b, "%s%s", i > 0 ? "|" : "", d->enum_values[i]);
		return buf_steal(&b);
	}
	}
	return xstrdup("a value");
}

static char *opt_type_error(const struct opt_def *d, const struct cfg_node *n, const char *section)
{
	char *expected = opt_expected(d);
	char *e;
	if (n->type == CFG_SCALAR && !node_is_null(n)) {
		char *v = value_for_msg(n->value);
		e = error_at(n, section, d->key, "expected %s, got '%s'", expected, v);
		free(v);
	} else {
		e = error_at(n, section, d->key, "expected %s, got %s", expected, node_kind(n));
	}
	free(expected);
	return e;
}

static bool opt_has_range(const struct opt_def *d)
{
	return d->max > d->min;
}

static char *opt_range_error(const struct opt_def *d, const struct cfg_node *n, const char *section)
{
	if (d->type == OPT_SIZE) {
		struct buf lo = { 0 }, hi = { 0 };
		size_out(&lo, (unsigned long long)d->min);
		size_out(&hi, (unsigned long long)d->max);
		char *e = error_at(n, section, d->key, "'%s' is out of range (%s..%s)", n->value, lo.data, hi.data);
		buf_free(&lo);
		buf_free(&hi);
		return e;
	}
	return error_at(n, section, d->key, "'%s' is out of range (%ld..%ld)", n->value, d->min, d->max);
}

static void opt_field_clear(const struct opt_def *d, void *out)
{
	memset((char *)out + d->offset, 0, opt_field_size(d->type));
}

/* Parse n into d's field of out (freeing what the field held). */
static int opt_set(const struct opt_def *d, const struct cfg_node *n, const char *section, void *out,
                   char **error_r)
{
	void *field = (char *)out + d->offset;

	if (d->type == OPT_NODE) {
		*(const struct cfg_node **)field = n;
		return 0;
	}
	if (d->type == OPT_STRLIST) {
		struct strlist l = { NULL, 0 };
		if (n->type == CFG_LIST) {
			for (const struct cfg_node *c = n->children; c != NULL; c = c->next) {
				if (c->type != CFG_SCALAR || node_is_null(c)) {
					*error_r = error_at(c, section, d->key, "list items must be strings, got %s",
					                    node_kind(c));
					strlist_free(&l);
					return -1;
				}
				strlist_add(&l, c->value);
			}
		} else if (n->type == CFG_SCALAR) {
			if (!node_is_null(n))
				strlist_add(&l, n->value);
		} else {
			*error_r = opt_type_error(d, n, section);
			return -1;
		}
		strlist_free(field);
		*(struct strlist *)field = l;
		return 0;
	}
	if (n->type != CFG_SCALAR || (node_is_null(n) && d->type != OPT_STRING)) {
		*error_r = opt_type_error(d, n, section);
		return -1;
	}

	const char *s = n->value;
	unsigned long long u;
	long long i;
	switch (d->type) {
	case OPT_STRING:
		free(*(char **)field);
		*(char **)field = node_is_null(n) ? NULL : xstrdup(s);
		return 0;
	case OPT_BOOL:
		if (parse_bool(s, field) < 0)
			break;
		return 0;
	case OPT_INT:
		if (parse_int(s, &i) < 0 || i < INT_MIN || i > INT_MAX)
			break;
		if (opt_has_range(d) && (i < d->min || i > d->max))
			goto range;
		*(int *)field = (int)i;
		return 0;
	case OPT_UINT:
		if (parse_uint(s, &u) < 0 || u > UINT_MAX)
			break;
		if (opt_has_range(d) && ((long long)u < d->min || (long long)u > d->max))
			goto range;
		*(unsigned *)field = (unsigned)u;
		return 0;
	case OPT_SIZE:
		if (parse_size(s, &u) < 0 || u > SIZE_MAX)
			break;
		if (opt_has_range(d) && (u < (unsigned long long)d->min || u > (unsigned long long)d->max))
			goto range;
		*(size_t *)field = (size_t)u;
		return 0;
	case OPT_DURATION:
		if (parse_duration(s, field) < 0)
			break;
		return 0;
	case OPT_MODE:
		if (parse_mode(s, field) < 0)
			break;
		return 0;
	case OPT_ENUM:
		for (size_t k = 0; d->enum_values[k] != NULL; k++) {
			if (strcmp(d->enum_values[k], s) == 0) {
				*(int *)field = (int)k;
				return 0;
			}
		}
		break;
	case OPT_STRLIST:
	case OPT_NODE:
	case OPT_ALIAS:
	case OPT_REMOVED:
		break;
	}
	*error_r = opt_type_error(d, n, section);
	return -1;
range:
	*error_r = opt_range_error(d, n, section);
	return -1;
}

/* An entry with a field (not an old key kept for compatibility). */
static bool opt_has_field(const struct opt_def *d)
{
	return d->type != OPT_ALIAS && d->type != OPT_REMOVED;
}

void opt_defaults(const struct opt_def *defs, void *out)
{
	for (const struct opt_def *d = defs; d->key != NULL; d++) {
		if (!opt_has_field(d))
			continue;
		opt_field_clear(d, out);
		if (d->default_value == NULL)
			continue;
		if (d->type == OPT_STRLIST && strchr(d->default_value, ',') != NULL) {
			/* a list default: "a, b" */
			struct strlist *l = (struct strlist *)(void *)((char *)out + d->offset);
			char *copy = xstrdup(d->default_value), *save = NULL;
			for (char *t = strtok_r(copy, ", ", &save); t != NULL; t = strtok_r(NULL, ", ", &save))
				strlist_add(l, t);
			free(copy);
			continue;
		}
		struct cfg_node n = {
			.type = CFG_SCALAR,
			.value = (char *)d->default_value,
			.quoted = true,
			.file = "(built-in default)",
		};
		char *error = NULL;
		if (opt_set(d, &n, NULL, out, &error) < 0)
			log_fatal("option '%s': bad built-in default '%s': %s", d->key, d->default_value, error);
	}
}

void opt_free(const struct opt_def *defs, void *out)
{
	for (const struct opt_def *d = defs; d->key != NULL; d++) {
		if (!opt_has_field(d))
			continue;
		void *field = (char *)out + d->offset;
		if (d->type == OPT_STRING)
			xfree((char **)field);
		else if (d->type == OPT_STRLIST)
			strlist_free(field);
		else if (d->type == OPT_NODE)
			*(const struct cfg_node **)field = NULL;
	}
}

/* Copy every option of src to dst (dst's previous contents are not freed). */
static void opt_copy(const struct opt_def *defs, void *dst, const void *src)
{
	for (const struct opt_def *d = defs; d->key != NULL; d++) {
		if (!opt_has_field(d))
			continue;
		void *to = (char *)dst + d->offset;
		const void *from = (const char *)src + d->offset;
		if (d->type == OPT_STRING) {
			const char *s = *(char *const *)from;
			*(char **)to = s != NULL ? xstrdup(s) : NULL;
		} else if (d->type == OPT_STRLIST) {
			strlist_copy(to, from);
		} else {
			memcpy(to, from, opt_field_size(d->type));
		}
	}
}

/* Levenshtein distance, capped; for "did you mean" hints. */
static unsigned edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 63 || lb > 63)
		return 99;
	unsigned row[64];
	for (size_t j = 0; j <= lb; j++)
		row[j] = (unsigned)j;
	for (size_t i = 1; i <= la; i++) {
		unsigned diag = row[0];
		row[0] = (unsigned)i;
		for (size_t j = 1; j <= lb; j++) {
			unsigned up = row[j];
			unsigned best = diag + (a[i - 1] != b[j - 1]);
			if (row[j] + 1 < best)
				best = row[j] + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

static char *unknown_key_error(const struct opt_def *defs, const struct cfg_node *c, const char *section)
{
	const char *hint = NULL;
	unsigned best = 3;
	for (const struct opt_def *d = defs; d->key != NULL; d++) {
		unsigned dist = edit_distance(c->key, d->key);
		if (dist < best) {
			best = dist;
			hint = d->key;
		}
	}
	if (hint != NULL)
		return error_at_key(c, section, c->key, "unknown key (did you mean '%s'?)", hint);
	return error_at_key(c, section, c->key, "unknown key");
}

static const struct opt_def *opt_find(const struct opt_def *defs, const char *key)
{
	for (const struct opt_def *d = defs; d->key != NULL; d++)
		if (strcmp(d->key, key) == 0)
			return d;
	return NULL;
}

static struct strlist *warning_sink;

struct strlist *opt_set_warning_sink(struct strlist *sink)
{
	struct strlist *old = warning_sink;
	warning_sink = sink;
	return old;
}

static void opt_warn(const struct cfg_node *c, const char *section, const char *fmt, ...) ATTR_PRINTF(3, 4);
static void opt_warn(const struct cfg_node *c, const char *section, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *why = vfmt(fmt, ap);
	va_end(ap);
	char *msg = xasprintf("%s:%u:%u: key '%s%s%s': %s", c->file != NULL ? c->file : "?", c->key_line,
	                      c->key_column, section != NULL && *section != '\0' ? section : "",
	                      section != NULL && *section != '\0' ? "." : "", c->key, why);
	free(why);
	if (warning_sink != NULL) {
		if (!strlist_contains(warning_sink, msg))
			strlist_add(warning_sink, msg);
	} else {
		log_warning("%s", msg);
	}
	free(msg);
}

/* Apply map over the current values of out (no defaults first). */
static int opt_apply_over(const struct opt_def *defs, const struct cfg_node *map, const char *section,
                          void *out, char **error_r)
{
	if (node_is_null(map))
		return 0;
	if (map->type != CFG_MAP) {
		*error_r = error_at(map, NULL, section != NULL && *section != '\0' ? section : NULL,
		                    "expected a map, got %s", node_kind(map));
		return -1;
	}
	for (const struct cfg_node *c = map->children; c != NULL; c = c->next) {
		const struct opt_def *d = opt_find(defs, c->key);
		if (d == NULL) {
			*error_r = unknown_key_error(defs, c, section);
			return -1;
		}
		if (d->type == OPT_REMOVED) {
			opt_warn(c, section, "no longer used (%s); ignored", d->doc != NULL ? d->doc : "removed");
			continue;
		}
		if (d->type == OPT_ALIAS) {
			const struct opt_def *to = opt_find(defs, d->default_value);
			if (to == NULL || !opt_has_field(to))
				log_fatal("option alias '%s' names no option '%s'", d->key, d->default_value);
			if (cfg_get(map, to->key) != NULL) {
				*error_r = error_at_key(c, section, c->key, "is the old name of '%s', which is set too",
				                        to->key);
				return -1;
			}
			opt_warn(c, section, "renamed to '%s'; accepted, please rename it", to->key);
			/* the new key's type and checks; messages name the key as written */
			struct opt_def as = *to;
			as.key = d->key;
			if (opt_set(&as, c, section, out, error_r) < 0)
				return -1;
			continue;
		}
		if (opt_set(d, c, section, out, error_r) < 0)
			return -1;
	}
	return 0;
}

int opt_apply(const struct opt_def *defs, const struct cfg_node *map, const char *section, void *out,
              char **error_r)
{
	opt_defaults(defs, out);
	if (opt_apply_over(defs, map, section, out, error_r) < 0) {
		opt_free(defs, out);
		return -1;
	}
	return 0;
}

static void opt_dump_value(const struct opt_def *d, const void *in, struct buf *out)
{
	const void *field = (const char *)in + d->offset;
	switch (d->type) {
	case OPT_STRING: {
		const char *s = *(char *const *)field;
		if (s == NULL)
			buf_append_str(out, "~");
		else
			yaml_scalar_out(out, s);
		return;
	}
	case OPT_BOOL:
		buf_append_str(out, *(const bool *)field ? "true" : "false");
		return;
	case OPT_INT:
		buf_printf(out, "%d", *(const int *)field);
		return;
	case OPT_UINT:
		buf_printf(out, "%u", *(const unsigned *)field);
		return;
	case OPT_SIZE:
		size_out(out, *(const size_t *)field);
		return;
	case OPT_DURATION:
		duration_out(out, *(const double *)field);
		return;
	case OPT_MODE:
		buf_printf(out, "\"%04o\"", *(const unsigned *)field);
		return;
	case OPT_ENUM: {
		int v = *(const int *)field;
		size_t count = 0;
		while (d->enum_values[count] != NULL)
			count++;
		if (v >= 0 && (size_t)v < count)
			buf_append_str(out, d->enum_values[v]);
		else
			buf_printf(out, "%d", v);
		return;
	}
	case OPT_STRLIST: {
		const struct strlist *l = field;
		buf_append_str(out, "[");
		for (size_t i = 0; i < l->count; i++) {
			if (i > 0)
				buf_append_str(out, ", ");
			yaml_scalar_out(out, l->items[i]);
		}
		buf_append_str(out, "]");
		return;
	}
	case OPT_NODE: {
		const struct cfg_node *n = *(const struct cfg_node *const *)field;
		if (n == NULL)
			buf_append_str(out, "~");
		else
			node_dump_flow(n, out);
		return;
	}
	case OPT_ALIAS:
	case OPT_REMOVED:
		return;
	}
}

void opt_dump(const struct opt_def *defs, const void *in, struct buf *out, int indent)
{
	for (const struct opt_def *d = defs; d->key != NULL; d++) {
		if (!opt_has_field(d))
			continue;
		buf_printf(out, "%*s%s: ", indent, "", d->key);
		/* Secrets are never printed: only whether one is set. */
		if (d->type == OPT_STRING && strstr(d->key, "password") != NULL &&
		    strstr(d->key, "file") == NULL && *(char *const *)((const char *)in + d->offset) != NULL) {
			buf_append_str(out, "\"(set, not shown)\"\n");
			continue;
		}
		opt_dump_value(d, in, out);
		buf_append_str(out, "\n");
	}
}

/* ---- the server's sections --------------------------------------------- */

#define OFF(st, field) offsetof(struct st, field)

static const char *const loglevel_names[] = { "debug", "info", "notice", "warning", "error", NULL };
_Static_assert(LOG_LEVEL_DEBUG == 0 && LOG_LEVEL_ERROR == 4, "loglevel_names follows enum log_level");

/* The top level: plain options plus the sections, which are read by their
 * own tables below. */
struct top_settings {
	int loglevel;
	char *log_file, *pidfile, *user, *group;
	const struct cfg_node *control, *limits, *tls, *storage, *auth, *listen, *modules, *hosts;
};

static const struct opt_def top_defs[] = {
	{ "loglevel", OPT_ENUM, OFF(top_settings, loglevel), "info", loglevel_names, 0, 0,
	  "least severe level logged: debug, info, notice, warning or error" },
	{ "log_file", OPT_STRING, OFF(top_settings, log_file), NULL, NULL, 0, 0,
	  "append log lines to this file (reopened on SIGHUP); unset: stderr" },
	{ "pidfile", OPT_STRING, OFF(top_settings, pidfile), NULL, NULL, 0, 0,
	  "write the daemon's process id here; unset: no pid file" },
	{ "user", OPT_STRING, OFF(top_settings, user), NULL, NULL, 0, 0,
	  "when started as root, switch to this user after binding the listeners" },
	{ "group", OPT_STRING, OFF(top_settings, group), NULL, NULL, 0, 0,
	  "when started as root, switch to this group (default: the user's primary group)" },
	{ "control", OPT_NODE, OFF(top_settings, control), NULL, NULL, 0, 0, "the control socket (parleyctl)" },
	{ "limits", OPT_NODE, OFF(top_settings, limits), NULL, NULL, 0, 0, "resource limits of every stream" },
	{ "tls", OPT_NODE, OFF(top_settings, tls), NULL, NULL, 0, 0, "TLS defaults for every host" },
	{ "storage", OPT_NODE, OFF(top_settings, storage), NULL, NULL, 0, 0, "storage defaults for every host" },
	{ "auth", OPT_NODE, OFF(top_settings, auth), NULL, NULL, 0, 0, "authentication defaults for every host" },
	{ "listen", OPT_NODE, OFF(top_settings, listen), NULL, NULL, 0, 0, "listening sockets (a list, required)" },
	{ "modules", OPT_NODE, OFF(top_settings, modules), NULL, NULL, 0, 0, "modules enabled on every host" },
	{ "hosts", OPT_NODE, OFF(top_settings, hosts), NULL, NULL, 0, 0, "the virtual hosts (required)" },
	OPT_END
};

static const struct opt_def control_defs[] = {
	{ "socket", OPT_STRING, OFF(parley_config, control_socket), "parley.sock", NULL, 0, 0,
	  "UNIX socket parleyctl talks to" },
	{ "mode", OPT_MODE, OFF(parley_config, control_mode), "0600", NULL, 0, 0,
	  "permissions of the socket (octal)" },
	{ "group", OPT_STRING, OFF(parley_config, control_group), NULL, NULL, 0, 0,
	  "group owner of the socket; unset: the daemon's group" },
	OPT_END
};

static const struct opt_def limits_defs[] = {
	{ "max_stanza_size", OPT_SIZE, OFF(limits_config, max_stanza_size), "256K", NULL, 1024, 64L << 20,
	  "largest stanza accepted from a stream, in bytes" },
	{ "max_depth", OPT_UINT, OFF(limits_config, max_depth), "64", NULL, 2, 1024,
	  "deepest XML element nesting accepted" },
	{ "max_attrs", OPT_UINT, OFF(limits_config, max_attrs), "64", NULL, 1, 1024,
	  "most attributes accepted on one XML element" },
	{ "max_output", OPT_SIZE, OFF(limits_config, max_output), "1M", NULL, 1024, 1L << 30,
	  "output queued for one stream before it is disconnected (at least max_stanza_size)" },
	{ "max_connections_per_ip", OPT_UINT, OFF(limits_config, max_conn_per_ip), "64", NULL, 0, 1000000,
	  "concurrent connections from one IP address; 0: unlimited" },
	{ "handshake_timeout", OPT_DURATION, OFF(limits_config, handshake_timeout), "60s", NULL, 0, 0,
	  "time from accept to a bound session before the stream is closed" },
	{ "idle_timeout", OPT_DURATION, OFF(limits_config, idle_timeout), "10m", NULL, 0, 0,
	  "close a stream that sent nothing for this long; 0: never" },
	{ "keepalive", OPT_DURATION, OFF(limits_config, keepalive), "60s", NULL, 0, 0,
	  "send a whitespace keepalive after this much output silence" },
	{ "auth_attempts", OPT_UINT, OFF(limits_config, auth_attempts), "3", NULL, 1, 100,
	  "failed SASL attempts on one stream before it is closed" },
	{ "auth_failure_delay", OPT_DURATION, OFF(limits_config, auth_failure_delay), "1s", NULL, 0, 0,
	  "delay before a failed authentication is answered" },
	OPT_END
};

static const struct opt_def tls_defs[] = {
	{ "certificate", OPT_STRING, OFF(tls_config, certificate), NULL, NULL, 0, 0,
	  "PEM file: the certificate and its chain" },
	{ "key", OPT_STRING, OFF(tls_config, key), NULL, NULL, 0, 0,
	  "PEM file: the private key (may be the certificate file)" },
	{ "ciphers", OPT_STRING, OFF(tls_config, ciphers), NULL, NULL, 0, 0,
	  "TLS 1.2 cipher list (OpenSSL syntax); unset: OpenSSL's default" },
	{ "min_version", OPT_STRING, OFF(tls_config, min_version), "1.2", NULL, 0, 0,
	  "oldest TLS version accepted: \"1.2\" or \"1.3\"" },
	OPT_END
};

static const struct opt_def storage_defs[] = {
	{ "driver", OPT_STRING, OFF(storage_config, driver), "sqlite", NULL, 0, 0,
	  "storage driver: sqlite (embedded), pgsql (PostgreSQL), mysql (MySQL/MariaDB) or odbc, as built" },
	{ "path", OPT_STRING, OFF(storage_config, path), "parley.db", NULL, 0, 0,
	  "sqlite: the database file" },
	{ "dsn", OPT_STRING, OFF(storage_config, dsn), NULL, NULL, 0, 0,
	  "connection string of the database (drivers other than sqlite): key=value pairs for pgsql "
	  "and mysql, an ODBC connection string for odbc" },
	{ "password", OPT_STRING, OFF(storage_config, password), NULL, NULL, 0, 0,
	  "password of the database user (never logged; prefer password_file)" },
	{ "password_file", OPT_STRING, OFF(storage_config, password_file), NULL, NULL, 0, 0,
	  "file whose first line is the database password, read at each connection" },
	{ "dialect", OPT_STRING, OFF(storage_config, dialect), NULL, NULL, 0, 0,
	  "odbc: the SQL of the data source, pgsql, mysql or mssql; unset: asked from the driver" },
	{ "pool_size", OPT_UINT, OFF(storage_config, pool_size), "2", NULL, 1, 256,
	  "worker threads, each with its own connection" },
	{ "queue_max", OPT_UINT, OFF(storage_config, queue_max), "10000", NULL, 1, 10000000,
	  "jobs waiting for a worker before new ones fail at once (temporary error)" },
	{ "timeout", OPT_DURATION, OFF(storage_config, timeout), "10s", NULL, 0, 0,
	  "deadline of one storage job" },
	OPT_END
};

static const struct opt_def auth_defs[] = {
	{ "methods", OPT_STRLIST, OFF(auth_config, methods), "internal", NULL, 0, 0,
	  "authentication backends, tried in order: internal, external, pam, ldap, anonymous" },
	{ "scram_iterations", OPT_UINT, OFF(auth_config, scram_iterations), "4096", NULL, 4096, 10000000,
	  "PBKDF2 iterations of newly stored SCRAM credentials" },
	{ "store_plain", OPT_BOOL, OFF(auth_config, store_plain), "false", NULL, 0, 0,
	  "internal: also keep clear passwords (legacy migrations only; a warning at start)" },
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
	{ "password", OPT_STRING, OFF(ldap_config, password), NULL, NULL, 0, 0,
	  "password of bind_dn" },
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

static const char *const listen_module_names[] = { "c2s", NULL };
static const char *const starttls_names[] = { "required", "optional", "off", NULL };
_Static_assert(LISTEN_C2S == 0, "listen_module_names follows the LISTEN_ enum");
_Static_assert(STARTTLS_REQUIRED == 0 && STARTTLS_OPTIONAL == 1 && STARTTLS_OFF == 2,
               "starttls_names follows the STARTTLS_ enum");

static const struct opt_def listen_defs[] = {
	{ "port", OPT_UINT, OFF(listen_config, port), NULL, NULL, 1, 65535, "TCP port (required)" },
	{ "address", OPT_STRING, OFF(listen_config, address), "::", NULL, 0, 0,
	  "address to bind; \"::\" is every IPv6 and IPv4 address" },
	{ "module", OPT_ENUM, OFF(listen_config, module), "c2s", listen_module_names, 0, 0,
	  "what the port serves: c2s (clients)" },
	{ "starttls", OPT_ENUM, OFF(listen_config, starttls), "required", starttls_names, 0, 0,
	  "STARTTLS: required, optional or off" },
	{ "direct_tls", OPT_BOOL, OFF(listen_config, direct_tls), "false", NULL, 0, 0,
	  "TLS from the first byte (XEP-0368), usually on port 5223" },
	{ "backlog", OPT_UINT, OFF(listen_config, backlog), "1024", NULL, 1, 65535,
	  "listen(2) backlog" },
	OPT_END
};

/* What a host may say; storage, auth and tls go over the global values. */
struct host_settings {
	const struct cfg_node *storage, *auth, *tls, *modules;
	struct strlist admins;
};

static const struct opt_def host_defs[] = {
	{ "storage", OPT_NODE, OFF(host_settings, storage), NULL, NULL, 0, 0,
	  "storage options over the global ones" },
	{ "auth", OPT_NODE, OFF(host_settings, auth), NULL, NULL, 0, 0, "auth options over the global ones" },
	{ "tls", OPT_NODE, OFF(host_settings, tls), NULL, NULL, 0, 0, "tls options over the global ones" },
	{ "admins", OPT_STRLIST, OFF(host_settings, admins), NULL, NULL, 0, 0,
	  "bare JIDs with administrative rights on this host" },
	{ "modules", OPT_NODE, OFF(host_settings, modules), NULL, NULL, 0, 0,
	  "modules merged over the global ones (name: false disables one)" },
	OPT_END
};

/* ---- checks the tables cannot express --------------------------------- */

/* The section name for messages: "storage" or "hosts.example.com.storage". */
static char *section_name(const char *host, const char *section)
{
	return host != NULL ? xasprintf("hosts.%s.%s", host, section) : xstrdup(section);
}

static int check_storage(const struct storage_config *st, const struct cfg_node *map,
                         const struct cfg_node *fallback, const char *section, char **error_r)
{
	bool built = false;
	if (strcmp(st->driver, "memory") == 0)
		return 0;                       /* the memory store, for tests */
	if (!sql_driver_known(st->driver, &built)) {
		*error_r = error_for_key(map, fallback, section, "driver",
		                         "unknown storage driver '%s' (known: sqlite, pgsql, mysql, odbc)",
		                         st->driver);
		return -1;
	}
	if (!built) {
		*error_r = error_for_key(map, fallback, section, "driver",
		                         "storage driver '%s' is not built into this parleyd (configure "
		                         "did not find its client library, or it is not supported yet)",
		                         st->driver);
		return -1;
	}
	if (strcmp(st->driver, "sqlite") != 0 && (st->dsn == NULL || *st->dsn == '\0')) {
		*error_r = error_for_key(map, fallback, section, "dsn",
		                         "storage driver '%s' needs a dsn (the connection string)",
		                         st->driver);
		return -1;
	}
	if (st->password != NULL && st->password_file != NULL) {
		*error_r = error_for_key(map, fallback, section, "password_file",
		                         "give password or password_file, not both");
		return -1;
	}
	if (st->dialect != NULL && strcmp(st->driver, "odbc") != 0) {
		*error_r = error_for_key(map, fallback, section, "dialect",
		                         "only the odbc driver takes a dialect (the %s driver knows its own)",
		                         st->driver);
		return -1;
	}
	if (st->dialect != NULL && strcmp(st->dialect, "pgsql") != 0 &&
	    strcmp(st->dialect, "mysql") != 0 && strcmp(st->dialect, "mssql") != 0) {
		*error_r = error_for_key(map, fallback, section, "dialect",
		                         "expected pgsql, mysql or mssql, got '%s'", st->dialect);
		return -1;
	}
	if (st->timeout <= 0) {
		*error_r = error_for_key(map, fallback, section, "timeout", "must be more than 0");
		return -1;
	}
	return 0;
}

static int resolve_path(char **p, const char *dir, const struct cfg_node *map,
                        const struct cfg_node *fallback, const char *section, const char *key,
                        char **error_r);

/* The ldap map of an auth section over the values ldap already has. */
static int load_ldap(struct ldap_config *l, const struct cfg_node *auth_map, const struct cfg_node *fallback,
                     const char *section, const char *dir, char **error_r)
{
	const struct cfg_node *map = auth_map != NULL && auth_map->type == CFG_MAP ? cfg_get(auth_map, "ldap")
	                                                                            : NULL;
	char *sec = xasprintf("%s.ldap", section);
	int ret = -1;
	if (opt_apply_over(ldap_defs, map, sec, l, error_r) < 0)
		goto out;
	if (map != NULL && !node_is_null(map))
		l->node = map;
	const struct cfg_node *at = l->node != NULL ? l->node : fallback;
	if (l->servers.count == 0) {
		*error_r = error_for_key(map, at, sec, "servers", "at least one server is required");
		goto out;
	}
	for (size_t i = 0; i < l->servers.count; i++) {
		const char *u = l->servers.items[i];
		if (!str_has_prefix(u, "ldap://") && !str_has_prefix(u, "ldaps://")) {
			*error_r = error_for_key(map, at, sec, "servers",
			                         "'%s' is not an ldap:// or ldaps:// URI", u);
			goto out;
		}
	}
	if (l->uids.count == 0) {
		*error_r = error_for_key(map, at, sec, "uids", "at least one attribute is required");
		goto out;
	}
	if (l->timeout <= 0 || l->network_timeout <= 0) {
		*error_r = error_for_key(map, at, sec, l->timeout <= 0 ? "timeout" : "network_timeout",
		                         "must be more than 0");
		goto out;
	}
	if (l->password != NULL && l->password_file != NULL) {
		*error_r = error_for_key(map, at, sec, "password_file",
		                         "give password or password_file, not both");
		goto out;
	}
	if (resolve_path(&l->password_file, dir, map, at, sec, "password_file", error_r) < 0 ||
	    resolve_path(&l->tls_ca_file, dir, map, at, sec, "tls_ca_file", error_r) < 0)
		goto out;
	ret = 0;
out:
	free(sec);
	return ret;
}

static int resolve_path(char **p, const char *dir, const struct cfg_node *map,
                        const struct cfg_node *fallback, const char *section, const char *key,
                        char **error_r);

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
			ret = resolve_path(&a->external.program, dir, ext, ext, sec, "program", error_r);
		free(sec);
	}
	if (ret == 0 && pam != NULL) {
		char *sec = xasprintf("%s.pam", section);
		ret = opt_apply_over(auth_pam_defs, pam, sec, &a->pam, error_r);
		if (ret == 0)
			ret = resolve_path(&a->pam.helper, dir, pam, pam, sec, "helper", error_r);
		free(sec);
	}
	return ret;
}

static void auth_config_free(struct auth_config *a)
{
	opt_free(auth_defs, a);
	opt_free(ldap_defs, &a->ldap);
	opt_free(auth_external_defs, &a->external);
	opt_free(auth_pam_defs, &a->pam);
}

/* is_host: the effective settings of a host (global ones may leave out
 * what every host then gives). */
static int check_auth(const struct auth_config *a, const struct cfg_node *map,
                      const struct cfg_node *fallback, const char *section, bool is_host,
                      char **error_r)
{
	static const char *const built[] = {
		"internal", "external", "anonymous",
#ifdef HAVE_BACKEND_PAM
		"pam",
#endif
		NULL
	};
	static const char *const later[] = { "ldap", "pam", NULL };
	if (a->methods.count == 0) {
		*error_r = error_for_key(map, fallback, section, "methods", "at least one method is required");
		return -1;
	}
	for (size_t i = 0; i < a->methods.count; i++) {
		const char *m = a->methods.items[i];
		for (size_t k = 0; k < i; k++) {
			if (strcmp(a->methods.items[k], m) == 0) {
				*error_r = error_for_key(map, fallback, section, "methods",
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
				*error_r = error_for_key(map, fallback, section, "methods",
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
			*error_r = error_for_key(map, fallback, section, "methods",
			                         "auth method '%s' is not built / not supported yet", m);
		else
			*error_r = error_for_key(map, fallback, section, "methods",
			                         "unknown auth method '%s' (known: internal, external, pam, "
			                         "ldap, anonymous)", m);
		return -1;
	}
	if (is_host && strlist_contains(&a->methods, "external")) {
		const struct cfg_node *ext = cfg_get(map, "external");
		char *sec = xasprintf("%s.external", section);
		int ret = 0;
		if (a->external.program == NULL) {
			*error_r = error_for_key(ext, map != NULL ? map : fallback, sec, "program",
			                         "required with the external method");
			ret = -1;
		} else if (a->external.timeout <= 0) {
			*error_r = error_for_key(ext, map != NULL ? map : fallback, sec, "timeout",
			                         "must be more than 0");
			ret = -1;
		}
		free(sec);
		if (ret < 0)
			return -1;
	}
	if (is_host && strlist_contains(&a->methods, "pam") && a->pam.timeout <= 0) {
		char *sec = xasprintf("%s.pam", section);
		*error_r = error_for_key(cfg_get(map, "pam"), map != NULL ? map : fallback, sec, "timeout",
		                         "must be more than 0");
		free(sec);
		return -1;
	}
	if (a->failure_window <= 0 && (a->max_failures_per_ip > 0 || a->max_failures_per_user > 0)) {
		*error_r = error_for_key(map, fallback, section, "failure_window", "must be more than 0");
		return -1;
	}
	return 0;
}

static int check_tls(const struct tls_config *t, const struct cfg_node *map,
                     const struct cfg_node *fallback, const char *section, char **error_r)
{
	if (t->min_version == NULL || (strcmp(t->min_version, "1.2") != 0 && strcmp(t->min_version, "1.3") != 0)) {
		*error_r = error_for_key(map, fallback, section, "min_version",
		                         "expected \"1.2\" or \"1.3\", got '%s'",
		                         t->min_version != NULL ? t->min_version : "");
		return -1;
	}
	return 0;
}

/* The directory relative paths are taken from: the config file's, made
 * absolute so that a later chdir changes nothing. */
static char *config_dir(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir;
	if (slash == NULL)
		dir = xstrdup(".");
	else if (slash == path)
		dir = xstrdup("/");
	else
		dir = xstrndup(path, (size_t)(slash - path));
	char *real = realpath(dir, NULL);
	if (real == NULL)
		return dir;
	free(dir);
	return real;
}

/* Make *p absolute (relative to dir); NULL stays NULL, "" is an error. */
static int resolve_path(char **p, const char *dir, const struct cfg_node *map,
                        const struct cfg_node *fallback, const char *section, const char *key,
                        char **error_r)
{
	if (*p == NULL)
		return 0;
	if (**p == '\0') {
		*error_r = error_for_key(map, fallback, section, key, "empty path");
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

/* ---- hosts and modules -------------------------------------------------- */

/* Lower-case a host name and check it as a domain: dot-separated labels of
 * 1..63 bytes, each byte a letter, digit, hyphen or non-ASCII (UTF-8).  The
 * JID code applies nameprep later.  One trailing dot is dropped. */
static int host_name_prepare(const char *in, char **out_r, const char **why_r)
{
	size_t len = strlen(in);
	if (len > 0 && in[len - 1] == '.')
		len--;
	if (len == 0) {
		*why_r = "empty host name";
		return -1;
	}
	if (len > 1023) {
		*why_r = "host name longer than 1023 bytes";
		return -1;
	}
	if (!utf8_valid(in, len)) {
		*why_r = "host name is not valid UTF-8";
		return -1;
	}
	char *name = xstrndup(in, len);
	size_t label = 0;
	for (size_t i = 0; i <= len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c == '.' || c == '\0') {
			if (label == 0 || label > 63) {
				*why_r = label == 0 ? "empty label in host name" : "label longer than 63 bytes in host name";
				free(name);
				return -1;
			}
			label = 0;
			continue;
		}
		name[i] = ascii_lower((char)c);
		c = (unsigned char)name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c >= 0x80)) {
			*why_r = "host names are made of letters, digits, hyphens and dots";
			free(name);
			return -1;
		}
		label++;
	}
	*out_r = name;
	return 0;
}

/* A module entry: a map of options, null (no options), true or false. */
static int check_modules(const struct cfg_node *mods, const char *section, char **error_r)
{
	if (node_is_null(mods))
		return 0;
	if (mods->type != CFG_MAP) {
		*error_r = error_at(mods, NULL, section, "expected a map of module name to options, got %s",
		                    node_kind(mods));
		return -1;
	}
	for (const struct cfg_node *c = mods->children; c != NULL; c = c->next) {
		bool b;
		if (c->type == CFG_MAP || node_is_null(c))
			continue;
		if (c->type == CFG_SCALAR && !c->quoted && parse_bool(c->value, &b) == 0)
			continue;
		char *v = c->type == CFG_SCALAR ? value_for_msg(c->value) : NULL;
		if (v != NULL)
			*error_r = error_at(c, section, c->key,
			                    "expected a map of module options, nothing, or false; got '%s'", v);
		else
			*error_r = error_at(c, section, c->key,
			                    "expected a map of module options, nothing, or false; got %s",
			                    node_kind(c));
		free(v);
		return -1;
	}
	return 0;
}

/* The merged copy of one entry: "false" for a disabled module, null for
 * enabled without options, else the options map. */
static struct cfg_node *module_entry_copy(const struct cfg_node *e, const char *file)
{
	bool b = true;
	if (e->type == CFG_SCALAR) {
		struct cfg_node *c = node_new(CFG_SCALAR, file, e->line, e->column);
		c->key_line = e->key_line;
		c->key_column = e->key_column;
		c->key = xstrdup(e->key);
		if (!node_is_null(e))
			(void)parse_bool(e->value, &b);
		c->value = xstrdup(b ? "" : "false");
		return c;
	}
	return node_copy(e, file);
}

/* global's entries, each replaced by the host's entry of the same name,
 * then the host's other entries. */
static struct cfg_node *modules_merge(const struct cfg_node *global, const struct cfg_node *host,
                                      const struct cfg_node *pos)
{
	char *file = xstrdup(pos->file);
	const struct cfg_node *where = !node_is_null(host) ? host : !node_is_null(global) ? global : pos;
	struct cfg_node *root = node_new(CFG_MAP, file, where->line, where->column);
	struct cfg_node **tail = &root->children;
	if (!node_is_null(global)) {
		for (const struct cfg_node *g = global->children; g != NULL; g = g->next) {
			const struct cfg_node *h = cfg_get(host, g->key);
			*tail = module_entry_copy(h != NULL ? h : g, file);
			tail = &(*tail)->next;
		}
	}
	if (!node_is_null(host)) {
		for (const struct cfg_node *h = host->children; h != NULL; h = h->next) {
			if (cfg_get(global, h->key) != NULL)
				continue;
			*tail = module_entry_copy(h, file);
			tail = &(*tail)->next;
		}
	}
	return root;
}

static bool module_disabled(const struct cfg_node *n)
{
	return n->type == CFG_SCALAR && !n->quoted && strcmp(n->value, "false") == 0;
}

const struct cfg_node *config_module(const struct host_config *host, const char *module, bool *enabled_r)
{
	const struct cfg_node *n = cfg_get(host->modules, module);
	bool enabled = n != NULL && !module_disabled(n);
	if (enabled_r != NULL)
		*enabled_r = enabled;
	if (!enabled || n->type != CFG_MAP || n->children == NULL)
		return NULL;
	return n;
}

const struct host_config *config_host(const struct parley_config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->nhosts; i++)
		if (ascii_eq_nocase(cfg->hosts[i].name, name))
			return &cfg->hosts[i];
	return NULL;
}

/* ---- the whole file ------------------------------------------------------ */

struct globals {
	struct storage_config storage;
	struct auth_config auth;
	struct tls_config tls;
};

static int load_limits(struct parley_config *cfg, const struct cfg_node *map, char **error_r)
{
	if (opt_apply(limits_defs, map, "limits", &cfg->limits, error_r) < 0)
		return -1;
	const struct limits_config *l = &cfg->limits;
	if (l->max_output < l->max_stanza_size) {
		*error_r = error_for_key(map, cfg->root, "limits", "max_output",
		                         "must be at least max_stanza_size (%zu bytes)", l->max_stanza_size);
		return -1;
	}
	if (l->handshake_timeout <= 0) {
		*error_r = error_for_key(map, cfg->root, "limits", "handshake_timeout", "must be more than 0");
		return -1;
	}
	if (l->keepalive <= 0) {
		*error_r = error_for_key(map, cfg->root, "limits", "keepalive", "must be more than 0");
		return -1;
	}
	return 0;
}

static int load_listen(struct parley_config *cfg, const struct cfg_node *list, char **error_r)
{
	if (node_is_null(list)) {
		*error_r = error_at(cfg->root, NULL, "listen", "required (a list of at least one listener)");
		return -1;
	}
	if (list->type != CFG_LIST || list->children == NULL) {
		*error_r = error_at(list, NULL, "listen", "expected a list of at least one listener, got %s",
		                    list->type == CFG_LIST ? "an empty list" : node_kind(list));
		return -1;
	}
	size_t count = 0;
	for (const struct cfg_node *c = list->children; c != NULL; c = c->next)
		count++;
	cfg->listen = xcalloc(count, sizeof(*cfg->listen));
	cfg->nlisten = count;
	size_t i = 0;
	for (const struct cfg_node *c = list->children; c != NULL; c = c->next, i++) {
		char *section = xasprintf("listen[%zu]", i);
		struct listen_config *l = &cfg->listen[i];
		int ret = -1;
		if (c->type != CFG_MAP) {
			*error_r = error_at(c, NULL, section, "expected a map, got %s", node_kind(c));
		} else if (opt_apply(listen_defs, c, section, l, error_r) < 0) {
			/* message set */
		} else if (cfg_get(c, "port") == NULL) {
			*error_r = error_at(c, section, "port", "required");
		} else {
			ret = 0;
			l->node = c;
			for (size_t k = 0; k < i; k++) {
				if (cfg->listen[k].port == l->port && strcmp(cfg->listen[k].address, l->address) == 0) {
					*error_r = error_at(cfg_get(c, "port"), section, "port",
					                    "listener [%s]:%u is also defined at line %u",
					                    l->address, l->port, cfg->listen[k].node->line);
					ret = -1;
					break;
				}
			}
		}
		free(section);
		if (ret < 0)
			return -1;
	}
	return 0;
}

static int load_globals(struct globals *g, const struct top_settings *top, const struct cfg_node *root,
                        const char *dir, char **error_r)
{
	if (opt_apply(storage_defs, top->storage, "storage", &g->storage, error_r) < 0 ||
	    check_storage(&g->storage, top->storage, root, "storage", error_r) < 0 ||
	    resolve_path(&g->storage.path, dir, top->storage, root, "storage", "path", error_r) < 0 ||
	    resolve_path(&g->storage.password_file, dir, top->storage, root, "storage", "password_file",
	                 error_r) < 0)
		return -1;
	opt_defaults(ldap_defs, &g->auth.ldap);
	opt_defaults(auth_external_defs, &g->auth.external);
	opt_defaults(auth_pam_defs, &g->auth.pam);
	if (opt_apply(auth_defs, top->auth, "auth", &g->auth, error_r) < 0 ||
	    load_ldap(&g->auth.ldap, top->auth, root, "auth", dir, error_r) < 0 ||
	    apply_auth_sub(&g->auth, top->auth, "auth", dir, error_r) < 0 ||
	    check_auth(&g->auth, top->auth, root, "auth", false, error_r) < 0)
		return -1;
	if (opt_apply(tls_defs, top->tls, "tls", &g->tls, error_r) < 0 ||
	    check_tls(&g->tls, top->tls, root, "tls", error_r) < 0 ||
	    resolve_path(&g->tls.certificate, dir, top->tls, root, "tls", "certificate", error_r) < 0 ||
	    resolve_path(&g->tls.key, dir, top->tls, root, "tls", "key", error_r) < 0)
		return -1;
	return check_modules(top->modules, "modules", error_r);
}

static void globals_free(struct globals *g)
{
	opt_free(storage_defs, &g->storage);
	auth_config_free(&g->auth);
	opt_free(tls_defs, &g->tls);
}

/* One host: h->name and h->node are set; the rest is filled here. */
static int load_host(struct host_config *h, const struct cfg_node *entry, const struct globals *g,
                     const struct top_settings *top, const char *dir, char **error_r)
{
	struct host_settings hs;
	char *sec_host = xasprintf("hosts.%s", h->name);
	char *sec_storage = section_name(h->name, "storage");
	char *sec_auth = section_name(h->name, "auth");
	char *sec_tls = section_name(h->name, "tls");
	char *sec_modules = section_name(h->name, "modules");
	int ret = -1;

	/* The copies first, so that config_free finds something to free
	 * whatever fails below. */
	opt_copy(storage_defs, &h->storage, &g->storage);
	opt_copy(auth_defs, &h->auth, &g->auth);
	opt_copy(ldap_defs, &h->auth.ldap, &g->auth.ldap);
	h->auth.ldap.node = g->auth.ldap.node;
	opt_copy(auth_external_defs, &h->auth.external, &g->auth.external);
	opt_copy(auth_pam_defs, &h->auth.pam, &g->auth.pam);
	opt_copy(tls_defs, &h->tls, &g->tls);

	if (entry != NULL && !node_is_null(entry) && entry->type != CFG_MAP) {
		char *v = entry->type == CFG_SCALAR ? value_for_msg(entry->value) : NULL;
		if (v != NULL)
			*error_r = error_at(entry, NULL, sec_host, "expected a map of host options, got '%s'", v);
		else
			*error_r = error_at(entry, NULL, sec_host, "expected a map of host options, got %s",
			                    node_kind(entry));
		free(v);
		goto out;
	}
	if (opt_apply(host_defs, entry, sec_host, &hs, error_r) < 0)
		goto out;
	h->admins = hs.admins;
	hs.admins.items = NULL;
	hs.admins.count = 0;
	for (size_t i = 0; i < h->admins.count; i++) {
		const char *a = h->admins.items[i];
		if (*a == '\0' || strchr(a, '/') != NULL || strchr(a, ' ') != NULL) {
			*error_r = error_for_key(entry, h->node, sec_host, "admins",
			                         "'%s' is not a bare JID", a);
			goto out;
		}
	}
	if (opt_apply_over(storage_defs, hs.storage, sec_storage, &h->storage, error_r) < 0 ||
	    check_storage(&h->storage, hs.storage, h->node, sec_storage, error_r) < 0 ||
	    resolve_path(&h->storage.path, dir, hs.storage, h->node, sec_storage, "path", error_r) < 0 ||
	    resolve_path(&h->storage.password_file, dir, hs.storage, h->node, sec_storage,
	                 "password_file", error_r) < 0)
		goto out;
	if (opt_apply_over(auth_defs, hs.auth, sec_auth, &h->auth, error_r) < 0 ||
	    load_ldap(&h->auth.ldap, hs.auth, h->node, sec_auth, dir, error_r) < 0 ||
	    apply_auth_sub(&h->auth, hs.auth, sec_auth, dir, error_r) < 0 ||
	    check_auth(&h->auth, hs.auth, h->node, sec_auth, true, error_r) < 0)
		goto out;
	if (opt_apply_over(tls_defs, hs.tls, sec_tls, &h->tls, error_r) < 0 ||
	    check_tls(&h->tls, hs.tls, h->node, sec_tls, error_r) < 0 ||
	    resolve_path(&h->tls.certificate, dir, hs.tls, h->node, sec_tls, "certificate", error_r) < 0 ||
	    resolve_path(&h->tls.key, dir, hs.tls, h->node, sec_tls, "key", error_r) < 0)
		goto out;
	if (check_modules(hs.modules, sec_modules, error_r) < 0)
		goto out;
	h->modules = modules_merge(top->modules, hs.modules, h->node);
	ret = 0;
out:
	free(sec_host);
	free(sec_storage);
	free(sec_auth);
	free(sec_tls);
	free(sec_modules);
	return ret;
}

static int load_hosts(struct parley_config *cfg, const struct top_settings *top, const struct globals *g,
                      const char *dir, char **error_r)
{
	const struct cfg_node *hosts = top->hosts;
	if (node_is_null(hosts)) {
		*error_r = error_at(cfg->root, NULL, "hosts", "required (at least one virtual host)");
		return -1;
	}
	if (hosts->type == CFG_SCALAR) {
		*error_r = error_at(hosts, NULL, "hosts",
		                    "expected a map of host names to options, or a list of host names; got %s",
		                    node_kind(hosts));
		return -1;
	}
	if (hosts->children == NULL) {
		*error_r = error_at(hosts, NULL, "hosts", "at least one virtual host is required, got %s",
		                    hosts->type == CFG_MAP ? "an empty map" : "an empty list");
		return -1;
	}
	size_t count = 0;
	for (const struct cfg_node *c = hosts->children; c != NULL; c = c->next)
		count++;
	cfg->hosts = xcalloc(count, sizeof(*cfg->hosts));
	cfg->nhosts = count;
	size_t i = 0;
	for (const struct cfg_node *c = hosts->children; c != NULL; c = c->next, i++) {
		struct host_config *h = &cfg->hosts[i];
		const char *raw;
		const struct cfg_node *entry;
		if (hosts->type == CFG_MAP) {
			raw = c->key;
			entry = c;
		} else {
			if (c->type != CFG_SCALAR || node_is_null(c)) {
				*error_r = error_at(c, NULL, "hosts", "expected a host name, got %s", node_kind(c));
				return -1;
			}
			raw = c->value;
			entry = NULL;
		}
		const char *why;
		if (host_name_prepare(raw, &h->name, &why) < 0) {
			char *v = value_for_msg(raw);
			*error_r = error_at_key(c, NULL, "hosts", "'%s': %s", v, why);
			free(v);
			return -1;
		}
		h->node = c;
		for (size_t k = 0; k < i; k++) {
			if (strcmp(cfg->hosts[k].name, h->name) == 0) {
				*error_r = error_at_key(c, NULL, "hosts", "duplicate host '%s' (first at line %u)",
				                        h->name, cfg->hosts[k].node->key_line);
				return -1;
			}
		}
		if (load_host(h, entry, g, top, dir, error_r) < 0)
			return -1;
	}
	return 0;
}

int config_load(const char *path, struct parley_config **cfg_r, char **error_r)
{
	struct parley_config *cfg = xcalloc(1, sizeof(*cfg));
	struct top_settings top;
	struct globals g;
	char *dir = NULL;
	int ret = -1;

	memset(&g, 0, sizeof(g));
	*cfg_r = NULL;
	cfg->file = xstrdup(path);
	struct strlist *old_sink = opt_set_warning_sink(&cfg->warnings);
	if (cfg_load_file(path, &cfg->root, error_r) < 0)
		goto out_nodir;
	if (node_is_null(cfg->root)) {
		/* "---" and nothing else: no keys at all. */
		const char *file = cfg->root->file;
		cfg->root->file = NULL;
		cfg_free(&cfg->root);
		cfg->root = node_new(CFG_MAP, file, 1, 1);
	}
	if (cfg->root->type != CFG_MAP) {
		*error_r = error_at(cfg->root, NULL, NULL, "the top level must be a map, got %s",
		                    node_kind(cfg->root));
		goto out_nodir;
	}
	dir = config_dir(path);
	if (opt_apply(top_defs, cfg->root, NULL, &top, error_r) < 0)
		goto out;
	cfg->loglevel = xstrdup(loglevel_names[top.loglevel]);
	cfg->log_file = top.log_file;
	cfg->pidfile = top.pidfile;
	cfg->user = top.user;
	cfg->group = top.group;
	if (resolve_path(&cfg->log_file, dir, cfg->root, cfg->root, NULL, "log_file", error_r) < 0 ||
	    resolve_path(&cfg->pidfile, dir, cfg->root, cfg->root, NULL, "pidfile", error_r) < 0)
		goto out;
	if (opt_apply(control_defs, top.control, "control", cfg, error_r) < 0 ||
	    resolve_path(&cfg->control_socket, dir, top.control, cfg->root, "control", "socket", error_r) < 0)
		goto out;
	if (load_limits(cfg, top.limits, error_r) < 0)
		goto out;
	if (load_listen(cfg, top.listen, error_r) < 0)
		goto out;
	if (load_globals(&g, &top, cfg->root, dir, error_r) < 0)
		goto out;
	if (load_hosts(cfg, &top, &g, dir, error_r) < 0)
		goto out;
	ret = 0;
out:
	free(dir);
	globals_free(&g);
out_nodir:
	opt_set_warning_sink(old_sink);
	if (ret < 0)
		config_free(&cfg);
	*cfg_r = cfg;
	return ret;
}

void config_free(struct parley_config **cfgp)
{
	struct parley_config *cfg = *cfgp;
	if (cfg == NULL)
		return;
	free(cfg->file);
	free(cfg->loglevel);
	free(cfg->log_file);
	free(cfg->pidfile);
	free(cfg->user);
	free(cfg->group);
	opt_free(control_defs, cfg);
	for (size_t i = 0; i < cfg->nlisten; i++)
		opt_free(listen_defs, &cfg->listen[i]);
	free(cfg->listen);
	for (size_t i = 0; i < cfg->nhosts; i++) {
		struct host_config *h = &cfg->hosts[i];
		free(h->name);
		opt_free(storage_defs, &h->storage);
		auth_config_free(&h->auth);
		opt_free(tls_defs, &h->tls);
		strlist_free(&h->admins);
		cfg_free(&h->modules);
	}
	free(cfg->hosts);
	cfg_free(&cfg->root);
	strlist_free(&cfg->warnings);
	xfree(cfgp);
}

/* ---- config-dump -------------------------------------------------------- */

/* A list item: "- " in place of the indent of its first line. */
static void dump_list_item(struct buf *out, const struct opt_def *defs, const void *in, int indent)
{
	struct buf item = { 0 };
	opt_dump(defs, in, &item, indent + 2);
	if (item.len > 0) {
		buf_printf(out, "%*s- ", indent, "");
		buf_append_str(out, item.data + indent + 2);
	}
	buf_free(&item);
}

static void dump_host(const struct host_config *h, struct buf *out, config_dump_modules_fn *modules)
{
	buf_append_str(out, "  ");
	yaml_scalar_out(out, h->name);
	buf_append_str(out, ":\n    storage:\n");
	opt_dump(storage_defs, &h->storage, out, 6);
	buf_append_str(out, "    auth:\n");
	for (const struct opt_def *d = auth_defs; d->key != NULL; d++) {
		if (d->type == OPT_NODE)
			continue;
		const struct opt_def one[] = { *d, OPT_END };
		opt_dump(one, &h->auth, out, 6);
	}
	/* the effective ldap options (opt_dump never shows the password) */
	buf_append_str(out, "      ldap:\n");
	opt_dump(ldap_defs, &h->auth.ldap, out, 8);
	buf_append_str(out, "      external:\n");
	opt_dump(auth_external_defs, &h->auth.external, out, 8);
	buf_append_str(out, "      pam:\n");
	opt_dump(auth_pam_defs, &h->auth.pam, out, 8);
	buf_append_str(out, "    tls:\n");
	opt_dump(tls_defs, &h->tls, out, 6);
	struct host_settings hs = { .admins = h->admins };
	const struct opt_def *admins = host_defs;
	while (strcmp(admins->key, "admins") != 0)
		admins++;
	const struct opt_def one[] = { *admins, OPT_END };
	opt_dump(one, &hs, out, 4);
	if (modules != NULL) {
		buf_append_str(out, "    modules:\n");
		modules(h, out, 6);
		return;
	}
	if (h->modules == NULL || h->modules->children == NULL) {
		buf_append_str(out, "    modules: {}\n");
		return;
	}
	buf_append_str(out, "    modules:\n");
	for (const struct cfg_node *m = h->modules->children; m != NULL; m = m->next) {
		buf_append_str(out, "      ");
		yaml_scalar_out(out, m->key);
		buf_append_str(out, ": ");
		if (module_disabled(m))
			buf_append_str(out, "false");
		else if (m->type == CFG_MAP)
			node_dump_flow(m, out);
		else
			buf_append_str(out, "{}");
		buf_append_str(out, "\n");
	}
}

void config_dump(const struct parley_config *cfg, const char *host, struct buf *out)
{
	config_dump_ex(cfg, host, out, NULL);
}

void config_dump_ex(const struct parley_config *cfg, const char *host, struct buf *out,
                    config_dump_modules_fn *modules)
{
	if (host != NULL) {
		const struct host_config *h = config_host(cfg, host);
		if (h == NULL) {
			buf_printf(out, "# no host '%s' in %s\n", host, cfg->file);
			return;
		}
		buf_printf(out, "# effective configuration of host %s (%s)\nhosts:\n", h->name, cfg->file);
		dump_host(h, out, modules);
		return;
	}
	buf_printf(out, "# effective configuration (%s)\n", cfg->file);
	struct top_settings top = {
		.loglevel = 1,
		.log_file = cfg->log_file,
		.pidfile = cfg->pidfile,
		.user = cfg->user,
		.group = cfg->group,
	};
	for (int i = 0; loglevel_names[i] != NULL; i++)
		if (cfg->loglevel != NULL && strcmp(cfg->loglevel, loglevel_names[i]) == 0)
			top.loglevel = i;
	for (const struct opt_def *d = top_defs; d->key != NULL; d++) {
		if (d->type == OPT_NODE)
			continue;
		const struct opt_def one[] = { *d, OPT_END };
		opt_dump(one, &top, out, 0);
	}
	buf_append_str(out, "control:\n");
	opt_dump(control_defs, cfg, out, 2);
	buf_append_str(out, "limits:\n");
	opt_dump(limits_defs, &cfg->limits, out, 2);
	buf_append_str(out, "listen:\n");
	for (size_t i = 0; i < cfg->nlisten; i++)
		dump_list_item(out, listen_defs, &cfg->listen[i], 2);
	buf_append_str(out, "hosts:\n");
	for (size_t i = 0; i < cfg->nhosts; i++)
		dump_host(&cfg->hosts[i], out, modules);
}
