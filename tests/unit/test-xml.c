/*
 * Unit tests for lib/xml.c (trees, serialisation) and lib/xmlparser.c
 * (the stream parser): building and escaping, namespaces, parse/serialise
 * round trips, every limit, the refused XML features, broken input, input
 * split at every byte, suspension/resume/restart, compaction and memory
 * accounting, and xml_parse_string (one element from a string).
 *
 * Most parser tests compare a transcript: the events a parser reported,
 * each stanza serialised with the stream's default namespace in scope.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "lib/xml.h"

#define HEADER_CLIENT                                                                           \
	"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' " \
	"to='example.com' version='1.0'>"
#define HEADER HEADER_CLIENT
#define XMLDECL "<?xml version='1.0'?>"

/* ---- building and serialising ------------------------------------------- */

static void assert_serializes(const struct xml_node *el, const char *parent_ns, const char *want)
{
	char *s = xml_to_string(el, parent_ns);
	assert_string_equal(s, want);
	free(s);
}

/* w's head, to escaped and w's tail are what m serialises to with to. */
static void wire_is_serialized(const struct xml_wire *w, struct xml_node *m, const char *to)
{
	xml_set_attr(m, "to", to);
	char *want = xml_to_string(m, "jabber:client");
	struct buf got = { 0 };
	buf_append(&got, w->head.data, w->head.len);
	xml_escape(&got, to, strlen(to), true);
	buf_append(&got, w->tail.data, w->tail.len);
	buf_append(&got, "", 1);
	assert_string_equal(got.data, want);
	buf_free(&got);
	free(want);
}

/* A fan-out copy written from the wire equals the tree serialised with
 * that recipient's address, including addresses that need escaping and a
 * 'to' that is not the first attribute. */
static void test_wire_split_at_to(void **state)
{
	(void)state;
	struct xml_node *m = xml_new("message", "jabber:client");
	xml_set_attr(m, "from", "room@conference.example.com/a'b");
	xml_set_attr(m, "to", "x@example.com/1");
	xml_set_attr(m, "type", "groupchat");
	struct xml_node *body = xml_add_child(m, "body", NULL);
	xml_add_text(body, " to='not this' >", 16);
	struct xml_wire w;
	assert_int_equal(xml_wire_build(&w, m, "jabber:client"), 0);
	const char *rcpts[] = { "x@example.com/1", "y@example.com/<&'\"", "z@example.com" };
	for (size_t i = 0; i < 3; i++)
		wire_is_serialized(&w, m, rcpts[i]);
	xml_wire_free(&w);
	xml_set_attr(m, "to", NULL);
	assert_int_equal(xml_wire_build(&w, m, "jabber:client"), -1);
	xml_wire_free(&w);
	xml_unref(&m);

	/* An attribute before 'to' whose value ends in " to=" (here a
	 * namespace declaration; found by fuzz-xml): the split is at the real
	 * 'to', not inside that value. */
	m = xml_new("message", "h-b to=");
	xml_set_attr(m, "id", "x to=");
	xml_set_attr(m, "to", "x@example.com");
	assert_int_equal(xml_wire_build(&w, m, "jabber:client"), 0);
	wire_is_serialized(&w, m, "y@example.com/'");
	xml_wire_free(&w);
	xml_unref(&m);
}

/* xml_tag_end finds the '>' that ends a tag, not one inside a quoted
 * attribute value of either kind, and says NULL when there is none. */
static void tag_end_is(const char *s, ptrdiff_t want)
{
	const char *end = s + strlen(s);
	const char *got = xml_tag_end(s, end);
	if (want < 0)
		assert_null(got);
	else
		assert_ptr_equal(got, s + want);
}

static void test_tag_end(void **state)
{
	(void)state;
	tag_end_is("<a>", 2);
	tag_end_is("a b='1'>rest>", 7);
	tag_end_is("<a b='x>y' c=\"p>q\">", 18);
	tag_end_is("<a b=\"it's>\">", 12);
	tag_end_is("<a b='say \"hi>\"'/>", 17);
	tag_end_is("<br/>", 4);
	/* none: no '>' at all, only a quoted one, an empty range */
	tag_end_is("<a b='1'", -1);
	tag_end_is("<a b='>'", -1);
	tag_end_is("<a b=\">", -1);
	tag_end_is("", -1);
	/* the range is honoured: a '>' after end is not found */
	const char *s = "<a b='1'>";
	assert_null(xml_tag_end(s, s + 8));
	assert_ptr_equal(xml_tag_end(s, s + 9), s + 8);
}

static void test_build_and_serialize(void **state)
{
	struct xml_node *m = xml_new("message", NS_CLIENT);
	xml_set_attr(m, "to", "juliet@example.com");
	xml_set_attr(m, "type", "chat");
	struct xml_node *body = xml_add_child(m, "body", NULL);
	xml_add_text(body, "a < b & c > d 'q' \"dq\"", 22);
	assert_ptr_equal(body->ns, m->ns);
	assert_serializes(m, NS_CLIENT,
	                  "<message to='juliet@example.com' type='chat'>"
	                  "<body>a &lt; b &amp; c &gt; d 'q' \"dq\"</body></message>");
	assert_serializes(m, NULL,
	                  "<message xmlns='jabber:client' to='juliet@example.com' type='chat'>"
	                  "<body>a &lt; b &amp; c &gt; d 'q' \"dq\"</body></message>");
	xml_unref(&m);
	assert_null(m);
}

static void test_serialize_empty_elements(void **state)
{
	struct xml_node *iq = xml_new("iq", NS_CLIENT);
	xml_add_child(iq, "ping", NS_PING);
	assert_serializes(iq, NS_CLIENT, "<iq><ping xmlns='urn:xmpp:ping'/></iq>");
	struct xml_node *e = xml_new("x", NULL);
	assert_string_equal(e->ns, "");
	assert_serializes(e, NULL, "<x/>");
	assert_serializes(e, "", "<x/>");
	xml_unref(&e);
	xml_unref(&iq);
}

static void test_serialize_namespaces(void **state)
{
	struct xml_node *iq = xml_new("iq", NS_CLIENT);
	struct xml_node *q = xml_add_child(iq, "query", NS_ROSTER);
	struct xml_node *item = xml_add_child(q, "item", NS_ROSTER);
	xml_add_child(item, "group", NULL);
	struct xml_node *bare = xml_add_child(q, "bare", "");
	xml_add_child(bare, "inner", NULL);
	assert_serializes(iq, NS_CLIENT,
	                  "<iq><query xmlns='jabber:iq:roster'><item><group/></item>"
	                  "<bare xmlns=''><inner/></bare></query></iq>");
	/* Inside a jabber:server stream the stanza must carry its namespace. */
	assert_serializes(iq, NS_SERVER,
	                  "<iq xmlns='jabber:client'><query xmlns='jabber:iq:roster'><item><group/></item>"
	                  "<bare xmlns=''><inner/></bare></query></iq>");
	xml_unref(&iq);
}

static void test_serialize_attr_namespaces(void **state)
{
	struct xml_node *m = xml_new("message", NS_CLIENT);
	xml_set_attr(m, "xml:lang", "en");
	assert_string_equal(m->attrs->ns, NS_XML);
	assert_string_equal(xml_attr(m, "xml:lang"), "en");
	assert_serializes(m, NS_CLIENT, "<message xml:lang='en'/>");
	xml_unref(&m);
}

static void test_escape(void **state)
{
	struct buf b = { 0 };
	const char in[] = "<&>'\"\t\n\r x";
	xml_escape(&b, in, sizeof(in) - 1, false);
	assert_string_equal(b.data, "&lt;&amp;&gt;'\"\t\n&#13; x");
	buf_reset(&b);
	xml_escape(&b, in, sizeof(in) - 1, true);
	assert_string_equal(b.data, "&lt;&amp;&gt;&apos;&quot;&#9;&#10;&#13; x");
	buf_reset(&b);
	xml_escape(&b, "plain", 5, true);
	assert_string_equal(b.data, "plain");
	buf_reset(&b);
	xml_escape(&b, "a&b", 2, false); /* the length is honoured */
	assert_string_equal(b.data, "a&amp;");
	buf_reset(&b);
	/* characters XML forbids become U+FFFD; their neighbours stay */
	const char bad[] = "a\0b\x01\x1b[0m\x7f \xef\xbf\xbe\xef\xbf\xbf\xef\xbf\xbd\xef\xbb\xbf\xef\xbf";
	const char *want =
	        "a\xef\xbf\xbd"
	        "b\xef\xbf\xbd\xef\xbf\xbd[0m\x7f \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbb\xbf\xef\xbf";
	xml_escape(&b, bad, sizeof(bad) - 1, false);
	assert_int_equal(b.len, strlen(want));
	assert_memory_equal(b.data, want, b.len);
	buf_reset(&b);
	xml_escape(&b, bad, sizeof(bad) - 1, true);
	assert_memory_equal(b.data, want, b.len);
	buf_reset(&b);
	xml_escape(&b, "\xef\xbf\xbe", 2, false); /* cut: not U+FFFE */
	assert_memory_equal(b.data, "\xef\xbf", 2);
	buf_reset(&b);
	/* a tree with them serialises to XML the parser takes */
	struct xml_node *m = xml_new("message", NS_CLIENT);
	xml_set_attr(m, "id", "x\x02y");
	xml_add_text(xml_add_child(m, "body", NULL), "Ben \xef\xbf\xbe\x0c!", 9);
	assert_serializes(
	        m, NS_CLIENT,
	        "<message id='x\xef\xbf\xbdy'><body>Ben \xef\xbf\xbd\xef\xbf\xbd!</body></message>");
	xml_unref(&m);
	buf_free(&b);
}

