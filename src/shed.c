/*
 * shed.c: the second door, between admission and the backend: the
 * adaptive concurrency limit and the waiting queue, driven by the event
 * loop. The policy is in limiter.c and queue.c; this file gives them the
 * clock, the timers and the connections.
 *
 * A request's place in the queue and its slot are its struct shed_ticket,
 * which only this file writes; the rest of a connection is asked through
 * conn_proxy(), conn_gen(), conn_priority(), conn_outcome(), conn_note()
 * and conn_set_retry_after().
 *
 * Invariants:
 * - A connection holds at most one limiter slot (st_has_slot), from
 *   dispatch until its request ends, and gives it back exactly once, in
 *   shed_leave(), with the request's outcome.
 * - Nobody jumps the queue: a new request takes a free slot directly only
 *   when nobody is waiting.
 * - Freed slots are handed to waiters from an event of their own (the
 *   kick), never from inside the callback of the connection that freed
 *   them, so a dispatch cannot re-enter a connection being torn down.
 * - Every request that asks for a slot is an arrival of the queue's, and
 *   every slot given back a departure: queue.c tells a growing queue from
 *   a standing one by them, and decides who may wait (see queue.h).
 * - In dry run (limiter dry_run), every decision is taken and counted but
 *   none is enforced: every request gets a slot at once, past the limit
 *   if need be, and the queue stays empty.
 */
#include <stddef.h>
#include <stdlib.h>

#include "spillway.h"
#include "log.h"

/*
 * A request that follows a refusal on the same connection within
 * SHED_ECHO is the refused client retrying at once (wrk, a script's loop):
 * the same demand coming back, not a new arrival. Counted as one, a closed
 * loop that was refused once would look like a growing queue for ever.
 * Open-loop clients that reuse connections come back later, mostly.
 */
#define SHED_ECHO	20000	/* usec */

/*
 * Event-loop lag, for operators: how long a ready event waits for the
 * loop. Every LAG_EVERY while requests are out, a timer arms a
 * zero-timeout timer; libevent runs timers after the I/O of the next
 * iteration, so its delay is about the wait of an answer that arrived
 * meanwhile. It is shown (spillway_event_loop_lag_seconds) and not taken
 * off the backend's latency: in front of a fast backend much of the
 * latency measured is this wait, but on a machine short of CPU (a
 * CPU-bound app beside spillway) the wait is the machine's, and taking it
 * off let the limit grow past a starving backend's knee (a closed loop
 * within the budget then met queue timeouts). It is forgotten after
 * LAG_IDLE without requests.
 */
#define LAG_EVERY	10000	/* usec */
#define LAG_W		0.125	/* weight of a new probe */
#define LAG_IDLE	100000	/* usec */

static struct shed_ticket *
ticket_of(struct queue_item *qi)
{
	return (struct shed_ticket *)((char *)qi -
	    offsetof(struct shed_ticket, st_qitem));
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

	while ((qi = queue_expire(px->px_queue, now, &why)) != NULL)
		conn_shed(ticket_of(qi)->st_conn, why);
	arm_queue_timer(px, now);
}

/* Free slots go to waiters, best first, while there are both. */
static void
kick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct proxy		*px = arg;
	struct queue_item	*qi;
	struct shed_ticket	*t;
	struct server		*sv;
	uint64_t		 now = now_usec();

	while (queue_length(px->px_queue) > 0 &&
	    upstream_acquire(px, now, &sv) == 0) {
		if ((qi = queue_pop(px->px_queue, now)) == NULL) {
			upstream_unacquire(sv, now);
			break;
		}
		t = ticket_of(qi);
		t->st_has_slot = 1;
		upstream_hold(t->st_conn, sv);
		conn_dispatch(t->st_conn);
	}
	arm_queue_timer(px, now);
}

