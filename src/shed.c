/*
 * shed.c: the second door, between admission and the backend: the
 * adaptive concurrency limit and the waiting queue, driven by the event
 * loop. The policy is in limiter.c and queue.c; this file gives them the
 * clock, the timers and the connections.
 *
 * Workers: the servers' limiters (upstream.c: one per backend server for
 * the whole process, struct server_slots) and the queue are one for every
 * worker, under px_shed_mtx, held for a few pure calls at a time (never
 * across I/O). A worker does not take it for each request: what its
 * requests ask (a slot, to go upstream) and give back (a slot, with the
 * latency learned) waits in the worker's batch, and the batch is flushed
 * under one taking of the lock once a loop iteration (flush_cb()), after
 * the callbacks that filled it: microseconds later, in the same
 * iteration. Under load, one taking serves every request of an
 * iteration. A waiter that leaves the queue from another worker's
 * thread (a slot freed there, a deadline seen there) is handed to its
 * own worker (w_handoff and its kick), which alone touches the
 * connection.
 *
 * A request's place in the queue and its slot are its struct shed_ticket,
 * which only this file writes; the rest of a connection is asked through
 * conn_proxy(), conn_gen(), conn_priority(), conn_outcome(), conn_note()
 * and conn_set_retry_after().
 *
 * Invariants:
 * - A connection holds at most one limiter slot (st_has_slot), on one
 *   server (ur_slot; none when no server is in rotation: the request goes
 *   on to be refused at once), from dispatch until its request ends, and
 *   gives it back exactly once, in shed_leave(), with the request's
 *   outcome, to the server holding it then (a failover moves it).
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

/*
 * The limiter aligns its probes to the wall clock (limiter.c); it is read
 * again every WALL_EVERY by the lag probe, so that a step of the clock
 * (a host that booted before NTP had set it) re-aligns them without a
 * reload.
 */
#define WALL_EVERY	1000000	/* usec */
#define WALL_GAP	100	/* usec between the two clocks' readings */

static void	flush_cb(evutil_socket_t, short, void *);
static void	release_now(struct worker *);

static struct shed_ticket *
ticket_of(struct queue_item *qi)
{
	return (struct shed_ticket *)((char *)qi -
	    offsetof(struct shed_ticket, st_qitem));
}

/*
 * Under px_shed_mtx, as t is refused: when to come back, spread at the
 * rate the backend drains the queue (shed_refused() answers with it, no
 * second taking of the lock).
 */
static struct shed_ticket *
refusing(struct proxy *px, struct shed_ticket *t, uint64_t now)
{
	t->st_retry_after = queue_retry_after(px->px_queue,
	    upstream_limit(px, now), now);
	return t;
}

/*
 * Under px_shed_mtx: point this worker's queue timer at the next deadline
 * of the whole queue. Whichever worker's timer fires first expires every
 * waiter due, its own or not; the worker that queued a waiter keeps its
 * timer no later than that waiter's deadline, so none is missed.
 */
static void
arm_queue_timer(struct worker *w, uint64_t now)
{
	uint64_t	 at = queue_next_expiry(w->w_proxy->px_queue, now);
	uint64_t	 wait = at > now ? at - now : 0;
	struct timeval	 tv;

	if (at == 0) {
		evtimer_del(w->w_queue_timer);
		return;
	}
	tv.tv_sec = (time_t)(wait / 1000000);
	tv.tv_usec = (suseconds_t)(wait % 1000000);
	evtimer_add(w->w_queue_timer, &tv);
}

/*
 * Under px_shed_mtx: a waiter leaves the queue with a slot (SH_GRANT) or
 * refused (SH_SHED); its own worker acts on it, in its kick. A connection
 * is only ever touched by its own worker's thread.
 */
static void
handoff(struct shed_ticket *t, enum shed_handoff h, enum queue_shed why)
{
	struct worker	*owner = t->st_worker;

	t->st_handoff = h;
	t->st_why = why;
	TAILQ_INSERT_TAIL(&owner->w_handoff, t, st_hentry);
	event_active(owner->w_kick, EV_TIMEOUT, 0);
}

