/*
 * Administrative commands and the control socket.  Loop thread.
 *
 * The same command code serves parleyd (requests on the control socket) and
 * parleyctl's offline mode (which starts the hosts without listeners and
 * runs the command in-process), so register/unregister/passwd behave the
 * same either way.  A call's done callback always runs from the loop, never
 * inside ctl_run.  A control connection handles one request at a time; its
 * input waits while a command is running.
 *
 * Commands that wait for storage or auth keep their requests in the call
 * and cancel them when the call is cancelled (the control connection went
 * away).  backup copies the SQLite file on a one-thread worker group with
 * SQLite's online backup API; the loop only waits for the job's answer.
 */
#include "ctl.h"
#ifdef HAVE_BACKEND_LDAP
#include "auth/ldap-client.h"
#endif
#include "server/server.h"
#include "server/host.h"
#include "server/sm.h"
#include "server/c2s.h"
#include "server/stream.h"
#include "server/router.h"
#include "lib/jid.h"
#include "lib/log.h"
#include "lib/worker.h"
#include "server/module.h"
#include "storage/sqlite-copy.h"
#include "modules/shared_roster.h"
#include "modules/vcard.h"
#include "ctl-xep0227.h"
#include "ctl-db.h"

#include <errno.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <grp.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define CALL_MAX_SREQS 64

struct ctl_call {
	struct ev_loop *loop;
	int argc;
	char **argv;
	bool json;                    /* --json: listing commands answer in JSON */
	ctl_done_fn *done;
	void *ctx;
	struct host *host;
	char *user;
	struct auth_req *req;
	struct storage_req *sreqs[CALL_MAX_SREQS];   /* storage requests in flight */
	unsigned npending;
	uint64_t counts[CALL_MAX_SREQS];
	struct call_slot { struct ctl_call *call; unsigned idx; } slots[CALL_MAX_SREQS];
	struct worker_job *job;
	struct copy_job *copy;
	struct srg_admin *srg;        /* an srg-* command in flight */
	struct ctl_db_job *db;        /* a db command in flight */
	char *secret;            /* auth-test: the password (wiped when freed) */
	size_t probe_i;          /* auth-test: the backend being asked */
	enum auth_result probe_res;
	char *probe_detail;
#ifdef HAVE_BACKEND_LDAP
	struct ldap_client_req *lreq;     /* ldap-test: the login search in flight */
#endif
	struct vcard_ldap_probe *vprobe;  /* ldap-test: the vCard lookup in flight */
	int ltest_code;                   /* ldap-test: the exit code so far */
	char *ltest_message;              /* ldap-test: why it is not 0 (the first reason) */
	int code;
	char *message;
	struct buf body;
	ev_timer defer;
};

struct ctl_command {
	const char *name;
	const char *args;
	int min_args, max_args;       /* arguments after the name, on the wire */
	unsigned flags;               /* CTL_F_* of ctl.h */
	void (*run)(struct ctl_call *call);
	const char *help;
};

static struct worker_group *copy_group;

static void call_free(struct ctl_call *call)
{
	ev_timer_stop(call->loop, &call->defer);
	ctl_free_argv(call->argv, call->argc);
	free(call->user);
	if (call->secret != NULL) {
		explicit_bzero(call->secret, strlen(call->secret));
		free(call->secret);
	}
	free(call->probe_detail);
	free(call->ltest_message);
	free(call->message);
	buf_free(&call->body);
	free(call);
}

static void call_defer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct ctl_call *call = w->data;
	call->done(call->ctx, call->code, call->message, call->body.data != NULL ? call->body.data : "");
	call_free(call);
}

/* Finish: done runs from the loop. */
static void call_finish(struct ctl_call *call, int code, const char *fmt, ...) ATTR_PRINTF(3, 4);
static void call_finish(struct ctl_call *call, int code, const char *fmt, ...)
{
	call->code = code;
	if (fmt != NULL) {
		va_list ap;
		va_start(ap, fmt);
		call->message = xvasprintf(fmt, ap);
		va_end(ap);
	}
	call->req = NULL;
	ev_timer_set(&call->defer, 0, 0);
	ev_timer_start(call->loop, &call->defer);
}

/* The served host named argv[idx], or NULL (the call is then finished). */
static struct host *call_host(struct ctl_call *call, int idx)
{
	char *domain = jid_nameprep(call->argv[idx]);
	struct host *h = domain != NULL ? host_find(domain) : NULL;
	free(domain);
	if (h == NULL)
		call_finish(call, CTL_FAILED, "host %s is not served here", call->argv[idx]);
	return h;
}

/* Resolve argv[hidx] as a served host and argv[uidx] as a local part. */
static bool call_user_host(struct ctl_call *call, int uidx, int hidx)
{
	call->host = call_host(call, hidx);
	if (call->host == NULL)
		return false;
	call->user = jid_nodeprep(call->argv[uidx]);
	if (call->user == NULL || *call->user == '\0') {
		call_finish(call, CTL_FAILED, "'%s' is not a valid user name", call->argv[uidx]);
		return false;
	}
	return true;
}

static int auth_code(enum auth_result r)
{
	return r == AUTH_TEMPFAIL ? CTL_TEMPFAIL : CTL_FAILED;
}

static int storage_code(enum storage_result r)
{
	return r == STORAGE_TEMPFAIL ? CTL_TEMPFAIL : CTL_FAILED;
}

/* ---- JSON output -------------------------------------------------------------------- */

static void json_str(struct buf *b, const char *s)
{
	buf_append(b, "\"", 1);
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\') {
			char e[2] = { '\\', (char)*p };
			buf_append(b, e, 2);
		} else if (*p < 0x20) {
			buf_printf(b, "\\u%04x", *p);
		} else {
			buf_append(b, p, 1);
		}
	}
	buf_append(b, "\"", 1);
}

