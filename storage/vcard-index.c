/*
 * Searchable vCard fields (see vcard-index.h).  Pure functions of their
 * input: safe on any thread (the walled XML parser keeps its state per
 * call).
 */
#include "storage/vcard-index.h"
#include "lib/xml.h"

#include <string.h>

#define NS_VCARD "vcard-temp"

void vcard_index_clear(struct vcard_index *vi)
{
	for (size_t i = 0; i < VF_COUNT; i++)
		free(vi->fields[i]);
	memset(vi, 0, sizeof(*vi));
}

/* A copy of s without surrounding white space, cut to VCARD_FIELD_MAX
 * bytes at a character boundary. */
static char *field_copy(const char *s)
{
	if (s == NULL)
		return xstrdup("");
	while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
		s++;
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
		n--;
	if (n > VCARD_FIELD_MAX) {
		n = VCARD_FIELD_MAX;
		while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
			n--;
	}
	return xstrndup(s, n);
}

static const char *child_text(const struct xml_node *el, const char *name)
{
	return el != NULL ? xml_child_text(el, name, NS_VCARD) : NULL;
}

int vcard_index_extract(const char *xml, struct vcard_index *out)
{
	memset(out, 0, sizeof(*out));
	size_t len = strlen(xml);
	const struct xml_parser_limits lim = { .max_stanza = len + 1, .max_depth = 64, .max_attrs = 64 };
	struct xml_node *v = xml_parse_string(xml, len, NULL, &lim, NULL);
	if (v == NULL || !xml_is(v, "vCard", NS_VCARD)) {
		xml_unref(&v);
		return -1;
	}
	const struct xml_node *n = xml_child(v, "N", NS_VCARD);
	const struct xml_node *email = xml_child(v, "EMAIL", NS_VCARD);
	const char *mail = child_text(email, "USERID");
	if (email != NULL && mail == NULL)
		mail = xml_text(email);
	const char *locality = NULL;
	for (const struct xml_node *a = xml_child(v, "ADR", NS_VCARD); a != NULL && locality == NULL;
	     a = xml_next(a, "ADR", NS_VCARD))
		locality = child_text(a, "LOCALITY");
	out->fields[VF_FN] = field_copy(child_text(v, "FN"));
	out->fields[VF_FIRST] = field_copy(child_text(n, "GIVEN"));
	out->fields[VF_LAST] = field_copy(child_text(n, "FAMILY"));
	out->fields[VF_NICK] = field_copy(child_text(v, "NICKNAME"));
	out->fields[VF_EMAIL] = field_copy(mail);
	out->fields[VF_LOCALITY] = field_copy(locality);
	out->fields[VF_ORG] = field_copy(child_text(xml_child(v, "ORG", NS_VCARD), "ORGNAME"));
	const struct xml_node *cls = xml_child(v, "CLASS", NS_VCARD);
	out->listed = cls != NULL && xml_child(cls, "PUBLIC", NS_VCARD) != NULL;
	xml_unref(&v);
	return 0;
}

/* Lower case of code point c for the scripts named in the header. */
static unsigned fold_cp(unsigned c)
{
	if (c >= 'A' && c <= 'Z')
		return c + 32;
	if ((c >= 0xC0 && c <= 0xDE && c != 0xD7))
		return c + 32;
	if (c >= 0x100 && c <= 0x137 && (c & 1) == 0)
		return c + 1;
	if (c >= 0x139 && c <= 0x148 && (c & 1) == 1)
		return c + 1;
	if (c >= 0x14A && c <= 0x177 && (c & 1) == 0)
		return c + 1;
	if (c == 0x178)
		return 0xFF;
	if (c >= 0x179 && c <= 0x17E && (c & 1) == 1)
		return c + 1;
	if (c >= 0x391 && c <= 0x3AB && c != 0x3A2)
		return c + 32;
	if (c >= 0x410 && c <= 0x42F)
		return c + 32;
	if (c >= 0x400 && c <= 0x40F)
		return c + 80;
	return c;
}

static void put_cp(struct buf *b, unsigned c)
{
	char o[4];
	size_t n;
	if (c < 0x80) {
		o[0] = (char)c;
		n = 1;
	} else if (c < 0x800) {
		o[0] = (char)(0xC0 | (c >> 6));
		o[1] = (char)(0x80 | (c & 0x3F));
		n = 2;
	} else if (c < 0x10000) {
		o[0] = (char)(0xE0 | (c >> 12));
		o[1] = (char)(0x80 | ((c >> 6) & 0x3F));
		o[2] = (char)(0x80 | (c & 0x3F));
		n = 3;
	} else {
		o[0] = (char)(0xF0 | (c >> 18));
		o[1] = (char)(0x80 | ((c >> 12) & 0x3F));
		o[2] = (char)(0x80 | ((c >> 6) & 0x3F));
		o[3] = (char)(0x80 | (c & 0x3F));
		n = 4;
	}
	buf_append(b, o, n);
}

char *vcard_fold(const char *s)
{
	char *trimmed = field_copy(s);
	struct buf b = { 0 };
	const unsigned char *p = (const unsigned char *)trimmed;
	while (*p != '\0') {
		unsigned c = *p;
		size_t n = c < 0x80             ? 1
		           : (c & 0xE0) == 0xC0 ? 2
		           : (c & 0xF0) == 0xE0 ? 3
		           : (c & 0xF8) == 0xF0 ? 4
		                                : 1;
		size_t have = 1;
		while (have < n && (p[have] & 0xC0) == 0x80)
			have++;
		if (have != n || n == 1) {
			/* ASCII, or not UTF-8: byte by byte (only A-Z change). */
			buf_append(&b, (const char[]){ (char)(c >= 'A' && c <= 'Z' ? c + 32 : c) }, 1);
			p++;
			continue;
		}
		unsigned cp = n == 2 ? c & 0x1F : n == 3 ? c & 0x0F : c & 0x07;
		for (size_t i = 1; i < n; i++)
			cp = (cp << 6) | (p[i] & 0x3F);
		put_cp(&b, fold_cp(cp));
		p += n;
	}
	free(trimmed);
	if (b.data == NULL)
		return xstrdup("");
	return buf_steal(&b);
}

const char *vcard_photo_type(const unsigned char *d, size_t len)
{
	if (len >= 3 && d[0] == 0xff && d[1] == 0xd8 && d[2] == 0xff)
		return "image/jpeg";
	if (len >= 8 && memcmp(d, "\x89PNG\r\n\x1a\n", 8) == 0)
		return "image/png";
	if (len >= 6 && (memcmp(d, "GIF87a", 6) == 0 || memcmp(d, "GIF89a", 6) == 0))
		return "image/gif";
	if (len >= 12 && memcmp(d, "RIFF", 4) == 0 && memcmp(d + 8, "WEBP", 4) == 0)
		return "image/webp";
	return NULL;
}
