/*
 * The option engine: tables of struct opt_def ({key, type, offset,
 * default, range, doc}) fill typed settings structs from a struct cfg_node
 * map (lib/cfg.h), with one parser per option type, and print them back
 * as YAML (config-dump).  The tables are the single source of keys,
 * defaults and documentation.  Generic: each section of the server keeps
 * its own table beside its subsystem; nothing here knows of XMPP.
 *
 * Thread: whoever calls (the loop thread at start-up and on reload, and
 * parleyctl).  The only global is the warning sink, set and restored
 * around one load by the loop thread or parleyctl.
 *
 * Invariants: every error message names file, line, column and the key
 * as "section.key"; an unknown key is an error (with a "did you mean"
 * hint); a value out of a table's range is an error, never clamped; on
 * error opt_apply leaves nothing allocated in the settings struct; a
 * secret (a key holding "password", not "file") is never dumped.
 */
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/options.h"
#include "lib/log.h"

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

void strlist_take(struct strlist *l, char *s)
{
	l->items = xrealloc(l->items, (l->count + 1) * sizeof(*l->items));
	l->items[l->count++] = s;
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
	if (*unit == '\0' || strcasecmp(unit, "b") == 0)
		mult = 1;
	else if (strcasecmp(unit, "k") == 0 || strcasecmp(unit, "kb") == 0 || strcasecmp(unit, "kib") == 0)
		mult = 1ull << 10;
	else if (strcasecmp(unit, "m") == 0 || strcasecmp(unit, "mb") == 0 || strcasecmp(unit, "mib") == 0)
		mult = 1ull << 20;
	else if (strcasecmp(unit, "g") == 0 || strcasecmp(unit, "gb") == 0 || strcasecmp(unit, "gib") == 0)
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
	if (!(v >= 0 && v <= 1e12)) /* also refuses NaN */
		return -1;
	*v_r = v;
	return 0;
}

int opt_parse_bool(const char *s, bool *v_r)
{
	if (strcasecmp(s, "true") == 0 || strcasecmp(s, "yes") == 0 || strcasecmp(s, "on") == 0) {
		*v_r = true;
		return 0;
	}
	if (strcasecmp(s, "false") == 0 || strcasecmp(s, "no") == 0 || strcasecmp(s, "off") == 0) {
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
	static const char *const words[] = { "null", "~",   "true", "false", "yes", "no",
		                             "on",   "off", "y",    "n",     NULL };
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
		if (strcasecmp(s, words[i]) == 0)
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
		case '"': buf_append_str(out, "\\\""); break;
		case '\\': buf_append_str(out, "\\\\"); break;
		case '\n': buf_append_str(out, "\\n"); break;
		case '\t': buf_append_str(out, "\\t"); break;
		case '\r': buf_append_str(out, "\\r"); break;
		default:
			if (c < 0x20 || c == 0x7f)
				buf_printf(out, "\\x%02x", c);
			else
				buf_append(out, p, 1);
		}
	}
	buf_append_str(out, "\"");
}

void opt_dump_scalar(struct buf *out, const char *s)
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

