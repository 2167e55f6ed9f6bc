/*
 * parleyctl ldap-test: what a host does with its directory for one user,
 * without a password: the login search (through the auth chain's own LDAP
 * client, the search a login sends), the vCard lookup (mod_vcard's client
 * and mapping), and the shared roster groups held in memory.  The searches
 * run one after the other; the output is text, or one JSON object with
 * --json.  Binary values are shown by size and type, never as bytes.
 * Loop thread.
 *
 * The exit code is the worst seen: a temporary failure (a directory that
 * does not answer) wins over "no" (no entry, more than one), "no" over ok.
 */
#include "ctl-private.h"
#include "server/host.h"
#include "server/module.h"
#include "modules/shared_roster.h"
#include "modules/vcard.h"
#ifdef HAVE_BACKEND_LDAP
#include "lib/ldap-client.h"
#endif

#include <stdarg.h>
#include <string.h>

#ifdef HAVE_BACKEND_LDAP
/* What ldap-test keeps while its searches run. */
struct ltest {
	struct ldap_client_req *lreq;    /* the login search in flight */
	struct vcard_ldap_probe *vprobe; /* the vCard lookup in flight */
	int code;                        /* the exit code so far */
	char *message;                   /* why it is not 0 (the first reason) */
};

static struct ltest *ltest_of(struct ctl_call *call)
{
	return call->work;
}

static void ltest_free(void *work)
{
	struct ltest *t = work;
	if (t->lreq != NULL)
		ldap_client_cancel(t->lreq);
	if (t->vprobe != NULL)
		vcard_ldap_probe_cancel(t->vprobe);
	free(t->message);
	free(t);
}

static void ltest_vcard(struct ctl_call *call);

/* The exit code so far: a temporary failure wins over "no", "no" over ok. */
static void ltest_note(struct ctl_call *call, int code, const char *fmt, ...) ATTR_PRINTF(3, 4);
static void ltest_note(struct ctl_call *call, int code, const char *fmt, ...)
{
	if (code == CTL_OK || ltest_of(call)->code == CTL_TEMPFAIL ||
	    (ltest_of(call)->code == CTL_FAILED && code != CTL_TEMPFAIL))
		return;
	va_list ap;
	va_start(ap, fmt);
	char *m = xvasprintf(fmt, ap);
	va_end(ap);
	free(ltest_of(call)->message);
	ltest_of(call)->message = m;
	ltest_of(call)->code = code;
}

/* Whether v reads as text (UTF-8, no control characters but tab and line
 * ends) and is not an image. */
static bool ltest_is_text(const struct ldap_value *v)
{
	if (vcard_image_type(v->data, v->len) != NULL || !utf8_valid((const char *)v->data, v->len))
		return false;
	for (size_t i = 0; i < v->len; i++)
		if (v->data[i] < 0x20 && v->data[i] != '\t' && v->data[i] != '\n' && v->data[i] != '\r')
			return false;
	return true;
}

/* A binary value: its size and detected type, never its bytes. */
static void ltest_binary(struct ctl_call *call, const struct ldap_value *v)
{
	const char *type = vcard_image_type(v->data, v->len);
	if (call->json) {
		buf_printf(&call->body, "{\"binary\": true, \"size\": %zu, \"type\": ", v->len);
		if (type != NULL)
			ctl_json_str(&call->body, type);
		else
			buf_append_str(&call->body, "null");
		buf_append_str(&call->body, "}");
	} else {
		buf_printf(&call->body, "(binary, %zu bytes, %s)", v->len,
		           type != NULL ? type : "type not recognised");
	}
}

/* Text with its line ends and tabs written \n \r \t (one output line). */
static void ltest_text_line(struct buf *b, const struct ldap_value *v)
{
	for (size_t i = 0; i < v->len; i++) {
		unsigned char ch = v->data[i];
		if (ch == '\n')
			buf_append_str(b, "\\n");
		else if (ch == '\r')
			buf_append_str(b, "\\r");
		else if (ch == '\t')
			buf_append_str(b, "\\t");
		else
			buf_append(b, &v->data[i], 1);
	}
}

