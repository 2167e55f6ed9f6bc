/*
 * The srg area of the LDAP store (storage/ldap-store.h, opened by
 * mod_shared_roster with source: ldap): a host's shared roster groups read
 * from its auth.ldap directory, in one of two ways (ldap_groups_from):
 *
 * - entries (the default): the entries that match ldap_group_filter under
 *   ldap_group_base are the groups; their members are the values of
 *   ldap_member_attr (user names, or DNs of user entries).  A load is one
 *   subtree search for the groups; with ldap_nested_groups, one more for
 *   every group entry under ldap_nested_base that matches
 *   ldap_nested_filter, made only when a member DN is neither a user's
 *   (uid=ann,...) nor a group read already; then, with member DNs that do
 *   not name the user in their first RDN (CN=Ann Example,...), one subtree
 *   search for every user entry's ldap_user_uid_attr to map those DNs.  A
 *   member DN that is a group entry's contributes that group's members,
 *   recursively (nested groups), each group once per group expanded, at
 *   most ldap_nested_depth levels down.
 * - user_attribute: one subtree search of the user entries (auth.ldap base
 *   and filter) for ldap_user_uid_attr and ldap_user_group_attr; each
 *   distinct value of the latter is a group of the users that have it.
 *
 * So a load (storage_srg_get of every group; a get of one group and a list
 * are loads too) costs at most three searches, never one per member or
 * group.  They run on the worker group of this store's own LDAP client
 * (lib/ldap-client.c): the job's work starts the first and holds the job;
 * the last callback copies the groups into the job and releases it.
 * mod_shared_roster keeps the result in memory and loads again on its
 * refresh schedule.  storage_srg_names reads the users' names
 * (ldap_user_name_attr).  The changes are STORAGE_ERROR: the directory is
 * managed elsewhere.  Loop thread.
 *
 * Invariants:
 * - a load releases its job exactly once; any failure of any of its
 *   searches fails the whole load (the module keeps the groups it has: a
 *   partial read of the directory is never passed on); while the store
 *   closes no further search starts (the load fails, STORAGE_TEMPFAIL);
 * - members are users of the host: a value or a DN that does not give a
 *   user name that passes nodeprep is left out;
 * - every value read goes through ldap_value_text: one that is not UTF-8
 *   text of XML characters (a control character, U+FFFE, U+FFFF) is left
 *   out as if absent, with an info line naming the entry and attribute, so
 *   no roster or group label written from the directory is ill-formed;
 * - a group name is the first value of ldap_group_name_attr (a value of
 *   ldap_user_group_attr); an entry without one, or whose name another
 *   entry already has, is left out (values that differ only in ASCII case
 *   are one group, named by the smallest spelling);
 * - a cycle of nested groups or a nesting deeper than ldap_nested_depth
 *   never loops: what lies beyond is left out, and a warning naming the
 *   group is logged once while the condition lasts;
 * - the filters are the operator's (ldap_group_filter, ldap_nested_filter,
 *   auth.ldap.filter), passed as written with attribute presence tests
 *   around them: no value read from the directory or sent by a user is
 *   ever put into a filter here.
 */
#include "storage/ldap-store.h"
#include "storage/srg-store.h"
#include "lib/ldap-client.h"
#include "lib/jid.h"
#include "lib/log.h"

#include <ldap.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct srg_ldap {
	struct storage st; /* first */
	char *host;
	const struct srg_ldap_config *cfg; /* the module's settings: outlive the store */
	struct ldap_client *client;
	char *users_filter;    /* user_attribute: the search of the user entries */
	char *names_filter;    /* user_name_attr: the search of the users' names */
	bool names_failing;    /* the last read of the names failed (logged once) */
	bool failing;          /* the last load failed (logged once) */
	struct strlist warned; /* warnings of the last load (each logged once) */
};

/* A group entry read: one of the groups, or (nested groups) any group
 * entry a member DN may name. */
struct gnode {
	char *key;            /* dn_key of its DN */
	char *dn;             /* as read (log messages) */
	struct strlist users; /* member JIDs given directly */
	struct strlist dns;   /* member DNs still to map (dn_key) */
	size_t mark;          /* expansion: 1 + the index of the group expanded */
	unsigned mark_depth;  /* expansion: the level it was expanded at */
	bool on_path;         /* expansion: on the chain being followed */
};

/* A user entry: DN key -> user name. */
struct dn_user {
	char *key;
	char *user;
};

/* One load in flight. */
enum load_kind { LOAD_GET, LOAD_LIST, LOAD_NAMES };

struct load_op {
	struct srg_ldap *l;
	enum load_kind kind;
	struct storage_req *job; /* what it answers (held) */
	struct ldap_client_req *req;
	struct srg_group *groups;
	size_t ngroups;
	char **group_keys;   /* per group: the dn_key of its entry */
	struct gnode *nodes; /* sorted by key after each search */
	size_t nnodes;
	struct dn_user *users; /* sorted by key */
	size_t nusers;
	struct strlist warnings;         /* met during this load */
	struct cut {                     /* expansion: a group left out for its depth */
		struct gnode *node, *in; /* it, and the group that holds it */
	} * cuts;
	size_t ncuts;
};

