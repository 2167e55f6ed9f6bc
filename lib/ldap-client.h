/*
 * The LDAP client shared by the ldap auth method (auth/auth-ldap.c), the
 * LDAP store (storage/ldap-store.c: vCards, and the user directory through
 * ldap_client_search_limit), the LDAP shared roster groups
 * (storage/ldap-srg.c, through ldap_client_search): a pool of
 * connections to a list of servers (failover in order), each connection
 * owned by one thread of a worker group, and the few directory operations
 * Parley needs, all keyed by a user name (find the user's entry, check a
 * password by bind or compare, change it with Password Modify).  Plus the
 * escaping every value needs before it goes into a filter (RFC 4515) or a
 * DN (RFC 4514), and the check every value read needs before it goes into
 * XML (ldap_value_text).
 *
 * Public functions are for the loop thread, except the escaping ones, which
 * are pure and may be called anywhere.
 */
#ifndef PARLEY_LDAP_CLIENT_H
#define PARLEY_LDAP_CLIENT_H

#include <ev.h>
#include "options.h"

/* What a client connects with: the auth.ldap options of the configuration
 * (auth/auth-config.c fills it; global, overridden key by key per host). */
struct ldap_config {
	struct strlist servers;      /* ldap:// or ldaps:// URIs, tried in order */
	int starttls;                /* LDAPCFG_STARTTLS_OFF (default) / _REQUIRED */
	char *tls_ca_file;           /* PEM CA bundle; NULL: the system's */
	bool tls_verify;             /* check the server certificate (default true) */
	char *base;                  /* search base (required for method ldap) */
	struct strlist uids;         /* attributes that hold the user name ([uid]) */
	char *filter;                /* ANDed with the uid match; %u = the user (escaped) */
	char *bind_dn;               /* service account; NULL: anonymous searches */
	char *password;              /* of bind_dn */
	char *password_file;         /* or read from here (first line) */
	int method;                  /* LDAPCFG_METHOD_BIND (default) / _COMPARE */
	double network_timeout;      /* connect (5 s) */
	double timeout;              /* one operation (10 s) */
	bool referrals;              /* follow referrals (default false) */
	int deref;                   /* 0 never (default), 1 searching, 2 finding, 3 always */
	unsigned pool_size;          /* connections = worker threads (2) */
	unsigned queue_max;          /* jobs waiting before failing fast (1000) */
	double retry_interval;       /* a failed server is skipped this long (30 s) */
	bool allow_password_change;  /* RFC 3062 Password Modify (default false) */
	const struct cfg_node *node; /* the map that set the options last (messages) */
};
enum { LDAPCFG_STARTTLS_OFF, LDAPCFG_STARTTLS_REQUIRED };
enum { LDAPCFG_METHOD_BIND, LDAPCFG_METHOD_COMPARE };

/* RFC 4515 section 3: value (len bytes, may hold NUL) as an assertion value:
 * '*', '(', ')', '\' and NUL become \2a \28 \29 \5c \00; every other byte,
 * UTF-8 included, is kept.  Malloc'd. */
char *ldap_filter_escape(const char *value, size_t len);
/* RFC 4514 section 2.4: value as an attribute value of a DN: '"', '+', ',',
 * ';', '<', '>', '\' are backslash-escaped, and so are a leading '#' or
 * space and a trailing space; NUL becomes \00.  Malloc'd. */
char *ldap_dn_escape(const char *value, size_t len);
/* The search filter for user:
 *   (&(|(uid1=user)(uid2=user)...)(filter))
 * with the inner (|...) dropped for a single attribute, and "(filter)" left
 * out when filter is NULL or empty.  In filter, %u stands for the user name
 * and %% for '%'; every substitution is escaped with ldap_filter_escape.
 * filter may be written with or without its outer parentheses.  Malloc'd. */
char *ldap_user_filter(const struct strlist *uids, const char *filter, const char *user);
/* Whether filter (an auth.ldap filter) uses %u, which only a login can fill
 * in. */
bool ldap_filter_uses_user(const char *filter);
/* The filter of a listing of user entries (no user logging in): a presence
 * test (attr=*) for each name of the NULL-terminated present, filter
 * (auth.ldap.filter, with or without outer parentheses; NULL or "": none;
 * %% stands for '%', any other '%' is kept), and more (clauses already
 * built and escaped, "(a=b)(c=d*)"; NULL or "": none), ANDed; one clause
 * alone is not wrapped in (&...).  -1 with a malloc'd *error_r when filter
 * uses %u; else 0 and a malloc'd *filter_r. */
int ldap_listing_filter(const char *const *present, const char *filter, const char *more, char **filter_r,
                        char **error_r);

enum ldap_client_result {
	LDAPC_OK,
	LDAPC_NO_ENTRY,     /* no entry matches the user */
	LDAPC_AMBIGUOUS,    /* more than one entry matches: refused */
	LDAPC_BAD_PASSWORD, /* bind refused with invalidCredentials, compare false, empty password */
	LDAPC_TEMPFAIL,     /* no server reachable, timeout, busy, queue full */
	LDAPC_ERROR,        /* any other refusal (access rights, bad base, ...) */
};
const char *ldap_client_result_str(enum ldap_client_result r);

