/*
 * The search area of the LDAP store (storage/ldap-store.h): the user
 * directory (XEP-0055) as one subtree search under the auth.ldap base, on
 * the store's LDAP client, with the filter
 *   (&(UID=*)(auth.ldap.filter)(ATTR=value)(ATTR=prefix*)...)
 * where each field searched is the attribute the store's vCard mapping
 * gives it and UID the first of auth.ldap.uids.  The directory compares
 * with the attributes' own matching rules, which for the usual ones (cn,
 * sn, givenName, displayName, mail, l, o, uid) ignore case, so the terms
 * go in as the searcher gave them, not folded.  Loop thread (the work of a
 * store without workers, and the client's callback); the filter is built
 * by a pure function.
 *
 * Invariants:
 * - every value from the searcher goes into the filter through
 *   ldap_filter_escape (RFC 4515); the only '*' that is not escaped is the
 *   one that makes a term a prefix;
 * - the server is asked for at most limit + 1 entries; when it stops
 *   early (this size limit or its own), what came is answered, with "more";
 * - an entry whose user name is missing or fails nodeprep is left out; the
 *   answer is sorted by user name, one entry per name;
 * - a value that is not UTF-8 text of XML characters (ldap_value_text)
 *   is left out, as if the entry did not have it;
 * - listed_only is not honoured (the consent lives in vCards users store;
 *   mod_vjud refuses search_all: false with the directory);
 * - an outage or a full LDAP queue is STORAGE_TEMPFAIL.
 */
#include "storage/ldap-store-private.h"
#include "storage/search-store.h"
#include "lib/ldap-client.h"
#include "lib/jid.h"
#include "lib/log.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- the filter ---------------------------------------------------------------- */

char *ldap_store_search_filter(const char *const attrs[VF_COUNT], const char *auth_filter,
                               const struct vcard_term *terms, size_t n)
{
	if (attrs[VF_USER] == NULL)
		return NULL;
	struct buf more = { 0 };
	for (size_t i = 0; i < n; i++) {
		const char *value = terms[i].value != NULL ? terms[i].value : "";
		if (terms[i].prefix && *value == '\0')
			continue; /* "*": anything, the field empty too */
		const char *attr = terms[i].field < VF_COUNT ? attrs[terms[i].field] : NULL;
		if (attr == NULL) {
			buf_free(&more); /* an unmapped field is empty: no match */
			return NULL;
		}
		char *esc = ldap_filter_escape(value, strlen(value));
		buf_printf(&more, "(%s=%s%s)", attr, esc, terms[i].prefix ? "*" : "");
		free(esc);
	}
	const char *present[] = { attrs[VF_USER], NULL };
	char *filter = NULL, *err = NULL;
	if (ldap_listing_filter(present, auth_filter, more.data, &filter, &err) < 0)
		free(err); /* %u: refused by the configuration check */
	buf_free(&more);
	return filter;
}

/* ---- the search ---------------------------------------------------------------- */

/* The first value of attribute name that is text (ldap_value_text: UTF-8
 * of XML characters), malloc'd, or NULL. */
static char *first_text(const struct ldap_entry *e, const char *name)
{
	if (name == NULL)
		return NULL;
	for (size_t i = 0; i < e->nattrs; i++) {
		const struct ldap_attr *a = &e->attrs[i];
		if (strcasecmp(a->name, name) != 0)
			continue;
		for (size_t v = 0; v < a->count; v++)
			if (ldap_value_text(&a->values[v], e->dn, a->name))
				return xstrndup((const char *)a->values[v].data, a->values[v].len);
	}
	return NULL;
}

struct found {
	char *fields[VF_COUNT];
};

static int found_cmp(const void *a, const void *b)
{
	const struct found *x = a, *y = b;
	return strcmp(x->fields[VF_USER], y->fields[VF_USER]);
}

