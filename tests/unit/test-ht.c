/*
 * FAST token derivation and the HT mechanism's HMACs (lib/ht.c), against
 * values computed independently (Python's hmac module).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "lib/ht.h"

static void hex(const unsigned char *b, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", b[i]);
}

static void test_token_from_seed(void **state)
{
	(void)state;
	unsigned char key[HT_KEY_LEN], seed[HT_SEED_LEN];
	for (size_t i = 0; i < sizeof(key); i++)
		key[i] = (unsigned char)i;
	memset(seed, 0xaa, sizeof(seed));
	char token[HT_TOKEN_LEN + 1];
	ht_token_derive(key, seed, "alice", "a.example", token);
	assert_string_equal(token, "QffTjXb/d5bYWf7OAe6rp/4VoAs6cDjMM3tYBBK8tkY=");
	/* another user or host with the same seed: another token */
	char other[HT_TOKEN_LEN + 1];
	ht_token_derive(key, seed, "alice", "b.example", other);
	assert_string_not_equal(token, other);
	key[0] ^= 1;
	ht_token_derive(key, seed, "alice", "a.example", other);
	assert_string_not_equal(token, other);
}

static void test_initiator_and_responder(void **state)
{
	(void)state;
	const char *token = "QffTjXb/d5bYWf7OAe6rp/4VoAs6cDjMM3tYBBK8tkY=";
	unsigned char mac[HT_HMAC_LEN];
	char h[2 * HT_HMAC_LEN + 1];
	ht_hmac(token, "Initiator", NULL, 0, mac);
	hex(mac, sizeof(mac), h);
	assert_string_equal(h, "b6f4e026a23cd1b8fbc5fd2e400fe819d99e4b21593810a20e5f28c3f7fc1f29");
	const unsigned char cb[] = { 1, 2, 3 };
	ht_hmac(token, "Responder", cb, sizeof(cb), mac);
	hex(mac, sizeof(mac), h);
	assert_string_equal(h, "5cafb0a42b0a0ea9345ee25c8e18a472edcf1eacbf5f551a47698c7bbd2fead8");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_token_from_seed),
		cmocka_unit_test(test_initiator_and_responder),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