static void ltest_entries(struct ctl_call *call, const struct ldap_reply *r)
{
	struct buf *b = &call->body;
	if (call->json)
		buf_append_str(b, "[");
	else
		buf_printf(b, "  entries found: %zu\n", r->nentries);
	for (size_t i = 0; i < r->nentries; i++) {
		const struct ldap_entry *e = &r->entries[i];
		if (call->json) {
			buf_append_str(b, i > 0 ? ", {\"dn\": " : "{\"dn\": ");
			ctl_json_str(b, e->dn);
			buf_append_str(b, ", \"attributes\": {");
		} else {
			buf_printf(b, "    dn: %s\n", e->dn);
		}
		for (size_t a = 0; a < e->nattrs; a++) {
			const struct ldap_attr *at = &e->attrs[a];
			if (call->json) {
				buf_append_str(b, a > 0 ? ", " : "");
				ctl_json_str(b, at->name);
				buf_append_str(b, ": [");
			}
			for (size_t v = 0; v < at->count; v++) {
				const struct ldap_value *val = &at->values[v];
				if (call->json) {
					buf_append_str(b, v > 0 ? ", " : "");
					if (ltest_is_text(val))
						ctl_json_str(b, (const char *)val->data);
					else
						ltest_binary(call, val);
					continue;
				}
				buf_printf(b, "      %s: ", at->name);
				if (ltest_is_text(val))
					ltest_text_line(b, val);
				else
					ltest_binary(call, val);
				buf_append_str(b, "\n");
			}
			if (call->json)
				buf_append_str(b, "]");
		}
		if (call->json)
			buf_append_str(b, "}}");
	}
	if (call->json)
		buf_append_str(b, "]");
}

/* The servers a search went to, with the reason of each failure, joined
 * with "; " (for the error message). */
static char *ltest_servers_failed(const struct ldap_reply *r)
{
	struct buf b = { 0 };
	const char *t = r->trace != NULL ? r->trace : "";
	while (*t != '\0') {
		size_t n = strcspn(t, "\n");
		if (b.len > 0)
			buf_append_str(&b, "; ");
		buf_append(&b, t, n);
		t += n;
		if (*t == '\n')
			t++;
	}
	if (b.len == 0)
		buf_append_str(&b, r->error != NULL ? r->error : ldap_client_result_str(r->res));
	return buf_steal(&b);
}

/* One search: what was sent, where, what came back.  Text lines are
 * indented under the section's title; JSON is an object. */
