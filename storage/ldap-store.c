/*
 * The LDAP store (storage/ldap-store.h): a store without workers of its
 * own whose area operations start a request on its LDAP client (whose
 * worker group does the blocking work) and answer when that request does.
 * This file holds the store itself and its vcard area; the search area is
 * in storage/ldap-search.c.
 *
 * Loop thread: a job's work runs on the loop (storage.c, for a store
 * without workers), starts the request and holds the job
 * (storage_req_hold); the client's callback, on the loop too, builds the
 * results in the job and releases it.
 *
 * Invariants:
 * - every held job is released exactly once: the client answers every
 *   request it took exactly once, and ldap_store_close frees the client
 *   (which answers what is under way) before the base finishes the rest;
 * - a job whose work runs while the store closes, or that the client's
 *   queue refuses, is STORAGE_TEMPFAIL; a directory outage is
 *   STORAGE_TEMPFAIL, never STORAGE_NOT_FOUND;
 * - attribute values that are not UTF-8 text of XML characters
 *   (ldap_value_text: no control characters but white space, no U+FFFE or
 *   U+FFFF) are left out of a vCard, value by value, never the whole
 *   vCard; a photo goes in as BINVAL with the TYPE its first bytes show.
 */
#include "storage/ldap-store-private.h"
#include "storage/search-store.h"
#include "storage/vcard-store.h"
#include "lib/ldap-client.h"
#include "lib/log.h"
#include "lib/xml.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define NS_VCARD "vcard-temp"

static struct ldap_store *store_of(struct storage *st)
{
	return (struct ldap_store *)st;
}

/* ---- mapping an entry to a vCard --------------------------------------------------- */

static const struct ldap_attr *find_attr(const struct ldap_reply *r, const char *name)
{
	if (name == NULL || *name == '\0')
		return NULL;
	for (size_t i = 0; i < r->nattrs; i++)
		if (strcasecmp(r->attrs[i].name, name) == 0)
			return &r->attrs[i];
	return NULL;
}

/* The first usable value of attribute name (ldap_value_text), or NULL. */
static const struct ldap_value *first_text(const struct ldap_reply *r, const char *name)
{
	const struct ldap_attr *a = find_attr(r, name);
	for (size_t i = 0; a != NULL && i < a->count; i++)
		if (ldap_value_text(&a->values[i], r->dn, a->name))
			return &a->values[i];
	return NULL;
}

static void add_text(struct xml_node *parent, const char *name, const struct ldap_value *v)
{
	struct xml_node *el = xml_add_child(parent, name, NULL);
	xml_add_text(el, (const char *)v->data, v->len);
}

static struct xml_node *empty_vcard(void)
{
	return xml_new("vCard", NS_VCARD);
}

/* The vCard of user's entry r (host: for the log). */
static struct xml_node *vcard_from_entry(const struct ldap_store *ls, const struct ldap_reply *r,
                                         const char *user, const char *host)
{
	struct xml_node *vc = empty_vcard();
	const struct ldap_value *v;
	if ((v = first_text(r, ls->fn)) != NULL)
		add_text(vc, "FN", v);
	const struct ldap_value *family = first_text(r, ls->family);
	const struct ldap_value *given = first_text(r, ls->given);
	if (family != NULL || given != NULL) {
		struct xml_node *n = xml_add_child(vc, "N", NULL);
		if (family != NULL)
			add_text(n, "FAMILY", family);
		if (given != NULL)
			add_text(n, "GIVEN", given);
	}
	if ((v = first_text(r, ls->nickname)) != NULL)
		add_text(vc, "NICKNAME", v);
	const struct ldap_attr *a = find_attr(r, ls->email);
	for (size_t i = 0; a != NULL && i < a->count; i++) {
		if (!ldap_value_text(&a->values[i], r->dn, a->name))
			continue;
		struct xml_node *email = xml_add_child(vc, "EMAIL", NULL);
		xml_add_child(email, "INTERNET", NULL);
		add_text(email, "USERID", &a->values[i]);
	}
	a = find_attr(r, ls->tel);
	for (size_t i = 0; a != NULL && i < a->count; i++) {
		if (!ldap_value_text(&a->values[i], r->dn, a->name))
			continue;
		struct xml_node *tel = xml_add_child(vc, "TEL", NULL);
		add_text(tel, "NUMBER", &a->values[i]);
	}
	const struct ldap_value *orgname = first_text(r, ls->orgname);
	const struct ldap_value *orgunit = first_text(r, ls->orgunit);
	if (orgname != NULL || orgunit != NULL) {
		struct xml_node *org = xml_add_child(vc, "ORG", NULL);
		if (orgname != NULL)
			add_text(org, "ORGNAME", orgname);
		if (orgunit != NULL)
			add_text(org, "ORGUNIT", orgunit);
	}
	if ((v = first_text(r, ls->title)) != NULL)
		add_text(vc, "TITLE", v);
	if ((v = first_text(r, ls->locality)) != NULL)
		add_text(xml_add_child(vc, "ADR", NULL), "LOCALITY", v);
	for (size_t p = 0; p < ls->photo.count; p++) {
		a = find_attr(r, ls->photo.items[p]);
		if (a == NULL || a->count == 0)
			continue;
		const struct ldap_value *img = &a->values[0];
		const char *type = vcard_photo_type(img->data, img->len);
		if (type == NULL || img->len > ls->max_size) {
			log_info("vcard: %s@%s: %s left out (%s)", user, host, ls->photo.items[p],
			         type == NULL ? "not a JPEG, PNG, GIF or WebP image"
			                      : "larger than max_size");
			continue;
		}
		char *b64 = base64_encode(img->data, img->len);
		struct xml_node *photo = xml_add_child(vc, "PHOTO", NULL);
		struct xml_node *t = xml_add_child(photo, "TYPE", NULL);
		xml_add_text(t, type, strlen(type));
		struct xml_node *bin = xml_add_child(photo, "BINVAL", NULL);
		xml_add_text(bin, b64, strlen(b64));
		free(b64);
		break;
	}
	return vc;
}

