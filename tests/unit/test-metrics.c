/*
 * Unit tests for server/metrics.c and the HTTP admin API (ctl/http-api.c,
 * ctl/cmd-api.c): the exposition format (families grouped across
 * collectors, label escaping, cumulative histograms, a family declared
 * with two types), the built-in collectors (connections, worker job
 * times), the address lists, and the API's answers to every kind of
 * request: no token, an unknown token, an address not allowed, each scope,
 * bad bodies, unknown commands and methods, a command's outcome mapped to
 * an HTTP status, a connection that goes away while its command runs,
 * and the tokens file (hashes only, mode 0600, revocation).
 *
 * The HTTP side is a fake: the program links with --wrap for the
 * functions of server/http.h, so the handlers answer into struct
 * http_reply below and nothing of an HTTP listener runs.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl/http-api.h"
#include "server/metrics.h"
#include "server/server.h"
#include "lib/log.h"
#include "lib/worker.h"

/* ---- the fake HTTP layer ---------------------------------------------------------- */

struct http_reply {
	bool sent;
	int status;
	char *content_type;
	struct buf body;
	struct buf headers; /* "Name: value\n" */
	void (*cancel)(void *ctx);
	void *cancel_ctx;
};

static const char *fake_auth; /* the Authorization header of the next request */
static bool cancel_at_once;   /* the connection goes away as soon as on_cancel is set */
static int mounts;

const char *__wrap_http_request_header(const struct http_request *rq, const char *name);
void __wrap_http_reply_header(struct http_reply *r, const char *name, const char *value);
void __wrap_http_reply_send(struct http_reply *r, int status, const char *content_type, const char *body,
                            size_t len);
void __wrap_http_reply_on_cancel(struct http_reply *r, void (*fn)(void *ctx), void *ctx);
int __wrap_http_mount(const char *prefix, http_handler_fn *fn, void *ctx, char **error_r);
void __wrap_http_unmount(const char *prefix);

const char *__wrap_http_request_header(const struct http_request *rq, const char *name)
{
	return strcasecmp(name, "Authorization") == 0 ? fake_auth : NULL;
}

void __wrap_http_reply_header(struct http_reply *r, const char *name, const char *value)
{
	assert_false(r->sent);
	buf_printf(&r->headers, "%s: %s\n", name, value);
}

void __wrap_http_reply_send(struct http_reply *r, int status, const char *content_type, const char *body,
                            size_t len)
{
	assert_false(r->sent); /* exactly once */
	r->sent = true;
	r->status = status;
	r->content_type = xstrdup(content_type);
	buf_append(&r->body, body, len);
	buf_append(&r->body, "", 1);
	r->body.len--;
}

void __wrap_http_reply_on_cancel(struct http_reply *r, void (*fn)(void *ctx), void *ctx)
{
	r->cancel = fn;
	r->cancel_ctx = ctx;
	if (cancel_at_once) /* as when the command closes every connection (stop) */
		fn(ctx);
}

int __wrap_http_mount(const char *prefix, http_handler_fn *fn, void *ctx, char **error_r)
{
	mounts++;
	return 0;
}

void __wrap_http_unmount(const char *prefix)
{
	mounts--;
}

static void reply_free(struct http_reply *r)
{
	free(r->content_type);
	buf_free(&r->body);
	buf_free(&r->headers);
	memset(r, 0, sizeof(*r));
}

/* ---- metrics ---------------------------------------------------------------------- */

static void collect_a(void *ctx, struct metrics_out *out)
{
	metrics_family(out, "t_connections", METRICS_GAUGE, "open connections");
	metrics_sample(out, "t_connections", 3, "kind", "c2s", NULL);
	metrics_family(out, "t_events_total", METRICS_COUNTER, "events \\ with a backslash");
	metrics_sample(out, "t_events_total", 7, "host", "a\"b\\c\nd", NULL);
	static const double bounds[] = { 0.1, 1 };
	static const uint64_t counts[] = { 2, 3, 1 };
	metrics_family(out, "t_seconds", METRICS_HISTOGRAM, "durations");
	metrics_histogram(out, "t_seconds", bounds, counts, 2, 2.5, "group", "g", NULL);
}

static void collect_b(void *ctx, struct metrics_out *out)
{
	metrics_family(out, "t_connections", METRICS_GAUGE, "ignored: declared already");
	metrics_sample(out, "t_connections", 2, "kind", "s2s", NULL);
	metrics_family(out, "t_seconds", METRICS_GAUGE, "another type");
	metrics_sample(out, "t_seconds", 99, NULL);   /* dropped */
	metrics_sample(out, "t_undeclared", 1, NULL); /* dropped */
}

