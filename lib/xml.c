/*
 * XML element trees in a pool, and their serialisation.
 *
 * Loop thread (or whichever single thread owns the tree at the moment).
 *
 * Invariants:
 * - Every node and string of a tree lives in the pool of its root; the pool
 *   reference count is the tree's reference count.
 * - Elements always have a non-NULL ns ("" for no namespace).  Children
 *   share their parent's ns pointer when the namespace is the same, so
 *   serialisation and copying mostly compare pointers.
 * - An attribute has ns NULL (unqualified), NS_XML (its name then carries
 *   the "xml:" prefix, e.g. "xml:lang") or another namespace URI (name is
 *   the local name).  xml_attr and xml_set_attr address the first two kinds
 *   by name; the third kind is kept and serialised but not looked up.
 * - Serialisation writes well-formed XML whatever a tree holds: a
 *   character XML 1.0 forbids (a C0 control but tab, LF and CR; U+FFFE,
 *   U+FFFF) in text or an attribute value, which the parser never lets
 *   in but text from elsewhere (a directory, an admin command, a stored
 *   row) may carry, is written as U+FFFD.
 */
#include "xml.h"
#include "log.h"

/* First block of a tree's pool: a small stanza fits in one malloc. */
#define XML_POOL_BLOCK 1024

static struct xml_node *node_new(struct pool *p, enum xml_node_type type)
{
	struct xml_node *n = pool_alloc(p, sizeof(*n));
	n->type = type;
	n->pool = p;
	return n;
}

static void append_node(struct xml_node *parent, struct xml_node *n)
{
	n->parent = parent;
	if (parent->last_child != NULL)
		parent->last_child->next = n;
	else
		parent->children = n;
	parent->last_child = n;
}

/* ---- building --------------------------------------------------------- */

struct xml_node *xml_new(const char *name, const char *ns)
{
	struct pool *p = pool_new(XML_POOL_BLOCK);
	struct xml_node *el = node_new(p, XML_ELEMENT);
	el->name = pool_strdup(p, name);
	el->ns = ns != NULL ? pool_strdup(p, ns) : "";
	return el;
}

struct xml_node *xml_add_child(struct xml_node *parent, const char *name, const char *ns)
{
	struct xml_node *el = node_new(parent->pool, XML_ELEMENT);
	el->name = pool_strdup(parent->pool, name);
	if (ns == NULL || str_eq(ns, parent->ns))
		el->ns = parent->ns != NULL ? parent->ns : "";
	else
		el->ns = pool_strdup(parent->pool, ns);
	append_node(parent, el);
	return el;
}

static struct xml_node *text_new(struct pool *p, const char *text, size_t len)
{
	struct xml_node *t = node_new(p, XML_TEXT);
	char *s = pool_alloc(p, len + 1);
	memcpy(s, text, len);
	t->text = s;
	t->text_len = len;
	return t;
}

void xml_add_text(struct xml_node *parent, const char *text, size_t len)
{
	if (len == 0)
		return;
	struct xml_node *last = parent->last_child;
	if (last != NULL && last->type == XML_TEXT) {
		char *s = pool_alloc(parent->pool, last->text_len + len + 1);
		memcpy(s, last->text, last->text_len);
		memcpy(s + last->text_len, text, len);
		last->text = s;
		last->text_len += len;
		return;
	}
	append_node(parent, text_new(parent->pool, text, len));
}

static bool attr_named(const struct xml_attr *a, const char *name)
{
	return strcmp(a->name, name) == 0 && (a->ns == NULL || strcmp(a->ns, NS_XML) == 0);
}

void xml_set_attr(struct xml_node *el, const char *name, const char *value)
{
	struct xml_attr **link = &el->attrs;
	for (; *link != NULL; link = &(*link)->next) {
		if (!attr_named(*link, name))
			continue;
		if (value == NULL)
			*link = (*link)->next;
		else
			(*link)->value = pool_strdup(el->pool, value);
		return;
	}
	if (value == NULL)
		return;
	struct xml_attr *a = pool_alloc(el->pool, sizeof(*a));
	a->name = pool_strdup(el->pool, name);
	a->ns = str_has_prefix(name, "xml:") ? NS_XML : NULL;
	a->value = pool_strdup(el->pool, value);
	*link = a;
}

