/*
 * Web administration at /admin/ of the http listeners (web-admin.h).
 * Loop thread.
 *
 * Every page is rendered here from the output of commands of the command
 * table, run through ctl_run exactly as parleyctl and the HTTP API run
 * them: a page is a job of one or more command lines run one after the
 * other, then rendered.  Changes are POSTs to /admin/run naming a command
 * of a short list of those the pages offer (web_commands) and its
 * arguments; nothing here implements an administrative action itself.
 *
 * Who: the admins (hosts.HOST.admins) of the hosts in admin_web.hosts (all
 * hosts when empty), logging in with their JID and password through their
 * host's auth chain.  Failed logins count in the same per-IP and per-user
 * counters as c2s logins (auth_limited / auth_note_failure), and a
 * temporary backend failure is answered 503, not counted.
 *
 * Security: a server-side session per login (a random id in a cookie that
 * is HttpOnly, SameSite=Strict, Secure over TLS, scoped to /admin/) that
 * ends after admin_web.session_timeout without a request or at logout,
 * and as soon as its admin no longer is one (every request asks the
 * host's current admins; removing the account ends its sessions at once);
 * every form carries the session's CSRF token (the login form a token
 * bound to a cookie of its own), and a POST without the right one is
 * refused with 403; GETs change nothing.  Every page is sent with a
 * Content-Security-Policy of default-src 'self' (no inline script or
 * style), no caching, and frame-ancestors 'none'.
 *
 * Invariants: one struct web_job per outstanding request; its reply is
 * sent exactly once (when its last command or its password check is
 * done), or its work is cancelled when the connection goes away first
 * (http_reply_on_cancel) or the web admin stops.  A password is never
 * logged and is wiped from the job once checked.
 *
 * Translations: every string a page shows is in the table strings[] below,
 * marked N_() for xgettext (po/parley.pot), and goes through the message
 * catalogues of lib/i18n.h: each request picks its language from its
 * Accept-Language (English when none of its languages has a catalogue),
 * and T() translates into the language of the request being answered
 * (web_cat, set before a page is rendered).  What the commands answer
 * (their messages and output) is shown as they give it, untranslated.
 */
#include "web-admin.h"
#include "ctl.h"
#include "server/hooks.h"
#include "server/host.h"
#include "server/metrics.h"
#include "lib/i18n.h"
#include "lib/jid.h"
#include "lib/latency.h"
#include "lib/log.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>
#include <strings.h>

#ifndef PKGDATADIR
#define PKGDATADIR "/usr/local/share/parley"
#endif

#define MAX_SESSIONS 256
#define USERS_PAGE 100    /* accounts on a page of the users list */
#define OFFLINE_SHOWN 100 /* offline messages a user's page shows */
#define MAX_STEPS 16      /* command lines a page runs */
#define MAX_ARGS 6        /* arguments a form may give a command */
#define MAX_WORDS 10      /* words of a command line a page runs */
#define TOKEN_HEX 32      /* characters of a session id or a CSRF token */
#define COOKIE "parley_admin"
#define LOGIN_COOKIE "parley_admin_login"

/* ---- the strings of the pages (one table, for translations) ---------------------- */

enum web_str {
	S_TITLE,
	S_LOGIN,
	S_JID,
	S_PASSWORD,
	S_SIGN_IN,
	S_LOGOUT,
	S_DASHBOARD,
	S_USERS,
	S_HOSTS,
	S_SRG,
	S_ANNOUNCE,
	S_ROOMS,
	S_HOST,
	S_REGISTERED,
	S_ONLINE,
	S_STATUS,
	S_S2S,
	S_NO_S2S,
	S_SEARCH,
	S_CREATE_USER,
	S_USER,
	S_SESSIONS,
	S_ACTIONS,
	S_KICK,
	S_DELETE,
	S_SET_PASSWORD,
	S_NEW_PASSWORD,
	S_CREATE,
	S_ROSTER,
	S_OFFLINE,
	S_CONTACT,
	S_NAME,
	S_SUBSCRIPTION,
	S_GROUPS,
	S_PENDING,
	S_NO_ROSTER,
	S_NO_OFFLINE,
	S_FROM,
	S_STORED,
	S_BODY,
	S_MORE_OFFLINE,
	S_NEXT_PAGE,
	S_FIRST_PAGE,
	S_UNKNOWN,
	S_GROUP,
	S_MEMBER,
	S_ADD_MEMBER,
	S_DEL_MEMBER,
	S_DELETE_GROUP,
	S_TEXT,
	S_SEND_ONLINE,
	S_SEND_ALL,
	S_SEND,
	S_MOTD,
	S_SET_MOTD,
	S_DELETE_MOTD,
	S_ROOM,
	S_OWNER,
	S_DESTROY,
	S_DONE,
	S_FAILED,
	S_BACK,
	S_BAD_LOGIN,
	S_NOT_ADMIN,
	S_LIMITED,
	S_TEMPFAIL,
	S_BAD_CSRF,
	S_NOT_ALLOWED_IP,
	S_NOT_FOUND,
	S_STOPPING,
	S_EXPIRED,
	S_SHOW,
	S_BAD_FORM,
	S_COUNT
};

static const char *const strings[S_COUNT] = {
	[S_TITLE] = N_("Parley administration"),
	[S_LOGIN] = N_("Log in"),
	[S_JID] = N_("Admin JID"),
	[S_PASSWORD] = N_("Password"),
	[S_SIGN_IN] = N_("Log in"),
	[S_LOGOUT] = N_("Log out"),
	[S_DASHBOARD] = N_("Dashboard"),
	[S_USERS] = N_("Users"),
	[S_HOSTS] = N_("Virtual hosts"),
	[S_SRG] = N_("Shared roster groups"),
	[S_ANNOUNCE] = N_("Announcements"),
	[S_ROOMS] = N_("Rooms"),
	[S_HOST] = N_("Host"),
	[S_REGISTERED] = N_("Registered"),
	[S_ONLINE] = N_("Online"),
	[S_STATUS] = N_("Server status"),
	[S_S2S] = N_("Server-to-server links"),
	[S_NO_S2S] = N_("No server-to-server link."),
	[S_SEARCH] = N_("Search"),
	[S_CREATE_USER] = N_("Create a user"),
	[S_USER] = N_("User"),
	[S_SESSIONS] = N_("Sessions"),
	[S_ACTIONS] = N_("Actions"),
	[S_KICK] = N_("Kick"),
	[S_DELETE] = N_("Delete"),
	[S_SET_PASSWORD] = N_("Set password"),
	[S_NEW_PASSWORD] = N_("New password"),
	[S_CREATE] = N_("Create"),
	[S_ROSTER] = N_("Roster"),
	[S_OFFLINE] = N_("Offline messages"),
	[S_CONTACT] = N_("Contact"),
	[S_NAME] = N_("Name"),
	[S_SUBSCRIPTION] = N_("Subscription"),
	[S_GROUPS] = N_("Groups"),
	[S_PENDING] = N_("Pending request"),
	[S_NO_ROSTER] = N_("The roster is empty."),
	[S_NO_OFFLINE] = N_("No message is waiting."),
	[S_FROM] = N_("From"),
	[S_STORED] = N_("Stored"),
	[S_BODY] = N_("Body"),
	[S_MORE_OFFLINE] = N_("More messages are waiting than are shown:"),
	[S_NEXT_PAGE] = N_("Next page"),
	[S_FIRST_PAGE] = N_("First page"),
	[S_UNKNOWN] = N_("unknown"),
	[S_GROUP] = N_("Group"),
	[S_MEMBER] = N_("Member (user@host)"),
	[S_ADD_MEMBER] = N_("Add member"),
	[S_DEL_MEMBER] = N_("Remove member"),
	[S_DELETE_GROUP] = N_("Delete group"),
	[S_TEXT] = N_("Text"),
	[S_SEND_ONLINE] = N_("to online users"),
	[S_SEND_ALL] = N_("to all users"),
	[S_SEND] = N_("Send"),
	[S_MOTD] = N_("Message of the day"),
	[S_SET_MOTD] = N_("Set"),
	[S_DELETE_MOTD] = N_("Delete the message of the day"),
	[S_ROOM] = N_("Room (room@service)"),
	[S_OWNER] = N_("Owner JID (optional)"),
	[S_DESTROY] = N_("Destroy"),
	[S_DONE] = N_("Done"),
	[S_FAILED] = N_("Failed"),
	[S_BACK] = N_("Back"),
	[S_BAD_LOGIN] = N_("Wrong JID or password."),
	[S_NOT_ADMIN] = N_("This account may not administer the server."),
	[S_LIMITED] = N_("Too many failed logins; try again later."),
	[S_TEMPFAIL] = N_("The authentication backend cannot answer now; try again later."),
	[S_BAD_CSRF] = N_("The form's security token is missing or wrong; reload the page and try again."),
	[S_NOT_ALLOWED_IP] = N_("This address may not use the web administration."),
	[S_NOT_FOUND] = N_("No such page."),
	[S_STOPPING] = N_("The server is stopping."),
	[S_EXPIRED] = N_("Your session has ended; log in again."),
	[S_SHOW] = N_("Show"),
	[S_BAD_FORM] = N_("The form asks for something these pages do not offer."),
};

