/*
 * Node configuration (XEP-0060 §8.2): defaults, the pubsub#node_config
 * form, submitted forms (configure, create, publish-options), the
 * pubsub#meta-data of disco#info, and the text the store keeps.
 *
 * Every field is one entry of the field table: its var, its kind and
 * where it lives in struct ps_config; the form, the parser, the
 * precondition check and the stored text all walk that table.  Loop
 * thread.
 */
#include "pubsub.h"

#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const access_names[] = {
	[PS_ACCESS_OPEN] = "open",           [PS_ACCESS_PRESENCE] = "presence",
	[PS_ACCESS_ROSTER] = "roster",       [PS_ACCESS_WHITELIST] = "whitelist",
	[PS_ACCESS_AUTHORIZE] = "authorize",
};
static const char *const publish_names[] = {
	[PS_PUBLISH_PUBLISHERS] = "publishers",
	[PS_PUBLISH_SUBSCRIBERS] = "subscribers",
	[PS_PUBLISH_OPEN] = "open",
};
static const char *const send_last_names[] = {
	[PS_SEND_LAST_NEVER] = "never",
	[PS_SEND_LAST_ON_SUB] = "on_sub",
	[PS_SEND_LAST_ON_SUB_AND_PRESENCE] = "on_sub_and_presence",
};
static const char *const notification_names[] = { "normal", "headline" };

static const char *const aff_names[] = {
	[PS_AFF_OUTCAST] = "outcast",           [PS_AFF_NONE] = "none",
	[PS_AFF_PUBLISH_ONLY] = "publish-only", [PS_AFF_MEMBER] = "member",
	[PS_AFF_PUBLISHER] = "publisher",       [PS_AFF_OWNER] = "owner",
};

const char *ps_aff_str(enum ps_aff a)
{
	return (size_t)a < ARRAY_SIZE(aff_names) ? aff_names[a] : "none";
}

int ps_aff_parse(const char *s)
{
	for (size_t i = 0; s != NULL && i < ARRAY_SIZE(aff_names); i++)
		if (strcmp(s, aff_names[i]) == 0)
			return (int)i;
	return -1;
}

const char *ps_access_str(enum ps_access a)
{
	return (size_t)a < ARRAY_SIZE(access_names) ? access_names[a] : "open";
}

enum field_kind { F_TEXT, F_BOOL, F_LIST, F_MAX_ITEMS, F_GROUPS, F_HEADLINE, F_INFO };

struct field {
	const char *var; /* without "pubsub#" */
	enum field_kind kind;
	size_t offset;
	const char *const *names; /* F_LIST */
	size_t nnames;
	const char *label;
};

#define CFG(f) offsetof(struct ps_config, f)
#define NAMES(a) a, ARRAY_SIZE(a)

static const struct field fields[] = {
	{ "title", F_TEXT, CFG(title), NULL, 0, "A short name for the node" },
	{ "description", F_TEXT, CFG(description), NULL, 0, "A description of the node" },
	{ "type", F_TEXT, CFG(type), NULL, 0, "The type of the payloads (a namespace)" },
	{ "access_model", F_LIST, CFG(access), NAMES(access_names), "Who may subscribe and retrieve items" },
	{ "roster_groups_allowed", F_GROUPS, CFG(roster_groups), NULL, 0,
	  "Roster groups allowed to subscribe (access model roster)" },
	{ "publish_model", F_LIST, CFG(publish_model), NAMES(publish_names), "Who may publish" },
	{ "send_last_published_item", F_LIST, CFG(send_last), NAMES(send_last_names),
	  "When to send the last published item" },
	{ "max_items", F_MAX_ITEMS, CFG(max_items), NULL, 0, "Most items to keep (a number or max)" },
	{ "deliver_notifications", F_BOOL, CFG(deliver_notifications), NULL, 0,
	  "Deliver event notifications" },
	{ "deliver_payloads", F_BOOL, CFG(deliver_payloads), NULL, 0, "Deliver payloads with notifications" },
	{ "persist_items", F_BOOL, CFG(persist_items), NULL, 0, "Keep items" },
	{ "notify_retract", F_BOOL, CFG(notify_retract), NULL, 0,
	  "Notify subscribers when items are retracted" },
	{ "notify_delete", F_BOOL, CFG(notify_delete), NULL, 0,
	  "Notify subscribers when the node is deleted" },
	{ "notify_config", F_BOOL, CFG(notify_config), NULL, 0,
	  "Notify subscribers when the configuration changes" },
	{ "subscribe", F_BOOL, CFG(subscribe), NULL, 0, "Allow subscriptions" },
	{ "notification_type", F_HEADLINE, CFG(headline), NAMES(notification_names),
	  "Message type of notifications" },
	{ "max_payload_size", F_INFO, 0, NULL, 0, "Largest item payload in bytes" },
};

