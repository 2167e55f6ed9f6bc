/*
 * Unit tests for lib/jid.c: a table of JIDs that must prepare to an
 * exact string or fail with an exact error, then the helpers (prep
 * functions, string forms, comparisons, copies).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "lib/jid.h"

/* Repeat c n times into a malloc'd string. */
static char *rep(char c, size_t n)
{
	char *s = xmalloc(n + 1);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

struct jid_case {
	const char *in;
	const char *want;  /* full string after preparation, or NULL when invalid */
	const char *error; /* the error when invalid */
};

static const struct jid_case cases[] = {
	/* valid */
	{ "juliet@example.com", "juliet@example.com", NULL },
	{ "JULIET@EXAMPLE.COM", "juliet@example.com", NULL },
	{ "juliet@example.com/Balcony", "juliet@example.com/Balcony", NULL },
	{ "Juliet@Example.Com/Balcony Scene", "juliet@example.com/Balcony Scene", NULL },
	{ "juliet@example.com/foo@bar/baz", "juliet@example.com/foo@bar/baz", NULL },
	{ "example.com/a@b", "example.com/a@b", NULL },
	{ "example.com", "example.com", NULL },
	{ "EXAMPLE.com/res", "example.com/res", NULL },
	{ "example.com.", "example.com", NULL },
	{ "juliet@example.com./r", "juliet@example.com/r", NULL },
	{ "localhost", "localhost", NULL },
	{ "\xc3\x89L\xc3\x88VE@example.com", "\xc3\xa9l\xc3\xa8ve@example.com", NULL }, /* ÉLÈVE -> élève */
	{ "stra\xc3\x9f"
	  "e@example.com",
	  "strasse@example.com", NULL }, /* ß -> ss */
	{ "\xce\xa3\xce\x91\xce\xa3@example.com", "\xcf\x83\xce\xb1\xcf\x83@example.com",
	  NULL }, /* ΣΑΣ -> σασ */
	{ "user@B\xc3\x9c"
	  "CHER.example",
	  "user@b\xc3\xbc"
	  "cher.example",
	  NULL }, /* BÜCHER -> bücher */
	{ "user@example\xe3\x80\x82"
	  "com",
	  "user@example.com", NULL }, /* ideographic full stop */
	{ "user@example\xef\xbc\x8e"
	  "com",
	  "user@example.com", NULL },                                               /* fullwidth full stop */
	{ "user@\xef\xbd\x85xample.com", "user@example.com", NULL },                /* fullwidth e */
	{ "user@example.com/\xe2\x99\x9e", "user@example.com/\xe2\x99\x9e", NULL }, /* resource ♞ */
	{ "user@example.com/\xf0\x9f\x98\x80", "user@example.com/\xf0\x9f\x98\x80",
	  NULL }, /* unassigned in 3.2 */
	{ "\xc2\xad"
	  "a@example.com",
	  "a@example.com", NULL }, /* soft hyphen dropped */
	{ "[::1]", "[::1]", NULL },
	{ "user@[2001:db8::1]/r", "user@[2001:db8::1]/r", NULL },
	{ "user@[::ffff:192.0.2.1]", "user@[::ffff:192.0.2.1]", NULL },
	{ "192.168.0.1", "192.168.0.1", NULL },
	{ "user@1.2.3.4/r", "user@1.2.3.4/r", NULL },
	{ "a-b.c-d.example", "a-b.c-d.example", NULL },
	{ "123.example", "123.example", NULL },

	/* invalid */
	{ "", NULL, "JID is empty" },
	{ "@example.com", NULL, "node is empty" },
	{ "user@", NULL, "domain is empty" },
	{ "user@/res", NULL, "domain is empty" },
	{ "/res", NULL, "domain is empty" },
	{ "example.com/", NULL, "resource is empty" },
	{ "user@example.com/", NULL, "resource is empty" },
	{ ".", NULL, "domain is empty" },
	{ "user@.", NULL, "domain is empty" },
	{ "\xc2\xad@example.com", NULL, "node is empty" },
	{ "example.com/\xc2\xad", NULL, "resource is empty" },
	{ "example..com", NULL, "domain has an empty label" },
	{ "example.com..", NULL, "domain has an empty label" },
	{ ".example.com", NULL, "domain has an empty label" },
	{ "a b@example.com", NULL, "node fails nodeprep" },
	{ "a\"b@example.com", NULL, "node fails nodeprep" },
	{ "a&b@example.com", NULL, "node fails nodeprep" },
	{ "a'b@example.com", NULL, "node fails nodeprep" },
	{ "a:b@example.com", NULL, "node fails nodeprep" },
	{ "a<b@example.com", NULL, "node fails nodeprep" },
	{ "a>b@example.com", NULL, "node fails nodeprep" },
	{ "a\xef\xbc\xa0"
	  "b@example.com",
	  NULL, "node fails nodeprep" }, /* fullwidth @ folds to '@' */
	{ "a\xef\xbc\x8f"
	  "b@example.com",
	  NULL, "node fails nodeprep" }, /* fullwidth / folds to '/' */
	{ "a\x01"
	  "b@example.com",
	  NULL, "node fails nodeprep" },
	{ "\xd7\x90"
	  "a@example.com",
	  NULL, "node fails nodeprep" }, /* bidi: RAL and L mixed */
	{ "user@example.com/a\x07"
	  "b",
	  NULL, "resource fails resourceprep" },
	{ "user@example.com/a\xe2\x80\x8e", NULL, "resource fails resourceprep" }, /* LRM */
	{ "user@exa mple.com", NULL, "domain label has a character other than letter, digit or hyphen" },
	{ "user@exa_mple.com", NULL, "domain label has a character other than letter, digit or hyphen" },
	{ "a@b@example.com", NULL, "domain label has a character other than letter, digit or hyphen" },
	{ "user@-example.com", NULL, "domain label starts or ends with a hyphen" },
	{ "user@example-.com", NULL, "domain label starts or ends with a hyphen" },
	{ "user@\xc3\xa9_x.com", NULL, "domain fails IDNA ToASCII" }, /* STD3 rules apply to IDN labels */
	{ "user@\xc3\xa9 x.com", NULL, "domain fails IDNA ToASCII" },
	{ "user@\xc3\xa9-.com", NULL, "domain fails IDNA ToASCII" },
	{ "user@xn--\xc3\xa9.com", NULL, "domain fails IDNA ToASCII" }, /* ACE prefix on a non-ASCII label */
	{ "user@[::g]", NULL, "domain is not a valid IPv6 literal" },
	{ "user@[::1", NULL, "domain is not a valid IPv6 literal" },
	{ "user@[]", NULL, "domain is not a valid IPv6 literal" },
	{ "user@[1.2.3.4]", NULL, "domain is not a valid IPv6 literal" },
	{ "\xff@example.com", NULL, "node is not valid UTF-8" },
	{ "\xc0\xaf@example.com", NULL, "node is not valid UTF-8" }, /* overlong '/' */
	{ "user@exam\xc3ple.com", NULL, "domain is not valid UTF-8" },
	{ "user@example.com/\xed\xa0\x80", NULL, "resource is not valid UTF-8" }, /* surrogate */
	{ "user@example.com/abc\xe2\x82", NULL, "resource is not valid UTF-8" },  /* truncated */
};

static void test_table(void **state)
{
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		const struct jid_case *c = &cases[i];
		struct jid j;
		const char *error = NULL;
		int r = jid_parse(c->in, &j, &error);
		if (c->want != NULL) {
			if (r != 0)
				print_error("case %zu \"%s\": unexpected error %s\n", i, c->in, error);
			assert_int_equal(r, 0);
			char *s = jid_to_string(&j);
			if (strcmp(s, c->want) != 0)
				print_error("case %zu \"%s\": got \"%s\"\n", i, c->in, s);
			assert_string_equal(s, c->want);
			free(s);
			jid_clear(&j);
		} else {
			if (r == 0)
				print_error("case %zu \"%s\": accepted\n", i, c->in);
			assert_int_equal(r, -1);
			if (error == NULL || strcmp(error, c->error) != 0)
				print_error("case %zu \"%s\": error \"%s\"\n", i, c->in, error);
			assert_string_equal(error, c->error);
			/* a failed parse leaves the struct empty */
			assert_null(j.node);
			assert_null(j.domain);
			assert_null(j.resource);
		}
	}
}

