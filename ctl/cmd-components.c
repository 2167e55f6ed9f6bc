/*
 * parleyctl's components command: the external components (XEP-0114) of
 * the running parleyd, configured and connected.  Loop thread.
 *
 * Listed in the configuration's order; a component that is not connected
 * shows as such, so that an operator sees at once which gateway is down.
 */
#include "ctl-private.h"
#include "server/component.h"

#include <string.h>

struct list_ctx {
	struct ctl_call *call;
	unsigned n;
};

static void list_one(const struct component_info *ci, void *ctx)
{
	struct list_ctx *lc = ctx;
	struct buf *b = &lc->call->body;
	char since[XEP82_STAMP_LEN] = "";
	if (ci->ip != NULL)
		xep82_stamp(since, (int64_t)ci->since);
	if (lc->call->json) {
		buf_append_str(b, lc->n > 0 ? ",\n {\"domain\": " : "{\"domain\": ");
		ctl_json_str(b, ci->domain);
		buf_printf(b, ", \"connected\": %s", ci->ip != NULL ? "true" : "false");
		if (ci->ip != NULL) {
			buf_append_str(b, ", \"ip\": ");
			ctl_json_str(b, ci->ip);
			buf_printf(b, ", \"port\": %u, \"since\": ", ci->port);
			ctl_json_str(b, since);
			buf_printf(
			        b,
			        ", \"connected_seconds\": %.0f, \"stanzas_in\": %llu, \"stanzas_out\": %llu, "
			        "\"bytes_in\": %llu, \"bytes_out\": %llu",
			        ev_now(lc->call->loop) - ci->since, (unsigned long long)ci->stanzas_in,
			        (unsigned long long)ci->stanzas_out, (unsigned long long)ci->bytes_in,
			        (unsigned long long)ci->bytes_out);
		}
		buf_append_str(b, "}");
	} else {
		if (lc->n == 0)
			buf_printf(b, "%-32s %-39s %5s %-20s %10s %10s\n", "domain", "ip", "port",
			           "connected since", "stanzas in", "out");
		if (ci->ip != NULL)
			buf_printf(b, "%-32s %-39s %5u %-20s %10llu %10llu\n", ci->domain, ci->ip, ci->port,
			           since, (unsigned long long)ci->stanzas_in,
			           (unsigned long long)ci->stanzas_out);
		else
			buf_printf(b, "%-32s %-39s\n", ci->domain, "(not connected)");
	}
	lc->n++;
}

void cmd_components(struct ctl_call *call)
{
	struct list_ctx lc = { .call = call };
	if (call->json)
		buf_append_str(&call->body, "[");
	components_foreach(list_one, &lc);
	if (call->json)
		buf_append_str(&call->body, "]\n");
	else if (lc.n == 0)
		buf_append_str(&call->body, "no components configured\n");
	ctl_call_finish(call, CTL_OK, NULL);
}
