/*
 * parleyctl's account commands: register, unregister, passwd,
 * check-password, user-exists, registered-users (whole or by pages),
 * registered-users-count, fast-list, fast-revoke and
 * fast-purge (FAST tokens, XEP-0484), and auth-test (a password
 * through the host's auth chain, backend by backend).  They work through
 * the host's auth chain and store, inside parleyd or inside parleyctl when
 * parleyd is stopped (auth-test only inside parleyd).  Loop thread.
 *
 * register and unregister run the register_user / remove_user hooks, as a
 * registration from a client does, and unregister closes the user's
 * sessions; once the account is gone its contacts are told
 * (presence_wait_end).  A password given on the command line is wiped
 * from the call once handed to the auth chain.
 */
#include "ctl-private.h"
#include "modules/builtin.h"
#include "server/host.h"
#include "server/hooks.h"
#include "server/sm.h"
#include "lib/log.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void register_done(enum auth_result r, void *ctx)
{
	struct ctl_call *call = ctx;
	call->req = NULL;
	if (r == AUTH_OK) {
		struct hook_user hu = { .user = call->user };
		hook_run(call->host, HOOK_REGISTER_USER, &hu);
		log_notice("ctl: user %s@%s registered", call->user, call->host->name);
		buf_printf(&call->body, "user %s@%s registered\n", call->user, call->host->name);
		ctl_call_finish(call, CTL_OK, NULL);
	} else if (r == AUTH_EXISTS) {
		ctl_call_finish(call, CTL_FAILED, "user %s@%s exists", call->user, call->host->name);
	} else {
		ctl_call_finish(call, ctl_auth_code(r), "cannot register %s@%s: %s", call->user,
		                call->host->name, auth_result_str(r));
	}
}

void cmd_register(struct ctl_call *call)
{
	if (!ctl_call_user_host(call, 1, 2))
		return;
	if (call->argv[3][0] == '\0') {
		ctl_call_finish(call, CTL_FAILED, "the password is empty");
		return;
	}
	call->req = auth_create_user(call->host->auth, call->user, call->argv[3], register_done, call);
}

static void unregister_done(enum auth_result r, void *ctx)
{
	struct ctl_call *call = ctx;
	call->req = NULL;
	struct presence_wait *w = call->work; /* NULL: mod_presence does not run */
	call->work = NULL;
	call->work_free = NULL;
	if (r == AUTH_OK) {
		struct hook_user hu = { .user = call->user };
		hook_run(call->host, HOOK_REMOVE_USER, &hu);
		/* a login in the meantime (the account still existed) */
		sm_kick_user(call->host, call->user, STE_NOT_AUTHORIZED, "the account was removed");
		/* and the contacts are told */
		presence_wait_end(w, true);
		log_notice("ctl: user %s@%s removed", call->user, call->host->name);
		buf_printf(&call->body, "user %s@%s removed\n", call->user, call->host->name);
		ctl_call_finish(call, CTL_OK, NULL);
	} else {
		presence_wait_end(w, false);
		if (r == AUTH_NO_USER)
			ctl_call_finish(call, CTL_FAILED, "no such user %s@%s", call->user, call->host->name);
		else
			ctl_call_finish(call, ctl_auth_code(r), "cannot remove %s@%s: %s", call->user,
			                call->host->name, auth_result_str(r));
	}
}

/* The unavailable presence of the closed sessions has been broadcast (the
 * wait, still in call->work, is ended with the answer). */
static void unregister_settled(void *ctx)
{
	struct ctl_call *call = ctx;
	call->req = auth_remove_user(call->host->auth, call->user, unregister_done, call);
}

void cmd_unregister(struct ctl_call *call)
{
	if (!ctl_call_user_host(call, 1, 2))
		return;
	/* The sessions end first, and the account goes once their
	 * unavailable presence has read the roster and the contacts to tell
	 * are known (presence_wait_user). */
	sm_kick_user(call->host, call->user, STE_NOT_AUTHORIZED, "the account was removed");
	struct presence_wait *w = presence_wait_user(call->host, call->user, unregister_settled, call);
	if (w == NULL) {
		unregister_settled(call);
		return;
	}
	call->work = w;
	call->work_free = presence_wait_cancel;
}

