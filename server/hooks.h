/*
 * Hooks: ordered callbacks per virtual host and hook name, with a priority
 * (lower runs first).  A callback may stop the chain.  Loop thread.
 */
#ifndef PARLEY_HOOKS_H
#define PARLEY_HOOKS_H

#include "lib/util.h"

struct host;

/* Hook names; args is the struct named beside each. */
#define HOOK_USER_SEND_PACKET "user_send_packet" /* struct hook_packet */
/* A stanza about to be written to one session of a local user (sm.c runs
 * it once per session, with hp->session set); HOOK_STOP refuses it for
 * that session (mod_privacy).  The session manager then bounces a refused
 * message or iq request with <service-unavailable/> (a message to the bare
 * JID only when no session took it) and drops refused presence. */
#define HOOK_USER_RECEIVE_PACKET "user_receive_packet" /* struct hook_packet */
#define HOOK_SESSION_OPENED "session_opened"           /* struct hook_session */
#define HOOK_SESSION_CLOSED "session_closed"           /* struct hook_session */
/* A session that waited to be resumed (stream management) has a
 * connection again and was sent what it had not acknowledged: the device
 * behind it sees its messages again (mod_push), and its client state is
 * active again (a stream begins active, XEP-0352): mod_csi, first in the
 * chain, clears session->inactive and writes what it held back.  Not
 * session_opened: the session never closed. */
#define HOOK_SESSION_RESUMED "session_resumed" /* struct hook_session */
/* A session whose client had said it is inactive said <active/> (client
 * state indication; run by mod_csi once what it held back is written):
 * the device behind it sees its messages again (mod_push).  Not run when
 * a session opens or is resumed: session_opened and session_resumed are. */
#define HOOK_SESSION_ACTIVE "session_active"   /* struct hook_session */
#define HOOK_OFFLINE_MESSAGE "offline_message" /* struct hook_packet */
#define HOOK_REMOVE_USER "remove_user"         /* struct hook_user */
#define HOOK_REGISTER_USER "register_user"     /* struct hook_user */
#define HOOK_DISCO_INFO "disco_info"           /* struct hook_disco */
/* disco#items of the server JID: add <item/> children to query; a module
 * that knows node sets handled (an empty list is then a valid answer). */
#define HOOK_DISCO_ITEMS "disco_items"         /* struct hook_disco */
#define HOOK_STREAM_FEATURES "stream_features" /* struct hook_features */
/* Presence to a local user JID (bare or full), before the session manager
 * delivers it; HOOK_STOP when a module took it (subscriptions, probes). */
#define HOOK_PRESENCE_IN "presence_in" /* struct hook_packet */
/* Every stanza to a local user JID (bare or full), first thing in the
 * session manager, before presence_in and delivery; HOOK_STOP when a
 * module took it (mod_blocking drops or bounces what a block forbids). */
#define HOOK_STANZA_IN "stanza_in" /* struct hook_packet */
/* A user's vCard is new: the user stored it (mod_vcard, after storage said
 * OK), or mod_vcard read it from the directory (source ldap: each read
 * that is not from its cache; listeners compare with what they knew). */
#define HOOK_VCARD_SET "vcard_set" /* struct hook_vcard */
/* A user's roster item changed (added, changed, or removed: subscription
 * SUB_REMOVE); run by roster_push, before the push goes out. */
#define HOOK_ROSTER_CHANGED "roster_changed" /* struct hook_roster */
/* The roster a user sees is the stored one plus what modules add (shared
 * roster groups): run by roster_view_make (modules/builtin.h) after every
 * roster read that decides what a client sees or where presence goes. */
#define HOOK_ROSTER_VIEW "roster_view" /* struct hook_roster_view */
/* A user stored elements in private XML storage (mod_private, after
 * storage said OK): run once per stored element (mod_bookmarks keeps the
 * legacy bookmarks of XEP-0048 in step with PEP). */
#define HOOK_PRIVATE_SET "private_set" /* struct hook_private */
/* A message for a local user was accepted where the user does not see it
 * now: stored offline (mod_offline, after the commit; session NULL),
 * queued for a session that waits to be resumed (stream management:
 * session->detached), or written to a session whose client said it is
 * inactive (client state indication: session->inactive).  mod_push wakes
 * the devices that do not see it from here (session: that one's device
 * only; a message stored offline: every device but those in told).
 * Never stops the chain. */
