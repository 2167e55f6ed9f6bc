/*
 * Unit tests for modules/muc/muc-log.c: hostile text (markup, scripts,
 * javascript: and data: links, quotes that would end an attribute, broken
 * UTF-8, control characters, a 200 KB line, bidi overrides) comes out
 * escaped; day pages and the index link each other; the time zone moves
 * the day boundary; a page stays well-formed when it is appended to again
 * later or was left broken; room JIDs never escape the log folder; bad
 * settings are refused.  The last test runs tests/integration/check_xhtml.py
 * (an XML parser) over every page the others wrote.
 *
 * Pages go to $MUC_LOG_TEST_DIR, else tests/unit/test-muc-log.d under the
 * current folder (the build folder under make check), one subfolder per
 * test, and stay there for a look after the run.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/util.h"
#include "modules/muc/muc-log.h"

#define T_DAY 1796551200.0       /* 2026-12-06 10:00:00 UTC */
#define T_DEC5_2230 1796509800.0 /* 2026-12-05 22:30:00 UTC: 23:30 in Berlin */
#define T_DEC5_2330 1796513400.0 /* 2026-12-05 23:30:00 UTC: 00:30 on the 6th in Berlin */
#define T_JUL1_1200 1782907200.0 /* 2026-07-01 12:00:00 UTC: 14:00 in Berlin */

static char *base_dir;

/* ---- helpers ------------------------------------------------------------------ */

static void watchdog_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	fail_msg("the loop waited too long (a log write never finished?)");
}

/* Run the loop until the writer has nothing outstanding. */
static void run(struct ev_loop *loop)
{
	ev_timer wd;
	ev_timer_init(&wd, watchdog_cb, 20, 0);
	ev_timer_start(loop, &wd);
	ev_unref(loop);
	ev_run(loop, 0);
	ev_ref(loop);
	ev_timer_stop(loop, &wd);
}

static char *test_dir(const char *name)
{
	char *dir = xasprintf("%s/%s", base_dir, name);
	char *cmd = xasprintf("rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	return dir;
}

static struct muc_log *open_log(struct ev_loop *loop, const char *dir, const char *tz)
{
	struct muc_log_settings s = { .dir = dir, .css_url = NULL, .timezone = tz };
	char *error = NULL;
	struct muc_log *l = muc_log_new(loop, &s, &error);
	if (l == NULL)
		fail_msg("muc_log_new: %s", error);
	assert_null(error);
	return l;
}

static char *slurp(const char *path, size_t *len_r)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		fail_msg("cannot open %s: %s", path, strerror(errno));
	struct buf b = { 0 };
	char chunk[65536];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_append(&b, chunk, n);
	fclose(f);
	if (len_r != NULL)
		*len_r = b.len;
	if (b.data == NULL)
		return xstrdup("");
	return buf_steal(&b);
}

static char *slurp_at(const char *dir, const char *rel)
{
	char *path = xasprintf("%s/%s", dir, rel);
	char *s = slurp(path, NULL);
	free(path);
	return s;
}

static bool exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

#define assert_has(hay, needle)                                  \
	do {                                                     \
		if (strstr((hay), (needle)) == NULL)             \
			fail_msg("page lacks \"%s\"", (needle)); \
	} while (0)
#define assert_lacks(hay, needle)                                   \
	do {                                                        \
		if (strstr((hay), (needle)) != NULL)                \
			fail_msg("page contains \"%s\"", (needle)); \
	} while (0)

