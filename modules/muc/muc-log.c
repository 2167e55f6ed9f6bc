/*
 * Room logs of a multi-user chat service as XHTML pages, one per room and
 * day, with an index per room.
 *
 * Threads: muc_log_new, muc_log_event and muc_log_free run on the loop
 * thread.  muc_log_event copies its inputs into a job for a worker group of
 * one thread (the writer), which owns every room's state and every file; a
 * loop timer hands the writer a job now and then that closes idle files.
 * muc_log_free lets the writer finish, joins it, then closes what is open.
 *
 * Time zones: with a zone other than UTC the writer learns the zone's UTC
 * offset through localtime_r, which only knows the process zone: it sets TZ,
 * calls tzset and puts TZ back, under one process-wide mutex.  Zone changes
 * fall on quarter hours, so the offset is kept for the quarter hour of the
 * event and the switch happens at most once per quarter hour and log while
 * events come in; in that instant another thread's localtime_r (a log line's
 * stamp) may use this zone.  So that a getenv on another thread never sees
 * the environment move, TZ is only ever replaced, never added or removed
 * there: muc_log_new (loop thread, when the module starts) sets an unset TZ
 * to ":/etc/localtime", which is what the C library uses when it is unset.
 *
 * Invariants:
 * - a day page ends with FOOTER_MARK and the footer; an entry is written
 *   over the footer followed by a new footer, in one pwrite, so the page is
 *   well-formed after every event (and after a restart the footer is found
 *   again by the mark, which user text cannot contain: '<' is escaped);
 * - everything that came from the network goes through html_text (valid
 *   UTF-8, no control characters, escaped, only http/https/xmpp/mailto
 *   linked) before it reaches a page; nothing from it reaches an attribute
 *   but a link's escaped href;
 * - a room's folder name is its JID with every byte but [A-Za-z0-9@+_-],
 *   a '.' not in front and the bytes of valid UTF-8 written as %XX, so it
 *   is one path component, never "." or "..", and two JIDs never share it;
 * - a room keeps at most one day file open; files idle for IDLE_CLOSE
 *   seconds are closed, and at most MAX_OPEN are open at once;
 * - a filesystem error is logged once per room (with the path).
 */
#include "muc-log.h"

#include "lib/latency.h"
#include "lib/log.h"
#include "lib/util.h"
#include "lib/worker.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define QUEUE_MAX 10000
#define IDLE_CLOSE 60.0
#define SWEEP_INTERVAL 30.0
#define MAX_OPEN 256
#define DROP_WARN_INTERVAL 10.0
#define ROOM_BUCKETS 1024
#define NAME_MAX_LEN 200
#define FOOTER_MARK "<!--end of log-->"
#define TAIL_READ 4096
#define DEFAULT_TZ ":/etc/localtime"

struct room {
	struct room *next; /* hash chain */
	char *jid;
	char *path;  /* DIR/<folder name> */
	char *title; /* last title seen, for new pages and the index */
	int *days;   /* yyyymmdd of the pages, ascending */
	size_t ndays, days_cap;
	bool loaded; /* days read from the folder, index written this run */
	int fd;      /* open day page, or -1 */
	int day;     /* its yyyymmdd */
	off_t footer_off;
	double last_used; /* monotonic */
	bool error_logged;
};

struct muc_log {
	struct ev_loop *loop;
	char *dir;
	char *css_url; /* NULL: embedded stylesheet */
	char *tz;      /* NULL: UTC */
	struct worker_group *writer;
	ev_timer sweep;
	/* loop thread */
	unsigned dropped;
	double last_drop_warn;
	/* writer thread (and muc_log_free after the writer stopped) */
	struct room *rooms[ROOM_BUCKETS];
	unsigned open_files;
	long long tz_quarter; /* quarter hour whose offset is tz_offset */
	long tz_offset;
	bool tz_known;
};

struct log_job {
	struct muc_log *l;
	bool sweep; /* close idle files; no event */
	enum muc_log_kind kind;
	double when;
	char *room_jid, *title, *nick, *text;
};

static pthread_mutex_t tz_mutex = PTHREAD_MUTEX_INITIALIZER;

/* ---- text ------------------------------------------------------------------------ */

