/*
 * The pool of helper processes that the "external" and "pam" auth backends
 * share: programs speaking the port protocol (auth/auth-external.h) on
 * non-blocking pipes, one request in flight each, with a bounded queue,
 * deadlines, restarts and an optional cache of positive answers.
 *
 * Thread: the loop thread only.  Processes are started with fork + exec;
 * between the two the child calls only async-signal-safe functions.  Their
 * deaths arrive through ev_child watchers (libev reaps every child on the
 * default loop, which is the one parleyd and parleyctl run).
 *
 * Invariants:
 * - a process has at most one request in flight; requests wait in a FIFO
 *   bounded by queue_max, and a request that finds the queue full fails at
 *   once with AUTH_TEMPFAIL;
 * - every request has a deadline (timeout) from its submission: a queued
 *   request that reaches it answers AUTH_TEMPFAIL; a process that has not
 *   answered by then is killed (its whole process group) and replaced;
 * - a process that dies, closes its stdout or writes anything but one
 *   4-byte reply per request is killed and restarted after a wait that
 *   doubles from 0.1 s up to restart_max (reset by the next good answer):
 *   a broken program never makes a tight loop;
 * - the answer "temporary failure" (2), accepted only when the pool was
 *   made with tempfail_answer (the PAM helper's), is a good answer: the
 *   request answers AUTH_TEMPFAIL and the process stays; from any other
 *   program 2 is garbage;
 * - a process that has served max_requests answers (when set) is asked to
 *   leave (end of input, then SIGTERM) and replaced at once;
 * - a request whose process died before answering is sent once more to
 *   another process when it is a question (auth, isuser); changes
 *   (setpass, tryregister, removeuser) are never repeated: they answer
 *   AUTH_TEMPFAIL;
 * - a request cancelled while its process works is forgotten, and its
 *   answer is read and dropped;
 * - the stderr of every process is logged line by line with the method,
 *   host and pid, and drained when the process leaves; passwords never
 *   reach a log line from here;
 * - the cache (cache_ttl > 0) keeps positive answers only, keyed by an
 *   HMAC of the password under a random per-pool key, and forgets a user
 *   when its password is set or it is removed.
 */
#include "auth/procpool.h"
#include "auth/auth-external.h"
#include "lib/latency.h"
#include "lib/log.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/hmac.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- the start-up probe ----------------------------------------------------------- */

/* NULL when path names an executable regular file, else why not. */
static char *probe_executable(const char *path, const char *what)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return xasprintf("%s %s: %s", what, path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return xasprintf("%s %s is not a regular file", what, path);
	if (access(path, X_OK) < 0)
		return xasprintf("%s %s is not executable by this user: %s", what, path, strerror(errno));
	return NULL;
}

/* Look name up in PATH like env(1) does; NULL when not found. */
static char *path_lookup(const char *name)
{
	const char *path = getenv("PATH");
	if (path == NULL)
		path = "/usr/local/bin:/usr/bin:/bin";
	while (*path != '\0') {
		size_t n = strcspn(path, ":");
		char *cand = xasprintf("%.*s/%s", (int)n, path, name);
		if (access(cand, X_OK) == 0)
			return cand;
		free(cand);
		path += n;
		if (*path == ':')
			path++;
	}
	return NULL;
}

char *procpool_probe_program(const char *path)
{
	char *err = probe_executable(path, "program");
	if (err != NULL)
		return err;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL; /* executable but unreadable: exec will tell */
	char head[512];
	ssize_t n = read(fd, head, sizeof(head) - 1);
	close(fd);
	if (n < 0)
		n = 0;
	head[n] = '\0';
	if (n >= 4 && memcmp(head,
	                     "\x7f"
	                     "ELF",
	                     4) == 0)
		return NULL;
	if (n < 2 || head[0] != '#' || head[1] != '!')
		return xasprintf("program %s is neither a binary nor a script with a #! line: the kernel "
		                 "cannot run it",
		                 path);
	char *nl = memchr(head, '\n', (size_t)n);
	if (nl == NULL)
		return xasprintf("program %s: the #! line is longer than %zu bytes", path, sizeof(head) - 1);
	*nl = '\0';
	if (nl > head && nl[-1] == '\r')
		return xasprintf("program %s: the #! line ends with a carriage return (DOS line ends): "
		                 "convert the file with dos2unix",
		                 path);
	char *interp = head + 2;
	interp += strspn(interp, " \t");
	size_t ilen = strcspn(interp, " \t");
	char *rest = interp + ilen;
	rest += strspn(rest, " \t");
	char *ipath = xstrndup(interp, ilen);
	if (ipath[0] == '\0') {
		free(ipath);
		return xasprintf("program %s: the #! line names no interpreter", path);
	}
	err = probe_executable(ipath, "interpreter");
	if (err == NULL && strcmp(ipath, "/usr/bin/env") == 0 && *rest != '\0') {
		size_t alen = strcspn(rest, " \t");
		char *name = xstrndup(rest, alen);
		if (strcmp(name, "-S") != 0 && strchr(name, '=') == NULL) {
			char *found = path_lookup(name);
			if (found == NULL)
				err = xasprintf(
				        "program %s: its interpreter '%s' (#!/usr/bin/env %s) is not in "
				        "PATH",
				        path, name, name);
			free(found);
		}
		free(name);
	}
	if (err != NULL) {
		char *e = xasprintf("program %s: %s", path, err);
		free(err);
		err = e;
	}
	free(ipath);
	return err;
}

