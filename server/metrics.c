/*
 * Metrics: the collector registry, the Prometheus text exposition (format
 * 0.0.4), the built-in collectors, the /metrics handler and the address
 * lists that guard it.  Loop thread.
 *
 * A scrape runs every collector into one struct metrics_out: each family
 * keeps its HELP, TYPE and a buffer of sample lines, so samples that
 * several collectors add to one family come out together, in the order
 * the families were first declared.  Nothing is kept between scrapes;
 * the figures live with their owners (router, c2s, sm, auth, the worker
 * groups, the loop latency monitor), which parleyctl status and stats read
 * too.
 *
 * Two figures come from the stores, not from memory: registered users and
 * offline messages per host.  A scrape never waits for them: it shows the
 * last counts (COUNT(*) jobs on the stores' workers) and, when they are
 * older than metrics.store_counts_interval and none is in flight, starts
 * new ones; until the first answer the samples are absent, and a store
 * that cannot answer drops its host's sample rather than show a stale one.
 *
 * Invariants: label values are escaped (backslash, quote, newline); a
 * family's samples never appear under another family's TYPE; /metrics
 * answers only addresses in metrics.allow (403 otherwise) and only GET
 * (405).
 */
#include "metrics.h"
#include "c2s.h"
#include "component.h"
#include "host.h"
#include "http.h"
#include "router.h"
#include "s2s.h"
#include "resolve.h"
#include "server.h"
#include "sm.h"
#include "stanza.h"
#include "auth/auth.h"
#include "storage/storage.h"
#include "lib/latency.h"
#include "lib/log.h"
#include "lib/worker.h"

#include <arpa/inet.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- the registry ----------------------------------------------------------------- */

struct collector {
	metrics_collect_fn *fn;
	void *ctx;
};

static struct collector *collectors;
static size_t ncollectors;

void metrics_register(metrics_collect_fn *fn, void *ctx)
{
	collectors = xrealloc(collectors, (ncollectors + 1) * sizeof(*collectors));
	collectors[ncollectors++] = (struct collector){ fn, ctx };
}

void metrics_unregister(metrics_collect_fn *fn, void *ctx)
{
	for (size_t i = 0; i < ncollectors; i++) {
		if (collectors[i].fn == fn && collectors[i].ctx == ctx) {
			memmove(&collectors[i], &collectors[i + 1],
			        (ncollectors - i - 1) * sizeof(*collectors));
			ncollectors--;
			return;
		}
	}
}

struct family {
	char *name;
	enum metrics_type type;
	char *help;
	struct buf samples;
};

struct metrics_out {
	struct family *families;
	size_t nfamilies;
};

static const char *const type_names[] = { "counter", "gauge", "histogram" };

static struct family *family_find(struct metrics_out *out, const char *name)
{
	for (size_t i = 0; i < out->nfamilies; i++)
		if (strcmp(out->families[i].name, name) == 0)
			return &out->families[i];
	return NULL;
}

void metrics_family(struct metrics_out *out, const char *name, enum metrics_type type, const char *help)
{
	struct family *f = family_find(out, name);
	if (f != NULL) {
		if (f->type != type)
			log_warning("metrics: family %s declared as %s and as %s; the %s samples are dropped",
			            name, type_names[f->type], type_names[type], type_names[type]);
		return;
	}
	out->families = xrealloc(out->families, (out->nfamilies + 1) * sizeof(*out->families));
	out->families[out->nfamilies++] =
	        (struct family){ .name = xstrdup(name), .type = type, .help = xstrdup(help) };
}

/* The family a sample of type goes to, or NULL (undeclared, or another
 * type). */
static struct family *family_for(struct metrics_out *out, const char *name, enum metrics_type type)
{
	struct family *f = family_find(out, name);
	if (f == NULL) {
		log_warning("metrics: sample of undeclared family %s dropped", name);
		return NULL;
	}
	return f->type == type ? f : NULL;
}

