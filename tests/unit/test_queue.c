/* Unit tests of the waiting queue, on a fake clock (microseconds). */
#include <stdint.h>
#include <time.h>

#include "queue.h"
#include "tap.h"

#define MS	1000ULL
#define SEC	1000000ULL
#define T0	(1000 * SEC)	/* far from 0, so no test leans on it */

static struct queue_conf
conf_of(size_t size, uint64_t timeout, uint64_t target, uint64_t interval,
    int lifo)
{
	struct queue_conf	 c;

	c.size = size;
	c.timeout_usec = timeout;
	c.codel_target_usec = target;
	c.codel_interval_usec = interval;
	c.adaptive_lifo = lifo;
	return c;
}

/* Push that must succeed without evicting anyone. */
static void
push_ok(struct queue *q, struct queue_item *it, unsigned int prio,
    uint64_t now)
{
	struct queue_item	*ev = it;

	CHECK_EQ_INT(queue_push(q, it, prio, now, &ev), 0);
	CHECK(ev == NULL);
}

static void
test_shed_names(void)
{
	CHECK_EQ_STR(queue_shed_name(QUEUE_SHED_NONE), "none");
	CHECK_EQ_STR(queue_shed_name(QUEUE_SHED_FULL), "queue_full");
	CHECK_EQ_STR(queue_shed_name(QUEUE_SHED_TIMEOUT), "queue_timeout");
	CHECK_EQ_STR(queue_shed_name(QUEUE_SHED_CODEL), "overloaded");
}

static void
test_empty(void)
{
	struct queue_conf	 c = conf_of(4, SEC, 5 * MS, 100 * MS, 1);
	struct queue		*q = queue_new(&c, T0);
	enum queue_shed		 why = QUEUE_SHED_FULL;

	CHECK(queue_pop(q, T0) == NULL);
	CHECK(queue_expire(q, T0 + 10 * SEC, &why) == NULL);
	CHECK_EQ_INT(why, QUEUE_SHED_NONE);
	CHECK_EQ_INT(queue_next_expiry(q, T0), 0);
	CHECK_EQ_INT(queue_length(q), 0);
	CHECK(!queue_congested(q, T0 + 10 * SEC));
	queue_free(q);
	queue_free(NULL);
}

static void
test_priority_order(void)
{
	struct queue_conf	 c = conf_of(8, SEC, 0, 0, 0);
	struct queue		*q = queue_new(&c, T0);
	struct queue_item	 it[6];
	static const unsigned	 prio[6] = { 2, 1, 0, 2, 0, 1 };
	static const int	 want[6] = { 2, 4, 1, 5, 0, 3 };
	int			 i;

	for (i = 0; i < 6; i++)
		push_ok(q, &it[i], prio[i], T0 + i);
	for (i = 0; i < 6; i++)
		CHECK(queue_pop(q, T0 + 10) == &it[want[i]]);
	CHECK(queue_pop(q, T0 + 10) == NULL);
	queue_free(q);
}

static void
test_fifo_within_priority(void)
{
	struct queue_conf	 c = conf_of(100, SEC, 5 * MS, 100 * MS, 1);
	struct queue		*q = queue_new(&c, T0);
	struct queue_item	 it[50];
	int			 i;

	for (i = 0; i < 50; i++) {
		push_ok(q, &it[i], 1, T0 + i);
		CHECK_EQ_INT(it[i].qi_enqueued, T0 + i);
		CHECK_EQ_INT(it[i].qi_prio, 1);
		CHECK_EQ_INT(it[i].qi_queued, 1);
		if (i > 0)
			CHECK(it[i].qi_seq > it[i - 1].qi_seq);
	}
	/* Adaptive LIFO is on but the queue is not congested yet. */
	for (i = 0; i < 50; i++) {
		CHECK(!queue_congested(q, T0 + MS));
		CHECK(queue_pop(q, T0 + MS) == &it[i]);
		CHECK_EQ_INT(it[i].qi_queued, 0);
	}
	queue_free(q);
}

