/*
 * parley-pam-helper: runs PAM for parleyd's "pam" auth method, in its own
 * process, one request at a time.  parleyd starts it (and restarts it after
 * auth.pam.max_requests answers, a crash or a timeout) with two arguments:
 *   parley-pam-helper SERVICE account|no-account
 * and talks the port protocol of the external method on stdin/stdout:
 *   request: 2-byte big-endian length, then "auth:User:Server:Password" or
 *            "isuser:User:Server"
 *   reply:   2-byte length 2, then 2-byte result 1 (yes), 0 (no) or
 *            2 (temporary failure: PAM could not find out)
 * Any other operation is answered 0.  Diagnostics go to stderr, which
 * parleyd logs line by line.  The password is everything after the third
 * ':' and is wiped after use.
 *
 * Invariant: 0 means PAM refused the password, the user or the account
 * (pam_refused); any other PAM error (PAM_AUTHINFO_UNAVAIL from a module
 * whose server is down, PAM_SYSTEM_ERR, PAM_SERVICE_ERR, PAM_BUF_ERR,
 * PAM_CONV_ERR, PAM_ABORT...) answers 2, which parleyd reports as a
 * temporary failure, never as "wrong password" or "no such user".  After
 * PAM_ABORT the helper answers, then leaves (PAM asks the application to
 * stop), and parleyd starts another.
 *
 * Single-threaded and blocking by design: that is why it is a process of
 * its own.  It is built without sanitizers and links only libpam, so test
 * tools that preload into it (pam_wrapper) do not meet parleyd's runtime.
 */
#include <errno.h>
#include <security/pam_appl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *service;
static bool account_check;

struct conv_data {
	const char *user;
	const char *password;
};

static int conv(int n, const struct pam_message **msg, struct pam_response **resp, void *appdata)
{
	struct conv_data *cd = appdata;
	if (n <= 0 || n > PAM_MAX_NUM_MSG)
		return PAM_CONV_ERR;
	struct pam_response *r = calloc((size_t)n, sizeof(*r));
	if (r == NULL)
		return PAM_BUF_ERR;
	for (int i = 0; i < n; i++) {
		switch (msg[i]->msg_style) {
		case PAM_PROMPT_ECHO_OFF: r[i].resp = strdup(cd->password); break;
		case PAM_PROMPT_ECHO_ON: r[i].resp = strdup(cd->user); break;
		case PAM_ERROR_MSG:
			fprintf(stderr, "PAM error message: %s\n", msg[i]->msg != NULL ? msg[i]->msg : "");
			break;
		default: break;
		}
		if ((msg[i]->msg_style == PAM_PROMPT_ECHO_OFF || msg[i]->msg_style == PAM_PROMPT_ECHO_ON) &&
		    r[i].resp == NULL) {
			for (int k = 0; k < i; k++)
				free(r[k].resp);
			free(r);
			return PAM_BUF_ERR;
		}
	}
	*resp = r;
	return PAM_SUCCESS;
}

/* The answers of the protocol. */
enum answer {
	ANSWER_NO = 0,
	ANSWER_YES = 1,
	ANSWER_TEMPFAIL = 2,
};

/* PAM_ABORT was seen: leave after answering. */
static bool must_leave;

/* Whether rc refuses the password, the user or the account, as opposed to
 * PAM failing to find out. */
static bool pam_refused(int rc)
{
	switch (rc) {
	case PAM_AUTH_ERR:
	case PAM_USER_UNKNOWN:
	case PAM_MAXTRIES:
	case PAM_CRED_INSUFFICIENT:
	case PAM_PERM_DENIED:
	case PAM_ACCT_EXPIRED:
	case PAM_NEW_AUTHTOK_REQD:
	case PAM_AUTHTOK_EXPIRED: return true;
	default: return false;
	}
}

static enum answer pam_answer(pam_handle_t *h, const char *what, const char *user, int rc)
{
	if (rc == PAM_SUCCESS)
		return ANSWER_YES;
	if (pam_refused(rc))
		return ANSWER_NO;
	fprintf(stderr, "%s for %s: %s (temporary failure)\n", what, user, pam_strerror(h, rc));
	if (rc == PAM_ABORT)
		must_leave = true;
	return ANSWER_TEMPFAIL;
}

