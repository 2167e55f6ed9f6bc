/*
 * Server dialback (XEP-0220) and the s2s stream negotiation around it, as
 * server/s2s.c runs them: an incoming stream from a peer (header, stream
 * features, <db:result/> and <db:verify/> requests, SASL EXTERNAL,
 * XEP-0288 <bidi/>, the stanzas it routes once authenticated, the
 * multiplexing of several domain pairs on one stream) and the outgoing
 * stream Parley opens to ask the peer's authoritative server (the peer's
 * header and features, STARTTLS, the answers to <db:verify/> and to our
 * own <db:result/>), with the XEP-0185 keys checked on both.
 *
 * The incoming stream is a socketpair handed to s2s_accept.  Outgoing
 * streams go to the static map of s2s.hosts, which sends the two remote
 * domains allowed here (remote.example, other.example) to a listening
 * socket of this process on 127.0.0.1: the target plays the authoritative
 * server on every connection it accepts there.  No DNS, no other host.
 * Local domains: chat.example and conf.chat.example, routes of the target
 * that keep what reaches them.
 *
 * Input: a flags byte (bit 0: s2s.dialback off; bit 1: s2s.require_tls
 * on, which no stream here can meet; bit 2: s2s.max_pending_dialback 1),
 * then three parts separated by NUL bytes (XML holds none): what the peer
 * writes on the incoming stream first; what the authoritative server
 * writes on each outgoing connection Parley opens (up to 4); what the
 * peer writes on the incoming stream after that.  In each part "SID" is
 * replaced by the id of the incoming stream (from Parley's header) and
 * "KEY" by the dialback key Parley itself derives for a request from
 * remote.example to chat.example on that stream id, so
 * <db:verify from='remote.example' to='chat.example' id='SID'>KEY</db:verify>
 * is a valid request and <db:verify ... id='SID' type='valid'/> on an
 * outgoing connection answers Parley's.  The peer goes, and the s2s
 * streams are shut down as at a server stop.
 *
 * Checks beyond the sanitizers: a stanza reaches a local domain only from
 * a remote domain whose authoritative server this target answered for,
 * moved into jabber:client; no s2s stream or connection is left
 * afterwards.
 */
#include "tests/fuzz/fuzz.h"
#include "server/router.h"
#include "server/s2s.h"
#include "server/server.h"
#include "server/stream.h"
#include "lib/xml.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_OUT 4
#define LOCAL "chat.example"
#define REMOTE "remote.example"

static struct parley_config cfg;
static struct listen_config lc;
static struct s2s_static_host statics[2];
static int listen_fd = -1;

/* The state of one input. */
static char sid[64];   /* the incoming stream's id */
static int in_fd = -1; /* the peer's end of the incoming stream */
static struct out_conn {
	int fd;
	char domain[64]; /* the 'to' of Parley's header */
	bool served;     /* the authoritative part was written to it */
} outs[MAX_OUT];
static size_t nouts;

static bool served_domain(const char *domain)
{
	for (size_t i = 0; i < nouts; i++)
		if (outs[i].served && strcmp(outs[i].domain, domain) == 0)
			return true;
	return false;
}

/* A local domain's route: what the peer's stanzas reach. */
static void sink(void *ctx, struct xml_node *stanza, const struct jid *from, const struct jid *to)
{
	(void)ctx;
	(void)to;
	assert(from != NULL && from->domain != NULL);
	if (!served_domain(from->domain)) {
		fprintf(stderr, "fuzz-dialback: a stanza from %s was routed, but nobody answered for %s\n",
		        from->domain, from->domain);
		abort();
	}
	assert(strcmp(stanza->ns, NS_CLIENT) == 0);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_quiet();
	signal(SIGPIPE, SIG_IGN); /* the daemon ignores it too */
	listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t salen = sizeof(sa);
	if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(listen_fd, 16) < 0 || getsockname(listen_fd, (struct sockaddr *)&sa, &salen) < 0) {
		perror("fuzz-dialback: a listening socket on 127.0.0.1");
		abort();
	}
	char *err = NULL;
	if (s2s_config_load(&cfg.s2s, NULL, NULL, NULL, &err) < 0) {
		fprintf(stderr, "fuzz-dialback: %s\n", err);
		abort();
	}
	static char *allow[] = { REMOTE, "other.example" };
	cfg.s2s.enabled = true;
	cfg.s2s.allow.items = allow;
	cfg.s2s.allow.count = 2;
	for (size_t i = 0; i < 2; i++) {
		statics[i].domain = allow[i];
		statics[i].address = "127.0.0.1";
		statics[i].port = ntohs(sa.sin_port);
	}
	cfg.s2s.static_hosts = statics;
	cfg.s2s.nstatic_hosts = 2;
	/* a failed connection does not make the next input's wait */
	cfg.s2s.backoff = 0;
	cfg.s2s.max_backoff = 0;
	cfg.limits.max_stanza_size = 8192;
	cfg.limits.max_depth = 16;
	cfg.limits.max_attrs = 16;
	cfg.limits.max_output = 1 << 20;
	lc.module = LISTEN_S2S;
	lc.port = 5269;
	lc.starttls = STARTTLS_OPTIONAL;
	server.cfg = &cfg;
	server.loop = ev_default_loop(EVFLAG_AUTO);
	streams_init(server.loop);
	if (s2s_start(server.loop, &err) < 0 || router_add_route(LOCAL, NULL, sink, NULL, &err) < 0 ||
	    router_add_route("conf." LOCAL, NULL, sink, NULL, &err) < 0) {
		fprintf(stderr, "fuzz-dialback: %s\n", err);
		abort();
	}
	static const char secret[] = "fuzz-dialback secret";
	s2s_dialback_set_secret(secret, sizeof(secret) - 1);
	return 0;
}

