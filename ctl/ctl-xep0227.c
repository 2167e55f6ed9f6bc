/*
 * XEP-0227 export and import, and rename-domain, for parleyctl with
 * parleyd stopped.  Loop thread (parleyctl's own loop, which runs nothing
 * else): every storage call is made and then waited for by running the
 * loop until its callback has run (struct wait), so the code reads in
 * order; the storage calls still run on the store's workers.
 *
 * The document (urn:xmpp:pie:0): <server-data><host jid='H'><user
 * name='U' [password='...']>, in the user: <scram-credentials
 * xmlns='urn:xmpp:pie:0#scram'/> per SCRAM hash kept, the roster (a
 * jabber:iq:roster <query/>), the vCard, <offline-messages/> with the
 * stored <message/>s, private XML (a jabber:iq:private <query/>), privacy
 * lists (a jabber:iq:privacy <query/> with <default/> and <list/>s), the
 * block list (<blocklist xmlns='urn:xmpp:blocking'/>), pending subscription
 * requests (<presence type='subscribe'/> in jabber:client, with the
 * <status/>s and <nick/> the request said, both ways: a request of a
 * contact the user has in the roster comes with its roster item, one that
 * is roster_item_pending_only is the <presence/> alone) and the PEP
 * nodes with their items as Prosody's XEP-0227 store writes them (a
 * pubsub#owner <pubsub/> with each node's <configure/> form and
 * affiliations, a pubsub <pubsub/> with its <items/>).
 *
 * An export for ejabberd writes the SCRAM values base64 twice, as ejabberd
 * 23.01 writes and reads them; one for Prosody writes one file per user,
 * USER@HOST.xml, which prosody-migrator's xep0227 store reads.
 *
 * The import also reads what ejabberd and Prosody write: ejabberd's
 * <server-data/> file of XIncludes and its <host/> files, SCRAM values
 * encoded base64 twice (or hex), pending subscription requests as
 * <presence type='subscribe'/> children of <user/>, and ejabberd's block
 * list kept in the default privacy list, and the PEP nodes and items of
 * Prosody's xep0227 store (<pubsub/> in the pubsub#owner and pubsub
 * namespaces), stored as the pubsub module stores them.
 *
 * Invariants:
 * - Export is deterministic: users, roster items, groups, namespaces,
 *   lists and blocked JIDs come sorted, offline messages in their order,
 *   so export -> import -> export gives the same bytes.
 * - A file is written to PATH.tmp and renamed when complete; an import
 *   reads a whole file (well-formed, its includes and hosts checked)
 *   before storing anything of it, then reads it again and stores one
 *   <user/> at a time: memory is bounded by the largest user (at most
 *   USER_MAX_MB of the file), not by the size of the file.
 * - An import never reads a file outside the folder of the file that
 *   includes it, and reads each file once.
 * - Secrets (SCRAM keys, passwords) live only in the document and the
 *   account structs, which are wiped; they are never logged.
 */
#include "ctl-xep0227.h"
#include "lib/htab.h"
#include "lib/jid.h"
#include "lib/log.h"
#include "lib/scram.h"
#include "lib/xml.h"
#include "modules/builtin.h"
#include "modules/pubsub/pubsub.h"
#include "server/module.h"
#include "storage/storage.h"

#include <expat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define NS_PIE "urn:xmpp:pie:0"
#define NS_PIE_SCRAM "urn:xmpp:pie:0#scram"
#define NS_PROSODY_EXT "http://prosody.im/protocol/extended-xep0227"
#define NS_VCARD "vcard-temp"
#define NS_PRIVATE "jabber:iq:private"
#define NS_PRIVACY "jabber:iq:privacy"
#define NS_BLOCKING "urn:xmpp:blocking"

/* ---- waiting for storage ------------------------------------------------------------ */

struct wait {
	bool done;
	enum storage_result res;
	struct xml_node *into; /* where a reader appends what it read */
	void *data;            /* reader-specific */
};

static void wait_run(struct ev_loop *loop, struct wait *w)
{
	while (!w->done)
		ev_run(loop, EVRUN_ONCE);
}

static void done_cb(enum storage_result res, void *ctx)
{
	struct wait *w = ctx;
	w->res = res;
	w->done = true;
}

static enum storage_result wait_done(struct ev_loop *loop, struct storage_req *req, struct wait *w)
{
	(void)req;
	wait_run(loop, w);
	return w->res;
}

/* ---- small helpers ------------------------------------------------------------------- */

static struct xml_node *parse_text(const char *text, const char *default_ns)
{
	size_t len = strlen(text);
	const struct xml_parser_limits lim = { .max_stanza = len + 1, .max_depth = 1024, .max_attrs = 1024 };
	const char *err = NULL;
	return xml_parse_string(text, len, default_ns, &lim, &err);
}

static void add_text_child(struct xml_node *parent, const char *name, const char *text)
{
	struct xml_node *el = xml_add_child(parent, name, NULL);
	xml_add_text(el, text, strlen(text));
}

static const char *const stanza_names[] = { "message", "iq", "presence-in", "presence-out" };

static struct storage *open_store(struct ev_loop *loop, const struct host_config *hc, char **error_r)
{
	struct storage *st = NULL;
	char *err = NULL;
	if (storage_open(loop, &hc->storage, &st, &err) < 0) {
		*error_r = xasprintf("host %s: %s", hc->name, err);
		free(err);
		return NULL;
	}
	return st;
}

/* ---- reading one user into a <user/> element ------------------------------------------- */

/* A secret as text: base64, or base64 of the base64 (twice). */
static void add_secret_child(struct xml_node *parent, const char *name, const void *data, size_t len,
                             bool twice)
{
	char *k = base64_encode(data, len);
	if (twice) {
		char *k2 = base64_encode(k, strlen(k));
		explicit_bzero(k, strlen(k));
		free(k);
		k = k2;
	}
	add_text_child(parent, name, k);
	explicit_bzero(k, strlen(k));
	free(k);
}

/* ejabberd keeps its SCRAM values in base64 and encodes them once more in
 * XEP-0227 (its import expects that too); Parley and Prosody write them
 * once. */
static void scram_to_xml(struct xml_node *user, const struct scram_credentials *c, enum xep0227_target target)
{
	bool twice = target == XEP0227_FOR_EJABBERD;
	struct xml_node *el = xml_add_child(user, "scram-credentials", NS_PIE_SCRAM);
	char mech[32];
	snprintf(mech, sizeof(mech), "SCRAM-%s", scram_hash_name(c->hash));
	xml_set_attr(el, "mechanism", mech);
	char num[16];
	snprintf(num, sizeof(num), "%u", c->iterations);
	add_text_child(el, "iter-count", num);
	if (twice) {
		char *salt = base64_encode(c->salt_b64, strlen(c->salt_b64));
		add_text_child(el, "salt", salt);
		free(salt);
	} else {
		add_text_child(el, "salt", c->salt_b64);
	}
	size_t len = scram_hash_len(c->hash);
	add_secret_child(el, "server-key", c->server_key, len, twice);
	add_secret_child(el, "stored-key", c->stored_key, len, twice);
}

static void account_cb(enum storage_result res, const struct storage_account *acc, void *ctx)
{
	struct wait *w = ctx;
	w->res = res;
	w->done = true;
	if (res != STORAGE_OK)
		return;
	enum xep0227_target target =
	        w->data != NULL ? *(const enum xep0227_target *)w->data : XEP0227_FOR_PARLEY;
	if (acc->plain != NULL)
		xml_set_attr(w->into, "password", acc->plain);
	/* ejabberd 23.01 and Prosody 0.12 use SCRAM-SHA-1 unless configured
	 * otherwise, and take one <scram-credentials/>: the others only when
	 * there is no SHA-1 to give them. */
	bool one = target != XEP0227_FOR_PARLEY && acc->has_sha1;
	if (acc->has_sha1)
		scram_to_xml(w->into, &acc->sha1, target);
	if (acc->has_sha256 && !one)
		scram_to_xml(w->into, &acc->sha256, target);
	if (acc->has_sha512 && !one)
		scram_to_xml(w->into, &acc->sha512, target);
}

static void roster_cb(enum storage_result res, const struct roster_item *items, size_t n, uint64_t version,
                      void *ctx)
{
	struct wait *w = ctx;
	(void)version;
	w->res = res == STORAGE_NOT_FOUND ? STORAGE_OK : res;
	w->done = true;
	if (res != STORAGE_OK)
		return;
	size_t shown = 0;
	for (size_t i = 0; i < n; i++)
		if (!roster_item_pending_only(&items[i]))
			shown++;
	/* Pending requests as the <presence type='subscribe'/> ejabberd and
	 * Prosody write beside the roster (w->data: the user's bare JID). */
	for (size_t i = 0; i < n; i++) {
		if (!items[i].ask_in)
			continue;
		struct xml_node *p = xml_add_child(w->into, "presence", NS_CLIENT);
		xml_set_attr(p, "from", items[i].jid);
		if (w->data != NULL)
			xml_set_attr(p, "to", w->data);
		xml_set_attr(p, "type", "subscribe");
		/* with what the request said (its status and nick) */
		const char *err = NULL;
		struct xml_node *said = roster_request_stanza(&items[i], &err);
		if (err != NULL)
			log_warning("export: what the request of %s said does not parse (%s); left out",
			            items[i].jid, err);
		for (struct xml_node *c = xml_first_element(said); c != NULL; c = xml_next(c, NULL, NULL))
			xml_append_copy(p, c);
		xml_unref(&said);
	}
	if (shown == 0)
		return;
	struct xml_node *q = xml_add_child(w->into, "query", NS_ROSTER);
	for (size_t i = 0; i < n; i++) {
		const struct roster_item *it = &items[i];
		if (roster_item_pending_only(it))
			continue;
		struct xml_node *x = xml_add_child(q, "item", NS_ROSTER);
		xml_set_attr(x, "jid", it->jid);
		if (it->name != NULL)
			xml_set_attr(x, "name", it->name);
		xml_set_attr(x, "subscription", roster_subscription_str(it->subscription));
		if (it->ask_out)
			xml_set_attr(x, "ask", "subscribe");
		if (it->approved)
			xml_set_attr(x, "approved", "true");
		/* Groups sorted for a stable document. */
		char **g = it->groups.count > 0 ? xcalloc(it->groups.count, sizeof(char *)) : NULL;
		for (size_t k = 0; k < it->groups.count; k++)
			g[k] = it->groups.items[k];
		for (size_t a = 1; a < it->groups.count; a++)
			for (size_t b = a; b > 0 && strcmp(g[b - 1], g[b]) > 0; b--) {
				char *t = g[b];
				g[b] = g[b - 1];
				g[b - 1] = t;
			}
		for (size_t k = 0; k < it->groups.count; k++)
			add_text_child(x, "group", g[k]);
		free(g);
	}
}

static void vcard_cb(enum storage_result res, const char *text, void *ctx)
{
	struct wait *w = ctx;
	w->res = res == STORAGE_NOT_FOUND ? STORAGE_OK : res;
	w->done = true;
	if (res != STORAGE_OK)
		return;
	struct xml_node *v = parse_text(text, NULL);
	if (v != NULL && xml_is(v, "vCard", NS_VCARD))
		xml_append_copy(w->into, v);
	else
		log_warning("export: a stored vCard does not parse; left out");
	xml_unref(&v);
}

static void offline_cb(enum storage_result res, const struct offline_message *msgs, size_t n, void *ctx)
{
	struct wait *w = ctx;
	w->res = res;
	w->done = true;
	if (res != STORAGE_OK || n == 0)
		return;
	struct xml_node *box = xml_add_child(w->into, "offline-messages", NS_PIE);
	for (size_t i = 0; i < n; i++) {
		struct xml_node *m = parse_text(msgs[i].stanza, NS_CLIENT);
		if (m != NULL && xml_is(m, "message", NS_CLIENT))
			xml_append_copy(box, m);
		else
			log_warning("export: offline message %lld does not parse; left out",
			            (long long)msgs[i].seq);
		xml_unref(&m);
	}
}

static void private_cb(enum storage_result res, const struct private_item *items, size_t n, void *ctx)
{
	struct wait *w = ctx;
	w->res = res;
	w->done = true;
	if (res != STORAGE_OK || n == 0)
		return;
	struct xml_node *q = xml_add_child(w->into, "query", NS_PRIVATE);
	for (size_t i = 0; i < n; i++) {
		struct xml_node *el = parse_text(items[i].data, NULL);
		if (el != NULL)
			xml_append_copy(q, el);
		xml_unref(&el);
	}
}

static void privacy_cb(enum storage_result res, const struct privacy_list *lists, size_t n,
                       const char *default_name, void *ctx)
{
	struct wait *w = ctx;
	w->res = res;
	w->done = true;
	if (res != STORAGE_OK || n == 0)
		return;
	struct xml_node *q = xml_add_child(w->into, "query", NS_PRIVACY);
	if (default_name != NULL)
		xml_set_attr(xml_add_child(q, "default", NS_PRIVACY), "name", default_name);
	for (size_t i = 0; i < n; i++) {
		struct xml_node *l = xml_add_child(q, "list", NS_PRIVACY);
		xml_set_attr(l, "name", lists[i].name);
		for (size_t k = 0; k < lists[i].nitems; k++) {
			const struct privacy_item *it = &lists[i].items[k];
			struct xml_node *x = xml_add_child(l, "item", NS_PRIVACY);
			if (it->type != PRIVACY_ALL) {
				xml_set_attr(x, "type", privacy_type_str(it->type));
				xml_set_attr(x, "value", it->value);
			}
			xml_set_attr(x, "action", it->allow ? "allow" : "deny");
			char num[16];
			snprintf(num, sizeof(num), "%u", (unsigned)it->order);
			xml_set_attr(x, "order", num);
			for (unsigned b = 0; b < 4; b++)
				if (it->stanzas & (1u << b))
					xml_add_child(x, stanza_names[b], NS_PRIVACY);
		}
	}
}

