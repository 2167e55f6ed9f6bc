/*
 * Tests of the configuration: the YAML node tree (lib/cfg.c), the option
 * parsers and tables (lib/options.c), the whole-file loader with the
 * sections' checks (server/config.c and the *-config.c files beside each
 * subsystem: errors, per-host overrides, module merge, paths) and
 * config-dump.  Single-threaded.  Files are written to a fresh temporary
 * directory, removed at the end.  The example etc/parley.yml is found
 * through $PARLEY_SRCDIR or $top_srcdir (make check sets the latter).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "server/config.h"

static char tmpdir[64];
static char *tmpdir_real; /* realpath of tmpdir: what relative paths resolve to */

/* ---- helpers -------------------------------------------------------------- */

static char *write_file(const char *name, const char *text)
{
	char *path = xasprintf("%s/%s", tmpdir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
	return path;
}

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return NULL;
	struct buf b = { 0 };
	char chunk[4096];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_append(&b, chunk, n);
	fclose(f);
	return b.data != NULL ? buf_steal(&b) : xstrdup("");
}

/* Load text as tmpdir/t.yml. */
static int load_text(const char *text, struct parley_config **cfg_r, char **error_r)
{
	char *path = write_file("t.yml", text);
	*error_r = NULL;
	int ret = config_load(path, cfg_r, error_r);
	free(path);
	return ret;
}

static struct parley_config *load_ok(const char *text)
{
	struct parley_config *cfg;
	char *error;
	if (load_text(text, &cfg, &error) < 0)
		fail_msg("unexpected error: %s\n--- config:\n%s", error, text);
	assert_non_null(cfg);
	return cfg;
}

/* The load fails, the message starts with ".../t.yml:<pos>: " and contains
 * every one of the NULL-terminated fragments. */
static void expect_error(const char *text, const char *pos, ...)
{
	struct parley_config *cfg = (struct parley_config *)1;
	char *error;
	if (load_text(text, &cfg, &error) == 0)
		fail_msg("expected an error at %s, the load succeeded:\n%s", pos, text);
	assert_null(cfg);
	assert_non_null(error);
	char *prefix = xasprintf("%s/t.yml:%s: ", tmpdir, pos);
	if (!str_has_prefix(error, prefix))
		fail_msg("error '%s' does not start with '%s'", error, prefix);
	va_list ap;
	va_start(ap, pos);
	for (const char *frag = va_arg(ap, const char *); frag != NULL; frag = va_arg(ap, const char *))
		if (strstr(error, frag) == NULL)
			fail_msg("error '%s' does not contain '%s'", error, frag);
	va_end(ap);
	free(prefix);
	free(error);
}

#define LISTEN "listen:\n  - port: 5222\n"
#define HOSTS "hosts:\n  example.com: {}\n"

static char *find_srcdir_file(const char *rel)
{
	const char *dirs[] = { getenv("PARLEY_SRCDIR"), getenv("top_srcdir"), ".", "..", "../.." };
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		if (dirs[i] == NULL)
			continue;
		char *p = xasprintf("%s/%s", dirs[i], rel);
		if (access(p, R_OK) == 0)
			return p;
		free(p);
	}
	fail_msg("cannot find %s: set PARLEY_SRCDIR or top_srcdir", rel);
	return NULL;
}

/* ---- the node tree ------------------------------------------------------ */

static void test_tree_positions(void **state)
{
	(void)state;
	const char *text = "a: 1\n"
	                   "b:\n"
	                   "  - x\n"
	                   "  - 'y'\n"
	                   "c: { d: ~, e: \"\" , f: null }\n"
	                   "g:\n";
	struct cfg_node *root;
	char *error = NULL;
	assert_int_equal(cfg_load_string(text, "mem.yml", &root, &error), 0);
	assert_int_equal(root->type, CFG_MAP);
	assert_string_equal(root->file, "mem.yml");

	const struct cfg_node *a = cfg_get(root, "a");
	assert_non_null(a);
	assert_int_equal(a->type, CFG_SCALAR);
	assert_string_equal(a->value, "1");
	assert_false(a->quoted);
	assert_int_equal(a->line, 1);
	assert_int_equal(a->column, 4);
	assert_int_equal(a->key_line, 1);
	assert_int_equal(a->key_column, 1);
	assert_ptr_equal(a->file, root->file);

	const struct cfg_node *b = cfg_get(root, "b");
	assert_int_equal(b->type, CFG_LIST);
	assert_int_equal(b->key_line, 2);
	assert_int_equal(b->line, 3);
	assert_int_equal(b->column, 3);
	assert_string_equal(b->children->value, "x");
	assert_false(b->children->quoted);
	assert_string_equal(b->children->next->value, "y");
	assert_true(b->children->next->quoted);
	assert_int_equal(b->children->next->line, 4);
	assert_int_equal(b->children->next->column, 5);
	assert_null(b->children->next->next);

	const struct cfg_node *c = cfg_get(root, "c");
	assert_int_equal(c->type, CFG_MAP);
	const struct cfg_node *d = cfg_get(c, "d"), *e = cfg_get(c, "e"), *f = cfg_get(c, "f");
	assert_string_equal(d->value, "");
	assert_false(d->quoted);
	assert_string_equal(e->value, "");
	assert_true(e->quoted);
	assert_string_equal(f->value, "");
	assert_false(f->quoted);
	const struct cfg_node *g = cfg_get(root, "g");
	assert_int_equal(g->type, CFG_SCALAR);
	assert_string_equal(g->value, "");

	assert_null(cfg_get(root, "nope"));
	assert_null(cfg_get(a, "x"));
	assert_null(cfg_get(NULL, "x"));
	cfg_free(&root);
	assert_null(root);
	cfg_free(&root); /* twice is harmless */

	/* Only comments: an empty map. */
	assert_int_equal(cfg_load_string("# nothing\n", "e.yml", &root, &error), 0);
	assert_int_equal(root->type, CFG_MAP);
	assert_null(root->children);
	cfg_free(&root);
}

static void expect_tree_error(const char *text, const char *start, const char *frag)
{
	struct cfg_node *root = (struct cfg_node *)1;
	char *error = NULL;
	if (cfg_load_string(text, "s.yml", &root, &error) == 0)
		fail_msg("expected an error for:\n%s", text);
	assert_null(root);
	if (!str_has_prefix(error, start) || strstr(error, frag) == NULL)
		fail_msg("error '%s': expected prefix '%s' and '%s'", error, start, frag);
	free(error);
}

static void test_tree_errors(void **state)
{
	(void)state;
	expect_tree_error("a: 1\nb: [1, 2\n", "s.yml:3:1: ", "did not find expected");
	expect_tree_error("a: 1\n  b: 2\n", "s.yml:2:4: ", "mapping values are not allowed");
	expect_tree_error("a: 1\nb: 2\na: 3\n", "s.yml:3:1: ", "duplicate key 'a' (first at line 1)");
	expect_tree_error("x:\n  y: 1\n  y: 2\n", "s.yml:3:3: ", "duplicate key 'y'");
	expect_tree_error("a: &anchor 1\nb: *anchor\n", "s.yml:1:4: ", "anchors and aliases");
	expect_tree_error("a: 1\nb: *nothing\n", "s.yml:2:4: ", "anchors and aliases");
	expect_tree_error("a: !custom 1\n", "s.yml:1:4: ", "unsupported YAML tag '!custom'");
	expect_tree_error("a: !!binary aGVsbG8=\n", "s.yml:1:4: ", "unsupported YAML tag");
	expect_tree_error("? [a, b]\n: c\n", "s.yml:1:3: ", "map keys must be scalars");
	expect_tree_error("a: 1\n---\nb: 2\n", "s.yml:2:1: ", "only one YAML document");
	expect_tree_error("a: \"\\0\"\n", "s.yml:1:4: ", "NUL character");
	expect_tree_error("\"\": 1\n", "s.yml:1:1: ", "empty key");
	expect_tree_error("a: \xff\xfe\xfd\n", "s.yml:1:4: ", "invalid");

	/* Known tags are fine; !!str keeps a null word a string. */
	struct cfg_node *root;
	char *error;
	assert_int_equal(cfg_load_string("a: !!str null\nb: !!int 5\nc: !!null x\n", "t.yml", &root, &error),
	                 0);
	assert_string_equal(cfg_get(root, "a")->value, "null");
	assert_true(cfg_get(root, "a")->quoted);
	assert_string_equal(cfg_get(root, "b")->value, "5");
	assert_string_equal(cfg_get(root, "c")->value, "");
	cfg_free(&root);

	/* Deep nesting is refused, not a stack overflow. */
	struct buf deep = { 0 };
	for (int i = 0; i < 200; i++)
		buf_append_str(&deep, "[");
	for (int i = 0; i < 200; i++)
		buf_append_str(&deep, "]");
	expect_tree_error(deep.data, "s.yml:1:", "nesting deeper than");
	buf_free(&deep);
}

static void test_load_file_errors(void **state)
{
	(void)state;
	struct cfg_node *root;
	char *error;
	char *missing = xasprintf("%s/does-not-exist.yml", tmpdir);
	assert_int_equal(cfg_load_file(missing, &root, &error), -1);
	assert_non_null(strstr(error, "does-not-exist.yml: No such file"));
	free(error);
	free(missing);

	char *path = write_file("f.yml", "k: [a, b]\n");
	assert_int_equal(cfg_load_file(path, &root, &error), 0);
	assert_string_equal(root->file, path);
	assert_int_equal(cfg_get(root, "k")->type, CFG_LIST);
	cfg_free(&root);
	free(path);
}

