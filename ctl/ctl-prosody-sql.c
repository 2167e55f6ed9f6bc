/*
 * parleyctl import-prosody-sql: the users of a Prosody SQL store (its
 * "prosody" key-value table and its "prosodyarchive" table) on SQLite,
 * PostgreSQL or MySQL/MariaDB, with parleyd stopped.  Loop thread
 * (parleyctl's own loop); the source is read with blocking calls on that
 * thread, nothing else runs there.
 *
 * Prosody 0.12 keeps one row per (host, user, store, key) with a type
 * (string, number, boolean, json, xml) and the value as text; a store's
 * non-string keys (the roster's "false" entry that holds the pending
 * subscription requests, the array part of a vCard) are in the row whose
 * key is empty, as JSON.  An XML element is kept "preserialised": a JSON
 * object {name, attr, __array: [children or text]}.  Archive stores
 * (offline messages, PEP items, MAM) are rows of prosodyarchive.
 *
 * Each user with an account becomes the <user/> element a XEP-0227 file
 * would hold, and is imported by the import run of ctl-xep0227.c: the
 * same SCRAM decoding (Prosody's keys are hex, its salt is the raw
 * string), pending requests, PEP nodes and items (given as the <pubsub/>
 * elements of Prosody's XEP-0227 store), checks, failure lines and result.
 *
 * Invariants:
 * - The source is only read: SELECTs, and an SQLite file opened read-only.
 * - Re-running skips the users whose account exists (nothing of them is
 *   changed), so an interrupted import can be run again.
 * - Passwords and SCRAM keys live only in the <user/> element being
 *   built and in the import's account structs; they are never logged.
 */
#include "ctl-prosody-sql.h"
#include "ctl-xep0227.h"
#include "lib/jid.h"
#include "lib/xml.h"
#include "storage/sql.h"
#include "storage/storage.h"

#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NS_PIE "urn:xmpp:pie:0"
#define NS_PIE_SCRAM "urn:xmpp:pie:0#scram"
#define NS_PUBSUB "http://jabber.org/protocol/pubsub"

static void add_text(struct xml_node *el, const char *text)
{
	xml_add_text(el, text, strlen(text));
}

/* ---- the source: a read-only SQLite file, or a connection of a Parley SQL driver ---- */

struct src {
	sqlite3 *db;                         /* driver "sqlite" */
	const struct sql_driver_vfuncs *drv; /* the others */
	struct sql_conn *conn;
	char quote; /* for the column names SQL reserves (user, key, when) */
};

struct src_stmt {
	sqlite3_stmt *ls;
	struct sql_stmt *ds;
};

static const char *src_error(struct src *s)
{
	return s->db != NULL ? sqlite3_errmsg(s->db) : s->drv->error_message(s->conn);
}

