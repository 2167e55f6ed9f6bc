/*
 * Offline data tools of parleyctl: XEP-0227 (portable import/export format
 * for XMPP server data) export and import, and moving a virtual host's
 * users to another domain.  They work through the storage interface of
 * each configured host, with parleyd stopped, inside parleyctl: each runs
 * the loop until its storage calls are done (nothing else is on that
 * loop).  Loop thread.
 */
#ifndef PARLEY_CTL_XEP0227_H
#define PARLEY_CTL_XEP0227_H

#include <ev.h>
#include "server/config.h"
#include "lib/util.h"
#include "lib/xml.h"
#include "storage/storage.h"

/* Whom an export is for. */
enum xep0227_target {
	XEP0227_FOR_PARLEY,   /* every SCRAM hash kept, values in base64 */
	XEP0227_FOR_EJABBERD, /* ejabberd 23.01: SCRAM-SHA-1 (when kept), values base64 twice */
	XEP0227_FOR_PROSODY,  /* prosody-migrator: SCRAM-SHA-1, one USER@HOST.xml per user */
};

/* Export the users of host (NULL: of every configured host) to path: one
 * file holding every host, or, when path is an existing directory, one
 * file per host named HOST.xml in it; for Prosody, path must be an
 * existing directory and gets one file per user named USER@HOST.xml.
 * Each user has its account, roster, pending subscription requests
 * (<presence type='subscribe'/>), vCard, offline messages, private XML,
 * privacy lists, block list and PEP nodes with their items.  Each file is
 * written to a temporary name and renamed when complete.  0 with a
 * summary in report, or -1 with a malloc'd *error_r (nothing is left at
 * path then). */
int xep0227_export(struct ev_loop *loop, const struct parley_config *cfg, const char *host, const char *path,
                   enum xep0227_target target, struct buf *report, char **error_r);

/* Import path: a XEP-0227 file, whose root is <server-data/> (its
 * <xi:include/>s followed, one level, each naming a file in the folder of
 * the including file) or <host/>; or a directory: every *.xml file in it,
 * in name order, each file read once.  Every <host/> of a file must be a
 * configured host, else nothing of that file is stored.  A user whose
 * account already exists is skipped (reported), nothing of it is changed.
 * Failures (a file that does not parse or names an unknown host, a user
 * that is not usable or appears twice) are reported and the rest is
 * imported; a STORAGE_TEMPFAIL stops the import.  Every outcome is a line
 * in report, the last one counting them.  0 when nothing failed, or -1
 * with a malloc'd *error_r listing the first failures (also when no
 * <user/> was found at all). */
int xep0227_import(struct ev_loop *loop, const struct parley_config *cfg, const char *path,
                   struct buf *report, char **error_r);

/* The import run of xep0227_import for other sources (another server's
 * database, read by ctl-prosody-sql.c): each user is given as the <user/>
 * element a XEP-0227 file would hold, and gets the same checks, report
 * lines, summary and result. */
struct xep0227_run;
struct storage;
struct xml_node;

enum xep0227_user_result {
	XEP0227_USER_CREATED,
	XEP0227_USER_SKIPPED, /* its account exists: nothing of it is changed */
	XEP0227_USER_FAILED,  /* reported as a failure */
};

/* A run reporting into report (which it does not own). */
struct xep0227_run *xep0227_run_new(struct ev_loop *loop, const struct parley_config *cfg,
                                    struct buf *report);
/* Import <user/> u (in urn:xmpp:pie:0) of host hc into st, which the
 * caller opened for hc; where names the source in failure lines. */
enum xep0227_user_result xep0227_run_user(struct xep0227_run *run, struct storage *st,
                                          const struct host_config *hc, const char *where,
                                          const struct xml_node *u);
/* A failure of the source (msg malloc'd, taken over); stop: nothing more
 * is to be tried. */
void xep0227_run_fail(struct xep0227_run *run, char *msg, bool stop);
/* A store failed or xep0227_run_fail said stop: nothing more is tried. */
bool xep0227_run_stopped(const struct xep0227_run *run);
/* The summary line; 0 when nothing failed, or -1 with a malloc'd *error_r
 * listing the first failures.  Frees the run and NULLs *runp. */
int xep0227_run_finish(struct xep0227_run **runp, char **error_r);
/* Store the <user/> element u (XEP-0227, as the import reads it) as user
 * at host hc, whose account does not exist yet: 0; -1 with a malloc'd
 * *error_r ("JID: reason") when the user is not usable or a storage call
 * fails (nothing of it is left); -2 likewise when the store fails for a
 * reason that will not go away (STORAGE_TEMPFAIL).  Notes go to report. */
int xep0227_import_user(struct ev_loop *loop, struct storage *st, const struct host_config *hc,
                        const char *user, const struct xml_node *u, struct buf *report, char **error_r);
/* Whether user exists at host; *res_r: STORAGE_OK, STORAGE_NOT_FOUND or
 * the failure. */
bool xep0227_account_exists(struct ev_loop *loop, struct storage *st, const char *host, const char *user,
                            enum storage_result *res_r);

/* Wipe the secrets a <user/> element holds (password, SCRAM values),
 * before it is freed. */
void xep0227_wipe_secrets(struct xml_node *u);

/* Move every user of host old_domain to new_domain (both configured),
 * with all its data, and rewrite JIDs at old_domain to new_domain in the
 * rosters, privacy lists and block lists of every user of every host.  A
 * user that already exists at new_domain is not moved (reported).  0 or
 * -1 with a malloc'd *error_r. */
int xep0227_rename_domain(struct ev_loop *loop, const struct parley_config *cfg, const char *old_domain,
                          const char *new_domain, struct buf *report, char **error_r);

#endif