static void op_free(struct load_op *op)
{
	for (size_t i = 0; i < op->ngroups; i++) {
		srg_group_clear(&op->groups[i]);
		free(op->group_keys[i]);
	}
	free(op->groups);
	free(op->group_keys);
	for (size_t i = 0; i < op->nnodes; i++) {
		free(op->nodes[i].key);
		free(op->nodes[i].dn);
		strlist_free(&op->nodes[i].users);
		strlist_free(&op->nodes[i].dns);
	}
	free(op->nodes);
	for (size_t i = 0; i < op->nusers; i++) {
		free(op->users[i].key);
		free(op->users[i].user);
	}
	free(op->users);
	strlist_free(&op->warnings);
	free(op->cuts);
	free(op);
}

static const struct ldap_attr *attr_of(const struct ldap_entry *e, const char *name)
{
	for (size_t i = 0; name != NULL && i < e->nattrs; i++)
		if (strcasecmp(e->attrs[i].name, name) == 0)
			return &e->attrs[i];
	return NULL;
}

/* The first value of attribute name of e when it is text (ldap_value_text)
 * of at most max bytes, else NULL. */
static const char *first_text(const struct ldap_entry *e, const char *name, size_t max)
{
	if (name == NULL || *name == '\0')
		return NULL;
	const struct ldap_attr *a = attr_of(e, name);
	if (a == NULL || a->count == 0 || !ldap_value_text(&a->values[0], e->dn, a->name) ||
	    a->values[0].len > max)
		return NULL;
	return (const char *)a->values[0].data;
}

/* Append name to the NULL-terminated attrs (n entries) unless empty or there. */
static void attrs_add(const char **attrs, size_t *n, const char *name)
{
	if (name == NULL || *name == '\0')
		return;
	for (size_t i = 0; i < *n; i++)
		if (strcasecmp(attrs[i], name) == 0)
			return;
	attrs[(*n)++] = name;
	attrs[*n] = NULL;
}

/* A group name as the module and parleyctl take it. */
static bool group_name_ok(const struct ldap_value *v, const char *dn, const char *attr)
{
	return ldap_value_text(v, dn, attr) && v->len <= 191 && strchr((const char *)v->data, ',') == NULL;
}

/* "user@host" for a user name from the directory, or NULL. */
static char *member_jid(const struct srg_ldap *l, const char *user)
{
	char *node = jid_nodeprep(user);
	if (node == NULL || *node == '\0') {
		free(node);
		return NULL;
	}
	char *jid = xasprintf("%s@%s", node, l->host);
	free(node);
	return jid;
}

static void sl_add(struct strlist *l, const char *s)
{
	l->items = xrealloc(l->items, (l->count + 1) * sizeof(char *));
	l->items[l->count++] = xstrdup(s);
}

/* Add s (taken) unless l has it. */
static void sl_take_unique(struct strlist *l, char *s)
{
	if (s == NULL)
		return;
	if (strlist_contains(l, s)) {
		free(s);
		return;
	}
	l->items = xrealloc(l->items, (l->count + 1) * sizeof(char *));
	l->items[l->count++] = s;
}

static int cmp_strp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
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
	if (ldap_dn_normalize(dn, LDAP_DN_FORMAT_LDAPV3, &norm, LDAP_DN_FORMAT_LDAPV3) != LDAP_SUCCESS ||
	    norm == NULL)
		return NULL;
	char *out = xstrdup(norm);
	ldap_memfree(norm);
	for (char *p = out; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return out;
}

char *ldap_srg_unique_member_dn(const char *value)
{
	size_t len = strlen(value);
	/* RFC 4517 NameAndOptionalUID: dn [ "#" "'" *("0" / "1") "'B" ] */
	if (len >= 4 && value[len - 1] == 'B' && value[len - 2] == '\'') {
		size_t i = len - 2;
		while (i > 0 && (value[i - 1] == '0' || value[i - 1] == '1'))
			i--;
		if (i >= 2 && value[i - 1] == '\'' && value[i - 2] == '#')
			return xstrndup(value, i - 2);
	}
	return xstrdup(value);
}

static int cmp_group(const void *a, const void *b)
{
	return strcmp(((const struct srg_group *)a)->name, ((const struct srg_group *)b)->name);
}

static int cmp_node(const void *a, const void *b)
{
	return strcmp(((const struct gnode *)a)->key, ((const struct gnode *)b)->key);
}

static int cmp_dn_user(const void *a, const void *b)
{
	return strcmp(((const struct dn_user *)a)->key, ((const struct dn_user *)b)->key);
}

