/*
 * mod_muc: multi-user chat services (XEP-0045).  Loop thread.
 *
 * Each entry of the hosts option is a service: a domain with a local route
 * in the router, listed in its virtual host's disco#items.  This file
 * holds the module and the services: routing a stanza to a service or
 * one of its rooms, the service's own iqs (disco#info, disco#items of the
 * public rooms with RSM paging, ping), room creation rights, the nicks
 * registered with a service, and persistence.  Rooms (muc-room.c) work on
 * what this file hands them.
 *
 * Persistent rooms live in the host's MUC store.  At start a service loads
 * them; stanzas that come meanwhile wait (up to MAX_WAITING, then
 * <resource-constraint/>) and are handled in order once the rooms are
 * back.  A room's store writes go in order (the store keeps one room's jobs
 * on one worker); an owner's configuration change is answered after its
 * commit.
 */
#include "muc.h"
#include "muc-adhoc.h"
#include "muc-log.h"
#include "modules/builtin.h"
#include "modules/mam.h"
#include "server/host.h"
#include "server/router.h"
#include "server/server.h"
#include "lib/latency.h"
#include "lib/log.h"
#include "lib/options.h"

#include <assert.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_WAITING 1000    /* stanzas kept per service while its rooms load */
#define DISCO_ITEMS_MAX 100 /* rooms in one disco#items answer without RSM */

static const char *const access_values[] = { "anyone", "local", "admins", "list", NULL };
static const char *const whois_values[] = { "none", "moderators", "participants", "anyone", NULL };

static const struct opt_def muc_options[] = {
	{ "hosts", OPT_STRLIST, offsetof(struct muc_settings, hosts), "conference.@HOST@", NULL, 0, 0,
	  "MUC service domains of this host (@HOST@ is the host's name)" },
	{ "access_create", OPT_ENUM, offsetof(struct muc_settings, access_create), "local", access_values, 0,
	  0, "who may create rooms: anyone, local (users of this host), admins, list (create_list)" },
	{ "create_list", OPT_STRLIST, offsetof(struct muc_settings, create_list), NULL, NULL, 0, 0,
	  "bare JIDs or domains that may create rooms when access_create is list" },
	{ "admins", OPT_STRLIST, offsetof(struct muc_settings, admins), NULL, NULL, 0, 0,
	  "service admins (owners of every room) besides the host's admins" },
	{ "max_rooms_per_user", OPT_UINT, offsetof(struct muc_settings, max_rooms_per_user), "10", NULL, 0, 0,
	  "rooms one user may own (0: no limit; admins have none)" },
	{ "max_occupants", OPT_UINT, offsetof(struct muc_settings, max_occupants), "200", NULL, 1, 1000000,
	  "occupants of one room at most (the ceiling of every room's maximum)" },
	{ "history_size", OPT_UINT, offsetof(struct muc_settings, history_size), "20", NULL, 0, 1000,
	  "groupchat messages a room keeps for discussion history" },
	{ "message_rate", OPT_UINT, offsetof(struct muc_settings, message_rate), "5", NULL, 0, 0,
	  "groupchat messages per second one occupant may send (0: no limit)" },
	{ "message_burst", OPT_UINT, offsetof(struct muc_settings, message_burst), "10", NULL, 1, 100000,
	  "messages an occupant may send at once before message_rate applies" },
	{ "max_subject", OPT_SIZE, offsetof(struct muc_settings, max_subject), "1K", NULL, 1, 1 << 20,
	  "longest room subject, in bytes" },
	{ "log_dir", OPT_STRING, offsetof(struct muc_settings, log_dir), NULL, NULL, 0, 0,
	  "folder of the HTML room logs (a subfolder per service); unset: no logs" },
	{ "log_css", OPT_STRING, offsetof(struct muc_settings, log_css), NULL, NULL, 0, 0,
	  "URL of a stylesheet the log pages link to (unset: a built-in one)" },
	{ "log_timezone", OPT_STRING, offsetof(struct muc_settings, log_timezone), "UTC", NULL, 0, 0,
	  "time zone of the log pages' times and days (a TZ name)" },
	{ "default_public", OPT_BOOL, offsetof(struct muc_settings, default_public), "true", NULL, 0, 0,
	  "new rooms are listed in disco#items" },
	{ "default_persistent", OPT_BOOL, offsetof(struct muc_settings, default_persistent), "false", NULL, 0,
	  0, "new rooms outlive their last occupant" },
	{ "default_members_only", OPT_BOOL, offsetof(struct muc_settings, default_members_only), "false",
	  NULL, 0, 0, "new rooms admit members only" },
	{ "default_moderated", OPT_BOOL, offsetof(struct muc_settings, default_moderated), "false", NULL, 0,
	  0, "new rooms give visitors no voice" },
	{ "default_allow_invites", OPT_BOOL, offsetof(struct muc_settings, default_allow_invites), "false",
	  NULL, 0, 0, "occupants of new rooms may invite others (else admins and owners only)" },
	{ "default_change_subject", OPT_BOOL, offsetof(struct muc_settings, default_change_subject), "true",
	  NULL, 0, 0, "participants of new rooms may change the subject (else moderators only)" },
	{ "default_whois", OPT_ENUM, offsetof(struct muc_settings, default_whois), "moderators", whois_values,
	  0, 0, "who sees occupants' real JIDs in new rooms: moderators or anyone" },
	{ "default_allow_pm", OPT_ENUM, offsetof(struct muc_settings, default_allow_pm), "anyone",
	  whois_values, 0, 0,
	  "who may send private messages in new rooms: none, moderators, participants, anyone" },
	{ "default_max_users", OPT_UINT, offsetof(struct muc_settings, default_max_users), "100", NULL, 1,
	  1000000, "occupants of a new room at most (up to max_occupants)" },
	OPT_END
};

