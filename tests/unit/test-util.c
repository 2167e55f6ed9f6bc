/*
 * Unit tests for lib/util.c and lib/log.c: buffers, pools, base64
 * (RFC 4648 vectors), hex, UTF-8 validation, the small helpers, and log
 * lines (format, level filter, sanitising, reopen after rotation, the rate
 * limit), the intrusive hash table of lib/htab.c, and XEP-0082 time
 * stamps; and the SQL drivers' error messages made into one log line
 * (storage/sql-util.c).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <regex.h>
#include <stdlib.h>
#include <unistd.h>

#include "lib/util.h"
#include "lib/log.h"
#include "lib/log-summary.h"
#include "lib/htab.h"
#include "storage/sql.h"

/* ---- buf ---------------------------------------------------------------- */

static void test_buf_append(void **state)
{
	struct buf b = { 0 };
	buf_append_str(&b, "hello");
	buf_append(&b, ", world", 7);
	assert_int_equal(b.len, 12);
	assert_string_equal(b.data, "hello, world");
	assert_true(b.cap > b.len);
	buf_append(&b, "", 0);
	assert_int_equal(b.len, 12);
	buf_free(&b);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.cap, 0);
}

static void test_buf_binary_and_growth(void **state)
{
	struct buf b = { 0 };
	char chunk[1000];
	for (size_t i = 0; i < sizeof(chunk); i++)
		chunk[i] = (char)(i % 251);
	for (int i = 0; i < 100; i++)
		buf_append(&b, chunk, sizeof(chunk));
	assert_int_equal(b.len, 100000);
	assert_int_equal(b.data[b.len], '\0');
	for (int i = 0; i < 100; i++)
		assert_memory_equal(b.data + i * 1000, chunk, sizeof(chunk));
	buf_free(&b);
}

static void test_buf_printf(void **state)
{
	struct buf b = { 0 };
	buf_printf(&b, "%d-%s", 42, "x");
	assert_string_equal(b.data, "42-x");
	/* Longer than any initial capacity: must grow and retry. */
	char *big = xmalloc(5001);
	memset(big, 'a', 5000);
	big[5000] = '\0';
	buf_printf(&b, "[%s]", big);
	assert_int_equal(b.len, 4 + 5002);
	assert_int_equal(b.data[4], '[');
	assert_int_equal(b.data[b.len - 1], ']');
	assert_int_equal(b.data[b.len], '\0');
	free(big);
	buf_free(&b);
}

static void test_buf_consume_reset_steal(void **state)
{
	struct buf b = { 0 };
	buf_append_str(&b, "abcdef");
	buf_consume(&b, 2);
	assert_string_equal(b.data, "cdef");
	assert_int_equal(b.len, 4);
	buf_consume(&b, 100);
	assert_int_equal(b.len, 0);
	assert_string_equal(b.data, "");
	buf_append_str(&b, "xyz");
	buf_reset(&b);
	assert_int_equal(b.len, 0);
	assert_string_equal(b.data, "");
	buf_append_str(&b, "kept");
	char *s = buf_steal(&b);
	assert_string_equal(s, "kept");
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	free(s);
	s = buf_steal(&b); /* an empty buffer gives an empty string */
	assert_string_equal(s, "");
	free(s);
}

/* ---- pool --------------------------------------------------------------- */

static void test_pool_alignment_and_zero(void **state)
{
	struct pool *p = pool_new(256);
	for (size_t size = 0; size < 3000; size += 7) {
		unsigned char *m = pool_alloc(p, size);
		assert_non_null(m);
		assert_int_equal((uintptr_t)m % 16, 0);
		for (size_t i = 0; i < size; i++)
			assert_int_equal(m[i], 0);
		memset(m, 0xa5, size);         /* dirty it: later allocations must still be zero */
		char *s = pool_strdup(p, "x"); /* misalign the cursor */
		assert_string_equal(s, "x");
	}
	pool_unref(&p);
	assert_null(p);
}