static void test_exposition(void **state)
{
	metrics_register(collect_a, NULL);
	metrics_register(collect_b, NULL);
	struct buf b = { 0 };
	metrics_format(&b);
	buf_append(&b, "", 1);
	const char *want = "# HELP t_connections open connections\n"
	                   "# TYPE t_connections gauge\n"
	                   "t_connections{kind=\"c2s\"} 3\n"
	                   "t_connections{kind=\"s2s\"} 2\n"
	                   "# HELP t_events_total events \\\\ with a backslash\n"
	                   "# TYPE t_events_total counter\n"
	                   "t_events_total{host=\"a\\\"b\\\\c\\nd\"} 7\n"
	                   "# HELP t_seconds durations\n"
	                   "# TYPE t_seconds histogram\n"
	                   "t_seconds_bucket{group=\"g\",le=\"0.1\"} 2\n"
	                   "t_seconds_bucket{group=\"g\",le=\"1\"} 5\n"
	                   "t_seconds_bucket{group=\"g\",le=\"+Inf\"} 6\n"
	                   "t_seconds_sum{group=\"g\"} 2.5\n"
	                   "t_seconds_count{group=\"g\"} 6\n";
	assert_string_equal(b.data, want);
	buf_free(&b);
	metrics_unregister(collect_a, NULL);
	metrics_unregister(collect_b, NULL);
	metrics_format(&b);
	assert_int_equal(b.len, 0);
	buf_free(&b);
}

static void work_nothing(void *job, void *thread_state)
{
}

static void done_count(void *job, enum worker_status st)
{
	(*(int *)job)++;
}

static void test_builtin(void **state)
{
	struct ev_loop *loop = ev_default_loop(0);
	struct worker_group *g = worker_group_new(loop, "unit-group", 1, 0, NULL, NULL, NULL);
	struct worker_group *g2 = worker_group_new(loop, "unit-group", 1, 0, NULL, NULL, NULL);
	int done = 0;
	assert_non_null(worker_submit(g, 0, work_nothing, done_count, &done, 0));
	assert_non_null(worker_submit(g, 0, work_nothing, done_count, &done, 0));
	while (done < 2)
		ev_run(loop, EVRUN_ONCE);
	metrics_register_builtin();
	struct buf b = { 0 };
	metrics_format(&b);
	buf_append(&b, "", 1);
	assert_non_null(
	        strstr(b.data, "# TYPE parley_connections gauge\nparley_connections{kind=\"c2s\"} 0\n"));
	assert_non_null(strstr(b.data, "parley_worker_job_seconds_count{group=\"unit-group\"} 2\n"));
	assert_non_null(
	        strstr(b.data, "parley_worker_job_seconds_bucket{group=\"unit-group\",le=\"+Inf\"} 2\n"));
	assert_non_null(strstr(b.data, "parley_worker_jobs_pending{group=\"unit-group\"} 0\n"));
	assert_non_null(strstr(b.data, "parley_worker_threads{group=\"unit-group\"} 1\n"));
	assert_non_null(strstr(b.data, "# TYPE parley_loop_iteration_seconds histogram\n"));
	assert_non_null(strstr(b.data, "parley_stanzas_in_total{kind=\"message\"} 0\n"));
	assert_non_null(strstr(b.data, "parley_memory_rss_bytes "));
	assert_null(strstr(b.data, "parley_memory_rss_bytes 0\n"));
	/* every family once, though two groups add to it */
	const char *first = strstr(b.data, "# TYPE parley_worker_job_seconds ");
	assert_non_null(first);
	assert_null(strstr(first + 1, "# TYPE parley_worker_job_seconds "));
	/* two groups of one name get labels of their own */
	assert_non_null(strstr(b.data, "parley_worker_job_seconds_count{group=\"unit-group#2\"} "));
	buf_free(&b);
	worker_group_free(&g);
	worker_group_free(&g2);
}