/* ---- option tables -------------------------------------------------------- */

struct test_settings {
	char *s;
	bool b;
	int i;
	unsigned u;
	size_t size;
	double dur;
	int e;
	unsigned mode;
	struct strlist list;
	const struct cfg_node *node;
	unsigned ranged;
	size_t ranged_size;
};

static const char *const colours[] = { "red", "green", "blue", NULL };

static const struct opt_def test_defs[] = {
	{ "s", OPT_STRING, offsetof(struct test_settings, s), "dflt", NULL, 0, 0, "a string" },
	{ "b", OPT_BOOL, offsetof(struct test_settings, b), "yes", NULL, 0, 0, "a bool" },
	{ "i", OPT_INT, offsetof(struct test_settings, i), "-3", NULL, 0, 0, "an int" },
	{ "u", OPT_UINT, offsetof(struct test_settings, u), "7", NULL, 0, 0, "a uint" },
	{ "size", OPT_SIZE, offsetof(struct test_settings, size), "2K", NULL, 0, 0, "a size" },
	{ "dur", OPT_DURATION, offsetof(struct test_settings, dur), "1.5", NULL, 0, 0, "a duration" },
	{ "e", OPT_ENUM, offsetof(struct test_settings, e), "green", colours, 0, 0, "an enum" },
	{ "mode", OPT_MODE, offsetof(struct test_settings, mode), "0640", NULL, 0, 0, "a mode" },
	{ "list", OPT_STRLIST, offsetof(struct test_settings, list), "one", NULL, 0, 0, "a list" },
	{ "node", OPT_NODE, offsetof(struct test_settings, node), NULL, NULL, 0, 0, "a node" },
	{ "ranged", OPT_UINT, offsetof(struct test_settings, ranged), "10", NULL, 5, 20, "5..20" },
	{ "ranged_size", OPT_SIZE, offsetof(struct test_settings, ranged_size), "1K", NULL, 1024, 4096,
	  "1K..4K" },
	OPT_END
};

/* Apply "text" (a YAML map) with test_defs; return 0/-1. */
static int apply_text(const char *text, struct test_settings *ts, char **error_r)
{
	struct cfg_node *root;
	char *error = NULL;
	if (cfg_load_string(text, "o.yml", &root, &error) < 0)
		fail_msg("YAML error: %s", error);
	memset(ts, 0x5a, sizeof(*ts)); /* opt_apply must not trust the old contents */
	int ret = opt_apply(test_defs, root, "sec", ts, error_r);
	ts->node = NULL; /* points into root */
	cfg_free(&root);
	return ret;
}

static size_t apply_size(const char *value)
{
	struct test_settings ts;
	char *error = NULL;
	char *text = xasprintf("size: %s\n", value);
	if (apply_text(text, &ts, &error) < 0)
		fail_msg("size '%s': %s", value, error);
	free(text);
	size_t v = ts.size;
	opt_free(test_defs, &ts);
	return v;
}

static double apply_duration(const char *value)
{
	struct test_settings ts;
	char *error = NULL;
	char *text = xasprintf("dur: %s\n", value);
	if (apply_text(text, &ts, &error) < 0)
		fail_msg("duration '%s': %s", value, error);
	free(text);
	double v = ts.dur;
	opt_free(test_defs, &ts);
	return v;
}

static void expect_apply_error(const char *text, const char *expected)
{
	struct test_settings ts;
	char *error = NULL;
	if (apply_text(text, &ts, &error) == 0)
		fail_msg("'%s' was accepted", text);
	if (strcmp(error, expected) != 0)
		fail_msg("'%s': got error '%s', expected '%s'", text, error, expected);
	free(error);
	/* Already freed on error; freeing again is safe. */
	opt_free(test_defs, &ts);
}

static void test_opt_defaults(void **state)
{
	(void)state;
	struct test_settings ts;
	memset(&ts, 0x5a, sizeof(ts));
	opt_defaults(test_defs, &ts);
	assert_string_equal(ts.s, "dflt");
	assert_true(ts.b);
	assert_int_equal(ts.i, -3);
	assert_int_equal(ts.u, 7);
	assert_int_equal(ts.size, 2048);
	assert_true(ts.dur == 1.5);
	assert_int_equal(ts.e, 1);
	assert_int_equal(ts.mode, 0640);
	assert_int_equal(ts.list.count, 1);
	assert_string_equal(ts.list.items[0], "one");
	assert_true(strlist_contains(&ts.list, "one"));
	assert_false(strlist_contains(&ts.list, "two"));
	assert_null(ts.node);
	opt_free(test_defs, &ts);
	assert_null(ts.s);
	assert_null(ts.list.items);

	/* A NULL map means defaults only. */
	char *error = NULL;
	assert_int_equal(opt_apply(test_defs, NULL, "sec", &ts, &error), 0);
	assert_string_equal(ts.s, "dflt");
	opt_free(test_defs, &ts);
}

static void test_opt_values(void **state)
{
	(void)state;
	struct test_settings ts;
	char *error = NULL;
	assert_int_equal(apply_text("s: hello\nb: off\ni: -42\nu: 4000000000\ne: blue\nmode: 755\n"
	                            "list: [a, 'b c']\nnode: {x: 1}\nranged: 20\n",
	                            &ts, &error),
	                 0);
	assert_string_equal(ts.s, "hello");
	assert_false(ts.b);
	assert_int_equal(ts.i, -42);
	assert_int_equal(ts.u, 4000000000u);
	assert_int_equal(ts.e, 2);
	assert_int_equal(ts.mode, 0755);
	assert_int_equal(ts.list.count, 2);
	assert_string_equal(ts.list.items[1], "b c");
	assert_int_equal(ts.ranged, 20);
	assert_int_equal(ts.size, 2048); /* not given: default */
	opt_free(test_defs, &ts);

	/* Booleans, both cases; a string list from one scalar; an empty string
	 * list from null; a string set to null. */
	const char *trues[] = { "true", "True", "yes", "on", "ON" };
	for (size_t k = 0; k < sizeof(trues) / sizeof(trues[0]); k++) {
		char *text = xasprintf("b: %s\n", trues[k]);
		assert_int_equal(apply_text(text, &ts, &error), 0);
		assert_true(ts.b);
		opt_free(test_defs, &ts);
		free(text);
	}
	/* An empty value keeps the default of an option that has one: the
	 * code behind it relies on a value (an empty storage driver crashed
	 * the loader). */
	assert_int_equal(apply_text("b: No\nlist: single\ns: ~\n", &ts, &error), 0);
	assert_false(ts.b);
	assert_int_equal(ts.list.count, 1);
	assert_string_equal(ts.list.items[0], "single");
	assert_string_equal(ts.s, "dflt");
	opt_free(test_defs, &ts);
	assert_int_equal(apply_text("s:\n", &ts, &error), 0);
	assert_string_equal(ts.s, "dflt");
	opt_free(test_defs, &ts);
	assert_int_equal(apply_text("list:\ns: \"\"\nmode: \"0o700\"\n", &ts, &error), 0);
	assert_int_equal(ts.list.count, 0);
	assert_string_equal(ts.s, "");
	assert_int_equal(ts.mode, 0700);
	opt_free(test_defs, &ts);
}

static void test_sizes(void **state)
{
	(void)state;
	assert_int_equal(apply_size("0"), 0);
	assert_int_equal(apply_size("1024"), 1024);
	assert_int_equal(apply_size("256K"), 256 * 1024);
	assert_int_equal(apply_size("256k"), 256 * 1024);
	assert_int_equal(apply_size("256KiB"), 256 * 1024);
	assert_int_equal(apply_size("256KB"), 256 * 1024);
	assert_int_equal(apply_size("1M"), 1 << 20);
	assert_int_equal(apply_size("1MiB"), 1 << 20);
	assert_int_equal(apply_size("3 M"), 3 << 20);
	assert_int_equal(apply_size("1G"), 1 << 30);
	assert_int_equal(apply_size("100b"), 100);
	expect_apply_error(
	        "size: 1.5M\n",
	        "o.yml:1:7: key 'sec.size': expected a size (e.g. 1024, 256K, 1M, 1G), got '1.5M'");
	expect_apply_error("size: 10X\n",
	                   "o.yml:1:7: key 'sec.size': expected a size (e.g. 1024, 256K, 1M, 1G), got '10X'");
	expect_apply_error("size: -1\n",
	                   "o.yml:1:7: key 'sec.size': expected a size (e.g. 1024, 256K, 1M, 1G), got '-1'");
	expect_apply_error("size: 99999999999999999999999G\n",
	                   "o.yml:1:7: key 'sec.size': expected a size (e.g. 1024, 256K, 1M, 1G), "
	                   "got '99999999999999999999999G'");
	expect_apply_error("ranged_size: 512\n",
	                   "o.yml:1:14: key 'sec.ranged_size': '512' is out of range (1K..4K)");
	expect_apply_error("ranged_size: 5K\n",
	                   "o.yml:1:14: key 'sec.ranged_size': '5K' is out of range (1K..4K)");
}

