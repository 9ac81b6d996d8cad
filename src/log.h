/*
 * log.h: the error log (stderr) and the access log (a file or stderr,
 * buffered and flushed at least once a second and at exit, or syslog, a
 * message a line), its lines made by logfmt.c.
 */
#ifndef SPILLWAY_LOG_H
#define SPILLWAY_LOG_H

#include <stdarg.h>
#include <stdint.h>
#include <time.h>

#include "logfmt.h"
#include "mbuf.h"

enum log_level {
	LOG_LVL_ERR = 0,
	LOG_LVL_WARN,
	LOG_LVL_INFO,
	LOG_LVL_DEBUG,
};

extern int	log_level;

void		log_init(int level);
void		log_msg(enum log_level, const char *fmt, ...)
		    __attribute__((format(printf, 2, 3)));

#define log_err(...)	log_msg(LOG_LVL_ERR, __VA_ARGS__)
#define log_warnx(...)	log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...)	do { if (log_level >= LOG_LVL_INFO)		\
	log_msg(LOG_LVL_INFO, __VA_ARGS__); } while (0)
#define log_debug(...)	do { if (log_level >= LOG_LVL_DEBUG)		\
	log_msg(LOG_LVL_DEBUG, __VA_ARGS__); } while (0)

/*
 * Open the access log a configuration names beside the one in use: path
 * NULL (off), "-" (stderr), "syslog" (syslog(3)), "syslog:PATH" (a Unix
 * datagram socket spoken to directly) or a file; lines in format (enum
 * log_format of config.h), syslog messages with facility (an index of
 * config_facility_name()). Commit switches to it, abort drops it.
 */
int		accesslog_prepare(const char *path, int format, int facility,
		    char *err, size_t errlen);
void		accesslog_commit(void);
void		accesslog_abort(void);
int		accesslog_reopen(void);
void		accesslog_close(void);

/*
 * A worker's own buffer of access log lines, touched by its thread only:
 * lines are formatted and gathered in it without a lock, and written
 * whole (a write(2) of up to ACCESSLOG_BUFSIZE bytes, under the sink's
 * lock) when it is full, at least once a second (accesslog_flush()), and
 * before a reload or a reopen changes the sink. Lines to syslog are sent
 * one by one, under the lock.
 */
struct accesslog_buf {
	char		*ab_buf;	/* ACCESSLOG_BUFSIZE, at first use */
	size_t		 ab_len;
	unsigned int	 ab_epoch;	/* the sink its lines are for */
	struct mbuf	 ab_line;	/* the line being formatted */
};

void		accesslog_write(struct accesslog_buf *,
		    const struct access_entry *);
void		accesslog_flush(struct accesslog_buf *);
void		accesslog_buf_free(struct accesslog_buf *);
/*
 * After a reload's commit or a reopen, once every worker has flushed:
 * the sink before it is closed.
 */
void		accesslog_prev_close(void);
/* How often the access log's lock was taken, and found held. */
void		accesslog_lockstat(uint64_t *taken, uint64_t *waited);

#endif /* SPILLWAY_LOG_H */
