/*
 * JID parsing and preparation (RFC 7622 address format with the RFC 6122
 * stringprep profiles from libidn 1.x: Nodeprep, Nameprep, Resourceprep).
 *
 * Any thread: nothing here keeps state; libidn's stringprep and IDNA calls
 * are reentrant.
 *
 * Invariants:
 *  - a struct jid filled by jid_parse holds prepared parts only: node and
 *    resource are NULL or non-empty, domain is non-empty, each part is at
 *    most JID_PART_MAX bytes; so equality is byte equality of the parts;
 *  - on failure jid_parse leaves *out zeroed (jid_clear on it is harmless)
 *    and sets *error_r to a static string;
 *  - the splitting rule: the resource starts after the first '/', the node
 *    ends at the first '@' before that '/'; a resource may contain '@' and
 *    '/', a node may contain neither.
 */
#include "jid.h"

#include <arpa/inet.h>
#include <assert.h>
#include <idna.h>
#include <stringprep.h>

/* Input parts longer than this are refused before preparation.  Stringprep
 * can only shrink a string by removing "mapped to nothing" characters, so a
 * longer input could only prepare to a valid part by being mostly padding;
 * the cap keeps a hostile stanza from buying a long preparation. */
#define JID_RAW_PART_MAX (8 * JID_PART_MAX)
/* RFC 1035 bound on a domain name in its ASCII (ToASCII) form. */
#define JID_DOMAIN_ASCII_MAX 253
#define JID_LABEL_MAX 63

enum prep_result { PREP_OK, PREP_FAILED, PREP_TOO_LONG };

/* Run one stringprep profile over s (valid UTF-8, len bytes).  The buffer is
 * sized so that STRINGPREP_TOO_SMALL_BUFFER can only mean "the prepared
 * string is longer than JID_PART_MAX". */
static enum prep_result prep(const char *s, size_t len, const Stringprep_profile *profile, char **out_r)
{
	size_t cap = (len > JID_PART_MAX ? len : JID_PART_MAX) + 2;
	char *buf = xmalloc(cap);

	*out_r = NULL;
	memcpy(buf, s, len);
	buf[len] = '\0';
	int rc = stringprep(buf, cap, 0, profile);
	if (rc == STRINGPREP_TOO_SMALL_BUFFER) {
		free(buf);
		return PREP_TOO_LONG;
	}
	if (rc != STRINGPREP_OK) {
		free(buf);
		return PREP_FAILED;
	}
	if (strlen(buf) > JID_PART_MAX) {
		free(buf);
		return PREP_TOO_LONG;
	}
	*out_r = buf;
	return PREP_OK;
}

/* What differs between the node and the resource: the profile and the words. */
struct part_prep {
	const Stringprep_profile *profile;
	const char *empty, *too_long, *not_utf8, *fails;
};

static const struct part_prep node_prep = {
	stringprep_xmpp_nodeprep,  "node is empty",       "node too long",
	"node is not valid UTF-8", "node fails nodeprep",
};
static const struct part_prep resource_prep = {
	stringprep_xmpp_resourceprep,  "resource is empty",           "resource too long",
	"resource is not valid UTF-8", "resource fails resourceprep",
};

static int prep_part(const struct part_prep *pp, const char *s, size_t len, char **out_r,
                     const char **error_r)
{
	*out_r = NULL;
	if (len == 0) {
		*error_r = pp->empty;
		return -1;
	}
	if (len > JID_RAW_PART_MAX) {
		*error_r = pp->too_long;
		return -1;
	}
	if (!utf8_valid(s, len) || memchr(s, '\0', len) != NULL) {
		*error_r = pp->not_utf8;
		return -1;
	}
	switch (prep(s, len, pp->profile, out_r)) {
	case PREP_OK: break;
	case PREP_TOO_LONG: *error_r = pp->too_long; return -1;
	case PREP_FAILED: *error_r = pp->fails; return -1;
	}
	if (**out_r == '\0') {
		xfree(out_r);
		*error_r = pp->empty;
		return -1;
	}
	return 0;
}

static int prep_node(const char *s, size_t len, char **out_r, const char **error_r)
{
	return prep_part(&node_prep, s, len, out_r, error_r);
}

static int prep_resource(const char *s, size_t len, char **out_r, const char **error_r)
{
	return prep_part(&resource_prep, s, len, out_r, error_r);
}

/* Copy s, turning the label separators RFC 6122 §2.2 treats as dots
 * (U+3002, U+FF0E, U+FF61) into '.'. */
