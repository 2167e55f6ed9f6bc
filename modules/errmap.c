/*
 * The mapping from storage and auth results to stanza errors (errmap.h),
 * written once for every module.  Loop thread; pure functions apart from
 * the iq answers.
 *
 * Invariant: a temporary failure maps to <resource-constraint/>, whose
 * default type is 'wait' (server/stanza.c), and never to a condition that
 * says "no" (item-not-found, not-authorized, forbidden).
 */
#include "errmap.h"
#include "lib/util.h"

#include <stdlib.h>

enum stanza_error errmap_storage(enum storage_result res)
{
	switch (res) {
	case STORAGE_TEMPFAIL:
	case STORAGE_FULL: return SE_RESOURCE_CONSTRAINT;
	case STORAGE_NOT_FOUND: return SE_ITEM_NOT_FOUND;
	case STORAGE_EXISTS: return SE_CONFLICT;
	case STORAGE_OK:
	case STORAGE_ERROR:
	default: return SE_INTERNAL_SERVER_ERROR;
	}
}

enum stanza_error errmap_auth(enum auth_result res)
{
	switch (res) {
	case AUTH_TEMPFAIL: return SE_RESOURCE_CONSTRAINT;
	case AUTH_NO_USER: return SE_ITEM_NOT_FOUND;
	case AUTH_EXISTS: return SE_CONFLICT;
	case AUTH_NOT_SUPPORTED: return SE_NOT_ALLOWED;
	case AUTH_BAD_PASSWORD: return SE_NOT_AUTHORIZED;
	case AUTH_OK:
	case AUTH_ERROR:
	default: return SE_INTERNAL_SERVER_ERROR;
	}
}

bool errmap_storage_temporary(enum storage_result res)
{
	return res == STORAGE_TEMPFAIL;
}

bool errmap_auth_temporary(enum auth_result res)
{
	return res == AUTH_TEMPFAIL;
}

static char *temporary_text(const char *what)
{
	return xasprintf("%s is unavailable; try again later", what != NULL ? what : "the service");
}

char *errmap_storage_text(enum storage_result res, const char *what)
{
	return errmap_storage_temporary(res) ? temporary_text(what) : NULL;
}

char *errmap_auth_text(enum auth_result res, const char *what)
{
	return errmap_auth_temporary(res) ? temporary_text(what) : NULL;
}

void errmap_iq_storage(struct iq_request *req, enum storage_result res, const char *what)
{
	char *text = errmap_storage_text(res, what);
	iq_error(req, errmap_storage(res), text);
	free(text);
}

void errmap_iq_auth(struct iq_request *req, enum auth_result res, const char *what)
{
	char *text = errmap_auth_text(res, what);
	iq_error(req, errmap_auth(res), text);
	free(text);
}
