/*
 * parleyctl's server commands: status, stats, latency, stop, restart,
 * reload, and the configuration (config-check, config-dump).  Loop thread.
 *
 * status and stats read the running server's counters; stats also counts
 * the accounts of every host (one storage call per host, in parallel; a
 * host whose store does not answer shows its count as unknown).
 * config-check runs inside parleyctl on any file; config-dump shows the
 * running server's configuration, or the file's when parleyd is stopped.
 */
#include "ctl-private.h"
#include "server/server.h"
#include "server/host.h"
#include "server/module.h"
#include "server/sm.h"
#include "server/c2s.h"
#include "server/router.h"
#include "server/metrics.h"
#include "server/component.h"
#include "modules/caps.h"
#include "lib/latency.h"
#ifdef HAVE_BACKEND_LDAP
#include "lib/ldap-client.h"
#endif

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void memory_figures(long *rss_kib_r, size_t *heap_kib_r, size_t *free_kib_r)
{
	struct metrics_memory m;
	metrics_memory(&m); /* the figures /metrics shows */
	*rss_kib_r = m.rss_kib;
	*heap_kib_r = m.heap_kib;
	*free_kib_r = m.heap_free_kib;
}

/* latency [--reset]: the loop latency monitor's figures (lib/latency.h);
 * --reset shows them and starts again from zero. */
void cmd_latency(struct ctl_call *call)
{
	const char *opt = call->argc > 1 ? call->argv[1] : NULL;
	if (opt != NULL && strcmp(opt, "--reset") != 0) {
		ctl_call_finish(call, CTL_USAGE, "unknown option '%s' (usage: latency [--reset])", opt);
		return;
	}
	latency_format_report(latency_stats(), &call->body);
	if (opt != NULL) {
		latency_reset();
		buf_append_str(&call->body, "\nreset: the figures start again from zero\n");
	}
	ctl_call_finish(call, CTL_OK, NULL);
}

void cmd_status(struct ctl_call *call)
{
	const struct router_stats *rs = router_stats();
	buf_printf(&call->body, "status: running\nversion: %s\npid: %ld\nuptime: %.0f s\n", PACKAGE_VERSION,
	           (long)getpid(), ev_time() - server.started);
	buf_append_str(&call->body, "hosts:");
	for (struct host *h = host_first(); h != NULL; h = h->next)
		buf_printf(&call->body, " %s", h->name);
	buf_printf(&call->body, "\nconnections: %u\nsessions: %u\nstanzas routed: %llu\n", c2s_count(),
	           sm_count(NULL), (unsigned long long)rs->routed);
	const struct component_stats *comp = component_stats();
	if (comp->configured > 0)
		buf_printf(&call->body,
		           "components: %u connected of %u configured, %llu stanzas in, %llu out, %llu "
		           "bounced while offline; handshakes %llu ok, %llu bad secret, %llu unknown domain, "
		           "%llu refused, %llu replaced; %llu invalid-from\n",
		           comp->connected, comp->configured, (unsigned long long)comp->stanzas_in,
		           (unsigned long long)comp->stanzas_out, (unsigned long long)comp->bounced_offline,
		           (unsigned long long)comp->handshakes, (unsigned long long)comp->bad_secret,
		           (unsigned long long)comp->unknown_domain, (unsigned long long)comp->refused,
		           (unsigned long long)comp->replaced, (unsigned long long)comp->invalid_from);
	long rss;
	size_t heap, hfree;
	memory_figures(&rss, &heap, &hfree);
	buf_printf(&call->body, "memory: rss %ld KiB, heap in use %zu KiB, heap free %zu KiB\n", rss, heap,
	           hfree);
	latency_format_summary(latency_stats(), &call->body);
	cmd_s2s_status(&call->body, false);
	for (struct host *h = host_first(); h != NULL; h = h->next) {
		buf_printf(&call->body, "host %s: %u sessions, storage %s, auth", h->name, sm_count(h),
		           storage_describe(h->storage));
		for (size_t i = 0; i < auth_backend_count(h->auth); i++)
			buf_printf(&call->body, " %s", auth_backend_name(h->auth, i));
		buf_append_str(&call->body, "\n");
		auth_status(h->auth, &call->body);
		if (module_running(h, "caps")) {
			struct caps_stats cs = caps_stats(h);
			buf_printf(&call->body,
			           "  caps: %u vers cached, %llu lookups, %llu hits, %llu queries, %llu "
			           "verified, "
			           "%llu mismatches, %llu failures\n",
			           cs.entries, cs.lookups, cs.hits, cs.queries, cs.verified, cs.mismatches,
			           cs.failures);
		}
	}
#ifdef HAVE_BACKEND_LDAP
	ldap_client_status_all(&call->body);
#endif
	ctl_call_finish(call, CTL_OK, NULL);
}

static void count_user(struct session *s, void *ctx)
{
	/* a user counts once: at the first of their sessions */
	if (sm_user_sessions(s->host, s->jid.node) == s)
		(*(unsigned *)ctx)++;
}