static int src_open(struct src *s, const char *driver, const char *source, const char *password_file,
                    char **error_r)
{
	memset(s, 0, sizeof(*s));
	s->quote = '"';
	if (strcmp(driver, "sqlite") == 0) {
		int rc = sqlite3_open_v2(source, &s->db, SQLITE_OPEN_READONLY, NULL);
		if (rc != SQLITE_OK) {
			*error_r = xasprintf("sqlite: cannot open %s: %s", source,
			                     s->db != NULL ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
			sqlite3_close(s->db);
			s->db = NULL;
			return -1;
		}
		sqlite3_busy_timeout(s->db, 10000);
		return 0;
	}
	s->drv = sql_driver_find(driver);
	if (s->drv == NULL || strcmp(driver, "odbc") == 0) {
		*error_r = xasprintf(
		        "%s: not a database this parleyctl reads Prosody from (sqlite, pgsql, mysql)",
		        driver);
		return -1;
	}
	if (strcmp(driver, "mysql") == 0)
		s->quote = '`';
	struct storage_config cfg;
	storage_config_defaults(&cfg);
	free(cfg.driver);
	cfg.driver = xstrdup(driver);
	cfg.dsn = xstrdup(source);
	cfg.password_file = password_file != NULL ? xstrdup(password_file) : NULL;
	s->conn = s->drv->connect(&cfg, error_r);
	storage_config_free(&cfg);
	return s->conn != NULL ? 0 : -1;
}

static void src_close(struct src *s)
{
	if (s->db != NULL)
		sqlite3_close(s->db);
	if (s->conn != NULL)
		s->drv->disconnect(s->conn);
	memset(s, 0, sizeof(*s));
}

/* Run sql ('?' placeholders, '@' around the column names SQL reserves:
 * user, key, when) with the text params.  0, or -1 with *error_r. */
static int src_query(struct src *s, const char *sql_in, const char *const *params, unsigned n,
                     struct src_stmt *st, char **error_r)
{
	char *sql = xstrdup(sql_in);
	for (char *p = sql; *p != '\0'; p++)
		if (*p == '@')
			*p = s->quote;
	memset(st, 0, sizeof(*st));
	int rc = 0;
	if (s->db != NULL) {
		if (sqlite3_prepare_v2(s->db, sql, -1, &st->ls, NULL) != SQLITE_OK)
			rc = -1;
		for (unsigned i = 0; rc == 0 && i < n; i++)
			if (sqlite3_bind_text(st->ls, (int)i + 1, params[i], -1, SQLITE_TRANSIENT) !=
			    SQLITE_OK)
				rc = -1;
	} else {
		st->ds = s->drv->prepare(s->conn, sql);
		if (st->ds == NULL)
			rc = -1;
		for (unsigned i = 0; rc == 0 && i < n; i++)
			if (s->drv->bind_text(st->ds, i + 1, params[i]) < 0)
				rc = -1;
	}
	if (rc < 0)
		*error_r = xasprintf("cannot read the Prosody tables: %s", src_error(s));
	free(sql);
	return rc;
}

/* 1: a row; 0: no more; -1 with *error_r. */
static int src_next(struct src *s, struct src_stmt *st, char **error_r)
{
	if (s->db != NULL) {
		int rc = sqlite3_step(st->ls);
		if (rc == SQLITE_ROW)
			return 1;
		if (rc == SQLITE_DONE)
			return 0;
	} else {
		enum sql_step r = s->drv->step(st->ds);
		if (r == SQL_STEP_ROW)
			return 1;
		if (r == SQL_STEP_DONE)
			return 0;
	}
	*error_r = xasprintf("cannot read the Prosody tables: %s", src_error(s));
	return -1;
}

static const char *src_col(struct src *s, struct src_stmt *st, unsigned col)
{
	const char *t = s->db != NULL ? (const char *)sqlite3_column_text(st->ls, (int)col)
	                              : s->drv->column_text(st->ds, col);
	return t != NULL ? t : "";
}

static void src_done(struct src *s, struct src_stmt *st)
{
	if (st->ls != NULL)
		sqlite3_finalize(st->ls);
	if (st->ds != NULL)
		s->drv->reset(st->ds);
	memset(st, 0, sizeof(*st));
}

/* The first column of every row of sql. */
static int src_strings(struct src *s, const char *sql, const char *const *params, unsigned n,
                       struct strlist *out, char **error_r)
{
	struct src_stmt st;
	if (src_query(s, sql, params, n, &st, error_r) < 0)
		return -1;
	int r;
	while ((r = src_next(s, &st, error_r)) == 1) {
		out->items = xrealloc(out->items, (out->count + 1) * sizeof(char *));
		out->items[out->count++] = xstrdup(src_col(s, &st, 0));
	}
	src_done(s, &st);
	return r;
}

/* ---- Prosody's values into XEP-0227 --------------------------------------------------- */

/* Counts per kind, of the users created. */
struct counts {
	unsigned roster, pending, vcards, private, offline, blocked;
	unsigned pep_nodes, pep_items; /* given to the import (which notes what it cannot keep) */
	unsigned privacy, mam;         /* read, not imported */
	unsigned other;
};

/* One user as it is read. */
struct puser {
	struct xml_node *u;
	struct xml_node *roster, *private, *offline, *blocklist;
	struct xml_node *pep_owner, *pep_items;      /* the two <pubsub/> of XEP-0227 PEP */
	char *iter, *salt, *server_key, *stored_key; /* SCRAM-SHA-1 of internal_hashed */
	char *vc_name;                               /* the vcard store's name, attr and array */
	json_t *vc_attr, *vc_children;
	struct counts c;
};

/* A preserialised element's attributes and children onto el. */
static void children_from_json(struct xml_node *el, const json_t *arr, unsigned depth);

static void attrs_from_json(struct xml_node *el, const json_t *attr)
{
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)attr, k, v)
	{
		if (strcmp(k, "xmlns") != 0 && json_is_string(v))
			xml_set_attr(el, k, json_string_value(v));
	}
}