static void
test_prio_clamped(void)
{
	struct queue_conf	 c = conf_of(4, SEC, 0, 0, 0);
	struct queue		*q = queue_new(&c, T0);
	struct queue_item	 a, b;

	push_ok(q, &a, 7, T0);
	push_ok(q, &b, 2, T0);
	CHECK_EQ_INT(a.qi_prio, QUEUE_NPRIO - 1);
	CHECK_EQ_INT(queue_length_prio(q, QUEUE_NPRIO - 1), 2);
	CHECK_EQ_INT(queue_length_prio(q, 7), 0);
	queue_free(q);
}

static void
test_lifo_when_congested(void)
{
	struct queue_conf	 c = conf_of(100, 10 * SEC, 50 * MS, 100 * MS, 1);
	struct queue		*q = queue_new(&c, T0);
	struct queue_item	 it[10], crit;
	uint64_t		 now;
	int			 i;

	for (i = 0; i < 10; i++)
		push_ok(q, &it[i], 1, T0 + i * 20 * MS);
	now = T0 + 100 * MS;	/* not empty since T0: congested */
	CHECK(queue_congested(q, now));
	CHECK(!queue_congested(q, now - 1));
	push_ok(q, &crit, 0, now);
	CHECK(queue_pop(q, now) == &crit);	/* priority still first */
	CHECK(queue_pop(q, now) == &it[9]);
	CHECK(queue_pop(q, now) == &it[8]);
	CHECK(queue_pop(q, now) == &it[7]);
	queue_free(q);
}

static void
test_fifo_when_lifo_off(void)
{
	struct queue_conf	 c = conf_of(100, 10 * SEC, 50 * MS, 100 * MS, 0);
	struct queue		*q = queue_new(&c, T0);
	struct queue_item	 it[3];
	int			 i;

	for (i = 0; i < 3; i++)
		push_ok(q, &it[i], 1, T0);
	CHECK(queue_congested(q, T0 + SEC));
	for (i = 0; i < 3; i++)
		CHECK(queue_pop(q, T0 + SEC) == &it[i]);
	queue_free(q);
}

static void
test_size_zero(void)
{
	struct queue_conf	 c = conf_of(0, SEC, 0, 0, 0);
	struct queue		*q = queue_new(&c, T0);
	struct queue_item	 it = { .qi_queued = 0 }, *ev = &it;
	unsigned int		 p;

	for (p = 0; p < QUEUE_NPRIO; p++) {
		ev = &it;
		CHECK_EQ_INT(queue_push(q, &it, p, T0, &ev), -1);
		CHECK(ev == NULL);
	}
	CHECK_EQ_INT(queue_length(q), 0);
	CHECK_EQ_INT(it.qi_queued, 0);
	queue_free(q);
}

static void
test_full_evicts_newest_lowest(void)
{
	struct queue_conf	 c = conf_of(4, SEC, 0, 0, 0);
	struct queue		*q = queue_new(&c, T0);
	struct queue_item	 n1, s1, s2, n2, crit, crit2, *ev;

	push_ok(q, &n1, 1, T0);
	push_ok(q, &s1, 2, T0 + 1);
	push_ok(q, &s2, 2, T0 + 2);
	push_ok(q, &n2, 1, T0 + 3);
	/* Normal pushes out the newest sheddable, not the oldest. */
	CHECK_EQ_INT(queue_push(q, &crit, 1, T0 + 4, &ev), 0);
	CHECK(ev == &s2);
	CHECK_EQ_INT(s2.qi_queued, 0);
	CHECK_EQ_INT(queue_length(q), 4);
	/* Critical pushes out the lowest priority present: sheddable. */
	CHECK_EQ_INT(queue_push(q, &crit2, 0, T0 + 5, &ev), 0);
	CHECK(ev == &s1);
	/* Then, with no sheddable left, the newest normal. */
	CHECK_EQ_INT(queue_push(q, &s2, 0, T0 + 6, &ev), 0);
	CHECK(ev == &crit);
	CHECK_EQ_INT(queue_length_prio(q, 0), 2);
	CHECK_EQ_INT(queue_length_prio(q, 1), 2);
	CHECK_EQ_INT(queue_length_prio(q, 2), 0);
	queue_free(q);
}

