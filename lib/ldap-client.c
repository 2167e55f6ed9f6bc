/*
 * The LDAP client shared by the ldap auth method and LDAP vCards: a worker
 * group whose threads each own one connection (libldap's synchronous API,
 * with network and operation timeouts set), the server list with its
 * health, the escaping of values for filters and DNs, and the check that a
 * value read can go into XML.
 *
 * Threads: ldap_client_new/free/submit/cancel and the done callbacks run on
 * the loop thread; job_work and the conn_* functions run on a worker thread
 * and touch only their job (inputs copied in, results written into it), the
 * thread's own struct ldap_conn, and the client's server table under its
 * mutex.  The client's configuration is read-only once the group runs.
 *
 * Invariants:
 * - no value from a user reaches a filter unescaped (ldap_user_filter);
 * - an empty password is refused before any bind: a simple bind with a DN
 *   and no password is an unauthenticated bind, which servers accept;
 * - a connection is bound as the service account (or anonymous) before a
 *   search; a user bind leaves it marked unbound, and the next job binds
 *   as the service again;
 * - a server that cannot be reached or times out is marked down and skipped
 *   for retry_interval; when every server is down, jobs fail at once with
 *   LDAPC_TEMPFAIL; a connection on a later server goes back to an earlier
 *   one when that one's interval has passed;
 * - an outage is LDAPC_TEMPFAIL, never LDAPC_NO_ENTRY or LDAPC_BAD_PASSWORD;
 * - passwords are wiped when jobs are freed and never logged;
 * - a traced find (ldap_client_find_traced, for parleyctl ldap-test) runs
 *   the very search of a login; the trace it keeps (servers tried, the
 *   filter, the entries) lives in the job like every other result.
 */
#include "ldap-client.h"
#include "log.h"
#include "worker.h"

#include <errno.h>
#include <limits.h>
#include <ldap.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* ---- escaping ------------------------------------------------------------------ */

bool ldap_value_text(const struct ldap_value *v, const char *dn, const char *attr)
{
	if (v->len == 0)
		return false;
	if (utf8_xml_valid((const char *)v->data, v->len))
		return true;
	log_info("ldap: %s: a value of %s is left out: not UTF-8 text of XML characters (a control "
	         "character, U+FFFE or U+FFFF, or bytes that are not UTF-8)",
	         dn != NULL ? dn : "?", attr != NULL ? attr : "?");
	return false;
}

char *ldap_filter_escape(const char *value, size_t len)
{
	struct buf b = { 0 };
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)value[i];
		if (ch == '*' || ch == '(' || ch == ')' || ch == '\\' || ch == '\0')
			buf_printf(&b, "\\%02x", ch);
		else
			buf_append(&b, &value[i], 1);
	}
	return buf_steal(&b);
}

char *ldap_dn_escape(const char *value, size_t len)
{
	struct buf b = { 0 };
	for (size_t i = 0; i < len; i++) {
		char ch = value[i];
		if (ch == '\0') {
			buf_append_str(&b, "\\00");
			continue;
		}
		bool special = strchr("\"+,;<>\\=", ch) != NULL || (i == 0 && (ch == '#' || ch == ' ')) ||
		               (i == len - 1 && ch == ' ');
		if (special)
			buf_append(&b, "\\", 1);
		buf_append(&b, &ch, 1);
	}
	return buf_steal(&b);
}

bool ldap_filter_uses_user(const char *filter)
{
	for (const char *p = filter; p != NULL && *p != '\0'; p++) {
		if (p[0] == '%' && p[1] == 'u')
			return true;
		if (p[0] == '%' && p[1] == '%')
			p++;
	}
	return false;
}

int ldap_listing_filter(const char *const *present, const char *filter, const char *more, char **filter_r,
                        char **error_r)
{
	if (ldap_filter_uses_user(filter)) {
		*error_r = xstrdup("auth.ldap.filter uses %u (the user logging in), which cannot "
		                   "select the users of a listing");
		return -1;
	}
	size_t n = 0;
	for (size_t i = 0; present[i] != NULL; i++)
		n++;
	bool extra = filter != NULL && *filter != '\0';
	bool with_more = more != NULL && *more != '\0';
	bool wrap_all = n + (extra ? 1 : 0) + (with_more ? 1 : 0) > 1;
	struct buf b = { 0 };
	if (wrap_all)
		buf_append_str(&b, "(&");
	for (size_t i = 0; i < n; i++)
		buf_printf(&b, "(%s=*)", present[i]);
	if (extra) {
		bool wrap = filter[0] != '(';
		if (wrap)
			buf_append_str(&b, "(");
		for (const char *p = filter; *p != '\0'; p++) {
			buf_append(&b, p, 1);
			if (p[0] == '%' && p[1] == '%')
				p++;
		}
		if (wrap)
			buf_append_str(&b, ")");
	}
	if (with_more)
		buf_append_str(&b, more);
	if (wrap_all)
		buf_append_str(&b, ")");
	*filter_r = buf_steal(&b);
	return 0;
}

