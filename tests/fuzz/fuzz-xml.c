/*
 * The XML stream parser (lib/xmlparser.c) with every limit on, as a client
 * stream drives it: bytes arrive in chunks of any size, the stream is
 * restarted after <success/> and <proceed/> (keeping or dropping what
 * follows, as after SASL and STARTTLS), stanzas suspend the parser now and
 * then, and the parser is compacted between chunks.
 *
 * Input: 4 control bytes (max_stanza, max_depth, max_attrs, the seed of
 * the chunk sizes and suspensions), then the stream's bytes.
 *
 * Checks beyond the sanitizers: every stanza serialises to text that
 * parses again (xml_parse_string) to a tree that serialises to the same
 * text, as does its copy (xml_copy); its fan-out form (xml_wire_build)
 * with the escaped 'to' put back is that text; a failed parser names its
 * error; the memory expat holds stays bounded.
 */
#include "tests/fuzz/fuzz.h"
#include "lib/xml.h"

#include <assert.h>

struct run {
	struct xml_parser *p;
	uint32_t rng;
	bool restart, keep_rest;
	unsigned stanzas;
};

static uint32_t next_rand(struct run *r)
{
	r->rng = r->rng * 1103515245u + 12345u;
	return r->rng >> 16;
}

static void check_roundtrip(const struct xml_node *stanza)
{
	char *text = xml_to_string(stanza, NS_CLIENT);
	size_t len = strlen(text);
	const struct xml_parser_limits big = { .max_stanza = len + 1, .max_depth = 1024, .max_attrs = 1024 };
	const char *err = NULL;
	struct xml_node *again = xml_parse_string(text, len, NS_CLIENT, &big, &err);
	if (again == NULL) {
		fprintf(stderr, "fuzz-xml: a stanza serialises to text that does not parse (%s): %s\n", err,
		        text);
		abort();
	}
	char *text2 = xml_to_string(again, NS_CLIENT);
	if (strcmp(text, text2) != 0) {
		fprintf(stderr, "fuzz-xml: serialise/parse/serialise differs:\n%s\n%s\n", text, text2);
		abort();
	}
	free(text2);
	xml_unref(&again);

	/* a copy serialises the same */
	struct xml_node *copy = xml_copy(stanza);
	char *text3 = xml_to_string(copy, NS_CLIENT);
	if (strcmp(text, text3) != 0) {
		fprintf(stderr, "fuzz-xml: a copy serialises differently:\n%s\n%s\n", text, text3);
		abort();
	}
	free(text3);
	xml_unref(&copy);

	/* fan-out: head, the escaped 'to', tail is the stanza */
	struct xml_wire w;
	const char *to = xml_attr(stanza, "to");
	if (xml_wire_build(&w, stanza, NS_CLIENT) == 0) {
		assert(to != NULL);
		struct buf b = { 0 };
		buf_append(&b, w.head.data, w.head.len);
		xml_escape(&b, to, strlen(to), true);
		buf_append(&b, w.tail.data, w.tail.len);
		if (b.len != len || memcmp(b.data, text, len) != 0) {
			fprintf(stderr, "fuzz-xml: the wire form differs:\n%s\n%.*s\n", text, (int)b.len,
			        b.data);
			abort();
		}
		buf_free(&b);
		xml_wire_free(&w);
	} else {
		assert(to == NULL);
	}
	free(text);
}

static void on_start(void *ctx, struct xml_node *header, const char *default_ns)
{
	assert(xml_is(header, "stream", NS_STREAM));
	assert(default_ns != NULL);
	xml_unref(&header);
}

static bool on_stanza(void *ctx, struct xml_node *stanza)
{
	struct run *r = ctx;
	r->stanzas++;
	if (r->stanzas <= 64)
		check_roundtrip(stanza);
	bool suspend = false;
	if (xml_is(stanza, "success", NS_SASL) || xml_is(stanza, "proceed", NS_TLS)) {
		r->restart = true;
		r->keep_rest = xml_is(stanza, "success", NS_SASL);
		suspend = true;
	} else {
		suspend = (next_rand(r) & 7) == 0;
	}
	xml_unref(&stanza);
	return suspend;
}

static void on_end(void *ctx)
{
}

static const struct xml_parser_callbacks callbacks = {
	.stream_start = on_start,
	.stanza = on_stanza,
	.stream_end = on_end,
};

/* Resume or restart until the parser is neither suspended nor dead. */
static enum xml_feed_result settle(struct run *r, enum xml_feed_result res)
{
	while (res == XML_FEED_SUSPENDED) {
		if (r->restart) {
			r->restart = false;
			res = xml_parser_restart(r->p, r->keep_rest);
		} else {
			res = xml_parser_resume(r->p);
		}
	}
	return res;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_quiet();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_input in = { data, size };
	static const size_t stanza_caps[] = { 64, 256, 1024, 4096, 65536, 262144 };
	struct xml_parser_limits lim = {
		.max_stanza = stanza_caps[fuzz_byte(&in) % ARRAY_SIZE(stanza_caps)],
		.max_depth = 1 + fuzz_byte(&in) % 64,
		.max_attrs = fuzz_byte(&in) % 65,
	};
	struct run r = { .rng = fuzz_byte(&in) };
	r.p = xml_parser_new(&lim, &callbacks, &r);
	enum xml_feed_result res = XML_FEED_OK;
	while (in.len > 0 && res != XML_FEED_ERROR) {
		size_t n = 1 + next_rand(&r) % 512;
		if (n > in.len)
			n = in.len;
		res = settle(&r, xml_parser_feed(r.p, (const char *)in.data, n));
		in.data += n;
		in.len -= n;
		/* what expat holds stays near what the limits allow */
		assert(xml_parser_memory(r.p) <= 64 * lim.max_stanza + (8u << 20));
		if (res == XML_FEED_OK && (next_rand(&r) & 3) == 0)
			xml_parser_compact(r.p);
	}
	if (res == XML_FEED_ERROR) {
		enum xml_parse_error e = xml_parser_error(r.p);
		assert(e != XML_PARSE_OK);
		assert(xml_parser_error_text(r.p) != NULL);
	}
	xml_parser_free(&r.p);

	/* the same bytes as one element, as a stored stanza is read back */
	const char *err = NULL;
	struct xml_node *el = xml_parse_string((const char *)data + 4 * (size > 4), size > 4 ? size - 4 : 0,
	                                       NS_CLIENT, &lim, &err);
	if (el != NULL) {
		check_roundtrip(el);
		xml_unref(&el);
	}
	return 0;
}
