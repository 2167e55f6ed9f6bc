/*
 * parleyctl's shared roster group commands (srg-create, srg-delete,
 * srg-list, srg-info, srg-user-add, srg-user-del).  The commands live in
 * mod_shared_roster (srg_admin_run), which reads and changes the groups
 * and updates the connected users, and reports what came of it
 * (enum srg_admin_result); this file runs them for a call and maps the
 * outcome to parleyctl's exit code.  Loop thread.
 */
#include "ctl-private.h"
#include "modules/shared_roster.h"

/* The exit code of an outcome: bad input is a usage error, an unavailable
 * source a temporary failure, the rest (exists, not found, read-only) no. */
static int srg_code(enum srg_admin_result r)
{
	switch (r) {
	case SRG_ADMIN_OK: return CTL_OK;
	case SRG_ADMIN_INVALID: return CTL_USAGE;
	case SRG_ADMIN_TEMPFAIL: return CTL_TEMPFAIL;
	default: return CTL_FAILED;
	}
}

static void srg_done(void *ctx, enum srg_admin_result r, const char *message, const char *body)
{
	struct ctl_call *call = ctx;
	call->work = NULL;
	ctl_call_finish_with(call, srg_code(r), message, body);
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