static void test_pool_large_allocation(void **state)
{
	struct pool *p = pool_new(1024);
	size_t before = pool_size(p);
	char *small1 = pool_alloc(p, 16);
	char *big = pool_alloc(p, 200000);
	size_t after_big = pool_size(p);
	assert_true(after_big >= before + 200000);
	assert_true(after_big < before + 200000 + 4096);
	memset(big, 1, 200000);
	/* The current block is still in use after the large one. */
	char *small2 = pool_alloc(p, 16);
	assert_int_equal(pool_size(p), after_big);
	assert_int_equal(small2 - small1, 16);
	pool_unref(&p);
}

static void test_pool_grows(void **state)
{
	struct pool *p = pool_new(128);
	char *ptrs[2000];
	for (int i = 0; i < 2000; i++) {
		ptrs[i] = pool_alloc(p, 40);
		memset(ptrs[i], i & 0xff, 40);
	}
	for (int i = 0; i < 2000; i++)
		for (int k = 0; k < 40; k++)
			assert_int_equal((unsigned char)ptrs[i][k], i & 0xff);
	assert_true(pool_size(p) >= 2000 * 48);
	pool_unref(&p);
}

static void test_pool_strings(void **state)
{
	struct pool *p = pool_new(0);
	assert_string_equal(pool_strdup(p, "abc"), "abc");
	assert_string_equal(pool_strndup(p, "abcdef", 3), "abc");
	assert_string_equal(pool_strndup(p, "ab", 10), "ab");
	assert_string_equal(pool_printf(p, "%s=%u", "n", 7u), "n=7");
	char *long_s = pool_printf(p, "%0500d", 1);
	assert_int_equal(strlen(long_s), 500);
	pool_unref(&p);
}

static void test_pool_refcount(void **state)
{
	struct pool *p = pool_new(64);
	char *s = pool_strdup(p, "alive");
	struct pool *q = p;
	pool_ref(p);
	pool_unref(&q);
	assert_null(q);
	/* still alive: one reference left (ASan would catch a use after free) */
	assert_string_equal(s, "alive");
	pool_unref(&p);
	assert_null(p);
	pool_unref(&p); /* NULL is fine */
}

/* ---- base64 ------------------------------------------------------------- */

static const struct {
	const char *raw, *enc;
} b64_vectors[] = {
	/* RFC 4648, section 10 */
	{ "", "" },
	{ "f", "Zg==" },
	{ "fo", "Zm8=" },
	{ "foo", "Zm9v" },
	{ "foob", "Zm9vYg==" },
	{ "fooba", "Zm9vYmE=" },
	{ "foobar", "Zm9vYmFy" },
};

static void test_base64_encode_vectors(void **state)
{
	for (size_t i = 0; i < ARRAY_SIZE(b64_vectors); i++) {
		char *e = base64_encode(b64_vectors[i].raw, strlen(b64_vectors[i].raw));
		assert_string_equal(e, b64_vectors[i].enc);
		free(e);
	}
}

static void test_base64_decode_vectors(void **state)
{
	for (size_t i = 0; i < ARRAY_SIZE(b64_vectors); i++) {
		unsigned char *out = NULL;
		size_t len = 99;
		const char *enc = b64_vectors[i].enc;
		assert_int_equal(base64_decode(enc, strlen(enc), &out, &len), 0);
		assert_int_equal(len, strlen(b64_vectors[i].raw));
		assert_memory_equal(out, b64_vectors[i].raw, len);
		free(out);
	}
}

static void test_base64_binary_round_trip(void **state)
{
	unsigned char all[256];
	for (int i = 0; i < 256; i++)
		all[i] = (unsigned char)i;
	for (size_t n = 0; n <= sizeof(all); n++) {
		char *e = base64_encode(all, n);
		assert_int_equal(strlen(e), (n + 2) / 3 * 4);
		unsigned char *d;
		size_t dlen;
		assert_int_equal(base64_decode(e, strlen(e), &d, &dlen), 0);
		assert_int_equal(dlen, n);
		assert_memory_equal(d, all, n);
		free(d);
		free(e);
	}
	char *e = base64_encode("\xfb\xff", 2);
	assert_string_equal(e, "+/8=");
	free(e);
}