static void
test_full_refuses_equal_or_lower(void)
{
	struct queue_conf	 c = conf_of(2, SEC, 0, 0, 0);
	struct queue		*q = queue_new(&c, T0);
	struct queue_item	 a, b, x = { .qi_queued = 0 }, *ev;

	push_ok(q, &a, 1, T0);
	push_ok(q, &b, 1, T0);
	ev = &a;
	CHECK_EQ_INT(queue_push(q, &x, 1, T0, &ev), -1);
	CHECK(ev == NULL);
	ev = &a;
	CHECK_EQ_INT(queue_push(q, &x, 2, T0, &ev), -1);
	CHECK(ev == NULL);
	CHECK_EQ_INT(x.qi_queued, 0);
	CHECK_EQ_INT(queue_length(q), 2);
	CHECK(a.qi_queued && b.qi_queued);
	queue_free(q);
}

/* Due when the wait reaches the timeout: at timeout - 1 it is not. */
static void
test_timeout_boundary(void)
{
	struct queue_conf	 c = conf_of(4, 300 * MS, 0, 0, 0);
	struct queue		*q = queue_new(&c, T0);
	struct queue_item	 a, b;
	enum queue_shed		 why;

	push_ok(q, &a, 1, T0);
	push_ok(q, &b, 1, T0 + 10);
	CHECK_EQ_INT(queue_next_expiry(q, T0), T0 + 300 * MS);
	CHECK(queue_expire(q, T0 + 300 * MS - 1, &why) == NULL);
	CHECK_EQ_INT(why, QUEUE_SHED_NONE);
	CHECK(queue_expire(q, T0 + 300 * MS, &why) == &a);
	CHECK_EQ_INT(why, QUEUE_SHED_TIMEOUT);
	CHECK_EQ_INT(a.qi_queued, 0);
	CHECK(queue_expire(q, T0 + 300 * MS, &why) == NULL);
	CHECK_EQ_INT(queue_next_expiry(q, T0 + 300 * MS), T0 + 10 + 300 * MS);
	CHECK(queue_expire(q, T0 + 300 * MS + 10, &why) == &b);
	CHECK_EQ_INT(queue_next_expiry(q, T0 + SEC), 0);
	queue_free(q);
}

/* A timeout of 0 is none: with CoDel off, waiters wait until served. */
static void
test_timeout_zero_is_none(void)
{
	struct queue_conf	 c = conf_of(4, 0, 0, 0, 0);
	struct queue		*q = queue_new(&c, T0);
	struct queue_item	 a;
	enum queue_shed		 why;

	push_ok(q, &a, 1, T0);
	CHECK(queue_expire(q, T0 + 3600 * SEC, &why) == NULL);
	CHECK_EQ_INT(queue_next_expiry(q, T0), 0);
	queue_free(q);
}

/* Oldest first, whatever its priority. */
static void
test_expire_oldest_first(void)
{
	struct queue_conf	 c = conf_of(8, 100 * MS, 0, 0, 0);
	struct queue		*q = queue_new(&c, T0);
	struct queue_item	 s, n, k;
	enum queue_shed		 why;

	push_ok(q, &s, 2, T0);
	push_ok(q, &n, 1, T0 + 1);
	push_ok(q, &k, 0, T0 + 2);
	CHECK(queue_expire(q, T0 + SEC, &why) == &s);
	CHECK(queue_expire(q, T0 + SEC, &why) == &n);
	CHECK(queue_expire(q, T0 + SEC, &why) == &k);
	CHECK(queue_expire(q, T0 + SEC, &why) == NULL);
	queue_free(q);
}

/*
 * A standing queue: one waiter is served every 20ms, one arrives every
 * 10ms. Once not empty for the interval, waiters older than the target
 * are shed as overloaded; ones younger than the target are not.
 */
