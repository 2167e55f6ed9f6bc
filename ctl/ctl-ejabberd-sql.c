/*
 * parleyctl import-ejabberd-sql: the users of an ejabberd SQL database
 * (PostgreSQL or MySQL/MariaDB, the schema of ejabberd's sql/pg.sql,
 * pg.new.sql, mysql.sql and mysql.new.sql) into the stores of the
 * configured hosts, with parleyd stopped, inside parleyctl.  Loop thread
 * (parleyctl's own loop, which runs nothing else): the source is read with
 * the SQL driver of storage/sql.h on this thread, a connection of its own
 * in a read-only session; the destination is written through the storage
 * interface, waiting for each call as the XEP-0227 import does.
 *
 * Each ejabberd user becomes the <user/> element of a XEP-0227 document
 * (its SCRAM values or plain password, roster items with their groups,
 * pending subscription requests as <presence type='subscribe'/>, vCard,
 * private XML, offline messages in their order, privacy lists with the
 * default one) and is stored by the XEP-0227 import's own code, so both
 * read ejabberd's data alike (its block list kept as the deny-all items of
 * the default privacy list goes to the block list).  Its MAM archive is
 * stored after it.
 *
 * Invariants:
 * - Nothing is written to the source: the session is read-only.
 * - A user whose account exists is skipped whole; a user that fails leaves
 *   nothing behind, so running the import again completes it.
 * - Passwords and SCRAM keys live only in the row buffers and the
 *   document, which are wiped; they are never logged.
 */
#include "ctl-ejabberd-sql.h"
#include "ctl-xep0227.h"
#include "lib/jid.h"
#include "lib/log.h"
#include "lib/xml.h"
#include "storage/sql.h"
#include "storage/storage.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NS_PIE "urn:xmpp:pie:0"
#define NS_PIE_SCRAM "urn:xmpp:pie:0#scram"
#define NS_PRIVATE "jabber:iq:private"
#define NS_PRIVACY "jabber:iq:privacy"

/* A statement deadline long enough for a large archive. */
#define SOURCE_TIMEOUT 600.0

struct source {
	const struct sql_driver_vfuncs *drv;
	struct sql_conn *conn;
	bool multi; /* the server_host schema (*.new.sql) */
	char *error;
};

/* What was imported, per kind. */
struct counts {
	unsigned users, skipped, failed;
	unsigned roster, pending, vcards, private_items, offline, privacy_lists, blocked, archive;
};

/* ---- reading the source ------------------------------------------------------------- */

/* Prepare sql with the user (and host, on the multi-host schema) bound
 * to its two last placeholders; NULL with s->error set. */
static struct sql_stmt *user_query(struct source *s, const char *sql_single, const char *sql_multi,
                                   const char *host, const char *user)
{
	struct sql_stmt *st = s->drv->prepare(s->conn, s->multi ? sql_multi : sql_single);
	if (st == NULL || s->drv->bind_text(st, 1, user) < 0 ||
	    (s->multi && s->drv->bind_text(st, 2, host) < 0)) {
		free(s->error);
		s->error = xasprintf("%s", s->drv->error_message(s->conn));
		if (st != NULL)
			s->drv->reset(st);
		return NULL;
	}
	return st;
}

/* The text of column col, "" for NULL. */
static const char *col(struct source *s, struct sql_stmt *st, unsigned c)
{
	const char *t = s->drv->column_text(st, c);
	return t != NULL ? t : "";
}

/* A boolean column as PostgreSQL ("t") or MySQL (1) gives it. */
static bool col_bool(struct source *s, struct sql_stmt *st, unsigned c)
{
	const char *t = col(s, st, c);
	return strcmp(t, "t") == 0 || strcmp(t, "1") == 0 || strcmp(t, "true") == 0;
}

/* The end of a statement's rows: 0, or -1 with s->error. */
static int step_end(struct source *s, struct sql_stmt *st, enum sql_step r)
{
	s->drv->reset(st);
	if (r == SQL_STEP_ERROR) {
		free(s->error);
		s->error = xasprintf("%s", s->drv->error_message(s->conn));
		return -1;
	}
	return 0;
}

static struct xml_node *parse_stored(const char *text, const char *default_ns)
{
	size_t len = strlen(text);
	const struct xml_parser_limits lim = { .max_stanza = len + 1, .max_depth = 1024, .max_attrs = 1024 };
	const char *err = NULL;
	return len > 0 ? xml_parse_string(text, len, default_ns, &lim, &err) : NULL;
}

