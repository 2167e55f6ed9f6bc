/*
 * Unit tests: the configuration of a multi-user chat room
 * (modules/muc/muc-config.c): defaults from the settings, the owner's form
 * with every registered field, a submitted form applied field by field and
 * rejected as a whole (unknown fields: bad-request, contradictions:
 * not-acceptable, the configuration unchanged), disco#info, the stored
 * text (hostile strings round-trip, garbage gives the defaults), the
 * status codes of a change, and the names of roles and affiliations.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "modules/muc/muc.h"

static struct muc_settings settings(void)
{
	struct muc_settings s;
	memset(&s, 0, sizeof(s));
	s.max_occupants = 200;
	s.history_size = 25;
	s.default_public = true;
	s.default_persistent = false;
	s.default_members_only = false;
	s.default_moderated = true;
	s.default_allow_invites = true;
	s.default_change_subject = false;
	s.default_whois = MUC_WHO_ANYONE;
	s.default_allow_pm = MUC_WHO_PARTICIPANTS;
	s.default_max_users = 50;
	return s;
}

/* ---- building forms ------------------------------------------------------ */

static struct xml_node *submit_form(void)
{
	struct xml_node *x = xml_new("x", NS_DATA_FORMS);
	xml_set_attr(x, "type", "submit");
	return x;
}

static struct xml_node *add_field(struct xml_node *x, const char *var, const char *value)
{
	struct xml_node *f = xml_add_child(x, "field", NS_DATA_FORMS);
	xml_set_attr(f, "var", var);
	if (value != NULL) {
		struct xml_node *v = xml_add_child(f, "value", NS_DATA_FORMS);
		xml_add_text(v, value, strlen(value));
	}
	return f;
}

static void add_value(struct xml_node *f, const char *value)
{
	struct xml_node *v = xml_add_child(f, "value", NS_DATA_FORMS);
	xml_add_text(v, value, strlen(value));
}

static struct xml_node *form_field(const struct xml_node *x, const char *var)
{
	for (struct xml_node *f = xml_child(x, "field", NS_DATA_FORMS); f != NULL;
	     f = xml_next(f, "field", NS_DATA_FORMS))
		if (str_eq(xml_attr(f, "var"), var))
			return f;
	return NULL;
}

static bool config_equal(const struct muc_config *a, const struct muc_config *b)
{
	return str_eq(a->name, b->name) && str_eq(a->description, b->description) &&
	       str_eq(a->lang, b->lang) && str_eq(a->password, b->password) && str_eq(a->pubsub, b->pubsub) &&
	       a->public_room == b->public_room && a->persistent == b->persistent &&
	       a->members_only == b->members_only && a->moderated == b->moderated &&
	       a->password_protected == b->password_protected && a->change_subject == b->change_subject &&
	       a->allow_invites == b->allow_invites && a->allow_voice_requests == b->allow_voice_requests &&
	       a->enable_logging == b->enable_logging && a->public_list == b->public_list &&
	       a->allow_pm == b->allow_pm && a->whois == b->whois && a->max_users == b->max_users &&
	       a->max_history == b->max_history && a->presence_broadcast == b->presence_broadcast &&
	       a->get_member_list == b->get_member_list &&
	       a->voice_request_interval == b->voice_request_interval;
}

/* ---- tests --------------------------------------------------------------- */

static void test_defaults(void **state)
{
	(void)state;
	struct muc_settings s = settings();
	struct muc_config c;
	muc_config_defaults(&c, &s);
	assert_true(c.public_room);
	assert_false(c.persistent);
	assert_false(c.members_only);
	assert_true(c.moderated);
	assert_true(c.allow_invites);
	assert_false(c.change_subject);
	assert_int_equal(c.whois, MUC_WHO_ANYONE);
	assert_int_equal(c.allow_pm, MUC_WHO_PARTICIPANTS);
	assert_int_equal(c.max_users, 50);
	assert_int_equal(c.max_history, 25);
	assert_int_equal(c.presence_broadcast, MUC_ROLES_ALL);
	assert_null(c.name);
	assert_null(c.password);
	assert_false(c.password_protected);

	/* A default above the ceiling is held to it. */
	s.default_max_users = 1000;
	muc_config_defaults(&c, &s);
	assert_int_equal(c.max_users, 200);
	muc_config_clear(&c);
}

