/*
 * Stanza helpers: the kind of a stanza, RFC 6120 stanza and stream error
 * conditions, and the two replies every handler builds (an error reply and
 * an iq result).  Loop thread (pure functions over trees; no state).
 *
 * Invariants: a reply is always a new tree in its own pool (the request is
 * never modified, it may be shared); an error stanza is never answered.
 */
#include "stanza.h"
#include "lib/i18n.h"

#include <string.h>

enum stanza_kind stanza_kind(const struct xml_node *el)
{
	if (el == NULL || el->type != XML_ELEMENT || el->name == NULL)
		return STANZA_OTHER;
	/* Any stream namespace (client, server, component) or none: the
	 * stream checked its own namespace already. */
	if (strcmp(el->name, "message") == 0)
		return STANZA_MESSAGE;
	if (strcmp(el->name, "presence") == 0)
		return STANZA_PRESENCE;
	if (strcmp(el->name, "iq") == 0)
		return STANZA_IQ;
	return STANZA_OTHER;
}

struct condition {
	const char *name;
	const char *type;
};

/* Indexed by enum stanza_error; types are the RFC 6120 §8.3.3 defaults. */
static const struct condition stanza_conditions[] = {
	[SE_BAD_REQUEST] = { "bad-request", "modify" },
	[SE_CONFLICT] = { "conflict", "cancel" },
	[SE_FEATURE_NOT_IMPLEMENTED] = { "feature-not-implemented", "cancel" },
	[SE_FORBIDDEN] = { "forbidden", "auth" },
	[SE_GONE] = { "gone", "cancel" },
	[SE_INTERNAL_SERVER_ERROR] = { "internal-server-error", "cancel" },
	[SE_ITEM_NOT_FOUND] = { "item-not-found", "cancel" },
	[SE_JID_MALFORMED] = { "jid-malformed", "modify" },
	[SE_NOT_ACCEPTABLE] = { "not-acceptable", "modify" },
	[SE_NOT_ALLOWED] = { "not-allowed", "cancel" },
	[SE_NOT_AUTHORIZED] = { "not-authorized", "auth" },
	[SE_POLICY_VIOLATION] = { "policy-violation", "modify" },
	[SE_RECIPIENT_UNAVAILABLE] = { "recipient-unavailable", "wait" },
	[SE_REDIRECT] = { "redirect", "modify" },
	[SE_REGISTRATION_REQUIRED] = { "registration-required", "auth" },
	[SE_REMOTE_SERVER_NOT_FOUND] = { "remote-server-not-found", "cancel" },
	[SE_REMOTE_SERVER_TIMEOUT] = { "remote-server-timeout", "wait" },
	[SE_RESOURCE_CONSTRAINT] = { "resource-constraint", "wait" },
	[SE_SERVICE_UNAVAILABLE] = { "service-unavailable", "cancel" },
	[SE_SUBSCRIPTION_REQUIRED] = { "subscription-required", "auth" },
	[SE_UNDEFINED_CONDITION] = { "undefined-condition", "cancel" },
	[SE_UNEXPECTED_REQUEST] = { "unexpected-request", "wait" },
};

static const struct condition *stanza_condition(enum stanza_error e)
{
	if ((size_t)e >= ARRAY_SIZE(stanza_conditions) || stanza_conditions[e].name == NULL)
		e = SE_UNDEFINED_CONDITION;
	return &stanza_conditions[e];
}

const char *stanza_error_name(enum stanza_error e)
{
	return stanza_condition(e)->name;
}

const char *stanza_error_type(enum stanza_error e)
{
	return stanza_condition(e)->type;
}

/* A new root like el (same name and namespace) with the attributes of el
 * except from/to/type, then from and to swapped. */
static struct xml_node *reply_root(const struct xml_node *el, const char *type)
{
	struct xml_node *r = xml_new(el->name, el->ns);
	for (const struct xml_attr *a = el->attrs; a != NULL; a = a->next) {
		/* Attributes in other namespaces than xml: cannot be set by name;
		 * they have no meaning in a reply anyway. */
		if (a->ns != NULL && strcmp(a->ns, NS_XML) != 0)
			continue;
		if (strcmp(a->name, "from") == 0 || strcmp(a->name, "to") == 0 ||
		    strcmp(a->name, "type") == 0)
			continue;
		xml_set_attr(r, a->name, a->value);
	}
	const char *from = xml_attr(el, "from");
	const char *to = xml_attr(el, "to");
	if (to != NULL)
		xml_set_attr(r, "from", to);
	if (from != NULL)
		xml_set_attr(r, "to", from);
	xml_set_attr(r, "type", type);
	return r;
}