/* The catalogue of the request being answered (NULL: English). */
static const struct i18n_catalog *web_cat;

static const char *T(enum web_str s)
{
	return i18n_tr(web_cat, strings[s]);
}

/* ---- state ------------------------------------------------------------------------ */

struct web_session {
	char id[TOKEN_HEX + 1], csrf[TOKEN_HEX + 1];
	char *jid;
	uint64_t host; /* the serial of jid's host, when it logged in */
	double last_used;
	struct web_session *next;
};

struct web_job;
typedef void web_render_fn(struct web_job *job, struct buf *out);

struct web_job {
	struct http_reply *reply;
	const struct i18n_catalog *cat; /* the request's language */
	struct ctl_call *call;
	struct auth_req *areq;
	struct host *host; /* login: the admin's host */
	char *jid, *node, *password, *ip;
	bool tls;
	char csrf[TOKEN_HEX + 1]; /* the session's, for the forms of the page */
	char *arg;                /* the page's parameter (host, search) */
	char *query;              /* users page: the search text */
	char *back;               /* run: the page to go back to */
	web_render_fn *render;
	int nsteps, step;
	char **argv[MAX_STEPS];
	int argc[MAX_STEPS];
	int code[MAX_STEPS];
	char *message[MAX_STEPS], *body[MAX_STEPS];
	struct web_job *prev, *next;
};

static struct ev_loop *web_loop;
static const struct admin_web_config *web_cfg;
static bool web_mounted;
static struct web_session *sessions;
static struct web_job *jobs;
static char *css;
static size_t css_len;

/* ---- small helpers ---------------------------------------------------------------- */

static void html(struct buf *b, const char *s)
{
	for (; s != NULL && *s != '\0'; s++) {
		switch (*s) {
		case '&': buf_append_str(b, "&amp;"); break;
		case '<': buf_append_str(b, "&lt;"); break;
		case '>': buf_append_str(b, "&gt;"); break;
		case '"': buf_append_str(b, "&quot;"); break;
		case '\'': buf_append_str(b, "&#39;"); break;
		default: buf_append(b, s, 1);
		}
	}
}

/* Percent-encode s for a query string. */
static void urlenc(struct buf *b, const char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
		    c == '.' || c == '_' || c == '~')
			buf_append(b, s, 1);
		else
			buf_printf(b, "%%%02X", c);
	}
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The value of name in an application/x-www-form-urlencoded text (a body
 * or a query), decoded; NULL when absent, badly encoded or holding a NUL. */
static char *form_get(const char *text, size_t len, const char *name)
{
	size_t nlen = strlen(name);
	const char *p = text, *end = text + len;
	while (p != NULL && p < end) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		const char *fend = amp != NULL ? amp : end;
		if ((size_t)(fend - p) > nlen && memcmp(p, name, nlen) == 0 && p[nlen] == '=') {
			const char *v = p + nlen + 1;
			char *out = xmalloc((size_t)(fend - v) + 1);
			size_t o = 0;
			for (; v < fend; v++) {
				if (*v == '+') {
					out[o++] = ' ';
				} else if (*v == '%') {
					int hi = v + 2 < fend ? hexval(v[1]) : -1;
					int lo = v + 2 < fend ? hexval(v[2]) : -1;
					if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
						free(out);
						return NULL;
					}
					out[o++] = (char)(hi * 16 + lo);
					v += 2;
				} else {
					out[o++] = *v;
				}
			}
			out[o] = '\0';
			return out;
		}
		p = amp != NULL ? amp + 1 : NULL;
	}
	return NULL;
}

static char *query_get(const struct http_request *rq, const char *name)
{
	return rq->query != NULL ? form_get(rq->query, strlen(rq->query), name) : NULL;
}

static char *body_get(const struct http_request *rq, const char *name)
{
	return rq->body != NULL ? form_get(rq->body, rq->body_len, name) : NULL;
}

/* The value of cookie name in the request, copied into out (at most
 * outlen-1 characters); false when absent or too long. */
static bool cookie_get(const struct http_request *rq, const char *name, char *out, size_t outlen)
{
	const char *h = http_request_header(rq, "Cookie");
	size_t nlen = strlen(name);
	while (h != NULL && *h != '\0') {
		while (*h == ' ' || *h == ';' || *h == ',')
			h++;
		size_t len = strcspn(h, ";,");
		if (len > nlen && memcmp(h, name, nlen) == 0 && h[nlen] == '=') {
			size_t vlen = len - nlen - 1;
			if (vlen >= outlen)
				return false;
			memcpy(out, h + nlen + 1, vlen);
			out[vlen] = '\0';
			return true;
		}
		h += len;
	}
	return false;
}

static bool token_equal(const char *a, const char *b)
{
	if (a == NULL || b == NULL || strlen(a) != TOKEN_HEX || strlen(b) != TOKEN_HEX)
		return false;
	return CRYPTO_memcmp(a, b, TOKEN_HEX) == 0;
}

static void new_token(char out[TOKEN_HEX + 1])
{
	unsigned char raw[TOKEN_HEX / 2];
	random_bytes(raw, sizeof(raw));
	char *hex = hex_encode(raw, sizeof(raw));
	memcpy(out, hex, TOKEN_HEX);
	out[TOKEN_HEX] = '\0';
	free(hex);
}

/* Whether the admins of host name may log in. */
static bool host_allowed(const char *name)
{
	return web_cfg->hosts.count == 0 || strlist_contains(&web_cfg->hosts, name);
}

/* ---- sessions --------------------------------------------------------------------- */

static void session_free(struct web_session *s)
{
	explicit_bzero(s->id, sizeof(s->id));
	explicit_bzero(s->csrf, sizeof(s->csrf));
	free(s->jid);
	free(s);
}

