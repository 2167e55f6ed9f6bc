/*
 * mod_vcard: vcard-temp (XEP-0054).  A user sets their own vCard (an iq set
 * without 'to' or to their own bare JID) and anyone may get a local user's
 * vCard (an iq get to that user's bare JID, answered by the server on the
 * user's behalf); a user with no vCard has an empty <vCard/>.  The vCard is
 * kept as serialized XML text (storage_vcard_get/set).  Loop thread.
 *
 * Invariants:
 * - Only the owner writes a vCard: a set addressed to another JID is
 *   <forbidden/>, and nothing is stored.
 * - A vCard bigger than max_size, serialized, is refused with
 *   <not-acceptable/> and a text saying the limit; nothing is stored.
 * - What is stored parses back through the same walled parser as a
 *   stream; a stored text that no longer parses is logged and answered as
 *   an empty vCard (never an error the client cannot act on).
 * - Every storage call runs through a struct vcard_op on the module's
 *   list; stop answers their requests and cancels their storage calls.
 *   A temporary failure is answered with <service-unavailable/> of type
 *   'wait', never as "no vCard".
 */
#include "builtin.h"
#include "server/host.h"
#include "server/hooks.h"
#include "server/log.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define NS_VCARD "vcard-temp"

struct vcard_settings {
	size_t max_size;
};

static const struct opt_def vcard_options[] = {
	{ "max_size", OPT_SIZE, offsetof(struct vcard_settings, max_size), "64K", NULL, 1024,
	  16 * 1024 * 1024, "largest vCard a user may store (bytes, serialized); a bigger one is "
	  "refused with not-acceptable" },
	OPT_END
};

struct vcard_state;

struct vcard_op {
	struct pending_link link;      /* first: the state's list of ops */
	struct vcard_state *vs;        /* NULL once orphaned */
	struct iq_request *req;
	struct storage_req *sreq;
	char *user;                    /* whose vCard */
};

struct vcard_state {
	struct host *host;
	const struct vcard_settings *set;
	struct pending_list ops;
};

static struct vcard_op *op_new(struct vcard_state *vs, struct iq_request *req, const char *user)
{
	struct vcard_op *op = xcalloc(1, sizeof(*op));
	op->vs = vs;
	op->req = req;
	op->user = xstrdup(user);
	pending_add(&vs->ops, &op->link);
	return op;
}

static void op_free(struct vcard_op *op)
{
	pending_remove(&op->link);
	free(op->user);
	free(op);
}

/* Answer a failed storage call (res is not OK and not NOT_FOUND). */
static void answer_failure(struct iq_request *req, enum storage_result res)
{
	if (res == STORAGE_TEMPFAIL)
		builtin_iq_error_wait(req, SE_SERVICE_UNAVAILABLE,
		                      "the vCard store is unavailable; try again later");
	else
		iq_error(req, SE_INTERNAL_SERVER_ERROR, NULL);
}

static void vcard_read(enum storage_result res, const char *text, void *ctx)
{
	struct vcard_op *op = ctx;
	op->sreq = NULL;
	if (op->vs == NULL) {
		op_free(op);
		return;
	}
	struct iq_request *req = op->req;
	if (res != STORAGE_OK && res != STORAGE_NOT_FOUND) {
		answer_failure(req, res);
		op_free(op);
		return;
	}
	struct xml_node *vcard = NULL;
	if (res == STORAGE_OK) {
		const char *err = NULL;
		size_t len = strlen(text);
		const struct xml_parser_limits lim = {
			.max_stanza = len + 1, .max_depth = 64, .max_attrs = 64,
		};
		vcard = xml_parse_string(text, len, NULL, &lim, &err);
		if (vcard == NULL || !xml_is(vcard, "vCard", NS_VCARD)) {
			log_error("vcard: the stored vCard of %s@%s does not parse (%s); answering an "
			          "empty one", op->user, op->vs->host->name,
			          err != NULL ? err : "another element");
			xml_unref(&vcard);
		}
	}
	if (vcard == NULL)
		vcard = iq_payload_new("vCard", NS_VCARD);   /* XEP-0054 §3.1: none yet */
	iq_result(req, vcard);
	xml_unref(&vcard);
	op_free(op);
}

