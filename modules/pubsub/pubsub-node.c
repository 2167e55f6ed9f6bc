/*
 * The XEP-0060 protocol on an owner's nodes: the <pubsub/> and
 * <pubsub#owner/> requests, who may do what, publishing, retracting and
 * the notifications they send.  The same code serves a pubsub service and
 * a user's PEP (XEP-0163); what differs is who owns the node (PEP: the
 * account, whose roster decides presence and roster access, and who is
 * notified through +notify caps) and where answers go (ps_reply).
 *
 * Every change is made in memory and written through to the store; the
 * request is answered after the write succeeded (a failed write is
 * answered with the mapped error and the memory state stays, to be
 * retried by the next write of the node).  Loop thread.
 *
 * Access (XEP-0060 §4.5, §12): a notification reaches only subscribers
 * who may read the node at the time it is sent, judged from memory
 * (affiliations, cached rosters: never a store read on the publish
 * path).  An entity that loses access (the access model changes, its
 * affiliation changes, the owner's roster no longer gives it presence
 * or an allowed group) loses its subscriptions to the node, is told
 * (subscription 'none') and the node is stored; presence and roster
 * access are only judged so when every roster that decides them is in
 * memory.  The owner cannot subscribe an entity without access.  A
 * service node always has an owner affiliation.
 */
#include "pubsub.h"

#include "modules/builtin.h"
#include "modules/caps.h"
#include "modules/errmap.h"
#include "modules/pep.h"
#include "server/host.h"
#include "server/hooks.h"
#include "server/router.h"
#include "server/server.h"
#include "server/sm.h"
#include "lib/log.h"

#include <ev.h>
#include <limits.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NS_DELAY "urn:xmpp:delay"
#define NS_SHIM "http://jabber.org/protocol/shim"
#define ITEMS_PAGE_MAX 100 /* items in one answer without max_items or RSM */

/* ---- node state ------------------------------------------------------- */

struct ps_node *ps_node_find(struct ps_owner *o, const char *name)
{
	for (struct ps_node *n = o->nodes; n != NULL; n = n->next)
		if (strcmp(n->name, name) == 0)
			return n;
	return NULL;
}

void ps_item_free(struct ps_item *it)
{
	free(it->id);
	free(it->publisher);
	xml_unref(&it->payload);
	free(it);
}

void ps_node_free(struct ps_node *n)
{
	ps_config_clear(&n->cfg);
	for (size_t i = 0; i < n->naffs; i++)
		free(n->affs[i].jid);
	free(n->affs);
	for (size_t i = 0; i < n->nsubs; i++) {
		free(n->subs[i].jid);
		free(n->subs[i].subid);
	}
	free(n->subs);
	while (n->newest != NULL) {
		struct ps_item *it = n->newest;
		n->newest = it->older;
		ps_item_free(it);
	}
	free(n->name);
	free(n);
}

static enum ps_aff node_aff(const struct ps_node *n, const char *bare)
{
	for (size_t i = 0; i < n->naffs; i++)
		if (strcmp(n->affs[i].jid, bare) == 0)
			return n->affs[i].aff;
	return PS_AFF_NONE;
}

static void node_set_aff(struct ps_node *n, const char *bare, enum ps_aff aff)
{
	for (size_t i = 0; i < n->naffs; i++) {
		if (strcmp(n->affs[i].jid, bare) != 0)
			continue;
		if (aff == PS_AFF_NONE) {
			free(n->affs[i].jid);
			n->affs[i] = n->affs[--n->naffs];
		} else {
			n->affs[i].aff = aff;
		}
		return;
	}
	if (aff == PS_AFF_NONE)
		return;
	n->affs = xrealloc(n->affs, (n->naffs + 1) * sizeof(*n->affs));
	n->affs[n->naffs++] = (struct ps_affiliation){ xstrdup(bare), aff };
}

static struct ps_subscription *sub_find(struct ps_node *n, const char *jid, const char *subid)
{
	for (size_t i = 0; i < n->nsubs; i++)
		if (strcmp(n->subs[i].jid, jid) == 0 &&
		    (subid == NULL || strcmp(n->subs[i].subid, subid) == 0))
			return &n->subs[i];
	return NULL;
}

static void sub_remove(struct ps_node *n, struct ps_subscription *s)
{
	free(s->jid);
	free(s->subid);
	*s = n->subs[--n->nsubs];
}

static char *new_id(void)
{
	unsigned char raw[8];
	if (RAND_bytes(raw, sizeof(raw)) != 1) {
		static uint64_t counter;
		uint64_t v = (uint64_t)time(NULL) ^ ++counter;
		memcpy(raw, &v, sizeof(raw));
	}
	char *out = xmalloc(17);
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(out + 2 * i, 3, "%02x", raw[i]);
	return out;
}

static bool is_pep(const struct ps_owner *o)
{
	return o->user != NULL;
}

/* Whether from is the owner: PEP's account, or a node owner / the
 * service's admin. */
static bool owns(const struct ps_owner *o, const struct ps_node *n, const struct jid *from, const char *bare)
{
	if (is_pep(o))
		return strcmp(bare, o->key) == 0;
	if (n != NULL && node_aff(n, bare) == PS_AFF_OWNER)
		return true;
	return host_is_admin(o->st->h, from);
}

static enum ps_aff aff_of(const struct ps_owner *o, const struct ps_node *n, const struct jid *from,
                          const char *bare)
{
	if (owns(o, n, from, bare))
		return PS_AFF_OWNER;
	return n != NULL ? node_aff(n, bare) : PS_AFF_NONE;
}

/* The roster item of bare in the roster of the PEP owner o (NULL when
 * none or not loaded). */
static const struct roster_item *roster_of(const struct ps_owner *o, const char *bare)
{
	if (o == NULL || o->roster_state != PS_LOADED)
		return NULL;
	return roster_find_item(o->roster, o->nroster, bare);
}

static bool has_from(const struct roster_item *it)
{
	return it != NULL && (it->subscription == SUB_FROM || it->subscription == SUB_BOTH);
}

static bool in_groups(const struct roster_item *it, const struct strlist *groups)
{
	if (it == NULL)
		return false;
	for (size_t i = 0; i < it->groups.count; i++)
		if (strlist_contains(groups, it->groups.items[i]))
			return true;
	return false;
}

/* The PEP owners whose rosters decide presence/roster access to n: the
 * account for PEP, the local owners of a service node. */
static size_t roster_holders(struct ps_owner *o, struct ps_node *n, struct ps_owner **out, size_t max,
                             bool make)
{
	if (is_pep(o)) {
		out[0] = o;
		return 1;
	}
	size_t k = 0;
	for (size_t i = 0; n != NULL && i < n->naffs && k < max; i++) {
		if (n->affs[i].aff != PS_AFF_OWNER)
			continue;
		struct jid j = { 0 };
		const char *err;
		if (jid_parse(n->affs[i].jid, &j, &err) == 0 && j.node != NULL &&
		    strcmp(j.domain, o->st->h->name) == 0) {
			struct ps_owner *p =
			        make ? ps_pep_owner(o->st, j.node) : ps_pep_owner_find(o->st, j.node);
			if (p != NULL)
				out[k++] = p;
		}
		jid_clear(&j);
	}
	return k;
}

/* Whether n's access model is decided by rosters (presence, roster). */
static bool access_by_roster(enum ps_access a)
{
	return a == PS_ACCESS_PRESENCE || a == PS_ACCESS_ROSTER;
}

/* Whether bare may see n's items and subscribe (not counting
 * affiliations and the authorize model's approvals). */
static bool access_allows(struct ps_owner *o, struct ps_node *n, const char *bare)
{
	struct ps_owner *holders[8];
	size_t k;
	switch (n->cfg.access) {
	case PS_ACCESS_OPEN:
	case PS_ACCESS_AUTHORIZE: return true;
	case PS_ACCESS_WHITELIST: return false;
	case PS_ACCESS_PRESENCE:
		k = roster_holders(o, n, holders, ARRAY_SIZE(holders), false);
		for (size_t i = 0; i < k; i++)
			if (has_from(roster_of(holders[i], bare)))
				return true;
		return false;
	case PS_ACCESS_ROSTER:
		k = roster_holders(o, n, holders, ARRAY_SIZE(holders), false);
		for (size_t i = 0; i < k; i++)
			if (in_groups(roster_of(holders[i], bare), &n->cfg.roster_groups))
				return true;
		return false;
	}
	return false;
}

/* Whether bare may read n's items (retrieve, last items). */
static bool may_read(struct ps_owner *o, struct ps_node *n, const struct jid *from, const char *bare)
{
	enum ps_aff a = aff_of(o, n, from, bare);
	if (a == PS_AFF_OUTCAST || a == PS_AFF_PUBLISH_ONLY)
		return false; /* XEP-0060 §4.1: publish-only neither reads nor subscribes */
	if (a == PS_AFF_OWNER || a == PS_AFF_PUBLISHER || a == PS_AFF_MEMBER)
		return true;
	if (n->cfg.access == PS_ACCESS_AUTHORIZE) {
		for (size_t i = 0; i < n->nsubs; i++) {
			struct jid sj = { 0 };
			const char *err;
			bool match = n->subs[i].state == PS_SUB_SUBSCRIBED &&
			             jid_parse(n->subs[i].jid, &sj, &err) == 0 && jid_bare_equal(&sj, from);
			jid_clear(&sj);
			if (match)
				return true;
		}
		return false;
	}
	return access_allows(o, n, bare);
}

/* Whether the subscription of j (bare: its bare JID) to n is authorized
 * now (XEP-0060 §4.5, §12): j is neither outcast nor publish-only, and its
 * affiliation or the access model lets it read n's items; under the
 * authorize model the subscription is itself the owner's approval.  From
 * what is in memory only (affiliations, cached rosters): no store call,
 * and a roster not in memory grants nothing.  by_roster false: presence
 * and roster access are not judged (they are taken as granted), for when
 * the rosters are not all known. */
static bool sub_allowed(struct ps_owner *o, struct ps_node *n, const struct jid *j, const char *bare,
                        bool by_roster)
{
	enum ps_aff a = aff_of(o, n, j, bare);
	if (a == PS_AFF_OUTCAST || a == PS_AFF_PUBLISH_ONLY)
		return false;
	if (a == PS_AFF_OWNER || a == PS_AFF_PUBLISHER || a == PS_AFF_MEMBER)
		return true;
	if (n->cfg.access == PS_ACCESS_AUTHORIZE)
		return true;
	if (access_by_roster(n->cfg.access) && !by_roster)
		return true;
	return access_allows(o, n, bare);
}

/* Whether the rosters a request on n needs, n's access model being
 * access, are loaded; when not, their loads are started and r runs again
 * once they are done. */
static void rerun(struct ps_owner *o, bool ok, void *ctx);
static bool rosters_ready_as(struct ps_req *r, struct ps_node *n, enum ps_access access)
{
	if (n == NULL || !access_by_roster(access))
		return true;
	struct ps_owner *holders[8];
	size_t k = roster_holders(r->o, n, holders, ARRAY_SIZE(holders), true);
	for (size_t i = 0; i < k; i++) {
		if (holders[i]->roster_state == PS_LOADING || holders[i]->state == PS_LOADING) {
			ps_owner_when_ready(holders[i], rerun, r);
			return false;
		}
	}
	return true;
}

static bool rosters_ready(struct ps_req *r, struct ps_node *n)
{
	return n == NULL || rosters_ready_as(r, n, n->cfg.access);
}

