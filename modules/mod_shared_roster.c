/*
 * mod_shared_roster: shared roster groups.  An administrator defines groups
 * per host (parleyctl srg-*, or the ad-hoc commands of srg-adhoc.c); the
 * members of a group see the members of its displayed groups (the group
 * itself by default) in their rosters, with subscription both and the
 * displayed group's label as roster group, and presence flows between them
 * as if they were subscribed.  Nothing of it is written to the users'
 * stored rosters: the roster_view hook (builtin.h) merges it into every
 * roster read of mod_roster and mod_presence.  Loop thread.
 *
 * Invariants:
 * - The host's groups are held in memory (loaded from the host's store of
 *   the srg area at start, then changed only through srg_admin_run /
 *   srg_admin_change (one path: admin_send, admin_changed) after the store
 *   accepted a change, or, with source ldap (the read-only LDAP group
 *   store this module opens, storage/ldap-store.h), replaced
 *   by each refresh's load, applied as a change like the others); until
 *   the first load completes, rosters show no shared contacts.  A failed
 *   load keeps the groups held and is logged once until a load succeeds.  The members "@all@" (every registered account: the
 *   account list is loaded at start and kept by the register_user and
 *   remove_user hooks) and "@online@" (every user with a session: kept by
 *   the session hooks) are evaluated from those lists.
 * - A shared contact's name is the FN (else NICKNAME) of its vCard, read
 *   from the directory index (vcard_search) at start and kept by the
 *   vcard_set hook; without one, its user name.  With source ldap and
 *   ldap_user_name_attr, the names come from the directory instead
 *   (storage_srg_names of the store), read before each load of the groups.  A name
 *   change is a change like the others (pushes to connected users who see
 *   the contact).
 * - Contact A sees contact B ("to") when A is a member of a group that
 *   displays a group B is a member of; then presence flows from B to A.
 *   The roster a client sees lists the contacts it sees; the view for
 *   presence also lists those that see the user ("from").
 * - Every change of groups, of @all@ or of @online@ is applied as: take
 *   what each connected user sees, apply, compare.  A connected user whose
 *   view changed gets roster pushes (merged with its stored item, read from
 *   storage first) and the presence of new contacts or unavailable from the
 *   lost ones.  The cost is one view computation per connected user of the
 *   host and change, paid by administrative changes, registrations and,
 *   when a group has @online@ as member, logins and logouts.
 * - The version string of a roster that holds shared contacts is the
 *   stored version, '-' and a hash of the shared contacts (tag): a change
 *   of the groups changes it, so a client never takes a stale cached roster
 *   for current.
 * - Every storage call runs through an op on the module's list; stop
 *   cancels them (and answers the administration calls in flight).
 */
#include "builtin.h"
#include "pending.h"
#include "shared_roster.h"
#include "server/host.h"
#include "server/hooks.h"
#include "server/router.h"
#include "server/sm.h"
#include "lib/latency.h"
#include "lib/log.h"
#include "server/server.h"

#include <ev.h>

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

enum { SRG_SOURCE_SQL, SRG_SOURCE_LDAP };

struct srg_settings {
	int source;
	struct srg_ldap_config ldap;
};

static const char *const source_names[] = { "sql", "ldap", NULL };
static const char *const mapping_names[] = { "dn", "value", NULL };
static const char *const displayed_names[] = { "self", "all", NULL };
static const char *const from_names[] = { "entries", "user_attribute", NULL };

#define SOFF(f) offsetof(struct srg_settings, f)
static const struct opt_def srg_options[] = {
	{ "source", OPT_ENUM, SOFF(source), "sql", source_names, 0, 0,
	  "where the groups are kept: sql (the host's storage, managed with parleyctl srg-*) or "
	  "ldap (read-only, the groups of the host's auth.ldap directory)" },
	{ "ldap_groups_from", OPT_ENUM, SOFF(ldap.groups_from), "entries", from_names, 0, 0,
	  "source ldap: entries (the group entries ldap_group_filter selects are the groups) or "
	  "user_attribute (each value of the users' ldap_user_group_attr is a group)" },
	{ "ldap_user_group_attr", OPT_STRING, SOFF(ldap.user_group_attr), "", NULL, 0, 0,
	  "source ldap, groups from user_attribute: the user attribute whose values are the "
	  "groups (departmentNumber, department, ou)" },
	{ "ldap_group_base", OPT_STRING, SOFF(ldap.group_base), NULL, NULL, 0, 0,
	  "source ldap: where the groups are searched (subtree; default: auth.ldap.base)" },
	{ "ldap_group_filter", OPT_STRING, SOFF(ldap.group_filter), "(objectClass=groupOfNames)", NULL, 0, 0,
	  "source ldap: the filter that selects the group entries" },
	{ "ldap_group_name_attr", OPT_STRING, SOFF(ldap.name_attr), "cn", NULL, 0, 0,
	  "source ldap: attribute of a group's name (its first value; also the roster group)" },
	{ "ldap_group_desc_attr", OPT_STRING, SOFF(ldap.desc_attr), "description", NULL, 0, 0,
	  "source ldap: attribute of a group's description (\"\": none)" },
	{ "ldap_group_display_attr", OPT_STRING, SOFF(ldap.display_attr), "", NULL, 0, 0,
	  "source ldap: attribute of a group's roster group name (\"\": its name)" },
	{ "ldap_member_attr", OPT_STRING, SOFF(ldap.member_attr), "member", NULL, 0, 0,
	  "source ldap: attribute of a group's members (member, uniqueMember, memberUid)" },
	{ "ldap_member_mapping", OPT_ENUM, SOFF(ldap.member_mapping), "dn", mapping_names, 0, 0,
	  "source ldap: dn (member values are DNs of user entries, whose ldap_user_uid_attr is "
	  "the user name) or value (member values are user names, as posixGroup memberUid)" },
	{ "ldap_user_name_attr", OPT_STRING, SOFF(ldap.user_name_attr), "cn", NULL, 0, 0,
	  "source ldap: attribute of a user entry whose first value names the user as a shared "
	  "contact (\"\": the FN or NICKNAME of the user's stored vCard)" },
	{ "ldap_user_uid_attr", OPT_STRING, SOFF(ldap.user_uid_attr), "uid", NULL, 0, 0,
	  "source ldap, mapping dn or groups from user_attribute: attribute of a user entry that "
	  "holds the user name" },
	{ "ldap_nested_groups", OPT_BOOL, SOFF(ldap.nested), "false", NULL, 0, 0,
	  "source ldap, mapping dn: a member DN that names a group entry adds that group's "
	  "members, recursively" },
	{ "ldap_nested_base", OPT_STRING, SOFF(ldap.nested_base), NULL, NULL, 0, 0,
	  "source ldap, nested groups: where group entries are searched (subtree; default: "
	  "ldap_group_base)" },
	{ "ldap_nested_filter", OPT_STRING, SOFF(ldap.nested_filter),
	  "(|(objectClass=group)(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))", NULL, 0, 0,
	  "source ldap, nested groups: the filter that selects group entries there" },
	{ "ldap_nested_depth", OPT_UINT, SOFF(ldap.nested_depth), "10", NULL, 1, 100,
	  "source ldap, nested groups: how many levels of groups below a group are expanded" },
	{ "ldap_refresh", OPT_DURATION, SOFF(ldap.refresh), "5m", NULL, 0, 0,
	  "source ldap: how often the groups are read from the directory again" },
	{ "ldap_displayed", OPT_ENUM, SOFF(ldap.displayed), "self", displayed_names, 0, 0,
	  "source ldap: self (the members of a group see that group) or all (the members of "
	  "any group see every group)" },
	OPT_END
};

/* One group in memory. */
struct srg {
	char *name, *label, *description;
	struct strlist displayed; /* group names; empty: the group itself */
	struct strlist members;   /* sorted bare JIDs (without the special members) */
	bool all, online;         /* @all@ / @online@ are members */
};

struct srg_state {
	struct host *host;
	struct storage *ldap_store; /* source ldap: the LDAP group store (owned), the host's
	                                  store of the srg area */
	struct srg *groups;         /* sorted by name */
	size_t ngroups;
	bool loaded;
	struct storage_req *load_handle;
	struct strlist accounts; /* sorted bare JIDs of the host's accounts */
	struct storage_req *accounts_req;
	struct strlist online;     /* sorted bare JIDs of users with a session */
	struct pending_ops ops;    /* push ops */
	struct pending_ops admins; /* administration calls */
	struct name_entry *names;  /* shown names from vCards, sorted by JID */
	size_t nnames;
	struct storage_req *names_req;
	bool dir_names;                   /* names come from the store (storage_srg_names), not
	                                 vCards */
	struct storage_req *names_handle; /* dir_names: the read in flight */
	bool load_failing;                /* the last load failed (logged once) */
	double loaded_at;                 /* wall-clock time of the last load that succeeded */
	bool ldap;                        /* source ldap: ldap_store is open */
	ev_timer refresh;                 /* source ldap: reads the directory again */
};

