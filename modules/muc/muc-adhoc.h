/*
 * Ad-hoc commands (XEP-0050) on a virtual host's JID that administer the
 * rooms of its MUC services: list, info, create, destroy, set an
 * affiliation (what parleyctl's muc-* commands do).  Loop thread.
 */
#ifndef PARLEY_MODULES_MUC_ADHOC_H
#define PARLEY_MODULES_MUC_ADHOC_H

struct host;

/* Register the commands on h.  The MUC module calls it from its start on
 * h, once its services of h are in muc_services(); when mod_adhoc does not
 * run on h (it starts before the MUC module when both run) nothing is
 * registered and 0 is returned.  -1 with a malloc'd *error_r when a
 * command's node is taken; nothing is registered then.  The commands are
 * listed to and run by h's admins and the admins of any MUC service of h
 * (muc_is_service_admin); each acts only on the services of h whose admin
 * the requester is. */
int muc_adhoc_start(struct host *h, char **error_r);
/* Unregister them: requests still waiting for the store are answered with
 * an error and their waits cancelled.  The MUC module calls it from its
 * stop on h, before it frees the services; harmless when nothing was
 * registered. */
void muc_adhoc_stop(struct host *h);

#endif