enum ldap_client_op {
	LDAPC_FIND,          /* the user's entry: its DN and the attributes asked for */
	LDAPC_CHECK_BIND,    /* find, then bind as the entry with the password */
	LDAPC_CHECK_COMPARE, /* find, then compare the password with userPassword */
	LDAPC_PASSWD,        /* find, then set the password (RFC 3062 Password Modify) */
	LDAPC_SEARCH,        /* any subtree search: every entry (ldap_client_search) */
};

struct ldap_value {
	unsigned char *data;
	size_t len;
};
struct ldap_attr {
	char *name;
	struct ldap_value *values;
	size_t count;
};
/* One entry of a search. */
struct ldap_entry {
	char *dn;
	struct ldap_attr *attrs; /* the attributes asked for that it has */
	size_t nattrs;
};
/* Whether a value read from the directory is text a stanza can carry: not
 * empty, valid UTF-8 of XML 1.0 characters only (utf8_xml_valid: no control
 * characters but tab, LF and CR, no U+FFFE or U+FFFF).  A value that is not
 * is left out by every reader; when it is not empty, an info line names
 * the entry (dn) and the attribute (attr) it came from. */
bool ldap_value_text(const struct ldap_value *v, const char *dn, const char *attr);
/* What an operation found; valid only during the callback. */
struct ldap_reply {
	enum ldap_client_result res;
	const char *dn;                /* the user's entry, when found */
	const struct ldap_attr *attrs; /* LDAPC_FIND: the attributes asked for that it has */
	size_t nattrs;
	const char *error;                /* what went wrong, for the log (never a password) */
	const struct ldap_entry *entries; /* LDAPC_SEARCH: every entry found */
	size_t nentries;
	bool truncated; /* ldap_client_search_limit: a size limit was reached */
	/* ldap_client_find_traced only (NULL otherwise): */
	const char *base;   /* the search sent: its base */
	const char *filter; /* and its filter, exactly as sent */
	const char *server; /* the server that answered it (NULL: none did) */
	const char *trace;  /* one line per server tried or skipped, and why */
};
typedef void ldap_client_cb(const struct ldap_reply *r, void *ctx);

struct ldap_client;
struct ldap_client_req;

/* A client for cfg (copied; the service password is read from
 * password_file here).  name says whose it is in logs and status ("auth
 * example.com").  -1 with a malloc'd *error_r. */
int ldap_client_new(struct ev_loop *loop, const char *name, const struct ldap_config *cfg,
                    struct ldap_client **c_r, char **error_r);
/* Finishes the operations under way (their callbacks run), closes the
 * connections. */
void ldap_client_free(struct ldap_client **c);

/* Start op for user.  password: for the checks and LDAPC_PASSWD (copied,
 * wiped after use).  attrs: NULL-terminated names for LDAPC_FIND (NULL: none).
 * cb runs later on the loop, exactly once, unless cancelled.  Returns NULL
 * when the queue is full: cb will not run, the caller answers "temporary
 * failure" itself. */
struct ldap_client_req *ldap_client_submit(struct ldap_client *c, enum ldap_client_op op, const char *user,
                                           const char *password, const char *const *attrs, ldap_client_cb *cb,
                                           void *ctx);
/* A subtree search under base (NULL: the client's base) with filter, which
 * the caller built with every value escaped (ldap_filter_escape); attrs as
 * for ldap_client_submit.  The reply lists every entry found (LDAPC_OK, even
 * for none); a server's size limit reached is LDAPC_ERROR (a partial list
 * is never passed on), an outage LDAPC_TEMPFAIL.  cb and the return value as
 * for ldap_client_submit. */
struct ldap_client_req *ldap_client_search(struct ldap_client *c, const char *base, const char *filter,
                                           const char *const *attrs, ldap_client_cb *cb, void *ctx);
/* The size limit of the search that finds a user's entry (LDAPC_FIND and the
 * checks): a second entry makes the name ambiguous. */
#define LDAP_CLIENT_FIND_SIZELIMIT 2

/* LDAPC_FIND for diagnostics (parleyctl ldap-test): the same search as a
 * login's (base, subtree, the filter of ldap_user_filter, size limit
 * LDAP_CLIENT_FIND_SIZELIMIT) on the same connections, with attrs asked
 * for (NULL: none).  The reply also holds the search sent (base, filter),
 * the servers tried or skipped with the reason, the server that answered,
 * and in entries every entry the search returned (for LDAPC_AMBIGUOUS too)
 * with its attributes.  cb and the return value as for
 * ldap_client_submit. */
struct ldap_client_req *ldap_client_find_traced(struct ldap_client *c, const char *user,
                                                const char *const *attrs, ldap_client_cb *cb, void *ctx);
/* As ldap_client_search, asking the server for at most size_limit entries
 * (0: no limit).  A size limit reached, this one or the server's own, is
 * LDAPC_OK with the entries that came and r->truncated set. */
struct ldap_client_req *ldap_client_search_limit(struct ldap_client *c, const char *base, const char *filter,
                                                 const char *const *attrs, unsigned size_limit,
                                                 ldap_client_cb *cb, void *ctx);
/* The base of c's searches (its auth.ldap base). */
const char *ldap_client_base(const struct ldap_client *c);
/* c's auth.ldap filter (NULL when none) and uid attributes, as configured. */
const char *ldap_client_filter(const struct ldap_client *c);
const struct strlist *ldap_client_uids(const struct ldap_client *c);

/* The callback of r will not run; r is invalid afterwards. */
void ldap_client_cancel(struct ldap_client_req *r);

/* One line per server of every client: state, since when, last error. */
void ldap_client_status_all(struct buf *out);

#endif
