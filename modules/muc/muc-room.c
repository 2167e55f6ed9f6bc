/*
 * Rooms of a MUC service (XEP-0045): occupants and their presence,
 * groupchat and private messages, history, subject, invitations, voice
 * requests, roles and affiliations (muc#admin), the owner's configuration
 * and destruction (muc#owner), nick registration (jabber:iq:register on a
 * room).  Loop thread.
 *
 * Occupants: one per (nick, bare JID); each of the user's resources that
 * joined under that nick is a muc_session of it.  Every stanza a room
 * sends goes through the router to a real full JID.  A broadcast builds
 * the stanza once per kind of recipient (with or without the real JID, the
 * occupant itself) and only sets the 'to' attribute per recipient: routing
 * serialises it at once, nothing keeps it.
 *
 * A recipient whose client does not read (its session's output queue
 * holds more than SLOW_BYTES) is removed from the room with status 333
 * instead of growing the server's memory.
 *
 * A removed occupant (kicked, banned, out of a members-only room, the room
 * destroyed) is freed at once: nothing keeps a pointer to an occupant, or
 * to its nick, across a call that may remove occupants; what is needed
 * after it (the requester's nick as the actor of later items) is copied.
 *
 * Rights follow XEP-0045 §8-§10: a moderator kicks or silences no one of
 * a higher affiliation than its own, and no admin or owner; an admin or
 * owner does not ban himself.  In a members-only room an invitation sent
 * through the room, by whoever may invite, adds the invitee (a user,
 * never a whole domain) to the member list (§9.5).
 */
#include "muc.h"
#include "muc-log.h"
#include "modules/adhoc.h"
#include "modules/mam.h"
#include "server/host.h"
#include "server/router.h"
#include "server/server.h"
#include "server/sm.h"
#include "lib/log.h"

#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SLOW_BYTES (512 * 1024) /* unwritten output that makes an occupant slow */
#define MAX_INVITES 20          /* invitations in one message */

static double now(void)
{
	return ev_now(server.loop);
}

static enum muc_role default_role(const struct muc_room *r, enum muc_aff a)
{
	switch (a) {
	case MUC_AFF_OWNER:
	case MUC_AFF_ADMIN: return MUC_ROLE_MODERATOR;
	case MUC_AFF_MEMBER: return MUC_ROLE_PARTICIPANT;
	case MUC_AFF_NONE: return r->cfg.moderated ? MUC_ROLE_VISITOR : MUC_ROLE_PARTICIPANT;
	case MUC_AFF_OUTCAST: break;
	}
	return MUC_ROLE_NONE;
}

/* ---- lookups ----------------------------------------------------------- */

struct muc_occupant *muc_occupant_by_nick(const struct muc_room *r, const char *nick)
{
	for (struct muc_occupant *o = r->occupants; o != NULL; o = o->next)
		if (strcmp(o->nick, nick) == 0)
			return o;
	return NULL;
}

static struct muc_session *session_of(const struct muc_occupant *o, const struct jid *real)
{
	for (struct muc_session *s = o->sessions; s != NULL; s = s->next)
		if (jid_equal(&s->jid, real))
			return s;
	return NULL;
}

struct muc_occupant *muc_occupant_by_real(const struct muc_room *r, const struct jid *real)
{
	for (struct muc_occupant *o = r->occupants; o != NULL; o = o->next)
		if (session_of(o, real) != NULL)
			return o;
	return NULL;
}

static struct muc_affiliation *aff_entry(const struct muc_room *r, const char *jid)
{
	for (struct muc_affiliation *a = r->affs; a != NULL; a = a->next)
		if (strcmp(a->jid, jid) == 0)
			return a;
	return NULL;
}

enum muc_aff muc_room_affiliation(const struct muc_room *r, const struct jid *real)
{
	char *bare = jid_bare_string(real);
	struct muc_affiliation *a = aff_entry(r, bare);
	free(bare);
	if (a == NULL && real->node != NULL)
		a = aff_entry(r, real->domain);
	if (a != NULL)
		return a->aff;
	/* Service admins own every room. */
	if (muc_is_service_admin(r->svc, real))
		return MUC_AFF_OWNER;
	return MUC_AFF_NONE;
}

static enum muc_aff occ_aff(const struct muc_occupant *o)
{
	return muc_room_affiliation(o->room, &o->bare);
}

/* Whether occupant `to` may see the real JIDs of the others. */
static bool sees_jids(const struct muc_room *r, const struct muc_occupant *to)
{
	return r->cfg.whois == MUC_WHO_ANYONE || to->role == MUC_ROLE_MODERATOR;
}

static bool broadcast_role(const struct muc_room *r, enum muc_role role)
{
	return (r->cfg.presence_broadcast & MUC_ROLE_BIT(role)) != 0;
}

/* ---- occupant ids (XEP-0421) -------------------------------------------- */

static void make_occupant_id(struct muc_occupant *o)
{
	char *bare = jid_bare_string(&o->bare);
	struct buf in = { 0 };
	buf_append_str(&in, o->room->jid);
	buf_append(&in, "\n", 1);
	buf_append_str(&in, bare);
	unsigned char mac[32];
	unsigned len = sizeof(mac);
	const char *salt = o->room->cfg.id_salt != NULL ? o->room->cfg.id_salt : "";
	HMAC(EVP_sha256(), salt, (int)strlen(salt), (unsigned char *)in.data, in.len, mac, &len);
	char *b64 = base64_encode(mac, 24);
	snprintf(o->occupant_id, sizeof(o->occupant_id), "%s", b64);
	free(b64);
	buf_free(&in);
	free(bare);
}

static void add_occupant_id(struct xml_node *el, const struct muc_occupant *o)
{
	xml_set_attr(xml_add_child(el, "occupant-id", NS_OCCUPANT_ID), "id", o->occupant_id);
}

/* Remove what a client must not forge: occupant ids. */
static void strip_forged(struct xml_node *el)
{
	struct xml_node *c = xml_child(el, "occupant-id", NS_OCCUPANT_ID);
	while (c != NULL) {
		struct xml_node *next = xml_next(c, "occupant-id", NS_OCCUPANT_ID);
		xml_remove(c);
		c = next;
	}
}

/* ---- sending ------------------------------------------------------------- */

/* A recipient of a broadcast: a local user's session that is gone (its
 * stream ended without the unavailable presence reaching the room), one
 * with more than SLOW_BYTES it could not write yet, or one to send to. */
enum rcpt_state { RCPT_OK, RCPT_SLOW, RCPT_GONE };

static enum rcpt_state recipient_state(const struct jid *real)
{
	struct host *h = host_find(real->domain);
	if (h == NULL || real->node == NULL || real->resource == NULL)
		return RCPT_OK;
	struct session *s = sm_find(h, real);
	if (s == NULL)
		return RCPT_GONE;
	if (s->ops->out_queued == NULL)
		return RCPT_OK;
	return s->ops->out_queued(s->owner) - s->ops->out_written(s->owner) > SLOW_BYTES ? RCPT_SLOW
	                                                                                 : RCPT_OK;
}

/* Whether a broadcast should skip session s of occupant o: o is marked
 * for muc_room_reap when its session is slow or gone. */
static bool skip_recipient(struct muc_occupant *o, const struct muc_session *s)
{
	if (o->doomed != 0)
		return true;
	switch (recipient_state(&s->jid)) {
	case RCPT_OK: return false;
	case RCPT_SLOW: o->doomed = MUC_DOOMED_SLOW; return true;
	case RCPT_GONE: o->doomed = MUC_DOOMED_GONE; return true;
	}
	return false;
}

/* Route tree (kept by the caller) to one real JID, from from. */
/* route_to with the sender already parsed (fj is from's parts). */
static void route_from(struct xml_node *tree, const char *from, const struct jid *fj, const struct jid *to)
{
	char *t = jid_to_string(to);
	xml_set_attr(tree, "from", from);
	xml_set_attr(tree, "to", t);
	router_route(tree, fj, to);
	free(t);
}

static void route_to(struct xml_node *tree, const char *from, const struct jid *to)
{
	struct jid fj = { 0 };
	const char *err;
	if (jid_parse(from, &fj, &err) == 0)
		route_from(tree, from, &fj, to);
	jid_clear(&fj);
}

/* One stanza to many recipients: its sender parsed once, the tree
 * serialised once (on the first local recipient) and only its 'to'
 * changed per recipient. */
struct fanout {
	struct xml_node *tree;
	struct jid from;
	bool from_ok;
	struct xml_wire wire;
	bool wired;
};

static void fanout_init(struct fanout *f, struct xml_node *tree, const char *from)
{
	memset(f, 0, sizeof(*f));
	f->tree = tree;
	const char *err;
	f->from_ok = jid_parse(from, &f->from, &err) == 0;
	xml_set_attr(tree, "from", from);
}

static void fanout_to(struct fanout *f, const struct jid *to)
{
	if (!f->from_ok)
		return;
	char *t = jid_to_string(to);
	xml_set_attr(f->tree, "to", t);
	free(t);
	struct host *h = to->node != NULL ? host_find(to->domain) : NULL;
	if (h == NULL) {
		router_route(f->tree, &f->from, to);
		return;
	}
	if (!f->wired)
		f->wired = xml_wire_build(&f->wire, f->tree, NS_CLIENT) == 0;
	if (f->wired)
		sm_route_wire(h, f->tree, &f->from, to, &f->wire);
	else
		sm_route(h, f->tree, &f->from, to);
}

static void fanout_done(struct fanout *f)
{
	if (f->wired)
		xml_wire_free(&f->wire);
	jid_clear(&f->from);
	xml_set_attr(f->tree, "to", NULL);
}

static void send_error(const struct xml_node *stanza, enum stanza_error e, const char *text)
{
	router_bounce(stanza, e, text);
}

/* ---- presence ------------------------------------------------------------ */

struct status_codes {
	int c[8];
	unsigned n;
};

static void codes_add(struct status_codes *s, int code)
{
	if (s->n < ARRAY_SIZE(s->c))
		s->c[s->n++] = code;
}

/* The presence of o as the others see it: available (from its latest
 * session's presence) or unavailable; with the real JID when with_jid. */
static struct xml_node *occupant_presence(const struct muc_occupant *o, const struct muc_session *sess,
                                          bool unavailable, bool with_jid, const struct status_codes *codes,
                                          const char *new_nick, const char *reason, const char *actor)
{
	struct xml_node *p = xml_new("presence", NS_CLIENT);
	if (unavailable)
		xml_set_attr(p, "type", "unavailable");
	/* A plain exit (no kick, ban, nick change or other removal) carries the
	 * status text; removals carry their codes and reason instead. */
	bool plain_exit = unavailable && new_nick == NULL && reason == NULL && actor == NULL;
	for (unsigned i = 0; plain_exit && codes != NULL && i < codes->n; i++)
		if (codes->c[i] != 110)
			plain_exit = false;
	if (sess != NULL && sess->presence != NULL && (!unavailable || plain_exit)) {
		/* Available: the whole payload; unavailable: only its status
		 * text (the exit presence's, XEP-0045 §7.14). */
		for (struct xml_node *c = sess->presence->children; c != NULL; c = c->next) {
			if (c->type != XML_ELEMENT)
				continue;
			if (xml_is(c, "x", NS_MUC) || xml_is(c, "x", NS_MUC_USER) ||
			    xml_is(c, "occupant-id", NS_OCCUPANT_ID))
				continue;
			if (unavailable && !xml_is(c, "status", NULL))
				continue;
			xml_append_copy(p, c);
		}
	}
	struct xml_node *x = xml_add_child(p, "x", NS_MUC_USER);
	struct xml_node *item = xml_add_child(x, "item", NULL);
	xml_set_attr(item, "affiliation", muc_aff_str(occ_aff(o)));
	xml_set_attr(item, "role", unavailable && new_nick == NULL ? "none" : muc_role_str(o->role));
	if (with_jid && sess != NULL) {
		char *j = jid_to_string(&sess->jid);
		xml_set_attr(item, "jid", j);
		free(j);
	}
	if (new_nick != NULL)
		xml_set_attr(item, "nick", new_nick);
	if (actor != NULL)
		xml_set_attr(xml_add_child(item, "actor", NULL), "nick", actor);
	if (reason != NULL && *reason != '\0')
		xml_add_text(xml_add_child(item, "reason", NULL), reason, strlen(reason));
	for (unsigned i = 0; codes != NULL && i < codes->n; i++) {
		char code[8];
		snprintf(code, sizeof(code), "%d", codes->c[i]);
		xml_set_attr(xml_add_child(x, "status", NULL), "code", code);
	}
	add_occupant_id(p, o);
	return p;
}