/* ---- the vcard area -------------------------------------------------------------- */

static void vcard_found(const struct ldap_reply *r, void *ctx)
{
	struct vcard_get_job *j = ctx;
	struct ldap_store *ls = store_of(j->base.st);
	const char *user = j->base.user, *host = j->base.host;
	enum storage_result res;
	switch (r->res) {
	case LDAPC_OK: {
		struct xml_node *vc = vcard_from_entry(ls, r, user, host);
		char *text = xml_to_string(vc, NULL);
		j->out_text = pool_strdup(j->base.pool, text);
		free(text);
		xml_unref(&vc);
		res = STORAGE_OK;
		break;
	}
	case LDAPC_NO_ENTRY: res = STORAGE_NOT_FOUND; break;
	case LDAPC_TEMPFAIL:
		if (!j->base.cancelled) /* nobody waits: the store closes */
			log_warning("vcard: %s@%s: %s", user, host,
			            r->error != NULL ? r->error : "the directory is unavailable");
		res = STORAGE_TEMPFAIL;
		break;
	default:
		log_error("vcard: %s@%s: %s", user, host,
		          r->error != NULL ? r->error : ldap_client_result_str(r->res));
		res = STORAGE_ERROR;
		break;
	}
	storage_req_release(&j->base, res);
}

static enum storage_result ldap_vcard_get(void *conn, struct vcard_get_job *j)
{
	struct ldap_store *ls = conn;
	if (ls->st.closing)
		return STORAGE_TEMPFAIL;
	if (ldap_client_submit(ls->client, LDAPC_FIND, j->base.user, NULL, ls->vcard_attrs, vcard_found, j) ==
	    NULL)
		return STORAGE_TEMPFAIL; /* the queue is full */
	storage_req_hold(&j->base);
	return STORAGE_OK;
}

static enum storage_result ldap_vcard_set(void *conn, struct vcard_set_job *j)
{
	(void)conn;
	log_error("vcard: %s@%s: vCards from the directory cannot be changed here", j->base.user,
	          j->base.host);
	return STORAGE_ERROR;
}

static const struct vcard_store_vfuncs ldap_vcard_vfuncs = {
	.get = ldap_vcard_get,
	.set = ldap_vcard_set,
};

/* ---- the store -------------------------------------------------------------------- */

static char *attr_dup(const char *attr)
{
	return attr != NULL && *attr != '\0' ? xstrdup(attr) : NULL;
}

static void ldap_store_free(struct ldap_store *ls)
{
	char **fields[] = { &ls->fn,  &ls->family,  &ls->given,   &ls->nickname, &ls->email,
		            &ls->tel, &ls->orgname, &ls->orgunit, &ls->title,    &ls->locality };
	for (size_t i = 0; i < ARRAY_SIZE(fields); i++)
		free(*fields[i]);
	strlist_free(&ls->photo);
	free(ls->name);
	free(ls->host);
	free(ls);
}

static void ldap_close(struct storage *st)
{
	struct ldap_store *ls = store_of(st);
	/* Answers what is under way: every held job is released. */
	ldap_client_free(&ls->client);
	storage_base_deinit(st);
	ldap_store_free(ls);
}

static const struct storage_vfuncs storage_ldap_vfuncs = {
	.name = "ldap",
	.close = ldap_close,
};

