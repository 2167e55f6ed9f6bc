/*
 * Unit tests for lib/erlterm.c: the options of an ejabberd room as its
 * SQL table keeps them, every kind of term, the escapes, binaries with and
 * without /utf8, and malformed input (each refused with the byte offset):
 * truncated text, improper lists, variables, pids, bad escapes, bytes
 * that are no UTF-8, trailing text, and the depth, term and size bounds.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "lib/erlterm.h"

static struct erlterm *parse_ok(const char *text)
{
	char *err = NULL;
	struct erlterm *t = erlterm_parse(text, strlen(text), NULL, &err);
	if (t == NULL)
		print_error("'%s': %s\n", text, err);
	assert_non_null(t);
	assert_null(err);
	return t;
}

/* text is refused, and the error names the offset at. */
static void parse_bad(const char *text, size_t len, const struct erlterm_limits *lim, const char *at)
{
	char *err = NULL;
	struct erlterm *t = erlterm_parse(text, len, lim, &err);
	assert_null(t);
	assert_non_null(err);
	if (at != NULL && strstr(err, at) == NULL)
		fail_msg("'%s': error '%s' does not say '%s'", text, err, at);
	free(err);
}

static void test_room_options(void **state)
{
	(void)state;
	const char *opts =
	        "[{title,<<\"Team room\">>},\n"
	        " {description,<<\"Caf\xc3\xa9 talk \\\"daily\\\"\"/utf8>>},\n"
	        " {allow_change_subj,true},{max_users,200},{password,<<>>},\n"
	        " {affiliations,[{{<<\"alice\">>,<<\"example.com\">>,<<>>},owner},\n"
	        "                {{<<\"bob\">>,<<\"example.com\">>,<<>>},{member,<<\"a reason\">>}}]},\n"
	        " {subject,[]},{hats_users,#{}},{captcha_whitelist,{0,nil}},\n"
	        " {vcard_xupdate,external}].";
	struct erlterm *t = parse_ok(opts);
	assert_int_equal(t->kind, ERLTERM_LIST);
	assert_string_equal(erlterm_text(erlterm_prop(t, "title")), "Team room");
	assert_string_equal(erlterm_text(erlterm_prop(t, "description")), "Caf\xc3\xa9 talk \"daily\"");
	assert_true(erlterm_is_atom(erlterm_prop(t, "allow_change_subj"), "true"));
	assert_int_equal(erlterm_prop(t, "max_users")->integer, 200);
	assert_int_equal(erlterm_prop(t, "password")->kind, ERLTERM_BINARY);
	assert_int_equal(erlterm_prop(t, "password")->len, 0);
	assert_int_equal(erlterm_prop(t, "hats_users")->kind, ERLTERM_MAP);
	assert_null(erlterm_prop(t, "missing"));
	const struct erlterm *affs = erlterm_prop(t, "affiliations");
	assert_int_equal(affs->n, 2);
	const struct erlterm *a = affs->items[1];
	assert_int_equal(a->kind, ERLTERM_TUPLE);
	assert_string_equal(erlterm_text(a->items[0]->items[0]), "bob");
	assert_true(erlterm_is_atom(a->items[1]->items[0], "member"));
	assert_string_equal(erlterm_text(a->items[1]->items[1]), "a reason");
	char *back = erlterm_format(affs->items[0], 1000);
	assert_string_equal(back, "{{<<\"alice\">>,<<\"example.com\">>,<<>>},owner}");
	free(back);
	erlterm_free(&t);
	assert_null(t);
}

