/*
 * Unit tests: the conversions that keep other protocols in step with PEP,
 * on the memory store through the module harness (PEP as the pubsub
 * module provides it, driven through modules/pep.h as a client's publish
 * would be).  mod_bookmarks: legacy bookmarks stored in private XML become
 * native XEP-0402 items and the legacy PEP item; native items become the
 * legacy document again, URL bookmarks kept; a first login fills the
 * native node of an account that had only legacy bookmarks; native items
 * published in a row all reach the legacy document.  mod_avatar
 * (XEP-0398): a vCard photo becomes the XEP-0084 avatar, a published
 * avatar becomes the vCard photo, empty metadata removes it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/evp.h>

#include "module-harness.h"
#include "modules/pep.h"
#include "server/host.h"
#include "lib/xml.h"

#define NS_PRIVATE "jabber:iq:private"
#define NS_LEGACY "storage:bookmarks"
#define NS_NATIVE "urn:xmpp:bookmarks:1"
#define NS_VCARD "vcard-temp"
#define NS_DATA "urn:xmpp:avatar:data"
#define NS_METADATA "urn:xmpp:avatar:metadata"
#define ROOM1 "council@conference.example.org"
#define ROOM2 "orchard@conference.example.org"
#define ROOM3 "garden@conference.example.org"

static int setup(void **state)
{
	(void)state;
	harness_start(NULL);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	harness_stop();
	return 0;
}

/* ---- reading PEP ------------------------------------------------------------------ */

#define MAX_GOT 16
struct got {
	bool done;
	enum pep_result r;
	size_t n;
	char *ids[MAX_GOT];
	struct xml_node *payloads[MAX_GOT]; /* copies, newest first */
};

static void got_items(enum pep_result r, const struct pep_item *items, size_t n, void *ctx)
{
	struct got *g = ctx;
	g->done = true;
	g->r = r;
	assert_true(n <= MAX_GOT);
	g->n = n;
	for (size_t i = 0; i < n; i++) {
		g->ids[i] = xstrdup(items[i].id);
		g->payloads[i] = items[i].payload != NULL ? xml_copy(items[i].payload) : NULL;
	}
}

static bool got_done(void *ctx)
{
	return ((struct got *)ctx)->done;
}

static void got_clear(struct got *g)
{
	for (size_t i = 0; i < g->n; i++) {
		free(g->ids[i]);
		xml_unref(&g->payloads[i]);
	}
	memset(g, 0, sizeof(*g));
}

/* user's items of node, once the module's work is done. */
static void read_items(const char *user, const char *node, struct got *g)
{
	harness_run();
	memset(g, 0, sizeof(*g));
	assert_int_equal(pep_items(harness_host(), user, node, got_items, g), PEP_OK);
	harness_run_until(got_done, g);
}

static const struct xml_node *got_item(const struct got *g, const char *id)
{
	for (size_t i = 0; i < g->n; i++)
		if (strcmp(g->ids[i], id) == 0)
			return g->payloads[i];
	return NULL;
}

/* Publish as a client would (origin NULL). */
static void client_publish(const char *user, const char *node, const char *id, const char *xml)
{
	struct xml_node *payload = xml_parse_string(xml, strlen(xml), NULL, NULL, NULL);
	assert_non_null(payload);
	const struct pep_node_options opts = { 0 };
	assert_int_equal(pep_publish(harness_host(), user, node, id, payload, &opts, NULL, NULL, NULL),
	                 PEP_OK);
	xml_unref(&payload);
	harness_run();
}

/* The element of an iq result that fs got for id (borrowed). */
static struct xml_node *result_payload(struct fake_session *fs, const char *id)
{
	struct xml_node *r = fake_find(fs, "iq", "id", id);
	assert_non_null(r);
	assert_string_equal(xml_attr(r, "type"), "result");
	return xml_first_element(r);
}

/* ---- bookmarks ------------------------------------------------------------------------ */

/* The legacy conference of room in storage, or NULL. */
static const struct xml_node *legacy_conference(const struct xml_node *storage, const char *room)
{
	for (const struct xml_node *c = xml_child(storage, "conference", NS_LEGACY); c != NULL;
	     c = xml_next(c, "conference", NS_LEGACY))
		if (strcmp(xml_attr(c, "jid"), room) == 0)
			return c;
	return NULL;
}

