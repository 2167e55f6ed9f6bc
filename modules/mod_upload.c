/*
 * mod_upload: XEP-0363 HTTP File Upload.  Loop thread, with file I/O on a
 * worker thread.
 *
 * Each host running the module serves an upload service domain
 * (upload.HOST by default, in the host's disco#items).  A local user of
 * the host asks it for a slot (<request filename size content-type/>) and
 * gets a PUT URL and a GET URL under the configured base URL: the PUT URL
 * carries an expiry, the owner and an HMAC-SHA256 over (path, size,
 * content-type, empty when the request named none, expiry, owner) keyed by
 * the module's secret (secret_file, or random at start).  Because all of a slot is in its signed PUT URL, a
 * URL from before a restart (same secret_file) is taken up again.
 *
 * The HTTP side is mounted at `path` on every http listener (one mount
 * per distinct path, shared by the hosts that use it).  Slot ids are 32
 * random characters (a-z0-9) and key a global table; a URL is
 * PATH/ID/FILENAME and must match a slot exactly, so no request names a
 * file of its own choosing.  Files live in `folder` as ID (the bytes) and
 * ID.meta (owner, file name, content type, size): the name a user gave
 * never reaches the file system.
 *
 * Invariants:
 * - Slots are loop-thread objects.  Jobs carry copies (id, paths, bytes)
 *   and find their slot and instance again by id and serial when they
 *   come back, so a slot or host that went meanwhile is simply skipped.
 * - Writing (PUT), reading (GET), purging and the folder scan run on one
 *   worker thread ("upload"), in order; the HTTP reply is deferred until
 *   the job is done.  Files never pass whole through memory: the path is
 *   mounted with http_mount_streaming, a PUT's body comes in pieces that
 *   are appended to a part file (ID.N.part) by one job at a time, reading
 *   the socket paused while a job is out and the next piece is full, and
 *   the file and its meta file are renamed into place at the end (a PUT
 *   cut off or failed removes its part file); a GET reads one piece at a
 *   time and asks for the next when the connection has drained it.  An
 *   upload or download holds about two pieces (256K each).
 * - A user's quota counts the sizes of the stored files and of the slots
 *   handed out and not yet expired.
 * - The scan (start-up, then periodically) deletes files older than
 *   expire_after, and stray partial files (over an hour old), and tells the loop which slots
 *   exist on disk (so that the table and the quotas survive a restart).
 */
#include "builtin.h"
#include "upload.h"
#include "server/host.h"
#include "server/http.h"
#include "server/router.h"
#include "server/server.h"
#include "lib/htab.h"
#include "lib/log.h"
#include "lib/worker.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define NS_UPLOAD "urn:xmpp:http:upload:0"
#define SLOT_ID_LEN 32
#define MAX_FILENAME 255
#define MAX_CTYPE 128
#define SECRET_LEN 32
#define QUEUE_MAX 256
#define MAX_PENDING 64 /* slots of one user handed out and not used yet */

struct upload_settings {
	char *host;
	char *url;
	char *path;
	char *folder;
	size_t max_file_size;
	size_t quota;
	double put_timeout;
	double expire_after;
	char *secret_file;
};

#define OFF(f) offsetof(struct upload_settings, f)
static const struct opt_def upload_options[] = {
	{ "host", OPT_STRING, OFF(host), "upload.@HOST@", NULL, 0, 0,
	  "the upload service's domain (@HOST@ is the virtual host)" },
	{ "url", OPT_STRING, OFF(url), NULL, NULL, 0, 0,
	  "the base URL of the slots, as clients reach the http listener (required; @HOST@ is the "
	  "virtual host), e.g. https://@HOST@:5443/upload/; its path is normally `path`" },
	{ "path", OPT_STRING, OFF(path), "/upload/", NULL, 0, 0,
	  "where the http listeners serve uploads (starts and ends with /)" },
	{ "folder", OPT_STRING, OFF(folder), NULL, NULL, 0, 0,
	  "the folder that holds the files (required; created if missing)" },
	{ "max_file_size", OPT_SIZE, OFF(max_file_size), "1M", NULL, 1, 1L << 40,
	  "the largest file a slot is given for (advertised in disco; at most 1T).  Uploads and "
	  "downloads go through the folder a piece at a time, so this is not bounded by memory "
	  "or by http.max_body_size" },
	{ "quota", OPT_SIZE, OFF(quota), "100M", NULL, 0, 0,
	  "total bytes one user may have stored and reserved (0: no quota)" },
	{ "put_timeout", OPT_DURATION, OFF(put_timeout), "5m", NULL, 0, 0,
	  "how long the PUT URL of a slot stays valid" },
	{ "expire_after", OPT_DURATION, OFF(expire_after), "168h", NULL, 0, 0,
	  "files older than this are deleted (0: kept forever)" },
	{ "secret_file", OPT_STRING, OFF(secret_file), NULL, NULL, 0, 0,
	  "a file whose first line keys the URL signatures (default: a random key at start, so "
	  "unused PUT URLs die with a restart)" },
	OPT_END
};

enum slot_state { SLOT_PENDING, SLOT_WRITING, SLOT_STORED };

struct upload;

struct slot {
	struct htab_link link;
	char id[SLOT_ID_LEN + 1];
	struct upload *up;
	char *owner; /* the user's node */
	char *filename;
	char *ctype;      /* what GET serves */
	bool ctype_named; /* the slot request named it: a PUT must match it */
	size_t size;
	double put_expires; /* wall clock */
	double stored_at;   /* wall clock (mtime for a scanned file) */
	enum slot_state state;
	unsigned seen; /* the scan that last found the file */
};

struct upload {
	struct upload *next;
	unsigned serial;
	struct host *h;
	const struct upload_settings *set;
	char *domain;
	char *url; /* the base URL, @HOST@ replaced, ending in / */
	unsigned char secret[SECRET_LEN];
	size_t secret_len;
	ev_timer timer;
	bool scanning;
	unsigned purge_seq; /* purges so far: a scan older than one adds nothing */
	unsigned scans;     /* scans done */
};

struct mount {
	struct mount *next;
	char *path;
	unsigned refs;
};

static struct htab slots;
static struct upload *instances;
static struct mount *mounts;
static struct worker_group *group;
static unsigned next_serial = 1;

/* ---- small helpers ------------------------------------------------------- */

static double wall_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static struct upload *instance_by_serial(unsigned serial)
{
	for (struct upload *u = instances; u != NULL; u = u->next)
		if (u->serial == serial)
			return u;
	return NULL;
}

static struct slot *slot_find(const char *id)
{
	uint32_t hash = hash_str(id);
	for (struct htab_link *l = htab_chain(&slots, hash); l != NULL; l = l->next) {
		struct slot *s = (struct slot *)l;
		if (l->hash == hash && strcmp(s->id, id) == 0)
			return s;
	}
	return NULL;
}

static void slot_free(struct slot *s)
{
	htab_remove(&slots, &s->link);
	free(s->owner);
	free(s->filename);
	free(s->ctype);
	free(s);
}

/* ctype NULL: a slot that names no content type (the PUT's is taken). */
static struct slot *slot_add(struct upload *up, const char *id, const char *owner, const char *filename,
                             const char *ctype, size_t size)
{
	struct slot *s = xcalloc(1, sizeof(*s));
	snprintf(s->id, sizeof(s->id), "%s", id);
	s->up = up;
	s->owner = xstrdup(owner);
	s->filename = xstrdup(filename);
	s->ctype = xstrdup(ctype != NULL ? ctype : "application/octet-stream");
	s->ctype_named = ctype != NULL;
	s->size = size;
	htab_add(&slots, &s->link, hash_str(s->id));
	return s;
}

/* Call fn on every slot (fn may free the one it is given). */
static void slots_foreach(void (*fn)(struct slot *s, void *ctx), void *ctx)
{
	for (unsigned b = 0; b < slots.nbuckets; b++) {
		struct htab_link *l = slots.buckets[b];
		while (l != NULL) {
			struct htab_link *next = l->next;
			fn((struct slot *)l, ctx);
			l = next;
		}
	}
}

static bool slot_expired(const struct slot *s, double now)
{
	if (s->state == SLOT_PENDING)
		return now > s->put_expires;
	if (s->state == SLOT_STORED)
		return s->up->set->expire_after > 0 && now > s->stored_at + s->up->set->expire_after;
	return false;
}

static bool valid_id(const char *id, size_t len)
{
	if (len != SLOT_ID_LEN)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((id[i] >= 'a' && id[i] <= 'z') || (id[i] >= '0' && id[i] <= '9')))
			return false;
	return true;
}

/* A file name a slot may carry: UTF-8, no path separators or control
 * characters, not starting with a dot, at most MAX_FILENAME bytes. */
