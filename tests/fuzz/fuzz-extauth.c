/*
 * The port protocol of the external auth method, which the PAM helper
 * speaks too (auth/auth-external.c): the reply reader exactly as the
 * process pool (auth/procpool.c) drives it for both, on whatever a
 * misbehaving program writes, in reads of any size; and the request
 * splitter (extproto_split) with a round trip through the encoder.
 *
 * Input: 1 control byte (the seed of the read sizes; its top bit: read as
 * the PAM helper's pool, which also takes 00 02 00 02, "temporary
 * failure"), then the bytes the program writes.  The same bytes after the
 * control byte are split as a request payload.
 *
 * Checks beyond the sanitizers: a reply is accepted only as 00 02 00 00 or
 * 00 02 00 01 (or 00 02 00 02 for the PAM helper) and nothing is read past
 * it; a split request re-encodes to the same payload.
 */
#include "tests/fuzz/fuzz.h"
#include "auth/auth-external.h"

#include <assert.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_quiet();
	return 0;
}

/* The pool's reader: reads land in a reply buffer of 8 bytes; more than
 * that, or a reply the decoder calls garbage, ends the process. */
static void read_replies(const uint8_t *data, size_t len, uint8_t seed)
{
	unsigned char reply[8];
	size_t reply_len = 0;
	uint32_t rng = seed;
	bool tempfail_ok = (seed & 0x80) != 0;
	while (len > 0) {
		rng = rng * 1103515245u + 12345u;
		size_t n = 1 + (rng >> 16) % 64;
		if (n > len)
			n = len;
		if (reply_len + n > sizeof(reply))
			return; /* "wrote more than one reply" */
		memcpy(reply + reply_len, data, n);
		reply_len += n;
		data += n;
		len -= n;
		enum extproto_answer ans = EXTPROTO_NO;
		int r = extproto_decode_reply(reply, reply_len, tempfail_ok, &ans);
		if (r < 0)
			return;
		if (r == 0)
			continue;
		assert(r == 1 && reply_len == 4);
		assert(reply[0] == 0 && reply[1] == 2 && reply[2] == 0 && reply[3] == (unsigned)ans);
		assert(ans != EXTPROTO_TEMPFAIL || tempfail_ok);
		reply_len = 0; /* the next request's reply */
	}
}

static void split_request(const uint8_t *data, size_t len)
{
	char *copy = NULL;
	const char *f[4] = { NULL, NULL, NULL, NULL };
	int n = extproto_split((const char *)data, len, &copy, f);
	if (n < 0) {
		assert(copy == NULL);
		return;
	}
	assert(n >= 2 && n <= 4);
	struct buf b = { 0 };
	if (n >= 3 && extproto_encode(&b, f[0], f[1], f[2], n == 4 ? f[3] : NULL) == 0) {
		assert(b.len == len + 2);
		assert(((size_t)(unsigned char)b.data[0] << 8 | (unsigned char)b.data[1]) == len);
		assert(memcmp(b.data + 2, data, len) == 0);
	}
	buf_free(&b);
	free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_input in = { data, size };
	uint8_t seed = fuzz_byte(&in);
	read_replies(in.data, in.len, seed);
	split_request(in.data, in.len);
	return 0;
}
