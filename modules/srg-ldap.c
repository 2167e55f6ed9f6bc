/*
 * The LDAP group source of mod_shared_roster (source: ldap): a host's
 * shared roster groups are the entries of its auth.ldap directory that match
 * ldap_group_filter under ldap_group_base.  A load is one subtree search for
 * the groups, plus, with member DNs that do not name the user directly in
 * their first RDN (uid=ann,...), one subtree search for every user entry's
 * ldap_user_uid_attr to map those DNs (never a search per member).  The
 * searches run on the worker group of this source's own LDAP client
 * (auth/ldap-client.c); mod_shared_roster keeps the result in memory and
 * calls load again on its refresh schedule.  Loop thread.
 *
 * Invariants:
 * - a load answers through its callback later, never inside the call, and
 *   exactly once unless cancelled; any failure of either search fails the
 *   whole load (the module keeps the groups it has: a partial read of the
 *   directory is never passed on);
 * - members are users of the host: a value or a DN that does not give a
 *   user name that passes nodeprep is left out;
 * - a group name is the first value of ldap_group_name_attr; an entry
 *   without one, or whose name another entry already has, is left out;
 * - the filter is the operator's, passed as written: no user-supplied value
 *   is put into a filter here.
 */
#include "shared_roster.h"
#include "auth/ldap-client.h"
#include "server/host.h"
#include "server/jid.h"
#include "server/log.h"
#include "server/server.h"

#include <ev.h>
#include <ldap.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct srg_ldap {
	struct host *host;
	const struct srg_ldap_config *cfg;
	struct ldap_client *client;
	bool failing;                 /* the last load failed (logged once) */
	struct srg_ldap *next;
};

static struct srg_ldap *instances;

static struct srg_ldap *instance_of(const struct host *h)
{
	for (struct srg_ldap *l = instances; l != NULL; l = l->next)
		if (l->host == h)
			return l;
	return NULL;
}

/* One load in flight. */
struct load_op {
	struct srg_ldap *l;
	srg_source_load_cb *cb;
	void *ctx;
	struct ldap_client_req *req;
	ev_timer later;               /* answers a failure to queue, from the loop */
	enum storage_result failed;
	struct srg_group *groups;
	size_t ngroups;
	struct strlist *dns;          /* per group: member DNs still to map */
};

static void op_free(struct load_op *op)
{
	ev_timer_stop(server.loop, &op->later);
	for (size_t i = 0; i < op->ngroups; i++) {
		srg_group_clear(&op->groups[i]);
		strlist_free(&op->dns[i]);
	}
	free(op->groups);
	free(op->dns);
	free(op);
}

static const struct ldap_attr *attr_of(const struct ldap_entry *e, const char *name)
{
	for (size_t i = 0; name != NULL && i < e->nattrs; i++)
		if (strcasecmp(e->attrs[i].name, name) == 0)
			return &e->attrs[i];
	return NULL;
}

static bool value_text(const struct ldap_value *v)
{
	return v->len > 0 && strlen((const char *)v->data) == v->len &&
	       utf8_valid((const char *)v->data, v->len);
}

/* "user@host" for a user name from the directory, or NULL. */
static char *member_jid(const struct srg_ldap *l, const char *user)
{
	char *node = jid_nodeprep(user);
	if (node == NULL || *node == '\0') {
		free(node);
		return NULL;
	}
	char *jid = xasprintf("%s@%s", node, l->host->name);
	free(node);
	return jid;
}

static void sl_add(struct strlist *l, const char *s)
{
	l->items = xrealloc(l->items, (l->count + 1) * sizeof(char *));
	l->items[l->count++] = xstrdup(s);
}

static int cmp_strp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void add_member(struct srg_group *g, char *jid)
{
	if (jid == NULL)
		return;
	if (!strlist_contains(&g->members, jid)) {
		g->members.items = xrealloc(g->members.items, (g->members.count + 1) * sizeof(char *));
		g->members.items[g->members.count++] = jid;
	} else {
		free(jid);
	}
}

/* The user name in the first RDN of dn when that RDN is a single
 * uid_attr=value (malloc'd), else NULL. */
static char *dn_rdn_user(const char *dn, const char *uid_attr)
{
	LDAPDN ldn = NULL;
	if (ldap_str2dn(dn, &ldn, LDAP_DN_FORMAT_LDAPV3) != LDAP_SUCCESS || ldn == NULL)
		return NULL;
	char *out = NULL;
	LDAPRDN rdn = ldn[0];
	if (rdn != NULL && rdn[0] != NULL && rdn[1] == NULL) {
		LDAPAVA *ava = rdn[0];
		if (ava->la_attr.bv_len == strlen(uid_attr) &&
		    strncasecmp(ava->la_attr.bv_val, uid_attr, ava->la_attr.bv_len) == 0 &&
		    (ava->la_flags & LDAP_AVA_BINARY) == 0)
			out = xstrndup(ava->la_value.bv_val, ava->la_value.bv_len);
	}
	ldap_dnfree(ldn);
	return out;
}