static void test_copy(void **state)
{
	(void)state;
	struct muc_settings s = settings();
	struct muc_config a, b;
	muc_config_defaults(&a, &s);
	a.name = xstrdup("Room");
	a.password = xstrdup("secret");
	muc_config_copy(&b, &a);
	assert_true(config_equal(&a, &b));
	assert_ptr_not_equal(a.name, b.name);
	muc_config_clear(&a);
	assert_string_equal(b.password, "secret");
	muc_config_clear(&b);
	assert_null(b.password);
}

static const char *const registered[] = {
	"muc#maxhistoryfetch",           "muc#roomconfig_allowpm",
	"muc#roomconfig_allowinvites",   "muc#roomconfig_changesubject",
	"muc#roomconfig_enablelogging",  "muc#roomconfig_getmemberlist",
	"muc#roomconfig_lang",           "muc#roomconfig_pubsub",
	"muc#roomconfig_maxusers",       "muc#roomconfig_membersonly",
	"muc#roomconfig_moderatedroom",  "muc#roomconfig_passwordprotectedroom",
	"muc#roomconfig_persistentroom", "muc#roomconfig_presencebroadcast",
	"muc#roomconfig_publicroom",     "muc#roomconfig_roomadmins",
	"muc#roomconfig_roomdesc",       "muc#roomconfig_roomname",
	"muc#roomconfig_roomowners",     "muc#roomconfig_roomsecret",
	"muc#roomconfig_whois",
};
static const char *const registered_types[] = {
	"text-single", "list-single",  "boolean",     "boolean",   "boolean",     "list-multi",
	"text-single", "text-single",  "list-single", "boolean",   "boolean",     "boolean",
	"boolean",     "list-multi",   "boolean",     "jid-multi", "text-single", "text-single",
	"jid-multi",   "text-private", "list-single",
};

static void room_init(struct muc_room *r, struct muc_service *svc, const struct muc_settings *s,
                      struct muc_affiliation *affs)
{
	memset(svc, 0, sizeof(*svc));
	memset(r, 0, sizeof(*r));
	svc->set = s;
	svc->domain = "conference.example.com";
	r->svc = svc;
	r->name = "coven";
	r->jid = "coven@conference.example.com";
	r->affs = affs;
	muc_config_defaults(&r->cfg, s);
}