struct muc_state {
	struct host *h;
	const struct muc_settings *set;
	struct muc_service *services;
	bool adhoc;
};

static struct muc_service *all_services; /* of every host, through next */

struct muc_service *muc_services(void)
{
	return all_services;
}

struct muc_service *muc_service_find(const char *domain)
{
	/* A service of a host a reload removed stays until the host is freed;
	 * it is no longer the one serving its domain. */
	for (struct muc_service *s = all_services; s != NULL; s = s->next)
		if (strcmp(s->domain, domain) == 0 && !s->stopping && host_find(s->host->name) == s->host)
			return s;
	return NULL;
}

/* ---- rooms of a service ------------------------------------------------ */

struct muc_room *muc_room_find(struct muc_service *svc, const char *name)
{
	if (svc->nbuckets == 0)
		return NULL;
	for (struct muc_room *r = svc->buckets[hash_str(name) % svc->nbuckets]; r != NULL; r = r->next)
		if (strcmp(r->name, name) == 0)
			return r;
	return NULL;
}

static void rooms_grow(struct muc_service *svc)
{
	unsigned n = svc->nbuckets == 0 ? 64 : svc->nbuckets * 2;
	struct muc_room **b = xcalloc(n, sizeof(*b));
	for (unsigned i = 0; i < svc->nbuckets; i++) {
		struct muc_room *r = svc->buckets[i];
		while (r != NULL) {
			struct muc_room *next = r->next;
			unsigned k = hash_str(r->name) % n;
			r->next = b[k];
			b[k] = r;
			r = next;
		}
	}
	free(svc->buckets);
	svc->buckets = b;
	svc->nbuckets = n;
}

struct muc_room *muc_room_new(struct muc_service *svc, const char *name, const char *owner, bool locked)
{
	if (svc->nrooms + 1 > svc->nbuckets)
		rooms_grow(svc);
	struct muc_room *r = xcalloc(1, sizeof(*r));
	r->svc = svc;
	r->name = xstrdup(name);
	r->jid = xasprintf("%s@%s", name, svc->domain);
	muc_config_defaults(&r->cfg, svc->set);
	bool mam_runs;
	r->cfg.archive = mam_room_default(svc->host, &mam_runs);
	muc_room_salt(r);
	r->locked = locked;
	r->created = (double)time(NULL);
	r->hist_size = svc->set->history_size;
	if (r->hist_size > 0)
		r->history = xcalloc(r->hist_size, sizeof(*r->history));
	if (owner != NULL) {
		struct muc_affiliation *a = xcalloc(1, sizeof(*a));
		a->jid = xstrdup(owner);
		a->aff = MUC_AFF_OWNER;
		a->reason = xstrdup("");
		r->affs = a;
	}
	unsigned k = hash_str(name) % svc->nbuckets;
	r->next = svc->buckets[k];
	svc->buckets[k] = r;
	svc->nrooms++;
	return r;
}

void muc_room_salt(struct muc_room *r)
{
	if (r->cfg.id_salt != NULL && *r->cfg.id_salt != '\0')
		return;
	unsigned char raw[24];
	random_bytes(raw, sizeof(raw));
	free(r->cfg.id_salt);
	r->cfg.id_salt = hex_encode(raw, sizeof(raw));
}

void muc_room_unlink(struct muc_room *r)
{
	struct muc_service *svc = r->svc;
	if (r->unlinked)
		return;
	for (struct muc_room **p = &svc->buckets[hash_str(r->name) % svc->nbuckets]; *p != NULL;
	     p = &(*p)->next) {
		if (*p == r) {
			*p = r->next;
			svc->nrooms--;
			break;
		}
	}
	r->unlinked = true;
	r->next = NULL;
}

