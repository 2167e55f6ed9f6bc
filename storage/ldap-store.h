/*
 * The LDAP store: the read-only areas Parley can take from a directory
 * instead of the host's SQL store, on the host's auth.ldap settings and an
 * LDAP client of its own (lib/ldap-client.h, whose worker group does the
 * blocking work).  It implements:
 * - vcard: a get looks the user's entry up (the search of a login) and maps
 *   its attributes to a vCard (struct ldap_vcard_map); a user the directory
 *   does not have is STORAGE_NOT_FOUND; a set is STORAGE_ERROR (the
 *   directory is managed elsewhere: callers refuse sets before they ask);
 * - search: the user directory (XEP-0055) as one subtree search under the
 *   auth.ldap base, the fields mapped as for vCards; reindex has nothing to
 *   do (count 0);
 * - srg, in a store of its own (ldap_store_srg_open, opened by
 *   mod_shared_roster with source: ldap): the shared roster groups, read
 *   only.
 * Any other area is not held (storage_has_area is false).  An outage of
 * the directory, or a full LDAP queue, is STORAGE_TEMPFAIL.
 *
 * The module whose configuration chooses the directory (mod_vcard or
 * mod_shared_roster with source: ldap) opens the store and hands it to its host for the areas it
 * serves (host_set_store); the store is closed with storage_close.  Loop
 * thread; ldap_store_search_filter is pure.
 */
#ifndef PARLEY_STORAGE_LDAP_STORE_H
#define PARLEY_STORAGE_LDAP_STORE_H

#include "storage/storage.h"

struct ldap_config;
struct ldap_client;
struct ldap_store_probe;
struct ldap_reply;
struct xml_node;

/* How a user entry maps to a vCard: the attribute of each field (NULL or
 * "": the field is left out).  email and tel give every value; photo lists
 * the attributes of PHOTO, the first one the entry has wins; a photo whose
 * image type is not recognised (JPEG, PNG, GIF, WebP) or that is bigger
 * than max_size is left out. */
struct ldap_vcard_map {
	const char *fn, *family, *given, *nickname, *email, *tel;
	const char *orgname, *orgunit, *title, *locality;
	const struct strlist *photo;
	size_t max_size;
};

/* Open an LDAP store of host on cfg (copied) with the vCard mapping map
 * (copied).  name says whose it is in logs and in the LDAP client's status
 * ("vcard example.com").  -1 with a malloc'd *error_r (bad auth.ldap
 * settings, an unreadable password file). */
int ldap_store_open(struct ev_loop *loop, const char *name, const char *host, const struct ldap_config *cfg,
                    const struct ldap_vcard_map *map, struct storage **st_r, char **error_r);

/* The LDAP client of st (an LDAP store), and in attrs_r the attribute of
 * each searchable field (NULL: not mapped): VF_USER is the first of
 * auth.ldap.uids, the others those of the vCard mapping.  Valid while st
 * is open. */
struct ldap_client *ldap_store_client(struct storage *st, const char *attrs_r[VF_COUNT]);

/* r: the reply of the lookup (ldap_client_find_traced: the search sent, the
 * servers tried, the entries found); attrs: the attributes it asked for,
 * NULL-terminated; vcard: what a vCard get is answered with (r->res
 * LDAPC_OK: the entry mapped; LDAPC_NO_ENTRY: an empty vCard), else NULL.
 * Everything is valid during the callback only. */
typedef void ldap_store_probe_cb(const struct ldap_reply *r, const char *const *attrs,
                                 const struct xml_node *vcard, void *ctx);
/* Look user's vCard up as a get of st would (without a cache), with the
 * trace parleyctl ldap-test shows.  cb runs later from the loop, exactly
 * once unless cancelled (also when the store closes meanwhile).  NULL when
 * the LDAP queue is full: cb will not run. */
struct ldap_store_probe *ldap_store_vcard_probe(struct storage *st, const char *user, ldap_store_probe_cb *cb,
                                                void *ctx);
