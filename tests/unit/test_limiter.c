/*
 * test_limiter.c: unit tests for limiter.c, on a fake clock.
 *
 * The drivers release one request per step of 1 ms; "full use" means the
 * caller takes every slot it can before each release, "app-limited" that
 * it never has more than one request in flight.
 */
#include <stdio.h>
#include <stdlib.h>

#include "limiter.h"
#include "tap.h"

#define MS	1000ULL
#define SEC	1000000ULL

static const enum limiter_algo	 adaptive[] = { LIMITER_AIMD, LIMITER_VEGAS,
    LIMITER_GRADIENT };
#define NADAPTIVE	(sizeof(adaptive) / sizeof(adaptive[0]))

static struct limiter *
make(enum limiter_algo algo, unsigned int limit, unsigned int min,
    unsigned int max)
{
	struct limiter_conf	 conf = { 0 };
	struct limiter		*lm;

	conf.algo = algo;
	conf.limit = limit;
	conf.min_limit = min;
	conf.max_limit = max;
	lm = limiter_new(&conf, 0);
	CHECK(lm != NULL);
	return lm;
}

/* Latency of a backend with k workers at this concurrency: 0 for none. */
static uint64_t
latency_at(uint64_t base, unsigned int k, unsigned int inflight)
{
	if (k == 0 || inflight <= k)
		return base;
	return base * inflight / k;
}

/*
 * Run for usec, one release per ms with latency lat (scaled by the k
 * workers model when k != 0) and outcome out. Returns the highest limit
 * seen after the first step.
 */
static unsigned int
drive(struct limiter *lm, uint64_t *now, uint64_t usec, uint64_t lat,
    unsigned int k, enum limiter_outcome out, int full)
{
	uint64_t	 end = *now + usec;
	unsigned int	 hi = 0;

	while (*now < end) {
		*now += MS;
		if (full) {
			while (limiter_acquire(lm, *now) == 0)
				;
		} else if (limiter_inflight(lm) == 0)
			CHECK_EQ_INT(limiter_acquire(lm, *now), 0);
		limiter_release(lm, *now,
		    latency_at(lat, k, limiter_inflight(lm)), out);
		if (limiter_limit(lm) > hi)
			hi = limiter_limit(lm);
	}
	return hi;
}

static void
test_accounting(void)
{
	struct limiter	*lm;
	unsigned int	 i, a, n;

	for (a = LIMITER_FIXED; a <= LIMITER_GRADIENT; a++) {
		lm = make(a, 5, 2, 100);
		for (n = 0; limiter_acquire(lm, 0) == 0; n++)
			;
		CHECK_EQ_INT(n, 5);
		CHECK_EQ_INT(limiter_inflight(lm), 5);
		CHECK_EQ_INT(limiter_acquire(lm, 0), -1);
		CHECK_EQ_INT(limiter_inflight(lm), 5);
		for (i = 0; i < 5; i++)
			limiter_release(lm, MS, MS, LIMITER_IGNORED);
		CHECK_EQ_INT(limiter_inflight(lm), 0);
		limiter_release(lm, MS, MS, LIMITER_IGNORED); /* no underflow */
		CHECK_EQ_INT(limiter_inflight(lm), 0);
		CHECK_EQ_INT(limiter_limit(lm), 5);
		limiter_free(lm);
	}
}

static void
test_defaults(void)
{
	struct limiter_conf	 conf = { 0 };
	struct limiter		*lm;
	struct limiter_state	 st;

	conf.algo = LIMITER_GRADIENT;
	lm = limiter_new(&conf, 0);
	CHECK_EQ_INT(limiter_limit(lm), 20);
	limiter_state(lm, &st);
	CHECK_EQ_INT(st.min_rtt_usec, 0);
	CHECK_EQ_INT(st.inflight, 0);
	limiter_free(lm);
	CHECK_EQ_STR(limiter_algo_name(LIMITER_FIXED), "fixed");
	CHECK_EQ_STR(limiter_algo_name(LIMITER_AIMD), "aimd");
	CHECK_EQ_STR(limiter_algo_name(LIMITER_VEGAS), "vegas");
	CHECK_EQ_STR(limiter_algo_name(LIMITER_GRADIENT), "gradient");
}

static void
test_fixed_never_changes(void)
{
	struct limiter	*lm = make(LIMITER_FIXED, 7, 2, 100);
	uint64_t	 now = 0;

	CHECK_EQ_INT(drive(lm, &now, 5 * SEC, 5 * MS, 0, LIMITER_SUCCESS, 1),
	    7);
	CHECK_EQ_INT(drive(lm, &now, 5 * SEC, 900 * MS, 0, LIMITER_SUCCESS,
	    1), 7);
	drive(lm, &now, 5 * SEC, 100 * MS, 0, LIMITER_DROPPED, 1);
	CHECK_EQ_INT(limiter_limit(lm), 7);
	limiter_free(lm);
}