static void escape_label(struct buf *b, const char *v)
{
	for (const char *p = v; *p != '\0'; p++) {
		if (*p == '\\')
			buf_append_str(b, "\\\\");
		else if (*p == '"')
			buf_append_str(b, "\\\"");
		else if (*p == '\n')
			buf_append_str(b, "\\n");
		else
			buf_append(b, p, 1);
	}
}

/* "{a="x",b="y"" (without the closing brace) from name, value pairs;
 * nothing when there are none.  extra: one more label (le) or NULL. */
static void write_labels(struct buf *b, va_list ap, const char *extra_name, const char *extra_value)
{
	bool any = false;
	for (;;) {
		const char *k = va_arg(ap, const char *);
		if (k == NULL)
			break;
		const char *v = va_arg(ap, const char *);
		buf_append_str(b, any ? "," : "{");
		buf_printf(b, "%s=\"", k);
		escape_label(b, v != NULL ? v : "");
		buf_append_str(b, "\"");
		any = true;
	}
	if (extra_name != NULL) {
		buf_append_str(b, any ? "," : "{");
		buf_printf(b, "%s=\"%s\"", extra_name, extra_value);
		any = true;
	}
	if (any)
		buf_append_str(b, "}");
}

static void write_value(struct buf *b, double v)
{
	if (v == (double)(int64_t)v && v < 9e15 && v > -9e15)
		buf_printf(b, " %lld\n", (long long)v);
	else
		buf_printf(b, " %.9g\n", v);
}

void metrics_sample(struct metrics_out *out, const char *family, double value, ...)
{
	struct family *f = family_find(out, family);
	if (f == NULL || f->type == METRICS_HISTOGRAM) {
		family_for(out, family, METRICS_GAUGE); /* logs the undeclared case */
		return;
	}
	buf_append_str(&f->samples, family);
	va_list ap;
	va_start(ap, value);
	write_labels(&f->samples, ap, NULL, NULL);
	va_end(ap);
	write_value(&f->samples, value);
}

void metrics_histogram(struct metrics_out *out, const char *family, const double *bounds,
                       const uint64_t *counts, size_t n, double sum, ...)
{
	struct family *f = family_for(out, family, METRICS_HISTOGRAM);
	if (f == NULL)
		return;
	uint64_t cum = 0;
	va_list ap;
	for (size_t i = 0; i <= n; i++) {
		char le[32];
		cum += counts[i];
		if (i < n)
			snprintf(le, sizeof(le), "%.9g", bounds[i]);
		else
			snprintf(le, sizeof(le), "+Inf");
		buf_printf(&f->samples, "%s_bucket", family);
		va_start(ap, sum);
		write_labels(&f->samples, ap, "le", le);
		va_end(ap);
		write_value(&f->samples, (double)cum);
	}
	buf_printf(&f->samples, "%s_sum", family);
	va_start(ap, sum);
	write_labels(&f->samples, ap, NULL, NULL);
	va_end(ap);
	write_value(&f->samples, sum);
	buf_printf(&f->samples, "%s_count", family);
	va_start(ap, sum);
	write_labels(&f->samples, ap, NULL, NULL);
	va_end(ap);
	write_value(&f->samples, (double)cum);
}

void metrics_format(struct buf *text)
{
	struct metrics_out out = { 0 };
	for (size_t i = 0; i < ncollectors; i++)
		collectors[i].fn(collectors[i].ctx, &out);
	for (size_t i = 0; i < out.nfamilies; i++) {
		struct family *f = &out.families[i];
		buf_printf(text, "# HELP %s ", f->name);
		for (const char *p = f->help; *p != '\0'; p++) {
			if (*p == '\\')
				buf_append_str(text, "\\\\");
			else if (*p == '\n')
				buf_append_str(text, "\\n");
			else
				buf_append(text, p, 1);
		}
		buf_printf(text, "\n# TYPE %s %s\n", f->name, type_names[f->type]);
		if (f->samples.len > 0)
			buf_append(text, f->samples.data, f->samples.len);
		free(f->name);
		free(f->help);
		buf_free(&f->samples);
	}
	free(out.families);
}

