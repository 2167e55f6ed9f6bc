/*
 * parley-pam-helper: runs PAM for parleyd's "pam" auth method, in its own
 * process, one request at a time.  parleyd starts it (and restarts it after
 * auth.pam.max_requests answers, a crash or a timeout) with two arguments:
 *   parley-pam-helper SERVICE account|no-account
 * and talks the port protocol of the external method on stdin/stdout:
 *   request: 2-byte big-endian length, then "auth:User:Server:Password" or
 *            "isuser:User:Server"
 *   reply:   2-byte length 2, then 2-byte result 1 (yes) or 0 (no)
 * Any other operation is answered 0.  Diagnostics go to stderr, which
 * parleyd logs line by line.  The password is everything after the third
 * ':' and is wiped after use.
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

/* 1 yes, 0 no. */
static int pam_check(const char *user, const char *password)
{
	struct conv_data cd = { user, password != NULL ? password : "" };
	struct pam_conv pc = { conv, &cd };
	pam_handle_t *h = NULL;
	int rc = pam_start(service, user, &pc, &h);
	if (rc != PAM_SUCCESS) {
		fprintf(stderr, "pam_start(%s): %s\n", service, pam_strerror(h, rc));
		return 0;
	}
	if (password != NULL) {
		rc = pam_authenticate(h, PAM_SILENT | PAM_DISALLOW_NULL_AUTHTOK);
		if (rc != PAM_SUCCESS && rc != PAM_AUTH_ERR && rc != PAM_USER_UNKNOWN)
			fprintf(stderr, "pam_authenticate for %s: %s\n", user, pam_strerror(h, rc));
	}
	if ((password == NULL || rc == PAM_SUCCESS) && account_check) {
		rc = pam_acct_mgmt(h, PAM_SILENT);
		if (rc != PAM_SUCCESS && rc != PAM_USER_UNKNOWN && rc != PAM_AUTH_ERR &&
		    rc != PAM_PERM_DENIED)
			fprintf(stderr, "pam_acct_mgmt for %s: %s\n", user, pam_strerror(h, rc));
	}
	pam_end(h, rc);
	return rc == PAM_SUCCESS;
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

static int reply(int yes)
{
	unsigned char r[4] = { 0, 2, 0, (unsigned char)(yes ? 1 : 0) };
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
		int yes = 0;
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
			yes = 0;
		} else if (strcmp(f[0], "auth") == 0 && nf == 4) {
			yes = pam_check(f[1], f[3]);
		} else if (strcmp(f[0], "isuser") == 0 && nf == 3 && account_check) {
			yes = pam_check(f[1], NULL);
		}
		explicit_bzero(buf, len);
		if (reply(yes) < 0)
			return 1;
	}
}
