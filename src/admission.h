/*
 * admission.h: the first door. Token buckets per configuration: one
 * global, one per client key (in a bounded table), one per request class.
 * Pure: no libevent, no globals, no clock (now is an argument, in usec).
 *
 * A request is admitted only if every bucket that applies to it has a
 * token; then it takes one from each. A refused request takes nothing and
 * is told how long until every bucket it needs has one again.
 */
#ifndef SPILLWAY_ADMISSION_H
#define SPILLWAY_ADMISSION_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "lease.h"
#include "tbucket.h"

#define ADMISSION_KEY_MAX	64	/* bytes of a client key compared */

enum admission_bucket {
	ADM_BUCKET_GLOBAL = 0,
	ADM_BUCKET_CLIENT,
	ADM_BUCKET_CLASS,
	ADM_NBUCKETS
};

struct admission_verdict {
	int			 refused;	/* 1: no token somewhere */
	int			 dry_run;	/* refused, but let through */
	enum admission_bucket	 bucket;	/* the one that refused */
	uint64_t		 wait_usec;	/* until all have a token */
	uint64_t		 retry_after;	/* whole seconds, >= 1 */
	/* shared on Redis: the calls to make, and each bucket's whole size */
	int			 asking[ADM_NBUCKETS];
	struct lease_ask	 ask[ADM_NBUCKETS];
	uint64_t		 rate[ADM_NBUCKETS];	/* per minute */
	uint64_t		 burst[ADM_NBUCKETS];
};

/*
 * A bucket as a call to Redis names it, to find its lease again when the
 * answer comes: the class by name, the client by key kind and key.
 */
struct admission_ref {
	enum admission_bucket	 ar_bucket;
	int			 ar_kind;	/* client: enum client_key_kind */
	const char		*ar_key;	/* client key or class name */
	size_t			 ar_keylen;
};

/* Counters of one class, by verdict. */
struct admission_counters {
	uint64_t	 admitted;
	uint64_t	 refused[ADM_NBUCKETS];
	uint64_t	 dry_run[ADM_NBUCKETS];	/* would have been refused */
};

struct admission;

/*
 * Build the admission state for a configuration; seed keys the hash of
 * client keys (16 random bytes: keys are chosen by clients).
 */
struct admission *admission_new(const struct config *,
		    const uint8_t seed[16], uint64_t now);
void		 admission_free(struct admission *);

/*
 * Whether a request of class class_idx meets any bucket under conf: a
 * global, client or class rate. One that meets none is admitted without
 * asking (and its admission is not counted in admission_counters()).
 */
int		 admission_applies(const struct config *, size_t class_idx);
int		 admission_reconfigure(struct admission *, const struct config *,
		    uint64_t now);

/*
 * Decide for one request of class class_idx (an index into the
 * configuration's classes) and client key. Keys of different kinds
 * (enum client_key_kind) never share a bucket: a header value that spells
 * an address is not that address. The verdict says whether it is
 * refused; in dry-run mode nothing is refused but the would-be refusal is
 * counted and reported with dry_run set.
 */
void		 admission_check(struct admission *, uint64_t now,
		    size_t class_idx, int key_kind, const char *key,
		    size_t keylen, struct admission_verdict *);

/*
 * Shared buckets ([cluster]). While shared, a bucket admits from its
 * lease (lease.h) and admission_check() fills the verdict's asks: the
 * caller makes those calls and reports each answer with
 * admission_granted(), or admission_ask_failed() if there is none. While
 * not shared, each bucket is local at 1/n of its rate and burst.
 */
void		 admission_set_shared(struct admission *, int shared,
		    unsigned int n, uint64_t now);
int		 admission_shared(const struct admission *);
void		 admission_set_rtt(struct admission *, uint64_t rtt,
		    uint64_t stale);
void		 admission_granted(struct admission *,
		    const struct admission_ref *, uint64_t granted,
		    uint64_t wait, uint64_t now);
void		 admission_ask_failed(struct admission *,
		    const struct admission_ref *, const struct lease_ask *);

const struct admission_counters *admission_counters(const struct admission *,
		    size_t class_idx);
/*
 * The index of the class named name in the configuration ad was last
 * built for (a request classified under another one, across a reload);
 * the number of classes if it has none of that name (no class bucket).
 */
size_t		 admission_class_of(const struct admission *, const char *name);
size_t		 admission_clients(const struct admission *);
uint64_t	 admission_evictions(const struct admission *);
const char	*admission_bucket_name(enum admission_bucket);

#endif /* SPILLWAY_ADMISSION_H */