static void add_text_child(struct xml_node *parent, const char *name, const char *text)
{
	struct xml_node *el = xml_add_child(parent, name, NULL);
	xml_add_text(el, text, strlen(text));
}

/* The SCRAM hash of a StoredKey as ejabberd keeps it (base64 of the key),
 * by the key's length; NULL when it is not one. */
static const char *scram_mechanism(const char *stored_key_b64)
{
	unsigned char *raw = NULL;
	size_t len = 0;
	if (base64_decode(stored_key_b64, strlen(stored_key_b64), &raw, &len) < 0)
		return NULL;
	explicit_bzero(raw, len);
	free(raw);
	return len == 20 ? "SCRAM-SHA-1" : len == 32 ? "SCRAM-SHA-256" : len == 64 ? "SCRAM-SHA-512" : NULL;
}

/* users: password is the plain password, or with iterationcount > 0 the
 * StoredKey, serverkey and salt (base64 each). */
static void add_credentials(struct xml_node *u, const char *password, const char *serverkey, const char *salt,
                            const char *iterations)
{
	if (strcmp(iterations, "0") == 0 || *iterations == '\0' || *serverkey == '\0') {
		xml_set_attr(u, "password", password);
		return;
	}
	const char *mech = scram_mechanism(password);
	struct xml_node *c = xml_add_child(u, "scram-credentials", NS_PIE_SCRAM);
	/* an unknown length is left to the XEP-0227 code to report */
	xml_set_attr(c, "mechanism", mech != NULL ? mech : "SCRAM-SHA-1");
	add_text_child(c, "iter-count", iterations);
	add_text_child(c, "salt", salt);
	add_text_child(c, "server-key", serverkey);
	add_text_child(c, "stored-key", password);
}

/* rosterusers: subscription N/T/F/B; ask S (subscribe) O (out) I (in)
 * B (both) U (unsubscribe) N (none); groups from rostergroups. */
static int add_roster(struct source *s, struct xml_node *u, const char *host, const char *user,
                      struct counts *n)
{
	struct sql_stmt *st = user_query(
	        s, "SELECT jid, nick, subscription, ask FROM rosterusers WHERE username = ? ORDER BY jid",
	        "SELECT jid, nick, subscription, ask FROM rosterusers WHERE username = ? AND server_host = ? "
	        "ORDER BY jid",
	        host, user);
	if (st == NULL)
		return -1;
	struct xml_node *q = xml_add_child(u, "query", NS_ROSTER);
	enum sql_step r;
	while ((r = s->drv->step(st)) == SQL_STEP_ROW) {
		const char *jid = col(s, st, 0), *nick = col(s, st, 1);
		char sub = *col(s, st, 2), ask = *col(s, st, 3);
		bool ask_in = ask == 'I' || ask == 'B', ask_out = ask == 'S' || ask == 'O' || ask == 'B';
		if (ask_in) {
			struct xml_node *p = xml_add_child(u, "presence", NS_CLIENT);
			xml_set_attr(p, "type", "subscribe");
			xml_set_attr(p, "from", jid);
			n->pending++;
		}
		/* A request alone is no roster item (ejabberd does not list it). */
		if (ask_in && !ask_out && sub == 'N' && *nick == '\0')
			continue;
		struct xml_node *it = xml_add_child(q, "item", NULL);
		xml_set_attr(it, "jid", jid);
		if (*nick != '\0')
			xml_set_attr(it, "name", nick);
		xml_set_attr(it, "subscription",
		             sub == 'B'   ? "both"
		             : sub == 'T' ? "to"
		             : sub == 'F' ? "from"
		                          : "none");
		if (ask_out)
			xml_set_attr(it, "ask", "subscribe");
		n->roster++;
	}
	if (step_end(s, st, r) < 0)
		return -1;
	st = user_query(s, "SELECT jid, grp FROM rostergroups WHERE username = ? ORDER BY jid, grp",
	                "SELECT jid, grp FROM rostergroups WHERE username = ? AND server_host = ? "
	                "ORDER BY jid, grp",
	                host, user);
	if (st == NULL)
		return -1;
	while ((r = s->drv->step(st)) == SQL_STEP_ROW) {
		const char *jid = col(s, st, 0);
		for (struct xml_node *it = xml_child(q, "item", NULL); it != NULL;
		     it = xml_next(it, "item", NULL))
			if (strcmp(xml_attr(it, "jid"), jid) == 0) {
				add_text_child(it, "group", col(s, st, 1));
				break;
			}
	}
	return step_end(s, st, r);
}

