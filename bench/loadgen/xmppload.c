/*
 * xmppload - a small XMPP c2s load generator (libev + OpenSSL + expat).
 *
 * Every connection does a full client login: stream open, STARTTLS, SASL
 * (SCRAM-SHA-1 if offered, else PLAIN), resource bind, session (only when the
 * server requires it), roster get, initial presence.
 *
 * Scenarios (-s):
 *   login  K workers (-c) each loop: full login, then logout (</stream:stream>,
 *          wait for the server's close). Reports logins/s and login latency
 *          (connect() .. roster result) p50/p99.
 *   msg    N users (-n, even) log in; user 2i and 2i+1 are partners. Each sends
 *          chat messages to its partner, either closed-loop with at most -w in
 *          flight per sender ("full speed") or at a fixed total offered rate (-r).
 *          Body carries the send timestamp; reports delivered msgs/s, end-to-end
 *          latency p50/p99, and server CPU seconds per 100k delivered messages.
 *   idle   C users (-n) log in (-c at a time) and stay connected; reports server
 *          RSS before/after and KiB per authenticated connection.
 *   muc    R rooms (-R) of M occupants (-M) each: R*M users log in, the server's
 *          RSS is read, then every user joins its room (XEP-0045, no history)
 *          and the RSS is read again. The first joiner of a room submits the
 *          instant-room form if the server answers 201 (room locked), then the
 *          others join. Once all are in, every occupant posts groupchat
 *          messages, closed-loop with at most -w of its own messages not yet
 *          reflected back to it, or at a fixed total offered rate (-r). Reports
 *          delivered messages/s (one per occupant reached), latency p50/p99,
 *          server CPU per delivered message, KiB per occupant, lost messages,
 *          message errors and connections lost after login.
 *   pep    N users (-n) log in, each announcing the same entity capabilities
 *          (XEP-0115) in its initial presence, with "NODE+notify" among the
 *          features (NODE: -g, urn:xmpp:bench:0), and answering the server's
 *          disco#info query so that the caps verify. Their rosters (mutual
 *          contacts, prepared in advance) are read at login. Then every user
 *          publishes items to its PEP node NODE (XEP-0163), at a fixed total
 *          rate (-r publishes/s, round robin) or closed loop (at most -w
 *          notifications expected and not yet received, in all). Reports
 *          delivered notifications/s, latency p50/p99 (publish to each
 *          notification), server CPU per delivered notification, lost
 *          notifications (expected from the contacts online at publish time
 *          and the publisher itself), and the caps queries the clients got
 *          (each one a miss of the server's caps cache) per presence sent.
 *
 * Server-side numbers come from /proc/<pid>/{stat,status} of the pids given
 * with -P "pid pid ...", summed. -Q PID adds, for msg, the CPU of a database
 * server over the same window, apart: the process PID (a PostgreSQL
 * postmaster), its children (the backends and helpers) and the children it
 * reaped meanwhile (cutime/cstime). Output: one JSON line on stdout, a human
 * summary on stderr. Every run is bounded: -d/-W for time, -T hard timeout.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <ev.h>
#include <expat.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---------- options ---------- */
static const char *o_host = "127.0.0.1", *o_domain = "bench.local", *o_pass = "pass";
static const char *o_prefix = "u", *o_scen = "login", *o_pids = "", *o_mech = "auto", *o_label = "";
static int o_port = 5222, o_conc = 16, o_users = 100, o_window = 10, o_size = 64, o_first = 1;
static int o_tls = 1, o_bare = 0, o_users_set = 0;
static double o_rate = 0, o_dur = 10, o_warm = 3, o_settle = 5, o_timeout = 0, o_login_timeout = 120;
/* muc */
static int o_rooms = 1, o_per_room = 10, o_settle_set = 0;
static const char *o_muc_service = NULL, *o_room_prefix = "bench";
static double o_drain = 10;
/* pep */
static const char *o_pep_node = "urn:xmpp:bench:0";

/* ---------- small helpers ---------- */
static inline uint64_t now_ns(void) {
    struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}
static void die(const char *fmt, ...) {
    va_list ap; va_start(ap, fmt); vfprintf(stderr, fmt, ap); va_end(ap); fputc('\n', stderr); exit(2);
}
typedef struct { char *p; size_t len, off, cap; } buf_t;
static void buf_add(buf_t *b, const char *s, size_t n) {
    if (b->off && b->off == b->len) b->off = b->len = 0;
    if (b->len + n + 1 > b->cap) {
        if (b->off > 0) { memmove(b->p, b->p + b->off, b->len - b->off); b->len -= b->off; b->off = 0; }
        if (b->len + n + 1 > b->cap) {
            size_t nc = b->cap ? b->cap : 512; while (nc < b->len + n + 1) nc *= 2;
            b->p = realloc(b->p, nc); b->cap = nc;
        }
    }
    memcpy(b->p + b->len, s, n); b->len += n; b->p[b->len] = 0;
}
static void buf_reset(buf_t *b) { b->len = b->off = 0; if (b->p) b->p[0] = 0; }

/* latency samples (microseconds) */
typedef struct { uint32_t *v; size_t n, cap; } lat_t;
static void lat_add(lat_t *l, uint64_t ns) {
    if (l->n == l->cap) { l->cap = l->cap ? l->cap * 2 : 65536; l->v = realloc(l->v, l->cap * sizeof *l->v); }
    uint64_t us = ns / 1000; l->v[l->n++] = us > 0xffffffffu ? 0xffffffffu : (uint32_t)us;
}
static int cmp_u32(const void *a, const void *b) { uint32_t x = *(uint32_t *)a, y = *(uint32_t *)b; return x < y ? -1 : x > y; }
static double lat_pct(lat_t *l, double p) {
    if (!l->n) return -1; size_t i = (size_t)(p * (l->n - 1) + 0.5); return l->v[i] / 1000.0; /* ms */
}

/* server process stats */
#define MAXPIDS 16
static int npids; static int pids[MAXPIDS];
static double srv_sys;   /* of the last srv_cpu: the stime part (in the kernel) */
static double srv_cpu(void) {   /* utime+stime seconds summed over pids */
    double t = 0, sys = 0; long hz = sysconf(_SC_CLK_TCK);
    for (int i = 0; i < npids; i++) {
        char path[64], line[4096]; snprintf(path, sizeof path, "/proc/%d/stat", pids[i]);
        FILE *f = fopen(path, "r"); if (!f) continue;
        if (fgets(line, sizeof line, f)) {
            char *p = strrchr(line, ')'); unsigned long ut = 0, st = 0;
            if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2)
                { t += (double)(ut + st) / hz; sys += (double)st / hz; }
        }
        fclose(f);
    }
    srv_sys = sys;
    return t;
}
/* the database server's CPU (-Q): root's utime+stime+cutime+cstime and the
   utime+stime of its children alive now, in seconds; 0 without -Q */
static int db_root;
static double db_cpu(void) {
    if (db_root <= 0) return 0;
    double t = 0; long hz = sysconf(_SC_CLK_TCK);
    DIR *d = opendir("/proc"); struct dirent *e;
    if (!d) return 0;
    while ((e = readdir(d))) {
        int pid = atoi(e->d_name); if (pid <= 0) continue;
        char path[64], line[4096]; snprintf(path, sizeof path, "/proc/%d/stat", pid);
        FILE *f = fopen(path, "r"); if (!f) continue;
        if (fgets(line, sizeof line, f)) {
            char *p = strrchr(line, ')'); int ppid = 0; unsigned long ut = 0, st = 0; long cut = 0, cst = 0;
            if (p && sscanf(p + 2, "%*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %ld %ld", &ppid, &ut, &st, &cut, &cst) == 5) {
                if (pid == db_root) t += (double)(ut + st + cut + cst) / hz;
                else if (ppid == db_root) t += (double)(ut + st) / hz;
            }
        }
        fclose(f);
    }
    closedir(d);
    return t;
}
static long srv_rss_kib(void) {
    long t = 0;
    for (int i = 0; i < npids; i++) {
        char path[64], line[256]; snprintf(path, sizeof path, "/proc/%d/status", pids[i]);
        FILE *f = fopen(path, "r"); if (!f) continue;
        while (fgets(line, sizeof line, f)) if (!strncmp(line, "VmRSS:", 6)) { t += atol(line + 6); break; }
        fclose(f);
    }
    return t;
}
/* busy, interrupt (irq+softirq) and total jiffies of CPUs 0 and 1 (/proc/stat): how
   busy each core was over the window, whoever used it. Interrupt time includes the
   kernel's loopback delivery of what a process sends, not charged to the process;
   the rest, minus the server's (or the load generator's) own share, is other work */