void ps_config_defaults(struct ps_config *c, const struct pubsub_settings *s, bool pep)
{
	*c = (struct ps_config){
		.access = pep ? PS_ACCESS_PRESENCE : PS_ACCESS_OPEN,
		.publish_model = PS_PUBLISH_PUBLISHERS,
		/* XEP-0060 §6.1.7: with #last-published, on_sub_and_presence */
		.send_last = PS_SEND_LAST_ON_SUB_AND_PRESENCE,
		.max_items = pep ? 1 : (s != NULL ? s->default_max_items : 10),
		.deliver_notifications = true,
		.deliver_payloads = true,
		.persist_items = true,
		.notify_retract = true,
		.notify_delete = true,
		.notify_config = false,
		.subscribe = true,
		.headline = true,
	};
	if (s != NULL && c->max_items > s->max_items_per_node)
		c->max_items = s->max_items_per_node;
}

void ps_config_clear(struct ps_config *c)
{
	free(c->title);
	free(c->description);
	free(c->type);
	strlist_free(&c->roster_groups);
	memset(c, 0, sizeof(*c));
}

static void groups_copy(struct strlist *dst, const struct strlist *src)
{
	dst->count = src->count;
	dst->items = src->count > 0 ? xcalloc(src->count, sizeof(char *)) : NULL;
	for (size_t i = 0; i < src->count; i++)
		dst->items[i] = xstrdup(src->items[i]);
}

void ps_config_copy(struct ps_config *dst, const struct ps_config *src)
{
	*dst = *src;
	dst->title = src->title != NULL ? xstrdup(src->title) : NULL;
	dst->description = src->description != NULL ? xstrdup(src->description) : NULL;
	dst->type = src->type != NULL ? xstrdup(src->type) : NULL;
	groups_copy(&dst->roster_groups, &src->roster_groups);
}

/* ---- forms ------------------------------------------------------------ */

static struct xml_node *add_field(struct xml_node *x, const char *var, const char *type, const char *label)
{
	struct xml_node *f = xml_add_child(x, "field", NULL);
	xml_set_attr(f, "var", var);
	if (type != NULL)
		xml_set_attr(f, "type", type);
	if (label != NULL)
		xml_set_attr(f, "label", label);
	return f;
}

static void add_value(struct xml_node *f, const char *v)
{
	xml_add_text(xml_add_child(f, "value", NULL), v, strlen(v));
}

static void max_items_str(char out[16], unsigned v)
{
	if (v == PS_MAX_ITEMS_MAX)
		snprintf(out, 16, "max");
	else
		snprintf(out, 16, "%u", v);
}

/* The value of field f in c, as a form gives it (F_GROUPS: NULL). */
static const char *field_value(const struct field *f, const struct ps_config *c, char buf[24],
                               const struct pubsub_settings *s)
{
	const void *p = (const char *)c + f->offset;
	switch (f->kind) {
	case F_TEXT: return *(char *const *)p != NULL ? *(char *const *)p : "";
	case F_BOOL: return *(const bool *)p ? "1" : "0";
	case F_LIST: {
		unsigned v = *(const unsigned *)p;
		return v < f->nnames ? f->names[v] : f->names[0];
	}
	case F_HEADLINE: return *(const bool *)p ? "headline" : "normal";
	case F_MAX_ITEMS: max_items_str(buf, *(const unsigned *)p); return buf;
	case F_INFO: snprintf(buf, 24, "%zu", s != NULL ? s->max_item_size : 0); return buf;
	case F_GROUPS: break;
	}
	return NULL;
}

