/* Unit tests of the fault injection decision and its generator. */
#include <stdint.h>
#include <string.h>

#include "fault.h"
#include "tap.h"

/* 64 random bits whose delay half is d and abort half is a. */
static uint64_t
draw(uint32_t d, uint32_t a)
{
	return (uint64_t)d << 32 | a;
}

static void
test_off(void)
{
	struct fault_rule	 fr = { 0, 0, 503, 0 };

	CHECK(!fault_active(&fr));
	CHECK_EQ_INT(fault_decide(&fr, 0), 0);
	CHECK_EQ_INT(fault_decide(&fr, UINT64_MAX), 0);
	/* a share without a delay delays nothing */
	fr.delay_percent = 100;
	CHECK(!fault_active(&fr));
	CHECK_EQ_INT(fault_decide(&fr, 0), 0);
}

static void
test_edges(void)
{
	struct fault_rule	 fr = { 200, 10, 503, 25 };

	CHECK(fault_active(&fr));
	/* 10% of 2^32 is 429496729.6: draws below 429496730 delay */
	CHECK_EQ_INT(fault_decide(&fr, draw(0, UINT32_MAX)), FAULT_DELAY);
	CHECK_EQ_INT(fault_decide(&fr, draw(429496729, UINT32_MAX)),
	    FAULT_DELAY);
	CHECK_EQ_INT(fault_decide(&fr, draw(429496730, UINT32_MAX)), 0);
	/* 25% is exactly 2^30: the abort half decides alone */
	CHECK_EQ_INT(fault_decide(&fr, draw(UINT32_MAX, 0x3fffffff)),
	    FAULT_ABORT);
	CHECK_EQ_INT(fault_decide(&fr, draw(UINT32_MAX, 0x40000000)), 0);
	/* both halves low: delayed, then aborted */
	CHECK_EQ_INT(fault_decide(&fr, draw(1, 1)), FAULT_DELAY | FAULT_ABORT);
}

static void
test_always(void)
{
	struct fault_rule	 fr = { 1, 100, 500, 100 };

	CHECK_EQ_INT(fault_decide(&fr, UINT64_MAX), FAULT_DELAY | FAULT_ABORT);
	CHECK_EQ_INT(fault_decide(&fr, 0), FAULT_DELAY | FAULT_ABORT);
	fr.delay_percent = 0.001;	/* the smallest share the file takes */
	fr.abort_percent = 0;
	CHECK_EQ_INT(fault_decide(&fr, draw(42949, 0)), FAULT_DELAY);
	CHECK_EQ_INT(fault_decide(&fr, draw(42950, 0)), 0);
}

/* The generator's draws give the configured shares over many requests. */
static void
test_shares(void)
{
	struct fault_rule	 fr = { 100, 30, 503, 5 };
	uint64_t		 state;
	uint8_t			 seed[16];
	unsigned int		 i, n = 200000, delays = 0, aborts = 0, both = 0;
	int			 what;

	memset(seed, 7, sizeof(seed));
	fault_rng_seed(&state, seed, sizeof(seed));
	for (i = 0; i < n; i++) {
		what = fault_decide(&fr, fault_rng_next(&state));
		delays += (what & FAULT_DELAY) != 0;
		aborts += (what & FAULT_ABORT) != 0;
		both += what == (FAULT_DELAY | FAULT_ABORT);
	}
	/* binomial: 30% of 200000 has a sd of 205, 5% of 97 */
	CHECK(delays > 60000 - 1000 && delays < 60000 + 1000);
	CHECK(aborts > 10000 - 500 && aborts < 10000 + 500);
	/* independent draws: 1.5% both */
	CHECK(both > 3000 - 300 && both < 3000 + 300);
}

static void
test_rng(void)
{
	uint64_t	 a, b, first;
	uint8_t		 s1[16], s2[16];

	memset(s1, 1, sizeof(s1));
	memcpy(s2, s1, sizeof(s2));
	fault_rng_seed(&a, s1, sizeof(s1));
	fault_rng_seed(&b, s2, sizeof(s2));
	first = fault_rng_next(&a);
	CHECK(first == fault_rng_next(&b));	/* same seed, same draws */
	CHECK(fault_rng_next(&a) != first);
	s2[15] = 2;
	fault_rng_seed(&b, s2, sizeof(s2));
	fault_rng_seed(&a, s1, sizeof(s1));
	CHECK(fault_rng_next(&a) != fault_rng_next(&b));
	/* splitmix64's published first output from state 0 */
	a = 0;
	CHECK(fault_rng_next(&a) == 0xe220a8397b1dcdafULL);
	CHECK_EQ_STR(fault_kind_name(FAULT_KIND_DELAY), "delay");
	CHECK_EQ_STR(fault_kind_name(FAULT_KIND_ABORT), "abort");
}

int
main(void)
{
	RUN(test_off);
	RUN(test_edges);
	RUN(test_always);
	RUN(test_shares);
	RUN(test_rng);
	return tap_done();
}
