/*
 * The XEP-0115 verification string and its hash.  The string is built
 * from the parts of a disco#info answer put in a canonical order (byte
 * order of their UTF-8, the "i;octet" collation), so that the same
 * identities, features and forms give the same string in any order.  No
 * state; any thread.
 */
#include "caps-ver.h"
#include "lib/util.h"
#include "lib/xml.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

struct ver_identity {
	const char *category, *type, *lang, *name;
};

struct ver_field {
	const char *var;
	const char **values;
	size_t nvalues;
};

struct ver_form {
	const char *form_type;
	const struct xml_node *x;
};

static const char *or_empty(const char *s)
{
	return s != NULL ? s : "";
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int cmp_identity(const void *a, const void *b)
{
	const struct ver_identity *x = a, *y = b;
	int c = strcmp(x->category, y->category);
	if (c == 0)
		c = strcmp(x->type, y->type);
	if (c == 0)
		c = strcmp(x->lang, y->lang);
	if (c == 0)
		c = strcmp(x->name, y->name);
	return c;
}

static int cmp_field(const void *a, const void *b)
{
	return strcmp(((const struct ver_field *)a)->var, ((const struct ver_field *)b)->var);
}

static int cmp_form(const void *a, const void *b)
{
	return strcmp(((const struct ver_form *)a)->form_type, ((const struct ver_form *)b)->form_type);
}

/* Append part and the separator. */
static void append_part(struct buf *s, const char *part, const char **error_r)
{
	if (strchr(part, '<') != NULL)
		*error_r = "a part contains the separator '<'";
	buf_append_str(s, part);
	buf_append_str(s, "<");
}

static size_t count_children(const struct xml_node *el, const char *name, const char *ns)
{
	size_t n = 0;
	for (const struct xml_node *c = xml_child(el, name, ns); c != NULL; c = xml_next(c, name, ns))
		n++;
	return n;
}

/* The FORM_TYPE of an extended information form, or NULL when the form
 * does not take part (no FORM_TYPE, or one that is not hidden). */
static const char *form_type_of(const struct xml_node *x)
{
	for (const struct xml_node *f = xml_child(x, "field", NS_DATA_FORMS); f != NULL;
	     f = xml_next(f, "field", NS_DATA_FORMS)) {
		if (!str_eq(xml_attr(f, "var"), "FORM_TYPE"))
			continue;
		if (!str_eq(xml_attr(f, "type"), "hidden"))
			return NULL;
		return xml_child_text(f, "value", NS_DATA_FORMS);
	}
	return NULL;
}

/* Append one form's part of the string: FORM_TYPE, then each other field
 * by var with its values sorted. */
static void append_form(struct buf *s, const struct ver_form *form, const char **error_r)
{
	append_part(s, form->form_type, error_r);
	size_t nfields = count_children(form->x, "field", NS_DATA_FORMS);
	struct ver_field *fields = xcalloc(nfields + 1, sizeof(*fields));
	size_t n = 0;
	for (const struct xml_node *f = xml_child(form->x, "field", NS_DATA_FORMS); f != NULL;
	     f = xml_next(f, "field", NS_DATA_FORMS)) {
		const char *var = xml_attr(f, "var");
		if (var == NULL || strcmp(var, "FORM_TYPE") == 0)
			continue;
		struct ver_field *vf = &fields[n++];
		vf->var = var;
		vf->values = xcalloc(count_children(f, "value", NS_DATA_FORMS) + 1, sizeof(*vf->values));
		for (const struct xml_node *v = xml_child(f, "value", NS_DATA_FORMS); v != NULL;
		     v = xml_next(v, "value", NS_DATA_FORMS))
			vf->values[vf->nvalues++] = xml_text(v);
		qsort(vf->values, vf->nvalues, sizeof(*vf->values), cmp_str);
	}
	qsort(fields, n, sizeof(*fields), cmp_field);
	for (size_t i = 0; i < n; i++) {
		append_part(s, fields[i].var, error_r);
		for (size_t k = 0; k < fields[i].nvalues; k++)
			append_part(s, fields[i].values[k], error_r);
		free(fields[i].values);
	}
	free(fields);
}

char *caps_ver_string(const struct xml_node *query, const char **error_r)
{
	size_t nids = count_children(query, "identity", NS_DISCO_INFO);
	size_t nfeatures = count_children(query, "feature", NS_DISCO_INFO);
	size_t nforms = count_children(query, "x", NS_DATA_FORMS);
	struct ver_identity *ids = xcalloc(nids + 1, sizeof(*ids));
	const char **features = xcalloc(nfeatures + 1, sizeof(*features));
	struct ver_form *forms = xcalloc(nforms + 1, sizeof(*forms));
	struct buf s = { 0 };
	*error_r = NULL;

	size_t n = 0;
	for (const struct xml_node *c = xml_child(query, "identity", NS_DISCO_INFO); c != NULL;
	     c = xml_next(c, "identity", NS_DISCO_INFO))
		ids[n++] = (struct ver_identity){ or_empty(xml_attr(c, "category")),
			                          or_empty(xml_attr(c, "type")),
			                          or_empty(xml_attr(c, "xml:lang")),
			                          or_empty(xml_attr(c, "name")) };
	qsort(ids, nids, sizeof(*ids), cmp_identity);
	for (size_t i = 0; i < nids; i++) {
		if (i > 0 && cmp_identity(&ids[i - 1], &ids[i]) == 0)
			*error_r = "an identity is given twice";
		if (strpbrk(ids[i].category, "</") != NULL || strpbrk(ids[i].type, "</") != NULL ||
		    strpbrk(ids[i].lang, "</") != NULL || strchr(ids[i].name, '<') != NULL)
			*error_r = "an identity contains a separator";
		buf_printf(&s, "%s/%s/%s/%s<", ids[i].category, ids[i].type, ids[i].lang, ids[i].name);
	}

	n = 0;
	for (const struct xml_node *c = xml_child(query, "feature", NS_DISCO_INFO); c != NULL;
	     c = xml_next(c, "feature", NS_DISCO_INFO))
		features[n++] = or_empty(xml_attr(c, "var"));
	qsort(features, nfeatures, sizeof(*features), cmp_str);
	for (size_t i = 0; i < nfeatures; i++) {
		if (i > 0 && strcmp(features[i - 1], features[i]) == 0)
			*error_r = "a feature is given twice";
		append_part(&s, features[i], error_r);
	}

	n = 0;
	for (const struct xml_node *c = xml_child(query, "x", NS_DATA_FORMS); c != NULL;
	     c = xml_next(c, "x", NS_DATA_FORMS)) {
		const char *type = form_type_of(c);
		if (type != NULL)
			forms[n++] = (struct ver_form){ type, c };
	}
	nforms = n;
	qsort(forms, nforms, sizeof(*forms), cmp_form);
	for (size_t i = 0; i < nforms; i++) {
		if (i > 0 && strcmp(forms[i - 1].form_type, forms[i].form_type) == 0)
			*error_r = "two forms have the same FORM_TYPE";
		append_form(&s, &forms[i], error_r);
	}

	free(ids);
	free(features);
	free(forms);
	if (*error_r != NULL) {
		buf_free(&s);
		return NULL;
	}
	return s.data != NULL ? buf_steal(&s) : xstrdup("");
}

/* The hashes that verify caps: IANA names and OpenSSL's. */
static const struct {
	const char *iana, *openssl;
} ver_hashes[] = {
	{ "sha-1", "SHA1" },        { "sha-224", "SHA224" },    { "sha-256", "SHA256" },
	{ "sha-384", "SHA384" },    { "sha-512", "SHA512" },    { "sha3-256", "SHA3-256" },
	{ "sha3-384", "SHA3-384" }, { "sha3-512", "SHA3-512" },
};

static const EVP_MD *ver_md(const char *hash)
{
	if (hash == NULL)
		return NULL;
	for (size_t i = 0; i < ARRAY_SIZE(ver_hashes); i++)
		if (strcmp(ver_hashes[i].iana, hash) == 0)
			return EVP_get_digestbyname(ver_hashes[i].openssl);
	return NULL;
}

bool caps_hash_supported(const char *hash)
{
	return ver_md(hash) != NULL;
}

char *caps_ver_hash(const char *hash, const char *s)
{
	const EVP_MD *md = ver_md(hash);
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	if (md == NULL || EVP_Digest(s, strlen(s), digest, &len, md, NULL) != 1)
		return NULL;
	return base64_encode(digest, len);
}
