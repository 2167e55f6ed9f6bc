/*
 * The configuration of a multi-user chat room (XEP-0045 §10.2): its
 * defaults from the module's settings, the owner's muc#roomconfig form and
 * the submitted form applied to it, the room's disco#info (features and
 * the muc#roominfo form, §6.4), the text kept in the store, and the names
 * of roles and affiliations.  Loop thread; nothing here keeps state but
 * the error text of the last rejected form.
 *
 * One table (config_fields) describes every form field: its var, type,
 * label and where it lands in struct muc_config; the form is written from
 * it and a submitted form is read through it.  A second table
 * (store_keys) names every member of struct muc_config in the stored
 * text.  Applying a form works on a copy, so a rejected form leaves the
 * configuration as it was.
 */
#include <limits.h>

#include "modules/adhoc.h"
#include "modules/muc/muc.h"

#define NS_MUC_STABLE_ID "http://jabber.org/protocol/muc#stable_id"
/* The stored text: <muc-config xmlns=NS_MUC_CONFIG_STORE .../>. */
#define NS_MUC_CONFIG_STORE "urn:parley:muc-config"

/* Seconds between two voice requests of one occupant, when not set. */
#define DEFAULT_VOICE_REQUEST_INTERVAL 1800
/* The most a room may ask for (a week). */
#define MAX_VOICE_REQUEST_INTERVAL 604800

/* ---- names ----------------------------------------------------------------- */

static const char *const role_names[] = {
	[MUC_ROLE_NONE] = "none",
	[MUC_ROLE_VISITOR] = "visitor",
	[MUC_ROLE_PARTICIPANT] = "participant",
	[MUC_ROLE_MODERATOR] = "moderator",
};

static const char *const aff_names[] = {
	[MUC_AFF_OUTCAST] = "outcast", [MUC_AFF_NONE] = "none",   [MUC_AFF_MEMBER] = "member",
	[MUC_AFF_ADMIN] = "admin",     [MUC_AFF_OWNER] = "owner",
};

const char *muc_role_str(enum muc_role r)
{
	return (unsigned)r < ARRAY_SIZE(role_names) ? role_names[r] : "none";
}

int muc_role_parse(const char *s)
{
	for (size_t i = 0; s != NULL && i < ARRAY_SIZE(role_names); i++)
		if (strcmp(s, role_names[i]) == 0)
			return (int)i;
	return -1;
}

const char *muc_aff_str(enum muc_aff a)
{
	return (unsigned)a < ARRAY_SIZE(aff_names) ? aff_names[a] : "none";
}

int muc_aff_parse(const char *s)
{
	for (size_t i = 0; s != NULL && i < ARRAY_SIZE(aff_names); i++)
		if (strcmp(s, aff_names[i]) == 0)
			return (int)i;
	return -1;
}

/* Who may send private messages: the values of muc#roomconfig_allowpm. */
struct choice {
	const char *value;
	const char *label;
	int what;
};

static const struct choice allow_pm_choices[] = {
	{ "anyone", N_("Anyone"), MUC_WHO_ANYONE },
	{ "participants", N_("Anyone with Voice"), MUC_WHO_PARTICIPANTS },
	{ "moderators", N_("Moderators Only"), MUC_WHO_MODERATORS },
	{ "none", N_("Nobody"), MUC_WHO_NONE },
};

/* Who sees real JIDs: semi-anonymous or non-anonymous. */
static const struct choice whois_choices[] = {
	{ "moderators", N_("Moderators Only"), MUC_WHO_MODERATORS },
	{ "anyone", N_("Anyone"), MUC_WHO_ANYONE },
};

static const struct choice role_choices[] = {
	{ "moderator", N_("Moderator"), MUC_ROLE_MODERATOR },
	{ "participant", N_("Participant"), MUC_ROLE_PARTICIPANT },
	{ "visitor", N_("Visitor"), MUC_ROLE_VISITOR },
};

static const char *choice_value(const struct choice *ch, size_t n, int what)
{
	for (size_t i = 0; i < n; i++)
		if (ch[i].what == what)
			return ch[i].value;
	return NULL;
}

static int choice_parse(const struct choice *ch, size_t n, const char *value)
{
	for (size_t i = 0; value != NULL && i < n; i++)
		if (strcmp(ch[i].value, value) == 0)
			return ch[i].what;
	return -1;
}

/* ---- life cycle ------------------------------------------------------------ */