/* The name a user's vCard gives (FN, else NICKNAME). */
struct name_entry {
	char *jid;
	char *name;
};

/* What a user sees of one shared contact. */
struct contact {
	const char *jid;       /* borrowed from the group lists */
	const char *name;      /* from the vCard (borrowed), NULL: the local part */
	struct strlist labels; /* borrowed strings, distinct (items malloc'd) */
	bool to, from;
};

/* ---- sorted string lists -------------------------------------------------- */

static int cmp_strp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool sl_has(const struct strlist *l, const char *s)
{
	return l->count > 0 && bsearch(&s, l->items, l->count, sizeof(char *), cmp_strp) != NULL;
}

/* Insert s (copied) keeping the order; false when present. */
static bool sl_insert(struct strlist *l, const char *s)
{
	size_t lo = 0, hi = l->count;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(l->items[mid], s);
		if (c == 0)
			return false;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	l->items = xrealloc(l->items, (l->count + 1) * sizeof(char *));
	memmove(&l->items[lo + 1], &l->items[lo], (l->count - lo) * sizeof(char *));
	l->items[lo] = xstrdup(s);
	l->count++;
	return true;
}

static bool sl_remove(struct strlist *l, const char *s)
{
	char **at = l->count > 0 ? bsearch(&s, l->items, l->count, sizeof(char *), cmp_strp) : NULL;
	if (at == NULL)
		return false;
	size_t i = (size_t)(at - l->items);
	free(l->items[i]);
	memmove(&l->items[i], &l->items[i + 1], (l->count - i - 1) * sizeof(char *));
	l->count--;
	return true;
}

static void sl_copy(struct strlist *dst, const struct strlist *src)
{
	dst->count = src->count;
	dst->items = src->count > 0 ? xcalloc(src->count, sizeof(char *)) : NULL;
	for (size_t i = 0; i < src->count; i++)
		dst->items[i] = xstrdup(src->items[i]);
}

/* ---- groups in memory ---------------------------------------------------------- */

static void srg_free(struct srg *g)
{
	free(g->name);
	free(g->label);
	free(g->description);
	strlist_free(&g->displayed);
	strlist_free(&g->members);
	memset(g, 0, sizeof(*g));
}

static int cmp_srg(const void *a, const void *b)
{
	return strcmp(((const struct srg *)a)->name, ((const struct srg *)b)->name);
}

static struct srg *group_find(struct srg_state *st, const char *name)
{
	struct srg key = { .name = (char *)name };
	return st->ngroups > 0 ? bsearch(&key, st->groups, st->ngroups, sizeof(key), cmp_srg) : NULL;
}

/* Add a member (a bare JID or a special member) to g in memory. */
static void group_member_add(struct srg *g, const char *member)
{
	if (strcmp(member, SRG_MEMBER_ALL) == 0)
		g->all = true;
	else if (strcmp(member, SRG_MEMBER_ONLINE) == 0)
		g->online = true;
	else
		sl_insert(&g->members, member);
}

static void group_member_remove(struct srg *g, const char *member)
{
	if (strcmp(member, SRG_MEMBER_ALL) == 0)
		g->all = false;
	else if (strcmp(member, SRG_MEMBER_ONLINE) == 0)
		g->online = false;
	else
		sl_remove(&g->members, member);
}

static void group_add(struct srg_state *st, const struct srg_group *in)
{
	if (group_find(st, in->name) != NULL)
		return;
	st->groups = xrealloc(st->groups, (st->ngroups + 1) * sizeof(*st->groups));
	struct srg *g = &st->groups[st->ngroups++];
	memset(g, 0, sizeof(*g));
	g->name = xstrdup(in->name);
	g->label = xstrdup(in->label != NULL ? in->label : "");
	g->description = xstrdup(in->description != NULL ? in->description : "");
	sl_copy(&g->displayed, &in->displayed);
	for (size_t i = 0; i < in->members.count; i++)
		group_member_add(g, in->members.items[i]);
	qsort(st->groups, st->ngroups, sizeof(*st->groups), cmp_srg);
}

static void group_remove(struct srg_state *st, const char *name)
{
	struct srg *g = group_find(st, name);
	if (g == NULL)
		return;
	size_t i = (size_t)(g - st->groups);
	srg_free(g);
	memmove(&st->groups[i], &st->groups[i + 1], (st->ngroups - i - 1) * sizeof(*g));
	st->ngroups--;
}

static void groups_clear(struct srg_state *st)
{
	for (size_t i = 0; i < st->ngroups; i++)
		srg_free(&st->groups[i]);
	free(st->groups);
	st->groups = NULL;
	st->ngroups = 0;
}

static bool any_group(const struct srg_state *st, bool all, bool online)
{
	for (size_t i = 0; i < st->ngroups; i++)
		if ((all && st->groups[i].all) || (online && st->groups[i].online))
			return true;
	return false;
}

static bool member_of(const struct srg_state *st, const struct srg *g, const char *jid)
{
	return (g->all && sl_has(&st->accounts, jid)) || (g->online && sl_has(&st->online, jid)) ||
	       sl_has(&g->members, jid);
}

static const char *group_label(const struct srg *g)
{
	return g->label[0] != '\0' ? g->label : g->name;
}

/* Whether g displays the group named d. */
static bool displays(const struct srg *g, const char *d)
{
	if (g->displayed.count == 0)
		return strcmp(g->name, d) == 0;
	return strlist_contains(&g->displayed, d);
}

/* ---- names from vCards ----------------------------------------------------------- */

static int cmp_name(const void *a, const void *b)
{
	return strcmp(((const struct name_entry *)a)->jid, ((const struct name_entry *)b)->jid);
}

static const char *name_of(const struct srg_state *st, const char *jid)
{
	struct name_entry key = { .jid = (char *)jid };
	const struct name_entry *e =
	        st->nnames > 0 ? bsearch(&key, st->names, st->nnames, sizeof(key), cmp_name) : NULL;
	return e != NULL ? e->name : NULL;
}

/* Set (name non-empty) or drop (NULL or "") the name of jid; true when it
 * changed. */
static bool name_set(struct srg_state *st, const char *jid, const char *name)
{
	struct name_entry key = { .jid = (char *)jid };
	struct name_entry *e =
	        st->nnames > 0 ? bsearch(&key, st->names, st->nnames, sizeof(key), cmp_name) : NULL;
	bool none = name == NULL || *name == '\0';
	if (e != NULL && !none && strcmp(e->name, name) == 0)
		return false;
	if (e == NULL && none)
		return false;
	if (e != NULL && none) {
		size_t i = (size_t)(e - st->names);
		free(e->jid);
		free(e->name);
		memmove(&st->names[i], &st->names[i + 1], (st->nnames - i - 1) * sizeof(*e));
		st->nnames--;
		return true;
	}
	if (e != NULL) {
		free(e->name);
		e->name = xstrdup(name);
		return true;
	}
	st->names = xrealloc(st->names, (st->nnames + 1) * sizeof(*st->names));
	st->names[st->nnames].jid = xstrdup(jid);
	st->names[st->nnames].name = xstrdup(name);
	st->nnames++;
	qsort(st->names, st->nnames, sizeof(*st->names), cmp_name);
	return true;
}

static void names_clear(struct srg_state *st)
{
	for (size_t i = 0; i < st->nnames; i++) {
		free(st->names[i].jid);
		free(st->names[i].name);
	}
	free(st->names);
	st->names = NULL;
	st->nnames = 0;
}

/* ---- what a user sees ------------------------------------------------------------- */

struct tuple {
	const char *jid;
	const char *label; /* NULL for "from" tuples */
	bool to, from;
};

struct tuples {
	struct tuple *v;
	size_t n, cap;
};

static void tuple_add(struct tuples *t, const char *jid, const char *label, bool to, bool from)
{
	if (t->n == t->cap) {
		t->cap = t->cap == 0 ? 32 : t->cap * 2;
		t->v = xrealloc(t->v, t->cap * sizeof(*t->v));
	}
	t->v[t->n++] = (struct tuple){ jid, label, to, from };
}

/* Every member of g but self as a tuple. */
static void add_members(const struct srg_state *st, struct tuples *t, const struct srg *g, const char *self,
                        const char *label, bool to, bool from)
{
	const struct strlist *lists[3] = { &g->members, g->all ? &st->accounts : NULL,
		                           g->online ? &st->online : NULL };
	for (size_t k = 0; k < 3; k++) {
		if (lists[k] == NULL)
			continue;
		for (size_t i = 0; i < lists[k]->count; i++)
			if (strcmp(lists[k]->items[i], self) != 0)
				tuple_add(t, lists[k]->items[i], label, to, from);
	}
}