/* dn in one spelling for comparisons: normalised by libldap, lower case
 * (the attribute types and the usual case-insensitive values). */
static char *dn_key(const char *dn)
{
	char *norm = NULL;
	if (ldap_dn_normalize(dn, LDAP_DN_FORMAT_LDAPV3, &norm, LDAP_DN_FORMAT_LDAPV3) !=
	    LDAP_SUCCESS || norm == NULL)
		return NULL;
	char *out = xstrdup(norm);
	ldap_memfree(norm);
	for (char *p = out; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return out;
}

static int cmp_group(const void *a, const void *b)
{
	return strcmp(((const struct srg_group *)a)->name, ((const struct srg_group *)b)->name);
}

static void op_finish(struct load_op *op, enum storage_result res, const char *error)
{
	struct srg_ldap *l = op->l;
	if (res != STORAGE_OK) {
		if (!l->failing)
			log_warning("shared_roster %s: cannot read the groups from the directory: %s; "
			            "the groups read last are kept until a read succeeds", l->host->name,
			            error != NULL ? error : storage_result_str(res));
		l->failing = true;
		op->cb(res, NULL, 0, op->ctx);
		op_free(op);
		return;
	}
	if (l->failing)
		log_notice("shared_roster %s: the groups are read from the directory again",
		           l->host->name);
	l->failing = false;
	qsort(op->groups, op->ngroups, sizeof(*op->groups), cmp_group);   /* dns is unused now */
	for (size_t i = 0; i < op->ngroups; i++) {
		struct srg_group *g = &op->groups[i];
		if (g->members.count > 1)
			qsort(g->members.items, g->members.count, sizeof(char *), cmp_strp);
		if (l->cfg->displayed == SRG_LDAP_DISPLAY_ALL)
			for (size_t k = 0; k < op->ngroups; k++)
				sl_add(&g->displayed, op->groups[k].name);
	}
	op->cb(STORAGE_OK, op->groups, op->ngroups, op->ctx);
	op_free(op);
}

static enum storage_result result_of(enum ldap_client_result r)
{
	return r == LDAPC_TEMPFAIL ? STORAGE_TEMPFAIL : STORAGE_ERROR;
}

struct dn_user {
	char *key;                    /* dn_key of a user entry */
	const char *user;             /* its user name (borrowed from the reply) */
};

static int cmp_dn_user(const void *a, const void *b)
{
	return strcmp(((const struct dn_user *)a)->key, ((const struct dn_user *)b)->key);
}

/* The user entries: map the member DNs left. */
static void users_read(const struct ldap_reply *r, void *ctx)
{
	struct load_op *op = ctx;
	op->req = NULL;
	if (r->res != LDAPC_OK) {
		op_finish(op, result_of(r->res), r->error);
		return;
	}
	const char *uid_attr = op->l->cfg->user_uid_attr;
	/* DN key -> user name, sorted for lookups. */
	struct dn_user *map = xcalloc(r->nentries + 1, sizeof(*map));
	size_t n = 0;
	for (size_t i = 0; i < r->nentries; i++) {
		const struct ldap_attr *a = attr_of(&r->entries[i], uid_attr);
		if (a == NULL || a->count == 0 || !value_text(&a->values[0]))
			continue;
		char *key = dn_key(r->entries[i].dn);
		if (key == NULL)
			continue;
		map[n].key = key;
		map[n].user = (char *)a->values[0].data;
		n++;
	}
	qsort(map, n, sizeof(*map), cmp_dn_user);
	for (size_t gi = 0; gi < op->ngroups; gi++) {
		for (size_t d = 0; d < op->dns[gi].count; d++) {
			struct dn_user want = { dn_key(op->dns[gi].items[d]), NULL };
			const struct dn_user *hit = want.key != NULL && n > 0
			                            ? bsearch(&want, map, n, sizeof(*map), cmp_dn_user)
			                            : NULL;
			if (hit != NULL)
				add_member(&op->groups[gi], member_jid(op->l, hit->user));
			free(want.key);
		}
	}
	for (size_t k = 0; k < n; k++)
		free(map[k].key);
	free(map);
	op_finish(op, STORAGE_OK, NULL);
}

static void groups_read(const struct ldap_reply *r, void *ctx)
{
	struct load_op *op = ctx;
	struct srg_ldap *l = op->l;
	const struct srg_ldap_config *cfg = l->cfg;
	op->req = NULL;
	if (r->res != LDAPC_OK) {
		op_finish(op, result_of(r->res), r->error);
		return;
	}
	op->groups = xcalloc(r->nentries + 1, sizeof(*op->groups));
	op->dns = xcalloc(r->nentries + 1, sizeof(*op->dns));
	bool need_users = false;
	for (size_t i = 0; i < r->nentries; i++) {
		const struct ldap_entry *e = &r->entries[i];
		const struct ldap_attr *na = attr_of(e, cfg->name_attr);
		if (na == NULL || na->count == 0 || !value_text(&na->values[0]) ||
		    na->values[0].len > 191 || strchr((const char *)na->values[0].data, ',') != NULL)
			continue;
		const char *name = (const char *)na->values[0].data;
		bool dup = false;
		for (size_t k = 0; k < op->ngroups && !dup; k++)
			dup = strcmp(op->groups[k].name, name) == 0;
		if (dup) {
			log_warning("shared_roster %s: two directory groups are named %s; %s is left out",
			            l->host->name, name, e->dn);
			continue;
		}
		struct srg_group *g = &op->groups[op->ngroups];
		struct strlist *dns = &op->dns[op->ngroups];
		op->ngroups++;
		g->name = xstrdup(name);
		g->label = xstrdup("");
		const struct ldap_attr *da = attr_of(e, cfg->desc_attr);
		g->description = xstrdup(da != NULL && da->count > 0 && value_text(&da->values[0]) &&
		                         da->values[0].len <= 1024
		                         ? (const char *)da->values[0].data : "");
		const struct ldap_attr *ma = attr_of(e, cfg->member_attr);
		for (size_t v = 0; ma != NULL && v < ma->count; v++) {
			if (!value_text(&ma->values[v]))
				continue;
			const char *val = (const char *)ma->values[v].data;
			if (cfg->member_mapping == SRG_LDAP_MAP_VALUE) {
				add_member(g, member_jid(l, val));
				continue;
			}
			char *user = dn_rdn_user(val, cfg->user_uid_attr);
			if (user != NULL) {
				add_member(g, member_jid(l, user));
				free(user);
			} else {
				sl_add(dns, val);
				need_users = true;
			}
		}
	}
	if (!need_users) {
		op_finish(op, STORAGE_OK, NULL);
		return;
	}
	char *filter = xasprintf("(%s=*)", cfg->user_uid_attr);
	const char *attrs[] = { cfg->user_uid_attr, NULL };
	op->req = ldap_client_search(l->client, NULL, filter, attrs, users_read, op);
	free(filter);
	if (op->req == NULL)
		op_finish(op, STORAGE_TEMPFAIL, "the LDAP request queue is full");
}

static void later_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	struct load_op *op = w->data;
	op_finish(op, op->failed, "the LDAP request queue is full");
}

