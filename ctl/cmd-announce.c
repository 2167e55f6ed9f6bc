/*
 * parleyctl's announce and motd: a message from a host to its users, and
 * the host's message of the day.  The work is mod_announce's (announce.h),
 * the same code as its ad-hoc commands; this file reads the arguments,
 * waits for the outcome and prints it.  Loop thread.
 *
 * announce --all answers only after every copy stored for users who are
 * away has been committed (or failed): a failure for some users makes the
 * command fail, after printing what was reached.
 */
#include "ctl-private.h"
#include "server/host.h"
#include "modules/announce.h"

#include <string.h>

/* Whether text can be a message body: UTF-8, no control characters but
 * tab and line ends (XML cannot carry them). */
static bool text_ok(const char *text)
{
	if (!utf8_valid(text, strlen(text)))
		return false;
	for (const unsigned char *p = (const unsigned char *)text; *p != '\0'; p++)
		if (*p < 0x20 && *p != '\t' && *p != '\n' && *p != '\r')
			return false;
	return true;
}

static int announce_code(enum announce_result r)
{
	return r == ANNOUNCE_OK ? CTL_OK : r == ANNOUNCE_TEMPFAIL ? CTL_TEMPFAIL : CTL_FAILED;
}

static void announce_work_free(void *work)
{
	announce_cancel(work);
}

static void announce_done(void *ctx, const struct announce_report *r)
{
	struct ctl_call *call = ctx;
	call->work = NULL;
	if (r->result != ANNOUNCE_OK && r->online + r->stored + r->skipped + r->failed == 0) {
		ctl_call_finish(call, announce_code(r->result), "%s", r->error);
		return;
	}
	/* counts of users */
	buf_printf(&call->body, "delivered online: %u\nstored offline: %u\n", r->online, r->stored);
	if (r->skipped > 0)
		buf_printf(&call->body,
		           "not stored (refused by their block or privacy list, or removed): "
		           "%u\n",
		           r->skipped);
	if (r->failed > 0)
		buf_printf(&call->body, "failed: %u\n", r->failed);
	if (r->result != ANNOUNCE_OK)
		ctl_call_finish(call, announce_code(r->result), "%s", r->error);
	else
		ctl_call_finish(call, CTL_OK, NULL);
}

void cmd_announce(struct ctl_call *call)
{
	const char *scope = call->argv[2], *text = call->argv[3];
	bool all = strcmp(scope, "--all") == 0;
	if (!all && strcmp(scope, "--online") != 0) {
		ctl_call_finish(call, CTL_USAGE,
		                "'%s' is not --online or --all (usage: announce HOST "
		                "--online|--all TEXT)",
		                scope);
		return;
	}
	if (*text == '\0') {
		ctl_call_finish(call, CTL_USAGE, "the announcement is empty");
		return;
	}
	if (!text_ok(text)) {
		ctl_call_finish(call, CTL_USAGE, "the announcement is not valid UTF-8 text");
		return;
	}
	call->host = ctl_call_host(call, 1);
	if (call->host == NULL)
		return;
	if (!all) {
		unsigned sessions = 0, users = 0;
		if (announce_online(call->host, "headline", NULL, text, &sessions, &users) == ANNOUNCE_OFF) {
			ctl_call_finish(call, CTL_FAILED, "the announce module is not enabled on %s",
			                call->host->name);
			return;
		}
		buf_printf(&call->body, "delivered online: %u\nsessions: %u\n", users, sessions);
		ctl_call_finish(call, CTL_OK, NULL);
		return;
	}
	struct announce_req *req = announce_all(call->host, "headline", NULL, text, announce_done, call);
	if (req == NULL) {
		ctl_call_finish(call, CTL_FAILED, "the announce module is not enabled on %s",
		                call->host->name);
		return;
	}
	call->work = req;
	call->work_free = announce_work_free;
}

static void motd_done(void *ctx, enum announce_result r, const char *error)
{
	struct ctl_call *call = ctx;
	call->work = NULL;
	if (r != ANNOUNCE_OK) {
		ctl_call_finish(call, announce_code(r), "%s", error);
		return;
	}
	buf_printf(&call->body, "message of the day of %s %s\n", call->host->name,
	           strcmp(call->argv[2], "--delete") == 0 ? "deleted" : "set");
	ctl_call_finish(call, CTL_OK, NULL);
}

void cmd_motd(struct ctl_call *call)
{
	const char *text = call->argc > 2 ? call->argv[2] : NULL;
	bool deleting = text != NULL && strcmp(text, "--delete") == 0;
	if (text != NULL && !deleting) {
		if (text[0] == '-' && text[1] == '-') {
			ctl_call_finish(call, CTL_USAGE,
			                "unknown option '%s' (usage: motd HOST [TEXT|--delete])", text);
			return;
		}
		if (*text == '\0') {
			ctl_call_finish(call, CTL_USAGE, "the message of the day is empty (use --delete)");
			return;
		}
		if (!text_ok(text)) {
			ctl_call_finish(call, CTL_USAGE, "the message of the day is not valid UTF-8 text");
			return;
		}
	}
	call->host = ctl_call_host(call, 1);
	if (call->host == NULL)
		return;
	if (text == NULL) {
		const char *motd = NULL;
		enum announce_result r = announce_motd(call->host, &motd);
		if (r == ANNOUNCE_OFF)
			ctl_call_finish(call, CTL_FAILED, "the announce module is not enabled on %s",
			                call->host->name);
		else if (r != ANNOUNCE_OK)
			ctl_call_finish(call, CTL_TEMPFAIL,
			                "the message of the day of %s is not known: it "
			                "could not be read from the store (see the log)",
			                call->host->name);
		else if (motd == NULL)
			ctl_call_finish(call, CTL_FAILED, "%s has no message of the day", call->host->name);
		else {
			buf_printf(&call->body, "%s\n", motd);
			ctl_call_finish(call, CTL_OK, NULL);
		}
		return;
	}
	struct announce_req *req = announce_motd_set(call->host, deleting ? NULL : text, motd_done, call);
	if (req == NULL) {
		ctl_call_finish(call, CTL_FAILED, "the announce module is not enabled on %s",
		                call->host->name);
		return;
	}
	call->work = req;
	call->work_free = announce_work_free;
}