/* vcard, private_storage and spool: XML text, parsed; a value that does
 * not parse is reported and left out. */
static int add_stored_xml(struct source *s, struct xml_node *parent, const char *sql_single,
                          const char *sql_multi, const char *default_ns, const char *what, const char *host,
                          const char *user, struct buf *report, unsigned *count)
{
	struct sql_stmt *st = user_query(s, sql_single, sql_multi, host, user);
	if (st == NULL)
		return -1;
	enum sql_step r;
	while ((r = s->drv->step(st)) == SQL_STEP_ROW) {
		struct xml_node *el = parse_stored(col(s, st, 0), default_ns);
		if (el == NULL) {
			buf_printf(report, "note: %s@%s: a stored %s that does not parse is left out\n", user,
			           host, what);
			continue;
		}
		xml_append_copy(parent, el);
		xml_unref(&el);
		(*count)++;
	}
	return step_end(s, st, r);
}

/* privacy_list, privacy_list_data and privacy_default_list. */
static int add_privacy(struct source *s, struct xml_node *u, const char *host, const char *user,
                       struct counts *n)
{
	struct sql_stmt *st = user_query(
	        s, "SELECT name FROM privacy_default_list WHERE username = ?",
	        "SELECT name FROM privacy_default_list WHERE username = ? AND server_host = ?", host, user);
	if (st == NULL)
		return -1;
	char *def = NULL;
	enum sql_step r;
	while ((r = s->drv->step(st)) == SQL_STEP_ROW)
		if (def == NULL)
			def = xstrdup(col(s, st, 0));
	if (step_end(s, st, r) < 0) {
		free(def);
		return -1;
	}
	st = user_query(s,
	                "SELECT l.name, d.t, d.value, d.action, d.ord, d.match_all, d.match_iq, "
	                "d.match_message, d.match_presence_in, d.match_presence_out "
	                "FROM privacy_list l JOIN privacy_list_data d ON d.id = l.id "
	                "WHERE l.username = ? ORDER BY l.name, d.ord",
	                "SELECT l.name, d.t, d.value, d.action, d.ord, d.match_all, d.match_iq, "
	                "d.match_message, d.match_presence_in, d.match_presence_out "
	                "FROM privacy_list l JOIN privacy_list_data d ON d.id = l.id "
	                "WHERE l.username = ? AND l.server_host = ? ORDER BY l.name, d.ord",
	                host, user);
	if (st == NULL) {
		free(def);
		return -1;
	}
	struct xml_node *q = xml_add_child(u, "query", NS_PRIVACY);
	if (def != NULL)
		xml_set_attr(xml_add_child(q, "default", NULL), "name", def);
	struct xml_node *list = NULL;
	while ((r = s->drv->step(st)) == SQL_STEP_ROW) {
		const char *name = col(s, st, 0);
		if (list == NULL || strcmp(xml_attr(list, "name"), name) != 0) {
			list = xml_add_child(q, "list", NULL);
			xml_set_attr(list, "name", name);
			n->privacy_lists++;
		}
		struct xml_node *it = xml_add_child(list, "item", NULL);
		char t = *col(s, st, 1);
		const char *type = t == 'j' ? "jid" : t == 'g' ? "group" : t == 's' ? "subscription" : NULL;
		if (type != NULL) {
			xml_set_attr(it, "type", type);
			xml_set_attr(it, "value", col(s, st, 2));
		}
		xml_set_attr(it, "action", *col(s, st, 3) == 'a' ? "allow" : "deny");
		/* NUMERIC: an integer, perhaps written with a fraction */
		char *order = xstrdup(col(s, st, 4)), *dot = strchr(order, '.');
		if (dot != NULL)
			*dot = '\0';
		xml_set_attr(it, "order", order);
		free(order);
		/* ejabberd's block list: deny-all JID items of the default list */
		if (t == 'j' && *col(s, st, 3) == 'd' && col_bool(s, st, 5) && def != NULL &&
		    strcmp(name, def) == 0)
			n->blocked++;
		if (!col_bool(s, st, 5)) {
			static const char *const names[] = { "iq", "message", "presence-in", "presence-out" };
			for (unsigned i = 0; i < 4; i++)
				if (col_bool(s, st, 6 + i))
					xml_add_child(it, names[i], NULL);
		}
	}
	free(def);
	return step_end(s, st, r);
}

