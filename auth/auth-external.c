/*
 * The "external" auth backend: an operator's program speaking the port
 * protocol (auth/auth-external.h), run by the process pool (procpool.c),
 * and the protocol's framing, which the PAM helper speaks too.
 *
 * Thread: the loop thread only (the framing functions are pure and may be
 * called from anywhere).
 *
 * Invariants: a request never holds ':' in the user or server field (the
 * encoder refuses it), and a frame's payload never exceeds
 * EXTPROTO_MAX_PAYLOAD; what the pool guarantees (timeouts, restarts,
 * stderr logging, the cache) is written at the top of procpool.c.
 */
#include "auth/auth-external.h"
#include "auth/procpool.h"

/* ---- framing ------------------------------------------------------------------- */

const char *extproto_op_name(enum auth_op op, bool with_password)
{
	switch (op) {
	case AUTH_OP_CHECK_PASSWORD: return "auth";
	case AUTH_OP_USER_EXISTS: return "isuser";
	case AUTH_OP_SET_PASSWORD: return "setpass";
	case AUTH_OP_CREATE_USER: return "tryregister";
	case AUTH_OP_REMOVE_USER: return with_password ? "removeuser3" : "removeuser";
	case AUTH_OP_GET_SCRAM: return NULL;
	}
	return NULL;
}

int extproto_encode(struct buf *out, const char *opname, const char *user, const char *server,
                    const char *password)
{
	if (strchr(opname, ':') != NULL || strchr(user, ':') != NULL || strchr(server, ':') != NULL)
		return -1;
	size_t len = strlen(opname) + 1 + strlen(user) + 1 + strlen(server);
	if (password != NULL)
		len += 1 + strlen(password);
	if (len > EXTPROTO_MAX_PAYLOAD)
		return -1;
	unsigned char hdr[2] = { (unsigned char)(len >> 8), (unsigned char)(len & 0xff) };
	buf_append(out, hdr, 2);
	buf_append_str(out, opname);
	buf_append_str(out, ":");
	buf_append_str(out, user);
	buf_append_str(out, ":");
	buf_append_str(out, server);
	if (password != NULL) {
		buf_append_str(out, ":");
		buf_append_str(out, password);
	}
	return 0;
}

int extproto_decode_reply(const unsigned char *data, size_t len, bool tempfail_ok,
                          enum extproto_answer *answer_r)
{
	if (len >= 2 && (data[0] != 0 || data[1] != 2))
		return -1;
	if (len >= 4 && (data[2] != 0 || data[3] > (tempfail_ok ? 2 : 1)))
		return -1;
	if (len > 4)
		return -1;
	if (len < 4)
		return 0;
	*answer_r = (enum extproto_answer)data[3];
	return 1;
}

int extproto_split(const char *payload, size_t len, char **copy_r, const char *fields_r[4])
{
	*copy_r = NULL;
	if (memchr(payload, '\0', len) != NULL)
		return -1;
	char *c = xstrndup(payload, len);
	char *colon = strchr(c, ':');
	if (colon == NULL) {
		free(c);
		return -1;
	}
	*colon = '\0';
	static const struct {
		const char *name;
		int fields;
	} ops[] = {
		{ "auth", 4 },        { "isuser", 3 },     { "setpass", 4 },
		{ "tryregister", 4 }, { "removeuser", 3 }, { "removeuser3", 4 },
	};
	int want = -1;
	for (size_t i = 0; i < ARRAY_SIZE(ops); i++)
		if (strcmp(c, ops[i].name) == 0)
			want = ops[i].fields;
	if (want < 0) {
		free(c);
		return -1;
	}
	fields_r[0] = c;
	char *p = colon + 1;
	int n = 1;
	while (n < want) {
		fields_r[n++] = p;
		if (n == want)
			break;
		char *next = strchr(p, ':');
		if (next == NULL) {
			free(c);
			return -1;
		}
		*next = '\0';
		p = next + 1;
	}
	/* The last field of a password-less operation must not hold a ':'. */
	if (want == 3 && strchr(fields_r[2], ':') != NULL) {
		free(c);
		return -1;
	}
	*copy_r = c;
	return n;
}

/* ---- the external method ------------------------------------------------------------------ */

static int external_init(struct auth *a, void **state_r, char **error_r)
{
	const struct auth_external_config *c = &a->cfg->external;
	if (c->program == NULL) {
		*error_r = xstrdup("auth.external.program is not set");
		return -1;
	}
	struct procpool_config pc = {
		.method = "external",
		.program = c->program,
		.args = &c->args,
		.instances = c->instances,
		.timeout = c->timeout,
		.queue_max = c->queue_max,
		.cache_ttl = c->cache_ttl,
		.restart_max = c->restart_max,
		.max_requests = 0,
	};
	struct procpool *pool;
	if (procpool_new(a, &pc, &pool, error_r) < 0)
		return -1;
	*state_r = pool;
	return 0;
}

static void external_deinit(void *state)
{
	struct procpool *pool = state;
	procpool_free(&pool);
}

static bool external_can_plain(void *state)
{
	return true;
}

static struct auth_breq *external_op(void *state, struct auth_req *req)
{
	return procpool_submit(state, req);
}

static void external_status(void *state, struct buf *out)
{
	procpool_status(state, out);
}

const struct auth_vfuncs auth_external_vfuncs = {
	.name = "external",
	.init = external_init,
	.deinit = external_deinit,
	.can_scram = NULL,
	.can_plain = external_can_plain,
	.scram_cacheable = true,
	.check_password = external_op,
	.get_scram = NULL,
	.user_exists = external_op,
	.create_user = external_op,
	.set_password = external_op,
	.remove_user = external_op,
	.cancel = procpool_cancel,
	.status = external_status,
};

char *auth_external_probe(const struct auth_config *cfg)
{
	if (!strlist_contains(&cfg->methods, "external") || cfg->external.program == NULL)
		return NULL;
	char *why = procpool_probe_program(cfg->external.program);
	if (why == NULL)
		return NULL;
	char *msg = xasprintf("auth method external: %s", why);
	free(why);
	return msg;
}
