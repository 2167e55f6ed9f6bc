/*
 * lib/i18n.c: catalogues made by msgfmt (po/de.mo of the build, and ones
 * written here), the choice of a language from Accept-Language, and
 * files that are not catalogues (skipped, nothing read outside them).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/i18n.h"
#include "lib/util.h"

static char dir[] = "/tmp/parley-i18n-XXXXXX";

/* A .mo with the given sorted pairs, in this machine's byte order. */
static void write_mo(const char *name, const char *const *pairs, uint32_t n, bool corrupt)
{
	struct buf b = { 0 };
	uint32_t head[7] = { 0x950412de, 0, n, 28, 28 + 8 * n, 0, 0 };
	buf_append(&b, head, sizeof(head));
	uint32_t off = 28 + 16 * n;
	for (int t = 0; t < 2; t++) {
		uint32_t o = off;
		for (uint32_t i = 0; i < n; i++) {
			uint32_t e[2] = { (uint32_t)strlen(pairs[2 * i + t]), o };
			if (corrupt && t == 1 && i == n - 1)
				e[1] = 1u << 30; /* far outside the file */
			buf_append(&b, e, sizeof(e));
			o += e[0] + 1;
		}
		if (t == 0)
			for (uint32_t i = 0; i < n; i++)
				off += (uint32_t)strlen(pairs[2 * i]) + 1;
	}
	for (int t = 0; t < 2; t++)
		for (uint32_t i = 0; i < n; i++)
			buf_append(&b, pairs[2 * i + t], strlen(pairs[2 * i + t]) + 1);
	char *path = xasprintf("%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(b.data, 1, b.len, f), b.len);
	fclose(f);
	free(path);
	buf_free(&b);
}

static void test_pick_and_translate(void **state)
{
	(void)state;
	static const char *const fr[] = { "",       "Content-Type: text/plain; charset=UTF-8\n",
		                          "Log in", "Se connecter",
		                          "Users",  "Utilisateurs" };
	write_mo("fr.mo", fr, 3, false);
	static const char *const pt[] = { "Users", "Usuários" };
	write_mo("pt_BR.mo", pt, 1, false);
	write_mo("xx.mo", fr, 3, true); /* an offset outside the file: skipped */
	static const char *const unsorted[] = { "b", "B", "a", "A" };
	write_mo("yy.mo", unsorted, 2, false); /* not sorted: skipped */
	char *junk = xasprintf("%s/zz.mo", dir);
	FILE *f = fopen(junk, "w");
	fputs("not a catalogue", f);
	fclose(f);
	free(junk);
	assert_int_equal(i18n_load(dir), 2);

	const struct i18n_catalog *c = i18n_pick("fr-CA,fr;q=0.9,en;q=0.8");
	assert_non_null(c);
	assert_string_equal(i18n_lang(c), "fr");
	assert_string_equal(i18n_tr(c, "Log in"), "Se connecter");
	assert_string_equal(i18n_tr(c, "Users"), "Utilisateurs");
	assert_string_equal(i18n_tr(c, "Nothing like this"), "Nothing like this");
	assert_string_equal(i18n_tr(c, ""), ""); /* never the header */

	assert_null(i18n_pick("en-US,en;q=0.9,fr;q=0.8")); /* English ranks first */
	assert_null(i18n_pick("de"));                      /* nothing for German here */
	assert_null(i18n_pick(NULL));
	assert_null(i18n_pick(""));
	assert_null(i18n_pick(";;;,,,q=2"));
	assert_string_equal(i18n_lang(i18n_pick("de;q=0.9, fr;q=0.5")), "fr");
	assert_string_equal(i18n_lang(i18n_pick("en;q=0.1, fr;q=0.5")), "fr");
	assert_string_equal(i18n_lang(i18n_pick("pt-BR")), "pt-BR");
	assert_string_equal(i18n_tr(i18n_pick("pt-br"), "Users"), "Usuários");
	assert_null(i18n_pick("pt")); /* pt-BR does not stand for pt */
	assert_string_equal(i18n_lang(NULL), "en");
	assert_string_equal(i18n_tr(NULL, "Users"), "Users");
	i18n_unload();
	assert_null(i18n_pick("fr"));
}

/* The catalogue the build makes from po/de.po with msgfmt. */
static void test_shipped_german(void **state)
{
	(void)state;
	const char *build = getenv("PARLEY_BUILDDIR");
	char *po = xasprintf("%s/po", build != NULL ? build : ".");
	if (access(po, R_OK) != 0) {
		free(po);
		skip();
	}
	assert_true(i18n_load(po) >= 1);
	free(po);
	const struct i18n_catalog *de = i18n_pick("de-DE,de;q=0.9");
	assert_non_null(de);
	assert_string_equal(i18n_tr(de, "Log in"), "Anmelden");
	assert_string_equal(i18n_tr(de, "Roster"), "Kontaktliste");
	i18n_unload();
}

/* The XMPP side: the stanza's xml:lang, else the stream's, else English;
 * one tag picks its catalogue as Accept-Language would. */
static void test_xml_lang(void **state)
{
	(void)state;
	const char *build = getenv("PARLEY_BUILDDIR");
	char *po = xasprintf("%s/po", build != NULL ? build : ".");
	if (access(po, R_OK) != 0) {
		free(po);
		skip();
	}
	assert_null(i18n_pick_lang("de")); /* nothing loaded yet */
	assert_true(i18n_load(po) >= 1);
	free(po);

	assert_string_equal(i18n_stanza_lang("de", "en"), "de");
	assert_string_equal(i18n_stanza_lang(NULL, "de-AT"), "de-AT");
	assert_string_equal(i18n_stanza_lang("", "de"), "de");
	assert_string_equal(i18n_stanza_lang("de;q=1", "fr"), "fr"); /* not a tag */
	assert_null(i18n_stanza_lang(NULL, NULL));
	assert_null(i18n_stanza_lang("1de", "-x"));

	assert_string_equal(i18n_lang(i18n_pick_lang("de")), "de");
	assert_string_equal(i18n_lang(i18n_pick_lang("de-AT")), "de");
	assert_string_equal(i18n_lang(i18n_pick_lang("DE-ch")), "de");
	assert_null(i18n_pick_lang("en"));
	assert_null(i18n_pick_lang("en-GB"));
	assert_null(i18n_pick_lang("fr"));
	assert_null(i18n_pick_lang(NULL));
	assert_null(i18n_pick_lang("de,fr"));
	assert_null(i18n_pick_lang("de-0123456789012345678901234567890123"));

	const char *lang = NULL;
	assert_string_equal(i18n_tr_lang("de-AT", "no such command", &lang), "diesen Befehl gibt es nicht");
	assert_string_equal(lang, "de");
	assert_string_equal(i18n_tr_lang("de", "not in the catalogue", &lang), "not in the catalogue");
	assert_string_equal(lang, "en");
	assert_string_equal(i18n_tr_lang(NULL, "no such command", &lang), "no such command");
	assert_string_equal(lang, "en");
	i18n_unload();
}

int main(void)
{
	assert_non_null(mkdtemp(dir));
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pick_and_translate),
		cmocka_unit_test(test_shipped_german),
		cmocka_unit_test(test_xml_lang),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	char *cmd = xasprintf("rm -rf '%s'", dir);
	if (system(cmd) != 0)
		rc = rc != 0 ? rc : 1;
	free(cmd);
	return rc;
}
