/*
 * parleyctl's commands that show what the store keeps for an account:
 * get-roster (the roster items and version), offline-list (the queue of
 * offline messages, oldest first) and offline-count.  They read through
 * the host's store, inside parleyd or inside parleyctl when parleyd is
 * stopped, and change nothing.  Each first asks the host's auth chain
 * whether the account exists (an LDAP user has no row in the store), so
 * a mistyped name is an error and not an empty roster.  Loop thread.
 *
 * offline-list reads one page of the queue (OFFLINE_LIST_LIMIT messages
 * unless --limit says otherwise, after --after SEQ) and says how many
 * follow, so that a long queue is never read whole or formatted on the
 * loop in one go.  In JSON it shows each message's sender and body as
 * parsed from the stored stanza (through the same walled parser as a
 * stream), and the stanza itself; a stanza that does not parse is shown
 * as stored.
 */
#include "ctl-private.h"
#include "server/host.h"
#include "lib/xml.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* argv[1], USER@HOST, into call->host and call->user, on a host with
 * storage; false when the call was finished instead. */
static bool account_of(struct ctl_call *call)
{
	if (!ctl_call_user_at_host(call, 1))
		return false;
	if (call->host->storage == NULL) {
		ctl_call_finish(call, CTL_FAILED, "host %s has no storage", call->host->name);
		return false;
	}
	return true;
}

/* offline-list's page when --limit does not say, and the most it takes */
#define OFFLINE_LIST_LIMIT 100
#define OFFLINE_LIST_MAX 1000

struct exists_work {
	void (*start)(struct ctl_call *call);
	unsigned long limit; /* offline-list: messages of the page */
	int64_t after;       /* offline-list: the page starts after this seq */
};

static void exists_done(enum auth_result r, void *ctx)
{
	struct ctl_call *call = ctx;
	call->req = NULL;
	if (r == AUTH_OK)
		((struct exists_work *)call->work)->start(call);
	else if (r == AUTH_NO_USER)
		ctl_call_finish(call, CTL_FAILED, "no such user %s@%s", call->user, call->host->name);
	else
		ctl_call_finish(call, ctl_auth_code(r), "cannot tell whether %s@%s exists: %s", call->user,
		                call->host->name, auth_result_str(r));
}

/* Run start(call) once the auth chain says the account exists. */
static void when_exists(struct ctl_call *call, void (*start)(struct ctl_call *call))
{
	struct exists_work *w = call->work;
	if (w == NULL) {
		w = xcalloc(1, sizeof(*w));
		call->work = w;
		call->work_free = free;
	}
	w->start = start;
	call->req = auth_user_exists(call->host->auth, call->user, exists_done, call);
}

/* ---- get-roster ------------------------------------------------------------------------ */

static const char *ask_of(const struct roster_item *it)
{
	return it->ask_out ? "out" : it->ask_in ? "in" : "";
}

