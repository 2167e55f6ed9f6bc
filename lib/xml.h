/*
 * XML element trees (stanzas) and their serialisation.
 *
 * A tree lives in one pool (arena): every node, name and string of a stanza
 * is allocated from it, and the whole tree goes away with one pool_unref.
 * Reference counting is on the pool (xml_ref/xml_unref on the root), so a
 * stanza fanned out to many streams is shared, never copied.  Once a stanza
 * has been routed it is not modified; code that needs a changed copy calls
 * xml_copy.  Names are local names; the namespace of each element is
 * resolved (ns), so matching never depends on prefixes.
 *
 * Not thread-safe: a tree belongs to one thread at a time.
 */
#ifndef PARLEY_XML_H
#define PARLEY_XML_H

#include "util.h"

/* Namespaces used across the server. */
#define NS_CLIENT "jabber:client"
#define NS_SERVER "jabber:server"
#define NS_STREAM "http://etherx.jabber.org/streams"
#define NS_STREAMS "urn:ietf:params:xml:ns:xmpp-streams"
#define NS_STANZAS "urn:ietf:params:xml:ns:xmpp-stanzas"
#define NS_TLS "urn:ietf:params:xml:ns:xmpp-tls"
#define NS_SASL "urn:ietf:params:xml:ns:xmpp-sasl"
#define NS_BIND "urn:ietf:params:xml:ns:xmpp-bind"
#define NS_SESSION "urn:ietf:params:xml:ns:xmpp-session"
#define NS_XML "http://www.w3.org/XML/1998/namespace"
#define NS_ROSTER "jabber:iq:roster"
#define NS_DISCO_INFO "http://jabber.org/protocol/disco#info"
#define NS_DISCO_ITEMS "http://jabber.org/protocol/disco#items"
#define NS_VERSION "jabber:iq:version"
#define NS_PING "urn:xmpp:ping"
#define NS_TIME "urn:xmpp:time"
#define NS_REGISTER "jabber:iq:register"
#define NS_FEATURE_REGISTER "http://jabber.org/features/iq-register"
#define NS_DELAY "urn:xmpp:delay"
#define NS_DATA_FORMS "jabber:x:data"

enum xml_node_type { XML_ELEMENT, XML_TEXT };

struct xml_attr {
	const char *name; /* local name; "xml:lang" for the xml: prefix */
	const char *ns;   /* NULL for the (usual) unqualified attribute */
	const char *value;
	struct xml_attr *next;
};

struct xml_node {
	enum xml_node_type type;
	const char *name; /* element: local name; text: NULL */
	const char *ns;   /* element: namespace URI ("" when none) */
	const char *text; /* text: the characters (not escaped), NUL-terminated */
	size_t text_len;
	struct xml_attr *attrs; /* in document order */
	struct xml_node *parent;
	struct xml_node *children, *last_child, *next;
	struct pool *pool; /* the tree's pool (same for every node of a tree) */
};

/* ---- building --------------------------------------------------------- */
/* A new root element in a new pool (refcount 1). */
struct xml_node *xml_new(const char *name, const char *ns);
/* A new element appended to parent (same pool).  ns NULL inherits parent's. */
struct xml_node *xml_add_child(struct xml_node *parent, const char *name, const char *ns);
/* Append text (copied).  Adjacent text is merged. */
void xml_add_text(struct xml_node *parent, const char *text, size_t len);
/* Set or replace an attribute (copied into the pool); value NULL removes it. */
void xml_set_attr(struct xml_node *el, const char *name, const char *value);
/* Append a deep copy of a subtree from any pool as the last child of parent. */
struct xml_node *xml_append_copy(struct xml_node *parent, const struct xml_node *src);
/* Detach el from its parent (it stays in the pool). */
void xml_remove(struct xml_node *el);
/* A deep copy of a tree into a new pool. */
struct xml_node *xml_copy(const struct xml_node *src);

void xml_ref(struct xml_node *root);
/* Drop a reference to the tree that el belongs to; sets *el to NULL. */
void xml_unref(struct xml_node **el);