static int cmp_tuple(const void *a, const void *b)
{
	return strcmp(((const struct tuple *)a)->jid, ((const struct tuple *)b)->jid);
}

static void contacts_free(struct contact *c, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(c[i].labels.items);
	free(c);
}

/* The shared contacts of self (a bare JID), sorted by JID: those self
 * sees (to), and with want_from also those that see self (from). */
static struct contact *contacts_of(const struct srg_state *st, const char *self, bool want_from, size_t *n_r)
{
	struct tuples t = { 0 };
	for (size_t i = 0; i < st->ngroups; i++) {
		const struct srg *g = &st->groups[i];
		if (!member_of(st, g, self))
			continue;
		if (g->displayed.count == 0) {
			add_members(st, &t, g, self, group_label(g), true, false);
		} else {
			for (size_t k = 0; k < g->displayed.count; k++) {
				const struct srg *d =
				        group_find((struct srg_state *)st, g->displayed.items[k]);
				if (d != NULL)
					add_members(st, &t, d, self, group_label(d), true, false);
			}
		}
		if (!want_from)
			continue;
		/* self is in g: the members of every group displaying g see self. */
		for (size_t k = 0; k < st->ngroups; k++)
			if (displays(&st->groups[k], g->name))
				add_members(st, &t, &st->groups[k], self, NULL, false, true);
	}
	*n_r = 0;
	if (t.n == 0) {
		free(t.v);
		return NULL;
	}
	qsort(t.v, t.n, sizeof(*t.v), cmp_tuple);
	struct contact *c = xcalloc(t.n, sizeof(*c));
	size_t n = 0;
	for (size_t i = 0; i < t.n; i++) {
		if (n == 0 || strcmp(c[n - 1].jid, t.v[i].jid) != 0) {
			c[n].name = name_of(st, t.v[i].jid);
			c[n++].jid = t.v[i].jid;
		}
		struct contact *x = &c[n - 1];
		x->to |= t.v[i].to;
		x->from |= t.v[i].from;
		if (t.v[i].label != NULL && !strlist_contains(&x->labels, t.v[i].label)) {
			x->labels.items = xrealloc(x->labels.items, (x->labels.count + 1) * sizeof(char *));
			x->labels.items[x->labels.count++] = (char *)t.v[i].label;
		}
	}
	free(t.v);
	for (size_t i = 0; i < n; i++)
		if (c[i].labels.count > 1)
			qsort(c[i].labels.items, c[i].labels.count, sizeof(char *), cmp_strp);
	*n_r = n;
	return c;
}

static const struct contact *contact_find(const struct contact *c, size_t n, const char *jid)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int r = strcmp(c[mid].jid, jid);
		if (r == 0)
			return &c[mid];
		if (r < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* The name shown for a shared contact without a vCard name: its local part. */
static char *contact_name(const char *jid)
{
	const char *at = strchr(jid, '@');
	return at != NULL ? xstrndup(jid, (size_t)(at - jid)) : xstrdup(jid);
}

static uint32_t fnv(uint32_t h, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
		h ^= *p;
		h *= 16777619u;
	}
	h ^= 0xff;
	return h * 16777619u;
}

/* The tag of what the client sees of the shared contacts (0: nothing). */
static uint32_t contacts_tag(const struct contact *c, size_t n)
{
	uint32_t h = 2166136261u;
	bool any = false;
	for (size_t i = 0; i < n; i++) {
		if (!c[i].to)
			continue;
		any = true;
		h = fnv(h, c[i].jid);
		h = fnv(h, c[i].name != NULL ? c[i].name : "");
		for (size_t k = 0; k < c[i].labels.count; k++)
			h = fnv(h, c[i].labels.items[k]);
	}
	if (!any)
		return 0;
	return h != 0 ? h : 1;
}

static bool sub_has_to(enum roster_subscription s)
{
	return s == SUB_TO || s == SUB_BOTH;
}

static bool sub_has_from(enum roster_subscription s)
{
	return s == SUB_FROM || s == SUB_BOTH;
}

static enum roster_subscription sub_make(bool to, bool from)
{
	return to && from ? SUB_BOTH : to ? SUB_TO : from ? SUB_FROM : SUB_NONE;
}

/* Fill out (malloc'd) from the stored item s (may be NULL) and the shared
 * contact c (may be NULL; not both). */
static void item_merge(struct roster_item *out, const struct roster_item *s, const struct contact *c,
                       bool presence)
{
	memset(out, 0, sizeof(*out));
	bool stored = s != NULL && s->subscription != SUB_REMOVE;
	out->jid = xstrdup(s != NULL ? s->jid : c->jid);
	if (stored && s->name != NULL)
		out->name = xstrdup(s->name);
	else if (c != NULL)
		out->name = c->name != NULL ? xstrdup(c->name) : contact_name(c->jid);
	if (stored)
		sl_copy(&out->groups, &s->groups);
	for (size_t i = 0; c != NULL && i < c->labels.count; i++) {
		if (!strlist_contains(&out->groups, c->labels.items[i])) {
			out->groups.items =
			        xrealloc(out->groups.items, (out->groups.count + 1) * sizeof(char *));
			out->groups.items[out->groups.count++] = xstrdup(c->labels.items[i]);
		}
	}
	if (stored && s->ask_in && s->ask_in_stanza != NULL)
		out->ask_in_stanza = xstrdup(s->ask_in_stanza);
	/* a shared contact is in the roster, whatever is stored of it */
	out->in_roster = c != NULL || (stored && s->in_roster);
	if (c == NULL) {
		out->subscription = s->subscription;
		out->ask_out = s->ask_out;
		out->ask_in = s->ask_in;
		out->approved = s->approved;
	} else if (presence) {
		enum roster_subscription ss = stored ? s->subscription : SUB_NONE;
		out->subscription = sub_make(sub_has_to(ss) || c->to, sub_has_from(ss) || c->from);
		out->ask_out = stored && s->ask_out;
		out->ask_in = stored && s->ask_in;
		out->approved = stored && s->approved;
	} else {
		out->subscription = SUB_BOTH;
		out->ask_in = stored && s->ask_in;
	}
}

/* What self sees of peer, without listing every contact: labels get the
 * labels (borrowed) of the groups through which self sees peer. */
static void pair_of(const struct srg_state *st, const char *self, const char *peer, struct contact *c)
{
	memset(c, 0, sizeof(*c));
	c->jid = peer;
	c->name = name_of(st, peer);
	if (strcmp(self, peer) == 0)
		return;
	for (size_t i = 0; i < st->ngroups; i++) {
		const struct srg *g = &st->groups[i];
		bool self_in = member_of(st, g, self), peer_in = member_of(st, g, peer);
		if (!self_in && !peer_in)
			continue;
		size_t nd = g->displayed.count > 0 ? g->displayed.count : 1;
		for (size_t k = 0; k < nd; k++) {
			const struct srg *d = g->displayed.count > 0 ? group_find((struct srg_state *)st,
			                                                          g->displayed.items[k])
			                                             : g;
			if (d == NULL)
				continue;
			if (self_in && member_of(st, d, peer)) {
				c->to = true;
				if (!strlist_contains(&c->labels, group_label(d))) {
					c->labels.items = xrealloc(c->labels.items,
					                           (c->labels.count + 1) * sizeof(char *));
					c->labels.items[c->labels.count++] = (char *)group_label(d);
				}
			}
			if (peer_in && member_of(st, d, self))
				c->from = true;
		}
	}
	if (c->labels.count > 1)
		qsort(c->labels.items, c->labels.count, sizeof(char *), cmp_strp);
}

