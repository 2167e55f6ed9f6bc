/*
 * parleyctl's session commands: connected-users, connected-users-info,
 * kick-session, and sending stanzas as someone (send-message,
 * send-stanza).  They read and act on the session manager of the running
 * parleyd.  Loop thread.
 *
 * Listings are sorted by JID (domain, user, resource) so that their output
 * is stable.  A stanza sent is routed like one a client sent, with from
 * and to set from the command's arguments.
 */
#include "ctl-private.h"
#include "server/server.h"
#include "server/host.h"
#include "server/sm.h"
#include "server/stream.h"
#include "server/router.h"
#include "lib/jid.h"
#include "lib/log.h"

#include <string.h>

static int cmp_session(const void *a, const void *b)
{
	const struct session *x = *(struct session *const *)a, *y = *(struct session *const *)b;
	int c = strcmp(x->jid.domain, y->jid.domain);
	if (c == 0)
		c = strcmp(x->jid.node, y->jid.node);
	if (c == 0)
		c = strcmp(x->jid.resource, y->jid.resource);
	return c;
}

struct session_list {
	struct session **items;
	size_t count;
};

static void add_session(struct session *s, void *ctx)
{
	struct session_list *l = ctx;
	l->items = xrealloc(l->items, (l->count + 1) * sizeof(*l->items));
	l->items[l->count++] = s;
}

/* Every session, sorted by JID (valid until the loop runs again). */
static void sessions_sorted(struct session_list *l)
{
	memset(l, 0, sizeof(*l));
	sm_foreach(NULL, add_session, l);
	if (l->count > 0)
		qsort(l->items, l->count, sizeof(*l->items), cmp_session);
}

void cmd_connected_users(struct ctl_call *call)
{
	struct session_list l;
	sessions_sorted(&l);
	if (call->json)
		buf_append_str(&call->body, "[");
	for (size_t i = 0; i < l.count; i++) {
		char *jid = jid_to_string(&l.items[i]->jid);
		if (call->json) {
			buf_append_str(&call->body, i > 0 ? ", " : "");
			ctl_json_str(&call->body, jid);
		} else {
			buf_printf(&call->body, "%s\n", jid);
		}
		free(jid);
	}
	if (call->json)
		buf_append_str(&call->body, "]\n");
	free(l.items);
	ctl_call_finish(call, CTL_OK, NULL);
}

void cmd_connected_users_info(struct ctl_call *call)
{
	struct session_list l;
	sessions_sorted(&l);
	/* Session start times are ev_now() of the loop: wall-clock time. */
	if (call->json)
		buf_append_str(&call->body, "[");
	else if (l.count > 0)
		buf_printf(&call->body, "%-40s %-39s %5s %-8s %4s %-20s %s\n", "jid", "ip", "port", "tls",
		           "prio", "connected since", "resource");
	for (size_t i = 0; i < l.count; i++) {
		const struct session *s = l.items[i];
		char *jid = jid_to_string(&s->jid);
		char since[XEP82_STAMP_LEN];
		xep82_stamp(since, (int64_t)s->started);
		if (call->json) {
			buf_append_str(&call->body, i > 0 ? ",\n " : "");
			buf_append_str(&call->body, "{\"jid\": ");
			ctl_json_str(&call->body, jid);
			buf_append_str(&call->body, ", \"user\": ");
			ctl_json_str(&call->body, s->jid.node);
			buf_append_str(&call->body, ", \"host\": ");
			ctl_json_str(&call->body, s->jid.domain);
			buf_append_str(&call->body, ", \"resource\": ");
			ctl_json_str(&call->body, s->jid.resource);
			buf_append_str(&call->body, ", \"ip\": ");
			ctl_json_str(&call->body, s->ip);
			buf_printf(&call->body, ", \"port\": %u, \"tls\": ", s->port);
			if (s->tls[0] != '\0')
				ctl_json_str(&call->body, s->tls);
			else
				buf_append_str(&call->body, "null");
			buf_printf(&call->body,
			           ", \"priority\": %d, \"available\": %s, \"detached\": %s, "
			           "\"connected_since\": ",
			           s->priority, s->available ? "true" : "false",
			           s->detached ? "true" : "false");
			ctl_json_str(&call->body, since);
			buf_printf(&call->body, ", \"connected_seconds\": %.0f}",
			           ev_now(call->loop) - s->started);
		} else {
			/* A session waiting to be resumed (stream management) shows
			 * its last connection, marked. */
			buf_printf(&call->body, "%-40s %-39s %5u %-8s %4d %-20s %s%s\n", jid, s->ip, s->port,
			           s->tls[0] != '\0' ? s->tls : "none", s->priority, since, s->jid.resource,
			           s->detached ? " (detached)" : "");
		}
		free(jid);
	}
	if (call->json)
		buf_append_str(&call->body, "]\n");
	free(l.items);
	ctl_call_finish(call, CTL_OK, NULL);
}