static struct xml_node *element_from_json(struct xml_node *parent, const json_t *j, unsigned depth)
{
	const json_t *name = json_object_get(j, "name"), *attr = json_object_get(j, "attr");
	if (!json_is_string(name) || depth > 64)
		return NULL;
	const json_t *xmlns = attr != NULL ? json_object_get(attr, "xmlns") : NULL;
	const char *ns = json_is_string(xmlns) ? json_string_value(xmlns) : NULL;
	struct xml_node *el = parent != NULL ? xml_add_child(parent, json_string_value(name), ns)
	                                     : xml_new(json_string_value(name), ns != NULL ? ns : "");
	if (json_is_object(attr))
		attrs_from_json(el, attr);
	children_from_json(el, json_object_get(j, "__array"), depth);
	return el;
}

static void children_from_json(struct xml_node *el, const json_t *arr, unsigned depth)
{
	size_t i;
	json_t *c;
	if (!json_is_array(arr))
		return;
	json_array_foreach((json_t *)arr, i, c)
	{
		if (json_is_string(c))
			xml_add_text(el, json_string_value(c), strlen(json_string_value(c)));
		else if (json_is_object(c))
			element_from_json(el, c, depth + 1);
	}
}

/* The value of the non-string key false in the JSON of a store's "" row
 * ({"__hash": [k1, v1, ...]}), or NULL. */
static json_t *hash_false(json_t *j)
{
	json_t *h = json_object_get(j, "__hash");
	for (size_t i = 0; json_is_array(h) && i + 1 < json_array_size(h); i += 2)
		if (json_is_false(json_array_get(h, i)))
			return json_array_get(h, i + 1);
	return NULL;
}

static void set_once(char **p, const char *v)
{
	free(*p);
	*p = xstrdup(v);
}

static void free_secret_str(char **p)
{
	if (*p != NULL) {
		explicit_bzero(*p, strlen(*p));
		free(*p);
		*p = NULL;
	}
}

/* A PEP node of the pep store ({name, config, affiliations, subscribers})
 * as Prosody's XEP-0227 store writes it: a <configure/> with the submitted
 * node_config form and the <affiliations/>, in the pubsub#owner <pubsub/>. */
static void pep_node(struct puser *pu, const char *node, json_t *j)
{
	if (pu->pep_owner == NULL)
		pu->pep_owner = xml_add_child(pu->u, "pubsub", NS_PUBSUB "#owner");
	struct xml_node *c = xml_add_child(pu->pep_owner, "configure", NULL);
	xml_set_attr(c, "node", node);
	struct xml_node *x = xml_add_child(c, "x", NS_DATA_FORMS);
	xml_set_attr(x, "type", "submit");
	struct xml_node *f = xml_add_child(x, "field", NS_DATA_FORMS);
	xml_set_attr(f, "var", "FORM_TYPE");
	xml_set_attr(f, "type", "hidden");
	add_text(xml_add_child(f, "value", NS_DATA_FORMS), NS_PUBSUB "#node_config");
	const char *k;
	json_t *v;
	json_object_foreach(json_object_get(j, "config"), k, v)
	{
		char num[32];
		const char *text = json_is_string(v)  ? json_string_value(v)
		                   : json_is_true(v)  ? "1"
		                   : json_is_false(v) ? "0"
		                   : json_is_number(v)
		                           ? (snprintf(num, sizeof(num), "%.0f", json_number_value(v)), num)
		                           : NULL;
		if (text == NULL)
			continue;
		char *var = xasprintf("pubsub#%s", k);
		f = xml_add_child(x, "field", NS_DATA_FORMS);
		xml_set_attr(f, "var", var);
		add_text(xml_add_child(f, "value", NS_DATA_FORMS), text);
		free(var);
	}
	json_t *affs = json_object_get(j, "affiliations");
	if (json_object_size(affs) > 0) {
		struct xml_node *a = xml_add_child(pu->pep_owner, "affiliations", NULL);
		xml_set_attr(a, "node", node);
		json_object_foreach(affs, k, v)
		{
			if (!json_is_string(v))
				continue;
			struct xml_node *e = xml_add_child(a, "affiliation", NULL);
			xml_set_attr(e, "jid", k);
			xml_set_attr(e, "affiliation", json_string_value(v));
		}
	}
	pu->c.pep_nodes++;
}