/* ---- the built-in collectors ------------------------------------------------------ */

void metrics_memory(struct metrics_memory *m)
{
	struct mallinfo2 mi = mallinfo2();
	m->rss_kib = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	if (f != NULL) {
		long size, rss;
		if (fscanf(f, "%ld %ld", &size, &rss) == 2)
			m->rss_kib = rss * (sysconf(_SC_PAGESIZE) / 1024);
		fclose(f);
	}
	m->heap_kib = (mi.uordblks + mi.hblkhd) / 1024;
	m->heap_free_kib = mi.fordblks / 1024;
}

static const char *const stanza_kind_names[] = { "other", "message", "presence", "iq" };

static const struct metrics_config *metrics_cfg;

/* ---- the store's counts ----------------------------------------------------------- */

struct store_count {
	char *host;
	struct storage_req *req[2]; /* users, offline */
	uint64_t value[2];
	bool known[2];
};

static struct store_count *store_counts;
static size_t nstore_counts;
static double store_counts_at = -1e9;

static void store_count_done(struct store_count *sc, int k, enum storage_result r, uint64_t n)
{
	sc->req[k] = NULL;
	sc->known[k] = r == STORAGE_OK;
	sc->value[k] = n;
	if (r != STORAGE_OK)
		log_info("metrics: cannot count the %s of %s: %s", k == 0 ? "accounts" : "offline messages",
		         sc->host, storage_result_str(r));
}

static void users_counted(enum storage_result r, uint64_t n, void *ctx)
{
	store_count_done(ctx, 0, r, n);
}

static void offline_counted(enum storage_result r, uint64_t n, void *ctx)
{
	store_count_done(ctx, 1, r, n);
}

static bool store_counts_busy(void)
{
	for (size_t i = 0; i < nstore_counts; i++)
		if (store_counts[i].req[0] != NULL || store_counts[i].req[1] != NULL)
			return true;
	return false;
}

static void store_counts_free(void)
{
	for (size_t i = 0; i < nstore_counts; i++) {
		for (int k = 0; k < 2; k++)
			if (store_counts[i].req[k] != NULL)
				storage_cancel(store_counts[i].req[k]);
		free(store_counts[i].host);
	}
	free(store_counts);
	store_counts = NULL;
	nstore_counts = 0;
	store_counts_at = -1e9;
}

/* New counts for every host with a store (the hosts of the moment: those
 * removed by a reload go, new ones come). */
static void store_counts_refresh(void)
{
	double now = ev_time();
	double every = metrics_cfg != NULL ? metrics_cfg->store_counts_interval : 30;
	if (now - store_counts_at < every || store_counts_busy())
		return;
	store_counts_at = now;
	size_t n = 0;
	for (struct host *h = host_first(); h != NULL; h = h->next)
		n++;
	struct store_count *fresh = xcalloc(n + 1, sizeof(*fresh));
	size_t i = 0;
	for (struct host *h = host_first(); h != NULL; h = h->next, i++) {
		fresh[i].host = xstrdup(h->name);
		for (size_t j = 0; j < nstore_counts; j++) /* keep the last figures meanwhile */
			if (strcmp(store_counts[j].host, h->name) == 0) {
				memcpy(fresh[i].value, store_counts[j].value, sizeof(fresh[i].value));
				memcpy(fresh[i].known, store_counts[j].known, sizeof(fresh[i].known));
			}
	}
	store_counts_free();
	store_counts = fresh;
	nstore_counts = n;
	store_counts_at = now;
	i = 0;
	for (struct host *h = host_first(); h != NULL; h = h->next, i++) {
		if (h->storage == NULL)
			continue;
		store_counts[i].req[0] =
		        storage_account_count(h->storage, h->name, users_counted, &store_counts[i]);
		store_counts[i].req[1] =
		        storage_offline_count_host(h->storage, h->name, offline_counted, &store_counts[i]);
	}
}

