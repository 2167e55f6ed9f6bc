/*
 * The configuration loader: lib/cfg.c's YAML reader and server/config.c
 * with every option table (listen, tls, storage, auth, limits, hosts) and
 * the module option checks that parleyd -t runs, on a file of any
 * content; a configuration that loads is dumped as config-dump does.
 *
 * Input: the file's bytes.
 *
 * Checks beyond the sanitizers: an error always comes with a message
 * naming the file; a loaded configuration has a host and a listener.
 */
#include "tests/fuzz/fuzz.h"
#include "lib/cfg.h"
#include "server/config.h"
#include "server/module.h"
#include "modules/builtin.h"

#include <assert.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_quiet();
	modules_register_builtin();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* the reader alone, from a string */
	char *text = fuzz_strndup(data, size);
	struct cfg_node *root = NULL;
	char *error = NULL;
	if (cfg_load_string(text, "fuzz.yml", &root, &error) == 0) {
		assert(root != NULL);
		cfg_free(&root);
	} else {
		assert(error != NULL && strncmp(error, "fuzz.yml", 8) == 0);
		free(error);
	}
	free(text);

	/* the whole loader, from a file */
	const char *path = fuzz_write_file(data, size, ".yml");
	struct parley_config *cfg = NULL;
	error = NULL;
	if (config_load(path, &cfg, &error) < 0) {
		assert(cfg == NULL);
		if (error == NULL || strstr(error, path) == NULL) {
			fprintf(stderr, "fuzz-config: an error that does not name the file: %s\n",
			        error != NULL ? error : "(none)");
			abort();
		}
		free(error);
		return 0;
	}
	assert(cfg->nhosts > 0 && cfg->nlisten > 0);
	for (size_t i = 0; i < cfg->nhosts; i++) {
		if (modules_check_host(&cfg->hosts[i], &error) < 0) {
			assert(error != NULL);
			free(error);
			error = NULL;
		}
	}
	struct buf out = { 0 };
	config_dump(cfg, NULL, &out);
	buf_free(&out);
	config_free(&cfg);
	return 0;
}
