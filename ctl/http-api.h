/*
 * The HTTP admin API: parleyctl's command table over HTTP with JSON
 * (http-api.c), and the bearer tokens that open it (cmd-api.c).  Loop
 * thread.
 *
 * POST /api/COMMAND with {"args": ["arg1", ...]} (or no body) runs the
 * command through ctl_run, as the control socket does, and answers
 * {"code": N, "message": "..." or null, "result": ...}: result is the
 * command's JSON output for commands with --json, its text otherwise.
 * GET /api/ lists the commands the token may run.  Every request needs
 * "Authorization: Bearer TOKEN"; a token has a scope (read-only, users,
 * hosts, all) and a command needs the scope its table entry marks.
 */
#ifndef PARLEY_HTTP_API_H
#define PARLEY_HTTP_API_H

#include <ev.h>
#include "ctl.h"
#include "server/http.h"

/* Read the tokens file and mount /api/ when cfg enables the API.  -1 with
 * a malloc'd *error_r (an unreadable tokens file, the prefix taken). */
int http_api_start(struct ev_loop *loop, const struct parley_config *cfg, char **error_r);
/* Unmount /api/ (the start of a stop); commands running finish. */
void http_api_stop_accepting(void);
/* Unmount, and answer 503 to the requests whose commands still run
 * (cancelled); at exit. */
void http_api_stop(void);
/* The handler mounted at /api/ (exposed for the unit tests). */
void http_api_handler(void *ctx, const struct http_request *rq, struct http_reply *r);

/* The names of a command's arguments, for {"args": {"name": "value"}}:
 * its usage words in lower case ("USER HOST [REASON]": user, host,
 * reason), and "password" last for a command that reads one from stdin in
 * parleyctl.  At most max names into names_r (each < API_ARG_NAME_MAX);
 * -1 when the usage has words that are not names (USER@HOST, a|b,
 * --options): such commands take a list only. */
#define API_ARG_NAME_MAX 32
int api_arg_names(const struct ctl_command_info *c, char (*names_r)[API_ARG_NAME_MAX], size_t max);

/* ---- tokens (cmd-api.c) ---- */

/* Read path (a missing file is an empty list) into the tokens parleyd
 * checks.  -1 with a malloc'd *error_r naming the file and line. */
int api_tokens_load(const char *path, char **error_r);
/* Forget every token (at exit). */
void api_tokens_clear(void);
/* Whether token is one of them: its scope and name (valid until the
 * tokens change).  Compares the token's SHA-256 with every stored hash in
 * constant time. */
bool api_token_check(const char *token, enum ctl_scope *scope_r, const char **name_r);

#endif
