/*
 * What the files of the LDAP store share (storage/ldap-store.c, the store
 * and its vcard area; storage/ldap-search.c, its search area).  Only they
 * include this.  Loop thread.
 */
#ifndef PARLEY_STORAGE_LDAP_STORE_PRIVATE_H
#define PARLEY_STORAGE_LDAP_STORE_PRIVATE_H

#include "storage/ldap-store.h"
#include "storage/storage-private.h"

struct ldap_store {
	struct storage st; /* first */
	char *name;        /* "vcard example.com" */
	char *host;        /* the host it serves, for log lines */
	struct ldap_client *client;
	/* the vCard mapping (copies; NULL: not mapped) */
	char *fn, *family, *given, *nickname, *email, *tel;
	char *orgname, *orgunit, *title, *locality;
	struct strlist photo;
	size_t max_size;
	const char *vcard_attrs[16];        /* what a vCard lookup asks for, NULL-terminated */
	const char *search_attrs[VF_COUNT]; /* the attribute of each searchable field */
};

extern const struct search_store_vfuncs ldap_search_vfuncs;

#endif