struct xml_node *stanza_error_reply(const struct xml_node *el, enum stanza_error e, const char *text)
{
	const char *type = xml_attr(el, "type");
	if (type != NULL && strcmp(type, "error") == 0)
		return NULL;
	struct xml_node *r = reply_root(el, "error");
	/* RFC 6120 §8.3.1: the original payload MAY be included; keeping it
	 * lets the sender see which request failed.  Not a <stanza-id/>: an
	 * archive on the way in added it (XEP-0359), and its id is for the
	 * archive's owner alone (XEP-0313). */
	for (const struct xml_node *ch = el->children; ch != NULL; ch = ch->next)
		if (ch->type == XML_ELEMENT && !xml_is(ch, "error", NULL) &&
		    !xml_is(ch, "stanza-id", "urn:xmpp:sid:0"))
			xml_append_copy(r, ch);
	const struct condition *c = stanza_condition(e);
	struct xml_node *err = xml_add_child(r, "error", NULL);
	xml_set_attr(err, "type", c->type);
	xml_add_child(err, c->name, NS_STANZAS);
	if (text != NULL && *text != '\0') {
		/* In el's language (the client's stream stamps its default on
		 * stanzas without one); RFC 6120 §8.3.2 lets <text/> say which. */
		const char *lang;
		text = i18n_tr_lang(xml_attr(el, "xml:lang"), text, &lang);
		struct xml_node *t = xml_add_child(err, "text", NS_STANZAS);
		xml_set_attr(t, "xml:lang", lang);
		xml_add_text(t, text, strlen(text));
	}
	return r;
}

struct xml_node *stanza_iq_result(const struct xml_node *iq)
{
	struct xml_node *r = xml_new("iq", iq->ns);
	const char *id = xml_attr(iq, "id");
	const char *from = xml_attr(iq, "from");
	const char *to = xml_attr(iq, "to");
	xml_set_attr(r, "type", "result");
	if (id != NULL)
		xml_set_attr(r, "id", id);
	if (to != NULL)
		xml_set_attr(r, "from", to);
	if (from != NULL)
		xml_set_attr(r, "to", from);
	return r;
}

static const char *const stream_conditions[] = {
	[STE_BAD_FORMAT] = "bad-format",
	[STE_BAD_NAMESPACE_PREFIX] = "bad-namespace-prefix",
	[STE_CONFLICT] = "conflict",
	[STE_CONNECTION_TIMEOUT] = "connection-timeout",
	[STE_HOST_GONE] = "host-gone",
	[STE_HOST_UNKNOWN] = "host-unknown",
	[STE_IMPROPER_ADDRESSING] = "improper-addressing",
	[STE_INTERNAL_SERVER_ERROR] = "internal-server-error",
	[STE_INVALID_FROM] = "invalid-from",
	[STE_INVALID_NAMESPACE] = "invalid-namespace",
	[STE_INVALID_XML] = "invalid-xml",
	[STE_NOT_AUTHORIZED] = "not-authorized",
	[STE_NOT_WELL_FORMED] = "not-well-formed",
	[STE_POLICY_VIOLATION] = "policy-violation",
	[STE_REMOTE_CONNECTION_FAILED] = "remote-connection-failed",
	[STE_RESET] = "reset",
	[STE_RESOURCE_CONSTRAINT] = "resource-constraint",
	[STE_RESTRICTED_XML] = "restricted-xml",
	[STE_SEE_OTHER_HOST] = "see-other-host",
	[STE_SYSTEM_SHUTDOWN] = "system-shutdown",
	[STE_UNDEFINED_CONDITION] = "undefined-condition",
	[STE_UNSUPPORTED_ENCODING] = "unsupported-encoding",
	[STE_UNSUPPORTED_FEATURE] = "unsupported-feature",
	[STE_UNSUPPORTED_STANZA_TYPE] = "unsupported-stanza-type",
	[STE_UNSUPPORTED_VERSION] = "unsupported-version",
};

const char *stream_error_name(enum stream_error e)
{
	if ((size_t)e >= ARRAY_SIZE(stream_conditions) || stream_conditions[e] == NULL)
		return "undefined-condition";
	return stream_conditions[e];
}