/* A string of src's tree for the pool p: shared when the pools are the same. */
static const char *copy_str(struct pool *p, const struct xml_node *src, const char *s)
{
	if (s == NULL || src->pool == p)
		return s;
	return pool_strdup(p, s);
}

static struct xml_node *copy_node(struct pool *p, const struct xml_node *src, struct xml_node *parent)
{
	if (src->type == XML_TEXT) {
		struct xml_node *t = text_new(p, src->text, src->text_len);
		if (parent != NULL)
			append_node(parent, t);
		return t;
	}
	struct xml_node *el = node_new(p, XML_ELEMENT);
	el->name = copy_str(p, src, src->name);
	if (parent != NULL && str_eq(parent->ns, src->ns))
		el->ns = parent->ns;
	else
		el->ns = src->ns != NULL ? copy_str(p, src, src->ns) : "";
	struct xml_attr **link = &el->attrs;
	for (const struct xml_attr *sa = src->attrs; sa != NULL; sa = sa->next) {
		struct xml_attr *a = pool_alloc(p, sizeof(*a));
		a->name = copy_str(p, src, sa->name);
		if (sa->ns != NULL && strcmp(sa->ns, NS_XML) == 0)
			a->ns = NS_XML;
		else
			a->ns = copy_str(p, src, sa->ns);
		a->value = copy_str(p, src, sa->value);
		*link = a;
		link = &a->next;
	}
	if (parent != NULL)
		append_node(parent, el);
	for (const struct xml_node *c = src->children; c != NULL; c = c->next)
		copy_node(p, c, el);
	return el;
}

struct xml_node *xml_append_copy(struct xml_node *parent, const struct xml_node *src)
{
	return copy_node(parent->pool, src, parent);
}

void xml_remove(struct xml_node *el)
{
	struct xml_node *parent = el->parent;
	if (parent == NULL)
		return;
	struct xml_node *prev = NULL;
	for (struct xml_node *c = parent->children; c != el; c = c->next) {
		if (c == NULL)
			log_fatal("xml_remove: node is not a child of its parent");
		prev = c;
	}
	if (prev != NULL)
		prev->next = el->next;
	else
		parent->children = el->next;
	if (parent->last_child == el)
		parent->last_child = prev;
	el->parent = NULL;
	el->next = NULL;
}

/* Bytes a copy of the subtree needs in a pool (a slight overestimate:
 * each allocation is counted with its worst alignment padding). */
static size_t copy_size(const struct xml_node *n)
{
	const size_t pad = 16;
	size_t sz = sizeof(*n) + pad;
	if (n->type == XML_TEXT)
		return sz + n->text_len + 1 + pad;
	sz += strlen(n->name) + 1 + pad + (n->ns != NULL ? strlen(n->ns) + 1 + pad : 0);
	for (const struct xml_attr *a = n->attrs; a != NULL; a = a->next)
		sz += sizeof(*a) + pad + strlen(a->name) + 1 + pad + strlen(a->value) + 1 + pad +
		      (a->ns != NULL ? strlen(a->ns) + 1 + pad : 0);
	for (const struct xml_node *c = n->children; c != NULL; c = c->next)
		sz += copy_size(c);
	return sz;
}

struct xml_node *xml_copy(const struct xml_node *src)
{
	/* Sized to fit: copies are what long-lived holders (a session's last
	 * presence) keep, so they should not carry a mostly empty block. */
	struct pool *p = pool_new(copy_size(src));
	return copy_node(p, src, NULL);
}

void xml_ref(struct xml_node *root)
{
	pool_ref(root->pool);
}

void xml_unref(struct xml_node **el)
{
	if (*el == NULL)
		return;
	struct pool *p = (*el)->pool;
	*el = NULL;
	pool_unref(&p);
}

/* ---- reading ----------------------------------------------------------- */

const char *xml_attr(const struct xml_node *el, const char *name)
{
	for (const struct xml_attr *a = el->attrs; a != NULL; a = a->next)
		if (attr_named(a, name))
			return a->value;
	return NULL;
}

static bool ns_matches(const char *have, const char *want)
{
	return want == NULL || have == want || (have != NULL && strcmp(have, want) == 0);
}

