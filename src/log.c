/*
 * log.c: error log and access log.
 *
 * The access log is written through a buffer of its own: one write(2) per
 * ACCESSLOG_BUFSIZE bytes or per second (the caller's timer calls
 * accesslog_flush()), never a partial line. A write error drops the
 * buffered lines rather than blocking the event loop, and says so once.
 *
 * To syslog, each line is one message: "syslog" goes through syslog(3)
 * (openlog with LOG_NDELAY, so the socket is there before a chroot or a
 * full descriptor table), "syslog:PATH" is sent by us to that Unix
 * datagram socket as an RFC 3164 message, without blocking: a full socket
 * drops the line and says so once.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "lockstat.h"
#include "log.h"
#include "mbuf.h"

#define ACCESSLOG_BUFSIZE	(64 * 1024)
#define ACCESSLOG_LINE_MAX	8192	/* a longer line is cut */

/* Where lines go. */
enum sink {
	SINK_FD = 0,	/* a file or stderr, through the buffer */
	SINK_SYSLOG,	/* syslog(3) */
	SINK_SOCKET,	/* syslog:PATH, a datagram socket of our own */
};

int	log_level = LOG_LVL_INFO;

/* The access log in use. */
static struct {
	char		*path;		/* NULL: off; "-": stderr */
	int		 fd;		/* -1: off */
	enum sink	 sink;
	int		 format;	/* enum log_format */
	int		 facility;	/* syslog.h's LOG_LOCAL7... */
	struct sockaddr_un sun;		/* SINK_SOCKET's address */
	char		 buf[ACCESSLOG_BUFSIZE];
	size_t		 len;
	int		 failed;	/* the last write failed; said once */
	struct mbuf	 line;		/* the line being formatted */
} alog = { .fd = -1 };

/*
 * Workers write access log lines from their own threads: the line being
 * formatted, the buffer, its flush and the sink are under alog_mtx (held
 * for a format and a memcpy, or a write() when full). alog_open says,
 * unlocked, whether there is a log at all.
 */
static pthread_mutex_t	alog_mtx = PTHREAD_MUTEX_INITIALIZER;
static struct lock_stat	alog_lockstat;	/* accesslog_write()'s, counted */
static atomic_int	alog_open;	/* alog.fd != -1 */

/* By index of config_facility_name(). */
static const int facilities[] = {
	LOG_USER, LOG_DAEMON, LOG_LOCAL0, LOG_LOCAL1, LOG_LOCAL2, LOG_LOCAL3,
	LOG_LOCAL4, LOG_LOCAL5, LOG_LOCAL6, LOG_LOCAL7,
};

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

/* The sink a path names, and for syslog:PATH its address. */
static enum sink
path_sink(const char *path, struct sockaddr_un *sun)
{
	memset(sun, 0, sizeof(*sun));
	if (strcmp(path, "syslog") == 0)
		return SINK_SYSLOG;
	if (strncmp(path, "syslog:", 7) == 0) {
		sun->sun_family = AF_UNIX;
		/* config_value.c checked the length */
		snprintf(sun->sun_path, sizeof(sun->sun_path), "%s", path + 7);
		return SINK_SOCKET;
	}
	return SINK_FD;
}

/*
 * Open what path names: a file, stderr, a datagram socket (checked by a
 * connect, so a wrong path fails the start or the reload, not every line
 * later), or nothing for syslog(3), which opens its own.
 */
static int
open_path(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un	 sun;
	int			 fd;

	switch (path_sink(path, &sun)) {
	case SINK_SYSLOG:
		return -2;
	case SINK_SOCKET:
		if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, 0)) == -1) {
			snprintf(err, errlen, "access_log %s: socket: %s", path,
			    strerror(errno));
			return -1;
		}
		if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
			snprintf(err, errlen, "access_log %s: %s", path,
			    strerror(errno));
			close(fd);
			return -1;
		}
		return fd;
	default:
		break;
	}
	if (strcmp(path, "-") == 0)
		return STDERR_FILENO;
	if ((fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
	    0644)) == -1)
		snprintf(err, errlen, "access_log %s: %s", path,
		    strerror(errno));
	return fd;
}

