/*
 * The LDAP source of the user directory (mod_vjud, source ldap): a search
 * is one subtree search under the host's auth.ldap base, on the worker
 * group of mod_vcard's LDAP client (modules/vcard.h), with the filter
 *   (&(UID=*)(auth.ldap.filter)(ATTR=value)(ATTR=prefix*)...)
 * where each field searched is the attribute mod_vcard maps it to (its
 * ldap_* options) and UID the first of auth.ldap.uids.  The directory
 * compares with the attributes' own matching rules, which for the usual
 * ones (cn, sn, givenName, displayName, mail, l, o, uid) ignore case.
 * Loop thread; the filter is built by a pure function.
 *
 * Invariants:
 * - every value from the searcher goes into the filter through
 *   ldap_filter_escape (RFC 4515); the only '*' that is not escaped is the
 *   one that makes a term a prefix;
 * - the server is asked for at most limit + 1 entries; when it stops
 *   early (this size limit or its own), what came is answered, with "more";
 * - an entry whose user name is missing or fails nodeprep is left out; the
 *   answer is sorted by user name, one entry per name;
 * - a search answers through its callback later, never inside the call,
 *   exactly once unless cancelled; an outage is STORAGE_TEMPFAIL.
 */
#include "vjud.h"
#include "vcard.h"
#include "auth/ldap-client.h"
#include "server/host.h"
#include "lib/jid.h"
#include "lib/log.h"
#include "server/server.h"

#include <ev.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- the filter ---------------------------------------------------------------- */

char *vjud_ldap_filter(const char *const attrs[VF_COUNT], const char *auth_filter,
                       const struct vcard_term *terms, size_t n)
{
	if (attrs[VF_USER] == NULL)
		return NULL;
	struct buf more = { 0 };
	for (size_t i = 0; i < n; i++) {
		const char *value = terms[i].value != NULL ? terms[i].value : "";
		if (terms[i].prefix && *value == '\0')
			continue;                  /* "*": anything, the field empty too */
		const char *attr = terms[i].field < VF_COUNT ? attrs[terms[i].field] : NULL;
		if (attr == NULL) {
			buf_free(&more);           /* an unmapped field is empty: no match */
			return NULL;
		}
		char *esc = ldap_filter_escape(value, strlen(value));
		buf_printf(&more, "(%s=%s%s)", attr, esc, terms[i].prefix ? "*" : "");
		free(esc);
	}
	const char *present[] = { attrs[VF_USER], NULL };
	char *filter = NULL, *err = NULL;
	if (ldap_listing_filter(present, auth_filter, more.data, &filter, &err) < 0)
		free(err);                     /* %u: refused by the configuration check */
	buf_free(&more);
	return filter;
}

/* ---- the search ---------------------------------------------------------------- */

struct vjud_ldap_req {
	struct host *host;
	storage_vcard_search_cb *cb;
	void *ctx;
	unsigned limit;
	const char *attrs[VF_COUNT];   /* mod_vcard's settings: valid while mod_vjud runs */
	struct ldap_client_req *lreq;
	ev_timer later;                /* answers that need no search */
	enum storage_result res;
};

static void search_free(struct vjud_ldap_req *s)
{
	ev_timer_stop(server.loop, &s->later);
	free(s);
}

static void search_later(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	struct vjud_ldap_req *s =
	        (struct vjud_ldap_req *)((char *)w - offsetof(struct vjud_ldap_req, later));
	storage_vcard_search_cb *cb = s->cb;
	void *ctx = s->ctx;
	enum storage_result res = s->res;
	search_free(s);
	cb(res, NULL, 0, false, ctx);
}

/* The first value of attribute name that is text (UTF-8, no control
 * characters but white space), malloc'd, or NULL. */