static void
test_bounds(void)
{
	struct limiter	*lm;
	uint64_t	 now;
	unsigned int	 i;

	for (i = 0; i < NADAPTIVE; i++) {
		now = 0;
		lm = make(adaptive[i], 10, 4, 40);
		CHECK(drive(lm, &now, 20 * SEC, 5 * MS, 0, LIMITER_SUCCESS,
		    1) <= 40);
		CHECK_EQ_INT(limiter_limit(lm), 40);
		drive(lm, &now, 60 * SEC, 50 * MS, 0, LIMITER_DROPPED, 1);
		CHECK_EQ_INT(limiter_limit(lm), 4);
		limiter_free(lm);
	}
	lm = make(LIMITER_FIXED, 500, 4, 40);	/* initial out of bounds */
	CHECK_EQ_INT(limiter_limit(lm), 40);
	limiter_free(lm);
}

/* Failure mode 1: timeouts are not good samples, and back off slowly. */
static void
test_all_drops(void)
{
	struct limiter	*lm;
	uint64_t	 now;
	unsigned int	 i, prev, l;

	for (i = 0; i < NADAPTIVE; i++) {
		now = 0;
		lm = make(adaptive[i], 100, 2, 1000);
		prev = limiter_limit(lm);
		/* a burst of drops from one moment: one backoff, not 100 */
		drive(lm, &now, 100 * MS, 1 * SEC, 0, LIMITER_DROPPED, 1);
		CHECK(limiter_limit(lm) >= 85);
		CHECK(limiter_limit(lm) < 100);
		while (now < 120 * SEC) {
			drive(lm, &now, 100 * MS, 1 * SEC, 0, LIMITER_DROPPED,
			    1);
			l = limiter_limit(lm);
			CHECK(l <= prev);
			prev = l;
		}
		CHECK_EQ_INT(limiter_limit(lm), 2);
		limiter_free(lm);
	}
}

/* Only a limit in use may grow: one request at a time never pushes it. */
static void
test_app_limited(void)
{
	struct limiter	*lm;
	uint64_t	 now;
	unsigned int	 i;

	for (i = 0; i < NADAPTIVE; i++) {
		now = 0;
		lm = make(adaptive[i], 20, 2, 1000);
		CHECK(drive(lm, &now, 60 * SEC, 2 * MS, 0, LIMITER_SUCCESS,
		    0) <= 20);
		limiter_free(lm);
	}
}

static void
test_reconfigure(void)
{
	struct limiter_conf	 conf = { 0 };
	struct limiter		*lm = make(LIMITER_GRADIENT, 20, 2, 1000);
	uint64_t		 now = 0;

	drive(lm, &now, 10 * SEC, 5 * MS, 0, LIMITER_SUCCESS, 1);
	CHECK(limiter_limit(lm) > 100);
	conf.algo = LIMITER_VEGAS;
	conf.limit = 20;
	conf.min_limit = 2;
	conf.max_limit = 60;
	limiter_reconfigure(lm, &conf, now);
	CHECK_EQ_INT(limiter_limit(lm), 60);	/* learned, clamped */
	conf.max_limit = 1000;
	limiter_reconfigure(lm, &conf, now);
	CHECK_EQ_INT(limiter_limit(lm), 60);	/* kept */
	conf.min_limit = 80;
	limiter_reconfigure(lm, &conf, now);
	CHECK_EQ_INT(limiter_limit(lm), 80);
	conf.algo = LIMITER_FIXED;
	conf.min_limit = 2;
	limiter_reconfigure(lm, &conf, now);
	CHECK_EQ_INT(limiter_limit(lm), 20);
	limiter_free(lm);
}

static void
test_aimd(void)
{
	struct limiter	*lm = make(LIMITER_AIMD, 20, 2, 1000);
	uint64_t	 now = 0;
	unsigned int	 before;

	drive(lm, &now, 2 * SEC, 20 * MS, 0, LIMITER_SUCCESS, 1);
	before = limiter_limit(lm);
	CHECK(before > 25);
	now += MS;
	limiter_acquire(lm, now);
	limiter_release(lm, now, 10 * MS, LIMITER_DROPPED);
	CHECK(limiter_limit(lm) <= (unsigned int)(before * 0.9) + 1);
	CHECK(limiter_limit(lm) < before);
	/* slower than aimd_latency (1 s) counts as a drop */
	before = limiter_limit(lm);
	now += 2 * SEC;
	limiter_release(lm, now, 1500 * MS, LIMITER_SUCCESS);
	CHECK(limiter_limit(lm) < before);
	limiter_free(lm);
}

static void
test_vegas(void)
{
	struct limiter	*lm = make(LIMITER_VEGAS, 20, 2, 1000);
	uint64_t	 now = 0;

	drive(lm, &now, 3 * SEC, 20 * MS, 0, LIMITER_SUCCESS, 1);
	CHECK(limiter_limit(lm) > 40);
	/* a backend with 10 workers: the queue estimate shrinks it */
	drive(lm, &now, 10 * SEC, 20 * MS, 10, LIMITER_SUCCESS, 1);
	printf("# vegas: limit %u on 10 workers\n", limiter_limit(lm));
	CHECK(limiter_limit(lm) >= 10);
	CHECK(limiter_limit(lm) <= 10 + 6 + 2);
	limiter_free(lm);
}

