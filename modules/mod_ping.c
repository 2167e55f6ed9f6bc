/*
 * mod_ping: XEP-0199 XMPP ping.  The server answers pings to its own JID
 * and, on the account's behalf, pings to a user's bare JID.  Loop thread;
 * answers at once (IQ_NO_QUEUE); no state.
 */
#include "builtin.h"
#include "server/host.h"

#include <string.h>

static void ping_answer(struct iq_request *req, void *ctx)
{
	if (strcmp(req->type, "get") != 0)
		iq_error(req, SE_NOT_ALLOWED, NULL);
	else
		iq_result(req, NULL);
}

static const struct builtin_iq ping_iqs[] = {
	{ IQ_SCOPE_SERVER, NS_PING, IQ_NO_QUEUE, ping_answer },
	{ IQ_SCOPE_USER, NS_PING, IQ_NO_QUEUE, ping_answer },
};

static int ping_start(struct host *h, const void *settings, void **state_r, char **error_r)
{
	if (builtin_iq_register(h, ping_iqs, ARRAY_SIZE(ping_iqs), NULL, error_r) < 0)
		return -1;
	host_add_feature(h, NS_PING);
	host_add_user_feature(h, NS_PING);
	*state_r = NULL;
	return 0;
}

static void ping_stop(struct host *h, void *state)
{
	builtin_iq_unregister(h, ping_iqs, ARRAY_SIZE(ping_iqs));
	host_remove_feature(h, NS_PING);
	host_remove_user_feature(h, NS_PING);
}

const struct module_def mod_ping = {
	.name = "ping",
	.description = "XEP-0199 ping of the server and of user accounts",
	.options = NULL,
	.settings_size = 0,
	.default_enabled = true,
	.start = ping_start,
	.stop = ping_stop,
};
