/*
 * mod_push: push notifications (XEP-0357, urn:xmpp:push:0).  A client
 * registers its device with an app server (a JID and a node, with an
 * optional publish-options form); when a message waits where the device
 * does not see it, the server publishes a summary to the device's node and
 * the app server wakes the device.  Loop thread.
 *
 * Which registrations a message wakes: a registration belongs to the
 * device that enabled it, known by the resource of its session (stream
 * management resumes a session with its resource; Bind 2 gives a client
 * that names itself the same resource again).  A device that has a
 * session which is neither detached nor inactive gets nothing pushed: it
 * sees its messages.  A message queued for a detached or inactive session
 * wakes that session's device only: another session of the user may have
 * taken it, and a device without any session catches up from the archive
 * when it comes back.  A message stored offline (no session took it)
 * wakes every device that is not active, but for the devices it was
 * counted for already: stream management stores what a session never
 * acknowledged, and a message pushed while that session (or another that
 * got the same message) was detached or inactive is not counted again.
 * A registration stored without a resource belongs to every device.
 *
 * Where stanzas come from:
 * - the iq handler (IQ_SCOPE_USER, the account's own bare JID): set
 *   <enable jid= node=/> (with an optional publish-options form) and
 *   <disable jid= [node=]/>.  A change is stored first and answered when
 *   storage said OK.
 * - message_unseen (mod_offline after a commit, stream management for a
 *   detached session, client state indication for an inactive one): one
 *   publish per device the message wakes (above), at most one per device
 *   every min_interval; messages in between are counted in the next one,
 *   which the flush timer sends when the interval is over (so the last
 *   message always wakes the device), unless the device is back first.
 * - stanza_in: the app server's answers to those publishes (iq result or
 *   error to the user's bare JID) are handed to iq_response, which runs
 *   the callback of the iq_send that sent them.  A device whose app server
 *   answers item-not-found, or an error of type auth, is removed
 *   (the app server no longer knows it); other errors are logged once per
 *   device.
 * - session_opened, session_resumed, session_active (client state
 *   indication: <active/> after <inactive/>): that device is back (the
 *   registrations of its resource, and those without one); their unseen
 *   counters start again and no owed push is sent.  session_closed: the
 *   last one forgets a user without devices.
 * - private_set / remove_user: the stored list changed behind the cache.
 *
 * Where registrations live: there is no storage area of their own; they
 * are one element of the user's private XML storage (storage_private_*),
 * <devices xmlns='urn:parley:push:0'><device jid= node= since=
 * [resource=]>[<x/>]</device>...</devices>, so every store that keeps
 * private data keeps them, across restarts, and the account's removal
 * removes them.
 *
 * Invariants:
 * - A user's list is read, changed and written by one operation at a time:
 *   every operation on a user (struct push_op) waits in the user's queue
 *   (idle) and runs when the one before has finished (u->busy false), so a
 *   write never loses a change made meanwhile.  The list is read at the
 *   first operation and cached while the user has devices or a session
 *   (messages to an inactive or detached session need no read each); a
 *   user with neither and nothing queued is forgotten (user_keep).
 * - Every op is on the module's pending list; a stop answers the queued
 *   requests, cancels storage calls and the iqs in flight
 *   (struct push_send, listed in the state), then frees the users.
 * - Rate and counter state (last push, unseen count, due, warned) lives
 *   in memory only: a restart may send one push early, or lose one that
 *   was due, nothing worse.  The flush timer runs while some device is
 *   due, set for the earliest.
 */
#include "builtin.h"
#include "errmap.h"
#include "pending.h"
#include "server/host.h"
#include "server/hooks.h"
#include "server/iq.h"
#include "server/server.h"
#include "server/sm.h"
#include "lib/htab.h"
#include "lib/latency.h"
#include "lib/log.h"
#include "storage/storage.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NS_PUSH "urn:xmpp:push:0"
#define NS_PUSH_STORE "urn:parley:push:0"
#define NS_PUSH_PUBSUB "http://jabber.org/protocol/pubsub"
#define NS_PUSH_XDATA "jabber:x:data"
#define PUSH_SUMMARY "urn:xmpp:push:summary"
#define PUSH_PUBLISH_OPTIONS "http://jabber.org/protocol/pubsub#publish-options"

struct push_settings {
	bool include_body;
	bool include_sender;
	double min_interval;
	unsigned max_devices;
	double timeout;
};

static const struct opt_def push_options[] = {
	{ "include_body", OPT_BOOL, offsetof(struct push_settings, include_body), "false", NULL, 0, 0,
	  "whether a push carries the body of the last message (last-message-body): the app server "
	  "and the push network then see it" },
	{ "include_sender", OPT_BOOL, offsetof(struct push_settings, include_sender), "true", NULL, 0, 0,
	  "whether a push names the sender of the last message (last-message-sender)" },
	{ "min_interval", OPT_DURATION, offsetof(struct push_settings, min_interval), "10s", NULL, 0, 0,
	  "at most one push per device in this time; messages in between are counted in the next "
	  "one, sent when the time is over (0: a push for every message)" },
	{ "max_devices", OPT_UINT, offsetof(struct push_settings, max_devices), "20", NULL, 1, 1000,
	  "most devices one account may register; a new one beyond replaces the oldest" },
	{ "timeout", OPT_DURATION, offsetof(struct push_settings, timeout), "30s", NULL, 0, 0,
	  "how long an app server may take to answer a push" },
	OPT_END
};

