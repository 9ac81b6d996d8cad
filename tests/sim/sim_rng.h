/*
 * sim_rng.h: the simulations' random numbers: xorshift64*, seeded by the
 * caller, so every run of a simulation is the same run.
 */
#ifndef SIM_RNG_H
#define SIM_RNG_H

#include <stdint.h>
#include <stdlib.h>

static inline uint64_t
sim_rng_next(uint64_t *state)
{
	*state ^= *state >> 12;
	*state ^= *state << 25;
	*state ^= *state >> 27;
	return *state * 0x2545f4914f6cdd1dULL;
}

/* Uniform in (0, 1). */
static inline double
sim_rng_unit(uint64_t *state)
{
	return ((sim_rng_next(state) >> 11) + 0.5) / 9007199254740992.0;
}

/*
 * A run's seed: base (each simulation derives it from the run's
 * parameters), moved by SIM_SEED=N when set, to see the spread of a
 * result over seeds without changing the default runs.
 */
static inline uint64_t
sim_rng_seed(uint64_t base)
{
	const char	*env = getenv("SIM_SEED");

	return env != NULL ? base ^ (strtoull(env, NULL, 0) << 8) : base;
}

#endif
