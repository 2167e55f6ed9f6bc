/*
 * mod_limits: per-account abuse limits on what a user's clients send,
 * counted over all the account's sessions.  Loop thread.
 *
 * - stanza_rate / stanza_burst: stanzas per second, a token bucket that
 *   may go into debt.  Past it the stanza still goes, but the session's
 *   connection is not read until the debt is paid back (the session's
 *   throttle: the stream's shaper): a fast client or bot is slowed down,
 *   nothing is lost, and no error replies pile up in the output of a
 *   client that is busy sending.  What was read already is still
 *   handled, so the rate holds to within one read.
 * - subscriptions_per_hour: presence type='subscribe' to others; past it
 *   the request is dropped and answered with <policy-violation/>.
 * - non_contacts_per_minute: people not in the sender's roster (the roster
 *   the user sees, shared groups included) whom the account starts to
 *   message: a new such recipient takes a token, more messages to one
 *   already taken within the minute do not (spam goes to many strangers;
 *   a conversation with one is not throttled).  Group chat, messages to
 *   services (JIDs without a local part, rooms and components of this
 *   server), to the user's own account, and errors do not count.
 * Each limit is a bucket that holds its whole allowance and refills
 * evenly over its period; 0 turns a limit off.
 *
 * Invariants:
 * - Buckets live in a table by account, not in the session: a client
 *   cannot reset them by reconnecting.  An entry goes when all its buckets
 *   have refilled (the sweep, every minute).
 * - The roster is read once per account at the first session's open
 *   (user_cache) and kept current by roster_changed.  Until it has been
 *   read (or when it cannot be), messages count as to contacts: a storage
 *   problem never refuses a user's messages.
 * - Error stanzas, unavailable presence and iq results are never refused
 *   (they answer or end something), and never counted.
 */
#include "builtin.h"
#include "pending.h"
#include "user-cache.h"
#include "server/host.h"
#include "server/hooks.h"
#include "server/router.h"
#include "server/server.h"
#include "server/sm.h"
#include "lib/htab.h"
#include "lib/log.h"

#include <stdlib.h>
#include <string.h>

#define SWEEP_INTERVAL 60.0

struct limits_settings {
	unsigned stanza_rate;
	unsigned stanza_burst;
	unsigned subscriptions_per_hour;
	unsigned non_contact_per_minute;
};

/* A stranger messaged recently (one token taken for it). */
struct recent {
	char *jid;
	double at;
};

static const struct opt_def limits_options[] = {
	{ "stanza_rate", OPT_UINT, offsetof(struct limits_settings, stanza_rate), "200", NULL, 0, 1000000,
	  "stanzas per second one account may send (all its sessions together); past it the "
	  "account's connections are read more slowly, nothing is refused; 0: unlimited" },
	{ "stanza_burst", OPT_UINT, offsetof(struct limits_settings, stanza_burst), "20000", NULL, 1,
	  10000000, "stanzas an account may send at once above stanza_rate (the bucket's size)" },
	{ "subscriptions_per_hour", OPT_UINT, offsetof(struct limits_settings, subscriptions_per_hour), "100",
	  NULL, 0, 1000000,
	  "presence subscription requests one account may send per hour; past it policy-violation; "
	  "0: unlimited" },
	{ "non_contacts_per_minute", OPT_UINT, offsetof(struct limits_settings, non_contact_per_minute), "30",
	  NULL, 0, 100000,
	  "different people not in its roster one account may start to message per minute; a "
	  "message to one more gets policy-violation; 0: unlimited" },
	OPT_END
};

struct bucket {
	double tokens; /* what may be taken now */
	double at;     /* ev_now of the last refill */
};

struct lim_account {
	struct htab_link link;
	char *user;
	struct bucket stanzas, subs, strangers;
	struct recent *recent; /* strangers messaged in the last minute */
	double logged_at;      /* last refusal logged (one line a minute) */
	unsigned refused;      /* refusals since then */
	size_t nrecent;
};

