/*
 * A harness for unit tests of module logic without a database or a
 * socket: one virtual host (HARNESS_HOST) on the memory store with the
 * built-in modules started as parleyd starts them, fake client sessions
 * registered with the session manager that keep what is delivered to
 * them, a way to send a stanza from a session as a client stream does,
 * and loop runners that wait for the store's answers.  Loop thread only
 * (the test's own thread; the memory store has no workers).
 */
#ifndef PARLEY_TEST_MODULE_HARNESS_H
#define PARLEY_TEST_MODULE_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/util.h"
#include "server/sm.h"
#include "storage/storage.h"

#define HARNESS_HOST "example.com"

/* A client session as c2s would keep it, minus the stream. */
struct fake_session {
	struct session s;      /* registered with the session manager while open */
	struct xml_node **got; /* stanzas delivered, oldest first (references) */
	size_t ngot, cap;
	uint64_t queued;  /* what out_queued reports: one per stanza */
	uint64_t written; /* what out_written reports while hold_writes */
	bool hold_writes; /* false: everything queued counts as written */
	bool kicked;      /* the session manager kicked it */
	enum stream_error kick_error;
	struct barrier *barrier;   /* current while it sends, as a c2s stream's;
	                              * unlike c2s, output is not held behind it
	                              * (a test reads barrier_busy instead) */
	struct fake_session *next; /* private */
};

/* Start the host.  modules_yaml is put under the top-level "modules:" key
 * (each line indented by two spaces, e.g. "  offline: { max_per_user: 3 }\n");
 * NULL or "": the defaults (every default-enabled module). */
void harness_start(const char *modules_yaml);
/* Close every session still open, stop the host, close the store, free
 * everything. */
void harness_stop(void);
struct host *harness_host(void);

/* Run the loop until nothing is left to do (every storage answer
 * delivered, no timer running).  Fails the test after 10 s. */
void harness_run(void);
/* Run the loop until done(ctx) is true (checked after each iteration);
 * fails the test after 10 s. */
void harness_run_until(bool (*done)(void *ctx), void *ctx);

/* Create user's account in the store (and wait for it). */
void harness_account(const char *user);

/* Bind a session user@HARNESS_HOST/resource (not yet available, not
 * interested in the roster), as c2s does after resource binding. */
struct fake_session *harness_login(const char *user, const char *resource);
/* Close it as c2s does when its stream ends, and free it; NULLs *fs. */
void harness_logout(struct fake_session **fs);

/* Send a stanza from fs as the client would write it (printf format),
 * handled as c2s handles a bound session's stanza: 'from' stamped,
 * presence without 'to' updates the session and is broadcast through
 * user_send_packet, a stanza without 'to' goes to the user's own bare
 * JID, and the rest is routed unless a user_send_packet hook took it.
 * The session's barrier is current meanwhile.  Does not run the loop. */
void harness_send(struct fake_session *fs, const char *fmt, ...) ATTR_PRINTF(2, 3);
/* Send available presence with this priority, then run the loop. */
void harness_available(struct fake_session *fs, int priority);
/* Get the roster (making the session an interested resource), run the
 * loop, and forget what was delivered meanwhile. */
void harness_roster_get(struct fake_session *fs);

/* Delivered stanzas: how many, the i-th (borrowed), forget them all. */
size_t fake_count(const struct fake_session *fs);
struct xml_node *fake_get(const struct fake_session *fs, size_t i);
void fake_clear(struct fake_session *fs);
/* The first delivered stanza named name ("iq", "message", "presence")
 * whose attribute attr (NULL: any) is value, or NULL.  Borrowed. */
struct xml_node *fake_find(const struct fake_session *fs, const char *name, const char *attr,
                           const char *value);
/* How many delivered stanzas are named name. */
size_t fake_count_named(const struct fake_session *fs, const char *name);

/* The defined condition of an error stanza (its <error/> child's element
 * in urn:ietf:params:xml:ns:xmpp-stanzas, "bad-request"), or NULL when
 * stanza is not an error; the error's type in *type_r when not NULL. */
const char *harness_error_condition(const struct xml_node *stanza, const char **type_r);

/* ---- the store, read and written directly ------------------------------------- */
/* Each waits for the store's answer only (harness_run_until), so they can
 * be used while a module keeps a timer running. */

/* How many offline messages user has stored. */
uint64_t harness_offline_count(const char *user);
/* user's roster item for jid copied into *it (free with roster_item_clear);
 * false when there is none. */
bool harness_roster_item(const char *user, const char *jid, struct roster_item *it);
/* Store a privacy list for user (and make it the default when is_default). */
void harness_privacy_list(const char *user, const char *name, const struct privacy_item *items, size_t n,
                          bool is_default);
/* Add jid to user's block list. */
void harness_block(const char *user, const char *jid);

#endif