void opt_dump_node(const struct cfg_node *n, struct buf *out)
{
	switch (n->type) {
	case CFG_SCALAR:
		if (cfg_is_null(n))
			buf_append_str(out, "~");
		else
			yaml_scalar_out_ex(out, n->value,
			                   !n->quoted); /* true stays true, "true" stays "true" */
		return;
	case CFG_LIST:
		buf_append_str(out, "[");
		for (const struct cfg_node *c = n->children; c != NULL; c = c->next) {
			opt_dump_node(c, out);
			if (c->next != NULL)
				buf_append_str(out, ", ");
		}
		buf_append_str(out, "]");
		return;
	case CFG_MAP:
		buf_append_str(out, "{");
		for (const struct cfg_node *c = n->children; c != NULL; c = c->next) {
			opt_dump_scalar(out, c->key);
			buf_append_str(out, ": ");
			/* Secrets are never printed, in raw subtrees either. */
			if (c->type == CFG_SCALAR && !cfg_is_null(c) && strstr(c->key, "file") == NULL &&
			    (strstr(c->key, "password") != NULL || strstr(c->key, "secret") != NULL))
				buf_append_str(out, "\"(set, not shown)\"");
			else
				opt_dump_node(c, out);
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
	case OPT_STRING: return sizeof(char *);
	case OPT_BOOL: return sizeof(bool);
	case OPT_INT:
	case OPT_ENUM: return sizeof(int);
	case OPT_UINT:
	case OPT_MODE: return sizeof(unsigned);
	case OPT_SIZE: return sizeof(size_t);
	case OPT_DURATION: return sizeof(double);
	case OPT_STRLIST: return sizeof(struct strlist);
	case OPT_NODE: return sizeof(const struct cfg_node *);
	case OPT_ALIAS:
	case OPT_REMOVED: return 0;
	}
	log_fatal("opt_field_size: bad option type %d", (int)type);
}

/* What a value of this type looks like, for "expected ..." messages. */
static char *opt_expected(const struct opt_def *d)
{
	switch (d->type) {
	case OPT_STRING: return xstrdup("a string");
	case OPT_BOOL: return xstrdup("a boolean (true/false, yes/no, on/off)");
	case OPT_INT: return xstrdup("an integer");
	case OPT_UINT: return xstrdup("an unsigned integer");
	case OPT_SIZE: return xstrdup("a size (e.g. 1024, 256K, 1M, 1G)");
	case OPT_DURATION: return xstrdup("a duration (e.g. 30, 30s, 500ms, 5m, 1h, 1d)");
	case OPT_MODE: return xstrdup("an octal file mode (e.g. \"0600\")");
	case OPT_STRLIST: return xstrdup("a string or a list of strings");
	case OPT_NODE:
	case OPT_ALIAS:
	case OPT_REMOVED: return xstrdup("a value");
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
	if (n->type == CFG_SCALAR && !cfg_is_null(n)) {
		char *v = cfg_value_for_msg(n->value);
		e = cfg_error_at(n, section, d->key, "expected %s, got '%s'", expected, v);
		free(v);
	} else {
		e = cfg_error_at(n, section, d->key, "expected %s, got %s", expected, cfg_kind(n));
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
		char *e = cfg_error_at(n, section, d->key, "'%s' is out of range (%s..%s)", n->value, lo.data,
		                       hi.data);
		buf_free(&lo);
		buf_free(&hi);
		return e;
	}
	return cfg_error_at(n, section, d->key, "'%s' is out of range (%ld..%ld)", n->value, d->min, d->max);
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
				if (c->type != CFG_SCALAR || cfg_is_null(c)) {
					*error_r = cfg_error_at(c, section, d->key,
					                        "list items must be strings, got %s",
					                        cfg_kind(c));
					strlist_free(&l);
					return -1;
				}
				strlist_add(&l, c->value);
			}
		} else if (n->type == CFG_SCALAR) {
			if (!cfg_is_null(n))
				strlist_add(&l, n->value);
		} else {
			*error_r = opt_type_error(d, n, section);
			return -1;
		}
		strlist_free(field);
		*(struct strlist *)field = l;
		return 0;
	}
	if (n->type != CFG_SCALAR || (cfg_is_null(n) && d->type != OPT_STRING)) {
		*error_r = opt_type_error(d, n, section);
		return -1;
	}
	/* An empty value means "not set": a string option without a default
	 * becomes unset, one with a default keeps what it has (the default, or
	 * the value a host section inherited), since the code behind it relies
	 * on a value. */
	if (cfg_is_null(n) && d->default_value != NULL)
		return 0;

	const char *s = n->value;
	unsigned long long u;
	long long i;
	switch (d->type) {
	case OPT_STRING:
		free(*(char **)field);
		*(char **)field = cfg_is_null(n) ? NULL : xstrdup(s);
		return 0;
	case OPT_BOOL:
		if (opt_parse_bool(s, field) < 0)
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
	case OPT_REMOVED: break;
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
			for (char *t = strtok_r(copy, ", ", &save); t != NULL;
			     t = strtok_r(NULL, ", ", &save))
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
			log_fatal("option '%s': bad built-in default '%s': %s", d->key, d->default_value,
			          error);
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

void opt_copy(const struct opt_def *defs, void *dst, const void *src)
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
		return cfg_error_at_key(c, section, c->key, "unknown key (did you mean '%s'?)", hint);
	return cfg_error_at_key(c, section, c->key, "unknown key");
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
	char *why = xvasprintf(fmt, ap);
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

int opt_apply_over(const struct opt_def *defs, const struct cfg_node *map, const char *section, void *out,
                   char **error_r)
{
	if (cfg_is_null(map))
		return 0;
	if (map->type != CFG_MAP) {
		*error_r = cfg_error_at(map, NULL, section != NULL && *section != '\0' ? section : NULL,
		                        "expected a map, got %s", cfg_kind(map));
		return -1;
	}
	for (const struct cfg_node *c = map->children; c != NULL; c = c->next) {
		const struct opt_def *d = opt_find(defs, c->key);
		if (d == NULL) {
			*error_r = unknown_key_error(defs, c, section);
			return -1;
		}
		if (d->type == OPT_REMOVED) {
			opt_warn(c, section, "no longer used (%s); ignored",
			         d->doc != NULL ? d->doc : "removed");
			continue;
		}
		if (d->type == OPT_ALIAS) {
			const struct opt_def *to = opt_find(defs, d->default_value);
			if (to == NULL || !opt_has_field(to))
				log_fatal("option alias '%s' names no option '%s'", d->key, d->default_value);
			if (cfg_get(map, to->key) != NULL) {
				*error_r = cfg_error_at_key(c, section, c->key,
				                            "is the old name of '%s', which is set too",
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
			opt_dump_scalar(out, s);
		return;
	}
	case OPT_BOOL: buf_append_str(out, *(const bool *)field ? "true" : "false"); return;
	case OPT_INT: buf_printf(out, "%d", *(const int *)field); return;
	case OPT_UINT: buf_printf(out, "%u", *(const unsigned *)field); return;
	case OPT_SIZE: size_out(out, *(const size_t *)field); return;
	case OPT_DURATION: duration_out(out, *(const double *)field); return;
	case OPT_MODE: buf_printf(out, "\"%04o\"", *(const unsigned *)field); return;
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
			opt_dump_scalar(out, l->items[i]);
		}
		buf_append_str(out, "]");
		return;
	}
	case OPT_NODE: {
		const struct cfg_node *n = *(const struct cfg_node *const *)field;
		if (n == NULL)
			buf_append_str(out, "~");
		else
			opt_dump_node(n, out);
		return;
	}
	case OPT_ALIAS:
	case OPT_REMOVED: return;
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
		    strstr(d->key, "file") == NULL &&
		    *(char *const *)((const char *)in + d->offset) != NULL) {
			buf_append_str(out, "\"(set, not shown)\"\n");
			continue;
		}
		opt_dump_value(d, in, out);
		buf_append_str(out, "\n");
	}
}
