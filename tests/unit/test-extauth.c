/*
 * Unit tests for the port protocol's framing (auth/auth-external.h): request
 * encoding, reply decoding, splitting a request the way a program must
 * (passwords with ':'), and the process pool's start-up probe of programs
 * (auth/procpool.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/auth-external.h"
#include "auth/procpool.h"

static void test_encode(void **state)
{
	(void)state;
	struct buf b = { 0 };
	assert_int_equal(extproto_encode(&b, "auth", "alice", "example.com", "pa:ss"), 0);
	const char want[] = "auth:alice:example.com:pa:ss";
	assert_int_equal(b.len, 2 + strlen(want));
	assert_int_equal((unsigned char)b.data[0], 0);
	assert_int_equal((unsigned char)b.data[1], strlen(want));
	assert_memory_equal(b.data + 2, want, strlen(want));
	buf_reset(&b);
	assert_int_equal(extproto_encode(&b, "isuser", "bob", "example.com", NULL), 0);
	assert_int_equal(b.len, 2 + strlen("isuser:bob:example.com"));
	assert_memory_equal(b.data + 2, "isuser:bob:example.com", b.len - 2);
	buf_reset(&b);
	/* a ':' where the protocol cannot carry one */
	assert_int_equal(extproto_encode(&b, "auth", "al:ice", "example.com", "x"), -1);
	assert_int_equal(extproto_encode(&b, "auth", "alice", "exa:mple", "x"), -1);
	assert_int_equal(b.len, 0);
	/* length: big-endian, up to 65535 */
	char *big = xmalloc(70000);
	memset(big, 'p', 69999);
	big[69999] = '\0';
	assert_int_equal(extproto_encode(&b, "auth", "alice", "example.com", big), -1);
	size_t fixed = strlen("auth:alice:example.com:");
	big[65535 - fixed] = '\0';
	assert_int_equal(extproto_encode(&b, "auth", "alice", "example.com", big), 0);
	assert_int_equal((unsigned char)b.data[0], 0xff);
	assert_int_equal((unsigned char)b.data[1], 0xff);
	assert_int_equal(b.len, 65537);
	buf_reset(&b);
	big[300 - fixed] = '\0';
	assert_int_equal(extproto_encode(&b, "auth", "alice", "example.com", big), 0);
	assert_int_equal((unsigned char)b.data[0], 1);
	assert_int_equal((unsigned char)b.data[1], 300 - 256);
	free(big);
	buf_free(&b);
}

static void test_op_names(void **state)
{
	(void)state;
	assert_string_equal(extproto_op_name(AUTH_OP_CHECK_PASSWORD, false), "auth");
	assert_string_equal(extproto_op_name(AUTH_OP_USER_EXISTS, false), "isuser");
	assert_string_equal(extproto_op_name(AUTH_OP_SET_PASSWORD, false), "setpass");
	assert_string_equal(extproto_op_name(AUTH_OP_CREATE_USER, false), "tryregister");
	assert_string_equal(extproto_op_name(AUTH_OP_REMOVE_USER, false), "removeuser");
	assert_string_equal(extproto_op_name(AUTH_OP_REMOVE_USER, true), "removeuser3");
	assert_null(extproto_op_name(AUTH_OP_GET_SCRAM, false));
}

static void test_decode_reply(void **state)
{
	(void)state;
	enum extproto_answer ans = EXTPROTO_NO;
	const unsigned char ok[] = { 0, 2, 0, 1 }, no[] = { 0, 2, 0, 0 };
	assert_int_equal(extproto_decode_reply(ok, 4, false, &ans), 1);
	assert_int_equal(ans, EXTPROTO_YES);
	assert_int_equal(extproto_decode_reply(no, 4, false, &ans), 1);
	assert_int_equal(ans, EXTPROTO_NO);
	/* partial replies want more */
	for (size_t n = 0; n < 4; n++)
		assert_int_equal(extproto_decode_reply(ok, n, false, &ans), 0);
	/* garbage: wrong length field, results other than 0/1, extra bytes */
	const unsigned char len3[] = { 0, 3, 0, 1 }, big[] = { 1, 2, 0, 1 }, two[] = { 0, 2, 0, 2 };
	const unsigned char hi[] = { 0, 2, 1, 1 }, extra[] = { 0, 2, 0, 1, 0 }, text[] = "ok\n";
	assert_int_equal(extproto_decode_reply(len3, 2, false, &ans), -1);
	assert_int_equal(extproto_decode_reply(big, 1, false, &ans), 0);
	assert_int_equal(extproto_decode_reply(big, 2, false, &ans), -1);
	assert_int_equal(extproto_decode_reply(two, 4, false, &ans), -1);
	assert_int_equal(extproto_decode_reply(hi, 4, false, &ans), -1);
	assert_int_equal(extproto_decode_reply(extra, 5, false, &ans), -1);
	assert_int_equal(extproto_decode_reply(text, 3, false, &ans), -1);
	/* 2, "temporary failure", only where the PAM helper answers */
	assert_int_equal(extproto_decode_reply(two, 4, true, &ans), 1);
	assert_int_equal(ans, EXTPROTO_TEMPFAIL);
	assert_int_equal(extproto_decode_reply(ok, 4, true, &ans), 1);
	assert_int_equal(ans, EXTPROTO_YES);
	const unsigned char three[] = { 0, 2, 0, 3 };
	assert_int_equal(extproto_decode_reply(three, 4, true, &ans), -1);
	assert_int_equal(extproto_decode_reply(hi, 4, true, &ans), -1);
}