/* Whether every roster that decides presence or roster access to n is in
 * memory (a holder that is not loaded, or whose roster could not be read,
 * leaves the answer unknown). */
static bool rosters_known(struct ps_owner *o, struct ps_node *n)
{
	if (!access_by_roster(n->cfg.access))
		return true;
	struct ps_owner *holders[8];
	size_t k = roster_holders(o, n, holders, ARRAY_SIZE(holders), false);
	size_t local = 0;
	for (size_t i = 0; !is_pep(o) && i < n->naffs && local < ARRAY_SIZE(holders); i++) {
		struct jid j = { 0 };
		const char *err;
		if (n->affs[i].aff == PS_AFF_OWNER && jid_parse(n->affs[i].jid, &j, &err) == 0 &&
		    j.node != NULL && strcmp(j.domain, o->st->h->name) == 0)
			local++;
		jid_clear(&j);
	}
	if (k < local)
		return false;
	for (size_t i = 0; i < k; i++)
		if (holders[i]->roster_state != PS_LOADED)
			return false;
	return true;
}

static void rerun(struct ps_owner *o, bool ok, void *ctx)
{
	(void)o;
	(void)ok;
	ps_handle(ctx);
}

/* ---- notifications ------------------------------------------------------ */

/* One notification sent to many: the message and its wire form. */
struct fanout {
	struct ps_owner *o;
	struct xml_node *msg;
	struct xml_wire wire;
	bool wired;
	struct jid from;
	unsigned sent;
};

static void fanout_init(struct fanout *f, struct ps_owner *o, struct xml_node *msg)
{
	*f = (struct fanout){ .o = o, .msg = msg };
	jid_copy(&f->from, &o->jid);
	xml_set_attr(msg, "from", o->key);
}

static void fanout_send(struct fanout *f, const struct jid *to)
{
	struct host *h = f->o->st->h;
	f->sent++;
	if (to->node == NULL || strcmp(to->domain, h->name) != 0) {
		char *s = jid_to_string(to);
		xml_set_attr(f->msg, "to", s);
		free(s);
		router_route(f->msg, &f->from, to);
		return;
	}
	char *s = jid_to_string(to);
	xml_set_attr(f->msg, "to", s);
	free(s);
	if (!f->wired)
		f->wired = xml_wire_build(&f->wire, f->msg, NS_CLIENT) == 0;
	if (f->wired)
		sm_route_wire(h, f->msg, &f->from, to, &f->wire);
	else
		sm_route(h, f->msg, &f->from, to);
}

static void fanout_done(struct fanout *f)
{
	if (f->wired)
		xml_wire_free(&f->wire);
	jid_clear(&f->from);
	xml_unref(&f->msg);
}

static struct xml_node *event_message(const struct ps_node *n, struct xml_node **items_r)
{
	struct xml_node *m = xml_new("message", NS_CLIENT);
	xml_set_attr(m, "type", n->cfg.headline ? "headline" : "normal");
	char *id = new_id();
	xml_set_attr(m, "id", id);
	free(id);
	struct xml_node *ev = xml_add_child(m, "event", NS_PUBSUB_EVENT);
	if (items_r != NULL) {
		*items_r = xml_add_child(ev, "items", NULL);
		xml_set_attr(*items_r, "node", n->name);
	}
	return m;
}

static void add_item_el(struct xml_node *parent, const struct ps_item *it, bool payload, bool publisher)
{
	struct xml_node *el = xml_add_child(parent, "item", NULL);
	xml_set_attr(el, "id", it->id);
	if (publisher && it->publisher[0] != '\0')
		xml_set_attr(el, "publisher", it->publisher);
	if (payload && it->payload != NULL)
		xml_append_copy(el, it->payload);
}

static bool caps_notify(const struct caps_info *c, const char *node)
{
	if (c == NULL)
		return false;
	char feature[1100];
	snprintf(feature, sizeof(feature), "%s+notify", node);
	return caps_has(c, feature);
}

static bool wants_notify(const struct session *s, const char *node)
{
	return caps_notify(caps_of_session(s), node);
}

/* A full JID string sent to already (small sets: linear). */
struct sent_set {
	char **jids;
	size_t n;
};
static bool sent_add(struct sent_set *s, const struct jid *j)
{
	char *str = jid_to_string(j);
	for (size_t i = 0; i < s->n; i++) {
		if (strcmp(s->jids[i], str) == 0) {
			free(str);
			return false;
		}
	}
	s->jids = xrealloc(s->jids, (s->n + 1) * sizeof(char *));
	s->jids[s->n++] = str;
	return true;
}
static void sent_clear(struct sent_set *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->jids[i]);
	free(s->jids);
}

/* Send to the available sessions of local user (bare) that +notify for
 * n (interested: PEP's implicit subscription). */
static void notify_local_sessions(struct fanout *f, struct sent_set *sent, struct host *h, const char *user,
                                  const char *node)
{
	for (struct session *s = sm_user_sessions(h, user); s != NULL; s = s->next_of_user) {
		if (!s->available || !wants_notify(s, node))
			continue;
		/* the set holds the subscriptions' targets only (PEP contacts
		 * and the account's resources are distinct sessions) */
		if (sent->n == 0 || sent_add(sent, &s->jid))
			fanout_send(f, &s->jid);
	}
}

/* The local part of bare (a prepared bare JID) when its domain is a
 * virtual host of this server (h itself, checked first, or another),
 * copied into buf, with that host in *host_r; NULL otherwise.  No parse:
 * roster JIDs are prepared already. */
static const char *local_part(const char *bare, struct host *h, struct host **host_r, char *buf, size_t size)
{
	const char *at = strchr(bare, '@');
	if (at == NULL || strchr(at, '/') != NULL || (size_t)(at - bare) >= size)
		return NULL;
	*host_r = strcmp(at + 1, h->name) == 0 ? h : host_find(at + 1);
	if (*host_r == NULL)
		return NULL; /* another server's user: not without federation */
	memcpy(buf, bare, (size_t)(at - bare));
	buf[at - bare] = '\0';
	return buf;
}

/* Whether the contact it (in the PEP owner o's roster, NULL when not
 * there) gets n's notifications, its caps and blocking aside: presence
 * access, roster groups, affiliations. */
static bool contact_notified(const struct ps_owner *o, const struct ps_node *n, const struct roster_item *it)
{
	if (!has_from(it) || strcmp(it->jid, o->key) == 0)
		return false;
	if (n->cfg.access == PS_ACCESS_ROSTER && !in_groups(it, &n->cfg.roster_groups))
		return false;
	if (n->naffs > 0) {
		enum ps_aff a = node_aff(n, it->jid);
		if (a == PS_AFF_OUTCAST || (n->cfg.access == PS_ACCESS_WHITELIST && a < PS_AFF_MEMBER))
			return false;
	} else if (n->cfg.access == PS_ACCESS_WHITELIST) {
		return false;
	}
	return true;
}

/* Whether the PEP owner o's account blocks the bare JID of full. */
static bool owner_blocks(const struct ps_owner *o, const struct jid *full)
{
	struct jid bj = { 0 };
	jid_set(&bj, full->node, full->domain, NULL);
	bool blocked = blocking_blocks(o->st->h, o->user, &bj);
	jid_clear(&bj);
	return blocked;
}

/* The notification of n to a contact's resource on another server whose
 * caps the owner's account learned from its presence (mod_caps). */
struct remote_notify {
	struct ps_owner *o;
	struct ps_node *n;
	struct fanout *f;
	struct sent_set *sent;
};
static void notify_remote(const struct jid *full, const struct caps_info *c, void *ctx)
{
	struct remote_notify *rn = ctx;
	if (!caps_notify(c, rn->n->name))
		return;
	char *bare = jid_bare_string(full);
	bool gets = contact_notified(rn->o, rn->n, roster_of(rn->o, bare));
	free(bare);
	if (gets && !owner_blocks(rn->o, full) && sent_add(rn->sent, full))
		fanout_send(rn->f, full);
}

/* Send msg to everyone who gets n's notifications: subscribers who may
 * read n now (sub_allowed), and for PEP the account's own resources and
 * its contacts with presence access, when they +notify.  Consumes msg. */
static void notify(struct ps_owner *o, struct ps_node *n, struct xml_node *msg)
{
	struct fanout f;
	fanout_init(&f, o, msg);
	struct sent_set sent = { 0 };
	struct host *h = o->st->h;
	for (size_t i = 0; i < n->nsubs; i++) {
		const struct ps_subscription *s = &n->subs[i];
		if (s->state != PS_SUB_SUBSCRIBED || !s->deliver)
			continue;
		struct jid j = { 0 };
		const char *err;
		if (jid_parse(s->jid, &j, &err) != 0)
			continue;
		/* an entity that lost access hears nothing, even before its
		 * subscription is cancelled */
		char *bare = jid_bare_string(&j);
		bool allowed = sub_allowed(o, n, &j, bare, true);
		free(bare);
		if (!allowed) {
			jid_clear(&j);
			continue;
		}
		if (j.resource == NULL && j.node != NULL && strcmp(j.domain, h->name) == 0) {
			/* a bare local JID: its available resources */
			for (struct session *ss = sm_user_sessions(h, j.node); ss != NULL;
			     ss = ss->next_of_user)
				if (ss->available && sent_add(&sent, &ss->jid))
					fanout_send(&f, &ss->jid);
		} else if (sent_add(&sent, &j)) {
			fanout_send(&f, &j);
		}
		jid_clear(&j);
	}
	if (is_pep(o)) {
		notify_local_sessions(&f, &sent, h, o->user, n->name);
		for (size_t i = 0; i < o->nroster; i++) {
			const struct roster_item *it = &o->roster[i];
			if (!contact_notified(o, n, it))
				continue;
			char buf[1024];
			struct host *ch;
			const char *user = local_part(it->jid, h, &ch, buf, sizeof(buf));
			if (user == NULL || sm_user_sessions(ch, user) == NULL)
				continue;
			/* a contact the account blocks hears nothing from it (XEP-0191) */
			struct jid cj = { 0 };
			jid_set(&cj, user, ch->name, NULL);
			bool blocked = blocking_blocks(h, o->user, &cj);
			jid_clear(&cj);
			if (!blocked)
				notify_local_sessions(&f, &sent, ch, user, n->name);
		}
		/* contacts on other servers: their resources whose caps came
		 * with the presence the account received */
		struct remote_notify rn = { o, n, &f, &sent };
		caps_foreach_remote(h, o->user, notify_remote, &rn);
	}
	sent_clear(&sent);
	fanout_done(&f);
}

static void notify_item(struct ps_owner *o, struct ps_node *n, const struct ps_item *it)
{
	if (!n->cfg.deliver_notifications)
		return;
	struct xml_node *items;
	struct xml_node *m = event_message(n, &items);
	add_item_el(items, it, n->cfg.deliver_payloads, true);
	notify(o, n, m);
}

static void notify_retract(struct ps_owner *o, struct ps_node *n, const char *id)
{
	if (!n->cfg.notify_retract)
		return;
	struct xml_node *items;
	struct xml_node *m = event_message(n, &items);
	xml_set_attr(xml_add_child(items, "retract", NULL), "id", id);
	notify(o, n, m);
}

static void notify_simple(struct ps_owner *o, struct ps_node *n, const char *what)
{
	struct xml_node *m = event_message(n, NULL);
	struct xml_node *el = xml_add_child(xml_first_element(m), what, NULL);
	xml_set_attr(el, "node", n->name);
	notify(o, n, m);
}