/* The roster cache of a user with sessions: sorted bare JIDs. */
struct lim_user {
	struct user_cache_entry e;
	char **contacts;
	size_t ncontacts;
	bool loaded;
	struct lim_op *load;
};

struct lim_state {
	struct host *host;
	const struct limits_settings *set;
	struct htab accounts;
	struct user_cache users;
	struct pending_ops ops;
	ev_timer sweep;
};

struct lim_op {
	struct pending_op p;
	struct lim_state *ls;
	char *user;
};

/* ---- buckets ------------------------------------------------------------------------ */

static void bucket_refill(struct bucket *b, double size, double per_second, double now)
{
	b->tokens += (now - b->at) * per_second;
	if (b->tokens > size)
		b->tokens = size;
	b->at = now;
}

/* Take one token, into debt if need be; the seconds until the bucket is
 * out of debt (0: it was not in debt). */
static double bucket_take_debt(struct bucket *b, double size, double per_second, double now)
{
	bucket_refill(b, size, per_second, now);
	b->tokens -= 1.0;
	return b->tokens < 0 ? -b->tokens / per_second : 0;
}

/* Take one token; false when the bucket is empty. */
static bool bucket_take(struct bucket *b, double size, double per_second, double now)
{
	bucket_refill(b, size, per_second, now);
	if (b->tokens < 1.0)
		return false;
	b->tokens -= 1.0;
	return true;
}

static bool bucket_full(struct bucket *b, double size, double per_second, double now)
{
	bucket_refill(b, size, per_second, now);
	return b->tokens >= size;
}

/* The sizes and refill rates of the three buckets. */
static double stanza_size(const struct limits_settings *s)
{
	return s->stanza_burst;
}
static double stanza_per_second(const struct limits_settings *s)
{
	return s->stanza_rate;
}
static double subs_per_second(const struct limits_settings *s)
{
	return s->subscriptions_per_hour / 3600.0;
}
static double strangers_per_second(const struct limits_settings *s)
{
	return s->non_contact_per_minute / 60.0;
}

static struct lim_account *account_get(struct lim_state *ls, const char *user, double now)
{
	uint32_t hash = hash_str(user);
	for (struct htab_link *l = htab_chain(&ls->accounts, hash); l != NULL; l = l->next) {
		struct lim_account *a = (struct lim_account *)l;
		if (l->hash == hash && strcmp(a->user, user) == 0)
			return a;
	}
	const struct limits_settings *s = ls->set;
	struct lim_account *a = xcalloc(1, sizeof(*a));
	a->user = xstrdup(user);
	a->stanzas = (struct bucket){ stanza_size(s), now };
	a->subs = (struct bucket){ s->subscriptions_per_hour, now };
	a->strangers = (struct bucket){ s->non_contact_per_minute, now };
	htab_add(&ls->accounts, &a->link, hash);
	return a;
}

static void account_free(struct lim_state *ls, struct lim_account *a)
{
	htab_remove(&ls->accounts, &a->link);
	for (size_t i = 0; i < a->nrecent; i++)
		free(a->recent[i].jid);
	free(a->recent);
	free(a->user);
	free(a);
}

static void recent_expire(struct lim_account *a, double now);

static void sweep_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct lim_state *ls = w->data;
	const struct limits_settings *s = ls->set;
	double now = ev_now(loop);
	for (unsigned i = 0; i < ls->accounts.nbuckets; i++) {
		struct htab_link *l = ls->accounts.buckets[i];
		while (l != NULL) {
			struct htab_link *next = l->next;
			struct lim_account *a = (struct lim_account *)l;
			recent_expire(a, now);
			if (a->nrecent == 0 &&
			    bucket_full(&a->stanzas, stanza_size(s), stanza_per_second(s), now) &&
			    bucket_full(&a->subs, s->subscriptions_per_hour, subs_per_second(s), now) &&
			    bucket_full(&a->strangers, s->non_contact_per_minute, strangers_per_second(s),
			                now))
				account_free(ls, a);
			l = next;
		}
	}
}

