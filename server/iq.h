/*
 * The iq handler registry, per virtual host and namespace (the namespace of
 * the iq's one child element), in the manner of ejabberd's gen_iq_handler:
 *
 *   IQ_SCOPE_SERVER   iqs addressed to the host itself ("example.com")
 *   IQ_SCOPE_USER     iqs addressed to a user's bare JID (or sent with no
 *                     'to', meaning the sender's own account)
 *   IQ_SCOPE_PREAUTH  iqs on a client stream before authentication (in-band
 *                     registration); from is NULL, the remote address is known
 *
 * Disciplines (how requests reach the handler):
 *   IQ_NO_QUEUE   called at once, and must answer before it returns
 *   IQ_ONE_QUEUE  one request in flight per host and namespace; the next
 *                 waits until the previous one is answered (ordered)
 *   IQ_PARALLEL   called at once; answers may come later, in any order
 *
 * A handler answers exactly once with iq_result/iq_error (possibly later,
 * from a storage callback).  If the requesting stream goes away meanwhile the
 * answer is dropped by the router, not by the handler.  Loop thread.
 */
#ifndef PARLEY_IQ_H
#define PARLEY_IQ_H

#include "stanza.h"

struct host;

enum iq_scope { IQ_SCOPE_SERVER, IQ_SCOPE_USER, IQ_SCOPE_PREAUTH, IQ_SCOPE_COUNT };
enum iq_discipline { IQ_NO_QUEUE, IQ_ONE_QUEUE, IQ_PARALLEL };

struct iq_request {
	struct host *host;
	struct jid from;          /* sender (full); empty (domain NULL) for PREAUTH */
	struct jid to;            /* addressee as stamped (bare user or domain) */
	struct xml_node *iq;      /* the request (a reference is held) */
	struct xml_node *payload; /* its one child element */
	const char *type;         /* "get" or "set" */
	const char *ns;           /* payload namespace */
	const char *remote_ip;    /* PREAUTH only */
	/* PREAUTH only: where the answer goes (set by the c2s stream). */
	void (*preauth_reply)(void *stream, struct xml_node *reply);
	void *preauth_stream;
	/* private */
	struct iq_handler *handler;
	bool answered;
	struct iq_request *next;
};

typedef void iq_handler_fn(struct iq_request *req, void *ctx);

/* Register fn for ns in scope on host (replaces nothing: -1 if taken). */
int iq_register(struct host *h, enum iq_scope scope, const char *ns, enum iq_discipline d, iq_handler_fn *fn,
                void *ctx);
void iq_unregister(struct host *h, enum iq_scope scope, const char *ns);
bool iq_has_handler(struct host *h, enum iq_scope scope, const char *ns);

/* Dispatch an iq get/set (exactly one child; the caller checked).  Returns
 * false when no handler is registered (the caller answers
 * service-unavailable or feature-not-implemented).  The request holds its
 * own reference to iq. */
bool iq_dispatch(struct host *h, enum iq_scope scope, struct xml_node *iq, const struct jid *from,
                 const struct jid *to, struct iq_request *preauth_template);

/* Answer: payload (may be NULL) is copied into a result reply; the request is
 * freed. */
void iq_result(struct iq_request *req, const struct xml_node *payload);
/* Answer with a result built by the handler (an <iq type='result'> tree it
 * owns a reference to; consumed).  A complete error reply built from
 * stanza_error_reply (e.g. to change the error type) is accepted too; the
 * id is set from the request, from/to as for iq_result. */
void iq_result_tree(struct iq_request *req, struct xml_node *result);
void iq_error(struct iq_request *req, enum stanza_error e, const char *text);
/* iq_result for a handler whose work goes on after it answers: the hold a
 * set keeps on its sender's barrier (lib/barrier.h) is not released but
 * returned (NULL for a get, or with no barrier), and the caller releases
 * it when that work is done.  Until then the sender's answers wait, from
 * this one on; this one keeps its place before those to later input. */
struct barrier_hold;
struct barrier_hold *iq_result_holding(struct iq_request *req, const struct xml_node *payload);
/* The hold a set keeps on its sender's barrier until it is answered (NULL
 * for a get, or with no barrier; the request keeps it).  A handler that
 * sends the sender stanzas before the answer routes them inside
 * barrier_answer_enter of this hold: they then keep their place before the
 * answers to later input, in the order sent, and the answer comes after
 * them. */
struct barrier_hold *iq_request_hold(const struct iq_request *req);

/* For an iq_result payload: a new tree <name xmlns=ns/>; the caller unrefs. */
struct xml_node *iq_payload_new(const char *name, const char *ns);

/* A pre-auth stream (the preauth_stream of its requests) is going away:
 * answers to its pending requests are dropped, queued ones are discarded.
 * The c2s calls this before freeing the stream. */
void iq_preauth_detach(void *stream);

/* ---- iqs the server sends ----------------------------------------------- */
/* Send iq (a get or set with one child; its id is replaced by a unique
 * one) from from (the host's JID, or a service of it) to to, and call cb
 * once with the answer: the result or error iq (valid during cb), or NULL
 * when none came within timeout seconds or the host stops.  Returns a
 * handle for iq_send_cancel (valid until cb runs).  The answer is taken
 * from stanzas of type result/error addressed to from: the router hands
 * those to iq_response (host JIDs) and services hand them on with it.
 * iq is not consumed (its id, from and to are set on it before it is
 * routed; the caller keeps its reference).  cb never runs inside iq_send,
 * even when the router answers at once. */
typedef void iq_response_fn(struct xml_node *answer, void *ctx);
struct iq_out;
struct iq_out *iq_send(struct host *h, struct xml_node *iq, const struct jid *from, const struct jid *to,
                       double timeout, iq_response_fn *cb, void *ctx);
/* Forget a sent iq: cb will not run. */
void iq_send_cancel(struct iq_out *o);
/* A result or error iq addressed to a JID of h: true when it answered an
 * iq_send (its callback ran). */
bool iq_response(struct host *h, struct xml_node *stanza, const struct jid *from);

void iq_free_host(struct host *h);

#endif