void muc_room_free(struct muc_room *r)
{
	assert(r->occupants == NULL);
	muc_room_unlink(r);
	muc_room_relays_clear(r);
	while (r->affs != NULL) {
		struct muc_affiliation *a = r->affs;
		r->affs = a->next;
		free(a->jid);
		free(a->reason);
		free(a);
	}
	for (unsigned i = 0; i < r->hist_count; i++) {
		unsigned k = (r->hist_start + i) % r->hist_size;
		xml_unref(&r->history[k].msg);
	}
	free(r->history);
	muc_config_clear(&r->cfg);
	free(r->subject);
	free(r->subject_nick);
	free(r->name);
	free(r->jid);
	free(r);
}

static int room_cmp(const void *a, const void *b)
{
	return strcmp((*(struct muc_room *const *)a)->name, (*(struct muc_room *const *)b)->name);
}

struct muc_room **muc_rooms_sorted(struct muc_service *svc, size_t *count_r)
{
	struct muc_room **v = xmalloc((svc->nrooms + 1) * sizeof(*v));
	size_t n = 0;
	for (unsigned i = 0; i < svc->nbuckets; i++)
		for (struct muc_room *r = svc->buckets[i]; r != NULL; r = r->next)
			v[n++] = r;
	qsort(v, n, sizeof(*v), room_cmp);
	*count_r = n;
	return v;
}

/* ---- persistence ------------------------------------------------------- */

struct save_op {
	muc_saved_fn *done;
	void *ctx;
	char *room; /* for the log line */
	struct muc_service *svc;
};

static struct storage *muc_store(const struct muc_service *svc)
{
	struct storage *st = host_store(svc->host, STORAGE_AREA_MUC);
	return st != NULL && storage_has_area(st, STORAGE_AREA_MUC) ? st : NULL;
}

static void service_final_free(struct muc_service *svc);

/* A store call of svc ended (after its callback ran). */
static void service_idle(struct muc_service *svc)
{
	assert(svc->busy > 0);
	svc->busy--;
	if (svc->stopping && svc->busy == 0)
		service_final_free(svc);
}

static void saved(enum storage_result res, void *ctx)
{
	struct save_op *op = ctx;
	struct muc_service *svc = op->svc;
	if (res != STORAGE_OK && res != STORAGE_EXISTS)
		log_error("muc %s: storing %s failed: %s", svc->domain, op->room, storage_result_str(res));
	if (op->done != NULL)
		op->done(res, op->ctx);
	free(op->room);
	free(op);
	service_idle(svc);
}

static struct save_op *save_op_new(struct muc_room *r, muc_saved_fn *done, void *ctx)
{
	struct save_op *op = xcalloc(1, sizeof(*op));
	op->done = done;
	op->ctx = ctx;
	op->room = xstrdup(r->jid);
	op->svc = r->svc;
	r->svc->busy++;
	return op;
}

/* A store that cannot keep rooms: answer OK from the loop, later. */
struct no_store {
	ev_timer t;
	struct save_op *op;
};

static void no_store_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	latency_begin(LATENCY_MODULE, "muc");
	(void)loop;
	(void)revents;
	struct no_store *ns = (struct no_store *)w;
	saved(STORAGE_OK, ns->op);
	free(ns);
	latency_end();
}

static void answer_later(struct save_op *op)
{
	struct no_store *ns = xcalloc(1, sizeof(*ns));
	ns->op = op;
	ev_timer_init(&ns->t, no_store_cb, 0, 0);
	ev_timer_start(server.loop, &ns->t);
}

void muc_room_save(struct muc_room *r, muc_saved_fn *done, void *ctx)
{
	if (!r->cfg.persistent) {
		muc_room_forget(r, done, ctx);
		return;
	}
	struct save_op *op = save_op_new(r, done, ctx);
	struct storage *st = muc_store(r->svc);
	if (st == NULL) {
		answer_later(op);
		return;
	}
	size_t n = 0;
	for (struct muc_affiliation *a = r->affs; a != NULL; a = a->next)
		n++;
	struct muc_affiliation_item *items = xcalloc(n + 1, sizeof(*items));
	n = 0;
	for (struct muc_affiliation *a = r->affs; a != NULL; a = a->next) {
		items[n].jid = a->jid;
		items[n].affiliation = muc_aff_str(a->aff);
		items[n].reason = a->reason != NULL ? a->reason : "";
		n++;
	}
	char *config = muc_config_serialize(&r->cfg);
	struct muc_room_item item = {
		.name = r->name,
		.config = config,
		.subject = r->subject != NULL ? r->subject : "",
		.subject_nick = r->subject_nick != NULL ? r->subject_nick : "",
		.created = r->created,
		.affs = items,
		.naffs = n,
	};
	storage_muc_room_store(st, r->svc->host->name, r->svc->domain, &item, saved, op);
	free(config);
	free(items);
}