/* ---- the roster cache ------------------------------------------------------------------ */

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static char **contact_find(struct lim_user *u, const char *jid)
{
	if (u->ncontacts == 0)
		return NULL;
	return bsearch(&jid, u->contacts, u->ncontacts, sizeof(*u->contacts), cmp_str);
}

static void contact_set(struct lim_user *u, const struct roster_item *it)
{
	char **c = contact_find(u, it->jid);
	if (it->subscription == SUB_REMOVE) {
		if (c != NULL) {
			size_t i = (size_t)(c - u->contacts);
			free(*c);
			memmove(&u->contacts[i], &u->contacts[i + 1], (u->ncontacts - i - 1) * sizeof(*c));
			u->ncontacts--;
		}
		return;
	}
	if (c != NULL)
		return;
	u->contacts = xrealloc(u->contacts, (u->ncontacts + 1) * sizeof(*u->contacts));
	u->contacts[u->ncontacts++] = xstrdup(it->jid);
	qsort(u->contacts, u->ncontacts, sizeof(*u->contacts), cmp_str);
}

static void contacts_clear(struct lim_user *u)
{
	for (size_t i = 0; i < u->ncontacts; i++)
		free(u->contacts[i]);
	free(u->contacts);
	u->contacts = NULL;
	u->ncontacts = 0;
}

static void op_free(struct pending_op *p)
{
	struct lim_op *op = (struct lim_op *)p;
	pending_untrack(p);
	free(op->user);
	free(op);
}

static void roster_read(enum storage_result res, const struct roster_item *items, size_t count,
                        uint64_t version, void *ctx)
{
	struct lim_op *op = ctx;
	if (!pending_resume(&op->p))
		return;
	struct lim_state *ls = op->ls;
	struct lim_user *u = user_cache_get(&ls->users, op->user);
	if (u != NULL && u->load == op)
		u->load = NULL;
	if (res == STORAGE_NOT_FOUND) {
		res = STORAGE_OK;
		count = 0;
	}
	if (res == STORAGE_OK && u != NULL && !u->loaded) {
		struct roster_view view;
		roster_view_make(&view, ls->host, op->user, items, count, false);
		contacts_clear(u);
		for (size_t i = 0; i < view.count; i++)
			contact_set(u, &view.items[i]);
		roster_view_clear(&view);
		u->loaded = true;
	} else if (res != STORAGE_OK) {
		log_warning("limits %s: the roster of %s cannot be read (storage %s); messages to "
		            "non-contacts are not limited for this session",
		            ls->host->name, op->user, storage_result_str(res));
	}
	op_free(&op->p);
}

static void user_opened(struct user_cache_entry *e, struct session *s, void *ctx)
{
	struct lim_state *ls = ctx;
	struct lim_user *u = (struct lim_user *)e;
	if (u->loaded || u->load != NULL || ls->set->non_contact_per_minute == 0)
		return;
	struct lim_op *op = xcalloc(1, sizeof(*op));
	op->ls = ls;
	op->user = xstrdup(e->user);
	pending_track(&ls->ops, &op->p, op_free);
	u->load = op;
	pending_wait_storage(&op->p,
	                     storage_roster_get(ls->host->storage, ls->host->name, e->user, roster_read, op));
}

static void user_clear(struct user_cache_entry *e, void *ctx)
{
	struct lim_user *u = (struct lim_user *)e;
	if (u->load != NULL)
		pending_cancel(&u->load->p);
	contacts_clear(u);
}

static enum hook_result limits_roster(struct host *h, void *args, void *ctx)
{
	struct lim_state *ls = ctx;
	struct hook_roster *hr = args;
	struct lim_user *u = user_cache_get(&ls->users, hr->user);
	if (u != NULL && u->loaded)
		contact_set(u, hr->item);
	return HOOK_CONTINUE;
}

/* ---- what users send ---------------------------------------------------------------------- */

