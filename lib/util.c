/*
 * Small helpers: aborting allocation, growable buffers, arenas (pools),
 * base64/hex, hashing, randomness, UTF-8 validation, XEP-0082 stamps.
 *
 * Any thread.  Nothing here keeps global state; a pool or buffer belongs to
 * one thread at a time.
 *
 * Pool invariants:
 * - The pool header and its first block come from one malloc; later blocks
 *   are chained on p->blocks.  A request bigger than a quarter of the
 *   normal block size gets a block of its own, so it never wastes the rest
 *   of the current block.
 * - [p->cur, p->end) is the free tail of the current block; pool_alloc
 *   returns 16-byte aligned, zeroed memory, strings are packed unaligned.
 * - p->total counts every byte obtained from malloc for this pool.
 */
#include "util.h"
#include "log.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <time.h>

/* ---- allocation -------------------------------------------------------------- */

static void __attribute__((noreturn)) out_of_memory(size_t size)
{
	log_fatal("out of memory (allocating %zu bytes)", size);
}

void *xmalloc(size_t size)
{
	void *p = malloc(size == 0 ? 1 : size);
	if (p == NULL)
		out_of_memory(size);
	return p;
}

void *xcalloc(size_t nmemb, size_t size)
{
	void *p = calloc(nmemb == 0 ? 1 : nmemb, size == 0 ? 1 : size);
	if (p == NULL)
		out_of_memory(nmemb * size);
	return p;
}

void *xrealloc(void *ptr, size_t size)
{
	void *p = realloc(ptr, size == 0 ? 1 : size);
	if (p == NULL)
		out_of_memory(size);
	return p;
}

char *xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
	size_t len = strnlen(s, n);
	char *d = xmalloc(len + 1);
	memcpy(d, s, len);
	d[len] = '\0';
	return d;
}

char *xvasprintf(const char *fmt, va_list ap)
{
	char *s;
	if (vasprintf(&s, fmt, ap) < 0)
		out_of_memory(strlen(fmt));
	return s;
}

char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = xvasprintf(fmt, ap);
	va_end(ap);
	return s;
}

/* ---- buffer ----------------------------------------------------------------- */

/* Make room for extra more bytes plus the terminating NUL. */
static void buf_reserve(struct buf *b, size_t extra)
{
	if (extra > SIZE_MAX / 2 - b->len)
		out_of_memory(extra);
	size_t need = b->len + extra + 1;
	if (need <= b->cap)
		return;
	size_t cap = b->cap < 64 ? 64 : b->cap;
	while (cap < need)
		cap *= 2;
	b->data = xrealloc(b->data, cap);
	b->cap = cap;
}

void buf_append(struct buf *b, const void *data, size_t len)
{
	buf_reserve(b, len);
	if (len > 0)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
}

void buf_append_str(struct buf *b, const char *s)
{
	buf_append(b, s, strlen(s));
}

void buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	buf_reserve(b, 0);
	size_t room = b->cap - b->len;
	va_start(ap, fmt);
	int n = vsnprintf(b->data + b->len, room, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->data[b->len] = '\0';
		return;
	}
	if ((size_t)n >= room) {
		buf_reserve(b, (size_t)n);
		va_start(ap, fmt);
		vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
		va_end(ap);
	}
	b->len += (size_t)n;
}