/* Drop the expired sessions (and the oldest beyond MAX_SESSIONS). */
static void sessions_expire(void)
{
	double now = ev_now(web_loop);
	size_t n = 0;
	for (struct web_session **p = &sessions; *p != NULL;) {
		struct web_session *s = *p;
		if (now - s->last_used > web_cfg->session_timeout || n >= MAX_SESSIONS) {
			log_info("web admin: session of %s ended (%s)", s->jid,
			         n >= MAX_SESSIONS ? "too many sessions" : "idle");
			*p = s->next;
			session_free(s);
		} else {
			n++;
			p = &s->next;
		}
	}
}

static void session_end(struct web_session *s);

/* Whether the admin of s still is one (its host served and open to the
 * web admin, its JID among the host's admins, which change at a reload):
 * asked at every request of the session. */
static bool session_authorised(const struct web_session *s)
{
	struct jid j = { 0 };
	struct host *h = jid_parse(s->jid, &j, NULL) == 0 ? host_find(j.domain) : NULL;
	bool ok = h != NULL && h->serial == s->host && host_allowed(h->name) && host_is_admin(h, &j);
	jid_clear(&j);
	return ok;
}

/* The live session of the request's cookie, its idle time restarted; a
 * session whose admin no longer is one ends here. */
static struct web_session *session_of(const struct http_request *rq)
{
	char id[TOKEN_HEX + 1];
	if (!cookie_get(rq, COOKIE, id, sizeof(id)))
		return NULL;
	sessions_expire();
	for (struct web_session *s = sessions; s != NULL; s = s->next)
		if (token_equal(s->id, id)) {
			if (!session_authorised(s)) {
				/* its host may be gone: named by the JID */
				log_notice("web admin: session of %s ended (no longer an admin of %s)",
				           s->jid, strchr(s->jid, '@') + 1);
				session_end(s);
				return NULL;
			}
			s->last_used = ev_now(web_loop);
			return s;
		}
	return NULL;
}

/* An account is removed (parleyctl unregister, in-band, ad-hoc): the
 * sessions of its admin end with it, even while the host still lists it. */
static enum hook_result sessions_remove_user(struct host *h, void *args, void *ctx)
{
	(void)ctx;
	const struct hook_user *hu = args;
	char *jid = xasprintf("%s@%s", hu->user, h->name);
	for (struct web_session **p = &sessions; *p != NULL;) {
		struct web_session *s = *p;
		if (s->host == h->serial && strcmp(s->jid, jid) == 0) {
			log_notice("web admin: session of %s ended (account removed)", s->jid);
			*p = s->next;
			session_free(s);
		} else {
			p = &s->next;
		}
	}
	free(jid);
	return HOOK_CONTINUE;
}

static struct web_session *session_new(const char *jid, struct host *h)
{
	sessions_expire();
	struct web_session *s = xcalloc(1, sizeof(*s));
	new_token(s->id);
	new_token(s->csrf);
	s->jid = xstrdup(jid);
	s->host = h->serial;
	/* once per host: a host added by a reload gets it at its first login */
	hook_remove(h, HOOK_REMOVE_USER, sessions_remove_user, NULL);
	hook_add(h, HOOK_REMOVE_USER, 90, sessions_remove_user, NULL);
	s->last_used = ev_now(web_loop);
	s->next = sessions; /* newest first: the oldest go when there are too many */
	sessions = s;
	return s;
}

static void session_end(struct web_session *s)
{
	for (struct web_session **p = &sessions; *p != NULL; p = &(*p)->next)
		if (*p == s) {
			*p = s->next;
			session_free(s);
			return;
		}
}

/* ---- replies ---------------------------------------------------------------------- */

static void security_headers(struct http_reply *r)
{
	http_reply_header(r, "Content-Security-Policy",
	                  "default-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'");
	http_reply_header(r, "X-Content-Type-Options", "nosniff");
	http_reply_header(r, "Referrer-Policy", "same-origin");
	http_reply_header(r, "Cache-Control", "no-store");
	http_reply_header(r, "Vary", "Accept-Language");
	http_reply_header(r, "Content-Language", i18n_lang(web_cat));
}

static void page_start(struct buf *b, const char *title, const char *csrf)
{
	buf_printf(b,
	           "<!DOCTYPE html>\n<html lang=\"%s\"><head><meta charset=\"utf-8\">"
	           "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
	           "<link rel=\"stylesheet\" href=\"/admin/static/admin.css\"><title>",
	           i18n_lang(web_cat));
	html(b, title);
	buf_append_str(b, " - ");
	html(b, T(S_TITLE));
	buf_append_str(b, "</title></head><body><header><h1>");
	html(b, T(S_TITLE));
	buf_append_str(b, "</h1>");
	if (csrf != NULL) {
		static const struct {
			const char *path;
			enum web_str label;
		} nav[] = {
			{ "/admin/", S_DASHBOARD },        { "/admin/users", S_USERS },
			{ "/admin/hosts", S_HOSTS },       { "/admin/srg", S_SRG },
			{ "/admin/announce", S_ANNOUNCE }, { "/admin/muc", S_ROOMS },
		};
		buf_append_str(b, "<nav>");
		for (size_t i = 0; i < sizeof(nav) / sizeof(nav[0]); i++) {
			buf_printf(b, "<a href=\"%s\">", nav[i].path);
			html(b, T(nav[i].label));
			buf_append_str(b, "</a>");
		}
		buf_printf(b,
		           "<form method=\"post\" action=\"/admin/logout\" class=\"inline\">"
		           "<input type=\"hidden\" name=\"csrf\" value=\"%s\"><button id=\"logout\">",
		           csrf);
		html(b, T(S_LOGOUT));
		buf_append_str(b, "</button></form></nav>");
	}
	buf_append_str(b, "</header><main><h2>");
	html(b, title);
	buf_append_str(b, "</h2>\n");
}

static void page_end(struct buf *b)
{
	buf_append_str(b, "</main></body></html>\n");
}

static void send_page(struct http_reply *r, int status, struct buf *b)
{
	security_headers(r);
	http_reply_send(r, status, "text/html; charset=utf-8", b->data != NULL ? b->data : "", b->len);
	buf_free(b);
}

static void send_message_page(struct http_reply *r, int status, enum web_str title, enum web_str text,
                              const char *csrf)
{
	struct buf b = { 0 };
	page_start(&b, T(title), csrf);
	buf_append_str(&b, "<p class=\"error\" id=\"message\">");
	html(&b, T(text));
	buf_append_str(&b, "</p><p><a href=\"/admin/\">");
	html(&b, T(S_BACK));
	buf_append_str(&b, "</a></p>");
	page_end(&b);
	send_page(r, status, &b);
}

static void send_redirect(struct http_reply *r, const char *to)
{
	security_headers(r);
	http_reply_header(r, "Location", to);
	http_reply_send(r, 303, "text/plain; charset=utf-8", "", 0);
}

static void set_cookie(struct http_reply *r, const struct http_request *rq, const char *name,
                       const char *value, bool clear)
{
	char *c = xasprintf("%s=%s; Path=/admin/; HttpOnly; SameSite=Strict%s%s", name, value,
	                    rq->tls ? "; Secure" : "", clear ? "; Max-Age=0" : "");
	http_reply_header(r, "Set-Cookie", c);
	free(c);
}

/* The login page, with a fresh login token bound to a cookie. */
static void send_login(struct http_reply *r, const struct http_request *rq, int status, int error)
{
	char tok[TOKEN_HEX + 1];
	new_token(tok);
	set_cookie(r, rq, LOGIN_COOKIE, tok, false);
	struct buf b = { 0 };
	page_start(&b, T(S_LOGIN), NULL);
	if (error >= 0) {
		buf_append_str(&b, "<p class=\"error\" id=\"message\">");
		html(&b, T((enum web_str)error));
		buf_append_str(&b, "</p>");
	}
	buf_printf(&b,
	           "<form method=\"post\" action=\"/admin/login\" class=\"box\">"
	           "<input type=\"hidden\" name=\"csrf\" value=\"%s\">"
	           "<label>%s<input name=\"jid\" id=\"jid\" autocomplete=\"username\" required></label>"
	           "<label>%s<input name=\"password\" id=\"password\" type=\"password\" "
	           "autocomplete=\"current-password\" required></label>"
	           "<button id=\"login\">%s</button></form>",
	           tok, T(S_JID), T(S_PASSWORD), T(S_SIGN_IN));
	page_end(&b);
	send_page(r, status, &b);
}

