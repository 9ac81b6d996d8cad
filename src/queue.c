/*
 * queue.c: the bounded waiting room in front of the concurrency limit,
 * and the judge of overload.
 *
 * Invariants:
 * - An item is on q_list[qi_prio] if and only if qi_queued is 1;
 *   q_len[p] counts q_list[p] and q_count is the sum of q_len[].
 * - Each list is in arrival order: qi_seq increases and qi_enqueued never
 *   decreases from head to tail (push clamps a clock that steps back to
 *   the latest push). Pop may take the tail, remove any item; neither
 *   reorders. So the head of a list is its oldest waiter and the tail its
 *   newest.
 * - At a given moment every waiter is allowed the same wait, so if any
 *   waiter of a priority is overdue, the head of that list is: expiry and
 *   its timer look at QUEUE_NPRIO heads, never walk a list.
 * - Growth is judged on windows of at least interval_usec and GROW_MIN_OUT
 *   departures (or GROW_MAX_SPAN intervals): a window is in excess when
 *   its arrivals outnumber its departures by GROW_RATIO while the queue is
 *   not empty. GROW_ENTER windows in excess in a row make the queue
 *   growing, GROW_LEAVE without make it stable again. A closed loop of
 *   clients has exactly as many arrivals as departures once its start is
 *   over, so it is never growing unless refusals echo back as retries;
 *   open-loop arrivals past capacity are in excess in every window.
 * - A waiter has waited too long when now - qi_enqueued >= its allowed
 *   wait: at exactly that wait it is due. The longest wait applies always
 *   and needs no refusal budget; the target applies only while growing,
 *   and only with a token of the refusal budget.
 * - The refusal budget is a token bucket refilled at REFUSE_RATIO times
 *   the drain rate, at least REFUSE_FLOOR per second: refusals the queue
 *   chooses never outpace it, whatever the clients do.
 */
#include <math.h>
#include <stdlib.h>

#include "queue.h"

#define NEVER		UINT64_MAX
#define USEC		1000000.0

#define GROW_RATIO	1.25	/* arrivals / departures in excess */
#define GROW_MIN_OUT	16	/* departures in a window, at least */
#define GROW_MAX_SPAN	10	/* intervals: a window closes anyway */
#define GROW_ENTER	3	/* windows in excess to be growing */
#define GROW_LEAVE	2	/* windows without to be stable */
#define DEF_INTERVAL	100000	/* usec, when interval_usec is 0 */

#define RATE_TAU	1000000.0 /* usec: smoothing of the drain rate */
#define SVC_W		0.05	/* weight of a latency in the service time */
#define WAIT_MIN_SHARE	0.5	/* the longest wait is at least this x budget */
#define SVC_ROOM	2.0	/* x the service time left in the budget */

#define STABLE_MARGIN	1.5	/* predicted / longest wait to refuse */
#define REFUSE_RATIO	12.0	/* refusals per departure, at most */
#define REFUSE_FLOOR	200.0	/* refusals per second allowed anyway */
#define REFUSE_BURST	0.25	/* seconds of refusals saved up */
#define RETRY_MAX	60	/* Retry-After, seconds, at most */
#define RETRY_SPREAD	10.0	/* seconds of drain promised, at most */

struct queue {
	struct queue_conf	 q_conf;
	TAILQ_HEAD(queue_item_list, queue_item) q_list[QUEUE_NPRIO];
	size_t			 q_len[QUEUE_NPRIO];
	size_t			 q_count;
	uint64_t		 q_last_push;	/* usec, latest qi_enqueued */
	uint64_t		 q_seq;

	/* growth: the current window and the streaks */
	uint64_t		 q_win_start;
	unsigned int		 q_win_in, q_win_out;
	int			 q_win_waiters;	/* queue seen not empty */
	unsigned int		 q_excess, q_calm;
	uint64_t		 q_last_call;	/* tick() last ran */
	int			 q_growing;

	/* drain */
	double			 q_out_rate;	/* departures per usec */
	uint64_t		 q_out_at;	/* last departure */
	uint64_t		 q_first_in;	/* first arrival; 0: none */
	double			 q_in_rate;	/* arrivals per usec */
	uint64_t		 q_in_at;	/* last arrival */
	unsigned int		 q_slots;	/* limit at the last verdict */
	double			 q_svc;		/* usec, smoothed; 0: none */