int ldap_store_open(struct ev_loop *loop, const char *name, const char *host, const struct ldap_config *cfg,
                    const struct ldap_vcard_map *map, struct storage **st_r, char **error_r)
{
	struct ldap_store *ls = xcalloc(1, sizeof(*ls));
	ls->name = xstrdup(name);
	ls->host = xstrdup(host);
	if (ldap_client_new(loop, name, cfg, &ls->client, error_r) < 0) {
		ldap_store_free(ls);
		return -1;
	}
	ls->fn = attr_dup(map->fn);
	ls->family = attr_dup(map->family);
	ls->given = attr_dup(map->given);
	ls->nickname = attr_dup(map->nickname);
	ls->email = attr_dup(map->email);
	ls->tel = attr_dup(map->tel);
	ls->orgname = attr_dup(map->orgname);
	ls->orgunit = attr_dup(map->orgunit);
	ls->title = attr_dup(map->title);
	ls->locality = attr_dup(map->locality);
	size_t nphoto = map->photo != NULL ? map->photo->count : 0;
	ls->photo.items = xcalloc(nphoto > 0 ? nphoto : 1, sizeof(*ls->photo.items));
	for (size_t i = 0; i < nphoto; i++)
		ls->photo.items[ls->photo.count++] = xstrdup(map->photo->items[i]);
	ls->max_size = map->max_size;
	const char *fields[] = { ls->fn,  ls->family,  ls->given,   ls->nickname, ls->email,
		                 ls->tel, ls->orgname, ls->orgunit, ls->title,    ls->locality };
	size_t n = 0;
	for (size_t i = 0; i < ARRAY_SIZE(fields); i++)
		if (fields[i] != NULL)
			ls->vcard_attrs[n++] = fields[i];
	for (size_t i = 0; i < ls->photo.count && n + 1 < ARRAY_SIZE(ls->vcard_attrs); i++)
		ls->vcard_attrs[n++] = ls->photo.items[i];
	ls->vcard_attrs[n] = NULL;
	const struct strlist *uids = ldap_client_uids(ls->client);
	ls->search_attrs[VF_USER] = uids->count > 0 && *uids->items[0] != '\0' ? uids->items[0] : NULL;
	ls->search_attrs[VF_FN] = ls->fn;
	ls->search_attrs[VF_FIRST] = ls->given;
	ls->search_attrs[VF_LAST] = ls->family;
	ls->search_attrs[VF_NICK] = ls->nickname;
	ls->search_attrs[VF_EMAIL] = ls->email;
	ls->search_attrs[VF_LOCALITY] = ls->locality;
	ls->search_attrs[VF_ORG] = ls->orgname;

	char *description = xasprintf("ldap:%s", name);
	storage_base_init(&ls->st, &storage_ldap_vfuncs, loop, description);
	free(description);
	ls->st.vcard = &ldap_vcard_vfuncs;
	ls->st.search = &ldap_search_vfuncs;
	*st_r = &ls->st;
	return 0;
}

struct ldap_client *ldap_store_client(struct storage *st, const char *attrs_r[VF_COUNT])
{
	struct ldap_store *ls = store_of(st);
	if (attrs_r != NULL)
		memcpy(attrs_r, ls->search_attrs, sizeof(ls->search_attrs));
	return ls->client;
}

/* ---- the lookup for parleyctl ldap-test ------------------------------------------ */

struct ldap_store_probe {
	struct ldap_store *ls;
	struct ldap_client_req *lreq;
	ldap_store_probe_cb *cb;
	void *ctx;
	char *user;
};

static void probe_free(struct ldap_store_probe *p)
{
	free(p->user);
	free(p);
}

/* From the loop, or from ldap_client_free while the store closes. */
static void probe_read(const struct ldap_reply *r, void *ctx)
{
	struct ldap_store_probe *p = ctx;
	struct xml_node *vcard = NULL;
	if (r->res == LDAPC_OK)
		vcard = vcard_from_entry(p->ls, r, p->user, p->ls->host);
	else if (r->res == LDAPC_NO_ENTRY)
		vcard = empty_vcard();
	p->cb(r, p->ls->vcard_attrs, vcard, p->ctx);
	xml_unref(&vcard);
	probe_free(p);
}

struct ldap_store_probe *ldap_store_vcard_probe(struct storage *st, const char *user, ldap_store_probe_cb *cb,
                                                void *ctx)
{
	struct ldap_store *ls = store_of(st);
	struct ldap_store_probe *p = xcalloc(1, sizeof(*p));
	p->ls = ls;
	p->cb = cb;
	p->ctx = ctx;
	p->user = xstrdup(user);
	p->lreq = ldap_client_find_traced(ls->client, user, ls->vcard_attrs, probe_read, p);
	if (p->lreq == NULL) {
		probe_free(p);
		return NULL;
	}
	return p;
}

void ldap_store_probe_cancel(struct ldap_store_probe *p)
{
	if (p == NULL)
		return;
	ldap_client_cancel(p->lreq);
	probe_free(p);
}
