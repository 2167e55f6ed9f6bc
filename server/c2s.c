/*
 * Client-to-server streams.  Loop thread only.
 *
 * States: HEADER (waiting for a stream header; again after STARTTLS and
 * after SASL success), OPEN (header answered, negotiating: STARTTLS, SASL,
 * in-band registration), BIND (authenticated, waiting for resource binding),
 * SESSION (bound; stanzas go to the router).
 *
 * Invariants:
 * - While a SASL exchange or a pre-auth iq waits on a backend, input is
 *   paused (the stanza callback returned true); it resumes when the answer
 *   has been written.
 * - Every stanza routed from a session carries from = the session's full JID
 *   and a 'to' that parsed as a JID; routed trees are not changed afterwards.
 * - In-order processing (RFC 6120 §10.1): while a session's stanza is
 *   handed on, the stream's barrier is current; work that finishes later
 *   and must be durable first (an offline store, an iq set in flight) holds
 *   it.  Output to the session (answers, and anything delivered meanwhile)
 *   is then kept, serialised, in held and written, in order, once the holds
 *   taken before it are released: an answer never overtakes the commit of
 *   an earlier stanza.  The answer to held input k (barrier_answering) goes
 *   before the held output that came for later input, so answers keep the
 *   order of the input, and after the answers to k given before it, so
 *   several answers to one input keep the order they were sent in.  Held
 *   bytes count in the session's out_queued, and with the stream's queue
 *   against its ceiling (stream_output_ceiling): the peer cannot take them
 *   yet, so only the ceiling applies; once released, the stream's rule
 *   for a queue over limits.max_output does.
 * - Stream management (XEP-0198, c2s-sm.h): once enabled, a client stanza
 *   counts when it is handed on and <a/> goes through the held output,
 *   so an acknowledgement covers only durable work; every stanza written
 *   to the client is queued until acknowledged, in wire order.  A
 *   resumable session whose connection drops keeps its struct c2s with
 *   st NULL (session->detached) until <resume/> on another stream (after
 *   SASL1, or inline in SASL2's <authenticate/>) swaps the connections or
 *   the timeout ends it; a session that ends for good hands its
 *   unacknowledged messages to offline storage, but for a message to the
 *   bare JID that another session of the user, still open and available,
 *   got too (sm_copies_leave): of the sessions that got one, the last to
 *   end stores it.  A session the session manager lets go (replaced by a
 *   new one of its resource, or kicked) settles at once, not when its
 *   connection has finished closing: the new session's first presence
 *   then finds the messages in offline storage, or being stored.  A
 *   queued message whose device was told of it as unseen (push: queued
 *   while detached or inactive) says so until the device is back
 *   (resumed, active); stored at the end, it names that device
 *   (hook_packet.told), and push does not count it again.
 * - Places (limits.max_connections_per_ip, struct ip_count): a stream
 *   holds one from accept; a detached session keeps its connection's
 *   until it is resumed (the resuming stream's place becomes the
 *   session's, and the detached one is given up) or ends.  At the limit,
 *   a stream is let in over it (ip_over) only while the address has more
 *   detached sessions than such streams; one that then binds, or resumes
 *   a session that waited elsewhere, ends the address's longest-waiting
 *   detached sessions until the address is within its limit again
 *   (c2s_ip_settle).
 * - An account has at most limits.max_sessions_per_user sessions, bound
 *   or detached: a bind past it ends the one detached longest (its
 *   unacknowledged messages go to offline storage, as on expiry); with
 *   none detached, the bind is refused with <resource-constraint/>
 *   (RFC 6120 §7.6.2.1).
 * - A failed authentication is answered after auth_failure_delay; after
 *   auth_attempts failures the stream is closed.  A backend that could not
 *   answer is <temporary-auth-failure/> and does not count.  A SCRAM login
 *   for an account without keys for that hash counts like a failure for
 *   an unknown user (the stream's attempts and the limits alike, so that
 *   neither tells the two apart), and its count against the limits is
 *   taken back when the client then logs in to that account on the stream
 *   with a mechanism it can do: falling back costs nothing.
 */
#include "c2s.h"
#include "stream.h"
#include "sasl.h"
#include "upgrade.h"
#include "host.h"
#include "router.h"
#include "sm.h"
#include "lib/i18n.h"
#include "lib/latency.h"
#include "lib/log.h"
#include "tls.h"
#include "lib/barrier.h"
#include "module.h"
#include "c2s-sm.h"
#include "server.h"
#include "hooks.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <string.h>
#include <strings.h>
#include <unistd.h>

enum c2s_state { C2S_HEADER, C2S_OPEN, C2S_BIND, C2S_SESSION };

/* A run of held output and what it waits for.  The runs are ordered by
 * mark; of two runs with one mark, the answers to that hold come first. */
struct held_seg {
	size_t end;    /* held bytes up to here ... */
	uint64_t mark; /* ... wait for the barrier to pass this */
	bool answer;   /* the answers to hold mark (barrier_answering) */
};

struct c2s {
	struct stream *st;
	const struct listen_config *lc;
	const struct limits_config *limits;
	enum c2s_state state;
	bool header_sent;
	bool authenticated;
	/* The stream header's xml:lang (RFC 6120 §4.7.4), when it is a
	 * language other than English (the language of our own header):
	 * stamped on the client's stanzas that carry none, so that errors and
	 * forms built for them anywhere on their way speak it. */
	char lang[36];
	struct host *host;
	char stream_id[17];
	struct sasl *sasl;
	unsigned auth_failures;
	ev_timer fail_timer;
	bool fail_close; /* close after the delayed failure is sent */
	char *user;      /* authenticated local part */
	bool anonymous;  /* SASL ANONYMOUS: the account lives as long as the stream */
	/* SCRAM logins declined on this stream for want of keys for the hash
	 * (counted by the limits like failures): for which account, how many,
	 * and when the first was; forgiven if that account logs in here. */
	char *declined_user;
	unsigned declined_n;
	double declined_since;

	/* SASL2 (XEP-0388): the exchange in progress uses it, and what its
	 * <authenticate/> asked for beyond authentication. */
	bool sasl2;
	struct xml_node *bind2; /* a copy of its Bind 2 request (XEP-0386), or NULL */
	char *user_agent;       /* the <user-agent/> id, or NULL */
	/* Stream management inline in SASL2 (XEP-0198): a copy of the
	 * <resume/> of its <authenticate/>, or NULL; and, on the session
	 * that took the stream over, the <success/> that carries <resumed/>,
	 * written when the resumption is ready. */
	struct xml_node *sm_resume;
	struct xml_node *resume_success;
	struct fast_request fast_req; /* its FAST (XEP-0484) requests */
	/* SASL upgrade tasks (XEP-0480): those it asked for (upgrade.h bits);
	 * after success, the tasks in progress and the success held back
	 * until they are done (its data and FAST token). */
	unsigned upgrade_req;
	struct upgrade *upgrade;
	struct sasl_result upgrade_res;

	struct session session;
	char *full_jid; /* session JID as a string, for stamping */
	double opened;
	unsigned preauth_pending; /* pre-auth iqs waiting for their answer */
	/* The last 'to' this session used, prepared: a chat goes to the same
	 * address again and again, and stringprep is the costly part. */
	char *to_cache_str;
	struct jid to_cache;
	/* Its place in limits.max_connections_per_ip: held by the stream,
	 * then, detached, by the session until it is resumed or ends. */
	struct ip_count *ipc;
	bool ip_over;       /* let in over the limit (ip_take): may resume, see c2s_ip_settle */
	double detached_at; /* when the connection of the detached session was lost */
	/* In-order answers: output waiting for the barrier (see the top). */
	struct barrier *barrier;
	struct buf held;
	struct held_seg *segs;
	size_t nsegs, segs_cap;
	/* Stream management (XEP-0198): NULL until the client enables it.
	 * A resumable session whose connection dropped keeps this struct with
	 * st NULL and session.detached set until it is resumed or expires. */
	struct c2s_sm *sm;
	bool sm_ended;     /* closed on purpose: no resumption */
	bool resume_wait;  /* resumed; <resumed/> waits for the barrier */
	ev_timer sm_timer; /* resume timeout while detached */
	uint64_t out_base; /* bytes of earlier connections (out_queued) */
	struct ev_loop *loop;
};

/* ---- connections per IP ----------------------------------------------------- */

/* The places of one address: count is its open client streams and its
 * detached sessions (detached of them); over of the streams were let in
 * past limits.max_connections_per_ip, each for one of the detached
 * sessions, and have neither resumed nor bound yet (c2s_ip_settle).
 * Invariant: count <= the limit + over, and over <= detached when a
 * stream is let in over the limit. */
struct ip_count {
	char ip[64];
	unsigned count;
	unsigned detached;
	unsigned over;
	struct ip_count *next;
};

#define IP_BUCKETS 1024
static struct ip_count *ip_table[IP_BUCKETS];
static unsigned c2s_total;
static struct c2s_stats stats;

const struct c2s_stats *c2s_stats(void)
{
	return &stats;
}

static struct ip_count *ip_get(const char *ip, bool create)
{
	uint32_t b = hash_str(ip) % IP_BUCKETS;
	for (struct ip_count *e = ip_table[b]; e != NULL; e = e->next)
		if (strcmp(e->ip, ip) == 0)
			return e;
	if (!create)
		return NULL;
	struct ip_count *e = xcalloc(1, sizeof(*e));
	snprintf(e->ip, sizeof(e->ip), "%s", ip);
	e->next = ip_table[b];
	ip_table[b] = e;
	return e;
}

static void ip_release(struct ip_count *ipc)
{
	if (ipc == NULL || --ipc->count > 0)
		return;
	uint32_t b = hash_str(ipc->ip) % IP_BUCKETS;
	for (struct ip_count **pp = &ip_table[b]; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == ipc) {
			*pp = ipc->next;
			free(ipc);
			return;
		}
	}
}

bool c2s_ip_admits(const char *ip, const struct limits_config *limits)
{
	struct ip_count *e = ip_get(ip, false);
	return limits->max_conn_per_ip == 0 || e == NULL || e->count < limits->max_conn_per_ip ||
	       e->over < e->detached;
}

/* A place for a new stream from ip (c2s_ip_admits said yes): *over_r
 * when the address is at its limit already. */
static struct ip_count *ip_take(const char *ip, const struct limits_config *limits, bool *over_r)
{
	struct ip_count *ipc = ip_get(ip, true);
	*over_r = limits->max_conn_per_ip > 0 && ipc->count >= limits->max_conn_per_ip;
	ipc->count++;
	if (*over_r) {
		ipc->over++;
		log_info("c2s: a connection from %s is let in over limits.max_connections_per_ip (%u): "
		         "%u sessions from that address wait to be resumed",
		         ip, limits->max_conn_per_ip, ipc->detached);
	}
	return ipc;
}

unsigned c2s_count(void)
{
	return c2s_total;
}

/* ---- output helpers ------------------------------------------------------------ */

static void c2s_send_header(struct c2s *c)
{
	if (c->header_sent)
		return;
	random_id(c->stream_id, 16);
	struct buf b = { 0 };
	buf_append_str(&b, "<?xml version='1.0'?><stream:stream xmlns='" NS_CLIENT
	                   "' xmlns:stream='" NS_STREAM "' id='");
	buf_append_str(&b, c->stream_id);
	if (c->host != NULL) {
		buf_append_str(&b, "' from='");
		xml_escape(&b, c->host->name, strlen(c->host->name), true);
	}
	buf_append_str(&b, "' version='1.0' xml:lang='en'>");
	stream_write(c->st, b.data, b.len);
	buf_free(&b);
	c->header_sent = true;
}

/* Close the stream with a stream error (a header first if none was sent). */
static void c2s_sm_expire_soon(struct c2s *c);
static void c2s_ip_leave(struct c2s *c);

static void c2s_fail(struct c2s *c, enum stream_error e, const char *text)
{
	if (c->st == NULL) {
		c2s_ip_leave(c);       /* a detached session: it ends now, */
		c2s_sm_expire_soon(c); /* and its place is free at once */
		return;
	}
	if (c->st->dead || c->st->closing)
		return;
	/* A timeout may be a dead network: the session can still be resumed. */
	if (e != STE_CONNECTION_TIMEOUT)
		c->sm_ended = true;
	c2s_send_header(c);
	log_info("c2s %llu from %s%s%s: closing with <%s/>%s%s", (unsigned long long)c->st->id, c->st->ip,
	         c->full_jid != NULL ? " " : "", c->full_jid != NULL ? c->full_jid : "", stream_error_name(e),
	         text != NULL ? ": " : "", text != NULL ? text : "");
	stream_close(c->st, (int)e, text);
}

static void c2s_sm_resume_ready(struct c2s *c);
static void c2s_sm_queued(struct c2s *c, const struct xml_node *el);
static void c2s_sm_settle(struct c2s *c);