static void
test_gradient(void)
{
	struct limiter		*lm = make(LIMITER_GRADIENT, 20, 2, 1000);
	struct limiter_state	 st;
	uint64_t		 now = 0;

	drive(lm, &now, 2 * SEC, 20 * MS, 0, LIMITER_SUCCESS, 1);
	CHECK(limiter_limit(lm) > 60);
	limiter_state(lm, &st);
	CHECK(st.min_rtt_usec >= 19 * MS && st.min_rtt_usec <= 21 * MS);
	/* latency inflated 2x: shrink within a second */
	drive(lm, &now, 1 * SEC, 40 * MS, 0, LIMITER_SUCCESS, 1);
	CHECK(limiter_limit(lm) < 20);
	limiter_state(lm, &st);
	CHECK(st.gradient < 0.6);
	limiter_free(lm);
}

/* From the floor to capacity quickly (failure mode 4). */
static void
test_gradient_recovery(void)
{
	struct limiter	*lm = make(LIMITER_GRADIENT, 2, 2, 1000);
	uint64_t	 now = 0;

	drive(lm, &now, 2 * SEC, 20 * MS, 100, LIMITER_SUCCESS, 1);
	printf("# recovery: floor to %u in 2 s\n", limiter_limit(lm));
	CHECK(limiter_limit(lm) >= 90);
	CHECK(limiter_limit(lm) <= 130);
	limiter_free(lm);
}

/*
 * Failure mode 2 and 5: sustained load on a backend with 20 workers for
 * five baseline lifetimes: the baseline stays the no-load latency and the
 * limit stays near 20, neither drifts up.
 */
static void
test_gradient_no_drift(void)
{
	struct limiter		*lm = make(LIMITER_GRADIENT, 20, 2, 1000);
	struct limiter_state	 st;
	uint64_t		 now = 0;
	unsigned int		 hi;

	drive(lm, &now, 10 * SEC, 20 * MS, 20, LIMITER_SUCCESS, 1);
	hi = drive(lm, &now, 150 * SEC, 20 * MS, 20, LIMITER_SUCCESS, 1);
	limiter_state(lm, &st);
	printf("# no drift: limit %u (peak %u), min_rtt %llu usec\n",
	    limiter_limit(lm), hi, (unsigned long long)st.min_rtt_usec);
	CHECK(st.min_rtt_usec >= 19 * MS && st.min_rtt_usec <= 21 * MS);
	CHECK(limiter_limit(lm) >= 18 && limiter_limit(lm) <= 24);
	CHECK(hi <= 26);
	limiter_free(lm);
}

/*
 * Failure mode 5: a backend whose latency grows with load, held at 1.5x
 * its 20 workers for 20 s: the limit falls to about the workers and does
 * not creep back up (no headroom added while latency is inflated by
 * queueing), and the baseline stays the no-load latency.
 */
static void
test_gradient_no_creep(void)
{
	struct limiter		*lm = make(LIMITER_GRADIENT, 20, 2, 1000);
	struct limiter_state	 st;
	uint64_t		 now = 0;
	unsigned int		 at3, hi;

	drive(lm, &now, 5 * SEC, 20 * MS, 40, LIMITER_SUCCESS, 1);
	CHECK(limiter_limit(lm) >= 36);
	drive(lm, &now, 3 * SEC, 20 * MS, 20, LIMITER_SUCCESS, 1);
	at3 = limiter_limit(lm);
	CHECK(at3 <= 26);
	hi = drive(lm, &now, 17 * SEC, 20 * MS, 20, LIMITER_SUCCESS, 1);
	limiter_state(lm, &st);
	printf("# no creep: limit %u after 3 s, peak %u after, %u at end\n",
	    at3, hi, limiter_limit(lm));
	CHECK(hi <= 26);
	CHECK(st.min_rtt_usec <= 21 * MS);
	limiter_free(lm);
}

/*
 * A backend that got 3x slower with the same 40 workers (its data grew):
 * latency is inflated at any concurrency, not by queueing. The limit
 * falls at once, then a probe finds that less concurrency does not lower
 * latency, the baseline re-learns, and the limit goes back to half of
 * where it was at once (restore_after_rebase()) and climbs to the workers
 * from there, within seconds, not when the old minimum expires (15 to 30
 * s) nor by the slow climb from the floor.
 */