static void passwd_done(enum auth_result r, void *ctx)
{
	struct ctl_call *call = ctx;
	call->req = NULL;
	if (r == AUTH_OK) {
		log_notice("ctl: password of %s@%s changed", call->user, call->host->name);
		buf_printf(&call->body, "password of %s@%s changed\n", call->user, call->host->name);
		ctl_call_finish(call, CTL_OK, NULL);
	} else if (r == AUTH_NO_USER) {
		ctl_call_finish(call, CTL_FAILED, "no such user %s@%s", call->user, call->host->name);
	} else {
		ctl_call_finish(call, ctl_auth_code(r), "cannot change the password of %s@%s: %s", call->user,
		                call->host->name, auth_result_str(r));
	}
}

void cmd_passwd(struct ctl_call *call)
{
	if (!ctl_call_user_host(call, 1, 2))
		return;
	if (call->argv[3][0] == '\0') {
		ctl_call_finish(call, CTL_FAILED, "the password is empty");
		return;
	}
	call->req = auth_set_password(call->host->auth, call->user, call->argv[3], passwd_done, call);
}

static void check_password_done(enum auth_result r, void *ctx)
{
	struct ctl_call *call = ctx;
	call->req = NULL;
	if (r == AUTH_OK) {
		buf_append_str(&call->body, "password ok\n");
		ctl_call_finish(call, CTL_OK, NULL);
	} else if (r == AUTH_BAD_PASSWORD) {
		ctl_call_finish(call, CTL_FAILED, "wrong password for %s@%s", call->user, call->host->name);
	} else if (r == AUTH_NO_USER) {
		ctl_call_finish(call, CTL_FAILED, "no such user %s@%s", call->user, call->host->name);
	} else {
		ctl_call_finish(call, ctl_auth_code(r), "cannot check the password of %s@%s: %s", call->user,
		                call->host->name, auth_result_str(r));
	}
}

void cmd_check_password(struct ctl_call *call)
{
	if (!ctl_call_user_host(call, 1, 2))
		return;
	call->req =
	        auth_check_password(call->host->auth, call->user, call->argv[3], check_password_done, call);
	explicit_bzero(call->argv[3], strlen(call->argv[3]));
}

static void user_exists_done(enum auth_result r, void *ctx)
{
	struct ctl_call *call = ctx;
	call->req = NULL;
	if (r == AUTH_OK) {
		buf_printf(&call->body, "user %s@%s exists\n", call->user, call->host->name);
		ctl_call_finish(call, CTL_OK, NULL);
	} else if (r == AUTH_NO_USER) {
		ctl_call_finish(call, CTL_FAILED, "no such user %s@%s", call->user, call->host->name);
	} else {
		ctl_call_finish(call, ctl_auth_code(r), "cannot tell whether %s@%s exists: %s", call->user,
		                call->host->name, auth_result_str(r));
	}
}

void cmd_user_exists(struct ctl_call *call)
{
	if (!ctl_call_user_host(call, 1, 2))
		return;
	call->req = auth_user_exists(call->host->auth, call->user, user_exists_done, call);
}

/* registered-users --limit N: the page size (call->work) */
struct users_page {
	unsigned limit;
};

static void registered_users_done(enum storage_result r, const struct strlist *names, void *ctx)
{
	struct ctl_call *call = ctx;
	call->sreq = NULL;
	if (r != STORAGE_OK) {
		ctl_call_finish(call, ctl_storage_code(r), "cannot list the accounts of %s: %s",
		                call->host->name, storage_result_str(r));
		return;
	}
	unsigned limit = call->work != NULL ? ((struct users_page *)call->work)->limit : 0;
	struct strlist sorted = { 0 };
	sorted.items = xcalloc(names->count + 1, sizeof(*sorted.items));
	for (size_t i = 0; i < names->count; i++)
		sorted.items[sorted.count++] = xstrdup(names->items[i]);
	/* a page keeps the store's order: its last name starts the next one */
	const char *next = limit > 0 && names->count == limit ? names->items[names->count - 1] : NULL;
	if (limit == 0)
		qsort(sorted.items, sorted.count, sizeof(*sorted.items), cmp_str);
	if (call->json) {
		buf_append_str(&call->body, "{\"host\": ");
		ctl_json_str(&call->body, call->host->name);
		buf_printf(&call->body, ", \"count\": %zu, \"users\": ", sorted.count);
		ctl_json_strlist(&call->body, &sorted);
		if (limit > 0) {
			buf_append_str(&call->body, ", \"next\": ");
			if (next != NULL)
				ctl_json_str(&call->body, next);
			else
				buf_append_str(&call->body, "null");
		}
		buf_append_str(&call->body, "}\n");
	} else {
		for (size_t i = 0; i < sorted.count; i++)
			buf_printf(&call->body, "%s\n", sorted.items[i]);
	}
	strlist_free(&sorted);
	ctl_call_finish(call, CTL_OK, NULL);
}