/* ---- pool types ----------------------------------------------------------------------- */

enum proc_state {
	PROC_WAITING, /* not running; a restart timer may be armed */
	PROC_IDLE,    /* running, no request */
	PROC_BUSY,    /* running, one request in flight */
	PROC_DYING,   /* killed or failed; waiting for its exit status */
};

struct extproc;

struct extjob {
	struct procpool *pool;
	struct auth_req *req; /* NULL once cancelled */
	enum auth_op op;
	char *user;       /* for the cache and logs */
	struct buf frame; /* the framed request (holds the password) */
	char *cache_key;  /* NULL: not cacheable */
	unsigned tries;
	ev_timer deadline;
	struct extproc *proc; /* the process working on it */
	struct extjob *next;  /* queue */
};

struct extproc {
	struct procpool *pool;
	unsigned index;
	enum proc_state state;
	pid_t pid;
	int in_fd, out_fd, err_fd, exec_fd;
	ev_io w_in, r_out, r_err, r_exec;
	ev_child child;
	ev_timer restart;
	ev_timer grace;  /* after end of stdout: how long to wait for the exit */
	struct buf wbuf; /* unwritten part of the request */
	unsigned char reply[8];
	size_t reply_len;
	struct buf errline; /* a partial stderr line */
	struct extjob *job;
	unsigned answered; /* answers since started */
	bool retire;       /* max_requests reached: close, restart at once */
	bool reaped;       /* its exit status arrived: pid is no longer ours */
	char *fail_reason;
};

struct cache_entry {
	char *key;
	double expires;
	struct cache_entry *next;
};

#define CACHE_BUCKETS 256
#define CACHE_MAX 10000

struct procpool {
	struct auth *a;
	char *method;
	char *program;
	char **argv;
	size_t argc;
	unsigned instances;
	double timeout, cache_ttl, restart_max;
	unsigned queue_max, max_requests;
	bool tempfail_answer;
	struct extproc *procs;
	struct extjob *qhead, *qtail;
	unsigned qlen;
	double backoff; /* next restart wait */
	unsigned long restarts, timeouts, answered, rejected_full;
	char *last_error;
	double last_error_at;
	unsigned char cache_secret[32];
	struct cache_entry *cache[CACHE_BUCKETS];
	unsigned ncache;
	bool freeing;
};

#define JOB(b) ((struct extjob *)(void *)(b))
#define BREQ(j) ((struct auth_breq *)(void *)(j))

static void proc_start(struct extproc *p);
static void proc_fail(struct extproc *p, const char *fmt, ...) ATTR_PRINTF(2, 3);
static void pool_dispatch(struct procpool *pool);

static void pool_set_error(struct procpool *pool, const char *msg)
{
	free(pool->last_error);
	pool->last_error = xstrdup(msg);
	pool->last_error_at = ev_now(pool->a->loop);
}

/* ---- cache ------------------------------------------------------------------------------- */

static char *cache_key_for(struct procpool *pool, const struct auth_req *req)
{
	if (pool->cache_ttl <= 0)
		return NULL;
	if (req->op == AUTH_OP_USER_EXISTS)
		return xasprintf("isuser\x1f%s", req->user);
	if (req->op != AUTH_OP_CHECK_PASSWORD)
		return NULL;
	unsigned char mac[32];
	unsigned maclen = 0;
	if (HMAC(EVP_sha256(), pool->cache_secret, sizeof(pool->cache_secret),
	         (const unsigned char *)req->password, strlen(req->password), mac, &maclen) == NULL)
		return NULL;
	char *hex = hex_encode(mac, maclen);
	char *k = xasprintf("auth\x1f%s\x1f%s", req->user, hex);
	free(hex);
	explicit_bzero(mac, sizeof(mac));
	return k;
}

static bool cache_hit(struct procpool *pool, const char *key)
{
	double now = ev_now(pool->a->loop);
	for (struct cache_entry **pp = &pool->cache[hash_str(key) % CACHE_BUCKETS]; *pp != NULL;) {
		struct cache_entry *e = *pp;
		if (e->expires <= now) {
			*pp = e->next;
			free(e->key);
			free(e);
			pool->ncache--;
			continue;
		}
		if (strcmp(e->key, key) == 0)
			return true;
		pp = &e->next;
	}
	return false;
}

