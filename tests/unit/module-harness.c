/*
 * The module test harness (module-harness.h): a host on the memory store
 * started by hosts_start as parleyd starts its hosts, fake sessions in the
 * session manager, stanzas sent as c2s sends them, and the loop run until
 * the store has answered.  Loop thread only.
 *
 * Invariants: every fake session is on the harness's list from login to
 * logout, and harness_stop closes those left before the host stops (the
 * session manager must not outlive the host with sessions in it); a
 * delivered stanza is kept by reference, never copied, so a test sees
 * exactly the tree the session manager wrote.
 */
#include "module-harness.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "lib/barrier.h"
#include "lib/log.h"
#include "modules/builtin.h"
#include "server/host.h"
#include "server/hooks.h"
#include "server/router.h"
#include "server/server.h"

#define WATCHDOG_SECONDS 10.0

static struct parley_config *cfg;
static char tmpdir[64];
static char *cfg_path;
static struct fake_session *sessions;
static uint64_t next_id = 1000;

/* ---- loop ---------------------------------------------------------------------- */

static void watchdog_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	fail_msg("the loop waited too long (a storage answer never came?)");
}

void harness_run(void)
{
	/* The watchdog does not keep the loop running: ev_run returns once no
	 * other watcher is left (every deferred storage answer delivered). */
	ev_timer wd;
	ev_timer_init(&wd, watchdog_cb, WATCHDOG_SECONDS, 0);
	ev_timer_start(server.loop, &wd);
	ev_unref(server.loop);
	ev_run(server.loop, 0);
	ev_ref(server.loop);
	ev_timer_stop(server.loop, &wd);
}

void harness_run_until(bool (*done)(void *ctx), void *ctx)
{
	ev_timer wd;
	ev_timer_init(&wd, watchdog_cb, WATCHDOG_SECONDS, 0);
	ev_timer_start(server.loop, &wd);
	while (!done(ctx))
		ev_run(server.loop, EVRUN_ONCE);
	ev_timer_stop(server.loop, &wd);
}

/* ---- host -------------------------------------------------------------------------- */

void harness_start(const char *modules_yaml)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/parley-modtest-XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	cfg_path = xasprintf("%s/parley.yml", tmpdir);
	FILE *f = fopen(cfg_path, "w");
	assert_non_null(f);
	fprintf(f, "loglevel: warning\n"
	           "listen:\n  - port: 5222\n"
	           "storage: { driver: memory }\n"
	           "hosts:\n  " HARNESS_HOST ": {}\n");
	if (modules_yaml != NULL && *modules_yaml != '\0')
		fprintf(f, "modules:\n%s", modules_yaml);
	assert_int_equal(fclose(f), 0);

	char *error = NULL;
	if (config_load(cfg_path, &cfg, &error) < 0)
		fail_msg("the test configuration does not load: %s", error);
	log_set_level(LOG_LEVEL_WARNING);
	server.loop = ev_default_loop(EVFLAG_AUTO);
	server.cfg = cfg;
	server.started = ev_time();
	server.online = true;
	modules_register_builtin();
	if (hosts_start(server.loop, cfg, false, &error) < 0)
		fail_msg("the test host does not start: %s", error);
	assert_non_null(harness_host());
}

void harness_stop(void)
{
	while (sessions != NULL) {
		struct fake_session *fs = sessions;
		harness_logout(&fs);
	}
	harness_run();
	hosts_stop();
	harness_run();
	config_free(&cfg);
	server.cfg = NULL;
	unlink(cfg_path);
	free(cfg_path);
	cfg_path = NULL;
	rmdir(tmpdir);
}

struct host *harness_host(void)
{
	return host_find(HARNESS_HOST);
}

/* ---- sessions ------------------------------------------------------------------------ */

static void fake_deliver(void *owner, struct xml_node *stanza)
{
	struct fake_session *fs = owner;
	if (fs->ngot == fs->cap) {
		fs->cap = fs->cap == 0 ? 16 : fs->cap * 2;
		fs->got = xrealloc(fs->got, fs->cap * sizeof(*fs->got));
	}
	xml_ref(stanza);
	fs->got[fs->ngot++] = stanza;
	fs->queued++;
}

static void fake_kick(void *owner, enum stream_error e, const char *text)
{
	(void)text;
	struct fake_session *fs = owner;
	fs->kicked = true;
	fs->kick_error = e;
}

static uint64_t fake_out_queued(void *owner)
{
	struct fake_session *fs = owner;
	return fs->queued;
}

static uint64_t fake_out_written(void *owner)
{
	struct fake_session *fs = owner;
	return fs->hold_writes ? fs->written : fs->queued;
}

static const struct session_ops fake_ops = {
	.deliver = fake_deliver,
	.kick = fake_kick,
	.out_queued = fake_out_queued,
	.out_written = fake_out_written,
};

static void barrier_advanced(void *ctx)
{
	(void)ctx;
}

