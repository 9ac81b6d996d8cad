/* Unit tests of the token bucket, on a fake clock (microseconds). */
#include <stdint.h>

#include "tap.h"
#include "tbucket.h"

#define SEC	1000000ULL
#define PER_S(n)	((n) * 60ULL)	/* rates are per minute */

/* Offer a request every step usec for dur usec; count those admitted. */
static uint64_t
offer(struct tbucket *tb, uint64_t start, uint64_t dur, uint64_t step)
{
	uint64_t	 t, n = 0;

	for (t = start; t < start + dur; t += step)
		if (tbucket_take(tb, t) == 0)
			n++;
	return n;
}

static void
test_burst_then_empty(void)
{
	struct tbucket	 tb;
	int		 i;

	tbucket_init(&tb, PER_S(10), 5, 1000);
	for (i = 0; i < 5; i++)
		CHECK_EQ_INT(tbucket_take(&tb, 1000), 0);
	CHECK_EQ_INT(tbucket_take(&tb, 1000), -1);
	CHECK_EQ_INT(tbucket_tokens(&tb, 1000), 0);
}

static void
test_clock_still(void)
{
	struct tbucket	 tb;
	int		 i, n = 0;

	/* with no time passing, exactly the burst and never more */
	tbucket_init(&tb, PER_S(100000), 50, 42);
	for (i = 0; i < 10000; i++)
		if (tbucket_take(&tb, 42) == 0)
			n++;
	CHECK_EQ_INT(n, 50);
}

static void
test_clock_backwards(void)
{
	struct tbucket	 tb;

	tbucket_init(&tb, PER_S(1), 1, 10 * SEC);
	CHECK_EQ_INT(tbucket_take(&tb, 10 * SEC), 0);
	/* a clock that steps back adds nothing, and nothing breaks */
	CHECK_EQ_INT(tbucket_take(&tb, 5 * SEC), -1);
	CHECK_EQ_INT(tbucket_take(&tb, 10 * SEC + SEC / 2), -1);
	CHECK_EQ_INT(tbucket_take(&tb, 11 * SEC), 0);
}

static void
test_low_rate_accuracy(void)
{
	struct tbucket	 tb;
	uint64_t	 n;

	/* 1/s with burst 1, offered every ms for 100 s: 100 (+1 burst) */
	tbucket_init(&tb, PER_S(1), 1, 0);
	n = offer(&tb, 0, 100 * SEC, 1000);
	CHECK(n >= 100 && n <= 101);
}

static void
test_high_rate_accuracy(void)
{
	struct tbucket	 tb;
	uint64_t	 n;

	/* 100k/s, burst 10, offered every microsecond for 2 s */
	tbucket_init(&tb, PER_S(100000), 10, 0);
	n = offer(&tb, 0, 2 * SEC, 1);
	CHECK(n >= 200000 && n <= 200010);
}

static void
test_fractional_rate(void)
{
	struct tbucket	 tb;
	uint64_t	 n;

	/* 3/s offered at odd instants: no drift from rounding */
	tbucket_init(&tb, PER_S(3), 1, 0);
	n = offer(&tb, 0, 60 * SEC, 777);
	CHECK(n >= 180 && n <= 181);
}

static void
test_wait(void)
{
	struct tbucket	 tb;

	tbucket_init(&tb, PER_S(1), 1, 0);
	CHECK_EQ_INT(tbucket_wait(&tb, 0), 0);
	CHECK_EQ_INT(tbucket_take(&tb, 0), 0);
	CHECK_EQ_INT(tbucket_wait(&tb, 0), SEC);
	CHECK_EQ_INT(tbucket_wait(&tb, SEC / 4), 3 * SEC / 4);
	CHECK_EQ_INT(tbucket_wait(&tb, SEC), 0);

	/* 3/s: a third of a second, rounded up to the microsecond */
	tbucket_init(&tb, PER_S(3), 1, 0);
	CHECK_EQ_INT(tbucket_take(&tb, 0), 0);
	CHECK_EQ_INT(tbucket_wait(&tb, 0), 333334);
	CHECK_EQ_INT(tbucket_take(&tb, 333333), -1);
	CHECK_EQ_INT(tbucket_take(&tb, 333334), 0);
}

static void
test_refill_caps_at_burst(void)
{
	struct tbucket	 tb;

	tbucket_init(&tb, PER_S(1000), 20, 0);
	CHECK_EQ_INT(offer(&tb, 0, 1, 1), 1);
	CHECK(!tbucket_full(&tb, 0));
	/* after an hour idle, still only the burst */
	CHECK_EQ_INT(tbucket_tokens(&tb, 3600 * SEC), 20);
	CHECK(tbucket_full(&tb, 3600 * SEC));
	/* after years idle (no overflow) */
	CHECK_EQ_INT(tbucket_tokens(&tb, UINT64_MAX / 2), 20);
}

static void
test_set_keeps_level(void)
{
	struct tbucket	 tb;
	int		 i;

	tbucket_init(&tb, PER_S(10), 10, 0);
	for (i = 0; i < 8; i++)
		tbucket_take(&tb, 0);
	/* a reload to a bigger burst does not hand out a new burst */
	tbucket_set(&tb, PER_S(10), 100, 0);
	CHECK_EQ_INT(tbucket_tokens(&tb, 0), 2);
	/* a smaller burst clamps the level */
	tbucket_set(&tb, PER_S(10), 1, 0);
	CHECK_EQ_INT(tbucket_tokens(&tb, 0), 1);
	/* and the new rate applies from now */
	tbucket_set(&tb, PER_S(1000), 1000, 0);
	CHECK_EQ_INT(tbucket_tokens(&tb, SEC / 10), 101);
}

static void
test_per_minute(void)
{
	struct tbucket	 tb;
	uint64_t	 n;

	/* 5 per minute, burst 5: a client that used its burst waits 12 s */
	tbucket_init(&tb, 5, 5, 0);
	CHECK_EQ_INT(offer(&tb, 0, 1, 1), 1);
	CHECK_EQ_INT(offer(&tb, 0, 1000, 1), 4);
	CHECK_EQ_INT(tbucket_wait(&tb, 1000), 12 * SEC - 1000);
	/* and over ten minutes gets 50 more, no more */
	n = offer(&tb, 1000, 600 * SEC, 100000);
	CHECK(n >= 49 && n <= 50);
}

static void
test_clamped_parameters(void)
{
	struct tbucket	 tb;

	tbucket_init(&tb, 0, 0, 0);
	CHECK_EQ_INT(tb.tb_rate, 1);
	CHECK_EQ_INT(tb.tb_burst, 1);
	tbucket_init(&tb, UINT64_MAX, UINT64_MAX, 0);
	CHECK_EQ_INT(tb.tb_rate, TBUCKET_RATE_MAX);
	CHECK_EQ_INT(tb.tb_burst, TBUCKET_BURST_MAX);
	CHECK_EQ_INT(offer(&tb, 0, 1000, 1), 1000);
}

int
main(void)
{
	RUN(test_burst_then_empty);
	RUN(test_clock_still);
	RUN(test_clock_backwards);
	RUN(test_low_rate_accuracy);
	RUN(test_high_rate_accuracy);
	RUN(test_fractional_rate);
	RUN(test_wait);
	RUN(test_refill_caps_at_burst);
	RUN(test_set_keeps_level);
	RUN(test_per_minute);
	RUN(test_clamped_parameters);
	return tap_done();
}