static void vcard_written(enum storage_result res, void *ctx)
{
	struct vcard_op *op = ctx;
	op->sreq = NULL;
	if (op->vs == NULL) {
		op_free(op);
		return;
	}
	if (res == STORAGE_OK) {
		/* mod_avatar updates the photo hash in the user's presence. */
		struct hook_vcard hv = { .user = op->user, .vcard = op->req->payload };
		hook_run(op->vs->host, HOOK_VCARD_SET, &hv);
		iq_result(op->req, NULL);
	} else
		answer_failure(op->req, res);
	op_free(op);
}

static void vcard_iq(struct iq_request *req, void *ctx)
{
	struct vcard_state *vs = ctx;
	struct host *h = vs->host;
	if (!xml_is(req->payload, "vCard", NS_VCARD) || req->to.node == NULL) {
		iq_error(req, SE_BAD_REQUEST, NULL);
		return;
	}
	if (strcmp(req->type, "get") == 0) {
		struct vcard_op *op = op_new(vs, req, req->to.node);
		op->sreq = storage_vcard_get(h->storage, h->name, op->user, vcard_read, op);
		return;
	}
	/* XEP-0054 §3.2: a user publishes only their own vCard. */
	if (req->from.node == NULL || !jid_bare_equal(&req->from, &req->to)) {
		iq_error(req, SE_FORBIDDEN, "only the owner may set a vCard");
		return;
	}
	char *text = xml_to_string(req->payload, NULL);
	size_t len = strlen(text);
	if (len > vs->set->max_size) {
		char *msg = xasprintf("the vCard is too large (%zu bytes; at most %zu)", len,
		                      vs->set->max_size);
		iq_error(req, SE_NOT_ACCEPTABLE, msg);
		free(msg);
		free(text);
		return;
	}
	struct vcard_op *op = op_new(vs, req, req->to.node);
	op->sreq = storage_vcard_set(h->storage, h->name, op->user, text, vcard_written, op);
	free(text);
}

static const struct builtin_iq vcard_iqs[] = {
	{ IQ_SCOPE_USER, NS_VCARD, IQ_PARALLEL, vcard_iq },
};

static int vcard_start(struct host *h, const void *settings, void **state_r, char **error_r)
{
	struct vcard_state *vs = xcalloc(1, sizeof(*vs));
	vs->host = h;
	vs->set = settings;
	if (builtin_iq_register(h, vcard_iqs, ARRAY_SIZE(vcard_iqs), vs, error_r) < 0) {
		free(vs);
		return -1;
	}
	host_add_feature(h, NS_VCARD);
	host_add_user_feature(h, NS_VCARD);
	*state_r = vs;
	return 0;
}

static void vcard_stop(struct host *h, void *state)
{
	struct vcard_state *vs = state;
	builtin_iq_unregister(h, vcard_iqs, ARRAY_SIZE(vcard_iqs));
	host_remove_feature(h, NS_VCARD);
	host_remove_user_feature(h, NS_VCARD);
	while (vs->ops.head != NULL) {
		struct vcard_op *op = (struct vcard_op *)(void *)vs->ops.head;
		pending_remove(&op->link);
		iq_error(op->req, SE_SERVICE_UNAVAILABLE, "the service is shutting down");
		op->req = NULL;
		op->vs = NULL;
		if (op->sreq != NULL) {
			storage_cancel(op->sreq);
			op_free(op);
		}
		/* else: inside its callback, which frees it */
	}
	free(vs);
}

const struct module_def mod_vcard = {
	.name = "vcard",
	.description = "XEP-0054 vcard-temp: users publish their vCard, anyone reads a local "
	               "user's vCard",
	.options = vcard_options,
	.settings_size = sizeof(struct vcard_settings),
	.default_enabled = true,
	.start = vcard_start,
	.stop = vcard_stop,
};