static const char *const kind_names[] = { "other", "message", "presence", "iq" };

/* What stats keeps while it counts the accounts of every host. */
#define STATS_MAX_HOSTS 64
struct stats_work {
	struct storage_req *sreqs[STATS_MAX_HOSTS]; /* the counts in flight */
	uint64_t counts[STATS_MAX_HOSTS];           /* UINT64_MAX: unknown */
	struct stats_slot {
		struct ctl_call *call;
		unsigned idx;
	} slots[STATS_MAX_HOSTS];
	unsigned npending;
};

static void stats_work_free(void *work)
{
	struct stats_work *sw = work;
	for (unsigned i = 0; i < STATS_MAX_HOSTS; i++)
		if (sw->sreqs[i] != NULL)
			storage_cancel(sw->sreqs[i]);
	free(sw);
}

static void stats_write(struct ctl_call *call)
{
	const struct stats_work *sw = call->work;
	const struct c2s_stats *cs = c2s_stats();
	const struct router_stats *rs = router_stats();
	double uptime = ev_time() - server.started;
	long rss;
	size_t heap, hfree;
	memory_figures(&rss, &heap, &hfree);
	struct buf *b = &call->body;
	if (call->json) {
		buf_printf(b, "{\"uptime_seconds\": %.0f, \"connections\": %u, \"sessions\": %u, ", uptime,
		           c2s_count(), sm_count(NULL));
		buf_append_str(b, "\"hosts\": {");
		unsigned i = 0;
		for (struct host *h = host_first(); h != NULL; h = h->next, i++) {
			unsigned users = 0;
			sm_foreach(h, count_user, &users);
			buf_append_str(b, i > 0 ? ", " : "");
			ctl_json_str(b, h->name);
			buf_printf(b, ": {\"registered_users\": ");
			if (sw->counts[i] == UINT64_MAX)
				buf_append_str(b, "null");
			else
				buf_printf(b, "%llu", (unsigned long long)sw->counts[i]);
			buf_printf(b, ", \"online_users\": %u, \"sessions\": %u}", users, sm_count(h));
		}
		buf_append_str(b, "}, \"stanzas_in\": {");
		for (int k = 1; k < 4; k++)
			buf_printf(b, "%s\"%s\": %llu", k > 1 ? ", " : "", kind_names[k],
			           (unsigned long long)cs->in[k]);
		buf_append_str(b, "}, \"stanzas_out\": {");
		for (int k = 1; k < 4; k++)
			buf_printf(b, "%s\"%s\": %llu", k > 1 ? ", " : "", kind_names[k],
			           (unsigned long long)cs->out[k]);
		buf_printf(b, "}, \"stanzas_routed\": %llu, \"stanzas_undeliverable\": %llu, ",
		           (unsigned long long)rs->routed, (unsigned long long)rs->undeliverable);
		const struct component_stats *comp = component_stats();
		buf_printf(b,
		           "\"components\": {\"configured\": %u, \"connected\": %u, \"stanzas_in\": %llu, "
		           "\"stanzas_out\": %llu, \"bounced_offline\": %llu}, ",
		           comp->configured, comp->connected, (unsigned long long)comp->stanzas_in,
		           (unsigned long long)comp->stanzas_out, (unsigned long long)comp->bounced_offline);
		cmd_s2s_status(b, true);
		buf_append_str(b, ", ");
		buf_printf(
		        b,
		        "\"memory\": {\"rss_kib\": %ld, \"heap_used_kib\": %zu, \"heap_free_kib\": %zu}}\n",
		        rss, heap, hfree);
		return;
	}
	buf_printf(b, "uptime: %.0f s\nconnections: %u\nsessions: %u\n", uptime, c2s_count(), sm_count(NULL));
	unsigned i = 0;
	for (struct host *h = host_first(); h != NULL; h = h->next, i++) {
		unsigned users = 0;
		sm_foreach(h, count_user, &users);
		if (sw->counts[i] == UINT64_MAX)
			buf_printf(b, "host %s: registered users unknown (storage unavailable), ", h->name);
		else
			buf_printf(b, "host %s: %llu registered users, ", h->name,
			           (unsigned long long)sw->counts[i]);
		buf_printf(b, "%u online users, %u sessions\n", users, sm_count(h));
	}
	buf_append_str(b, "stanzas in:");
	for (int k = 1; k < 4; k++)
		buf_printf(b, " %s %llu", kind_names[k], (unsigned long long)cs->in[k]);
	buf_append_str(b, "\nstanzas out:");
	for (int k = 1; k < 4; k++)
		buf_printf(b, " %s %llu", kind_names[k], (unsigned long long)cs->out[k]);
	buf_printf(b, "\nstanzas routed: %llu (undeliverable %llu)\n", (unsigned long long)rs->routed,
	           (unsigned long long)rs->undeliverable);
	const struct component_stats *comp = component_stats();
	if (comp->configured > 0)
		buf_printf(b, "components: %u connected of %u configured, stanzas in %llu, out %llu\n",
		           comp->connected, comp->configured, (unsigned long long)comp->stanzas_in,
		           (unsigned long long)comp->stanzas_out);
	cmd_s2s_status(b, false);
	buf_printf(b, "memory: rss %ld KiB, heap in use %zu KiB, heap free %zu KiB\n", rss, heap, hfree);
}