static unsigned long long hi0[2], hi1[2];
static void host_cpu(unsigned long long busy[2], unsigned long long total[2], unsigned long long intr[2]) {
    char line[512]; FILE *f = fopen("/proc/stat", "r");
    busy[0] = busy[1] = total[0] = total[1] = intr[0] = intr[1] = 0;
    if (!f) return;
    while (fgets(line, sizeof line, f)) {
        int cpu; unsigned long long v[8] = { 0 };
        if (sscanf(line, "cpu%d %llu %llu %llu %llu %llu %llu %llu %llu", &cpu, &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) == 9
            && cpu >= 0 && cpu < 2) {
            total[cpu] = v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7];
            busy[cpu] = total[cpu] - v[3] - v[4];
            intr[cpu] = v[5] + v[6];
        }
    }
    fclose(f);
}
static unsigned long long hb0[2], ht0[2], hb1[2], ht1[2];
static double host_busy_pct(int cpu) {
    unsigned long long t = ht1[cpu] - ht0[cpu];
    return t ? 100.0 * (hb1[cpu] - hb0[cpu]) / t : -1;
}
static double host_intr_pct(int cpu) {
    unsigned long long t = ht1[cpu] - ht0[cpu];
    return t ? 100.0 * (hi1[cpu] - hi0[cpu]) / t : -1;
}
static double self_cpu(void) {
    struct rusage ru; getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* base64 */
static size_t b64enc(const unsigned char *in, size_t n, char *out) { return EVP_EncodeBlock((unsigned char *)out, in, n); }
static int b64dec(const char *in, size_t n, unsigned char *out) {
    while (n && (in[n - 1] == '\n' || in[n - 1] == ' ' || in[n - 1] == '\r')) n--;
    while (n && (*in == '\n' || *in == ' ' || *in == '\r')) { in++; n--; }
    if (n % 4) return -1;
    int r = EVP_DecodeBlock(out, (const unsigned char *)in, n); if (r < 0) return -1;
    if (n && in[n - 1] == '=') r--; if (n > 1 && in[n - 2] == '=') r--;
    out[r] = 0; return r;
}

/* ---------- connections ---------- */
enum { S_IDLE, S_CONNECTING, S_FEAT1, S_STARTTLS, S_TLSHS, S_FEAT2, S_AUTH, S_FEAT3, S_BIND, S_SESSION,
       S_ROSTER, S_ONLINE, S_CLOSING };
static const char *state_name[] = { "idle", "connecting", "features", "starttls", "tls-handshake", "features-tls",
    "sasl", "features-auth", "bind", "session", "roster", "online", "closing" };

typedef struct conn {
    int id, user, fd, state;
    SSL *ssl;
    ev_io io; int io_events;
    ev_timer tmo;
    XML_Parser xp; int depth, need_reset, close_after;
    /* current top-level element */
    char name[32], attr_id[160], attr_type[16], attr_from[256];
    int f_starttls, f_scram, f_plain, f_bind, f_session, f_session_opt, in_session, in_mechs;
    int capture; buf_t text; buf_t body; int has_body;
    buf_t out;
    /* sasl */
    int mech; char cfb[128]; int scram_final_sent;
    unsigned char server_sig[20];
    char jid[160];
    uint64_t t_start;
    /* messaging */
    int partner; int inflight; uint64_t seq;
    unsigned gen, parse_gen; int need_session, retries;
    ev_timer retry;
    /* muc: room index, join state (M_*), status codes of the current presence */
    int room, muc, st110, st201;
    /* pep: the <query/> of an iq (namespace, node), a pubsub event, a delayed
       notification; the contacts (conn indexes) read from the roster */
    char q_ns[64], q_node[192]; int pep_event, pep_delay;
    int *contacts, ncontacts, roster_items, pub_pending;
    unsigned char *seen; int nseen;   /* contacts whose available presence came */
} conn_t;
enum { M_OUT, M_JOINING, M_CONFIGURING, M_JOINED, M_FAILED };

typedef struct { int first, ready, failed, joined, inflight, rr; } room_t;
static room_t *rooms;

static struct ev_loop *loop;
static SSL_CTX *sslctx;
static conn_t *conns; static int nconns;
static struct sockaddr_storage srv_addr; static socklen_t srv_addrlen;

/* global counters */
static uint64_t c_retries, c_logins, c_login_err, c_connect_err, c_logouts, c_sent, c_recv, c_recv_win, c_online, c_stream_err;
static uint64_t c_sent_win, c_expected, c_join_err, c_rooms_201, c_disconnects, c_kicked, c_msg_err, c_other_gc;
static int mech_used_scram, mech_used_plain, starttls_used, session_used;
static char tls_desc[96];
static lat_t lat_login, lat_msg;
static char last_err[256];
static uint64_t t0, t_measure_start, t_measure_end; static int measuring, running = 1, sending = 0;
static int rr_next; static int n_pending;

/* per-user SCRAM SaltedPassword cache (clients may cache it; saves the loadgen 4096 HMACs a login) */
typedef struct { unsigned char salt[64]; int saltlen, iter; unsigned char sp[20]; } scache_t;
static scache_t *scache;

static void conn_io_cb(struct ev_loop *l, ev_io *w, int revents);
static void conn_start(conn_t *c);
static void conn_close(conn_t *c, int err, const char *why);
static void on_online(conn_t *c);
static void on_message(conn_t *c, uint64_t ts);
static void on_closed(conn_t *c, int err);
static void muc_stanza(conn_t *c);
static void muc_join_failed(conn_t *c, const char *why);
static int is_muc, is_pep;
static void pep_stanza(conn_t *c);
static void pep_roster_item(conn_t *c, const char **a);
static void send_caps_presence(conn_t *c);

static void set_events(conn_t *c, int ev) {
    if (ev == c->io_events) return;
    ev_io_stop(loop, &c->io); ev_io_set(&c->io, c->fd, ev); c->io_events = ev;
    if (ev) ev_io_start(loop, &c->io);
}

static void conn_flush(conn_t *c) {
    int want = EV_READ;
    while (c->out.len > c->out.off) {
        size_t n = c->out.len - c->out.off; int r;
        if (c->ssl) {
            ERR_clear_error();
            r = SSL_write(c->ssl, c->out.p + c->out.off, n > 65536 ? 65536 : (int)n);
            if (r <= 0) {
                int e = SSL_get_error(c->ssl, r);
                if (e == SSL_ERROR_WANT_WRITE) { want |= EV_WRITE; break; }
                if (e == SSL_ERROR_WANT_READ) break;
                conn_close(c, 1, "SSL_write failed"); return;
            }
        } else {
            r = send(c->fd, c->out.p + c->out.off, n, MSG_NOSIGNAL);
            if (r < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK) { want |= EV_WRITE; break; }
                conn_close(c, 1, "send failed"); return;
            }
        }
        c->out.off += r;
    }
    if (c->out.off == c->out.len) c->out.off = c->out.len = 0;
    set_events(c, want);
}
static void conn_send(conn_t *c, const char *s, size_t n) { buf_add(&c->out, s, n); conn_flush(c); }
static void conn_sendf(conn_t *c, const char *fmt, ...) {
    char tmp[2048]; va_list ap; va_start(ap, fmt); int n = vsnprintf(tmp, sizeof tmp, fmt, ap); va_end(ap);
    if (n >= (int)sizeof tmp) die("stanza too long");
    conn_send(c, tmp, n);
}
static void send_stream_header(conn_t *c) {
    conn_sendf(c, "<?xml version='1.0'?><stream:stream to='%s' xmlns='jabber:client' "
                  "xmlns:stream='http://etherx.jabber.org/streams' version='1.0' xml:lang='en'>", o_domain);
}

/* ---------- XML ---------- */
static const char *lname(const char *n) { const char *p = strchr(n, ':'); return p ? p + 1 : n; }
static const char *attr(const char **a, const char *k) { for (; *a; a += 2) if (!strcmp(a[0], k)) return a[1]; return NULL; }
static void handle_stanza(conn_t *c);

static void xml_start(void *ud, const char *n, const char **a) {
    conn_t *c = ud; const char *ln = lname(n);
    if (c->depth == 0) { c->depth = 1; return; }            /* <stream:stream> */
    if (c->depth == 1) {
        snprintf(c->name, sizeof c->name, "%s", ln);
        const char *v;
        v = attr(a, "id"); snprintf(c->attr_id, sizeof c->attr_id, "%s", v ? v : "");
        v = attr(a, "type"); snprintf(c->attr_type, sizeof c->attr_type, "%s", v ? v : "");
        v = attr(a, "from"); snprintf(c->attr_from, sizeof c->attr_from, "%s", v ? v : "");
        c->f_starttls = c->f_scram = c->f_plain = c->f_bind = c->f_session = c->f_session_opt = 0;
        c->in_session = c->in_mechs = 0; c->has_body = 0; c->st110 = c->st201 = 0;
        c->q_ns[0] = c->q_node[0] = 0; c->pep_event = c->pep_delay = 0;
        buf_reset(&c->text); buf_reset(&c->body);
        c->capture = (!strcmp(ln, "challenge") || !strcmp(ln, "success")) ? 1 : 0;
    } else if (c->depth == 2) {
        if (!strcmp(c->name, "features")) {
            if (!strcmp(ln, "starttls")) c->f_starttls = 1;
            else if (!strcmp(ln, "mechanisms")) c->in_mechs = 1;
            else if (!strcmp(ln, "bind")) c->f_bind = 1;
            else if (!strcmp(ln, "session")) { c->f_session = 1; c->in_session = 1; }
        } else if (!strcmp(c->name, "message") && !strcmp(ln, "body")) { c->capture = 2; c->has_body = 1; }
        else if ((!strcmp(c->name, "error") || !strcmp(c->name, "failure")) && !c->text.len) buf_add(&c->text, ln, strlen(ln));
        else if (!strcmp(ln, "error") && !strcmp(c->attr_type, "error")) c->capture = 3;
        else if (!strcmp(c->name, "iq") && !strcmp(ln, "bind")) { /* <jid> inside */ }
        else if (is_pep && !strcmp(c->name, "iq") && !strcmp(ln, "query")) {
            const char *v = attr(a, "xmlns"); snprintf(c->q_ns, sizeof c->q_ns, "%s", v ? v : "");
            v = attr(a, "node"); snprintf(c->q_node, sizeof c->q_node, "%s", v ? v : "");
        } else if (is_pep && !strcmp(c->name, "message")) {
            if (!strcmp(ln, "event")) c->pep_event = 1; else if (!strcmp(ln, "delay")) c->pep_delay = 1;
        }
    } else if (c->depth == 3) {
        if (c->capture == 3 && !c->text.len && strcmp(ln, "text")) buf_add(&c->text, ln, strlen(ln));
        if (c->in_mechs && !strcmp(ln, "mechanism")) { buf_reset(&c->text); c->capture = 1; }
        else if (c->in_session && !strcmp(ln, "optional")) c->f_session_opt = 1;
        else if (!strcmp(c->name, "iq") && !strcmp(ln, "jid")) { buf_reset(&c->text); c->capture = 1; }
        else if (!strcmp(c->name, "presence") && !strcmp(ln, "status")) {
            const char *code = attr(a, "code");
            if (code && !strcmp(code, "110")) c->st110 = 1;
            if (code && !strcmp(code, "201")) c->st201 = 1;
        }
        else if (is_pep && c->state == S_ROSTER && !strcmp(c->name, "iq") && !strcmp(ln, "item")) pep_roster_item(c, a);
    } else if (c->depth == 5 && c->pep_event && !strcmp(c->name, "message")) {
        c->capture = 2; c->has_body = 1;   /* <message><event><items><item><PAYLOAD> */
    }
    c->depth++;
}
static void xml_end(void *ud, const char *n) {
    conn_t *c = ud; const char *ln = lname(n);
    c->depth--;
    if (c->depth == 0) {                                     /* </stream:stream> from server */
        c->close_after = 1; XML_StopParser(c->xp, XML_FALSE); return;
    }
    if (c->depth == 5 && c->capture == 2) c->capture = 0;   /* end of a PEP payload */
    if (c->depth == 3 && c->in_mechs && !strcmp(ln, "mechanism")) {
        if (!strcmp(c->text.p ? c->text.p : "", "SCRAM-SHA-1")) c->f_scram = 1;
        if (!strcmp(c->text.p ? c->text.p : "", "PLAIN")) c->f_plain = 1;
        c->capture = 0;
    } else if (c->depth == 3 && !strcmp(c->name, "iq") && !strcmp(ln, "jid")) {
        snprintf(c->jid, sizeof c->jid, "%s", c->text.p ? c->text.p : ""); c->capture = 0;
    } else if (c->depth == 2) {
        if (c->capture == 2 || c->capture == 3) c->capture = 0;
        if (!strcmp(ln, "mechanisms")) c->in_mechs = 0;
        if (!strcmp(ln, "session")) c->in_session = 0;
    } else if (c->depth == 1) {
        c->capture = 0; handle_stanza(c);
        if (c->need_reset || c->gen != c->parse_gen) XML_StopParser(c->xp, XML_FALSE);
    }
}
static void xml_text(void *ud, const char *s, int len) {
    conn_t *c = ud;
    if (c->capture == 1) buf_add(&c->text, s, len);
    else if (c->capture == 2) buf_add(&c->body, s, len);
}
static void xml_new(conn_t *c) {
    if (c->xp) XML_ParserReset(c->xp, "UTF-8"); else c->xp = XML_ParserCreate("UTF-8");
    XML_SetUserData(c->xp, c);
    XML_SetElementHandler(c->xp, xml_start, xml_end);
    XML_SetCharacterDataHandler(c->xp, xml_text);
    c->depth = 0; c->need_reset = 0;
}