static void json_strlist(struct buf *b, const struct strlist *l)
{
	buf_append_str(b, "[");
	for (size_t i = 0; i < l->count; i++) {
		if (i > 0)
			buf_append_str(b, ", ");
		json_str(b, l->items[i]);
	}
	buf_append_str(b, "]");
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* ---- account commands ------------------------------------------------------------ */

static void register_done(enum auth_result r, void *ctx)
{
	struct ctl_call *call = ctx;
	call->req = NULL;
	if (r == AUTH_OK) {
		struct hook_user hu = { .user = call->user };
		hook_run(call->host, HOOK_REGISTER_USER, &hu);
		log_notice("ctl: user %s@%s registered", call->user, call->host->name);
		buf_printf(&call->body, "user %s@%s registered\n", call->user, call->host->name);
		call_finish(call, CTL_OK, NULL);
	} else if (r == AUTH_EXISTS) {
		call_finish(call, CTL_FAILED, "user %s@%s exists", call->user, call->host->name);
	} else {
		call_finish(call, auth_code(r), "cannot register %s@%s: %s", call->user, call->host->name,
		            auth_result_str(r));
	}
}

static void cmd_register(struct ctl_call *call)
{
	if (!call_user_host(call, 1, 2))
		return;
	if (call->argv[3][0] == '\0') {
		call_finish(call, CTL_FAILED, "the password is empty");
		return;
	}
	call->req = auth_create_user(call->host->auth, call->user, call->argv[3], register_done, call);
}

static void unregister_done(enum auth_result r, void *ctx)
{
	struct ctl_call *call = ctx;
	call->req = NULL;
	if (r == AUTH_OK) {
		struct hook_user hu = { .user = call->user };
		hook_run(call->host, HOOK_REMOVE_USER, &hu);
		sm_kick_user(call->host, call->user, STE_NOT_AUTHORIZED, "the account was removed");
		log_notice("ctl: user %s@%s removed", call->user, call->host->name);
		buf_printf(&call->body, "user %s@%s removed\n", call->user, call->host->name);
		call_finish(call, CTL_OK, NULL);
	} else if (r == AUTH_NO_USER) {
		call_finish(call, CTL_FAILED, "no such user %s@%s", call->user, call->host->name);
	} else {
		call_finish(call, auth_code(r), "cannot remove %s@%s: %s", call->user, call->host->name,
		            auth_result_str(r));
	}
}

static void cmd_unregister(struct ctl_call *call)
{
	if (!call_user_host(call, 1, 2))
		return;
	call->req = auth_remove_user(call->host->auth, call->user, unregister_done, call);
}

static void passwd_done(enum auth_result r, void *ctx)
{
	struct ctl_call *call = ctx;
	call->req = NULL;
	if (r == AUTH_OK) {
		log_notice("ctl: password of %s@%s changed", call->user, call->host->name);
		buf_printf(&call->body, "password of %s@%s changed\n", call->user, call->host->name);
		call_finish(call, CTL_OK, NULL);
	} else if (r == AUTH_NO_USER) {
		call_finish(call, CTL_FAILED, "no such user %s@%s", call->user, call->host->name);
	} else {
		call_finish(call, auth_code(r), "cannot change the password of %s@%s: %s", call->user,
		            call->host->name, auth_result_str(r));
	}
}

static void cmd_passwd(struct ctl_call *call)
{
	if (!call_user_host(call, 1, 2))
		return;
	if (call->argv[3][0] == '\0') {
		call_finish(call, CTL_FAILED, "the password is empty");
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
		call_finish(call, CTL_OK, NULL);
	} else if (r == AUTH_BAD_PASSWORD) {
		call_finish(call, CTL_FAILED, "wrong password for %s@%s", call->user, call->host->name);
	} else if (r == AUTH_NO_USER) {
		call_finish(call, CTL_FAILED, "no such user %s@%s", call->user, call->host->name);
	} else {
		call_finish(call, auth_code(r), "cannot check the password of %s@%s: %s", call->user,
		            call->host->name, auth_result_str(r));
	}
}

static void cmd_check_password(struct ctl_call *call)
{
	if (!call_user_host(call, 1, 2))
		return;
	call->req = auth_check_password(call->host->auth, call->user, call->argv[3], check_password_done,
	                                call);
	explicit_bzero(call->argv[3], strlen(call->argv[3]));
}

static void user_exists_done(enum auth_result r, void *ctx)
{
	struct ctl_call *call = ctx;
	call->req = NULL;
	if (r == AUTH_OK) {
		buf_printf(&call->body, "user %s@%s exists\n", call->user, call->host->name);
		call_finish(call, CTL_OK, NULL);
	} else if (r == AUTH_NO_USER) {
		call_finish(call, CTL_FAILED, "no such user %s@%s", call->user, call->host->name);
	} else {
		call_finish(call, auth_code(r), "cannot tell whether %s@%s exists: %s", call->user,
		            call->host->name, auth_result_str(r));
	}
}

static void cmd_user_exists(struct ctl_call *call)
{
	if (!call_user_host(call, 1, 2))
		return;
	call->req = auth_user_exists(call->host->auth, call->user, user_exists_done, call);
}

static void registered_users_done(enum storage_result r, const struct strlist *names, void *ctx)
{
	struct ctl_call *call = ctx;
	call->sreqs[0] = NULL;
	if (r != STORAGE_OK) {
		call_finish(call, storage_code(r), "cannot list the accounts of %s: %s", call->host->name,
		            storage_result_str(r));
		return;
	}
	struct strlist sorted = {0};
	sorted.items = xcalloc(names->count + 1, sizeof(*sorted.items));
	for (size_t i = 0; i < names->count; i++)
		sorted.items[sorted.count++] = xstrdup(names->items[i]);
	qsort(sorted.items, sorted.count, sizeof(*sorted.items), cmp_str);
	if (call->json) {
		buf_append_str(&call->body, "{\"host\": ");
		json_str(&call->body, call->host->name);
		buf_printf(&call->body, ", \"count\": %zu, \"users\": ", sorted.count);
		json_strlist(&call->body, &sorted);
		buf_append_str(&call->body, "}\n");
	} else {
		for (size_t i = 0; i < sorted.count; i++)
			buf_printf(&call->body, "%s\n", sorted.items[i]);
	}
	strlist_free(&sorted);
	call_finish(call, CTL_OK, NULL);
}

static void cmd_registered_users(struct ctl_call *call)
{
	call->host = call_host(call, 1);
	if (call->host == NULL)
		return;
	call->sreqs[0] = storage_account_list(call->host->storage, call->host->name,
	                                      registered_users_done, call);
}

/* ---- sessions ----------------------------------------------------------------------- */

static int cmp_session(const void *a, const void *b)
{
	const struct session *x = *(struct session *const *)a, *y = *(struct session *const *)b;
	int c = strcmp(x->jid.domain, y->jid.domain);
	if (c == 0)
		c = strcmp(x->jid.node, y->jid.node);
	if (c == 0)
		c = strcmp(x->jid.resource, y->jid.resource);
	return c;
}

struct session_list { struct session **items; size_t count; };
/* ---- auth-test ---------------------------------------------------------------------- */

static void auth_test_next(struct ctl_call *call);

static void auth_test_chain_done(enum auth_result r, void *ctx)
{
	struct ctl_call *call = ctx;
	call->req = NULL;
	const char *verdict = r == AUTH_OK ? "login accepted"
	                    : r == AUTH_TEMPFAIL ? "temporary failure (<temporary-auth-failure/>; not counted "
	                                           "as a failed login)"
	                    : "login refused (<not-authorized/>)";
	buf_printf(&call->body, "chain of %s: %s: %s\n", call->host->name, auth_result_str(r), verdict);
	if (r == AUTH_OK)
		call_finish(call, CTL_OK, NULL);
	else if (r == AUTH_TEMPFAIL)
		call_finish(call, CTL_TEMPFAIL, "%s@%s: the backends could not answer", call->user,
		            call->host->name);
	else
		call_finish(call, CTL_FAILED, "%s@%s: login refused", call->user, call->host->name);
}

static void auth_test_line(struct ctl_call *call, const char *what)
{
	const char *name = auth_backend_name(call->host->auth, call->probe_i);
	buf_printf(&call->body, "backend %zu %s: %s", call->probe_i + 1, name, what);
	if (call->probe_detail != NULL)
		buf_printf(&call->body, " (%s)", call->probe_detail);
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
	call->probe_i++;
	auth_test_next(call);
}

static void auth_test_check_done(enum auth_result r, const char *detail, void *ctx)
{
	struct ctl_call *call = ctx;
	call->req = NULL;
	free(call->probe_detail);
	call->probe_detail = detail != NULL ? xstrdup(detail) : NULL;
	call->probe_res = r;
	switch (r) {
	case AUTH_OK:
		auth_test_line(call, "ok (password accepted)");
		break;
	case AUTH_BAD_PASSWORD:
		call->req = auth_probe(call->host->auth, call->probe_i, call->user, NULL, auth_test_exists_done,
		                       call);
		return;
	case AUTH_NO_USER:
		auth_test_line(call, "unknown user");
		break;
	case AUTH_TEMPFAIL:
		auth_test_line(call, "unreachable or too slow: temporary failure");
		break;
	case AUTH_NOT_SUPPORTED:
		auth_test_line(call, "does not check passwords");
		break;
	default:
		auth_test_line(call, auth_result_str(r));
		break;
	}
	call->probe_i++;
	auth_test_next(call);
}

static void auth_test_next(struct ctl_call *call)
{
	xfree(&call->probe_detail);
	if (call->probe_i < auth_backend_count(call->host->auth)) {
		call->req = auth_probe(call->host->auth, call->probe_i, call->user, call->secret,
		                       auth_test_check_done, call);
		return;
	}
	call->req = auth_check_password(call->host->auth, call->user, call->secret, auth_test_chain_done, call);
}

/* Resolve argv[idx], USER@HOST, into call->host and call->user, or finish
 * the call and return false. */
static bool call_user_at_host(struct ctl_call *call, int idx)
{
	const char *jid = call->argv[idx];
	const char *at = strrchr(jid, '@');
	if (at == NULL || at == jid || at[1] == '\0') {
		call_finish(call, CTL_USAGE, "expected USER@HOST, got '%s'", jid);
		return false;
	}
	char *domain = jid_nameprep(at + 1);
	call->host = domain != NULL ? host_find(domain) : NULL;
	free(domain);
	if (call->host == NULL) {
		call_finish(call, CTL_FAILED, "host %s is not served here", at + 1);
		return false;
	}
	char *node = xstrndup(jid, (size_t)(at - jid));
	call->user = jid_nodeprep(node);
	free(node);
	if (call->user == NULL || *call->user == '\0') {
		call_finish(call, CTL_FAILED, "'%s' has no valid user name", jid);
		return false;
	}
	return true;
}

static void cmd_auth_test(struct ctl_call *call)
{
	if (!call_user_at_host(call, 1))
		return;
	call->secret = xstrdup(call->argv[2]);
	explicit_bzero(call->argv[2], strlen(call->argv[2]));
	buf_printf(&call->body, "auth-test %s@%s: methods", call->user, call->host->name);
	for (size_t i = 0; i < auth_backend_count(call->host->auth); i++)
		buf_printf(&call->body, " %s", auth_backend_name(call->host->auth, i));
	buf_append_str(&call->body, "\n");
	auth_test_next(call);
}

/* ---- server commands --------------------------------------------------------------- */

static void add_session(struct session *s, void *ctx)
{
	struct session_list *l = ctx;
	l->items = xrealloc(l->items, (l->count + 1) * sizeof(*l->items));
	l->items[l->count++] = s;
}

/* Every session, sorted by JID (valid until the loop runs again). */
static void sessions_sorted(struct session_list *l)
{
	memset(l, 0, sizeof(*l));
	sm_foreach(NULL, add_session, l);
	if (l->count > 0)
		qsort(l->items, l->count, sizeof(*l->items), cmp_session);
}

static void cmd_connected_users(struct ctl_call *call)
{
	struct session_list l;
	sessions_sorted(&l);
	if (call->json)
		buf_append_str(&call->body, "[");
	for (size_t i = 0; i < l.count; i++) {
		char *jid = jid_to_string(&l.items[i]->jid);
		if (call->json) {
			buf_append_str(&call->body, i > 0 ? ", " : "");
			json_str(&call->body, jid);
		} else {
			buf_printf(&call->body, "%s\n", jid);
		}
		free(jid);
	}
	if (call->json)
		buf_append_str(&call->body, "]\n");
	free(l.items);
	call_finish(call, CTL_OK, NULL);
}

static void iso_time(double t, char *out, size_t size)
{
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void cmd_connected_users_info(struct ctl_call *call)
{
	struct session_list l;
	sessions_sorted(&l);
	/* Session start times are ev_now() of the loop: wall-clock time. */
	if (call->json)
		buf_append_str(&call->body, "[");
	else if (l.count > 0)
		buf_printf(&call->body, "%-40s %-39s %5s %-8s %4s %-20s %s\n", "jid", "ip", "port", "tls",
		           "prio", "connected since", "resource");
	for (size_t i = 0; i < l.count; i++) {
		const struct session *s = l.items[i];
		char *jid = jid_to_string(&s->jid);
		char since[32];
		iso_time(s->started, since, sizeof(since));
		if (call->json) {
			buf_append_str(&call->body, i > 0 ? ",\n " : "");
			buf_append_str(&call->body, "{\"jid\": ");
			json_str(&call->body, jid);
			buf_append_str(&call->body, ", \"user\": ");
			json_str(&call->body, s->jid.node);
			buf_append_str(&call->body, ", \"host\": ");
			json_str(&call->body, s->jid.domain);
			buf_append_str(&call->body, ", \"resource\": ");
			json_str(&call->body, s->jid.resource);
			buf_append_str(&call->body, ", \"ip\": ");
			json_str(&call->body, s->ip);
			buf_printf(&call->body, ", \"port\": %u, \"tls\": ", s->port);
			if (s->tls[0] != '\0')
				json_str(&call->body, s->tls);
			else
				buf_append_str(&call->body, "null");
			buf_printf(&call->body, ", \"priority\": %d, \"available\": %s, \"connected_since\": ",
			           s->priority, s->available ? "true" : "false");
			json_str(&call->body, since);
			buf_printf(&call->body, ", \"connected_seconds\": %.0f}", ev_now(call->loop) - s->started);
		} else {
			buf_printf(&call->body, "%-40s %-39s %5u %-8s %4d %-20s %s\n", jid, s->ip, s->port,
			           s->tls[0] != '\0' ? s->tls : "none", s->priority, since, s->jid.resource);
		}
		free(jid);
	}
	if (call->json)
		buf_append_str(&call->body, "]\n");
	free(l.items);
	call_finish(call, CTL_OK, NULL);
}

static void cmd_kick_session(struct ctl_call *call)
{
	struct jid j;
	const char *err;
	if (jid_parse(call->argv[1], &j, &err) != 0 || j.node == NULL) {
		call_finish(call, CTL_USAGE, "'%s' is not a user JID: %s", call->argv[1],
		            j.node == NULL && err == NULL ? "no local part" : err != NULL ? err : "no local part");
		if (err == NULL)
			jid_clear(&j);
		return;
	}
	struct host *h = host_find(j.domain);
	const char *reason = call->argc > 2 && call->argv[2][0] != '\0' ? call->argv[2]
	                                                                 : "kicked by an administrator";
	unsigned n = 0;
	if (h != NULL) {
		struct session *s = sm_user_sessions(h, j.node);
		while (s != NULL) {
			struct session *next = s->next_of_user;
			if (j.resource == NULL || strcmp(s->jid.resource, j.resource) == 0) {
				char *full = jid_to_string(&s->jid);
				log_notice("ctl: kicking %s: %s", full, reason);
				buf_printf(&call->body, "%s kicked\n", full);
				free(full);
				sm_session_close(s);
				s->ops->kick(s->owner, STE_POLICY_VIOLATION, reason);
				n++;
			}
			s = next;
		}
	}
	if (n == 0)
		call_finish(call, CTL_FAILED, "no session of %s", call->argv[1]);
	else
		call_finish(call, CTL_OK, NULL);
	jid_clear(&j);
}

/* ---- sending stanzas ------------------------------------------------------------------ */

/* Parse argv[idx] as a JID into j; false (call finished) when it is not one. */
static bool call_jid(struct ctl_call *call, int idx, struct jid *j)
{
	const char *err;
	if (jid_parse(call->argv[idx], j, &err) != 0) {
		call_finish(call, CTL_USAGE, "'%s' is not a JID: %s", call->argv[idx], err);
		return false;
	}
	return true;
}

static void route_stanza(struct ctl_call *call, struct xml_node *el, struct jid *from, struct jid *to)
{
	char *fs = jid_to_string(from), *ts = jid_to_string(to);
	xml_set_attr(el, "from", fs);
	xml_set_attr(el, "to", ts);
	log_notice("ctl: %s from %s to %s", el->name, fs, ts);
	router_route(el, from, to);
	buf_printf(&call->body, "%s sent from %s to %s\n", el->name, fs, ts);
	free(fs);
	free(ts);
}

static void cmd_send_message(struct ctl_call *call)
{
	struct jid from, to;
	if (!call_jid(call, 1, &from))
		return;
	if (!call_jid(call, 2, &to)) {
		jid_clear(&from);
		return;
	}
	if (!utf8_valid(call->argv[3], strlen(call->argv[3]))) {
		call_finish(call, CTL_USAGE, "the body is not valid UTF-8");
	} else {
		struct xml_node *m = xml_new("message", NS_CLIENT);
		xml_set_attr(m, "type", "normal");
		char id[17];
		random_id(id, 16);
		xml_set_attr(m, "id", id);
		struct xml_node *b = xml_add_child(m, "body", NS_CLIENT);
		xml_add_text(b, call->argv[3], strlen(call->argv[3]));
		route_stanza(call, m, &from, &to);
		xml_unref(&m);
		call_finish(call, CTL_OK, NULL);
	}
	jid_clear(&from);
	jid_clear(&to);
}

static void cmd_send_stanza(struct ctl_call *call)
{
	struct jid from, to;
	if (!call_jid(call, 1, &from))
		return;
	if (!call_jid(call, 2, &to)) {
		jid_clear(&from);
		return;
	}
	const struct limits_config *lim = &server.cfg->limits;
	struct xml_parser_limits pl = { .max_stanza = lim->max_stanza_size, .max_depth = lim->max_depth,
	                                .max_attrs = lim->max_attrs };
	const char *err = NULL;
	struct xml_node *el = xml_parse_string(call->argv[3], strlen(call->argv[3]), NS_CLIENT, &pl, &err);
	if (el == NULL) {
		call_finish(call, CTL_USAGE, "the stanza is not acceptable XML: %s", err != NULL ? err : "?");
	} else if (stanza_kind(el) == STANZA_OTHER || !str_eq(el->ns, NS_CLIENT)) {
		call_finish(call, CTL_USAGE, "not a stanza: <%s/> (message, presence or iq in jabber:client)",
		            el->name);
	} else if (stanza_kind(el) == STANZA_IQ &&
	           (xml_attr(el, "id") == NULL || xml_attr(el, "type") == NULL)) {
		call_finish(call, CTL_USAGE, "an iq needs an id and a type");
	} else {
		route_stanza(call, el, &from, &to);
		call_finish(call, CTL_OK, NULL);
	}
	if (el != NULL)
		xml_unref(&el);
	jid_clear(&from);
	jid_clear(&to);
}

/* ---- ldap-test ---------------------------------------------------------------------- */

/* What a host does with its directory, for one user, without a password:
 * the login search (through the auth chain's own LDAP client, the search a
 * login sends), the vCard lookup (mod_vcard's client and mapping), and the
 * shared roster groups held in memory.  The searches run one after the
 * other; the output is text, or one JSON object with --json. */

#ifdef HAVE_BACKEND_LDAP
static void ltest_vcard(struct ctl_call *call);

/* The exit code so far: a temporary failure wins over "no", "no" over ok. */
static void ltest_note(struct ctl_call *call, int code, const char *fmt, ...) ATTR_PRINTF(3, 4);
static void ltest_note(struct ctl_call *call, int code, const char *fmt, ...)
{
	if (code == CTL_OK || call->ltest_code == CTL_TEMPFAIL ||
	    (call->ltest_code == CTL_FAILED && code != CTL_TEMPFAIL))
		return;
	va_list ap;
	va_start(ap, fmt);
	char *m = xvasprintf(fmt, ap);
	va_end(ap);
	free(call->ltest_message);
	call->ltest_message = m;
	call->ltest_code = code;
}

/* Whether v reads as text (UTF-8, no control characters but tab and line
 * ends) and is not an image. */
static bool ltest_is_text(const struct ldap_value *v)
{
	if (vcard_image_type(v->data, v->len) != NULL || !utf8_valid((const char *)v->data, v->len))
		return false;
	for (size_t i = 0; i < v->len; i++)
		if (v->data[i] < 0x20 && v->data[i] != '\t' && v->data[i] != '\n' && v->data[i] != '\r')
			return false;
	return true;
}

/* A binary value: its size and detected type, never its bytes. */
static void ltest_binary(struct ctl_call *call, const struct ldap_value *v)
{
	const char *type = vcard_image_type(v->data, v->len);
	if (call->json) {
		buf_printf(&call->body, "{\"binary\": true, \"size\": %zu, \"type\": ", v->len);
		if (type != NULL)
			json_str(&call->body, type);
		else
			buf_append_str(&call->body, "null");
		buf_append_str(&call->body, "}");
	} else {
		buf_printf(&call->body, "(binary, %zu bytes, %s)", v->len,
		           type != NULL ? type : "type not recognised");
	}
}

/* Text with its line ends and tabs written \n \r \t (one output line). */
static void ltest_text_line(struct buf *b, const struct ldap_value *v)
{
	for (size_t i = 0; i < v->len; i++) {
		unsigned char ch = v->data[i];
		if (ch == '\n')
			buf_append_str(b, "\\n");
		else if (ch == '\r')
			buf_append_str(b, "\\r");
		else if (ch == '\t')
			buf_append_str(b, "\\t");
		else
			buf_append(b, &v->data[i], 1);
	}
}

static void ltest_entries(struct ctl_call *call, const struct ldap_reply *r)
{
	struct buf *b = &call->body;
	if (call->json)
		buf_append_str(b, "[");
	else
		buf_printf(b, "  entries found: %zu\n", r->nentries);
	for (size_t i = 0; i < r->nentries; i++) {
		const struct ldap_entry *e = &r->entries[i];
		if (call->json) {
			buf_append_str(b, i > 0 ? ", {\"dn\": " : "{\"dn\": ");
			json_str(b, e->dn);
			buf_append_str(b, ", \"attributes\": {");
		} else {
			buf_printf(b, "    dn: %s\n", e->dn);
		}
		for (size_t a = 0; a < e->nattrs; a++) {
			const struct ldap_attr *at = &e->attrs[a];
			if (call->json) {
				buf_append_str(b, a > 0 ? ", " : "");
				json_str(b, at->name);
				buf_append_str(b, ": [");
			}
			for (size_t v = 0; v < at->count; v++) {
				const struct ldap_value *val = &at->values[v];
				if (call->json) {
					buf_append_str(b, v > 0 ? ", " : "");
					if (ltest_is_text(val))
						json_str(b, (const char *)val->data);
					else
						ltest_binary(call, val);
					continue;
				}
				buf_printf(b, "      %s: ", at->name);
				if (ltest_is_text(val))
					ltest_text_line(b, val);
				else
					ltest_binary(call, val);
				buf_append_str(b, "\n");
			}
			if (call->json)
				buf_append_str(b, "]");
		}
		if (call->json)
			buf_append_str(b, "}}");
	}
	if (call->json)
		buf_append_str(b, "]");
}

/* The servers a search went to, with the reason of each failure, joined
 * with "; " (for the error message). */
static char *ltest_servers_failed(const struct ldap_reply *r)
{
	struct buf b = {0};
	const char *t = r->trace != NULL ? r->trace : "";
	while (*t != '\0') {
		size_t n = strcspn(t, "\n");
		if (b.len > 0)
			buf_append_str(&b, "; ");
		buf_append(&b, t, n);
		t += n;
		if (*t == '\n')
			t++;
	}
	if (b.len == 0)
		buf_append_str(&b, r->error != NULL ? r->error : ldap_client_result_str(r->res));
	return buf_steal(&b);
}

/* One search: what was sent, where, what came back.  Text lines are
 * indented under the section's title; JSON is an object. */
static void ltest_search(struct ctl_call *call, const struct ldap_reply *r, const char *const *attrs)
{
	struct buf *b = &call->body;
	const char *t = r->trace != NULL ? r->trace : "";
	if (call->json) {
		buf_append_str(b, "{\"servers\": [");
		bool first = true;
		while (*t != '\0') {
			size_t n = strcspn(t, "\n");
			char *line = xstrndup(t, n);
			buf_append_str(b, first ? "" : ", ");
			json_str(b, line);
			free(line);
			first = false;
			t += n;
			if (*t == '\n')
				t++;
		}
		buf_append_str(b, "], \"answered_by\": ");
		if (r->server != NULL)
			json_str(b, r->server);
		else
			buf_append_str(b, "null");
		buf_append_str(b, ", \"base\": ");
		json_str(b, r->base != NULL ? r->base : "");
		buf_printf(b, ", \"scope\": \"subtree\", \"size_limit\": %d, \"filter\": ",
		           LDAP_CLIENT_FIND_SIZELIMIT);
		json_str(b, r->filter != NULL ? r->filter : "");
		buf_append_str(b, ", \"attributes\": [");
		for (size_t i = 0; attrs != NULL && attrs[i] != NULL; i++) {
			buf_append_str(b, i > 0 ? ", " : "");
			json_str(b, attrs[i]);
		}
		buf_append_str(b, "], \"result\": ");
		json_str(b, ldap_client_result_str(r->res));
		buf_append_str(b, ", \"error\": ");
		if (r->error != NULL)
			json_str(b, r->error);
		else
			buf_append_str(b, "null");
		buf_append_str(b, ", \"entries\": ");
		ltest_entries(call, r);
		buf_append_str(b, "}");
		return;
	}
	buf_append_str(b, "  servers:\n");
	while (*t != '\0') {
		size_t n = strcspn(t, "\n");
		buf_printf(b, "    %.*s\n", (int)n, t);
		t += n;
		if (*t == '\n')
			t++;
	}
	buf_printf(b, "  answered by: %s\n", r->server != NULL ? r->server : "no server");
	buf_printf(b, "  base: %s\n", r->base != NULL ? r->base : "");
	buf_printf(b, "  scope: subtree (size limit %d: a second entry makes the name ambiguous)\n",
	           LDAP_CLIENT_FIND_SIZELIMIT);
	buf_printf(b, "  filter: %s\n", r->filter != NULL ? r->filter : "");
	buf_append_str(b, "  attributes:");
	if (attrs == NULL || attrs[0] == NULL)
		buf_append_str(b, " 1.1 (none: the DN only)");
	for (size_t i = 0; attrs != NULL && attrs[i] != NULL; i++)
		buf_printf(b, " %s", attrs[i]);
	buf_append_str(b, "\n");
	buf_printf(b, "  result: %s%s%s\n", ldap_client_result_str(r->res), r->error != NULL ? ": " : "",
	           r->error != NULL ? r->error : "");
	if (r->res == LDAPC_OK || r->res == LDAPC_NO_ENTRY || r->res == LDAPC_AMBIGUOUS)
		ltest_entries(call, r);
}

/* The vCard as XML, its PHOTO/BINVAL replaced by its size. */
static void ltest_vcard_xml(struct buf *b, const struct xml_node *vcard)
{
	struct xml_node *copy = xml_copy(vcard);
	for (struct xml_node *photo = xml_child(copy, "PHOTO", NULL); photo != NULL;
	     photo = xml_next(photo, "PHOTO", NULL)) {
		struct xml_node *bin = xml_child(photo, "BINVAL", NULL);
		if (bin == NULL)
			continue;
		const char *text = xml_text(bin);
		unsigned char *data = NULL;
		size_t len = 0;
		char *summary;
		if (base64_decode(text, strlen(text), &data, &len) == 0)
			summary = xasprintf("[%zu bytes, not shown]", len);
		else
			summary = xasprintf("[%zu characters of base64, not shown]", strlen(text));
		free(data);
		xml_remove(bin);
		struct xml_node *nb = xml_add_child(photo, "BINVAL", NULL);
		xml_add_text(nb, summary, strlen(summary));
		free(summary);
	}
	xml_serialize(b, copy, NULL);
	xml_unref(&copy);
}

static void ltest_groups(struct ctl_call *call)
{
	struct buf *b = &call->body;
	char *jid = xasprintf("%s@%s", call->user, call->host->name);
	struct srg_user_groups g;
	if (srg_groups_of(call->host, jid, &g) < 0) {
		if (call->json)
			buf_append_str(b, ", \"shared_roster\": null");
		else
			buf_printf(b, "shared roster groups: the shared_roster module is not enabled on %s\n",
			           call->host->name);
		free(jid);
		return;
	}
	char *base = NULL, *filter = NULL;
	bool ldap = srg_ldap_group_search(call->host, &base, &filter) == 0;
	char when[32] = "";
	if (g.loaded)
		iso_time(g.loaded_at, when, sizeof(when));
	double ago = g.loaded ? ev_time() - g.loaded_at : 0;
	if (call->json) {
		buf_append_str(b, ", \"shared_roster\": {\"source\": ");
		json_str(b, g.source);
		if (ldap) {
			buf_append_str(b, ", \"base\": ");
			json_str(b, base);
			buf_append_str(b, ", \"scope\": \"subtree\", \"filter\": ");
			json_str(b, filter);
		}
		buf_append_str(b, ", \"loaded_at\": ");
		if (g.loaded)
			json_str(b, when);
		else
			buf_append_str(b, "null");
		buf_printf(b, ", \"last_load_failed\": %s, \"groups_held\": %zu, \"groups\": [",
		           g.load_failing ? "true" : "false", g.total);
		for (size_t i = 0; i < g.count; i++) {
			const struct srg_user_group *u = &g.groups[i];
			buf_append_str(b, i > 0 ? ", {\"name\": " : "{\"name\": ");
			json_str(b, u->name);
			buf_append_str(b, ", \"label\": ");
			json_str(b, u->label[0] != '\0' ? u->label : u->name);
			buf_append_str(b, ", \"description\": ");
			json_str(b, u->description);
			buf_printf(b, ", \"members\": %zu, \"all\": %s, \"online\": %s}", u->members,
			           u->all ? "true" : "false", u->online ? "true" : "false");
		}
		buf_append_str(b, "]}");
	} else {
		if (ldap)
			buf_printf(b, "shared roster groups (source ldap, held in memory):\n"
			           "  groups searched: base %s, scope subtree, filter %s\n", base, filter);
		else
			buf_printf(b, "shared roster groups (source %s, held in memory as loaded from the "
			           "store):\n", g.source);
		if (g.loaded)
			buf_printf(b, "  last read: %s (%.0f s ago)%s\n", when, ago,
			           g.load_failing ? "; the reads since have failed (see the log)" : "");
		else
			buf_printf(b, "  last read: never%s\n",
			           g.load_failing ? " (the reads have failed: see the log)" : " (the first read is under way)");
		buf_printf(b, "  %s is a member of %zu of the %zu groups held\n", jid, g.count, g.total);
		for (size_t i = 0; i < g.count; i++) {
			const struct srg_user_group *u = &g.groups[i];
			buf_printf(b, "    %s: label \"%s\", %zu members%s%s", u->name,
			           u->label[0] != '\0' ? u->label : u->name, u->members,
			           u->all ? " and @all@" : "", u->online ? " and @online@" : "");
			if (u->description[0] != '\0')
				buf_printf(b, ", description \"%s\"", u->description);
			buf_append_str(b, "\n");
		}
	}
	free(base);
	free(filter);
	srg_user_groups_clear(&g);
	free(jid);
}

static void ltest_finish(struct ctl_call *call)
{
	ltest_groups(call);
	if (call->json)
		buf_append_str(&call->body, "}\n");
	if (call->ltest_code != CTL_OK)
		call_finish(call, call->ltest_code, "%s", call->ltest_message);
	else
		call_finish(call, CTL_OK, NULL);
}

static void ltest_vcard_done(const struct ldap_reply *r, const char *const *attrs,
                             const struct xml_node *vcard, void *ctx)
{
	struct ctl_call *call = ctx;
	call->vprobe = NULL;
	struct buf *b = &call->body;
	if (call->json) {
		buf_append_str(b, ", \"vcard\": {\"source\": \"ldap\", \"search\": ");
		ltest_search(call, r, attrs);
		buf_append_str(b, ", \"vcard\": ");
		if (vcard != NULL) {
			struct buf x = {0};
			ltest_vcard_xml(&x, vcard);
			json_str(b, x.data);
			buf_free(&x);
		} else {
			buf_append_str(b, "null");
		}
		buf_append_str(b, "}");
	} else {
		buf_append_str(b, "vCard lookup (module vcard, source ldap; the cache is not used):\n");
		ltest_search(call, r, attrs);
		if (vcard != NULL) {
			buf_append_str(b, "  vCard answered: ");
			ltest_vcard_xml(b, vcard);
			buf_append_str(b, "\n");
		} else {
			buf_append_str(b, "  vCard answered: none; a get is answered with an error\n");
		}
	}
	if (r->res == LDAPC_TEMPFAIL) {
		char *why = ltest_servers_failed(r);
		ltest_note(call, CTL_TEMPFAIL, "the directory of %s is unavailable: %s", call->host->name,
		           why);
		free(why);
	} else if (r->res != LDAPC_OK && r->res != LDAPC_NO_ENTRY && auth_ldap_client(call->host->auth) == NULL) {
		ltest_note(call, CTL_FAILED, "%s@%s: vCard lookup: %s", call->user, call->host->name,
		           r->error != NULL ? r->error : ldap_client_result_str(r->res));
	} else if (r->res == LDAPC_NO_ENTRY && auth_ldap_client(call->host->auth) == NULL) {
		ltest_note(call, CTL_FAILED, "%s@%s: no entry in the directory", call->user,
		           call->host->name);
	}
	ltest_finish(call);
}

static void ltest_vcard(struct ctl_call *call)
{
	struct buf *b = &call->body;
	if (!vcard_ldap_enabled(call->host)) {
		bool on = module_state(call->host, "vcard") != NULL;
		if (call->json)
			buf_printf(b, ", \"vcard\": %s", on ? "{\"source\": \"storage\"}" : "null");
		else if (on)
			buf_append_str(b, "vCard lookup: the vcard module keeps vCards in the store "
			                  "(source storage), not the directory\n");
		else
			buf_printf(b, "vCard lookup: the vcard module is not enabled on %s\n",
			           call->host->name);
		ltest_finish(call);
		return;
	}
	const char *err = NULL;
	call->vprobe = vcard_ldap_probe(call->host, call->user, ltest_vcard_done, call, &err);
	if (call->vprobe == NULL) {
		if (call->json) {
			buf_append_str(b, ", \"vcard\": {\"source\": \"ldap\", \"error\": ");
			json_str(b, err);
			buf_append_str(b, "}");
		} else {
			buf_printf(b, "vCard lookup: not sent: %s\n", err);
		}
		ltest_note(call, CTL_TEMPFAIL, "%s: vCard lookup: %s", call->host->name, err);
		ltest_finish(call);
	}
}

static void ltest_login_done(const struct ldap_reply *r, void *ctx)
{
	struct ctl_call *call = ctx;
	call->lreq = NULL;
	struct buf *b = &call->body;
	const char *verdict;
	switch (r->res) {
	case LDAPC_OK: verdict = "the name resolves to exactly one entry: a login checks the password "
	                         "against it"; break;
	case LDAPC_NO_ENTRY: verdict = "no entry: a login is refused (not-authorized)"; break;
	case LDAPC_AMBIGUOUS: verdict = "more than one entry: a login is refused (logged as an error)";
		break;
	case LDAPC_TEMPFAIL: verdict = "the directory did not answer: a login gets a temporary failure";
		break;
	default: verdict = "the search failed: a login is refused with a server error"; break;
	}
	if (call->json) {
		buf_append_str(b, ", \"login\": {\"search\": ");
		ltest_search(call, r, NULL);
		buf_append_str(b, ", \"resolves\": ");
		json_str(b, r->res == LDAPC_OK ? "one entry" : r->res == LDAPC_NO_ENTRY ? "no entry"
		            : r->res == LDAPC_AMBIGUOUS ? "more than one entry" : "unknown");
		buf_append_str(b, ", \"dn\": ");
		if (r->res == LDAPC_OK && r->dn != NULL)
			json_str(b, r->dn);
		else
			buf_append_str(b, "null");
		buf_append_str(b, ", \"verdict\": ");
		json_str(b, verdict);
		buf_append_str(b, "}");
	} else {
		buf_append_str(b, "login search (auth method ldap, as a login sends it; no bind):\n");
		ltest_search(call, r, NULL);
		buf_printf(b, "  login: %s\n", verdict);
	}
	switch (r->res) {
	case LDAPC_OK: break;
	case LDAPC_NO_ENTRY:
		ltest_note(call, CTL_FAILED, "%s@%s: no entry in the directory", call->user,
		           call->host->name);
		break;
	case LDAPC_AMBIGUOUS:
		ltest_note(call, CTL_FAILED, "%s@%s: more than one entry in the directory", call->user,
		           call->host->name);
		break;
	case LDAPC_TEMPFAIL: {
		char *why = ltest_servers_failed(r);
		ltest_note(call, CTL_TEMPFAIL, "the directory of %s is unavailable: %s", call->host->name,
		           why);
		free(why);
		break;
	}
	default:
		ltest_note(call, CTL_FAILED, "%s@%s: the search failed: %s", call->user, call->host->name,
		           r->error != NULL ? r->error : ldap_client_result_str(r->res));
		break;
	}
	ltest_vcard(call);
}
#endif

static void cmd_ldap_test(struct ctl_call *call)
{
#ifdef HAVE_BACKEND_LDAP
	if (!call_user_at_host(call, 1))
		return;
	struct host *h = call->host;
	struct ldap_client *login = auth_ldap_client(h->auth);
	char *gbase = NULL, *gfilter = NULL;
	bool srg = srg_ldap_group_search(h, &gbase, &gfilter) == 0;
	free(gbase);
	free(gfilter);
	if (login == NULL && !vcard_ldap_enabled(h) && !srg) {
		call_finish(call, CTL_USAGE, "host %s uses no LDAP directory (auth.methods has no ldap, "
		            "and neither vcard nor shared_roster has source: ldap)", h->name);
		return;
	}
	struct buf *b = &call->body;
	if (call->json) {
		buf_append_str(b, "{\"user\": ");
		json_str(b, call->user);
		buf_append_str(b, ", \"host\": ");
		json_str(b, h->name);
	} else {
		buf_printf(b, "ldap-test %s@%s\n", call->user, h->name);
	}
	if (login == NULL) {
		if (call->json) {
			buf_append_str(b, ", \"login\": null");
		} else {
			buf_append_str(b, "login search: none (auth.methods:");
			for (size_t i = 0; i < auth_backend_count(h->auth); i++)
				buf_printf(b, " %s", auth_backend_name(h->auth, i));
			buf_append_str(b, "; logins do not use the directory)\n");
		}
		ltest_vcard(call);
		return;
	}
	call->lreq = ldap_client_find_traced(login, call->user, NULL, ltest_login_done, call);
	if (call->lreq == NULL) {
		if (call->json)
			buf_append_str(b, ", \"login\": {\"error\": \"the LDAP request queue is full\"}");
		else
			buf_append_str(b, "login search: not sent: the LDAP request queue is full\n");
		ltest_note(call, CTL_TEMPFAIL, "%s: the LDAP request queue is full", h->name);
		ltest_vcard(call);
	}
#else
	call_finish(call, CTL_USAGE, "parleyd was built without LDAP support");
#endif
}

/* ---- server commands --------------------------------------------------------------- */

static void memory_figures(long *rss_kib_r, size_t *heap_kib_r, size_t *free_kib_r)
{
	struct mallinfo2 mi = mallinfo2();
	long rss_kib = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	if (f != NULL) {
		long size, rss;
		if (fscanf(f, "%ld %ld", &size, &rss) == 2)
			rss_kib = rss * (sysconf(_SC_PAGESIZE) / 1024);
		fclose(f);
	}
	*rss_kib_r = rss_kib;
	*heap_kib_r = (mi.uordblks + mi.hblkhd) / 1024;
	*free_kib_r = mi.fordblks / 1024;
}

static void cmd_status(struct ctl_call *call)
{
	const struct router_stats *rs = router_stats();
	buf_printf(&call->body, "status: running\nversion: %s\npid: %ld\nuptime: %.0f s\n", PACKAGE_VERSION,
	           (long)getpid(), ev_time() - server.started);
	buf_append_str(&call->body, "hosts:");
	for (struct host *h = host_first(); h != NULL; h = h->next)
		buf_printf(&call->body, " %s", h->name);
	buf_printf(&call->body, "\nconnections: %u\nsessions: %u\nstanzas routed: %llu\n", c2s_count(),
	           sm_count(NULL), (unsigned long long)rs->routed);
	long rss;
	size_t heap, hfree;
	memory_figures(&rss, &heap, &hfree);
	buf_printf(&call->body, "memory: rss %ld KiB, heap in use %zu KiB, heap free %zu KiB\n", rss, heap,
	           hfree);
	for (struct host *h = host_first(); h != NULL; h = h->next) {
		buf_printf(&call->body, "host %s: %u sessions, storage %s, auth", h->name, sm_count(h),
		           storage_describe(h->storage));
		for (size_t i = 0; i < auth_backend_count(h->auth); i++)
			buf_printf(&call->body, " %s", auth_backend_name(h->auth, i));
		buf_append_str(&call->body, "\n");
		auth_status(h->auth, &call->body);
	}
#ifdef HAVE_BACKEND_LDAP
	ldap_client_status_all(&call->body);
#endif
	call_finish(call, CTL_OK, NULL);
}

static void count_user(struct session *s, void *ctx)
{
	/* a user counts once: at the first of their sessions */
	if (sm_user_sessions(s->host, s->jid.node) == s)
		(*(unsigned *)ctx)++;
}

static const char *const kind_names[] = { "other", "message", "presence", "iq" };

static void stats_write(struct ctl_call *call)
{
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
			json_str(b, h->name);
			buf_printf(b, ": {\"registered_users\": ");
			if (call->counts[i] == UINT64_MAX)
				buf_append_str(b, "null");
			else
				buf_printf(b, "%llu", (unsigned long long)call->counts[i]);
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
		buf_printf(b, "\"memory\": {\"rss_kib\": %ld, \"heap_used_kib\": %zu, \"heap_free_kib\": %zu}}\n",
		           rss, heap, hfree);
		return;
	}
	buf_printf(b, "uptime: %.0f s\nconnections: %u\nsessions: %u\n", uptime, c2s_count(), sm_count(NULL));
	unsigned i = 0;
	for (struct host *h = host_first(); h != NULL; h = h->next, i++) {
		unsigned users = 0;
		sm_foreach(h, count_user, &users);
		if (call->counts[i] == UINT64_MAX)
			buf_printf(b, "host %s: registered users unknown (storage unavailable), ", h->name);
		else
			buf_printf(b, "host %s: %llu registered users, ", h->name,
			           (unsigned long long)call->counts[i]);
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
	buf_printf(b, "memory: rss %ld KiB, heap in use %zu KiB, heap free %zu KiB\n", rss, heap, hfree);
}

static void stats_count_done(enum storage_result r, uint64_t count, void *ctx)
{
	struct call_slot *slot = ctx;
	struct ctl_call *call = slot->call;
	call->sreqs[slot->idx] = NULL;
	call->counts[slot->idx] = r == STORAGE_OK ? count : UINT64_MAX;
	if (--call->npending > 0)
		return;
	stats_write(call);
	call_finish(call, CTL_OK, NULL);
}

static void cmd_stats(struct ctl_call *call)
{
	unsigned i = 0;
	for (struct host *h = host_first(); h != NULL && i < CALL_MAX_SREQS; h = h->next, i++) {
		call->slots[i].call = call;
		call->slots[i].idx = i;
		call->counts[i] = UINT64_MAX;
	}
	call->npending = i;
	i = 0;
	for (struct host *h = host_first(); h != NULL && i < CALL_MAX_SREQS; h = h->next, i++)
		call->sreqs[i] = storage_account_count(h->storage, h->name, stats_count_done, &call->slots[i]);
	if (i == 0) {
		stats_write(call);
		call_finish(call, CTL_OK, NULL);
	}
}

static void cmd_stop(struct ctl_call *call)
{
	buf_append_str(&call->body, "stopping\n");
	call_finish(call, CTL_OK, NULL);
	server_stop();
}

static void cmd_restart(struct ctl_call *call)
{
	const char *why = server_restart_refusal();
	if (why != NULL) {
		call_finish(call, CTL_FAILED, "cannot restart in place: %s; restart parleyd with its service "
		            "manager (e.g. systemctl restart parley)", why);
		return;
	}
	buf_append_str(&call->body, "restarting\n");
	call_finish(call, CTL_OK, NULL);
	server_restart();
}

static void cmd_reload(struct ctl_call *call)
{
	if (server_reload(&call->body) < 0)
		call_finish(call, CTL_FAILED, "the configuration has errors; nothing was changed");
	else
		call_finish(call, CTL_OK, NULL);
}

/* ---- backup and restore of the SQLite store ------------------------------------------ */

struct copy_job {
	struct ctl_call *call;          /* NULL when the call was cancelled */
	char *src, *dst;
	bool restore;
	int rc;
	int64_t pages;
	char *error;
};

static void copy_work(void *job, void *thread_state)
{
	struct copy_job *cj = job;
	(void)thread_state;
	cj->rc = sqlite_copy(cj->src, cj->dst, !cj->restore, cj->restore, &cj->pages, &cj->error);
}

static void copy_done(void *job, enum worker_status status)
{
	struct copy_job *cj = job;
	struct ctl_call *call = cj->call;
	if (call != NULL) {
		call->job = NULL;
		call->copy = NULL;
		if (status != WORKER_DONE)
			call_finish(call, CTL_TEMPFAIL, "the copy did not run (expired)");
		else if (cj->rc < 0)
			call_finish(call, CTL_FAILED, "%s", cj->error);
		else {
			if (cj->restore)
				log_notice("ctl: %s restored from %s", cj->dst, cj->src);
			else
				log_notice("ctl: %s backed up to %s", cj->src, cj->dst);
			buf_printf(&call->body, "%s %s to %s (%lld pages)\n", cj->restore ? "restored" : "copied",
			           cj->src, cj->dst, (long long)cj->pages);
			call_finish(call, CTL_OK, NULL);
		}
	}
	free(cj->src);
	free(cj->dst);
	free(cj->error);
	free(cj);
}

/* The SQLite file of the store of host argv[idx], or of every host when
 * argc <= idx (which must then be one file); NULL when the call finished. */
static const char *call_sqlite_path(struct ctl_call *call, int idx)
{
	const struct storage_config *sc = NULL;
	if (call->argc > idx) {
		char *domain = jid_nameprep(call->argv[idx]);
		const struct host_config *hc = domain != NULL ? config_host(server.cfg, domain) : NULL;
		free(domain);
		if (hc == NULL) {
			call_finish(call, CTL_FAILED, "host %s is not in %s", call->argv[idx], server.cfg->file);
			return NULL;
		}
		sc = &hc->storage;
	} else {
		for (size_t i = 0; i < server.cfg->nhosts; i++) {
			const struct storage_config *hs = &server.cfg->hosts[i].storage;
			if (sc != NULL && (!str_eq(sc->driver, hs->driver) || !str_eq(sc->path, hs->path))) {
				call_finish(call, CTL_USAGE, "the hosts use different stores: name a HOST");
				return NULL;
			}
			sc = hs;
		}
	}
	if (sc == NULL || !str_eq(sc->driver, "sqlite") || sc->path == NULL) {
		call_finish(call, CTL_FAILED, "backup and restore work on the embedded SQLite store; "
		            "this store is %s (use the database's own tools)", sc != NULL ? sc->driver : "?");
		return NULL;
	}
	return sc->path;
}

static void copy_start(struct ctl_call *call, bool restore)
{
	const char *path = call_sqlite_path(call, 2);
	if (path == NULL)
		return;
	const char *file = call->argv[1];
	if (file[0] != '/') {
		call_finish(call, CTL_USAGE, "FILE must be an absolute path (parleyctl makes it one)");
		return;
	}
	if (strcmp(file, path) == 0) {
		call_finish(call, CTL_USAGE, "FILE is the store itself");
		return;
	}
	if (copy_group == NULL)
		copy_group = worker_group_new(call->loop, "ctl-copy", 1, 4, NULL, NULL, NULL);
	struct copy_job *cj = xcalloc(1, sizeof(*cj));
	cj->call = call;
	cj->restore = restore;
	cj->src = xstrdup(restore ? file : path);
	cj->dst = xstrdup(restore ? path : file);
	call->copy = cj;
	call->job = worker_submit(copy_group, 0, copy_work, copy_done, cj, 0);
	if (call->job == NULL) {
		call->copy = NULL;
		free(cj->src);
		free(cj->dst);
		free(cj);
		call_finish(call, CTL_TEMPFAIL, "another backup or restore is running");
	}
}

static void cmd_backup(struct ctl_call *call)
{
	copy_start(call, false);
}

static void cmd_restore(struct ctl_call *call)
{
	copy_start(call, true);
}

/* ---- configuration ------------------------------------------------------------------- */

/* Load and check a configuration file completely (modules' options too). */
static int config_check_file(const char *path, struct parley_config **cfg_r, char **error_r)
{
	if (config_load(path, cfg_r, error_r) < 0)
		return -1;
	for (size_t i = 0; i < (*cfg_r)->nhosts; i++) {
		if (modules_check_host(&(*cfg_r)->hosts[i], error_r) < 0) {
			config_free(cfg_r);
			return -1;
		}
	}
	return 0;
}

int ctl_config_check(const char *path, struct parley_config **cfg_r, char **error_r)
{
	return config_check_file(path, cfg_r, error_r);
}

static void cmd_config_check(struct ctl_call *call)
{
	struct parley_config *cfg;
	char *err = NULL;
	if (config_check_file(call->argv[1], &cfg, &err) < 0) {
		call_finish(call, CTL_FAILED, "%s", err);
		free(err);
		return;
	}
	for (size_t i = 0; i < cfg->warnings.count; i++)
		buf_printf(&call->body, "warning: %s\n", cfg->warnings.items[i]);
	buf_append_str(&call->body, "ok\n");
	config_free(&cfg);
	call_finish(call, CTL_OK, NULL);
}

static void cmd_config_dump(struct ctl_call *call)
{
	const struct parley_config *cfg = server_config();
	if (call->argc > 1) {
		char *domain = jid_nameprep(call->argv[1]);
		const struct host_config *hc = domain != NULL ? config_host(cfg, domain) : NULL;
		if (hc == NULL) {
			call_finish(call, CTL_FAILED, "host %s is not in %s", call->argv[1], cfg->file);
			free(domain);
			return;
		}
		config_dump_ex(cfg, hc->name, &call->body, modules_dump_host);
		free(domain);
	} else {
		config_dump_ex(cfg, NULL, &call->body, modules_dump_host);
	}
	call_finish(call, CTL_OK, NULL);
}

/* ---- database schema (ctl-db.c) ------------------------------------------------------ */

/* Finish with the output and outcome a command run elsewhere (ctl-db.c,
 * mod_shared_roster) reported: message for failures, NULL on success. */
static void call_finish_with(struct ctl_call *call, int code, const char *message,
                             const char *body)
{
	buf_append_str(&call->body, body);
	if (message != NULL)
		call_finish(call, code, "%s", message);
	else
		call_finish(call, code, NULL);
}

static void db_finished(void *ctx, int code, const char *message, const char *body)
{
	struct ctl_call *call = ctx;
	call->db = NULL;
	call_finish_with(call, code, message, body);
}

static void cmd_db(struct ctl_call *call)
{
	char *message = NULL;
	int code = ctl_db_run(call->loop, server_config(), call->argc - 1, call->argv + 1, &call->body,
	                      &message, db_finished, call, &call->db);
	if (code < 0)
		return;   /* db_finished comes later */
	if (message != NULL)
		call_finish(call, code, "%s", message);
	else
		call_finish(call, code, NULL);
	free(message);
}

/* ---- XEP-0227 and rename-domain (parleyd stopped: inside parleyctl) ------------------ */

static void finish_tool(struct ctl_call *call, int rc, char *err)
{
	if (rc < 0) {
		call_finish(call, CTL_FAILED, "%s", err != NULL ? err : "failed");
		free(err);
	} else {
		call_finish(call, CTL_OK, NULL);
	}
}

static void cmd_export_xep0227(struct ctl_call *call)
{
	const char *host = NULL, *path = NULL;
	if (call->argc == 4 && strcmp(call->argv[1], "--host") == 0) {
		host = call->argv[2];
		path = call->argv[3];
	} else if (call->argc == 2) {
		path = call->argv[1];
	} else {
		call_finish(call, CTL_USAGE, "usage: export-xep0227 [--host HOST] FILE|DIR");
		return;
	}
	char *err = NULL;
	int rc = xep0227_export(call->loop, server.cfg, host, path, &call->body, &err);
	finish_tool(call, rc, err);
}

static void cmd_import_xep0227(struct ctl_call *call)
{
	char *err = NULL;
	int rc = xep0227_import(call->loop, server.cfg, call->argv[1], &call->body, &err);
	finish_tool(call, rc, err);
}

static void cmd_rename_domain(struct ctl_call *call)
{
	char *err = NULL;
	int rc = xep0227_rename_domain(call->loop, server.cfg, call->argv[1], call->argv[2],
	                               &call->body, &err);
	finish_tool(call, rc, err);
}

/* ---- the command table -------------------------------------------------------------- */

static void cmd_help(struct ctl_call *call);
static void cmd_list_commands(struct ctl_call *call);

/* ---- shared roster groups (the commands live in mod_shared_roster) -------------------- */

static void srg_done(void *ctx, int code, const char *message, const char *body)
{
	struct ctl_call *call = ctx;
	call->srg = NULL;
	call_finish_with(call, code, message, body);
}

static void cmd_srg(struct ctl_call *call)
{
	call->srg = srg_admin_run(call->argc, call->argv, srg_done, call);
}

static const struct ctl_command commands[] = {
	{ "status", "", 0, 0, 0, cmd_status, "show whether parleyd runs, its uptime, hosts and sessions" },
	{ "stop", "", 0, 0, 0, cmd_stop, "stop parleyd gracefully" },
	{ "restart", "", 0, 0, 0, cmd_restart,
	  "stop gracefully and start again in the same process (re-reads the configuration)" },
	{ "reload", "", 0, 0, 0, cmd_reload, "re-read the configuration file (adds and removes hosts)" },
	{ "register", "USER HOST PASSWORD", 3, 3, CTL_F_OFFLINE, cmd_register, "create an account" },
	{ "unregister", "USER HOST", 2, 2, CTL_F_OFFLINE, cmd_unregister, "remove an account and all its data" },
	{ "passwd", "USER HOST PASSWORD", 3, 3, CTL_F_OFFLINE, cmd_passwd, "set an account's password" },
	{ "check-password", "USER HOST", 3, 3, CTL_F_OFFLINE | CTL_F_STDIN, cmd_check_password,
	  "check a password read from stdin: exit 0 right, 1 wrong or no such user" },
	{ "user-exists", "USER HOST", 2, 2, CTL_F_OFFLINE, cmd_user_exists,
	  "exit 0 when the account exists, 1 when not" },
	{ "registered-users", "HOST", 1, 1, CTL_F_OFFLINE | CTL_F_JSON, cmd_registered_users,
	  "list the accounts of a host" },
	{ "connected-users", "", 0, 0, CTL_F_JSON, cmd_connected_users, "list the full JIDs of connected sessions" },
	{ "srg-create", "HOST GROUP [--name N] [--description D] [--display G1,G2]", 2, 8,
	  CTL_F_OFFLINE, cmd_srg,
	  "create a shared roster group (displayed: whose members its members see; default itself)" },
	{ "srg-delete", "HOST GROUP", 2, 2, CTL_F_OFFLINE, cmd_srg, "delete a shared roster group" },
	{ "srg-list", "HOST", 1, 1, CTL_F_OFFLINE, cmd_srg, "list the shared roster groups of a host" },
	{ "srg-info", "HOST GROUP", 2, 2, CTL_F_OFFLINE, cmd_srg,
	  "show a shared roster group and its members" },
	{ "srg-user-add", "USER@HOST HOST GROUP", 3, 3, CTL_F_OFFLINE, cmd_srg,
	  "add a member (or @all@, @online@) to a shared roster group" },
	{ "srg-user-del", "USER@HOST HOST GROUP", 3, 3, CTL_F_OFFLINE, cmd_srg,
	  "remove a member from a shared roster group" },
	{ "auth-test", "USER@HOST", 2, 2, CTL_F_STDIN, cmd_auth_test,
	  "check a password read from stdin through the host's auth chain, backend by backend" },
	{ "ldap-test", "USER@HOST", 1, 1, CTL_F_JSON, cmd_ldap_test,
	  "show the directory searches of a user (login, vCard) and what they find, and the "
	  "user's shared roster groups; no password" },
	{ "connected-users-info", "", 0, 0, CTL_F_JSON, cmd_connected_users_info,
	  "list sessions: JID, IP, port, TLS, priority, connected since, resource" },
	{ "kick-session", "JID [REASON]", 1, 2, 0, cmd_kick_session,
	  "close a session (full JID) or every session of a user (bare JID) with a stream error" },
	{ "send-message", "FROM TO BODY", 3, 3, 0, cmd_send_message, "send a normal message" },
	{ "send-stanza", "FROM TO XML", 3, 3, 0, cmd_send_stanza,
	  "send a message, presence or iq given as XML (from and to are set from FROM and TO)" },
	{ "stats", "", 0, 0, CTL_F_JSON, cmd_stats,
	  "users online and registered per host, uptime, stanza counters, memory" },
	{ "backup", "FILE [HOST]", 1, 2, CTL_F_OFFLINE | CTL_F_PATH, cmd_backup,
	  "copy the SQLite store to FILE (online, consistent)" },
	{ "restore", "FILE [HOST]", 1, 2, CTL_F_STOPPED | CTL_F_PATH, cmd_restore,
	  "replace the SQLite store with a backup (only while parleyd is stopped)" },
	{ "config-check", "FILE", 1, 1, CTL_F_LOCAL | CTL_F_NOHOSTS | CTL_F_OFFLINE, cmd_config_check,
	  "check a configuration file: prints ok, or file:line:column: key and the reason (exit 1)" },
	{ "config-dump", "[HOST]", 0, 1, CTL_F_OFFLINE | CTL_F_NOHOSTS, cmd_config_dump,
	  "the effective configuration (of one host) after defaults and overrides; of the running server when it runs" },
	{ "export-xep0227", "[--host HOST] FILE|DIR", 1, 3, CTL_F_STOPPED, cmd_export_xep0227,
	  "write users and their data as XEP-0227 (one file, or DIR/HOST.xml per host)" },
	{ "import-xep0227", "FILE|DIR", 1, 1, CTL_F_STOPPED, cmd_import_xep0227,
	  "read users and their data from XEP-0227 files (existing accounts are skipped)" },
	{ "rename-domain", "OLD NEW", 2, 2, CTL_F_STOPPED, cmd_rename_domain,
	  "move every user of host OLD to host NEW and rewrite JIDs at OLD everywhere" },
	{ "db", "status [HOST] | migrate [--dsn CONNINFO] [HOST] | print-schema [DRIVER|HOST]", 1, 4,
	  CTL_F_OFFLINE | CTL_F_NOHOSTS, cmd_db,
	  "database schema of the stores: status (driver, connection, version found and expected, "
	  "live state), migrate (apply the missing migrations), print-schema (the dialect's schema file)" },
	{ "list-commands", "", 0, 0, CTL_F_LOCAL | CTL_F_OFFLINE | CTL_F_JSON | CTL_F_NOHOSTS, cmd_list_commands,
	  "list the commands" },
	{ "help", "[COMMAND]", 0, 1, CTL_F_LOCAL | CTL_F_OFFLINE | CTL_F_NOHOSTS, cmd_help, "describe one command, or all" },
};

static const struct ctl_command *command_find(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

bool ctl_command_flags(const char *name, unsigned *flags_r)
{
	const struct ctl_command *c = command_find(name);
	if (c == NULL)
		return false;
	*flags_r = c->flags;
	return true;
}

bool ctl_command_offline(const char *name)
{
	const struct ctl_command *c = command_find(name);
	return c != NULL && (c->flags & (CTL_F_OFFLINE | CTL_F_STOPPED)) != 0;
}

static void command_usage(struct buf *out, const struct ctl_command *c)
{
	buf_printf(out, "  %-20s %-20s %s\n", c->name, c->args, c->help);
}

void ctl_help(struct buf *out)
{
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		command_usage(out, &commands[i]);
}

static void cmd_help(struct ctl_call *call)
{
	if (call->argc < 2) {
		ctl_help(&call->body);
		call_finish(call, CTL_OK, NULL);
		return;
	}
	const struct ctl_command *c = command_find(call->argv[1]);
	if (c == NULL) {
		call_finish(call, CTL_USAGE, "unknown command '%s' (try list-commands)", call->argv[1]);
		return;
	}
	buf_printf(&call->body, "usage: parleyctl %s%s%s%s\n  %s\n", (c->flags & CTL_F_JSON) ? "[--json] " : "",
	           c->name, c->args[0] != '\0' ? " " : "", c->args, c->help);
	if (c->flags & CTL_F_STDIN)
		buf_append_str(&call->body, "  the password is read from the first line of stdin\n");
	if (c->flags & CTL_F_STOPPED)
		buf_append_str(&call->body, "  runs only while parleyd is stopped\n");
	else if (c->flags & CTL_F_OFFLINE)
		buf_append_str(&call->body, "  works with parleyd running or stopped\n");
	else
		buf_append_str(&call->body, "  needs a running parleyd\n");
	call_finish(call, CTL_OK, NULL);
}

static void cmd_list_commands(struct ctl_call *call)
{
	if (call->json)
		buf_append_str(&call->body, "[");
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
		const struct ctl_command *c = &commands[i];
		if (!call->json) {
			command_usage(&call->body, c);
			continue;
		}
		buf_append_str(&call->body, i > 0 ? ",\n " : "");
		buf_append_str(&call->body, "{\"name\": ");
		json_str(&call->body, c->name);
		buf_append_str(&call->body, ", \"args\": ");
		json_str(&call->body, c->args);
		buf_append_str(&call->body, ", \"help\": ");
		json_str(&call->body, c->help);
		buf_printf(&call->body, ", \"offline\": %s, \"json\": %s}",
		           (c->flags & (CTL_F_OFFLINE | CTL_F_STOPPED)) ? "true" : "false",
		           (c->flags & CTL_F_JSON) ? "true" : "false");
	}
	if (call->json)
		buf_append_str(&call->body, "]\n");
	call_finish(call, CTL_OK, NULL);
}

struct ctl_call *ctl_run(struct ev_loop *loop, int argc, char **argv, ctl_done_fn *done, void *ctx)
{
	struct ctl_call *call = xcalloc(1, sizeof(*call));
	call->loop = loop;
	call->done = done;
	call->ctx = ctx;
	ev_timer_init(&call->defer, call_defer_cb, 0, 0);
	call->defer.data = call;
	if (argc > 0 && strcmp(argv[0], "--json") == 0) {
		call->json = true;
		argc--;
		argv++;
	}
	call->argc = argc;
	call->argv = xcalloc((size_t)argc + 1, sizeof(*call->argv));
	for (int i = 0; i < argc; i++)
		call->argv[i] = xstrdup(argv[i]);
	const struct ctl_command *c = argc > 0 ? command_find(argv[0]) : NULL;
	if (c == NULL) {
		call_finish(call, CTL_USAGE, "unknown command '%s' (try help)", argc > 0 ? argv[0] : "");
	} else if (argc - 1 < c->min_args || argc - 1 > c->max_args) {
		call_finish(call, CTL_USAGE, "usage: %s %s", c->name, c->args);
	} else if (call->json && !(c->flags & CTL_F_JSON)) {
		call_finish(call, CTL_USAGE, "%s has no JSON output", c->name);
	} else if (!(c->flags & (CTL_F_OFFLINE | CTL_F_STOPPED)) && !server.online) {
		call_finish(call, CTL_UNREACHABLE, "%s needs a running parleyd", c->name);
	} else if ((c->flags & CTL_F_STOPPED) && server.online) {
		call_finish(call, CTL_REFUSED, "%s works only while parleyd is stopped (parleyctl stop first)",
		            c->name);
	} else {
		c->run(call);
	}
	return call;
}

void ctl_call_cancel(struct ctl_call *call)
{
	if (call->req != NULL)
		auth_cancel(call->req);
	for (unsigned i = 0; i < CALL_MAX_SREQS; i++)
		if (call->sreqs[i] != NULL)
			storage_cancel(call->sreqs[i]);
	if (call->copy != NULL)
		call->copy->call = NULL;   /* the job finishes on its own and frees itself */
	if (call->srg != NULL)
		srg_admin_cancel(call->srg);
	if (call->db != NULL)
		ctl_db_cancel(call->db);
#ifdef HAVE_BACKEND_LDAP
	if (call->lreq != NULL)
		ldap_client_cancel(call->lreq);
#endif
	if (call->vprobe != NULL)
		vcard_ldap_probe_cancel(call->vprobe);
	call_free(call);
}

void ctl_shutdown(void)
{
	if (copy_group != NULL)
		worker_group_free(&copy_group);
	ctl_db_shutdown();
}

/* ---- the control socket ---------------------------------------------------------------- */

#define CTL_MAX_LINE 65536

struct ctl_conn {
	int fd;
	struct ev_loop *loop;
	ev_io rio, wio;
	struct buf in, out;
	struct ctl_call *call;
	bool closing;
	struct ctl_conn *next, *prev;
};

static int ctl_fd = -1;
static char *ctl_path;
static ev_io ctl_accept_w;
static struct ev_loop *ctl_loop;
static struct ctl_conn *conns;

static void conn_free(struct ctl_conn *c)
{
	if (c->call != NULL)
		ctl_call_cancel(c->call);
	ev_io_stop(c->loop, &c->rio);
	ev_io_stop(c->loop, &c->wio);
	close(c->fd);
	buf_free(&c->in);
	buf_free(&c->out);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	free(c);
}

static void conn_process(struct ctl_conn *c);

static void conn_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ctl_conn *c = w->data;
	while (c->out.len > 0) {
		ssize_t n = write(c->fd, c->out.data, c->out.len);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			conn_free(c);
			return;
		}
		buf_consume(&c->out, (size_t)n);
	}
	ev_io_stop(loop, &c->wio);
	if (c->closing) {
		conn_free(c);
		return;
	}
	conn_process(c);
}

