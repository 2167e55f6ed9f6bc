/*
 * Virtual hosts.  Loop thread.
 *
 * Hosts that name the same store (same driver and path for sqlite, same
 * driver and dsn for a database server) share one storage instance, so a
 * hundred virtual hosts on one database do not mean a hundred worker pools:
 * pool_size is the bound on connections to that database.  Certificates are loaded once per (certificate, key)
 * pair and registered for SNI under each host name.
 *
 * Hosts come and go with a reload: host_add starts one like hosts_start
 * does; host_remove takes it out of the list at once (nothing new reaches
 * it), closes its client streams with a stream error, and frees it once
 * every one of those streams is gone (their close still runs the host's
 * hooks).  A store is closed when its last host is gone; certificates stay
 * loaded until exit.
 */
#include "host.h"
#include "module.h"
#include "tls.h"
#include "lib/jid.h"
#include "lib/latency.h"
#include "lib/log.h"
#include "c2s.h"
#include "sm.h"

#include <assert.h>
#include <string.h>

struct shared_storage {
	char *key;
	struct storage *st;
	/* the settings of the first host that named it */
	unsigned pool_size, queue_max;
	double timeout;
	char *password, *password_file;
	unsigned refs; /* hosts using it */
	struct shared_storage *next;
};

struct shared_tls {
	char *key;
	struct tls_ctx *ctx;
	struct shared_tls *next;
};

static struct host *hosts_head;
static struct host *removing; /* removed, waiting for their streams */
static ev_timer remove_timer;
static struct ev_loop *hosts_loop;
static unsigned nhosts;
static struct shared_storage *storages;
static struct shared_tls *tls_ctxs;

struct host *host_find(const char *domain)
{
	for (struct host *h = hosts_head; h != NULL; h = h->next)
		if (strcmp(h->name, domain) == 0)
			return h;
	return NULL;
}

struct host *host_first(void)
{
	return hosts_head;
}

unsigned hosts_count(void)
{
	return nhosts;
}

unsigned hosts_storage_pending(void)
{
	unsigned n = 0;
	for (const struct shared_storage *s = storages; s != NULL; s = s->next)
		n += storage_pending(s->st);
	return n;
}

static void strlist_add(struct strlist *l, const char *s)
{
	if (strlist_contains(l, s))
		return;
	l->items = xrealloc(l->items, (l->count + 1) * sizeof(*l->items));
	l->items[l->count++] = xstrdup(s);
}

static void strlist_del(struct strlist *l, const char *s)
{
	for (size_t i = 0; i < l->count; i++) {
		if (strcmp(l->items[i], s) == 0) {
			free(l->items[i]);
			memmove(&l->items[i], &l->items[i + 1], (l->count - i - 1) * sizeof(*l->items));
			l->count--;
			return;
		}
	}
}

void host_add_feature(struct host *h, const char *ns)
{
	strlist_add(&h->features, ns);
}
void host_remove_feature(struct host *h, const char *ns)
{
	strlist_del(&h->features, ns);
}
void host_add_user_feature(struct host *h, const char *ns)
{
	strlist_add(&h->user_features, ns);
}
void host_remove_user_feature(struct host *h, const char *ns)
{
	strlist_del(&h->user_features, ns);
}

struct storage *host_store(const struct host *h, enum storage_area a)
{
	assert(a < STORAGE_AREA_COUNT);
	return h->area_store[a] != NULL ? h->area_store[a] : h->storage;
}

void host_set_store(struct host *h, enum storage_area a, struct storage *st)
{
	assert(a < STORAGE_AREA_COUNT && (st == NULL || storage_has_area(st, a)));
	h->area_store[a] = st;
}

bool host_is_admin(const struct host *h, const struct jid *j)
{
	char *bare = jid_bare_string(j);
	bool r = strlist_contains(&h->cfg->admins, bare);
	free(bare);
	return r;
}

