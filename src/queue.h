/*
 * queue.h: the bounded waiting room in front of the concurrency limit.
 * Pure: no libevent, no globals, no clock (now is an argument, in usec).
 *
 * Waiters are served by priority (critical, normal, sheddable), then by
 * arrival: oldest first, or newest first while the queue is congested and
 * adaptive LIFO is on. Each waiter has a deadline (queue_timeout). Under
 * standing congestion (the queue has not been empty for codel_interval),
 * the allowed wait shrinks to codel_target: the CoDel idea, shedding what
 * would wait longest, before it costs anyone more.
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
	QUEUE_SHED_TIMEOUT,	/* waited queue_timeout */
	QUEUE_SHED_CODEL,	/* waited codel_target under congestion */
};

struct queue_conf {
	size_t		 size;			/* waiters at most; 0: none */
	uint64_t	 timeout_usec;		/* longest wait */
	uint64_t	 codel_target_usec;	/* wait allowed when congested */
	uint64_t	 codel_interval_usec;	/* not empty this long: congested */
	int		 adaptive_lifo;		/* newest first when congested */
};

struct queue_item {
	uint64_t		 qi_enqueued;	/* usec */
	uint64_t		 qi_seq;	/* arrival order */
	unsigned int		 qi_prio;	/* 0..QUEUE_NPRIO-1 */
	int			 qi_queued;	/* 1 while in the queue */
	TAILQ_ENTRY(queue_item)	 qi_entry;
};

struct queue;

struct queue	*queue_new(const struct queue_conf *, uint64_t now);
void		 queue_free(struct queue *);	/* items are the caller's */
void		 queue_reconfigure(struct queue *, const struct queue_conf *);

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

/* When queue_expire() next has work, in usec; 0 if the queue is empty. */
uint64_t	 queue_next_expiry(const struct queue *, uint64_t now);

/* Take a waiter out early (its client hung up). */
void		 queue_remove(struct queue *, struct queue_item *);

size_t		 queue_length(const struct queue *);
size_t		 queue_length_prio(const struct queue *, unsigned int prio);
int		 queue_congested(const struct queue *, uint64_t now);
const char	*queue_shed_name(enum queue_shed);

#endif /* SPILLWAY_QUEUE_H */
