/*
 * The HTTP admin API's bearer tokens and parleyctl's commands for them
 * (api-token-create, api-token-list, api-token-revoke), and api-openapi,
 * which describes the API from the command table.  Loop thread (in parleyd,
 * or in parleyctl when parleyd is stopped).
 *
 * The tokens live in one file (http_api.tokens_file, "api-tokens" beside
 * the configuration): a line per token, "NAME SCOPE SHA256-HEX CREATED".
 * A file rather than the storage: tokens are server-wide while every
 * store belongs to hosts, the API must keep working when a host's database
 * is down, and the file works the same whether parleyd runs or not.  Only
 * the SHA-256 of a token is kept (a token is 32 random bytes, so a fast
 * hash is enough); the token itself is printed once, by api-token-create.
 *
 * Invariants: every command re-reads the file before it changes it and
 * replaces it in one rename (mode 0600), so what parleyd checks is what
 * the file holds after each command; a token is never logged; checking
 * compares with every stored hash (CRYPTO_memcmp) before answering.
 */
#include "ctl-private.h"
#include "http-api.h"
#include "server/server.h"
#include "lib/log.h"

#include <errno.h>
#include <jansson.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TOKEN_BYTES 32
#define TOKEN_PREFIX "parley_"
#define NAME_MAX_LEN 64

struct api_token {
	char *name;
	enum ctl_scope scope;
	unsigned char hash[32];
	long long created;
};

static struct api_token *tokens;
static size_t ntokens;

static void tokens_free(struct api_token **list, size_t *n)
{
	for (size_t i = 0; i < *n; i++)
		free((*list)[i].name);
	free(*list);
	*list = NULL;
	*n = 0;
}

void api_tokens_clear(void)
{
	tokens_free(&tokens, &ntokens);
}

static void sha256(const char *s, unsigned char out[32])
{
	unsigned int len = 32;
	if (EVP_Digest(s, strlen(s), out, &len, EVP_sha256(), NULL) != 1)
		log_fatal("SHA-256 failed");
}

static bool name_valid(const char *name)
{
	size_t len = strlen(name);
	if (len == 0 || len > NAME_MAX_LEN)
		return false;
	for (const char *p = name; *p != '\0'; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      *p == '-' || *p == '_' || *p == '.'))
			return false;
	return true;
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Read path into a new list; a missing file is an empty one. */
static int tokens_read(const char *path, struct api_token **list_r, size_t *n_r, char **error_r)
{
	*list_r = NULL;
	*n_r = 0;
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		if (errno == ENOENT)
			return 0;
		*error_r = xasprintf("API tokens file %s: %s", path, strerror(errno));
		return -1;
	}
	char line[512];
	unsigned lineno = 0;
	while (fgets(line, sizeof(line), f) != NULL) {
		lineno++;
		line[strcspn(line, "\r\n")] = '\0';
		if (line[0] == '#' || line[0] == '\0')
			continue;
		char name[NAME_MAX_LEN + 2], scope[16], hex[80];
		long long created;
		int sc = -1;
		bool ok = sscanf(line, "%65s %15s %79s %lld", name, scope, hex, &created) == 4 &&
		          name_valid(name) && (sc = ctl_scope_parse(scope)) >= 0 && strlen(hex) == 64;
		struct api_token t = { 0 };
		for (size_t i = 0; ok && i < 32; i++) {
			int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
			ok = hi >= 0 && lo >= 0;
			t.hash[i] = (unsigned char)(hi << 4 | lo);
		}
		if (!ok) {
			*error_r = xasprintf("API tokens file %s:%u: expected NAME SCOPE SHA256-HEX CREATED "
			                     "(parleyctl api-token-create writes it)",
			                     path, lineno);
			fclose(f);
			tokens_free(list_r, n_r);
			return -1;
		}
		t.name = xstrdup(name);
		t.scope = (enum ctl_scope)sc;
		t.created = created;
		*list_r = xrealloc(*list_r, (*n_r + 1) * sizeof(**list_r));
		(*list_r)[(*n_r)++] = t;
	}
	fclose(f);
	return 0;
}

