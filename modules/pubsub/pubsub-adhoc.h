/*
 * Ad-hoc commands (XEP-0050) on a virtual host's JID that administer the
 * nodes of its pubsub services and of its accounts' PEP: list, info,
 * delete, purge (what parleyctl's pubsub-* commands do).  Loop thread.
 */
#ifndef PARLEY_MODULES_PUBSUB_ADHOC_H
#define PARLEY_MODULES_PUBSUB_ADHOC_H

struct host;

/* Register the commands on h for h's admins.  The pubsub module calls it
 * from its start on h, once its services are made; when mod_adhoc does not
 * run on h (it starts before the pubsub module when both run) nothing is
 * registered and 0 is returned.  -1 with a malloc'd *error_r when a
 * command's node is taken; nothing is registered then.  Each command acts
 * only on the services and accounts of h. */
int ps_adhoc_start(struct host *h, char **error_r);
/* Unregister them: requests still waiting for a load or the store are
 * answered with an error and their waits cancelled.  The pubsub module
 * calls it from its stop on h, before its owners stop; harmless when
 * nothing was registered. */
void ps_adhoc_stop(struct host *h);

#endif