bool xml_is(const struct xml_node *el, const char *name, const char *ns)
{
	return el != NULL && el->type == XML_ELEMENT && (name == NULL || strcmp(el->name, name) == 0) &&
	       ns_matches(el->ns, ns);
}

struct xml_node *xml_child(const struct xml_node *el, const char *name, const char *ns)
{
	for (struct xml_node *c = el->children; c != NULL; c = c->next)
		if (xml_is(c, name, ns))
			return c;
	return NULL;
}

struct xml_node *xml_next(const struct xml_node *cur, const char *name, const char *ns)
{
	for (struct xml_node *c = cur->next; c != NULL; c = c->next)
		if (xml_is(c, name, ns))
			return c;
	return NULL;
}

struct xml_node *xml_first_element(const struct xml_node *el)
{
	return xml_child(el, NULL, NULL);
}

unsigned xml_element_count(const struct xml_node *el)
{
	unsigned n = 0;
	for (const struct xml_node *c = el->children; c != NULL; c = c->next)
		if (c->type == XML_ELEMENT)
			n++;
	return n;
}

const char *xml_text(const struct xml_node *el)
{
	const struct xml_node *only = NULL;
	size_t total = 0;
	unsigned count = 0;
	for (const struct xml_node *c = el->children; c != NULL; c = c->next) {
		if (c->type != XML_TEXT)
			continue;
		only = c;
		total += c->text_len;
		count++;
	}
	if (count == 0)
		return "";
	if (count == 1)
		return only->text;
	char *s = pool_alloc(el->pool, total + 1);
	size_t off = 0;
	for (const struct xml_node *c = el->children; c != NULL; c = c->next) {
		if (c->type != XML_TEXT)
			continue;
		memcpy(s + off, c->text, c->text_len);
		off += c->text_len;
	}
	return s;
}

const char *xml_child_text(const struct xml_node *el, const char *name, const char *ns)
{
	const struct xml_node *c = xml_child(el, name, ns);
	return c != NULL ? xml_text(c) : NULL;
}

static const struct xml_attr *attr_skipping(const struct xml_attr *a, const char *skip)
{
	while (a != NULL && skip != NULL && attr_named(a, skip))
		a = a->next;
	return a;
}

