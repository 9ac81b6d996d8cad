/*
 * tbucket.h: an integer token bucket on a monotonic clock. Pure: the time
 * (microseconds, any monotonic origin) is an argument of every call.
 *
 * Rates are in tokens per minute (1/s is 60), so that slow limits such as
 * 5 per minute are exact. The level is kept in sub-tokens, one token being
 * TBUCKET_UNIT = 60,000,000 of them (the microseconds in a minute), so a
 * rate of r tokens per minute adds exactly r sub-tokens per microsecond:
 * integer arithmetic, no drift, exact at 1/min and at 10,000,000/s alike.
 */
#ifndef SPILLWAY_TBUCKET_H
#define SPILLWAY_TBUCKET_H

#include <stdint.h>

#define TBUCKET_UNIT		60000000ULL	/* sub-tokens per token */
#define TBUCKET_RATE_MAX	600000000ULL	/* tokens per minute */
#define TBUCKET_BURST_MAX	10000000ULL	/* tokens */

struct tbucket {
	uint64_t	tb_rate;	/* tokens per minute, > 0 */
	uint64_t	tb_burst;	/* capacity in tokens, >= 1 */
	uint64_t	tb_level;	/* sub-tokens, <= burst * UNIT */
	uint64_t	tb_last;	/* time of the last refill, usec */
};

/* A full bucket. rate and burst are clamped to [1, *_MAX]. */
void		 tbucket_init(struct tbucket *, uint64_t rate, uint64_t burst,
		    uint64_t now);

/*
 * Change rate and burst keeping the level (clamped to the new burst), as a
 * reload does: a client that had used its burst does not get a new one.
 */
void		 tbucket_set(struct tbucket *, uint64_t rate, uint64_t burst,
		    uint64_t now);

/* Microseconds until a token is available at now: 0 if one is. */
uint64_t	 tbucket_wait(struct tbucket *, uint64_t now);

/* Take one token if there is one: 0, else -1 and nothing taken. */
int		 tbucket_take(struct tbucket *, uint64_t now);

/* Whole tokens available now. */
uint64_t	 tbucket_tokens(struct tbucket *, uint64_t now);

/* 1 if the bucket is full at now (so forgetting it loses nothing). */
int		 tbucket_full(struct tbucket *, uint64_t now);

#endif /* SPILLWAY_TBUCKET_H */