	/* refusal budget and promises of Retry-After */
	double			 q_tokens;
	uint64_t		 q_tokens_at;
	double			 q_promised;
	uint64_t		 q_promised_at;
};

static uint64_t
add_sat(uint64_t a, uint64_t b)
{
	return a > NEVER - b ? NEVER : a + b;
}

static uint64_t
since(uint64_t then, uint64_t now)
{
	return now > then ? now - then : 0;
}

static uint64_t
interval_of(const struct queue *q)
{
	return q->q_conf.interval_usec != 0 ? q->q_conf.interval_usec :
	    DEF_INTERVAL;
}

static int
target_on(const struct queue *q)
{
	return q->q_conf.target_usec != 0 && q->q_conf.interval_usec != 0;
}

/*
 * The longest a waiter may wait: queue_timeout when given, else what the
 * budget leaves for the backend's answer (SVC_ROOM times its smoothed
 * latency, room for its slower answers too), but at least WAIT_MIN_SHARE
 * of the budget, so a backend slower than the budget still has a queue.
 */
static uint64_t
longest_wait(const struct queue *q)
{
	uint64_t	 b = q->q_conf.budget_usec, w, svc;

	if (q->q_conf.timeout_usec != 0)
		return q->q_conf.timeout_usec;
	if (b == 0)
		return NEVER;
	w = (uint64_t)(b * WAIT_MIN_SHARE);
	svc = (uint64_t)(SVC_ROOM * q->q_svc);
	if (svc < b && b - svc > w)
		w = b - svc;
	return w;
}

static uint64_t
allowed_wait(const struct queue *q)
{
	uint64_t	 w = longest_wait(q);

	if (q->q_growing && target_on(q) && q->q_conf.target_usec < w)
		return q->q_conf.target_usec;
	return w;
}

/*
 * An exponentially smoothed event rate, per usec: each event adds
 * 1 / RATE_TAU, and the sum decays with time constant RATE_TAU.
 */
static double
smoothed_rate(double rate, uint64_t last, uint64_t now)
{
	return rate * exp(-(double)since(last, now) / RATE_TAU) +
	    1 / RATE_TAU;
}

static double
decayed(double rate, uint64_t last, uint64_t now)
{
	return rate * exp(-(double)since(last, now) / RATE_TAU);
}

/*
 * Requests per usec that the backend takes from the queue: what departed
 * lately, or, when it is busier than it was (a burst after quiet), what
 * slots requests at the smoothed latency carry (Little's law). 0: unknown.
 */
static double
drain_rate(const struct queue *q, unsigned int slots, uint64_t now)
{
	double	 r = decayed(q->q_out_rate, q->q_out_at, now), little, seen;

	/*
	 * The smoothed rate starts from nothing: over its first RATE_TAU it
	 * would read low, and an underestimated drain refuses what could be
	 * served. Correct for the time it has been measuring: since demand
	 * first came.
	 */
	seen = (double)since(q->q_first_in, now);
	if (q->q_first_in != 0 && seen < 5 * RATE_TAU)
		r /= 1 - exp(-(seen > 1000 ? seen : 1000) / RATE_TAU);

	if (q->q_svc > 0) {
		little = slots / q->q_svc;
		if (little > r)
			r = little;
	}
	return r;
}


/*
 * More are waiting than can be served within the longest wait: some will
 * be refused whatever the order, and serving the newest first keeps the
 * wait of those served short (a closed loop of clients past the budget).
 */
static int
overdrawn(const struct queue *q, uint64_t now)
{
	double	 drain = drain_rate(q, q->q_slots, now);
	uint64_t	 w = longest_wait(q);

	return drain > 0 && w != NEVER && (double)q->q_count / drain >
	    (double)w;
}

static void
window_close(struct queue *q, uint64_t now)
{
	int	 excess;

	excess = q->q_win_waiters &&
	    q->q_win_in > GROW_RATIO * q->q_win_out + 1;
	if (excess) {
		q->q_excess++;
		q->q_calm = 0;
		if (q->q_excess >= GROW_ENTER)
			q->q_growing = 1;
	} else {
		q->q_calm++;
		q->q_excess = 0;
		if (q->q_calm >= GROW_LEAVE)
			q->q_growing = 0;
	}
	q->q_win_start = now;
	q->q_win_in = q->q_win_out = 0;
	q->q_win_waiters = q->q_count > 0;
}

