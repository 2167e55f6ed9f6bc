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
 * the default privacy list goes to the block list).  Its MAM archive,
 * archiving preferences and last activity are stored after it.
 *
 * After a host's users come its persistent rooms (muc_room, whose options
 * are an Erlang term in text, read by lib/erlterm.c) into the MUC store,
 * in the muc module's own stored configuration (muc_config_serialize),
 * each followed by its archive; then the nicks registered with the
 * host's MUC services.  Room options with no Parley equivalent, or not
 * known, are reported on note: lines.
 *
 * The run keeps its own counts and failure list rather than the XEP-0227
 * run of ctl-xep0227.h (xep0227_run_*): that one reports a user imported
 * as soon as its <user/> is stored, while here the archive, preferences
 * and last activity follow and a failure of theirs removes the account
 * again; and its summary has no place for rooms and nicks.
 *
 * Invariants:
 * - Nothing is written to the source: the session is read-only.
 * - A user whose account exists is skipped whole; a user that fails leaves
 *   nothing behind, so running the import again completes it.  So is a
 *   room, with its archive.
 * - Passwords and SCRAM keys live only in the row buffers and the
 *   document, which are wiped; they are never logged.
 */
#include "ctl-ejabberd-sql.h"
#include "ctl-xep0227.h"
#include "lib/erlterm.h"
#include "lib/jid.h"
#include "lib/log.h"
#include "lib/xml.h"
#include "modules/builtin.h"
#include "modules/muc/muc.h"
#include "server/module.h"
#include "storage/sql.h"
#include "storage/storage.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
	unsigned prefs, last;
	unsigned rooms, rooms_skipped, room_affs, room_archive, nicks;
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

/* The JID of ejabberd's {User, Server, Resource} (or a JID as text), as a
 * malloc'd prepared JID (bare without a resource); NULL when it is none. */