/* This worker's waiters that left the queue: dispatch or refuse them. */
static void
run_handoffs(struct worker *w)
{
	struct proxy		*px = w->w_proxy;
	struct shed_ticket	*t;
	enum shed_handoff	 h;
	enum queue_shed		 why;

	for (;;) {
		(void)shed_lock(px);
		if ((t = TAILQ_FIRST(&w->w_handoff)) != NULL) {
			TAILQ_REMOVE(&w->w_handoff, t, st_hentry);
			h = t->st_handoff;
			why = t->st_why;
			t->st_handoff = SH_NONE;
			if (h == SH_GRANT) {
				t->st_has_slot = 1;
				conn_upstream_req(t->st_conn)->ur_slot =
				    t->st_slot;
				t->st_slot = NULL;
			}
		}
		shed_unlock(px);
		if (t == NULL)
			break;
		if (h == SH_GRANT)
			conn_dispatch(t->st_conn);
		else
			conn_shed(t->st_conn, why);
	}
}

static void
queue_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker		*w = arg;
	struct proxy		*px = w->w_proxy;
	struct queue_item	*qi;
	enum queue_shed		 why;
	uint64_t		 now;

	now = shed_lock(px);
	while ((qi = queue_expire(px->px_queue, now, &why)) != NULL)
		handoff(refusing(px, ticket_of(qi), now), SH_SHED, why);
	arm_queue_timer(w, now);
	shed_unlock(px);
	run_handoffs(w);
}

/*
 * Under px_shed_mtx: free slots go to waiters, best first, while there
 * are both, whichever worker they are on.
 */
static void
grant_waiters(struct proxy *px, uint64_t now)
{
	struct queue_item	*qi;
	struct server_slots	*ss;

	while (queue_length(px->px_queue) > 0 &&
	    upstream_acquire(px, now, &ss) == 0) {
		if ((qi = queue_pop(px->px_queue, now)) == NULL) {
			upstream_unacquire(ss, now);
			break;
		}
		ticket_of(qi)->st_slot = ss;
		handoff(ticket_of(qi), SH_GRANT, QUEUE_SHED_NONE);
	}
}

/* Free slots go to waiters; then this worker acts on what it was handed. */
static void
kick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker	*w = arg;
	struct proxy	*px = w->w_proxy;
	uint64_t	 now;

	now = shed_lock(px);
	grant_waiters(px, now);
	arm_queue_timer(w, now);
	shed_unlock(px);
	run_handoffs(w);
}

/*
 * Under px_shed_mtx: read the wall clock again for the limiter's aligned
 * probes (a step of the clock is seen within WALL_EVERY). The two clocks
 * are read back to back; if this thread lost the CPU between them, the
 * reading is not trusted (it would look like a step) and waits for the
 * next.
 */
static void
wall_refresh(struct proxy *px, uint64_t now)
{
	uint64_t	 wall = wall_usec(), after = now_usec();

	if (after - now > WALL_GAP)
		return;
	px->px_wall_at = now;
	upstream_set_wallclock(px, now, wall);
}

/*
 * The probe fires: one more lag reading of this worker's loop; go on while
 * requests are out. Each worker measures its own loop and takes its own
 * lag off its own requests' samples.
 */
static void
lag_probe_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker	*w = arg;
	struct proxy	*px = w->w_proxy;
	uint64_t	 now = now_usec(), old;
	double		 lag = now > w->w_lag_t0 ? now - w->w_lag_t0 : 0;
	struct timeval	 tv = { 0, LAG_EVERY };
	unsigned int	 inflight;

	old = atomic_load_explicit(&w->w_lag, memory_order_relaxed);
	atomic_store_explicit(&w->w_lag, (uint64_t)(old + LAG_W * (lag -
	    (double)old)), memory_order_relaxed);
	now = shed_lock(px);
	inflight = upstream_inflight(px);
	if (now - px->px_wall_at >= WALL_EVERY)
		wall_refresh(px, now);
	shed_unlock(px);
	if (inflight > 0)
		evtimer_add(w->w_lag_timer, &tv);
}

static void
lag_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker	*w = arg;
	struct timeval	 tv = { 0, 0 };

	w->w_lag_t0 = now_usec();
	evtimer_add(w->w_lag_probe, &tv);
}

/* A request goes out: make sure its loop's lag is being measured. */
static void
lag_watch(struct worker *w, uint64_t now)
{
	struct timeval	 tv = { 0, LAG_EVERY };

	if (evtimer_pending(w->w_lag_timer, NULL) ||
	    evtimer_pending(w->w_lag_probe, NULL))
		return;
	if (now - w->w_lag_t0 > LAG_IDLE)	/* an idle loop has none */
		atomic_store_explicit(&w->w_lag, 0, memory_order_relaxed);
	evtimer_add(w->w_lag_timer, &tv);
}