char *ldap_user_filter(const struct strlist *uids, const char *filter, const char *user)
{
	char *esc = ldap_filter_escape(user, strlen(user));
	struct buf b = { 0 };
	bool extra = filter != NULL && *filter != '\0';
	if (extra)
		buf_append_str(&b, "(&");
	if (uids->count > 1)
		buf_append_str(&b, "(|");
	for (size_t i = 0; i < uids->count; i++)
		buf_printf(&b, "(%s=%s)", uids->items[i], esc);
	if (uids->count > 1)
		buf_append_str(&b, ")");
	if (extra) {
		bool wrap = filter[0] != '(';
		if (wrap)
			buf_append_str(&b, "(");
		for (const char *p = filter; *p != '\0'; p++) {
			if (p[0] == '%' && p[1] == 'u') {
				buf_append_str(&b, esc);
				p++;
			} else if (p[0] == '%' && p[1] == '%') {
				buf_append_str(&b, "%");
				p++;
			} else {
				buf_append(&b, p, 1);
			}
		}
		if (wrap)
			buf_append_str(&b, ")");
		buf_append_str(&b, ")");
	}
	free(esc);
	return buf_steal(&b);
}

const char *ldap_client_result_str(enum ldap_client_result r)
{
	switch (r) {
	case LDAPC_OK: return "ok";
	case LDAPC_NO_ENTRY: return "no entry";
	case LDAPC_AMBIGUOUS: return "more than one entry";
	case LDAPC_BAD_PASSWORD: return "bad password";
	case LDAPC_TEMPFAIL: return "temporary failure";
	case LDAPC_ERROR: return "error";
	}
	return "unknown";
}

/* ---- the client -------------------------------------------------------------- */

enum server_state { SERVER_UNKNOWN, SERVER_UP, SERVER_DOWN };

struct ldap_server {
	char *uri;
	/* under the client's lock */
	enum server_state state;
	time_t since;      /* of the state */
	time_t down_until; /* skipped until then */
	char last_error[200];
};

struct ldap_client {
	char *name;
	struct ldap_config cfg; /* copies of what the workers read */
	char *service_password; /* from password or password_file */
	struct ldap_server *servers;
	size_t nservers;
	pthread_mutex_t lock;
	struct worker_group *group;
	struct ldap_client *prev, *next; /* every client, for status */
};

static struct ldap_client *clients;

struct ldap_client_req {
	struct ldap_client *c;
	enum ldap_client_op op;
	char *user; /* LDAPC_SEARCH: the filter */
	char *base; /* LDAPC_SEARCH: the base */
	char *password;
	char **attrs_in;    /* NULL-terminated or NULL */
	ldap_client_cb *cb; /* NULL once cancelled */
	void *ctx;
	struct worker_job *wj;
	/* results */
	enum ldap_client_result res;
	char *dn;
	struct ldap_attr *attrs;
	size_t nattrs;
	struct ldap_entry *entries; /* LDAPC_SEARCH, and traced finds */
	size_t nentries;
	int size_limit;  /* LDAPC_SEARCH: asked of the server (0: none) */
	bool partial_ok; /* LDAPC_SEARCH: a size limit reached keeps what came */
	bool truncated;  /* ... and it was reached */
	char error[256];
	/* ldap_client_find_traced: what was sent and to whom */
	bool traced;
	char *filter;     /* as sent */
	char *server;     /* the URI that answered the search */
	struct buf trace; /* servers tried or skipped, one line each */
};

/* A worker thread's connection. */
struct ldap_conn {
	struct ldap_client *c;
	LDAP *ld;
	size_t server; /* index of the server ld talks to */
	bool service_bound;
};

/* A line of a traced job's server trace (worker thread: the job is its own). */
static void job_trace(struct ldap_client_req *job, const char *fmt, ...) ATTR_PRINTF(2, 3);
static void job_trace(struct ldap_client_req *job, const char *fmt, ...)
{
	if (!job->traced)
		return;
	va_list ap;
	va_start(ap, fmt);
	char *line = xvasprintf(fmt, ap);
	va_end(ap);
	buf_append_str(&job->trace, line);
	buf_append_str(&job->trace, "\n");
	free(line);
}

static struct timeval seconds_tv(double s)
{
	struct timeval tv;
	tv.tv_sec = (time_t)s;
	tv.tv_usec = (suseconds_t)((s - (double)tv.tv_sec) * 1e6);
	return tv;
}

static void server_mark(struct ldap_client *c, size_t i, bool up, const char *error)
{
	struct ldap_server *s = &c->servers[i];
	time_t now = time(NULL);
	enum server_state st = up ? SERVER_UP : SERVER_DOWN;
	bool changed;
	pthread_mutex_lock(&c->lock);
	changed = s->state != st;
	if (changed)
		s->since = now;
	s->state = st;
	if (!up) {
		s->down_until = now + (time_t)c->cfg.retry_interval;
		snprintf(s->last_error, sizeof(s->last_error), "%s", error);
	} else {
		s->down_until = 0;
	}
	pthread_mutex_unlock(&c->lock);
	if (changed && up)
		log_notice("ldap %s: %s is up", c->name, s->uri);
	else if (changed)
		log_warning("ldap %s: %s is down (%s); skipped for %.0f s", c->name, s->uri, error,
		            c->cfg.retry_interval);
}