static void test_split(void **state)
{
	(void)state;
	char *copy;
	const char *f[4];
	const char *p = "auth:alice:example.com:a:b::c";
	assert_int_equal(extproto_split(p, strlen(p), &copy, f), 4);
	assert_string_equal(f[0], "auth");
	assert_string_equal(f[1], "alice");
	assert_string_equal(f[2], "example.com");
	assert_string_equal(f[3], "a:b::c");
	free(copy);
	p = "auth:alice:example.com:";
	assert_int_equal(extproto_split(p, strlen(p), &copy, f), 4);
	assert_string_equal(f[3], "");
	free(copy);
	p = "isuser:bob:example.com";
	assert_int_equal(extproto_split(p, strlen(p), &copy, f), 3);
	assert_string_equal(f[2], "example.com");
	free(copy);
	p = "removeuser3:bob:example.com:x:y";
	assert_int_equal(extproto_split(p, strlen(p), &copy, f), 4);
	assert_string_equal(f[3], "x:y");
	free(copy);
	/* malformed: unknown operation, too few fields, extra field, NUL */
	const char *bad[] = { "login:a:b:c", "auth:alice", "auth:alice:example.com", "isuser:a:b:c", "noop" };
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		assert_int_equal(extproto_split(bad[i], strlen(bad[i]), &copy, f), -1);
		assert_null(copy);
	}
	assert_int_equal(extproto_split("auth:a\0b:c:d", 12, &copy, f), -1);
	/* what encode writes, split gives back */
	struct buf b = { 0 };
	assert_int_equal(extproto_encode(&b, "setpass", "carol", "example.org", ":lead:trail:"), 0);
	assert_int_equal(extproto_split(b.data + 2, b.len - 2, &copy, f), 4);
	assert_string_equal(f[0], "setpass");
	assert_string_equal(f[1], "carol");
	assert_string_equal(f[3], ":lead:trail:");
	free(copy);
	buf_free(&b);
}

static char tmpdir[64];

static char *write_prog(const char *name, const char *text, mode_t mode)
{
	char *path = xasprintf("%s/%s", tmpdir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	chmod(path, mode);
	return path;
}

static void expect_probe(const char *path, const char *needle)
{
	char *err = procpool_probe_program(path);
	if (needle == NULL) {
		if (err != NULL)
			fail_msg("unexpected probe error: %s", err);
		return;
	}
	if (err == NULL || strstr(err, needle) == NULL)
		fail_msg("probe of %s: expected '%s', got '%s'", path, needle, err != NULL ? err : "(ok)");
	free(err);
}

static void test_probe(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/parley-test-extauth-XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	char *ok = write_prog("ok.sh", "#!/bin/sh\nexit 0\n", 0755);
	char *noexec = write_prog("noexec.sh", "#!/bin/sh\nexit 0\n", 0644);
	char *noshebang = write_prog("plain", "echo hi\n", 0755);
	char *badinterp = write_prog("bad", "#!/nonexistent/interp -x\n", 0755);
	char *crlf = write_prog("crlf", "#!/bin/sh\r\necho\r\n", 0755);
	char *env_ok = write_prog("env-ok", "#!/usr/bin/env sh\n", 0755);
	char *env_bad = write_prog("env-bad", "#!/usr/bin/env no-such-interp-42\n", 0755);
	char *missing = xasprintf("%s/missing", tmpdir);
	expect_probe(ok, NULL);
	expect_probe("/bin/true", NULL);
	expect_probe(env_ok, NULL);
	expect_probe(noexec, "not executable");
	expect_probe(noshebang, "neither a binary nor a script");
	expect_probe(badinterp, "interpreter /nonexistent/interp");
	expect_probe(crlf, "carriage return");
	expect_probe(env_bad, "not in PATH");
	expect_probe(missing, "No such file");
	expect_probe(tmpdir, "not a regular file");
	char *all[] = { ok, noexec, noshebang, badinterp, crlf, env_ok, env_bad };
	for (size_t i = 0; i < ARRAY_SIZE(all); i++) {
		unlink(all[i]);
		free(all[i]);
	}
	free(missing);
	rmdir(tmpdir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_encode),       cmocka_unit_test(test_op_names),
		cmocka_unit_test(test_decode_reply), cmocka_unit_test(test_split),
		cmocka_unit_test(test_probe),
	};
	return cmocka_run_group_tests_name("extauth", tests, NULL, NULL);
}