static bool valid_filename(const char *f)
{
	size_t len = strlen(f);
	if (len == 0 || len > MAX_FILENAME || f[0] == '.' || !utf8_valid(f, len))
		return false;
	for (const unsigned char *p = (const unsigned char *)f; *p; p++)
		if (*p < 0x20 || *p == 0x7f || *p == '/' || *p == '\\')
			return false;
	return true;
}

/* type/subtype with optional parameters, printable ASCII. */
static bool valid_ctype(const char *c)
{
	size_t len = strlen(c);
	if (len == 0 || len > MAX_CTYPE || strchr(c, '/') == NULL)
		return false;
	for (const unsigned char *p = (const unsigned char *)c; *p; p++)
		if (*p < 0x20 || *p >= 0x7f || *p == '"' || *p == '\\')
			return false;
	return true;
}

/* The next ';'-separated piece of a media type at *p, without the
 * whitespace around it (RFC 9110 section 5.6.6); false at the end. */
static bool ctype_piece(const char **p, const char **piece, size_t *len)
{
	const char *s = *p;
	while (*s == ' ' || *s == '\t' || *s == ';')
		s++;
	if (*s == '\0')
		return false;
	const char *e = strchr(s, ';');
	if (e == NULL)
		e = s + strlen(s);
	*p = e;
	while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	*piece = s;
	*len = (size_t)(e - s);
	return true;
}

/* Two valid_ctype media types are the same (RFC 9110 section 8.3.1): type,
 * subtype and parameter names in any case, the charset's value too, other
 * values exactly, in the same order; whitespace around ';' does not count. */
static bool ctype_same(const char *a, const char *b)
{
	for (bool first = true;; first = false) {
		const char *pa, *pb;
		size_t la, lb;
		bool ha = ctype_piece(&a, &pa, &la), hb = ctype_piece(&b, &pb, &lb);
		if (!ha || !hb)
			return ha == hb;
		if (la != lb)
			return false;
		const char *eq = first ? NULL : memchr(pa, '=', la);
		size_t name = eq != NULL ? (size_t)(eq - pa) : la;
		if (strncasecmp(pa, pb, name) != 0)
			return false;
		bool fold = name == 7 && strncasecmp(pa, "charset", 7) == 0;
		if (fold ? strncasecmp(pa + name, pb + name, la - name) != 0
		         : memcmp(pa + name, pb + name, la - name) != 0)
			return false;
	}
}

static void pct_encode(struct buf *b, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		    *p == '-' || *p == '.' || *p == '_' || *p == '~')
			buf_append(b, p, 1);
		else
			buf_printf(b, "%%%02X", *p);
	}
}

/* Append the form of media type c that every ctype_same spelling of it
 * shares: pieces joined by ';' without whitespace, type, subtype,
 * parameter names and the charset's value in lower case. */
static void ctype_canonical(struct buf *b, const char *c)
{
	const char *piece;
	size_t len;
	for (bool first = true; ctype_piece(&c, &piece, &len); first = false) {
		const char *eq = first ? NULL : memchr(piece, '=', len);
		size_t name = eq != NULL ? (size_t)(eq - piece) : len;
		bool fold = name == 7 && strncasecmp(piece, "charset", 7) == 0;
		if (!first)
			buf_append(b, ";", 1);
		for (size_t i = 0; i < len; i++) {
			char ch = piece[i];
			if ((i < name || fold) && ch >= 'A' && ch <= 'Z')
				ch = (char)(ch - 'A' + 'a');
			buf_append(b, &ch, 1);
		}
	}
}

/* Lower-case hex HMAC-SHA256 of the PUT parameters into out[65].  The
 * content type is signed in its canonical form, so that a slot taken up
 * again after a restart (slot_revive, which knows only the PUT's spelling)
 * accepts what ctype_same accepts before it. */
static void put_signature(const struct upload *up, const char *id, const char *filename, size_t size,
                          const char *ctype, long long expires, const char *owner, char out[65])
{
	struct buf m = { 0 };
	buf_printf(&m, "PUT\n%s%s/%s\n%zu\n", up->set->path, id, filename, size);
	ctype_canonical(&m, ctype);
	buf_printf(&m, "\n%lld\n%s@%s", expires, owner, up->h->name);
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	if (HMAC(EVP_sha256(), up->secret, (int)up->secret_len, (const unsigned char *)m.data, m.len, md,
	         &md_len) == NULL)
		md_len = 0;
	buf_free(&m);
	static const char hex[] = "0123456789abcdef";
	for (unsigned i = 0; i < 32; i++) {
		out[2 * i] = i < md_len ? hex[md[i] >> 4] : '0';
		out[2 * i + 1] = i < md_len ? hex[md[i] & 15] : '0';
	}
	out[64] = '\0';
	explicit_bzero(md, sizeof(md));
}

/* Bytes one user holds on an instance (stored, being written, reserved). */
struct usage_ctx {
	const struct upload *up;
	const char *owner;
	double now;
	size_t total;
	unsigned pending;
};

static void usage_one(struct slot *s, void *ctx)
{
	struct usage_ctx *uc = ctx;
	if (s->up == uc->up && strcmp(s->owner, uc->owner) == 0 && !slot_expired(s, uc->now)) {
		uc->total += s->size;
		if (s->state == SLOT_PENDING)
			uc->pending++;
	}
}

static size_t user_usage(const struct upload *up, const char *owner, unsigned *pending_r)
{
	struct usage_ctx uc = { .up = up, .owner = owner, .now = wall_now() };
	slots_foreach(usage_one, &uc);
	*pending_r = uc.pending;
	return uc.total;
}

/* Drop the slots of up whose PUT URL expired unused a minute ago (until
 * then a late PUT is told that its URL expired). */
static void sweep_one(struct slot *s, void *ctx)
{
	struct upload *up = ctx;
	if (s->up == up && s->state == SLOT_PENDING && slot_expired(s, wall_now() - 60))
		slot_free(s);
}

/* ---- XMPP side ----------------------------------------------------------------- */

static void send_iq(struct xml_node *res, const struct jid *from, const struct jid *to)
{
	router_route(res, from, to);
	xml_unref(&res);
}

static void iq_error_app(struct xml_node *iq, const struct jid *svc, const struct jid *user,
                         enum stanza_error cond, const char *text, struct xml_node *app)
{
	struct xml_node *reply = stanza_error_reply(iq, cond, text);
	if (reply != NULL) {
		struct xml_node *err = xml_child(reply, "error", NULL);
		if (err != NULL && app != NULL)
			xml_append_copy(err, app);
		send_iq(reply, svc, user);
	}
	if (app != NULL)
		xml_unref(&app);
}

static void add_field(struct xml_node *x, const char *var, const char *type, const char *value)
{
	struct xml_node *f = xml_add_child(x, "field", NULL);
	xml_set_attr(f, "var", var);
	if (type != NULL)
		xml_set_attr(f, "type", type);
	xml_add_text(xml_add_child(f, "value", NULL), value, strlen(value));
}

static void disco_info(struct upload *up, struct xml_node *iq, const struct jid *from, const struct jid *to)
{
	struct xml_node *res = stanza_iq_result(iq);
	struct xml_node *q = xml_add_child(res, "query", NS_DISCO_INFO);
	struct xml_node *id = xml_add_child(q, "identity", NULL);
	xml_set_attr(id, "category", "store");
	xml_set_attr(id, "type", "file");
	xml_set_attr(id, "name", "HTTP File Upload");
	xml_set_attr(xml_add_child(q, "feature", NULL), "var", NS_DISCO_INFO);
	xml_set_attr(xml_add_child(q, "feature", NULL), "var", NS_UPLOAD);
	struct xml_node *x = xml_add_child(q, "x", NS_DATA_FORMS);
	xml_set_attr(x, "type", "result");
	add_field(x, "FORM_TYPE", "hidden", NS_UPLOAD);
	char max[32];
	snprintf(max, sizeof(max), "%zu", up->set->max_file_size);
	add_field(x, "max-file-size", NULL, max);
	send_iq(res, to, from);
}

