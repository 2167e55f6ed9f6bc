/*
 * The pool of helper processes that the "external" and "pam" auth backends
 * share (procpool.c says what it guarantees).  A backend's vfuncs hand
 * their requests to procpool_submit and its cancel is procpool_cancel.
 * Only those backends and the unit tests include this.  Loop thread.
 */
#ifndef PARLEY_AUTH_PROCPOOL_H
#define PARLEY_AUTH_PROCPOOL_H

#include "auth/auth-private.h"

struct procpool;

struct procpool_config {
	const char *method;  /* "external" or "pam", for logs */
	const char *program; /* absolute path */
	const struct strlist *args;
	unsigned instances;
	double timeout;
	unsigned queue_max;
	double cache_ttl; /* 0: no cache */
	double restart_max;
	unsigned max_requests; /* retire a process after this many answers (0: never) */
	bool tempfail_answer;  /* the program may answer 2, "temporary failure" (the PAM helper) */
};

/* Check the program can be run (exists, executable, its #! interpreter
 * exists) and start the processes.  -1 with a malloc'd message. */
int procpool_new(struct auth *a, const struct procpool_config *cfg, struct procpool **pool_r, char **error_r);
void procpool_free(struct procpool **pool);
/* Run req's operation (a backend vfunc body).  Returns the handle, or NULL
 * after auth_backend_reply_later (cache hit, full queue, bad request). */
struct auth_breq *procpool_submit(struct procpool *pool, struct auth_req *req);
void procpool_cancel(struct auth_breq *b);
void procpool_status(struct procpool *pool, struct buf *out);

/* The start-up check alone (for the PAM helper and tests): NULL when the
 * program looks runnable, else a malloc'd explanation. */
char *procpool_probe_program(const char *path);

#endif