static enum hook_result srg_view(struct host *h, void *args, void *ctx)
{
	struct srg_state *st = ctx;
	struct hook_roster_view *hv = args;
	if (!st->loaded || st->ngroups == 0 || hv->items != NULL)
		return HOOK_CONTINUE;
	if (hv->single && hv->presence) {
		/* One contact for a presence decision (a probe): no list, no tag. */
		char *self = xasprintf("%s@%s", hv->user, h->name);
		struct contact c;
		pair_of(st, self, hv->stored[0].jid, &c);
		free(self);
		if (c.to || c.from) {
			hv->items = xcalloc(1, sizeof(*hv->items));
			item_merge(&hv->items[0], &hv->stored[0], &c, true);
			hv->count = 1;
		}
		free(c.labels.items);
		return HOOK_CONTINUE;
	}
	char *self = xasprintf("%s@%s", hv->user, h->name);
	size_t n = 0;
	struct contact *c = contacts_of(st, self, hv->presence, &n);
	free(self);
	if (n == 0)
		return HOOK_CONTINUE;
	hv->tag = contacts_tag(c, n);
	/* A contact counts when the client sees it, or for presence either way. */
	size_t cap = hv->nstored + (hv->single ? 0 : n);
	struct roster_item *out = xcalloc(cap > 0 ? cap : 1, sizeof(*out));
	size_t k = 0;
	bool changed = false;
	for (size_t i = 0; i < hv->nstored; i++) {
		const struct contact *x = contact_find(c, n, hv->stored[i].jid);
		if (x != NULL && !x->to && !hv->presence)
			x = NULL;
		item_merge(&out[k++], &hv->stored[i], x, hv->presence);
		changed |= x != NULL;
	}
	for (size_t i = 0; !hv->single && i < n; i++) {
		if (!c[i].to && !hv->presence)
			continue;
		bool in_stored = false;
		for (size_t j = 0; j < hv->nstored && !in_stored; j++)
			in_stored = strcmp(hv->stored[j].jid, c[i].jid) == 0;
		if (!in_stored) {
			item_merge(&out[k++], NULL, &c[i], hv->presence);
			changed = true;
		}
	}
	contacts_free(c, n);
	if (!changed) {
		for (size_t i = 0; i < k; i++)
			roster_item_clear(&out[i]);
		free(out);
		return HOOK_CONTINUE;
	}
	hv->items = out;
	hv->count = k;
	return HOOK_CONTINUE;
}

/* ---- live changes ------------------------------------------------------------------- */

/* Roster pushes for some contacts of one user: the stored roster is read
 * first so that the push shows the stored item merged with the shared one. */
struct push_op {
	struct pending_op p;  /* first: the state's push ops; p.call the read */
	struct srg_state *st; /* valid while p is listed */
	char *user;
	struct strlist jids;
};

static void push_op_free(struct pending_op *p)
{
	struct push_op *op = (struct push_op *)p;
	pending_untrack(p);
	free(op->user);
	strlist_free(&op->jids);
	free(op);
}

static void push_read(enum storage_result res, const struct roster_item *items, size_t count,
                      uint64_t version, void *ctx)
{
	struct push_op *op = ctx;
	if (!pending_resume(&op->p))
		return;
	struct host *h = op->st->host;
	if (res == STORAGE_NOT_FOUND) {
		res = STORAGE_OK;
		count = 0;
		version = 0;
	}
	if (res != STORAGE_OK) {
		log_warning("shared_roster %s: roster of %s unavailable (storage %s); its client "
		            "sees the group change at its next roster request",
		            h->name, op->user, storage_result_str(res));
		push_op_free(&op->p);
		return;
	}
	for (size_t i = 0; i < op->jids.count; i++) {
		const struct roster_item *it = NULL;
		for (size_t k = 0; k < count && it == NULL; k++)
			if (strcmp(items[k].jid, op->jids.items[i]) == 0 &&
			    !roster_item_pending_only(&items[k]))
				it = &items[k];
		struct roster_item gone = { .jid = op->jids.items[i], .subscription = SUB_REMOVE };
		roster_push(h, op->user, it != NULL ? it : &gone, version);
	}
	push_op_free(&op->p);
}

static bool interested(struct host *h, const char *user)
{
	for (struct session *s = sm_user_sessions(h, user); s != NULL; s = s->next_of_user)
		if (s->interested)
			return true;
	return false;
}

/* Presence of every available resource of contact (a bare JID of the
 * host) to user's bare JID; unavailable instead when lost. */
static void presence_between(struct host *h, const char *contact, const char *user, bool lost,
                             const struct jid *gone)
{
	struct jid to = { 0 }, c;
	const char *err;
	if (jid_parse(contact, &c, &err) != 0)
		return;
	jid_set(&to, user, h->name, NULL);
	size_t n = 0;
	for (struct session *s = sm_user_sessions(h, c.node); s != NULL; s = s->next_of_user)
		if (s->available && s->presence != NULL)
			n++;
	struct jid *from = xcalloc(n + 1, sizeof(*from));
	struct xml_node **pres = xcalloc(n + 1, sizeof(*pres));
	size_t i = 0;
	for (struct session *s = sm_user_sessions(h, c.node); s != NULL && i < n; s = s->next_of_user) {
		if (s->available && s->presence != NULL) {
			jid_copy(&from[i], &s->jid);
			pres[i] = s->presence;
			xml_ref(pres[i]);
			i++;
		}
	}
	if (lost && gone != NULL && jid_bare_equal(gone, &c))
		jid_copy(&from[i++], gone);
	for (size_t k = 0; k < i; k++) {
		struct xml_node *p;
		if (lost || pres[k] == NULL) {
			p = xml_new("presence", NS_CLIENT);
			xml_set_attr(p, "type", "unavailable");
		} else {
			p = xml_copy(pres[k]);
		}
		xml_set_attr(p, "from", jid_to_pool(p->pool, &from[k]));
		xml_set_attr(p, "to", jid_bare_to_pool(p->pool, &to));
		router_route(p, &from[k], &to);
		xml_unref(&p);
		if (pres[k] != NULL)
			xml_unref(&pres[k]);
		jid_clear(&from[k]);
	}
	free(pres);
	free(from);
	jid_clear(&c);
	jid_clear(&to);
}

/* What each connected user saw before a change. */
struct snapshot {
	char **users; /* bare JIDs */
	struct contact **c;
	size_t *nc;
	size_t n;
};

static void snapshot_take(const struct srg_state *st, struct snapshot *sn)
{
	sn->n = st->online.count;
	sn->users = xcalloc(sn->n + 1, sizeof(char *));
	sn->c = xcalloc(sn->n + 1, sizeof(*sn->c));
	sn->nc = xcalloc(sn->n + 1, sizeof(size_t));
	for (size_t i = 0; i < sn->n; i++) {
		sn->users[i] = xstrdup(st->online.items[i]);
		struct contact *c = contacts_of(st, sn->users[i], false, &sn->nc[i]);
		/* The change may free the strings the contacts borrow: copy them. */
		for (size_t k = 0; k < sn->nc[i]; k++) {
			c[k].jid = xstrdup(c[k].jid);
			c[k].name = c[k].name != NULL ? xstrdup(c[k].name) : NULL;
			for (size_t j = 0; j < c[k].labels.count; j++)
				c[k].labels.items[j] = xstrdup(c[k].labels.items[j]);
		}
		sn->c[i] = c;
	}
}

/* Free contacts whose strings are their own (a snapshot's). */
static void contacts_free_owned(struct contact *c, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free((char *)c[i].jid);
		free((char *)c[i].name);
		strlist_free(&c[i].labels);
	}
	free(c);
}

/* Whether the client of a user sees contact differently in a and b. */
static bool contact_differs(const struct contact *a, const struct contact *b)
{
	bool ta = a != NULL && a->to, tb = b != NULL && b->to;
	if (ta != tb)
		return true;
	if (!ta)
		return false;
	if (!str_eq(a->name, b->name) || a->labels.count != b->labels.count)
		return true;
	for (size_t i = 0; i < a->labels.count; i++)
		if (strcmp(a->labels.items[i], b->labels.items[i]) != 0)
			return true;
	return false;
}

/* Compare every snapshot user's view now with the snapshot; push and send
 * presence where they differ.  gone: the full JID of a session that just
 * closed (its unavailable goes to those who lost it), or NULL. */
static void snapshot_apply(struct srg_state *st, struct snapshot *sn, const struct jid *gone)
{
	struct host *h = st->host;
	for (size_t i = 0; i < sn->n; i++) {
		const char *self = sn->users[i];
		size_t na = 0;
		struct contact *after = contacts_of(st, self, false, &na);
		struct contact *before = sn->c[i];
		size_t nb = sn->nc[i];
		char *user = xstrndup(self, strcspn(self, "@"));
		struct strlist changed = { 0 };
		/* Walk both sorted lists. */
		size_t a = 0, b = 0;
		while (a < na || b < nb) {
			int cmp = a >= na ? 1 : b >= nb ? -1 : strcmp(after[a].jid, before[b].jid);
			const struct contact *ca = cmp <= 0 ? &after[a] : NULL;
			const struct contact *cb = cmp >= 0 ? &before[b] : NULL;
			const char *jid = ca != NULL ? ca->jid : cb->jid;
			if (contact_differs(cb, ca))
				sl_insert(&changed, jid);
			bool to_before = cb != NULL && cb->to, to_after = ca != NULL && ca->to;
			if (to_before != to_after)
				presence_between(h, jid, user, to_before, gone);
			if (cmp <= 0)
				a++;
			if (cmp >= 0)
				b++;
		}
		if (changed.count > 0 && interested(h, user)) {
			struct push_op *op = xcalloc(1, sizeof(*op));
			op->st = st;
			op->user = user;
			user = NULL;
			op->jids = changed;
			memset(&changed, 0, sizeof(changed));
			pending_track(&st->ops, &op->p, push_op_free);
			pending_wait_storage(
			        &op->p, storage_roster_get(h->storage, h->name, op->user, push_read, op));
		}
		strlist_free(&changed);
		free(user);
		contacts_free(after, na);
	}
	for (size_t i = 0; i < sn->n; i++) {
		free(sn->users[i]);
		contacts_free_owned(sn->c[i], sn->nc[i]);
	}
	free(sn->users);
	free(sn->c);
	free(sn->nc);
	memset(sn, 0, sizeof(*sn));
}

