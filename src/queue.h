/*
 * queue.h: the bounded waiting room in front of the concurrency limit,
 * and the judge of overload. Pure: no libevent, no globals, no clock (now
 * is an argument, in usec).
 *
 * Waiters are served by priority (critical, normal, sheddable), then by
 * arrival: oldest first, or newest first (with adaptive LIFO on) while
 * the queue grows or holds more than it can serve within the longest
 * wait.
 *
 * Overload is a queue that grows, not a queue that exists. A closed loop
 * of clients above the limit makes a standing queue whose arrivals are
 * matched by departures; its wait is bounded and it is served. The queue
 * grows when arrivals outpace departures (measured over codel_interval and
 * smoothed over about a second); only then is the allowed wait cut from
 * the latency budget to the target (the CoDel idea, but derived from what
 * a request can bear, not an absolute 5 ms). An arrival is refused at once
 * only when its predicted wait (the line ahead of it over the drain rate)
 * exceeds what it may wait.
 *
 * Refusals that the queue chooses (at arrival, or at the target while
 * growing) come from a refusal budget: a closed loop of clients that retry
 * at once must not turn into a storm of refusals that takes the CPU the
 * backend needs. Without budget, a request waits instead, up to its
 * longest wait. Refusals it cannot avoid (no room, the longest wait
 * reached) need none.
 *
 * The caller embeds a struct queue_item in its own object; the queue never
 * allocates per item.
 */
#ifndef SPILLWAY_QUEUE_H
#define SPILLWAY_QUEUE_H

#include <sys/queue.h>

#include <stddef.h>
#include <stdint.h>

#define QUEUE_NPRIO	3	/* 0 critical, 1 normal, 2 sheddable */

enum queue_shed {
	QUEUE_SHED_NONE = 0,
	QUEUE_SHED_FULL,	/* no room, or pushed out by higher priority */
	QUEUE_SHED_TIMEOUT,	/* waited its longest wait */
	QUEUE_SHED_CODEL,	/* overloaded: could not be served in time */
};

struct queue_conf {
	size_t		 size;		/* waiters at most; 0: none */
	/* longest wait; 0: derived from the budget (see queue.c) */
	uint64_t	 timeout_usec;
	uint64_t	 budget_usec;	/* latency a request can bear */
	uint64_t	 target_usec;	/* wait allowed while growing; 0: off */
	uint64_t	 interval_usec;	/* growth judged over; 0: off */
	int		 adaptive_lifo;	/* newest first while growing */
};

struct queue_item {
	uint64_t		 qi_enqueued;	/* usec */
	uint64_t		 qi_seq;	/* arrival order */
	unsigned int		 qi_prio;	/* 0..QUEUE_NPRIO-1 */
	int			 qi_queued;	/* 1 while in the queue */
	TAILQ_ENTRY(queue_item)	 qi_entry;
};

/* What the queue knows, for metrics and the status page. */
struct queue_state {
	double		 arrival_rate;	/* per second, smoothed */
	double		 departure_rate; /* per second, smoothed */
	uint64_t	 service_usec;	/* smoothed latency of answers */
	uint64_t	 wait_usec;	/* allowed wait now */
	int		 growing;
};

struct queue;

struct queue	*queue_new(const struct queue_conf *, uint64_t now);
void		 queue_free(struct queue *);	/* items are the caller's */
void		 queue_reconfigure(struct queue *, const struct queue_conf *);

/*
 * Every request that asks for a slot is an arrival, whether it gets one
 * at once, waits or is refused; every request that gives a slot back is a
 * departure, with its latency (dispatch to answer; 0: no answer, not a
 * sample). Their rates tell a growing queue from a standing one. A retry
 * (a refused client asking again at once) is not new demand: it counts
 * towards the arrival rate shown, not towards growth.
 */
void		 queue_arrive(struct queue *, uint64_t now, int retry);
void		 queue_depart(struct queue *, uint64_t now, uint64_t latency);

/*
 * May an arrival of priority prio that found no free slot wait? slots is
 * the current concurrency limit (with the latency, the drain rate).
 * QUEUE_SHED_NONE: push it; else refuse it now for that reason. A retry
 * (see queue_arrive()) always may: refused at once, it would only come
 * back at once; waiting out its longest wait bounds a closed loop of
 * impatient clients to one refusal each per longest wait.
 */
enum queue_shed	 queue_verdict(struct queue *, unsigned int prio,
		    unsigned int slots, uint64_t now, int retry);

/*
 * Add a waiter of priority prio. Returns 0 if queued; if the queue was
 * full, *evicted is set to the newest waiter of the lowest priority, lower
 * than prio, which the caller must refuse (queue_full). Returns -1 if there
 * is no room for it (the caller refuses it: queue_full).
 */
int		 queue_push(struct queue *, struct queue_item *, unsigned int prio,
		    uint64_t now, struct queue_item **evicted);

/* The next waiter to serve (removed from the queue), or NULL if none. */
struct queue_item *queue_pop(struct queue *, uint64_t now);

/*
 * One waiter whose time is up (removed from the queue), with *why, or
 * NULL. Call until NULL, then arm a timer for queue_next_expiry().
 */
struct queue_item *queue_expire(struct queue *, uint64_t now,
		    enum queue_shed *why);

/*
 * When queue_expire() may next have work, in usec; 0 if the queue is
 * empty. Never in the past: at worst now.
 */
uint64_t	 queue_next_expiry(const struct queue *, uint64_t now);

/* Take a waiter out early (its client hung up). */
void		 queue_remove(struct queue *, struct queue_item *);

/*
 * Whole seconds after which a refused client may expect a slot: the line
 * ahead of it, plus the clients told to come back before it, over the
 * drain rate; at least 1. Each call promises one more slot, so clients
 * refused together are told to come back spread at the rate the backend
 * serves, not all in the same second.
 */
uint64_t	 queue_retry_after(struct queue *, unsigned int slots,
		    uint64_t now);

size_t		 queue_length(const struct queue *);
size_t		 queue_length_prio(const struct queue *, unsigned int prio);
int		 queue_growing(const struct queue *, uint64_t now);
void		 queue_state(const struct queue *, uint64_t now,
		    struct queue_state *);
const char	*queue_shed_name(enum queue_shed);

#endif /* SPILLWAY_QUEUE_H */
