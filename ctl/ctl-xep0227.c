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
 * The import also reads what ejabberd and Prosody write: ejabberd's
 * <server-data/> file of XIncludes and its <host/> files, SCRAM values
 * encoded base64 twice (or hex), pending subscription requests as
 * <presence type='subscribe'/> children of <user/>, and ejabberd's block
 * list kept in the default privacy list.
 *
 * Invariants:
 * - Export is deterministic: users, roster items, groups, namespaces,
 *   lists and blocked JIDs come sorted, offline messages in their order,
 *   so export -> import -> export gives the same bytes.
 * - A file is written to PATH.tmp and renamed when complete; an import
 *   parses a whole file (and checks its includes and hosts) before
 *   storing anything of it.
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
	/* An empty one too when there are privacy lists (read before): the
	 * import then keeps them as they are, rather than taking their items
	 * that deny a JID everything for an ejabberd block list. */
	if (res != STORAGE_OK || (jids->count == 0 && xml_child(w->into, "query", NS_PRIVACY) == NULL))
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
#define NS_PROSODY_EXT "http://prosody.im/protocol/extended-xep0227"

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

/* The bare JIDs of the subscription requests waiting in a <user/>: the
 * <presence type='subscribe'/> children ejabberd and Prosody write (in
 * jabber:client, or in no namespace of their own). */
static void pending_from_xml(const struct xml_node *u, struct strlist *out)
{
	for (struct xml_node *p = xml_child(u, "presence", NULL); p != NULL;
	     p = xml_next(p, "presence", NULL)) {
		const char *type = xml_attr(p, "type"), *from = xml_attr(p, "from");
		if (type == NULL || strcmp(type, "subscribe") != 0 || from == NULL)
			continue;
		if (strcmp(p->ns, NS_CLIENT) != 0 && strcmp(p->ns, NS_PIE) != 0 && *p->ns != '\0')
			continue;
		struct jid j;
		const char *err;
		if (jid_parse(from, &j, &err) != 0)
			continue;
		char *bare = jid_bare_string(&j);
		jid_clear(&j);
		if (strlist_contains(out, bare))
			free(bare);
		else
			list_take(out, bare);
	}
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
		} else if (!xml_is(c, "scram-credentials", NS_PIE_SCRAM) &&
		           strcmp(c->name, "presence") != 0) {
			buf_printf(report,
			           "note: %s: <%s xmlns='%s'/> is not imported (Parley does not keep it)\n",
			           jid, c->name, c->ns);
		}
	}
	/* The requests from contacts not in the roster: an item of their own,
	 * which the user's next initial presence delivers (RFC 6121 3.1.3). */
	for (size_t i = 0; i < pending.count && res == STORAGE_OK; i++) {
		what = "pending subscription requests";
		struct roster_item it = { .jid = pending.items[i], .subscription = SUB_NONE, .ask_in = true };
		struct wait rw = { 0 };
		res = wait_done(loop, storage_roster_set(st, host, user, &it, done_cb, &rw), &rw);
	}
	strlist_free(&pending);
	int rc = 0;
	if (res != STORAGE_OK) {
		/* Not half a user: without its account, a second run imports it
		 * whole instead of skipping it. */
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

/* ---- reading the files ------------------------------------------------------------------- */

/* The root of the XEP-0227 file at path: a <server-data/>, or a <host/>
 * alone (ejabberd's export_piefxis writes one per host, which its
 * <server-data/> file includes).  NULL with *error_r. */
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
	 * declaration and white space before the root.  A DTD is refused by
	 * the parser (so are entity expansions). */
	size_t off = 0;
	if (b.len >= 3 && memcmp(b.data, "\xEF\xBB\xBF", 3) == 0)
		off = 3;
	while (off < b.len && strchr(" \t\r\n", b.data[off]) != NULL)
		off++;
	if (b.len - off >= 5 && memcmp(b.data + off, "<?xml", 5) == 0) {
		const char *end = memmem(b.data + off, b.len - off, "?>", 2);
		off = end != NULL ? (size_t)(end - b.data) + 2 : b.len;
	}
	while (off < b.len && strchr(" \t\r\n", b.data[off]) != NULL)
		off++;
	if (b.len - off >= 9 && memcmp(b.data + off, "<!DOCTYPE", 9) == 0) {
		*error_r = xasprintf("%s: not accepted: it has a DTD (<!DOCTYPE ...>), whose entities could "
		                     "expand without bound; remove it",
		                     path);
		explicit_bzero(b.data, b.len);
		buf_free(&b);
		return NULL;
	}
	const struct xml_parser_limits lim = { .max_stanza = b.len + 1,
		                               .max_depth = 1024,
		                               .max_attrs = 1024 };
	const char *perr = NULL;
	struct xml_node *doc = xml_parse_string(b.data + off, b.len - off, NULL, &lim, &perr);
	explicit_bzero(b.data, b.len);
	buf_free(&b);
	if (doc == NULL) {
		*error_r = xasprintf("%s: not a XEP-0227 document (%s)", path,
		                     perr != NULL ? perr : "does not parse");
		return NULL;
	}
	if (!xml_is(doc, "server-data", NS_PIE) && !xml_is(doc, "host", NS_PIE)) {
		*error_r = xasprintf("%s: not a XEP-0227 document (the root is <%s xmlns='%s'/>, not "
		                     "<server-data/> or <host/> in " NS_PIE ")",
		                     path, doc->name, doc->ns);
		xml_unref(&doc);
		return NULL;
	}
	return doc;
}

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

