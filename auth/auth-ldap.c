/*
 * The "ldap" auth method: accounts are entries of a directory.  A password
 * is checked by searching the user's entry with the service account and
 * then binding as that entry with the password (method bind), or by
 * comparing it with the entry's userPassword (method compare).  The
 * directory keeps no SCRAM keys Parley could use, so only PLAIN is offered
 * for these hosts (and SASL offers PLAIN only on encrypted streams),
 * unless auth.scram_cache_ttl keeps keys from accepted passwords for a
 * while (auth-scramcache.c).
 *
 * Loop thread; the directory work runs on the LDAP client's worker group
 * (lib/ldap-client.c).
 *
 * Invariants:
 * - results map one to one: no entry -> AUTH_NO_USER, refused bind or false
 *   compare -> AUTH_BAD_PASSWORD, unreachable or slow -> AUTH_TEMPFAIL,
 *   several entries for one name -> AUTH_ERROR (logged, never a login);
 * - an empty password is AUTH_BAD_PASSWORD without asking the directory;
 * - accounts are never created or removed here; a password changes only
 *   with allow_password_change (Password Modify, RFC 3062);
 * - a cancelled operation never replies (its client request is cancelled).
 */
#include "auth/auth-private.h"
#include "lib/ldap-client.h"
#include "lib/log.h"

struct ldap_auth {
	struct auth *a;
	struct ldap_client *client;
	int method;
	bool allow_password_change;
};

struct ldap_op {
	struct ldap_auth *la;
	struct auth_req *req;
	struct ldap_client_req *creq;
};

#define OP(b) ((struct ldap_op *)(void *)(b))
#define BREQ(op) ((struct auth_breq *)(void *)(op))

static enum auth_result map_result(enum ldap_client_result r)
{
	switch (r) {
	case LDAPC_OK: return AUTH_OK;
	case LDAPC_NO_ENTRY: return AUTH_NO_USER;
	case LDAPC_BAD_PASSWORD: return AUTH_BAD_PASSWORD;
	case LDAPC_TEMPFAIL: return AUTH_TEMPFAIL;
	case LDAPC_AMBIGUOUS: return AUTH_ERROR;
	case LDAPC_ERROR: return AUTH_ERROR;
	}
	return AUTH_ERROR;
}

static const char *op_name(enum auth_op op)
{
	switch (op) {
	case AUTH_OP_CHECK_PASSWORD: return "password check";
	case AUTH_OP_USER_EXISTS: return "user lookup";
	case AUTH_OP_SET_PASSWORD: return "password change";
	default: return "operation";
	}
}

static void op_done(const struct ldap_reply *r, void *ctx)
{
	struct ldap_op *op = ctx;
	struct auth_req *req = op->req;
	const char *host = op->la->a->host;
	switch (r->res) {
	case LDAPC_AMBIGUOUS:
		log_error("host %s: ldap %s for %s refused: %s", host, op_name(req->op), req->user,
		          r->error != NULL ? r->error : "several entries");
		break;
	case LDAPC_TEMPFAIL:
	case LDAPC_ERROR:
		log_warning("host %s: ldap %s for %s: %s", host, op_name(req->op), req->user,
		            r->error != NULL ? r->error : ldap_client_result_str(r->res));
		break;
	default:
		log_debug("host %s: ldap %s for %s: %s%s%s", host, op_name(req->op), req->user,
		          ldap_client_result_str(r->res), r->dn != NULL ? ", " : "",
		          r->dn != NULL ? r->dn : "");
		break;
	}
	free(op);
	auth_backend_reply(req, map_result(r->res), NULL);
}

static struct auth_breq *start(struct ldap_auth *la, struct auth_req *req, enum ldap_client_op cop)
{
	struct ldap_op *op = xcalloc(1, sizeof(*op));
	op->la = la;
	op->req = req;
	op->creq = ldap_client_submit(la->client, cop, req->user, req->password, NULL, op_done, op);
	if (op->creq == NULL) {
		free(op);
		auth_backend_reply_later(req, AUTH_TEMPFAIL);
		return NULL;
	}
	return BREQ(op);
}

static struct auth_breq *ldap_check_password(void *state, struct auth_req *req)
{
	struct ldap_auth *la = state;
	if (req->password == NULL || req->password[0] == '\0') {
		/* An empty password must never reach a bind (unauthenticated bind). */
		auth_backend_reply_later(req, AUTH_BAD_PASSWORD);
		return NULL;
	}
	return start(la, req, la->method == LDAPCFG_METHOD_COMPARE ? LDAPC_CHECK_COMPARE : LDAPC_CHECK_BIND);
}

static struct auth_breq *ldap_user_exists(void *state, struct auth_req *req)
{
	return start(state, req, LDAPC_FIND);
}

static struct auth_breq *ldap_set_password(void *state, struct auth_req *req)
{
	struct ldap_auth *la = state;
	if (!la->allow_password_change) {
		auth_backend_reply_later(req, AUTH_NOT_SUPPORTED);
		return NULL;
	}
	if (req->password == NULL || req->password[0] == '\0') {
		auth_backend_reply_later(req, AUTH_ERROR);
		return NULL;
	}
	return start(la, req, LDAPC_PASSWD);
}

static void ldap_cancel(struct auth_breq *b)
{
	struct ldap_op *op = OP(b);
	ldap_client_cancel(op->creq);
	free(op);
}

static int ldap_init(struct auth *a, void **state_r, char **error_r)
{
	if (a->ldap_cfg == NULL) {
		*error_r = xstrdup("no ldap settings");
		return -1;
	}
	struct ldap_auth *la = xcalloc(1, sizeof(*la));
	la->a = a;
	la->method = a->ldap_cfg->method;
	la->allow_password_change = a->ldap_cfg->allow_password_change;
	char *name = xasprintf("auth %s", a->host);
	int rc = ldap_client_new(a->loop, name, a->ldap_cfg, &la->client, error_r);
	free(name);
	if (rc < 0) {
		free(la);
		return -1;
	}
	*state_r = la;
	return 0;
}

static void ldap_deinit(void *state)
{
	struct ldap_auth *la = state;
	ldap_client_free(&la->client);
	free(la);
}

static bool ldap_can_scram(void *state)
{
	return false;
}

static bool ldap_can_plain(void *state)
{
	return true;
}

const struct auth_vfuncs auth_ldap_vfuncs = {
	.name = "ldap",
	.init = ldap_init,
	.deinit = ldap_deinit,
	.can_scram = ldap_can_scram,
	.can_plain = ldap_can_plain,
	.scram_cacheable = true,
	.check_password = ldap_check_password,
	.get_scram = NULL,
	.user_exists = ldap_user_exists,
	.create_user = NULL,
	.set_password = ldap_set_password,
	.remove_user = NULL,
	.cancel = ldap_cancel,
};

struct ldap_client *auth_ldap_client(const struct auth *a)
{
	for (size_t i = 0; a != NULL && i < a->nbackends; i++)
		if (a->backends[i].v == &auth_ldap_vfuncs)
			return ((struct ldap_auth *)a->backends[i].state)->client;
	return NULL;
}
