/*
 * Stream management counters and the unacknowledged queue (see
 * c2s-sm.h).  Loop thread only.
 */
#include "c2s-sm.h"
#include "sm.h"
#include "lib/util.h"
#include "lib/xml.h"

#include <assert.h>
#include <stddef.h>
#include <string.h>

static struct c2s_sm *resumable;
static struct htab by_id;

bool c2s_sm_h_ge(uint32_t a, uint32_t b)
{
	return (uint32_t)(a - b) < 0x80000000u;
}

struct c2s_sm *c2s_sm_new(void *owner)
{
	struct c2s_sm *sm = xcalloc(1, sizeof(*sm));
	sm->owner = owner;
	return sm;
}

static void unregister(struct c2s_sm *sm)
{
	htab_remove(&by_id, &sm->by_id);
	if (sm->prev != NULL)
		sm->prev->next = sm->next;
	else
		resumable = sm->next;
	if (sm->next != NULL)
		sm->next->prev = sm->prev;
	sm->prev = sm->next = NULL;
	if (resumable == NULL)
		htab_free(&by_id);
}

void c2s_sm_free(struct c2s_sm **smp)
{
	struct c2s_sm *sm = *smp;
	if (sm == NULL)
		return;
	if (sm->id[0] != '\0')
		unregister(sm);
	struct c2s_sm_entry e;
	while (c2s_sm_pop(sm, &e)) {
		xml_unref(&e.el);
		sm_copies_unref(&e.copies);
	}
	for (size_t i = 0; i < sm->nheld; i++) {
		xml_unref(&sm->held[i].el);
		sm_copies_unref(&sm->held[i].copies);
	}
	free(sm->held);
	free(sm->q);
	free(sm);
	*smp = NULL;
}

void c2s_sm_make_resumable(struct c2s_sm *sm, double timeout)
{
	if (sm->id[0] == '\0') {
		sm->prev = NULL;
		sm->next = resumable;
		if (resumable != NULL)
			resumable->prev = sm;
		resumable = sm;
	} else {
		htab_remove(&by_id, &sm->by_id); /* a new id: filed again below */
	}
	random_id(sm->id, sizeof(sm->id) - 1);
	sm->id[sizeof(sm->id) - 1] = '\0';
	htab_add(&by_id, &sm->by_id, hash_str(sm->id));
	sm->resume_timeout = timeout;
}

struct c2s_sm *c2s_sm_find(const char *id)
{
	if (id == NULL || strlen(id) != sizeof(resumable->id) - 1)
		return NULL;
	uint32_t hash = hash_str(id);
	for (struct htab_link *l = htab_chain(&by_id, hash); l != NULL; l = l->next) {
		struct c2s_sm *sm = (struct c2s_sm *)((char *)l - offsetof(struct c2s_sm, by_id));
		if (l->hash == hash && secure_memeq(sm->id, id, sizeof(sm->id) - 1))
			return sm;
	}
	return NULL;
}

void c2s_sm_foreach(void (*fn)(struct c2s_sm *sm, void *ctx), void *ctx)
{
	for (struct c2s_sm *sm = resumable, *next; sm != NULL; sm = next) {
		next = sm->next;
		fn(sm, ctx);
	}
}

bool c2s_sm_is_stanza(const struct xml_node *el)
{
	return xml_is(el, "message", NS_CLIENT) || xml_is(el, "presence", NS_CLIENT) ||
	       xml_is(el, "iq", NS_CLIENT);
}

static void push(struct c2s_sm *sm, struct xml_node *el, double stamp, struct sm_copies *copies, bool told)
{
	if (sm->qlen == sm->qcap) {
		size_t ncap = sm->qcap ? sm->qcap * 2 : 16;
		struct c2s_sm_entry *nq = xmalloc(ncap * sizeof(*nq));
		for (size_t i = 0; i < sm->qlen; i++)
			nq[i] = sm->q[(sm->qhead + i) % sm->qcap];
		free(sm->q);
		sm->q = nq;
		sm->qcap = ncap;
		sm->qhead = 0;
	}
	sm->q[(sm->qhead + sm->qlen) % sm->qcap] =
	        (struct c2s_sm_entry){ .el = el, .stamp = stamp, .copies = copies, .told = told };
	sm->qlen++;
	sm->out++;
	sm->since_request++;
}