/* The loop lag, usec: for /metrics and /status; the largest of any loop. */
uint64_t
shed_loop_lag(const struct proxy *px)
{
	uint64_t	 lag, max = 0;
	unsigned int	 i;

	for (i = 0; i < px->px_nworkers; i++) {
		lag = atomic_load_explicit(&px->px_workers[i]->w_lag,
		    memory_order_relaxed);
		if (lag > max)
			max = lag;
	}
	return max;
}

/*
 * Start-up: the queue for conf; -1 if out of memory. The limiters are the
 * servers' (upstream.c).
 */
int
shed_init(struct proxy *px, const struct config *conf)
{
	struct queue_conf	 qc;
	uint64_t		 now = now_usec();

	config_queue_conf(conf, &qc);
	if ((px->px_queue = queue_new(&qc, now)) == NULL)
		return -1;
	return 0;
}

/* A worker's queue timer and kick; -1 if out of memory. */
int
shed_worker_init(struct worker *w)
{
	TAILQ_INIT(&w->w_handoff);
	TAILQ_INIT(&w->w_pending);
	if ((w->w_flush = event_new(w->w_base, -1, 0, flush_cb, w)) == NULL ||
	    (w->w_queue_timer = evtimer_new(w->w_base, queue_timer_cb,
	    w)) == NULL ||
	    (w->w_kick = event_new(w->w_base, -1, 0, kick_cb, w)) == NULL ||
	    (w->w_lag_timer = evtimer_new(w->w_base, lag_timer_cb,
	    w)) == NULL ||
	    (w->w_lag_probe = evtimer_new(w->w_base, lag_probe_cb,
	    w)) == NULL)
		return -1;
	return 0;
}

/*
 * The worker's loop is over and its connections gone: what is left in
 * its batch goes back now (the slots' references with it).
 */
void
shed_worker_free(struct worker *w)
{
	if (w->w_nrel > 0)
		release_now(w);
	if (w->w_flush != NULL)
		event_free(w->w_flush);
	w->w_flush = NULL;
	if (w->w_queue_timer != NULL)
		event_free(w->w_queue_timer);
	if (w->w_kick != NULL)
		event_free(w->w_kick);
	if (w->w_lag_timer != NULL)
		event_free(w->w_lag_timer);
	if (w->w_lag_probe != NULL)
		event_free(w->w_lag_probe);
	w->w_queue_timer = NULL;
	w->w_kick = NULL;
	w->w_lag_timer = NULL;
	w->w_lag_probe = NULL;
}

/*
 * A reload: new parameters; the waiters stay (the servers' limiters are
 * upstream_commit()'s, their learned limits kept), and may have room now.
 */
void
shed_reconfigure(struct proxy *px, const struct config *conf)
{
	struct queue_conf	 qc;
	uint64_t		 now;
	unsigned int		 i;

	config_queue_conf(conf, &qc);
	now = shed_lock(px);
	wall_refresh(px, now);
	queue_reconfigure(px->px_queue, &qc);
	shed_unlock(px);
	/*
	 * Each worker re-arms its own queue timer for the new deadlines, and
	 * hands out what a raised limit frees, from its kick: another
	 * thread's timer is never touched from here (libevent's event_del()
	 * from another thread waits for that timer's callback, which may be
	 * waiting for the lock held here: a deadlock).
	 */
	for (i = 0; i < px->px_nworkers; i++)
		event_active(px->px_workers[i]->w_kick, EV_TIMEOUT, 0);
}

/*
 * Room may have come for waiters (a server back in rotation, a limit
 * grown), or nobody may be left to serve them (every server out: they go
 * on, to be refused at once): give the queue a turn on w's loop. Called
 * on w's own thread.
 */
void
shed_kick(struct worker *w)
{
	struct proxy	*px = w->w_proxy;
	int		 waiting;

	if (w->w_kick == NULL || px->px_queue == NULL)
		return;
	shed_lock(px);
	waiting = queue_length(px->px_queue) > 0;
	shed_unlock(px);
	if (waiting)
		event_active(w->w_kick, EV_TIMEOUT, 0);
}

void
shed_free(struct proxy *px)
{
	upstream_slots_free(px);
	queue_free(px->px_queue);
	px->px_queue = NULL;
}

/*
 * A refusal that came from the queue: when to come back, worked out with
 * the verdict (refusing()).
 */
