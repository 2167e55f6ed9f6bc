/*
 * parleyd's main(): the daemon's composition root.  It registers the
 * built-in modules and hands the control socket and the HTTP admin API
 * and the web admin (which serve the same command table) to the server, then runs
 * the daemon (server_main, server/daemon.c).  It lives in ctl/, the top
 * floor, because it is the one place that names every layer: server/
 * below it knows the control socket only as the struct server_control
 * registered here.  The main thread.
 */
#include "ctl.h"
#include "http-api.h"
#include "web-admin.h"
#include "server/server.h"
#include "modules/builtin.h"

/* The control channels: the control socket, and the HTTP admin API (which
 * runs the same commands), and the web admin (whose pages run them). */
static int control_listen(struct ev_loop *loop, const struct parley_config *cfg, char **error_r)
{
	if (ctl_listen(loop, cfg, error_r) < 0)
		return -1;
	if (http_api_start(loop, cfg, error_r) < 0)
		return -1;
	return web_admin_start(loop, cfg, error_r);
}

static void control_stop_accepting(void)
{
	ctl_stop_accepting();
	http_api_stop_accepting();
	web_admin_stop_accepting();
}

static void control_close(void)
{
	web_admin_stop();
	http_api_stop();
	ctl_close();
}

static const struct server_control control_socket = {
	.listen = control_listen,
	.chown = ctl_chown,
	.stop_accepting = control_stop_accepting,
	.shutdown = ctl_shutdown,
	.close = control_close,
};

int main(int argc, char **argv)
{
	modules_register_builtin();
	return server_main(argc, argv, &control_socket);
}