static struct gnode *node_find(struct load_op *op, const char *key)
{
	struct gnode want = { .key = (char *)key };
	return op->nnodes > 0 ? bsearch(&want, op->nodes, op->nnodes, sizeof(*op->nodes), cmp_node) : NULL;
}

static const char *user_find(const struct load_op *op, const char *key)
{
	struct dn_user want = { .key = (char *)key };
	const struct dn_user *hit =
	        op->nusers > 0 ? bsearch(&want, op->users, op->nusers, sizeof(*op->users), cmp_dn_user)
	                       : NULL;
	return hit != NULL ? hit->user : NULL;
}

/* Log a failed load (once while loads fail).  Not for a load nobody waits
 * for any more (cancelled: the module stopped). */
static void load_failed(struct srg_ldap *l, const struct storage_req *job, enum storage_result res,
                        const char *error)
{
	if (job->cancelled)
		return;
	if (!l->failing)
		log_warning("shared_roster %s: cannot read the groups from the directory: %s; "
		            "the groups read last are kept until a read succeeds",
		            l->host, error != NULL ? error : storage_result_str(res));
	l->failing = true;
}

static char *pool_strdup_or_empty(struct pool *p, const char *s)
{
	return pool_strdup(p, s != NULL ? s : "");
}

static void strlist_to_pool(struct pool *p, struct strlist *to, const struct strlist *from)
{
	to->count = from->count;
	to->items = pool_alloc(p, (from->count > 0 ? from->count : 1) * sizeof(char *));
	for (size_t i = 0; i < from->count; i++)
		to->items[i] = pool_strdup(p, from->items[i]);
}

/* Copy g into the pool of a job's results. */
static void group_to_pool(struct pool *p, struct srg_group *to, const struct srg_group *g)
{
	to->name = pool_strdup(p, g->name);
	to->label = pool_strdup_or_empty(p, g->label);
	to->description = pool_strdup_or_empty(p, g->description);
	strlist_to_pool(p, &to->displayed, &g->displayed);
	strlist_to_pool(p, &to->members, &g->members);
}

/* The groups read answer the job: every one, one, or their names. */
static enum storage_result answer_job(struct load_op *op)
{
	struct storage_req *job = op->job;
	struct pool *p = job->pool;
	if (op->kind == LOAD_LIST) {
		struct srg_list_job *j = (struct srg_list_job *)job;
		struct strlist names = { 0 };
		names.items = xcalloc(op->ngroups + 1, sizeof(char *));
		for (size_t i = 0; i < op->ngroups; i++)
			names.items[names.count++] = op->groups[i].name;
		strlist_to_pool(p, &j->names, &names);
		free(names.items);
		return STORAGE_OK;
	}
	struct srg_get_job *j = (struct srg_get_job *)job;
	j->groups = pool_alloc(p, (op->ngroups > 0 ? op->ngroups : 1) * sizeof(*j->groups));
	for (size_t i = 0; i < op->ngroups; i++) {
		if (j->name != NULL && strcmp(j->name, op->groups[i].name) != 0)
			continue;
		group_to_pool(p, &j->groups[j->ngroups++], &op->groups[i]);
	}
	return j->name != NULL && j->ngroups == 0 ? STORAGE_NOT_FOUND : STORAGE_OK;
}

static void op_finish(struct load_op *op, enum storage_result res, const char *error)
{
	struct srg_ldap *l = op->l;
	struct storage_req *job = op->job;
	if (res != STORAGE_OK) {
		load_failed(l, job, res, error);
		op_free(op);
		storage_req_release(job, res);
		return;
	}
	if (l->failing)
		log_notice("shared_roster %s: the groups are read from the directory again", l->host);
	l->failing = false;
	/* each warning once while its condition lasts */
	for (size_t i = 0; i < op->warnings.count; i++)
		if (!strlist_contains(&l->warned, op->warnings.items[i]))
			log_warning("%s", op->warnings.items[i]);
	strlist_free(&l->warned);
	l->warned = op->warnings;
	op->warnings = (struct strlist){ 0 };
	qsort(op->groups, op->ngroups, sizeof(*op->groups), cmp_group); /* keys are unused now */
	for (size_t i = 0; i < op->ngroups; i++) {
		struct srg_group *g = &op->groups[i];
		if (g->members.count > 1)
			qsort(g->members.items, g->members.count, sizeof(char *), cmp_strp);
		if (l->cfg->displayed == SRG_LDAP_DISPLAY_ALL)
			for (size_t k = 0; k < op->ngroups; k++)
				sl_add(&g->displayed, op->groups[k].name);
	}
	res = answer_job(op);
	op_free(op);
	storage_req_release(job, res);
}

/* A search of a load after its first: NULL when the store closes (its
 * client is going away) or the queue is full. */
static struct ldap_client_req *next_search(struct load_op *op, const char *base, const char *filter,
                                           const char *const *attrs, ldap_client_cb *cb)
{
	if (op->l->st.closing)
		return NULL;
	return ldap_client_search(op->l->client, base, filter, attrs, cb, op);
}