struct push_state;

/* One registration, as stored, plus what is kept in memory about it. */
struct push_device {
	char *jid;                     /* the app server (normalised) */
	char *node;                    /* the node on it */
	char *resource;                /* of the session that enabled it (NULL: none known) */
	struct xml_node *options;      /* the publish-options <x/>, or NULL */
	int64_t since;                 /* unix time of the enable */
	double last_push;              /* ev_now of the last push sent (0: none yet) */
	unsigned unseen;               /* messages unseen since the user was last back */
	bool warned;                   /* an error of the app server was logged */
	bool due;                      /* messages came since the last push: one is owed at
	                           * last_push + min_interval */
	char *last_sender, *last_body; /* of the last message, for the owed push */
};

struct push_list {
	struct push_device *items;
	size_t count;
};

struct push_user {
	struct htab_link link; /* first: the state's table */
	char *name;
	bool loaded;
	bool busy;  /* an op has a storage call in flight */
	bool stale; /* the stored list changed behind a call in flight */
	struct push_list devs;
	struct push_op *head, *tail; /* the ops that wait, oldest first */
};

enum push_kind { PK_LOAD, PK_ENABLE, PK_DISABLE, PK_REMOVE, PK_UNSEEN };

struct push_op {
	struct pending_op p; /* first; p.req for enable and disable */
	struct push_state *ps;
	struct push_user *u; /* valid while p is listed */
	enum push_kind kind;
	char *jid, *node;         /* enable/disable/remove (node NULL: every node of jid) */
	char *resource;           /* enable: of the session; unseen: of the session that did not
	                           * see the message (NULL: stored offline) */
	struct xml_node *options; /* enable */
	char *sender, *body;      /* unseen (either may be NULL) */
	char **told;              /* unseen: the devices (resources) told of it already */
	size_t ntold;
	struct push_list next; /* a write: the list it stores */
	struct push_op *qnext;
};

/* A publish waiting for the app server's answer. */
struct push_send {
	struct push_send *prev, *next;
	struct push_state *ps;
	struct iq_out *out;
	char *user, *jid, *node;
};

struct push_state {
	struct host *host;
	const struct push_settings *set;
	struct pending_ops ops;
	struct htab users; /* struct push_user by name */
	struct push_send *sends;
	ev_timer flush; /* sends the pushes that are due */
};

/* ---- device lists ------------------------------------------------------------ */

static void device_clear(struct push_device *d)
{
	free(d->jid);
	free(d->node);
	free(d->resource);
	free(d->last_sender);
	free(d->last_body);
	xml_unref(&d->options);
	memset(d, 0, sizeof(*d));
}

static void list_clear(struct push_list *l)
{
	for (size_t i = 0; i < l->count; i++)
		device_clear(&l->items[i]);
	free(l->items);
	l->items = NULL;
	l->count = 0;
}

static struct push_device *list_add(struct push_list *l)
{
	l->items = xrealloc(l->items, (l->count + 1) * sizeof(*l->items));
	struct push_device *d = &l->items[l->count++];
	memset(d, 0, sizeof(*d));
	return d;
}

static void list_del(struct push_list *l, size_t i)
{
	device_clear(&l->items[i]);
	memmove(&l->items[i], &l->items[i + 1], (l->count - i - 1) * sizeof(*l->items));
	l->count--;
}

static bool device_matches(const struct push_device *d, const char *jid, const char *node)
{
	return strcmp(d->jid, jid) == 0 && (node == NULL || strcmp(d->node, node) == 0);
}

static void list_copy(struct push_list *dst, const struct push_list *src)
{
	memset(dst, 0, sizeof(*dst));
	for (size_t i = 0; i < src->count; i++) {
		struct push_device *d = list_add(dst);
		*d = src->items[i];
		d->jid = xstrdup(d->jid);
		d->node = xstrdup(d->node);
		d->resource = d->resource != NULL ? xstrdup(d->resource) : NULL;
		d->options = d->options != NULL ? xml_copy(d->options) : NULL;
		d->last_sender = d->last_body = NULL; /* keep_runtime moves them */
	}
}

/* The stored form of l. */
static char *list_serialize(const struct push_list *l)
{
	struct xml_node *root = xml_new("devices", NS_PUSH_STORE);
	for (size_t i = 0; i < l->count; i++) {
		const struct push_device *d = &l->items[i];
		struct xml_node *el = xml_add_child(root, "device", NS_PUSH_STORE);
		char since[24];
		snprintf(since, sizeof(since), "%" PRId64, d->since);
		xml_set_attr(el, "jid", d->jid);
		xml_set_attr(el, "node", d->node);
		xml_set_attr(el, "since", since);
		if (d->resource != NULL)
			xml_set_attr(el, "resource", d->resource);
		if (d->options != NULL)
			xml_append_copy(el, d->options);
	}
	char *text = xml_to_string(root, NULL);
	xml_unref(&root);
	return text;
}

/* The devices of a stored element (what does not read as one is skipped:
 * the user may write this namespace through private XML storage too). */