/* cb of p will not run; p is freed.  NULL: nothing. */
void ldap_store_probe_cancel(struct ldap_store_probe *p);

/* ---- the shared roster groups (storage/ldap-srg.c) ------------------------ */

enum { SRG_LDAP_MAP_DN, SRG_LDAP_MAP_VALUE };
enum { SRG_LDAP_DISPLAY_SELF, SRG_LDAP_DISPLAY_ALL };
enum { SRG_LDAP_FROM_ENTRIES, SRG_LDAP_FROM_USER_ATTR };

/* The module's ldap_* options (strings borrowed from the settings). */
struct srg_ldap_config {
	int groups_from;       /* SRG_LDAP_FROM_ENTRIES: group entries are the groups;
	                               * _USER_ATTR: the values of user_group_attr */
	char *user_group_attr; /* FROM_USER_ATTR: the user attribute naming groups */
	char *group_base;      /* NULL: the host's auth.ldap base */
	char *group_filter;    /* which entries are groups */
	char *name_attr;       /* the group's name (first value) */
	char *desc_attr;       /* its description ("" : none) */
	char *display_attr;    /* its roster group name ("" : the name) */
	char *member_attr;     /* its members */
	int member_mapping;    /* SRG_LDAP_MAP_DN: member values are DNs of user
	                               * entries; _VALUE: they are user names */
	char *user_uid_attr;   /* MAP_DN, FROM_USER_ATTR, names: the user name
	                               * attribute of a user entry */
	char *user_name_attr;  /* the name shown for a shared contact ("": its vCard's) */
	bool nested;           /* a member DN of a group entry adds its members */
	char *nested_base;     /* nested: where group entries are searched (NULL:
	                               * group_base) */
	char *nested_filter;   /* nested: which entries are groups there */
	unsigned nested_depth; /* nested: levels of groups below a group expanded */
	double refresh;        /* seconds between reads of the directory */
	int displayed;         /* SRG_LDAP_DISPLAY_SELF / _ALL */
};

/* Open an LDAP store of host's shared roster groups, read as cfg says (cfg
 * is borrowed: it must outlive the store), on the directory of ldap
 * (copied).  Its srg area: a get or a list loads every group (at most
 * three searches); names reads ldap_user_name_attr; the changes are
 * STORAGE_ERROR.  -1 with a malloc'd *error_r (settings that do not go
 * together, bad auth.ldap settings). */
int ldap_store_srg_open(struct ev_loop *loop, const char *name, const char *host,
                        const struct ldap_config *ldap, const struct srg_ldap_config *cfg,
                        struct storage **st_r, char **error_r);
/* The first search a load of st (a store of ldap_store_srg_open) sends: its
 * base and filter, malloc'd.  0. */
int ldap_store_srg_search(struct storage *st, char **base_r, char **filter_r);
/* The DN of a uniqueMember value (RFC 4517 NameAndOptionalUID): value
 * without a trailing "#'0101'B" (a bit string), or all of it.  Pure;
 * malloc'd. */
char *ldap_srg_unique_member_dn(const char *value);

/* The filter of a directory search (pure; any thread): the listing
 * filter of ldap_listing_filter (lib/ldap-client.h)
 *   (&(USER=*)(AUTH_FILTER)(TERM)...)
 * where USER is attrs[VF_USER], AUTH_FILTER the auth.ldap filter and each
 * TERM (ATTR=VALUE) for an exact term, (ATTR=VALUE*) for a prefix, VALUE
 * escaped with ldap_filter_escape (RFC 4515).  A prefix term with an empty
 * value matches anything and is left out.  NULL when nothing can match: a
 * term with a value on a field attrs does not map (NULL), no
 * attrs[VF_USER], or an auth.ldap filter with %u (which the configuration
 * check refuses first).  Malloc'd. */
char *ldap_store_search_filter(const char *const attrs[VF_COUNT], const char *auth_filter,
                               const struct vcard_term *terms, size_t n);

#endif
