/*
 * upstream_slots.c: per-server concurrency limits (issue 14). Each backend
 * server has a limiter of its own (learned from that server's answers, or
 * fixed by "maxconn=N"), one for the whole process (struct server_slots,
 * under px_shed_mtx: every worker's server for an address points at
 * worker 0's). shed.c asks upstream_acquire() for a slot; the balancer
 * (balance.c) sees each server's health and free share, and the slot is
 * taken on the server it picks. See upstream.c for the whole story.
 */
#include <stdlib.h>
#include <string.h>

#include "spillway.h"
#include "balance.h"
#include "health.h"
#include "upstream_int.h"

/* A server's limiter: [limiter]'s, or fixed at its maxconn. */
void
server_limiter_conf(const struct config *conf, const struct config_addr *a,
    struct limiter_conf *lc)
{
	config_limiter_conf(conf, lc);
	if (a->maxconn > 0) {
		lc->algo = LIMITER_FIXED;
		lc->limit = lc->min_limit = lc->max_limit = a->maxconn;
	}
}

/* Under px_shed_mtx: one reference fewer; the last frees it. */
void
slots_unref(struct server_slots *ss)
{
	if (ss == NULL || --ss->ss_refs > 0)
		return;
	limiter_free(ss->ss_lim);
	free(ss);
}

/*
 * Worker 0's commit, before it retires anything: its servers (kept or
 * new) become the balancer's list, under px_shed_mtx; a kept server's
 * limiter takes the new parameters (its learned limit kept, a maxconn
 * fixing it now).
 */
void
slots_commit(struct worker *w, const struct config *conf)
{
	struct proxy			*px = w->w_proxy;
	const struct backend_conf	*bc = &conf->backend;
	struct server_slots		**old = px->px_slots;
	struct server			*sv;
	struct limiter_conf		 lc;
	size_t				 i, nold = px->px_nslots;
	uint64_t			 now;

	now = shed_lock(px);
	for (i = 0; i < bc->nservers; i++) {
		sv = w->w_servers_from[i] != 0 ?
		    w->w_servers[w->w_servers_from[i] - 1] :
		    w->w_servers_next[i];
		if (w->w_servers_from[i] != 0) {
			server_limiter_conf(conf, &bc->servers[i], &lc);
			limiter_reconfigure(sv->sv_slots->ss_lim, &lc, now);
			limiter_set_wallclock(sv->sv_slots->ss_lim, now,
			    wall_usec());
		}
		sv->sv_slots->ss_health = sv->sv_health;
		sv->sv_slots->ss_quiet = sv->sv_quiet;
		sv->sv_slots->ss_refs++;
		px->px_slots_next[i] = sv->sv_slots;
	}
	px->px_slots = px->px_slots_next;
	px->px_nslots = bc->nservers;
	free(px->px_views);
	px->px_views = px->px_views_next;
	px->px_slots_next = NULL;
	px->px_views_next = NULL;
	px->px_slot_hc = bc->health;
	px->px_slot_balance = bc->balance;
	for (i = 0; i < nold; i++)
		slots_unref(old[i]);
	shed_unlock(px);
	free(old);
}

/*
 * Under px_shed_mtx: each server in force as the balancer sees it now: in
 * rotation or not (an ejected server whose trial is due is not: a probe
 * tries it), its slow-start weight, its limiter.
 */
static void
sample_views(struct proxy *px, uint64_t now)
{
	struct balance_view	*v;
	struct server_slots	*ss;
	size_t			 i;
	uint64_t		 from;

	/* every server plainly up and past its slow start: no lock */
	for (i = 0; i < px->px_nslots; i++) {
		from = atomic_load_explicit(px->px_slots[i]->ss_quiet,
		    memory_order_acquire);
		if (from == UINT64_MAX || from > now)
			break;
		px->px_views[i].usable = 1;
		px->px_views[i].weight = 1;
	}
	if (i == px->px_nslots)
		goto limits;
	pthread_mutex_lock(&px->px_health_mtx);
	for (i = 0; i < px->px_nslots; i++) {
		ss = px->px_slots[i];
		v = &px->px_views[i];
		v->usable = health_usable(ss->ss_health, &px->px_slot_hc,
		    now) == 2;
		v->weight = health_weight(ss->ss_health, &px->px_slot_hc, now);
	}
	pthread_mutex_unlock(&px->px_health_mtx);
 limits:
	for (i = 0; i < px->px_nslots; i++) {
		v = &px->px_views[i];
		v->inflight = limiter_inflight(px->px_slots[i]->ss_lim);
		v->limit = limiter_limit(px->px_slots[i]->ss_lim);
	}
}