/* The last item of n to one JID, with <delay/> (XEP-0060 §6.1.7). */
static void send_last(struct ps_owner *o, struct ps_node *n, const struct jid *to)
{
	if (n->newest == NULL || !n->cfg.deliver_notifications)
		return;
	struct xml_node *items;
	struct xml_node *m = event_message(n, &items);
	add_item_el(items, n->newest, n->cfg.deliver_payloads, true);
	struct xml_node *d = xml_add_child(m, "delay", NS_DELAY);
	char stamp[XEP82_STAMP_LEN];
	xep82_stamp(stamp, (int64_t)n->newest->published);
	xml_set_attr(d, "stamp", stamp);
	xml_set_attr(d, "from", o->key);
	struct fanout f;
	fanout_init(&f, o, m);
	fanout_send(&f, to);
	fanout_done(&f);
}

/* ---- storage of changes ------------------------------------------------ */

/* A write in flight: answers r (when not NULL) when the store is done. */
static struct ps_item *item_find(struct ps_node *n, const char *id)
{
	for (struct ps_item *it = n->newest; it != NULL; it = it->older)
		if (strcmp(it->id, id) == 0)
			return it;
	return NULL;
}

static void item_unlink(struct ps_node *n, struct ps_item *it)
{
	if (it->newer != NULL)
		it->newer->older = it->older;
	else
		n->newest = it->older;
	if (it->older != NULL)
		it->older->newer = it->newer;
	else
		n->oldest = it->newer;
	it->newer = it->older = NULL;
	n->nitems--;
}

static void item_push(struct ps_node *n, struct ps_item *it)
{
	it->older = n->newest;
	it->newer = NULL;
	if (n->newest != NULL)
		n->newest->newer = it;
	else
		n->oldest = it;
	n->newest = it;
	n->nitems++;
}

/* How many items n keeps (one without persistence). */
static unsigned node_keep(const struct ps_node *n)
{
	const struct pubsub_settings *set = n->owner->st->set;
	unsigned keep = n->cfg.persist_items ? n->cfg.max_items : 1;
	if (keep == PS_MAX_ITEMS_MAX || keep > set->max_items_per_node)
		keep = set->max_items_per_node;
	return keep == 0 ? 1 : keep;
}

struct write_op {
	struct write_op *next, **prevp; /* the owner's writes */
	struct ps_req *r;
	struct ps_owner *o;
	struct xml_node *answer;
	/* after a stored publish: the hook's fields */
	char *node, *id, *origin;
	struct xml_node *payload;
	bool retract;
	char *last_node, *last_to; /* after a subscribe: the last item to send */
	/* a publish: the item, put into the node once stored, and the ids
	 * the store call removed; a retract: notify the retraction */
	struct ps_item *item;
	char *created; /* a new node's name: gone again when its row was not stored */
	char **stored_evict;
	size_t nstored_evict;
	bool notify_retract;
	ps_done_fn *done;
	void *done_ctx;
};

static void hook_published(struct write_op *w)
{
	if (w->node == NULL || !is_pep(w->o) || w->o->stopping)
		return;
	struct hook_pep hp = { .user = w->o->user,
		               .node = w->node,
		               .id = w->id,
		               .payload = w->retract ? NULL : w->payload,
		               .origin = w->origin };
	hook_run(w->o->st->h, HOOK_PEP_PUBLISHED, &hp);
}

static void write_done(enum storage_result res, void *ctx);
static void node_unlink(struct ps_owner *o, struct ps_node *n);
static struct write_op *write_new(struct ps_owner *o, struct ps_req *r, const struct xml_node *answer);

/* A stored publish or retract reaches the node in memory (when the node
 * is still there) and its subscribers.  Items pushed out here that the
 * store call did not remove (publishes in flight together) are removed
 * from the store now. */
static void apply_stored(struct write_op *w)
{
	struct ps_owner *o = w->o;
	struct ps_node *n = w->node != NULL ? ps_node_find(o, w->node) : NULL;
	if (n == NULL || (w->item == NULL && !w->retract))
		return;
	if (w->retract) {
		struct ps_item *it = item_find(n, w->id);
		if (it == NULL)
			return;
		item_unlink(n, it);
		ps_item_free(it);
		if (w->notify_retract || n->cfg.notify_retract)
			notify_retract(o, n, w->id);
		return;
	}
	struct ps_item *it = w->item;
	w->item = NULL;
	struct ps_item *old = item_find(n, it->id);
	if (old != NULL) {
		item_unlink(n, old);
		ps_item_free(old);
	}
	item_push(n, it);
	unsigned keep = node_keep(n);
	struct storage *st = ps_store(o->st);
	while (n->nitems > keep) {
		struct ps_item *gone = n->oldest;
		item_unlink(n, gone);
		bool removed = false;
		for (size_t i = 0; i < w->nstored_evict && !removed; i++)
			removed = strcmp(w->stored_evict[i], gone->id) == 0;
		if (!removed && st != NULL) {
			const char *ids[1] = { gone->id };
			struct write_op *d = write_new(o, NULL, NULL);
			storage_pubsub_item_delete(st, o->st->h->name, o->key, n->name, ids, 1, write_done,
			                           d);
		}
		ps_item_free(gone);
	}
	notify_item(o, n, it);
}

static void write_done(enum storage_result res, void *ctx)
{
	struct write_op *w = ctx;
	struct ps_owner *o = w->o;
	o->busy--;
	*w->prevp = w->next;
	if (w->next != NULL)
		w->next->prevp = w->prevp;
	if (res == STORAGE_OK && !o->stopping)
		apply_stored(w);
	if (res != STORAGE_OK && w->created != NULL && !o->stopping) {
		struct ps_node *n = ps_node_find(o, w->created);
		if (n != NULL && n->nitems == 0) {
			node_unlink(o, n);
			ps_node_free(n);
		}
	}
	if (res == STORAGE_OK)
		hook_published(w);
	if (w->done != NULL)
		w->done(res == STORAGE_OK ? 0 : SE_INTERNAL_SERVER_ERROR, res == STORAGE_OK, w->done_ctx);
	if (w->r != NULL) {
		if (res == STORAGE_OK) {
			ps_reply(w->r, w->answer);
			w->r = NULL;
			struct ps_node *n =
			        w->last_node != NULL && !o->stopping ? ps_node_find(o, w->last_node) : NULL;
			struct jid to = { 0 };
			const char *err;
			if (n != NULL && jid_parse(w->last_to, &to, &err) == 0)
				send_last(o, n, &to); /* after the subscription's result (§6.1.7) */
			jid_clear(&to);
		} else {
			log_error("pubsub %s: a change could not be stored: %s", o->key,
			          storage_result_str(res));
			enum stanza_error e = errmap_storage(res);
			ps_reply_error(w->r, e, NULL, NULL, "the change could not be stored");
		}
	}
	if (w->item != NULL)
		ps_item_free(w->item);
	for (size_t i = 0; i < w->nstored_evict; i++)
		free(w->stored_evict[i]);
	free(w->stored_evict);
	xml_unref(&w->answer);
	xml_unref(&w->payload);
	free(w->last_node);
	free(w->last_to);
	free(w->created);
	free(w->node);
	free(w->id);
	free(w->origin);
	free(w);
	if (o->stopping && o->busy == 0)
		ps_owner_when_ready(o, NULL, NULL); /* frees a stopped owner */
}

static struct write_op *write_new(struct ps_owner *o, struct ps_req *r, const struct xml_node *answer)
{
	struct write_op *w = xcalloc(1, sizeof(*w));
	w->o = o;
	w->r = r;
	if (answer != NULL) {
		w->answer = (struct xml_node *)answer;
		xml_ref(w->answer);
	}
	o->busy++;
	w->next = o->writes;
	w->prevp = &o->writes;
	if (o->writes != NULL)
		o->writes->prevp = &w->next;
	o->writes = w;
	return w;
}

void ps_owner_abort_writes(struct ps_owner *o)
{
	for (struct write_op *w = o->writes; w != NULL; w = w->next) {
		if (w->r != NULL) {
			ps_reply_error(w->r, SE_RESOURCE_CONSTRAINT, NULL, NULL, "the service is stopping");
			w->r = NULL;
		}
		if (w->done != NULL)
			w->done(SE_RESOURCE_CONSTRAINT, false, w->done_ctx);
		w->done = NULL;
	}
}

/* Store n's row (config, affiliations, subscriptions); answer r after. */
static struct write_op *save_node(struct ps_node *n, struct ps_req *r, const struct xml_node *answer)
{
	struct ps_owner *o = n->owner;
	struct write_op *w = write_new(o, r, answer);
	struct storage *st = ps_store(o->st);
	if (st == NULL) {
		write_done(STORAGE_OK, w);
		return NULL;
	}
	struct pubsub_affiliation_item *affs = xcalloc(n->naffs + 1, sizeof(*affs));
	for (size_t i = 0; i < n->naffs; i++)
		affs[i] = (struct pubsub_affiliation_item){ n->affs[i].jid, ps_aff_str(n->affs[i].aff) };
	static const char *const states[] = { "none", "pending", "unconfigured", "subscribed" };
	struct pubsub_subscription_item *subs = xcalloc(n->nsubs + 1, sizeof(*subs));
	for (size_t i = 0; i < n->nsubs; i++)
		subs[i] = (struct pubsub_subscription_item){ n->subs[i].jid, n->subs[i].subid,
			                                     states[n->subs[i].state],
			                                     n->subs[i].deliver ? "" : "deliver=0" };
	char *cfg = ps_config_serialize(&n->cfg);
	struct pubsub_node_item ni = { .name = n->name,
		                       .config = cfg,
		                       .created = n->created,
		                       .affs = affs,
		                       .naffs = n->naffs,
		                       .subs = subs,
		                       .nsubs = n->nsubs };
	storage_pubsub_node_store(st, o->st->h->name, o->key, &ni, write_done, w);
	free(cfg);
	free(affs);
	free(subs);
	return w;
}

void ps_node_save(struct ps_node *n)
{
	(void)save_node(n, NULL, NULL);
}

/* ---- answering ------------------------------------------------------------ */

static void error_app(struct ps_req *r, enum stanza_error e, const char *app, const char *feature)
{
	ps_reply_error(r, e, app, feature, NULL);
}

/* ---- create, configure, delete, purge ------------------------------------- */

/* Cancel the subscriptions to n of entities that may not read it now
 * (only: those of that bare JID; NULL: all), telling each (XEP-0060 §12);
 * presence and roster access are judged only when every roster that
 * decides them is in memory.  True when one went: the caller stores n. */
static bool prune_subs(struct ps_owner *o, struct ps_node *n, const char *only);

static size_t nodes_of_creator(struct ps_owner *o, const char *bare)
{
	if (is_pep(o))
		return o->nnodes;
	size_t k = 0;
	for (struct ps_node *n = o->nodes; n != NULL; n = n->next)
		if (node_aff(n, bare) == PS_AFF_OWNER)
			k++;
	return k;
}

static bool may_create(struct ps_owner *o, const struct jid *from, const char *bare)
{
	struct ps_state *st = o->st;
	if (is_pep(o))
		return strcmp(bare, o->key) == 0;
	if (host_is_admin(st->h, from))
		return true;
	switch ((enum ps_create)st->set->access_create) {
	case PS_CREATE_ANYONE: return true;
	case PS_CREATE_LOCAL: return from->node != NULL && strcmp(from->domain, st->h->name) == 0;
	case PS_CREATE_ADMINS: return false;
	case PS_CREATE_LIST: return strlist_contains(&st->set->create_list, bare);
	}
	return false;
}

