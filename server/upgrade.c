/*
 * SASL upgrade tasks (XEP-0480) for SCRAM.  Loop thread; the storage calls
 * answer on it too.
 *
 * Offered: UPGR-SCRAM-SHA-256 and UPGR-SCRAM-SHA-512 (the hashes an account
 * imported from ejabberd or Prosody lacks; an upgrade to SHA-1 would be
 * none).  Of what a client asks for, only the hashes the account has no
 * keys for become tasks, so an account that has them all goes straight to
 * <success/>.  The salt is fresh for each task (16 random bytes) and the
 * iteration count the host's auth.scram_iterations; the SaltedPassword the
 * client sends is wiped once the keys are derived from it.
 */
#include "server/upgrade.h"
#include "lib/log.h"
#include "lib/scram.h"
#include "lib/util.h"

#include <stdlib.h>
#include <string.h>

#define UPGRADE_SALT_LEN 16

static const struct {
	const char *name;
	enum scram_hash hash;
} tasks[] = {
	{ "UPGR-SCRAM-SHA-256", SCRAM_SHA256 },
	{ "UPGR-SCRAM-SHA-512", SCRAM_SHA512 },
};

struct upgrade {
	struct storage *st;
	char *host, *user;
	unsigned requested; /* bits (1 << enum scram_hash) */
	unsigned needed;    /* requested, and the account has no keys */
	unsigned iterations;
	size_t cur; /* index into tasks of the current task */
	bool salt_sent;
	unsigned char salt[UPGRADE_SALT_LEN];
	struct storage_req *req;
	upgrade_cb *cb;
	void *ctx;
};

void upgrade_add_features(struct xml_node *authentication)
{
	for (size_t i = 0; i < ARRAY_SIZE(tasks); i++)
		xml_add_text(xml_add_child(authentication, "upgrade", NS_SASL_UPGRADE), tasks[i].name,
		             strlen(tasks[i].name));
}

unsigned upgrade_requested(const struct xml_node *authenticate)
{
	unsigned bits = 0;
	for (const struct xml_node *u = xml_child(authenticate, "upgrade", NS_SASL_UPGRADE); u != NULL;
	     u = xml_next(u, "upgrade", NS_SASL_UPGRADE)) {
		const char *name = xml_text(u);
		for (size_t i = 0; i < ARRAY_SIZE(tasks); i++)
			if (strcmp(name, tasks[i].name) == 0)
				bits |= 1u << tasks[i].hash;
	}
	return bits;
}

struct upgrade *upgrade_new(struct storage *st, const char *host, const char *user, unsigned requested,
                            unsigned iterations)
{
	struct upgrade *u = xcalloc(1, sizeof(*u));
	u->st = st;
	u->host = xstrdup(host);
	u->user = xstrdup(user);
	u->requested = requested;
	u->iterations = iterations;
	return u;
}

void upgrade_free(struct upgrade **up)
{
	struct upgrade *u = *up;
	if (u == NULL)
		return;
	if (u->req != NULL)
		storage_cancel(u->req);
	explicit_bzero(u->salt, sizeof(u->salt));
	free(u->host);
	free(u->user);
	xfree(up);
}

/* Move cur to the first task still needed (past the end when none). */
static void advance(struct upgrade *u)
{
	u->cur = 0;
	while (u->cur < ARRAY_SIZE(tasks) && (u->needed & (1u << tasks[u->cur].hash)) == 0)
		u->cur++;
	u->salt_sent = false;
}

static void account_cb(enum storage_result res, const struct storage_account *acc, void *ctx)
{
	struct upgrade *u = ctx;
	u->req = NULL;
	u->needed = 0;
	if (res == STORAGE_OK) {
		if (!acc->has_sha256)
			u->needed |= 1u << SCRAM_SHA256;
		if (!acc->has_sha512)
			u->needed |= 1u << SCRAM_SHA512;
		u->needed &= u->requested;
	} else {
		log_warning("host %s: %s: no SASL upgrade: the account could not be read (%s)", u->host,
		            u->user, storage_result_str(res));
	}
	advance(u);
	u->cb(u->ctx);
}