/* ---- jobs: command lines run one after the other, then a page ---------------------- */

static void job_free(struct web_job *job)
{
	if (job->prev != NULL)
		job->prev->next = job->next;
	else if (jobs == job)
		jobs = job->next;
	if (job->next != NULL)
		job->next->prev = job->prev;
	for (int i = 0; i < job->nsteps; i++) {
		for (int k = 0; k < job->argc[i]; k++) {
			/* register and passwd carry a password among their arguments */
			explicit_bzero(job->argv[i][k], strlen(job->argv[i][k]));
			free(job->argv[i][k]);
		}
		free(job->argv[i]);
		free(job->message[i]);
		free(job->body[i]);
	}
	if (job->password != NULL) {
		explicit_bzero(job->password, strlen(job->password));
		free(job->password);
	}
	free(job->jid);
	free(job->node);
	free(job->ip);
	free(job->arg);
	free(job->query);
	free(job->back);
	free(job);
}

static struct web_job *job_new(struct http_reply *r, const struct http_request *rq)
{
	struct web_job *job = xcalloc(1, sizeof(*job));
	job->reply = r;
	job->cat = i18n_pick(http_request_header(rq, "Accept-Language"));
	job->ip = xstrdup(rq->remote_ip);
	job->tls = rq->tls;
	job->next = jobs;
	if (jobs != NULL)
		jobs->prev = job;
	jobs = job;
	return job;
}

/* Add a command line (NULL-terminated words) to run. */
static void job_add(struct web_job *job, ...)
{
	if (job->nsteps == MAX_STEPS)
		return;
	va_list ap;
	char *words[MAX_WORDS + 1];
	int n = 0;
	va_start(ap, job);
	for (const char *w; (w = va_arg(ap, const char *)) != NULL && n < MAX_WORDS;)
		words[n++] = xstrdup(w);
	va_end(ap);
	int i = job->nsteps++;
	job->argv[i] = xcalloc((size_t)n + 1, sizeof(char *));
	memcpy(job->argv[i], words, (size_t)n * sizeof(char *));
	job->argc[i] = n;
}

static void job_add_argv(struct web_job *job, int argc, char **argv)
{
	if (job->nsteps == MAX_STEPS)
		return;
	int i = job->nsteps++;
	job->argv[i] = xcalloc((size_t)argc + 1, sizeof(char *));
	for (int k = 0; k < argc; k++)
		job->argv[i][k] = xstrdup(argv[k]);
	job->argc[i] = argc;
}

static void job_next(struct web_job *job);

static void job_step_done(void *ctx, int code, const char *message, const char *body)
{
	latency_begin(LATENCY_CONTROL, "web-admin");
	struct web_job *job = ctx;
	job->call = NULL;
	job->code[job->step] = code;
	job->message[job->step] = message != NULL ? xstrdup(message) : NULL;
	job->body[job->step] = xstrdup(body);
	job->step++;
	job_next(job);
	latency_end();
}

static void job_cancelled(void *ctx)
{
	struct web_job *job = ctx;
	if (job->call != NULL)
		ctl_call_cancel(job->call);
	if (job->areq != NULL)
		auth_cancel(job->areq);
	job->reply = NULL;
	job_free(job);
}

/* Run the next command line, or render the page when none is left. */
static void job_next(struct web_job *job)
{
	if (job->step < job->nsteps) {
		job->call = ctl_run(web_loop, job->argc[job->step], job->argv[job->step], job_step_done, job);
		return;
	}
	struct buf b = { 0 };
	web_cat = job->cat;
	job->render(job, &b);
	struct http_reply *r = job->reply;
	job_free(job);
	send_page(r, 200, &b);
}

static void job_start(struct web_job *job)
{
	http_reply_on_cancel(job->reply, job_cancelled, job);
	job_next(job);
}

/* The outcome of step i as a block: its message, and its output. */
static void render_step(struct buf *b, struct web_job *job, int i)
{
	if (job->code[i] != 0 || job->message[i] != NULL) {
		buf_printf(b, "<p class=\"%s\">", job->code[i] == 0 ? "ok" : "error");
		html(b, job->message[i] != NULL ? job->message[i] : T(job->code[i] == 0 ? S_DONE : S_FAILED));
		buf_append_str(b, "</p>");
	}
	if (job->body[i] != NULL && job->body[i][0] != '\0') {
		buf_append_str(b, "<pre>");
		html(b, job->body[i]);
		buf_append_str(b, "</pre>");
	}
}

/* The JSON output of step i when it succeeded, else NULL (a new reference). */
static json_t *step_json(struct web_job *job, int i)
{
	if (i >= job->nsteps || job->code[i] != 0 || job->body[i] == NULL)
		return NULL;
	return json_loads(job->body[i], JSON_DECODE_ANY, NULL);
}

/* The accounts of a registered-users --json answer ({"users": [...]}). */
static json_t *users_of(json_t *reg)
{
	json_t *users = json_object_get(reg, "users");
	return json_is_array(users) ? users : NULL;
}

static void hidden(struct buf *b, const char *name, const char *value)
{
	buf_printf(b, "<input type=\"hidden\" name=\"%s\" value=\"", name);
	html(b, value);
	buf_append_str(b, "\">");
}

/* The start of a form running cmd through /admin/run; back: the page shown
 * after it. */
static void form_start(struct buf *b, struct web_job *job, const char *cmd, const char *back, const char *cls)
{
	buf_printf(b, "<form method=\"post\" action=\"/admin/run\" class=\"%s\" data-cmd=\"%s\">", cls, cmd);
	hidden(b, "csrf", job->csrf);
	hidden(b, "cmd", cmd);
	hidden(b, "back", back);
}

static void form_input(struct buf *b, const char *name, enum web_str label, const char *type)
{
	buf_printf(b, "<label>%s<input name=\"%s\" type=\"%s\" required></label>", T(label), name, type);
}

static void form_button(struct buf *b, enum web_str label, const char *id)
{
	buf_printf(b, "<button%s%s%s>%s</button></form>", id != NULL ? " id=\"" : "", id != NULL ? id : "",
	           id != NULL ? "\"" : "", T(label));
}

/* ---- the pages -------------------------------------------------------------------- */

