/*
 * Unit tests for the LDAP client's escaping: filter values (RFC 4515), DN
 * attribute values (RFC 4514), the user search filter built from the
 * configuration, and the filter of the LDAP user directory (XEP-0055)
 * built from search terms.  Pure functions: no server needed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "lib/ldap-client.h"
#include "storage/ldap-store.h"

static void check_filter_escape(const char *in, size_t len, const char *want)
{
	char *got = ldap_filter_escape(in, len);
	assert_string_equal(got, want);
	free(got);
}

static void test_filter_escape_specials(void **state)
{
	(void)state;
	check_filter_escape("ann", 3, "ann");
	check_filter_escape("*", 1, "\\2a");
	check_filter_escape("(", 1, "\\28");
	check_filter_escape(")", 1, "\\29");
	check_filter_escape("\\", 1, "\\5c");
	check_filter_escape("a)(uid=*", 8, "a\\29\\28uid=\\2a");
	check_filter_escape("\\2a", 3, "\\5c2a");
	check_filter_escape("*)(|(objectClass=*", 18, "\\2a\\29\\28|\\28objectClass=\\2a");
	check_filter_escape("", 0, "");
}

static void test_filter_escape_nul(void **state)
{
	(void)state;
	check_filter_escape("a\0b", 3, "a\\00b");
	check_filter_escape("\0", 1, "\\00");
}

static void test_filter_escape_keeps_utf8(void **state)
{
	(void)state;
	/* non-ASCII stays as UTF-8 (RFC 4515 allows it in assertion values) */
	check_filter_escape("j\xc3\xbcrgen", 7, "j\xc3\xbcrgen");
	check_filter_escape("\xe5\xbc\xa0*", 4, "\xe5\xbc\xa0\\2a");
	/* bytes that look like specials only inside multibyte sequences do not
	 * exist in UTF-8; other printable ASCII is kept */
	check_filter_escape("a=b,c+d;e<f>g\"h#i&|!~", 21, "a=b,c+d;e<f>g\"h#i&|!~");
}

static void check_dn_escape(const char *in, size_t len, const char *want)
{
	char *got = ldap_dn_escape(in, len);
	assert_string_equal(got, want);
	free(got);
}

static void test_dn_escape(void **state)
{
	(void)state;
	check_dn_escape("ann", 3, "ann");
	check_dn_escape("k+r,o(o)*", 9, "k\\+r\\,o(o)*");
	check_dn_escape("a\"b;c<d>e\\f=g", 13, "a\\\"b\\;c\\<d\\>e\\\\f\\=g");
	check_dn_escape("#lead", 5, "\\#lead");
	check_dn_escape("mid#", 4, "mid#");
	check_dn_escape(" both ", 6, "\\ both\\ ");
	check_dn_escape("in side", 7, "in side");
	check_dn_escape("a\0b", 3, "a\\00b");
	check_dn_escape("j\xc3\xbcrgen", 7, "j\xc3\xbcrgen");
	check_dn_escape("", 0, "");
}

static void check_user_filter(const char *const *uids, size_t n, const char *filter, const char *user,
                              const char *want)
{
	struct strlist l = { (char **)uids, n };
	char *got = ldap_user_filter(&l, filter, user);
	assert_string_equal(got, want);
	free(got);
}

static void test_user_filter(void **state)
{
	(void)state;
	static const char *const one[] = { "uid" };
	static const char *const two[] = { "uid", "mail" };
	check_user_filter(one, 1, NULL, "ann", "(uid=ann)");
	check_user_filter(one, 1, "", "ann", "(uid=ann)");
	check_user_filter(two, 2, NULL, "ann", "(|(uid=ann)(mail=ann))");
	check_user_filter(one, 1, "(objectClass=person)", "ann", "(&(uid=ann)(objectClass=person))");
	/* written without the outer parentheses */
	check_user_filter(one, 1, "objectClass=person", "ann", "(&(uid=ann)(objectClass=person))");
	check_user_filter(two, 2, "(&(objectClass=person)(!(employeeType=disabled)))", "a*",
	                  "(&(|(uid=a\\2a)(mail=a\\2a))(&(objectClass=person)(!(employeeType=disabled))))");
	/* %u in the filter is the escaped user; %% a percent sign */
	check_user_filter(one, 1, "(|(memberUid=%u)(cn=%u))", "x)(cn=*",
	                  "(&(uid=x\\29\\28cn=\\2a)(|(memberUid=x\\29\\28cn=\\2a)(cn=x\\29\\28cn=\\2a)))");
	check_user_filter(one, 1, "(description=100%%)", "ann", "(&(uid=ann)(description=100%))");
	check_user_filter(one, 1, "(cn=%x)", "ann", "(&(uid=ann)(cn=%x))");
	/* an injection attempt stays one assertion value */
	check_user_filter(one, 1, NULL, "*)(uid=*))(|(uid=*",
	                  "(uid=\\2a\\29\\28uid=\\2a\\29\\29\\28|\\28uid=\\2a)");
	check_user_filter(one, 1, NULL, "\\2a", "(uid=\\5c2a)");
}

