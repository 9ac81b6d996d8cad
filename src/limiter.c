/*
 * limiter.c: adaptive concurrency limit, four algorithms behind one
 * interface.
 *
 * Invariants:
 * - min_limit <= lm_limit <= max_limit at every return; fixed never moves.
 * - A drop never enters a latency sample, and never makes the limit grow.
 * - The limit shrinks on drops at most once per "era": a drop counts only
 *   if its request was dispatched after the previous drop backoff (its
 *   dispatch time is now - latency), so one burst of timeouts from one
 *   overloaded moment backs off once, not once per request (TCP's one
 *   reduction per window of data).
 * - The limit grows only from a window in which it was used (the peak
 *   in-flight count, or a refused acquire, reached USE_FRAC of it, and
 *   the count stayed near it on average): a caller that never fills the
 *   limit cannot push it up.
 * - Samples are judged in windows, never one by one. A window holds only
 *   requests dispatched after it opened, so each window measures the limit
 *   that was in force while it ran, not the one before (no double
 *   correction from stale samples).
 * - The no-load latency (baseline) is a windowed minimum with a bounded
 *   lifetime, never an average of loaded latency, so sustained load cannot
 *   drag it up; periodic gentle probes keep real no-load samples in every
 *   lifetime (see probe_start()), at the same wall-clock instants on
 *   every instance in front of one backend (limiter_set_wallclock()).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "limiter.h"

/*
 * Defaults for a configuration field left at 0. limit, min_limit and
 * max_limit normally come filled in from config.c; these only keep a
 * zeroed struct usable.
 */
#define DEF_LIMIT		20
#define DEF_MIN_LIMIT		2
#define DEF_MAX_LIMIT		1000
#define DEF_BACKOFF		0.9	/* aimd, and every algorithm on drops */
#define DEF_AIMD_LATENCY	1000000	/* usec: aimd counts slower as drop */
#define DEF_SMOOTHING		0.2	/* weight of a new, lower limit */
#define DEF_TOLERANCE		1.5	/* latency / baseline shrunk on hard */
#define DEF_VEGAS_ALPHA		3	/* estimated backend queue grown under */
#define DEF_VEGAS_BETA		6	/* estimated backend queue shrunk over */

/*
 * Windows: a window closes with WIN_SAMPLES fresh outcomes, or after
 * WIN_TIME with at least WIN_MIN of them; so at 1000 req/s the limit moves
 * every ~50 ms, and a quiet service still updates from a few samples.
 */
#define WIN_SAMPLES		32
#define WIN_MIN			4
#define WIN_TIME		50000	/* usec */
#define USE_FRAC		0.9	/* in flight / limit to grow (peak, mean) */
#define USE_SLACK		1	/* requests: see window_used() */
#define SE_MIN			8	/* samples for a standard error */

/*
 * Growth when latency is not inflated: multiplicative, unsmoothed, so the
 * floor-to-capacity climb takes tens of windows (a second or two), not
 * hundreds. GROW_SHARE places the "not inflated" line at this share of the
 * way from the baseline to the tolerance: 1.5 gives 1.125.
 */
#define GROWTH			0.10
#define GROW_SHARE		0.10
#define SHRINK_MAX		0.5	/* at most halve per window */

/*
 * Slow start: from the configured limit until latency first rises past
 * SS_RATIO x the baseline (or a drop), every used window grows the limit
 * by GROWTH, without the careful steps and the standard-error margin of
 * growth near a known knee (see update_gradient()). Small windows at the
 * first, low limits are noisy, and their minimum reads the no-load
 * latency low by a few percent: with growth held to within 5% of it, a
 * 20-worker pool behind the default limit of 4 climbed to 6 and stayed
 * there until that minimum expired (15 s). TCP's slow start ends the same
 * way (HyStart: at a round trip an eighth over its minimum).
 */
#define SS_RATIO		1.125
#define CAREFUL_WINDOWS		8	/* of growth by one (see grown()) */
#define CAREFUL_FROM		0.9	/* x the limit before a shrink */
#define RESTORE_FRAC		0.5	/* x the limit before a slower backend */

/*
 * A drop with the limit full (a backend that answers 500 at once past a
 * slot limit of its own, a timeout at the limit) sets a ceiling at that
 * level: the limit backs off under it and goes back to it only after
 * CEIL_MIN, twice as long after each new drop at the level, up to
 * CEIL_MAX (TCP's exponential backoff of a retransmission, for the probe
 * of a ceiling); past the wait it may reach the level, not pass it,
 * until a window in which in flight reached the level without a drop
 * lifts the ceiling (the backend grew). Growing back to the level after
 * every window, a limit in front of 8 slots tried the ninth 10 times a
 * second and served 1.3% of its requests a 500.
 * A drop under a standing ceiling sets a new, lower one, waited for from
 * CEIL_MIN again, so that errors at any level do not ratchet the limit
 * down behind ever longer waits; a drop with the limit not full (an
 * error of the app's own, a timeout of one request) backs off as before
 * and sets no ceiling.
 */
#define CEIL_MIN		50000		/* usec */
#define CEIL_MAX		1000000		/* usec */