/* Write the held output whose holds were all released, in order. */
static void c2s_release_held(void *ctx)
{
	struct c2s *c = ctx;
	size_t n = 0;
	while (n < c->nsegs && barrier_passed(c->barrier, c->segs[n].mark))
		n++;
	if (n == 0) {
		c2s_sm_resume_ready(c);
		return;
	}
	size_t bytes = c->segs[n - 1].end;
	/* Detached, or resumed and waiting: the stanzas go to the queue
	 * (resent from there), the rest is for a connection that is gone. */
	if (c->st != NULL && !c->resume_wait && !c->st->closing)
		stream_write(c->st, c->held.data, bytes);
	if (c->sm != NULL)
		c2s_sm_held_written(c->sm, bytes);
	buf_consume(&c->held, bytes);
	c->nsegs -= n;
	memmove(c->segs, c->segs + n, c->nsegs * sizeof(*c->segs));
	for (size_t i = 0; i < c->nsegs; i++)
		c->segs[i].end -= bytes;
	c2s_sm_resume_ready(c);
}

/* A message someone reads: message_unseen runs for it where the user
 * does not see it. */
static bool c2s_unseen_kind(const struct xml_node *el)
{
	return xml_is(el, "message", NS_CLIENT) && xml_child(el, "body", NULL) != NULL;
}

/* Whether el, written to c now, is a message its device is told of as
 * unseen: by c2s_sm_queued for a detached session, by mod_csi (as it let
 * it through) for an inactive one. */
static bool c2s_unseen_told(const struct c2s *c, const struct xml_node *el)
{
	return (c->st == NULL || c->session.inactive) && c2s_unseen_kind(el);
}

/* Write el now, or keep it in held (see the top).  With stream management
 * (counted), the stanza is also queued until the client acknowledges it,
 * in the order it goes to the wire, with the record of the other sessions
 * a message to the bare JID went to, and whether the device was told of
 * it (push). */
static void c2s_write_out(struct c2s *c, struct xml_node *el, bool counted)
{
	struct sm_copies *copies = counted ? sm_copies_of(el) : NULL;
	bool told = counted && c2s_unseen_told(c, el);
	if (c->nsegs == 0 && (c->barrier == NULL || !barrier_busy(c->barrier))) {
		if (c->st != NULL && !c->st->closing)
			stream_send(c->st, el, NS_CLIENT);
		if (counted)
			c2s_sm_sent(c->sm, el, (double)time(NULL), copies, told);
		return;
	}
	if (c->st != NULL && (c->st->dead || c->st->closing)) {
		if (counted)
			c2s_sm_sent(c->sm, el, (double)time(NULL), copies, told);
		return;
	}
	size_t held_before = c->held.len;
	xml_serialize(&c->held, el, NS_CLIENT);
	if (counted)
		c2s_sm_held_insert(c->sm, held_before, c->held.len - held_before, el, (double)time(NULL),
		                   copies, told);
	if (c->st != NULL && c->held.len + c->st->out.len > stream_output_ceiling(c->st)) {
		log_warning("c2s %llu from %s: output held for earlier stores over %zu bytes: "
		            "disconnecting",
		            (unsigned long long)c->st->id, c->st->ip, stream_output_ceiling(c->st));
		stream_abort(c->st);
		return;
	}
	uint64_t mark = barrier_mark(c->barrier);
	size_t at = c->nsegs; /* where the new run goes */
	uint64_t k = barrier_answering(c->barrier);
	bool answer = k != 0;
	if (answer) {
		/* The answer to input k: before what came for later input,
		 * after the answers to k already placed. */
		mark = k;
		while (at > 0 &&
		       (c->segs[at - 1].mark > k || (c->segs[at - 1].mark == k && !c->segs[at - 1].answer)))
			at--;
	}
	size_t start = at > 0 ? c->segs[at - 1].end : 0;
	size_t len = c->held.len - held_before;
	if (at < c->nsegs) {
		if (counted)
			c2s_sm_held_move_last(c->sm, start, len);
		/* Move the serialised bytes from the end to start. */
		char *tmp = xmalloc(len);
		memcpy(tmp, c->held.data + held_before, len);
		memmove(c->held.data + start + len, c->held.data + start, held_before - start);
		memcpy(c->held.data + start, tmp, len);
		free(tmp);
		for (size_t i = at; i < c->nsegs; i++)
			c->segs[i].end += len;
	}
	if (at > 0 && c->segs[at - 1].mark == mark && c->segs[at - 1].answer == answer) {
		c->segs[at - 1].end += len;
		return;
	}
	if (c->nsegs == c->segs_cap) {
		c->segs_cap = c->segs_cap ? c->segs_cap * 2 : 8;
		c->segs = xrealloc(c->segs, c->segs_cap * sizeof(*c->segs));
	}
	memmove(c->segs + at + 1, c->segs + at, (c->nsegs - at) * sizeof(*c->segs));
	c->segs[at] = (struct held_seg){ .end = start + len, .mark = mark, .answer = answer };
	c->nsegs++;
}

static void c2s_send(struct c2s *c, struct xml_node *el)
{
	bool counted = c->sm != NULL && c->state == C2S_SESSION && c2s_sm_is_stanza(el);
	c2s_write_out(c, el, counted);
	if (counted)
		c2s_sm_queued(c, el);
}

/* A SASL element: <challenge/> with data, <failure/> with a condition, or
 * SASL1's <success/>, in the namespace of the exchange (SASL2 keeps the
 * conditions in the SASL1 namespace). */
static void c2s_send_sasl(struct c2s *c, const char *name, const char *child, const char *data, size_t len)
{
	struct xml_node *el = xml_new(name, c->sasl2 ? NS_SASL2 : NS_SASL);
	if (child != NULL)
		xml_add_child(el, child, NS_SASL);
	if (data != NULL) {
		if (len == 0) {
			/* SASL1 writes empty data as "="; SASL2 as nothing. */
			if (!c->sasl2)
				xml_add_text(el, "=", 1);
		} else {
			char *b64 = base64_encode(data, len);
			xml_add_text(el, b64, strlen(b64));
			free(b64);
		}
	}
	c2s_send(c, el);
	xml_unref(&el);
}

/* A SASL <failure/> with its condition and a <text/> (RFC 6120 §6.4.5;
 * XEP-0388 keeps <text/> in its own namespace). */
static void c2s_send_sasl_text(struct c2s *c, const char *condition, const char *text)
{
	struct xml_node *el = xml_new("failure", c->sasl2 ? NS_SASL2 : NS_SASL);
	xml_add_child(el, condition, NS_SASL);
	xml_add_text(xml_add_child(el, "text", c->sasl2 ? NS_SASL2 : NS_SASL), text, strlen(text));
	c2s_send(c, el);
	xml_unref(&el);
}

/* Whether carbons can be enabled inline in a Bind 2 request. */
static bool c2s_bind2_carbons_offered(struct c2s *c)
{
	return module_running(c->host, "carbons");
}

/* Whether a Bind 2 request may set the client state (XEP-0352). */
static bool c2s_bind2_csi_offered(struct c2s *c)
{
	return module_running(c->host, "csi");
}

/* Whether FAST (XEP-0484) is offered on this stream's SASL2: over TLS
 * only; tokens are kept in the host's storage, for any auth backend but
 * anonymous. */
static bool c2s_fast_offered(struct c2s *c)
{
	return fast_available() && c->st->tls_done && c->host->storage != NULL &&
	       (auth_can_plain(c->host->auth) || auth_can_scram(c->host->auth));
}

/* Whether SASL upgrade tasks (XEP-0480) are offered: where SCRAM keys are
 * kept in the host's storage (the internal method). */
static bool c2s_upgrade_offered(struct c2s *c)
{
	return c->host->storage != NULL && auth_can_scram(c->host->auth);
}

/* Whether mech is an HT mechanism offered on this stream's SASL2. */
static bool c2s_ht_offered(struct c2s *c, const char *mech)
{
	const char *names[FAST_MAX_MECHS];
	size_t n = c->sasl2 && c2s_fast_offered(c) ? fast_mechanisms(c->st->ssl, names) : 0;
	for (size_t i = 0; i < n; i++)
		if (strcmp(names[i], mech) == 0)
			return true;
	return false;
}

/* XEP-0388 <authentication/> with the same mechanisms as SASL1, and Bind 2
 * (XEP-0386) inline with the session features it can enable.  Inline
 * features of other extensions (stream management) go into the outer
 * <inline/>, beside <bind/>. */
static void c2s_add_sasl2_feature(struct c2s *c, struct xml_node *f, bool secure)
{
	struct xml_node *a = xml_add_child(f, "authentication", NS_SASL2);
	sasl_add_mechanisms(a, c->host->auth, c->st->ssl, secure);
	if (a->children == NULL) {
		xml_remove(a);
		return;
	}
	bool fast = c2s_fast_offered(c);
	if (fast) {
		const char *names[FAST_MAX_MECHS];
		size_t n = fast_mechanisms(c->st->ssl, names);
		for (size_t i = 0; i < n; i++)
			xml_add_text(xml_add_child(a, "mechanism", NULL), names[i], strlen(names[i]));
	}
	struct xml_node *in = xml_add_child(a, "inline", NS_SASL2);
	if (fast)
		fast_add_inline(in, c->st->ssl);
	if (c2s_upgrade_offered(c))
		upgrade_add_features(a);
	struct xml_node *bind = xml_add_child(in, "bind", NS_BIND2);
	struct xml_node *bind_in = xml_add_child(bind, "inline", NS_BIND2);
	if (c2s_bind2_carbons_offered(c)) {
		struct xml_node *feat = xml_add_child(bind_in, "feature", NS_BIND2);
		xml_set_attr(feat, "var", NS_CARBONS);
	}
	if (server_config()->stream_management.enabled) {
		struct xml_node *feat = xml_add_child(bind_in, "feature", NS_BIND2);
		xml_set_attr(feat, "var", NS_SM);
	}
	if (c2s_bind2_csi_offered(c)) {
		struct xml_node *feat = xml_add_child(bind_in, "feature", NS_BIND2);
		xml_set_attr(feat, "var", NS_CSI);
	}

	/* Stream management: resumption inline (XEP-0198), beside <bind/>. */
	if (server_config()->stream_management.enabled)
		xml_add_child(in, "sm", NS_SM);
}

/* XEP-0138 compression: after authentication, on a socket stream (not
 * WebSocket or BOSH) that is not compressed yet, when configured. */
static bool c2s_compression_offered(struct c2s *c)
{
	return server_config()->compression.enabled && stream_can_compress(c->st);
}

/* <compress/>: <compressed/> and a stream restart, or a <failure/>. */
static void c2s_handle_compress(struct c2s *c, struct xml_node *el)
{
	const char *failure = NULL;
	if (stream_answer_compress(c->st, el, c2s_compression_offered(c), &failure) < 0) {
		log_info("c2s %llu: compression refused: %s", (unsigned long long)c->st->id, failure);
		return;
	}
	log_debug("c2s %llu: zlib compression started", (unsigned long long)c->st->id);
	c->state = C2S_HEADER;
	c->header_sent = false;
}

static void c2s_send_features(struct c2s *c)
{
	struct xml_node *f = xml_new("features", NS_STREAM);
	bool secure = c->st->tls_done;
	bool authenticated = c->state == C2S_BIND || c->state == C2S_SESSION;
	if (c->state == C2S_BIND) {
		if (c2s_compression_offered(c)) {
			struct xml_node *z = xml_add_child(f, "compression", NS_COMPRESS_FEATURE);
			xml_add_text(xml_add_child(z, "method", NS_COMPRESS_FEATURE), "zlib", 4);
		}
		xml_add_child(f, "bind", NS_BIND);
		struct xml_node *sess = xml_add_child(f, "session", NS_SESSION);
		xml_add_child(sess, "optional", NS_SESSION);
		if (server_config()->stream_management.enabled)
			xml_add_child(f, "sm", NS_SM);
	} else if (c->state == C2S_SESSION) {
		/* bound inline by Bind 2: only what modules offer a session, and
		 * stream management unless it was enabled inline */
		if (server_config()->stream_management.enabled && c->sm == NULL)
			xml_add_child(f, "sm", NS_SM);
	} else {
		if (!secure && c->lc->starttls != STARTTLS_OFF && tls_available()) {
			struct xml_node *tls = xml_add_child(f, "starttls", NS_TLS);
			if (c->lc->starttls == STARTTLS_REQUIRED)
				xml_add_child(tls, "required", NS_TLS);
		}
		if (secure || c->lc->starttls != STARTTLS_REQUIRED) {
			struct xml_node *m = xml_add_child(f, "mechanisms", NS_SASL);
			sasl_add_mechanisms(m, c->host->auth, c->st->ssl, secure);
			c2s_add_sasl2_feature(c, f, secure);
			if (c->st->ssl != NULL)
				sasl_add_cbind_feature(f, c->st->ssl);
		}
	}
	if (secure || c->lc->starttls != STARTTLS_REQUIRED || authenticated) {
		struct hook_features hf = { .features = f, .authenticated = authenticated, .secure = secure };
		hook_run(c->host, HOOK_STREAM_FEATURES, &hf);
	}
	/* Written with the stream prefix: <stream:features>. */
	struct buf b = { 0 };
	buf_append_str(&b, "<stream:features>");
	for (struct xml_node *ch = f->children; ch != NULL; ch = ch->next)
		xml_serialize(&b, ch, NS_CLIENT);
	buf_append_str(&b, "</stream:features>");
	stream_write(c->st, b.data, b.len);
	buf_free(&b);
	xml_unref(&f);
}