/* The <user/> of user at host, from every table; NULL with s->error. */
static struct xml_node *read_user(struct source *s, const char *host, const char *user, const char *password,
                                  const char *serverkey, const char *salt, const char *iterations,
                                  struct buf *report, struct counts *n)
{
	struct xml_node *u = xml_new("user", NS_PIE);
	xml_set_attr(u, "name", user);
	add_credentials(u, password, serverkey, salt, iterations);
	struct xml_node *priv = NULL, *off = NULL;
	if (add_roster(s, u, host, user, n) < 0)
		goto fail;
	if (add_stored_xml(s, u, "SELECT vcard FROM vcard WHERE username = ?",
	                   "SELECT vcard FROM vcard WHERE username = ? AND server_host = ?", NULL, "vCard",
	                   host, user, report, &n->vcards) < 0)
		goto fail;
	priv = xml_add_child(u, "query", NS_PRIVATE);
	if (add_stored_xml(s, priv, "SELECT data FROM private_storage WHERE username = ? ORDER BY namespace",
	                   "SELECT data FROM private_storage WHERE username = ? AND server_host = ? "
	                   "ORDER BY namespace",
	                   NULL, "private XML element", host, user, report, &n->private_items) < 0)
		goto fail;
	off = xml_add_child(u, "offline-messages", NULL);
	if (add_stored_xml(s, off, "SELECT xml FROM spool WHERE username = ? ORDER BY seq",
	                   "SELECT xml FROM spool WHERE username = ? AND server_host = ? ORDER BY seq",
	                   NS_CLIENT, "offline message", host, user, report, &n->offline) < 0)
		goto fail;
	if (add_privacy(s, u, host, user, n) < 0)
		goto fail;
	return u;
fail:
	xml_unref(&u);
	return NULL;
}

/* ---- the archive ----------------------------------------------------------------------- */

struct wait {
	bool done;
	enum storage_result res;
};

static void done_cb(enum storage_result res, void *ctx)
{
	struct wait *w = ctx;
	w->res = res;
	w->done = true;
}

static enum storage_result wait_for(struct ev_loop *loop, struct wait *w)
{
	while (!w->done)
		ev_run(loop, EVRUN_ONCE);
	return w->res;
}

/* Archived messages are stored ARCHIVE_BATCH at a time without waiting
 * for each (the store keeps one owner's jobs in order and commits them
 * together), then waited for. */
#define ARCHIVE_BATCH 256
/* Rows read from the source at a time (LIMIT in the query). */
#define ARCHIVE_PAGE 1000
#define STR_(x) #x
#define STR(x) STR_(x)

struct arch_batch {
	struct storage *st;
	const char *host, *owner;
	unsigned outstanding, stored;
	int64_t max_id; /* the largest id given so far */
	enum storage_result res;
};

struct arch_msg {
	struct arch_batch *b;
	struct mam_message mm;
	char *peer, *resource, *body, *stanza;
	unsigned tries;
};

static void arch_msg_free(struct arch_msg *m)
{
	free(m->peer);
	free(m->resource);
	free(m->body);
	free(m->stanza);
	free(m);
}

static void arch_stored(enum storage_result res, void *ctx)
{
	struct arch_msg *m = ctx;
	struct arch_batch *b = m->b;
	if (res == STORAGE_EXISTS && m->tries++ < 1000) {
		/* the id is taken: the next one after every id given */
		m->mm.id = ++b->max_id;
		storage_mam_store(b->st, b->host, b->owner, &m->mm, arch_stored, m);
		return;
	}
	if (res == STORAGE_OK)
		b->stored++;
	else if (b->res == STORAGE_OK)
		b->res = res;
	arch_msg_free(m);
	b->outstanding--;
}

static void arch_wait(struct ev_loop *loop, struct arch_batch *b)
{
	while (b->outstanding > 0)
		ev_run(loop, EVRUN_ONCE);
}

/* archive: timestamp (microseconds, also ejabberd's stanza-id), peer (the
 * other party's full JID), xml; only one-to-one messages (kind 'chat' or
 * none: room archives belong to the rooms).  The id Parley gives a message
 * is its time, moved on by a microsecond when taken.  0, or -1 with
 * s->error (source) or *res_r (store). */