/* ---- reading ----------------------------------------------------------- */
const char *xml_attr(const struct xml_node *el, const char *name);
/* True when el is an element with this local name and namespace (ns NULL: any). */
bool xml_is(const struct xml_node *el, const char *name, const char *ns);
/* First child element with this name and namespace (either may be NULL: any). */
struct xml_node *xml_child(const struct xml_node *el, const char *name, const char *ns);
/* The next sibling element after cur matching name/ns (NULL: any). */
struct xml_node *xml_next(const struct xml_node *cur, const char *name, const char *ns);
/* First child element, whatever its name; and how many child elements. */
struct xml_node *xml_first_element(const struct xml_node *el);
unsigned xml_element_count(const struct xml_node *el);
/* Concatenated text of the direct text children (pool string; "" if none). */
const char *xml_text(const struct xml_node *el);
/* Text of the first child element name/ns, or NULL when there is no such child. */
const char *xml_child_text(const struct xml_node *el, const char *name, const char *ns);
/* Whether a and b are the same tree: names, namespaces, attributes (in
 * order) and text alike, except the root's attribute skip (NULL: none),
 * which may differ or be missing on either side. */
bool xml_same(const struct xml_node *a, const struct xml_node *b, const char *skip);
/* Path lookup: "query/item" follows first children by local name (any ns). */
struct xml_node *xml_path(const struct xml_node *el, const char *path);

/* ---- serialising ----------------------------------------------------------- */
/* Escape text for element content (&, <, >) or attribute values (also ' and ").
 * A character that XML 1.0 forbids (a C0 control but tab, LF and CR; U+FFFE,
 * U+FFFF) is written as U+FFFD, so the output is always well-formed. */
void xml_escape(struct buf *out, const char *s, size_t len, bool attr);
/* Append el serialised to out.  parent_ns is the default namespace already in
 * scope where el is written ("jabber:client" inside a c2s stream): xmlns is
 * written only where an element's namespace differs from its parent's. */
void xml_serialize(struct buf *out, const struct xml_node *el, const char *parent_ns);
/* Malloc'd serialisation with the given default namespace in scope (NULL: none). */
char *xml_to_string(const struct xml_node *el, const char *parent_ns);

/* The '>' that ends the tag whose text starts at p (anywhere after its
 * '<'), skipping '>' inside quoted attribute values; NULL when [p, end)
 * holds none.  A lexical scan of serialized XML, not a check of it: for
 * code that finds element boundaries without parsing (BOSH's direct path,
 * WebSocket framing of our own output). */
const char *xml_tag_end(const char *p, const char *end);

/* A stanza serialised once for many recipients (MUC and presence
 * fan-out): the bytes before the value of its 'to' attribute and the
 * bytes after it.  A recipient's copy is head, its escaped address, tail. */
struct xml_wire {
	struct buf head, tail;
};
/* Serialise el, which has a 'to' attribute, split at that attribute's
 * value.  -1 (w left empty) when el has no 'to'. */
int xml_wire_build(struct xml_wire *w, const struct xml_node *el, const char *parent_ns);
void xml_wire_free(struct xml_wire *w);

/* ---- stream parser ----------------------------------------------------- */
/*
 * An expat push parser for one XML stream.  It reports the stream header,
 * each complete depth-1 element (a stanza) and the stream's end.  The parser
 * is a wall: DTDs, entity declarations and references other than the five
 * predefined ones and character references, comments and processing
 * instructions are refused (XML_PARSE_RESTRICTED); an XML declaration
 * naming another encoding than UTF-8 is XML_PARSE_BAD_ENCODING (the bytes
 * are read as UTF-8 whatever it says); invalid XML or UTF-8 is
 * XML_PARSE_NOT_WELL_FORMED; a stanza larger than max_stanza bytes, deeper
 * than max_depth or with more than max_attrs attributes on one element is
 * XML_PARSE_POLICY.  Memory used by expat is counted per parser.
 */
enum xml_parse_error {
	XML_PARSE_OK = 0,
	XML_PARSE_NOT_WELL_FORMED, /* -> <not-well-formed/> */
	XML_PARSE_RESTRICTED,      /* -> <restricted-xml/> */
	XML_PARSE_POLICY,          /* -> <policy-violation/> (a limit) */
	XML_PARSE_BAD_NAMESPACE,   /* -> <invalid-namespace/> (header not in NS_STREAM) */
	XML_PARSE_BAD_ENCODING,    /* -> <unsupported-encoding/> (declared other than UTF-8) */
};