static void test_base64_decode_rejects(void **state)
{
	static const char *const bad[] = {
		"Zg",                          /* missing padding */
		"Zg=",                         /* short padding */
		"Z===",                        /* too much padding */
		"====",   "Zg==Zg==",          /* padding in the middle */
		"Zm=v",   "=Zm9",      "Zh==", /* non-zero pad bits */
		"Zm9=",                        /* non-zero pad bits */
		"Zm9v\n",                      /* whitespace */
		"Zm 9v",  "Zm9v YmFy", "Zm9-", /* base64url alphabet */
		"Zm9_",   "Zm9\x80",   "Zm9v\0\0\0\0",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		unsigned char *out = NULL;
		size_t len = 0;
		size_t in_len = i == ARRAY_SIZE(bad) - 1 ? 8 : strlen(bad[i]);
		assert_int_equal(base64_decode(bad[i], in_len, &out, &len), -1);
		assert_null(out);
	}
}

/* ---- hex, strings, hashes, random ---------------------------------------- */

static void test_hex_encode(void **state)
{
	char *h = hex_encode("\x00\x01\xab\xff"
	                     "A",
	                     5);
	assert_string_equal(h, "0001abff41");
	free(h);
	h = hex_encode("", 0);
	assert_string_equal(h, "");
	free(h);
}

static void test_str_helpers(void **state)
{
	assert_true(str_eq(NULL, NULL));
	assert_false(str_eq("a", NULL));
	assert_false(str_eq(NULL, "a"));
	assert_true(str_eq("abc", "abc"));
	assert_false(str_eq("abc", "abd"));
	assert_true(str_has_prefix("xml:lang", "xml:"));
	assert_true(str_has_prefix("abc", ""));
	assert_false(str_has_prefix("xm", "xml:"));
	char *s = xstrndup("abcdef", 4);
	assert_string_equal(s, "abcd");
	free(s);
	s = xasprintf("%s-%d", "a", 5);
	assert_string_equal(s, "a-5");
	free(s);
}

static void test_fnv1a(void **state)
{
	/* Published FNV-1a 32-bit values. */
	assert_int_equal(hash_str(""), 0x811c9dc5u);
	assert_int_equal(hash_str("a"), 0xe40c292cu);
	assert_int_equal(hash_str("foobar"), 0xbf9cf968u);
	assert_int_equal(hash_bytes("foobar", 6), 0xbf9cf968u);
	assert_int_equal(hash_bytes("", 0), 0x811c9dc5u);
}

static void test_random(void **state)
{
	char a[33], b[33];
	random_id(a, 32);
	random_id(b, 32);
	assert_int_equal(strlen(a), 32);
	assert_int_not_equal(strcmp(a, b), 0);
	for (int i = 0; i < 32; i++)
		assert_non_null(strchr("abcdefghijklmnopqrstuvwxyz0123456789", a[i]));
	unsigned char r1[32] = { 0 }, r2[32] = { 0 };
	random_bytes(r1, sizeof(r1));
	random_bytes(r2, sizeof(r2));
	assert_memory_not_equal(r1, r2, sizeof(r1));
	random_id(a, 0);
	assert_string_equal(a, "");
}

static void test_secure_memeq(void **state)
{
	assert_true(secure_memeq("abcd", "abcd", 4));
	assert_false(secure_memeq("abcd", "abce", 4));
	assert_true(secure_memeq("x", "y", 0));
}

/* ---- UTF-8 -------------------------------------------------------------- */

static void test_utf8_valid_good(void **state)
{
	static const char *const good[] = {
		"",
		"plain ascii",
		"\xc3\xa9",         /* U+00E9 */
		"\xc2\x80",         /* U+0080, the smallest 2-byte */
		"\xdf\xbf",         /* U+07FF */
		"\xe0\xa0\x80",     /* U+0800 */
		"\xe2\x82\xac",     /* U+20AC */
		"\xed\x9f\xbf",     /* U+D7FF, just below the surrogates */
		"\xee\x80\x80",     /* U+E000, just above */
		"\xef\xbf\xbd",     /* U+FFFD */
		"\xf0\x90\x80\x80", /* U+10000 */
		"\xf0\x9f\x98\x80", /* U+1F600 */
		"\xf4\x8f\xbf\xbf", /* U+10FFFF */
		"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80!",
	};
	for (size_t i = 0; i < ARRAY_SIZE(good); i++)
		assert_true(utf8_valid(good[i], strlen(good[i])));
	/* An embedded NUL is a valid code point; the length decides. */
	assert_true(utf8_valid("a\0b", 3));
}

