/*
 * The control socket of parleyd: a UNIX socket (path, mode and group from
 * the configuration) that takes parleyctl's requests (ctl-proto.h) and
 * runs them through ctl_run.  Loop thread.
 *
 * A connection handles one request at a time: its input waits while a
 * command is running, and its answer is written before the next request
 * line is read.  A connection that goes away cancels its running command.
 * parleyd registers these functions with the server (ctl/parleyd.c), which
 * opens, hands over, stops and closes the socket at the right points of its
 * life; nothing below ctl/ names them.
 */
#include "ctl.h"
#include "lib/latency.h"
#include "lib/log.h"

#include <errno.h>
#include <grp.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

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

static void conn_write_event(struct ev_loop *loop, ev_io *w, int revents)
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

static void conn_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	latency_begin(LATENCY_CONTROL, NULL);
	conn_write_event(loop, w, revents);
	latency_end();
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

static void conn_read_event(struct ev_loop *loop, ev_io *w, int revents)
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

static void conn_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	latency_begin(LATENCY_CONTROL, NULL);
	conn_read_event(loop, w, revents);
	latency_end();
}

static void ctl_accept_event(struct ev_loop *loop, ev_io *w, int revents)
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

static void ctl_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	latency_begin(LATENCY_CONTROL, NULL);
	ctl_accept_event(loop, w, revents);
	latency_end();
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

void ctl_stop_accepting(void)
{
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