/* Length of the valid UTF-8 sequence at s (code point in *cp_r), or 0. */
static size_t utf8_decode(const unsigned char *s, size_t len, uint32_t *cp_r)
{
	unsigned char c = s[0];
	size_t n;
	uint32_t cp, min;
	if (c < 0x80) {
		*cp_r = c;
		return 1;
	} else if (c >= 0xc2 && c <= 0xdf) {
		n = 1, cp = c & 0x1f, min = 0x80;
	} else if ((c & 0xf0) == 0xe0) {
		n = 2, cp = c & 0x0f, min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 3, cp = c & 0x07, min = 0x10000;
	} else {
		return 0;
	}
	if (len <= n)
		return 0;
	for (size_t k = 1; k <= n; k++) {
		if ((s[k] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[k] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	*cp_r = cp;
	return n + 1;
}

/* s as valid UTF-8 that XML accepts: a bad byte becomes U+FFFD, control
 * characters (C0 but tab and newline, DEL, C1) and U+FFFE/U+FFFF go. */
static void text_clean(struct buf *out, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t len = strlen(s);
	size_t i = 0;
	while (i < len) {
		uint32_t cp;
		size_t n = utf8_decode(p + i, len - i, &cp);
		if (n == 0) {
			buf_append(out, "\xef\xbf\xbd", 3);
			i++;
			continue;
		}
		bool drop = (cp < 0x20 && cp != '\t' && cp != '\n') || (cp >= 0x7f && cp <= 0x9f) ||
		            cp == 0xfffe || cp == 0xffff;
		if (!drop)
			buf_append(out, p + i, n);
		i += n;
	}
}

static void escape_char(struct buf *b, char c)
{
	switch (c) {
	case '&': buf_append_str(b, "&amp;"); break;
	case '<': buf_append_str(b, "&lt;"); break;
	case '>': buf_append_str(b, "&gt;"); break;
	case '"': buf_append_str(b, "&quot;"); break;
	case '\'': buf_append_str(b, "&#39;"); break;
	default: buf_append(b, &c, 1); break;
	}
}

/* Escape clean text (see text_clean) for an element or attribute. */
static void escape_n(struct buf *b, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		escape_char(b, s[i]);
}

static const char *const link_schemes[] = { "http://", "https://", "xmpp:", "mailto:" };

static bool is_ascii_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool ends_link(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '<' || c == '>' || c == '"' || c == '\'' ||
	       c == '`' || c == '\\';
}

/* Length of the link at s[i] (0: none there).  A link starts with one of
 * link_schemes, not right after a letter or digit, runs to white space or a
 * character that cannot be in a URL, and leaves trailing punctuation (and
 * an unmatched closing parenthesis) to the text. */
static size_t link_at(const char *s, size_t len, size_t i)
{
	if (i > 0 && is_ascii_alnum(s[i - 1]))
		return 0;
	size_t scheme = 0;
	for (size_t k = 0; k < ARRAY_SIZE(link_schemes); k++) {
		size_t n = strlen(link_schemes[k]);
		if (len - i >= n && strncasecmp(s + i, link_schemes[k], n) == 0) {
			scheme = n;
			break;
		}
	}
	if (scheme == 0)
		return 0;
	size_t end = i + scheme;
	int parens = 0;
	while (end < len && !ends_link(s[end])) {
		if (s[end] == '(')
			parens++;
		else if (s[end] == ')')
			parens--;
		end++;
	}
	while (end > i + scheme) {
		char c = s[end - 1];
		if (c == '.' || c == ',' || c == ';' || c == ':' || c == '!' || c == '?') {
			end--;
		} else if (c == ')' && parens < 0) {
			end--;
			parens++;
		} else {
			break;
		}
	}
	if (end <= i + scheme || (end == i + scheme + 1 && s[end - 1] == '/'))
		return 0;
	return end - i;
}

/* Text from the network as element content: cleaned, escaped, newlines as
 * <br/>, links (only link_schemes) as <a> with the escaped URL as href. */
static void html_text(struct buf *b, const char *raw, bool links)
{
	struct buf clean = { 0 };
	text_clean(&clean, raw != NULL ? raw : "");
	const char *s = clean.data != NULL ? clean.data : "";
	size_t len = clean.len;
	for (size_t i = 0; i < len;) {
		size_t n = links ? link_at(s, len, i) : 0;
		if (n > 0) {
			buf_append_str(b, "<a rel=\"nofollow noopener\" href=\"");
			escape_n(b, s + i, n);
			buf_append_str(b, "\">");
			escape_n(b, s + i, n);
			buf_append_str(b, "</a>");
			i += n;
		} else if (s[i] == '\n') {
			buf_append_str(b, "<br/>");
			i++;
		} else {
			escape_char(b, s[i]);
			i++;
		}
	}
	buf_free(&clean);
}

/* ---- time ------------------------------------------------------------------------ */

/* Seconds east of UTC of the log's zone at t.  Writer thread. */
static long zone_offset(struct muc_log *l, time_t t)
{
	long long quarter = (long long)(t >= 0 ? t / 900 : (t - 899) / 900);
	if (l->tz_known && quarter == l->tz_quarter)
		return l->tz_offset;

	struct tm tm;
	pthread_mutex_lock(&tz_mutex);
	const char *old = getenv("TZ");
	char *saved = xstrdup(old != NULL ? old : DEFAULT_TZ);
	setenv("TZ", l->tz, 1);
	tzset();
	bool ok = localtime_r(&t, &tm) != NULL;
	setenv("TZ", saved, 1);
	tzset();
	pthread_mutex_unlock(&tz_mutex);
	free(saved);

	l->tz_offset = ok ? tm.tm_gmtoff : 0;
	l->tz_quarter = quarter;
	l->tz_known = true;
	return l->tz_offset;
}

/* The broken-down time of when in the log's zone.  Writer thread. */
static void local_time(struct muc_log *l, double when, struct tm *tm_r)
{
	/* Years 1970..9999 keep the file names at four digits. */
	if (!isfinite(when) || when < 0 || when > 253402214400.0)
		when = (double)time(NULL);
	time_t t = (time_t)floor(when);
	if (l->tz != NULL)
		t += zone_offset(l, t);
	if (gmtime_r(&t, tm_r) == NULL)
		memset(tm_r, 0, sizeof(*tm_r));
}

static int tm_day(const struct tm *tm)
{
	return (tm->tm_year + 1900) * 10000 + (tm->tm_mon + 1) * 100 + tm->tm_mday;
}

/* ---- files ----------------------------------------------------------------------- */

/* Create path and its parents (0755).  -1 with errno. */
static int mkdir_p(const char *path)
{
	char *p = xstrdup(path);
	for (char *s = p + 1;; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		char c = *s;
		*s = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST) {
			int err = errno;
			free(p);
			errno = err;
			return -1;
		}
		*s = c;
		if (c == '\0')
			break;
	}
	free(p);
	struct stat st;
	if (stat(path, &st) < 0)
		return -1;
	if (!S_ISDIR(st.st_mode)) {
		errno = ENOTDIR;
		return -1;
	}
	return 0;
}

static int write_all(int fd, const char *data, size_t len, off_t off)
{
	while (len > 0) {
		ssize_t n = pwrite(fd, data, len, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO;
			return -1;
		}
		data += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

/* The folder name of a room (see the invariants at the top), or NULL when
 * it would be empty or too long. */
static char *room_folder(const char *jid)
{
	size_t len = strlen(jid);
	bool utf8 = utf8_valid(jid, len);
	struct buf b = { 0 };
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)jid[i];
		if (is_ascii_alnum((char)c) || c == '@' || c == '+' || c == '_' || c == '-' ||
		    (c == '.' && i > 0) || (c >= 0x80 && utf8))
			buf_append(&b, &jid[i], 1);
		else
			buf_printf(&b, "%%%02X", c);
	}
	if (b.len == 0 || b.len > NAME_MAX_LEN) {
		buf_free(&b);
		return NULL;
	}
	return buf_steal(&b);
}

/* ---- pages ----------------------------------------------------------------------- */

static const char stylesheet[] =
        "body{font-family:sans-serif;background:#fff;color:#222;margin:1em 2em;max-width:100%}\n"
        "h1{font-size:1.4em;margin-bottom:0.2em}\n"
        "h1,h2,.date{overflow-wrap:anywhere;word-wrap:break-word}\n"
        "h2{font-size:1em;font-weight:normal;color:#666;margin-top:0}\n"
        ".log{font-family:monospace;line-height:1.4}\n"
        ".e{margin:0.15em 0;overflow-wrap:anywhere;word-wrap:break-word;word-break:break-word}\n"
        ".ts{color:#888}\n"
        ".nick{font-weight:bold;color:#036}\n"
        ".nick,.text{unicode-bidi:isolate}\n"
        ".action{color:#728;font-style:italic}\n"
        ".join{color:#161}\n"
        ".leave{color:#666}\n"
        ".nickchange{color:#963}\n"
        ".subject{color:#046;font-style:italic}\n"
        ".kick,.ban{color:#a11}\n"
        ".destroyed{color:#a11;font-weight:bold}\n"
        ".join,.leave,.nickchange,.kick,.ban,.destroyed{font-size:0.9em}\n"
        ".nav a{margin-right:1em}\n"
        "ul.days{list-style:none;padding-left:0}\n";

static void day_href(struct buf *b, int day)
{
	buf_printf(b, "%04d/%02d/%02d.html", day / 10000, day / 100 % 100, day % 100);
}

static void day_label(struct buf *b, int day)
{
	buf_printf(b, "%04d-%02d-%02d", day / 10000, day / 100 % 100, day % 100);
}

/* The start of a page up to <body>. */
static void page_head(struct buf *b, const struct muc_log *l, const struct room *r, int day)
{
	buf_append_str(b, "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<!DOCTYPE html>\n"
	                  "<html xmlns=\"http://www.w3.org/1999/xhtml\" xml:lang=\"en\" lang=\"en\">\n"
	                  "<head>\n<meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\"/>\n"
	                  "<meta name=\"robots\" content=\"noindex, nofollow\"/>\n<title>");
	html_text(b, r->jid, false);
	if (day != 0) {
		buf_append_str(b, " \xe2\x80\x94 ");
		day_label(b, day);
	} else {
		buf_append_str(b, " \xe2\x80\x94 room logs");
	}
	buf_append_str(b, "</title>\n");
	if (l->css_url != NULL) {
		buf_append_str(b, "<link rel=\"stylesheet\" type=\"text/css\" href=\"");
		html_text(b, l->css_url, false);
		buf_append_str(b, "\"/>\n");
	} else {
		buf_printf(b, "<style type=\"text/css\">\n%s</style>\n", stylesheet);
	}
	buf_append_str(b, "</head>\n<body>\n<h1>");
	if (r->title != NULL && r->title[0] != '\0') {
		html_text(b, r->title, false);
		buf_append_str(b, "</h1>\n<h2>");
		html_text(b, r->jid, false);
		buf_append_str(b, "</h2>\n");
	} else {
		html_text(b, r->jid, false);
		buf_append_str(b, "</h1>\n");
	}
}

/* Index of the day before and after day in r->days (-1: none). */
static void day_neighbours(const struct room *r, int day, int *prev_r, int *next_r)
{
	*prev_r = *next_r = -1;
	for (size_t i = 0; i < r->ndays; i++) {
		if (r->days[i] < day)
			*prev_r = r->days[i];
		else if (r->days[i] > day && *next_r < 0)
			*next_r = r->days[i];
	}
}

static void day_nav(struct buf *b, const struct room *r, int day, bool with_next)
{
	int prev, next;
	day_neighbours(r, day, &prev, &next);
	buf_append_str(b, "<div class=\"nav\"><a href=\"../../index.html\">all days</a>");
	if (prev > 0) {
		buf_append_str(b, " <a class=\"prev\" href=\"../../");
		day_href(b, prev);
		buf_append_str(b, "\">previous day (");
		day_label(b, prev);
		buf_append_str(b, ")</a>");
	}
	if (next > 0 && with_next) {
		buf_append_str(b, " <a class=\"next\" href=\"../../");
		day_href(b, next);
		buf_append_str(b, "\">next day (");
		day_label(b, next);
		buf_append_str(b, ")</a>");
	}
	buf_append_str(b, "</div>\n");
}

static void day_footer(struct buf *b, const struct room *r, int day)
{
	buf_append_str(b, FOOTER_MARK "\n</div>\n");
	day_nav(b, r, day, true);
	buf_append_str(b, "</body>\n</html>\n");
}

static void day_header(struct buf *b, const struct muc_log *l, const struct room *r, int day)
{
	page_head(b, l, r, day);
	day_nav(b, r, day, false);
	buf_append_str(b, "<p class=\"date\">");
	day_label(b, day);
	buf_append_str(b, " (");
	html_text(b, l->tz != NULL ? l->tz : "UTC", false);
	buf_append_str(b, ")</p>\n<div class=\"log\">\n");
}

static const char *const event_class[] = {
	[MUC_LOG_MESSAGE] = "msg",     [MUC_LOG_JOIN] = "join",
	[MUC_LOG_LEAVE] = "leave",     [MUC_LOG_NICK] = "nickchange",
	[MUC_LOG_SUBJECT] = "subject", [MUC_LOG_KICK] = "kick",
	[MUC_LOG_BAN] = "ban",         [MUC_LOG_ROOM_DESTROYED] = "destroyed",
};

static void reason(struct buf *b, const char *text)
{
	if (text == NULL || text[0] == '\0')
		return;
	buf_append_str(b, ": <span class=\"text\">");
	html_text(b, text, true);
	buf_append_str(b, "</span>");
}

static void nick_span(struct buf *b, const char *nick)
{
	buf_append_str(b, "<span class=\"nick\">");
	html_text(b, nick, false);
	buf_append_str(b, "</span>");
}

static void render_event(struct buf *b, const struct log_job *j, const struct tm *tm)
{
	bool action = j->kind == MUC_LOG_MESSAGE && j->text != NULL && str_has_prefix(j->text, "/me ");
	const char *cls = "msg";
	if (action)
		cls = "action";
	else if ((unsigned)j->kind < ARRAY_SIZE(event_class))
		cls = event_class[j->kind];
	buf_printf(b, "<div class=\"e %s\"><span class=\"ts\">[%02d:%02d:%02d]</span> ", cls, tm->tm_hour,
	           tm->tm_min, tm->tm_sec);
	const char *nick = j->nick != NULL ? j->nick : "";
	switch (j->kind) {
	case MUC_LOG_MESSAGE:
		if (action) {
			buf_append_str(b, "* ");
			nick_span(b, nick);
			buf_append_str(b, " <span class=\"text\">");
			html_text(b, j->text + 4, true);
		} else {
			buf_append_str(b, "<span class=\"nick\">&lt;");
			html_text(b, nick, false);
			buf_append_str(b, "&gt;</span> <span class=\"text\">");
			html_text(b, j->text, true);
		}
		buf_append_str(b, "</span>");
		break;
	case MUC_LOG_JOIN:
		nick_span(b, nick);
		buf_append_str(b, " joins the room");
		break;
	case MUC_LOG_LEAVE:
		nick_span(b, nick);
		buf_append_str(b, " leaves the room");
		reason(b, j->text);
		break;
	case MUC_LOG_NICK:
		nick_span(b, nick);
		buf_append_str(b, " is now known as ");
		nick_span(b, j->text);
		break;
	case MUC_LOG_SUBJECT:
		if (nick[0] != '\0') {
			nick_span(b, nick);
			buf_append_str(b, " has set the subject to: ");
		} else {
			buf_append_str(b, "The subject is: ");
		}
		buf_append_str(b, "<span class=\"text\">");
		html_text(b, j->text, true);
		buf_append_str(b, "</span>");
		break;
	case MUC_LOG_KICK:
		nick_span(b, nick);
		buf_append_str(b, " has been kicked");
		reason(b, j->text);
		break;
	case MUC_LOG_BAN:
		nick_span(b, nick);
		buf_append_str(b, " has been banned");
		reason(b, j->text);
		break;
	case MUC_LOG_ROOM_DESTROYED:
		buf_append_str(b, "The room has been destroyed");
		reason(b, j->text);
		break;
	}
	buf_append_str(b, "</div>\n");
}

/* ---- rooms (writer thread) ------------------------------------------------------- */

static void room_error(struct room *r, const char *what, const char *path)
{
	if (r->error_logged)
		return;
	r->error_logged = true;
	log_error("muc log: %s %s: %s (no more errors are logged for this room)", what, path,
	          strerror(errno));
}

static void room_close(struct muc_log *l, struct room *r)
{
	if (r->fd < 0)
		return;
	close(r->fd);
	r->fd = -1;
	l->open_files--;
}

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	return x < y ? -1 : x > y;
}

static bool all_digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

static void days_add(struct room *r, int day)
{
	if (r->ndays == r->days_cap) {
		r->days_cap = r->days_cap > 0 ? r->days_cap * 2 : 16;
		r->days = xrealloc(r->days, r->days_cap * sizeof(*r->days));
	}
	r->days[r->ndays++] = day;
}

static bool days_have(const struct room *r, int day)
{
	return r->ndays > 0 && bsearch(&day, r->days, r->ndays, sizeof(*r->days), cmp_int) != NULL;
}

/* Read the days that have a page: YYYY/MM/DD.html under the room's folder. */
static void room_scan(struct room *r)
{
	DIR *years = opendir(r->path);
	if (years == NULL)
		return;
	struct dirent *y;
	while ((y = readdir(years)) != NULL) {
		if (strlen(y->d_name) != 4 || !all_digits(y->d_name, 4))
			continue;
		char *ypath = xasprintf("%s/%s", r->path, y->d_name);
		DIR *months = opendir(ypath);
		struct dirent *m;
		while (months != NULL && (m = readdir(months)) != NULL) {
			if (strlen(m->d_name) != 2 || !all_digits(m->d_name, 2))
				continue;
			char *mpath = xasprintf("%s/%s", ypath, m->d_name);
			DIR *dd = opendir(mpath);
			struct dirent *d;
			while (dd != NULL && (d = readdir(dd)) != NULL) {
				if (strlen(d->d_name) != 7 || !all_digits(d->d_name, 2) ||
				    strcmp(d->d_name + 2, ".html") != 0)
					continue;
				days_add(r,
				         atoi(y->d_name) * 10000 + atoi(m->d_name) * 100 + atoi(d->d_name));
			}
			if (dd != NULL)
				closedir(dd);
			free(mpath);
		}
		if (months != NULL)
			closedir(months);
		free(ypath);
	}
	closedir(years);
	if (r->ndays > 1)
		qsort(r->days, r->ndays, sizeof(*r->days), cmp_int);
}

/* Write the room's index (through a temporary file and rename). */
static void room_write_index(struct muc_log *l, struct room *r)
{
	struct buf b = { 0 };
	page_head(&b, l, r, 0);
	buf_append_str(&b, "<ul class=\"days\">\n");
	for (size_t i = r->ndays; i-- > 0;) {
		buf_append_str(&b, "<li><a href=\"");
		day_href(&b, r->days[i]);
		buf_append_str(&b, "\">");
		day_label(&b, r->days[i]);
		buf_append_str(&b, "</a></li>\n");
	}
	buf_append_str(&b, "</ul>\n</body>\n</html>\n");

	char *path = xasprintf("%s/index.html", r->path);
	char *tmp = xasprintf("%s/.index.html.tmp", r->path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0) {
		room_error(r, "cannot create", tmp);
	} else if (write_all(fd, b.data, b.len, 0) < 0) {
		room_error(r, "cannot write", tmp);
		close(fd);
		unlink(tmp);
	} else if (close(fd) < 0 || rename(tmp, path) < 0) {
		room_error(r, "cannot replace", path);
		unlink(tmp);
	}
	free(tmp);
	free(path);
	buf_free(&b);
}

static char *day_path(const struct room *r, int day)
{
	return xasprintf("%s/%04d/%02d/%02d.html", r->path, day / 10000, day / 100 % 100, day % 100);
}

/* Offset of the footer of the page open on fd, or -1 when it has none. */
static off_t find_footer(int fd)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -1;
	off_t start = st.st_size > TAIL_READ ? st.st_size - TAIL_READ : 0;
	size_t want = (size_t)(st.st_size - start);
	char *tail = xmalloc(want + 1);
	ssize_t n = pread(fd, tail, want, start);
	off_t found = -1;
	if (n > 0) {
		size_t mlen = strlen(FOOTER_MARK);
		for (size_t i = (size_t)n >= mlen ? (size_t)n - mlen + 1 : 0; i-- > 0;) {
			if (memcmp(tail + i, FOOTER_MARK, mlen) == 0) {
				found = start + (off_t)i;
				break;
			}
		}
	}
	free(tail);
	return found;
}

