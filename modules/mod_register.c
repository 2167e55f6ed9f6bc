/*
 * mod_register: XEP-0077 in-band registration.  Loop thread.
 *
 * Before authentication (IQ_SCOPE_PREAUTH) a client may ask for the form
 * and create an account, when registration is open.  After authentication
 * (to the user's own account, IQ_SCOPE_USER, or to the server JID,
 * IQ_SCOPE_SERVER, as XEP-0077 examples do) a user may see that it is
 * registered, change its password and remove its account.
 *
 * Invariants:
 * - Every auth call runs through a struct register_op on the module's
 *   pending list (pending.h); stopping the module cancels them and answers
 *   their requests.  A removal is the exception: the client was answered
 *   and its sessions were kicked before the account goes, so its op
 *   outlives a stop (outlives_stop) and the removal, its log line,
 *   HOOK_REMOVE_USER and the word to the contacts (presence_wait_end)
 *   finish without the module state.  (A module stops
 *   when its host is removed or parleyd stops; the host's auth chain then
 *   answers what is still in flight with a temporary failure, which is
 *   logged as an account not removed.)
 * - Throttling: one successful registration per remote address within
 *   `throttle` seconds.  An address with a registration in flight is busy
 *   too, so parallel attempts cannot slip through.  The table expires
 *   entries as it is used and never holds more than THROTTLE_MAX entries.
 * - Passwords are never logged and never copied out of the request.
 */
#include "builtin.h"
#include "errmap.h"
#include "pending.h"
#include "server/host.h"
#include "server/sm.h"
#include "lib/i18n.h"
#include "lib/log.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define THROTTLE_MAX 4096

struct register_settings {
	bool open;
	unsigned min_password_length;
	double throttle;
};

static const struct opt_def register_options[] = {
	{ "open", OPT_BOOL, offsetof(struct register_settings, open), "false", NULL, 0, 0,
	  "let anyone create an account before logging in" },
	{ "min_password_length", OPT_UINT, offsetof(struct register_settings, min_password_length), "1", NULL,
	  0, 1024, "shortest password accepted, in characters" },
	{ "throttle", OPT_DURATION, offsetof(struct register_settings, throttle), "600", NULL, 0, 0,
	  "one registration per IP address within this time (0: no limit)" },
	OPT_END
};

struct throttle_entry {
	char *ip;
	double at;    /* monotonic seconds of the registration */
	bool pending; /* a registration from ip is in flight */
	struct throttle_entry *next;
};

enum register_op_kind { OP_CREATE, OP_PASSWORD, OP_REMOVE };

struct register_state;

struct register_op {
	struct pending_op p;       /* first: the state's list of ops; p.req the request */
	struct register_state *rs; /* valid while p is listed */
	struct host *host;
	enum register_op_kind kind;
	char *user;
	char *ip;                   /* OP_CREATE: the remote address, or NULL */
	struct presence_wait *wait; /* OP_REMOVE: mod_presence's side of it, or NULL */
};

struct register_state {
	struct host *host;
	const struct register_settings *set;
	struct throttle_entry *throttle; /* newest first */
	unsigned nthrottle;
	struct pending_ops ops;
};

static const char instructions[] = N_("Choose a username and password to register with this server.");

/* ---- throttle ------------------------------------------------------------ */

