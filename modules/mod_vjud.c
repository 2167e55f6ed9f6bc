/*
 * mod_vjud: the user directory (XEP-0055, jabber:iq:search) on the host's
 * own JID.  A get answers the search form: the legacy fields (first, last,
 * nick, email) and a data form (XEP-0004) with more (user, fn, locality,
 * organisation); a set searches the host's vCards with either and answers
 * in the same style.  Clients find it by service discovery: the server's
 * disco#info shows the feature jabber:iq:search and the identity
 * directory/user.  Loop thread.
 *
 * Invariants:
 * - Only users of this host search (anyone else: <forbidden/>).
 * - A value ending in '*' matches the field's beginning, any other value
 *   the whole field; case does not matter (vcard_fold); the fields given
 *   must all match.  A search with no field filled is <not-acceptable/>.
 * - At most max_results users are answered (the form result's title says
 *   when more matched); with search_all false only users whose vCard holds
 *   <CLASS><PUBLIC/></CLASS> are found.
 * - The search runs in the host's store of the search area (host_store):
 *   where the host's vCards come from (source auto): the storage's vCard
 *   index, or the LDAP store the vcard module opens when it reads from the
 *   directory (storage/ldap-store.h).  An explicit source that does not
 *   match the vcard module, and search_all false or an auth.ldap filter
 *   with %u on an LDAP host, are refused by the configuration check
 *   (vjud_check).  Every call runs through a struct
 *   vjud_op on the module's pending list (pending.h); stop answers their
 *   requests and cancels the calls; a failure is answered through errmap.h
 *   (a temporary one is <resource-constraint/>, type wait), never "no
 *   match".
 * - At start the store indexes what it must (the SQL store: the vCards
 *   stored before the index existed; one storage call, the count logged).
 */
#include "adhoc.h"
#include "builtin.h"
#include "errmap.h"
#include "pending.h"
#include "vcard.h"
#include "lib/ldap-client.h"
#include "server/host.h"
#include "server/hooks.h"
#include "lib/log.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define NS_SEARCH "jabber:iq:search"

struct vjud_settings {
	unsigned max_results;
	bool search_all;
	int source;
};

enum { VJUD_SOURCE_AUTO, VJUD_SOURCE_SQL, VJUD_SOURCE_LDAP };
static const char *const source_names[] = { "auto", "sql", "ldap", NULL };

static const struct opt_def vjud_options[] = {
	{ "max_results", OPT_UINT, offsetof(struct vjud_settings, max_results), "30", NULL, 1, 1000,
	  "most users one search answers" },
	{ "search_all", OPT_BOOL, offsetof(struct vjud_settings, search_all), "true", NULL, 0, 0,
	  "find every user with a vCard; false: only users whose vCard has <CLASS><PUBLIC/></CLASS>" },
	{ "source", OPT_ENUM, offsetof(struct vjud_settings, source), "auto", source_names, 0, 0,
	  "where the directory is searched: auto (where the vcard module reads vCards), sql (the "
	  "vCards of the host's storage) or ldap (the auth.ldap directory, as vcard source ldap)" },
	OPT_END
};

struct vjud_state;

struct vjud_op {
	struct pending_op p;   /* first: the state's list; p.req the request, p.call
	                                 the search */
	struct vjud_state *vs; /* valid while p is listed */
	bool form;             /* answer with a data form */
};

struct vjud_state {
	struct host *host;
	const struct vjud_settings *set;
	struct storage_req *reindex;
	struct pending_ops ops;
};

/* ---- the fields ----------------------------------------------------------------- */

/* One searchable field: its legacy element (NULL: form only), its form
 * variable and label. */
static const struct {
	enum vcard_field field;
	const char *legacy;
	const char *var;
	const char *label;
} fields[] = {
	{ VF_USER, NULL, "user", N_("User name") },       { VF_FN, NULL, "fn", N_("Full name") },
	{ VF_FIRST, "first", "first", N_("Given name") }, { VF_LAST, "last", "last", N_("Family name") },
	{ VF_NICK, "nick", "nick", N_("Nickname") },      { VF_EMAIL, "email", "email", N_("Email") },
	{ VF_LOCALITY, NULL, "locality", N_("City") },    { VF_ORG, NULL, "orgname", N_("Organisation") },
};

static void add_text(struct xml_node *parent, const char *name, const char *ns, const char *text)
{
	struct xml_node *el = xml_add_child(parent, name, ns);
	if (text != NULL && *text != '\0')
		xml_add_text(el, text, strlen(text));
}