/* Renamed and removed keys: accepted with a warning naming file:line:key. */
struct alias_settings {
	unsigned timeout;
	char *name;
};
static const struct opt_def alias_defs[] = {
	{ "timeout", OPT_UINT, offsetof(struct alias_settings, timeout), "5", NULL, 1, 100, "seconds" },
	{ "name", OPT_STRING, offsetof(struct alias_settings, name), NULL, NULL, 0, 0, "a name" },
	{ "old_timeout", OPT_ALIAS, 0, "timeout", NULL, 0, 0, NULL },
	{ "gone", OPT_REMOVED, 0, NULL, NULL, 0, 0, "the server decides this itself now" },
	OPT_END
};

static void test_opt_aliases(void **state)
{
	(void)state;
	struct strlist warnings = { 0 };
	struct strlist *old = opt_set_warning_sink(&warnings);
	struct alias_settings as;
	char *error = NULL;
	struct cfg_node *root = NULL;
	assert_int_equal(cfg_load_string("sec:\n  old_timeout: 7\n  gone: [1, 2]\n  name: x\n", "a.yml",
	                                 &root, &error),
	                 0);
	assert_int_equal(opt_apply(alias_defs, cfg_get(root, "sec"), "sec", &as, &error), 0);
	assert_int_equal(as.timeout, 7);
	assert_string_equal(as.name, "x");
	assert_int_equal(warnings.count, 2);
	assert_string_equal(
	        warnings.items[0],
	        "a.yml:2:3: key 'sec.old_timeout': renamed to 'timeout'; accepted, please rename it");
	assert_string_equal(
	        warnings.items[1],
	        "a.yml:3:3: key 'sec.gone': no longer used (the server decides this itself now); ignored");
	/* aliases and removed keys have no field: dumps skip them */
	struct buf out = { 0 };
	opt_dump(alias_defs, &as, &out, 0);
	assert_string_equal(out.data, "timeout: 7\nname: x\n");
	buf_free(&out);
	opt_free(alias_defs, &as);
	cfg_free(&root);
	/* the new key's checks apply to the old one */
	assert_int_equal(cfg_load_string("sec:\n  old_timeout: 1000\n", "a.yml", &root, &error), 0);
	assert_int_equal(opt_apply(alias_defs, cfg_get(root, "sec"), "sec", &as, &error), -1);
	assert_string_equal(error, "a.yml:2:16: key 'sec.old_timeout': '1000' is out of range (1..100)");
	free(error);
	cfg_free(&root);
	/* both names at once: an error */
	assert_int_equal(cfg_load_string("sec:\n  timeout: 3\n  old_timeout: 4\n", "a.yml", &root, &error),
	                 0);
	assert_int_equal(opt_apply(alias_defs, cfg_get(root, "sec"), "sec", &as, &error), -1);
	assert_string_equal(
	        error, "a.yml:3:3: key 'sec.old_timeout': is the old name of 'timeout', which is set too");
	free(error);
	cfg_free(&root);
	opt_set_warning_sink(old);
	strlist_free(&warnings);
}

static void test_durations(void **state)
{
	(void)state;
	assert_true(apply_duration("30") == 30);
	assert_true(apply_duration("1.5") == 1.5);
	assert_true(apply_duration("0") == 0);
	assert_true(apply_duration("500ms") == 0.5);
	assert_true(apply_duration("30s") == 30);
	assert_true(apply_duration("5m") == 300);
	assert_true(apply_duration("1h") == 3600);
	assert_true(apply_duration("1d") == 86400);
	assert_true(apply_duration("2 h") == 7200);
	assert_true(apply_duration(".25") == 0.25);
	const char *bad[] = { "-1", "abc", "1e3", "5x", "inf", "nan", "1.2.3", "s", "10 minutes" };
	for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		char *text = xasprintf("dur: %s\n", bad[k]);
		char *expected =
		        xasprintf("o.yml:1:6: key 'sec.dur': expected a duration (e.g. 30, 30s, 500ms, "
		                  "5m, 1h, 1d), got '%s'",
		                  bad[k]);
		expect_apply_error(text, expected);
		free(text);
		free(expected);
	}
}

static void test_opt_errors(void **state)
{
	(void)state;
	expect_apply_error("u: abc\n", "o.yml:1:4: key 'sec.u': expected an unsigned integer, got 'abc'");
	expect_apply_error("u: -1\n", "o.yml:1:4: key 'sec.u': expected an unsigned integer, got '-1'");
	expect_apply_error("u: 4294967296\n",
	                   "o.yml:1:4: key 'sec.u': expected an unsigned integer, got '4294967296'");
	expect_apply_error("u:\n",
	                   "o.yml:1:3: key 'sec.u': expected an unsigned integer, got an empty value");
	expect_apply_error("u: [1]\n", "o.yml:1:4: key 'sec.u': expected an unsigned integer, got a list");
	expect_apply_error("i: 1.5\n", "o.yml:1:4: key 'sec.i': expected an integer, got '1.5'");
	expect_apply_error("ranged: 4\n", "o.yml:1:9: key 'sec.ranged': '4' is out of range (5..20)");
	expect_apply_error("ranged: 21\n", "o.yml:1:9: key 'sec.ranged': '21' is out of range (5..20)");
	expect_apply_error(
	        "b: maybe\n",
	        "o.yml:1:4: key 'sec.b': expected a boolean (true/false, yes/no, on/off), got 'maybe'");
	expect_apply_error("e: purple\n",
	                   "o.yml:1:4: key 'sec.e': expected one of red|green|blue, got 'purple'");
	expect_apply_error("e: Red\n", "o.yml:1:4: key 'sec.e': expected one of red|green|blue, got 'Red'");
	expect_apply_error(
	        "mode: 0800\n",
	        "o.yml:1:7: key 'sec.mode': expected an octal file mode (e.g. \"0600\"), got '0800'");
	expect_apply_error(
	        "mode: 17777\n",
	        "o.yml:1:7: key 'sec.mode': expected an octal file mode (e.g. \"0600\"), got '17777'");
	expect_apply_error("s: {a: 1}\n", "o.yml:1:4: key 'sec.s': expected a string, got a map");
	expect_apply_error("list: [a, [b]]\n",
	                   "o.yml:1:11: key 'sec.list': list items must be strings, got a list");
	expect_apply_error("list: {a: b}\n",
	                   "o.yml:1:7: key 'sec.list': expected a string or a list of strings, got a map");
	expect_apply_error("s: x\nsize_: 1\n",
	                   "o.yml:2:1: key 'sec.size_': unknown key (did you mean 'size'?)");
	expect_apply_error("s: x\nzzzzzz: 1\n", "o.yml:2:1: key 'sec.zzzzzz': unknown key");

	/* A section that is not a map. */
	struct cfg_node *root;
	char *error = NULL;
	assert_int_equal(cfg_load_string("sec: [1, 2]\n", "o.yml", &root, &error), 0);
	struct test_settings ts;
	assert_int_equal(opt_apply(test_defs, cfg_get(root, "sec"), "sec", &ts, &error), -1);
	assert_string_equal(error, "o.yml:1:6: key 'sec': expected a map, got a list");
	free(error);
	cfg_free(&root);
}

static void test_opt_dump(void **state)
{
	(void)state;
	struct test_settings ts, back;
	char *error = NULL;
	assert_int_equal(
	        apply_text("s: \"a: b\"\nb: no\nsize: 3M\ndur: 90s\ne: blue\nlist: [x, 'yes', \"\"]\n"
	                   "mode: 0750\nranged_size: 1500\n",
	                   &ts, &error),
	        0);
	struct buf out = { 0 };
	opt_dump(test_defs, &ts, &out, 2);
	assert_string_equal(out.data, "  s: \"a: b\"\n"
	                              "  b: false\n"
	                              "  i: -3\n"
	                              "  u: 7\n"
	                              "  size: 3M\n"
	                              "  dur: 90s\n"
	                              "  e: blue\n"
	                              "  mode: \"0750\"\n"
	                              "  list: [x, \"yes\", \"\"]\n"
	                              "  node: ~\n"
	                              "  ranged: 10\n"
	                              "  ranged_size: 1500\n");

	/* What opt_dump prints reads back to the same values. */
	struct buf doc = { 0 };
	opt_dump(test_defs, &ts, &doc, 0);
	char *text = buf_steal(&doc);
	char *node_line = strstr(text, "node: ~\n");
	assert_non_null(node_line);
	memmove(node_line, node_line + 8, strlen(node_line + 8) + 1);
	assert_int_equal(apply_text(text, &back, &error), 0);
	assert_string_equal(back.s, ts.s);
	assert_int_equal(back.b, ts.b);
	assert_int_equal(back.size, ts.size);
	assert_true(back.dur == ts.dur);
	assert_int_equal(back.mode, ts.mode);
	assert_int_equal(back.list.count, 3);
	assert_string_equal(back.list.items[1], "yes");
	assert_string_equal(back.list.items[2], "");
	opt_free(test_defs, &back);
	free(text);
	opt_free(test_defs, &ts);
	buf_free(&out);

	/* Durations print in the largest exact unit. */
	const char *durs[][2] = { { "1.5", "1500ms" },    { "0", "0" },     { "2h", "2h" },
		                  { "120m", "2h" },       { "36h", "36h" }, { "48h", "2d" },
		                  { "0.0001", "0.0001s" } };
	for (size_t k = 0; k < sizeof(durs) / sizeof(durs[0]); k++) {
		char *t = xasprintf("dur: %s\n", durs[k][0]);
		assert_int_equal(apply_text(t, &ts, &error), 0);
		struct buf b = { 0 };
		const struct opt_def one[] = { test_defs[5], OPT_END };
		opt_dump(one, &ts, &b, 0);
		char *expected = xasprintf("dur: %s\n", durs[k][1]);
		assert_string_equal(b.data, expected);
		free(expected);
		buf_free(&b);
		opt_free(test_defs, &ts);
		free(t);
	}
}

