/*
 * The session manager: every bound session of every local user (resource,
 * priority, presence) and RFC 6120/6121 delivery of stanzas addressed to
 * user JIDs.  Loop thread.
 */
#ifndef PARLEY_SM_H
#define PARLEY_SM_H

#include "stanza.h"

struct host;
struct session;

/* What a session's owner (a c2s stream) provides. */
struct session_ops {
	/* Write stanza to the client (serialised into the output queue). */
	void (*deliver)(void *owner, struct xml_node *stanza);
	/* Close with a stream error (conflict when replaced, ...).  The
	 * session is out of the session manager already: what its client
	 * never acknowledged is settled now (offline storage), not when the
	 * connection has finished closing. */
	void (*kick)(void *owner, enum stream_error e, const char *text);
	/* Output accounting, in bytes since the session's stream began: how
	 * much was queued for the client, and how much of it was written to
	 * the socket (accepted by the kernel; for TLS, by SSL_write).
	 * Everything deliver queued so far is written once
	 * out_written >= the out_queued read right after it. */
	uint64_t (*out_queued)(void *owner);
	/* Optional: deliver stanza as w's bytes with stanza's 'to' attribute
	 * in between (sm_route_wire); stanza is the same tree, for owners that
	 * cannot write the bytes now. */
	void (*deliver_wire)(void *owner, struct xml_node *stanza, const struct xml_wire *w);
	uint64_t (*out_written)(void *owner);
	/* Optional: read no more input from the client for this long (a
	 * per-account rate limit); what was read already is still handled. */
	void (*throttle)(void *owner, double seconds);
};

struct session {
	struct jid jid; /* full JID */
	struct host *host;
	const struct session_ops *ops;
	void *owner;
	uint64_t id;
	double started; /* ev_now at bind */
	char ip[64];
	unsigned port; /* the client's source port */
	char tls[16];  /* TLS version in use ("TLSv1.3"), "" without TLS */
	int priority;
	bool available;               /* sent available presence */
	bool interested;              /* requested the roster (RFC 6121 interested resource) */
	bool offline_flushed;         /* mod_offline: stored messages fetched for it (not read here) */
	bool detached;                /* stream management: the connection is gone, the session waits
	                               * to be resumed (deliver queues) */
	bool inactive;                /* client state indication: the client said it is inactive */
	bool carbons;                 /* message carbons (XEP-0280) enabled */
	struct xml_node *presence;    /* last available presence broadcast, or NULL */
	struct session *next_of_user; /* private */
	struct sm_user *user;         /* private */
};

/* Register a bound session.  A session with the same full JID is replaced:
 * it is kicked with <conflict/>.  The session struct is owned by the caller
 * and must stay valid until sm_session_close. */
void sm_session_open(struct session *s);
void sm_session_close(struct session *s);

/* The host stops: the iq requests of its users still waiting to learn
 * whether the account exists are dropped unanswered (before its auth
 * chain goes). */
void sm_host_stop(struct host *h);

/* Deliver a stanza to a local user JID on host (RFC 6121 §8.5 rules). */
void sm_route(struct host *h, struct xml_node *stanza, const struct jid *from, const struct jid *to);

/* sm_route for one copy of a fan-out: w is stanza serialised once
 * (xml_wire_build), stanza's 'to' attribute is to.  The rules and hooks are
 * those of sm_route; sessions that take bytes get w's. */
void sm_route_wire(struct host *h, struct xml_node *stanza, const struct jid *from, const struct jid *to,
                   const struct xml_wire *w);

/* Deliver presence to a local user JID as sm_route does once its
 * presence_in hook has let it through: stanza_in and presence_in do not
 * run again (what they judge was judged when it came), each session's
 * user_receive_packet does.  For a module that held the presence back
 * (mod_presence keeps a user's presence in order behind the user's
 * subscription work); stanza is not consumed. */
void sm_deliver_presence(struct host *h, struct xml_node *stanza, const struct jid *from,
                         const struct jid *to);

/* The sessions one message to a bare JID went to at once (RFC 6121
 * §8.5.2.1.1: several available resources share the highest priority).
 * A session that keeps its copy to write it again (stream management,
 * c2s-sm.h) holds a reference; when that session ends before its client
 * acknowledged the copy, sm_copies_leave tells whether another of those
 * sessions still has the message. */
struct sm_copies;

/* While the session manager delivers stanza to several sessions: the
 * record of them (no reference is taken), else NULL. */
struct sm_copies *sm_copies_of(const struct xml_node *stanza);
struct sm_copies *sm_copies_ref(struct sm_copies *cp);
void sm_copies_unref(struct sm_copies **cp);
/* Session s gives its copy up (it ends and its client never acknowledged
 * it): true when another session the message went to is still open and
 * available and has not given its copy up: that one has it (its client
 * read it, or it keeps the copy and settles it in turn).  False when s was
 * the last: s keeps the message then (offline storage).  Two sessions that
 * end together never both rely on the other: the one that gives up first
 * is no longer counted for the second. */
bool sm_copies_leave(struct sm_copies *cp, const struct session *s);
/* The devices told of the message as unseen (message_unseen, hooks.h)
 * by the sessions that got it: a session that gives its copy up to
 * another (sm_copies_leave true) after its device was told adds its
 * resource, and the one that stores the message adds its own and names
 * them all (hook_packet.told) so that push counts it once per device.
 * sm_copies_told returns the list (*n_r entries, valid while cp is). */
void sm_copies_tell(struct sm_copies *cp, const char *resource);
const char *const *sm_copies_told(const struct sm_copies *cp, size_t *n_r);

/* Lookups. */
struct session *sm_find(struct host *h, const struct jid *full);
/* First session of user (iterate with s->next_of_user), or NULL. */
struct session *sm_user_sessions(struct host *h, const char *user);
unsigned sm_count(const struct host *h); /* sessions on host (NULL: all hosts) */
/* Call fn for every session (of host, or of all hosts when NULL). */
void sm_foreach(struct host *h, void (*fn)(struct session *s, void *ctx), void *ctx);

/* Kick every session of user (account removed or password changed), and
 * close the user's streams that have authenticated but not bound yet
 * (c2s_close_user).  An account's removal kicks, then waits until
 * mod_presence has broadcast the closing sessions' unavailable presence
 * (presence_wait_user, modules/builtin.h) before it asks the auth chain to
 * remove: each of them has read the roster by then, so the contacts learn
 * that the user went offline (RFC 6121 4.5.2); once removed, they are told
 * that the subscriptions are gone (presence_wait_end). */
void sm_kick_user(struct host *h, const char *user, enum stream_error e, const char *text);

#endif