static void roster_done(enum storage_result r, const struct roster_item *items, size_t n, uint64_t version,
                        void *ctx)
{
	struct ctl_call *call = ctx;
	call->sreq = NULL;
	if (r != STORAGE_OK) {
		ctl_call_finish(call, ctl_storage_code(r), "cannot read the roster of %s@%s: %s", call->user,
		                call->host->name, storage_result_str(r));
		return;
	}
	struct buf *b = &call->body;
	if (call->json) {
		buf_append_str(b, "{\"jid\": ");
		char *bare = xasprintf("%s@%s", call->user, call->host->name);
		ctl_json_str(b, bare);
		free(bare);
		buf_printf(b, ", \"version\": %llu, \"count\": %zu, \"items\": [",
		           (unsigned long long)version, n);
		for (size_t i = 0; i < n; i++) {
			buf_append_str(b, i > 0 ? ",\n  {\"jid\": " : "\n  {\"jid\": ");
			ctl_json_str(b, items[i].jid);
			buf_append_str(b, ", \"name\": ");
			if (items[i].name != NULL)
				ctl_json_str(b, items[i].name);
			else
				buf_append_str(b, "null");
			buf_append_str(b, ", \"subscription\": ");
			ctl_json_str(b, roster_subscription_str(items[i].subscription));
			buf_append_str(b, ", \"ask\": ");
			if (*ask_of(&items[i]) != '\0')
				ctl_json_str(b, ask_of(&items[i]));
			else
				buf_append_str(b, "null");
			buf_printf(b,
			           ", \"approved\": %s, \"groups\": ", items[i].approved ? "true" : "false");
			ctl_json_strlist(b, &items[i].groups);
			buf_append_str(b, "}");
		}
		buf_append_str(b, "]}\n");
	} else {
		/* one item a line, tab-separated: JID, name, subscription, ask, groups */
		for (size_t i = 0; i < n; i++) {
			buf_printf(b, "%s\t%s\t%s\t%s\t", items[i].jid,
			           items[i].name != NULL ? items[i].name : "",
			           roster_subscription_str(items[i].subscription), ask_of(&items[i]));
			for (size_t g = 0; g < items[i].groups.count; g++)
				buf_printf(b, "%s%s", g > 0 ? "," : "", items[i].groups.items[g]);
			buf_append_str(b, "\n");
		}
	}
	ctl_call_finish(call, CTL_OK, NULL);
}

static void roster_start(struct ctl_call *call)
{
	call->sreq = storage_roster_get(call->host->storage, call->host->name, call->user, roster_done, call);
}

void cmd_get_roster(struct ctl_call *call)
{
	if (account_of(call))
		when_exists(call, roster_start);
}

/* ---- offline-list, offline-count -------------------------------------------------------- */

/* A whole number from 0 to max in v, or -1. */
static long long number_of(const char *v, long long max)
{
	char *end;
	errno = 0;
	long long n = strtoll(v, &end, 10);
	if (*v < '0' || *v > '9' || *end != '\0' || errno != 0 || n > max)
		return -1;
	return n;
}

/* [--after SEQ] [--limit N] among argv[2..] into w; false when the call
 * was finished with a usage error instead. */
static bool parse_page(struct ctl_call *call, struct exists_work *w)
{
	w->limit = OFFLINE_LIST_LIMIT;
	w->after = 0;
	for (int i = 2; i < call->argc; i++) {
		bool limit = strcmp(call->argv[i], "--limit") == 0;
		if ((!limit && strcmp(call->argv[i], "--after") != 0) || i + 1 >= call->argc) {
			ctl_call_finish(call, CTL_USAGE, "usage: %s USER@HOST [--after SEQ] [--limit N]",
			                call->argv[0]);
			return false;
		}
		const char *v = call->argv[++i];
		long long n = number_of(v, limit ? OFFLINE_LIST_MAX : INT64_MAX);
		if (limit && n < 1) {
			ctl_call_finish(call, CTL_USAGE, "--limit wants a number from 1 to %d, not '%s'",
			                OFFLINE_LIST_MAX, v);
			return false;
		}
		if (!limit && n < 0) {
			ctl_call_finish(
			        call, CTL_USAGE,
			        "--after wants a sequence number (0 or more, from this list), not '%s'", v);
			return false;
		}
		if (limit)
			w->limit = (unsigned long)n;
		else
			w->after = n;
	}
	return true;
}

/* What a stored message shows: its sender and body, from the stanza. */
static void message_summary(const char *stanza, char **from_r, char **body_r)
{
	*from_r = *body_r = NULL;
	struct xml_node *m = xml_parse_string(stanza, strlen(stanza), "jabber:client", NULL, NULL);
	if (m == NULL)
		return;
	const char *from = xml_attr(m, "from");
	const char *body = xml_child_text(m, "body", "jabber:client");
	*from_r = from != NULL ? xstrdup(from) : NULL;
	*body_r = body != NULL ? xstrdup(body) : NULL;
	xml_unref(&m);
}