static void test_private_to_native(void **state)
{
	(void)state;
	harness_account("alice");
	struct fake_session *alice = harness_login("alice", "desk");
	harness_send(alice,
	             "<iq type='set' id='p1'><query xmlns='" NS_PRIVATE "'><storage xmlns='" NS_LEGACY "'>"
	             "<conference jid='" ROOM1 "' name='Council' autojoin='1'><nick>Puck</nick>"
	             "<password>titania</password></conference>"
	             "<conference jid='" ROOM2 "' name='Orchard'/>"
	             "<url name='Docs' url='https://example.org/'/></storage></query></iq>");
	harness_run();
	assert_non_null(fake_find(alice, "iq", "id", "p1"));

	struct got g;
	read_items("alice", NS_NATIVE, &g);
	assert_int_equal(g.r, PEP_OK);
	assert_int_equal(g.n, 2);
	const struct xml_node *c1 = got_item(&g, ROOM1);
	assert_non_null(c1);
	assert_true(xml_is(c1, "conference", NS_NATIVE));
	assert_string_equal(xml_attr(c1, "name"), "Council");
	assert_string_equal(xml_attr(c1, "autojoin"), "true");
	assert_string_equal(xml_child_text(c1, "nick", NS_NATIVE), "Puck");
	assert_string_equal(xml_child_text(c1, "password", NS_NATIVE), "titania");
	const struct xml_node *c2 = got_item(&g, ROOM2);
	assert_non_null(c2);
	assert_null(xml_attr(c2, "autojoin"));
	got_clear(&g);

	read_items("alice", NS_LEGACY, &g);
	assert_int_equal(g.n, 1);
	assert_string_equal(g.ids[0], "current");
	assert_non_null(legacy_conference(g.payloads[0], ROOM1));
	assert_non_null(xml_child(g.payloads[0], "url", NS_LEGACY));
	got_clear(&g);

	/* a room gone from the document is retracted */
	harness_send(alice, "<iq type='set' id='p2'><query xmlns='" NS_PRIVATE "'><storage xmlns='" NS_LEGACY
	                    "'><conference jid='" ROOM2 "' name='Orchard'/></storage></query></iq>");
	read_items("alice", NS_NATIVE, &g);
	assert_int_equal(g.n, 1);
	assert_string_equal(g.ids[0], ROOM2);
	got_clear(&g);
	harness_logout(&alice);
}

static void test_native_to_private(void **state)
{
	(void)state;
	harness_account("bob");
	struct fake_session *bob = harness_login("bob", "desk");
	harness_send(bob, "<iq type='set' id='p1'><query xmlns='" NS_PRIVATE "'><storage xmlns='" NS_LEGACY
	                  "'><conference jid='" ROOM1 "' name='Council'/>"
	                  "<url name='Docs' url='https://example.org/'/></storage></query></iq>");
	harness_run();
	client_publish("bob", NS_NATIVE, ROOM3,
	               "<conference xmlns='" NS_NATIVE "' name='Garden' autojoin='true'><nick>Juliet</nick>"
	               "<extensions><x xmlns='urn:example:x'/></extensions></conference>");
	fake_clear(bob);
	harness_send(bob, "<iq type='get' id='g1'><query xmlns='" NS_PRIVATE "'><storage xmlns='" NS_LEGACY
	                  "'/></query></iq>");
	harness_run();
	struct xml_node *st = xml_first_element(result_payload(bob, "g1"));
	assert_true(xml_is(st, "storage", NS_LEGACY));
	assert_non_null(legacy_conference(st, ROOM1));
	const struct xml_node *c3 = legacy_conference(st, ROOM3);
	assert_non_null(c3);
	assert_string_equal(xml_attr(c3, "name"), "Garden");
	assert_string_equal(xml_attr(c3, "autojoin"), "true");
	assert_string_equal(xml_child_text(c3, "nick", NS_LEGACY), "Juliet");
	assert_non_null(xml_child(c3, "x", "urn:example:x"));
	assert_non_null(xml_child(st, "url", NS_LEGACY));

	struct got g;
	read_items("bob", NS_LEGACY, &g);
	assert_int_equal(g.n, 1);
	assert_non_null(legacy_conference(g.payloads[0], ROOM3));
	got_clear(&g);

	/* a retract takes the room out of the legacy places */
	assert_int_equal(pep_retract(harness_host(), "bob", NS_NATIVE, ROOM1, NULL, NULL, NULL), PEP_OK);
	harness_run();
	fake_clear(bob);
	harness_send(bob, "<iq type='get' id='g2'><query xmlns='" NS_PRIVATE "'><storage xmlns='" NS_LEGACY
	                  "'/></query></iq>");
	harness_run();
	st = xml_first_element(result_payload(bob, "g2"));
	assert_null(legacy_conference(st, ROOM1));
	assert_non_null(legacy_conference(st, ROOM3));
	assert_non_null(xml_child(st, "url", NS_LEGACY));
	harness_logout(&bob);
}

