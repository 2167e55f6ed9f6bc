/*
 * Tests of the s2s pieces that need no network: dialback keys (XEP-0185)
 * against a value computed independently (Python's hmac and hashlib).
 * Single-threaded.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "server/s2s.h"

static void test_dialback_key(void **state)
{
	(void)state;
	char key[65];
	s2s_dialback_set_secret("s3cr3t", 6);
	s2s_dialback_key("xmpp.example.com", "example.org", "D60000229F", key);
	/* hex(HMAC-SHA256(SHA256("s3cr3t"), "xmpp.example.com example.org D60000229F")) */
	assert_string_equal(key, "f1df4b0809353b233bdc1e6c8a26a5576813054874da74c82e54abd7348d3fc4");
	/* any change of the inputs changes the key */
	char other[65];
	s2s_dialback_key("example.org", "xmpp.example.com", "D60000229F", other);
	assert_string_not_equal(key, other);
	s2s_dialback_key("xmpp.example.com", "example.org", "D60000229G", other);
	assert_string_not_equal(key, other);
	s2s_dialback_set_secret("s3cr3u", 6);
	s2s_dialback_key("xmpp.example.com", "example.org", "D60000229F", other);
	assert_string_not_equal(key, other);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dialback_key),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
