/*
 * A strict reader for Erlang terms written as text (the way ejabberd keeps
 * a room's options in its SQL tables: [{title,<<"Room">>},{persistent,true}]),
 * for the import tools.  Any thread; no state.
 *
 * Read: atoms (bare or 'quoted'), integers (with a sign, Base#digits),
 * floats, binaries (<<"text">>, <<"text"/utf8>>, <<1,2,3>>, segments joined
 * by commas), strings ("text", a list of characters; kept as UTF-8 text),
 * tuples, proper lists, maps (#{K => V}), with Erlang's escapes in quoted
 * text.  An optional full stop may end the text.  Anything else (pids,
 * funs, records, improper lists, variables, trailing text) is an error that
 * names the byte offset.  The nesting depth, the number of terms and the
 * total size of text are bounded (struct erlterm_limits).
 */
#ifndef PARLEY_LIB_ERLTERM_H
#define PARLEY_LIB_ERLTERM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/util.h"

enum erlterm_kind {
	ERLTERM_ATOM,
	ERLTERM_INTEGER,
	ERLTERM_FLOAT,
	ERLTERM_BINARY,
	ERLTERM_STRING, /* "text": a list of characters, kept as UTF-8 */
	ERLTERM_TUPLE,
	ERLTERM_LIST,
	ERLTERM_MAP, /* items: key, value, key, value, ... (n is 2 × pairs) */
};

struct erlterm {
	enum erlterm_kind kind;
	char *text; /* ATOM (UTF-8 name), BINARY (its bytes), STRING (UTF-8); NUL-terminated */
	size_t len; /* bytes of text */
	int64_t integer;
	double fp;
	struct erlterm **items; /* TUPLE, LIST, MAP */
	size_t n;
};

struct erlterm_limits {
	unsigned max_depth; /* nesting of tuples, lists, maps; 0: 64 */
	size_t max_terms;   /* terms in all; 0: 100,000 */
	size_t max_bytes;   /* the input's length; 0: 16 MB */
};

/* The term text (len bytes) holds, or NULL with a malloc'd *error_r
 * ("at byte 12: ..."). lim NULL: the defaults.  Free with erlterm_free. */
struct erlterm *erlterm_parse(const char *text, size_t len, const struct erlterm_limits *lim, char **error_r);
/* Free t (its text wiped: it may hold a secret) and NULL *t. */
void erlterm_free(struct erlterm **t);

/* t is the atom name. */
bool erlterm_is_atom(const struct erlterm *t, const char *name);
/* t is an atom, binary or string: its text, else NULL. */
const char *erlterm_text(const struct erlterm *t);
/* The value of a property list's {key, Value} (the first one); NULL when
 * list is no list or has none. */
const struct erlterm *erlterm_prop(const struct erlterm *list, const char *key);
/* The term written back as Erlang text (binaries and strings with their
 * escapes), at most max bytes of it ("..." after a cut); malloc'd. */
char *erlterm_format(const struct erlterm *t, size_t max);

#endif