/* ---- loading -------------------------------------------------------------------------- */

static void loaded(enum storage_result res, const struct srg_group *groups, size_t count, void *ctx)
{
	struct srg_state *st = ctx;
	st->load_handle = NULL;
	if (res != STORAGE_OK) {
		if (!st->load_failing && st->loaded)
			log_error("shared_roster %s: cannot load the shared roster groups (%s); the "
			          "groups loaded last are kept",
			          st->host->name, storage_result_str(res));
		else if (!st->load_failing)
			log_error("shared_roster %s: cannot load the shared roster groups (%s); rosters "
			          "show none until a load succeeds",
			          st->host->name, storage_result_str(res));
		st->load_failing = true;
		return;
	}
	st->load_failing = false;
	st->loaded_at = ev_time();
	struct snapshot sn = { 0 };
	if (st->loaded)
		snapshot_take(st, &sn);
	groups_clear(st);
	for (size_t i = 0; i < count; i++)
		group_add(st, &groups[i]);
	bool was = st->loaded;
	st->loaded = true;
	if (was)
		snapshot_apply(st, &sn, NULL);
	if (!was || !st->ldap)
		log_info("shared_roster %s: %zu groups loaded", st->host->name, count);
}

static void source_names_loaded(enum storage_result res, const struct srg_name *names, size_t count,
                                void *ctx);

/* A load of the groups; with names from the source, their read first (the
 * groups are loaded when it has answered), so that shared contacts appear
 * with their names. */
static void load_start(struct srg_state *st)
{
	struct host *h = st->host;
	storage_cancel(st->load_handle);
	st->load_handle = NULL;
	storage_cancel(st->names_handle);
	st->names_handle = NULL;
	if (st->dir_names)
		st->names_handle =
		        storage_srg_names(host_store(h, STORAGE_AREA_SRG), h->name, source_names_loaded, st);
	else
		st->load_handle = storage_srg_get(host_store(h, STORAGE_AREA_SRG), h->name, NULL, loaded, st);
}

#ifdef HAVE_BACKEND_LDAP
/* source ldap: read the directory again, unless a read is under way. */
static void refresh_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	latency_begin(LATENCY_MODULE, "shared_roster");
	(void)loop;
	(void)revents;
	struct srg_state *st = w->data;
	if (st->load_handle == NULL && st->names_handle == NULL)
		load_start(st);
	latency_end();
}
#endif

static void accounts_loaded(enum storage_result res, const struct strlist *names, void *ctx)
{
	struct srg_state *st = ctx;
	st->accounts_req = NULL;
	if (res != STORAGE_OK) {
		log_error("shared_roster %s: cannot list the accounts (%s); @all@ groups are empty",
		          st->host->name, storage_result_str(res));
		return;
	}
	struct snapshot sn = { 0 };
	snapshot_take(st, &sn);
	strlist_free(&st->accounts);
	for (size_t i = 0; i < names->count; i++) {
		char *jid = xasprintf("%s@%s", names->items[i], st->host->name);
		sl_insert(&st->accounts, jid);
		free(jid);
	}
	snapshot_apply(st, &sn, NULL);
}

/* ---- administration ---------------------------------------------------------------- */

enum admin_kind { AK_CREATE, AK_DELETE, AK_LIST, AK_INFO, AK_USER_ADD, AK_USER_DEL };

struct srg_admin {
	struct pending_op p; /* first: the state's admins; p.call the source's call */
	struct srg_state *st;
	enum admin_kind kind;
	srg_admin_done_fn *done;     /* srg_admin_run: text answers */
	srg_admin_result_fn *result; /* srg_admin_groups / srg_admin_change: structured */
	void *ctx;
	struct srg_group g; /* AK_CREATE: the new group; others: g.name */
	char *member;       /* AK_USER_ADD/DEL */
};

const char *const srg_admin_usage[] = {
	"srg-create HOST GROUP [--name N] [--description D] [--display G1,G2]",
	"srg-delete HOST GROUP",
	"srg-list HOST",
	"srg-info HOST GROUP",
	"srg-user-add USER@HOST HOST GROUP",
	"srg-user-del USER@HOST HOST GROUP",
	NULL,
};

static void admin_free_op(struct pending_op *p)
{
	struct srg_admin *a = (struct srg_admin *)p;
	pending_untrack(p);
	srg_group_clear(&a->g);
	free(a->member);
	free(a);
}

static void admin_free(struct srg_admin *a)
{
	admin_free_op(&a->p);
}

static enum srg_admin_result result_of(enum storage_result r)
{
	switch (r) {
	case STORAGE_OK: return SRG_ADMIN_OK;
	case STORAGE_EXISTS: return SRG_ADMIN_EXISTS;
	case STORAGE_NOT_FOUND: return SRG_ADMIN_NOT_FOUND;
	case STORAGE_TEMPFAIL: return SRG_ADMIN_TEMPFAIL;
	default: return SRG_ADMIN_FAILED;
	}
}

/* Answer the caller (body: srg_admin_run's output; groups: srg_admin_groups'
 * answer) and free a. */
static void admin_finish(struct srg_admin *a, enum srg_admin_result r, const char *message, const char *body,
                         const struct srg_group *groups, size_t count)
{
	if (a->result != NULL)
		a->result(a->ctx, r, message, groups, count);
	else
		a->done(a->ctx, r, message, body != NULL ? body : "");
	admin_free(a);
}

static void admin_changed(enum storage_result res, void *ctx)
{
	struct srg_admin *a = ctx;
	if (!pending_resume(&a->p))
		return;
	struct srg_state *st = a->st;
	const char *host = st->host->name;
	if (res != STORAGE_OK) {
		char *msg;
		if (res == STORAGE_EXISTS && a->kind == AK_CREATE)
			msg = xasprintf("group %s exists on %s", a->g.name, host);
		else if (res == STORAGE_EXISTS)
			msg = xasprintf("%s is a member of %s on %s already", a->member, a->g.name, host);
		else if (res == STORAGE_NOT_FOUND && a->kind == AK_USER_DEL)
			msg = xasprintf("%s is not a member of %s on %s", a->member, a->g.name, host);
		else if (res == STORAGE_NOT_FOUND)
			msg = xasprintf("no group %s on %s", a->g.name, host);
		else
			msg = xasprintf("cannot change group %s on %s: %s", a->g.name, host,
			                storage_result_str(res));
		admin_finish(a, result_of(res), msg, NULL, NULL, 0);
		free(msg);
		return;
	}
	if (st->loaded) {
		struct snapshot sn = { 0 };
		snapshot_take(st, &sn);
		switch (a->kind) {
		case AK_CREATE: group_add(st, &a->g); break;
		case AK_DELETE: group_remove(st, a->g.name); break;
		case AK_USER_ADD:
		case AK_USER_DEL: {
			struct srg *g = group_find(st, a->g.name);
			if (g != NULL && a->kind == AK_USER_ADD)
				group_member_add(g, a->member);
			else if (g != NULL)
				group_member_remove(g, a->member);
			break;
		}
		default: break;
		}
		snapshot_apply(st, &sn, NULL);
	} else {
		load_start(st); /* the load in flight may have read the old state */
	}
	char *body;
	switch (a->kind) {
	case AK_CREATE: body = xasprintf("group %s created on %s\n", a->g.name, host); break;
	case AK_DELETE: body = xasprintf("group %s deleted on %s\n", a->g.name, host); break;
	case AK_USER_ADD: body = xasprintf("%s added to %s on %s\n", a->member, a->g.name, host); break;
	default: body = xasprintf("%s removed from %s on %s\n", a->member, a->g.name, host); break;
	}
	log_notice("shared_roster %s: %.*s", host, (int)strcspn(body, "\n"), body);
	admin_finish(a, SRG_ADMIN_OK, NULL, body, NULL, 0);
	free(body);
}