static void cache_clear(struct procpool *pool)
{
	for (size_t i = 0; i < CACHE_BUCKETS; i++) {
		while (pool->cache[i] != NULL) {
			struct cache_entry *e = pool->cache[i];
			pool->cache[i] = e->next;
			free(e->key);
			free(e);
		}
	}
	pool->ncache = 0;
}

static void cache_put(struct procpool *pool, const char *key)
{
	if (cache_hit(pool, key))
		return;
	if (pool->ncache >= CACHE_MAX)
		cache_clear(pool);
	struct cache_entry *e = xcalloc(1, sizeof(*e));
	e->key = xstrdup(key);
	e->expires = ev_now(pool->a->loop) + pool->cache_ttl;
	size_t b = hash_str(key) % CACHE_BUCKETS;
	e->next = pool->cache[b];
	pool->cache[b] = e;
	pool->ncache++;
}

/* Forget every entry of user (its password changed or it is gone). */
static void cache_forget_user(struct procpool *pool, const char *user)
{
	char *k1 = xasprintf("isuser\x1f%s", user);
	char *k2 = xasprintf("auth\x1f%s\x1f", user);
	for (size_t i = 0; i < CACHE_BUCKETS; i++) {
		for (struct cache_entry **pp = &pool->cache[i]; *pp != NULL;) {
			struct cache_entry *e = *pp;
			if (strcmp(e->key, k1) == 0 || str_has_prefix(e->key, k2)) {
				*pp = e->next;
				free(e->key);
				free(e);
				pool->ncache--;
				continue;
			}
			pp = &e->next;
		}
	}
	free(k1);
	free(k2);
}

/* ---- jobs --------------------------------------------------------------------------------- */

static void job_free(struct extjob *job)
{
	ev_timer_stop(job->pool->a->loop, &job->deadline);
	if (job->frame.data != NULL)
		explicit_bzero(job->frame.data, job->frame.len);
	buf_free(&job->frame);
	free(job->cache_key);
	free(job->user);
	free(job);
}

static void queue_unlink(struct procpool *pool, struct extjob *job)
{
	struct extjob *prev = NULL;
	for (struct extjob *j = pool->qhead; j != NULL; prev = j, j = j->next) {
		if (j != job)
			continue;
		if (prev != NULL)
			prev->next = j->next;
		else
			pool->qhead = j->next;
		if (pool->qtail == j)
			pool->qtail = prev;
		pool->qlen--;
		j->next = NULL;
		return;
	}
}

static void queue_push(struct procpool *pool, struct extjob *job, bool front)
{
	job->next = NULL;
	if (pool->qhead == NULL) {
		pool->qhead = pool->qtail = job;
	} else if (front) {
		job->next = pool->qhead;
		pool->qhead = job;
	} else {
		pool->qtail->next = job;
		pool->qtail = job;
	}
	pool->qlen++;
}

/* Give the job's answer to its request (unless cancelled) and free it. */
static void job_answer(struct extjob *job, enum auth_result res, const char *detail)
{
	struct auth_req *req = job->req;
	struct procpool *pool = job->pool;
	if (req != NULL && res == AUTH_OK && job->cache_key != NULL)
		cache_put(pool, job->cache_key);
	if (req != NULL && (job->op == AUTH_OP_SET_PASSWORD || job->op == AUTH_OP_REMOVE_USER))
		cache_forget_user(pool, job->user);
	job_free(job);
	if (req != NULL) {
		if (detail != NULL)
			auth_backend_detail(req, "%s", detail);
		auth_backend_reply(req, res, NULL);
	}
}

/* What a yes/no means for each operation. */
static enum auth_result map_answer(enum auth_op op, bool yes, const char **detail_r)
{
	*detail_r = NULL;
	switch (op) {
	case AUTH_OP_CHECK_PASSWORD:
		if (!yes)
			*detail_r = "the program rejected the password (or does not know the user)";
		return yes ? AUTH_OK : AUTH_BAD_PASSWORD;
	case AUTH_OP_USER_EXISTS:
		if (!yes)
			*detail_r = "the program does not know the user";
		return yes ? AUTH_OK : AUTH_NO_USER;
	case AUTH_OP_SET_PASSWORD:
		if (!yes)
			*detail_r = "the program refused to set the password";
		return yes ? AUTH_OK : AUTH_ERROR;
	case AUTH_OP_CREATE_USER:
		if (!yes)
			*detail_r = "the program refused to create the account (taken, or registration not "
			            "supported)";
		return yes ? AUTH_OK : AUTH_EXISTS;
	case AUTH_OP_REMOVE_USER:
		if (!yes)
			*detail_r = "the program refused to remove the account";
		return yes ? AUTH_OK : AUTH_ERROR;
	case AUTH_OP_GET_SCRAM: break;
	}
	return AUTH_ERROR;
}