static void
test_codel_sheds_old_waiters(void)
{
	struct queue_conf	 c = conf_of(100, 10 * SEC, 30 * MS, 100 * MS, 0);
	struct queue		*q = queue_new(&c, T0);
	struct queue_item	 it[20], *x;
	enum queue_shed		 why;
	uint64_t		 now;
	int			 i;

	for (i = 0; i < 10; i++)
		push_ok(q, &it[i], 1, T0 + i * 10 * MS);
	/* it[0..9] arrived at T0..T0+90ms. Before the interval: nothing. */
	now = T0 + 100 * MS - 1;
	CHECK(!queue_congested(q, now));
	CHECK(queue_expire(q, now, &why) == NULL);
	CHECK_EQ_INT(queue_next_expiry(q, T0), T0 + 100 * MS);
	now = T0 + 100 * MS;
	CHECK(queue_congested(q, now));
	/* Waited >= 30ms: it[0..7] (it[7] arrived at 70ms, exactly 30ms). */
	for (i = 0; i < 8; i++) {
		x = queue_expire(q, now, &why);
		CHECK(x == &it[i]);
		CHECK_EQ_INT(why, QUEUE_SHED_CODEL);
	}
	CHECK(queue_expire(q, now, &why) == NULL);
	CHECK_EQ_INT(queue_length(q), 2);
	/* Already congested: it[8] is due at its target. */
	CHECK_EQ_INT(queue_next_expiry(q, now), T0 + 80 * MS + 30 * MS);
	/* A newcomer under congestion is not shed before its target. */
	push_ok(q, &it[10], 1, now);
	CHECK(queue_expire(q, now + 30 * MS - 1, &why) == &it[8]);
	CHECK(queue_expire(q, now + 30 * MS - 1, &why) == &it[9]);
	CHECK(queue_expire(q, now + 30 * MS - 1, &why) == NULL);
	CHECK(queue_expire(q, now + 30 * MS, &why) == &it[10]);
	CHECK_EQ_INT(why, QUEUE_SHED_CODEL);
	queue_free(q);
}

/* A timeout shorter than the target wins, and is reported as timeout. */
static void
test_timeout_below_target(void)
{
	struct queue_conf	 c = conf_of(4, 20 * MS, 50 * MS, 10 * MS, 0);
	struct queue		*q = queue_new(&c, T0);
	struct queue_item	 a;
	enum queue_shed		 why;

	push_ok(q, &a, 1, T0);
	CHECK_EQ_INT(queue_next_expiry(q, T0), T0 + 20 * MS);
	CHECK(queue_expire(q, T0 + 20 * MS - 1, &why) == NULL);
	CHECK(queue_expire(q, T0 + 20 * MS, &why) == &a);
	CHECK_EQ_INT(why, QUEUE_SHED_TIMEOUT);
	queue_free(q);
}

static void
test_congestion_ends_when_empty(void)
{
	struct queue_conf	 c = conf_of(4, 10 * SEC, 30 * MS, 100 * MS, 1);
	struct queue		*q = queue_new(&c, T0);
	struct queue_item	 a, b, c1, c2;
	enum queue_shed		 why;
	uint64_t		 now = T0 + 200 * MS;

	push_ok(q, &a, 1, T0);
	push_ok(q, &b, 1, T0 + 190 * MS);
	CHECK(queue_congested(q, now));
	CHECK(queue_pop(q, now) == &b);		/* LIFO */
	CHECK(queue_expire(q, now, &why) == &a);
	CHECK_EQ_INT(why, QUEUE_SHED_CODEL);
	CHECK(!queue_congested(q, now));	/* empty */
	/* A fresh spell: not congested until it lasts the interval. */
	push_ok(q, &c1, 1, now + 50 * MS);
	push_ok(q, &c2, 1, now + 60 * MS);
	CHECK(!queue_congested(q, now + 149 * MS));
	CHECK(queue_expire(q, now + 149 * MS, &why) == NULL);
	CHECK(queue_pop(q, now + 149 * MS) == &c1);	/* FIFO again */
	CHECK(queue_congested(q, now + 150 * MS));
	queue_free(q);
}

static void
test_codel_off(void)
{
	struct queue_conf	 c = conf_of(4, 10 * SEC, 0, 100 * MS, 1);
	struct queue		*q = queue_new(&c, T0);
	struct queue_item	 a, b;
	enum queue_shed		 why;

	push_ok(q, &a, 1, T0);
	push_ok(q, &b, 1, T0);
	CHECK(!queue_congested(q, T0 + SEC));
	CHECK(queue_expire(q, T0 + SEC, &why) == NULL);
	CHECK_EQ_INT(queue_next_expiry(q, T0 + SEC), T0 + 10 * SEC);
	c = conf_of(4, 10 * SEC, 30 * MS, 0, 1);
	queue_reconfigure(q, &c);
	CHECK(!queue_congested(q, T0 + SEC));
	CHECK(queue_pop(q, T0 + SEC) == &a);	/* no congestion: FIFO */
	CHECK(queue_expire(q, T0 + SEC, &why) == NULL);
	queue_free(q);
}