/* The dashboard: registered and online users per host, status, s2s. */
static void render_dashboard(struct web_job *job, struct buf *b)
{
	page_start(b, T(S_DASHBOARD), job->csrf);
	/* counts from stats: the store counts the accounts (none is listed);
	 * a store that cannot answer shows "unknown" */
	json_t *stats = step_json(job, 2);
	json_t *hosts = json_object_get(stats, "hosts");
	buf_printf(b, "<table id=\"hosts\"><tr><th>%s</th><th>%s</th><th>%s</th></tr>", T(S_HOST),
	           T(S_REGISTERED), T(S_ONLINE));
	for (struct host *h = host_first(); h != NULL; h = h->next) {
		json_t *hs = json_object_get(hosts, h->name);
		json_t *reg = json_object_get(hs, "registered_users");
		json_t *online = json_object_get(hs, "online_users");
		buf_append_str(b, "<tr><td><a href=\"/admin/users?host=");
		urlenc(b, h->name);
		buf_append_str(b, "\">");
		html(b, h->name);
		if (json_is_integer(reg))
			buf_printf(b, "</a></td><td class=\"registered\">%lld</td>",
			           (long long)json_integer_value(reg));
		else
			buf_printf(b, "</a></td><td class=\"registered\">%s</td>", T(S_UNKNOWN));
		if (json_is_integer(online))
			buf_printf(b, "<td class=\"online\">%lld</td></tr>",
			           (long long)json_integer_value(online));
		else
			buf_printf(b, "<td class=\"online\">%s</td></tr>", T(S_UNKNOWN));
	}
	buf_append_str(b, "</table>");
	json_decref(stats);
	buf_append_str(b, "<h3>");
	html(b, T(S_STATUS));
	buf_append_str(b, "</h3>");
	render_step(b, job, 0);
	buf_append_str(b, "<h3>");
	html(b, T(S_S2S));
	buf_append_str(b, "</h3>");
	if (job->code[1] == 0 && (job->body[1] == NULL || job->body[1][0] == '\0'))
		buf_printf(b, "<p>%s</p>", T(S_NO_S2S));
	else
		render_step(b, job, 1);
	page_end(b);
}

/* The host a page shows: the one asked for when served here, else the
 * first allowed one. */
static const char *page_host(const char *asked)
{
	if (asked != NULL && host_find(asked) != NULL)
		return host_find(asked)->name;
	for (struct host *h = host_first(); h != NULL; h = h->next)
		if (host_allowed(h->name))
			return h->name;
	return host_first() != NULL ? host_first()->name : "";
}

static void host_picker(struct buf *b, const char *path, const char *current)
{
	buf_printf(b, "<form method=\"get\" action=\"%s\" class=\"inline\"><select name=\"host\">", path);
	for (struct host *h = host_first(); h != NULL; h = h->next) {
		buf_append_str(b, "<option");
		if (strcmp(h->name, current) == 0)
			buf_append_str(b, " selected");
		buf_append_str(b, ">");
		html(b, h->name);
		buf_append_str(b, "</option>");
	}
	buf_printf(b, "</select><button>%s</button></form>", T(S_SHOW));
}

/* Users of a host: search, sessions, create, delete, password, kick. */
static void render_users(struct web_job *job, struct buf *b)
{
	const char *host = job->arg;
	struct buf back = { 0 };
	buf_append_str(&back, "/admin/users?host=");
	urlenc(&back, host);
	buf_append(&back, "", 1);
	page_start(b, T(S_USERS), job->csrf);
	host_picker(b, "/admin/users", host);
	buf_append_str(b, "<form method=\"get\" action=\"/admin/users\" class=\"inline\">");
	hidden(b, "host", host);
	buf_append_str(b, "<input name=\"q\" id=\"search\" value=\"");
	html(b, job->query != NULL ? job->query : "");
	buf_printf(b, "\"><button>%s</button></form>", T(S_SEARCH));

	buf_printf(b, "<h3>%s</h3>", T(S_CREATE_USER));
	form_start(b, job, "register", back.data, "box");
	hidden(b, "a2", host);
	form_input(b, "a1", S_USER, "text");
	form_input(b, "a3", S_PASSWORD, "password");
	form_button(b, S_CREATE, "create");

	json_t *reg = step_json(job, 0);
	json_t *online = step_json(job, 1);
	if (users_of(reg) == NULL) {
		render_step(b, job, 0);
	} else {
		buf_printf(b, "<table id=\"users\"><tr><th>%s</th><th>%s</th><th>%s</th></tr>", T(S_USER),
		           T(S_SESSIONS), T(S_ACTIONS));
		size_t i, k;
		json_t *u, *v;
		json_array_foreach(users_of(reg), i, u)
		{
			const char *user = json_string_value(u);
			if (user == NULL)
				continue;
			char *bare =
			        strchr(user, '@') != NULL ? xstrdup(user) : xasprintf("%s@%s", user, host);
			char *node = xstrndup(bare, (size_t)(strchr(bare, '@') - bare));
			if (job->query != NULL && job->query[0] != '\0' && strstr(bare, job->query) == NULL) {
				free(bare);
				free(node);
				continue;
			}
			buf_append_str(b, "<tr data-user=\"");
			html(b, bare);
			buf_append_str(b, "\"><td><a class=\"user\" href=\"/admin/user?jid=");
			urlenc(b, bare);
			buf_append_str(b, "\">");
			html(b, bare);
			buf_append_str(b, "</a></td><td class=\"sessions\">");
			size_t blen = strlen(bare);
			if (json_is_array(online))
				json_array_foreach(online, k, v)
				{
					const char *full = json_string_value(v);
					if (full != NULL && strncmp(full, bare, blen) == 0 &&
					    full[blen] == '/') {
						buf_append_str(b, "<span class=\"session\">");
						html(b, full);
						buf_append_str(b, "</span> ");
						form_start(b, job, "kick-session", back.data, "inline");
						hidden(b, "a1", full);
						form_button(b, S_KICK, NULL);
					}
				}
			buf_append_str(b, "</td><td>");
			form_start(b, job, "unregister", back.data, "inline");
			hidden(b, "a1", node);
			hidden(b, "a2", host);
			form_button(b, S_DELETE, NULL);
			form_start(b, job, "passwd", back.data, "inline");
			hidden(b, "a1", node);
			hidden(b, "a2", host);
			buf_printf(b, "<input name=\"a3\" type=\"password\" placeholder=\"%s\" required>",
			           T(S_NEW_PASSWORD));
			form_button(b, S_SET_PASSWORD, NULL);
			buf_append_str(b, "</td></tr>");
			free(bare);
			free(node);
		}
		buf_append_str(b, "</table><p class=\"pages\">");
		json_t *next = json_object_get(reg, "next");
		const char *after = job->argv[0][6];
		if (after[0] != '\0') {
			buf_append_str(b, "<a id=\"first-page\" href=\"/admin/users?host=");
			urlenc(b, host);
			if (job->query != NULL && job->query[0] != '\0') {
				buf_append_str(b, "&amp;q=");
				urlenc(b, job->query);
			}
			buf_printf(b, "\">%s</a> ", T(S_FIRST_PAGE));
		}
		if (json_is_string(next)) {
			buf_append_str(b, "<a id=\"next-page\" href=\"/admin/users?host=");
			urlenc(b, host);
			buf_append_str(b, "&amp;after=");
			urlenc(b, json_string_value(next));
			if (job->query != NULL && job->query[0] != '\0') {
				buf_append_str(b, "&amp;q=");
				urlenc(b, job->query);
			}
			buf_printf(b, "\">%s</a>", T(S_NEXT_PAGE));
		}
		buf_append_str(b, "</p>");
	}
	json_decref(reg);
	json_decref(online);
	buf_free(&back);
	page_end(b);
}

static void cell(struct buf *b, json_t *v)
{
	buf_append_str(b, "<td>");
	html(b, json_is_string(v) ? json_string_value(v) : "");
	buf_append_str(b, "</td>");
}

