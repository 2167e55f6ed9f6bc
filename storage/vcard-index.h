/*
 * The searchable fields of a vCard (vcard-temp, XEP-0054) for the user
 * directory (XEP-0055): extracted when a vCard is stored, kept beside it
 * in lower case for case-insensitive, indexed lookups.  Thread-safe (used
 * on storage worker threads and on the loop).
 */
#ifndef PARLEY_VCARD_INDEX_H
#define PARLEY_VCARD_INDEX_H

#include "lib/util.h"

/* The fields a directory search may name.  VF_USER is the account name
 * (the local part of the JID). */
enum vcard_field { VF_USER, VF_FN, VF_FIRST, VF_LAST, VF_NICK, VF_EMAIL, VF_LOCALITY, VF_ORG, VF_COUNT };

/* The bytes kept of each field (longer values are cut at a character
 * boundary). */
#define VCARD_FIELD_MAX 255

struct vcard_index {
	char *fields[VF_COUNT]; /* malloc'd, "" when absent; fields[VF_USER] unused (NULL) */
	bool listed;            /* <CLASS><PUBLIC/></CLASS>: the user opts in to the directory */
};

/* Extract the fields of a serialized <vCard xmlns='vcard-temp'/>: FN,
 * N/GIVEN, N/FAMILY, NICKNAME, the first EMAIL's USERID (or its text), the
 * first ADR's LOCALITY, ORG/ORGNAME, and CLASS/PUBLIC.  -1 when the text is
 * not a vCard (out is then empty). */
int vcard_index_extract(const char *xml, struct vcard_index *out);
void vcard_index_clear(struct vcard_index *vi);

/* The form compared by searches: lower case for the letters of Latin-1,
 * Latin Extended-A, Greek and Cyrillic (other characters unchanged),
 * surrounding white space dropped.  Malloc'd. */
char *vcard_fold(const char *s);

/* The MIME type a vCard PHOTO gets for an image, from its first bytes
 * (JPEG, PNG, GIF, WebP), or NULL when it is none of them. */
const char *vcard_photo_type(const unsigned char *data, size_t len);

#endif
