/*
 * The one mapping from backend results (storage, auth) to stanza errors,
 * for every module.  A module answers a failed call through it, so that the
 * same result reads the same everywhere.  Loop thread.
 *
 * The rules (RFC 6120 §8.3.3 conditions with their default types):
 *   STORAGE_TEMPFAIL, AUTH_TEMPFAIL  <resource-constraint/> (wait): the
 *       backend is down, busy or slow, the client may try again.  Never a
 *       negative answer such as <item-not-found/> or <not-authorized/>.
 *       None of RFC 6121, XEP-0012, XEP-0016, XEP-0049, XEP-0050/0133,
 *       XEP-0054, XEP-0055, XEP-0077 or XEP-0191 names another condition
 *       for a server that cannot reach its own store.
 *   STORAGE_FULL                     <resource-constraint/> (wait): a
 *       per-user quota is reached.
 *   STORAGE_NOT_FOUND, AUTH_NO_USER  <item-not-found/> (cancel).
 *   STORAGE_EXISTS, AUTH_EXISTS      <conflict/> (cancel).
 *   AUTH_NOT_SUPPORTED               <not-allowed/> (cancel): the backend
 *       cannot do this (XEP-0077 uses it for what the server does not allow).
 *   AUTH_BAD_PASSWORD                <not-authorized/> (auth).
 *   STORAGE_ERROR, AUTH_ERROR        <internal-server-error/> (cancel).
 * A module that must answer one result otherwise by a specification says
 * so where it does (RFC 6121 §8.5: a message for an account that does not
 * exist is <service-unavailable/>, not <item-not-found/>).
 */
#ifndef PARLEY_MODULES_ERRMAP_H
#define PARLEY_MODULES_ERRMAP_H

#include "server/iq.h"
#include "server/stanza.h"
#include "storage/storage.h"
#include "auth/auth.h"

/* The condition for a failed result (STORAGE_OK / AUTH_OK, which are not
 * failures, give <internal-server-error/>). */
enum stanza_error errmap_storage(enum storage_result res);
enum stanza_error errmap_auth(enum auth_result res);
/* Whether the result is a temporary failure (try again later). */
bool errmap_storage_temporary(enum storage_result res);
bool errmap_auth_temporary(enum auth_result res);

/* The text that goes with the condition: for a temporary failure "WHAT is
 * unavailable; try again later" (what: "the roster store"), else NULL.
 * Malloc'd or NULL. */
char *errmap_storage_text(enum storage_result res, const char *what);
char *errmap_auth_text(enum auth_result res, const char *what);

/* Answer req with the error for a failed result (res is not OK), with the
 * text above. */
void errmap_iq_storage(struct iq_request *req, enum storage_result res, const char *what);
void errmap_iq_auth(struct iq_request *req, enum auth_result res, const char *what);

#endif