/* One account: its roster and its offline queue (get-roster, offline-list). */
static void render_user(struct web_job *job, struct buf *b)
{
	page_start(b, job->arg, job->csrf);
	json_t *roster = step_json(job, 0);
	json_t *items = json_object_get(roster, "items");
	buf_printf(b, "<h3>%s</h3>", T(S_ROSTER));
	if (!json_is_array(items)) {
		render_step(b, job, 0);
	} else if (json_array_size(items) == 0) {
		buf_printf(b, "<p id=\"roster-empty\">%s</p>", T(S_NO_ROSTER));
	} else {
		buf_printf(b,
		           "<table id=\"roster\"><tr><th>%s</th><th>%s</th><th>%s</th><th>%s</th><th>%s</th>"
		           "</tr>",
		           T(S_CONTACT), T(S_NAME), T(S_SUBSCRIPTION), T(S_PENDING), T(S_GROUPS));
		size_t i, k;
		json_t *it, *g;
		json_array_foreach(items, i, it)
		{
			buf_append_str(b, "<tr class=\"contact\">");
			cell(b, json_object_get(it, "jid"));
			cell(b, json_object_get(it, "name"));
			cell(b, json_object_get(it, "subscription"));
			cell(b, json_object_get(it, "ask"));
			buf_append_str(b, "<td>");
			json_array_foreach(json_object_get(it, "groups"), k, g)
			{
				if (k > 0)
					buf_append_str(b, ", ");
				html(b, json_string_value(g));
			}
			buf_append_str(b, "</td></tr>");
		}
		buf_append_str(b, "</table>");
	}
	json_decref(roster);

	json_t *off = step_json(job, 1);
	json_t *msgs = json_object_get(off, "messages");
	buf_printf(b, "<h3>%s</h3>", T(S_OFFLINE));
	if (!json_is_array(msgs)) {
		render_step(b, job, 1);
	} else if (json_array_size(msgs) == 0) {
		buf_printf(b, "<p id=\"offline-empty\">%s</p>", T(S_NO_OFFLINE));
	} else {
		json_int_t count = json_integer_value(json_object_get(off, "count"));
		if ((size_t)count > json_array_size(msgs))
			buf_printf(b, "<p class=\"note\">%s %lld</p>", T(S_MORE_OFFLINE), (long long)count);
		buf_printf(b, "<table id=\"offline\"><tr><th>%s</th><th>%s</th><th>%s</th></tr>", T(S_STORED),
		           T(S_FROM), T(S_BODY));
		size_t i;
		json_t *m;
		json_array_foreach(msgs, i, m)
		{
			buf_append_str(b, "<tr class=\"message\">");
			cell(b, json_object_get(m, "stored"));
			cell(b, json_object_get(m, "from"));
			json_t *body = json_object_get(m, "body");
			cell(b, json_is_string(body) ? body : json_object_get(m, "stanza"));
			buf_append_str(b, "</tr>");
		}
		buf_append_str(b, "</table>");
	}
	json_decref(off);
	char *at = strrchr(job->arg, '@');
	buf_append_str(b, "<p><a id=\"back\" href=\"/admin/users?host=");
	urlenc(b, at != NULL ? at + 1 : "");
	buf_printf(b, "\">%s</a></p>", T(S_USERS));
	page_end(b);
}

static void render_hosts(struct web_job *job, struct buf *b)
{
	page_start(b, T(S_HOSTS), job->csrf);
	buf_append_str(b, "<ul id=\"hostlist\">");
	for (struct host *h = host_first(); h != NULL; h = h->next) {
		buf_append_str(b, "<li><a href=\"/admin/users?host=");
		urlenc(b, h->name);
		buf_append_str(b, "\">");
		html(b, h->name);
		buf_append_str(b, "</a></li>");
	}
	buf_append_str(b, "</ul>");
	render_step(b, job, 0);
	page_end(b);
}

static void render_srg(struct web_job *job, struct buf *b)
{
	const char *host = job->arg;
	struct buf back = { 0 };
	buf_append_str(&back, "/admin/srg?host=");
	urlenc(&back, host);
	buf_append(&back, "", 1);
	page_start(b, T(S_SRG), job->csrf);
	host_picker(b, "/admin/srg", host);
	render_step(b, job, 0);
	buf_printf(b, "<h3>%s</h3>", T(S_CREATE));
	form_start(b, job, "srg-create", back.data, "box");
	hidden(b, "a1", host);
	form_input(b, "a2", S_GROUP, "text");
	form_button(b, S_CREATE, NULL);
	buf_printf(b, "<h3>%s</h3>", T(S_ADD_MEMBER));
	form_start(b, job, "srg-user-add", back.data, "box");
	hidden(b, "a2", host);
	form_input(b, "a1", S_MEMBER, "text");
	form_input(b, "a3", S_GROUP, "text");
	form_button(b, S_ADD_MEMBER, NULL);
	buf_printf(b, "<h3>%s</h3>", T(S_DEL_MEMBER));
	form_start(b, job, "srg-user-del", back.data, "box");
	hidden(b, "a2", host);
	form_input(b, "a1", S_MEMBER, "text");
	form_input(b, "a3", S_GROUP, "text");
	form_button(b, S_DEL_MEMBER, NULL);
	buf_printf(b, "<h3>%s</h3>", T(S_DELETE_GROUP));
	form_start(b, job, "srg-delete", back.data, "box");
	hidden(b, "a1", host);
	form_input(b, "a2", S_GROUP, "text");
	form_button(b, S_DELETE_GROUP, NULL);
	buf_free(&back);
	page_end(b);
}

static void render_announce(struct web_job *job, struct buf *b)
{
	const char *host = job->arg;
	struct buf back = { 0 };
	buf_append_str(&back, "/admin/announce?host=");
	urlenc(&back, host);
	buf_append(&back, "", 1);
	page_start(b, T(S_ANNOUNCE), job->csrf);
	host_picker(b, "/admin/announce", host);
	form_start(b, job, "announce", back.data, "box");
	hidden(b, "a1", host);
	buf_printf(b,
	           "<label><select name=\"a2\"><option value=\"--online\">%s</option>"
	           "<option value=\"--all\">%s</option></select></label>",
	           T(S_SEND_ONLINE), T(S_SEND_ALL));
	form_input(b, "a3", S_TEXT, "text");
	form_button(b, S_SEND, NULL);
	buf_printf(b, "<h3>%s</h3>", T(S_MOTD));
	render_step(b, job, 0);
	form_start(b, job, "motd", back.data, "box");
	hidden(b, "a1", host);
	form_input(b, "a2", S_TEXT, "text");
	form_button(b, S_SET_MOTD, NULL);
	form_start(b, job, "motd", back.data, "box");
	hidden(b, "a1", host);
	hidden(b, "a2", "--delete");
	form_button(b, S_DELETE_MOTD, NULL);
	buf_free(&back);
	page_end(b);
}

static void render_muc(struct web_job *job, struct buf *b)
{
	const char *host = job->arg;
	struct buf back = { 0 };
	buf_append_str(&back, "/admin/muc?host=");
	urlenc(&back, host);
	buf_append(&back, "", 1);
	page_start(b, T(S_ROOMS), job->csrf);
	host_picker(b, "/admin/muc", host);
	render_step(b, job, 0);
	buf_printf(b, "<h3>%s</h3>", T(S_CREATE));
	form_start(b, job, "muc-create", back.data, "box");
	form_input(b, "a1", S_ROOM, "text");
	buf_printf(b, "<label>%s<input name=\"a2\" type=\"text\"></label>", T(S_OWNER));
	form_button(b, S_CREATE, NULL);
	buf_printf(b, "<h3>%s</h3>", T(S_DESTROY));
	form_start(b, job, "muc-destroy", back.data, "box");
	form_input(b, "a1", S_ROOM, "text");
	form_button(b, S_DESTROY, NULL);
	buf_free(&back);
	page_end(b);
}

