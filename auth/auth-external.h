/*
 * The port protocol of the "external" auth method, which the PAM helper
 * speaks too: its framing, as pure functions.  Only the auth backends, the
 * process pool (procpool.c) and the unit tests include this.
 *
 * Protocol (one request in flight per process):
 *   request  = 2-byte big-endian length N, then N bytes:
 *              "auth:User:Server:Password" | "isuser:User:Server" |
 *              "setpass:User:Server:Password" | "tryregister:User:Server:Password" |
 *              "removeuser:User:Server" | "removeuser3:User:Server:Password"
 *   reply    = 2-byte length (always 2), then a 2-byte result: 1 yes, 0 no;
 *              parley-pam-helper may also answer 2, "temporary failure"
 *              (PAM could not find out), which a pool accepts only when
 *              told to (procpool_config.tempfail_answer): for an
 *              operator's program 2 stays garbage, as in ejabberd's
 *              protocol.
 * User and Server never contain ':' (nodeprep and nameprep forbid it); the
 * password is everything after the last separator the operation needs, so
 * it may contain ':'.
 */
#ifndef PARLEY_AUTH_EXTERNAL_H
#define PARLEY_AUTH_EXTERNAL_H

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
/* A reply's result. */
enum extproto_answer {
	EXTPROTO_NO = 0,
	EXTPROTO_YES = 1,
	EXTPROTO_TEMPFAIL = 2, /* the PAM helper only */
};

/* Decode a reply from the bytes read so far: 0 when more bytes are needed,
 * 1 with *answer_r set when data holds exactly one valid reply, -1 when it
 * is garbage (wrong length field, a result other than 0 or 1 -- or 2 when
 * tempfail_ok --, or extra bytes). */
int extproto_decode_reply(const unsigned char *data, size_t len, bool tempfail_ok,
                          enum extproto_answer *answer_r);
/* Split a request payload (what a program reads) into its fields; returns
 * the number of fields (2..4) or -1.  The password field takes the rest of
 * the payload.  fields_r[i] point into a copy owned by *copy_r. */
int extproto_split(const char *payload, size_t len, char **copy_r, const char *fields_r[4]);

#endif