/* Replace path with list, atomically, readable by its owner only. */
static int tokens_write(const char *path, const struct api_token *list, size_t n, char **error_r)
{
	char *tmp = xasprintf("%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (f == NULL) {
		*error_r = xasprintf("cannot write %s: %s", tmp, strerror(errno));
		if (fd >= 0)
			close(fd);
		free(tmp);
		return -1;
	}
	fprintf(f, "# Parley HTTP API tokens: NAME SCOPE SHA256-HEX CREATED (unix time).\n"
	           "# Managed by parleyctl api-token-create / api-token-revoke.\n");
	for (size_t i = 0; i < n; i++) {
		fprintf(f, "%s %s ", list[i].name, ctl_scope_name(list[i].scope));
		for (size_t j = 0; j < 32; j++)
			fprintf(f, "%02x", list[i].hash[j]);
		fprintf(f, " %lld\n", list[i].created);
	}
	bool ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
	ok = fclose(f) == 0 && ok;
	if (!ok || rename(tmp, path) < 0) {
		*error_r = xasprintf("cannot write %s: %s", path, strerror(errno));
		unlink(tmp);
		free(tmp);
		return -1;
	}
	free(tmp);
	return 0;
}

int api_tokens_load(const char *path, char **error_r)
{
	struct api_token *list;
	size_t n;
	if (tokens_read(path, &list, &n, error_r) < 0)
		return -1;
	api_tokens_clear();
	tokens = list;
	ntokens = n;
	return 0;
}

bool api_token_check(const char *token, enum ctl_scope *scope_r, const char **name_r)
{
	unsigned char h[32];
	sha256(token, h);
	const struct api_token *found = NULL;
	for (size_t i = 0; i < ntokens; i++) {
		/* every entry is compared: the time says nothing about which matched */
		bool eq = CRYPTO_memcmp(h, tokens[i].hash, sizeof(h)) == 0;
		if (eq && found == NULL)
			found = &tokens[i];
	}
	explicit_bzero(h, sizeof(h));
	if (found == NULL)
		return false;
	*scope_r = found->scope;
	*name_r = found->name;
	return true;
}

/* ---- the commands ------------------------------------------------------------------ */

/* After a failed write: what parleyd checks goes back to what the file holds. */
static void tokens_reread(const char *path)
{
	char *err = NULL;
	if (api_tokens_load(path, &err) < 0) {
		log_warning("http api: %s", err);
		free(err);
	}
}

static const char *tokens_path(void)
{
	return server_config()->http_api.tokens_file;
}

void cmd_api_token_create(struct ctl_call *call)
{
	const char *name = call->argv[1];
	int sc = ctl_scope_parse(call->argv[2]);
	if (!name_valid(name)) {
		ctl_call_finish(call, CTL_USAGE,
		                "'%s' is not a valid token name (1 to %d letters, digits, '-', '_', '.')",
		                name, NAME_MAX_LEN);
		return;
	}
	if (sc < 0) {
		ctl_call_finish(call, CTL_USAGE, "unknown scope '%s' (read-only, users, hosts or all)",
		                call->argv[2]);
		return;
	}
	char *err = NULL;
	if (api_tokens_load(tokens_path(), &err) < 0) {
		ctl_call_finish(call, CTL_FAILED, "%s", err);
		free(err);
		return;
	}
	for (size_t i = 0; i < ntokens; i++) {
		if (strcmp(tokens[i].name, name) == 0) {
			ctl_call_finish(call, CTL_FAILED,
			                "a token named %s exists (api-token-revoke it first)", name);
			return;
		}
	}
	unsigned char rnd[TOKEN_BYTES];
	random_bytes(rnd, sizeof(rnd));
	char token[sizeof(TOKEN_PREFIX) + 2 * TOKEN_BYTES];
	strcpy(token, TOKEN_PREFIX);
	for (size_t i = 0; i < TOKEN_BYTES; i++)
		snprintf(token + strlen(TOKEN_PREFIX) + 2 * i, 3, "%02x", rnd[i]);
	explicit_bzero(rnd, sizeof(rnd));
	struct api_token t = { .name = xstrdup(name), .scope = (enum ctl_scope)sc, .created = time(NULL) };
	sha256(token, t.hash);
	tokens = xrealloc(tokens, (ntokens + 1) * sizeof(*tokens));
	tokens[ntokens++] = t;
	if (tokens_write(tokens_path(), tokens, ntokens, &err) < 0) {
		tokens_reread(tokens_path());
		ctl_call_finish(call, CTL_FAILED, "%s", err);
		free(err);
		explicit_bzero(token, sizeof(token));
		return;
	}
	log_notice("http api: token %s created with scope %s", name, ctl_scope_name(t.scope));
	buf_printf(&call->body, "%s\n", token);
	explicit_bzero(token, sizeof(token));
	ctl_call_finish(call, CTL_OK, NULL);
}