static void
test_gradient_slower_backend(void)
{
	struct limiter		*lm = make(LIMITER_GRADIENT, 20, 2, 1000);
	struct limiter_state	 st;
	uint64_t		 now = 0, t, end;
	unsigned int		 low = ~0U, at1, hi;

	drive(lm, &now, 5 * SEC, 20 * MS, 40, LIMITER_SUCCESS, 1);
	CHECK(limiter_limit(lm) >= 36);
	for (end = now + SEC, t = now; now < end; t = now) {
		drive(lm, &now, 10 * MS, 60 * MS, 40, LIMITER_SUCCESS, 1);
		if (limiter_limit(lm) < low)
			low = limiter_limit(lm);
		CHECK(now > t);
	}
	at1 = limiter_limit(lm);
	CHECK(low < 20);
	CHECK(at1 >= 18);	/* back at half or more within a second */
	drive(lm, &now, 4 * SEC, 60 * MS, 40, LIMITER_SUCCESS, 1);
	hi = drive(lm, &now, 10 * SEC, 60 * MS, 40, LIMITER_SUCCESS, 1);
	limiter_state(lm, &st);
	printf("# slower backend: lowest %u in the first second, %u after "
	    "it, %u after 5 s, peak %u after, min_rtt %llu usec\n", low, at1,
	    limiter_limit(lm), hi, (unsigned long long)st.min_rtt_usec);
	CHECK(limiter_limit(lm) >= 34 && limiter_limit(lm) <= 52);
	CHECK(hi <= 56);
	CHECK(st.min_rtt_usec >= 55 * MS && st.min_rtt_usec <= 66 * MS);
	limiter_free(lm);
}

/*
 * Run for usec like drive(), with full use and latency lat; returns the
 * lowest limit seen after the first step.
 */
static unsigned int
drive_low(struct limiter *lm, uint64_t *now, uint64_t usec, uint64_t lat)
{
	uint64_t	 end = *now + usec;
	unsigned int	 lo = ~0U;

	while (*now < end) {
		drive(lm, now, MS, lat, 0, LIMITER_SUCCESS, 1);
		if (limiter_limit(lm) < lo)
			lo = limiter_limit(lm);
	}
	return lo;
}

/*
 * Latency within 1 ms of the baseline is noise, not queueing: a backend
 * answering in 100 us that answers in 600 us under load keeps its limit
 * (it is 6x by ratio) and its baseline, even through a probe; one that
 * answers 30 ms slower loses it.
 */
static void
test_noise_floor(void)
{
	static const enum limiter_algo	 algos[] = { LIMITER_GRADIENT,
	    LIMITER_VEGAS };
	struct limiter		*lm;
	struct limiter_state	 st;
	uint64_t		 now;
	unsigned int		 i, before, lo;

	for (i = 0; i < 2; i++) {
		now = 0;
		lm = make(algos[i], 20, 2, 1000);
		drive(lm, &now, 500 * MS, 100, 0, LIMITER_SUCCESS, 1);
		limiter_state(lm, &st);
		CHECK(st.min_rtt_usec >= 99 && st.min_rtt_usec <= 101);
		before = limiter_limit(lm);
		CHECK(before > 20);
		/* past a probe (7.5 s): no re-learning within the noise */
		lo = drive_low(lm, &now, 9 * SEC, 600);
		printf("# %s: limit %u at 100 us, at least %u at 600 us, "
		    "%u at the end\n", limiter_algo_name(algos[i]), before, lo,
		    limiter_limit(lm));
		CHECK(lo >= before);
		limiter_state(lm, &st);
		CHECK(st.min_rtt_usec <= 101);
		before = limiter_limit(lm);
		drive(lm, &now, SEC, 100 + 30 * MS, 0, LIMITER_SUCCESS, 1);
		printf("# %s: %u after 1 s at 30.1 ms\n",
		    limiter_algo_name(algos[i]), limiter_limit(lm));
		CHECK(limiter_limit(lm) < before / 2);
		limiter_free(lm);
	}
}

/*
 * Another 5xx (LIMITER_FAILED) faster than half the no-load latency was
 * not served: a drop, the limit backs off. A slower one says nothing: no
 * sample, no drop. Without a no-load latency yet, nothing either.
 */
static void
test_failed(void)
{
	struct limiter		*lm = make(LIMITER_GRADIENT, 20, 2, 1000);
	struct limiter_state	 st, st0;
	uint64_t		 now = 0;
	unsigned int		 before, i;

	now += MS;
	CHECK_EQ_INT(limiter_acquire(lm, now), 0);
	limiter_release(lm, now, 1, LIMITER_FAILED);	/* no baseline */
	limiter_state(lm, &st);
	CHECK_EQ_INT(st.drops, 0);
	CHECK_EQ_INT(st.samples, 0);
	CHECK_EQ_INT(limiter_limit(lm), 20);

	drive(lm, &now, 500 * MS, 20 * MS, 0, LIMITER_SUCCESS, 1);
	limiter_state(lm, &st0);
	CHECK_EQ_INT(st0.min_rtt_usec, 20 * MS);
	before = limiter_limit(lm);
	/* Slow errors, half the baseline and more: ignored. */
	for (i = 0; i < 100; i++) {
		now += MS;
		limiter_release(lm, now, i % 2 ? 10 * MS : 2 * SEC,
		    LIMITER_FAILED);
	}
	limiter_state(lm, &st);
	CHECK_EQ_INT(st.drops, st0.drops);
	CHECK_EQ_INT(st.samples, st0.samples);
	CHECK_EQ_INT(limiter_limit(lm), before);
	/* A fast one: a drop, one backoff. */
	now += MS;
	limiter_release(lm, now, 10 * MS - 1, LIMITER_FAILED);
	limiter_state(lm, &st);
	CHECK_EQ_INT(st.drops, st0.drops + 1);
	CHECK_EQ_INT(st.samples, st0.samples);
	CHECK(limiter_limit(lm) < before);
	CHECK(limiter_limit(lm) >= (unsigned int)(before * 0.9) - 1);
	/* A storm of them from one moment backs off once. */
	before = limiter_limit(lm);
	for (i = 0; i < 50; i++)
		limiter_release(lm, now, 1 * MS, LIMITER_FAILED);
	CHECK_EQ_INT(limiter_limit(lm), before);
	/* Then, fast failures for seconds: down to the floor. */
	for (i = 0; i < 5000; i++) {
		now += MS;
		limiter_release(lm, now, MS, LIMITER_FAILED);
	}
	CHECK_EQ_INT(limiter_limit(lm), 2);
	limiter_free(lm);
}

