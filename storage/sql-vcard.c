/*
 * The SQL implementation of vCards storage (struct vcard_store_vfuncs of
 * storage/vcard-store.h), over the statement helpers of sql-store.h.
 *
 * Worker thread: each operation runs on the store's worker that owns the
 * user's jobs, with that worker's connection (conn is its struct
 * sql_thread); it reads only its job and builds its results in the job's
 * pool.  Every change that touches several rows runs in one transaction; a
 * temporary failure is STORAGE_TEMPFAIL, never NOT_FOUND.  Setting a vCard
 * also writes its row of the directory index (vcard_search) in the same
 * transaction.
 */
#include "storage/vcard-store.h"
#include "storage/sql-store.h"
#include "lib/log.h"

#include "storage/vcard-index.h"

#define VCARD_INSERT "INSERT INTO vcards (server_host, username, vcard) VALUES (?, ?, ?)"
static const struct upsert_sql sql_vcard_upsert = {
	VCARD_INSERT " ON CONFLICT (server_host, username) DO UPDATE SET vcard = excluded.vcard",
	VCARD_INSERT " ON DUPLICATE KEY UPDATE vcard = VALUES(vcard)",
	VCARD_INSERT,
	"UPDATE vcards SET vcard = ? WHERE server_host = ? AND username = ?",
};
static const char sql_vcard_get[] = "SELECT vcard FROM vcards WHERE server_host = ? AND username = ?";
static enum storage_result op_vcard_get(void *conn, struct vcard_get_job *r)
{
	struct sql_thread *t = conn;
	struct sql_param p[] = { PTEXT(r->base.host), PTEXT(r->base.user) };
	int found = sql_q_text(t, r->base.pool, sql_vcard_get, p, ARRAY_SIZE(p), &r->out_text);
	if (found < 0)
		return sql_q_fail(t, &r->base);
	return found ? STORAGE_OK : STORAGE_NOT_FOUND;
}

/* The directory's index of a vCard: one row per user, the fields as
 * stored and folded (vcard-index.h). */
static const char sql_vsearch_delete[] = "DELETE FROM vcard_search WHERE server_host = ? AND username = ?";
static const char sql_vsearch_insert[] =
        "INSERT INTO vcard_search (server_host, username, fn, lfn, given, lgiven, family, lfamily, "
        "nickname, lnickname, email, lemail, locality, llocality, orgname, lorgname, listed) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

/* Replace user's index row from the vCard text (inside the caller's write
 * transaction).  A text that is not a vCard is indexed as empty. */
int sql_vcard_index_write(struct sql_thread *t, const char *host, const char *user, const char *vcard)
{
	struct vcard_index vi;
	if (vcard_index_extract(vcard, &vi) < 0) {
		for (size_t i = 1; i < VF_COUNT; i++)
			vi.fields[i] = xstrdup("");
	}
	static const enum vcard_field order[] = { VF_FN,    VF_FIRST,    VF_LAST, VF_NICK,
		                                  VF_EMAIL, VF_LOCALITY, VF_ORG };
	char *folded[ARRAY_SIZE(order)];
	struct sql_param p[17] = { PTEXT(host), PTEXT(user) };
	for (size_t i = 0; i < ARRAY_SIZE(order); i++) {
		folded[i] = vcard_fold(vi.fields[order[i]]);
		p[2 + 2 * i] = (struct sql_param)PTEXT(vi.fields[order[i]]);
		p[3 + 2 * i] = (struct sql_param)PTEXT(folded[i]);
	}
	p[16] = (struct sql_param)PINT(vi.listed ? 1 : 0);
	struct sql_param pk[] = { PTEXT(host), PTEXT(user) };
	int rc = sql_q_exec(t, sql_vsearch_delete, pk, ARRAY_SIZE(pk), NULL);
	if (rc == 0)
		rc = sql_q_exec(t, sql_vsearch_insert, p, ARRAY_SIZE(p), NULL);
	for (size_t i = 0; i < ARRAY_SIZE(order); i++)
		free(folded[i]);
	vcard_index_clear(&vi);
	return rc;
}

static enum storage_result op_vcard_set(void *conn, struct vcard_set_job *r)
{
	struct sql_thread *t = conn;
	struct sql_param p[] = { PTEXT(r->base.host), PTEXT(r->base.user), PTEXT(r->text) };
	if (sql_q_begin(t, true) < 0)
		return sql_q_fail(t, &r->base);
	if (sql_q_upsert(t, &sql_vcard_upsert, p, ARRAY_SIZE(p), 2) < 0 ||
	    sql_vcard_index_write(t, r->base.host, r->base.user, r->text) < 0 || sql_q_commit(t) < 0)
		return sql_q_abort(t, &r->base);
	return STORAGE_OK;
}

const struct vcard_store_vfuncs sql_vcard_vfuncs = {
	.get = op_vcard_get,
	.set = op_vcard_set,
};
