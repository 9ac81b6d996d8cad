/*
 * shed.c: the second door, between admission and the backend: the
 * adaptive concurrency limit and the waiting queue, driven by the event
 * loop. The policy is in limiter.c and queue.c; this file gives them the
 * clock, the timers and the connections.
 *
 * Invariants:
 * - A connection holds at most one limiter slot (cn_has_slot), from
 *   dispatch until its request ends, and gives it back exactly once, in
 *   shed_leave(), with the request's outcome.
 * - Nobody jumps the queue: a new request takes a free slot directly only
 *   when nobody is waiting.
 * - Freed slots are handed to waiters from an event of their own (the
 *   kick), never from inside the callback of the connection that freed
 *   them, so a dispatch cannot re-enter a connection being torn down.
 * - Refusals are fast: an arrival whose expected wait (the line ahead of
 *   it, drained at limit / latency) exceeds what it would be allowed
 *   (codel_target while congested or congested within the last
 *   SHED_CONGESTION_HOLD, else queue_timeout) is refused at once rather
 *   than after waiting to be shed. Critical requests still queue.
 */
#include <stddef.h>
#include <stdlib.h>

#include "spillway.h"
#include "log.h"

/*
 * How long congestion is remembered. The queue's own notion (not empty for
 * codel_interval) clears the moment it empties, which under standing
 * overload happens all the time once arrivals are refused early; without a
 * memory, every emptying would let a burst's worth of waiters in, to be
 * shed late and to slow those served. Refusing an arrival for its expected
 * wait renews the memory; a second with neither ends it.
 */
#define SHED_CONGESTION_HOLD	1000000ULL	/* usec */

static struct conn *
conn_of(struct queue_item *qi)
{
	return (struct conn *)((char *)qi - offsetof(struct conn, cn_qitem));
}

static void
arm_queue_timer(struct proxy *px, uint64_t now)
{
	uint64_t	 at = queue_next_expiry(px->px_queue, now);
	uint64_t	 wait = at > now ? at - now : 0;
	struct timeval	 tv;

	if (at == 0) {
		evtimer_del(px->px_queue_timer);
		return;
	}
	tv.tv_sec = (time_t)(wait / 1000000);
	tv.tv_usec = (suseconds_t)(wait % 1000000);
	evtimer_add(px->px_queue_timer, &tv);
}

static void
queue_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct proxy		*px = arg;
	struct queue_item	*qi;
	enum queue_shed		 why;
	uint64_t		 now = now_usec();

	if (queue_congested(px->px_queue, now))
		px->px_congested_at = now;
	while ((qi = queue_expire(px->px_queue, now, &why)) != NULL) {
		conn_shed(conn_of(qi), why);
	}
	arm_queue_timer(px, now);
}

/* Free slots go to waiters, best first, while there are both. */
static void
kick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct proxy		*px = arg;
	struct queue_item	*qi;
	struct conn		*c;
	uint64_t		 now = now_usec();

	while (queue_length(px->px_queue) > 0 &&
	    limiter_acquire(px->px_lim, now) == 0) {
		if ((qi = queue_pop(px->px_queue, now)) == NULL) {
			limiter_release(px->px_lim, now, 0, LIMITER_IGNORED);
			break;
		}
		c = conn_of(qi);
		c->cn_has_slot = 1;
		conn_dispatch(c);
	}
	arm_queue_timer(px, now);
}

/* Start-up: the limiter and the queue for conf; -1 if out of memory. */
int
shed_init(struct proxy *px, const struct config *conf)
{
	struct limiter_conf	 lc;
	struct queue_conf	 qc;
	uint64_t		 now = now_usec();

	config_limiter_conf(conf, &lc);
	config_queue_conf(conf, &qc);
	if ((px->px_lim = limiter_new(&lc, now)) == NULL ||
	    (px->px_queue = queue_new(&qc, now)) == NULL ||
	    (px->px_queue_timer = evtimer_new(px->px_base, queue_timer_cb,
	    px)) == NULL ||
	    (px->px_kick = event_new(px->px_base, -1, 0, kick_cb,
	    px)) == NULL)
		return -1;
	return 0;
}

/* A reload: new parameters; the learned limit and the waiters stay. */
void
shed_reconfigure(struct proxy *px, const struct config *conf)
{
	struct limiter_conf	 lc;
	struct queue_conf	 qc;
	uint64_t		 now = now_usec();

	config_limiter_conf(conf, &lc);
	config_queue_conf(conf, &qc);
	limiter_reconfigure(px->px_lim, &lc, now);
	queue_reconfigure(px->px_queue, &qc);
	arm_queue_timer(px, now);
}