static void
test_next_expiry_codel(void)
{
	struct queue_conf	 c = conf_of(4, 10 * SEC, 30 * MS, 100 * MS, 0);
	struct queue		*q = queue_new(&c, T0);
	struct queue_item	 a, b;

	push_ok(q, &a, 2, T0 + 50 * MS);	/* empty until T0 + 50ms */
	push_ok(q, &b, 0, T0 + 120 * MS);
	/* Congested at 150ms; a is past its target by then. */
	CHECK_EQ_INT(queue_next_expiry(q, T0 + 120 * MS), T0 + 150 * MS);
	CHECK(queue_pop(q, T0 + 120 * MS) == &b);
	CHECK(queue_pop(q, T0 + 120 * MS) == &a);
	/* Empty at 120ms; a newcomer at 130ms is young when congested. */
	push_ok(q, &a, 1, T0 + 130 * MS);
	push_ok(q, &b, 1, T0 + 200 * MS);
	CHECK_EQ_INT(queue_next_expiry(q, T0 + 200 * MS), T0 + 230 * MS);
	queue_free(q);
}

static void
test_remove_middle(void)
{
	struct queue_conf	 c = conf_of(8, SEC, 0, 0, 0);
	struct queue		*q = queue_new(&c, T0);
	struct queue_item	 it[5];
	int			 i;

	for (i = 0; i < 5; i++)
		push_ok(q, &it[i], 1, T0 + i);
	queue_remove(q, &it[2]);
	CHECK_EQ_INT(it[2].qi_queued, 0);
	CHECK_EQ_INT(queue_length(q), 4);
	CHECK_EQ_INT(queue_length_prio(q, 1), 4);
	queue_remove(q, &it[2]);		/* again: a no-op */
	CHECK_EQ_INT(queue_length(q), 4);
	queue_remove(q, &it[0]);		/* the head */
	CHECK(queue_pop(q, T0) == &it[1]);
	CHECK(queue_pop(q, T0) == &it[3]);
	queue_remove(q, &it[1]);		/* served: a no-op */
	CHECK(queue_pop(q, T0) == &it[4]);
	CHECK(queue_pop(q, T0) == NULL);
	CHECK_EQ_INT(queue_length(q), 0);
	queue_free(q);
}

/* Removing the last waiter ends congestion, as pop and expiry do. */
static void
test_remove_last_ends_congestion(void)
{
	struct queue_conf	 c = conf_of(8, 10 * SEC, 30 * MS, 100 * MS, 0);
	struct queue		*q = queue_new(&c, T0);
	struct queue_item	 a, b;

	push_ok(q, &a, 1, T0);
	CHECK(queue_congested(q, T0 + SEC));
	queue_remove(q, &a);
	CHECK(!queue_congested(q, T0 + SEC));
	push_ok(q, &b, 1, T0 + 2 * SEC);
	CHECK(!queue_congested(q, T0 + 2 * SEC + 99 * MS));
	CHECK(queue_congested(q, T0 + 2 * SEC + 100 * MS));
	queue_free(q);
}

static void
test_reconfigure_shrink(void)
{
	struct queue_conf	 c = conf_of(6, SEC, 0, 0, 0);
	struct queue		*q = queue_new(&c, T0);
	struct queue_item	 it[6], x, *ev;
	enum queue_shed		 why;
	int			 i;

	for (i = 0; i < 6; i++)
		push_ok(q, &it[i], i < 3 ? 1 : 2, T0);
	c = conf_of(3, 100 * MS, 0, 0, 0);
	queue_reconfigure(q, &c);
	CHECK_EQ_INT(queue_length(q), 6);	/* nobody dropped */
	CHECK_EQ_INT(queue_push(q, &x, 1, T0, &ev), 0);	/* a swap */
	CHECK(ev == &it[5]);
	CHECK_EQ_INT(queue_length(q), 6);
	queue_pop(q, T0);
	queue_pop(q, T0);
	queue_pop(q, T0);
	CHECK_EQ_INT(queue_push(q, &it[0], 2, T0, &ev), -1);	/* 3 >= 3 */
	queue_pop(q, T0);
	push_ok(q, &it[0], 2, T0);
	/* The new, shorter timeout applies to those already waiting. */
	CHECK_EQ_INT(queue_next_expiry(q, T0), T0 + 100 * MS);
	CHECK(queue_expire(q, T0 + 100 * MS, &why) == &it[3]);
	CHECK_EQ_INT(why, QUEUE_SHED_TIMEOUT);
	queue_free(q);
}