/* Close the window if it is due; call before counting anything. */
static void
tick(struct queue *q, uint64_t now)
{
	uint64_t	 span = since(q->q_win_start, now);
	uint64_t	 quiet = since(q->q_last_call, now);
	uint64_t	 iv = interval_of(q);

	q->q_last_call = now;
	if (q->q_conf.interval_usec == 0) {	/* growth is off */
		q->q_growing = 0;
		q->q_win_start = now;
		q->q_win_in = q->q_win_out = 0;
		return;
	}
	if (span >= iv && (q->q_win_out >= GROW_MIN_OUT ||
	    span >= GROW_MAX_SPAN * iv)) {
		window_close(q, now);
		/*
		 * Nobody called for longer than two windows: the windows
		 * that passed unseen were quiet, and quiet is calm.
		 */
		if (quiet >= 2 * GROW_MAX_SPAN * iv) {
			q->q_excess = 0;
			q->q_calm = GROW_LEAVE;
			q->q_growing = 0;
		}
	}
	if (q->q_count > 0)
		q->q_win_waiters = 1;
}

static double
refuse_rate(const struct queue *q, unsigned int slots, uint64_t now)
{
	double	 r = REFUSE_RATIO * drain_rate(q, slots, now);

	return r > REFUSE_FLOOR / USEC ? r : REFUSE_FLOOR / USEC;
}

/* The tokens of the refusal budget as of now. */
static double
tokens_at(const struct queue *q, unsigned int slots, uint64_t now)
{
	double	 rate = refuse_rate(q, slots, now);
	double	 burst = rate * REFUSE_BURST * USEC, t;

	if (burst < 16)
		burst = 16;
	t = q->q_tokens + rate * (double)since(q->q_tokens_at, now);
	return t > burst ? burst : t;
}

/* Take a token of the refusal budget: 1 if there was one. */
static int
refusal_token(struct queue *q, unsigned int slots, uint64_t now)
{
	q->q_tokens = tokens_at(q, slots, now);
	q->q_tokens_at = now;
	if (q->q_tokens < 1)
		return 0;
	q->q_tokens -= 1;
	return 1;
}

/* The oldest waiter of all, or NULL if the queue is empty. */
static struct queue_item *
oldest(const struct queue *q)
{
	struct queue_item	*it, *best = NULL;
	unsigned int		 p;

	for (p = 0; p < QUEUE_NPRIO; p++) {
		it = TAILQ_FIRST(&q->q_list[p]);
		if (it != NULL && (best == NULL || it->qi_seq < best->qi_seq))
			best = it;
	}
	return best;
}

static void
unlink_item(struct queue *q, struct queue_item *it)
{
	TAILQ_REMOVE(&q->q_list[it->qi_prio], it, qi_entry);
	q->q_len[it->qi_prio]--;
	q->q_count--;
	it->qi_queued = 0;
}

struct queue *
queue_new(const struct queue_conf *conf, uint64_t now)
{
	struct queue	*q;
	unsigned int	 p;

	if ((q = calloc(1, sizeof(*q))) == NULL)
		return NULL;
	q->q_conf = *conf;
	for (p = 0; p < QUEUE_NPRIO; p++)
		TAILQ_INIT(&q->q_list[p]);
	q->q_last_push = now;
	q->q_win_start = now;
	q->q_last_call = now;
	q->q_out_at = now;
	q->q_in_at = now;
	q->q_slots = 1;
	q->q_tokens = 16;
	q->q_tokens_at = now;
	q->q_promised_at = now;
	return q;
}

void
queue_free(struct queue *q)
{
	free(q);
}

/*
 * Waiters already queued stay, even past a smaller size; the new waits
 * apply to them from now on, since the allowed wait is computed when
 * checked. What was learned (rates, growth, service time) carries over.
 */
void
queue_reconfigure(struct queue *q, const struct queue_conf *conf)
{
	q->q_conf = *conf;
	if (conf->interval_usec == 0) {		/* growth is off at once */
		q->q_growing = 0;
		q->q_excess = q->q_calm = 0;
	}
}