void muc_room_forget(struct muc_room *r, muc_saved_fn *done, void *ctx)
{
	struct save_op *op = save_op_new(r, done, ctx);
	struct storage *st = muc_store(r->svc);
	if (st == NULL) {
		answer_later(op);
		return;
	}
	storage_muc_room_delete(st, r->svc->host->name, r->svc->domain, r->name, saved, op);
}

/* ---- registered nicks -------------------------------------------------- */

const char *muc_registered_nick(const struct muc_service *svc, const char *bare)
{
	for (const struct muc_nick *n = svc->nicks; n != NULL; n = n->next)
		if (strcmp(n->jid, bare) == 0)
			return n->nick;
	return NULL;
}

const char *muc_nick_holder(const struct muc_service *svc, const char *nick)
{
	for (const struct muc_nick *n = svc->nicks; n != NULL; n = n->next)
		if (strcmp(n->nick, nick) == 0)
			return n->jid;
	return NULL;
}

void muc_nick_put(struct muc_service *svc, const char *bare, const char *nick)
{
	for (struct muc_nick **p = &svc->nicks; *p != NULL; p = &(*p)->next) {
		if (strcmp((*p)->jid, bare) == 0) {
			struct muc_nick *n = *p;
			*p = n->next;
			free(n->jid);
			free(n->nick);
			free(n);
			break;
		}
	}
	if (nick == NULL)
		return;
	struct muc_nick *n = xcalloc(1, sizeof(*n));
	n->jid = xstrdup(bare);
	n->nick = xstrdup(nick);
	n->next = svc->nicks;
	svc->nicks = n;
}

void muc_nick_register(struct muc_service *svc, const char *bare, const char *nick, muc_saved_fn *done,
                       void *ctx)
{
	struct save_op *op = xcalloc(1, sizeof(*op));
	op->done = done;
	op->ctx = ctx;
	op->room = xasprintf("the nick of %s", bare);
	op->svc = svc;
	svc->busy++;
	struct storage *st = muc_store(svc);
	if (st == NULL) {
		answer_later(op);
		return;
	}
	storage_muc_nick_set(st, svc->host->name, svc->domain, bare, nick, saved, op);
}

/* ---- access ------------------------------------------------------------ */

bool muc_is_service_admin(const struct muc_service *svc, const struct jid *j)
{
	if (host_is_admin(svc->host, j))
		return true;
	char *bare = jid_bare_string(j);
	bool r = strlist_contains(&svc->set->admins, bare);
	free(bare);
	return r;
}

bool muc_may_create(const struct muc_service *svc, const struct jid *j)
{
	if (muc_is_service_admin(svc, j))
		return true;
	switch (svc->set->access_create) {
	case MUC_ACCESS_ANYONE: return true;
	case MUC_ACCESS_LOCAL: return host_find(j->domain) != NULL && j->node != NULL;
	case MUC_ACCESS_ADMINS: return false;
	case MUC_ACCESS_LIST: {
		char *bare = jid_bare_string(j);
		bool r = strlist_contains(&svc->set->create_list, bare) ||
		         strlist_contains(&svc->set->create_list, j->domain);
		free(bare);
		return r;
	}
	}
	return false;
}

unsigned muc_rooms_owned(const struct muc_service *svc, const char *bare)
{
	unsigned n = 0;
	for (unsigned i = 0; i < svc->nbuckets; i++)
		for (struct muc_room *r = svc->buckets[i]; r != NULL; r = r->next)
			for (struct muc_affiliation *a = r->affs; a != NULL; a = a->next)
				if (a->aff == MUC_AFF_OWNER && strcmp(a->jid, bare) == 0)
					n++;
	return n;
}

/* ---- sending ----------------------------------------------------------- */

void muc_send(struct xml_node *stanza, const char *from, const char *to)
{
	struct jid fj = { 0 }, tj = { 0 };
	const char *err;
	if (jid_parse(from, &fj, &err) == 0 && jid_parse(to, &tj, &err) == 0) {
		xml_set_attr(stanza, "from", from);
		xml_set_attr(stanza, "to", to);
		router_route(stanza, &fj, &tj);
	}
	jid_clear(&fj);
	jid_clear(&tj);
	xml_unref(&stanza);
}

/* ---- the service's own iqs --------------------------------------------- */