void buf_consume(struct buf *b, size_t n)
{
	if (n >= b->len) {
		buf_reset(b);
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
	b->data[b->len] = '\0';
}

void buf_reset(struct buf *b)
{
	b->len = 0;
	if (b->data != NULL)
		b->data[0] = '\0';
}

void buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

char *buf_steal(struct buf *b)
{
	char *s = b->data != NULL ? b->data : xstrdup("");
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	return s;
}

/* ---- pool ------------------------------------------------------------------ */

#define POOL_ALIGN 16
#define ALIGN_UP(n, a) (((n) + (a)-1) & ~(size_t)((a)-1))
#define POOL_MIN_BLOCK 128
#define POOL_MAX_BLOCK 65536

struct pool_block {
	struct pool_block *next;
};

struct pool {
	unsigned refcount;
	size_t total;              /* bytes from malloc */
	size_t block_size;         /* size of the next normal block */
	char *cur, *end;           /* free tail of the current block */
	struct pool_block *blocks; /* blocks after the first one */
};

#define POOL_HDR ALIGN_UP(sizeof(struct pool), POOL_ALIGN)
#define BLOCK_HDR ALIGN_UP(sizeof(struct pool_block), POOL_ALIGN)

struct pool *pool_new(size_t first_block)
{
	if (first_block < POOL_MIN_BLOCK)
		first_block = POOL_MIN_BLOCK;
	first_block = ALIGN_UP(first_block, POOL_ALIGN);
	struct pool *p = xmalloc(POOL_HDR + first_block);
	p->refcount = 1;
	p->total = POOL_HDR + first_block;
	p->block_size = first_block < 1024 ? 2048 : first_block * 2;
	if (p->block_size > POOL_MAX_BLOCK)
		p->block_size = POOL_MAX_BLOCK;
	p->cur = (char *)p + POOL_HDR;
	p->end = p->cur + first_block;
	p->blocks = NULL;
	return p;
}

static char *pool_new_block(struct pool *p, size_t size)
{
	if (size > SIZE_MAX - BLOCK_HDR)
		out_of_memory(size);
	struct pool_block *b = xmalloc(BLOCK_HDR + size);
	b->next = p->blocks;
	p->blocks = b;
	p->total += BLOCK_HDR + size;
	return (char *)b + BLOCK_HDR;
}

/* Uninitialised memory aligned to align (a power of two <= 16). */
static void *pool_alloc_raw(struct pool *p, size_t size, size_t align)
{
	uintptr_t cur = ((uintptr_t)p->cur + align - 1) & ~(uintptr_t)(align - 1);
	if (cur <= (uintptr_t)p->end && size <= (size_t)((uintptr_t)p->end - cur)) {
		p->cur = (char *)cur + size;
		return (char *)cur;
	}
	if (size > p->block_size / 4) {
		/* Large: a block of its own; the current block stays current. */
		return pool_new_block(p, size);
	}
	char *mem = pool_new_block(p, p->block_size);
	p->end = mem + p->block_size;
	p->cur = mem + size;
	if (p->block_size < POOL_MAX_BLOCK)
		p->block_size *= 2;
	return mem;
}

void *pool_alloc(struct pool *p, size_t size)
{
	if (size == 0)
		size = 1;
	void *mem = pool_alloc_raw(p, size, POOL_ALIGN);
	memset(mem, 0, size);
	return mem;
}

char *pool_strndup(struct pool *p, const char *s, size_t n)
{
	size_t len = strnlen(s, n);
	char *d = pool_alloc_raw(p, len + 1, 1);
	memcpy(d, s, len);
	d[len] = '\0';
	return d;
}

char *pool_strdup(struct pool *p, const char *s)
{
	size_t len = strlen(s);
	char *d = pool_alloc_raw(p, len + 1, 1);
	memcpy(d, s, len + 1);
	return d;
}

char *pool_printf(struct pool *p, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return pool_strdup(p, "");
	char *d = pool_alloc_raw(p, (size_t)n + 1, 1);
	va_start(ap, fmt);
	vsnprintf(d, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return d;
}

void pool_ref(struct pool *p)
{
	if (p->refcount == UINT32_MAX)
		log_fatal("pool reference count overflow");
	p->refcount++;
}

void pool_unref(struct pool **pp)
{
	struct pool *p = *pp;
	*pp = NULL;
	if (p == NULL)
		return;
	if (p->refcount == 0)
		log_fatal("pool_unref on a freed pool");
	if (--p->refcount > 0)
		return;
	struct pool_block *b = p->blocks;
	while (b != NULL) {
		struct pool_block *next = b->next;
		free(b);
		b = next;
	}
	free(p);
}

size_t pool_size(const struct pool *p)
{
	return p->total;
}

/* ---- encoding -------------------------------------------------------------- */

static const char b64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *base64_encode(const void *data, size_t len)
{
	const unsigned char *in = data;
	if (len > (SIZE_MAX - 1) / 4 * 3 - 3)
		out_of_memory(len);
	char *out = xmalloc((len + 2) / 3 * 4 + 1);
	char *o = out;
	size_t i = 0;
	for (; i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		*o++ = b64_alphabet[v >> 18];
		*o++ = b64_alphabet[(v >> 12) & 63];
		*o++ = b64_alphabet[(v >> 6) & 63];
		*o++ = b64_alphabet[v & 63];
	}
	if (len - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;
		*o++ = b64_alphabet[v >> 18];
		*o++ = b64_alphabet[(v >> 12) & 63];
		*o++ = '=';
		*o++ = '=';
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		*o++ = b64_alphabet[v >> 18];
		*o++ = b64_alphabet[(v >> 12) & 63];
		*o++ = b64_alphabet[(v >> 6) & 63];
		*o++ = '=';
	}
	*o = '\0';
	return out;
}

/* Value of a base64 character, or -1. */
static int b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/*
 * Strict: the length is a multiple of 4, '=' appears only as the last one or
 * two characters, and the bits a padded group leaves over are zero (so every
 * byte string has exactly one accepted encoding).
 */
int base64_decode(const char *in, size_t in_len, unsigned char **out_r, size_t *out_len_r)
{
	if (in_len % 4 != 0)
		return -1;
	size_t pad = 0;
	if (in_len > 0 && in[in_len - 1] == '=')
		pad = (in_len > 1 && in[in_len - 2] == '=') ? 2 : 1;
	unsigned char *out = xmalloc(in_len / 4 * 3 + 1);
	size_t o = 0;
	for (size_t i = 0; i < in_len; i += 4) {
		bool last = i + 4 == in_len;
		int v[4];
		for (int k = 0; k < 4; k++) {
			if (last && k >= 4 - (int)pad) {
				v[k] = 0;
				continue;
			}
			v[k] = b64_value((unsigned char)in[i + k]);
			if (v[k] < 0)
				goto fail;
		}
		uint32_t w =
		        (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
		out[o++] = (unsigned char)(w >> 16);
		if (last && pad == 2) {
			if ((w & 0xffff) != 0)
				goto fail;
			break;
		}
		out[o++] = (unsigned char)(w >> 8);
		if (last && pad == 1) {
			if ((w & 0xff) != 0)
				goto fail;
			break;
		}
		out[o++] = (unsigned char)w;
	}
	out[o] = '\0';
	*out_r = out;
	*out_len_r = o;
	return 0;
fail:
	free(out);
	return -1;
}

char *hex_encode(const void *data, size_t len)
{
	static const char digits[] = "0123456789abcdef";
	const unsigned char *in = data;
	if (len > (SIZE_MAX - 1) / 2)
		out_of_memory(len);
	char *out = xmalloc(len * 2 + 1);
	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[len * 2] = '\0';
	return out;
}

/* ---- misc ------------------------------------------------------------------ */

bool str_has_prefix(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

bool str_eq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

#define FNV_OFFSET 2166136261u
#define FNV_PRIME 16777619u

uint32_t hash_str(const char *s)
{
	uint32_t h = FNV_OFFSET;
	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= FNV_PRIME;
	}
	return h;
}

uint32_t hash_bytes(const void *data, size_t len)
{
	const unsigned char *d = data;
	uint32_t h = FNV_OFFSET;
	for (size_t i = 0; i < len; i++) {
		h ^= d[i];
		h *= FNV_PRIME;
	}
	return h;
}

void random_bytes(void *out, size_t len)
{
	unsigned char *o = out;
	while (len > 0) {
		int n = len > INT32_MAX ? INT32_MAX : (int)len;
		if (RAND_bytes(o, n) != 1)
			log_fatal("the OpenSSL random generator failed");
		o += n;
		len -= (size_t)n;
	}
}

void random_id(char *out, size_t len)
{
	static const char chars[] = "abcdefghijklmnopqrstuvwxyz0123456789";
	unsigned char rnd[64];
	size_t have = 0, used = 0, i = 0;
	while (i < len) {
		if (used == have) {
			random_bytes(rnd, sizeof(rnd));
			have = sizeof(rnd);
			used = 0;
		}
		unsigned char r = rnd[used++];
		/* 252 = 7 * 36: reject the rest so every character is equally likely. */
		if (r < 252)
			out[i++] = chars[r % 36];
	}
	out[len] = '\0';
}

bool secure_memeq(const void *a, const void *b, size_t len)
{
	return CRYPTO_memcmp(a, b, len) == 0;
}

/* UTF-8 as utf8_valid checks it; with xml, also only XML 1.0 Chars. */
static bool utf8_check(const char *str, size_t len, bool xml)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;
	while (i < len) {
		unsigned char c = s[i];
		if (c < 0x80) {
			if (xml && c < 0x20 && c != '\t' && c != '\n' && c != '\r')
				return false;
			i++;
			continue;
		}
		size_t n;
		uint32_t cp, min;
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
			min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			n = 2;
			cp = c & 0x0f;
			min = 0x800;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
			min = 0x10000;
		} else {
			return false; /* continuation byte, C0/C1 overlong lead, or > U+13FFFF */
		}
		if (len - i <= n)
			return false;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		if (xml && (cp == 0xfffe || cp == 0xffff))
			return false;
		i += n + 1;
	}
	return true;
}

bool utf8_valid(const char *s, size_t len)
{
	return utf8_check(s, len, false);
}

bool utf8_xml_valid(const char *s, size_t len)
{
	return utf8_check(s, len, true);
}

/* ---- XEP-0082 time stamps ---------------------------------------------------- */

/* secs and a fraction (frac_us, 0..999999) shown with digits places. */
static size_t stamp_format(char out[XEP82_STAMP_LEN], int64_t secs, int64_t frac_us, unsigned digits)
{
	struct tm utc;
	time_t t = (time_t)secs;
	out[0] = '\0';
	if ((int64_t)t != secs || gmtime_r(&t, &utc) == NULL || utc.tm_year < -1900 ||
	    utc.tm_year > 9999 - 1900)
		return 0;
	int n = snprintf(out, XEP82_STAMP_LEN, "%04d-%02d-%02dT%02d:%02d:%02d", utc.tm_year + 1900,
	                 utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec);
	if (digits > 6)
		digits = 6;
	if (digits > 0) {
		for (unsigned i = digits; i < 6; i++)
			frac_us /= 10;
		n += snprintf(out + n, XEP82_STAMP_LEN - (size_t)n, ".%0*d", (int)digits, (int)frac_us);
	}
	out[n++] = 'Z';
	out[n] = '\0';
	return (size_t)n;
}

size_t xep82_stamp(char out[XEP82_STAMP_LEN], int64_t unix_seconds)
{
	return stamp_format(out, unix_seconds, 0, 0);
}

size_t xep82_stamp_us(char out[XEP82_STAMP_LEN], int64_t unix_us, unsigned digits)
{
	int64_t secs = unix_us / 1000000, frac = unix_us % 1000000;
	if (frac < 0) {
		secs--;
		frac += 1000000;
	}
	return stamp_format(out, secs, frac, digits);
}

bool xep82_parse(const char *s, int64_t *us_r)
{
	int y, mo, d, h, mi, sec, n = 0;
	if (s == NULL || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 ||
	    n != 19)
		return false;
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 || mi > 59 || sec < 0 ||
	    sec > 60 || y < 1970)
		return false;
	const char *p = s + n;
	int64_t frac = 0;
	if (*p == '.') {
		int digits = 0;
		p++;
		if (*p < '0' || *p > '9')
			return false;
		for (; *p >= '0' && *p <= '9'; p++, digits++)
			if (digits < 6)
				frac = frac * 10 + (*p - '0');
		for (; digits < 6; digits++)
			frac *= 10;
	}
	int64_t off = 0;
	if (*p == 'Z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int oh, om, m = 0;
		if (sscanf(p + 1, "%2d:%2d%n", &oh, &om, &m) != 2 || m != 5 || oh < 0 || oh > 23 || om < 0 ||
		    om > 59)
			return false;
		off = (int64_t)(oh * 60 + om) * 60 * (*p == '+' ? 1 : -1);
		p += 6;
	} else {
		return false;
	}
	if (*p != '\0')
		return false;
	struct tm tm = {
		.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi, .tm_sec = sec
	};
	time_t t = timegm(&tm);
	*us_r = ((int64_t)t - off) * 1000000 + frac;
	return *us_r >= 0;
}

double mono_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
