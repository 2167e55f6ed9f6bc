/*
 * Helpers shared by the network SQL drivers (sql.h): the "keyword=value"
 * connection string that every network driver accepts in storage.dsn, and
 * the password file (storage.password_file), so that operators learn one
 * form and keep the password out of the configuration file.
 *
 * Threads: any; nothing here keeps state.  Messages never quote a value of
 * the connection string: it may hold a password.
 */
#include "storage/sql.h"

#include <ctype.h>
#include <errno.h>

static void add_item(struct sql_conninfo *ci, struct buf *key, struct buf *val)
{
	ci->items = xrealloc(ci->items, (ci->count + 1) * sizeof(*ci->items));
	for (size_t i = 0; i < key->len; i++)
		key->data[i] = (char)tolower((unsigned char)key->data[i]);
	ci->items[ci->count].key = buf_steal(key);
	if (val->data == NULL)
		buf_append(val, "", 0);
	ci->items[ci->count].value = buf_steal(val);
	ci->count++;
}

int sql_conninfo_parse(const char *dsn, struct sql_conninfo *ci_r, char **error_r)
{
	struct sql_conninfo ci = { 0 };
	struct buf key = { 0 }, val = { 0 };
	const char *p = dsn != NULL ? dsn : "";
	for (;;) {
		while (isspace((unsigned char)*p))
			p++;
		if (*p == '\0')
			break;
		const char *start = p;
		while (*p != '\0' && *p != '=' && !isspace((unsigned char)*p))
			p++;
		if (p == start) {
			*error_r = xasprintf("connection string: a '=' with no keyword before it "
			                     "(at offset %zu)",
			                     (size_t)(start - dsn));
			goto fail;
		}
		buf_append(&key, start, (size_t)(p - start));
		while (isspace((unsigned char)*p))
			p++;
		if (*p != '=') {
			*error_r = xasprintf("connection string: keyword '%s' has no '=value'", key.data);
			goto fail;
		}
		p++;
		while (isspace((unsigned char)*p))
			p++;
		if (*p == '\'') {
			p++;
			for (;;) {
				if (*p == '\0') {
					*error_r = xasprintf("connection string: the quoted value of '%s' is "
					                     "not closed",
					                     key.data);
					goto fail;
				}
				if (*p == '\\' && p[1] != '\0') {
					buf_append(&val, p + 1, 1);
					p += 2;
				} else if (*p == '\'' && p[1] == '\'') {
					buf_append(&val, "'", 1);
					p += 2;
				} else if (*p == '\'') {
					p++;
					break;
				} else {
					buf_append(&val, p++, 1);
				}
			}
		} else {
			while (*p != '\0' && !isspace((unsigned char)*p)) {
				if (*p == '\\' && p[1] != '\0')
					p++;
				buf_append(&val, p++, 1);
			}
		}
		add_item(&ci, &key, &val);
	}
	*ci_r = ci;
	return 0;
fail:
	buf_free(&key);
	if (val.data != NULL)
		explicit_bzero(val.data, val.len);
	buf_free(&val);
	sql_conninfo_free(&ci);
	return -1;
}

const char *sql_conninfo_get(const struct sql_conninfo *ci, const char *key)
{
	const char *v = NULL;
	for (size_t i = 0; i < ci->count; i++)
		if (strcmp(ci->items[i].key, key) == 0)
			v = ci->items[i].value;
	return v;
}

void sql_conninfo_free(struct sql_conninfo *ci)
{
	for (size_t i = 0; i < ci->count; i++) {
		explicit_bzero(ci->items[i].value, strlen(ci->items[i].value));
		free(ci->items[i].key);
		free(ci->items[i].value);
	}
	free(ci->items);
	ci->items = NULL;
	ci->count = 0;
}

char *sql_message_one_line(char *msg)
{
	char *out = msg;
	bool blank = true; /* drops leading blanks */
	for (const char *p = msg; *p != '\0'; p++) {
		unsigned char ch = (unsigned char)*p;
		if (ch == ' ' || ch < 0x20 || ch == 0x7f) {
			if (!blank)
				*out++ = ' ';
			blank = true;
			continue;
		}
		*out++ = (char)ch;
		blank = false;
	}
	if (out > msg && out[-1] == ' ')
		out--;
	*out = '\0';
	return msg;
}

char *sql_read_password_file(const char *path, char **error_r)
{
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		*error_r = xasprintf("cannot read the password file %s: %s", path, strerror(errno));
		return NULL;
	}
	char line[1024];
	char *got = fgets(line, sizeof(line), f);
	bool err = ferror(f);
	fclose(f);
	if (err) {
		explicit_bzero(line, sizeof(line));
		*error_r = xasprintf("cannot read the password file %s", path);
		return NULL;
	}
	if (got == NULL)
		line[0] = '\0';
	size_t n = strcspn(line, "\r\n");
	char *pw = xstrndup(line, n);
	explicit_bzero(line, sizeof(line));
	return pw;
}