void muc_iq_answer(struct xml_node *iq, const struct xml_node *payload)
{
	struct xml_node *res = stanza_iq_result(iq);
	if (payload != NULL)
		xml_append_copy(res, payload);
	const char *from = xml_attr(res, "from"), *to = xml_attr(res, "to");
	if (from != NULL && to != NULL) {
		xml_ref(res);
		muc_send(res, from, to);
	}
	xml_unref(&res);
}

static void add_feature(struct xml_node *q, const char *var)
{
	xml_set_attr(xml_add_child(q, "feature", NULL), "var", var);
}

static void service_disco_info(struct muc_service *svc, struct xml_node *iq, const struct xml_node *q)
{
	if (xml_attr(q, "node") != NULL) {
		router_bounce(iq, SE_ITEM_NOT_FOUND, NULL);
		return;
	}
	struct xml_node *res = xml_new("query", NS_DISCO_INFO);
	struct xml_node *id = xml_add_child(res, "identity", NULL);
	xml_set_attr(id, "category", "conference");
	xml_set_attr(id, "type", "text");
	xml_set_attr(id, "name", "Chatrooms");
	add_feature(res, NS_DISCO_INFO);
	add_feature(res, NS_DISCO_ITEMS);
	add_feature(res, NS_MUC);
	add_feature(res, NS_MUC_USER);
	add_feature(res, NS_RSM);
	add_feature(res, NS_PING);
	add_feature(res, NS_OCCUPANT_ID);
	add_feature(res, "http://jabber.org/protocol/muc#stable_id");
	add_feature(res, "http://jabber.org/protocol/muc#self-ping-optimization");
	add_feature(res, NS_CONFERENCE);
	muc_iq_answer(iq, res);
	xml_unref(&res);
}

/* disco#items of the service: its public, unlocked rooms by name, with
 * RSM (XEP-0059) paging by room JID. */
static void service_disco_items(struct muc_service *svc, struct xml_node *iq, const struct xml_node *q)
{
	if (xml_attr(q, "node") != NULL) {
		router_bounce(iq, SE_ITEM_NOT_FOUND, NULL);
		return;
	}
	const struct xml_node *set = xml_child(q, "set", NS_RSM);
	unsigned max = DISCO_ITEMS_MAX;
	const char *after = NULL, *before = NULL;
	bool want_last = false;
	long index = -1;
	if (set != NULL) {
		const char *m = xml_child_text(set, "max", NULL);
		if (m != NULL) {
			char *end;
			long v = strtol(m, &end, 10);
			if (*m == '\0' || *end != '\0' || v < 0) {
				router_bounce(iq, SE_BAD_REQUEST, "bad RSM max");
				return;
			}
			max = v > DISCO_ITEMS_MAX ? DISCO_ITEMS_MAX : (unsigned)v;
		}
		after = xml_child_text(set, "after", NULL);
		struct xml_node *b = xml_child(set, "before", NULL);
		if (b != NULL) {
			before = xml_text(b);
			if (before == NULL || *before == '\0') {
				before = NULL;
				want_last = true;
			}
		}
		const char *ix = xml_child_text(set, "index", NULL);
		if (ix != NULL)
			index = strtol(ix, NULL, 10);
	}
	size_t n;
	struct muc_room **all = muc_rooms_sorted(svc, &n);
	size_t pub = 0;
	for (size_t i = 0; i < n; i++)
		if (all[i]->cfg.public_room && !all[i]->locked && !all[i]->destroyed)
			all[pub++] = all[i];
	size_t from = 0, to = pub;
	if (after != NULL) {
		while (from < pub && strcmp(all[from]->jid, after) <= 0)
			from++;
	} else if (before != NULL) {
		to = 0;
		while (to < pub && strcmp(all[to]->jid, before) < 0)
			to++;
		from = to > max ? to - max : 0;
	} else if (want_last) {
		from = pub > max ? pub - max : 0;
	} else if (index >= 0) {
		from = (size_t)index < pub ? (size_t)index : pub;
	}
	if (to - from > max)
		to = from + max;
	struct xml_node *res = xml_new("query", NS_DISCO_ITEMS);
	for (size_t i = from; i < to; i++) {
		struct xml_node *it = xml_add_child(res, "item", NULL);
		xml_set_attr(it, "jid", all[i]->jid);
		xml_set_attr(it, "name",
		             all[i]->cfg.name != NULL && *all[i]->cfg.name ? all[i]->cfg.name : all[i]->name);
	}
	if (set != NULL) {
		struct xml_node *rs = xml_add_child(res, "set", NS_RSM);
		if (to > from) {
			struct xml_node *f = xml_add_child(rs, "first", NULL);
			char buf[32];
			snprintf(buf, sizeof(buf), "%zu", from);
			xml_set_attr(f, "index", buf);
			xml_add_text(f, all[from]->jid, strlen(all[from]->jid));
			struct xml_node *l = xml_add_child(rs, "last", NULL);
			xml_add_text(l, all[to - 1]->jid, strlen(all[to - 1]->jid));
		}
		char buf[32];
		snprintf(buf, sizeof(buf), "%zu", pub);
		xml_add_text(xml_add_child(rs, "count", NULL), buf, strlen(buf));
	}
	free(all);
	muc_iq_answer(iq, res);
	xml_unref(&res);
}