static void deadline_event(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct extjob *job = w->data;
	struct procpool *pool = job->pool;
	pool->timeouts++;
	if (job->proc == NULL) {
		queue_unlink(pool, job);
		char *d = xasprintf("timeout: no %s process free within %.1f s", pool->method, pool->timeout);
		log_warning("host %s: auth %s: request for %s waited %.1f s without a free process "
		            "(temporary failure)",
		            pool->a->host, pool->method, job->user, pool->timeout);
		pool_set_error(pool, d);
		job_answer(job, AUTH_TEMPFAIL, d);
		free(d);
		return;
	}
	struct extproc *p = job->proc;
	proc_fail(p, "no answer within %.1f s (timeout); killed", pool->timeout);
}

static void deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	latency_begin(LATENCY_AUTH, "helper");
	deadline_event(loop, w, revents);
	latency_end();
}

/* ---- processes ----------------------------------------------------------------------------- */

static void close_fd(struct ev_loop *loop, ev_io *w, int *fd)
{
	ev_io_stop(loop, w);
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Log complete stderr lines (and, at_eof, the rest). */
static void err_flush_lines(struct extproc *p, bool at_eof)
{
	struct buf *b = &p->errline;
	for (;;) {
		char *nl = b->data != NULL ? memchr(b->data, '\n', b->len) : NULL;
		size_t n;
		if (nl != NULL)
			n = (size_t)(nl - b->data);
		else if (b->len >= 1024 || (at_eof && b->len > 0))
			n = b->len < 1024 ? b->len : 1024;
		else
			return;
		char line[1025];
		size_t k = 0;
		for (size_t i = 0; i < n && k < sizeof(line) - 1; i++) {
			unsigned char c = (unsigned char)b->data[i];
			line[k++] = (c < 0x20 && c != '\t') || c == 0x7f ? '?' : (char)c;
		}
		if (k > 0 && line[k - 1] == '\r')
			k--;
		line[k] = '\0';
		log_warning("host %s: auth %s [pid %ld] stderr: %s", p->pool->a->host, p->pool->method,
		            (long)p->pid, line);
		buf_consume(b, nl != NULL ? n + 1 : n);
	}
}

/* Read what the process still has on stderr (it is gone or leaving) and
 * log all of it. */
static void err_drain(struct extproc *p)
{
	char buf[4096];
	ssize_t n;
	while ((n = read(p->err_fd, buf, sizeof(buf))) > 0)
		buf_append(&p->errline, buf, (size_t)n);
	err_flush_lines(p, true);
}

static void err_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct extproc *p = w->data;
	char buf[4096];
	ssize_t n = read(p->err_fd, buf, sizeof(buf));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		err_flush_lines(p, true);
		close_fd(loop, &p->r_err, &p->err_fd);
		return;
	}
	buf_append(&p->errline, buf, (size_t)n);
	err_flush_lines(p, false);
}

static void exec_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct extproc *p = w->data;
	int e = 0;
	ssize_t n = read(p->exec_fd, &e, sizeof(e));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	close_fd(loop, &p->r_exec, &p->exec_fd);
	if (n == (ssize_t)sizeof(e))
		proc_fail(p, "cannot run %s: %s", p->pool->program, strerror(e));
}

/* Free the process's pipes and watchers (it is gone or being killed). */
static void proc_close(struct extproc *p)
{
	struct ev_loop *loop = p->pool->a->loop;
	close_fd(loop, &p->w_in, &p->in_fd);
	close_fd(loop, &p->r_out, &p->out_fd);
	close_fd(loop, &p->r_exec, &p->exec_fd);
	ev_timer_stop(loop, &p->grace);
	if (p->wbuf.data != NULL)
		explicit_bzero(p->wbuf.data, p->wbuf.len);
	buf_free(&p->wbuf);
	p->reply_len = 0;
}

static void proc_kill(struct extproc *p, int sig)
{
	if (p->pid > 0 && !p->reaped) {
		kill(-p->pid, sig); /* its process group: children of a script too */
		kill(p->pid, sig);
	}
}

/* The process failed: kill it, answer or requeue its request; the restart
 * follows its exit status. */