static void ltest_search(struct ctl_call *call, const struct ldap_reply *r, const char *const *attrs)
{
	struct buf *b = &call->body;
	const char *t = r->trace != NULL ? r->trace : "";
	if (call->json) {
		buf_append_str(b, "{\"servers\": [");
		bool first = true;
		while (*t != '\0') {
			size_t n = strcspn(t, "\n");
			char *line = xstrndup(t, n);
			buf_append_str(b, first ? "" : ", ");
			ctl_json_str(b, line);
			free(line);
			first = false;
			t += n;
			if (*t == '\n')
				t++;
		}
		buf_append_str(b, "], \"answered_by\": ");
		if (r->server != NULL)
			ctl_json_str(b, r->server);
		else
			buf_append_str(b, "null");
		buf_append_str(b, ", \"base\": ");
		ctl_json_str(b, r->base != NULL ? r->base : "");
		buf_printf(b, ", \"scope\": \"subtree\", \"size_limit\": %d, \"filter\": ",
		           LDAP_CLIENT_FIND_SIZELIMIT);
		ctl_json_str(b, r->filter != NULL ? r->filter : "");
		buf_append_str(b, ", \"attributes\": [");
		for (size_t i = 0; attrs != NULL && attrs[i] != NULL; i++) {
			buf_append_str(b, i > 0 ? ", " : "");
			ctl_json_str(b, attrs[i]);
		}
		buf_append_str(b, "], \"result\": ");
		ctl_json_str(b, ldap_client_result_str(r->res));
		buf_append_str(b, ", \"error\": ");
		if (r->error != NULL)
			ctl_json_str(b, r->error);
		else
			buf_append_str(b, "null");
		buf_append_str(b, ", \"entries\": ");
		ltest_entries(call, r);
		buf_append_str(b, "}");
		return;
	}
	buf_append_str(b, "  servers:\n");
	while (*t != '\0') {
		size_t n = strcspn(t, "\n");
		buf_printf(b, "    %.*s\n", (int)n, t);
		t += n;
		if (*t == '\n')
			t++;
	}
	buf_printf(b, "  answered by: %s\n", r->server != NULL ? r->server : "no server");
	buf_printf(b, "  base: %s\n", r->base != NULL ? r->base : "");
	buf_printf(b, "  scope: subtree (size limit %d: a second entry makes the name ambiguous)\n",
	           LDAP_CLIENT_FIND_SIZELIMIT);
	buf_printf(b, "  filter: %s\n", r->filter != NULL ? r->filter : "");
	buf_append_str(b, "  attributes:");
	if (attrs == NULL || attrs[0] == NULL)
		buf_append_str(b, " 1.1 (none: the DN only)");
	for (size_t i = 0; attrs != NULL && attrs[i] != NULL; i++)
		buf_printf(b, " %s", attrs[i]);
	buf_append_str(b, "\n");
	buf_printf(b, "  result: %s%s%s\n", ldap_client_result_str(r->res), r->error != NULL ? ": " : "",
	           r->error != NULL ? r->error : "");
	if (r->res == LDAPC_OK || r->res == LDAPC_NO_ENTRY || r->res == LDAPC_AMBIGUOUS)
		ltest_entries(call, r);
}

/* The vCard as XML, its PHOTO/BINVAL replaced by its size. */
static void ltest_vcard_xml(struct buf *b, const struct xml_node *vcard)
{
	struct xml_node *copy = xml_copy(vcard);
	for (struct xml_node *photo = xml_child(copy, "PHOTO", NULL); photo != NULL;
	     photo = xml_next(photo, "PHOTO", NULL)) {
		struct xml_node *bin = xml_child(photo, "BINVAL", NULL);
		if (bin == NULL)
			continue;
		const char *text = xml_text(bin);
		unsigned char *data = NULL;
		size_t len = 0;
		char *summary;
		if (base64_decode(text, strlen(text), &data, &len) == 0)
			summary = xasprintf("[%zu bytes, not shown]", len);
		else
			summary = xasprintf("[%zu characters of base64, not shown]", strlen(text));
		free(data);
		xml_remove(bin);
		struct xml_node *nb = xml_add_child(photo, "BINVAL", NULL);
		xml_add_text(nb, summary, strlen(summary));
		free(summary);
	}
	xml_serialize(b, copy, NULL);
	xml_unref(&copy);
}