static void service_iq(struct muc_service *svc, struct xml_node *iq, const struct jid *from)
{
	const char *type = xml_attr(iq, "type");
	if (type == NULL || (strcmp(type, "get") != 0 && strcmp(type, "set") != 0))
		return;
	struct xml_node *q = xml_first_element(iq);
	if (q == NULL || xml_element_count(iq) != 1) {
		router_bounce(iq, SE_BAD_REQUEST, NULL);
		return;
	}
	bool get = strcmp(type, "get") == 0;
	if (get && xml_is(q, "query", NS_DISCO_INFO))
		service_disco_info(svc, iq, q);
	else if (get && xml_is(q, "query", NS_DISCO_ITEMS))
		service_disco_items(svc, iq, q);
	else if (get && xml_is(q, "ping", NS_PING))
		muc_iq_answer(iq, NULL);
	else
		router_bounce(iq, SE_SERVICE_UNAVAILABLE, NULL);
}

/* ---- routing ----------------------------------------------------------- */

/* Remove the occupants the room's broadcasts found slow or gone (the room
 * may be gone by now: it is looked up again). */
static void reap(struct muc_service *svc, const char *name)
{
	struct muc_room *r = muc_room_find(svc, name);
	if (r != NULL && !r->destroyed)
		muc_room_reap(r);
}

static void dispatch(struct muc_service *svc, struct xml_node *stanza, const struct jid *from,
                     const struct jid *to)
{
	enum stanza_kind kind = stanza_kind(stanza);
	if (to->node == NULL) {
		if (to->resource != NULL) {
			router_bounce(stanza, SE_SERVICE_UNAVAILABLE, NULL);
			return;
		}
		if (kind == STANZA_IQ)
			service_iq(svc, stanza, from);
		else if (kind == STANZA_MESSAGE)
			router_bounce(stanza, SE_SERVICE_UNAVAILABLE, NULL);
		return;
	}
	struct muc_room *r = muc_room_find(svc, to->node);
	if (kind == STANZA_PRESENCE) {
		muc_room_presence(svc, r, stanza, from, to);
		reap(svc, to->node);
		return;
	}
	if (r == NULL || r->destroyed) {
		router_bounce(stanza, SE_ITEM_NOT_FOUND, "no such room");
		return;
	}
	if (kind == STANZA_MESSAGE)
		muc_room_message(r, stanza, from, to);
	else if (kind == STANZA_IQ)
		muc_room_iq(r, stanza, from, to);
	reap(svc, to->node);
}

static void service_route(void *ctx, struct xml_node *stanza, const struct jid *from, const struct jid *to)
{
	struct muc_service *svc = ctx;
	if (!svc->loaded) {
		if (svc->nwaiting >= MAX_WAITING) {
			router_bounce(stanza, SE_RESOURCE_CONSTRAINT, "the rooms are being loaded");
			return;
		}
		svc->waiting = xrealloc(svc->waiting, (svc->nwaiting + 1) * sizeof(*svc->waiting));
		xml_ref(stanza);
		svc->waiting[svc->nwaiting++] = stanza;
		return;
	}
	dispatch(svc, stanza, from, to);
}

/* Route the stanzas that waited for the load, in order. */
static void replay_waiting(struct muc_service *svc)
{
	struct xml_node **w = svc->waiting;
	size_t n = svc->nwaiting;
	svc->waiting = NULL;
	svc->nwaiting = 0;
	for (size_t i = 0; i < n; i++) {
		struct jid fj = { 0 }, tj = { 0 };
		const char *err;
		const char *f = xml_attr(w[i], "from"), *t = xml_attr(w[i], "to");
		if (f != NULL && t != NULL && jid_parse(f, &fj, &err) == 0 && jid_parse(t, &tj, &err) == 0)
			dispatch(svc, w[i], &fj, &tj);
		jid_clear(&fj);
		jid_clear(&tj);
		xml_unref(&w[i]);
	}
	free(w);
}

