/*
 * limiter.h: an adaptive concurrency limit in front of the backend.
 * Pure: no libevent, no globals, no clock (now is an argument, in usec).
 *
 * The caller asks for a slot before sending a request upstream and gives
 * it back when the request ends, with the request's latency (dispatch to
 * response head) and outcome. The algorithm turns those samples into the
 * current limit, always within [min_limit, max_limit].
 */
#ifndef SPILLWAY_LIMITER_H
#define SPILLWAY_LIMITER_H

#include <stdint.h>

enum limiter_algo {
	LIMITER_FIXED = 0,	/* limit never changes */
	LIMITER_AIMD,		/* additive increase, multiplicative decrease */
	LIMITER_VEGAS,		/* queue estimate from latency over no-load */
	LIMITER_GRADIENT,	/* long/short latency gradient (Gradient2) */
};

enum limiter_outcome {
	LIMITER_SUCCESS = 0,	/* a response came: latency is a sample */
	LIMITER_DROPPED,	/* timeout, connect error, 503/504: overload */
	LIMITER_IGNORED,	/* says nothing (client went away, ...) */
	LIMITER_FAILED,		/* another 5xx: a drop if faster than no-load */
};

struct limiter_conf {
	enum limiter_algo	 algo;
	unsigned int		 limit;		/* initial (fixed: the limit) */
	unsigned int		 min_limit;
	unsigned int		 max_limit;
	/* aimd */
	double			 backoff;	/* multiply on drop, 0.5..1 */
	uint64_t		 aimd_latency_usec; /* slower counts as drop */
	/* gradient */
	double			 smoothing;	/* weight of a new limit, 0..1 */
	double			 tolerance;	/* latency ratio tolerated, >= 1 */
	/* vegas */
	unsigned int		 vegas_alpha;	/* queue to grow under */
	unsigned int		 vegas_beta;	/* queue to shrink over */
};

/* What the limiter knows, for metrics and the status page. */
struct limiter_state {
	double			 limit;
	unsigned int		 inflight;
	uint64_t		 min_rtt_usec;	/* no-load estimate, 0: none */
	uint64_t		 short_rtt_usec; /* recent latency */
	uint64_t		 long_rtt_usec;	/* long-term latency */
	double			 gradient;	/* gradient: last value */
	uint64_t		 samples;
	uint64_t		 drops;
};

struct limiter;

struct limiter	*limiter_new(const struct limiter_conf *, uint64_t now);
void		 limiter_free(struct limiter *);

/*
 * A reload: new parameters, same learned state. The limit carries over
 * (clamped to the new bounds) unless the algorithm becomes fixed.
 */
void		 limiter_reconfigure(struct limiter *,
		    const struct limiter_conf *, uint64_t now);

/*
 * The wall clock (usec since the epoch, synchronized across hosts by NTP)
 * at now: probes are then started at the same instants on every instance
 * in front of one backend. Without it, the caller's clock is used. Call it
 * again now and then: a wall clock that moved against now by less than a
 * millisecond is left as it was; a step re-aligns the next probe.
 */
void		 limiter_set_wallclock(struct limiter *, uint64_t now,
		    uint64_t wall);

/* Take a slot if inflight < limit: 0, else -1 and nothing taken. */
int		 limiter_acquire(struct limiter *, uint64_t now);

/*
 * Take a slot whatever the limit at now (dry run: the limit is learned,
 * not enforced); give it back with limiter_release() as any other.
 */
void		 limiter_take(struct limiter *, uint64_t now);

/* Give a slot back with the request's latency and outcome. */
void		 limiter_release(struct limiter *, uint64_t now,
		    uint64_t latency_usec, enum limiter_outcome);

unsigned int	 limiter_limit(const struct limiter *);
unsigned int	 limiter_inflight(const struct limiter *);
void		 limiter_state(const struct limiter *, struct limiter_state *);
const char	*limiter_algo_name(enum limiter_algo);

#endif /* SPILLWAY_LIMITER_H */