/* ---------- login state machine ---------- */
static void user_name(conn_t *c, char *out, size_t n) { snprintf(out, n, "%s%d", o_prefix, c->user); }

static void start_auth(conn_t *c) {
    char user[64]; user_name(c, user, sizeof user);
    int scram = c->f_scram && strcmp(o_mech, "plain");
    if (!scram && !c->f_plain) { conn_close(c, 1, "no usable SASL mechanism offered"); return; }
    if (!strcmp(o_mech, "scram") && !scram) { conn_close(c, 1, "SCRAM-SHA-1 forced but not offered"); return; }
    c->state = S_AUTH;
    if (scram) {
        unsigned char rnd[12]; char nonce[32]; RAND_bytes(rnd, sizeof rnd);
        for (int i = 0; i < 12; i++) sprintf(nonce + 2 * i, "%02x", rnd[i]);
        snprintf(c->cfb, sizeof c->cfb, "n=%s,r=%s", user, nonce);
        char gs2[160], b64[256]; int n = snprintf(gs2, sizeof gs2, "n,,%s", c->cfb);
        b64enc((unsigned char *)gs2, n, b64);
        c->mech = 1; c->scram_final_sent = 0;
        conn_sendf(c, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-1'>%s</auth>", b64);
    } else {
        char raw[256], b64[400]; int n = snprintf(raw, sizeof raw, "%c%s%c%s", 0, user, 0, o_pass);
        b64enc((unsigned char *)raw, n, b64);
        c->mech = 2;
        conn_sendf(c, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>%s</auth>", b64);
    }
}

static void scram_step(conn_t *c) {
    unsigned char sf[512];
    if (c->scram_final_sent) {   /* server sent additional data as a challenge: answer empty */
        conn_sendf(c, "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"); return;
    }
    int n = b64dec(c->text.p ? c->text.p : "", c->text.len, sf);
    if (n <= 0) { conn_close(c, 1, "bad SCRAM challenge"); return; }
    char *r = NULL, *s = NULL; int iter = 0; char tmp[512]; memcpy(tmp, sf, n + 1);
    for (char *tok = strtok(tmp, ","); tok; tok = strtok(NULL, ",")) {
        if (!strncmp(tok, "r=", 2)) r = tok + 2; else if (!strncmp(tok, "s=", 2)) s = tok + 2;
        else if (!strncmp(tok, "i=", 2)) iter = atoi(tok + 2);
    }
    if (!r || !s || iter <= 0) { conn_close(c, 1, "bad SCRAM server-first"); return; }
    unsigned char salt[128]; int sl = b64dec(s, strlen(s), salt);
    if (sl <= 0 || sl > 64) { conn_close(c, 1, "bad SCRAM salt"); return; }
    scache_t *sc = &scache[c->user];
    if (sc->iter != iter || sc->saltlen != sl || memcmp(sc->salt, salt, sl)) {
        PKCS5_PBKDF2_HMAC_SHA1(o_pass, strlen(o_pass), salt, sl, iter, 20, sc->sp);
        memcpy(sc->salt, salt, sl); sc->saltlen = sl; sc->iter = iter;
    }
    char cfwp[256]; snprintf(cfwp, sizeof cfwp, "c=biws,r=%s", r);
    char am[1024]; int aml = snprintf(am, sizeof am, "%s,%s,%s", c->cfb, (char *)sf, cfwp);
    unsigned char ck[20], skey[20], csig[20], proof[20]; unsigned int l = 20;
    HMAC(EVP_sha1(), sc->sp, 20, (unsigned char *)"Client Key", 10, ck, &l);
    SHA1(ck, 20, skey);
    HMAC(EVP_sha1(), skey, 20, (unsigned char *)am, aml, csig, &l);
    for (int i = 0; i < 20; i++) proof[i] = ck[i] ^ csig[i];
    char pb64[64]; b64enc(proof, 20, pb64);
    char fin[400]; int fl = snprintf(fin, sizeof fin, "%s,p=%s", cfwp, pb64);
    char fb64[600]; b64enc((unsigned char *)fin, fl, fb64);
    c->scram_final_sent = 1;
    conn_sendf(c, "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>%s</response>", fb64);
}

static void send_roster_get(conn_t *c) {
    c->state = S_ROSTER;
    conn_sendf(c, "<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>");
}

static void handle_stanza(conn_t *c) {
    const char *n = c->name;
    if (!strcmp(n, "error")) {   /* stream error */
        char why[96]; snprintf(why, sizeof why, "stream error <%s/>", c->text.p ? c->text.p : "?");
        c_stream_err++; conn_close(c, 1, why); return;
    }
    switch (c->state) {
    case S_FEAT1:
        if (!strcmp(n, "features")) {
            if (c->f_starttls && o_tls) { c->state = S_STARTTLS; conn_sendf(c, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"); }
            else start_auth(c);
        }
        return;
    case S_STARTTLS:
        if (!strcmp(n, "proceed")) {
            c->ssl = SSL_new(sslctx); SSL_set_fd(c->ssl, c->fd); SSL_set_connect_state(c->ssl);
            SSL_set_tlsext_host_name(c->ssl, o_domain);
            c->state = S_TLSHS; c->need_reset = 1;
        } else conn_close(c, 1, "starttls refused");
        return;
    case S_FEAT2:
        if (!strcmp(n, "features")) start_auth(c);
        return;
    case S_AUTH:
        if (!strcmp(n, "challenge") && c->mech == 1) scram_step(c);
        else if (!strcmp(n, "success")) {
            if (c->mech == 1) mech_used_scram = 1; else mech_used_plain = 1;
            c->state = S_FEAT3; c->need_reset = 1;
        } else if (!strcmp(n, "failure")) { char why[96]; snprintf(why, sizeof why, "SASL failure <%s/>", c->text.p ? c->text.p : "?"); conn_close(c, 1, why); }
        return;
    case S_FEAT3:
        if (!strcmp(n, "features")) {
            if (!c->f_bind) { conn_close(c, 1, "no bind feature"); return; }
            c->state = S_BIND;
            c->need_session = c->f_session && !c->f_session_opt;   /* session required? */
            conn_sendf(c, "<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                          "<resource>lg%d</resource></bind></iq>", c->id);
        }
        return;
    case S_BIND:
        if (!strcmp(n, "iq") && !strcmp(c->attr_id, "b1")) {
            if (strcmp(c->attr_type, "result")) { conn_close(c, 1, "bind failed"); return; }
            if (c->need_session) {
                c->state = S_SESSION; session_used = 1;
                conn_sendf(c, "<iq type='set' id='s1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>");
            } else send_roster_get(c);
        }
        return;
    case S_SESSION:
        if (!strcmp(n, "iq") && !strcmp(c->attr_id, "s1")) {
            if (strcmp(c->attr_type, "result")) { conn_close(c, 1, "session failed"); return; }
            send_roster_get(c);
        }
        return;
    case S_ROSTER:
        if (!strcmp(n, "iq") && !strcmp(c->attr_id, "r1")) {
            if (strcmp(c->attr_type, "result")) { conn_close(c, 1, "roster get failed"); return; }
            c->state = S_ONLINE;
            if (is_pep) send_caps_presence(c); else conn_sendf(c, "<presence/>");
            ev_timer_stop(loop, &c->tmo);
            on_online(c);
        }
        return;
    case S_ONLINE: case S_CLOSING:
        if (is_muc) { muc_stanza(c); return; }
        if (is_pep) { pep_stanza(c); return; }
        if (!strcmp(n, "message") && c->has_body) {
            const char *b = c->body.p ? c->body.p : "";
            if (b[0] == 't') on_message(c, strtoull(b + 1, NULL, 10));
        } else if (!strcmp(n, "iq") && (!strcmp(c->attr_type, "get") || !strcmp(c->attr_type, "set"))) {
            if (c->state == S_ONLINE)   /* e.g. server ping: answer so we are not dropped */
                conn_sendf(c, "<iq type='result' id='%s'%s%s%s/>", c->attr_id, c->attr_from[0] ? " to='" : "",
                           c->attr_from, c->attr_from[0] ? "'" : "");
        }
        return;
    default: return;
    }
}

static void do_handshake(conn_t *c) {
    ERR_clear_error();
    int r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        if (!tls_desc[0]) snprintf(tls_desc, sizeof tls_desc, "%s %s", SSL_get_version(c->ssl), SSL_get_cipher(c->ssl));
        starttls_used = 1;
        c->state = S_FEAT2; xml_new(c); send_stream_header(c); return;
    }
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ) set_events(c, EV_READ);
    else if (e == SSL_ERROR_WANT_WRITE) set_events(c, EV_READ | EV_WRITE);
    else conn_close(c, 1, "TLS handshake failed");
}

static void conn_read(conn_t *c) {
    char b[16384];
    for (;;) {
        int r;
        if (c->ssl) {
            ERR_clear_error();
            r = SSL_read(c->ssl, b, sizeof b);
            if (r <= 0) {
                int e = SSL_get_error(c->ssl, r);
                if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return;
                if (e == SSL_ERROR_ZERO_RETURN) { on_closed(c, c->state != S_CLOSING); return; }
                on_closed(c, c->state != S_CLOSING); return;
            }
        } else {
            r = recv(c->fd, b, sizeof b, 0);
            if (r < 0) { if (errno == EAGAIN || errno == EWOULDBLOCK) return; on_closed(c, c->state != S_CLOSING); return; }
            if (r == 0) { on_closed(c, c->state != S_CLOSING); return; }
        }
        unsigned g = c->gen; c->parse_gen = g;
        if (XML_Parse(c->xp, b, r, 0) == XML_STATUS_ERROR) {
            if (c->gen != g) return;
            if (XML_GetErrorCode(c->xp) != XML_ERROR_ABORTED) {
                snprintf(last_err, sizeof last_err, "XML error: %s", XML_ErrorString(XML_GetErrorCode(c->xp)));
                conn_close(c, 1, last_err); return;
            }
        }
        if (c->gen != g) return;                     /* closed (maybe restarted) inside a callback */
        if (c->close_after) { on_closed(c, c->state != S_CLOSING); return; }
        if (c->need_reset) {
            if (c->state == S_TLSHS) { xml_new(c); do_handshake(c); return; }
            xml_new(c); send_stream_header(c);       /* after SASL success */
        }
    }
}

static void conn_io_cb(struct ev_loop *l, ev_io *w, int revents) {
    (void)l; conn_t *c = w->data;
    if (c->state == S_CONNECTING) {
        int err = 0; socklen_t el = sizeof err; getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err) { c_connect_err++; snprintf(last_err, sizeof last_err, "connect: %s", strerror(err)); conn_close(c, 1, NULL); return; }
        c->state = S_FEAT1; xml_new(c); set_events(c, EV_READ); send_stream_header(c); return;
    }
    if (c->state == S_TLSHS) { do_handshake(c); return; }
    unsigned g = c->gen;
    if (revents & EV_WRITE) { conn_flush(c); if (c->gen != g) return; }
    if (revents & EV_READ) conn_read(c);
}

static void conn_tmo_cb(struct ev_loop *l, ev_timer *w, int revents) {
    (void)l; (void)revents; conn_t *c = w->data;
    if (is_muc && c->state == S_ONLINE) { muc_join_failed(c, c->muc == M_CONFIGURING ? "no answer to the room form" : "no self-presence (110)"); return; }
    char why[96]; snprintf(why, sizeof why, "timeout in state %s", state_name[c->state]);
    if (c->state == S_CLOSING) on_closed(c, 0); else conn_close(c, 1, why);
}

static int login_users_n, login_next_user;
static void conn_start(conn_t *c) {
    if (login_users_n > 0) {   /* login scenario: workers take users round robin from the pool */
        c->user = o_first + login_next_user; login_next_user = (login_next_user + 1) % login_users_n;
    }
    c->fd = socket(srv_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) die("socket: %s", strerror(errno));
    int one = 1; setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    n_pending++;
    c->t_start = now_ns(); c->state = S_CONNECTING; c->close_after = 0; c->inflight = 0;
    c->ssl = NULL; c->jid[0] = 0; buf_reset(&c->out);
    c->ncontacts = c->roster_items = c->pub_pending = c->nseen = 0;   /* pep: read again from the roster */
    ev_io_init(&c->io, conn_io_cb, c->fd, EV_WRITE); c->io.data = c; c->io_events = EV_WRITE; ev_io_start(loop, &c->io);
    ev_timer_init(&c->tmo, conn_tmo_cb, o_login_timeout, 0); c->tmo.data = c; ev_timer_start(loop, &c->tmo);
    if (connect(c->fd, (struct sockaddr *)&srv_addr, srv_addrlen) < 0 && errno != EINPROGRESS) {
        c_connect_err++; snprintf(last_err, sizeof last_err, "connect: %s", strerror(errno)); conn_close(c, 1, NULL);
    }
}

static void conn_teardown(conn_t *c) {
    if (c->state != S_ONLINE && c->state != S_CLOSING && c->state != S_IDLE) n_pending--;
    c->gen++;
    ev_io_stop(loop, &c->io); ev_timer_stop(loop, &c->tmo); c->io_events = 0;
    if (c->ssl) { SSL_free(c->ssl); c->ssl = NULL; }
    if (c->fd >= 0) { close(c->fd); c->fd = -1; }
    c->state = S_IDLE;
}
static void conn_close(conn_t *c, int err, const char *why) {
    if (c->state == S_IDLE) return;
    int was = c->state;
    if (why) snprintf(last_err, sizeof last_err, "conn %d (%s%d): %s [state %s]", c->id, o_prefix, c->user, why, state_name[was]);
    conn_teardown(c);
    if (err) { if (was != S_ONLINE) c_login_err++; }
    c->state = was;            /* let on_closed see where it failed */
    on_closed(c, -1 - err);   /* already torn down: tell the scenario */
    if (c->state == was) c->state = S_IDLE;
}

/* ---------- scenarios ---------- */
static int is_login;
static void retry_cb(struct ev_loop *l, ev_timer *w, int r) {
    (void)l; (void)r; conn_t *c = w->data;
    if (!is_login) n_pending--;
    if (running) conn_start(c);
}
static void stop_loop(void) { running = 0; ev_break(loop, EVBREAK_ALL); }

/* logout: close our stream and the socket right away (do not wait for the server's
   </stream:stream>), so a worker's cycle is dominated by the login itself */
static void logout(conn_t *c) {
    unsigned g = c->gen;
    conn_sendf(c, "</stream:stream>");
    if (c->gen != g) return;
    c->state = S_CLOSING; c_logouts++;
    conn_teardown(c);
    if (running) conn_start(c);
}

static int is_msg, is_idle;

static void on_online(conn_t *c) {
    c_online++; n_pending--;
    uint64_t t = now_ns();
    if (is_login) {
        if (measuring && c->t_start >= t_measure_start) { c_logins++; lat_add(&lat_login, t - c->t_start); }
        logout(c);
    } else {
        lat_add(&lat_login, t - c->t_start);
    }
}

/* called when the connection is gone (or torn down); code: 0 clean, 1 error (still open), <0 already torn down */
static void on_closed(conn_t *c, int code) {
    int was = c->state;
    if (is_pep && was == S_ONLINE && running) c_disconnects++;
    if (is_muc && was == S_ONLINE && running) {   /* lost after login: the hold test counts these */
        c_disconnects++;
        if (c->muc == M_JOINED) rooms[c->room].joined--;
        else if (c->muc == M_JOINING || c->muc == M_CONFIGURING) muc_join_failed(c, "connection lost while joining");
        c->muc = M_OUT;
    }
    if (code >= 0) {
        if (code == 0 && c->state == S_CLOSING) c_logouts++;
        else if (code) { if (c->state != S_ONLINE && c->state != S_CLOSING) c_login_err++;
                         snprintf(last_err, sizeof last_err, "conn %d: closed by server in state %s", c->id, state_name[c->state]); }
        conn_teardown(c);
    }
    if (!is_login && running && code != 0 && was != S_ONLINE && c->retries < 5) {
        /* msg/idle: retry a failed login (jabberd2 sometimes answers internal-server-error) */
        c->retries++; c_retries++; n_pending++;
        ev_timer_stop(loop, &c->retry); ev_timer_set(&c->retry, 0.1, 0); ev_timer_start(loop, &c->retry);
    }
    if (is_login && running) {   /* worker loops; back off a little after an error */
        if (code == 0) conn_start(c);
        else { ev_timer_stop(loop, &c->retry); ev_timer_set(&c->retry, 0.05, 0); ev_timer_start(loop, &c->retry); }
    }
}

static void send_msg(conn_t *c) {
    conn_t *p = &conns[c->partner];
    if (p->state != S_ONLINE) return;
    char to[200];
    if (o_bare || !p->jid[0]) snprintf(to, sizeof to, "%s%d@%s", o_prefix, p->user, o_domain);
    else snprintf(to, sizeof to, "%s", p->jid);
    char body[4096]; int n = snprintf(body, sizeof body, "t%llu ", (unsigned long long)now_ns());
    while (n < o_size && n < (int)sizeof body - 1) body[n++] = 'x';
    body[n] = 0;
    c->seq++; c->inflight++; c_sent++;
    conn_sendf(c, "<message to='%s' type='chat' id='m%llu'><body>%s</body></message>", to, (unsigned long long)c->seq, body);
}

static void on_message(conn_t *c, uint64_t ts) {
    uint64_t t = now_ns();
    c_recv++;
    if (measuring && ts >= t_measure_start) { c_recv_win++; lat_add(&lat_msg, t - ts); }
    conn_t *s = &conns[c->partner];
    if (s->inflight > 0) s->inflight--;
    if (sending && o_rate <= 0 && s->state == S_ONLINE && s->inflight < o_window) send_msg(s);
}

/* rate mode: ticks every ms, sends (send) round robin over the connections
   ready to (ready) up to the target count */
static uint64_t rate_t0, rate_sent;
static void rate_pace(int (*ready)(conn_t *), void (*send)(conn_t *)) {
    if (!sending) return;
    uint64_t target = (uint64_t)((now_ns() - rate_t0) / 1e9 * o_rate);
    int guard = 0;
    while (rate_sent < target && guard < nconns) {
        conn_t *c = &conns[rr_next]; rr_next = (rr_next + 1) % nconns;
        if (ready(c)) { send(c); rate_sent++; guard = 0; } else guard++;
    }
}
static int msg_ready(conn_t *c) { return c->state == S_ONLINE && conns[c->partner].state == S_ONLINE && c->inflight < 1000; }
static void rate_cb(struct ev_loop *l, ev_timer *w, int revents) { (void)l; (void)w; (void)revents; rate_pace(msg_ready, send_msg); }

/* ---------- phases ---------- */
static ev_timer phase_timer, hard_timer, rate_timer, login_pump;
static int phase;
static double cpu0, cpu1, scpu0, scpu1, sys0, sys1, dbcpu0, dbcpu1; static long rss0, rss1;
static int next_login;   /* idle/msg: next conn to start */
static uint64_t t_all_online;

static void hard_cb(struct ev_loop *l, ev_timer *w, int r) { (void)l; (void)w; (void)r; snprintf(last_err, sizeof last_err, "hard timeout hit in phase %d", phase); stop_loop(); }

static int count_online(void) { int n = 0; for (int i = 0; i < nconns; i++) if (conns[i].state == S_ONLINE) n++; return n; }

static void measure_begin(void) { t_measure_start = now_ns(); measuring = 1; cpu0 = srv_cpu(); sys0 = srv_sys; dbcpu0 = db_cpu(); scpu0 = self_cpu(); host_cpu(hb0, ht0, hi0); }
static void measure_end(void) { t_measure_end = now_ns(); measuring = 0; cpu1 = srv_cpu(); sys1 = srv_sys; dbcpu1 = db_cpu(); scpu1 = self_cpu(); host_cpu(hb1, ht1, hi1); }

static void phase_cb(struct ev_loop *l, ev_timer *w, int r);
static void after(double s) { ev_timer_stop(loop, &phase_timer); ev_timer_set(&phase_timer, s, 0); ev_timer_start(loop, &phase_timer); }

/* ---------- muc scenario ---------- */
static char muc_svc[128];
static int *jq, jq_head, jq_tail, j_pending;   /* connections waiting to join, joins in flight */
static ev_timer join_pump, muc_rate_timer;
static uint64_t t_join_start, t_all_joined, t_drain_start;
static long rss_joined;

static void room_jid(int r, char *out, size_t n) { snprintf(out, n, "%s%d@%s", o_room_prefix, r + 1, muc_svc); }

static void muc_join(conn_t *c) {
    char rj[200]; room_jid(c->room, rj, sizeof rj);
    c->muc = M_JOINING; j_pending++;
    ev_timer_stop(loop, &c->tmo); ev_timer_set(&c->tmo, o_login_timeout, 0); ev_timer_start(loop, &c->tmo);
    conn_sendf(c, "<presence to='%s/%s%d'><x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/></x></presence>",
               rj, o_prefix, c->user);
}
static void room_ready(int r) {
    rooms[r].ready = 1;
    for (int i = 1; i < o_per_room; i++) jq[jq_tail++] = r * o_per_room + i;
}
static void muc_joined(conn_t *c) {
    ev_timer_stop(loop, &c->tmo);
    c->muc = M_JOINED; j_pending--; rooms[c->room].joined++;
    if (c->id == rooms[c->room].first && !rooms[c->room].ready) room_ready(c->room);
}
static void muc_join_failed(conn_t *c, const char *why) {
    ev_timer_stop(loop, &c->tmo);
    if (c->muc == M_JOINING || c->muc == M_CONFIGURING) j_pending--;
    c->muc = M_FAILED; c_join_err++;
    snprintf(last_err, sizeof last_err, "conn %d (%s%d): join failed: %s", c->id, o_prefix, c->user, why);
    room_t *rm = &rooms[c->room];
    if (c->id == rm->first && !rm->ready) { rm->failed = 1; c_join_err += o_per_room - 1; }  /* the rest never try */
}

static void send_gc(conn_t *c) {
    if (c->state != S_ONLINE || c->muc != M_JOINED) return;
    char rj[200]; room_jid(c->room, rj, sizeof rj);
    char body[4096]; int n = snprintf(body, sizeof body, "t%llu s%d ", (unsigned long long)now_ns(), c->id);
    while (n < o_size && n < (int)sizeof body - 1) body[n++] = 'x';
    body[n] = 0;
    c->seq++; c->inflight++; rooms[c->room].inflight++; c_sent++; if (measuring) c_sent_win++;
    c_expected += rooms[c->room].joined;   /* one delivery per occupant, the sender included */
    conn_sendf(c, "<message to='%s' type='groupchat' id='g%llu'><body>%s</body></message>", rj, (unsigned long long)c->seq, body);
}

/* closed loop: the room's next joined occupant (round robin) posts */
static void room_post(int r) {
    room_t *rm = &rooms[r];
    for (int k = 0; k < o_per_room; k++) {
        conn_t *c = &conns[r * o_per_room + rm->rr];
        rm->rr = (rm->rr + 1) % o_per_room;
        if (c->state == S_ONLINE && c->muc == M_JOINED) { send_gc(c); return; }
    }
}

static void on_gc(conn_t *c, uint64_t ts, int from) {
    uint64_t t = now_ns();
    c_recv++;
    if (measuring) {   /* rate: every delivery in the window; latency: messages posted in it */
        c_recv_win++;
        if (ts >= t_measure_start) lat_add(&lat_msg, t - ts);
    }
    if (from == c->id) {   /* our own message reflected: it has gone through the room */
        room_t *rm = &rooms[c->room];
        if (c->inflight > 0) c->inflight--;
        if (rm->inflight > 0) rm->inflight--;
        if (sending && o_rate <= 0) while (rm->inflight < o_window && rm->joined > 0) {
            int before = rm->inflight; room_post(c->room); if (rm->inflight == before) break;
        }
    }
}

static void muc_stanza(conn_t *c) {
    const char *n = c->name, *err = c->text.p && c->text.len ? c->text.p : "?";
    if (!strcmp(n, "presence")) {
        if (c->muc == M_JOINING) {
            if (!strcmp(c->attr_type, "error")) { char why[96]; snprintf(why, sizeof why, "presence error <%s/>", err); muc_join_failed(c, why); }
            else if (c->st110 && !c->attr_type[0]) {
                if (c->st201) {   /* new room, locked until its owner submits the (default) form */
                    char rj[200]; room_jid(c->room, rj, sizeof rj);
                    c_rooms_201++; c->muc = M_CONFIGURING;
                    conn_sendf(c, "<iq type='set' to='%s' id='cfg1'><query xmlns='http://jabber.org/protocol/muc#owner'>"
                                  "<x xmlns='jabber:x:data' type='submit'/></query></iq>", rj);
                } else muc_joined(c);
            }
        } else if (c->muc == M_JOINED && c->st110 && !strcmp(c->attr_type, "unavailable")) {
            c_kicked++; c->muc = M_OUT; rooms[c->room].joined--;
            snprintf(last_err, sizeof last_err, "conn %d (%s%d): removed from the room", c->id, o_prefix, c->user);
        }
    } else if (!strcmp(n, "iq")) {
        if (c->muc == M_CONFIGURING && !strcmp(c->attr_id, "cfg1")) {
            if (!strcmp(c->attr_type, "result")) muc_joined(c);
            else { char why[96]; snprintf(why, sizeof why, "instant-room form refused <%s/>", err); muc_join_failed(c, why); }
        } else if ((!strcmp(c->attr_type, "get") || !strcmp(c->attr_type, "set")) && c->state == S_ONLINE) {
            conn_sendf(c, "<iq type='result' id='%s'%s%s%s/>", c->attr_id, c->attr_from[0] ? " to='" : "",
                       c->attr_from, c->attr_from[0] ? "'" : "");
        }
    } else if (!strcmp(n, "message")) {
        if (!strcmp(c->attr_type, "error")) {
            c_msg_err++;
            snprintf(last_err, sizeof last_err, "conn %d (%s%d): message error <%s/>", c->id, o_prefix, c->user, err);
        } else if (!strcmp(c->attr_type, "groupchat") && c->has_body) {
            const char *b = c->body.p ? c->body.p : "";
            char *e; int from = -1; uint64_t ts;
            if (b[0] == 't') {
                ts = strtoull(b + 1, &e, 10);
                if (e[0] == ' ' && e[1] == 's') from = atoi(e + 2);
                on_gc(c, ts, from);
            } else c_other_gc++;
        }
    }
}

/* keep up to o_conc joins in flight; a room's other occupants wait until its first one is in */
static void join_pump_cb(struct ev_loop *l, ev_timer *w, int r) {
    (void)l; (void)w; (void)r;
    while (jq_head < jq_tail && j_pending < o_conc) {
        conn_t *c = &conns[jq[jq_head++]];
        if (c->state == S_ONLINE) muc_join(c); else c_join_err++;
    }
    int settled = 1;
    for (int i = 0; i < o_rooms && settled; i++) if (!rooms[i].ready && !rooms[i].failed) settled = 0;
    if (settled && jq_head == jq_tail && j_pending == 0) {
        ev_timer_stop(loop, &join_pump);
        t_all_joined = now_ns();
        int joined = 0; for (int i = 0; i < o_rooms; i++) joined += rooms[i].joined;
        fprintf(stderr, "join phase done: %d/%d occupants in %d rooms in %.2fs, %llu join errors, %llu rooms answered 201\n",
                joined, nconns, o_rooms, (t_all_joined - t_join_start) / 1e9, (unsigned long long)c_join_err,
                (unsigned long long)c_rooms_201);
        after(0.001);
    }
}
static void muc_start_joins(void) {
    jq = calloc(nconns, sizeof *jq);
    for (int r = 0; r < o_rooms; r++) jq[jq_tail++] = rooms[r].first;
    t_join_start = now_ns();
    ev_timer_init(&join_pump, join_pump_cb, 0.0, 0.002); ev_timer_start(loop, &join_pump);
}

/* fixed rate: ticks every ms, sends round robin over the joined occupants up to the target count */
static int muc_ready(conn_t *c) { return c->state == S_ONLINE && c->muc == M_JOINED && c->inflight < 1000; }
static void muc_rate_cb(struct ev_loop *l, ev_timer *w, int revents) { (void)l; (void)w; (void)revents; rate_pace(muc_ready, send_gc); }

static void muc_phase(void) {
    if (phase == 1) after(o_settle);                                  /* let the logins settle */
    else if (phase == 2) { rss0 = srv_rss_kib(); muc_start_joins(); }  /* logged in, not joined */
    else if (phase == 3) after(o_settle);
    else if (phase == 4) {
        rss_joined = srv_rss_kib();
        sending = 1;
        if (o_rate > 0) { rate_t0 = now_ns(); ev_timer_init(&muc_rate_timer, muc_rate_cb, 0.001, 0.001); ev_timer_start(loop, &muc_rate_timer); }
        else for (int r = 0; r < o_rooms; r++) for (int k = 0; k < o_window; k++) room_post(r);
        after(o_warm);
    } else if (phase == 5) { measure_begin(); after(o_dur); }
    else if (phase == 6) { measure_end(); sending = 0; t_drain_start = now_ns(); after(0.05); }
    else {                                                            /* drain: until all arrived or o_drain */
        if (c_recv >= c_expected || (now_ns() - t_drain_start) / 1e9 >= o_drain) stop_loop();
        else { phase--; after(0.05); }
    }
}

/* ---------- pep scenario ---------- */
#define CAPS_NODE "http://bench.local/xmppload"
#define NS_DISCO_INFO "http://jabber.org/protocol/disco#info"
static char caps_ver[64], caps_query[1024];   /* XEP-0115 ver; our disco#info <query/> children */
static uint64_t c_caps_pres, c_caps_queries, c_other_queries, c_pub_err, c_notif_self, c_last_items, c_pres_in;
static uint64_t c_pub_acked, c_recv_contacts, c_recv_win_contacts, t_send_start, t_pres_done;
static int pep_pres_polls;
static ev_timer pep_rate_timer;

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char **)a, *(const char **)b); }
/* the ver of our identity and features (XEP-0115 section 5.1), and the disco#info answer */
static void pep_caps_init(void) {
    char notify[200]; snprintf(notify, sizeof notify, "%s+notify", o_pep_node);
    const char *f[] = { "http://jabber.org/protocol/caps", NS_DISCO_INFO, o_pep_node, notify };
    qsort(f, 4, sizeof *f, cmp_str);
    char s[1024]; int n = snprintf(s, sizeof s, "client/bot//xmppload<");
    int q = snprintf(caps_query, sizeof caps_query, "<identity category='client' type='bot' name='xmppload'/>");
    for (int i = 0; i < 4; i++) {
        n += snprintf(s + n, sizeof s - n, "%s<", f[i]);
        q += snprintf(caps_query + q, sizeof caps_query - q, "<feature var='%s'/>", f[i]);
    }
    unsigned char md[SHA_DIGEST_LENGTH]; SHA1((unsigned char *)s, n, md);
    b64enc(md, sizeof md, caps_ver);
}
static void send_caps_presence(conn_t *c) {
    c_caps_pres++;
    conn_sendf(c, "<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='" CAPS_NODE "' ver='%s'/></presence>", caps_ver);
}
/* a roster item at login: a contact among our users if its JID is PREFIX<n>@DOMAIN */
static void pep_roster_item(conn_t *c, const char **a) {
    const char *jid = attr(a, "jid"), *sub = attr(a, "subscription");
    size_t pl = strlen(o_prefix);
    c->roster_items++;
    if (!jid || !sub || strcmp(sub, "both") || strncmp(jid, o_prefix, pl)) return;
    char *e; long u = strtol(jid + pl, &e, 10);
    if (e == jid + pl || *e != '@' || strcmp(e + 1, o_domain)) return;
    long idx = u - o_first;
    if (idx < 0 || idx >= nconns || idx == c->id) return;
    c->contacts = realloc(c->contacts, (c->ncontacts + 1) * sizeof *c->contacts);
    c->seen = realloc(c->seen, c->ncontacts + 1);
    c->seen[c->ncontacts] = 0;
    c->contacts[c->ncontacts++] = (int)idx;
}
/* an available presence from one of our users: mark that contact as seen */
static void pep_presence_from(conn_t *c, const char *from) {
    size_t pl = strlen(o_prefix);
    if (strncmp(from, o_prefix, pl)) return;
    char *e; long idx = strtol(from + pl, &e, 10) - o_first;
    if (e == from + pl || *e != '@') return;
    for (int i = 0; i < c->ncontacts; i++)
        if (c->contacts[i] == idx) { if (!c->seen[i]) { c->seen[i] = 1; c->nseen++; } return; }
}

