/*
 * Virtual hosts: one struct host per served domain with its storage, auth
 * chain, iq handlers, hooks, modules and disco features.  Loop thread.
 */
#ifndef PARLEY_HOST_H
#define PARLEY_HOST_H

#include "config.h"
#include "hooks.h"
#include "iq.h"
#include "storage/storage.h"
#include "auth/auth.h"

struct hook_list;
struct module_instance;
struct iq_handler;

struct host {
	char *name;
	const struct host_config *cfg;
	struct storage *storage;             /* shared with hosts that name the same store */
	struct auth *auth;
	struct tls_ctx *tls;                 /* this host's certificate (SNI) */
	struct hook_list *hooks;             /* hooks.c */
	struct iq_handler *iq[IQ_SCOPE_COUNT]; /* iq.c */
	struct module_instance *modules;     /* module.c */
	struct strlist features;             /* disco#info features of the server JID */
	struct strlist user_features;        /* disco#info features of user JIDs */
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

/* Start every host of cfg (storage, auth, TLS contexts when with_tls,
 * modules).  -1 with a message. */
int hosts_start(struct ev_loop *loop, const struct parley_config *cfg, bool with_tls, char **error_r);
/* Stop modules, close auth and storage (pending work finishes first). */
void hosts_stop(void);
unsigned hosts_count(void);

#endif
