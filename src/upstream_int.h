/*
 * upstream_int.h: what the three parts of the upstream module share, and
 * nothing outside them uses: upstream.c (servers, pools, connecting,
 * failover), upstream_slots.c (per-server concurrency limits and the
 * balancer's choice) and upstream_health.c (health verdicts, their logs,
 * active checks' results and trials). Lock order: px_shed_mtx, then
 * px_health_mtx, never the other way round.
 */
#ifndef SPILLWAY_UPSTREAM_INT_H
#define SPILLWAY_UPSTREAM_INT_H

#include "spillway.h"
#include "health.h"

#define PICK_PROBES	8	/* trials one pick may start */

/*
 * The lock on every server's health (shared by the workers' servers),
 * counted; the time is read under it, so that health sees it only go
 * forward (a time read before waiting could be older than one another
 * worker already gave it, and its durations would wrap).
 */
static inline uint64_t
health_lock(const struct worker *w)
{
	lock_counted(&w->w_proxy->px_health_mtx,
	    &w->w_proxy->px_lockstat[PXL_HEALTH]);
	return now_usec();
}

/*
 * Before the lock goes: what the worker's servers' health is now, for
 * the readers that skip the lock while a server is plainly up
 * (health_quiet_from(); server_quiet()). Every change of a health is made
 * under health_lock() by a worker that has the server, and published here.
 */
static inline void
health_unlock(const struct worker *w)
{
	size_t		 i;

	/* at start-up, before its first generation: upstream_health_publish() */
	for (i = 0; w->w_conf != NULL && i < w->w_nservers; i++)
		atomic_store_explicit(w->w_servers[i]->sv_quiet,
		    health_quiet_from(w->w_servers[i]->sv_health,
		    &w->w_conf->backend.health),
		    memory_order_release);
	pthread_mutex_unlock(&w->w_proxy->px_health_mtx);
}

/*
 * Without the lock: is sv up with no failure counted (in slow start or
 * not)? A change made meanwhile by another worker is seen at its next
 * request; this one is ordered before it.
 */
static inline int
server_quiet(const struct server *sv)
{
	return atomic_load_explicit(sv->sv_quiet, memory_order_acquire) !=
	    UINT64_MAX;
}

/* upstream.c */
void		 upconn_free(struct upconn *);
void		 drop_idle(struct server *);
void		 probe_start(struct server *, uint64_t);
void		 server_put(struct server *);
struct server	*shared_server(const struct worker *, size_t);

/* upstream_slots.c */
void		 server_limiter_conf(const struct config *,
		    const struct config_addr *, struct limiter_conf *);
void		 slots_unref(struct server_slots *);
void		 slots_commit(struct worker *, const struct config *);
void		 slot_move(struct conn *, struct server *);

/* upstream_health.c */
void		 sync_checks(struct server *, const struct config *);
void		 server_event(struct server *, enum health_event, int trial);
void		 tell_workers(const struct worker *);
void		 move_connecting(struct server *);
uint64_t	 no_server_retry_after(const struct worker *, uint64_t now);

#endif