static void request_slot(struct upload *up, struct xml_node *iq, const struct xml_node *req,
                         const struct jid *from, const struct jid *to)
{
	if (from->node == NULL || strcmp(from->domain, up->h->name) != 0) {
		char *who = jid_to_string(from);
		log_info("upload %s: slot refused to %s (not a user of %s)", up->domain, who, up->h->name);
		free(who);
		iq_error_app(iq, to, from, SE_FORBIDDEN, "only users of this server may upload", NULL);
		return;
	}
	const char *filename = xml_attr(req, "filename");
	const char *size_s = xml_attr(req, "size");
	const char *ctype = xml_attr(req, "content-type");
	if (filename == NULL || size_s == NULL) {
		iq_error_app(iq, to, from, SE_BAD_REQUEST, "filename and size are required", NULL);
		return;
	}
	char *end;
	errno = 0;
	unsigned long long size = strtoull(size_s, &end, 10);
	if (*size_s == '\0' || *size_s == '-' || *end != '\0' || errno != 0) {
		iq_error_app(iq, to, from, SE_BAD_REQUEST, "the size is not a number", NULL);
		return;
	}
	if (!valid_filename(filename)) {
		iq_error_app(iq, to, from, SE_NOT_ACCEPTABLE, "the file name is not acceptable", NULL);
		return;
	}
	if (ctype != NULL && *ctype == '\0')
		ctype = NULL; /* none named: the PUT's is taken */
	if (ctype != NULL && !valid_ctype(ctype)) {
		iq_error_app(iq, to, from, SE_BAD_REQUEST, "the content type is not valid", NULL);
		return;
	}
	if (size == 0 || size > up->set->max_file_size) {
		struct xml_node *app = NULL;
		if (size > up->set->max_file_size) {
			app = xml_new("file-too-large", NS_UPLOAD);
			char max[32];
			snprintf(max, sizeof(max), "%zu", up->set->max_file_size);
			xml_add_text(xml_add_child(app, "max-file-size", NULL), max, strlen(max));
		}
		iq_error_app(iq, to, from, SE_NOT_ACCEPTABLE,
		             size == 0 ? "the file is empty" : "the file is too large", app);
		return;
	}
	slots_foreach(sweep_one, up);
	unsigned pending;
	size_t used = user_usage(up, from->node, &pending);
	if (pending >= MAX_PENDING) {
		iq_error_app(
		        iq, to, from, SE_RESOURCE_CONSTRAINT,
		        "too many slots are waiting for their upload: use them or wait for them to expire",
		        NULL);
		return;
	}
	if (up->set->quota > 0 && used + size > up->set->quota) {
		log_info("upload %s: %s@%s is over the quota of %zu bytes", up->domain, from->node,
		         up->h->name, up->set->quota);
		iq_error_app(iq, to, from, SE_RESOURCE_CONSTRAINT,
		             "the upload quota is used up: delete files or wait for them to expire", NULL);
		return;
	}
	char id[SLOT_ID_LEN + 1];
	do
		random_id(id, SLOT_ID_LEN);
	while (slot_find(id) != NULL);
	struct slot *s = slot_add(up, id, from->node, filename, ctype, (size_t)size);
	double now = wall_now();
	s->put_expires = now + up->set->put_timeout;
	long long e = (long long)s->put_expires;
	char sig[65];
	put_signature(up, id, filename, s->size, ctype != NULL ? ctype : "", e, s->owner, sig);

	struct buf get = { 0 };
	buf_printf(&get, "%s%s/", up->url, id);
	pct_encode(&get, filename);
	struct buf put = { 0 };
	buf_append(&put, get.data, get.len);
	char *owner_hex = hex_encode(s->owner, strlen(s->owner));
	buf_printf(&put, "?e=%lld&o=%s&v=%s", e, owner_hex, sig);
	free(owner_hex);

	struct xml_node *res = stanza_iq_result(iq);
	struct xml_node *sl = xml_add_child(res, "slot", NS_UPLOAD);
	xml_set_attr(xml_add_child(sl, "put", NULL), "url", put.data);
	xml_set_attr(xml_add_child(sl, "get", NULL), "url", get.data);
	log_debug("upload %s: slot %s for %s@%s: %zu bytes", up->domain, id, from->node, up->h->name,
	          s->size);
	buf_free(&get);
	buf_free(&put);
	send_iq(res, to, from);
}

static void service_route(void *ctx, struct xml_node *stanza, const struct jid *from, const struct jid *to)
{
	struct upload *up = ctx;
	if (stanza_kind(stanza) != STANZA_IQ) {
		if (stanza_kind(stanza) == STANZA_MESSAGE)
			router_bounce(stanza, SE_SERVICE_UNAVAILABLE, NULL);
		return;
	}
	const char *type = xml_attr(stanza, "type");
	if (type == NULL || (strcmp(type, "get") != 0 && strcmp(type, "set") != 0))
		return;
	struct xml_node *q = xml_first_element(stanza);
	if (q == NULL || xml_element_count(stanza) != 1 || to->node != NULL || to->resource != NULL) {
		router_bounce(stanza, q == NULL ? SE_BAD_REQUEST : SE_SERVICE_UNAVAILABLE, NULL);
		return;
	}
	bool get = strcmp(type, "get") == 0;
	if (get && xml_is(q, "query", NS_DISCO_INFO) && xml_attr(q, "node") == NULL)
		disco_info(up, stanza, from, to);
	else if (get && xml_is(q, "query", NS_DISCO_ITEMS) && xml_attr(q, "node") == NULL) {
		struct xml_node *res = stanza_iq_result(stanza);
		xml_add_child(res, "query", NS_DISCO_ITEMS);
		send_iq(res, to, from);
	} else if (get && xml_is(q, "request", NS_UPLOAD))
		request_slot(up, stanza, q, from, to);
	else
		router_bounce(stanza, SE_SERVICE_UNAVAILABLE, NULL);
}

static enum hook_result disco_items_hook(struct host *h, void *args, void *ctx)
{
	(void)h;
	struct upload *up = ctx;
	struct hook_disco *hd = args;
	if (hd->node != NULL)
		return HOOK_CONTINUE;
	struct xml_node *it = xml_add_child(hd->query, "item", NULL);
	xml_set_attr(it, "jid", up->domain);
	xml_set_attr(it, "name", "HTTP File Upload");
	return HOOK_CONTINUE;
}

/* ---- file jobs (worker thread) -------------------------------------------- */

enum job_kind { JOB_PUT_CHUNK, JOB_PUT_FINISH, JOB_PUT_ABORT, JOB_READ, JOB_SCAN, JOB_PURGE };

struct put;
struct get;

struct found {
	char id[SLOT_ID_LEN + 1];
	char *owner, *filename, *ctype;
	size_t size;
	double mtime;
};

struct job {
	enum job_kind kind;
	unsigned serial; /* the instance */
	char id[SLOT_ID_LEN + 1];
	char *folder;
	/* the loop's transfer (only touched on the loop) */
	struct put *put;
	struct get *get;
	/* put: bytes to append to part (opened by the first job when fd is
	 * -1), then for the last one meta to mpart and both renamed; read:
	 * [start, start + len) of the file, opened when fd is -1 */
	int fd;
	char *part, *mpart;
	char *data;
	size_t len;
	char *meta;
	uint64_t start;
	int err; /* errno of a failure, 0 */
	/* scan */
	double expire_after, now;
	char **deleted;
	size_t ndeleted;
	struct found *found;
	size_t nfound;
	unsigned purge_seq; /* scan: the instance's purge_seq at submission */
	/* purge: ids to delete (in deleted), whom to tell */
	upload_purge_done_fn *purge_done;
	void *purge_ctx;
};

static void job_free(struct job *j)
{
	free(j->folder);
	free(j->part);
	free(j->mpart);
	free(j->data);
	free(j->meta);
	for (size_t i = 0; i < j->ndeleted; i++)
		free(j->deleted[i]);
	free(j->deleted);
	for (size_t i = 0; i < j->nfound; i++) {
		free(j->found[i].owner);
		free(j->found[i].filename);
		free(j->found[i].ctype);
	}
	free(j->found);
	free(j);
}

