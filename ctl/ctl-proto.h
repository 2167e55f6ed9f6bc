/*
 * The control socket's wire format, shared by parleyd and parleyctl.
 *
 * Request: one line; arguments separated by TAB; backslash, TAB and newline
 * inside an argument are written \\ \t \n.
 * Response: a status line, "OK" or "ERR <code> <message>" (code is the exit
 * code parleyctl returns), then body lines (a body line that starts with '.'
 * gets one more '.'), then a line with a single ".".
 * A connection may carry several requests, one after the other.
 */
#ifndef PARLEY_CTL_PROTO_H
#define PARLEY_CTL_PROTO_H

#include "lib/util.h"

/* Exit codes of parleyctl, also the codes of ERR lines. */
enum ctl_code {
	CTL_OK = 0,          /* done; for questions (check-password, user-exists): yes */
	CTL_FAILED = 1,      /* the command failed, or the answer is no */
	CTL_USAGE = 2,       /* usage or configuration error */
	CTL_UNREACHABLE = 3, /* parleyd is not running (the command needs it) */
	CTL_TEMPFAIL = 4,    /* a backend is unavailable now: try again later */
	CTL_REFUSED = 5,     /* not in this state (restore while parleyd runs) */
};

void ctl_encode_request(struct buf *out, int argc, char *const *argv);
/* Split one request line (without its newline) into a malloc'd argv. */
int ctl_decode_request(const char *line, size_t len, char ***argv_r, int *argc_r);
void ctl_free_argv(char **argv, int argc);
/* Append a response: status line, dot-stuffed body, terminator. */
void ctl_encode_response(struct buf *out, int code, const char *message, const char *body);

#endif