void muc_config_defaults(struct muc_config *c, const struct muc_settings *s)
{
	memset(c, 0, sizeof(*c));
	c->allow_voice_requests = true;
	c->whois = MUC_WHO_MODERATORS;
	c->allow_pm = MUC_WHO_ANYONE;
	c->presence_broadcast = MUC_ROLES_ALL;
	c->get_member_list = MUC_ROLE_BIT(MUC_ROLE_MODERATOR);
	c->public_list = true;
	c->voice_request_interval = DEFAULT_VOICE_REQUEST_INTERVAL;
	c->archive = true; /* a new room takes mod_mam's muc option (muc_room_new) */
	if (s == NULL) {
		c->public_room = true;
		c->change_subject = true;
		c->max_history = 20;
		return;
	}
	c->public_room = s->default_public;
	c->persistent = s->default_persistent;
	c->members_only = s->default_members_only;
	c->moderated = s->default_moderated;
	c->allow_invites = s->default_allow_invites;
	c->change_subject = s->default_change_subject;
	if (s->default_whois == MUC_WHO_ANYONE)
		c->whois = MUC_WHO_ANYONE;
	if (s->default_allow_pm >= MUC_WHO_NONE && s->default_allow_pm <= MUC_WHO_ANYONE)
		c->allow_pm = (enum muc_who)s->default_allow_pm;
	c->max_users = s->default_max_users;
	if (s->max_occupants != 0 && c->max_users > s->max_occupants)
		c->max_users = s->max_occupants;
	c->max_history = s->history_size;
}

static void wipe_free(char **p)
{
	if (*p != NULL)
		explicit_bzero(*p, strlen(*p));
	xfree(p);
}

void muc_config_clear(struct muc_config *c)
{
	xfree(&c->name);
	xfree(&c->description);
	xfree(&c->lang);
	wipe_free(&c->password);
	xfree(&c->pubsub);
	wipe_free(&c->id_salt);
	memset(c, 0, sizeof(*c));
}