/* ---- the whole file ----------------------------------------------------- */

static void test_example(void **state)
{
	(void)state;
	char *path = find_srcdir_file("etc/parley.yml");
	struct parley_config *cfg;
	char *error = NULL;
	if (config_load(path, &cfg, &error) < 0)
		fail_msg("%s", error);
	assert_string_equal(cfg->loglevel, "info");
	assert_null(cfg->log_file);
	assert_null(cfg->pidfile);
	assert_true(cfg->control_socket[0] == '/');
	assert_non_null(strstr(cfg->control_socket, "/etc/parley.sock"));
	assert_int_equal(cfg->control_mode, 0600);
	assert_int_equal(cfg->limits.max_stanza_size, 256 * 1024);
	assert_int_equal(cfg->limits.max_output, 1024 * 1024);
	assert_true(cfg->limits.idle_timeout == 600);
	assert_int_equal(cfg->nlisten, 2);
	assert_int_equal(cfg->listen[0].port, 5222);
	assert_string_equal(cfg->listen[0].address, "::");
	assert_int_equal(cfg->listen[0].starttls, STARTTLS_REQUIRED);
	assert_false(cfg->listen[0].direct_tls);
	assert_int_equal(cfg->listen[1].port, 5223);
	assert_true(cfg->listen[1].direct_tls);
	assert_int_equal(cfg->nhosts, 1);
	const struct host_config *h = config_host(cfg, "example.com");
	assert_non_null(h);
	assert_string_equal(h->storage.driver, "sqlite");
	assert_non_null(strstr(h->storage.path, "/etc/parley.db"));
	assert_true(h->tls.certificate[0] == '/');
	assert_true(strlist_contains(&h->admins, "admin@example.com"));
	assert_true(strlist_contains(&h->auth.methods, "internal"));
	bool on;
	const struct cfg_node *reg = config_module(h, "register", &on);
	assert_true(on);
	assert_non_null(reg);
	assert_string_equal(cfg_get(reg, "open")->value, "false");
	assert_null(config_module(h, "disco", &on));
	assert_true(on);
	config_free(&cfg);
	assert_null(cfg);
	free(path);
}