/* ---- stream header ---------------------------------------------------------------- */

static void c2s_set_lang(struct c2s *c, const char *lang)
{
	bool english = lang != NULL && (strcasecmp(lang, "en") == 0 || strncasecmp(lang, "en-", 3) == 0);
	if (english || !i18n_valid_tag(lang))
		c->lang[0] = '\0';
	else
		snprintf(c->lang, sizeof(c->lang), "%s", lang);
}

/* A stanza from the client without xml:lang gets the stream's (RFC 6120
 * §4.7.4); nothing for English streams. */
static void c2s_stamp_lang(const struct c2s *c, struct xml_node *el)
{
	if (c->lang[0] != '\0' && xml_attr(el, "xml:lang") == NULL)
		xml_set_attr(el, "xml:lang", c->lang);
}

static void c2s_stream_start(struct stream *st, struct xml_node *header, const char *default_ns)
{
	struct c2s *c = st->owner;
	const char *to = xml_attr(header, "to");
	const char *version = xml_attr(header, "version");
	c2s_set_lang(c, xml_attr(header, "xml:lang"));
	bool v1 = version != NULL && atoi(version) >= 1;
	bool ns_ok = strcmp(default_ns, NS_CLIENT) == 0;
	struct host *h = NULL;
	if (to != NULL) {
		char *domain = jid_nameprep(to);
		if (domain != NULL)
			h = host_find(domain);
		free(domain);
	}
	xml_unref(&header); /* to, version and default_ns are not used below */
	if (c->host == NULL)
		c->host = h;
	if (!ns_ok) {
		c2s_fail(c, STE_INVALID_NAMESPACE, "the default namespace must be jabber:client");
		return;
	}
	if (h == NULL) {
		c2s_fail(c, STE_HOST_UNKNOWN, "this server does not serve that domain");
		return;
	}
	if (h != c->host) {
		c2s_fail(c, STE_HOST_UNKNOWN, "the domain changed during the stream");
		return;
	}
	c2s_send_header(c);
	if (!v1) {
		c2s_fail(c, STE_UNSUPPORTED_VERSION, "XMPP 1.0 streams only");
		return;
	}
	c->state = c->authenticated ? C2S_BIND : C2S_OPEN;
	c2s_send_features(c);
}

static void c2s_stream_end(struct stream *st)
{
	struct c2s *c = st->owner;
	c->sm_ended = true; /* XEP-0198 §5: a closed stream ends the session */
	log_debug("c2s %llu: client closed the stream", (unsigned long long)st->id);
	c2s_send_header(c);
	stream_close(st, -1, NULL);
}

static void c2s_parse_error(struct stream *st, enum stream_error e, const char *text)
{
	c2s_fail(st->owner, e, text);
}

/* ---- SASL ----------------------------------------------------------------------------- */

static bool c2s_sasl_result(struct c2s *c, struct sasl_result *res);
static void c2s_sm_start(struct c2s *c, const struct xml_node *el, struct xml_node *ok);
/* How a <resume/> went (c2s_sm_takeover). */
enum c2s_resume_result {
	C2S_RESUMED,       /* *o_r took the stream over */
	C2S_RESUME_FAILED, /* nothing changed: answer <failed/> with *condition_r */
	C2S_RESUME_CLOSED, /* the stream is closing (a bad h) */
};
static enum c2s_resume_result c2s_sm_takeover(struct c2s *n, const struct xml_node *el, struct c2s **o_r,
                                              const char **condition_r);
static bool c2s_bind_session(struct c2s *c, const char *resource);
static void c2s_sm_end_now(struct c2s *c, const char *limit);
static void c2s_ip_settle(struct c2s *c);

static void c2s_fail_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct c2s *c = w->data;
	c2s_send_sasl(c, "failure", "not-authorized", NULL, 0);
	if (c->fail_close) {
		c2s_fail(c, STE_POLICY_VIOLATION, "too many failed authentication attempts");
		return;
	}
	stream_resume(c->st);
}

static void c2s_sasl_async(void *ctx, struct sasl_result *res)
{
	struct c2s *c = ctx;
	/* After a resumption inline in SASL2, c may be gone: the stream is
	 * the resumed session's now. */
	struct stream *st = c->st;
	bool stay_paused = c2s_sasl_result(c, res);
	if (!stay_paused && !st->dead)
		stream_resume(st);
}

/* The server's part of an inline bind's resource for a client that gave
 * a <user-agent/> id: 16 hex digits of SHA-256 over the account and the
 * id, the same at every bind of that client installation (XEP-0386 §3.2
 * allows stable resources; the id itself must not show, and the account
 * in the hash keeps one device's id from linking its accounts). */
static void c2s_bind2_stable_part(const struct c2s *c, char out[17])
{
	struct buf b = { 0 };
	buf_append_str(&b, c->user);
	buf_append_str(&b, "@");
	buf_append_str(&b, c->host->name);
	buf_append(&b, "", 1);
	buf_append_str(&b, c->user_agent);
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	if (EVP_Digest(b.data, b.len, md, &md_len, EVP_sha256(), NULL) != 1 || md_len < 8)
		abort();
	buf_free(&b);
	char *hex = hex_encode(md, 8);
	memcpy(out, hex, 17);
	free(hex);
}

/* XEP-0386 §3.2: a client that binds again ends its earlier sessions.
 * One with the same resource is replaced by sm_session_open; one bound
 * with another tag (or none) is found here by the stable part that ends
 * its resource, and ends the same way, with <conflict/>. */
static void c2s_bind2_end_older(struct c2s *c, const char *resource)
{
	char part[17];
	c2s_bind2_stable_part(c, part);
	size_t plen = strlen(part);
	struct session *next;
	for (struct session *s = sm_user_sessions(c->host, c->user); s != NULL; s = next) {
		next = s->next_of_user;
		const char *r = s->jid.resource;
		size_t rlen = r != NULL ? strlen(r) : 0;
		if (rlen <= plen || strcmp(r, resource) == 0 || memcmp(r + rlen - plen, part, plen) != 0 ||
		    (r[rlen - plen - 1] != '/' && r[rlen - plen - 1] != '-'))
			continue;
		log_info("c2s %llu from %s: %s@%s/%s is an older session of the same client: it ends",
		         (unsigned long long)c->st->id, c->st->ip, c->user, c->host->name, r);
		sm_session_close(s);
		s->ops->kick(s->owner, STE_CONFLICT, "replaced by a new session of the same client");
	}
}

/* The resource of an inline bind: the client's tag, '/', a random part
 * (XEP-0386 §3.2); the random part alone when the tag is not a valid
 * resource.  A client that gave a <user-agent/> id gets a stable part
 * instead of a random one: binding again, it replaces its older session
 * (resource conflict), as XEP-0386 §3.2 asks of a server. */
static char *c2s_bind2_resource(const struct c2s *c, const char *tag)
{
	char rnd[17];
	if (c->user_agent != NULL)
		c2s_bind2_stable_part(c, rnd);
	else
		random_id(rnd, 16);
	if (tag != NULL) {
		char *want = xasprintf("%s/%s", tag, rnd);
		char *resource = jid_resourceprep(want);
		free(want);
		if (resource != NULL)
			return resource;
	}
	return xasprintf("parley-%s", rnd);
}

/* What the Bind 2 request enabled, after the session is open.  Features
 * negotiated inline go here, each answering into bound when it must:
 * carbons need no answer (XEP-0386 §3.2). */
static void c2s_bind2_enable(struct c2s *c, const struct xml_node *request, struct xml_node *bound)
{
	if (xml_child(request, "enable", NS_CARBONS) != NULL && c2s_bind2_carbons_offered(c))
		c->session.carbons = true;
	const struct xml_node *sm = xml_child(request, "enable", NS_SM);
	if (sm != NULL && server_config()->stream_management.enabled)
		c2s_sm_start(c, sm, xml_add_child(bound, "enabled", NS_SM));
	/* Client state: set through the same hook as <inactive/> or
	 * <active/> on the stream (mod_csi), so the session starts in it;
	 * no answer. */
	if (c2s_bind2_csi_offered(c)) {
		for (struct xml_node *s = xml_child(request, NULL, NS_CSI); s != NULL;
		     s = xml_next(s, NULL, NS_CSI)) {
			if (!xml_is(s, "inactive", NS_CSI) && !xml_is(s, "active", NS_CSI))
				continue;
			struct hook_packet hp = { .stanza = s, .session = &c->session };
			hook_run(c->host, HOOK_C2S_NONZA, &hp);
		}
	}
}

/* SASL2 success: no stream restart.  An inline bind opens the session
 * first, so <success/> names the full JID and carries <bound/>; the stream
 * features of the new state follow at once.  True when input must pause
 * (an inline resumption waits); c may be gone then. */
static bool c2s_sasl2_success(struct c2s *c, const struct sasl_result *res)
{
	struct xml_node *el = xml_new("success", NS_SASL2);
	if (res->data != NULL && res->len > 0) {
		char *b64 = base64_encode(res->data, res->len);
		struct xml_node *ad = xml_add_child(el, "additional-data", NS_SASL2);
		xml_add_text(ad, b64, strlen(b64));
		free(b64);
	}
	struct xml_node *id = xml_add_child(el, "authorization-identifier", NS_SASL2);
	c->state = C2S_BIND;
	/* FAST (XEP-0484): the token a <request-token/> asked for */
	if (res->fast_token != NULL)
		fast_add_token(el, res->fast_token, res->fast_expires);
	fast_request_clear(&c->fast_req);

	/* Resumption inline (XEP-0198), before any bind (XEP-0386 §3.2):
	 * resumed, the session that took the stream over writes <success/>
	 * once ready and the bind request is ignored; failed, <failed/> goes
	 * into <success/> and the bind goes on. */
	if (c->sm_resume != NULL) {
		struct xml_node *resume = c->sm_resume;
		c->sm_resume = NULL;
		struct c2s *o;
		const char *condition;
		enum c2s_resume_result r = c2s_sm_takeover(c, resume, &o, &condition);
		xml_unref(&resume);
		if (r == C2S_RESUME_CLOSED) {
			xml_unref(&el);
			return true;
		}
		if (r == C2S_RESUMED) {
			xml_add_text(id, o->full_jid, strlen(o->full_jid));
			o->resume_success = el;
			c2s_sm_resume_ready(o);
			return o->resume_wait;
		}
		struct xml_node *failed = xml_add_child(el, "failed", NS_SM);
		xml_add_child(failed, condition, NS_STANZAS);
	}

	/* Bind 2: a session that limits.max_sessions_per_user refuses is not
	 * bound (no <bound/>; the bare JID is the identity), and the client
	 * may bind later: RFC 6120 binding says why (resource-constraint). */
	bool bound = false;
	if (c->bind2 != NULL) {
		const char *tag = xml_child_text(c->bind2, "tag", NS_BIND2);
		char *resource =
		        c2s_bind2_resource(c, tag != NULL && *tag != '\0' && strlen(tag) <= 128 ? tag : NULL);
		if (c->user_agent != NULL)
			c2s_bind2_end_older(c, resource);
		bound = c2s_bind_session(c, resource);
		free(resource);
		if (bound) {
			xml_add_text(id, c->full_jid, strlen(c->full_jid));
			c2s_bind2_enable(c, c->bind2, xml_add_child(el, "bound", NS_BIND2));
		}
		xml_unref(&c->bind2);
	}
	if (!bound) {
		char *bare = xasprintf("%s@%s", c->user, c->host->name);
		xml_add_text(id, bare, strlen(bare));
		free(bare);
	}
	c2s_send(c, el);
	xml_unref(&el);
	c->sasl2 = false;
	c2s_send_features(c);
	return false;
}

/* ---- SASL upgrade tasks (XEP-0480) ---- */

/* The upgrade is ready for its next step: <continue/> with the next task,
 * or the <success/> held back when no task is left.  Input was paused. */