static char *dup_or_null(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

void muc_config_copy(struct muc_config *dst, const struct muc_config *src)
{
	*dst = *src;
	dst->name = dup_or_null(src->name);
	dst->description = dup_or_null(src->description);
	dst->lang = dup_or_null(src->lang);
	dst->password = dup_or_null(src->password);
	dst->pubsub = dup_or_null(src->pubsub);
	dst->id_salt = dup_or_null(src->id_salt);
}

/* ---- the form's fields ----------------------------------------------------- */

enum field_kind {
	F_TEXT,      /* char *, text-single; empty: NULL */
	F_SECRET,    /* char *, text-private */
	F_LANG,      /* char *, text-single holding a language tag */
	F_BOOL,      /* bool */
	F_WHO,       /* enum muc_who, list-single of choices */
	F_ROLES,     /* unsigned MUC_ROLE_BIT mask, list-multi of role_choices */
	F_UINT,      /* unsigned, text-single; its largest value from uint_limit() */
	F_MAX_USERS, /* unsigned, list-single of sizes or "none" */
	F_OWNERS,    /* jid-multi, into muc_config_lists */
	F_ADMINS,
};

struct config_field {
	const char *var;
	enum field_kind kind;
	const char *label;
	size_t offset;
	size_t max_len; /* text kinds: bytes */
	const struct choice *choices;
	size_t nchoices;
};

#define CFG(m) offsetof(struct muc_config, m)
#define CHOICES(a) a, ARRAY_SIZE(a)

/* In the order of the form.  Every field of the muc#roomconfig registry,
 * and the voice request fields (not in the registry; the names other
 * servers use). */
static const struct config_field config_fields[] = {
	{ "muc#roomconfig_roomname", F_TEXT, N_("Natural-Language Room Name"), CFG(name), 256, NULL, 0 },
	{ "muc#roomconfig_roomdesc", F_TEXT, N_("Short Description of Room"), CFG(description), 4096, NULL,
	  0 },
	{ "muc#roomconfig_lang", F_LANG, N_("Natural Language for Room Discussions"), CFG(lang), 35, NULL,
	  0 },
	{ "muc#roomconfig_persistentroom", F_BOOL, N_("Whether to Make Room Persistent"), CFG(persistent), 0,
	  NULL, 0 },
	{ "muc#roomconfig_publicroom", F_BOOL, N_("Whether to Allow Public Searching for Room"),
	  CFG(public_room), 0, NULL, 0 },
	{ "muc#roomconfig_membersonly", F_BOOL, N_("Whether to Make Room Members-Only"), CFG(members_only), 0,
	  NULL, 0 },
	{ "muc#roomconfig_moderatedroom", F_BOOL, N_("Whether to Make Room Moderated"), CFG(moderated), 0,
	  NULL, 0 },
	{ "muc#roomconfig_passwordprotectedroom", F_BOOL, N_("Whether a Password is Required to Enter"),
	  CFG(password_protected), 0, NULL, 0 },
	{ "muc#roomconfig_roomsecret", F_SECRET, N_("The Room Password"), CFG(password), 256, NULL, 0 },
	{ "muc#roomconfig_whois", F_WHO, N_("Affiliations that May Discover Real JIDs of Occupants"),
	  CFG(whois), 0, CHOICES(whois_choices) },
	{ "muc#roomconfig_allowpm", F_WHO, N_("Roles that May Send Private Messages"), CFG(allow_pm), 0,
	  CHOICES(allow_pm_choices) },
	{ "muc#roomconfig_changesubject", F_BOOL, N_("Whether to Allow Occupants to Change Subject"),
	  CFG(change_subject), 0, NULL, 0 },
	{ "muc#roomconfig_allowinvites", F_BOOL, N_("Whether to Allow Occupants to Invite Others"),
	  CFG(allow_invites), 0, NULL, 0 },
	{ "muc#roomconfig_enablelogging", F_BOOL,
	  N_("Whether to Enable Public Logging of Room Conversations"), CFG(enable_logging), 0, NULL, 0 },
	{ "muc#roomconfig_enablearchiving", F_BOOL, N_("Whether to Archive Room Messages (XEP-0313)"),
	  CFG(archive), 0, NULL, 0 },
	{ "muc#roomconfig_maxusers", F_MAX_USERS, N_("Maximum Number of Room Occupants"), CFG(max_users), 0,
	  NULL, 0 },
	{ "muc#maxhistoryfetch", F_UINT, N_("Maximum Number of History Messages Returned by Room"),
	  CFG(max_history), 0, NULL, 0 },
	{ "muc#roomconfig_presencebroadcast", F_ROLES, N_("Roles for which Presence is Broadcast"),
	  CFG(presence_broadcast), 0, CHOICES(role_choices) },
	{ "muc#roomconfig_getmemberlist", F_ROLES, N_("Roles and Affiliations that May Retrieve Member List"),
	  CFG(get_member_list), 0, CHOICES(role_choices) },
	{ "muc#roomconfig_pubsub", F_TEXT, N_("XMPP URI of Associated Publish-Subscribe Node"), CFG(pubsub),
	  1024, NULL, 0 },
	{ "muc#roomconfig_allowvoicerequests", F_BOOL, N_("Whether to Allow Visitors to Request Voice"),
	  CFG(allow_voice_requests), 0, NULL, 0 },
	{ "muc#roomconfig_voicerequestmininterval", F_UINT, N_("Minimum Seconds Between Voice Requests"),
	  CFG(voice_request_interval), 0, NULL, 0 },
	{ "muc#roomconfig_roomadmins", F_ADMINS, N_("Full List of Room Admins"), 0, 0, NULL, 0 },
	{ "muc#roomconfig_roomowners", F_OWNERS, N_("Full List of Room Owners"), 0, 0, NULL, 0 },
};

#define MEMBER(c, f, type) ((type *)((char *)(c) + (f)->offset))
#define CMEMBER(c, f, type) ((const type *)((const char *)(c) + (f)->offset))

/* The largest value an F_UINT field takes. */
static unsigned uint_limit(const struct config_field *f, const struct muc_settings *s)
{
	if (f->offset == CFG(max_history))
		return s != NULL ? s->history_size : UINT_MAX;
	return MAX_VOICE_REQUEST_INTERVAL;
}

static const char *field_type(enum field_kind k)
{
	switch (k) {
	case F_TEXT:
	case F_LANG:
	case F_UINT: return "text-single";
	case F_SECRET: return "text-private";
	case F_BOOL: return "boolean";
	case F_WHO:
	case F_MAX_USERS: return "list-single";
	case F_ROLES: return "list-multi";
	case F_OWNERS:
	case F_ADMINS: return "jid-multi";
	}
	return "text-single";
}

static void add_option(struct xml_node *field, const char *label, const char *value)
{
	struct xml_node *o = xml_add_child(field, "option", NS_DATA_FORMS);
	if (label != NULL)
		xml_set_attr(o, "label", label);
	form_field_add_value(o, value);
}

/* Sizes offered for muc#roomconfig_maxusers (any number up to the
 * service's ceiling is accepted). */
static const unsigned max_users_sizes[] = { 5, 10, 20, 30, 50, 100, 200, 500, 1000 };

static void add_max_users(struct xml_node *field, unsigned current, unsigned ceiling)
{
	unsigned sizes[ARRAY_SIZE(max_users_sizes) + 2];
	size_t n = 0;
	for (size_t i = 0; i < ARRAY_SIZE(max_users_sizes); i++)
		if (ceiling == 0 || max_users_sizes[i] < ceiling)
			sizes[n++] = max_users_sizes[i];
	if (ceiling != 0)
		sizes[n++] = ceiling;
	if (current != 0) {
		size_t at = 0;
		while (at < n && sizes[at] < current)
			at++;
		if (at == n || sizes[at] != current) {
			memmove(sizes + at + 1, sizes + at, (n - at) * sizeof(*sizes));
			sizes[at] = current;
			n++;
		}
	}
	char v[16];
	for (size_t i = 0; i < n; i++) {
		snprintf(v, sizeof(v), "%u", sizes[i]);
		add_option(field, v, v);
	}
	add_option(field, ceiling != 0 ? "The Service's Limit" : "No Limit", "none");
}

static void add_affiliated(struct xml_node *field, const struct muc_room *r, enum muc_aff aff)
{
	for (const struct muc_affiliation *a = r->affs; a != NULL; a = a->next)
		if (a->aff == aff && a->jid != NULL)
			form_field_add_value(field, a->jid);
}

struct xml_node *muc_config_form(const struct muc_room *r)
{
	const struct muc_config *c = &r->cfg;
	const struct muc_settings *s = r->svc != NULL ? r->svc->set : NULL;
	char *title = xasprintf("Configuration of %s", r->jid != NULL ? r->jid : "the room");
	struct xml_node *x =
	        form_new("form", title, N_("Complete this form to change the room's configuration."),
	                 NS_MUC_ROOMCONFIG);
	free(title);
	char num[16];
	for (size_t i = 0; i < ARRAY_SIZE(config_fields); i++) {
		const struct config_field *f = &config_fields[i];
		struct xml_node *fl = form_add_field(x, f->var, field_type(f->kind), f->label, NULL, false);
		switch (f->kind) {
		case F_TEXT:
		case F_SECRET:
		case F_LANG: {
			const char *v = *CMEMBER(c, f, char *);
			form_field_add_value(fl, v != NULL ? v : "");
			break;
		}
		case F_BOOL: form_field_add_value(fl, *CMEMBER(c, f, bool) ? "1" : "0"); break;
		case F_WHO: {
			const char *v =
			        choice_value(f->choices, f->nchoices, (int)*CMEMBER(c, f, enum muc_who));
			form_field_add_value(fl, v != NULL ? v : f->choices[0].value);
			for (size_t k = 0; k < f->nchoices; k++)
				add_option(fl, f->choices[k].label, f->choices[k].value);
			break;
		}
		case F_ROLES: {
			unsigned mask = *CMEMBER(c, f, unsigned);
			for (size_t k = 0; k < f->nchoices; k++)
				if (mask & MUC_ROLE_BIT(f->choices[k].what))
					form_field_add_value(fl, f->choices[k].value);
			for (size_t k = 0; k < f->nchoices; k++)
				add_option(fl, f->choices[k].label, f->choices[k].value);
			break;
		}
		case F_UINT:
			snprintf(num, sizeof(num), "%u", *CMEMBER(c, f, unsigned));
			form_field_add_value(fl, num);
			break;
		case F_MAX_USERS: {
			unsigned cur = *CMEMBER(c, f, unsigned);
			if (cur == 0) {
				form_field_add_value(fl, "none");
			} else {
				snprintf(num, sizeof(num), "%u", cur);
				form_field_add_value(fl, num);
			}
			add_max_users(fl, cur, s != NULL ? s->max_occupants : 0);
			break;
		}
		case F_OWNERS: add_affiliated(fl, r, MUC_AFF_OWNER); break;
		case F_ADMINS: add_affiliated(fl, r, MUC_AFF_ADMIN); break;
		}
	}
	return x;
}

/* ---- a submitted form ------------------------------------------------------ */

void muc_config_lists_clear(struct muc_config_lists *l)
{
	strlist_free(&l->owners);
	strlist_free(&l->admins);
	memset(l, 0, sizeof(*l));
}

/* The text of the last rejected form (the caller answers before the next
 * form comes: loop thread). */
static char reject_text[200];

static int reject(enum stanza_error *e_r, const char **text_r, enum stanza_error e, const char *fmt, ...)
        ATTR_PRINTF(4, 5);

static int reject(enum stanza_error *e_r, const char **text_r, enum stanza_error e, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(reject_text, sizeof(reject_text), fmt, ap);
	va_end(ap);
	*e_r = e;
	*text_r = reject_text;
	return -1;
}

/* The values of a submitted field, at most max of them (the rest
 * counted). */
static unsigned field_values(const struct xml_node *f, const char **out, unsigned max)
{
	unsigned n = 0;
	for (struct xml_node *v = xml_child(f, "value", NS_DATA_FORMS); v != NULL;
	     v = xml_next(v, "value", NS_DATA_FORMS)) {
		if (n < max)
			out[n] = xml_text(v);
		n++;
	}
	return n;
}

static int parse_uint(const char *s, unsigned long max, unsigned *out)
{
	if (s == NULL || *s == '\0' || strlen(s) > 10)
		return -1;
	unsigned long v = 0;
	for (const char *p = s; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		v = v * 10 + (unsigned long)(*p - '0');
	}
	if (v > max || v > UINT_MAX)
		return -1;
	*out = (unsigned)v;
	return 0;
}

static int parse_bool(const char *s, bool *out)
{
	if (s == NULL || *s == '\0' || strcmp(s, "0") == 0 || strcmp(s, "false") == 0)
		*out = false;
	else if (strcmp(s, "1") == 0 || strcmp(s, "true") == 0)
		*out = true;
	else
		return -1;
	return 0;
}

/* A language tag as xml:lang takes it (RFC 5646 letters, digits and
 * hyphens; the registry's details are not checked). */
static bool lang_valid(const char *s)
{
	for (const char *p = s; *p != '\0'; p++) {
		char ch = *p;
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		      (ch == '-' && p != s && p[1] != '\0')))
			return false;
	}
	return true;
}

