/*
 * Whole-database copies with sqlite3_backup (see sqlite-copy.h).  Runs on a
 * worker thread of the control commands, or in parleyctl; touches no
 * loop-owned object.  Each call opens its own connections and closes them.
 */
#include "storage/sqlite-copy.h"
#include "storage/sql.h"
#include "lib/util.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int check_version(sqlite3 *db, const char *path, char **error_r)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, "SELECT MAX(version) FROM schema_version", -1, &st, NULL) != SQLITE_OK) {
		*error_r = xasprintf("%s is not a Parley database (%s)", path, sqlite3_errmsg(db));
		return -1;
	}
	int rc = sqlite3_step(st);
	int64_t v = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW || v < 1) {
		*error_r = xasprintf("%s is not a Parley database (no schema version)", path);
		return -1;
	}
	if (v > SQL_SCHEMA_VERSION) {
		*error_r = xasprintf("%s has schema version %lld; this Parley reads up to %d", path,
		                     (long long)v, SQL_SCHEMA_VERSION);
		return -1;
	}
	return 0;
}

static int fsync_path(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int r = fsync(fd);
	close(fd);
	return r;
}

int sqlite_copy(const char *src, const char *dst, bool atomic, bool check_schema, int64_t *pages_r,
                char **error_r)
{
	sqlite3 *sdb = NULL, *ddb = NULL;
	char *tmp = NULL;
	int ret = -1;
	*pages_r = 0;
	if (sqlite3_open_v2(src, &sdb, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		*error_r = xasprintf("cannot open %s: %s", src,
		                     sdb != NULL ? sqlite3_errmsg(sdb) : "out of memory");
		goto out;
	}
	sqlite3_busy_timeout(sdb, 10000);
	if (check_schema && check_version(sdb, src, error_r) < 0)
		goto out;
	const char *target = dst;
	if (atomic) {
		tmp = xasprintf("%s.tmp-%ld", dst, (long)getpid());
		unlink(tmp);
		target = tmp;
	}
	if (sqlite3_open_v2(target, &ddb, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
	                    NULL) != SQLITE_OK) {
		*error_r = xasprintf("cannot write %s: %s", dst,
		                     ddb != NULL ? sqlite3_errmsg(ddb) : "out of memory");
		goto out;
	}
	sqlite3_busy_timeout(ddb, 10000);
	sqlite3_backup *b = sqlite3_backup_init(ddb, "main", sdb, "main");
	if (b == NULL) {
		*error_r = xasprintf("cannot copy %s to %s: %s", src, dst, sqlite3_errmsg(ddb));
		goto out;
	}
	int rc = sqlite3_backup_step(b, -1);
	*pages_r = sqlite3_backup_pagecount(b);
	sqlite3_backup_finish(b);
	if (rc != SQLITE_DONE) {
		*error_r = xasprintf("copying %s to %s failed: %s", src, dst, sqlite3_errstr(rc));
		goto out;
	}
	if (atomic) {
		/* A copy of a WAL database is a WAL database: fold it into one file. */
		sqlite3_exec(ddb, "PRAGMA journal_mode=DELETE", NULL, NULL, NULL);
	}
	if (sqlite3_close(ddb) != SQLITE_OK) {
		*error_r = xasprintf("closing %s failed", dst);
		ddb = NULL;
		goto out;
	}
	ddb = NULL;
	if (atomic) {
		if (fsync_path(tmp) < 0 || rename(tmp, dst) < 0) {
			*error_r = xasprintf("cannot move the copy to %s: %s", dst, strerror(errno));
			goto out;
		}
	}
	ret = 0;
out:
	if (ddb != NULL)
		sqlite3_close(ddb);
	if (sdb != NULL)
		sqlite3_close(sdb);
	if (tmp != NULL) {
		if (ret < 0)
			unlink(tmp);
		free(tmp);
	}
	return ret;
}