static char *map_dots(const char *s, size_t len, size_t *len_r)
{
	char *out = xmalloc(len + 1);
	size_t o = 0;

	for (size_t i = 0; i < len;) {
		const unsigned char *u = (const unsigned char *)s + i;
		if (len - i >= 3 && ((u[0] == 0xe3 && u[1] == 0x80 && u[2] == 0x82) ||
		                     (u[0] == 0xef && u[1] == 0xbc && u[2] == 0x8e) ||
		                     (u[0] == 0xef && u[1] == 0xbd && u[2] == 0xa1))) {
			out[o++] = '.';
			i += 3;
		} else {
			out[o++] = s[i++];
		}
	}
	out[o] = '\0';
	*len_r = o;
	return out;
}

static bool is_ldh(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
}

/* Check the label sequence of a prepared (non-literal) domain. */
static int check_labels(const char *d, const char **error_r)
{
	const char *p = d;

	for (;;) {
		const char *dot = strchr(p, '.');
		size_t n = dot != NULL ? (size_t)(dot - p) : strlen(p);
		if (n == 0) {
			*error_r = "domain has an empty label";
			return -1;
		}
		if (n > JID_LABEL_MAX) {
			*error_r = "domain label too long";
			return -1;
		}
		bool ascii = true;
		for (size_t i = 0; i < n; i++)
			if ((unsigned char)p[i] >= 0x80)
				ascii = false;
		if (ascii) {
			for (size_t i = 0; i < n; i++) {
				if (!is_ldh((unsigned char)p[i])) {
					*error_r = "domain label has a character other than letter, digit or "
					           "hyphen";
					return -1;
				}
			}
			if (p[0] == '-' || p[n - 1] == '-') {
				*error_r = "domain label starts or ends with a hyphen";
				return -1;
			}
		}
		if (dot == NULL)
			return 0;
		p = dot + 1;
	}
}

static int prep_domain(const char *s, size_t len, char **out_r, const char **error_r)
{
	*out_r = NULL;
	if (len == 0) {
		*error_r = "domain is empty";
		return -1;
	}
	if (len > JID_RAW_PART_MAX) {
		*error_r = "domain too long";
		return -1;
	}
	if (!utf8_valid(s, len) || memchr(s, '\0', len) != NULL) {
		*error_r = "domain is not valid UTF-8";
		return -1;
	}

	/* IP literals are kept as they are. */
	if (s[0] == '[') {
		char addr[INET6_ADDRSTRLEN + 1];
		struct in6_addr a6;
		if (len < 3 || s[len - 1] != ']' || len - 2 > INET6_ADDRSTRLEN) {
			*error_r = "domain is not a valid IPv6 literal";
			return -1;
		}
		memcpy(addr, s + 1, len - 2);
		addr[len - 2] = '\0';
		if (inet_pton(AF_INET6, addr, &a6) != 1) {
			*error_r = "domain is not a valid IPv6 literal";
			return -1;
		}
		*out_r = xstrndup(s, len);
		return 0;
	}

	size_t dlen;
	char *d = map_dots(s, len, &dlen);
	/* One final dot is stripped (RFC 7622 §3.2); "." alone is empty. */
	if (d[dlen - 1] == '.')
		d[--dlen] = '\0';
	if (dlen == 0) {
		free(d);
		*error_r = "domain is empty";
		return -1;
	}

	struct in_addr a4;
	if (inet_pton(AF_INET, d, &a4) == 1) {
		*out_r = d;
		return 0;
	}

	char *prepped;
	enum prep_result pr = prep(d, dlen, stringprep_nameprep, &prepped);
	free(d);
	if (pr == PREP_TOO_LONG) {
		*error_r = "domain too long";
		return -1;
	}
	if (pr == PREP_FAILED) {
		*error_r = "domain fails nameprep";
		return -1;
	}
	if (*prepped == '\0') {
		free(prepped);
		*error_r = "domain is empty";
		return -1;
	}
	if (check_labels(prepped, error_r) != 0) {
		free(prepped);
		return -1;
	}

	/* IDNA ToASCII validates what nameprep alone does not (STD3 rules on
	 * every label, ACE label length) and gives the DNS length. */
	char *ascii = NULL;
	int rc = idna_to_ascii_8z(prepped, &ascii, IDNA_ALLOW_UNASSIGNED | IDNA_USE_STD3_ASCII_RULES);
	if (rc != IDNA_SUCCESS) {
		free(ascii);
		free(prepped);
		/* libidn encodes each label into a 63-character buffer: a
		 * punycode error there means the ACE label would be too long. */
		*error_r = rc == IDNA_INVALID_LENGTH || rc == IDNA_PUNYCODE_ERROR
		                   ? "domain label too long"
		                   : "domain fails IDNA ToASCII";
		return -1;
	}
	size_t alen = strlen(ascii);
	free(ascii);
	if (alen > JID_DOMAIN_ASCII_MAX) {
		free(prepped);
		*error_r = "domain too long";
		return -1;
	}
	*out_r = prepped;
	return 0;
}

