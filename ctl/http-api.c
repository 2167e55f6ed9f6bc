/*
 * The HTTP admin API: parleyctl's command table served at /api/ of the
 * http listeners (http-api.h says what it answers).  Loop thread.
 *
 * A request is checked in this order: the caller's address (http_api.allow,
 * else 403), the bearer token (none or unknown: 401 with WWW-Authenticate),
 * the path and method (404, 405), the token's scope against the command's
 * mark in the table (403 insufficient_scope), the JSON body (400).  Then
 * the command runs through ctl_run, exactly as for the control socket, and
 * its outcome becomes the JSON answer, the HTTP status mapped from the
 * exit code (0: 200, 1: 422, 2: 400, 3 and 4: 503, 5: 409).
 *
 * Invariants: one struct api_request per running command; its reply is
 * sent exactly once, from the command's done callback, or the command is
 * cancelled when the connection goes away first (http_reply_on_cancel), or
 * when the API stops.  A token is never logged, only its name.
 */
#include "http-api.h"
#include "ctl-proto.h"
#include "server/metrics.h"
#include "lib/latency.h"
#include "lib/log.h"

#include <jansson.h>
#include <string.h>
#include <strings.h>

#define MAX_NAMED 16 /* named arguments a command may have */

struct api_request {
	struct http_reply *reply;
	struct ctl_call *call;
	char *command, *token_name, *remote_ip;
	bool json;     /* the command answers in JSON */
	bool starting; /* inside ctl_run */
	bool gone;     /* the connection went away while starting */
	struct api_request *prev, *next;
};

static struct ev_loop *api_loop;
static const struct http_api_config *api_cfg;
static bool api_mounted;
static struct api_request *running;

static void request_unlink_free(struct api_request *ar)
{
	if (ar->prev != NULL)
		ar->prev->next = ar->next;
	else
		running = ar->next;
	if (ar->next != NULL)
		ar->next->prev = ar->prev;
	free(ar->command);
	free(ar->token_name);
	free(ar->remote_ip);
	free(ar);
}

static void send_json(struct http_reply *r, int status, json_t *body)
{
	char *text = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(body);
	if (text == NULL) {
		static const char fallback[] = "{\"error\":\"cannot encode the answer\"}";
		http_reply_send(r, 500, "application/json", fallback, sizeof(fallback) - 1);
		return;
	}
	http_reply_header(r, "Cache-Control", "no-store");
	http_reply_send(r, status, "application/json", text, strlen(text));
	free(text);
}

static void send_error(struct http_reply *r, int status, const char *error)
{
	send_json(r, status, json_pack("{s:s}", "error", error));
}

static int status_of(int code)
{
	switch (code) {
	case CTL_OK: return 200;
	case CTL_FAILED: return 422;
	case CTL_USAGE: return 400;
	case CTL_UNREACHABLE:
	case CTL_TEMPFAIL: return 503;
	case CTL_REFUSED: return 409;
	}
	return 500;
}

static void command_done(void *ctx, int code, const char *message, const char *body)
{
	struct api_request *ar = ctx;
	json_t *result = NULL;
	if (ar->json && code == CTL_OK && body[0] != '\0')
		result = json_loads(body, JSON_DECODE_ANY, NULL);
	if (result == NULL)
		result = json_string(body);
	if (result == NULL) /* not UTF-8 */
		result = json_stringn_nocheck(body, strlen(body));
	json_t *answer = json_pack("{s:i, s:o, s:o}", "code", code, "message",
	                           message != NULL ? json_string(message) : json_null(), "result", result);
	log_info("http api: %s ran %s with token %s: %s", ar->remote_ip, ar->command, ar->token_name,
	         code == CTL_OK    ? "ok"
	         : message != NULL ? message
	                           : "failed");
	struct http_reply *r = ar->reply;
	request_unlink_free(ar);
	if (code == CTL_TEMPFAIL)
		http_reply_header(r, "Retry-After", "5");
	send_json(r, status_of(code), answer);
}

static void request_cancelled(void *ctx)
{
	struct api_request *ar = ctx;
	log_info("http api: %s went away while %s ran; cancelled", ar->remote_ip, ar->command);
	ar->reply = NULL;
	if (ar->starting) {
		/* the command itself closed the connection (stop, restart):
		 * cancelled once ctl_run has returned */
		ar->gone = true;
		return;
	}
	ctl_call_cancel(ar->call);
	request_unlink_free(ar);
}

/* The token of an "Authorization: Bearer TOKEN" header, or NULL. */
static const char *bearer_token(const struct http_request *rq)
{
	const char *h = http_request_header(rq, "Authorization");
	if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
		return NULL;
	h += 7;
	while (*h == ' ')
		h++;
	return *h != '\0' ? h : NULL;
}

