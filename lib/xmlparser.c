/*
 * The XML stream parser: expat, walled in, turning bytes into a stream
 * header, stanzas (complete depth-1 elements, each in its own pool) and a
 * stream end.  xml_parse_string runs one serialized element through the
 * same parser inside a synthetic stream.
 *
 * Loop thread (whichever thread owns the stream).  Never re-entered: feed,
 * resume, restart, compact and free may not be called from one of the
 * parser's own callbacks (asserted).
 *
 * The wall: namespace processing on with a separator (\x01) that XML forbids
 * in documents; a hash salt from the CSPRNG; DOCTYPE, entity declarations,
 * comments, processing instructions and entity references other than the
 * predefined ones are refused (XML_PARSE_RESTRICTED); a no-op default
 * handler so nothing is expanded behind our back; billion-laughs protection
 * and no reparse deferral where the library has them; caps on stanza bytes,
 * depth and attributes (XML_PARSE_POLICY); every byte expat mallocs is
 * counted through our allocator hooks, and capped.
 *
 * Offsets: every position is an expat byte index of the current expat
 * instance (XML_GetCurrentByteIndex); p->fed is the number of bytes given to
 * that instance, synthetic header included.  Invariants:
 * - idle_mark <= fed: bytes after idle_mark were not yet seen as a complete
 *   depth-1 event.  While in a stanza, stanza_start is its first byte.  After
 *   each parse, fed - (stanza_start or idle_mark) <= max_stanza, so expat
 *   never buffers much more than one stanza plus one input chunk.
 * - suspended <=> rest holds the bytes after the suspending stanza: the
 *   first rest_held bytes are those expat still holds (they start at expat
 *   index rest_start), any later ones were fed while suspended and were not
 *   given to expat yet.
 * - xp == NULL with started && !ended: compacted; the next feed replays
 *   header_replay (the real header's qualified name and namespace
 *   declarations) without calling stream_start again.
 */
#include "xml.h"
#include "log.h"

#include <expat.h>
#include <limits.h>
#include <stdalign.h>
#include <stddef.h>
#include <strings.h>

#define NS_SEP '\x01'
#define NS_SEP_STR "\x01"

#define DEFAULT_MAX_STANZA 262144
#define DEFAULT_MAX_DEPTH 64
#define DEFAULT_MAX_ATTRS 64
#define STANZA_POOL_BLOCK 1024
/* Text buffer capacity kept between stanzas. */
#define TEXT_KEEP 16384

/*
 * Functions newer than some headers that declare them: weak references, so
 * one binary uses them when the run-time library has them (Debian 12's 2.5.0
 * has reparse deferral backported) and skips them when it does not.
 */
XML_Bool XML_SetReparseDeferralEnabled(XML_Parser parser, XML_Bool enabled) __attribute__((weak));
XML_Bool XML_SetBillionLaughsAttackProtectionMaximumAmplification(XML_Parser parser, float factor)
        __attribute__((weak));
XML_Bool XML_SetBillionLaughsAttackProtectionActivationThreshold(XML_Parser parser, unsigned long long bytes)
        __attribute__((weak));

struct xml_parser {
	XML_Parser xp;
	struct xml_parser_limits limits;
	struct xml_parser_callbacks cb;
	void *ctx;
	unsigned long salt;
	bool in_expat; /* inside XML_Parse/XML_ResumeParser */

	/* memory accounting (allocator hooks) */
	size_t mem;
	size_t mem_limit;
	bool mem_limit_hit;

	enum xml_parse_error error;
	bool failed; /* dead: every call reports XML_FEED_ERROR */
	char error_text[200];

	/* stream */
	bool started, ended;     /* header seen; </stream:stream> seen */
	bool replaying;          /* feeding header_replay after a compact */
	unsigned depth;          /* open elements, the stream element included */
	unsigned pending_decls;  /* namespace declarations of the next element */
	struct buf header_decls; /* the header's declarations, serialised */
	char *header_default_ns; /* the header's default namespace (or NULL) */
	char *header_replay;
	size_t header_replay_len;

	/* stanza being built */
	struct xml_node *stanza, *cur;
	long long stanza_start;
	struct buf text; /* character data not yet added to cur */

	/* offsets (expat indexes) */
	long long fed;
	long long chunk_start;
	long long idle_mark;

	/* suspension */
	bool suspending; /* a stanza callback returned true during this parse */
	long long susp_end;
	bool suspended;
	struct buf rest;
	size_t rest_held;
	long long rest_start;
};

