/*
 * Translations (i18n.h): the .mo reader, the language choice from
 * Accept-Language, and the lookup.  Loop thread.
 *
 * A .mo file is a header (magic 0x950412de in the file's byte order,
 * revision, N, the offsets of the two tables) and two tables of N
 * (length, offset) pairs: the source strings, sorted by strcmp, and their
 * translations.  Every offset and length is checked against the file's
 * size at load, so a lookup reads only inside the file; the lookup is a
 * binary search.  The empty msgid (the catalogue's header) is never
 * returned as a translation.
 */
#include "i18n.h"
#include "log.h"
#include "util.h"

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define MO_MAGIC 0x950412deU
#define MAX_CATALOGS 64
#define MAX_MO_SIZE (16u << 20)

struct i18n_catalog {
	char lang[16]; /* "de", "pt-BR" (the HTML form) */
	char *data;
	size_t len;
	uint32_t n, orig, trans;
	bool swap;
};

static struct i18n_catalog *catalogs[MAX_CATALOGS];
static size_t ncatalogs;

static uint32_t u32(const struct i18n_catalog *c, size_t off)
{
	uint32_t v;
	memcpy(&v, c->data + off, 4);
	return c->swap ? __builtin_bswap32(v) : v;
}

/* The string of table entry i (table at tab): NULL when it leaves the
 * file or is not NUL-terminated. */
static const char *entry(const struct i18n_catalog *c, uint32_t tab, uint32_t i)
{
	size_t at = (size_t)tab + (size_t)i * 8;
	if (at + 8 > c->len)
		return NULL;
	uint32_t len = u32(c, at), off = u32(c, at + 4);
	if ((size_t)off + len >= c->len || c->data[(size_t)off + len] != '\0')
		return NULL;
	return c->data + off;
}

static bool valid(struct i18n_catalog *c)
{
	if (c->len < 28)
		return false;
	uint32_t magic;
	memcpy(&magic, c->data, 4);
	if (magic != MO_MAGIC && __builtin_bswap32(magic) != MO_MAGIC)
		return false;
	c->swap = magic != MO_MAGIC;
	if ((u32(c, 4) >> 16) > 1) /* major revision 0 or 1 */
		return false;
	c->n = u32(c, 8);
	c->orig = u32(c, 12);
	c->trans = u32(c, 16);
	const char *prev = NULL;
	for (uint32_t i = 0; i < c->n; i++) {
		const char *o = entry(c, c->orig, i);
		if (o == NULL || entry(c, c->trans, i) == NULL)
			return false;
		if (prev != NULL && strcmp(prev, o) >= 0) /* the search needs the order */
			return false;
		prev = o;
	}
	return true;
}

static struct i18n_catalog *load_file(const char *path, const char *lang)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return NULL;
	struct buf b = { 0 };
	char chunk[8192];
	size_t got;
	while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0 && b.len <= MAX_MO_SIZE)
		buf_append(&b, chunk, got);
	fclose(f);
	struct i18n_catalog *c = xcalloc(1, sizeof(*c));
	c->len = b.len;
	c->data = buf_steal(&b);
	snprintf(c->lang, sizeof(c->lang), "%s", lang);
	for (char *p = c->lang; *p != '\0'; p++)
		if (*p == '_')
			*p = '-';
	if (c->len > MAX_MO_SIZE || !valid(c)) {
		log_warning("translations: %s is not a valid message catalogue; skipped", path);
		free(c->data);
		free(c);
		return NULL;
	}
	return c;
}

void i18n_unload(void)
{
	for (size_t i = 0; i < ncatalogs; i++) {
		free(catalogs[i]->data);
		free(catalogs[i]);
	}
	ncatalogs = 0;
}

int i18n_load(const char *dir)
{
	i18n_unload();
	DIR *d = opendir(dir);
	if (d == NULL)
		return 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL && ncatalogs < MAX_CATALOGS) {
		size_t l = strlen(e->d_name);
		if (l < 4 || l > 13 || strcmp(e->d_name + l - 3, ".mo") != 0)
			continue;
		char lang[16];
		snprintf(lang, sizeof(lang), "%.*s", (int)(l - 3), e->d_name);
		bool ok = true;
		for (const char *p = lang; *p != '\0'; p++)
			ok = ok && ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_');
		if (!ok)
			continue;
		char *path = xasprintf("%s/%s", dir, e->d_name);
		struct i18n_catalog *c = load_file(path, lang);
		free(path);
		if (c != NULL)
			catalogs[ncatalogs++] = c;
	}
	closedir(d);
	return (int)ncatalogs;
}

