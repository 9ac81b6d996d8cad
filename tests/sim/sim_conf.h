/*
 * sim_conf.h: the limiter's and the queue's configuration as
 * conf/spillway.ini's defaults give them, for both simulations (the
 * latency budget and the largest limit are each simulation's own).
 */
#ifndef SIM_CONF_H
#define SIM_CONF_H

#include <stdint.h>
#include <string.h>

#include "limiter.h"
#include "queue.h"

static inline void
sim_default_conf(struct limiter_conf *lc, struct queue_conf *qc,
    unsigned int max_limit, uint64_t budget_usec)
{
	memset(lc, 0, sizeof(*lc));
	lc->algo = LIMITER_GRADIENT;
	lc->limit = 4;
	lc->min_limit = 2;
	lc->max_limit = max_limit;
	lc->smoothing = 0.2;
	lc->tolerance = 1.5;
	memset(qc, 0, sizeof(*qc));
	qc->size = 1000;
	qc->budget_usec = budget_usec;
	qc->target_usec = budget_usec / 10;
	qc->interval_usec = 100000;
	qc->adaptive_lifo = 1;
}

#endif