static bool str_same(const char *a, const char *b)
{
	return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

bool xml_same(const struct xml_node *a, const struct xml_node *b, const char *skip)
{
	if (a->type != b->type)
		return false;
	if (a->type == XML_TEXT)
		return a->text_len == b->text_len && memcmp(a->text, b->text, a->text_len) == 0;
	if (!str_same(a->name, b->name) || !str_same(a->ns, b->ns))
		return false;
	const struct xml_attr *x = attr_skipping(a->attrs, skip), *y = attr_skipping(b->attrs, skip);
	for (; x != NULL && y != NULL; x = attr_skipping(x->next, skip), y = attr_skipping(y->next, skip))
		if (!str_same(x->name, y->name) || !str_same(x->ns, y->ns) || !str_same(x->value, y->value))
			return false;
	if (x != NULL || y != NULL)
		return false;
	const struct xml_node *c = a->children, *d = b->children;
	for (; c != NULL && d != NULL; c = c->next, d = d->next)
		if (!xml_same(c, d, NULL))
			return false;
	return c == NULL && d == NULL;
}

struct xml_node *xml_path(const struct xml_node *el, const char *path)
{
	struct xml_node *cur = (struct xml_node *)el;
	while (cur != NULL && *path != '\0') {
		const char *slash = strchr(path, '/');
		size_t len = slash != NULL ? (size_t)(slash - path) : strlen(path);
		struct xml_node *found = NULL;
		for (struct xml_node *c = cur->children; c != NULL; c = c->next) {
			if (c->type == XML_ELEMENT && strncmp(c->name, path, len) == 0 &&
			    c->name[len] == '\0') {
				found = c;
				break;
			}
		}
		cur = found;
		path += len;
		if (*path == '/')
			path++;
	}
	return cur;
}

/* ---- serialising ----------------------------------------------------------- */

/*
 * Escapes, indexed by byte: text escapes & < > and CR (which a parser would
 * otherwise turn into LF); attribute values also escape both quotes and TAB,
 * LF, CR (which attribute-value normalisation would turn into spaces).
 */
static const char *escape_for(unsigned char c, bool attr)
{
	switch (c) {
	case '&': return "&amp;";
	case '<': return "&lt;";
	case '>': return "&gt;";
	case '\r': return "&#13;";
	case '\'': return attr ? "&apos;" : NULL;
	case '"': return attr ? "&quot;" : NULL;
	case '\n': return attr ? "&#10;" : NULL;
	case '\t': return attr ? "&#9;" : NULL;
	default: return NULL;
	}
}

/* Bit 1: escaped in text, bit 2: escaped in attribute values, bit 4: not
 * an XML character (the C0 controls but tab, LF and CR), or 0xef, the lead
 * byte of U+FFFE and U+FFFF, which are not either. */
static const unsigned char escape_class[256] = {
	['&'] = 3,  ['<'] = 3,  ['>'] = 3,  ['\r'] = 3, ['\''] = 2, ['"'] = 2,  ['\n'] = 2, ['\t'] = 2,
	[0x00] = 4, [0x01] = 4, [0x02] = 4, [0x03] = 4, [0x04] = 4, [0x05] = 4, [0x06] = 4, [0x07] = 4,
	[0x08] = 4, [0x0b] = 4, [0x0c] = 4, [0x0e] = 4, [0x0f] = 4, [0x10] = 4, [0x11] = 4, [0x12] = 4,
	[0x13] = 4, [0x14] = 4, [0x15] = 4, [0x16] = 4, [0x17] = 4, [0x18] = 4, [0x19] = 4, [0x1a] = 4,
	[0x1b] = 4, [0x1c] = 4, [0x1d] = 4, [0x1e] = 4, [0x1f] = 4, [0xef] = 4,
};

#define REPLACEMENT_CHAR "\xef\xbf\xbd" /* U+FFFD */

void xml_escape(struct buf *out, const char *s, size_t len, bool attr)
{
	unsigned char mask = (attr ? 2 : 1) | 4;
	size_t run = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!(escape_class[c] & mask))
			continue;
		size_t n = 1;
		const char *with;
		if (escape_class[c] & 4) {
			if (c == 0xef) {
				/* only EF BF BE and EF BF BF: U+FFFE, U+FFFF */
				if (len - i < 3 || (unsigned char)s[i + 1] != 0xbf ||
				    ((unsigned char)s[i + 2] & 0xfe) != 0xbe)
					continue;
				n = 3;
			}
			with = REPLACEMENT_CHAR;
		} else {
			with = escape_for(c, attr);
		}
		buf_append(out, s + run, i - run);
		buf_append_str(out, with);
		i += n - 1;
		run = i + 1;
	}
	buf_append(out, s + run, len - run);
}

static void put_attr(struct buf *out, const char *prefix, const char *name, const char *value)
{
	buf_append(out, " ", 1);
	if (prefix != NULL) {
		buf_append_str(out, prefix);
		buf_append(out, ":", 1);
	}
	buf_append_str(out, name);
	buf_append(out, "='", 2);
	xml_escape(out, value, strlen(value), true);
	buf_append(out, "'", 1);
}

/* Index of the generated prefix for a's namespace, and whether a is the
 * first attribute of el in that namespace (so the prefix must be declared). */
static unsigned attr_prefix(const struct xml_node *el, const struct xml_attr *a, bool *first_r)
{
	unsigned distinct = 0;
	for (const struct xml_attr *b = el->attrs; b != a; b = b->next) {
		if (b->ns == NULL || b->ns[0] == '\0' || strcmp(b->ns, NS_XML) == 0)
			continue;
		bool seen = false;
		for (const struct xml_attr *c = el->attrs; c != b; c = c->next)
			if (c->ns != NULL && strcmp(c->ns, b->ns) == 0) {
				seen = true;
				break;
			}
		if (seen)
			continue;
		if (strcmp(b->ns, a->ns) == 0) {
			*first_r = false;
			return distinct;
		}
		distinct++;
	}
	*first_r = true;
	return distinct;
}