static void collect_store_counts(void *ctx, struct metrics_out *out)
{
	(void)ctx;
	store_counts_refresh();
	metrics_family(out, "parley_registered_users", METRICS_GAUGE,
	               "accounts per host, as the store counts them (refreshed at most every "
	               "metrics.store_counts_interval; absent while unknown)");
	metrics_family(out, "parley_offline_messages", METRICS_GAUGE,
	               "messages waiting in the offline queues of a host's users, as the store counts them "
	               "(refreshed at most every metrics.store_counts_interval; absent while unknown)");
	for (size_t i = 0; i < nstore_counts; i++) {
		const struct store_count *sc = &store_counts[i];
		if (sc->known[0])
			metrics_sample(out, "parley_registered_users", (double)sc->value[0], "host", sc->host,
			               NULL);
		if (sc->known[1])
			metrics_sample(out, "parley_offline_messages", (double)sc->value[1], "host", sc->host,
			               NULL);
	}
}

static void collect_server(void *ctx, struct metrics_out *out)
{
	metrics_family(out, "parley_up", METRICS_GAUGE, "1 while parleyd runs");
	metrics_sample(out, "parley_up", 1, NULL);
	metrics_family(out, "parley_uptime_seconds", METRICS_GAUGE, "seconds since parleyd started");
	metrics_sample(out, "parley_uptime_seconds", ev_time() - server.started, NULL);

	metrics_family(out, "parley_connections", METRICS_GAUGE,
	               "open connections by kind (c2s: client streams, authenticated or not, "
	               "WebSocket and BOSH sessions included; http: HTTP connections that are not "
	               "WebSocket streams; s2s_in, s2s_out: server-to-server streams, opening ones "
	               "included)");
	metrics_sample(out, "parley_connections", c2s_count(), "kind", "c2s", NULL);
	metrics_sample(out, "parley_connections", http_count(), "kind", "http", NULL);
	unsigned s2s_out, s2s_opening, s2s_in;
	s2s_counts(&s2s_out, &s2s_opening, &s2s_in);
	metrics_sample(out, "parley_connections", s2s_in, "kind", "s2s_in", NULL);
	metrics_sample(out, "parley_connections", s2s_out + s2s_opening, "kind", "s2s_out", NULL);

	const struct s2s_stats *s2 = s2s_stats();
	metrics_family(out, "parley_s2s_stanzas_total", METRICS_COUNTER,
	               "stanzas from (in) and to (out) other servers, and those bounced because their "
	               "server could not be reached (bounced)");
	metrics_sample(out, "parley_s2s_stanzas_total", (double)s2->stanzas_in, "direction", "in", NULL);
	metrics_sample(out, "parley_s2s_stanzas_total", (double)s2->stanzas_out, "direction", "out", NULL);
	metrics_sample(out, "parley_s2s_stanzas_total", (double)s2->bounced, "direction", "bounced", NULL);
	metrics_family(out, "parley_s2s_authentications_total", METRICS_COUNTER,
	               "server-to-server authentications by method and result");
	metrics_sample(out, "parley_s2s_authentications_total", (double)s2->external, "method", "external",
	               "result", "ok", NULL);
	metrics_sample(out, "parley_s2s_authentications_total", (double)s2->dialback_valid, "method",
	               "dialback", "result", "ok", NULL);
	metrics_sample(out, "parley_s2s_authentications_total", (double)s2->dialback_invalid, "method",
	               "dialback", "result", "refused", NULL);
	metrics_sample(out, "parley_s2s_authentications_total", (double)s2->dane_valid, "method", "dane",
	               "result", "ok", NULL);
	metrics_sample(out, "parley_s2s_authentications_total", (double)s2->dane_mismatch, "method", "dane",
	               "result", "refused", NULL);
	const struct resolve_tlsa_stats *tl = resolve_tlsa_stats();
	metrics_family(out, "parley_s2s_tlsa_lookups_total", METRICS_COUNTER,
	               "TLSA lookups for DANE (s2s.dane) by how they were answered: dns (a query "
	               "was sent), cache (an answer kept for its TTL), failed (no answer, or a bogus "
	               "one: that host is not used)");
	metrics_sample(out, "parley_s2s_tlsa_lookups_total", (double)(tl->queries - tl->failed), "source",
	               "dns", NULL);
	metrics_sample(out, "parley_s2s_tlsa_lookups_total", (double)tl->cache_hits, "source", "cache", NULL);
	metrics_sample(out, "parley_s2s_tlsa_lookups_total", (double)tl->failed, "source", "failed", NULL);
	metrics_family(out, "parley_s2s_tlsa_cached", METRICS_GAUGE,
	               "host names whose TLSA answer is kept now (256 at most)");
	metrics_sample(out, "parley_s2s_tlsa_cached", tl->cached, NULL);

	const struct component_stats *comp = component_stats();
	metrics_sample(out, "parley_connections", comp->connected, "kind", "component", NULL);
	metrics_family(out, "parley_components_configured", METRICS_GAUGE,
	               "external components (XEP-0114) in the configuration");
	metrics_sample(out, "parley_components_configured", comp->configured, NULL);
	metrics_family(out, "parley_component_stanzas_total", METRICS_COUNTER,
	               "stanzas from (in) and to (out) external components, and those bounced "
	               "because their component was not connected (bounced)");
	metrics_sample(out, "parley_component_stanzas_total", (double)comp->stanzas_in, "direction", "in",
	               NULL);
	metrics_sample(out, "parley_component_stanzas_total", (double)comp->stanzas_out, "direction", "out",
	               NULL);
	metrics_sample(out, "parley_component_stanzas_total", (double)comp->bounced_offline, "direction",
	               "bounced", NULL);
	metrics_family(out, "parley_component_handshakes_total", METRICS_COUNTER,
	               "component handshakes by result: ok, replaced (accepted, and the connected one "
	               "closed), refused (the domain was connected already and on_conflict kept it), "
	               "bad_secret, unknown_domain");
	/* disjoint results: a connection that replaced another is not "ok" too */
	metrics_sample(out, "parley_component_handshakes_total", (double)(comp->handshakes - comp->replaced),
	               "result", "ok", NULL);
	metrics_sample(out, "parley_component_handshakes_total", (double)comp->bad_secret, "result",
	               "bad_secret", NULL);
	metrics_sample(out, "parley_component_handshakes_total", (double)comp->unknown_domain, "result",
	               "unknown_domain", NULL);
	metrics_sample(out, "parley_component_handshakes_total", (double)comp->refused, "result", "refused",
	               NULL);
	metrics_sample(out, "parley_component_handshakes_total", (double)comp->replaced, "result", "replaced",
	               NULL);

	metrics_family(out, "parley_sessions", METRICS_GAUGE, "bound client sessions by virtual host");
	for (struct host *h = host_first(); h != NULL; h = h->next)
		metrics_sample(out, "parley_sessions", sm_count(h), "host", h->name, NULL);

	const struct c2s_stats *cs = c2s_stats();
	metrics_family(out, "parley_stanzas_in_total", METRICS_COUNTER,
	               "stanzas sent by client sessions, by kind");
	metrics_family(out, "parley_stanzas_out_total", METRICS_COUNTER,
	               "stanzas delivered to client sessions, by kind");
	for (int k = 1; k < 4; k++) {
		metrics_sample(out, "parley_stanzas_in_total", (double)cs->in[k], "kind",
		               stanza_kind_names[k], NULL);
		metrics_sample(out, "parley_stanzas_out_total", (double)cs->out[k], "kind",
		               stanza_kind_names[k], NULL);
	}

	const struct router_stats *rs = router_stats();
	metrics_family(out, "parley_router_stanzas_total", METRICS_COUNTER, "stanzas routed");
	metrics_sample(out, "parley_router_stanzas_total", (double)rs->routed, NULL);
	metrics_family(out, "parley_router_deliveries_total", METRICS_COUNTER,
	               "where routed stanzas went: local_iq (the server JID), sm (a local user), "
	               "route (a local service or component), remote (the s2s manager), "
	               "undeliverable (bounced)");
	metrics_sample(out, "parley_router_deliveries_total", (double)rs->local_iq, "to", "local_iq", NULL);
	metrics_sample(out, "parley_router_deliveries_total", (double)rs->to_sm, "to", "sm", NULL);
	metrics_sample(out, "parley_router_deliveries_total", (double)rs->to_route, "to", "route", NULL);
	metrics_sample(out, "parley_router_deliveries_total", (double)rs->to_remote, "to", "remote", NULL);
	metrics_sample(out, "parley_router_deliveries_total", (double)rs->undeliverable, "to",
	               "undeliverable", NULL);

	metrics_family(out, "parley_auth_answers_total", METRICS_COUNTER,
	               "answers of each auth backend to login questions (question: password for a "
	               "password check, scram for a SCRAM credentials lookup), by result");
	static const enum auth_result results[] = { AUTH_OK,       AUTH_BAD_PASSWORD,  AUTH_NO_USER,
		                                    AUTH_TEMPFAIL, AUTH_NOT_SUPPORTED, AUTH_ERROR };
	for (struct host *h = host_first(); h != NULL; h = h->next) {
		for (size_t i = 0; h->auth != NULL && i < auth_backend_count(h->auth); i++) {
			for (int q = 0; q < 2; q++) {
				for (size_t r = 0; r < ARRAY_SIZE(results); r++) {
					uint64_t n =
					        auth_backend_login_answers(h->auth, i, q == 1, results[r]);
					if (n == 0)
						continue;
					metrics_sample(out, "parley_auth_answers_total", (double)n, "host",
					               h->name, "backend", auth_backend_name(h->auth, i),
					               "question", q == 1 ? "scram" : "password", "result",
					               auth_result_str(results[r]), NULL);
				}
			}
		}
	}

	metrics_family(out, "parley_storage_pending", METRICS_GAUGE,
	               "storage calls of every host in flight now");
	metrics_sample(out, "parley_storage_pending", hosts_storage_pending(), NULL);

	struct metrics_memory m;
	metrics_memory(&m);
	metrics_family(out, "parley_memory_rss_bytes", METRICS_GAUGE, "resident set size");
	metrics_sample(out, "parley_memory_rss_bytes", (double)m.rss_kib * 1024, NULL);
	metrics_family(out, "parley_memory_heap_bytes", METRICS_GAUGE,
	               "malloc heap: in use (used) and free inside the heap (free)");
	metrics_sample(out, "parley_memory_heap_bytes", (double)m.heap_kib * 1024, "state", "used", NULL);
	metrics_sample(out, "parley_memory_heap_bytes", (double)m.heap_free_kib * 1024, "state", "free",
	               NULL);
}

