/*
 * The prepared-statement cache of the SQL drivers: two lib/htab tables
 * over the same entries, one by the caller's SQL pointer, one by the hash
 * of the text (see sql-stmtcache.h).  Runs on the thread of the connection
 * that owns the cache.  Invariant: an entry is in both tables or in
 * neither, by_text under hash_str(sql) and by_addr under addr_hash(addr).
 */
#include "storage/sql-stmtcache.h"
#include "lib/util.h"

#include <stdlib.h>
#include <string.h>

/* Fibonacci hashing of the address: one multiplication, and the high half
 * of the product mixes every bit of it (htab takes the hash modulo a power
 * of two). */
static uint32_t addr_hash(const char *addr)
{
	return (uint32_t)(((uint64_t)(uintptr_t)addr * UINT64_C(0x9E3779B97F4A7C15)) >> 32);
}

struct sql_stmtcache_entry *sql_stmtcache_find(struct sql_stmtcache *cache, const char *sql)
{
	uint32_t ah = addr_hash(sql);
	for (struct htab_link *l = htab_chain(&cache->by_addr, ah); l != NULL; l = l->next) {
		struct sql_stmtcache_entry *e = SQL_STMTCACHE_OWNER(l, struct sql_stmtcache_entry, by_addr);
		if (e->addr == sql && strcmp(e->sql, sql) == 0)
			return e;
	}
	uint32_t h = hash_str(sql);
	for (struct htab_link *l = htab_chain(&cache->by_text, h); l != NULL; l = l->next) {
		struct sql_stmtcache_entry *e = SQL_STMTCACHE_OWNER(l, struct sql_stmtcache_entry, by_text);
		if (l->hash == h && strcmp(e->sql, sql) == 0) {
			/* Found by its text under another address: key it by
			 * this one from now on. */
			htab_remove(&cache->by_addr, &e->by_addr);
			e->addr = sql;
			htab_add(&cache->by_addr, &e->by_addr, ah);
			return e;
		}
	}
	return NULL;
}

void sql_stmtcache_add(struct sql_stmtcache *cache, struct sql_stmtcache_entry *e, const char *sql)
{
	e->sql = xstrdup(sql);
	e->addr = sql;
	htab_add(&cache->by_text, &e->by_text, hash_str(sql));
	htab_add(&cache->by_addr, &e->by_addr, addr_hash(sql));
}

void sql_stmtcache_remove(struct sql_stmtcache *cache, struct sql_stmtcache_entry *e)
{
	htab_remove(&cache->by_text, &e->by_text);
	htab_remove(&cache->by_addr, &e->by_addr);
	free(e->sql);
	e->sql = NULL;
	e->addr = NULL;
}

void sql_stmtcache_free(struct sql_stmtcache *cache,
                        void (*finalize)(struct sql_stmtcache_entry *e, void *ctx), void *ctx)
{
	struct htab_link *l;
	while ((l = htab_any(&cache->by_text)) != NULL) {
		struct sql_stmtcache_entry *e = SQL_STMTCACHE_OWNER(l, struct sql_stmtcache_entry, by_text);
		sql_stmtcache_remove(cache, e);
		finalize(e, ctx);
	}
	htab_free(&cache->by_text);
	htab_free(&cache->by_addr);
}
