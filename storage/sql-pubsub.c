/*
 * The SQL implementation of publish-subscribe storage (struct
 * pubsub_store_vfuncs of storage/pubsub-store.h), over the statement
 * helpers of sql-store.h.  Tables pubsub_node, pubsub_affiliation,
 * pubsub_subscription and pubsub_item; their rows are keyed by the owner
 * (a service's domain or a user's bare JID, which belongs to one virtual
 * host, recorded in server_host) and the node's name.
 *
 * Worker thread: each operation runs on the store's worker that owns the
 * job's key (the owner: see pubsub-store.h), with that worker's connection
 * (conn is its struct sql_thread); it reads only its job and builds its
 * results in the job's pool.  Every operation runs in one transaction; a
 * temporary failure is STORAGE_TEMPFAIL, never NOT_FOUND.  The SQL is the
 * same in every dialect (a row is replaced by delete and insert, not by
 * an upsert), and results are sorted here, byte-wise: the database's
 * collation may differ.
 */
#include "storage/pubsub-store.h"
#include "storage/sql-store.h"

/* Every query of one owner starts with these two parameters. */
#define OWNER_WHERE "WHERE server_host = ? AND owner = ?"
#define NODE_WHERE OWNER_WHERE " AND node = ?"

static const char sql_ps_nodes[] = "SELECT node, config, created_at FROM pubsub_node " OWNER_WHERE;
static const char sql_ps_affs[] = "SELECT node, jid, affiliation FROM pubsub_affiliation " OWNER_WHERE;
static const char sql_ps_subs[] =
        "SELECT node, jid, subid, state, options FROM pubsub_subscription " OWNER_WHERE;
static const char sql_ps_items[] =
        "SELECT node, item_id, publisher, published_at, seq, payload FROM pubsub_item " OWNER_WHERE;
static const char sql_ps_node_insert[] =
        "INSERT INTO pubsub_node (server_host, owner, node, config, created_at) VALUES (?, ?, ?, ?, ?)";
static const char sql_ps_aff_insert[] =
        "INSERT INTO pubsub_affiliation (server_host, owner, node, pos, jid, affiliation) "
        "VALUES (?, ?, ?, ?, ?, ?)";
static const char sql_ps_sub_insert[] =
        "INSERT INTO pubsub_subscription (server_host, owner, node, subid, jid, state, options) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)";
static const char sql_ps_item_insert[] =
        "INSERT INTO pubsub_item (server_host, owner, node, item_id, publisher, published_at, seq, payload) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)";
static const char sql_ps_item_delete[] = "DELETE FROM pubsub_item " NODE_WHERE " AND item_id = ?";

/* A node's rows, children first (its own row last). */
static const char *const sql_ps_node_deletes[] = {
	"DELETE FROM pubsub_item " NODE_WHERE,
	"DELETE FROM pubsub_subscription " NODE_WHERE,
	"DELETE FROM pubsub_affiliation " NODE_WHERE,
	"DELETE FROM pubsub_node " NODE_WHERE,
};
/* An owner's rows, children first. */
static const char *const sql_ps_owner_deletes[] = {
	"DELETE FROM pubsub_item " OWNER_WHERE,
	"DELETE FROM pubsub_subscription " OWNER_WHERE,
	"DELETE FROM pubsub_affiliation " OWNER_WHERE,
	"DELETE FROM pubsub_node " OWNER_WHERE,
};

/* Run the n statements of sql with the same parameters, in order (inside
 * the caller's transaction).  0 or -1. */
static int exec_all(struct sql_thread *t, const char *const *sql, size_t nsql, const struct sql_param *p,
                    size_t n)
{
	for (size_t i = 0; i < nsql; i++)
		if (sql_q_exec(t, sql[i], p, n, NULL) < 0)
			return -1;
	return 0;
}

/* The node of the load's results named by column col, or NULL (a row of
 * a node that is not stored).  The nodes are sorted. */
static struct pubsub_node_item *row_node(struct sql_thread *t, struct pubsub_load_job *r, struct sql_stmt *s,
                                         unsigned col)
{
	const char *name = t->ss->drv->column_text(s, col);
	struct pubsub_node_item key = { .name = name };
	if (name == NULL || r->nnodes == 0)
		return NULL;
	return bsearch(&key, r->nodes, r->nnodes, sizeof(*r->nodes), pubsub_cmp_node);
}