/* The probe fires: one more lag reading; go on while requests are out. */
static void
lag_probe_cb(evutil_socket_t fd, short what, void *arg)
{
	struct proxy	*px = arg;
	uint64_t	 now = now_usec();
	double		 lag = now > px->px_lag_t0 ? now - px->px_lag_t0 : 0;
	struct timeval	 tv = { 0, LAG_EVERY };

	px->px_lag = (uint64_t)(px->px_lag + LAG_W * (lag - (double)px->px_lag));
	if (upstream_inflight(px) > 0)
		evtimer_add(px->px_lag_timer, &tv);
}

static void
lag_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct proxy	*px = arg;
	struct timeval	 tv = { 0, 0 };

	px->px_lag_t0 = now_usec();
	evtimer_add(px->px_lag_probe, &tv);
}

/* A request goes out: make sure the lag is being measured. */
static void
lag_watch(struct proxy *px, uint64_t now)
{
	struct timeval	 tv = { 0, LAG_EVERY };

	if (evtimer_pending(px->px_lag_timer, NULL) ||
	    evtimer_pending(px->px_lag_probe, NULL))
		return;
	if (now - px->px_lag_t0 > LAG_IDLE)
		px->px_lag = 0;		/* an idle loop has none */
	evtimer_add(px->px_lag_timer, &tv);
}

/* The loop lag, usec: for /metrics and /status. */
uint64_t
shed_loop_lag(const struct proxy *px)
{
	return px->px_lag;
}

/*
 * Start-up: the queue for conf and the events; -1 if out of memory. The
 * limiters are the servers', one each (upstream.c).
 */
int
shed_init(struct proxy *px, const struct config *conf)
{
	struct queue_conf	 qc;
	uint64_t		 now = now_usec();

	config_queue_conf(conf, &qc);
	if ((px->px_queue = queue_new(&qc, now)) == NULL ||
	    (px->px_queue_timer = evtimer_new(px->px_base, queue_timer_cb,
	    px)) == NULL ||
	    (px->px_kick = event_new(px->px_base, -1, 0, kick_cb,
	    px)) == NULL ||
	    (px->px_lag_timer = evtimer_new(px->px_base, lag_timer_cb,
	    px)) == NULL ||
	    (px->px_lag_probe = evtimer_new(px->px_base, lag_probe_cb,
	    px)) == NULL)
		return -1;
	return 0;
}

/*
 * A reload: new parameters; the waiters stay (the servers' limiters are
 * reconfigured by upstream_commit(), their learned limits kept), and they
 * may have room now.
 */
void
shed_reconfigure(struct proxy *px, const struct config *conf)
{
	struct queue_conf	 qc;
	uint64_t		 now = now_usec();

	config_queue_conf(conf, &qc);
	queue_reconfigure(px->px_queue, &qc);
	arm_queue_timer(px, now);
	shed_kick(px);
}

/*
 * Room may have appeared for waiters (a server came back or was added,
 * a limit grew), or none may be left to serve them (every server out:
 * they go on, to be refused at once): give the queue a turn.
 */
void
shed_kick(struct proxy *px)
{
	if (px->px_kick != NULL && px->px_queue != NULL &&
	    queue_length(px->px_queue) > 0)
		event_active(px->px_kick, EV_TIMEOUT, 0);
}

void
shed_free(struct proxy *px)
{
	if (px->px_queue_timer != NULL)
		event_free(px->px_queue_timer);
	if (px->px_kick != NULL)
		event_free(px->px_kick);
	if (px->px_lag_timer != NULL)
		event_free(px->px_lag_timer);
	if (px->px_lag_probe != NULL)
		event_free(px->px_lag_probe);
	queue_free(px->px_queue);
	px->px_queue_timer = NULL;
	px->px_kick = NULL;
	px->px_lag_timer = NULL;
	px->px_lag_probe = NULL;
	px->px_queue = NULL;
}

/*
 * A refusal that came from the queue: when to come back, spread at the
 * rate the backend drains it.
 */
void
shed_refused(struct conn *c)
{
	struct proxy	*px = conn_proxy(c);
	uint64_t	 now = now_usec();

	conn_shed_ticket(c)->st_t_shed = now;
	conn_set_retry_after(c, queue_retry_after(px->px_queue,
	    upstream_limit(px), now));
}