static void proc_fail(struct extproc *p, const char *fmt, ...)
{
	struct procpool *pool = p->pool;
	if (p->state == PROC_DYING || p->state == PROC_WAITING)
		return;
	va_list ap;
	va_start(ap, fmt);
	char *why = xvasprintf(fmt, ap);
	va_end(ap);
	log_warning("host %s: auth %s: process %u (pid %ld): %s", pool->a->host, pool->method, p->index,
	            (long)p->pid, why);
	pool_set_error(pool, why);
	free(p->fail_reason);
	p->fail_reason = why;
	p->state = PROC_DYING;
	proc_close(p);
	proc_kill(p, SIGKILL);
	struct extjob *job = p->job;
	p->job = NULL;
	if (job != NULL) {
		job->proc = NULL;
		bool question = job->op == AUTH_OP_CHECK_PASSWORD || job->op == AUTH_OP_USER_EXISTS;
		bool timed_out = !ev_is_active(&job->deadline);
		if (job->req == NULL) {
			job_free(job);
		} else if (question && !timed_out && job->tries < 2 && !pool->freeing) {
			queue_push(pool, job, true); /* asked again of another process */
		} else {
			char *d = xasprintf("%s process failed: %s", pool->method, why);
			job_answer(job, AUTH_TEMPFAIL, d);
			free(d);
		}
	}
	pool_dispatch(pool);
}

static void grace_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	proc_fail(w->data, "closed its stdout");
}

static void restart_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct extproc *p = w->data;
	proc_start(p);
	pool_dispatch(p->pool);
}

static void child_cb(struct ev_loop *loop, ev_child *w, int revents)
{
	struct extproc *p = w->data;
	struct procpool *pool = p->pool;
	ev_child_stop(loop, w);
	int st = w->rstatus;
	bool retired = p->retire;
	p->reaped = true;
	if (p->state != PROC_DYING && p->exec_fd >= 0) {
		int e = 0;
		if (read(p->exec_fd, &e, sizeof(e)) == (ssize_t)sizeof(e))
			proc_fail(p, "cannot run %s: %s", pool->program, strerror(e));
	}
	if (p->state != PROC_DYING) {
		if (WIFEXITED(st))
			proc_fail(p, "exited with status %d", WEXITSTATUS(st));
		else if (WIFSIGNALED(st))
			proc_fail(p, "killed by signal %d", WTERMSIG(st));
		else
			proc_fail(p, "ended");
	} else if (WIFEXITED(st) && WEXITSTATUS(st) == 127 && p->fail_reason != NULL) {
		log_debug("host %s: auth %s: process %u exited with status 127", pool->a->host, pool->method,
		          p->index);
	}
	/* Read what it wrote to stderr before it died, then let go. */
	if (p->err_fd >= 0) {
		err_drain(p);
		close_fd(loop, &p->r_err, &p->err_fd);
	}
	p->pid = 0;
	p->state = PROC_WAITING;
	if (pool->freeing)
		return;
	double wait;
	if (retired) {
		wait = 0;
	} else {
		wait = pool->backoff > 0 ? pool->backoff : 0.1;
		pool->backoff = wait * 2 > pool->restart_max ? pool->restart_max : wait * 2;
	}
	p->retire = false;
	pool->restarts++;
	log_info("host %s: auth %s: restarting process %u in %.1f s", pool->a->host, pool->method, p->index,
	         wait);
	ev_timer_set(&p->restart, wait, 0);
	ev_timer_start(loop, &p->restart);
}

static void write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct extproc *p = w->data;
	while (p->wbuf.len > 0) {
		ssize_t n = write(p->in_fd, p->wbuf.data, p->wbuf.len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			ev_io_start(loop, &p->w_in);
			return;
		}
		if (n < 0) {
			proc_fail(p, "cannot write to its stdin: %s", strerror(errno));
			return;
		}
		explicit_bzero(p->wbuf.data, (size_t)n);
		buf_consume(&p->wbuf, (size_t)n);
	}
	ev_io_stop(loop, &p->w_in);
}