/* Write the footer at off and cut the file there.  -1 with errno. */
static int put_footer(int fd, const struct room *r, int day, off_t off, const char *entry, size_t entry_len)
{
	struct buf b = { 0 };
	if (entry_len > 0)
		buf_append(&b, entry, entry_len);
	day_footer(&b, r, day);
	int ret = write_all(fd, b.data, b.len, off);
	if (ret == 0 && ftruncate(fd, off + (off_t)b.len) < 0)
		ret = -1;
	buf_free(&b);
	return ret;
}

/* A page that is not open gets its navigation renewed (a day was added
 * beside it). */
static void day_renew_footer(struct room *r, int day)
{
	char *path = day_path(r, day);
	int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		room_error(r, "cannot open", path);
	} else {
		off_t off = find_footer(fd);
		if (off >= 0 && put_footer(fd, r, day, off, NULL, 0) < 0)
			room_error(r, "cannot write", path);
		close(fd);
	}
	free(path);
}

static void close_oldest(struct muc_log *l)
{
	struct room *oldest = NULL;
	for (size_t i = 0; i < ROOM_BUCKETS; i++)
		for (struct room *r = l->rooms[i]; r != NULL; r = r->next)
			if (r->fd >= 0 && (oldest == NULL || r->last_used < oldest->last_used))
				oldest = r;
	if (oldest != NULL)
		room_close(l, oldest);
}