static int load_nodes(struct sql_thread *t, struct pubsub_load_job *r, const struct sql_param *p, size_t np)
{
	const struct sql_driver_vfuncs *d = t->ss->drv;
	enum sql_step st;
	size_t cap = 0;
	struct sql_stmt *s = sql_q_start(t, sql_ps_nodes, p, np, &st);
	if (s == NULL)
		return -1;
	while (st == SQL_STEP_ROW) {
		char *name = sql_col_str(t, r->base.pool, s, 0);
		if (name != NULL) {
			r->nodes = sql_pool_grow(r->base.pool, r->nodes, r->nnodes, &cap, sizeof(*r->nodes));
			r->nodes[r->nnodes++] = (struct pubsub_node_item){
				.name = name,
				.config = sql_col_text(t, r->base.pool, s, 1),
				.created = (double)d->column_int64(s, 2),
			};
		}
		st = d->step(s);
	}
	d->reset(s);
	if (st == SQL_STEP_ERROR)
		return -1;
	if (r->nnodes > 1)
		qsort(r->nodes, r->nnodes, sizeof(*r->nodes), pubsub_cmp_node);
	return 0;
}

/* The affiliation rows, each onto its node's list. */
static int load_affiliations(struct sql_thread *t, struct pubsub_load_job *r, const struct sql_param *p,
                             size_t np)
{
	const struct sql_driver_vfuncs *d = t->ss->drv;
	enum sql_step st;
	size_t *caps = r->nnodes > 0 ? pool_alloc(r->base.pool, r->nnodes * sizeof(size_t)) : NULL;
	struct sql_stmt *s = sql_q_start(t, sql_ps_affs, p, np, &st);
	if (s == NULL)
		return -1;
	while (st == SQL_STEP_ROW) {
		struct pubsub_node_item *n = row_node(t, r, s, 0);
		char *jid = sql_col_str(t, r->base.pool, s, 1);
		if (n != NULL && jid != NULL) {
			size_t k = (size_t)(n - r->nodes);
			struct pubsub_affiliation_item *affs = (struct pubsub_affiliation_item *)n->affs;
			affs = sql_pool_grow(r->base.pool, affs, n->naffs, &caps[k], sizeof(*affs));
			affs[n->naffs++] =
			        (struct pubsub_affiliation_item){ jid, sql_col_text(t, r->base.pool, s, 2) };
			n->affs = affs;
		}
		st = d->step(s);
	}
	d->reset(s);
	return st == SQL_STEP_ERROR ? -1 : 0;
}

/* The subscription rows, each onto its node's list. */
static int load_subscriptions(struct sql_thread *t, struct pubsub_load_job *r, const struct sql_param *p,
                              size_t np)
{
	const struct sql_driver_vfuncs *d = t->ss->drv;
	enum sql_step st;
	size_t *caps = r->nnodes > 0 ? pool_alloc(r->base.pool, r->nnodes * sizeof(size_t)) : NULL;
	struct sql_stmt *s = sql_q_start(t, sql_ps_subs, p, np, &st);
	if (s == NULL)
		return -1;
	while (st == SQL_STEP_ROW) {
		struct pubsub_node_item *n = row_node(t, r, s, 0);
		char *jid = sql_col_str(t, r->base.pool, s, 1), *subid = sql_col_str(t, r->base.pool, s, 2);
		if (n != NULL && jid != NULL && subid != NULL) {
			size_t k = (size_t)(n - r->nodes);
			struct pubsub_subscription_item *subs = (struct pubsub_subscription_item *)n->subs;
			subs = sql_pool_grow(r->base.pool, subs, n->nsubs, &caps[k], sizeof(*subs));
			subs[n->nsubs++] =
			        (struct pubsub_subscription_item){ jid, subid,
				                                   sql_col_text(t, r->base.pool, s, 3),
				                                   sql_col_text(t, r->base.pool, s, 4) };
			n->subs = subs;
		}
		st = d->step(s);
	}
	d->reset(s);
	return st == SQL_STEP_ERROR ? -1 : 0;
}

