/*
 * What the command files of ctl/ share: a call in progress, the helpers
 * every command uses to read its arguments and to answer, and the run
 * function of each command.  The command table in ctl.c is the one place
 * that lists the commands; the cmd-*.c files hold them, grouped by topic.
 * Loop thread.
 *
 * A run function gets a call whose argument count the table has checked.
 * It answers exactly once, at once or later (from a storage, auth or
 * worker callback), with ctl_call_finish; the answer reaches the caller
 * from the loop, never inside ctl_run.  Work in flight is kept in the call
 * so that a cancelled call (the control connection went away) stops it:
 * req and sreq are cancelled by ctl_call_cancel; anything else a command
 * keeps goes in work, which work_free cancels and frees.
 */
#ifndef PARLEY_CTL_PRIVATE_H
#define PARLEY_CTL_PRIVATE_H

#include "ctl.h"
#include "auth/auth.h"
#include "storage/storage.h"
#include "lib/barrier.h"

struct host;

struct ctl_call {
	struct ev_loop *loop;
	int argc;
	char **argv;
	bool json; /* --json: listing commands answer in JSON */
	ctl_done_fn *done;
	void *ctx;
	struct host *host;        /* set by ctl_call_host and the user helpers */
	char *user;               /* set by the user helpers (prepared local part) */
	struct auth_req *req;     /* an auth call in flight */
	struct storage_req *sreq; /* a storage call in flight */
	/* A command's own state: work_free(work) runs when the call ends (after
	 * done) or is cancelled; it cancels what is still in flight and frees
	 * work.  A command that finished its work sets work to NULL itself. */
	void *work;
	void (*work_free)(void *work);
	int code;
	char *message;
	struct buf body; /* the output */
	ev_timer defer;
	/* Current while the command runs: what it routes and must be durable
	 * first (a message stored offline) holds it, and the answer waits. */
	struct barrier *barrier;
	bool finished; /* ctl_call_finish was called */
};

/* Answer the call: code (enum ctl_code), a message for failures (fmt may
 * be NULL), the output gathered in call->body.  The caller hears it from
 * the loop, once the work the command started that holds its barrier is
 * done (send-message to a user who is away returns after the commit). */
void ctl_call_finish(struct ctl_call *call, int code, const char *fmt, ...) ATTR_PRINTF(3, 4);
/* The same with the outcome a command run elsewhere reported (ctl-db.c,
 * mod_shared_roster): body is appended to the output; message NULL on
 * success. */
void ctl_call_finish_with(struct ctl_call *call, int code, const char *message, const char *body);

/* The served host named argv[idx], or NULL (the call is then finished). */
struct host *ctl_call_host(struct ctl_call *call, int idx);
/* argv[hidx] as a served host and argv[uidx] as a local part, into
 * call->host and call->user; false when the call was finished instead. */
bool ctl_call_user_host(struct ctl_call *call, int uidx, int hidx);
/* argv[idx], USER@HOST, into call->host and call->user; false when the
 * call was finished instead. */
bool ctl_call_user_at_host(struct ctl_call *call, int idx);

/* Exit codes of results: a temporary failure is CTL_TEMPFAIL, the rest
 * CTL_FAILED. */
int ctl_auth_code(enum auth_result r);
int ctl_storage_code(enum storage_result r);

/* JSON output: a string with its escapes, a list of strings. */
void ctl_json_str(struct buf *b, const char *s);
void ctl_json_strlist(struct buf *b, const struct strlist *l);

/* ---- the commands (the table is in ctl.c) -------------------------------- */

/* cmd-accounts.c */
void cmd_register(struct ctl_call *call);
void cmd_unregister(struct ctl_call *call);
void cmd_passwd(struct ctl_call *call);
void cmd_check_password(struct ctl_call *call);
void cmd_user_exists(struct ctl_call *call);
void cmd_registered_users(struct ctl_call *call);
void cmd_registered_users_count(struct ctl_call *call);
void cmd_fast_list(struct ctl_call *call);
void cmd_fast_revoke(struct ctl_call *call);
void cmd_fast_purge(struct ctl_call *call);
void cmd_auth_test(struct ctl_call *call);

/* cmd-userdata.c: what the store keeps for an account */
void cmd_get_roster(struct ctl_call *call);
void cmd_offline_list(struct ctl_call *call);
void cmd_offline_count(struct ctl_call *call);

/* cmd-sessions.c */
void cmd_connected_users(struct ctl_call *call);
void cmd_connected_users_info(struct ctl_call *call);
void cmd_kick_session(struct ctl_call *call);
void cmd_send_message(struct ctl_call *call);
void cmd_send_stanza(struct ctl_call *call);

/* cmd-announce.c */
void cmd_announce(struct ctl_call *call);
void cmd_motd(struct ctl_call *call);

/* cmd-s2s.c: federation */
void cmd_s2s_list(struct ctl_call *call);
void cmd_s2s_close(struct ctl_call *call);
/* The s2s counters, as a status/stats line or a JSON member. */
void cmd_s2s_status(struct buf *b, bool json);

/* cmd-server.c */
void cmd_status(struct ctl_call *call);
void cmd_latency(struct ctl_call *call);
void cmd_stats(struct ctl_call *call);
void cmd_stop(struct ctl_call *call);
void cmd_restart(struct ctl_call *call);
void cmd_reload(struct ctl_call *call);
void cmd_config_check(struct ctl_call *call);
void cmd_config_dump(struct ctl_call *call);

/* cmd-data.c */
void cmd_backup(struct ctl_call *call);
void cmd_restore(struct ctl_call *call);
void cmd_db(struct ctl_call *call);
void cmd_export_xep0227(struct ctl_call *call);
void cmd_import_xep0227(struct ctl_call *call);
void cmd_import_prosody_sql(struct ctl_call *call);
void cmd_import_ejabberd_sql(struct ctl_call *call);
void cmd_rename_domain(struct ctl_call *call);
/* Stop the worker groups of backup, restore and db (at exit). */
void cmd_data_shutdown(void);

/* cmd-components.c */
void cmd_components(struct ctl_call *call);

/* cmd-srg.c */
void cmd_srg(struct ctl_call *call);

/* cmd-ldap.c */
void cmd_ldap_test(struct ctl_call *call);

/* cmd-muc.c */
void cmd_muc_list(struct ctl_call *call);
void cmd_muc_info(struct ctl_call *call);
void cmd_muc_create(struct ctl_call *call);
void cmd_muc_destroy(struct ctl_call *call);
void cmd_muc_set_affiliation(struct ctl_call *call);

/* cmd-pubsub.c */
void cmd_pubsub_list(struct ctl_call *call);
void cmd_pubsub_info(struct ctl_call *call);
void cmd_pubsub_delete(struct ctl_call *call);
void cmd_pubsub_purge(struct ctl_call *call);
void cmd_mam_purge(struct ctl_call *call);
void cmd_upload_list(struct ctl_call *call);
void cmd_upload_purge(struct ctl_call *call);

/* cmd-api.c */
void cmd_api_token_create(struct ctl_call *call);
void cmd_api_token_list(struct ctl_call *call);
void cmd_api_token_revoke(struct ctl_call *call);
void cmd_api_openapi(struct ctl_call *call);

#endif