static struct ps_node *node_add(struct ps_owner *o, const char *name, const struct ps_config *cfg,
                                const char *owner_bare)
{
	struct ps_node *n = xcalloc(1, sizeof(*n));
	n->owner = o;
	n->name = xstrdup(name);
	ps_config_copy(&n->cfg, cfg);
	n->created = ev_now(server.loop);
	if (owner_bare != NULL)
		node_set_aff(n, owner_bare, PS_AFF_OWNER);
	struct ps_node **p = &o->nodes;
	while (*p != NULL && strcmp((*p)->name, name) < 0)
		p = &(*p)->next;
	n->next = *p;
	*p = n;
	o->nnodes++;
	return n;
}

static void node_unlink(struct ps_owner *o, struct ps_node *n)
{
	for (struct ps_node **p = &o->nodes; *p != NULL; p = &(*p)->next) {
		if (*p == n) {
			*p = n->next;
			o->nnodes--;
			return;
		}
	}
}

/* Check that a new node may be made: -1 after answering r when not. */
static int create_check(struct ps_req *r, const char *bare)
{
	struct ps_owner *o = r->o;
	if (!may_create(o, &r->from, bare)) {
		ps_reply_error(r, SE_FORBIDDEN, NULL, NULL, "you may not create nodes here");
		return -1;
	}
	if (nodes_of_creator(o, bare) >= o->st->set->max_nodes_per_user) {
		ps_reply_error(r, SE_NOT_ALLOWED, NULL, NULL, "too many nodes (max_nodes_per_user)");
		return -1;
	}
	return 0;
}

static void do_create(struct ps_req *r, const struct xml_node *create, const struct xml_node *configure,
                      const char *bare)
{
	struct ps_owner *o = r->o;
	const char *name = xml_attr(create, "node");
	if (name != NULL && *name == '\0')
		name = NULL;
	if (name != NULL && ps_node_find(o, name) != NULL) {
		ps_reply_error(r, SE_CONFLICT, NULL, NULL, "the node exists");
		return;
	}
	if (name == NULL && is_pep(o)) {
		error_app(r, SE_NOT_ACCEPTABLE, "nodeid-required", NULL);
		return;
	}
	if (create_check(r, bare) < 0)
		return;
	struct ps_config cfg;
	ps_config_defaults(&cfg, o->st->set, is_pep(o));
	const struct xml_node *x = configure != NULL ? xml_child(configure, "x", NS_XDATA) : NULL;
	enum stanza_error e;
	const char *text;
	if (x != NULL && ps_config_apply(&cfg, x, o->st->set, &e, &text) < 0) {
		ps_config_clear(&cfg);
		ps_reply_error(r, e, NULL, NULL, text);
		return;
	}
	char *made = name == NULL ? new_id() : NULL;
	struct ps_node *n = node_add(o, name != NULL ? name : made, &cfg, is_pep(o) ? NULL : bare);
	ps_config_clear(&cfg);
	struct xml_node *answer = NULL;
	if (made != NULL) {
		answer = xml_new("pubsub", NS_PUBSUB);
		xml_set_attr(xml_add_child(answer, "create", NULL), "node", made);
		free(made);
	}
	struct write_op *w = save_node(n, r, answer);
	if (w != NULL)
		w->created = xstrdup(n->name);
	xml_unref(&answer);
}

static void do_configure_get(struct ps_req *r, struct ps_node *n)
{
	struct xml_node *ps = xml_new("pubsub", NS_PUBSUB_OWNER);
	struct xml_node *c = xml_add_child(ps, "configure", NULL);
	xml_set_attr(c, "node", n->name);
	struct xml_node *x = ps_config_form(&n->cfg, n->name, r->o->st->set);
	xml_append_copy(c, x);
	xml_unref(&x);
	ps_reply(r, ps);
	xml_unref(&ps);
}

static void do_configure_set(struct ps_req *r, struct ps_node *n, const struct xml_node *configure)
{
	const struct xml_node *x = xml_child(configure, "x", NS_XDATA);
	if (x == NULL) {
		ps_reply_error(r, SE_BAD_REQUEST, NULL, NULL, "no form");
		return;
	}
	const char *type = xml_attr(x, "type");
	if (type != NULL && strcmp(type, "cancel") == 0) {
		ps_reply(r, NULL);
		return;
	}
	enum stanza_error e;
	const char *text;
	struct ps_config cfg;
	ps_config_copy(&cfg, &n->cfg);
	if (ps_config_apply(&cfg, x, r->o->st->set, &e, &text) < 0) {
		ps_config_clear(&cfg);
		ps_reply_error(r, e, NULL, NULL, text);
		return;
	}
	/* access by presence or roster from now on: judged once the rosters
	 * are here (the request runs again then) */
	if (!rosters_ready_as(r, n, cfg.access)) {
		ps_config_clear(&cfg);
		return;
	}
	ps_config_clear(&n->cfg);
	n->cfg = cfg;
	struct ps_owner *o = r->o;
	/* subscribers the new access model leaves out are unsubscribed (§12) */
	prune_subs(o, n, NULL);
	/* fewer items allowed now: the oldest go */
	struct storage *st = ps_store(o->st);
	while (n->nitems > node_keep(n)) {
		struct ps_item *old = n->oldest;
		n->oldest = old->newer;
		if (n->oldest != NULL)
			n->oldest->older = NULL;
		else
			n->newest = NULL;
		n->nitems--;
		if (st != NULL) {
			const char *ids[1] = { old->id };
			struct write_op *w = write_new(o, NULL, NULL);
			storage_pubsub_item_delete(st, o->st->h->name, o->key, n->name, ids, 1, write_done,
			                           w);
		}
		ps_item_free(old);
	}
	if (n->cfg.notify_config)
		notify_simple(o, n, "configuration");
	save_node(n, r, NULL);
}

static void do_default(struct ps_req *r)
{
	struct ps_config cfg;
	ps_config_defaults(&cfg, r->o->st->set, is_pep(r->o));
	struct xml_node *ps = xml_new("pubsub", NS_PUBSUB_OWNER);
	struct xml_node *d = xml_add_child(ps, "default", NULL);
	struct xml_node *x = ps_config_form(&cfg, NULL, r->o->st->set);
	xml_append_copy(d, x);
	xml_unref(&x);
	ps_config_clear(&cfg);
	ps_reply(r, ps);
	xml_unref(&ps);
}

static void do_delete(struct ps_req *r, struct ps_node *n, ps_done_fn *done, void *ctx)
{
	struct ps_owner *o = n->owner;
	if (n->cfg.notify_delete)
		notify_simple(o, n, "delete");
	node_unlink(o, n);
	struct storage *st = ps_store(o->st);
	struct write_op *w = write_new(o, r, NULL);
	w->node = xstrdup(n->name);
	w->done = done;
	w->done_ctx = ctx;
	if (st != NULL)
		storage_pubsub_node_delete(st, o->st->h->name, o->key, n->name, write_done, w);
	ps_node_free(n);
	if (st == NULL)
		write_done(STORAGE_OK, w);
}

static void drop_items(struct ps_node *n)
{
	while (n->newest != NULL) {
		struct ps_item *it = n->newest;
		n->newest = it->older;
		ps_item_free(it);
	}
	n->oldest = NULL;
	n->nitems = 0;
}

static void do_purge(struct ps_req *r, struct ps_node *n, ps_done_fn *done, void *ctx)
{
	struct ps_owner *o = n->owner;
	drop_items(n);
	if (n->cfg.notify_retract || n->cfg.notify_delete)
		notify_simple(o, n, "purge");
	struct storage *st = ps_store(o->st);
	struct write_op *w = write_new(o, r, NULL);
	w->done = done;
	w->done_ctx = ctx;
	if (st != NULL)
		storage_pubsub_item_delete(st, o->st->h->name, o->key, n->name, NULL, 0, write_done, w);
	else
		write_done(STORAGE_OK, w);
}

/* ---- publish and retract -------------------------------------------------- */

static bool may_publish(struct ps_owner *o, struct ps_node *n, const struct jid *from, const char *bare)
{
	enum ps_aff a = aff_of(o, n, from, bare);
	if (a == PS_AFF_OWNER || a == PS_AFF_PUBLISHER || a == PS_AFF_PUBLISH_ONLY)
		return true;
	if (a == PS_AFF_OUTCAST)
		return false;
	if (n->cfg.publish_model == PS_PUBLISH_OPEN)
		return true;
	if (n->cfg.publish_model == PS_PUBLISH_SUBSCRIBERS) {
		for (size_t i = 0; i < n->nsubs; i++) {
			struct jid sj = { 0 };
			const char *err;
			bool m = n->subs[i].state == PS_SUB_SUBSCRIBED &&
			         jid_parse(n->subs[i].jid, &sj, &err) == 0 && jid_bare_equal(&sj, from);
			jid_clear(&sj);
			if (m)
				return true;
		}
	}
	return false;
}


/* The publish shared by clients and pep_publish: 0 when stored (done or r
 * answered after the write), -1 with the error in *e_r, *app_r and
 * *text_r when refused before anything changed. */
struct publish_args {
	const struct jid *publisher;
	const char *bare;
	const char *node;
	const char *id;
	const struct xml_node *payload;
	bool item;                      /* the publish has an <item/> */
	const struct xml_node *options; /* publish-options form, or NULL */
	const struct ps_config *create_cfg;
	const char *origin;
	struct ps_req *r;
	ps_done_fn *done;
	void *done_ctx;
};