static void test_attrs_set_replace_remove(void **state)
{
	struct xml_node *el = xml_new("x", "urn:x");
	xml_set_attr(el, "a", "1");
	xml_set_attr(el, "b", "2");
	xml_set_attr(el, "c", "3");
	xml_set_attr(el, "b", "two");
	assert_serializes(el, NULL, "<x xmlns='urn:x' a='1' b='two' c='3'/>");
	xml_set_attr(el, "a", NULL);
	assert_null(xml_attr(el, "a"));
	xml_set_attr(el, "c", NULL);
	xml_set_attr(el, "missing", NULL);
	assert_serializes(el, "urn:x", "<x b='two'/>");
	xml_set_attr(el, "d", "<'>");
	assert_serializes(el, "urn:x", "<x b='two' d='&lt;&apos;&gt;'/>");
	xml_unref(&el);
}

static void test_text_merge_and_read(void **state)
{
	struct xml_node *el = xml_new("body", NS_CLIENT);
	assert_string_equal(xml_text(el), "");
	xml_add_text(el, "hello", 5);
	xml_add_text(el, ", ", 2);
	xml_add_text(el, "", 0);
	xml_add_text(el, "world!!", 5);
	assert_non_null(el->children);
	assert_ptr_equal(el->children, el->last_child);
	assert_int_equal(el->children->type, XML_TEXT);
	assert_int_equal(el->children->text_len, 12);
	assert_string_equal(xml_text(el), "hello, world");
	xml_add_child(el, "br", NULL);
	xml_add_text(el, " again", 6);
	assert_string_equal(xml_text(el), "hello, world again");
	assert_serializes(el, NS_CLIENT, "<body>hello, world<br/> again</body>");
	xml_unref(&el);
}

static void test_navigation(void **state)
{
	struct xml_node *iq = xml_new("iq", NS_CLIENT);
	struct xml_node *q = xml_add_child(iq, "query", NS_DISCO_INFO);
	xml_add_text(q, " ", 1);
	struct xml_node *id = xml_add_child(q, "identity", NULL);
	struct xml_node *f1 = xml_add_child(q, "feature", NULL);
	struct xml_node *other = xml_add_child(q, "feature", "urn:other");
	struct xml_node *f2 = xml_add_child(q, "feature", NULL);
	struct xml_node *name = xml_add_child(f2, "name", NULL);
	xml_add_text(name, "n", 1);

	assert_true(xml_is(q, "query", NS_DISCO_INFO));
	assert_true(xml_is(q, "query", NULL));
	assert_false(xml_is(q, "query", NS_DISCO_ITEMS));
	assert_false(xml_is(q->children, NULL, NULL)); /* text */
	assert_false(xml_is(NULL, "query", NULL));
	assert_ptr_equal(xml_child(iq, "query", NS_DISCO_INFO), q);
	assert_null(xml_child(iq, "query", NS_DISCO_ITEMS));
	assert_ptr_equal(xml_first_element(q), id);
	assert_ptr_equal(xml_child(q, "feature", NULL), f1);
	assert_ptr_equal(xml_child(q, NULL, "urn:other"), other);
	assert_ptr_equal(xml_next(f1, "feature", NS_DISCO_INFO), f2);
	assert_ptr_equal(xml_next(f1, "feature", NULL), other);
	assert_null(xml_next(f2, NULL, NULL));
	assert_int_equal(xml_element_count(q), 4);
	assert_int_equal(xml_element_count(name), 0);
	assert_string_equal(xml_child_text(f2, "name", NULL), "n");
	assert_null(xml_child_text(f2, "nope", NULL));
	assert_ptr_equal(xml_path(iq, "query/feature"), f1); /* the first of that name */
	assert_null(xml_path(iq, "query/feature/name"));
	assert_ptr_equal(xml_path(f2, "name"), name);
	assert_ptr_equal(xml_path(iq, "query"), q);
	assert_null(xml_path(iq, "query/nothing"));
	assert_null(xml_path(iq, "quer"));
	xml_unref(&iq);
}

static void test_remove(void **state)
{
	struct xml_node *r = xml_new("r", NULL);
	struct xml_node *a = xml_add_child(r, "a", NULL);
	struct xml_node *b = xml_add_child(r, "b", NULL);
	struct xml_node *c = xml_add_child(r, "c", NULL);
	xml_remove(b);
	assert_null(b->parent);
	assert_serializes(r, NULL, "<r><a/><c/></r>");
	xml_remove(c);
	assert_ptr_equal(r->last_child, a);
	struct xml_node *d = xml_add_child(r, "d", NULL);
	assert_serializes(r, NULL, "<r><a/><d/></r>");
	xml_remove(a);
	assert_ptr_equal(r->children, d);
	xml_remove(d);
	assert_null(r->children);
	assert_null(r->last_child);
	assert_serializes(r, NULL, "<r/>");
	xml_remove(r); /* a root: nothing happens */
	xml_unref(&r);
}

static void test_copy_is_independent(void **state)
{
	struct xml_node *m = xml_new("message", NS_CLIENT);
	xml_set_attr(m, "to", "a@b");
	xml_set_attr(m, "xml:lang", "de");
	xml_add_text(xml_add_child(m, "body", NULL), "hi & bye", 8);
	xml_add_child(m, "x", "urn:x");
	struct xml_node *c = xml_copy(m);
	assert_ptr_not_equal(c->pool, m->pool);
	char *before = xml_to_string(m, NS_CLIENT);
	xml_unref(&m); /* the copy must not point into the freed pool */
	assert_serializes(c, NS_CLIENT, before);
	assert_null(c->parent);
	xml_set_attr(c, "to", "changed");
	assert_string_equal(xml_attr(c, "to"), "changed");
	free(before);
	xml_unref(&c);
}

static void test_append_copy(void **state)
{
	struct xml_node *src = xml_new("delay", NS_DELAY);
	xml_set_attr(src, "stamp", "2002-09-10T23:08:25Z");
	xml_add_text(src, "Offline", 7);
	struct xml_node *m = xml_new("message", NS_CLIENT);
	xml_add_child(m, "body", NULL);
	struct xml_node *cp = xml_append_copy(m, src);
	assert_ptr_equal(cp->parent, m);
	assert_ptr_equal(m->last_child, cp);
	assert_ptr_equal(cp->pool, m->pool);
	xml_unref(&src);
	assert_serializes(m, NS_CLIENT,
	                  "<message><body/><delay xmlns='urn:xmpp:delay' stamp='2002-09-10T23:08:25Z'>"
	                  "Offline</delay></message>");
	/* Copying within the same tree. */
	xml_append_copy(m, m->children);
	assert_int_equal(xml_element_count(m), 3);
	xml_unref(&m);
}

static void test_ref_unref(void **state)
{
	struct xml_node *m = xml_new("presence", NS_CLIENT);
	struct xml_node *child = xml_add_child(m, "show", NULL);
	struct xml_node *shared = m;
	xml_ref(m);
	xml_unref(&child); /* a reference through any node of the tree */
	assert_null(child);
	assert_serializes(shared, NS_CLIENT, "<presence><show/></presence>");
	xml_unref(&shared);
	struct xml_node *none = NULL;
	xml_unref(&none);
}

/* ---- the parser: a transcript of events ---------------------------------- */

struct sink {
	struct buf log;
	char default_ns[128];
	unsigned stanzas;
	bool suspend_all;
	const char *suspend_on; /* suspend after stanzas with this name */
};

static void on_stream_start(void *ctx, struct xml_node *header, const char *default_ns)
{
	struct sink *s = ctx;
	assert_true(xml_is(header, "stream", NS_STREAM));
	assert_null(header->children);
	snprintf(s->default_ns, sizeof(s->default_ns), "%s", default_ns);
	buf_printf(&s->log, "START(%s)", default_ns);
	for (const struct xml_attr *a = header->attrs; a != NULL; a = a->next)
		buf_printf(&s->log, "[%s=%s]", a->name, a->value);
	buf_append_str(&s->log, "\n");
	xml_unref(&header);
}

static bool on_stanza(void *ctx, struct xml_node *stanza)
{
	struct sink *s = ctx;
	assert_null(stanza->parent);
	s->stanzas++;
	xml_serialize(&s->log, stanza, s->default_ns);
	buf_append_str(&s->log, "\n");
	bool suspend = s->suspend_all || (s->suspend_on != NULL && strcmp(stanza->name, s->suspend_on) == 0);
	xml_unref(&stanza);
	return suspend;
}

static void on_stream_end(void *ctx)
{
	struct sink *s = ctx;
	buf_append_str(&s->log, "END\n");
}

static const struct xml_parser_callbacks sink_cbs = {
	.stream_start = on_stream_start,
	.stanza = on_stanza,
	.stream_end = on_stream_end,
};

static struct xml_parser *sink_parser(struct sink *s, const struct xml_parser_limits *limits)
{
	memset(s, 0, sizeof(*s));
	return xml_parser_new(limits, &sink_cbs, s);
}

static const char *transcript(struct sink *s)
{
	return s->log.data != NULL ? s->log.data : "";
}