static void list_parse(struct push_list *l, const char *text)
{
	struct xml_node *root = builtin_parse_stored(text, "devices", NS_PUSH_STORE);
	if (root == NULL)
		return;
	for (struct xml_node *el = xml_child(root, "device", NS_PUSH_STORE); el != NULL;
	     el = xml_next(el, "device", NS_PUSH_STORE)) {
		const char *jid = xml_attr(el, "jid");
		const char *node = xml_attr(el, "node");
		struct jid j;
		const char *err;
		if (jid == NULL || node == NULL || jid_parse(jid, &j, &err) != 0)
			continue;
		struct push_device *d = list_add(l);
		d->jid = jid_to_string(&j);
		jid_clear(&j);
		d->node = xstrdup(node);
		const char *resource = xml_attr(el, "resource");
		d->resource = resource != NULL && *resource != '\0' ? xstrdup(resource) : NULL;
		const char *since = xml_attr(el, "since");
		d->since = since != NULL ? strtoll(since, NULL, 10) : 0;
		struct xml_node *x = xml_child(el, "x", NS_PUSH_XDATA);
		d->options = x != NULL ? xml_copy(x) : NULL;
	}
	xml_unref(&root);
}

/* ---- users and their queues ----------------------------------------------------- */

static struct push_user *user_find(struct push_state *ps, const char *name, bool create)
{
	uint32_t hash = hash_str(name);
	for (struct htab_link *l = htab_chain(&ps->users, hash); l != NULL; l = l->next)
		if (l->hash == hash && strcmp(((struct push_user *)l)->name, name) == 0)
			return (struct push_user *)l;
	if (!create)
		return NULL;
	struct push_user *u = xcalloc(1, sizeof(*u));
	u->name = xstrdup(name);
	htab_add(&ps->users, &u->link, hash);
	return u;
}

static void user_free(struct push_state *ps, struct push_user *u)
{
	htab_remove(&ps->users, &u->link);
	list_clear(&u->devs);
	free(u->name);
	free(u);
}

static void op_free(struct pending_op *p)
{
	struct push_op *op = (struct push_op *)p;
	pending_untrack(p);
	free(op->jid);
	free(op->node);
	free(op->resource);
	free(op->sender);
	free(op->body);
	for (size_t i = 0; i < op->ntold; i++)
		free(op->told[i]);
	free(op->told);
	xml_unref(&op->options);
	list_clear(&op->next);
	free(op);
}

static struct push_op *op_new(struct push_state *ps, enum push_kind kind, struct iq_request *req)
{
	struct push_op *op = xcalloc(1, sizeof(*op));
	op->ps = ps;
	op->kind = kind;
	op->p.req = req;
	pending_track(&ps->ops, &op->p, op_free);
	return op;
}

static void user_pump(struct push_state *ps, struct push_user *u);

/* Queue op for user name (made when needed) and run what can run. */
static void user_enqueue(struct push_state *ps, const char *name, struct push_op *op)
{
	struct push_user *u = user_find(ps, name, true);
	op->u = u;
	pending_idle(&op->p);
	if (u->tail != NULL)
		u->tail->qnext = op;
	else
		u->head = op;
	u->tail = op;
	user_pump(ps, u);
}

static struct push_op *user_pop(struct push_user *u)
{
	struct push_op *op = u->head;
	u->head = op->qnext;
	if (u->head == NULL)
		u->tail = NULL;
	op->qnext = NULL;
	return op;
}

static void store_read(enum storage_result res, const char *text, void *ctx);
static void store_written(enum storage_result res, void *ctx);
static void notify(struct push_state *ps, struct push_user *u, const struct push_op *op);

/* Start writing op->next as u's list. */
static void user_write(struct push_state *ps, struct push_user *u, struct push_op *op)
{
	char *text = list_serialize(&op->next);
	struct private_item item = { .ns = NS_PUSH_STORE, .data = text };
	u->busy = true;
	pending_wait_storage(&op->p, storage_private_set(ps->host->storage, ps->host->name, u->name, &item, 1,
	                                                 store_written, op));
	free(text);
}

/* op (enable, disable or remove) against the loaded list: answered at once
 * when it changes nothing, else its write is started.  Returns whether it
 * waits for storage. */
static bool user_change(struct push_state *ps, struct push_user *u, struct push_op *op)
{
	list_copy(&op->next, &u->devs);
	bool changed = false;
	for (size_t i = op->next.count; i > 0; i--) {
		if (device_matches(&op->next.items[i - 1], op->jid, op->node)) {
			list_del(&op->next, i - 1);
			changed = true;
		}
	}
	if (op->kind == PK_ENABLE) {
		while (op->next.count >= ps->set->max_devices) {
			log_info("push %s: %s@%s has %zu devices; the oldest (%s, node %s) is replaced",
			         ps->host->name, u->name, ps->host->name, op->next.count,
			         op->next.items[0].jid, op->next.items[0].node);
			list_del(&op->next, 0);
		}
		struct push_device *d = list_add(&op->next);
		d->jid = xstrdup(op->jid);
		d->node = xstrdup(op->node);
		d->resource = op->resource != NULL ? xstrdup(op->resource) : NULL;
		d->options = op->options != NULL ? xml_copy(op->options) : NULL;
		d->since = (int64_t)ev_now(server.loop);
		changed = true;
	}
	if (!changed) {
		if (op->p.req != NULL)
			iq_result(op->p.req, NULL);
		op->p.req = NULL;
		return false;
	}
	user_write(ps, u, op);
	return true;
}

