/*
 * Logging with levels, to stderr or a file.  Safe to call from any thread
 * (each line is written with one write(2)).  Never log secrets.
 */
#ifndef PARLEY_LOG_H
#define PARLEY_LOG_H

#include "util.h"

enum log_level { LOG_LEVEL_DEBUG, LOG_LEVEL_INFO, LOG_LEVEL_NOTICE, LOG_LEVEL_WARNING, LOG_LEVEL_ERROR };

/* Parse "debug", "info", "notice", "warning", "error"; -1 if unknown. */
int log_level_parse(const char *name);
const char *log_level_name(enum log_level level);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Log to this file (appending) instead of stderr; NULL goes back to stderr.
 * Returns -1 and sets *error_r when the file cannot be opened. */
int log_open_file(const char *path, const char **error_r);
/* Reopen the current log file (for logrotate on SIGHUP). */
void log_reopen(void);

void log_msg(enum log_level level, const char *fmt, ...) ATTR_PRINTF(2, 3);
void log_vmsg(enum log_level level, const char *fmt, va_list ap);

#define log_debug(...)                                         \
	do {                                                   \
		if (log_get_level() <= LOG_LEVEL_DEBUG)        \
			log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__); \
	} while (0)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_LEVEL_NOTICE, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_LEVEL_WARNING, __VA_ARGS__)
#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)

/* A rate limit for one kind of line (a failure that can come once per
 * message): the first line is written, the next ones within `every`
 * seconds of it are left out and counted, and the count is said later
 * (on the next line written, or in a summary line of the caller's once
 * the lines stop).  Not locked: its user serialises the calls (its own
 * lock, or the loop thread).  Zero it, then set every. */
struct log_limit {
	double every;      /* seconds between lines */
	double last;       /* when a line was last written (0: never) */
	unsigned left_out; /* lines left out since */
};

/* A line is due at now (seconds, on any clock that does not go back):
 * true when it should be written, with *left_out_r how many were left out
 * before it (to be said on it); false when it is left out (and counted). */
bool log_limit_pass(struct log_limit *l, double now, unsigned *left_out_r);
/* The lines left out since the last line written, taken (and counted
 * from 0 again) for a summary line; 0 when there are none. */
unsigned log_limit_take(struct log_limit *l, double now);
/* " (and N more since the last line)" for left_out N > 0, else "", in buf
 * (LOG_LIMIT_MORE_SIZE bytes); returns buf, for the written line. */
#define LOG_LIMIT_MORE_SIZE 64
const char *log_limit_more(unsigned left_out, char *buf);

/* Log and abort: for broken invariants and allocation failure only. */
void log_fatal(const char *fmt, ...) ATTR_PRINTF(1, 2) __attribute__((noreturn));

#endif