/* ---- allocator hooks ------------------------------------------------------ */

/* The parser whose expat is running on this thread: allocations are charged to it. */
static _Thread_local struct xml_parser *alloc_owner;

struct alloc_hdr {
	alignas(max_align_t) struct xml_parser *owner;
	size_t size;
};
#define HDR_SIZE sizeof(struct alloc_hdr)

static void *counted_malloc(size_t size)
{
	struct xml_parser *p = alloc_owner;
	if (p != NULL && (size > p->mem_limit || p->mem + size + HDR_SIZE > p->mem_limit)) {
		p->mem_limit_hit = true;
		return NULL;
	}
	struct alloc_hdr *h = malloc(HDR_SIZE + size);
	if (h == NULL)
		return NULL;
	h->owner = p;
	h->size = size;
	if (p != NULL)
		p->mem += HDR_SIZE + size;
	return h + 1;
}

static void counted_free(void *ptr)
{
	if (ptr == NULL)
		return;
	struct alloc_hdr *h = (struct alloc_hdr *)ptr - 1;
	if (h->owner != NULL)
		h->owner->mem -= HDR_SIZE + h->size;
	free(h);
}

static void *counted_realloc(void *ptr, size_t size)
{
	if (ptr == NULL)
		return counted_malloc(size);
	struct alloc_hdr *h = (struct alloc_hdr *)ptr - 1;
	struct xml_parser *p = h->owner;
	size_t old = h->size;
	if (p != NULL && size > old && (size > p->mem_limit || p->mem - old + size > p->mem_limit)) {
		p->mem_limit_hit = true;
		return NULL;
	}
	struct alloc_hdr *nh = realloc(h, HDR_SIZE + size);
	if (nh == NULL)
		return NULL;
	nh->size = size;
	if (p != NULL)
		p->mem = p->mem - old + size;
	return nh + 1;
}

static const XML_Memory_Handling_Suite counted_mm = {
	.malloc_fcn = counted_malloc,
	.realloc_fcn = counted_realloc,
	.free_fcn = counted_free,
};

/* ---- errors ------------------------------------------------------------- */

static void fail(struct xml_parser *p, enum xml_parse_error e, const char *fmt, ...) ATTR_PRINTF(3, 4);

static void fail(struct xml_parser *p, enum xml_parse_error e, const char *fmt, ...)
{
	if (p->failed)
		return;
	p->failed = true;
	p->error = e;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p->error_text, sizeof(p->error_text), fmt, ap);
	va_end(ap);
	if (p->xp != NULL && p->in_expat)
		XML_StopParser(p->xp, XML_FALSE);
}

/* Classify an error expat reported itself. */
static void fail_expat(struct xml_parser *p)
{
	enum XML_Error code = XML_GetErrorCode(p->xp);
	unsigned long line = XML_GetCurrentLineNumber(p->xp);
	unsigned long col = XML_GetCurrentColumnNumber(p->xp);
	enum xml_parse_error e = XML_PARSE_NOT_WELL_FORMED;
	if (p->mem_limit_hit) {
		/* Whatever expat made of the refused allocation. */
		fail(p, XML_PARSE_POLICY, "XML parser memory limit (%zu bytes) reached", p->mem_limit);
		return;
	}
	switch (code) {
	case XML_ERROR_NO_MEMORY: log_fatal("out of memory in the XML parser");
	case XML_ERROR_UNDEFINED_ENTITY:
	case XML_ERROR_RECURSIVE_ENTITY_REF:
	case XML_ERROR_BINARY_ENTITY_REF:
	case XML_ERROR_ATTRIBUTE_EXTERNAL_ENTITY_REF:
	case XML_ERROR_EXTERNAL_ENTITY_HANDLING:
	case XML_ERROR_ENTITY_DECLARED_IN_PE:
#if XML_MAJOR_VERSION > 2 || (XML_MAJOR_VERSION == 2 && XML_MINOR_VERSION >= 4)
	case XML_ERROR_AMPLIFICATION_LIMIT_BREACH:
#endif
		e = XML_PARSE_RESTRICTED;
		break;
	default: break;
	}
	fail(p, e, "%s (line %lu, column %lu)", XML_ErrorString(code), line, col + 1);
}

/* ---- namespaces and names ---------------------------------------------- */

#define KNOWN(s)                 \
	{                        \
		s, sizeof(s) - 1 \
	}
