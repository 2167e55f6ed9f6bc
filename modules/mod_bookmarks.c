/*
 * mod_bookmarks: the three places a user's chatroom bookmarks live, kept
 * in step by the server, so that clients of each generation see the
 * others' bookmarks.  Loop thread.
 *
 * The places:
 * - legacy bookmarks (XEP-0048) in private XML storage (XEP-0049, mod_private):
 *   <storage xmlns='storage:bookmarks'/> with <conference/> and <url/>;
 * - the same document in PEP, node storage:bookmarks, item "current"
 *   (XEP-0048, XEP-0411);
 * - PEP native bookmarks (XEP-0402), node urn:xmpp:bookmarks:1, one item
 *   per room, with the room's JID as item id.
 * The module announces on every account that the server converts:
 * urn:xmpp:bookmarks:1#compat (private XML and native) and #compat-pep
 * (legacy PEP and native) of XEP-0402, urn:xmpp:bookmarks-conversion:0
 * (legacy PEP and private XML) of XEP-0411.
 *
 * What follows what:
 * - A client stores the legacy document in private XML (private_set hook)
 *   or publishes it to PEP storage:bookmarks (pep_published hook): the
 *   other legacy place gets the same document, and the native node gets
 *   one item per <conference/> (published when new or different) while
 *   its items for rooms the document no longer names are retracted.
 * - A client publishes or retracts a native item: the legacy document is
 *   rebuilt from every native item, keeping the <url/> bookmarks of the
 *   stored legacy document (XEP-0402 has none), and written to both legacy
 *   places when it differs from the stored one.
 * - A user's first session opens and the user has no native node yet
 *   (an account from before the conversion): a stored legacy document
 *   with conferences fills it, as if the client had just stored it.
 * Conference children that XEP-0402 does not name travel in
 * <extensions/> and come back out of it.
 *
 * Invariants:
 * - No loops: what the module publishes carries origin "bookmarks", and
 *   the pep_published hook ignores it; what it writes to private XML goes
 *   straight to storage, not through mod_private, so the private_set hook
 *   does not run for it.
 * - The nodes the module creates are whitelist (the owner only): the
 *   native node with max_items "max" and no last item sent, the legacy
 *   one with PEP's default of one item.
 * - One rebuild of the legacy document per user at a time (a client often
 *   publishes several native items in a row): a native change while one
 *   is under way has it read the native items again once its write is
 *   done, so the last write is of the newest items.
 * - Every storage call or PEP read is a struct bm_op on the module's
 *   pending list (pending.h).  A storage call is cancelled at stop; a PEP
 *   read is answered by the pubsub module, which stops before this module
 *   (it starts after it), so a stop leaves such an op to its callback,
 *   which frees it.  Publishes and retracts whose outcome nothing waits for
 *   go without a callback (the pubsub module logs storage failures).
 */
#include "builtin.h"
#include "pending.h"
#include "pep.h"
#include "server/host.h"
#include "server/hooks.h"
#include "server/sm.h"
#include "lib/jid.h"
#include "lib/log.h"
#include "storage/storage.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define NS_LEGACY "storage:bookmarks"
#define NS_BOOKMARKS2 "urn:xmpp:bookmarks:1"
#define NS_BOOKMARKS2_COMPAT "urn:xmpp:bookmarks:1#compat"
#define NS_BOOKMARKS2_COMPAT_PEP "urn:xmpp:bookmarks:1#compat-pep"
#define NS_BOOKMARKS_CONVERSION "urn:xmpp:bookmarks-conversion:0"
#define BM_ORIGIN "bookmarks"
#define LEGACY_ITEM "current"

struct bookmarks_settings {
	unsigned unused;
};

static const struct opt_def bookmarks_options[] = { OPT_END };

/* The native node (XEP-0402: whitelist, max_items max, never the last
 * item) and the legacy one (XEP-0048: whitelist). */
static const struct pep_node_options native_opts = {
	.access_model = "whitelist",
	.max_items = UINT_MAX,
	.send_last_never = true,
};
static const struct pep_node_options legacy_opts = {
	.access_model = "whitelist",
};

struct bm_state {
	struct host *host;
	struct pending_ops ops;
};

/* What an op does with the native items it reads. */
enum bm_job {
	BM_SYNC,    /* follow the legacy document op->doc */
	BM_REBUILD, /* rebuild the legacy document from them */
	BM_MIGRATE, /* a first login: no native node yet, the stored legacy
	               document (if any) fills it */
};

