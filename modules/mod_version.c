/*
 * mod_version: XEP-0092 software version of the server JID (name Parley,
 * the package version, and the operating system only when show_os is true: off by default, since it tells attackers what to aim at).
 * Loop thread; answers at once (IQ_NO_QUEUE).  The OS string is read once
 * at start (uname) and kept in the module state.
 */
#include "builtin.h"
#include "server/host.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "unknown"
#endif

struct version_settings {
	bool show_os;
};

static const struct opt_def version_options[] = {
	{ "show_os", OPT_BOOL, offsetof(struct version_settings, show_os), "false", NULL, 0, 0,
	  "include the operating system (name and release) in the answer" },
	OPT_END
};

struct version_state {
	char *os; /* NULL when not shown */
};

static void version_get(struct iq_request *req, void *ctx)
{
	struct version_state *vs = ctx;
	if (strcmp(req->type, "get") != 0) {
		iq_error(req, SE_NOT_ALLOWED, NULL);
		return;
	}
	struct xml_node *q = iq_payload_new("query", NS_VERSION);
	struct xml_node *n = xml_add_child(q, "name", NULL);
	xml_add_text(n, "Parley", strlen("Parley"));
	n = xml_add_child(q, "version", NULL);
	xml_add_text(n, PACKAGE_VERSION, strlen(PACKAGE_VERSION));
	if (vs->os != NULL) {
		n = xml_add_child(q, "os", NULL);
		xml_add_text(n, vs->os, strlen(vs->os));
	}
	iq_result(req, q);
	xml_unref(&q);
}

static const struct builtin_iq version_iqs[] = {
	{ IQ_SCOPE_SERVER, NS_VERSION, IQ_NO_QUEUE, version_get },
};

static int version_start(struct host *h, const void *settings, void **state_r, char **error_r)
{
	const struct version_settings *set = settings;
	struct version_state *vs = xcalloc(1, sizeof(*vs));
	struct utsname u;
	if (set->show_os && uname(&u) == 0)
		vs->os = xasprintf("%s %s", u.sysname, u.release);
	if (builtin_iq_register(h, version_iqs, ARRAY_SIZE(version_iqs), vs, error_r) < 0) {
		free(vs->os);
		free(vs);
		return -1;
	}
	host_add_feature(h, NS_VERSION);
	*state_r = vs;
	return 0;
}

static void version_stop(struct host *h, void *state)
{
	struct version_state *vs = state;
	builtin_iq_unregister(h, version_iqs, ARRAY_SIZE(version_iqs));
	host_remove_feature(h, NS_VERSION);
	free(vs->os);
	free(vs);
}

const struct module_def mod_version = {
	.name = "version",
	.description = "XEP-0092 software version of the server",
	.options = version_options,
	.settings_size = sizeof(struct version_settings),
	.default_enabled = true,
	.start = version_start,
	.stop = version_stop,
};
