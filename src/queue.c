/*
 * queue.c: the bounded waiting room in front of the concurrency limit.
 *
 * Invariants:
 * - An item is on q_list[qi_prio] if and only if qi_queued is 1;
 *   q_len[p] counts q_list[p] and q_count is the sum of q_len[].
 * - Each list is in arrival order: qi_seq increases and qi_enqueued never
 *   decreases from head to tail (push clamps a clock that steps back to
 *   the latest push). Pop may take the tail, remove any item; neither
 *   reorders. So the head of a list is its oldest waiter and the tail its
 *   newest.
 * - At a given moment every waiter is allowed the same wait (timeout, or
 *   less under congestion), so if any waiter of a priority is overdue, the
 *   head of that list is: expiry and its timer look at QUEUE_NPRIO heads,
 *   never walk a list.
 * - The queue is congested once it has not been empty for codel_interval.
 *   While it is not empty, q_last_empty is the last time it was: the push
 *   that ended the empty spell, as it was empty until that instant. Only
 *   a push makes it non-empty, and nothing reads q_last_empty while it is
 *   empty, so when the last waiter left (which queue_remove() is not
 *   told) never matters. Eviction never empties it: the newcomer takes
 *   the evicted waiter's place.
 * - A waiter has waited too long when now - qi_enqueued >= its allowed
 *   wait: at exactly the allowed wait it is due, so queue_next_expiry()
 *   returns the first instant queue_expire() sheds it.
 * - timeout_usec 0 means no timeout. codel_target_usec or
 *   codel_interval_usec 0 turns CoDel off, and with it congestion, so
 *   adaptive LIFO too.
 */
#include <stdlib.h>

#include "queue.h"

#define NEVER	UINT64_MAX

struct queue {
	struct queue_conf	 q_conf;
	TAILQ_HEAD(queue_item_list, queue_item) q_list[QUEUE_NPRIO];
	size_t			 q_len[QUEUE_NPRIO];
	size_t			 q_count;
	uint64_t		 q_last_empty;	/* usec */
	uint64_t		 q_last_push;	/* usec, latest qi_enqueued */
	uint64_t		 q_seq;
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

static int
codel_on(const struct queue *q)
{
	return q->q_conf.codel_target_usec != 0 &&
	    q->q_conf.codel_interval_usec != 0;
}

static uint64_t
timeout_of(const struct queue *q)
{
	return q->q_conf.timeout_usec != 0 ? q->q_conf.timeout_usec : NEVER;
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
	q->q_last_empty = now;
	q->q_last_push = now;
	return q;
}

void
queue_free(struct queue *q)
{
	free(q);
}

/*
 * Waiters already queued stay, even past a smaller size; the new deadlines
 * apply to them from now on, since the allowed wait is computed when
 * checked.
 */
void
queue_reconfigure(struct queue *q, const struct queue_conf *conf)
{
	q->q_conf = *conf;
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
	} else if (q->q_count == 0)
		q->q_last_empty = q->q_last_push;

	it->qi_enqueued = q->q_last_push;
	it->qi_seq = q->q_seq++;
	it->qi_prio = prio;
	it->qi_queued = 1;
	TAILQ_INSERT_TAIL(&q->q_list[prio], it, qi_entry);
	q->q_len[prio]++;
	q->q_count++;
	return 0;
}

struct queue_item *
queue_pop(struct queue *q, uint64_t now)
{
	struct queue_item	*it;
	unsigned int		 p;
	int			 lifo;

	lifo = q->q_conf.adaptive_lifo && queue_congested(q, now);
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
	if ((it = oldest(q)) == NULL)
		return NULL;
	waited = since(it->qi_enqueued, now);
	if (waited >= timeout_of(q))
		*why = QUEUE_SHED_TIMEOUT;
	else if (queue_congested(q, now) &&
	    waited >= q->q_conf.codel_target_usec)
		*why = QUEUE_SHED_CODEL;
	else
		return NULL;
	unlink_item(q, it);
	return it;
}

/*
 * The first instant queue_expire() sheds the oldest waiter if nothing
 * else changes: its timeout, or its CoDel target once the queue is
 * congested, whichever comes first. 0 if nothing is due ever (empty, or
 * no timeout and CoDel off). The answer may be in the past: call
 * queue_expire() now.
 */
uint64_t
queue_next_expiry(const struct queue *q, uint64_t now)
{
	const struct queue_item	*it;
	uint64_t		 when, codel;

	if ((it = oldest(q)) == NULL)
		return 0;
	when = add_sat(it->qi_enqueued, timeout_of(q));
	if (codel_on(q)) {
		codel = add_sat(it->qi_enqueued, q->q_conf.codel_target_usec);
		if (!queue_congested(q, now)) {
			uint64_t	 congested = add_sat(q->q_last_empty,
			    q->q_conf.codel_interval_usec);

			if (congested > codel)
				codel = congested;
		}
		if (codel < when)
			when = codel;
	}
	return when == NEVER ? 0 : when;
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
queue_congested(const struct queue *q, uint64_t now)
{
	return codel_on(q) && q->q_count > 0 &&
	    since(q->q_last_empty, now) >= q->q_conf.codel_interval_usec;
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