/* The outcome of a command run from a form. */
static void render_run(struct web_job *job, struct buf *b)
{
	page_start(b, T(job->code[0] == 0 ? S_DONE : S_FAILED), job->csrf);
	buf_printf(b, "<div id=\"result\" data-code=\"%d\">", job->code[0]);
	buf_append_str(b, "<p><code>");
	for (int k = 0; k < job->argc[0]; k++) {
		/* a password is not shown back */
		bool secret = k == 3 && (strcmp(job->argv[0][0], "register") == 0 ||
		                         strcmp(job->argv[0][0], "passwd") == 0);
		html(b, secret ? "********" : job->argv[0][k]);
		buf_append_str(b, " ");
	}
	buf_append_str(b, "</code></p>");
	if (job->code[0] == 0 && job->message[0] == NULL)
		buf_printf(b, "<p class=\"ok\">%s</p>", T(S_DONE));
	render_step(b, job, 0);
	buf_append_str(b, "</div><p><a id=\"back\" href=\"");
	html(b, job->back);
	buf_printf(b, "\">%s</a></p>", T(S_BACK));
	page_end(b);
}

/* The commands a form may run, and how many arguments each takes. */
static const struct {
	const char *name;
	int min, max;
} web_commands[] = {
	{ "register", 3, 3 },     { "unregister", 2, 2 },   { "passwd", 3, 3 },     { "kick-session", 1, 2 },
	{ "announce", 3, 3 },     { "motd", 1, 2 },         { "srg-create", 2, 2 }, { "srg-delete", 2, 2 },
	{ "srg-user-add", 3, 3 }, { "srg-user-del", 3, 3 }, { "muc-create", 1, 2 }, { "muc-destroy", 1, 2 },
};

static void handle_run(const struct http_request *rq, struct http_reply *r, struct web_session *s)
{
	char *cmd = body_get(rq, "cmd");
	char *back = body_get(rq, "back");
	int found = -1;
	for (size_t i = 0; cmd != NULL && i < sizeof(web_commands) / sizeof(web_commands[0]); i++)
		if (strcmp(web_commands[i].name, cmd) == 0)
			found = (int)i;
	if (found < 0 || back == NULL || strncmp(back, "/admin/", 7) != 0) {
		log_warning("web admin: %s from %s posted a form for a command the pages do not offer; "
		            "refused",
		            s->jid, rq->remote_ip);
		send_message_page(r, 400, S_FAILED, S_BAD_FORM, s->csrf);
		free(cmd);
		free(back);
		return;
	}
	char *args[MAX_ARGS + 1] = { cmd };
	int argc = 1;
	for (int i = 1; i <= web_commands[found].max; i++) {
		char name[4];
		snprintf(name, sizeof(name), "a%d", i);
		char *v = body_get(rq, name);
		if (v == NULL || v[0] == '\0') {
			free(v);
			break;
		}
		args[argc++] = v;
	}
	struct web_job *job = job_new(r, rq);
	memcpy(job->csrf, s->csrf, sizeof(job->csrf));
	job->back = back;
	job->render = render_run;
	job_add_argv(job, argc, args);
	log_info("web admin: %s from %s runs %s", s->jid, rq->remote_ip, cmd);
	for (int i = 0; i < argc; i++) {
		explicit_bzero(args[i], strlen(args[i]));
		free(args[i]);
	}
	job_start(job);
}

/* ---- login ------------------------------------------------------------------------ */

static void login_done(enum auth_result res, void *ctx)
{
	latency_begin(LATENCY_CONTROL, "web-admin");
	struct web_job *job = ctx;
	job->areq = NULL;
	web_cat = job->cat;
	struct http_reply *r = job->reply;
	struct http_request fake = { .tls = job->tls };
	struct jid j = { 0 };
	switch (res) {
	case AUTH_OK:
		if (jid_parse(job->jid, &j, NULL) < 0 || !host_is_admin(job->host, &j)) {
			log_warning("web admin: %s from %s logged in but is no admin of %s; refused",
			            job->jid, job->ip, job->host->name);
			send_message_page(r, 403, S_LOGIN, S_NOT_ADMIN, NULL);
			break;
		}
		auth_note_success(job->host->auth, job->node);
		struct web_session *s = session_new(job->jid, job->host);
		log_info("web admin: %s logged in from %s", job->jid, job->ip);
		set_cookie(r, &fake, COOKIE, s->id, false);
		set_cookie(r, &fake, LOGIN_COOKIE, "", true);
		send_redirect(r, "/admin/");
		break;
	case AUTH_BAD_PASSWORD:
	case AUTH_NO_USER:
		auth_note_failure(job->host->auth, job->ip, job->node,
		                  res == AUTH_NO_USER ? "unknown-user" : "bad-password");
		log_info("web admin: failed login of %s from %s", job->jid, job->ip);
		send_message_page(r, 403, S_LOGIN, S_BAD_LOGIN, NULL);
		break;
	case AUTH_TEMPFAIL:
		log_warning("web admin: login of %s from %s: the auth backend of %s is unavailable", job->jid,
		            job->ip, job->host->name);
		http_reply_header(r, "Retry-After", "5");
		send_message_page(r, 503, S_LOGIN, S_TEMPFAIL, NULL);
		break;
	default:
		log_warning("web admin: login of %s from %s: %s", job->jid, job->ip, auth_result_str(res));
		send_message_page(r, 503, S_LOGIN, S_TEMPFAIL, NULL);
		break;
	}
	jid_clear(&j);
	job_free(job);
	latency_end();
}

static void handle_login(const struct http_request *rq, struct http_reply *r)
{
	char tok[TOKEN_HEX + 1];
	char *csrf = body_get(rq, "csrf");
	bool ok = cookie_get(rq, LOGIN_COOKIE, tok, sizeof(tok)) && token_equal(tok, csrf);
	free(csrf);
	if (!ok) {
		log_info("web admin: login from %s without a valid form token; refused", rq->remote_ip);
		send_message_page(r, 403, S_LOGIN, S_BAD_CSRF, NULL);
		return;
	}
	char *jidtext = body_get(rq, "jid");
	char *password = body_get(rq, "password");
	struct jid j = { 0 };
	struct host *h = NULL;
	if (jidtext != NULL && password != NULL && jid_parse(jidtext, &j, NULL) == 0 && j.node != NULL)
		h = host_find(j.domain);
	if (h == NULL || !host_allowed(h->name)) {
		log_info("web admin: login from %s as %s refused: not a user of a host whose admins may log "
		         "in",
		         rq->remote_ip, jidtext != NULL ? jidtext : "(none)");
		send_login(r, rq, 403, S_BAD_LOGIN);
		goto out;
	}
	if (auth_limited(h->auth, rq->remote_ip, j.node)) {
		log_info("web admin: login of %s@%s from %s refused: too many failures", j.node, h->name,
		         rq->remote_ip);
		send_login(r, rq, 429, S_LIMITED);
		goto out;
	}
	struct web_job *job = job_new(r, rq);
	job->host = h;
	job->node = xstrdup(j.node);
	job->jid = jid_bare_string(&j);
	job->password = password;
	password = NULL;
	http_reply_on_cancel(r, job_cancelled, job);
	job->areq = auth_check_password(h->auth, job->node, job->password, login_done, job);
out:
	jid_clear(&j);
	free(jidtext);
	if (password != NULL) {
		explicit_bzero(password, strlen(password));
		free(password);
	}
}

/* ---- the handler ------------------------------------------------------------------ */

static void serve_static(const struct http_request *rq, struct http_reply *r)
{
	if (strcmp(rq->path, "/admin/static/admin.css") != 0 || css == NULL) {
		http_reply_error(r, 404, NULL);
		return;
	}
	http_reply_header(r, "X-Content-Type-Options", "nosniff");
	http_reply_header(r, "Cache-Control", "max-age=3600");
	http_reply_send(r, 200, "text/css; charset=utf-8", css, css_len);
}

