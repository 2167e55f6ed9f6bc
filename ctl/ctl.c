/*
 * The command table and the dispatch of administrative commands.  Loop
 * thread.
 *
 * One table (commands[] below) lists every command parleyctl knows: its
 * arguments, flags and help line; the commands themselves live in the
 * cmd-*.c files, grouped by topic (ctl-private.h).  The same code serves
 * parleyd (requests on the control socket, ctl-socket.c) and parleyctl's
 * offline mode (which starts the hosts without listeners and runs the
 * command in-process), so register/unregister/passwd behave the same
 * either way.  A call's done callback always runs from the loop, never
 * inside ctl_run.
 *
 * A command runs with its call's barrier current (lib/barrier.h): work it
 * starts that must be durable before the answer (a message stored offline)
 * holds it, and the answer goes out once nothing does, so send-message and
 * send-stanza return only after such a message is committed.
 *
 * Invariant: a call is freed exactly once, after its answer went out
 * (call_defer_cb) or when it is cancelled (ctl_call_cancel); what it has
 * in flight (req, sreq, work) is cancelled then, so no callback reaches a
 * freed call.
 */
#include "ctl-private.h"
#include "lib/latency.h"
#include "server/server.h"
#include "server/host.h"
#include "lib/jid.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

struct ctl_command {
	const char *name;
	const char *args;
	int min_args, max_args; /* arguments after the name, on the wire */
	unsigned flags;         /* CTL_F_* of ctl.h */
	void (*run)(struct ctl_call *call);
	const char *help;
};

static void call_free(struct ctl_call *call)
{
	ev_timer_stop(call->loop, &call->defer);
	barrier_free(&call->barrier); /* what holds it goes on without the call */
	if (call->work != NULL)
		call->work_free(call->work);
	ctl_free_argv(call->argv, call->argc);
	free(call->user);
	free(call->message);
	buf_free(&call->body);
	free(call);
}

static void call_defer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	latency_begin(LATENCY_CONTROL, NULL);
	struct ctl_call *call = w->data;
	call->done(call->ctx, call->code, call->message, call->body.data != NULL ? call->body.data : "");
	call_free(call);
	latency_end();
}

/* Answer from the loop once finished and nothing holds the barrier. */
static void call_answer_when_ready(void *ctx)
{
	struct ctl_call *call = ctx;
	if (call->finished && !barrier_busy(call->barrier) && !ev_is_active(&call->defer)) {
		ev_timer_set(&call->defer, 0, 0);
		ev_timer_start(call->loop, &call->defer);
	}
}

void ctl_call_finish(struct ctl_call *call, int code, const char *fmt, ...)
{
	call->code = code;
	if (fmt != NULL) {
		va_list ap;
		va_start(ap, fmt);
		call->message = xvasprintf(fmt, ap);
		va_end(ap);
	}
	call->req = NULL;
	call->finished = true;
	call_answer_when_ready(call);
}

void ctl_call_finish_with(struct ctl_call *call, int code, const char *message, const char *body)
{
	buf_append_str(&call->body, body);
	if (message != NULL)
		ctl_call_finish(call, code, "%s", message);
	else
		ctl_call_finish(call, code, NULL);
}

struct host *ctl_call_host(struct ctl_call *call, int idx)
{
	char *domain = jid_nameprep(call->argv[idx]);
	struct host *h = domain != NULL ? host_find(domain) : NULL;
	free(domain);
	if (h == NULL)
		ctl_call_finish(call, CTL_FAILED, "host %s is not served here", call->argv[idx]);
	return h;
}

bool ctl_call_user_host(struct ctl_call *call, int uidx, int hidx)
{
	call->host = ctl_call_host(call, hidx);
	if (call->host == NULL)
		return false;
	call->user = jid_nodeprep(call->argv[uidx]);
	if (call->user == NULL || *call->user == '\0') {
		ctl_call_finish(call, CTL_FAILED, "'%s' is not a valid user name", call->argv[uidx]);
		return false;
	}
	return true;
}