static bool server_skipped(struct ldap_client *c, size_t i, time_t now)
{
	pthread_mutex_lock(&c->lock);
	bool skip = c->servers[i].down_until > now;
	pthread_mutex_unlock(&c->lock);
	return skip;
}

/* An error code that means the connection or the server is gone. */
static bool rc_is_outage(int rc)
{
	return rc == LDAP_SERVER_DOWN || rc == LDAP_TIMEOUT || rc == LDAP_CONNECT_ERROR ||
	       rc == LDAP_UNAVAILABLE || rc == LDAP_BUSY || rc == LDAP_TIMELIMIT_EXCEEDED ||
	       rc == LDAP_LOCAL_ERROR || rc == LDAP_NO_MEMORY;
}

static void conn_close(struct ldap_conn *k)
{
	if (k->ld != NULL)
		ldap_unbind_ext_s(k->ld, NULL, NULL);
	k->ld = NULL;
	k->service_bound = false;
}

/* Bind k as the service account (anonymous without bind_dn). */
static int conn_service_bind(struct ldap_conn *k)
{
	struct ldap_client *c = k->c;
	const char *pw = c->service_password != NULL ? c->service_password : "";
	struct berval cred = { strlen(pw), (char *)pw };
	const char *dn = c->cfg.bind_dn != NULL ? c->cfg.bind_dn : "";
	int rc = ldap_sasl_bind_s(k->ld, dn, LDAP_SASL_SIMPLE, &cred, NULL, NULL, NULL);
	if (rc == LDAP_SUCCESS)
		k->service_bound = true;
	return rc;
}

/* A TLS or bind error of this server, with libldap's diagnostic when it has
 * one. */
static void ld_error(LDAP *ld, int rc, const char *what, char *out, size_t size)
{
	char *diag = NULL;
	if (ld != NULL)
		ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag);
	if (diag != NULL && *diag != '\0')
		snprintf(out, size, "%s: %s (%s)", what, ldap_err2string(rc), diag);
	else
		snprintf(out, size, "%s: %s", what, ldap_err2string(rc));
	if (diag != NULL)
		ldap_memfree(diag);
}

/* Connect k to server i and bind as the service.  0, or the LDAP error with
 * a message in err. */
static int conn_try(struct ldap_conn *k, size_t i, char *err, size_t errsize)
{
	struct ldap_client *c = k->c;
	const struct ldap_config *cfg = &c->cfg;
	LDAP *ld = NULL;
	int rc = ldap_initialize(&ld, c->servers[i].uri);
	if (rc != LDAP_SUCCESS) {
		snprintf(err, errsize, "bad URI: %s", ldap_err2string(rc));
		return rc;
	}
	int version = LDAP_VERSION3;
	struct timeval ntv = seconds_tv(cfg->network_timeout), otv = seconds_tv(cfg->timeout);
	int deref = cfg->deref;
	int require = cfg->tls_verify ? LDAP_OPT_X_TLS_DEMAND : LDAP_OPT_X_TLS_NEVER;
	int zero = 0;
	ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &version);
	ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &ntv);
	ldap_set_option(ld, LDAP_OPT_TIMEOUT, &otv);
	ldap_set_option(ld, LDAP_OPT_REFERRALS, cfg->referrals ? LDAP_OPT_ON : LDAP_OPT_OFF);
	ldap_set_option(ld, LDAP_OPT_DEREF, &deref);
	ldap_set_option(ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &require);
	if (cfg->tls_ca_file != NULL)
		ldap_set_option(ld, LDAP_OPT_X_TLS_CACERTFILE, cfg->tls_ca_file);
	rc = ldap_set_option(ld, LDAP_OPT_X_TLS_NEWCTX, &zero);
	if (rc != LDAP_OPT_SUCCESS) {
		ld_error(ld, rc, "TLS set-up", err, errsize);
		ldap_unbind_ext_s(ld, NULL, NULL);
		return rc == LDAP_SUCCESS ? LDAP_LOCAL_ERROR : rc;
	}
	k->ld = ld;
	k->server = i;
	k->service_bound = false;
	if (cfg->starttls == LDAPCFG_STARTTLS_REQUIRED && !str_has_prefix(c->servers[i].uri, "ldaps://")) {
		rc = ldap_start_tls_s(ld, NULL, NULL);
		if (rc != LDAP_SUCCESS) {
			ld_error(ld, rc,
			         rc == LDAP_CONNECT_ERROR ? "StartTLS (the TLS handshake failed: is the "
			                                    "certificate signed by tls_ca_file and does it "
			                                    "name the host of the URI?)"
			                                  : "StartTLS",
			         err, errsize);
			conn_close(k);
			return rc;
		}
	}
	rc = conn_service_bind(k);
	if (rc != LDAP_SUCCESS) {
		ld_error(ld, rc, c->cfg.bind_dn != NULL ? "service bind" : "anonymous bind", err, errsize);
		conn_close(k);
		return rc;
	}
	return LDAP_SUCCESS;
}

/* Make sure k has a connection bound as the service: keep the one it has,
 * unless an earlier server is back, else try the servers in order.  0, or
 * -1 with job->error set. */
