/*
 * mod_private: private XML storage (XEP-0049, jabber:iq:private).  A user
 * keeps XML elements on the server, one per namespace (the namespace of
 * the element inside <query/>), and reads them back; nobody else can read
 * or write them.  Elements are kept serialized (storage_private_get/set).
 * Loop thread.
 *
 * Invariants:
 * - Only the owner: an iq addressed to another JID is <forbidden/>.
 * - A set stores every child of <query/> or none (one storage transaction);
 *   it is refused whole, before storage is called, when a child has no
 *   namespace or one of jabber:client, jabber:server, jabber:iq:private
 *   (<not-acceptable/>), when two children share a namespace
 *   (<bad-request/>) or when the serialized children exceed max_size
 *   (<not-acceptable/> with a text).
 * - A get names exactly one namespace; an absent one is answered with the
 *   requested element, empty (XEP-0049 §3.2).
 * - Every storage call runs through a struct private_op on the module's
 *   pending list (pending.h); stop answers their requests and cancels
 *   their storage calls.  A
 *   failure is answered through errmap.h (a temporary one is
 *   <resource-constraint/>, type wait), never as "nothing stored".
 * - After a set was stored, the private_set hook runs once for each stored
 *   element, before the result goes out (mod_bookmarks follows the legacy
 *   bookmarks).
 */
#include "builtin.h"
#include "errmap.h"
#include "pending.h"
#include "server/host.h"
#include "lib/log.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define NS_PRIVATE "jabber:iq:private"

struct private_settings {
	size_t max_size;
};

static const struct opt_def private_options[] = {
	{ "max_size", OPT_SIZE, offsetof(struct private_settings, max_size), "64K", NULL, 1024,
	  16 * 1024 * 1024,
	  "largest set a user may store in one request (bytes of the serialized "
	  "elements); a bigger one is refused with not-acceptable" },
	OPT_END
};

struct private_state;

struct private_op {
	struct pending_op p;      /* first: the state's list of ops */
	struct private_state *ps; /* valid while p is listed */
	char *user;
	char *name, *ns; /* get: the element asked for */
};

struct private_state {
	struct host *host;
	const struct private_settings *set;
	struct pending_ops ops;
};

static void op_free(struct pending_op *p)
{
	struct private_op *op = (struct private_op *)p;
	pending_untrack(p);
	free(op->user);
	free(op->name);
	free(op->ns);
	free(op);
}

static struct private_op *op_new(struct private_state *ps, struct iq_request *req)
{
	struct private_op *op = xcalloc(1, sizeof(*op));
	op->ps = ps;
	op->p.req = req;
	op->user = xstrdup(req->from.node);
	pending_track(&ps->ops, &op->p, op_free);
	return op;
}

static void private_read(enum storage_result res, const char *text, void *ctx)
{
	struct private_op *op = ctx;
	if (!pending_resume(&op->p))
		return;
	if (res != STORAGE_OK && res != STORAGE_NOT_FOUND) {
		errmap_iq_storage(op->p.req, res, "the private store");
		op_free(&op->p);
		return;
	}
	struct xml_node *q = iq_payload_new("query", NS_PRIVATE);
	struct xml_node *el = NULL;
	if (res == STORAGE_OK) {
		const char *err = NULL;
		size_t len = strlen(text);
		const struct xml_parser_limits lim = {
			.max_stanza = len + 1,
			.max_depth = 64,
			.max_attrs = 64,
		};
		el = xml_parse_string(text, len, NULL, &lim, &err);
		if (el == NULL || strcmp(el->ns, op->ns) != 0) {
			log_error("private: the stored element %s of %s@%s does not parse (%s); "
			          "answering an empty one",
			          op->ns, op->user, op->ps->host->name,
			          err != NULL ? err : "another namespace");
			xml_unref(&el);
		}
	}
	if (el != NULL) {
		xml_append_copy(q, el);
		xml_unref(&el);
	} else {
		xml_add_child(q, op->name, op->ns);
	}
	iq_result(op->p.req, q);
	xml_unref(&q);
	op_free(&op->p);
}

static void private_written(enum storage_result res, void *ctx)
{
	struct private_op *op = ctx;
	if (!pending_resume(&op->p))
		return;
	if (res == STORAGE_OK) {
		struct iq_request *req = op->p.req;
		for (struct xml_node *el = xml_first_element(req->payload); el != NULL;
		     el = xml_next(el, NULL, NULL)) {
			struct hook_private hp = { .user = op->user, .element = el };
			hook_run(op->ps->host, HOOK_PRIVATE_SET, &hp);
		}
		iq_result(req, NULL);
	} else
		errmap_iq_storage(op->p.req, res, "the private store");
	op_free(&op->p);
}