/* An item of PEP node (a row of its pep_NODE archive store), under
 * <items node=.../> in the pubsub <pubsub/>, oldest first. */
static void pep_item(struct puser *pu, struct buf *report, const char *jid, const char *node, const char *id,
                     const char *publisher, const char *value)
{
	size_t len = strlen(value);
	const struct xml_parser_limits lim = { .max_stanza = len + 1, .max_depth = 1024, .max_attrs = 1024 };
	const char *err = NULL;
	struct xml_node *payload = xml_parse_string(value, len, NULL, &lim, &err);
	if (payload == NULL) {
		buf_printf(report, "note: %s: PEP item %s of node %s does not parse; left out\n", jid, id,
		           node);
		return;
	}
	if (pu->pep_items == NULL)
		pu->pep_items = xml_add_child(pu->u, "pubsub", NS_PUBSUB);
	struct xml_node *box = NULL;
	for (struct xml_node *b = xml_child(pu->pep_items, "items", NULL); b != NULL;
	     b = xml_next(b, "items", NULL))
		if (str_eq(xml_attr(b, "node"), node))
			box = b;
	if (box == NULL) {
		box = xml_add_child(pu->pep_items, "items", NULL);
		xml_set_attr(box, "node", node);
	}
	struct xml_node *it = xml_add_child(box, "item", NULL);
	xml_set_attr(it, "id", id);
	if (*publisher != '\0')
		xml_set_attr(it, "publisher", publisher);
	xml_append_copy(it, payload);
	xml_unref(&payload);
	pu->c.pep_items++;
}

static void row_keyval(struct puser *pu, struct buf *report, const char *jid, const char *store,
                       const char *key, const char *type, const char *value)
{
	json_t *j = strcmp(type, "json") == 0 ? json_loads(value, JSON_DECODE_ANY, NULL) : NULL;
	if (strcmp(store, "accounts") == 0) {
		if (strcmp(key, "password") == 0)
			xml_set_attr(pu->u, "password", value);
		else if (strcmp(key, "iteration_count") == 0)
			set_once(&pu->iter, value);
		else if (strcmp(key, "salt") == 0)
			set_once(&pu->salt, value);
		else if (strcmp(key, "server_key") == 0)
			set_once(&pu->server_key, value);
		else if (strcmp(key, "stored_key") == 0)
			set_once(&pu->stored_key, value);
	} else if (strcmp(store, "roster") == 0 && *key == '\0') {
		json_t *meta = hash_false(j),
		       *pending = meta != NULL ? json_object_get(meta, "pending") : NULL;
		const char *from;
		json_t *v;
		json_object_foreach(pending, from, v)
		{
			struct xml_node *p = xml_add_child(pu->u, "presence", NS_CLIENT);
			xml_set_attr(p, "type", "subscribe");
			xml_set_attr(p, "from", from);
			pu->c.pending++;
		}
	} else if (strcmp(store, "roster") == 0) {
		if (!json_is_object(j)) {
			buf_printf(report, "note: %s: roster item %s is not readable; left out\n", jid, key);
		} else {
			if (pu->roster == NULL)
				pu->roster = xml_add_child(pu->u, "query", NS_ROSTER);
			struct xml_node *it = xml_add_child(pu->roster, "item", NS_ROSTER);
			xml_set_attr(it, "jid", key);
			json_t *name = json_object_get(j, "name"), *sub = json_object_get(j, "subscription");
			json_t *ask = json_object_get(j, "ask");
			if (json_is_string(name))
				xml_set_attr(it, "name", json_string_value(name));
			xml_set_attr(it, "subscription",
			             json_is_string(sub) ? json_string_value(sub) : "none");
			if (json_is_string(ask) && strcmp(json_string_value(ask), "subscribe") == 0)
				xml_set_attr(it, "ask", "subscribe");
			const char *g;
			json_t *v;
			json_object_foreach(json_object_get(j, "groups"), g, v)
			{
				xml_add_text(xml_add_child(it, "group", NS_ROSTER), g, strlen(g));
			}
			pu->c.roster++;
		}
	} else if (strcmp(store, "vcard") == 0) {
		if (strcmp(key, "name") == 0)
			set_once(&pu->vc_name, value);
		else if (strcmp(key, "attr") == 0 && j != NULL)
			pu->vc_attr = json_incref(j);
		else if (*key == '\0' && j != NULL)
			pu->vc_children = json_incref(j);
	} else if (strcmp(store, "private") == 0) {
		if (pu->private == NULL)
			pu->private = xml_add_child(pu->u, "query", "jabber:iq:private");
		if (j == NULL || element_from_json(pu->private, j, 0) == NULL)
			buf_printf(report, "note: %s: private XML %s is not readable; left out\n", jid, key);
		else
			pu->c.private ++;
	} else if (strcmp(store, "blocklist") == 0) {
		if (*key != '\0') {
			if (pu->blocklist == NULL)
				pu->blocklist = xml_add_child(pu->u, "blocklist", "urn:xmpp:blocking");
			xml_set_attr(xml_add_child(pu->blocklist, "item", "urn:xmpp:blocking"), "jid", key);
			pu->c.blocked++;
		}
	} else if (strcmp(store, "pep") == 0 && *key != '\0') {
		pep_node(pu, key, j);
	} else if (strcmp(store, "privacy") == 0) {
		pu->c.privacy++;
	} else {
		pu->c.other++;
	}
	json_decref(j);
}