static int publish(struct ps_owner *o, const struct publish_args *a, enum stanza_error *e_r,
                   const char **app_r, const char **text_r)
{
	struct ps_state *st = o->st;
	*app_r = NULL;
	*text_r = NULL;
	struct ps_node *n = ps_node_find(o, a->node);
	size_t size = 0;
	char *text = NULL;
	if (a->payload != NULL) {
		text = xml_to_string(a->payload, NULL);
		size = strlen(text);
	}
	if (size > st->set->max_item_size) {
		free(text);
		*e_r = SE_NOT_ACCEPTABLE;
		*app_r = "payload-too-big";
		*text_r = "the item is larger than the service's max_item_size";
		return -1;
	}
	if (n == NULL) {
		/* auto-create (XEP-0060 §7.1.4): by whoever may create nodes */
		if (!may_create(o, a->publisher, a->bare)) {
			free(text);
			*e_r = SE_ITEM_NOT_FOUND;
			return -1;
		}
		if (nodes_of_creator(o, a->bare) >= st->set->max_nodes_per_user) {
			free(text);
			*e_r = SE_NOT_ALLOWED;
			*text_r = "too many nodes (max_nodes_per_user)";
			return -1;
		}
		struct ps_config cfg;
		if (a->create_cfg != NULL)
			ps_config_copy(&cfg, a->create_cfg);
		else
			ps_config_defaults(&cfg, st->set, is_pep(o));
		if (a->options != NULL) {
			enum stanza_error e;
			const char *t = ps_config_unknown_field(a->options);
			if (t != NULL || ps_config_apply(&cfg, a->options, st->set, &e, &t) < 0) {
				ps_config_clear(&cfg);
				free(text);
				*e_r = SE_CONFLICT;
				*app_r = "precondition-not-met";
				*text_r = t;
				return -1;
			}
		}
		n = node_add(o, a->node, &cfg, is_pep(o) ? NULL : a->bare);
		ps_config_clear(&cfg);
		struct write_op *w = save_node(n, NULL, NULL);
		if (w != NULL)
			w->created = xstrdup(n->name);
	} else {
		if (!may_publish(o, n, a->publisher, a->bare)) {
			free(text);
			*e_r = SE_FORBIDDEN;
			return -1;
		}
		const char *t = NULL;
		if (a->options != NULL && !ps_config_meets(&n->cfg, a->options, st->set, &t)) {
			free(text);
			*e_r = SE_CONFLICT;
			*app_r = "precondition-not-met";
			*text_r = t;
			return -1;
		}
	}
	/* §7.1.3.6: a persistent node needs an item, a payload node a
	 * payload, and a transient notification node takes no item */
	const char *missing = NULL;
	if (!a->item && n->cfg.persist_items)
		missing = "item-required";
	else if (a->payload == NULL && n->cfg.deliver_payloads)
		missing = "payload-required";
	else if (a->item && !n->cfg.persist_items && !n->cfg.deliver_payloads)
		missing = "item-forbidden";
	if (missing != NULL) {
		free(text);
		*e_r = SE_BAD_REQUEST;
		*app_r = missing;
		return -1;
	}
	/* The item goes into the node once the store has it (write_done):
	 * a failed write changes nothing and notifies nobody.  The store
	 * drops the items this one pushes out, as the node is now. */
	struct ps_item *it = xcalloc(1, sizeof(*it));
	it->id = a->id != NULL ? xstrdup(a->id) : new_id();
	it->publisher = jid_to_string(a->publisher);
	it->published = ev_now(server.loop);
	it->seq = ++n->seq;
	if (a->payload != NULL)
		it->payload = xml_copy(a->payload);
	unsigned keep = node_keep(n);
	size_t count = n->nitems + (item_find(n, it->id) == NULL ? 1 : 0);
	const char **evict = NULL;
	size_t nevict = 0;
	for (struct ps_item *old = n->oldest; old != NULL && count > keep; old = old->newer) {
		if (strcmp(old->id, it->id) == 0)
			continue;
		evict = xrealloc(evict, (nevict + 1) * sizeof(*evict));
		evict[nevict++] = old->id;
		count--;
	}
	struct xml_node *answer = NULL;
	if (a->r != NULL) {
		answer = xml_new("pubsub", NS_PUBSUB);
		struct xml_node *p = xml_add_child(answer, "publish", NULL);
		xml_set_attr(p, "node", n->name);
		xml_set_attr(xml_add_child(p, "item", NULL), "id", it->id);
	}
	struct write_op *w = write_new(o, a->r, answer);
	xml_unref(&answer);
	w->node = xstrdup(n->name);
	w->id = xstrdup(it->id);
	w->origin = a->origin != NULL ? xstrdup(a->origin) : NULL;
	if (it->payload != NULL) {
		w->payload = it->payload;
		xml_ref(w->payload);
	}
	w->item = it;
	w->stored_evict = xcalloc(nevict + 1, sizeof(char *));
	for (size_t i = 0; i < nevict; i++)
		w->stored_evict[i] = xstrdup(evict[i]);
	w->nstored_evict = nevict;
	w->done = a->done;
	w->done_ctx = a->done_ctx;
	struct storage *store = ps_store(st);
	if (store != NULL) {
		struct pubsub_item pi = { .node = n->name,
			                  .id = it->id,
			                  .publisher = it->publisher,
			                  .published = it->published,
			                  .seq = it->seq,
			                  .payload = text != NULL ? text : "" };
		storage_pubsub_item_store(store, st->h->name, o->key, &pi, evict, nevict, write_done, w);
	}
	free(text);
	free(evict);
	if (store == NULL)
		write_done(STORAGE_OK, w);
	return 0;
}

void ps_publish(struct ps_owner *o, const struct jid *publisher, const char *node, const char *id,
                const struct xml_node *payload, const struct ps_config *create_cfg,
                const struct xml_node *options, const char *origin, ps_done_fn *done, void *ctx,
                enum stanza_error *e_r, const char **app_r, const char **text_r)
{
	char *bare = jid_bare_string(publisher);
	struct publish_args a = { .publisher = publisher,
		                  .bare = bare,
		                  .node = node,
		                  .id = id,
		                  .payload = payload,
		                  .item = true,
		                  .options = options,
		                  .create_cfg = create_cfg,
		                  .origin = origin,
		                  .done = done,
		                  .done_ctx = ctx };
	*e_r = 0;
	if (publish(o, &a, e_r, app_r, text_r) < 0 && done != NULL)
		done(*e_r, false, ctx);
	free(bare);
}

/* The publish-options form of a <pubsub/>, or NULL. */
static const struct xml_node *publish_options(const struct xml_node *ps)
{
	const struct xml_node *po = xml_child(ps, "publish-options", NS_PUBSUB);
	return po != NULL ? xml_child(po, "x", NS_XDATA) : NULL;
}

static void do_publish(struct ps_req *r, const struct xml_node *ps, const struct xml_node *pub,
                       const char *bare)
{
	const char *node = xml_attr(pub, "node");
	if (node == NULL || *node == '\0') {
		error_app(r, SE_BAD_REQUEST, "nodeid-required", NULL);
		return;
	}
	const struct xml_node *item = xml_child(pub, "item", NS_PUBSUB);
	if (item != NULL && xml_next(item, "item", NS_PUBSUB) != NULL) {
		error_app(r, SE_BAD_REQUEST, "invalid-payload", NULL);
		return;
	}
	const struct xml_node *payload = item != NULL ? xml_first_element(item) : NULL;
	if (payload != NULL && xml_element_count(item) > 1) {
		error_app(r, SE_BAD_REQUEST, "invalid-payload", NULL);
		return;
	}
	const char *id = item != NULL ? xml_attr(item, "id") : NULL;
	if (id != NULL && *id == '\0')
		id = NULL;
	struct ps_node *n = ps_node_find(r->o, node);
	if (n != NULL && !rosters_ready(r, n))
		return;
	struct publish_args a = { .publisher = &r->from,
		                  .bare = bare,
		                  .node = node,
		                  .id = id,
		                  .payload = payload,
		                  .item = item != NULL,
		                  .options = publish_options(ps),
		                  .r = r };
	enum stanza_error e;
	const char *app, *text;
	if (publish(r->o, &a, &e, &app, &text) < 0)
		ps_reply_error(r, e, app, NULL, text);
}

int ps_retract_item(struct ps_owner *o, struct ps_node *n, const char *id, bool notify_it, const char *origin,
                    struct ps_req *r, ps_done_fn *done, void *ctx)
{
	if (item_find(n, id) == NULL)
		return -1;
	/* the item leaves the node once the store removed it (apply_stored) */
	struct storage *st = ps_store(o->st);
	struct write_op *w = write_new(o, r, NULL);
	w->node = xstrdup(n->name);
	w->id = xstrdup(id);
	w->origin = origin != NULL ? xstrdup(origin) : NULL;
	w->retract = true;
	w->notify_retract = notify_it;
	w->done = done;
	w->done_ctx = ctx;
	if (st != NULL) {
		const char *ids[1] = { id };
		storage_pubsub_item_delete(st, o->st->h->name, o->key, n->name, ids, 1, write_done, w);
	} else {
		write_done(STORAGE_OK, w);
	}
	return 0;
}

static void do_retract(struct ps_req *r, const struct xml_node *ret, struct ps_node *n, const char *bare)
{
	const struct xml_node *item = xml_child(ret, "item", NS_PUBSUB);
	const char *id = item != NULL ? xml_attr(item, "id") : NULL;
	if (id == NULL || *id == '\0') {
		error_app(r, SE_BAD_REQUEST, "item-required", NULL);
		return;
	}
	struct ps_owner *o = r->o;
	enum ps_aff a = aff_of(o, n, &r->from, bare);
	struct ps_item *it = item_find(n, id);
	if (it == NULL) {
		ps_reply_error(r, SE_ITEM_NOT_FOUND, NULL, NULL, NULL);
		return;
	}
	struct jid pj = { 0 };
	const char *err;
	bool own_item = jid_parse(it->publisher, &pj, &err) == 0 && jid_bare_equal(&pj, &r->from);
	jid_clear(&pj);
	if (a != PS_AFF_OWNER && a != PS_AFF_PUBLISHER && !(a == PS_AFF_PUBLISH_ONLY && own_item)) {
		ps_reply_error(r, SE_FORBIDDEN, NULL, NULL, NULL);
		return;
	}
	const char *nt = xml_attr(ret, "notify");
	bool notify_it = nt != NULL && (strcmp(nt, "true") == 0 || strcmp(nt, "1") == 0);
	ps_retract_item(o, n, id, notify_it, NULL, r, NULL, NULL);
}

/* ---- items ------------------------------------------------------------------ */

static void do_items(struct ps_req *r, const struct xml_node *ps, const struct xml_node *items,
                     struct ps_node *n, const char *bare)
{
	if (!may_read(r->o, n, &r->from, bare)) {
		enum ps_access acc = n->cfg.access;
		enum ps_aff a = aff_of(r->o, n, &r->from, bare);
		if (a == PS_AFF_OUTCAST || a == PS_AFF_PUBLISH_ONLY)
			ps_reply_error(r, SE_FORBIDDEN, NULL, NULL, NULL);
		else if (acc == PS_ACCESS_PRESENCE)
			error_app(r, SE_NOT_AUTHORIZED, "presence-subscription-required", NULL);
		else if (acc == PS_ACCESS_ROSTER)
			error_app(r, SE_NOT_AUTHORIZED, "not-in-roster-group", NULL);
		else if (acc == PS_ACCESS_WHITELIST)
			error_app(r, SE_NOT_ALLOWED, "closed-node", NULL);
		else
			error_app(r, SE_NOT_AUTHORIZED, "not-subscribed", NULL);
		return;
	}
	struct xml_node *ans = xml_new("pubsub", NS_PUBSUB);
	struct xml_node *out = xml_add_child(ans, "items", NULL);
	xml_set_attr(out, "node", n->name);
	const struct xml_node *want = xml_child(items, "item", NS_PUBSUB);
	if (want != NULL) {
		for (; want != NULL; want = xml_next(want, "item", NS_PUBSUB)) {
			const char *id = xml_attr(want, "id");
			struct ps_item *it = id != NULL ? item_find(n, id) : NULL;
			if (it != NULL)
				add_item_el(out, it, true, false);
		}
		ps_reply(r, ans);
		xml_unref(&ans);
		return;
	}
	const char *max_s = xml_attr(items, "max_items");
	unsigned long max = ITEMS_PAGE_MAX * 10UL;
	if (max_s != NULL) {
		char *end;
		max = strtoul(max_s, &end, 10);
		if (*max_s == '\0' || *end != '\0') {
			xml_unref(&ans);
			ps_reply_error(r, SE_BAD_REQUEST, NULL, NULL, "max_items is not a number");
			return;
		}
	}
	/* RSM (XEP-0059) paging over the items, newest first */
	const struct xml_node *set = xml_child(ps, "set", NS_RSM);
	const char *after = set != NULL ? xml_child_text(set, "after", NS_RSM) : NULL;
	const char *before_s = NULL;
	const struct xml_node *before = set != NULL ? xml_child(set, "before", NS_RSM) : NULL;
	if (before != NULL)
		before_s = xml_text(before) != NULL ? xml_text(before) : "";
	if (set != NULL) {
		const char *m = xml_child_text(set, "max", NS_RSM);
		if (m != NULL)
			max = strtoul(m, NULL, 10);
	}
	struct ps_item **all = xcalloc(n->nitems + 1, sizeof(*all));
	size_t cnt = 0;
	for (struct ps_item *it = n->newest; it != NULL; it = it->older)
		all[cnt++] = it;
	size_t from = 0, to = cnt;
	if (after != NULL) {
		while (from < cnt && strcmp(all[from]->id, after) != 0)
			from++;
		from = from < cnt ? from + 1 : cnt;
	} else if (before_s != NULL) {
		to = 0;
		if (*before_s == '\0')
			to = cnt;
		else
			while (to < cnt && strcmp(all[to]->id, before_s) != 0)
				to++;
		from = to > max ? to - max : 0;
	}
	if (to - from > max)
		to = from + max;
	for (size_t i = from; i < to; i++)
		add_item_el(out, all[i], true, false);
	if (set != NULL) {
		struct xml_node *rs = xml_add_child(ans, "set", NS_RSM);
		if (to > from) {
			struct xml_node *f = xml_add_child(rs, "first", NULL);
			char buf[32];
			snprintf(buf, sizeof(buf), "%zu", from);
			xml_set_attr(f, "index", buf);
			xml_add_text(f, all[from]->id, strlen(all[from]->id));
			xml_add_text(xml_add_child(rs, "last", NULL), all[to - 1]->id,
			             strlen(all[to - 1]->id));
		}
		char buf[32];
		snprintf(buf, sizeof(buf), "%zu", cnt);
		xml_add_text(xml_add_child(rs, "count", NULL), buf, strlen(buf));
	}
	free(all);
	ps_reply(r, ans);
	xml_unref(&ans);
}