static void test_cidr(void **state)
{
	assert_true(metrics_cidr_check("127.0.0.0/8"));
	assert_true(metrics_cidr_check("::1/128"));
	assert_true(metrics_cidr_check("192.0.2.7"));
	assert_true(metrics_cidr_check("2001:db8::/32"));
	assert_true(metrics_cidr_check("::ffff:10.0.0.0/104"));
	assert_false(metrics_cidr_check("127.0.0.0/33"));
	assert_false(metrics_cidr_check("::/129"));
	assert_false(metrics_cidr_check("10.0.0.0/"));
	assert_false(metrics_cidr_check("10.0.0.0/8x"));
	assert_false(metrics_cidr_check("localhost"));
	assert_false(metrics_cidr_check(""));
	char *items[] = { "127.0.0.0/8", "2001:db8::/32", "192.0.2.128/25" };
	struct strlist allow = { items, 3 };
	assert_true(metrics_ip_allowed(&allow, "127.1.2.3"));
	assert_true(metrics_ip_allowed(&allow, "::ffff:127.0.0.1")); /* IPv4-mapped */
	assert_true(metrics_ip_allowed(&allow, "2001:db8:1::5"));
	assert_true(metrics_ip_allowed(&allow, "192.0.2.200"));
	assert_false(metrics_ip_allowed(&allow, "192.0.2.100"));
	assert_false(metrics_ip_allowed(&allow, "128.0.0.1"));
	assert_false(metrics_ip_allowed(&allow, "::1"));
	assert_false(metrics_ip_allowed(&allow, "2001:db9::1"));
	assert_false(metrics_ip_allowed(&allow, "garbage"));
	assert_false(metrics_ip_allowed(&allow, NULL));
	struct strlist none = { 0 };
	assert_false(metrics_ip_allowed(&none, "127.0.0.1"));
}

/* ---- the API ---------------------------------------------------------------------- */

static char tokens_path[64];
static char *tokens_file;
static struct parley_config api_config;
static char *allow_items[] = { "127.0.0.0/8" };

static struct ev_loop *loop;

/* One request through the handler; the loop runs until it is answered. */
static void request(struct http_reply *r, const char *method, const char *path, const char *ip,
                    const char *auth, const char *body)
{
	memset(r, 0, sizeof(*r));
	struct http_request rq = {
		.method = method,
		.path = path,
		.remote_ip = ip,
		.body = body,
		.body_len = body != NULL ? strlen(body) : 0,
	};
	fake_auth = auth;
	http_api_handler(NULL, &rq, r);
	for (int i = 0; i < 1000 && !r->sent; i++)
		ev_run(loop, EVRUN_ONCE);
	assert_true(r->sent);
}

struct ctl_result {
	bool done;
	int code;
	char *body;
};

static void ctl_done(void *ctx, int code, const char *message, const char *body)
{
	struct ctl_result *res = ctx;
	res->done = true;
	res->code = code;
	res->body = xstrdup(body);
}

/* Run a parleyctl command in-process; its output (malloc'd) or NULL. */
static char *run(int want_code, int argc, char **argv)
{
	struct ctl_result res = { 0 };
	ctl_run(loop, argc, argv, ctl_done, &res);
	while (!res.done)
		ev_run(loop, EVRUN_ONCE);
	assert_int_equal(res.code, want_code);
	return res.body;
}

static char *bearer(const char *token)
{
	char *t = xasprintf("Bearer %s", token);
	t[strcspn(t, "\n")] = '\0';
	return t;
}

static int setup_api(void **state)
{
	loop = ev_default_loop(0);
	snprintf(tokens_path, sizeof(tokens_path), "/tmp/parley-test-api-XXXXXX");
	assert_non_null(mkdtemp(tokens_path));
	tokens_file = xasprintf("%s/api-tokens", tokens_path);
	api_config.http_api.enabled = true;
	api_config.http_api.allow = (struct strlist){ allow_items, 1 };
	api_config.http_api.tokens_file = tokens_file;
	api_config.file = "test.yml";
	server.cfg = &api_config;
	server.loop = loop;
	server.online = true;
	server.started = ev_time();
	char *err = NULL;
	assert_int_equal(http_api_start(loop, &api_config, &err), 0);
	assert_int_equal(mounts, 1);
	return 0;
}

static int teardown_api(void **state)
{
	http_api_stop();
	assert_int_equal(mounts, 0);
	unlink(tokens_file);
	rmdir(tokens_path);
	free(tokens_file);
	server.cfg = NULL;
	return 0;
}

