/*
 * The list of built-in modules and the helpers they share.  Loop thread.
 *
 * The order of the list is the order modules start on a host (and the
 * reverse of the order they stop): disco first, so that it is there when
 * the others add their features.
 */
#include "builtin.h"
#include "server/host.h"

#include <stdlib.h>

void modules_register_builtin(void)
{
	static bool done;
	if (done)
		return;
	done = true;
	module_register(&mod_disco);
	module_register(&mod_version);
	module_register(&mod_ping);
	module_register(&mod_time);
	module_register(&mod_register);
	module_register(&mod_roster);
	module_register(&mod_offline);
	module_register(&mod_presence);
	module_register(&mod_vcard);
	module_register(&mod_private);
	module_register(&mod_last);
	module_register(&mod_blocking);
	module_register(&mod_privacy);
	module_register(&mod_avatar);
}

static const char *const scope_names[IQ_SCOPE_COUNT] = {
	[IQ_SCOPE_SERVER] = "server", [IQ_SCOPE_USER] = "user", [IQ_SCOPE_PREAUTH] = "pre-auth",
};

int builtin_iq_register(struct host *h, const struct builtin_iq *table, size_t n, void *ctx,
                        char **error_r)
{
	for (size_t i = 0; i < n; i++) {
		if (iq_register(h, table[i].scope, table[i].ns, table[i].discipline, table[i].fn,
		                ctx) < 0) {
			*error_r = xasprintf("another module already handles %s (%s scope)",
			                     table[i].ns, scope_names[table[i].scope]);
			builtin_iq_unregister(h, table, i);
			return -1;
		}
	}
	return 0;
}

void builtin_iq_unregister(struct host *h, const struct builtin_iq *table, size_t n)
{
	for (size_t i = n; i > 0; i--)
		iq_unregister(h, table[i - 1].scope, table[i - 1].ns);
}

void builtin_iq_error_wait(struct iq_request *req, enum stanza_error e, const char *text)
{
	struct xml_node *reply = stanza_error_reply(req->iq, e, text);
	if (reply == NULL) {
		iq_error(req, e, text);
		return;
	}
	struct xml_node *err = xml_child(reply, "error", NULL);
	if (err != NULL)
		xml_set_attr(err, "type", "wait");
	iq_result_tree(req, reply);
}