static void expect_parse(const char *in, const char *want, const char *want_error)
{
	struct jid j;
	const char *error = NULL;
	int r = jid_parse(in, &j, &error);
	if ((r == 0) != (want != NULL) || (r != 0 && strcmp(error, want_error) != 0))
		print_error("\"%.60s...\" (%zu bytes): %d %s\n", in, strlen(in), r, r == 0 ? "" : error);
	if (want != NULL) {
		assert_int_equal(r, 0);
		char *s = jid_to_string(&j);
		assert_string_equal(s, want);
		free(s);
		jid_clear(&j);
	} else {
		assert_int_equal(r, -1);
		assert_string_equal(error, want_error);
	}
}

static void test_lengths(void **state)
{
	char *a1023 = rep('a', 1023), *a1024 = rep('a', 1024);
	char *in, *want;

	/* node: 1023 bytes after preparation is the limit, uppercase folds */
	char *A1023 = rep('A', 1023);
	in = xasprintf("%s@example.com", A1023);
	want = xasprintf("%s@example.com", a1023);
	expect_parse(in, want, NULL);
	free(in);
	free(want);
	in = xasprintf("%s@example.com", a1024);
	expect_parse(in, NULL, "node too long");
	free(in);
	/* soft hyphens map to nothing: a long input can prepare short */
	struct buf b = { 0 };
	for (int i = 0; i < 600; i++)
		buf_append_str(&b, "\xc2\xad");
	buf_append_str(&b, "x@example.com");
	expect_parse(b.data, "x@example.com", NULL);
	buf_free(&b);
	/* ... but "ß" grows to "ss": 512 of them prepare to 1024 bytes */
	for (int i = 0; i < 512; i++)
		buf_append_str(&b, "\xc3\x9f");
	buf_append_str(&b, "@example.com");
	expect_parse(b.data, NULL, "node too long");
	buf_free(&b);
	/* absurd input is refused before preparation */
	char *huge = rep('a', 9000);
	in = xasprintf("%s@example.com", huge);
	expect_parse(in, NULL, "node too long");
	free(in);
	in = xasprintf("example.com/%s", huge);
	expect_parse(in, NULL, "resource too long");
	free(in);
	free(huge);

	/* resource: case kept, 1023 bytes */
	in = xasprintf("example.com/%s", A1023);
	expect_parse(in, in, NULL);
	free(in);
	in = xasprintf("example.com/%s", a1024);
	expect_parse(in, NULL, "resource too long");
	free(in);

	/* labels: 63 bytes at most */
	char *l63 = rep('x', 63), *l64 = rep('x', 64);
	in = xasprintf("%s.com", l63);
	expect_parse(in, in, NULL);
	free(in);
	in = xasprintf("%s.com", l64);
	expect_parse(in, NULL, "domain label too long");
	free(in);
	/* 61 bytes of UTF-8 whose ACE form has 70 characters */
	char *a56 = rep('a', 56);
	in = xasprintf("%s\xc3\xbc\xe4\xb8\x80.example", a56); /* "aaa...ü一" */
	expect_parse(in, NULL, "domain label too long");
	free(in);
	free(a56);

	/* the domain: 253 characters in ASCII form */
	char *y61 = rep('y', 61);
	in = xasprintf("%s.%s.%s.%s", l63, l63, l63, y61); /* 253 */
	expect_parse(in, in, NULL);
	free(in);
	free(y61);
	char *y62 = rep('y', 62);
	in = xasprintf("%s.%s.%s.%s", l63, l63, l63, y62); /* 254 */
	expect_parse(in, NULL, "domain too long");
	free(in);
	free(y62);
	b = (struct buf){ 0 };
	for (int i = 0; i < 17; i++) {
		buf_append_str(&b, l63);
		buf_append_str(&b, ".");
	}
	buf_append_str(&b, "com"); /* 1091 bytes */
	expect_parse(b.data, NULL, "domain too long");
	buf_free(&b);

	free(l63);
	free(l64);
	free(a1023);
	free(a1024);
	free(A1023);
}

