/*
 * parleyctl's federation commands: s2s-list (the s2s streams of the
 * running parleyd) and s2s-close (close those of one remote domain), and
 * the s2s lines of status and stats (with DANE's counters).  Loop thread.
 */
#include "ctl-private.h"
#include "server/resolve.h"
#include "server/s2s.h"
#include "server/server.h"
#include "lib/jid.h"

#include <string.h>

void cmd_s2s_list(struct ctl_call *call)
{
	s2s_list(&call->body);
	ctl_call_finish(call, CTL_OK, NULL);
}

void cmd_s2s_close(struct ctl_call *call)
{
	char *domain = jid_nameprep(call->argv[1]);
	if (domain == NULL) {
		ctl_call_finish(call, CTL_USAGE, "'%s' is not a domain", call->argv[1]);
		return;
	}
	unsigned n = s2s_close_domain(domain);
	if (n == 0)
		ctl_call_finish(call, CTL_FAILED, "no s2s stream with %s", domain);
	else {
		buf_printf(&call->body, "closed %u s2s stream%s with %s\n", n, n == 1 ? "" : "s", domain);
		ctl_call_finish(call, CTL_OK, NULL);
	}
	free(domain);
}

void cmd_s2s_status(struct buf *b, bool json)
{
	const struct s2s_stats *s = s2s_stats();
	const struct resolve_tlsa_stats *t = resolve_tlsa_stats();
	unsigned out, opening, in;
	s2s_counts(&out, &opening, &in);
	if (json) {
		buf_printf(b,
		           "\"s2s\": {\"enabled\": %s, \"out\": %u, \"out_opening\": %u, \"in\": %u, "
		           "\"stanzas_out\": %llu, \"stanzas_in\": %llu, \"bounced\": %llu, "
		           "\"out_failures\": %llu, \"dialback_valid\": %llu, \"dialback_invalid\": %llu, "
		           "\"external\": %llu, \"refused\": %llu, \"dane_valid\": %llu, "
		           "\"dane_mismatch\": %llu, \"tlsa_queries\": %llu, \"tlsa_cache_hits\": %llu, "
		           "\"tlsa_failed\": %llu, \"tlsa_cached\": %u}",
		           server_config()->s2s.enabled ? "true" : "false", out, opening, in,
		           (unsigned long long)s->stanzas_out, (unsigned long long)s->stanzas_in,
		           (unsigned long long)s->bounced, (unsigned long long)s->out_failures,
		           (unsigned long long)s->dialback_valid, (unsigned long long)s->dialback_invalid,
		           (unsigned long long)s->external, (unsigned long long)s->refused,
		           (unsigned long long)s->dane_valid, (unsigned long long)s->dane_mismatch,
		           (unsigned long long)t->queries, (unsigned long long)t->cache_hits,
		           (unsigned long long)t->failed, t->cached);
		return;
	}
	buf_printf(b,
	           "s2s: %s, %u out (%u opening), %u in; stanzas out %llu, in %llu, bounced %llu; "
	           "failed connections %llu; dialback valid %llu, invalid %llu; external %llu; "
	           "refused %llu\n",
	           server_config()->s2s.enabled ? "enabled" : "disabled", out, opening, in,
	           (unsigned long long)s->stanzas_out, (unsigned long long)s->stanzas_in,
	           (unsigned long long)s->bounced, (unsigned long long)s->out_failures,
	           (unsigned long long)s->dialback_valid, (unsigned long long)s->dialback_invalid,
	           (unsigned long long)s->external, (unsigned long long)s->refused);
	if (server_config()->s2s.dane || s->dane_valid > 0 || s->dane_mismatch > 0 || t->queries > 0)
		buf_printf(b,
		           "s2s DANE: valid %llu, mismatch %llu; TLSA queries %llu, from cache %llu, "
		           "failed %llu, %u names cached\n",
		           (unsigned long long)s->dane_valid, (unsigned long long)s->dane_mismatch,
		           (unsigned long long)t->queries, (unsigned long long)t->cache_hits,
		           (unsigned long long)t->failed, t->cached);
}