/*
 * Baseline: minimum of the smoothed window latency over two rotating
 * buckets of BASE_LIFE / 2, so a value lives between 15 and 30 s; after
 * that the baseline re-learns from what it sees (a slower backend is
 * eventually accepted, a loaded one is not, thanks to the probes).
 * SHORT_W smooths the window means it is fed, so the minimum of many
 * noisy windows is not biased far below the true no-load latency.
 */
#define BASE_LIFE		30000000	/* usec */
#define SHORT_W			0.25
#define LONG_W			0.02		/* long_rtt: status only */

/*
 * Probe: at every multiple of PROBE_EVERY on the wall clock, a limiter
 * with traffic lowers its limit to PROBE_FRAC of itself (or of what it had
 * in flight, if less; never below min_limit) until PROBE_SAMPLES requests
 * dispatched after in-flight fell under it have come back, or PROBE_MAX
 * passed. That is 25% less concurrency for a latency or two: it lands
 * below the backend's knee, where latency is the no-load latency, without
 * starving traffic (Envoy pinned the limit to 1 for seconds; see
 * envoyproxy/envoy#8337, #9007).
 *
 * Aligned: several spillway instances in front of one backend (each with
 * its own limit) probe at the same instants, with no word between them
 * but NTP: all are at probe concurrency together, so each reads the
 * backend's no-load latency, not the queue the others keep. Probing on
 * its own, each read the others' load as "the backend got slower",
 * re-learned its baseline upward, and together they ran a backend that
 * thrashes past its knee at 50-90% of its capacity (sim_instances). An
 * aligned probe counts only requests sent a latency after the instant
 * (when the others drained too), lasts at least three latencies, and one
 * that would start later than a latency after its instant is skipped.
 */
#define PROBE_EVERY		7500000		/* usec, 4 per BASE_LIFE */
#define PROBE_FRAC		0.75
#define PROBE_SAMPLES		WIN_SAMPLES
#define PROBE_MAX		1000000		/* usec */

/*
 * Re-learning a slower backend: when a probe's lower concurrency brings
 * latency down by less than REBASE_FRAC of what it was, the latency is not
 * queueing: the backend itself got slower (its data grew, a dependency
 * slowed down). The probe's latency is then the no-load latency: the
 * baseline takes it at once instead of holding the limit down until the
 * old minimum expires (15 to 30 s at min_limit). The comparison is made
 * at aligned probes, where every instance lowers its concurrency.
 *
 * A limit held at min_limit probes every PROBE_FLOOR_EVERY, on its own,
 * to find a slower backend sooner; there a probe cannot lower concurrency
 * and the latency it reads may be other instances' queue. It re-learns
 * only from two such probes in a row beyond the tolerance (others past
 * it shrink fast, so latency that stays there is the backend's), and not
 * while the last aligned probe at min_limit saw latency fall (lm_shared:
 * others were loading the backend). Milder slowdowns wait for the next
 * aligned probe.
 */
#define REBASE_FRAC		0.9
#define FLOOR_RUN		2	/* floor probes in a row to re-learn */
/*
 * ... and while the last aligned probe saw latency fall: that may have
 * been this instance's own queue draining (the latency it compared with
 * was smoothed over the windows before the fall), not others' load, so a
 * run this long (about two seconds) re-learns without waiting up to
 * PROBE_EVERY for the next aligned probe: latency that stays past the
 * tolerance that long at the floor is the backend's.
 */
#define FLOOR_RUN_SHARED	6

/*
 * Latency differences below NOISE are not queueing that matters: a
 * backend answering in 0.1 ms that answers in 0.3 ms under load is not
 * three times slower in any sense a client sees, and the proxy's own
 * event loop, the scheduler and the network add that much jitter. The
 * latency is judged against the baseline plus NOISE, so a fast backend's
 * limit is not driven down by noise (it was: to min_limit, refusing
 * what nginx would have served), while a backend whose latency is tens
 * of milliseconds is judged as before.
 */
#define NOISE			1000	/* usec */
#define PROBE_FLOOR_EVERY	250000		/* usec */
#define PROBE_FLOOR_SAMPLES	(WIN_SAMPLES / 2)

struct limiter {
	struct limiter_conf	 lm_conf;
	double			 lm_limit;
	unsigned int		 lm_inflight;
	uint64_t		 lm_samples;	/* successes seen */
	uint64_t		 lm_drops;	/* drops seen */
	uint64_t		 lm_backoff_at;	/* last drop backoff */
	unsigned int		 lm_ceil;	/* limit a drop came at, 0: none */
	uint64_t		 lm_ceil_wait;	/* usec, doubles per drop there */
	uint64_t		 lm_ceil_until;	/* not back to lm_ceil before */
	uint64_t		 lm_drop_at;	/* last drop, 0: none */
	double			 lm_gradient;
	double			 lm_shrunk_at;	/* grow by one from here */
	double			 lm_run_from;	/* limit before a run of shrinks */
	int			 lm_shrinking;	/* no growth since the last */
	int			 lm_warm;	/* a first window was closed */
	int			 lm_slow;	/* slow start (see SS_RATIO) */
	unsigned int		 lm_careful;	/* growths by one since */

