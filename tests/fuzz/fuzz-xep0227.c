/*
 * XEP-0227 import (ctl/ctl-xep0227.c, parleyctl import): a document of
 * any content imported through xep0227_import into the hosts of the
 * protocol tests (test.local, other.local, renamed.local: the seeds are
 * their exports) on the memory store, so the whole path runs: reading
 * and parsing the file, the host check, accounts (SCRAM credentials and
 * passwords), rosters, vCards, private XML, offline messages, privacy
 * and block lists.  Each
 * import opens fresh stores (the memory store keeps nothing after
 * storage_close), so inputs do not depend on each other.
 *
 * Input: the file's bytes.
 *
 * Checks beyond the sanitizers: a failed import says why; every import
 * reports what it did.
 */
#include "tests/fuzz/fuzz.h"
#include "ctl/ctl-xep0227.h"
#include "lib/log.h"

#include <assert.h>
#include <unistd.h>

static struct ev_loop *loop;
static struct parley_config *cfg;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_quiet();
	loop = ev_default_loop(EVFLAG_AUTO);
	const char *tmp = getenv("TMPDIR");
	char *path = xasprintf("%s/parley-fuzz-%ld-cfg.yml", tmp != NULL && *tmp != '\0' ? tmp : "/tmp",
	                       (long)getpid());
	FILE *f = fopen(path, "w");
	if (f == NULL)
		abort();
	fputs("listen:\n  - port: 5222\n"
	      "storage: { driver: memory }\n"
	      "hosts:\n  test.local: {}\n  other.local: {}\n  renamed.local: {}\n",
	      f);
	if (fclose(f) != 0)
		abort();
	char *error = NULL;
	if (config_load(path, &cfg, &error) < 0) {
		fprintf(stderr, "fuzz-xep0227: %s\n", error);
		abort();
	}
	unlink(path);
	free(path);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *path = fuzz_write_file(data, size, ".xml");
	struct buf report = { 0 };
	char *error = NULL;
	if (xep0227_import(loop, cfg, path, &report, &error) < 0) {
		assert(error != NULL && *error != '\0');
		free(error);
	} else {
		assert(error == NULL);
	}
	assert(report.len > 0);
	buf_free(&report);
	return 0;
}