static void serialize_attrs(struct buf *out, const struct xml_node *el)
{
	for (const struct xml_attr *a = el->attrs; a != NULL; a = a->next) {
		if (a->ns == NULL || a->ns[0] == '\0') {
			put_attr(out, NULL, a->name, a->value);
		} else if (strcmp(a->ns, NS_XML) == 0) {
			put_attr(out, str_has_prefix(a->name, "xml:") ? NULL : "xml", a->name, a->value);
		} else {
			bool first;
			char prefix[16];
			snprintf(prefix, sizeof(prefix), "ns%u", attr_prefix(el, a, &first));
			if (first)
				put_attr(out, "xmlns", prefix, a->ns);
			put_attr(out, prefix, a->name, a->value);
		}
	}
}

void xml_serialize(struct buf *out, const struct xml_node *el, const char *parent_ns)
{
	if (el->type == XML_TEXT) {
		xml_escape(out, el->text, el->text_len, false);
		return;
	}
	const char *ns = el->ns != NULL ? el->ns : "";
	/* An element in the XML namespace (<xml:foo/> is namespace-well-formed:
	 * the prefix is bound by definition) keeps the prefix: that namespace
	 * may not be declared as the default one, so its children stay in the
	 * default namespace of el's parent. */
	bool xml_prefix = strcmp(ns, NS_XML) == 0;
	const char *scope = xml_prefix ? parent_ns : ns;
	buf_append(out, "<", 1);
	if (xml_prefix)
		buf_append(out, "xml:", 4);
	buf_append_str(out, el->name);
	if (!xml_prefix && ns != parent_ns && strcmp(ns, parent_ns != NULL ? parent_ns : "") != 0)
		put_attr(out, NULL, "xmlns", ns);
	serialize_attrs(out, el);
	if (el->children == NULL) {
		buf_append(out, "/>", 2);
		return;
	}
	buf_append(out, ">", 1);
	for (const struct xml_node *c = el->children; c != NULL; c = c->next)
		xml_serialize(out, c, scope);
	buf_append(out, "</", 2);
	if (xml_prefix)
		buf_append(out, "xml:", 4);
	buf_append_str(out, el->name);
	buf_append(out, ">", 1);
}

char *xml_to_string(const struct xml_node *el, const char *parent_ns)
{
	struct buf b = { 0 };
	xml_serialize(&b, el, parent_ns);
	return buf_steal(&b);
}

const char *xml_tag_end(const char *p, const char *end)
{
	char quote = 0;
	for (; p < end; p++) {
		if (quote != 0) {
			if (*p == quote)
				quote = 0;
		} else if (*p == '\'' || *p == '"') {
			quote = *p;
		} else if (*p == '>') {
			return p;
		}
	}
	return NULL;
}

int xml_wire_build(struct xml_wire *w, const struct xml_node *el, const char *parent_ns)
{
	memset(w, 0, sizeof(*w));
	const char *to = xml_attr(el, "to");
	if (to == NULL)
		return -1;
	struct buf all = { 0 };
	xml_serialize(&all, el, parent_ns);
	/* The start tag ends at the first '>': attribute values escape it.
	 * xml_serialize writes each attribute as " name='value'" with the
	 * quote escaped in values, so the tag is walked attribute by
	 * attribute: a search for " to='" would stop inside another
	 * attribute's value that ends in " to=". */
	const char *end = memchr(all.data, '>', all.len);
	const char *at = NULL, *close = NULL;
	const char *p = end != NULL ? memchr(all.data, ' ', (size_t)(end - all.data)) : NULL;
	while (p != NULL && p < end && *p == ' ') {
		const char *name = p + 1;
		const char *eq = memchr(name, '=', (size_t)(end - name));
		if (eq == NULL || eq + 1 >= end || eq[1] != '\'')
			break;
		const char *q = memchr(eq + 2, '\'', (size_t)(end - (eq + 2)));
		if (q == NULL)
			break;
		if (eq - name == 2 && memcmp(name, "to", 2) == 0) {
			at = eq + 2;
			close = q;
			break;
		}
		p = q + 1;
	}
	if (close == NULL) {
		buf_free(&all);
		return -1;
	}
	buf_append(&w->head, all.data, (size_t)(at - all.data));
	buf_append(&w->tail, close, all.len - (size_t)(close - all.data));
	buf_free(&all);
	return 0;
}

void xml_wire_free(struct xml_wire *w)
{
	buf_free(&w->head);
	buf_free(&w->tail);
}