static void row_archive(struct puser *pu, struct buf *report, const char *jid, const char *host,
                        const char *store, const char *key, const char *when, const char *with,
                        const char *type, const char *value)
{
	if (strcmp(store, "offline") == 0 && strcmp(type, "xml") == 0) {
		size_t len = strlen(value);
		const struct xml_parser_limits lim = { .max_stanza = len + 1,
			                               .max_depth = 1024,
			                               .max_attrs = 1024 };
		const char *err = NULL;
		struct xml_node *m = xml_parse_string(value, len, NS_CLIENT, &lim, &err);
		if (m == NULL || !xml_is(m, "message", NS_CLIENT)) {
			buf_printf(report, "note: %s: an offline message does not parse; left out\n", jid);
		} else {
			if (pu->offline == NULL)
				pu->offline = xml_add_child(pu->u, "offline-messages", NS_PIE);
			struct xml_node *c = xml_append_copy(pu->offline, m);
			/* When it was stored, as Prosody says it on delivery. */
			time_t t = (time_t)strtoll(when, NULL, 10);
			struct tm tm;
			char stamp[32];
			if (t > 0 && xml_child(c, "delay", "urn:xmpp:delay") == NULL &&
			    gmtime_r(&t, &tm) != NULL &&
			    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm) > 0) {
				struct xml_node *d = xml_add_child(c, "delay", "urn:xmpp:delay");
				xml_set_attr(d, "from", host);
				xml_set_attr(d, "stamp", stamp);
			}
			pu->c.offline++;
		}
		xml_unref(&m);
	} else if (strncmp(store, "pep_", 4) == 0 && store[4] != '\0' && strcmp(type, "xml") == 0) {
		pep_item(pu, report, jid, store + 4, key, with, value);
	} else if (strcmp(store, "archive") == 0 || strcmp(store, "archive2") == 0) {
		pu->c.mam++;
	} else {
		pu->c.other++;
	}
}

/* The SCRAM credentials of Prosody's internal_hashed: SCRAM-SHA-1 unless
 * its password_hash option named another hash, which the length of the
 * keys (hex) tells; the salt is used as it is (XEP-0227 wants it in
 * base64), the keys are hex, which the import recognises. */
static void scram_element(struct puser *pu)
{
	if (pu->iter == NULL || pu->salt == NULL || pu->server_key == NULL || pu->stored_key == NULL)
		return;
	size_t hex = strlen(pu->server_key);
	struct xml_node *sc = xml_add_child(pu->u, "scram-credentials", NS_PIE_SCRAM);
	xml_set_attr(sc, "mechanism",
	             hex == 2 * 32   ? "SCRAM-SHA-256"
	             : hex == 2 * 64 ? "SCRAM-SHA-512"
	                             : "SCRAM-SHA-1");
	char *salt = base64_encode(pu->salt, strlen(pu->salt));
	const char *names[] = { "iter-count", "salt", "server-key", "stored-key" };
	const char *values[] = { pu->iter, salt, pu->server_key, pu->stored_key };
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		struct xml_node *e = xml_add_child(sc, names[i], NS_PIE_SCRAM);
		xml_add_text(e, values[i], strlen(values[i]));
	}
	free_secret_str(&salt);
}

