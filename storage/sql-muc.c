/*
 * The SQL implementation of multi-user chat room storage (struct
 * muc_store_vfuncs of storage/muc-store.h), over the statement helpers of
 * sql-store.h.  Tables muc_room, muc_affiliation and muc_registered; their
 * rows are keyed by the service's domain (a service belongs to one virtual
 * host, recorded in server_host).
 *
 * Worker thread: each operation runs on the store's worker that owns the
 * job's key (a room, or the service: see muc-store.h), with that worker's
 * connection (conn is its struct sql_thread); it reads only its job and
 * builds its results in the job's pool.  Every change that touches several
 * rows runs in one transaction; a temporary failure is STORAGE_TEMPFAIL,
 * never NOT_FOUND.  The SQL is the same in every dialect (a room is
 * replaced by delete and insert, not by an upsert), and results are sorted
 * here, byte-wise: the database's collation may differ.
 */
#include "storage/muc-store.h"
#include "storage/sql-store.h"
#include "lib/log.h"

static const char sql_muc_rooms[] = "SELECT name, config, subject, subject_nick, created_at FROM muc_room "
                                    "WHERE service = ?";
static const char sql_muc_affs[] =
        "SELECT room, jid, affiliation, reason FROM muc_affiliation WHERE service = ?";
static const char sql_muc_nicks[] = "SELECT jid, nick FROM muc_registered WHERE service = ?";
static const char sql_muc_room_insert[] =
        "INSERT INTO muc_room (server_host, service, name, config, subject, subject_nick, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)";
static const char sql_muc_aff_insert[] =
        "INSERT INTO muc_affiliation (server_host, service, room, jid, affiliation, reason) "
        "VALUES (?, ?, ?, ?, ?, ?)";
static const char sql_muc_affs_delete[] = "DELETE FROM muc_affiliation WHERE service = ? AND room = ?";
static const char sql_muc_room_delete[] = "DELETE FROM muc_room WHERE service = ? AND name = ?";
static const char sql_muc_nick_taken[] =
        "SELECT 1 FROM muc_registered WHERE service = ? AND nick = ? AND jid <> ?";
static const char sql_muc_nick_delete[] = "DELETE FROM muc_registered WHERE service = ? AND jid = ?";
static const char sql_muc_nick_insert[] =
        "INSERT INTO muc_registered (server_host, service, jid, nick) VALUES (?, ?, ?, ?)";

static int load_rooms(struct sql_thread *t, struct muc_load_job *r, const struct sql_param *p, size_t np)
{
	const struct sql_driver_vfuncs *d = t->ss->drv;
	enum sql_step st;
	size_t cap = 0;
	struct sql_stmt *s = sql_q_start(t, sql_muc_rooms, p, np, &st);
	if (s == NULL)
		return -1;
	while (st == SQL_STEP_ROW) {
		char *name = sql_col_str(t, r->base.pool, s, 0);
		if (name != NULL) {
			r->rooms = sql_pool_grow(r->base.pool, r->rooms, r->nrooms, &cap, sizeof(*r->rooms));
			struct muc_room_item *room = &r->rooms[r->nrooms++];
			memset(room, 0, sizeof(*room));
			room->name = name;
			room->config = sql_col_text(t, r->base.pool, s, 1);
			room->subject = sql_col_text(t, r->base.pool, s, 2);
			room->subject_nick = sql_col_text(t, r->base.pool, s, 3);
			room->created = (double)d->column_int64(s, 4);
		}
		st = d->step(s);
	}
	d->reset(s);
	if (st == SQL_STEP_ERROR)
		return -1;
	if (r->nrooms > 1)
		qsort(r->rooms, r->nrooms, sizeof(*r->rooms), muc_cmp_room);
	return 0;
}

/* The affiliation rows, each onto its room's list (rows of a room that is
 * not stored are ignored). */