/* Whether u is kept: it has work, or its list is loaded and it has
 * devices or a session. */
static bool user_keep(struct push_state *ps, const struct push_user *u)
{
	return u->busy || u->head != NULL ||
	       (u->loaded && (u->devs.count > 0 || sm_user_sessions(ps->host, u->name) != NULL));
}

/* Run u's queued ops until one waits for storage; forget u when it is not
 * kept. */
static void user_pump(struct push_state *ps, struct push_user *u)
{
	while (!u->busy && u->head != NULL) {
		if (!u->loaded) {
			struct push_op *load = op_new(ps, PK_LOAD, NULL);
			load->u = u;
			u->busy = true;
			pending_wait_storage(&load->p,
			                     storage_private_get(ps->host->storage, ps->host->name, u->name,
			                                         NS_PUSH_STORE, store_read, load));
			return;
		}
		struct push_op *op = user_pop(u);
		if (op->kind == PK_UNSEEN) {
			notify(ps, u, op);
		} else if (user_change(ps, u, op)) {
			return;
		}
		op_free(&op->p);
	}
	if (!user_keep(ps, u))
		user_free(ps, u);
}

/* The stored list is no longer what u holds (written behind the cache). */
static void user_forget(struct push_state *ps, const char *name)
{
	struct push_user *u = user_find(ps, name, false);
	if (u == NULL)
		return;
	if (u->busy) {
		u->stale = true;
		return;
	}
	u->loaded = false;
	list_clear(&u->devs);
	user_pump(ps, u);
}

/* A read failed: the queued requests are answered, the unseen messages of
 * the queue get no push. */
static void user_fail(struct push_state *ps, struct push_user *u, enum storage_result res)
{
	unsigned dropped = 0;
	while (u->head != NULL) {
		struct push_op *op = user_pop(u);
		if (op->p.req != NULL)
			errmap_iq_storage(op->p.req, res, "the push registrations");
		op->p.req = NULL;
		if (op->kind == PK_UNSEEN)
			dropped++;
		op_free(&op->p);
	}
	if (dropped > 0)
		log_warning("push %s: the registrations of %s cannot be read (storage %s); %u message(s) "
		            "get no push",
		            ps->host->name, u->name, storage_result_str(res), dropped);
}

static void store_read(enum storage_result res, const char *text, void *ctx)
{
	struct push_op *op = ctx;
	if (!pending_resume(&op->p))
		return;
	struct push_state *ps = op->ps;
	struct push_user *u = op->u;
	op_free(&op->p);
	u->busy = false;
	u->stale = false;
	if (res == STORAGE_OK || res == STORAGE_NOT_FOUND) {
		list_clear(&u->devs);
		if (res == STORAGE_OK && text != NULL)
			list_parse(&u->devs, text);
		u->loaded = true;
	} else {
		user_fail(ps, u, res);
	}
	user_pump(ps, u);
}

/* The in-memory state of the devices that stay (matched by jid and node),
 * moved from old. */
static void keep_runtime(struct push_list *next, struct push_list *old)
{
	for (size_t i = 0; i < next->count; i++) {
		struct push_device *d = &next->items[i];
		for (size_t j = 0; j < old->count; j++) {
			struct push_device *o = &old->items[j];
			if (strcmp(o->jid, d->jid) == 0 && strcmp(o->node, d->node) == 0) {
				d->last_push = o->last_push;
				d->unseen = o->unseen;
				d->warned = o->warned;
				d->due = o->due;
				d->last_sender = o->last_sender;
				d->last_body = o->last_body;
				o->last_sender = o->last_body = NULL;
				break;
			}
		}
	}
}

static void store_written(enum storage_result res, void *ctx)
{
	struct push_op *op = ctx;
	if (!pending_resume(&op->p))
		return;
	struct push_state *ps = op->ps;
	struct push_user *u = op->u;
	u->busy = false;
	if (res == STORAGE_OK) {
		keep_runtime(&op->next, &u->devs);
		list_clear(&u->devs);
		u->devs = op->next;
		memset(&op->next, 0, sizeof(op->next));
		if (op->kind == PK_ENABLE) { /* a new registration starts afresh */
			struct push_device *d = &u->devs.items[u->devs.count - 1];
			d->last_push = 0;
			d->unseen = 0;
			d->warned = false;
			d->due = false;
		}
		if (op->p.req != NULL)
			iq_result(op->p.req, NULL);
		else if (op->kind == PK_REMOVE)
			log_info("push %s: %s@%s: device %s (node %s) removed: its app server refused a push",
			         ps->host->name, u->name, ps->host->name, op->jid, op->node);
	} else {
		if (op->p.req != NULL)
			errmap_iq_storage(op->p.req, res, "the push registrations");
		else
			log_warning("push %s: cannot remove a device of %s (storage %s)", ps->host->name,
			            u->name, storage_result_str(res));
	}
	op->p.req = NULL;
	op_free(&op->p);
	if (u->stale) {
		u->stale = false;
		u->loaded = false;
		list_clear(&u->devs);
	}
	user_pump(ps, u);
}

