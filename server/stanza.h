/*
 * Helpers for stanzas (message, presence, iq element trees): kinds, error
 * replies with RFC 6120 conditions, result replies.  Loop thread.
 */
#ifndef PARLEY_STANZA_H
#define PARLEY_STANZA_H

#include "lib/xml.h"
#include "lib/jid.h"

enum stanza_kind { STANZA_OTHER, STANZA_MESSAGE, STANZA_PRESENCE, STANZA_IQ };
enum stanza_kind stanza_kind(const struct xml_node *el);

/* RFC 6120 §8.3.3 conditions and their default types. */
enum stanza_error {
	SE_BAD_REQUEST,
	SE_CONFLICT,
	SE_FEATURE_NOT_IMPLEMENTED,
	SE_FORBIDDEN,
	SE_GONE,
	SE_INTERNAL_SERVER_ERROR,
	SE_ITEM_NOT_FOUND,
	SE_JID_MALFORMED,
	SE_NOT_ACCEPTABLE,
	SE_NOT_ALLOWED,
	SE_NOT_AUTHORIZED,
	SE_POLICY_VIOLATION,
	SE_RECIPIENT_UNAVAILABLE,
	SE_REDIRECT,
	SE_REGISTRATION_REQUIRED,
	SE_REMOTE_SERVER_NOT_FOUND,
	SE_REMOTE_SERVER_TIMEOUT,
	SE_RESOURCE_CONSTRAINT,
	SE_SERVICE_UNAVAILABLE,
	SE_SUBSCRIPTION_REQUIRED,
	SE_UNDEFINED_CONDITION,
	SE_UNEXPECTED_REQUEST,
};
const char *stanza_error_name(enum stanza_error e); /* "bad-request" */
const char *stanza_error_type(enum stanza_error e); /* "modify", "cancel", "wait", "auth" */

/* A new tree: the error reply to el (to/from swapped, type='error', the
 * original children kept for messages and presence, <error/> appended).
 * text (English; may be NULL) is translated into el's xml:lang when a
 * catalogue has it, and its <text/> carries the language it is in.  Mark
 * a literal text with N_() unless it is passed here, to iq_error or to
 * router_bounce directly (make update-po collects those too).  Returns NULL when el is itself an error (never answer
 * an error with an error). */
struct xml_node *stanza_error_reply(const struct xml_node *el, enum stanza_error e, const char *text);
/* A new <iq type='result'/> answering iq (to/from swapped, same id). */
struct xml_node *stanza_iq_result(const struct xml_node *iq);

/* RFC 6120 stream error conditions. */
enum stream_error {
	STE_BAD_FORMAT,
	STE_BAD_NAMESPACE_PREFIX,
	STE_CONFLICT,
	STE_CONNECTION_TIMEOUT,
	STE_HOST_GONE,
	STE_HOST_UNKNOWN,
	STE_IMPROPER_ADDRESSING,
	STE_INTERNAL_SERVER_ERROR,
	STE_INVALID_FROM,
	STE_INVALID_NAMESPACE,
	STE_INVALID_XML,
	STE_NOT_AUTHORIZED,
	STE_NOT_WELL_FORMED,
	STE_POLICY_VIOLATION,
	STE_REMOTE_CONNECTION_FAILED,
	STE_RESET,
	STE_RESOURCE_CONSTRAINT,
	STE_RESTRICTED_XML,
	STE_SEE_OTHER_HOST,
	STE_SYSTEM_SHUTDOWN,
	STE_UNDEFINED_CONDITION,
	STE_UNSUPPORTED_ENCODING,
	STE_UNSUPPORTED_FEATURE,
	STE_UNSUPPORTED_STANZA_TYPE,
	STE_UNSUPPORTED_VERSION,
};
const char *stream_error_name(enum stream_error e);

#endif