static const struct {
	const char *s;
	size_t len;
} known_ns[] = {
	KNOWN(NS_CLIENT),
	KNOWN(NS_SERVER),
	KNOWN(NS_STREAM),
	KNOWN(NS_STREAMS),
	KNOWN(NS_STANZAS),
	KNOWN(NS_TLS),
	KNOWN(NS_SASL),
	KNOWN(NS_BIND),
	KNOWN(NS_SESSION),
	KNOWN(NS_XML),
	KNOWN(NS_ROSTER),
	KNOWN(NS_DISCO_INFO),
	KNOWN(NS_DISCO_ITEMS),
	KNOWN(NS_VERSION),
	KNOWN(NS_PING),
	KNOWN(NS_TIME),
	KNOWN(NS_REGISTER),
	KNOWN(NS_DELAY),
	KNOWN(NS_DATA_FORMS),
	KNOWN("http://jabber.org/protocol/chatstates"),
	KNOWN("urn:xmpp:receipts"),
	KNOWN("http://jabber.org/protocol/caps"),
	KNOWN("urn:xmpp:sid:0"),
	KNOWN("urn:xmpp:carbons:2"),
	KNOWN("urn:xmpp:hints"),
	KNOWN("urn:xmpp:sm:3"),
	KNOWN("urn:xmpp:mam:2"),
	KNOWN("http://jabber.org/protocol/muc"),
	KNOWN("http://jabber.org/protocol/muc#user"),
	KNOWN("vcard-temp"),
	KNOWN("vcard-temp:x:update"),
	KNOWN("jabber:iq:private"),
	KNOWN("urn:xmpp:blocking"),
	KNOWN("jabber:x:oob"),
	KNOWN("urn:xmpp:idle:1"),
};

/* A namespace URI as a string that lives at least as long as the tree of
 * parent: the parent's own, a static one, or a pool copy. */
static const char *ns_string(struct pool *pool, const struct xml_node *parent, const char *uri, size_t len)
{
	if (len == 0)
		return "";
	if (parent != NULL && strncmp(parent->ns, uri, len) == 0 && parent->ns[len] == '\0')
		return parent->ns;
	for (size_t i = 0; i < ARRAY_SIZE(known_ns); i++)
		if (known_ns[i].len == len && memcmp(known_ns[i].s, uri, len) == 0)
			return known_ns[i].s;
	return pool_strndup(pool, uri, len);
}

/* Split an expat name "uri\1local\1prefix", "uri\1local" or "local". */
struct qname {
	const char *uri;
	size_t uri_len;
	const char *local;
	size_t local_len;
	const char *prefix; /* NULL when none */
};

static void split_name(const char *name, struct qname *q)
{
	const char *sep = strchr(name, NS_SEP);
	if (sep == NULL) {
		q->uri = "";
		q->uri_len = 0;
		q->local = name;
		q->local_len = strlen(name);
		q->prefix = NULL;
		return;
	}
	q->uri = name;
	q->uri_len = (size_t)(sep - name);
	q->local = sep + 1;
	const char *sep2 = strchr(q->local, NS_SEP);
	q->local_len = sep2 != NULL ? (size_t)(sep2 - q->local) : strlen(q->local);
	q->prefix = sep2 != NULL ? sep2 + 1 : NULL;
}

static bool is_xml_space(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
			return false;
	return true;
}

/* ---- building elements ---------------------------------------------------- */

static long long event_end(struct xml_parser *p)
{
	return (long long)XML_GetCurrentByteIndex(p->xp) + XML_GetCurrentByteCount(p->xp);
}

static bool stanza_too_big(struct xml_parser *p)
{
	long long size = event_end(p) - p->stanza_start;
	if (size <= (long long)p->limits.max_stanza)
		return false;
	fail(p, XML_PARSE_POLICY, "stanza larger than %zu bytes", p->limits.max_stanza);
	return true;
}

