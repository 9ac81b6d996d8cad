/* Unit tests of the balancer's choice over per-server views. */
#include <stddef.h>

#include "balance.h"
#include "tap.h"

#define V(used, lim)	{ 1, 1.0, (used), (lim) }

static void
test_most_free_share(void)
{
	/* free shares 2/4, 6/8 (best), 1/10 */
	struct balance_view	 v[] = { V(2, 4), V(2, 8), V(9, 10) };

	CHECK_EQ_INT(balance_pick(v, 3, 0), 1);
	CHECK_EQ_INT(balance_pick(v, 3, 2), 1);
	/* a server with a larger limit takes more before it is as full */
	v[1].inflight = 6;	/* 2/8 free, 2/4 free: server 0 */
	CHECK_EQ_INT(balance_pick(v, 3, 0), 0);
}

static void
test_ties_take_turns(void)
{
	struct balance_view	 v[] = { V(1, 4), V(1, 4), V(1, 4) };

	CHECK_EQ_INT(balance_pick(v, 3, 0), 0);
	CHECK_EQ_INT(balance_pick(v, 3, 1), 1);
	CHECK_EQ_INT(balance_pick(v, 3, 2), 2);
	CHECK_EQ_INT(balance_pick(v, 3, 5), 2);
}

static void
test_full(void)
{
	struct balance_view	 v[] = { V(4, 4), V(8, 8) };

	CHECK_EQ_INT(balance_pick(v, 2, 0), -1);
	/* a dry run still picks: the least used share, past the limit */
	v[1].inflight = 9;
	CHECK_EQ_INT(balance_pick_any(v, 2, 1), 0);
	v[0].inflight = 6;	/* 6/4 against 9/8 */
	CHECK_EQ_INT(balance_pick_any(v, 2, 0), 1);
	v[1].limit = 0;		/* no slot at all */
	CHECK_EQ_INT(balance_pick(v, 2, 0), -1);
	CHECK_EQ_INT(balance_pick_any(v, 2, 1), 0);
	CHECK_EQ_INT(balance_pick(v, 0, 0), -1);
}

/* One slow server near its (small) limit leaves the other's to itself. */
static void
test_slow_server(void)
{
	struct balance_view	 v[] = { V(2, 2), V(5, 20) };

	CHECK_EQ_INT(balance_pick(v, 2, 0), 1);
	v[1].inflight = 20;
	CHECK_EQ_INT(balance_pick(v, 2, 0), -1);
	v[0].inflight = 1;
	CHECK_EQ_INT(balance_pick(v, 2, 1), 0);
}

static void
test_health_and_slow_start(void)
{
	struct balance_view	 v[] = { V(0, 10), V(0, 10) };

	v[0].usable = 0;
	CHECK_EQ_INT(balance_slots(&v[0]), 0);
	CHECK_EQ_INT(balance_pick(v, 2, 0), 1);
	CHECK_EQ_INT(balance_pick_any(v, 2, 0), 1);
	v[1].usable = 0;
	CHECK_EQ_INT(balance_pick(v, 2, 0), -1);
	CHECK_EQ_INT(balance_pick_any(v, 2, 0), -1);

	/* slow start: a quarter of 10 slots is 2; a sliver is still 1 */
	v[0].usable = v[1].usable = 1;
	v[0].weight = 0.25;
	CHECK_EQ_INT(balance_slots(&v[0]), 2);
	v[0].weight = 0.01;
	CHECK_EQ_INT(balance_slots(&v[0]), 1);
	v[0].weight = 0;	/* just back: one slot, not none */
	CHECK_EQ_INT(balance_slots(&v[0]), 1);
	v[0].weight = 1.5;	/* never above the limit */
	CHECK_EQ_INT(balance_slots(&v[0]), 10);
	/* 2 slots, 1 used: half free, against 10 slots, 4 used */
	v[0].weight = 0.25;
	v[0].inflight = 1;
	v[1].inflight = 4;
	CHECK_EQ_INT(balance_pick(v, 2, 0), 1);
	v[1].inflight = 6;
	CHECK_EQ_INT(balance_pick(v, 2, 1), 0);
}

/* balance = roundrobin: the next server in turn that has a free slot. */
static void
test_round_robin(void)
{
	struct balance_view	 v[] = { V(0, 2), V(0, 10), V(0, 4) };

	CHECK_EQ_INT(balance_next(v, 3, 0), 0);
	CHECK_EQ_INT(balance_next(v, 3, 1), 1);
	CHECK_EQ_INT(balance_next(v, 3, 5), 2);
	v[0].inflight = 2;	/* full: skipped, however small its share */
	CHECK_EQ_INT(balance_next(v, 3, 0), 1);
	v[1].usable = 0;	/* out of rotation: skipped */
	CHECK_EQ_INT(balance_next(v, 3, 0), 2);
	v[2].inflight = 4;
	CHECK_EQ_INT(balance_next(v, 3, 0), -1);
	v[2].weight = 0.5;	/* slow start: 2 of its 4 slots */
	v[2].inflight = 1;
	CHECK_EQ_INT(balance_next(v, 3, 0), 2);
	v[2].inflight = 2;
	CHECK_EQ_INT(balance_next(v, 3, 0), -1);
}

int
main(void)
{
	RUN(test_most_free_share);
	RUN(test_ties_take_turns);
	RUN(test_full);
	RUN(test_slow_server);
	RUN(test_health_and_slow_start);
	RUN(test_round_robin);
	return tap_done();
}
