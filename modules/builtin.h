/*
 * The modules built into parleyd, and small helpers they share.  Loop
 * thread.
 */
#ifndef PARLEY_MODULES_BUILTIN_H
#define PARLEY_MODULES_BUILTIN_H

#include "server/module.h"
#include "server/iq.h"

extern const struct module_def mod_disco;
extern const struct module_def mod_version;
extern const struct module_def mod_ping;
extern const struct module_def mod_time;
extern const struct module_def mod_register;
extern const struct module_def mod_roster;
extern const struct module_def mod_offline;

/* Register every built-in module with module_register (once; later calls
 * do nothing).  Registration order is start order on each host. */
void modules_register_builtin(void);

/* ---- helpers for module code ------------------------------------------ */

/* One iq handler of a module. */
struct builtin_iq {
	enum iq_scope scope;
	const char *ns;
	enum iq_discipline discipline;
	iq_handler_fn *fn;
};
/* Register every handler of table with ctx, all or nothing: on a conflict
 * the ones registered so far are unregistered and -1 is returned with a
 * malloc'd *error_r naming the namespace. */
int builtin_iq_register(struct host *h, const struct builtin_iq *table, size_t n, void *ctx,
                        char **error_r);
void builtin_iq_unregister(struct host *h, const struct builtin_iq *table, size_t n);

/* Answer req with condition e and error type 'wait': a temporary failure
 * (a backend down or busy), the client may retry later. */
void builtin_iq_error_wait(struct iq_request *req, enum stanza_error e, const char *text);

#endif
