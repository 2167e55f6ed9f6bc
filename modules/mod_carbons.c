/*
 * mod_carbons: message carbons (XEP-0280, urn:xmpp:carbons:2).  A session
 * enables or disables carbons with an iq set to its own account
 * (session->carbons); its user's other sessions then get a copy of the
 * chat messages it did not itself receive or send.  Loop thread.
 *
 * Where stanzas come from:
 * - the iq handler (IQ_SCOPE_USER): set <enable/> / <disable/> from one of
 *   the user's own bound sessions.
 * - user_send_packet (priority 95, after the filters that may refuse the
 *   message, and after mod_mam, 55, gave it an archive id): a qualifying
 *   message a session sends is copied, wrapped in <sent/>, to every other
 *   carbons-enabled session of the user; when the sender's archive kept
 *   it, the forwarded message carries the archive's
 *   <stanza-id by='sender's bare JID'/>.
 * - user_receive_packet (priority 80: after mod_privacy refused what it
 *   refuses, before mod_csi queues): each write of a qualifying message to
 *   a session is noted.  Once the message has gone to every session the
 *   session manager chose, every other carbons-enabled session of the user
 *   gets a copy wrapped in <received/>.  The message the sessions get is
 *   the one the session manager delivers (a stanza_in hook may have
 *   replaced it, with a <stanza-id/> added), so that is what is forwarded.
 *
 * "Once the message has gone": the session manager writes one message to
 * its sessions in one go, and tells nobody when it is done.  The module
 * keeps the message being delivered (pending) and sends its copies when
 * the next stanza enters the session manager (stanza_in, first of all),
 * when a session sends a stanza (user_send_packet), when another message
 * is written to a session, or just before the loop sleeps (a prepare
 * watcher of the highest priority, so before the streams flush their
 * output).  So copies keep the order of the messages they copy, among
 * themselves and relative to what the user's sessions send and get later.
 * A message nobody took (stored offline, bounced) makes no copy.
 *
 * stanza_in (priority 1000, the last): a message to a local user with
 * <private/> is handed on without it (a copy, hp->replace), and that copy
 * is marked so that it makes no carbons.
 *
 * Which messages qualify (XEP-0280 §6): type chat, or type normal (or no
 * type) with a <body/>, or type error when it answers one of those (below);
 * not one with <private/> (XEP-0280 §7) or the <no-copy/> hint (XEP-0334);
 * never a carbon itself (<received/>, <sent/>).
 * Received messages from a MUC service (<x xmlns='...muc#user'/>: groupchat
 * is not of the types above anyway, private messages through a room) do
 * not qualify: the user's other resources are not in the room.  Nor do
 * received messages from a server or service JID (no local part: the
 * announcements and message of the day mod_announce sends to each session
 * itself).  Messages between resources of the same account make no
 * copies.  An error answers a message when it carries that message's id
 * and goes the other way between the same user and peer (bare JIDs): the
 * module remembers the last REPLY_SLOTS qualifying messages with an id,
 * for REPLY_AGE seconds (an answer later than that, or after that many
 * others, makes no copy).
 *
 * Privacy: a copy goes through user_receive_packet for the session that
 * gets it, with the original sender as 'from' (a privacy list that denies
 * a contact's messages denies their copies; mod_csi may queue a copy of a
 * chat state).
 */
#include "builtin.h"
#include "mam.h"
#include "server/host.h"
#include "server/hooks.h"
#include "server/server.h"
#include "server/sm.h"
#include "lib/latency.h"
#include "lib/log.h"

#include <stdlib.h>
#include <string.h>

#define NS_CARBONS "urn:xmpp:carbons:2"
#define NS_FORWARD "urn:xmpp:forward:0"
#define NS_HINTS "urn:xmpp:hints"
#define NS_MUC_USER "http://jabber.org/protocol/muc#user"
/* The qualifying messages whose error replies qualify too: the last
 * REPLY_SLOTS of them (with an id), for REPLY_AGE seconds. */
#define REPLY_SLOTS 512
#define REPLY_AGE 300.0