static enum storage_result result_of(enum ldap_client_result r)
{
	return r == LDAPC_TEMPFAIL ? STORAGE_TEMPFAIL : STORAGE_ERROR;
}

static void search_failed_to_queue(struct load_op *op)
{
	op_finish(op, STORAGE_TEMPFAIL, "the LDAP request queue is full");
}

/* ---- groups from group entries ------------------------------------------------ */

static void warn(struct load_op *op, char *msg)
{
	sl_take_unique(&op->warnings, msg);
}

/* Add to g the members that node n's member DNs give, following nested
 * groups (depth: n's level below the group). */
static void expand(struct load_op *op, size_t gi, struct gnode *n, unsigned depth)
{
	const struct srg_ldap_config *cfg = op->l->cfg;
	struct srg_group *g = &op->groups[gi];
	for (size_t d = 0; d < n->dns.count; d++) {
		const char *user = user_find(op, n->dns.items[d]);
		if (user != NULL) {
			sl_take_unique(&g->members, member_jid(op->l, user));
			continue;
		}
		if (!cfg->nested)
			continue;
		struct gnode *m = node_find(op, n->dns.items[d]);
		if (m == NULL)
			continue;
		if (m->on_path) {
			warn(op, xasprintf("shared_roster %s: group %s: the nested groups form a cycle "
			                   "(%s is a member of %s); each group counts once",
			                   op->l->host, g->name, m->dn, n->dn));
			continue;
		}
		if (m->mark == gi + 1 && m->mark_depth <= depth + 1)
			continue; /* reached another way already, as high up */
		if (depth + 1 > cfg->nested_depth) {
			/* unless a shorter way reaches it (warned in entries_finish) */
			op->cuts = xrealloc(op->cuts, (op->ncuts + 1) * sizeof(*op->cuts));
			op->cuts[op->ncuts].node = m;
			op->cuts[op->ncuts].in = n;
			op->ncuts++;
			continue;
		}
		m->mark = gi + 1;
		m->mark_depth = depth + 1;
		m->on_path = true;
		for (size_t u = 0; u < m->users.count; u++)
			sl_take_unique(&g->members, xstrdup(m->users.items[u]));
		expand(op, gi, m, depth + 1);
		m->on_path = false;
	}
}

static void entries_finish(struct load_op *op)
{
	for (size_t gi = 0; gi < op->ngroups; gi++) {
		struct gnode *n = node_find(op, op->group_keys[gi]);
		if (n == NULL)
			continue;
		n->mark = gi + 1;
		n->mark_depth = 0;
		n->on_path = true;
		for (size_t u = 0; u < n->users.count; u++)
			sl_take_unique(&op->groups[gi].members, xstrdup(n->users.items[u]));
		op->ncuts = 0;
		expand(op, gi, n, 0);
		n->on_path = false;
		for (size_t c = 0; c < op->ncuts; c++) {
			if (op->cuts[c].node->mark == gi + 1)
				continue; /* a shorter way reached it */
			warn(op, xasprintf("shared_roster %s: group %s: groups nested more than %u "
			                   "level%s down are left out (ldap_nested_depth; %s in %s)",
			                   op->l->host, op->groups[gi].name, op->l->cfg->nested_depth,
			                   op->l->cfg->nested_depth == 1 ? "" : "s", op->cuts[c].node->dn,
			                   op->cuts[c].in->dn));
			break; /* one line per group */
		}
	}
	op_finish(op, STORAGE_OK, NULL);
}

/* The user entries: the map of DNs to user names. */
static void users_read(const struct ldap_reply *r, void *ctx)
{
	struct load_op *op = ctx;
	op->req = NULL;
	if (r->res != LDAPC_OK) {
		op_finish(op, result_of(r->res), r->error);
		return;
	}
	const char *uid_attr = op->l->cfg->user_uid_attr;
	op->users = xcalloc(r->nentries + 1, sizeof(*op->users));
	for (size_t i = 0; i < r->nentries; i++) {
		const struct ldap_attr *a = attr_of(&r->entries[i], uid_attr);
		if (a == NULL || a->count == 0 || !ldap_value_text(&a->values[0], r->entries[i].dn, a->name))
			continue;
		char *key = dn_key(r->entries[i].dn);
		if (key == NULL)
			continue;
		op->users[op->nusers].key = key;
		op->users[op->nusers].user = xstrdup((const char *)a->values[0].data);
		op->nusers++;
	}
	qsort(op->users, op->nusers, sizeof(*op->users), cmp_dn_user);
	entries_finish(op);
}

/* The user search when a member DN needs it (one that names no group entry
 * read), else the expansion at once. */
