/*
 * Room logs of a multi-user chat service: one XHTML page per room and day
 * (DIR/<room>/YYYY/MM/DD.html) and an index of the days of each room
 * (DIR/<room>/index.html), written as events happen.
 *
 * Every function here runs on the loop thread.  The files are written by a
 * thread of the log's own (a one-thread worker group), so recording an event
 * never waits for the disk; each page is well-formed after every event.
 */
#ifndef PARLEY_MUC_LOG_H
#define PARLEY_MUC_LOG_H

#include <ev.h>

struct muc_log;

struct muc_log_settings {
	const char *dir; /* folder of this service's logs (created if missing) */
	const char *
	        css_url; /* NULL or "": a built-in stylesheet embedded in each page; else <link rel=stylesheet href=...> */
	const char *
	        timezone; /* NULL/"UTC": UTC; else a TZ name like "Europe/Berlin" used for timestamps and day boundaries */
};

/* Create the log of one service.  Returns NULL with a malloc'd *error_r when
 * dir cannot be created or written, or the time zone is unknown.  loop is the
 * server's ev loop (file writes happen off the loop).  The settings are
 * copied. */
struct muc_log *muc_log_new(struct ev_loop *loop, const struct muc_log_settings *s, char **error_r);
/* Write everything that is queued, close the files and free; *l becomes
 * NULL.  Waits for the writer thread. */
void muc_log_free(struct muc_log **l);

enum muc_log_kind {
	MUC_LOG_MESSAGE,
	MUC_LOG_JOIN,
	MUC_LOG_LEAVE,
	MUC_LOG_NICK,
	MUC_LOG_SUBJECT,
	MUC_LOG_KICK,
	MUC_LOG_BAN,
	MUC_LOG_ROOM_DESTROYED
};

/* Record one event of room (room_jid "room@conference.example.com", title
 * the room's name or NULL) at time when (seconds since the epoch).
 * nick: the occupant (NULL for ROOM_DESTROYED); text: message body
 * (MESSAGE; "/me " makes it an action), new nick (NICK), subject (SUBJECT),
 * reason or NULL (LEAVE/KICK/BAN/ROOM_DESTROYED), unused for JOIN.
 * Everything is copied; never blocks.  When the writer is too far behind the
 * event is dropped (with a rate-limited warning).  l NULL (logging off):
 * nothing happens. */
void muc_log_event(struct muc_log *l, const char *room_jid, const char *title, double when,
                   enum muc_log_kind kind, const char *nick, const char *text);

#endif