static void test_error_classes(void **state)
{
	(void)state;
	/* unknown keys, at every level, with the dotted key */
	expect_error("loglevl: info\n" LISTEN HOSTS, "1:1",
	             "key 'loglevl': unknown key (did you mean 'loglevel'?)", NULL);
	expect_error("limits:\n  max_dept: 3\n" LISTEN HOSTS, "2:3", "key 'limits.max_dept': unknown key",
	             NULL);
	expect_error("control:\n  sock: x\n" LISTEN HOSTS, "2:3", "key 'control.sock': unknown key", NULL);
	expect_error("listen:\n  - port: 5222\n    prot: 1\n" HOSTS, "3:5",
	             "key 'listen[0].prot': unknown key", NULL);
	expect_error(LISTEN "hosts:\n  example.com:\n    storage:\n      drvier: sqlite\n", "6:7",
	             "key 'hosts.example.com.storage.drvier': unknown key (did you mean 'driver'?)", NULL);
	expect_error(LISTEN "hosts:\n  example.com:\n    colour: red\n", "5:5",
	             "key 'hosts.example.com.colour': unknown key", NULL);
	/* bad types */
	expect_error("limits:\n  max_depth: abc\n" LISTEN HOSTS, "2:14",
	             "key 'limits.max_depth': expected an unsigned integer, got 'abc'", NULL);
	expect_error("limits:\n  idle_timeout: soon\n" LISTEN HOSTS, "2:17",
	             "key 'limits.idle_timeout': expected a duration", NULL);
	expect_error("limits: 5\n" LISTEN HOSTS, "1:9", "key 'limits': expected a map, got a scalar", NULL);
	expect_error("listen:\n  - port: 5222\n    direct_tls: maybe\n" HOSTS, "3:17",
	             "key 'listen[0].direct_tls': expected a boolean", NULL);
	expect_error("control:\n  mode: rw\n" LISTEN HOSTS, "2:9",
	             "key 'control.mode': expected an octal file mode", NULL);
	expect_error(LISTEN "hosts:\n  example.com:\n    admins: {a: b}\n", "5:13",
	             "key 'hosts.example.com.admins': expected a string or a list of strings, got a map",
	             NULL);
	expect_error(LISTEN "hosts:\n  example.com: 5\n", "4:16",
	             "key 'hosts.example.com': expected a map of host options, got '5'", NULL);
	/* out of range */
	expect_error("listen:\n  - port: 70000\n" HOSTS, "2:11",
	             "key 'listen[0].port': '70000' is out of range (1..65535)", NULL);
	expect_error("listen:\n  - port: 0\n" HOSTS, "2:11", "key 'listen[0].port': '0' is out of range",
	             NULL);
	expect_error("limits:\n  max_stanza_size: 512\n" LISTEN HOSTS, "2:20",
	             "key 'limits.max_stanza_size': '512' is out of range (1K..64M)", NULL);
	expect_error("auth:\n  scram_iterations: 1000\n" LISTEN HOSTS, "2:21",
	             "key 'auth.scram_iterations': '1000' is out of range (4096..10000000)", NULL);
	expect_error("limits:\n  max_stanza_size: 2M\n  max_output: 1M\n" LISTEN HOSTS, "3:15",
	             "key 'limits.max_output': must be at least max_stanza_size", NULL);
	expect_error("limits:\n  keepalive: 0\n" LISTEN HOSTS, "2:14",
	             "key 'limits.keepalive': must be more than 0", NULL);
	/* bad enum */
	expect_error("loglevel: loud\n" LISTEN HOSTS, "1:11",
	             "key 'loglevel': expected one of debug|info|notice|warning|error, got 'loud'", NULL);
	expect_error("listen:\n  - port: 5222\n    starttls: maybe\n" HOSTS, "3:15",
	             "key 'listen[0].starttls': expected one of required|optional|off, got 'maybe'", NULL);
	expect_error("listen:\n  - port: 5222\n    module: irc\n" HOSTS, "3:13",
	             "key 'listen[0].module': expected one of c2s|s2s|component|http", NULL);
	expect_error("tls:\n  min_version: 1.1\n" LISTEN HOSTS, "2:16",
	             "key 'tls.min_version': expected \"1.2\" or \"1.3\", got '1.1'", NULL);
	/* duplicate keys (YAML level) and duplicate hosts (after lower-casing) */
	expect_error("loglevel: info\nloglevel: debug\n" LISTEN HOSTS, "2:1",
	             "duplicate key 'loglevel' (first at line 1)", NULL);
	expect_error(LISTEN "hosts:\n  example.com: {}\n  Example.COM: {}\n", "5:3",
	             "key 'hosts': duplicate host 'example.com' (first at line 4)", NULL);
	expect_error(LISTEN "hosts: [a.example, b.example, A.example.]\n", "3:31",
	             "duplicate host 'a.example'", NULL);
	/* missing and empty required sections */
	expect_error(LISTEN, "1:1", "key 'hosts': required", NULL);
	expect_error(LISTEN "hosts:\n", "1:1", "key 'hosts': required", NULL);
	expect_error(LISTEN "hosts: {}\n", "3:8",
	             "key 'hosts': at least one virtual host is required, got an empty map", NULL);
	expect_error(LISTEN "hosts: []\n", "3:8",
	             "key 'hosts': at least one virtual host is required, got an empty list", NULL);
	expect_error(LISTEN "hosts: example.com\n", "3:8", "key 'hosts': expected a map of host names", NULL);
	expect_error(HOSTS, "1:1", "key 'listen': required", NULL);
	expect_error("listen: []\n" HOSTS, "1:9",
	             "key 'listen': expected a list of at least one listener, got an empty list", NULL);
	expect_error("listen:\n  port: 5222\n" HOSTS, "2:3", "key 'listen': expected a list", NULL);
	expect_error("listen:\n  - address: \"::\"\n" HOSTS, "2:5", "key 'listen[0].port': required", NULL);
	expect_error("listen:\n  - 5222\n" HOSTS, "2:5", "key 'listen[0]': expected a map, got a scalar",
	             NULL);
	expect_error("listen:\n  - port: 5222\n  - port: 5222\n" HOSTS, "3:11",
	             "key 'listen[1].port': listener [::]:5222 is also defined at line 2", NULL);
	expect_error("", "1:1", "key 'listen': required", NULL);
	expect_error("---\n", "1:1", "key 'listen': required", NULL);
	expect_error("- a\n- b\n", "1:1", "the top level must be a map, got a list", NULL);
	/* YAML syntax */
	expect_error("loglevel: info\nlimits:\n  max_depth: [1, 2\n" LISTEN HOSTS, "4:7",
	             "did not find expected ',' or ']' (while parsing a flow sequence at line 3)", NULL);
	expect_error("loglevel: info\n\tlimits: {}\n", "2:1",
	             "found a tab character that violates indentation", NULL);
	expect_error("loglevel: &x info\n" LISTEN HOSTS, "1:11", "anchors and aliases are not supported",
	             NULL);
	/* host names */
	expect_error(LISTEN "hosts:\n  exa_mple.com: {}\n", "4:3",
	             "key 'hosts': 'exa_mple.com': host names are made of", NULL);
	expect_error(LISTEN "hosts:\n  a..b: {}\n", "4:3", "empty label", NULL);
	expect_error(LISTEN "hosts: [ok.example, [x]]\n", "3:21",
	             "key 'hosts': expected a host name, got a list", NULL);
	/* storage drivers and auth methods not available */
#ifdef HAVE_BACKEND_PGSQL
	expect_error("storage:\n  driver: pgsql\n" LISTEN HOSTS, "2:3",
	             "key 'storage.dsn': storage driver 'pgsql' needs a dsn", NULL);
	expect_error(
	        "storage:\n  driver: pgsql\n  dsn: \"dbname=x\"\n  password: a\n  password_file: b\n" LISTEN
	                HOSTS,
	        "5:18", "key 'storage.password_file': give password or password_file, not both", NULL);
#else
	expect_error("storage:\n  driver: pgsql\n" LISTEN HOSTS, "2:11",
	             "key 'storage.driver': storage driver 'pgsql' is not built into this parleyd", NULL);
#endif
	expect_error("storage:\n  driver: oracle\n" LISTEN HOSTS, "2:11", "unknown storage driver 'oracle'",
	             NULL);
#ifdef HAVE_BACKEND_MYSQL
	/* only odbc takes a dialect */
	expect_error(LISTEN "hosts:\n  example.com:\n    storage: {driver: mysql}\n", "5:14",
	             "key 'hosts.example.com.storage.dsn': storage driver 'mysql' needs a dsn", NULL);
	expect_error("storage:\n  driver: mysql\n  dsn: \"host=db\"\n  dialect: mssql\n" LISTEN HOSTS, "4:12",
	             "key 'storage.dialect': only the odbc driver takes a dialect", NULL);
#else
	expect_error(LISTEN "hosts:\n  example.com:\n    storage: {driver: mysql}\n", "5:23",
	             "key 'hosts.example.com.storage.driver': storage driver 'mysql' is not built", NULL);
#endif
#ifdef HAVE_BACKEND_ODBC
	expect_error("storage:\n  driver: odbc\n  dsn: \"DSN=parley\"\n  dialect: oracle\n" LISTEN HOSTS,
	             "4:12", "key 'storage.dialect': expected pgsql, mysql or mssql, got 'oracle'", NULL);
#endif
#ifdef HAVE_BACKEND_LDAP
	expect_error("auth:\n  methods: [internal, ldap]\n" LISTEN HOSTS, "6:16",
	             "key 'hosts.example.com.auth.methods': auth method 'ldap' needs ldap.base", NULL);
	expect_error(LISTEN "hosts:\n  example.com:\n    auth: {methods: ldap}\n", "5:21",
	             "key 'hosts.example.com.auth.methods': auth method 'ldap' needs ldap.base", NULL);
	expect_error("auth:\n  ldap:\n    servers: [ldap://a, http://b]\n" LISTEN HOSTS, "3:14",
	             "key 'auth.ldap.servers': 'http://b' is not an ldap:// or ldaps:// URI", NULL);
	expect_error("auth:\n  ldap:\n    servers: []\n" LISTEN HOSTS, "3:14",
	             "key 'auth.ldap.servers': at least one server is required", NULL);
	expect_error("auth:\n  ldap: {password: x, password_file: /p}\n" LISTEN HOSTS, "2:38",
	             "key 'auth.ldap.password_file': give password or password_file, not both", NULL);
	expect_error("auth:\n  ldap: {method: md5}\n" LISTEN HOSTS, "2:18",
	             "key 'auth.ldap.method': expected one of bind|compare, got 'md5'", NULL);
	expect_error("auth:\n  ldap: {starttls: optional}\n" LISTEN HOSTS, "2:20",
	             "key 'auth.ldap.starttls': expected one of off|required", NULL);
	expect_error("auth:\n  ldap: {timeout: 0}\n" LISTEN HOSTS, "2:19",
	             "key 'auth.ldap.timeout': must be more than 0", NULL);
	expect_error(LISTEN "hosts:\n  example.com:\n    auth: {ldap: {bsae: x}}\n", "5:19",
	             "key 'hosts.example.com.auth.ldap.bsae': unknown key (did you mean 'base'?)", NULL);
#else
	expect_error("auth:\n  methods: [internal, ldap]\n" LISTEN HOSTS, "2:12",
	             "key 'auth.methods': auth method 'ldap' is not built / not supported yet", NULL);
#endif
#ifndef HAVE_BACKEND_PAM
	expect_error("auth:\n  methods: [internal, pam]\n" LISTEN HOSTS, "2:12",
	             "key 'auth.methods': auth method 'pam' is not built / not supported yet", NULL);
#endif
	expect_error(LISTEN "hosts:\n  example.com:\n    auth: {methods: external}\n", "5:11",
	             "key 'hosts.example.com.auth.external.program': required with the external method",
	             NULL);
	expect_error(LISTEN "hosts:\n  example.com:\n    auth: {methods: [internal, internal]}\n", "5:21",
	             "key 'hosts.example.com.auth.methods': auth method 'internal' is listed twice", NULL);
	expect_error("auth:\n  external: {instances: 0}\n" LISTEN HOSTS, "2:25",
	             "key 'auth.external.instances': '0' is out of range (1..64)", NULL);
	expect_error("auth:\n  max_failures_per_ip: 3\n  failure_window: 0\n" LISTEN HOSTS, "3:19",
	             "key 'auth.failure_window': must be more than 0", NULL);
	expect_error(LISTEN "hosts:\n  example.com:\n    auth: {methods: magic}\n", "5:21",
	             "key 'hosts.example.com.auth.methods': unknown auth method 'magic'", NULL);
	expect_error("auth:\n  methods: []\n" LISTEN HOSTS, "2:12",
	             "key 'auth.methods': at least one method is required", NULL);
	expect_error("storage:\n  timeout: 0\n" LISTEN HOSTS, "2:12",
	             "key 'storage.timeout': must be more than 0", NULL);
	/* paths */
	expect_error("log_file: \"\"\n" LISTEN HOSTS, "1:11", "key 'log_file': empty path", NULL);
	/* module entries */
	expect_error("modules:\n  disco: 5\n" LISTEN HOSTS, "2:10",
	             "key 'modules.disco': expected a map of module options, nothing, or false; got '5'",
	             NULL);
	expect_error(LISTEN "hosts:\n  example.com:\n    modules:\n      ping: [a]\n", "6:13",
	             "key 'hosts.example.com.modules.ping': expected a map of module options, nothing, or "
	             "false; got a list",
	             NULL);
	expect_error("modules: [disco]\n" LISTEN HOSTS, "1:10",
	             "key 'modules': expected a map of module name to options, got a list", NULL);
	expect_error("modules:\n  disco: \"false\"\n" LISTEN HOSTS, "2:10", "key 'modules.disco'", NULL);
}

static void test_minimal_defaults(void **state)
{
	(void)state;
	struct parley_config *cfg = load_ok(LISTEN "hosts: [Example.COM, example.org.]\n");
	assert_string_equal(cfg->loglevel, "info");
	assert_int_equal(cfg->control_mode, 0600);
	assert_null(cfg->control_group);
	assert_int_equal(cfg->limits.max_stanza_size, 256 * 1024);
	assert_int_equal(cfg->limits.max_depth, 64);
	assert_int_equal(cfg->limits.max_attrs, 64);
	assert_int_equal(cfg->limits.max_output, 1 << 20);
	assert_int_equal(cfg->limits.max_conn_per_ip, 64);
	assert_true(cfg->limits.handshake_timeout == 60);
	assert_true(cfg->limits.idle_timeout == 600);
	assert_true(cfg->limits.keepalive == 60);
	assert_int_equal(cfg->limits.auth_attempts, 3);
	assert_true(cfg->limits.auth_failure_delay == 1);
	assert_int_equal(cfg->listen[0].backlog, 1024);
	assert_int_equal(cfg->listen[0].module, LISTEN_C2S);
	assert_string_equal(cfg->listen[0].address, "::");
	assert_ptr_equal(cfg->listen[0].node, cfg_get(cfg->root, "listen")->children);
	assert_int_equal(cfg->nhosts, 2);
	assert_string_equal(cfg->hosts[0].name, "example.com");
	assert_string_equal(cfg->hosts[1].name, "example.org");
	assert_non_null(config_host(cfg, "example.org"));
	assert_non_null(config_host(cfg, "EXAMPLE.org"));
	assert_null(config_host(cfg, "example.net"));
	const struct host_config *h = &cfg->hosts[0];
	assert_string_equal(h->storage.driver, "sqlite");
	assert_int_equal(h->storage.pool_size, 2);
	assert_int_equal(h->storage.queue_max, 10000);
	assert_true(h->storage.timeout == 10);
	assert_null(h->storage.dsn);
	assert_int_equal(h->auth.methods.count, 1);
	assert_string_equal(h->auth.methods.items[0], "internal");
	assert_int_equal(h->auth.scram_iterations, 4096);
	assert_null(h->tls.certificate);
	assert_null(h->tls.key);
	assert_string_equal(h->tls.min_version, "1.2");
	assert_int_equal(h->admins.count, 0);
	bool on = true;
	assert_null(config_module(h, "disco", &on));
	assert_false(on);
	config_free(&cfg);

	/* The loglevel and a scalar auth method. */
	cfg = load_ok("loglevel: debug\nauth: {methods: internal}\n" LISTEN HOSTS);
	assert_string_equal(cfg->loglevel, "debug");
	assert_int_equal(cfg->hosts[0].auth.methods.count, 1);
	config_free(&cfg);
	config_free(&cfg); /* NULL: harmless */
}

