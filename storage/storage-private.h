/*
 * What a storage backend implements and the base objects it embeds.  Only
 * storage.c and the backends (storage-sql.c, later a memory store for tests,
 * LDAP read-only stores) include this.  Everything here runs on the loop
 * thread.
 *
 * A backend allocates its own request object with struct storage_req as its
 * first member, fills it with storage_req_init() and sets the callback, and
 * answers exactly once
 * through storage_req_reply() from the loop (never inside the call that
 * created the request), unless the request was cancelled.  When it knows the
 * answer at once (queue full, closing), it calls storage_req_fail_later():
 * storage.c delivers it from the loop and then calls vfuncs.req_free.
 */
#ifndef PARLEY_STORAGE_PRIVATE_H
#define PARLEY_STORAGE_PRIVATE_H

#include "storage/storage.h"

enum storage_op {
	STORAGE_OP_ACCOUNT_GET,
	STORAGE_OP_ACCOUNT_CREATE,
	STORAGE_OP_ACCOUNT_UPDATE,
	STORAGE_OP_ACCOUNT_REMOVE,
	STORAGE_OP_ACCOUNT_LIST,
	STORAGE_OP_ACCOUNT_COUNT,
	STORAGE_OP_ROSTER_GET,
	STORAGE_OP_ROSTER_SET,
	STORAGE_OP_ROSTER_REMOVE,
	STORAGE_OP_OFFLINE_STORE,
	STORAGE_OP_OFFLINE_GET,
	STORAGE_OP_OFFLINE_DELETE,
	STORAGE_OP_OFFLINE_COUNT,
	STORAGE_OP_VCARD_GET,
	STORAGE_OP_VCARD_SET,
	STORAGE_OP_PRIVATE_GET,
	STORAGE_OP_PRIVATE_SET,
	STORAGE_OP_LAST_GET,
	STORAGE_OP_LAST_SET,
	STORAGE_OP_BLOCKLIST_GET,
	STORAGE_OP_BLOCKLIST_ADD,
	STORAGE_OP_BLOCKLIST_REMOVE,
	STORAGE_OP_PRIVACY_GET,
	STORAGE_OP_PRIVACY_SET_LIST,
	STORAGE_OP_PRIVACY_REMOVE_LIST,
	STORAGE_OP_PRIVACY_SET_DEFAULT,
	STORAGE_OP_SRG_LIST,
	STORAGE_OP_SRG_GET,
	STORAGE_OP_SRG_CREATE,
	STORAGE_OP_SRG_DELETE,
	STORAGE_OP_SRG_MEMBER_ADD,
	STORAGE_OP_SRG_MEMBER_REMOVE,
	STORAGE_OP_SRG_USER_GROUPS,
	STORAGE_OP_PRIVATE_LIST,
	STORAGE_OP_VCARD_SEARCH,
	STORAGE_OP_VCARD_REINDEX,
};
const char *storage_op_name(enum storage_op op);   /* "account_get", ... */

struct storage_req {
	struct storage *st;
	enum storage_op op;
	union {
		storage_done_cb *done;          /* create, update, remove, roster set/remove,
		                                 * offline store/delete, vcard/private/
		                                 * last set, blocklist add/remove,
		                                 * privacy set/remove/default */
		storage_account_cb *account;    /* account_get */
		storage_list_cb *list;          /* account_list, blocklist_get */
		storage_count_cb *count;        /* account_count, offline_count */
		storage_roster_cb *roster;      /* roster_get */
		storage_offline_cb *offline;    /* offline_get */
		storage_text_cb *text;          /* vcard_get, private_get */
		storage_last_cb *last;          /* last_get */
		storage_privacy_cb *privacy;    /* privacy_get */
		storage_srg_cb *srg;            /* srg_get */
		storage_private_list_cb *private_list;   /* private_list */
		storage_vcard_search_cb *search; /* vcard_search */
	} cb;
	void *ctx;
	bool cancelled;                     /* storage_cancel was called */
	bool deferred;                      /* on the storage's fail-later list */
	enum storage_result deferred_res;
	struct storage_req *defer_next;
};

/* What a finished operation hands to its callback.  The pointers stay valid
 * during the callback only; for res != STORAGE_OK the callback gets NULL /
 * empty results whatever the backend left here. */
