/*
 * Unit tests: the one mapping from storage and auth results to stanza
 * errors (modules/errmap.c): a temporary failure is <resource-constraint/>
 * of type wait and never a negative answer; the other results keep their
 * meaning; the texts say "try again later" for temporary failures only.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "modules/errmap.h"

static void test_temporary_is_wait(void **state)
{
	(void)state;
	assert_int_equal(errmap_storage(STORAGE_TEMPFAIL), SE_RESOURCE_CONSTRAINT);
	assert_int_equal(errmap_auth(AUTH_TEMPFAIL), SE_RESOURCE_CONSTRAINT);
	assert_string_equal(stanza_error_type(errmap_storage(STORAGE_TEMPFAIL)), "wait");
	assert_string_equal(stanza_error_type(errmap_auth(AUTH_TEMPFAIL)), "wait");
	assert_true(errmap_storage_temporary(STORAGE_TEMPFAIL));
	assert_true(errmap_auth_temporary(AUTH_TEMPFAIL));
	assert_false(errmap_storage_temporary(STORAGE_ERROR));
	assert_false(errmap_storage_temporary(STORAGE_NOT_FOUND));
	assert_false(errmap_auth_temporary(AUTH_NO_USER));
}

static void test_storage_results(void **state)
{
	(void)state;
	assert_int_equal(errmap_storage(STORAGE_NOT_FOUND), SE_ITEM_NOT_FOUND);
	assert_int_equal(errmap_storage(STORAGE_EXISTS), SE_CONFLICT);
	assert_int_equal(errmap_storage(STORAGE_FULL), SE_RESOURCE_CONSTRAINT);
	assert_int_equal(errmap_storage(STORAGE_ERROR), SE_INTERNAL_SERVER_ERROR);
	assert_int_equal(errmap_storage(STORAGE_OK), SE_INTERNAL_SERVER_ERROR);
}

static void test_auth_results(void **state)
{
	(void)state;
	assert_int_equal(errmap_auth(AUTH_NO_USER), SE_ITEM_NOT_FOUND);
	assert_int_equal(errmap_auth(AUTH_EXISTS), SE_CONFLICT);
	assert_int_equal(errmap_auth(AUTH_NOT_SUPPORTED), SE_NOT_ALLOWED);
	assert_int_equal(errmap_auth(AUTH_BAD_PASSWORD), SE_NOT_AUTHORIZED);
	assert_int_equal(errmap_auth(AUTH_ERROR), SE_INTERNAL_SERVER_ERROR);
}

/* Every temporary result, whatever the backend, is no negative answer. */
static void test_never_negative(void **state)
{
	(void)state;
	const enum stanza_error negative[] = { SE_ITEM_NOT_FOUND, SE_NOT_AUTHORIZED, SE_FORBIDDEN,
		                               SE_SERVICE_UNAVAILABLE, SE_REGISTRATION_REQUIRED };
	for (size_t i = 0; i < sizeof(negative) / sizeof(negative[0]); i++) {
		assert_int_not_equal(errmap_storage(STORAGE_TEMPFAIL), negative[i]);
		assert_int_not_equal(errmap_auth(AUTH_TEMPFAIL), negative[i]);
	}
}

static void test_texts(void **state)
{
	(void)state;
	char *t = errmap_storage_text(STORAGE_TEMPFAIL, "the roster store");
	assert_string_equal(t, "the roster store is unavailable; try again later");
	free(t);
	t = errmap_auth_text(AUTH_TEMPFAIL, NULL);
	assert_non_null(t);
	assert_non_null(strstr(t, "try again later"));
	free(t);
	assert_null(errmap_storage_text(STORAGE_ERROR, "the roster store"));
	assert_null(errmap_auth_text(AUTH_EXISTS, "the account service"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_temporary_is_wait),
		cmocka_unit_test(test_storage_results),
		cmocka_unit_test(test_auth_results),
		cmocka_unit_test(test_never_negative),
		cmocka_unit_test(test_texts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