static int conn_ready(struct ldap_conn *k, struct ldap_client_req *job)
{
	struct ldap_client *c = k->c;
	time_t now = time(NULL);
	if (k->ld != NULL && k->server > 0) {
		for (size_t i = 0; i < k->server; i++) {
			if (!server_skipped(c, i, now)) {
				job_trace(job, "%s: connection closed to go back to %s",
				          c->servers[k->server].uri, c->servers[i].uri);
				conn_close(k); /* go back to the preferred server */
				break;
			}
		}
	}
	if (k->ld != NULL && !k->service_bound) {
		int rc = conn_service_bind(k);
		if (rc != LDAP_SUCCESS) {
			char err[200];
			ld_error(k->ld, rc, "service bind", err, sizeof(err));
			job_trace(job, "%s: open connection: %s", c->servers[k->server].uri, err);
			size_t s = k->server;
			conn_close(k);
			if (rc_is_outage(rc) && rc != LDAP_SERVER_DOWN)
				server_mark(c, s, false, err);
		}
	}
	if (k->ld != NULL) {
		job_trace(job, "%s: connection open, bound as %s", c->servers[k->server].uri,
		          c->cfg.bind_dn != NULL ? c->cfg.bind_dn : "anonymous");
		return 0;
	}
	char err[200] = "";
	bool tried = false;
	for (size_t i = 0; i < c->nservers; i++) {
		if (server_skipped(c, i, now)) {
			if (job->traced) {
				pthread_mutex_lock(&c->lock);
				const struct ldap_server *s = &c->servers[i];
				job_trace(job,
				          "%s: skipped: down for %lld s, tried again in %lld s (last error: "
				          "%s)",
				          s->uri, (long long)(now - s->since),
				          (long long)(s->down_until - now),
				          s->last_error[0] != '\0' ? s->last_error : "none");
				pthread_mutex_unlock(&c->lock);
			}
			continue;
		}
		tried = true;
		int rc = conn_try(k, i, err, sizeof(err));
		if (rc == LDAP_SUCCESS) {
			job_trace(job, "%s: connected, bound as %s", c->servers[i].uri,
			          c->cfg.bind_dn != NULL ? c->cfg.bind_dn : "anonymous");
			server_mark(c, i, true, NULL);
			return 0;
		}
		job_trace(job, "%s: %s", c->servers[i].uri, err);
		server_mark(c, i, false, err);
	}
	if (!tried)
		snprintf(job->error, sizeof(job->error), "every LDAP server is marked down");
	else
		snprintf(job->error, sizeof(job->error), "no LDAP server answered; last: %s", err);
	return -1;
}

/* An operation failed with rc: drop the connection if it is gone, mark the
 * server down for a timeout, map rc to a result. */
static enum ldap_client_result op_failed(struct ldap_conn *k, struct ldap_client_req *job, int rc,
                                         const char *what)
{
	ld_error(k->ld, rc, what, job->error, sizeof(job->error));
	if (!rc_is_outage(rc))
		return LDAPC_ERROR;
	size_t s = k->server;
	conn_close(k);
	if (rc != LDAP_SERVER_DOWN)
		server_mark(k->c, s, false, job->error);
	return LDAPC_TEMPFAIL;
}

static void attrs_free(struct ldap_attr *attrs, size_t n);

static void copy_attrs_to(LDAP *ld, LDAPMessage *entry, char **names, struct ldap_attr **attrs_r,
                          size_t *nattrs_r)
{
	size_t n = 0;
	while (names[n] != NULL)
		n++;
	*attrs_r = xcalloc(n > 0 ? n : 1, sizeof(**attrs_r));
	*nattrs_r = 0;
	for (size_t i = 0; i < n; i++) {
		struct berval **vals = ldap_get_values_len(ld, entry, names[i]);
		if (vals == NULL)
			continue;
		struct ldap_attr *a = &(*attrs_r)[(*nattrs_r)++];
		a->name = xstrdup(names[i]);
		size_t count = (size_t)ldap_count_values_len(vals);
		a->values = xcalloc(count > 0 ? count : 1, sizeof(*a->values));
		for (size_t v = 0; v < count; v++) {
			a->values[v].len = vals[v]->bv_len;
			a->values[v].data = xmalloc(vals[v]->bv_len + 1);
			memcpy(a->values[v].data, vals[v]->bv_val, vals[v]->bv_len);
			a->values[v].data[vals[v]->bv_len] = '\0';
			a->count++;
		}
		ldap_value_free_len(vals);
	}
}

static void copy_attrs(LDAP *ld, LDAPMessage *entry, struct ldap_client_req *job)
{
	copy_attrs_to(ld, entry, job->attrs_in, &job->attrs, &job->nattrs);
}

/* LDAPC_SEARCH: every entry under job->base matching job->user (the filter),
 * at most job->size_limit of them when it is set. */