static int import_archive(struct source *s, struct ev_loop *loop, struct storage *st, const char *host,
                          const char *user, struct buf *report, unsigned *count, enum storage_result *res_r)
{
	*res_r = STORAGE_OK;
	char *owner = xasprintf("%s@%s", user, host);
	struct arch_batch b = { .st = st, .host = host, .owner = owner };
	/* A page at a time (the drivers buffer a whole result): after the
	 * (timestamp, id) of the last row read. */
	int64_t after_ts = -1, after_id = -1;
	unsigned rows = ARCHIVE_PAGE;
	enum sql_step r = SQL_STEP_DONE;
	struct sql_stmt *q = NULL;
	while (b.res == STORAGE_OK && rows == ARCHIVE_PAGE) {
		q = user_query(
		        s,
		        "SELECT timestamp, peer, xml, txt, id FROM archive WHERE username = ? AND "
		        "(kind IS NULL OR kind <> 'groupchat') AND "
		        "(timestamp > ? OR (timestamp = ? AND id > ?)) ORDER BY timestamp, id LIMIT " STR(
		                ARCHIVE_PAGE),
		        "SELECT timestamp, peer, xml, txt, id FROM archive WHERE username = ? AND "
		        "server_host = ? AND (kind IS NULL OR kind <> 'groupchat') AND "
		        "(timestamp > ? OR (timestamp = ? AND id > ?)) ORDER BY timestamp, id LIMIT " STR(
		                ARCHIVE_PAGE),
		        host, user);
		unsigned k = s->multi ? 3 : 2;
		if (q == NULL || s->drv->bind_int64(q, k, after_ts) < 0 ||
		    s->drv->bind_int64(q, k + 1, after_ts) < 0 ||
		    s->drv->bind_int64(q, k + 2, after_id) < 0) {
			if (q != NULL) {
				free(s->error);
				s->error = xasprintf("%s", s->drv->error_message(s->conn));
				s->drv->reset(q);
			}
			arch_wait(loop, &b);
			free(owner);
			return -1;
		}
		rows = 0;
		while (b.res == STORAGE_OK && (r = s->drv->step(q)) == SQL_STEP_ROW) {
			rows++;
			after_ts = s->drv->column_int64(q, 0);
			after_id = s->drv->column_int64(q, 4);
			struct jid peer;
			const char *err;
			if (jid_parse(col(s, q, 1), &peer, &err) != 0) {
				buf_printf(report,
				           "note: %s: an archived message with a peer that is not a JID is "
				           "left out\n",
				           owner);
				continue;
			}
			struct xml_node *msg = parse_stored(col(s, q, 2), NS_CLIENT);
			if (msg == NULL || !xml_is(msg, "message", NS_CLIENT)) {
				buf_printf(report,
				           "note: %s: an archived message that does not parse is left out\n",
				           owner);
				xml_unref(&msg);
				jid_clear(&peer);
				continue;
			}
			struct arch_msg *m = xcalloc(1, sizeof(*m));
			m->b = &b;
			m->peer = jid_bare_string(&peer);
			m->resource = xstrdup(peer.resource != NULL ? peer.resource : "");
			jid_clear(&peer);
			const char *from = xml_attr(msg, "from");
			struct jid fj;
			if (from != NULL && jid_parse(from, &fj, &err) == 0) {
				char *fb = jid_bare_string(&fj);
				m->mm.outgoing = strcmp(fb, owner) == 0;
				free(fb);
				jid_clear(&fj);
			}
			const char *body = xml_child_text(msg, "body", NULL),
			           *txt = s->drv->column_text(q, 3);
			if (body == NULL && txt != NULL && *txt != '\0')
				body = txt;
			m->body = body != NULL ? xstrdup(body) : NULL;
			m->stanza = xml_to_string(msg, NS_CLIENT);
			xml_unref(&msg);
			int64_t id = s->drv->column_int64(q, 0);
			m->mm.id = id > b.max_id ? id : b.max_id + 1;
			b.max_id = m->mm.id;
			m->mm.peer = m->peer;
			m->mm.resource = m->resource;
			m->mm.body = m->body;
			m->mm.stanza = m->stanza;
			b.outstanding++;
			storage_mam_store(st, host, owner, &m->mm, arch_stored, m);
			if (b.outstanding >= ARCHIVE_BATCH)
				arch_wait(loop, &b);
		}
		if (b.res != STORAGE_OK) {
			s->drv->reset(q);
		} else if (step_end(s, q, r) < 0) {
			arch_wait(loop, &b);
			free(owner);
			return -1;
		}
	}
	arch_wait(loop, &b);
	*count += b.stored;
	*res_r = b.res;
	free(owner);
	return b.res == STORAGE_OK ? 0 : -1;
}

/* ---- the run ------------------------------------------------------------------------------ */