static void strlist_push(struct strlist *l, char *s)
{
	l->items = xrealloc(l->items, (l->count + 1) * sizeof(*l->items));
	l->items[l->count++] = s;
}

/* The prepared bare JIDs (or domains) of a jid-multi field. */
static int read_jids(const struct xml_node *f, struct strlist *out, enum stanza_error *e_r,
                     const char **text_r)
{
	for (struct xml_node *v = xml_child(f, "value", NS_DATA_FORMS); v != NULL;
	     v = xml_next(v, "value", NS_DATA_FORMS)) {
		const char *t = xml_text(v);
		if (*t == '\0')
			continue;
		struct jid j;
		const char *err;
		if (jid_parse(t, &j, &err) < 0)
			return reject(e_r, text_r, SE_JID_MALFORMED, "%s: a value is not a valid JID",
			              xml_attr(f, "var"));
		if (j.resource != NULL) {
			jid_clear(&j);
			return reject(e_r, text_r, SE_JID_MALFORMED,
			              "%s: a value is a full JID, not a bare JID", xml_attr(f, "var"));
		}
		char *bare = jid_bare_string(&j);
		jid_clear(&j);
		if (strlist_contains(out, bare))
			free(bare);
		else
			strlist_push(out, bare);
	}
	return 0;
}