static void check_unique_member(const char *in, const char *want)
{
	char *got = ldap_srg_unique_member_dn(in);
	assert_string_equal(got, want);
	free(got);
}

/* uniqueMember values: the optional bit string after the DN goes. */
static void test_unique_member_dn(void **state)
{
	(void)state;
	check_unique_member("uid=ann,ou=people,dc=x", "uid=ann,ou=people,dc=x");
	check_unique_member("uid=ann,ou=people,dc=x#'0101'B", "uid=ann,ou=people,dc=x");
	check_unique_member("cn=g,dc=x#''B", "cn=g,dc=x");
	/* not a bit string: kept whole */
	check_unique_member("cn=g,dc=x#'0121'B", "cn=g,dc=x#'0121'B");
	check_unique_member("cn=g,dc=x'0101'B", "cn=g,dc=x'0101'B");
	check_unique_member("cn=g,dc=x#'0101'", "cn=g,dc=x#'0101'");
	check_unique_member("cn=g\\#'01'b", "cn=g\\#'01'b");
	check_unique_member("#'1'B", "");
	check_unique_member("'B", "'B");
	check_unique_member("", "");
}

static void check_listing_more(const char *const *present, const char *filter, const char *more,
                               const char *want)
{
	char *got = NULL, *err = NULL;
	assert_int_equal(ldap_listing_filter(present, filter, more, &got, &err), 0);
	assert_null(err);
	assert_string_equal(got, want);
	free(got);
}

static void check_listing(const char *const *present, const char *filter, const char *want)
{
	check_listing_more(present, filter, NULL, want);
}

static void test_listing_filter(void **state)
{
	(void)state;
	static const char *const one[] = { "uid", NULL };
	static const char *const two[] = { "uid", "departmentNumber", NULL };
	check_listing(one, NULL, "(uid=*)");
	check_listing(one, "", "(uid=*)");
	check_listing(two, NULL, "(&(uid=*)(departmentNumber=*))");
	check_listing(two, "(objectClass=person)", "(&(uid=*)(departmentNumber=*)(objectClass=person))");
	check_listing(one, "objectClass=person", "(&(uid=*)(objectClass=person))");
	check_listing(one, "(&(objectClass=person)(!(employeeType=disabled)))",
	              "(&(uid=*)(&(objectClass=person)(!(employeeType=disabled))))");
	check_listing(one, "(description=100%%)", "(&(uid=*)(description=100%))");
	check_listing(one, "(cn=%x)", "(&(uid=*)(cn=%x))");
	/* clauses of the caller's at the end, in the one (&...) */
	check_listing_more(one, NULL, "(sn=Smith)", "(&(uid=*)(sn=Smith))");
	check_listing_more(one, "(o=Acme)", "(sn=Smith)(cn=a*)", "(&(uid=*)(o=Acme)(sn=Smith)(cn=a*))");
	check_listing_more(one, NULL, "", "(uid=*)");
	/* %u names the user logging in: no listing can use it */
	char *got = NULL, *err = NULL;
	assert_int_equal(ldap_listing_filter(one, "(|(uid=%u)(cn=x))", NULL, &got, &err), -1);
	assert_null(got);
	assert_non_null(strstr(err, "%u"));
	free(err);
}

/* The attributes of the vcard module's defaults. */
static const char *const vj_attrs[VF_COUNT] = {
	[VF_USER] = "uid",         [VF_FN] = "cn",      [VF_FIRST] = "givenName", [VF_LAST] = "sn",
	[VF_NICK] = "displayName", [VF_EMAIL] = "mail", [VF_LOCALITY] = "l",      [VF_ORG] = "o",
};

static void check_vjud_filter(const char *const *attrs, const char *auth_filter,
                              const struct vcard_term *terms, size_t n, const char *want)
{
	char *got = ldap_store_search_filter(attrs, auth_filter, terms, n);
	if (want == NULL) {
		assert_null(got);
		return;
	}
	assert_non_null(got);
	assert_string_equal(got, want);
	free(got);
}