/* The item rows of the nodes loaded. */
static int load_items(struct sql_thread *t, struct pubsub_load_job *r, const struct sql_param *p, size_t np)
{
	const struct sql_driver_vfuncs *d = t->ss->drv;
	enum sql_step st;
	size_t cap = 0;
	struct sql_stmt *s = sql_q_start(t, sql_ps_items, p, np, &st);
	if (s == NULL)
		return -1;
	while (st == SQL_STEP_ROW) {
		struct pubsub_node_item *n = row_node(t, r, s, 0);
		char *id = sql_col_str(t, r->base.pool, s, 1);
		if (n != NULL && id != NULL) {
			r->items = sql_pool_grow(r->base.pool, r->items, r->nitems, &cap, sizeof(*r->items));
			r->items[r->nitems++] = (struct pubsub_item){
				.node = n->name,
				.id = id,
				.publisher = sql_col_text(t, r->base.pool, s, 2),
				.published = (double)d->column_int64(s, 3),
				.seq = (uint64_t)d->column_int64(s, 4),
				.payload = sql_col_text(t, r->base.pool, s, 5),
			};
		}
		st = d->step(s);
	}
	d->reset(s);
	return st == SQL_STEP_ERROR ? -1 : 0;
}

static enum storage_result op_pubsub_load(void *conn, struct pubsub_load_job *r)
{
	struct sql_thread *t = conn;
	struct sql_param p[] = { PTEXT(r->base.host), PTEXT(r->owner) };
	r->nodes = NULL;
	r->nnodes = 0;
	r->items = NULL;
	r->nitems = 0;
	/* One read transaction: nodes, lists and items agree. */
	if (sql_q_begin(t, false) < 0)
		return sql_q_fail(t, &r->base);
	if (load_nodes(t, r, p, ARRAY_SIZE(p)) < 0 || load_affiliations(t, r, p, ARRAY_SIZE(p)) < 0 ||
	    load_subscriptions(t, r, p, ARRAY_SIZE(p)) < 0 || load_items(t, r, p, ARRAY_SIZE(p)) < 0)
		return sql_q_abort(t, &r->base);
	if (sql_q_commit(t) < 0)
		return sql_q_abort(t, &r->base);
	pubsub_load_sort(r);
	return STORAGE_OK;
}

/* The node's row and its two lists are replaced as a whole; its items
 * stay. */
static enum storage_result op_pubsub_node_store(void *conn, struct pubsub_node_store_job *r)
{
	struct sql_thread *t = conn;
	const struct pubsub_node_item *node = &r->node;
	const char *h = r->base.host, *o = r->owner, *name = node->name;
	struct sql_param pk[] = { PTEXT(h), PTEXT(o), PTEXT(name) };
	struct sql_param p[] = { PTEXT(h), PTEXT(o), PTEXT(name), PTEXT(node->config),
		                 PINT((int64_t)node->created) };
	if (sql_q_begin(t, true) < 0)
		return sql_q_fail(t, &r->base);
	/* The node's deletes but the first (its items). */
	const char *const *lists = sql_ps_node_deletes + 1;
	if (exec_all(t, lists, ARRAY_SIZE(sql_ps_node_deletes) - 1, pk, ARRAY_SIZE(pk)) < 0 ||
	    sql_q_exec(t, sql_ps_node_insert, p, ARRAY_SIZE(p), NULL) < 0)
		return sql_q_abort(t, &r->base);
	for (size_t i = 0; i < node->naffs; i++) {
		const struct pubsub_affiliation_item *a = &node->affs[i];
		struct sql_param pa[] = { PTEXT(h), PTEXT(o),      PTEXT(name),
			                  PINT(i),  PTEXT(a->jid), PTEXT(a->affiliation) };
		if (sql_q_exec(t, sql_ps_aff_insert, pa, ARRAY_SIZE(pa), NULL) < 0)
			return sql_q_abort(t, &r->base);
	}
	for (size_t i = 0; i < node->nsubs; i++) {
		const struct pubsub_subscription_item *s = &node->subs[i];
		struct sql_param ps[] = { PTEXT(h),      PTEXT(o),        PTEXT(name),      PTEXT(s->subid),
			                  PTEXT(s->jid), PTEXT(s->state), PTEXT(s->options) };
		if (sql_q_exec(t, sql_ps_sub_insert, ps, ARRAY_SIZE(ps), NULL) < 0)
			return sql_q_abort(t, &r->base);
	}
	if (sql_q_commit(t) < 0)
		return sql_q_abort(t, &r->base);
	return STORAGE_OK;
}

