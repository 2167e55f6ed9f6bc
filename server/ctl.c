/*
 * Administrative commands and the control socket.  Loop thread.
 *
 * The same command code serves parleyd (requests on the control socket) and
 * parleyctl's offline mode (which starts the hosts without listeners and
 * runs the command in-process), so register/unregister/passwd behave the
 * same either way.  A call's done callback always runs from the loop, never
 * inside ctl_run.  A control connection handles one request at a time; its
 * input waits while a command is running.
 */
#include "ctl.h"
#include "server.h"
#include "host.h"
#include "sm.h"
#include "c2s.h"
#include "stream.h"
#include "router.h"
#include "jid.h"
#include "log.h"

#include <errno.h>
#include <malloc.h>
#include <grp.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

struct ctl_call {
	struct ev_loop *loop;
	int argc;
	char **argv;
	ctl_done_fn *done;
	void *ctx;
	struct host *host;
	char *user;
	struct auth_req *req;
	int code;
	char *message;
	struct buf body;
	ev_timer defer;
};

struct ctl_command {
	const char *name;
	const char *args;
	int nargs;
	bool offline;            /* works without a running parleyd */
	void (*run)(struct ctl_call *call);
	const char *help;
};

static void call_free(struct ctl_call *call)
{
	ev_timer_stop(call->loop, &call->defer);
	ctl_free_argv(call->argv, call->argc);
	free(call->user);
	free(call->message);
	buf_free(&call->body);
	free(call);
}

static void call_defer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct ctl_call *call = w->data;
	call->done(call->ctx, call->code, call->message, call->body.data != NULL ? call->body.data : "");
	call_free(call);
}

/* Finish: done runs from the loop. */
static void call_finish(struct ctl_call *call, int code, const char *fmt, ...) ATTR_PRINTF(3, 4);
static void call_finish(struct ctl_call *call, int code, const char *fmt, ...)
{
	call->code = code;
	if (fmt != NULL) {
		va_list ap;
		va_start(ap, fmt);
		char *m = NULL;
		if (vasprintf(&m, fmt, ap) < 0)
			log_fatal("out of memory");
		va_end(ap);
		call->message = m;
	}
	call->req = NULL;
	ev_timer_set(&call->defer, 0, 0);
	ev_timer_start(call->loop, &call->defer);
}

/* Resolve argv[hidx] as a served host and argv[uidx] as a local part. */
static bool call_user_host(struct ctl_call *call, int uidx, int hidx)
{
	char *domain = jid_nameprep(call->argv[hidx]);
	call->host = domain != NULL ? host_find(domain) : NULL;
	free(domain);
	if (call->host == NULL) {
		call_finish(call, CTL_FAILED, "host %s is not served here", call->argv[hidx]);
		return false;
	}
	call->user = jid_nodeprep(call->argv[uidx]);
	if (call->user == NULL || *call->user == '\0') {
		call_finish(call, CTL_FAILED, "'%s' is not a valid user name", call->argv[uidx]);
		return false;
	}
	return true;
}

static int auth_code(enum auth_result r)
{
	return r == AUTH_TEMPFAIL ? CTL_TEMPFAIL : CTL_FAILED;
}

/* ---- account commands ------------------------------------------------------------ */

static void register_done(enum auth_result r, void *ctx)
{
	struct ctl_call *call = ctx;
	call->req = NULL;
	if (r == AUTH_OK) {
		struct hook_user hu = { .user = call->user };
		hook_run(call->host, HOOK_REGISTER_USER, &hu);
		log_notice("ctl: user %s@%s registered", call->user, call->host->name);
		buf_printf(&call->body, "user %s@%s registered\n", call->user, call->host->name);
		call_finish(call, CTL_OK, NULL);
	} else if (r == AUTH_EXISTS) {
		call_finish(call, CTL_FAILED, "user %s@%s exists", call->user, call->host->name);
	} else {
		call_finish(call, auth_code(r), "cannot register %s@%s: %s", call->user, call->host->name,
		            auth_result_str(r));
	}
}

static void cmd_register(struct ctl_call *call)
{
	if (!call_user_host(call, 1, 2))
		return;
	if (call->argv[3][0] == '\0') {
		call_finish(call, CTL_FAILED, "the password is empty");
		return;
	}
	call->req = auth_create_user(call->host->auth, call->user, call->argv[3], register_done, call);
}