static int write_all(int fd, const char *data, size_t len)
{
	size_t off = 0;
	while (off < len) {
		ssize_t n = write(fd, data + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		off += (size_t)n;
	}
	return 0;
}

static int write_file(const char *path, const char *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0)
		return -1;
	if (write_all(fd, data, len) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return close(fd);
}

/* A piece of a PUT's body: appended to its part file (ID.N.part, N told
 * apart the attempts at one slot); the last piece also closes it, writes
 * the meta file and renames both into place, the meta file last (a file
 * counts once its meta file is there). */
static void job_put(struct job *j)
{
	if (j->fd < 0) {
		j->fd = open(j->part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
		if (j->fd < 0) {
			j->err = errno;
			return;
		}
	}
	if (write_all(j->fd, j->data, j->len) < 0) {
		j->err = errno;
		return;
	}
	free(j->data); /* the worker frees what it wrote: the loop never waits on it */
	j->data = NULL;
	if (j->kind != JOB_PUT_FINISH)
		return;
	int fd = j->fd;
	j->fd = -1;
	char *data = xasprintf("%s/%s", j->folder, j->id);
	char *meta = xasprintf("%s/%s.meta", j->folder, j->id);
	if (close(fd) < 0 || write_file(j->mpart, j->meta, strlen(j->meta)) < 0 ||
	    rename(j->part, data) < 0 || rename(j->mpart, meta) < 0) {
		j->err = errno != 0 ? errno : EIO;
		unlink(j->part);
		unlink(j->mpart);
		unlink(data);
	}
	free(data);
	free(meta);
}

/* A PUT given up: its part file goes. */
static void job_put_abort(struct job *j)
{
	if (j->fd >= 0)
		close(j->fd);
	j->fd = -1;
	if (unlink(j->part) < 0 && errno != ENOENT)
		j->err = errno;
}

/* The next piece of a download (the file opened by the first). */
static void job_read(struct job *j)
{
	if (j->fd < 0) {
		char *path = xasprintf("%s/%s", j->folder, j->id);
		j->fd = open(path, O_RDONLY | O_CLOEXEC);
		free(path);
		if (j->fd < 0) {
			j->err = errno;
			return;
		}
	}
	j->data = xmalloc(j->len + 1);
	size_t off = 0;
	while (off < j->len) {
		ssize_t n = pread(j->fd, j->data + off, j->len - off, (off_t)(j->start + off));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			j->err = n < 0 ? errno : EIO; /* 0: the file is shorter than its meta says */
			break;
		}
		off += (size_t)n;
	}
}

/* Parse a meta file: owner, file name, content type and size, a line each. */
static bool parse_meta(char *text, struct found *f)
{
	char *lines[4];
	char *p = text;
	for (int i = 0; i < 4; i++) {
		char *nl = strchr(p, '\n');
		if (nl == NULL)
			return false;
		*nl = '\0';
		lines[i] = p;
		p = nl + 1;
	}
	char *end;
	unsigned long long size = strtoull(lines[3], &end, 10);
	if (*lines[3] == '\0' || *end != '\0' || *lines[0] == '\0' || !valid_filename(lines[1]) ||
	    !valid_ctype(lines[2]))
		return false;
	f->owner = xstrdup(lines[0]);
	f->filename = xstrdup(lines[1]);
	f->ctype = xstrdup(lines[2]);
	f->size = (size_t)size;
	return true;
}

static char *read_small(const char *path)
{
	FILE *fp = fopen(path, "re");
	if (fp == NULL)
		return NULL;
	char buf[2048];
	size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	return xstrdup(buf);
}

static void remove_pair(const char *folder, const char *id)
{
	char *data = xasprintf("%s/%s", folder, id);
	char *meta = xasprintf("%s/%s.meta", folder, id);
	unlink(meta);
	unlink(data);
	free(data);
	free(meta);
}

/* Every ID.meta of the folder: expired or broken ones are deleted with
 * their file, the others reported; partial files older than an hour go. */
static void job_scan(struct job *j)
{
	DIR *d = opendir(j->folder);
	if (d == NULL) {
		j->err = errno;
		return;
	}
	size_t cap_found = 0, cap_deleted = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		const char *name = de->d_name;
		size_t len = strlen(name);
		if (len > 5 && strcmp(name + len - 5, ".part") == 0) {
			char *path = xasprintf("%s/%s", j->folder, name);
			struct stat st;
			if (stat(path, &st) == 0 && (double)st.st_mtime < j->now - 3600)
				unlink(path);
			free(path);
			continue;
		}
		if (len != SLOT_ID_LEN + 5 || strcmp(name + SLOT_ID_LEN, ".meta") != 0 ||
		    !valid_id(name, SLOT_ID_LEN))
			continue;
		struct found f = { 0 };
		memcpy(f.id, name, SLOT_ID_LEN);
		char *meta_path = xasprintf("%s/%s", j->folder, name);
		char *data_path = xasprintf("%s/%s", j->folder, f.id);
		char *text = read_small(meta_path);
		struct stat st;
		bool ok = text != NULL && stat(data_path, &st) == 0 && S_ISREG(st.st_mode) &&
		          parse_meta(text, &f) && (size_t)st.st_size == f.size;
		free(text);
		free(meta_path);
		free(data_path);
		if (ok)
			f.mtime = (double)st.st_mtime;
		if (!ok || (j->expire_after > 0 && f.mtime + j->expire_after < j->now)) {
			remove_pair(j->folder, f.id);
			free(f.owner);
			free(f.filename);
			free(f.ctype);
			if (j->ndeleted == cap_deleted) {
				cap_deleted = cap_deleted ? 2 * cap_deleted : 16;
				j->deleted = xrealloc(j->deleted, cap_deleted * sizeof(*j->deleted));
			}
			j->deleted[j->ndeleted++] = xstrdup(f.id);
			continue;
		}
		if (j->nfound == cap_found) {
			cap_found = cap_found ? 2 * cap_found : 16;
			j->found = xrealloc(j->found, cap_found * sizeof(*j->found));
		}
		j->found[j->nfound++] = f;
	}
	closedir(d);
}

static void job_work(void *job, void *thread_state)
{
	(void)thread_state;
	struct job *j = job;
	switch (j->kind) {
	case JOB_PUT_CHUNK:
	case JOB_PUT_FINISH: job_put(j); break;
	case JOB_PUT_ABORT: job_put_abort(j); break;
	case JOB_READ: job_read(j); break;
	case JOB_SCAN: job_scan(j); break;
	case JOB_PURGE:
		for (size_t i = 0; i < j->ndeleted; i++) {
			char *data = xasprintf("%s/%s", j->folder, j->deleted[i]);
			char *meta = xasprintf("%s/%s.meta", j->folder, j->deleted[i]);
			if ((unlink(meta) < 0 && errno != ENOENT) || (unlink(data) < 0 && errno != ENOENT)) {
				if (j->err == 0)
					j->err = errno;
			}
			free(data);
			free(meta);
		}
		break;
	}
}

/* ---- HTTP side ----------------------------------------------------------------- */

static void common_headers(struct http_reply *r)
{
	http_reply_header(r, "X-Content-Type-Options", "nosniff");
	http_reply_header(r, "Content-Security-Policy", "default-src 'none'; sandbox");
}

static void cors(const struct http_request *rq, struct http_reply *r)
{
	if (http_cors_headers(rq, r)) {
		http_reply_header(r, "Access-Control-Allow-Methods", "GET, HEAD, PUT, OPTIONS");
		http_reply_header(r, "Access-Control-Allow-Headers", "Content-Type");
	}
}

/* Content-Disposition: inline for images and text (served sandboxed),
 * attachment for the rest; an ASCII file name with the unsafe characters
 * replaced, and the real one in filename* (RFC 6266). */
static void disposition(struct http_reply *r, const struct slot *s)
{
	bool inline_ = strncasecmp(s->ctype, "image/", 6) == 0 || strncasecmp(s->ctype, "text/", 5) == 0;
	struct buf b = { 0 };
	buf_printf(&b, "%s; filename=\"", inline_ ? "inline" : "attachment");
	for (const unsigned char *p = (const unsigned char *)s->filename; *p; p++) {
		if ((*p & 0xc0) == 0x80)
			continue; /* one '_' per UTF-8 character */
		char c = (char)*p;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '-' || c == '_' || c == ' '))
			c = '_';
		buf_append(&b, &c, 1);
	}
	buf_append_str(&b, "\"; filename*=UTF-8''");
	pct_encode(&b, s->filename);
	http_reply_header(r, "Content-Disposition", b.data);
	buf_free(&b);
}

/* The slot a URL below prefix names: "ID/FILENAME" exactly. */
static struct slot *slot_of_path(const char *prefix, const char *path)
{
	if (!str_has_prefix(path, prefix))
		return NULL;
	const char *rest = path + strlen(prefix);
	const char *slash = strchr(rest, '/');
	if (slash == NULL || !valid_id(rest, (size_t)(slash - rest)))
		return NULL;
	char id[SLOT_ID_LEN + 1];
	memcpy(id, rest, SLOT_ID_LEN);
	id[SLOT_ID_LEN] = '\0';
	struct slot *s = slot_find(id);
	if (s == NULL || strcmp(s->up->set->path, prefix) != 0 || strcmp(slash + 1, s->filename) != 0)
		return NULL;
	return s;
}

/* The value of key in a query string (raw, undecoded), or NULL. */
static char *query_value(const char *query, const char *key)
{
	size_t klen = strlen(key);
	for (const char *p = query; p != NULL && *p;) {
		const char *amp = strchr(p, '&');
		size_t len = amp != NULL ? (size_t)(amp - p) : strlen(p);
		if (len > klen && strncmp(p, key, klen) == 0 && p[klen] == '=')
			return xstrndup(p + klen + 1, len - klen - 1);
		p = amp != NULL ? amp + 1 : NULL;
	}
	return NULL;
}

/* A PUT URL whose slot this process does not know (handed out before a
 * restart, with the same secret_file): when its signature holds for one of
 * the instances serving prefix, the slot is made again from what the URL
 * and the request say (all of it signed).  NULL otherwise. */