static void test_form(void **state)
{
	(void)state;
	assert_int_equal(ARRAY_SIZE(registered), ARRAY_SIZE(registered_types));
	struct muc_settings s = settings();
	struct muc_affiliation admin = { "hecate@example.com", MUC_AFF_ADMIN, NULL, NULL };
	struct muc_affiliation member = { "bard@example.com", MUC_AFF_MEMBER, NULL, &admin };
	struct muc_affiliation owner = { "crone@example.com", MUC_AFF_OWNER, NULL, &member };
	struct muc_service svc;
	struct muc_room r;
	room_init(&r, &svc, &s, &owner);
	r.cfg.name = xstrdup("The Coven");
	r.cfg.max_users = 0;

	struct xml_node *x = muc_config_form(&r);
	assert_true(xml_is(x, "x", NS_DATA_FORMS));
	assert_string_equal(xml_attr(x, "type"), "form");
	struct xml_node *first = xml_child(x, "field", NS_DATA_FORMS);
	assert_string_equal(xml_attr(first, "var"), "FORM_TYPE");
	assert_string_equal(xml_attr(first, "type"), "hidden");
	assert_string_equal(xml_child_text(first, "value", NS_DATA_FORMS), NS_MUC_ROOMCONFIG);
	for (size_t i = 0; i < ARRAY_SIZE(registered); i++) {
		struct xml_node *f = form_field(x, registered[i]);
		assert_non_null(f);
		assert_string_equal(xml_attr(f, "type"), registered_types[i]);
		assert_non_null(xml_attr(f, "label"));
	}
	assert_string_equal(xml_child_text(form_field(x, "muc#roomconfig_roomname"), "value", NULL),
	                    "The Coven");
	assert_string_equal(xml_child_text(form_field(x, "muc#roomconfig_whois"), "value", NULL), "anyone");
	assert_string_equal(xml_child_text(form_field(x, "muc#roomconfig_allowpm"), "value", NULL),
	                    "participants");
	assert_string_equal(xml_child_text(form_field(x, "muc#roomconfig_moderatedroom"), "value", NULL),
	                    "1");
	assert_string_equal(xml_child_text(form_field(x, "muc#roomconfig_maxusers"), "value", NULL), "none");
	assert_string_equal(xml_child_text(form_field(x, "muc#maxhistoryfetch"), "value", NULL), "25");
	assert_string_equal(xml_child_text(form_field(x, "muc#roomconfig_roomowners"), "value", NULL),
	                    "crone@example.com");
	assert_string_equal(xml_child_text(form_field(x, "muc#roomconfig_roomadmins"), "value", NULL),
	                    "hecate@example.com");
	/* The options of list fields. */
	unsigned n = 0;
	for (struct xml_node *o = xml_child(form_field(x, "muc#roomconfig_allowpm"), "option", NULL);
	     o != NULL; o = xml_next(o, "option", NULL))
		n++;
	assert_int_equal(n, 4);
	n = 0;
	for (struct xml_node *v = xml_child(form_field(x, "muc#roomconfig_presencebroadcast"), "value", NULL);
	     v != NULL; v = xml_next(v, "value", NULL))
		n++;
	assert_int_equal(n, 3);
	/* maxusers offers nothing above the ceiling. */
	bool has_ceiling = false;
	for (struct xml_node *o = xml_child(form_field(x, "muc#roomconfig_maxusers"), "option", NULL);
	     o != NULL; o = xml_next(o, "option", NULL)) {
		const char *v = xml_child_text(o, "value", NULL);
		if (strcmp(v, "none") != 0)
			assert_true(strtoul(v, NULL, 10) <= 200);
		has_ceiling = has_ceiling || strcmp(v, "200") == 0;
	}
	assert_true(has_ceiling);
	xml_unref(&x);
	muc_config_clear(&r.cfg);
}