static int apply_field(struct muc_config *n, struct muc_config_lists *l, const struct config_field *f,
                       const struct xml_node *fl, const struct muc_settings *s, enum stanza_error *e_r,
                       const char **text_r)
{
	const char *vals[1] = { NULL };
	unsigned nvals = field_values(fl, vals, 1);
	const char *v = vals[0];
	bool multi = f->kind == F_ROLES || f->kind == F_OWNERS || f->kind == F_ADMINS;
	if (!multi && nvals > 1)
		return reject(e_r, text_r, SE_NOT_ACCEPTABLE, "field '%s' takes one value", f->var);
	switch (f->kind) {
	case F_TEXT:
	case F_SECRET:
	case F_LANG: {
		char **dst = MEMBER(n, f, char *);
		if (v != NULL && strlen(v) > f->max_len)
			return reject(e_r, text_r, SE_NOT_ACCEPTABLE, "the value of '%s' is too long",
			              f->var);
		if (f->kind == F_LANG && v != NULL && !lang_valid(v))
			return reject(e_r, text_r, SE_NOT_ACCEPTABLE, "'%s' is not a language tag", f->var);
		if (f->kind == F_SECRET)
			wipe_free(dst);
		else
			xfree(dst);
		if (v != NULL && *v != '\0')
			*dst = xstrdup(v);
		return 0;
	}
	case F_BOOL:
		if (parse_bool(v, MEMBER(n, f, bool)) < 0)
			return reject(e_r, text_r, SE_NOT_ACCEPTABLE, "field '%s' takes 0, 1, true or false",
			              f->var);
		return 0;
	case F_WHO: {
		int w = choice_parse(f->choices, f->nchoices, v);
		if (w < 0)
			return reject(e_r, text_r, SE_NOT_ACCEPTABLE,
			              "field '%s' has a value not among its options", f->var);
		*MEMBER(n, f, enum muc_who) = (enum muc_who)w;
		return 0;
	}
	case F_ROLES: {
		unsigned mask = 0;
		for (struct xml_node *e = xml_child(fl, "value", NS_DATA_FORMS); e != NULL;
		     e = xml_next(e, "value", NS_DATA_FORMS)) {
			int role = choice_parse(f->choices, f->nchoices, xml_text(e));
			if (role < 0)
				return reject(e_r, text_r, SE_NOT_ACCEPTABLE,
				              "field '%s' has a value not among its options", f->var);
			mask |= MUC_ROLE_BIT(role);
		}
		*MEMBER(n, f, unsigned) = mask;
		return 0;
	}
	case F_UINT:
		if (parse_uint(v, uint_limit(f, s), MEMBER(n, f, unsigned)) < 0)
			return reject(e_r, text_r, SE_NOT_ACCEPTABLE,
			              "field '%s' takes a number within the limit", f->var);
		return 0;
	case F_MAX_USERS: {
		unsigned ceiling = s != NULL ? s->max_occupants : 0;
		unsigned users;
		if (v != NULL && strcmp(v, "none") == 0)
			users = 0;
		else if (parse_uint(v, ceiling != 0 ? ceiling : UINT_MAX, &users) < 0)
			return reject(e_r, text_r, SE_NOT_ACCEPTABLE,
			              "field '%s' takes 'none' or a number up to the service's limit",
			              f->var);
		*MEMBER(n, f, unsigned) = users;
		return 0;
	}
	case F_OWNERS:
		strlist_free(&l->owners);
		l->has_owners = true;
		return read_jids(fl, &l->owners, e_r, text_r);
	case F_ADMINS:
		strlist_free(&l->admins);
		l->has_admins = true;
		return read_jids(fl, &l->admins, e_r, text_r);
	}
	return 0;
}

static const struct config_field *field_find(const char *var)
{
	for (size_t i = 0; i < ARRAY_SIZE(config_fields); i++)
		if (strcmp(config_fields[i].var, var) == 0)
			return &config_fields[i];
	return NULL;
}