static void unregister_done(enum auth_result r, void *ctx)
{
	struct ctl_call *call = ctx;
	call->req = NULL;
	if (r == AUTH_OK) {
		struct hook_user hu = { .user = call->user };
		hook_run(call->host, HOOK_REMOVE_USER, &hu);
		sm_kick_user(call->host, call->user, STE_NOT_AUTHORIZED, "the account was removed");
		log_notice("ctl: user %s@%s removed", call->user, call->host->name);
		buf_printf(&call->body, "user %s@%s removed\n", call->user, call->host->name);
		call_finish(call, CTL_OK, NULL);
	} else if (r == AUTH_NO_USER) {
		call_finish(call, CTL_FAILED, "no such user %s@%s", call->user, call->host->name);
	} else {
		call_finish(call, auth_code(r), "cannot remove %s@%s: %s", call->user, call->host->name,
		            auth_result_str(r));
	}
}

static void cmd_unregister(struct ctl_call *call)
{
	if (!call_user_host(call, 1, 2))
		return;
	call->req = auth_remove_user(call->host->auth, call->user, unregister_done, call);
}

static void passwd_done(enum auth_result r, void *ctx)
{
	struct ctl_call *call = ctx;
	call->req = NULL;
	if (r == AUTH_OK) {
		log_notice("ctl: password of %s@%s changed", call->user, call->host->name);
		buf_printf(&call->body, "password of %s@%s changed\n", call->user, call->host->name);
		call_finish(call, CTL_OK, NULL);
	} else if (r == AUTH_NO_USER) {
		call_finish(call, CTL_FAILED, "no such user %s@%s", call->user, call->host->name);
	} else {
		call_finish(call, auth_code(r), "cannot change the password of %s@%s: %s", call->user,
		            call->host->name, auth_result_str(r));
	}
}

static void cmd_passwd(struct ctl_call *call)
{
	if (!call_user_host(call, 1, 2))
		return;
	if (call->argv[3][0] == '\0') {
		call_finish(call, CTL_FAILED, "the password is empty");
		return;
	}
	call->req = auth_set_password(call->host->auth, call->user, call->argv[3], passwd_done, call);
}

/* ---- server commands --------------------------------------------------------------- */