static void conn_done(void *ctx, int code, const char *message, const char *body)
{
	struct ctl_conn *c = ctx;
	c->call = NULL;
	ctl_encode_response(&c->out, code, message, body);
	ev_io_start(c->loop, &c->wio);
}

/* Run the next complete request line, if any and none is running. */
static void conn_process(struct ctl_conn *c)
{
	if (c->call != NULL || c->out.len > 0)
		return;
	char *nl = c->in.data != NULL ? memchr(c->in.data, '\n', c->in.len) : NULL;
	if (nl == NULL) {
		ev_io_start(c->loop, &c->rio);
		return;
	}
	char **argv;
	int argc;
	size_t len = (size_t)(nl - c->in.data);
	if (ctl_decode_request(c->in.data, len, &argv, &argc) < 0) {
		buf_consume(&c->in, len + 1);
		conn_done(c, CTL_USAGE, "malformed request", "");
		return;
	}
	buf_consume(&c->in, len + 1);
	ev_io_stop(c->loop, &c->rio);
	log_debug("ctl: %s", argc > 0 ? argv[0] : "(empty)");
	c->call = ctl_run(c->loop, argc, argv, conn_done, c);
	ctl_free_argv(argv, argc);
}

static void conn_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ctl_conn *c = w->data;
	char buf[4096];
	ssize_t n = read(c->fd, buf, sizeof(buf));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		conn_free(c);
		return;
	}
	buf_append(&c->in, buf, (size_t)n);
	if (c->in.len > CTL_MAX_LINE && memchr(c->in.data, '\n', c->in.len) == NULL) {
		log_warning("ctl: request line too long; closing the control connection");
		conn_free(c);
		return;
	}
	conn_process(c);
}