	/* the current window */
	uint64_t		 lm_win_start;
	unsigned int		 lm_win_n;	/* fresh successes */
	unsigned int		 lm_win_drops;	/* fresh drops */
	double			 lm_win_sum;	/* their latency, usec */
	double			 lm_win_sq;	/* and its squares */
	unsigned int		 lm_win_peak;	/* peak in-flight */
	double			 lm_win_load;	/* in-flight x usec */
	uint64_t		 lm_win_at;	/* lm_win_load counted to */

	/* latency estimates, usec; 0: none yet */
	double			 lm_short;	/* smoothed window mean */
	double			 lm_long;	/* slow mean, status only */
	double			 lm_base_cur;	/* min of this bucket */
	double			 lm_base_prev;	/* min of the previous */
	uint64_t		 lm_base_epoch;	/* this bucket's start */

	/* probe */
	int			 lm_probing;
	uint64_t		 lm_probe_next;
	uint64_t		 lm_probe_start;
	uint64_t		 lm_probe_drained; /* 0: not yet */
	unsigned int		 lm_probe_n;
	unsigned int		 lm_probe_want;	/* samples to end it */
	double			 lm_probe_sum;
	double			 lm_probe_ref;	/* lm_short at its start */
	uint64_t		 lm_probe_ended;
	int			 lm_probe_aligned; /* at a shared instant */
	unsigned int		 lm_probe_from;	/* in use at its start */
	double			 lm_floor_lat;	/* last floor probe's, 0: none */
	unsigned int		 lm_floor_run;	/* floor probes in a row past
						   the tolerance */
	int			 lm_shared;	/* others load the backend */
	uint64_t		 lm_hold_until;	/* no growth before */
	uint64_t		 lm_wall_off;	/* wall clock - now, mod 2^64 */
	int			 lm_wall_set;	/* lm_wall_off was given */
};

