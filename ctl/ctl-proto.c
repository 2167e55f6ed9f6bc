/*
 * Encoding of control-socket requests and responses (see ctl-proto.h).
 * Pure functions; any thread.
 */
#include "ctl-proto.h"

#include <string.h>

void ctl_encode_request(struct buf *out, int argc, char *const *argv)
{
	for (int i = 0; i < argc; i++) {
		if (i > 0)
			buf_append(out, "\t", 1);
		for (const char *p = argv[i]; *p != '\0'; p++) {
			switch (*p) {
			case '\\': buf_append(out, "\\\\", 2); break;
			case '\t': buf_append(out, "\\t", 2); break;
			case '\n': buf_append(out, "\\n", 2); break;
			default: buf_append(out, p, 1); break;
			}
		}
	}
	buf_append(out, "\n", 1);
}

int ctl_decode_request(const char *line, size_t len, char ***argv_r, int *argc_r)
{
	char **argv = NULL;
	int argc = 0;
	struct buf cur = { 0 };
	for (size_t i = 0; i <= len; i++) {
		if (i == len || line[i] == '\t') {
			argv = xrealloc(argv, (size_t)(argc + 2) * sizeof(*argv));
			argv[argc++] = cur.data != NULL ? buf_steal(&cur) : xstrdup("");
			argv[argc] = NULL;
			continue;
		}
		if (line[i] == '\\') {
			if (i + 1 >= len)
				goto bad;
			char c = line[++i];
			if (c == '\\')
				buf_append(&cur, "\\", 1);
			else if (c == 't')
				buf_append(&cur, "\t", 1);
			else if (c == 'n')
				buf_append(&cur, "\n", 1);
			else
				goto bad;
			continue;
		}
		buf_append(&cur, &line[i], 1);
	}
	*argv_r = argv;
	*argc_r = argc;
	return 0;
bad:
	buf_free(&cur);
	ctl_free_argv(argv, argc);
	return -1;
}

void ctl_free_argv(char **argv, int argc)
{
	for (int i = 0; i < argc; i++)
		free(argv[i]);
	free(argv);
}

void ctl_encode_response(struct buf *out, int code, const char *message, const char *body)
{
	if (code == CTL_OK)
		buf_append_str(out, "OK\n");
	else
		buf_printf(out, "ERR %d %s\n", code, message != NULL ? message : "failed");
	if (body != NULL && *body != '\0') {
		const char *p = body;
		while (*p != '\0') {
			const char *nl = strchr(p, '\n');
			size_t n = nl != NULL ? (size_t)(nl - p) : strlen(p);
			if (*p == '.')
				buf_append(out, ".", 1);
			buf_append(out, p, n);
			buf_append(out, "\n", 1);
			p += n;
			if (*p == '\n')
				p++;
		}
	}
	buf_append_str(out, ".\n");
}
