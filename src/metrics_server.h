/*
 * metrics_server.h: per backend server metrics (a server="host:port"
 * label) and the retry budget's counters, as Prometheus text and JSON.
 * Pure: the caller samples each server into a struct metrics_server.
 */
#ifndef SPILLWAY_METRICS_SERVER_H
#define SPILLWAY_METRICS_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "mbuf.h"

struct metrics_server {
	const char	*name;		/* host:port as configured */
	const char	*state;		/* health_state_name() */
	int		 usable;	/* takes requests now */
	double		 weight;	/* slow start, 0..1 */
	unsigned int	 inflight;
	unsigned int	 limit;		/* its own concurrency limit */
	unsigned int	 idle;		/* pooled connections */
	uint64_t	 requests;	/* tries sent to it */
	uint64_t	 answered;	/* response heads */
	double		 latency_seconds;	/* their sum, try to head */
	uint64_t	 failures;
	uint64_t	 ejections;
	const char	*last_failure;	/* health_event_name(), or NULL */
	double		 ejected_for_seconds;	/* until a trial; 0: none */
	int		 checked;	/* active checks on */
	uint64_t	 checks;
	uint64_t	 checks_failed;
	const char	*check_last;	/* last result, or NULL */
};

struct metrics_retries {
	uint64_t	 allowed;
	uint64_t	 denied;	/* the budget was spent */
};

void	metrics_server_prometheus(const struct metrics_server *, size_t,
	    const struct metrics_retries *, struct mbuf *);

/* "servers": [...], "retries": {...} members, each with a leading comma. */
void	metrics_server_json(const struct metrics_server *, size_t,
	    const struct metrics_retries *, struct mbuf *);

#endif /* SPILLWAY_METRICS_SERVER_H */