struct xml_parser_limits {
	size_t max_stanza;  /* bytes of one depth-1 element (default 262144) */
	unsigned max_depth; /* nesting below the stream element (default 64) */
	unsigned max_attrs; /* attributes on one element (default 64) */
};

struct xml_parser_callbacks {
	/* The stream header <stream:stream ...>: header is an element named
	 * "stream" in NS_STREAM with the header's attributes and no children; the
	 * callback owns a reference and must xml_unref it.  default_ns is the
	 * default namespace the header declares (e.g. "jabber:client"; "" if none). */
	void (*stream_start)(void *ctx, struct xml_node *header, const char *default_ns);
	/* A complete depth-1 element; the callback owns the reference.  Return
	 * true to suspend the parser right after this element (see below). */
	bool (*stanza)(void *ctx, struct xml_node *stanza);
	/* </stream:stream> */
	void (*stream_end)(void *ctx);
};

struct xml_parser;
struct xml_parser *xml_parser_new(const struct xml_parser_limits *limits,
                                  const struct xml_parser_callbacks *cb, void *ctx);
void xml_parser_free(struct xml_parser **p);

enum xml_feed_result {
	XML_FEED_OK,        /* all bytes consumed */
	XML_FEED_SUSPENDED, /* a stanza callback returned true; the rest is kept */
	XML_FEED_ERROR,     /* see xml_parser_error(); the parser is dead */
};
/* Feed bytes.  Callbacks run inside this call.  May not be called while
 * suspended (use xml_parser_resume first). */
enum xml_feed_result xml_parser_feed(struct xml_parser *p, const char *data, size_t len);
/* Continue after a suspension with the bytes that were kept. */
enum xml_feed_result xml_parser_resume(struct xml_parser *p);
bool xml_parser_suspended(const struct xml_parser *p);
/* Start a new stream (after STARTTLS or SASL success): the next bytes must
 * begin with an XML declaration or a stream header.  If the parser is
 * suspended, the bytes kept after the suspending stanza are fed to the new
 * stream (keep_rest true; pipelined data after SASL success) or discarded
 * (keep_rest false; mandatory after STARTTLS).  Returns as xml_parser_feed
 * (XML_FEED_OK when there was nothing to feed). */
enum xml_feed_result xml_parser_restart(struct xml_parser *p, bool keep_rest);

enum xml_parse_error xml_parser_error(const struct xml_parser *p);
/* Human-readable detail of the last error (for logs and <text/>). */
const char *xml_parser_error_text(const struct xml_parser *p);

/* Parse one element serialized in s (len bytes, not NUL-terminated; e.g.
 * a stanza kept in storage), as if it came as a stanza in a stream whose
 * default namespace is default_ns (NULL: none): through the same walled
 * parser and limits (NULL: the defaults) as a stream.  Returns a new tree
 * (refcount 1), or NULL with a description in *error_r (optional; a
 * static or thread-local string, valid until the next call on this thread)
 * when s is not exactly one well-formed element (whitespace around it
 * allowed) or breaks a limit or a rule of the wall. */
struct xml_node *xml_parse_string(const char *s, size_t len, const char *default_ns,
                                  const struct xml_parser_limits *limits, const char **error_r);

/* For code that runs expat itself over a document too large for one tree
 * (a file read one part at a time): expat created with
 * XML_ParserCreateNS(NULL, XML_NS_SEP) and XML_SetReturnNSTriplet on gives
 * names and attributes in the form this takes.  The element of one
 * start-element event, built as the walled parser builds it: a child of
 * parent, or with parent NULL a new root in a new pool (refcount 1). */
#define XML_NS_SEP '\x01'
struct xml_node *xml_element_from_expat(struct xml_node *parent, const char *name, const char **atts);

/* Free expat's state if the stream is at a clean stanza boundary (nothing
 * buffered but whitespace, not suspended); the next feed rebuilds it in the
 * same stream context.  Returns true when released.  Saves most of the
 * parser's memory on idle connections. */
bool xml_parser_compact(struct xml_parser *p);
/* Bytes expat currently holds from malloc (0 after a successful compact). */
size_t xml_parser_memory(const struct xml_parser *p);

#endif
