/*
 * The "pam" auth backend.  PAM runs in helper processes (parley-pam-helper,
 * built from auth/pam-helper.c), never in parleyd: PAM modules block, are not
 * reliably thread-safe and may leak.  The helpers speak the port protocol
 * of the external method (auth-external.h) and are run by the same process
 * pool, so they share its timeouts, restarts with back-off, stderr logging
 * and queue limits; a helper is also replaced after max_requests answers.
 * A helper answers "temporary failure" when PAM could not find out (its
 * service unreachable, a module or system error: see pam-helper.c), which
 * the pool turns into AUTH_TEMPFAIL, never "wrong password" or "no such
 * user".
 *
 * Only "auth" (pam_authenticate, then pam_acct_mgmt) and, when
 * account_check is on, "isuser" (pam_acct_mgmt alone) are asked: PAM
 * cannot create, rename or remove accounts, and setting passwords through
 * it is not offered.  Loop thread.
 */
#include "auth/procpool.h"
#include "lib/log.h"

#ifndef PARLEY_PAM_HELPER
#define PARLEY_PAM_HELPER "/usr/local/libexec/parley/parley-pam-helper"
#endif

struct pam_backend {
	struct procpool *pool;
	bool account_check;
};

static int pam_init(struct auth *a, void **state_r, char **error_r)
{
	const struct auth_pam_config *c = &a->cfg->pam;
	const char *helper = c->helper != NULL ? c->helper : getenv("PARLEY_PAM_HELPER");
	if (helper == NULL)
		helper = PARLEY_PAM_HELPER;
	char *args_items[2] = { c->service, c->account_check ? "account" : "no-account" };
	struct strlist args = { args_items, 2 };
	struct procpool_config pc = {
		.method = "pam",
		.program = helper,
		.args = &args,
		.instances = c->instances,
		.timeout = c->timeout,
		.queue_max = 100,
		.cache_ttl = 0,
		.restart_max = 30,
		.max_requests = c->max_requests,
		.tempfail_answer = true,
	};
	struct pam_backend *pb = xcalloc(1, sizeof(*pb));
	pb->account_check = c->account_check;
	if (procpool_new(a, &pc, &pb->pool, error_r) < 0) {
		char *e = xasprintf("PAM helper: %s (set auth.pam.helper, or install parley-pam-helper)",
		                    *error_r);
		free(*error_r);
		*error_r = e;
		free(pb);
		return -1;
	}
	log_info("host %s: auth pam: service '%s'%s", a->host, c->service,
	         c->account_check ? ", users checked with pam_acct_mgmt" : "");
	*state_r = pb;
	return 0;
}

static void pam_deinit(void *state)
{
	struct pam_backend *pb = state;
	procpool_free(&pb->pool);
	free(pb);
}

static bool pam_can_plain(void *state)
{
	return true;
}

static struct auth_breq *pam_check(void *state, struct auth_req *req)
{
	struct pam_backend *pb = state;
	return procpool_submit(pb->pool, req);
}

static struct auth_breq *pam_exists(void *state, struct auth_req *req)
{
	struct pam_backend *pb = state;
	if (!pb->account_check) {
		auth_backend_detail(req,
		                    "auth.pam.account_check is off: PAM cannot tell whether a user exists");
		auth_backend_reply_later(req, AUTH_NOT_SUPPORTED);
		return NULL;
	}
	return procpool_submit(pb->pool, req);
}

static void pam_status(void *state, struct buf *out)
{
	struct pam_backend *pb = state;
	procpool_status(pb->pool, out);
}

const struct auth_vfuncs auth_pam_vfuncs = {
	.name = "pam",
	.init = pam_init,
	.deinit = pam_deinit,
	.can_plain = pam_can_plain,
	.scram_cacheable = true,
	.check_password = pam_check,
	.user_exists = pam_exists,
	.cancel = procpool_cancel,
	.status = pam_status,
};
