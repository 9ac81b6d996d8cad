/*
 * metrics.h: counters, gauges and histograms, and their rendering as
 * Prometheus text and as JSON. Pure: no libevent, no globals, no clock.
 *
 * Counters live in struct metrics, owned by the proxy and kept across
 * reloads: per-class counters are found by class name, so a class keeps its
 * history when a reload reorders or changes the classes. Gauges (in-flight,
 * limit, queue length, connections...) are not stored here: the caller
 * samples them into a struct metrics_gauges at render time.
 */
#ifndef SPILLWAY_METRICS_H
#define SPILLWAY_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "fault.h"
#include "mbuf.h"
#include "queue.h"

#define METRICS_CLASS_NAME	33	/* class names are at most 32 bytes */
#define METRICS_CLASSES_MAX	1024	/* distinct class names remembered */
#define METRICS_NBUCKETS	14	/* histogram buckets, +Inf included */

/* Limiter dry-run decisions: would wait, would be refused (queue.h). */
#define METRICS_NSHED	4

/*
 * Why a request ended the way it did, when spillway has a reason: the
 * Spillway-Reason header and the access log's reason. The ones before
 * MR_COUNT are answers spillway made itself and are counted by reason;
 * the others are for the log only. metrics_reason_name() is the one name
 * table.
 */
enum metrics_reason {
	MR_RATE_LIMITED = 0,	/* 429: an admission bucket was empty */
	MR_QUEUE_FULL,		/* 503: no room in the queue */
	MR_QUEUE_TIMEOUT,	/* 503: waited queue_timeout */
	MR_OVERLOADED,		/* 503: CoDel, or would outwait its allowance */
	MR_UPSTREAM_ERROR,	/* 502 */
	MR_UPSTREAM_TIMEOUT,	/* 504 */
	MR_NO_SERVER,		/* 503: every backend server is out */
	MR_COUNT,		/* "unknown" */
	MR_CLIENT_CLOSED,	/* 499: the client went away first */
	MR_CONNECT_UNSUPPORTED,	/* 501: CONNECT, no tunnels */
	MR_FAULT_ABORT,		/* a fault injected: counted as a fault */
	MR_NONE,		/* no reason: NULL name */
};

/* Upper bounds of the histogram buckets, in seconds (last: +Inf). */
extern const double metrics_bucket_le[METRICS_NBUCKETS];

struct histogram {
	uint64_t	 h_buckets[METRICS_NBUCKETS];	/* not cumulative */
	uint64_t	 h_count;
	double		 h_sum;				/* seconds */
};

struct class_metrics {
	char			 cm_name[METRICS_CLASS_NAME];
	uint64_t		 cm_status[500];	/* by status, 100..599 */
	uint64_t		 cm_refused[MR_COUNT];
	uint64_t		 cm_dry_run;	/* would have been refused */
	uint64_t		 cm_faults[FAULT_NKINDS]; /* injected, by kind */
	struct histogram	 cm_latency;	/* end to end, every request */
	struct histogram	 cm_served;	/* ...of those sent to a backend */
	struct histogram	 cm_upstream;	/* dispatch to response head */
	struct histogram	 cm_queue_wait;	/* waiters, served or shed */
};

#define METRICS_PP_OK		0
#define METRICS_PP_BAD		1
#define METRICS_PP_TIMEOUT	2

struct metrics {
	struct class_metrics	*m_classes;
	size_t			 m_nclasses;
	size_t			 m_cap;
	struct histogram	 m_latency;	/* end to end, every request */
	struct histogram	 m_served;	/* ...of those sent to a backend */
	struct histogram	 m_upstream;	/* dispatch to response head */
	struct histogram	 m_queue_wait;	/* waiters, served or shed */
	uint64_t		 m_upstream_connect_failures;
	uint64_t		 m_upstream_connections;	/* opened */
	uint64_t		 m_client_connections;	/* accepted */
	uint64_t		 m_reloads_ok;
	uint64_t		 m_reloads_failed;
	uint64_t		 m_bytes_out;	/* response bytes to clients */
	uint64_t		 m_tls_handshakes;	/* completed */
	uint64_t		 m_tls_failed;	/* handshake errors, plain HTTP */
	uint64_t		 m_tls_timeouts;	/* handshake_timeout */
	uint64_t		 m_tls_renegotiations;	/* refused, closed */
	/* PROXY protocol headers: read, refused (closed), timed out */
	uint64_t		 m_proxyproto[3];	/* METRICS_PP_* */
	/* limiter dry run, by what would have happened: waited, refused */
	uint64_t		 m_shed_dry_run[METRICS_NSHED];
};

