/*
 * balance.c: the balancer's choice over per-server views. Pure; see
 * balance.h.
 *
 * Shares compare as fractions, by cross-multiplying whole numbers: a free
 * share f1/s1 beats f2/s2 when f1 * s2 > f2 * s1. Slots and in-flight
 * counts are at most a limiter's (100000), so the products fit.
 */
#include <stdint.h>

#include "balance.h"

unsigned int
balance_slots(const struct balance_view *v)
{
	double		 w;
	unsigned int	 s;

	if (!v->usable || v->limit == 0)
		return 0;
	w = v->weight < 1 ? (v->weight > 0 ? v->weight : 0) : 1;
	s = (unsigned int)(v->limit * w);
	return s > 0 ? s : 1;
}

/* Is used share u1/s1 below u2/s2? */
static int
less_used(uint64_t u1, uint64_t s1, uint64_t u2, uint64_t s2)
{
	return u1 * s2 < u2 * s1;
}

static long
pick(const struct balance_view *v, size_t n, size_t start, int any)
{
	long		 best = -1;
	uint64_t	 bu = 0, bs = 1, u, s;
	size_t		 k, i;

	for (k = 0; k < n; k++) {
		i = (start + k) % n;
		if ((s = balance_slots(&v[i])) == 0)
			continue;
		u = v[i].inflight;
		if (!any && u >= s)
			continue;
		/* the most free share is the least used share */
		if (best == -1 || less_used(u, s, bu, bs)) {
			best = (long)i;
			bu = u;
			bs = s;
		}
	}
	return best;
}

long
balance_pick(const struct balance_view *v, size_t n, size_t start)
{
	return pick(v, n, start, 0);
}

long
balance_pick_any(const struct balance_view *v, size_t n, size_t start)
{
	return pick(v, n, start, 1);
}

long
balance_next(const struct balance_view *v, size_t n, size_t start)
{
	size_t	 k, i;

	for (k = 0; k < n; k++) {
		i = (start + k) % n;
		if (v[i].inflight < balance_slots(&v[i]))
			return (long)i;
	}
	return -1;
}