/* A qualifying message that went between a user and a peer: the key of
 * its user, peer (bare) and id (recent_key; 0: a free slot). */
struct carbons_sent_msg {
	uint64_t key;
	bool outgoing; /* the user sent it */
	double at;     /* ev_now */
};

struct carbons_state {
	struct host *host;
	/* The message being delivered (a reference), the JID it came from, its
	 * 'to' (a fan-out changes the tree's per recipient), the user it is
	 * for and the sessions that got it. */
	struct xml_node *msg;
	struct jid from;
	char *to;
	char *user;
	uint64_t *got;
	size_t ngot, got_cap;
	/* The last message copied (a reference): a late write of it (a hook
	 * flushed it early) makes no second round of copies. */
	struct xml_node *done;
	ev_prepare flush_w;
	bool in_copy; /* running user_receive_packet for a copy of ours */
	/* The qualifying messages an error may answer: a ring, oldest at next. */
	struct carbons_sent_msg recent[REPLY_SLOTS];
	size_t recent_next;
};

/* ---- which messages qualify ---------------------------------------------------- */

static bool is_type(const char *type, const char *want)
{
	return type != NULL && strcmp(type, want) == 0;
}

/* No hint keeps msg from being copied (XEP-0280 §7, XEP-0334), and it is
 * no carbon itself. */
static bool copy_allowed(const struct xml_node *msg)
{
	return xml_child(msg, "private", NS_CARBONS) == NULL && xml_child(msg, "no-copy", NS_HINTS) == NULL &&
	       xml_child(msg, "received", NS_CARBONS) == NULL && xml_child(msg, "sent", NS_CARBONS) == NULL;
}

/* XEP-0280 §6 and §7, for both directions; errors: answers_recent. */
static bool qualifies(const struct xml_node *msg)
{
	if (stanza_kind(msg) != STANZA_MESSAGE)
		return false;
	const char *type = xml_attr(msg, "type");
	bool im = is_type(type, "chat") ||
	          ((type == NULL || is_type(type, "normal")) && xml_child(msg, "body", NS_CLIENT) != NULL);
	return im && copy_allowed(msg);
}

/* 64-bit FNV-1a of s and its terminating NUL, continuing from h. */
static uint64_t fnv64_str(uint64_t h, const char *s)
{
	do {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	} while (*s++ != '\0');
	return h;
}

/* The key of a message with this id between user and peer's bare JID,
 * never 0.  Two messages share a key by chance once in 2^64: an error
 * answering the one would then be copied as if it answered the other. */
static uint64_t recent_key(const char *user, const struct jid *peer, const char *id)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	h = fnv64_str(h, user);
	h = fnv64_str(h, peer->node != NULL ? peer->node : "");
	h = fnv64_str(h, peer->domain);
	h = fnv64_str(h, id);
	return h != 0 ? h : 1;
}

/* msg qualified, between user and peer (outgoing: the user sent it):
 * remembered, so that an error answering it qualifies too.  No
 * allocation: this runs for every qualifying message. */
static void recent_note(struct carbons_state *cs, const char *user, const struct jid *peer,
                        const struct xml_node *msg, bool outgoing)
{
	const char *id = xml_attr(msg, "id");
	if (id == NULL || *id == '\0')
		return; /* nothing could name it in an answer */
	uint64_t key = recent_key(user, peer, id);
	const struct carbons_sent_msg *last = &cs->recent[(cs->recent_next + REPLY_SLOTS - 1) % REPLY_SLOTS];
	if (last->key == key && last->outgoing == outgoing)
		return; /* the same message written to another session */
	struct carbons_sent_msg *r = &cs->recent[cs->recent_next];
	cs->recent_next = (cs->recent_next + 1) % REPLY_SLOTS;
	*r = (struct carbons_sent_msg){ .key = key, .outgoing = outgoing, .at = ev_now(server.loop) };
}

/* XEP-0280 §6: a message of type error qualifies when it answers a message
 * that qualified: one with its id that went the other way between user
 * and peer (outgoing: the user sends the error) not long ago.  The hints
 * apply to it as to any message. */