struct xml_node *ps_config_form(const struct ps_config *c, const char *node, const struct pubsub_settings *s)
{
	struct xml_node *x = xml_new("x", NS_XDATA);
	xml_set_attr(x, "type", "form");
	struct xml_node *ft = add_field(x, "FORM_TYPE", "hidden", NULL);
	add_value(ft, NS_PUBSUB_NODE_CONFIG);
	(void)node;
	for (size_t i = 0; i < ARRAY_SIZE(fields); i++) {
		const struct field *f = &fields[i];
		char var[64], buf[24];
		snprintf(var, sizeof(var), "pubsub#%s", f->var);
		static const char *const types[] = {
			[F_TEXT] = "text-single",  [F_BOOL] = "boolean",
			[F_LIST] = "list-single",  [F_MAX_ITEMS] = "text-single",
			[F_GROUPS] = "list-multi", [F_HEADLINE] = "list-single",
			[F_INFO] = "text-single",
		};
		struct xml_node *fl = add_field(x, var, types[f->kind], f->label);
		if (f->kind == F_GROUPS) {
			for (size_t g = 0; g < c->roster_groups.count; g++)
				add_value(fl, c->roster_groups.items[g]);
			continue;
		}
		add_value(fl, field_value(f, c, buf, s));
		if (f->kind == F_LIST || f->kind == F_HEADLINE) {
			for (size_t n = 0; n < f->nnames; n++) {
				struct xml_node *o = xml_add_child(fl, "option", NULL);
				add_value(o, f->names[n]);
			}
		}
	}
	return x;
}

static const struct field *field_find(const char *var)
{
	if (strncmp(var, "pubsub#", 7) != 0)
		return NULL;
	for (size_t i = 0; i < ARRAY_SIZE(fields); i++)
		if (strcmp(var + 7, fields[i].var) == 0)
			return &fields[i];
	return NULL;
}

static int parse_bool(const char *v, bool *out)
{
	if (strcmp(v, "1") == 0 || strcmp(v, "true") == 0)
		*out = true;
	else if (strcmp(v, "0") == 0 || strcmp(v, "false") == 0)
		*out = false;
	else
		return -1;
	return 0;
}

static int parse_max_items(const char *v, const struct pubsub_settings *s, unsigned *out)
{
	if (strcmp(v, "max") == 0) {
		*out = PS_MAX_ITEMS_MAX;
		return 0;
	}
	char *end;
	if (*v < '0' || *v > '9')
		return -1;
	unsigned long n = strtoul(v, &end, 10);
	if (*end != '\0' || n > UINT_MAX - 1)
		return -1;
	if (s != NULL && n > s->max_items_per_node)
		return -2;
	*out = (unsigned)n;
	return 0;
}

static int parse_list(const struct field *f, const char *v)
{
	for (size_t i = 0; i < f->nnames; i++)
		if (strcmp(v, f->names[i]) == 0)
			return (int)i;
	return -1;
}

static int fail(enum stanza_error *e_r, const char **text_r, enum stanza_error e, const char *text)
{
	*e_r = e;
	*text_r = text;
	return -1;
}

/* The form's FORM_TYPE: NULL when it has none. */
static const char *form_type(const struct xml_node *x)
{
	for (struct xml_node *f = xml_first_element(x); f != NULL; f = xml_next(f, NULL, NULL))
		if (xml_is(f, "field", NS_XDATA) && strcmp(xml_attr(f, "var") ?: "", "FORM_TYPE") == 0)
			return xml_child_text(f, "value", NS_XDATA);
	return NULL;
}

static bool form_ok(const struct xml_node *x)
{
	const char *type = xml_attr(x, "type");
	if (!xml_is(x, "x", NS_XDATA) || type == NULL || strcmp(type, "submit") != 0)
		return false;
	const char *ft = form_type(x);
	return ft == NULL || strcmp(ft, NS_PUBSUB_NODE_CONFIG) == 0 ||
	       strcmp(ft, NS_PUBSUB_PUBLISH_OPTIONS) == 0;
}