static enum ldap_client_result search_all(struct ldap_conn *k, struct ldap_client_req *job)
{
	struct ldap_client *c = k->c;
	static char *no_attrs[] = { LDAP_NO_ATTRS, NULL };
	char **attrs = job->attrs_in != NULL ? job->attrs_in : no_attrs;
	struct timeval tv = seconds_tv(c->cfg.timeout);
	LDAPMessage *res = NULL;
	int rc = ldap_search_ext_s(k->ld, job->base, LDAP_SCOPE_SUBTREE, job->user, attrs, 0, NULL, NULL, &tv,
	                           job->size_limit, &res);
	enum ldap_client_result out = LDAPC_OK;
	if (rc == LDAP_SIZELIMIT_EXCEEDED && job->partial_ok) {
		job->truncated = true;
		rc = LDAP_SUCCESS;
	}
	if (rc == LDAP_SIZELIMIT_EXCEEDED) {
		snprintf(job->error, sizeof(job->error),
		         "the server's size limit was reached searching "
		         "%s under %s",
		         job->user, job->base);
		out = LDAPC_ERROR;
	} else if (rc != LDAP_SUCCESS) {
		out = op_failed(k, job, rc, "search");
	} else {
		int count = res != NULL ? ldap_count_entries(k->ld, res) : 0;
		job->entries = xcalloc(count > 0 ? (size_t)count : 1, sizeof(*job->entries));
		for (LDAPMessage *e = res != NULL ? ldap_first_entry(k->ld, res) : NULL; e != NULL;
		     e = ldap_next_entry(k->ld, e)) {
			char *dn = ldap_get_dn(k->ld, e);
			if (dn == NULL)
				continue;
			struct ldap_entry *x = &job->entries[job->nentries++];
			x->dn = xstrdup(dn);
			ldap_memfree(dn);
			if (job->attrs_in != NULL)
				copy_attrs_to(k->ld, e, job->attrs_in, &x->attrs, &x->nattrs);
		}
	}
	if (res != NULL)
		ldap_msgfree(res);
	return out;
}

/* A traced find: every entry of res in job->entries, with the attributes
 * asked for. */
static void trace_entries(struct ldap_conn *k, struct ldap_client_req *job, LDAPMessage *res, int count)
{
	for (size_t i = 0; i < job->nentries; i++) {
		free(job->entries[i].dn);
		attrs_free(job->entries[i].attrs, job->entries[i].nattrs);
	}
	free(job->entries);
	job->entries = xcalloc(count > 0 ? (size_t)count : 1, sizeof(*job->entries));
	job->nentries = 0;
	if (res == NULL)
		return;
	for (LDAPMessage *e = ldap_first_entry(k->ld, res); e != NULL && job->nentries < (size_t)count;
	     e = ldap_next_entry(k->ld, e)) {
		char *dn = ldap_get_dn(k->ld, e);
		struct ldap_entry *x = &job->entries[job->nentries++];
		x->dn = xstrdup(dn != NULL ? dn : "");
		if (dn != NULL)
			ldap_memfree(dn);
		if (job->attrs_in != NULL)
			copy_attrs_to(k->ld, e, job->attrs_in, &x->attrs, &x->nattrs);
	}
}

/* Find the user's entry: job->dn (and attributes).  LDAPC_OK or why not. */
static enum ldap_client_result find_user(struct ldap_conn *k, struct ldap_client_req *job)
{
	struct ldap_client *c = k->c;
	char *filter = ldap_user_filter(&c->cfg.uids, c->cfg.filter, job->user);
	static char *no_attrs[] = { LDAP_NO_ATTRS, NULL };
	char **attrs = job->op == LDAPC_FIND && job->attrs_in != NULL ? job->attrs_in : no_attrs;
	struct timeval tv = seconds_tv(c->cfg.timeout);
	LDAPMessage *res = NULL;
	int rc = ldap_search_ext_s(k->ld, c->cfg.base, LDAP_SCOPE_SUBTREE, filter, attrs, 0, NULL, NULL, &tv,
	                           LDAP_CLIENT_FIND_SIZELIMIT, &res);
	enum ldap_client_result out;
	int entries = res != NULL ? ldap_count_entries(k->ld, res) : 0;
	if (job->traced) {
		free(job->filter);
		job->filter = xstrdup(filter);
		xfree(&job->server);
		if (rc_is_outage(rc))
			job_trace(job, "%s: search: %s", c->servers[k->server].uri, ldap_err2string(rc));
		else
			job->server = xstrdup(c->servers[k->server].uri);
		trace_entries(k, job, res, entries);
	}
	if (rc == LDAP_SIZELIMIT_EXCEEDED || entries > 1) {
		snprintf(job->error, sizeof(job->error), "more than one entry under %s matches %s",
		         c->cfg.base, filter);
		out = LDAPC_AMBIGUOUS;
	} else if (rc != LDAP_SUCCESS) {
		out = op_failed(k, job, rc, "search");
	} else if (entries == 0) {
		out = LDAPC_NO_ENTRY;
	} else {
		LDAPMessage *e = ldap_first_entry(k->ld, res);
		char *dn = ldap_get_dn(k->ld, e);
		if (dn == NULL || *dn == '\0') {
			snprintf(job->error, sizeof(job->error), "the entry found has no DN");
			out = LDAPC_ERROR;
		} else {
			job->dn = xstrdup(dn);
			if (job->op == LDAPC_FIND && job->attrs_in != NULL)
				copy_attrs(k->ld, e, job);
			out = LDAPC_OK;
		}
		if (dn != NULL)
			ldap_memfree(dn);
	}
	if (res != NULL)
		ldap_msgfree(res);
	free(filter);
	return out;
}