static void c2s_upgrade_step(void *ctx)
{
	struct c2s *c = ctx;
	struct stream *st = c->st;
	const char *task = upgrade_task(c->upgrade);
	if (task != NULL) {
		struct xml_node *el = xml_new("continue", NS_SASL2);
		struct sasl_result *res = &c->upgrade_res;
		if (res->data != NULL && res->len > 0) {
			/* the mechanism's final data goes with the first <continue/> */
			char *b64 = base64_encode(res->data, res->len);
			xml_add_text(xml_add_child(el, "additional-data", NS_SASL2), b64, strlen(b64));
			free(b64);
			explicit_bzero(res->data, res->len);
			xfree(&res->data);
			res->len = 0;
		}
		struct xml_node *tasks = xml_add_child(el, "tasks", NS_SASL2);
		xml_add_text(xml_add_child(tasks, "task", NS_SASL2), task, strlen(task));
		c2s_send(c, el);
		xml_unref(&el);
		stream_resume(st);
		return;
	}
	upgrade_free(&c->upgrade);
	/* c may be gone after an inline resumption: the result is ours */
	struct sasl_result res = c->upgrade_res;
	memset(&c->upgrade_res, 0, sizeof(c->upgrade_res));
	bool stay_paused = c2s_sasl2_success(c, &res);
	sasl_result_clear(&res);
	if (!stay_paused && !st->dead)
		stream_resume(st);
}

/* The login is undone: an upgrade task was aborted or malformed. */
static void c2s_upgrade_fail(struct c2s *c, const char *condition)
{
	log_notice("c2s %llu from %s: SASL upgrade task of %s@%s refused: %s", (unsigned long long)c->st->id,
	           c->st->ip, c->user, c->host->name, condition);
	upgrade_free(&c->upgrade);
	sasl_result_clear(&c->upgrade_res);
	xfree(&c->user);
	c->authenticated = false;
	c->sasl2 = true;
	c2s_send_sasl(c, "failure", condition, NULL, 0);
}

/* An element of the client while upgrade tasks run.  True when input must
 * pause. */
static bool c2s_upgrade_input(struct c2s *c, struct xml_node *el)
{
	if (xml_is(el, "next", NS_SASL2)) {
		struct xml_node *data = xml_new("task-data", NS_SASL2);
		if (upgrade_next(c->upgrade, xml_attr(el, "task"), data) == 0)
			c2s_send(c, data);
		else
			c2s_upgrade_fail(c, "malformed-request");
		xml_unref(&data);
		return false;
	}
	if (xml_is(el, "task-data", NS_SASL2)) {
		if (upgrade_data(c->upgrade, el, c2s_upgrade_step, c) == 0)
			return true;
		c2s_upgrade_fail(c, "malformed-request");
		return false;
	}
	if (xml_is(el, "abort", NS_SASL2) || xml_is(el, "abort", NS_SASL)) {
		c2s_upgrade_fail(c, "aborted");
		return false;
	}
	c2s_fail(c, STE_POLICY_VIOLATION, "a SASL upgrade task is in progress");
	return true;
}

/* A SCRAM login declined for want of keys for its hash (no password was
 * tried).  It counts as a failed login, in this stream's attempts and in
 * the limits, exactly as one for a name that does not exist: otherwise
 * repeating it would tell a client which names are such accounts (the
 * unknown name gets rate-limited or its stream closed, the account never
 * does).  The client that falls back to SCRAM-SHA-1 or PLAIN on this
 * stream and logs in to the account gets the limits' counts back
 * (c2s_sasl_result), so an office behind one NAT address, all of whose
 * clients try SCRAM-SHA-256 first, is not locked out; only someone who
 * never logs in keeps them, and cannot do so without the password. */
static void c2s_note_declined(struct c2s *c, const char *who)
{
	auth_note_no_credentials(c->host->auth, c->st->ip, who, sasl_mechanism(c->sasl), true);
	if (who == NULL || *who == '\0')
		return;
	if (c->declined_user == NULL || strcmp(c->declined_user, who) != 0) {
		free(c->declined_user);
		c->declined_user = xstrdup(who);
		c->declined_n = 0;
		c->declined_since = ev_now(c->st->loop);
	}
	c->declined_n++;
}

/* Answer one SASL step.  True when input must stay paused. */
static bool c2s_sasl_result(struct c2s *c, struct sasl_result *res)
{
	bool paused = false;
	switch (res->status) {
	case SASL_PENDING: return true;
	case SASL_CHALLENGE: c2s_send_sasl(c, "challenge", NULL, res->data, res->len); break;
	case SASL_SUCCESS: {
		c->user = xstrdup(sasl_username(c->sasl));
		c->anonymous = sasl_is_anonymous(c->sasl);
		if (!c->anonymous)
			auth_note_success(c->host->auth, c->user);
		if (c->declined_user != NULL && strcmp(c->declined_user, c->user) == 0)
			auth_forgive_declined(c->host->auth, c->st->ip, c->declined_n, c->declined_since);
		free(c->declined_user);
		c->declined_user = NULL;
		const char *cbt = sasl_cbind_type(c->sasl);
		log_info("c2s %llu from %s: %s@%s authenticated with %s%s%s%s%s",
		         (unsigned long long)c->st->id, c->st->ip, c->user, c->host->name,
		         sasl_mechanism(c->sasl), cbt != NULL ? " (" : "", cbt != NULL ? cbt : "",
		         cbt != NULL ? ")" : "", c->anonymous ? " (anonymous)" : "");
		bool token = strncmp(sasl_mechanism(c->sasl), "HT-", 3) == 0;
		sasl_free(&c->sasl);
		c->authenticated = true;
		if (c->sasl2 && c->upgrade_req != 0 && !c->anonymous && !token && c2s_upgrade_offered(c)) {
			/* A password login (never a FAST token: it must not
			 * lead to new password credentials) that asked for
			 * upgrade tasks: <success/> waits for them. */
			c->upgrade_res = *res;
			memset(res, 0, sizeof(*res));
			c->upgrade = upgrade_new(c->host->storage, c->host->name, c->user, c->upgrade_req,
			                         auth_scram_iterations(c->host->auth));
			upgrade_start(c->upgrade, c2s_upgrade_step, c);
			paused = true;
			break;
		}
		if (c->sasl2) {
			paused = c2s_sasl2_success(c, res);
			break;
		}
		/* <success/> with no additional data has no text at all (PLAIN). */
		c2s_send_sasl(c, "success", NULL, res->data, res->len);
		c->state = C2S_HEADER;
		c->header_sent = false;
		stream_restart(c->st);
		paused = c->st->in_parser; /* inside the parser: stop there, restart follows */
		break;
	}
	case SASL_FAILURE: {
		const char *who = c->sasl != NULL ? sasl_username(c->sasl) : NULL;
		if (res->tempfail) {
			log_warning("c2s %llu from %s: authentication backend unavailable for %s@%s: "
			            "<temporary-auth-failure/> (not counted as a failed login)",
			            (unsigned long long)c->st->id, c->st->ip, who != NULL ? who : "?",
			            c->host->name);
			sasl_free(&c->sasl);
			c2s_send_sasl(c, "failure", "temporary-auth-failure", NULL, 0);
			break;
		}
		if (res->no_credentials && strcmp(res->condition, "invalid-mechanism") == 0) {
			/* auth.reveal_missing_scram_keys: the account has no
			 * keys for this hash, and the client is told so at once
			 * (sasl.c, scram_creds).  Like an unoffered mechanism, it
			 * is no login attempt and counts nowhere. */
			auth_note_no_credentials(c->host->auth, c->st->ip, who, sasl_mechanism(c->sasl),
			                         false);
			char *text = xasprintf("this account has no %s credentials; use another mechanism",
			                       sasl_mechanism(c->sasl));
			sasl_free(&c->sasl);
			c2s_send_sasl_text(c, "invalid-mechanism", text);
			free(text);
			break;
		}
		if (res->detail != NULL) {
			/* No password was tried (a channel binding mismatch,
			 * an expired FAST token): answered at once and not
			 * counted. */
			log_notice("c2s %llu from %s: %s refused: %s", (unsigned long long)c->st->id,
			           c->st->ip, sasl_mechanism(c->sasl), res->detail);
			sasl_free(&c->sasl);
			c2s_send_sasl(c, "failure", res->condition, NULL, 0);
			break;
		}
		if (strcmp(res->condition, "not-authorized") != 0) {
			sasl_free(&c->sasl);
			c2s_send_sasl(c, "failure", res->condition, NULL, 0);
			break;
		}
		c->auth_failures++;
		if (res->limited)
			log_notice("auth failed: ip=%s user=%s%s%s reason=rate-limited", c->st->ip,
			           who != NULL && *who != '\0' ? who : "-",
			           who != NULL && *who != '\0' ? "@" : "",
			           who != NULL && *who != '\0' ? c->host->name : "");
		else if (res->no_credentials)
			c2s_note_declined(c, who);
		else
			auth_note_failure(c->host->auth, c->st->ip, who,
			                  res->reason != NULL ? res->reason : "not-authorized");
		sasl_free(&c->sasl);
		log_info("c2s %llu from %s: authentication failed for host %s (attempt %u)",
		         (unsigned long long)c->st->id, c->st->ip, c->host->name, c->auth_failures);
		c->fail_close = c->auth_failures >= c->limits->auth_attempts;
		ev_timer_set(&c->fail_timer, c->limits->auth_failure_delay, 0);
		ev_timer_start(c->st->loop, &c->fail_timer);
		paused = true;
		break;
	}
	}
	sasl_result_clear(res);
	return paused;
}

static bool c2s_decode_sasl(struct c2s *c, struct xml_node *el, unsigned char **data_r, size_t *len_r)
{
	const char *text = xml_text(el);
	*data_r = NULL;
	*len_r = 0;
	if (strcmp(text, "=") == 0 || *text == '\0')
		return true;
	if (base64_decode(text, strlen(text), data_r, len_r) < 0) {
		c2s_send_sasl(c, "failure", "incorrect-encoding", NULL, 0);
		return false;
	}
	return true;
}

/* Start an exchange: SASL1 <auth/> (data_el the element itself) or SASL2
 * <authenticate/> (data_el its <initial-response/>, NULL without one). */
static bool c2s_start_sasl(struct c2s *c, const char *mech, struct xml_node *data_el)
{
	bool secure = c->st->tls_done;
	if (!secure && c->lc->starttls == STARTTLS_REQUIRED) {
		c2s_send_sasl(c, "failure", "encryption-required", NULL, 0);
		return false;
	}
	if (c->sasl != NULL)
		sasl_free(&c->sasl);
	if (mech == NULL ||
	    (!sasl_mechanism_offered(mech, c->host->auth, c->st->ssl, secure) && !c2s_ht_offered(c, mech))) {
		c2s_send_sasl(c, "failure", "invalid-mechanism", NULL, 0);
		return false;
	}
	/* No initial response: SASL1's <auth/> without text ("=" is an
	 * empty one, RFC 6120 6.4.2), SASL2 without <initial-response/>. */
	bool initial = c->sasl2 ? data_el != NULL : *xml_text(data_el) != '\0';
	unsigned char *data = NULL;
	size_t len = 0;
	if (initial && !c2s_decode_sasl(c, data_el, &data, &len))
		return false;
	c->sasl = sasl_new(mech, c->host->auth, c->st->ssl, secure, c->st->ip, c2s_sasl_async, c);
	if (c->sasl2 && c2s_fast_offered(c))
		sasl_set_fast(c->sasl, c->host->storage, c->host->name, &c->fast_req,
		              server_config()->fast.token_ttl);
	if (!initial && !sasl_is_anonymous(c->sasl)) {
		/* Every mechanism here is client-first: an empty challenge,
		 * and the client's <response/> is its first message (RFC 4422
		 * 3.3).  ANONYMOUS takes none as an empty trace, as clients
		 * expect. */
		c2s_send_sasl(c, "challenge", NULL, NULL, 0);
		return false;
	}
	struct sasl_result res;
	sasl_step(c->sasl, (const char *)(data != NULL ? (char *)data : ""), len, &res);
	if (data != NULL) {
		explicit_bzero(data, len);
		free(data);
	}
	return c2s_sasl_result(c, &res);
}

static bool c2s_handle_auth(struct c2s *c, struct xml_node *el)
{
	c->sasl2 = false;
	return c2s_start_sasl(c, xml_attr(el, "mechanism"), el);
}

/* A client-chosen identifier fit for the log: printable ASCII, short. */
static char *c2s_log_token(const char *s)
{
	if (s == NULL || *s == '\0' || strlen(s) > 64)
		return NULL;
	for (const char *p = s; *p != '\0'; p++)
		if (*p <= 0x20 || *p >= 0x7f)
			return NULL;
	return xstrdup(s);
}

/* FAST (XEP-0484) requests of an <authenticate/>, into c->fast_req; false
 * (and a failure sent) when they are malformed. */