/* ---- subscriptions ------------------------------------------------------------ */

static const char *sub_state_str(enum ps_sub_state s)
{
	static const char *const names[] = { "none", "pending", "unconfigured", "subscribed" };
	return names[s];
}

static struct xml_node *subscription_el(struct xml_node *parent, const struct ps_node *n,
                                        const struct ps_subscription *s)
{
	struct xml_node *el = xml_add_child(parent, "subscription", NULL);
	if (n != NULL)
		xml_set_attr(el, "node", n->name);
	xml_set_attr(el, "jid", s->jid);
	xml_set_attr(el, "subid", s->subid);
	xml_set_attr(el, "subscription", sub_state_str(s->state));
	return el;
}

/* Tell the subscriber of s that its subscription to n is now in state
 * (XEP-0060 §8.8.4, §12: a message with <subscription/>). */
static void sub_tell(struct ps_owner *o, struct ps_node *n, const struct ps_subscription *s,
                     enum ps_sub_state state)
{
	struct jid to = { 0 };
	const char *err;
	if (jid_parse(s->jid, &to, &err) != 0) {
		jid_clear(&to);
		return;
	}
	struct ps_subscription told = *s;
	told.state = state;
	struct xml_node *m = event_message(n, NULL);
	subscription_el(xml_first_element(m), n, &told);
	struct fanout f;
	fanout_init(&f, o, m);
	fanout_send(&f, &to);
	fanout_done(&f);
	jid_clear(&to);
}

static bool prune_subs(struct ps_owner *o, struct ps_node *n, const char *only)
{
	bool by_roster = rosters_known(o, n);
	bool changed = false;
	for (size_t i = 0; i < n->nsubs;) {
		struct ps_subscription *s = &n->subs[i];
		struct jid j = { 0 };
		const char *err;
		bool keep = true;
		if (jid_parse(s->jid, &j, &err) == 0) {
			char *bare = jid_bare_string(&j);
			if (only == NULL || strcmp(bare, only) == 0)
				keep = sub_allowed(o, n, &j, bare, by_roster);
			free(bare);
		}
		jid_clear(&j);
		if (keep) {
			i++;
			continue;
		}
		sub_tell(o, n, s, PS_SUB_NONE);
		sub_remove(n, s);
		changed = true;
	}
	return changed;
}

void ps_contact_changed(struct ps_owner *o, const char *contact)
{
	if (o->state != PS_LOADED || o->roster_state != PS_LOADED)
		return;
	for (struct ps_node *n = o->nodes; n != NULL; n = n->next)
		if (access_by_roster(n->cfg.access) && prune_subs(o, n, contact))
			ps_node_save(n);
	/* the service nodes the account owns judge by its roster too */
	for (struct ps_owner *svc = o->st->owners; svc != NULL; svc = svc->next) {
		if (is_pep(svc) || svc->state != PS_LOADED)
			continue;
		for (struct ps_node *n = svc->nodes; n != NULL; n = n->next)
			if (access_by_roster(n->cfg.access) && node_aff(n, o->key) == PS_AFF_OWNER &&
			    prune_subs(svc, n, contact))
				ps_node_save(n);
	}
}

