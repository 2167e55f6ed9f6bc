/*
 * Publish-subscribe (XEP-0060) and PEP (XEP-0163): what the files of
 * modules/pubsub/ share.  Loop thread.
 *
 * An owner holds nodes: a pubsub service (pubsub.example.com, a route of
 * its own in the router) or a local user's account (PEP: iqs to the bare
 * JID).  An owner's nodes, their affiliations, subscriptions and items
 * are kept in memory while the owner is in use and written through to the
 * host's pubsub store (storage_pubsub_*); an owner is loaded on first use
 * and requests wait for the load.  A PEP owner also keeps the user's
 * roster (as the presence and roster access models and notifications
 * need it), loaded with it and followed through roster_changed.
 *
 * pubsub.c: the module, services, PEP, owners and their loading, disco,
 * the pep.h interface.  pubsub-node.c: the XEP-0060 protocol (requests,
 * access, publishing, notifications).  pubsub-config.c: node
 * configuration, its forms and its stored text.
 */
#ifndef PARLEY_MODULES_PUBSUB_H
#define PARLEY_MODULES_PUBSUB_H

#include "lib/jid.h"
#include "lib/util.h"
#include "lib/xml.h"
#include "server/stanza.h"
#include "storage/storage.h"

#define NS_PUBSUB "http://jabber.org/protocol/pubsub"
#define NS_PUBSUB_OWNER "http://jabber.org/protocol/pubsub#owner"
#define NS_PUBSUB_EVENT "http://jabber.org/protocol/pubsub#event"
#define NS_PUBSUB_ERRORS "http://jabber.org/protocol/pubsub#errors"
#define NS_PUBSUB_NODE_CONFIG "http://jabber.org/protocol/pubsub#node_config"
#define NS_PUBSUB_PUBLISH_OPTIONS "http://jabber.org/protocol/pubsub#publish-options"
#define NS_PUBSUB_SUB_OPTIONS "http://jabber.org/protocol/pubsub#subscribe_options"
#define NS_PUBSUB_SUB_AUTH "http://jabber.org/protocol/pubsub#subscribe_authorization"
#define NS_PUBSUB_META "http://jabber.org/protocol/pubsub#meta-data"
#define NS_RSM "http://jabber.org/protocol/rsm"
#define NS_XDATA "jabber:x:data"

struct host;
struct session;

enum ps_access {
	PS_ACCESS_OPEN,
	PS_ACCESS_PRESENCE,
	PS_ACCESS_ROSTER,
	PS_ACCESS_WHITELIST,
	PS_ACCESS_AUTHORIZE
};
enum ps_publish_model { PS_PUBLISH_PUBLISHERS, PS_PUBLISH_SUBSCRIBERS, PS_PUBLISH_OPEN };
enum ps_send_last { PS_SEND_LAST_NEVER, PS_SEND_LAST_ON_SUB, PS_SEND_LAST_ON_SUB_AND_PRESENCE };
/* Affiliations, in rank order (publish-only is below member for reading). */
enum ps_aff {
	PS_AFF_OUTCAST,
	PS_AFF_NONE,
	PS_AFF_PUBLISH_ONLY,
	PS_AFF_MEMBER,
	PS_AFF_PUBLISHER,
	PS_AFF_OWNER
};
const char *ps_aff_str(enum ps_aff a);
int ps_aff_parse(const char *s); /* -1 when unknown */

#define PS_MAX_ITEMS_MAX UINT_MAX /* pubsub#max_items "max" */

/* A node's configuration (pubsub#node_config). */
struct ps_config {
	char *title;       /* NULL when none */
	char *description; /* NULL when none */
	char *type;        /* pubsub#type, NULL when none */
	enum ps_access access;
	struct strlist roster_groups; /* for PS_ACCESS_ROSTER */
	enum ps_publish_model publish_model;
	enum ps_send_last send_last;
	unsigned max_items; /* PS_MAX_ITEMS_MAX: as many as the module allows */
	bool deliver_notifications, deliver_payloads, persist_items;
	bool notify_retract, notify_delete, notify_config;
	bool subscribe; /* subscriptions allowed */
	bool headline;  /* notification type headline (else normal) */
};

/* The module's settings (pubsub.c's option table). */
struct pubsub_settings {
	struct strlist hosts;
	bool pep;
	unsigned access_create; /* enum ps_create */
	struct strlist create_list;
	size_t max_item_size;
	unsigned max_items_per_node, default_max_items, max_nodes_per_user;
	unsigned max_subscriptions; /* per node */
	unsigned idle_owner_time;   /* seconds an unused PEP owner stays loaded */
};
enum ps_create { PS_CREATE_ANYONE, PS_CREATE_LOCAL, PS_CREATE_ADMINS, PS_CREATE_LIST };