#ifdef HAVE_BACKEND_LDAP
/* auth.ldap: global values, a host's map over them key by key, the service
 * password not shown by config-dump. */
static void test_ldap_override(void **state)
{
	(void)state;
	struct parley_config *cfg =
	        load_ok("auth:\n"
	                "  ldap:\n"
	                "    servers: [ldap://one, ldaps://two]\n"
	                "    base: \"ou=people,dc=example,dc=com\"\n"
	                "    bind_dn: cn=svc\n"
	                "    password: very-secret\n"
	                "    uids: [uid, mail]\n" LISTEN "hosts:\n"
	                "  a.example:\n"
	                "    auth:\n"
	                "      methods: [ldap, internal]\n"
	                "      ldap: {base: \"ou=a,dc=example,dc=com\", method: compare, pool_size: 5}\n"
	                "  b.example:\n");
	const struct host_config *a = config_host(cfg, "a.example");
	const struct host_config *b = config_host(cfg, "b.example");
	assert_string_equal(a->auth.ldap.base, "ou=a,dc=example,dc=com");
	assert_string_equal(b->auth.ldap.base, "ou=people,dc=example,dc=com");
	assert_int_equal(a->auth.ldap.servers.count, 2);
	assert_string_equal(a->auth.ldap.servers.items[1], "ldaps://two");
	assert_int_equal(a->auth.ldap.uids.count, 2);
	assert_int_equal(a->auth.ldap.method, LDAPCFG_METHOD_COMPARE);
	assert_int_equal(b->auth.ldap.method, LDAPCFG_METHOD_BIND);
	assert_int_equal(a->auth.ldap.pool_size, 5);
	assert_int_equal(b->auth.ldap.pool_size, 2);
	assert_string_equal(a->auth.ldap.password, "very-secret");
	assert_false(a->auth.ldap.referrals);
	assert_int_equal(a->auth.ldap.deref, 0);
	assert_true(a->auth.ldap.tls_verify);
	struct buf out = { 0 };
	config_dump(cfg, NULL, &out);
	assert_null(strstr(out.data, "very-secret"));
	assert_non_null(strstr(out.data, "        password: \"(set, not shown)\""));
	assert_non_null(strstr(out.data, "        base: \"ou=a,dc=example,dc=com\""));
	buf_free(&out);
	config_free(&cfg);
}
#endif

static void test_host_override(void **state)
{
	(void)state;
	struct parley_config *cfg = load_ok("storage:\n"
	                                    "  path: /var/lib/parley/all.db\n"
	                                    "  pool_size: 4\n"
	                                    "  timeout: 30s\n"
	                                    "auth:\n"
	                                    "  scram_iterations: 5000\n"
	                                    "tls:\n"
	                                    "  certificate: /etc/ssl/all.pem\n"
	                                    "  key: /etc/ssl/all.key\n"
	                                    "  ciphers: HIGH\n" LISTEN "hosts:\n"
	                                    "  a.example:\n"
	                                    "    storage:\n"
	                                    "      path: /srv/a.db\n"
	                                    "      queue_max: 7\n"
	                                    "    auth: {scram_iterations: 10000}\n"
	                                    "    tls:\n"
	                                    "      certificate: /etc/ssl/a.pem\n"
	                                    "      key: /etc/ssl/a.key\n"
	                                    "      min_version: \"1.3\"\n"
	                                    "    admins: [boss@a.example, other@a.example]\n"
	                                    "  b.example:\n"
	                                    "  c.example:\n"
	                                    "    storage: {}\n"
	                                    "    admins: root@c.example\n");
	const struct host_config *a = config_host(cfg, "a.example");
	const struct host_config *b = config_host(cfg, "b.example");
	const struct host_config *c = config_host(cfg, "c.example");
	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(c);
	/* a: given keys replace, others keep the global value, not the default */
	assert_string_equal(a->storage.path, "/srv/a.db");
	assert_int_equal(a->storage.queue_max, 7);
	assert_int_equal(a->storage.pool_size, 4);
	assert_true(a->storage.timeout == 30);
	assert_string_equal(a->storage.driver, "sqlite");
	assert_int_equal(a->auth.scram_iterations, 10000);
	assert_string_equal(a->auth.methods.items[0], "internal");
	assert_string_equal(a->tls.certificate, "/etc/ssl/a.pem");
	assert_string_equal(a->tls.key, "/etc/ssl/a.key");
	assert_string_equal(a->tls.ciphers, "HIGH");
	assert_string_equal(a->tls.min_version, "1.3");
	assert_int_equal(a->admins.count, 2);
	assert_true(strlist_contains(&a->admins, "other@a.example"));
	assert_int_equal(cfg_get(a->node, "admins")->line, 23);
	/* b: everything global */
	assert_string_equal(b->storage.path, "/var/lib/parley/all.db");
	assert_int_equal(b->storage.pool_size, 4);
	assert_int_equal(b->storage.queue_max, 10000);
	assert_int_equal(b->auth.scram_iterations, 5000);
	assert_string_equal(b->tls.certificate, "/etc/ssl/all.pem");
	assert_string_equal(b->tls.min_version, "1.2");
	assert_int_equal(b->admins.count, 0);
	/* c: an empty section changes nothing; one admin as a scalar */
	assert_string_equal(c->storage.path, "/var/lib/parley/all.db");
	assert_int_equal(c->admins.count, 1);
	assert_string_equal(c->admins.items[0], "root@c.example");
	/* the hosts do not share strings */
	assert_ptr_not_equal(b->storage.path, c->storage.path);
	config_free(&cfg);

	/* An override is checked like the global section. */
	expect_error(LISTEN "hosts:\n  example.com:\n    auth:\n      scram_iterations: 12\n", "6:25",
	             "key 'hosts.example.com.auth.scram_iterations': '12' is out of range", NULL);
	expect_error(LISTEN "hosts:\n  example.com:\n    tls: yes\n", "5:10",
	             "key 'hosts.example.com.tls': expected a map, got a scalar", NULL);
	expect_error(LISTEN "hosts:\n  example.com:\n    admins: [\"a@b/res\"]\n", "5:13",
	             "key 'hosts.example.com.admins': 'a@b/res' is not a bare JID", NULL);
}

static void test_module_merge(void **state)
{
	(void)state;
	struct parley_config *cfg = load_ok("modules:\n"
	                                    "  disco: {}\n"
	                                    "  register: { open: false, captcha: x }\n"
	                                    "  ping:\n"
	                                    "  time: true\n"
	                                    "  vcard: { size: 8K }\n"
	                                    "  version: false\n" LISTEN "hosts:\n"
	                                    "  a.example:\n"
	                                    "    modules:\n"
	                                    "      register: { open: true }\n"
	                                    "      ping: false\n"
	                                    "      roster: {}\n"
	                                    "      vcard: off\n"
	                                    "      version: { show_os: no }\n"
	                                    "  b.example: {}\n");
	const struct host_config *a = config_host(cfg, "a.example");
	const struct host_config *b = config_host(cfg, "b.example");
	bool on;
	const struct cfg_node *n;

	/* b: the global set */
	assert_null(config_module(b, "disco", &on));
	assert_true(on);
	n = config_module(b, "register", &on);
	assert_true(on);
	assert_non_null(n);
	assert_string_equal(cfg_get(n, "open")->value, "false");
	assert_string_equal(cfg_get(n, "captcha")->value, "x");
	assert_null(config_module(b, "ping", &on));
	assert_true(on);
	assert_null(config_module(b, "time", &on));
	assert_true(on);
	assert_null(config_module(b, "version", &on));
	assert_false(on);
	assert_non_null(cfg_get(b->modules, "version")); /* disabled, not absent */
	assert_null(config_module(b, "roster", &on));
	assert_false(on);
	assert_null(cfg_get(b->modules, "roster"));

	/* a: the host's entry replaces the global one as a whole */
	n = config_module(a, "register", &on);
	assert_true(on);
	assert_string_equal(cfg_get(n, "open")->value, "true");
	assert_null(cfg_get(n, "captcha"));
	assert_int_equal(n->line, 13);
	assert_int_equal(n->key_line, 13);
	assert_int_equal(n->key_column, 7);
	assert_null(config_module(a, "ping", &on));
	assert_false(on);
	assert_null(config_module(a, "vcard", &on));
	assert_false(on);
	assert_null(config_module(a, "roster", &on));
	assert_true(on);
	n = config_module(a, "version", &on);
	assert_true(on);
	assert_string_equal(cfg_get(n, "show_os")->value, "no");
	assert_null(config_module(a, "disco", &on));
	assert_true(on);
	assert_null(config_module(a, "nothing", NULL));

	/* The merged copy outlives the file's tree and keeps the file name. */
	struct cfg_node *root = cfg->root;
	assert_ptr_not_equal(a->modules->file, root->file);
	assert_string_equal(a->modules->file, root->file);
	assert_string_equal(n->file, cfg->file);
	config_free(&cfg);
}