static char *occupant_jid(const struct muc_occupant *o)
{
	return xasprintf("%s/%s", o->room->jid, o->nick);
}

static void remove_occupant(struct muc_occupant *o);

static void broadcast_presence(struct muc_occupant *o, const struct muc_session *sess, bool unavailable,
                               const struct status_codes *self_codes, const struct status_codes *others_codes,
                               const char *new_nick, const char *reason, const char *actor);

/* Send o's presence to every occupant (and to o itself with 110 and
 * self_codes).  others_codes go to the others.  Slow readers met on the
 * way are removed afterwards. */
static void broadcast_presence(struct muc_occupant *o, const struct muc_session *sess, bool unavailable,
                               const struct status_codes *self_codes, const struct status_codes *others_codes,
                               const char *new_nick, const char *reason, const char *actor)
{
	struct muc_room *r = o->room;
	char *from = occupant_jid(o);
	struct xml_node *anon = NULL, *full = NULL;
	struct fanout fa, ff;
	bool visible = unavailable || broadcast_role(r, o->role);
	for (struct muc_occupant *to = r->occupants; to != NULL; to = to->next) {
		if (to == o)
			continue;
		if (!visible && to->role != MUC_ROLE_MODERATOR)
			continue;
		bool with = sees_jids(r, to);
		struct xml_node **t = with ? &full : &anon;
		struct fanout *f = with ? &ff : &fa;
		if (*t == NULL) {
			*t = occupant_presence(o, sess, unavailable, with, others_codes, new_nick, reason,
			                       actor);
			fanout_init(f, *t, from);
		}
		for (struct muc_session *s = to->sessions; s != NULL; s = s->next)
			if (!skip_recipient(to, s))
				fanout_to(f, &s->jid);
	}
	if (anon != NULL)
		fanout_done(&fa);
	if (full != NULL)
		fanout_done(&ff);
	struct status_codes mine = { 0 };
	if (self_codes != NULL)
		mine = *self_codes;
	codes_add(&mine, 110);
	struct xml_node *self = occupant_presence(o, sess, unavailable, true, &mine, new_nick, reason, actor);
	for (struct muc_session *s = o->sessions; s != NULL; s = s->next)
		route_to(self, from, &s->jid);
	xml_unref(&self);
	xml_unref(&anon);
	xml_unref(&full);
	free(from);
}

/* The presence of every other visible occupant, to the session real. */
static void send_occupants_to(struct muc_occupant *o, const struct jid *real)
{
	struct muc_room *r = o->room;
	bool with = sees_jids(r, o);
	for (struct muc_occupant *x = r->occupants; x != NULL; x = x->next) {
		if (x == o || !broadcast_role(r, x->role))
			continue;
		struct xml_node *p = occupant_presence(x, x->sessions, false, with, NULL, NULL, NULL, NULL);
		/* The room's name, its service and the nick are prepared already:
		 * the sender's JID is put together, not parsed (stringprep costs
		 * about 5 us, and a join into a room of N does this N times). */
		struct jid fj = { 0 };
		jid_set(&fj, r->name, r->svc->domain, x->nick);
		char *from = occupant_jid(x);
		route_from(p, from, &fj, real);
		free(from);
		jid_clear(&fj);
		xml_unref(&p);
	}
}

/* What an occupant session's presence keeps: its payload (show, status,
 * caps, ...; not the join's <x/>, not the addresses).  Payloads are
 * shared: most occupants send one of a few (one client's caps, one show),
 * so the same payload is kept once, in a pool of its own size, with a
 * count of the sessions holding it.  Loop thread. */
struct shared_presence {
	char *key;             /* the payload serialised */
	struct xml_node *tree; /* <presence/> holding the payload */
	unsigned refs;
	struct shared_presence *next;
};
static struct shared_presence **sp_table;
static unsigned sp_size, sp_count;

static bool payload_child(const struct xml_node *c)
{
	return c->type == XML_ELEMENT && !xml_is(c, "x", NS_MUC) && !xml_is(c, "x", NS_MUC_USER) &&
	       !xml_is(c, "occupant-id", NS_OCCUPANT_ID);
}

static void sp_grow(void)
{
	unsigned n = sp_size == 0 ? 64 : sp_size * 2;
	struct shared_presence **t = xcalloc(n, sizeof(*t));
	for (unsigned i = 0; i < sp_size; i++) {
		struct shared_presence *e = sp_table[i];
		while (e != NULL) {
			struct shared_presence *next = e->next;
			unsigned k = hash_str(e->key) % n;
			e->next = t[k];
			t[k] = e;
			e = next;
		}
	}
	free(sp_table);
	sp_table = t;
	sp_size = n;
}

static struct shared_presence *presence_keep(const struct xml_node *stanza)
{
	struct xml_node *tmp = xml_new("presence", NS_CLIENT);
	for (const struct xml_node *c = stanza->children; c != NULL; c = c->next)
		if (payload_child(c))
			xml_append_copy(tmp, c);
	struct buf key = { 0 };
	for (const struct xml_node *c = tmp->children; c != NULL; c = c->next)
		xml_serialize(&key, c, NS_CLIENT);
	buf_append(&key, "", 1);
	if (sp_count + 1 > sp_size)
		sp_grow();
	unsigned k = hash_str(key.data) % sp_size;
	for (struct shared_presence *e = sp_table[k]; e != NULL; e = e->next) {
		if (strcmp(e->key, key.data) == 0) {
			e->refs++;
			buf_free(&key);
			xml_unref(&tmp);
			return e;
		}
	}
	struct shared_presence *e = xcalloc(1, sizeof(*e));
	e->key = buf_steal(&key);
	e->tree = xml_copy(tmp); /* sized to fit */
	xml_unref(&tmp);
	e->refs = 1;
	e->next = sp_table[k];
	sp_table[k] = e;
	sp_count++;
	return e;
}

static void presence_release(struct shared_presence *e)
{
	if (e == NULL || --e->refs > 0)
		return;
	for (struct shared_presence **p = &sp_table[hash_str(e->key) % sp_size]; *p != NULL;
	     p = &(*p)->next) {
		if (*p == e) {
			*p = e->next;
			break;
		}
	}
	sp_count--;
	free(e->key);
	xml_unref(&e->tree);
	free(e);
	if (sp_count == 0) {
		free(sp_table);
		sp_table = NULL;
		sp_size = 0;
	}
}

static void session_set_presence(struct muc_session *s, const struct xml_node *stanza)
{
	struct shared_presence *e = presence_keep(stanza);
	presence_release(s->shared);
	s->shared = e;
	s->presence = e->tree;
}

static void session_free(struct muc_session *s)
{
	jid_clear(&s->jid);
	presence_release(s->shared);
	free(s);
}

/* Take o out of the room (no stanza sent) and free it. */
static void remove_occupant(struct muc_occupant *o)
{
	struct muc_room *r = o->room;
	for (struct muc_occupant **p = &r->occupants; *p != NULL; p = &(*p)->next) {
		if (*p == o) {
			*p = o->next;
			r->noccupants--;
			break;
		}
	}
	while (o->sessions != NULL) {
		struct muc_session *s = o->sessions;
		o->sessions = s->next;
		session_free(s);
	}
	jid_clear(&o->bare);
	free(o->nick);
	free(o);
}

static void log_event(struct muc_room *r, enum muc_log_kind kind, const char *nick, const char *text)
{
	if (r->svc->log != NULL && r->cfg.enable_logging)
		muc_log_event(r->svc->log, r->jid, r->cfg.name, (double)time(NULL), kind, nick, text);
}

/* A temporary room with nobody left goes away. */
static void maybe_vanish(struct muc_room *r)
{
	if (r->occupants == NULL && !r->cfg.persistent && r->saving == 0) {
		/* Its archive goes with it: a later room of that name is another. */
		struct jid room = { .node = r->name, .domain = r->svc->domain };
		mam_room_delete(r->svc->host, &room);
		muc_room_free(r);
	}
}

/* ---- history ------------------------------------------------------------- */

/* Keep msg (a broadcast message, no 'to') for joiners; chars is the size
 * of its serialised form (0: measure it here). */
static void history_add(struct muc_room *r, struct xml_node *msg, size_t chars)
{
	unsigned size = r->hist_size;
	if (size == 0)
		return;
	unsigned k;
	if (r->hist_count == size) {
		k = r->hist_start;
		xml_unref(&r->history[k].msg);
		r->hist_start = (r->hist_start + 1) % size;
	} else {
		k = (r->hist_start + r->hist_count) % size;
		r->hist_count++;
	}
	xml_ref(msg);
	r->history[k].msg = msg;
	r->history[k].at = (double)time(NULL);
	if (chars == 0) {
		char *s = xml_to_string(msg, NS_CLIENT);
		chars = strlen(s);
		free(s);
	}
	r->history[k].chars = chars;
}

/* Discussion history to a joining session, as <history/> in the join
 * asks (XEP-0045 §7.2.14). */
static void send_history(struct muc_room *r, const struct jid *real, const struct xml_node *hist)
{
	unsigned size = r->hist_size;
	if (size == 0 || r->hist_count == 0)
		return;
	long maxstanzas = -1, maxchars = -1, seconds = -1;
	double since = -1;
	if (hist != NULL) {
		const char *v;
		if ((v = xml_attr(hist, "maxstanzas")) != NULL)
			maxstanzas = strtol(v, NULL, 10);
		if ((v = xml_attr(hist, "maxchars")) != NULL)
			maxchars = strtol(v, NULL, 10);
		if ((v = xml_attr(hist, "seconds")) != NULL)
			seconds = strtol(v, NULL, 10);
		int64_t since_us;
		/* In whole seconds, as the history keeps its times. */
		if ((v = xml_attr(hist, "since")) != NULL && xep82_parse(v, &since_us))
			since = (double)(since_us / 1000000);
	}
	/* muc#maxhistoryfetch bounds what the joiner asks for; 0: none. */
	if (maxstanzas < 0 || maxstanzas > (long)r->cfg.max_history)
		maxstanzas = r->cfg.max_history;
	double t = (double)time(NULL);
	/* Walk back from the newest to find the first one to send. */
	unsigned first = r->hist_count, n = 0;
	long chars = 0;
	while (first > 0) {
		struct muc_history_entry *e = &r->history[(r->hist_start + first - 1) % size];
		if (maxstanzas >= 0 && (long)n >= maxstanzas)
			break;
		if (seconds >= 0 && e->at < t - seconds)
			break;
		if (since >= 0 && e->at < since)
			break;
		if (maxchars >= 0 && chars + (long)e->chars > maxchars)
			break;
		chars += (long)e->chars;
		n++;
		first--;
	}
	for (unsigned i = first; i < r->hist_count; i++) {
		struct muc_history_entry *e = &r->history[(r->hist_start + i) % size];
		struct xml_node *m = xml_copy(e->msg);
		struct xml_node *d = xml_add_child(m, "delay", NS_DELAY);
		char stamp[XEP82_STAMP_LEN];
		xep82_stamp(stamp, (int64_t)e->at);
		xml_set_attr(d, "stamp", stamp);
		xml_set_attr(d, "from", r->jid);
		route_to(m, xml_attr(e->msg, "from"), real);
		xml_unref(&m);
	}
}