int ps_config_apply(struct ps_config *c, const struct xml_node *x, const struct pubsub_settings *s,
                    enum stanza_error *e_r, const char **text_r)
{
	if (!form_ok(x))
		return fail(e_r, text_r, SE_BAD_REQUEST, "not a submitted pubsub#node_config form");
	struct ps_config n;
	ps_config_copy(&n, c);
	for (struct xml_node *fl = xml_first_element(x); fl != NULL; fl = xml_next(fl, NULL, NULL)) {
		if (!xml_is(fl, "field", NS_XDATA))
			continue;
		const char *var = xml_attr(fl, "var");
		if (var == NULL) {
			ps_config_clear(&n);
			return fail(e_r, text_r, SE_BAD_REQUEST, "a field has no var");
		}
		if (strcmp(var, "FORM_TYPE") == 0)
			continue;
		const struct field *f = field_find(var);
		if (f == NULL)
			continue; /* a field this service does not know: left alone */
		void *p = (char *)&n + f->offset;
		if (f->kind == F_GROUPS) {
			strlist_free(&n.roster_groups);
			for (struct xml_node *v = xml_child(fl, "value", NS_XDATA); v != NULL;
			     v = xml_next(v, "value", NS_XDATA)) {
				n.roster_groups.items = xrealloc(
				        n.roster_groups.items, (n.roster_groups.count + 1) * sizeof(char *));
				n.roster_groups.items[n.roster_groups.count++] = xstrdup(xml_text(v) ?: "");
			}
			continue;
		}
		const char *v = xml_child_text(fl, "value", NS_XDATA);
		if (v == NULL)
			v = "";
		int bad = 0;
		switch (f->kind) {
		case F_TEXT:
			free(*(char **)p);
			*(char **)p = *v != '\0' ? xstrdup(v) : NULL;
			break;
		case F_BOOL: bad = parse_bool(v, p); break;
		case F_LIST: {
			int i = parse_list(f, v);
			if (i < 0)
				bad = -1;
			else
				*(unsigned *)p = (unsigned)i;
			break;
		}
		case F_HEADLINE: {
			int i = parse_list(f, v);
			if (i < 0)
				bad = -1;
			else
				*(bool *)p = i == 1;
			break;
		}
		case F_MAX_ITEMS: bad = parse_max_items(v, s, p); break;
		case F_INFO:
		case F_GROUPS: break;
		}
		if (bad != 0) {
			ps_config_clear(&n);
			return fail(e_r, text_r, bad == -2 ? SE_NOT_ACCEPTABLE : SE_BAD_REQUEST,
			            bad == -2 ? "pubsub#max_items is above the service's limit"
			                      : "a field has a value that is not allowed");
		}
	}
	ps_config_clear(c);
	*c = n;
	return 0;
}

const char *ps_config_unknown_field(const struct xml_node *x)
{
	for (struct xml_node *fl = xml_first_element(x); fl != NULL; fl = xml_next(fl, NULL, NULL)) {
		if (!xml_is(fl, "field", NS_XDATA))
			continue;
		const char *var = xml_attr(fl, "var");
		if (var != NULL && strcmp(var, "FORM_TYPE") != 0 && field_find(var) == NULL)
			return var;
	}
	return NULL;
}

bool ps_config_meets(const struct ps_config *c, const struct xml_node *x, const struct pubsub_settings *s,
                     const char **text_r)
{
	if (!form_ok(x)) {
		*text_r = "publish-options is not a submitted form";
		return false;
	}
	for (struct xml_node *fl = xml_first_element(x); fl != NULL; fl = xml_next(fl, NULL, NULL)) {
		if (!xml_is(fl, "field", NS_XDATA))
			continue;
		const char *var = xml_attr(fl, "var");
		if (var == NULL || strcmp(var, "FORM_TYPE") == 0)
			continue;
		const struct field *f = field_find(var);
		*text_r = var;
		if (f == NULL || f->kind == F_INFO)
			return false;
		const char *v = xml_child_text(fl, "value", NS_XDATA);
		if (v == NULL)
			v = "";
		if (f->kind == F_GROUPS) {
			size_t nv = 0;
			for (struct xml_node *e = xml_child(fl, "value", NS_XDATA); e != NULL;
			     e = xml_next(e, "value", NS_XDATA), nv++)
				if (!strlist_contains(&c->roster_groups, xml_text(e) ?: ""))
					return false;
			if (nv != c->roster_groups.count)
				return false;
			continue;
		}
		if (f->kind == F_BOOL) {
			bool b;
			if (parse_bool(v, &b) < 0 || b != *(const bool *)((const char *)c + f->offset))
				return false;
			continue;
		}
		if (f->kind == F_MAX_ITEMS) {
			unsigned m;
			if (parse_max_items(v, NULL, &m) < 0)
				return false;
			unsigned have = c->max_items;
			/* "max" and the service's ceiling are the same thing */
			if (s != NULL && m != PS_MAX_ITEMS_MAX && m >= s->max_items_per_node)
				m = PS_MAX_ITEMS_MAX;
			if (s != NULL && have != PS_MAX_ITEMS_MAX && have >= s->max_items_per_node)
				have = PS_MAX_ITEMS_MAX;
			if (m != have)
				return false;
			continue;
		}
		char buf[24];
		if (strcmp(field_value(f, c, buf, s), v) != 0)
			return false;
	}
	*text_r = NULL;
	return true;
}