static void *ldap_src_load(struct host *h, srg_source_load_cb *cb, void *ctx)
{
	struct srg_ldap *l = instance_of(h);
	struct load_op *op = xcalloc(1, sizeof(*op));
	op->l = l;
	op->cb = cb;
	op->ctx = ctx;
	ev_timer_init(&op->later, later_cb, 0, 0);
	op->later.data = op;
	const struct srg_ldap_config *cfg = l->cfg;
	const char *f = cfg->group_filter;
	char *filter = f[0] == '(' ? xstrdup(f) : xasprintf("(%s)", f);
	const char *attrs[] = { cfg->name_attr, cfg->member_attr,
	                        cfg->desc_attr != NULL && *cfg->desc_attr != '\0' ? cfg->desc_attr
	                                                                          : NULL,
	                        NULL };
	op->req = ldap_client_search(l->client, cfg->group_base, filter, attrs, groups_read, op);
	free(filter);
	if (op->req == NULL) {
		op->failed = STORAGE_TEMPFAIL;
		ev_timer_start(server.loop, &op->later);
	}
	return op;
}

static void ldap_src_cancel(void *handle)
{
	struct load_op *op = handle;
	if (op->req != NULL)
		ldap_client_cancel(op->req);
	op_free(op);
}

const struct srg_source_vfuncs srg_source_ldap = {
	.name = "ldap",
	.load = ldap_src_load,
	.cancel = ldap_src_cancel,
};

int srg_ldap_start(struct host *h, const struct srg_ldap_config *cfg, char **error_r)
{
	struct srg_ldap *l = xcalloc(1, sizeof(*l));
	l->host = h;
	l->cfg = cfg;
	char *name = xasprintf("shared_roster %s", h->name);
	int rc = ldap_client_new(server.loop, name, &h->cfg->auth.ldap, &l->client, error_r);
	free(name);
	if (rc < 0) {
		free(l);
		return -1;
	}
	l->next = instances;
	instances = l;
	return 0;
}

void srg_ldap_stop(struct host *h)
{
	for (struct srg_ldap **p = &instances; *p != NULL; p = &(*p)->next) {
		if ((*p)->host == h) {
			struct srg_ldap *l = *p;
			*p = l->next;
			ldap_client_free(&l->client);
			free(l);
			return;
		}
	}
}