void cmd_registered_users(struct ctl_call *call)
{
	const char *after = NULL, *match = NULL;
	unsigned long limit = 0;
	for (int i = 2; i < call->argc; i += 2) {
		const char *opt = call->argv[i], *v = i + 1 < call->argc ? call->argv[i + 1] : NULL;
		char *end = NULL;
		if (v != NULL && strcmp(opt, "--after") == 0) {
			after = v;
		} else if (v != NULL && strcmp(opt, "--match") == 0) {
			match = v;
		} else if (v != NULL && strcmp(opt, "--limit") == 0) {
			limit = strtoul(v, &end, 10);
			if (*v < '0' || *v > '9' || *end != '\0' || limit == 0 || limit > 100000) {
				ctl_call_finish(call, CTL_USAGE,
				                "--limit wants a number from 1 to 100000, not '%s'", v);
				return;
			}
		} else {
			ctl_call_finish(
			        call, CTL_USAGE,
			        "usage: registered-users HOST [--match TEXT] [--after NAME] [--limit N]");
			return;
		}
	}
	if ((after != NULL || match != NULL) && limit == 0) {
		ctl_call_finish(call, CTL_USAGE, "--after and --match go with --limit (the page size)");
		return;
	}
	call->host = ctl_call_host(call, 1);
	if (call->host == NULL)
		return;
	if (limit == 0) {
		call->sreq = storage_account_list(call->host->storage, call->host->name,
		                                  registered_users_done, call);
		return;
	}
	struct users_page *pg = xcalloc(1, sizeof(*pg));
	pg->limit = (unsigned)limit;
	call->work = pg;
	call->work_free = free;
	call->sreq = storage_account_list_page(call->host->storage, call->host->name, after, match,
	                                       (unsigned)limit, registered_users_done, call);
}

static void registered_users_count_done(enum storage_result r, uint64_t count, void *ctx)
{
	struct ctl_call *call = ctx;
	call->sreq = NULL;
	if (r != STORAGE_OK) {
		ctl_call_finish(call, ctl_storage_code(r), "cannot count the accounts of %s: %s",
		                call->host->name, storage_result_str(r));
		return;
	}
	buf_printf(&call->body, "%llu\n", (unsigned long long)count);
	ctl_call_finish(call, CTL_OK, NULL);
}

void cmd_registered_users_count(struct ctl_call *call)
{
	call->host = ctl_call_host(call, 1);
	if (call->host == NULL)
		return;
	call->sreq = storage_account_count(call->host->storage, call->host->name, registered_users_count_done,
	                                   call);
}

/* ---- FAST tokens (XEP-0484) ------------------------------------------------------------- */

static void fast_list_done(enum storage_result r, const struct storage_fast_token *t, size_t n, void *ctx)
{
	struct ctl_call *call = ctx;
	call->sreq = NULL;
	if (r != STORAGE_OK) {
		ctl_call_finish(call, ctl_storage_code(r), "cannot list the tokens of %s@%s: %s", call->user,
		                call->host->name, storage_result_str(r));
		return;
	}
	for (size_t i = 0; i < n; i++) {
		char created[XEP82_STAMP_LEN], expires[XEP82_STAMP_LEN];
		xep82_stamp(created, (int64_t)t[i].created);
		xep82_stamp(expires, (int64_t)t[i].expires);
		buf_printf(&call->body, "%s %s created %s expires %s%s\n", t[i].ua_id, t[i].mechanism,
		           created, expires, (time_t)t[i].expires <= time(NULL) ? " (expired)" : "");
	}
	ctl_call_finish(call, CTL_OK, NULL);
}