static bool c2s_fast_request(struct c2s *c, struct xml_node *el)
{
	fast_request_clear(&c->fast_req);
	const char *bad = NULL;
	if (!c2s_fast_offered(c) || fast_request_parse(&c->fast_req, el, c->user_agent, &bad) == 0)
		return true;
	log_notice("c2s %llu from %s: SASL2 refused: %s", (unsigned long long)c->st->id, c->st->ip, bad);
	c2s_send_sasl(c, "failure", "malformed-request", NULL, 0);
	return false;
}

/* SASL2 <authenticate/> (XEP-0388), with an optional inline Bind 2
 * request (XEP-0386) acted on only after success. */
static bool c2s_handle_authenticate(struct c2s *c, struct xml_node *el)
{
	c->sasl2 = true;
	xml_unref(&c->bind2);
	struct xml_node *bind = xml_child(el, "bind", NS_BIND2);
	if (bind != NULL)
		c->bind2 = xml_copy(bind);
	struct xml_node *ua = xml_child(el, "user-agent", NS_SASL2);
	if (ua != NULL) {
		xfree(&c->user_agent);
		c->user_agent = c2s_log_token(xml_attr(ua, "id"));
		if (c->user_agent != NULL)
			log_info("c2s %llu from %s: SASL2 user agent %s", (unsigned long long)c->st->id,
			         c->st->ip, c->user_agent);
	}

	/* Stream management: a resumption asked for inline (XEP-0198), tried
	 * after success. */
	xml_unref(&c->sm_resume);
	struct xml_node *resume = xml_child(el, "resume", NS_SM);
	if (resume != NULL)
		c->sm_resume = xml_copy(resume);
	if (!c2s_fast_request(c, el))
		return false;
	c->upgrade_req = upgrade_requested(el);
	return c2s_start_sasl(c, xml_attr(el, "mechanism"), xml_child(el, "initial-response", NS_SASL2));
}

static bool c2s_handle_response(struct c2s *c, struct xml_node *el)
{
	if (c->sasl == NULL || c->sasl2 != (strcmp(el->ns, NS_SASL2) == 0)) {
		sasl_free(&c->sasl);
		c->sasl2 = strcmp(el->ns, NS_SASL2) == 0;
		c2s_send_sasl(c, "failure", "malformed-request", NULL, 0);
		return false;
	}
	unsigned char *data;
	size_t len;
	if (!c2s_decode_sasl(c, el, &data, &len))
		return false;
	struct sasl_result res;
	sasl_step(c->sasl, (const char *)(data != NULL ? (char *)data : ""), len, &res);
	if (data != NULL) {
		explicit_bzero(data, len);
		free(data);
	}
	return c2s_sasl_result(c, &res);
}

/* ---- pre-auth iq (in-band registration) ------------------------------------------- */

static void c2s_preauth_reply(void *owner, struct xml_node *reply)
{
	struct c2s *c = owner;
	c2s_send(c, reply);
	xml_unref(&reply);
	if (c->preauth_pending > 0 && --c->preauth_pending == 0 && c->st->paused)
		stream_resume(c->st);
}

static bool c2s_handle_preauth_iq(struct c2s *c, struct xml_node *el)
{
	const char *type = xml_attr(el, "type");
	struct xml_node *payload = xml_first_element(el);
	bool secure = c->st->tls_done || c->lc->starttls != STARTTLS_REQUIRED;
	c2s_stamp_lang(c, el);
	if (!secure || type == NULL || payload == NULL ||
	    !iq_has_handler(c->host, IQ_SCOPE_PREAUTH, payload->ns)) {
		c2s_fail(c, STE_NOT_AUTHORIZED, "authenticate first");
		return true;
	}
	if ((strcmp(type, "get") != 0 && strcmp(type, "set") != 0) || xml_element_count(el) != 1) {
		struct xml_node *err = stanza_error_reply(el, SE_BAD_REQUEST, NULL);
		if (err != NULL) {
			c2s_send(c, err);
			xml_unref(&err);
		}
		return false;
	}
	struct iq_request tmpl = { 0 };
	tmpl.remote_ip = c->st->ip;
	tmpl.preauth_reply = c2s_preauth_reply;
	tmpl.preauth_stream = c;
	struct jid to = { .domain = c->host->name };
	c->preauth_pending++;
	iq_dispatch(c->host, IQ_SCOPE_PREAUTH, el, NULL, &to, &tmpl);
	/* Answered already (synchronously) or not: pause until it is. */
	return c->preauth_pending > 0;
}

/* ---- resource binding ---------------------------------------------------------------- */

static void c2s_session_deliver(void *owner, struct xml_node *stanza)
{
	struct c2s *c = owner;
	stats.out[stanza_kind(stanza)]++;
	c2s_send(c, stanza);
}

/* A fan-out copy: the bytes serialised once, with this client's address
 * (the stanza's 'to') in between; the tree when output is being held. */
static void c2s_session_deliver_wire(void *owner, struct xml_node *stanza, const struct xml_wire *w)
{
	struct c2s *c = owner;
	if (c->sm != NULL || c->nsegs != 0 || (c->barrier != NULL && barrier_busy(c->barrier))) {
		c2s_session_deliver(owner, stanza);
		return;
	}
	stats.out[stanza_kind(stanza)]++;
	stream_send_wire(c->st, w, xml_attr(stanza, "to"));
}

/* The session manager has let the session go (replaced by a new one of
 * its resource, or its account's sessions end): no acknowledgement can
 * come any more, so what its client never acknowledged is settled now,
 * while the connection may still take its time to close.  A session
 * that replaced it and sends its presence at once then finds the
 * messages stored, or being stored (mod_offline's fetch waits for
 * them), not stored only after it fetched. */
static void c2s_session_kick(void *owner, enum stream_error e, const char *text)
{
	struct c2s *c = owner;
	c2s_fail(c, e, text);
	c2s_sm_settle(c);
}

/* Counted over every connection of the session (resumption).  Detached,
 * what was queued is in the stream management queue, which resends it or
 * stores the messages offline: it counts as written. */
static uint64_t c2s_session_out_queued(void *owner)
{
	struct c2s *c = owner;
	return c->out_base + (c->st != NULL ? c->st->bytes_out + c->st->out.len + c->held.len : 0);
}

static uint64_t c2s_session_out_written(void *owner)
{
	struct c2s *c = owner;
	return c->out_base + (c->st != NULL ? c->st->bytes_out : 0);
}

static void c2s_session_throttle(void *owner, double seconds)
{
	struct c2s *c = owner;
	if (c->st != NULL) /* a detached stream-management session has no connection */
		stream_delay_input(c->st, seconds);
}

static const struct session_ops c2s_session_ops = {
	.throttle = c2s_session_throttle,
	.deliver = c2s_session_deliver,
	.deliver_wire = c2s_session_deliver_wire,
	.kick = c2s_session_kick,
	.out_queued = c2s_session_out_queued,
	.out_written = c2s_session_out_written,
};

static void c2s_iq_error(struct c2s *c, struct xml_node *iq, enum stanza_error e, const char *text)
{
	struct xml_node *err = stanza_error_reply(iq, e, text);
	if (err != NULL) {
		c2s_send(c, err);
		xml_unref(&err);
	}
}

/* limits.max_sessions_per_user: whether the user of c may have one
 * more session (besides the one of resource, which the bind replaces).
 * At the limit, the session detached longest ends first, as its expiry
 * would; false when the sessions left are all open. */
static bool c2s_session_room(struct c2s *c, const char *resource)
{
	unsigned max = c->limits->max_sessions_per_user;
	if (max == 0)
		return true;
	for (;;) {
		unsigned n = 0;
		struct c2s *oldest = NULL;
		for (struct session *s = sm_user_sessions(c->host, c->user); s != NULL; s = s->next_of_user) {
			if (strcmp(s->jid.resource, resource) == 0)
				continue;
			n++;
			struct c2s *o = s->owner;
			if (s->detached && s->ops == &c2s_session_ops && o->st == NULL &&
			    (oldest == NULL || o->detached_at < oldest->detached_at))
				oldest = o;
		}
		if (n < max)
			return true;
		if (oldest == NULL) {
			log_notice("c2s %llu from %s: %s@%s may not bind another session: %u are open "
			           "(limits.max_sessions_per_user)",
			           (unsigned long long)c->st->id, c->st->ip, c->user, c->host->name, n);
			return false;
		}
		c2s_sm_end_now(oldest, "limits.max_sessions_per_user");
	}
}

/* Open the session of this stream with the given (prepared) resource;
 * false when limits.max_sessions_per_user refuses it. */
static bool c2s_bind_session(struct c2s *c, const char *resource)
{
	if (!c2s_session_room(c, resource))
		return false;
	jid_set(&c->session.jid, c->user, c->host->name, resource);
	c->full_jid = jid_to_string(&c->session.jid);
	c->session.host = c->host;
	c->session.ops = &c2s_session_ops;
	c->session.owner = c;
	c->session.id = c->st->id;
	c->session.started = ev_now(c->st->loop);
	snprintf(c->session.ip, sizeof(c->session.ip), "%s", c->st->ip);
	c->session.port = c->st->port;
	snprintf(c->session.tls, sizeof(c->session.tls), "%s",
	         c->st->ssl != NULL && c->st->tls_done ? SSL_get_version(c->st->ssl) : "");
	sm_session_open(&c->session);
	c->state = C2S_SESSION;
	log_info("c2s %llu from %s: session %s bound", (unsigned long long)c->st->id, c->st->ip, c->full_jid);
	/* After sm_session_open: a detached session it replaced gave its
	 * place up already. */
	c2s_ip_settle(c);
	return true;
}

static void c2s_handle_bind(struct c2s *c, struct xml_node *iq)
{
	struct xml_node *bind = xml_child(iq, "bind", NS_BIND);
	const char *type = xml_attr(iq, "type");
	if (bind == NULL || type == NULL || strcmp(type, "set") != 0 || xml_element_count(iq) != 1) {
		c2s_iq_error(c, iq, SE_BAD_REQUEST, NULL);
		return;
	}
	const char *want = xml_child_text(bind, "resource", NS_BIND);
	char *resource = NULL;
	if (want != NULL && *want != '\0') {
		resource = jid_resourceprep(want);
		if (resource == NULL) {
			c2s_iq_error(c, iq, SE_BAD_REQUEST, "the resource is not a valid resourcepart");
			return;
		}
	} else {
		char rnd[17];
		random_id(rnd, 16);
		resource = xasprintf("parley-%s", rnd);
	}
	bool bound = c2s_bind_session(c, resource);
	free(resource);
	if (!bound) {
		/* RFC 6120 §7.6.2.1: the account has as many sessions as it may. */
		c2s_iq_error(c, iq, SE_RESOURCE_CONSTRAINT, "this account has as many sessions as it may");
		return;
	}

	struct xml_node *res = stanza_iq_result(iq);
	struct xml_node *b = xml_add_child(res, "bind", NS_BIND);
	struct xml_node *j = xml_add_child(b, "jid", NS_BIND);
	xml_add_text(j, c->full_jid, strlen(c->full_jid));
	xml_set_attr(res, "from", NULL);
	c2s_send(c, res);
	xml_unref(&res);
}

/* ---- stream management (XEP-0198) ------------------------------------------------------- */

static void c2s_sm_write(struct c2s *c, const char *name, const char *child, const char *child_ns,
                         const char *attr, const char *value)
{
	struct xml_node *el = xml_new(name, NS_SM);
	if (child != NULL)
		xml_add_child(el, child, child_ns);
	if (attr != NULL)
		xml_set_attr(el, attr, value);
	c2s_send(c, el);
	xml_unref(&el);
}

static void c2s_sm_failed(struct c2s *c, const char *condition)
{
	c2s_sm_write(c, "failed", condition, NS_STANZAS, NULL, NULL);
}

static void c2s_sm_request(struct c2s *c)
{
	c->sm->since_request = 0;
	c->sm->request_out = true;
	c2s_sm_write(c, "r", NULL, NULL, NULL, NULL);
}

static void c2s_sm_answer(struct c2s *c)
{
	char h[16];
	snprintf(h, sizeof(h), "%u", c->sm->in);
	c2s_sm_write(c, "a", NULL, NULL, "h", h);
}

static size_t c2s_sm_queued_count(const struct c2s *c)
{
	return c->sm != NULL ? c2s_sm_count(c->sm) : 0;
}

/* Run hook for a message of the queue, from its 'from' (told: see
 * hook_packet). */