void
shed_free(struct proxy *px)
{
	if (px->px_queue_timer != NULL)
		event_free(px->px_queue_timer);
	if (px->px_kick != NULL)
		event_free(px->px_kick);
	limiter_free(px->px_lim);
	queue_free(px->px_queue);
	px->px_queue_timer = NULL;
	px->px_kick = NULL;
	px->px_lim = NULL;
	px->px_queue = NULL;
}

/*
 * Would a new waiter behind qlen others outwait its allowance? The line
 * drains at about limit / latency; with no latency known yet, nobody is
 * turned away on a guess.
 */
static int
wait_too_long(struct proxy *px, size_t qlen, uint64_t now)
{
	struct limiter_state	 st;
	const struct shed_conf	*sc = &px->px_conf->limiter;
	uint64_t		 allowed;
	double			 wait;

	if (queue_congested(px->px_queue, now))
		px->px_congested_at = now;
	limiter_state(px->px_lim, &st);
	if (st.short_rtt_usec == 0)
		return 0;
	allowed = sc->queue_timeout_ms * 1000;
	if (sc->codel_target_ms > 0 && px->px_congested_at != 0 &&
	    now - px->px_congested_at < SHED_CONGESTION_HOLD &&
	    sc->codel_target_ms * 1000 < allowed)
		allowed = sc->codel_target_ms * 1000;
	wait = (double)(qlen + 1) * (double)st.short_rtt_usec /
	    (double)limiter_limit(px->px_lim);
	return wait > (double)allowed;
}

/*
 * An admitted request asks to go upstream. Returns 0 if it may go now (it
 * holds a slot) or waits in the queue (it will be dispatched or shed
 * later), -1 if it is refused now, *why saying why.
 */
int
shed_enter(struct conn *c, enum queue_shed *why)
{
	struct proxy		*px = c->cn_proxy;
	struct queue_item	*evicted;
	uint64_t		 now = now_usec();
	unsigned int		 prio;

	if (queue_length(px->px_queue) == 0 &&
	    limiter_acquire(px->px_lim, now) == 0) {
		c->cn_has_slot = 1;
		return 0;
	}
	prio = c->cn_conf->classes[c->cn_class].priority;
	if (prio != PRIO_CRITICAL &&
	    wait_too_long(px, queue_length(px->px_queue), now)) {
		/* turning arrivals away is congestion too: keep it in mind */
		px->px_congested_at = now;
		*why = QUEUE_SHED_CODEL;
		return -1;
	}
	if (queue_push(px->px_queue, &c->cn_qitem, prio, now,
	    &evicted) == -1) {
		*why = QUEUE_SHED_FULL;
		return -1;
	}
	c->cn_t_queued = now;
	if (evicted != NULL)
		conn_shed(conn_of(evicted), QUEUE_SHED_FULL);
	arm_queue_timer(px, now);
	return 0;
}

/* What a finished request tells the limiter about the backend. */
static enum limiter_outcome
outcome(const struct conn *c, uint64_t now, uint64_t *latency)
{
	if (c->cn_t_resp_head != 0) {
		*latency = c->cn_t_resp_head - c->cn_t_upstream;
		/* the backend itself says it is overloaded */
		if (c->cn_status == 503 || c->cn_status == 504)
			return LIMITER_DROPPED;
		return LIMITER_SUCCESS;
	}
	*latency = now - c->cn_t_upstream;
	if (c->cn_reason != MR_NONE && (c->cn_status == 502 ||
	    c->cn_status == 504))
		return LIMITER_DROPPED;	/* connect failure, timeout */
	return LIMITER_IGNORED;
}

/*
 * A request is over, or its connection is gone: leave the queue, or give
 * the slot back with what was learned, and let a waiter have it.
 */
void
shed_leave(struct conn *c)
{
	struct proxy		*px = c->cn_proxy;
	uint64_t		 now = now_usec(), latency = 0;
	enum limiter_outcome	 o;

	if (c->cn_qitem.qi_queued) {
		queue_remove(px->px_queue, &c->cn_qitem);
		arm_queue_timer(px, now);
	}
	if (!c->cn_has_slot)
		return;
	c->cn_has_slot = 0;
	o = outcome(c, now, &latency);
	limiter_release(px->px_lim, now, latency, o);
	if (queue_length(px->px_queue) > 0)
		event_active(px->px_kick, EV_TIMEOUT, 0);
}
