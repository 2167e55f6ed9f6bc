/*
 * parleyctl's shared roster group commands (srg-create, srg-delete,
 * srg-list, srg-info, srg-user-add, srg-user-del).  The commands live in
 * mod_shared_roster (srg_admin_run), which reads and changes the groups
 * and updates the connected users; this file runs them for a call and
 * turns their outcome into parleyctl's answer.  Loop thread.
 */
#include "ctl-private.h"
#include "modules/shared_roster.h"

static void srg_done(void *ctx, int code, const char *message, const char *body)
{
	struct ctl_call *call = ctx;
	call->work = NULL;
	ctl_call_finish_with(call, code, message, body);
}

static void srg_cancel(void *work)
{
	srg_admin_cancel(work);
}

void cmd_srg(struct ctl_call *call)
{
	struct srg_admin *a = srg_admin_run(call->argc, call->argv, srg_done, call);
	if (a != NULL) {
		call->work = a;
		call->work_free = srg_cancel;
	}
}
