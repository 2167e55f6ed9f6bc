/*
 * parleyd's main(): the daemon's composition root.  It registers the
 * built-in modules and hands the control socket to the server, then runs
 * the daemon (server_main, server/daemon.c).  It lives in ctl/, the top
 * floor, because it is the one place that names every layer: server/
 * below it knows the control socket only as the struct server_control
 * registered here.  The main thread.
 */
#include "ctl.h"
#include "server/server.h"
#include "modules/builtin.h"

static const struct server_control control_socket = {
	.listen = ctl_listen,
	.chown = ctl_chown,
	.stop_accepting = ctl_stop_accepting,
	.shutdown = ctl_shutdown,
	.close = ctl_close,
};

int main(int argc, char **argv)
{
	modules_register_builtin();
	return server_main(argc, argv, &control_socket);
}