static void admin_loaded(enum storage_result res, const struct srg_group *groups, size_t count, void *ctx)
{
	struct srg_admin *a = ctx;
	if (!pending_resume(&a->p))
		return;
	const char *host = a->st->host->name;
	if (res != STORAGE_OK) {
		char *msg = xasprintf("cannot read the groups of %s: %s", host, storage_result_str(res));
		admin_finish(a, result_of(res), msg, NULL, NULL, 0);
		free(msg);
		return;
	}
	if (a->result != NULL) {
		admin_finish(a, SRG_ADMIN_OK, NULL, NULL, groups, count);
		return;
	}
	struct buf b = { 0 };
	if (a->kind == AK_LIST) {
		for (size_t i = 0; i < count; i++)
			buf_printf(&b, "%s\n", groups[i].name);
		admin_finish(a, SRG_ADMIN_OK, NULL, b.data, NULL, 0);
		buf_free(&b);
		return;
	}
	const struct srg_group *g = NULL;
	for (size_t i = 0; i < count && g == NULL; i++)
		if (strcmp(groups[i].name, a->g.name) == 0)
			g = &groups[i];
	if (g == NULL) {
		char *msg = xasprintf("no group %s on %s", a->g.name, host);
		admin_finish(a, SRG_ADMIN_NOT_FOUND, msg, NULL, NULL, 0);
		free(msg);
		return;
	}
	buf_printf(&b, "group: %s\nname: %s\ndescription: %s\ndisplayed: ", g->name,
	           g->label[0] != '\0' ? g->label : g->name, g->description);
	if (g->displayed.count == 0)
		buf_append_str(&b, g->name);
	for (size_t i = 0; i < g->displayed.count; i++)
		buf_printf(&b, "%s%s", i > 0 ? "," : "", g->displayed.items[i]);
	buf_printf(&b, "\nmembers: %zu\n", g->members.count);
	for (size_t i = 0; i < g->members.count; i++)
		buf_printf(&b, "  %s\n", g->members.items[i]);
	admin_finish(a, SRG_ADMIN_OK, NULL, b.data, NULL, 0);
	buf_free(&b);
}

/* Split "a,b,c" into l (empty parts dropped). */
static void split_list(struct strlist *l, const char *s)
{
	while (*s != '\0') {
		size_t n = strcspn(s, ",");
		if (n > 0) {
			char *part = xstrndup(s, n);
			if (!strlist_contains(l, part)) {
				l->items = xrealloc(l->items, (l->count + 1) * sizeof(char *));
				l->items[l->count++] = part;
			} else {
				free(part);
			}
		}
		s += n;
		if (*s == ',')
			s++;
	}
}

/* Group names are keys of every SQL dialect's tables (191 characters on
 * MySQL): at most 191 bytes. */
static bool group_name_ok(const char *s)
{
	return *s != '\0' && strlen(s) <= 191 && utf8_valid(s, strlen(s)) && strchr(s, ',') == NULL;
}

int srg_admin_member(struct host *h, const char *in, char **member_r, const char **error_r)
{
	if (strcmp(in, SRG_MEMBER_ALL) == 0 || strcmp(in, SRG_MEMBER_ONLINE) == 0) {
		*member_r = xstrdup(in);
		return 0;
	}
	struct jid j;
	const char *jerr;
	if (jid_parse(in, &j, &jerr) != 0) {
		*error_r = "the member must be USER@HOST, @all@ or @online@";
		return -1;
	}
	int ret = -1;
	if (j.node == NULL || j.resource != NULL) {
		*error_r = "the member must be USER@HOST, @all@ or @online@";
	} else if (strcmp(j.domain, h->name) != 0) {
		*error_r = "the member must be a user of the group's host";
	} else {
		*member_r = jid_bare_string(&j);
		ret = 0;
	}
	jid_clear(&j);
	return ret;
}

/* The checks of a new group's name, label, description and displayed
 * groups; NULL when they pass. */
static const char *group_check(const struct srg_group *g)
{
	if (!group_name_ok(g->name))
		return "a group name is 1 to 191 bytes of UTF-8 without ','";
	for (size_t k = 0; k < g->displayed.count; k++)
		if (!group_name_ok(g->displayed.items[k]))
			return "a displayed group name is not valid";
	if (!utf8_valid(g->label, strlen(g->label)) || !utf8_valid(g->description, strlen(g->description)))
		return "the name and the description must be UTF-8";
	if (strlen(g->label) > 255 || strlen(g->description) > 1024)
		return "the name is at most 255 bytes, the description 1024";
	return NULL;
}

/* The module's state on h, or NULL with a malloc'd *error_r. */
static struct srg_state *admin_state(struct host *h, char **error_r)
{
	struct srg_state *st = module_state(h, "shared_roster");
	if (st == NULL)
		*error_r = xasprintf("the shared_roster module is not enabled on %s", h->name);
	return st;
}

/* The name of where the groups of st come from, for messages. */
static const char *source_name(const struct srg_state *st)
{
	return st->ldap ? "ldap" : "sql";
}

char *srg_admin_read_only(struct host *h)
{
	struct srg_state *st = module_state(h, "shared_roster");
	if (st == NULL || !st->ldap)
		return NULL;
	return xasprintf("the shared roster groups of %s come from %s and are read-only here", h->name,
	                 source_name(st));
}

/* Send a (checked, linked to its state) to the group source.  Returns
 * SRG_ADMIN_OK when the answer will come through admin_changed or
 * admin_loaded; else a was not sent and *error_r (malloc'd) says why. */
static enum srg_admin_result admin_send(struct srg_admin *a, char **error_r)
{
	struct host *h = a->st->host;
	struct storage *store = host_store(h, STORAGE_AREA_SRG);
	bool writes = a->kind != AK_LIST && a->kind != AK_INFO;
	if (writes && a->st->ldap) {
		*error_r = srg_admin_read_only(h);
		return SRG_ADMIN_READ_ONLY;
	}
	struct storage_req *call = NULL;
	switch (a->kind) {
	case AK_CREATE: call = storage_srg_create(store, h->name, &a->g, admin_changed, a); break;
	case AK_DELETE: call = storage_srg_delete(store, h->name, a->g.name, admin_changed, a); break;
	case AK_USER_ADD:
		call = storage_srg_member_add(store, h->name, a->g.name, a->member, admin_changed, a);
		break;
	case AK_USER_DEL:
		call = storage_srg_member_remove(store, h->name, a->g.name, a->member, admin_changed, a);
		break;
	case AK_LIST:
	case AK_INFO: call = storage_srg_get(store, h->name, NULL, admin_loaded, a); break;
	}
	pending_wait_storage(&a->p, call);
	return SRG_ADMIN_OK;
}

static struct srg_admin *admin_new(struct srg_state *st, enum admin_kind kind)
{
	struct srg_admin *a = xcalloc(1, sizeof(*a));
	a->st = st;
	a->kind = kind;
	pending_track(&st->admins, &a->p, admin_free_op);
	return a;
}