static void test_kinds(void **state)
{
	(void)state;
	struct erlterm *t = parse_ok("{'quoted atom',-42,16#ff,2#101,1_000,3.5e2,\"str\\n\",[],{},#{a => 1},"
	                             "<<1,2,255>>,<<\"ab\",0,\"c\">>,'a\\'b',node@host}");
	assert_int_equal(t->kind, ERLTERM_TUPLE);
	assert_int_equal(t->n, 14);
	assert_true(erlterm_is_atom(t->items[0], "quoted atom"));
	assert_int_equal(t->items[1]->integer, -42);
	assert_int_equal(t->items[2]->integer, 255);
	assert_int_equal(t->items[3]->integer, 5);
	assert_int_equal(t->items[4]->integer, 1000);
	assert_int_equal(t->items[5]->kind, ERLTERM_FLOAT);
	assert_true(t->items[5]->fp == 350.0);
	assert_int_equal(t->items[6]->kind, ERLTERM_STRING);
	assert_string_equal(t->items[6]->text, "str\n");
	assert_int_equal(t->items[7]->kind, ERLTERM_LIST);
	assert_int_equal(t->items[7]->n, 0);
	assert_int_equal(t->items[8]->n, 0);
	assert_int_equal(t->items[9]->n, 2);
	assert_int_equal(t->items[10]->len, 3);
	assert_memory_equal(t->items[10]->text, "\x01\x02\xff", 3);
	assert_int_equal(t->items[11]->len, 4);
	assert_memory_equal(t->items[11]->text, "ab\0c", 4);
	assert_true(erlterm_is_atom(t->items[12], "a'b"));
	assert_true(erlterm_is_atom(t->items[13], "node@host"));
	char *back = erlterm_format(t, 20);
	assert_true(strlen(back) <= 23);
	assert_non_null(strstr(back, "..."));
	free(back);
	erlterm_free(&t);
}

/* Floats are written the way the reader takes them: printf's "1e-08" or
 * "3" is no Erlang float (found by fuzz-erlterm). */
static void test_float_written_back(void **state)
{
	(void)state;
	static const char *const in[] = { "1.0e-8", "3.0", "-2.5e300", "0.1", "1.0e22" };
	static const char *const out[] = { "1.0e-08", "3.0", "-2.5000000000000001e+300",
		                           "0.10000000000000001", "1.0e+22" };
	for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		struct erlterm *t = parse_ok(in[i]);
		char *back = erlterm_format(t, 100);
		assert_string_equal(back, out[i]);
		struct erlterm *again = parse_ok(back);
		assert_true(again->fp == t->fp);
		erlterm_free(&again);
		free(back);
		erlterm_free(&t);
	}
}

static void test_escapes_and_encodings(void **state)
{
	(void)state;
	/* without /utf8 each character is a byte: UTF-8 bytes written as
	 * latin-1 characters come back as the UTF-8 text */
	struct erlterm *t = parse_ok("[<<\"Caf\xc3\x83\xc2\xa9\">>,<<\"\\x{e9}\"/utf8>>,<<\"\\351\">>,"
	                             "\"\\t\\s\\e\\^A\\x41\\101\",<<\"\xe2\x82\xac\"/utf8>>]");
	assert_string_equal(t->items[0]->text, "Caf\xc3\xa9");
	assert_string_equal(t->items[1]->text, "\xc3\xa9");
	assert_int_equal(t->items[2]->len, 1);
	assert_int_equal((unsigned char)t->items[2]->text[0], 0xe9);
	assert_string_equal(t->items[3]->text, "\t \x1b\x01"
	                                       "AA");
	assert_string_equal(t->items[4]->text, "\xe2\x82\xac");
	erlterm_free(&t);
	/* comments and white space */
	t = parse_ok("% options\n[ {a , 1} % one\n ,\t{b,2}\n]\n.\n");
	assert_int_equal(erlterm_prop(t, "b")->integer, 2);
	erlterm_free(&t);
}