static struct xml_node *add_field(struct xml_node *x, const char *type, const char *var, const char *label)
{
	struct xml_node *f = xml_add_child(x, "field", NS_DATA_FORMS);
	if (type != NULL)
		xml_set_attr(f, "type", type);
	xml_set_attr(f, "var", var);
	if (label != NULL)
		xml_set_attr(f, "label", label);
	return f;
}

/* The language of a request's texts: the <query/>'s, else the <iq/>'s. */
static const char *request_lang(const struct iq_request *req)
{
	return i18n_stanza_lang(xml_attr(req->payload, "xml:lang"), xml_attr(req->iq, "xml:lang"));
}

static void search_form(struct iq_request *req, const struct vjud_state *vs)
{
	struct xml_node *q = iq_payload_new("query", NS_SEARCH);
	char *text = xasprintf("Fill in one or more fields to search the users of %s.  A value "
	                       "ending in * matches the beginning of the field.",
	                       vs->host->name);
	add_text(q, "instructions", NS_SEARCH, text);
	for (size_t i = 0; i < ARRAY_SIZE(fields); i++)
		if (fields[i].legacy != NULL)
			add_text(q, fields[i].legacy, NS_SEARCH, NULL);
	struct xml_node *x = xml_add_child(q, "x", NS_DATA_FORMS);
	xml_set_attr(x, "type", "form");
	add_text(x, "title", NS_DATA_FORMS, N_("User directory"));
	add_text(x, "instructions", NS_DATA_FORMS, text);
	free(text);
	struct xml_node *ft = add_field(x, "hidden", "FORM_TYPE", NULL);
	add_text(ft, "value", NS_DATA_FORMS, NS_SEARCH);
	for (size_t i = 0; i < ARRAY_SIZE(fields); i++)
		add_field(x, "text-single", fields[i].var, fields[i].label);
	xml_set_attr(x, "xml:lang", form_translate(x, request_lang(req)));
	iq_result(req, q);
	xml_unref(&q);
}

/* ---- answers ----------------------------------------------------------------------- */

static void op_free(struct pending_op *p)
{
	pending_untrack(p);
	free(p);
}

static void searched(enum storage_result res, const struct vcard_entry *entries, size_t count, bool more,
                     void *ctx)
{
	struct vjud_op *op = ctx;
	if (!pending_resume(&op->p))
		return;
	struct vjud_state *vs = op->vs;
	struct iq_request *req = op->p.req;
	if (res != STORAGE_OK) {
		errmap_iq_storage(req, res, "the directory");
		op_free(&op->p);
		return;
	}
	const char *host = vs->host->name;
	struct xml_node *q = iq_payload_new("query", NS_SEARCH);
	if (!op->form) {
		for (size_t i = 0; i < count; i++) {
			struct xml_node *it = xml_add_child(q, "item", NS_SEARCH);
			char *jid = xasprintf("%s@%s", entries[i].fields[VF_USER], host);
			xml_set_attr(it, "jid", jid);
			free(jid);
			for (size_t k = 0; k < ARRAY_SIZE(fields); k++)
				if (fields[k].legacy != NULL)
					add_text(it, fields[k].legacy, NS_SEARCH,
					         entries[i].fields[fields[k].field]);
		}
	} else {
		struct xml_node *x = xml_add_child(q, "x", NS_DATA_FORMS);
		xml_set_attr(x, "type", "result");
		if (more) {
			char *title =
			        xasprintf("The first %zu matches (more exist: narrow the search)", count);
			add_text(x, "title", NS_DATA_FORMS, title);
			free(title);
		}
		struct xml_node *ft = add_field(x, "hidden", "FORM_TYPE", NULL);
		add_text(ft, "value", NS_DATA_FORMS, NS_SEARCH);
		struct xml_node *rep = xml_add_child(x, "reported", NS_DATA_FORMS);
		add_field(rep, "jid-single", "jid", "JID");
		for (size_t k = 1; k < ARRAY_SIZE(fields); k++)
			add_field(rep, "text-single", fields[k].var, fields[k].label);
		for (size_t i = 0; i < count; i++) {
			struct xml_node *it = xml_add_child(x, "item", NS_DATA_FORMS);
			char *jid = xasprintf("%s@%s", entries[i].fields[VF_USER], host);
			add_text(add_field(it, NULL, "jid", NULL), "value", NS_DATA_FORMS, jid);
			free(jid);
			for (size_t k = 1; k < ARRAY_SIZE(fields); k++)
				add_text(add_field(it, NULL, fields[k].var, NULL), "value", NS_DATA_FORMS,
				         entries[i].fields[fields[k].field]);
		}
		xml_set_attr(x, "xml:lang", form_translate(x, request_lang(req)));
	}
	if (more)
		log_debug("vjud %s: a search by %s@%s matched more than %u users", host, req->from.node,
		          req->from.domain, vs->set->max_results);
	iq_result(req, q);
	xml_unref(&q);
	op_free(&op->p);
}