static int contacts_online(conn_t *c) {
    int n = 0;
    for (int i = 0; i < c->ncontacts; i++) if (conns[c->contacts[i]].state == S_ONLINE) n++;
    return n;
}
/* publish one item; the server should notify every contact online and the publisher itself */
static void pep_publish(conn_t *c) {
    if (c->state != S_ONLINE) return;
    char payload[4096]; int n = snprintf(payload, sizeof payload, "t%llu s%d ", (unsigned long long)now_ns(), c->id);
    while (n < o_size && n < (int)sizeof payload - 1) payload[n++] = 'x';
    payload[n] = 0;
    int online = contacts_online(c);
    c->seq++; c->pub_pending++; c_sent++; if (measuring) c_sent_win++;
    c_expected += online;
    conn_sendf(c, "<iq type='set' id='p%llu'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='%s'>"
                  "<item><entry xmlns='%s'>%s</entry></item></publish></pubsub></iq>",
               (unsigned long long)c->seq, o_pep_node, o_pep_node, payload);
}

/* closed loop: publish (round robin over users with no publish unanswered) while
   fewer than o_window notifications are expected and not yet received */
static void pep_fill(void) {
    int guard = 0;
    while (sending && o_rate <= 0 && (int64_t)(c_expected - c_recv_contacts) < o_window && guard < nconns) {
        conn_t *c = &conns[rr_next]; rr_next = (rr_next + 1) % nconns;
        if (c->state == S_ONLINE && c->pub_pending == 0) { pep_publish(c); guard = 0; } else guard++;
    }
}

