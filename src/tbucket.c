/*
 * tbucket.c: integer token bucket.
 *
 * Invariants: 0 <= tb_level <= tb_burst * TBUCKET_UNIT; tb_last never goes
 * backwards (a clock that steps back, or does not move, adds nothing).
 * rate * elapsed cannot overflow: elapsed is capped at the time a bucket
 * takes to fill from empty, at most BURST_MAX * UNIT sub-tokens, with
 * rate and burst bounded by their *_MAX.
 */
#include "tbucket.h"

static uint64_t
clamp(uint64_t v, uint64_t lo, uint64_t hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

static void
refill(struct tbucket *tb, uint64_t now)
{
	uint64_t	 cap = tb->tb_burst * TBUCKET_UNIT;
	uint64_t	 elapsed, fill;

	if (now <= tb->tb_last)
		return;
	elapsed = now - tb->tb_last;
	tb->tb_last = now;
	fill = (cap - tb->tb_level) / tb->tb_rate + 1;	/* usec to full */
	if (elapsed >= fill) {
		tb->tb_level = cap;
		return;
	}
	tb->tb_level += elapsed * tb->tb_rate;
	if (tb->tb_level > cap)
		tb->tb_level = cap;
}

void
tbucket_init(struct tbucket *tb, uint64_t rate, uint64_t burst,
    uint64_t now)
{
	tb->tb_rate = clamp(rate, 1, TBUCKET_RATE_MAX);
	tb->tb_burst = clamp(burst, 1, TBUCKET_BURST_MAX);
	tb->tb_level = tb->tb_burst * TBUCKET_UNIT;
	tb->tb_last = now;
}

void
tbucket_set(struct tbucket *tb, uint64_t rate, uint64_t burst, uint64_t now)
{
	refill(tb, now);
	tb->tb_rate = clamp(rate, 1, TBUCKET_RATE_MAX);
	tb->tb_burst = clamp(burst, 1, TBUCKET_BURST_MAX);
	if (tb->tb_level > tb->tb_burst * TBUCKET_UNIT)
		tb->tb_level = tb->tb_burst * TBUCKET_UNIT;
}

uint64_t
tbucket_wait(struct tbucket *tb, uint64_t now)
{
	uint64_t	 missing;

	refill(tb, now);
	if (tb->tb_level >= TBUCKET_UNIT)
		return 0;
	missing = TBUCKET_UNIT - tb->tb_level;
	return (missing + tb->tb_rate - 1) / tb->tb_rate;	/* round up */
}

int
tbucket_take(struct tbucket *tb, uint64_t now)
{
	refill(tb, now);
	if (tb->tb_level < TBUCKET_UNIT)
		return -1;
	tb->tb_level -= TBUCKET_UNIT;
	return 0;
}

uint64_t
tbucket_tokens(struct tbucket *tb, uint64_t now)
{
	refill(tb, now);
	return tb->tb_level / TBUCKET_UNIT;
}

int
tbucket_full(struct tbucket *tb, uint64_t now)
{
	refill(tb, now);
	return tb->tb_level == tb->tb_burst * TBUCKET_UNIT;
}
