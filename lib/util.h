/*
 * Small helpers every part of Parley uses: allocation that aborts on
 * failure, a growable byte buffer, an arena (pool) for short-lived objects,
 * base64 and a few string helpers.  Thread-safe: nothing here keeps state.
 */
#ifndef PARLEY_UTIL_H
#define PARLEY_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define ATTR_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define UNUSED __attribute__((unused))

/* Allocation: abort the process with a log line when memory runs out. */
void *xmalloc(size_t size);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *ptr, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) ATTR_PRINTF(1, 2);
char *xvasprintf(const char *fmt, va_list ap) ATTR_PRINTF(1, 0);
/* free(*p) and set *p to NULL. */
#define xfree(p)             \
	do {                 \
		free(*(p));  \
		*(p) = NULL; \
	} while (0)

/* ---- growable buffer --------------------------------------------------- */
struct buf {
	char *data; /* always NUL-terminated when data != NULL */
	size_t len;
	size_t cap;
};
void buf_append(struct buf *b, const void *data, size_t len);
void buf_append_str(struct buf *b, const char *s);
void buf_printf(struct buf *b, const char *fmt, ...) ATTR_PRINTF(2, 3);
/* Drop the first n bytes. */
void buf_consume(struct buf *b, size_t n);
void buf_reset(struct buf *b);
/* Free the storage and empty the buffer (nothing is wiped: use explicit_bzero
 * on data first when it held a secret). */
void buf_free(struct buf *b);
/* Hand the storage to the caller (NUL-terminated); the buffer is emptied. */
char *buf_steal(struct buf *b);

/* ---- arena ------------------------------------------------------------- */
/* A pool hands out memory that is freed all at once by pool_unref when the
 * last reference goes.  Not thread-safe: a pool belongs to one thread at a
 * time (a job's pool moves to a worker and back, never shared). */
struct pool;
struct pool *pool_new(size_t first_block);
void *pool_alloc(struct pool *p, size_t size); /* aligned to 16, zeroed */
char *pool_strdup(struct pool *p, const char *s);
char *pool_strndup(struct pool *p, const char *s, size_t n);
char *pool_printf(struct pool *p, const char *fmt, ...) ATTR_PRINTF(2, 3);
void pool_ref(struct pool *p);
void pool_unref(struct pool **p);
/* Bytes the pool holds from malloc (for accounting). */
size_t pool_size(const struct pool *p);

/* ---- encoding ---------------------------------------------------------- */
/* Base64 (RFC 4648, with padding).  Encode returns a malloc'd string. */
char *base64_encode(const void *data, size_t len);
/* Decode into a malloc'd buffer; returns -1 on any invalid input (bad
 * character, bad padding).  Whitespace is not accepted. */
int base64_decode(const char *in, size_t in_len, unsigned char **out_r, size_t *out_len_r);

/* Hex of len bytes into a malloc'd string (lower case). */
char *hex_encode(const void *data, size_t len);

/* ---- misc -------------------------------------------------------------- */
bool str_has_prefix(const char *s, const char *prefix);
/* Case-sensitive equality that accepts NULLs (two NULLs are equal). */
bool str_eq(const char *a, const char *b);
/* 32-bit FNV-1a, for sharding and hash tables. */
uint32_t hash_str(const char *s);
uint32_t hash_bytes(const void *data, size_t len);
/* Random bytes from OpenSSL's CSPRNG; aborts if it cannot deliver. */
void random_bytes(void *out, size_t len);
/* A random printable identifier of len characters (a-z0-9) into out[len+1]. */
void random_id(char *out, size_t len);
/* Compare in constant time. */
bool secure_memeq(const void *a, const void *b, size_t len);
/* Validate UTF-8 (no overlongs, no surrogates, no code points > 0x10FFFF). */
bool utf8_valid(const char *s, size_t len);
/* utf8_valid, and every character an XML 1.0 Char (XML 1.0 section 2.2): no
 * NUL or other C0 control but tab, LF and CR, no U+FFFE or U+FFFF.  Text
 * from outside the XML parser (a directory, a file) that fails it cannot
 * be written into a stanza. */
bool utf8_xml_valid(const char *s, size_t len);

/* Seconds on the monotonic clock (never goes back; not the date): for
 * deadlines and rate limits. */
double mono_now(void);

/* ---- XEP-0082 time stamps ---------------------------------------------- */
/* Room for the longest stamp written below and its NUL
 * ("2026-01-31T12:00:00.123456Z"). */
#define XEP82_STAMP_LEN 28
/* unix_seconds as an XEP-0082 UTC date-time, "2026-01-31T12:00:00Z", into
 * out; returns its length.  A time outside the years 0000..9999 has no such
 * stamp: out is then "" and 0 is returned. */
size_t xep82_stamp(char out[XEP82_STAMP_LEN], int64_t unix_seconds);
/* The same with a fraction of digits (1..6) decimal places, truncated:
 * unix_us in microseconds since the epoch, digits 3 gives
 * "2026-01-31T12:00:00.123Z".  digits 0 writes what xep82_stamp does. */
size_t xep82_stamp_us(char out[XEP82_STAMP_LEN], int64_t unix_us, unsigned digits);
/* An XEP-0082 date-time (seconds, an optional fraction, Z or a +hh:mm /
 * -hh:mm offset), not before 1970, as microseconds since the epoch into
 * *us_r (fraction digits past the sixth are dropped); false when s is not
 * one. */
bool xep82_parse(const char *s, int64_t *us_r);

#endif