static void test_parts(void **state)
{
	struct jid j;
	const char *error;

	assert_int_equal(jid_parse("Romeo@Example.NET/Orchard/Gate@2", &j, &error), 0);
	assert_string_equal(j.node, "romeo");
	assert_string_equal(j.domain, "example.net");
	assert_string_equal(j.resource, "Orchard/Gate@2");
	assert_false(jid_is_bare(&j));
	char *s = jid_bare_string(&j);
	assert_string_equal(s, "romeo@example.net");
	free(s);
	jid_clear(&j);
	assert_null(j.domain);
	jid_clear(&j); /* twice is harmless */

	assert_int_equal(jid_parse("example.net", &j, &error), 0);
	assert_null(j.node);
	assert_null(j.resource);
	assert_true(jid_is_bare(&j));
	s = jid_bare_string(&j);
	assert_string_equal(s, "example.net");
	free(s);
	jid_clear(&j);

	/* the error pointer is optional */
	assert_int_equal(jid_parse("@x", &j, NULL), -1);
}

static void test_prep_functions(void **state)
{
	char *s;

	s = jid_nodeprep("JuLiEt");
	assert_string_equal(s, "juliet");
	free(s);
	assert_null(jid_nodeprep(""));
	assert_null(jid_nodeprep("a@b"));
	assert_null(jid_nodeprep("a b"));
	assert_null(jid_nodeprep("\xff"));

	s = jid_nameprep("EXAMPLE.COM.");
	assert_string_equal(s, "example.com");
	free(s);
	s = jid_nameprep("[::1]");
	assert_string_equal(s, "[::1]");
	free(s);
	assert_null(jid_nameprep(""));
	assert_null(jid_nameprep("a..b"));
	assert_null(jid_nameprep("exa mple.com"));

	s = jid_resourceprep("Balcony");
	assert_string_equal(s, "Balcony");
	free(s);
	s = jid_resourceprep("a/b@c");
	assert_string_equal(s, "a/b@c");
	free(s);
	assert_null(jid_resourceprep(""));
	assert_null(jid_resourceprep("\x07"));
}