/* A new element in pool under parent (may be NULL), with atts. */
static struct xml_node *element_new(struct pool *pool, struct xml_node *parent, const struct qname *q,
                                    const XML_Char **atts)
{
	struct xml_node *el = pool_alloc(pool, sizeof(*el));
	el->type = XML_ELEMENT;
	el->pool = pool;
	el->name = pool_strndup(pool, q->local, q->local_len);
	el->ns = ns_string(pool, parent, q->uri, q->uri_len);
	struct xml_attr **link = &el->attrs;
	for (size_t i = 0; atts[i] != NULL; i += 2) {
		struct qname aq;
		split_name(atts[i], &aq);
		struct xml_attr *a = pool_alloc(pool, sizeof(*a));
		if (aq.uri_len == 0) {
			a->name = pool_strndup(pool, aq.local, aq.local_len);
		} else if (aq.uri_len == sizeof(NS_XML) - 1 && memcmp(aq.uri, NS_XML, aq.uri_len) == 0) {
			char *n = pool_alloc(pool, aq.local_len + 5);
			memcpy(n, "xml:", 4);
			memcpy(n + 4, aq.local, aq.local_len);
			a->name = n;
			a->ns = NS_XML;
		} else {
			a->name = pool_strndup(pool, aq.local, aq.local_len);
			a->ns = ns_string(pool, el, aq.uri, aq.uri_len);
		}
		a->value = pool_strdup(pool, atts[i + 1]);
		*link = a;
		link = &a->next;
	}
	if (parent != NULL) {
		el->parent = parent;
		if (parent->last_child != NULL)
			parent->last_child->next = el;
		else
			parent->children = el;
		parent->last_child = el;
	}
	return el;
}

static void flush_text(struct xml_parser *p)
{
	if (p->text.len == 0)
		return;
	xml_add_text(p->cur, p->text.data, p->text.len);
	buf_reset(&p->text);
}

static void drop_stanza(struct xml_parser *p)
{
	if (p->stanza != NULL) {
		struct pool *pool = p->stanza->pool;
		pool_unref(&pool);
	}
	p->stanza = p->cur = NULL;
	buf_reset(&p->text);
}

struct xml_node *xml_element_from_expat(struct xml_node *parent, const char *name, const char **atts)
{
	_Static_assert(XML_NS_SEP == NS_SEP, "one namespace separator");
	struct qname q;
	split_name(name, &q);
	struct pool *pool = parent != NULL ? parent->pool : pool_new(STANZA_POOL_BLOCK);
	return element_new(pool, parent, &q, atts);
}

/* ---- expat handlers -------------------------------------------------------- */

static void stream_header(struct xml_parser *p, const struct qname *q, const XML_Char **atts)
{
	if (q->local_len != 6 || memcmp(q->local, "stream", 6) != 0 || q->uri_len != sizeof(NS_STREAM) - 1 ||
	    memcmp(q->uri, NS_STREAM, q->uri_len) != 0) {
		fail(p, XML_PARSE_BAD_NAMESPACE, "the stream header is not <stream> in %s", NS_STREAM);
		return;
	}
	p->depth = 1;
	p->idle_mark = event_end(p);
	if (p->replaying)
		return;
	p->started = true;

	/* What a compact needs to rebuild this context later. */
	struct buf b = { 0 };
	buf_append(&b, "<", 1);
	if (q->prefix != NULL) {
		buf_append_str(&b, q->prefix);
		buf_append(&b, ":", 1);
	}
	buf_append(&b, "stream", 6);
	buf_append(&b, p->header_decls.data != NULL ? p->header_decls.data : "", p->header_decls.len);
	buf_append(&b, ">", 1);
	free(p->header_replay);
	p->header_replay_len = b.len;
	p->header_replay = buf_steal(&b);
	buf_free(&p->header_decls);

	struct pool *pool = pool_new(STANZA_POOL_BLOCK);
	struct xml_node *header = element_new(pool, NULL, q, atts);
	const char *default_ns = p->header_default_ns != NULL ? pool_strdup(pool, p->header_default_ns) : "";
	if (p->cb.stream_start != NULL)
		p->cb.stream_start(p->ctx, header, default_ns);
	else
		xml_unref(&header);
}

static void XMLCALL on_start(void *data, const XML_Char *name, const XML_Char **atts)
{
	struct xml_parser *p = data;
	if (p->failed)
		return;
	unsigned nattrs = p->pending_decls;
	p->pending_decls = 0;
	for (size_t i = 0; atts[i] != NULL; i += 2)
		nattrs++;
	if (nattrs > p->limits.max_attrs) {
		fail(p, XML_PARSE_POLICY, "more than %u attributes on one element", p->limits.max_attrs);
		return;
	}
	struct qname q;
	split_name(name, &q);
	if (p->depth == 0) {
		stream_header(p, &q, atts);
		return;
	}
	if (p->depth > p->limits.max_depth) {
		fail(p, XML_PARSE_POLICY, "elements nested deeper than %u", p->limits.max_depth);
		return;
	}
	if (p->depth == 1) {
		p->stanza_start = XML_GetCurrentByteIndex(p->xp);
		struct pool *pool = pool_new(STANZA_POOL_BLOCK);
		p->stanza = p->cur = element_new(pool, NULL, &q, atts);
	} else {
		flush_text(p);
		p->cur = element_new(p->cur->pool, p->cur, &q, atts);
	}
	p->depth++;
	stanza_too_big(p);
}

