/*
 * Listeners.  Sockets are bound at start-up (as root if need be, before
 * privileges are dropped) and accepted from on the loop thread.  "::" takes
 * IPv4 and IPv6 (IPV6_V6ONLY off).  When the process runs out of file
 * descriptors, accepting pauses for a moment instead of spinning.  One
 * loop iteration accepts at most ACCEPTS_PER_ITERATION connections from a
 * listener (a connection's set-up costs some 30 us); the socket stays
 * readable and the next iteration takes the rest, after the others'
 * stanzas.
 */
#include "listener.h"
#include "c2s.h"
#include "lib/latency.h"
#include "lib/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define ACCEPTS_PER_ITERATION 16

struct listener {
	int fd;
	const struct listen_config *lc;
	const struct limits_config *limits;
	ev_io io;
	ev_timer pause;
	struct ev_loop *loop;
	struct listener *next;
};

static struct listener *listeners;
static listener_accept_fn *accept_fns[LISTEN_KINDS] = { [LISTEN_C2S] = c2s_accept };
static const char *const module_names[LISTEN_KINDS] = { "c2s", "s2s", "component", "http" };

void listener_register(int module, listener_accept_fn *fn)
{
	accept_fns[module] = fn;
}

int listeners_open(const struct parley_config *cfg, char **error_r)
{
	for (size_t i = 0; i < cfg->nlisten; i++) {
		const struct listen_config *lc = &cfg->listen[i];
		if (accept_fns[lc->module] == NULL) {
			*error_r = xasprintf("listen %s port %u: module %s is not available in this build",
			                     lc->address, lc->port, module_names[lc->module]);
			return -1;
		}
		struct addrinfo hints = { .ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV,
			                  .ai_socktype = SOCK_STREAM };
		struct addrinfo *ai;
		char port[16];
		snprintf(port, sizeof(port), "%u", lc->port);
		int r = getaddrinfo(lc->address, port, &hints, &ai);
		if (r != 0) {
			*error_r = xasprintf("listen %s port %u: %s", lc->address, lc->port, gai_strerror(r));
			return -1;
		}
		int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		int one = 1, zero = 0;
		if (fd >= 0) {
			setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
			if (ai->ai_family == AF_INET6)
				setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
		}
		if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, (int)lc->backlog) < 0) {
			*error_r = xasprintf("listen %s port %u: %s", lc->address, lc->port, strerror(errno));
			if (fd >= 0)
				close(fd);
			freeaddrinfo(ai);
			return -1;
		}
		freeaddrinfo(ai);
		struct listener *l = xcalloc(1, sizeof(*l));
		l->fd = fd;
		l->lc = lc;
		l->limits = &cfg->limits;
		l->next = listeners;
		listeners = l;
		log_info("listening on [%s]:%u (%s%s)", lc->address, lc->port, module_names[lc->module],
		         lc->module == LISTEN_HTTP           ? (lc->direct_tls ? ", HTTPS" : ", plain HTTP")
		         : lc->direct_tls                    ? ", direct TLS"
		         : lc->starttls == STARTTLS_REQUIRED ? ", STARTTLS required"
		         : lc->starttls == STARTTLS_OPTIONAL ? ", STARTTLS optional"
		                                             : ", no TLS");
	}
	return 0;
}

static void listener_pause_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	latency_begin(LATENCY_ACCEPT, NULL);
	struct listener *l = w->data;
	ev_io_start(loop, &l->io);
	latency_end();
}

static void listener_accept_event(struct ev_loop *loop, ev_io *w, int revents)
{
	struct listener *l = w->data;
	for (int i = 0; i < ACCEPTS_PER_ITERATION; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(l->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ||
			    errno == ECONNABORTED)
				return;
			if (errno == EMFILE || errno == ENFILE) {
				log_warning("accept on port %u: %s: not accepting for 1 s", l->lc->port,
				            strerror(errno));
				ev_io_stop(loop, &l->io);
				ev_timer_set(&l->pause, 1.0, 0);
				ev_timer_start(loop, &l->pause);
				return;
			}
			log_warning("accept on port %u: %s", l->lc->port, strerror(errno));
			return;
		}
		char ip[INET6_ADDRSTRLEN] = "?";
		unsigned port = 0;
		if (ss.ss_family == AF_INET) {
			struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
			inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
			port = ntohs(sin->sin_port);
		} else if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
			if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr))
				inet_ntop(AF_INET, &sin6->sin6_addr.s6_addr[12], ip, sizeof(ip));
			else
				inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
			port = ntohs(sin6->sin6_port);
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		accept_fns[l->lc->module](loop, fd, ip, port, l->lc, l->limits);
	}
}

static void listener_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	latency_begin(LATENCY_ACCEPT, NULL);
	listener_accept_event(loop, w, revents);
	latency_end();
}

void listeners_start(struct ev_loop *loop)
{
	for (struct listener *l = listeners; l != NULL; l = l->next) {
		l->loop = loop;
		ev_io_init(&l->io, listener_accept_cb, l->fd, EV_READ);
		l->io.data = l;
		ev_timer_init(&l->pause, listener_pause_cb, 1.0, 0);
		l->pause.data = l;
		ev_io_start(loop, &l->io);
	}
}

void listeners_close(void)
{
	while (listeners != NULL) {
		struct listener *l = listeners;
		listeners = l->next;
		if (l->loop != NULL) {
			ev_io_stop(l->loop, &l->io);
			ev_timer_stop(l->loop, &l->pause);
		}
		close(l->fd);
		free(l);
	}
}
