/*
 * How server/websocket.c splits what a client stream writes into one
 * message per element (websocket_split_output, also BOSH's): the stream
 * header, each top-level element with the namespace declarations it needs
 * on its own, </stream:stream> and a whitespace keepalive.  Tag ends are
 * found with quoted attribute values skipped, so a '>' inside one does not
 * end a tag.  The framing itself is tested against a running parleyd
 * (tests/integration/test_websocket.py).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "server/websocket.h"

#define CLIENT_DECL " xmlns='jabber:client'"
#define NS_STREAM_DECL " xmlns:stream='http://etherx.jabber.org/streams'"

/* What websocket_split_output handed on, one line per part: its kind's
 * letter (H, E, X for the end, S), then its bytes. */
static void record(void *ctx, enum websocket_out_kind kind, const char *p, size_t len)
{
	static const char letter[] = {
		[WS_OUT_HEADER] = 'H', [WS_OUT_END] = 'X', [WS_OUT_ELEMENT] = 'E', [WS_OUT_SPACE] = 'S'
	};
	struct buf *b = ctx;
	buf_append(b, &letter[kind], 1);
	buf_append(b, p, len);
	buf_append_str(b, "\n");
}

static void check_split(const char *in, const char *want)
{
	struct buf b = { 0 };
	websocket_split_output(in, strlen(in), record, &b);
	buf_append(&b, "", 1);
	assert_string_equal(b.data, want);
	buf_free(&b);
}

static void test_header_elements_end(void **state)
{
	(void)state;
	check_split("<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
	            "xmlns:stream='http://etherx.jabber.org/streams' id='a>b' version='1.0'>"
	            "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>"
	            "<message to='u@h' id=\"x>y\"><body>1 &gt; 0</body></message>"
	            "<iq type='result' id='a/'/>"
	            "</stream:stream>",
	            "H<stream:stream xmlns='jabber:client' "
	            "xmlns:stream='http://etherx.jabber.org/streams' id='a>b' version='1.0'>\n"
	            "E<stream:features" NS_STREAM_DECL
	            "><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>\n"
	            "E<message" CLIENT_DECL " to='u@h' id=\"x>y\"><body>1 &gt; 0</body></message>\n"
	            "E<iq" CLIENT_DECL " type='result' id='a/'/>\n"
	            "X</stream:stream>\n");
}

/* Quoted '>', '<', '/' and the other quote in attribute values, at every
 * depth, and an element nested in one of the same name. */
static void test_quoted_attribute_values(void **state)
{
	(void)state;
	check_split("<message id='1'><x a='>' b=\"'>\"><x c='</x>'/></x></message>"
	            "<presence xmlns='jabber:client' s='/>'/>",
	            "E<message" CLIENT_DECL " id='1'><x a='>' b=\"'>\"><x c='</x>'/></x></message>\n"
	            "E<presence xmlns='jabber:client' s='/>'/>\n");
}

/* A tag or element cut short runs to the end of what was written. */
static void test_unfinished(void **state)
{
	(void)state;
	check_split("<iq id='a'><query", "E<iq" CLIENT_DECL " id='a'><query\n");
	check_split("<iq id='a>", "E<iq" CLIENT_DECL " id='a>\n");
}

static void test_whitespace_is_a_keepalive(void **state)
{
	(void)state;
	check_split(" \r\n", "S \r\n\n");
	check_split(" <r xmlns='urn:xmpp:sm:3'/> ", "E<r xmlns='urn:xmpp:sm:3'/>\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_elements_end),
		cmocka_unit_test(test_quoted_attribute_values),
		cmocka_unit_test(test_unfinished),
		cmocka_unit_test(test_whitespace_is_a_keepalive),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