struct bm_op {
	struct pending_op p; /* first: the state's list */
	struct bm_state *bs; /* valid while p is listed */
	char *user;
	/* the legacy document to spread to the native node; or the one
	 * rebuilt from the native items, before the stored one's URLs */
	struct xml_node *doc;
	enum bm_job job;
	bool again; /* BM_REBUILD: the native node changed again meanwhile */
};

static void op_free(struct pending_op *p)
{
	struct bm_op *op = (struct bm_op *)p;
	pending_untrack(p);
	free(op->user);
	xml_unref(&op->doc);
	free(op);
}

static struct bm_op *op_new(struct bm_state *bs, const char *user)
{
	struct bm_op *op = xcalloc(1, sizeof(*op));
	op->bs = bs;
	op->user = xstrdup(user);
	pending_track(&bs->ops, &op->p, op_free);
	return op;
}

/* A PEP call of the module did not start (or its read failed). */
static void log_pep(const struct bm_state *bs, const char *user, const char *what, enum pep_result r)
{
	builtin_log_pep(bs->host, "bookmarks", user, what, r);
}

static void native_read_start(struct bm_op *op);

/* op is done: a rebuild whose native node changed meanwhile reads it
 * again; anything else is freed. */
static void op_done(struct bm_op *op)
{
	if (!op->again) {
		op_free(&op->p);
		return;
	}
	op->again = false;
	xml_unref(&op->doc);
	native_read_start(op);
}

static void private_written(enum storage_result res, void *ctx)
{
	struct bm_op *op = ctx;
	if (!pending_resume(&op->p))
		return;
	if (res != STORAGE_OK)
		log_warning("bookmarks %s: the legacy bookmarks of %s cannot be written to private "
		            "storage (storage %s)",
		            op->bs->host->name, op->user, storage_result_str(res));
	op_done(op);
}

/* op writes doc as its user's legacy bookmarks in private XML storage. */
static void private_write(struct bm_op *op, const struct xml_node *doc)
{
	struct host *h = op->bs->host;
	char *text = xml_to_string(doc, NULL);
	struct private_item item = { .ns = NS_LEGACY, .data = text };
	pending_wait_storage(
	        &op->p, storage_private_set(h->storage, h->name, op->user, &item, 1, private_written, op));
	free(text);
}

/* ---- the two formats ------------------------------------------------------------ */

/* Whether an autojoin attribute says yes (xs:boolean). */
static bool is_true(const char *v)
{
	return v != NULL && (strcmp(v, "true") == 0 || strcmp(v, "1") == 0);
}

/* The room JID of a legacy <conference/> normalized, or NULL (malloc'd). */
static char *room_jid(const char *s)
{
	struct jid j = { 0 };
	if (s == NULL || jid_parse(s, &j, NULL) < 0)
		return NULL;
	char *out = j.resource == NULL ? jid_bare_string(&j) : NULL;
	jid_clear(&j);
	return out;
}

/* The native item payload of a legacy <conference/>. */
static struct xml_node *conference_native(const struct xml_node *c)
{
	struct xml_node *out = xml_new("conference", NS_BOOKMARKS2);
	const char *name = xml_attr(c, "name");
	if (name != NULL)
		xml_set_attr(out, "name", name);
	if (is_true(xml_attr(c, "autojoin")))
		xml_set_attr(out, "autojoin", "true");
	struct xml_node *ext = NULL;
	for (const struct xml_node *el = xml_first_element(c); el != NULL; el = xml_next(el, NULL, NULL)) {
		if (xml_is(el, "nick", NS_LEGACY) || xml_is(el, "password", NS_LEGACY)) {
			const char *t = xml_text(el);
			xml_add_text(xml_add_child(out, el->name, NS_BOOKMARKS2), t, strlen(t));
		} else if (strcmp(el->ns, NS_LEGACY) != 0) {
			if (ext == NULL)
				ext = xml_add_child(out, "extensions", NS_BOOKMARKS2);
			xml_append_copy(ext, el);
		}
	}
	return out;
}

