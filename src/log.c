/*
 * log.c: error log and access log.
 *
 * The access log is written through a buffer of its own: one write(2) per
 * ACCESSLOG_BUFSIZE bytes or per second (the caller's timer calls
 * accesslog_flush()), never a partial line. A write error drops the
 * buffered lines rather than blocking the event loop, and says so once.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define ACCESSLOG_BUFSIZE	(64 * 1024)
#define ACCESSLOG_LINE_MAX	1024

int	log_level = LOG_LVL_INFO;

static struct {
	char	*path;		/* NULL: off; "-": stderr */
	int	 fd;
	char	 buf[ACCESSLOG_BUFSIZE];
	size_t	 len;
	int	 failed;	/* the last write failed; said once */
} alog = { NULL, -1, { 0 }, 0, 0 };

/*
 * Workers write access log lines from their own threads: the buffer, its
 * flush and the descriptor are under alog_mtx (a line is formatted before
 * taking it, so it is held for a memcpy, or a write() when full).
 */
static pthread_mutex_t	alog_mtx = PTHREAD_MUTEX_INITIALIZER;
static atomic_int	alog_open;	/* alog.fd != -1, read unlocked */

static void	flush_locked(void);

static const char *level_names[] = { "error", "warning", "info", "debug" };

void
log_init(int level)
{
	log_level = level;
}

static void
format_now(char *buf, size_t len)
{
	struct timespec	 ts;
	struct tm	 tm;
	size_t		 n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, len - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

void
log_msg(enum log_level level, const char *fmt, ...)
{
	char	 when[40], msg[1024];
	va_list	 ap;

	if ((int)level > log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	format_now(when, sizeof(when));
	fprintf(stderr, "%s spillway[%d] %s: %s\n", when, (int)getpid(),
	    level_names[level], msg);
}

static int
open_path(const char *path)
{
	if (strcmp(path, "-") == 0)
		return STDERR_FILENO;
	return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
}

/*
 * The access log a new configuration wants, opened beside the one in use
 * (start-up and reload, see proxy.c): accesslog_commit() switches to it,
 * accesslog_abort() forgets it. The same path keeps the open file.
 */
static struct {
	int	 staged;	/* a new log is prepared */
	char	*path;
	int	 fd;
} next = { 0, NULL, -1 };

static int
same_path(const char *a, const char *b)
{
	return (a == NULL && b == NULL) ||
	    (a != NULL && b != NULL && strcmp(a, b) == 0);
}

int
accesslog_prepare(const char *path, char *err, size_t errlen)
{
	accesslog_abort();
	if (same_path(path, alog.path))
		return 0;
	if (path != NULL) {
		if ((next.path = strdup(path)) == NULL ||
		    (next.fd = open_path(path)) == -1) {
			snprintf(err, errlen, "access_log %s: %s", path,
			    strerror(errno));
			free(next.path);
			next.path = NULL;
			return -1;
		}
	}
	next.staged = 1;
	return 0;
}

void
accesslog_commit(void)
{
	if (!next.staged)
		return;
	accesslog_close();
	pthread_mutex_lock(&alog_mtx);
	alog.path = next.path;
	alog.fd = next.fd;
	atomic_store(&alog_open, alog.fd != -1);
	pthread_mutex_unlock(&alog_mtx);
	next.staged = 0;
	next.path = NULL;
	next.fd = -1;
}

void
accesslog_abort(void)
{
	if (next.fd != -1 && next.fd != STDERR_FILENO)
		close(next.fd);
	free(next.path);
	next.staged = 0;
	next.path = NULL;
	next.fd = -1;
}

/* SIGUSR1: after log rotation, write to a new file at the same path. */
int
accesslog_reopen(void)
{
	int	 fd;

	pthread_mutex_lock(&alog_mtx);
	if (alog.path == NULL || alog.fd == STDERR_FILENO) {
		pthread_mutex_unlock(&alog_mtx);
		return 0;
	}
	flush_locked();
	if ((fd = open_path(alog.path)) == -1) {
		log_warnx("%s: access_log %s: %s", __func__, alog.path,
		    strerror(errno));
		pthread_mutex_unlock(&alog_mtx);
		return -1;
	}
	close(alog.fd);
	alog.fd = fd;
	pthread_mutex_unlock(&alog_mtx);
	return 0;
}

void
accesslog_flush(void)
{
	pthread_mutex_lock(&alog_mtx);
	flush_locked();
	pthread_mutex_unlock(&alog_mtx);
}

static void
flush_locked(void)
{
	size_t	 off = 0;
	ssize_t	 n;

	while (off < alog.len) {
		n = write(alog.fd, alog.buf + off, alog.len - off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (!alog.failed)
				log_warnx("%s: access_log %s: %s; lines lost",
				    __func__, alog.path, strerror(errno));
			alog.failed = 1;
			break;
		}
		off += (size_t)n;
		alog.failed = 0;
	}
	alog.len = 0;
}

void
accesslog_write(const struct access_entry *e)
{
	char	 when[40], line[ACCESSLOG_LINE_MAX], up[32];
	int	 n;

	if (!atomic_load_explicit(&alog_open, memory_order_relaxed))
		return;
	format_now(when, sizeof(when));
	if (e->upstream_usec >= 0)
		snprintf(up, sizeof(up), "%.3f", e->upstream_usec / 1e6);
	else
		snprintf(up, sizeof(up), "-");
	n = snprintf(line, sizeof(line),
	    "%s %s \"%s HTTP/1.%d\" %d %llu %.3f %s %s %s %s\n",
	    when, e->client, e->request, e->version_minor, e->status,
	    (unsigned long long)e->bytes, e->total_usec / 1e6, up,
	    e->server ? e->server : "-", e->class ? e->class : "-",
	    e->reason ? e->reason : "-");
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line)) {
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	pthread_mutex_lock(&alog_mtx);
	if (alog.fd == -1) {
		pthread_mutex_unlock(&alog_mtx);
		return;
	}
	if (alog.len + (size_t)n > sizeof(alog.buf))
		flush_locked();
	memcpy(alog.buf + alog.len, line, (size_t)n);
	alog.len += (size_t)n;
	pthread_mutex_unlock(&alog_mtx);
}

void
accesslog_close(void)
{
	pthread_mutex_lock(&alog_mtx);
	if (alog.fd != -1) {
		flush_locked();
		if (alog.fd != STDERR_FILENO)
			close(alog.fd);
	}
	alog.fd = -1;
	atomic_store(&alog_open, 0);
	free(alog.path);
	alog.path = NULL;
	pthread_mutex_unlock(&alog_mtx);
}