static void list_commands(struct http_reply *r, enum ctl_scope scope)
{
	json_t *list = json_array();
	struct ctl_command_info c;
	for (size_t i = 0; ctl_command_get(i, &c); i++) {
		if (!ctl_command_in_api(c.flags) || !ctl_scope_allows(scope, c.flags))
			continue;
		json_t *entry = json_pack("{s:s, s:s, s:s, s:s, s:b}", "name", c.name, "args", c.args, "help",
		                          c.help, "scope", ctl_scope_name(ctl_flags_scope(c.flags)), "json",
		                          (c.flags & CTL_F_JSON) != 0);
		char names[MAX_NAMED][API_ARG_NAME_MAX];
		int n = api_arg_names(&c, names, MAX_NAMED);
		json_t *jnames = n >= 0 ? json_array() : json_null();
		for (int k = 0; k < n; k++)
			json_array_append_new(jnames, json_string(names[k]));
		json_object_set_new(entry, "names", jnames);
		json_array_append_new(list, entry);
	}
	send_json(r, 200, json_pack("{s:i, s:n, s:o}", "code", CTL_OK, "message", "result", list));
}

int api_arg_names(const struct ctl_command_info *c, char (*names_r)[API_ARG_NAME_MAX], size_t max)
{
	size_t n = 0;
	const char *p = c->args;
	while (*p != '\0') {
		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		size_t len = strcspn(p, " ");
		const char *w = p;
		size_t wlen = len;
		p += len;
		if (wlen >= 2 && w[0] == '[' && w[wlen - 1] == ']') {
			w++;
			wlen -= 2;
		}
		if (wlen == 0 || wlen >= API_ARG_NAME_MAX || n == max || !(w[0] >= 'A' && w[0] <= 'Z'))
			return -1;
		for (size_t i = 0; i < wlen; i++) {
			char ch = w[i];
			if (!((ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_'))
				return -1;
			names_r[n][i] = (char)(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch);
		}
		names_r[n][wlen] = '\0';
		n++;
	}
	if (c->flags & CTL_F_STDIN) {
		if (n == max)
			return -1;
		strcpy(names_r[n++], "password");
	}
	return (int)n;
}


/* {"name": "value"} as the command's list: every key a name of its
 * arguments, the first min_args present, no gap before the last given.
 * NULL with *error_r (static text). */
static json_t *named_args(const struct ctl_command_info *c, json_t *obj, const char **error_r)
{
	char names[MAX_NAMED][API_ARG_NAME_MAX];
	int n = api_arg_names(c, names, MAX_NAMED);
	if (n < 0) {
		*error_r = "this command takes its arguments as a list (\"args\": [...])";
		return NULL;
	}
	size_t known = 0;
	for (int i = 0; i < n; i++)
		if (json_object_get(obj, names[i]) != NULL)
			known++;
	if (known != json_object_size(obj)) {
		*error_r = "\"args\" names an argument this command does not have (GET /api/ lists "
		           "them)";
		return NULL;
	}
	json_t *list = json_array();
	int last = -1;
	for (int i = 0; i < n; i++)
		if (json_object_get(obj, names[i]) != NULL)
			last = i;
	for (int i = 0; i <= last; i++) {
		json_t *v = json_object_get(obj, names[i]);
		if (v == NULL) {
			*error_r = "an argument is missing before the last one given";
			json_decref(list);
			return NULL;
		}
		json_array_append(list, v);
	}
	if ((int)json_array_size(list) < c->min_args) {
		*error_r = "a required argument is missing";
		json_decref(list);
		return NULL;
	}
	return list;
}

/* The arguments of the body: {"args": [strings]}, {"args": {"name":
 * "string"}} or nothing.  NULL with *error_r (static text) when the body
 * says something else. */
static json_t *body_args(const struct ctl_command_info *c, const struct http_request *rq,
                         const char **error_r)
{
	if (rq->body == NULL || rq->body_len == 0)
		return json_array();
	json_error_t jerr;
	json_t *doc = json_loadb(rq->body, rq->body_len, JSON_REJECT_DUPLICATES, &jerr);
	if (doc == NULL) {
		*error_r = "the body is not JSON";
		return NULL;
	}
	json_t *args = json_object_get(doc, "args");
	if (!json_is_object(doc) || json_object_size(doc) != (args != NULL ? 1u : 0u)) {
		*error_r = "the body must be an object whose only key is \"args\"";
		json_decref(doc);
		return NULL;
	}
	if (args == NULL) {
		json_decref(doc);
		return json_array();
	}
	if (json_is_object(args)) {
		json_t *list = named_args(c, args, error_r);
		json_decref(doc);
		if (list == NULL)
			return NULL;
		args = list;
		doc = list; /* checked below like a list, and freed with it */
	} else if (!json_is_array(args)) {
		*error_r = "\"args\" must be a list of strings, or an object of named strings";
		json_decref(doc);
		return NULL;
	}
	size_t i;
	json_t *v;
	json_array_foreach(args, i, v)
	{
		if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v)) {
			*error_r = "the arguments must be strings (without NUL characters)";
			json_decref(doc);
			return NULL;
		}
	}
	json_incref(args);
	json_decref(doc);
	return args;
}

void http_api_handler(void *ctx, const struct http_request *rq, struct http_reply *r)
{
	latency_begin(LATENCY_CONTROL, "http-api");
	const char *token = bearer_token(rq);
	enum ctl_scope scope;
	const char *token_name = NULL;
	if (api_cfg == NULL || !metrics_ip_allowed(&api_cfg->allow, rq->remote_ip)) {
		log_info("http api: request from %s refused (not in http_api.allow)", rq->remote_ip);
		send_error(r, 403, "this address may not use the API");
		goto out;
	}
	if (token == NULL || !api_token_check(token, &scope, &token_name)) {
		if (token != NULL)
			log_info("http api: request from %s with an unknown token refused", rq->remote_ip);
		http_reply_header(r, "WWW-Authenticate",
		                  token == NULL ? "Bearer realm=\"parley\""
		                                : "Bearer realm=\"parley\", error=\"invalid_token\"");
		send_error(r, 401, token == NULL ? "a bearer token is needed" : "unknown token");
		goto out;
	}
	const char *name = rq->path;
	if (strncmp(name, "/api", 4) == 0)
		name += 4;
	if (*name == '/')
		name++;
	if (*name == '\0') {
		if (strcmp(rq->method, "GET") != 0) {
			http_reply_header(r, "Allow", "GET");
			send_error(r, 405, "use GET to list the commands");
		} else {
			list_commands(r, scope);
		}
		goto out;
	}
	struct ctl_command_info info;
	if (!ctl_command_find(name, &info) || !ctl_command_in_api(info.flags)) {
		send_error(r, 404, "no such command in the API (GET /api/ lists them)");
		goto out;
	}
	unsigned flags = info.flags;
	if (strcmp(rq->method, "POST") != 0) {
		http_reply_header(r, "Allow", "POST");
		send_error(r, 405, "use POST to run a command");
		goto out;
	}
	if (!ctl_scope_allows(scope, flags)) {
		log_info("http api: %s: token %s (scope %s) may not run %s", rq->remote_ip, token_name,
		         ctl_scope_name(scope), name);
		http_reply_header(r, "WWW-Authenticate",
		                  "Bearer realm=\"parley\", error=\"insufficient_scope\"");
		char *msg = xasprintf("%s needs a token of scope %s", name,
		                      ctl_scope_name(ctl_flags_scope(flags)));
		send_error(r, 403, msg);
		free(msg);
		goto out;
	}
	const char *bad = NULL;
	json_t *args = body_args(&info, rq, &bad);
	if (args == NULL) {
		send_error(r, 400, bad);
		goto out;
	}
	size_t nargs = json_array_size(args);
	char **argv = xcalloc(nargs + 3, sizeof(*argv));
	int argc = 0;
	bool json = (flags & CTL_F_JSON) != 0;
	if (json)
		argv[argc++] = (char *)"--json";
	argv[argc++] = (char *)name;
	for (size_t i = 0; i < nargs; i++)
		argv[argc++] = (char *)json_string_value(json_array_get(args, i));
	struct api_request *ar = xcalloc(1, sizeof(*ar));
	ar->reply = r;
	ar->command = xstrdup(name);
	ar->token_name = xstrdup(token_name);
	ar->remote_ip = xstrdup(rq->remote_ip);
	ar->json = json;
	ar->next = running;
	if (running != NULL)
		running->prev = ar;
	running = ar;
	/* Set first: the command may close the connection while it runs
	 * (stop and restart close every HTTP connection).  done runs from the
	 * loop later, never inside ctl_run. */
	ar->starting = true;
	http_reply_on_cancel(r, request_cancelled, ar);
	ar->call = ctl_run(api_loop, argc, argv, command_done, ar);
	ar->starting = false;
	if (ar->gone) {
		ctl_call_cancel(ar->call);
		request_unlink_free(ar);
	}
	free(argv);
	json_decref(args);
out:
	latency_end();
}

int http_api_start(struct ev_loop *loop, const struct parley_config *cfg, char **error_r)
{
	if (!cfg->http_api.enabled)
		return 0;
	api_loop = loop;
	api_cfg = &cfg->http_api;
	if (api_tokens_load(cfg->http_api.tokens_file, error_r) < 0)
		return -1;
	if (http_mount("/api/", http_api_handler, NULL, error_r) < 0)
		return -1;
	api_mounted = true;
	log_info("http api: served at /api/ of the http listeners (tokens in %s)", cfg->http_api.tokens_file);
	return 0;
}

void http_api_stop_accepting(void)
{
	if (api_mounted)
		http_unmount("/api/");
	api_mounted = false;
}

void http_api_stop(void)
{
	http_api_stop_accepting();
	while (running != NULL) {
		struct api_request *ar = running;
		ctl_call_cancel(ar->call);
		/* the connection still waits: tell it, once */
		struct http_reply *r = ar->reply;
		request_unlink_free(ar);
		send_error(r, 503, "parleyd is stopping");
	}
	api_cfg = NULL;
	api_tokens_clear();
}
