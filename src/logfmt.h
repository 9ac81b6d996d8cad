/*
 * logfmt.h: an access log line in each of the formats spillway writes.
 * Pure: no libevent, no globals, no clock (log.c passes the time in).
 */
#ifndef SPILLWAY_LOGFMT_H
#define SPILLWAY_LOGFMT_H

#include <stdint.h>
#include <time.h>

#include "mbuf.h"

/* One access log line: what happened to one request. */
struct access_entry {
	const char	*client;	/* "ip:port" */
	const char	*client_ip;	/* "ip" */
	const char	*request;	/* "METHOD target", raw, maybe cut */
	int		 version_minor;
	int		 status;
	uint64_t	 bytes;		/* response bytes sent to the client */
	uint64_t	 body_bytes;	/* ...of them, after the head */
	uint64_t	 total_usec;
	int64_t		 upstream_usec;	/* -1: never reached a backend */
	const char	*server;	/* backend address, or NULL */
	const char	*class;		/* request class, or NULL */
	const char	*reason;	/* Spillway-Reason, or NULL */
	const char	*request_id;
	const char	*host;		/* the request's Host, or NULL */
	const char	*user_agent;	/* User-Agent, or NULL */
	const char	*referer;	/* Referer, or NULL */
};

/*
 * Append e as one line, newline included, to mb in format (enum log_format
 * of config.h). when and nsec are the wall clock at the end of the
 * request; combined writes it in local time, as Apache and nginx do.
 */
void		logfmt_line(struct mbuf *mb, int format,
		    const struct access_entry *e, time_t when, long nsec);

#endif /* SPILLWAY_LOGFMT_H */