static void
test_lengths(void)
{
	struct queue_conf	 c = conf_of(10, SEC, 0, 0, 0);
	struct queue		*q = queue_new(&c, T0);
	struct queue_item	 it[6];
	enum queue_shed		 why;
	int			 i;

	for (i = 0; i < 6; i++)
		push_ok(q, &it[i], i % 3, T0 + i);
	CHECK_EQ_INT(queue_length(q), 6);
	for (i = 0; i < QUEUE_NPRIO; i++)
		CHECK_EQ_INT(queue_length_prio(q, i), 2);
	queue_pop(q, T0);
	queue_remove(q, &it[4]);
	CHECK(queue_expire(q, T0 + SEC + 1, &why) == &it[1]);
	CHECK_EQ_INT(queue_length_prio(q, 0), 1);
	CHECK_EQ_INT(queue_length_prio(q, 1), 0);
	CHECK_EQ_INT(queue_length_prio(q, 2), 2);
	CHECK_EQ_INT(queue_length(q), 3);
	queue_free(q);
}

/* A clock that steps back neither reorders waiters nor sheds early. */
static void
test_clock_backwards(void)
{
	struct queue_conf	 c = conf_of(4, 100 * MS, 0, 0, 0);
	struct queue		*q = queue_new(&c, T0);
	struct queue_item	 a, b;
	enum queue_shed		 why;

	push_ok(q, &a, 1, T0 + SEC);
	push_ok(q, &b, 1, T0);
	CHECK(b.qi_enqueued >= a.qi_enqueued);
	CHECK(queue_expire(q, T0, &why) == NULL);
	CHECK(queue_expire(q, T0 + SEC + 100 * MS, &why) == &a);
	CHECK(queue_expire(q, T0 + SEC + 100 * MS, &why) == &b);
	queue_free(q);
}

/*
 * Random pushes, pops, hang-ups, reloads and time steps against a model
 * that checks every waiter, not just the heads. The caller's timer is
 * played out: after draining queue_expire(), queue_next_expiry() must be
 * in the future; nothing is due a microsecond before it, something is
 * due at it.
 */
#define NITEMS	48

struct model {
	struct queue		*q;
	struct queue_conf	 conf;
	struct queue_item	 it[NITEMS];
	uint64_t		 seq[NITEMS];
	uint64_t		 next_seq;
	uint64_t		 last_empty;
	uint64_t		 now;
};

static uint64_t	 rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t
rng(uint64_t n)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state % n;
}

static size_t
m_count(const struct model *m)
{
	size_t	 i, n = 0;

	for (i = 0; i < NITEMS; i++)
		n += m->it[i].qi_queued != 0;
	return n;
}

static int
m_codel(const struct model *m)
{
	return m->conf.codel_target_usec && m->conf.codel_interval_usec;
}

static int
m_congested(const struct model *m, uint64_t t)
{
	return m_codel(m) && m_count(m) > 0 &&
	    t - m->last_empty >= m->conf.codel_interval_usec;
}

/* Is waiter i due at t? */
static int
m_due(const struct model *m, int i, uint64_t t)
{
	uint64_t	 waited = t - m->it[i].qi_enqueued;

	if (m->conf.timeout_usec && waited >= m->conf.timeout_usec)
		return 1;
	return m_congested(m, t) && waited >= m->conf.codel_target_usec;
}

static int
m_any_due(const struct model *m, uint64_t t)
{
	int	 i;

	for (i = 0; i < NITEMS; i++)
		if (m->it[i].qi_queued && m_due(m, i, t))
			return 1;
	return 0;
}

/* The queued waiter of prio p (or any, if p < 0) with the least or most seq. */
static int
m_pick(const struct model *m, int p, int newest)
{
	int	 i, best = -1;

	for (i = 0; i < NITEMS; i++) {
		if (!m->it[i].qi_queued || (p >= 0 && (int)m->it[i].qi_prio != p))
			continue;
		if (best < 0 || (newest ? m->seq[i] > m->seq[best] :
		    m->seq[i] < m->seq[best]))
			best = i;
	}
	return best;
}