/* Add the legacy <conference/> of native item (jid, payload) to doc. */
static void conference_legacy(struct xml_node *doc, const char *jid, const struct xml_node *p)
{
	struct xml_node *c = xml_add_child(doc, "conference", NS_LEGACY);
	const char *name = xml_attr(p, "name");
	if (name != NULL)
		xml_set_attr(c, "name", name);
	xml_set_attr(c, "autojoin", is_true(xml_attr(p, "autojoin")) ? "true" : "false");
	xml_set_attr(c, "jid", jid);
	static const char *const texts[] = { "nick", "password" };
	for (size_t i = 0; i < ARRAY_SIZE(texts); i++) {
		const char *t = xml_child_text(p, texts[i], NS_BOOKMARKS2);
		if (t != NULL)
			xml_add_text(xml_add_child(c, texts[i], NS_LEGACY), t, strlen(t));
	}
	const struct xml_node *ext = xml_child(p, "extensions", NS_BOOKMARKS2);
	for (const struct xml_node *el = ext != NULL ? xml_first_element(ext) : NULL; el != NULL;
	     el = xml_next(el, NULL, NULL))
		xml_append_copy(c, el);
}

/* Whether two payloads serialize the same. */
static bool same_xml(const struct xml_node *a, const struct xml_node *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	char *sa = xml_to_string(a, NULL), *sb = xml_to_string(b, NULL);
	bool same = strcmp(sa, sb) == 0;
	free(sa);
	free(sb);
	return same;
}

/* ---- legacy document to the other places ------------------------------------------ */

/* The legacy conference of doc for room (normalized), the first one. */
static const struct xml_node *legacy_find(const struct xml_node *doc, const char *room)
{
	for (const struct xml_node *c = xml_child(doc, "conference", NS_LEGACY); c != NULL;
	     c = xml_next(c, "conference", NS_LEGACY)) {
		char *j = room_jid(xml_attr(c, "jid"));
		bool match = j != NULL && strcmp(j, room) == 0;
		free(j);
		if (match)
			return c;
	}
	return NULL;
}

/* The native items as they are (n of them): publish what the legacy
 * document op->doc has new or different, retract what it no longer names.
 * Frees op. */
static void native_sync(struct bm_op *op, const struct pep_item *items, size_t n)
{
	struct bm_state *bs = op->bs;
	struct host *h = bs->host;
	for (const struct xml_node *c = xml_child(op->doc, "conference", NS_LEGACY); c != NULL;
	     c = xml_next(c, "conference", NS_LEGACY)) {
		char *room = room_jid(xml_attr(c, "jid"));
		if (room == NULL || legacy_find(op->doc, room) != c) {
			free(room); /* no valid JID, or a room named twice: the first counts */
			continue;
		}
		struct xml_node *payload = conference_native(c);
		const struct pep_item *have = NULL;
		for (size_t i = 0; i < n && have == NULL; i++)
			if (strcmp(items[i].id, room) == 0)
				have = &items[i];
		if (have == NULL || !same_xml(have->payload, payload)) {
			enum pep_result pr = pep_publish(h, op->user, NS_BOOKMARKS2, room, payload,
			                                 &native_opts, BM_ORIGIN, NULL, NULL);
			if (pr != PEP_OK)
				log_pep(bs, op->user, "publishing a native bookmark", pr);
		}
		xml_unref(&payload);
		free(room);
	}
	for (size_t i = 0; i < n; i++) {
		if (legacy_find(op->doc, items[i].id) != NULL)
			continue;
		enum pep_result pr =
		        pep_retract(h, op->user, NS_BOOKMARKS2, items[i].id, BM_ORIGIN, NULL, NULL);
		if (pr != PEP_OK && pr != PEP_NOT_FOUND)
			log_pep(bs, op->user, "retracting a native bookmark", pr);
	}
	op_free(&op->p);
}

/* Publish doc as the user's legacy bookmarks in PEP. */
static void legacy_publish(struct bm_state *bs, const char *user, const struct xml_node *doc)
{
	enum pep_result r =
	        pep_publish(bs->host, user, NS_LEGACY, LEGACY_ITEM, doc, &legacy_opts, BM_ORIGIN, NULL, NULL);
	if (r != PEP_OK)
		log_pep(bs, user, "publishing the legacy bookmarks", r);
}

/* ---- native items to the legacy places ----------------------------------------------- */

/* The stored legacy document: its URLs join the rebuilt one, which is
 * written when it differs. */