static void collect_latency(void *ctx, struct metrics_out *out)
{
	const struct latency_stats *st = latency_stats();
	double bounds[LATENCY_BUCKETS - 1];
	for (unsigned i = 0; i + 1 < LATENCY_BUCKETS; i++)
		bounds[i] = (double)latency_bucket_floor_us(i + 1) / 1e6;
	metrics_family(out, "parley_loop_iteration_seconds", METRICS_HISTOGRAM,
	               "busy time of each event loop iteration (since start or parleyctl latency --reset)");
	metrics_histogram(out, "parley_loop_iteration_seconds", bounds, st->buckets, LATENCY_BUCKETS - 1,
	                  (double)st->busy_ns / 1e9, NULL);
	metrics_family(out, "parley_loop_idle_seconds_total", METRICS_COUNTER,
	               "time the event loop waited for events");
	metrics_sample(out, "parley_loop_idle_seconds_total", (double)st->idle_ns / 1e9, NULL);
	metrics_family(out, "parley_loop_class_seconds_total", METRICS_COUNTER,
	               "busy time of the event loop by callback class");
	for (int c = 0; c < LATENCY_CLASS_COUNT; c++)
		metrics_sample(out, "parley_loop_class_seconds_total", (double)st->classes[c].total_ns / 1e9,
		               "class", latency_class_name((enum latency_class)c), NULL);
}