/* Whether a field with var comes before fl in the form. */
static bool field_repeated(const struct xml_node *x, const struct xml_node *fl, const char *var)
{
	for (struct xml_node *g = xml_child(x, "field", NS_DATA_FORMS); g != NULL && g != fl;
	     g = xml_next(g, "field", NS_DATA_FORMS))
		if (str_eq(xml_attr(g, "var"), var))
			return true;
	return false;
}

static int apply_fields(struct muc_config *n, struct muc_config_lists *l, const struct xml_node *x,
                        const struct muc_settings *s, enum stanza_error *e_r, const char **text_r)
{
	for (struct xml_node *fl = xml_child(x, "field", NS_DATA_FORMS); fl != NULL;
	     fl = xml_next(fl, "field", NS_DATA_FORMS)) {
		const char *var = xml_attr(fl, "var");
		if (var == NULL)
			return reject(e_r, text_r, SE_BAD_REQUEST, "a field has no var");
		if (field_repeated(x, fl, var))
			return reject(e_r, text_r, SE_BAD_REQUEST, "field '%.64s' is given twice", var);
		if (strcmp(var, "FORM_TYPE") == 0) {
			if (!str_eq(xml_child_text(fl, "value", NS_DATA_FORMS), NS_MUC_ROOMCONFIG))
				return reject(e_r, text_r, SE_BAD_REQUEST, "FORM_TYPE is not %s",
				              NS_MUC_ROOMCONFIG);
			continue;
		}
		const struct config_field *f = field_find(var);
		if (f == NULL)
			return reject(e_r, text_r, SE_BAD_REQUEST, "unknown field '%.64s'", var);
		if (apply_field(n, l, f, fl, s, e_r, text_r) < 0)
			return -1;
	}
	if (n->password_protected && (n->password == NULL || n->password[0] == '\0'))
		return reject(e_r, text_r, SE_NOT_ACCEPTABLE, "a password-protected room needs a password");
	if (l->has_owners && l->owners.count == 0)
		return reject(e_r, text_r, SE_NOT_ACCEPTABLE, "a room needs an owner");
	for (size_t i = 0; i < l->admins.count; i++)
		if (strlist_contains(&l->owners, l->admins.items[i]))
			return reject(e_r, text_r, SE_NOT_ACCEPTABLE,
			              "%.64s is listed as both owner and admin", l->admins.items[i]);
	n->public_list = n->get_member_list != 0;
	return 0;
}

int muc_config_apply_form(struct muc_config *c, const struct xml_node *x, const struct muc_settings *s,
                          struct muc_config_lists *lists, enum stanza_error *e_r, const char **text_r)
{
	memset(lists, 0, sizeof(*lists));
	if (x == NULL || !xml_is(x, "x", NS_DATA_FORMS))
		return reject(e_r, text_r, SE_BAD_REQUEST, "no data form");
	const char *type = xml_attr(x, "type");
	if (str_eq(type, "cancel"))
		return 0;
	if (!str_eq(type, "submit"))
		return reject(e_r, text_r, SE_BAD_REQUEST, "the form is not of type submit");
	struct muc_config n;
	struct muc_config_lists l;
	memset(&l, 0, sizeof(l));
	muc_config_copy(&n, c);
	if (apply_fields(&n, &l, x, s, e_r, text_r) < 0) {
		muc_config_clear(&n);
		muc_config_lists_clear(&l);
		return -1;
	}
	muc_config_clear(c);
	*c = n;
	*lists = l;
	return 0;
}

/* ---- disco#info ------------------------------------------------------------ */

static void add_feature(struct xml_node *query, const char *var)
{
	for (struct xml_node *f = xml_child(query, "feature", NULL); f != NULL;
	     f = xml_next(f, "feature", NULL))
		if (str_eq(xml_attr(f, "var"), var))
			return;
	struct xml_node *f = xml_add_child(query, "feature", NULL);
	xml_set_attr(f, "var", var);
}