static void legacy_read(enum storage_result res, const char *text, void *ctx)
{
	struct bm_op *op = ctx;
	if (!pending_resume(&op->p))
		return;
	struct bm_state *bs = op->bs;
	if (res != STORAGE_OK && res != STORAGE_NOT_FOUND) {
		log_warning("bookmarks %s: the legacy bookmarks of %s cannot be read (storage %s); "
		            "they do not follow the native ones this time",
		            bs->host->name, op->user, storage_result_str(res));
		op_done(op);
		return;
	}
	struct xml_node *old = res == STORAGE_OK ? builtin_parse_stored(text, "storage", NS_LEGACY) : NULL;
	for (const struct xml_node *u = old != NULL ? xml_child(old, "url", NS_LEGACY) : NULL; u != NULL;
	     u = xml_next(u, "url", NS_LEGACY))
		xml_append_copy(op->doc, u);
	bool same = same_xml(old, op->doc);
	xml_unref(&old);
	if (same) {
		op_done(op);
		return;
	}
	legacy_publish(bs, op->user, op->doc);
	/* the write is op's own: the next rebuild of the user waits for it */
	private_write(op, op->doc);
}

/* Every native item (n of them): the legacy document's conferences,
 * oldest first; then the stored document is read. */
static void legacy_rebuild(struct bm_op *op, const struct pep_item *items, size_t n)
{
	struct host *h = op->bs->host;
	op->doc = xml_new("storage", NS_LEGACY);
	for (size_t i = n; i > 0; i--) {
		const struct pep_item *it = &items[i - 1];
		char *room = room_jid(it->id);
		if (room != NULL && it->payload != NULL && xml_is(it->payload, "conference", NS_BOOKMARKS2))
			conference_legacy(op->doc, room, it->payload);
		free(room);
	}
	pending_wait_storage(&op->p,
	                     storage_private_get(h->storage, h->name, op->user, NS_LEGACY, legacy_read, op));
}

/* ---- a first login --------------------------------------------------------------------- */

static void legacy_changed(struct bm_state *bs, const char *user, const struct xml_node *doc,
                           bool from_private);

/* The stored legacy document of a user without native bookmarks: it
 * fills them (and the legacy PEP node). */
static void migrate_read(enum storage_result res, const char *text, void *ctx)
{
	struct bm_op *op = ctx;
	if (!pending_resume(&op->p))
		return;
	struct xml_node *doc = res == STORAGE_OK ? builtin_parse_stored(text, "storage", NS_LEGACY) : NULL;
	if (doc != NULL && xml_child(doc, "conference", NS_LEGACY) != NULL)
		legacy_changed(op->bs, op->user, doc, true);
	xml_unref(&doc);
	op_free(&op->p);
}

/* ---- reading the native node ------------------------------------------------------ */

static void native_read(enum pep_result r, const struct pep_item *items, size_t n, void *ctx)
{
	struct bm_op *op = ctx;
	if (!pending_resume_answer(&op->p))
		return;
	struct host *h = op->bs->host;
	if (r != PEP_OK && r != PEP_NOT_FOUND) {
		log_pep(op->bs, op->user, "reading the native bookmarks", r);
		op_free(&op->p);
		return;
	}
	switch (op->job) {
	case BM_SYNC: native_sync(op, r == PEP_OK ? items : NULL, r == PEP_OK ? n : 0); break;
	case BM_REBUILD: legacy_rebuild(op, r == PEP_OK ? items : NULL, r == PEP_OK ? n : 0); break;
	case BM_MIGRATE:
		if (r == PEP_NOT_FOUND)
			pending_wait_storage(&op->p, storage_private_get(h->storage, h->name, op->user,
			                                                 NS_LEGACY, migrate_read, op));
		else
			op_free(&op->p);
		break;
	}
}

/* Read the native items for op's job. */
static void native_read_start(struct bm_op *op)
{
	pending_wait_answer(&op->p);
	enum pep_result r = pep_items(op->bs->host, op->user, NS_BOOKMARKS2, native_read, op);
	if (r != PEP_OK) {
		/* the callback does not run */
		log_pep(op->bs, op->user, "reading the native bookmarks", r);
		op_free(&op->p);
	}
}

/* A client stored the legacy document doc in one legacy place (private
 * XML when from_private, else PEP): the other gets it, and the native node
 * follows. */
static void legacy_changed(struct bm_state *bs, const char *user, const struct xml_node *doc,
                           bool from_private)
{
	if (from_private)
		legacy_publish(bs, user, doc);
	else
		private_write(op_new(bs, user), doc);
	struct bm_op *op = op_new(bs, user);
	op->doc = xml_copy(doc);
	native_read_start(op);
}