static struct slot *slot_revive(const char *prefix, const struct http_request *rq)
{
	const char *rest = rq->path + strlen(prefix);
	const char *slash = strchr(rest, '/');
	if (rq->query == NULL || slash == NULL || !valid_id(rest, (size_t)(slash - rest)) ||
	    !valid_filename(slash + 1))
		return NULL;
	char id[SLOT_ID_LEN + 1];
	memcpy(id, rest, SLOT_ID_LEN);
	id[SLOT_ID_LEN] = '\0';
	if (slot_find(id) != NULL)
		return NULL;
	const char *cl = http_request_header(rq, "Content-Length");
	const char *ct = http_request_header(rq, "Content-Type");
	if (ct == NULL)
		ct = "application/octet-stream";
	char *e = query_value(rq->query, "e");
	char *o = query_value(rq->query, "o");
	char *v = query_value(rq->query, "v");
	struct slot *found = NULL;
	unsigned char *owner = NULL;
	size_t owner_len = 0;
	if (cl != NULL && e != NULL && o != NULL && v != NULL && strlen(v) == 64 && valid_ctype(ct) &&
	    *e != '\0' && strlen(e) < 20 && strspn(e, "0123456789") == strlen(e) && strlen(o) % 2 == 0 &&
	    strlen(o) <= 2046 && strspn(o, "0123456789abcdef") == strlen(o) &&
	    strspn(cl, "0123456789") == strlen(cl) && *cl != '\0') {
		owner_len = strlen(o) / 2;
		owner = xmalloc(owner_len + 1);
		for (size_t i = 0; i < owner_len; i++) {
			unsigned hi = (unsigned)(o[2 * i] <= '9' ? o[2 * i] - '0' : o[2 * i] - 'a' + 10);
			unsigned lo = (unsigned)(o[2 * i + 1] <= '9' ? o[2 * i + 1] - '0'
			                                             : o[2 * i + 1] - 'a' + 10);
			owner[i] = (unsigned char)(hi << 4 | lo);
		}
		owner[owner_len] = '\0';
		long long expires = strtoll(e, NULL, 10);
		size_t size = (size_t)strtoull(cl, NULL, 10);
		for (struct upload *up = instances;
		     up != NULL && owner_len > 0 && strlen((char *)owner) == owner_len; up = up->next) {
			if (strcmp(up->set->path, prefix) != 0)
				continue;
			/* signed with the PUT's type, or with none (the slot
			 * named none) */
			char want[65], untyped[65];
			put_signature(up, id, slash + 1, size, ct, expires, (char *)owner, want);
			put_signature(up, id, slash + 1, size, "", expires, (char *)owner, untyped);
			bool typed = secure_memeq(v, want, 64);
			if (typed || secure_memeq(v, untyped, 64)) {
				found = slot_add(up, id, (char *)owner, slash + 1, typed ? ct : NULL, size);
				found->put_expires = (double)expires;
				log_info("upload %s: slot %s of %s@%s taken up again", up->domain, id,
				         found->owner, up->h->name);
				break;
			}
		}
	}
	free(owner);
	free(e);
	free(o);
	free(v);
	return found;
}

/* ---- PUT: the body to a part file, a piece at a time ------------------------ */

/* A PUT being received (loop thread).  At most one job of it is on the
 * worker at a time; while one is and a piece is already waiting, the http
 * layer is told to stop reading (so an upload holds at most two pieces in
 * memory, and a slow disk slows the client instead of filling memory).
 * It is freed when no job of it is out and it is over (stored, failed or
 * cancelled). */
struct put {
	char id[SLOT_ID_LEN + 1];
	unsigned serial;
	char *folder, *part, *mpart, *meta;
	uint64_t size, queued;    /* bytes handed to the worker so far */
	struct http_reply *reply; /* NULL once the connection went */
	struct buf buf;           /* body bytes not yet handed over */
	int fd;                   /* the part file once the first piece is written */
	bool busy;                /* a job of it is on the worker */
	bool paused;              /* the http layer was told to stop */
	bool ended;               /* the whole body is in */
	bool over;                /* stored, failed or cancelled */
};

#define PUT_PIECE (256u << 10)

/* Queue a job of a transfer; NULL when the queue is full or the group
 * is gone (the last instance stopped: done calls still running). */
static struct worker_job *transfer_submit(worker_done_fn *done, struct job *j)
{
	if (group == NULL)
		return NULL;
	return worker_submit(group, 0, job_work, done, j, 0);
}

static unsigned put_attempts;

static void put_free(struct put *p)
{
	buf_free(&p->buf);
	free(p->folder);
	free(p->part);
	free(p->mpart);
	free(p->meta);
	free(p);
}

/* The slot goes back to waiting for its upload (a failed or cut off PUT
 * may be tried again while the URL is valid). */
static void put_slot_pending(struct put *p)
{
	struct slot *s = slot_find(p->id);
	if (s != NULL && s->up->serial == p->serial && s->state == SLOT_WRITING)
		s->state = SLOT_PENDING;
}

static void put_abort_done(void *job, enum worker_status status)
{
	(void)status;
	job_free(job);
}

/* Remove the part file (on the worker; fd is closed there too). */
static void put_discard(struct put *p)
{
	struct job *j = xcalloc(1, sizeof(*j));
	j->kind = JOB_PUT_ABORT;
	j->serial = p->serial;
	memcpy(j->id, p->id, sizeof(j->id));
	j->fd = p->fd;
	j->part = xstrdup(p->part);
	p->fd = -1;
	if (transfer_submit(put_abort_done, j) == NULL) {
		/* the queue is full, or the service is stopping: one unlink
		 * on the loop, rather than a part file left for an hour */
		job_put_abort(j);
		job_free(j);
	}
}

/* Give up: answer (if the client is still there), free the slot for
 * another try, remove the part file. */
static void put_fail(struct put *p, int status, const char *why)
{
	p->over = true;
	put_slot_pending(p);
	if (p->reply != NULL) {
		struct http_reply *r = p->reply;
		p->reply = NULL;
		common_headers(r);
		http_reply_error(r, status, why);
	}
	if (!p->busy) {
		put_discard(p);
		put_free(p);
	}
}

static void put_job_done(void *job, enum worker_status status);

/* Hand what is buffered to the worker (the last piece when the body is
 * all in).  False when the job could not be queued: the put failed and p
 * is freed, so the caller must not touch it again. */
static bool put_flush(struct put *p)
{
	struct job *j = xcalloc(1, sizeof(*j));
	j->kind = p->ended ? JOB_PUT_FINISH : JOB_PUT_CHUNK;
	j->serial = p->serial;
	memcpy(j->id, p->id, sizeof(j->id));
	j->folder = xstrdup(p->folder);
	j->put = p;
	j->fd = p->fd;
	j->part = xstrdup(p->part);
	j->len = p->buf.len;
	j->data = buf_steal(&p->buf);
	if (p->ended) {
		j->mpart = xstrdup(p->mpart);
		j->meta = xstrdup(p->meta);
	}
	if (transfer_submit(put_job_done, j) == NULL) {
		job_free(j);
		put_fail(p, 503, "too many uploads at once"); /* frees p: not busy */
		return false;
	}
	p->queued += j->len;
	p->busy = true;
	return true;
}

/* The worker renamed the file and its metadata into place: the slot
 * serves it.  A client that went while that job was out put the slot back
 * to PENDING (or another PUT of it may be WRITING): the file is there all
 * the same, so it is STORED either way. */
static void put_stored(struct put *p)
{
	struct slot *s = slot_find(p->id);
	if (s == NULL || s->up->serial != p->serial || s->state == SLOT_STORED)
		return;
	s->state = SLOT_STORED;
	s->stored_at = wall_now();
	log_info("upload %s: %s@%s stored %s (%zu bytes)", s->up->domain, s->owner, s->up->h->name, s->id,
	         s->size);
}

static void put_job_done(void *job, enum worker_status status)
{
	struct job *j = job;
	struct put *p = j->put;
	p->busy = false;
	p->fd = j->fd; /* opened by the first piece; -1 once closed */
	bool ok = status == WORKER_DONE && j->err == 0;
	bool finished = j->kind == JOB_PUT_FINISH;
	int err = j->err != 0 ? j->err : EIO;
	job_free(j);
	if (p->over) { /* cancelled meanwhile */
		if (finished && ok)
			put_stored(p); /* the file is in place all the same */
		put_discard(p);
		put_free(p);
		return;
	}
	if (!ok) {
		log_warning("upload: cannot store %s in %s: %s", p->id, p->folder, strerror(err));
		put_fail(p, 500, "the file could not be stored");
		return;
	}
	if (instance_by_serial(p->serial) == NULL) {
		put_fail(p, 503, "the upload service stopped");
		return;
	}
	if (finished) {
		put_stored(p);
		struct http_reply *r = p->reply;
		p->reply = NULL;
		common_headers(r);
		http_reply_send(r, 201, "text/plain; charset=utf-8", "201 Created\n", 12);
		put_free(p);
		return;
	}
	if ((p->ended || p->buf.len >= PUT_PIECE) && !put_flush(p))
		return;
	if (!p->over && p->paused && !p->ended) {
		p->paused = false;
		http_body_resume(p->reply);
	}
}

