/*
 * A strict reader for Erlang term text (see erlterm.h): a recursive
 * descent parser over a byte buffer, with the depth, term count and input
 * size bounded before anything is allocated for them.  Any thread; no
 * state outside the parse.
 *
 * Quoted text (atoms, strings, binary string segments) is read as UTF-8
 * characters.  A binary segment without /utf8 holds one byte per
 * character, so its characters must be below 256 (ejabberd writes a
 * binary's bytes that way when they are not valid UTF-8 text); with /utf8
 * the characters are written as UTF-8.
 */
#include "lib/erlterm.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_DEPTH 64
#define DEFAULT_TERMS 100000
#define DEFAULT_BYTES (16u * 1024 * 1024)

struct reader {
	const char *p, *start, *end;
	unsigned depth, max_depth;
	size_t terms, max_terms;
	char *error;
};

static void fail(struct reader *r, const char *fmt, ...) ATTR_PRINTF(2, 3);
static void fail(struct reader *r, const char *fmt, ...)
{
	if (r->error != NULL)
		return;
	va_list ap;
	va_start(ap, fmt);
	char *what = xvasprintf(fmt, ap);
	va_end(ap);
	r->error = xasprintf("at byte %zu: %s", (size_t)(r->p - r->start), what);
	free(what);
}

/* Skip white space and % comments. */
static void skip_ws(struct reader *r)
{
	while (r->p < r->end) {
		if (isspace((unsigned char)*r->p)) {
			r->p++;
		} else if (*r->p == '%') {
			while (r->p < r->end && *r->p != '\n')
				r->p++;
		} else {
			break;
		}
	}
}

static bool peek(struct reader *r, char c)
{
	skip_ws(r);
	return r->p < r->end && *r->p == c;
}

static bool accept(struct reader *r, const char *tok)
{
	skip_ws(r);
	size_t n = strlen(tok);
	if ((size_t)(r->end - r->p) >= n && memcmp(r->p, tok, n) == 0) {
		r->p += n;
		return true;
	}
	return false;
}

static struct erlterm *term_new(struct reader *r, enum erlterm_kind kind)
{
	if (++r->terms > r->max_terms) {
		fail(r, "more than %zu terms", r->max_terms);
		return NULL;
	}
	struct erlterm *t = xcalloc(1, sizeof(*t));
	t->kind = kind;
	return t;
}

