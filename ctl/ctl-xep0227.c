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
 * lists (a jabber:iq:privacy <query/> with <default/> and <list/>s) and the
 * block list (<blocklist xmlns='urn:xmpp:blocking'/>).
 *
 * Invariants:
 * - Export is deterministic: users, roster items, groups, namespaces,
 *   lists and blocked JIDs come sorted, offline messages in their order,
 *   so export -> import -> export gives the same bytes.
 * - A file is written to PATH.tmp and renamed when complete; an import
 *   parses a whole file before storing anything of it.
 * - Secrets (SCRAM keys, passwords) live only in the document and the
 *   account structs, which are wiped; they are never logged.
 */
#include "ctl-xep0227.h"
#include "lib/jid.h"
#include "lib/log.h"
#include "lib/scram.h"
#include "lib/xml.h"
#include "storage/storage.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define NS_PIE "urn:xmpp:pie:0"
#define NS_PIE_SCRAM "urn:xmpp:pie:0#scram"
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

static void scram_to_xml(struct xml_node *user, const struct scram_credentials *c)
{
	struct xml_node *el = xml_add_child(user, "scram-credentials", NS_PIE_SCRAM);
	char mech[32];
	snprintf(mech, sizeof(mech), "SCRAM-%s", scram_hash_name(c->hash));
	xml_set_attr(el, "mechanism", mech);
	char num[16];
	snprintf(num, sizeof(num), "%u", c->iterations);
	add_text_child(el, "iter-count", num);
	add_text_child(el, "salt", c->salt_b64);
	size_t len = scram_hash_len(c->hash);
	char *k = base64_encode(c->server_key, len);
	add_text_child(el, "server-key", k);
	explicit_bzero(k, strlen(k));
	free(k);
	k = base64_encode(c->stored_key, len);
	add_text_child(el, "stored-key", k);
	explicit_bzero(k, strlen(k));
	free(k);
}

static void account_cb(enum storage_result res, const struct storage_account *acc, void *ctx)
{
	struct wait *w = ctx;
	w->res = res;
	w->done = true;
	if (res != STORAGE_OK)
		return;
	if (acc->plain != NULL)
		xml_set_attr(w->into, "password", acc->plain);
	if (acc->has_sha1)
		scram_to_xml(w->into, &acc->sha1);
	if (acc->has_sha256)
		scram_to_xml(w->into, &acc->sha256);
	if (acc->has_sha512)
		scram_to_xml(w->into, &acc->sha512);
}

/* An item kept only for a pending inbound subscription request: no roster
 * item for the user, and XEP-0227 has no place for it (not exported). */