/* Whether call->host has storage; false when the call was finished
 * instead. */
static bool fast_has_storage(struct ctl_call *call)
{
	if (call->host->storage == NULL) {
		ctl_call_finish(call, CTL_FAILED, "host %s has no storage", call->host->name);
		return false;
	}
	return true;
}

/* argv[1], USER@HOST, into call->host and call->user, on a host with
 * storage; false when the call was finished instead. */
static bool fast_account(struct ctl_call *call)
{
	return ctl_call_user_at_host(call, 1) && fast_has_storage(call);
}

void cmd_fast_list(struct ctl_call *call)
{
	if (!fast_account(call))
		return;
	call->sreq = storage_fast_token_list(call->host->storage, call->host->name, call->user,
	                                     fast_list_done, call);
}

static void fast_revoke_done(enum storage_result r, void *ctx)
{
	struct ctl_call *call = ctx;
	call->sreq = NULL;
	const char *ua = call->argc > 2 ? call->argv[2] : NULL;
	if (r == STORAGE_OK) {
		log_notice("ctl: FAST tokens of %s@%s%s%s revoked", call->user, call->host->name,
		           ua != NULL ? " for " : "", ua != NULL ? ua : "");
		buf_printf(&call->body, "tokens of %s@%s%s%s revoked\n", call->user, call->host->name,
		           ua != NULL ? " for " : "", ua != NULL ? ua : "");
		ctl_call_finish(call, CTL_OK, NULL);
	} else if (r == STORAGE_NOT_FOUND) {
		ctl_call_finish(call, CTL_FAILED, "no tokens of %s@%s%s%s", call->user, call->host->name,
		                ua != NULL ? " for " : "", ua != NULL ? ua : "");
	} else {
		ctl_call_finish(call, ctl_storage_code(r), "cannot revoke the tokens of %s@%s: %s",
		                call->user, call->host->name, storage_result_str(r));
	}
}

void cmd_fast_revoke(struct ctl_call *call)
{
	if (!fast_account(call))
		return;
	call->sreq = storage_fast_token_delete(call->host->storage, call->host->name, call->user,
	                                       call->argc > 2 ? call->argv[2] : NULL, NULL, fast_revoke_done,
	                                       call);
}

static void fast_purge_done(enum storage_result r, uint64_t n, void *ctx)
{
	struct ctl_call *call = ctx;
	call->sreq = NULL;
	if (r != STORAGE_OK) {
		ctl_call_finish(call, ctl_storage_code(r), "cannot purge the tokens of %s: %s",
		                call->host->name, storage_result_str(r));
		return;
	}
	buf_printf(&call->body, "%llu expired tokens deleted\n", (unsigned long long)n);
	ctl_call_finish(call, CTL_OK, NULL);
}

void cmd_fast_purge(struct ctl_call *call)
{
	call->host = ctl_call_host(call, 1);
	if (call->host == NULL || !fast_has_storage(call))
		return;
	call->sreq = storage_fast_token_expire(call->host->storage, call->host->name, (int64_t)time(NULL),
	                                       fast_purge_done, call);
}

/* ---- auth-test ---------------------------------------------------------------------- */

/* What auth-test keeps while it asks the backends one by one. */
struct auth_test {
	char *secret;   /* the password (wiped when freed) */
	size_t probe_i; /* the backend being asked */
	enum auth_result probe_res;
	char *probe_detail;
};

static struct auth_test *auth_test_of(struct ctl_call *call)
{
	return call->work;
}

static void auth_test_free(void *work)
{
	struct auth_test *t = work;
	explicit_bzero(t->secret, strlen(t->secret));
	free(t->secret);
	free(t->probe_detail);
	free(t);
}

static void auth_test_next(struct ctl_call *call);

