/*
 * parleyctl's file upload commands (modules/mod_upload.c): upload-list
 * shows the files an account has stored, upload-purge deletes them.  They
 * run against the running parleyd.  Loop thread; upload-purge answers once
 * a worker has deleted the files.
 */
#include "ctl-private.h"
#include "server/host.h"
#include "modules/upload.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

struct list_out {
	struct ctl_call *call;
	bool first;
};

static void list_file(const struct upload_file_info *f, void *ctx)
{
	struct list_out *lo = ctx;
	struct buf *b = &lo->call->body;
	char stamp[XEP82_STAMP_LEN];
	xep82_stamp(stamp, (int64_t)f->stored_at);
	if (lo->call->json) {
		buf_append_str(b, lo->first ? "\n {\"id\": " : ",\n {\"id\": ");
		ctl_json_str(b, f->id);
		buf_append_str(b, ", \"filename\": ");
		ctl_json_str(b, f->filename);
		buf_printf(b, ", \"size\": %zu, \"content_type\": ", f->size);
		ctl_json_str(b, f->content_type);
		buf_append_str(b, ", \"stored\": ");
		ctl_json_str(b, stamp);
		buf_append_str(b, ", \"url\": ");
		ctl_json_str(b, f->url);
		buf_append_str(b, "}");
	} else {
		buf_printf(b, "%s\t%zu\t%s\t%s\t%s\n", stamp, f->size, f->content_type, f->filename, f->url);
	}
	lo->first = false;
}

void cmd_upload_list(struct ctl_call *call)
{
	if (!ctl_call_user_host(call, 1, 2))
		return;
	struct list_out lo = { .call = call, .first = true };
	if (call->json)
		buf_append_str(&call->body, "[");
	if (upload_list(call->host, call->user, list_file, &lo) < 0) {
		buf_reset(&call->body);
		ctl_call_finish(call, CTL_FAILED, "the upload module does not run on %s", call->host->name);
		return;
	}
	if (call->json)
		buf_append_str(&call->body, lo.first ? "]\n" : "\n]\n");
	ctl_call_finish(call, CTL_OK, NULL);
}

static void purged(void *ctx, unsigned count, int err)
{
	struct ctl_call *call = ctx;
	call->work = NULL;
	if (err != 0) {
		ctl_call_finish(call, CTL_FAILED, "not every file of %s@%s could be deleted: %s", call->user,
		                call->host->name, strerror(err));
		return;
	}
	buf_printf(&call->body, "%u files deleted\n", count);
	ctl_call_finish(call, CTL_OK, NULL);
}

static void purge_cancel(void *work)
{
	upload_purge_cancel(work);
}

void cmd_upload_purge(struct ctl_call *call)
{
	if (!ctl_call_user_host(call, 1, 2))
		return;
	struct upload_purge *p = NULL;
	int r = upload_purge(call->host, call->user, purged, call, &p);
	if (r == -1) {
		ctl_call_finish(call, CTL_FAILED, "the upload module does not run on %s", call->host->name);
		return;
	}
	if (r < 0) {
		ctl_call_finish(call, CTL_TEMPFAIL, "the upload worker is busy; try again");
		return;
	}
	call->work = p;
	call->work_free = purge_cancel;
}