static void import_host(struct import_run *r, const char *path, const struct host_config *hc,
                        const struct xml_node *h)
{
	char *err = NULL;
	struct storage *st = open_store(r->loop, hc, &err);
	if (st == NULL) {
		run_fail(r, err);
		r->stop = true;
		return;
	}
	for (struct xml_node *u = xml_child(h, "user", NULL); u != NULL && !r->stop;
	     u = xml_next(u, "user", NULL)) {
		r->users++;
		const char *name = xml_attr(u, "name");
		char *user = name != NULL ? jid_nodeprep(name) : NULL;
		if (user == NULL || *user == '\0') {
			run_fail(r, xasprintf("%s: a user of host %s has no valid name ('%s')", path,
			                      hc->name, name != NULL ? name : ""));
			free(user);
			continue;
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
			run_fail(r, xasprintf("%s: cannot read the account: storage %s", jid,
			                      storage_result_str(res)));
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
	storage_close(&st);
}

/* Import the file at path; its includes too when follow is set. */
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
	char *err = NULL;
	struct xml_node *doc = read_document(path, &err);
	if (doc == NULL) {
		run_fail(r, err);
		return;
	}
	struct strlist includes = { 0 };
	bool has_includes = xml_child(doc, "include", NS_XINCLUDE) != NULL;
	if (has_includes && !follow) {
		run_fail(r, xasprintf("%s: an included file includes others (not followed); nothing of it "
		                      "is imported",
		                      path));
		xml_unref(&doc);
		return;
	}
	if (has_includes && resolve_includes(real, doc, &includes, &err) < 0) {
		run_fail(r, err);
		xml_unref(&doc);
		return;
	}
	/* Every host first: nothing is stored from a file naming one we lack. */
	bool alone = xml_is(doc, "host", NS_PIE);
	bool known = true;
	for (struct xml_node *h = alone ? doc : xml_child(doc, "host", NULL); h != NULL && known;
	     h = alone ? NULL : xml_next(h, "host", NULL)) {
		const char *jid = xml_attr(h, "jid");
		char *domain = jid != NULL ? jid_nameprep(jid) : NULL;
		known = domain != NULL && config_host(r->cfg, domain) != NULL;
		free(domain);
		if (!known)
			run_fail(r,
			         xasprintf("%s: host %s is not in %s (add it, or edit the file); nothing of "
			                   "the file is imported",
			                   path, jid != NULL ? jid : "(no jid)", r->cfg->file));
	}
	for (struct xml_node *h = alone ? doc : xml_child(doc, "host", NULL); h != NULL && known && !r->stop;
	     h = alone ? NULL : xml_next(h, "host", NULL)) {
		char *domain = jid_nameprep(xml_attr(h, "jid"));
		import_host(r, path, config_host(r->cfg, domain), h);
		free(domain);
	}
	xml_unref(&doc);
	for (size_t i = 0; i < includes.count && !r->stop; i++)
		import_path(r, includes.items[i], false);
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
	buf_printf(report, "imported %u user%s, skipped %u", r.created, r.created == 1 ? "" : "s", r.skipped);
	if (r.nfailures > 0)
		buf_printf(report, ", %u failure%s", r.nfailures, r.nfailures == 1 ? "" : "s");
	buf_append_str(report, "\n");
	int rc = 0;
	if (r.nfailures > 0) {
		char *counts = r.users > 0 ? xasprintf("%u of the %u user%s read imported", r.created,
		                                       r.users, r.users == 1 ? "" : "s")
		                           : xstrdup("no user read");
		*error_r =
		        xasprintf("%s%s\n%u failure%s%s; %s", r.failures.data,
		                  r.nfailures > FAILURES_SHOWN ? "\n..." : "", r.nfailures,
		                  r.nfailures == 1 ? "" : "s", r.stop ? ", the import stopped" : "", counts);
		free(counts);
		rc = -1;
	}
	buf_free(&r.failures);
	strlist_free(&r.files);
	for (struct htab_link *l; (l = htab_any(&r.seen)) != NULL;) {
		htab_remove(&r.seen, l);
		free(l);
	}
	htab_free(&r.seen);
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