static char *ejabberd_jid(const struct erlterm *t)
{
	char *text = NULL;
	if (t->kind == ERLTERM_TUPLE && t->n == 3 && erlterm_text(t->items[0]) != NULL &&
	    erlterm_text(t->items[1]) != NULL && erlterm_text(t->items[2]) != NULL) {
		const char *u = t->items[0]->text, *srv = t->items[1]->text, *res = t->items[2]->text;
		text = xasprintf("%s%s%s%s%s", u, *u != '\0' ? "@" : "", srv, *res != '\0' ? "/" : "", res);
	} else if (t->kind == ERLTERM_BINARY || t->kind == ERLTERM_STRING) {
		text = xstrdup(t->text);
	}
	struct jid j;
	const char *err;
	if (text == NULL || jid_parse(text, &j, &err) != 0) {
		free(text);
		return NULL;
	}
	free(text);
	char *out = j.resource != NULL ? jid_to_string(&j) : jid_bare_string(&j);
	jid_clear(&j);
	return out;
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

/* Prepare sql and bind the n texts to its first placeholders; NULL with
 * s->error. */
static struct sql_stmt *query_texts(struct source *s, const char *sql, const char *const *args, unsigned n)
{
	struct sql_stmt *st = s->drv->prepare(s->conn, sql);
	for (unsigned i = 0; st != NULL && i < n; i++)
		if (s->drv->bind_text(st, i + 1, args[i]) < 0) {
			s->drv->reset(st);
			st = NULL;
		}
	if (st == NULL) {
		free(s->error);
		s->error = xasprintf("%s", s->drv->error_message(s->conn));
	}
	return st;
}

#define ARCHIVE_COLUMNS "SELECT timestamp, peer, xml, txt, id, nick FROM archive WHERE "
#define ARCHIVE_AFTER \
	" AND (timestamp > ? OR (timestamp = ? AND id > ?)) ORDER BY timestamp, id LIMIT " STR(ARCHIVE_PAGE)

/* archive: timestamp (microseconds, also ejabberd's stanza-id), peer (the
 * other party's full JID), xml, nick.  Without service, user's one-to-one
 * messages (kind 'chat' or none); with it, the archive of the room user
 * of that MUC service (kind 'groupchat', username the room's JID or, as
 * some versions wrote it, its name), each message stored as the room's
 * with its sender's nick.  The id Parley gives a message is its time,
 * moved on by a microsecond when taken.  0, or -1 with s->error (source)
 * or *res_r (store). */
static int import_archive(struct source *s, struct ev_loop *loop, struct storage *st, const char *host,
                          const char *user, const char *service, struct buf *report, unsigned *count,
                          enum storage_result *res_r)
{
	*res_r = STORAGE_OK;
	char *owner = xasprintf("%s@%s", user, service != NULL ? service : host);
	struct arch_batch b = { .st = st, .host = host, .owner = owner };
	const char *sql =
	        service == NULL
	                ? (s->multi ? ARCHIVE_COLUMNS "username = ? AND server_host = ? AND "
	                                              "(kind IS NULL OR kind <> 'groupchat')" ARCHIVE_AFTER
	                            : ARCHIVE_COLUMNS "username = ? AND "
	                                              "(kind IS NULL OR kind <> 'groupchat')" ARCHIVE_AFTER)
	                : (s->multi ? ARCHIVE_COLUMNS "username IN (?, ?) AND server_host = ? AND "
	                                              "kind = 'groupchat'" ARCHIVE_AFTER
	                            : ARCHIVE_COLUMNS "username IN (?, ?) AND "
	                                              "kind = 'groupchat'" ARCHIVE_AFTER);
	const char *args[3];
	unsigned nargs = 0;
	args[nargs++] = service == NULL ? user : owner;
	if (service != NULL)
		args[nargs++] = user;
	if (s->multi)
		args[nargs++] = host;
	/* A page at a time (the drivers buffer a whole result): after the
	 * (timestamp, id) of the last row read. */
	int64_t after_ts = -1, after_id = -1;
	unsigned rows = ARCHIVE_PAGE;
	enum sql_step r = SQL_STEP_DONE;
	struct sql_stmt *q = NULL;
	while (b.res == STORAGE_OK && rows == ARCHIVE_PAGE) {
		q = query_texts(s, sql, args, nargs);
		unsigned k = nargs + 1;
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
			if (service == NULL && jid_parse(col(s, q, 1), &peer, &err) != 0) {
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
				if (service == NULL)
					jid_clear(&peer);
				continue;
			}
			struct arch_msg *m = xcalloc(1, sizeof(*m));
			m->b = &b;
			const char *from = xml_attr(msg, "from");
			struct jid fj;
			bool have_from = from != NULL && jid_parse(from, &fj, &err) == 0;
			if (service == NULL) {
				m->peer = jid_bare_string(&peer);
				m->resource = xstrdup(peer.resource != NULL ? peer.resource : "");
				jid_clear(&peer);
				if (have_from) {
					char *fb = jid_bare_string(&fj);
					m->mm.outgoing = strcmp(fb, owner) == 0;
					free(fb);
				}
			} else {
				/* the sender's room JID: the room and the nick */
				const char *nick = col(s, q, 5);
				char *fb = have_from ? jid_bare_string(&fj) : NULL;
				if (*nick == '\0' && fb != NULL && strcmp(fb, owner) == 0 &&
				    fj.resource != NULL)
					nick = fj.resource; /* kept as the room sent it */
				free(fb);
				m->peer = xstrdup(owner);
				m->resource = xstrdup(nick);
				/* ejabberd keeps the message as the sender sent it
				 * (from the real JID); the room's archive keeps it as
				 * the room sent it, from the sender's room JID */
				char *room_jid = xasprintf("%s/%s", owner, nick);
				xml_set_attr(msg, "from", *nick != '\0' ? room_jid : owner);
				xml_set_attr(msg, "to", NULL);
				free(room_jid);
			}
			if (have_from)
				jid_clear(&fj);
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

/* archive_prefs: def ('always', 'never', 'roster'), always and never (lists
 * of JIDs as binaries, Erlang term text).  0, or -1 with s->error (source)
 * or *res_r (store). */
static int import_prefs(struct source *s, struct ev_loop *loop, struct storage *st, const char *host,
                        const char *user, struct buf *report, unsigned *count, enum storage_result *res_r)
{
	*res_r = STORAGE_OK;
	struct sql_stmt *q = user_query(
	        s, "SELECT def, always, never FROM archive_prefs WHERE username = ?",
	        "SELECT def, always, never FROM archive_prefs WHERE username = ? AND server_host = ?", host,
	        user);
	if (q == NULL)
		return -1;
	enum sql_step r = s->drv->step(q);
	if (r != SQL_STEP_ROW)
		return step_end(s, q, r);
	char *owner = xasprintf("%s@%s", user, host);
	const char *def = col(s, q, 0);
	struct mam_prefs prefs = { 0 };
	struct strlist lists[2] = { { 0 }, { 0 } };
	bool ok = true;
	if (strcmp(def, "always") == 0)
		prefs.def = MAM_DEFAULT_ALWAYS;
	else if (strcmp(def, "never") == 0)
		prefs.def = MAM_DEFAULT_NEVER;
	else if (strcmp(def, "roster") == 0)
		prefs.def = MAM_DEFAULT_ROSTER;
	else {
		buf_printf(report, "note: %s: archive preferences with the default '%s' are not imported\n",
		           owner, def);
		ok = false;
	}
	for (unsigned i = 0; i < 2 && ok; i++) {
		const char *text = col(s, q, 1 + i);
		char *err = NULL;
		const struct erlterm_limits lim = { .max_depth = 4 };
		struct erlterm *t = *text != '\0' ? erlterm_parse(text, strlen(text), &lim, &err) : NULL;
		if (t == NULL || t->kind != ERLTERM_LIST) {
			if (*text != '\0')
				buf_printf(report,
				           "note: %s: the archive preferences' %s list is not a list of JIDs "
				           "(%s): "
				           "the preferences are not imported\n",
				           owner, i == 0 ? "always" : "never",
				           err != NULL ? err : "not a list");
			ok = *text == '\0';
		}
		for (size_t k = 0; t != NULL && t->kind == ERLTERM_LIST && k < t->n; k++) {
			char *bare = ejabberd_jid(t->items[k]);
			if (bare == NULL) {
				char *v = erlterm_format(t->items[k], 200);
				buf_printf(report,
				           "note: %s: %s in the archive preferences is no JID: left out\n",
				           owner, v);
				free(v);
				continue;
			}
			lists[i].items = xrealloc(lists[i].items, (lists[i].count + 1) * sizeof(char *));
			lists[i].items[lists[i].count++] = bare;
		}
		erlterm_free(&t);
		free(err);
	}
	s->drv->reset(q);
	if (ok) {
		prefs.always = (const char *const *)lists[0].items;
		prefs.n_always = lists[0].count;
		prefs.never = (const char *const *)lists[1].items;
		prefs.n_never = lists[1].count;
		struct wait w = { 0 };
		storage_mam_prefs_set(st, host, owner, &prefs, done_cb, &w);
		*res_r = wait_for(loop, &w);
		if (*res_r == STORAGE_OK)
			(*count)++;
	}
	strlist_free(&lists[0]);
	strlist_free(&lists[1]);
	free(owner);
	return *res_r == STORAGE_OK ? 0 : -1;
}

/* last: seconds (text: the time of the last logout) and state (the status
 * of the last unavailable presence).  0, or -1 with s->error (source) or
 * *res_r (store). */
static int import_last(struct source *s, struct ev_loop *loop, struct storage *st, const char *host,
                       const char *user, struct buf *report, unsigned *count, enum storage_result *res_r)
{
	*res_r = STORAGE_OK;
	struct sql_stmt *q = user_query(
	        s, "SELECT seconds, state FROM last WHERE username = ?",
	        "SELECT seconds, state FROM last WHERE username = ? AND server_host = ?", host, user);
	if (q == NULL)
		return -1;
	enum sql_step r = s->drv->step(q);
	if (r != SQL_STEP_ROW)
		return step_end(s, q, r);
	const char *secs = col(s, q, 0);
	char *end = NULL;
	long long seconds = strtoll(secs, &end, 10);
	if (*secs == '\0' || *end != '\0' || seconds < 0) {
		buf_printf(report, "note: %s@%s: a last activity time '%s' that is no number is left out\n",
		           user, host, secs);
		s->drv->reset(q);
		return 0;
	}
	char *state = xstrdup(col(s, q, 1));
	s->drv->reset(q);
	struct wait w = { 0 };
	storage_last_set(st, host, user, seconds, *state != '\0' ? state : NULL, done_cb, &w);
	*res_r = wait_for(loop, &w);
	free(state);
	if (*res_r == STORAGE_OK)
		(*count)++;
	return *res_r == STORAGE_OK ? 0 : -1;
}

/* What is stored after the user's account: its archive, archive
 * preferences and last activity. 0, or -1 with s->error (source) or
 * *res_r (store). */
static int import_extras(struct source *s, struct ev_loop *loop, struct storage *st, const char *host,
                         const char *user, struct buf *report, struct counts *n, enum storage_result *res_r)
{
	if (import_archive(s, loop, st, host, user, NULL, report, &n->archive, res_r) < 0)
		return -1;
	if (import_prefs(s, loop, st, host, user, report, &n->prefs, res_r) < 0)
		return -1;
	return import_last(s, loop, st, host, user, report, &n->last, res_r);
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
	to->prefs += from->prefs;
	to->last += from->last;
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
		if (rc == 0 && import_extras(s, r->loop, st, hc->name, user, r->report, &n, &res) < 0) {
			struct wait rw = { 0 };
			storage_account_remove(st, hc->name, user, done_cb, &rw);
			enum storage_result rres = wait_for(r->loop, &rw);
			const char *gone = rres == STORAGE_OK
			                           ? "the account is removed again"
			                           : "and the account cannot be removed: remove it with "
			                             "parleyctl unregister before importing it again";
			if (res != STORAGE_OK) {
				err = xasprintf("%s: cannot store the archive, its preferences or the last "
				                "activity: storage %s (%s)",
				                jid, storage_result_str(res), gone);
				rc = res == STORAGE_TEMPFAIL ? -2 : -1;
			} else {
				err = xasprintf("%s: reading its archive, archive preferences or last "
				                "activity: %s (%s)",
				                jid, s->error, gone);
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

/* ---- rooms ------------------------------------------------------------------------------ */

/* ejabberd's room options that Parley has no equivalent for, each with the
 * value that changes nothing (ejabberd's default): another value is
 * reported on a note: line. */
static const struct {
	const char *key, *neutral, *neutral2;
} unmapped_options[] = {
	{ "allow_query_users", "true", NULL },
	{ "allow_private_messages_from_visitors", "anyone", NULL },
	{ "allow_visitor_status", "true", NULL },
	{ "allow_visitor_nickchange", "true", NULL },
	{ "captcha_protected", "false", NULL },
	{ "captcha_whitelist", "[]", "{0,nil}" },
	{ "members_by_default", "true", NULL },
	{ "allow_subscription", "false", NULL },
	{ "subscribers", "[]", NULL },
	{ "vcard", "<<>>", NULL },
	{ "vcard_xupdate", "undefined", NULL },
	{ "enable_hats", "false", NULL },
	{ "hats_users", "[]", "#{}" },
	{ "hats_defs", "[]", "#{}" },
	{ "hibernation_time", "undefined", NULL },
};

#define CFG_AT(field) offsetof(struct muc_config, field)

static const struct {
	const char *key;
	size_t offset;
} bool_options[] = {
	{ "public", CFG_AT(public_room) },
	{ "persistent", CFG_AT(persistent) },
	{ "members_only", CFG_AT(members_only) },
	{ "moderated", CFG_AT(moderated) },
	{ "password_protected", CFG_AT(password_protected) },
	{ "allow_change_subj", CFG_AT(change_subject) },
	{ "allow_user_invites", CFG_AT(allow_invites) },
	{ "allow_voice_requests", CFG_AT(allow_voice_requests) },
	{ "logging", CFG_AT(enable_logging) },
	{ "mam", CFG_AT(archive) },
	{ "public_list", CFG_AT(public_list) },
};

static const struct {
	const char *key;
	size_t offset;
} text_options[] = {
	{ "title", CFG_AT(name) },        { "description", CFG_AT(description) }, { "lang", CFG_AT(lang) },
	{ "password", CFG_AT(password) }, { "pubsub", CFG_AT(pubsub) },
};

/* One room of the source, as read. */
struct room_row {
	char *name, *service, *opts, *created;
};

/* A room turned into what the MUC store keeps. */
struct room_import {
	struct muc_config cfg;
	char *subject, *subject_nick;
	struct muc_affiliation_item *affs;
	size_t naffs;
	struct strlist strings; /* the affiliations' JIDs and reasons */
};

static void room_import_clear(struct room_import *ri)
{
	muc_config_clear(&ri->cfg);
	free(ri->subject);
	free(ri->subject_nick);
	free(ri->affs);
	strlist_free(&ri->strings);
	memset(ri, 0, sizeof(*ri));
}

static const char *keep(struct room_import *ri, char *s)
{
	ri->strings.items = xrealloc(ri->strings.items, (ri->strings.count + 1) * sizeof(char *));
	ri->strings.items[ri->strings.count++] = s;
	return s;
}

static void option_note(struct buf *report, const char *room, const char *key, const struct erlterm *v,
                        const char *why)
{
	char *text = erlterm_format(v, 200);
	buf_printf(report, "note: %s: ejabberd's room option {%s,%s} %s\n", room, key, text, why);
	free(text);
}

/* affiliations: [{{User, Server, Resource}, Affiliation | {Affiliation, Reason}}] */
static void room_affiliations(struct room_import *ri, const struct erlterm *v, const char *room,
                              struct buf *report)
{
	if (v->kind != ERLTERM_LIST) {
		option_note(report, room, "affiliations", v, "is not a list: no affiliation is imported");
		return;
	}
	if (ri->affs != NULL) {
		/* the array is sized for the first list: a second one is left out,
		 * as a property list's first value is the one that counts */
		option_note(report, room, "affiliations", v, "is given twice: the first is kept");
		return;
	}
	ri->affs = xcalloc(v->n + 1, sizeof(*ri->affs));
	for (size_t i = 0; i < v->n; i++) {
		const struct erlterm *e = v->items[i], *who = NULL, *aff = NULL, *why = NULL;
		if (e->kind == ERLTERM_TUPLE && e->n == 2) {
			who = e->items[0];
			aff = e->items[1];
			if (aff->kind == ERLTERM_TUPLE && aff->n == 2) {
				why = aff->items[1];
				aff = aff->items[0];
			}
		}
		int a = aff != NULL && aff->kind == ERLTERM_ATOM ? muc_aff_parse(aff->text) : -1;
		char *jid = who != NULL ? ejabberd_jid(who) : NULL;
		if (jid == NULL || strchr(jid, '/') != NULL || a < 0 ||
		    (why != NULL && erlterm_text(why) == NULL)) {
			char *t = erlterm_format(e, 200);
			buf_printf(report, "note: %s: the affiliation %s is not understood: left out\n", room,
			           t);
			free(t);
			free(jid);
			continue;
		}
		if (a == MUC_AFF_NONE) {
			free(jid);
			continue;
		}
		struct muc_affiliation_item *it = &ri->affs[ri->naffs++];
		it->jid = keep(ri, jid);
		it->affiliation = muc_aff_str((enum muc_aff)a);
		it->reason = why != NULL ? keep(ri, xstrdup(erlterm_text(why))) : "";
	}
}

/* A text of ejabberd's subject (a binary, or in later versions a list of
 * {text, Lang, Text}); NULL when there is none. */
static const char *subject_text(const struct erlterm *v)
{
	if (v->kind == ERLTERM_LIST && v->n > 0 && v->items[0]->kind == ERLTERM_TUPLE && v->items[0]->n > 0)
		return erlterm_text(v->items[0]->items[v->items[0]->n - 1]);
	if (v->kind == ERLTERM_LIST && v->n == 0)
		return "";
	return v->kind == ERLTERM_BINARY || v->kind == ERLTERM_STRING ? v->text : NULL;
}

/* roles: [{{User, Server, Resource}, Role}], the roles ejabberd keeps for
 * users who are not in the room.  A role the affiliation gives anyway (a
 * moderator who is an owner or admin, a participant who is affiliated) is
 * one in Parley too; any other is reported: Parley keeps no roles for
 * absent users. */
static void room_roles(struct room_import *ri, const struct erlterm *v, const char *room, struct buf *report)
{
	for (size_t i = 0; v->kind == ERLTERM_LIST && i < v->n; i++) {
		const struct erlterm *e = v->items[i];
		char *jid = e->kind == ERLTERM_TUPLE && e->n == 2 ? ejabberd_jid(e->items[0]) : NULL;
		bool implied = false;
		for (size_t k = 0; jid != NULL && k < ri->naffs && !implied; k++)
			implied = strcmp(ri->affs[k].jid, jid) == 0 &&
			          ((erlterm_is_atom(e->items[1], "moderator") &&
			            (strcmp(ri->affs[k].affiliation, "owner") == 0 ||
			             strcmp(ri->affs[k].affiliation, "admin") == 0)) ||
			           (erlterm_is_atom(e->items[1], "participant") &&
			            strcmp(ri->affs[k].affiliation, "outcast") != 0));
		free(jid);
		if (!implied)
			option_note(report, room, "roles", e, "has no equivalent in Parley: not imported");
	}
	if (v->kind != ERLTERM_LIST)
		option_note(report, room, "roles", v, "is not a list: not imported");
}

/* The options of room (an Erlang property list) into ri, with the
 * service's defaults for what ejabberd does not say; every option that
 * does not come across is reported. */
static void room_options(struct room_import *ri, const struct erlterm *opts, const struct muc_settings *set,
                         const char *room, struct buf *report)
{
	muc_config_defaults(&ri->cfg, set);
	bool allowpm_seen = false, no_private_messages = false;
	const struct erlterm *roles = NULL;
	for (size_t i = 0; i < opts->n; i++) {
		const struct erlterm *o = opts->items[i];
		if (o->kind != ERLTERM_TUPLE || o->n != 2 || o->items[0]->kind != ERLTERM_ATOM) {
			char *t = erlterm_format(o, 200);
			buf_printf(report,
			           "note: %s: the room option %s is not a {key, value} pair: left out\n",
			           room, t);
			free(t);
			continue;
		}
		const char *key = o->items[0]->text;
		const struct erlterm *v = o->items[1];
		bool done = false;
		for (size_t k = 0; k < ARRAY_SIZE(bool_options) && !done; k++) {
			if (strcmp(key, bool_options[k].key) != 0)
				continue;
			done = true;
			if (erlterm_is_atom(v, "true") || erlterm_is_atom(v, "false"))
				*(bool *)((char *)&ri->cfg + bool_options[k].offset) =
				        erlterm_is_atom(v, "true");
			else
				option_note(report, room, key, v,
				            "is not true or false: the default is kept");
		}
		for (size_t k = 0; k < ARRAY_SIZE(text_options) && !done; k++) {
			if (strcmp(key, text_options[k].key) != 0)
				continue;
			done = true;
			const char *t =
			        v->kind == ERLTERM_BINARY || v->kind == ERLTERM_STRING ? v->text : NULL;
			char **field = (char **)((char *)&ri->cfg + text_options[k].offset);
			if (t == NULL || strlen(t) != v->len) {
				/* never the value of a password in the report */
				if (strcmp(key, "password") == 0)
					buf_printf(report,
					           "note: %s: ejabberd's room option password is not text: "
					           "the default is kept\n",
					           room);
				else
					option_note(report, room, key, v, "is not text: the default is kept");
			} else {
				if (*field != NULL)
					explicit_bzero(*field, strlen(*field));
				xfree(field);
				*field = *t != '\0' ? xstrdup(t) : NULL;
			}
		}
		if (done)
			continue;
		if (strcmp(key, "anonymous") == 0 &&
		    (erlterm_is_atom(v, "true") || erlterm_is_atom(v, "false"))) {
			ri->cfg.whois = erlterm_is_atom(v, "true") ? MUC_WHO_MODERATORS : MUC_WHO_ANYONE;
		} else if ((strcmp(key, "max_users") == 0 ||
		            strcmp(key, "voice_request_min_interval") == 0) &&
		           v->kind == ERLTERM_INTEGER && v->integer >= 0 && v->integer <= UINT32_MAX) {
			if (key[0] == 'm')
				ri->cfg.max_users = (unsigned)v->integer;
			else
				ri->cfg.voice_request_interval = (unsigned)v->integer;
		} else if (strcmp(key, "allowpm") == 0 && v->kind == ERLTERM_ATOM &&
		           (erlterm_is_atom(v, "anyone") || erlterm_is_atom(v, "participants") ||
		            erlterm_is_atom(v, "moderators") || erlterm_is_atom(v, "none"))) {
			allowpm_seen = true;
			ri->cfg.allow_pm = erlterm_is_atom(v, "anyone")         ? MUC_WHO_ANYONE
			                   : erlterm_is_atom(v, "participants") ? MUC_WHO_PARTICIPANTS
			                   : erlterm_is_atom(v, "moderators")   ? MUC_WHO_MODERATORS
			                                                        : MUC_WHO_NONE;
		} else if (strcmp(key, "allow_private_messages") == 0 &&
		           (erlterm_is_atom(v, "true") || erlterm_is_atom(v, "false"))) {
			no_private_messages = erlterm_is_atom(v, "false");
		} else if (strcmp(key, "presence_broadcast") == 0 && v->kind == ERLTERM_LIST) {
			unsigned mask = 0;
			bool ok = true;
			for (size_t k = 0; k < v->n && ok; k++) {
				int role = v->items[k]->kind == ERLTERM_ATOM
				                   ? muc_role_parse(v->items[k]->text)
				                   : -1;
				ok = role > MUC_ROLE_NONE;
				if (ok)
					mask |= MUC_ROLE_BIT(role);
			}
			if (ok)
				ri->cfg.presence_broadcast = mask;
			else
				option_note(report, room, key, v,
				            "is not a list of roles: the default is kept");
		} else if (strcmp(key, "subject") == 0 && subject_text(v) != NULL) {
			free(ri->subject);
			ri->subject = xstrdup(subject_text(v));
		} else if (strcmp(key, "subject_author") == 0 &&
		           (erlterm_text(v) != NULL ||
		            (v->kind == ERLTERM_TUPLE && v->n > 0 && erlterm_text(v->items[0]) != NULL))) {
			free(ri->subject_nick);
			ri->subject_nick = xstrdup(erlterm_text(v) != NULL ? erlterm_text(v)
			                                                   : erlterm_text(v->items[0]));
		} else if (strcmp(key, "affiliations") == 0) {
			room_affiliations(ri, v, room, report);
		} else if (strcmp(key, "roles") == 0) {
			roles = v; /* after the affiliations */
		} else {
			size_t k = 0;
			while (k < ARRAY_SIZE(unmapped_options) && strcmp(key, unmapped_options[k].key) != 0)
				k++;
			char *text = k < ARRAY_SIZE(unmapped_options) ? erlterm_format(v, 200) : NULL;
			if (text != NULL && (strcmp(text, unmapped_options[k].neutral) == 0 ||
			                     (unmapped_options[k].neutral2 != NULL &&
			                      strcmp(text, unmapped_options[k].neutral2) == 0))) {
				free(text);
				continue;
			}
			free(text);
			option_note(report, room, key, v,
			            k < ARRAY_SIZE(unmapped_options)
			                    ? "has no equivalent in Parley: not imported"
			                    : "is not known: not imported");
		}
	}
	if (!allowpm_seen && no_private_messages)
		ri->cfg.allow_pm = MUC_WHO_NONE;
	if (roles != NULL)
		room_roles(ri, roles, room, report);
	if (ri->cfg.password == NULL)
		ri->cfg.password_protected = false;
}

/* created_at as the databases write it ("2026-12-07 06:30:01[.123]"); now
 * when it is not that. */
static double room_created(const char *text)
{
	struct tm tm = { 0 };
	if (sscanf(text, "%d-%d-%d %d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
	           &tm.tm_sec) == 6 &&
	    tm.tm_year >= 1970) {
		tm.tm_year -= 1900;
		tm.tm_mon -= 1;
		time_t t = timegm(&tm);
		if (t != (time_t)-1)
			return (double)t;
	}
	return (double)time(NULL);
}

/* The rooms and nicks of one MUC service already in the store. */
struct service_state {
	struct wait w;
	struct strlist rooms, nick_jids;
};

static void service_loaded(enum storage_result res, const struct muc_room_item *rooms, size_t nrooms,
                           const struct muc_nick_item *nicks, size_t nnicks, void *ctx)
{
	struct service_state *ss = ctx;
	for (size_t i = 0; res == STORAGE_OK && i < nrooms; i++) {
		ss->rooms.items = xrealloc(ss->rooms.items, (ss->rooms.count + 1) * sizeof(char *));
		ss->rooms.items[ss->rooms.count++] = xstrdup(rooms[i].name);
	}
	for (size_t i = 0; res == STORAGE_OK && i < nnicks; i++) {
		ss->nick_jids.items =
		        xrealloc(ss->nick_jids.items, (ss->nick_jids.count + 1) * sizeof(char *));
		ss->nick_jids.items[ss->nick_jids.count++] = xstrdup(nicks[i].jid);
	}
	done_cb(res, &ss->w);
}

static bool strlist_has(const struct strlist *l, const char *s)
{
	for (size_t i = 0; i < l->count; i++)
		if (strcmp(l->items[i], s) == 0)
			return true;
	return false;
}

/* One room of service: stored with its affiliations, then its archive; a
 * room whose archive fails is removed again. */
static void import_room(struct run *r, struct source *s, struct storage *st, const struct host_config *hc,
                        const struct muc_settings *set, const struct room_row *row,
                        const struct service_state *ss)
{
	char *name = jid_nodeprep(row->name);
	char *room = xasprintf("%s@%s", row->name, row->service);
	if (name == NULL || strcmp(name, row->name) != 0) {
		run_fail(r, xasprintf("room %s: '%s' is not a room name in its prepared form; not imported",
		                      room, row->name));
		goto out;
	}
	if (strlist_has(&ss->rooms, name)) {
		buf_printf(r->report, "skipped: room %s exists\n", room);
		r->n.rooms_skipped++;
		goto out;
	}
	char *err = NULL;
	const struct erlterm_limits lim = { .max_depth = 32 };
	struct erlterm *opts = erlterm_parse(row->opts, strlen(row->opts), &lim, &err);
	if (opts == NULL || opts->kind != ERLTERM_LIST) {
		run_fail(r, xasprintf("room %s: its options cannot be read (%s); not imported", room,
		                      err != NULL ? err : "not a list"));
		free(err);
		erlterm_free(&opts);
		goto out;
	}
	struct room_import ri = { 0 };
	room_options(&ri, opts, set, room, r->report);
	erlterm_free(&opts);
	if (!ri.cfg.persistent) {
		buf_printf(r->report, "note: %s: not a persistent room in ejabberd: not imported\n", room);
		room_import_clear(&ri);
		goto out;
	}
	unsigned owners = 0;
	for (size_t i = 0; i < ri.naffs; i++)
		owners += strcmp(ri.affs[i].affiliation, "owner") == 0;
	if (owners == 0)
		buf_printf(r->report,
		           "note: %s: the room has no owner; the service's admins can configure it\n", room);
	char *config = muc_config_serialize(&ri.cfg);
	struct muc_room_item item = {
		.name = name,
		.config = config,
		.subject = ri.subject != NULL ? ri.subject : "",
		.subject_nick = ri.subject_nick != NULL ? ri.subject_nick : "",
		.created = room_created(row->created),
		.affs = ri.affs,
		.naffs = ri.naffs,
	};
	struct wait w = { 0 };
	storage_muc_room_store(st, hc->name, row->service, &item, done_cb, &w);
	enum storage_result res = wait_for(r->loop, &w);
	explicit_bzero(config, strlen(config));
	free(config);
	unsigned naffs = (unsigned)ri.naffs;
	room_import_clear(&ri);
	if (res != STORAGE_OK) {
		run_fail(r, xasprintf("room %s: cannot store it: storage %s", room, storage_result_str(res)));
		r->stop = res == STORAGE_TEMPFAIL;
		goto out;
	}
	unsigned stored = 0;
	if (import_archive(s, r->loop, st, hc->name, name, row->service, r->report, &stored, &res) < 0) {
		struct wait dw = { 0 }, aw = { 0 };
		storage_mam_owner_delete(st, hc->name, room, done_cb, &aw);
		enum storage_result ares = wait_for(r->loop, &aw);
		storage_muc_room_delete(st, hc->name, row->service, name, done_cb, &dw);
		enum storage_result dres = wait_for(r->loop, &dw);
		const char *gone = ares == STORAGE_OK && dres == STORAGE_OK
		                           ? "the room is removed again"
		                           : "and the room cannot be removed: destroy it with parleyctl "
		                             "muc-destroy before importing it again";
		if (res != STORAGE_OK)
			run_fail(r, xasprintf("room %s: cannot store its archive: storage %s (%s)", room,
			                      storage_result_str(res), gone));
		else
			run_fail(r, xasprintf("room %s: reading its archive: %s (%s)", room, s->error, gone));
		r->stop = true;
		goto out;
	}
	buf_printf(r->report, "imported: room %s\n", room);
	r->n.rooms++;
	r->n.room_affs += naffs;
	r->n.room_archive += stored;
out:
	free(room);
	free(name);
}

/* Read rows of sql (the host bound on the multi-host schema) with ncols
 * text columns each; 0, or -1 with s->error. */
static int read_rows(struct source *s, const char *sql, const char *host, unsigned ncols, struct strlist *out)
{
	const char *args[1] = { host };
	struct sql_stmt *q = query_texts(s, sql, args, s->multi ? 1 : 0);
	if (q == NULL)
		return -1;
	enum sql_step r;
	while ((r = s->drv->step(q)) == SQL_STEP_ROW) {
		out->items = xrealloc(out->items, (out->count + ncols) * sizeof(char *));
		for (unsigned c = 0; c < ncols; c++)
			out->items[out->count++] = xstrdup(col(s, q, c));
	}
	return step_end(s, q, r);
}

/* muc_room (name, host: the service, opts, created_at) and muc_registered
 * (jid, host, nick) of hc's services. */
static void import_rooms(struct run *r, struct source *s, struct storage *st, const struct host_config *hc)
{
	struct strlist rooms = { 0 }, nicks = { 0 };
	if (read_rows(s,
	              s->multi ? "SELECT name, host, opts, created_at FROM muc_room WHERE server_host = ? "
	                         "ORDER BY host, name"
	                       : "SELECT name, host, opts, created_at FROM muc_room ORDER BY host, name",
	              hc->name, 4, &rooms) < 0 ||
	    read_rows(s,
	              s->multi ? "SELECT jid, host, nick FROM muc_registered WHERE server_host = ? "
	                         "ORDER BY host, jid"
	                       : "SELECT jid, host, nick FROM muc_registered ORDER BY host, jid",
	              hc->name, 3, &nicks) < 0) {
		run_fail(r, xasprintf("host %s: reading the rooms: %s", hc->name, s->error));
		r->stop = true;
		goto out;
	}
	size_t nrooms = rooms.count / 4, nnicks = nicks.count / 3;
	if (nrooms == 0 && nnicks == 0)
		goto out;
	char *err = NULL;
	struct muc_settings *set = module_host_settings(hc, "muc", &err);
	if (set == NULL || !storage_has_area(st, STORAGE_AREA_MUC)) {
		run_fail(r,
		         xasprintf("host %s: %zu room%s and %zu registered nick%s are not imported: %s",
		                   hc->name, nrooms, nrooms == 1 ? "" : "s", nnicks, nnicks == 1 ? "" : "s",
		                   err != NULL   ? err
		                   : set == NULL ? "the muc module does not run on the host"
		                                 : "the host's store keeps no rooms"));
		free(err);
		module_host_settings_free("muc", (void **)&set);
		goto out;
	}
	/* Every service named in the rows, in order (the rows are sorted by it). */
	const char *service = NULL;
	for (size_t i = 0; i < nrooms + nnicks && !r->stop; i++) {
		bool is_room = i < nrooms;
		const char *svc = is_room ? rooms.items[i * 4 + 1] : nicks.items[(i - nrooms) * 3 + 1];
		if (service != NULL && strcmp(service, svc) == 0)
			continue;
		service = svc;
		/* one of the host's services? */
		char *domain = jid_nameprep(svc);
		bool ours = false;
		for (size_t k = 0; domain != NULL && k < set->hosts.count && !ours; k++) {
			char *d = builtin_service_domain(set->hosts.items[k], hc->name);
			ours = d != NULL && strcmp(d, domain) == 0;
			free(d);
		}
		bool seen = false; /* the rooms pass did this service's nicks too */
		for (size_t k = 0; !is_room && k < nrooms && !seen; k++)
			seen = strcmp(rooms.items[k * 4 + 1], svc) == 0;
		if (seen) {
			free(domain);
			continue;
		}
		size_t n_in = 0, m_in = 0;
		for (size_t k = 0; k < nrooms; k++)
			n_in += strcmp(rooms.items[k * 4 + 1], svc) == 0;
		for (size_t k = 0; k < nnicks; k++)
			m_in += strcmp(nicks.items[k * 3 + 1], svc) == 0;
		if (!ours || strcmp(domain, svc) != 0) {
			run_fail(
			        r,
			        xasprintf(
			                "host %s: %zu room%s and %zu registered nick%s of the MUC service %s "
			                "are not imported: it is not a service of the host "
			                "(modules.muc.hosts)",
			                hc->name, n_in, n_in == 1 ? "" : "s", m_in, m_in == 1 ? "" : "s",
			                svc));
			free(domain);
			continue;
		}
		free(domain);
		struct service_state ss = { 0 };
		storage_muc_load(st, hc->name, svc, service_loaded, &ss);
		enum storage_result res = wait_for(r->loop, &ss.w);
		if (res != STORAGE_OK) {
			run_fail(r, xasprintf("MUC service %s: cannot read its stored rooms: storage %s", svc,
			                      storage_result_str(res)));
			r->stop = true;
		}
		for (size_t k = 0; k < nrooms && !r->stop; k++) {
			if (strcmp(rooms.items[k * 4 + 1], svc) != 0)
				continue;
			struct room_row row = { rooms.items[k * 4], rooms.items[k * 4 + 1],
				                rooms.items[k * 4 + 2], rooms.items[k * 4 + 3] };
			import_room(r, s, st, hc, set, &row, &ss);
		}
		for (size_t k = 0; k < nnicks && !r->stop; k++) {
			const char *jid = nicks.items[k * 3], *nick = nicks.items[k * 3 + 2];
			if (strcmp(nicks.items[k * 3 + 1], svc) != 0)
				continue;
			struct jid j;
			const char *jerr;
			if (jid_parse(jid, &j, &jerr) != 0 || *nick == '\0') {
				buf_printf(r->report,
				           "note: %s: the nick '%s' registered for '%s' is left out (%s)\n",
				           svc, nick, jid, *nick == '\0' ? "empty" : jerr);
				continue;
			}
			char *bare = jid_bare_string(&j);
			jid_clear(&j);
			if (!strlist_has(&ss.nick_jids, bare)) {
				struct wait w = { 0 };
				storage_muc_nick_set(st, hc->name, svc, bare, nick, done_cb, &w);
				res = wait_for(r->loop, &w);
				if (res == STORAGE_OK)
					r->n.nicks++;
				else if (res == STORAGE_EXISTS)
					buf_printf(r->report,
					           "note: %s: the nick '%s' of %s is taken: left out\n", svc,
					           nick, bare);
				else
					run_fail(r,
					         xasprintf("%s: cannot register the nick of %s: storage %s",
					                   svc, bare, storage_result_str(res)));
			}
			free(bare);
		}
		strlist_free(&ss.rooms);
		strlist_free(&ss.nick_jids);
	}
	module_host_settings_free("muc", (void **)&set);
out:
	/* the options hold the rooms' passwords */
	for (size_t i = 2; i < rooms.count; i += 4)
		explicit_bzero(rooms.items[i], strlen(rooms.items[i]));
	strlist_free(&rooms);
	strlist_free(&nicks);
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
	if (!r->stop)
		import_rooms(r, s, st, hc);
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
	buf_printf(report,
	           "imported %u archive preference%s, %u last activit%s\n"
	           "imported %u room%s (%u affiliation%s, %u archived room message%s), skipped %u room%s, "
	           "%u registered nick%s\n",
	           r.n.prefs, r.n.prefs == 1 ? "" : "s", r.n.last, r.n.last == 1 ? "y" : "ies", r.n.rooms,
	           r.n.rooms == 1 ? "" : "s", r.n.room_affs, r.n.room_affs == 1 ? "" : "s", r.n.room_archive,
	           r.n.room_archive == 1 ? "" : "s", r.n.rooms_skipped, r.n.rooms_skipped == 1 ? "" : "s",
	           r.n.nicks, r.n.nicks == 1 ? "" : "s");
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