static unsigned count(const char *hay, const char *needle)
{
	unsigned n = 0;
	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

/* ---- tests -------------------------------------------------------------------- */

static void test_hostile_text(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	char *dir = test_dir("hostile");
	struct muc_log *l = open_log(loop, dir, NULL);
	const char *room = "hostile@conference.example.com";
	const char *title = "<b>Title</b> & \"co\" 'x'";
	const char *nick = "<nick\" onload=\"x\">";

	muc_log_event(l, room, title, T_DAY, MUC_LOG_JOIN, nick, NULL);
	muc_log_event(l, room, title, T_DAY + 1, MUC_LOG_MESSAGE, nick, "<script>alert(1)</script>");
	muc_log_event(l, room, title, T_DAY + 2, MUC_LOG_MESSAGE, nick,
	              "click javascript:alert(document.cookie) or JavaScript:void(0) now");
	muc_log_event(l, room, title, T_DAY + 3, MUC_LOG_MESSAGE, nick,
	              "see http://example.com/a?b=1&c=\"><script>x</script> ok");
	muc_log_event(l, room, title, T_DAY + 4, MUC_LOG_MESSAGE, nick,
	              "x\" onmouseover=\"alert(1)\" ' onclick='y' style=\"color:red\"");
	muc_log_event(l, room, title, T_DAY + 5, MUC_LOG_MESSAGE, nick,
	              "bad \xff\xfe | \xc3\x28 | \xed\xa0\x80 | \xf0\x9f\x98 | \xc0\xaf"
	              " end");
	muc_log_event(l, room, title, T_DAY + 6, MUC_LOG_MESSAGE, nick,
	              "ctl \x01\x02\x07\x1b[31m\x7f \xc2\x85 \xef\xbf\xbf done");
	muc_log_event(l, room, title, T_DAY + 7, MUC_LOG_MESSAGE,
	              "\xe2\x80\xae"
	              "evil",
	              "rtl \xe2\x80\xae txet \xe2\x80\xac back");
	muc_log_event(l, room, title, T_DAY + 8, MUC_LOG_MESSAGE, nick,
	              "/me waves <img src=x onerror=alert(1)>");
	muc_log_event(l, room, title, T_DAY + 9, MUC_LOG_MESSAGE, nick, "line1\nline2\r\nline3\ttab");
	muc_log_event(l, room, title, T_DAY + 10, MUC_LOG_MESSAGE, nick,
	              "(see https://example.org/path_(x)), xmpp:room@conference.example.com?join and "
	              "mailto:a@b.example. Not: data:text/html,<script>alert(1)</script> "
	              "vbscript:msgbox ftp://example.com file:///etc/passwd https:// http://x\"onclick=y");
	char *big = xmalloc(200 * 1024 + 1);
	memset(big, 'x', 200 * 1024);
	big[200 * 1024] = '\0';
	memcpy(big + 100000, " https://example.net/long ", 26);
	muc_log_event(l, room, title, T_DAY + 11, MUC_LOG_MESSAGE, nick, big);
	muc_log_event(l, room, title, T_DAY + 12, MUC_LOG_LEAVE, nick, "<i>bye</i>");
	muc_log_event(l, room, title, T_DAY + 13, MUC_LOG_NICK, nick, "new<nick>");
	muc_log_event(l, room, title, T_DAY + 14, MUC_LOG_SUBJECT, "new<nick>",
	              "Subject with https://x.example/?q=<1>");
	muc_log_event(l, room, title, T_DAY + 15, MUC_LOG_KICK, "kicked", "<b>reason</b>");
	muc_log_event(l, room, title, T_DAY + 16, MUC_LOG_BAN, "banned", NULL);
	muc_log_event(l, room, title, T_DAY + 17, MUC_LOG_ROOM_DESTROYED, NULL, "gone & done");
	run(loop);
	muc_log_free(&l);
	assert_null(l);

	size_t len;
	char *path = xasprintf("%s/%s/2026/12/06.html", dir, room);
	char *page = slurp(path, &len);
	free(path);
	assert_true(utf8_valid(page, len));
	assert_int_equal(strlen(page), len); /* no NUL */
	assert_true(len > 200 * 1024);

	/* Nothing hostile is left raw. */
	assert_lacks(page, "<script");
	assert_lacks(page, "<img");
	assert_lacks(page, "<b>");
	assert_lacks(page, "<i>");
	assert_lacks(page, "<nick");
	assert_lacks(page, "onload=\"");
	assert_lacks(page, "onmouseover=\"");
	assert_lacks(page, "onclick='");
	assert_lacks(page, "style=\"color");
	assert_lacks(page, "href=\"javascript");
	assert_lacks(page, "href=\"JavaScript");
	assert_lacks(page, "href=\"data");
	assert_lacks(page, "href=\"vbscript");
	assert_lacks(page, "href=\"ftp");
	assert_lacks(page, "href=\"file");
	assert_lacks(page, "href=\"https://\"");
	for (const char *c = "\x01\x02\x07\x1b\x7f\r"; *c != '\0'; c++)
		assert_null(memchr(page, *c, len));
	assert_lacks(page, "\xc2\x85");
	assert_lacks(page, "\xef\xbf\xbf");

	/* ... but escaped, and the good parts kept. */
	assert_has(page, "&lt;script&gt;alert(1)&lt;/script&gt;");
	assert_has(page, "&lt;b&gt;Title&lt;/b&gt; &amp; &quot;co&quot; &#39;x&#39;");
	assert_has(page, "&lt;&lt;nick&quot; onload=&quot;x&quot;&gt;&gt;");
	assert_has(page, "click javascript:alert(document.cookie) or JavaScript:void(0) now");
	assert_has(page, "<a rel=\"nofollow noopener\" href=\"http://example.com/a?b=1&amp;c=\">"
	                 "http://example.com/a?b=1&amp;c=</a>&quot;&gt;&lt;script&gt;");
	assert_has(page, "x&quot; onmouseover=&quot;alert(1)&quot; &#39; onclick=&#39;y&#39;");
	assert_has(page, "bad \xef\xbf\xbd\xef\xbf\xbd | \xef\xbf\xbd( | ");
	assert_has(page, "ctl [31m   done");
	assert_has(page, "\xe2\x80\xae"); /* bidi controls stay (the stylesheet isolates them) */
	assert_has(page, "<div class=\"e action\">");
	assert_has(page, "waves &lt;img src=x onerror=alert(1)&gt;");
	assert_has(page, "line1<br/>line2<br/>line3\ttab");
	assert_has(page, "(see <a rel=\"nofollow noopener\" href=\"https://example.org/path_(x)\">"
	                 "https://example.org/path_(x)</a>), ");
	assert_has(page, "<a rel=\"nofollow noopener\" href=\"xmpp:room@conference.example.com?join\">");
	assert_has(page,
	           "<a rel=\"nofollow noopener\" href=\"mailto:a@b.example\">mailto:a@b.example</a>. Not");
	assert_has(page, "data:text/html,&lt;script&gt;");
	assert_has(page, "<a rel=\"nofollow noopener\" href=\"http://x\">http://x</a>&quot;onclick=y");
	assert_has(page, "<a rel=\"nofollow noopener\" href=\"https://example.net/long\">");
	assert_has(page, "leaves the room: <span class=\"text\">&lt;i&gt;bye&lt;/i&gt;</span>");
	assert_has(page, "is now known as <span class=\"nick\">new&lt;nick&gt;</span>");
	assert_has(page, "href=\"https://x.example/?q=\">https://x.example/?q=</a>&lt;1&gt;");
	assert_has(page, "has been kicked: <span class=\"text\">&lt;b&gt;reason&lt;/b&gt;</span>");
	assert_has(page, "<span class=\"nick\">banned</span> has been banned</div>");
	assert_has(page, "The room has been destroyed: <span class=\"text\">gone &amp; done</span>");
	assert_has(page, "[10:00:17]");
	assert_has(page, "<div class=\"e join\">");
	assert_has(page, "<div class=\"e subject\">");
	assert_has(page, "<div class=\"e kick\">");
	assert_has(page, "<div class=\"e ban\">");
	assert_has(page, "<div class=\"e destroyed\">");
	assert_has(page, "<style type=\"text/css\">");
	assert_int_equal(count(page, "<!--end of log-->"), 1);
	assert_int_equal(count(page, "<div class=\"e "), 18);

	char *index = slurp_at(dir, "hostile@conference.example.com/index.html");
	assert_has(index, "<a href=\"2026/12/06.html\">2026-12-06</a>");
	assert_lacks(index, "<b>");
	free(index);
	free(page);
	free(big);
	free(dir);
	ev_loop_destroy(loop);
}

static void test_days_and_zone(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	char *dir = test_dir("zone");
	struct muc_log *l = open_log(loop, dir, "Europe/Berlin");
	const char *room = "zone@conference.example.com";
	muc_log_event(l, room, NULL, T_DEC5_2230, MUC_LOG_MESSAGE, "a", "late on the 5th");
	muc_log_event(l, room, NULL, T_DEC5_2330, MUC_LOG_MESSAGE, "a", "early on the 6th");
	/* An older day arrives last: it goes in front of the others. */
	muc_log_event(l, room, NULL, T_JUL1_1200, MUC_LOG_MESSAGE, "a", "in the summer");
	run(loop);
	muc_log_free(&l);

	char *d5 = slurp_at(dir, "zone@conference.example.com/2026/12/05.html");
	char *d6 = slurp_at(dir, "zone@conference.example.com/2026/12/06.html");
	char *j1 = slurp_at(dir, "zone@conference.example.com/2026/07/01.html");
	char *index = slurp_at(dir, "zone@conference.example.com/index.html");
	assert_has(d5, "[23:30:00]");
	assert_has(d5, "late on the 5th");
	assert_lacks(d5, "early on the 6th");
	assert_has(d6, "[00:30:00]");
	assert_has(d6, "early on the 6th");
	assert_has(j1, "[14:00:00]");
	assert_has(d5, "2026-12-05 (Europe/Berlin)");
	assert_has(d5, "<title>zone@conference.example.com \xe2\x80\x94 2026-12-05</title>");

	assert_has(d5, "<a class=\"next\" href=\"../../2026/12/06.html\">");
	assert_has(d5, "<a class=\"prev\" href=\"../../2026/07/01.html\">");
	assert_has(d6, "<a class=\"prev\" href=\"../../2026/12/05.html\">");
	assert_lacks(d6, "class=\"next\"");
	assert_has(j1, "<a class=\"next\" href=\"../../2026/12/05.html\">");
	assert_lacks(j1, "class=\"prev\"");
	assert_has(d5, "<a href=\"../../index.html\">");

	const char *p6 = strstr(index, "2026/12/06.html");
	const char *p5 = strstr(index, "2026/12/05.html");
	const char *p7 = strstr(index, "2026/07/01.html");
	assert_non_null(p6);
	assert_non_null(p5);
	assert_non_null(p7);
	assert_true(p6 < p5 && p5 < p7); /* newest first */
	free(d5);
	free(d6);
	free(j1);
	free(index);
	free(dir);
	ev_loop_destroy(loop);
}

static void test_utc_and_css_link(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	char *dir = test_dir("css");
	struct muc_log_settings s = { .dir = dir,
		                      .css_url = "/static/muc.css?a=1&b=\"2\"",
		                      .timezone = "UTC" };
	char *error = NULL;
	struct muc_log *l = muc_log_new(loop, &s, &error);
	assert_non_null(l);
	muc_log_event(l, "css@conference.example.com", "CSS", T_DEC5_2330, MUC_LOG_MESSAGE, "a", "hi");
	run(loop);
	muc_log_free(&l);
	char *page = slurp_at(dir, "css@conference.example.com/2026/12/05.html");
	assert_has(page, "[23:30:00]");
	assert_has(page, "<link rel=\"stylesheet\" type=\"text/css\" "
	                 "href=\"/static/muc.css?a=1&amp;b=&quot;2&quot;\"/>");
	assert_lacks(page, "<style");
	assert_has(page, "2026-12-05 (UTC)");
	free(page);
	free(dir);
	ev_loop_destroy(loop);
}

static void test_append_later(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	char *dir = test_dir("append");
	const char *room = "append@conference.example.com";
	struct muc_log *l = open_log(loop, dir, NULL);
	muc_log_event(l, room, NULL, T_DAY, MUC_LOG_MESSAGE, "a", "first run");
	run(loop);
	muc_log_free(&l);

	l = open_log(loop, dir, NULL);
	muc_log_event(l, room, NULL, T_DAY + 60, MUC_LOG_MESSAGE, "b", "second run");
	run(loop);
	muc_log_free(&l);

	size_t len;
	char *path = xasprintf("%s/%s/2026/12/06.html", dir, room);
	char *page = slurp(path, &len);
	assert_has(page, "first run");
	assert_has(page, "second run");
	assert_true(strstr(page, "first run") < strstr(page, "second run"));
	assert_int_equal(count(page, "<!--end of log-->"), 1);
	assert_int_equal(count(page, "</html>"), 1);
	assert_true(len > 8 && strcmp(page + len - 8, "</html>\n") == 0);
	free(page);

	/* A page cut short is put aside and a new one started. */
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("<html><body><p>cut", f);
	fclose(f);
	l = open_log(loop, dir, NULL);
	muc_log_event(l, room, NULL, T_DAY + 120, MUC_LOG_MESSAGE, "c", "third run");
	run(loop);
	muc_log_free(&l);
	page = slurp(path, &len);
	assert_has(page, "third run");
	assert_int_equal(count(page, "<!--end of log-->"), 1);
	char *aside = xasprintf("%s.broken", path);
	assert_true(exists(aside));
	unlink(aside); /* not a page: keep it out of the XHTML check */
	free(aside);
	free(page);
	free(path);
	free(dir);
	ev_loop_destroy(loop);
}

static void test_room_folder_names(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	char *dir = test_dir("names");
	struct muc_log *l = open_log(loop, dir, NULL);
	muc_log_event(l, "../../escape@conference.example.com", NULL, T_DAY, MUC_LOG_JOIN, "a", NULL);
	muc_log_event(l, "/abs@conference.example.com", NULL, T_DAY, MUC_LOG_JOIN, "a", NULL);
	muc_log_event(l, ".hidden@conference.example.com", NULL, T_DAY, MUC_LOG_JOIN, "a", NULL);
	muc_log_event(l, "..", NULL, T_DAY, MUC_LOG_JOIN, "a", NULL);
	muc_log_event(l, "ctl\x01\n%@conference.example.com", NULL, T_DAY, MUC_LOG_JOIN, "a", NULL);
	muc_log_event(l, "caf\xc3\xa9@conference.example.com", NULL, T_DAY, MUC_LOG_JOIN, "a", NULL);
	muc_log_event(l, "bad\xff@conference.example.com", NULL, T_DAY, MUC_LOG_JOIN, "a", NULL);
	muc_log_event(l, "", NULL, T_DAY, MUC_LOG_JOIN, "a", NULL);
	char long_jid[301];
	memset(long_jid, 'r', 300);
	long_jid[300] = '\0';
	muc_log_event(l, long_jid, NULL, T_DAY, MUC_LOG_JOIN, "a", NULL);
	run(loop);
	muc_log_free(&l);

	const char *folders[] = {
		"%2E.%2F..%2Fescape@conference.example.com",
		"%2Fabs@conference.example.com",
		"%2Ehidden@conference.example.com",
		"%2E.",
		"ctl%01%0A%25@conference.example.com",
		"caf\xc3\xa9@conference.example.com",
		"bad%FF@conference.example.com",
	};
	for (size_t i = 0; i < ARRAY_SIZE(folders); i++) {
		char *p = xasprintf("%s/%s/2026/12/06.html", dir, folders[i]);
		if (!exists(p))
			fail_msg("no page at %s", p);
		free(p);
	}
	char *out = xasprintf("%s/../escape@conference.example.com", dir);
	assert_false(exists(out));
	free(out);
	out = xasprintf("%s/../../escape@conference.example.com", dir);
	assert_false(exists(out));
	free(out);
	assert_false(exists("/abs@conference.example.com"));
	out = xasprintf("%s/%s", dir, long_jid);
	assert_false(exists(out));
	free(out);
	free(dir);
	ev_loop_destroy(loop);
}

static void test_bad_settings(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	char *dir = test_dir("settings");
	char *error = NULL;
	char *cmd = xasprintf("mkdir -p '%s'", dir);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	char *file = xasprintf("%s/file", dir);
	FILE *f = fopen(file, "w");
	assert_non_null(f);
	fclose(f);

	char *under_file = xasprintf("%s/logs", file);
	struct muc_log_settings s = { .dir = under_file };
	assert_null(muc_log_new(loop, &s, &error));
	assert_non_null(error);
	assert_non_null(strstr(error, under_file));
	free(error);

	const char *zones[] = { "Nowhere/Else", "../../etc/passwd", "/etc/localtime" };
	for (size_t i = 0; i < ARRAY_SIZE(zones); i++) {
		struct muc_log_settings z = { .dir = dir, .timezone = zones[i] };
		error = NULL;
		assert_null(muc_log_new(loop, &z, &error));
		assert_non_null(error);
		free(error);
	}
	unlink(file);
	free(file);
	free(under_file);
	free(dir);
	ev_loop_destroy(loop);
}

/* A folder that cannot be made is logged once, with its path; the room's
 * other days and other rooms go on. */
static void test_fs_error_logged_once(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	char *dir = test_dir("fserror");
	char *cmd = xasprintf("mkdir -p '%s/stuck@conference.example.com' && "
	                      "touch '%s/stuck@conference.example.com/2026'",
	                      dir, dir);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	char *logpath = xasprintf("%s.log", dir);
	unlink(logpath);
	const char *error = NULL;
	assert_int_equal(log_open_file(logpath, &error), 0);

	struct muc_log *l = open_log(loop, dir, NULL);
	for (int i = 0; i < 5; i++)
		muc_log_event(l, "stuck@conference.example.com", NULL, T_DAY + i, MUC_LOG_MESSAGE, "a",
		              "lost");
	muc_log_event(l, "stuck@conference.example.com", NULL, T_JUL1_1200 - 365 * 86400.0, MUC_LOG_MESSAGE,
	              "a", "a year before");
	muc_log_event(l, "fine@conference.example.com", NULL, T_DAY, MUC_LOG_MESSAGE, "a", "kept");
	run(loop);
	muc_log_free(&l);
	assert_int_equal(log_open_file(NULL, NULL), 0);

	char *logged = slurp(logpath, NULL);
	assert_int_equal(count(logged, "[error]"), 1);
	assert_has(logged, "stuck@conference.example.com/2026/12");
	free(logged);
	unlink(logpath);
	free(logpath);
	char *page = slurp_at(dir, "stuck@conference.example.com/2025/07/01.html");
	assert_has(page, "a year before");
	free(page);
	page = slurp_at(dir, "fine@conference.example.com/2026/12/06.html");
	assert_has(page, "kept");
	free(page);
	cmd = xasprintf("rm -f '%s/stuck@conference.example.com/2026'", dir);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	free(dir);
	ev_loop_destroy(loop);
}

/* Many events at once: what does not fit in the writer's queue is dropped
 * and counted in warnings; the rest is written, in order. */
static void test_full_queue_drops(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	char *dir = test_dir("flood");
	char *logpath = xasprintf("%s.log", dir);
	unlink(logpath);
	const char *error = NULL;
	assert_int_equal(log_open_file(logpath, &error), 0);
	struct muc_log *l = open_log(loop, dir, NULL);
	const unsigned total = 40000;
	for (unsigned i = 0; i < total; i++) {
		char text[32];
		snprintf(text, sizeof(text), "n%u.", i);
		muc_log_event(l, "flood@conference.example.com", NULL, T_DAY, MUC_LOG_MESSAGE, "a", text);
	}
	run(loop);
	muc_log_free(&l);
	assert_int_equal(log_open_file(NULL, NULL), 0);

	char *logged = slurp(logpath, NULL);
	unsigned dropped = 0;
	for (const char *p = logged; (p = strstr(p, "the writer is behind, ")) != NULL; p++) {
		unsigned n;
		assert_int_equal(sscanf(p, "the writer is behind, %u event(s) dropped", &n), 1);
		dropped += n;
	}
	char *page = slurp_at(dir, "flood@conference.example.com/2026/12/06.html");
	unsigned written = count(page, "<div class=\"e msg\">");
	assert_int_equal(written + dropped, total);
	/* In order: each number is greater than the one before. */
	long last = -1;
	for (const char *p = page; (p = strstr(p, "<span class=\"text\">n")) != NULL; p++) {
		long n = strtol(p + strlen("<span class=\"text\">n"), NULL, 10);
		assert_true(n > last);
		last = n;
	}
	print_message("%u written, %u dropped\n", written, dropped);
	free(page);
	free(logged);
	unlink(logpath);
	free(logpath);
	free(dir);
	ev_loop_destroy(loop);
}

/* Every page written above parses as XHTML with nothing active in it. */
static void test_pages_are_xhtml(void **state)
{
	const char *dirs[] = { getenv("PARLEY_SRCDIR"), getenv("top_srcdir"), ".", "..", "../.." };
	char *script = NULL;
	for (size_t i = 0; i < ARRAY_SIZE(dirs) && script == NULL; i++) {
		if (dirs[i] == NULL)
			continue;
		script = xasprintf("%s/tests/integration/check_xhtml.py", dirs[i]);
		if (access(script, R_OK) != 0)
			xfree(&script);
	}
	if (script == NULL)
		fail_msg("cannot find tests/integration/check_xhtml.py: set PARLEY_SRCDIR or top_srcdir");
	const char *b = base_dir;
	char *cmds[] = {
		xasprintf(
		        "python3 '%s' '%s/hostile' '%s/zone' '%s/append' '%s/names' '%s/fserror' '%s/flood'",
		        script, b, b, b, b, b, b),
		xasprintf("python3 '%s' --css-link '%s/css'", script, b),
	};
	for (size_t i = 0; i < ARRAY_SIZE(cmds); i++) {
		int rc = system(cmds[i]);
		if (WIFEXITED(rc) && WEXITSTATUS(rc) == 127) {
			free(cmds[0]);
			free(cmds[1]);
			free(script);
			skip(); /* no python3 */
		}
		if (rc != 0)
			fail_msg("%s failed (%d)", cmds[i], rc);
	}
	free(cmds[0]);
	free(cmds[1]);
	free(script);
}

int main(void)
{
	const char *env = getenv("MUC_LOG_TEST_DIR");
	base_dir = xstrdup(env != NULL && env[0] != '\0' ? env : "tests/unit/test-muc-log.d");
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hostile_text),         cmocka_unit_test(test_days_and_zone),
		cmocka_unit_test(test_utc_and_css_link),     cmocka_unit_test(test_append_later),
		cmocka_unit_test(test_room_folder_names),    cmocka_unit_test(test_bad_settings),
		cmocka_unit_test(test_fs_error_logged_once), cmocka_unit_test(test_full_queue_drops),
		cmocka_unit_test(test_pages_are_xhtml),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	free(base_dir);
	return rc;
}