static bool str_same(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static struct storage *host_storage(struct ev_loop *loop, const char *host, const struct storage_config *sc,
                                    char **error_r)
{
	/* A database is named by its path (sqlite) or its dsn (the others):
	 * every host naming it shares one store, so pool_size bounds the
	 * connections to that database whatever the number of hosts. */
	bool embedded = sc->driver == NULL || strcmp(sc->driver, "sqlite") == 0;
	char *key =
	        xasprintf("%s\x1f%s", sc->driver != NULL ? sc->driver : "sqlite",
	                  embedded ? (sc->path != NULL ? sc->path : "") : (sc->dsn != NULL ? sc->dsn : ""));
	for (struct shared_storage *s = storages; s != NULL; s = s->next) {
		if (strcmp(s->key, key) == 0) {
			free(key);
			if (s->pool_size != sc->pool_size || s->queue_max != sc->queue_max ||
			    s->timeout != sc->timeout || !str_same(s->password, sc->password) ||
			    !str_same(s->password_file, sc->password_file))
				log_warning("host %s: storage %s is shared with an earlier host, whose "
				            "pool_size, queue_max, timeout and password it uses; this host's "
				            "other values for them are ignored",
				            host, storage_describe(s->st));
			s->refs++;
			return s->st;
		}
	}
	struct storage *st;
	if (storage_open(loop, sc, &st, error_r) < 0) {
		free(key);
		return NULL;
	}
	struct shared_storage *s = xcalloc(1, sizeof(*s));
	s->key = key;
	s->st = st;
	s->pool_size = sc->pool_size;
	s->queue_max = sc->queue_max;
	s->timeout = sc->timeout;
	s->password = sc->password != NULL ? xstrdup(sc->password) : NULL;
	s->password_file = sc->password_file != NULL ? xstrdup(sc->password_file) : NULL;
	s->refs = 1;
	s->next = storages;
	storages = s;
	log_info("storage %s opened", storage_describe(st));
	return st;
}

static struct tls_ctx *host_tls(const struct host_config *hc, char **error_r)
{
	char *key = xasprintf("%s\x1f%s", hc->tls.certificate, hc->tls.key);
	for (struct shared_tls *t = tls_ctxs; t != NULL; t = t->next) {
		if (strcmp(t->key, key) == 0) {
			free(key);
			return t->ctx;
		}
	}
	struct tls_ctx *ctx;
	if (tls_ctx_new(hc->name, &hc->tls, &ctx, error_r) < 0) {
		free(key);
		return NULL;
	}
	struct shared_tls *t = xcalloc(1, sizeof(*t));
	t->key = key;
	t->ctx = ctx;
	t->next = tls_ctxs;
	tls_ctxs = t;
	return ctx;
}

static void shared_storage_free(struct shared_storage *s)
{
	storage_close(&s->st);
	if (s->password != NULL)
		explicit_bzero(s->password, strlen(s->password));
	free(s->password);
	free(s->password_file);
	free(s->key);
	free(s);
}

static void storage_release(struct storage *st)
{
	for (struct shared_storage **pp = &storages; *pp != NULL; pp = &(*pp)->next) {
		struct shared_storage *s = *pp;
		if (s->st != st)
			continue;
		if (--s->refs > 0)
			return;
		*pp = s->next;
		log_info("storage %s closed", storage_describe(s->st));
		shared_storage_free(s);
		return;
	}
}

/* Storage, auth and certificate of a new host (not yet in the list). */
static int host_init(struct ev_loop *loop, struct host *h, const struct host_config *hc, bool with_tls,
                     char **error_r)
{
	static uint64_t serials;
	h->serial = ++serials;
	h->storage = host_storage(loop, h->name, &hc->storage, error_r);
	if (h->storage == NULL)
		return -1;
	if (auth_new(loop, h->name, &hc->auth, h->storage, &h->auth, error_r) < 0)
		return -1;
	if (with_tls && hc->tls.certificate != NULL) {
		h->tls = host_tls(hc, error_r);
		if (h->tls == NULL)
			return -1;
		tls_sni_add(h->name, h->tls);
	} else if (with_tls) {
		log_warning("host %s has no TLS certificate (tls.certificate): clients cannot use TLS",
		            h->name);
	}
	return 0;
}

/* Everything but the modules (stopped before). */
static void host_free(struct host *h)
{
	if (h->auth != NULL)
		auth_free(&h->auth);
	if (h->storage != NULL)
		storage_release(h->storage);
	hooks_free_host(h);
	iq_free_host(h);
	strlist_free(&h->features);
	strlist_free(&h->user_features);
	free(h->name);
	free(h);
}

int hosts_start(struct ev_loop *loop, const struct parley_config *cfg, bool with_tls, char **error_r)
{
	struct host **tail = &hosts_head;
	hosts_loop = loop;
	for (size_t i = 0; i < cfg->nhosts; i++) {
		const struct host_config *hc = &cfg->hosts[i];
		struct host *h = xcalloc(1, sizeof(*h));
		h->name = xstrdup(hc->name);
		h->cfg = hc;
		h->start_cfg = hc;
		*tail = h;
		tail = &h->next;
		nhosts++;
		if (host_init(loop, h, hc, with_tls, error_r) < 0)
			return -1;
	}
	for (struct host *h = hosts_head; h != NULL; h = h->next) {
		if (modules_start_host(h, error_r) < 0)
			return -1;
		log_info("host %s started (storage %s)", h->name, storage_describe(h->storage));
	}
	return 0;
}

int host_add(struct ev_loop *loop, const struct host_config *hc, bool with_tls, char **error_r)
{
	if (host_find(hc->name) != NULL) {
		*error_r = xasprintf("host %s is already served", hc->name);
		return -1;
	}
	struct host *h = xcalloc(1, sizeof(*h));
	h->name = xstrdup(hc->name);
	h->cfg = hc;
	h->start_cfg = hc;
	if (host_init(loop, h, hc, with_tls, error_r) < 0 || modules_start_host(h, error_r) < 0) {
		if (h->tls != NULL)
			tls_sni_remove(h->name);
		host_free(h);
		return -1;
	}
	struct host **tail = &hosts_head;
	while (*tail != NULL)
		tail = &(*tail)->next;
	*tail = h;
	nhosts++;
	log_notice("host %s added (storage %s)", h->name, storage_describe(h->storage));
	return 0;
}

int host_check_new(struct ev_loop *loop, const struct host_config *hc, bool with_tls, char **error_r)
{
	struct host *h = xcalloc(1, sizeof(*h));
	h->name = xstrdup(hc->name);
	h->cfg = hc;
	int rc = host_init(loop, h, hc, with_tls, error_r);
	if (h->tls != NULL)
		tls_sni_remove(h->name);
	host_free(h);
	return rc;
}

static void host_finish_removal(struct host *h)
{
	sm_host_stop(h);
	modules_stop_host(h);
	log_notice("host %s removed", h->name);
	host_free(h);
}

/* Free the removed hosts whose streams are all gone: two ticks in a row
 * without one, since a stream closed during this iteration still runs its
 * close (which uses the host) before the loop sleeps. */
static void remove_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	latency_begin(LATENCY_TIMER, "host-removal");
	for (struct host **pp = &removing; *pp != NULL;) {
		struct host *h = *pp;
		bool late = ev_now(loop) - h->removed_at > 10.0;
		unsigned n = c2s_count_host(h, late);
		if (n == 0 && h->remove_quiet) {
			*pp = h->next;
			host_finish_removal(h);
			continue;
		}
		h->remove_quiet = n == 0;
		pp = &h->next;
	}
	if (removing == NULL)
		ev_timer_stop(loop, w);
	latency_end();
}