static void
m_expire_all(struct model *m)
{
	struct queue_item	*x;
	enum queue_shed		 why, want_why;
	int			 old, due;

	for (;;) {
		old = m_pick(m, -1, 0);
		due = old >= 0 && m_due(m, old, m->now);
		want_why = QUEUE_SHED_CODEL;
		if (due && m->conf.timeout_usec &&
		    m->now - m->it[old].qi_enqueued >= m->conf.timeout_usec)
			want_why = QUEUE_SHED_TIMEOUT;
		x = queue_expire(m->q, m->now, &why);
		CHECK(due ? x == &m->it[old] : x == NULL);
		if (x == NULL)
			break;
		CHECK_EQ_INT(why, want_why);
	}
	CHECK(!m_any_due(m, m->now));
}

/* Move the clock to t, firing the caller's timer on the way. */
static void
m_advance(struct model *m, uint64_t t)
{
	struct queue_item	*x;
	enum queue_shed		 why;
	uint64_t		 nx;
	int			 want;

	for (;;) {
		m_expire_all(m);
		if (m_count(m) == 0)
			m->last_empty = m->now;
		nx = queue_next_expiry(m->q, m->now);
		if (m_count(m) == 0)
			CHECK_EQ_INT(nx, 0);
		if (nx == 0) {
			CHECK(m_count(m) == 0 || !m_any_due(m, t + 100 * SEC));
			break;
		}
		CHECK(nx > m->now);
		if (nx > t)
			break;
		CHECK(!m_any_due(m, nx - 1));
		CHECK(queue_expire(m->q, nx - 1, &why) == NULL);
		CHECK(m_any_due(m, nx));
		m->now = nx;
		want = m_pick(m, -1, 0);
		x = queue_expire(m->q, m->now, &why);
		CHECK(x != NULL && x == &m->it[want]);
		if (x == NULL)
			break;
	}
	if (t > m->now)
		m->now = t;
	if (m_count(m) == 0)
		m->last_empty = m->now;
}

static void
m_push(struct model *m)
{
	struct queue_item	*ev;
	int			 i = rng(NITEMS), victim = -1, full, lp, rc;
	unsigned int		 prio = rng(QUEUE_NPRIO + 1), p;

	if (m->it[i].qi_queued)
		return;
	p = prio < QUEUE_NPRIO ? prio : QUEUE_NPRIO - 1;
	full = m_count(m) >= m->conf.size;
	for (lp = QUEUE_NPRIO - 1; full && lp > (int)p && victim < 0; lp--)
		victim = m_pick(m, lp, 1);
	if (m_count(m) == 0)
		m->last_empty = m->now;
	rc = queue_push(m->q, &m->it[i], prio, m->now, &ev);
	if (full && victim < 0) {
		CHECK_EQ_INT(rc, -1);
		CHECK(ev == NULL);
		return;
	}
	CHECK_EQ_INT(rc, 0);
	CHECK(victim < 0 ? ev == NULL : ev == &m->it[victim]);
	CHECK_EQ_INT(m->it[i].qi_prio, p);
	CHECK_EQ_INT(m->it[i].qi_enqueued, m->now);
	m->seq[i] = m->next_seq++;
}

static void
m_pop(struct model *m)
{
	struct queue_item	*x;
	int			 lifo, p, want = -1;

	lifo = m->conf.adaptive_lifo && m_congested(m, m->now);
	for (p = 0; p < QUEUE_NPRIO && want < 0; p++)
		want = m_pick(m, p, lifo);
	x = queue_pop(m->q, m->now);
	CHECK(want < 0 ? x == NULL : x == &m->it[want]);
}

static void
m_reconfigure(struct model *m)
{
	static const uint64_t	 timeouts[] = { 0, 1, 5 * MS, 50 * MS, SEC };
	static const uint64_t	 targets[] = { 0, 1, 2 * MS, 20 * MS, 2 * SEC };
	static const uint64_t	 intervals[] = { 0, 1, 10 * MS, 100 * MS };

	m->conf = conf_of(rng(NITEMS + 4), timeouts[rng(5)], targets[rng(5)],
	    intervals[rng(4)], rng(2));
	queue_reconfigure(m->q, &m->conf);
}