static void test_utf8_valid_bad(void **state)
{
	static const char *const bad[] = {
		"\x80", /* lone continuation */
		"a\xbf",
		"\xc0\x80",         /* overlong NUL */
		"\xc1\xbf",         /* overlong */
		"\xe0\x80\x80",     /* overlong 3-byte */
		"\xe0\x9f\xbf",     /* overlong U+07FF */
		"\xf0\x80\x80\x80", /* overlong 4-byte */
		"\xf0\x8f\xbf\xbf", /* overlong U+FFFF */
		"\xed\xa0\x80",     /* U+D800 */
		"\xed\xbf\xbf",     /* U+DFFF */
		"\xf4\x90\x80\x80", /* U+110000 */
		"\xf5\x80\x80\x80",
		"\xf8\x88\x80\x80\x80", /* 5-byte form */
		"\xfe",
		"\xff",
		"\xc3", /* truncated */
		"\xe2\x82",
		"\xf0\x9f\x98",
		"\xc3\x28", /* bad continuation */
		"\xe2\x28\xa1",
		"\xf0\x9f\x28\x80",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		if (utf8_valid(bad[i], strlen(bad[i])))
			fail_msg("accepted bad UTF-8 case %zu", i);
	}
	/* The length is honoured: a valid prefix cut in the middle is invalid. */
	assert_false(utf8_valid("\xe2\x82\xac", 2));
	assert_true(utf8_valid("\xe2\x82\xac", 0));
}

static void test_utf8_xml_valid(void **state)
{
	/* XML 1.0 Char: #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] |
	 * [#x10000-#x10FFFF] */
	static const char *const good[] = {
		"",
		"tab\t lf\n cr\r space ~\x7f",
		"\xc2\x80 \xc2\x9f", /* C1 controls are Chars */
		"\xed\x9f\xbf",      /* U+D7FF */
		"\xee\x80\x80",      /* U+E000 */
		"\xef\xbb\xbf",      /* U+FEFF */
		"\xef\xbf\xbd",      /* U+FFFD */
		"\xf0\x90\x80\x80",  /* U+10000 */
		"\xf4\x8f\xbf\xbf",  /* U+10FFFF */
	};
	for (size_t i = 0; i < ARRAY_SIZE(good); i++)
		if (!utf8_xml_valid(good[i], strlen(good[i])))
			fail_msg("refused XML text case %zu", i);
	static const char *const bad[] = {
		"\x01",
		"a\x08b",
		"\x0b",
		"\x0c",
		"\x1b[0m",
		"\x1f",
		"Ben \xef\xbf\xbe Example", /* U+FFFE */
		"\xef\xbf\xbf",             /* U+FFFF */
		"\xc3",                     /* not UTF-8 at all */
		"\xed\xa0\x80",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		if (utf8_xml_valid(bad[i], strlen(bad[i])))
			fail_msg("accepted non-XML text case %zu", i);
	assert_false(utf8_xml_valid("a\0b", 3));
	/* what utf8_valid takes: U+FFFE is valid UTF-8 */
	assert_true(utf8_valid("\xef\xbf\xbe", 3));
}

/* ---- log ---------------------------------------------------------------- */

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	struct buf b = { 0 };
	char tmp[512];
	size_t n;
	while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
		buf_append(&b, tmp, n);
	fclose(f);
	return buf_steal(&b);
}

static void test_log_levels(void **state)
{
	assert_int_equal(log_level_parse("debug"), LOG_LEVEL_DEBUG);
	assert_int_equal(log_level_parse("info"), LOG_LEVEL_INFO);
	assert_int_equal(log_level_parse("notice"), LOG_LEVEL_NOTICE);
	assert_int_equal(log_level_parse("warning"), LOG_LEVEL_WARNING);
	assert_int_equal(log_level_parse("error"), LOG_LEVEL_ERROR);
	assert_int_equal(log_level_parse("loud"), -1);
	assert_string_equal(log_level_name(LOG_LEVEL_WARNING), "warning");
	log_set_level(LOG_LEVEL_NOTICE);
	assert_int_equal(log_get_level(), LOG_LEVEL_NOTICE);
	log_set_level(LOG_LEVEL_INFO);
}

