/*
 * parleyd: start-up and shutdown (server_main; parleyd's main() is in
 * ctl/parleyd.c).  Reads the configuration, binds the listeners and the
 * control channel (as root when needed), detaches when asked to, drops
 * privileges, starts the virtual hosts and runs the event loop until
 * SIGTERM/SIGINT or `parleyctl stop`.  SIGHUP reloads the configuration.
 * The main thread, which runs the loop.
 *
 * The modules and the control channel are registered by the caller before
 * server_main runs: nothing here names a layer above server/.
 */
#include "server.h"
#include "listener.h"
#include "http.h"
#include "stream.h"
#include "host.h"
#include "component.h"
#include "fast.h"
#include "s2s.h"
#include "metrics.h"
#include "lib/i18n.h"
#include "lib/latency.h"
#include "lib/log.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef SYSCONFDIR
#define SYSCONFDIR "/etc"
#endif

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: parleyd [-c FILE] [-d] [-t] [-V] [-h]\n"
	        "  -c FILE     configuration file (default %s/parley/parley.yml)\n"
	        "  -d          run in the background (daemon)\n"
	        "  -t          check the configuration and exit\n"
	        "  -V          print the version and exit\n"
	        "  -h, --help  print this help and exit\n",
	        SYSCONFDIR);
}

static void on_stop_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
	latency_begin(LATENCY_CONTROL, "signal");
	log_notice("signal %d received", w->signum);
	server_stop();
	latency_end();
}

static void on_hup(struct ev_loop *loop, ev_signal *w, int revents)
{
	latency_begin(LATENCY_CONTROL, "SIGHUP");
	struct buf report = { 0 };
	log_notice("SIGHUP: reloading the configuration");
	server_reload(&report);
	buf_free(&report);
	latency_end();
}

static int write_pidfile(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		log_error("pidfile %s: %s", path, strerror(errno));
		return -1;
	}
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (write(fd, buf, (size_t)n) != n) {
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

static int daemonize(void)
{
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid > 0)
		_exit(0);
	if (setsid() < 0)
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid > 0)
		_exit(0);
	int fd = open("/dev/null", O_RDWR);
	if (fd >= 0) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO); /* logs go to log_file when daemonized */
		if (fd > STDERR_FILENO)
			close(fd);
	}
	return 0;
}

static int drop_privileges(const struct parley_config *cfg)
{
	if (cfg->user == NULL || geteuid() != 0)
		return 0;
	struct passwd *pw = getpwnam(cfg->user);
	if (pw == NULL) {
		log_error("user %s (config key 'user') does not exist", cfg->user);
		return -1;
	}
	gid_t gid = pw->pw_gid;
	if (cfg->group != NULL) {
		struct group *gr = getgrnam(cfg->group);
		if (gr == NULL) {
			log_error("group %s (config key 'group') does not exist", cfg->group);
			return -1;
		}
		gid = gr->gr_gid;
	}
	if (server.control != NULL && server.control->chown != NULL)
		server.control->chown(pw->pw_uid, gid);
	if (setgid(gid) < 0 || initgroups(pw->pw_name, gid) < 0 || setuid(pw->pw_uid) < 0) {
		log_error("cannot become user %s: %s", cfg->user, strerror(errno));
		return -1;
	}
	log_info("running as user %s", cfg->user);
	return 0;
}