/* ---- meta-data --------------------------------------------------------- */

void ps_config_meta(struct xml_node *query, const struct ps_config *c, const char *node)
{
	(void)node;
	struct xml_node *x = xml_add_child(query, "x", NS_XDATA);
	xml_set_attr(x, "type", "result");
	add_value(add_field(x, "FORM_TYPE", "hidden", NULL), NS_PUBSUB_META);
	if (c->title != NULL)
		add_value(add_field(x, "pubsub#title", NULL, NULL), c->title);
	if (c->description != NULL)
		add_value(add_field(x, "pubsub#description", NULL, NULL), c->description);
	if (c->type != NULL)
		add_value(add_field(x, "pubsub#type", NULL, NULL), c->type);
	add_value(add_field(x, "pubsub#access_model", NULL, NULL), ps_access_str(c->access));
	add_value(add_field(x, "pubsub#publish_model", NULL, NULL), publish_names[c->publish_model]);
}

/* ---- stored text ------------------------------------------------------ */

/* One field a line: "var=value", roster groups one line each; values
 * never hold a newline (those of text fields are escaped as \n, \\). */
static void put_escaped(struct buf *b, const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '\n')
			buf_append_str(b, "\\n");
		else if (*s == '\\')
			buf_append_str(b, "\\\\");
		else
			buf_append(b, s, 1);
	}
}

char *ps_config_serialize(const struct ps_config *c)
{
	struct buf b = { 0 };
	buf_append_str(&b, "v=1\n");
	for (size_t i = 0; i < ARRAY_SIZE(fields); i++) {
		const struct field *f = &fields[i];
		if (f->kind == F_INFO)
			continue;
		if (f->kind == F_GROUPS) {
			for (size_t g = 0; g < c->roster_groups.count; g++) {
				buf_append_str(&b, f->var);
				buf_append_str(&b, "=");
				put_escaped(&b, c->roster_groups.items[g]);
				buf_append_str(&b, "\n");
			}
			continue;
		}
		if (f->kind == F_TEXT && *(char *const *)((const char *)c + f->offset) == NULL)
			continue;
		char buf[24];
		buf_append_str(&b, f->var);
		buf_append_str(&b, "=");
		put_escaped(&b, field_value(f, c, buf, NULL));
		buf_append_str(&b, "\n");
	}
	return buf_steal(&b);
}

static char *unescape(const char *s, size_t len)
{
	char *out = xmalloc(len + 1), *o = out;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '\\' && i + 1 < len) {
			i++;
			*o++ = s[i] == 'n' ? '\n' : s[i];
		} else {
			*o++ = s[i];
		}
	}
	*o = '\0';
	return out;
}

void ps_config_parse(struct ps_config *c, const char *text)
{
	bool groups_seen = false;
	while (text != NULL && *text != '\0') {
		size_t len = strcspn(text, "\n");
		const char *eq = memchr(text, '=', len);
		if (eq != NULL) {
			char var[64];
			size_t vlen = (size_t)(eq - text);
			char *v = unescape(eq + 1, len - vlen - 1);
			if (vlen < sizeof(var) - 7) {
				snprintf(var, sizeof(var), "pubsub#%.*s", (int)vlen, text);
				const struct field *f = field_find(var);
				void *p = f != NULL ? (char *)c + f->offset : NULL;
				if (f != NULL && f->kind == F_GROUPS) {
					if (!groups_seen)
						strlist_free(&c->roster_groups);
					groups_seen = true;
					c->roster_groups.items =
					        xrealloc(c->roster_groups.items,
					                 (c->roster_groups.count + 1) * sizeof(char *));
					c->roster_groups.items[c->roster_groups.count++] = v;
					v = NULL;
				} else if (f != NULL && f->kind == F_TEXT) {
					free(*(char **)p);
					*(char **)p = v;
					v = NULL;
				} else if (f != NULL && f->kind == F_BOOL) {
					parse_bool(v, p);
				} else if (f != NULL && f->kind == F_LIST) {
					int i = parse_list(f, v);
					if (i >= 0)
						*(unsigned *)p = (unsigned)i;
				} else if (f != NULL && f->kind == F_HEADLINE) {
					*(bool *)p = strcmp(v, "headline") == 0;
				} else if (f != NULL && f->kind == F_MAX_ITEMS) {
					parse_max_items(v, NULL, p);
				}
			}
			free(v);
		}
		text += len;
		if (*text == '\n')
			text++;
	}
}