static void XMLCALL on_end(void *data, const XML_Char *name)
{
	struct xml_parser *p = data;
	if (p->failed)
		return;
	if (p->depth == 1) {
		p->depth = 0;
		p->ended = true;
		p->idle_mark = event_end(p);
		if (p->cb.stream_end != NULL)
			p->cb.stream_end(p->ctx);
		return;
	}
	flush_text(p);
	if (stanza_too_big(p))
		return;
	p->depth--;
	if (p->depth > 1) {
		p->cur = p->cur->parent;
		return;
	}
	struct xml_node *stanza = p->stanza;
	p->stanza = p->cur = NULL;
	p->idle_mark = event_end(p);
	if (p->text.cap > TEXT_KEEP)
		buf_free(&p->text);
	bool suspend;
	if (p->cb.stanza != NULL) {
		suspend = p->cb.stanza(p->ctx, stanza);
	} else {
		xml_unref(&stanza);
		suspend = false;
	}
	if (suspend && !p->failed) {
		p->suspending = true;
		p->susp_end = p->idle_mark;
		XML_StopParser(p->xp, XML_TRUE);
	}
}

static void XMLCALL on_text(void *data, const XML_Char *s, int len)
{
	struct xml_parser *p = data;
	if (p->failed)
		return;
	if (p->depth <= 1) {
		if (!is_xml_space(s, (size_t)len)) {
			fail(p, XML_PARSE_NOT_WELL_FORMED, "text outside stanzas");
			return;
		}
		p->idle_mark = event_end(p);
		return;
	}
	buf_append(&p->text, s, (size_t)len);
	stanza_too_big(p);
}

static void XMLCALL on_ns_decl(void *data, const XML_Char *prefix, const XML_Char *uri)
{
	struct xml_parser *p = data;
	if (p->failed)
		return;
	p->pending_decls++;
	if (p->depth != 0 || p->replaying)
		return;
	/* A declaration on the stream header: remembered for stream_start and
	 * for the synthetic header after a compact. */
	if (uri == NULL)
		uri = "";
	buf_append_str(&p->header_decls, " xmlns");
	if (prefix != NULL) {
		buf_append(&p->header_decls, ":", 1);
		buf_append_str(&p->header_decls, prefix);
	} else {
		free(p->header_default_ns);
		p->header_default_ns = xstrdup(uri);
	}
	buf_append(&p->header_decls, "='", 2);
	xml_escape(&p->header_decls, uri, strlen(uri), true);
	buf_append(&p->header_decls, "'", 1);
}

static void XMLCALL on_doctype(void *data, const XML_Char *name, const XML_Char *sysid, const XML_Char *pubid,
                               int has_internal_subset)
{
	fail(data, XML_PARSE_RESTRICTED, "document type declaration");
}

static void XMLCALL on_entity_decl(void *data, const XML_Char *name, int is_pe, const XML_Char *value,
                                   int value_len, const XML_Char *base, const XML_Char *sysid,
                                   const XML_Char *pubid, const XML_Char *notation)
{
	fail(data, XML_PARSE_RESTRICTED, "entity declaration");
}

static void XMLCALL on_comment(void *data, const XML_Char *text)
{
	fail(data, XML_PARSE_RESTRICTED, "comment");
}

static void XMLCALL on_pi(void *data, const XML_Char *target, const XML_Char *text)
{
	fail(data, XML_PARSE_RESTRICTED, "processing instruction");
}

static void XMLCALL on_skipped_entity(void *data, const XML_Char *name, int is_pe)
{
	fail(data, XML_PARSE_RESTRICTED, "entity reference");
}

/* XMPP is UTF-8 only (RFC 6120 §11.6): a declaration of anything else is
 * refused, not read as UTF-8 regardless. */
static void XMLCALL on_xml_decl(void *data, const XML_Char *version, const XML_Char *encoding, int standalone)
{
	if (encoding != NULL && strcasecmp(encoding, "UTF-8") != 0)
		fail(data, XML_PARSE_BAD_ENCODING, "the XML declaration names the encoding %.64s, not UTF-8",
		     encoding);
}

/* Everything without a handler of its own lands here and is dropped; having
 * a default handler also keeps expat from expanding internal entities. */
