/*
 * What mod_vcard offers the rest of the server besides its iq handler: the
 * directory lookup of a vCard for diagnostics (parleyctl ldap-test), the
 * same search and the same attribute-to-vCard mapping as a vCard get on a
 * host with source: ldap.  Loop thread.
 */
#ifndef PARLEY_MODULES_VCARD_H
#define PARLEY_MODULES_VCARD_H

#include <stdbool.h>
#include <stddef.h>

struct host;
struct xml_node;
struct ldap_reply;
struct vcard_ldap_probe;

/* r: the reply of the lookup (ldap_client_find_traced: the search sent,
 * the servers tried, the entries found); attrs: the attributes it asked
 * for, NULL-terminated; vcard: what a vCard get is answered with (r->res
 * LDAPC_OK: the entry mapped; LDAPC_NO_ENTRY: an empty vCard), else NULL
 * (a get is answered with an error).  Everything is valid during the
 * callback only. */
typedef void vcard_ldap_probe_cb(const struct ldap_reply *r, const char *const *attrs,
                                 const struct xml_node *vcard, void *ctx);

/* Whether mod_vcard runs on h with source: ldap. */
bool vcard_ldap_enabled(const struct host *h);
/* Look user's vCard up in the directory as a get would, without the cache
 * (neither read nor filled).  cb runs later from the loop, exactly once
 * unless cancelled (also when the module stops meanwhile).  NULL with a
 * static *error_r when it cannot start (no LDAP source on h, the LDAP
 * request queue is full): cb will not run. */
struct vcard_ldap_probe *vcard_ldap_probe(const struct host *h, const char *user,
                                          vcard_ldap_probe_cb *cb, void *ctx,
                                          const char **error_r);
/* cb will not run; p is freed. */
void vcard_ldap_probe_cancel(struct vcard_ldap_probe *p);

/* The MIME type a vCard PHOTO gets for an image, from its first bytes (JPEG,
 * PNG, GIF, WebP), or NULL when mod_vcard does not recognise it. */
const char *vcard_image_type(const unsigned char *data, size_t len);

#endif