/* Read what Parley wrote to fd; the incoming stream's id from its
 * header, an outgoing connection's domain from its. */
static void drain(int fd, char *id_r, char *to_r)
{
	char buf[8192];
	ssize_t n;
	while ((n = read(fd, buf, sizeof(buf) - 1)) > 0) {
		buf[n] = '\0';
		char *out = id_r != NULL ? id_r : to_r;
		const char *p = strstr(buf, id_r != NULL ? " id='" : " to='");
		if (out == NULL || p == NULL || strncmp(buf, "<?xml", 5) != 0)
			continue;
		p += 5;
		size_t len = strcspn(p, "'");
		if (len < 64) {
			memcpy(out, p, len);
			out[len] = '\0';
		}
	}
}

/* Run the loop a little; take Parley's new outgoing connections; read
 * everything it wrote. */
static void turn(void)
{
	for (int i = 0; i < 3; i++)
		ev_run(server.loop, EVRUN_NOWAIT);
	int fd;
	while ((fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		if (nouts == MAX_OUT) {
			close(fd);
			continue;
		}
		/* no Nagle: a part is written in pieces around its placeholders */
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		outs[nouts++] = (struct out_conn){ .fd = fd };
	}
	if (in_fd >= 0)
		drain(in_fd, sid, NULL);
	for (size_t i = 0; i < nouts; i++)
		if (outs[i].fd >= 0)
			drain(outs[i].fd, NULL, outs[i].domain[0] == '\0' ? outs[i].domain : NULL);
}

static void write_all(int fd, const char *data, size_t len)
{
	size_t off = 0;
	for (int tries = 0; off < len && tries < 64; tries++) {
		ssize_t w = write(fd, data + off, len - off);
		if (w > 0)
			off += (size_t)w;
		else if (w < 0 && errno != EAGAIN)
			break; /* Parley closed it */
		turn();
	}
}

/* Write part to fd: the bytes before each placeholder first (and let
 * Parley read them), then the placeholder's value as it is by then. */
static void write_part(int fd, const uint8_t *p, size_t len)
{
	size_t start = 0;
	for (size_t i = 0; i + 3 <= len; i++) {
		bool is_sid = memcmp(p + i, "SID", 3) == 0, is_key = memcmp(p + i, "KEY", 3) == 0;
		if (!is_sid && !is_key)
			continue;
		write_all(fd, (const char *)p + start, i - start);
		turn();
		char key[65];
		if (is_key)
			s2s_dialback_key(REMOTE, LOCAL, sid, key);
		const char *v = is_sid ? sid : key;
		write_all(fd, v, strlen(v));
		i += 2;
		start = i + 1;
	}
	write_all(fd, (const char *)p + start, len - start);
	turn();
}

/* Answer, as the authoritative server, every outgoing connection Parley
 * opened and that was not answered yet. */
static void serve_outs(const uint8_t *part, size_t len)
{
	for (int round = 0; round < 4; round++) {
		turn();
		bool any = false;
		for (size_t i = 0; i < nouts; i++) {
			if (outs[i].served || outs[i].fd < 0)
				continue;
			outs[i].served = true;
			any = true;
			write_part(outs[i].fd, part, len);
		}
		if (!any)
			break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_input in = { data, size };
	uint8_t flags = fuzz_byte(&in);
	cfg.s2s.dialback = !(flags & 1);
	cfg.s2s.require_tls = (flags & 2) != 0;
	cfg.s2s.max_pending_dialback = flags & 4 ? 1 : 8;
	size_t len1, len_out, len2;
	const uint8_t *in1 = fuzz_until(&in, 0, &len1);
	const uint8_t *out = fuzz_until(&in, 0, &len_out);
	const uint8_t *in2 = fuzz_until(&in, 0, &len2);

	sid[0] = '\0';
	nouts = 0;
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	in_fd = sv[1];
	s2s_accept(server.loop, sv[0], "192.0.2.1", 40000, &lc, &cfg.limits);
	write_part(in_fd, in1, len1);
	serve_outs(out, len_out);
	write_part(in_fd, in2, len2);
	serve_outs(out, len_out);

	close(in_fd);
	in_fd = -1;
	for (size_t i = 0; i < nouts; i++) {
		close(outs[i].fd);
		outs[i].fd = -1;
	}
	for (int i = 0; i < 10; i++)
		turn();
	s2s_shutdown_all();
	unsigned o, opening, i_n;
	for (int i = 0; i < 50; i++) {
		s2s_counts(&o, &opening, &i_n);
		if (o + opening + i_n == 0 && streams_count() == 0)
			break;
		turn();
	}
	/* connections made after the peer went */
	for (size_t i = 0; i < nouts; i++)
		if (outs[i].fd >= 0)
			close(outs[i].fd);
	int fd;
	while ((fd = accept4(listen_fd, NULL, NULL, 0)) >= 0)
		close(fd);
	s2s_counts(&o, &opening, &i_n);
	assert(o == 0 && opening == 0 && i_n == 0);
	assert(streams_count() == 0);
	return 0;
}