/* Open (or start) the room's page of day.  -1 after logging. */
static int day_open(struct muc_log *l, struct room *r, int day)
{
	char *path = day_path(r, day);
	char *dir = xstrndup(path, strlen(path) - strlen("/DD.html"));
	int ret = -1;
	if (mkdir_p(dir) < 0) {
		room_error(r, "cannot create", dir);
		goto out;
	}
	if (l->open_files >= MAX_OPEN)
		close_oldest(l);
	bool new_day = !days_have(r, day);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0) {
		room_error(r, "cannot open", path);
		goto out;
	}
	struct stat st;
	off_t off = -1;
	if (fstat(fd, &st) == 0 && st.st_size > 0) {
		off = find_footer(fd);
		if (off < 0) {
			/* Not a page of ours, or cut short: keep it aside. */
			char *aside = xasprintf("%s.broken", path);
			log_error("muc log: %s has no footer; moved to %s", path, aside);
			close(fd);
			fd = -1;
			if (rename(path, aside) == 0)
				fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
			free(aside);
			if (fd < 0) {
				room_error(r, "cannot start", path);
				goto out;
			}
		}
	}
	if (new_day) {
		days_add(r, day);
		qsort(r->days, r->ndays, sizeof(*r->days), cmp_int);
	}
	if (off < 0) {
		struct buf b = { 0 };
		day_header(&b, l, r, day);
		off = (off_t)b.len;
		int wr = write_all(fd, b.data, b.len, 0);
		buf_free(&b);
		if (wr < 0 || put_footer(fd, r, day, off, NULL, 0) < 0) {
			room_error(r, "cannot write", path);
			close(fd);
			goto out;
		}
	}
	if (new_day) {
		int prev, next;
		day_neighbours(r, day, &prev, &next);
		if (prev > 0)
			day_renew_footer(r, prev);
		if (next > 0)
			day_renew_footer(r, next);
		room_write_index(l, r);
	}
	r->fd = fd;
	r->day = day;
	r->footer_off = off;
	l->open_files++;
	ret = 0;
