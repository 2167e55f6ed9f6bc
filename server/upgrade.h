/*
 * SASL upgrade tasks (XEP-0480) for SCRAM, in SASL2: after a password
 * login the client may give the server the SCRAM-SHA-256 and SCRAM-SHA-512
 * credentials an account lacks (one imported with SCRAM-SHA-1 keys only).
 * Per task the server sends a fresh salt and its iteration count, the
 * client answers with SaltedPassword, and the keys derived from it are
 * added to the account (storage_account_add_credentials: never over keys
 * the account has).  Loop thread.
 */
#ifndef PARLEY_UPGRADE_H
#define PARLEY_UPGRADE_H

#include "lib/xml.h"
#include "storage/storage.h"

#define NS_SASL_UPGRADE "urn:xmpp:sasl:upgrade:0"
#define NS_SCRAM_UPGRADE "urn:xmpp:scram-upgrade:0"

/* The <upgrade/> elements of the tasks the server offers, into SASL2's
 * <authentication/>. */
void upgrade_add_features(struct xml_node *authentication);
/* The tasks an <authenticate/> asks for, as a set of UPGRADE_* bits
 * (unknown names are ignored). */
unsigned upgrade_requested(const struct xml_node *authenticate);

struct upgrade;

/* cb runs once the answer of the last call is known (never inside it). */
typedef void upgrade_cb(void *ctx);

/* The tasks requested for user of host, done with new credentials of
 * iterations rounds.  upgrade_start looks up which of them the account
 * needs (the hashes it has no keys for), then calls cb. */
struct upgrade *upgrade_new(struct storage *st, const char *host, const char *user, unsigned requested,
                            unsigned iterations);
void upgrade_start(struct upgrade *u, upgrade_cb *cb, void *ctx);
/* The name of the next task to do ("UPGR-SCRAM-SHA-256"), or NULL when
 * none is left. */
const char *upgrade_task(const struct upgrade *u);
/* The client's <next task=.../> for the current task: fills task_data (a
 * SASL2 <task-data/>) with the salt and iteration count.  -1 when the
 * task is not the current one. */
int upgrade_next(struct upgrade *u, const char *task, struct xml_node *task_data);
/* The client's <task-data/> with SaltedPassword: stores the credentials,
 * then cb; the task is done either way (a failed write is logged).  -1
 * (nothing stored, no cb) when it holds no well-formed hash. */
int upgrade_data(struct upgrade *u, const struct xml_node *task_data, upgrade_cb *cb, void *ctx);
void upgrade_free(struct upgrade **u); /* cancels what is pending */

#endif