struct worker_collect {
	struct metrics_out *out;
	struct strlist seen; /* group labels given so far */
};

static void collect_worker_group(const struct worker_group *g, void *ctx)
{
	struct worker_collect *wc = ctx;
	/* Two stores of one driver have groups of one name: number the later. */
	char *label = xstrdup(worker_group_name(g));
	for (unsigned n = 2; strlist_contains(&wc->seen, label); n++) {
		free(label);
		label = xasprintf("%s#%u", worker_group_name(g), n);
	}
	wc->seen.items = xrealloc(wc->seen.items, (wc->seen.count + 1) * sizeof(char *));
	wc->seen.items[wc->seen.count++] = label;
	const struct worker_group_stats *ws = worker_group_stats(g);
	double bounds[WORKER_STATS_BUCKETS];
	for (unsigned i = 0; i < WORKER_STATS_BUCKETS; i++)
		bounds[i] = worker_stats_bound(i);
	metrics_histogram(wc->out, "parley_worker_job_seconds", bounds, ws->counts, WORKER_STATS_BUCKETS,
	                  ws->sum, "group", label, NULL);
	metrics_sample(wc->out, "parley_worker_jobs_pending", worker_group_pending(g), "group", label, NULL);
	metrics_sample(wc->out, "parley_worker_threads", worker_group_threads(g), "group", label, NULL);
	metrics_sample(wc->out, "parley_worker_jobs_expired_total", (double)ws->expired, "group", label,
	               NULL);
}