static void blocklist_cb(enum storage_result res, const struct strlist *jids, void *ctx)
{
	struct wait *w = ctx;
	w->res = res;
	w->done = true;
	/* An empty one too when there are privacy lists (read before): the
	 * import then keeps them as they are, rather than taking their items
	 * that deny a JID everything for an ejabberd block list. */
	if (res != STORAGE_OK || (jids->count == 0 && xml_child(w->into, "query", NS_PRIVACY) == NULL))
		return;
	struct xml_node *bl = xml_add_child(w->into, "blocklist", NS_BLOCKING);
	for (size_t i = 0; i < jids->count; i++)
		xml_set_attr(xml_add_child(bl, "item", NS_BLOCKING), "jid", jids->items[i]);
}

/* A stored node configuration (lines "var=value", the value escaped with
 * backslashes, after a "v=1" line) as the submitted node_config form
 * Prosody's XEP-0227 store writes. */
static void config_form(struct xml_node *parent, const char *config)
{
	struct xml_node *x = xml_add_child(parent, "x", NS_DATA_FORMS);
	xml_set_attr(x, "type", "submit");
	struct xml_node *f = xml_add_child(x, "field", NS_DATA_FORMS);
	xml_set_attr(f, "var", "FORM_TYPE");
	xml_set_attr(f, "type", "hidden");
	add_text_child(f, "value", NS_PUBSUB_NODE_CONFIG);
	struct buf var = { 0 }, val = { 0 };
	for (const char *p = config; *p != '\0';) {
		const char *eol = strchr(p, '\n'), *eq = strchr(p, '=');
		if (eol == NULL)
			eol = p + strlen(p);
		if (eq != NULL && eq < eol && strncmp(p, "v=", 2) != 0) {
			var.len = val.len = 0;
			buf_printf(&var, "pubsub#%.*s", (int)(eq - p), p);
			for (const char *c = eq + 1; c < eol; c++) {
				if (*c == '\\' && c + 1 < eol) {
					c++;
					buf_append(&val, *c == 'n' ? "\n" : c, 1);
				} else {
					buf_append(&val, c, 1);
				}
			}
			buf_append(&var, "", 1);
			buf_append(&val, "", 1);
			struct xml_node *fe = NULL;
			for (struct xml_node *e = xml_child(x, "field", NULL); e != NULL;
			     e = xml_next(e, "field", NULL))
				if (str_eq(xml_attr(e, "var"), var.data))
					fe = e; /* a list (roster groups): one value each */
			if (fe == NULL) {
				fe = xml_add_child(x, "field", NS_DATA_FORMS);
				xml_set_attr(fe, "var", var.data);
			}
			add_text_child(fe, "value", val.data);
		}
		p = *eol == '\n' ? eol + 1 : eol;
	}
	buf_free(&var);
	buf_free(&val);
}

/* The user's PEP nodes and items as Prosody's XEP-0227 store writes them:
 * <pubsub xmlns='...#owner'/> with each node's configuration and
 * affiliations, and <pubsub/> with each node's items, oldest first. */
static void pep_cb(enum storage_result res, const struct pubsub_node_item *nodes, size_t nnodes,
                   const struct pubsub_item *items, size_t nitems, void *ctx)
{
	struct wait *w = ctx;
	w->res = res == STORAGE_NOT_FOUND ? STORAGE_OK : res;
	w->done = true;
	if (res != STORAGE_OK || nnodes == 0)
		return;
	struct xml_node *owner = xml_add_child(w->into, "pubsub", NS_PUBSUB_OWNER);
	for (size_t i = 0; i < nnodes; i++) {
		struct xml_node *c = xml_add_child(owner, "configure", NULL);
		xml_set_attr(c, "node", nodes[i].name);
		config_form(c, nodes[i].config != NULL ? nodes[i].config : "");
		if (nodes[i].naffs == 0)
			continue;
		struct xml_node *a = xml_add_child(owner, "affiliations", NULL);
		xml_set_attr(a, "node", nodes[i].name);
		for (size_t k = 0; k < nodes[i].naffs; k++) {
			struct xml_node *e = xml_add_child(a, "affiliation", NULL);
			xml_set_attr(e, "jid", nodes[i].affs[k].jid);
			xml_set_attr(e, "affiliation", nodes[i].affs[k].affiliation);
		}
	}
	if (nitems == 0)
		return;
	struct xml_node *ps = xml_add_child(w->into, "pubsub", NS_PUBSUB);
	struct xml_node *box = NULL;
	for (size_t i = 0; i < nitems; i++) {
		if (box == NULL || !str_eq(xml_attr(box, "node"), items[i].node)) {
			box = xml_add_child(ps, "items", NULL);
			xml_set_attr(box, "node", items[i].node);
		}
		struct xml_node *it = xml_add_child(box, "item", NULL);
		xml_set_attr(it, "id", items[i].id);
		if (items[i].publisher != NULL && *items[i].publisher != '\0')
			xml_set_attr(it, "publisher", items[i].publisher);
		struct xml_node *payload =
		        *items[i].payload != '\0' ? parse_text(items[i].payload, NULL) : NULL;
		if (payload != NULL)
			xml_append_copy(it, payload);
		else if (*items[i].payload != '\0')
			log_warning("export: PEP item %s of node %s does not parse; its payload is left out",
			            items[i].id, items[i].node);
		xml_unref(&payload);
	}
}

/* Everything of user at host as a <user/> element (the caller unrefs), or
 * NULL with *error_r; the SCRAM values written for target. */
/* Wipe the secrets a <user/> tree holds (its password attribute, Prosody's
 * SCRAM attributes, the SCRAM values) before it is freed. */
void xep0227_wipe_secrets(struct xml_node *u)
{
	if (u == NULL)
		return;
	for (const struct xml_attr *a = u->attrs; a != NULL; a = a->next) {
		bool secret = a->ns == NULL ? strcmp(a->name, "password") == 0
		                            : strcmp(a->ns, NS_PROSODY_EXT) == 0 &&
		                                      (strcmp(a->name, "salt") == 0 ||
		                                       strcmp(a->name, "server_key") == 0 ||
		                                       strcmp(a->name, "stored_key") == 0);
		if (secret)
			explicit_bzero((char *)a->value, strlen(a->value));
	}
	for (struct xml_node *c = xml_child(u, "scram-credentials", NS_PIE_SCRAM); c != NULL;
	     c = xml_next(c, "scram-credentials", NS_PIE_SCRAM))
		for (struct xml_node *v = xml_first_element(c); v != NULL; v = xml_next(v, NULL, NULL))
			for (struct xml_node *t = v->children; t != NULL; t = t->next)
				if (t->type == XML_TEXT)
					explicit_bzero((char *)t->text, t->text_len);
}

static struct xml_node *read_user(struct ev_loop *loop, struct storage *st, const char *host,
                                  const char *user, enum xep0227_target target, char **error_r)
{
	struct xml_node *u = xml_new("user", NS_PIE);
	xml_set_attr(u, "name", user);
	const char *what = NULL;
	enum storage_result res;
	char *bare = xasprintf("%s@%s", user, host);
	for (int step = 0; step < 8; step++) {
		struct wait w = { .into = u };
		switch (step) {
		case 0:
			what = "account";
			w.data = &target;
			storage_account_get(st, host, user, account_cb, &w);
			break;
		case 1:
			what = "roster";
			w.data = bare;
			storage_roster_get(st, host, user, roster_cb, &w);
			break;
		case 2:
			what = "vCard";
			storage_vcard_get(st, host, user, vcard_cb, &w);
			break;
		case 3:
			what = "offline messages";
			storage_offline_get(st, host, user, offline_cb, &w);
			break;
		case 4:
			what = "private XML";
			storage_private_list(st, host, user, private_cb, &w);
			break;
		case 5:
			what = "privacy lists";
			storage_privacy_get(st, host, user, privacy_cb, &w);
			break;
		case 6:
			what = "block list";
			storage_blocklist_get(st, host, user, blocklist_cb, &w);
			break;
		default:
			what = "PEP nodes";
			if (!storage_has_area(st, STORAGE_AREA_PUBSUB))
				continue;
			storage_pubsub_load(st, host, bare, pep_cb, &w);
			break;
		}
		wait_run(loop, &w);
		res = w.res;
		if (res != STORAGE_OK) {
			*error_r = xasprintf("%s@%s: cannot read the %s: storage %s", user, host, what,
			                     storage_result_str(res));
			xml_unref(&u);
			free(bare);
			return NULL;
		}
	}
	free(bare);
	return u;
}

struct names_wait {
	struct wait w;
	struct strlist names;
};