#define FAILURES_SHOWN 10

struct run {
	struct ev_loop *loop;
	const struct parley_config *cfg;
	struct buf *report;
	struct buf failures;
	unsigned nfailures, read;
	struct counts n;
	bool stop;
};

static void run_fail(struct run *r, char *msg)
{
	buf_printf(r->report, "failed: %s\n", msg);
	if (r->nfailures < FAILURES_SHOWN)
		buf_printf(&r->failures, "%s%s", r->failures.len > 0 ? "\n" : "", msg);
	r->nfailures++;
	free(msg);
}

struct row {
	char *user, *password, *serverkey, *salt, *iterations;
};

static void row_clear(struct row *w)
{
	char *secrets[] = { w->password, w->serverkey, w->salt };
	for (size_t i = 0; i < ARRAY_SIZE(secrets); i++)
		if (secrets[i] != NULL) {
			explicit_bzero(secrets[i], strlen(secrets[i]));
			free(secrets[i]);
		}
	free(w->user);
	free(w->iterations);
	memset(w, 0, sizeof(*w));
}

/* Every row of users at host, in name order: 0, or -1 with s->error. */
static int read_users(struct source *s, const char *host, struct row **rows_r, size_t *n_r)
{
	*rows_r = NULL;
	*n_r = 0;
	const char *sql = s->multi ? "SELECT username, password, serverkey, salt, iterationcount FROM users "
	                             "WHERE server_host = ? ORDER BY username"
	                           : "SELECT username, password, serverkey, salt, iterationcount FROM users "
	                             "ORDER BY username";
	struct sql_stmt *st = s->drv->prepare(s->conn, sql);
	if (st == NULL || (s->multi && s->drv->bind_text(st, 1, host) < 0)) {
		s->error = xasprintf("%s", s->drv->error_message(s->conn));
		return -1;
	}
	enum sql_step r;
	size_t n = 0;
	struct row *rows = NULL;
	while ((r = s->drv->step(st)) == SQL_STEP_ROW) {
		rows = xrealloc(rows, (n + 1) * sizeof(*rows));
		rows[n++] =
		        (struct row){ xstrdup(col(s, st, 0)), xstrdup(col(s, st, 1)), xstrdup(col(s, st, 2)),
			              xstrdup(col(s, st, 3)), xstrdup(col(s, st, 4)) };
	}
	*rows_r = rows;
	*n_r = n;
	return step_end(s, st, r);
}

static void add_counts(struct counts *to, const struct counts *from)
{
	to->roster += from->roster;
	to->pending += from->pending;
	to->vcards += from->vcards;
	to->private_items += from->private_items;
	to->offline += from->offline;
	to->privacy_lists += from->privacy_lists;
	to->blocked += from->blocked;
	to->archive += from->archive;
}

static void import_one(struct run *r, struct source *s, struct storage *st, const struct host_config *hc,
                       const struct row *w)
{
	r->read++;
	char *user = jid_nodeprep(w->user);
	if (user == NULL || *user == '\0') {
		run_fail(r, xasprintf("a user of host %s has no valid name ('%s')", hc->name, w->user));
		free(user);
		return;
	}
	char *jid = xasprintf("%s@%s", user, hc->name);
	enum storage_result res;
	struct counts n = { 0 };
	char *err = NULL;
	if (strcmp(user, w->user) != 0) {
		/* ejabberd keeps names prepared: a second spelling is a second row */
		run_fail(r, xasprintf("%s: the name '%s' is not in its prepared form; not imported", jid,
		                      w->user));
	} else if (xep0227_account_exists(r->loop, st, hc->name, user, &res)) {
		buf_printf(r->report, "skipped: %s exists\n", jid);
		r->n.skipped++;
	} else if (res != STORAGE_NOT_FOUND) {
		run_fail(r,
		         xasprintf("%s: cannot read the account: storage %s", jid, storage_result_str(res)));
		r->stop = res == STORAGE_TEMPFAIL;
	} else {
		struct xml_node *u = read_user(s, hc->name, user, w->password, w->serverkey, w->salt,
		                               w->iterations, r->report, &n);
		int rc = u == NULL ? -3 : xep0227_import_user(r->loop, st, hc, user, u, r->report, &err);
		if (u != NULL) {
			xep0227_wipe_secrets(u);
			xml_unref(&u);
		}
		if (rc == 0 &&
		    import_archive(s, r->loop, st, hc->name, user, r->report, &n.archive, &res) < 0) {
			struct wait rw = { 0 };
			storage_account_remove(st, hc->name, user, done_cb, &rw);
			enum storage_result rres = wait_for(r->loop, &rw);
			const char *gone = rres == STORAGE_OK
			                           ? "the account is removed again"
			                           : "and the account cannot be removed: remove it with "
			                             "parleyctl unregister before importing it again";
			if (res != STORAGE_OK) {
				err = xasprintf("%s: cannot store the archive: storage %s (%s)", jid,
				                storage_result_str(res), gone);
				rc = res == STORAGE_TEMPFAIL ? -2 : -1;
			} else {
				err = xasprintf("%s: reading its archive: %s (%s)", jid, s->error, gone);
				rc = -3;
			}
		}
		if (rc == -3 && err == NULL)
			err = xasprintf("%s: reading the source: %s", jid, s->error);
		if (rc == 0) {
			buf_printf(r->report, "imported: %s\n", jid);
			r->n.users++;
			add_counts(&r->n, &n);
		} else {
			run_fail(r, err);
			r->n.failed++;
			/* the store or the source is gone: the next users would fail alike */
			r->stop = rc == -2 || rc == -3;
		}
	}
	free(jid);
	free(user);
}