static void send_subject(struct muc_room *r, const struct jid *real)
{
	struct xml_node *m = xml_new("message", NS_CLIENT);
	xml_set_attr(m, "type", "groupchat");
	xml_set_attr(m, "id", "subject");
	struct xml_node *s = xml_add_child(m, "subject", NULL);
	if (r->subject != NULL)
		xml_add_text(s, r->subject, strlen(r->subject));
	char *from = r->subject_nick != NULL && *r->subject_nick != '\0'
	                     ? xasprintf("%s/%s", r->jid, r->subject_nick)
	                     : xstrdup(r->jid);
	route_to(m, from, real);
	free(from);
	xml_unref(&m);
}

/* ---- joining ------------------------------------------------------------- */

static unsigned max_users(const struct muc_room *r)
{
	unsigned ceiling = r->svc->set->max_occupants;
	return r->cfg.max_users == 0 || r->cfg.max_users > ceiling ? ceiling : r->cfg.max_users;
}

static void join(struct muc_service *svc, struct muc_room *r, bool created, struct xml_node *stanza,
                 const struct jid *from, const struct jid *to)
{
	const char *nick = to->resource;
	const struct xml_node *mx = xml_child(stanza, "x", NS_MUC);
	struct jid bare = { 0 };
	jid_set(&bare, from->node, from->domain, NULL);
	char *bare_s = jid_bare_string(from);
	enum muc_aff aff = muc_room_affiliation(r, from);
	struct muc_occupant *same = muc_occupant_by_nick(r, nick);
	enum stanza_error e = SE_UNDEFINED_CONDITION;
	const char *text = NULL;
	bool refuse = false;
	const char *holder = muc_nick_holder(svc, nick);
	if (r->locked && aff != MUC_AFF_OWNER) {
		refuse = true, e = SE_ITEM_NOT_FOUND,
		text = "the room is locked until its owner configures it";
	} else if (aff == MUC_AFF_OUTCAST) {
		refuse = true, e = SE_FORBIDDEN, text = "you are banned from this room";
	} else if (same != NULL && !jid_bare_equal(&same->bare, from)) {
		refuse = true, e = SE_CONFLICT, text = "that nick is in use";
	} else if (holder != NULL && strcmp(holder, bare_s) != 0) {
		refuse = true, e = SE_CONFLICT, text = "that nick is registered by someone else";
	} else if (r->cfg.members_only && aff < MUC_AFF_MEMBER) {
		refuse = true, e = SE_REGISTRATION_REQUIRED, text = "this room is for members only";
	} else if (r->cfg.password_protected && aff < MUC_AFF_ADMIN &&
	           (mx == NULL || xml_child_text(mx, "password", NULL) == NULL || r->cfg.password == NULL ||
	            strcmp(xml_child_text(mx, "password", NULL), r->cfg.password) != 0)) {
		refuse = true, e = SE_NOT_AUTHORIZED, text = "a password is required";
	} else if (same == NULL && r->noccupants >= max_users(r) && aff < MUC_AFF_ADMIN) {
		refuse = true, e = SE_SERVICE_UNAVAILABLE, text = "the room is full";
	}
	free(bare_s);
	if (refuse) {
		jid_clear(&bare);
		send_error(stanza, e, text);
		return;
	}
	struct muc_session *sess = xcalloc(1, sizeof(*sess));
	jid_copy(&sess->jid, from);
	session_set_presence(sess, stanza);
	struct muc_occupant *o = same;
	if (o == NULL) {
		o = xcalloc(1, sizeof(*o));
		o->room = r;
		o->nick = xstrdup(nick);
		o->bare = bare;
		o->role = default_role(r, aff);
		o->tokens = svc->set->message_burst;
		o->tokens_at = now();
		make_occupant_id(o);
		/* Append: presence order is join order. */
		struct muc_occupant **p = &r->occupants;
		while (*p != NULL)
			p = &(*p)->next;
		*p = o;
		r->noccupants++;
	} else {
		jid_clear(&bare);
	}
	sess->next = o->sessions;
	o->sessions = sess;
	send_occupants_to(o, from);
	struct status_codes self = { 0 };
	if (r->cfg.whois == MUC_WHO_ANYONE)
		codes_add(&self, 100);
	if (r->cfg.enable_logging && svc->log != NULL)
		codes_add(&self, 170);
	if (created)
		codes_add(&self, 201);
	/* The nick asked for, before preparation: 210 when it changed. */
	const char *asked = xml_attr(stanza, "to");
	asked = asked != NULL ? strchr(asked, '/') : NULL;
	if (asked != NULL && strcmp(asked + 1, nick) != 0)
		codes_add(&self, 210);
	if (same == NULL) {
		broadcast_presence(o, sess, false, &self, NULL, NULL, NULL, NULL);
		log_event(r, MUC_LOG_JOIN, o->nick, NULL);
	} else {
		/* Another resource under the same nick: only it hears the join. */
		codes_add(&self, 110);
		struct xml_node *p = occupant_presence(o, sess, false, true, &self, NULL, NULL, NULL);
		char *fromj = occupant_jid(o);
		route_to(p, fromj, from);
		free(fromj);
		xml_unref(&p);
	}
	if (!created) {
		send_history(r, from, mx != NULL ? xml_child(mx, "history", NULL) : NULL);
		send_subject(r, from);
	}
}

static void change_nick(struct muc_room *r, struct muc_occupant *o, struct xml_node *stanza,
                        const struct jid *from, const char *nick)
{
	struct muc_occupant *other = muc_occupant_by_nick(r, nick);
	char *bare_s = jid_bare_string(from);
	const char *holder = muc_nick_holder(r->svc, nick);
	bool taken = (other != NULL && other != o) || (holder != NULL && strcmp(holder, bare_s) != 0);
	free(bare_s);
	if (taken) {
		send_error(stanza, SE_CONFLICT, "that nick is in use");
		return;
	}
	struct status_codes c = { .c = { 303 }, .n = 1 };
	broadcast_presence(o, o->sessions, true, &c, &c, nick, NULL, NULL);
	log_event(r, MUC_LOG_NICK, o->nick, nick);
	free(o->nick);
	o->nick = xstrdup(nick);
	struct muc_session *s = session_of(o, from);
	if (s != NULL) {
		session_set_presence(s, stanza);
	}
	broadcast_presence(o, s, false, NULL, NULL, NULL, NULL, NULL);
}

/* One session leaves (unavailable, an error presence, its stream ended). */
static void leave(struct muc_room *r, struct muc_occupant *o, const struct jid *from,
                  const struct xml_node *exit)
{
	struct muc_session *s = session_of(o, from);
	if (s == NULL)
		return;
	const char *status = exit != NULL ? xml_child_text(exit, "status", NULL) : NULL;
	if (o->sessions == s && s->next == NULL) {
		/* The others see the exit presence's status text, not an older one. */
		if (exit != NULL)
			session_set_presence(s, exit);
		broadcast_presence(o, s, true, NULL, NULL, NULL, NULL, NULL);
		log_event(r, MUC_LOG_LEAVE, o->nick, status);
		remove_occupant(o);
		maybe_vanish(r);
		return;
	}
	/* Another resource stays: only this one hears it left. */
	struct status_codes c = { .c = { 110 }, .n = 1 };
	struct xml_node *pr = occupant_presence(o, s, true, true, &c, NULL, NULL, NULL);
	char *fromj = occupant_jid(o);
	route_to(pr, fromj, from);
	free(fromj);
	xml_unref(&pr);
	for (struct muc_session **p = &o->sessions; *p != NULL; p = &(*p)->next) {
		if (*p == s) {
			*p = s->next;
			break;
		}
	}
	session_free(s);
}

void muc_room_presence(struct muc_service *svc, struct muc_room *r, struct xml_node *stanza,
                       const struct jid *from, const struct jid *to)
{
	const char *type = xml_attr(stanza, "type");
	struct muc_occupant *o = r != NULL ? muc_occupant_by_real(r, from) : NULL;
	if (type != NULL && (strcmp(type, "unavailable") == 0 || strcmp(type, "error") == 0)) {
		if (o != NULL)
			leave(r, o, from, strcmp(type, "unavailable") == 0 ? stanza : NULL);
		return;
	}
	if (type != NULL)
		return; /* subscriptions and probes: rooms have none */
	if (to->resource == NULL || *to->resource == '\0') {
		send_error(stanza, SE_JID_MALFORMED, "a nick is required");
		return;
	}
	if (strlen(to->resource) > 256) {
		send_error(stanza, SE_JID_MALFORMED, "the nick is too long");
		return;
	}
	if (o != NULL) {
		if (strcmp(o->nick, to->resource) != 0) {
			change_nick(r, o, stanza, from, to->resource);
			return;
		}
		/* A presence update. */
		struct muc_session *s = session_of(o, from);
		session_set_presence(s, stanza);
		broadcast_presence(o, s, false, NULL, NULL, NULL, NULL, NULL);
		return;
	}
	bool created = false;
	if (r == NULL || r->destroyed) {
		if (r != NULL) {
			send_error(stanza, SE_ITEM_NOT_FOUND, "the room is being destroyed");
			return;
		}
		if (!muc_may_create(svc, from)) {
			send_error(stanza, SE_NOT_ALLOWED, "you may not create rooms on this service");
			return;
		}
		char *bare = jid_bare_string(from);
		if (svc->set->max_rooms_per_user > 0 && !muc_is_service_admin(svc, from) &&
		    muc_rooms_owned(svc, bare) >= svc->set->max_rooms_per_user) {
			free(bare);
			send_error(stanza, SE_RESOURCE_CONSTRAINT, "you own as many rooms as you may");
			return;
		}
		/* A client that speaks MUC gets a locked room to configure (or to
		 * accept as an instant room); an old one gets an open room. */
		bool speaks_muc = xml_child(stanza, "x", NS_MUC) != NULL;
		r = muc_room_new(svc, to->node, bare, speaks_muc);
		free(bare);
		created = true;
		log_info("muc %s: room created by %s", r->jid, xml_attr(stanza, "from"));
	}
	join(svc, r, created, stanza, from, to);
	if (created && !r->locked)
		send_subject(r, from);
}

/* ---- messages ------------------------------------------------------------ */

static bool take_token(struct muc_occupant *o)
{
	const struct muc_settings *s = o->room->svc->set;
	if (s->message_rate == 0)
		return true;
	double t = now();
	o->tokens += (t - o->tokens_at) * s->message_rate;
	o->tokens_at = t;
	if (o->tokens > s->message_burst)
		o->tokens = s->message_burst;
	if (o->tokens < 1)
		return false;
	o->tokens -= 1;
	return true;
}

