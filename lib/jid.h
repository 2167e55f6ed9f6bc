/*
 * JIDs (RFC 7622 address format, prepared with the RFC 6122 stringprep
 * profiles of libidn: nodeprep, nameprep, resourceprep; IDNA ToASCII/ToUnicode
 * rules for the domain).  A struct jid holds the prepared parts; comparison
 * is byte equality of prepared parts.  Thread-safe.
 */
#ifndef PARLEY_JID_H
#define PARLEY_JID_H

#include "util.h"

#define JID_PART_MAX 1023 /* bytes of each prepared part (RFC 7622 §3.1) */

struct jid {
	char *node;     /* NULL when absent */
	char *domain;   /* never NULL in a valid JID */
	char *resource; /* NULL when absent */
};

/* Parse and prepare.  Returns 0, or -1 with *error_r set to a static
 * description (e.g. "node fails nodeprep").  On success out holds malloc'd
 * parts (free with jid_clear).  Rules: empty parts are invalid ("@d", "n@",
 * "d/"), each part at most 1023 bytes after preparation, the domain may end
 * with one dot which is removed, an IP literal domain ("[::1]", "1.2.3.4") is
 * kept as is, the domain goes through nameprep and must then be a valid
 * label sequence (labels of 1..63 LDH or non-ASCII characters). */
int jid_parse(const char *s, struct jid *out, const char **error_r);
void jid_clear(struct jid *j);
/* Deep copy. */
void jid_copy(struct jid *dst, const struct jid *src);
/* Build from already-prepared parts (copied; node/resource may be NULL). */
void jid_set(struct jid *j, const char *node, const char *domain, const char *resource);

/* Prepare one part; return a malloc'd prepared string or NULL when invalid. */
char *jid_nodeprep(const char *s);
char *jid_nameprep(const char *s);
char *jid_resourceprep(const char *s);

/* "node@domain/resource" (full) and "node@domain" (bare) as malloc'd strings. */
char *jid_to_string(const struct jid *j);
char *jid_bare_string(const struct jid *j);
/* The same, written into a pool. */
const char *jid_to_pool(struct pool *p, const struct jid *j);
const char *jid_bare_to_pool(struct pool *p, const struct jid *j);

bool jid_equal(const struct jid *a, const struct jid *b);
bool jid_bare_equal(const struct jid *a, const struct jid *b);
bool jid_is_bare(const struct jid *j);

#endif