/* Add a term for value (may be NULL or empty: nothing). */
static void add_term(struct vcard_term *terms, size_t *n, enum vcard_field f, const char *value)
{
	if (value == NULL)
		return;
	size_t len = strlen(value);
	while (len > 0 && (value[len - 1] == ' ' || value[len - 1] == '\t'))
		len--;
	while (len > 0 && (*value == ' ' || *value == '\t')) {
		value++;
		len--;
	}
	if (len == 0 || *n >= ARRAY_SIZE(fields))
		return;
	bool prefix = value[len - 1] == '*';
	terms[*n].field = f;
	terms[*n].value = xstrndup(value, prefix ? len - 1 : len);
	terms[*n].prefix = prefix;
	(*n)++;
}

static void vjud_iq(struct iq_request *req, void *ctx)
{
	struct vjud_state *vs = ctx;
	struct host *h = vs->host;
	if (!xml_is(req->payload, "query", NS_SEARCH)) {
		iq_error(req, SE_BAD_REQUEST, NULL);
		return;
	}
	if (req->from.node == NULL || strcmp(req->from.domain, h->name) != 0) {
		iq_error(req, SE_FORBIDDEN, "the directory answers users of this server only");
		return;
	}
	if (strcmp(req->type, "get") == 0) {
		search_form(req, vs);
		return;
	}
	struct vcard_term terms[ARRAY_SIZE(fields)];
	size_t n = 0;
	bool form = false;
	const struct xml_node *x = xml_child(req->payload, "x", NS_DATA_FORMS);
	if (x != NULL) {
		const char *type = xml_attr(x, "type");
		if (type == NULL || strcmp(type, "submit") != 0) {
			iq_error(req, SE_BAD_REQUEST, "the form must be of type submit");
			return;
		}
		form = true;
		for (const struct xml_node *f = xml_child(x, "field", NS_DATA_FORMS); f != NULL;
		     f = xml_next(f, "field", NS_DATA_FORMS)) {
			const char *var = xml_attr(f, "var");
			for (size_t k = 0; var != NULL && k < ARRAY_SIZE(fields); k++) {
				if (strcmp(var, fields[k].var) == 0) {
					bool dup = false;
					for (size_t j = 0; j < n; j++)
						dup |= terms[j].field == fields[k].field;
					if (!dup)
						add_term(terms, &n, fields[k].field,
						         xml_child_text(f, "value", NS_DATA_FORMS));
				}
			}
		}
	} else {
		for (size_t k = 0; k < ARRAY_SIZE(fields); k++)
			if (fields[k].legacy != NULL)
				add_term(terms, &n, fields[k].field,
				         xml_child_text(req->payload, fields[k].legacy, NS_SEARCH));
	}
	if (n == 0) {
		iq_error(req, SE_NOT_ACCEPTABLE, "fill in at least one field");
		return;
	}
	struct vjud_op *op = xcalloc(1, sizeof(*op));
	op->vs = vs;
	op->p.req = req;
	op->form = form;
	pending_track(&vs->ops, &op->p, op_free);
	pending_wait_storage(&op->p,
	                     storage_vcard_search(host_store(h, STORAGE_AREA_SEARCH), h->name, terms, n,
	                                          !vs->set->search_all, vs->set->max_results, searched, op));
	for (size_t i = 0; i < n; i++)
		free((char *)terms[i].value);
}

/* ---- module -------------------------------------------------------------------------- */

static enum hook_result vjud_disco(struct host *h, void *args, void *ctx)
{
	struct hook_disco *hd = args;
	if (hd->to->node != NULL || hd->node != NULL)
		return HOOK_CONTINUE;
	struct xml_node *id = xml_add_child(hd->query, "identity", NULL);
	xml_set_attr(id, "category", "directory");
	xml_set_attr(id, "type", "user");
	xml_set_attr(id, "name", "User directory");
	return HOOK_CONTINUE;
}

static void reindexed(enum storage_result res, uint64_t count, void *ctx)
{
	struct vjud_state *vs = ctx;
	vs->reindex = NULL;
	if (res != STORAGE_OK)
		log_warning("vjud %s: cannot index the vCards stored before the directory index "
		            "existed (%s); they are not found until their owners set them again or "
		            "parleyd starts again",
		            vs->host->name, storage_result_str(res));
	else if (count > 0)
		log_notice("vjud %s: %llu stored vCards indexed for the directory", vs->host->name,
		           (unsigned long long)count);
}

