/*
 * history.h: the admin listener's short memory. One sample of the
 * counters and gauges the dashboard draws, taken once a second, kept in a
 * ring of a fixed size, so that a page opened in the middle of an incident
 * shows the last minutes at once. Pure: no libevent, no globals, no clock
 * (the caller passes the uptime in).
 */
#ifndef SPILLWAY_HISTORY_H
#define SPILLWAY_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#include "mbuf.h"
#include "metrics.h"

#define HISTORY_SAMPLES		300	/* at one a second: 5 minutes */
#define HISTORY_PERIOD_MS	1000

/* Cumulative counters and gauges as they stood at one instant. */
struct history_sample {
	double		 hs_uptime;		/* seconds since start */
	uint64_t	 hs_requests;		/* answered, all classes */
	uint64_t	 hs_refused[MR_COUNT];	/* by reason */
	uint64_t	 hs_dry_run;
	unsigned int	 hs_limit;
	unsigned int	 hs_inflight;
	size_t		 hs_queue;
	double		 hs_wait;		/* allowed wait, seconds */
	int		 hs_growing;
	struct histogram hs_served;		/* served latency so far */
};

struct history {
	struct history_sample	*h_ring;
	size_t			 h_cap;
	size_t			 h_len;		/* samples kept, <= h_cap */
	size_t			 h_next;	/* where the next one goes */
};

/* A ring of cap samples (at least 1); -1 out of memory. */
int		 history_init(struct history *, size_t cap);
void		 history_free(struct history *);

/* Take a sample of m and g at uptime and keep it, the oldest dropped. */
void		 history_record(struct history *, const struct metrics *m,
		    const struct metrics_gauges *g, double uptime);

/* The i-th sample kept, oldest first; NULL past the end. */
const struct history_sample *history_get(const struct history *, size_t i);

/*
 * {"period_seconds", "capacity", "uptime_seconds" (now), "samples": [...]}
 * with each sample shaped like the parts of GET /status it comes from:
 * uptime_seconds, totals {requests, refused, dry_run}, limiter {limit,
 * inflight}, queue {length, allowed_wait_seconds, growing} and
 * served_latency_seconds {count, sum, buckets}.
 */
void		 history_json(const struct history *, double uptime,
		    struct mbuf *);

#endif /* SPILLWAY_HISTORY_H */