static char *first_text(const struct ldap_entry *e, const char *name)
{
	if (name == NULL)
		return NULL;
	for (size_t i = 0; i < e->nattrs; i++) {
		const struct ldap_attr *a = &e->attrs[i];
		if (strcasecmp(a->name, name) != 0)
			continue;
		for (size_t v = 0; v < a->count; v++) {
			const struct ldap_value *val = &a->values[v];
			bool ok = val->len > 0 && utf8_valid((const char *)val->data, val->len);
			for (size_t k = 0; ok && k < val->len; k++)
				ok = val->data[k] >= 0x20 || val->data[k] == '\t' || val->data[k] == '\n' ||
				     val->data[k] == '\r';
			if (ok)
				return xstrndup((const char *)val->data, val->len);
		}
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
	struct vjud_ldap_req *s = ctx;
	s->lreq = NULL;
	storage_vcard_search_cb *cb = s->cb;
	void *cb_ctx = s->ctx;
	const char *host = s->host->name;
	if (r->res != LDAPC_OK) {
		enum storage_result res = r->res == LDAPC_TEMPFAIL ? STORAGE_TEMPFAIL : STORAGE_ERROR;
		log_warning("vjud %s: the directory search failed: %s", host,
		            r->error != NULL ? r->error : ldap_client_result_str(r->res));
		search_free(s);
		cb(res, NULL, 0, false, cb_ctx);
		return;
	}
	if (r->truncated)
		log_debug("vjud %s: the search stopped at a size limit after %zu entries", host,
		          r->nentries);
	struct found *found = xcalloc(r->nentries > 0 ? r->nentries : 1, sizeof(*found));
	size_t n = 0;
	for (size_t i = 0; i < r->nentries; i++) {
		char *raw = first_text(&r->entries[i], s->attrs[VF_USER]);
		char *user = raw != NULL ? jid_nodeprep(raw) : NULL;
		if (user == NULL) {
			log_debug("vjud %s: %s left out: its %s is not a valid user name", host,
			          r->entries[i].dn, s->attrs[VF_USER]);
			free(raw);
			continue;
		}
		free(raw);
		found[n].fields[VF_USER] = user;
		for (int f = VF_USER + 1; f < VF_COUNT; f++)
			found[n].fields[f] = first_text(&r->entries[i], s->attrs[f]);
		n++;
	}
	qsort(found, n, sizeof(*found), found_cmp);
	struct vcard_entry *entries = xcalloc(n > 0 ? n : 1, sizeof(*entries));
	size_t count = 0;
	bool more = r->truncated;
	for (size_t i = 0; i < n; i++) {
		if (count > 0 && strcmp(entries[count - 1].fields[VF_USER], found[i].fields[VF_USER]) == 0)
			continue;                  /* one answer per user name */
		if (s->limit > 0 && count >= s->limit) {
			more = true;
			break;
		}
		for (int f = 0; f < VF_COUNT; f++)
			entries[count].fields[f] = found[i].fields[f] != NULL ? found[i].fields[f] : "";
		count++;
	}
	search_free(s);
	cb(STORAGE_OK, entries, count, more, cb_ctx);
	for (size_t i = 0; i < n; i++)
		for (int f = 0; f < VF_COUNT; f++)
			free(found[i].fields[f]);
	free(found);
	free(entries);
}

static void *vl_search(struct host *h, const struct vcard_term *terms, size_t n,
                               bool listed_only, unsigned limit, storage_vcard_search_cb *cb,
                               void *ctx)
{
	(void)listed_only;                 /* refused at the configuration check */
	struct vjud_ldap_req *s = xcalloc(1, sizeof(*s));
	s->host = h;
	s->cb = cb;
	s->ctx = ctx;
	s->limit = limit;
	ev_timer_init(&s->later, search_later, 0, 0);
	struct ldap_client *c = vcard_ldap_directory(h, s->attrs);
	char *filter = c != NULL ? vjud_ldap_filter(s->attrs, ldap_client_filter(c), terms, n) : NULL;
	if (c == NULL) {
		log_error("vjud %s: the vcard module does not read from LDAP", h->name);
		s->res = STORAGE_ERROR;
	} else if (filter == NULL) {
		s->res = STORAGE_OK;           /* a field that is not mapped: nobody */
	} else {
		const char *want[VF_COUNT + 1];
		size_t k = 0;
		for (int f = 0; f < VF_COUNT; f++)
			if (s->attrs[f] != NULL)
				want[k++] = s->attrs[f];
		want[k] = NULL;
		log_debug("vjud %s: searching %s under %s", h->name, filter, ldap_client_base(c));
		s->lreq = ldap_client_search_limit(c, NULL, filter, want, limit > 0 ? limit + 1 : 0,
		                                   searched, s);
		free(filter);
		if (s->lreq != NULL)
			return s;
		s->res = STORAGE_TEMPFAIL;     /* the queue is full */
	}
	ev_timer_start(server.loop, &s->later);
	return s;
}

static void vl_cancel(void *handle)
{
	struct vjud_ldap_req *s = handle;
	ldap_client_cancel(s->lreq);
	search_free(s);
}

const struct vjud_source_vfuncs vjud_source_ldap = {
	.name = "ldap",
	.search = vl_search,
	.cancel = vl_cancel,
};