static enum hook_result c2s_sm_hook_message(struct c2s *c, const char *hook, struct xml_node *el,
                                            const struct jid *to, struct session *s, const char *const *told,
                                            size_t ntold)
{
	struct jid from = { 0 };
	const char *err;
	const char *f = xml_attr(el, "from");
	bool parsed = f != NULL && jid_parse(f, &from, &err) == 0;
	struct hook_packet hp = { .from = parsed ? &from : NULL,
		                  .to = to,
		                  .stanza = el,
		                  .session = s,
		                  .told = told,
		                  .ntold = ntold };
	enum hook_result r = hook_run(c->host, hook, &hp);
	if (parsed)
		jid_clear(&from);
	return r;
}

/* A stanza was put in the queue (c2s_send). */
static void c2s_sm_queued(struct c2s *c, const struct xml_node *el)
{
	const struct stream_mgmt_config *conf = &server_config()->stream_management;
	if (c->st == NULL && !c->session.inactive && c2s_unseen_kind(el)) {
		/* Nobody sees it now: push may wake the device (for an inactive
		 * session, client state indication said so already). */
		c2s_sm_hook_message(c, HOOK_MESSAGE_UNSEEN, (struct xml_node *)el, &c->session.jid,
		                    &c->session, NULL, 0);
	}
	if (c2s_sm_queued_count(c) > conf->max_unacked) {
		c2s_fail(c, STE_POLICY_VIOLATION, "too many unacknowledged stanzas");
		return;
	}
	if (c->st != NULL && !c->sm->request_out && c->sm->since_request >= conf->ack_interval &&
	    c->nsegs == 0)
		c2s_sm_request(c);
}

static bool c2s_sm_parse_h(const char *s, uint32_t *h_r)
{
	if (s == NULL || *s < '0' || *s > '9')
		return false;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (*end != '\0' || errno != 0 || v > UINT32_MAX)
		return false;
	*h_r = (uint32_t)v;
	return true;
}

/* The client's h: drop what it acknowledged; false (and the stream
 * closes) when it acknowledges more than was sent. */
static bool c2s_sm_acked(struct c2s *c, const char *hs)
{
	uint32_t h;
	if (!c2s_sm_parse_h(hs, &h)) {
		c2s_fail(c, STE_INVALID_XML, "h must be a number from 0 to 4294967295");
		return false;
	}
	if (c2s_sm_ack(c->sm, h) == 0)
		return true;
	if (c->st == NULL || c->st->dead || c->st->closing)
		return false;
	log_info("c2s %llu from %s %s: closing: the client acknowledged %u stanzas, %u were sent",
	         (unsigned long long)c->st->id, c->st->ip, c->full_jid != NULL ? c->full_jid : "", h,
	         c->sm->out);
	char buf[320];
	snprintf(buf, sizeof(buf),
	         "<stream:error><undefined-condition xmlns='" NS_STREAMS "'/>"
	         "<handled-count-too-high xmlns='" NS_SM "' h='%u' send-count='%u'/></stream:error>",
	         h, c->sm->out);
	c->sm_ended = true;
	stream_write_str(c->st, buf);
	stream_close(c->st, -1, NULL);
	return false;
}

/* <enable/> el: start stream management and fill in ok, the
 * <enabled/> answer. */
static void c2s_sm_start(struct c2s *c, const struct xml_node *el, struct xml_node *ok)
{
	const struct stream_mgmt_config *conf = &server_config()->stream_management;
	c->sm = c2s_sm_new(c);
	const char *resume = xml_attr(el, "resume");
	bool want = resume != NULL && (strcmp(resume, "true") == 0 || strcmp(resume, "1") == 0);
	if (want && conf->resume_timeout > 0 && !c->anonymous) {
		double timeout = conf->resume_timeout;
		uint32_t max;
		if (c2s_sm_parse_h(xml_attr(el, "max"), &max) && max > 0)
			timeout = max < conf->max_resume_timeout ? max : conf->max_resume_timeout;
		c2s_sm_make_resumable(c->sm, timeout);
		char maxs[24];
		snprintf(maxs, sizeof(maxs), "%.0f", timeout);
		xml_set_attr(ok, "id", c->sm->id);
		xml_set_attr(ok, "resume", "true");
		xml_set_attr(ok, "max", maxs);
	}
	log_info("c2s %llu from %s: stream management enabled for %s%s", (unsigned long long)c->st->id,
	         c->st->ip, c->full_jid, c->sm->id[0] != '\0' ? " (resumable)" : "");
}

static void c2s_sm_enable(struct c2s *c, struct xml_node *el)
{
	if (c->sm != NULL) {
		c2s_sm_failed(c, "unexpected-request");
		return;
	}
	struct xml_node *ok = xml_new("enabled", NS_SM);
	c2s_sm_start(c, el, ok);
	c2s_send(c, ok);
	xml_unref(&ok);
}

/* A stream management element of a bound session (<enable/>, <r/>, <a/>,
 * <resume/>); false when the stream closed. */
static void c2s_sm_element(struct c2s *c, struct xml_node *el)
{
	if (xml_is(el, "enable", NS_SM)) {
		c2s_sm_enable(c, el);
	} else if (c->sm == NULL || xml_is(el, "resume", NS_SM)) {
		c2s_sm_failed(c, "unexpected-request");
	} else if (xml_is(el, "r", NS_SM)) {
		c2s_sm_answer(c);
	} else if (xml_is(el, "a", NS_SM)) {
		if (c2s_sm_acked(c, xml_attr(el, "h")))
			c->sm->request_out = false;
	} else {
		c2s_fail(c, STE_UNSUPPORTED_STANZA_TYPE, NULL);
	}
}

/* A message made for this session alone: an archive query's result
 * (XEP-0313) or a carbon copy (XEP-0280).  The message it carries went to
 * its own addressee and into the archive; once the session is gone the
 * wrapper means nothing to another one (a client ignores results of a
 * query it did not send, XEP-0313 §9.2). */
static bool c2s_sm_session_only(const struct xml_node *msg)
{
	return xml_child(msg, "result", "urn:xmpp:mam:2") != NULL ||
	       xml_child(msg, "received", NS_CARBONS) != NULL || xml_child(msg, "sent", NS_CARBONS) != NULL;
}

/* The session ends for good: what the client never acknowledged is not
 * lost.  Messages go to offline storage with a <delay/> saying when they
 * first came, also for clients that read the archive (it may not hold
 * them: preferences, hints, retention); iq requests are answered with an
 * error as for a resource that is gone; the rest (presence, iq results,
 * errors, archive results and carbon copies) is dropped.  A message to
 * the bare JID that went to several sessions at once is stored only when
 * none of the others that got it is still open and available
 * (sm_copies_leave): the one still there has it, and stores it in turn if
 * it ends without its client's acknowledgement.  What is settled leaves
 * the queue: settling again (the session is let go, then freed) takes
 * only what came since.  The stores are the session's own: no stream
 * being handled meanwhile (one whose bind replaced it) waits for them. */
static void c2s_sm_settle(struct c2s *c)
{
	if (c->sm == NULL)
		return;
	struct barrier *outer = barrier_enter(NULL);
	c2s_sm_held_written(c->sm, (size_t)-1);
	struct c2s_sm_entry e;
	unsigned stored = 0, elsewhere = 0, bounced = 0, dropped = 0;
	struct jid bare = { 0 };
	jid_set(&bare, c->session.jid.node, c->session.jid.domain, NULL);
	while (c2s_sm_pop(c->sm, &e)) {
		struct xml_node *el = e.el;
		const char *type = xml_attr(el, "type");
		bool kept = e.copies != NULL && sm_copies_leave(e.copies, &c->session);
		/* The devices told of it already: push counts it once each. */
		const char *own = c->session.jid.resource;
		const char *const *told = e.told ? &own : NULL;
		size_t ntold = e.told ? 1 : 0;
		if (e.copies != NULL) {
			if (e.told)
				sm_copies_tell(e.copies, own);
			told = sm_copies_told(e.copies, &ntold);
		}
		if (xml_is(el, "iq", NS_CLIENT)) {
			if (type != NULL && (strcmp(type, "get") == 0 || strcmp(type, "set") == 0)) {
				router_bounce(el, SE_SERVICE_UNAVAILABLE, NULL);
				bounced++;
			} else {
				dropped++;
			}
		} else if (kept) {
			elsewhere++; /* a message to the bare JID that another session has */
		} else if (xml_is(el, "message", NS_CLIENT) &&
		           (type == NULL || strcmp(type, "chat") == 0 || strcmp(type, "normal") == 0) &&
		           !c2s_sm_session_only(el)) {
			if (xml_child(el, "delay", NS_DELAY) == NULL) {
				char stamp[XEP82_STAMP_LEN];
				xep82_stamp(stamp, (int64_t)e.stamp);
				struct xml_node *d = xml_add_child(el, "delay", NS_DELAY);
				xml_set_attr(d, "from", c->host->name);
				xml_set_attr(d, "stamp", stamp);
			}
			if (c2s_sm_hook_message(c, HOOK_OFFLINE_MESSAGE, el, &bare, NULL, told, ntold) ==
			    HOOK_STOP) {
				stored++;
			} else {
				router_bounce(el, SE_SERVICE_UNAVAILABLE, NULL);
				bounced++;
			}
		} else {
			dropped++;
		}
		sm_copies_unref(&e.copies);
		xml_unref(&el);
	}
	jid_clear(&bare);
	barrier_leave(outer);
	if (stored + elsewhere + bounced + dropped > 0)
		log_info("c2s: session %s ended with %u unacknowledged stanzas: %u messages to offline "
		         "storage, %u kept by another session, %u bounced, %u dropped (presence, results, "
		         "copies)",
		         c->full_jid, stored + elsewhere + bounced + dropped, stored, elsewhere, bounced,
		         dropped);
}

static void c2s_free(struct c2s *c);

static void c2s_sm_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	struct c2s *c = w->data;
	if (c->st != NULL)
		return;
	if (c->session.user != NULL)
		log_info("c2s: detached session %s expired: %zu stanzas unacknowledged", c->full_jid,
		         c2s_sm_queued_count(c));
	else /* let go (c2s_session_kick): settled then */
		log_info("c2s: detached session %s replaced", c->full_jid);
	c2s_free(c);
}

static void c2s_sm_expire_soon(struct c2s *c)
{
	ev_timer_stop(c->loop, &c->sm_timer);
	ev_timer_set(&c->sm_timer, 0, 0);
	ev_timer_start(c->loop, &c->sm_timer);
}

/* End detached session c at once, as its expiry would (c2s_free: its
 * unacknowledged messages go to offline storage), to make room under
 * limit. */
static void c2s_sm_end_now(struct c2s *c, const char *limit)
{
	log_info("c2s: detached session %s ends to make room (%s): %zu stanzas unacknowledged", c->full_jid,
	         limit, c2s_sm_queued_count(c));
	c2s_free(c);
}

struct c2s_oldest {
	const struct ip_count *ipc;
	struct c2s *c;
};

static void c2s_oldest_of_ip(struct c2s_sm *sm, void *ctx)
{
	struct c2s_oldest *od = ctx;
	struct c2s *c = sm->owner;
	if (c->st == NULL && c->ipc == od->ipc && (od->c == NULL || c->detached_at < od->c->detached_at))
		od->c = c;
}

/* c was let in over its address's limit (ip_over) and holds a session
 * now that did not wait from that address (bound, or resumed from
 * another address): it is over no more, and the sessions of the address
 * that have waited longest end until it is within its limit again. */
static void c2s_ip_settle(struct c2s *c)
{
	if (!c->ip_over)
		return;
	struct ip_count *ipc = c->ipc;
	c->ip_over = false;
	ipc->over--;
	unsigned max = c->limits->max_conn_per_ip;
	while (max > 0 && ipc->count > max + ipc->over) {
		struct c2s_oldest od = { .ipc = ipc };
		c2s_sm_foreach(c2s_oldest_of_ip, &od);
		if (od.c == NULL)
			break;
		c2s_sm_end_now(od.c, "limits.max_connections_per_ip");
	}
}

/* c gives its place up: c2s_free, or a connection that a resumption
 * replaced and that closes now. */
static void c2s_ip_leave(struct c2s *c)
{
	struct ip_count *ipc = c->ipc;
	if (ipc == NULL)
		return;
	if (c->st == NULL)
		ipc->detached--;
	if (c->ip_over)
		ipc->over--;
	c->ip_over = false;
	c->ipc = NULL;
	ip_release(ipc);
}

/* The connection of a resumable session is gone: keep the session. */
static void c2s_sm_detach(struct c2s *c)
{
	struct stream *st = c->st;
	c->out_base += st->bytes_out + st->out.len + c->held.len;
	log_info("c2s %llu from %s: connection of %s lost: session kept for resumption for %.0f s "
	         "(%zu stanzas unacknowledged)",
	         (unsigned long long)st->id, st->ip, c->full_jid, c->sm->resume_timeout,
	         c2s_sm_queued_count(c));
	c->st = NULL;
	c->session.detached = true;
	c->detached_at = ev_now(c->loop);
	/* The session keeps the connection's place: what one address holds
	 * stays within limits.max_connections_per_ip. */
	c->ipc->detached++;
	c2s_total--;
	ev_timer_stop(c->loop, &c->fail_timer);
	ev_timer_set(&c->sm_timer, c->sm->resume_timeout, 0);
	ev_timer_start(c->loop, &c->sm_timer);
	/* Held output that passes now goes to the queue only. */
	c2s_release_held(c);
}

