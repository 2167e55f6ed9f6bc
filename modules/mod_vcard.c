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
 * a get looks the user's entry up through the LDAP client (auth/ldap-
 * client.c, on its worker group, with the host's auth.ldap settings) and
 * maps its attributes to vCard fields (the ldap_* options); a set is
 * <not-allowed/>.  Answers are cached for cache_ttl (an unknown user's
 * empty vCard too, a temporary failure never); every vCard read from the
 * directory runs the vcard_set hook, so that mod_avatar's photo hash follows
 * the directory when the cached vCard is read again.  Other modules use the
 * client, the mapping and the cache through modules/vcard.h (mod_vjud's
 * LDAP search, mod_avatar's reads).  Attribute values that are
 * not valid UTF-8 text are left out; a photo is sent as BINVAL with a TYPE
 * detected from its first bytes (JPEG, PNG, GIF, WebP), and left out when
 * its type is not recognised or it is bigger than max_size.
 */
#include "builtin.h"
#include "errmap.h"
#include "pending.h"
#include "vcard.h"
#include "server/host.h"
#include "server/hooks.h"
#include "lib/log.h"
#include "server/server.h"

#include "storage/ldap-store.h"
#ifdef HAVE_BACKEND_LDAP
#include "auth/ldap-client.h"
#endif

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
	{ "max_size", OPT_SIZE, VOFF(max_size), "64K", NULL, 1024,
	  16 * 1024 * 1024, "largest vCard a user may store (bytes, serialized); a bigger one is "
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
	struct pending_op p;           /* first: the state's list of ops; p.req the request,
	                                  p.call a storage call or a directory lookup */
	struct vcard_state *vs;        /* valid while p is listed */
	char *user;                    /* whose vCard */
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
	struct storage *store;         /* source ldap: the LDAP store (owned), the host's search
	                                  store */
#ifdef HAVE_BACKEND_LDAP
	struct ldap_client *ldap;      /* the store's */
	const char *attrs[16];         /* what a lookup asks for, NULL-terminated */
#endif
	struct vcard_cached *cache[VCARD_CACHE_BUCKETS];
	unsigned cached;
	struct pending_ops fetches;    /* struct vcard_fetch: reads for other modules */
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

#ifdef HAVE_BACKEND_LDAP
static void cancel_lookup(void *call)
{
	ldap_client_cancel(call);
}
#endif

static void vcard_read(enum storage_result res, const char *text, void *ctx)
{
	struct vcard_op *op = ctx;
	if (!pending_resume(&op->p))
		return;
	struct iq_request *req = op->p.req;
	if (res != STORAGE_OK && res != STORAGE_NOT_FOUND) {
		errmap_iq_storage(req, res, "the vCard store");
		op_free(&op->p);
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

/* ---- vCards from the directory ---------------------------------------------- */

/* The MIME type of an image from its first bytes, or NULL. */
static const char *image_type(const unsigned char *d, size_t len)
{
	if (len >= 3 && d[0] == 0xff && d[1] == 0xd8 && d[2] == 0xff)
		return "image/jpeg";
	if (len >= 8 && memcmp(d, "\x89PNG\r\n\x1a\n", 8) == 0)
		return "image/png";
	if (len >= 6 && (memcmp(d, "GIF87a", 6) == 0 || memcmp(d, "GIF89a", 6) == 0))
		return "image/gif";
	if (len >= 12 && memcmp(d, "RIFF", 4) == 0 && memcmp(d + 8, "WEBP", 4) == 0)
		return "image/webp";
	return NULL;
}

#ifdef HAVE_BACKEND_LDAP
static const struct ldap_attr *find_attr(const struct ldap_reply *r, const char *name)
{
	if (name == NULL || *name == '\0')
		return NULL;
	for (size_t i = 0; i < r->nattrs; i++)
		if (strcasecmp(r->attrs[i].name, name) == 0)
			return &r->attrs[i];
	return NULL;
}

/* Whether v can be XML text: valid UTF-8, no control characters but tab,
 * newline and carriage return. */
static bool text_ok(const struct ldap_value *v)
{
	if (v->len == 0 || !utf8_valid((const char *)v->data, v->len))
		return false;
	for (size_t i = 0; i < v->len; i++) {
		unsigned char ch = v->data[i];
		if (ch < 0x20 && ch != '\t' && ch != '\n' && ch != '\r')
			return false;
	}
	return true;
}

/* The first usable value of attribute name, or NULL. */
static const struct ldap_value *first_text(const struct ldap_reply *r, const char *name)
{
	const struct ldap_attr *a = find_attr(r, name);
	for (size_t i = 0; a != NULL && i < a->count; i++)
		if (text_ok(&a->values[i]))
			return &a->values[i];
	return NULL;
}

static void add_text(struct xml_node *parent, const char *name, const struct ldap_value *v)
{
	struct xml_node *el = xml_add_child(parent, name, NULL);
	xml_add_text(el, (const char *)v->data, v->len);
}

static struct xml_node *vcard_from_entry(struct vcard_state *vs, const struct ldap_reply *r,
                                         const char *user)
{
	const struct vcard_settings *set = vs->set;
	struct xml_node *vc = iq_payload_new("vCard", NS_VCARD);
	const struct ldap_value *v;
	if ((v = first_text(r, set->ldap_fn)) != NULL)
		add_text(vc, "FN", v);
	const struct ldap_value *family = first_text(r, set->ldap_family);
	const struct ldap_value *given = first_text(r, set->ldap_given);
	if (family != NULL || given != NULL) {
		struct xml_node *n = xml_add_child(vc, "N", NULL);
		if (family != NULL)
			add_text(n, "FAMILY", family);
		if (given != NULL)
			add_text(n, "GIVEN", given);
	}
	if ((v = first_text(r, set->ldap_nickname)) != NULL)
		add_text(vc, "NICKNAME", v);
	const struct ldap_attr *a = find_attr(r, set->ldap_email);
	for (size_t i = 0; a != NULL && i < a->count; i++) {
		if (!text_ok(&a->values[i]))
			continue;
		struct xml_node *email = xml_add_child(vc, "EMAIL", NULL);
		xml_add_child(email, "INTERNET", NULL);
		add_text(email, "USERID", &a->values[i]);
	}
	a = find_attr(r, set->ldap_tel);
	for (size_t i = 0; a != NULL && i < a->count; i++) {
		if (!text_ok(&a->values[i]))
			continue;
		struct xml_node *tel = xml_add_child(vc, "TEL", NULL);
		add_text(tel, "NUMBER", &a->values[i]);
	}
	const struct ldap_value *orgname = first_text(r, set->ldap_orgname);
	const struct ldap_value *orgunit = first_text(r, set->ldap_orgunit);
	if (orgname != NULL || orgunit != NULL) {
		struct xml_node *org = xml_add_child(vc, "ORG", NULL);
		if (orgname != NULL)
			add_text(org, "ORGNAME", orgname);
		if (orgunit != NULL)
			add_text(org, "ORGUNIT", orgunit);
	}
	if ((v = first_text(r, set->ldap_title)) != NULL)
		add_text(vc, "TITLE", v);
	if ((v = first_text(r, set->ldap_locality)) != NULL)
		add_text(xml_add_child(vc, "ADR", NULL), "LOCALITY", v);
	for (size_t p = 0; p < set->ldap_photo.count; p++) {
		a = find_attr(r, set->ldap_photo.items[p]);
		if (a == NULL || a->count == 0)
			continue;
		const struct ldap_value *img = &a->values[0];
		const char *type = image_type(img->data, img->len);
		if (type == NULL || img->len > set->max_size) {
			log_info("vcard: %s@%s: %s left out (%s)", user, vs->host->name,
			         set->ldap_photo.items[p],
			         type == NULL ? "not a JPEG, PNG, GIF or WebP image" : "larger than max_size");
			continue;
		}
		char *b64 = base64_encode(img->data, img->len);
		struct xml_node *photo = xml_add_child(vc, "PHOTO", NULL);
		struct xml_node *t = xml_add_child(photo, "TYPE", NULL);
		xml_add_text(t, type, strlen(type));
		struct xml_node *bin = xml_add_child(photo, "BINVAL", NULL);
		xml_add_text(bin, b64, strlen(b64));
		free(b64);
		break;
	}
	return vc;
}

/* The vCard of user from a directory answer, cached, with the vcard_set hook
 * run (NULL with *res_r set when the directory failed; logged). */
static struct xml_node *vcard_ldap_answer(struct vcard_state *vs, const struct ldap_reply *r,
                                          const char *user, enum storage_result *res_r)
{
	struct xml_node *vcard = NULL;
	switch (r->res) {
	case LDAPC_OK:
		vcard = vcard_from_entry(vs, r, user);
		break;
	case LDAPC_NO_ENTRY:
		vcard = iq_payload_new("vCard", NS_VCARD);   /* like a user with none */
		break;
	case LDAPC_TEMPFAIL:
		log_warning("vcard: %s@%s: %s", user, vs->host->name,
		            r->error != NULL ? r->error : "the directory is unavailable");
		*res_r = STORAGE_TEMPFAIL;
		return NULL;
	default:
		log_error("vcard: %s@%s: %s", user, vs->host->name,
		          r->error != NULL ? r->error : ldap_client_result_str(r->res));
		*res_r = STORAGE_ERROR;
		return NULL;
	}
	cache_put(vs, user, vcard);
	/* mod_avatar follows the photo of the directory. */
	struct hook_vcard hv = { .user = user, .vcard = vcard };
	hook_run(vs->host, HOOK_VCARD_SET, &hv);
	*res_r = STORAGE_OK;
	return vcard;
}

static void vcard_ldap_read(const struct ldap_reply *r, void *ctx)
{
	struct vcard_op *op = ctx;
	if (!pending_resume(&op->p))
		return;
	struct iq_request *req = op->p.req;
	enum storage_result res;
	struct xml_node *vcard = vcard_ldap_answer(op->vs, r, op->user, &res);
	if (vcard != NULL)
		iq_result(req, vcard);
	else
		errmap_iq_storage(req, res, "the directory");
	xml_unref(&vcard);
	op_free(&op->p);
}
#endif

/* A get on a host whose vCards come from the directory. */
static void vcard_ldap_get(struct vcard_state *vs, struct iq_request *req)
{
	const struct xml_node *cached = cache_get(vs, req->to.node);
	if (cached != NULL) {
		iq_result(req, cached);
		return;
	}
#ifdef HAVE_BACKEND_LDAP
	struct vcard_op *op = op_new(vs, req, req->to.node);
	pending_wait(&op->p, ldap_client_submit(vs->ldap, LDAPC_FIND, op->user, NULL, vs->attrs,
	                                        vcard_ldap_read, op), cancel_lookup);
	if (op->p.call == NULL) {
		errmap_iq_storage(req, STORAGE_TEMPFAIL, "the directory");   /* the queue is full */
		op_free(&op->p);
	}
#else
	iq_error(req, SE_SERVICE_UNAVAILABLE, NULL);
#endif
}

static void vcard_iq(struct iq_request *req, void *ctx)
{
	struct vcard_state *vs = ctx;
	struct host *h = vs->host;
	if (!xml_is(req->payload, "vCard", NS_VCARD) || req->to.node == NULL) {
		iq_error(req, SE_BAD_REQUEST, NULL);
		return;
	}
	if (vs->set->source == VCARD_SOURCE_LDAP) {
		if (strcmp(req->type, "get") == 0)
			vcard_ldap_get(vs, req);
		else
			iq_error(req, SE_NOT_ALLOWED, "vCards on this server come from the directory and "
			         "cannot be changed here");
		return;
	}
	if (strcmp(req->type, "get") == 0) {
		struct vcard_op *op = op_new(vs, req, req->to.node);
		pending_wait_storage(&op->p, storage_vcard_get(h->storage, h->name, op->user,
		                                               vcard_read, op));
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
	pending_wait_storage(&op->p, storage_vcard_set(h->storage, h->name, op->user, text,
	                                               vcard_written, op));
	free(text);
}

/* ---- for other modules (vcard.h) --------------------------------------------- */

bool vcard_config_ldap(const struct host_config *hc)
{
	const struct cfg_node *named = hc->modules != NULL ? cfg_get(hc->modules, "vcard") : NULL;
	bool enabled = false;
	const struct cfg_node *opts = config_module(hc, "vcard", &enabled);
	if (named != NULL && !enabled)
		return false;                  /* vcard: false */
	struct vcard_settings set;
	memset(&set, 0, sizeof(set));
	char *err = NULL;
	char *section = xasprintf("hosts.%s.modules.vcard", hc->name);
	bool ldap = false;
	if (opt_apply(vcard_options, opts, section, &set, &err) == 0)
		ldap = set.source == VCARD_SOURCE_LDAP;
	else
		free(err);                     /* the module's own check reports it */
	opt_free(vcard_options, &set);
	free(section);
	return ldap;
}

/* The running state of h's vcard module when it reads from LDAP, or NULL. */
static struct vcard_state *ldap_state(struct host *h)
{
	struct vcard_state *vs = module_state(h, "vcard");
	if (vs == NULL || vs->set->source != VCARD_SOURCE_LDAP)
		return NULL;
	return vs;
}

static const char *mapped(const char *attr)
{
	return attr != NULL && *attr != '\0' ? attr : NULL;
}

struct ldap_client *vcard_ldap_directory(struct host *h, const char *attrs_r[VF_COUNT])
{
#ifdef HAVE_BACKEND_LDAP
	struct vcard_state *vs = ldap_state(h);
	if (vs == NULL)
		return NULL;
	const struct vcard_settings *set = vs->set;
	const struct strlist *uids = ldap_client_uids(vs->ldap);
	attrs_r[VF_USER] = uids->count > 0 ? mapped(uids->items[0]) : NULL;
	attrs_r[VF_FN] = mapped(set->ldap_fn);
	attrs_r[VF_FIRST] = mapped(set->ldap_given);
	attrs_r[VF_LAST] = mapped(set->ldap_family);
	attrs_r[VF_NICK] = mapped(set->ldap_nickname);
	attrs_r[VF_EMAIL] = mapped(set->ldap_email);
	attrs_r[VF_LOCALITY] = mapped(set->ldap_locality);
	attrs_r[VF_ORG] = mapped(set->ldap_orgname);
	return vs->ldap;
#else
	(void)h;
	(void)attrs_r;
	return NULL;
#endif
}

struct vcard_fetch {
	struct pending_op p;           /* first: the state's list of fetches; p.call the
	                                  directory lookup */
	struct vcard_state *vs;
	char *user;
	vcard_fetch_cb *cb;
	void *ctx;
	ev_timer later;                /* a cached vCard or a full queue, answered from the loop */
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
	(void)loop;
	(void)revents;
	fetch_deliver((struct vcard_fetch *)((char *)w - offsetof(struct vcard_fetch, later)));
}

#ifdef HAVE_BACKEND_LDAP
static void fetch_read(const struct ldap_reply *r, void *ctx)
{
	struct vcard_fetch *f = ctx;
	if (!pending_resume(&f->p))
		return;
	f->vcard = vcard_ldap_answer(f->vs, r, f->user, &f->res);
	fetch_deliver(f);
}
#endif

struct vcard_fetch *vcard_ldap_fetch(struct host *h, const char *user, vcard_fetch_cb *cb,
                                     void *ctx)
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
#ifdef HAVE_BACKEND_LDAP
	pending_wait(&f->p, ldap_client_submit(vs->ldap, LDAPC_FIND, f->user, NULL, vs->attrs,
	                                       fetch_read, f), cancel_lookup);
	if (f->p.call != NULL)
		return f;
#endif
	f->res = STORAGE_TEMPFAIL;
	ev_timer_start(server.loop, &f->later);
	return f;
}

void vcard_ldap_fetch_cancel(struct vcard_fetch *f)
{
	if (f != NULL && !pending_cancel(&f->p))
		fetch_free(&f->p);   /* waits for its timer only */
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

static int vcard_start(struct host *h, const void *settings, void **state_r, char **error_r)
{
	struct vcard_state *vs = xcalloc(1, sizeof(*vs));
	vs->host = h;
	vs->set = settings;
	if (vs->set->source == VCARD_SOURCE_LDAP) {
#ifdef HAVE_BACKEND_LDAP
		const struct vcard_settings *set = vs->set;
		const char *fields[] = { set->ldap_fn, set->ldap_family, set->ldap_given, set->ldap_nickname,
		                         set->ldap_email, set->ldap_tel, set->ldap_orgname,
		                         set->ldap_orgunit, set->ldap_title, set->ldap_locality };
		size_t n = 0;
		for (size_t i = 0; i < ARRAY_SIZE(fields); i++)
			if (fields[i] != NULL && *fields[i] != '\0')
				vs->attrs[n++] = fields[i];
		for (size_t i = 0; i < set->ldap_photo.count && n + 1 < ARRAY_SIZE(vs->attrs); i++)
			vs->attrs[n++] = set->ldap_photo.items[i];
		vs->attrs[n] = NULL;
		const struct ldap_vcard_map map = {
			.fn = set->ldap_fn, .family = set->ldap_family, .given = set->ldap_given,
			.nickname = set->ldap_nickname, .email = set->ldap_email, .tel = set->ldap_tel,
			.orgname = set->ldap_orgname, .orgunit = set->ldap_orgunit,
			.title = set->ldap_title, .locality = set->ldap_locality,
			.photo = &set->ldap_photo, .max_size = set->max_size,
		};
		char *name = xasprintf("vcard %s", h->name);
		int rc = ldap_store_open(server.loop, name, h->name, &h->cfg->auth.ldap, &map,
		                         &vs->store, error_r);
		free(name);
		if (rc < 0) {
			free(vs);
			return -1;
		}
		vs->ldap = ldap_store_client(vs->store, NULL);
#else
		*error_r = xstrdup("source ldap: parleyd was built without LDAP support");
		free(vs);
		return -1;
#endif
	}
	if (builtin_iq_register(h, vcard_iqs, ARRAY_SIZE(vcard_iqs), vs, error_r) < 0) {
		storage_close(&vs->store);
		free(vs);
		return -1;
	}
	if (vs->store != NULL)
		host_set_store(h, STORAGE_AREA_SEARCH, vs->store);
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
	if (vs->store != NULL)
		host_set_store(h, STORAGE_AREA_SEARCH, NULL);
	storage_close(&vs->store);
	cache_clear(vs);
	free(vs);
}

/* ---- the lookup for parleyctl ldap-test ------------------------------------- */

const char *vcard_image_type(const unsigned char *data, size_t len)
{
	return image_type(data, len);
}

bool vcard_ldap_enabled(const struct host *h)
{
	const struct vcard_state *vs = module_state(h, "vcard");
	return vs != NULL && vs->set->source == VCARD_SOURCE_LDAP;
}

struct vcard_ldap_probe {
	struct vcard_state *vs;
#ifdef HAVE_BACKEND_LDAP
	struct ldap_client_req *lreq;
#endif
	char *user;
	vcard_ldap_probe_cb *cb;
	void *ctx;
};

#ifdef HAVE_BACKEND_LDAP
/* Runs from the loop, or from ldap_client_free while vcard_stop runs (vs is
 * still whole then). */
static void vcard_probe_read(const struct ldap_reply *r, void *ctx)
{
	struct vcard_ldap_probe *p = ctx;
	struct xml_node *vcard = NULL;
	if (r->res == LDAPC_OK)
		vcard = vcard_from_entry(p->vs, r, p->user);
	else if (r->res == LDAPC_NO_ENTRY)
		vcard = iq_payload_new("vCard", NS_VCARD);
	p->cb(r, p->vs->attrs, vcard, p->ctx);
	xml_unref(&vcard);
	free(p->user);
	free(p);
}
#endif

struct vcard_ldap_probe *vcard_ldap_probe(const struct host *h, const char *user,
                                          vcard_ldap_probe_cb *cb, void *ctx,
                                          const char **error_r)
{
	struct vcard_state *vs = module_state(h, "vcard");
	if (vs == NULL || vs->set->source != VCARD_SOURCE_LDAP) {
		*error_r = "the vCards of this host do not come from the directory";
		return NULL;
	}
#ifdef HAVE_BACKEND_LDAP
	struct vcard_ldap_probe *p = xcalloc(1, sizeof(*p));
	p->vs = vs;
	p->user = xstrdup(user);
	p->cb = cb;
	p->ctx = ctx;
	p->lreq = ldap_client_find_traced(vs->ldap, user, vs->attrs, vcard_probe_read, p);
	if (p->lreq == NULL) {
		*error_r = "the LDAP request queue is full";
		free(p->user);
		free(p);
		return NULL;
	}
	return p;
#else
	*error_r = "parleyd was built without LDAP support";
	return NULL;
#endif
}

void vcard_ldap_probe_cancel(struct vcard_ldap_probe *p)
{
	if (p == NULL)
		return;
#ifdef HAVE_BACKEND_LDAP
	ldap_client_cancel(p->lreq);
#endif
	free(p->user);
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