bool ctl_call_user_at_host(struct ctl_call *call, int idx)
{
	const char *jid = call->argv[idx];
	const char *at = strrchr(jid, '@');
	if (at == NULL || at == jid || at[1] == '\0') {
		ctl_call_finish(call, CTL_USAGE, "expected USER@HOST, got '%s'", jid);
		return false;
	}
	char *domain = jid_nameprep(at + 1);
	call->host = domain != NULL ? host_find(domain) : NULL;
	free(domain);
	if (call->host == NULL) {
		ctl_call_finish(call, CTL_FAILED, "host %s is not served here", at + 1);
		return false;
	}
	char *node = xstrndup(jid, (size_t)(at - jid));
	call->user = jid_nodeprep(node);
	free(node);
	if (call->user == NULL || *call->user == '\0') {
		ctl_call_finish(call, CTL_FAILED, "'%s' has no valid user name", jid);
		return false;
	}
	return true;
}

int ctl_auth_code(enum auth_result r)
{
	return r == AUTH_TEMPFAIL ? CTL_TEMPFAIL : CTL_FAILED;
}

int ctl_storage_code(enum storage_result r)
{
	return r == STORAGE_TEMPFAIL ? CTL_TEMPFAIL : CTL_FAILED;
}

/* ---- JSON output -------------------------------------------------------------------- */

void ctl_json_str(struct buf *b, const char *s)
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

void ctl_json_strlist(struct buf *b, const struct strlist *l)
{
	buf_append_str(b, "[");
	for (size_t i = 0; i < l->count; i++) {
		if (i > 0)
			buf_append_str(b, ", ");
		ctl_json_str(b, l->items[i]);
	}
	buf_append_str(b, "]");
}

/* ---- the command table -------------------------------------------------------------- */

static void cmd_help(struct ctl_call *call);
static void cmd_list_commands(struct ctl_call *call);

