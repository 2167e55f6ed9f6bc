/*
 * Helpers of the fuzz targets (fuzz.h).  Single-threaded, like libFuzzer's
 * runs.
 */
#include "tests/fuzz/fuzz.h"
#include "lib/log.h"

#include <unistd.h>

void fuzz_quiet(void)
{
	log_set_level(LOG_LEVEL_ERROR);
}

uint8_t fuzz_byte(struct fuzz_input *in)
{
	if (in->len == 0)
		return 0;
	in->len--;
	return *in->data++;
}

const uint8_t *fuzz_until(struct fuzz_input *in, uint8_t sep, size_t *len_r)
{
	const uint8_t *start = in->data;
	const uint8_t *end = in->len > 0 ? memchr(in->data, sep, in->len) : NULL;
	if (end == NULL) {
		*len_r = in->len;
		in->data += in->len;
		in->len = 0;
	} else {
		*len_r = (size_t)(end - start);
		in->len -= *len_r + 1;
		in->data = end + 1;
	}
	return start;
}

char *fuzz_strndup(const uint8_t *data, size_t len)
{
	char *s = xmalloc(len + 1);
	if (len > 0)
		memcpy(s, data, len);
	s[len] = '\0';
	return s;
}

static char *file_path;

static void remove_file(void)
{
	if (file_path != NULL)
		unlink(file_path);
}

const char *fuzz_write_file(const uint8_t *data, size_t len, const char *suffix)
{
	if (file_path == NULL) {
		const char *tmp = getenv("TMPDIR");
		file_path = xasprintf("%s/parley-fuzz-%ld%s", tmp != NULL && *tmp != '\0' ? tmp : "/tmp",
		                      (long)getpid(), suffix);
		atexit(remove_file);
	}
	FILE *f = fopen(file_path, "w");
	if (f == NULL || (len > 0 && fwrite(data, 1, len, f) != len) || fclose(f) != 0) {
		fprintf(stderr, "fuzz: cannot write %s\n", file_path);
		abort();
	}
	return file_path;
}