/* One UTF-8 character of the input; -1 when the bytes are no UTF-8. */
static long utf8_next(struct reader *r)
{
	const unsigned char *s = (const unsigned char *)r->p;
	size_t left = (size_t)(r->end - r->p);
	if (left == 0)
		return -1;
	unsigned n;
	long c;
	if (s[0] < 0x80) {
		n = 1;
		c = s[0];
	} else if ((s[0] & 0xe0) == 0xc0) {
		n = 2;
		c = s[0] & 0x1f;
	} else if ((s[0] & 0xf0) == 0xe0) {
		n = 3;
		c = s[0] & 0x0f;
	} else if ((s[0] & 0xf8) == 0xf0) {
		n = 4;
		c = s[0] & 0x07;
	} else {
		return -1;
	}
	if (left < n)
		return -1;
	for (unsigned i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return -1;
		c = (c << 6) | (s[i] & 0x3f);
	}
	static const long min[] = { 0, 0, 0x80, 0x800, 0x10000 };
	if (c < min[n] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return -1;
	r->p += n;
	return c;
}

static void put_utf8(struct buf *b, long c)
{
	char out[4];
	size_t n;
	if (c < 0x80) {
		out[0] = (char)c;
		n = 1;
	} else if (c < 0x800) {
		out[0] = (char)(0xc0 | (c >> 6));
		out[1] = (char)(0x80 | (c & 0x3f));
		n = 2;
	} else if (c < 0x10000) {
		out[0] = (char)(0xe0 | (c >> 12));
		out[1] = (char)(0x80 | ((c >> 6) & 0x3f));
		out[2] = (char)(0x80 | (c & 0x3f));
		n = 3;
	} else {
		out[0] = (char)(0xf0 | (c >> 18));
		out[1] = (char)(0x80 | ((c >> 12) & 0x3f));
		out[2] = (char)(0x80 | ((c >> 6) & 0x3f));
		out[3] = (char)(0x80 | (c & 0x3f));
		n = 4;
	}
	buf_append(b, out, n);
}

static int hex_digit(char c)
{
	return c >= '0' && c <= '9'   ? c - '0'
	       : c >= 'a' && c <= 'f' ? c - 'a' + 10
	       : c >= 'A' && c <= 'F' ? c - 'A' + 10
	                              : -1;
}

/* The character after a backslash; -1 on an error (reported). */
static long read_escape(struct reader *r)
{
	if (r->p >= r->end) {
		fail(r, "the text ends in an escape");
		return -1;
	}
	char c = *r->p++;
	switch (c) {
	case 'b': return '\b';
	case 'd': return 0x7f;
	case 'e': return 0x1b;
	case 'f': return '\f';
	case 'n': return '\n';
	case 'r': return '\r';
	case 's': return ' ';
	case 't': return '\t';
	case 'v': return '\v';
	case '\\':
	case '"':
	case '\'': return c;
	case '^':
		if (r->p < r->end && ((*r->p >= 'a' && *r->p <= 'z') || (*r->p >= 'A' && *r->p <= 'Z') ||
		                      *r->p == '@' || *r->p == '[' || *r->p == '\\' || *r->p == ']' ||
		                      *r->p == '^' || *r->p == '_' || *r->p == '?')) {
			char c2 = *r->p++;
			return c2 == '?' ? 0x7f : (c2 & 0x1f);
		}
		fail(r, "a bad \\^ escape");
		return -1;
	case 'x': {
		long v = 0;
		if (r->p < r->end && *r->p == '{') {
			r->p++;
			unsigned n = 0;
			while (r->p < r->end && hex_digit(*r->p) >= 0 && n < 8) {
				v = v * 16 + hex_digit(*r->p++);
				n++;
			}
			if (n == 0 || r->p >= r->end || *r->p != '}' || v > 0x10ffff ||
			    (v >= 0xd800 && v <= 0xdfff)) {
				fail(r, "a bad \\x{...} escape");
				return -1;
			}
			r->p++;
			return v;
		}
		for (unsigned i = 0; i < 2; i++) {
			if (r->p >= r->end || hex_digit(*r->p) < 0) {
				fail(r, "a bad \\x escape");
				return -1;
			}
			v = v * 16 + hex_digit(*r->p++);
		}
		return v;
	}
	default:
		if (c >= '0' && c <= '7') {
			long v = c - '0';
			for (unsigned i = 0; i < 2 && r->p < r->end && *r->p >= '0' && *r->p <= '7'; i++)
				v = v * 8 + (*r->p++ - '0');
			return v;
		}
		r->p--;
		fail(r, "an unknown escape \\%c", c);
		return -1;
	}
}

/* Quoted text up to the closing quote (the opening one read): each
 * character appended to out as UTF-8, or with latin1 as one byte (a
 * binary segment without /utf8; a character above 255 is an error). */
static int read_quoted(struct reader *r, char quote, struct buf *out, bool latin1)
{
	for (;;) {
		if (r->p >= r->end) {
			fail(r, "the text ends inside a %s", quote == '"' ? "string" : "quoted atom");
			return -1;
		}
		if (*r->p == quote) {
			r->p++;
			return 0;
		}
		long c;
		if (*r->p == '\\') {
			r->p++;
			c = read_escape(r);
		} else {
			c = utf8_next(r);
			if (c < 0)
				fail(r, "bytes that are not UTF-8");
		}
		if (c < 0)
			return -1;
		if (latin1) {
			if (c > 0xff) {
				fail(r, "a character above 255 in a binary without /utf8");
				return -1;
			}
			char byte = (char)c;
			buf_append(out, &byte, 1);
		} else {
			put_utf8(out, c);
		}
	}
}

static struct erlterm *read_term(struct reader *r);

static void take_text(struct erlterm *t, struct buf *b)
{
	t->len = b->len;
	t->text = b->data != NULL ? buf_steal(b) : xstrdup("");
}

static struct erlterm *read_number(struct reader *r)
{
	const char *s = r->p;
	if (*r->p == '-' || *r->p == '+')
		r->p++;
	if (r->p >= r->end || !isdigit((unsigned char)*r->p)) {
		fail(r, "a sign without a number");
		return NULL;
	}
	while (r->p < r->end && (isdigit((unsigned char)*r->p) || *r->p == '_'))
		r->p++;
	bool is_float = false, based = false;
	if (r->p + 1 < r->end && *r->p == '.' && isdigit((unsigned char)r->p[1])) {
		is_float = true;
		r->p++;
		while (r->p < r->end && isdigit((unsigned char)*r->p))
			r->p++;
		if (r->p < r->end && (*r->p == 'e' || *r->p == 'E')) {
			r->p++;
			if (r->p < r->end && (*r->p == '-' || *r->p == '+'))
				r->p++;
			if (r->p >= r->end || !isdigit((unsigned char)*r->p)) {
				fail(r, "a float with a bad exponent");
				return NULL;
			}
			while (r->p < r->end && isdigit((unsigned char)*r->p))
				r->p++;
		}
	} else if (r->p < r->end && *r->p == '#') {
		based = true;
		r->p++;
		while (r->p < r->end && isalnum((unsigned char)*r->p))
			r->p++;
	}
	char num[80];
	size_t n = 0;
	for (const char *q = s; q < r->p; q++) {
		if (*q == '_')
			continue;
		if (n + 1 >= sizeof(num)) {
			fail(r, "a number too long");
			return NULL;
		}
		num[n++] = *q;
	}
	num[n] = '\0';
	struct erlterm *t = term_new(r, is_float ? ERLTERM_FLOAT : ERLTERM_INTEGER);
	if (t == NULL)
		return NULL;
	char *endp = NULL;
	errno = 0;
	if (is_float) {
		t->fp = strtod(num, &endp);
		if (errno != 0 || *endp != '\0' || !isfinite(t->fp))
			goto bad;
	} else if (based) {
		char *hash = strchr(num, '#');
		bool neg = num[0] == '-';
		long base = strtol(num + (neg || num[0] == '+'), &endp, 10);
		/* no sign after the '#' (strtoll would take one, and a negated
		 * LLONG_MIN overflows) */
		if (endp != hash || base < 2 || base > 36 || hash[1] == '\0' || hash[1] == '-' ||
		    hash[1] == '+' || hash[1] == ' ')
			goto bad;
		errno = 0;
		long long v = strtoll(hash + 1, &endp, (int)base);
		if (errno != 0 || *endp != '\0')
			goto bad;
		t->integer = neg ? -v : v;
	} else {
		t->integer = strtoll(num, &endp, 10);
		if (errno != 0 || *endp != '\0')
			goto bad;
	}
	return t;
bad:
	erlterm_free(&t);
	r->p = s;
	fail(r, "a number out of range or malformed ('%s')", num);
	return NULL;
}

/* <<...>>, the << read: segments "text", "text"/utf8, integers 0..255. */
static struct erlterm *read_binary(struct reader *r)
{
	struct erlterm *t = term_new(r, ERLTERM_BINARY);
	if (t == NULL)
		return NULL;
	struct buf b = { 0 };
	if (!accept(r, ">>")) {
		do {
			skip_ws(r);
			if (r->p < r->end && *r->p == '"') {
				r->p++;
				struct buf seg = { 0 };
				const char *seg_start = r->p;
				if (read_quoted(r, '"', &seg, false) < 0) {
					buf_free(&seg);
					goto fail;
				}
				if (accept(r, "/utf8")) {
					buf_append(&b, seg.data != NULL ? seg.data : "", seg.len);
				} else {
					/* one byte per character: read again as latin-1 */
					const char *after = r->p;
					r->p = seg_start;
					if (read_quoted(r, '"', &b, true) < 0) {
						buf_free(&seg);
						goto fail;
					}
					r->p = after;
				}
				buf_free(&seg);
			} else if (r->p < r->end && isdigit((unsigned char)*r->p)) {
				struct erlterm *n = read_number(r);
				if (n == NULL)
					goto fail;
				bool ok = n->kind == ERLTERM_INTEGER && n->integer >= 0 && n->integer <= 255;
				char byte = (char)n->integer;
				erlterm_free(&n);
				if (!ok) {
					fail(r, "a binary segment that is not a byte");
					goto fail;
				}
				buf_append(&b, &byte, 1);
			} else {
				fail(r, "a binary segment that is neither text nor a byte");
				goto fail;
			}
		} while (accept(r, ","));
		if (!accept(r, ">>")) {
			fail(r, "a binary without its >>");
			goto fail;
		}
	}
	take_text(t, &b);
	return t;
fail:
	buf_free(&b);
	erlterm_free(&t);
	return NULL;
}

/* The items of a tuple, list or map up to close (the opener read). */
static struct erlterm *read_items(struct reader *r, enum erlterm_kind kind, char close)
{
	if (++r->depth > r->max_depth) {
		fail(r, "nested deeper than %u", r->max_depth);
		return NULL;
	}
	struct erlterm *t = term_new(r, kind);
	if (t == NULL)
		return NULL;
	size_t cap = 0;
	if (!peek(r, close)) {
		do {
			for (unsigned k = 0; k < (kind == ERLTERM_MAP ? 2u : 1u); k++) {
				if (k == 1 && !accept(r, "=>")) {
					fail(r, "a map key without =>");
					goto fail;
				}
				struct erlterm *it = read_term(r);
				if (it == NULL)
					goto fail;
				if (t->n == cap) {
					cap = cap == 0 ? 8 : cap * 2;
					t->items = xrealloc(t->items, cap * sizeof(*t->items));
				}
				t->items[t->n++] = it;
			}
		} while (accept(r, ","));
	}
	if (kind == ERLTERM_LIST && peek(r, '|')) {
		fail(r, "an improper list");
		goto fail;
	}
	if (!peek(r, close)) {
		fail(r, r->p >= r->end ? "the text ends before a '%c'" : "'%c' expected", close);
		goto fail;
	}
	r->p++;
	r->depth--;
	return t;
fail:
	erlterm_free(&t);
	return NULL;
}

static struct erlterm *read_term(struct reader *r)
{
	skip_ws(r);
	if (r->p >= r->end) {
		fail(r, "the text ends where a term was expected");
		return NULL;
	}
	char c = *r->p;
	if (c == '{') {
		r->p++;
		return read_items(r, ERLTERM_TUPLE, '}');
	}
	if (c == '[') {
		r->p++;
		return read_items(r, ERLTERM_LIST, ']');
	}
	if (c == '#') {
		r->p++;
		if (r->p >= r->end || *r->p != '{') {
			fail(r, "a record or '#' that is not a map");
			return NULL;
		}
		r->p++;
		return read_items(r, ERLTERM_MAP, '}');
	}
	if (c == '<') {
		if (r->end - r->p >= 2 && r->p[1] == '<') {
			r->p += 2;
			return read_binary(r);
		}
		fail(r, "a pid, port or reference cannot be read");
		return NULL;
	}
	if (c == '"' || c == '\'') {
		struct erlterm *t = term_new(r, c == '"' ? ERLTERM_STRING : ERLTERM_ATOM);
		if (t == NULL)
			return NULL;
		r->p++;
		struct buf b = { 0 };
		if (read_quoted(r, c, &b, false) < 0) {
			buf_free(&b);
			erlterm_free(&t);
			return NULL;
		}
		take_text(t, &b);
		return t;
	}
	if (isdigit((unsigned char)c) || c == '-' || c == '+')
		return read_number(r);
	if (c >= 'a' && c <= 'z') {
		const char *s = r->p;
		while (r->p < r->end && (isalnum((unsigned char)*r->p) || *r->p == '_' || *r->p == '@'))
			r->p++;
		struct erlterm *t = term_new(r, ERLTERM_ATOM);
		if (t == NULL)
			return NULL;
		t->len = (size_t)(r->p - s);
		t->text = xstrndup(s, t->len);
		return t;
	}
	if ((c >= 'A' && c <= 'Z') || c == '_')
		fail(r, "a variable is no term");
	else if (c == '$')
		fail(r, "a $char is not read");
	else if (c > 0x20 && c < 0x7f)
		fail(r, "an unexpected '%c'", c);
	else
		fail(r, "an unexpected byte 0x%02x", (unsigned char)c);
	return NULL;
}

struct erlterm *erlterm_parse(const char *text, size_t len, const struct erlterm_limits *lim, char **error_r)
{
	*error_r = NULL;
	size_t max_bytes = lim != NULL && lim->max_bytes != 0 ? lim->max_bytes : DEFAULT_BYTES;
	if (len > max_bytes) {
		*error_r = xasprintf("the text is %zu bytes, more than the %zu allowed", len, max_bytes);
		return NULL;
	}
	struct reader r = {
		.p = text,
		.start = text,
		.end = text + len,
		.max_depth = lim != NULL && lim->max_depth != 0 ? lim->max_depth : DEFAULT_DEPTH,
		.max_terms = lim != NULL && lim->max_terms != 0 ? lim->max_terms : DEFAULT_TERMS,
	};
	struct erlterm *t = read_term(&r);
	if (t != NULL) {
		skip_ws(&r);
		if (r.p < r.end && *r.p == '.')
			r.p++;
		skip_ws(&r);
		if (r.p < r.end) {
			fail(&r, "text after the term");
			erlterm_free(&t);
		}
	}
	if (t == NULL)
		*error_r = r.error != NULL ? r.error : xstrdup("cannot read the term");
	else
		free(r.error);
	return t;
}

void erlterm_free(struct erlterm **tp)
{
	struct erlterm *t = *tp;
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->n; i++)
		erlterm_free(&t->items[i]);
	free(t->items);
	if (t->text != NULL)
		explicit_bzero(t->text, t->len); /* a room's password, say */
	free(t->text);
	free(t);
	*tp = NULL;
}