static void pep_notification(conn_t *c) {
    const char *b = c->body.p ? c->body.p : "";
    char *e; int from = -1; uint64_t ts;
    if (b[0] != 't') { c_last_items++; return; }
    ts = strtoull(b + 1, &e, 10);
    if (e[0] == ' ' && e[1] == 's') from = atoi(e + 2);
    if (c->pep_delay || ts < t0) { c_last_items++; return; }   /* a last item, from an earlier run */
    uint64_t t = now_ns();
    c_recv++;
    if (measuring) c_recv_win++;
    if (from == c->id) { c_notif_self++; return; }   /* the publisher's own copy (or copies) */
    c_recv_contacts++;
    if (measuring) {   /* rate: every delivery in the window; latency: items published in it */
        c_recv_win_contacts++;
        if (ts >= t_measure_start) lat_add(&lat_msg, t - ts);
    }
    pep_fill();
}

static void pep_stanza(conn_t *c) {
    const char *n = c->name, *err = c->text.p && c->text.len ? c->text.p : "?";
    if (!strcmp(n, "message")) {
        if (!strcmp(c->attr_type, "error")) {
            c_msg_err++;
            snprintf(last_err, sizeof last_err, "conn %d (%s%d): message error <%s/>", c->id, o_prefix, c->user, err);
        } else if (c->pep_event && c->has_body) pep_notification(c);
    } else if (!strcmp(n, "iq")) {
        if (c->attr_id[0] == 'p' && (!strcmp(c->attr_type, "result") || !strcmp(c->attr_type, "error"))) {
            if (c->pub_pending > 0) c->pub_pending--;
            if (!strcmp(c->attr_type, "result")) c_pub_acked++;
            else {   /* no notifications to expect (the contacts online now, as good as at publishing) */
                c_pub_err++; c_expected -= contacts_online(c); 
                snprintf(last_err, sizeof last_err, "conn %d (%s%d): publish refused <%s/>", c->id, o_prefix, c->user, err);
            }
            pep_fill();
        } else if (!strcmp(c->attr_type, "get") && !strcmp(c->q_ns, NS_DISCO_INFO) && c->state == S_ONLINE) {
            char want[160]; snprintf(want, sizeof want, CAPS_NODE "#%s", caps_ver);
            if (!strcmp(c->q_node, want)) c_caps_queries++; else c_other_queries++;
            char node[220] = ""; if (c->q_node[0]) snprintf(node, sizeof node, " node='%s'", c->q_node);
            conn_sendf(c, "<iq type='result' id='%s'%s%s%s><query xmlns='" NS_DISCO_INFO "'%s>%s</query></iq>", c->attr_id,
                       c->attr_from[0] ? " to='" : "", c->attr_from, c->attr_from[0] ? "'" : "", node, caps_query);
        } else if ((!strcmp(c->attr_type, "get") || !strcmp(c->attr_type, "set")) && c->state == S_ONLINE) {
            conn_sendf(c, "<iq type='error' id='%s'%s%s%s><error type='cancel'><service-unavailable "
                          "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>", c->attr_id,
                       c->attr_from[0] ? " to='" : "", c->attr_from, c->attr_from[0] ? "'" : "");
        }
    } else if (!strcmp(n, "presence")) {
        if (!c->attr_type[0]) { c_pres_in++; pep_presence_from(c, c->attr_from); }
    }
}