void
queue_arrive(struct queue *q, uint64_t now, int retry)
{
	tick(q, now);
	if (q->q_first_in == 0)
		q->q_first_in = now > 0 ? now : 1;
	if (!retry)
		q->q_win_in++;
	q->q_in_rate = smoothed_rate(q->q_in_rate, q->q_in_at, now);
	q->q_in_at = now;
}

void
queue_depart(struct queue *q, uint64_t now, uint64_t latency)
{
	tick(q, now);
	q->q_win_out++;
	q->q_out_rate = smoothed_rate(q->q_out_rate, q->q_out_at, now);
	q->q_out_at = now;
	if (latency > 0) {
		if (q->q_svc == 0)
			q->q_svc = (double)latency;
		else
			q->q_svc += SVC_W * ((double)latency - q->q_svc);
	}
}

enum queue_shed
queue_verdict(struct queue *q, unsigned int prio, unsigned int slots,
    uint64_t now, int retry)
{
	double		 drain, wait;
	size_t		 ahead = 0;
	unsigned int	 p;

	tick(q, now);
	q->q_slots = slots > 0 ? slots : 1;
	if (prio == 0 || retry)	/* critical, or back at once: waits */
		return QUEUE_SHED_NONE;
	if ((drain = drain_rate(q, slots, now)) <= 0)
		return QUEUE_SHED_NONE;	/* no refusal on a guess */
	for (p = 0; p <= prio && p < QUEUE_NPRIO; p++)
		ahead += q->q_len[p];
	wait = (double)(ahead + 1) / drain;
	/*
	 * A standing queue is refused at arrival only when the prediction
	 * is clearly past the longest wait: a stall of the backend or of the
	 * machine makes the drain look slow for a moment, and a waiter
	 * predicted a little late is still served, or shed at its deadline.
	 */
	if (wait <= (double)allowed_wait(q) *
	    (q->q_growing ? 1 : STABLE_MARGIN))
		return QUEUE_SHED_NONE;
	if (!refusal_token(q, slots, now))
		return QUEUE_SHED_NONE;	/* no storm: wait instead */
	return QUEUE_SHED_CODEL;
}

/*
 * When full, a newcomer may take the place of the newest waiter of the
 * lowest priority present, if that is lower than its own: the newest has
 * invested least in waiting. The queue never grows past its size this way,
 * and after a shrink it stays at its length until waiters leave.
 */
int
queue_push(struct queue *q, struct queue_item *it, unsigned int prio,
    uint64_t now, struct queue_item **evicted)
{
	struct queue_item	*victim = NULL;
	unsigned int		 p;

	*evicted = NULL;
	if (prio >= QUEUE_NPRIO)
		prio = QUEUE_NPRIO - 1;
	if (now > q->q_last_push)
		q->q_last_push = now;
	if (q->q_count >= q->q_conf.size) {
		for (p = QUEUE_NPRIO - 1; p > prio; p--) {
			if ((victim = TAILQ_LAST(&q->q_list[p],
			    queue_item_list)) != NULL)
				break;
		}
		if (victim == NULL)
			return -1;
		unlink_item(q, victim);
		*evicted = victim;
	}
	it->qi_enqueued = q->q_last_push;
	it->qi_seq = q->q_seq++;
	it->qi_prio = prio;
	it->qi_queued = 1;
	TAILQ_INSERT_TAIL(&q->q_list[prio], it, qi_entry);
	q->q_len[prio]++;
	q->q_count++;
	q->q_win_waiters = 1;
	return 0;
}

struct queue_item *
queue_pop(struct queue *q, uint64_t now)
{
	struct queue_item	*it;
	unsigned int		 p;
	int			 lifo;

	lifo = q->q_conf.adaptive_lifo && (queue_growing(q, now) ||
	    overdrawn(q, now));
	for (p = 0; p < QUEUE_NPRIO; p++) {
		if (lifo)
			it = TAILQ_LAST(&q->q_list[p], queue_item_list);
		else
			it = TAILQ_FIRST(&q->q_list[p]);
		if (it != NULL) {
			unlink_item(q, it);
			return it;
		}
	}
	return NULL;
}

/*
 * Shed the oldest waiter if it is overdue. Every waiter is allowed the
 * same wait, so if the oldest is not overdue, none is.
 */