static void test_apply_each_field(void **state)
{
	(void)state;
	struct muc_settings s = settings();
	struct muc_config c;
	muc_config_defaults(&c, &s);
	struct xml_node *x = submit_form();
	add_field(x, "FORM_TYPE", NS_MUC_ROOMCONFIG);
	add_field(x, "muc#roomconfig_roomname", "Witches");
	add_field(x, "muc#roomconfig_roomdesc", "A place for spells");
	add_field(x, "muc#roomconfig_lang", "en-GB");
	add_field(x, "muc#roomconfig_persistentroom", "true");
	add_field(x, "muc#roomconfig_publicroom", "0");
	add_field(x, "muc#roomconfig_membersonly", "1");
	add_field(x, "muc#roomconfig_moderatedroom", "false");
	add_field(x, "muc#roomconfig_passwordprotectedroom", "1");
	add_field(x, "muc#roomconfig_roomsecret", "cauldronburn");
	add_field(x, "muc#roomconfig_whois", "moderators");
	add_field(x, "muc#roomconfig_allowpm", "none");
	add_field(x, "muc#roomconfig_changesubject", "1");
	add_field(x, "muc#roomconfig_allowinvites", "0");
	add_field(x, "muc#roomconfig_enablelogging", "1");
	add_field(x, "muc#roomconfig_maxusers", "42");
	add_field(x, "muc#maxhistoryfetch", "10");
	struct xml_node *pb = add_field(x, "muc#roomconfig_presencebroadcast", "moderator");
	add_value(pb, "participant");
	add_field(x, "muc#roomconfig_getmemberlist", NULL);
	add_field(x, "muc#roomconfig_pubsub", "xmpp:pubsub.example.com?;node=coven");
	add_field(x, "muc#roomconfig_allowvoicerequests", "0");
	add_field(x, "muc#roomconfig_voicerequestmininterval", "60");
	struct xml_node *ow = add_field(x, "muc#roomconfig_roomowners", "Crone@Example.COM");
	add_value(ow, "crone@example.com");
	add_value(ow, "example.net");
	add_field(x, "muc#roomconfig_roomadmins", "hecate@example.com");

	struct muc_config_lists l;
	enum stanza_error e;
	const char *text = NULL;
	assert_int_equal(muc_config_apply_form(&c, x, &s, &l, &e, &text), 0);
	assert_string_equal(c.name, "Witches");
	assert_string_equal(c.description, "A place for spells");
	assert_string_equal(c.lang, "en-GB");
	assert_true(c.persistent);
	assert_false(c.public_room);
	assert_true(c.members_only);
	assert_false(c.moderated);
	assert_true(c.password_protected);
	assert_string_equal(c.password, "cauldronburn");
	assert_int_equal(c.whois, MUC_WHO_MODERATORS);
	assert_int_equal(c.allow_pm, MUC_WHO_NONE);
	assert_true(c.change_subject);
	assert_false(c.allow_invites);
	assert_true(c.enable_logging);
	assert_int_equal(c.max_users, 42);
	assert_int_equal(c.max_history, 10);
	assert_int_equal(c.presence_broadcast,
	                 MUC_ROLE_BIT(MUC_ROLE_MODERATOR) | MUC_ROLE_BIT(MUC_ROLE_PARTICIPANT));
	assert_int_equal(c.get_member_list, 0);
	assert_false(c.public_list);
	assert_string_equal(c.pubsub, "xmpp:pubsub.example.com?;node=coven");
	assert_false(c.allow_voice_requests);
	assert_int_equal(c.voice_request_interval, 60);
	assert_true(l.has_owners);
	assert_true(l.has_admins);
	assert_int_equal(l.owners.count, 2);
	assert_string_equal(l.owners.items[0], "crone@example.com");
	assert_string_equal(l.owners.items[1], "example.net");
	assert_int_equal(l.admins.count, 1);
	muc_config_lists_clear(&l);
	xml_unref(&x);

	/* Missing fields leave the rest alone; an empty text clears. */
	x = submit_form();
	add_field(x, "muc#roomconfig_roomname", "");
	add_field(x, "muc#roomconfig_maxusers", "none");
	assert_int_equal(muc_config_apply_form(&c, x, &s, &l, &e, &text), 0);
	assert_null(c.name);
	assert_int_equal(c.max_users, 0);
	assert_string_equal(c.description, "A place for spells");
	assert_true(c.members_only);
	assert_false(l.has_owners);
	assert_false(l.has_admins);
	muc_config_lists_clear(&l);
	xml_unref(&x);

	/* A cancel changes nothing (the caller answers it). */
	x = xml_new("x", NS_DATA_FORMS);
	xml_set_attr(x, "type", "cancel");
	assert_int_equal(muc_config_apply_form(&c, x, &s, &l, &e, &text), 0);
	assert_true(c.members_only);
	xml_unref(&x);
	muc_config_clear(&c);
}

/* Apply a form holding one field (var = value) and expect error e. */
static void expect_rejected(const char *var, const char *value, enum stanza_error want)
{
	struct muc_settings s = settings();
	struct muc_config c, before;
	muc_config_defaults(&c, &s);
	c.name = xstrdup("Unchanged");
	muc_config_copy(&before, &c);
	struct xml_node *x = submit_form();
	add_field(x, "muc#roomconfig_roomname", "Changed");
	add_field(x, "muc#roomconfig_persistentroom", before.persistent ? "0" : "1");
	if (var != NULL)
		add_field(x, var, value);
	struct muc_config_lists l;
	enum stanza_error e = SE_UNDEFINED_CONDITION;
	const char *text = NULL;
	assert_int_equal(muc_config_apply_form(&c, x, &s, &l, &e, &text), -1);
	assert_int_equal(e, want);
	assert_non_null(text);
	assert_true(config_equal(&c, &before));
	assert_false(l.has_owners);
	muc_config_lists_clear(&l);
	xml_unref(&x);
	muc_config_clear(&c);
	muc_config_clear(&before);
}