static void loaded(enum storage_result res, const struct muc_room_item *rooms, size_t nrooms,
                   const struct muc_nick_item *nicks, size_t nnicks, void *ctx)
{
	struct muc_service *svc = ctx;
	if (svc->stopping) {
		service_idle(svc);
		return;
	}
	if (res != STORAGE_OK) {
		log_error("muc %s: loading the stored rooms failed (%s): only new rooms until a restart",
		          svc->domain, storage_result_str(res));
	} else {
		for (size_t i = 0; i < nrooms; i++) {
			const struct muc_room_item *it = &rooms[i];
			if (muc_room_find(svc, it->name) != NULL)
				continue;
			struct muc_room *r = muc_room_new(svc, it->name, NULL, false);
			muc_config_clear(&r->cfg); /* the stored one replaces the defaults */
			muc_config_parse(&r->cfg, it->config, svc->set);
			muc_room_salt(r); /* a room stored before it had one gets one now */
			r->cfg.persistent = true;
			r->created = it->created;
			if (it->subject != NULL && *it->subject != '\0') {
				r->subject = xstrdup(it->subject);
				r->subject_nick = xstrdup(it->subject_nick != NULL ? it->subject_nick : "");
			}
			struct muc_affiliation **tail = &r->affs;
			for (size_t k = 0; k < it->naffs; k++) {
				int a = muc_aff_parse(it->affs[k].affiliation);
				if (a < 0 || a == MUC_AFF_NONE)
					continue;
				struct muc_affiliation *na = xcalloc(1, sizeof(*na));
				na->jid = xstrdup(it->affs[k].jid);
				na->aff = a;
				na->reason = xstrdup(it->affs[k].reason != NULL ? it->affs[k].reason : "");
				*tail = na;
				tail = &na->next;
			}
		}
		for (size_t i = 0; i < nnicks; i++)
			muc_nick_put(svc, nicks[i].jid, nicks[i].nick);
		log_info("muc %s: %zu stored rooms, %zu registered nicks", svc->domain, nrooms, nnicks);
	}
	svc->loaded = true;
	replay_waiting(svc);
	service_idle(svc);
}

/* ---- the host's disco#items -------------------------------------------- */

static enum hook_result disco_items_hook(struct host *h, void *args, void *ctx)
{
	(void)h;
	struct muc_state *st = ctx;
	struct hook_disco *hd = args;
	if (hd->node != NULL)
		return HOOK_CONTINUE;
	for (struct muc_service *s = st->services; s != NULL && s->host == st->h; s = s->next) {
		struct xml_node *it = xml_add_child(hd->query, "item", NULL);
		xml_set_attr(it, "jid", s->domain);
		xml_set_attr(it, "name", "Chatrooms");
	}
	return HOOK_CONTINUE;
}

/* ---- removed accounts ------------------------------------------------------ */

/* An account of h was removed: its registered nicks and its affiliations
 * go, in every service of this server (a user of one host may be a member
 * of rooms of another's services). */
static enum hook_result remove_user_hook(struct host *h, void *args, void *ctx)
{
	(void)ctx;
	const struct hook_user *hu = args;
	char *bare = xasprintf("%s@%s", hu->user, h->name);
	for (struct muc_service *svc = all_services; svc != NULL; svc = svc->next) {
		if (svc->stopping)
			continue;
		if (muc_registered_nick(svc, bare) != NULL)
			muc_nick_register(svc, bare, NULL, NULL, NULL);
		size_t n;
		struct muc_room **rooms = muc_rooms_sorted(svc, &n);
		for (size_t i = 0; i < n; i++) {
			struct muc_room *r = rooms[i];
			bool had = false;
			for (struct muc_affiliation *a = r->affs; a != NULL; a = a->next)
				if (strcmp(a->jid, bare) == 0)
					had = true;
			if (!had || r->destroyed)
				continue;
			muc_room_set_affiliation(r, bare, MUC_AFF_NONE, NULL, NULL);
			if (r->cfg.persistent)
				muc_room_save(r, NULL, NULL);
		}
		free(rooms);
	}
	free(bare);
	return HOOK_CONTINUE;
}

/* ---- start and stop ---------------------------------------------------- */

static void service_free(struct muc_service *svc, bool shutdown)
{
	router_remove_route(svc->domain, svc);
	for (struct muc_service **p = &all_services; *p != NULL; p = &(*p)->next) {
		if (*p == svc) {
			*p = svc->next;
			break;
		}
	}
	size_t n;
	struct muc_room **rooms = muc_rooms_sorted(svc, &n);
	for (size_t i = 0; i < n; i++)
		muc_room_shutdown(rooms[i], shutdown);
	free(rooms);
	for (size_t i = 0; i < svc->nwaiting; i++)
		xml_unref(&svc->waiting[i]);
	free(svc->waiting);
	svc->waiting = NULL;
	svc->nwaiting = 0;
	if (svc->log != NULL)
		muc_log_free(&svc->log);
	svc->stopping = true;
	if (svc->busy == 0)
		service_final_free(svc);
}