static const struct i18n_catalog *find_lang(const char *tag, size_t len)
{
	for (size_t i = 0; i < ncatalogs; i++)
		if (strlen(catalogs[i]->lang) == len && strncasecmp(catalogs[i]->lang, tag, len) == 0)
			return catalogs[i];
	return NULL;
}

const struct i18n_catalog *i18n_pick(const char *accept_language)
{
	const struct i18n_catalog *best = NULL;
	double best_q = 0;
	const char *p = accept_language;
	while (p != NULL && *p != '\0') {
		while (*p == ' ' || *p == ',' || *p == '\t')
			p++;
		size_t tl = strcspn(p, " \t;,");
		const char *tag = p;
		p += tl;
		double q = 1;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == ';') {
			const char *qs = strstr(p, "q=");
			const char *next = strchr(p, ',');
			if (qs != NULL && (next == NULL || qs < next))
				q = strtod(qs + 2, NULL);
			p = next != NULL ? next : p + strlen(p);
		}
		if (tl == 0 || q <= best_q || q > 1)
			continue;
		if (tl == 2 && strncasecmp(tag, "en", 2) == 0) {
			best = NULL; /* English, the source, ranks higher */
			best_q = q;
			continue;
		}
		const struct i18n_catalog *c = find_lang(tag, tl);
		if (c == NULL && tl > 2 && tag[2] == '-')
			c = find_lang(tag, 2);
		if (c == NULL && tl > 3 && strncasecmp(tag, "en-", 3) == 0) {
			best = NULL;
			best_q = q;
			continue;
		}
		if (c != NULL) {
			best = c;
			best_q = q;
		}
	}
	return best;
}

const char *i18n_tr(const struct i18n_catalog *c, const char *msgid)
{
	if (c == NULL || msgid == NULL || *msgid == '\0')
		return msgid;
	uint32_t lo = 0, hi = c->n;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		int cmp = strcmp(msgid, entry(c, c->orig, mid));
		if (cmp == 0) {
			const char *t = entry(c, c->trans, mid);
			return *t != '\0' ? t : msgid;
		}
		if (cmp < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return msgid;
}

const char *i18n_lang(const struct i18n_catalog *c)
{
	return c != NULL ? c->lang : "en";
}

bool i18n_valid_tag(const char *tag)
{
	if (tag == NULL || !((*tag >= 'a' && *tag <= 'z') || (*tag >= 'A' && *tag <= 'Z')))
		return false;
	size_t n = 0;
	for (const char *p = tag; *p != '\0'; p++, n++) {
		bool ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		          *p == '-';
		if (!ok || n >= 35)
			return false;
	}
	return true;
}

const struct i18n_catalog *i18n_pick_lang(const char *xml_lang)
{
	/* A valid tag has no ',' or ';', so i18n_pick sees one tag, q=1. */
	if (ncatalogs == 0 || !i18n_valid_tag(xml_lang))
		return NULL;
	return i18n_pick(xml_lang);
}

const char *i18n_stanza_lang(const char *stanza_lang, const char *stream_lang)
{
	if (i18n_valid_tag(stanza_lang))
		return stanza_lang;
	if (i18n_valid_tag(stream_lang))
		return stream_lang;
	return NULL;
}

const char *i18n_locale_dir(void)
{
	const char *env = getenv("PARLEY_LOCALE_DIR");
	if (env != NULL && *env != '\0')
		return env;
	if (access(PKGDATADIR "/locale", R_OK) == 0)
		return PKGDATADIR "/locale";
	return "./po";
}

const char *i18n_tr_lang(const char *xml_lang, const char *msgid, const char **lang_r)
{
	const struct i18n_catalog *c = i18n_pick_lang(xml_lang);
	const char *t = i18n_tr(c, msgid);
	if (lang_r != NULL)
		*lang_r = t != msgid ? i18n_lang(c) : "en";
	return t;
}