static bool answers_recent(const struct carbons_state *cs, const struct xml_node *msg, const char *user,
                           const struct jid *peer, bool outgoing)
{
	const char *id = xml_attr(msg, "id");
	if (!is_type(xml_attr(msg, "type"), "error") || id == NULL || *id == '\0' || !copy_allowed(msg))
		return false;
	uint64_t key = recent_key(user, peer, id);
	double now = ev_now(server.loop);
	for (size_t i = 0; i < REPLY_SLOTS; i++) {
		const struct carbons_sent_msg *r = &cs->recent[i];
		if (r->key == key && r->outgoing != outgoing && now - r->at <= REPLY_AGE)
			return true;
	}
	return false;
}

/* from and to are accounts of the same user (any resource). */
static bool own_account(const struct jid *from, const struct jid *to)
{
	return from != NULL && to != NULL && jid_bare_equal(from, to);
}

/* ---- copies ---------------------------------------------------------------------- */

/* Write a copy of msg wrapped in <dir/> to session s, unless a
 * user_receive_packet hook refuses or queues it for s; orig_from is the
 * JID msg came from, orig_to (NULL: msg's own) the 'to' it had. */
static void send_copy(struct carbons_state *cs, struct session *s, const char *dir,
                      const struct xml_node *msg, const struct jid *orig_from, const char *orig_to)
{
	struct xml_node *w = xml_new("message", NS_CLIENT);
	xml_set_attr(w, "from", jid_bare_to_pool(w->pool, &s->jid));
	xml_set_attr(w, "to", jid_to_pool(w->pool, &s->jid));
	const char *type = xml_attr(msg, "type");
	if (type != NULL)
		xml_set_attr(w, "type", type);
	struct xml_node *d = xml_add_child(w, dir, NS_CARBONS);
	struct xml_node *fw = xml_add_child(d, "forwarded", NS_FORWARD);
	struct xml_node *m = xml_append_copy(fw, msg);
	if (orig_to != NULL)
		xml_set_attr(m, "to", orig_to);
	struct hook_packet hp = { .from = orig_from, .to = &s->jid, .stanza = w, .session = s };
	cs->in_copy = true;
	enum hook_result r = hook_run(cs->host, HOOK_USER_RECEIVE_PACKET, &hp);
	cs->in_copy = false;
	if (r != HOOK_STOP)
		s->ops->deliver(s->owner, w);
	xml_unref(&w);
}

static bool got_it(const struct carbons_state *cs, uint64_t id)
{
	for (size_t i = 0; i < cs->ngot; i++)
		if (cs->got[i] == id)
			return true;
	return false;
}

/* Send the copies of the pending message, if any. */
static void flush_pending(struct carbons_state *cs)
{
	if (cs->msg == NULL)
		return;
	ev_prepare_stop(server.loop, &cs->flush_w);
	struct xml_node *msg = cs->msg;
	cs->msg = NULL;
	for (struct session *s = sm_user_sessions(cs->host, cs->user), *next; s != NULL; s = next) {
		next = s->next_of_user;
		if (s->carbons && !got_it(cs, s->id))
			send_copy(cs, s, "received", msg, &cs->from, cs->to);
	}
	if (cs->done != NULL)
		xml_unref(&cs->done);
	cs->done = msg; /* the reference moves */
	jid_clear(&cs->from);
	free(cs->to);
	cs->to = NULL;
	free(cs->user);
	cs->user = NULL;
	cs->ngot = 0;
}

static void flush_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	latency_begin(LATENCY_MODULE, "carbons");
	(void)loop;
	(void)revents;
	flush_pending(w->data);
	latency_end();
}

/* Whether another session of s's user has carbons enabled. */
static bool any_other(const struct session *s)
{
	for (const struct session *o = sm_user_sessions(s->host, s->jid.node); o != NULL; o = o->next_of_user)
		if (o != s && o->carbons)
			return true;
	return false;
}