static void test_unknown_field(void **state)
{
	(void)state;
	expect_rejected("muc#roomconfig_nosuchthing", "1", SE_BAD_REQUEST);
	expect_rejected("FORM_TYPE", "urn:example:other", SE_BAD_REQUEST);
	/* The text names the field. */
	struct muc_settings s = settings();
	struct muc_config c;
	muc_config_defaults(&c, &s);
	struct xml_node *x = submit_form();
	add_field(x, "x-custom", "1");
	struct muc_config_lists l;
	enum stanza_error e;
	const char *text = NULL;
	assert_int_equal(muc_config_apply_form(&c, x, &s, &l, &e, &text), -1);
	assert_non_null(strstr(text, "x-custom"));
	xml_unref(&x);
	/* Not a submit form. */
	x = xml_new("x", NS_DATA_FORMS);
	xml_set_attr(x, "type", "form");
	assert_int_equal(muc_config_apply_form(&c, x, &s, &l, &e, &text), -1);
	assert_int_equal(e, SE_BAD_REQUEST);
	xml_unref(&x);
	muc_config_clear(&c);
}

static void test_contradictions(void **state)
{
	(void)state;
	/* Password-protected with no password. */
	expect_rejected("muc#roomconfig_passwordprotectedroom", "1", SE_NOT_ACCEPTABLE);
	expect_rejected("muc#roomconfig_maxusers", "many", SE_NOT_ACCEPTABLE);
	expect_rejected("muc#roomconfig_maxusers", "201", SE_NOT_ACCEPTABLE);
	expect_rejected("muc#roomconfig_maxusers", "-1", SE_NOT_ACCEPTABLE);
	expect_rejected("muc#roomconfig_maxusers", "99999999999999999999", SE_NOT_ACCEPTABLE);
	expect_rejected("muc#maxhistoryfetch", "26", SE_NOT_ACCEPTABLE);
	expect_rejected("muc#roomconfig_whois", "participants", SE_NOT_ACCEPTABLE);
	expect_rejected("muc#roomconfig_allowpm", "everybody", SE_NOT_ACCEPTABLE);
	expect_rejected("muc#roomconfig_presencebroadcast", "owner", SE_NOT_ACCEPTABLE);
	expect_rejected("muc#roomconfig_moderatedroom", "yes", SE_NOT_ACCEPTABLE);
	expect_rejected("muc#roomconfig_lang", "en GB", SE_NOT_ACCEPTABLE);
	expect_rejected("muc#roomconfig_roomowners", NULL, SE_NOT_ACCEPTABLE);
	expect_rejected("muc#roomconfig_roomowners", "", SE_NOT_ACCEPTABLE);
	expect_rejected("muc#roomconfig_roomowners", "a@b@c", SE_JID_MALFORMED);
	expect_rejected("muc#roomconfig_roomadmins", "user@example.com/res", SE_JID_MALFORMED);

	/* Two values for a single-value field; a field given twice; one JID
	 * both owner and admin. */
	struct muc_settings s = settings();
	struct muc_config c;
	muc_config_defaults(&c, &s);
	struct muc_config_lists l;
	enum stanza_error e;
	const char *text;
	struct xml_node *x = submit_form();
	struct xml_node *f = add_field(x, "muc#roomconfig_roomname", "a");
	add_value(f, "b");
	assert_int_equal(muc_config_apply_form(&c, x, &s, &l, &e, &text), -1);
	assert_int_equal(e, SE_NOT_ACCEPTABLE);
	xml_unref(&x);
	x = submit_form();
	add_field(x, "muc#roomconfig_roomname", "a");
	add_field(x, "muc#roomconfig_roomname", "b");
	assert_int_equal(muc_config_apply_form(&c, x, &s, &l, &e, &text), -1);
	assert_int_equal(e, SE_BAD_REQUEST);
	xml_unref(&x);
	x = submit_form();
	add_field(x, "muc#roomconfig_roomowners", "crone@example.com");
	add_field(x, "muc#roomconfig_roomadmins", "crone@example.com");
	assert_int_equal(muc_config_apply_form(&c, x, &s, &l, &e, &text), -1);
	assert_int_equal(e, SE_NOT_ACCEPTABLE);
	xml_unref(&x);
	/* Password-protected is fine when the password comes with it, or
	 * is there already. */
	x = submit_form();
	add_field(x, "muc#roomconfig_passwordprotectedroom", "1");
	add_field(x, "muc#roomconfig_roomsecret", "pw");
	assert_int_equal(muc_config_apply_form(&c, x, &s, &l, &e, &text), 0);
	muc_config_lists_clear(&l);
	xml_unref(&x);
	x = submit_form();
	add_field(x, "muc#roomconfig_passwordprotectedroom", "1");
	assert_int_equal(muc_config_apply_form(&c, x, &s, &l, &e, &text), 0);
	assert_string_equal(c.password, "pw");
	muc_config_lists_clear(&l);
	xml_unref(&x);
	muc_config_clear(&c);
}