static enum answer pam_check(const char *user, const char *password)
{
	struct conv_data cd = { user, password != NULL ? password : "" };
	struct pam_conv pc = { conv, &cd };
	pam_handle_t *h = NULL;
	int rc = pam_start(service, user, &pc, &h);
	if (rc != PAM_SUCCESS) {
		fprintf(stderr, "pam_start(%s): %s (temporary failure)\n", service, pam_strerror(h, rc));
		if (rc == PAM_ABORT)
			must_leave = true;
		return ANSWER_TEMPFAIL;
	}
	enum answer ans = ANSWER_YES;
	if (password != NULL) {
		rc = pam_authenticate(h, PAM_SILENT | PAM_DISALLOW_NULL_AUTHTOK);
		ans = pam_answer(h, "pam_authenticate", user, rc);
	}
	if (ans == ANSWER_YES && account_check) {
		rc = pam_acct_mgmt(h, PAM_SILENT);
		ans = pam_answer(h, "pam_acct_mgmt", user, rc);
	}
	pam_end(h, rc);
	return ans;
}

static int read_full(void *buf, size_t len)
{
	char *p = buf;
	while (len > 0) {
		ssize_t n = read(0, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int reply(enum answer ans)
{
	unsigned char r[4] = { 0, 2, 0, (unsigned char)ans };
	return write(1, r, 4) == 4 ? 0 : -1;
}

/* Say plainly when PAM is unlikely to work from here. */
static void self_test(void)
{
	const char *dir = getenv("PAM_WRAPPER_SERVICE_DIR");
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir != NULL ? dir : "/etc/pam.d", service);
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		fprintf(stderr,
		        "self-test: %s: %s: PAM will use the 'other' service, which usually "
		        "refuses everyone\n",
		        path, strerror(errno));
		return;
	}
	char line[1024];
	bool unix_like = false;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strstr(line, "pam_unix") != NULL || strstr(line, "common-auth") != NULL)
			unix_like = true;
	fclose(f);
	if (unix_like && geteuid() != 0 && access("/etc/shadow", R_OK) != 0)
		fprintf(stderr,
		        "self-test: service '%s' uses pam_unix but uid %ld cannot read /etc/shadow: "
		        "pam_unix will only accept the password of the user parleyd runs as (see "
		        "the admin guide: add that user to group shadow, or use another PAM "
		        "module)\n",
		        service, (long)geteuid());
}

int main(int argc, char **argv)
{
	if (argc != 3 || (strcmp(argv[2], "account") != 0 && strcmp(argv[2], "no-account") != 0)) {
		fprintf(stderr, "usage: parley-pam-helper SERVICE account|no-account (run by parleyd)\n");
		return 2;
	}
	service = argv[1];
	account_check = strcmp(argv[2], "account") == 0;
	self_test();
	static char buf[65536];
	for (;;) {
		unsigned char hdr[2];
		if (read_full(hdr, 2) < 0)
			return 0; /* parleyd closed our input: leave */
		size_t len = ((size_t)hdr[0] << 8) | hdr[1];
		if (read_full(buf, len) < 0)
			return 1;
		buf[len] = '\0';
		bool has_nul = memchr(buf, '\0', len) != NULL;
		enum answer ans = ANSWER_NO;
		char *f[4] = { NULL, NULL, NULL, NULL };
		char *p = buf;
		int nf = 0;
		while (nf < 3) {
			f[nf++] = p;
			char *c = strchr(p, ':');
			if (c == NULL)
				break;
			*c = '\0';
			p = c + 1;
			if (nf == 3)
				f[nf++] = p; /* the password: the rest, ':' and all */
		}
		if (has_nul || nf < 3) {
			/* a NUL inside, or too few fields */
			ans = ANSWER_NO;
		} else if (strcmp(f[0], "auth") == 0 && nf == 4) {
			ans = pam_check(f[1], f[3]);
		} else if (strcmp(f[0], "isuser") == 0 && nf == 3 && account_check) {
			ans = pam_check(f[1], NULL);
		}
		explicit_bzero(buf, len);
		if (reply(ans) < 0)
			return 1;
		if (must_leave) {
			fprintf(stderr, "PAM_ABORT: leaving, as PAM asks\n");
			return 1;
		}
	}
}