static void test_api(void **state)
{
	struct http_reply r;
	/* tokens */
	char *ro = run(0, 3, (char *[]){ "api-token-create", "monitor", "read-only", NULL });
	char *all = run(0, 3, (char *[]){ "api-token-create", "root", "all", NULL });
	char *users = run(0, 3, (char *[]){ "api-token-create", "helpdesk", "users", NULL });
	free(run(1, 3, (char *[]){ "api-token-create", "root", "hosts", NULL })); /* taken */
	free(run(2, 3, (char *[]){ "api-token-create", "x", "superuser", NULL }));
	free(run(2, 3, (char *[]){ "api-token-create", "bad name", "all", NULL }));
	assert_true(strncmp(ro, "parley_", 7) == 0);
	assert_int_equal(strlen(ro), 7 + 64 + 1);
	char *ro_auth = bearer(ro), *all_auth = bearer(all), *users_auth = bearer(users);

	/* the file keeps hashes, readable by its owner only */
	struct stat st;
	assert_int_equal(stat(tokens_file, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	FILE *f = fopen(tokens_file, "r");
	char text[4096] = { 0 };
	assert_true(fread(text, 1, sizeof(text) - 1, f) > 0);
	fclose(f);
	ro[strcspn(ro, "\n")] = '\0';
	assert_null(strstr(text, ro));
	assert_null(strstr(text, ro + 7));
	assert_non_null(strstr(text, "\nmonitor read-only "));

	/* no token, bad token, address not allowed */
	request(&r, "GET", "/api/", "127.0.0.1", NULL, NULL);
	assert_int_equal(r.status, 401);
	assert_non_null(strstr(r.headers.data, "WWW-Authenticate: Bearer realm=\"parley\"\n"));
	reply_free(&r);
	request(&r, "GET", "/api/", "127.0.0.1", "Bearer parley_0000", NULL);
	assert_int_equal(r.status, 401);
	assert_non_null(strstr(r.headers.data, "error=\"invalid_token\""));
	reply_free(&r);
	request(&r, "GET", "/api/", "127.0.0.1", "Basic dXNlcjpwYXNz", NULL);
	assert_int_equal(r.status, 401);
	reply_free(&r);
	request(&r, "GET", "/api/", "192.0.2.1", all_auth, NULL);
	assert_int_equal(r.status, 403);
	reply_free(&r);

	/* the list follows the scope */
	request(&r, "GET", "/api/", "127.0.0.1", ro_auth, NULL);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.content_type, "application/json");
	assert_non_null(strstr(r.body.data, "\"name\":\"status\""));
	assert_null(strstr(r.body.data, "\"name\":\"register\""));
	assert_null(strstr(r.body.data, "\"name\":\"api-openapi\"")); /* local: never in the API */
	reply_free(&r);
	request(&r, "GET", "/api/", "127.0.0.1", all_auth, NULL);
	assert_non_null(strstr(r.body.data, "\"name\":\"register\""));
	assert_non_null(strstr(r.body.data, "\"name\":\"stop\""));
	assert_null(strstr(r.body.data, "\"name\":\"restore\"")); /* only while stopped */
	reply_free(&r);

	/* a read-only command with any token; text output */
	request(&r, "POST", "/api/status", "::ffff:127.0.0.1", ro_auth, NULL);
	assert_int_equal(r.status, 200);
	assert_true(strncmp(r.body.data, "{\"code\":0,\"message\":null,\"result\":\"status: running\\n",
	                    50) == 0);
	reply_free(&r);
	/* JSON output is embedded as JSON */
	request(&r, "POST", "/api/stats", "127.0.0.1", ro_auth, "{\"args\": []}");
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body.data, "\"result\":{\"uptime_seconds\":"));
	reply_free(&r);
	request(&r, "POST", "/api/api-token-list", "127.0.0.1", ro_auth, "");
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body.data, "\"result\":[{\"name\":\"monitor\",\"scope\":\"read-only\""));
	reply_free(&r);

	/* scopes: a read-only token cannot write */
	request(&r, "POST", "/api/register", "127.0.0.1", ro_auth, "{\"args\": [\"a\", \"b\", \"c\"]}");
	assert_int_equal(r.status, 403);
	assert_non_null(strstr(r.headers.data, "error=\"insufficient_scope\""));
	assert_non_null(strstr(r.body.data, "register needs a token of scope users"));
	reply_free(&r);
	request(&r, "POST", "/api/reload", "127.0.0.1", users_auth, NULL);
	assert_int_equal(r.status, 403);
	reply_free(&r);
	request(&r, "POST", "/api/stop", "127.0.0.1", users_auth, NULL);
	assert_int_equal(r.status, 403);
	reply_free(&r);
	request(&r, "POST", "/api/api-token-create", "127.0.0.1", users_auth, "{\"args\":[\"n\",\"all\"]}");
	assert_int_equal(r.status, 403);
	reply_free(&r);
	/* a users token passes the scope check; the host is not served: 422 */
	request(&r, "POST", "/api/register", "127.0.0.1", users_auth,
	        "{\"args\": [\"a\", \"nohost.example\", \"pw\"]}");
	assert_int_equal(r.status, 422);
	assert_non_null(
	        strstr(r.body.data, "\"code\":1,\"message\":\"host nohost.example is not served here\""));
	reply_free(&r);

	/* bad requests */
	request(&r, "POST", "/api/status", "127.0.0.1", ro_auth, "{");
	assert_int_equal(r.status, 400);
	reply_free(&r);
	request(&r, "POST", "/api/status", "127.0.0.1", ro_auth, "[]");
	assert_int_equal(r.status, 400);
	reply_free(&r);
	request(&r, "POST", "/api/status", "127.0.0.1", ro_auth, "{\"args\": [1]}");
	assert_int_equal(r.status, 400);
	reply_free(&r);
	request(&r, "POST", "/api/status", "127.0.0.1", ro_auth, "{\"args\": \"x\"}");
	assert_int_equal(r.status, 400);
	reply_free(&r);
	request(&r, "POST", "/api/status", "127.0.0.1", ro_auth, "{\"args\": [], \"more\": 1}");
	assert_int_equal(r.status, 400);
	reply_free(&r);
	request(&r, "POST", "/api/status", "127.0.0.1", ro_auth, "{\"args\": [\"a\\u0000b\"]}");
	assert_int_equal(r.status, 400);
	reply_free(&r);
	request(&r, "POST", "/api/status", "127.0.0.1", ro_auth, "{\"args\": [\"extra\"]}");
	assert_int_equal(r.status, 400); /* usage: code 2 */
	assert_non_null(strstr(r.body.data, "\"code\":2"));
	reply_free(&r);
	/* named arguments, from the usage words */
	request(&r, "POST", "/api/register", "127.0.0.1", users_auth,
	        "{\"args\": {\"host\": \"nohost.example\", \"user\": \"a\", \"password\": \"pw\"}}");
	assert_int_equal(r.status, 422);
	assert_non_null(strstr(r.body.data, "host nohost.example is not served here"));
	reply_free(&r);
	request(&r, "POST", "/api/check-password", "127.0.0.1", users_auth,
	        "{\"args\": {\"host\": \"nohost.example\", \"user\": \"a\", \"password\": \"pw\"}}");
	assert_int_equal(r.status, 422); /* the password is the last argument */
	reply_free(&r);
	request(&r, "POST", "/api/register", "127.0.0.1", users_auth,
	        "{\"args\": {\"user\": \"a\", \"host\": \"h\", \"pass\": \"pw\"}}");
	assert_int_equal(r.status, 400); /* unknown name */
	reply_free(&r);
	request(&r, "POST", "/api/register", "127.0.0.1", users_auth,
	        "{\"args\": {\"user\": \"a\", \"host\": \"h\"}}");
	assert_int_equal(r.status, 400); /* password missing */
	reply_free(&r);
	request(&r, "POST", "/api/register", "127.0.0.1", users_auth,
	        "{\"args\": {\"user\": \"a\", \"password\": \"pw\"}}");
	assert_int_equal(r.status, 400); /* a gap */
	reply_free(&r);
	request(&r, "POST", "/api/register", "127.0.0.1", users_auth,
	        "{\"args\": {\"user\": \"a\", \"host\": 5, \"password\": \"pw\"}}");
	assert_int_equal(r.status, 400);
	reply_free(&r);
	request(&r, "POST", "/api/fast-list", "127.0.0.1", users_auth, "{\"args\": {\"jid\": \"a@b\"}}");
	assert_int_equal(r.status, 400); /* USER@HOST has no name */
	assert_non_null(strstr(r.body.data, "takes its arguments as a list"));
	reply_free(&r);
	request(&r, "POST", "/api/status", "127.0.0.1", ro_auth, "{\"args\": {}}");
	assert_int_equal(r.status, 200);
	reply_free(&r);
	request(&r, "GET", "/api/", "127.0.0.1", all_auth, NULL);
	assert_non_null(strstr(r.body.data, "\"name\":\"kick-session\",\"args\":\"JID [REASON]\""));
	assert_non_null(strstr(r.body.data, "\"names\":[\"jid\",\"reason\"]"));
	assert_non_null(strstr(r.body.data, "\"names\":[\"user\",\"host\",\"password\"]"));
	reply_free(&r);

	request(&r, "POST", "/api/no-such-command", "127.0.0.1", all_auth, NULL);
	assert_int_equal(r.status, 404);
	reply_free(&r);
	request(&r, "POST", "/api/help", "127.0.0.1", all_auth, NULL);
	assert_int_equal(r.status, 404);
	reply_free(&r);
	request(&r, "GET", "/api/status", "127.0.0.1", all_auth, NULL);
	assert_int_equal(r.status, 405);
	assert_non_null(strstr(r.headers.data, "Allow: POST\n"));
	reply_free(&r);
	request(&r, "DELETE", "/api/", "127.0.0.1", all_auth, NULL);
	assert_int_equal(r.status, 405);
	reply_free(&r);

	/* the connection goes away while the command runs: no reply, no leak */
	memset(&r, 0, sizeof(r));
	struct http_request rq = { .method = "POST", .path = "/api/status", .remote_ip = "127.0.0.1" };
	fake_auth = ro_auth;
	http_api_handler(NULL, &rq, &r);
	assert_false(r.sent);
	assert_non_null(r.cancel);
	r.cancel(r.cancel_ctx);
	for (int i = 0; i < 5; i++)
		ev_run(loop, EVRUN_NOWAIT);
	assert_false(r.sent);
	reply_free(&r);

	/* the connection goes away while the command starts: no reply */
	memset(&r, 0, sizeof(r));
	cancel_at_once = true;
	http_api_handler(NULL, &rq, &r);
	cancel_at_once = false;
	for (int i = 0; i < 5; i++)
		ev_run(loop, EVRUN_NOWAIT);
	assert_false(r.sent);
	reply_free(&r);

	/* revoked: refused at once */
	request(&r, "POST", "/api/api-token-revoke", "127.0.0.1", all_auth, "{\"args\": [\"monitor\"]}");
	assert_int_equal(r.status, 200);
	reply_free(&r);
	request(&r, "GET", "/api/", "127.0.0.1", ro_auth, NULL);
	assert_int_equal(r.status, 401);
	reply_free(&r);
	free(run(1, 2, (char *[]){ "api-token-revoke", "monitor", NULL }));

	/* a damaged file is refused with its line */
	f = fopen(tokens_file, "a");
	fputs("broken line\n", f);
	fclose(f);
	char *err = NULL;
	assert_int_equal(api_tokens_load(tokens_file, &err), -1);
	assert_non_null(strstr(err, "api-tokens:5: expected NAME SCOPE"));
	free(err);

	free(ro);
	free(all);
	free(users);
	free(ro_auth);
	free(all_auth);
	free(users_auth);
}

