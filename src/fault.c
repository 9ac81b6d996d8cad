/*
 * fault.c: the fault injection decision and its generator. Pure: no
 * libevent, no global state, no clock; see fault.h.
 *
 * A share p (percent) of 2^32 equally likely draws is the draws below
 * threshold(p) = p / 100 * 2^32, rounded: 0 never fires, 100 always does.
 */
#include <string.h>

#include "fault.h"

#define DRAWS	4294967296.0	/* 2^32 */

int
fault_active(const struct fault_rule *fr)
{
	return (fr->delay_percent > 0 && fr->delay_ms > 0) ||
	    fr->abort_percent > 0;
}

/* The number of 32-bit draws, of 2^32, that fall within percent. */
static uint64_t
threshold(double percent)
{
	if (percent <= 0)
		return 0;
	if (percent >= 100)
		return (uint64_t)1 << 32;
	return (uint64_t)(percent / 100.0 * DRAWS + 0.5);
}

int
fault_decide(const struct fault_rule *fr, uint64_t r)
{
	uint64_t	 abort_draw = r & 0xffffffffu, delay_draw = r >> 32;
	int		 what = 0;

	if (fr->delay_ms > 0 && delay_draw < threshold(fr->delay_percent))
		what |= FAULT_DELAY;
	if (abort_draw < threshold(fr->abort_percent))
		what |= FAULT_ABORT;
	return what;
}

const char *
fault_kind_name(enum fault_kind kind)
{
	switch (kind) {
	case FAULT_KIND_DELAY:
		return "delay";
	case FAULT_KIND_ABORT:
		return "abort";
	}
	return "unknown";
}

/* splitmix64 (Steele, Lea and Flood; the constants of Vigna's version). */
uint64_t
fault_rng_next(uint64_t *state)
{
	uint64_t	 z;

	z = (*state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

void
fault_rng_seed(uint64_t *state, const uint8_t *seed, size_t len)
{
	uint64_t	 part;
	size_t		 i, n;

	*state = 0;
	for (i = 0; i < len; i += sizeof(part)) {
		part = 0;
		n = len - i < sizeof(part) ? len - i : sizeof(part);
		memcpy(&part, seed + i, n);
		*state ^= part;
		(void)fault_rng_next(state);
	}
}
