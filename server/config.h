/*
 * Configuration: a YAML file (libyaml) read into a tree of nodes that keep
 * their file, line and column, then applied to typed settings structs through
 * option tables ({key, type, offset, default}).  Every error names the file,
 * the line and the key.  The same tables document the options.
 * Runs on the loop thread (start-up and reload) and in parleyctl.
 */
#ifndef PARLEY_CONFIG_H
#define PARLEY_CONFIG_H

#include "lib/util.h"

/* ---- the node tree ---------------------------------------------------- */
enum cfg_type { CFG_SCALAR, CFG_MAP, CFG_LIST };

struct cfg_node {
	enum cfg_type type;
	char *key;                  /* when this node is a value in a map */
	char *value;                /* scalars: the text ("" for an empty/null value) */
	bool quoted;                /* scalar was quoted in the file */
	struct cfg_node *children;  /* map values (with key set) / list items, in order */
	struct cfg_node *next;
	const char *file;           /* shared string owned by the root */
	unsigned line, column;      /* 1-based, where the value starts */
	unsigned key_line, key_column; /* 1-based, where its key starts (= line, column
	                                * for list items and the root) */
};

/* Load a file / a string (file names the source in messages).  On error
 * returns -1 and *error_r is a malloc'd "file:line:column: message". Duplicate
 * keys in a map are an error.  Anchors and aliases are refused. */
int cfg_load_file(const char *path, struct cfg_node **root_r, char **error_r);
int cfg_load_string(const char *text, const char *file, struct cfg_node **root_r, char **error_r);
void cfg_free(struct cfg_node **root);
/* The value of key in a map node, or NULL. */
const struct cfg_node *cfg_get(const struct cfg_node *map, const char *key);
/* A message about key of map: "file:line:column: key 'section.key': why"
 * (where key was written; where the map was when it does not hold key;
 * "key 'section.key': why" without a map).  Malloc'd. */
char *cfg_key_error(const struct cfg_node *map, const char *key, const char *section,
                    const char *fmt, ...) ATTR_PRINTF(4, 5);

/* ---- option tables ---------------------------------------------------- */
enum opt_type {
	OPT_STRING,     /* char * (malloc'd; NULL default allowed) */
	OPT_BOOL,       /* bool: true/false/yes/no/on/off */
	OPT_INT,        /* int */
	OPT_UINT,       /* unsigned */
	OPT_SIZE,       /* size_t: 1024, 256K, 256KiB, 1M, 1MiB */
	OPT_DURATION,   /* double seconds: 30, 1.5, 30s, 500ms, 5m, 1h */
	OPT_ENUM,       /* int index into enum_values */
	OPT_MODE,       /* unsigned: octal file mode ("0660" or 0660) */
	OPT_STRLIST,    /* struct strlist: a list of scalars, or one scalar */
	OPT_NODE,       /* const struct cfg_node *: the raw subtree (not copied) */
	/* Not values: old keys still accepted, with a warning.
	 * OPT_ALIAS: a renamed key; default_value names the new key (in the same
	 *   table), whose type and checks apply.
	 * OPT_REMOVED: a key that no longer does anything; it is ignored and doc
	 *   says why.  Neither has a field (offset unused); dumps and docs skip them. */
	OPT_ALIAS,
	OPT_REMOVED,
};

struct strlist { char **items; size_t count; };
void strlist_free(struct strlist *l);
bool strlist_contains(const struct strlist *l, const char *s);

struct opt_def {
	const char *key;
	enum opt_type type;
	size_t offset;                    /* offsetof in the settings struct */
	const char *default_value;        /* as text, parsed like the file's value; NULL: zero/NULL;
	                                   * OPT_STRLIST: items separated by ", " */
	const char *const *enum_values;   /* OPT_ENUM: NULL-terminated */
	long min, max;                    /* OPT_INT/UINT/SIZE when max > min */
	const char *doc;                  /* one line for docs and config-dump */
};
#define OPT_END { NULL, 0, 0, NULL, NULL, 0, 0, NULL }

/* Warnings while options are applied (renamed or removed keys): appended
 * to sink ("file:line:column: key 'section.key': ...") while one is set,
 * logged otherwise.  Returns the previous sink.  Loop thread / parleyctl. */
struct strlist *opt_set_warning_sink(struct strlist *sink);