static const struct ctl_command commands[] = {
	{ "status", "", 0, 0, CTL_F_READ, cmd_status,
	  "show whether parleyd runs, its uptime, hosts and sessions" },
	{ "latency", "[--reset]", 0, 1, CTL_F_HOSTS, cmd_latency,
	  "the event loop's busy time per iteration: histogram, time per callback class, worst "
	  "iterations and their cause (--reset: then start again from zero)" },
	{ "s2s-list", "", 0, 0, CTL_F_READ, cmd_s2s_list,
	  "the s2s streams, one a line, tab-separated: direction (in/out), remote domain, local "
	  "domain, TLS version, authentication (or the step an opening stream is at), since, queued "
	  "stanzas" },
	{ "s2s-close", "DOMAIN", 1, 1, CTL_F_HOSTS, cmd_s2s_close,
	  "close the s2s streams with a remote domain (what they queued bounces)" },
	{ "stop", "", 0, 0, 0, cmd_stop, "stop parleyd gracefully" },
	{ "restart", "", 0, 0, 0, cmd_restart,
	  "stop gracefully and start again in the same process (re-reads the configuration)" },
	{ "reload", "", 0, 0, CTL_F_HOSTS, cmd_reload,
	  "re-read the configuration file (adds and removes hosts)" },
	{ "register", "USER HOST PASSWORD", 3, 3, CTL_F_OFFLINE | CTL_F_USERS, cmd_register,
	  "create an account" },
	{ "unregister", "USER HOST", 2, 2, CTL_F_OFFLINE | CTL_F_USERS, cmd_unregister,
	  "remove an account and all its data" },
	{ "passwd", "USER HOST PASSWORD", 3, 3, CTL_F_OFFLINE | CTL_F_USERS, cmd_passwd,
	  "set an account's password" },
	{ "check-password", "USER HOST", 3, 3, CTL_F_OFFLINE | CTL_F_STDIN | CTL_F_USERS, cmd_check_password,
	  "check a password read from stdin: exit 0 right, 1 wrong or no such user" },
	{ "user-exists", "USER HOST", 2, 2, CTL_F_OFFLINE | CTL_F_READ, cmd_user_exists,
	  "exit 0 when the account exists, 1 when not" },
	{ "registered-users", "HOST [--match TEXT] [--after NAME] [--limit N]", 1, 7,
	  CTL_F_OFFLINE | CTL_F_JSON | CTL_F_READ, cmd_registered_users,
	  "list the accounts of a host, sorted (with --limit a page of N: after NAME, names containing "
	  "TEXT; the JSON answer's next is where the following page starts)" },
	{ "registered-users-count", "HOST", 1, 1, CTL_F_OFFLINE | CTL_F_READ, cmd_registered_users_count,
	  "how many accounts a host has (counted by the store, none listed)" },
	{ "get-roster", "USER@HOST", 1, 1, CTL_F_OFFLINE | CTL_F_JSON | CTL_F_READ, cmd_get_roster,
	  "an account's roster, one contact a line, tab-separated: JID, name, subscription, pending "
	  "request (out: asked them, in: they asked), groups" },
	{ "offline-list", "USER@HOST [--after SEQ] [--limit N]", 1, 5,
	  CTL_F_OFFLINE | CTL_F_JSON | CTL_F_READ, cmd_offline_list,
	  "the messages an account has waiting offline, oldest first, a page of N (100; at most 1000) "
	  "after sequence number SEQ: sequence number, time stored, stanza, then how many more (in "
	  "JSON also sender and body, and next: the SEQ of the following page)" },
	{ "offline-count", "USER@HOST", 1, 1, CTL_F_OFFLINE | CTL_F_READ, cmd_offline_count,
	  "how many messages an account has waiting offline" },
	{ "fast-list", "USER@HOST", 1, 1, CTL_F_OFFLINE | CTL_F_USERS, cmd_fast_list,
	  "list the FAST tokens (XEP-0484) of an account" },
	{ "fast-revoke", "USER@HOST [UA-ID]", 1, 2, CTL_F_OFFLINE | CTL_F_USERS, cmd_fast_revoke,
	  "revoke an account's FAST tokens (those of one client with UA-ID)" },
	{ "fast-purge", "HOST", 1, 1, CTL_F_OFFLINE | CTL_F_USERS, cmd_fast_purge,
	  "delete the expired FAST tokens of every account of a host" },
	{ "connected-users", "", 0, 0, CTL_F_JSON | CTL_F_READ, cmd_connected_users,
	  "list the full JIDs of connected sessions" },
	{ "srg-create", "HOST GROUP [--name N] [--description D] [--display G1,G2]", 2, 8,
	  CTL_F_OFFLINE | CTL_F_HOSTS, cmd_srg,
	  "create a shared roster group (displayed: whose members its members see; default itself)" },
	{ "srg-delete", "HOST GROUP", 2, 2, CTL_F_OFFLINE | CTL_F_HOSTS, cmd_srg,
	  "delete a shared roster group" },
	{ "srg-list", "HOST", 1, 1, CTL_F_OFFLINE | CTL_F_READ, cmd_srg,
	  "list the shared roster groups of a host" },
	{ "srg-info", "HOST GROUP", 2, 2, CTL_F_OFFLINE | CTL_F_READ, cmd_srg,
	  "show a shared roster group and its members" },
	{ "srg-user-add", "USER@HOST HOST GROUP", 3, 3, CTL_F_OFFLINE | CTL_F_HOSTS, cmd_srg,
	  "add a member (or @all@, @online@) to a shared roster group" },
	{ "srg-user-del", "USER@HOST HOST GROUP", 3, 3, CTL_F_OFFLINE | CTL_F_HOSTS, cmd_srg,
	  "remove a member from a shared roster group" },
	{ "muc-list", "HOST", 1, 1, CTL_F_JSON | CTL_F_READ, cmd_muc_list,
	  "list the rooms of the MUC services of a host: JID, occupants, persistent or temporary, "
	  "public or hidden, name" },
	{ "muc-info", "ROOMJID", 1, 1, CTL_F_JSON | CTL_F_READ, cmd_muc_info,
	  "show a room: its configuration, subject, creation time, affiliations and occupants" },
	{ "muc-create", "ROOMJID [OWNERJID]", 1, 2, CTL_F_HOSTS, cmd_muc_create,
	  "create a persistent room with the service's defaults (without an owner only the service's "
	  "admins manage it); answers once stored" },
	{ "muc-destroy", "ROOMJID [REASON]", 1, 2, CTL_F_HOSTS, cmd_muc_destroy,
	  "destroy a room: its occupants are told (with the reason) and it is removed from the store" },
	{ "muc-set-affiliation", "ROOMJID JID owner|admin|member|outcast|none [REASON]", 3, 4, CTL_F_HOSTS,
	  cmd_muc_set_affiliation,
	  "set the affiliation of a bare JID or domain with a room (none removes it); occupants get "
	  "their new roles; answers once stored" },
	{ "pubsub-list", "HOST|SERVICE|USER@HOST", 1, 1, CTL_F_JSON | CTL_F_READ, cmd_pubsub_list,
	  "list the nodes of a pubsub service (of a host: its first service) or of an account's PEP: "
	  "name, access model, items, subscriptions, owners" },
	{ "pubsub-info", "SERVICE|USER@HOST NODE", 2, 2, CTL_F_JSON | CTL_F_READ, cmd_pubsub_info,
	  "show a node: its configuration, affiliations, subscriptions (JID, subid, state) and items "
	  "(id, publisher, time, payload size)" },
	{ "pubsub-delete", "SERVICE|USER@HOST NODE", 2, 2, CTL_F_HOSTS, cmd_pubsub_delete,
	  "delete a node: its subscribers are notified as for its owner's delete; answers once stored" },
	{ "pubsub-purge", "SERVICE|USER@HOST NODE", 2, 2, CTL_F_HOSTS, cmd_pubsub_purge,
	  "remove every item of a node (subscribers get a purge notification); answers once stored" },
	{ "upload-list", "USER HOST", 2, 2, CTL_F_JSON | CTL_F_READ, cmd_upload_list,
	  "list the files an account has stored with HTTP file upload (XEP-0363): time stored, size, "
	  "content type, file name, URL" },
	{ "upload-purge", "USER HOST", 2, 2, CTL_F_USERS, cmd_upload_purge,
	  "delete every file an account has stored with HTTP file upload; answers once deleted" },
	{ "mam-purge", "USER@HOST|ROOMJID", 1, 1, CTL_F_USERS, cmd_mam_purge,
	  "remove every archived message (XEP-0313) of an account or a room; answers once stored" },
	{ "auth-test", "USER@HOST", 2, 2, CTL_F_STDIN | CTL_F_USERS, cmd_auth_test,
	  "check a password read from stdin through the host's auth chain, backend by backend" },
	{ "ldap-test", "USER@HOST", 1, 1, CTL_F_JSON | CTL_F_READ, cmd_ldap_test,
	  "show the directory searches of a user (login, vCard) and what they find, and the "
	  "user's shared roster groups; no password" },
	{ "connected-users-info", "", 0, 0, CTL_F_JSON | CTL_F_READ, cmd_connected_users_info,
	  "list sessions: JID, IP, port, TLS, priority, connected since, resource" },
	{ "components", "", 0, 0, CTL_F_JSON | CTL_F_READ, cmd_components,
	  "list the external components (XEP-0114): domain, peer address and port, connected since, "
	  "stanzas in and out; those configured but not connected too" },
	{ "kick-session", "JID [REASON]", 1, 2, CTL_F_USERS, cmd_kick_session,
	  "close a session (full JID) or every session of a user (bare JID) with a stream error" },
	{ "send-message", "FROM TO BODY", 3, 3, CTL_F_HOSTS, cmd_send_message, "send a normal message" },
	{ "send-stanza", "FROM TO XML", 3, 3, CTL_F_HOSTS, cmd_send_stanza,
	  "send a message, presence or iq given as XML (from and to are set from FROM and TO)" },
	{ "announce", "HOST --online|--all TEXT", 3, 3, CTL_F_HOSTS, cmd_announce,
	  "send a headline message from HOST to its online users, or to all its users (stored "
	  "for those offline; answers once stored)" },
	{ "motd", "HOST [TEXT|--delete]", 1, 2, CTL_F_HOSTS, cmd_motd,
	  "show, set or delete the message of the day (sent to users when they log in)" },
	{ "stats", "", 0, 0, CTL_F_JSON | CTL_F_READ, cmd_stats,
	  "users online and registered per host, uptime, stanza counters, memory" },
	{ "backup", "FILE [HOST]", 1, 2, CTL_F_OFFLINE | CTL_F_PATH, cmd_backup,
	  "copy the SQLite store to FILE (online, consistent)" },
	{ "restore", "FILE [HOST]", 1, 2, CTL_F_STOPPED | CTL_F_PATH, cmd_restore,
	  "replace the SQLite store with a backup (only while parleyd is stopped)" },
	{ "config-check", "FILE", 1, 1, CTL_F_LOCAL | CTL_F_NOHOSTS | CTL_F_OFFLINE, cmd_config_check,
	  "check a configuration file: prints ok, or file:line:column: key and the reason (exit 1)" },
	{ "config-dump", "[HOST]", 0, 1, CTL_F_OFFLINE | CTL_F_NOHOSTS, cmd_config_dump,
	  "the effective configuration (of one host) after defaults and overrides; of the running server "
	  "when it runs" },
	{ "export-xep0227", "[--host HOST] [--for parley|ejabberd|prosody] FILE|DIR", 1, 5, CTL_F_STOPPED,
	  cmd_export_xep0227,
	  "write users and their data as XEP-0227 (one file, or DIR/HOST.xml per host; for Prosody "
	  "DIR/USER@HOST.xml per user)" },
	{ "import-xep0227", "FILE|DIR", 1, 1, CTL_F_STOPPED, cmd_import_xep0227,
	  "read users and their data from XEP-0227 files, ejabberd's and Prosody's too "
	  "(existing accounts are skipped; exit 1 if any user or file failed)" },
	{ "import-prosody-sql",
	  "[--host HOST] [--password-file FILE] sqlite FILE | pgsql CONNINFO | mysql CONNINFO", 2, 6,
	  CTL_F_STOPPED, cmd_import_prosody_sql,
	  "read users and their data from a Prosody SQL store (read-only; existing accounts are skipped; "
	  "exit 1 if any user failed)" },
	{ "import-ejabberd-sql", "--dsn pgsql:CONNINFO|mysql:CONNINFO [--password-file FILE] [--host HOST]",
	  2, 6, CTL_F_STOPPED, cmd_import_ejabberd_sql,
	  "read users and their data straight from an ejabberd SQL database, read-only "
	  "(existing accounts are skipped; counts per kind; exit 1 if any user failed)" },
	{ "rename-domain", "OLD NEW", 2, 2, CTL_F_STOPPED, cmd_rename_domain,
	  "move every user of host OLD to host NEW and rewrite JIDs at OLD everywhere" },
	{ "db", "status [HOST] | migrate [--dsn CONNINFO] [HOST] | print-schema [DRIVER|HOST]", 1, 4,
	  CTL_F_OFFLINE | CTL_F_NOHOSTS, cmd_db,
	  "database schema of the stores: status (driver, connection, version found and expected, "
	  "live state), migrate (apply the missing migrations), print-schema (the dialect's schema file)" },
	{ "api-token-create", "NAME read-only|users|hosts|all", 2, 2, CTL_F_OFFLINE | CTL_F_NOHOSTS,
	  cmd_api_token_create,
	  "create a bearer token of the HTTP admin API with a scope; prints it (only this once: the "
	  "server keeps its SHA-256 hash)" },
	{ "api-token-list", "", 0, 0, CTL_F_OFFLINE | CTL_F_NOHOSTS | CTL_F_JSON | CTL_F_READ,
	  cmd_api_token_list, "list the HTTP admin API's tokens: name, scope, creation time" },
	{ "api-token-revoke", "NAME", 1, 1, CTL_F_OFFLINE | CTL_F_NOHOSTS, cmd_api_token_revoke,
	  "revoke an HTTP admin API token (at once when parleyd runs the command)" },
	{ "api-openapi", "", 0, 0, CTL_F_LOCAL | CTL_F_OFFLINE | CTL_F_NOHOSTS, cmd_api_openapi,
	  "print the OpenAPI 3 description of the HTTP admin API, made from this command table "
	  "(doc/openapi.json)" },
	{ "list-commands", "", 0, 0, CTL_F_LOCAL | CTL_F_OFFLINE | CTL_F_JSON | CTL_F_NOHOSTS,
	  cmd_list_commands, "list the commands" },
	{ "help", "[COMMAND]", 0, 1, CTL_F_LOCAL | CTL_F_OFFLINE | CTL_F_NOHOSTS, cmd_help,
	  "describe one command, or all" },
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

bool ctl_command_get(size_t i, struct ctl_command_info *info_r)
{
	if (i >= ARRAY_SIZE(commands))
		return false;
	const struct ctl_command *c = &commands[i];
	*info_r = (struct ctl_command_info){ .name = c->name,
		                             .args = c->args,
		                             .help = c->help,
		                             .min_args = c->min_args,
		                             .max_args = c->max_args,
		                             .flags = c->flags };
	return true;
}

bool ctl_command_find(const char *name, struct ctl_command_info *info_r)
{
	const struct ctl_command *c = command_find(name);
	return c != NULL && ctl_command_get((size_t)(c - commands), info_r);
}

bool ctl_command_in_api(unsigned flags)
{
	return (flags & (CTL_F_LOCAL | CTL_F_STOPPED)) == 0;
}

static const char *const scope_names[] = { "read-only", "users", "hosts", "all" };

const char *ctl_scope_name(enum ctl_scope sc)
{
	return (unsigned)sc < ARRAY_SIZE(scope_names) ? scope_names[sc] : "?";
}

int ctl_scope_parse(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(scope_names); i++)
		if (strcmp(scope_names[i], name) == 0)
			return (int)i;
	return -1;
}