/* Broadcast msg (from = the occupant's room JID, no to) to every occupant. */
static size_t broadcast_message(struct muc_room *r, struct xml_node *msg)
{
	struct fanout f;
	fanout_init(&f, msg, xml_attr(msg, "from"));
	for (struct muc_occupant *to = r->occupants; to != NULL; to = to->next)
		for (struct muc_session *s = to->sessions; s != NULL; s = s->next)
			if (!skip_recipient(to, s))
				fanout_to(&f, &s->jid);
	size_t size = f.wired ? f.wire.head.len + f.wire.tail.len : 0;
	fanout_done(&f);
	return size;
}

/* The room's archive (XEP-0313, mod_mam): a message with a body, unless
 * it asks not to be stored (XEP-0334), is archived, and what the room
 * fans out carries its <stanza-id/> (XEP-0359); a stanza-id claiming the
 * room that the sender put there never goes out.  *msg is replaced by
 * the stamped copy. */
static void archive_message(struct muc_room *r, struct muc_occupant *o, struct xml_node **msg)
{
	bool mam_runs;
	(void)mam_room_default(r->svc->host, &mam_runs);
	bool store = mam_runs && r->cfg.archive && xml_child(*msg, "body", NULL) != NULL &&
	             xml_child(*msg, "no-store", "urn:xmpp:hints") == NULL &&
	             xml_child(*msg, "no-permanent-store", "urn:xmpp:hints") == NULL;
	if (!store && !mam_has_stanza_id(*msg, r->jid))
		return;
	int64_t id = store ? mam_next_id() : 0;
	struct xml_node *copy = mam_stamp_copy(*msg, r->jid, id);
	xml_unref(msg);
	*msg = copy;
	if (store) {
		struct jid room = { .node = r->name, .domain = r->svc->domain };
		mam_room_store(r->svc->host, &room, o->nick, copy, id);
	}
}

static void groupchat(struct muc_room *r, struct muc_occupant *o, struct xml_node *stanza)
{
	struct xml_node *subject = xml_child(stanza, "subject", NULL);
	const char *body = xml_child_text(stanza, "body", NULL);
	if (o->role == MUC_ROLE_VISITOR && (body != NULL || subject != NULL)) {
		send_error(stanza, SE_FORBIDDEN, "visitors have no voice in this room");
		return;
	}
	if (!take_token(o)) {
		send_error(stanza, SE_RESOURCE_CONSTRAINT, "you are sending messages too fast");
		return;
	}
	if (subject != NULL && body == NULL) {
		if (o->role != MUC_ROLE_MODERATOR && !r->cfg.change_subject) {
			send_error(stanza, SE_FORBIDDEN, "only moderators may change the subject");
			return;
		}
		const char *text = xml_text(subject);
		if (strlen(text) > r->svc->set->max_subject) {
			send_error(stanza, SE_NOT_ACCEPTABLE, "the subject is too long");
			return;
		}
		free(r->subject);
		free(r->subject_nick);
		r->subject = xstrdup(text);
		r->subject_nick = xstrdup(o->nick);
		if (r->cfg.persistent)
			muc_room_save(r, NULL, NULL);
		log_event(r, MUC_LOG_SUBJECT, o->nick, text);
	}
	struct xml_node *msg = xml_new("message", NS_CLIENT);
	for (const struct xml_attr *a = stanza->attrs; a != NULL; a = a->next)
		if (a->ns == NULL && strcmp(a->name, "from") != 0 && strcmp(a->name, "to") != 0)
			xml_set_attr(msg, a->name, a->value);
	for (struct xml_node *c = stanza->children; c != NULL; c = c->next)
		if (c->type == XML_ELEMENT)
			xml_append_copy(msg, c);
	strip_forged(msg);
	add_occupant_id(msg, o);
	char *from = occupant_jid(o);
	xml_set_attr(msg, "from", from);
	free(from);
	archive_message(r, o, &msg);
	if (body != NULL)
		log_event(r, MUC_LOG_MESSAGE, o->nick, body);
	size_t size = broadcast_message(r, msg);
	if (body != NULL)
		history_add(r, msg, size);
	xml_unref(&msg);
}

static bool may_invite(const struct muc_room *r, const struct muc_occupant *o)
{
	/* muc#roomconfig_allowinvites lets occupants invite; admins and
	 * owners always may. */
	return r->cfg.allow_invites || occ_aff(o) >= MUC_AFF_ADMIN;
}

/* Mediated invitations and declines (XEP-0045 §7.8.2, §7.8.2 decline). */
static void invitations(struct muc_room *r, const struct jid *from, struct xml_node *stanza,
                        struct xml_node *x)
{
	struct muc_occupant *o = muc_occupant_by_real(r, from);
	struct xml_node *decline = xml_child(x, "decline", NULL);
	if (decline != NULL) {
		const char *to = xml_attr(decline, "to");
		struct jid tj = { 0 };
		const char *err;
		if (to == NULL || jid_parse(to, &tj, &err) != 0) {
			send_error(stanza, SE_JID_MALFORMED, "decline without a valid 'to'");
			return;
		}
		struct xml_node *m = xml_new("message", NS_CLIENT);
		struct xml_node *mx = xml_add_child(m, "x", NS_MUC_USER);
		struct xml_node *d = xml_add_child(mx, "decline", NULL);
		char *fs = jid_bare_string(from);
		xml_set_attr(d, "from", fs);
		free(fs);
		const char *reason = xml_child_text(decline, "reason", NULL);
		if (reason != NULL)
			xml_add_text(xml_add_child(d, "reason", NULL), reason, strlen(reason));
		route_to(m, r->jid, &tj);
		xml_unref(&m);
		jid_clear(&tj);
		return;
	}
	if (o == NULL) {
		send_error(stanza, SE_NOT_ACCEPTABLE, "only occupants may invite");
		return;
	}
	if (!may_invite(r, o)) {
		send_error(stanza, SE_FORBIDDEN, "you may not invite people to this room");
		return;
	}
	unsigned n = 0;
	for (struct xml_node *inv = xml_child(x, "invite", NULL); inv != NULL;
	     inv = xml_next(inv, "invite", NULL)) {
		if (++n > MAX_INVITES) {
			send_error(stanza, SE_POLICY_VIOLATION, "too many invitations at once");
			return;
		}
		if (!take_token(o)) {
			send_error(stanza, SE_RESOURCE_CONSTRAINT, "you are sending invitations too fast");
			return;
		}
		const char *to = xml_attr(inv, "to");
		struct jid tj = { 0 };
		const char *err;
		if (to == NULL || jid_parse(to, &tj, &err) != 0) {
			send_error(stanza, SE_JID_MALFORMED, "invitation without a valid 'to'");
			return;
		}
		/* An invitation to a members-only room makes the invitee a
		 * member (§9.5: whoever may invite, an admin or, with
		 * allowinvites, a member); a user, never a whole domain. */
		if (r->cfg.members_only && tj.node != NULL && muc_room_affiliation(r, &tj) == MUC_AFF_NONE) {
			char *b = jid_bare_string(&tj);
			muc_room_set_affiliation(r, b, MUC_AFF_MEMBER, NULL, o->nick);
			free(b);
			if (r->cfg.persistent)
				muc_room_save(r, NULL, NULL);
		}
		struct xml_node *m = xml_new("message", NS_CLIENT);
		const char *reason = xml_child_text(inv, "reason", NULL);
		char *fs = r->cfg.whois == MUC_WHO_ANYONE ? jid_bare_string(from) : occupant_jid(o);
		char *body = xasprintf("%s invites you to the room %s%s%s", fs, r->jid,
		                       reason != NULL ? ": " : "", reason != NULL ? reason : "");
		xml_add_text(xml_add_child(m, "body", NULL), body, strlen(body));
		free(body);
		struct xml_node *mx = xml_add_child(m, "x", NS_MUC_USER);
		struct xml_node *i = xml_add_child(mx, "invite", NULL);
		xml_set_attr(i, "from", fs);
		free(fs);
		if (reason != NULL)
			xml_add_text(xml_add_child(i, "reason", NULL), reason, strlen(reason));
		if (r->cfg.password_protected && r->cfg.password != NULL)
			xml_add_text(xml_add_child(mx, "password", NULL), r->cfg.password,
			             strlen(r->cfg.password));
		struct xml_node *c = xml_add_child(m, "x", NS_CONFERENCE);
		xml_set_attr(c, "jid", r->jid);
		route_to(m, r->jid, &tj);
		xml_unref(&m);
		jid_clear(&tj);
	}
}

static void set_role(struct muc_room *r, struct muc_occupant *o, enum muc_role role, const char *reason,
                     const char *actor);

/* A voice request (XEP-0045 §7.13) or a moderator's answer to one (§8.6). */
static void voice_form(struct muc_room *r, const struct jid *from, struct xml_node *stanza,
                       struct xml_node *form)
{
	struct muc_occupant *o = muc_occupant_by_real(r, from);
	if (o == NULL) {
		send_error(stanza, SE_NOT_ACCEPTABLE, "only occupants may ask for voice");
		return;
	}
	const char *role = NULL, *nick = NULL, *allow = NULL;
	for (struct xml_node *f = xml_child(form, "field", NULL); f != NULL; f = xml_next(f, "field", NULL)) {
		const char *var = xml_attr(f, "var");
		const char *v = xml_child_text(f, "value", NULL);
		if (var == NULL)
			continue;
		if (strcmp(var, "muc#role") == 0)
			role = v;
		else if (strcmp(var, "muc#roomnick") == 0)
			nick = v;
		else if (strcmp(var, "muc#request_allow") == 0)
			allow = v;
	}
	if (o->role == MUC_ROLE_MODERATOR && nick != NULL && allow != NULL) {
		struct muc_occupant *t = muc_occupant_by_nick(r, nick);
		if (t != NULL && (strcmp(allow, "true") == 0 || strcmp(allow, "1") == 0) &&
		    t->role == MUC_ROLE_VISITOR)
			set_role(r, t, MUC_ROLE_PARTICIPANT, NULL, o->nick);
		return;
	}
	if (role == NULL || strcmp(role, "participant") != 0) {
		send_error(stanza, SE_BAD_REQUEST, "only voice (participant) may be requested");
		return;
	}
	if (!r->cfg.allow_voice_requests) {
		send_error(stanza, SE_FORBIDDEN, "this room takes no voice requests");
		return;
	}
	if (o->role != MUC_ROLE_VISITOR)
		return; /* has voice already */
	double t = now();
	if (o->voice_requested > 0 && t - o->voice_requested < r->cfg.voice_request_interval) {
		send_error(stanza, SE_RESOURCE_CONSTRAINT, "wait before asking again");
		return;
	}
	o->voice_requested = t;
	struct xml_node *m = xml_new("message", NS_CLIENT);
	struct xml_node *x = xml_add_child(m, "x", NS_DATA_FORMS);
	xml_set_attr(x, "type", "form");
	const char *title = "Voice request";
	xml_add_text(xml_add_child(x, "title", NULL), title, strlen(title));
	struct {
		const char *var, *type, *label, *value;
	} fields[] = {
		{ "FORM_TYPE", "hidden", NULL, NS_MUC_REQUEST },
		{ "muc#role", "list-single", "Requested role", "participant" },
		{ "muc#jid", "jid-single", "User ID", NULL },
		{ "muc#roomnick", "text-single", "Room Nickname", o->nick },
		{ "muc#request_allow", "boolean", "Grant voice to this person?", "false" },
	};
	char *bare = jid_bare_string(from);
	for (size_t i = 0; i < ARRAY_SIZE(fields); i++) {
		struct xml_node *f = xml_add_child(x, "field", NULL);
		xml_set_attr(f, "var", fields[i].var);
		xml_set_attr(f, "type", fields[i].type);
		if (fields[i].label != NULL)
			xml_set_attr(f, "label", fields[i].label);
		const char *v = fields[i].value != NULL ? fields[i].value : bare;
		xml_add_text(xml_add_child(f, "value", NULL), v, strlen(v));
	}
	free(bare);
	for (struct muc_occupant *mo = r->occupants; mo != NULL; mo = mo->next)
		if (mo->role == MUC_ROLE_MODERATOR)
			for (struct muc_session *s = mo->sessions; s != NULL; s = s->next)
				route_to(m, r->jid, &s->jid);
	xml_unref(&m);
}