/* A client changed the native node: the legacy places follow. */
static void native_changed(struct bm_state *bs, const char *user)
{
	/* one rebuild at a time per user: one under way reads again after */
	for (struct pending_op *p = bs->ops.head; p != NULL; p = p->next) {
		struct bm_op *other = (struct bm_op *)p;
		if (other->job == BM_REBUILD && strcmp(other->user, user) == 0) {
			other->again = true;
			return;
		}
	}
	struct bm_op *op = op_new(bs, user);
	op->job = BM_REBUILD;
	native_read_start(op);
}

/* The first session of a user opened: native bookmarks from the stored
 * legacy ones when the user has none yet (accounts from before the
 * conversion). */
static void first_login(struct bm_state *bs, const char *user)
{
	struct bm_op *op = op_new(bs, user);
	op->job = BM_MIGRATE;
	native_read_start(op);
}

/* ---- hooks ------------------------------------------------------------------------------ */

static enum hook_result bookmarks_pep(struct host *h, void *args, void *ctx)
{
	(void)h;
	struct bm_state *bs = ctx;
	struct hook_pep *hp = args;
	if (hp->origin != NULL && strcmp(hp->origin, BM_ORIGIN) == 0)
		return HOOK_CONTINUE; /* our own */
	if (strcmp(hp->node, NS_BOOKMARKS2) == 0)
		native_changed(bs, hp->user);
	else if (strcmp(hp->node, NS_LEGACY) == 0 && hp->payload != NULL &&
	         xml_is(hp->payload, "storage", NS_LEGACY))
		legacy_changed(bs, hp->user, hp->payload, false);
	return HOOK_CONTINUE;
}

static enum hook_result bookmarks_session(struct host *h, void *args, void *ctx)
{
	struct hook_session *hs = args;
	const char *user = hs->session->jid.node;
	if (user == NULL)
		return HOOK_CONTINUE;
	unsigned n = 0;
	for (struct session *s = sm_user_sessions(h, user); s != NULL; s = s->next_of_user)
		n++;
	if (n == 1)
		first_login(ctx, user);
	return HOOK_CONTINUE;
}

static enum hook_result bookmarks_private(struct host *h, void *args, void *ctx)
{
	(void)h;
	struct hook_private *hp = args;
	if (xml_is(hp->element, "storage", NS_LEGACY))
		legacy_changed(ctx, hp->user, hp->element, true);
	return HOOK_CONTINUE;
}

/* ---- module ------------------------------------------------------------------------------ */

static const struct builtin_hook bookmarks_hooks[] = {
	{ HOOK_PEP_PUBLISHED, 50, bookmarks_pep },
	{ HOOK_PRIVATE_SET, 50, bookmarks_private },
	{ HOOK_SESSION_OPENED, 50, bookmarks_session },
};

static const struct builtin_parts bookmarks_parts = {
	.hooks = bookmarks_hooks,
	.nhooks = ARRAY_SIZE(bookmarks_hooks),
	.user_feature = NS_BOOKMARKS2_COMPAT,
};

/* The account features besides the parts' one. */
static const char *const more_features[] = { NS_BOOKMARKS2_COMPAT_PEP, NS_BOOKMARKS_CONVERSION };

static int bookmarks_start(struct host *h, const void *settings, void **state_r, char **error_r)
{
	(void)settings;
	struct bm_state *bs = xcalloc(1, sizeof(*bs));
	bs->host = h;
	if (builtin_parts_add(h, &bookmarks_parts, bs, error_r) < 0) {
		free(bs);
		return -1;
	}
	for (size_t i = 0; i < ARRAY_SIZE(more_features); i++)
		host_add_user_feature(h, more_features[i]);
	*state_r = bs;
	return 0;
}

static void bookmarks_stop(struct host *h, void *state)
{
	struct bm_state *bs = state;
	builtin_parts_remove(h, &bookmarks_parts, bs);
	for (size_t i = 0; i < ARRAY_SIZE(more_features); i++)
		host_remove_user_feature(h, more_features[i]);
	pending_stop(&bs->ops);
	free(bs);
}

const struct module_def mod_bookmarks = {
	.name = "bookmarks",
	.description = "XEP-0402 and XEP-0411 bookmarks conversion: legacy bookmarks in private XML "
	               "and in PEP kept in step with the native PEP bookmarks",
	.options = bookmarks_options,
	.settings_size = sizeof(struct bookmarks_settings),
	.default_enabled = true,
	.start = bookmarks_start,
	.stop = bookmarks_stop,
};