enum ctl_scope ctl_flags_scope(unsigned flags)
{
	if (flags & CTL_F_READ)
		return CTL_SCOPE_READ;
	if (flags & CTL_F_USERS)
		return CTL_SCOPE_USERS;
	if (flags & CTL_F_HOSTS)
		return CTL_SCOPE_HOSTS;
	return CTL_SCOPE_ALL;
}

bool ctl_scope_allows(enum ctl_scope sc, unsigned flags)
{
	enum ctl_scope need = ctl_flags_scope(flags);
	return sc == CTL_SCOPE_ALL || need == CTL_SCOPE_READ || need == sc;
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
		ctl_call_finish(call, CTL_OK, NULL);
		return;
	}
	const struct ctl_command *c = command_find(call->argv[1]);
	if (c == NULL) {
		ctl_call_finish(call, CTL_USAGE, "unknown command '%s' (try list-commands)", call->argv[1]);
		return;
	}
	buf_printf(&call->body, "usage: parleyctl %s%s%s%s\n  %s\n",
	           (c->flags & CTL_F_JSON) ? "[--json] " : "", c->name, c->args[0] != '\0' ? " " : "",
	           c->args, c->help);
	if (c->flags & CTL_F_STDIN)
		buf_append_str(&call->body, "  the password is read from the first line of stdin\n");
	if (c->flags & CTL_F_STOPPED)
		buf_append_str(&call->body, "  runs only while parleyd is stopped\n");
	else if (c->flags & CTL_F_OFFLINE)
		buf_append_str(&call->body, "  works with parleyd running or stopped\n");
	else
		buf_append_str(&call->body, "  needs a running parleyd\n");
	ctl_call_finish(call, CTL_OK, NULL);
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
		ctl_json_str(&call->body, c->name);
		buf_append_str(&call->body, ", \"args\": ");
		ctl_json_str(&call->body, c->args);
		buf_append_str(&call->body, ", \"help\": ");
		ctl_json_str(&call->body, c->help);
		buf_printf(&call->body, ", \"offline\": %s, \"json\": %s, \"api_scope\": ",
		           (c->flags & (CTL_F_OFFLINE | CTL_F_STOPPED)) ? "true" : "false",
		           (c->flags & CTL_F_JSON) ? "true" : "false");
		if (ctl_command_in_api(c->flags))
			ctl_json_str(&call->body, ctl_scope_name(ctl_flags_scope(c->flags)));
		else
			buf_append_str(&call->body, "null");
		buf_append_str(&call->body, "}");
	}
	if (call->json)
		buf_append_str(&call->body, "]\n");
	ctl_call_finish(call, CTL_OK, NULL);
}