static void test_disco_info(void **state)
{
	(void)state;
	struct muc_settings s = settings();
	struct muc_affiliation owner = { "crone@example.com", MUC_AFF_OWNER, NULL, NULL };
	struct muc_service svc;
	struct muc_room r;
	room_init(&r, &svc, &s, &owner);
	r.noccupants = 3;
	r.subject = "Spells";
	struct xml_node *q = xml_new("query", NS_DISCO_INFO);
	muc_config_disco_info(q, &r);
	struct xml_node *id = xml_child(q, "identity", NULL);
	assert_string_equal(xml_attr(id, "category"), "conference");
	assert_string_equal(xml_attr(id, "type"), "text");
	assert_string_equal(xml_attr(id, "name"), "coven");
	const char *want[] = { NS_MUC,          "muc_public",    "muc_temporary",
		               "muc_open",      "muc_moderated", "muc_nonanonymous",
		               "muc_unsecured", NS_OCCUPANT_ID,  "http://jabber.org/protocol/muc#stable_id" };
	for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
		bool found = false;
		for (struct xml_node *f = xml_child(q, "feature", NULL); f != NULL;
		     f = xml_next(f, "feature", NULL))
			found = found || str_eq(xml_attr(f, "var"), want[i]);
		assert_true(found);
	}
	struct xml_node *x = xml_child(q, "x", NS_DATA_FORMS);
	assert_non_null(x);
	assert_string_equal(xml_attr(xml_child(x, "field", NULL), "var"), "FORM_TYPE");
	assert_string_equal(xml_child_text(form_field(x, "FORM_TYPE"), "value", NULL), NS_MUC_ROOMINFO);
	assert_string_equal(xml_child_text(form_field(x, "muc#roominfo_occupants"), "value", NULL), "3");
	assert_string_equal(xml_child_text(form_field(x, "muc#roominfo_subject"), "value", NULL), "Spells");
	assert_string_equal(xml_child_text(form_field(x, "muc#roominfo_contactjid"), "value", NULL),
	                    "crone@example.com");
	assert_string_equal(xml_child_text(form_field(x, "muc#roomconfig_allowpm"), "value", NULL),
	                    "participants");
	xml_unref(&q);

	/* The other side of each pair; a semi-anonymous room keeps its
	 * owners to itself. */
	r.cfg.public_room = false;
	r.cfg.persistent = true;
	r.cfg.members_only = true;
	r.cfg.moderated = false;
	r.cfg.whois = MUC_WHO_MODERATORS;
	r.cfg.password_protected = true;
	r.cfg.name = xstrdup("The Coven");
	q = xml_new("query", NS_DISCO_INFO);
	muc_config_disco_info(q, &r);
	assert_string_equal(xml_attr(xml_child(q, "identity", NULL), "name"), "The Coven");
	const char *want2[] = { "muc_hidden",      "muc_persistent",    "muc_membersonly",
		                "muc_unmoderated", "muc_semianonymous", "muc_passwordprotected" };
	for (size_t i = 0; i < ARRAY_SIZE(want2); i++) {
		bool found = false;
		for (struct xml_node *f = xml_child(q, "feature", NULL); f != NULL;
		     f = xml_next(f, "feature", NULL))
			found = found || str_eq(xml_attr(f, "var"), want2[i]);
		assert_true(found);
	}
	assert_null(form_field(xml_child(q, "x", NS_DATA_FORMS), "muc#roominfo_contactjid"));
	xml_unref(&q);
	muc_config_clear(&r.cfg);
}