static void vcard_element(struct puser *pu)
{
	if (pu->vc_name == NULL)
		return;
	json_t *xmlns = pu->vc_attr != NULL ? json_object_get(pu->vc_attr, "xmlns") : NULL;
	struct xml_node *v = xml_add_child(pu->u, pu->vc_name,
	                                   json_is_string(xmlns) ? json_string_value(xmlns) : "vcard-temp");
	if (pu->vc_attr != NULL)
		attrs_from_json(v, pu->vc_attr);
	children_from_json(v,
	                   json_is_array(pu->vc_children) ? pu->vc_children
	                                                  : json_object_get(pu->vc_children, "__array"),
	                   0);
	pu->c.vcards++;
}

static void puser_clear(struct puser *pu)
{
	xep0227_wipe_secrets(pu->u);
	xml_unref(&pu->u);
	free_secret_str(&pu->iter);
	free_secret_str(&pu->salt);
	free_secret_str(&pu->server_key);
	free_secret_str(&pu->stored_key);
	free(pu->vc_name);
	json_decref(pu->vc_attr);
	json_decref(pu->vc_children);
	memset(pu, 0, sizeof(*pu));
}

static void counts_add(struct counts *a, const struct counts *b)
{
	a->roster += b->roster;
	a->pending += b->pending;
	a->vcards += b->vcards;
	a->private += b->private;
	a->offline += b->offline;
	a->blocked += b->blocked;
	a->pep_nodes += b->pep_nodes;
	a->pep_items += b->pep_items;
	a->privacy += b->privacy;
	a->mam += b->mam;
	a->other += b->other;
}

/* ---- the import ------------------------------------------------------------------------ */

static const char *const sql_users = "SELECT DISTINCT @user@ FROM prosody WHERE host = ? AND store = "
                                     "'accounts' ORDER BY 1";
static const char *const sql_rows = "SELECT store, @key@, type, value FROM prosody WHERE host = ? AND "
                                    "@user@ = ? ORDER BY 1, 2";
static const char *const sql_archive =
        "SELECT store, @key@, @when@, @with@, type, value FROM prosodyarchive WHERE host "
        "= ? AND @user@ = ? ORDER BY sort_id";

/* Read user of host into pu (its <user/> element).  -1 with *error_r. */
static int read_user(struct src *s, const char *host, const char *user, bool archive, struct puser *pu,
                     struct buf *report, char **error_r)
{
	const char *params[] = { host, user };
	char *jid = xasprintf("%s@%s", user, host);
	pu->u = xml_new("user", NS_PIE);
	xml_set_attr(pu->u, "name", user);
	struct src_stmt st;
	int r = src_query(s, sql_rows, params, 2, &st, error_r);
	while (r == 0 && (r = src_next(s, &st, error_r)) == 1) {
		row_keyval(pu, report, jid, src_col(s, &st, 0), src_col(s, &st, 1), src_col(s, &st, 2),
		           src_col(s, &st, 3));
		r = 0;
	}
	src_done(s, &st);
	if (r == 0 && archive) {
		r = src_query(s, sql_archive, params, 2, &st, error_r);
		while (r == 0 && (r = src_next(s, &st, error_r)) == 1) {
			row_archive(pu, report, jid, host, src_col(s, &st, 0), src_col(s, &st, 1),
			            src_col(s, &st, 2), src_col(s, &st, 3), src_col(s, &st, 4),
			            src_col(s, &st, 5));
			r = 0;
		}
		src_done(s, &st);
	}
	free(jid);
	if (r < 0)
		return -1;
	scram_element(pu);
	vcard_element(pu);
	return 0;
}

/* Whether the source has the prosodyarchive table (a store that never
 * used an archive store may lack it). */
static bool has_archive(struct src *s)
{
	struct src_stmt st;
	char *err = NULL;
	bool ok = src_query(s, "SELECT COUNT(*) FROM prosodyarchive", NULL, 0, &st, &err) == 0 &&
	          src_next(s, &st, &err) == 1;
	src_done(s, &st);
	free(err);
	return ok;
}

