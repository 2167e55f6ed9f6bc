/*
 * Multi-user chat (XEP-0045): what the files of modules/muc/ share.  Loop
 * thread.
 *
 * A MUC service is a domain (conference.example.com) with a route of its
 * own in the router; it belongs to one virtual host (its storage, its
 * admins).  A service holds rooms; a room holds its configuration, its
 * affiliation list (kept, with the configuration, in the host's MUC store
 * when the room is persistent), its occupants and a short history.  An
 * occupant is one nick of one bare JID; each of that user's resources in
 * the room is a muc_session of the occupant.
 *
 * muc.c: the module, the services, routing and service-level iqs (disco,
 * registration), persistence.  muc-room.c: occupants, presence, messages,
 * history, roles and affiliations, destroy.  muc-config.c: the room
 * configuration, its forms and its stored text.  muc-log.c: HTML logs.
 */
#ifndef PARLEY_MODULES_MUC_H
#define PARLEY_MODULES_MUC_H

#include "lib/jid.h"
#include "lib/util.h"
#include "lib/xml.h"
#include "server/stanza.h"
#include "storage/storage.h"

#define NS_MUC "http://jabber.org/protocol/muc"
#define NS_MUC_USER "http://jabber.org/protocol/muc#user"
#define NS_MUC_ADMIN "http://jabber.org/protocol/muc#admin"
#define NS_MUC_OWNER "http://jabber.org/protocol/muc#owner"
#define NS_MUC_ROOMCONFIG "http://jabber.org/protocol/muc#roomconfig"
#define NS_MUC_ROOMINFO "http://jabber.org/protocol/muc#roominfo"
#define NS_MUC_REQUEST "http://jabber.org/protocol/muc#request"
#define NS_MUC_REGISTER "http://jabber.org/protocol/muc#register"
#define NS_OCCUPANT_ID "urn:xmpp:occupant-id:0"
#define NS_CONFERENCE "jabber:x:conference"
#define NS_RSM "http://jabber.org/protocol/rsm"

struct host;
struct muc_log;
struct muc_relay;

/* Roles, in rank order. */
enum muc_role { MUC_ROLE_NONE, MUC_ROLE_VISITOR, MUC_ROLE_PARTICIPANT, MUC_ROLE_MODERATOR };
/* Affiliations, in rank order. */
enum muc_aff { MUC_AFF_OUTCAST, MUC_AFF_NONE, MUC_AFF_MEMBER, MUC_AFF_ADMIN, MUC_AFF_OWNER };
const char *muc_role_str(enum muc_role r);
/* -1 when s names no role. */
int muc_role_parse(const char *s);
const char *muc_aff_str(enum muc_aff a);
int muc_aff_parse(const char *s);

/* Who may do something (private messages) or see something (real JIDs). */
enum muc_who { MUC_WHO_NONE, MUC_WHO_MODERATORS, MUC_WHO_PARTICIPANTS, MUC_WHO_ANYONE };
/* Role masks (presence broadcast, who may get the member list). */
#define MUC_ROLE_BIT(r) (1u << (r))
#define MUC_ROLES_ALL                                                          \
	(MUC_ROLE_BIT(MUC_ROLE_VISITOR) | MUC_ROLE_BIT(MUC_ROLE_PARTICIPANT) | \
	 MUC_ROLE_BIT(MUC_ROLE_MODERATOR))

/* Who may create rooms on a service. */
enum muc_access { MUC_ACCESS_ANYONE, MUC_ACCESS_LOCAL, MUC_ACCESS_ADMINS, MUC_ACCESS_LIST };