static void test_round_trip(void **state)
{
	(void)state;
	struct muc_settings s = settings();
	struct muc_config a, b;
	muc_config_defaults(&a, &s);
	a.name = xstrdup("It's \"quoted\" <b>&amp; bold</b> \xc3\xa9t\xc3\xa9 \xe2\x98\x83 \xf0\x9f\x8e\x83");
	a.description = xstrdup("line one\nline two\r\n\ttabbed ]]> --> <!-- &#0; &unknown;");
	a.lang = xstrdup("de");
	a.password = xstrdup("p'a\"s<s>&");
	a.pubsub = xstrdup("");
	a.public_room = !a.public_room;
	a.persistent = !a.persistent;
	a.members_only = !a.members_only;
	a.moderated = !a.moderated;
	a.password_protected = true;
	a.change_subject = !a.change_subject;
	a.allow_invites = !a.allow_invites;
	a.allow_voice_requests = !a.allow_voice_requests;
	a.enable_logging = !a.enable_logging;
	a.public_list = !a.public_list;
	a.allow_pm = MUC_WHO_MODERATORS;
	a.whois = MUC_WHO_MODERATORS;
	a.max_users = 7;
	a.max_history = 3;
	a.presence_broadcast = MUC_ROLE_BIT(MUC_ROLE_VISITOR);
	a.get_member_list = MUC_ROLE_BIT(MUC_ROLE_PARTICIPANT) | MUC_ROLE_BIT(MUC_ROLE_MODERATOR);
	a.voice_request_interval = 99;
	char *text = muc_config_serialize(&a);
	assert_non_null(text);
	muc_config_parse(&b, text, &s);
	assert_true(config_equal(&a, &b));
	free(text);
	muc_config_clear(&b);

	/* Empty role masks, NULL strings and no history too. */
	muc_config_clear(&a);
	muc_config_defaults(&a, &s);
	a.presence_broadcast = 0;
	a.get_member_list = 0;
	a.max_history = 0;
	text = muc_config_serialize(&a);
	muc_config_parse(&b, text, &s);
	assert_true(config_equal(&a, &b));
	free(text);
	muc_config_clear(&a);
	muc_config_clear(&b);
}

