/*
 * retry.h: the retry budget, as in Finagle's RetryBudget and Envoy's
 * retry_budget: retries may add at most a share of the recent requests,
 * plus a small floor per second so that a quiet proxy can still retry.
 * Over RETRY_WINDOW seconds: retries <= ratio * requests + floor * window.
 * In an outage the retries then stay a bounded share of the load instead
 * of multiplying it. Pure: no libevent, no globals; time passed in (usec).
 */
#ifndef SPILLWAY_RETRY_H
#define SPILLWAY_RETRY_H

#include <stdint.h>

#define RETRY_WINDOW	10	/* seconds of history */

struct retry {
	uint64_t	 rt_sec[RETRY_WINDOW];	/* which second a slot holds */
	uint64_t	 rt_req[RETRY_WINDOW];	/* first attempts */
	uint64_t	 rt_ret[RETRY_WINDOW];	/* retries allowed */
	uint64_t	 rt_allowed;	/* in all */
	uint64_t	 rt_denied;	/* in all: the budget was spent */
};

void		 retry_init(struct retry *);

/* A request's first attempt. */
void		 retry_request(struct retry *, uint64_t now);

/*
 * May a request be tried again? ratio is a share (0..1) of the requests
 * of the window, floor retries per second always allowed. Returns 1 and
 * counts the retry, or 0 when the budget is spent.
 */
int		 retry_allow(struct retry *, double ratio, unsigned int floor,
		    uint64_t now);

#endif /* SPILLWAY_RETRY_H */