/* Set every option of defs to its default in out. */
void opt_defaults(const struct opt_def *defs, void *out);
/* Apply a map node to out (defaults first).  Unknown keys, wrong types and
 * out-of-range values are errors: -1 and *error_r = malloc'd
 * "file:line:column: key 'section.key': reason".  section names the map in
 * messages (e.g. "hosts.example.com.modules.register"); map may be NULL
 * (defaults only). */
int opt_apply(const struct opt_def *defs, const struct cfg_node *map, const char *section,
              void *out, char **error_r);
/* Free strings and lists that opt_apply/opt_defaults allocated in out. */
void opt_free(const struct opt_def *defs, void *out);
/* Write "key: value" lines of the current values (for config-dump). */
void opt_dump(const struct opt_def *defs, const void *in, struct buf *out, int indent);

/* ---- the server's configuration -------------------------------------- */
struct storage_config {
	char *driver;          /* "sqlite" (default), "pgsql", "mysql", "odbc" */
	char *path;            /* sqlite: database file */
	char *dsn;             /* other drivers: connection string */
	char *password;        /* other drivers: password (never logged nor dumped) */
	char *password_file;   /* other drivers: file whose first line is the password */
	char *dialect;         /* odbc: pgsql, mysql or mssql; NULL: asked from the data source */
	unsigned pool_size;    /* worker threads / connections (default 2) */
	unsigned queue_max;    /* jobs queued before failing fast (default 10000) */
	double timeout;        /* per-job deadline in seconds (default 10) */
};

/* auth: { ldap: {...} }: the directory (auth method "ldap", and the LDAP
 * vCard source).  Global, overridden key by key per host. */
struct ldap_config {
	struct strlist servers;       /* ldap:// or ldaps:// URIs, tried in order */
	int starttls;                 /* LDAPCFG_STARTTLS_OFF (default) / _REQUIRED */
	char *tls_ca_file;            /* PEM CA bundle; NULL: the system's */
	bool tls_verify;              /* check the server certificate (default true) */
	char *base;                   /* search base (required for method ldap) */
	struct strlist uids;          /* attributes that hold the user name ([uid]) */
	char *filter;                 /* ANDed with the uid match; %u = the user (escaped) */
	char *bind_dn;                /* service account; NULL: anonymous searches */
	char *password;               /* of bind_dn */
	char *password_file;          /* or read from here (first line) */
	int method;                   /* LDAPCFG_METHOD_BIND (default) / _COMPARE */
	double network_timeout;       /* connect (5 s) */
	double timeout;               /* one operation (10 s) */
	bool referrals;               /* follow referrals (default false) */
	int deref;                    /* 0 never (default), 1 searching, 2 finding, 3 always */
	unsigned pool_size;           /* connections = worker threads (2) */
	unsigned queue_max;           /* jobs waiting before failing fast (1000) */
	double retry_interval;        /* a failed server is skipped this long (30 s) */
	bool allow_password_change;   /* RFC 3062 Password Modify (default false) */
	const struct cfg_node *node;  /* the map that set the options last (messages) */
};
enum { LDAPCFG_STARTTLS_OFF, LDAPCFG_STARTTLS_REQUIRED };
enum { LDAPCFG_METHOD_BIND, LDAPCFG_METHOD_COMPARE };

/* auth.external: an operator's program speaking the port protocol. */
struct auth_external_config {
	char *program;                /* absolute path (required with method external) */
	struct strlist args;          /* extra arguments */
	unsigned instances;           /* processes in the pool (default 1) */
	double timeout;               /* per request (default 5 s) */
	unsigned queue_max;           /* requests waiting for an instance (default 100) */
	double cache_ttl;             /* positive answers cached this long (default 0: off) */
	double restart_max;           /* longest wait between restarts (default 30 s) */
};

/* auth.pam: PAM in helper processes. */
struct auth_pam_config {
	char *service;                /* PAM service name (default "parley") */
	char *helper;                 /* helper program (default: the installed parley-pam-helper) */
	unsigned instances;           /* helper processes (default 1) */
	unsigned max_requests;        /* a helper is replaced after this many requests (default 1000) */
	double timeout;               /* per request (default 10 s) */
	bool account_check;           /* user_exists through pam_acct_mgmt (default true) */
};