static void offline_done(enum storage_result r, const struct offline_message *msgs, size_t n, uint64_t total,
                         uint64_t more, void *ctx)
{
	struct ctl_call *call = ctx;
	call->sreq = NULL;
	if (r != STORAGE_OK) {
		ctl_call_finish(call, ctl_storage_code(r), "cannot read the offline messages of %s@%s: %s",
		                call->user, call->host->name, storage_result_str(r));
		return;
	}
	struct buf *b = &call->body;
	if (call->json) {
		buf_append_str(b, "{\"jid\": ");
		char *bare = xasprintf("%s@%s", call->user, call->host->name);
		ctl_json_str(b, bare);
		free(bare);
		buf_printf(b, ", \"count\": %llu, \"shown\": %zu, \"more\": %llu, \"next\": ",
		           (unsigned long long)total, n, (unsigned long long)more);
		if (more > 0)
			buf_printf(b, "%lld", (long long)msgs[n - 1].seq);
		else
			buf_append_str(b, "null");
		buf_append_str(b, ", \"messages\": [");
	}
	for (size_t i = 0; i < n; i++) {
		char stamp[XEP82_STAMP_LEN];
		xep82_stamp(stamp, msgs[i].created);
		char *from = NULL, *body = NULL;
		if (call->json)
			message_summary(msgs[i].stanza, &from, &body);
		if (call->json) {
			buf_printf(b, "%s{\"seq\": %lld, \"stored\": \"%s\", \"from\": ",
			           i > 0 ? ",\n  " : "\n  ", (long long)msgs[i].seq, stamp);
			if (from != NULL)
				ctl_json_str(b, from);
			else
				buf_append_str(b, "null");
			buf_append_str(b, ", \"body\": ");
			if (body != NULL)
				ctl_json_str(b, body);
			else
				buf_append_str(b, "null");
			buf_append_str(b, ", \"stanza\": ");
			ctl_json_str(b, msgs[i].stanza);
			buf_append_str(b, "}");
		} else {
			/* one message a line: seq, time stored, the stanza (newlines kept
			 * out of the line) */
			buf_printf(b, "%lld\t%s\t", (long long)msgs[i].seq, stamp);
			for (const char *p = msgs[i].stanza; *p != '\0'; p++) {
				if (*p == '\n' || *p == '\r')
					buf_append_str(b, *p == '\n' ? "&#10;" : "&#13;");
				else
					buf_append(b, p, 1);
			}
			buf_append_str(b, "\n");
		}
		free(from);
		free(body);
	}
	if (call->json)
		buf_append_str(b, "]}\n");
	else if (more > 0)
		buf_printf(b, "(%llu more)\n", (unsigned long long)more);
	ctl_call_finish(call, CTL_OK, NULL);
}

static void offline_start(struct ctl_call *call)
{
	struct exists_work *w = call->work;
	call->sreq = storage_offline_page(call->host->storage, call->host->name, call->user, w->after,
	                                  (unsigned)w->limit, offline_done, call);
}

void cmd_offline_list(struct ctl_call *call)
{
	struct exists_work *w = xcalloc(1, sizeof(*w));
	call->work = w;
	call->work_free = free;
	if (parse_page(call, w) && account_of(call))
		when_exists(call, offline_start);
}

static void offline_count_done(enum storage_result r, uint64_t count, void *ctx)
{
	struct ctl_call *call = ctx;
	call->sreq = NULL;
	if (r != STORAGE_OK) {
		ctl_call_finish(call, ctl_storage_code(r), "cannot count the offline messages of %s@%s: %s",
		                call->user, call->host->name, storage_result_str(r));
		return;
	}
	buf_printf(&call->body, "%llu\n", (unsigned long long)count);
	ctl_call_finish(call, CTL_OK, NULL);
}

static void offline_count_start(struct ctl_call *call)
{
	call->sreq = storage_offline_count(call->host->storage, call->host->name, call->user,
	                                   offline_count_done, call);
}

void cmd_offline_count(struct ctl_call *call)
{
	if (account_of(call))
		when_exists(call, offline_count_start);
}