/*
 * Dry run: what would happen to a request past the limit (wait, or be
 * refused, and why) is counted and noted for the log, and the request
 * goes on at once, past the limit if need be.
 */
static void
dry_run(struct conn *c, unsigned int prio, int retry, uint64_t now)
{
	struct proxy		*px = conn_proxy(c);
	const struct shed_conf	*sc = &conn_gen(c)->g_conf->limiter;
	unsigned int		 slots = upstream_limit(px);
	enum queue_shed		 why;

	if (upstream_full(px)) {
		why = queue_verdict(px->px_queue, prio, slots, now, retry);
		if (why == QUEUE_SHED_NONE &&
		    queue_length(px->px_queue) >= sc->queue_size)
			why = QUEUE_SHED_FULL;
		px->px_metrics.m_shed_dry_run[why]++;
		if (why != QUEUE_SHED_NONE)
			conn_note(c, why == QUEUE_SHED_FULL ?
			    "queue_full(dry_run)" : "overloaded(dry_run)");
	}
	upstream_take(c);
	conn_shed_ticket(c)->st_has_slot = 1;
}

/*
 * An admitted request asks to go upstream. Returns 0 if it may go now (it
 * holds a slot) or waits in the queue (it will be dispatched or shed
 * later), -1 if it is refused now, *why saying why.
 */
int
shed_enter(struct conn *c, enum queue_shed *why)
{
	struct proxy		*px = conn_proxy(c);
	struct shed_ticket	*t = conn_shed_ticket(c);
	struct queue		*q = px->px_queue;
	struct queue_item	*evicted;
	uint64_t		 now = now_usec();
	unsigned int		 prio, slots;
	struct server		*sv;
	int			 retry;

	t->st_conn = c;
	retry = t->st_t_shed != 0 && now - t->st_t_shed < SHED_ECHO;
	lag_watch(px, now);
	queue_arrive(q, now, retry);
	prio = conn_priority(c);
	if (conn_gen(c)->g_conf->limiter.dry_run) {
		dry_run(c, prio, retry, now);
		return 0;
	}
	if (queue_length(q) == 0 && upstream_acquire(px, now, &sv) == 0) {
		t->st_has_slot = 1;
		upstream_hold(c, sv);
		return 0;
	}
	slots = upstream_limit(px);
	if ((*why = queue_verdict(q, prio, slots, now, retry)) !=
	    QUEUE_SHED_NONE)
		return -1;
	if (queue_push(q, &t->st_qitem, prio, now, &evicted) == -1) {
		*why = QUEUE_SHED_FULL;
		return -1;
	}
	t->st_t_queued = now;
	if (evicted != NULL)
		conn_shed(ticket_of(evicted)->st_conn, QUEUE_SHED_FULL);
	arm_queue_timer(px, now);
	return 0;
}

/*
 * A request is over, or its connection is gone: leave the queue, or give
 * the slot back with what was learned, and let a waiter have it.
 */
void
shed_leave(struct conn *c)
{
	struct proxy		*px = conn_proxy(c);
	struct shed_ticket	*t = conn_shed_ticket(c);
	uint64_t		 now = now_usec(), latency = 0;
	enum limiter_outcome	 o;

	t->st_t_queued = 0;
	if (t->st_qitem.qi_queued) {
		queue_remove(px->px_queue, &t->st_qitem);
		arm_queue_timer(px, now);
	}
	if (!t->st_has_slot)
		return;
	t->st_has_slot = 0;
	o = conn_outcome(c, now, &latency);
	upstream_slot_release(c, now, latency, o);
	queue_depart(px->px_queue, now,
	    o == LIMITER_SUCCESS ? (latency > 0 ? latency : 1) : 0);
	if (queue_length(px->px_queue) > 0)
		event_active(px->px_kick, EV_TIMEOUT, 0);
}
