/*
 * The "anonymous" auth method: SASL ANONYMOUS (RFC 4505) for a host.  It
 * answers no question about accounts (every vfunc is absent); its presence
 * in auth.methods is what lets sasl.c offer the mechanism, and the stream
 * gets a random local part.  Anonymous users' data is removed when their
 * session ends (c2s.c runs the remove_user hook), so nothing outlives the
 * session.  Loop thread.
 */
#include "auth/auth-private.h"
#include "lib/log.h"

static int anonymous_init(struct auth *a, void **state_r, char **error_r)
{
	log_notice("host %s: anonymous logins (SASL ANONYMOUS) are allowed", a->host);
	*state_r = NULL;
	return 0;
}

const struct auth_vfuncs auth_anonymous_vfuncs = {
	.name = "anonymous",
	.init = anonymous_init,
};