/* ---- pushes ------------------------------------------------------------------------ */

static void add_field(struct xml_node *x, const char *var, const char *type, const char *value)
{
	struct xml_node *f = xml_add_child(x, "field", NS_PUSH_XDATA);
	xml_set_attr(f, "var", var);
	if (type != NULL)
		xml_set_attr(f, "type", type);
	struct xml_node *v = xml_add_child(f, "value", NS_PUSH_XDATA);
	xml_add_text(v, value, strlen(value));
}

static void send_free(struct push_send *s)
{
	struct push_state *ps = s->ps;
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		ps->sends = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	free(s->user);
	free(s->jid);
	free(s->node);
	free(s);
}

/* The defined condition of an error stanza, or NULL. */
static const char *error_condition(const struct xml_node *answer, const char **type_r)
{
	const struct xml_node *err = xml_child(answer, "error", NULL);
	*type_r = err != NULL ? xml_attr(err, "type") : NULL;
	if (err == NULL)
		return NULL;
	for (struct xml_node *c = xml_first_element(err); c != NULL; c = xml_next(c, NULL, NULL))
		if (xml_is(c, NULL, NS_STANZAS) && strcmp(c->name, "text") != 0)
			return c->name;
	return NULL;
}

static struct push_device *device_find(struct push_state *ps, const char *user, const char *jid,
                                       const char *node)
{
	struct push_user *u = user_find(ps, user, false);
	if (u == NULL || !u->loaded)
		return NULL;
	for (size_t i = 0; i < u->devs.count; i++)
		if (device_matches(&u->devs.items[i], jid, node))
			return &u->devs.items[i];
	return NULL;
}

static void push_answered(struct xml_node *answer, void *ctx)
{
	struct push_send *s = ctx;
	struct push_state *ps = s->ps;
	const char *type = answer != NULL ? xml_attr(answer, "type") : NULL;
	if (answer == NULL) {
		log_debug("push %s: no answer from %s (node %s) to a push for %s", ps->host->name, s->jid,
		          s->node, s->user);
	} else if (type != NULL && strcmp(type, "error") == 0) {
		const char *etype;
		const char *cond = error_condition(answer, &etype);
		bool permanent = cond != NULL && (strcmp(cond, "item-not-found") == 0 ||
		                                  (etype != NULL && strcmp(etype, "auth") == 0));
		if (permanent) {
			struct push_op *op = op_new(ps, PK_REMOVE, NULL);
			op->jid = xstrdup(s->jid);
			op->node = xstrdup(s->node);
			user_enqueue(ps, s->user, op);
		} else {
			struct push_device *d = device_find(ps, s->user, s->jid, s->node);
			if (d == NULL || !d->warned)
				log_info("push %s: the app server %s (node %s) of %s@%s answered a push "
				         "with %s; the device stays registered",
				         ps->host->name, s->jid, s->node, s->user, ps->host->name,
				         cond != NULL ? cond : "an error");
			if (d != NULL)
				d->warned = true;
		}
	}
	send_free(s);
}

/* Publish the summary to d now (sender and body of the last message, or
 * NULL). */
static void push_send(struct push_state *ps, struct push_user *u, struct push_device *d, const char *sender,
                      const char *body)
{
	struct jid to, from = { 0 };
	const char *err;
	if (jid_parse(d->jid, &to, &err) != 0)
		return;
	jid_set(&from, u->name, ps->host->name, NULL);
	struct xml_node *iq = xml_new("iq", NS_CLIENT);
	xml_set_attr(iq, "type", "set");
	struct xml_node *pubsub = xml_add_child(iq, "pubsub", NS_PUSH_PUBSUB);
	struct xml_node *publish = xml_add_child(pubsub, "publish", NS_PUSH_PUBSUB);
	xml_set_attr(publish, "node", d->node);
	struct xml_node *item = xml_add_child(publish, "item", NS_PUSH_PUBSUB);
	struct xml_node *n = xml_add_child(item, "notification", NS_PUSH);
	struct xml_node *x = xml_add_child(n, "x", NS_PUSH_XDATA);
	xml_set_attr(x, "type", "submit");
	add_field(x, "FORM_TYPE", "hidden", PUSH_SUMMARY);
	char count[16];
	snprintf(count, sizeof(count), "%u", d->unseen);
	add_field(x, "message-count", NULL, count);
	if (ps->set->include_sender && sender != NULL)
		add_field(x, "last-message-sender", NULL, sender);
	if (ps->set->include_body && body != NULL)
		add_field(x, "last-message-body", NULL, body);
	if (d->options != NULL) {
		struct xml_node *po = xml_add_child(pubsub, "publish-options", NS_PUSH_PUBSUB);
		xml_append_copy(po, d->options);
	}
	struct push_send *s = xcalloc(1, sizeof(*s));
	s->ps = ps;
	s->user = xstrdup(u->name);
	s->jid = xstrdup(d->jid);
	s->node = xstrdup(d->node);
	s->next = ps->sends;
	if (ps->sends != NULL)
		ps->sends->prev = s;
	ps->sends = s;
	s->out = iq_send(ps->host, iq, &from, &to, ps->set->timeout, push_answered, s);
	xml_unref(&iq);
	jid_clear(&to);
	jid_clear(&from);
}