static void stored(enum storage_result res, void *ctx)
{
	assert_int_equal(res, STORAGE_OK);
	*(bool *)ctx = true;
}

static bool is_true(void *ctx)
{
	return *(bool *)ctx;
}

/* An account from before the conversion: legacy bookmarks in private XML,
 * no native node.  The first login fills the native node. */
static void test_first_login_migrates(void **state)
{
	(void)state;
	harness_account("erin");
	struct private_item item = {
		.ns = NS_LEGACY,
		.data = "<storage xmlns='" NS_LEGACY "'><conference jid='" ROOM2 "' name='Orchard' "
		        "autojoin='true'/></storage>",
	};
	bool done = false;
	struct host *h = harness_host();
	storage_private_set(h->storage, HARNESS_HOST, "erin", &item, 1, stored, &done);
	harness_run_until(is_true, &done);
	struct fake_session *erin = harness_login("erin", "desk");
	struct got g;
	read_items("erin", NS_NATIVE, &g);
	assert_int_equal(g.r, PEP_OK);
	assert_int_equal(g.n, 1);
	assert_string_equal(g.ids[0], ROOM2);
	got_clear(&g);
	read_items("erin", NS_LEGACY, &g);
	assert_int_equal(g.n, 1);
	got_clear(&g);
	harness_logout(&erin);
}

/* Native items published in a row: the legacy document ends with all. */
static void test_native_burst(void **state)
{
	(void)state;
	harness_account("frank");
	struct fake_session *frank = harness_login("frank", "desk");
	harness_run();
	static const char *const rooms[] = { ROOM1, ROOM2, ROOM3 };
	for (size_t i = 0; i < 3; i++) {
		struct xml_node *c = xml_new("conference", NS_NATIVE);
		xml_set_attr(c, "name", rooms[i]);
		/* XEP-0402's node configuration */
		const struct pep_node_options opts = {
			.access_model = "whitelist",
			.max_items = UINT_MAX,
			.send_last_never = true,
		};
		assert_int_equal(
		        pep_publish(harness_host(), "frank", NS_NATIVE, rooms[i], c, &opts, NULL, NULL, NULL),
		        PEP_OK);
		xml_unref(&c);
	}
	harness_run();
	harness_send(frank, "<iq type='get' id='g1'><query xmlns='" NS_PRIVATE "'><storage xmlns='" NS_LEGACY
	                    "'/></query></iq>");
	harness_run();
	struct xml_node *st = xml_first_element(result_payload(frank, "g1"));
	for (size_t i = 0; i < 3; i++)
		assert_non_null(legacy_conference(st, rooms[i]));
	harness_logout(&frank);
}

/* ---- avatars -------------------------------------------------------------------------- */

static char *sha1_hex(const unsigned char *data, size_t len)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	assert_int_equal(EVP_Digest(data, len, md, &md_len, EVP_sha1(), NULL), 1);
	return hex_encode(md, md_len);
}

static const unsigned char png[] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 1, 2, 3, 4, 5, 6, 7, 8 };
static const unsigned char other[] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 9, 9, 9, 9 };