static void web_handler(void *ctx, const struct http_request *rq, struct http_reply *r)
{
	(void)ctx;
	latency_begin(LATENCY_CONTROL, "web-admin");
	const char *path = rq->path;
	web_cat = i18n_pick(http_request_header(rq, "Accept-Language"));
	bool get = strcmp(rq->method, "GET") == 0 || strcmp(rq->method, "HEAD") == 0;
	bool post = strcmp(rq->method, "POST") == 0;
	if (web_cfg == NULL) {
		http_reply_error(r, 503, NULL);
		goto out;
	}
	if (!metrics_ip_allowed(&web_cfg->allow, rq->remote_ip)) {
		log_info("web admin: request from %s refused (not in admin_web.allow)", rq->remote_ip);
		send_message_page(r, 403, S_LOGIN, S_NOT_ALLOWED_IP, NULL);
		goto out;
	}
	if (strncmp(path, "/admin/static/", 14) == 0 && get) {
		serve_static(rq, r);
		goto out;
	}
	if (!get && !post) {
		http_reply_header(r, "Allow", "GET, HEAD, POST");
		http_reply_error(r, 405, NULL);
		goto out;
	}
	if (strcmp(path, "/admin/login") == 0 && post) {
		handle_login(rq, r);
		goto out;
	}
	struct web_session *s = session_of(rq);
	if (s == NULL) {
		if (post) {
			send_message_page(r, 403, S_LOGIN, S_EXPIRED, NULL);
		} else if (strcmp(path, "/admin/") == 0 || strcmp(path, "/admin/login") == 0) {
			send_login(r, rq, 200, -1);
		} else {
			send_redirect(r, "/admin/");
		}
		goto out;
	}
	if (post) {
		char *csrf = body_get(rq, "csrf");
		bool ok = token_equal(csrf, s->csrf);
		free(csrf);
		if (!ok) {
			log_warning("web admin: POST %s by %s from %s with a missing or wrong CSRF token; "
			            "refused",
			            path, s->jid, rq->remote_ip);
			send_message_page(r, 403, S_FAILED, S_BAD_CSRF, s->csrf);
			goto out;
		}
		if (strcmp(path, "/admin/logout") == 0) {
			log_info("web admin: %s logged out", s->jid);
			session_end(s);
			set_cookie(r, rq, COOKIE, "", true);
			send_redirect(r, "/admin/");
		} else if (strcmp(path, "/admin/run") == 0) {
			handle_run(rq, r, s);
		} else {
			send_message_page(r, 404, S_FAILED, S_NOT_FOUND, s->csrf);
		}
		goto out;
	}
	char *host_q = query_get(rq, "host");
	const char *host = page_host(host_q);
	free(host_q);
	struct web_job *job = job_new(r, rq);
	memcpy(job->csrf, s->csrf, sizeof(job->csrf));
	job->arg = xstrdup(host);
	if (strcmp(path, "/admin/") == 0) {
		job->render = render_dashboard;
		job_add(job, "status", NULL);
		job_add(job, "s2s-list", NULL);
		job_add(job, "--json", "stats", NULL);
	} else if (strcmp(path, "/admin/users") == 0) {
		job->render = render_users;
		job->query = query_get(rq, "q");
		char *after = query_get(rq, "after");
		char limit[16];
		snprintf(limit, sizeof(limit), "%u", USERS_PAGE);
		/* the store matches user names: a JID searched for by its local part */
		char *match = xstrdup(job->query != NULL ? job->query : "");
		match[strcspn(match, "@")] = '\0';
		job_add(job, "--json", "registered-users", host, "--match", match, "--after",
		        after != NULL ? after : "", "--limit", limit, NULL);
		free(match);
		free(after);
		job_add(job, "--json", "connected-users", NULL);
	} else if (strcmp(path, "/admin/user") == 0) {
		char *jid = query_get(rq, "jid");
		if (jid == NULL || strchr(jid, '@') == NULL) {
			free(jid);
			job_free(job);
			send_message_page(r, 404, S_FAILED, S_NOT_FOUND, s->csrf);
			goto out;
		}
		job->render = render_user;
		free(job->arg);
		job->arg = jid;
		char limit[16];
		snprintf(limit, sizeof(limit), "%u", OFFLINE_SHOWN);
		job_add(job, "--json", "get-roster", jid, NULL);
		job_add(job, "--json", "offline-list", jid, "--limit", limit, NULL);
	} else if (strcmp(path, "/admin/hosts") == 0) {
		job->render = render_hosts;
		job_add(job, "status", NULL);
	} else if (strcmp(path, "/admin/srg") == 0) {
		job->render = render_srg;
		job_add(job, "srg-list", host, NULL);
	} else if (strcmp(path, "/admin/announce") == 0) {
		job->render = render_announce;
		job_add(job, "motd", host, NULL);
	} else if (strcmp(path, "/admin/muc") == 0) {
		job->render = render_muc;
		job_add(job, "--json", "muc-list", host, NULL);
	} else {
		job_free(job);
		send_message_page(r, 404, S_FAILED, S_NOT_FOUND, s->csrf);
		goto out;
	}
	job_start(job);
out:
	latency_end();
}

/* ---- start and stop --------------------------------------------------------------- */

const char *web_admin_static_dir(void)
{
	const char *env = getenv("PARLEY_WEB_DIR");
	if (env != NULL && *env != '\0')
		return env;
	if (access(PKGDATADIR "/web/admin.css", R_OK) == 0)
		return PKGDATADIR "/web";
	return "./share/web";
}

/* Where the message catalogues (LANG.mo) are: $PARLEY_LOCALE_DIR, else
 * the installed folder, else po/ of the current folder (a build tree). */
static void load_css(void)
{
	char *path = xasprintf("%s/admin.css", web_admin_static_dir());
	FILE *f = fopen(path, "rb");
	struct buf b = { 0 };
	if (f != NULL) {
		char chunk[4096];
		size_t n;
		while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
			buf_append(&b, chunk, n);
		fclose(f);
	}
	if (f == NULL || b.len == 0) {
		log_warning("web admin: cannot read %s; the pages are served without their style sheet",
		            path);
		buf_free(&b);
	} else {
		css_len = b.len;
		css = buf_steal(&b);
	}
	free(path);
}

int web_admin_start(struct ev_loop *loop, const struct parley_config *cfg, char **error_r)
{
	if (!cfg->admin_web.enabled)
		return 0;
	web_loop = loop;
	web_cfg = &cfg->admin_web;
	load_css();
	/* The catalogues are parleyd's, loaded at start (server/daemon.c). */
	if (http_mount("/admin/", web_handler, NULL, error_r) < 0)
		return -1;
	web_mounted = true;
	log_info("web admin: served at /admin/ of the http listeners (static files from %s)",
	         web_admin_static_dir());
	return 0;
}

void web_admin_stop_accepting(void)
{
	if (web_mounted)
		http_unmount("/admin/");
	web_mounted = false;
}

void web_admin_stop(void)
{
	web_admin_stop_accepting();
	while (jobs != NULL) {
		struct web_job *job = jobs;
		web_cat = job->cat;
		if (job->call != NULL)
			ctl_call_cancel(job->call);
		if (job->areq != NULL)
			auth_cancel(job->areq);
		struct http_reply *r = job->reply;
		job_free(job);
		if (r != NULL)
			send_message_page(r, 503, S_FAILED, S_STOPPING, NULL);
	}
	while (sessions != NULL) {
		struct web_session *s = sessions;
		sessions = s->next;
		session_free(s);
	}
	free(css);
	css = NULL;
	web_cfg = NULL;
	web_cat = NULL;
}