static void import_host(struct run *r, struct source *s, const struct host_config *hc)
{
	struct storage *st = NULL;
	char *err = NULL;
	if (storage_open(r->loop, &hc->storage, &st, &err) < 0) {
		run_fail(r, xasprintf("host %s: %s", hc->name, err));
		free(err);
		r->stop = true;
		return;
	}
	struct row *rows = NULL;
	size_t n = 0;
	if (read_users(s, hc->name, &rows, &n) < 0) {
		run_fail(r, xasprintf("host %s: reading the users: %s", hc->name, s->error));
		r->stop = true;
	}
	for (size_t i = 0; i < n; i++) {
		if (!r->stop)
			import_one(r, s, st, hc, &rows[i]);
		row_clear(&rows[i]);
	}
	free(rows);
	storage_close(&st);
}

/* 0 when stmt runs on the source (its rows are not read). */
static int probe(struct source *s, const char *sql)
{
	struct sql_stmt *st = s->drv->prepare(s->conn, sql);
	if (st == NULL) {
		free(s->error);
		s->error = xasprintf("%s", s->drv->error_message(s->conn));
		return -1;
	}
	enum sql_step r;
	while ((r = s->drv->step(st)) == SQL_STEP_ROW)
		;
	return step_end(s, st, r);
}

static int open_source(struct source *s, const char *dsn, const char *password_file, char **error_r)
{
	const char *colon = strchr(dsn, ':');
	char *driver = colon != NULL ? xstrndup(dsn, (size_t)(colon - dsn)) : NULL;
	if (driver == NULL || (strcmp(driver, "pgsql") != 0 && strcmp(driver, "mysql") != 0)) {
		*error_r =
		        xasprintf("--dsn must start with pgsql: or mysql: (\"pgsql:host=db dbname=ejabberd "
		                  "user=ejabberd\")");
		free(driver);
		return -1;
	}
	s->drv = sql_driver_find(driver);
	if (s->drv == NULL) {
		*error_r = xasprintf("this parleyctl is built without the %s driver", driver);
		free(driver);
		return -1;
	}
	struct storage_config sc;
	storage_config_defaults(&sc);
	free(sc.driver);
	sc.driver = driver;
	sc.dsn = xstrdup(colon + 1);
	sc.password_file = password_file != NULL ? xstrdup(password_file) : NULL;
	sc.timeout = SOURCE_TIMEOUT;
	char *err = NULL;
	s->conn = s->drv->connect(&sc, &err);
	char *desc = s->drv->describe(&sc);
	storage_config_free(&sc);
	if (s->conn == NULL) {
		*error_r = xasprintf("%s: %s", desc, err);
		free(err);
		free(desc);
		return -1;
	}
	/* Read only: the database stays ejabberd's. */
	const char *ro = strcmp(s->drv->name, "pgsql") == 0
	                         ? "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY"
	                         : "SET SESSION TRANSACTION READ ONLY";
	if (s->drv->exec(s->conn, ro) < 0) {
		*error_r = xasprintf("%s: cannot make the session read-only: %s", desc,
		                     s->drv->error_message(s->conn));
	} else if (probe(s, "SELECT username, password, serverkey, salt, iterationcount FROM users WHERE 1 = "
	                    "0") < 0) {
		*error_r = xasprintf("%s: not an ejabberd database (its users table: %s)", desc, s->error);
	} else {
		s->multi = probe(s, "SELECT server_host FROM users WHERE 1 = 0") == 0;
		free(desc);
		return 0;
	}
	free(desc);
	s->drv->disconnect(s->conn);
	s->conn = NULL;
	return -1;
}