static void test_malformed(void **state)
{
	(void)state;
	parse_bad("", 0, NULL, "at byte 0");
	parse_bad("[{title,<<\"x\">>}", 16, NULL, "at byte 16");
	parse_bad("[{title,<<\"x", 12, NULL, "ends inside");
	parse_bad("[1|2]", 5, NULL, "improper");
	parse_bad("{a,B}", 5, NULL, "variable");
	parse_bad("<0.1.0>", 7, NULL, "pid");
	parse_bad("\"\\q\"", 4, NULL, "unknown escape");
	parse_bad("\"\\x{110000}\"", 12, NULL, "\\x{");
	parse_bad("<<\"\\x{100}\">>", 13, NULL, "above 255");
	parse_bad("<<256>>", 7, NULL, "not a byte");
	parse_bad("<<a>>", 5, NULL, "neither");
	parse_bad("<<\"a\"", 5, NULL, ">>");
	parse_bad("\"\xc3\x28\"", 4, NULL, "UTF-8");
	parse_bad("\"\xc0\xaf\"", 4, NULL, "UTF-8");
	parse_bad("[a] b", 5, NULL, "text after");
	parse_bad("[a].x", 5, NULL, "text after");
	parse_bad("{a b}", 5, NULL, "'}' expected");
	parse_bad("#{a}", 4, NULL, "=>");
	parse_bad("#rec{}", 6, NULL, "record");
	parse_bad("99999999999999999999", 20, NULL, "out of range");
	parse_bad("-", 1, NULL, "sign");
	parse_bad("1.0e", 4, NULL, "exponent");
	parse_bad("37#1", 4, NULL, "malformed");
	parse_bad("[a,]", 4, NULL, "unexpected ']'");
	parse_bad("{a,\0}", 5, NULL, "unexpected byte 0x00");
	parse_bad("\"\\^1\"", 5, NULL, "\\^");
	/* no sign after a base (a negated LLONG_MIN overflowed) */
	parse_bad("-16#-8000000000000000", 21, NULL, "");
	parse_bad("16#+1", 5, NULL, "");
	/* \^? is DEL alone, the '?' taken */
	struct erlterm *t = parse_ok("\"\\^?x\"");
	assert_int_equal(t->len, 2);
	assert_memory_equal(t->text, "\x7fx", 2);
	erlterm_free(&t);
}

static void test_limits(void **state)
{
	(void)state;
	/* depth: 64 by default, and as set */
	char deep[400];
	memset(deep, '[', 100);
	memset(deep + 100, ']', 100);
	parse_bad(deep, 200, NULL, "deeper than 64");
	struct erlterm_limits lim = { .max_depth = 3 };
	parse_bad("[[[[]]]]", 8, &lim, "deeper than 3");
	char *err = NULL;
	struct erlterm *t = erlterm_parse("[[[]]]", 6, &lim, &err);
	assert_non_null(t);
	erlterm_free(&t);
	/* terms */
	lim = (struct erlterm_limits){ .max_terms = 4 };
	parse_bad("[1,2,3,4]", 9, &lim, "more than 4 terms");
	t = erlterm_parse("[1,2,3]", 7, &lim, &err);
	assert_non_null(t);
	erlterm_free(&t);
	/* size */
	lim = (struct erlterm_limits){ .max_bytes = 8 };
	parse_bad("<<\"123456\">>", 12, &lim, "more than the 8");
	/* a long flat list within the defaults */
	struct buf b = { 0 };
	buf_append_str(&b, "[");
	for (unsigned i = 0; i < 30000; i++)
		buf_printf(&b, "%s{k,%u}", i > 0 ? "," : "", i);
	buf_append_str(&b, "]");
	t = erlterm_parse(b.data, b.len, NULL, &err);
	assert_non_null(t);
	assert_int_equal(t->n, 30000);
	assert_int_equal(t->items[29999]->items[1]->integer, 29999);
	erlterm_free(&t);
	/* 150,001 terms: over the default bound */
	buf_reset(&b);
	buf_append_str(&b, "[");
	for (unsigned i = 0; i < 50000; i++)
		buf_printf(&b, "%s{k,1}", i > 0 ? "," : "");
	buf_append_str(&b, "]");
	parse_bad(b.data, b.len, NULL, "more than 100000 terms");
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_room_options),
		cmocka_unit_test(test_kinds),
		cmocka_unit_test(test_escapes_and_encodings),
		cmocka_unit_test(test_float_written_back),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_limits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
