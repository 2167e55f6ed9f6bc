/*
 * SCRAM message parsing (lib/scram.c): the server side of one exchange,
 * client-first, then the challenge, then client-final, for every hash,
 * with and without -PLUS and channel binding data.
 *
 * Input: 1 control byte (bits 0-1 the hash, 2 -PLUS, 3 channel binding
 * data present, 4 y_is_downgrade, 5 unknown user, 6 XEP-0474 string),
 * then client-first, a NUL, then client-final.  The server nonce is
 * "fuzzsnonce", the user's password "pencil" with the salt "QSXCR+Q6sek8bf92"
 * and 16 iterations, and the tls-exporter data 32 bytes of 0x5a, so inputs
 * with valid proofs (tests/fuzz/make_corpus.py writes some) reach success.
 *
 * Checks beyond the sanitizers: success only for a known user; the
 * failure reasons are the documented set.
 */
#include "tests/fuzz/fuzz.h"
#include "lib/scram.h"

#include <assert.h>

#define FUZZ_SNONCE "fuzzsnonce"
#define FUZZ_SALT "QSXCR+Q6sek8bf92" /* base64 of 12 bytes */

static struct scram_credentials creds[3];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_quiet();
	unsigned char *salt = NULL;
	size_t salt_len = 0;
	if (base64_decode(FUZZ_SALT, strlen(FUZZ_SALT), &salt, &salt_len) < 0)
		abort();
	for (int h = SCRAM_SHA1; h <= SCRAM_SHA512; h++)
		if (scram_derive((enum scram_hash)h, "pencil", salt, salt_len, 16, &creds[h]) < 0)
			abort();
	free(salt);
	return 0;
}

static void check_error(const char *error)
{
	static const char *const known[] = {
		"malformed-request",
		"not-authorized",
		"server-does-support-channel-binding",
		"channel-binding-not-supported",
		"unsupported-channel-binding-type",
		"channel-bindings-dont-match",
	};
	assert(error != NULL);
	for (size_t i = 0; i < ARRAY_SIZE(known); i++)
		if (strcmp(error, known[i]) == 0)
			return;
	fprintf(stderr, "fuzz-scram: undocumented error '%s'\n", error);
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_input in = { data, size };
	uint8_t ctl = fuzz_byte(&in);
	enum scram_hash h = (enum scram_hash)((ctl & 3) % 3);
	bool plus = ctl & 4, unknown = ctl & 32;
	unsigned char cb_data[32];
	memset(cb_data, 0x5a, sizeof(cb_data));
	struct scram_server *s =
	        scram_server_new(h, plus, plus ? "tls-exporter" : NULL, ctl & 8 ? cb_data : NULL,
	                         ctl & 8 ? sizeof(cb_data) : 0, ctl & 16);
	scram_server_set_nonce(s, FUZZ_SNONCE);
	if (ctl & 64) {
		static const char ssdp[] = "PLAIN\x1eSCRAM-SHA-1\x1eSCRAM-SHA-256\x1fiytls-exporter";
		scram_server_set_ssdp(s, ssdp, sizeof(ssdp) - 1);
	}
	size_t first_len;
	const uint8_t *first = fuzz_until(&in, 0, &first_len);
	const char *user = NULL, *error = NULL;
	enum scram_step st = scram_server_client_first(s, (const char *)first, first_len, &user, &error);
	if (st == SCRAM_CONTINUE) {
		assert(user != NULL);
		(void)strlen(user);
		const char *authzid = scram_server_authzid(s);
		if (authzid != NULL)
			(void)strlen(authzid);
		char *out = NULL;
		size_t out_len = 0;
		st = scram_server_challenge(s, unknown ? NULL : &creds[h], &out, &out_len);
		assert(st == SCRAM_CONTINUE && out != NULL && out_len == strlen(out));
		free(out);
		out = NULL;
		error = NULL;
		st = scram_server_client_final(s, (const char *)in.data, in.len, &out, &out_len, &error);
		if (st == SCRAM_SUCCESS) {
			assert(!unknown);
			assert(out != NULL && out_len > 2 && memcmp(out, "v=", 2) == 0);
		} else {
			assert(st == SCRAM_FAIL);
			check_error(error);
		}
		free(out);
		/* nothing more is accepted after the end */
		out = NULL;
		error = NULL;
		assert(scram_server_client_final(s, (const char *)in.data, in.len, &out, &out_len, &error) ==
		       SCRAM_FAIL);
		free(out);
	} else {
		assert(st == SCRAM_FAIL);
		check_error(error);
	}
	scram_server_free(&s);
	return 0;
}