static void
test_next_expiry_property(void)
{
	static struct model	 m;
	int			 step, i;

	memset(&m, 0, sizeof(m));
	m.now = m.last_empty = T0;
	m.conf = conf_of(16, 50 * MS, 2 * MS, 10 * MS, 1);
	m.q = queue_new(&m.conf, m.now);
	for (step = 0; step < 300000; step++) {
		switch (rng(10)) {
		case 0:
		case 1:
		case 2:
			m_push(&m);
			break;
		case 3:
		case 4:
			m_pop(&m);
			break;
		case 5:
			i = rng(NITEMS);
			queue_remove(m.q, &m.it[i]);
			CHECK_EQ_INT(m.it[i].qi_queued, 0);
			break;
		case 6:
			if (rng(100) == 0)
				m_reconfigure(&m);
			break;
		default:
			m_advance(&m, m.now + rng(rng(2) ? 3 * MS : 200 * MS));
			break;
		}
		if (m_count(&m) == 0)
			m.last_empty = m.now;
		CHECK_EQ_INT(queue_length(m.q), m_count(&m));
		CHECK_EQ_INT(queue_congested(m.q, m.now),
		    m_congested(&m, m.now));
		if (tap_cur_failed)
			break;
	}
	queue_free(m.q);
}

static double
elapsed(const struct timespec *a)
{
	struct timespec	 b;

	clock_gettime(CLOCK_MONOTONIC, &b);
	return (b.tv_sec - a->tv_sec) + (b.tv_nsec - a->tv_nsec) / 1e9;
}

/*
 * A million pushes and pops, expiries and hang-ups through a queue
 * holding 20,000 waiters: anything that walks a list takes minutes.
 */
static void
test_million_ops(void)
{
	enum { DEPTH = 20000, OPS = 1000000 };
	struct queue_conf	 c = conf_of(DEPTH, 10 * SEC, 50 * MS, 100 * MS, 1);
	static struct queue_item it[DEPTH];
	struct queue		*q = queue_new(&c, T0);
	struct queue_item	*x, *ev;
	struct timespec		 start;
	enum queue_shed		 why;
	uint64_t		 now = T0;
	long			 i, served = 0;

	for (i = 0; i < DEPTH; i++)
		push_ok(q, &it[i], i % QUEUE_NPRIO, now);
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (i = 0; i < OPS; i++) {
		now += 10;
		if ((x = queue_pop(q, now)) != NULL)
			served++;
		else if ((x = queue_expire(q, now, &why)) == NULL)
			break;
		if (queue_push(q, x, i % QUEUE_NPRIO, now, &ev) != 0)
			break;
		if (i % 1000 == 0) {
			queue_remove(q, &it[i % DEPTH]);
			(void)queue_next_expiry(q, now);
			CHECK_EQ_INT(queue_push(q, &it[i % DEPTH], 2, now, &ev),
			    0);
		}
	}
	CHECK_EQ_INT(i, OPS);
	CHECK_EQ_INT(served, OPS);
	CHECK_EQ_INT(queue_length(q), DEPTH);
	printf("# %d push/pop pairs in %.3fs\n", OPS, elapsed(&start));
	CHECK(elapsed(&start) < 5.0);
	queue_free(q);
}

int
main(void)
{
	RUN(test_shed_names);
	RUN(test_empty);
	RUN(test_priority_order);
	RUN(test_fifo_within_priority);
	RUN(test_prio_clamped);
	RUN(test_lifo_when_congested);
	RUN(test_fifo_when_lifo_off);
	RUN(test_size_zero);
	RUN(test_full_evicts_newest_lowest);
	RUN(test_full_refuses_equal_or_lower);
	RUN(test_timeout_boundary);
	RUN(test_timeout_zero_is_none);
	RUN(test_expire_oldest_first);
	RUN(test_codel_sheds_old_waiters);
	RUN(test_timeout_below_target);
	RUN(test_congestion_ends_when_empty);
	RUN(test_codel_off);
	RUN(test_next_expiry_codel);
	RUN(test_remove_middle);
	RUN(test_remove_last_ends_congestion);
	RUN(test_reconfigure_shrink);
	RUN(test_lengths);
	RUN(test_clock_backwards);
	RUN(test_next_expiry_property);
	RUN(test_million_ops);
	return tap_done();
}