static void test_vjud_filter_terms(void **state)
{
	(void)state;
	const struct vcard_term exact[] = { { VF_LAST, "Smith", false } };
	check_vjud_filter(vj_attrs, NULL, exact, 1, "(&(uid=*)(sn=Smith))");
	/* the auth filter ANDed, with or without its parentheses, %% a percent */
	check_vjud_filter(vj_attrs, "(objectClass=inetOrgPerson)", exact, 1,
	                  "(&(uid=*)(objectClass=inetOrgPerson)(sn=Smith))");
	check_vjud_filter(vj_attrs, "objectClass=person", exact, 1,
	                  "(&(uid=*)(objectClass=person)(sn=Smith))");
	check_vjud_filter(vj_attrs, "(description=100%%)", exact, 1,
	                  "(&(uid=*)(description=100%)(sn=Smith))");
	/* a prefix keeps its one '*'; several terms are ANDed */
	const struct vcard_term several[] = {
		{ VF_FN, "ann sm", true },  { VF_EMAIL, "ann@example.org", false },
		{ VF_USER, "ann", false },  { VF_FIRST, "Ann", false },
		{ VF_NICK, "annie", true }, { VF_LOCALITY, "Lyon", false },
		{ VF_ORG, "Acme", false },
	};
	check_vjud_filter(vj_attrs, NULL, several, 7,
	                  "(&(uid=*)(cn=ann sm*)(mail=ann@example.org)(uid=ann)(givenName=Ann)"
	                  "(displayName=annie*)(l=Lyon)(o=Acme))");
	/* "*" alone matches anything: no assertion */
	const struct vcard_term star[] = { { VF_FN, "", true }, { VF_LAST, "Smith", false } };
	check_vjud_filter(vj_attrs, NULL, star, 2, "(&(uid=*)(sn=Smith))");
	check_vjud_filter(vj_attrs, NULL, star, 1, "(uid=*)");
}

static void test_vjud_filter_escapes(void **state)
{
	(void)state;
	const struct vcard_term inj[] = { { VF_USER, "*)(uid=*", false } };
	check_vjud_filter(vj_attrs, NULL, inj, 1, "(&(uid=*)(uid=\\2a\\29\\28uid=\\2a))");
	const struct vcard_term inj_prefix[] = { { VF_FN, "a)(|(cn=*", true } };
	check_vjud_filter(vj_attrs, NULL, inj_prefix, 1, "(&(uid=*)(cn=a\\29\\28|\\28cn=\\2a*))");
	/* a '*' inside a prefix value is data, only the last one is the prefix */
	const struct vcard_term inner[] = { { VF_FN, "a*b", true }, { VF_LAST, "x\\2a", false } };
	check_vjud_filter(vj_attrs, NULL, inner, 2, "(&(uid=*)(cn=a\\2ab*)(sn=x\\5c2a))");
	const struct vcard_term utf8[] = { { VF_LAST, "M\xc3\xbcller", false } };
	check_vjud_filter(vj_attrs, NULL, utf8, 1, "(&(uid=*)(sn=M\xc3\xbcller))");
}

static void test_vjud_filter_unmapped(void **state)
{
	(void)state;
	const char *attrs[VF_COUNT];
	memcpy(attrs, vj_attrs, sizeof(attrs));
	attrs[VF_LOCALITY] = NULL;
	/* a value for a field the directory does not map: nobody matches */
	const struct vcard_term city[] = { { VF_LAST, "Smith", false }, { VF_LOCALITY, "Lyon", false } };
	check_vjud_filter(attrs, NULL, city, 2, NULL);
	const struct vcard_term city_prefix[] = { { VF_LOCALITY, "Ly", true } };
	check_vjud_filter(attrs, NULL, city_prefix, 1, NULL);
	/* "*" on it still matches anything */
	const struct vcard_term city_any[] = { { VF_LOCALITY, "", true } };
	check_vjud_filter(attrs, NULL, city_any, 1, "(uid=*)");
	/* no user name attribute: no JIDs to answer */
	attrs[VF_USER] = NULL;
	check_vjud_filter(attrs, NULL, city_any, 1, NULL);
}

static void test_filter_uses_user(void **state)
{
	(void)state;
	assert_false(ldap_filter_uses_user(NULL));
	assert_false(ldap_filter_uses_user("(objectClass=person)"));
	assert_false(ldap_filter_uses_user("(description=100%%u)"));
	assert_true(ldap_filter_uses_user("(memberUid=%u)"));
	assert_true(ldap_filter_uses_user("(a=%%)(b=%u)"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_filter_escape_specials),
		cmocka_unit_test(test_filter_escape_nul),
		cmocka_unit_test(test_filter_escape_keeps_utf8),
		cmocka_unit_test(test_dn_escape),
		cmocka_unit_test(test_user_filter),
		cmocka_unit_test(test_unique_member_dn),
		cmocka_unit_test(test_listing_filter),
		cmocka_unit_test(test_vjud_filter_terms),
		cmocka_unit_test(test_vjud_filter_escapes),
		cmocka_unit_test(test_vjud_filter_unmapped),
		cmocka_unit_test(test_filter_uses_user),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