bool erlterm_is_atom(const struct erlterm *t, const char *name)
{
	return t != NULL && t->kind == ERLTERM_ATOM && strcmp(t->text, name) == 0;
}

const char *erlterm_text(const struct erlterm *t)
{
	return t != NULL && (t->kind == ERLTERM_ATOM || t->kind == ERLTERM_BINARY ||
	                     t->kind == ERLTERM_STRING)
	               ? t->text
	               : NULL;
}

const struct erlterm *erlterm_prop(const struct erlterm *list, const char *key)
{
	if (list == NULL || list->kind != ERLTERM_LIST)
		return NULL;
	for (size_t i = 0; i < list->n; i++) {
		const struct erlterm *p = list->items[i];
		if (p->kind == ERLTERM_TUPLE && p->n == 2 && erlterm_is_atom(p->items[0], key))
			return p->items[1];
	}
	return NULL;
}

static bool atom_bare(const char *s)
{
	if (!(*s >= 'a' && *s <= 'z'))
		return false;
	for (; *s != '\0'; s++)
		if (!isalnum((unsigned char)*s) && *s != '_' && *s != '@')
			return false;
	return true;
}

static void format_quoted(struct buf *b, const char *s, size_t len, char quote)
{
	buf_append(b, &quote, 1);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == (unsigned char)quote || c == '\\')
			buf_printf(b, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			buf_printf(b, "\\x{%x}", c);
		else
			buf_append(b, &s[i], 1);
	}
	buf_append(b, &quote, 1);
}