static void add_session(struct session *s, void *ctx)
{
	struct strlist *l = ctx;
	l->items = xrealloc(l->items, (l->count + 1) * sizeof(*l->items));
	l->items[l->count++] = jid_to_string(&s->jid);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void cmd_connected_users(struct ctl_call *call)
{
	struct strlist l = {0};
	sm_foreach(NULL, add_session, &l);
	qsort(l.items, l.count, sizeof(*l.items), cmp_str);
	for (size_t i = 0; i < l.count; i++)
		buf_printf(&call->body, "%s\n", l.items[i]);
	strlist_free(&l);
	call_finish(call, CTL_OK, NULL);
}

static void cmd_status(struct ctl_call *call)
{
	const struct router_stats *rs = router_stats();
	buf_printf(&call->body, "status: running\nversion: %s\nuptime: %.0f s\n", PACKAGE_VERSION,
	           ev_time() - server.started);
	buf_append_str(&call->body, "hosts:");
	for (struct host *h = host_first(); h != NULL; h = h->next)
		buf_printf(&call->body, " %s", h->name);
	buf_printf(&call->body, "\nconnections: %u\nsessions: %u\nstanzas routed: %llu\n", c2s_count(),
	           sm_count(NULL), (unsigned long long)rs->routed);
	struct mallinfo2 mi = mallinfo2();
	long rss_kib = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	if (f != NULL) {
		long size, rss;
		if (fscanf(f, "%ld %ld", &size, &rss) == 2)
			rss_kib = rss * (sysconf(_SC_PAGESIZE) / 1024);
		fclose(f);
	}
	buf_printf(&call->body, "memory: rss %ld KiB, heap in use %zu KiB, heap free %zu KiB\n", rss_kib,
	           (mi.uordblks + mi.hblkhd) / 1024, mi.fordblks / 1024);
	for (struct host *h = host_first(); h != NULL; h = h->next)
		buf_printf(&call->body, "host %s: %u sessions, storage %s\n", h->name, sm_count(h),
		           storage_describe(h->storage));
	call_finish(call, CTL_OK, NULL);
}

static void cmd_stop(struct ctl_call *call)
{
	buf_append_str(&call->body, "stopping\n");
	call_finish(call, CTL_OK, NULL);
	server_stop();
}

static void cmd_reload(struct ctl_call *call)
{
	if (server_reload(&call->body) < 0)
		call_finish(call, CTL_FAILED, "the configuration has errors; nothing was changed");
	else
		call_finish(call, CTL_OK, NULL);
}

static void cmd_help(struct ctl_call *call)
{
	ctl_help(&call->body);
	call_finish(call, CTL_OK, NULL);
}

static const struct ctl_command commands[] = {
	{ "status", "", 0, false, cmd_status, "show whether parleyd runs, its uptime, hosts and sessions" },
	{ "stop", "", 0, false, cmd_stop, "stop parleyd gracefully" },
	{ "reload", "", 0, false, cmd_reload, "re-read the configuration file" },
	{ "register", "USER HOST PASSWORD", 3, true, cmd_register, "create an account" },
	{ "unregister", "USER HOST", 2, true, cmd_unregister, "remove an account and all its data" },
	{ "passwd", "USER HOST PASSWORD", 3, true, cmd_passwd, "set an account's password" },
	{ "connected-users", "", 0, false, cmd_connected_users, "list the full JIDs of connected sessions" },
	{ "help", "", 0, true, cmd_help, "list the commands" },
};

static const struct ctl_command *command_find(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

bool ctl_command_offline(const char *name)
{
	const struct ctl_command *c = command_find(name);
	return c != NULL && c->offline;
}

void ctl_help(struct buf *out)
{
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		buf_printf(out, "  %-16s %-20s %s\n", commands[i].name, commands[i].args, commands[i].help);
}

struct ctl_call *ctl_run(struct ev_loop *loop, int argc, char **argv, ctl_done_fn *done, void *ctx)
{
	struct ctl_call *call = xcalloc(1, sizeof(*call));
	call->loop = loop;
	call->argc = argc;
	call->argv = xcalloc((size_t)argc + 1, sizeof(*call->argv));
	for (int i = 0; i < argc; i++)
		call->argv[i] = xstrdup(argv[i]);
	call->done = done;
	call->ctx = ctx;
	ev_timer_init(&call->defer, call_defer_cb, 0, 0);
	call->defer.data = call;
	const struct ctl_command *c = argc > 0 ? command_find(argv[0]) : NULL;
	if (c == NULL) {
		call_finish(call, CTL_USAGE, "unknown command '%s' (try help)", argc > 0 ? argv[0] : "");
	} else if (argc - 1 != c->nargs) {
		call_finish(call, CTL_USAGE, "usage: %s %s", c->name, c->args);
	} else if (!c->offline && !server.online) {
		call_finish(call, CTL_UNREACHABLE, "%s needs a running parleyd", c->name);
	} else {
		c->run(call);
	}
	return call;
}

void ctl_call_cancel(struct ctl_call *call)
{
	if (call->req != NULL)
		auth_cancel(call->req);
	call_free(call);
}

/* ---- the control socket ---------------------------------------------------------------- */

#define CTL_MAX_LINE 65536

struct ctl_conn {
	int fd;
	struct ev_loop *loop;
	ev_io rio, wio;
	struct buf in, out;
	struct ctl_call *call;
	bool closing;
	struct ctl_conn *next, *prev;
};

static int ctl_fd = -1;
static char *ctl_path;
static ev_io ctl_accept_w;
static struct ev_loop *ctl_loop;
static struct ctl_conn *conns;

static void conn_free(struct ctl_conn *c)
{
	if (c->call != NULL)
		ctl_call_cancel(c->call);
	ev_io_stop(c->loop, &c->rio);
	ev_io_stop(c->loop, &c->wio);
	close(c->fd);
	buf_free(&c->in);
	buf_free(&c->out);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	free(c);
}

static void conn_process(struct ctl_conn *c);

static void conn_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ctl_conn *c = w->data;
	while (c->out.len > 0) {
		ssize_t n = write(c->fd, c->out.data, c->out.len);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			conn_free(c);
			return;
		}
		buf_consume(&c->out, (size_t)n);
	}
	ev_io_stop(loop, &c->wio);
	if (c->closing) {
		conn_free(c);
		return;
	}
	conn_process(c);
}

static void conn_done(void *ctx, int code, const char *message, const char *body)
{
	struct ctl_conn *c = ctx;
	c->call = NULL;
	ctl_encode_response(&c->out, code, message, body);
	ev_io_start(c->loop, &c->wio);
}