static void test_log_file_format_and_filter(void **state)
{
	char path[] = "/tmp/parley-test-log-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	const char *error = NULL;
	assert_int_equal(log_open_file(path, &error), 0);
	log_set_level(LOG_LEVEL_NOTICE);
	log_info("hidden %d", 1);
	log_debug("hidden too");
	log_warning("shown %s", "here");
	log_error("evil\ninjected [error] line\r");
	log_set_level(LOG_LEVEL_INFO);
	assert_int_equal(log_open_file(NULL, NULL), 0);

	char *text = read_file(path);
	regex_t re;
	assert_int_equal(regcomp(&re,
	                         "^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3} "
	                         "\\[warning\\] shown here\n"
	                         "[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3} "
	                         "\\[error\\] evil\\?injected \\[error\\] line\\?\n$",
	                         REG_EXTENDED),
	                 0);
	if (regexec(&re, text, 0, NULL, 0) != 0)
		fail_msg("unexpected log content:\n%s", text);
	regfree(&re);
	free(text);
	unlink(path);
}

static void test_log_open_failure(void **state)
{
	const char *error = NULL;
	assert_int_equal(log_open_file("/nonexistent-dir/x/y.log", &error), -1);
	assert_non_null(error);
}

static void test_log_reopen_after_rotation(void **state)
{
	char path[] = "/tmp/parley-test-log-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	char rotated[64];
	snprintf(rotated, sizeof(rotated), "%s.1", path);
	assert_int_equal(log_open_file(path, NULL), 0);
	log_notice("before rotation");
	assert_int_equal(rename(path, rotated), 0);
	log_notice("still old file");
	log_reopen();
	log_notice("after rotation");
	assert_int_equal(log_open_file(NULL, NULL), 0);

	char *old_text = read_file(rotated);
	char *new_text = read_file(path);
	assert_non_null(strstr(old_text, "[notice] before rotation\n"));
	assert_non_null(strstr(old_text, "[notice] still old file\n"));
	assert_null(strstr(old_text, "after rotation"));
	assert_non_null(strstr(new_text, "[notice] after rotation\n"));
	assert_null(strstr(new_text, "before"));
	free(old_text);
	free(new_text);
	unlink(path);
	unlink(rotated);
}

/* What psqlODBC said when the PostgreSQL server behind it was killed, and
 * libpq's "cannot connect": several lines, tabs, a ";\n" of its own. */
static void test_sql_message_one_line(void **state)
{
	(void)state;
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "FATAL:  terminating connection due to unexpected postmaster exit\nserver closed the "
		  "connection unexpectedly\n\tThis probably means the server terminated abnormally\n\tbefore "
		  "or while processing the request.\n;\nThe connection has been lost",
		  "FATAL: terminating connection due to unexpected postmaster exit server closed the "
		  "connection "
		  "unexpectedly This probably means the server terminated abnormally before or while "
		  "processing the request. ; The connection has been lost" },
		{ "connection to server at \"127.0.0.1\", port 5 failed: Connection refused\n\tIs the server "
		  "running?\n",
		  "connection to server at \"127.0.0.1\", port 5 failed: Connection refused Is the server "
		  "running?" },
		{ "  \r\n one\x01\x7ftwo  \n", "one two" },
		{ "plain", "plain" },
		{ "\n\t ", "" },
		{ "", "" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *m = xstrdup(cases[i].in);
		assert_ptr_equal(sql_message_one_line(m), m);
		assert_string_equal(m, cases[i].out);
		free(m);
	}
}

static void test_log_long_line_truncated(void **state)
{
	char path[] = "/tmp/parley-test-log-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(log_open_file(path, NULL), 0);
	char *big = xmalloc(10001);
	memset(big, 'q', 10000);
	big[10000] = '\0';
	log_notice("%s", big);
	log_notice("next");
	assert_int_equal(log_open_file(NULL, NULL), 0);
	char *text = read_file(path);
	char *nl = strchr(text, '\n');
	assert_non_null(nl);
	assert_true(nl - text < 4096);
	assert_memory_equal(nl - 3, "...", 3);
	assert_non_null(strstr(nl + 1, "[notice] next\n"));
	free(text);
	free(big);
	unlink(path);
}