/* Defaults for a new node of a service (pep false) or of an account. */
void ps_config_defaults(struct ps_config *c, const struct pubsub_settings *s, bool pep);
void ps_config_clear(struct ps_config *c);
void ps_config_copy(struct ps_config *dst, const struct ps_config *src);
/* The pubsub#node_config form (type form) of c, node named node. */
struct xml_node *ps_config_form(const struct ps_config *c, const char *node, const struct pubsub_settings *s);
/* Apply a submitted form x (type submit; FORM_TYPE node_config or
 * publish-options) to c.  -1 with *e_r and a static *text_r when a field is
 * malformed or a value not allowed. */
int ps_config_apply(struct ps_config *c, const struct xml_node *x, const struct pubsub_settings *s,
                    enum stanza_error *e_r, const char **text_r);
/* The var of the first field of the form x that is not a node_config
 * field of this service (FORM_TYPE aside), or NULL: publish-options with
 * one is refused, even when the publish creates the node (§7.1.5). */
const char *ps_config_unknown_field(const struct xml_node *x);
/* Whether c satisfies every field of the publish-options form x (XEP-0060
 * §7.1.5): false with *text_r naming the first field that does not. */
bool ps_config_meets(const struct ps_config *c, const struct xml_node *x, const struct pubsub_settings *s,
                     const char **text_r);
/* The stored text of c, and back (unknown keys ignored, defaults kept). */
char *ps_config_serialize(const struct ps_config *c);
void ps_config_parse(struct ps_config *c, const char *text);
/* Add the pubsub#meta-data form of c to a disco#info query. */
void ps_config_meta(struct xml_node *query, const struct ps_config *c, const char *node);
const char *ps_access_str(enum ps_access a);

/* ---- owners, nodes, items ---------------------------------------------- */

struct ps_item {
	char *id;
	char *publisher; /* full JID, "" when unknown */
	double published;
	uint64_t seq;
	struct xml_node *payload; /* NULL when none */
	struct ps_item *newer, *older;
};

struct ps_affiliation {
	char *jid; /* bare */
	enum ps_aff aff;
};

enum ps_sub_state { PS_SUB_NONE, PS_SUB_PENDING, PS_SUB_UNCONFIGURED, PS_SUB_SUBSCRIBED };
struct ps_subscription {
	char *jid; /* as subscribed: full or bare */
	char *subid;
	enum ps_sub_state state;
	bool deliver; /* pubsub#deliver option */
	bool digest_unused;
};

typedef void ps_done_fn(enum stanza_error e, bool ok, void *ctx);

struct ps_owner;
struct ps_node {
	struct ps_owner *owner;
	char *name;
	struct ps_config cfg;
	double created;
	struct ps_affiliation *affs;
	size_t naffs;
	struct ps_subscription *subs;
	size_t nsubs;
	struct ps_item *newest, *oldest;
	size_t nitems;
	uint64_t seq; /* the last item's */
	bool deleted;
	struct ps_node *next; /* the owner's list, sorted by name */
};

struct ps_state;
struct ps_waiter;
struct write_op;
struct roster_item;

enum ps_load { PS_LOAD_NONE, PS_LOADING, PS_LOADED, PS_LOAD_FAILED };
struct ps_owner {
	struct ps_state *st;
	char *key;  /* the service's domain, or the user's bare JID */
	char *user; /* PEP: the local part; NULL for a service */
	struct jid jid;
	enum ps_load state, roster_state;
	struct ps_node *nodes;
	size_t nnodes;
	struct ps_waiter *waiters;
	struct write_op *writes; /* store writes in flight (pubsub-node.c) */
	unsigned busy;           /* storage calls and loads in flight */
	double last_used;
	bool stopping; /* its state is gone; free when busy reaches 0 */
	/* PEP: the user's roster as presence sees it */
	struct roster_item *roster;
	size_t nroster;
	struct ps_owner *next; /* the state's list */
};

/* The module's state on one host. */
struct ps_state {
	struct host *h;
	const struct pubsub_settings *set;
	struct ps_owner *owners; /* services first, then PEP owners */
	size_t nservices;
	void *evict_timer; /* ev_timer, private to pubsub.c */
	bool stopping;
};