/* Parse input in one piece; return the transcript (malloc'd) and the result. */
static char *parse_all(const char *input, size_t len, const struct xml_parser_limits *limits,
                       enum xml_feed_result *r_r, enum xml_parse_error *e_r)
{
	struct sink s;
	struct xml_parser *p = sink_parser(&s, limits);
	enum xml_feed_result r = xml_parser_feed(p, input, len);
	if (r_r != NULL)
		*r_r = r;
	if (e_r != NULL)
		*e_r = xml_parser_error(p);
	xml_parser_free(&p);
	assert_null(p);
	return buf_steal(&s.log);
}

static void assert_parse_error(const char *input, const struct xml_parser_limits *limits,
                               enum xml_parse_error want)
{
	size_t len = strlen(input);
	enum xml_feed_result r;
	enum xml_parse_error e;
	free(parse_all(input, len, limits, &r, &e));
	if (r != XML_FEED_ERROR || e != want)
		fail_msg("input %s: result %d, error %d, want error %d", input, r, e, want);

	/* The same verdict when the bytes come one at a time. */
	struct sink s;
	struct xml_parser *p = sink_parser(&s, limits);
	r = XML_FEED_OK;
	for (size_t i = 0; i < len && r == XML_FEED_OK; i++)
		r = xml_parser_feed(p, input + i, 1);
	if (r != XML_FEED_ERROR || xml_parser_error(p) != want)
		fail_msg("input %s byte by byte: result %d, error %d, want %d", input, r, xml_parser_error(p),
		         want);
	assert_string_not_equal(xml_parser_error_text(p), "no error");
	/* Errors are final. */
	assert_int_equal(xml_parser_feed(p, " ", 1), XML_FEED_ERROR);
	xml_parser_free(&p);
	buf_free(&s.log);
}

static void assert_parses_to(const char *input, const char *want)
{
	enum xml_feed_result r;
	char *got = parse_all(input, strlen(input), NULL, &r, NULL);
	assert_int_equal(r, XML_FEED_OK);
	assert_string_equal(got, want);
	free(got);
}

#define START_CLIENT "START(jabber:client)[to=example.com][version=1.0]\n"

static void test_parse_header(void **state)
{
	assert_parses_to(HEADER, START_CLIENT);
	assert_parses_to(XMLDECL "\n" HEADER, START_CLIENT);
	assert_parses_to("<?xml version='1.0' encoding='UTF-8'?>"
	                 "<s:stream xmlns:s='http://etherx.jabber.org/streams' xmlns='jabber:server' "
	                 "xml:lang='en' from='a.example' id='x&amp;y'>",
	                 "START(jabber:server)[xml:lang=en][from=a.example][id=x&y]\n");
	/* No default namespace declared. */
	assert_parses_to("<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>", "START()\n");
}

static void test_parse_round_trip(void **state)
{
	static const char *const stanzas[] = {
		"<message to='juliet@example.com' type='chat' id='m1' xml:lang='en'>"
		"<body>Hi &amp; &lt;bye&gt; 'q' \"dq\"</body>"
		"<active xmlns='http://jabber.org/protocol/chatstates'/></message>",
		"<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>",
		"<iq type='set' id='r2'><query xmlns='jabber:iq:roster'><item jid='a@b' "
		"name='&lt;A&apos;s&gt;'>"
		"<group>Friends</group></item></query></iq>",
		"<presence/>",
		"<presence><show>away</show><status>caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80</status>"
		"<x xmlns='urn:unknown:ns'><y><z xmlns=''/></y></x></presence>",
		"<message><body>line1\nline2\ttab &#13;cr</body></message>",
		"<message xmlns='jabber:server'><body/></message>",
	};
	for (size_t i = 0; i < ARRAY_SIZE(stanzas); i++) {
		struct buf in = { 0 }, want = { 0 };
		buf_printf(&in, HEADER "%s", stanzas[i]);
		buf_printf(&want, START_CLIENT "%s\n", stanzas[i]);
		assert_parses_to(in.data, want.data);
		buf_free(&in);
		buf_free(&want);
	}
}

static void test_parse_normalises(void **state)
{
	/* Prefixes are resolved, character references and CDATA become text,
	 * quotes and empty-element forms are normalised, whitespace between
	 * stanzas is dropped. */
	assert_parses_to(HEADER
	                 "\n <message to=\"a@b\"><body>&#x41;&#66;<![CDATA[<x>&]]></body></message>\n\t "
	                 "<iq><p:query xmlns:p='jabber:iq:roster'><p:item/></p:query></iq>"
	                 "<iq><jabber:client-child xmlns:jabber='urn:j'/></iq>"
	                 "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'></bind>"
	                 "</stream:features>\r\n</stream:stream>\n",
	                 START_CLIENT "<message to='a@b'><body>AB&lt;x&gt;&amp;</body></message>\n"
	                              "<iq><query xmlns='jabber:iq:roster'><item/></query></iq>\n"
	                              "<iq><client-child xmlns='urn:j'/></iq>\n"
	                              "<features xmlns='http://etherx.jabber.org/streams'>"
	                              "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></features>\n"
	                              "END\n");
}

static void test_parse_attr_namespaces(void **state)
{
	/* Namespaced attributes get generated prefixes, declared once each. */
	const char *out = START_CLIENT
	        "<message to='a@b' xml:lang='fr'><x xmlns='jabber:x:data' xmlns:ns0='urn:q' ns0:a='1' b='2' "
	        "xmlns:ns1='urn:r' ns1:c='3' ns0:d='4'/></message>\n";
	assert_parses_to(HEADER "<message to='a@b' xml:lang='fr'><x xmlns='jabber:x:data' xmlns:q='urn:q' "
	                        "xmlns:r='urn:r' q:a='1' b='2' r:c='3' q:d='4'/></message>",
	                 out);
	/* Our own output parses back to the same tree. */
	const char *again = strchr(out, '\n') + 1;
	struct buf in = { 0 };
	buf_printf(&in, HEADER "%.*s", (int)(strlen(again) - 1), again);
	assert_parses_to(in.data, out);
	buf_free(&in);
}

/* A stanza callback that keeps the last stanza for inspection. */
static bool keep_stanza(void *ctx, struct xml_node *stanza)
{
	struct xml_node **keep = ctx;
	if (*keep != NULL)
		xml_unref(keep);
	*keep = stanza;
	return false;
}

static void drop_header(void *ctx, struct xml_node *header, const char *default_ns)
{
	xml_unref(&header);
}

static void test_parse_tree_fields(void **state)
{
	struct xml_node *st = NULL;
	struct xml_parser_callbacks cbs = { .stream_start = drop_header, .stanza = keep_stanza };
	struct xml_parser *p = xml_parser_new(NULL, &cbs, &st);
	const char *in = HEADER "<message to='a@b' xml:lang='fr'><body>one<b/>two</body>"
	                        "<x xmlns='jabber:x:data' xmlns:q='urn:q' q:attr='v' attr='w'/></message>";
	assert_int_equal(xml_parser_feed(p, in, strlen(in)), XML_FEED_OK);
	xml_parser_free(&p);
	assert_non_null(st);
	assert_true(xml_is(st, "message", NS_CLIENT));
	assert_string_equal(xml_attr(st, "to"), "a@b");
	assert_string_equal(xml_attr(st, "xml:lang"), "fr");
	assert_null(xml_attr(st, "lang"));
	struct xml_node *body = xml_child(st, "body", NS_CLIENT);
	assert_non_null(body);
	assert_ptr_equal(body->ns, st->ns);
	assert_string_equal(xml_text(body), "onetwo");
	assert_int_equal(xml_element_count(body), 1);
	struct xml_node *x = xml_child(st, "x", NS_DATA_FORMS);
	assert_non_null(x);
	assert_string_equal(xml_attr(x, "attr"), "w");
	const struct xml_attr *qa = x->attrs;
	assert_string_equal(qa->name, "attr");
	assert_string_equal(qa->ns, "urn:q");
	assert_string_equal(qa->value, "v");
	/* The tree outlives the parser and is freed with its pool. */
	xml_unref(&st);
}

/* ---- limits ---------------------------------------------------------------- */

static void test_limit_stanza_size(void **state)
{
	struct xml_parser_limits lim = { .max_stanza = 100 };
	/* Exactly 100 bytes is fine, 101 is not. */
	char stanza[101];
	const char *head = "<message><body>", *tail = "</body></message>";
	size_t fill = 100 - strlen(head) - strlen(tail);
	snprintf(stanza, sizeof(stanza), "%s%0*d%s", head, (int)fill, 0, tail);
	assert_int_equal(strlen(stanza), 100);
	struct buf in = { 0 };
	buf_printf(&in, HEADER "%s", stanza);
	enum xml_feed_result r;
	free(parse_all(in.data, in.len, &lim, &r, NULL));
	assert_int_equal(r, XML_FEED_OK);
	buf_reset(&in);
	buf_printf(&in, HEADER "<message><body>%0*d</body></message>", (int)fill + 1, 0);
	assert_parse_error(in.data, &lim, XML_PARSE_POLICY);
	/* Many small stanzas are not one big one. */
	buf_reset(&in);
	buf_append_str(&in, HEADER);
	for (int i = 0; i < 50; i++)
		buf_append_str(&in, "<presence/> ");
	free(parse_all(in.data, in.len, &lim, &r, NULL));
	assert_int_equal(r, XML_FEED_OK);
	buf_free(&in);
}