/* Answers and endings: never refused, never counted. */
static bool exempt(const struct xml_node *stanza, enum stanza_kind kind)
{
	const char *type = xml_attr(stanza, "type");
	if (type == NULL)
		return false;
	if (strcmp(type, "error") == 0)
		return true;
	if (kind == STANZA_PRESENCE && strcmp(type, "unavailable") == 0)
		return true;
	return kind == STANZA_IQ && strcmp(type, "result") == 0;
}

/* Forget strangers messaged more than a minute ago. */
static void recent_expire(struct lim_account *a, double now)
{
	size_t keep = 0;
	for (size_t i = 0; i < a->nrecent; i++) {
		if (now - a->recent[i].at < 60.0)
			a->recent[keep++] = a->recent[i];
		else
			free(a->recent[i].jid);
	}
	a->nrecent = keep;
	if (keep == 0) {
		free(a->recent);
		a->recent = NULL;
	}
}

/* Message to a stranger bare: false when it is one more than the bucket
 * allows; one already messaged within the minute costs nothing. */
static bool stranger_take(struct lim_state *ls, struct lim_account *a, const char *bare, double now)
{
	const struct limits_settings *s = ls->set;
	recent_expire(a, now);
	for (size_t i = 0; i < a->nrecent; i++) {
		if (strcmp(a->recent[i].jid, bare) == 0) {
			a->recent[i].at = now;
			return true;
		}
	}
	if (!bucket_take(&a->strangers, s->non_contact_per_minute, strangers_per_second(s), now))
		return false;
	a->recent = xrealloc(a->recent, (a->nrecent + 1) * sizeof(*a->recent));
	a->recent[a->nrecent++] = (struct recent){ xstrdup(bare), now };
	return true;
}

/* The bare JID of a message's recipient when it is a stranger to the
 * sender (malloc'd), else NULL. */
static char *stranger(struct lim_state *ls, const struct hook_packet *hp)
{
	const struct jid *to = hp->to;
	if (to == NULL || to->node == NULL)
		return NULL; /* a service or a server */
	if (router_is_local(to->domain) && host_find(to->domain) == NULL)
		return NULL; /* a room or a component of this server */
	if (jid_bare_equal(to, hp->from))
		return NULL;
	const char *type = xml_attr(hp->stanza, "type");
	if (type != NULL && strcmp(type, "groupchat") == 0)
		return NULL;
	struct lim_user *u = user_cache_get(&ls->users, hp->from->node);
	if (u == NULL || !u->loaded)
		return NULL;
	char *bare = jid_bare_string(to);
	if (contact_find(u, bare) != NULL) {
		free(bare);
		return NULL;
	}
	return bare;
}

static enum hook_result refuse(struct lim_state *ls, struct lim_account *a, struct hook_packet *hp,
                               const char *what, const char *text, double now)
{
	a->refused++;
	if (a->logged_at == 0 || now - a->logged_at >= 60.0) {
		log_notice("limits %s: %s@%s: %s: refusing stanzas (%u since the last line)", ls->host->name,
		           hp->from->node, hp->from->domain, what, a->refused);
		a->logged_at = now;
		a->refused = 0;
	}
	enum stanza_kind kind = stanza_kind(hp->stanza);
	if (kind == STANZA_MESSAGE || kind == STANZA_PRESENCE ||
	    (kind == STANZA_IQ && xml_attr(hp->stanza, "type") != NULL))
		builtin_refuse_sent(hp->session, hp->stanza, SE_POLICY_VIOLATION, text, NULL, NULL);
	return HOOK_STOP;
}