static void stats_count_done(enum storage_result r, uint64_t count, void *ctx)
{
	struct stats_slot *slot = ctx;
	struct ctl_call *call = slot->call;
	struct stats_work *sw = call->work;
	sw->sreqs[slot->idx] = NULL;
	sw->counts[slot->idx] = r == STORAGE_OK ? count : UINT64_MAX;
	if (--sw->npending > 0)
		return;
	stats_write(call);
	ctl_call_finish(call, CTL_OK, NULL);
}

void cmd_stats(struct ctl_call *call)
{
	struct stats_work *sw = xcalloc(1, sizeof(*sw));
	call->work = sw;
	call->work_free = stats_work_free;
	unsigned i = 0;
	for (struct host *h = host_first(); h != NULL && i < STATS_MAX_HOSTS; h = h->next, i++) {
		sw->slots[i].call = call;
		sw->slots[i].idx = i;
		sw->counts[i] = UINT64_MAX;
	}
	sw->npending = i;
	i = 0;
	for (struct host *h = host_first(); h != NULL && i < STATS_MAX_HOSTS; h = h->next, i++)
		sw->sreqs[i] = storage_account_count(h->storage, h->name, stats_count_done, &sw->slots[i]);
	if (i == 0) {
		stats_write(call);
		ctl_call_finish(call, CTL_OK, NULL);
	}
}

void cmd_stop(struct ctl_call *call)
{
	buf_append_str(&call->body, "stopping\n");
	ctl_call_finish(call, CTL_OK, NULL);
	server_stop();
}

void cmd_restart(struct ctl_call *call)
{
	const char *why = server_restart_refusal();
	if (why != NULL) {
		ctl_call_finish(call, CTL_FAILED,
		                "cannot restart in place: %s; restart parleyd with its service "
		                "manager (e.g. systemctl restart parley)",
		                why);
		return;
	}
	buf_append_str(&call->body, "restarting\n");
	ctl_call_finish(call, CTL_OK, NULL);
	server_restart();
}

void cmd_reload(struct ctl_call *call)
{
	int rc = server_reload(&call->body);
	if (rc < 0)
		ctl_call_finish(call, CTL_FAILED, "the configuration has errors; nothing was changed");
	else if (rc > 0)
		ctl_call_finish(call, CTL_FAILED, "a new host did not start; the rest was applied");
	else
		ctl_call_finish(call, CTL_OK, NULL);
}

/* ---- configuration ------------------------------------------------------------------- */

void cmd_config_check(struct ctl_call *call)
{
	struct parley_config *cfg;
	char *err = NULL;
	if (server_config_check(call->argv[1], &cfg, &err) < 0) {
		ctl_call_finish(call, CTL_FAILED, "%s", err);
		free(err);
		return;
	}
	for (size_t i = 0; i < cfg->warnings.count; i++)
		buf_printf(&call->body, "warning: %s\n", cfg->warnings.items[i]);
	buf_append_str(&call->body, "ok\n");
	config_free(&cfg);
	ctl_call_finish(call, CTL_OK, NULL);
}

/* The dump is of the file last loaded: what of it waits for a restart
 * (of host, or all when NULL) comes first, as comments. */
static void restart_pending(struct buf *out, const char *host)
{
	struct buf b = { 0 };
	server_restart_pending(&b);
	char *save = NULL;
	for (char *line = b.data != NULL ? strtok_r(b.data, "\n", &save) : NULL; line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		if (host != NULL && !(str_has_prefix(line, "host ") && str_has_prefix(line + 5, host) &&
		                      line[5 + strlen(host)] == ':'))
			continue;
		buf_printf(out, "# restart parleyd to apply: %s\n", line);
	}
	buf_free(&b);
}

void cmd_config_dump(struct ctl_call *call)
{
	const struct parley_config *cfg = server_config();
	if (call->argc > 1) {
		char *domain = jid_nameprep(call->argv[1]);
		const struct host_config *hc = domain != NULL ? config_host(cfg, domain) : NULL;
		if (hc == NULL) {
			ctl_call_finish(call, CTL_FAILED, "host %s is not in %s", call->argv[1], cfg->file);
			free(domain);
			return;
		}
		restart_pending(&call->body, hc->name);
		config_dump_ex(cfg, hc->name, &call->body, modules_dump_host);
		free(domain);
	} else {
		restart_pending(&call->body, NULL);
		config_dump_ex(cfg, NULL, &call->body, modules_dump_host);
	}
	ctl_call_finish(call, CTL_OK, NULL);
}