static double now_monotonic(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void throttle_entry_free(struct throttle_entry *e)
{
	free(e->ip);
	free(e);
}

/* Drop expired entries and, beyond THROTTLE_MAX, the oldest ones. */
static void throttle_expire(struct register_state *rs, double now)
{
	unsigned kept = 0;
	struct throttle_entry **pp = &rs->throttle;
	while (*pp != NULL) {
		struct throttle_entry *e = *pp;
		bool expired = !e->pending && (now - e->at >= rs->set->throttle || kept >= THROTTLE_MAX);
		if (expired) {
			*pp = e->next;
			throttle_entry_free(e);
			rs->nthrottle--;
		} else {
			kept++;
			pp = &e->next;
		}
	}
}

static struct throttle_entry *throttle_find(struct register_state *rs, const char *ip)
{
	for (struct throttle_entry *e = rs->throttle; e != NULL; e = e->next)
		if (strcmp(e->ip, ip) == 0)
			return e;
	return NULL;
}

/* May ip register now?  If so it is marked busy until throttle_done. */
static bool throttle_begin(struct register_state *rs, const char *ip)
{
	if (rs->set->throttle <= 0 || ip == NULL)
		return true;
	double now = now_monotonic();
	throttle_expire(rs, now);
	if (throttle_find(rs, ip) != NULL)
		return false;
	struct throttle_entry *e = xcalloc(1, sizeof(*e));
	e->ip = xstrdup(ip);
	e->at = now;
	e->pending = true;
	e->next = rs->throttle;
	rs->throttle = e;
	rs->nthrottle++;
	return true;
}

/* The registration from ip finished: keep it counted on success only. */
static void throttle_done(struct register_state *rs, const char *ip, bool success)
{
	if (rs->set->throttle <= 0 || ip == NULL)
		return;
	for (struct throttle_entry **pp = &rs->throttle; *pp != NULL; pp = &(*pp)->next) {
		struct throttle_entry *e = *pp;
		if (strcmp(e->ip, ip) != 0)
			continue;
		if (success) {
			e->pending = false;
			e->at = now_monotonic();
		} else {
			*pp = e->next;
			throttle_entry_free(e);
			rs->nthrottle--;
		}
		return;
	}
}

/* ---- ops ----------------------------------------------------------------- */

static void op_free(struct pending_op *p)
{
	struct register_op *op = (struct register_op *)p;
	pending_untrack(p);
	free(op->user);
	free(op->ip);
	free(op);
}

static struct register_op *op_new(struct register_state *rs, struct iq_request *req,
                                  enum register_op_kind kind, const char *user)
{
	struct register_op *op = xcalloc(1, sizeof(*op));
	op->rs = rs;
	op->host = rs->host;
	op->p.req = req;
	op->kind = kind;
	op->user = xstrdup(user);
	pending_track(&rs->ops, &op->p, op_free);
	return op;
}

/* Answer a failed auth call (errmap.h; what: the text of
 * <not-allowed/>); true when it was a failure. */
static bool answer_auth_failure(struct iq_request *req, enum auth_result res, const char *what)
{
	if (res == AUTH_OK)
		return false;
	if (res == AUTH_EXISTS)
		iq_error(req, errmap_auth(res), "this username is taken");
	else if (res == AUTH_NOT_SUPPORTED)
		iq_error(req, errmap_auth(res), what);
	else
		errmap_iq_auth(req, res, "the account service");
	return true;
}

static void op_done(enum auth_result res, void *ctx)
{
	struct register_op *op = ctx;
	if (!pending_resume(&op->p))
		return;
	struct register_state *rs = op->rs; /* not for OP_REMOVE: it outlives a stop */
	struct host *h = op->host;
	struct iq_request *req = op->p.req;
	switch (op->kind) {
	case OP_CREATE: {
		throttle_done(rs, op->ip, res == AUTH_OK);
		if (answer_auth_failure(req, res, "the account backend cannot create accounts"))
			break;
		log_info("host %s: account %s registered in-band%s%s", h->name, op->user,
		         op->ip != NULL ? " from " : "", op->ip != NULL ? op->ip : "");
		struct hook_user hu = { .user = op->user };
		hook_run(h, HOOK_REGISTER_USER, &hu);
		iq_result(req, NULL);
		break;
	}
	case OP_PASSWORD:
		if (answer_auth_failure(req, res, "the account backend cannot change passwords"))
			break;
		log_info("host %s: user %s changed their password", h->name, op->user);
		iq_result(req, NULL);
		break;
	case OP_REMOVE: {
		/* answered and kicked already (register_account); the module
		 * may have stopped since */
		if (res != AUTH_OK) {
			log_warning("host %s: the account of %s was not removed, or not known to be: %s",
			            h->name, op->user, auth_result_str(res));
			presence_wait_end(op->wait, false);
			break;
		}
		log_info("host %s: user %s removed their account", h->name, op->user);
		struct hook_user hu = { .user = op->user };
		hook_run(h, HOOK_REMOVE_USER, &hu);
		/* a login in the meantime (the account still existed) */
		sm_kick_user(h, op->user, STE_NOT_AUTHORIZED, "account removed");
		/* and the contacts are told */
		presence_wait_end(op->wait, true);
		break;
	}
	}
	op_free(&op->p);
}

/* OP_REMOVE: the presence of the user's closed sessions has been
 * broadcast; the account goes, also when the module stopped meanwhile. */
static void remove_settled(void *ctx)
{
	struct register_op *op = ctx;
	pending_resume(&op->p); /* true: the op outlives a stop */
	pending_wait_auth(&op->p, auth_remove_user(op->host->auth, op->user, op_done, op));
}

/* ---- validation ---------------------------------------------------------- */

static size_t utf8_chars(const char *s)
{
	size_t n = 0;
	for (; *s != '\0'; s++)
		if (((unsigned char)*s & 0xC0) != 0x80)
			n++;
	return n;
}

/* Check the password field; answers req and returns false when unfit. */
static bool password_ok(struct register_state *rs, struct iq_request *req, const char *password)
{
	if (password == NULL || *password == '\0') {
		iq_error(req, SE_NOT_ACCEPTABLE, "a password is required");
		return false;
	}
	if (utf8_chars(password) < rs->set->min_password_length) {
		char *text = xasprintf("the password is too short (at least %u characters)",
		                       rs->set->min_password_length);
		iq_error(req, SE_NOT_ACCEPTABLE, text);
		free(text);
		return false;
	}
	return true;
}

static const char *field(const struct iq_request *req, const char *name)
{
	return xml_child_text(req->payload, name, NS_REGISTER);
}

/* ---- before authentication ------------------------------------------------ */

static void register_preauth(struct iq_request *req, void *ctx)
{
	struct register_state *rs = ctx;
	if (!rs->set->open) {
		iq_error(req, SE_NOT_ALLOWED, "in-band registration is disabled on this server");
		return;
	}
	if (strcmp(req->type, "get") == 0) {
		struct xml_node *q = iq_payload_new("query", NS_REGISTER);
		/* In the client's language (lib/i18n.h): the stream stamps its
		 * xml:lang on the iq. */
		const char *lang;
		const char *text = i18n_tr_lang(xml_attr(req->iq, "xml:lang"), instructions, &lang);
		struct xml_node *ins = xml_add_child(q, "instructions", NULL);
		xml_set_attr(ins, "xml:lang", lang);
		xml_add_text(ins, text, strlen(text));
		xml_add_child(q, "username", NULL);
		xml_add_child(q, "password", NULL);
		iq_result(req, q);
		xml_unref(&q);
		return;
	}
	if (xml_child(req->payload, "remove", NS_REGISTER) != NULL) {
		iq_error(req, SE_NOT_ALLOWED, "log in to remove an account");
		return;
	}
	const char *username = field(req, "username");
	if (username == NULL || *username == '\0') {
		iq_error(req, SE_NOT_ACCEPTABLE, "a username is required");
		return;
	}
	char *user = jid_nodeprep(username);
	if (user == NULL || *user == '\0') {
		free(user);
		iq_error(req, SE_NOT_ACCEPTABLE, "this username is not a valid JID localpart");
		return;
	}
	const char *password = field(req, "password");
	if (!password_ok(rs, req, password)) {
		free(user);
		return;
	}
	if (!throttle_begin(rs, req->remote_ip)) {
		free(user);
		iq_error(req, SE_RESOURCE_CONSTRAINT,
		         "an account was registered from this address recently; try again later");
		return;
	}
	struct register_op *op = op_new(rs, req, OP_CREATE, user);
	free(user);
	if (req->remote_ip != NULL)
		op->ip = xstrdup(req->remote_ip);
	pending_wait_auth(&op->p, auth_create_user(rs->host->auth, op->user, password, op_done, op));
}

/* ---- after authentication --------------------------------------------------- */

static void register_account(struct iq_request *req, void *ctx)
{
	struct register_state *rs = ctx;
	struct host *h = rs->host;
	/* Only a local user, about their own account. */
	if (req->from.node == NULL || strcmp(req->from.domain, h->name) != 0 ||
	    (req->to.node != NULL && !jid_bare_equal(&req->to, &req->from))) {
		iq_error(req, SE_NOT_ALLOWED, NULL);
		return;
	}
	const char *user = req->from.node;
	if (strcmp(req->type, "get") == 0) {
		struct xml_node *q = iq_payload_new("query", NS_REGISTER);
		xml_add_child(q, "registered", NULL);
		struct xml_node *u = xml_add_child(q, "username", NULL);
		xml_add_text(u, user, strlen(user));
		iq_result(req, q);
		xml_unref(&q);
		return;
	}
	if (xml_child(req->payload, "remove", NS_REGISTER) != NULL) {
		if (!auth_can_remove_users(h->auth)) {
			answer_auth_failure(req, AUTH_NOT_SUPPORTED,
			                    "the account backend cannot remove accounts");
			return;
		}
		/* The answer (XEP-0077 3.2), then the sessions end with the
		 * roster still there (sm_kick_user), then the account goes: the
		 * answer cannot wait for the removal, since the stream it goes
		 * to must close before the removal starts. */
		struct register_op *op = op_new(rs, NULL, OP_REMOVE, user);
		op->p.outlives_stop = true;
		iq_result(req, NULL);
		sm_kick_user(h, op->user, STE_NOT_AUTHORIZED, "account removed");
		/* and it goes once the closed sessions' unavailable presence has
		 * read the roster, and the contacts to tell are known
		 * (presence_wait_user) */
		op->wait = presence_wait_user(h, op->user, remove_settled, op);
		if (op->wait == NULL)
			remove_settled(op);
		else
			pending_wait(&op->p, op->wait, presence_wait_cancel);
		return;
	}
	const char *username = field(req, "username");
	const char *password = field(req, "password");
	if (username == NULL && password == NULL) {
		iq_error(req, SE_BAD_REQUEST, "expected <remove/> or a new password");
		return;
	}
	if (username != NULL) {
		char *prepped = jid_nodeprep(username);
		bool own = prepped != NULL && strcmp(prepped, user) == 0;
		free(prepped);
		if (!own) {
			iq_error(req, SE_NOT_ALLOWED, "you can only change your own password");
			return;
		}
	}
	if (!password_ok(rs, req, password))
		return;
	struct register_op *op = op_new(rs, req, OP_PASSWORD, user);
	pending_wait_auth(&op->p, auth_set_password(h->auth, op->user, password, op_done, op));
}

/* ---- stream feature --------------------------------------------------------- */

static enum hook_result register_features(struct host *h, void *args, void *ctx)
{
	struct register_state *rs = ctx;
	struct hook_features *hf = args;
	if (!hf->authenticated && rs->set->open)
		xml_add_child(hf->features, "register", NS_FEATURE_REGISTER);
	return HOOK_CONTINUE;
}

/* ---- module ----------------------------------------------------------------- */

static const struct builtin_iq register_iqs[] = {
	{ IQ_SCOPE_PREAUTH, NS_REGISTER, IQ_PARALLEL, register_preauth },
	{ IQ_SCOPE_USER, NS_REGISTER, IQ_PARALLEL, register_account },
	{ IQ_SCOPE_SERVER, NS_REGISTER, IQ_PARALLEL, register_account },
};

static int register_start(struct host *h, const void *settings, void **state_r, char **error_r)
{
	struct register_state *rs = xcalloc(1, sizeof(*rs));
	rs->host = h;
	rs->set = settings;
	if (builtin_iq_register(h, register_iqs, ARRAY_SIZE(register_iqs), rs, error_r) < 0) {
		free(rs);
		return -1;
	}
	hook_add(h, HOOK_STREAM_FEATURES, 50, register_features, rs);
	host_add_feature(h, NS_REGISTER);
	*state_r = rs;
	return 0;
}

static void register_stop(struct host *h, void *state)
{
	struct register_state *rs = state;
	hook_remove(h, HOOK_STREAM_FEATURES, register_features, rs);
	builtin_iq_unregister(h, register_iqs, ARRAY_SIZE(register_iqs));
	host_remove_feature(h, NS_REGISTER);
	pending_stop(&rs->ops);
	while (rs->throttle != NULL) {
		struct throttle_entry *e = rs->throttle;
		rs->throttle = e->next;
		throttle_entry_free(e);
	}
	free(rs);
}

const struct module_def mod_register = {
	.name = "register",
	.description = "XEP-0077 in-band registration, password change and account removal",
	.options = register_options,
	.settings_size = sizeof(struct register_settings),
	.default_enabled = false,
	.start = register_start,
	.stop = register_stop,
};