/* The module's options (the opt_def table in muc.c). */
struct muc_settings {
	struct strlist hosts; /* service domains; "@HOST@" is the virtual host */
	int access_create;    /* enum muc_access */
	struct strlist create_list;
	struct strlist admins; /* service admins besides the host's admins */
	unsigned max_rooms_per_user;
	unsigned max_occupants; /* ceiling of every room's max_users */
	unsigned history_size;  /* messages kept per room */
	unsigned message_rate;  /* groupchat messages per second per occupant; 0: no limit */
	unsigned message_burst;
	size_t max_subject; /* bytes */
	char *log_dir;      /* HTML room logs: NULL or "": off */
	char *log_css;
	char *log_timezone;
	/* Defaults of a new room. */
	bool default_public;
	bool default_persistent;
	bool default_members_only;
	bool default_moderated;
	bool default_allow_invites;
	bool default_change_subject;
	int default_whois;    /* enum muc_who: MODERATORS or ANYONE */
	int default_allow_pm; /* enum muc_who */
	unsigned default_max_users;
};

/* A room's configuration (XEP-0045 §10.2, muc#roomconfig_*). */
struct muc_config {
	char *name;        /* roomname; NULL: none */
	char *description; /* roomdesc */
	char *lang;
	char *password; /* roomsecret; NULL: none */
	char *pubsub;   /* pubsub node of the room, NULL: none */
	bool public_room;
	bool persistent;
	bool members_only;
	bool moderated;
	bool password_protected;
	bool change_subject; /* participants may change the subject */
	bool allow_invites;  /* participants may invite (else admins/owners) */
	bool allow_voice_requests;
	bool enable_logging;
	bool archive;                    /* a message archive (XEP-0313, mod_mam) */
	bool public_list;                /* the member list may be fetched (getmemberlist decides who) */
	enum muc_who allow_pm;           /* who may send private messages */
	enum muc_who whois;              /* MODERATORS: semi-anonymous; ANYONE: non-anonymous */
	unsigned max_users;              /* 0: the service's ceiling */
	unsigned max_history;            /* maxhistoryfetch: most history a joiner gets, 0: none */
	unsigned presence_broadcast;     /* MUC_ROLE_BIT mask */
	unsigned get_member_list;        /* MUC_ROLE_BIT mask */
	unsigned voice_request_interval; /* seconds between one occupant's voice requests */
	char *id_salt; /* the room's secret for occupant ids (XEP-0421), kept with the room; not in any form */
};

/* One resource of an occupant. */
struct muc_session {
	struct jid jid;                 /* the real full JID */
	struct xml_node *presence;      /* the payload of its last presence to the room (shared, read only) */
	struct shared_presence *shared; /* muc-room.c: what holds presence */
	struct muc_session *next;
};

struct muc_occupant {
	struct muc_room *room;
	char *nick;
	struct jid bare;      /* the real bare JID */
	char occupant_id[48]; /* XEP-0421, stable per room and bare JID */
	enum muc_role role;
	struct muc_session *sessions; /* at least one while in the room */
	double tokens, tokens_at;     /* message rate bucket */
	double voice_requested;       /* when the last voice request came */
	unsigned char doomed;         /* MUC_DOOMED_*: removed by muc_room_reap */
	struct muc_occupant *next;
};

struct muc_affiliation {
	char *jid; /* bare JID or domain */
	enum muc_aff aff;
	char *reason;
	struct muc_affiliation *next;
};

struct muc_history_entry {
	struct xml_node *msg; /* as broadcast (from = room/nick), without to */
	double at;
	size_t chars; /* of its serialised form, for maxchars */
};

struct muc_room {
	struct muc_service *svc;
	char *name; /* node, prepared */
	char *jid;  /* name@service */
	struct muc_config cfg;
	bool locked;    /* created, waiting for the owner's first configuration */
	bool destroyed; /* being taken down: no new work */
	bool unlinked;  /* destroyed and out of its service's table (the name is free) */
	char *subject;  /* NULL: none set */
	char *subject_nick;
	double created;
	struct muc_occupant *occupants;
	unsigned noccupants;
	struct muc_affiliation *affs;
	struct muc_history_entry *history; /* ring of svc->set->history_size */
	unsigned hist_start, hist_count;
	unsigned saving;          /* stores in flight */
	unsigned hist_size;       /* of history (the service's history_size when made) */
	struct muc_relay *relays; /* muc-room.c: iq requests relayed to occupants, awaiting answers */
	unsigned nrelays;
	struct muc_room *next; /* hash chain */
};