static double
clampd(double v, double lo, double hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

/* Fill the zero fields of conf with defaults and fix impossible values. */
static void
conf_fix(struct limiter_conf *c)
{
	if (c->min_limit == 0)
		c->min_limit = DEF_MIN_LIMIT;
	if (c->max_limit == 0)
		c->max_limit = DEF_MAX_LIMIT;
	if (c->max_limit < c->min_limit)
		c->max_limit = c->min_limit;
	if (c->limit == 0)
		c->limit = DEF_LIMIT;
	if (c->backoff <= 0)
		c->backoff = DEF_BACKOFF;
	c->backoff = clampd(c->backoff, 0.5, 1.0);
	if (c->aimd_latency_usec == 0)
		c->aimd_latency_usec = DEF_AIMD_LATENCY;
	if (c->smoothing <= 0)
		c->smoothing = DEF_SMOOTHING;
	c->smoothing = clampd(c->smoothing, 0.01, 1.0);
	if (c->tolerance <= 0)
		c->tolerance = DEF_TOLERANCE;
	if (c->tolerance < 1.0)
		c->tolerance = 1.0;
	if (c->vegas_alpha == 0)
		c->vegas_alpha = DEF_VEGAS_ALPHA;
	if (c->vegas_beta == 0)
		c->vegas_beta = DEF_VEGAS_BETA;
	if (c->vegas_beta < c->vegas_alpha)
		c->vegas_beta = c->vegas_alpha;
}

static void
set_limit(struct limiter *lm, double limit)
{
	lm->lm_limit = clampd(limit, lm->lm_conf.min_limit,
	    lm->lm_conf.max_limit);
}

/* The limit acquire enforces: lower while a probe runs. */
static unsigned int
effective_limit(const struct limiter *lm)
{
	unsigned int	 l = limiter_limit(lm);
	unsigned int	 p;

	if (!lm->lm_probing)
		return l;
	if (lm->lm_probe_from < l)
		l = lm->lm_probe_from;
	p = (unsigned int)(l * PROBE_FRAC);
	return p < lm->lm_conf.min_limit ? lm->lm_conf.min_limit : p;
}

static double
baseline(const struct limiter *lm)
{
	double	 a = lm->lm_base_cur, b = lm->lm_base_prev;

	if (a == 0)
		return b;
	if (b == 0)
		return a;
	return a < b ? a : b;
}

/*
 * The latency a sample is judged against; 0: none. The baseline, raised
 * so that latency within NOISE of the baseline is never inflation: a slow
 * backend's is its baseline, a fast one's grows by up to NOISE.
 */
static double
judged_base(const struct limiter *lm)
{
	const struct limiter_conf	*c = &lm->lm_conf;
	double				 b = baseline(lm), grow_ratio, lo;

	if (b <= 0)
		return 0;
	grow_ratio = 1 + (c->tolerance - 1) * GROW_SHARE;
	lo = (b + NOISE) / grow_ratio;
	return b > lo ? b : lo;
}

/* Offer v (usec) to the windowed minimum, rotating expired buckets. */
static void
baseline_offer(struct limiter *lm, uint64_t now, double v)
{
	if (now - lm->lm_base_epoch >= BASE_LIFE / 2) {
		lm->lm_base_prev = lm->lm_base_cur;
		lm->lm_base_cur = 0;
		lm->lm_base_epoch = now;
	}
	if (lm->lm_base_cur == 0 || v < lm->lm_base_cur)
		lm->lm_base_cur = v;
}

/*
 * The next aligned probe instant after now: a multiple of PROBE_EVERY on
 * the wall clock (now + lm_wall_off), the same instant on every instance
 * whose clock is synchronized (see limiter_set_wallclock()).
 */
static uint64_t
next_aligned(const struct limiter *lm, uint64_t now)
{
	uint64_t	 w = now + lm->lm_wall_off;

	return now + (PROBE_EVERY - w % PROBE_EVERY);
}

static void
window_open(struct limiter *lm, uint64_t now)
{
	lm->lm_win_start = now;
	lm->lm_win_n = 0;
	lm->lm_win_drops = 0;
	lm->lm_win_sum = 0;
	lm->lm_win_sq = 0;
	lm->lm_win_peak = lm->lm_inflight;
	lm->lm_win_load = 0;
	lm->lm_win_at = now;
}

/* Count the time in flight up to now (see window_used()). */
static void
load_to(struct limiter *lm, uint64_t now)
{
	if (now > lm->lm_win_at) {
		lm->lm_win_load += (double)lm->lm_inflight *
		    (double)(now - lm->lm_win_at);
		lm->lm_win_at = now;
	}
}

/*
 * The limit was used in the window: in flight reached USE_FRAC of it (or
 * an acquire was refused), and on average over the window stayed within
 * USE_FRAC of it, less USE_SLACK (the moment between an answer and the
 * next request: a closed loop at a limit of 2 averages 1.x in flight).
 * The peak alone let an instance that serves all its own traffic below
 * its limit, and reaches it only in a burst, grow the limit further:
 * several instances in front of one backend each grew to where latency
 * let them, and one that owned a large share of the backend's capacity
 * without the traffic to fill it left it idle between bursts, while the
 * others, at their limits, could not take it. sim_instances, 40 seeds,
 * before and after: 3 instances in front of a pool that thrashes held
 * 94.9% of its capacity on average (93.0% at worst), now 95.4% (93.8%);
 * in front of a database 96.2% (91.8%), now 96.8% (95.2%).
 */
static int
window_used(const struct limiter *lm)
{
	unsigned int	 l = limiter_limit(lm);
	double		 span = (double)(lm->lm_win_at - lm->lm_win_start);

	if (span > 0 && lm->lm_win_load < (USE_FRAC * l - USE_SLACK) * span)
		return 0;
	return lm->lm_win_peak >= l || lm->lm_win_peak >= USE_FRAC * l;
}

/*
 * Limit to grow to when latency is not inflated: by GROWTH, or by one
 * request (TCP's congestion avoidance) near where latency last made it
 * shrink (see shrink_to()), for CAREFUL_WINDOWS growths; in slow start,
 * always by GROWTH (see SS_RATIO). A multiplicative
 * step overshoots the knee of a backend that thrashes past it by a tenth,
 * every time, and that costs throughput; one request at a time circles
 * the knee closely, and a backend that really grew is found again at the
 * multiplicative pace soon after.
 */
static double
grown(struct limiter *lm)
{
	double	 limit = lm->lm_limit, step = limit * GROWTH;

	lm->lm_shrinking = 0;
	if (!lm->lm_slow && limit >= lm->lm_shrunk_at &&
	    lm->lm_careful < CAREFUL_WINDOWS) {
		lm->lm_careful++;
		return limit + 1;
	}
	return limit + (step < 1 ? 1 : step);
}

/*
 * The limit shrinks for latency: grow carefully from a little under where
 * it was (TCP's ssthresh), so a limit that fell far (a backend that got
 * slower) climbs back at the multiplicative pace most of the way.
 */
static void
shrink_to(struct limiter *lm, double limit)
{
	if (limit < lm->lm_limit) {
		lm->lm_shrunk_at = lm->lm_limit * CAREFUL_FROM;
		lm->lm_careful = 0;
		if (!lm->lm_shrinking)
			lm->lm_run_from = lm->lm_limit;
		lm->lm_shrinking = 1;
	}
	set_limit(lm, limit);
}

/*
 * The standard error of the window's mean latency; 0 under SE_MIN samples
 * (the spread of a handful says too little: a slow backend at a low
 * limit, whose windows close on time with four or five).
 */
static double
stderr_of(const struct limiter *lm, double mean)
{
	double	 n = lm->lm_win_n, var;

	if (n < SE_MIN)
		return 0;
	var = (lm->lm_win_sq - n * mean * mean) / (n - 1);
	return var > 0 ? sqrt(var / n) : 0;
}

/*
 * Gradient: r = window mean latency / baseline.
 * - r <= grow_ratio (not inflated) and the limit is used: grow. Growth
 *   needs uninflated latency, so modest overload cannot creep the limit
 *   up (the Gradient2 "limit * gradient + sqrt(limit)" bug,
 *   Netflix/concurrency-limits#134); the mean plus its standard error
 *   must be under the line, so that a window that is under it by chance
 *   does not grow the limit (N instances in front of one backend each see
 *   a share of the samples, noisier windows, and grew N times as often
 *   past its knee); and not in the two latencies after an aligned probe,
 *   when the backend is still less loaded than the limits make it.
 * - grow_ratio < r <= tolerance: tolerated, but drift down towards the
 *   limit at which latency would be at grow_ratio, with weight smoothing.
 * - r > tolerance: the same target, with twice the weight (at least 0.5),
 *   so a real overload is shed within a few windows.
 * The target limit * grow_ratio / r is where a backend that queues past
 * its knee would sit at grow_ratio; it never goes below half the limit.
 */
static void
update_gradient(struct limiter *lm, double mean)
{
	const struct limiter_conf	*c = &lm->lm_conf;
	double				 base = judged_base(lm);
	double				 grow_ratio, r, target, w;

	if (base <= 0)
		return;
	grow_ratio = 1 + (c->tolerance - 1) * GROW_SHARE;
	r = mean / base;
	lm->lm_gradient = 1 / r;
	if (lm->lm_slow && r <= SS_RATIO) {
		if (window_used(lm) && lm->lm_win_drops == 0)
			set_limit(lm, grown(lm));
		return;
	}
	lm->lm_slow = 0;
	if (r <= grow_ratio) {
		if (window_used(lm) && lm->lm_win_drops == 0 &&
		    lm->lm_win_start >= lm->lm_hold_until &&
		    mean + stderr_of(lm, mean) <= base * grow_ratio)
			set_limit(lm, grown(lm));
		return;
	}
	target = lm->lm_limit * fmax(SHRINK_MAX, grow_ratio / r);
	w = c->smoothing;
	if (r > c->tolerance)
		w = fmax(0.5, 2 * w);
	if (w > 1)
		w = 1;
	shrink_to(lm, lm->lm_limit + w * (target - lm->lm_limit));
}

/*
 * Vegas: the backend's queue is estimated as limit * (1 - base / latency),
 * the requests beyond those it serves at no-load latency. Under alpha and
 * used, grow (multiplicatively while the queue is under one request, so
 * recovery is fast; else by one); over beta, remove the excess, at most
 * half the limit; in between, hold.
 */
static void
update_vegas(struct limiter *lm, double mean)
{
	const struct limiter_conf	*c = &lm->lm_conf;
	double				 base = judged_base(lm);
	double				 queue;

	if (base <= 0)
		return;
	if (mean < base)
		mean = base;
	lm->lm_gradient = base / mean;
	queue = lm->lm_limit * (1 - base / mean);
	if (queue < c->vegas_alpha) {
		if (!window_used(lm) || lm->lm_win_drops > 0)
			return;
		if (queue < 1)
			set_limit(lm, grown(lm));
		else
			set_limit(lm, lm->lm_limit + 1);
	} else if (queue > c->vegas_beta)
		shrink_to(lm, fmax(lm->lm_limit - (queue - c->vegas_beta),
		    lm->lm_limit * SHRINK_MAX));
}

/*
 * AIMD: drops (and, in release, samples slower than aimd_latency) back
 * off; a used window without them adds one, TCP's one per round trip.
 */
static void
update_aimd(struct limiter *lm)
{
	if (window_used(lm) && lm->lm_win_drops == 0)
		set_limit(lm, lm->lm_limit + 1);
}

static int
window_ready(const struct limiter *lm, uint64_t now)
{
	unsigned int	 n = lm->lm_win_n + lm->lm_win_drops;

	if (n >= WIN_SAMPLES)
		return 1;
	return n >= WIN_MIN && now - lm->lm_win_start >= WIN_TIME;
}

static void
probe_start(struct limiter *lm, uint64_t now, int aligned)
{
	lm->lm_probing = 1;
	lm->lm_probe_aligned = aligned;
	lm->lm_probe_from = lm->lm_win_peak > lm->lm_inflight ?
	    lm->lm_win_peak : lm->lm_inflight;
	lm->lm_probe_start = now;
	lm->lm_probe_drained = lm->lm_inflight < effective_limit(lm) ? now : 0;
	lm->lm_probe_want = PROBE_SAMPLES;
	if (effective_limit(lm) >= limiter_limit(lm)) {
		/*
		 * At min_limit a probe cannot lower concurrency: every
		 * request in flight is already at probe concurrency, fewer
		 * samples do (the rate is at its lowest there), and what it
		 * measures is taken as no-load latency without comparing it
		 * with the latency before (which may still hold the queue
		 * of a higher limit).
		 */
		lm->lm_probe_drained = 1;
		lm->lm_probe_want = PROBE_FLOOR_SAMPLES;
	}
	lm->lm_probe_n = 0;
	lm->lm_probe_sum = 0;
	lm->lm_probe_ref = lm->lm_short;
}

/*
 * A slower backend, re-learned: the limit fell for latency the backend's
 * own slowness caused, not queueing, so the concurrency it served before
 * the fall (less a tenth, and carefully on from there) is where it goes
 * back to, at once, instead of climbing from the floor for seconds. A
 * thread pool, a CPU-bound app and a slot-limited one keep their knee in
 * concurrency when each request gets slower.
 */
static void
restore_after_rebase(struct limiter *lm)
{
	double	 to = lm->lm_run_from * RESTORE_FRAC;

	if (!lm->lm_shrinking || to <= lm->lm_limit)
		return;
	set_limit(lm, to);
	lm->lm_shrunk_at = lm->lm_limit;
	lm->lm_careful = 0;
	lm->lm_shrinking = 0;
	lm->lm_ceil = 0;	/* levels of a faster backend */
}

static void
probe_end(struct limiter *lm, uint64_t now)
{
	const struct limiter_conf	*c = &lm->lm_conf;
	double				 lat, grow_ratio;
	int				 slower;

	if (lm->lm_probe_n > 0) {
		lat = lm->lm_probe_sum / lm->lm_probe_n;
		baseline_offer(lm, now, lat);
		grow_ratio = 1 + (c->tolerance - 1) * GROW_SHARE;
		if (lm->lm_probe_aligned) {
			slower = lat >= REBASE_FRAC * lm->lm_probe_ref &&
			    lat > judged_base(lm) * grow_ratio;
			if (lm->lm_probe_want == PROBE_FLOOR_SAMPLES)
				lm->lm_shared = !slower &&
				    lat < REBASE_FRAC * lm->lm_probe_ref;
			lm->lm_floor_lat = 0;
			lm->lm_floor_run = 0;
		} else {
			if (lat > judged_base(lm) * c->tolerance &&
			    (lm->lm_floor_run == 0 ||
			    lat >= REBASE_FRAC * lm->lm_floor_lat))
				lm->lm_floor_run++;
			else
				lm->lm_floor_run = lat > judged_base(lm) *
				    c->tolerance ? 1 : 0;
			slower = lm->lm_floor_run >= (lm->lm_shared ?
			    FLOOR_RUN_SHARED : FLOOR_RUN);
			lm->lm_floor_lat = lat;
		}
		if (slower) {
			/*
			 * Not queueing: a slower backend (see REBASE_FRAC).
			 * The smoothed latency restarts from it too, or its
			 * lag behind the change would drag the new minimum
			 * back down at the next window.
			 */
			lm->lm_base_cur = lm->lm_base_prev = lat;
			lm->lm_base_epoch = now;
			lm->lm_short = lat;
			lm->lm_floor_lat = 0;
			lm->lm_floor_run = 0;
			restore_after_rebase(lm);
		}
	}
	lm->lm_probing = 0;
	if (lm->lm_probe_aligned) {
		lm->lm_probe_next = next_aligned(lm, now);
		lm->lm_hold_until = now + 2 * (uint64_t)lm->lm_short;
	}
	lm->lm_probe_ended = now;
	window_open(lm, now);
}

/*
 * A success during a probe: count it if sent at probe concurrency. An
 * aligned probe counts requests sent after the other instances drained
 * too (a latency after the instant: the same backend) and lasts at least
 * three latencies, so that every instance measures while all are at probe
 * concurrency.
 */
static void
probe_sample(struct limiter *lm, uint64_t now, uint64_t sent, double lat)
{
	uint64_t	 lat_ref = (uint64_t)lm->lm_probe_ref;

	if (lm->lm_probe_drained != 0 && sent >= lm->lm_probe_drained &&
	    (!lm->lm_probe_aligned || sent >= lm->lm_probe_start + lat_ref)) {
		lm->lm_probe_n++;
		lm->lm_probe_sum += lat;
	}
	if ((lm->lm_probe_n >= lm->lm_probe_want &&
	    (!lm->lm_probe_aligned ||
	    now - lm->lm_probe_start >= 3 * lat_ref)) ||
	    now - lm->lm_probe_start >= PROBE_MAX)
		probe_end(lm, now);
}

/*
 * After a window's update from a limit at before: not back to the level
 * of the last drop while its wait runs; and the ceiling lifted if the
 * window reached it without a drop (see CEIL_MIN).
 */
static void
ceiling(struct limiter *lm, unsigned int before, uint64_t now)
{
	if (lm->lm_ceil == 0)
		return;
	if (lm->lm_win_peak >= lm->lm_ceil && lm->lm_drop_at <
	    lm->lm_win_start && lm->lm_win_n > 0) {
		lm->lm_ceil = 0;
		return;
	}
	if (now < lm->lm_ceil_until) {
		if (before < lm->lm_ceil && limiter_limit(lm) >= lm->lm_ceil)
			set_limit(lm, lm->lm_ceil - 0.001);
	} else if (limiter_limit(lm) > lm->lm_ceil &&
	    limiter_limit(lm) > before)
		set_limit(lm, (before > lm->lm_ceil ? before : lm->lm_ceil) +
		    0.999);
}

static void
window_close(struct limiter *lm, uint64_t now)
{
	double		 mean;
	int		 used = window_used(lm);
	unsigned int	 before = limiter_limit(lm);

	if (lm->lm_win_n > 0 && !lm->lm_warm) {
		/*
		 * The first window is the fastest answers of the first
		 * burst: requests all sent at once, the window closed on the
		 * first WIN_SAMPLES back, the slow ones still out. Its mean
		 * came out a tenth under the no-load latency (a 20 ms thread
		 * pool read 18.4 ms), and as the minimum it held the limit
		 * at half the knee until its bucket expired. Latency is
		 * learned from the next window on.
		 */
		lm->lm_warm = 1;
	} else if (lm->lm_win_n > 0) {
		mean = lm->lm_win_sum / lm->lm_win_n;
		if (lm->lm_short == 0)
			lm->lm_short = lm->lm_long = mean;
		lm->lm_short += SHORT_W * (mean - lm->lm_short);
		lm->lm_long += LONG_W * (mean - lm->lm_long);
		if (lm->lm_conf.algo == LIMITER_GRADIENT ||
		    lm->lm_conf.algo == LIMITER_VEGAS)
			baseline_offer(lm, now, lm->lm_short);
		switch (lm->lm_conf.algo) {
		case LIMITER_GRADIENT:
			update_gradient(lm, mean);
			break;
		case LIMITER_VEGAS:
			update_vegas(lm, mean);
			break;
		case LIMITER_AIMD:
			update_aimd(lm);
			break;
		case LIMITER_FIXED:
			break;
		}
		if (lm->lm_conf.algo != LIMITER_FIXED)
			ceiling(lm, before, now);
	}
	window_open(lm, now);
	if (limiter_limit(lm) > lm->lm_conf.min_limit) {
		lm->lm_floor_lat = 0;
		lm->lm_floor_run = 0;
	}
	if ((lm->lm_conf.algo == LIMITER_GRADIENT ||
	    lm->lm_conf.algo == LIMITER_VEGAS) && used &&
	    limiter_limit(lm) <= lm->lm_conf.min_limit &&
	    now - lm->lm_probe_ended >= PROBE_FLOOR_EVERY)
		probe_start(lm, now, 0);
}

/* An aligned probe is due: start it if the limit is in use, else skip. */
static void
probe_due(struct limiter *lm, uint64_t now)
{
	double	 slack = fmax(lm->lm_short, WIN_TIME);

	if (lm->lm_probing || now < lm->lm_probe_next)
		return;
	/* one that would start late is no longer with the others: skip */
	if ((lm->lm_conf.algo == LIMITER_GRADIENT ||
	    lm->lm_conf.algo == LIMITER_VEGAS) &&
	    now - lm->lm_probe_next <= slack)
		probe_start(lm, now, 1);
	else
		lm->lm_probe_next = next_aligned(lm, now);
}

/* A drop: back off, once per era of dispatches (see the invariants). */
static void
drop(struct limiter *lm, uint64_t now, uint64_t sent)
{
	unsigned int	 level;

	lm->lm_drops++;
	lm->lm_drop_at = now;
	if (sent >= lm->lm_win_start)
		lm->lm_win_drops++;
	if (lm->lm_conf.algo == LIMITER_FIXED)
		return;
	if (lm->lm_backoff_at != 0 && sent < lm->lm_backoff_at)
		return;
	level = limiter_limit(lm);
	/* the limit was full: this request was the level's (see CEIL_MIN) */
	if (lm->lm_inflight + 1 >= level) {
		if (lm->lm_ceil != 0 && level >= lm->lm_ceil)
			lm->lm_ceil_wait = lm->lm_ceil_wait * 2 > CEIL_MAX ?
			    CEIL_MAX : lm->lm_ceil_wait * 2;
		else {
			/* a first ceiling, or a lower one: wait from the start */
			lm->lm_ceil_wait = CEIL_MIN;
			lm->lm_ceil = level;
		}
		lm->lm_ceil_until = now + lm->lm_ceil_wait;
	}
	set_limit(lm, lm->lm_limit * lm->lm_conf.backoff);
	/* under the level that dropped, even from just under the next */
	if (lm->lm_conf.backoff < 1 && limiter_limit(lm) >= level)
		set_limit(lm, level - 0.001);
	lm->lm_backoff_at = now;
	lm->lm_slow = 0;
}

struct limiter *
limiter_new(const struct limiter_conf *conf, uint64_t now)
{
	struct limiter	*lm;

	if ((lm = calloc(1, sizeof(*lm))) == NULL)
		return NULL;
	lm->lm_conf = *conf;
	conf_fix(&lm->lm_conf);
	set_limit(lm, lm->lm_conf.limit);
	lm->lm_gradient = 1;
	lm->lm_slow = 1;
	lm->lm_base_epoch = now;
	lm->lm_probe_next = next_aligned(lm, now);
	window_open(lm, now);
	return lm;
}

void
limiter_free(struct limiter *lm)
{
	free(lm);
}

void
limiter_reconfigure(struct limiter *lm, const struct limiter_conf *conf,
    uint64_t now)
{
	struct limiter_conf	 c = *conf;

	conf_fix(&c);
	lm->lm_conf = c;
	if (c.algo == LIMITER_FIXED) {
		lm->lm_probing = 0;
		set_limit(lm, c.limit);
	} else
		set_limit(lm, lm->lm_limit);
	lm->lm_ceil = 0;
	window_open(lm, now);
}

int
limiter_acquire(struct limiter *lm, uint64_t now)
{
	if (lm->lm_probing && now - lm->lm_probe_start >= PROBE_MAX)
		probe_end(lm, now);
	if (lm->lm_inflight >= effective_limit(lm)) {
		/* refused: the limit is in use, whatever the peak says */
		if (lm->lm_win_peak < limiter_limit(lm))
			lm->lm_win_peak = limiter_limit(lm);
		return -1;
	}
	load_to(lm, now);
	lm->lm_inflight++;
	if (lm->lm_inflight > lm->lm_win_peak)
		lm->lm_win_peak = lm->lm_inflight;
	return 0;
}

void
limiter_take(struct limiter *lm, uint64_t now)
{
	load_to(lm, now);
	lm->lm_inflight++;
	if (lm->lm_inflight > lm->lm_win_peak)
		lm->lm_win_peak = lm->lm_inflight;
}

void
limiter_release(struct limiter *lm, uint64_t now, uint64_t latency_usec,
    enum limiter_outcome outcome)
{
	uint64_t	 sent = latency_usec <= now ? now - latency_usec : 0;

	load_to(lm, now);
	if (lm->lm_inflight > 0)
		lm->lm_inflight--;
	if (lm->lm_probing && now - lm->lm_probe_start >= PROBE_MAX)
		probe_end(lm, now);
	if (lm->lm_probing && lm->lm_probe_drained == 0 &&
	    lm->lm_inflight < effective_limit(lm))
		lm->lm_probe_drained = now;

	if (outcome == LIMITER_SUCCESS && lm->lm_conf.algo == LIMITER_AIMD &&
	    latency_usec > lm->lm_conf.aimd_latency_usec)
		outcome = LIMITER_DROPPED;
	/*
	 * A 500 that comes back in less than half the no-load latency was
	 * not served: the backend refuses past a limit of its own (an app
	 * out of database connections). Other errors say nothing of load,
	 * and are no latency sample either (a fast error page would drag
	 * the mean down and the limit up).
	 */
	if (outcome == LIMITER_FAILED)
		outcome = baseline(lm) > 0 && (double)latency_usec <
		    baseline(lm) / 2 ? LIMITER_DROPPED : LIMITER_IGNORED;
	switch (outcome) {
	case LIMITER_IGNORED:
	case LIMITER_FAILED:
		return;
	case LIMITER_DROPPED:
		drop(lm, now, sent);
		break;
	case LIMITER_SUCCESS:
		lm->lm_samples++;
		if (lm->lm_probing) {
			probe_sample(lm, now, sent, (double)latency_usec);
			return;
		}
		if (sent < lm->lm_win_start)
			return;		/* measures an older limit */
		lm->lm_win_n++;
		lm->lm_win_sum += (double)latency_usec;
		lm->lm_win_sq += (double)latency_usec * latency_usec;
		break;
	}
	if (!lm->lm_probing && window_ready(lm, now))
		window_close(lm, now);
	probe_due(lm, now);
}

/*
 * The caller reads the wall clock again now and then (shed.c: every
 * second with requests out): an offset within WALL_SLACK of the one known
 * is NTP's slewing, left alone, so that a refresh never moves a probe
 * that is due; a step of the clock re-aligns the next probe.
 */
#define WALL_SLACK	1000	/* usec */

void
limiter_set_wallclock(struct limiter *lm, uint64_t now, uint64_t wall)
{
	uint64_t	 off = wall - now;
	uint64_t	 d = off - lm->lm_wall_off;

	if (lm->lm_wall_set && (d < WALL_SLACK || -d < WALL_SLACK))
		return;
	lm->lm_wall_set = 1;
	lm->lm_wall_off = off;
	if (!lm->lm_probing)
		lm->lm_probe_next = next_aligned(lm, now);
}

unsigned int
limiter_limit(const struct limiter *lm)
{
	unsigned int	 l = (unsigned int)floor(lm->lm_limit);

	return l < lm->lm_conf.min_limit ? lm->lm_conf.min_limit : l;
}

unsigned int
limiter_inflight(const struct limiter *lm)
{
	return lm->lm_inflight;
}

void
limiter_state(const struct limiter *lm, struct limiter_state *st)
{
	memset(st, 0, sizeof(*st));
	st->limit = lm->lm_limit;
	st->inflight = lm->lm_inflight;
	st->min_rtt_usec = (uint64_t)baseline(lm);
	st->short_rtt_usec = (uint64_t)lm->lm_short;
	st->long_rtt_usec = (uint64_t)lm->lm_long;
	st->gradient = lm->lm_gradient;
	st->samples = lm->lm_samples;
	st->drops = lm->lm_drops;
}

const char *
limiter_algo_name(enum limiter_algo algo)
{
	switch (algo) {
	case LIMITER_FIXED:
		return "fixed";
	case LIMITER_AIMD:
		return "aimd";
	case LIMITER_VEGAS:
		return "vegas";
	case LIMITER_GRADIENT:
		return "gradient";
	}
	return "unknown";
}