static const struct builtin_iq vjud_iqs[] = {
	{ IQ_SCOPE_SERVER, NS_SEARCH, IQ_PARALLEL, vjud_iq },
};

/* The source settings choose on hc (auto resolved). */
static int effective_source(const struct host_config *hc, const struct vjud_settings *set)
{
	if (set->source != VJUD_SOURCE_AUTO)
		return set->source;
	return vcard_config_ldap(hc) ? VJUD_SOURCE_LDAP : VJUD_SOURCE_SQL;
}

static int vjud_check(const struct host_config *hc, const void *settings, const struct cfg_node *opts,
                      const char *section, char **error_r)
{
	const struct vjud_settings *set = settings;
	bool vcard_ldap = vcard_config_ldap(hc);
	if (set->source == VJUD_SOURCE_LDAP && !vcard_ldap) {
		*error_r = cfg_key_error(opts, "source", section,
		                         "ldap searches the directory the vcard "
		                         "module reads, but this host's vCards are not read from LDAP "
		                         "(set modules.vcard.source: ldap, or use source: auto)");
		return -1;
	}
	if (set->source == VJUD_SOURCE_SQL && vcard_ldap) {
		*error_r = cfg_key_error(opts, "source", section,
		                         "this host's vCards come from LDAP "
		                         "(modules.vcard.source: ldap), so the storage holds none to "
		                         "search (use source: auto or ldap)");
		return -1;
	}
	if (effective_source(hc, set) != VJUD_SOURCE_LDAP)
		return 0;
#ifndef HAVE_BACKEND_LDAP
	*error_r = cfg_key_error(opts, "source", section, "parleyd was built without LDAP support");
	return -1;
#else
	if (!set->search_all) {
		*error_r = cfg_key_error(opts, "search_all", section,
		                         "false cannot be honoured when "
		                         "the directory is LDAP: the consent is a <CLASS><PUBLIC/></CLASS> "
		                         "users store in their vCard, and directory vCards are read-only "
		                         "(remove search_all, or narrow who is found with auth.ldap.filter)");
		return -1;
	}
	if (ldap_filter_uses_user(hc->auth.ldap.filter)) {
		*error_r = cfg_key_error(hc->auth.ldap.node, "filter", "auth.ldap",
		                         "%%u cannot be "
		                         "filled in by a directory search (%s uses this filter): write "
		                         "the filter without %%u",
		                         section);
		return -1;
	}
	return 0;
#endif
}

static int vjud_start(struct host *h, const void *settings, void **state_r, char **error_r)
{
	struct vjud_state *vs = xcalloc(1, sizeof(*vs));
	vs->host = h;
	vs->set = settings;
	struct storage *st = host_store(h, STORAGE_AREA_SEARCH);
	if (effective_source(h->cfg, vs->set) == VJUD_SOURCE_LDAP && st == h->storage) {
		*error_r = xstrdup("source ldap: the vcard module does not run on this host with "
		                   "source ldap");
		free(vs);
		return -1;
	}
	if (builtin_iq_register(h, vjud_iqs, ARRAY_SIZE(vjud_iqs), vs, error_r) < 0) {
		free(vs);
		return -1;
	}
	host_add_feature(h, NS_SEARCH);
	hook_add(h, HOOK_DISCO_INFO, 50, vjud_disco, vs);
	vs->reindex = storage_vcard_reindex(st, h->name, reindexed, vs);
	log_debug("vjud %s: searches go to %s", h->name, storage_describe(st));
	*state_r = vs;
	return 0;
}

static void vjud_stop(struct host *h, void *state)
{
	struct vjud_state *vs = state;
	builtin_iq_unregister(h, vjud_iqs, ARRAY_SIZE(vjud_iqs));
	host_remove_feature(h, NS_SEARCH);
	hook_remove(h, HOOK_DISCO_INFO, vjud_disco, vs);
	if (vs->reindex != NULL)
		storage_cancel(vs->reindex);
	pending_stop(&vs->ops);
	free(vs);
}

const struct module_def mod_vjud = {
	.name = "vjud",
	.description = "XEP-0055 user directory: search the host's users by their vCards",
	.options = vjud_options,
	.settings_size = sizeof(struct vjud_settings),
	.default_enabled = false,
	.start = vjud_start,
	.stop = vjud_stop,
	.check = vjud_check,
};