static enum hook_result limits_send(struct host *h, void *args, void *ctx)
{
	struct lim_state *ls = ctx;
	struct hook_packet *hp = args;
	const struct limits_settings *s = ls->set;
	if (hp->session == NULL || hp->from == NULL || hp->from->node == NULL)
		return HOOK_CONTINUE;
	enum stanza_kind kind = stanza_kind(hp->stanza);
	if (kind == STANZA_OTHER || exempt(hp->stanza, kind))
		return HOOK_CONTINUE;
	double now = ev_now(server.loop);
	struct lim_account *a = account_get(ls, hp->from->node, now);
	if (s->stanza_rate > 0) {
		double wait = bucket_take_debt(&a->stanzas, stanza_size(s), stanza_per_second(s), now);
		if (wait > 0 && hp->session->ops->throttle != NULL) {
			hp->session->ops->throttle(hp->session->owner, wait);
			if (a->logged_at == 0 || now - a->logged_at >= 60.0) {
				log_notice("limits %s: %s@%s: over modules.limits.stanza_rate: reading its "
				           "connections more slowly",
				           ls->host->name, hp->from->node, hp->from->domain);
				a->logged_at = now;
			}
		}
	}
	const char *type = xml_attr(hp->stanza, "type");
	if (kind == STANZA_PRESENCE && type != NULL && strcmp(type, "subscribe") == 0 && hp->to != NULL &&
	    !jid_bare_equal(hp->to, hp->from) && s->subscriptions_per_hour > 0 &&
	    !bucket_take(&a->subs, s->subscriptions_per_hour, subs_per_second(s), now))
		return refuse(ls, a, hp, "over modules.limits.subscriptions_per_hour",
		              "too many subscription requests; try again later", now);
	if (kind == STANZA_MESSAGE && s->non_contact_per_minute > 0) {
		char *bare = stranger(ls, hp);
		bool ok = bare == NULL || stranger_take(ls, a, bare, now);
		free(bare);
		if (!ok)
			return refuse(ls, a, hp, "over modules.limits.non_contacts_per_minute",
			              "too many people not in your roster messaged; try again later", now);
	}
	return HOOK_CONTINUE;
}

/* ---- module ------------------------------------------------------------------------------- */

static const struct builtin_hook limits_hooks[] = {
	{ HOOK_USER_SEND_PACKET, 5, limits_send },
	{ HOOK_ROSTER_CHANGED, 50, limits_roster },
};

static const struct builtin_parts limits_parts = {
	.hooks = limits_hooks,
	.nhooks = ARRAY_SIZE(limits_hooks),
};

static int limits_start(struct host *h, const void *settings, void **state_r, char **error_r)
{
	struct lim_state *ls = xcalloc(1, sizeof(*ls));
	ls->host = h;
	ls->set = settings;
	if (builtin_parts_add(h, &limits_parts, ls, error_r) < 0) {
		free(ls);
		return -1;
	}
	ls->users = (struct user_cache){
		.entry_size = sizeof(struct lim_user),
		.opened = user_opened,
		.clear = user_clear,
		.ctx = ls,
	};
	user_cache_start(&ls->users, h);
	ev_timer_init(&ls->sweep, sweep_tick, SWEEP_INTERVAL, SWEEP_INTERVAL);
	ls->sweep.data = ls;
	ev_timer_start(server.loop, &ls->sweep);
	ev_unref(server.loop); /* the sweep alone does not keep the loop running */
	*state_r = ls;
	return 0;
}

static void limits_stop(struct host *h, void *state)
{
	struct lim_state *ls = state;
	builtin_parts_remove(h, &limits_parts, ls);
	user_cache_stop(&ls->users);
	pending_stop(&ls->ops);
	ev_ref(server.loop);
	ev_timer_stop(server.loop, &ls->sweep);
	struct htab_link *l;
	while ((l = htab_any(&ls->accounts)) != NULL)
		account_free(ls, (struct lim_account *)l);
	htab_free(&ls->accounts);
	free(ls);
}

const struct module_def mod_limits = {
	.name = "limits",
	.description = "per-account abuse limits: stanza rate, subscription requests per hour, "
	               "messages to non-contacts per minute",
	.options = limits_options,
	.settings_size = sizeof(struct limits_settings),
	.default_enabled = true,
	.start = limits_start,
	.stop = limits_stop,
};
