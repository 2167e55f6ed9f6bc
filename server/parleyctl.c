/*
 * parleyctl: the administration tool.  Sends one command (or, for
 * import-users, a series) to parleyd over the control socket named in the
 * configuration.  When parleyd is not running, the data commands (register,
 * unregister, passwd, import-users) run in this process instead: the hosts
 * are started without listeners and the same command code runs here.
 *
 * Exit codes: 0 ok, 1 the command failed, 2 usage or configuration error,
 * 3 parleyd not reachable, 4 temporary failure (a backend is unavailable).
 */
#include "server.h"
#include "host.h"
#include "ctl.h"
#include "log.h"
#include "modules/builtin.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
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
	struct buf req = {0};
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
	struct buf body = {0};
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
		struct result r = {0};
		call(ctx, 4, argv, &r);
		if (r.code == CTL_OK)
			created++;
		else if (r.code == CTL_FAILED && r.message != NULL && strstr(r.message, " exists") != NULL)
			existing++;
		else {
			fprintf(stderr, "parleyctl: %s: %s\n", line, r.message != NULL ? r.message : "failed");
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

static void usage(FILE *f)
{
	struct buf b = {0};
	ctl_help(&b);
	fprintf(f, "usage: parleyctl [-c FILE] COMMAND [ARGS...]\n"
	           "  -c FILE  configuration file (default %s/parley/parley.yml)\n"
	           "commands:\n%s"
	           "  %-16s %-20s %s\n"
	           "exit codes: 0 ok, 1 failed, 2 usage, 3 parleyd not reachable, 4 temporary failure\n",
	        SYSCONFDIR, b.data, "import-users", "HOST", "create accounts from user:password lines on stdin");
	buf_free(&b);
}

int main(int argc, char **argv)
{
	const char *cfg_path = SYSCONFDIR "/parley/parley.yml";
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;
	while ((opt = getopt_long(argc, argv, "+c:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c': cfg_path = optarg; break;
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
	if (strcmp(cargv[0], "help") == 0) {
		usage(stdout);   /* local: it includes import-users, which parleyctl drives itself */
		return CTL_OK;
	}
	bool import = strcmp(cargv[0], "import-users") == 0;
	if (import && cargc != 2) {
		fprintf(stderr, "parleyctl: usage: import-users HOST < user:password lines\n");
		return CTL_USAGE;
	}

	struct parley_config *cfg;
	char *err = NULL;
	if (config_load(cfg_path, &cfg, &err) < 0) {
		fprintf(stderr, "parleyctl: %s\n", err);
		free(err);
		return CTL_USAGE;
	}
	log_set_level(LOG_LEVEL_WARNING);
	server.cfg = cfg;

	int rc;
	int fd = sock_connect(cfg->control_socket);
	if (fd >= 0) {
		sock_in = fdopen(dup(fd), "r");
		struct result r = {0};
		if (import) {
			rc = import_users(cargv[1], online_call_fn, &fd);
		} else {
			online_call_fn(&fd, cargc, cargv, &r);
			rc = print_result(&r);
			result_clear(&r);
		}
		fclose(sock_in);
		close(fd);
		config_free(&cfg);
		return rc;
	}
	if (!import && !ctl_command_offline(cargv[0])) {
		if (strcmp(cargv[0], "status") == 0)
			printf("status: not running\n");
		fprintf(stderr, "parleyctl: parleyd is not running (control socket %s: %s)\n",
		        cfg->control_socket, strerror(errno));
		config_free(&cfg);
		return CTL_UNREACHABLE;
	}
	/* Offline: run the command here against the configured stores. */
	server.online = false;
	server.loop = ev_default_loop(EVFLAG_AUTO);
	server.started = ev_time();
	modules_register_builtin();
	if (hosts_start(server.loop, cfg, false, &err) < 0) {
		fprintf(stderr, "parleyctl: %s\n", err);
		free(err);
		hosts_stop();
		config_free(&cfg);
		return CTL_FAILED;
	}
	if (import) {
		rc = import_users(cargv[1], offline_call_fn, NULL);
	} else {
		struct result r = {0};
		offline_call(cargc, cargv, &r);
		rc = print_result(&r);
		result_clear(&r);
	}
	hosts_stop();
	config_free(&cfg);
	return rc;
}