/* One line, the next ones within `every` left out and counted; the count
 * goes on the next line written, or to whoever takes it for a summary. */
static void test_log_limit(void **state)
{
	(void)state;
	struct log_limit l = { .every = 1.0 };
	unsigned more = 99;
	assert_true(log_limit_pass(&l, 100.0, &more));
	assert_int_equal(more, 0);
	for (int i = 0; i < 44; i++)
		assert_false(log_limit_pass(&l, 100.0 + i * 0.01, &more));
	assert_int_equal(log_limit_take(&l, 101.0), 44);
	assert_int_equal(log_limit_take(&l, 101.0), 0);
	/* a summary counts as a line: the next one waits a second after it */
	assert_false(log_limit_pass(&l, 101.5, &more));
	assert_true(log_limit_pass(&l, 102.0, &more));
	assert_int_equal(more, 1);
	assert_false(log_limit_pass(&l, 102.1, &more));
	assert_false(log_limit_pass(&l, 102.9, &more));
	assert_true(log_limit_pass(&l, 103.2, &more));
	assert_int_equal(more, 2);
	assert_int_equal(log_limit_take(&l, 110.0), 0);
	char buf[LOG_LIMIT_MORE_SIZE];
	assert_string_equal(log_limit_more(0, buf), "");
	assert_string_equal(log_limit_more(33995, buf), " (and 33995 more since the last line)");
}

static unsigned summary_n;
static double summary_at;

static void summary_say(const struct log_summary *s, unsigned n)
{
	(void)s;
	summary_n += n;
	summary_at = mono_now();
}

/* The summary comes `every` after the last line written, counted on the
 * monotonic clock, even when the lines came late in a long loop pass
 * (libev's own time is the pass's start); and no earlier. */
static void test_log_summary_after_a_long_pass(void **state)
{
	(void)state;
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct log_summary s = { .limit.every = 0.3, .module = "test", .say = summary_say };
	summary_n = 0;
	unsigned more = 0;
	ev_run(loop, EVRUN_NOWAIT); /* the loop's time is read now */
	double line = mono_now();
	assert_true(log_summary_pass(&s, loop, &more));
	while (mono_now() < line + 0.2) /* the rest of a long pass */
		;
	assert_false(log_summary_pass(&s, loop, &more));
	assert_false(log_summary_pass(&s, loop, &more));
	/* the summary's timer does not keep a loop running: turn it by hand */
	while (summary_n == 0 && mono_now() < line + 3)
		ev_run(loop, EVRUN_NOWAIT);
	assert_int_equal(summary_n, 2);
	assert_true(summary_at >= line + 0.3);
	/* stopped with nothing pending: nothing said */
	log_summary_stop(&s);
	assert_int_equal(summary_n, 2);
	/* stopped while pending: said then (a summary counts as a line: the
	 * next one is written a second, here 0.3 s, after it) */
	while (mono_now() < summary_at + 0.31)
		;
	assert_true(log_summary_pass(&s, loop, &more));
	assert_false(log_summary_pass(&s, loop, &more));
	log_summary_stop(&s);
	assert_int_equal(summary_n, 3);
	ev_loop_destroy(loop);
}

/* ---- htab ----------------------------------------------------------------- */

struct htab_entry {
	struct htab_link link;
	int key;
};

static struct htab_entry *htab_find_int(const struct htab *t, int key)
{
	uint32_t h = hash_bytes(&key, sizeof(key));
	for (struct htab_link *l = htab_chain(t, h); l != NULL; l = l->next)
		if (l->hash == h && ((struct htab_entry *)l)->key == key)
			return (struct htab_entry *)l;
	return NULL;
}

/* ---- XEP-0082 stamps ----------------------------------------------------- */

