/*
 * log.c: error log and access log.
 *
 * The access log is written through each worker's buffer (struct
 * accesslog_buf): lines are formatted and gathered there by the worker's
 * thread without a lock, and written whole, one write(2) per
 * ACCESSLOG_BUFSIZE bytes or per second (the caller's timer calls
 * accesslog_flush()), never a partial line, under alog_mtx (two workers'
 * writes never interleave, and the sink is not closed under a write). A
 * write error drops the buffered lines rather than blocking the event
 * loop, and says so once.
 *
 * A reload or a reopen changes the sink under the workers' buffers: each
 * sink in use has an epoch, and a buffer's lines go to the sink of the
 * epoch they were formatted for, the one before kept open (alog.prev_fd)
 * until every worker has flushed (accesslog_prev_close()).
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
	unsigned int	 epoch;		/* changes with the sink */
	int		 prev_fd;	/* the epoch before's file, or -1 */
	int		 prev_owned;	/* ... to close (not kept as alog.fd) */
	int		 failed;	/* the last write failed; said once */
	int		 lost;		/* a buffer outlived two sinks; said */
} alog = { .fd = -1, .prev_fd = -1 };

/*
 * Under alog_mtx: everything in alog. Read by the workers without it:
 * alog_state, set under it, which says in one word (read at once, so a
 * reader never sees one epoch's format with another's sink) whether there
 * is a log, its epoch, and the format and sink of that epoch.
 */
static pthread_mutex_t	alog_mtx = PTHREAD_MUTEX_INITIALIZER;
static struct lock_stat	alog_lockstat;	/* the workers' takings, counted */
static _Atomic uint64_t	alog_state;	/* see publish() */
#define ST_FORMAT(st)	((int)((st) & 0xff))
#define ST_SINK(st)	((int)(((st) >> 8) & 0xff))
#define ST_OPEN(st)	(((st) >> 16) & 1)
#define ST_EPOCH(st)	((unsigned int)((st) >> 32))

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

/* Under alog_mtx: the sink's epoch, format and sink for the workers. */
static void
publish(void)
{
	atomic_store_explicit(&alog_state, (uint64_t)alog.epoch << 32 |
	    (uint64_t)(alog.fd != -1) << 16 | (uint64_t)(alog.sink & 0xff) << 8 |
	    (uint64_t)(alog.format & 0xff), memory_order_release);
}

/* Under alog_mtx: the epoch before is over; its file goes if ours. */
static void
prev_close_locked(void)
{
	if (alog.prev_owned)
		close_fd(alog.prev_fd);
	alog.prev_fd = -1;
	alog.prev_owned = 0;
}

/*
 * Under alog_mtx: a new epoch begins; the sink in use becomes the one
 * before, its file kept open for the lines still in workers' buffers
 * (owned: closed by accesslog_prev_close(); or kept as the new one's).
 */
static void
new_epoch(int owned)
{
	prev_close_locked();
	if (alog.sink == SINK_FD && alog.fd >= 0) {
		alog.prev_fd = alog.fd;
		alog.prev_owned = owned;
	}
	alog.epoch++;
}

/* Close the sink; alog_mtx held. A file goes with prev_close_locked(). */
static void
sink_close(void)
{
	if (alog.fd == -1)
		return;
	if (alog.sink == SINK_SYSLOG)
		closelog();
	else if (alog.sink == SINK_SOCKET)
		close_fd(alog.fd);
	alog.fd = -1;
}