struct muc_nick {
	char *jid; /* bare */
	char *nick;
	struct muc_nick *next;
};

struct muc_service {
	struct host *host;
	const struct muc_settings *set;
	char *domain;
	struct muc_room **buckets;
	unsigned nbuckets, nrooms;
	struct muc_nick *nicks;    /* registered with the service */
	struct muc_log *log;       /* NULL: logging off */
	bool loaded;               /* stored rooms restored */
	struct xml_node **waiting; /* stanzas that came before the rooms were loaded */
	size_t nwaiting;
	unsigned busy; /* store calls in flight */
	bool stopping; /* stopped: freed when busy reaches 0 */
	struct muc_service *next;
};

/* ---- muc.c ----------------------------------------------------------- */

/* Every running service, of every host (NULL-terminated list). */
struct muc_service *muc_services(void);
/* The service serving domain, or NULL. */
struct muc_service *muc_service_find(const char *domain);
struct muc_room *muc_room_find(struct muc_service *svc, const char *name);
/* The rooms of svc sorted by name; the caller frees the array (not the
 * rooms). */
struct muc_room **muc_rooms_sorted(struct muc_service *svc, size_t *count_r);
/* A new room with the service's defaults, unlocked (locked when locked is
 * set), registered with svc; owner (a bare JID, may be NULL) is its owner. */
struct muc_room *muc_room_new(struct muc_service *svc, const char *name, const char *owner, bool locked);
/* Free a room (no occupants left); removes it from svc. */
void muc_room_free(struct muc_room *r);
/* Give r a secret for its occupant ids unless it has one (kept with its
 * configuration, so ids stay the same across restarts). */
void muc_room_salt(struct muc_room *r);
/* Take a destroyed room out of svc's table at once (a new room may take
 * its name); it is freed later, when its store calls are done. */
void muc_room_unlink(struct muc_room *r);
/* Store a persistent room (configuration and affiliations), or remove a
 * room that is no longer persistent from the store.  done (may be NULL)
 * runs with the result, later, from the loop. */
typedef void muc_saved_fn(enum storage_result res, void *ctx);
void muc_room_save(struct muc_room *r, muc_saved_fn *done, void *ctx);
void muc_room_forget(struct muc_room *r, muc_saved_fn *done, void *ctx);
/* Whether jid (a full or bare JID) is an admin of the service (host admins
 * and the admins option). */
bool muc_is_service_admin(const struct muc_service *svc, const struct jid *j);
/* The nick registered for bare (NULL: none), and the bare JID holding nick. */
const char *muc_registered_nick(const struct muc_service *svc, const char *bare);
const char *muc_nick_holder(const struct muc_service *svc, const char *nick);
/* Remember (nick NULL: forget) bare's registered nick, in memory only. */
void muc_nick_put(struct muc_service *svc, const char *bare, const char *nick);
/* Store bare's registration (nick NULL removes it), then remember it;
 * done runs with the store's result (STORAGE_EXISTS: another holds nick). */
void muc_nick_register(struct muc_service *svc, const char *bare, const char *nick, muc_saved_fn *done,
                       void *ctx);
/* Whether j may create a room on svc (access_create), and how many rooms
 * bare owns there. */
bool muc_may_create(const struct muc_service *svc, const struct jid *j);
unsigned muc_rooms_owned(const struct muc_service *svc, const char *bare);
/* Answer iq (a get or set addressed to the service or a room) with a
 * result holding a copy of payload (NULL: empty). */
void muc_iq_answer(struct xml_node *iq, const struct xml_node *payload);
/* Send stanza (consumed reference) from from to to through the router. */
void muc_send(struct xml_node *stanza, const char *from, const char *to);

/* ---- muc-room.c ------------------------------------------------------ */

/* A stanza addressed to the room (to->resource NULL) or an occupant. */
void muc_room_presence(struct muc_service *svc, struct muc_room *r, struct xml_node *stanza,
                       const struct jid *from, const struct jid *to);
void muc_room_message(struct muc_room *r, struct xml_node *stanza, const struct jid *from,
                      const struct jid *to);