static void ctl_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	int fd = accept4(ctl_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return;
	struct ctl_conn *c = xcalloc(1, sizeof(*c));
	c->fd = fd;
	c->loop = loop;
	ev_io_init(&c->rio, conn_read_cb, fd, EV_READ);
	ev_io_init(&c->wio, conn_write_cb, fd, EV_WRITE);
	c->rio.data = c->wio.data = c;
	c->next = conns;
	if (conns != NULL)
		conns->prev = c;
	conns = c;
	ev_io_start(loop, &c->rio);
}

int ctl_listen(struct ev_loop *loop, const struct parley_config *cfg, char **error_r)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	if (strlen(cfg->control_socket) >= sizeof(sun.sun_path)) {
		*error_r = xasprintf("control.socket: path too long: %s", cfg->control_socket);
		return -1;
	}
	strcpy(sun.sun_path, cfg->control_socket);
	/* A socket left by a crashed parleyd: remove it only if nobody answers. */
	int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (probe >= 0 && connect(probe, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
		close(probe);
		*error_r = xasprintf("control socket %s is in use: is another parleyd running?",
		                     cfg->control_socket);
		return -1;
	}
	if (probe >= 0)
		close(probe);
	unlink(cfg->control_socket);
	ctl_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	mode_t old = umask(0177);
	int r = ctl_fd < 0 ? -1 : bind(ctl_fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (r < 0 || listen(ctl_fd, 16) < 0) {
		*error_r = xasprintf("control socket %s: %s", cfg->control_socket, strerror(errno));
		if (ctl_fd >= 0)
			close(ctl_fd);
		ctl_fd = -1;
		return -1;
	}
	if (cfg->control_group != NULL) {
		struct group *g = getgrnam(cfg->control_group);
		if (g == NULL || chown(cfg->control_socket, (uid_t)-1, g->gr_gid) < 0)
			log_warning("control socket %s: cannot give it to group %s", cfg->control_socket,
			            cfg->control_group);
	}
	chmod(cfg->control_socket, cfg->control_mode != 0 ? cfg->control_mode : 0600);
	ctl_path = xstrdup(cfg->control_socket);
	ctl_loop = loop;
	ev_io_init(&ctl_accept_w, ctl_accept_cb, ctl_fd, EV_READ);
	ev_io_start(loop, &ctl_accept_w);
	return 0;
}

void ctl_chown(uid_t uid, gid_t gid)
{
	if (ctl_path != NULL && chown(ctl_path, uid, (gid_t)-1) < 0)
		log_warning("control socket %s: chown: %s", ctl_path, strerror(errno));
	(void)gid;
}

void ctl_stop_accepting(void)
{
	if (ctl_fd >= 0) {
		ev_io_stop(ctl_loop, &ctl_accept_w);
		close(ctl_fd);
		ctl_fd = -1;
	}
	if (ctl_path != NULL) {
		unlink(ctl_path);
		xfree(&ctl_path);
	}
}

void ctl_close(void)
{
	while (conns != NULL)
		conn_free(conns);
	if (ctl_fd >= 0) {
		ev_io_stop(ctl_loop, &ctl_accept_w);
		close(ctl_fd);
		ctl_fd = -1;
	}
	if (ctl_path != NULL) {
		unlink(ctl_path);
		xfree(&ctl_path);
	}
}
