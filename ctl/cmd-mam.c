/*
 * parleyctl's message archive command: mam-purge removes the archive of an
 * account or of a room (every archived message; an account's archiving
 * preferences stay).  It runs against the running parleyd: the owner's
 * host is the account's host, or the host of the room's MUC service.
 * Loop thread.  It answers once the store has committed the removal.
 */
#include "ctl-private.h"
#include "server/host.h"
#include "modules/muc/muc.h"

#include <stdlib.h>

static void purged(enum storage_result r, void *ctx)
{
	struct ctl_call *call = ctx;
	call->sreq = NULL;
	char *owner = call->work;
	call->work = NULL;
	if (r == STORAGE_OK || r == STORAGE_NOT_FOUND)
		ctl_call_finish(call, CTL_OK, NULL);
	else
		ctl_call_finish(call, ctl_storage_code(r), "cannot remove the archive of %s: %s", owner,
		                storage_result_str(r));
	free(owner);
}

void cmd_mam_purge(struct ctl_call *call)
{
	struct jid j;
	const char *err;
	bool parsed = jid_parse(call->argv[1], &j, &err) == 0;
	if (!parsed || j.node == NULL || j.resource != NULL) {
		if (parsed)
			jid_clear(&j);
		ctl_call_finish(call, CTL_USAGE, "%s is not a bare JID of an account or a room",
		                call->argv[1]);
		return;
	}
	struct host *h = host_find(j.domain);
	if (h == NULL) {
		struct muc_service *svc = muc_service_find(j.domain);
		h = svc != NULL ? svc->host : NULL;
	}
	if (h == NULL) {
		ctl_call_finish(call, CTL_FAILED, "%s is neither a host nor a MUC service of this server",
		                j.domain);
		jid_clear(&j);
		return;
	}
	struct storage *st = host_store(h, STORAGE_AREA_MAM);
	if (st == NULL || !storage_has_area(st, STORAGE_AREA_MAM)) {
		ctl_call_finish(call, CTL_FAILED, "the storage of %s keeps no message archives", h->name);
		jid_clear(&j);
		return;
	}
	call->host = h;
	call->work = jid_bare_string(&j);
	call->work_free = free;
	jid_clear(&j);
	call->sreq = storage_mam_owner_delete(st, h->name, call->work, purged, call);
}