static bool pm_allowed(const struct muc_room *r, const struct muc_occupant *o)
{
	switch (r->cfg.allow_pm) {
	case MUC_WHO_ANYONE: return true;
	case MUC_WHO_PARTICIPANTS: return o->role >= MUC_ROLE_PARTICIPANT;
	case MUC_WHO_MODERATORS: return o->role == MUC_ROLE_MODERATOR;
	case MUC_WHO_NONE: break;
	}
	return false;
}

void muc_room_message(struct muc_room *r, struct xml_node *stanza, const struct jid *from,
                      const struct jid *to)
{
	const char *type = xml_attr(stanza, "type");
	bool is_gc = type != NULL && strcmp(type, "groupchat") == 0;
	if (type != NULL && strcmp(type, "error") == 0)
		return;
	struct muc_occupant *o = muc_occupant_by_real(r, from);
	if (to->resource == NULL) {
		if (is_gc) {
			if (o == NULL) {
				send_error(stanza, SE_NOT_ACCEPTABLE,
				           "only occupants may send messages to the room");
				return;
			}
			groupchat(r, o, stanza);
			return;
		}
		struct xml_node *x = xml_child(stanza, "x", NS_MUC_USER);
		if (x != NULL &&
		    (xml_child(x, "invite", NULL) != NULL || xml_child(x, "decline", NULL) != NULL)) {
			invitations(r, from, stanza, x);
			return;
		}
		struct xml_node *form = xml_child(stanza, "x", NS_DATA_FORMS);
		if (form != NULL) {
			for (struct xml_node *f = xml_child(form, "field", NULL); f != NULL;
			     f = xml_next(f, "field", NULL)) {
				const char *var = xml_attr(f, "var");
				const char *v = xml_child_text(f, "value", NULL);
				if (var != NULL && strcmp(var, "FORM_TYPE") == 0 && v != NULL &&
				    strcmp(v, NS_MUC_REQUEST) == 0) {
					voice_form(r, from, stanza, form);
					return;
				}
			}
		}
		send_error(stanza, SE_BAD_REQUEST,
		           "messages to the room are groupchat, invitations or voice requests");
		return;
	}
	/* To an occupant: a private message. */
	if (is_gc) {
		send_error(stanza, SE_BAD_REQUEST, "groupchat goes to the room, not to an occupant");
		return;
	}
	if (o == NULL) {
		send_error(stanza, SE_NOT_ACCEPTABLE, "only occupants may send private messages");
		return;
	}
	struct muc_occupant *t = muc_occupant_by_nick(r, to->resource);
	if (t == NULL) {
		send_error(stanza, SE_ITEM_NOT_FOUND, "no occupant with that nick");
		return;
	}
	if (!pm_allowed(r, o)) {
		send_error(stanza, SE_FORBIDDEN, "private messages are not allowed in this room");
		return;
	}
	if (!take_token(o)) {
		send_error(stanza, SE_RESOURCE_CONSTRAINT, "you are sending messages too fast");
		return;
	}
	char *fromj = occupant_jid(o);
	for (struct muc_session *s = t->sessions; s != NULL; s = s->next) {
		struct xml_node *m = xml_copy(stanza);
		strip_forged(m);
		if (xml_child(m, "x", NS_MUC_USER) == NULL)
			xml_add_child(m, "x", NS_MUC_USER);
		add_occupant_id(m, o);
		route_to(m, fromj, &s->jid);
		xml_unref(&m);
	}
	free(fromj);
}

/* ---- roles and affiliations ---------------------------------------------- */

static void set_role(struct muc_room *r, struct muc_occupant *o, enum muc_role role, const char *reason,
                     const char *actor)
{
	if (role == MUC_ROLE_NONE) {
		struct status_codes c = { .c = { 307 }, .n = 1 };
		broadcast_presence(o, o->sessions, true, &c, &c, NULL, reason, actor);
		log_event(r, MUC_LOG_KICK, o->nick, reason);
		remove_occupant(o);
		return;
	}
	o->role = role;
	broadcast_presence(o, o->sessions, false, NULL, NULL, NULL, reason, actor);
}

void muc_room_set_affiliation(struct muc_room *r, const char *jid, enum muc_aff aff, const char *reason,
                              const char *actor)
{
	struct muc_affiliation *a = aff_entry(r, jid);
	if (aff == MUC_AFF_NONE) {
		for (struct muc_affiliation **p = &r->affs; *p != NULL; p = &(*p)->next) {
			if (*p == a) {
				*p = a->next;
				free(a->jid);
				free(a->reason);
				free(a);
				break;
			}
		}
	} else {
		if (a == NULL) {
			a = xcalloc(1, sizeof(*a));
			a->jid = xstrdup(jid);
			struct muc_affiliation **p = &r->affs;
			while (*p != NULL)
				p = &(*p)->next;
			*p = a;
		}
		a->aff = aff;
		free(a->reason);
		a->reason = xstrdup(reason != NULL ? reason : "");
	}
	/* Apply to the occupants it concerns. */
	struct muc_occupant *o = r->occupants;
	while (o != NULL) {
		struct muc_occupant *next = o->next;
		char *bare = jid_bare_string(&o->bare);
		bool match = strcmp(bare, jid) == 0 || strcmp(o->bare.domain, jid) == 0;
		free(bare);
		if (match) {
			enum muc_aff now_aff = occ_aff(o);
			if (now_aff == MUC_AFF_OUTCAST) {
				struct status_codes c = { .c = { 301 }, .n = 1 };
				o->role = MUC_ROLE_NONE;
				broadcast_presence(o, o->sessions, true, &c, &c, NULL, reason, actor);
				log_event(r, MUC_LOG_BAN, o->nick, reason);
				remove_occupant(o);
			} else if (r->cfg.members_only && now_aff < MUC_AFF_MEMBER) {
				struct status_codes c = { .c = { 321 }, .n = 1 };
				broadcast_presence(o, o->sessions, true, &c, &c, NULL, reason, actor);
				remove_occupant(o);
			} else {
				enum muc_role role = default_role(r, now_aff);
				/* A visitor given voice keeps it when its affiliation is unchanged. */
				if (o->role == MUC_ROLE_PARTICIPANT && role == MUC_ROLE_VISITOR)
					role = MUC_ROLE_PARTICIPANT;
				o->role = role;
				broadcast_presence(o, o->sessions, false, NULL, NULL, NULL, reason, actor);
			}
		}
		o = next;
	}
}

/* Remove everyone below member (the room became members-only). */
static void enforce_members_only(struct muc_room *r)
{
	struct muc_occupant *o = r->occupants;
	while (o != NULL) {
		struct muc_occupant *next = o->next;
		if (occ_aff(o) < MUC_AFF_MEMBER) {
			struct status_codes c = { .c = { 322 }, .n = 1 };
			broadcast_presence(o, o->sessions, true, &c, &c, NULL, NULL, NULL);
			remove_occupant(o);
		}
		o = next;
	}
}

static unsigned count_aff(const struct muc_room *r, enum muc_aff aff)
{
	unsigned n = 0;
	for (struct muc_affiliation *a = r->affs; a != NULL; a = a->next)
		if (a->aff == aff)
			n++;
	return n;
}

/* One affiliation change of a request: jid (a bare JID or a domain) to aff. */
struct aff_change {
	const char *jid;
	enum muc_aff aff;
};

/* Whether changes, applied in order, would take the room's last owner away
 * (it has owners now and would have none).  XEP-0045 §10.2, §10.4: the
 * request is refused with <conflict/> then, as a whole. */
static bool loses_last_owner(const struct muc_room *r, const struct aff_change *ch, size_t n)
{
	if (count_aff(r, MUC_AFF_OWNER) == 0)
		return false;
	/* A jid the request leaves an owner. */
	for (size_t i = 0; i < n; i++) {
		if (ch[i].aff != MUC_AFF_OWNER)
			continue;
		bool later = false;
		for (size_t j = i + 1; j < n && !later; j++)
			later = strcmp(ch[j].jid, ch[i].jid) == 0;
		if (!later)
			return false;
	}
	/* An owner the request does not touch. */
	for (const struct muc_affiliation *a = r->affs; a != NULL; a = a->next) {
		if (a->aff != MUC_AFF_OWNER)
			continue;
		bool touched = false;
		for (size_t i = 0; i < n && !touched; i++)
			touched = strcmp(ch[i].jid, a->jid) == 0;
		if (!touched)
			return false;
	}
	return true;
}

static void change_add(struct aff_change **ch, size_t *n, const char *jid, enum muc_aff aff)
{
	*ch = xrealloc(*ch, (*n + 1) * sizeof(**ch));
	(*ch)[*n] = (struct aff_change){ .jid = jid, .aff = aff };
	(*n)++;
}

/* ---- iq ------------------------------------------------------------------ */

struct iq_wait {
	struct xml_node *iq;
	struct xml_node *payload; /* result payload or NULL */
	struct muc_room *room;    /* still valid: rooms with saves in flight are kept */
};

static void answer(struct xml_node *iq, const struct xml_node *payload)
{
	muc_iq_answer(iq, payload);
}

static void answer_after_save(enum storage_result res, void *ctx)
{
	struct iq_wait *w = ctx;
	w->room->saving--;
	if (res == STORAGE_OK)
		answer(w->iq, w->payload);
	else
		send_error(w->iq, res == STORAGE_TEMPFAIL ? SE_RESOURCE_CONSTRAINT : SE_INTERNAL_SERVER_ERROR,
		           "the room could not be stored");
	struct muc_room *r = w->room;
	xml_unref(&w->iq);
	xml_unref(&w->payload);
	free(w);
	if (r->destroyed && r->saving == 0)
		muc_room_free(r);
	else
		maybe_vanish(r);
}

/* Store the room, then answer iq. */
static void save_and_answer(struct muc_room *r, struct xml_node *iq)
{
	struct iq_wait *w = xcalloc(1, sizeof(*w));
	xml_ref(iq);
	w->iq = iq;
	w->room = r;
	r->saving++;
	muc_room_save(r, answer_after_save, w);
}