static bool put_body_data(void *ctx, const char *data, size_t len)
{
	struct put *p = ctx;
	buf_append(&p->buf, data, len);
	if (p->buf.len < PUT_PIECE)
		return true;
	if (!p->busy)
		return put_flush(p);
	p->paused = true; /* the worker is behind: stop reading the socket */
	return false;
}

static void put_body_end(void *ctx)
{
	struct put *p = ctx;
	p->ended = true;
	if (p->queued + p->buf.len != p->size) {
		put_fail(p, 400, "the size differs from the slot's");
		return;
	}
	if (!p->busy)
		put_flush(p);
}

static const struct http_body_ops put_body_ops = {
	.data = put_body_data,
	.end = put_body_end,
};

/* The connection went (or its body timed out): the job out, if any,
 * comes back to a put that is over. */
static void put_cancelled(void *ctx)
{
	struct put *p = ctx;
	p->reply = NULL;
	log_info("upload: the PUT of %s was cut off after %" PRIu64 " of %" PRIu64 " bytes", p->id,
	         p->queued + p->buf.len, p->size);
	p->over = true;
	put_slot_pending(p);
	if (!p->busy) {
		put_discard(p);
		put_free(p);
	}
}

static void handle_put(const struct http_request *rq, struct http_reply *r, const char *prefix)
{
	struct slot *s = slot_of_path(prefix, rq->path);
	if (s == NULL)
		s = slot_revive(prefix, rq);
	if (s == NULL) {
		http_reply_error(r, 404, NULL);
		return;
	}
	char *e = rq->query != NULL ? query_value(rq->query, "e") : NULL;
	char *v = rq->query != NULL ? query_value(rq->query, "v") : NULL;
	char want[65];
	long long expires = 0;
	bool sig_ok = false;
	if (e != NULL && v != NULL && *e != '\0' && strlen(e) < 20 && strspn(e, "0123456789") == strlen(e)) {
		expires = strtoll(e, NULL, 10);
		put_signature(s->up, s->id, s->filename, s->size, s->ctype_named ? s->ctype : "", expires,
		              s->owner, want);
		sig_ok = strlen(v) == 64 && secure_memeq(v, want, 64);
	}
	free(e);
	free(v);
	if (!sig_ok) {
		log_info("upload %s: PUT of %s from %s with a bad signature", s->up->domain, s->id,
		         rq->remote_ip);
		http_reply_error(r, 403, "bad signature");
		return;
	}
	if (s->state != SLOT_PENDING) {
		http_reply_error(r, 409, "the file was already uploaded");
		return;
	}
	if ((double)expires < wall_now()) {
		http_reply_error(r, 403, "the upload URL has expired");
		return;
	}
	const char *cl = http_request_header(rq, "Content-Length");
	if (cl == NULL) {
		http_reply_error(r, 411, NULL);
		return;
	}
	if (strtoull(cl, NULL, 10) != s->size || (rq->body_len != 0 && rq->body_len != s->size)) {
		http_reply_error(r, 400, "the size differs from the slot's");
		return;
	}
	const char *ct = http_request_header(rq, "Content-Type");
	if (s->ctype_named && ct != NULL && !ctype_same(ct, s->ctype)) {
		http_reply_error(r, 415, "the content type differs from the slot's");
		return;
	}
	if (!s->ctype_named) {
		/* XEP-0363 leaves the type to the PUT when the slot named none:
		 * it is served as that when valid, else as bytes */
		free(s->ctype);
		s->ctype = xstrdup(ct != NULL && valid_ctype(ct) ? ct : "application/octet-stream");
	}
	struct put *p = xcalloc(1, sizeof(*p));
	memcpy(p->id, s->id, sizeof(p->id));
	p->serial = s->up->serial;
	p->folder = xstrdup(s->up->set->folder);
	p->size = s->size;
	p->fd = -1;
	unsigned n = ++put_attempts;
	p->part = xasprintf("%s/%s.%u.part", p->folder, p->id, n);
	p->mpart = xasprintf("%s/%s.%u.meta.part", p->folder, p->id, n);
	p->meta = xasprintf("%s\n%s\n%s\n%zu\n", s->owner, s->filename, s->ctype, s->size);
	p->reply = r;
	s->state = SLOT_WRITING;
	http_reply_on_cancel(r, put_cancelled, p);
	if (rq->body_len > 0) {
		/* the whole body came with the request (a mount shared with
		 * nothing streams, so this is for completeness) */
		buf_append(&p->buf, rq->body, rq->body_len);
		p->ended = true;
		put_flush(p);
		return;
	}
	http_reply_take_body(r, &put_body_ops, p, s->size);
}

/* Headers of a GET or HEAD answer. */
static void file_headers(struct http_reply *r, const struct slot *s)
{
	common_headers(r);
	disposition(r, s);
	http_reply_header(r, "Accept-Ranges", "bytes");
	http_reply_header(r, "Cache-Control", "private, max-age=86400");
}

/* ---- GET: the file in pieces, as the connection drains ------------------------ */

/* A download (loop thread): one piece at a time is read on the worker and
 * queued on the connection; the next is asked for when the connection's
 * output has drained (http_reply_start's more).  Freed when no job of it
 * is out and it is over. */
struct get {
	char id[SLOT_ID_LEN + 1];
	char *folder;
	char *ctype;
	struct http_reply *reply; /* NULL once the connection went */
	int fd;                   /* the file, opened by the first read */
	uint64_t start, left, total;
	int status; /* 200 or 206 */
	bool started;
	bool busy;
};

#define GET_PIECE (256u << 10)

static void get_free(struct get *g)
{
	if (g->fd >= 0)
		close(g->fd); /* a regular file opened for reading: close does not wait */
	free(g->folder);
	free(g->ctype);
	free(g);
}

static void read_done(void *job, enum worker_status status);

/* Read the next piece; false when that cannot be (g is then answered
 * or cut off, and freed). */
static bool get_next(struct get *g)
{
	struct job *j = xcalloc(1, sizeof(*j));
	j->kind = JOB_READ;
	memcpy(j->id, g->id, sizeof(j->id));
	j->folder = xstrdup(g->folder);
	j->get = g;
	j->fd = g->fd;
	j->start = g->start;
	j->len = g->left < GET_PIECE ? (size_t)g->left : GET_PIECE;
	if (transfer_submit(read_done, j) == NULL) {
		job_free(j);
		if (g->started) {
			log_warning("upload: download of %s given up: the worker queue is full", g->id);
			http_reply_abort(g->reply);
		} else {
			http_reply_error(g->reply, 503, "too busy");
		}
		get_free(g);
		return false;
	}
	g->busy = true;
	return true;
}

static void get_more(void *ctx)
{
	get_next(ctx);
}

static void get_cancelled(void *ctx)
{
	struct get *g = ctx;
	g->reply = NULL;
	if (!g->busy)
		get_free(g);
}

static void read_done(void *job, enum worker_status status)
{
	struct job *j = job;
	struct get *g = j->get;
	g->busy = false;
	g->fd = j->fd;
	if (g->reply == NULL) { /* the connection went */
		job_free(j);
		get_free(g);
		return;
	}
	if (status != WORKER_DONE || j->err != 0) {
		int err = j->err != 0 ? j->err : EIO;
		if (err != ENOENT)
			log_warning("upload: cannot read %s: %s", g->id, strerror(err));
		if (g->started)
			http_reply_abort(g->reply);
		else
			http_reply_error(g->reply, err == ENOENT ? 404 : 500, NULL);
		job_free(j);
		get_free(g);
		return;
	}
	struct http_reply *r = g->reply;
	if (!g->started) {
		struct slot *s = slot_find(g->id);
		if (s == NULL) { /* purged or expired meanwhile */
			http_reply_error(r, 404, NULL);
			job_free(j);
			get_free(g);
			return;
		}
		file_headers(r, s);
		g->started = true;
		if (g->status == 206) {
			char cr[96];
			snprintf(cr, sizeof(cr), "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, g->start,
			         g->start + g->left - 1, g->total);
			http_reply_header(r, "Content-Range", cr);
		}
		http_reply_start(r, g->status, g->ctype, g->left, get_more, g);
	}
	g->start += j->len;
	g->left -= j->len;
	bool last = http_reply_write(r, j->data, j->len);
	job_free(j);
	if (last) {
		g->reply = NULL;
		get_free(g);
	}
	/* otherwise get_more asks for the next piece once this one is on its way */
}

/* A single "bytes=A-B" / "bytes=A-" / "bytes=-N" range of a file of size
 * bytes: 1 with [*start, *start + *len), 0 to serve the whole file (no
 * range, several, or one that does not parse), -1 when unsatisfiable. */