static void test_relative_paths(void **state)
{
	(void)state;
	struct parley_config *cfg = load_ok("log_file: logs/parley.log\n"
	                                    "pidfile: /run/parley.pid\n"
	                                    "control: { socket: ./ctl.sock }\n"
	                                    "tls: { certificate: cert.pem, key: /abs/key.pem }\n"
	                                    "storage: { path: data/parley.db }\n" LISTEN "hosts:\n"
	                                    "  a.example:\n"
	                                    "    tls: { key: a.key }\n"
	                                    "    storage: { path: a.db }\n"
	                                    "  b.example:\n");
	char *want = xasprintf("%s/logs/parley.log", tmpdir_real);
	assert_string_equal(cfg->log_file, want);
	free(want);
	assert_string_equal(cfg->pidfile, "/run/parley.pid");
	want = xasprintf("%s/ctl.sock", tmpdir_real);
	assert_string_equal(cfg->control_socket, want);
	free(want);
	const struct host_config *a = config_host(cfg, "a.example");
	const struct host_config *b = config_host(cfg, "b.example");
	want = xasprintf("%s/cert.pem", tmpdir_real);
	assert_string_equal(a->tls.certificate, want);
	assert_string_equal(b->tls.certificate, want);
	free(want);
	want = xasprintf("%s/a.key", tmpdir_real);
	assert_string_equal(a->tls.key, want);
	free(want);
	assert_string_equal(b->tls.key, "/abs/key.pem");
	want = xasprintf("%s/a.db", tmpdir_real);
	assert_string_equal(a->storage.path, want);
	free(want);
	want = xasprintf("%s/data/parley.db", tmpdir_real);
	assert_string_equal(b->storage.path, want);
	free(want);
	config_free(&cfg);

	/* Defaults: parley.sock and parley.db next to the file. */
	cfg = load_ok(LISTEN HOSTS);
	want = xasprintf("%s/parley.sock", tmpdir_real);
	assert_string_equal(cfg->control_socket, want);
	free(want);
	want = xasprintf("%s/parley.db", tmpdir_real);
	assert_string_equal(cfg->hosts[0].storage.path, want);
	free(want);
	config_free(&cfg);

	/* A file in a subdirectory, named by a relative path. */
	char *sub = xasprintf("%s/sub", tmpdir);
	assert_int_equal(mkdir(sub, 0700), 0);
	char *path = write_file("sub/c.yml", LISTEN HOSTS "log_file: x.log\n");
	char *cwd = getcwd(NULL, 0);
	assert_int_equal(chdir(tmpdir), 0);
	char *error = NULL;
	assert_int_equal(config_load("sub/c.yml", &cfg, &error), 0);
	assert_int_equal(chdir(cwd), 0);
	want = xasprintf("%s/sub/x.log", tmpdir_real);
	assert_string_equal(cfg->log_file, want);
	assert_string_equal(cfg->file, "sub/c.yml");
	free(want);
	config_free(&cfg);
	unlink(path);
	rmdir(sub);
	free(path);
	free(sub);
	free(cwd);
}

static void test_dump(void **state)
{
	(void)state;
	struct parley_config *cfg =
	        load_ok("loglevel: notice\n"
	                "limits: { max_stanza_size: 512K, idle_timeout: 0 }\n"
	                "control: { mode: \"0660\", group: xmpp }\n"
	                "tls: { certificate: /c.pem, key: /k.pem }\n"
	                "modules: { disco: {}, register: {open: false}, ping: false }\n"
	                "listen:\n"
	                "  - port: 5222\n"
	                "  - port: 5223\n"
	                "    address: 127.0.0.1\n"
	                "    direct_tls: yes\n"
	                "hosts:\n"
	                "  a.example:\n"
	                "    storage: {path: /a.db, pool_size: 3}\n"
	                "    admins: [x@a.example]\n"
	                "    modules: { register: {open: true, \"quoted key\": \"yes\"} }\n"
	                "  b.example:\n");
	struct buf out = { 0 };
	config_dump(cfg, NULL, &out);
	const char *expected_lines[] = {
		"\nloglevel: notice\n",
		"\nlog_file: ~\n",
		"\ncontrol:\n  socket: /",
		"\n  mode: \"0660\"\n",
		"\n  group: xmpp\n",
		"\n  max_stanza_size: 512K\n",
		"\n  idle_timeout: 0\n",
		"\n  keepalive: 1m\n",
		"\nlisten:\n  - port: 5222\n    address: \"::\"\n",
		"\n  - port: 5223\n    address: 127.0.0.1\n    module: c2s\n    starttls: required\n"
		"    direct_tls: true\n    backlog: 1024\n",
		"\nhosts:\n  a.example:\n    storage:\n      driver: sqlite\n      path: /a.db\n      dsn: "
		"~\n"
		"      password: ~\n      password_file: ~\n      dialect: ~\n      pool_size: 3\n",
		"\n    auth:\n      methods: [internal]\n      scram_iterations: 4096\n",
		"\n    tls:\n      certificate: /c.pem\n      key: /k.pem\n      ciphers: ~\n      "
		"min_version: \"1.2\"\n",
		"\n    admins: [x@a.example]\n",
		"\n    modules:\n      disco: {}\n      register: {open: true, quoted key: \"yes\"}\n      "
		"ping: false\n",
		"\n  b.example:\n",
		"\n    admins: []\n",
	};
	for (size_t k = 0; k < sizeof(expected_lines) / sizeof(expected_lines[0]); k++)
		if (strstr(out.data, expected_lines[k]) == NULL)
			fail_msg("dump lacks '%s':\n%s", expected_lines[k], out.data);

	/* The dump is a configuration that loads to the same dump. */
	struct parley_config *again = load_ok(out.data);
	struct buf out2 = { 0 };
	config_dump(again, NULL, &out2);
	/* Only the first line (the file name) may differ. */
	assert_string_equal(strchr(out.data, '\n'), strchr(out2.data, '\n'));
	buf_free(&out2);
	config_free(&again);

	/* One host. */
	buf_reset(&out);
	config_dump(cfg, "b.example", &out);
	assert_non_null(strstr(out.data, "hosts:\n  b.example:\n"));
	assert_null(strstr(out.data, "a.example"));
	assert_null(strstr(out.data, "loglevel"));
	buf_reset(&out);
	config_dump(cfg, "nowhere.example", &out);
	assert_non_null(strstr(out.data, "# no host 'nowhere.example'"));
	buf_free(&out);
	config_free(&cfg);

	/* A database password is never printed, only that there is one. */
	cfg = load_ok(LISTEN HOSTS "storage: { dsn: \"dbname=x\", password: s3cret-pw }\n");
	struct buf pw = { 0 };
	config_dump(cfg, NULL, &pw);
	assert_null(strstr(pw.data, "s3cret-pw"));
	assert_non_null(strstr(pw.data, "\n      password: \"(set, not shown)\"\n"));
	buf_free(&pw);
	config_free(&cfg);
}

/* The s2s section: the static map, lists and the checks beyond the table. */
static void test_s2s_section(void **state)
{
	(void)state;
	struct parley_config *cfg = load_ok(LISTEN HOSTS);
	assert_false(cfg->s2s.enabled);
	assert_true(cfg->s2s.require_tls);
	assert_true(cfg->s2s.dialback);
	assert_int_equal(cfg->s2s.max_queue, 100);
	assert_int_equal(cfg->s2s.nstatic_hosts, 0);
	config_free(&cfg);

	cfg = load_ok("s2s:\n  enabled: true\n  hosts: { B.Test: \"127.0.0.1:5270\", \"c.test\": "
	              "\"[::1]:5269\" }\n  deny: [Evil.Test]\n" LISTEN HOSTS);
	assert_true(cfg->s2s.enabled);
	assert_int_equal(cfg->s2s.nstatic_hosts, 2);
	const struct s2s_static_host *h = s2s_config_static(&cfg->s2s, "b.test");
	assert_non_null(h);
	assert_string_equal(h->address, "127.0.0.1");
	assert_int_equal(h->port, 5270);
	h = s2s_config_static(&cfg->s2s, "c.test");
	assert_non_null(h);
	assert_string_equal(h->address, "::1");
	assert_false(h->direct_tls);
	assert_null(s2s_config_static(&cfg->s2s, "d.test"));
	assert_false(s2s_config_allowed(&cfg->s2s, "evil.test"));
	assert_true(s2s_config_allowed(&cfg->s2s, "b.test"));
	config_free(&cfg);

	cfg = load_ok("s2s:\n  hosts: { d.test: \"tls://192.0.2.1:5270\" }\n" LISTEN HOSTS);
	h = s2s_config_static(&cfg->s2s, "d.test");
	assert_non_null(h);
	assert_true(h->direct_tls);
	assert_string_equal(h->address, "192.0.2.1");
	assert_int_equal(h->port, 5270);
	config_free(&cfg);

	cfg = load_ok("s2s:\n  allow: [b.test]\n  dialback: false\n" LISTEN HOSTS);
	assert_true(s2s_config_allowed(&cfg->s2s, "b.test"));
	assert_false(s2s_config_allowed(&cfg->s2s, "c.test"));
	assert_true(cfg->s2s.require_valid_certificate); /* nothing else could authenticate */
	config_free(&cfg);

	expect_error("s2s:\n  hosts: { b.test: \"b.example:5269\" }\n" LISTEN HOSTS, "2:20",
	             "key 's2s.hosts.b.test'", "numeric address", NULL);
	expect_error("s2s:\n  hosts: { b.test: \"127.0.0.1:70000\" }\n" LISTEN HOSTS, "2:20",
	             "key 's2s.hosts.b.test'", NULL);
	expect_error("s2s:\n  hosts: [a, b]\n" LISTEN HOSTS, "2:10", "key 's2s.hosts'", "expected a map",
	             NULL);
	expect_error("s2s:\n  max_queue: 0\n" LISTEN HOSTS, "2:14", "key 's2s.max_queue'", NULL);
	expect_error("s2s:\n  backoff: 20m\n" LISTEN HOSTS, "2:12", "key 's2s.backoff'",
	             "at most max_backoff", NULL);
	cfg = load_ok(
	        "s2s:\n  dns_servers: [\"127.0.0.1:5353\", \"::1\", \"[::1]:53\", 192.0.2.1]\n" LISTEN HOSTS);
	assert_int_equal(cfg->s2s.dns_servers.count, 4);
	config_free(&cfg);
	expect_error("s2s:\n  dns_servers: [\"dns.example:53\"]\n" LISTEN HOSTS, "2:16",
	             "key 's2s.dns_servers'", "dns.example:53", "numeric", NULL);
	expect_error("s2s:\n  dns_servers: [\"127.0.0.1:0\"]\n" LISTEN HOSTS, "2:16", "key 's2s.dns_servers'",
	             NULL);
	expect_error("s2s:\n  requiretls: false\n" LISTEN HOSTS, "2:3", "key 's2s.requiretls': unknown key",
	             NULL);
}