static void read_event(struct ev_loop *loop, ev_io *w, int revents)
{
	struct extproc *p = w->data;
	struct procpool *pool = p->pool;
	unsigned char buf[64];
	ssize_t n = read(p->out_fd, buf, sizeof(buf));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n < 0) {
		proc_fail(p, "cannot read its stdout: %s", strerror(errno));
		return;
	}
	if (n == 0) {
		/* Usually the process is exiting: its status says more than
		 * this, so give it a moment to arrive. */
		close_fd(loop, &p->r_out, &p->out_fd);
		ev_timer_set(&p->grace, 1.0, 0);
		ev_timer_start(loop, &p->grace);
		return;
	}
	if (p->job == NULL) {
		proc_fail(p, "wrote %zd bytes while no request was in flight (garbage)", n);
		return;
	}
	if (p->reply_len + (size_t)n > sizeof(p->reply)) {
		proc_fail(p, "wrote more than one reply (garbage)");
		return;
	}
	memcpy(p->reply + p->reply_len, buf, (size_t)n);
	p->reply_len += (size_t)n;
	enum extproto_answer answer = EXTPROTO_NO;
	int r = extproto_decode_reply(p->reply, p->reply_len, pool->tempfail_answer, &answer);
	if (r < 0) {
		char *hex = hex_encode(p->reply, p->reply_len);
		proc_fail(p, "wrote an invalid reply (bytes %s; expected 0002 then %s)", hex,
		          pool->tempfail_answer ? "0000, 0001 or 0002" : "0000 or 0001");
		free(hex);
		return;
	}
	if (r == 0)
		return;
	struct extjob *job = p->job;
	p->job = NULL;
	p->reply_len = 0;
	p->state = PROC_IDLE;
	p->answered++;
	pool->answered++;
	pool->backoff = 0;
	job->proc = NULL;
	if (answer == EXTPROTO_TEMPFAIL) {
		char *d = xasprintf("the %s helper could not find out (its stderr line in the log says why)",
		                    pool->method);
		pool_set_error(pool, d);
		job_answer(job, AUTH_TEMPFAIL, d);
		free(d);
	} else {
		const char *detail;
		enum auth_result res = map_answer(job->op, answer == EXTPROTO_YES, &detail);
		job_answer(job, res, detail);
	}
	if (pool->max_requests > 0 && p->answered >= pool->max_requests && p->state == PROC_IDLE) {
		/* Retire it: end of input makes a well-behaved helper exit. */
		log_info("host %s: auth %s: process %u (pid %ld) served %u requests; replacing it",
		         pool->a->host, pool->method, p->index, (long)p->pid, p->answered);
		p->retire = true;
		p->state = PROC_DYING;
		proc_close(p);
		proc_kill(p, SIGTERM);
	}
	pool_dispatch(pool);
}

static void read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	latency_begin(LATENCY_AUTH, "helper");
	read_event(loop, w, revents);
	latency_end();
}

static void child_exec(struct procpool *pool, int in_r, int out_w, int err_w, int exec_w)
{
	/* Only async-signal-safe calls from here to exec. */
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	struct sigaction dfl;
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	for (int s = 1; s < NSIG; s++)
		if (s != SIGKILL && s != SIGSTOP)
			sigaction(s, &dfl, NULL);
	setpgid(0, 0);
	if (dup2(in_r, 0) < 0 || dup2(out_w, 1) < 0 || dup2(err_w, 2) < 0)
		goto fail;
	if (exec_w != 3) {
		if (dup2(exec_w, 3) < 0)
			goto fail;
		exec_w = 3;
	}
	fcntl(3, F_SETFD, FD_CLOEXEC);
	close_range(4, ~0u, 0);
	execv(pool->program, pool->argv);
fail:;
	int e = errno;
	ssize_t w = write(exec_w, &e, sizeof(e));
	(void)w;
	_exit(127);
}

static void proc_start(struct extproc *p)
{
	struct procpool *pool = p->pool;
	struct ev_loop *loop = pool->a->loop;
	int in[2], out[2], err[2], ex[2];
	int got = 0;
	if (pipe2(in, O_CLOEXEC) == 0) {
		got = 1;
		if (pipe2(out, O_CLOEXEC) == 0) {
			got = 2;
			if (pipe2(err, O_CLOEXEC) == 0) {
				got = 3;
				if (pipe2(ex, O_CLOEXEC) == 0)
					got = 4;
			}
		}
	}
	pid_t pid = got == 4 ? fork() : -1;
	if (pid < 0) {
		int e = errno;
		if (got > 0) {
			close(in[0]);
			close(in[1]);
		}
		if (got > 1) {
			close(out[0]);
			close(out[1]);
		}
		if (got > 2) {
			close(err[0]);
			close(err[1]);
		}
		if (got > 3) {
			close(ex[0]);
			close(ex[1]);
		}
		char *why = xasprintf("cannot start a process: %s", strerror(e));
		log_error("host %s: auth %s: %s", pool->a->host, pool->method, why);
		pool_set_error(pool, why);
		free(why);
		double wait = pool->backoff > 0 ? pool->backoff : 0.1;
		pool->backoff = wait * 2 > pool->restart_max ? pool->restart_max : wait * 2;
		p->state = PROC_WAITING;
		ev_timer_set(&p->restart, wait, 0);
		ev_timer_start(loop, &p->restart);
		return;
	}
	if (pid == 0)
		child_exec(pool, in[0], out[1], err[1], ex[1]);
	close(in[0]);
	close(out[1]);
	close(err[1]);
	close(ex[1]);
	p->pid = pid;
	p->in_fd = in[1];
	p->out_fd = out[0];
	p->err_fd = err[0];
	p->exec_fd = ex[0];
	fcntl(p->in_fd, F_SETFL, O_NONBLOCK);
	fcntl(p->out_fd, F_SETFL, O_NONBLOCK);
	fcntl(p->err_fd, F_SETFL, O_NONBLOCK);
	fcntl(p->exec_fd, F_SETFL, O_NONBLOCK);
	ev_io_init(&p->w_in, write_cb, p->in_fd, EV_WRITE);
	ev_io_init(&p->r_out, read_cb, p->out_fd, EV_READ);
	ev_io_init(&p->r_err, err_cb, p->err_fd, EV_READ);
	ev_io_init(&p->r_exec, exec_cb, p->exec_fd, EV_READ);
	p->w_in.data = p->r_out.data = p->r_err.data = p->r_exec.data = p;
	ev_io_start(loop, &p->r_out);
	ev_io_start(loop, &p->r_err);
	ev_io_start(loop, &p->r_exec);
	ev_child_set(&p->child, pid, 0);
	ev_child_start(loop, &p->child);
	p->state = PROC_IDLE;
	p->answered = 0;
	p->retire = false;
	p->reaped = false;
	p->reply_len = 0;
	xfree(&p->fail_reason);
	log_debug("host %s: auth %s: process %u started (pid %ld)", pool->a->host, pool->method, p->index,
	          (long)pid);
}