#define HOOK_MESSAGE_UNSEEN "message_unseen" /* struct hook_packet */
/* A top-level element of a bound client stream that is no stanza (a
 * "nonza": client state indication's <active/>, ...), with session set and
 * from/to NULL; a callback that handles it stops the chain.  Unhandled,
 * the stream closes with <unsupported-stanza-type/>.  Also run for the
 * <active/> or <inactive/> of a Bind 2 request (XEP-0386) once its
 * session is open, before <success/> is written; unhandled there, it is
 * ignored. */
#define HOOK_C2S_NONZA "c2s_nonza" /* struct hook_packet */

enum hook_result { HOOK_CONTINUE, HOOK_STOP };
typedef enum hook_result hook_fn(struct host *h, void *args, void *ctx);

struct jid;
struct xml_node;
struct session;
struct hook_packet {
	const struct jid *from, *to;
	struct xml_node *stanza;
	struct session *session;
	/* user_receive_packet: a callback that stops the chain and sets queued
	 * took the stanza for later delivery to this session (client state
	 * indication): it counts as delivered, not refused. */
	bool queued;
	/* stanza_in, for a message: a callback may set replace to a new tree
	 * (its own reference, handed over) that the session manager delivers,
	 * stores and hands on instead of stanza from then on (mod_mam adds its
	 * <stanza-id/>; trees are immutable once routed, so it copies). */
	struct xml_node *replace;
	/* user_send_packet, for a message: the id under which the sender's
	 * archive keeps it (mod_mam sets it at priority 55; 0: not archived).
	 * Later callbacks may name it: mod_carbons puts the archive's
	 * <stanza-id/> into the <sent/> copies. */
	int64_t archive_id;
	/* offline_message from stream management (a session ended with the
	 * message unacknowledged), and the message_unseen mod_offline runs
	 * once it stored it: the resources of the sessions whose devices were
	 * told of it already (message_unseen ran as it was queued for them,
	 * detached or inactive), told[0..ntold); push does not count it again
	 * for those devices.  NULL and 0 otherwise. */
	const char *const *told;
	size_t ntold;
};
struct hook_session {
	struct session *session;
};
struct hook_user {
	const char *user;
};
struct roster_item;
struct hook_roster {
	const char *user;
	const struct roster_item *item;
};
struct hook_vcard {
	const char *user;
	const struct xml_node *vcard;
};
struct hook_private {
	const char *user;
	const struct xml_node *element; /* the stored element (valid during the hook) */
};
/* disco#info for node (NULL: no node) of to: add <identity/>/<feature/> children to query */
struct hook_disco {
	const struct jid *from, *to;
	const char *node;
	struct xml_node *query;
	bool handled;
};
/* add children to <stream:features/> (authenticated tells the stage) */
struct hook_features {
	struct xml_node *features;
	bool authenticated;
	bool secure;
};
struct roster_item;
/* stored: the user's stored items (valid during the hook).  A module that
 * adds or changes items sets items (malloc'd array of malloc'd items,
 * freed with roster_item_clear and free by the caller) to the whole merged
 * list and count; tag (nonzero) names the state of what it added, for the
 * roster version.  presence: the view decides presence (subscription bits
 * say which way presence flows; items only the client would not see may be
 * added), else it is what the client sees.  single: merge into the stored
 * items only, add no other contact (a roster push of one item). */
struct hook_roster_view {
	const char *user;
	bool presence, single;
	const struct roster_item *stored;
	size_t nstored;
	struct roster_item *items;
	size_t count;
	uint32_t tag;
};

void hook_add(struct host *h, const char *name, int priority, hook_fn *fn, void *ctx);
void hook_remove(struct host *h, const char *name, hook_fn *fn, void *ctx);
/* Run the chain; HOOK_STOP if a callback stopped it. */
enum hook_result hook_run(struct host *h, const char *name, void *args);
void hooks_free_host(struct host *h);

#endif