void muc_room_iq(struct muc_room *r, struct xml_node *stanza, const struct jid *from, const struct jid *to);
/* The affiliation of a real JID (bare match first, then its domain). */
enum muc_aff muc_room_affiliation(const struct muc_room *r, const struct jid *real);
/* Set jid's affiliation (MUC_AFF_NONE removes it) and apply what follows
 * to the occupants (role changes, removal of outcasts and, in a members-only
 * room, of non-members) with status codes; actor is a nick or NULL.  Does
 * not store the room: the caller saves. */
void muc_room_set_affiliation(struct muc_room *r, const char *jid, enum muc_aff aff, const char *reason,
                              const char *actor);
/* Tell every occupant the room is destroyed (reason, alternate venue may
 * be NULL), remove them, forget the stored room, free it. */
void muc_room_destroy(struct muc_room *r, const char *reason, const char *alt);
/* The service stops: occupants get unavailable presence (332 when the
 * server shuts down), the room is freed (once its store calls are done). */
void muc_room_shutdown(struct muc_room *r, bool shutdown);
/* Occupants a broadcast found unable to receive: their client does not
 * read (removed with status 333), or their session ended without the room
 * hearing of it (they leave).  Broadcasts only mark them; muc_room_reap,
 * run after each stanza the room handled, removes them (and a temporary
 * room left empty). */
#define MUC_DOOMED_SLOW 1
#define MUC_DOOMED_GONE 2
void muc_room_reap(struct muc_room *r);
/* Forget the iq requests r relayed that still wait for an answer. */
void muc_room_relays_clear(struct muc_room *r);
/* Occupant lookups. */
struct muc_occupant *muc_occupant_by_nick(const struct muc_room *r, const char *nick);
struct muc_occupant *muc_occupant_by_real(const struct muc_room *r, const struct jid *real);

/* ---- muc-config.c ---------------------------------------------------- */

void muc_config_defaults(struct muc_config *c, const struct muc_settings *s);
void muc_config_clear(struct muc_config *c);
void muc_config_copy(struct muc_config *dst, const struct muc_config *src);
/* The owner's configuration form (<x xmlns='jabber:x:data' type='form'>)
 * with r's current values, its owner and admin lists included. */
struct xml_node *muc_config_form(const struct muc_room *r);
/* What a submitted form changes besides the configuration. */
struct muc_config_lists {
	bool has_owners, has_admins;
	struct strlist owners, admins; /* bare JIDs, prepared */
};
/* Apply a submitted form (type submit) to c, which holds the current
 * configuration.  0, or -1 with the error to answer (*e_r, *text_r static)
 * for an unknown field, a bad value or a contradiction (password-protected
 * without a password, ...); c is unchanged then.  lists is filled (the
 * caller frees it with muc_config_lists_clear). */
int muc_config_apply_form(struct muc_config *c, const struct xml_node *x, const struct muc_settings *s,
                          struct muc_config_lists *lists, enum stanza_error *e_r, const char **text_r);
void muc_config_lists_clear(struct muc_config_lists *l);
/* Add r's identity, features (muc_public/muc_hidden, muc_persistent, ...)
 * and room info form (XEP-0045 §6.4) to a disco#info query. */
void muc_config_disco_info(struct xml_node *query, const struct muc_room *r);
/* The configuration as text for the store, and back (unknown or bad
 * fields in stored text are skipped; c starts from the defaults). */
char *muc_config_serialize(const struct muc_config *c);
void muc_config_parse(struct muc_config *c, const char *text, const struct muc_settings *s);
/* The status codes of a configuration change (XEP-0045 §10.2.1: 172
 * non-anonymous now, 173 semi-anonymous now, 170 logging on, 171 off);
 * 170 and 171 only when the service logs rooms (logs: it has a log_dir),
 * as a room is logged only then.  codes_r gets up to 4, the count is
 * returned. */
unsigned muc_config_change_codes(const struct muc_config *old, const struct muc_config *new, bool logs,
                                 int codes_r[4]);

#endif