/* fixed rate: ticks every ms, publishes round robin over the online users up to the target count */
static int pep_ready(conn_t *c) { return c->state == S_ONLINE && c->pub_pending < 1000; }
static void pep_rate_cb(struct ev_loop *l, ev_timer *w, int revents) { (void)l; (void)w; (void)revents; rate_pace(pep_ready, pep_publish); }

static void pep_phase(void) {
    if (phase == 1) {   /* until every user has its contacts' presence (at most o_login_timeout s) */
        int done = 1;
        for (int i = 0; i < nconns && done; i++) if (conns[i].state == S_ONLINE && conns[i].nseen < conns[i].ncontacts) done = 0;
        if (!done && ++pep_pres_polls * 0.05 < o_login_timeout) { phase--; after(0.05); return; }
        t_pres_done = now_ns();
        fprintf(stderr, "presence %s after %.2fs\n", done ? "complete" : "still incomplete", (t_pres_done - t0) / 1e9);
        after(o_settle);   /* then what is left: caps queries, last items */
    } else if (phase == 2) {
        sending = 1; t_send_start = now_ns();
        if (o_rate > 0) { rate_t0 = now_ns(); ev_timer_init(&pep_rate_timer, pep_rate_cb, 0.001, 0.001); ev_timer_start(loop, &pep_rate_timer); }
        else pep_fill();
        after(o_warm);
    } else if (phase == 3) { measure_begin(); after(o_dur); }
    else if (phase == 4) { measure_end(); sending = 0; t_drain_start = now_ns(); after(0.05); }
    else {                                                            /* drain: until all arrived or o_drain */
        int acked = 1; for (int i = 0; i < nconns && acked; i++) if (conns[i].state == S_ONLINE && conns[i].pub_pending) acked = 0;
        if ((c_recv_contacts >= c_expected && acked) || (now_ns() - t_drain_start) / 1e9 >= o_drain) stop_loop();
        else { phase--; after(0.05); }
    }
}

/* keep up to o_conc logins in flight until all nconns started */
static void pump_cb(struct ev_loop *l, ev_timer *w, int r) {
    (void)l; (void)w; (void)r;
    int pend = n_pending;
    while (next_login < nconns && pend < o_conc) { conn_start(&conns[next_login++]); pend++; }
    int on = count_online();
    if (next_login >= nconns && pend == 0) {
        ev_timer_stop(loop, &login_pump);
        t_all_online = now_ns();
        fprintf(stderr, "login phase done: %d/%d online in %.2fs, %llu errors\n", on, nconns,
                (t_all_online - t0) / 1e9, (unsigned long long)c_login_err);
        after(0.001);
    }
}

static void phase_cb(struct ev_loop *l, ev_timer *w, int r) {
    (void)l; (void)w; (void)r;
    phase++;
    if (is_muc) { muc_phase(); return; }
    if (is_pep) { pep_phase(); return; }
    if (is_login) {
        if (phase == 1) { measure_begin(); after(o_dur); }            /* warmup done */
        else { measure_end(); stop_loop(); }
    } else if (is_msg) {
        if (phase == 1) { after(1.0); }                               /* let initial presence settle */
        else if (phase == 2) {
            sending = 1;
            if (o_rate > 0) { rate_t0 = now_ns(); ev_timer_init(&rate_timer, rate_cb, 0.001, 0.001); ev_timer_start(loop, &rate_timer); }
            else for (int i = 0; i < nconns; i++) for (int k = 0; k < o_window && conns[i].state == S_ONLINE; k++) send_msg(&conns[i]);
            after(o_warm);
        } else if (phase == 3) { measure_begin(); after(o_dur); }
        else if (phase == 4) { measure_end(); sending = 0; after(2.0); }   /* drain */
        else stop_loop();
    } else if (is_idle) {
        if (phase == 1) after(o_settle);
        else { rss1 = srv_rss_kib(); cpu1 = srv_cpu(); stop_loop(); }
    }
}

static void usage(void) {
    fprintf(stderr,
"usage: xmppload -s login|msg|idle|muc|pep [options]\n"
"  -h host (127.0.0.1)  -p port (5222)  -D domain (bench.local)  -u user prefix (u)  -k password (pass)\n"
"  -f first user number (1)  -n users (msg/idle: that many connections; login: pool the workers take users from round robin, default c)\n"
"  -c concurrency: login workers / parallel logins while connecting (16)\n"
"  -d measure seconds (10)  -W warmup seconds (3)  -S settle seconds for idle (5)\n"
"  -w per-sender window for closed-loop msg (10)  -r total offered msgs/s (0 = closed loop)\n"
"  -b message body bytes (64)  -B send to bare JID (default: partner's full JID)\n"
"  -m auto|scram|plain SASL choice (auto: SCRAM-SHA-1 if offered)  -N no STARTTLS\n"
"  -P \"pid pid ..\" server pids for CPU/RSS  -T hard timeout seconds  -L label for the JSON\n"
"  -Q pid  msg: also the CPU of this database server (a postmaster and its children), apart\n"
"  muc: -R rooms (1)  -M occupants per room (10)  -C MUC service (conference.DOMAIN)  -K room name prefix (bench)\n"
"       -w closed loop: messages a room keeps posted but not yet reflected to their senders (10)\n"
"       -r total offered msgs/s instead  -e drain seconds (10)\n"
"       -S settle seconds before each RSS reading (2)\n"
"  pep: -n users (rosters of mutual contacts prepared in advance)  -g PEP node (urn:xmpp:bench:0)\n"
"       -r total offered publishes/s (round robin over the users), or closed loop:\n"
"       -w notifications expected and not yet received, in all (10)\n"
"       -S settle seconds after the logins (2)  -e drain seconds (10)\n");
    exit(2);
}

