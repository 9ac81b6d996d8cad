/*
 * lease.h: what spillway decides about the buckets it shares on Redis
 * ([cluster]). Pure: no libevent, no hiredis, no globals, no clock (now is
 * an argument, in usec).
 *
 * A shared bucket lives in Redis; an instance takes tokens from it in
 * leases, a few at a time, and spends them locally, so Redis is not on a
 * request's path. One struct lease per bucket per instance:
 *
 *   - stock: tokens leased and not yet spent; a request takes one.
 *   - debt: with no stock, a request may be admitted on credit (a new
 *     client, or the stock ran out while a lease was on its way), at most
 *     one lease's worth, then what the local share admits
 *     (lease_admit_wait()); the debt is charged to the shared bucket with
 *     the next call, which may take it below zero. So no request waits on
 *     Redis, and the long-run rate is still the shared one.
 *   - empty_until: Redis said the bucket is empty for that long: refuse
 *     until then without asking again.
 *
 * Margin: at any time an instance holds at most 1.5 leases of stock and
 * a lease and a local burst (burst / N) of debt, so over any window the N
 * instances together admit at most 2 * burst + rate * window + 2.5 * N *
 * lease (README: Cluster-wide limits).
 *
 * Replies: the script's reply (and the heartbeat's) is interpreted from a
 * flat copy of a reply tree, struct lease_reply; lease_reply_parse() reads
 * one from RESP bytes, for the tests and the fuzzer.
 */
#ifndef SPILLWAY_LEASE_H
#define SPILLWAY_LEASE_H

#include <stddef.h>
#include <stdint.h>

#define LEASE_MAX		10000	/* tokens in one lease */
#define LEASE_RTT_MIN		1000	/* usec: a round trip is at least */
#define LEASE_WAIT_MAX		(3600ULL * 1000000)	/* usec */
#define LEASE_INSTANCES_MAX	10000

struct lease {
	uint64_t	 ls_stock;	/* leased, unspent tokens */
	uint64_t	 ls_debt;	/* admitted on credit, not charged */
	uint64_t	 ls_asked_at;	/* a call is out since (usec); 0 none */
	uint64_t	 ls_empty_until; /* shared bucket empty until (usec) */
};

/* What a call asks: tokens wanted and debt charged. */
struct lease_ask {
	uint64_t	 la_want;
	uint64_t	 la_debt;
};

/*
 * Tokens per lease for a bucket of rate (tokens per minute) and burst,
 * with calls taking rtt usec, shared by n instances: what the bucket
 * refills in two round trips, at least 1, at most burst / (2 n) (the
 * leases of all instances hold at most about the burst) and LEASE_MAX.
 */
uint64_t	 lease_size(uint64_t rate, uint64_t burst, uint64_t rtt,
		    unsigned int n);

/* The local share of a rate or burst among n instances: v / n, >= 1. */
uint64_t	 lease_share(uint64_t v, unsigned int n);

/* usec until a request could be admitted; 0: now. */
uint64_t	 lease_wait(const struct lease *, uint64_t size, uint64_t now);

/* Spend one token (or one of credit): after lease_wait() said 0. */
void		 lease_take(struct lease *, uint64_t size, uint64_t now);

struct tbucket;

/*
 * Admission on one shared bucket: usec until a request could be admitted,
 * 0: now. Stock first, then one lease's credit (lease_wait()); past that,
 * while the lease is on its way, the local share's bucket tb decides, as
 * when Redis is slow, and *local says so. Spend with lease_spend().
 */
uint64_t	 lease_admit_wait(const struct lease *, struct tbucket *tb,
		    uint64_t size, uint64_t now, int *local);

/* Spend one: stock or credit, or (local) a token of tb, owed as debt. */
void		 lease_spend(struct lease *, struct tbucket *tb,
		    uint64_t size, uint64_t now, int local);

/*
 * Whether to call Redis now: 1 with *ask filled (the debt moves into the
 * call; the lease is marked as asked) or 0. A call out for longer than
 * stale usec is forgotten and asked again.
 */
int		 lease_want(struct lease *, uint64_t size, uint64_t stale,
		    uint64_t now, struct lease_ask *ask);

/*
 * The answer to a call: granted tokens, and wait usec until the shared
 * bucket has a token again (0: it has). failed: the call was not made or
 * had no answer: the debt it carried comes back (it was never charged).
 */
void		 lease_grant(struct lease *, uint64_t granted, uint64_t wait,
		    uint64_t now);
void		 lease_failed(struct lease *, const struct lease_ask *);

/* Forget everything (Redis went away, or came back). */
void		 lease_reset(struct lease *);

/* A reply, flattened: the top value and, for an array, its elements. */
enum lease_reply_type {
	LR_NONE = 0,	/* nothing: the connection failed */
	LR_STATUS,	/* +OK */
	LR_ERROR,	/* -ERR ... */
	LR_INTEGER,	/* :n */
	LR_STRING,	/* $n bulk string */
	LR_NIL,		/* $-1 or *-1 */
	LR_ARRAY,	/* *n */
};

#define LEASE_REPLY_ELEMS	4	/* elements kept; all are counted */
#define LEASE_REPLY_STR		64	/* bytes kept of a string */

struct lease_reply_value {
	enum lease_reply_type	 lv_type;
	long long		 lv_int;
	size_t			 lv_len;	/* full length of a string */
	char			 lv_str[LEASE_REPLY_STR];
};

struct lease_reply {
	struct lease_reply_value lr_top;
	size_t			 lr_n;		/* elements of an array */
	struct lease_reply_value lr_elem[LEASE_REPLY_ELEMS];
};

/* Results of interpreting a reply. */
#define LEASE_REPLY_OK		0
#define LEASE_REPLY_BAD		(-1)	/* not what the script returns */
#define LEASE_REPLY_NOSCRIPT	(-2)	/* Redis lost the script: EVAL it */

/*
 * The take script's reply {granted, wait_usec} to a call that asked for
 * asked tokens: LEASE_REPLY_OK with *granted and *wait set, or an error
 * above. A reply granting more than asked, or negative, is BAD.
 */
int		 lease_reply_take(const struct lease_reply *, uint64_t asked,
		    uint64_t *granted, uint64_t *wait);

/* The heartbeat script's reply: live instances, 1..LEASE_INSTANCES_MAX. */
int		 lease_reply_instances(const struct lease_reply *,
		    unsigned int *n);

/*
 * Read one RESP reply from buf: the bytes it took (> 0), 0 if buf holds
 * only the start of one, -1 if it is not RESP (or nests deeper than 4).
 */
long		 lease_reply_parse(const char *buf, size_t len,
		    struct lease_reply *);

/*
 * The Lua scripts that keep the shared state in Redis (run by EVALSHA,
 * EVAL on NOSCRIPT): take, a bucket's tokens by Redis' own clock; beat, this
 * instance's heartbeat and the count of live ones. Their replies are read
 * by lease_reply_take() and lease_reply_instances().
 */
extern const char lease_take_script[];
extern const char lease_beat_script[];

#endif /* SPILLWAY_LEASE_H */