void upgrade_start(struct upgrade *u, upgrade_cb *cb, void *ctx)
{
	u->cb = cb;
	u->ctx = ctx;
	u->req = storage_account_get(u->st, u->host, u->user, account_cb, u);
}

const char *upgrade_task(const struct upgrade *u)
{
	return u->cur < ARRAY_SIZE(tasks) ? tasks[u->cur].name : NULL;
}

int upgrade_next(struct upgrade *u, const char *task, struct xml_node *task_data)
{
	if (u->req != NULL || task == NULL || upgrade_task(u) == NULL || strcmp(task, upgrade_task(u)) != 0)
		return -1;
	random_bytes(u->salt, sizeof(u->salt));
	u->salt_sent = true;
	struct xml_node *salt = xml_add_child(task_data, "salt", NS_SCRAM_UPGRADE);
	char it[16];
	snprintf(it, sizeof(it), "%u", u->iterations);
	xml_set_attr(salt, "iterations", it);
	char *b64 = base64_encode(u->salt, sizeof(u->salt));
	xml_add_text(salt, b64, strlen(b64));
	free(b64);
	return 0;
}

static void added_cb(enum storage_result res, void *ctx)
{
	struct upgrade *u = ctx;
	u->req = NULL;
	enum scram_hash h = tasks[u->cur].hash;
	if (res == STORAGE_OK)
		log_info("host %s: %s: SCRAM-%s credentials added by the client (SASL upgrade task)", u->host,
		         u->user, scram_hash_name(h));
	else
		log_warning("host %s: %s: the SCRAM-%s credentials of a SASL upgrade task could not be "
		            "stored (%s)",
		            u->host, u->user, scram_hash_name(h), storage_result_str(res));
	u->needed &= ~(1u << h);
	advance(u);
	u->cb(u->ctx);
}

/* The text of el without the white space around it (malloc'd). */
static char *trimmed_text(const struct xml_node *el)
{
	const char *t = xml_text(el);
	while (*t == ' ' || *t == '\t' || *t == '\n' || *t == '\r')
		t++;
	size_t n = strlen(t);
	while (n > 0 && (t[n - 1] == ' ' || t[n - 1] == '\t' || t[n - 1] == '\n' || t[n - 1] == '\r'))
		n--;
	return xstrndup(t, n);
}

int upgrade_data(struct upgrade *u, const struct xml_node *task_data, upgrade_cb *cb, void *ctx)
{
	if (u->req != NULL || !u->salt_sent || upgrade_task(u) == NULL)
		return -1;
	const struct xml_node *hash = xml_child(task_data, "hash", NS_SCRAM_UPGRADE);
	if (hash == NULL)
		return -1;
	enum scram_hash h = tasks[u->cur].hash;
	char *text = trimmed_text(hash);
	unsigned char *salted = NULL;
	size_t len = 0;
	int rc = base64_decode(text, strlen(text), &salted, &len);
	explicit_bzero(text, strlen(text));
	free(text);
	if (rc < 0 || len != scram_hash_len(h)) {
		if (salted != NULL) {
			explicit_bzero(salted, len);
			free(salted);
		}
		return -1;
	}
	struct storage_account acc = { 0 };
	struct scram_credentials *c = h == SCRAM_SHA256 ? &acc.sha256 : &acc.sha512;
	scram_from_salted(h, salted, u->salt, sizeof(u->salt), u->iterations, c);
	explicit_bzero(salted, len);
	free(salted);
	acc.has_sha256 = h == SCRAM_SHA256;
	acc.has_sha512 = h == SCRAM_SHA512;
	u->salt_sent = false;
	u->cb = cb;
	u->ctx = ctx;
	u->req = storage_account_add_credentials(u->st, u->host, u->user, &acc, added_cb, u);
	storage_account_clear(&acc);
	return 0;
}