void cmd_kick_session(struct ctl_call *call)
{
	struct jid j;
	const char *err;
	if (jid_parse(call->argv[1], &j, &err) != 0 || j.node == NULL) {
		ctl_call_finish(call, CTL_USAGE, "'%s' is not a user JID: %s", call->argv[1],
		                j.node == NULL && err == NULL ? "no local part"
		                : err != NULL                 ? err
		                                              : "no local part");
		if (err == NULL)
			jid_clear(&j);
		return;
	}
	struct host *h = host_find(j.domain);
	const char *reason =
	        call->argc > 2 && call->argv[2][0] != '\0' ? call->argv[2] : "kicked by an administrator";
	unsigned n = 0;
	if (h != NULL) {
		struct session *s = sm_user_sessions(h, j.node);
		while (s != NULL) {
			struct session *next = s->next_of_user;
			if (j.resource == NULL || strcmp(s->jid.resource, j.resource) == 0) {
				char *full = jid_to_string(&s->jid);
				log_notice("ctl: kicking %s: %s", full, reason);
				buf_printf(&call->body, "%s kicked\n", full);
				free(full);
				sm_session_close(s);
				s->ops->kick(s->owner, STE_POLICY_VIOLATION, reason);
				n++;
			}
			s = next;
		}
	}
	if (n == 0)
		ctl_call_finish(call, CTL_FAILED, "no session of %s", call->argv[1]);
	else
		ctl_call_finish(call, CTL_OK, NULL);
	jid_clear(&j);
}

/* ---- sending stanzas ------------------------------------------------------------------ */

/* Parse argv[idx] as a JID into j; false (call finished) when it is not one. */
static bool call_jid(struct ctl_call *call, int idx, struct jid *j)
{
	const char *err;
	if (jid_parse(call->argv[idx], j, &err) != 0) {
		ctl_call_finish(call, CTL_USAGE, "'%s' is not a JID: %s", call->argv[idx], err);
		return false;
	}
	return true;
}

static void route_stanza(struct ctl_call *call, struct xml_node *el, struct jid *from, struct jid *to)
{
	char *fs = jid_to_string(from), *ts = jid_to_string(to);
	xml_set_attr(el, "from", fs);
	xml_set_attr(el, "to", ts);
	log_notice("ctl: %s from %s to %s", el->name, fs, ts);
	router_route(el, from, to);
	buf_printf(&call->body, "%s sent from %s to %s\n", el->name, fs, ts);
	free(fs);
	free(ts);
}

void cmd_send_message(struct ctl_call *call)
{
	struct jid from, to;
	if (!call_jid(call, 1, &from))
		return;
	if (!call_jid(call, 2, &to)) {
		jid_clear(&from);
		return;
	}
	if (!utf8_valid(call->argv[3], strlen(call->argv[3]))) {
		ctl_call_finish(call, CTL_USAGE, "the body is not valid UTF-8");
	} else {
		struct xml_node *m = xml_new("message", NS_CLIENT);
		xml_set_attr(m, "type", "normal");
		char id[17];
		random_id(id, 16);
		xml_set_attr(m, "id", id);
		struct xml_node *b = xml_add_child(m, "body", NS_CLIENT);
		xml_add_text(b, call->argv[3], strlen(call->argv[3]));
		route_stanza(call, m, &from, &to);
		xml_unref(&m);
		ctl_call_finish(call, CTL_OK, NULL);
	}
	jid_clear(&from);
	jid_clear(&to);
}

void cmd_send_stanza(struct ctl_call *call)
{
	struct jid from, to;
	if (!call_jid(call, 1, &from))
		return;
	if (!call_jid(call, 2, &to)) {
		jid_clear(&from);
		return;
	}
	const struct limits_config *lim = &server.cfg->limits;
	struct xml_parser_limits pl = { .max_stanza = lim->max_stanza_size,
		                        .max_depth = lim->max_depth,
		                        .max_attrs = lim->max_attrs };
	const char *err = NULL;
	struct xml_node *el = xml_parse_string(call->argv[3], strlen(call->argv[3]), NS_CLIENT, &pl, &err);
	if (el == NULL) {
		ctl_call_finish(call, CTL_USAGE, "the stanza is not acceptable XML: %s",
		                err != NULL ? err : "?");
	} else if (stanza_kind(el) == STANZA_OTHER || !str_eq(el->ns, NS_CLIENT)) {
		ctl_call_finish(call, CTL_USAGE,
		                "not a stanza: <%s/> (message, presence or iq in jabber:client)", el->name);
	} else if (stanza_kind(el) == STANZA_IQ &&
	           (xml_attr(el, "id") == NULL || xml_attr(el, "type") == NULL)) {
		ctl_call_finish(call, CTL_USAGE, "an iq needs an id and a type");
	} else {
		route_stanza(call, el, &from, &to);
		ctl_call_finish(call, CTL_OK, NULL);
	}
	if (el != NULL)
		xml_unref(&el);
	jid_clear(&from);
	jid_clear(&to);
}
