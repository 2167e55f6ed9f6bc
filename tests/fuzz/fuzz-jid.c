/*
 * JID preparation (lib/jid.c): jid_parse and the three stringprep
 * profiles on any bytes.
 *
 * Input: the JID text (up to the first NUL, as the server only ever sees
 * NUL-free strings).
 *
 * Checks beyond the sanitizers: preparation is idempotent (a parsed JID
 * written out parses again to the same parts; a prepared part prepares to
 * itself); every part of a parsed JID is at most JID_PART_MAX bytes and
 * non-empty; the bare string is the full one without the resource.
 */
#include "tests/fuzz/fuzz.h"
#include "lib/jid.h"

#include <assert.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_quiet();
	return 0;
}

static void check_part(const char *part)
{
	if (part == NULL)
		return;
	size_t len = strlen(part);
	assert(len > 0 && len <= JID_PART_MAX);
}

static void check_idempotent(char *(*prep)(const char *), const char *s)
{
	char *once = prep(s);
	if (once == NULL)
		return;
	char *twice = prep(once);
	if (twice == NULL || strcmp(once, twice) != 0) {
		fprintf(stderr, "fuzz-jid: preparing '%s' again gives '%s'\n", once,
		        twice ? twice : "(refused)");
		abort();
	}
	free(twice);
	free(once);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_strndup(data, size);
	struct jid j;
	const char *err = NULL;
	if (jid_parse(s, &j, &err) == 0) {
		check_part(j.node);
		check_part(j.domain);
		check_part(j.resource);
		assert(j.domain != NULL);
		char *full = jid_to_string(&j);
		char *bare = jid_bare_string(&j);
		assert(strncmp(full, bare, strlen(bare)) == 0);
		struct jid again;
		if (jid_parse(full, &again, &err) != 0) {
			fprintf(stderr, "fuzz-jid: '%s' parses to '%s', which does not parse: %s\n", s, full,
			        err);
			abort();
		}
		if (!jid_equal(&j, &again)) {
			char *full2 = jid_to_string(&again);
			fprintf(stderr, "fuzz-jid: '%s' parses to '%s', which parses to '%s'\n", s, full,
			        full2);
			abort();
		}
		assert(jid_bare_equal(&j, &again));
		assert(jid_is_bare(&j) == (j.resource == NULL));
		struct jid copy;
		jid_copy(&copy, &j);
		assert(jid_equal(&copy, &j));
		jid_clear(&copy);
		jid_clear(&again);
		free(full);
		free(bare);
		jid_clear(&j);
	} else {
		assert(err != NULL);
	}
	check_idempotent(jid_nodeprep, s);
	check_idempotent(jid_nameprep, s);
	check_idempotent(jid_resourceprep, s);
	free(s);
	return 0;
}