struct queue_item *
queue_expire(struct queue *q, uint64_t now, enum queue_shed *why)
{
	struct queue_item	*it;
	uint64_t		 waited;

	*why = QUEUE_SHED_NONE;
	tick(q, now);
	if ((it = oldest(q)) == NULL)
		return NULL;
	waited = since(it->qi_enqueued, now);
	if (waited >= longest_wait(q))
		*why = QUEUE_SHED_TIMEOUT;
	else if (waited >= allowed_wait(q) &&
	    refusal_token(q, q->q_slots, now))
		*why = QUEUE_SHED_CODEL;
	else
		return NULL;
	unlink_item(q, it);
	return it;
}

/*
 * The first instant queue_expire() may shed the oldest waiter: its longest
 * wait; while growing, its target or, when the refusal budget is spent,
 * the next token; while the queue waits to be judged, the window's end.
 */
uint64_t
queue_next_expiry(const struct queue *q, uint64_t now)
{
	const struct queue_item	*it;
	uint64_t		 when, soft;
	double			 rate, tokens;

	if ((it = oldest(q)) == NULL)
		return 0;
	when = add_sat(it->qi_enqueued, longest_wait(q));
	if (target_on(q)) {
		if (q->q_growing) {
			soft = add_sat(it->qi_enqueued, q->q_conf.target_usec);
			tokens = tokens_at(q, q->q_slots, now);
			if (soft <= now && tokens < 1) {
				rate = refuse_rate(q, q->q_slots, now);
				soft = now + 1 + (uint64_t)((1 - tokens) / rate);
			}
		} else
			soft = add_sat(q->q_win_start, GROW_MAX_SPAN *
			    interval_of(q));
		if (soft < when)
			when = soft;
	}
	if (when == NEVER)
		return 0;
	return when < now ? now : when;
}

/*
 * A client hung up: drop its waiter. A no-op if it is no longer queued
 * (served, shed or evicted already), so the caller need not track that.
 */
void
queue_remove(struct queue *q, struct queue_item *it)
{
	if (it->qi_queued)
		unlink_item(q, it);
}

uint64_t
queue_retry_after(struct queue *q, unsigned int slots, uint64_t now)
{
	double		 drain = drain_rate(q, slots, now), secs;

	if (drain <= 0)
		return 1;
	q->q_promised -= drain * (double)since(q->q_promised_at, now);
	if (q->q_promised < 0)
		q->q_promised = 0;
	q->q_promised_at = now;
	secs = ((double)q->q_count + q->q_promised + 1) / drain / USEC;
	/*
	 * Clients that retry at once are refused again and again: their
	 * promises would push everyone's Retry-After out to RETRY_MAX. At
	 * most RETRY_SPREAD seconds of the backend's work is promised.
	 */
	if (q->q_promised < drain * RETRY_SPREAD * USEC)
		q->q_promised += 1;
	secs = ceil(secs);
	if (secs < 1)
		return 1;
	return secs > RETRY_MAX ? RETRY_MAX : (uint64_t)secs;
}

size_t
queue_length(const struct queue *q)
{
	return q->q_count;
}

size_t
queue_length_prio(const struct queue *q, unsigned int prio)
{
	return prio < QUEUE_NPRIO ? q->q_len[prio] : 0;
}

int
queue_growing(const struct queue *q, uint64_t now)
{
	(void)now;
	return q->q_growing && q->q_count > 0 && q->q_conf.interval_usec != 0;
}

void
queue_state(const struct queue *q, uint64_t now, struct queue_state *st)
{
	st->departure_rate = drain_rate(q, 0, now) * USEC;
	st->arrival_rate = decayed(q->q_in_rate, q->q_in_at, now) * USEC;
	st->service_usec = (uint64_t)q->q_svc;
	st->wait_usec = q->q_count > 0 ? allowed_wait(q) : longest_wait(q);
	st->growing = queue_growing(q, now);
}

/* The Spillway-Reason values the proxy sends. */
const char *
queue_shed_name(enum queue_shed why)
{
	switch (why) {
	case QUEUE_SHED_NONE:
		return "none";
	case QUEUE_SHED_FULL:
		return "queue_full";
	case QUEUE_SHED_TIMEOUT:
		return "queue_timeout";
	case QUEUE_SHED_CODEL:
		return "overloaded";
	}
	return "unknown";
}