static void admin_get(struct muc_room *r, struct muc_occupant *o, enum muc_aff my, struct xml_node *iq,
                      struct xml_node *q)
{
	struct xml_node *item = xml_child(q, "item", NULL);
	if (item == NULL) {
		send_error(iq, SE_BAD_REQUEST, NULL);
		return;
	}
	const char *affs = xml_attr(item, "affiliation"), *roles = xml_attr(item, "role");
	struct xml_node *res = xml_new("query", NS_MUC_ADMIN);
	if (affs != NULL) {
		int a = muc_aff_parse(affs);
		if (a < 0 || a == MUC_AFF_NONE) {
			xml_unref(&res);
			send_error(iq, SE_BAD_REQUEST, "no such affiliation list");
			return;
		}
		bool ok = my >= MUC_AFF_ADMIN;
		if (!ok && a == MUC_AFF_MEMBER && o != NULL)
			ok = (r->cfg.get_member_list & MUC_ROLE_BIT(o->role)) != 0 ||
			     (r->cfg.members_only && my >= MUC_AFF_MEMBER);
		if (!ok) {
			xml_unref(&res);
			send_error(iq, SE_FORBIDDEN, NULL);
			return;
		}
		for (struct muc_affiliation *e = r->affs; e != NULL; e = e->next) {
			if (e->aff != (enum muc_aff)a)
				continue;
			struct xml_node *it = xml_add_child(res, "item", NULL);
			xml_set_attr(it, "affiliation", muc_aff_str(e->aff));
			xml_set_attr(it, "jid", e->jid);
			if (e->reason != NULL && *e->reason != '\0')
				xml_add_text(xml_add_child(it, "reason", NULL), e->reason, strlen(e->reason));
		}
	} else if (roles != NULL) {
		int role = muc_role_parse(roles);
		if (role < 0 || role == MUC_ROLE_NONE) {
			xml_unref(&res);
			send_error(iq, SE_BAD_REQUEST, "no such role list");
			return;
		}
		if (o == NULL || o->role != MUC_ROLE_MODERATOR) {
			xml_unref(&res);
			send_error(iq, SE_FORBIDDEN, NULL);
			return;
		}
		for (struct muc_occupant *x = r->occupants; x != NULL; x = x->next) {
			if (x->role != (enum muc_role)role)
				continue;
			struct xml_node *it = xml_add_child(res, "item", NULL);
			xml_set_attr(it, "role", muc_role_str(x->role));
			xml_set_attr(it, "affiliation", muc_aff_str(occ_aff(x)));
			xml_set_attr(it, "nick", x->nick);
			char *j = jid_to_string(&x->sessions->jid);
			xml_set_attr(it, "jid", j);
			free(j);
		}
	} else {
		xml_unref(&res);
		send_error(iq, SE_BAD_REQUEST, NULL);
		return;
	}
	answer(iq, res);
	xml_unref(&res);
}

static char *item_target(struct muc_room *r, struct xml_node *it);

/* One muc#admin item of the request from `from`: check it against the
 * requester's rights (XEP-0045 §8, §9, §10); 0 or -1 with the error. */
static int admin_check(struct muc_room *r, const struct jid *from, struct muc_occupant *o, enum muc_aff my,
                       struct xml_node *item, enum stanza_error *e_r, const char **text_r)
{
	const char *role_s = xml_attr(item, "role"), *aff_s = xml_attr(item, "affiliation");
	if (role_s != NULL && aff_s != NULL) {
		*e_r = SE_BAD_REQUEST, *text_r = "an item changes a role or an affiliation, not both";
		return -1;
	}
	if (role_s != NULL) {
		int role = muc_role_parse(role_s);
		const char *nick = xml_attr(item, "nick");
		struct muc_occupant *t = nick != NULL ? muc_occupant_by_nick(r, nick) : NULL;
		if (role < 0 || nick == NULL) {
			*e_r = SE_BAD_REQUEST, *text_r = "a role change needs a nick and a valid role";
			return -1;
		}
		if (t == NULL) {
			*e_r = SE_ITEM_NOT_FOUND, *text_r = "no occupant with that nick";
			return -1;
		}
		if (o == NULL || o->role != MUC_ROLE_MODERATOR) {
			*e_r = SE_FORBIDDEN, *text_r = "only moderators change roles";
			return -1;
		}
		enum muc_aff ta = occ_aff(t);
		if ((role == MUC_ROLE_MODERATOR ||
		     (t->role == MUC_ROLE_MODERATOR && role != MUC_ROLE_MODERATOR)) &&
		    my < MUC_AFF_ADMIN) {
			*e_r = SE_NOT_ALLOWED, *text_r = "only admins grant or revoke moderation";
			return -1;
		}
		if (role < MUC_ROLE_MODERATOR && ta >= MUC_AFF_ADMIN && ta >= my) {
			*e_r = SE_NOT_ALLOWED, *text_r = "that occupant's affiliation protects it";
			return -1;
		}
		if (role < MUC_ROLE_MODERATOR && ta >= MUC_AFF_ADMIN) {
			*e_r = SE_NOT_ALLOWED, *text_r = "admins and owners cannot lose moderation";
			return -1;
		}
		/* §8.2, §8.5: a moderator kicks or silences no one of a higher
		 * affiliation than its own. */
		if (role <= MUC_ROLE_VISITOR && ta > my) {
			*e_r = SE_NOT_ALLOWED, *text_r = "that occupant's affiliation is higher than yours";
			return -1;
		}
		return 0;
	}
	if (aff_s != NULL) {
		int aff = muc_aff_parse(aff_s);
		const char *jid = xml_attr(item, "jid");
		const char *nick = xml_attr(item, "nick");
		if (aff < 0 || (jid == NULL && nick == NULL)) {
			*e_r = SE_BAD_REQUEST,
			*text_r = "an affiliation change needs a jid and a valid affiliation";
			return -1;
		}
		if (jid == NULL && muc_occupant_by_nick(r, nick) == NULL) {
			*e_r = SE_ITEM_NOT_FOUND, *text_r = "no occupant with that nick";
			return -1;
		}
		if (my < MUC_AFF_ADMIN) {
			*e_r = SE_FORBIDDEN, *text_r = "only admins and owners change affiliations";
			return -1;
		}
		if (aff == MUC_AFF_OUTCAST) {
			/* §9.1: an admin or owner does not ban himself. */
			char *target = item_target(r, item);
			char *self = jid_bare_string(from);
			bool same = target != NULL && strcmp(target, self) == 0;
			free(target);
			free(self);
			if (same) {
				*e_r = SE_CONFLICT, *text_r = "you cannot ban yourself";
				return -1;
			}
		}
		struct jid tj = { 0 };
		const char *err;
		enum muc_aff cur = MUC_AFF_NONE;
		if (jid != NULL) {
			if (jid_parse(jid, &tj, &err) != 0) {
				*e_r = SE_JID_MALFORMED, *text_r = "bad jid";
				return -1;
			}
			char *b = tj.node != NULL ? jid_bare_string(&tj) : xstrdup(tj.domain);
			struct muc_affiliation *a = aff_entry(r, b);
			cur = a != NULL ? a->aff : MUC_AFF_NONE;
			free(b);
			jid_clear(&tj);
		} else {
			cur = occ_aff(muc_occupant_by_nick(r, nick));
		}
		if (my == MUC_AFF_ADMIN && (aff >= MUC_AFF_ADMIN || cur >= MUC_AFF_ADMIN)) {
			*e_r = SE_NOT_ALLOWED, *text_r = "only owners grant or revoke admin and owner";
			return -1;
		}
		return 0;
	}
	*e_r = SE_BAD_REQUEST, *text_r = "an item needs a role or an affiliation";
	return -1;
}

/* Whose affiliation a checked muc#admin affiliation item changes: a bare
 * JID or a domain (the caller frees it), or NULL. */
static char *item_target(struct muc_room *r, struct xml_node *it)
{
	const char *jid = xml_attr(it, "jid");
	char *target = NULL;
	if (jid != NULL) {
		struct jid tj = { 0 };
		const char *err;
		if (jid_parse(jid, &tj, &err) == 0)
			target = tj.node != NULL ? jid_bare_string(&tj) : xstrdup(tj.domain);
		jid_clear(&tj);
	} else {
		struct muc_occupant *t = muc_occupant_by_nick(r, xml_attr(it, "nick"));
		if (t != NULL)
			target = jid_bare_string(&t->bare);
	}
	return target;
}

/* Whether the affiliation items of a checked muc#admin request, taken
 * together, would leave the room without an owner. */
static bool admin_loses_last_owner(struct muc_room *r, struct xml_node *q)
{
	struct aff_change *ch = NULL;
	size_t n = 0;
	for (struct xml_node *it = xml_child(q, "item", NULL); it != NULL; it = xml_next(it, "item", NULL)) {
		if (xml_attr(it, "affiliation") == NULL)
			continue;
		char *target = item_target(r, it);
		if (target != NULL)
			change_add(&ch, &n, target, muc_aff_parse(xml_attr(it, "affiliation")));
	}
	bool loses = loses_last_owner(r, ch, n);
	for (size_t i = 0; i < n; i++)
		free((char *)ch[i].jid);
	free(ch);
	return loses;
}

static void admin_set(struct muc_room *r, const struct jid *from, struct muc_occupant *o, enum muc_aff my,
                      struct xml_node *iq, struct xml_node *q)
{
	enum stanza_error e;
	const char *text;
	unsigned n = 0;
	for (struct xml_node *it = xml_child(q, "item", NULL); it != NULL; it = xml_next(it, "item", NULL)) {
		if (admin_check(r, from, o, my, it, &e, &text) < 0) {
			send_error(iq, e, text);
			return;
		}
		n++;
	}
	if (n == 0) {
		send_error(iq, SE_BAD_REQUEST, "no item");
		return;
	}
	if (admin_loses_last_owner(r, q)) {
		send_error(iq, SE_CONFLICT, "a room keeps at least one owner");
		return;
	}
	bool affs_changed = false;
	/* An item may take the requester out of the room (an owner stepping
	 * down to none in a members-only room): o is freed then, and the
	 * later items still name the requester as their actor. */
	char *actor = o != NULL ? xstrdup(o->nick) : NULL;
	for (struct xml_node *it = xml_child(q, "item", NULL); it != NULL; it = xml_next(it, "item", NULL)) {
		const char *reason = xml_child_text(it, "reason", NULL);
		const char *role_s = xml_attr(it, "role");
		if (role_s != NULL) {
			struct muc_occupant *t = muc_occupant_by_nick(r, xml_attr(it, "nick"));
			if (t != NULL)
				set_role(r, t, muc_role_parse(role_s), reason, actor);
			continue;
		}
		char *target = item_target(r, it);
		if (target != NULL) {
			muc_room_set_affiliation(r, target, muc_aff_parse(xml_attr(it, "affiliation")),
			                         reason, actor);
			affs_changed = true;
			free(target);
		}
	}
	free(actor);
	if (affs_changed && r->cfg.persistent)
		save_and_answer(r, iq);
	else
		answer(iq, NULL);
}

static void send_to_all(struct muc_room *r, struct xml_node *m)
{
	for (struct muc_occupant *o = r->occupants; o != NULL; o = o->next)
		for (struct muc_session *s = o->sessions; s != NULL; s = s->next)
			route_to(m, r->jid, &s->jid);
}

/* Whether the owner and admin lists of a submitted form would leave the
 * room without an owner.  The changes are those owner_submit makes, in its
 * order: the admins no longer listed dropped, the listed ones made admins;
 * then the same for the owners. */