static void XMLCALL on_default(void *data, const XML_Char *s, int len)
{
}

/* ---- expat instances ------------------------------------------------------ */

static void expat_create(struct xml_parser *p)
{
	struct xml_parser *prev = alloc_owner;
	alloc_owner = p;
	p->mem_limit_hit = false;
	XML_Parser xp = XML_ParserCreate_MM("UTF-8", &counted_mm, NS_SEP_STR);
	alloc_owner = prev;
	if (xp == NULL)
		log_fatal("cannot create an XML parser (out of memory)");
	p->xp = xp;
	XML_SetUserData(xp, p);
	XML_SetHashSalt(xp, p->salt);
	XML_SetReturnNSTriplet(xp, XML_TRUE);
	XML_SetParamEntityParsing(xp, XML_PARAM_ENTITY_PARSING_NEVER);
	XML_SetElementHandler(xp, on_start, on_end);
	XML_SetCharacterDataHandler(xp, on_text);
	XML_SetStartNamespaceDeclHandler(xp, on_ns_decl);
	XML_SetStartDoctypeDeclHandler(xp, on_doctype);
	XML_SetEntityDeclHandler(xp, on_entity_decl);
	XML_SetCommentHandler(xp, on_comment);
	XML_SetProcessingInstructionHandler(xp, on_pi);
	XML_SetSkippedEntityHandler(xp, on_skipped_entity);
	XML_SetXmlDeclHandler(xp, on_xml_decl);
	XML_SetDefaultHandler(xp, on_default);
	if (XML_SetBillionLaughsAttackProtectionMaximumAmplification != NULL)
		XML_SetBillionLaughsAttackProtectionMaximumAmplification(xp, 2.0f);
	if (XML_SetBillionLaughsAttackProtectionActivationThreshold != NULL)
		XML_SetBillionLaughsAttackProtectionActivationThreshold(xp, 65536);
	/* Deferral would sit on the end of a stanza until more bytes come. */
	if (XML_SetReparseDeferralEnabled != NULL)
		XML_SetReparseDeferralEnabled(xp, XML_FALSE);
	p->fed = p->chunk_start = p->idle_mark = 0;
}

static void expat_free(struct xml_parser *p)
{
	if (p->xp != NULL) {
		XML_ParserFree(p->xp);
		p->xp = NULL;
	}
}

/* Back to "expecting a stream header", keeping configuration. */
static void reset_stream(struct xml_parser *p)
{
	expat_free(p);
	drop_stanza(p);
	buf_free(&p->text);
	buf_free(&p->header_decls);
	xfree(&p->header_default_ns);
	xfree(&p->header_replay);
	p->header_replay_len = 0;
	p->started = p->ended = p->replaying = false;
	p->depth = 0;
	p->pending_decls = 0;
	p->failed = false;
	p->error = XML_PARSE_OK;
	p->error_text[0] = '\0';
	p->suspending = p->suspended = false;
	p->rest_held = 0;
	p->fed = p->chunk_start = p->idle_mark = 0;
}

struct xml_parser *xml_parser_new(const struct xml_parser_limits *limits,
                                  const struct xml_parser_callbacks *cb, void *ctx)
{
	struct xml_parser *p = xcalloc(1, sizeof(*p));
	if (limits != NULL)
		p->limits = *limits;
	if (p->limits.max_stanza == 0)
		p->limits.max_stanza = DEFAULT_MAX_STANZA;
	if (p->limits.max_depth == 0)
		p->limits.max_depth = DEFAULT_MAX_DEPTH;
	if (p->limits.max_attrs == 0)
		p->limits.max_attrs = DEFAULT_MAX_ATTRS;
	/* Room for a maximal stanza buffered twice over, plus expat's tables. */
	p->mem_limit = 4 * p->limits.max_stanza + 1024 * 1024;
	if (cb != NULL)
		p->cb = *cb;
	p->ctx = ctx;
	random_bytes(&p->salt, sizeof(p->salt));
	return p;
}

void xml_parser_free(struct xml_parser **pp)
{
	struct xml_parser *p = *pp;
	if (p == NULL)
		return;
	if (p->in_expat)
		log_fatal("xml_parser_free called from a parser callback");
	reset_stream(p);
	buf_free(&p->rest);
	free(p);
	*pp = NULL;
}

/* ---- feeding ------------------------------------------------------------- */

/* After a parse or resume: classify the outcome.  data/len is the chunk
 * just given to expat (NULL for a resume). */