/* Run the next complete request line, if any and none is running. */
static void conn_process(struct ctl_conn *c)
{
	if (c->call != NULL || c->out.len > 0)
		return;
	char *nl = c->in.data != NULL ? memchr(c->in.data, '\n', c->in.len) : NULL;
	if (nl == NULL) {
		ev_io_start(c->loop, &c->rio);
		return;
	}
	char **argv;
	int argc;
	size_t len = (size_t)(nl - c->in.data);
	if (ctl_decode_request(c->in.data, len, &argv, &argc) < 0) {
		buf_consume(&c->in, len + 1);
		conn_done(c, CTL_USAGE, "malformed request", "");
		return;
	}
	buf_consume(&c->in, len + 1);
	ev_io_stop(c->loop, &c->rio);
	log_debug("ctl: %s", argc > 0 ? argv[0] : "(empty)");
	c->call = ctl_run(c->loop, argc, argv, conn_done, c);
	ctl_free_argv(argv, argc);
}

static void conn_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ctl_conn *c = w->data;
	char buf[4096];
	ssize_t n = read(c->fd, buf, sizeof(buf));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		conn_free(c);
		return;
	}
	buf_append(&c->in, buf, (size_t)n);
	if (c->in.len > CTL_MAX_LINE && memchr(c->in.data, '\n', c->in.len) == NULL) {
		log_warning("ctl: request line too long; closing the control connection");
		conn_free(c);
		return;
	}
	conn_process(c);
}

static void ctl_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	int fd = accept4(ctl_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return;
	struct ctl_conn *c = xcalloc(1, sizeof(*c));
	c->fd = fd;
	c->loop = loop;
	ev_io_init(&c->rio, conn_read_cb, fd, EV_READ);
	ev_io_init(&c->wio, conn_write_cb, fd, EV_WRITE);
	c->rio.data = c->wio.data = c;
	c->next = conns;
	if (conns != NULL)
		conns->prev = c;
	conns = c;
	ev_io_start(loop, &c->rio);
}

int ctl_listen(struct ev_loop *loop, const struct parley_config *cfg, char **error_r)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	if (strlen(cfg->control_socket) >= sizeof(sun.sun_path)) {
		*error_r = xasprintf("control.socket: path too long: %s", cfg->control_socket);
		return -1;
	}
	strcpy(sun.sun_path, cfg->control_socket);
	/* A socket left by a crashed parleyd: remove it only if nobody answers. */
	int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (probe >= 0 && connect(probe, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
		close(probe);
		*error_r = xasprintf("control socket %s is in use: is another parleyd running?",
		                     cfg->control_socket);
		return -1;
	}
	if (probe >= 0)
		close(probe);
	unlink(cfg->control_socket);
	ctl_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	mode_t old = umask(0177);
	int r = ctl_fd < 0 ? -1 : bind(ctl_fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (r < 0 || listen(ctl_fd, 16) < 0) {
		*error_r = xasprintf("control socket %s: %s", cfg->control_socket, strerror(errno));
		if (ctl_fd >= 0)
			close(ctl_fd);
		ctl_fd = -1;
		return -1;
	}
	if (cfg->control_group != NULL) {
		struct group *g = getgrnam(cfg->control_group);
		if (g == NULL || chown(cfg->control_socket, (uid_t)-1, g->gr_gid) < 0)
			log_warning("control socket %s: cannot give it to group %s", cfg->control_socket,
			            cfg->control_group);
	}
	chmod(cfg->control_socket, cfg->control_mode != 0 ? cfg->control_mode : 0600);
	ctl_path = xstrdup(cfg->control_socket);
	ctl_loop = loop;
	ev_io_init(&ctl_accept_w, ctl_accept_cb, ctl_fd, EV_READ);
	ev_io_start(loop, &ctl_accept_w);
	return 0;
}

void ctl_chown(uid_t uid, gid_t gid)
{
	if (ctl_path != NULL && chown(ctl_path, uid, (gid_t)-1) < 0)
		log_warning("control socket %s: chown: %s", ctl_path, strerror(errno));
	(void)gid;
}

void ctl_close(void)
{
	while (conns != NULL)
		conn_free(conns);
	if (ctl_fd >= 0) {
		ev_io_stop(ctl_loop, &ctl_accept_w);
		close(ctl_fd);
		ctl_fd = -1;
	}
	if (ctl_path != NULL) {
		unlink(ctl_path);
		xfree(&ctl_path);
	}
}
