/*
 * The XEP-0115 verification string of a disco#info answer and its hash,
 * for mod_caps (and its unit test).  No state; any thread.
 */
#ifndef PARLEY_MODULES_CAPS_VER_H
#define PARLEY_MODULES_CAPS_VER_H

#include <stdbool.h>

struct xml_node;

/* The verification string (XEP-0115 §5.1) of query, a <query
 * xmlns='http://jabber.org/protocol/disco#info'/>: identities sorted by
 * category, type and xml:lang, features sorted, then each extended
 * information form (XEP-0128) by FORM_TYPE with its fields sorted by var
 * and their values sorted.  Malloc'd; NULL with a static *error_r when the
 * answer must not be used (§5.4: an identity, feature or FORM_TYPE given
 * twice).  Forms without a hidden FORM_TYPE field are left out. */
char *caps_ver_string(const struct xml_node *query, const char **error_r);

/* Whether hash names (in the IANA "Hash Function Textual Names" registry,
 * as the hash attribute gives it) a hash that verifies caps here: sha-1
 * and the stronger SHA-2 and SHA-3 hashes, not md5. */
bool caps_hash_supported(const char *hash);

/* The base64 of the hash named hash (caps_hash_supported) of s: the ver
 * of a verification string.  Malloc'd; NULL when hash is not supported. */
char *caps_ver_hash(const char *hash, const char *s);

#endif