static bool pending_only(const struct roster_item *it)
{
	return it->ask_in && it->subscription == SUB_NONE && !it->ask_out && !it->approved &&
	       it->name == NULL && it->groups.count == 0;
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
		if (!pending_only(&items[i]))
			shown++;
	if (shown == 0)
		return;
	struct xml_node *q = xml_add_child(w->into, "query", NS_ROSTER);
	for (size_t i = 0; i < n; i++) {
		const struct roster_item *it = &items[i];
		if (pending_only(it))
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
	if (res != STORAGE_OK || jids->count == 0)
		return;
	struct xml_node *bl = xml_add_child(w->into, "blocklist", NS_BLOCKING);
	for (size_t i = 0; i < jids->count; i++)
		xml_set_attr(xml_add_child(bl, "item", NS_BLOCKING), "jid", jids->items[i]);
}

/* Everything of user at host as a <user/> element (the caller unrefs), or
 * NULL with *error_r. */
static struct xml_node *read_user(struct ev_loop *loop, struct storage *st, const char *host,
                                  const char *user, char **error_r)
{
	struct xml_node *u = xml_new("user", NS_PIE);
	xml_set_attr(u, "name", user);
	const char *what = NULL;
	enum storage_result res;
	for (int step = 0; step < 7; step++) {
		struct wait w = { .into = u };
		switch (step) {
		case 0:
			what = "account";
			storage_account_get(st, host, user, account_cb, &w);
			break;
		case 1:
			what = "roster";
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
		default:
			what = "block list";
			storage_blocklist_get(st, host, user, blocklist_cb, &w);
			break;
		}
		wait_run(loop, &w);
		res = w.res;
		if (res != STORAGE_OK) {
			*error_r = xasprintf("%s@%s: cannot read the %s: storage %s", user, host, what,
			                     storage_result_str(res));
			xml_unref(&u);
			return NULL;
		}
	}
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

static int export_host(struct ev_loop *loop, const struct host_config *hc, FILE *f, unsigned *users_r,
                       char **error_r)
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
			struct xml_node *u = read_user(loop, st, hc->name, users.items[i], error_r);
			if (u == NULL) {
				rc = -1;
				break;
			}
			xml_serialize(&b, u, NS_PIE);
			buf_append_str(&b, "\n");
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

/* Write the hosts (NULL-terminated array) into one file at path. */
static int export_file(struct ev_loop *loop, const struct host_config *const *hosts, const char *path,
                       unsigned *users_r, char **error_r)
{
	char *tmp = xasprintf("%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	if (f == NULL) {
		*error_r = xasprintf("%s: %s", tmp, strerror(errno));
		free(tmp);
		return -1;
	}
	fchmod(fileno(f), 0600); /* it holds credentials */
	int rc = 0;
	if (fputs("<?xml version='1.0' encoding='UTF-8'?>\n<server-data xmlns='" NS_PIE "'>\n", f) < 0)
		rc = -1;
	for (size_t i = 0; rc == 0 && hosts[i] != NULL; i++)
		rc = export_host(loop, hosts[i], f, users_r, error_r);
	if (rc == 0 && fputs("</server-data>\n", f) < 0)
		rc = -1;
	if (fflush(f) != 0 || fsync(fileno(f)) != 0)
		rc = -1;
	if (fclose(f) != 0)
		rc = -1;
	if (rc == 0 && rename(tmp, path) != 0)
		rc = -1;
	if (rc < 0) {
		if (*error_r == NULL)
			*error_r = xasprintf("%s: %s", path, strerror(errno));
		unlink(tmp);
	}
	free(tmp);
	return rc;
}

int xep0227_export(struct ev_loop *loop, const struct parley_config *cfg, const char *host, const char *path,
                   struct buf *report, char **error_r)
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
	if (dir) {
		for (size_t i = 0; i < n && rc == 0; i++) {
			const struct host_config *one[2] = { hosts[i], NULL };
			char *file = xasprintf("%s/%s.xml", path, hosts[i]->name);
			rc = export_file(loop, one, file, &users, error_r);
			if (rc == 0)
				buf_printf(report, "%s: host %s\n", file, hosts[i]->name);
			free(file);
		}
	} else {
		rc = export_file(loop, hosts, path, &users, error_r);
		if (rc == 0)
			buf_printf(report, "%s: %zu host%s\n", path, n, n == 1 ? "" : "s");
	}
	free(hosts);
	if (rc == 0)
		buf_printf(report, "exported %u user%s\n", users, users == 1 ? "" : "s");
	return rc;
}

/* ---- import ------------------------------------------------------------------------------- */

static const char *child_text(const struct xml_node *el, const char *name)
{
	const char *t = xml_child_text(el, name, NULL);
	return t;
}

/* One <scram-credentials/> into acc; false when it is not usable. */
static bool scram_from_xml(const struct xml_node *el, struct storage_account *acc)
{
	const char *mech = xml_attr(el, "mechanism");
	enum scram_hash h;
	struct scram_credentials *c;
	if (mech != NULL && strcmp(mech, "SCRAM-SHA-1") == 0) {
		h = SCRAM_SHA1;
		c = &acc->sha1;
	} else if (mech != NULL && strcmp(mech, "SCRAM-SHA-256") == 0) {
		h = SCRAM_SHA256;
		c = &acc->sha256;
	} else if (mech != NULL && strcmp(mech, "SCRAM-SHA-512") == 0) {
		h = SCRAM_SHA512;
		c = &acc->sha512;
	} else {
		return false;
	}
	const char *iter = child_text(el, "iter-count"), *salt = child_text(el, "salt");
	const char *sk = child_text(el, "server-key"), *tk = child_text(el, "stored-key");
	if (iter == NULL || salt == NULL || sk == NULL || tk == NULL)
		return false;
	long it = strtol(iter, NULL, 10);
	unsigned char *k1 = NULL, *k2 = NULL;
	size_t l1 = 0, l2 = 0, len = scram_hash_len(h);
	bool ok = it > 0 && *salt != '\0' && base64_decode(sk, strlen(sk), &k1, &l1) == 0 &&
	          base64_decode(tk, strlen(tk), &k2, &l2) == 0 && l1 == len && l2 == len;
	if (ok) {
		c->hash = h;
		c->iterations = (unsigned)it;
		free(c->salt_b64);
		c->salt_b64 = xstrdup(salt);
		memcpy(c->server_key, k1, len);
		memcpy(c->stored_key, k2, len);
		if (h == SCRAM_SHA1)
			acc->has_sha1 = true;
		else if (h == SCRAM_SHA256)
			acc->has_sha256 = true;
		else
			acc->has_sha512 = true;
	}
	if (k1 != NULL) {
		explicit_bzero(k1, l1);
		free(k1);
	}
	if (k2 != NULL) {
		explicit_bzero(k2, l2);
		free(k2);
	}
	return ok;
}

/* The account of a <user/>: its SCRAM credentials, the ones missing
 * derived from a password attribute.  -1 with *error_r when it has
 * neither. */
static int account_from_xml(const struct xml_node *u, const struct host_config *hc,
                            struct storage_account *acc, char **error_r)
{
	memset(acc, 0, sizeof(*acc));
	for (struct xml_node *c = xml_first_element(u); c != NULL; c = xml_next(c, NULL, NULL))
		if (xml_is(c, "scram-credentials", NS_PIE_SCRAM) && !scram_from_xml(c, acc))
			log_warning("import: user %s: unusable %s credentials ignored", xml_attr(u, "name"),
			            xml_attr(c, "mechanism") != NULL ? xml_attr(c, "mechanism") : "?");
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
	*items_r = items;
	*n_r = k;
	return k > 0;
bad:
	free(items);
	return false;
}

/* Store everything of <user/> u (whose account does not exist yet) at host. */
static int import_user(struct ev_loop *loop, struct storage *st, const struct host_config *hc,
                       const char *user, const struct xml_node *u, char **error_r)
{
	const char *host = hc->name;
	struct storage_account acc;
	char *why = NULL;
	if (account_from_xml(u, hc, &acc, &why) < 0) {
		*error_r = xasprintf("%s@%s: %s", user, host, why);
		free(why);
		storage_account_clear(&acc);
		return -1;
	}
	struct wait w = { 0 };
	enum storage_result res =
	        wait_done(loop, storage_account_create(st, host, user, &acc, done_cb, &w), &w);
	storage_account_clear(&acc);
	if (res != STORAGE_OK) {
		*error_r = xasprintf("%s@%s: cannot create the account: storage %s", user, host,
		                     storage_result_str(res));
		return -1;
	}
	for (struct xml_node *c = xml_first_element(u); c != NULL; c = xml_next(c, NULL, NULL)) {
		const char *what = NULL;
		if (xml_is(c, "query", NS_ROSTER)) {
			what = "roster";
			for (struct xml_node *x = xml_child(c, "item", NULL); x != NULL && res == STORAGE_OK;
			     x = xml_next(x, "item", NULL)) {
				struct roster_item it;
				if (!roster_item_from_xml(x, &it)) {
					log_warning("import: %s@%s: a roster item without a valid JID is "
					            "left out",
					            user, host);
					roster_item_clear(&it);
					continue;
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
			for (struct xml_node *l = xml_child(c, "list", NULL); l != NULL && res == STORAGE_OK;
			     l = xml_next(l, "list", NULL)) {
				const char *name = xml_attr(l, "name");
				struct privacy_item *items = NULL;
				size_t n = 0;
				if (name == NULL || !privacy_items_from_xml(l, &items, &n)) {
					log_warning(
					        "import: %s@%s: a privacy list that is not valid is left out",
					        user, host);
					continue;
				}
				struct wait lw = { 0 };
				res = wait_done(loop,
				                storage_privacy_set_list(st, host, user, name, items, n,
				                                         done_cb, &lw),
				                &lw);
				free(items);
			}
			const struct xml_node *def = xml_child(c, "default", NULL);
			if (res == STORAGE_OK && def != NULL && xml_attr(def, "name") != NULL) {
				struct wait dw = { 0 };
				res = wait_done(loop,
				                storage_privacy_set_default(
				                        st, host, user, xml_attr(def, "name"), done_cb, &dw),
				                &dw);
				if (res == STORAGE_NOT_FOUND) {
					log_warning("import: %s@%s: the default privacy list does not exist",
					            user, host);
					res = STORAGE_OK;
				}
			}
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
				if (strlist_contains(&jids, norm)) {
					free(norm);
					continue;
				}
				jids.items = xrealloc(jids.items, (jids.count + 1) * sizeof(char *));
				jids.items[jids.count++] = norm;
			}
			if (jids.count > 0) {
				struct wait bw = { 0 };
				res = wait_done(loop,
				                storage_blocklist_add(st, host, user,
				                                      (const char *const *)jids.items,
				                                      jids.count, done_cb, &bw),
				                &bw);
			}
			strlist_free(&jids);
		}
		if (res != STORAGE_OK) {
			*error_r = xasprintf("%s@%s: cannot store the %s: storage %s", user, host,
			                     what != NULL ? what : "data", storage_result_str(res));
			return -1;
		}
	}
	return 0;
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

static struct xml_node *read_document(const char *path, char **error_r)
{
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		*error_r = xasprintf("%s: %s", path, strerror(errno));
		return NULL;
	}
	struct buf b = { 0 };
	char chunk[65536];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_append(&b, chunk, n);
	bool err = ferror(f);
	fclose(f);
	if (err || b.len == 0) {
		*error_r = xasprintf("%s: %s", path, err ? strerror(errno) : "empty file");
		buf_free(&b);
		return NULL;
	}
	/* The parser takes elements only: skip a byte order mark, the XML
	 * declaration and white space before the root. */
	size_t off = 0;
	if (b.len >= 3 && memcmp(b.data, "\xEF\xBB\xBF", 3) == 0)
		off = 3;
	while (off < b.len && strchr(" \t\r\n", b.data[off]) != NULL)
		off++;
	if (b.len - off >= 5 && memcmp(b.data + off, "<?xml", 5) == 0) {
		const char *end = memmem(b.data + off, b.len - off, "?>", 2);
		off = end != NULL ? (size_t)(end - b.data) + 2 : b.len;
	}
	const struct xml_parser_limits lim = { .max_stanza = b.len + 1,
		                               .max_depth = 1024,
		                               .max_attrs = 1024 };
	const char *perr = NULL;
	struct xml_node *doc = xml_parse_string(b.data + off, b.len - off, NULL, &lim, &perr);
	explicit_bzero(b.data, b.len);
	buf_free(&b);
	if (doc == NULL || !xml_is(doc, "server-data", NS_PIE)) {
		*error_r = xasprintf("%s: not a XEP-0227 document (%s)", path,
		                     doc == NULL ? (perr != NULL ? perr : "does not parse")
		                                 : "the root is not <server-data xmlns='" NS_PIE "'/>");
		xml_unref(&doc);
		return NULL;
	}
	return doc;
}

static int import_file(struct ev_loop *loop, const struct parley_config *cfg, const char *path,
                       unsigned *created_r, unsigned *skipped_r, struct buf *report, char **error_r)
{
	struct xml_node *doc = read_document(path, error_r);
	if (doc == NULL)
		return -1;
	/* Every host first: nothing is stored from a file naming one we lack. */
	for (struct xml_node *h = xml_child(doc, "host", NULL); h != NULL; h = xml_next(h, "host", NULL)) {
		const char *jid = xml_attr(h, "jid");
		char *domain = jid != NULL ? jid_nameprep(jid) : NULL;
		bool known = domain != NULL && config_host(cfg, domain) != NULL;
		free(domain);
		if (!known) {
			*error_r = xasprintf("%s: host %s is not in %s (add it, or edit the file)", path,
			                     jid != NULL ? jid : "(no jid)", cfg->file);
			xml_unref(&doc);
			return -1;
		}
	}
	int rc = 0;
	for (struct xml_node *h = xml_child(doc, "host", NULL); h != NULL && rc == 0;
	     h = xml_next(h, "host", NULL)) {
		char *domain = jid_nameprep(xml_attr(h, "jid"));
		const struct host_config *hc = config_host(cfg, domain);
		free(domain);
		struct storage *st = open_store(loop, hc, error_r);
		if (st == NULL) {
			rc = -1;
			break;
		}
		for (struct xml_node *u = xml_child(h, "user", NULL); u != NULL && rc == 0;
		     u = xml_next(u, "user", NULL)) {
			const char *name = xml_attr(u, "name");
			char *user = name != NULL ? jid_nodeprep(name) : NULL;
			if (user == NULL || *user == '\0') {
				buf_printf(report, "skipped: a user with no valid name on %s\n", hc->name);
				(*skipped_r)++;
				free(user);
				continue;
			}
			enum storage_result res;
			if (account_exists(loop, st, hc->name, user, &res)) {
				buf_printf(report, "skipped: %s@%s exists\n", user, hc->name);
				(*skipped_r)++;
			} else if (res != STORAGE_NOT_FOUND) {
				*error_r = xasprintf("%s@%s: cannot read the account: storage %s", user,
				                     hc->name, storage_result_str(res));
				rc = -1;
			} else {
				rc = import_user(loop, st, hc, user, u, error_r);
				if (rc == 0)
					(*created_r)++;
			}
			free(user);
		}
		storage_close(&st);
	}
	xml_unref(&doc);
	return rc;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int xep0227_import(struct ev_loop *loop, const struct parley_config *cfg, const char *path,
                   struct buf *report, char **error_r)
{
	*error_r = NULL;
	unsigned created = 0, skipped = 0;
	struct stat sb;
	int rc = 0;
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
			files.items = xrealloc(files.items, (files.count + 1) * sizeof(char *));
			files.items[files.count++] = xasprintf("%s/%s", path, e->d_name);
		}
		closedir(d);
		if (files.count > 1)
			qsort(files.items, files.count, sizeof(char *), cmp_name);
		for (size_t i = 0; i < files.count && rc == 0; i++)
			rc = import_file(loop, cfg, files.items[i], &created, &skipped, report, error_r);
		if (files.count == 0) {
			*error_r = xasprintf("%s: no .xml file in it", path);
			rc = -1;
		}
		strlist_free(&files);
	} else {
		rc = import_file(loop, cfg, path, &created, &skipped, report, error_r);
	}
	buf_printf(report, "imported %u user%s, skipped %u\n", created, created == 1 ? "" : "s", skipped);
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
		struct xml_node *u = read_user(loop, ost, old, user, error_r);
		if (u == NULL)
			goto out;
		rewrite_tree(u, old, new);
		int r = import_user(loop, nst, nhc, user, u, error_r);
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
