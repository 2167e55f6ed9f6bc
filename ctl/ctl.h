/*
 * Administrative commands (parleyctl's), run inside parleyd for requests on
 * the control socket, or inside parleyctl itself (offline mode) for the data
 * commands when parleyd is not running.  The command table and dispatch are
 * in ctl.c, the commands in cmd-*.c (ctl-private.h), the socket in
 * ctl-socket.c.  Loop thread.
 */
#ifndef PARLEY_CTL_H
#define PARLEY_CTL_H

#include <ev.h>
#include <sys/types.h>
#include "server/config.h"
#include "ctl-proto.h"

/* Called once with the outcome (code as in enum ctl_code); body may be "". */
typedef void ctl_done_fn(void *ctx, int code, const char *message, const char *body);

struct ctl_call;
/* Run argv[0] with its arguments (argv[0] may be "--json", then the command
 * follows and answers in JSON).  done runs later on the loop (never inside
 * this call).  Returns a handle for ctl_call_cancel. */
struct ctl_call *ctl_run(struct ev_loop *loop, int argc, char **argv, ctl_done_fn *done, void *ctx);
/* done will not run. */
void ctl_call_cancel(struct ctl_call *call);

/* Command flags. */
#define CTL_F_OFFLINE 0x01 /* works without a running parleyd (run inside parleyctl) */
#define CTL_F_JSON 0x02    /* has --json output */
#define CTL_F_STDIN 0x04   /* parleyctl reads the last argument (a password) from stdin */
#define CTL_F_PATH 0x08    /* the first argument is a file: parleyctl makes it absolute */
#define CTL_F_STOPPED 0x10 /* runs only while parleyd is stopped (inside parleyctl) */
#define CTL_F_NOHOSTS 0x20 /* offline, it needs no started hosts */
#define CTL_F_LOCAL 0x40   /* always run inside parleyctl, without reading its -c file */
/* The scope an HTTP API token needs to run a command (ctl/http-api.c): a
 * command with none of these marks needs the "all" scope. */
#define CTL_F_READ 0x80   /* reads only: any token (read-only, users, hosts, all) */
#define CTL_F_USERS 0x100 /* accounts and sessions: tokens of scope users or all */
#define CTL_F_HOSTS 0x200 /* a host's services and settings: tokens of scope hosts or all */

/* The API scopes, from least to most. */
enum ctl_scope { CTL_SCOPE_READ, CTL_SCOPE_USERS, CTL_SCOPE_HOSTS, CTL_SCOPE_ALL };
/* "read-only", "users", "hosts", "all"; ctl_scope_parse: -1 when unknown. */
const char *ctl_scope_name(enum ctl_scope s);
int ctl_scope_parse(const char *name);
/* The scope a command with these flags needs. */
enum ctl_scope ctl_flags_scope(unsigned flags);
/* Whether a token of scope s may run a command with these flags. */
bool ctl_scope_allows(enum ctl_scope s, unsigned flags);

/* A command of the table, for the HTTP API and its OpenAPI document. */
struct ctl_command_info {
	const char *name, *args, *help;
	int min_args, max_args;
	unsigned flags;
};
/* The i-th command of the table (in table order); false past the end. */
bool ctl_command_get(size_t i, struct ctl_command_info *info_r);
/* The command named name; false when there is none. */
bool ctl_command_find(const char *name, struct ctl_command_info *info_r);
/* Whether the HTTP API serves the command: it runs inside parleyd (not
 * CTL_F_LOCAL, not CTL_F_STOPPED). */
bool ctl_command_in_api(unsigned flags);

/* Whether a command works without a running parleyd. */
bool ctl_command_offline(const char *name);
/* The flags of a command; false for an unknown name. */
bool ctl_command_flags(const char *name, unsigned *flags_r);
/* Free what commands keep between calls (the backup worker); at exit. */
void ctl_shutdown(void);
/* Usage text of every command (for help). */
void ctl_help(struct buf *out);

/* ---- the control socket of parleyd (ctl-socket.c) ---- */

/* Open it (path, mode and group from the config). */
int ctl_listen(struct ev_loop *loop, const struct parley_config *cfg, char **error_r);
/* Give the socket file to the user parleyd drops privileges to. */
void ctl_chown(uid_t uid, gid_t gid);
/* Stop taking new control connections and remove the socket file (at the
 * start of a stop); requests already read are still answered. */
void ctl_stop_accepting(void);
void ctl_close(void);

#endif