/* After a resumption, once nothing is held for earlier input: <resumed/>
 * (inline in SASL2: the <success/> that carries it, and the stream
 * features after it) and the unacknowledged stanzas, in order. */
static void c2s_sm_resume_ready(struct c2s *c)
{
	if (!c->resume_wait || c->st == NULL || barrier_busy(c->barrier))
		return;
	c->resume_wait = false;
	/* Everything held passed: it is in the queue now. */
	c2s_sm_held_written(c->sm, (size_t)-1);
	buf_consume(&c->held, c->held.len);
	c->nsegs = 0;
	char h[16];
	snprintf(h, sizeof(h), "%u", c->sm->in);
	/* SASL2: <resumed/> goes inside the waiting <success/>. */
	struct xml_node *success = c->resume_success;
	c->resume_success = NULL;
	struct xml_node *ok =
	        success != NULL ? xml_add_child(success, "resumed", NS_SM) : xml_new("resumed", NS_SM);
	xml_set_attr(ok, "previd", c->sm->id);
	xml_set_attr(ok, "h", h);
	if (success != NULL) {
		stream_send(c->st, success, NS_CLIENT);
		xml_unref(&success);
		c2s_send_features(c); /* XEP-0388: the features follow <success/> */
	} else {
		stream_send(c->st, ok, NS_CLIENT);
		xml_unref(&ok);
	}
	size_t n = c2s_sm_queued_count(c);
	for (size_t i = 0; i < n; i++)
		stream_send(c->st, c2s_sm_entry(c->sm, i)->el, NS_CLIENT);
	/* The device is back (push counts anew): what it is sent again is
	 * counted if it is stored after all. */
	c2s_sm_untell(c->sm);
	log_info("c2s %llu from %s: session %s resumed: %zu stanzas sent again",
	         (unsigned long long)c->st->id, c->st->ip, c->full_jid, n);
	struct hook_session hs = { .session = &c->session };
	hook_run(c->session.host, HOOK_SESSION_RESUMED, &hs);
	if (n > 0)
		c2s_sm_request(c);
	if (c->st->paused)
		stream_resume(c->st);
}

/* <resume/> el on the authenticated stream n, after SASL1 (before bind)
 * or inline in SASL2's <authenticate/>: the session of previd, if it is
 * n's user's, takes n's connection over (*o_r; its own connection, if
 * still open, closes with <conflict/>) and acknowledges h.  Then n is
 * gone or closing: the caller uses *o_r only.  On C2S_RESUMED, o waits
 * (resume_wait) until c2s_sm_resume_ready can write the answer. */
static enum c2s_resume_result c2s_sm_takeover(struct c2s *n, const struct xml_node *el, struct c2s **o_r,
                                              const char **condition_r)
{
	struct c2s_sm *sm = c2s_sm_find(xml_attr(el, "previd"));
	struct c2s *o = sm != NULL ? sm->owner : NULL;
	*o_r = NULL;
	*condition_r = NULL;
	if (o == NULL || o->host != n->host || o->session.user == NULL || o->sm_ended ||
	    strcmp(o->user, n->user) != 0) {
		log_info("c2s %llu from %s: %s@%s asked to resume an unknown session",
		         (unsigned long long)n->st->id, n->st->ip, n->user, n->host->name);
		*condition_r = "item-not-found";
		return C2S_RESUME_FAILED;
	}
	uint32_t h;
	if (!c2s_sm_parse_h(xml_attr(el, "h"), &h)) {
		c2s_fail(n, STE_INVALID_XML, "h must be a number from 0 to 4294967295");
		return C2S_RESUME_CLOSED;
	}
	/* Swap the connections: o (the session) takes n's stream; n keeps
	 * o's old one, if any, and closes it. */
	struct stream *old = o->st;
	if (old != NULL)
		o->out_base += old->bytes_out + old->out.len;
	o->st = n->st;
	o->st->owner = o;
	o->lc = n->lc;
	o->limits = n->limits;
	memcpy(o->stream_id, n->stream_id, sizeof(o->stream_id));
	memcpy(o->lang, n->lang, sizeof(o->lang));
	o->header_sent = true;
	/* The places swap too: o holds n's; n, o's (a detached session's,
	 * or the old connection's, which closes and gives it up now). */
	struct ip_count *ipc = o->ipc;
	bool over = o->ip_over;
	o->ipc = n->ipc;
	o->ip_over = n->ip_over;
	n->ipc = ipc;
	n->ip_over = over;
	n->st = old;
	if (old != NULL) {
		old->owner = n;
		log_info("c2s %llu from %s: session %s resumed from another connection: closing this one",
		         (unsigned long long)old->id, old->ip, o->full_jid);
		c2s_ip_leave(n);
		c2s_fail(n, STE_CONFLICT, "the session was resumed from another connection");
	} else {
		c2s_free(n); /* without a stream: gives the detached session's place up */
	}
	ev_timer_stop(o->loop, &o->sm_timer);
	o->session.detached = false;
	o->sm_ended = false;
	snprintf(o->session.ip, sizeof(o->session.ip), "%s", o->st->ip);
	o->session.port = o->st->port;
	snprintf(o->session.tls, sizeof(o->session.tls), "%s",
	         o->st->ssl != NULL && o->st->tls_done ? SSL_get_version(o->st->ssl) : "");
	o->sm->request_out = false;
	/* An answer still waiting was for the connection just replaced. */
	xml_unref(&o->resume_success);
	/* Let in over the limit for a detached session of its address: that
	 * place was given up just now, unless the session waited elsewhere. */
	c2s_ip_settle(o);
	*o_r = o;
	if (!c2s_sm_acked(o, xml_attr(el, "h")))
		return C2S_RESUME_CLOSED;
	o->resume_wait = true;
	return C2S_RESUMED;
}

/* <resume/> after SASL1, before bind.  True when input must pause. */
static bool c2s_sm_resume(struct c2s *n, struct xml_node *el)
{
	struct c2s *o;
	const char *condition;
	switch (c2s_sm_takeover(n, el, &o, &condition)) {
	case C2S_RESUME_FAILED: c2s_sm_failed(n, condition); return false;
	case C2S_RESUME_CLOSED: return true;
	case C2S_RESUMED: break;
	}
	c2s_sm_resume_ready(o);
	return o->resume_wait;
}

/* ---- stanzas of a bound session --------------------------------------------------------- */

static bool valid_type(const char *type, const char *const *allowed)
{
	for (; *allowed != NULL; allowed++)
		if (strcmp(type, *allowed) == 0)
			return true;
	return false;
}

static void c2s_handle_session_stanza(struct c2s *c, struct xml_node *el)
{
	enum stanza_kind kind = stanza_kind(el);
	/* A <message/> in another namespace than the stream's content
	 * namespace is no stanza (RFC 6120 §4.9.3.24): a child element may
	 * declare its own default namespace. */
	if (kind != STANZA_OTHER && strcmp(el->ns, NS_CLIENT) != 0)
		kind = STANZA_OTHER;
	stats.in[kind]++;
	if (kind != STANZA_OTHER)
		c2s_stamp_lang(c, el);
	if (kind == STANZA_OTHER) {
		struct hook_packet hp = { .stanza = el, .session = &c->session };
		bool inactive = c->session.inactive;
		if (hook_run(c->host, HOOK_C2S_NONZA, &hp) != HOOK_STOP)
			c2s_fail(c, STE_UNSUPPORTED_STANZA_TYPE, NULL);
		else if (inactive && !c->session.inactive && c->sm != NULL)
			c2s_sm_untell(c->sm); /* active again: push counts anew */
		return;
	}
	/* 'from': absent, or the session's full or bare JID (RFC 6120 §8.1.2.1). */
	const char *from = xml_attr(el, "from");
	if (from != NULL) {
		struct jid fj;
		const char *err;
		bool ok = jid_parse(from, &fj, &err) == 0;
		if (ok) {
			ok = jid_bare_equal(&fj, &c->session.jid) &&
			     (fj.resource == NULL || strcmp(fj.resource, c->session.jid.resource) == 0);
			jid_clear(&fj);
		}
		if (!ok) {
			c2s_fail(c, STE_INVALID_FROM, "'from' does not match the bound JID");
			return;
		}
	}
	xml_set_attr(el, "from", c->full_jid);

	const char *type = xml_attr(el, "type");
	if (kind == STANZA_IQ) {
		static const char *const iq_types[] = { "get", "set", "result", "error", NULL };
		if (type == NULL || !valid_type(type, iq_types) || xml_attr(el, "id") == NULL) {
			c2s_iq_error(c, el, SE_BAD_REQUEST, "an iq needs an id and a valid type");
			return;
		}
		bool request = type[0] == 'g' || type[0] == 's';
		if (request && xml_element_count(el) != 1) {
			c2s_iq_error(c, el, SE_BAD_REQUEST, "an iq get or set has exactly one child element");
			return;
		}
		struct xml_node *payload = xml_first_element(el);
		if (request && payload != NULL && xml_attr(el, "to") == NULL) {
			if (xml_is(payload, "session", NS_SESSION)) {
				struct xml_node *res = stanza_iq_result(el);
				c2s_send(c, res);
				xml_unref(&res);
				return;
			}
			if (xml_is(payload, "bind", NS_BIND)) {
				c2s_iq_error(c, el, SE_NOT_ALLOWED, "this stream is already bound");
				return;
			}
		}
	}

	struct jid own = { 0 };
	const struct jid *to;
	const char *to_s = xml_attr(el, "to");
	if (to_s != NULL) {
		if (c->to_cache_str == NULL || strcmp(c->to_cache_str, to_s) != 0) {
			struct jid parsed;
			const char *err;
			if (jid_parse(to_s, &parsed, &err) != 0) {
				struct xml_node *reply = stanza_error_reply(el, SE_JID_MALFORMED, err);
				if (reply != NULL) {
					xml_set_attr(reply, "from", NULL);
					c2s_send(c, reply);
					xml_unref(&reply);
				}
				return;
			}
			jid_clear(&c->to_cache);
			free(c->to_cache_str);
			c->to_cache = parsed;
			c->to_cache_str = xstrdup(to_s);
		}
		to = &c->to_cache;
	} else if (kind == STANZA_PRESENCE) {
		/* Presence broadcast: the session's own state. */
		if (type == NULL) {
			const char *prio = xml_child_text(el, "priority", NULL);
			int p = prio != NULL ? atoi(prio) : 0;
			c->session.priority = p < -128 ? -128 : p > 127 ? 127 : p;
			c->session.available = true;
			if (c->session.presence != NULL)
				xml_unref(&c->session.presence);
			/* A compact copy: the parsed stanza's arena is mostly empty. */
			c->session.presence = xml_copy(el);
		} else if (strcmp(type, "unavailable") == 0) {
			c->session.available = false;
			if (c->session.presence != NULL)
				xml_unref(&c->session.presence);
		}
		struct hook_packet hp = {
			.from = &c->session.jid, .to = NULL, .stanza = el, .session = &c->session
		};
		hook_run(c->host, HOOK_USER_SEND_PACKET, &hp);
		return;
	} else {
		/* No 'to': the user's own account handles it. */
		jid_set(&own, c->session.jid.node, c->session.jid.domain, NULL);
		to = &own;
	}
	struct hook_packet hp = { .from = &c->session.jid, .to = to, .stanza = el, .session = &c->session };
	if (hook_run(c->host, HOOK_USER_SEND_PACKET, &hp) == HOOK_CONTINUE)
		router_route(el, &c->session.jid, to);
	jid_clear(&own);
}