/*
 * Under px_shed_mtx, views sampled: round robin over the servers with a
 * free slot, slow start thinning a server's turns by its weight as pick()
 * does (its credit); if every server with a free slot passed its turn,
 * the first of them. -1 if none has a free slot.
 */
static long
next_in_turn(struct proxy *px, size_t start)
{
	struct balance_view	*v = px->px_views;
	struct server_slots	*ss;
	size_t			 n = px->px_nslots, tries;
	long			 k, first = -1;

	for (tries = 0; tries < n; tries++) {
		if ((k = balance_next(v, n, start)) == -1)
			break;
		if (first == -1)
			first = k;
		ss = px->px_slots[k];
		if (v[k].weight >= 1 || (ss->ss_credit += v[k].weight) >= 1) {
			if (v[k].weight < 1)
				ss->ss_credit -= 1;
			first = k;
			break;
		}
		/* its turn passed: look on from the next one */
		v[k].usable = 0;
		start = (size_t)k + 1;
	}
	return first;
}

/*
 * Under px_shed_mtx: a slot for the next request, on the server the
 * configured balance picks among those in rotation with a free slot:
 * roundrobin the next in turn, leastconn the most free share of its
 * limit. Returns 0 with *ssp holding the slot's server (a reference), or
 * with *ssp NULL when no server is in rotation (the request goes on, to
 * be refused at once); -1 if every server in rotation is full.
 */
int
upstream_acquire(struct proxy *px, uint64_t now, struct server_slots **ssp)
{
	size_t	 n = px->px_nslots, i, start;
	long	 k;
	int	 any = 0;

	*ssp = NULL;
	if (n == 0)
		return 0;
	sample_views(px, now);
	for (i = 0; i < n; i++)
		any |= px->px_views[i].usable;
	if (!any)
		return 0;
	start = px->px_slot_rr % n;
	if (px->px_slot_balance == BALANCE_LEASTCONN)
		k = balance_pick(px->px_views, n, start);
	else
		k = next_in_turn(px, start);
	if (k == -1 || limiter_acquire(px->px_slots[k]->ss_lim, now) == -1)
		return -1;
	/* equals take turns; round robin goes on after the one picked */
	px->px_slot_rr = px->px_slot_balance == BALANCE_LEASTCONN ?
	    start + 1 : (size_t)k + 1;
	*ssp = px->px_slots[k];
	(*ssp)->ss_refs++;
	return 0;
}

/* Under px_shed_mtx: a slot upstream_acquire() gave that nobody used. */
void
upstream_unacquire(struct server_slots *ss, uint64_t now)
{
	if (ss == NULL)
		return;
	limiter_release(ss->ss_lim, now, 0, LIMITER_IGNORED);
	slots_unref(ss);
}

/*
 * Under px_shed_mtx, dry run: a slot on the server in rotation with the
 * least used share, past its limit if need be, so that each limit is
 * learned as it would be; none if no server is in rotation.
 */
void
upstream_take(struct conn *c, uint64_t now)
{
	struct proxy		*px = conn_proxy(c);
	struct server_slots	*ss;
	long			 k;

	conn_upstream_req(c)->ur_slot = NULL;
	if (px->px_nslots == 0)
		return;
	sample_views(px, now);
	if ((k = balance_pick_any(px->px_views, px->px_nslots,
	    px->px_slot_rr++ % px->px_nslots)) == -1)
		return;
	ss = px->px_slots[k];
	limiter_take(ss->ss_lim, now);
	ss->ss_refs++;
	conn_upstream_req(c)->ur_slot = ss;
}

/*
 * Under px_shed_mtx: a request is over; its slot on ss (a reference the
 * request held) goes back, learned.
 */
void
upstream_slot_release(struct server_slots *ss, uint64_t now,
    uint64_t latency, enum limiter_outcome o)
{
	if (ss == NULL)
		return;
	limiter_release(ss->ss_lim, now, latency, o);
	slots_unref(ss);
}

