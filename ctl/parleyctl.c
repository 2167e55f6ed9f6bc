/*
 * parleyctl: the administration tool.  Sends one command (or, for
 * import-users, a series) to parleyd over the control socket named in the
 * configuration.  When parleyd is not running, the data commands (register,
 * unregister, passwd, import-users) run in this process instead: the hosts
 * are started without listeners and the same command code runs here.
 *
 * Exit codes (enum ctl_code): 0 ok (or yes), 1 the command failed (or
 * no), 2 usage or configuration error, 3 parleyd not reachable, 4
 * temporary failure (a backend is unavailable), 5 refused in this state
 * (restore while parleyd runs).
 */
#include "server/server.h"
#include "server/host.h"
#include "ctl.h"
#include "lib/log.h"
#include "modules/builtin.h"

#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <time.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#ifndef SYSCONFDIR
#define SYSCONFDIR "/etc"
#endif


struct result {
	int code;
	char *message;
	char *body;
	bool done;
};

static void result_clear(struct result *r)
{
	free(r->message);
	free(r->body);
	memset(r, 0, sizeof(*r));
}

/* ---- online: the control socket --------------------------------------------------- */

static int sock_connect(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(sun.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static FILE *sock_in;

/* Send one request and read its response. */
static int sock_call(int fd, int argc, char **argv, struct result *res)
{
	struct buf req = { 0 };
	ctl_encode_request(&req, argc, argv);
	size_t off = 0;
	while (off < req.len) {
		ssize_t n = write(fd, req.data + off, req.len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			buf_free(&req);
			return -1;
		}
		off += (size_t)n;
	}
	buf_free(&req);
	char *line = NULL;
	size_t cap = 0;
	ssize_t n = getline(&line, &cap, sock_in);
	if (n <= 0) {
		free(line);
		return -1;
	}
	line[strcspn(line, "\n")] = '\0';
	if (strcmp(line, "OK") == 0) {
		res->code = CTL_OK;
	} else if (strncmp(line, "ERR ", 4) == 0) {
		char *sp;
		res->code = (int)strtol(line + 4, &sp, 10);
		res->message = xstrdup(*sp == ' ' ? sp + 1 : sp);
	} else {
		free(line);
		return -1;
	}
	struct buf body = { 0 };
	while ((n = getline(&line, &cap, sock_in)) > 0) {
		if (strcmp(line, ".\n") == 0)
			break;
		buf_append_str(&body, line[0] == '.' ? line + 1 : line);
	}
	free(line);
	res->body = body.data != NULL ? buf_steal(&body) : xstrdup("");
	res->done = true;
	return n > 0 ? 0 : -1;
}

/* ---- offline: the command code in this process ----------------------------------------- */

static void offline_done(void *ctx, int code, const char *message, const char *body)
{
	struct result *r = ctx;
	r->code = code;
	r->message = message != NULL ? xstrdup(message) : NULL;
	r->body = xstrdup(body);
	r->done = true;
	ev_break(server.loop, EVBREAK_ONE);
}

static void offline_call(int argc, char **argv, struct result *res)
{
	ctl_run(server.loop, argc, argv, offline_done, res);
	while (!res->done)
		ev_run(server.loop, 0);
}

/* ---- commands ------------------------------------------------------------------------ */

static int print_result(const struct result *r)
{
	if (r->body != NULL)
		fputs(r->body, stdout);
	if (r->code != CTL_OK)
		fprintf(stderr, "parleyctl: %s\n", r->message != NULL ? r->message : "failed");
	return r->code;
}

typedef void call_fn(void *ctx, int argc, char **argv, struct result *res);

static void online_call_fn(void *ctx, int argc, char **argv, struct result *res)
{
	if (sock_call(*(int *)ctx, argc, argv, res) < 0) {
		res->code = CTL_UNREACHABLE;
		res->message = xstrdup("lost the connection to parleyd");
		res->body = xstrdup("");
	}
}

static void offline_call_fn(void *ctx, int argc, char **argv, struct result *res)
{
	offline_call(argc, argv, res);
}

/* import-users HOST: "user:password" lines on stdin; existing accounts are kept. */
static int import_users(const char *host, call_fn *call, void *ctx)
{
	char *line = NULL;
	size_t cap = 0;
	unsigned created = 0, existing = 0, failed = 0, lineno = 0;
	int rc = CTL_OK;
	while (getline(&line, &cap, stdin) > 0) {
		lineno++;
		line[strcspn(line, "\r\n")] = '\0';
		if (line[0] == '\0' || line[0] == '#')
			continue;
		char *colon = strchr(line, ':');
		if (colon == NULL) {
			fprintf(stderr, "parleyctl: stdin line %u: expected user:password\n", lineno);
			failed++;
			continue;
		}
		*colon = '\0';
		char *argv[] = { "register", line, (char *)host, colon + 1, NULL };
		struct result r = { 0 };
		call(ctx, 4, argv, &r);
		if (r.code == CTL_OK)
			created++;
		else if (r.code == CTL_FAILED && r.message != NULL && strstr(r.message, " exists") != NULL)
			existing++;
		else {
			fprintf(stderr, "parleyctl: %s: %s\n", line,
			        r.message != NULL ? r.message : "failed");
			failed++;
			if (r.code == CTL_UNREACHABLE || r.code == CTL_TEMPFAIL)
				rc = r.code;
		}
		explicit_bzero(colon + 1, strlen(colon + 1));
		result_clear(&r);
		if (rc == CTL_UNREACHABLE)
			break;
	}
	free(line);
	printf("created %u, existing %u, failed %u\n", created, existing, failed);
	if (rc == CTL_OK && failed > 0)
		rc = CTL_FAILED;
	return rc;
}

/* auth-test's password: one line from stdin, asked for without echo when
 * stdin is a terminal (never from the command line, where ps shows it). */
static char *read_password(void)
{
	struct termios old, quiet;
	bool tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &old) == 0;
	if (tty) {
		fputs("Password: ", stderr);
		fflush(stderr);
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t n = getline(&line, &cap, stdin);
	if (tty) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
		fputs("\n", stderr);
	}
	if (n <= 0) {
		free(line);
		return NULL;
	}
	line[strcspn(line, "\r\n")] = '\0';
	return line;
}


static void secret_free(char *s)
{
	if (s != NULL) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

/* path made absolute against the current directory (the file itself need
 * not exist; its directory must). */
static char *absolute_path(const char *path)
{
	char *d = xstrdup(path), *b = xstrdup(path);
	char *dir = dirname(d), *base = basename(b);
	char real[PATH_MAX];
	char *out = NULL;
	if (realpath(dir, real) != NULL)
		out = xasprintf("%s/%s", strcmp(real, "/") == 0 ? "" : real, base);
	free(d);
	free(b);
	return out;
}

/* After restart: wait until the new parleyd answers status (30 s). */
static int wait_restarted(const char *sock)
{
	struct timespec start, now;
	clock_gettime(CLOCK_MONOTONIC, &start);
	/* the old process closes its socket first; give it a moment */
	poll(NULL, 0, 200);
	for (;;) {
		int fd = sock_connect(sock);
		if (fd >= 0) {
			sock_in = fdopen(dup(fd), "r");
			char *argv[] = { "status", NULL };
			struct result r = { 0 };
			int ok = sock_call(fd, 1, argv, &r);
			fclose(sock_in);
			close(fd);
			int code = r.code;
			result_clear(&r);
			if (ok == 0 && code == CTL_OK) {
				printf("parleyd is running again\n");
				return CTL_OK;
			}
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - start.tv_sec > 30) {
			fprintf(stderr, "parleyctl: parleyd did not come back within 30 s (see its log)\n");
			return CTL_UNREACHABLE;
		}
		poll(NULL, 0, 100);
	}
}

static void usage(FILE *f)
{
	struct buf b = { 0 };
	ctl_help(&b);
	fprintf(f,
	        "usage: parleyctl [-c FILE] [--json] COMMAND [ARGS...]\n"
	        "  -c FILE  configuration file (default %s/parley/parley.yml)\n"
	        "  --json   JSON output (registered-users, connected-users, connected-users-info,\n"
	        "           stats, ldap-test, list-commands)\n"
	        "commands:\n%s"
	        "  %-20s %-20s %s\n"
	        "exit codes: 0 ok (yes), 1 failed (no), 2 usage, 3 parleyd not reachable,\n"
	        "            4 temporary failure, 5 refused while parleyd runs\n",
	        SYSCONFDIR, b.data, "import-users", "HOST",
	        "create accounts from user:password lines on stdin");
	buf_free(&b);
}

int main(int argc, char **argv)
{
	const char *cfg_path = SYSCONFDIR "/parley/parley.yml";
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;
	bool json = false;
	while ((opt = getopt_long(argc, argv, "+c:hj", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c': cfg_path = optarg; break;
		case 'j': json = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return CTL_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return CTL_USAGE;
	}
	int cargc = argc - optind;
	char **cargv = argv + optind;
	if (strcmp(cargv[0], "help") == 0 && cargc == 1) {
		usage(stdout); /* local: it includes import-users, which parleyctl drives itself */
		return CTL_OK;
	}
	/* --json after the command name is accepted too */
	for (int i = 1; i < cargc; i++) {
		if (strcmp(cargv[i], "--json") == 0) {
			json = true;
			memmove(&cargv[i], &cargv[i + 1], (size_t)(cargc - i) * sizeof(*cargv));
			cargc--;
			i--;
		}
	}
	unsigned flags = 0;
	bool known = ctl_command_flags(cargv[0], &flags);
	if (!known && strcmp(cargv[0], "import-users") != 0) {
		fprintf(stderr, "parleyctl: unknown command '%s' (try help)\n", cargv[0]);
		return CTL_USAGE;
	}
	/* the request: ["--json"] COMMAND ARGS [PASSWORD from stdin] */
	char **rargv = xcalloc((size_t)cargc + 3, sizeof(*rargv));
	int rargc = 0;
	char *stdin_secret = NULL, *abs_path = NULL;
	if (json)
		rargv[rargc++] = "--json";
	for (int i = 0; i < cargc; i++)
		rargv[rargc++] = cargv[i];
	if (known && (flags & CTL_F_STDIN) && cargc >= 2) {
		stdin_secret = read_password();
		if (stdin_secret == NULL) {
			fprintf(stderr, "parleyctl: %s reads the password from stdin; nothing came\n",
			        cargv[0]);
			free(stdin_secret);
			free(rargv);
			return CTL_USAGE;
		}
		rargv[rargc++] = stdin_secret;
	}
	if (known && (flags & CTL_F_PATH) && cargc >= 2) {
		abs_path = absolute_path(cargv[1]);
		if (abs_path == NULL) {
			fprintf(stderr, "parleyctl: %s: %s\n", cargv[1], strerror(errno));
			free(rargv);
			return CTL_USAGE;
		}
		rargv[rargc - cargc + 1] = abs_path;
	}
	if (known && (flags & CTL_F_LOCAL)) {
		/* in this process, whatever runs and whatever -c says */
		server.online = false;
		server.loop = ev_default_loop(EVFLAG_AUTO);
		log_set_level(LOG_LEVEL_WARNING);
		modules_register_builtin();
		struct result r = { 0 };
		offline_call(rargc, rargv, &r);
		int lrc = print_result(&r);
		result_clear(&r);
		ctl_shutdown();
		free(abs_path);
		free(rargv);
		return lrc;
	}
	bool import = strcmp(cargv[0], "import-users") == 0;
	struct parley_config *cfg = NULL;
	char *err = NULL;
	if (import && cargc != 2) {
		fprintf(stderr, "parleyctl: usage: import-users HOST < user:password lines\n");
		secret_free(stdin_secret);
		free(abs_path);
		free(rargv);
		return CTL_USAGE;
	}
	if (config_load(cfg_path, &cfg, &err) < 0) {
		fprintf(stderr, "parleyctl: %s\n", err);
		free(err);
		secret_free(stdin_secret);
		free(abs_path);
		free(rargv);
		return CTL_USAGE;
	}
	log_set_level(LOG_LEVEL_WARNING);
	server.cfg = cfg;

	int rc;
	int fd = sock_connect(cfg->control_socket);
	if (fd >= 0) {
		sock_in = fdopen(dup(fd), "r");
		struct result r = { 0 };
		if (import) {
			rc = import_users(cargv[1], online_call_fn, &fd);
		} else {
			online_call_fn(&fd, rargc, rargv, &r);
			rc = print_result(&r);
			result_clear(&r);
		}
		fclose(sock_in);
		close(fd);
		if (rc == CTL_OK && strcmp(cargv[0], "restart") == 0)
			rc = wait_restarted(cfg->control_socket);
		secret_free(stdin_secret);
		free(abs_path);
		free(rargv);
		config_free(&cfg);
		return rc;
	}
	/* A usage error is one whether parleyd runs or not (ctl_run checks the
	 * same when it does, and for the offline commands here). */
	struct ctl_command_info ci;
	int nargs = rargc - (json ? 1 : 0) - 1;
	if (!import && !ctl_command_offline(cargv[0]) && ctl_command_find(cargv[0], &ci) &&
	    (nargs < ci.min_args || nargs > ci.max_args || (json && !(ci.flags & CTL_F_JSON)))) {
		if (json && !(ci.flags & CTL_F_JSON))
			fprintf(stderr, "parleyctl: %s has no JSON output\n", ci.name);
		else
			fprintf(stderr, "parleyctl: usage: %s %s\n", ci.name, ci.args);
		secret_free(stdin_secret);
		free(abs_path);
		free(rargv);
		config_free(&cfg);
		return CTL_USAGE;
	}
	if (!import && !ctl_command_offline(cargv[0])) {
		if (strcmp(cargv[0], "status") == 0)
			printf("status: not running\n");
		fprintf(stderr, "parleyctl: parleyd is not running (control socket %s: %s)\n",
		        cfg->control_socket, strerror(errno));
		secret_free(stdin_secret);
		free(abs_path);
		free(rargv);
		config_free(&cfg);
		return CTL_UNREACHABLE;
	}
	/* Offline: run the command here against the configured stores. */
	server.online = false;
	server.loop = ev_default_loop(EVFLAG_AUTO);
	server.started = ev_time();
	modules_register_builtin();
	bool with_hosts = import || !(flags & (CTL_F_NOHOSTS | CTL_F_STOPPED));
	if (with_hosts && hosts_start(server.loop, cfg, false, &err) < 0) {
		fprintf(stderr, "parleyctl: %s\n", err);
		free(err);
		hosts_stop();
		secret_free(stdin_secret);
		free(abs_path);
		free(rargv);
		config_free(&cfg);
		return CTL_FAILED;
	}
	if (import) {
		rc = import_users(cargv[1], offline_call_fn, NULL);
	} else {
		struct result r = { 0 };
		offline_call(rargc, rargv, &r);
		rc = print_result(&r);
		result_clear(&r);
	}
	if (with_hosts)
		hosts_stop();
	ctl_shutdown();
	secret_free(stdin_secret);
	free(abs_path);
	free(rargv);
	config_free(&cfg);
	return rc;
}