static enum ldap_client_result check_bind(struct ldap_conn *k, struct ldap_client_req *job)
{
	struct berval cred = { strlen(job->password), job->password };
	k->service_bound = false; /* whatever happens, it is not the service any more */
	int rc = ldap_sasl_bind_s(k->ld, job->dn, LDAP_SASL_SIMPLE, &cred, NULL, NULL, NULL);
	if (rc == LDAP_SUCCESS)
		return LDAPC_OK;
	if (rc == LDAP_INVALID_CREDENTIALS)
		return LDAPC_BAD_PASSWORD;
	return op_failed(k, job, rc, "user bind");
}

static enum ldap_client_result check_compare(struct ldap_conn *k, struct ldap_client_req *job)
{
	struct berval val = { strlen(job->password), job->password };
	int rc = ldap_compare_ext_s(k->ld, job->dn, "userPassword", &val, NULL, NULL);
	if (rc == LDAP_COMPARE_TRUE)
		return LDAPC_OK;
	if (rc == LDAP_COMPARE_FALSE || rc == LDAP_NO_SUCH_ATTRIBUTE)
		return LDAPC_BAD_PASSWORD;
	return op_failed(k, job, rc, "compare userPassword");
}

static enum ldap_client_result change_password(struct ldap_conn *k, struct ldap_client_req *job)
{
	struct berval user = { strlen(job->dn), job->dn };
	struct berval pw = { strlen(job->password), job->password };
	struct berval generated = { 0, NULL }; /* a password the server made up: none asked */
	int rc = ldap_passwd_s(k->ld, &user, NULL, &pw, &generated, NULL, NULL);
	if (generated.bv_val != NULL) {
		explicit_bzero(generated.bv_val, generated.bv_len);
		ber_memfree(generated.bv_val);
	}
	if (rc == LDAP_SUCCESS)
		return LDAPC_OK;
	return op_failed(k, job, rc, "password modify");
}

/* One attempt of the whole job on k's connection. */
static enum ldap_client_result job_attempt(struct ldap_conn *k, struct ldap_client_req *job)
{
	if (conn_ready(k, job) < 0)
		return LDAPC_TEMPFAIL;
	free(job->dn);
	job->dn = NULL;
	if (job->op == LDAPC_SEARCH)
		return search_all(k, job);
	enum ldap_client_result r = find_user(k, job);
	if (r != LDAPC_OK)
		return r;
	switch (job->op) {
	case LDAPC_FIND: return LDAPC_OK;
	case LDAPC_CHECK_BIND: return check_bind(k, job);
	case LDAPC_CHECK_COMPARE: return check_compare(k, job);
	case LDAPC_PASSWD: return change_password(k, job);
	case LDAPC_SEARCH: return LDAPC_ERROR; /* done above */
	}
	return LDAPC_ERROR;
}

static void job_work(void *arg, void *thread_state)
{
	struct ldap_client_req *job = arg;
	struct ldap_conn *k = thread_state;
	bool needs_password = job->op != LDAPC_FIND && job->op != LDAPC_SEARCH;
	if (needs_password && (job->password == NULL || job->password[0] == '\0')) {
		/* A simple bind with an empty password is an unauthenticated
		 * bind: the server says yes.  Never send one. */
		job->res = LDAPC_BAD_PASSWORD;
		snprintf(job->error, sizeof(job->error), "empty password");
		return;
	}
	/* A connection that was open may have been closed by the server (idle
	 * timeout, restart): one more attempt on a fresh connection. */
	bool had_conn = k->ld != NULL;
	job->res = job_attempt(k, job);
	if (job->res == LDAPC_TEMPFAIL && had_conn && k->ld == NULL) {
		job->error[0] = '\0';
		job->res = job_attempt(k, job);
	}
}

static void attrs_free(struct ldap_attr *attrs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		for (size_t v = 0; v < attrs[i].count; v++)
			free(attrs[i].values[v].data);
		free(attrs[i].values);
		free(attrs[i].name);
	}
	free(attrs);
}

static void job_free(struct ldap_client_req *job)
{
	if (job->password != NULL) {
		explicit_bzero(job->password, strlen(job->password));
		free(job->password);
	}
	free(job->user);
	if (job->attrs_in != NULL) {
		for (size_t i = 0; job->attrs_in[i] != NULL; i++)
			free(job->attrs_in[i]);
		free(job->attrs_in);
	}
	attrs_free(job->attrs, job->nattrs);
	for (size_t i = 0; i < job->nentries; i++) {
		free(job->entries[i].dn);
		attrs_free(job->entries[i].attrs, job->entries[i].nattrs);
	}
	free(job->entries);
	free(job->base);
	free(job->dn);
	free(job->filter);
	free(job->server);
	buf_free(&job->trace);
	free(job);
}