static void auth_test_chain_done(enum auth_result r, void *ctx)
{
	struct ctl_call *call = ctx;
	call->req = NULL;
	const char *verdict = r == AUTH_OK ? "login accepted"
	                      : r == AUTH_TEMPFAIL
	                              ? "temporary failure (<temporary-auth-failure/>; not counted "
	                                "as a failed login)"
	                              : "login refused (<not-authorized/>)";
	buf_printf(&call->body, "chain of %s: %s: %s\n", call->host->name, auth_result_str(r), verdict);
	if (r == AUTH_OK)
		ctl_call_finish(call, CTL_OK, NULL);
	else if (r == AUTH_TEMPFAIL)
		ctl_call_finish(call, CTL_TEMPFAIL, "%s@%s: the backends could not answer", call->user,
		                call->host->name);
	else
		ctl_call_finish(call, CTL_FAILED, "%s@%s: login refused", call->user, call->host->name);
}

static void auth_test_line(struct ctl_call *call, const char *what)
{
	struct auth_test *t = auth_test_of(call);
	const char *name = auth_backend_name(call->host->auth, t->probe_i);
	buf_printf(&call->body, "backend %zu %s: %s", t->probe_i + 1, name, what);
	if (t->probe_detail != NULL)
		buf_printf(&call->body, " (%s)", t->probe_detail);
	buf_append_str(&call->body, "\n");
}

static void auth_test_exists_done(enum auth_result r, const char *detail, void *ctx)
{
	struct ctl_call *call = ctx;
	call->req = NULL;
	if (r == AUTH_OK)
		auth_test_line(call, "bad password (the user exists)");
	else if (r == AUTH_NO_USER)
		auth_test_line(call, "unknown user");
	else if (r == AUTH_TEMPFAIL)
		auth_test_line(call, "password rejected; whether the user exists is unknown (unreachable)");
	else
		auth_test_line(call, "password rejected (bad password or unknown user: this backend cannot "
		                     "tell which)");
	auth_test_of(call)->probe_i++;
	auth_test_next(call);
}

static void auth_test_check_done(enum auth_result r, const char *detail, void *ctx)
{
	struct ctl_call *call = ctx;
	struct auth_test *t = auth_test_of(call);
	call->req = NULL;
	free(t->probe_detail);
	t->probe_detail = detail != NULL ? xstrdup(detail) : NULL;
	t->probe_res = r;
	switch (r) {
	case AUTH_OK: auth_test_line(call, "ok (password accepted)"); break;
	case AUTH_BAD_PASSWORD:
		call->req = auth_probe(call->host->auth, t->probe_i, call->user, NULL, auth_test_exists_done,
		                       call);
		return;
	case AUTH_NO_USER: auth_test_line(call, "unknown user"); break;
	case AUTH_TEMPFAIL: auth_test_line(call, "unreachable or too slow: temporary failure"); break;
	case AUTH_NOT_SUPPORTED: auth_test_line(call, "does not check passwords"); break;
	default: auth_test_line(call, auth_result_str(r)); break;
	}
	t->probe_i++;
	auth_test_next(call);
}

static void auth_test_next(struct ctl_call *call)
{
	struct auth_test *t = auth_test_of(call);
	xfree(&t->probe_detail);
	if (t->probe_i < auth_backend_count(call->host->auth)) {
		call->req = auth_probe(call->host->auth, t->probe_i, call->user, t->secret,
		                       auth_test_check_done, call);
		return;
	}
	call->req = auth_check_password(call->host->auth, call->user, t->secret, auth_test_chain_done, call);
}

void cmd_auth_test(struct ctl_call *call)
{
	if (!ctl_call_user_at_host(call, 1))
		return;
	struct auth_test *t = xcalloc(1, sizeof(*t));
	t->secret = xstrdup(call->argv[2]);
	call->work = t;
	call->work_free = auth_test_free;
	explicit_bzero(call->argv[2], strlen(call->argv[2]));
	buf_printf(&call->body, "auth-test %s@%s: methods", call->user, call->host->name);
	for (size_t i = 0; i < auth_backend_count(call->host->auth); i++)
		buf_printf(&call->body, " %s", auth_backend_name(call->host->auth, i));
	buf_append_str(&call->body, "\n");
	auth_test_next(call);
}
