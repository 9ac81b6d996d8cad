/*
 * fault.h: fault injection for game days: an added delay and an abort
 * with a chosen status, each for a share of a class's requests (issue 14).
 *
 * Pure: the decision takes the random value as an argument, so a test can
 * say exactly which draw gives which fault; the generator is a plain
 * function of a state the caller owns (no rand(), no global).
 */
#ifndef SPILLWAY_FAULT_H
#define SPILLWAY_FAULT_H

#include <stddef.h>
#include <stdint.h>

/* One class's faults ([class NAME] fault_* keys). Off: both shares 0. */
struct fault_rule {
	uint64_t	 delay_ms;	/* added before the backend is asked */
	double		 delay_percent;	/* 0 to 100 */
	unsigned int	 abort_status;	/* answered instead of the backend */
	double		 abort_percent;	/* 0 to 100 */
};

/* What fault_decide() picked, as bits: both may apply (delay, then abort). */
#define FAULT_DELAY	0x01
#define FAULT_ABORT	0x02

/* Kinds for counting: spillway_faults_injected_total{kind}. */
enum fault_kind {
	FAULT_KIND_DELAY = 0,
	FAULT_KIND_ABORT,
};
#define FAULT_NKINDS	2

/* Nonzero if the rule may inject anything. */
int		 fault_active(const struct fault_rule *);

/*
 * The faults for one request, given 64 random bits r: the low 32 bits
 * decide the abort, the high 32 bits the delay, independently (as Envoy's
 * fault filter draws twice), each with the probability of its share.
 * Returns FAULT_DELAY and FAULT_ABORT bits, 0 for none.
 */
int		 fault_decide(const struct fault_rule *, uint64_t r);

/* "delay", "abort". */
const char	*fault_kind_name(enum fault_kind);

/*
 * A small fast generator (splitmix64) for the draws: *state is the
 * caller's, seeded once with fault_rng_seed() from len bytes of seed.
 */
void		 fault_rng_seed(uint64_t *state, const uint8_t *seed,
		    size_t len);
uint64_t	 fault_rng_next(uint64_t *state);

#endif /* SPILLWAY_FAULT_H */