void
accesslog_commit(void)
{
	if (!next.staged)
		return;
	pthread_mutex_lock(&alog_mtx);
	new_epoch(!next.keep);
	if (!next.keep) {
		sink_close();
		free(alog.path);
		alog.path = next.path;
		alog.fd = next.fd;
		alog.sink = alog.path != NULL ? path_sink(alog.path, &alog.sun) :
		    SINK_FD;
	}
	if (alog.sink == SINK_SYSLOG && (!next.keep ||
	    next.facility != alog.facility)) {
		closelog();
		openlog("spillway", LOG_PID | LOG_NDELAY, next.facility);
	}
	alog.format = next.format;
	alog.facility = next.facility;
	alog.failed = 0;
	publish();
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

void
accesslog_prev_close(void)
{
	pthread_mutex_lock(&alog_mtx);
	prev_close_locked();
	pthread_mutex_unlock(&alog_mtx);
}

/*
 * SIGUSR1: after log rotation, write to a new file at the same path (the
 * lines buffered before go to the old one: the caller has every worker
 * flush, then calls accesslog_prev_close()). A syslog sink has nothing to
 * reopen (its socket is the daemon's).
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
	if ((fd = open_path(alog.path, err, sizeof(err))) == -1) {
		pthread_mutex_unlock(&alog_mtx);
		log_warnx("%s", err);
		return -1;
	}
	new_epoch(1);
	alog.fd = fd;
	publish();
	pthread_mutex_unlock(&alog_mtx);
	return 0;
}

/* Under alog_mtx: buf to fd whole, or lost (said once). */
static void
write_locked(int fd, const char *buf, size_t len)
{
	size_t	 off = 0;
	ssize_t	 n;

	while (off < len) {
		n = write(fd, buf + off, len - off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (!alog.failed)
				log_warnx("access_log %s: %s; lines lost",
				    alog.path, strerror(errno));
			alog.failed = 1;
			return;
		}
		off += (size_t)n;
		alog.failed = 0;
	}
}

void
accesslog_flush(struct accesslog_buf *ab)
{
	int	 fd = -1;

	if (ab->ab_len == 0)
		return;
	lock_counted(&alog_mtx, &alog_lockstat);
	if (ab->ab_epoch == alog.epoch)
		fd = alog.fd;
	else if (ab->ab_epoch + 1 == alog.epoch)
		fd = alog.prev_fd;
	if (fd >= 0)
		write_locked(fd, ab->ab_buf, ab->ab_len);
	else if (!alog.lost) {
		log_warnx("access_log: lines buffered across two changes of "
		    "the log lost");
		alog.lost = 1;
	}
	pthread_mutex_unlock(&alog_mtx);
	ab->ab_len = 0;
}

void
accesslog_buf_free(struct accesslog_buf *ab)
{
	accesslog_flush(ab);
	free(ab->ab_buf);
	ab->ab_buf = NULL;
	mbuf_free(&ab->ab_line);
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

/*
 * One line, formatted by the worker for the sink of the epoch in force
 * (its format and sink read with it, in one word). A file's lines go to
 * the worker's buffer, lines before another epoch's flushed first;
 * syslog's are sent now, under the lock. A buffer that cannot be had
 * writes the line on its own.
 */
void
accesslog_write(struct accesslog_buf *ab, const struct access_entry *e)
{
	struct mbuf	*mb = &ab->ab_line;
	struct timespec	 ts;
	uint64_t	 st = atomic_load_explicit(&alog_state,
			    memory_order_acquire);
	unsigned int	 epoch = ST_EPOCH(st);
	int		 format = ST_FORMAT(st), sink = ST_SINK(st);
	size_t		 n;

	if (!ST_OPEN(st))
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	if (ab->ab_len > 0 && ab->ab_epoch != epoch)
		accesslog_flush(ab);
	mb->mb_len = 0;
	mb->mb_failed = 0;
	logfmt_line(mb, format, e, ts.tv_sec, ts.tv_nsec);
	if (mb->mb_len == 0)
		return;		/* out of memory */
	n = mb->mb_len;
	if (n > ACCESSLOG_LINE_MAX) {
		n = ACCESSLOG_LINE_MAX;
		mb->mb_data[n - 1] = '\n';
	}
	if (mb->mb_data[n - 1] != '\n')
		mb->mb_data[n - 1] = '\n';	/* cut by a failed allocation */
	if (sink == SINK_FD && ab->ab_buf == NULL)
		ab->ab_buf = malloc(ACCESSLOG_BUFSIZE);
	if (sink == SINK_FD && ab->ab_buf != NULL) {
		if (ab->ab_len + n > ACCESSLOG_BUFSIZE)
			accesslog_flush(ab);
		memcpy(ab->ab_buf + ab->ab_len, mb->mb_data, n);
		ab->ab_len += n;
		ab->ab_epoch = epoch;
		return;
	}
	lock_counted(&alog_mtx, &alog_lockstat);
	if (alog.fd == -1)
		;	/* closed since */
	else if (alog.sink == SINK_SYSLOG)
		syslog(LOG_INFO, "%.*s", (int)(n - 1), mb->mb_data);
	else if (alog.sink == SINK_SOCKET)
		socket_send(mb->mb_data, n - 1, ts.tv_sec);
	else
		write_locked(alog.fd, mb->mb_data, n);
	pthread_mutex_unlock(&alog_mtx);
}

void
accesslog_close(void)
{
	accesslog_abort();
	pthread_mutex_lock(&alog_mtx);
	prev_close_locked();
	if (alog.sink == SINK_FD)
		close_fd(alog.fd);
	sink_close();
	publish();
	free(alog.path);
	alog.path = NULL;
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