struct auth_config {
	struct strlist methods;       /* "internal" (default); tried in order */
	unsigned scram_iterations;    /* for new credentials (default 4096) */
	const struct cfg_node *ldap_node;   /* the "ldap" map as written */
	struct ldap_config ldap;
	bool store_plain;             /* internal: keep clear passwords (legacy migrations; off) */
	unsigned max_failures_per_ip;   /* failed logins per IP within failure_window (0: no limit) */
	unsigned max_failures_per_user; /* failed logins per account within failure_window (0: no limit) */
	double failure_window;        /* the counting window (default 10 min) */
	struct auth_external_config external;
	struct auth_pam_config pam;
	const struct cfg_node *external_node, *pam_node;   /* the sub-maps as written */
};

struct listen_config {
	char *address;          /* "::" (default: all IPv4 and IPv6), "127.0.0.1", ... */
	unsigned port;
	int module;             /* LISTEN_C2S (only one for now) */
	bool direct_tls;        /* XEP-0368: TLS from the first byte */
	int starttls;           /* STARTTLS_REQUIRED (default), STARTTLS_OPTIONAL, STARTTLS_OFF */
	unsigned backlog;       /* default 1024 */
	const struct cfg_node *node;
};
enum { LISTEN_C2S };
enum { STARTTLS_REQUIRED, STARTTLS_OPTIONAL, STARTTLS_OFF };

struct tls_config {
	char *certificate;      /* PEM: certificate (and chain) */
	char *key;              /* PEM private key (may be the same file) */
	char *ciphers;          /* TLS 1.2 cipher list (OpenSSL syntax) */
	char *min_version;      /* "1.2" (default) or "1.3" */
};

struct host_config {
	char *name;                         /* prepared domain */
	struct storage_config storage;      /* global storage, overridden per host */
	struct auth_config auth;
	struct tls_config tls;              /* global tls, overridden per host */
	struct strlist admins;              /* bare JIDs */
	/* modules: map of module name -> options map; global "modules" with the
	 * host's "modules" merged over it (a host entry "name: false" disables). */
	struct cfg_node *modules;           /* owned (a merged copy) */
	const struct cfg_node *node;        /* the host's map in the file */
};

struct limits_config {
	size_t max_stanza_size;     /* 256K */
	unsigned max_depth;         /* 64 */
	unsigned max_attrs;         /* 64 */
	size_t max_output;          /* per-stream output queue cap, 1M */
	unsigned max_conn_per_ip;   /* 0: unlimited; default 64 */
	double handshake_timeout;   /* from accept to bound session, 60 s */
	double idle_timeout;        /* no input at all for this long: close (0: never); 600 s */
	double keepalive;           /* send whitespace after this much output silence; 60 s */
	unsigned auth_attempts;     /* failed SASL attempts per stream before closing (3) */
	double auth_failure_delay;  /* seconds before a failure is answered (1.0) */
};

struct parley_config {
	char *file;                 /* path as given */
	char *loglevel;             /* "info" */
	char *log_file;             /* NULL: stderr */
	char *pidfile;
	char *user, *group;         /* drop privileges to these after binding */
	char *control_socket;       /* UNIX socket path for parleyctl */
	unsigned control_mode;      /* 0600 */
	char *control_group;        /* group owner of the socket (optional) */
	struct limits_config limits;
	struct listen_config *listen; size_t nlisten;
	struct host_config *hosts; size_t nhosts;
	struct cfg_node *root;
	struct strlist warnings;    /* renamed or removed keys that were accepted */
};

/* Load and validate the whole file.  On error: -1 and a malloc'd message
 * naming file, line and key. */
int config_load(const char *path, struct parley_config **cfg_r, char **error_r);
void config_free(struct parley_config **cfg);
const struct host_config *config_host(const struct parley_config *cfg, const char *name);
/* Options map of a module for a host, or NULL when the module is not enabled. */
const struct cfg_node *config_module(const struct host_config *host, const char *module,
                                     bool *enabled_r);
/* Write the effective configuration (of one host or all) as YAML-ish text. */
void config_dump(const struct parley_config *cfg, const char *host, struct buf *out);
/* The same; each host's modules are written by modules (the module
 * registry knows their options and defaults) instead of as configured. */
typedef void config_dump_modules_fn(const struct host_config *h, struct buf *out, int indent);
void config_dump_ex(const struct parley_config *cfg, const char *host, struct buf *out,
                    config_dump_modules_fn *modules);

#endif
