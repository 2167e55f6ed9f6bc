/*
 * The Erlang term text reader (lib/erlterm.c), which the ejabberd SQL
 * import runs on room options, archive preferences and other columns of a
 * database it does not control.
 *
 * Input: one control byte (its low six bits plus one are the depth limit),
 * then the term text (any bytes, NULs included).
 *
 * Checks beyond the sanitizers: a term that is read nests no deeper than
 * the limit; writing it back and reading that again gives a term that
 * writes back to the same text (the writer's output is the reader's
 * input); an error always comes with a message.
 */
#include "tests/fuzz/fuzz.h"
#include "lib/erlterm.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_quiet();
	return 0;
}

static unsigned depth_of(const struct erlterm *t)
{
	unsigned d = 0;
	if (t->kind != ERLTERM_TUPLE && t->kind != ERLTERM_LIST && t->kind != ERLTERM_MAP)
		return 0;
	for (size_t i = 0; i < t->n; i++) {
		unsigned c = depth_of(t->items[i]);
		if (c > d)
			d = c;
	}
	return d + 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_input in = { data, size };
	struct erlterm_limits lim = { .max_depth = (fuzz_byte(&in) & 63u) + 1, .max_terms = 10000 };
	char *error = NULL;
	struct erlterm *t = erlterm_parse((const char *)in.data, in.len, &lim, &error);
	if (t == NULL) {
		assert(error != NULL && error[0] != '\0');
		free(error);
		return 0;
	}
	assert(error == NULL);
	assert(depth_of(t) <= lim.max_depth);
	(void)erlterm_prop(t, "title");
	(void)erlterm_text(t);

	char *once = erlterm_format(t, (size_t)-1);
	struct erlterm *again = erlterm_parse(once, strlen(once), &lim, &error);
	if (again == NULL) {
		fprintf(stderr, "fuzz-erlterm: '%s' does not read back: %s\n", once, error);
		abort();
	}
	char *twice = erlterm_format(again, (size_t)-1);
	if (strcmp(once, twice) != 0) {
		fprintf(stderr, "fuzz-erlterm: '%s' reads back as '%s'\n", once, twice);
		abort();
	}
	free(once);
	free(twice);
	erlterm_free(&again);
	erlterm_free(&t);
	return 0;
}
