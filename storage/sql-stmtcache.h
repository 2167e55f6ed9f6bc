/*
 * The prepared-statement cache of the SQL drivers (sql-sqlite.c,
 * sql-pgsql.c, sql-mysql.c, sql-odbc.c): one per connection, keyed by the
 * statement's SQL text.  The store calls prepare() for every query, so the
 * lookup is on the hot path.  Most SQL is a static string whose address
 * does not change, so a statement is found first by the address it was
 * last asked for with (one strcmp on the match confirms the text: an
 * address in a pool, like the message archive's built queries, may hold
 * other SQL later); otherwise by the hash of the text, and that address
 * then becomes the statement's address key.  The cost of a lookup does not
 * grow with the number of statements cached.
 *
 * A driver embeds a struct sql_stmtcache_entry in its statement and a
 * struct sql_stmtcache in its connection; it prepares and finalizes its
 * statements itself.  Not thread-safe: a cache belongs to its connection's
 * thread, and is dropped with the connection (sql_stmtcache_free at
 * disconnect), so a new connection prepares everything afresh.
 */
#ifndef PARLEY_SQL_STMTCACHE_H
#define PARLEY_SQL_STMTCACHE_H

#include "lib/htab.h"

#include <stddef.h>

struct sql_stmtcache_entry {
	struct htab_link by_text; /* in cache->by_text, hash of sql */
	struct htab_link by_addr; /* in cache->by_addr, hash of addr */
	char *sql;                /* the cache's copy of the text (the key) */
	const char *addr;         /* the caller's pointer it was last found by */
};

/* A zeroed struct is an empty cache. */
struct sql_stmtcache {
	struct htab by_text;
	struct htab by_addr;
};

/* The statement of type that embeds entry e as member. */
#define SQL_STMTCACHE_OWNER(e, type, member) ((type *)(void *)((char *)(e)-offsetof(type, member)))

/* The cached entry whose text is sql, or NULL.  An entry found by its
 * text under another address is keyed by sql's address from then on. */
struct sql_stmtcache_entry *sql_stmtcache_find(struct sql_stmtcache *cache, const char *sql);
/* Add e (zeroed, or removed before) under sql: the cache keeps a copy of
 * the text in e->sql.  There must be no entry for sql yet. */
void sql_stmtcache_add(struct sql_stmtcache *cache, struct sql_stmtcache_entry *e, const char *sql);
/* Remove e (in cache) and free its copy of the text; e itself is the
 * caller's. */
void sql_stmtcache_remove(struct sql_stmtcache *cache, struct sql_stmtcache_entry *e);
/* Remove every entry, calling finalize(e, ctx) on each after its removal
 * (the driver frees its statement there), and free the tables: the cache
 * is empty and may be used again. */
void sql_stmtcache_free(struct sql_stmtcache *cache,
                        void (*finalize)(struct sql_stmtcache_entry *e, void *ctx), void *ctx);

#endif
