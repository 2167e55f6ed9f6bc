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
 * - Every storage call or directory lookup runs through a struct vcard_op
 *   on the module's pending list (pending.h); stop answers their requests
 *   and cancels their calls.
 *   A failure is answered through errmap.h (a temporary one, the store's
 *   or the directory's, is <resource-constraint/>, type wait), never as
 *   "no vCard".
 *
 * With source: ldap, vCards come from the directory instead (read-only):
 * the module opens an LDAP store (storage/ldap-store.h: the host's
 * auth.ldap settings, the attribute mapping of the ldap_* options) and
 * hands it to the host for the vcard and search areas (host_set_store); a
 * get reads the vCard from that store as from any other; a set is
 * <not-allowed/>.  What stays here is the cache policy: answers are cached
 * for cache_ttl (an unknown user's empty vCard too, a temporary failure
 * never), and every vCard read from the directory runs the vcard_set hook,
 * so that mod_avatar's photo hash follows the directory when the cached
 * vCard is read again.  Other modules use the cache and the store through
 * modules/vcard.h (mod_avatar's reads, parleyctl ldap-test).
 */
#include "builtin.h"
#include "errmap.h"
#include "pending.h"
#include "vcard.h"
#include "server/host.h"
#include "server/hooks.h"
#include "lib/latency.h"
#include "lib/log.h"
#include "server/server.h"

#include "storage/ldap-store.h"

#include <ev.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define NS_VCARD "vcard-temp"

enum { VCARD_SOURCE_STORAGE, VCARD_SOURCE_LDAP };

struct vcard_settings {
	size_t max_size;
	int source;
	double cache_ttl;
	unsigned cache_size;
	/* source ldap: the attribute of each vCard field ("" leaves it out) */
	char *ldap_fn, *ldap_family, *ldap_given, *ldap_nickname, *ldap_email, *ldap_tel;
	char *ldap_orgname, *ldap_orgunit, *ldap_title, *ldap_locality;
	struct strlist ldap_photo;
};

static const char *const vcard_source_names[] = { "storage", "ldap", NULL };

#define VOFF(f) offsetof(struct vcard_settings, f)
static const struct opt_def vcard_options[] = {
	{ "max_size", OPT_SIZE, VOFF(max_size), "64K", NULL, 1024, 16 * 1024 * 1024,
	  "largest vCard a user may store (bytes, serialized); a bigger one is "
	  "refused with not-acceptable" },
	{ "source", OPT_ENUM, VOFF(source), "storage", vcard_source_names, 0, 0,
	  "where vCards come from: storage (users set their own) or ldap (read-only, from the "
	  "host's auth.ldap directory)" },
	{ "cache_ttl", OPT_DURATION, VOFF(cache_ttl), "10m", NULL, 0, 0,
	  "source ldap: how long a vCard read from the directory is reused (0: not cached)" },
	{ "cache_size", OPT_UINT, VOFF(cache_size), "10000", NULL, 0, 10000000,
	  "source ldap: most vCards kept in the cache" },
	{ "ldap_fn", OPT_STRING, VOFF(ldap_fn), "cn", NULL, 0, 0, "source ldap: attribute of FN" },
	{ "ldap_family", OPT_STRING, VOFF(ldap_family), "sn", NULL, 0, 0,
	  "source ldap: attribute of N/FAMILY" },
	{ "ldap_given", OPT_STRING, VOFF(ldap_given), "givenName", NULL, 0, 0,
	  "source ldap: attribute of N/GIVEN" },
	{ "ldap_nickname", OPT_STRING, VOFF(ldap_nickname), "displayName", NULL, 0, 0,
	  "source ldap: attribute of NICKNAME" },
	{ "ldap_email", OPT_STRING, VOFF(ldap_email), "mail", NULL, 0, 0,
	  "source ldap: attribute of EMAIL/USERID (every value)" },
	{ "ldap_tel", OPT_STRING, VOFF(ldap_tel), "telephoneNumber", NULL, 0, 0,
	  "source ldap: attribute of TEL/NUMBER (every value)" },
	{ "ldap_orgname", OPT_STRING, VOFF(ldap_orgname), "o", NULL, 0, 0,
	  "source ldap: attribute of ORG/ORGNAME" },
	{ "ldap_orgunit", OPT_STRING, VOFF(ldap_orgunit), "ou", NULL, 0, 0,
	  "source ldap: attribute of ORG/ORGUNIT" },
	{ "ldap_title", OPT_STRING, VOFF(ldap_title), "title", NULL, 0, 0,
	  "source ldap: attribute of TITLE" },
	{ "ldap_locality", OPT_STRING, VOFF(ldap_locality), "l", NULL, 0, 0,
	  "source ldap: attribute of ADR/LOCALITY" },
	{ "ldap_photo", OPT_STRLIST, VOFF(ldap_photo), "jpegPhoto, thumbnailPhoto", NULL, 0, 0,
	  "source ldap: attributes of PHOTO, the first one the entry has wins" },
	OPT_END
};

struct vcard_state;

struct vcard_op {
	struct pending_op p;    /* first: the state's list of ops; p.req the request,
	                                  p.call a storage call or a directory lookup */
	struct vcard_state *vs; /* valid while p is listed */
	char *user;             /* whose vCard */
};

/* A vCard read from the directory, reused until expires. */
struct vcard_cached {
	char *user;
	struct xml_node *vcard;
	double expires;
	struct vcard_cached *next;
};
#define VCARD_CACHE_BUCKETS 256

struct vcard_state {
	struct host *host;
	const struct vcard_settings *set;
	struct pending_ops ops;
	struct storage *store; /* source ldap: the LDAP store (owned), the host's
	                                  store of the vcard and search areas */
	struct vcard_cached *cache[VCARD_CACHE_BUCKETS];
	unsigned cached;
	struct pending_ops fetches; /* struct vcard_fetch: reads for other modules */
};

static void op_free(struct pending_op *p)
{
	struct vcard_op *op = (struct vcard_op *)p;
	pending_untrack(p);
	free(op->user);
	free(op);
}

static struct vcard_op *op_new(struct vcard_state *vs, struct iq_request *req, const char *user)
{
	struct vcard_op *op = xcalloc(1, sizeof(*op));
	op->vs = vs;
	op->p.req = req;
	op->user = xstrdup(user);
	pending_track(&vs->ops, &op->p, op_free);
	return op;
}

/* The vCard of a get answered res, text (NULL: an empty one; one that does
 * not parse is logged and answered as an empty one). */
static struct xml_node *vcard_parse(struct vcard_state *vs, const char *user, enum storage_result res,
                                    const char *text)
{
	struct xml_node *vcard = NULL;
	if (res == STORAGE_OK) {
		const char *err = NULL;
		size_t len = strlen(text);
		const struct xml_parser_limits lim = {
			.max_stanza = len + 1,
			.max_depth = 64,
			.max_attrs = 64,
		};
		vcard = xml_parse_string(text, len, NULL, &lim, &err);
		if (vcard == NULL || !xml_is(vcard, "vCard", NS_VCARD)) {
			log_error("vcard: the stored vCard of %s@%s does not parse (%s); answering an "
			          "empty one",
			          user, vs->host->name, err != NULL ? err : "another element");
			xml_unref(&vcard);
		}
	}
	if (vcard == NULL)
		vcard = iq_payload_new("vCard", NS_VCARD); /* XEP-0054 §3.1: none yet */
	return vcard;
}

static void cache_put(struct vcard_state *vs, const char *user, struct xml_node *vcard);

/* A vCard read from the directory (source ldap): cached, and the vcard_set
 * hook runs with it (mod_avatar follows the photo of the directory). */
static void vcard_from_directory(struct vcard_state *vs, const char *user, struct xml_node *vcard)
{
	cache_put(vs, user, vcard);
	struct hook_vcard hv = { .user = user, .vcard = vcard };
	hook_run(vs->host, HOOK_VCARD_SET, &hv);
}

static const char *store_what(const struct vcard_state *vs)
{
	return vs->store != NULL ? "the directory" : "the vCard store";
}

static void vcard_read(enum storage_result res, const char *text, void *ctx)
{
	struct vcard_op *op = ctx;
	if (!pending_resume(&op->p))
		return;
	struct iq_request *req = op->p.req;
	if (res != STORAGE_OK && res != STORAGE_NOT_FOUND) {
		errmap_iq_storage(req, res, store_what(op->vs));
		op_free(&op->p);
		return;
	}
	struct xml_node *vcard = vcard_parse(op->vs, op->user, res, text);
	if (op->vs->store != NULL)
		vcard_from_directory(op->vs, op->user, vcard);
	iq_result(req, vcard);
	xml_unref(&vcard);
	op_free(&op->p);
}

static void vcard_written(enum storage_result res, void *ctx)
{
	struct vcard_op *op = ctx;
	if (!pending_resume(&op->p))
		return;
	if (res == STORAGE_OK) {
		/* mod_avatar updates the photo hash in the user's presence. */
		struct hook_vcard hv = { .user = op->user, .vcard = op->p.req->payload };
		hook_run(op->vs->host, HOOK_VCARD_SET, &hv);
		iq_result(op->p.req, NULL);
	} else
		errmap_iq_storage(op->p.req, res, "the vCard store");
	op_free(&op->p);
}

/* ---- the cache of directory vCards ------------------------------------------ */

static struct vcard_cached **cache_slot(struct vcard_state *vs, const char *user)
{
	struct vcard_cached **pp = &vs->cache[hash_str(user) % VCARD_CACHE_BUCKETS];
	while (*pp != NULL && strcmp((*pp)->user, user) != 0)
		pp = &(*pp)->next;
	return pp;
}

static void cache_drop(struct vcard_state *vs, struct vcard_cached **pp)
{
	struct vcard_cached *e = *pp;
	*pp = e->next;
	free(e->user);
	xml_unref(&e->vcard);
	free(e);
	vs->cached--;
}

static void cache_clear(struct vcard_state *vs)
{
	for (size_t i = 0; i < VCARD_CACHE_BUCKETS; i++)
		while (vs->cache[i] != NULL)
			cache_drop(vs, &vs->cache[i]);
}

/* The cached vCard of user, or NULL (an expired one is dropped). */
static const struct xml_node *cache_get(struct vcard_state *vs, const char *user)
{
	struct vcard_cached **pp = cache_slot(vs, user);
	if (*pp == NULL)
		return NULL;
	if ((*pp)->expires <= ev_time()) {
		cache_drop(vs, pp);
		return NULL;
	}
	return (*pp)->vcard;
}

static void cache_put(struct vcard_state *vs, const char *user, struct xml_node *vcard)
{
	if (vs->set->cache_ttl <= 0 || vs->set->cache_size == 0)
		return;
	double now = ev_time();
	if (vs->cached >= vs->set->cache_size) {
		/* full: drop what has expired; still full, keep this one out */
		for (size_t i = 0; i < VCARD_CACHE_BUCKETS; i++) {
			struct vcard_cached **pp = &vs->cache[i];
			while (*pp != NULL) {
				if ((*pp)->expires <= now)
					cache_drop(vs, pp);
				else
					pp = &(*pp)->next;
			}
		}
		if (vs->cached >= vs->set->cache_size)
			return;
	}
	struct vcard_cached **pp = cache_slot(vs, user);
	if (*pp != NULL)
		cache_drop(vs, pp);
	struct vcard_cached *e = xcalloc(1, sizeof(*e));
	e->user = xstrdup(user);
	xml_ref(vcard);
	e->vcard = vcard;
	e->expires = now + vs->set->cache_ttl;
	e->next = vs->cache[hash_str(user) % VCARD_CACHE_BUCKETS];
	vs->cache[hash_str(user) % VCARD_CACHE_BUCKETS] = e;
	vs->cached++;
}

static void vcard_iq(struct iq_request *req, void *ctx)
{
	struct vcard_state *vs = ctx;
	struct host *h = vs->host;
	if (!xml_is(req->payload, "vCard", NS_VCARD) || req->to.node == NULL) {
		iq_error(req, SE_BAD_REQUEST, NULL);
		return;
	}
	struct storage *st = host_store(h, STORAGE_AREA_VCARD);
	if (strcmp(req->type, "get") == 0) {
		const struct xml_node *cached = vs->store != NULL ? cache_get(vs, req->to.node) : NULL;
		if (cached != NULL) {
			iq_result(req, cached);
			return;
		}
		struct vcard_op *op = op_new(vs, req, req->to.node);
		pending_wait_storage(&op->p, storage_vcard_get(st, h->name, op->user, vcard_read, op));
		return;
	}
	if (vs->store != NULL) {
		iq_error(req, SE_NOT_ALLOWED,
		         "vCards on this server come from the directory and "
		         "cannot be changed here");
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
		char *msg =
		        xasprintf("the vCard is too large (%zu bytes; at most %zu)", len, vs->set->max_size);
		iq_error(req, SE_NOT_ACCEPTABLE, msg);
		free(msg);
		free(text);
		return;
	}
	struct vcard_op *op = op_new(vs, req, req->to.node);
	pending_wait_storage(&op->p, storage_vcard_set(st, h->name, op->user, text, vcard_written, op));
	free(text);
}

/* ---- for other modules (vcard.h) --------------------------------------------- */

bool vcard_config_ldap(const struct host_config *hc)
{
	const struct cfg_node *named = hc->modules != NULL ? cfg_get(hc->modules, "vcard") : NULL;
	bool enabled = false;
	const struct cfg_node *opts = config_module(hc, "vcard", &enabled);
	if (named != NULL && !enabled)
		return false; /* vcard: false */
	struct vcard_settings set;
	memset(&set, 0, sizeof(set));
	char *err = NULL;
	char *section = xasprintf("hosts.%s.modules.vcard", hc->name);
	bool ldap = false;
	if (opt_apply(vcard_options, opts, section, &set, &err) == 0)
		ldap = set.source == VCARD_SOURCE_LDAP;
	else
		free(err); /* the module's own check reports it */
	opt_free(vcard_options, &set);
	free(section);
	return ldap;
}

/* The running state of h's vcard module when it reads from LDAP, or NULL. */
static struct vcard_state *ldap_state(const struct host *h)
{
	struct vcard_state *vs = module_state(h, "vcard");
	if (vs == NULL || vs->store == NULL)
		return NULL;
	return vs;
}

struct ldap_client *vcard_ldap_directory(struct host *h, const char *attrs_r[VF_COUNT])
{
#ifdef HAVE_BACKEND_LDAP
	struct vcard_state *vs = ldap_state(h);
	return vs != NULL ? ldap_store_client(vs->store, attrs_r) : NULL;
#else
	(void)h;
	(void)attrs_r;
	return NULL; /* no LDAP store without LDAP */
#endif
}

struct vcard_fetch {
	struct pending_op p; /* first: the state's list of fetches; p.call the
	                                  storage read */
	struct vcard_state *vs;
	char *user;
	vcard_fetch_cb *cb;
	void *ctx;
	ev_timer later; /* a cached vCard, answered from the loop */
	enum storage_result res;
	struct xml_node *vcard;
};

static void fetch_free(struct pending_op *p)
{
	struct vcard_fetch *f = (struct vcard_fetch *)p;
	pending_untrack(p);
	ev_timer_stop(server.loop, &f->later);
	xml_unref(&f->vcard);
	free(f->user);
	free(f);
}

static void fetch_deliver(struct vcard_fetch *f)
{
	vcard_fetch_cb *cb = f->cb;
	void *ctx = f->ctx;
	enum storage_result res = f->res;
	struct xml_node *vcard = f->vcard;
	f->vcard = NULL;
	fetch_free(&f->p);
	cb(res, vcard, ctx);
	xml_unref(&vcard);
}

static void fetch_later(struct ev_loop *loop, ev_timer *w, int revents)
{
	latency_begin(LATENCY_MODULE, "vcard");
	(void)loop;
	(void)revents;
	fetch_deliver((struct vcard_fetch *)((char *)w - offsetof(struct vcard_fetch, later)));
	latency_end();
}

static void fetch_read(enum storage_result res, const char *text, void *ctx)
{
	struct vcard_fetch *f = ctx;
	if (!pending_resume(&f->p))
		return;
	f->res = res == STORAGE_NOT_FOUND ? STORAGE_OK : res;
	if (f->res == STORAGE_OK) {
		f->vcard = vcard_parse(f->vs, f->user, res, text);
		vcard_from_directory(f->vs, f->user, f->vcard);
	}
	fetch_deliver(f);
}

struct vcard_fetch *vcard_ldap_fetch(struct host *h, const char *user, vcard_fetch_cb *cb, void *ctx)
{
	struct vcard_state *vs = ldap_state(h);
	if (vs == NULL)
		return NULL;
	struct vcard_fetch *f = xcalloc(1, sizeof(*f));
	f->vs = vs;
	f->user = xstrdup(user);
	f->cb = cb;
	f->ctx = ctx;
	ev_timer_init(&f->later, fetch_later, 0, 0);
	pending_track(&vs->fetches, &f->p, fetch_free);
	const struct xml_node *cached = cache_get(vs, user);
	if (cached != NULL) {
		f->res = STORAGE_OK;
		f->vcard = xml_copy(cached);
		ev_timer_start(server.loop, &f->later);
		return f;
	}
	pending_wait_storage(&f->p, storage_vcard_get(vs->store, h->name, f->user, fetch_read, f));
	return f;
}

void vcard_ldap_fetch_cancel(struct vcard_fetch *f)
{
	if (f != NULL && !pending_cancel(&f->p))
		fetch_free(&f->p); /* waits for its timer only */
}

/* Stop: reads still under way are dropped (their modules stopped before). */
static void vcard_fetches_stop(struct vcard_state *vs)
{
	while (vs->fetches.head != NULL)
		vcard_ldap_fetch_cancel((struct vcard_fetch *)vs->fetches.head);
}

static const struct builtin_iq vcard_iqs[] = {
	{ IQ_SCOPE_USER, NS_VCARD, IQ_PARALLEL, vcard_iq },
};

/* Source ldap: open the LDAP store of h with the mapping of set. */
static int vcard_ldap_open(struct host *h, const struct vcard_settings *set, struct storage **st_r,
                           char **error_r)
{
#ifdef HAVE_BACKEND_LDAP
	const struct ldap_vcard_map map = {
		.fn = set->ldap_fn,
		.family = set->ldap_family,
		.given = set->ldap_given,
		.nickname = set->ldap_nickname,
		.email = set->ldap_email,
		.tel = set->ldap_tel,
		.orgname = set->ldap_orgname,
		.orgunit = set->ldap_orgunit,
		.title = set->ldap_title,
		.locality = set->ldap_locality,
		.photo = &set->ldap_photo,
		.max_size = set->max_size,
	};
	char *name = xasprintf("vcard %s", h->name);
	int rc = ldap_store_open(server.loop, name, h->name, &h->cfg->auth.ldap, &map, st_r, error_r);
	free(name);
	return rc;
#else
	(void)h;
	(void)set;
	(void)st_r;
	*error_r = xstrdup("source ldap: parleyd was built without LDAP support");
	return -1;
#endif
}

static int vcard_start(struct host *h, const void *settings, void **state_r, char **error_r)
{
	struct vcard_state *vs = xcalloc(1, sizeof(*vs));
	vs->host = h;
	vs->set = settings;
	if (vs->set->source == VCARD_SOURCE_LDAP && vcard_ldap_open(h, vs->set, &vs->store, error_r) < 0) {
		free(vs);
		return -1;
	}
	if (builtin_iq_register(h, vcard_iqs, ARRAY_SIZE(vcard_iqs), vs, error_r) < 0) {
		storage_close(&vs->store);
		free(vs);
		return -1;
	}
	if (vs->store != NULL) {
		host_set_store(h, STORAGE_AREA_VCARD, vs->store);
		host_set_store(h, STORAGE_AREA_SEARCH, vs->store);
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
	pending_stop(&vs->ops);
	vcard_fetches_stop(vs);
	if (vs->store != NULL) {
		host_set_store(h, STORAGE_AREA_VCARD, NULL);
		host_set_store(h, STORAGE_AREA_SEARCH, NULL);
	}
	storage_close(&vs->store);
	cache_clear(vs);
	free(vs);
}

/* ---- the lookup for parleyctl ldap-test ------------------------------------- */

const char *vcard_image_type(const unsigned char *data, size_t len)
{
	return vcard_photo_type(data, len);
}

bool vcard_ldap_enabled(const struct host *h)
{
	return ldap_state(h) != NULL;
}

struct vcard_ldap_probe {
	struct ldap_store_probe *sp;
	vcard_ldap_probe_cb *cb;
	void *ctx;
};

/* Runs from the loop, or from storage_close while vcard_stop runs. */
static void vcard_probe_read(const struct ldap_reply *r, const char *const *attrs,
                             const struct xml_node *vcard, void *ctx)
{
	struct vcard_ldap_probe *p = ctx;
	vcard_ldap_probe_cb *cb = p->cb;
	void *cb_ctx = p->ctx;
	free(p);
	cb(r, attrs, vcard, cb_ctx);
}

struct vcard_ldap_probe *vcard_ldap_probe(const struct host *h, const char *user, vcard_ldap_probe_cb *cb,
                                          void *ctx, const char **error_r)
{
	struct vcard_state *vs = ldap_state(h);
	if (vs == NULL) {
		*error_r = "the vCards of this host do not come from the directory";
		return NULL;
	}
#ifdef HAVE_BACKEND_LDAP
	struct vcard_ldap_probe *p = xcalloc(1, sizeof(*p));
	p->cb = cb;
	p->ctx = ctx;
	p->sp = ldap_store_vcard_probe(vs->store, user, vcard_probe_read, p);
	if (p->sp == NULL) {
		*error_r = "the LDAP request queue is full";
		free(p);
		return NULL;
	}
	return p;
#else
	(void)user;
	(void)cb;
	(void)ctx;
	(void)vcard_probe_read;
	*error_r = "parleyd was built without LDAP support";
	return NULL;
#endif
}

void vcard_ldap_probe_cancel(struct vcard_ldap_probe *p)
{
	if (p == NULL)
		return;
#ifdef HAVE_BACKEND_LDAP
	ldap_store_probe_cancel(p->sp);
#endif
	free(p);
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