static bool form_loses_last_owner(const struct muc_room *r, const struct muc_config_lists *lists)
{
	struct aff_change *ch = NULL;
	size_t n = 0;
	if (lists->has_admins) {
		for (const struct muc_affiliation *a = r->affs; a != NULL; a = a->next)
			if (a->aff == MUC_AFF_ADMIN && !strlist_contains(&lists->admins, a->jid))
				change_add(&ch, &n, a->jid, MUC_AFF_NONE);
		for (size_t i = 0; i < lists->admins.count; i++)
			change_add(&ch, &n, lists->admins.items[i], MUC_AFF_ADMIN);
	}
	if (lists->has_owners) {
		for (const struct muc_affiliation *a = r->affs; a != NULL; a = a->next)
			if (a->aff == MUC_AFF_OWNER && !strlist_contains(&lists->owners, a->jid) &&
			    !(lists->has_admins && strlist_contains(&lists->admins, a->jid)))
				change_add(&ch, &n, a->jid, MUC_AFF_NONE);
		for (size_t i = 0; i < lists->owners.count; i++)
			change_add(&ch, &n, lists->owners.items[i], MUC_AFF_OWNER);
	}
	bool loses = loses_last_owner(r, ch, n);
	free(ch);
	return loses;
}

static void owner_submit(struct muc_room *r, struct xml_node *iq, struct xml_node *x)
{
	struct muc_config c;
	muc_config_copy(&c, &r->cfg);
	struct muc_config_lists lists = { 0 };
	enum stanza_error e;
	const char *text;
	if (muc_config_apply_form(&c, x, r->svc->set, &lists, &e, &text) < 0) {
		muc_config_clear(&c);
		muc_config_lists_clear(&lists);
		send_error(iq, e, text);
		return;
	}
	if (form_loses_last_owner(r, &lists)) {
		muc_config_clear(&c);
		muc_config_lists_clear(&lists);
		send_error(iq, SE_CONFLICT, "a room keeps at least one owner");
		return;
	}
	int codes[4];
	unsigned nc = muc_config_change_codes(&r->cfg, &c, r->svc->log != NULL, codes);
	bool became_members_only = c.members_only && !r->cfg.members_only;
	bool was_persistent = r->cfg.persistent;
	muc_config_clear(&r->cfg);
	r->cfg = c;
	if (lists.has_owners || lists.has_admins) {
		for (enum muc_aff a = MUC_AFF_ADMIN; a <= MUC_AFF_OWNER; a++) {
			bool has = a == MUC_AFF_OWNER ? lists.has_owners : lists.has_admins;
			struct strlist *l = a == MUC_AFF_OWNER ? &lists.owners : &lists.admins;
			if (!has)
				continue;
			/* Drop those no longer listed, add the new ones. */
			struct muc_affiliation *e2 = r->affs;
			while (e2 != NULL) {
				struct muc_affiliation *next = e2->next;
				if (e2->aff == a && !strlist_contains(l, e2->jid)) {
					char *j = xstrdup(e2->jid);
					muc_room_set_affiliation(r, j, MUC_AFF_NONE, NULL, NULL);
					free(j);
				}
				e2 = next;
			}
			for (size_t i = 0; i < l->count; i++)
				muc_room_set_affiliation(r, l->items[i], a, NULL, NULL);
		}
	}
	muc_config_lists_clear(&lists);
	bool was_locked = r->locked;
	r->locked = false;
	if (became_members_only)
		enforce_members_only(r);
	if (nc > 0 || !was_locked) {
		/* Tell the occupants the configuration changed (104). */
		struct xml_node *m = xml_new("message", NS_CLIENT);
		xml_set_attr(m, "type", "groupchat");
		struct xml_node *ux = xml_add_child(m, "x", NS_MUC_USER);
		xml_set_attr(xml_add_child(ux, "status", NULL), "code", "104");
		for (unsigned i = 0; i < nc; i++) {
			char code[8];
			snprintf(code, sizeof(code), "%d", codes[i]);
			xml_set_attr(xml_add_child(ux, "status", NULL), "code", code);
		}
		send_to_all(r, m);
		xml_unref(&m);
	}
	if (r->cfg.persistent || was_persistent)
		save_and_answer(r, iq);
	else
		answer(iq, NULL);
}

static void owner_iq(struct muc_room *r, enum muc_aff my, struct xml_node *iq, struct xml_node *q, bool get)
{
	if (my != MUC_AFF_OWNER) {
		send_error(iq, SE_FORBIDDEN, "only owners configure the room");
		return;
	}
	if (get) {
		struct xml_node *res = xml_new("query", NS_MUC_OWNER);
		struct xml_node *form = muc_config_form(r);
		xml_append_copy(res, form);
		xml_unref(&form);
		/* Labels in the owner's language (lib/i18n.h). */
		const char *lang = i18n_stanza_lang(xml_attr(q, "xml:lang"), xml_attr(iq, "xml:lang"));
		xml_set_attr(res->last_child, "xml:lang", form_translate(res->last_child, lang));
		answer(iq, res);
		xml_unref(&res);
		return;
	}
	struct xml_node *destroy = xml_child(q, "destroy", NULL);
	if (destroy != NULL) {
		const char *reason = xml_child_text(destroy, "reason", NULL);
		const char *alt = xml_attr(destroy, "jid");
		answer(iq, NULL);
		muc_room_destroy(r, reason, alt);
		return;
	}
	struct xml_node *x = xml_child(q, "x", NS_DATA_FORMS);
	if (x == NULL) {
		send_error(iq, SE_BAD_REQUEST, "a configuration form or a destroy request was expected");
		return;
	}
	const char *type = xml_attr(x, "type");
	if (type != NULL && strcmp(type, "cancel") == 0) {
		answer(iq, NULL);
		if (r->locked)
			muc_room_destroy(r, NULL, NULL);
		return;
	}
	if (type == NULL || strcmp(type, "submit") != 0) {
		send_error(iq, SE_BAD_REQUEST, "the form must be submitted (type submit)");
		return;
	}
	owner_submit(r, iq, x);
}

/* Nick registration with the room (XEP-0045 §7.10). */
struct nick_wait {
	struct xml_node *iq;
	struct muc_service *svc;
	char *bare, *nick;
};

static void nick_saved(enum storage_result res, void *ctx)
{
	struct nick_wait *w = ctx;
	if (res == STORAGE_OK) {
		muc_nick_put(w->svc, w->bare, w->nick);
		answer(w->iq, NULL);
	} else if (res == STORAGE_EXISTS) {
		send_error(w->iq, SE_CONFLICT, "that nick is registered by someone else");
	} else {
		send_error(w->iq, res == STORAGE_TEMPFAIL ? SE_RESOURCE_CONSTRAINT : SE_INTERNAL_SERVER_ERROR,
		           "the registration could not be stored");
	}
	xml_unref(&w->iq);
	free(w->bare);
	free(w->nick);
	free(w);
}

static void register_iq(struct muc_room *r, const struct jid *from, struct xml_node *iq, struct xml_node *q,
                        bool get)
{
	struct muc_service *svc = r->svc;
	char *bare = jid_bare_string(from);
	const char *mine = muc_registered_nick(svc, bare);
	if (get) {
		struct xml_node *res = xml_new("query", NS_REGISTER);
		if (mine != NULL) {
			xml_add_child(res, "registered", NULL);
			xml_add_text(xml_add_child(res, "username", NULL), mine, strlen(mine));
		} else {
			const char *inst = "Choose the nick you want reserved for you on this service.";
			xml_add_text(xml_add_child(res, "instructions", NULL), inst, strlen(inst));
			struct xml_node *x = xml_add_child(res, "x", NS_DATA_FORMS);
			xml_set_attr(x, "type", "form");
			struct xml_node *f = xml_add_child(x, "field", NULL);
			xml_set_attr(f, "var", "FORM_TYPE");
			xml_set_attr(f, "type", "hidden");
			xml_add_text(xml_add_child(f, "value", NULL), NS_MUC_REGISTER,
			             strlen(NS_MUC_REGISTER));
			f = xml_add_child(x, "field", NULL);
			xml_set_attr(f, "var", "muc#register_roomnick");
			xml_set_attr(f, "type", "text-single");
			xml_set_attr(f, "label", "Desired Nickname");
			xml_add_child(f, "required", NULL);
		}
		free(bare);
		answer(iq, res);
		xml_unref(&res);
		return;
	}
	if (muc_room_affiliation(r, from) == MUC_AFF_OUTCAST) {
		free(bare);
		send_error(iq, SE_FORBIDDEN, NULL);
		return;
	}
	char *nick = NULL;
	if (xml_child(q, "remove", NULL) != NULL) {
		nick = NULL;
	} else {
		const char *v = NULL;
		struct xml_node *x = xml_child(q, "x", NS_DATA_FORMS);
		if (x != NULL) {
			for (struct xml_node *f = xml_child(x, "field", NULL); f != NULL;
			     f = xml_next(f, "field", NULL)) {
				const char *var = xml_attr(f, "var");
				if (var != NULL && strcmp(var, "muc#register_roomnick") == 0)
					v = xml_child_text(f, "value", NULL);
			}
		} else {
			v = xml_child_text(q, "username", NULL);
		}
		if (v == NULL || *v == '\0') {
			free(bare);
			send_error(iq, SE_NOT_ACCEPTABLE, "a nick is required");
			return;
		}
		nick = jid_resourceprep(v);
		if (nick == NULL || strlen(nick) > 256) {
			free(nick);
			free(bare);
			send_error(iq, SE_JID_MALFORMED, "that is not a valid nick");
			return;
		}
		const char *holder = muc_nick_holder(svc, nick);
		if (holder != NULL && strcmp(holder, bare) != 0) {
			free(nick);
			free(bare);
			send_error(iq, SE_CONFLICT, "that nick is registered by someone else");
			return;
		}
	}
	struct nick_wait *w = xcalloc(1, sizeof(*w));
	xml_ref(iq);
	w->iq = iq;
	w->svc = svc;
	w->bare = bare;
	w->nick = nick;
	muc_nick_register(svc, bare, nick, nick_saved, w);
}

/* ---- iqs between occupants ---------------------------------------------- */

/* A request relayed to an occupant goes out under an id of the room's, so
 * that its answer can be sent back to the very session that asked, with
 * the id that session used (RFC 6120 §8.2.3); the target learns neither
 * the asker's real JID nor its id.  A room keeps at most RELAY_MAX such
 * requests, each for RELAY_TTL seconds; an answer that matches none (too
 * late, made up, from another JID than the request went to) is dropped. */
#define RELAY_MAX 256
#define RELAY_TTL 120.0

struct muc_relay {
	char *id;          /* the relayed request's id */
	char *asker_id;    /* the asker's own id (NULL: it had none) */
	struct jid asker;  /* the real full JID that asked */
	struct jid target; /* the real full JID the request went to */
	double at;
	struct muc_relay *next;
};

static unsigned long long relay_seq;

static void relay_free(struct muc_relay *rl)
{
	free(rl->id);
	free(rl->asker_id);
	jid_clear(&rl->asker);
	jid_clear(&rl->target);
	free(rl);
}

void muc_room_relays_clear(struct muc_room *r)
{
	while (r->relays != NULL) {
		struct muc_relay *rl = r->relays;
		r->relays = rl->next;
		relay_free(rl);
	}
	r->nrelays = 0;
}

static void relays_expire(struct muc_room *r)
{
	double t = now();
	for (struct muc_relay **p = &r->relays; *p != NULL;) {
		struct muc_relay *rl = *p;
		if (t - rl->at > RELAY_TTL) {
			*p = rl->next;
			r->nrelays--;
			relay_free(rl);
		} else {
			p = &rl->next;
		}
	}
}