void muc_config_disco_info(struct xml_node *query, const struct muc_room *r)
{
	const struct muc_config *c = &r->cfg;
	struct xml_node *id = xml_add_child(query, "identity", NULL);
	xml_set_attr(id, "category", "conference");
	xml_set_attr(id, "type", "text");
	xml_set_attr(id, "name", c->name != NULL && c->name[0] != '\0' ? c->name : r->name);

	add_feature(query, NS_DISCO_INFO);
	add_feature(query, NS_MUC);
	add_feature(query, NS_MUC_STABLE_ID);
	add_feature(query, NS_OCCUPANT_ID);
	add_feature(query, c->public_room ? "muc_public" : "muc_hidden");
	add_feature(query, c->persistent ? "muc_persistent" : "muc_temporary");
	add_feature(query, c->members_only ? "muc_membersonly" : "muc_open");
	add_feature(query, c->moderated ? "muc_moderated" : "muc_unmoderated");
	add_feature(query, c->whois == MUC_WHO_ANYONE ? "muc_nonanonymous" : "muc_semianonymous");
	add_feature(query, c->password_protected ? "muc_passwordprotected" : "muc_unsecured");
	if (c->allow_voice_requests)
		add_feature(query, NS_MUC_REQUEST);

	struct xml_node *x = xml_add_child(query, "x", NS_DATA_FORMS);
	xml_set_attr(x, "type", "result");
	form_add_field(x, "FORM_TYPE", "hidden", NULL, NS_MUC_ROOMINFO, false);
	char num[16];
	snprintf(num, sizeof(num), "%u", c->max_history);
	form_add_field(x, "muc#maxhistoryfetch", "text-single",
	               "Maximum Number of History Messages Returned by Room", num, false);
	/* The owners are the contact, where real JIDs are no secret anyway. */
	if (c->whois == MUC_WHO_ANYONE) {
		struct xml_node *f = form_add_field(x, "muc#roominfo_contactjid", "jid-multi",
		                                    "Contact Addresses", NULL, false);
		add_affiliated(f, r, MUC_AFF_OWNER);
	}
	form_add_field(x, "muc#roominfo_description", "text-single", "Description",
	               c->description != NULL ? c->description : "", false);
	if (c->lang != NULL)
		form_add_field(x, "muc#roominfo_lang", "text-single", "Natural Language for Room Discussions",
		               c->lang, false);
	snprintf(num, sizeof(num), "%u", r->noccupants);
	form_add_field(x, "muc#roominfo_occupants", "text-single", "Number of Occupants", num, false);
	form_add_field(x, "muc#roominfo_subject", "text-single", "Current Discussion Topic",
	               r->subject != NULL ? r->subject : "", false);
	form_add_field(x, "muc#roominfo_subjectmod", "boolean",
	               "The Room Subject Can be Modified by Participants", c->change_subject ? "1" : "0",
	               false);
	/* The name older clients read (an example of the specification once
	 * used it). */
	form_add_field(x, "muc#roominfo_changesubject", "boolean", "Occupants May Change the Subject",
	               c->change_subject ? "1" : "0", false);
	form_add_field(x, "muc#roomconfig_roomname", "text-single", "Natural-Language Room Name",
	               c->name != NULL ? c->name : "", false);
	form_add_field(x, "muc#roomconfig_allowinvites", "boolean", "Occupants May Invite Others",
	               c->allow_invites ? "1" : "0", false);
	const char *pm = choice_value(allow_pm_choices, ARRAY_SIZE(allow_pm_choices), (int)c->allow_pm);
	form_add_field(x, "muc#roomconfig_allowpm", "list-single", "Roles that May Send Private Messages",
	               pm != NULL ? pm : "anyone", false);
	if (c->pubsub != NULL)
		form_add_field(x, "muc#roomconfig_pubsub", "text-single",
		               "XMPP URI of Associated Publish-Subscribe Node", c->pubsub, false);
}

/* ---- stored text ----------------------------------------------------------- */

enum store_kind { S_STR, S_BOOL, S_UINT, S_WHO, S_ROLES };

struct store_key {
	const char *key;
	enum store_kind kind;
	size_t offset;
};

/* Every member of struct muc_config.  A key, once used, keeps its meaning:
 * stored rooms are read with it.  The text's version says what a value
 * meant when it was written: before version 2, max-history 0 was no limit
 * (the whole of history_size), since then it is no history at all. */
#define STORE_VERSION "2"
static const struct store_key store_keys[] = {
	{ "name", S_STR, CFG(name) },
	{ "description", S_STR, CFG(description) },
	{ "lang", S_STR, CFG(lang) },
	{ "password", S_STR, CFG(password) },
	{ "pubsub", S_STR, CFG(pubsub) },
	{ "public", S_BOOL, CFG(public_room) },
	{ "persistent", S_BOOL, CFG(persistent) },
	{ "members-only", S_BOOL, CFG(members_only) },
	{ "moderated", S_BOOL, CFG(moderated) },
	{ "password-protected", S_BOOL, CFG(password_protected) },
	{ "change-subject", S_BOOL, CFG(change_subject) },
	{ "allow-invites", S_BOOL, CFG(allow_invites) },
	{ "voice-requests", S_BOOL, CFG(allow_voice_requests) },
	{ "logging", S_BOOL, CFG(enable_logging) },
	{ "archive", S_BOOL, CFG(archive) },
	{ "public-list", S_BOOL, CFG(public_list) },
	{ "allow-pm", S_WHO, CFG(allow_pm) },
	{ "whois", S_WHO, CFG(whois) },
	{ "max-users", S_UINT, CFG(max_users) },
	{ "max-history", S_UINT, CFG(max_history) },
	{ "presence-broadcast", S_ROLES, CFG(presence_broadcast) },
	{ "get-member-list", S_ROLES, CFG(get_member_list) },
	{ "voice-request-interval", S_UINT, CFG(voice_request_interval) },
	{ "id-salt", S_STR, CFG(id_salt) },
};

static const char *const who_names[] = {
	[MUC_WHO_NONE] = "none",
	[MUC_WHO_MODERATORS] = "moderators",
	[MUC_WHO_PARTICIPANTS] = "participants",
	[MUC_WHO_ANYONE] = "anyone",
};