static void
close_fd(int fd)
{
	if (fd >= 0 && fd != STDERR_FILENO)
		close(fd);
}

/*
 * The access log a new configuration wants, opened beside the one in use
 * (start-up and reload, see proxy.c): accesslog_commit() switches to it,
 * accesslog_abort() forgets it. The same path keeps the open file; the
 * format and facility change on commit.
 */
static struct {
	int	 staged;	/* a new log is prepared */
	int	 keep;		/* the same path: keep what is open */
	char	*path;
	int	 fd;		/* -2: syslog(3) */
	int	 format;
	int	 facility;
} next = { 0, 0, NULL, -1, 0, 0 };

static int
same_path(const char *a, const char *b)
{
	return (a == NULL && b == NULL) ||
	    (a != NULL && b != NULL && strcmp(a, b) == 0);
}

int
accesslog_prepare(const char *path, int format, int facility, char *err,
    size_t errlen)
{
	accesslog_abort();
	next.format = format;
	next.facility = facility >= 0 && (size_t)facility <
	    sizeof(facilities) / sizeof(facilities[0]) ?
	    facilities[facility] : LOG_LOCAL7;
	if (same_path(path, alog.path))
		next.keep = 1;
	else if (path != NULL) {
		if ((next.path = strdup(path)) == NULL) {
			snprintf(err, errlen, "access_log %s: out of memory",
			    path);
			return -1;
		}
		if ((next.fd = open_path(path, err, errlen)) == -1) {
			free(next.path);
			next.path = NULL;
			return -1;
		}
	}
	next.staged = 1;
	return 0;
}

static void	flush_locked(void);

/* Close the sink; alog_mtx held. */
static void
sink_close(void)
{
	if (alog.fd == -1)
		return;
	flush_locked();
	if (alog.sink == SINK_SYSLOG)
		closelog();
	else
		close_fd(alog.fd);
	alog.fd = -1;
}

void
accesslog_commit(void)
{
	if (!next.staged)
		return;
	pthread_mutex_lock(&alog_mtx);
	if (!next.keep) {
		sink_close();
		free(alog.path);
		alog.path = next.path;
		alog.fd = next.fd;
		alog.sink = alog.path != NULL ? path_sink(alog.path, &alog.sun) :
		    SINK_FD;
	} else
		flush_locked();	/* lines so far in the old format */
	if (alog.sink == SINK_SYSLOG && (!next.keep ||
	    next.facility != alog.facility)) {
		closelog();
		openlog("spillway", LOG_PID | LOG_NDELAY, next.facility);
	}
	alog.format = next.format;
	alog.facility = next.facility;
	alog.failed = 0;
	atomic_store(&alog_open, alog.fd != -1);
	pthread_mutex_unlock(&alog_mtx);
	next.staged = 0;
	next.keep = 0;
	next.path = NULL;
	next.fd = -1;
}

void
accesslog_abort(void)
{
	close_fd(next.fd);
	free(next.path);
	next.staged = 0;
	next.keep = 0;
	next.path = NULL;
	next.fd = -1;
}

/*
 * SIGUSR1: after log rotation, write to a new file at the same path. A
 * syslog sink has nothing to reopen (its socket is the daemon's).
 */
int
accesslog_reopen(void)
{
	char	 err[256];
	int	 fd;

	pthread_mutex_lock(&alog_mtx);
	if (alog.path == NULL || alog.fd == STDERR_FILENO ||
	    alog.sink != SINK_FD) {
		pthread_mutex_unlock(&alog_mtx);
		return 0;
	}
	flush_locked();
	if ((fd = open_path(alog.path, err, sizeof(err))) == -1) {
		pthread_mutex_unlock(&alog_mtx);
		log_warnx("%s", err);
		return -1;
	}
	close(alog.fd);
	alog.fd = fd;
	pthread_mutex_unlock(&alog_mtx);
	return 0;
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
				log_warnx("access_log %s: %s; lines lost",
				    alog.path, strerror(errno));
			alog.failed = 1;
			break;
		}
		off += (size_t)n;
		alog.failed = 0;
	}
	alog.len = 0;
}

