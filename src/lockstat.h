/*
 * lockstat.h: a lock the workers share, counted: how often it was taken
 * and how often a taker found it held and had to wait
 * (spillway_lock_*_total), so that "no contended lock on the hot path" is
 * a reading, not a hope. Both counts change only under the lock (a load
 * and a store, no atomic read-modify-write); a scrape reads them without
 * it.
 */
#ifndef SPILLWAY_LOCKSTAT_H
#define SPILLWAY_LOCKSTAT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

struct lock_stat {
	_Atomic uint64_t	 ls_taken;
	_Atomic uint64_t	 ls_waited;
};

static inline void
lock_counted(pthread_mutex_t *m, struct lock_stat *ls)
{
	int	 waited = 0;

	if (pthread_mutex_trylock(m) != 0) {
		waited = 1;
		pthread_mutex_lock(m);
	}
	atomic_store_explicit(&ls->ls_taken, atomic_load_explicit(
	    &ls->ls_taken, memory_order_relaxed) + 1, memory_order_relaxed);
	if (waited)
		atomic_store_explicit(&ls->ls_waited, atomic_load_explicit(
		    &ls->ls_waited, memory_order_relaxed) + 1,
		    memory_order_relaxed);
}

#endif