struct fake_session *harness_login(const char *user, const char *resource)
{
	struct host *h = harness_host();
	struct fake_session *fs = xcalloc(1, sizeof(*fs));
	jid_set(&fs->s.jid, user, h->name, resource);
	fs->s.host = h;
	fs->s.ops = &fake_ops;
	fs->s.owner = fs;
	fs->s.id = next_id++;
	fs->s.started = ev_now(server.loop);
	snprintf(fs->s.ip, sizeof(fs->s.ip), "127.0.0.1");
	fs->s.port = 40000 + (unsigned)(fs->s.id % 1000);
	fs->barrier = barrier_new(barrier_advanced, fs);
	fs->next = sessions;
	sessions = fs;
	sm_session_open(&fs->s);
	return fs;
}

void harness_logout(struct fake_session **fsp)
{
	struct fake_session *fs = *fsp;
	if (fs == NULL)
		return;
	*fsp = NULL;
	if (fs->s.user != NULL)
		sm_session_close(&fs->s);
	for (struct fake_session **pp = &sessions; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == fs) {
			*pp = fs->next;
			break;
		}
	}
	if (fs->s.presence != NULL)
		xml_unref(&fs->s.presence);
	barrier_free(&fs->barrier);
	fake_clear(fs);
	free(fs->got);
	jid_clear(&fs->s.jid);
	free(fs);
}

/* What c2s_handle_session_stanza does with a stanza of a bound session
 * (minus the checks a test has no use for). */
static void send_stanza(struct fake_session *fs, struct xml_node *el)
{
	struct session *s = &fs->s;
	struct host *h = s->host;
	enum stanza_kind kind = stanza_kind(el);
	char *full = jid_to_string(&s->jid);
	xml_set_attr(el, "from", full);
	free(full);

	const char *type = xml_attr(el, "type");
	const char *to_s = xml_attr(el, "to");
	struct jid to = { 0 };
	if (to_s != NULL) {
		const char *err;
		if (jid_parse(to_s, &to, &err) != 0)
			fail_msg("a test stanza has a bad 'to' (%s): %s", to_s, err);
	} else if (kind == STANZA_PRESENCE) {
		if (type == NULL) {
			const char *prio = xml_child_text(el, "priority", NULL);
			int p = prio != NULL ? atoi(prio) : 0;
			s->priority = p < -128 ? -128 : p > 127 ? 127 : p;
			s->available = true;
			if (s->presence != NULL)
				xml_unref(&s->presence);
			s->presence = xml_copy(el);
		} else if (strcmp(type, "unavailable") == 0) {
			s->available = false;
			if (s->presence != NULL)
				xml_unref(&s->presence);
		}
		struct hook_packet hp = { .from = &s->jid, .to = NULL, .stanza = el, .session = s };
		hook_run(h, HOOK_USER_SEND_PACKET, &hp);
		return;
	} else {
		jid_set(&to, s->jid.node, s->jid.domain, NULL);
	}
	struct hook_packet hp = { .from = &s->jid, .to = &to, .stanza = el, .session = s };
	if (hook_run(h, HOOK_USER_SEND_PACKET, &hp) == HOOK_CONTINUE)
		router_route(el, &s->jid, &to);
	jid_clear(&to);
}

void harness_send(struct fake_session *fs, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *text = xvasprintf(fmt, ap);
	va_end(ap);
	const char *err = NULL;
	struct xml_node *el = xml_parse_string(text, strlen(text), NS_CLIENT, NULL, &err);
	if (el == NULL)
		fail_msg("a test stanza does not parse (%s): %s", err, text);
	free(text);
	struct barrier *outer = barrier_enter(fs->barrier);
	send_stanza(fs, el);
	barrier_leave(outer);
	xml_unref(&el);
}

void harness_available(struct fake_session *fs, int priority)
{
	harness_send(fs, "<presence><priority>%d</priority></presence>", priority);
	harness_run();
}

void harness_roster_get(struct fake_session *fs)
{
	harness_send(fs, "<iq type='get' id='roster-get'><query xmlns='jabber:iq:roster'/></iq>");
	harness_run();
	struct xml_node *r = fake_find(fs, "iq", "id", "roster-get");
	if (r == NULL || strcmp(xml_attr(r, "type"), "result") != 0)
		fail_msg("the roster get was not answered with a result");
	fake_clear(fs);
}

/* ---- what was delivered ---------------------------------------------------------------- */

size_t fake_count(const struct fake_session *fs)
{
	return fs->ngot;
}

struct xml_node *fake_get(const struct fake_session *fs, size_t i)
{
	assert_true(i < fs->ngot);
	return fs->got[i];
}

void fake_clear(struct fake_session *fs)
{
	for (size_t i = 0; i < fs->ngot; i++)
		xml_unref(&fs->got[i]);
	fs->ngot = 0;
}