static void test_parse_garbage(void **state)
{
	(void)state;
	struct muc_settings s = settings();
	struct muc_config d, c;
	muc_config_defaults(&d, &s);
	const char *bad[] = {
		NULL,
		"",
		"garbage",
		"<muc-config",
		"<other xmlns='urn:parley:muc-config' name='x'/>",
		"<!DOCTYPE x [<!ENTITY a 'b'>]><muc-config xmlns='urn:parley:muc-config' name='&a;'/>",
		"<muc-config xmlns='urn:parley:muc-config' name='x'/><second/>",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		muc_config_parse(&c, bad[i], &s);
		assert_true(config_equal(&c, &d));
		muc_config_clear(&c);
	}
	/* Old text: unknown keys skipped, bad values keep the default, the
	 * rest is read. */
	muc_config_parse(
	        &c,
	        "<muc-config xmlns='urn:parley:muc-config' name='Old' future-key='x' public='maybe' "
	        "max-users='lots' whois='everyone' presence-broadcast='moderator owner' moderated='0'/>",
	        &s);
	assert_string_equal(c.name, "Old");
	assert_int_equal(c.public_room, d.public_room);
	assert_int_equal(c.max_users, d.max_users);
	assert_int_equal(c.whois, d.whois);
	assert_int_equal(c.presence_broadcast, d.presence_broadcast);
	assert_false(c.moderated);
	muc_config_clear(&c);
	/* Stored sizes above lowered limits are held to them. */
	muc_config_parse(&c, "<muc-config xmlns='urn:parley:muc-config' max-users='5000' max-history='99'/>",
	                 &s);
	assert_int_equal(c.max_users, 200);
	assert_int_equal(c.max_history, 25);
	muc_config_clear(&c);
	/* max-history 0 meant no limit before version 2: the default now. */
	const char *old_zero[] = {
		"<muc-config xmlns='urn:parley:muc-config' max-history='0'/>",
		"<muc-config xmlns='urn:parley:muc-config' version='1' max-history='0'/>",
	};
	for (size_t i = 0; i < ARRAY_SIZE(old_zero); i++) {
		muc_config_parse(&c, old_zero[i], &s);
		assert_int_equal(c.max_history, d.max_history);
		muc_config_clear(&c);
	}
	muc_config_parse(&c, "<muc-config xmlns='urn:parley:muc-config' version='1' max-history='4'/>", &s);
	assert_int_equal(c.max_history, 4);
	muc_config_clear(&c);
	muc_config_parse(&c, "<muc-config xmlns='urn:parley:muc-config' version='2' max-history='0'/>", &s);
	assert_int_equal(c.max_history, 0);
	muc_config_clear(&c);
	muc_config_clear(&d);
}

static void test_change_codes(void **state)
{
	(void)state;
	struct muc_config a, b;
	muc_config_defaults(&a, NULL);
	muc_config_defaults(&b, NULL);
	int codes[4];
	assert_int_equal(muc_config_change_codes(&a, &b, true, codes), 0);
	b.enable_logging = true;
	b.whois = MUC_WHO_ANYONE;
	assert_int_equal(muc_config_change_codes(&a, &b, true, codes), 2);
	assert_int_equal(codes[0], 170);
	assert_int_equal(codes[1], 172);
	assert_int_equal(muc_config_change_codes(&b, &a, true, codes), 2);
	assert_int_equal(codes[0], 171);
	assert_int_equal(codes[1], 173);
	/* A service that keeps no logs says nothing of logging. */
	assert_int_equal(muc_config_change_codes(&a, &b, false, codes), 1);
	assert_int_equal(codes[0], 172);
	assert_int_equal(muc_config_change_codes(&b, &a, false, codes), 1);
	assert_int_equal(codes[0], 173);
	/* Unrelated changes give no privacy codes. */
	b = a;
	b.moderated = !a.moderated;
	assert_int_equal(muc_config_change_codes(&a, &b, true, codes), 0);
}

static void test_role_aff_names(void **state)
{
	(void)state;
	const char *roles[] = { "none", "visitor", "participant", "moderator" };
	for (int i = 0; i < 4; i++) {
		assert_string_equal(muc_role_str((enum muc_role)i), roles[i]);
		assert_int_equal(muc_role_parse(roles[i]), i);
	}
	const char *affs[] = { "outcast", "none", "member", "admin", "owner" };
	for (int i = 0; i < 5; i++) {
		assert_string_equal(muc_aff_str((enum muc_aff)i), affs[i]);
		assert_int_equal(muc_aff_parse(affs[i]), i);
	}
	assert_int_equal(muc_role_parse("owner"), -1);
	assert_int_equal(muc_role_parse(NULL), -1);
	assert_int_equal(muc_aff_parse("Owner"), -1);
	assert_int_equal(muc_aff_parse(""), -1);
	assert_int_equal(muc_role_parse(NULL), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),       cmocka_unit_test(test_copy),
		cmocka_unit_test(test_form),           cmocka_unit_test(test_apply_each_field),
		cmocka_unit_test(test_unknown_field),  cmocka_unit_test(test_contradictions),
		cmocka_unit_test(test_disco_info),     cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_parse_garbage),  cmocka_unit_test(test_change_codes),
		cmocka_unit_test(test_role_aff_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