/* ---- hooks --------------------------------------------------------------------- */

/* A stanza enters the session manager: the copies of the message before it
 * go first. */
static enum hook_result carbons_stanza_in(struct host *h, void *args, void *ctx)
{
	(void)h;
	(void)args;
	flush_pending(ctx);
	return HOOK_CONTINUE;
}

/* XEP-0280 §7: the recipient gets a private message without <private/>.
 * The last stanza_in callback, so that it starts from a replacement an
 * earlier one made (the archive's <stanza-id/>); the message it hands on
 * is marked done: it makes no copies. */
static enum hook_result carbons_strip_private(struct host *h, void *args, void *ctx)
{
	(void)h;
	struct carbons_state *cs = ctx;
	struct hook_packet *hp = args;
	struct xml_node *base = hp->replace != NULL ? hp->replace : hp->stanza;
	if (stanza_kind(base) != STANZA_MESSAGE || xml_child(base, "private", NS_CARBONS) == NULL)
		return HOOK_CONTINUE;
	struct xml_node *copy = xml_copy(base);
	for (struct xml_node *p; (p = xml_child(copy, "private", NS_CARBONS)) != NULL;)
		xml_remove(p);
	xml_unref(&hp->replace);
	hp->replace = copy;
	xml_unref(&cs->done);
	xml_ref(copy);
	cs->done = copy;
	return HOOK_CONTINUE;
}

static enum hook_result carbons_receive(struct host *h, void *args, void *ctx)
{
	(void)h;
	struct carbons_state *cs = ctx;
	struct hook_packet *hp = args;
	if (cs->in_copy || hp->session == NULL || stanza_kind(hp->stanza) != STANZA_MESSAGE)
		return HOOK_CONTINUE;
	if (hp->stanza == cs->done)
		return HOOK_CONTINUE;
	if (hp->stanza != cs->msg) {
		flush_pending(cs);
		if (xml_child(hp->stanza, "x", NS_MUC_USER) != NULL || hp->from == NULL ||
		    hp->from->node == NULL || own_account(hp->from, &hp->session->jid))
			return HOOK_CONTINUE;
		const char *user = hp->session->jid.node;
		if (qualifies(hp->stanza))
			recent_note(cs, user, hp->from, hp->stanza, false);
		else if (!answers_recent(cs, hp->stanza, user, hp->from, false))
			return HOOK_CONTINUE;
		if (!any_other(hp->session))
			return HOOK_CONTINUE;
		xml_ref(hp->stanza);
		cs->msg = hp->stanza;
		jid_copy(&cs->from, hp->from);
		const char *to = xml_attr(hp->stanza, "to");
		cs->to = to != NULL ? xstrdup(to) : NULL;
		cs->user = xstrdup(hp->session->jid.node);
		ev_prepare_start(server.loop, &cs->flush_w);
	}
	if (cs->ngot == cs->got_cap) {
		cs->got_cap = cs->got_cap ? cs->got_cap * 2 : 4;
		cs->got = xrealloc(cs->got, cs->got_cap * sizeof(*cs->got));
	}
	cs->got[cs->ngot++] = hp->session->id;
	return HOOK_CONTINUE;
}

static enum hook_result carbons_send(struct host *h, void *args, void *ctx)
{
	struct carbons_state *cs = ctx;
	struct hook_packet *hp = args;
	flush_pending(cs);
	struct session *self = hp->session;
	if (self == NULL || stanza_kind(hp->stanza) != STANZA_MESSAGE || hp->to == NULL ||
	    own_account(&self->jid, hp->to))
		return HOOK_CONTINUE;
	if (qualifies(hp->stanza))
		recent_note(cs, self->jid.node, hp->to, hp->stanza, true);
	else if (!answers_recent(cs, hp->stanza, self->jid.node, hp->to, true))
		return HOOK_CONTINUE;
	if (!any_other(self))
		return HOOK_CONTINUE;
	/* The sender's archive kept it: the copies name its <stanza-id/>, so
	 * the other devices know their place in the archive (XEP-0359,
	 * XEP-0313; the message itself goes out without it). */
	struct xml_node *msg = hp->stanza;
	if (hp->archive_id != 0) {
		char *by = jid_bare_string(&self->jid);
		msg = mam_stamp_copy(hp->stanza, by, hp->archive_id);
		free(by);
	} else {
		xml_ref(msg);
	}
	for (struct session *s = sm_user_sessions(h, self->jid.node), *next; s != NULL; s = next) {
		next = s->next_of_user;
		if (s != self && s->carbons)
			send_copy(cs, s, "sent", msg, &self->jid, NULL);
	}
	xml_unref(&msg);
	return HOOK_CONTINUE;
}