int main(int argc, char **argv) {
    int opt;
    while ((opt = getopt(argc, argv, "s:h:p:D:u:k:f:n:c:d:W:S:w:r:b:Bm:NP:Q:T:L:l:R:M:C:K:e:g:")) != -1) {
        switch (opt) {
        case 's': o_scen = optarg; break; case 'h': o_host = optarg; break; case 'p': o_port = atoi(optarg); break;
        case 'D': o_domain = optarg; break; case 'u': o_prefix = optarg; break; case 'k': o_pass = optarg; break;
        case 'f': o_first = atoi(optarg); break; case 'n': o_users = atoi(optarg); o_users_set = 1; break; case 'c': o_conc = atoi(optarg); break;
        case 'd': o_dur = atof(optarg); break; case 'W': o_warm = atof(optarg); break; case 'S': o_settle = atof(optarg); o_settle_set = 1; break;
        case 'w': o_window = atoi(optarg); break; case 'r': o_rate = atof(optarg); break; case 'b': o_size = atoi(optarg); break;
        case 'B': o_bare = 1; break; case 'm': o_mech = optarg; break; case 'N': o_tls = 0; break;
        case 'P': o_pids = optarg; break; case 'Q': db_root = atoi(optarg); break; case 'T': o_timeout = atof(optarg); break; case 'L': o_label = optarg; break;
        case 'l': o_login_timeout = atof(optarg); break;
        case 'R': o_rooms = atoi(optarg); break; case 'M': o_per_room = atoi(optarg); break;
        case 'C': o_muc_service = optarg; break; case 'K': o_room_prefix = optarg; break;
        case 'e': o_drain = atof(optarg); break; case 'g': o_pep_node = optarg; break;
        default: usage();
        }
    }
    is_login = !strcmp(o_scen, "login"); is_msg = !strcmp(o_scen, "msg"); is_idle = !strcmp(o_scen, "idle");
    is_muc = !strcmp(o_scen, "muc"); is_pep = !strcmp(o_scen, "pep");
    if (!is_login && !is_msg && !is_idle && !is_muc && !is_pep) usage();
    if (is_pep) {
        if (!o_settle_set) o_settle = 2;
        pep_caps_init();
    }
    if (is_muc) {
        if (o_rooms < 1 || o_per_room < 1) die("muc needs -R >= 1 and -M >= 1");
        o_users = o_rooms * o_per_room;
        if (!o_settle_set) o_settle = 2;
        snprintf(muc_svc, sizeof muc_svc, "%s", o_muc_service ? o_muc_service : "");
        if (!o_muc_service) snprintf(muc_svc, sizeof muc_svc, "conference.%s", o_domain);
    }
    if (o_size > 4000) o_size = 4000;
    for (char *p = (char *)o_pids; *p && npids < MAXPIDS;) {
        while (*p == ' ' || *p == ',') p++; if (!*p) break;
        pids[npids++] = atoi(p); while (*p && *p != ' ' && *p != ',') p++;
    }
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl; getrlimit(RLIMIT_NOFILE, &rl); rl.rlim_cur = rl.rlim_max; setrlimit(RLIMIT_NOFILE, &rl);

    memset(&srv_addr, 0, sizeof srv_addr);
    struct sockaddr_in *a4 = (struct sockaddr_in *)&srv_addr; struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&srv_addr;
    if (inet_pton(AF_INET, o_host, &a4->sin_addr) == 1) { a4->sin_family = AF_INET; a4->sin_port = htons(o_port); srv_addrlen = sizeof *a4; }
    else if (inet_pton(AF_INET6, o_host, &a6->sin6_addr) == 1) { a6->sin6_family = AF_INET6; a6->sin6_port = htons(o_port); srv_addrlen = sizeof *a6; }
    else die("host must be a numeric loopback address");

    sslctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(sslctx, SSL_VERIFY_NONE, NULL);   /* self-signed test certificates */
    SSL_CTX_set_min_proto_version(sslctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(sslctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_session_cache_mode(sslctx, SSL_SESS_CACHE_OFF);

    nconns = is_login ? o_conc : o_users;
    if (is_login) { int pool = o_users_set ? o_users : o_conc; if (pool < o_conc) pool = o_conc; login_users_n = pool; }
    if (is_msg && (nconns % 2)) die("msg needs an even -n");
    conns = calloc(nconns, sizeof *conns);
    int maxuser = o_first + (is_login ? login_users_n : nconns);
    scache = calloc(maxuser + 1, sizeof *scache);
    for (int i = 0; i < nconns; i++) {
        conns[i].id = i; conns[i].user = o_first + i; conns[i].fd = -1; conns[i].partner = i ^ 1;
        conns[i].room = is_muc ? i / o_per_room : 0;
        ev_timer_init(&conns[i].retry, retry_cb, 0.05, 0); conns[i].retry.data = &conns[i];
    }
    if (is_muc) {
        rooms = calloc(o_rooms, sizeof *rooms);
        for (int r = 0; r < o_rooms; r++) rooms[r].first = r * o_per_room;
    }
    loop = EV_DEFAULT;
    if (o_timeout <= 0) o_timeout = (is_login ? o_warm + o_dur : is_msg ? o_warm + o_dur + 60 : is_muc ? 2 * o_settle + o_warm + o_dur + o_drain + nconns / 10.0 + o_login_timeout
                                     : is_pep ? o_settle + o_warm + o_dur + o_drain + nconns / 10.0
                                     : o_settle + nconns / 20.0) + o_login_timeout + 30;
    ev_timer_init(&hard_timer, hard_cb, o_timeout, 0); ev_timer_start(loop, &hard_timer);
    ev_timer_init(&phase_timer, phase_cb, 1, 0);

    t0 = now_ns();
    rss0 = srv_rss_kib(); cpu0 = srv_cpu();
    if (is_login) {
        for (int i = 0; i < nconns; i++) conn_start(&conns[i]);
        after(o_warm);
    } else {
        ev_timer_init(&login_pump, pump_cb, 0.0, 0.002); ev_timer_start(loop, &login_pump);
    }
    ev_run(loop, 0);
    uint64_t t_end = now_ns();
    if (!t_measure_end && measuring) measure_end();
    if (is_idle && !rss1) { rss1 = srv_rss_kib(); cpu1 = srv_cpu(); }   /* timed out: report what is online */

    /* ---------- report ---------- */
    const char *mech = mech_used_scram && mech_used_plain ? "mixed" : mech_used_scram ? "SCRAM-SHA-1" : mech_used_plain ? "PLAIN" : "none";
    double win = t_measure_end > t_measure_start ? (t_measure_end - t_measure_start) / 1e9 : 0;
    double lg_cpu = win > 0 ? (scpu1 - scpu0) / win * 100 : 0;
    if (lat_login.n) qsort(lat_login.v, lat_login.n, sizeof *lat_login.v, cmp_u32);
    if (lat_msg.n) qsort(lat_msg.v, lat_msg.n, sizeof *lat_msg.v, cmp_u32);
    int online = count_online();
    printf("{\"scenario\":\"%s\",\"label\":\"%s\",\"port\":%d,\"sasl\":\"%s\",\"starttls\":%s,\"tls\":\"%s\",\"session_iq\":%s,",
           o_scen, o_label, o_port, mech, starttls_used ? "true" : "false", tls_desc, session_used ? "true" : "false");
    printf("\"login_retries\":%llu,", (unsigned long long)c_retries);
    printf("\"login_errors\":%llu,\"connect_errors\":%llu,\"stream_errors\":%llu,\"last_error\":\"%s\",",
           (unsigned long long)c_login_err, (unsigned long long)c_connect_err, (unsigned long long)c_stream_err, last_err);
    if (is_login) {
        printf("\"workers\":%d,\"window_s\":%.3f,\"logins\":%llu,\"logins_per_s\":%.1f,\"login_p50_ms\":%.2f,\"login_p99_ms\":%.2f,"
               "\"logouts\":%llu,\"server_cpu_s\":%.2f,\"server_cpu_pct\":%.1f,\"loadgen_cpu_pct\":%.1f}\n",
               o_conc, win, (unsigned long long)c_logins, win > 0 ? c_logins / win : 0, lat_pct(&lat_login, .5), lat_pct(&lat_login, .99),
               (unsigned long long)c_logouts, cpu1 - cpu0, win > 0 ? (cpu1 - cpu0) / win * 100 : 0, lg_cpu);
        fprintf(stderr, "[login] %.1f logins/s (%llu in %.1fs), p50 %.2f ms p99 %.2f ms, sasl %s, %s, errors %llu, server cpu %.0f%%, loadgen cpu %.0f%%\n",
                win > 0 ? c_logins / win : 0, (unsigned long long)c_logins, win, lat_pct(&lat_login, .5), lat_pct(&lat_login, .99),
                mech, tls_desc, (unsigned long long)c_login_err, win > 0 ? (cpu1 - cpu0) / win * 100 : 0, lg_cpu);
    } else if (is_msg) {
        double rate = win > 0 ? c_recv_win / win : 0, cpu = cpu1 - cpu0;
        printf("\"users\":%d,\"online\":%d,\"window\":%d,\"offered_rate\":%.0f,\"body_bytes\":%d,\"window_s\":%.3f,\"sent\":%llu,\"received\":%llu,"
               "\"delivered_in_window\":%llu,\"msgs_per_s\":%.1f,\"lat_p50_ms\":%.3f,\"lat_p99_ms\":%.3f,\"lat_max_ms\":%.3f,"
               "\"server_cpu_s\":%.3f,\"server_cpu_pct\":%.1f,\"cpu_s_per_100k\":%.3f,\"server_sys_share_pct\":%.1f,"
               "\"db_cpu_s\":%.3f,\"db_cpu_pct\":%.1f,\"db_cpu_s_per_100k\":%.3f,"
               "\"loadgen_cpu_pct\":%.1f,\"cpu0_busy_pct\":%.1f,\"cpu1_busy_pct\":%.1f,\"login_p50_ms\":%.2f}\n",
               nconns, online, o_window, o_rate, o_size, win, (unsigned long long)c_sent, (unsigned long long)c_recv,
               (unsigned long long)c_recv_win, rate, lat_pct(&lat_msg, .5), lat_pct(&lat_msg, .99), lat_pct(&lat_msg, 1.0),
               cpu, win > 0 ? cpu / win * 100 : 0, c_recv_win ? cpu / c_recv_win * 1e5 : -1, cpu > 0 ? (sys1 - sys0) / cpu * 100 : -1,
               dbcpu1 - dbcpu0, win > 0 ? (dbcpu1 - dbcpu0) / win * 100 : 0, c_recv_win ? (dbcpu1 - dbcpu0) / c_recv_win * 1e5 : -1,
               lg_cpu, host_busy_pct(0), host_busy_pct(1), lat_pct(&lat_login, .5));
        fprintf(stderr, "[msg] %d users online %d, %s: %.0f msgs/s delivered, latency p50 %.3f ms p99 %.3f ms, server cpu %.0f%% = %.2f s/100k msgs, loadgen cpu %.0f%%, sasl %s\n",
                nconns, online, o_rate > 0 ? "fixed rate" : "closed loop", rate, lat_pct(&lat_msg, .5), lat_pct(&lat_msg, .99),
                win > 0 ? cpu / win * 100 : 0, c_recv_win ? cpu / c_recv_win * 1e5 : -1, lg_cpu, mech);
    } else if (is_muc) {
        double rate = win > 0 ? c_recv_win / win : 0, cpu = cpu1 - cpu0;
        int joined = 0; for (int i = 0; i < o_rooms; i++) joined += rooms[i].joined;
        double jt = t_all_joined > t_join_start ? (t_all_joined - t_join_start) / 1e9 : -1;
        long lost = (long)c_expected - (long)c_recv;
        double kib_occ = joined ? (double)(rss_joined - rss0) / joined : -1;
        printf("\"rooms\":%d,\"occupants_per_room\":%d,\"users\":%d,\"online\":%d,\"joined\":%d,\"join_errors\":%llu,\"rooms_201\":%llu,"
               "\"join_phase_s\":%.2f,\"window\":%d,\"offered_rate\":%.0f,\"body_bytes\":%d,\"window_s\":%.3f,"
               "\"sent\":%llu,\"sent_in_window\":%llu,\"posted_per_s\":%.1f,\"expected\":%llu,\"received\":%llu,\"lost\":%ld,"
               "\"delivered_in_window\":%llu,\"msgs_per_s\":%.1f,\"lat_p50_ms\":%.3f,\"lat_p99_ms\":%.3f,\"lat_max_ms\":%.3f,"
               "\"server_cpu_s\":%.3f,\"server_cpu_pct\":%.1f,\"cpu_us_per_delivery\":%.3f,\"cpu_s_per_100k\":%.3f,"
               "\"rss_logged_in_kib\":%ld,\"rss_joined_kib\":%ld,\"kib_per_occupant\":%.2f,"
               "\"disconnects\":%llu,\"kicked\":%llu,\"msg_errors\":%llu,\"other_groupchat\":%llu,"
               "\"loadgen_cpu_pct\":%.1f,\"cpu0_busy_pct\":%.1f,\"cpu0_irq_pct\":%.1f,\"cpu1_busy_pct\":%.1f,\"login_p50_ms\":%.2f}\n",
               o_rooms, o_per_room, nconns, online, joined, (unsigned long long)c_join_err, (unsigned long long)c_rooms_201,
               jt, o_window, o_rate, o_size, win, (unsigned long long)c_sent, (unsigned long long)c_sent_win,
               win > 0 ? c_sent_win / win : 0, (unsigned long long)c_expected, (unsigned long long)c_recv, lost,
               (unsigned long long)c_recv_win, rate, lat_pct(&lat_msg, .5), lat_pct(&lat_msg, .99), lat_pct(&lat_msg, 1.0),
               cpu, win > 0 ? cpu / win * 100 : 0, c_recv_win ? cpu / c_recv_win * 1e6 : -1, c_recv_win ? cpu / c_recv_win * 1e5 : -1,
               rss0, rss_joined, kib_occ,
               (unsigned long long)c_disconnects, (unsigned long long)c_kicked, (unsigned long long)c_msg_err, (unsigned long long)c_other_gc,
               lg_cpu, host_busy_pct(0), host_intr_pct(0), host_busy_pct(1), lat_pct(&lat_login, .5));
        fprintf(stderr, "[muc] %d rooms x %d: %d/%d joined in %.1fs, %s: %.0f deliveries/s (%.0f posts/s), latency p50 %.3f ms p99 %.3f ms, "
                "server cpu %.0f%% = %.2f us/delivery, %.1f KiB/occupant, lost %ld, msg errors %llu, disconnects %llu, loadgen cpu %.0f%%, "
                "cpu0/cpu1 busy %.0f%%/%.0f%%\n",
                o_rooms, o_per_room, joined, nconns, jt, o_rate > 0 ? "fixed rate" : "closed loop", rate, win > 0 ? c_sent_win / win : 0,
                lat_pct(&lat_msg, .5), lat_pct(&lat_msg, .99), win > 0 ? cpu / win * 100 : 0, c_recv_win ? cpu / c_recv_win * 1e6 : -1,
                kib_occ, lost, (unsigned long long)c_msg_err, (unsigned long long)c_disconnects, lg_cpu, host_busy_pct(0), host_busy_pct(1));
    } else if (is_pep) {
        /* deliveries: notifications reaching contacts (the publisher's own copies apart) */
        uint64_t dw = c_recv_win_contacts;
        double rate = win > 0 ? dw / win : 0, cpu = cpu1 - cpu0;
        long lost = (long)c_expected - (long)c_recv_contacts;
        int cmin = -1, cmax = 0; long csum = 0;
        for (int i = 0; i < nconns; i++) {
            csum += conns[i].ncontacts;
            if (cmin < 0 || conns[i].ncontacts < cmin) cmin = conns[i].ncontacts;
            if (conns[i].ncontacts > cmax) cmax = conns[i].ncontacts;
        }
        double hit = c_caps_pres ? 100.0 * (1.0 - (double)c_caps_queries / c_caps_pres) : -1;
        printf("\"users\":%d,\"online\":%d,\"contacts_min\":%d,\"contacts_avg\":%.1f,\"contacts_max\":%d,\"node\":\"%s\",\"caps_ver\":\"%s\","
               "\"caps_presences\":%llu,\"caps_queries\":%llu,\"other_disco_queries\":%llu,\"caps_hit_pct\":%.2f,\"presences_in\":%llu,"
               "\"login_phase_s\":%.2f,\"presence_phase_s\":%.2f,"
               "\"window\":%d,\"offered_rate\":%.0f,\"payload_bytes\":%d,\"window_s\":%.3f,"
               "\"published\":%llu,\"published_in_window\":%llu,\"published_per_s\":%.1f,\"publish_acked\":%llu,\"publish_errors\":%llu,"
               "\"expected\":%llu,\"received\":%llu,\"lost\":%ld,\"own_copies\":%llu,\"last_items\":%llu,"
               "\"delivered_in_window\":%llu,\"delivered_in_window_with_self\":%llu,\"notifs_per_s\":%.1f,"
               "\"lat_p50_ms\":%.3f,\"lat_p99_ms\":%.3f,\"lat_max_ms\":%.3f,"
               "\"server_cpu_s\":%.3f,\"server_cpu_pct\":%.1f,\"server_sys_share_pct\":%.1f,\"cpu_us_per_delivery\":%.3f,\"rss_kib\":%ld,"
               "\"disconnects\":%llu,\"msg_errors\":%llu,"
               "\"loadgen_cpu_pct\":%.1f,\"cpu0_busy_pct\":%.1f,\"cpu0_irq_pct\":%.1f,\"cpu1_busy_pct\":%.1f,\"login_p50_ms\":%.2f}\n",
               nconns, online, cmin, nconns ? (double)csum / nconns : 0, cmax, o_pep_node, caps_ver,
               (unsigned long long)c_caps_pres, (unsigned long long)c_caps_queries, (unsigned long long)c_other_queries, hit,
               (unsigned long long)c_pres_in, t_all_online > t0 ? (t_all_online - t0) / 1e9 : -1,
               t_pres_done > t_all_online && t_all_online ? (t_pres_done - t_all_online) / 1e9 : -1, o_window, o_rate, o_size, win,
               (unsigned long long)c_sent, (unsigned long long)c_sent_win, win > 0 ? c_sent_win / win : 0,
               (unsigned long long)c_pub_acked, (unsigned long long)c_pub_err,
               (unsigned long long)c_expected, (unsigned long long)c_recv_contacts, lost, (unsigned long long)c_notif_self,
               (unsigned long long)c_last_items,
               (unsigned long long)dw, (unsigned long long)c_recv_win, rate,
               lat_pct(&lat_msg, .5), lat_pct(&lat_msg, .99), lat_pct(&lat_msg, 1.0),
               cpu, win > 0 ? cpu / win * 100 : 0, cpu > 0 ? (sys1 - sys0) / cpu * 100 : -1, dw ? cpu / dw * 1e6 : -1, srv_rss_kib(),
               (unsigned long long)c_disconnects, (unsigned long long)c_msg_err,
               lg_cpu, host_busy_pct(0), host_intr_pct(0), host_busy_pct(1), lat_pct(&lat_login, .5));
        fprintf(stderr, "[pep] %d/%d online, contacts %d..%d, caps: %llu presences, %llu queries (hit %.1f%%), %s: %.0f notifications/s "
                "(%.1f publishes/s), latency p50 %.3f ms p99 %.3f ms, server cpu %.0f%% = %.2f us/notification, lost %ld, "
                "own copies %llu for %llu publishes, publish errors %llu, disconnects %llu, loadgen cpu %.0f%%, cpu0/cpu1 busy %.0f%%/%.0f%%\n",
                online, nconns, cmin, cmax, (unsigned long long)c_caps_pres, (unsigned long long)c_caps_queries, hit,
                o_rate > 0 ? "fixed rate" : "closed loop", rate, win > 0 ? c_sent_win / win : 0,
                lat_pct(&lat_msg, .5), lat_pct(&lat_msg, .99), win > 0 ? cpu / win * 100 : 0, dw ? cpu / dw * 1e6 : -1,
                lost, (unsigned long long)c_notif_self, (unsigned long long)c_pub_acked, (unsigned long long)c_pub_err,
                (unsigned long long)c_disconnects, lg_cpu, host_busy_pct(0), host_busy_pct(1));
    } else {
        double lt = t_all_online > t0 ? (t_all_online - t0) / 1e9 : (t_end - t0) / 1e9;
        printf("\"users\":%d,\"online\":%d,\"login_phase_s\":%.2f,\"logins_per_s\":%.1f,\"rss_before_kib\":%ld,\"rss_after_kib\":%ld,"
               "\"kib_per_conn\":%.2f,\"server_cpu_s\":%.2f,\"login_p50_ms\":%.2f,\"login_p99_ms\":%.2f}\n",
               nconns, online, lt, online / lt, rss0, rss1, online ? (double)(rss1 - rss0) / online : -1, cpu1 - cpu0,
               lat_pct(&lat_login, .5), lat_pct(&lat_login, .99));
        fprintf(stderr, "[idle] %d/%d online, RSS %ld -> %ld KiB = %.1f KiB/conn, login phase %.1fs\n",
                online, nconns, rss0, rss1, online ? (double)(rss1 - rss0) / online : -1, lt);
    }
    if (last_err[0]) fprintf(stderr, "last error: %s\n", last_err);
    /* polite-ish teardown: close the stream on every open connection, then exit */
    for (int i = 0; i < nconns; i++) if (conns[i].state == S_ONLINE) { conn_sendf(&conns[i], "</stream:stream>"); }
    for (int i = 0; i < nconns; i++) if (conns[i].state != S_IDLE) conn_teardown(&conns[i]);
    return 0;
}
