/*
 * mod_disco: XEP-0030 service discovery.  Loop thread.
 *
 * disco#info of the server JID: identity server/im plus host->features and
 * whatever HOOK_DISCO_INFO callbacks add; with a node, only what the hooks
 * add (nothing added: <item-not-found/>).  disco#items of the server: what
 * HOOK_DISCO_ITEMS callbacks add (ad-hoc commands under their node) and,
 * without a node, the connected external components; a node
 * no callback knows is <item-not-found/>.  disco#info of a user's bare
 * JID, answered by the server for the account: identity account/registered
 * plus host->user_features and the hooks' additions.
 *
 * All handlers answer at once (IQ_NO_QUEUE); the module keeps no state.
 */
#include "builtin.h"
#include "server/host.h"
#include "server/iq.h"
#include "server/component.h"

#include <string.h>

static void add_identity(struct xml_node *query, const char *category, const char *type, const char *name)
{
	struct xml_node *id = xml_add_child(query, "identity", NULL);
	xml_set_attr(id, "category", category);
	xml_set_attr(id, "type", type);
	if (name != NULL)
		xml_set_attr(id, "name", name);
}

static void add_features(struct xml_node *query, const struct strlist *features)
{
	for (size_t i = 0; i < features->count; i++) {
		struct xml_node *f = xml_add_child(query, "feature", NULL);
		xml_set_attr(f, "var", features->items[i]);
	}
}

static bool is_get(const struct iq_request *req)
{
	return req->type != NULL && strcmp(req->type, "get") == 0;
}

/* Common part of both scopes: the hook, the node rule, the answer. */
static void disco_info_answer(struct iq_request *req, bool user)
{
	if (!is_get(req)) {
		iq_error(req, SE_NOT_ALLOWED, NULL);
		return;
	}
	const char *node = xml_attr(req->payload, "node");
	if (node != NULL && *node == '\0')
		node = NULL;
	struct xml_node *query = iq_payload_new("query", NS_DISCO_INFO);
	if (node != NULL)
		xml_set_attr(query, "node", node);
	else if (user)
		add_identity(query, "account", "registered", NULL);
	else
		add_identity(query, "server", "im", "Parley");
	struct hook_disco hd = { .from = &req->from, .to = &req->to, .node = node, .query = query };
	hook_run(req->host, HOOK_DISCO_INFO, &hd);
	if (node == NULL)
		add_features(query, user ? &req->host->user_features : &req->host->features);
	if (node != NULL && xml_first_element(query) == NULL)
		iq_error(req, SE_ITEM_NOT_FOUND, NULL);
	else
		iq_result(req, query);
	xml_unref(&query);
}

static void disco_server_info(struct iq_request *req, void *ctx)
{
	disco_info_answer(req, false);
}

static void disco_user_info(struct iq_request *req, void *ctx)
{
	disco_info_answer(req, true);
}

static void disco_server_items(struct iq_request *req, void *ctx)
{
	if (!is_get(req)) {
		iq_error(req, SE_NOT_ALLOWED, NULL);
		return;
	}
	const char *node = xml_attr(req->payload, "node");
	if (node != NULL && *node == '\0')
		node = NULL;
	struct xml_node *query = iq_payload_new("query", NS_DISCO_ITEMS);
	if (node != NULL)
		xml_set_attr(query, "node", node);
	struct hook_disco hd = { .from = &req->from, .to = &req->to, .node = node, .query = query };
	hook_run(req->host, HOOK_DISCO_ITEMS, &hd);
	if (node == NULL)
		components_disco_items(req->host, query);
	if (node != NULL && !hd.handled && xml_first_element(query) == NULL)
		iq_error(req, SE_ITEM_NOT_FOUND, NULL);
	else
		iq_result(req, query);
	xml_unref(&query);
}

static const struct builtin_iq disco_iqs[] = {
	{ IQ_SCOPE_SERVER, NS_DISCO_INFO, IQ_NO_QUEUE, disco_server_info },
	{ IQ_SCOPE_SERVER, NS_DISCO_ITEMS, IQ_NO_QUEUE, disco_server_items },
	{ IQ_SCOPE_USER, NS_DISCO_INFO, IQ_NO_QUEUE, disco_user_info },
};

static int disco_start(struct host *h, const void *settings, void **state_r, char **error_r)
{
	if (builtin_iq_register(h, disco_iqs, ARRAY_SIZE(disco_iqs), NULL, error_r) < 0)
		return -1;
	host_add_feature(h, NS_DISCO_INFO);
	host_add_feature(h, NS_DISCO_ITEMS);
	host_add_user_feature(h, NS_DISCO_INFO);
	*state_r = NULL;
	return 0;
}

static void disco_stop(struct host *h, void *state)
{
	builtin_iq_unregister(h, disco_iqs, ARRAY_SIZE(disco_iqs));
	host_remove_feature(h, NS_DISCO_INFO);
	host_remove_feature(h, NS_DISCO_ITEMS);
	host_remove_user_feature(h, NS_DISCO_INFO);
}

const struct module_def mod_disco = {
	.name = "disco",
	.description = "XEP-0030 service discovery of the server and of user accounts",
	.options = NULL,
	.settings_size = 0,
	.default_enabled = true,
	.start = disco_start,
	.stop = disco_stop,
};