/* A float as Erlang writes one: digits on both sides of the point (printf's
 * "1e-08" or "3" is no Erlang float), exactly (17 significant digits). */
static void format_float(struct buf *b, double fp)
{
	char num[40];
	snprintf(num, sizeof(num), "%.17g", fp);
	if (strchr(num, '.') != NULL) {
		buf_append_str(b, num);
		return;
	}
	char *e = strchr(num, 'e');
	if (e == NULL) {
		buf_printf(b, "%s.0", num);
		return;
	}
	buf_append(b, num, (size_t)(e - num));
	buf_printf(b, ".0%s", e);
}

static void format_term(struct buf *b, const struct erlterm *t, size_t max)
{
	if (b->len > max)
		return;
	switch (t->kind) {
	case ERLTERM_ATOM:
		if (atom_bare(t->text))
			buf_append_str(b, t->text);
		else
			format_quoted(b, t->text, t->len, '\'');
		break;
	case ERLTERM_INTEGER: buf_printf(b, "%lld", (long long)t->integer); break;
	case ERLTERM_FLOAT: format_float(b, t->fp); break;
	case ERLTERM_STRING: format_quoted(b, t->text, t->len, '"'); break;
	case ERLTERM_BINARY: {
		bool text = true;
		for (size_t i = 0; i < t->len && text; i++)
			text = (unsigned char)t->text[i] >= 0x20 && (unsigned char)t->text[i] < 0x7f;
		buf_append_str(b, "<<");
		if (text && t->len > 0) {
			format_quoted(b, t->text, t->len, '"');
		} else {
			for (size_t i = 0; i < t->len && b->len <= max; i++)
				buf_printf(b, "%s%u", i > 0 ? "," : "", (unsigned char)t->text[i]);
		}
		buf_append_str(b, ">>");
		break;
	}
	case ERLTERM_TUPLE:
	case ERLTERM_LIST:
	case ERLTERM_MAP: {
		buf_append_str(b, t->kind == ERLTERM_TUPLE ? "{" : t->kind == ERLTERM_LIST ? "[" : "#{");
		for (size_t i = 0; i < t->n && b->len <= max; i++) {
			if (i > 0)
				buf_append_str(b, t->kind == ERLTERM_MAP && i % 2 == 1 ? " => " : ",");
			format_term(b, t->items[i], max);
		}
		buf_append_str(b, t->kind == ERLTERM_LIST ? "]" : "}");
		break;
	}
	}
}

char *erlterm_format(const struct erlterm *t, size_t max)
{
	struct buf b = { 0 };
	format_term(&b, t, max);
	if (b.len > max) {
		while (max > 0 && ((unsigned char)b.data[max] & 0xc0) == 0x80)
			max--; /* not inside a UTF-8 character */
		b.len = max;
		b.data[max] = '\0';
		buf_append_str(&b, "...");
	}
	return b.data != NULL ? buf_steal(&b) : xstrdup("");
}