struct xml_node *fake_find(const struct fake_session *fs, const char *name, const char *attr,
                           const char *value)
{
	for (size_t i = 0; i < fs->ngot; i++) {
		struct xml_node *el = fs->got[i];
		if (strcmp(el->name, name) != 0)
			continue;
		if (attr == NULL)
			return el;
		const char *v = xml_attr(el, attr);
		if (v != NULL && strcmp(v, value) == 0)
			return el;
	}
	return NULL;
}

size_t fake_count_named(const struct fake_session *fs, const char *name)
{
	size_t n = 0;
	for (size_t i = 0; i < fs->ngot; i++)
		if (strcmp(fs->got[i]->name, name) == 0)
			n++;
	return n;
}

const char *harness_error_condition(const struct xml_node *stanza, const char **type_r)
{
	const char *type = xml_attr(stanza, "type");
	if (type == NULL || strcmp(type, "error") != 0)
		return NULL;
	struct xml_node *err = xml_child(stanza, "error", NULL);
	if (err == NULL)
		return NULL;
	if (type_r != NULL)
		*type_r = xml_attr(err, "type");
	for (struct xml_node *c = xml_first_element(err); c != NULL; c = xml_next(c, NULL, NULL))
		if (strcmp(c->ns, NS_STANZAS) == 0 && strcmp(c->name, "text") != 0)
			return c->name;
	return NULL;
}

/* ---- the store -------------------------------------------------------------------------- */

struct answer {
	bool done;
	enum storage_result res;
	uint64_t count;
	struct roster_item item;
	bool found;
	const char *want_jid;
};

static void done_cb(enum storage_result res, void *ctx)
{
	struct answer *a = ctx;
	a->done = true;
	a->res = res;
}

static void count_cb(enum storage_result res, uint64_t count, void *ctx)
{
	struct answer *a = ctx;
	a->done = true;
	a->res = res;
	a->count = count;
}

/* Wait for a and check it said OK. */
static bool answer_done(void *ctx)
{
	return ((struct answer *)ctx)->done;
}

static void answered_ok(struct answer *a, const char *what)
{
	harness_run_until(answer_done, a);
	if (!a->done)
		fail_msg("%s: the store never answered", what);
	if (a->res != STORAGE_OK)
		fail_msg("%s: %s", what, storage_result_str(a->res));
}

uint64_t harness_offline_count(const char *user)
{
	struct host *h = harness_host();
	struct answer a = { 0 };
	storage_offline_count(h->storage, h->name, user, count_cb, &a);
	answered_ok(&a, "offline count");
	return a.count;
}

static void roster_cb(enum storage_result res, const struct roster_item *items, size_t count,
                      uint64_t version, void *ctx)
{
	(void)version;
	struct answer *a = ctx;
	a->done = true;
	a->res = res == STORAGE_NOT_FOUND ? STORAGE_OK : res;
	for (size_t i = 0; res == STORAGE_OK && i < count; i++) {
		if (strcmp(items[i].jid, a->want_jid) != 0)
			continue;
		const struct roster_item *it = &items[i];
		a->found = true;
		a->item.jid = xstrdup(it->jid);
		a->item.name = it->name != NULL ? xstrdup(it->name) : NULL;
		a->item.subscription = it->subscription;
		a->item.ask_out = it->ask_out;
		a->item.ask_in = it->ask_in;
		a->item.approved = it->approved;
		for (size_t g = 0; g < it->groups.count; g++) {
			a->item.groups.items =
			        xrealloc(a->item.groups.items, (g + 1) * sizeof(*a->item.groups.items));
			a->item.groups.items[g] = xstrdup(it->groups.items[g]);
			a->item.groups.count = g + 1;
		}
	}
}

bool harness_roster_item(const char *user, const char *jid, struct roster_item *it)
{
	struct host *h = harness_host();
	struct answer a = { .want_jid = jid };
	storage_roster_get(h->storage, h->name, user, roster_cb, &a);
	answered_ok(&a, "roster get");
	*it = a.item;
	return a.found;
}

void harness_privacy_list(const char *user, const char *name, const struct privacy_item *items, size_t n,
                          bool is_default)
{
	struct host *h = harness_host();
	struct answer a = { 0 };
	storage_privacy_set_list(h->storage, h->name, user, name, items, n, done_cb, &a);
	answered_ok(&a, "privacy set list");
	if (is_default) {
		struct answer d = { 0 };
		storage_privacy_set_default(h->storage, h->name, user, name, done_cb, &d);
		answered_ok(&d, "privacy set default");
	}
}

void harness_account(const char *user)
{
	struct host *h = harness_host();
	struct storage_account acc = { .created = 1 };
	struct answer a = { 0 };
	storage_account_create(h->storage, h->name, user, &acc, done_cb, &a);
	answered_ok(&a, "account create");
}

void harness_block(const char *user, const char *jid)
{
	struct host *h = harness_host();
	struct answer a = { 0 };
	const char *jids[] = { jid };
	storage_blocklist_add(h->storage, h->name, user, jids, 1, done_cb, &a);
	answered_ok(&a, "block list add");
}