static void names_cb(enum storage_result res, const struct strlist *names, void *ctx)
{
	struct names_wait *nw = ctx;
	nw->w.res = res;
	nw->w.done = true;
	nw->names.count = names->count;
	nw->names.items = names->count > 0 ? xcalloc(names->count, sizeof(char *)) : NULL;
	for (size_t i = 0; i < names->count; i++)
		nw->names.items[i] = xstrdup(names->items[i]);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The accounts of host, sorted; -1 with *error_r. */
static int list_users(struct ev_loop *loop, struct storage *st, const char *host, struct strlist *out,
                      char **error_r)
{
	struct names_wait nw = { 0 };
	storage_account_list(st, host, names_cb, &nw);
	wait_run(loop, &nw.w);
	if (nw.w.res != STORAGE_OK) {
		strlist_free(&nw.names);
		*error_r = xasprintf("host %s: cannot list the accounts: storage %s", host,
		                     storage_result_str(nw.w.res));
		return -1;
	}
	if (nw.names.count > 1)
		qsort(nw.names.items, nw.names.count, sizeof(char *), cmp_str);
	*out = nw.names;
	return 0;
}

/* ---- export ------------------------------------------------------------------------------ */

static int export_host(struct ev_loop *loop, const struct host_config *hc, enum xep0227_target target,
                       FILE *f, unsigned *users_r, char **error_r)
{
	struct storage *st = open_store(loop, hc, error_r);
	if (st == NULL)
		return -1;
	struct strlist users = { 0 };
	int rc = list_users(loop, st, hc->name, &users, error_r);
	if (rc == 0) {
		struct buf b = { 0 };
		buf_append_str(&b, "<host jid='");
		xml_escape(&b, hc->name, strlen(hc->name), true);
		buf_append_str(&b, "'>\n");
		for (size_t i = 0; i < users.count && rc == 0; i++) {
			struct xml_node *u = read_user(loop, st, hc->name, users.items[i], target, error_r);
			if (u == NULL) {
				rc = -1;
				break;
			}
			xml_serialize(&b, u, NS_PIE);
			buf_append_str(&b, "\n");
			xep0227_wipe_secrets(u);
			xml_unref(&u);
			if (fwrite(b.data, 1, b.len, f) != b.len) {
				*error_r = xasprintf("cannot write: %s", strerror(errno));
				rc = -1;
			}
			explicit_bzero(b.data, b.len);
			b.len = 0;
			(*users_r)++;
		}
		if (rc == 0) {
			buf_append_str(&b, "</host>\n");
			if (fwrite(b.data, 1, b.len, f) != b.len) {
				*error_r = xasprintf("cannot write: %s", strerror(errno));
				rc = -1;
			}
		}
		buf_free(&b);
	}
	strlist_free(&users);
	storage_close(&st);
	return rc;
}

/* A new file at path.tmp (its name in *tmp_r, to free through
 * commit_private), readable by its owner only from the start (it holds
 * credentials): a file or link already there is removed first, and none
 * is followed.  NULL with *error_r set when it cannot be made. */
static FILE *open_private(const char *path, char **tmp_r, char **error_r)
{
	char *tmp = xasprintf("%s.tmp", path);
	unlink(tmp);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (f == NULL) {
		*error_r = xasprintf("%s: %s", tmp, strerror(errno));
		if (fd >= 0) {
			close(fd);
			unlink(tmp);
		}
		free(tmp);
		return NULL;
	}
	*tmp_r = tmp;
	return f;
}

/* Finish a file from open_private: written (rc 0 so far) and synced, it
 * replaces path; otherwise it is removed and path is left as it was.
 * Closes f and frees *tmp in either case.  Returns 0, or -1 with *error_r
 * set (kept if the writer set it already). */
static int commit_private(FILE *f, char **tmp, const char *path, int rc, char **error_r)
{
	if (fflush(f) != 0 || fsync(fileno(f)) != 0)
		rc = -1;
	if (fclose(f) != 0)
		rc = -1;
	if (rc == 0 && rename(*tmp, path) != 0)
		rc = -1;
	if (rc < 0) {
		if (*error_r == NULL)
			*error_r = xasprintf("%s: %s", path, strerror(errno));
		unlink(*tmp);
	}
	free(*tmp);
	*tmp = NULL;
	return rc;
}

/* Write the hosts (NULL-terminated array) into one file at path. */
static int export_file(struct ev_loop *loop, const struct host_config *const *hosts,
                       enum xep0227_target target, const char *path, unsigned *users_r, char **error_r)
{
	char *tmp;
	FILE *f = open_private(path, &tmp, error_r);
	if (f == NULL)
		return -1;
	int rc = 0;
	if (fputs("<?xml version='1.0' encoding='UTF-8'?>\n<server-data xmlns='" NS_PIE "'>\n", f) < 0)
		rc = -1;
	for (size_t i = 0; rc == 0 && hosts[i] != NULL; i++)
		rc = export_host(loop, hosts[i], target, f, users_r, error_r);
	if (rc == 0 && fputs("</server-data>\n", f) < 0)
		rc = -1;
	return commit_private(f, &tmp, path, rc, error_r);
}

/* Write text to path through path.tmp (mode 0600: it holds credentials). */
static int write_whole(const char *path, const struct buf *text, char **error_r)
{
	char *tmp;
	FILE *f = open_private(path, &tmp, error_r);
	if (f == NULL)
		return -1;
	int rc = fwrite(text->data, 1, text->len, f) == text->len ? 0 : -1;
	return commit_private(f, &tmp, path, rc, error_r);
}

/* Prosody's XEP-0227 store (prosody-migrator's input type xep0227) reads
 * one file per user, named USER@HOST.xml, in its data path: a
 * <server-data/> with that user's <host/> and <user/> alone. */
static int export_prosody_host(struct ev_loop *loop, const struct host_config *hc, const char *dir,
                               unsigned *users_r, char **error_r)
{
	struct storage *st = open_store(loop, hc, error_r);
	if (st == NULL)
		return -1;
	struct strlist users = { 0 };
	int rc = list_users(loop, st, hc->name, &users, error_r);
	for (size_t i = 0; rc == 0 && i < users.count; i++) {
		struct xml_node *u =
		        read_user(loop, st, hc->name, users.items[i], XEP0227_FOR_PROSODY, error_r);
		if (u == NULL) {
			rc = -1;
			break;
		}
		struct xml_node *doc = xml_new("server-data", NS_PIE);
		struct xml_node *h = xml_add_child(doc, "host", NS_PIE);
		xml_set_attr(h, "jid", hc->name);
		xml_append_copy(h, u);
		xep0227_wipe_secrets(u);
		xml_unref(&u);
		struct buf b = { 0 };
		buf_append_str(&b, "<?xml version='1.0' encoding='UTF-8'?>\n");
		xml_serialize(&b, doc, NULL);
		buf_append_str(&b, "\n");
		xep0227_wipe_secrets(xml_child(xml_child(doc, "host", NS_PIE), "user", NS_PIE));
		xml_unref(&doc);
		char *file = xasprintf("%s/%s@%s.xml", dir, users.items[i], hc->name);
		rc = write_whole(file, &b, error_r);
		free(file);
		explicit_bzero(b.data, b.len);
		buf_free(&b);
		if (rc == 0)
			(*users_r)++;
	}
	strlist_free(&users);
	storage_close(&st);
	return rc;
}

int xep0227_export(struct ev_loop *loop, const struct parley_config *cfg, const char *host, const char *path,
                   enum xep0227_target target, struct buf *report, char **error_r)
{
	*error_r = NULL;
	const struct host_config **hosts = xcalloc(cfg->nhosts + 1, sizeof(*hosts));
	size_t n = 0;
	if (host != NULL) {
		char *domain = jid_nameprep(host);
		const struct host_config *hc = domain != NULL ? config_host(cfg, domain) : NULL;
		free(domain);
		if (hc == NULL) {
			*error_r = xasprintf("host %s is not in %s", host, cfg->file);
			free(hosts);
			return -1;
		}
		hosts[n++] = hc;
	} else {
		for (size_t i = 0; i < cfg->nhosts; i++)
			hosts[n++] = &cfg->hosts[i];
	}
	struct stat sb;
	bool dir = stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
	unsigned users = 0;
	int rc = 0;
	if (target == XEP0227_FOR_PROSODY && !dir) {
		*error_r =
		        xasprintf("%s: not a directory (--for prosody writes one USER@HOST.xml file per user "
		                  "into an existing directory)",
		                  path);
		free(hosts);
		return -1;
	}
	if (target == XEP0227_FOR_PROSODY) {
		for (size_t i = 0; i < n && rc == 0; i++) {
			unsigned before = users;
			rc = export_prosody_host(loop, hosts[i], path, &users, error_r);
			if (rc == 0)
				buf_printf(report, "%s: %u file%s USER@%s.xml\n", path, users - before,
				           users - before == 1 ? "" : "s", hosts[i]->name);
		}
	} else if (dir) {
		for (size_t i = 0; i < n && rc == 0; i++) {
			const struct host_config *one[2] = { hosts[i], NULL };
			char *file = xasprintf("%s/%s.xml", path, hosts[i]->name);
			rc = export_file(loop, one, target, file, &users, error_r);
			if (rc == 0)
				buf_printf(report, "%s: host %s\n", file, hosts[i]->name);
			free(file);
		}
	} else {
		rc = export_file(loop, hosts, target, path, &users, error_r);
		if (rc == 0)
			buf_printf(report, "%s: %zu host%s\n", path, n, n == 1 ? "" : "s");
	}
	free(hosts);
	if (rc == 0)
		buf_printf(report, "exported %u user%s\n", users, users == 1 ? "" : "s");
	return rc;
}

/* ---- import ------------------------------------------------------------------------------- */

#define NS_XINCLUDE "http://www.w3.org/2001/XInclude"
/* The list ejabberd keeps a XEP-0191 block list in when the user has no
 * default privacy list of its own. */
#define EJABBERD_BLOCK_LIST "Blocked contacts"

/* el's text without the white space a pretty-printer may have put in it
 * (malloc'd), or NULL when el is missing. */
static char *child_text_packed(const struct xml_node *el, const char *name)
{
	const char *t = xml_child_text(el, name, NULL);
	if (t == NULL)
		return NULL;
	char *out = xstrdup(t), *o = out;
	for (const char *p = t; *p != '\0'; p++)
		if (strchr(" \t\r\n", *p) == NULL)
			*o++ = *p;
	*o = '\0';
	return out;
}

static void free_secret(unsigned char *p, size_t len)
{
	if (p != NULL) {
		explicit_bzero(p, len);
		free(p);
	}
}

/* How a SCRAM value is written: base64 (XEP-0227), base64 of the base64
 * (ejabberd, whose store keeps the values in base64 and whose exporter
 * encodes them once more) or hex (Prosody's own representation). */
enum scram_enc { ENC_BASE64, ENC_BASE64_TWICE, ENC_HEX };

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The want bytes of a SCRAM key written as text into out, recognising the
 * encoding by the length that decoding gives.  0 with *enc_r, or -1 with
 * the length it decodes to in *got_r (of the second decoding when the
 * first gave base64 again; 0: neither base64 nor hex). */
static int scram_key_decode(const char *text, size_t want, unsigned char *out, enum scram_enc *enc_r,
                            size_t *got_r)
{
	size_t len = strlen(text), l1 = 0, l2 = 0;
	unsigned char *once = NULL, *twice = NULL;
	int rc = -1;
	*got_r = 0;
	/* Once decoded, a key written twice is base64 text again; a key
	 * written once is not (SHA-1's 20 bytes never are, not being a
	 * multiple of 4; 32 random bytes all in the base64 alphabet have a
	 * chance of 2^-64). */
	if (base64_decode(text, len, &once, &l1) == 0) {
		if (l1 > 0 && base64_decode((const char *)once, l1, &twice, &l2) == 0) {
			*got_r = l2;
			if (l2 == want) {
				memcpy(out, twice, want);
				*enc_r = ENC_BASE64_TWICE;
				rc = 0;
			}
		} else {
			*got_r = l1;
			if (l1 == want) {
				memcpy(out, once, want);
				*enc_r = ENC_BASE64;
				rc = 0;
			}
		}
	}
	if (rc < 0 && len == 2 * want) {
		size_t i;
		for (i = 0; i < want; i++) {
			int hi = hex_digit(text[2 * i]), lo = hex_digit(text[2 * i + 1]);
			if (hi < 0 || lo < 0)
				break;
			out[i] = (unsigned char)(hi << 4 | lo);
		}
		if (i == want) {
			*enc_r = ENC_HEX;
			rc = 0;
		}
	}
	free_secret(once, l1);
	free_secret(twice, l2);
	return rc;
}

static char *key_error(const char *mech, const char *what, size_t got, size_t want)
{
	if (got == 0)
		return xasprintf("%s %s: neither base64 nor %zu hex digits", mech, what, 2 * want);
	return xasprintf("%s %s: %zu bytes after decoding, expected %zu (base64, once or twice)", mech, what,
	                 got, want);
}

/* An iteration count as written (a positive decimal number, at most 10^8);
 * 0 when it is not one. */
static unsigned parse_iterations(const char *s)
{
	char *end = NULL;
	long it = strtol(s, &end, 10);
	return *s != '\0' && *end == '\0' && it > 0 && it <= 100000000 ? (unsigned)it : 0;
}

/* One <scram-credentials/> into acc.  0; 1 when its mechanism is not one
 * Parley keeps (ignored); -1 with *error_r naming the value that is not
 * usable and what was expected. */
static int scram_from_xml(const struct xml_node *el, struct storage_account *acc, char **error_r)
{
	const char *mech = xml_attr(el, "mechanism");
	enum scram_hash h;
	struct scram_credentials *c;
	bool *has;
	if (mech != NULL && strcmp(mech, "SCRAM-SHA-1") == 0) {
		h = SCRAM_SHA1;
		c = &acc->sha1;
		has = &acc->has_sha1;
	} else if (mech != NULL && strcmp(mech, "SCRAM-SHA-256") == 0) {
		h = SCRAM_SHA256;
		c = &acc->sha256;
		has = &acc->has_sha256;
	} else if (mech != NULL && strcmp(mech, "SCRAM-SHA-512") == 0) {
		h = SCRAM_SHA512;
		c = &acc->sha512;
		has = &acc->has_sha512;
	} else {
		return 1;
	}
	char *iter = child_text_packed(el, "iter-count"), *salt = child_text_packed(el, "salt");
	char *sk = child_text_packed(el, "server-key"), *tk = child_text_packed(el, "stored-key");
	size_t len = scram_hash_len(h), got = 0;
	unsigned char server_key[64], stored_key[64], *salt_once = NULL;
	size_t salt_len = 0;
	enum scram_enc enc_s, enc_t;
	unsigned it = iter != NULL ? parse_iterations(iter) : 0;
	int rc = -1;
	if (iter == NULL || salt == NULL || sk == NULL || tk == NULL) {
		*error_r = xasprintf("%s: <%s/> is missing", mech,
		                     iter == NULL   ? "iter-count"
		                     : salt == NULL ? "salt"
		                     : sk == NULL   ? "server-key"
		                                    : "stored-key");
	} else if (it == 0) {
		*error_r = xasprintf("%s iter-count: '%s' is not a positive number", mech, iter);
	} else if (scram_key_decode(sk, len, server_key, &enc_s, &got) < 0) {
		*error_r = key_error(mech, "server-key", got, len);
	} else if (scram_key_decode(tk, len, stored_key, &enc_t, &got) < 0) {
		*error_r = key_error(mech, "stored-key", got, len);
	} else if (enc_s != enc_t) {
		*error_r = xasprintf("%s: server-key and stored-key are not encoded alike", mech);
	} else if (base64_decode(salt, strlen(salt), &salt_once, &salt_len) < 0 || salt_len == 0) {
		*error_r = xasprintf("%s salt: not base64", mech);
	} else if (enc_s == ENC_BASE64_TWICE) {
		/* The salt was encoded twice like the keys: once decoded, it is
		 * the base64 Parley keeps. */
		unsigned char *raw = NULL;
		size_t raw_len = 0;
		if (base64_decode((const char *)salt_once, salt_len, &raw, &raw_len) < 0 || raw_len == 0) {
			*error_r = xasprintf("%s salt: the keys are base64 twice but the salt is not", mech);
		} else {
			free(c->salt_b64);
			c->salt_b64 = xstrdup((const char *)salt_once);
			rc = 0;
		}
		free_secret(raw, raw_len);
	} else {
		free(c->salt_b64);
		c->salt_b64 = xstrdup(salt);
		rc = 0;
	}
	if (rc == 0) {
		c->hash = h;
		c->iterations = it;
		memcpy(c->server_key, server_key, len);
		memcpy(c->stored_key, stored_key, len);
		*has = true;
	}
	explicit_bzero(server_key, sizeof(server_key));
	explicit_bzero(stored_key, sizeof(stored_key));
	free_secret(salt_once, salt_len);
	free(iter);
	free(salt);
	if (sk != NULL) {
		explicit_bzero(sk, strlen(sk));
		free(sk);
	}
	if (tk != NULL) {
		explicit_bzero(tk, strlen(tk));
		free(tk);
	}
	return rc;
}

/* Attributes Prosody's older xep0227 store wrote for hashed passwords,
 * in a namespace of its own, with the salt as it is and the keys in hex. */

static const char *prosody_attr(const struct xml_node *u, const char *name)
{
	for (const struct xml_attr *a = u->attrs; a != NULL; a = a->next)
		if (a->ns != NULL && strcmp(a->ns, NS_PROSODY_EXT) == 0 && strcmp(a->name, name) == 0)
			return a->value;
	return NULL;
}

/* SCRAM-SHA-1 from those attributes into acc.  0; 1 when there are none;
 * -1 with *error_r. */
static int prosody_scram_from_xml(const struct xml_node *u, struct storage_account *acc, char **error_r)
{
	const char *iter = prosody_attr(u, "iteration_count"), *salt = prosody_attr(u, "salt");
	const char *sk = prosody_attr(u, "server_key"), *tk = prosody_attr(u, "stored_key");
	if (iter == NULL && salt == NULL && sk == NULL && tk == NULL)
		return 1;
	size_t len = scram_hash_len(SCRAM_SHA1), got = 0;
	unsigned char server_key[20], stored_key[20];
	enum scram_enc enc;
	unsigned it = iter != NULL ? parse_iterations(iter) : 0;
	int rc = -1;
	if (iter == NULL || salt == NULL || sk == NULL || tk == NULL || *salt == '\0')
		*error_r = xasprintf("Prosody's iteration_count, salt, server_key and stored_key are not all "
		                     "there");
	else if (it == 0)
		*error_r = xasprintf("Prosody's iteration_count '%s' is not a positive number", iter);
	else if (scram_key_decode(sk, len, server_key, &enc, &got) < 0)
		*error_r = key_error("SCRAM-SHA-1", "server_key", got, len);
	else if (scram_key_decode(tk, len, stored_key, &enc, &got) < 0)
		*error_r = key_error("SCRAM-SHA-1", "stored_key", got, len);
	else
		rc = 0;
	if (rc == 0) {
		acc->sha1.hash = SCRAM_SHA1;
		acc->sha1.iterations = it;
		free(acc->sha1.salt_b64);
		acc->sha1.salt_b64 = base64_encode(salt, strlen(salt));
		memcpy(acc->sha1.server_key, server_key, len);
		memcpy(acc->sha1.stored_key, stored_key, len);
		acc->has_sha1 = true;
	}
	explicit_bzero(server_key, sizeof(server_key));
	explicit_bzero(stored_key, sizeof(stored_key));
	return rc;
}

/* The account of a <user/>: its SCRAM credentials, the ones missing
 * derived from a password attribute.  -1 with *error_r when a
 * <scram-credentials/> is not usable, or when it has neither. */
static int account_from_xml(const struct xml_node *u, const struct host_config *hc,
                            struct storage_account *acc, struct buf *report, const char *jid, char **error_r)
{
	memset(acc, 0, sizeof(*acc));
	for (struct xml_node *c = xml_first_element(u); c != NULL; c = xml_next(c, NULL, NULL)) {
		if (!xml_is(c, "scram-credentials", NS_PIE_SCRAM))
			continue;
		int r = scram_from_xml(c, acc, error_r);
		if (r < 0)
			return -1;
		if (r > 0)
			buf_printf(report, "note: %s: %s credentials are not kept (unknown mechanism)\n", jid,
			           xml_attr(c, "mechanism") != NULL ? xml_attr(c, "mechanism") : "unnamed");
	}
	if (!acc->has_sha1 && prosody_scram_from_xml(u, acc, error_r) < 0)
		return -1;
	const char *pw = xml_attr(u, "password");
	if (pw != NULL && (!acc->has_sha1 || !acc->has_sha256 || !acc->has_sha512)) {
		char *prep = scram_saslprep(pw);
		if (prep == NULL) {
			*error_r = xasprintf("its password is not usable (SASLprep refuses it)");
			return -1;
		}
		if (!acc->has_sha1 &&
		    scram_derive(SCRAM_SHA1, prep, NULL, 0, hc->auth.scram_iterations, &acc->sha1) == 0)
			acc->has_sha1 = true;
		if (!acc->has_sha256 &&
		    scram_derive(SCRAM_SHA256, prep, NULL, 0, hc->auth.scram_iterations, &acc->sha256) == 0)
			acc->has_sha256 = true;
		if (!acc->has_sha512 &&
		    scram_derive(SCRAM_SHA512, prep, NULL, 0, hc->auth.scram_iterations, &acc->sha512) == 0)
			acc->has_sha512 = true;
		explicit_bzero(prep, strlen(prep));
		free(prep);
	}
	if (!acc->has_sha1 && !acc->has_sha256 && !acc->has_sha512) {
		*error_r = xasprintf("it has no password and no usable SCRAM credentials");
		return -1;
	}
	acc->created = (int64_t)time(NULL);
	return 0;
}
static bool roster_item_from_xml(const struct xml_node *x, struct roster_item *it)
{
	memset(it, 0, sizeof(*it));
	const char *jid_s = xml_attr(x, "jid");
	struct jid j;
	const char *err;
	if (jid_s == NULL || jid_parse(jid_s, &j, &err) != 0)
		return false;
	it->jid = jid_bare_string(&j);
	jid_clear(&j);
	it->in_roster = true; /* an item, not a request alone (a <presence/>) */
	const char *name = xml_attr(x, "name");
	it->name = name != NULL ? xstrdup(name) : NULL;
	const char *sub = xml_attr(x, "subscription");
	it->subscription = SUB_NONE;
	static const enum roster_subscription subs[] = { SUB_NONE, SUB_TO, SUB_FROM, SUB_BOTH };
	for (size_t i = 0; sub != NULL && i < ARRAY_SIZE(subs); i++)
		if (strcmp(sub, roster_subscription_str(subs[i])) == 0)
			it->subscription = subs[i];
	const char *ask = xml_attr(x, "ask");
	it->ask_out = ask != NULL && strcmp(ask, "subscribe") == 0;
	const char *approved = xml_attr(x, "approved");
	it->approved = approved != NULL && (strcmp(approved, "true") == 0 || strcmp(approved, "1") == 0);
	for (struct xml_node *g = xml_child(x, "group", NULL); g != NULL; g = xml_next(g, "group", NULL)) {
		const char *t = xml_text(g);
		if (*t == '\0' || strlist_contains(&it->groups, t))
			continue;
		it->groups.items = xrealloc(it->groups.items, (it->groups.count + 1) * sizeof(char *));
		it->groups.items[it->groups.count++] = xstrdup(t);
	}
	return true;
}

/* The items of a privacy <list/>; false when one is not valid. */
static bool privacy_items_from_xml(const struct xml_node *l, struct privacy_item **items_r, size_t *n_r)
{
	size_t n = xml_element_count(l), k = 0;
	struct privacy_item *items = xcalloc(n > 0 ? n : 1, sizeof(*items));
	for (struct xml_node *x = xml_child(l, "item", NULL); x != NULL; x = xml_next(x, "item", NULL)) {
		struct privacy_item *it = &items[k];
		const char *type = xml_attr(x, "type"), *value = xml_attr(x, "value");
		const char *action = xml_attr(x, "action"), *order = xml_attr(x, "order");
		if (action == NULL || order == NULL)
			goto bad;
		it->allow = strcmp(action, "allow") == 0;
		char *end;
		unsigned long long o = strtoull(order, &end, 10);
		if (*order == '\0' || *end != '\0' || o > UINT32_MAX)
			goto bad;
		it->order = (uint32_t)o;
		if (type == NULL)
			it->type = PRIVACY_ALL;
		else if (value == NULL)
			goto bad;
		else if (strcmp(type, "jid") == 0)
			it->type = PRIVACY_JID;
		else if (strcmp(type, "group") == 0)
			it->type = PRIVACY_GROUP;
		else if (strcmp(type, "subscription") == 0)
			it->type = PRIVACY_SUBSCRIPTION;
		else
			goto bad;
		it->value = it->type != PRIVACY_ALL ? value : NULL;
		for (struct xml_node *c = xml_first_element(x); c != NULL; c = xml_next(c, NULL, NULL))
			for (unsigned b = 0; b < 4; b++)
				if (strcmp(c->name, stanza_names[b]) == 0)
					it->stanzas |= 1u << b;
		k++;
	}
	if (k == 0) /* a list without items */
		goto bad;
	*items_r = items;
	*n_r = k;
	return true;
bad:
	free(items);
	return false;
}


/* Append s (taken over) to l. */
static void list_take(struct strlist *l, char *s)
{
	l->items = xrealloc(l->items, (l->count + 1) * sizeof(char *));
	l->items[l->count++] = s;
}

/* Remove (and free) s from l, when it is there. */
static void list_remove(struct strlist *l, const char *s)
{
	for (size_t i = 0; i < l->count; i++)
		if (strcmp(l->items[i], s) == 0) {
			free(l->items[i]);
			l->items[i] = l->items[--l->count];
			return;
		}
}

/* A privacy item that is a XEP-0191 block: deny everything from a JID. */
static bool is_block_item(const struct privacy_item *it)
{
	return it->type == PRIVACY_JID && !it->allow && it->stanzas == 0;
}

/* The bare JID of a subscription request waiting in a <user/> (p: one of
 * the <presence type='subscribe'/> children ejabberd and Prosody write,
 * in jabber:client or in no namespace of their own), or NULL.  Malloc'd. */
static char *pending_jid(const struct xml_node *p)
{
	const char *type = xml_attr(p, "type"), *from = xml_attr(p, "from");
	if (type == NULL || strcmp(type, "subscribe") != 0 || from == NULL)
		return NULL;
	if (strcmp(p->ns, NS_CLIENT) != 0 && strcmp(p->ns, NS_PIE) != 0 && *p->ns != '\0')
		return NULL;
	struct jid j;
	const char *err;
	if (jid_parse(from, &j, &err) != 0)
		return NULL;
	char *bare = jid_bare_string(&j);
	jid_clear(&j);
	return bare;
}

/* The bare JIDs of the subscription requests waiting in a <user/>. */
static void pending_from_xml(const struct xml_node *u, struct strlist *out)
{
	for (struct xml_node *p = xml_child(u, "presence", NULL); p != NULL;
	     p = xml_next(p, "presence", NULL)) {
		char *bare = pending_jid(p);
		if (bare == NULL || strlist_contains(out, bare))
			free(bare);
		else
			list_take(out, bare);
	}
}

/* What the first request from bare in a <user/> said (its <status/>s,
 * in the namespace of the <presence/>, and its <nick/>), as
 * roster_item.ask_in_stanza keeps it (in jabber:client), or NULL.
 * Malloc'd. */
static char *pending_said(const struct xml_node *u, const char *bare)
{
	for (struct xml_node *p = xml_child(u, "presence", NULL); p != NULL;
	     p = xml_next(p, "presence", NULL)) {
		char *j = pending_jid(p);
		bool match = j != NULL && strcmp(j, bare) == 0;
		free(j);
		if (!match)
			continue;
		struct xml_node *c = xml_copy(p);
		for (struct xml_node *st = xml_child(c, "status", p->ns); st != NULL;
		     st = xml_next(st, "status", p->ns))
			st->ns = NS_CLIENT;
		c->ns = NS_CLIENT;
		char *said = roster_request_said(c);
		xml_unref(&c);
		return said;
	}
	return NULL;
}

static enum storage_result store_blocklist(struct ev_loop *loop, struct storage *st, const char *host,
                                           const char *user, const struct strlist *jids)
{
	if (jids->count == 0)
		return STORAGE_OK;
	struct wait bw = { 0 };
	return wait_done(loop,
	                 storage_blocklist_add(st, host, user, (const char *const *)jids->items, jids->count,
	                                       done_cb, &bw),
	                 &bw);
}

/* A privacy <query/>: its lists, its default list; without a <blocklist/>
 * in the file (ejabberd keeps the XEP-0191 block list as the items that
 * deny a JID everything in the default list), those items of the default
 * list go to the block list instead, and the list itself only when
 * something else is left in it. */
static enum storage_result import_privacy(struct ev_loop *loop, struct storage *st, const char *host,
                                          const char *user, const struct xml_node *q, bool has_blocklist,
                                          struct buf *report)
{
	enum storage_result res = STORAGE_OK;
	const struct xml_node *def = xml_child(q, "default", NULL);
	const char *def_name = def != NULL ? xml_attr(def, "name") : NULL;
	bool def_dropped = false;
	struct strlist blocked = { 0 };
	for (struct xml_node *l = xml_child(q, "list", NULL); l != NULL && res == STORAGE_OK;
	     l = xml_next(l, "list", NULL)) {
		const char *name = xml_attr(l, "name");
		struct privacy_item *items = NULL;
		size_t n = 0;
		if (name == NULL || !privacy_items_from_xml(l, &items, &n)) {
			buf_printf(report, "note: %s@%s: a privacy list that is not valid is left out\n",
			           user, host);
			continue;
		}
		if (!has_blocklist && def_name != NULL && strcmp(name, def_name) == 0) {
			size_t k = 0;
			for (size_t i = 0; i < n; i++) {
				if (!is_block_item(&items[i])) {
					items[k++] = items[i];
					continue;
				}
				char *norm = NULL;
				struct jid j;
				const char *err;
				if (jid_parse(items[i].value, &j, &err) == 0) {
					norm = jid_to_string(&j);
					jid_clear(&j);
				}
				if (norm != NULL && !strlist_contains(&blocked, norm))
					list_take(&blocked, norm);
				else
					free(norm);
			}
			n = k;
			if (n == 0)
				def_dropped = true;
		}
		if (n > 0) {
			struct wait lw = { 0 };
			res = wait_done(
			        loop, storage_privacy_set_list(st, host, user, name, items, n, done_cb, &lw),
			        &lw);
		}
		free(items);
	}
	if (res == STORAGE_OK && def_name != NULL && !def_dropped) {
		struct wait dw = { 0 };
		res = wait_done(loop, storage_privacy_set_default(st, host, user, def_name, done_cb, &dw),
		                &dw);
		if (res == STORAGE_NOT_FOUND) {
			buf_printf(report, "note: %s@%s: the default privacy list does not exist\n", user,
			           host);
			res = STORAGE_OK;
		}
	}
	if (res == STORAGE_OK && blocked.count > 0) {
		res = store_blocklist(loop, st, host, user, &blocked);
		if (strcmp(def_name, EJABBERD_BLOCK_LIST) != 0 || !def_dropped)
			buf_printf(report,
			           "note: %s@%s: %zu JID%s of privacy list '%s' moved to the block list\n",
			           user, host, blocked.count, blocked.count == 1 ? "" : "s", def_name);
	}
	strlist_free(&blocked);
	return res;
}

/* ---- PEP ------------------------------------------------------------------------------------ */

/* One PEP node of a <user/>, gathered from the two <pubsub/> elements
 * Prosody writes: <pubsub xmlns='...#owner'> with <configure/>,
 * <affiliations/> and <subscriptions/> per node, and <pubsub> with the
 * <items/> of each node, oldest first. */
struct pep_node_in {
	const char *name;
	const struct xml_node *form;  /* the <x/> of <configure/>, or NULL */
	const struct xml_node *affs;  /* <affiliations/>, or NULL */
	const struct xml_node *subs;  /* <subscriptions/>, or NULL */
	const struct xml_node *items; /* <items/>, or NULL */
};

static struct pep_node_in *pep_node_get(struct pep_node_in **nodes, size_t *n, const char *name)
{
	for (size_t i = 0; i < *n; i++)
		if (strcmp((*nodes)[i].name, name) == 0)
			return &(*nodes)[i];
	*nodes = xrealloc(*nodes, (*n + 1) * sizeof(**nodes));
	(*nodes)[*n] = (struct pep_node_in){ .name = name };
	return &(*nodes)[(*n)++];
}

/* The configuration of a node the file gives none for: what the clients
 * that make these nodes ask for (XEP-0402 bookmarks private, OMEMO
 * device lists and bundles open), and room for every item in the file. */
static void pep_config_guess(struct ps_config *c, const char *node, size_t nitems,
                             const struct pubsub_settings *set)
{
	if (strcmp(node, "urn:xmpp:bookmarks:1") == 0) {
		c->access = PS_ACCESS_WHITELIST;
		c->max_items = PS_MAX_ITEMS_MAX;
		c->send_last = PS_SEND_LAST_NEVER;
	} else if (strcmp(node, "storage:bookmarks") == 0) {
		c->access = PS_ACCESS_WHITELIST;
	} else if (str_has_prefix(node, "eu.siacs.conversations.axolotl.") ||
	           str_has_prefix(node, "urn:xmpp:omemo:")) {
		c->access = PS_ACCESS_OPEN;
		if (strcmp(node, "urn:xmpp:omemo:2:bundles") == 0)
			c->max_items = PS_MAX_ITEMS_MAX;
	}
	if (c->max_items != PS_MAX_ITEMS_MAX && nitems > c->max_items)
		c->max_items = nitems < set->max_items_per_node ? (unsigned)nitems : set->max_items_per_node;
}

static bool has_pep(const struct xml_node *u)
{
	return xml_child(u, "pubsub", NS_PUBSUB) != NULL || xml_child(u, "pubsub", NS_PUBSUB_OWNER) != NULL;
}

/* Store the PEP nodes and items of <user/> u (jid: its bare JID, the
 * owner) in st; what cannot be kept is a note: line.  The result of the
 * first storage call that failed (STORAGE_OK when none did). */
static enum storage_result import_pep(struct ev_loop *loop, struct storage *st,
                                      const struct pubsub_settings *set, const char *host, const char *jid,
                                      const struct xml_node *u, struct buf *report)
{
	struct pep_node_in *nodes = NULL;
	size_t n = 0;
	for (struct xml_node *c = xml_first_element(u); c != NULL; c = xml_next(c, NULL, NULL)) {
		bool owner = xml_is(c, "pubsub", NS_PUBSUB_OWNER);
		if (!owner && !xml_is(c, "pubsub", NS_PUBSUB))
			continue;
		for (struct xml_node *e = xml_first_element(c); e != NULL; e = xml_next(e, NULL, NULL)) {
			const char *name = xml_attr(e, "node");
			if (name == NULL || *name == '\0') {
				buf_printf(report, "note: %s: a PEP <%s/> without a node name is left out\n",
				           jid, e->name);
				continue;
			}
			struct pep_node_in *pn = pep_node_get(&nodes, &n, name);
			if (owner && strcmp(e->name, "configure") == 0)
				pn->form = xml_child(e, "x", NS_XDATA);
			else if (owner && strcmp(e->name, "affiliations") == 0)
				pn->affs = e;
			else if (owner && strcmp(e->name, "subscriptions") == 0)
				pn->subs = e;
			else if (!owner && strcmp(e->name, "items") == 0)
				pn->items = e;
			else
				buf_printf(report, "note: %s: <%s/> of PEP node %s is not imported\n", jid,
				           e->name, name);
		}
	}
	enum storage_result res = STORAGE_OK;
	double now = (double)time(NULL);
	for (size_t i = 0; i < n && res == STORAGE_OK; i++) {
		const struct pep_node_in *pn = &nodes[i];
		if (i >= set->max_nodes_per_user) {
			buf_printf(report,
			           "note: %s: PEP node %s is left out: more than %u nodes (pubsub "
			           "max_nodes_per_user)\n",
			           jid, pn->name, set->max_nodes_per_user);
			continue;
		}
		size_t nitems = pn->items != NULL ? xml_element_count(pn->items) : 0;
		struct ps_config cfg;
		ps_config_defaults(&cfg, set, true);
		if (pn->form != NULL) {
			enum stanza_error e;
			const char *why = NULL;
			if (ps_config_apply(&cfg, pn->form, set, &e, &why) < 0) {
				buf_printf(report,
				           "note: %s: the configuration of PEP node %s is not usable (%s); "
				           "Parley's defaults are kept\n",
				           jid, pn->name, why != NULL ? why : "?");
				pep_config_guess(&cfg, pn->name, nitems, set);
			}
		} else {
			pep_config_guess(&cfg, pn->name, nitems, set);
		}
		/* affiliations (bare JIDs, one each) and subscriptions */
		size_t naffs = pn->affs != NULL ? xml_element_count(pn->affs) : 0;
		size_t nsubs = pn->subs != NULL ? xml_element_count(pn->subs) : 0;
		struct pubsub_affiliation_item *affs = xcalloc(naffs + 1, sizeof(*affs));
		struct pubsub_subscription_item *subs = xcalloc(nsubs + 1, sizeof(*subs));
		struct strlist owned = { 0 };
		size_t ka = 0, ks = 0;
		for (struct xml_node *a = pn->affs != NULL ? xml_child(pn->affs, "affiliation", NULL) : NULL;
		     a != NULL; a = xml_next(a, "affiliation", NULL)) {
			struct jid j;
			const char *err;
			const char *s = xml_attr(a, "jid"), *aff = xml_attr(a, "affiliation");
			if (s == NULL || aff == NULL || ps_aff_parse(aff) < 0 ||
			    jid_parse(s, &j, &err) != 0) {
				buf_printf(report,
				           "note: %s: an affiliation of PEP node %s is not valid; left out\n",
				           jid, pn->name);
				continue;
			}
			char *bare = jid_bare_string(&j);
			jid_clear(&j);
			if (strlist_contains(&owned, bare)) {
				free(bare);
				continue;
			}
			list_take(&owned, bare);
			affs[ka++] = (struct pubsub_affiliation_item){ bare, aff };
		}
		struct strlist owned_subs = { 0 };
		for (struct xml_node *s = pn->subs != NULL ? xml_child(pn->subs, "subscription", NULL) : NULL;
		     s != NULL; s = xml_next(s, "subscription", NULL)) {
			struct jid j;
			const char *err;
			const char *sj = xml_attr(s, "jid");
			/* Prosody writes the state as subscribed='...', and reads it
			 * as subscription='...' */
			const char *state = xml_attr(s, "subscription");
			if (state == NULL)
				state = xml_attr(s, "subscribed");
			if (state == NULL)
				state = "subscribed";
			bool state_ok = strcmp(state, "subscribed") == 0 || strcmp(state, "pending") == 0 ||
			                strcmp(state, "unconfigured") == 0;
			if (sj == NULL || !state_ok || jid_parse(sj, &j, &err) != 0) {
				buf_printf(report,
				           "note: %s: a subscription to PEP node %s is not valid; left out\n",
				           jid, pn->name);
				continue;
			}
			char *full = jid_to_string(&j);
			jid_clear(&j);
			const char *subid = xml_attr(s, "subid");
			list_take(&owned_subs, full);
			list_take(&owned_subs, subid != NULL && *subid != '\0'
			                               ? xstrdup(subid)
			                               : xasprintf("imported-%zu", ks + 1));
			subs[ks++] =
			        (struct pubsub_subscription_item){ owned_subs.items[owned_subs.count - 2],
				                                   owned_subs.items[owned_subs.count - 1],
				                                   state, "" };
		}
		char *cfgtext = ps_config_serialize(&cfg);
		struct pubsub_node_item ni = { .name = pn->name,
			                       .config = cfgtext,
			                       .created = now,
			                       .affs = affs,
			                       .naffs = ka,
			                       .subs = subs,
			                       .nsubs = ks };
		struct wait w = { 0 };
		res = wait_done(loop, storage_pubsub_node_store(st, host, jid, &ni, done_cb, &w), &w);
		free(cfgtext);
		free(affs);
		free(subs);
		strlist_free(&owned);
		strlist_free(&owned_subs);
		/* the items, oldest first; as many as the node keeps */
		size_t keep = cfg.max_items == PS_MAX_ITEMS_MAX || cfg.max_items > set->max_items_per_node
		                      ? set->max_items_per_node
		                      : cfg.max_items;
		ps_config_clear(&cfg);
		size_t skip = nitems > keep ? nitems - keep : 0, k = 0;
		if (skip > 0)
			buf_printf(
			        report,
			        "note: %s: PEP node %s keeps %zu items; the %zu oldest of the file are left "
			        "out\n",
			        jid, pn->name, keep, skip);
		uint64_t seq = 0;
		for (struct xml_node *it = pn->items != NULL ? xml_first_element(pn->items) : NULL;
		     it != NULL && res == STORAGE_OK; it = xml_next(it, NULL, NULL)) {
			if (k++ < skip)
				continue;
			const char *id = xml_attr(it, "id");
			if (strcmp(it->name, "item") != 0 || id == NULL || *id == '\0') {
				buf_printf(report, "note: %s: an item of PEP node %s has no id; left out\n",
				           jid, pn->name);
				continue;
			}
			struct xml_node *payload = xml_first_element(it);
			char *text = payload != NULL ? xml_to_string(payload, NULL) : xstrdup("");
			if (strlen(text) > set->max_item_size) {
				buf_printf(report,
				           "note: %s: item %s of PEP node %s is larger than pubsub "
				           "max_item_size; left out\n",
				           jid, id, pn->name);
				free(text);
				continue;
			}
			struct pubsub_item pi = { .node = pn->name,
				                  .id = id,
				                  .publisher = jid,
				                  .published = now,
				                  .seq = ++seq,
				                  .payload = text };
			struct wait iw = { 0 };
			res = wait_done(loop,
			                storage_pubsub_item_store(st, host, jid, &pi, NULL, 0, done_cb, &iw),
			                &iw);
			free(text);
		}
	}
	free(nodes);
	return res;
}

/* Store everything of <user/> u (whose account does not exist yet) at
 * host.  0; -1 with *error_r when the user is not usable (nothing of it is
 * stored) or a storage call for it fails; -2 with *error_r when the store
 * fails for a reason that will not go away for the next user
 * (STORAGE_TEMPFAIL). */
static int import_user(struct ev_loop *loop, struct storage *st, const struct host_config *hc,
                       const char *user, const struct xml_node *u, struct buf *report, char **error_r)
{
	const char *host = hc->name;
	struct storage_account acc;
	char *why = NULL;
	char *jid = xasprintf("%s@%s", user, host);
	if (account_from_xml(u, hc, &acc, report, jid, &why) < 0) {
		*error_r = xasprintf("%s: %s", jid, why);
		free(why);
		free(jid);
		storage_account_clear(&acc);
		return -1;
	}
	struct wait w = { 0 };
	enum storage_result res =
	        wait_done(loop, storage_account_create(st, host, user, &acc, done_cb, &w), &w);
	storage_account_clear(&acc);
	if (res != STORAGE_OK) {
		*error_r =
		        xasprintf("%s: cannot create the account: storage %s", jid, storage_result_str(res));
		free(jid);
		return res == STORAGE_TEMPFAIL ? -2 : -1;
	}
	struct strlist pending = { 0 };
	pending_from_xml(u, &pending);
	bool has_blocklist = xml_child(u, "blocklist", NS_BLOCKING) != NULL;
	/* PEP, when it runs on the host and the store keeps it */
	struct pubsub_settings *pep = NULL;
	if (has_pep(u)) {
		char *perr = NULL;
		pep = module_host_settings(hc, "pubsub", &perr);
		const char *off = perr != NULL               ? perr
		                  : pep == NULL || !pep->pep ? "PEP does not run on the host"
		                  : !storage_has_area(st, STORAGE_AREA_PUBSUB)
		                          ? "the store keeps no pubsub data"
		                          : NULL;
		if (off != NULL) {
			buf_printf(report, "note: %s: the PEP nodes are not imported (%s)\n", jid, off);
			module_host_settings_free("pubsub", (void **)&pep);
		}
		free(perr);
	}
	const char *what = NULL;
	for (struct xml_node *c = xml_first_element(u); c != NULL && res == STORAGE_OK;
	     c = xml_next(c, NULL, NULL)) {
		if (xml_is(c, "query", NS_ROSTER)) {
			what = "roster";
			for (struct xml_node *x = xml_child(c, "item", NULL); x != NULL && res == STORAGE_OK;
			     x = xml_next(x, "item", NULL)) {
				struct roster_item it;
				if (!roster_item_from_xml(x, &it)) {
					buf_printf(
					        report,
					        "note: %s: a roster item without a valid JID is left out\n",
					        jid);
					roster_item_clear(&it);
					continue;
				}
				if (strlist_contains(&pending, it.jid)) {
					it.ask_in = true;
					it.ask_in_stanza = pending_said(u, it.jid);
					list_remove(&pending, it.jid);
				}
				struct wait rw = { 0 };
				res = wait_done(loop, storage_roster_set(st, host, user, &it, done_cb, &rw),
				                &rw);
				roster_item_clear(&it);
			}
		} else if (xml_is(c, "vCard", NS_VCARD)) {
			what = "vCard";
			char *text = xml_to_string(c, NULL);
			struct wait vw = { 0 };
			res = wait_done(loop, storage_vcard_set(st, host, user, text, done_cb, &vw), &vw);
			free(text);
		} else if (xml_is(c, "offline-messages", NULL)) {
			what = "offline messages";
			for (struct xml_node *m = xml_child(c, "message", NULL);
			     m != NULL && res == STORAGE_OK; m = xml_next(m, "message", NULL)) {
				char *text = xml_to_string(m, NS_CLIENT);
				const char *from = xml_attr(m, "from");
				struct wait ow = { 0 };
				res = wait_done(loop,
				                storage_offline_store(st, host, user,
				                                      from != NULL ? from : "", text, 0,
				                                      done_cb, &ow),
				                &ow);
				free(text);
			}
		} else if (xml_is(c, "query", NS_PRIVATE)) {
			what = "private XML";
			size_t n = xml_element_count(c), k = 0;
			if (n == 0)
				continue;
			struct private_item *items = xcalloc(n, sizeof(*items));
			char **texts = xcalloc(n, sizeof(char *));
			for (struct xml_node *e = xml_first_element(c); e != NULL;
			     e = xml_next(e, NULL, NULL)) {
				bool dup = false;
				for (size_t i = 0; i < k; i++)
					dup = dup || strcmp(items[i].ns, e->ns) == 0;
				if (dup || *e->ns == '\0')
					continue;
				texts[k] = xml_to_string(e, NULL);
				items[k] = (struct private_item){ e->ns, texts[k] };
				k++;
			}
			if (k > 0) {
				struct wait pw = { 0 };
				res = wait_done(loop,
				                storage_private_set(st, host, user, items, k, done_cb, &pw),
				                &pw);
			}
			for (size_t i = 0; i < k; i++)
				free(texts[i]);
			free(texts);
			free(items);
		} else if (xml_is(c, "query", NS_PRIVACY)) {
			what = "privacy lists";
			res = import_privacy(loop, st, host, user, c, has_blocklist, report);
		} else if (xml_is(c, "blocklist", NS_BLOCKING)) {
			what = "block list";
			struct strlist jids = { 0 };
			for (struct xml_node *x = xml_child(c, "item", NULL); x != NULL;
			     x = xml_next(x, "item", NULL)) {
				struct jid j;
				const char *err;
				const char *s = xml_attr(x, "jid");
				if (s == NULL || jid_parse(s, &j, &err) != 0)
					continue;
				char *norm = jid_to_string(&j);
				jid_clear(&j);
				if (strlist_contains(&jids, norm))
					free(norm);
				else
					list_take(&jids, norm);
			}
			res = store_blocklist(loop, st, host, user, &jids);
			strlist_free(&jids);
		} else if (xml_is(c, "pubsub", NS_PUBSUB) || xml_is(c, "pubsub", NS_PUBSUB_OWNER)) {
			/* all at once, after the loop */
		} else if (!xml_is(c, "scram-credentials", NS_PIE_SCRAM) &&
		           strcmp(c->name, "presence") != 0) {
			buf_printf(report,
			           "note: %s: <%s xmlns='%s'/> is not imported (Parley does not keep it)\n",
			           jid, c->name, c->ns);
		}
	}
	bool pep_stored = false;
	if (pep != NULL && res == STORAGE_OK) {
		what = "PEP nodes";
		pep_stored = true;
		res = import_pep(loop, st, pep, host, jid, u, report);
	}
	module_host_settings_free("pubsub", (void **)&pep);
	/* The requests from contacts not in the roster: an item of their own,
	 * which the user's next initial presence delivers (RFC 6121 3.1.3). */
	for (size_t i = 0; i < pending.count && res == STORAGE_OK; i++) {
		what = "pending subscription requests";
		struct roster_item it = { .jid = pending.items[i],
			                  .subscription = SUB_NONE,
			                  .ask_in = true,
			                  .ask_in_stanza = pending_said(u, pending.items[i]) };
		struct wait rw = { 0 };
		res = wait_done(loop, storage_roster_set(st, host, user, &it, done_cb, &rw), &rw);
		free(it.ask_in_stanza);
	}
	strlist_free(&pending);
	int rc = 0;
	if (res != STORAGE_OK) {
		/* Not half a user: without its account, a second run imports it
		 * whole instead of skipping it.  (PEP is not kept with the
		 * account: its nodes go first.) */
		if (pep_stored) {
			struct wait pw = { 0 };
			(void)wait_done(loop, storage_pubsub_owner_delete(st, host, jid, done_cb, &pw), &pw);
		}
		struct wait rw = { 0 };
		enum storage_result rres =
		        wait_done(loop, storage_account_remove(st, host, user, done_cb, &rw), &rw);
		*error_r = xasprintf("%s: cannot store the %s: storage %s (%s)", jid,
		                     what != NULL ? what : "data", storage_result_str(res),
		                     rres == STORAGE_OK ? "the account is removed again"
		                                        : "and the account cannot be removed: remove it with "
		                                          "parleyctl unregister before importing it again");
		rc = res == STORAGE_TEMPFAIL ? -2 : -1;
	}
	free(jid);
	return rc;
}

static bool account_exists(struct ev_loop *loop, struct storage *st, const char *host, const char *user,
                           enum storage_result *res_r)
{
	struct wait w = { .into = xml_new("user", NS_PIE) };
	storage_account_get(st, host, user, account_cb, &w);
	wait_run(loop, &w);
	xml_unref(&w.into);
	*res_r = w.res;
	return w.res == STORAGE_OK;
}

/* For the importers of other servers' databases (ctl-ejabberd-sql.c):
 * import_user and account_exists on a <user/> built from their rows. */
int xep0227_import_user(struct ev_loop *loop, struct storage *st, const struct host_config *hc,
                        const char *user, const struct xml_node *u, struct buf *report, char **error_r)
{
	return import_user(loop, st, hc, user, u, report, error_r);
}

bool xep0227_account_exists(struct ev_loop *loop, struct storage *st, const char *host, const char *user,
                            enum storage_result *res_r)
{
	return account_exists(loop, st, host, user, res_r);
}

/* ---- includes ------------------------------------------------------------------------------ */


/* The real paths of the files the <xi:include/>s of doc (read from the
 * file at real, a real path) name, in document order.  Every include must
 * name a file in the folder of that file or below it (ejabberd names the
 * host files next to it); else -1 with *error_r and nothing in out. */
static int resolve_includes(const char *real, const struct xml_node *doc, struct strlist *out, char **error_r)
{
	size_t dirlen = (size_t)(strrchr(real, '/') - real);
	for (struct xml_node *c = xml_child(doc, "include", NS_XINCLUDE); c != NULL;
	     c = xml_next(c, "include", NS_XINCLUDE)) {
		const char *href = xml_attr(c, "href"), *parse = xml_attr(c, "parse");
		const char *why = NULL;
		char *target = NULL;
		if (href == NULL || *href == '\0')
			why = "has no href";
		else if (xml_attr(c, "xpointer") != NULL || (parse != NULL && strcmp(parse, "xml") != 0))
			why = "asks for a part of a file or for text (not followed)";
		else if (*href == '/' || strstr(href, "://") != NULL)
			why = "points outside the folder of the file (only relative names are followed)";
		if (why == NULL) {
			char *joined = xasprintf("%.*s/%s", (int)dirlen, real, href);
			target = realpath(joined, NULL);
			free(joined);
			if (target == NULL)
				why = strerror(errno);
			else if (strncmp(target, real, dirlen) != 0 || target[dirlen] != '/')
				why = "points outside the folder of the file";
		}
		if (why != NULL) {
			*error_r = xasprintf("%s: <xi:include href='%s'/> %s%s; nothing of the file is "
			                     "imported",
			                     real, href != NULL ? href : "",
			                     why[0] >= 'A' && why[0] <= 'Z' ? ": " : "", why);
			free(target);
			strlist_free(out);
			return -1;
		}
		list_take(out, target);
	}
	return 0;
}

/* ---- the import run ---------------------------------------------------------------------- */

struct seen_user {
	struct htab_link link;
	char jid[];
};

struct import_run {
	struct ev_loop *loop;
	const struct parley_config *cfg;
	struct buf *report;
	struct buf failures;       /* the first failures, for the error message */
	unsigned nfailures;        /* failures of users and of files */
	unsigned users;            /* <user/>s met */
	unsigned created, skipped; /* created; skipped as they existed */
	bool stop;                 /* a store failed: nothing more is tried */
	struct strlist files;      /* real paths of the files read */
	struct htab seen;          /* struct seen_user: user@host met */
};

#define FAILURES_SHOWN 10

/* A failure (msg is taken over): listed in the report, and among the
 * first ones in the error message. */
static void run_fail(struct import_run *r, char *msg)
{
	buf_printf(r->report, "failed: %s\n", msg);
	if (r->nfailures < FAILURES_SHOWN)
		buf_printf(&r->failures, "%s%s", r->failures.len > 0 ? "\n" : "", msg);
	r->nfailures++;
	free(msg);
}

/* Records user@host as met; false when it was met before. */
static bool run_first_sight(struct import_run *r, const char *jid)
{
	uint32_t h = hash_str(jid);
	for (struct htab_link *l = htab_chain(&r->seen, h); l != NULL; l = l->next) {
		struct seen_user *s = (struct seen_user *)l;
		if (l->hash == h && strcmp(s->jid, jid) == 0)
			return false;
	}
	size_t len = strlen(jid);
	struct seen_user *s = xmalloc(sizeof(*s) + len + 1);
	memcpy(s->jid, jid, len + 1);
	htab_add(&r->seen, &s->link, h);
	return true;
}

/* The summary line into the report, and the result of the run: 0 when
 * nothing failed, or -1 with a malloc'd *error_r listing the first
 * failures.  Frees what r holds. */
static int run_finish(struct import_run *r, char **error_r)
{
	buf_printf(r->report, "imported %u user%s, skipped %u", r->created, r->created == 1 ? "" : "s",
	           r->skipped);
	if (r->nfailures > 0)
		buf_printf(r->report, ", %u failure%s", r->nfailures, r->nfailures == 1 ? "" : "s");
	buf_append_str(r->report, "\n");
	int rc = 0;
	if (r->nfailures > 0) {
		char *counts = r->users > 0 ? xasprintf("%u of the %u user%s read imported", r->created,
		                                        r->users, r->users == 1 ? "" : "s")
		                            : xstrdup("no user read");
		*error_r = xasprintf("%s%s\n%u failure%s%s; %s", r->failures.data,
		                     r->nfailures > FAILURES_SHOWN ? "\n..." : "", r->nfailures,
		                     r->nfailures == 1 ? "" : "s", r->stop ? ", the import stopped" : "",
		                     counts);
		free(counts);
		rc = -1;
	}
	buf_free(&r->failures);
	strlist_free(&r->files);
	for (struct htab_link *l; (l = htab_any(&r->seen)) != NULL;) {
		htab_remove(&r->seen, l);
		free(l);
	}
	htab_free(&r->seen);
	return rc;
}

/* Import the <user/> u of host hc (whose store is st) read from path. */
static void import_user_el(struct import_run *r, const char *path, const struct host_config *hc,
                           struct storage *st, const struct xml_node *u)
{
	char *err = NULL;
	const char *name = xml_attr(u, "name");
	char *user = name != NULL ? jid_nodeprep(name) : NULL;
	if (user == NULL || *user == '\0') {
		run_fail(r, xasprintf("%s: a user of host %s has no valid name ('%s')", path, hc->name,
		                      name != NULL ? name : ""));
		free(user);
		return;
	}
	char *jid = xasprintf("%s@%s", user, hc->name);
	enum storage_result res;
	if (!run_first_sight(r, jid)) {
		run_fail(r, xasprintf("%s: appears more than once (again in %s); only the first is "
		                      "imported",
		                      jid, path));
	} else if (account_exists(r->loop, st, hc->name, user, &res)) {
		buf_printf(r->report, "skipped: %s exists\n", jid);
		r->skipped++;
	} else if (res != STORAGE_NOT_FOUND) {
		run_fail(r,
		         xasprintf("%s: cannot read the account: storage %s", jid, storage_result_str(res)));
		r->stop = res == STORAGE_TEMPFAIL;
	} else {
		int rc = import_user(r->loop, st, hc, user, u, r->report, &err);
		if (rc == 0) {
			r->created++;
		} else {
			run_fail(r, err);
			r->stop = rc == -2;
		}
	}
	free(jid);
	free(user);
}

/* ---- reading the files ------------------------------------------------------------------- */

/* A file is read in chunks by expat, walled as the stream parser is (a DTD
 * and entity declarations are refused, so nothing expands), and never held
 * whole: the check pass builds no tree, the import pass one <user/> at a
 * time, freed once it is stored. */
#define READ_CHUNK 65536
#define PIE_MAX_DEPTH 1024
#define PIE_MAX_ATTRS 1024
/* The most bytes of the file one <user/> may take: its tree is what the
 * import holds in memory. */
#define USER_MAX_MB 64

struct pie_reader {
	XML_Parser xp;
	const char *path;
	struct import_run *r; /* NULL in the check pass */
	char *error;          /* what stopped the parse (not a XEP-0227 document ...) */
	unsigned depth;       /* open elements, the root included */
	unsigned host_depth;  /* 1 for a <host/> alone, else 2 */
	bool in_host;         /* inside a <host/> at host_depth */
	/* the check pass */
	struct xml_node *includes; /* copies of the root's <xi:include/>s */
	struct strlist hosts;      /* the jid of every <host/> ("" when none) */
	/* the import pass */
	const struct host_config *hc;
	struct storage *st;
	struct xml_node *user, *cur; /* the <user/> being read, its open element */
	struct buf text;             /* character data not yet added to cur */
	long long user_start;        /* byte index of the <user/> */
	unsigned skip_depth;         /* > 0: inside a <user/> left out, at this depth */
};

static void reader_stop(struct pie_reader *p, char *error)
{
	if (p->error == NULL)
		p->error = error;
	else
		free(error);
	XML_StopParser(p->xp, XML_FALSE);
}

static void XMLCALL on_doctype(void *data, const XML_Char *name, const XML_Char *sysid, const XML_Char *pubid,
                               int has_internal_subset)
{
	(void)name, (void)sysid, (void)pubid, (void)has_internal_subset;
	struct pie_reader *p = data;
	reader_stop(p, xasprintf("%s: not a XEP-0227 document (a document type declaration, whose "
	                         "entities could expand without bound; remove it)",
	                         p->path));
}

static void XMLCALL on_entity_decl(void *data, const XML_Char *name, int is_pe, const XML_Char *value,
                                   int value_len, const XML_Char *base, const XML_Char *sysid,
                                   const XML_Char *pubid, const XML_Char *notation)
{
	(void)name, (void)is_pe, (void)value, (void)value_len, (void)base, (void)sysid, (void)pubid,
	        (void)notation;
	struct pie_reader *p = data;
	reader_stop(p, xasprintf("%s: not a XEP-0227 document (an entity declaration)", p->path));
}

static void XMLCALL on_default(void *data, const XML_Char *s, int len)
{
	(void)data, (void)s, (void)len; /* nothing is expanded behind our back */
}

static void flush_text(struct pie_reader *p)
{
	if (p->text.len > 0 && p->cur != NULL)
		xml_add_text(p->cur, p->text.data, p->text.len);
	if (p->text.len > 0)
		explicit_bzero(p->text.data, p->text.len);
	buf_reset(&p->text);
}

/* Leave out the <user/> being read when it has grown too large. */
static bool user_too_large(struct pie_reader *p)
{
	if (XML_GetCurrentByteIndex(p->xp) - p->user_start <= (long long)USER_MAX_MB << 20)
		return false;
	const char *name = xml_attr(p->user, "name");
	run_fail(p->r, xasprintf("%s: the user '%s' of host %s takes more than %u MB of the file; it is "
	                         "not imported",
	                         p->path, name != NULL ? name : "", p->hc->name, USER_MAX_MB));
	flush_text(p);
	xep0227_wipe_secrets(p->user);
	xml_unref(&p->user);
	p->cur = NULL;
	p->skip_depth = p->host_depth + 1;
	return true;
}

static void XMLCALL on_start(void *data, const XML_Char *name, const XML_Char **atts)
{
	struct pie_reader *p = data;
	unsigned d = ++p->depth;
	if (d > PIE_MAX_DEPTH) {
		reader_stop(p, xasprintf("%s: not a XEP-0227 document (elements nested deeper than %u)",
		                         p->path, PIE_MAX_DEPTH));
		return;
	}
	unsigned nattrs = 0;
	while (atts[nattrs] != NULL)
		nattrs++;
	if (nattrs / 2 > PIE_MAX_ATTRS) {
		reader_stop(p, xasprintf("%s: not a XEP-0227 document (more than %u attributes on one "
		                         "element)",
		                         p->path, PIE_MAX_ATTRS));
		return;
	}
	if (p->skip_depth > 0)
		return;
	if (p->user != NULL) {
		flush_text(p);
		p->cur = xml_element_from_expat(p->cur, name, atts);
		user_too_large(p);
		return;
	}
	if (d > 1 && (d > p->host_depth + 1 || (d == p->host_depth + 1 && !p->in_host)))
		return; /* not something the import reads */
	struct xml_node *el = xml_element_from_expat(NULL, name, atts);
	if (d == 1) {
		if (!xml_is(el, "server-data", NS_PIE) && !xml_is(el, "host", NS_PIE)) {
			reader_stop(p, xasprintf("%s: not a XEP-0227 document (the root is <%s xmlns='%s'/>, "
			                         "not <server-data/> or <host/> in " NS_PIE ")",
			                         p->path, el->name, el->ns));
			xml_unref(&el);
			return;
		}
		p->host_depth = xml_is(el, "host", NS_PIE) ? 1 : 2;
	}
	if (d == 2 && p->host_depth == 2 && xml_is(el, "include", NS_XINCLUDE)) {
		if (p->r == NULL) {
			if (p->includes == NULL)
				p->includes = xml_new("server-data", NS_PIE);
			xml_append_copy(p->includes, el);
		}
	} else if (d == p->host_depth && (d == 1 || strcmp(el->name, "host") == 0)) {
		p->in_host = true;
		const char *jid = xml_attr(el, "jid");
		if (p->r == NULL) {
			list_take(&p->hosts, xstrdup(jid != NULL ? jid : ""));
		} else {
			/* Known, as the check pass made sure, unless the file changed
			 * since. */
			char *domain = jid_nameprep(jid);
			p->hc = domain != NULL ? config_host(p->r->cfg, domain) : NULL;
			free(domain);
			char *err = NULL;
			if (p->hc == NULL) {
				run_fail(p->r, xasprintf("%s: the host '%s' is not configured (did the file "
				                         "change during the import?)",
				                         p->path, jid != NULL ? jid : ""));
				p->r->stop = true;
				reader_stop(p, NULL);
				xml_unref(&el);
				return;
			}
			p->st = open_store(p->r->loop, p->hc, &err);
			if (p->st == NULL) {
				run_fail(p->r, err);
				p->r->stop = true;
				reader_stop(p, NULL);
			}
		}
	} else if (d == p->host_depth + 1 && strcmp(el->name, "user") == 0 && p->r != NULL) {
		p->r->users++;
		p->user = p->cur = el;
		el = NULL;
		p->user_start = XML_GetCurrentByteIndex(p->xp);
	}
	xml_unref(&el);
}

static void XMLCALL on_end(void *data, const XML_Char *name)
{
	(void)name;
	struct pie_reader *p = data;
	unsigned d = p->depth--;
	if (p->skip_depth > 0) {
		if (d == p->skip_depth)
			p->skip_depth = 0;
		return;
	}
	if (p->user != NULL) {
		flush_text(p);
		if (user_too_large(p)) {
			/* at </user> itself the user has ended: nothing is left to skip */
			if (d == p->host_depth + 1)
				p->skip_depth = 0;
			return;
		}
		if (d > p->host_depth + 1) {
			p->cur = p->cur->parent;
			return;
		}
		import_user_el(p->r, p->path, p->hc, p->st, p->user);
		xep0227_wipe_secrets(p->user);
		xml_unref(&p->user);
		p->cur = NULL;
		if (p->r->stop)
			reader_stop(p, NULL);
	} else if (d == p->host_depth && p->in_host) {
		p->in_host = false;
		if (p->st != NULL)
			storage_close(&p->st);
	}
}

static void XMLCALL on_text(void *data, const XML_Char *s, int len)
{
	struct pie_reader *p = data;
	if (p->user == NULL || p->skip_depth > 0)
		return;
	/* Added to the tree in one piece at the next tag: xml_add_text
	 * copies what is there already on each call. */
	buf_append(&p->text, s, (size_t)len);
	user_too_large(p);
}

/* Read the file at path through p: the check pass (p->r NULL) or the
 * import pass.  0; -1 with p->error (NULL when the import stopped). */
static int reader_run(struct pie_reader *p)
{
	FILE *f = fopen(p->path, "r");
	if (f == NULL) {
		p->error = xasprintf("%s: %s", p->path, strerror(errno));
		return -1;
	}
	p->xp = XML_ParserCreateNS(NULL, XML_NS_SEP);
	if (p->xp == NULL)
		log_fatal("cannot create an XML parser (out of memory)");
	XML_SetUserData(p->xp, p);
	XML_SetReturnNSTriplet(p->xp, XML_TRUE);
	XML_SetParamEntityParsing(p->xp, XML_PARAM_ENTITY_PARSING_NEVER);
	XML_SetElementHandler(p->xp, on_start, on_end);
	XML_SetCharacterDataHandler(p->xp, on_text);
	XML_SetStartDoctypeDeclHandler(p->xp, on_doctype);
	XML_SetEntityDeclHandler(p->xp, on_entity_decl);
	XML_SetDefaultHandler(p->xp, on_default);
	char *chunk = xmalloc(READ_CHUNK);
	size_t n, total = 0;
	bool ok = true;
	do {
		n = fread(chunk, 1, READ_CHUNK, f);
		if (n == 0 && ferror(f)) {
			p->error = xasprintf("%s: %s", p->path, strerror(errno));
			ok = false;
			break;
		}
		if (n == 0 && total == 0) {
			p->error = xasprintf("%s: empty file", p->path);
			ok = false;
			break;
		}
		if (total == 0 && p->r == NULL) {
			/* Said before the parser meets it: a DTD right at the start. */
			size_t off = 0;
			if (n >= 3 && memcmp(chunk, "\xEF\xBB\xBF", 3) == 0)
				off = 3;
			while (off < n && strchr(" \t\r\n", chunk[off]) != NULL)
				off++;
			if (n - off >= 5 && memcmp(chunk + off, "<?xml", 5) == 0) {
				const char *end = memmem(chunk + off, n - off, "?>", 2);
				off = end != NULL ? (size_t)(end - chunk) + 2 : n;
			}
			while (off < n && strchr(" \t\r\n", chunk[off]) != NULL)
				off++;
			if (n - off >= 9 && memcmp(chunk + off, "<!DOCTYPE", 9) == 0) {
				p->error = xasprintf("%s: not accepted: it has a DTD (<!DOCTYPE ...>), whose "
				                     "entities could expand without bound; remove it",
				                     p->path);
				ok = false;
				break;
			}
		}
		total += n;
		if (XML_Parse(p->xp, chunk, (int)n, n == 0) != XML_STATUS_OK) {
			if (p->error == NULL && XML_GetErrorCode(p->xp) != XML_ERROR_ABORTED)
				p->error = xasprintf("%s: not a XEP-0227 document (%s at line %lu)", p->path,
				                     XML_ErrorString(XML_GetErrorCode(p->xp)),
				                     (unsigned long)XML_GetCurrentLineNumber(p->xp));
			ok = false;
			break;
		}
	} while (n > 0);
	explicit_bzero(chunk, READ_CHUNK);
	free(chunk);
	fclose(f);
	flush_text(p);
	buf_free(&p->text);
	xep0227_wipe_secrets(p->user);
	xml_unref(&p->user);
	if (p->st != NULL)
		storage_close(&p->st);
	XML_ParserFree(p->xp);
	p->xp = NULL;
	return ok ? 0 : -1;
}

/* Import the file at path; its includes too when follow is set.  The file
 * is read twice: once to check it whole (well-formed, its includes, its
 * hosts) with nothing stored, then to import it one <user/> at a time. */
static void import_path(struct import_run *r, const char *path, bool follow)
{
	char *real = realpath(path, NULL);
	if (real == NULL) {
		run_fail(r, xasprintf("%s: %s", path, strerror(errno)));
		return;
	}
	if (strlist_contains(&r->files, real)) {
		free(real); /* read already, as an include or by name */
		return;
	}
	list_take(&r->files, real);
	struct pie_reader check = { .path = path };
	struct strlist includes = { 0 };
	char *err = NULL;
	if (reader_run(&check) < 0) {
		run_fail(r, check.error);
		goto out;
	}
	if (check.includes != NULL && !follow) {
		run_fail(r, xasprintf("%s: an included file includes others (not followed); nothing of it "
		                      "is imported",
		                      path));
		goto out;
	}
	if (check.includes != NULL && resolve_includes(real, check.includes, &includes, &err) < 0) {
		run_fail(r, err);
		goto out;
	}
	/* Every host first: nothing is stored from a file naming one we lack. */
	bool known = true;
	for (size_t i = 0; i < check.hosts.count && known; i++) {
		const char *jid = check.hosts.items[i];
		char *domain = *jid != '\0' ? jid_nameprep(jid) : NULL;
		known = domain != NULL && config_host(r->cfg, domain) != NULL;
		free(domain);
		if (!known)
			run_fail(r,
			         xasprintf("%s: host %s is not in %s (add it, or edit the file); nothing of "
			                   "the file is imported",
			                   path, *jid != '\0' ? jid : "(no jid)", r->cfg->file));
	}
	if (known) {
		struct pie_reader imp = { .path = path, .r = r };
		if (reader_run(&imp) < 0 && imp.error != NULL) {
			/* The file changed since it was checked. */
			run_fail(r, imp.error);
			r->stop = true;
		}
	}
	for (size_t i = 0; i < includes.count && !r->stop; i++)
		import_path(r, includes.items[i], false);
out:
	xml_unref(&check.includes);
	strlist_free(&check.hosts);
	strlist_free(&includes);
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int xep0227_import(struct ev_loop *loop, const struct parley_config *cfg, const char *path,
                   struct buf *report, char **error_r)
{
	*error_r = NULL;
	struct import_run r = { .loop = loop, .cfg = cfg, .report = report };
	struct stat sb;
	if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
		DIR *d = opendir(path);
		if (d == NULL) {
			*error_r = xasprintf("%s: %s", path, strerror(errno));
			return -1;
		}
		struct strlist files = { 0 };
		struct dirent *e;
		while ((e = readdir(d)) != NULL) {
			size_t len = strlen(e->d_name);
			if (e->d_name[0] == '.' || len < 5 || strcmp(e->d_name + len - 4, ".xml") != 0)
				continue;
			list_take(&files, xasprintf("%s/%s", path, e->d_name));
		}
		closedir(d);
		if (files.count == 0) {
			*error_r = xasprintf("%s: no .xml file in it", path);
			return -1;
		}
		/* In name order: ejabberd's <server-data/> file sorts before the
		 * host files it includes, which are then not read again. */
		qsort(files.items, files.count, sizeof(char *), cmp_name);
		for (size_t i = 0; i < files.count && !r.stop; i++)
			import_path(&r, files.items[i], true);
		strlist_free(&files);
	} else {
		import_path(&r, path, true);
	}
	if (r.users == 0 && r.nfailures == 0)
		run_fail(&r, xasprintf("%s: no <user/> in it: nothing to import", path));
	return run_finish(&r, error_r);
}

/* ---- the import run for other sources (ctl-xep0227.h) ------------------------------------ */

struct xep0227_run {
	struct import_run r;
};

struct xep0227_run *xep0227_run_new(struct ev_loop *loop, const struct parley_config *cfg, struct buf *report)
{
	struct xep0227_run *run = xcalloc(1, sizeof(*run));
	run->r = (struct import_run){ .loop = loop, .cfg = cfg, .report = report };
	return run;
}

enum xep0227_user_result xep0227_run_user(struct xep0227_run *run, struct storage *st,
                                          const struct host_config *hc, const char *where,
                                          const struct xml_node *u)
{
	unsigned created = run->r.created, skipped = run->r.skipped;
	run->r.users++;
	import_user_el(&run->r, where, hc, st, u);
	return run->r.created > created   ? XEP0227_USER_CREATED
	       : run->r.skipped > skipped ? XEP0227_USER_SKIPPED
	                                  : XEP0227_USER_FAILED;
}

void xep0227_run_fail(struct xep0227_run *run, char *msg, bool stop)
{
	run_fail(&run->r, msg);
	run->r.stop = run->r.stop || stop;
}

bool xep0227_run_stopped(const struct xep0227_run *run)
{
	return run->r.stop;
}

int xep0227_run_finish(struct xep0227_run **runp, char **error_r)
{
	struct xep0227_run *run = *runp;
	*runp = NULL;
	*error_r = NULL;
	int rc = run_finish(&run->r, error_r);
	free(run);
	return rc;
}

/* ---- rename-domain ----------------------------------------------------------------------------- */

/* jid_s with domain old replaced by new (malloc'd), or NULL when it is not
 * at old (or does not parse). */
static char *moved_jid(const char *jid_s, const char *old, const char *new)
{
	struct jid j;
	const char *err;
	if (jid_s == NULL || jid_parse(jid_s, &j, &err) != 0)
		return NULL;
	char *out = NULL;
	if (strcmp(j.domain, old) == 0) {
		struct jid n = { 0 };
		jid_set(&n, j.node, new, j.resource);
		out = jid_to_string(&n);
		jid_clear(&n);
	}
	jid_clear(&j);
	return out;
}

/* Rewrite, in a <user/> tree, every JID at old: roster and block list
 * items, privacy items of type jid, message from/to (and delay from). */
static void rewrite_tree(struct xml_node *el, const char *old, const char *new)
{
	static const char *const attrs[] = { "jid", "from", "to" };
	for (size_t i = 0; i < ARRAY_SIZE(attrs); i++) {
		char *m = moved_jid(xml_attr(el, attrs[i]), old, new);
		if (m != NULL)
			xml_set_attr(el, attrs[i], m);
		free(m);
	}
	const char *type = xml_attr(el, "type");
	if (xml_is(el, "item", NS_PRIVACY) && type != NULL && strcmp(type, "jid") == 0) {
		char *m = moved_jid(xml_attr(el, "value"), old, new);
		if (m != NULL)
			xml_set_attr(el, "value", m);
		free(m);
	}
	for (struct xml_node *c = xml_first_element(el); c != NULL; c = xml_next(c, NULL, NULL))
		rewrite_tree(c, old, new);
}

struct last_wait {
	struct wait w;
	int64_t seconds;
	char *status;
};

static void last_cb(enum storage_result res, const struct last_activity *last, void *ctx)
{
	struct last_wait *lw = ctx;
	lw->w.res = res;
	lw->w.done = true;
	if (res == STORAGE_OK) {
		lw->seconds = last->seconds;
		lw->status = xstrdup(last->status);
	}
}

/* Rewrite the references to old in user's roster, block list and privacy
 * lists (user stays where it is).  Counts rewritten JIDs into *n_r. */
static int rewrite_refs(struct ev_loop *loop, struct storage *st, const char *host, const char *user,
                        const char *old, const char *new, unsigned *n_r, char **error_r)
{
	struct xml_node *u = xml_new("user", NS_PIE);
	enum storage_result res = STORAGE_OK;
	const char *what = "roster";
	struct wait w = { .into = u };
	storage_roster_get(st, host, user, roster_cb, &w);
	wait_run(loop, &w);
	res = w.res;
	struct xml_node *q = res == STORAGE_OK ? xml_child(u, "query", NS_ROSTER) : NULL;
	for (struct xml_node *x = q != NULL ? xml_child(q, "item", NULL) : NULL;
	     x != NULL && res == STORAGE_OK; x = xml_next(x, "item", NULL)) {
		char *m = moved_jid(xml_attr(x, "jid"), old, new);
		if (m == NULL)
			continue;
		struct roster_item it;
		if (roster_item_from_xml(x, &it)) {
			struct wait rw = { 0 };
			res = wait_done(loop, storage_roster_remove(st, host, user, it.jid, done_cb, &rw),
			                &rw);
			free(it.jid);
			it.jid = m;
			m = NULL;
			struct wait sw = { 0 };
			if (res == STORAGE_OK || res == STORAGE_NOT_FOUND)
				res = wait_done(loop, storage_roster_set(st, host, user, &it, done_cb, &sw),
				                &sw);
			(*n_r)++;
		}
		roster_item_clear(&it);
		free(m);
	}
	xml_unref(&u);
	if (res == STORAGE_OK) {
		what = "block list";
		struct names_wait nw = { 0 };
		storage_blocklist_get(st, host, user, names_cb, &nw);
		wait_run(loop, &nw.w);
		res = nw.w.res;
		struct strlist olds = { 0 }, news = { 0 };
		for (size_t i = 0; res == STORAGE_OK && i < nw.names.count; i++) {
			char *m = moved_jid(nw.names.items[i], old, new);
			if (m == NULL)
				continue;
			olds.items = xrealloc(olds.items, (olds.count + 1) * sizeof(char *));
			olds.items[olds.count++] = xstrdup(nw.names.items[i]);
			news.items = xrealloc(news.items, (news.count + 1) * sizeof(char *));
			news.items[news.count++] = m;
		}
		if (olds.count > 0) {
			struct wait rw = { 0 }, aw = { 0 };
			res = wait_done(loop,
			                storage_blocklist_remove(st, host, user,
			                                         (const char *const *)olds.items, olds.count,
			                                         done_cb, &rw),
			                &rw);
			if (res == STORAGE_OK)
				res = wait_done(loop,
				                storage_blocklist_add(st, host, user,
				                                      (const char *const *)news.items,
				                                      news.count, done_cb, &aw),
				                &aw);
			*n_r += (unsigned)olds.count;
		}
		strlist_free(&olds);
		strlist_free(&news);
		strlist_free(&nw.names);
	}
	if (res == STORAGE_OK) {
		what = "privacy lists";
		u = xml_new("user", NS_PIE);
		struct wait pw = { .into = u };
		storage_privacy_get(st, host, user, privacy_cb, &pw);
		wait_run(loop, &pw);
		res = pw.res;
		q = res == STORAGE_OK ? xml_child(u, "query", NS_PRIVACY) : NULL;
		for (struct xml_node *l = q != NULL ? xml_child(q, "list", NULL) : NULL;
		     l != NULL && res == STORAGE_OK; l = xml_next(l, "list", NULL)) {
			unsigned changed = 0;
			for (struct xml_node *x = xml_child(l, "item", NULL); x != NULL;
			     x = xml_next(x, "item", NULL)) {
				const char *type = xml_attr(x, "type");
				char *m = type != NULL && strcmp(type, "jid") == 0
				                  ? moved_jid(xml_attr(x, "value"), old, new)
				                  : NULL;
				if (m != NULL) {
					xml_set_attr(x, "value", m);
					changed++;
				}
				free(m);
			}
			struct privacy_item *items = NULL;
			size_t n = 0;
			if (changed > 0 && privacy_items_from_xml(l, &items, &n)) {
				struct wait lw = { 0 };
				res = wait_done(loop,
				                storage_privacy_set_list(st, host, user, xml_attr(l, "name"),
				                                         items, n, done_cb, &lw),
				                &lw);
				*n_r += changed;
			}
			free(items);
		}
		xml_unref(&u);
	}
	if (res != STORAGE_OK) {
		*error_r = xasprintf("%s@%s: cannot rewrite the %s: storage %s", user, host, what,
		                     storage_result_str(res));
		return -1;
	}
	return 0;
}

int xep0227_rename_domain(struct ev_loop *loop, const struct parley_config *cfg, const char *old_domain,
                          const char *new_domain, struct buf *report, char **error_r)
{
	*error_r = NULL;
	char *old = jid_nameprep(old_domain), *new = jid_nameprep(new_domain);
	const struct host_config *ohc = old != NULL ? config_host(cfg, old) : NULL;
	const struct host_config *nhc = new != NULL ? config_host(cfg, new) : NULL;
	int rc = -1;
	struct storage *ost = NULL, *nst = NULL;
	struct strlist users = { 0 };
	unsigned moved = 0, kept = 0, refs = 0;
	if (ohc == NULL || nhc == NULL) {
		*error_r = xasprintf("both hosts must be in %s (%s is not)", cfg->file,
		                     ohc == NULL ? old_domain : new_domain);
		goto out;
	}
	if (ohc == nhc) {
		*error_r = xasprintf("the old and the new domain are the same");
		goto out;
	}
	if ((ost = open_store(loop, ohc, error_r)) == NULL ||
	    (nst = open_store(loop, nhc, error_r)) == NULL || list_users(loop, ost, old, &users, error_r) < 0)
		goto out;
	/* Each user: read everything at old, rewrite, store at new, remove at old. */
	for (size_t i = 0; i < users.count; i++) {
		const char *user = users.items[i];
		enum storage_result res;
		if (account_exists(loop, nst, new, user, &res)) {
			buf_printf(report, "not moved: %s@%s exists\n", user, new);
			kept++;
			continue;
		}
		if (res != STORAGE_NOT_FOUND) {
			*error_r = xasprintf("%s@%s: cannot read the account: storage %s", user, new,
			                     storage_result_str(res));
			goto out;
		}
		struct xml_node *u = read_user(loop, ost, old, user, XEP0227_FOR_PARLEY, error_r);
		if (u == NULL)
			goto out;
		rewrite_tree(u, old, new);
		int r = import_user(loop, nst, nhc, user, u, report, error_r);
		xml_unref(&u);
		if (r < 0)
			goto out;
		struct last_wait lw = { 0 };
		storage_last_get(ost, old, user, last_cb, &lw);
		wait_run(loop, &lw.w);
		if (lw.w.res == STORAGE_OK) {
			struct wait sw = { 0 };
			wait_done(loop, storage_last_set(nst, new, user, lw.seconds, lw.status, done_cb, &sw),
			          &sw);
		}
		free(lw.status);
		struct wait rw = { 0 };
		res = wait_done(loop, storage_account_remove(ost, old, user, done_cb, &rw), &rw);
		if (res != STORAGE_OK) {
			*error_r = xasprintf("%s@%s was copied to %s but cannot be removed: storage %s "
			                     "(remove it with parleyctl unregister)",
			                     user, old, new, storage_result_str(res));
			goto out;
		}
		moved++;
	}
	/* References to old in everybody's data. */
	for (size_t h = 0; h < cfg->nhosts; h++) {
		const struct host_config *hc = &cfg->hosts[h];
		if (hc == ohc && kept == 0)
			continue;
		struct storage *st = open_store(loop, hc, error_r);
		if (st == NULL)
			goto out;
		struct strlist names = { 0 };
		int r = list_users(loop, st, hc->name, &names, error_r);
		for (size_t i = 0; r == 0 && i < names.count; i++)
			r = rewrite_refs(loop, st, hc->name, names.items[i], old, new, &refs, error_r);
		strlist_free(&names);
		storage_close(&st);
		if (r < 0)
			goto out;
	}
	buf_printf(report,
	           "moved %u user%s from %s to %s (%u not moved); %u reference%s "
	           "rewritten\n",
	           moved, moved == 1 ? "" : "s", old, new, kept, refs, refs == 1 ? "" : "s");
	rc = 0;
out:
	strlist_free(&users);
	if (ost != NULL)
		storage_close(&ost);
	if (nst != NULL)
		storage_close(&nst);
	free(old);
	free(new);
	return rc;
}