void
shed_refused(struct conn *c)
{
	struct shed_ticket	*t = conn_shed_ticket(c);

	t->st_t_shed = now_usec();
	conn_set_retry_after(c, t->st_retry_after);
}

/*
 * Dry run, under px_shed_mtx: what would happen to a request past the
 * limit (wait, or be refused, and why) is counted and noted for the log,
 * and the request goes on at once, past the limit if need be.
 */
static void
dry_run(struct conn *c, unsigned int prio, int retry, uint64_t now)
{
	struct proxy		*px = conn_proxy(c);
	const struct shed_conf	*sc = &conn_gen(c)->g_conf->limiter;
	unsigned int		 slots = upstream_limit(px, now);
	enum queue_shed		 why;

	if (upstream_full(px, now)) {
		why = queue_verdict(px->px_queue, prio, slots, now, retry);
		if (why == QUEUE_SHED_NONE &&
		    queue_length(px->px_queue) >= sc->queue_size)
			why = QUEUE_SHED_FULL;
		conn_worker(c)->w_metrics.m_shed_dry_run[why]++;
		if (why != QUEUE_SHED_NONE)
			conn_note(c, why == QUEUE_SHED_FULL ?
			    "queue_full(dry_run)" : "overloaded(dry_run)");
	}
	upstream_take(c, now);
	conn_shed_ticket(c)->st_has_slot = 1;
}

/*
 * Under px_shed_mtx: the verdict on a request that asks to go upstream.
 * Returns 1 if it may go now (it holds a slot), 0 if it waits in the
 * queue (it will be dispatched or shed later), -1 if it is refused now,
 * *why saying why.
 */
static int
verdict(struct shed_ticket *t, uint64_t now, enum queue_shed *why)
{
	struct conn		*c = t->st_conn;
	struct proxy		*px = conn_proxy(c);
	struct worker		*w = t->st_worker;
	struct queue		*q = px->px_queue;
	struct queue_item	*evicted;
	unsigned int		 prio = conn_priority(c);
	struct server_slots	*ss;

	queue_arrive(q, now, t->st_retry);
	if (conn_gen(c)->g_conf->limiter.dry_run) {
		dry_run(c, prio, t->st_retry, now);
		return 1;
	}
	if (queue_length(q) == 0 && upstream_acquire(px, now, &ss) == 0) {
		t->st_has_slot = 1;
		conn_upstream_req(c)->ur_slot = ss;
		return 1;
	}
	if ((*why = queue_verdict(q, prio, upstream_limit(px, now), now,
	    t->st_retry)) != QUEUE_SHED_NONE)
		return -1;
	if (queue_push(q, &t->st_qitem, prio, now, &evicted) == -1) {
		*why = QUEUE_SHED_FULL;
		return -1;
	}
	t->st_t_queued = now;
	if (evicted != NULL)
		handoff(refusing(px, ticket_of(evicted), now), SH_SHED,
		    QUEUE_SHED_FULL);
	arm_queue_timer(w, now);
	return 0;
}

/*
 * Under px_shed_mtx: the slots this worker gave back since its last
 * flush go back to their limiters with what their requests taught, each
 * a departure of the queue's.
 */
static void
release_batch(struct worker *w, uint64_t now)
{
	struct proxy		*px = w->w_proxy;
	struct shed_release	*r;
	size_t			 i;

	for (i = 0; i < w->w_nrel; i++) {
		r = &w->w_rel[i];
		upstream_slot_release(r->sr_slot, now, r->sr_latency,
		    r->sr_outcome);
		queue_depart(px->px_queue, now,
		    r->sr_outcome == LIMITER_SUCCESS ?
		    (r->sr_latency > 0 ? r->sr_latency : 1) : 0);
	}
	w->w_nrel = 0;
}

/*
 * The batch's slots go back now, outside a flush (the batch is full, or
 * the worker is gone), and to waiters: their workers' kicks hand them over.
 */
static void
release_now(struct worker *w)
{
	uint64_t	 now = shed_lock(w->w_proxy);

	release_batch(w, now);
	grant_waiters(w->w_proxy, now);
	shed_unlock(w->w_proxy);
}

/*
 * The worker's batch: what its requests asked of the limiters and the
 * queue since the last flush, under one taking of px_shed_mtx instead of
 * two a request. Run once a loop iteration, after the callbacks that
 * filled it (an event made active goes to the end of the active list),
 * so a verdict waits microseconds, not for the next event. Slots given
 * back go first, then to waiters, then the new requests in the order they
 * came: nobody jumps the queue. Verdicts are acted on after the lock.
 */