void
accesslog_flush(void)
{
	pthread_mutex_lock(&alog_mtx);
	flush_locked();
	pthread_mutex_unlock(&alog_mtx);
}

/*
 * One RFC 3164 message to syslog:PATH: "<PRI>Mmm dd hh:mm:ss
 * spillway[pid]: line", local time, as syslog(3) writes it. Never blocks.
 */
static void
socket_send(const char *line, size_t len, time_t when)
{
	struct tm	 tm;
	char		 head[64], ts[32];
	struct iovec	 iov[2];
	struct msghdr	 msg;
	int		 n;

	localtime_r(&when, &tm);
	strftime(ts, sizeof(ts), "%b %e %H:%M:%S", &tm);
	n = snprintf(head, sizeof(head), "<%d>%s spillway[%d]: ",
	    alog.facility | LOG_INFO, ts, (int)getpid());
	if (n < 0 || (size_t)n >= sizeof(head))
		return;
	iov[0].iov_base = head;
	iov[0].iov_len = (size_t)n;
	iov[1].iov_base = (void *)(uintptr_t)line;
	iov[1].iov_len = len;
	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = iov;
	msg.msg_iovlen = 2;
	if (sendmsg(alog.fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL) == -1) {
		if (!alog.failed)
			log_warnx("access_log %s: %s; lines lost",
			    alog.path, strerror(errno));
		alog.failed = 1;
		return;
	}
	alog.failed = 0;
}

void
accesslog_write(const struct access_entry *e)
{
	struct mbuf	*mb = &alog.line;
	struct timespec	 ts;
	size_t		 n;

	if (!atomic_load_explicit(&alog_open, memory_order_relaxed))
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	lock_counted(&alog_mtx, &alog_lockstat);
	if (alog.fd == -1)
		goto out;
	mb->mb_len = 0;
	mb->mb_failed = 0;
	logfmt_line(mb, alog.format, e, ts.tv_sec, ts.tv_nsec);
	if (mb->mb_len == 0)
		goto out;	/* out of memory */
	n = mb->mb_len;
	if (n > ACCESSLOG_LINE_MAX) {
		n = ACCESSLOG_LINE_MAX;
		mb->mb_data[n - 1] = '\n';
	}
	if (mb->mb_data[n - 1] != '\n')
		mb->mb_data[n - 1] = '\n';	/* cut by a failed allocation */
	switch (alog.sink) {
	case SINK_SYSLOG:
		syslog(LOG_INFO, "%.*s", (int)(n - 1), mb->mb_data);
		goto out;
	case SINK_SOCKET:
		socket_send(mb->mb_data, n - 1, ts.tv_sec);
		goto out;
	default:
		break;
	}
	if (alog.len + n > sizeof(alog.buf))
		flush_locked();
	memcpy(alog.buf + alog.len, mb->mb_data, n);
	alog.len += n;
 out:
	pthread_mutex_unlock(&alog_mtx);
}

void
accesslog_close(void)
{
	accesslog_abort();
	pthread_mutex_lock(&alog_mtx);
	sink_close();
	atomic_store(&alog_open, 0);
	free(alog.path);
	alog.path = NULL;
	mbuf_free(&alog.line);
	pthread_mutex_unlock(&alog_mtx);
}

void
accesslog_lockstat(uint64_t *taken, uint64_t *waited)
{
	*taken = atomic_load_explicit(&alog_lockstat.ls_taken,
	    memory_order_relaxed);
	*waited = atomic_load_explicit(&alog_lockstat.ls_waited,
	    memory_order_relaxed);
}