static void test_compare_copy(void **state)
{
	struct jid a, b, c = { 0 };
	const char *error;

	assert_int_equal(jid_parse("JULIET@example.com/Balcony", &a, &error), 0);
	assert_int_equal(jid_parse("juliet@EXAMPLE.com./Balcony", &b, &error), 0);
	assert_true(jid_equal(&a, &b));
	assert_true(jid_bare_equal(&a, &b));
	jid_clear(&b);

	assert_int_equal(jid_parse("juliet@example.com/balcony", &b, &error), 0);
	assert_false(jid_equal(&a, &b)); /* resources keep their case */
	assert_true(jid_bare_equal(&a, &b));
	jid_clear(&b);

	assert_int_equal(jid_parse("juliet@example.com", &b, &error), 0);
	assert_false(jid_equal(&a, &b));
	assert_true(jid_bare_equal(&a, &b));
	jid_clear(&b);

	assert_int_equal(jid_parse("example.com/Balcony", &b, &error), 0);
	assert_false(jid_equal(&a, &b));
	assert_false(jid_bare_equal(&a, &b));
	jid_clear(&b);

	jid_copy(&c, &a);
	assert_true(jid_equal(&a, &c));
	assert_ptr_not_equal(c.node, a.node);
	assert_ptr_not_equal(c.domain, a.domain);
	assert_ptr_not_equal(c.resource, a.resource);
	jid_clear(&c);

	jid_set(&c, NULL, "example.org", NULL);
	char *s = jid_to_string(&c);
	assert_string_equal(s, "example.org");
	free(s);
	assert_true(jid_is_bare(&c));
	jid_clear(&c);

	jid_set(&c, "n", "d", "r");
	s = jid_to_string(&c);
	assert_string_equal(s, "n@d/r");
	free(s);

	struct pool *p = pool_new(256);
	assert_string_equal(jid_to_pool(p, &c), "n@d/r");
	assert_string_equal(jid_bare_to_pool(p, &c), "n@d");
	assert_string_equal(jid_to_pool(p, &a), "juliet@example.com/Balcony");
	pool_unref(&p);
	jid_clear(&c);
	jid_clear(&a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),        cmocka_unit_test(test_lengths),
		cmocka_unit_test(test_parts),        cmocka_unit_test(test_prep_functions),
		cmocka_unit_test(test_compare_copy),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
