/*
 * sim_limiter.c: a deterministic discrete-event simulation of spillway's
 * limiter in front of a fragile backend, as a TAP test and a tuning tool.
 *
 *	sim_limiter			the scenario table, with assertions
 *	sim_limiter ALGO MULT [SECS]	one run, a line per simulated second
 *	sim_limiter ALGO shift		the capacity shift run, per second
 *	sim_limiter ALGO slower		the data growth run, per second
 *
 * The backend is a legacy app: C workers, mean service time S (uniform
 * +-25%); requests beyond C wait in an unbounded backlog inside it, and
 * each request's service time grows by THRASH per request in the backend
 * past C when it starts (contention: locks, memory, the database). It
 * never notices a client that gave up: a request the proxy timed out on
 * still takes a worker. Unprotected, it collapses: the backlog grows,
 * service slows, everything times out.
 *
 * In front: open-loop Poisson arrivals, the limiter, and a small FIFO
 * like spillway's queue: a request without a slot waits at most
 * QUEUE_TIMEOUT in at most QUEUE_MAX places, else it is rejected (503).
 * Without it, at offered load = capacity a proxy loses ~16% to Erlang
 * blocking whatever the limit (C = 20: 84% at limit C, 89% at best).
 * A response later than TIMEOUT is a 504: DROPPED. Latency is the
 * client's: queue wait plus backend time. Time is virtual, the PRNG is xorshift64*
 * with a fixed seed: the same output on every run.
 */
#include <math.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "limiter.h"

#define USEC		1000000ULL
#define S_MEAN		20000		/* usec */
#define C_BASE		20		/* workers: capacity 1000 req/s */
#define THRASH		0.05		/* service time per excess request */
#define TIMEOUT		(1 * USEC)
#define QUEUE_MAX	C_BASE
#define QUEUE_TIMEOUT	10000		/* usec */
#define HIST_BIN	100		/* usec */
#define HIST_N		20001		/* up to 2 s, last bin is overflow */
#define MAX_SECS	120

enum ev_type {
	EV_ARRIVAL,
	EV_DONE,	/* the backend finished a request */
	EV_TIMEOUT,	/* the proxy gives up on a request */
	EV_SHIFT,	/* the backend's worker count changes */
	EV_SLOWER,	/* the backend's service time doubles (data growth) */
};

/* Capacity shifts of sim_run(). */
enum shift {
	SHIFT_NONE = 0,
	SHIFT_WORKERS,	/* workers x2 at 1/3, back at 2/3 */
	SHIFT_SLOWER,	/* service time x2 at 1/3, x2 again at 2/3 */
};

struct event {
	uint64_t	 at;
	uint64_t	 seq;	/* ties: first scheduled first */
	enum ev_type	 type;
	unsigned int	 req;
	unsigned int	 arg;
};

struct req {
	uint64_t	 arrived;
	uint64_t	 sent;
	int		 abandoned;	/* the proxy answered 504 */
	int		 live;
	unsigned int	 next;		/* backlog or free list */
};

struct sim {
	uint64_t	 rng;
	uint64_t	 now;
	uint64_t	 seq;
	struct event	*heap;
	size_t		 nheap, heapcap;
	struct req	*reqs;
	unsigned int	 nreqs, reqcap, free_req;
	unsigned int	 backlog_head, backlog_tail;	/* req + 1; 0: none */
	uint64_t	 queue[QUEUE_MAX];		/* arrival times */
	unsigned int	 q_head, q_len;
	unsigned int	 in_backend, busy, workers;
	double		 smean;		/* mean service time, usec */
	double		 rate;		/* arrivals per usec */
	struct limiter	*lm;

	/* measures from `from` on */
	uint64_t	 from;
	uint64_t	 arrivals, ok, rejected, dropped;
	double		 limit_sum;
	uint64_t	 limit_n;
	uint32_t	 hist[HIST_N];
	/* per second, whole run */
	uint32_t	 sec_ok[MAX_SECS], sec_rej[MAX_SECS], sec_drop[MAX_SECS];
	double		 sec_limit[MAX_SECS];
	uint32_t	 sec_limit_n[MAX_SECS];
	uint32_t	 sec_hist_p99[MAX_SECS];
	uint32_t	*sec_hist;	/* HIST_N per second, tuning runs */
};

