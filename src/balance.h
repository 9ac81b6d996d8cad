/*
 * balance.h: which backend server takes the next request, from a view of
 * each server's concurrency (issue 14: per-server limits). Pure: no
 * libevent, no globals, no clock; the caller samples the servers.
 */
#ifndef SPILLWAY_BALANCE_H
#define SPILLWAY_BALANCE_H

#include <stddef.h>

/* One server as the balancer sees it. */
struct balance_view {
	int		 usable;	/* may take requests (health); 1 */
	double		 weight;	/* slow start, 0 to 1; 1 when up */
	unsigned int	 inflight;	/* requests holding its slots */
	unsigned int	 limit;		/* its concurrency limit */
};

/*
 * A server's slots as weighted by slow start: limit * weight, rounded
 * down, at least 1 (a server just back, weight 0, has one); 0 if it is
 * not usable.
 */
unsigned int	 balance_slots(const struct balance_view *);

/*
 * The usable server with a free slot (inflight below its weighted slots)
 * and the most free share of them, (slots - inflight) / slots; among
 * equals the first from start on (the caller turns start round, so that
 * equals take turns). Returns its index, or -1 if no server has a free
 * slot.
 */
long		 balance_pick(const struct balance_view *, size_t n,
		    size_t start);

/*
 * Round robin over the servers with a free slot: the first of them from
 * start on (balance = roundrobin). Returns its index, or -1 if none has
 * a free slot.
 */
long		 balance_next(const struct balance_view *, size_t n,
		    size_t start);

/*
 * The same without the limit (a dry run, which learns and counts but
 * holds nothing): the usable server with the smallest used share, full or
 * not. -1 only if no server is usable.
 */
long		 balance_pick_any(const struct balance_view *, size_t n,
		    size_t start);

#endif /* SPILLWAY_BALANCE_H */