struct srg_admin *srg_admin_run(int argc, char **argv, srg_admin_done_fn *done, void *ctx)
{
	static const struct {
		const char *name;
		enum admin_kind kind;
		int min, max, host_arg;
	} cmds[] = {
		{ "srg-create", AK_CREATE, 3, 9, 1 },     { "srg-delete", AK_DELETE, 3, 3, 1 },
		{ "srg-list", AK_LIST, 2, 2, 1 },         { "srg-info", AK_INFO, 3, 3, 1 },
		{ "srg-user-add", AK_USER_ADD, 4, 4, 2 }, { "srg-user-del", AK_USER_DEL, 4, 4, 2 },
	};
	size_t ci = 0;
	while (ci < ARRAY_SIZE(cmds) && (argc < 1 || strcmp(cmds[ci].name, argv[0]) != 0))
		ci++;
	if (ci == ARRAY_SIZE(cmds) || argc < cmds[ci].min || argc > cmds[ci].max) {
		char *msg = xasprintf("usage: %s", ci < ARRAY_SIZE(cmds) ? srg_admin_usage[ci] : "srg-...");
		done(ctx, SRG_ADMIN_INVALID, msg, "");
		free(msg);
		return NULL;
	}
	char *domain = jid_nameprep(argv[cmds[ci].host_arg]);
	struct host *h = domain != NULL ? host_find(domain) : NULL;
	free(domain);
	if (h == NULL) {
		char *msg = xasprintf("host %s is not served here", argv[cmds[ci].host_arg]);
		done(ctx, SRG_ADMIN_FAILED, msg, "");
		free(msg);
		return NULL;
	}
	char *msg = NULL;
	struct srg_state *st = admin_state(h, &msg);
	if (st == NULL) {
		done(ctx, SRG_ADMIN_FAILED, msg, "");
		free(msg);
		return NULL;
	}
	struct srg_admin *a = admin_new(st, cmds[ci].kind);
	a->done = done;
	a->ctx = ctx;
	const char *err = NULL;
	if (a->kind == AK_USER_ADD || a->kind == AK_USER_DEL) {
		a->g.name = xstrdup(argv[3]);
		srg_admin_member(h, argv[1], &a->member, &err);
	} else if (a->kind != AK_LIST) {
		a->g.name = xstrdup(argv[2]);
		if (!group_name_ok(a->g.name))
			err = "a group name is 1 to 191 bytes of UTF-8 without ','";
	}
	if (err == NULL && a->kind == AK_CREATE) {
		a->g.label = xstrdup("");
		a->g.description = xstrdup("");
		for (int i = 3; i < argc && err == NULL; i += 2) {
			if (i + 1 >= argc) {
				err = "an option needs a value";
				break;
			}
			if (strcmp(argv[i], "--name") == 0) {
				free(a->g.label);
				a->g.label = xstrdup(argv[i + 1]);
			} else if (strcmp(argv[i], "--description") == 0) {
				free(a->g.description);
				a->g.description = xstrdup(argv[i + 1]);
			} else if (strcmp(argv[i], "--display") == 0) {
				strlist_free(&a->g.displayed);
				split_list(&a->g.displayed, argv[i + 1]);
			} else {
				err = "unknown option (--name, --description, --display)";
			}
		}
		if (err == NULL)
			err = group_check(&a->g);
	}
	if (err != NULL) {
		msg = xasprintf("%s (usage: %s)", err, srg_admin_usage[ci]);
		admin_finish(a, SRG_ADMIN_INVALID, msg, NULL, NULL, 0);
		free(msg);
		return NULL;
	}
	enum srg_admin_result r = admin_send(a, &msg);
	if (r != SRG_ADMIN_OK) {
		admin_finish(a, r, msg, NULL, NULL, 0);
		free(msg);
		return NULL;
	}
	return a;
}

struct srg_admin *srg_admin_groups(struct host *h, srg_admin_result_fn *cb, void *ctx, char **error_r)
{
	struct srg_state *st = admin_state(h, error_r);
	if (st == NULL)
		return NULL;
	struct srg_admin *a = admin_new(st, AK_LIST);
	a->result = cb;
	a->ctx = ctx;
	admin_send(a, error_r); /* a read cannot be refused */
	return a;
}

static void strlist_push(struct strlist *l, char *s)
{
	l->items = xrealloc(l->items, (l->count + 1) * sizeof(char *));
	l->items[l->count++] = s;
}

struct srg_admin *srg_admin_change(struct host *h, enum srg_admin_op op, const struct srg_group *g,
                                   const char *member, srg_admin_result_fn *cb, void *ctx,
                                   enum srg_admin_result *result_r, char **error_r)
{
	static const enum admin_kind kinds[] = {
		[SRG_ADMIN_CREATE] = AK_CREATE,
		[SRG_ADMIN_DELETE] = AK_DELETE,
		[SRG_ADMIN_MEMBER_ADD] = AK_USER_ADD,
		[SRG_ADMIN_MEMBER_DEL] = AK_USER_DEL,
	};
	struct srg_state *st = admin_state(h, error_r);
	if (st == NULL) {
		*result_r = SRG_ADMIN_FAILED;
		return NULL;
	}
	struct srg_admin *a = admin_new(st, kinds[op]);
	a->result = cb;
	a->ctx = ctx;
	a->g.name = xstrdup(g->name != NULL ? g->name : "");
	const char *err = NULL;
	if (op == SRG_ADMIN_CREATE) {
		a->g.label = xstrdup(g->label != NULL ? g->label : "");
		a->g.description = xstrdup(g->description != NULL ? g->description : "");
		for (size_t i = 0; i < g->displayed.count; i++)
			if (!strlist_contains(&a->g.displayed, g->displayed.items[i]))
				strlist_push(&a->g.displayed, xstrdup(g->displayed.items[i]));
		err = group_check(&a->g);
		for (size_t i = 0; i < g->members.count && err == NULL; i++) {
			char *m = NULL;
			if (srg_admin_member(h, g->members.items[i], &m, &err) == 0) {
				if (strlist_contains(&a->g.members, m))
					free(m);
				else
					strlist_push(&a->g.members, m);
			}
		}
		if (a->g.members.count > 1) /* the store keeps them byte-wise sorted */
			qsort(a->g.members.items, a->g.members.count, sizeof(char *), cmp_strp);
	} else if (!group_name_ok(a->g.name)) {
		err = "a group name is 1 to 191 bytes of UTF-8 without ','";
	} else if (op != SRG_ADMIN_DELETE) {
		srg_admin_member(h, member != NULL ? member : "", &a->member, &err);
	}
	enum srg_admin_result r = SRG_ADMIN_INVALID;
	if (err != NULL)
		*error_r = xstrdup(err);
	else
		r = admin_send(a, error_r);
	if (r != SRG_ADMIN_OK) {
		*result_r = r;
		admin_free(a);
		return NULL;
	}
	*result_r = SRG_ADMIN_OK;
	return a;
}

/* ---- diagnostics ------------------------------------------------------------------- */

int srg_ldap_group_search(const struct host *h, char **base_r, char **filter_r)
{
#ifdef HAVE_BACKEND_LDAP
	const struct srg_state *st = module_state(h, "shared_roster");
	if (st == NULL || st->ldap_store == NULL)
		return -1;
	return ldap_store_srg_search(st->ldap_store, base_r, filter_r);
#else
	(void)h;
	(void)base_r;
	(void)filter_r;
	return -1;
#endif
}

int srg_groups_of(const struct host *h, const char *jid, struct srg_user_groups *out)
{
	memset(out, 0, sizeof(*out));
	const struct srg_state *st = module_state(h, "shared_roster");
	if (st == NULL)
		return -1;
	out->source = source_name(st);
	out->loaded = st->loaded;
	out->loaded_at = st->loaded_at;
	out->load_failing = st->load_failing;
	out->total = st->ngroups;
	out->groups = xcalloc(st->ngroups + 1, sizeof(*out->groups));
	for (size_t i = 0; i < st->ngroups; i++) {
		const struct srg *g = &st->groups[i];
		if (!member_of(st, g, jid))
			continue;
		struct srg_user_group *u = &out->groups[out->count++];
		u->name = g->name;
		u->label = g->label;
		u->description = g->description;
		u->members = g->members.count;
		u->all = g->all;
		u->online = g->online;
	}
	return 0;
}

void srg_user_groups_clear(struct srg_user_groups *g)
{
	free(g->groups);
	memset(g, 0, sizeof(*g));
}

void srg_admin_cancel(struct srg_admin *a)
{
	if (a != NULL && !pending_cancel(&a->p))
		admin_free(a);
}

/* ---- hooks ----------------------------------------------------------------------------- */

static enum hook_result srg_session_opened(struct host *h, void *args, void *ctx)
{
	struct srg_state *st = ctx;
	struct hook_session *hs = args;
	char *jid = jid_bare_string(&hs->session->jid);
	if (!sl_has(&st->online, jid)) {
		struct snapshot sn = { 0 };
		bool live = st->loaded && any_group(st, false, true);
		if (live)
			snapshot_take(st, &sn);
		sl_insert(&st->online, jid);
		if (live)
			snapshot_apply(st, &sn, NULL);
	}
	free(jid);
	return HOOK_CONTINUE;
}

static enum hook_result srg_session_closed(struct host *h, void *args, void *ctx)
{
	struct srg_state *st = ctx;
	struct hook_session *hs = args;
	struct session *s = hs->session;
	if (sm_user_sessions(h, s->jid.node) != NULL)
		return HOOK_CONTINUE; /* still online */
	char *jid = jid_bare_string(&s->jid);
	struct snapshot sn = { 0 };
	bool live = st->loaded && any_group(st, false, true) && sl_has(&st->online, jid);
	if (live)
		snapshot_take(st, &sn);
	sl_remove(&st->online, jid);
	if (live)
		snapshot_apply(st, &sn, s->available ? &s->jid : NULL);
	free(jid);
	return HOOK_CONTINUE;
}

static enum hook_result srg_register_user(struct host *h, void *args, void *ctx)
{
	struct srg_state *st = ctx;
	struct hook_user *hu = args;
	char *jid = xasprintf("%s@%s", hu->user, h->name);
	struct snapshot sn = { 0 };
	bool live = st->loaded && any_group(st, true, false);
	if (live)
		snapshot_take(st, &sn);
	sl_insert(&st->accounts, jid);
	if (live)
		snapshot_apply(st, &sn, NULL);
	free(jid);
	return HOOK_CONTINUE;
}