static void proc_send(struct extproc *p, struct extjob *job)
{
	p->job = job;
	job->proc = p;
	job->tries++;
	p->state = PROC_BUSY;
	p->reply_len = 0;
	buf_append(&p->wbuf, job->frame.data, job->frame.len);
	write_cb(p->pool->a->loop, &p->w_in, 0);
}

static void pool_dispatch(struct procpool *pool)
{
	for (unsigned i = 0; i < pool->instances && pool->qhead != NULL; i++) {
		struct extproc *p = &pool->procs[i];
		if (p->state != PROC_IDLE)
			continue;
		struct extjob *job = pool->qhead;
		queue_unlink(pool, job);
		proc_send(p, job);
	}
}

/* ---- the pool's interface --------------------------------------------------------------- */

int procpool_new(struct auth *a, const struct procpool_config *cfg, struct procpool **pool_r, char **error_r)
{
	char *err = procpool_probe_program(cfg->program);
	if (err != NULL) {
		*error_r = err;
		return -1;
	}
	struct procpool *pool = xcalloc(1, sizeof(*pool));
	pool->a = a;
	pool->method = xstrdup(cfg->method);
	pool->program = xstrdup(cfg->program);
	pool->argc = 1 + (cfg->args != NULL ? cfg->args->count : 0);
	pool->argv = xcalloc(pool->argc + 1, sizeof(*pool->argv));
	pool->argv[0] = xstrdup(cfg->program);
	for (size_t i = 1; i < pool->argc; i++)
		pool->argv[i] = xstrdup(cfg->args->items[i - 1]);
	pool->instances = cfg->instances > 0 ? cfg->instances : 1;
	pool->timeout = cfg->timeout;
	pool->queue_max = cfg->queue_max;
	pool->cache_ttl = cfg->cache_ttl;
	pool->restart_max = cfg->restart_max > 0.1 ? cfg->restart_max : 0.1;
	pool->max_requests = cfg->max_requests;
	pool->tempfail_answer = cfg->tempfail_answer;
	random_bytes(pool->cache_secret, sizeof(pool->cache_secret));
	pool->procs = xcalloc(pool->instances, sizeof(*pool->procs));
	for (unsigned i = 0; i < pool->instances; i++) {
		struct extproc *p = &pool->procs[i];
		p->pool = pool;
		p->index = i;
		p->in_fd = p->out_fd = p->err_fd = p->exec_fd = -1;
		p->state = PROC_WAITING;
		ev_timer_init(&p->restart, restart_cb, 0, 0);
		p->restart.data = p;
		ev_timer_init(&p->grace, grace_cb, 0, 0);
		p->grace.data = p;
		ev_child_init(&p->child, child_cb, 0, 0);
		p->child.data = p;
		proc_start(p);
	}
	log_info("host %s: auth %s: %u process%s of %s", a->host, pool->method, pool->instances,
	         pool->instances == 1 ? "" : "es", pool->program);
	*pool_r = pool;
	return 0;
}

void procpool_free(struct procpool **pp)
{
	struct procpool *pool = *pp;
	if (pool == NULL)
		return;
	*pp = NULL;
	pool->freeing = true;
	struct ev_loop *loop = pool->a->loop;
	/* auth_free answered every request: jobs left are cancelled ones. */
	while (pool->qhead != NULL) {
		struct extjob *job = pool->qhead;
		queue_unlink(pool, job);
		job_free(job);
	}
	for (unsigned i = 0; i < pool->instances; i++) {
		struct extproc *p = &pool->procs[i];
		if (p->job != NULL) {
			struct extjob *job = p->job;
			p->job = NULL;
			if (job->req != NULL)
				job_answer(job, AUTH_TEMPFAIL, "shutting down");
			else
				job_free(job);
		}
		proc_close(p);
		if (p->err_fd >= 0)
			err_drain(p);
		close_fd(loop, &p->r_err, &p->err_fd);
		buf_free(&p->errline);
		/* End of input asks it to leave; TERM makes sure. */
		proc_kill(p, SIGTERM);
		ev_child_stop(loop, &p->child);
		ev_timer_stop(loop, &p->restart);
		free(p->fail_reason);
	}
	cache_clear(pool);
	explicit_bzero(pool->cache_secret, sizeof(pool->cache_secret));
	for (size_t i = 0; i < pool->argc; i++)
		free(pool->argv[i]);
	free(pool->argv);
	free(pool->procs);
	free(pool->program);
	free(pool->method);
	free(pool->last_error);
	free(pool);
}