/* ---- iq -------------------------------------------------------------------------- */

/* XEP-0280 §4-§5: enable and disable, for the requesting session only;
 * repeating either is fine (§9.1). */
static void carbons_iq(struct iq_request *req, void *ctx)
{
	(void)ctx;
	bool enable = xml_is(req->payload, "enable", NS_CARBONS);
	if (!enable && !xml_is(req->payload, "disable", NS_CARBONS)) {
		iq_error(req, SE_BAD_REQUEST, NULL);
		return;
	}
	if (strcmp(req->type, "set") != 0) {
		iq_error(req, SE_BAD_REQUEST, "carbons are enabled and disabled with an iq set");
		return;
	}
	struct session *s = NULL;
	if (req->from.node != NULL && jid_bare_equal(&req->from, &req->to))
		s = sm_find(req->host, &req->from);
	if (s == NULL) {
		iq_error(req, SE_NOT_ALLOWED, "only a session of the account itself sets its carbons");
		return;
	}
	s->carbons = enable;
	iq_result(req, NULL);
}

/* ---- module ------------------------------------------------------------------------ */

static const struct builtin_iq carbons_iqs[] = {
	{ IQ_SCOPE_USER, NS_CARBONS, IQ_NO_QUEUE, carbons_iq },
};

static const struct builtin_hook carbons_hooks[] = {
	/* Before any other stanza_in callback: copies keep their order. */
	{ HOOK_STANZA_IN, -100, carbons_stanza_in },
	{ HOOK_STANZA_IN, 1000, carbons_strip_private },
	{ HOOK_USER_RECEIVE_PACKET, 80, carbons_receive },
	{ HOOK_USER_SEND_PACKET, 95, carbons_send },
};

static const struct builtin_parts carbons_parts = {
	.iqs = carbons_iqs,
	.niqs = ARRAY_SIZE(carbons_iqs),
	.hooks = carbons_hooks,
	.nhooks = ARRAY_SIZE(carbons_hooks),
	.feature = NS_CARBONS,
};

static int carbons_start(struct host *h, const void *settings, void **state_r, char **error_r)
{
	(void)settings;
	struct carbons_state *cs = xcalloc(1, sizeof(*cs));
	cs->host = h;
	ev_prepare_init(&cs->flush_w, flush_cb);
	ev_set_priority(&cs->flush_w, EV_MAXPRI);
	cs->flush_w.data = cs;
	if (builtin_parts_add(h, &carbons_parts, cs, error_r) < 0) {
		free(cs);
		return -1;
	}
	*state_r = cs;
	return 0;
}

static void carbons_stop(struct host *h, void *state)
{
	struct carbons_state *cs = state;
	builtin_parts_remove(h, &carbons_parts, cs);
	ev_prepare_stop(server.loop, &cs->flush_w);
	/* A message delivered just now: its copies are not sent. */
	xml_unref(&cs->msg);
	xml_unref(&cs->done);
	jid_clear(&cs->from);
	free(cs->to);
	free(cs->user);
	free(cs->got);
	free(cs);
}

const struct module_def mod_carbons = {
	.name = "carbons",
	.description = "XEP-0280 message carbons: a user's resources that enable them get copies of the chat "
	               "messages the user's other resources send and receive",
	.default_enabled = true,
	.start = carbons_start,
	.stop = carbons_stop,
};