static void users_next(struct load_op *op)
{
	const struct srg_ldap_config *cfg = op->l->cfg;
	bool need = false;
	for (size_t i = 0; i < op->nnodes && !need; i++)
		for (size_t d = 0; d < op->nodes[i].dns.count && !need; d++)
			need = !cfg->nested || node_find(op, op->nodes[i].dns.items[d]) == NULL;
	if (!need) {
		entries_finish(op);
		return;
	}
	const char *present[] = { cfg->user_uid_attr, NULL };
	char *filter = NULL, *err = NULL;
	(void)ldap_listing_filter(present, NULL, NULL, &filter, &err); /* no filter: no error */
	const char *attrs[] = { cfg->user_uid_attr, NULL };
	op->req = next_search(op, NULL, filter, attrs, users_read);
	free(filter);
	if (op->req == NULL)
		search_failed_to_queue(op);
}

static bool is_member_attr(const struct srg_ldap_config *cfg, const char *name)
{
	return strcasecmp(name, cfg->member_attr) == 0 ||
	       (cfg->nested && (strcasecmp(name, "member") == 0 || strcasecmp(name, "uniqueMember") == 0));
}

/* A node for entry e (its members sorted out), or NULL for an entry whose
 * DN libldap cannot read. */
static struct gnode *node_add(struct load_op *op, const struct ldap_entry *e)
{
	const struct srg_ldap_config *cfg = op->l->cfg;
	char *key = dn_key(e->dn);
	if (key == NULL)
		return NULL;
	struct gnode *n = &op->nodes[op->nnodes++];
	*n = (struct gnode){ .key = key, .dn = xstrdup(e->dn) };
	for (size_t a = 0; a < e->nattrs; a++) {
		if (!is_member_attr(cfg, e->attrs[a].name))
			continue;
		bool unique = strcasecmp(e->attrs[a].name, "uniqueMember") == 0;
		for (size_t v = 0; v < e->attrs[a].count; v++) {
			if (!ldap_value_text(&e->attrs[a].values[v], e->dn, e->attrs[a].name))
				continue;
			const char *val = (const char *)e->attrs[a].values[v].data;
			if (cfg->member_mapping == SRG_LDAP_MAP_VALUE) {
				sl_take_unique(&n->users, member_jid(op->l, val));
				continue;
			}
			char *dn = unique ? ldap_srg_unique_member_dn(val) : xstrdup(val);
			char *user = dn_rdn_user(dn, cfg->user_uid_attr);
			if (user != NULL) {
				sl_take_unique(&n->users, member_jid(op->l, user));
				free(user);
			} else {
				sl_take_unique(&n->dns, dn_key(dn));
			}
			free(dn);
		}
	}
	return n;
}

/* Every group entry under ldap_nested_base: the nested groups. */
static void nested_read(const struct ldap_reply *r, void *ctx)
{
	struct load_op *op = ctx;
	op->req = NULL;
	if (r->res != LDAPC_OK) {
		op_finish(op, result_of(r->res), r->error);
		return;
	}
	size_t known = op->nnodes; /* sorted */
	op->nodes = xrealloc(op->nodes, (op->nnodes + r->nentries + 1) * sizeof(*op->nodes));
	for (size_t i = 0; i < r->nentries; i++) {
		char *key = dn_key(r->entries[i].dn);
		struct gnode want = { .key = key };
		bool have = key == NULL || (known > 0 && bsearch(&want, op->nodes, known, sizeof(*op->nodes),
		                                                 cmp_node) != NULL);
		free(key);
		if (!have)
			node_add(op, &r->entries[i]);
	}
	qsort(op->nodes, op->nnodes, sizeof(*op->nodes), cmp_node);
	users_next(op);
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
	op->group_keys = xcalloc(r->nentries + 1, sizeof(*op->group_keys));
	op->nodes = xcalloc(r->nentries + 1, sizeof(*op->nodes));
	for (size_t i = 0; i < r->nentries; i++) {
		const struct ldap_entry *e = &r->entries[i];
		const struct ldap_attr *na = attr_of(e, cfg->name_attr);
		if (na == NULL || na->count == 0 || !group_name_ok(&na->values[0], e->dn, na->name))
			continue;
		const char *name = (const char *)na->values[0].data;
		bool dup = false;
		for (size_t k = 0; k < op->ngroups && !dup; k++)
			dup = strcmp(op->groups[k].name, name) == 0;
		if (dup) {
			log_warning("shared_roster %s: two directory groups are named %s; %s is left out",
			            l->host, name, e->dn);
			continue;
		}
		struct gnode *n = node_add(op, e);
		if (n == NULL)
			continue;
		struct srg_group *g = &op->groups[op->ngroups];
		op->group_keys[op->ngroups] = xstrdup(n->key);
		op->ngroups++;
		g->name = xstrdup(name);
		const char *label = first_text(e, cfg->display_attr, 255);
		g->label = xstrdup(label != NULL ? label : "");
		const char *desc = first_text(e, cfg->desc_attr, 1024);
		g->description = xstrdup(desc != NULL ? desc : "");
	}
	qsort(op->nodes, op->nnodes, sizeof(*op->nodes), cmp_node);
	/* two entries with one DN cannot be: keys are unique */
	bool need_nested = false;
	for (size_t i = 0; cfg->nested && i < op->nnodes && !need_nested; i++)
		for (size_t d = 0; d < op->nodes[i].dns.count && !need_nested; d++)
			need_nested = node_find(op, op->nodes[i].dns.items[d]) == NULL;
	if (!need_nested) {
		users_next(op);
		return;
	}
	const char *f = cfg->nested_filter;
	char *filter = f[0] == '(' ? xstrdup(f) : xasprintf("(%s)", f);
	const char *attrs[4] = { NULL };
	size_t n = 0;
	attrs_add(attrs, &n, cfg->member_attr);
	attrs_add(attrs, &n, "member");
	attrs_add(attrs, &n, "uniqueMember");
	op->req = next_search(op, cfg->nested_base != NULL ? cfg->nested_base : cfg->group_base, filter,
	                      attrs, nested_read);
	free(filter);
	if (op->req == NULL)
		search_failed_to_queue(op);
}