struct auth_breq *procpool_submit(struct procpool *pool, struct auth_req *req)
{
	const char *opname = extproto_op_name(req->op, false);
	if (opname == NULL) {
		auth_backend_reply_later(req, AUTH_NOT_SUPPORTED);
		return NULL;
	}
	char *key = cache_key_for(pool, req);
	if (key != NULL && cache_hit(pool, key)) {
		free(key);
		auth_backend_detail(req, "cached answer");
		req->cached_answer = true; /* no new kept SCRAM keys from it */
		auth_backend_reply_later(req, AUTH_OK);
		return NULL;
	}
	bool with_pw = req->op == AUTH_OP_CHECK_PASSWORD || req->op == AUTH_OP_SET_PASSWORD ||
	               req->op == AUTH_OP_CREATE_USER;
	struct extjob *job = xcalloc(1, sizeof(*job));
	job->pool = pool;
	job->req = req;
	job->op = req->op;
	job->user = xstrdup(req->user);
	job->cache_key = key;
	if (extproto_encode(&job->frame, opname, req->user, pool->a->host, with_pw ? req->password : NULL) <
	    0) {
		job_free(job);
		auth_backend_detail(req, "the request does not fit the protocol (longer than 65535 bytes)");
		auth_backend_reply_later(req,
		                         req->op == AUTH_OP_CHECK_PASSWORD ? AUTH_BAD_PASSWORD : AUTH_ERROR);
		return NULL;
	}
	if (pool->qlen >= pool->queue_max) {
		bool idle = false;
		for (unsigned i = 0; i < pool->instances; i++)
			idle = idle || pool->procs[i].state == PROC_IDLE;
		if (!idle) {
			pool->rejected_full++;
			log_warning("host %s: auth %s: %u requests already wait for a process (queue_max); "
			            "temporary failure for %s",
			            pool->a->host, pool->method, pool->qlen, req->user);
			job_free(job);
			auth_backend_detail(req, "busy: %u requests already waiting (queue_max)",
			                    pool->queue_max);
			auth_backend_reply_later(req, AUTH_TEMPFAIL);
			return NULL;
		}
	}
	ev_timer_init(&job->deadline, deadline_cb, pool->timeout, 0);
	job->deadline.data = job;
	ev_timer_start(pool->a->loop, &job->deadline);
	queue_push(pool, job, false);
	/* Dispatch from the loop, not inside this call: an immediate write
	 * failure must not answer the request before the vfunc returns. */
	for (unsigned i = 0; i < pool->instances; i++) {
		struct extproc *p = &pool->procs[i];
		if (p->state == PROC_IDLE && pool->qhead == job) {
			queue_unlink(pool, job);
			p->job = job;
			job->proc = p;
			job->tries++;
			p->state = PROC_BUSY;
			p->reply_len = 0;
			buf_append(&p->wbuf, job->frame.data, job->frame.len);
			ev_io_start(pool->a->loop, &p->w_in);
			break;
		}
	}
	return BREQ(job);
}

void procpool_cancel(struct auth_breq *b)
{
	struct extjob *job = JOB(b);
	if (job->proc == NULL) {
		queue_unlink(job->pool, job);
		job_free(job);
		return;
	}
	job->req = NULL; /* its answer is read and dropped */
}

void procpool_status(struct procpool *pool, struct buf *out)
{
	unsigned up = 0, busy = 0;
	for (unsigned i = 0; i < pool->instances; i++) {
		enum proc_state s = pool->procs[i].state;
		up += s == PROC_IDLE || s == PROC_BUSY;
		busy += s == PROC_BUSY;
	}
	buf_printf(out,
	           "%s, %u/%u processes up, %u busy, %u queued, %lu answered, %lu restarts, "
	           "%lu timeouts, %lu refused (queue full)",
	           pool->program, up, pool->instances, busy, pool->qlen, pool->answered, pool->restarts,
	           pool->timeouts, pool->rejected_full);
	if (pool->cache_ttl > 0)
		buf_printf(out, ", %u cached", pool->ncache);
	if (pool->last_error != NULL)
		buf_printf(out, ", last error %.0f s ago: %s", ev_now(pool->a->loop) - pool->last_error_at,
		           pool->last_error);
	else
		buf_append_str(out, ", no errors");
}