static void ltest_groups(struct ctl_call *call)
{
	struct buf *b = &call->body;
	char *jid = xasprintf("%s@%s", call->user, call->host->name);
	struct srg_user_groups g;
	if (srg_groups_of(call->host, jid, &g) < 0) {
		if (call->json)
			buf_append_str(b, ", \"shared_roster\": null");
		else
			buf_printf(b, "shared roster groups: the shared_roster module is not enabled on %s\n",
			           call->host->name);
		free(jid);
		return;
	}
	char *base = NULL, *filter = NULL;
	bool ldap = srg_ldap_group_search(call->host, &base, &filter) == 0;
	char when[XEP82_STAMP_LEN] = "";
	if (g.loaded)
		xep82_stamp(when, (int64_t)g.loaded_at);
	double ago = g.loaded ? ev_time() - g.loaded_at : 0;
	if (call->json) {
		buf_append_str(b, ", \"shared_roster\": {\"source\": ");
		ctl_json_str(b, g.source);
		if (ldap) {
			buf_append_str(b, ", \"base\": ");
			ctl_json_str(b, base);
			buf_append_str(b, ", \"scope\": \"subtree\", \"filter\": ");
			ctl_json_str(b, filter);
		}
		buf_append_str(b, ", \"loaded_at\": ");
		if (g.loaded)
			ctl_json_str(b, when);
		else
			buf_append_str(b, "null");
		buf_printf(b, ", \"last_load_failed\": %s, \"groups_held\": %zu, \"groups\": [",
		           g.load_failing ? "true" : "false", g.total);
		for (size_t i = 0; i < g.count; i++) {
			const struct srg_user_group *u = &g.groups[i];
			buf_append_str(b, i > 0 ? ", {\"name\": " : "{\"name\": ");
			ctl_json_str(b, u->name);
			buf_append_str(b, ", \"label\": ");
			ctl_json_str(b, u->label[0] != '\0' ? u->label : u->name);
			buf_append_str(b, ", \"description\": ");
			ctl_json_str(b, u->description);
			buf_printf(b, ", \"members\": %zu, \"all\": %s, \"online\": %s}", u->members,
			           u->all ? "true" : "false", u->online ? "true" : "false");
		}
		buf_append_str(b, "]}");
	} else {
		if (ldap)
			buf_printf(b,
			           "shared roster groups (source ldap, held in memory):\n"
			           "  groups searched: base %s, scope subtree, filter %s\n",
			           base, filter);
		else
			buf_printf(b,
			           "shared roster groups (source %s, held in memory as loaded from the "
			           "store):\n",
			           g.source);
		if (g.loaded)
			buf_printf(b, "  last read: %s (%.0f s ago)%s\n", when, ago,
			           g.load_failing ? "; the reads since have failed (see the log)" : "");
		else
			buf_printf(b, "  last read: never%s\n",
			           g.load_failing ? " (the reads have failed: see the log)"
			                          : " (the first read is under way)");
		buf_printf(b, "  %s is a member of %zu of the %zu groups held\n", jid, g.count, g.total);
		for (size_t i = 0; i < g.count; i++) {
			const struct srg_user_group *u = &g.groups[i];
			buf_printf(b, "    %s: label \"%s\", %zu members%s%s", u->name,
			           u->label[0] != '\0' ? u->label : u->name, u->members,
			           u->all ? " and @all@" : "", u->online ? " and @online@" : "");
			if (u->description[0] != '\0')
				buf_printf(b, ", description \"%s\"", u->description);
			buf_append_str(b, "\n");
		}
	}
	free(base);
	free(filter);
	srg_user_groups_clear(&g);
	free(jid);
}

static void ltest_finish(struct ctl_call *call)
{
	ltest_groups(call);
	if (call->json)
		buf_append_str(&call->body, "}\n");
	if (ltest_of(call)->code != CTL_OK)
		ctl_call_finish(call, ltest_of(call)->code, "%s", ltest_of(call)->message);
	else
		ctl_call_finish(call, CTL_OK, NULL);
}