void cmd_api_token_list(struct ctl_call *call)
{
	char *err = NULL;
	if (api_tokens_load(tokens_path(), &err) < 0) {
		ctl_call_finish(call, CTL_FAILED, "%s", err);
		free(err);
		return;
	}
	struct buf *b = &call->body;
	if (call->json)
		buf_append_str(b, "[");
	for (size_t i = 0; i < ntokens; i++) {
		char when[32];
		time_t t = (time_t)tokens[i].created;
		struct tm tm;
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
		if (call->json) {
			buf_append_str(b, i > 0 ? ", {\"name\": " : "{\"name\": ");
			ctl_json_str(b, tokens[i].name);
			buf_printf(b, ", \"scope\": \"%s\", \"created\": \"%s\"}",
			           ctl_scope_name(tokens[i].scope), when);
		} else {
			buf_printf(b, "%s %s %s\n", tokens[i].name, ctl_scope_name(tokens[i].scope), when);
		}
	}
	if (call->json)
		buf_append_str(b, "]\n");
	ctl_call_finish(call, CTL_OK, NULL);
}

void cmd_api_token_revoke(struct ctl_call *call)
{
	const char *name = call->argv[1];
	char *err = NULL;
	if (api_tokens_load(tokens_path(), &err) < 0) {
		ctl_call_finish(call, CTL_FAILED, "%s", err);
		free(err);
		return;
	}
	size_t i = 0;
	while (i < ntokens && strcmp(tokens[i].name, name) != 0)
		i++;
	if (i == ntokens) {
		ctl_call_finish(call, CTL_FAILED, "no token named %s", name);
		return;
	}
	free(tokens[i].name);
	memmove(&tokens[i], &tokens[i + 1], (ntokens - i - 1) * sizeof(*tokens));
	ntokens--;
	if (tokens_write(tokens_path(), tokens, ntokens, &err) < 0) {
		tokens_reread(tokens_path());
		ctl_call_finish(call, CTL_FAILED, "%s", err);
		free(err);
		return;
	}
	log_notice("http api: token %s revoked", name);
	buf_printf(&call->body, "revoked %s\n", name);
	ctl_call_finish(call, CTL_OK, NULL);
}

/* ---- api-openapi -------------------------------------------------------------------- */

static json_t *answer_ref(const char *description)
{
	return json_pack("{s:s, s:{s:{s:{s:s}}}}", "description", description, "content", "application/json",
	                 "schema", "$ref", "#/components/schemas/Answer");
}

