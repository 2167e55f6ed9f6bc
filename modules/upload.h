/*
 * What mod_upload offers parleyctl (ctl/cmd-upload.c): the files an
 * account has stored, and their removal.  Loop thread.
 */
#ifndef PARLEY_MODULES_UPLOAD_H
#define PARLEY_MODULES_UPLOAD_H

#include <stddef.h>

struct host;

struct upload_file_info {
	const char *id;
	const char *filename;
	const char *content_type;
	const char *url; /* the GET URL */
	size_t size;
	double stored_at; /* unix time */
};

/* Call fn for each file user (a prepared local part) has stored on h.
 * -1 when the upload module does not run on h. */
int upload_list(struct host *h, const char *user, void (*fn)(const struct upload_file_info *f, void *ctx),
                void *ctx);

/* Delete every file user has stored on h: they stop being served and
 * leave the quota at once; done(ctx, count, err) runs later from the loop
 * once a worker deleted them (err: an errno of the first failure, or 0),
 * and *handle_r can cancel that call until then.  -1 when the module does
 * not run on h, -2 when its worker queue is full (try again); done is then
 * not called. */
struct upload_purge;
typedef void upload_purge_done_fn(void *ctx, unsigned count, int err);
int upload_purge(struct host *h, const char *user, upload_purge_done_fn *done, void *ctx,
                 struct upload_purge **handle_r);
/* done will not be called (the purge itself goes on). */
void upload_purge_cancel(struct upload_purge *p);

#endif