/* ---- groups from a user attribute --------------------------------------------- */

struct value_user {
	const char *value; /* borrowed from the reply */
	char *jid;
};

static int cmp_value_user(const void *a, const void *b)
{
	const struct value_user *x = a, *y = b;
	int c = strcasecmp(x->value, y->value);
	return c != 0 ? c : strcmp(x->value, y->value);
}

static void attr_users_read(const struct ldap_reply *r, void *ctx)
{
	struct load_op *op = ctx;
	const struct srg_ldap_config *cfg = op->l->cfg;
	op->req = NULL;
	if (r->res != LDAPC_OK) {
		op_finish(op, result_of(r->res), r->error);
		return;
	}
	struct value_user *vu = NULL;
	size_t n = 0, cap = 0;
	for (size_t i = 0; i < r->nentries; i++) {
		const struct ldap_entry *e = &r->entries[i];
		const char *user = first_text(e, cfg->user_uid_attr, 1023);
		const struct ldap_attr *ga = attr_of(e, cfg->user_group_attr);
		if (user == NULL || ga == NULL)
			continue;
		char *jid = member_jid(op->l, user);
		if (jid == NULL)
			continue;
		for (size_t v = 0; v < ga->count; v++) {
			if (!group_name_ok(&ga->values[v], e->dn, ga->name))
				continue;
			if (n == cap) {
				cap = cap != 0 ? cap * 2 : 64;
				vu = xrealloc(vu, cap * sizeof(*vu));
			}
			vu[n].value = (const char *)ga->values[v].data;
			vu[n].jid = xstrdup(jid);
			n++;
		}
		free(jid);
	}
	if (n > 1)
		qsort(vu, n, sizeof(*vu), cmp_value_user);
	op->groups = xcalloc(n + 1, sizeof(*op->groups));
	op->group_keys = xcalloc(n + 1, sizeof(*op->group_keys));
	for (size_t i = 0; i < n; i++) {
		struct srg_group *g = op->ngroups > 0 ? &op->groups[op->ngroups - 1] : NULL;
		if (g == NULL || strcasecmp(g->name, vu[i].value) != 0) {
			g = &op->groups[op->ngroups++];
			g->name = xstrdup(vu[i].value);
			g->label = xstrdup("");
			g->description = xstrdup("");
		}
		sl_take_unique(&g->members, vu[i].jid);
	}
	free(vu);
	op_finish(op, STORAGE_OK, NULL);
}

/* ---- the store -------------------------------------------------------------------- */

/* ---- the users' names ------------------------------------------------------------- */

static void names_failed_log(struct srg_ldap *l, const struct storage_req *job, enum storage_result res,
                             const char *error)
{
	if (job->cancelled)
		return;
	if (!l->names_failing)
		log_warning("shared_roster %s: cannot read the users' names (%s) from the directory: "
		            "%s; the names read last are kept",
		            l->host, l->cfg->user_name_attr, error != NULL ? error : storage_result_str(res));
	l->names_failing = true;
}

static void names_failed(struct load_op *op, enum storage_result res, const char *error)
{
	struct storage_req *job = op->job;
	names_failed_log(op->l, job, res, error);
	op_free(op);
	storage_req_release(job, res);
}

struct owned_name {
	char *jid;
	const char *name; /* borrowed from the reply */
};

static int cmp_owned_name(const void *a, const void *b)
{
	return strcmp(((const struct owned_name *)a)->jid, ((const struct owned_name *)b)->jid);
}