/*
 * Dry run: limiter_take() takes a slot whatever the limit, so in-flight
 * may exceed it; limiter_release() gives it back. Taken slots show the
 * limit is used, so it learns as if enforced.
 */
static void
test_take(void)
{
	struct limiter		*lm = make(LIMITER_FIXED, 3, 2, 100);
	struct limiter_state	 st;
	unsigned int		 i;

	for (i = 0; i < 3; i++)
		CHECK_EQ_INT(limiter_acquire(lm, 0), 0);
	CHECK_EQ_INT(limiter_acquire(lm, 0), -1);
	limiter_take(lm, 0);
	limiter_take(lm, 0);
	CHECK_EQ_INT(limiter_inflight(lm), 5);
	limiter_state(lm, &st);
	CHECK_EQ_INT(st.inflight, 5);
	CHECK_EQ_INT(limiter_limit(lm), 3);
	CHECK_EQ_INT(limiter_acquire(lm, 0), -1);
	limiter_release(lm, MS, MS, LIMITER_SUCCESS);
	limiter_release(lm, MS, MS, LIMITER_SUCCESS);
	CHECK_EQ_INT(limiter_inflight(lm), 3);
	CHECK_EQ_INT(limiter_acquire(lm, MS), -1);
	limiter_release(lm, MS, MS, LIMITER_IGNORED);
	CHECK_EQ_INT(limiter_inflight(lm), 2);
	CHECK_EQ_INT(limiter_acquire(lm, MS), 0);
	limiter_free(lm);

	/*
	 * 32 taken at once, past the limit of 20, answered fast, twice (the
	 * first window is not learned from): it grows.
	 */
	lm = make(LIMITER_GRADIENT, 20, 2, 1000);
	for (i = 0; i < 32; i++)
		limiter_take(lm, 0);
	CHECK_EQ_INT(limiter_inflight(lm), 32);
	for (i = 0; i < 32; i++)
		limiter_release(lm, 5 * MS, 5 * MS, LIMITER_SUCCESS);
	CHECK_EQ_INT(limiter_inflight(lm), 0);
	CHECK_EQ_INT(limiter_limit(lm), 20);
	for (i = 0; i < 32; i++)
		limiter_take(lm, 5 * MS);
	for (i = 0; i < 32; i++)
		limiter_release(lm, 10 * MS, 5 * MS, LIMITER_SUCCESS);
	CHECK(limiter_limit(lm) > 20);
	limiter_free(lm);
}

/*
 * Full use of lm (take: else no new request) from *now for usec, every
 * request taking lat, or lat - dev and lat + dev in turn; the instant (on
 * lm's clock) an acquire was first refused under the limit after from (a
 * probe), 0 for none.
 */
#define NOUT	1024
static uint64_t	 out_done[NOUT];	/* 0: a free place */
static unsigned int out_sent_n;

static uint64_t
drive_var(struct limiter *lm, uint64_t *now, uint64_t usec, uint64_t lat,
    uint64_t dev, int take, uint64_t from)
{
	uint64_t	 end = *now + usec, probe = 0, l;
	static uint64_t	 out_sent[NOUT];
	unsigned int	 i;

	while (*now < end) {
		*now += MS;
		for (i = 0; i < NOUT; i++)
			if (out_done[i] != 0 && out_done[i] <= *now) {
				limiter_release(lm, *now, *now - out_sent[i],
				    LIMITER_SUCCESS);
				out_done[i] = 0;
			}
		while (take && limiter_acquire(lm, *now) == 0) {
			for (i = 0; i < NOUT && out_done[i] != 0; i++)
				;
			CHECK(i < NOUT);
			l = out_sent_n++ % 2 ? lat + dev : lat - dev;
			out_sent[i] = *now;
			out_done[i] = *now + l;
		}
		if (probe == 0 && *now >= from &&
		    limiter_inflight(lm) < limiter_limit(lm))
			probe = *now;
	}
	return probe;
}

static uint64_t
drive_fifo(struct limiter *lm, uint64_t *now, uint64_t usec, uint64_t lat,
    uint64_t from)
{
	return drive_var(lm, now, usec, lat, 0, 1, from);
}