static void job_done(void *arg, enum worker_status status)
{
	struct ldap_client_req *job = arg;
	if (status == WORKER_CANCELLED || job->cb == NULL) {
		job_free(job);
		return;
	}
	job->wj = NULL;
	struct ldap_reply r = { 0 };
	if (status == WORKER_EXPIRED) {
		r.res = LDAPC_TEMPFAIL;
		r.error = "the request waited too long for an LDAP connection";
	} else {
		r.res = job->res;
		r.dn = job->dn;
		r.attrs = job->attrs;
		r.nattrs = job->nattrs;
		r.entries = job->entries;
		r.nentries = job->nentries;
		r.truncated = job->truncated;
		r.error = job->error[0] != '\0' ? job->error : NULL;
	}
	if (job->traced) {
		r.base = job->c->cfg.base;
		r.filter = job->filter;
		r.server = job->server;
		r.trace = job->trace.data != NULL ? job->trace.data : "";
		if (status == WORKER_EXPIRED)
			r.trace = "the request waited too long for a connection (the servers are slow or "
			          "the queue is long)\n";
		r.entries = job->entries;
		r.nentries = job->nentries;
	}
	job->cb(&r, job->ctx);
	job_free(job);
}

static void *conn_thread_init(void *group_ctx, unsigned index)
{
	struct ldap_conn *k = xcalloc(1, sizeof(*k));
	k->c = group_ctx;
	return k;
}

static void conn_thread_deinit(void *group_ctx, void *thread_state)
{
	struct ldap_conn *k = thread_state;
	conn_close(k);
	free(k);
}

/* ---- public ----------------------------------------------------------------- */

static char *read_password_file(const char *path, char **error_r)
{
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		*error_r = xasprintf("cannot read password_file %s: %s", path, strerror(errno));
		return NULL;
	}
	char line[1024];
	char *pw = NULL;
	if (fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\r\n")] = '\0';
		pw = xstrdup(line);
	} else {
		*error_r = xasprintf("password_file %s is empty", path);
	}
	explicit_bzero(line, sizeof(line));
	fclose(f);
	return pw;
}

static void strlist_dup(struct strlist *to, const struct strlist *from)
{
	to->count = from->count;
	to->items = xcalloc(from->count > 0 ? from->count : 1, sizeof(*to->items));
	for (size_t i = 0; i < from->count; i++)
		to->items[i] = xstrdup(from->items[i]);
}