struct storage_reply {
	enum storage_result res;
	const struct storage_account *account;   /* account_get */
	const struct strlist *names;             /* account_list, blocklist_get */
	uint64_t count;                          /* account_count, offline_count */
	const struct roster_item *items;         /* roster_get */
	size_t nitems;
	uint64_t version;
	const struct offline_message *messages;  /* offline_get */
	size_t nmessages;
	const char *text;                        /* vcard_get, private_get */
	const struct last_activity *last;        /* last_get */
	const struct privacy_list *lists;        /* privacy_get */
	size_t nlists;
	const char *default_name;
	const struct srg_group *groups;          /* srg_get */
	size_t ngroups;
	const struct private_item *pitems;       /* private_list */
	size_t npitems;
	const struct vcard_entry *entries;       /* vcard_search */
	size_t nentries;
	bool more;
};

struct storage_vfuncs {
	const char *name;                        /* "sql" */
	/* Whether this backend family serves storage_config.driver. */
	bool (*accepts)(const char *driver);
	/* Open synchronously (start-up: the loop is not running yet).  On success
	 * *st_r is a backend object embedding struct storage, initialised with
	 * storage_base_init.  On failure -1 with a malloc'd *error_r. */
	int (*open)(struct ev_loop *loop, const struct storage_config *cfg, struct storage **st_r,
	            char **error_r);
	/* Finish pending work (callbacks run), then storage_base_deinit and free. */
	void (*close)(struct storage *st);
	/* Append the live state for parleyctl (connections, outage); optional. */
	void (*status)(struct storage *st, struct buf *out);
	/* The request was cancelled (req->cancelled is set): make sure its
	 * callback never runs and free it when the backend is done with it.
	 * Not called for deferred requests (storage.c frees those). */
	void (*cancel)(struct storage_req *req);
	/* Free a request that storage.c delivered from the fail-later list. */
	void (*req_free)(struct storage_req *req);