static void
flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker		*w = arg;
	struct proxy		*px = w->w_proxy;
	struct ticket_list	 go = TAILQ_HEAD_INITIALIZER(go);
	struct shed_ticket	*t;
	uint64_t		 now;
	int			 handed;

	w->w_flush_armed = 0;
	if (w->w_nrel == 0 && TAILQ_EMPTY(&w->w_pending))
		return;
	now = shed_lock(px);
	release_batch(w, now);
	grant_waiters(px, now);
	while ((t = TAILQ_FIRST(&w->w_pending)) != NULL) {
		TAILQ_REMOVE(&w->w_pending, t, st_pentry);
		t->st_pending = 0;
		switch (verdict(t, now, &t->st_why)) {
		case 1:
			t->st_why = QUEUE_SHED_NONE;
			TAILQ_INSERT_TAIL(&go, t, st_pentry);
			break;
		case -1:
			TAILQ_INSERT_TAIL(&go, refusing(px, t, now), st_pentry);
			break;
		default:
			break;
		}
	}
	handed = !TAILQ_EMPTY(&w->w_handoff);
	shed_unlock(px);
	while ((t = TAILQ_FIRST(&go)) != NULL) {
		TAILQ_REMOVE(&go, t, st_pentry);
		if (t->st_why == QUEUE_SHED_NONE)
			conn_dispatch(t->st_conn);
		else
			conn_shed(t->st_conn, t->st_why);
	}
	if (handed)	/* else no second taking of the lock to find none */
		run_handoffs(w);
}

/*
 * An admitted request asks to go upstream: its verdict comes with the
 * worker's next flush, in this loop iteration (conn_dispatch() with a
 * slot, conn_shed() refused, or a wait in the queue).
 */
void
shed_enter(struct conn *c)
{
	struct worker		*w = conn_worker(c);
	struct shed_ticket	*t = conn_shed_ticket(c);
	uint64_t		 now = now_usec();

	t->st_conn = c;
	t->st_worker = w;
	t->st_retry = t->st_t_shed != 0 && now - t->st_t_shed < SHED_ECHO;
	t->st_retry_after = 0;
	lag_watch(w, now);
	t->st_pending = 1;
	TAILQ_INSERT_TAIL(&w->w_pending, t, st_pentry);
	batch_arm(w->w_flush, &w->w_flush_armed);
}

/*
 * A request is over, or its connection is gone: leave the batch, the
 * queue or the hand-over list, or give the slot back with what was
 * learned (in the batch: a waiter has it at the flush).
 */
void
shed_leave(struct conn *c)
{
	struct proxy		*px = conn_proxy(c);
	struct worker		*w = conn_worker(c);
	struct shed_ticket	*t = conn_shed_ticket(c);
	struct shed_release	*r;
	uint64_t		 now;

	if (t->st_pending) {
		/* gone before its verdict: nothing shared was touched */
		TAILQ_REMOVE(&w->w_pending, t, st_pentry);
		t->st_pending = 0;
		return;
	}
	if (t->st_t_queued != 0) {
		t->st_t_queued = 0;
		now = shed_lock(px);
		if (t->st_handoff != SH_NONE) {
			/* gone before its worker acted on the hand-over */
			TAILQ_REMOVE(&w->w_handoff, t, st_hentry);
			if (t->st_handoff == SH_GRANT) {
				upstream_unacquire(t->st_slot, now);
				t->st_slot = NULL;
				if (queue_length(px->px_queue) > 0)
					event_active(w->w_kick, EV_TIMEOUT, 0);
			}
			t->st_handoff = SH_NONE;
		}
		if (t->st_qitem.qi_queued) {
			queue_remove(px->px_queue, &t->st_qitem);
			arm_queue_timer(w, now);
		}
		shed_unlock(px);
	}
	if (!t->st_has_slot)
		return;
	t->st_has_slot = 0;
	if (w->w_nrel == SHED_BATCH)
		release_now(w);
	r = &w->w_rel[w->w_nrel++];
	r->sr_outcome = conn_outcome(c, now_usec(), &r->sr_latency);
	r->sr_slot = conn_upstream_req(c)->ur_slot;
	conn_upstream_req(c)->ur_slot = NULL;
	batch_arm(w->w_flush, &w->w_flush_armed);
}