static int load_affiliations(struct sql_thread *t, struct muc_load_job *r, const struct sql_param *p,
                             size_t np)
{
	const struct sql_driver_vfuncs *d = t->ss->drv;
	enum sql_step st;
	size_t *caps = r->nrooms > 0 ? pool_alloc(r->base.pool, r->nrooms * sizeof(size_t)) : NULL;
	for (size_t i = 0; i < r->nrooms; i++)
		caps[i] = 0;
	struct sql_stmt *s = sql_q_start(t, sql_muc_affs, p, np, &st);
	if (s == NULL)
		return -1;
	while (st == SQL_STEP_ROW) {
		const char *name = d->column_text(s, 0);
		struct muc_room_item key = { .name = name };
		struct muc_room_item *room =
		        name != NULL && r->nrooms > 0
		                ? bsearch(&key, r->rooms, r->nrooms, sizeof(*r->rooms), muc_cmp_room)
		                : NULL;
		char *jid = sql_col_str(t, r->base.pool, s, 1);
		if (room != NULL && jid != NULL) {
			size_t k = (size_t)(room - r->rooms);
			struct muc_affiliation_item *affs = (struct muc_affiliation_item *)room->affs;
			affs = sql_pool_grow(r->base.pool, affs, room->naffs, &caps[k], sizeof(*affs));
			affs[room->naffs].jid = jid;
			affs[room->naffs].affiliation = sql_col_text(t, r->base.pool, s, 2);
			affs[room->naffs].reason = sql_col_text(t, r->base.pool, s, 3);
			room->affs = affs;
			room->naffs++;
		}
		st = d->step(s);
	}
	d->reset(s);
	if (st == SQL_STEP_ERROR)
		return -1;
	for (size_t i = 0; i < r->nrooms; i++)
		if (r->rooms[i].naffs > 1)
			qsort((void *)r->rooms[i].affs, r->rooms[i].naffs, sizeof(*r->rooms[i].affs),
			      muc_cmp_affiliation);
	return 0;
}

static int load_nicks(struct sql_thread *t, struct muc_load_job *r, const struct sql_param *p, size_t np)
{
	const struct sql_driver_vfuncs *d = t->ss->drv;
	enum sql_step st;
	size_t cap = 0;
	struct sql_stmt *s = sql_q_start(t, sql_muc_nicks, p, np, &st);
	if (s == NULL)
		return -1;
	while (st == SQL_STEP_ROW) {
		char *jid = sql_col_str(t, r->base.pool, s, 0), *nick = sql_col_str(t, r->base.pool, s, 1);
		if (jid != NULL && nick != NULL) {
			r->nicks = sql_pool_grow(r->base.pool, r->nicks, r->nnicks, &cap, sizeof(*r->nicks));
			r->nicks[r->nnicks++] = (struct muc_nick_item){ jid, nick };
		}
		st = d->step(s);
	}
	d->reset(s);
	if (st == SQL_STEP_ERROR)
		return -1;
	if (r->nnicks > 1)
		qsort(r->nicks, r->nnicks, sizeof(*r->nicks), muc_cmp_nick);
	return 0;
}

static enum storage_result op_muc_load(void *conn, struct muc_load_job *r)
{
	struct sql_thread *t = conn;
	struct sql_param p[] = { PTEXT(r->service) };
	r->rooms = NULL;
	r->nrooms = 0;
	r->nicks = NULL;
	r->nnicks = 0;
	/* One read transaction: rooms, affiliations and nicks agree. */
	if (sql_q_begin(t, false) < 0)
		return sql_q_fail(t, &r->base);
	if (load_rooms(t, r, p, ARRAY_SIZE(p)) < 0 || load_affiliations(t, r, p, ARRAY_SIZE(p)) < 0 ||
	    load_nicks(t, r, p, ARRAY_SIZE(p)) < 0)
		return sql_q_abort(t, &r->base);
	if (sql_q_commit(t) < 0)
		return sql_q_abort(t, &r->base);
	return STORAGE_OK;
}