struct result {
	double		 goodput, p99_ms, limit, reject;
	double		 drop;
};

static uint64_t
rng_next(struct sim *s)
{
	s->rng ^= s->rng >> 12;
	s->rng ^= s->rng << 25;
	s->rng ^= s->rng >> 27;
	return s->rng * 2685821657736338717ULL;
}

/* Uniform in (0, 1). */
static double
rng_unit(struct sim *s)
{
	return ((rng_next(s) >> 11) + 0.5) / 9007199254740992.0;
}

static int
ev_before(const struct event *a, const struct event *b)
{
	return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

static void
ev_push(struct sim *s, uint64_t at, enum ev_type type, unsigned int req,
    unsigned int arg)
{
	struct event	 e = { at, s->seq++, type, req, arg };
	size_t		 i;

	if (s->nheap == s->heapcap) {
		s->heapcap = s->heapcap ? s->heapcap * 2 : 1024;
		s->heap = realloc(s->heap, s->heapcap * sizeof(*s->heap));
		if (s->heap == NULL)
			abort();
	}
	i = s->nheap++;
	while (i > 0 && ev_before(&e, &s->heap[(i - 1) / 2])) {
		s->heap[i] = s->heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	s->heap[i] = e;
}

static struct event
ev_pop(struct sim *s)
{
	struct event	 top = s->heap[0], last = s->heap[--s->nheap];
	size_t		 i = 0, c;

	for (;;) {
		c = 2 * i + 1;
		if (c >= s->nheap)
			break;
		if (c + 1 < s->nheap && ev_before(&s->heap[c + 1], &s->heap[c]))
			c++;
		if (!ev_before(&s->heap[c], &last))
			break;
		s->heap[i] = s->heap[c];
		i = c;
	}
	s->heap[i] = last;
	return top;
}

static unsigned int
req_new(struct sim *s)
{
	unsigned int	 r;

	if (s->free_req != 0) {
		r = s->free_req - 1;
		s->free_req = s->reqs[r].next;
	} else {
		if (s->nreqs == s->reqcap) {
			s->reqcap = s->reqcap ? s->reqcap * 2 : 1024;
			s->reqs = realloc(s->reqs,
			    s->reqcap * sizeof(*s->reqs));
			if (s->reqs == NULL)
				abort();
		}
		r = s->nreqs++;
	}
	memset(&s->reqs[r], 0, sizeof(s->reqs[r]));
	s->reqs[r].live = 1;
	return r;
}

/* A request is freed once both the backend and the proxy are done. */
static void
req_free(struct sim *s, unsigned int r)
{
	s->reqs[r].live = 0;
	s->reqs[r].next = s->free_req;
	s->free_req = r + 1;
}

static void
worker_start(struct sim *s, unsigned int r)
{
	unsigned int	 excess;
	double		 t;

	excess = s->in_backend > s->workers ? s->in_backend - s->workers : 0;
	t = s->smean * (0.75 + 0.5 * rng_unit(s)) * (1 + THRASH * excess);
	s->busy++;
	ev_push(s, s->now + (uint64_t)t, EV_DONE, r, 0);
}

/* Start backlogged requests on free workers. */
static void
backend_pump(struct sim *s)
{
	unsigned int	 r;

	while (s->busy < s->workers && s->backlog_head != 0) {
		r = s->backlog_head - 1;
		s->backlog_head = s->reqs[r].next;
		if (s->backlog_head == 0)
			s->backlog_tail = 0;
		worker_start(s, r);
	}
}

static void
backend_submit(struct sim *s, unsigned int r)
{
	s->in_backend++;
	s->reqs[r].next = 0;
	if (s->backlog_tail != 0)
		s->reqs[s->backlog_tail - 1].next = r + 1;
	else
		s->backlog_head = r + 1;
	s->backlog_tail = r + 1;
	backend_pump(s);
}

static int
measuring(const struct sim *s)
{
	return s->now >= s->from;
}

static void
record_limit(struct sim *s)
{
	unsigned int	 sec = (unsigned int)(s->now / USEC);
	double		 l = limiter_limit(s->lm);

	if (sec < MAX_SECS) {
		s->sec_limit[sec] += l;
		s->sec_limit_n[sec]++;
	}
	if (measuring(s)) {
		s->limit_sum += l;
		s->limit_n++;
	}
}

static void
reject(struct sim *s)
{
	unsigned int	 sec = (unsigned int)(s->now / USEC);

	if (measuring(s))
		s->rejected++;
	if (sec < MAX_SECS)
		s->sec_rej[sec]++;
}

static void
dispatch(struct sim *s, uint64_t arrived)
{
	unsigned int	 r;

	r = req_new(s);
	s->reqs[r].arrived = arrived;
	s->reqs[r].sent = s->now;
	ev_push(s, s->now + TIMEOUT, EV_TIMEOUT, r, 0);
	backend_submit(s, r);
}

/* A slot may be free: serve the queue, dropping who waited too long. */
static void
queue_pump(struct sim *s)
{
	uint64_t	 arrived;

	while (s->q_len > 0) {
		arrived = s->queue[s->q_head];
		if (s->now - arrived <= QUEUE_TIMEOUT &&
		    limiter_acquire(s->lm, s->now) == -1)
			return;
		s->q_head = (s->q_head + 1) % QUEUE_MAX;
		s->q_len--;
		if (s->now - arrived > QUEUE_TIMEOUT)
			reject(s);
		else
			dispatch(s, arrived);
	}
}

static void
on_arrival(struct sim *s)
{
	ev_push(s, s->now + (uint64_t)(-log(rng_unit(s)) / s->rate) + 1,
	    EV_ARRIVAL, 0, 0);
	record_limit(s);	/* Poisson arrivals see time averages */
	if (measuring(s))
		s->arrivals++;
	queue_pump(s);
	if (s->q_len == 0 && limiter_acquire(s->lm, s->now) == 0) {
		dispatch(s, s->now);
		return;
	}
	if (s->q_len == QUEUE_MAX) {
		reject(s);
		return;
	}
	s->queue[(s->q_head + s->q_len++) % QUEUE_MAX] = s->now;
}

static void
on_done(struct sim *s, unsigned int r)
{
	uint64_t	 lat = s->now - s->reqs[r].sent;
	uint64_t	 seen = s->now - s->reqs[r].arrived;
	unsigned int	 sec = (unsigned int)(s->now / USEC), bin;

	s->busy--;
	s->in_backend--;
	backend_pump(s);
	if (s->reqs[r].abandoned) {
		req_free(s, r);
		return;
	}
	s->reqs[r].abandoned = 1;	/* the timeout event frees it */
	limiter_release(s->lm, s->now, lat, LIMITER_SUCCESS);
	queue_pump(s);
	bin = seen / HIST_BIN < HIST_N - 1 ? seen / HIST_BIN : HIST_N - 1;
	if (measuring(s)) {
		s->ok++;
		s->hist[bin]++;
	}
	if (sec < MAX_SECS) {
		s->sec_ok[sec]++;
		if (s->sec_hist != NULL)
			s->sec_hist[(size_t)sec * HIST_N + bin]++;
	}
}

static void
on_timeout(struct sim *s, unsigned int r)
{
	unsigned int	 sec = (unsigned int)(s->now / USEC);

	if (s->reqs[r].abandoned) {	/* answered, or 504 and done */
		req_free(s, r);
		return;
	}
	s->reqs[r].abandoned = 1;	/* the backend still works on it */
	limiter_release(s->lm, s->now, s->now - s->reqs[r].sent,
	    LIMITER_DROPPED);
	queue_pump(s);
	if (measuring(s))
		s->dropped++;
	if (sec < MAX_SECS)
		s->sec_drop[sec]++;
}

static double
hist_p99_ms(const uint32_t *hist, uint64_t n)
{
	uint64_t	 want = n - n / 100, seen = 0;
	unsigned int	 i;

	if (n == 0)
		return 0;
	for (i = 0; i < HIST_N; i++) {
		seen += hist[i];
		if (seen >= want)
			return (i + 1) * HIST_BIN / 1000.0;
	}
	return HIST_N * HIST_BIN / 1000.0;
}

/*
 * Run one scenario: algo at offered load mult x the base capacity for
 * secs, measuring from secs / 2, with a capacity shift at secs / 3 and
 * 2 secs / 3 (enum shift).
 */
static void
sim_run(struct sim *s, enum limiter_algo algo, unsigned int fixed_limit,
    double mult, unsigned int secs, enum shift shift, int keep_hist)
{
	struct limiter_conf	 conf;
	struct event		 e;
	uint64_t		 end = (uint64_t)secs * USEC;

	memset(s, 0, sizeof(*s));
	memset(&conf, 0, sizeof(conf));
	conf.algo = algo;
	conf.limit = algo == LIMITER_FIXED ? fixed_limit : 20;
	conf.min_limit = 2;
	conf.max_limit = 1000;
	s->lm = limiter_new(&conf, 0);
	if (s->lm == NULL)
		abort();
	s->rng = 0x9e3779b97f4a7c15ULL ^ (uint64_t)(mult * 1000) ^
	    ((uint64_t)algo << 32);
	s->workers = C_BASE;
	s->smean = S_MEAN;
	s->rate = mult * C_BASE / (double)S_MEAN;
	s->from = end / 2;
	if (keep_hist && (s->sec_hist = calloc((size_t)MAX_SECS * HIST_N,
	    sizeof(*s->sec_hist))) == NULL)
		abort();
	ev_push(s, 1, EV_ARRIVAL, 0, 0);
	if (shift == SHIFT_WORKERS) {
		ev_push(s, end / 3, EV_SHIFT, 0, 2 * C_BASE);
		ev_push(s, 2 * end / 3, EV_SHIFT, 0, C_BASE);
	} else if (shift == SHIFT_SLOWER) {
		ev_push(s, end / 3, EV_SLOWER, 0, 0);
		ev_push(s, 2 * end / 3, EV_SLOWER, 0, 0);
	}
	while (s->nheap > 0) {
		e = ev_pop(s);
		if (e.at >= end)
			break;
		s->now = e.at;
		switch (e.type) {
		case EV_ARRIVAL:
			on_arrival(s);
			break;
		case EV_DONE:
			on_done(s, e.req);
			break;
		case EV_TIMEOUT:
			on_timeout(s, e.req);
			break;
		case EV_SHIFT:
			s->workers = e.arg;
			backend_pump(s);
			break;
		case EV_SLOWER:
			s->smean *= 2;
			break;
		}
	}
}

static void
sim_result(const struct sim *s, unsigned int secs, struct result *res)
{
	double	 span = secs - s->from / (double)USEC;

	res->goodput = s->ok / span;
	res->p99_ms = hist_p99_ms(s->hist, s->ok);
	res->limit = s->limit_n ? s->limit_sum / s->limit_n : 0;
	res->reject = s->arrivals ? (double)s->rejected / s->arrivals : 0;
	res->drop = s->dropped / span;
}

static void
sim_done(struct sim *s)
{
	limiter_free(s->lm);
	free(s->heap);
	free(s->reqs);
	free(s->sec_hist);
}

static double
sec_limit(const struct sim *s, unsigned int sec)
{
	return s->sec_limit_n[sec] ? s->sec_limit[sec] / s->sec_limit_n[sec] :
	    0;
}

/* Tuning: one run, a line per simulated second. */
static int
series(enum limiter_algo algo, double mult, unsigned int secs,
    enum shift shift)
{
	struct sim		 s;
	struct limiter_state	 st;
	unsigned int		 i;
	uint64_t		 n, j;

	sim_run(&s, algo, C_BASE, mult, secs, shift, 1);
	printf("# %s x%.1f%s: sec goodput rejected dropped p99_ms limit\n",
	    limiter_algo_name(algo), mult, shift == SHIFT_WORKERS ? " shift" :
	    shift == SHIFT_SLOWER ? " slower" : "");
	for (i = 0; i < secs && i < MAX_SECS; i++) {
		for (n = 0, j = 0; j < HIST_N; j++)
			n += s.sec_hist[(size_t)i * HIST_N + j];
		printf("%3u %6u %6u %5u %7.1f %7.1f\n", i, s.sec_ok[i],
		    s.sec_rej[i], s.sec_drop[i],
		    hist_p99_ms(s.sec_hist + (size_t)i * HIST_N, n),
		    sec_limit(&s, i));
	}
	limiter_state(s.lm, &st);
	printf("# end: limit %.1f min_rtt %llu short %llu long %llu "
	    "gradient %.2f samples %llu drops %llu\n", st.limit,
	    (unsigned long long)st.min_rtt_usec,
	    (unsigned long long)st.short_rtt_usec,
	    (unsigned long long)st.long_rtt_usec, st.gradient,
	    (unsigned long long)st.samples, (unsigned long long)st.drops);
	sim_done(&s);
	return 0;
}

static int tap_n, tap_failed;

static void __attribute__((format(printf, 2, 3)))
tap(int ok, const char *fmt, ...)
{
	va_list	 ap;

	tap_n++;
	if (!ok)
		tap_failed++;
	printf("%s %d - ", ok ? "ok" : "not ok", tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

#define SECS		30
#define SHIFT_SECS	60
#define SHIFT_MULT	3.0

static const double	 mults[] = { 0.5, 1, 2, 5, 10 };

/*
 * Goodput over [from, from + 1 s) and over [from + 1 s, to), in req/s.
 */
static void
shift_goodput(const struct sim *s, unsigned int from, unsigned int to,
    double *first, double *rest)
{
	unsigned int	 i;
	double		 sum = 0;

	*first = s->sec_ok[from];
	for (i = from + 1; i < to; i++)
		sum += s->sec_ok[i];
	*rest = sum / (to - from - 1);
}

int
main(int argc, char *argv[])
{
	static const enum limiter_algo	 algos[] = { LIMITER_FIXED,
	    LIMITER_AIMD, LIMITER_VEGAS, LIMITER_GRADIENT };
	struct sim			 s;
	struct result			 r, unloaded;
	double				 cap = C_BASE * (double)USEC / S_MEAN;
	double				 want, a, b, c, d;
	unsigned int			 i, j, t1, t2;
	enum limiter_algo		 algo;
	int				 ok_good, ok_p99, ok_limit, ok;

	if (argc >= 3) {
		for (algo = LIMITER_FIXED; algo <= LIMITER_GRADIENT; algo++)
			if (strcmp(argv[1], limiter_algo_name(algo)) == 0)
				break;
		if (algo > LIMITER_GRADIENT) {
			fprintf(stderr, "usage: sim_limiter [ALGO MULT [SECS]|"
			    "shift|slower]\n");
			return 2;
		}
		if (strcmp(argv[2], "shift") == 0)
			return series(algo, SHIFT_MULT, SHIFT_SECS,
			    SHIFT_WORKERS);
		if (strcmp(argv[2], "slower") == 0)
			return series(algo, SHIFT_MULT, SHIFT_SECS,
			    SHIFT_SLOWER);
		return series(algo, atof(argv[2]),
		    argc > 3 ? (unsigned int)atoi(argv[3]) : SECS, 0);
	}

	/* unloaded: 0.1x, no limit in the way */
	sim_run(&s, LIMITER_FIXED, 1000, 0.1, SECS, SHIFT_NONE, 0);
	sim_result(&s, SECS, &unloaded);
	sim_done(&s);
	printf("# backend: %d workers, S %d ms, capacity %.0f req/s, "
	    "unloaded p99 %.1f ms\n", C_BASE, S_MEAN / 1000, cap,
	    unloaded.p99_ms);
	printf("# %-8s %5s %9s %9s %7s %7s %7s\n", "algo", "load",
	    "offered", "goodput", "p99_ms", "limit", "reject");

	for (i = 0; i < sizeof(algos) / sizeof(algos[0]); i++) {
		algo = algos[i];
		ok_good = ok_p99 = ok_limit = 1;
		for (j = 0; j < sizeof(mults) / sizeof(mults[0]); j++) {
			sim_run(&s, algo, C_BASE, mults[j], SECS, SHIFT_NONE,
			    0);
			sim_result(&s, SECS, &r);
			sim_done(&s);
			printf("# %-8s %4.1fx %9.0f %9.0f %7.1f %7.1f %6.1f%%"
			    "\n", limiter_algo_name(algo), mults[j],
			    mults[j] * cap, r.goodput, r.p99_ms, r.limit,
			    100 * r.reject);
			want = 0.90 * fmin(mults[j], 1) * cap;
			if (mults[j] >= 2)
				want = 0.95 * cap;
			if (algo == LIMITER_VEGAS)	/* looser */
				want = 0.85 * fmin(mults[j], 1) * cap;
			if (r.goodput < want)
				ok_good = 0;
			if (r.p99_ms > 2.5 * unloaded.p99_ms)
				ok_p99 = 0;
			if (mults[j] >= 2 && (r.limit < 0.7 * C_BASE ||
			    r.limit > 3 * C_BASE))
				ok_limit = 0;
		}
		if (algo == LIMITER_VEGAS)
			tap(ok_good, "%s: goodput >= 0.85 x min(offered, "
			    "capacity)", limiter_algo_name(algo));
		else if (algo == LIMITER_GRADIENT)
			tap(ok_good, "%s: goodput >= 0.9 x min(offered, "
			    "capacity), 0.95 x capacity from 2x",
			    limiter_algo_name(algo));
		else
			continue;
		tap(ok_p99, "%s: p99 <= 2.5 x unloaded p99",
		    limiter_algo_name(algo));
		tap(ok_limit, "%s: limit within [0.7 C, 3 C] from 2x",
		    limiter_algo_name(algo));
	}

	t1 = SHIFT_SECS / 3;
	t2 = 2 * SHIFT_SECS / 3;
	printf("# shift at %.0fx: workers %d -> %d at %us -> %d at %us; "
	    "goodput in the 2nd second after, then the rest\n", SHIFT_MULT,
	    C_BASE, 2 * C_BASE, t1, C_BASE, t2);
	for (i = 1; i < sizeof(algos) / sizeof(algos[0]); i++) {
		algo = algos[i];
		sim_run(&s, algo, C_BASE, SHIFT_MULT, SHIFT_SECS,
		    SHIFT_WORKERS, 0);
		shift_goodput(&s, t1 + 1, t2, &a, &b);
		shift_goodput(&s, t2 + 1, SHIFT_SECS, &c, &d);
		printf("# %-8s up: %5.0f then %5.0f (limit %5.1f)  down: "
		    "%5.0f then %5.0f (limit %5.1f)\n",
		    limiter_algo_name(algo), a, b, sec_limit(&s, t2 - 1), c, d,
		    sec_limit(&s, SHIFT_SECS - 1));
		sim_done(&s);
		want = algo == LIMITER_VEGAS ? 0.85 : 0.9;
		ok = a >= want * 2 * cap && b >= want * 2 * cap &&
		    c >= want * cap && d >= want * cap;
		if (algo != LIMITER_AIMD)
			tap(ok, "%s: capacity x2 then /2 followed within 2 s",
			    limiter_algo_name(algo));
	}
	/* data growth: the same workers, service time x2 at t1, x2 at t2 */
	printf("# slower at %.0fx: service time %d ms -> %d ms at %us -> %d ms "
	    "at %us; goodput from 5 s after each\n", SHIFT_MULT,
	    S_MEAN / 1000, 2 * S_MEAN / 1000, t1, 4 * S_MEAN / 1000, t2);
	for (i = 2; i < sizeof(algos) / sizeof(algos[0]); i++) {
		algo = algos[i];
		sim_run(&s, algo, C_BASE, SHIFT_MULT, SHIFT_SECS,
		    SHIFT_SLOWER, 0);
		shift_goodput(&s, t1 + 4, t2, &a, &b);
		shift_goodput(&s, t2 + 4, SHIFT_SECS, &c, &d);
		printf("# %-8s x2: %5.0f of %5.0f (limit %5.1f)  x4: %5.0f of "
		    "%5.0f (limit %5.1f)\n", limiter_algo_name(algo), b,
		    cap / 2, sec_limit(&s, t2 - 1), d, cap / 4,
		    sec_limit(&s, SHIFT_SECS - 1));
		sim_done(&s);
		if (algo == LIMITER_GRADIENT)
			tap(b >= 0.85 * cap / 2 && d >= 0.85 * cap / 4,
			    "%s: a slower backend (data growth) re-learned "
			    "within 5 s", limiter_algo_name(algo));
	}
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}