/* The rest of a stopped service, once its store calls are done. */
static void service_final_free(struct muc_service *svc)
{
	size_t n;
	struct muc_room **rooms = muc_rooms_sorted(svc, &n);
	for (size_t i = 0; i < n; i++)
		muc_room_free(rooms[i]);
	free(rooms);
	while (svc->nicks != NULL)
		muc_nick_put(svc, svc->nicks->jid, NULL);
	free(svc->buckets);
	free(svc->domain);
	free(svc);
}

static void muc_stop(struct host *h, void *state);

static int muc_start(struct host *h, const void *settings, void **state_r, char **error_r)
{
	const struct muc_settings *set = settings;
	struct muc_state *st = xcalloc(1, sizeof(*st));
	st->h = h;
	st->set = set;
	*state_r = st;
	struct muc_service **tail = &st->services;
	for (size_t i = 0; i < set->hosts.count; i++) {
		char *domain = builtin_service_domain(set->hosts.items[i], h->name);
		if (domain == NULL) {
			*error_r = xasprintf("modules.muc.hosts: '%s' is not a valid domain",
			                     set->hosts.items[i]);
			muc_stop(h, st);
			return -1;
		}
		struct muc_service *svc = xcalloc(1, sizeof(*svc));
		svc->host = h;
		svc->set = set;
		svc->domain = domain;
		if (router_add_route(domain, h, service_route, svc, error_r) < 0) {
			free(svc->domain);
			free(svc);
			muc_stop(h, st);
			return -1;
		}
		if (set->log_dir != NULL && *set->log_dir != '\0') {
			/* One folder for all services: a room's pages are under its JID. */
			struct muc_log_settings ls = { .dir = set->log_dir,
				                       .css_url = set->log_css,
				                       .timezone = set->log_timezone };
			char *err = NULL;
			svc->log = muc_log_new(server.loop, &ls, &err);
			if (svc->log == NULL) {
				*error_r = xasprintf("modules.muc.log_dir: %s",
				                     err != NULL ? err : "cannot log");
				free(err);
				router_remove_route(domain, svc);
				free(svc->domain);
				free(svc);
				muc_stop(h, st);
				return -1;
			}
		}
		*tail = svc;
		tail = &svc->next;
		/* services of this host are contiguous in all_services */
	}
	/* Link this host's services in front of the global list. */
	if (st->services != NULL) {
		*tail = all_services;
		all_services = st->services;
	}
	hook_add(h, HOOK_DISCO_ITEMS, 50, disco_items_hook, st);
	hook_add(h, HOOK_REMOVE_USER, 50, remove_user_hook, st);
	for (struct muc_service *svc = st->services; svc != NULL && svc->host == h; svc = svc->next) {
		struct storage *store = muc_store(svc);
		if (store == NULL) {
			log_warning("muc %s: the host's store keeps no rooms: persistent rooms last until a "
			            "restart",
			            svc->domain);
			svc->loaded = true;
			continue;
		}
		svc->busy++;
		storage_muc_load(store, h->name, svc->domain, loaded, svc);
		log_info("muc %s: service of %s started", svc->domain, h->name);
	}
	char *err = NULL;
	if (module_running(h, "adhoc")) {
		if (muc_adhoc_start(h, &err) < 0) {
			log_warning("muc on %s: no ad-hoc commands: %s", h->name, err);
			free(err);
		} else {
			st->adhoc = true;
		}
	}
	return 0;
}

static void muc_stop(struct host *h, void *state)
{
	struct muc_state *st = state;
	if (st->adhoc)
		muc_adhoc_stop(h);
	hook_remove(h, HOOK_DISCO_ITEMS, disco_items_hook, st);
	hook_remove(h, HOOK_REMOVE_USER, remove_user_hook, st);
	struct muc_service *svc = st->services;
	while (svc != NULL && svc->host == h) {
		struct muc_service *next = svc->next;
		service_free(svc, true);
		svc = next;
	}
	free(st);
}

static void muc_domains(const struct host_config *hc, const void *settings, struct strlist *domains)
{
	const struct muc_settings *set = settings;
	builtin_service_domains(&set->hosts, hc->name, domains); /* muc_start judges the others */
}

const struct module_def mod_muc = {
	.name = "muc",
	.description = "XEP-0045 multi-user chat: rooms on conference services, with HTML room logs",
	.options = muc_options,
	.settings_size = sizeof(struct muc_settings),
	.default_enabled = false,
	.start = muc_start,
	.stop = muc_stop,
	.domains = muc_domains,
};