static enum xml_feed_result after_parse(struct xml_parser *p, enum XML_Status st, const char *data,
                                        size_t len)
{
	if (st == XML_STATUS_ERROR || p->failed) {
		if (!p->failed)
			fail_expat(p);
		p->suspending = false;
		return XML_FEED_ERROR;
	}
	if (st == XML_STATUS_SUSPENDED) {
		if (!p->suspending)
			log_fatal("XML parser suspended without a request");
		p->suspending = false;
		p->suspended = true;
		if (data != NULL) {
			/* Suspended in a fresh chunk (rest was empty): keep its tail. */
			size_t off = (size_t)(p->susp_end - p->chunk_start);
			buf_reset(&p->rest);
			buf_append(&p->rest, data + off, len - off);
			p->rest_held = len - off;
		} else {
			/* Suspended again while resuming: drop what was parsed. */
			size_t parsed = (size_t)(p->susp_end - p->rest_start);
			buf_consume(&p->rest, parsed);
			p->rest_held -= parsed;
		}
		p->rest_start = p->susp_end;
		return XML_FEED_SUSPENDED;
	}
	/* Everything given to expat was parsed (up to an incomplete token). */
	long long mark = p->stanza != NULL ? p->stanza_start : p->idle_mark;
	if (p->fed - mark > (long long)p->limits.max_stanza) {
		fail(p, XML_PARSE_POLICY, "stanza larger than %zu bytes", p->limits.max_stanza);
		return XML_FEED_ERROR;
	}
	return XML_FEED_OK;
}

static enum XML_Status expat_parse(struct xml_parser *p, const char *data, size_t len)
{
	struct xml_parser *prev = alloc_owner;
	alloc_owner = p;
	p->in_expat = true;
	p->chunk_start = p->fed;
	p->fed += (long long)len;
	enum XML_Status st = XML_Parse(p->xp, data, (int)len, XML_FALSE);
	p->in_expat = false;
	alloc_owner = prev;
	return st;
}

/* Create expat if there is none; after a compact, replay the header. */
static bool ensure_expat(struct xml_parser *p)
{
	if (p->xp != NULL)
		return true;
	expat_create(p);
	if (!p->started || p->ended)
		return true;
	p->replaying = true;
	p->depth = 0;
	enum XML_Status st = expat_parse(p, p->header_replay, p->header_replay_len);
	p->replaying = false;
	if (st != XML_STATUS_OK || p->failed || p->depth != 1) {
		if (!p->failed)
			fail_expat(p);
		return false;
	}
	return true;
}

static enum xml_feed_result feed(struct xml_parser *p, const char *data, size_t len)
{
	if (len > INT_MAX) {
		fail(p, XML_PARSE_POLICY, "input chunk too large");
		return XML_FEED_ERROR;
	}
	/* Expat would switch to UTF-16 on a byte order mark or a NUL byte at
	 * the start; those bytes are never valid in UTF-8 XML, so refuse them. */
	for (size_t i = 0; !p->started && p->fed + (long long)i < 2 && i < len; i++) {
		unsigned char c = (unsigned char)data[i];
		if (c == 0x00 || c == 0xfe || c == 0xff) {
			fail(p, XML_PARSE_NOT_WELL_FORMED, "the stream is not UTF-8");
			return XML_FEED_ERROR;
		}
	}
	if (!ensure_expat(p))
		return XML_FEED_ERROR;
	enum XML_Status st = expat_parse(p, data, len);
	return after_parse(p, st, data, len);
}

enum xml_feed_result xml_parser_feed(struct xml_parser *p, const char *data, size_t len)
{
	if (p->in_expat)
		log_fatal("xml_parser_feed called from a parser callback");
	if (p->failed)
		return XML_FEED_ERROR;
	if (p->suspended) {
		/* Not for expat yet: it goes after the bytes kept at the suspension. */
		buf_append(&p->rest, data, len);
		return XML_FEED_SUSPENDED;
	}
	if (len == 0)
		return XML_FEED_OK;
	return feed(p, data, len);
}