/*
 * Instances in front of one backend probe at the same instants of the
 * wall clock, whatever their monotonic clocks' origins, so that all are
 * at probe concurrency together (each then reads the backend's no-load
 * latency, not the others' queue).
 */
static void
test_aligned_probes(void)
{
	static const uint64_t	 origin[2] = { 0, 5123457 * 1000ULL };
	uint64_t		 wall0 = 1796212345678901ULL, now, p, w[2];
	struct limiter		*lm;
	unsigned int		 i;

	for (i = 0; i < 2; i++) {
		lm = make(LIMITER_GRADIENT, 10, 2, 30);
		now = origin[i];
		limiter_reconfigure(lm, &(struct limiter_conf){
		    .algo = LIMITER_GRADIENT, .limit = 10, .min_limit = 2,
		    .max_limit = 30 }, now);
		limiter_set_wallclock(lm, now, wall0);
		p = drive_fifo(lm, &now, 20 * SEC, 10 * MS, origin[i] + SEC);
		CHECK(p != 0);
		w[i] = wall0 + (p - origin[i]);
		printf("# instance %u: first probe at wall %% 7.5 s = %llu usec\n",
		    i, (unsigned long long)(w[i] % 7500000));
		/* seen once the latency in flight drained under it */
		CHECK(w[i] % 7500000 <= 10 * MS + 2 * MS);
		limiter_free(lm);
	}
	CHECK(w[0] == w[1]);
}

/*
 * The wall clock read again (shed.c does, every second): a slewed offset,
 * under a millisecond, leaves the next probe at its instant; a step of
 * the clock re-aligns it to the new clock.
 */
static void
test_wall_refresh(void)
{
	static const uint64_t	 shift[3] = { 0, 400, 2500 * MS };
	uint64_t		 wall0 = 1796212345678901ULL, now, p[3];
	struct limiter		*lm;
	unsigned int		 i;

	for (i = 0; i < 3; i++) {
		lm = make(LIMITER_GRADIENT, 10, 2, 30);
		now = 0;
		limiter_set_wallclock(lm, now, wall0);
		drive_fifo(lm, &now, SEC, 10 * MS, 0);
		limiter_set_wallclock(lm, now, wall0 + now + shift[i]);
		p[i] = drive_fifo(lm, &now, 20 * SEC, 10 * MS, SEC);
		CHECK(p[i] != 0);
		printf("# clock moved %llu usec: first probe at %llu usec\n",
		    (unsigned long long)shift[i], (unsigned long long)p[i]);
		limiter_free(lm);
	}
	CHECK(p[1] == p[0]);
	CHECK(p[2] != p[0]);
	CHECK((wall0 + p[2] + shift[2]) % 7500000 <= 10 * MS + 2 * MS);
}

/*
 * At min_limit, latency 1.3x the baseline (within the tolerance: maybe
 * the queue other instances cause) is not taken as a slower backend by
 * the floor's own probes; the next aligned probe, where it does not fall
 * either, re-learns it. 3x is re-learned by the floor probes in about a
 * second.
 */
static void
test_floor_relearn(void)
{
	struct limiter		*lm;
	struct limiter_state	 st;
	uint64_t		 now = 0, wall0 = 7500000ULL * 1000 + 100000;

	lm = make(LIMITER_GRADIENT, 10, 2, 30);
	limiter_set_wallclock(lm, now, wall0);
	drive_fifo(lm, &now, 3 * SEC, 10 * MS, 0);
	limiter_state(lm, &st);
	CHECK(st.min_rtt_usec >= 9 * MS && st.min_rtt_usec <= 11 * MS);
	/* the aligned probe is at 7.4 s on this clock */
	drive_fifo(lm, &now, 4 * SEC, 13 * MS, 0);
	limiter_state(lm, &st);
	printf("# 1.3x: limit %u, min_rtt %llu usec before the aligned probe\n",
	    limiter_limit(lm), (unsigned long long)st.min_rtt_usec);
	CHECK_EQ_INT(limiter_limit(lm), 2);
	CHECK(st.min_rtt_usec <= 11 * MS);
	drive_fifo(lm, &now, 2 * SEC, 13 * MS, 0);
	limiter_state(lm, &st);
	printf("# 1.3x: limit %u, min_rtt %llu usec after it\n",
	    limiter_limit(lm), (unsigned long long)st.min_rtt_usec);
	CHECK(st.min_rtt_usec >= 12 * MS);
	CHECK(limiter_limit(lm) > 2);
	limiter_free(lm);

	lm = make(LIMITER_GRADIENT, 10, 2, 30);
	now = 0;
	limiter_set_wallclock(lm, now, wall0);
	drive_fifo(lm, &now, 3 * SEC, 10 * MS, 0);
	drive_fifo(lm, &now, 2 * SEC, 30 * MS, 0);
	limiter_state(lm, &st);
	printf("# 3x: limit %u, min_rtt %llu usec after 2 s\n",
	    limiter_limit(lm), (unsigned long long)st.min_rtt_usec);
	CHECK(st.min_rtt_usec >= 25 * MS);
	limiter_free(lm);
}