static enum hook_result srg_remove_user(struct host *h, void *args, void *ctx)
{
	struct srg_state *st = ctx;
	struct hook_user *hu = args;
	char *jid = xasprintf("%s@%s", hu->user, h->name);
	struct snapshot sn = { 0 };
	if (st->loaded)
		snapshot_take(st, &sn);
	sl_remove(&st->accounts, jid);
	name_set(st, jid, NULL);
	for (size_t i = 0; i < st->ngroups; i++)
		sl_remove(&st->groups[i].members, jid); /* storage removed the rows */
	if (st->loaded)
		snapshot_apply(st, &sn, NULL);
	free(jid);
	return HOOK_CONTINUE;
}

static void names_loaded(enum storage_result res, const struct vcard_entry *entries, size_t count, bool more,
                         void *ctx)
{
	struct srg_state *st = ctx;
	(void)more;
	st->names_req = NULL;
	if (res != STORAGE_OK) {
		log_warning("shared_roster %s: cannot read the names of the vCards (%s); shared "
		            "contacts are shown by their user names",
		            st->host->name, storage_result_str(res));
		return;
	}
	struct snapshot sn = { 0 };
	if (st->loaded)
		snapshot_take(st, &sn);
	names_clear(st);
	for (size_t i = 0; i < count; i++) {
		const char *fn = entries[i].fields[VF_FN], *nick = entries[i].fields[VF_NICK];
		char *jid = xasprintf("%s@%s", entries[i].fields[VF_USER], st->host->name);
		name_set(st, jid, fn[0] != '\0' ? fn : nick);
		free(jid);
	}
	if (st->loaded)
		snapshot_apply(st, &sn, NULL);
}

/* The names the source gives (source ldap: ldap_user_name_attr), read
 * before every load of the groups: they replace the names held; a failed
 * read keeps them.  Then the groups. */
static void source_names_loaded(enum storage_result res, const struct srg_name *names, size_t count,
                                void *ctx)
{
	struct srg_state *st = ctx;
	st->names_handle = NULL;
	if (res == STORAGE_OK) { /* a failure is logged by the source, once */
		struct snapshot sn = { 0 };
		if (st->loaded)
			snapshot_take(st, &sn);
		names_clear(st);
		for (size_t i = 0; i < count; i++)
			name_set(st, names[i].jid, names[i].name);
		if (st->loaded)
			snapshot_apply(st, &sn, NULL);
	}
	st->load_handle =
	        storage_srg_get(host_store(st->host, STORAGE_AREA_SRG), st->host->name, NULL, loaded, st);
}

/* A user stored a new vCard: its FN (or NICKNAME) is the name others see. */
static enum hook_result srg_vcard_set(struct host *h, void *args, void *ctx)
{
	struct srg_state *st = ctx;
	if (st->dir_names)
		return HOOK_CONTINUE; /* the directory names them */
	struct hook_vcard *hv = args;
	const char *fn = xml_child_text(hv->vcard, "FN", "vcard-temp");
	const char *nick = xml_child_text(hv->vcard, "NICKNAME", "vcard-temp");
	char *name = xstrdup(fn != NULL && *fn != '\0' ? fn : nick != NULL ? nick : "");
	size_t len = strlen(name);
	if (len > 255) { /* at most 255 bytes, cut at a character boundary */
		len = 255;
		while (len > 0 && ((unsigned char)name[len] & 0xC0) == 0x80)
			len--;
		name[len] = '\0';
	}
	char *jid = xasprintf("%s@%s", hv->user, h->name);
	if (!str_eq(name_of(st, jid), *name != '\0' ? name : NULL)) {
		struct snapshot sn = { 0 };
		if (st->loaded)
			snapshot_take(st, &sn);
		name_set(st, jid, name);
		if (st->loaded)
			snapshot_apply(st, &sn, NULL);
	}
	free(jid);
	free(name);
	return HOOK_CONTINUE;
}

/* ---- module ---------------------------------------------------------------------------- */

static void add_online(struct session *s, void *ctx)
{
	struct srg_state *st = ctx;
	char *jid = jid_bare_string(&s->jid);
	sl_insert(&st->online, jid);
	free(jid);
}

static int srg_start(struct host *h, const void *settings, void **state_r, char **error_r)
{
	const struct srg_settings *set = settings;
	struct srg_state *st = xcalloc(1, sizeof(*st));
	st->host = h;
	if (set->source == SRG_SOURCE_LDAP) {
#ifdef HAVE_BACKEND_LDAP
		if (set->ldap.refresh < 1) {
			*error_r = xstrdup("ldap_refresh must be at least 1 s");
			free(st);
			return -1;
		}
		char *name = xasprintf("shared_roster %s", h->name);
		int rc = ldap_store_srg_open(server.loop, name, h->name, &h->cfg->auth.ldap, &set->ldap,
		                             &st->ldap_store, error_r);
		free(name);
		if (rc < 0) {
			free(st);
			return -1;
		}
		st->ldap = true;
		st->dir_names = *set->ldap.user_name_attr != '\0';
		ev_timer_init(&st->refresh, refresh_cb, set->ldap.refresh, set->ldap.refresh);
		st->refresh.data = st;
		ev_timer_start(server.loop, &st->refresh);
#else
		*error_r = xstrdup("source ldap: parleyd was built without LDAP support");
		free(st);
		return -1;
#endif
	}
	if (srg_adhoc_start(h, error_r) < 0) {
#ifdef HAVE_BACKEND_LDAP
		if (st->ldap)
			ev_timer_stop(server.loop, &st->refresh);
		storage_close(&st->ldap_store);
#endif
		free(st);
		return -1;
	}
	if (st->ldap_store != NULL)
		host_set_store(h, STORAGE_AREA_SRG, st->ldap_store);
	sm_foreach(h, add_online, st); /* a restart of the module (reload) */
	hook_add(h, HOOK_ROSTER_VIEW, 50, srg_view, st);
	hook_add(h, HOOK_SESSION_OPENED, 60, srg_session_opened, st);
	hook_add(h, HOOK_SESSION_CLOSED, 60, srg_session_closed, st);
	hook_add(h, HOOK_REGISTER_USER, 60, srg_register_user, st);
	hook_add(h, HOOK_REMOVE_USER, 60, srg_remove_user, st);
	hook_add(h, HOOK_VCARD_SET, 60, srg_vcard_set, st);
	if (!st->dir_names)
		st->names_req =
		        storage_vcard_search(h->storage, h->name, NULL, 0, false, 0, names_loaded, st);
	st->accounts_req = storage_account_list(h->storage, h->name, accounts_loaded, st);
	load_start(st);
	*state_r = st;
	return 0;
}

static void srg_stop(struct host *h, void *state)
{
	struct srg_state *st = state;
	srg_adhoc_stop(h); /* ends the commands in flight (cancels their calls) */
	hook_remove(h, HOOK_ROSTER_VIEW, srg_view, st);
	hook_remove(h, HOOK_SESSION_OPENED, srg_session_opened, st);
	hook_remove(h, HOOK_SESSION_CLOSED, srg_session_closed, st);
	hook_remove(h, HOOK_REGISTER_USER, srg_register_user, st);
	hook_remove(h, HOOK_REMOVE_USER, srg_remove_user, st);
	hook_remove(h, HOOK_VCARD_SET, srg_vcard_set, st);
	if (st->names_req != NULL)
		storage_cancel(st->names_req);
	storage_cancel(st->load_handle);
	st->load_handle = NULL;
	storage_cancel(st->names_handle);
	st->names_handle = NULL;
#ifdef HAVE_BACKEND_LDAP
	if (st->ldap)
		ev_timer_stop(server.loop, &st->refresh);
#endif
	if (st->accounts_req != NULL)
		storage_cancel(st->accounts_req);
	while (st->admins.head != NULL) {
		struct srg_admin *a = (struct srg_admin *)st->admins.head;
		pending_cancel_call(&a->p); /* answered below, through its callback */
		admin_finish(a, SRG_ADMIN_TEMPFAIL, "the shared_roster module stopped", NULL, NULL, 0);
	}
	pending_stop(&st->ops);
	groups_clear(st);
	strlist_free(&st->accounts);
	strlist_free(&st->online);
	names_clear(st);
	if (st->ldap_store != NULL)
		host_set_store(h, STORAGE_AREA_SRG, NULL);
	storage_close(&st->ldap_store);
	free(st);
}

const struct module_def mod_shared_roster = {
	.name = "shared_roster",
	.description = "shared roster groups: members see each other without subscribing",
	.options = srg_options,
	.settings_size = sizeof(struct srg_settings),
	.default_enabled = false,
	.start = srg_start,
	.stop = srg_stop,
};