out:
	free(dir);
	free(path);
	return ret;
}

static struct room *room_get(struct muc_log *l, const char *jid, const char *title)
{
	uint32_t h = hash_str(jid) % ROOM_BUCKETS;
	struct room *r;
	for (r = l->rooms[h]; r != NULL; r = r->next)
		if (strcmp(r->jid, jid) == 0)
			break;
	if (r == NULL) {
		r = xcalloc(1, sizeof(*r));
		r->jid = xstrdup(jid);
		r->fd = -1;
		char *folder = room_folder(jid);
		if (folder != NULL) {
			r->path = xasprintf("%s/%s", l->dir, folder);
			free(folder);
		}
		r->next = l->rooms[h];
		l->rooms[h] = r;
	}
	if (title != NULL && !str_eq(title, r->title)) {
		free(r->title);
		r->title = xstrdup(title);
	}
	if (r->path != NULL && !r->loaded) {
		r->loaded = true;
		if (mkdir_p(r->path) < 0) {
			room_error(r, "cannot create", r->path);
		} else {
			room_scan(r);
			room_write_index(l, r);
		}
	}
	return r;
}

static void write_event(struct muc_log *l, struct log_job *j)
{
	struct room *r = room_get(l, j->room_jid, j->title);
	if (r->path == NULL) {
		if (!r->error_logged) {
			r->error_logged = true;
			log_error("muc log: a room JID of %zu bytes cannot be a folder name (empty, or "
			          "longer than %d bytes once escaped); its events are not logged",
			          strlen(j->room_jid), NAME_MAX_LEN);
		}
		return;
	}
	struct tm tm;
	local_time(l, j->when, &tm);
	int day = tm_day(&tm);
	if (r->fd >= 0 && r->day != day)
		room_close(l, r);
	if (r->fd < 0 && day_open(l, r, day) < 0)
		return;
	r->last_used = mono_now();

	struct buf entry = { 0 };
	render_event(&entry, j, &tm);
	if (put_footer(r->fd, r, day, r->footer_off, entry.data, entry.len) < 0) {
		char *path = day_path(r, day);
		room_error(r, "cannot write", path);
		free(path);
		/* Opened again with the next event, from its footer. */
		room_close(l, r);
	} else {
		r->footer_off += (off_t)entry.len;
	}
	buf_free(&entry);
}