static void test_xep82_stamp(void **state)
{
	(void)state;
	char out[XEP82_STAMP_LEN];
	assert_int_equal(xep82_stamp(out, 0), 20);
	assert_string_equal(out, "1970-01-01T00:00:00Z");
	assert_int_equal(xep82_stamp(out, 1769860800), 20);
	assert_string_equal(out, "2026-01-31T12:00:00Z");
	/* 2024-02-29 (leap day), last second of the day. */
	xep82_stamp(out, 1709251199);
	assert_string_equal(out, "2024-02-29T23:59:59Z");
	xep82_stamp(out, -1);
	assert_string_equal(out, "1969-12-31T23:59:59Z");
	xep82_stamp(out, 253402300799);
	assert_string_equal(out, "9999-12-31T23:59:59Z");
	/* Five-digit years are not XEP-0082 date-times. */
	assert_int_equal(xep82_stamp(out, 253402300800), 0);
	assert_string_equal(out, "");
	assert_int_equal(xep82_stamp(out, INT64_MAX), 0);
	assert_string_equal(out, "");
	assert_int_equal(xep82_stamp(out, INT64_MIN), 0);
}

static void test_xep82_stamp_us(void **state)
{
	(void)state;
	char out[XEP82_STAMP_LEN];
	int64_t t = INT64_C(1769860800) * 1000000 + 123456;
	assert_int_equal(xep82_stamp_us(out, t, 6), 27);
	assert_string_equal(out, "2026-01-31T12:00:00.123456Z");
	assert_int_equal(xep82_stamp_us(out, t, 3), 24);
	assert_string_equal(out, "2026-01-31T12:00:00.123Z");
	xep82_stamp_us(out, t, 1);
	assert_string_equal(out, "2026-01-31T12:00:00.1Z");
	assert_int_equal(xep82_stamp_us(out, t, 0), 20);
	assert_string_equal(out, "2026-01-31T12:00:00Z");
	/* Leading zeros of the fraction are kept, the rest truncated. */
	xep82_stamp_us(out, INT64_C(1769860800) * 1000000 + 999, 3);
	assert_string_equal(out, "2026-01-31T12:00:00.000Z");
	xep82_stamp_us(out, INT64_C(1769860800) * 1000000 + 5999, 6);
	assert_string_equal(out, "2026-01-31T12:00:00.005999Z");
	xep82_stamp_us(out, INT64_C(1769860800) * 1000000 + 999999, 3);
	assert_string_equal(out, "2026-01-31T12:00:00.999Z");
	/* Before the epoch the fraction still counts forward from the second. */
	xep82_stamp_us(out, -1, 6);
	assert_string_equal(out, "1969-12-31T23:59:59.999999Z");
	/* More than six places is six. */
	xep82_stamp_us(out, t, 9);
	assert_string_equal(out, "2026-01-31T12:00:00.123456Z");
}

static void test_xep82_parse(void **state)
{
	(void)state;
	int64_t us;
	assert_true(xep82_parse("2026-01-31T12:00:00Z", &us));
	assert_int_equal(us, INT64_C(1769860800) * 1000000);
	assert_true(xep82_parse("2026-01-31T12:00:00.123456Z", &us));
	assert_int_equal(us, INT64_C(1769860800) * 1000000 + 123456);
	/* Short fractions are scaled, long ones cut at microseconds. */
	assert_true(xep82_parse("2026-01-31T12:00:00.5Z", &us));
	assert_int_equal(us, INT64_C(1769860800) * 1000000 + 500000);
	assert_true(xep82_parse("2026-01-31T12:00:00.123456789Z", &us));
	assert_int_equal(us, INT64_C(1769860800) * 1000000 + 123456);
	/* Offsets: the same instant. */
	assert_true(xep82_parse("2026-01-31T14:30:00+02:30", &us));
	assert_int_equal(us, INT64_C(1769860800) * 1000000);
	assert_true(xep82_parse("2026-01-31T07:00:00-05:00", &us));
	assert_int_equal(us, INT64_C(1769860800) * 1000000);
	assert_true(xep82_parse("2026-01-31T12:00:00+00:00", &us));
	assert_int_equal(us, INT64_C(1769860800) * 1000000);
	assert_true(xep82_parse("1970-01-01T00:00:00Z", &us));
	assert_int_equal(us, 0);
	/* What a stamp written by xep82_stamp_us reads back as. */
	char out[XEP82_STAMP_LEN];
	xep82_stamp_us(out, INT64_C(1709251199) * 1000000 + 42, 6);
	assert_true(xep82_parse(out, &us));
	assert_int_equal(us, INT64_C(1709251199) * 1000000 + 42);

	const char *bad[] = { NULL,
		              "",
		              "2026-01-31",
		              "2026-01-31T12:00:00",
		              "2026-01-31T12:00Z",
		              "2026-01-31 12:00:00Z",
		              "2026-13-01T00:00:00Z",
		              "2026-01-00T00:00:00Z",
		              "2026-01-31T24:00:00Z",
		              "2026-01-31T12:60:00Z",
		              "2026-01-31T12:-1:00Z",
		              "2026-01-31T12:00:00.Z",
		              "2026-01-31T12:00:00Zjunk",
		              "2026-01-31T12:00:00+2:00",
		              "2026-01-31T12:00:00+02:00x",
		              "2026-01-31T12:00:00+24:00",
		              "1969-12-31T23:59:59Z",
		              "yesterday" };
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		assert_false(xep82_parse(bad[i], &us));
}