static void test_limit_unfinished_start_tag(void **state)
{
	/* A start tag that never ends must not be buffered without bound. */
	struct xml_parser_limits lim = { .max_stanza = 1000 };
	struct sink s;
	struct xml_parser *p = sink_parser(&s, &lim);
	assert_int_equal(xml_parser_feed(p, HEADER "<message a='", strlen(HEADER) + 12), XML_FEED_OK);
	char chunk[100];
	memset(chunk, 'x', sizeof(chunk));
	enum xml_feed_result r = XML_FEED_OK;
	int n = 0;
	while (r == XML_FEED_OK && n < 1000) {
		r = xml_parser_feed(p, chunk, sizeof(chunk));
		n++;
	}
	assert_int_equal(r, XML_FEED_ERROR);
	assert_int_equal(xml_parser_error(p), XML_PARSE_POLICY);
	assert_true(n <= 11);
	xml_parser_free(&p);
	buf_free(&s.log);

	/* The same for an endless header or text between stanzas. */
	p = sink_parser(&s, &lim);
	assert_int_equal(xml_parser_feed(p, "<stream:stream a='", 18), XML_FEED_OK);
	r = XML_FEED_OK;
	for (n = 0; r == XML_FEED_OK && n < 1000; n++)
		r = xml_parser_feed(p, chunk, sizeof(chunk));
	assert_int_equal(xml_parser_error(p), XML_PARSE_POLICY);
	xml_parser_free(&p);
	buf_free(&s.log);
}

static void test_limit_huge_chunk(void **state)
{
	/* One big read with a giant attribute value. */
	struct xml_parser_limits lim = { .max_stanza = 4096 };
	size_t n = 3 * 1024 * 1024;
	char *in = xmalloc(n + 1);
	size_t h = strlen(HEADER "<message a='");
	memcpy(in, HEADER "<message a='", h);
	memset(in + h, 'y', n - h);
	in[n] = '\0';
	enum xml_feed_result r;
	enum xml_parse_error e;
	free(parse_all(in, n, &lim, &r, &e));
	assert_int_equal(r, XML_FEED_ERROR);
	assert_int_equal(e, XML_PARSE_POLICY);
	free(in);
}

static void test_limit_depth(void **state)
{
	struct xml_parser_limits lim = { .max_depth = 5 };
	/* message is level 1 below the stream; five levels are fine. */
	assert_parses_to(HEADER "<a><b><c><d><e/></d></c></b></a>",
	                 START_CLIENT "<a><b><c><d><e/></d></c></b></a>\n");
	enum xml_feed_result r;
	free(parse_all(HEADER "<a><b><c><d><e/></d></c></b></a>", strlen(HEADER) + 32, &lim, &r, NULL));
	assert_int_equal(r, XML_FEED_OK);
	assert_parse_error(HEADER "<a><b><c><d><e><f/></e></d></c></b></a>", &lim, XML_PARSE_POLICY);
	/* The default is 64. */
	struct buf in = { 0 };
	buf_append_str(&in, HEADER);
	for (int i = 0; i < 65; i++)
		buf_append_str(&in, "<x>");
	assert_parse_error(in.data, NULL, XML_PARSE_POLICY);
	buf_free(&in);
}

static void test_limit_attrs(void **state)
{
	struct xml_parser_limits lim = { .max_attrs = 3 };
	enum xml_feed_result r;
#undef HEADER
#define HEADER "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>"
	const char *ok = HEADER "<message a='1' b='2' c='3'><x xmlns='urn:x' d='1' e='2'/></message>";
	free(parse_all(ok, strlen(ok), &lim, &r, NULL));
	assert_int_equal(r, XML_FEED_OK);
	assert_parse_error(HEADER "<message a='1' b='2' c='3' d='4'/>", &lim, XML_PARSE_POLICY);
	/* Namespace declarations are attributes too. */
	assert_parse_error(HEADER "<message a='1' b='2' xmlns:p='urn:p' xmlns='urn:q'/>", &lim,
	                   XML_PARSE_POLICY);
	assert_parse_error(HEADER "<message><x a='1' b='2' c='3' d='4'/></message>", &lim, XML_PARSE_POLICY);
#undef HEADER
#define HEADER HEADER_CLIENT
	/* The header counts too (it has 4 here). */
	assert_parse_error(HEADER, &lim, XML_PARSE_POLICY);
}

/* ---- refused features ------------------------------------------------------ */

static void test_restricted_doctype(void **state)
{
	assert_parse_error("<!DOCTYPE stream:stream>" HEADER, NULL, XML_PARSE_RESTRICTED);
	assert_parse_error(XMLDECL "<!DOCTYPE s SYSTEM 'http://example.com/x.dtd'>" HEADER, NULL,
	                   XML_PARSE_RESTRICTED);
	assert_parse_error("<!DOCTYPE s [<!ENTITY x 'y'>]>" HEADER, NULL, XML_PARSE_RESTRICTED);
}

static void test_restricted_billion_laughs(void **state)
{
	assert_parse_error(XMLDECL
	                   "<!DOCTYPE lolz [<!ENTITY lol 'lol'>"
	                   "<!ENTITY lol1 '&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>"
	                   "<!ENTITY lol2 '&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;'>"
	                   "<!ENTITY lol3 '&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;'>]>"
	                   "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>"
	                   "<message><body>&lol3;</body></message>",
	                   NULL, XML_PARSE_RESTRICTED);
}

static void test_restricted_entity_reference(void **state)
{
	assert_parse_error(HEADER "<message><body>&foo;</body></message>", NULL, XML_PARSE_RESTRICTED);
	assert_parse_error(HEADER "<message to='&foo;'/>", NULL, XML_PARSE_RESTRICTED);
	/* The five predefined ones and character references are fine. */
	assert_parses_to(HEADER "<m a='&quot;&apos;'>&lt;&gt;&amp;&quot;&apos;&#233;&#x20AC;</m>",
	                 START_CLIENT "<m a='&quot;&apos;'>&lt;&gt;&amp;\"'\xc3\xa9\xe2\x82\xac</m>\n");
}

static void test_restricted_comment(void **state)
{
	assert_parse_error("<!-- hello -->" HEADER, NULL, XML_PARSE_RESTRICTED);
	assert_parse_error(HEADER "<!-- between -->", NULL, XML_PARSE_RESTRICTED);
	assert_parse_error(HEADER "<message><!-- inside --></message>", NULL, XML_PARSE_RESTRICTED);
}

static void test_restricted_pi(void **state)
{
	assert_parse_error("<?foo bar?>" HEADER, NULL, XML_PARSE_RESTRICTED);
	assert_parse_error(HEADER "<?foo bar?>", NULL, XML_PARSE_RESTRICTED);
	assert_parse_error(HEADER "<message><?foo?></message>", NULL, XML_PARSE_RESTRICTED);
}

/* ---- broken input ------------------------------------------------------------ */