void host_remove(struct host *h, enum stream_error e, const char *text)
{
	for (struct host **pp = &hosts_head; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == h) {
			*pp = h->next;
			break;
		}
	}
	nhosts--;
	tls_sni_remove(h->name);
	log_notice("host %s: removing; closing its %u sessions", h->name, sm_count(h));
	c2s_close_host(h, e, text);
	h->removed_at = ev_now(hosts_loop);
	h->remove_quiet = false;
	h->next = removing;
	removing = h;
	if (!ev_is_active(&remove_timer)) {
		ev_timer_init(&remove_timer, remove_timer_cb, 0.05, 0.05);
		ev_timer_start(hosts_loop, &remove_timer);
	}
}

void hosts_stop(void)
{
	if (hosts_loop != NULL && ev_is_active(&remove_timer))
		ev_timer_stop(hosts_loop, &remove_timer);
	while (removing != NULL) {
		struct host *h = removing;
		removing = h->next;
		host_finish_removal(h);
	}
	for (struct host *h = hosts_head; h != NULL; h = h->next) {
		sm_host_stop(h);
		modules_stop_host(h);
	}
	for (struct host *h = hosts_head; h != NULL; h = h->next)
		auth_free(&h->auth);
	/* The storages close while their hosts exist: the callbacks of work
	 * that outlives its module's stop (a message being stored offline)
	 * run now and may name the host. */
	while (storages != NULL) {
		struct shared_storage *s = storages;
		storages = s->next;
		storage_close(&s->st);
		if (s->password != NULL)
			explicit_bzero(s->password, strlen(s->password));
		free(s->password);
		free(s->password_file);
		free(s->key);
		free(s);
	}
	while (hosts_head != NULL) {
		struct host *h = hosts_head;
		hosts_head = h->next;
		h->storage = NULL;
		host_free(h);
	}
	tls_sni_clear();
	while (tls_ctxs != NULL) {
		struct shared_tls *t = tls_ctxs;
		tls_ctxs = t->next;
		tls_ctx_free(&t->ctx);
		free(t->key);
		free(t);
	}
	nhosts = 0;
	auth_global_shutdown();
}