/* Run the flush timer at when (ev_now time) unless it runs earlier. */
static void flush_at(struct push_state *ps, double when)
{
	double now = ev_now(server.loop);
	double after = when > now ? when - now : 0;
	if (ev_is_active(&ps->flush) && ev_timer_remaining(server.loop, &ps->flush) <= after)
		return;
	ev_timer_stop(server.loop, &ps->flush);
	ev_timer_set(&ps->flush, after, 0);
	ev_timer_start(server.loop, &ps->flush);
}

static void send_now(struct push_state *ps, struct push_user *u, struct push_device *d, const char *sender,
                     const char *body)
{
	d->last_push = ev_now(server.loop);
	d->due = false;
	push_send(ps, u, d, sender, body);
	free(d->last_sender);
	free(d->last_body);
	d->last_sender = d->last_body = NULL;
}

/* Whether the device that registered d is online and sees what comes: a
 * session of u with d's resource that is neither detached (stream
 * management) nor inactive (client state indication).  A registration
 * without a resource (stored before registrations named one) belongs to
 * no session. */
static bool device_active(struct push_state *ps, const struct push_user *u, const struct push_device *d)
{
	if (d->resource == NULL)
		return false;
	for (const struct session *s = sm_user_sessions(ps->host, u->name); s != NULL; s = s->next_of_user)
		if (s->jid.resource != NULL && strcmp(s->jid.resource, d->resource) == 0)
			return !s->detached && !s->inactive;
	return false;
}

/* Whether an unseen message (op) is for d, a device that is not active: a
 * message one session did not see (op->resource: detached or inactive)
 * wakes that session's device only (another session of the user took it),
 * and the registrations that name no resource; a message stored offline
 * wakes every one but the devices it was counted for already, as it was
 * queued for their sessions (op->told; the registrations that name no
 * resource were counted with them). */
static bool device_wanted(const struct push_device *d, const struct push_op *op)
{
	if (op->resource != NULL)
		return d->resource == NULL || strcmp(d->resource, op->resource) == 0;
	if (op->ntold > 0 && d->resource == NULL)
		return false;
	for (size_t i = 0; i < op->ntold; i++)
		if (strcmp(d->resource, op->told[i]) == 0)
			return false;
	return true;
}

/* The device is back: what it owed is seen. */
static void device_seen(struct push_device *d)
{
	d->unseen = 0;
	d->due = false;
	free(d->last_sender);
	free(d->last_body);
	d->last_sender = d->last_body = NULL;
}

/* An unseen message (op) for u: the counter of every device it wakes (not
 * active, device_wanted) goes up; such a device whose last push is older than
 * min_interval gets one now, the others one when their interval is over. */
static void notify(struct push_state *ps, struct push_user *u, const struct push_op *op)
{
	double now = ev_now(server.loop);
	for (size_t i = 0; i < u->devs.count; i++) {
		struct push_device *d = &u->devs.items[i];
		if (device_active(ps, u, d)) {
			device_seen(d); /* resumed or active again since its last push */
			continue;
		}
		if (!device_wanted(d, op))
			continue;
		d->unseen++;
		if (d->last_push > 0 && now - d->last_push < ps->set->min_interval) {
			log_debug("push %s: %s@%s: device %s (node %s) pushed %.1f s ago; the next "
			          "push waits",
			          ps->host->name, u->name, ps->host->name, d->jid, d->node,
			          now - d->last_push);
			d->due = true;
			free(d->last_sender);
			free(d->last_body);
			d->last_sender = op->sender != NULL ? xstrdup(op->sender) : NULL;
			d->last_body = op->body != NULL ? xstrdup(op->body) : NULL;
			flush_at(ps, d->last_push + ps->set->min_interval);
			continue;
		}
		send_now(ps, u, d, op->sender, op->body);
	}
}

/* The flush timer: the owed pushes whose interval is over go out; the
 * timer is set again for the earliest one still owed. */
static void flush_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	latency_begin(LATENCY_MODULE, "push");
	(void)loop;
	(void)revents;
	struct push_state *ps = w->data;
	/* The users first: a push is routed at once, and what routing runs
	 * may add users to the table (a rehash) while it is walked. */
	struct push_user **due = NULL;
	size_t n = 0;
	for (unsigned b = 0; b < ps->users.nbuckets; b++) {
		for (struct htab_link *l = ps->users.buckets[b]; l != NULL; l = l->next) {
			struct push_user *u = (struct push_user *)l;
			for (size_t i = 0; u->loaded && i < u->devs.count; i++) {
				if (u->devs.items[i].due) {
					due = xrealloc(due, (n + 1) * sizeof(*due));
					due[n++] = u;
					break;
				}
			}
		}
	}
	double now = ev_now(server.loop);
	double next = -1;
	for (size_t k = 0; k < n; k++) {
		struct push_user *u = due[k];
		for (size_t i = 0; i < u->devs.count; i++) {
			struct push_device *d = &u->devs.items[i];
			if (!d->due)
				continue;
			if (device_active(ps, u, d)) {
				device_seen(d); /* the device came back first */
				continue;
			}
			double when = d->last_push + ps->set->min_interval;
			if (when <= now + 0.001) {
				char *sender = d->last_sender, *body = d->last_body;
				d->last_sender = d->last_body = NULL;
				send_now(ps, u, d, sender, body);
				free(sender);
				free(body);
			} else if (next < 0 || when < next) {
				next = when;
			}
		}
	}
	free(due);
	if (next >= 0)
		flush_at(ps, next);
	latency_end();
}