/* Sampled by the caller when rendering. */
#define METRICS_NLOCKS	4	/* room for the shared locks */

struct metrics_gauges {
	const char	*version;
	double		 uptime_seconds;
	unsigned long	 generation;	/* configuration generation */
	unsigned int	 client_connections;	/* open now */
	unsigned int	 inflight;
	unsigned int	 limit;
	const char	*algorithm;
	double		 limiter_min_rtt_seconds;
	double		 limiter_rtt_seconds;	/* recent */
	double		 limiter_long_rtt_seconds;
	double		 limiter_gradient;
	size_t		 queue_length;
	size_t		 queue_length_prio[QUEUE_NPRIO];
	int		 queue_growing;		/* arrivals outpace departures */
	double		 queue_drain_rate;	/* departures per second */
	double		 loop_lag_seconds;	/* shed.c's smoothed lag */
	double		 queue_wait_seconds;	/* a waiter's allowed wait */
	unsigned int	 upstream_active;	/* busy backend connections */
	unsigned int	 upstream_idle;		/* pooled */
	size_t		 admission_clients;	/* client buckets kept */
	uint64_t	 admission_evictions;
	/* [cluster]: buckets shared on Redis */
	const char	*cluster_state;		/* off, connecting, up, down */
	int		 cluster_up;		/* 1: buckets shared */
	unsigned int	 cluster_instances;	/* sharing, as last learned */
	uint64_t	 cluster_calls;		/* commands sent to Redis */
	uint64_t	 cluster_errors;	/* failed or unanswered */
	uint64_t	 cluster_lease_tokens;	/* tokens leased */
	uint64_t	 cluster_changes;	/* up/down transitions */
	double		 cluster_rtt_seconds;
	/* the locks the workers share: taken, and found held */
	unsigned int	 nlocks;
	const char	*lock_name[METRICS_NLOCKS];
	uint64_t	 lock_taken[METRICS_NLOCKS];
	uint64_t	 lock_waited[METRICS_NLOCKS];
	const char	*config_json;	/* JSON object of the config, or NULL */
	const struct metrics_process *process;	/* NULL: not rendered */
};

/*
 * The process_* family as the Prometheus client libraries export it, read
 * by the caller (procstat.c reads /proc/self); a field < 0 is unknown and
 * its sample left out.
 */
struct metrics_process {
	double		 start_time_seconds;	/* since the Unix epoch */
	double		 cpu_seconds;		/* user + system */
	double		 resident_memory_bytes;
	double		 virtual_memory_bytes;
	double		 open_fds;
	double		 max_fds;
};

void		 metrics_init(struct metrics *);
void		 metrics_free(struct metrics *);

/* The counters of a class by name, created on first use; NULL if full. */
struct class_metrics *metrics_class(struct metrics *, const char *name);

void		 histogram_observe(struct histogram *, double seconds);

/* Add one set of counters into another (workers, summed at scrape). */
int		 metrics_add(struct metrics *, const struct metrics *);

/* Count a wait in the queue in the totals and in cm's (may be NULL). */
void		 metrics_observe_wait(struct metrics *,
		    struct class_metrics *cm, double seconds);

/*
 * Count a finished request's durations (seconds; upstream < 0: it never
 * reached a backend, and is not served) in the totals and in cm's, which
 * may be NULL.
 */
void		 metrics_observe_request(struct metrics *,
		    struct class_metrics *cm, double total, double upstream,
		    int served);


/*
 * Prometheus text exposition format 0.0.4: names spillway_*, _total
 * counters, _seconds and _bytes units, HELP and TYPE lines.
 */
void		 metrics_prometheus(const struct metrics *,
		    const struct metrics_gauges *, struct mbuf *);

/* The same state as one JSON object (no trailing newline). */
void		 metrics_json(const struct metrics *,
		    const struct metrics_gauges *, struct mbuf *);

/* Sums over every class: requests, by status class (1xx..5xx), refused. */
void		 metrics_totals(const struct metrics *, uint64_t *requests,
		    uint64_t byclass[5], uint64_t refused[MR_COUNT],
		    uint64_t *dry_run);

/* A histogram as {"count", "sum", "buckets": [[le, cumulative], ...]}. */
void		 metrics_json_histogram(struct mbuf *,
		    const struct histogram *);
/* {"rate_limited": n, ...}, every reason spillway answers with. */
void		 metrics_json_refused(struct mbuf *,
		    const uint64_t refused[MR_COUNT]);

/* The reason's name, NULL for MR_NONE. */
const char	*metrics_reason_name(enum metrics_reason);

#endif /* SPILLWAY_METRICS_H */
