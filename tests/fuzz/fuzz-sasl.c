/*
 * SASL as server/sasl.c runs it for a client stream, without TLS: PLAIN
 * (RFC 4616 message parsing, the authorization identity, the password
 * check through the auth chain), SCRAM-SHA-1/256/512 (the gs2 header, the
 * user lookup, the challenge) and ANONYMOUS, on a host whose auth chain is
 * "internal" on the memory store with one account, juliet, password
 * "pencil".  PLAIN with the right password succeeds; SCRAM's proofs cannot
 * be right here (the server nonce is random): fuzz-scram covers those.
 *
 * Input: 1 byte choosing the mechanism, then up to four messages, each a
 * 2-byte big-endian length and that many bytes.  Each message is one
 * sasl_step; an asynchronous answer is waited for on the loop.
 *
 * Checks beyond the sanitizers: an answer comes for every step (a hang is
 * reported by libFuzzer's timeout); a failure names a condition; success
 * names a user.
 */
#include "tests/fuzz/fuzz.h"
#include "server/sasl.h"
#include "storage/storage.h"

#include <assert.h>

static struct ev_loop *loop;
static struct storage *store;
static struct auth *auth;

struct waiter {
	bool done;
	enum auth_result ares;
	struct sasl_result res;
};

static void created(enum auth_result r, void *ctx)
{
	struct waiter *w = ctx;
	w->ares = r;
	w->done = true;
}

static void wait_for(struct waiter *w)
{
	while (!w->done)
		ev_run(loop, EVRUN_ONCE);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_quiet();
	loop = ev_default_loop(EVFLAG_AUTO);
	struct storage_config sc;
	storage_config_defaults(&sc);
	free(sc.driver);
	sc.driver = xstrdup("memory");
	char *err = NULL;
	if (storage_open(loop, &sc, &store, &err) < 0) {
		fprintf(stderr, "fuzz-sasl: storage: %s\n", err);
		abort();
	}
	storage_config_free(&sc);
	struct auth_config ac = { 0 };
	char *methods[] = { "internal", "anonymous" };
	ac.methods.items = methods;
	ac.methods.count = 2;
	ac.scram_iterations = 16; /* cheap checks: below what the config allows */
	if (auth_new(loop, "fuzz.example", &ac, store, &auth, &err) < 0) {
		fprintf(stderr, "fuzz-sasl: auth: %s\n", err);
		abort();
	}
	struct waiter w = { 0 };
	assert(auth_create_user(auth, "juliet", "pencil", created, &w) != NULL);
	wait_for(&w);
	assert(w.ares == AUTH_OK);
	return 0;
}

static void answered(void *ctx, struct sasl_result *res)
{
	struct waiter *w = ctx;
	w->res = *res;
	memset(res, 0, sizeof(*res));
	w->done = true;
}

static void check(const struct sasl *s, const struct sasl_result *res)
{
	switch (res->status) {
	case SASL_FAILURE: assert(res->condition != NULL); break;
	case SASL_SUCCESS: assert(sasl_username(s) != NULL && *sasl_username(s) != '\0'); break;
	case SASL_CHALLENGE: assert(res->data != NULL && res->len > 0); break;
	case SASL_PENDING: abort(); /* waited for */
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const mechs[] = { "PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-512",
		                             "ANONYMOUS" };
	struct fuzz_input in = { data, size };
	const char *mech = mechs[fuzz_byte(&in) % ARRAY_SIZE(mechs)];
	struct waiter w = { 0 };
	struct sasl *s = sasl_new(mech, auth, NULL, true, "192.0.2.1", answered, &w);
	assert(s != NULL);
	for (int step = 0; step < 4 && in.len >= 2; step++) {
		size_t len = (size_t)fuzz_byte(&in) << 8;
		len |= fuzz_byte(&in);
		if (len > in.len)
			len = in.len;
		memset(&w, 0, sizeof(w));
		sasl_step(s, (const char *)in.data, len, &w.res);
		in.data += len;
		in.len -= len;
		if (w.res.status == SASL_PENDING) {
			wait_for(&w);
			assert(w.res.status != SASL_PENDING);
		}
		check(s, &w.res);
		enum sasl_status st = w.res.status;
		sasl_result_clear(&w.res);
		if (st != SASL_CHALLENGE)
			break;
	}
	sasl_free(&s);
	return 0;
}