/* Route a copy of iq, under id, from occupant o's room JID to the real
 * JID to. */
static void relay_copy(struct muc_occupant *o, const struct xml_node *iq, const char *id,
                       const struct jid *to)
{
	struct xml_node *copy = xml_copy(iq);
	xml_set_attr(copy, "id", id);
	char *fromj = occupant_jid(o);
	route_to(copy, fromj, to);
	free(fromj);
	xml_unref(&copy);
}

/* Pass request iq of occupant o (session from) to occupant t. */
static void relay_request(struct muc_room *r, struct muc_occupant *o, struct muc_occupant *t,
                          struct xml_node *iq, const struct jid *from)
{
	relays_expire(r);
	if (r->nrelays >= RELAY_MAX) {
		send_error(iq, SE_RESOURCE_CONSTRAINT, "too many requests in this room wait for an answer");
		return;
	}
	struct muc_relay *rl = xcalloc(1, sizeof(*rl));
	rl->id = xasprintf("muc-%llx", ++relay_seq);
	const char *id = xml_attr(iq, "id");
	rl->asker_id = id != NULL ? xstrdup(id) : NULL;
	jid_copy(&rl->asker, from);
	jid_copy(&rl->target, &t->sessions->jid);
	rl->at = now();
	rl->next = r->relays;
	r->relays = rl;
	r->nrelays++;
	relay_copy(o, iq, rl->id, &rl->target);
}

/* A result or error from occupant o (session from): to the session whose
 * request it answers, if that session is still in the room. */
static void relay_answer(struct muc_room *r, struct muc_occupant *o, struct xml_node *iq,
                         const struct jid *from)
{
	const char *id = xml_attr(iq, "id");
	if (id == NULL)
		return;
	relays_expire(r);
	for (struct muc_relay **p = &r->relays; *p != NULL; p = &(*p)->next) {
		struct muc_relay *rl = *p;
		if (strcmp(rl->id, id) != 0 || !jid_equal(&rl->target, from))
			continue;
		*p = rl->next;
		r->nrelays--;
		if (muc_occupant_by_real(r, &rl->asker) != NULL)
			relay_copy(o, iq, rl->asker_id, &rl->asker);
		relay_free(rl);
		return;
	}
}

/* An iq to an occupant: self-ping (XEP-0410) is answered here; other
 * requests are relayed to the occupant with the sender's room JID, and
 * their answers back. */
static void occupant_iq(struct muc_room *r, struct muc_occupant *o, struct xml_node *iq,
                        const struct jid *from, const struct jid *to)
{
	const char *type = xml_attr(iq, "type");
	if (strcmp(type, "result") == 0 || strcmp(type, "error") == 0) {
		if (o != NULL)
			relay_answer(r, o, iq, from);
		return;
	}
	if (strcmp(type, "get") != 0 && strcmp(type, "set") != 0)
		return;
	struct muc_occupant *t = muc_occupant_by_nick(r, to->resource);
	if (xml_is(xml_first_element(iq), "ping", NS_PING)) {
		if (o == NULL)
			send_error(iq, SE_NOT_ACCEPTABLE, "you are not an occupant");
		else if (t == o)
			answer(iq, NULL);
		else if (t == NULL)
			send_error(iq, SE_ITEM_NOT_FOUND, NULL);
		else
			relay_request(r, o, t, iq, from);
		return;
	}
	if (o == NULL) {
		send_error(iq, SE_NOT_ACCEPTABLE, "you are not an occupant");
		return;
	}
	if (t == NULL) {
		send_error(iq, SE_ITEM_NOT_FOUND, "no occupant with that nick");
		return;
	}
	relay_request(r, o, t, iq, from);
}

void muc_room_iq(struct muc_room *r, struct xml_node *stanza, const struct jid *from, const struct jid *to)
{
	const char *type = xml_attr(stanza, "type");
	if (type == NULL)
		return;
	bool get = strcmp(type, "get") == 0;
	bool request = get || strcmp(type, "set") == 0;
	struct muc_occupant *o = muc_occupant_by_real(r, from);
	if (to->resource != NULL) {
		occupant_iq(r, o, stanza, from, to);
		return;
	}
	if (!request)
		return;
	struct xml_node *q = xml_first_element(stanza);
	if (q == NULL || xml_element_count(stanza) != 1) {
		send_error(stanza, SE_BAD_REQUEST, NULL);
		return;
	}
	enum muc_aff my = muc_room_affiliation(r, from);
	if (r->locked && my != MUC_AFF_OWNER) {
		send_error(stanza, SE_ITEM_NOT_FOUND, "the room is locked until its owner configures it");
		return;
	}
	if (get && xml_is(q, "query", NS_DISCO_INFO)) {
		const char *node = xml_attr(q, "node");
		if (node != NULL && strcmp(node, "x-roomuser-item") == 0) {
			/* §7.12: the nick the user registered, if any. */
			struct xml_node *res = xml_new("query", NS_DISCO_INFO);
			xml_set_attr(res, "node", node);
			char *bare = jid_bare_string(from);
			const char *nick = muc_registered_nick(r->svc, bare);
			free(bare);
			if (nick != NULL) {
				struct xml_node *id = xml_add_child(res, "identity", NULL);
				xml_set_attr(id, "category", "conference");
				xml_set_attr(id, "type", "text");
				xml_set_attr(id, "name", nick);
			}
			answer(stanza, res);
			xml_unref(&res);
			return;
		}
		if (node != NULL) {
			send_error(stanza, SE_ITEM_NOT_FOUND, NULL);
			return;
		}
		struct xml_node *res = xml_new("query", NS_DISCO_INFO);
		muc_config_disco_info(res, r);
		bool mam_runs;
		(void)mam_room_default(r->svc->host, &mam_runs);
		if (r->cfg.archive && mam_runs) {
			xml_set_attr(xml_add_child(res, "feature", NULL), "var", NS_MAM);
			xml_set_attr(xml_add_child(res, "feature", NULL), "var", NS_SID);
		}
		answer(stanza, res);
		xml_unref(&res);
	} else if (get && xml_is(q, "query", NS_DISCO_ITEMS)) {
		struct xml_node *res = xml_new("query", NS_DISCO_ITEMS);
		answer(stanza, res); /* occupants are not listed: their nicks are for occupants */
		xml_unref(&res);
	} else if (get && xml_is(q, "ping", NS_PING)) {
		answer(stanza, NULL);
	} else if (xml_is(q, "query", NS_MAM)) {
		/* The archive is the occupants' (or, members-only, the members'). */
		if (o == NULL && (my < MUC_AFF_MEMBER || !r->cfg.members_only)) {
			send_error(stanza, SE_FORBIDDEN, "only occupants may read the archive");
			return;
		}
		if (!r->cfg.archive) {
			send_error(stanza, SE_SERVICE_UNAVAILABLE, "the room keeps no archive");
			return;
		}
		struct jid room = { .node = r->name, .domain = r->svc->domain };
		mam_room_query(r->svc->host, stanza, from, &room);
	} else if (xml_is(q, "query", NS_MUC_ADMIN)) {
		if (get)
			admin_get(r, o, my, stanza, q);
		else
			admin_set(r, from, o, my, stanza, q);
	} else if (xml_is(q, "query", NS_MUC_OWNER)) {
		owner_iq(r, my, stanza, q, get);
	} else if (xml_is(q, "query", NS_REGISTER)) {
		register_iq(r, from, stanza, q, get);
	} else {
		send_error(stanza, SE_SERVICE_UNAVAILABLE, NULL);
	}
}

/* ---- destroy and shutdown ------------------------------------------------ */

static void remove_all(struct muc_room *r, const char *reason, const char *alt, int code)
{
	while (r->occupants != NULL) {
		struct muc_occupant *o = r->occupants;
		struct xml_node *p = xml_new("presence", NS_CLIENT);
		xml_set_attr(p, "type", "unavailable");
		struct xml_node *x = xml_add_child(p, "x", NS_MUC_USER);
		struct xml_node *item = xml_add_child(x, "item", NULL);
		xml_set_attr(item, "affiliation", muc_aff_str(occ_aff(o)));
		xml_set_attr(item, "role", "none");
		if (code == 0) {
			struct xml_node *d = xml_add_child(x, "destroy", NULL);
			if (alt != NULL)
				xml_set_attr(d, "jid", alt);
			if (reason != NULL)
				xml_add_text(xml_add_child(d, "reason", NULL), reason, strlen(reason));
		} else {
			char c[8];
			snprintf(c, sizeof(c), "%d", code);
			xml_set_attr(xml_add_child(x, "status", NULL), "code", c);
		}
		char *from = occupant_jid(o);
		for (struct muc_session *s = o->sessions; s != NULL; s = s->next)
			route_to(p, from, &s->jid);
		free(from);
		xml_unref(&p);
		remove_occupant(o);
	}
}

static void destroyed_forgotten(enum storage_result res, void *ctx)
{
	struct muc_room *r = ctx;
	(void)res;
	r->saving--;
	if (r->saving == 0)
		muc_room_free(r);
}

void muc_room_destroy(struct muc_room *r, const char *reason, const char *alt)
{
	if (r->destroyed)
		return;
	r->destroyed = true;
	log_event(r, MUC_LOG_ROOM_DESTROYED, NULL, reason);
	log_info("muc %s: room destroyed", r->jid);
	struct jid room = { .node = r->name, .domain = r->svc->domain };
	mam_room_delete(r->svc->host, &room);
	remove_all(r, reason, alt, 0);
	muc_room_unlink(r);
	r->saving++;
	muc_room_forget(r, destroyed_forgotten, r);
}

void muc_room_shutdown(struct muc_room *r, bool shutdown)
{
	remove_all(r, NULL, NULL, shutdown ? 332 : 0);
	/* Saves in flight keep their context: the store answers before it
	 * closes, and the room must outlive that; it is freed there. */
	if (r->saving == 0)
		muc_room_free(r);
	else
		r->destroyed = true;
}

void muc_room_reap(struct muc_room *r)
{
	bool found = true;
	while (found) {
		found = false;
		for (struct muc_occupant *o = r->occupants; o != NULL; o = o->next) {
			if (o->doomed == 0)
				continue;
			found = true;
			if (o->doomed == MUC_DOOMED_SLOW) {
				log_info("muc %s: removing %s: its client does not read", r->jid, o->nick);
				struct status_codes c = { .c = { 333 }, .n = 1 };
				broadcast_presence(o, o->sessions, true, &c, &c, NULL, NULL, NULL);
				remove_occupant(o);
				break;
			}
			/* Gone: drop the sessions that ended; leave when none is left. */
			for (struct muc_session **p = &o->sessions; *p != NULL;) {
				if (recipient_state(&(*p)->jid) == RCPT_GONE) {
					struct muc_session *dead = *p;
					*p = dead->next;
					session_free(dead);
				} else {
					p = &(*p)->next;
				}
			}
			o->doomed = 0;
			if (o->sessions == NULL) {
				log_debug("muc %s: %s left with its session", r->jid, o->nick);
				broadcast_presence(o, NULL, true, NULL, NULL, NULL, NULL, NULL);
				log_event(r, MUC_LOG_LEAVE, o->nick, NULL);
				remove_occupant(o);
			}
			break;
		}
	}
	maybe_vanish(r);
}
