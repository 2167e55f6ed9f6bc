/*
 * Translations: message catalogues in GNU gettext's binary format (.mo,
 * made by msgfmt from po/LANG.po at build time), read by Parley itself so
 * that each request can have its own language (libc's gettext follows the
 * process's locale, and needs that locale installed).  The source strings
 * are English; a string marked N_("...") in the code is what xgettext
 * collects into po/parley.pot.
 *
 * Loop thread: the catalogues are loaded at start (i18n_load) and read
 * only afterwards; a catalogue pointer stays valid until i18n_unload.
 */
#ifndef PARLEY_LIB_I18N_H
#define PARLEY_LIB_I18N_H

#include <stdbool.h>
#include <stddef.h>

/* Marks a string for xgettext without translating it here. */
#define N_(s) s

struct i18n_catalog;

/* Load every DIR/LANG.mo (LANG: "de", "pt_BR"); a file that is not a
 * valid catalogue is skipped with a log line.  Returns how many were
 * loaded.  Loading again replaces the catalogues. */
int i18n_load(const char *dir);
void i18n_unload(void);

/* The catalogue of the best language of an Accept-Language header value
 * (RFC 9110: tags with q-values; "de-AT" falls back to "de"), or NULL for
 * the source language (English) when none of those asked for is loaded,
 * when English ranks higher, or for NULL. */
const struct i18n_catalog *i18n_pick(const char *accept_language);

/* msgid's translation in c, or msgid itself (c NULL, or no translation). */
const char *i18n_tr(const struct i18n_catalog *c, const char *msgid);

/* c's language tag for an HTML lang attribute ("de", "pt-BR"); "en" for
 * NULL. */
const char *i18n_lang(const struct i18n_catalog *c);

#endif