struct ctl_call *ctl_run(struct ev_loop *loop, int argc, char **argv, ctl_done_fn *done, void *ctx)
{
	struct ctl_call *call = xcalloc(1, sizeof(*call));
	call->loop = loop;
	call->done = done;
	call->ctx = ctx;
	ev_timer_init(&call->defer, call_defer_cb, 0, 0);
	call->defer.data = call;
	call->barrier = barrier_new(call_answer_when_ready, call);
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
		ctl_call_finish(call, CTL_USAGE, "unknown command '%s' (try help)", argc > 0 ? argv[0] : "");
	} else if (argc - 1 < c->min_args || argc - 1 > c->max_args) {
		ctl_call_finish(call, CTL_USAGE, "usage: %s %s", c->name, c->args);
	} else if (call->json && !(c->flags & CTL_F_JSON)) {
		ctl_call_finish(call, CTL_USAGE, "%s has no JSON output", c->name);
	} else if (!(c->flags & (CTL_F_OFFLINE | CTL_F_STOPPED)) && !server.online) {
		ctl_call_finish(call, CTL_UNREACHABLE, "%s needs a running parleyd", c->name);
	} else if ((c->flags & CTL_F_STOPPED) && server.online) {
		ctl_call_finish(call, CTL_REFUSED,
		                "%s works only while parleyd is stopped (parleyctl stop first)", c->name);
	} else {
		struct barrier *outer = barrier_enter(call->barrier);
		c->run(call);
		barrier_leave(outer);
	}
	return call;
}

void ctl_call_cancel(struct ctl_call *call)
{
	if (call->req != NULL)
		auth_cancel(call->req);
	if (call->sreq != NULL)
		storage_cancel(call->sreq);
	call_free(call);
}

void ctl_shutdown(void)
{
	cmd_data_shutdown();
}
