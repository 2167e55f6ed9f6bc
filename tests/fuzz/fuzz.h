/*
 * What every libFuzzer target in tests/fuzz/ shares: the entry point's
 * prototype, quiet logging, and a reader that takes control values from
 * the front of the input (so one input file holds both the choices a
 * target makes, such as limits or chunk sizes, and the bytes it parses).
 * Built only with ./configure --enable-fuzz; see doc/developers-guide.md.
 */
#ifndef PARLEY_FUZZ_H
#define PARLEY_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include "lib/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Log nothing below errors (a target runs millions of inputs). */
void fuzz_quiet(void);

/* The unread part of an input. */
struct fuzz_input {
	const uint8_t *data;
	size_t len;
};

/* The next byte (0 once the input is used up). */
uint8_t fuzz_byte(struct fuzz_input *in);
/* The input up to the next occurrence of sep (not included, and skipped),
 * or all of the rest when there is none; *len_r is its length. */
const uint8_t *fuzz_until(struct fuzz_input *in, uint8_t sep, size_t *len_r);
/* A malloc'd NUL-terminated copy of len bytes. */
char *fuzz_strndup(const uint8_t *data, size_t len);
/* Write len bytes to a file of this process's own (created once, under
 * $TMPDIR or /tmp, removed at exit) named with suffix (".yml"), and
 * return its path. */
const char *fuzz_write_file(const uint8_t *data, size_t len, const char *suffix);

#endif