static int parse_range(const char *h, size_t size, size_t *start, size_t *len)
{
	if (h == NULL || strncasecmp(h, "bytes=", 6) != 0 || strchr(h, ',') != NULL)
		return 0;
	const char *p = h + 6;
	while (*p == ' ')
		p++;
	const char *dash = strchr(p, '-');
	if (dash == NULL)
		return 0;
	char *end;
	if (dash == p) {
		if (dash[1] < '0' || dash[1] > '9')
			return 0;
		unsigned long long n = strtoull(dash + 1, &end, 10);
		if (*end != '\0')
			return 0;
		if (n == 0 || size == 0)
			return -1;
		if (n > size)
			n = size;
		*start = size - (size_t)n;
		*len = (size_t)n;
		return 1;
	}
	if (*p < '0' || *p > '9')
		return 0;
	unsigned long long a = strtoull(p, &end, 10);
	if (end != dash)
		return 0;
	unsigned long long b = size > 0 ? size - 1 : 0;
	if (dash[1] != '\0') {
		if (dash[1] < '0' || dash[1] > '9')
			return 0;
		b = strtoull(dash + 1, &end, 10);
		if (*end != '\0' || b < a)
			return 0;
		if (b >= size)
			b = size - 1;
	}
	if (a >= size)
		return -1;
	*start = (size_t)a;
	*len = (size_t)(b - a + 1);
	return 1;
}

static void handle_get(const struct http_request *rq, struct http_reply *r, const char *prefix)
{
	struct slot *s = slot_of_path(prefix, rq->path);
	if (s == NULL || s->state != SLOT_STORED || slot_expired(s, wall_now())) {
		http_reply_error(r, 404, NULL);
		return;
	}
	size_t start = 0, len = s->size;
	int range = parse_range(http_request_header(rq, "Range"), s->size, &start, &len);
	if (range < 0) {
		char cr[64];
		snprintf(cr, sizeof(cr), "bytes */%zu", s->size);
		http_reply_header(r, "Content-Range", cr);
		http_reply_error(r, 416, NULL);
		return;
	}
	if (strcmp(rq->method, "HEAD") == 0) {
		file_headers(r, s);
		if (range > 0) {
			char cr[96];
			snprintf(cr, sizeof(cr), "bytes %zu-%zu/%zu", start, start + len - 1, s->size);
			http_reply_header(r, "Content-Range", cr);
		}
		http_reply_send(r, range > 0 ? 206 : 200, s->ctype, NULL, len);
		return;
	}
	struct get *g = xcalloc(1, sizeof(*g));
	memcpy(g->id, s->id, sizeof(g->id));
	g->folder = xstrdup(s->up->set->folder);
	g->ctype = xstrdup(s->ctype);
	g->fd = -1;
	g->start = start;
	g->left = len;
	g->total = s->size;
	g->status = range > 0 ? 206 : 200;
	g->reply = r;
	if (get_next(g))
		http_reply_on_cancel(r, get_cancelled, g);
}

static void http_handler(void *ctx, const struct http_request *rq, struct http_reply *r)
{
	struct mount *m = ctx;
	cors(rq, r);
	if (strcmp(rq->method, "PUT") == 0) {
		handle_put(rq, r, m->path);
	} else if (strcmp(rq->method, "GET") == 0 || strcmp(rq->method, "HEAD") == 0) {
		handle_get(rq, r, m->path);
	} else if (strcmp(rq->method, "OPTIONS") == 0) {
		http_reply_send(r, 204, NULL, NULL, 0);
	} else {
		http_reply_header(r, "Allow", "GET, HEAD, PUT, OPTIONS");
		http_reply_error(r, 405, NULL);
	}
}

static int mount_ref(const char *path, char **error_r)
{
	for (struct mount *m = mounts; m != NULL; m = m->next) {
		if (strcmp(m->path, path) == 0) {
			m->refs++;
			return 0;
		}
	}
	struct mount *m = xcalloc(1, sizeof(*m));
	m->path = xstrdup(path);
	m->refs = 1;
	if (http_mount_streaming(path, http_handler, m, error_r) < 0) {
		free(m->path);
		free(m);
		return -1;
	}
	m->next = mounts;
	mounts = m;
	return 0;
}

static void mount_unref(const char *path)
{
	for (struct mount **p = &mounts; *p != NULL; p = &(*p)->next) {
		struct mount *m = *p;
		if (strcmp(m->path, path) != 0)
			continue;
		if (--m->refs == 0) {
			http_unmount(path);
			*p = m->next;
			free(m->path);
			free(m);
		}
		return;
	}
}

/* ---- expiry ---------------------------------------------------------------- */

struct gone_ctx {
	struct upload *up;
	double before;
};

static void gone_one(struct slot *s, void *ctx)
{
	struct gone_ctx *gc = ctx;
	if (s->up == gc->up && s->state == SLOT_STORED && s->seen != gc->up->scans &&
	    s->stored_at < gc->before) {
		log_info("upload %s: %s of %s@%s is no longer in the folder", gc->up->domain, s->id, s->owner,
		         gc->up->h->name);
		slot_free(s);
	}
}

static void scan_done(void *job, enum worker_status status)
{
	struct job *j = job;
	struct upload *up = instance_by_serial(j->serial);
	if (up == NULL) {
		job_free(j);
		return;
	}
	up->scanning = false;
	if (status != WORKER_DONE || j->err != 0) {
		log_warning("upload %s: cannot scan %s: %s", up->domain, j->folder,
		            strerror(j->err != 0 ? j->err : EIO));
		job_free(j);
		return;
	}
	for (size_t i = 0; i < j->ndeleted; i++) {
		struct slot *s = slot_find(j->deleted[i]);
		if (s != NULL && s->up == up && s->state == SLOT_STORED) {
			log_info("upload %s: %s of %s@%s expired", up->domain, s->id, s->owner, up->h->name);
			slot_free(s);
		}
	}
	if (j->purge_seq == up->purge_seq) {
		up->scans++;
		for (size_t i = 0; i < j->nfound; i++) {
			struct found *f = &j->found[i];
			struct slot *s = slot_find(f->id);
			if (s == NULL) {
				s = slot_add(up, f->id, f->owner, f->filename, f->ctype, f->size);
				s->state = SLOT_STORED;
				s->stored_at = f->mtime;
			}
			s->seen = up->scans;
		}
		/* files removed by hand leave the table and the quota (a file
		 * stored after the scan read the folder is not STORED yet: the
		 * worker runs jobs in order) */
		struct gone_ctx gc = { .up = up, .before = j->now };
		slots_foreach(gone_one, &gc);
	}
	slots_foreach(sweep_one, up);
	job_free(j);
}

static void scan_start(struct upload *up)
{
	if (up->scanning)
		return;
	struct job *j = xcalloc(1, sizeof(*j));
	j->kind = JOB_SCAN;
	j->serial = up->serial;
	j->folder = xstrdup(up->set->folder);
	j->expire_after = up->set->expire_after;
	j->now = wall_now();
	j->purge_seq = up->purge_seq;
	if (worker_submit(group, 0, job_work, scan_done, j, 0) == NULL) {
		job_free(j);
		return;
	}
	up->scanning = true;
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	scan_start(w->data);
}

/* ---- start and stop ----------------------------------------------------- */

static int load_secret(struct upload *up, char **error_r)
{
	if (up->set->secret_file == NULL) {
		random_bytes(up->secret, SECRET_LEN);
		up->secret_len = SECRET_LEN;
		return 0;
	}
	/* start-up: reading a small file here does not stall clients */
	FILE *f = fopen(up->set->secret_file, "re");
	if (f == NULL) {
		*error_r = xasprintf("modules.upload.secret_file: %s: %s", up->set->secret_file,
		                     strerror(errno));
		return -1;
	}
	char line[256];
	bool got = fgets(line, sizeof(line), f) != NULL;
	fclose(f);
	size_t len = got ? strcspn(line, "\r\n") : 0;
	if (len < 16) {
		*error_r = xasprintf("modules.upload.secret_file: %s: the first line must hold at least 16 "
		                     "characters",
		                     up->set->secret_file);
		explicit_bzero(line, sizeof(line));
		return -1;
	}
	unsigned int md_len = 0;
	EVP_Digest(line, len, up->secret, &md_len, EVP_sha256(), NULL);
	up->secret_len = md_len;
	explicit_bzero(line, sizeof(line));
	return 0;
}

static void upload_stop(struct host *h, void *state);

static int upload_check(const struct host_config *hc, const void *settings, const struct cfg_node *opts,
                        const char *section, char **error_r)
{
	(void)hc;
	const struct upload_settings *set = settings;
	if (set->url == NULL) {
		*error_r =
		        cfg_key_error(opts, "url", section,
		                      "is required: the base URL of slots, e.g. https://@HOST@:5443/upload/");
		return -1;
	}
	if (set->folder == NULL || set->folder[0] != '/') {
		*error_r = cfg_key_error(opts, "folder", section, "%s",
		                         set->folder == NULL ? "is required: the folder that holds the files"
		                                             : "must be an absolute path");
		return -1;
	}
	if (set->secret_file != NULL && set->secret_file[0] != '/') {
		*error_r = cfg_key_error(opts, "secret_file", section, "must be an absolute path");
		return -1;
	}
	size_t plen = strlen(set->path);
	if (plen < 2 || set->path[0] != '/' || set->path[plen - 1] != '/' ||
	    strstr(set->path, "//") != NULL || strstr(set->path, "/../") != NULL ||
	    strpbrk(set->path, "?#%") != NULL) {
		*error_r = cfg_key_error(opts, "path", section,
		                         "'%s' must start and end with / (like /upload/)", set->path);
		return -1;
	}
	return 0;
}