int jid_parse(const char *s, struct jid *out, const char **error_r)
{
	const char *unused_error;
	if (error_r == NULL)
		error_r = &unused_error;
	memset(out, 0, sizeof(*out));
	if (s == NULL || *s == '\0') {
		*error_r = "JID is empty";
		return -1;
	}

	size_t len = strlen(s);
	const char *slash = memchr(s, '/', len);
	size_t head_len = slash != NULL ? (size_t)(slash - s) : len;
	const char *at = memchr(s, '@', head_len);
	const char *dom = at != NULL ? at + 1 : s;
	size_t dom_len = head_len - (size_t)(dom - s);

	if (at != NULL && prep_node(s, (size_t)(at - s), &out->node, error_r) != 0)
		goto fail;
	if (prep_domain(dom, dom_len, &out->domain, error_r) != 0)
		goto fail;
	if (slash != NULL && prep_resource(slash + 1, len - head_len - 1, &out->resource, error_r) != 0)
		goto fail;
	return 0;
fail:
	jid_clear(out);
	return -1;
}

void jid_clear(struct jid *j)
{
	free(j->node);
	free(j->domain);
	free(j->resource);
	memset(j, 0, sizeof(*j));
}

void jid_set(struct jid *j, const char *node, const char *domain, const char *resource)
{
	assert(domain != NULL);
	j->node = node != NULL ? xstrdup(node) : NULL;
	j->domain = domain != NULL ? xstrdup(domain) : NULL;
	j->resource = resource != NULL ? xstrdup(resource) : NULL;
}

void jid_copy(struct jid *dst, const struct jid *src)
{
	jid_set(dst, src->node, src->domain, src->resource);
}

char *jid_nodeprep(const char *s)
{
	char *out;
	const char *error;
	return prep_node(s, strlen(s), &out, &error) == 0 ? out : NULL;
}

char *jid_nameprep(const char *s)
{
	char *out;
	const char *error;
	return prep_domain(s, strlen(s), &out, &error) == 0 ? out : NULL;
}

char *jid_resourceprep(const char *s)
{
	char *out;
	const char *error;
	return prep_resource(s, strlen(s), &out, &error) == 0 ? out : NULL;
}

/* Length of the string form, without the NUL (full: with the resource). */
static size_t jid_strlen(const struct jid *j, bool full)
{
	size_t n = strlen(j->domain);
	if (j->node != NULL)
		n += strlen(j->node) + 1;
	if (full && j->resource != NULL)
		n += strlen(j->resource) + 1;
	return n;
}

/* Write the string form into dst, which has room for jid_strlen + 1 bytes. */
static void jid_write(char *dst, const struct jid *j, bool full)
{
	char *p = dst;
	if (j->node != NULL) {
		size_t n = strlen(j->node);
		memcpy(p, j->node, n);
		p += n;
		*p++ = '@';
	}
	size_t n = strlen(j->domain);
	memcpy(p, j->domain, n);
	p += n;
	if (full && j->resource != NULL) {
		*p++ = '/';
		n = strlen(j->resource);
		memcpy(p, j->resource, n);
		p += n;
	}
	*p = '\0';
}

char *jid_to_string(const struct jid *j)
{
	char *s = xmalloc(jid_strlen(j, true) + 1);
	jid_write(s, j, true);
	return s;
}

char *jid_bare_string(const struct jid *j)
{
	char *s = xmalloc(jid_strlen(j, false) + 1);
	jid_write(s, j, false);
	return s;
}

const char *jid_to_pool(struct pool *p, const struct jid *j)
{
	char *s = pool_alloc(p, jid_strlen(j, true) + 1);
	jid_write(s, j, true);
	return s;
}

const char *jid_bare_to_pool(struct pool *p, const struct jid *j)
{
	char *s = pool_alloc(p, jid_strlen(j, false) + 1);
	jid_write(s, j, false);
	return s;
}

bool jid_bare_equal(const struct jid *a, const struct jid *b)
{
	return str_eq(a->node, b->node) && str_eq(a->domain, b->domain);
}

bool jid_equal(const struct jid *a, const struct jid *b)
{
	return jid_bare_equal(a, b) && str_eq(a->resource, b->resource);
}

bool jid_is_bare(const struct jid *j)
{
	return j->resource == NULL;
}