static void close_idle(struct muc_log *l)
{
	double now = mono_now();
	for (size_t i = 0; i < ROOM_BUCKETS; i++)
		for (struct room *r = l->rooms[i]; r != NULL; r = r->next)
			if (r->fd >= 0 && now - r->last_used >= IDLE_CLOSE)
				room_close(l, r);
}

/* ---- jobs ------------------------------------------------------------------------ */

static void job_work(void *arg, void *thread_state)
{
	struct log_job *j = arg;
	if (j->sweep)
		close_idle(j->l);
	else
		write_event(j->l, j);
}

static void job_free(struct log_job *j)
{
	free(j->room_jid);
	free(j->title);
	free(j->nick);
	free(j->text);
	free(j);
}

static void job_done(void *arg, enum worker_status status)
{
	job_free(arg);
}

static void sweep_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	latency_begin(LATENCY_MODULE, "muc");
	struct muc_log *l = w->data;
	struct log_job *j = xcalloc(1, sizeof(*j));
	j->l = l;
	j->sweep = true;
	if (worker_submit(l->writer, 0, job_work, job_done, j, 0) == NULL)
		job_free(j); /* busy: the next sweep does it */
	latency_end();
}

/* ---- public interface ------------------------------------------------------------ */

static bool zone_known(const char *tz)
{
	if (tz[0] == '/' || strstr(tz, "..") != NULL)
		return false;
	for (const char *p = tz; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20)
			return false;
	const char *zdir = getenv("TZDIR");
	char *path = xasprintf("%s/%s", zdir != NULL ? zdir : "/usr/share/zoneinfo", tz);
	struct stat st;
	bool ok = stat(path, &st) == 0 && S_ISREG(st.st_mode);
	free(path);
	return ok;
}