static void collect_workers(void *ctx, struct metrics_out *out)
{
	metrics_family(out, "parley_worker_job_seconds", METRICS_HISTOGRAM,
	               "time from submission to answer of the blocking jobs of each worker group "
	               "(storage drivers, LDAP pools, auth-compute), queueing included");
	metrics_family(out, "parley_worker_jobs_pending", METRICS_GAUGE,
	               "jobs of each worker group waiting or running");
	metrics_family(out, "parley_worker_threads", METRICS_GAUGE,
	               "threads of each worker group (its pool size: jobs pending above it wait)");
	metrics_family(out, "parley_worker_jobs_expired_total", METRICS_COUNTER,
	               "jobs of each worker group whose deadline passed in the queue");
	struct worker_collect wc = { .out = out };
	worker_groups_foreach(collect_worker_group, &wc);
	strlist_free(&wc.seen);
}

void metrics_register_builtin(void)
{
	static bool done;
	if (done)
		return;
	done = true;
	metrics_register(collect_server, NULL);
	metrics_register(collect_latency, NULL);
	metrics_register(collect_workers, NULL);
	metrics_register(collect_store_counts, NULL);
}

/* ---- address lists ------------------------------------------------------------------ */

struct cidr {
	int family;
	unsigned char addr[16];
	unsigned bits;
};

/* ip as 4 or 16 bytes; an IPv4-mapped IPv6 address as IPv4. */
static int addr_parse(const char *s, struct cidr *c)
{
	if (inet_pton(AF_INET, s, c->addr) == 1) {
		c->family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, s, c->addr) != 1)
		return -1;
	static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	if (memcmp(c->addr, mapped, 12) == 0) {
		memmove(c->addr, c->addr + 12, 4);
		c->family = AF_INET;
		return 0;
	}
	c->family = AF_INET6;
	return 0;
}