static void ltest_vcard_done(const struct ldap_reply *r, const char *const *attrs,
                             const struct xml_node *vcard, void *ctx)
{
	struct ctl_call *call = ctx;
	ltest_of(call)->vprobe = NULL;
	struct buf *b = &call->body;
	if (call->json) {
		buf_append_str(b, ", \"vcard\": {\"source\": \"ldap\", \"search\": ");
		ltest_search(call, r, attrs);
		buf_append_str(b, ", \"vcard\": ");
		if (vcard != NULL) {
			struct buf x = { 0 };
			ltest_vcard_xml(&x, vcard);
			ctl_json_str(b, x.data);
			buf_free(&x);
		} else {
			buf_append_str(b, "null");
		}
		buf_append_str(b, "}");
	} else {
		buf_append_str(b, "vCard lookup (module vcard, source ldap; the cache is not used):\n");
		ltest_search(call, r, attrs);
		if (vcard != NULL) {
			buf_append_str(b, "  vCard answered: ");
			ltest_vcard_xml(b, vcard);
			buf_append_str(b, "\n");
		} else {
			buf_append_str(b, "  vCard answered: none; a get is answered with an error\n");
		}
	}
	if (r->res == LDAPC_TEMPFAIL) {
		char *why = ltest_servers_failed(r);
		ltest_note(call, CTL_TEMPFAIL, "the directory of %s is unavailable: %s", call->host->name,
		           why);
		free(why);
	} else if (r->res != LDAPC_OK && r->res != LDAPC_NO_ENTRY &&
	           auth_ldap_client(call->host->auth) == NULL) {
		ltest_note(call, CTL_FAILED, "%s@%s: vCard lookup: %s", call->user, call->host->name,
		           r->error != NULL ? r->error : ldap_client_result_str(r->res));
	} else if (r->res == LDAPC_NO_ENTRY && auth_ldap_client(call->host->auth) == NULL) {
		ltest_note(call, CTL_FAILED, "%s@%s: no entry in the directory", call->user,
		           call->host->name);
	}
	ltest_finish(call);
}

static void ltest_vcard(struct ctl_call *call)
{
	struct buf *b = &call->body;
	if (!vcard_ldap_enabled(call->host)) {
		bool on = module_state(call->host, "vcard") != NULL;
		if (call->json)
			buf_printf(b, ", \"vcard\": %s", on ? "{\"source\": \"storage\"}" : "null");
		else if (on)
			buf_append_str(b, "vCard lookup: the vcard module keeps vCards in the store "
			                  "(source storage), not the directory\n");
		else
			buf_printf(b, "vCard lookup: the vcard module is not enabled on %s\n",
			           call->host->name);
		ltest_finish(call);
		return;
	}
	const char *err = NULL;
	ltest_of(call)->vprobe = vcard_ldap_probe(call->host, call->user, ltest_vcard_done, call, &err);
	if (ltest_of(call)->vprobe == NULL) {
		if (call->json) {
			buf_append_str(b, ", \"vcard\": {\"source\": \"ldap\", \"error\": ");
			ctl_json_str(b, err);
			buf_append_str(b, "}");
		} else {
			buf_printf(b, "vCard lookup: not sent: %s\n", err);
		}
		ltest_note(call, CTL_TEMPFAIL, "%s: vCard lookup: %s", call->host->name, err);
		ltest_finish(call);
	}
}

