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

const struct admission_counters *admission_counters(const struct admission *,
		    size_t class_idx);
size_t		 admission_clients(const struct admission *);
uint64_t	 admission_evictions(const struct admission *);
const char	*admission_bucket_name(enum admission_bucket);

#endif /* SPILLWAY_ADMISSION_H */
