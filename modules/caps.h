/*
 * Entity capabilities (XEP-0115) of the sessions of local users, and of
 * the resources of other servers' users that send presence to them: what
 * each client says it supports, learned from the <c/> element of its
 * available presence and verified, so that PEP sends a contact only the
 * notifications it asked for with "<node>+notify" features (XEP-0163).
 * Module "caps" (modules/mod_caps.c), on by default.  Loop thread.
 *
 * How it works:
 * - An available presence a local session sends (user_send_packet) with
 *   <c xmlns='http://jabber.org/protocol/caps' hash= node= ver=/> names
 *   the session's ver.  A ver already in the cache is the session's caps
 *   at once.  An unknown one is asked once (disco#info to the session,
 *   node "node#ver", from the host's JID, through iq_send); sessions that
 *   announce the same ver meanwhile wait for that one answer.
 * - An available presence with <c/> from a resource of another server to
 *   a local user who is online (presence_in; not a room occupant's, with
 *   muc#user) names that resource's ver
 *   for that user: kept per receiving user (the PEP owner whose contact
 *   it is), at most max_remote_per_user of them, asked and verified as a
 *   session's (disco#info to the remote full JID from the host's JID,
 *   the same cache).  Its unavailable (or error) presence to the user
 *   forgets it, and so does the end of the user's last session.
 * - The answer is verified (XEP-0115 §5.1 verification string hashed with
 *   the named hash, sha-1 and the stronger ones OpenSSL has).  A match is
 *   cached per ver; a mismatch, an error or a timeout caches nothing (the
 *   next session announcing that ver asks again) and the session keeps no
 *   caps.  A legacy <c/> without hash is not cached by ver (its features
 *   are the session's own, asked once per session).
 * - When the caps of a session or of a remote resource become known (at
 *   once, or when the answer is verified) HOOK_CAPS_KNOWN runs for it;
 *   unavailable presence and the session's close forget them.
 *
 * Invariants: the cache holds only verified entries and is bounded
 * (options max_entries, least recently used dropped); a caps_info stays
 * valid while a session uses it or it is cached (references counted).
 */
#ifndef PARLEY_MODULES_CAPS_H
#define PARLEY_MODULES_CAPS_H

#include <stdbool.h>

struct host;
struct jid;
struct session;

/* The verified features of one ver (or of one legacy session). */
struct caps_info;

/* A session's caps, NULL when not known (no <c/>, not verified yet, or
 * the caps module does not run on h). */
const struct caps_info *caps_of(struct host *h, const struct jid *full);
const struct caps_info *caps_of_session(const struct session *s);
/* The caps of full, a resource of another server, as learned from the
 * presence local user user of h received; NULL when not known. */
const struct caps_info *caps_of_remote(struct host *h, const char *user, const struct jid *full);
/* Call fn for each resource of another server whose caps user of h knows
 * (fn must not send presence to user). */
typedef void caps_remote_fn(const struct jid *full, const struct caps_info *c, void *ctx);
void caps_foreach_remote(struct host *h, const char *user, caps_remote_fn *fn, void *ctx);
/* Whether the caps list feature (exact string match). */
bool caps_has(const struct caps_info *c, const char *feature);
/* Call fn for each feature, in sorted order. */
void caps_foreach(const struct caps_info *c, void (*fn)(const char *feature, void *ctx), void *ctx);

/* The caps of a session, or of a remote resource that sends presence to
 * a local user, became known (struct hook_caps); run on the host of the
 * session or of the user after caps_of (caps_of_remote) answers them. */
#define HOOK_CAPS_KNOWN "caps_known"
struct hook_caps {
	struct session *session; /* NULL: a remote resource */
	const char *user;        /* the session's user, or the user that knows the resource */
	const struct jid *jid;   /* the session's or the resource's full JID */
	const struct caps_info *caps;
};

/* Counters for parleyctl status and the benchmark. */
struct caps_stats {
	unsigned long long lookups, hits, queries, verified, mismatches, failures;
	unsigned entries;
};
/* Of the caps module on h (zeros when it does not run there). */
struct caps_stats caps_stats(struct host *h);

#endif