struct muc_log *muc_log_new(struct ev_loop *loop, const struct muc_log_settings *s, char **error_r)
{
	*error_r = NULL;
	if (s->dir == NULL || s->dir[0] == '\0') {
		*error_r = xstrdup("muc log: no folder given");
		return NULL;
	}
	const char *tz = s->timezone;
	if (tz != NULL && (tz[0] == '\0' || strcmp(tz, "UTC") == 0))
		tz = NULL;
	if (tz != NULL && !zone_known(tz)) {
		*error_r = xasprintf("muc log: unknown time zone '%s'", tz);
		return NULL;
	}
	if (mkdir_p(s->dir) < 0) {
		*error_r = xasprintf("muc log: cannot create %s: %s", s->dir, strerror(errno));
		return NULL;
	}
	char *probe = xasprintf("%s/.write-test-XXXXXX", s->dir);
	int fd = mkstemp(probe);
	if (fd < 0) {
		*error_r = xasprintf("muc log: cannot write in %s: %s", s->dir, strerror(errno));
		free(probe);
		return NULL;
	}
	close(fd);
	unlink(probe);
	free(probe);

	if (tz != NULL) {
		pthread_mutex_lock(&tz_mutex);
		if (getenv("TZ") == NULL)
			setenv("TZ", DEFAULT_TZ, 1);
		pthread_mutex_unlock(&tz_mutex);
	}