static void searched(const struct ldap_reply *r, void *ctx)
{
	struct vcard_search_job *j = ctx;
	struct ldap_store *ls = (struct ldap_store *)j->base.st;
	const char *const *attrs = ls->search_attrs;
	const char *host = j->base.host;
	if (r->res != LDAPC_OK) {
		enum storage_result res = r->res == LDAPC_TEMPFAIL ? STORAGE_TEMPFAIL : STORAGE_ERROR;
		log_warning("vjud %s: the directory search failed: %s", host,
		            r->error != NULL ? r->error : ldap_client_result_str(r->res));
		storage_req_release(&j->base, res);
		return;
	}
	if (r->truncated)
		log_debug("vjud %s: the search stopped at a size limit after %zu entries", host, r->nentries);
	struct found *found = xcalloc(r->nentries > 0 ? r->nentries : 1, sizeof(*found));
	size_t n = 0;
	for (size_t i = 0; i < r->nentries; i++) {
		char *raw = first_text(&r->entries[i], attrs[VF_USER]);
		char *user = raw != NULL ? jid_nodeprep(raw) : NULL;
		if (user == NULL) {
			log_debug("vjud %s: %s left out: its %s is not a valid user name", host,
			          r->entries[i].dn, attrs[VF_USER]);
			free(raw);
			continue;
		}
		free(raw);
		found[n].fields[VF_USER] = user;
		for (int f = VF_USER + 1; f < VF_COUNT; f++)
			found[n].fields[f] = first_text(&r->entries[i], attrs[f]);
		n++;
	}
	qsort(found, n, sizeof(*found), found_cmp);
	j->entries = pool_alloc(j->base.pool, (n > 0 ? n : 1) * sizeof(*j->entries));
	size_t count = 0;
	bool more = r->truncated;
	for (size_t i = 0; i < n; i++) {
		if (count > 0 && strcmp(j->entries[count - 1].fields[VF_USER], found[i].fields[VF_USER]) == 0)
			continue; /* one answer per user name */
		if (j->limit > 0 && count >= j->limit) {
			more = true;
			break;
		}
		for (int f = 0; f < VF_COUNT; f++)
			j->entries[count].fields[f] = pool_strdup(
			        j->base.pool, found[i].fields[f] != NULL ? found[i].fields[f] : "");
		count++;
	}
	j->nentries = count;
	j->more = more;
	for (size_t i = 0; i < n; i++)
		for (int f = 0; f < VF_COUNT; f++)
			free(found[i].fields[f]);
	free(found);
	storage_req_release(&j->base, STORAGE_OK);
}

static enum storage_result ldap_search(void *conn, struct vcard_search_job *j)
{
	struct ldap_store *ls = conn;
	if (ls->st.closing)
		return STORAGE_TEMPFAIL;
	const char *const *attrs = ls->search_attrs;
	char *filter =
	        ldap_store_search_filter(attrs, ldap_client_filter(ls->client), j->raw_terms, j->nterms);
	if (filter == NULL)
		return STORAGE_OK; /* a field that is not mapped: nobody */
	const char *want[VF_COUNT + 1];
	size_t k = 0;
	for (int f = 0; f < VF_COUNT; f++)
		if (attrs[f] != NULL)
			want[k++] = attrs[f];
	want[k] = NULL;
	log_debug("vjud %s: searching %s under %s", j->base.host, filter, ldap_client_base(ls->client));
	struct ldap_client_req *lreq = ldap_client_search_limit(ls->client, NULL, filter, want,
	                                                        j->limit > 0 ? j->limit + 1 : 0, searched, j);
	free(filter);
	if (lreq == NULL)
		return STORAGE_TEMPFAIL; /* the queue is full */
	storage_req_hold(&j->base);
	return STORAGE_OK;
}

/* A directory keeps no index of ours: nothing to do. */
static enum storage_result ldap_reindex(void *conn, struct vcard_reindex_job *j)
{
	(void)conn;
	j->count = 0;
	return STORAGE_OK;
}

const struct search_store_vfuncs ldap_search_vfuncs = {
	.search = ldap_search,
	.reindex = ldap_reindex,
};