static int cidr_parse(const char *s, struct cidr *c)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *slash = strchr(s, '/');
	size_t len = slash != NULL ? (size_t)(slash - s) : strlen(s);
	if (len == 0 || len >= sizeof(host))
		return -1;
	memcpy(host, s, len);
	host[len] = '\0';
	bool v6_text = strchr(host, ':') != NULL;
	if (addr_parse(host, c) < 0)
		return -1;
	unsigned max = c->family == AF_INET ? 32 : 128;
	if (slash == NULL) {
		c->bits = max;
		return 0;
	}
	char *end;
	unsigned long bits = strtoul(slash + 1, &end, 10);
	if (slash[1] == '\0' || *end != '\0')
		return -1;
	if (v6_text && c->family == AF_INET) {
		/* ::ffff:a.b.c.d/N counts the 96 bits of the prefix */
		if (bits < 96 || bits > 128)
			return -1;
		bits -= 96;
	}
	if (bits > max)
		return -1;
	c->bits = (unsigned)bits;
	return 0;
}

bool metrics_cidr_check(const char *s)
{
	struct cidr c;
	return cidr_parse(s, &c) == 0;
}

static bool cidr_match(const struct cidr *net, const struct cidr *ip)
{
	if (net->family != ip->family)
		return false;
	unsigned full = net->bits / 8, rest = net->bits % 8;
	if (memcmp(net->addr, ip->addr, full) != 0)
		return false;
	if (rest == 0)
		return true;
	unsigned char mask = (unsigned char)(0xff << (8 - rest));
	return (net->addr[full] & mask) == (ip->addr[full] & mask);
}

bool metrics_ip_allowed(const struct strlist *allow, const char *ip)
{
	struct cidr a;
	if (ip == NULL || addr_parse(ip, &a) < 0)
		return false;
	for (size_t i = 0; i < allow->count; i++) {
		struct cidr net;
		if (cidr_parse(allow->items[i], &net) == 0 && cidr_match(&net, &a))
			return true;
	}
	return false;
}

/* ---- /metrics ----------------------------------------------------------------------- */

static bool mounted;

static void metrics_handler(void *ctx, const struct http_request *rq, struct http_reply *r)
{
	latency_begin(LATENCY_CONTROL, "metrics");
	static const char text_type[] = "text/plain; charset=utf-8";
	if (!metrics_ip_allowed(&metrics_cfg->allow, rq->remote_ip)) {
		log_info("metrics: scrape from %s refused (not in metrics.allow)", rq->remote_ip);
		static const char msg[] = "forbidden: this address may not read the metrics\n";
		http_reply_send(r, 403, text_type, msg, sizeof(msg) - 1);
	} else if (strcmp(rq->path, "/metrics") != 0) {
		static const char msg[] = "not found\n";
		http_reply_send(r, 404, text_type, msg, sizeof(msg) - 1);
	} else if (strcmp(rq->method, "GET") != 0 && strcmp(rq->method, "HEAD") != 0) {
		static const char msg[] = "method not allowed: use GET\n";
		http_reply_header(r, "Allow", "GET, HEAD");
		http_reply_send(r, 405, text_type, msg, sizeof(msg) - 1);
	} else {
		struct buf text = { 0 };
		metrics_format(&text);
		http_reply_header(r, "Cache-Control", "no-store");
		http_reply_send(r, 200, "text/plain; version=0.0.4; charset=utf-8", text.data, text.len);
		buf_free(&text);
	}
	latency_end();
}

int metrics_start(const struct parley_config *cfg, char **error_r)
{
	metrics_register_builtin();
	if (!cfg->metrics.enabled)
		return 0;
	metrics_cfg = &cfg->metrics;
	if (http_mount("/metrics", metrics_handler, NULL, error_r) < 0)
		return -1;
	mounted = true;
	log_info("metrics: served at /metrics of the http listeners to %zu address block(s)",
	         cfg->metrics.allow.count);
	return 0;
}

void metrics_stop(void)
{
	if (mounted)
		http_unmount("/metrics");
	mounted = false;
	store_counts_free();
}