/* The room's row and its affiliations are replaced as a whole. */
static enum storage_result op_muc_room_store(void *conn, struct muc_room_store_job *r)
{
	struct sql_thread *t = conn;
	const struct muc_room_item *room = &r->room;
	struct sql_param pk[] = { PTEXT(r->service), PTEXT(room->name) };
	struct sql_param p[] = { PTEXT(r->base.host),         PTEXT(r->service),    PTEXT(room->name),
		                 PTEXT(room->config),         PTEXT(room->subject), PTEXT(room->subject_nick),
		                 PINT((int64_t)room->created) };
	if (sql_q_begin(t, true) < 0)
		return sql_q_fail(t, &r->base);
	if (sql_q_exec(t, sql_muc_affs_delete, pk, ARRAY_SIZE(pk), NULL) < 0 ||
	    sql_q_exec(t, sql_muc_room_delete, pk, ARRAY_SIZE(pk), NULL) < 0 ||
	    sql_q_exec(t, sql_muc_room_insert, p, ARRAY_SIZE(p), NULL) < 0)
		return sql_q_abort(t, &r->base);
	for (size_t i = 0; i < room->naffs; i++) {
		const struct muc_affiliation_item *a = &room->affs[i];
		struct sql_param pa[] = { PTEXT(r->base.host), PTEXT(r->service),     PTEXT(room->name),
			                  PTEXT(a->jid),       PTEXT(a->affiliation), PTEXT(a->reason) };
		if (sql_q_exec(t, sql_muc_aff_insert, pa, ARRAY_SIZE(pa), NULL) < 0)
			return sql_q_abort(t, &r->base);
	}
	if (sql_q_commit(t) < 0)
		return sql_q_abort(t, &r->base);
	return STORAGE_OK;
}

static enum storage_result op_muc_room_delete(void *conn, struct muc_room_delete_job *r)
{
	struct sql_thread *t = conn;
	struct sql_param p[] = { PTEXT(r->service), PTEXT(r->name) };
	static const char *const sql[] = { sql_muc_affs_delete, sql_muc_room_delete };
	enum storage_result res = sql_q_delete_open(t, &r->base, sql, ARRAY_SIZE(sql), p, ARRAY_SIZE(p));
	if (res == STORAGE_NOT_FOUND)
		return STORAGE_OK; /* not stored: nothing to remove (rolled back) */
	if (res != STORAGE_OK)
		return res;
	if (sql_q_commit(t) < 0)
		return sql_q_abort(t, &r->base);
	return STORAGE_OK;
}

/* jid's row is replaced; the nick is checked first, in the transaction,
 * so that "held by another jid" does not depend on how each driver reports
 * a unique constraint.  (A writer outside this store that takes the nick
 * meanwhile still hits the constraint: STORAGE_EXISTS too.) */
static enum storage_result op_muc_nick_set(void *conn, struct muc_nick_set_job *r)
{
	struct sql_thread *t = conn;
	struct sql_param pj[] = { PTEXT(r->service), PTEXT(r->jid) };
	if (sql_q_begin(t, true) < 0)
		return sql_q_fail(t, &r->base);
	if (r->nick != NULL) {
		struct sql_param pn[] = { PTEXT(r->service), PTEXT(r->nick), PTEXT(r->jid) };
		int64_t v = 0;
		int taken = sql_q_int(t, sql_muc_nick_taken, pn, ARRAY_SIZE(pn), &v);
		if (taken < 0)
			return sql_q_abort(t, &r->base);
		if (taken > 0) {
			t->ss->drv->rollback(t->conn);
			return STORAGE_EXISTS;
		}
	}
	if (sql_q_exec(t, sql_muc_nick_delete, pj, ARRAY_SIZE(pj), NULL) < 0)
		return sql_q_abort(t, &r->base);
	if (r->nick != NULL) {
		struct sql_param p[] = { PTEXT(r->base.host), PTEXT(r->service), PTEXT(r->jid),
			                 PTEXT(r->nick) };
		if (sql_q_exec(t, sql_muc_nick_insert, p, ARRAY_SIZE(p), NULL) < 0)
			return sql_q_abort(t, &r->base);
	}
	if (sql_q_commit(t) < 0)
		return sql_q_abort(t, &r->base);
	return STORAGE_OK;
}

const struct muc_store_vfuncs sql_muc_vfuncs = {
	.load = op_muc_load,
	.room_store = op_muc_room_store,
	.room_delete = op_muc_room_delete,
	.nick_set = op_muc_nick_set,
};