static char *strdup_or_null(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

int ldap_client_new(struct ev_loop *loop, const char *name, const struct ldap_config *cfg,
                    struct ldap_client **c_r, char **error_r)
{
	char *service_password = NULL;
	if (cfg->password_file != NULL) {
		service_password = read_password_file(cfg->password_file, error_r);
		if (service_password == NULL)
			return -1;
	} else if (cfg->password != NULL) {
		service_password = xstrdup(cfg->password);
	}
	if (cfg->bind_dn != NULL && (service_password == NULL || *service_password == '\0')) {
		/* An empty password would make the service bind unauthenticated. */
		*error_r = xstrdup("bind_dn is set but its password is empty or missing");
		free(service_password);
		return -1;
	}
	if (cfg->base == NULL) {
		*error_r = xstrdup("ldap.base is not set");
		free(service_password);
		return -1;
	}
	struct ldap_client *c = xcalloc(1, sizeof(*c));
	c->name = xstrdup(name);
	c->cfg = *cfg;
	strlist_dup(&c->cfg.servers, &cfg->servers);
	strlist_dup(&c->cfg.uids, &cfg->uids);
	c->cfg.tls_ca_file = strdup_or_null(cfg->tls_ca_file);
	c->cfg.base = strdup_or_null(cfg->base);
	c->cfg.filter = strdup_or_null(cfg->filter);
	c->cfg.bind_dn = strdup_or_null(cfg->bind_dn);
	c->cfg.password = NULL;
	c->cfg.password_file = NULL;
	c->cfg.node = NULL;
	c->service_password = service_password;
	c->nservers = cfg->servers.count;
	c->servers = xcalloc(c->nservers, sizeof(*c->servers));
	for (size_t i = 0; i < c->nservers; i++) {
		c->servers[i].uri = xstrdup(cfg->servers.items[i]);
		c->servers[i].since = time(NULL);
	}
	pthread_mutex_init(&c->lock, NULL);
	char *gname = xasprintf("ldap %s", name);
	c->group = worker_group_new(loop, gname, cfg->pool_size, cfg->queue_max, conn_thread_init,
	                            conn_thread_deinit, c);
	free(gname);
	c->next = clients;
	if (clients != NULL)
		clients->prev = c;
	clients = c;
	*c_r = c;
	return 0;
}

void ldap_client_free(struct ldap_client **cp)
{
	struct ldap_client *c = *cp;
	if (c == NULL)
		return;
	*cp = NULL;
	worker_group_free(&c->group);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		clients = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	for (size_t i = 0; i < c->nservers; i++)
		free(c->servers[i].uri);
	free(c->servers);
	strlist_free(&c->cfg.servers);
	strlist_free(&c->cfg.uids);
	free(c->cfg.tls_ca_file);
	free(c->cfg.base);
	free(c->cfg.filter);
	free(c->cfg.bind_dn);
	if (c->service_password != NULL) {
		explicit_bzero(c->service_password, strlen(c->service_password));
		free(c->service_password);
	}
	pthread_mutex_destroy(&c->lock);
	free(c->name);
	free(c);
}

/* A job for op with its inputs copied (base: LDAPC_SEARCH only). */
static struct ldap_client_req *job_new(struct ldap_client *c, enum ldap_client_op op, const char *user,
                                       const char *base, const char *password, const char *const *attrs,
                                       ldap_client_cb *cb, void *ctx)
{
	struct ldap_client_req *job = xcalloc(1, sizeof(*job));
	job->c = c;
	job->op = op;
	job->user = xstrdup(user);
	job->base = base != NULL ? xstrdup(base) : NULL;
	job->password = password != NULL ? xstrdup(password) : NULL;
	if (attrs != NULL) {
		size_t n = 0;
		while (attrs[n] != NULL)
			n++;
		job->attrs_in = xcalloc(n + 1, sizeof(*job->attrs_in));
		for (size_t i = 0; i < n; i++)
			job->attrs_in[i] = xstrdup(attrs[i]);
	}
	job->cb = cb;
	job->ctx = ctx;
	return job;
}

/* Queue job (complete: a worker may take it at once); NULL and job freed
 * when the queue is full. */
static struct ldap_client_req *job_queue(struct ldap_client *c, struct ldap_client_req *job)
{
	job->wj = worker_submit(c->group, hash_str(job->user), job_work, job_done, job,
	                        c->cfg.timeout + c->cfg.network_timeout);
	if (job->wj == NULL) {
		log_warning("ldap %s: the request queue is full (%u waiting); %s%s gets a temporary "
		            "failure",
		            c->name, worker_group_pending(c->group),
		            job->op == LDAPC_SEARCH ? "the search " : "", job->user);
		job_free(job);
		return NULL;
	}
	return job;
}

struct ldap_client_req *ldap_client_submit(struct ldap_client *c, enum ldap_client_op op, const char *user,
                                           const char *password, const char *const *attrs, ldap_client_cb *cb,
                                           void *ctx)
{
	return job_queue(c, job_new(c, op, user, NULL, password, attrs, cb, ctx));
}

struct ldap_client_req *ldap_client_search(struct ldap_client *c, const char *base, const char *filter,
                                           const char *const *attrs, ldap_client_cb *cb, void *ctx)
{
	return job_queue(
	        c, job_new(c, LDAPC_SEARCH, filter, base != NULL ? base : c->cfg.base, NULL, attrs, cb, ctx));
}

struct ldap_client_req *ldap_client_find_traced(struct ldap_client *c, const char *user,
                                                const char *const *attrs, ldap_client_cb *cb, void *ctx)
{
	struct ldap_client_req *job = job_new(c, LDAPC_FIND, user, NULL, NULL, attrs, cb, ctx);
	job->traced = true;
	job->filter = ldap_user_filter(&c->cfg.uids, c->cfg.filter, user); /* sent or not */
	return job_queue(c, job);
}

struct ldap_client_req *ldap_client_search_limit(struct ldap_client *c, const char *base, const char *filter,
                                                 const char *const *attrs, unsigned size_limit,
                                                 ldap_client_cb *cb, void *ctx)
{
	struct ldap_client_req *job =
	        job_new(c, LDAPC_SEARCH, filter, base != NULL ? base : c->cfg.base, NULL, attrs, cb, ctx);
	job->size_limit = size_limit > INT_MAX ? INT_MAX : (int)size_limit;
	job->partial_ok = true;
	return job_queue(c, job);
}

const char *ldap_client_base(const struct ldap_client *c)
{
	return c->cfg.base;
}

const char *ldap_client_filter(const struct ldap_client *c)
{
	return c->cfg.filter;
}

const struct strlist *ldap_client_uids(const struct ldap_client *c)
{
	return &c->cfg.uids;
}

void ldap_client_cancel(struct ldap_client_req *r)
{
	if (r == NULL)
		return;
	r->cb = NULL;
	if (r->wj != NULL)
		worker_cancel(r->wj); /* job_done frees it */
}

void ldap_client_status_all(struct buf *out)
{
	time_t now = time(NULL);
	for (struct ldap_client *c = clients; c != NULL; c = c->next) {
		buf_printf(out, "ldap %s: %u requests pending\n", c->name, worker_group_pending(c->group));
		pthread_mutex_lock(&c->lock);
		for (size_t i = 0; i < c->nservers; i++) {
			const struct ldap_server *s = &c->servers[i];
			const char *state = s->state == SERVER_UP     ? "up"
			                    : s->state == SERVER_DOWN ? "down"
			                                              : "not tried yet";
			buf_printf(out, "  %s: %s for %lld s", s->uri, state, (long long)(now - s->since));
			if (s->state == SERVER_DOWN && s->down_until > now)
				buf_printf(out, ", retried in %lld s", (long long)(s->down_until - now));
			if (s->last_error[0] != '\0')
				buf_printf(out, ", last error: %s", s->last_error);
			buf_append_str(out, "\n");
		}
		pthread_mutex_unlock(&c->lock);
	}
}