static void test_arg_names(void **state)
{
	char names[4][API_ARG_NAME_MAX];
	struct ctl_command_info c = { .args = "JID [REASON]" };
	assert_int_equal(api_arg_names(&c, names, 4), 2);
	assert_string_equal(names[0], "jid");
	assert_string_equal(names[1], "reason");
	c.args = "USER HOST";
	c.flags = CTL_F_STDIN;
	assert_int_equal(api_arg_names(&c, names, 4), 3);
	assert_string_equal(names[2], "password");
	c.flags = 0;
	c.args = "";
	assert_int_equal(api_arg_names(&c, names, 4), 0);
	c.args = "USER@HOST";
	assert_int_equal(api_arg_names(&c, names, 4), -1);
	c.args = "HOST --online|--all TEXT";
	assert_int_equal(api_arg_names(&c, names, 4), -1);
	c.args = "[--reset]";
	assert_int_equal(api_arg_names(&c, names, 4), -1);
	c.args = "A B C D E";
	assert_int_equal(api_arg_names(&c, names, 4), -1);
}

static void test_openapi(void **state)
{
	char *doc = run(0, 1, (char *[]){ "api-openapi", NULL });
	assert_non_null(strstr(doc, "\"openapi\": \"3.0.3\""));
	assert_non_null(strstr(doc, "\"/register\": {"));
	assert_null(strstr(doc, "\"/restore\""));
	assert_null(strstr(doc, "\"/help\""));
	free(doc);
}

int main(void)
{
	log_set_level(LOG_LEVEL_ERROR);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exposition),
		cmocka_unit_test(test_builtin),
		cmocka_unit_test(test_cidr),
		cmocka_unit_test(test_arg_names),
		cmocka_unit_test_setup_teardown(test_api, setup_api, teardown_api),
		cmocka_unit_test_setup_teardown(test_openapi, setup_api, teardown_api),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