char *muc_config_serialize(const struct muc_config *c)
{
	struct xml_node *x = xml_new("muc-config", NS_MUC_CONFIG_STORE);
	xml_set_attr(x, "version", STORE_VERSION);
	char num[16];
	for (size_t i = 0; i < ARRAY_SIZE(store_keys); i++) {
		const struct store_key *k = &store_keys[i];
		const void *p = (const char *)c + k->offset;
		switch (k->kind) {
		case S_STR: xml_set_attr(x, k->key, *(char *const *)p); break;
		case S_BOOL: xml_set_attr(x, k->key, *(const bool *)p ? "1" : "0"); break;
		case S_UINT:
			snprintf(num, sizeof(num), "%u", *(const unsigned *)p);
			xml_set_attr(x, k->key, num);
			break;
		case S_WHO: {
			unsigned w = (unsigned)*(const enum muc_who *)p;
			xml_set_attr(x, k->key, w < ARRAY_SIZE(who_names) ? who_names[w] : "none");
			break;
		}
		case S_ROLES: {
			unsigned mask = *(const unsigned *)p;
			char roles[64] = "";
			for (size_t r = 0; r < ARRAY_SIZE(role_names); r++) {
				if (!(mask & MUC_ROLE_BIT(r)))
					continue;
				if (roles[0] != '\0')
					strcat(roles, " ");
				strcat(roles, role_names[r]);
			}
			xml_set_attr(x, k->key, roles);
			break;
		}
		}
	}
	char *text = xml_to_string(x, NULL);
	xml_unref(&x);
	return text;
}

/* A role list "moderator participant"; -1 when a name is no role. */
static int parse_roles(const char *s, unsigned *out)
{
	unsigned mask = 0;
	while (*s != '\0') {
		if (*s == ' ') {
			s++;
			continue;
		}
		size_t len = strcspn(s, " ");
		char word[16];
		if (len >= sizeof(word))
			return -1;
		memcpy(word, s, len);
		word[len] = '\0';
		int r = muc_role_parse(word);
		if (r < 0)
			return -1;
		mask |= MUC_ROLE_BIT(r);
		s += len;
	}
	*out = mask;
	return 0;
}

static void parse_key(struct muc_config *c, const struct store_key *k, const char *v)
{
	void *p = (char *)c + k->offset;
	switch (k->kind) {
	case S_STR:
		if (k->offset == CFG(password))
			wipe_free(p);
		else
			xfree((char **)p);
		*(char **)p = xstrdup(v);
		break;
	case S_BOOL: {
		bool b;
		if (parse_bool(v, &b) == 0 && *v != '\0')
			*(bool *)p = b;
		break;
	}
	case S_UINT: parse_uint(v, UINT_MAX, p); break;
	case S_WHO:
		for (size_t i = 0; i < ARRAY_SIZE(who_names); i++)
			if (strcmp(v, who_names[i]) == 0)
				*(enum muc_who *)p = (enum muc_who)i;
		break;
	case S_ROLES: parse_roles(v, p); break;
	}
}

void muc_config_parse(struct muc_config *c, const char *text, const struct muc_settings *s)
{
	muc_config_defaults(c, s);
	if (text == NULL)
		return;
	struct xml_node *x = xml_parse_string(text, strlen(text), NULL, NULL, NULL);
	if (x == NULL)
		return;
	if (xml_is(x, "muc-config", NS_MUC_CONFIG_STORE)) {
		unsigned default_history = c->max_history;
		for (const struct xml_attr *a = x->attrs; a != NULL; a = a->next) {
			if (a->ns != NULL && a->ns[0] != '\0')
				continue;
			for (size_t i = 0; i < ARRAY_SIZE(store_keys); i++)
				if (strcmp(store_keys[i].key, a->name) == 0)
					parse_key(c, &store_keys[i], a->value);
		}
		unsigned version = 1;
		const char *v = xml_attr(x, "version");
		if (v != NULL)
			parse_uint(v, UINT_MAX, &version);
		if (version < 2 && c->max_history == 0)
			c->max_history = default_history;
	}
	xml_unref(&x);
	/* Whatever was stored, the room stays within the service's limits. */
	if (s != NULL && s->max_occupants != 0 && c->max_users > s->max_occupants)
		c->max_users = s->max_occupants;
	if (s != NULL && c->max_history > s->history_size)
		c->max_history = s->history_size;
	if (c->whois != MUC_WHO_ANYONE)
		c->whois = MUC_WHO_MODERATORS;
}

/* ---- status codes of a change ---------------------------------------------- */

unsigned muc_config_change_codes(const struct muc_config *old, const struct muc_config *new, bool logs,
                                 int codes_r[4])
{
	unsigned n = 0;
	if (logs && !old->enable_logging && new->enable_logging)
		codes_r[n++] = 170;
	if (logs && old->enable_logging && !new->enable_logging)
		codes_r[n++] = 171;
	bool was_open = old->whois == MUC_WHO_ANYONE, is_open = new->whois == MUC_WHO_ANYONE;
	if (!was_open && is_open)
		codes_r[n++] = 172;
	if (was_open && !is_open)
		codes_r[n++] = 173;
	return n;
}