static void test_htab(void **state)
{
	struct htab t = { 0 };
	assert_null(htab_any(&t));
	assert_null(htab_chain(&t, 1));
	struct htab_entry e[300];
	for (int i = 0; i < 300; i++) {
		e[i].key = i;
		htab_add(&t, &e[i].link, hash_bytes(&i, sizeof(i)));
	}
	assert_int_equal(t.count, 300);
	assert_true(t.nbuckets >= 300);
	for (int i = 0; i < 300; i++)
		assert_ptr_equal(htab_find_int(&t, i), &e[i]);
	assert_null(htab_find_int(&t, 300));
	/* Remove the even ones, then empty it through htab_any. */
	for (int i = 0; i < 300; i += 2)
		htab_remove(&t, &e[i].link);
	assert_int_equal(t.count, 150);
	assert_null(htab_find_int(&t, 42));
	assert_ptr_equal(htab_find_int(&t, 43), &e[43]);
	struct htab_link *l;
	int n = 0;
	while ((l = htab_any(&t)) != NULL) {
		assert_int_equal(((struct htab_entry *)l)->key % 2, 1);
		htab_remove(&t, l);
		n++;
	}
	assert_int_equal(n, 150);
	htab_free(&t);
	assert_int_equal(t.nbuckets, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buf_append),
		cmocka_unit_test(test_buf_binary_and_growth),
		cmocka_unit_test(test_buf_printf),
		cmocka_unit_test(test_buf_consume_reset_steal),
		cmocka_unit_test(test_pool_alignment_and_zero),
		cmocka_unit_test(test_pool_large_allocation),
		cmocka_unit_test(test_pool_grows),
		cmocka_unit_test(test_pool_strings),
		cmocka_unit_test(test_pool_refcount),
		cmocka_unit_test(test_base64_encode_vectors),
		cmocka_unit_test(test_base64_decode_vectors),
		cmocka_unit_test(test_base64_binary_round_trip),
		cmocka_unit_test(test_base64_decode_rejects),
		cmocka_unit_test(test_hex_encode),
		cmocka_unit_test(test_str_helpers),
		cmocka_unit_test(test_fnv1a),
		cmocka_unit_test(test_random),
		cmocka_unit_test(test_secure_memeq),
		cmocka_unit_test(test_utf8_valid_good),
		cmocka_unit_test(test_utf8_valid_bad),
		cmocka_unit_test(test_utf8_xml_valid),
		cmocka_unit_test(test_xep82_stamp),
		cmocka_unit_test(test_xep82_stamp_us),
		cmocka_unit_test(test_xep82_parse),
		cmocka_unit_test(test_log_levels),
		cmocka_unit_test(test_log_file_format_and_filter),
		cmocka_unit_test(test_log_open_failure),
		cmocka_unit_test(test_log_reopen_after_rotation),
		cmocka_unit_test(test_log_long_line_truncated),
		cmocka_unit_test(test_log_limit),
		cmocka_unit_test(test_log_summary_after_a_long_pass),
		cmocka_unit_test(test_sql_message_one_line),
		cmocka_unit_test(test_htab),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