int server_main(int argc, char **argv, const struct server_control *control)
{
	const char *cfg_path = SYSCONFDIR "/parley/parley.yml";
	bool daemon_mode = false, check_only = false;
	int opt;
	for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
		if (strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		}
	}
	while ((opt = getopt(argc, argv, "c:dtVh")) != -1) {
		switch (opt) {
		case 'c': cfg_path = optarg; break;
		case 'd': daemon_mode = true; break;
		case 't': check_only = true; break;
		case 'V': printf("parleyd %s\n", PACKAGE_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}

	struct parley_config *cfg;
	char *err = NULL;
	if (server_config_check(cfg_path, &cfg, &err) < 0) {
		fprintf(stderr, "parleyd: %s\n", err);
		free(err);
		return 1;
	}
	if (check_only) {
		for (size_t i = 0; i < cfg->warnings.count; i++)
			fprintf(stderr, "parleyd: warning: %s\n", cfg->warnings.items[i]);
		printf("%s: configuration OK (%zu hosts, %zu listeners)\n", cfg_path, cfg->nhosts,
		       cfg->nlisten);
		config_free(&cfg);
		return 0;
	}
	int lvl = log_level_parse(cfg->loglevel);
	log_set_level(lvl >= 0 ? (enum log_level)lvl : LOG_LEVEL_INFO);
	const char *lerr;
	if (cfg->log_file != NULL && log_open_file(cfg->log_file, &lerr) < 0) {
		fprintf(stderr, "parleyd: log_file %s: %s\n", cfg->log_file, lerr);
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	for (size_t i = 0; i < cfg->warnings.count; i++)
		log_warning("%s", cfg->warnings.items[i]);

	server.cfg = cfg;
	server.argv = argv;
	server.online = true;
	server.loop = ev_default_loop(EVFLAG_AUTO);
	server.started = ev_time();
	server.control = control;
	int rc = 1;

	/* One load for every text Parley translates: stanza errors, forms,
	 * the web admin. */
	int ncat = i18n_load(i18n_locale_dir());
	log_info("%d translation(s) from %s", ncat, i18n_locale_dir());
	http_start();
	if (components_start(cfg, &err) < 0 || s2s_start(server.loop, &err) < 0 ||
	    listeners_open(cfg, &err) < 0 ||
	    (control != NULL && control->listen != NULL && control->listen(server.loop, cfg, &err) < 0)) {
		log_error("%s", err);
		free(err);
		goto out;
	}
	if (daemon_mode && cfg->log_file == NULL)
		log_warning("running in the background without log_file: log lines will be discarded");
	/* A restart runs in the process that was already detached. */
	bool reexec = getenv("PARLEY_RESTARTED") != NULL;
	unsetenv("PARLEY_RESTARTED");
	if (daemon_mode && !reexec && daemonize() < 0) {
		log_error("cannot detach: %s", strerror(errno));
		goto out;
	}
	ev_loop_fork(server.loop);
	if (cfg->pidfile != NULL && write_pidfile(cfg->pidfile) < 0)
		goto out;
	if (drop_privileges(cfg) < 0)
		goto out;

	if (cfg->fast.enabled && fast_key_load(cfg->fast.key_file, &err) < 0) {
		log_error("%s", err);
		free(err);
		goto out;
	}
	latency_attach(server.loop, cfg->latency_threshold);
	latency_set_usage(cfg->latency_usage);
	if (metrics_start(cfg, &err) < 0) {
		log_error("%s", err);
		free(err);
		goto out;
	}
	streams_init(server.loop);
	if (hosts_start(server.loop, cfg, true, &err) < 0) {
		log_error("%s", err);
		free(err);
		hosts_stop();
		goto out;
	}
	listeners_start(server.loop);

	ev_signal sigterm, sigint, sighup;
	ev_signal_init(&sigterm, on_stop_signal, SIGTERM);
	ev_signal_init(&sigint, on_stop_signal, SIGINT);
	ev_signal_init(&sighup, on_hup, SIGHUP);
	ev_signal_start(server.loop, &sigterm);
	ev_signal_start(server.loop, &sigint);
	ev_signal_start(server.loop, &sighup);

	log_notice("parleyd ready: version %s, %zu hosts, config %s", PACKAGE_VERSION, cfg->nhosts,
	           cfg->file);
	ev_run(server.loop, 0);

	ev_signal_stop(server.loop, &sigterm);
	ev_signal_stop(server.loop, &sigint);
	ev_signal_stop(server.loop, &sighup);
	s2s_stop();
	metrics_stop();
	streams_shutdown();
	hosts_stop();
	components_stop();
	if (control != NULL && control->shutdown != NULL)
		control->shutdown();
	log_notice("parleyd stopped");
	rc = 0;
out:
	if (control != NULL && control->close != NULL)
		control->close();
	listeners_close();
	if (cfg->pidfile != NULL && rc == 0)
		unlink(cfg->pidfile);
	config_free(&cfg);
	server_free_configs();
	fast_key_clear();
	i18n_unload();
	if (rc == 0 && server.restart) {
		log_notice("parleyd restarting");
		setenv("PARLEY_RESTARTED", "1", 1);
		execv("/proc/self/exe", argv);
		fprintf(stderr, "parleyd: cannot restart: %s\n", strerror(errno));
		return 1;
	}
	return rc;
}