static void ltest_login_done(const struct ldap_reply *r, void *ctx)
{
	struct ctl_call *call = ctx;
	ltest_of(call)->lreq = NULL;
	struct buf *b = &call->body;
	const char *verdict;
	switch (r->res) {
	case LDAPC_OK:
		verdict = "the name resolves to exactly one entry: a login checks the password "
		          "against it";
		break;
	case LDAPC_NO_ENTRY: verdict = "no entry: a login is refused (not-authorized)"; break;
	case LDAPC_AMBIGUOUS: verdict = "more than one entry: a login is refused (logged as an error)"; break;
	case LDAPC_TEMPFAIL:
		verdict = "the directory did not answer: a login gets a temporary failure";
		break;
	default: verdict = "the search failed: a login is refused with a server error"; break;
	}
	if (call->json) {
		buf_append_str(b, ", \"login\": {\"search\": ");
		ltest_search(call, r, NULL);
		buf_append_str(b, ", \"resolves\": ");
		ctl_json_str(b, r->res == LDAPC_OK          ? "one entry"
		                : r->res == LDAPC_NO_ENTRY  ? "no entry"
		                : r->res == LDAPC_AMBIGUOUS ? "more than one entry"
		                                            : "unknown");
		buf_append_str(b, ", \"dn\": ");
		if (r->res == LDAPC_OK && r->dn != NULL)
			ctl_json_str(b, r->dn);
		else
			buf_append_str(b, "null");
		buf_append_str(b, ", \"verdict\": ");
		ctl_json_str(b, verdict);
		buf_append_str(b, "}");
	} else {
		buf_append_str(b, "login search (auth method ldap, as a login sends it; no bind):\n");
		ltest_search(call, r, NULL);
		buf_printf(b, "  login: %s\n", verdict);
	}
	switch (r->res) {
	case LDAPC_OK: break;
	case LDAPC_NO_ENTRY:
		ltest_note(call, CTL_FAILED, "%s@%s: no entry in the directory", call->user,
		           call->host->name);
		break;
	case LDAPC_AMBIGUOUS:
		ltest_note(call, CTL_FAILED, "%s@%s: more than one entry in the directory", call->user,
		           call->host->name);
		break;
	case LDAPC_TEMPFAIL: {
		char *why = ltest_servers_failed(r);
		ltest_note(call, CTL_TEMPFAIL, "the directory of %s is unavailable: %s", call->host->name,
		           why);
		free(why);
		break;
	}
	default:
		ltest_note(call, CTL_FAILED, "%s@%s: the search failed: %s", call->user, call->host->name,
		           r->error != NULL ? r->error : ldap_client_result_str(r->res));
		break;
	}
	ltest_vcard(call);
}
#endif

void cmd_ldap_test(struct ctl_call *call)
{
#ifdef HAVE_BACKEND_LDAP
	if (!ctl_call_user_at_host(call, 1))
		return;
	struct host *h = call->host;
	struct ldap_client *login = auth_ldap_client(h->auth);
	char *gbase = NULL, *gfilter = NULL;
	bool srg = srg_ldap_group_search(h, &gbase, &gfilter) == 0;
	free(gbase);
	free(gfilter);
	if (login == NULL && !vcard_ldap_enabled(h) && !srg) {
		ctl_call_finish(call, CTL_USAGE,
		                "host %s uses no LDAP directory (auth.methods has no ldap, "
		                "and neither vcard nor shared_roster has source: ldap)",
		                h->name);
		return;
	}
	call->work = xcalloc(1, sizeof(struct ltest));
	call->work_free = ltest_free;
	struct buf *b = &call->body;
	if (call->json) {
		buf_append_str(b, "{\"user\": ");
		ctl_json_str(b, call->user);
		buf_append_str(b, ", \"host\": ");
		ctl_json_str(b, h->name);
	} else {
		buf_printf(b, "ldap-test %s@%s\n", call->user, h->name);
	}
	if (login == NULL) {
		if (call->json) {
			buf_append_str(b, ", \"login\": null");
		} else {
			buf_append_str(b, "login search: none (auth.methods:");
			for (size_t i = 0; i < auth_backend_count(h->auth); i++)
				buf_printf(b, " %s", auth_backend_name(h->auth, i));
			buf_append_str(b, "; logins do not use the directory)\n");
		}
		ltest_vcard(call);
		return;
	}
	ltest_of(call)->lreq = ldap_client_find_traced(login, call->user, NULL, ltest_login_done, call);
	if (ltest_of(call)->lreq == NULL) {
		if (call->json)
			buf_append_str(b, ", \"login\": {\"error\": \"the LDAP request queue is full\"}");
		else
			buf_append_str(b, "login search: not sent: the LDAP request queue is full\n");
		ltest_note(call, CTL_TEMPFAIL, "%s: the LDAP request queue is full", h->name);
		ltest_vcard(call);
	}
#else
	ctl_call_finish(call, CTL_USAGE, "parleyd was built without LDAP support");
#endif
}