/*
 * Cycles of 20 ms (windows close on samples, not time) for usec: take every slot, then give them all back at
 * the end of the cycle with latency lat, or lat - dev and lat + dev in
 * turn (all sent after the window opened, so every one is a sample).
 */
static void
drive_cycles(struct limiter *lm, uint64_t *now, uint64_t usec, uint64_t lat,
    uint64_t dev)
{
	uint64_t	 end = *now + usec;
	unsigned int	 n, i;

	while (*now < end) {
		for (n = 0; limiter_acquire(lm, *now) == 0; n++)
			;
		*now += 20 * MS;
		for (i = 0; i < n; i++)
			limiter_release(lm, *now, i % 2 ? lat + dev : lat - dev,
			    LIMITER_SUCCESS);
	}
}

/*
 * Past slow start, growth needs the window's mean latency plus its
 * standard error within the line (5% over the baseline, here 11 ms with
 * the 1 ms noise floor):
 * the same mean with a wide spread is a chance, not evidence (several
 * instances in front of one backend each see noisier windows).
 */
static void
test_growth_evidence(void)
{
	struct limiter	*lm;
	uint64_t	 now;
	unsigned int	 lim, spread;

	for (spread = 0; spread <= 1; spread++) {
		lm = make(LIMITER_GRADIENT, 40, 2, 1000);
		now = 0;
		drive_cycles(lm, &now, 200 * MS, 10 * MS, 0);
		/* past slow start: latency rose once, then fell back */
		drive_cycles(lm, &now, 100 * MS, 15 * MS, 0);
		drive_cycles(lm, &now, 200 * MS, 10 * MS, 0);
		lim = limiter_limit(lm);
		drive_cycles(lm, &now, 200 * MS, 10900, spread ? 3 * MS : 0);
		printf("# mean 10.9 ms of 10, spread %s: limit %u -> %u\n",
		    spread ? "+-3 ms" : "none", lim, limiter_limit(lm));
		if (spread)
			CHECK_EQ_INT(limiter_limit(lm), lim);
		else
			CHECK(limiter_limit(lm) > lim);
		limiter_free(lm);
	}
}

/*
 * An aligned probe that could only start late (no traffic at its instant)
 * is skipped, not run out of step with the other instances: the next is
 * at the next instant.
 */
static void
test_aligned_late(void)
{
	struct limiter	*lm;
	uint64_t	 now = 0, wall0 = 7500000ULL * 1000 - 2 * SEC, p;

	/* instants at 2 s and 9.5 s on this clock */
	lm = make(LIMITER_GRADIENT, 10, 2, 30);
	limiter_set_wallclock(lm, now, wall0);
	drive_var(lm, &now, 1900 * MS, 10 * MS, 0, 1, 0);
	drive_var(lm, &now, 500 * MS, 10 * MS, 0, 0, 0);	/* idle */
	CHECK_EQ_INT(limiter_inflight(lm), 0);
	p = drive_var(lm, &now, 5 * SEC, 10 * MS, 0, 1, now + 20 * MS);
	printf("# late: probe at %llu ms (none: 0)\n",
	    (unsigned long long)(p / MS));
	CHECK(p == 0);
	p = drive_var(lm, &now, 3 * SEC, 10 * MS, 0, 1, now);
	printf("# next: probe at %llu ms\n", (unsigned long long)(p / MS));
	CHECK(p >= 9500 * MS && p <= 9500 * MS + 12 * MS);
	limiter_free(lm);
}

/*
 * A backend with k slots of 10 ms that answers 500 at once past them
 * (PostgreSQL's max_connections), kept full for usec in steps of 0.1 ms;
 * one refused request per step comes back (a client that retries).
 * Counts the 500s and the answers.
 */
#define SLOT_MAX	64

static void
drive_slots(struct limiter *lm, uint64_t *now, uint64_t usec, unsigned int k,
    unsigned int *fails, unsigned int *served)
{
	uint64_t	 done[SLOT_MAX], end = *now + usec;
	unsigned int	 n = 0, i;

	while (*now < end) {
		*now += 100;
		for (i = 0; i < n; ) {
			if (done[i] <= *now) {
				limiter_release(lm, *now, 10 * MS,
				    LIMITER_SUCCESS);
				(*served)++;
				done[i] = done[--n];
			} else
				i++;
		}
		while (n < SLOT_MAX && limiter_acquire(lm, *now) == 0) {
			if (n >= k) {
				limiter_release(lm, *now, 50, LIMITER_FAILED);
				(*fails)++;
				break;
			}
			done[n++] = *now + 10 * MS;
		}
	}
	/* what is still in service ends, for the next call */
	for (i = 0; i < n; i++)
		limiter_release(lm, *now, 10 * MS, LIMITER_SUCCESS);
}

/*
 * In front of 8 slots, the limit backs off from the ninth and goes back
 * to it after a wait that doubles, up to a second: a 500 a second or so,
 * not one per window (10 a second). When the slots double, the ceiling
 * is lifted within 2 s.
 */