/* Whether a child's namespace may be stored; answers req when not. */
static bool ns_acceptable(struct iq_request *req, const struct xml_node *el)
{
	static const char *const reserved[] = { "jabber:client", "jabber:server", NS_PRIVATE };
	if (el->ns == NULL || *el->ns == '\0') {
		iq_error(req, SE_NOT_ACCEPTABLE, "the element has no namespace");
		return false;
	}
	for (size_t i = 0; i < ARRAY_SIZE(reserved); i++) {
		if (strcmp(el->ns, reserved[i]) == 0) {
			char *text = xasprintf("the %s namespace cannot be stored", el->ns);
			iq_error(req, SE_NOT_ACCEPTABLE, text);
			free(text);
			return false;
		}
	}
	return true;
}

static void private_set(struct private_state *ps, struct iq_request *req, unsigned n)
{
	struct host *h = ps->host;
	struct private_item *items = xcalloc(n, sizeof(*items));
	size_t count = 0, total = 0;
	for (struct xml_node *el = xml_first_element(req->payload); el != NULL;
	     el = xml_next(el, NULL, NULL)) {
		if (!ns_acceptable(req, el))
			goto out;
		for (size_t i = 0; i < count; i++) {
			if (strcmp(items[i].ns, el->ns) == 0) {
				iq_error(req, SE_BAD_REQUEST, "one element per namespace");
				goto out;
			}
		}
		char *data = xml_to_string(el, NULL);
		total += strlen(data);
		items[count].ns = el->ns;
		items[count++].data = data;
		if (total > ps->set->max_size) {
			char *text =
			        xasprintf("the data is too large (at most %zu bytes)", ps->set->max_size);
			iq_error(req, SE_NOT_ACCEPTABLE, text);
			free(text);
			goto out;
		}
	}
	{
		struct private_op *op = op_new(ps, req);
		pending_wait_storage(&op->p, storage_private_set(h->storage, h->name, op->user, items, count,
		                                                 private_written, op));
	}
out:
	for (size_t i = 0; i < count; i++)
		free((char *)items[i].data);
	free(items);
}

static void private_iq(struct iq_request *req, void *ctx)
{
	struct private_state *ps = ctx;
	struct host *h = ps->host;
	/* XEP-0049 §3: one's own data only. */
	if (req->from.node == NULL || strcmp(req->from.domain, h->name) != 0 ||
	    !jid_bare_equal(&req->from, &req->to)) {
		iq_error(req, SE_FORBIDDEN, "private data is the owner's only");
		return;
	}
	if (!xml_is(req->payload, "query", NS_PRIVATE)) {
		iq_error(req, SE_BAD_REQUEST, NULL);
		return;
	}
	unsigned n = xml_element_count(req->payload);
	if (n == 0) {
		iq_error(req, SE_NOT_ACCEPTABLE, "the query holds no element");
		return;
	}
	if (strcmp(req->type, "set") == 0) {
		private_set(ps, req, n);
		return;
	}
	if (n > 1) {
		iq_error(req, SE_BAD_REQUEST, "a get asks for one namespace");
		return;
	}
	struct xml_node *el = xml_first_element(req->payload);
	if (!ns_acceptable(req, el))
		return;
	struct private_op *op = op_new(ps, req);
	op->name = xstrdup(el->name);
	op->ns = xstrdup(el->ns);
	pending_wait_storage(&op->p,
	                     storage_private_get(h->storage, h->name, op->user, op->ns, private_read, op));
}

static const struct builtin_iq private_iqs[] = {
	{ IQ_SCOPE_USER, NS_PRIVATE, IQ_PARALLEL, private_iq },
};

static int private_start(struct host *h, const void *settings, void **state_r, char **error_r)
{
	struct private_state *ps = xcalloc(1, sizeof(*ps));
	ps->host = h;
	ps->set = settings;
	if (builtin_iq_register(h, private_iqs, ARRAY_SIZE(private_iqs), ps, error_r) < 0) {
		free(ps);
		return -1;
	}
	*state_r = ps;
	return 0;
}

static void private_stop(struct host *h, void *state)
{
	struct private_state *ps = state;
	builtin_iq_unregister(h, private_iqs, ARRAY_SIZE(private_iqs));
	pending_stop(&ps->ops);
	free(ps);
}

const struct module_def mod_private = {
	.name = "private",
	.description = "XEP-0049 private XML storage: users keep XML elements on the server, one "
	               "per namespace",
	.options = private_options,
	.settings_size = sizeof(struct private_settings),
	.default_enabled = true,
	.start = private_start,
	.stop = private_stop,
};