static void test_vcard_to_pep(void **state)
{
	(void)state;
	harness_account("carol");
	struct fake_session *carol = harness_login("carol", "desk");
	harness_run();
	char *b64 = base64_encode(png, sizeof(png));
	char *hash = sha1_hex(png, sizeof(png));
	harness_send(carol,
	             "<iq type='set' id='v1'><vCard xmlns='" NS_VCARD "'><FN>Carol</FN><PHOTO>"
	             "<TYPE>image/png</TYPE><BINVAL>%s</BINVAL></PHOTO></vCard></iq>",
	             b64);
	struct got g;
	read_items("carol", NS_METADATA, &g);
	assert_int_equal(g.n, 1);
	const struct xml_node *info = xml_child(g.payloads[0], "info", NS_METADATA);
	assert_non_null(info);
	assert_string_equal(xml_attr(info, "id"), hash);
	assert_string_equal(xml_attr(info, "type"), "image/png");
	assert_string_equal(xml_attr(info, "bytes"), "16");
	got_clear(&g);
	read_items("carol", NS_DATA, &g);
	const struct xml_node *data = got_item(&g, hash);
	assert_non_null(data);
	assert_string_equal(xml_text(data), b64);
	got_clear(&g);

	/* no photo any more: empty metadata (the newest item) */
	harness_send(carol, "<iq type='set' id='v2'><vCard xmlns='" NS_VCARD "'><FN>Carol</FN></vCard></iq>");
	read_items("carol", NS_METADATA, &g);
	assert_true(g.n >= 1);
	assert_null(xml_child(g.payloads[0], "info", NS_METADATA));
	got_clear(&g);
	free(b64);
	free(hash);
	harness_logout(&carol);
}

static void test_pep_to_vcard(void **state)
{
	(void)state;
	harness_account("dave");
	struct fake_session *dave = harness_login("dave", "desk");
	harness_run();
	harness_send(dave, "<iq type='set' id='v1'><vCard xmlns='" NS_VCARD "'><FN>Dave</FN></vCard></iq>");
	harness_run();
	char *b64 = base64_encode(other, sizeof(other));
	char *hash = sha1_hex(other, sizeof(other));
	char *data = xasprintf("<data xmlns='" NS_DATA "'>%s</data>", b64);
	client_publish("dave", NS_DATA, hash, data);
	char *md = xasprintf("<metadata xmlns='" NS_METADATA "'><info id='%s' bytes='12' type='image/png'/>"
	                     "</metadata>",
	                     hash);
	client_publish("dave", NS_METADATA, hash, md);
	fake_clear(dave);
	harness_send(dave, "<iq type='get' id='g1'><vCard xmlns='" NS_VCARD "'/></iq>");
	harness_run();
	struct xml_node *vcard = result_payload(dave, "g1");
	assert_string_equal(xml_child_text(vcard, "FN", NS_VCARD), "Dave");
	struct xml_node *photo = xml_child(vcard, "PHOTO", NS_VCARD);
	assert_non_null(photo);
	assert_string_equal(xml_child_text(photo, "TYPE", NS_VCARD), "image/png");
	assert_string_equal(xml_child_text(photo, "BINVAL", NS_VCARD), b64);
	/* the server's own vCard write published nothing back */
	struct got g;
	read_items("dave", NS_METADATA, &g);
	assert_int_equal(g.n, 1);
	assert_string_equal(g.ids[0], hash);
	got_clear(&g);

	/* empty metadata: the photo goes */
	client_publish("dave", NS_METADATA, "none", "<metadata xmlns='" NS_METADATA "'/>");
	fake_clear(dave);
	harness_send(dave, "<iq type='get' id='g2'><vCard xmlns='" NS_VCARD "'/></iq>");
	harness_run();
	vcard = result_payload(dave, "g2");
	assert_null(xml_child(vcard, "PHOTO", NS_VCARD));
	assert_string_equal(xml_child_text(vcard, "FN", NS_VCARD), "Dave");
	free(md);
	free(data);
	free(b64);
	free(hash);
	harness_logout(&dave);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_private_to_native, setup, teardown),
		cmocka_unit_test_setup_teardown(test_native_to_private, setup, teardown),
		cmocka_unit_test_setup_teardown(test_first_login_migrates, setup, teardown),
		cmocka_unit_test_setup_teardown(test_native_burst, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vcard_to_pep, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pep_to_vcard, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
