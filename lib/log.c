/*
 * Logging: "2026-11-25 13:49:19.123 [warning] message" lines to stderr or a
 * file, and the rate limit of lines that can come once per request.
 *
 * Any thread.  Each line is formatted in a stack buffer (no allocation, so
 * log_fatal works when memory has run out) and written with one write(2).
 * Control characters in messages are replaced by '?' so that data from the
 * network cannot forge log lines.
 *
 * Invariants: log_fd always names an open descriptor.  Switching files
 * never closes the descriptor writers use: a new file is dup3()'d over it,
 * so a thread writing concurrently writes to the old or the new file, never
 * to a closed or reused descriptor.  Configuration changes are serialised
 * by config_lock; writers only load log_fd and the level atomically.
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 4096

static const char *const level_names[] = { "debug", "info", "notice", "warning", "error" };

static atomic_int log_level = LOG_LEVEL_INFO;
static atomic_int log_fd = STDERR_FILENO;
static pthread_mutex_t config_lock = PTHREAD_MUTEX_INITIALIZER;
static char *log_path; /* under config_lock; NULL for stderr */

int log_level_parse(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(level_names); i++)
		if (strcmp(name, level_names[i]) == 0)
			return (int)i;
	return -1;
}

const char *log_level_name(enum log_level level)
{
	if ((unsigned)level >= ARRAY_SIZE(level_names))
		return "unknown";
	return level_names[level];
}

void log_set_level(enum log_level level)
{
	atomic_store(&log_level, (int)level);
}

enum log_level log_get_level(void)
{
	return (enum log_level)atomic_load_explicit(&log_level, memory_order_relaxed);
}

static int open_log(const char *path)
{
	return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
}

/* Point log_fd at fd (which is consumed).  Called with config_lock held. */
static void install_fd(int fd)
{
	int cur = atomic_load(&log_fd);
	if (cur == STDERR_FILENO) {
		atomic_store(&log_fd, fd);
		return;
	}
	/* dup3 replaces the file behind cur atomically (and keeps it
	 * close-on-exec, which dup2 would clear). */
	while (dup3(fd, cur, O_CLOEXEC) < 0 && errno == EINTR)
		;
	close(fd);
}

int log_open_file(const char *path, const char **error_r)
{
	pthread_mutex_lock(&config_lock);
	if (path == NULL) {
		if (atomic_load(&log_fd) != STDERR_FILENO)
			install_fd(fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 0));
		free(log_path);
		log_path = NULL;
		pthread_mutex_unlock(&config_lock);
		return 0;
	}
	int fd = open_log(path);
	if (fd < 0) {
		if (error_r != NULL)
			*error_r = strerror(errno);
		pthread_mutex_unlock(&config_lock);
		return -1;
	}
	install_fd(fd);
	char *copy = xstrdup(path);
	free(log_path);
	log_path = copy;
	pthread_mutex_unlock(&config_lock);
	return 0;
}

void log_reopen(void)
{
	pthread_mutex_lock(&config_lock);
	char *path = log_path;
	int fd = -1;
	int err = 0;
	if (path != NULL) {
		fd = open_log(path);
		if (fd < 0)
			err = errno;
		else
			install_fd(fd);
	}
	pthread_mutex_unlock(&config_lock);
	if (path != NULL && fd < 0)
		log_error("cannot reopen the log file: %s", strerror(err));
}

/* Append the formatted line (without the newline) to line[0..*pos). */
static void format_line(char *line, size_t *pos, const char *level, const char *fmt, va_list ap)
{
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	size_t n = strftime(line, LOG_LINE_MAX, "%Y-%m-%d %H:%M:%S", &tm);
	n += (size_t)snprintf(line + n, LOG_LINE_MAX - n, ".%03ld [%s] ", ts.tv_nsec / 1000000, level);
	size_t start = n;
	int m = vsnprintf(line + n, LOG_LINE_MAX - n - 1, fmt, ap);
	if (m < 0)
		m = 0;
	if ((size_t)m >= LOG_LINE_MAX - n - 1) {
		n = LOG_LINE_MAX - 5;
		memcpy(line + n, "...", 3);
		n += 3;
	} else {
		n += (size_t)m;
	}
	for (size_t i = start; i < n; i++)
		if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
			line[i] = line[i] == '\t' ? ' ' : '?';
	*pos = n;
}

static void write_line(const char *level, const char *fmt, va_list ap)
{
	char line[LOG_LINE_MAX];
	size_t n;
	int saved_errno = errno;
	format_line(line, &n, level, fmt, ap);
	line[n++] = '\n';
	int fd = atomic_load_explicit(&log_fd, memory_order_acquire);
	while (write(fd, line, n) < 0 && errno == EINTR)
		;
	errno = saved_errno;
}

void log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	if (level < log_get_level())
		return;
	write_line(log_level_name(level), fmt, ap);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

bool log_limit_pass(struct log_limit *l, double now, unsigned *left_out_r)
{
	if (l->last != 0 && now - l->last < l->every) {
		l->left_out++;
		return false;
	}
	*left_out_r = l->left_out;
	l->left_out = 0;
	l->last = now;
	return true;
}

const char *log_limit_more(unsigned left_out, char *buf)
{
	buf[0] = '\0';
	if (left_out > 0)
		snprintf(buf, LOG_LIMIT_MORE_SIZE, " (and %u more since the last line)", left_out);
	return buf;
}

unsigned log_limit_take(struct log_limit *l, double now)
{
	unsigned n = l->left_out;
	if (n > 0) {
		l->left_out = 0;
		l->last = now;
	}
	return n;
}

void log_fatal(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	write_line("fatal", fmt, ap);
	va_end(ap);
	abort();
}
