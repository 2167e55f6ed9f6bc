/*
 * A per-user cache for modules that keep something about each user with a
 * session (a block list, privacy lists, an avatar hash), written once: an
 * entry exists from the first session of the user to the last one's
 * close, is found by the user's local part, and is cleared by the module's
 * own function when it goes.  The cache follows the host's session_opened
 * and session_closed hooks itself, and takes the sessions that exist when
 * it starts.  Loop thread.
 *
 * How a module uses it: its entry struct starts with a struct
 * user_cache_entry; its state holds a struct user_cache whose entry_size,
 * callbacks and ctx it fills before user_cache_start (at the end of the
 * module's start), and user_cache_stop in its stop.
 *
 * Invariants: one entry per user; entry->sessions counts the sessions the
 * cache saw open and not closed yet; an entry is freed (after clear) when
 * that count reaches zero, or at stop; the callbacks never run after stop.
 */
#ifndef PARLEY_MODULES_USER_CACHE_H
#define PARLEY_MODULES_USER_CACHE_H

#include <stddef.h>

struct host;
struct session;

struct user_cache_entry {
	char *user;                    /* the local part (owned by the cache) */
	unsigned sessions;             /* sessions of the user that are open */
	struct user_cache_entry *next; /* private: the bucket's chain */
};

struct user_cache {
	size_t entry_size; /* the module's entry struct (zeroed when made) */
	/* After a session of e's user opened (e->sessions counts it; 1: e is
	 * new).  May be NULL. */
	void (*opened)(struct user_cache_entry *e, struct session *s, void *ctx);
	/* Before a session of e's user closes (e->sessions still counts it).
	 * May be NULL. */
	void (*closed)(struct user_cache_entry *e, struct session *s, void *ctx);
	/* Free what e holds (not e, not e->user): the user's last session
	 * closed, or the cache stops.  May be NULL. */
	void (*clear)(struct user_cache_entry *e, void *ctx);
	void *ctx;
	/* private */
	struct host *host;
	struct user_cache_entry **buckets;
};

/* Follow h's sessions (hooks at priority 50), starting with those that
 * exist now (opened runs for each). */
void user_cache_start(struct user_cache *c, struct host *h);
/* Stop following them; every entry is cleared and freed. */
void user_cache_stop(struct user_cache *c);
/* The entry of user (NULL when user is NULL or has no session). */
void *user_cache_get(const struct user_cache *c, const char *user);

#endif
