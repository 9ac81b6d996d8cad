/*
 * tbucket.h: an integer token bucket on a monotonic clock. Pure: the time
 * (microseconds, any monotonic origin) is an argument of every call.
 *
 * The level is kept in micro-tokens (1 token = 1,000,000), so that a rate
 * of r tokens per second adds exactly r micro-tokens per microsecond:
 * integer arithmetic, no drift, exact at 1/s and at 1,000,000/s alike.
 */
#ifndef SPILLWAY_TBUCKET_H
#define SPILLWAY_TBUCKET_H

#include <stdint.h>

#define TBUCKET_UNIT		1000000ULL	/* micro-tokens per token */
#define TBUCKET_RATE_MAX	10000000ULL	/* tokens per second */
#define TBUCKET_BURST_MAX	10000000ULL	/* tokens */

struct tbucket {
	uint64_t	tb_rate;	/* tokens per second, > 0 */
	uint64_t	tb_burst;	/* capacity in tokens, >= 1 */
	uint64_t	tb_level;	/* micro-tokens, <= burst * UNIT */
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