static bool c2s_stanza(struct stream *st, struct xml_node *el)
{
	struct c2s *c = st->owner;
	bool pause = false;
	switch (c->state) {
	case C2S_HEADER:
		c2s_fail(c, STE_NOT_WELL_FORMED, "stanza before the stream header");
		pause = true;
		break;
	case C2S_OPEN:
		if (c->upgrade != NULL) {
			pause = c2s_upgrade_input(c, el);
		} else if (xml_is(el, "starttls", NS_TLS)) {
			if (st->ssl != NULL || c->lc->starttls == STARTTLS_OFF || !tls_available()) {
				stream_write_str(st, "<failure xmlns='" NS_TLS "'/>");
				stream_close(st, -1, NULL);
			} else {
				stream_write_str(st, "<proceed xmlns='" NS_TLS "'/>");
				c->state = C2S_HEADER;
				c->header_sent = false;
				stream_start_tls(st);
			}
			pause = true;
		} else if (xml_is(el, "auth", NS_SASL)) {
			pause = c2s_handle_auth(c, el);
		} else if (xml_is(el, "response", NS_SASL)) {
			pause = c2s_handle_response(c, el);
		} else if (xml_is(el, "abort", NS_SASL)) {
			sasl_free(&c->sasl);
			c->sasl2 = false;
			c2s_send_sasl(c, "failure", "aborted", NULL, 0);
		} else if (xml_is(el, "authenticate", NS_SASL2)) {
			pause = c2s_handle_authenticate(c, el);
		} else if (xml_is(el, "response", NS_SASL2)) {
			pause = c2s_handle_response(c, el);
		} else if (xml_is(el, "abort", NS_SASL2)) {
			sasl_free(&c->sasl);
			c->sasl2 = true;
			c2s_send_sasl(c, "failure", "aborted", NULL, 0);
		} else if (xml_is(el, "enable", NS_SM) || xml_is(el, "resume", NS_SM)) {
			c2s_sm_failed(c, "unexpected-request");
		} else if (xml_is(el, "iq", NS_CLIENT)) {
			pause = c2s_handle_preauth_iq(c, el);
		} else {
			c2s_fail(c, STE_NOT_AUTHORIZED, "authenticate first");
			pause = true;
		}
		break;
	case C2S_BIND:
		if (xml_is(el, "iq", NS_CLIENT) && xml_child(el, "bind", NS_BIND) != NULL) {
			c2s_handle_bind(c, el);
		} else if (xml_is(el, "iq", NS_CLIENT) && xml_child(el, "session", NS_SESSION) != NULL) {
			c2s_iq_error(c, el, SE_NOT_ALLOWED, "bind a resource first");
		} else if (xml_is(el, "resume", NS_SM)) {
			/* Even when no longer offered (a reload): a session that
			 * waits may still be resumed. */
			pause = c2s_sm_resume(c, el);
		} else if (xml_is(el, "enable", NS_SM)) {
			c2s_sm_failed(c, "unexpected-request");
		} else if (xml_is(el, "compress", NS_COMPRESS)) {
			c2s_handle_compress(c, el);
			pause = c->state == C2S_HEADER;
		} else {
			c2s_fail(c, STE_NOT_AUTHORIZED, "bind a resource first");
			pause = true;
		}
		break;
	case C2S_SESSION: {
		struct barrier *outer = barrier_enter(c->barrier);
		/* Once enabled, stream management stays for the session (also
		 * when a reload turns it off for new ones). */
		if (el->ns != NULL && strcmp(el->ns, NS_SM) == 0 &&
		    (c->sm != NULL || server_config()->stream_management.enabled)) {
			c2s_sm_element(c, el);
		} else {
			/* Counted when handed on: an <a/> written later waits, behind
			 * the barrier, for what it hands on to be durable. */
			if (c->sm != NULL && c2s_sm_is_stanza(el))
				c->sm->in++;
			c2s_handle_session_stanza(c, el);
		}
		barrier_leave(outer);
		break;
	}
	}
	xml_unref(&el);
	return pause;
}

/* ---- lifecycle --------------------------------------------------------------------------- */

static void c2s_tls_ready(struct stream *st)
{
	/* Nothing to do: the client sends a new stream header. */
}

static void c2s_tick(struct stream *st, double now)
{
	struct c2s *c = st->owner;
	const struct limits_config *l = c->limits;
	if (c->state != C2S_SESSION) {
		if (l->handshake_timeout > 0 && now - c->opened > l->handshake_timeout)
			c2s_fail(c, STE_CONNECTION_TIMEOUT, "login took too long");
		return;
	}
	if (l->idle_timeout > 0 && now - st->last_in > l->idle_timeout) {
		c2s_fail(c, STE_CONNECTION_TIMEOUT, "idle for too long");
		return;
	}
	if (c->sm != NULL && !c->sm->request_out && !c->resume_wait && c2s_sm_queued_count(c) > 0)
		c2s_sm_request(c);
	if (l->keepalive > 0 && now - st->last_out > l->keepalive && st->out.len == 0)
		stream_write(st, " ", 1);
}

static void c2s_anonymous_removed(enum storage_result res, void *ctx)
{
	if (res != STORAGE_OK && res != STORAGE_NOT_FOUND)
		log_warning("c2s: could not remove the data of an anonymous user: %s",
		            res == STORAGE_TEMPFAIL ? "storage unavailable" : "storage error");
}

static void c2s_closed(struct stream *st)
{
	struct c2s *c = st->owner;
	/* While the server stops, a lost connection ends its session: the
	 * sweep of detached sessions has run, and nothing could resume it. */
	if (c->sm != NULL && c->sm->id[0] != '\0' && !c->sm_ended && c->session.user != NULL &&
	    c->state == C2S_SESSION && !server.stopping) {
		c2s_sm_detach(c);
		return;
	}
	c2s_free(c);
}

/* End the session (if any) and free c; c->st may be NULL (detached). */
static void c2s_free(struct c2s *c)
{
	if (c->session.user != NULL)
		sm_session_close(&c->session);
	c2s_sm_settle(c);
	if (c->anonymous && c->user != NULL) {
		/* Nothing of an anonymous user outlives its stream: what modules
		 * stored for it goes (the stream does not wait for the answer). */
		struct hook_user hu = { .user = c->user };
		hook_run(c->host, HOOK_REMOVE_USER, &hu);
		storage_account_remove(c->host->storage, c->host->name, c->user, c2s_anonymous_removed, NULL);
	}
	if (c->session.presence != NULL)
		xml_unref(&c->session.presence);
	if (c->preauth_pending > 0)
		iq_preauth_detach(c);
	ev_timer_stop(c->loop, &c->fail_timer);
	ev_timer_stop(c->loop, &c->sm_timer);
	/* Work still holding the barrier goes on (a store commits); only the
	 * answers to a client that left are dropped. */
	barrier_free(&c->barrier);
	buf_free(&c->held);
	free(c->segs);
	sasl_free(&c->sasl);
	free(c->declined_user);
	upgrade_free(&c->upgrade);
	sasl_result_clear(&c->upgrade_res);
	c2s_sm_free(&c->sm);
	xml_unref(&c->bind2);
	free(c->user_agent);
	xml_unref(&c->sm_resume);
	xml_unref(&c->resume_success);
	fast_request_clear(&c->fast_req);
	if (c->full_jid != NULL)
		log_info("c2s %llu from %s: session %s closed", (unsigned long long)c->session.id,
		         c->session.ip, c->full_jid);
	jid_clear(&c->session.jid);
	jid_clear(&c->to_cache);
	free(c->to_cache_str);
	free(c->full_jid);
	free(c->user);
	c2s_ip_leave(c);
	if (c->st != NULL)
		c2s_total--;
	free(c);
}

static const struct stream_ops c2s_stream_ops = {
	.stream_start = c2s_stream_start,
	.stanza = c2s_stanza,
	.stream_end = c2s_stream_end,
	.tls_ready = c2s_tls_ready,
	.error = c2s_parse_error,
	.tick = c2s_tick,
	.closed = c2s_closed,
};


/* c2s's own timers, named for the latency monitor. */
static void c2s_auth_delay_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	latency_begin(LATENCY_TIMER, "c2s-auth-delay");
	c2s_fail_timer_cb(loop, w, revents);
	latency_end();
}

static void c2s_sm_expiry_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	latency_begin(LATENCY_TIMER, "c2s-sm-expiry");
	c2s_sm_timer_cb(loop, w, revents);
	latency_end();
}
static struct c2s *c2s_new(struct ev_loop *loop, const struct listen_config *lc,
                           const struct limits_config *limits, const char *ip)
{
	struct c2s *c = xcalloc(1, sizeof(*c));
	c->lc = lc;
	c->limits = limits;
	c->ipc = ip_take(ip, limits, &c->ip_over);
	c->opened = ev_now(loop);
	c->barrier = barrier_new(c2s_release_held, c);
	c->loop = loop;
	ev_timer_init(&c->fail_timer, c2s_auth_delay_timer_cb, 0, 0);
	c->fail_timer.data = c;
	ev_timer_init(&c->sm_timer, c2s_sm_expiry_timer_cb, 0, 0);
	c->sm_timer.data = c;
	c2s_total++;
	return c;
}

void c2s_accept(struct ev_loop *loop, int fd, const char *ip, unsigned port, const struct listen_config *lc,
                const struct limits_config *limits)
{
	if (!c2s_ip_admits(ip, limits)) {
		log_notice("c2s: refusing a connection from %s: already %u connections and waiting "
		           "sessions from that address (limits.max_connections_per_ip)",
		           ip, ip_get(ip, false)->count);
		close(fd);
		return;
	}
	struct c2s *c = c2s_new(loop, lc, limits, ip);
	struct xml_parser_limits pl = {
		.max_stanza = limits->max_stanza_size,
		.max_depth = limits->max_depth,
		.max_attrs = limits->max_attrs,
	};
	c->st = stream_new(loop, fd, ip, port, &pl, limits->max_output, lc->direct_tls, &c2s_stream_ops, c);
	stream_set_rate(c->st, server_config()->shaper.c2s);
	log_debug("c2s %llu: connection from %s port %u", (unsigned long long)c->st->id, ip, port);
}

void c2s_attach(struct stream *st, const struct listen_config *lc, const struct limits_config *limits)
{
	struct c2s *c = c2s_new(st->loop, lc, limits, st->ip);
	c->st = st;
	st->ops = &c2s_stream_ops;
	st->owner = c;
	stream_set_rate(st, server_config()->shaper.c2s);
	log_debug("c2s %llu: client stream from %s port %u", (unsigned long long)st->id, st->ip, st->port);
}

static void c2s_shutdown_one(struct stream *st, void *ctx)
{
	if (st->ops != &c2s_stream_ops)
		return;
	struct c2s *c = st->owner;
	c->sm_ended = true; /* also when the stream was closing already */
	c2s_fail(c, STE_SYSTEM_SHUTDOWN, "the server is shutting down");
	/* No acknowledgement comes any more, and the stream may not finish
	 * closing before the modules stop: the unacknowledged messages go to
	 * offline storage now. */
	c2s_sm_settle(c);
}

/* Detached sessions (of host, or all when NULL) end now; *ctx counts. */
struct c2s_detached_sweep {
	const struct host *host;
	unsigned count;
};

static void c2s_end_detached(struct c2s_sm *sm, void *ctx)
{
	struct c2s_detached_sweep *ds = ctx;
	struct c2s *c = sm->owner;
	if (c->st != NULL || (ds->host != NULL && c->host != ds->host))
		return;
	ds->count++;
	c2s_free(c);
}

void c2s_shutdown_all(void)
{
	struct c2s_detached_sweep ds = { 0 };
	c2s_sm_foreach(c2s_end_detached, &ds);
	streams_foreach(c2s_shutdown_one, NULL);
}

struct host_sweep {
	const struct host *host;
	const char *user; /* only the streams of this user (c2s_close_user) */
	enum stream_error e;
	const char *text;
	unsigned count;
	bool abort;
};

static void c2s_host_one(struct stream *st, void *ctx)
{
	struct host_sweep *hs = ctx;
	if (st->ops != &c2s_stream_ops)
		return;
	struct c2s *c = st->owner;
	if (c->host != hs->host)
		return;
	if (hs->user != NULL) {
		const char *u = c->user != NULL ? c->user : c->sasl != NULL ? sasl_username(c->sasl) : NULL;
		if (u == NULL || strcmp(u, hs->user) != 0)
			return;
		/* An exchange still running writes nothing more (FAST's
		 * token) and never succeeds. */
		sasl_free(&c->sasl);
	}
	hs->count++;
	if (hs->abort)
		stream_abort(st);
	else if (hs->text != NULL)
		c2s_fail(c, hs->e, hs->text);
}

void c2s_close_host(const struct host *h, enum stream_error e, const char *text)
{
	struct host_sweep hs = { .host = h, .e = e, .text = text };
	struct c2s_detached_sweep ds = { .host = h };
	c2s_sm_foreach(c2s_end_detached, &ds);
	streams_foreach(c2s_host_one, &hs);
}

void c2s_close_user(const struct host *h, const char *user, enum stream_error e, const char *text)
{
	struct host_sweep hs = { .host = h, .user = user, .e = e, .text = text };
	streams_foreach(c2s_host_one, &hs);
}

unsigned c2s_count_host(const struct host *h, bool abort)
{
	struct host_sweep hs = { .host = h, .abort = abort };
	struct c2s_detached_sweep ds = { .host = h };
	c2s_sm_foreach(c2s_end_detached, &ds);
	streams_foreach(c2s_host_one, &hs);
	return hs.count + ds.count;
}
