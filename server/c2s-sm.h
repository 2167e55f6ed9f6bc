/*
 * Stream management (XEP-0198) state of one client session: the counters
 * of handled stanzas both ways and the queue of stanzas sent to the client
 * and not yet acknowledged (with, for a message the session manager gave
 * to several sessions at once, a reference to their record, sm.h's
 * struct sm_copies).  server/c2s.c drives it; this part knows no stream.
 * Loop thread only.
 *
 * Counters are uint32_t and wrap at 2^32 as XEP-0198 §4 says; every
 * comparison is on the difference.  Invariant: out - acked == the number
 * of queued entries (the queue holds exactly the unacknowledged stanzas,
 * oldest first, in the order they went to the wire).
 */
#ifndef PARLEY_C2S_SM_H
#define PARLEY_C2S_SM_H

#include "lib/htab.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NS_SM "urn:xmpp:sm:3"

struct xml_node;
struct sm_copies;

struct c2s_sm_entry {
	struct xml_node *el;      /* own copy */
	double stamp;             /* when it was queued (wall clock) */
	struct sm_copies *copies; /* a reference, or NULL: the sessions the
	                           * same message went to at once (sm.h) */
	bool told;                /* the session's device was told of it as unseen
	                           * (message_unseen, hooks.h) as it was queued */
};

/* Stanzas written while earlier input is still being made durable sit in
 * the stream's held bytes; each one's end offset there is kept until the
 * bytes are written, then the stanza moves to the queue. */
struct c2s_sm_held {
	size_t end;
	struct xml_node *el;
	double stamp;
	struct sm_copies *copies;
	bool told;
};

struct c2s_sm {
	char id[25];    /* the resumption id (random), "" when not resumable */
	void *owner;    /* the c2s that holds the session */
	uint32_t in;    /* stanzas from the client handed on */
	uint32_t out;   /* stanzas to the client put in the queue */
	uint32_t acked; /* the client's last h */
	double resume_timeout;
	unsigned since_request; /* stanzas sent since the last <r/> */
	bool request_out;       /* an <r/> waits for its <a/> */
	struct c2s_sm_entry *q; /* ring buffer */
	size_t qhead, qlen, qcap;
	struct c2s_sm_held *held;
	size_t nheld, held_cap;
	/* The resumable ones: by id for c2s_sm_find, and in a list for
	 * c2s_sm_foreach (both O(1) to leave). */
	struct htab_link by_id;
	struct c2s_sm *prev, *next;
};

/* a - b counted modulo 2^32 as a distance: true when a is after b (or
 * equal, for _ge) within half the counter range. */
bool c2s_sm_h_ge(uint32_t a, uint32_t b);

struct c2s_sm *c2s_sm_new(void *owner);
/* Also unregisters it; the queued trees (and their references to copies)
 * are dropped.  NULLs *sm. */
void c2s_sm_free(struct c2s_sm **sm);
/* Give it a fresh random id and make it findable. */
void c2s_sm_make_resumable(struct c2s_sm *sm, double timeout);
struct c2s_sm *c2s_sm_find(const char *id);
/* Call fn for every resumable state; fn may free the one it is given. */
void c2s_sm_foreach(void (*fn)(struct c2s_sm *sm, void *ctx), void *ctx);

/* A stanza went to the wire (or, detached, to the queue only): queue a
 * copy of el, and a reference to copies (NULL: it went to this session
 * alone); told: the session's device was told of it (push). */
void c2s_sm_sent(struct c2s_sm *sm, const struct xml_node *el, double stamp, struct sm_copies *copies,
                 bool told);
/* The client acked h.  -1 when h acks more than was sent (nothing is
 * dropped then); else the acknowledged entries are dropped. */
int c2s_sm_ack(struct c2s_sm *sm, uint32_t h);
size_t c2s_sm_count(const struct c2s_sm *sm);
/* Entry i (0: oldest) of the queue. */
struct c2s_sm_entry *c2s_sm_entry(struct c2s_sm *sm, size_t i);
/* Take the oldest entry out (its tree and its reference to copies become
 * the caller's); false when empty.  Counts as acked: used when the session
 * ends. */
bool c2s_sm_pop(struct c2s_sm *sm, struct c2s_sm_entry *e_r);

/* Held stanzas: one of len bytes was put at offset start of the held
 * bytes (what was at start or later moves up by len). */
void c2s_sm_held_insert(struct c2s_sm *sm, size_t start, size_t len, const struct xml_node *el, double stamp,
                        struct sm_copies *copies, bool told);
/* The last held stanza (just inserted at the end) moves to start, where
 * its len bytes were moved; what was at start or later moves up by len. */
void c2s_sm_held_move_last(struct c2s_sm *sm, size_t start, size_t len);
/* The first bytes of the held bytes went out (or were dropped): the
 * stanzas among them go to the queue. */
void c2s_sm_held_written(struct c2s_sm *sm, size_t bytes);

/* The session's device is back (resumed, or active again): push counts
 * from zero again, so nothing queued counts as told any more. */
void c2s_sm_untell(struct c2s_sm *sm);

/* Whether el is a stanza the counters count (message, presence, iq). */
bool c2s_sm_is_stanza(const struct xml_node *el);

#endif