enum xml_feed_result xml_parser_resume(struct xml_parser *p)
{
	if (p->in_expat)
		log_fatal("xml_parser_resume called from a parser callback");
	if (p->failed)
		return XML_FEED_ERROR;
	if (!p->suspended)
		return XML_FEED_OK;
	p->suspended = false;
	struct xml_parser *prev = alloc_owner;
	alloc_owner = p;
	p->in_expat = true;
	enum XML_Status st = XML_ResumeParser(p->xp);
	p->in_expat = false;
	alloc_owner = prev;
	enum xml_feed_result r = after_parse(p, st, NULL, 0);
	if (r != XML_FEED_OK || p->suspended)
		return r;
	/* Expat has parsed all it held; give it what came in meanwhile. */
	size_t held = p->rest_held;
	struct buf extra = p->rest;
	p->rest = (struct buf){ 0 };
	p->rest_held = 0;
	if (extra.len > held)
		r = feed(p, extra.data + held, extra.len - held);
	buf_free(&extra);
	return r;
}

bool xml_parser_suspended(const struct xml_parser *p)
{
	return p->suspended;
}

enum xml_feed_result xml_parser_restart(struct xml_parser *p, bool keep_rest)
{
	if (p->in_expat)
		log_fatal("xml_parser_restart called from a parser callback");
	bool had_rest = p->suspended && keep_rest && p->rest.len > 0;
	struct buf rest = p->rest;
	p->rest = (struct buf){ 0 };
	reset_stream(p);
	enum xml_feed_result r = XML_FEED_OK;
	if (had_rest)
		r = feed(p, rest.data, rest.len);
	buf_free(&rest);
	return r;
}

enum xml_parse_error xml_parser_error(const struct xml_parser *p)
{
	return p->error;
}

const char *xml_parser_error_text(const struct xml_parser *p)
{
	return p->error_text[0] != '\0' ? p->error_text : "no error";
}

bool xml_parser_compact(struct xml_parser *p)
{
	if (p->in_expat)
		log_fatal("xml_parser_compact called from a parser callback");
	if (p->xp == NULL || p->failed || p->suspended || !p->started || p->ended || p->depth != 1 ||
	    p->idle_mark != p->fed)
		return false;
	expat_free(p);
	buf_free(&p->text);
	buf_free(&p->rest);
	return true;
}

size_t xml_parser_memory(const struct xml_parser *p)
{
	return p->mem;
}

/* ---- one element from a string ------------------------------------------- */

struct parse_one {
	struct xml_node *el;
	unsigned count;
	bool ended;
};

static void one_start(void *ctx, struct xml_node *header, const char *default_ns)
{
	xml_unref(&header);
}

static bool one_stanza(void *ctx, struct xml_node *stanza)
{
	struct parse_one *po = ctx;
	if (po->count++ == 0)
		po->el = stanza;
	else
		xml_unref(&stanza);
	return false;
}

static void one_end(void *ctx)
{
	((struct parse_one *)ctx)->ended = true;
}

static _Thread_local char parse_string_error[240];

struct xml_node *xml_parse_string(const char *s, size_t len, const char *default_ns,
                                  const struct xml_parser_limits *limits, const char **error_r)
{
	static const struct xml_parser_callbacks cb = {
		.stream_start = one_start,
		.stanza = one_stanza,
		.stream_end = one_end,
	};
	struct parse_one po = { 0 };
	struct xml_parser *p = xml_parser_new(limits, &cb, &po);
	struct buf head = { 0 };
	buf_append_str(&head, "<stream:stream xmlns:stream='" NS_STREAM "'");
	if (default_ns != NULL) {
		buf_append_str(&head, " xmlns='");
		xml_escape(&head, default_ns, strlen(default_ns), true);
		buf_append(&head, "'", 1);
	}
	buf_append(&head, ">", 1);
	static const char tail[] = "</stream:stream>";
	const char *err = NULL;
	if (xml_parser_feed(p, head.data, head.len) != XML_FEED_OK ||
	    (len > 0 && xml_parser_feed(p, s, len) != XML_FEED_OK)) {
		snprintf(parse_string_error, sizeof(parse_string_error), "%s", xml_parser_error_text(p));
		err = parse_string_error;
	} else if (po.ended) {
		err = "the input closes the stream it is parsed in";
	} else if (xml_parser_feed(p, tail, sizeof(tail) - 1) != XML_FEED_OK || !po.ended) {
		snprintf(parse_string_error, sizeof(parse_string_error), "%s", xml_parser_error_text(p));
		err = parse_string_error;
	} else if (po.count != 1) {
		err = po.count == 0 ? "no element" : "more than one element";
	}
	buf_free(&head);
	xml_parser_free(&p);
	if (err != NULL) {
		xml_unref(&po.el);
		if (error_r != NULL)
			*error_r = err;
		return NULL;
	}
	return po.el;
}
