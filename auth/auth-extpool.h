/*
 * A pool of helper processes speaking the port protocol (the "external"
 * method's programs and the PAM helper), and the protocol's framing.
 * Only auth-external.c, auth-pam.c and the unit tests include this.
 * Loop thread.
 *
 * Protocol (one request in flight per process):
 *   request  = 2-byte big-endian length N, then N bytes:
 *              "auth:User:Server:Password" | "isuser:User:Server" |
 *              "setpass:User:Server:Password" | "tryregister:User:Server:Password" |
 *              "removeuser:User:Server" | "removeuser3:User:Server:Password"
 *   reply    = 2-byte length (always 2), then a 2-byte result: 1 yes, 0 no.
 * User and Server never contain ':' (nodeprep and nameprep forbid it); the
 * password is everything after the last separator the operation needs, so
 * it may contain ':'.
 */
#ifndef PARLEY_AUTH_EXTPOOL_H
#define PARLEY_AUTH_EXTPOOL_H

#include "auth/auth-private.h"

/* ---- framing (pure functions, unit-tested) ---- */

#define EXTPROTO_MAX_PAYLOAD 65535u

/* The protocol's operation word for an auth operation, or NULL when the
 * protocol has none (get_scram).  with_password selects removeuser3. */
const char *extproto_op_name(enum auth_op op, bool with_password);
/* Append one framed request to out.  password may be NULL for operations
 * without one.  -1 (nothing appended) when a field contains ':' where it
 * may not, or the payload exceeds EXTPROTO_MAX_PAYLOAD. */
int extproto_encode(struct buf *out, const char *opname, const char *user, const char *server,
                    const char *password);
/* Decode a reply from the bytes read so far: 0 when more bytes are needed,
 * 1 with *yes_r set when data holds exactly one valid reply, -1 when it is
 * garbage (wrong length field, a result other than 0 or 1, or extra bytes). */
int extproto_decode_reply(const unsigned char *data, size_t len, bool *yes_r);
/* Split a request payload (what a program reads) into its fields; returns
 * the number of fields (2..4) or -1.  The password field takes the rest of
 * the payload.  fields_r[i] point into a copy owned by *copy_r. */
int extproto_split(const char *payload, size_t len, char **copy_r, const char *fields_r[4]);

/* ---- the pool ---- */

struct extpool;

struct extpool_config {
	const char *method;          /* "external" or "pam", for logs */
	const char *program;         /* absolute path */
	const struct strlist *args;
	unsigned instances;
	double timeout;
	unsigned queue_max;
	double cache_ttl;            /* 0: no cache */
	double restart_max;
	unsigned max_requests;       /* retire a process after this many answers (0: never) */
};

/* Check the program can be run (exists, executable, its #! interpreter
 * exists) and start the processes.  -1 with a malloc'd message. */
int extpool_new(struct auth *a, const struct extpool_config *cfg, struct extpool **pool_r,
                char **error_r);
void extpool_free(struct extpool **pool);
/* Run req's operation (a backend vfunc body).  Returns the handle, or NULL
 * after auth_backend_reply_later (cache hit, full queue, bad request). */
struct auth_breq *extpool_submit(struct extpool *pool, struct auth_req *req);
void extpool_cancel(struct auth_breq *b);
void extpool_status(struct extpool *pool, struct buf *out);

/* The start-up check alone (for the PAM helper and tests): NULL when the
 * program looks runnable, else a malloc'd explanation. */
char *extpool_probe_program(const char *path);

#endif