static json_t *openapi_document(void)
{
	json_t *doc = json_pack(
	        "{s:s, s:{s:s, s:s, s:s}, s:[{s:s}], s:[{s:[]}]}", "openapi", "3.0.3", "info", "title",
	        "Parley HTTP admin API", "version", "1", "description",
	        "parleyctl's commands over HTTP, made from its command table (parleyctl api-openapi). "
	        "POST /api/COMMAND with {\"args\": [...]} runs a command as parleyctl COMMAND ARGS "
	        "would (commands whose arguments have names also take {\"args\": {\"name\": "
	        "\"value\"}}); the answer's code is parleyctl's exit code. Each command needs a token "
	        "whose scope allows it (x-parley-scope): read-only commands run with any token, "
	        "users and hosts commands with a token of that scope or all, the rest with all.",
	        "servers", "url", "/api", "security", "bearer");
	json_t *answer =
	        json_pack("{s:s, s:[s, s, s], s:{s:{s:s, s:s}, s:{s:s, s:b, s:s}, s:{s:s}}}", "type",
	                  "object", "required", "code", "message", "result", "properties", "code", "type",
	                  "integer", "description",
	                  "parleyctl's exit code: 0 done (or yes), 1 failed (or no), 2 usage, 3 parleyd not "
	                  "running, 4 temporary failure, 5 refused in this state",
	                  "message", "type", "string", "nullable", 1, "description",
	                  "why it failed; null on success", "result", "description",
	                  "the command's JSON output (commands with x-parley-json), else its text output");
	json_t *error =
	        json_pack("{s:s, s:{s:{s:s}}}", "type", "object", "properties", "error", "type", "string");
	json_t *components =
	        json_pack("{s:{s:{s:s, s:s}}, s:{s:o, s:o}}", "securitySchemes", "bearer", "type", "http",
	                  "scheme", "bearer", "schemas", "Answer", answer, "Error", error);
	json_object_set_new(doc, "components", components);

	json_t *paths = json_object();
	json_t *list = json_pack("{s:{s:s, s:s, s:{s:{s:s, s:{s:{s:{s:s, s:{s:s}}}}}, s:{s:s}, s:{s:s}}}}",
	                         "get", "operationId", "list-commands", "summary",
	                         "the commands this token may run", "responses", "200", "description",
	                         "name, args, help, scope and json of each command", "content",
	                         "application/json", "schema", "type", "array", "items", "type", "object",
	                         "401", "description", "no token or an unknown one", "403", "description",
	                         "this address may not use the API");
	json_object_set_new(paths, "/", list);
	struct ctl_command_info c;
	for (size_t i = 0; ctl_command_get(i, &c); i++) {
		if (!ctl_command_in_api(c.flags))
			continue;
		char *path = xasprintf("/%s", c.name);
		char *usage = xasprintf("%s%s%s%s", c.name, c.args[0] != '\0' ? " " : "", c.args,
		                        (c.flags & CTL_F_STDIN) ? " PASSWORD" : "");
		json_t *args =
		        json_pack("{s:s, s:{s:s}, s:i, s:i, s:s}", "type", "array", "items", "type", "string",
		                  "minItems", c.min_args, "maxItems", c.max_args, "description", usage);
		char names[16][API_ARG_NAME_MAX];
		int n = api_arg_names(&c, names, 16);
		if (n >= 0) {
			/* the same arguments by name */
			json_t *props = json_object(), *required = json_array();
			for (int k = 0; k < n; k++) {
				json_object_set_new(props, names[k], json_pack("{s:s}", "type", "string"));
				if (k < c.min_args)
					json_array_append_new(required, json_string(names[k]));
			}
			json_t *named =
			        json_pack("{s:s, s:b, s:o, s:o}", "type", "object", "additionalProperties", 0,
			                  "properties", props, "required", required);
			args = json_pack("{s:[o, o]}", "oneOf", args, named);
		}
		json_t *body = json_pack("{s:b, s:{s:{s:{s:s, s:b, s:{s:o}}}}}", "required", c.min_args > 0,
		                         "content", "application/json", "schema", "type", "object",
		                         "additionalProperties", 0, "properties", "args", args);
		json_t *responses = json_object();
		json_object_set_new(responses, "200", answer_ref("done (code 0)"));
		json_object_set_new(responses, "400", answer_ref("bad request or usage (code 2)"));
		json_object_set_new(responses, "401",
		                    json_pack("{s:s}", "description", "no token or an unknown one"));
		json_object_set_new(responses, "403",
		                    json_pack("{s:s}", "description", "the token's scope does not allow it"));
		json_object_set_new(responses, "409", answer_ref("refused in this state (code 5)"));
		json_object_set_new(responses, "422", answer_ref("failed, or the answer is no (code 1)"));
		json_object_set_new(responses, "503", answer_ref("a backend is unavailable (code 3 or 4)"));
		json_t *op =
		        json_pack("{s:s, s:s, s:s, s:o, s:o, s:s, s:b}", "operationId", c.name, "summary",
		                  c.help, "description", usage, "requestBody", body, "responses", responses,
		                  "x-parley-scope", ctl_scope_name(ctl_flags_scope(c.flags)), "x-parley-json",
		                  (c.flags & CTL_F_JSON) != 0);
		json_object_set_new(paths, path, json_pack("{s:o}", "post", op));
		free(path);
		free(usage);
	}
	json_object_set_new(doc, "paths", paths);
	return doc;
}

void cmd_api_openapi(struct ctl_call *call)
{
	json_t *doc = openapi_document();
	char *text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(doc);
	if (text == NULL) {
		ctl_call_finish(call, CTL_FAILED, "cannot write the OpenAPI document");
		return;
	}
	buf_printf(&call->body, "%s\n", text);
	free(text);
	ctl_call_finish(call, CTL_OK, NULL);
}