/* Every option key config-dump prints (every option there is) appears in
 * doc/configuration.md as `key` and in etc/parley.yml as "key:". */
static void test_docs_cover_options(void **state)
{
	(void)state;
	char *example = find_srcdir_file("etc/parley.yml");
	char *docpath = find_srcdir_file("doc/configuration.md");
	char *doc = read_file(docpath);
	char *yml = read_file(example);
	assert_non_null(doc);
	assert_non_null(yml);
	struct parley_config *cfg;
	char *error = NULL;
	if (config_load(example, &cfg, &error) < 0)
		fail_msg("%s", error);
	struct buf out = { 0 };
	config_dump(cfg, NULL, &out);
	size_t checked = 0;
	char *save = NULL;
	/* Skip host names (indent 2 under hosts:) and module names (indent 6
	 * under a host's modules:). */
	bool in_hosts = false, in_modules = false;
	for (char *line = strtok_r(out.data, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		if (line[0] == '#')
			continue;
		size_t indent = strspn(line, " ");
		if (indent == 0)
			in_hosts = str_has_prefix(line, "hosts:");
		if (indent == 4)
			in_modules = str_has_prefix(line + 4, "modules:");
		if (in_hosts && (indent == 2 || (indent == 6 && in_modules)))
			continue;
		char *key = line + indent;
		if (str_has_prefix(key, "- "))
			key += 2;
		char *colon = strchr(key, ':');
		assert_non_null(colon);
		*colon = '\0';
		char *in_doc = xasprintf("`%s`", key);
		char *in_yml = xasprintf("%s:", key);
		if (strstr(doc, in_doc) == NULL)
			fail_msg("doc/configuration.md does not document %s", in_doc);
		if (strstr(yml, in_yml) == NULL)
			fail_msg("etc/parley.yml does not show %s", in_yml);
		free(in_doc);
		free(in_yml);
		checked++;
	}
	assert_true(checked >= 50);
	buf_free(&out);
	config_free(&cfg);
	free(doc);
	free(yml);
	free(docpath);
	free(example);
}

/* The components section: secrets inline and from a file (relative to
 * the file's directory), policies, the checks and the dump (no secret). */
static void test_components(void **state)
{
	(void)state;
	char *secret_path = write_file("comp.secret", "from-the-file\nsecond line ignored\n");
	struct parley_config *cfg;
	char *error = NULL;
	if (load_text(LISTEN HOSTS "components:\n"
	                           "  IRC.Example.com: { secret: s3cret, name: IRC }\n"
	                           "  bot.example.com: { secret_file: comp.secret, on_conflict: refuse, "
	                           "disco: false }\n",
	              &cfg, &error) < 0)
		fail_msg("%s", error);
	assert_int_equal(cfg->ncomponents, 2);
	const struct component_config *irc = component_config_find(cfg->components, 2, "irc.example.com");
	assert_non_null(irc);
	assert_string_equal(irc->secret, "s3cret");
	assert_string_equal(irc->name, "IRC");
	assert_int_equal(irc->on_conflict, COMPONENT_CONFLICT_REPLACE);
	assert_true(irc->disco);
	const struct component_config *bot = component_config_find(cfg->components, 2, "bot.example.com");
	assert_non_null(bot);
	assert_string_equal(bot->secret, "from-the-file");
	char *abs = xasprintf("%s/comp.secret", tmpdir_real);
	assert_string_equal(bot->secret_file, abs);
	free(abs);
	assert_int_equal(bot->on_conflict, COMPONENT_CONFLICT_REFUSE);
	assert_false(bot->disco);
	assert_null(component_config_find(cfg->components, 2, "example.com"));
	struct buf out = { 0 };
	config_dump(cfg, NULL, &out);
	assert_non_null(strstr(out.data, "components:\n  irc.example.com:\n"));
	assert_null(strstr(out.data, "s3cret"));
	assert_null(strstr(out.data, "from-the-file"));
	buf_free(&out);
	config_free(&cfg);

	expect_error(LISTEN HOSTS "components:\n  irc.example.com: { name: x }\n", "6:20",
	             "key 'components.irc.example.com': secret or secret_file is required", NULL);
	expect_error(LISTEN HOSTS "components:\n  irc.example.com: { secret: a, secret_file: b }\n", "6:46",
	             "key 'components.irc.example.com.secret_file': give secret or secret_file, not both",
	             NULL);
	expect_error(LISTEN HOSTS "components:\n  irc.example.com: { secret_file: nothing.here }\n", "6:35",
	             "key 'components.irc.example.com.secret_file':", "nothing.here: No such file", NULL);
	expect_error(LISTEN HOSTS "components:\n  irc.example.com: { secret: \"\" }\n", "6:30",
	             "key 'components.irc.example.com.secret': the secret is empty", NULL);
	expect_error(LISTEN HOSTS "components:\n  irc.example.com: { secret: a, on_conflict: later }\n",
	             "6:46", "key 'components.irc.example.com.on_conflict'", NULL);
	expect_error(LISTEN HOSTS "components:\n  irc.example.com: { secret: a, colour: red }\n", "6:33",
	             "key 'components.irc.example.com.colour': unknown key", NULL);
	expect_error(LISTEN HOSTS "components:\n  example.com: { secret: a }\n", "6:3",
	             "key 'components': 'example.com' is a virtual host", NULL);
	expect_error(LISTEN HOSTS "components:\n  localhost: { secret: a }\n", "6:3",
	             "key 'components': 'localhost' is not a domain name", NULL);
	expect_error(LISTEN HOSTS
	             "components:\n  a.example.com: { secret: a }\n  A.example.com: { secret: b }\n",
	             "7:3", "duplicate component 'a.example.com' (first at line 6)", NULL);
	expect_error(LISTEN HOSTS "components: [a.example.com]\n", "5:13",
	             "key 'components': expected a map of component domain to options, got a list", NULL);
	expect_error(LISTEN HOSTS "components:\n  a.example.com: secret\n", "6:18",
	             "key 'components.a.example.com': expected a map of component options", NULL);
	unlink(secret_path);
	free(secret_path);
}

/* ---- main ----------------------------------------------------------------- */

static int setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/parley-test-config-XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	tmpdir_real = realpath(tmpdir, NULL);
	return tmpdir_real != NULL ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	const char *files[] = { "t.yml", "f.yml" };
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		char *p = xasprintf("%s/%s", tmpdir, files[i]);
		unlink(p);
		free(p);
	}
	rmdir(tmpdir);
	free(tmpdir_real);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tree_positions),   cmocka_unit_test(test_tree_errors),
		cmocka_unit_test(test_load_file_errors), cmocka_unit_test(test_opt_defaults),
		cmocka_unit_test(test_opt_values),       cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_durations),        cmocka_unit_test(test_opt_errors),
		cmocka_unit_test(test_opt_dump),         cmocka_unit_test(test_example),
		cmocka_unit_test(test_error_classes),    cmocka_unit_test(test_minimal_defaults),
		cmocka_unit_test(test_host_override),    cmocka_unit_test(test_module_merge),
		cmocka_unit_test(test_relative_paths),   cmocka_unit_test(test_dump),
		cmocka_unit_test(test_opt_aliases),      cmocka_unit_test(test_docs_cover_options),
		cmocka_unit_test(test_components),       cmocka_unit_test(test_s2s_section),
#ifdef HAVE_BACKEND_LDAP
		cmocka_unit_test(test_ldap_override),
#endif
	};
	return cmocka_run_group_tests_name("config", tests, setup, teardown);
}