static void names_read(const struct ldap_reply *r, void *ctx)
{
	struct load_op *op = ctx;
	struct srg_names_job *j = (struct srg_names_job *)op->job;
	const struct srg_ldap_config *cfg = op->l->cfg;
	op->req = NULL;
	if (r->res != LDAPC_OK) {
		names_failed(op, result_of(r->res), r->error);
		return;
	}
	struct owned_name *on = xcalloc(r->nentries + 1, sizeof(*on));
	size_t n = 0;
	for (size_t i = 0; i < r->nentries; i++) {
		const char *user = first_text(&r->entries[i], cfg->user_uid_attr, 1023);
		const char *name = first_text(&r->entries[i], cfg->user_name_attr, 1023);
		char *jid = user != NULL && name != NULL ? member_jid(op->l, user) : NULL;
		if (jid == NULL)
			continue;
		on[n].jid = jid;
		on[n].name = name;
		n++;
	}
	if (n > 1)
		qsort(on, n, sizeof(*on), cmp_owned_name);
	/* one name per user: the first entry of a name seen twice */
	struct pool *p = j->base.pool;
	j->names = pool_alloc(p, (n + 1) * sizeof(*j->names));
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (k > 0 && strcmp(j->names[k - 1].jid, on[i].jid) == 0)
			continue;
		j->names[k].jid = pool_strdup(p, on[i].jid);
		j->names[k].name = pool_strdup(p, on[i].name);
		k++;
	}
	j->nnames = k;
	if (op->l->names_failing)
		log_notice("shared_roster %s: the users' names are read from the directory again",
		           op->l->host);
	op->l->names_failing = false;
	for (size_t i = 0; i < n; i++)
		free(on[i].jid);
	free(on);
	struct storage_req *job = op->job;
	op_free(op);
	storage_req_release(job, STORAGE_OK);
}

static struct load_op *op_new(struct srg_ldap *l, enum load_kind kind, struct storage_req *job)
{
	struct load_op *op = xcalloc(1, sizeof(*op));
	op->l = l;
	op->kind = kind;
	op->job = job;
	return op;
}

static enum storage_result ldap_srg_names(void *conn, struct srg_names_job *j)
{
	struct srg_ldap *l = conn;
	if (l->names_filter == NULL) {
		names_failed_log(l, &j->base, STORAGE_ERROR, "no filter for ldap_user_name_attr");
		return STORAGE_ERROR;
	}
	if (l->st.closing)
		return STORAGE_TEMPFAIL;
	struct load_op *op = op_new(l, LOAD_NAMES, &j->base);
	const char *attrs[] = { l->cfg->user_uid_attr, l->cfg->user_name_attr, NULL };
	op->req = ldap_client_search(l->client, NULL, l->names_filter, attrs, names_read, op);
	if (op->req == NULL) {
		names_failed_log(l, &j->base, STORAGE_TEMPFAIL, "the LDAP request queue is full");
		op_free(op);
		return STORAGE_TEMPFAIL;
	}
	storage_req_hold(&j->base);
	return STORAGE_OK;
}

/* The filter that selects the groups, with its outer parentheses. */
static char *group_filter(const struct srg_ldap_config *cfg)
{
	const char *f = cfg->group_filter;
	return f[0] == '(' ? xstrdup(f) : xasprintf("(%s)", f);
}

int ldap_store_srg_search(struct storage *st, char **base_r, char **filter_r)
{
	const struct srg_ldap *l = (const struct srg_ldap *)st;
	if (l->cfg->groups_from == SRG_LDAP_FROM_USER_ATTR) {
		*base_r = xstrdup(ldap_client_base(l->client));
		*filter_r = xstrdup(l->users_filter);
		return 0;
	}
	*base_r = xstrdup(l->cfg->group_base != NULL ? l->cfg->group_base : ldap_client_base(l->client));
	*filter_r = group_filter(l->cfg);
	return 0;
}

/* Start a load answering job (held when it returns STORAGE_OK). */
static enum storage_result load_start(struct srg_ldap *l, enum load_kind kind, struct storage_req *job)
{
	if (l->st.closing)
		return STORAGE_TEMPFAIL;
	struct load_op *op = op_new(l, kind, job);
	const struct srg_ldap_config *cfg = l->cfg;
	if (cfg->groups_from == SRG_LDAP_FROM_USER_ATTR) {
		const char *attrs[] = { cfg->user_uid_attr, cfg->user_group_attr, NULL };
		op->req = ldap_client_search(l->client, NULL, l->users_filter, attrs, attr_users_read, op);
	} else {
		char *filter = group_filter(cfg);
		const char *attrs[7] = { NULL };
		size_t n = 0;
		attrs_add(attrs, &n, cfg->name_attr);
		attrs_add(attrs, &n, cfg->member_attr);
		attrs_add(attrs, &n, cfg->desc_attr);
		attrs_add(attrs, &n, cfg->display_attr);
		if (cfg->nested) {
			attrs_add(attrs, &n, "member");
			attrs_add(attrs, &n, "uniqueMember");
		}
		op->req = ldap_client_search(l->client, cfg->group_base, filter, attrs, groups_read, op);
		free(filter);
	}
	if (op->req == NULL) {
		load_failed(l, job, STORAGE_TEMPFAIL, "the LDAP request queue is full");
		op_free(op);
		return STORAGE_TEMPFAIL;
	}
	storage_req_hold(job);
	return STORAGE_OK;
}