int ejabberd_sql_import(struct ev_loop *loop, const struct parley_config *cfg, const char *dsn,
                        const char *password_file, const char *host, struct buf *report, char **error_r)
{
	*error_r = NULL;
	struct source s = { 0 };
	const struct host_config *only = NULL;
	if (host != NULL) {
		char *domain = jid_nameprep(host);
		only = domain != NULL ? config_host(cfg, domain) : NULL;
		free(domain);
		if (only == NULL) {
			*error_r = xasprintf("host %s is not in %s", host, cfg->file);
			return -1;
		}
	}
	if (open_source(&s, dsn, password_file, error_r) < 0) {
		free(s.error);
		return -1;
	}
	struct run r = { .loop = loop, .cfg = cfg, .report = report };
	buf_printf(report, "source: ejabberd's %s schema\n",
	           s.multi ? "multi-host (server_host)" : "single-host");
	if (!s.multi) {
		if (only == NULL)
			run_fail(&r,
			         xasprintf(
			                 "the database has ejabberd's single-host schema, which does not say "
			                 "whose users it holds: name the host with --host"));
		else
			import_host(&r, &s, only);
	} else {
		/* Every host of the database, the ones not configured reported. */
		struct strlist hosts = { 0 };
		struct sql_stmt *st =
		        s.drv->prepare(s.conn, "SELECT DISTINCT server_host FROM users ORDER BY server_host");
		enum sql_step sr = SQL_STEP_ERROR;
		while (st != NULL && (sr = s.drv->step(st)) == SQL_STEP_ROW) {
			hosts.items = xrealloc(hosts.items, (hosts.count + 1) * sizeof(char *));
			hosts.items[hosts.count++] = xstrdup(col(&s, st, 0));
		}
		if (st == NULL || step_end(&s, st, sr) < 0) {
			run_fail(&r, xasprintf("reading the hosts: %s", s.drv->error_message(s.conn)));
			r.stop = true;
		}
		for (size_t i = 0; i < hosts.count && !r.stop; i++) {
			char *domain = jid_nameprep(hosts.items[i]);
			const struct host_config *hc = domain != NULL ? config_host(cfg, domain) : NULL;
			free(domain);
			if (only != NULL && hc != only)
				continue;
			if (hc == NULL)
				run_fail(&r, xasprintf("host %s of the database is not in %s (add it): its "
				                       "users are "
				                       "not imported",
				                       hosts.items[i], cfg->file));
			else
				import_host(&r, &s, hc);
		}
		strlist_free(&hosts);
	}
	s.drv->disconnect(s.conn);
	free(s.error);
	buf_printf(
	        report,
	        "imported %u user%s, skipped %u, %u failure%s\n"
	        "imported %u roster item%s, %u pending request%s, %u vCard%s, %u private XML element%s, "
	        "%u offline message%s, %u privacy list%s (%u blocked JID%s in them), %u archived message%s\n",
	        r.n.users, r.n.users == 1 ? "" : "s", r.n.skipped, r.nfailures, r.nfailures == 1 ? "" : "s",
	        r.n.roster, r.n.roster == 1 ? "" : "s", r.n.pending, r.n.pending == 1 ? "" : "s", r.n.vcards,
	        r.n.vcards == 1 ? "" : "s", r.n.private_items, r.n.private_items == 1 ? "" : "s", r.n.offline,
	        r.n.offline == 1 ? "" : "s", r.n.privacy_lists, r.n.privacy_lists == 1 ? "" : "s",
	        r.n.blocked, r.n.blocked == 1 ? "" : "s", r.n.archive, r.n.archive == 1 ? "" : "s");
	int rc = 0;
	if (r.nfailures > 0) {
		*error_r = xasprintf(
		        "%s%s\n%u failure%s%s; %u of the %u user%s read imported", r.failures.data,
		        r.nfailures > FAILURES_SHOWN ? "\n..." : "", r.nfailures, r.nfailures == 1 ? "" : "s",
		        r.stop ? ", the import stopped" : "", r.n.users, r.read, r.read == 1 ? "" : "s");
		rc = -1;
	}
	buf_free(&r.failures);
	return rc;
}
