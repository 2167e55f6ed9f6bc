/*
 * What mod_vcard offers the rest of the server besides its iq handler, on a
 * host whose vCards come from the directory (vcard: { source: ldap }, read
 * from the LDAP store the module opens, storage/ldap-store.h):
 * - the directory lookup of a vCard for diagnostics (parleyctl ldap-test),
 *   the same search and the same attribute-to-vCard mapping as a vCard get;
 * - the store's LDAP client and attribute mapping, and a vCard read
 *   through the module's cache (mod_avatar's photo hash).
 * Loop thread.
 *
 * mod_vjud and mod_avatar are registered after mod_vcard, so on a host they
 * start after it and stop before it: what these functions hand out stays
 * valid while the caller runs, and callers cancel their reads in their own
 * stop.
 */
#ifndef PARLEY_MODULES_VCARD_H
#define PARLEY_MODULES_VCARD_H

#include <stdbool.h>
#include <stddef.h>

#include "storage/storage.h"

struct host;
struct host_config;
struct xml_node;
struct ldap_reply;
struct ldap_client;
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
struct vcard_ldap_probe *vcard_ldap_probe(const struct host *h, const char *user, vcard_ldap_probe_cb *cb,
                                          void *ctx, const char **error_r);
/* cb will not run; p is freed. */
void vcard_ldap_probe_cancel(struct vcard_ldap_probe *p);

/* The MIME type a vCard PHOTO gets for an image, from its first bytes (JPEG,
 * PNG, GIF, WebP), or NULL when mod_vcard does not recognise it. */
const char *vcard_image_type(const unsigned char *data, size_t len);

/* ---- for mod_vjud and mod_avatar ------------------------------------------ */

/* Whether the vcard module of hc reads vCards from LDAP (from the
 * configuration alone: for checks before anything runs). */
bool vcard_config_ldap(const struct host_config *hc);

/* The LDAP client of h's running vcard module's store and, in attrs_r,
 * the attribute of each searchable field (NULL: not mapped): VF_USER is
 * the first of auth.ldap.uids, the others the module's ldap_* options.
 * NULL when the module does not run on h with source ldap. */
struct ldap_client *vcard_ldap_directory(struct host *h, const char *attrs_r[VF_COUNT]);

/* A vCard read for another module.  res: STORAGE_OK with vcard (an empty
 * <vCard/> for a user the directory does not have), STORAGE_TEMPFAIL (the
 * directory is unavailable or busy), STORAGE_ERROR.  vcard is valid during
 * the call. */
typedef void vcard_fetch_cb(enum storage_result res, const struct xml_node *vcard, void *ctx);
struct vcard_fetch;
/* Read user's vCard as a vCard get would: from the cache while it is
 * fresh, else from the directory (on the LDAP client's worker group; the
 * answer is cached, and the vcard_set hook runs with it as for any vCard
 * read from the directory).  cb runs later on the loop, never inside this
 * call, exactly once unless cancelled.  NULL when h's vCards do not come
 * from LDAP (cb will not run). */
struct vcard_fetch *vcard_ldap_fetch(struct host *h, const char *user, vcard_fetch_cb *cb, void *ctx);
/* cb of f will not run; f is invalid afterwards. */
void vcard_ldap_fetch_cancel(struct vcard_fetch *f);

#endif