/* ---- the iq handler -------------------------------------------------------------------- */

/* Whether x is a submitted publish-options form (XEP-0357 §5). */
static bool options_ok(const struct xml_node *x)
{
	const char *type = xml_attr(x, "type");
	if (type == NULL || strcmp(type, "submit") != 0)
		return false;
	for (struct xml_node *f = xml_child(x, "field", NS_PUSH_XDATA); f != NULL;
	     f = xml_next(f, "field", NS_PUSH_XDATA)) {
		const char *var = xml_attr(f, "var");
		if (var != NULL && strcmp(var, "FORM_TYPE") == 0) {
			const char *v = xml_child_text(f, "value", NS_PUSH_XDATA);
			return v != NULL && strcmp(v, PUSH_PUBLISH_OPTIONS) == 0;
		}
	}
	return false;
}

static void push_iq(struct iq_request *req, void *ctx)
{
	struct push_state *ps = ctx;
	struct host *h = ps->host;
	if (req->from.node == NULL || strcmp(req->from.domain, h->name) != 0 ||
	    !jid_bare_equal(&req->from, &req->to)) {
		iq_error(req, SE_FORBIDDEN, "push registrations are the account owner's only");
		return;
	}
	bool enable = xml_is(req->payload, "enable", NS_PUSH);
	if (strcmp(req->type, "set") != 0 || (!enable && !xml_is(req->payload, "disable", NS_PUSH))) {
		iq_error(req, SE_BAD_REQUEST, NULL);
		return;
	}
	const char *jid = xml_attr(req->payload, "jid");
	const char *node = xml_attr(req->payload, "node");
	struct jid j;
	const char *err;
	if (jid == NULL || jid_parse(jid, &j, &err) != 0) {
		iq_error(req, SE_BAD_REQUEST, jid == NULL ? "the app server's jid is missing" : err);
		return;
	}
	if (node != NULL && node[0] == '\0')
		node = NULL;
	if (enable && node == NULL) {
		jid_clear(&j);
		iq_error(req, SE_BAD_REQUEST, "the node is missing");
		return;
	}
	struct xml_node *options = NULL;
	if (enable) {
		for (struct xml_node *x = xml_child(req->payload, "x", NS_PUSH_XDATA); x != NULL;
		     x = xml_next(x, "x", NS_PUSH_XDATA)) {
			if (!options_ok(x) || options != NULL) {
				jid_clear(&j);
				iq_error(req, SE_BAD_REQUEST,
				         "publish-options must be one submitted form of "
				         "FORM_TYPE " PUSH_PUBLISH_OPTIONS);
				return;
			}
			options = x;
		}
	}
	struct push_op *op = op_new(ps, enable ? PK_ENABLE : PK_DISABLE, req);
	op->jid = jid_to_string(&j);
	jid_clear(&j);
	op->node = node != NULL ? xstrdup(node) : NULL;
	op->resource = req->from.resource != NULL ? xstrdup(req->from.resource) : NULL;
	op->options = options != NULL ? xml_copy(options) : NULL;
	user_enqueue(ps, req->from.node, op);
}

/* ---- hooks ---------------------------------------------------------------------------- */

static enum hook_result push_unseen(struct host *h, void *args, void *ctx)
{
	(void)h;
	struct push_state *ps = ctx;
	struct hook_packet *hp = args;
	if (hp->to == NULL || hp->to->node == NULL || hp->stanza == NULL)
		return HOOK_CONTINUE;
	const char *type = xml_attr(hp->stanza, "type");
	/* Errors, and what is no conversation (headlines: pubsub events, among
	 * them the notifications of a local app server, which must not wake
	 * anyone in turn). */
	if (type != NULL &&
	    (strcmp(type, "error") == 0 || strcmp(type, "groupchat") == 0 || strcmp(type, "headline") == 0))
		return HOOK_CONTINUE;
	struct push_op *op = op_new(ps, PK_UNSEEN, NULL);
	if (hp->from != NULL && hp->from->domain != NULL)
		op->sender = jid_to_string(hp->from);
	const char *body = xml_child_text(hp->stanza, "body", NULL);
	if (ps->set->include_body && body != NULL)
		op->body = xstrdup(body);
	if (hp->session != NULL && hp->session->jid.resource != NULL)
		op->resource = xstrdup(hp->session->jid.resource);
	if (hp->ntold > 0) {
		op->told = xcalloc(hp->ntold, sizeof(*op->told));
		for (size_t i = 0; i < hp->ntold; i++)
			op->told[i] = xstrdup(hp->told[i]);
		op->ntold = hp->ntold;
	}
	user_enqueue(ps, hp->to->node, op);
	return HOOK_CONTINUE;
}

/* The app server's answer to a push: an iq result or error to a user's
 * bare JID, which the session manager would drop. */