/* Ask the node's owners to approve a subscription (XEP-0060 §8.6). */
static void ask_approval(struct ps_owner *o, struct ps_node *n, const struct ps_subscription *s)
{
	struct xml_node *m = xml_new("message", NS_CLIENT);
	xml_set_attr(m, "from", o->key);
	struct xml_node *x = xml_add_child(m, "x", NS_XDATA);
	xml_set_attr(x, "type", "form");
	xml_add_text(xml_add_child(x, "title", NULL), "PubSub subscriber request", 25);
	struct {
		const char *var, *type, *value;
	} f[] = {
		{ "FORM_TYPE", "hidden", NS_PUBSUB_SUB_AUTH },
		{ "pubsub#subid", "hidden", s->subid },
		{ "pubsub#node", "text-single", n->name },
		{ "pubsub#subscriber_jid", "jid-single", s->jid },
		{ "pubsub#allow", "boolean", "false" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(f); i++) {
		struct xml_node *fl = xml_add_child(x, "field", NULL);
		xml_set_attr(fl, "var", f[i].var);
		xml_set_attr(fl, "type", f[i].type);
		xml_add_text(xml_add_child(fl, "value", NULL), f[i].value, strlen(f[i].value));
	}
	struct fanout fo;
	fanout_init(&fo, o, m);
	if (is_pep(o)) {
		fanout_send(&fo, &o->jid);
	} else {
		for (size_t i = 0; i < n->naffs; i++) {
			if (n->affs[i].aff != PS_AFF_OWNER)
				continue;
			struct jid j = { 0 };
			const char *err;
			if (jid_parse(n->affs[i].jid, &j, &err) == 0)
				fanout_send(&fo, &j);
			jid_clear(&j);
		}
	}
	fanout_done(&fo);
}

/* The subscription options form in opt (XEP-0060 §6.3): *deliver_r
 * takes pubsub#deliver when the form has it; -1 (nothing changed) when
 * there is no form or a value is not a boolean. */
static int sub_options_parse(const struct xml_node *opt, bool *deliver_r)
{
	const struct xml_node *x = xml_child(opt, "x", NS_XDATA);
	if (x == NULL)
		return -1;
	bool deliver = *deliver_r;
	for (struct xml_node *f = xml_child(x, "field", NS_XDATA); f != NULL;
	     f = xml_next(f, "field", NS_XDATA)) {
		const char *var = xml_attr(f, "var");
		const char *v = xml_child_text(f, "value", NS_XDATA);
		if (var == NULL || strcmp(var, "pubsub#deliver") != 0)
			continue;
		if (v != NULL && (strcmp(v, "1") == 0 || strcmp(v, "true") == 0))
			deliver = true;
		else if (v != NULL && (strcmp(v, "0") == 0 || strcmp(v, "false") == 0))
			deliver = false;
		else
			return -1;
	}
	*deliver_r = deliver;
	return 0;
}

/* A subscribe, with the subscription options when ps has <options/> too
 * (§6.3.7: subscribe and configure in one request). */
static void do_subscribe(struct ps_req *r, const struct xml_node *ps, const struct xml_node *sub,
                         struct ps_node *n, const char *bare)
{
	const char *jid_s = xml_attr(sub, "jid");
	struct jid sj = { 0 };
	const char *err;
	if (jid_s == NULL || jid_parse(jid_s, &sj, &err) != 0) {
		error_app(r, SE_BAD_REQUEST, "invalid-jid", NULL);
		return;
	}
	if (!jid_bare_equal(&sj, &r->from)) {
		jid_clear(&sj);
		error_app(r, SE_BAD_REQUEST, "invalid-jid", NULL);
		return;
	}
	struct ps_owner *o = r->o;
	enum ps_aff a = aff_of(o, n, &r->from, bare);
	if (a == PS_AFF_OUTCAST || a == PS_AFF_PUBLISH_ONLY) {
		jid_clear(&sj);
		ps_reply_error(r, SE_FORBIDDEN, NULL, NULL, NULL);
		return;
	}
	if (!n->cfg.subscribe) {
		jid_clear(&sj);
		error_app(r, SE_FEATURE_NOT_IMPLEMENTED, "unsupported", "subscribe");
		return;
	}
	bool privileged = a == PS_AFF_OWNER || a == PS_AFF_PUBLISHER || a == PS_AFF_MEMBER;
	if (!privileged && n->cfg.access != PS_ACCESS_AUTHORIZE && !access_allows(o, n, bare)) {
		jid_clear(&sj);
		if (n->cfg.access == PS_ACCESS_PRESENCE)
			error_app(r, SE_NOT_AUTHORIZED, "presence-subscription-required", NULL);
		else if (n->cfg.access == PS_ACCESS_ROSTER)
			error_app(r, SE_NOT_AUTHORIZED, "not-in-roster-group", NULL);
		else
			error_app(r, SE_NOT_ALLOWED, "closed-node", NULL);
		return;
	}
	/* §6.3.7: the options apply to the subscription being made, so they
	 * name neither node nor jid; bad options make no subscription */
	const struct xml_node *opt = xml_child(ps, "options", NS_PUBSUB);
	bool deliver = true;
	if (opt != NULL && (xml_attr(opt, "node") != NULL || xml_attr(opt, "jid") != NULL)) {
		jid_clear(&sj);
		ps_reply_error(r, SE_BAD_REQUEST, NULL, NULL,
		               "the options of a subscribe name neither node nor jid");
		return;
	}
	if (opt != NULL && sub_options_parse(opt, &deliver) < 0) {
		jid_clear(&sj);
		error_app(r, SE_BAD_REQUEST, "invalid-options", NULL);
		return;
	}
	char *canon = jid_to_string(&sj);
	jid_clear(&sj);
	struct ps_subscription *s = sub_find(n, canon, NULL);
	if (s != NULL && s->state == PS_SUB_PENDING) {
		/* §6.1.3.7: it waits for the owner's approval */
		free(canon);
		error_app(r, SE_NOT_AUTHORIZED, "pending-subscription", NULL);
		return;
	}
	if (s == NULL) {
		if (o->st->set->max_subscriptions != 0 && n->nsubs >= o->st->set->max_subscriptions) {
			free(canon);
			ps_reply_error(r, SE_NOT_ALLOWED, NULL, NULL, "the node has too many subscriptions");
			return;
		}
		n->subs = xrealloc(n->subs, (n->nsubs + 1) * sizeof(*n->subs));
		s = &n->subs[n->nsubs++];
		*s = (struct ps_subscription){ .jid = canon, .subid = new_id(), .deliver = deliver };
		s->state = !privileged && n->cfg.access == PS_ACCESS_AUTHORIZE ? PS_SUB_PENDING
		                                                               : PS_SUB_SUBSCRIBED;
		if (s->state == PS_SUB_PENDING)
			ask_approval(o, n, s);
	} else {
		free(canon);
		if (opt != NULL)
			s->deliver = deliver;
	}
	struct xml_node *ans = xml_new("pubsub", NS_PUBSUB);
	subscription_el(ans, n, s);
	bool send = s->state == PS_SUB_SUBSCRIBED && n->cfg.send_last != PS_SEND_LAST_NEVER;
	struct write_op *w = save_node(n, r, ans);
	xml_unref(&ans);
	if (send && w != NULL) {
		w->last_node = xstrdup(n->name);
		w->last_to = xstrdup(s->jid);
	} else if (send) {
		/* no store: answered already */
		struct jid to = { 0 };
		if (jid_parse(s->jid, &to, &err) == 0)
			send_last(o, n, &to);
		jid_clear(&to);
	}
}

static void do_unsubscribe(struct ps_req *r, const struct xml_node *uns, struct ps_node *n, const char *bare)
{
	const char *jid_s = xml_attr(uns, "jid");
	const char *subid = xml_attr(uns, "subid");
	struct jid sj = { 0 };
	const char *err;
	if (jid_s == NULL || jid_parse(jid_s, &sj, &err) != 0) {
		error_app(r, SE_BAD_REQUEST, "invalid-jid", NULL);
		return;
	}
	bool allowed = jid_bare_equal(&sj, &r->from) || owns(r->o, n, &r->from, bare);
	char *canon = jid_to_string(&sj);
	jid_clear(&sj);
	if (!allowed) {
		free(canon);
		ps_reply_error(r, SE_FORBIDDEN, NULL, NULL, NULL);
		return;
	}
	struct ps_subscription *s = sub_find(n, canon, subid);
	free(canon);
	if (s == NULL) {
		error_app(r, SE_UNEXPECTED_REQUEST, "not-subscribed", NULL);
		return;
	}
	sub_remove(n, s);
	save_node(n, r, NULL);
}

static void do_options(struct ps_req *r, const struct xml_node *opt, struct ps_node *n, bool set)
{
	const char *jid_s = xml_attr(opt, "jid");
	const char *subid = xml_attr(opt, "subid");
	struct jid sj = { 0 };
	const char *err;
	if (jid_s == NULL || jid_parse(jid_s, &sj, &err) != 0) {
		error_app(r, SE_BAD_REQUEST, "jid-required", NULL);
		return;
	}
	char *canon = jid_to_string(&sj);
	bool mine = jid_bare_equal(&sj, &r->from);
	jid_clear(&sj);
	struct ps_subscription *s = sub_find(n, canon, subid);
	free(canon);
	if (!mine) {
		ps_reply_error(r, SE_FORBIDDEN, NULL, NULL, NULL);
		return;
	}
	if (s == NULL) {
		error_app(r, SE_UNEXPECTED_REQUEST, "not-subscribed", NULL);
		return;
	}
	if (!set) {
		struct xml_node *ans = xml_new("pubsub", NS_PUBSUB);
		struct xml_node *o = xml_add_child(ans, "options", NULL);
		xml_set_attr(o, "node", n->name);
		xml_set_attr(o, "jid", s->jid);
		xml_set_attr(o, "subid", s->subid);
		struct xml_node *x = xml_add_child(o, "x", NS_XDATA);
		xml_set_attr(x, "type", "form");
		struct xml_node *ft = xml_add_child(x, "field", NULL);
		xml_set_attr(ft, "var", "FORM_TYPE");
		xml_set_attr(ft, "type", "hidden");
		xml_add_text(xml_add_child(ft, "value", NULL), NS_PUBSUB_SUB_OPTIONS,
		             strlen(NS_PUBSUB_SUB_OPTIONS));
		struct xml_node *d = xml_add_child(x, "field", NULL);
		xml_set_attr(d, "var", "pubsub#deliver");
		xml_set_attr(d, "type", "boolean");
		xml_set_attr(d, "label", "Enable delivery?");
		xml_add_text(xml_add_child(d, "value", NULL), s->deliver ? "1" : "0", 1);
		ps_reply(r, ans);
		xml_unref(&ans);
		return;
	}
	bool deliver = s->deliver;
	if (sub_options_parse(opt, &deliver) < 0) {
		error_app(r, SE_BAD_REQUEST, "invalid-options", NULL);
		return;
	}
	s->deliver = deliver;
	save_node(n, r, NULL);
}

/* The requester's own subscriptions or affiliations (all nodes, or one). */
static void do_own_list(struct ps_req *r, const struct xml_node *el, bool subs, const char *bare)
{
	const char *node = xml_attr(el, "node");
	struct xml_node *ans = xml_new("pubsub", NS_PUBSUB);
	struct xml_node *list = xml_add_child(ans, subs ? "subscriptions" : "affiliations", NULL);
	for (struct ps_node *n = r->o->nodes; n != NULL; n = n->next) {
		if (node != NULL && strcmp(node, n->name) != 0)
			continue;
		if (subs) {
			for (size_t i = 0; i < n->nsubs; i++) {
				struct jid sj = { 0 };
				const char *err;
				if (jid_parse(n->subs[i].jid, &sj, &err) == 0 &&
				    jid_bare_equal(&sj, &r->from))
					subscription_el(list, n, &n->subs[i]);
				jid_clear(&sj);
			}
		} else {
			enum ps_aff a = aff_of(r->o, n, &r->from, bare);
			if (a != PS_AFF_NONE) {
				struct xml_node *e = xml_add_child(list, "affiliation", NULL);
				xml_set_attr(e, "node", n->name);
				xml_set_attr(e, "affiliation", ps_aff_str(a));
			}
		}
	}
	ps_reply(r, ans);
	xml_unref(&ans);
}

/* ---- owner: subscriptions and affiliations ------------------------------------- */

static void do_owner_subs(struct ps_req *r, const struct xml_node *el, struct ps_node *n, bool set)
{
	if (!set) {
		struct xml_node *ans = xml_new("pubsub", NS_PUBSUB_OWNER);
		struct xml_node *list = xml_add_child(ans, "subscriptions", NULL);
		xml_set_attr(list, "node", n->name);
		for (size_t i = 0; i < n->nsubs; i++)
			subscription_el(list, NULL, &n->subs[i]);
		ps_reply(r, ans);
		xml_unref(&ans);
		return;
	}
	for (struct xml_node *s = xml_child(el, "subscription", NS_PUBSUB_OWNER); s != NULL;
	     s = xml_next(s, "subscription", NS_PUBSUB_OWNER)) {
		const char *jid_s = xml_attr(s, "jid"), *state = xml_attr(s, "subscription");
		struct jid j = { 0 };
		const char *err;
		if (jid_s == NULL || state == NULL || jid_parse(jid_s, &j, &err) != 0) {
			jid_clear(&j);
			ps_reply_error(r, SE_BAD_REQUEST, NULL, NULL,
			               "a subscription needs jid and subscription");
			return;
		}
		if (strcmp(state, "none") != 0 && strcmp(state, "subscribed") != 0 &&
		    strcmp(state, "pending") != 0) {
			jid_clear(&j);
			ps_reply_error(r, SE_BAD_REQUEST, NULL, NULL, "unknown subscription state");
			return;
		}
		/* a subscription is only of an entity that may read the node:
		 * it would be cancelled (and hear nothing) otherwise */
		char *b = jid_bare_string(&j);
		bool allowed =
		        strcmp(state, "none") == 0 || sub_allowed(r->o, n, &j, b, rosters_known(r->o, n));
		free(b);
		jid_clear(&j);
		if (!allowed) {
			ps_reply_error(
			        r, SE_NOT_ACCEPTABLE, NULL, NULL,
			        "the entity may not read the node (its affiliation or the access model)");
			return;
		}
	}
	for (struct xml_node *s = xml_child(el, "subscription", NS_PUBSUB_OWNER); s != NULL;
	     s = xml_next(s, "subscription", NS_PUBSUB_OWNER)) {
		struct jid j = { 0 };
		const char *err;
		jid_parse(xml_attr(s, "jid"), &j, &err);
		char *canon = jid_to_string(&j);
		jid_clear(&j);
		const char *state = xml_attr(s, "subscription");
		struct ps_subscription *sub = sub_find(n, canon, xml_attr(s, "subid"));
		if (strcmp(state, "none") == 0) {
			/* the subscriber hears of its removal too (§8.8.4) */
			if (sub != NULL) {
				sub_tell(r->o, n, sub, PS_SUB_NONE);
				sub_remove(n, sub);
			}
			free(canon);
			continue;
		}
		if (sub == NULL) {
			n->subs = xrealloc(n->subs, (n->nsubs + 1) * sizeof(*n->subs));
			sub = &n->subs[n->nsubs++];
			*sub = (struct ps_subscription){ .jid = canon, .subid = new_id(), .deliver = true };
		} else {
			free(canon);
		}
		sub->state = strcmp(state, "subscribed") == 0 ? PS_SUB_SUBSCRIBED : PS_SUB_PENDING;
		/* the subscriber hears of it (§8.8.4) */
		sub_tell(r->o, n, sub, sub->state);
	}
	save_node(n, r, NULL);
}

static void do_owner_affs(struct ps_req *r, const struct xml_node *el, struct ps_node *n, bool set,
                          const char *bare)
{
	if (!set) {
		struct xml_node *ans = xml_new("pubsub", NS_PUBSUB_OWNER);
		struct xml_node *list = xml_add_child(ans, "affiliations", NULL);
		xml_set_attr(list, "node", n->name);
		if (is_pep(r->o)) {
			struct xml_node *e = xml_add_child(list, "affiliation", NULL);
			xml_set_attr(e, "jid", r->o->key);
			xml_set_attr(e, "affiliation", "owner");
		}
		for (size_t i = 0; i < n->naffs; i++) {
			struct xml_node *e = xml_add_child(list, "affiliation", NULL);
			xml_set_attr(e, "jid", n->affs[i].jid);
			xml_set_attr(e, "affiliation", ps_aff_str(n->affs[i].aff));
		}
		ps_reply(r, ans);
		xml_unref(&ans);
		return;
	}
	/* check all first: all or nothing; one entry per entity (§8.9.2.4),
	 * and the owners judged as the list leaves them */
	struct strlist named = { 0 };
	size_t owners_after = 0;
	for (struct xml_node *a = xml_child(el, "affiliation", NS_PUBSUB_OWNER); a != NULL;
	     a = xml_next(a, "affiliation", NS_PUBSUB_OWNER)) {
		const char *jid_s = xml_attr(a, "jid");
		int aff = ps_aff_parse(xml_attr(a, "affiliation"));
		struct jid j = { 0 };
		const char *err;
		if (jid_s == NULL || aff < 0 || jid_parse(jid_s, &j, &err) != 0) {
			jid_clear(&j);
			strlist_free(&named);
			ps_reply_error(r, SE_BAD_REQUEST, NULL, NULL,
			               "an affiliation needs a jid and a known affiliation");
			return;
		}
		char *b = jid_bare_string(&j);
		jid_clear(&j);
		if (strlist_contains(&named, b)) {
			free(b);
			strlist_free(&named);
			ps_reply_error(r, SE_BAD_REQUEST, NULL, NULL,
			               "an entity has more than one affiliation");
			return;
		}
		if (is_pep(r->o) && (strcmp(b, r->o->key) == 0 || aff == PS_AFF_OWNER)) {
			free(b);
			strlist_free(&named);
			ps_reply_error(r, SE_NOT_ACCEPTABLE, NULL, NULL,
			               "the account is the only owner of its nodes");
			return;
		}
		if (aff == PS_AFF_OWNER)
			owners_after++;
		strlist_take(&named, b);
	}
	for (size_t i = 0; i < n->naffs; i++)
		if (n->affs[i].aff == PS_AFF_OWNER && !strlist_contains(&named, n->affs[i].jid))
			owners_after++;
	strlist_free(&named);
	if (!is_pep(r->o) && owners_after == 0) {
		ps_reply_error(r, SE_NOT_ACCEPTABLE, NULL, NULL, "a node keeps at least one owner");
		return;
	}
	(void)bare;
	for (struct xml_node *a = xml_child(el, "affiliation", NS_PUBSUB_OWNER); a != NULL;
	     a = xml_next(a, "affiliation", NS_PUBSUB_OWNER)) {
		struct jid j = { 0 };
		const char *err;
		jid_parse(xml_attr(a, "jid"), &j, &err);
		char *b = jid_bare_string(&j);
		jid_clear(&j);
		enum ps_aff aff = (enum ps_aff)ps_aff_parse(xml_attr(a, "affiliation"));
		node_set_aff(n, b, aff);
		free(b);
	}
	/* who lost access with the affiliation (an outcast, a member of a
	 * whitelist node made none) is unsubscribed (§12) */
	prune_subs(r->o, n, NULL);
	save_node(n, r, NULL);
}

/* ---- dispatch ---------------------------------------------------------------- */

void ps_handle(struct ps_req *r)
{
	struct ps_owner *o = r->o;
	const char *type = xml_attr(r->iq, "type");
	bool set = type != NULL && strcmp(type, "set") == 0;
	const struct xml_node *ps = xml_first_element(r->iq);
	bool owner_ns = xml_is(ps, "pubsub", NS_PUBSUB_OWNER);
	const struct xml_node *act = NULL;
	const struct xml_node *configure = NULL;
	for (struct xml_node *c = xml_first_element(ps); c != NULL; c = xml_next(c, NULL, NULL)) {
		if (xml_is(c, "configure", NS_PUBSUB) && !owner_ns)
			configure = c;
		else if (xml_is(c, "set", NS_RSM) || xml_is(c, "publish-options", NS_PUBSUB) ||
		         (xml_is(c, "options", NS_PUBSUB) && act != NULL))
			continue;
		else if (act == NULL)
			act = c;
	}
	if (act == NULL && configure != NULL)
		act = configure;
	if (act == NULL) {
		ps_reply_error(r, SE_BAD_REQUEST, NULL, NULL, "the request names no action");
		return;
	}
	char *bare = jid_bare_string(&r->from);
	const char *name = act->name;
	const char *node_name = xml_attr(act, "node");
	struct ps_node *n = node_name != NULL && *node_name != '\0' ? ps_node_find(o, node_name) : NULL;
	o->last_used = ev_now(server.loop);
	/* actions that need no node */
	if (!owner_ns && set && strcmp(name, "create") == 0) {
		do_create(r, act, configure, bare);
		goto out;
	}
	if (!owner_ns && !set && (strcmp(name, "subscriptions") == 0 || strcmp(name, "affiliations") == 0)) {
		do_own_list(r, act, strcmp(name, "subscriptions") == 0, bare);
		goto out;
	}
	if (owner_ns && !set && strcmp(name, "default") == 0) {
		do_default(r);
		goto out;
	}
	if (!owner_ns && set && strcmp(name, "publish") == 0) {
		do_publish(r, ps, act, bare);
		goto out;
	}
	if (node_name == NULL || *node_name == '\0') {
		error_app(r, SE_BAD_REQUEST, "nodeid-required", NULL);
		goto out;
	}
	if (n == NULL) {
		ps_reply_error(r, SE_ITEM_NOT_FOUND, NULL, NULL, NULL);
		goto out;
	}
	if (!rosters_ready(r, n))
		goto out;
	if (owner_ns) {
		if (!owns(o, n, &r->from, bare)) {
			ps_reply_error(r, SE_FORBIDDEN, NULL, NULL, NULL);
			goto out;
		}
		if (strcmp(name, "configure") == 0)
			set ? do_configure_set(r, n, act) : do_configure_get(r, n);
		else if (set && strcmp(name, "delete") == 0)
			do_delete(r, n, NULL, NULL);
		else if (set && strcmp(name, "purge") == 0)
			do_purge(r, n, NULL, NULL);
		else if (strcmp(name, "subscriptions") == 0)
			do_owner_subs(r, act, n, set);
		else if (strcmp(name, "affiliations") == 0)
			do_owner_affs(r, act, n, set, bare);
		else
			error_app(r, SE_FEATURE_NOT_IMPLEMENTED, "unsupported", name);
		goto out;
	}
	if (set && strcmp(name, "retract") == 0)
		do_retract(r, act, n, bare);
	else if (!set && strcmp(name, "items") == 0)
		do_items(r, ps, act, n, bare);
	else if (set && strcmp(name, "subscribe") == 0)
		do_subscribe(r, ps, act, n, bare);
	else if (set && strcmp(name, "unsubscribe") == 0)
		do_unsubscribe(r, act, n, bare);
	else if (strcmp(name, "options") == 0)
		do_options(r, act, n, set);
	else if (strcmp(name, "configure") == 0 && owns(o, n, &r->from, bare))
		set ? do_configure_set(r, n, act) : do_configure_get(r, n);
	else
		error_app(r, SE_FEATURE_NOT_IMPLEMENTED, "unsupported", name);
out:
	free(bare);
}

/* ---- approvals (XEP-0060 §8.6) ------------------------------------------- */

/* A message from an owner with a filled subscribe_authorization form. */
bool ps_approval(struct ps_owner *o, const struct xml_node *msg, const struct jid *from)
{
	const struct xml_node *x = xml_child(msg, "x", NS_XDATA);
	if (x == NULL)
		return false;
	const char *ft = NULL, *node = NULL, *subid = NULL, *jid_s = NULL, *allow = NULL;
	for (struct xml_node *f = xml_child(x, "field", NS_XDATA); f != NULL;
	     f = xml_next(f, "field", NS_XDATA)) {
		const char *var = xml_attr(f, "var"), *v = xml_child_text(f, "value", NS_XDATA);
		if (var == NULL)
			continue;
		if (strcmp(var, "FORM_TYPE") == 0)
			ft = v;
		else if (strcmp(var, "pubsub#node") == 0)
			node = v;
		else if (strcmp(var, "pubsub#subid") == 0)
			subid = v;
		else if (strcmp(var, "pubsub#subscriber_jid") == 0)
			jid_s = v;
		else if (strcmp(var, "pubsub#allow") == 0)
			allow = v;
	}
	if (ft == NULL || strcmp(ft, NS_PUBSUB_SUB_AUTH) != 0 || node == NULL || jid_s == NULL ||
	    allow == NULL)
		return false;
	struct ps_node *n = ps_node_find(o, node);
	char *bare = jid_bare_string(from);
	bool ok = n != NULL && owns(o, n, from, bare);
	free(bare);
	if (!ok)
		return true;
	struct ps_subscription *s = sub_find(n, jid_s, subid);
	if (s == NULL || s->state != PS_SUB_PENDING)
		return true;
	bool yes = strcmp(allow, "1") == 0 || strcmp(allow, "true") == 0;
	struct xml_node *m = event_message(n, NULL);
	struct jid to = { 0 };
	const char *err;
	jid_parse(s->jid, &to, &err);
	if (yes) {
		s->state = PS_SUB_SUBSCRIBED;
		subscription_el(xml_first_element(m), n, s);
	} else {
		struct ps_subscription gone = { .jid = s->jid, .subid = s->subid, .state = PS_SUB_NONE };
		subscription_el(xml_first_element(m), n, &gone);
		sub_remove(n, s);
	}
	struct fanout f;
	fanout_init(&f, o, m);
	if (to.domain != NULL)
		fanout_send(&f, &to);
	fanout_done(&f);
	if (yes && n->cfg.send_last != PS_SEND_LAST_NEVER)
		send_last(o, n, &to);
	jid_clear(&to);
	ps_node_save(n);
	return true;
}

/* ---- last items on presence (XEP-0163 §4.3) --------------------------------- */

/* Send the session s (of a user who is a contact of o, or o's own)
 * the last item of each of o's nodes it +notifies and may read. */
static void send_last_items(struct ps_owner *o, const struct jid *to, const struct caps_info *caps)
{
	char *bare = jid_bare_string(to);
	for (struct ps_node *n = o->nodes; n != NULL; n = n->next) {
		if (n->cfg.send_last != PS_SEND_LAST_ON_SUB_AND_PRESENCE || n->newest == NULL)
			continue;
		if (!caps_notify(caps, n->name))
			continue;
		if (!may_read(o, n, to, bare))
			continue;
		send_last(o, n, to);
	}
	free(bare);
}

void ps_send_last_items(struct ps_owner *o, struct session *s)
{
	send_last_items(o, &s->jid, caps_of_session(s));
}

void ps_send_last_remote(struct ps_owner *o, const struct jid *full)
{
	const struct caps_info *c = caps_of_remote(o->st->h, o->user, full);
	if (c != NULL && !owner_blocks(o, full))
		send_last_items(o, full, c);
}

/* A contact on another server gained presence access: its resources. */
struct remote_last {
	const char *contact;
	struct jid *jids;
	size_t n;
};
static void remote_of_contact(const struct jid *full, const struct caps_info *c, void *ctx)
{
	(void)c;
	struct remote_last *rl = ctx;
	char *bare = jid_bare_string(full);
	if (strcmp(bare, rl->contact) == 0) {
		rl->jids = xrealloc(rl->jids, (rl->n + 1) * sizeof(*rl->jids));
		rl->jids[rl->n] = (struct jid){ 0 };
		jid_copy(&rl->jids[rl->n++], full);
	}
	free(bare);
}

void ps_send_last_to_contact(struct ps_owner *o, const char *contact)
{
	char buf[1024];
	struct host *ch;
	if (strcmp(contact, o->key) == 0)
		return;
	const char *user = local_part(contact, o->st->h, &ch, buf, sizeof(buf));
	if (user == NULL) {
		struct remote_last rl = { .contact = contact };
		caps_foreach_remote(o->st->h, o->user, remote_of_contact, &rl);
		for (size_t i = 0; i < rl.n; i++) {
			ps_send_last_remote(o, &rl.jids[i]);
			jid_clear(&rl.jids[i]);
		}
		free(rl.jids);
		return;
	}
	if (sm_user_sessions(ch, user) == NULL)
		return;
	struct jid cj = { 0 };
	jid_set(&cj, user, ch->name, NULL);
	bool blocked = blocking_blocks(o->st->h, o->user, &cj);
	jid_clear(&cj);
	if (blocked)
		return;
	for (struct session *s = sm_user_sessions(ch, user); s != NULL; s = s->next_of_user)
		if (s->available)
			ps_send_last_items(o, s);
}

bool ps_node_visible(struct ps_owner *o, struct ps_node *n, const struct jid *from)
{
	char *bare = jid_bare_string(from);
	bool ok = owns(o, n, from, bare) || may_read(o, n, from, bare);
	free(bare);
	return ok;
}

/* ---- administration (pubsub-admin.c) ------------------------------------------ */

void ps_node_delete(struct ps_node *n, ps_done_fn *done, void *ctx)
{
	do_delete(NULL, n, done, ctx);
}

void ps_node_purge(struct ps_node *n, ps_done_fn *done, void *ctx)
{
	do_purge(NULL, n, done, ctx);
}