static void
test_slot_ceiling(void)
{
	struct limiter	*lm = make(LIMITER_GRADIENT, 4, 2, 1000);
	uint64_t	 now = 0;
	unsigned int	 fails = 0, served = 0, i, sum;

	drive_slots(lm, &now, 2 * SEC, 8, &fails, &served);
	fails = served = 0;
	drive_slots(lm, &now, 10 * SEC, 8, &fails, &served);
	printf("# 8 slots, 10 s: %u served, %u answered 500, limit %u\n",
	    served, fails, limiter_limit(lm));
	CHECK(fails <= 20);
	CHECK(served >= 7600);
	CHECK_EQ_INT(limiter_limit(lm), 8);
	fails = served = 0;
	drive_slots(lm, &now, 2 * SEC, 16, &fails, &served);
	printf("# 16 slots, 2 s: %u served, %u answered 500, limit %u\n",
	    served, fails, limiter_limit(lm));
	CHECK(limiter_limit(lm) >= 15);
	limiter_free(lm);

	/*
	 * Vegas grows by one: from 6.999 to 7.999 at the ceiling, where a
	 * backoff of a tenth would have left the level that failed (7).
	 */
	lm = make(LIMITER_VEGAS, 4, 2, 1000);
	now = 0;
	fails = served = 0;
	drive_slots(lm, &now, 2 * SEC, 6, &fails, &served);
	fails = served = 0;
	drive_slots(lm, &now, 10 * SEC, 6, &fails, &served);
	printf("# vegas, 6 slots, 10 s: %u served, %u answered 500, "
	    "limit %u\n", served, fails, limiter_limit(lm));
	CHECK(fails <= 20);
	CHECK(served >= 5700);
	limiter_free(lm);

	/*
	 * Errors of the app's own, whatever the concurrency (a fast 500
	 * every 100 ms), in front of 20 slots: the limit backs off for each
	 * as it did without ceilings (19.2 on average then), but a ceiling
	 * each sets is waited for from CEIL_MIN again, not ever longer, so
	 * the limit does not ratchet down to min_limit.
	 */
	lm = make(LIMITER_GRADIENT, 4, 2, 1000);
	now = 0;
	fails = served = 0;
	drive_slots(lm, &now, 2 * SEC, 20, &fails, &served);
	for (i = 0, sum = 0; i < 100; i++) {
		drive_slots(lm, &now, 100 * MS, 20, &fails, &served);
		if (limiter_acquire(lm, now) == 0)
			limiter_release(lm, now, 50, LIMITER_FAILED);
		sum += limiter_limit(lm);
	}
	printf("# 20 slots, a fast 500 every 100 ms for 10 s: limit %.1f on "
	    "average\n", sum / 100.0);
	CHECK(sum >= 100 * 16);
	limiter_free(lm);
}

/*
 * A limit is used when in flight reaches 90% of it and stays near it on
 * average: traffic that fills it only in bursts, a tenth of the time,
 * does not raise it (sim_instances: one of several instances otherwise
 * took a share of the backend it left idle between bursts); the same
 * traffic kept up does.
 */
static void
test_used_on_average(void)
{
	struct limiter	*lm;
	uint64_t	 now = 0;
	unsigned int	 i, k;

	lm = make(LIMITER_GRADIENT, 10, 2, 1000);
	drive_cycles(lm, &now, 2 * SEC, 10 * MS, 0);
	printf("# kept full: limit 10 -> %u\n", limiter_limit(lm));
	CHECK(limiter_limit(lm) > 10);
	limiter_free(lm);

	/* every slot for 1 ms of each 10: one held on, the others back */
	lm = make(LIMITER_GRADIENT, 10, 2, 1000);
	now = 0;
	for (i = 0; i < 200; i++) {
		for (k = 0; limiter_acquire(lm, now) == 0; k++)
			;
		now += MS;
		while (k-- > 1)
			limiter_release(lm, now, MS, LIMITER_SUCCESS);
		now += 9 * MS;
		limiter_release(lm, now, 10 * MS, LIMITER_SUCCESS);
	}
	printf("# bursts a tenth of the time: limit 10 -> %u\n",
	    limiter_limit(lm));
	CHECK(limiter_limit(lm) <= 10);
	limiter_free(lm);
}

int
main(void)
{
	RUN(test_accounting);
	RUN(test_defaults);
	RUN(test_fixed_never_changes);
	RUN(test_bounds);
	RUN(test_all_drops);
	RUN(test_app_limited);
	RUN(test_reconfigure);
	RUN(test_aimd);
	RUN(test_vegas);
	RUN(test_gradient);
	RUN(test_gradient_recovery);
	RUN(test_gradient_no_drift);
	RUN(test_gradient_no_creep);
	RUN(test_gradient_slower_backend);
	RUN(test_noise_floor);
	RUN(test_failed);
	RUN(test_take);
	RUN(test_aligned_probes);
	RUN(test_wall_refresh);
	RUN(test_floor_relearn);
	RUN(test_growth_evidence);
	RUN(test_aligned_late);
	RUN(test_slot_ceiling);
	RUN(test_used_on_average);
	return tap_done();
}