static enum storage_result ldap_srg_list(void *conn, struct srg_list_job *j)
{
	return load_start(conn, LOAD_LIST, &j->base);
}

static enum storage_result ldap_srg_get(void *conn, struct srg_get_job *j)
{
	return load_start(conn, LOAD_GET, &j->base);
}

/* The changes: the directory is managed elsewhere. */
static enum storage_result read_only(const struct storage_req *job)
{
	log_error("shared_roster %s: %s: the groups come from the directory and are read-only "
	          "here",
	          job->host, job->op->name);
	return STORAGE_ERROR;
}

static enum storage_result ldap_srg_create(void *conn, struct srg_create_job *j)
{
	(void)conn;
	return read_only(&j->base);
}

static enum storage_result ldap_srg_delete(void *conn, struct srg_delete_job *j)
{
	(void)conn;
	return read_only(&j->base);
}

static enum storage_result ldap_srg_member_add(void *conn, struct srg_member_add_job *j)
{
	(void)conn;
	return read_only(&j->base);
}

static enum storage_result ldap_srg_member_remove(void *conn, struct srg_member_remove_job *j)
{
	(void)conn;
	return read_only(&j->base);
}

static enum storage_result ldap_srg_user_groups(void *conn, struct srg_user_groups_job *j)
{
	(void)conn;
	log_error("shared_roster %s: the groups of one user are not read from the directory "
	          "alone (load every group)",
	          j->base.host);
	return STORAGE_ERROR;
}

static const struct srg_store_vfuncs ldap_srg_vfuncs = {
	.list = ldap_srg_list,
	.get = ldap_srg_get,
	.create = ldap_srg_create,
	.delete = ldap_srg_delete,
	.member_add = ldap_srg_member_add,
	.member_remove = ldap_srg_member_remove,
	.user_groups = ldap_srg_user_groups,
	.names = ldap_srg_names,
};

static void srg_ldap_free(struct srg_ldap *l)
{
	free(l->users_filter);
	free(l->names_filter);
	strlist_free(&l->warned);
	free(l->host);
	free(l);
}

static void srg_close(struct storage *st)
{
	struct srg_ldap *l = (struct srg_ldap *)st;
	/* Answers what is under way (no further search starts: closing). */
	ldap_client_free(&l->client);
	storage_base_deinit(st);
	srg_ldap_free(l);
}

static const struct storage_vfuncs storage_ldap_srg_vfuncs = {
	.name = "ldap",
	.close = srg_close,
};

int ldap_store_srg_open(struct ev_loop *loop, const char *name, const char *host,
                        const struct ldap_config *ldap, const struct srg_ldap_config *cfg,
                        struct storage **st_r, char **error_r)
{
	char *users_filter = NULL;
	if (cfg->groups_from == SRG_LDAP_FROM_USER_ATTR) {
		if (cfg->user_group_attr == NULL || *cfg->user_group_attr == '\0') {
			*error_r = xstrdup("ldap_groups_from user_attribute needs ldap_user_group_attr "
			                   "(the user attribute whose values are the groups, e.g. "
			                   "departmentNumber)");
			return -1;
		}
		const char *present[] = { cfg->user_uid_attr, cfg->user_group_attr, NULL };
		if (ldap_listing_filter(present, ldap->filter, NULL, &users_filter, error_r) < 0)
			return -1;
	} else if (cfg->nested && cfg->member_mapping != SRG_LDAP_MAP_DN) {
		*error_r = xstrdup("ldap_nested_groups needs ldap_member_mapping dn (nested groups "
		                   "are named by their DNs)");
		return -1;
	}
	char *names_filter = NULL;
	if (cfg->user_name_attr != NULL && *cfg->user_name_attr != '\0') {
		/* the users auth.ldap.filter admits; all users with a name when it
		 * uses %u (a name is shown only for a member of a group) */
		const char *present[] = { cfg->user_uid_attr, cfg->user_name_attr, NULL };
		const char *auth_filter = ldap->filter;
		(void)ldap_listing_filter(present, ldap_filter_uses_user(auth_filter) ? NULL : auth_filter,
		                          NULL, &names_filter, error_r);
	}
	struct srg_ldap *l = xcalloc(1, sizeof(*l));
	l->host = xstrdup(host);
	l->cfg = cfg;
	l->users_filter = users_filter;
	l->names_filter = names_filter;
	if (ldap_client_new(loop, name, ldap, &l->client, error_r) < 0) {
		srg_ldap_free(l);
		return -1;
	}
	char *description = xasprintf("ldap:%s", name);
	storage_base_init(&l->st, &storage_ldap_srg_vfuncs, loop, description);
	free(description);
	l->st.srg = &ldap_srg_vfuncs;
	*st_r = &l->st;
	return 0;
}