/* Run the n statements of sql with parameters p in one write
 * transaction. */
static enum storage_result exec_tx(struct sql_thread *t, const struct storage_req *req,
                                   const char *const *sql, size_t nsql, const struct sql_param *p, size_t n)
{
	if (sql_q_begin(t, true) < 0)
		return sql_q_fail(t, req);
	if (exec_all(t, sql, nsql, p, n) < 0 || sql_q_commit(t) < 0)
		return sql_q_abort(t, req);
	return STORAGE_OK;
}

static enum storage_result op_pubsub_node_delete(void *conn, struct pubsub_node_delete_job *r)
{
	struct sql_param p[] = { PTEXT(r->base.host), PTEXT(r->owner), PTEXT(r->node) };
	return exec_tx(conn, &r->base, sql_ps_node_deletes, ARRAY_SIZE(sql_ps_node_deletes), p,
	               ARRAY_SIZE(p));
}

/* Delete the n items of node named in ids (inside the caller's
 * transaction).  0 or -1. */
static int delete_items(struct sql_thread *t, const char *host, const char *owner, const char *node,
                        const char *const *ids, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct sql_param p[] = { PTEXT(host), PTEXT(owner), PTEXT(node), PTEXT(ids[i]) };
		if (sql_q_exec(t, sql_ps_item_delete, p, ARRAY_SIZE(p), NULL) < 0)
			return -1;
	}
	return 0;
}

static enum storage_result op_pubsub_item_store(void *conn, struct pubsub_item_store_job *r)
{
	struct sql_thread *t = conn;
	const struct pubsub_item *it = &r->item;
	struct sql_param p[] = { PTEXT(r->base.host),    PTEXT(r->owner),      PTEXT(it->node),
		                 PTEXT(it->id),          PTEXT(it->publisher), PINT((int64_t)it->published),
		                 PINT((int64_t)it->seq), PTEXT(it->payload) };
	if (sql_q_begin(t, true) < 0)
		return sql_q_fail(t, &r->base);
	if (delete_items(t, r->base.host, r->owner, it->node, &it->id, 1) < 0 ||
	    delete_items(t, r->base.host, r->owner, it->node, r->evict, r->nevict) < 0 ||
	    sql_q_exec(t, sql_ps_item_insert, p, ARRAY_SIZE(p), NULL) < 0)
		return sql_q_abort(t, &r->base);
	if (sql_q_commit(t) < 0)
		return sql_q_abort(t, &r->base);
	return STORAGE_OK;
}

static enum storage_result op_pubsub_item_delete(void *conn, struct pubsub_item_delete_job *r)
{
	struct sql_thread *t = conn;
	if (r->n == 0) {
		/* Purge: the node's first delete (its items). */
		struct sql_param p[] = { PTEXT(r->base.host), PTEXT(r->owner), PTEXT(r->node) };
		return exec_tx(t, &r->base, sql_ps_node_deletes, 1, p, ARRAY_SIZE(p));
	}
	if (sql_q_begin(t, true) < 0)
		return sql_q_fail(t, &r->base);
	if (delete_items(t, r->base.host, r->owner, r->node, r->ids, r->n) < 0 || sql_q_commit(t) < 0)
		return sql_q_abort(t, &r->base);
	return STORAGE_OK;
}

static enum storage_result op_pubsub_owner_delete(void *conn, struct pubsub_owner_delete_job *r)
{
	struct sql_param p[] = { PTEXT(r->base.host), PTEXT(r->owner) };
	return exec_tx(conn, &r->base, sql_ps_owner_deletes, ARRAY_SIZE(sql_ps_owner_deletes), p,
	               ARRAY_SIZE(p));
}

const struct pubsub_store_vfuncs sql_pubsub_vfuncs = {
	.load = op_pubsub_load,
	.node_store = op_pubsub_node_store,
	.node_delete = op_pubsub_node_delete,
	.item_store = op_pubsub_item_store,
	.item_delete = op_pubsub_item_delete,
	.owner_delete = op_pubsub_owner_delete,
};
