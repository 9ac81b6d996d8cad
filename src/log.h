/*
 * log.h: the error log (stderr) and the access log (a file or stderr,
 * buffered and flushed at least once a second and at exit).
 */
#ifndef SPILLWAY_LOG_H
#define SPILLWAY_LOG_H

#include <stdarg.h>
#include <stdint.h>

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

/* One access log line: what happened to one request. */
struct access_entry {
	const char	*client;	/* "ip:port" */
	const char	*request;	/* "METHOD target" */
	int		 version_minor;
	int		 status;
	uint64_t	 bytes;		/* response bytes sent to the client */
	uint64_t	 total_usec;
	int64_t		 upstream_usec;	/* -1: never reached a backend */
	const char	*server;	/* backend address, or NULL */
	const char	*class;		/* request class, or NULL */
	const char	*reason;	/* Spillway-Reason, or NULL */
};

/*
 * Open the access log a configuration names (path NULL: off; "-": stderr)
 * beside the one in use; commit switches to it, abort drops it.
 */
int		accesslog_prepare(const char *path, char *err, size_t errlen);
void		accesslog_commit(void);
void		accesslog_abort(void);
int		accesslog_reopen(void);
void		accesslog_write(const struct access_entry *);
void		accesslog_flush(void);
void		accesslog_close(void);

#endif /* SPILLWAY_LOG_H */