void c2s_sm_sent(struct c2s_sm *sm, const struct xml_node *el, double stamp, struct sm_copies *copies,
                 bool told)
{
	push(sm, xml_copy(el), stamp, sm_copies_ref(copies), told);
}

int c2s_sm_ack(struct c2s_sm *sm, uint32_t h)
{
	uint32_t n = h - sm->acked;
	if (n > sm->qlen)
		return -1;
	for (uint32_t i = 0; i < n; i++) {
		xml_unref(&sm->q[sm->qhead].el);
		sm_copies_unref(&sm->q[sm->qhead].copies);
		sm->qhead = (sm->qhead + 1) % sm->qcap;
		sm->qlen--;
	}
	sm->acked = h;
	return 0;
}

size_t c2s_sm_count(const struct c2s_sm *sm)
{
	return sm->qlen;
}

struct c2s_sm_entry *c2s_sm_entry(struct c2s_sm *sm, size_t i)
{
	return i < sm->qlen ? &sm->q[(sm->qhead + i) % sm->qcap] : NULL;
}

bool c2s_sm_pop(struct c2s_sm *sm, struct c2s_sm_entry *e_r)
{
	if (sm->qlen == 0)
		return false;
	*e_r = sm->q[sm->qhead];
	sm->qhead = (sm->qhead + 1) % sm->qcap;
	sm->qlen--;
	sm->acked++;
	return true;
}

static void held_put(struct c2s_sm *sm, size_t start, size_t len, struct xml_node *el, double stamp,
                     struct sm_copies *copies, bool told)
{
	size_t at = sm->nheld;
	while (at > 0 && sm->held[at - 1].end > start)
		at--;
	for (size_t i = at; i < sm->nheld; i++)
		sm->held[i].end += len;
	if (sm->nheld == sm->held_cap) {
		sm->held_cap = sm->held_cap ? sm->held_cap * 2 : 8;
		sm->held = xrealloc(sm->held, sm->held_cap * sizeof(*sm->held));
	}
	memmove(sm->held + at + 1, sm->held + at, (sm->nheld - at) * sizeof(*sm->held));
	sm->held[at] = (struct c2s_sm_held){
		.end = start + len, .el = el, .stamp = stamp, .copies = copies, .told = told
	};
	sm->nheld++;
}

void c2s_sm_held_insert(struct c2s_sm *sm, size_t start, size_t len, const struct xml_node *el, double stamp,
                        struct sm_copies *copies, bool told)
{
	held_put(sm, start, len, xml_copy(el), stamp, sm_copies_ref(copies), told);
}

void c2s_sm_untell(struct c2s_sm *sm)
{
	for (size_t i = 0; i < sm->qlen; i++)
		sm->q[(sm->qhead + i) % sm->qcap].told = false;
	for (size_t i = 0; i < sm->nheld; i++)
		sm->held[i].told = false;
}

void c2s_sm_held_move_last(struct c2s_sm *sm, size_t start, size_t len)
{
	assert(sm->nheld > 0);
	struct c2s_sm_held last = sm->held[--sm->nheld];
	held_put(sm, start, len, last.el, last.stamp, last.copies, last.told);
}

void c2s_sm_held_written(struct c2s_sm *sm, size_t bytes)
{
	size_t n = 0;
	while (n < sm->nheld && sm->held[n].end <= bytes) {
		push(sm, sm->held[n].el, sm->held[n].stamp, sm->held[n].copies, sm->held[n].told);
		n++;
	}
	if (n == 0 && sm->nheld == 0)
		return;
	sm->nheld -= n;
	memmove(sm->held, sm->held + n, sm->nheld * sizeof(*sm->held));
	for (size_t i = 0; i < sm->nheld; i++)
		sm->held[i].end -= bytes;
}