static enum hook_result push_stanza_in(struct host *h, void *args, void *ctx)
{
	struct push_state *ps = ctx;
	struct hook_packet *hp = args;
	if (ps->sends == NULL || hp->to == NULL || hp->to->resource != NULL ||
	    stanza_kind(hp->stanza) != STANZA_IQ)
		return HOOK_CONTINUE;
	return iq_response(h, hp->stanza, hp->from) ? HOOK_STOP : HOOK_CONTINUE;
}

/* A session opened, was resumed, or its client said it is active again:
 * the device behind it is back. */
static enum hook_result push_session_back(struct host *h, void *args, void *ctx)
{
	(void)h;
	struct push_state *ps = ctx;
	struct hook_session *hs = args;
	struct push_user *u = user_find(ps, hs->session->jid.node, false);
	const char *resource = hs->session->jid.resource;
	for (size_t i = 0; u != NULL && i < u->devs.count; i++) {
		struct push_device *d = &u->devs.items[i];
		/* That device sees them now (one without a resource: any). */
		if (d->resource == NULL || (resource != NULL && strcmp(d->resource, resource) == 0))
			device_seen(d);
	}
	return HOOK_CONTINUE;
}

/* The user's last session closed: a user without devices is forgotten. */
static enum hook_result push_session_closed(struct host *h, void *args, void *ctx)
{
	(void)h;
	struct push_state *ps = ctx;
	struct hook_session *hs = args;
	struct push_user *u = user_find(ps, hs->session->jid.node, false);
	if (u != NULL && !user_keep(ps, u))
		user_free(ps, u);
	return HOOK_CONTINUE;
}

static enum hook_result push_private_set(struct host *h, void *args, void *ctx)
{
	(void)h;
	struct hook_private *hpr = args;
	if (hpr->element != NULL && xml_is(hpr->element, "devices", NS_PUSH_STORE))
		user_forget(ctx, hpr->user);
	return HOOK_CONTINUE;
}

static enum hook_result push_remove_user(struct host *h, void *args, void *ctx)
{
	(void)h;
	struct hook_user *hu = args;
	user_forget(ctx, hu->user);
	return HOOK_CONTINUE;
}

/* ---- module ------------------------------------------------------------------------------ */

static const struct builtin_iq push_iqs[] = {
	{ IQ_SCOPE_USER, NS_PUSH, IQ_PARALLEL, push_iq },
};

static const struct builtin_hook push_hooks[] = {
	{ HOOK_MESSAGE_UNSEEN, 50, push_unseen },
	/* Before mod_blocking (10): an answer to a push is ours whoever sent it. */
	{ HOOK_STANZA_IN, 5, push_stanza_in },
	{ HOOK_SESSION_OPENED, 50, push_session_back },
	{ HOOK_SESSION_RESUMED, 50, push_session_back },
	{ HOOK_SESSION_ACTIVE, 50, push_session_back },
	{ HOOK_SESSION_CLOSED, 50, push_session_closed },
	{ HOOK_PRIVATE_SET, 50, push_private_set },
	{ HOOK_REMOVE_USER, 50, push_remove_user },
};

static const struct builtin_parts push_parts = {
	.iqs = push_iqs,
	.niqs = ARRAY_SIZE(push_iqs),
	.hooks = push_hooks,
	.nhooks = ARRAY_SIZE(push_hooks),
	.user_feature = NS_PUSH,
};

static int push_check(const struct host_config *hc, const void *settings, const struct cfg_node *opts,
                      const char *section, char **error_r)
{
	(void)hc;
	const struct push_settings *set = settings;
	if (set->timeout <= 0) {
		*error_r = cfg_key_error(opts, "timeout", section, "an app server needs some time to answer");
		return -1;
	}
	if (set->min_interval < 0) {
		*error_r = cfg_key_error(opts, "min_interval", section, "a negative interval");
		return -1;
	}
	return 0;
}

static int push_start(struct host *h, const void *settings, void **state_r, char **error_r)
{
	struct push_state *ps = xcalloc(1, sizeof(*ps));
	ps->host = h;
	ps->set = settings;
	if (builtin_parts_add(h, &push_parts, ps, error_r) < 0) {
		free(ps);
		return -1;
	}
	ev_timer_init(&ps->flush, flush_cb, 0, 0);
	ps->flush.data = ps;
	*state_r = ps;
	return 0;
}

static void push_stop(struct host *h, void *state)
{
	struct push_state *ps = state;
	builtin_parts_remove(h, &push_parts, ps);
	ev_timer_stop(server.loop, &ps->flush);
	while (ps->sends != NULL) {
		iq_send_cancel(ps->sends->out);
		send_free(ps->sends);
	}
	pending_stop(&ps->ops);
	struct htab_link *l;
	while ((l = htab_any(&ps->users)) != NULL)
		user_free(ps, (struct push_user *)l);
	htab_free(&ps->users);
	free(ps);
}

const struct module_def mod_push = {
	.name = "push",
	.description = "push notifications to app servers (XEP-0357)",
	.options = push_options,
	.settings_size = sizeof(struct push_settings),
	.default_enabled = true,
	.check = push_check,
	.start = push_start,
	.stop = push_stop,
};
