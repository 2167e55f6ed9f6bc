/*
 * Translations: message catalogues in GNU gettext's binary format (.mo,
 * made by msgfmt from po/LANG.po at build time), read by Parley itself so
 * that each request can have its own language (libc's gettext follows the
 * process's locale, and needs that locale installed).  The source strings
 * are English; a string marked N_("...") in the code is what xgettext
 * collects into po/parley.pot.
 *
 * The web admin picks the language from Accept-Language (i18n_pick); the
 * XMPP side from xml:lang (i18n_pick_lang): the stanza's, else the
 * stream's, else English.
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

/* The catalogue for one xml:lang tag (RFC 6120 §8.1.5, RFC 5646): the
 * same choice as i18n_pick for a single tag, so "de-AT" falls back to
 * "de"; NULL (English) for NULL, "", English, a tag with no catalogue, or
 * a string that is not a language tag. */
const struct i18n_catalog *i18n_pick_lang(const char *xml_lang);

/* The language a stanza is answered in: its own xml:lang, else the
 * stream's (RFC 6120 §4.7.4: the client's default), else NULL (the host's
 * default, English).  An empty or malformed tag counts as absent. */
const char *i18n_stanza_lang(const char *stanza_lang, const char *stream_lang);

/* Whether tag is a well-formed language tag (letters, digits and '-',
 * 1 to 35 characters, starting with a letter). */
bool i18n_valid_tag(const char *tag);

/* The directory of the catalogues: $PARLEY_LOCALE_DIR, else
 * PKGDATADIR/locale when readable, else ./po (a build tree). */
const char *i18n_locale_dir(void);

/* msgid's translation in c, or msgid itself (c NULL, or no translation). */
const char *i18n_tr(const struct i18n_catalog *c, const char *msgid);

/* c's language tag for an HTML lang attribute ("de", "pt-BR"); "en" for
 * NULL. */
const char *i18n_lang(const struct i18n_catalog *c);

/* msgid in the language xml_lang (i18n_pick_lang), and in *lang_r the tag
 * of the text returned: c's tag when translated, "en" otherwise.  What
 * builders of errors and forms call; it costs a catalogue lookup, so only
 * when such a reply is built. */
const char *i18n_tr_lang(const char *xml_lang, const char *msgid, const char **lang_r);

#endif