static void test_not_well_formed(void **state)
{
	static const char *const bad[] = {
		HEADER "<message></iq>",
		HEADER "<message><body></message>",
		HEADER "<message a='1' a='2'/>",
		HEADER "<message a='<'/>",
		HEADER "<message a=1/>",
		HEADER "<message>&#0;</message>",
		HEADER "<message>&#xD800;</message>",
		HEADER "<message>\x01</message>",
		HEADER "<message>&amp</message>",
		HEADER "<p:message/>", /* undeclared prefix */
		HEADER "<message p:a='1'/>",
		HEADER "<message xmlns:p='urn:p' p:a='1' xmlns:q='urn:p' q:a='2'/>",
		HEADER "hello", /* text between stanzas */
		HEADER "<presence/>x<presence/>",
		HEADER "</stream:stream><presence/>",
		HEADER "<message><?xml version='1.0'?></message>",
		"<stream:stream xmlns:stream='http://etherx.jabber.org/streams'></stream:streamx>",
		"hello ",
		"<1",
		"<<",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		assert_parse_error(bad[i], NULL, XML_PARSE_NOT_WELL_FORMED);
}

static void test_bad_utf8(void **state)
{
	static const char *const bad[] = {
		"\xc0\x80", /* overlong NUL */
		"\xc1\xbf",
		"\xe0\x80\xaf",     /* overlong '/' */
		"\xed\xa0\x80",     /* surrogate */
		"\xf4\x90\x80\x80", /* > U+10FFFF */
		"\x80",             /* lone continuation */
		"\xfe",
		"\xff",
		"\xc3\x28",
		"\xef\xbf\xbe", /* U+FFFE: not an XML character */
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct buf in = { 0 };
		buf_printf(&in, HEADER "<message><body>a%sb</body></message>", bad[i]);
		assert_parse_error(in.data, NULL, XML_PARSE_NOT_WELL_FORMED);
		buf_reset(&in);
		buf_printf(&in, HEADER "<message to='a%sb'/>", bad[i]);
		assert_parse_error(in.data, NULL, XML_PARSE_NOT_WELL_FORMED);
		buf_reset(&in);
		buf_printf(&in, HEADER "<mess%sage/>", bad[i]);
		assert_parse_error(in.data, NULL, XML_PARSE_NOT_WELL_FORMED);
		buf_free(&in);
	}
	/* A declared foreign encoding does not turn bytes into something else,
	 * and UTF-16 is not UTF-8. */
	static const char *const utf16[] = { "\xff\xfe<\0s\0t\0", "\xfe\xff\0<\0s\0t", "<\0s\0t\0",
		                             "\0<\0s\0t" };
	for (size_t i = 0; i < ARRAY_SIZE(utf16); i++) {
		enum xml_feed_result r;
		enum xml_parse_error e;
		free(parse_all(utf16[i], 8, NULL, &r, &e));
		assert_int_equal(r, XML_FEED_ERROR);
		assert_int_equal(e, XML_PARSE_NOT_WELL_FORMED);
	}
	assert_parse_error("<?xml version='1.0' encoding='ISO-8859-1'?>"
	                   "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'><a>\xe9</a>",
	                   NULL, XML_PARSE_BAD_ENCODING);
	assert_parse_error("<?xml version='1.0' encoding='UTF-16'?>"
	                   "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>",
	                   NULL, XML_PARSE_BAD_ENCODING);
	/* UTF-8 in any letter case is fine. */
	assert_parses_to("<?xml version='1.0' encoding='utf-8'?>"
	                 "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'><a>\xc3\xa9</a>",
	                 "START()\n<a>\xc3\xa9</a>\n");
	/* A UTF-8 byte order mark is fine. */
	assert_parses_to(
	        "\xef\xbb\xbf<stream:stream xmlns:stream='http://etherx.jabber.org/streams'><a>\xc3\xa9</a>",
	        "START()\n<a>\xc3\xa9</a>\n");
}

static void test_bad_stream_namespace(void **state)
{
	assert_parse_error("<stream:stream xmlns:stream='http://etherx.jabber.org/streamz'>", NULL,
	                   XML_PARSE_BAD_NAMESPACE);
	assert_parse_error("<stream xmlns='jabber:client'>", NULL, XML_PARSE_BAD_NAMESPACE);
	assert_parse_error("<stream:strem xmlns:stream='http://etherx.jabber.org/streams'>", NULL,
	                   XML_PARSE_BAD_NAMESPACE);
	assert_parse_error("<message/>", NULL, XML_PARSE_BAD_NAMESPACE);
}

/* ---- input split anywhere -------------------------------------------------- */

static const char session[] = XMLDECL
        "\n" HEADER "\n"
        "<message to='juliet@example.com' type='chat' id='a1'><body>caf\xc3\xa9 &amp; \xf0\x9f\x98\x80 "
        "&lt;3</body><thread>t1</thread></message>"
        "  \n"
        "<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>"
        "<presence><status><![CDATA[x<y]]></status></presence>\r\n"
        "<message xml:lang='en'><body>a\r\nb</body></message>"
        "</stream:stream>";

static const char session_transcript[] = START_CLIENT
        "<message to='juliet@example.com' type='chat' id='a1'><body>caf\xc3\xa9 &amp; \xf0\x9f\x98\x80 "
        "&lt;3</body><thread>t1</thread></message>\n"
        "<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>\n"
        "<presence><status>x&lt;y</status></presence>\n"
        "<message xml:lang='en'><body>a\nb</body></message>\n"
        "END\n";

/* Whether s[0..i] ends with tag.  (Not inlined: GCC's bounds warning
 * cannot follow the length check.) */
static __attribute__((noinline)) bool ends_at(const char *s, size_t i, const char *tag)
{
	size_t n = strlen(tag);
	return i + 1 >= n && strncmp(s + i + 1 - n, tag, n) == 0;
}

static void test_split_in_two_everywhere(void **state)
{
	size_t len = sizeof(session) - 1;
	for (size_t i = 0; i <= len; i++) {
		struct sink s;
		struct xml_parser *p = sink_parser(&s, NULL);
		assert_int_equal(xml_parser_feed(p, session, i), XML_FEED_OK);
		assert_int_equal(xml_parser_feed(p, session + i, len - i), XML_FEED_OK);
		if (strcmp(transcript(&s), session_transcript) != 0)
			fail_msg("split at %zu:\n%s", i, transcript(&s));
		xml_parser_free(&p);
		buf_free(&s.log);
	}
}

static void test_split_byte_by_byte(void **state)
{
	struct sink s;
	struct xml_parser *p = sink_parser(&s, NULL);
	for (size_t i = 0; i < sizeof(session) - 1; i++) {
		assert_int_equal(xml_parser_feed(p, session + i, 1), XML_FEED_OK);
		/* Stanzas are reported as soon as their last byte is in. */
		if (ends_at(session, i, "</message>"))
			assert_true(s.stanzas > 0);
	}
	assert_string_equal(transcript(&s), session_transcript);
	xml_parser_free(&p);
	buf_free(&s.log);
}

static void test_stanza_reported_at_its_last_byte(void **state)
{
	struct sink s;
	struct xml_parser *p = sink_parser(&s, NULL);
	assert_int_equal(xml_parser_feed(p, HEADER, strlen(HEADER)), XML_FEED_OK);
	const char *st = "<message><body>hello</body></message>";
	size_t n = strlen(st);
	assert_int_equal(xml_parser_feed(p, st, n - 1), XML_FEED_OK);
	assert_int_equal(s.stanzas, 0);
	assert_int_equal(xml_parser_feed(p, st + n - 1, 1), XML_FEED_OK);
	assert_int_equal(s.stanzas, 1);
	/* A big stanza arriving in small pieces: no deferral at the end. */
	struct buf big = { 0 };
	buf_append_str(&big, "<message><body>");
	for (int i = 0; i < 5000; i++)
		buf_append_str(&big, "0123456789");
	buf_append_str(&big, "</body></message>");
	size_t off = 0;
	while (off + 1 < big.len) {
		size_t k = big.len - 1 - off < 1000 ? big.len - 1 - off : 1000;
		assert_int_equal(xml_parser_feed(p, big.data + off, k), XML_FEED_OK);
		off += k;
	}
	assert_int_equal(s.stanzas, 1);
	assert_int_equal(xml_parser_feed(p, big.data + off, 1), XML_FEED_OK);
	assert_int_equal(s.stanzas, 2);
	buf_free(&big);
	xml_parser_free(&p);
	buf_free(&s.log);
}

/* ---- suspension --------------------------------------------------------- */

static void test_suspend_and_resume(void **state)
{
	struct sink s;
	struct xml_parser *p = sink_parser(&s, NULL);
	s.suspend_all = true;
	const char *in = HEADER "<a/><b/> <c/><d";
	assert_int_equal(xml_parser_feed(p, in, strlen(in)), XML_FEED_SUSPENDED);
	assert_true(xml_parser_suspended(p));
	assert_string_equal(transcript(&s), START_CLIENT "<a/>\n");
	/* Suspended: no compaction. */
	assert_false(xml_parser_compact(p));
	assert_int_equal(xml_parser_resume(p), XML_FEED_SUSPENDED);
	assert_string_equal(transcript(&s), START_CLIENT "<a/>\n<b/>\n");
	assert_int_equal(xml_parser_resume(p), XML_FEED_SUSPENDED);
	assert_string_equal(transcript(&s), START_CLIENT "<a/>\n<b/>\n<c/>\n");
	/* The rest is a partial stanza: resuming consumes it all. */
	assert_int_equal(xml_parser_resume(p), XML_FEED_OK);
	assert_false(xml_parser_suspended(p));
	s.suspend_all = false;
	assert_int_equal(xml_parser_feed(p, "/>", 2), XML_FEED_OK);
	assert_string_equal(transcript(&s), START_CLIENT "<a/>\n<b/>\n<c/>\n<d/>\n");
	/* Resuming when not suspended is harmless. */
	assert_int_equal(xml_parser_resume(p), XML_FEED_OK);
	xml_parser_free(&p);
	buf_free(&s.log);
}

static void test_suspend_on_last_byte(void **state)
{
	struct sink s;
	struct xml_parser *p = sink_parser(&s, NULL);
	s.suspend_all = true;
	const char *in = HEADER "<a/>";
	assert_int_equal(xml_parser_feed(p, in, strlen(in)), XML_FEED_SUSPENDED);
	assert_int_equal(xml_parser_resume(p), XML_FEED_OK);
	assert_int_equal(xml_parser_feed(p, "<b/>", 4), XML_FEED_SUSPENDED);
	assert_int_equal(xml_parser_resume(p), XML_FEED_OK);
	assert_string_equal(transcript(&s), START_CLIENT "<a/>\n<b/>\n");
	xml_parser_free(&p);
	buf_free(&s.log);
}

static void test_feed_while_suspended_keeps_order(void **state)
{
	struct sink s;
	struct xml_parser *p = sink_parser(&s, NULL);
	s.suspend_on = "a";
	const char *in = HEADER "<a/><b/><c";
	assert_int_equal(xml_parser_feed(p, in, strlen(in)), XML_FEED_SUSPENDED);
	/* More bytes while suspended are queued behind the kept ones. */
	assert_int_equal(xml_parser_feed(p, "/><a/><d/>", 10), XML_FEED_SUSPENDED);
	assert_string_equal(transcript(&s), START_CLIENT "<a/>\n");
	assert_int_equal(xml_parser_resume(p), XML_FEED_SUSPENDED);
	assert_string_equal(transcript(&s), START_CLIENT "<a/>\n<b/>\n<c/>\n<a/>\n");
	assert_int_equal(xml_parser_resume(p), XML_FEED_OK);
	assert_string_equal(transcript(&s), START_CLIENT "<a/>\n<b/>\n<c/>\n<a/>\n<d/>\n");
	xml_parser_free(&p);
	buf_free(&s.log);
}

static void test_restart_keep_rest(void **state)
{
	/* SASL success: the client pipelines the new stream header. */
	struct sink s;
	struct xml_parser *p = sink_parser(&s, NULL);
	s.suspend_on = "auth";
	const char *in =
	        HEADER "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>AGp1bGlldAByMG0zMA==</auth>"
	               "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
	               "to='example.com' version='1.0'><iq type='set' id='b'/>";
	assert_int_equal(xml_parser_feed(p, in, strlen(in)), XML_FEED_SUSPENDED);
	assert_string_equal(transcript(&s), START_CLIENT
	                    "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>AGp1bGlldAByMG0zMA==</auth>\n");
	assert_int_equal(xml_parser_restart(p, true), XML_FEED_OK);
	assert_false(xml_parser_suspended(p));
	assert_string_equal(
	        transcript(&s), START_CLIENT
	        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>AGp1bGlldAByMG0zMA==</auth>\n" START_CLIENT
	        "<iq type='set' id='b'/>\n");
	/* The new stream goes on. */
	assert_int_equal(xml_parser_feed(p, "<presence/>", 11), XML_FEED_OK);
	assert_int_equal(s.stanzas, 3);
	xml_parser_free(&p);
	buf_free(&s.log);
}

static void test_restart_keep_rest_suspends_again(void **state)
{
	struct sink s;
	struct xml_parser *p = sink_parser(&s, NULL);
	s.suspend_all = true;
	const char *in = HEADER "<auth/>" HEADER "<x/><y/>";
	assert_int_equal(xml_parser_feed(p, in, strlen(in)), XML_FEED_SUSPENDED);
	assert_int_equal(xml_parser_restart(p, true), XML_FEED_SUSPENDED);
	assert_true(xml_parser_suspended(p));
	assert_string_equal(transcript(&s), START_CLIENT "<auth/>\n" START_CLIENT "<x/>\n");
	assert_int_equal(xml_parser_resume(p), XML_FEED_SUSPENDED);
	assert_int_equal(xml_parser_resume(p), XML_FEED_OK);
	assert_string_equal(transcript(&s), START_CLIENT "<auth/>\n" START_CLIENT "<x/>\n<y/>\n");
	xml_parser_free(&p);
	buf_free(&s.log);
}

static void test_restart_discard_rest(void **state)
{
	/* STARTTLS: plaintext bytes after <starttls/> must never be parsed. */
	struct sink s;
	struct xml_parser *p = sink_parser(&s, NULL);
	s.suspend_on = "starttls";
	const char *in = HEADER "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><injected/>";
	assert_int_equal(xml_parser_feed(p, in, strlen(in)), XML_FEED_SUSPENDED);
	assert_int_equal(xml_parser_feed(p, "<more/>", 7), XML_FEED_SUSPENDED);
	assert_int_equal(xml_parser_restart(p, false), XML_FEED_OK);
	assert_false(xml_parser_suspended(p));
	assert_int_equal(xml_parser_feed(p, HEADER "<iq/>", strlen(HEADER) + 5), XML_FEED_OK);
	assert_string_equal(transcript(&s), START_CLIENT
	                    "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\n" START_CLIENT "<iq/>\n");
	xml_parser_free(&p);
	buf_free(&s.log);
}

static void test_restart_when_not_suspended(void **state)
{
	struct sink s;
	struct xml_parser *p = sink_parser(&s, NULL);
	const char *in = HEADER "<a/><b";
	assert_int_equal(xml_parser_feed(p, in, strlen(in)), XML_FEED_OK);
	assert_int_equal(xml_parser_restart(p, true), XML_FEED_OK);
	/* A new stream: it must start with a header again. */
	assert_int_equal(xml_parser_feed(p, XMLDECL HEADER "<c/>", strlen(XMLDECL HEADER) + 4), XML_FEED_OK);
	assert_string_equal(transcript(&s), START_CLIENT "<a/>\n" START_CLIENT "<c/>\n");
	assert_int_equal(xml_parser_restart(p, false), XML_FEED_OK);
	assert_int_equal(xml_parser_feed(p, "<c/>", 4), XML_FEED_ERROR);
	assert_int_equal(xml_parser_error(p), XML_PARSE_BAD_NAMESPACE);
	/* Restart also gives a dead parser a fresh stream. */
	assert_int_equal(xml_parser_restart(p, false), XML_FEED_OK);
	assert_int_equal(xml_parser_error(p), XML_PARSE_OK);
	assert_int_equal(xml_parser_feed(p, HEADER, strlen(HEADER)), XML_FEED_OK);
	xml_parser_free(&p);
	buf_free(&s.log);
}

/* ---- compaction and memory ------------------------------------------------ */

static void test_compact_memory(void **state)
{
	struct sink s;
	struct xml_parser *p = sink_parser(&s, NULL);
	assert_int_equal(xml_parser_memory(p), 0);
	assert_false(xml_parser_compact(p)); /* nothing to release */
	assert_int_equal(xml_parser_feed(p, HEADER, strlen(HEADER)), XML_FEED_OK);
	size_t after_header = xml_parser_memory(p);
	assert_true(after_header > 0);
	print_message("xml_parser_memory after the header: %zu bytes\n", after_header);
	assert_true(xml_parser_compact(p));
	assert_int_equal(xml_parser_memory(p), 0);
	print_message("xml_parser_memory after compact: %zu bytes\n", xml_parser_memory(p));
	assert_false(xml_parser_compact(p)); /* already released */
	/* Parsing goes on in the same stream context; no second stream_start. */
	assert_int_equal(xml_parser_feed(p, "<message><body>x</body></message>", 33), XML_FEED_OK);
	assert_true(xml_parser_memory(p) > 0);
	assert_string_equal(transcript(&s), START_CLIENT "<message><body>x</body></message>\n");
	/* Whitespace keepalives do not stop a compaction. */
	assert_int_equal(xml_parser_feed(p, " \n ", 3), XML_FEED_OK);
	assert_true(xml_parser_compact(p));
	assert_int_equal(xml_parser_memory(p), 0);
	assert_int_equal(xml_parser_feed(p, " ", 1), XML_FEED_OK);
	assert_true(xml_parser_compact(p));
	/* And the stream can end. */
	assert_int_equal(xml_parser_feed(p, "</stream:stream>", 16), XML_FEED_OK);
	assert_string_equal(transcript(&s), START_CLIENT "<message><body>x</body></message>\nEND\n");
	assert_false(xml_parser_compact(p)); /* stream over */
	xml_parser_free(&p);
	buf_free(&s.log);
}

static void test_compact_refused_mid_stanza(void **state)
{
	struct sink s;
	struct xml_parser *p = sink_parser(&s, NULL);
	assert_false(xml_parser_compact(p));
	assert_int_equal(xml_parser_feed(p, "<stream:str", 11), XML_FEED_OK);
	assert_false(xml_parser_compact(p)); /* header incomplete */
	assert_int_equal(xml_parser_feed(p, "eam xmlns:stream='http://etherx.jabber.org/streams'>", 52),
	                 XML_FEED_OK);
	assert_int_equal(xml_parser_feed(p, "<message><body>", 15), XML_FEED_OK);
	assert_false(xml_parser_compact(p)); /* inside a stanza */
	assert_int_equal(xml_parser_feed(p, "</body></message><pres", 22), XML_FEED_OK);
	assert_false(xml_parser_compact(p)); /* a partial start tag is buffered */
	assert_int_equal(xml_parser_feed(p, "ence/>", 6), XML_FEED_OK);
	assert_true(xml_parser_compact(p));
	assert_int_equal(xml_parser_feed(p, "<iq/>", 5), XML_FEED_OK);
	assert_string_equal(transcript(&s), "START()\n<message><body/></message>\n<presence/>\n<iq/>\n");
	xml_parser_free(&p);
	buf_free(&s.log);
}

static void test_compact_keeps_prefixes(void **state)
{
	/* A header with its own prefix and extra declarations that stanzas use. */
	struct sink s;
	struct xml_parser *p = sink_parser(&s, NULL);
	const char *hdr = "<s:stream xmlns:s='http://etherx.jabber.org/streams' xmlns='jabber:server' "
	                  "xmlns:db='jabber:server:dialback' xmlns:q='a&apos;b&amp;c' to='x'>";
	assert_int_equal(xml_parser_feed(p, hdr, strlen(hdr)), XML_FEED_OK);
	assert_true(xml_parser_compact(p));
	const char *rest = "<db:result from='a' to='b'>key</db:result><q:x/><s:features/></s:stream>";
	assert_int_equal(xml_parser_feed(p, rest, strlen(rest)), XML_FEED_OK);
	assert_string_equal(transcript(&s),
	                    "START(jabber:server)[to=x]\n"
	                    "<result xmlns='jabber:server:dialback' from='a' to='b'>key</result>\n"
	                    "<x xmlns='a&apos;b&amp;c'/>\n"
	                    "<features xmlns='http://etherx.jabber.org/streams'/>\n"
	                    "END\n");
	xml_parser_free(&p);
	buf_free(&s.log);
}

static void test_compact_at_every_byte(void **state)
{
	/* Try to compact after every byte: the transcript must not change, and
	 * compaction must succeed at every stanza boundary. */
	struct sink s;
	struct xml_parser *p = sink_parser(&s, NULL);
	unsigned compacted = 0;
	size_t len = sizeof(session) - 1;
	for (size_t i = 0; i < len; i++) {
		assert_int_equal(xml_parser_feed(p, session + i, 1), XML_FEED_OK);
		if (xml_parser_compact(p)) {
			compacted++;
			assert_int_equal(xml_parser_memory(p), 0);
		}
		bool boundary = ends_at(session, i, "</message>") || ends_at(session, i, "</iq>") ||
		                ends_at(session, i, "</presence>");
		if (boundary)
			assert_int_equal(xml_parser_memory(p), 0);
	}
	assert_string_equal(transcript(&s), session_transcript);
	assert_true(compacted >= 6);
	xml_parser_free(&p);
	buf_free(&s.log);

	/* Split in two at every position with a compaction between. */
	for (size_t i = 0; i <= len; i++) {
		p = sink_parser(&s, NULL);
		assert_int_equal(xml_parser_feed(p, session, i), XML_FEED_OK);
		xml_parser_compact(p);
		assert_int_equal(xml_parser_feed(p, session + i, len - i), XML_FEED_OK);
		if (strcmp(transcript(&s), session_transcript) != 0)
			fail_msg("split at %zu with compact:\n%s", i, transcript(&s));
		xml_parser_free(&p);
		buf_free(&s.log);
	}
}

static void test_compact_then_limits_and_errors(void **state)
{
	/* After a rebuild the limits and the wall are still there. */
	struct xml_parser_limits lim = { .max_stanza = 64, .max_depth = 2 };
	struct sink s;
	struct xml_parser *p = sink_parser(&s, &lim);
	assert_int_equal(xml_parser_feed(p, HEADER, strlen(HEADER)), XML_FEED_OK);
	assert_true(xml_parser_compact(p));
	assert_int_equal(xml_parser_feed(p, "<a><b/></a>", 11), XML_FEED_OK);
	assert_true(xml_parser_compact(p));
	assert_int_equal(xml_parser_feed(p, "<a><b><c/></b></a>", 18), XML_FEED_ERROR);
	assert_int_equal(xml_parser_error(p), XML_PARSE_POLICY);
	xml_parser_free(&p);
	buf_free(&s.log);

	p = sink_parser(&s, &lim);
	assert_int_equal(xml_parser_feed(p, HEADER, strlen(HEADER)), XML_FEED_OK);
	assert_true(xml_parser_compact(p));
	assert_int_equal(xml_parser_feed(p, "<!-- x -->", 10), XML_FEED_ERROR);
	assert_int_equal(xml_parser_error(p), XML_PARSE_RESTRICTED);
	xml_parser_free(&p);
	buf_free(&s.log);
}

static void test_memory_bounded_after_big_stanza(void **state)
{
	/* A big stanza may grow expat's buffers; compaction gives it all back. */
	struct sink s;
	struct xml_parser *p = sink_parser(&s, NULL);
	assert_int_equal(xml_parser_feed(p, HEADER, strlen(HEADER)), XML_FEED_OK);
	struct buf big = { 0 };
	buf_append_str(&big, "<message><body>");
	for (int i = 0; i < 20000; i++)
		buf_append_str(&big, "0123456789");
	buf_append_str(&big, "</body></message>");
	assert_int_equal(xml_parser_feed(p, big.data, big.len), XML_FEED_OK);
	size_t peak = xml_parser_memory(p);
	assert_true(peak > 200000);
	assert_true(xml_parser_compact(p));
	assert_int_equal(xml_parser_memory(p), 0);
	assert_int_equal(xml_parser_feed(p, "<presence/>", 11), XML_FEED_OK);
	assert_true(xml_parser_memory(p) < 64 * 1024);
	assert_int_equal(s.stanzas, 2);
	buf_free(&big);
	xml_parser_free(&p);
	buf_free(&s.log);
}

static void test_memory_capped_for_unique_names(void **state)
{
	/* Expat remembers every element and attribute name it has seen for the
	 * life of the document: a peer inventing new names in every stanza must
	 * hit a cap (4 * max_stanza + 1 MiB), not grow the parser for ever. */
	struct xml_parser_limits lim = { .max_stanza = 4096 };
	const size_t cap = 4 * 4096 + 1024 * 1024;
	struct sink s;
	struct xml_parser *p = sink_parser(&s, &lim);
	assert_int_equal(xml_parser_feed(p, HEADER, strlen(HEADER)), XML_FEED_OK);
	enum xml_feed_result r = XML_FEED_OK;
	unsigned serial = 0, rounds = 0;
	struct buf in = { 0 };
	while (r == XML_FEED_OK && rounds < 10000) {
		buf_reset(&in);
		buf_append_str(&in, "<message>");
		for (int i = 0; i < 100; i++, serial++)
			buf_printf(&in, "<e%u a%u='1'/>", serial, serial);
		buf_append_str(&in, "</message>");
		r = xml_parser_feed(p, in.data, in.len);
		assert_true(xml_parser_memory(p) <= cap);
		rounds++;
	}
	assert_int_equal(r, XML_FEED_ERROR);
	assert_int_equal(xml_parser_error(p), XML_PARSE_POLICY);
	assert_non_null(strstr(xml_parser_error_text(p), "memory"));
	buf_free(&in);
	xml_parser_free(&p);
	buf_free(&s.log);
}

/* A stanza callback that frees nothing and records nothing: for counting. */
static bool count_stanza(void *ctx, struct xml_node *stanza)
{
	(*(unsigned *)ctx)++;
	xml_unref(&stanza);
	return false;
}

static void test_many_parsers_are_independent(void **state)
{
	/* Memory is charged to the parser whose expat allocated it. */
	unsigned n1 = 0, n2 = 0;
	struct xml_parser_callbacks cbs = { .stream_start = drop_header, .stanza = count_stanza };
	struct xml_parser *p1 = xml_parser_new(NULL, &cbs, &n1);
	struct xml_parser *p2 = xml_parser_new(NULL, &cbs, &n2);
	assert_int_equal(xml_parser_feed(p1, HEADER "<a/>", strlen(HEADER) + 4), XML_FEED_OK);
	size_t m1 = xml_parser_memory(p1);
	assert_int_equal(xml_parser_memory(p2), 0);
	assert_int_equal(xml_parser_feed(p2, HEADER "<a/><b/>", strlen(HEADER) + 8), XML_FEED_OK);
	assert_int_equal(xml_parser_memory(p1), m1);
	assert_true(xml_parser_compact(p1));
	assert_int_equal(xml_parser_memory(p1), 0);
	assert_true(xml_parser_memory(p2) > 0);
	assert_int_equal(n1, 1);
	assert_int_equal(n2, 2);
	xml_parser_free(&p1);
	xml_parser_free(&p2);
}

/* ---- one element from a string ------------------------------------------- */

static struct xml_node *parse_str(const char *s, const char *ns, const char **err)
{
	*err = NULL;
	struct xml_node *el = xml_parse_string(s, strlen(s), ns, NULL, err);
	if (el != NULL)
		assert_null(*err);
	else
		assert_non_null(*err);
	return el;
}

/* An element in the XML namespace (the xml prefix needs no declaration)
 * is written with that prefix: that namespace may not be made the default
 * one, and text with xmlns='http://www.w3.org/XML/1998/namespace' does not
 * parse (a client's parser would end the stream; a stored stanza would not
 * read back).  Its children stay in the default namespace around it. */
static void test_serialize_xml_namespace_element(void **state)
{
	const char *err;
	struct xml_node *m =
	        parse_str("<message to='a@b'><xml:x><body>hi</body><y xmlns='urn:y'/></xml:x></message>",
	                  NS_CLIENT, &err);
	assert_non_null(m);
	struct xml_node *x = xml_first_element(m);
	assert_true(xml_is(x, "x", NS_XML));
	assert_non_null(xml_child(x, "body", NS_CLIENT));
	static const char want[] =
	        "<message to='a@b'><xml:x><body>hi</body><y xmlns='urn:y'/></xml:x></message>";
	assert_serializes(m, NS_CLIENT, want);
	char *text = xml_to_string(m, NS_CLIENT);
	struct xml_node *again = parse_str(text, NS_CLIENT, &err);
	assert_non_null(again);
	assert_serializes(again, NS_CLIENT, want);
	xml_unref(&again);
	free(text);
	/* empty, and with a different default namespace in scope */
	assert_serializes(x->children->next, NS_CLIENT, "<y xmlns='urn:y'/>");
	struct xml_node *e = xml_new("z", NS_XML);
	assert_serializes(e, NS_CLIENT, "<xml:z/>");
	xml_unref(&e);
	xml_unref(&m);
}

static void test_parse_string(void **state)
{
	const char *err;
	/* A stanza as mod_offline keeps it: serialised with jabber:client in
	 * scope, parsed back the same way, the round trip is exact. */
	struct xml_node *m = xml_new("message", NS_CLIENT);
	xml_set_attr(m, "to", "juliet@example.com");
	xml_set_attr(m, "xml:lang", "en");
	struct xml_node *body = xml_add_child(m, "body", NULL);
	xml_add_text(body, "a < b & c \xc3\xa9 ]]>", strlen("a < b & c \xc3\xa9 ]]>"));
	struct xml_node *d = xml_add_child(m, "delay", NS_DELAY);
	xml_set_attr(d, "stamp", "2026-01-01T00:00:00Z");
	xml_add_child(d, "x", "urn:other");
	char *text = xml_to_string(m, NS_CLIENT);
	struct xml_node *el = parse_str(text, NS_CLIENT, &err);
	assert_non_null(el);
	assert_true(xml_is(el, "message", NS_CLIENT));
	assert_ptr_equal(el->parent, NULL);
	assert_string_equal(xml_attr(el, "to"), "juliet@example.com");
	assert_string_equal(xml_attr(el, "xml:lang"), "en");
	assert_string_equal(xml_child_text(el, "body", NS_CLIENT), "a < b & c \xc3\xa9 ]]>");
	assert_non_null(xml_child(el, "delay", NS_DELAY));
	assert_serializes(el, NS_CLIENT, text);
	xml_unref(&el);
	/* Without the default namespace in scope it is an element in none. */
	el = parse_str(text, NULL, &err);
	assert_non_null(el);
	assert_string_equal(el->ns, "");
	xml_unref(&el);
	free(text);
	xml_unref(&m);

	/* Whitespace around is fine; prefixes resolve. */
	el = parse_str("\n <p:x xmlns:p='urn:p'><p:y/></p:x>\n", NS_CLIENT, &err);
	assert_non_null(el);
	assert_true(xml_is(el, "x", "urn:p"));
	assert_non_null(xml_child(el, "y", "urn:p"));
	xml_unref(&el);

	/* Exactly one well-formed element, through the same wall as a stream. */
	static const char *const bad[] = {
		"",
		"  ",
		"<a/><b/>",
		"<a>",
		"<a></b>",
		"text",
		"<a/>text",
		"<a/></stream:stream>",
		"<a/></stream:stream><stream:stream><b/>",
		"</stream:stream>",
		"<a><!-- c --></a>",
		"<a>&ent;</a>",
		"<?pi x?><a/>",
		"<!DOCTYPE a><a/>",
		"<a x='1' x='2'/>",
		"<a>\xff</a>",
		"<?xml version='1.0'?><a/>",
		"<a:b/>",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		el = parse_str(bad[i], NS_CLIENT, &err);
		if (el != NULL)
			fail_msg("accepted %s", bad[i]);
	}
	/* Limits apply. */
	struct xml_parser_limits lim = { .max_stanza = 16 };
	static const char big[] = "<a>0123456789abcdef</a>";
	assert_null(xml_parse_string(big, strlen(big), NS_CLIENT, &lim, &err));
	assert_non_null(strstr(err, "larger"));
	lim.max_stanza = sizeof(big);
	el = xml_parse_string(big, strlen(big), NS_CLIENT, &lim, NULL);
	assert_non_null(el);
	xml_unref(&el);
	/* Only len bytes are read. */
	el = xml_parse_string("<a/><b/>", 4, NS_CLIENT, NULL, &err);
	assert_non_null(el);
	assert_true(xml_is(el, "a", NS_CLIENT));
	xml_unref(&el);
}

/* Elements built from expat's own events (a caller running expat over a
 * file) come out as the stream parser builds them. */
static void test_element_from_expat(void **state)
{
	(void)state;
	const char *atts[] = { "name",
		               "romeo",
		               "http://www.w3.org/XML/1998/namespace\x01lang\x01xml",
		               "en",
		               "urn:x\x01salt\x01p",
		               "AAAA",
		               NULL };
	struct xml_node *u = xml_element_from_expat(NULL, "urn:xmpp:pie:0\x01user", atts);
	const char *none[] = { NULL };
	struct xml_node *v = xml_element_from_expat(u, "vcard-temp\x01vCard\x01v", none);
	xml_element_from_expat(v,
	                       "vcard-temp\x01"
	                       "FN\x01v",
	                       none);
	assert_string_equal(u->name, "user");
	assert_string_equal(u->ns, "urn:xmpp:pie:0");
	assert_string_equal(xml_attr(u, "name"), "romeo");
	assert_string_equal(xml_attr(u, "xml:lang"), "en");
	assert_ptr_equal(v->parent, u);
	assert_true(xml_is(xml_child(v, "FN", NULL), "FN", "vcard-temp"));
	char *text = xml_to_string(u, NULL);
	const char *err = NULL;
	struct xml_node *back = xml_parse_string(text, strlen(text), NULL, NULL, &err);
	assert_non_null(back);
	assert_true(xml_is(back, "user", "urn:xmpp:pie:0"));
	assert_non_null(xml_path(back, "vCard/FN"));
	free(text);
	xml_unref(&back);
	xml_unref(&u);
}

/* xml_same: whole trees alike but for the root attribute it skips. */
static void test_same(void **state)
{
	(void)state;
	const char *err;
	static const char *const base = "<message to='a@x/1' from='r@m/n' type='chat'><body "
	                                "xml:lang='en'>hi</body><x xmlns='u:x'/></message>";
	static const struct {
		const char *other;
		bool same;
	} cases[] = {
		{ "<message to='a@x/2' from='r@m/n' type='chat'><body xml:lang='en'>hi</body><x "
		  "xmlns='u:x'/></message>",
		  true },
		{ "<message from='r@m/n' type='chat'><body xml:lang='en'>hi</body><x xmlns='u:x'/></message>",
		  true },
		{ "<message to='a@x/1' from='r@m/o' type='chat'><body xml:lang='en'>hi</body><x "
		  "xmlns='u:x'/></message>",
		  false },
		{ "<message to='a@x/1' from='r@m/n' type='chat'><body xml:lang='en'>ho</body><x "
		  "xmlns='u:x'/></message>",
		  false },
		{ "<message to='a@x/1' from='r@m/n' type='chat'><body>hi</body><x xmlns='u:x'/></message>",
		  false },
		{ "<message to='a@x/1' from='r@m/n' type='chat'><body xml:lang='en'>hi</body><x "
		  "xmlns='u:y'/></message>",
		  false },
		{ "<message to='a@x/1' from='r@m/n' type='chat'><body xml:lang='en'>hi</body></message>",
		  false },
		{ "<message to='a@x/1' from='r@m/n' type='chat'><body xml:lang='en'>hi</body><x "
		  "xmlns='u:x'/><x "
		  "xmlns='u:x'/></message>",
		  false },
		{ "<message to='a@x/1' from='r@m/n'><body xml:lang='en'>hi</body><x xmlns='u:x'/></message>",
		  false },
		{ "<message to='a@x/1' from='r@m/n' type='chat'><body xml:lang='en'>hi</body><x xmlns='u:x' "
		  "to='a@x/2'/>"
		  "</message>",
		  false },
	};
	struct xml_node *a = parse_str(base, NS_CLIENT, &err);
	assert_non_null(a);
	assert_true(xml_same(a, a, NULL));
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct xml_node *b = parse_str(cases[i].other, NS_CLIENT, &err);
		assert_non_null(b);
		assert_int_equal(xml_same(a, b, "to"), cases[i].same);
		assert_int_equal(xml_same(b, a, "to"), cases[i].same);
		xml_unref(&b);
	}
	struct xml_node *b = parse_str(cases[0].other, NS_CLIENT, &err);
	assert_false(xml_same(a, b, NULL));
	xml_unref(&b);
	xml_unref(&a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_build_and_serialize),
		cmocka_unit_test(test_element_from_expat),
		cmocka_unit_test(test_serialize_empty_elements),
		cmocka_unit_test(test_serialize_namespaces),
		cmocka_unit_test(test_serialize_attr_namespaces),
		cmocka_unit_test(test_serialize_xml_namespace_element),
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_attrs_set_replace_remove),
		cmocka_unit_test(test_text_merge_and_read),
		cmocka_unit_test(test_navigation),
		cmocka_unit_test(test_remove),
		cmocka_unit_test(test_copy_is_independent),
		cmocka_unit_test(test_append_copy),
		cmocka_unit_test(test_ref_unref),
		cmocka_unit_test(test_parse_header),
		cmocka_unit_test(test_parse_round_trip),
		cmocka_unit_test(test_parse_normalises),
		cmocka_unit_test(test_parse_attr_namespaces),
		cmocka_unit_test(test_parse_tree_fields),
		cmocka_unit_test(test_limit_stanza_size),
		cmocka_unit_test(test_limit_unfinished_start_tag),
		cmocka_unit_test(test_limit_huge_chunk),
		cmocka_unit_test(test_limit_depth),
		cmocka_unit_test(test_limit_attrs),
		cmocka_unit_test(test_restricted_doctype),
		cmocka_unit_test(test_restricted_billion_laughs),
		cmocka_unit_test(test_restricted_entity_reference),
		cmocka_unit_test(test_restricted_comment),
		cmocka_unit_test(test_restricted_pi),
		cmocka_unit_test(test_not_well_formed),
		cmocka_unit_test(test_bad_utf8),
		cmocka_unit_test(test_bad_stream_namespace),
		cmocka_unit_test(test_split_in_two_everywhere),
		cmocka_unit_test(test_split_byte_by_byte),
		cmocka_unit_test(test_stanza_reported_at_its_last_byte),
		cmocka_unit_test(test_suspend_and_resume),
		cmocka_unit_test(test_suspend_on_last_byte),
		cmocka_unit_test(test_feed_while_suspended_keeps_order),
		cmocka_unit_test(test_restart_keep_rest),
		cmocka_unit_test(test_restart_keep_rest_suspends_again),
		cmocka_unit_test(test_restart_discard_rest),
		cmocka_unit_test(test_restart_when_not_suspended),
		cmocka_unit_test(test_compact_memory),
		cmocka_unit_test(test_compact_refused_mid_stanza),
		cmocka_unit_test(test_compact_keeps_prefixes),
		cmocka_unit_test(test_compact_at_every_byte),
		cmocka_unit_test(test_compact_then_limits_and_errors),
		cmocka_unit_test(test_memory_bounded_after_big_stanza),
		cmocka_unit_test(test_memory_capped_for_unique_names),
		cmocka_unit_test(test_many_parsers_are_independent),
		cmocka_unit_test(test_parse_string),
		cmocka_unit_test(test_wire_split_at_to),
		cmocka_unit_test(test_tag_end),
		cmocka_unit_test(test_same),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