/* What a request needs: the owner loaded.  fn runs once with ok false when
 * the load failed or the module stops. */
typedef void ps_ready_fn(struct ps_owner *o, bool ok, void *ctx);
void ps_owner_when_ready(struct ps_owner *o, ps_ready_fn *fn, void *ctx);
/* The PEP owner of local user (made, loading, when not there); NULL when
 * PEP is off. */
struct ps_owner *ps_pep_owner(struct ps_state *st, const char *user);
struct ps_owner *ps_pep_owner_find(struct ps_state *st, const char *user);
struct storage *ps_store(struct ps_state *st);

struct ps_node *ps_node_find(struct ps_owner *o, const char *name);
/* Whether from may see n in disco (it owns n or may read its items). */
bool ps_node_visible(struct ps_owner *o, struct ps_node *n, const struct jid *from);

/* A request to an owner: a <pubsub/> iq, answered through ps_reply. */
struct ps_req {
	struct ps_owner *o;
	struct xml_node *iq; /* a reference */
	struct jid from;
	struct iq_request *ireq; /* PEP: the registry's request; NULL for a service */
};
/* Handle an iq get/set whose child is <pubsub/> or <pubsub#owner/> (takes r). */
void ps_handle(struct ps_req *r);
/* Answer r with payload (may be NULL) or an error (app: a pubsub#errors
 * condition, may be NULL; app_feature its feature attribute); frees r. */
void ps_reply(struct ps_req *r, const struct xml_node *payload);
void ps_reply_error(struct ps_req *r, enum stanza_error e, const char *app, const char *app_feature,
                    const char *text);

/* Send stanza from the owner's JID to to (routed; consumes the reference). */
void ps_send(struct ps_owner *o, struct xml_node *stanza, const struct jid *to);

/* A message from an owner with a filled subscribe_authorization form
 * (XEP-0060 §8.6): true when it was one (handled). */
bool ps_approval(struct ps_owner *o, const struct xml_node *msg, const struct jid *from);
/* Send session s the last item of each of o's nodes it +notifies and may
 * read (XEP-0163 §4.3: a contact's or the owner's presence). */
void ps_send_last_items(struct ps_owner *o, struct session *s);
/* Send full, a contact's resource on another server whose caps o's
 * account learned from its presence (modules/caps.h), the last items it
 * +notifies and may read; nothing when the account blocks it. */
void ps_send_last_remote(struct ps_owner *o, const struct jid *full);
/* The PEP owner o's roster gave contact (a bare JID) presence access:
 * send its available sessions the last item of each node they +notify
 * and may read (XEP-0163 §4.3.4: the last item to new subscribers);
 * nothing for a contact the account blocks. */
void ps_send_last_to_contact(struct ps_owner *o, const char *contact);
/* The PEP owner o's roster entry of contact (a bare JID) changed: the
 * contact's subscriptions to o's nodes and to the service nodes the
 * account owns whose presence or roster access it lost are cancelled,
 * the contact told and the nodes stored (XEP-0060 §12). */
void ps_contact_changed(struct ps_owner *o, const char *contact);
/* The owner stops: requests whose writes are in flight are answered with
 * an error now (their writes complete without answering). */
void ps_owner_abort_writes(struct ps_owner *o);
/* Retract item id of node (notifications, store, hook); -1 when there is
 * no such item. */
int ps_retract_item(struct ps_owner *o, struct ps_node *n, const char *id, bool notify, const char *origin,
                    struct ps_req *r, ps_done_fn *done, void *ctx);

/* Publish from the server side (pep.h). */
void ps_publish(struct ps_owner *o, const struct jid *publisher, const char *node, const char *id,
                const struct xml_node *payload, const struct ps_config *create_cfg,
                const struct xml_node *options, const char *origin, ps_done_fn *done, void *ctx,
                enum stanza_error *e_r, const char **app_r, const char **text_r);

/* Node storage (pubsub.c): write the node's row (affs, subs, config). */
void ps_node_save(struct ps_node *n);
void ps_node_free(struct ps_node *n);
/* Delete n, or remove its items, as its owner's request would
 * (notifications, store); done runs once the store answered, from the
 * loop, or inside the call when the host has no pubsub store.  For the
 * administration commands (pubsub-admin.c). */
void ps_node_delete(struct ps_node *n, ps_done_fn *done, void *ctx);
void ps_node_purge(struct ps_node *n, ps_done_fn *done, void *ctx);
void ps_item_free(struct ps_item *it);

#endif