/*
 * The request goes to sv: its slot moves there from the server that
 * failed it (whose limiter learns the failure, unless a reload removed
 * it), or is taken there if it had none (none was in rotation when it
 * got past the queue). Past sv's limit if need be: a failover does not
 * wait. Takes px_shed_mtx.
 */
void
slot_move(struct conn *c, struct server *sv)
{
	struct proxy		*px = conn_proxy(c);
	struct upstream_req	*ur = conn_upstream_req(c);
	struct server_slots	*old = ur->ur_slot, *ss = sv->sv_slots;
	size_t			 i;
	int			 kept = 0;
	uint64_t		 now;

	/* no slot to hold without shed.c's (st_has_slot) */
	if (old == ss || !conn_shed_ticket(c)->st_has_slot)
		return;
	now = shed_lock(px);
	limiter_take(ss->ss_lim, now);
	ss->ss_refs++;
	ur->ur_slot = ss;
	if (old != NULL) {
		for (i = 0; i < px->px_nslots; i++)
			kept |= px->px_slots[i] == old;
		limiter_release(old->ss_lim, now, 0, kept ? LIMITER_DROPPED :
		    LIMITER_IGNORED);
		slots_unref(old);
	}
	shed_unlock(px);
}

/*
 * Under px_shed_mtx: the slots the queue may count on: the servers in
 * rotation, slow start weighing; all of them when none is (1 at least).
 */
unsigned int
upstream_limit(struct proxy *px, uint64_t now)
{
	unsigned int	 n = 0, all = 0;
	size_t		 i;

	sample_views(px, now);
	for (i = 0; i < px->px_nslots; i++) {
		n += balance_slots(&px->px_views[i]);
		all += px->px_views[i].limit;
	}
	return n > 0 ? n : all > 0 ? all : 1;
}

/* Under px_shed_mtx: slots held on the servers in force. */
unsigned int
upstream_inflight(const struct proxy *px)
{
	unsigned int	 n = 0;
	size_t		 i;

	for (i = 0; i < px->px_nslots; i++)
		n += limiter_inflight(px->px_slots[i]->ss_lim);
	return n;
}

/* Under px_shed_mtx: no server in rotation has a free slot. */
int
upstream_full(struct proxy *px, uint64_t now)
{
	if (px->px_nslots == 0)
		return 0;
	sample_views(px, now);
	return balance_pick(px->px_views, px->px_nslots, 0) == -1;
}

/*
 * Under px_shed_mtx: the limiters as one, for the gauges: limits and
 * in-flight summed, the latencies those of the server with the lowest
 * limit (the one an operator looks at first; each server's limit is in
 * its own metrics).
 */
void
upstream_limiter_state(const struct proxy *px, struct limiter_state *st)
{
	struct limiter_state	 one;
	size_t			 i;
	double			 limit = 0, low = -1;
	unsigned int		 inflight = 0;
	uint64_t		 samples = 0, drops = 0;

	memset(st, 0, sizeof(*st));
	for (i = 0; i < px->px_nslots; i++) {
		limiter_state(px->px_slots[i]->ss_lim, &one);
		limit += one.limit;
		inflight += one.inflight;
		samples += one.samples;
		drops += one.drops;
		if (low < 0 || one.limit < low) {
			low = one.limit;
			*st = one;
		}
	}
	st->limit = limit;
	st->inflight = inflight;
	st->samples = samples;
	st->drops = drops;
}

/*
 * Under px_shed_mtx: every server's limiter reads the wall clock again
 * (its probes aligned across instances, limiter.h).
 */
void
upstream_set_wallclock(struct proxy *px, uint64_t now, uint64_t wall)
{
	size_t	 i;

	for (i = 0; i < px->px_nslots; i++)
		limiter_set_wallclock(px->px_slots[i]->ss_lim, now, wall);
}

/* At the end (shed_free()): the balancer's list lets go of its servers. */
void
upstream_slots_free(struct proxy *px)
{
	size_t	 i;

	shed_lock(px);
	for (i = 0; i < px->px_nslots; i++)
		slots_unref(px->px_slots[i]);
	shed_unlock(px);
	free(px->px_slots);
	free(px->px_views);
	free(px->px_slots_next);
	free(px->px_views_next);
	px->px_slots = px->px_slots_next = NULL;
	px->px_views = px->px_views_next = NULL;
	px->px_nslots = 0;
}