int prosody_sql_import(struct ev_loop *loop, const struct parley_config *cfg, const char *only_host,
                       const char *driver, const char *source, const char *password_file, struct buf *report,
                       char **error_r)
{
	*error_r = NULL;
	struct src s;
	if (src_open(&s, driver, source, password_file, error_r) < 0)
		return -1;
	struct strlist hosts = { 0 };
	if (src_strings(&s, "SELECT DISTINCT host FROM prosody ORDER BY 1", NULL, 0, &hosts, error_r) < 0) {
		src_close(&s);
		return -1;
	}
	bool archive = has_archive(&s);
	if (!archive)
		buf_printf(report, "note: no prosodyarchive table: no offline messages to import\n");
	struct xep0227_run *run = xep0227_run_new(loop, cfg, report);
	struct counts total = { 0 };
	char *where = xasprintf("%s:%s", driver, strcmp(driver, "sqlite") == 0 ? source : "prosody");
	char *only = only_host != NULL ? jid_nameprep(only_host) : NULL;
	if (only_host != NULL && (only == NULL || config_host(cfg, only) == NULL))
		xep0227_run_fail(run, xasprintf("host %s is not in %s", only_host, cfg->file), true);
	for (size_t h = 0; h < hosts.count && !xep0227_run_stopped(run); h++) {
		char *domain = jid_nameprep(hosts.items[h]);
		const struct host_config *hc = domain != NULL ? config_host(cfg, domain) : NULL;
		free(domain);
		if (only != NULL && (hc == NULL || strcmp(hc->name, only) != 0))
			continue;
		struct strlist users = { 0 };
		const char *params[] = { hosts.items[h] };
		char *err = NULL;
		if (src_strings(&s, sql_users, params, 1, &users, &err) < 0) {
			xep0227_run_fail(run, err, true);
			break;
		}
		if (hc == NULL) {
			if (users.count > 0)
				xep0227_run_fail(
				        run,
				        xasprintf("host %s (%zu user%s) is not in %s (add it, or name the "
				                  "hosts to import with --host)",
				                  hosts.items[h], users.count, users.count == 1 ? "" : "s",
				                  cfg->file),
				        false);
			strlist_free(&users);
			continue;
		}
		struct storage *st = NULL;
		if (storage_open(loop, &hc->storage, &st, &err) < 0) {
			xep0227_run_fail(run, xasprintf("host %s: %s", hc->name, err), true);
			free(err);
			strlist_free(&users);
			break;
		}
		for (size_t i = 0; i < users.count && !xep0227_run_stopped(run); i++) {
			struct puser pu = { 0 };
			if (read_user(&s, hosts.items[h], users.items[i], archive, &pu, report, &err) < 0) {
				xep0227_run_fail(run, err, true);
			} else if (xep0227_run_user(run, st, hc, where, pu.u) == XEP0227_USER_CREATED) {
				counts_add(&total, &pu.c);
			}
			puser_clear(&pu);
		}
		storage_close(&st);
		strlist_free(&users);
	}
	free(only);
	free(where);
	strlist_free(&hosts);
	src_close(&s);
	buf_printf(report,
	           "imported: %u roster item%s, %u pending request%s, %u vCard%s, %u private XML "
	           "element%s, %u offline message%s, %u blocked JID%s\n",
	           total.roster, total.roster == 1 ? "" : "s", total.pending, total.pending == 1 ? "" : "s",
	           total.vcards, total.vcards == 1 ? "" : "s", total.private, total.private == 1 ? "" : "s",
	           total.offline, total.offline == 1 ? "" : "s", total.blocked,
	           total.blocked == 1 ? "" : "s");
	if (total.pep_nodes + total.pep_items > 0)
		buf_printf(report, "PEP: %u node%s with %u item%s (vCard4, avatars, bookmarks, OMEMO, ...)\n",
		           total.pep_nodes, total.pep_nodes == 1 ? "" : "s", total.pep_items,
		           total.pep_items == 1 ? "" : "s");
	if (total.privacy > 0)
		buf_printf(report, "note: %u privacy list row%s are not imported\n", total.privacy,
		           total.privacy == 1 ? "" : "s");
	if (total.mam > 0)
		buf_printf(report, "note: %u archived message%s (MAM) are not imported\n", total.mam,
		           total.mam == 1 ? "" : "s");
	if (total.other > 0)
		buf_printf(report, "note: %u row%s of other Prosody stores are not imported\n", total.other,
		           total.other == 1 ? "" : "s");
	return xep0227_run_finish(&run, error_r);
}
