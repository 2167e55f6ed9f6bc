/*
 * Virtual hosts: one struct host per served domain with its storage, auth
 * chain, iq handlers, hooks, modules and disco features.  Loop thread.
 */
#ifndef PARLEY_HOST_H
#define PARLEY_HOST_H

#include "config.h"
#include "hooks.h"
#include "iq.h"
#include "stanza.h"
#include "storage/storage.h"
#include "auth/auth.h"

struct hook_list;
struct module_instance;
struct iq_handler;
struct iq_out_table;

struct host {
	char *name;
	uint64_t serial;               /* unique in the process: a host removed and added again
	                    by reloads is another, even at the same address */
	const struct host_config *cfg; /* the newest (a reload's admins apply at once) */
	/* what its storage, auth, tls and modules started with: changes to them
	 * wait for a restart (server_restart_pending) */
	const struct host_config *start_cfg;
	struct storage *storage;                        /* shared with hosts that name the same store */
	struct storage *area_store[STORAGE_AREA_COUNT]; /* host_set_store; NULL: storage */
	struct auth *auth;
	struct tls_ctx *tls;                   /* this host's certificate (SNI) */
	struct hook_list *hooks;               /* hooks.c */
	struct iq_handler *iq[IQ_SCOPE_COUNT]; /* iq.c */
	struct iq_out_table *iq_out;           /* iq.c: iqs sent (iq_send), by id */
	struct module_instance *modules;       /* module.c */
	struct strlist features;               /* disco#info features of the server JID */
	struct strlist user_features;          /* disco#info features of user JIDs */
	double removed_at;                     /* host_remove: when */
	bool remove_quiet;                     /* host_remove: no stream left at the last tick */
	struct host *next;
};

/* The host serving domain (prepared), or NULL. */
struct host *host_find(const char *domain);
struct host *host_first(void);
/* Add a disco feature (server JID) unless present; remove. */
void host_add_feature(struct host *h, const char *ns);
void host_remove_feature(struct host *h, const char *ns);
void host_add_user_feature(struct host *h, const char *ns);
void host_remove_user_feature(struct host *h, const char *ns);
bool host_is_admin(const struct host *h, const struct jid *j);

/* The store of h that serves area a: the one a module handed the host for
 * it (host_set_store: vCards and the directory from LDAP, ...), else the
 * host's own storage.  Modules take their area's store here, each time
 * they call it. */
struct storage *host_store(const struct host *h, enum storage_area a);
/* Make st serve area a of h (NULL: the host's storage again).  The module
 * that opens st owns it: it calls this in its start, again with NULL in its
 * stop, and closes st; st must implement a (storage_has_area). */
void host_set_store(struct host *h, enum storage_area a, struct storage *st);

/* Start every host of cfg (storage, auth, TLS contexts when with_tls,
 * modules).  -1 with a message. */
int hosts_start(struct ev_loop *loop, const struct parley_config *cfg, bool with_tls, char **error_r);
/* Start one more host (a reload added it): storage (opened on this thread:
 * a short pause for a new SQLite file), auth, certificate, modules.  hc
 * must stay valid while the host runs.  -1 with a message; nothing is left
 * of it then. */
int host_add(struct ev_loop *loop, const struct host_config *hc, bool with_tls, char **error_r);
/* Open what host_add would open before the modules (storage, auth,
 * certificate) and let it go again, serving nothing: a reload tries its
 * new hosts first and changes nothing when one fails.  The certificate
 * stays loaded (host_add takes it from there).  -1 with a message. */
int host_check_new(struct ev_loop *loop, const struct host_config *hc, bool with_tls, char **error_r);
/* Take h out of service: it is no longer found at once, its client streams
 * are closed with stream error e, and it is freed (modules stopped, store
 * closed when no other host uses it) once those streams are gone. */
void host_remove(struct host *h, enum stream_error e, const char *text);
/* Stop modules, close auth and storage (pending work finishes first). */
void hosts_stop(void);
/* Storage requests of every host not answered yet (storage_pending). */
unsigned hosts_storage_pending(void);
unsigned hosts_count(void);

#endif
