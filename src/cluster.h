/*
 * cluster.h: the admission buckets shared by every instance on one Redis
 * ([cluster] redis). I/O: one hiredis async connection on the proxy's
 * event loop; what it decides is in lease.c (pure).
 *
 * Owned by one event loop (the proxy's, worker 0's): every callback runs
 * there, and cluster_ask() from another thread hands its calls over to
 * it. Admission is told under adm_mtx, its lock. Built without hiredis,
 * cluster_new() returns an object that stays off (the configuration
 * refuses [cluster] redis).
 */
#ifndef SPILLWAY_CLUSTER_H
#define SPILLWAY_CLUSTER_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "admission.h"
#include "config.h"

/* States; see cluster_state_name(). */
enum cluster_state {
	CL_OFF = 0,	/* no [cluster] redis: buckets are local, whole */
	CL_CONNECTING,	/* connecting: local share meanwhile */
	CL_UP,		/* Redis answers: buckets shared, leases */
	CL_DOWN,	/* lost: local share; reconnect after a back-off */
};

struct cluster_stats {
	enum cluster_state	 cs_state;
	unsigned int		 cs_instances;	/* live, as last learned */
	uint64_t		 cs_calls;	/* commands sent */
	uint64_t		 cs_errors;	/* failed: no answer, bad answer */
	uint64_t		 cs_lease_tokens; /* tokens granted by Redis */
	uint64_t		 cs_changes;	/* up/down transitions */
	uint64_t		 cs_rtt_usec;	/* smoothed round trip */
};

struct cluster;

struct cluster	*cluster_new(struct event_base *, struct admission *,
		    pthread_mutex_t *adm_mtx);
void		 cluster_free(struct cluster *);

/*
 * Put a configuration in force (start-up or reload; cannot fail): a new
 * address, password or prefix reconnects; none turns sharing off.
 */
void		 cluster_configure(struct cluster *, const struct config *);

/*
 * Make the calls a verdict asks for (admission_check() filled them) for
 * the request's class (by name) and client key.
 */
void		 cluster_ask(struct cluster *, const struct admission_verdict *,
		    const char *class_name, int key_kind, const char *key,
		    size_t keylen);

void		 cluster_stats(const struct cluster *, struct cluster_stats *);
const char	*cluster_state_name(enum cluster_state);

#endif /* SPILLWAY_CLUSTER_H */
