/*
 * Copying a whole SQLite database with SQLite's online backup API, for
 * `parleyctl backup` and `parleyctl restore`.  Blocking: run it on a worker
 * thread (or in parleyctl without a running server), never on the loop.
 */
#ifndef PARLEY_SQLITE_COPY_H
#define PARLEY_SQLITE_COPY_H

#include <stdbool.h>
#include <stdint.h>

/* Copy the database src into the file dst.  The copy is consistent (one
 * read transaction on src; writers on src go on meanwhile in WAL mode).
 * When atomic, it is written to a temporary file beside dst, synced and
 * renamed over dst, so dst is either the old file or a complete copy.
 * Otherwise dst is written in place through SQLite (for restore into the
 * store: one transaction on dst).  When check_schema, src must hold
 * Parley's schema_version table with a version this build can use (at
 * most SQL_SCHEMA_VERSION).  pages_r: pages copied.  Returns 0, or -1 with
 * a malloc'd *error_r. */
int sqlite_copy(const char *src, const char *dst, bool atomic, bool check_schema, int64_t *pages_r,
                char **error_r);

#endif
