/*
 * mod_time: XEP-0202 entity time of the server JID: the offset of the
 * server's local time zone (<tzo>) and UTC with milliseconds (<utc>).
 * Loop thread; answers at once (IQ_NO_QUEUE); no state.
 */
#include "builtin.h"
#include "server/host.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static void add_text_child(struct xml_node *parent, const char *name, const char *text)
{
	struct xml_node *n = xml_add_child(parent, name, NULL);
	xml_add_text(n, text, strlen(text));
}

static void time_get(struct iq_request *req, void *ctx)
{
	if (strcmp(req->type, "get") != 0) {
		iq_error(req, SE_NOT_ALLOWED, NULL);
		return;
	}
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm local;
	localtime_r(&ts.tv_sec, &local);

	char tzo[16];
	long off = local.tm_gmtoff;
	char sign = off < 0 ? '-' : '+';
	if (off < 0)
		off = -off;
	/* Offsets are within ±26 hours; the casts keep the sizes obvious. */
	snprintf(tzo, sizeof(tzo), "%c%02d:%02d", sign, (int)(off / 3600 % 100), (int)(off % 3600 / 60));

	char stamp[XEP82_STAMP_LEN];
	xep82_stamp_us(stamp, (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000, 3);

	struct xml_node *t = iq_payload_new("time", NS_TIME);
	add_text_child(t, "tzo", tzo);
	add_text_child(t, "utc", stamp);
	iq_result(req, t);
	xml_unref(&t);
}

static const struct builtin_iq time_iqs[] = {
	{ IQ_SCOPE_SERVER, NS_TIME, IQ_NO_QUEUE, time_get },
};

static int time_start(struct host *h, const void *settings, void **state_r, char **error_r)
{
	if (builtin_iq_register(h, time_iqs, ARRAY_SIZE(time_iqs), NULL, error_r) < 0)
		return -1;
	host_add_feature(h, NS_TIME);
	*state_r = NULL;
	return 0;
}

static void time_stop(struct host *h, void *state)
{
	builtin_iq_unregister(h, time_iqs, ARRAY_SIZE(time_iqs));
	host_remove_feature(h, NS_TIME);
}

const struct module_def mod_time = {
	.name = "time",
	.description = "XEP-0202 entity time of the server",
	.options = NULL,
	.settings_size = 0,
	.default_enabled = true,
	.start = time_start,
	.stop = time_stop,
};