	/* One entry per operation of storage.h, same arguments; each returns a
	 * request (never NULL) and answers later.  Arguments are valid only
	 * during the call: copy them. */
	struct storage_req *(*account_get)(struct storage *st, const char *host, const char *user,
	                                   storage_account_cb *cb, void *ctx);
	struct storage_req *(*account_create)(struct storage *st, const char *host, const char *user,
	                                      const struct storage_account *acc, storage_done_cb *cb,
	                                      void *ctx);
	struct storage_req *(*account_update)(struct storage *st, const char *host, const char *user,
	                                      const struct storage_account *acc, storage_done_cb *cb,
	                                      void *ctx);
	struct storage_req *(*account_remove)(struct storage *st, const char *host, const char *user,
	                                      storage_done_cb *cb, void *ctx);
	struct storage_req *(*account_list)(struct storage *st, const char *host, storage_list_cb *cb,
	                                    void *ctx);
	struct storage_req *(*account_count)(struct storage *st, const char *host,
	                                     storage_count_cb *cb, void *ctx);
	struct storage_req *(*roster_get)(struct storage *st, const char *host, const char *user,
	                                  storage_roster_cb *cb, void *ctx);
	struct storage_req *(*roster_set)(struct storage *st, const char *host, const char *user,
	                                  const struct roster_item *item, storage_done_cb *cb,
	                                  void *ctx);
	struct storage_req *(*roster_remove)(struct storage *st, const char *host, const char *user,
	                                     const char *jid, storage_done_cb *cb, void *ctx);
	struct storage_req *(*offline_store)(struct storage *st, const char *host, const char *user,
	                                     const char *from_jid, const char *stanza_xml,
	                                     unsigned max_per_user, storage_done_cb *cb, void *ctx);
	struct storage_req *(*offline_get)(struct storage *st, const char *host, const char *user,
	                                   storage_offline_cb *cb, void *ctx);
	struct storage_req *(*offline_delete_upto)(struct storage *st, const char *host,
	                                           const char *user, int64_t last_seq,
	                                           storage_done_cb *cb, void *ctx);
	struct storage_req *(*offline_count)(struct storage *st, const char *host, const char *user,
	                                     storage_count_cb *cb, void *ctx);
	struct storage_req *(*vcard_get)(struct storage *st, const char *host, const char *user,
	                                 storage_text_cb *cb, void *ctx);
	struct storage_req *(*vcard_set)(struct storage *st, const char *host, const char *user,
	                                 const char *vcard_xml, storage_done_cb *cb, void *ctx);
	struct storage_req *(*private_get)(struct storage *st, const char *host, const char *user,
	                                   const char *ns, storage_text_cb *cb, void *ctx);
	struct storage_req *(*private_set)(struct storage *st, const char *host, const char *user,
	                                   const struct private_item *items, size_t count,
	                                   storage_done_cb *cb, void *ctx);
	struct storage_req *(*last_get)(struct storage *st, const char *host, const char *user,
	                                storage_last_cb *cb, void *ctx);
	struct storage_req *(*last_set)(struct storage *st, const char *host, const char *user,
	                                int64_t seconds, const char *status, storage_done_cb *cb,
	                                void *ctx);
	struct storage_req *(*blocklist_get)(struct storage *st, const char *host, const char *user,
	                                     storage_list_cb *cb, void *ctx);
	struct storage_req *(*blocklist_add)(struct storage *st, const char *host, const char *user,
	                                     const char *const *jids, size_t n, storage_done_cb *cb,
	                                     void *ctx);
	struct storage_req *(*blocklist_remove)(struct storage *st, const char *host,
	                                        const char *user, const char *const *jids, size_t n,
	                                        storage_done_cb *cb, void *ctx);
	struct storage_req *(*privacy_get)(struct storage *st, const char *host, const char *user,
	                                   storage_privacy_cb *cb, void *ctx);
	struct storage_req *(*private_list)(struct storage *st, const char *host, const char *user,
	                                    storage_private_list_cb *cb, void *ctx);
	struct storage_req *(*privacy_set_list)(struct storage *st, const char *host,
	                                        const char *user, const char *name,
	                                        const struct privacy_item *items, size_t n,
	                                        storage_done_cb *cb, void *ctx);
	struct storage_req *(*privacy_remove_list)(struct storage *st, const char *host,
	                                           const char *user, const char *name,
	                                           storage_done_cb *cb, void *ctx);
	struct storage_req *(*privacy_set_default)(struct storage *st, const char *host,
	                                           const char *user, const char *name,
	                                           storage_done_cb *cb, void *ctx);
	struct storage_req *(*srg_list)(struct storage *st, const char *host, storage_list_cb *cb,
	                                void *ctx);
	struct storage_req *(*srg_get)(struct storage *st, const char *host, const char *name,
	                               storage_srg_cb *cb, void *ctx);
	struct storage_req *(*srg_create)(struct storage *st, const char *host,
	                                  const struct srg_group *g, storage_done_cb *cb, void *ctx);
	struct storage_req *(*srg_delete)(struct storage *st, const char *host, const char *name,
	                                  storage_done_cb *cb, void *ctx);
	struct storage_req *(*srg_member_add)(struct storage *st, const char *host,
	                                      const char *group, const char *member,
	                                      storage_done_cb *cb, void *ctx);
	struct storage_req *(*srg_member_remove)(struct storage *st, const char *host,
	                                         const char *group, const char *member,
	                                         storage_done_cb *cb, void *ctx);
	struct storage_req *(*srg_user_groups)(struct storage *st, const char *host,
	                                       const char *bare_jid, storage_list_cb *cb, void *ctx);
	struct storage_req *(*vcard_search)(struct storage *st, const char *host,
	                                    const struct vcard_term *terms, size_t n, bool listed_only,
	                                    unsigned limit, storage_vcard_search_cb *cb, void *ctx);
	struct storage_req *(*vcard_reindex)(struct storage *st, const char *host,
	                                     storage_count_cb *cb, void *ctx);
};

/* The part of every backend object that storage.c owns. */
struct storage {
	const struct storage_vfuncs *v;
	struct ev_loop *loop;
	char *description;                  /* "sqlite:/var/lib/parley/parley.db" */
	bool closing;                       /* storage_close has started */
	ev_timer defer_timer;               /* delivers the fail-later list */
	struct storage_req *defer_head, *defer_tail;
};

void storage_base_init(struct storage *st, const struct storage_vfuncs *v, struct ev_loop *loop,
                       const char *description);
/* Deliver what is left on the fail-later list (callbacks run), free the
 * base's fields.  Called by the backend's close after its own work is done. */
void storage_base_deinit(struct storage *st);

/* Set up the common part of a new request; the backend then sets the member
 * of req->cb that matches op. */
void storage_req_init(struct storage_req *req, struct storage *st, enum storage_op op, void *ctx);
/* Call the request's callback with r (no-op when cancelled).  Loop thread,
 * from the loop: never inside the call that created the request. */
void storage_req_reply(struct storage_req *req, const struct storage_reply *r);
/* Answer res later from the loop, then free the request with v->req_free. */
void storage_req_fail_later(struct storage_req *req, enum storage_result res);

/* Backend families storage_open can choose from. */
extern const struct storage_vfuncs storage_sql_vfuncs;

/* Tests only: make the SQL store write upserts in another style (an enum
 * sql_upsert of sql.h) so every dialect's statements run against sqlite. */
void storage_sql_test_set_upsert(struct storage *st, int style);

#endif