static void forget_slot(struct slot *s, void *ctx)
{
	if (s->up == ctx)
		slot_free(s);
}

static int upload_start(struct host *h, const void *settings, void **state_r, char **error_r)
{
	const struct upload_settings *set = settings;
	for (struct upload *o = instances; o != NULL; o = o->next) {
		if (strcmp(o->set->folder, set->folder) == 0) {
			*error_r =
			        xasprintf("modules.upload.folder: %s is the folder of %s already (each host "
			                  "needs its own)",
			                  set->folder, o->h->name);
			return -1;
		}
	}
	/* start-up: creating the folder here does not stall clients */
	if (mkdir(set->folder, 0750) < 0 && errno != EEXIST) {
		*error_r = xasprintf("modules.upload.folder: %s: %s", set->folder, strerror(errno));
		return -1;
	}
	char *domain = builtin_service_domain(set->host, h->name);
	if (domain == NULL) {
		*error_r = xasprintf("modules.upload.host: '%s' is not a valid domain", set->host);
		return -1;
	}
	struct upload *up = xcalloc(1, sizeof(*up));
	up->serial = next_serial++;
	up->h = h;
	up->set = set;
	up->domain = domain;
	struct buf b = { 0 };
	for (const char *p = set->url, *at; *p;) {
		at = strstr(p, "@HOST@");
		if (at == NULL) {
			buf_append_str(&b, p);
			break;
		}
		buf_append(&b, p, (size_t)(at - p));
		buf_append_str(&b, h->name);
		p = at + 6;
	}
	if (b.len == 0 || b.data[b.len - 1] != '/')
		buf_append_str(&b, "/");
	up->url = buf_steal(&b);
	if (load_secret(up, error_r) < 0) {
		free(up->url);
		free(up->domain);
		free(up);
		return -1;
	}
	if (router_add_route(domain, h, service_route, up, error_r) < 0) {
		explicit_bzero(up->secret, sizeof(up->secret));
		free(up->url);
		free(up->domain);
		free(up);
		return -1;
	}
	if (mount_ref(set->path, error_r) < 0) {
		router_remove_route(domain, up);
		explicit_bzero(up->secret, sizeof(up->secret));
		free(up->url);
		free(up->domain);
		free(up);
		return -1;
	}
	if (group == NULL)
		group = worker_group_new(server.loop, "upload", 1, QUEUE_MAX, NULL, NULL, NULL);
	up->next = instances;
	instances = up;
	hook_add(h, HOOK_DISCO_ITEMS, 50, disco_items_hook, up);
	double every = set->expire_after > 0 ? set->expire_after / 4 : 300;
	if (every < 0.5)
		every = 0.5;
	if (every > 300)
		every = 300;
	ev_timer_init(&up->timer, timer_cb, 0, every);
	up->timer.data = up;
	ev_timer_start(server.loop, &up->timer);
	bool http = false;
	for (size_t i = 0; i < server_config()->nlisten; i++)
		http = http || server_config()->listen[i].module == LISTEN_HTTP;
	if (!http)
		log_warning("upload %s: no http listener (listen: with module: http): the slots' URLs lead "
		            "nowhere",
		            domain);
	log_info("upload %s: service of %s started (%s, files in %s)", domain, h->name, up->url, set->folder);
	*state_r = up;
	return 0;
}

static void upload_stop(struct host *h, void *state)
{
	struct upload *up = state;
	ev_timer_stop(server.loop, &up->timer);
	hook_remove(h, HOOK_DISCO_ITEMS, disco_items_hook, up);
	router_remove_route(up->domain, up);
	mount_unref(up->set->path);
	for (struct upload **p = &instances; *p != NULL; p = &(*p)->next) {
		if (*p == up) {
			*p = up->next;
			break;
		}
	}
	slots_foreach(forget_slot, up);
	if (instances == NULL) {
		worker_group_free(&group); /* outstanding jobs finish; their done finds no slot */
		htab_free(&slots);
	}
	explicit_bzero(up->secret, sizeof(up->secret));
	free(up->url);
	free(up->domain);
	free(up);
}

static void upload_domains(const struct host_config *hc, const void *settings, struct strlist *domains)
{
	const struct upload_settings *set = settings;
	char *domain = builtin_service_domain(set->host, hc->name);
	if (domain != NULL) /* else upload_start says it is no domain */
		strlist_take(domains, domain);
}

const struct module_def mod_upload = {
	.name = "upload",
	.description = "XEP-0363 HTTP file upload: slots with signed URLs on the http listeners",
	.options = upload_options,
	.settings_size = sizeof(struct upload_settings),
	.default_enabled = false,
	.start = upload_start,
	.stop = upload_stop,
	.check = upload_check,
	.domains = upload_domains,
};

/* ---- parleyctl ------------------------------------------------------------- */

struct list_ctx {
	const struct upload *up;
	const char *user;
	void (*fn)(const struct upload_file_info *f, void *ctx);
	void *ctx;
	double now;
};

static void list_one(struct slot *s, void *ctx)
{
	struct list_ctx *lc = ctx;
	if (s->up != lc->up || s->state != SLOT_STORED || strcmp(s->owner, lc->user) != 0 ||
	    slot_expired(s, lc->now))
		return;
	struct buf url = { 0 };
	buf_printf(&url, "%s%s/", lc->up->url, s->id);
	pct_encode(&url, s->filename);
	struct upload_file_info f = { .id = s->id,
		                      .filename = s->filename,
		                      .content_type = s->ctype,
		                      .url = url.data,
		                      .size = s->size,
		                      .stored_at = s->stored_at };
	lc->fn(&f, lc->ctx);
	buf_free(&url);
}

int upload_list(struct host *h, const char *user, void (*fn)(const struct upload_file_info *f, void *ctx),
                void *ctx)
{
	struct upload *up = module_state(h, "upload");
	if (up == NULL)
		return -1;
	struct list_ctx lc = { .up = up, .user = user, .fn = fn, .ctx = ctx, .now = wall_now() };
	slots_foreach(list_one, &lc);
	return 0;
}

struct purge_ctx {
	const struct upload *up;
	const char *user;
	struct job *j;
	size_t cap;
};

static void purge_one(struct slot *s, void *ctx)
{
	struct purge_ctx *pc = ctx;
	if (s->up != pc->up || s->state != SLOT_STORED || strcmp(s->owner, pc->user) != 0)
		return;
	struct job *j = pc->j;
	if (j->ndeleted == pc->cap) {
		pc->cap = pc->cap ? 2 * pc->cap : 16;
		j->deleted = xrealloc(j->deleted, pc->cap * sizeof(*j->deleted));
	}
	j->deleted[j->ndeleted++] = xstrdup(s->id);
}

static void purge_done(void *job, enum worker_status status)
{
	struct job *j = job;
	if (j->purge_done != NULL)
		j->purge_done(j->purge_ctx, (unsigned)j->ndeleted,
		              status == WORKER_DONE ? j->err : (j->err != 0 ? j->err : EIO));
	job_free(j);
}

int upload_purge(struct host *h, const char *user, upload_purge_done_fn *done, void *ctx,
                 struct upload_purge **handle_r)
{
	struct upload *up = module_state(h, "upload");
	if (up == NULL)
		return -1;
	struct job *j = xcalloc(1, sizeof(*j));
	j->kind = JOB_PURGE;
	j->serial = up->serial;
	j->folder = xstrdup(up->set->folder);
	j->purge_done = done;
	j->purge_ctx = ctx;
	struct purge_ctx pc = { .up = up, .user = user, .j = j };
	slots_foreach(purge_one, &pc);
	if (worker_submit(group, 0, job_work, purge_done, j, 0) == NULL) {
		job_free(j);
		return -2;
	}
	/* gone for GET and the quota at once; a scan already queued must not
	 * bring them back (scan_done compares purge_seq) */
	for (size_t i = 0; i < j->ndeleted; i++) {
		struct slot *sl = slot_find(j->deleted[i]);
		if (sl != NULL)
			slot_free(sl);
	}
	up->purge_seq++;
	log_info("upload %s: purging the %zu files of %s@%s", up->domain, j->ndeleted, user, h->name);
	*handle_r = (struct upload_purge *)j;
	return 0;
}

void upload_purge_cancel(struct upload_purge *p)
{
	struct job *j = (struct job *)p;
	j->purge_done = NULL;
}