	struct muc_log *l = xcalloc(1, sizeof(*l));
	l->loop = loop;
	l->dir = xstrdup(s->dir);
	l->css_url = s->css_url != NULL && s->css_url[0] != '\0' ? xstrdup(s->css_url) : NULL;
	l->tz = tz != NULL ? xstrdup(tz) : NULL;
	l->writer = worker_group_new(loop, "muc-log", 1, QUEUE_MAX, NULL, NULL, NULL);
	ev_timer_init(&l->sweep, sweep_cb, SWEEP_INTERVAL, SWEEP_INTERVAL);
	l->sweep.data = l;
	ev_timer_start(loop, &l->sweep);
	ev_unref(loop); /* the sweep alone does not keep the loop running */
	return l;
}

void muc_log_free(struct muc_log **lp)
{
	struct muc_log *l = *lp;
	if (l == NULL)
		return;
	*lp = NULL;
	ev_ref(l->loop);
	ev_timer_stop(l->loop, &l->sweep);
	/* Runs every queued job and joins the writer: its state is ours now. */
	worker_group_free(&l->writer);
	if (l->dropped > 0)
		log_warning("muc log %s: the writer is behind, %u event(s) dropped", l->dir, l->dropped);
	for (size_t i = 0; i < ROOM_BUCKETS; i++) {
		struct room *r = l->rooms[i];
		while (r != NULL) {
			struct room *next = r->next;
			room_close(l, r);
			free(r->jid);
			free(r->path);
			free(r->title);
			free(r->days);
			free(r);
			r = next;
		}
	}
	free(l->dir);
	free(l->css_url);
	free(l->tz);
	free(l);
}

static char *dup_or_null(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

void muc_log_event(struct muc_log *l, const char *room_jid, const char *title, double when,
                   enum muc_log_kind kind, const char *nick, const char *text)
{
	if (l == NULL || room_jid == NULL)
		return;
	struct log_job *j = xcalloc(1, sizeof(*j));
	j->l = l;
	j->kind = kind;
	j->when = when;
	j->room_jid = xstrdup(room_jid);
	j->title = dup_or_null(title);
	j->nick = dup_or_null(nick);
	j->text = dup_or_null(text);
	/* One writer thread: every room keeps its order. */
	if (worker_submit(l->writer, hash_str(room_jid), job_work, job_done, j, 0) != NULL)
		return;
	job_free(j);
	l->dropped++;
	double now = ev_now(l->loop);
	if (now - l->last_drop_warn >= DROP_WARN_INTERVAL) {
		log_warning("muc log %s: the writer is behind, %u event(s) dropped", l->dir, l->dropped);
		l->last_drop_warn = now;
		l->dropped = 0;
	}
}
