/*
 * Unit tests of leases of shared tokens (lease.c) and of admission in
 * shared mode, on a fake clock; a fake Redis plays the take script, with
 * the same arithmetic, so that the stated margin can be checked: N
 * instances together admit at most burst + rate * T + 1.5 * N * lease +
 * N * (burst / N) (stock leased, and credit on the local share), and,
 * under enough load, at least nearly rate * T.
 */
#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "admission.h"
#include "config.h"
#include "lease.h"
#include "tap.h"
#include "tbucket.h"

#define SEC	1000000ULL
#define PER_S(n)	((n) * 60ULL)

static void
test_size(void)
{
	/* 100/s, 1 ms round trips: 0.2 tokens in two: at least 1 */
	CHECK_EQ_INT(lease_size(PER_S(100), 100, 1000, 1), 1);
	/* 10000/s, 5 ms: 100 tokens in two round trips */
	CHECK_EQ_INT(lease_size(PER_S(10000), 10000, 5000, 1), 100);
	/* capped by burst / (2 n) */
	CHECK_EQ_INT(lease_size(PER_S(10000), 100, 5000, 2), 25);
	/* never 0, whatever the burst */
	CHECK_EQ_INT(lease_size(PER_S(10000), 1, 5000, 3), 1);
	/* a round trip under LEASE_RTT_MIN counts as that */
	CHECK_EQ_INT(lease_size(PER_S(60000), 1000000, 0, 1), 120);
	CHECK(lease_size(600000000ULL, 10000000, 1000000000ULL, 1) ==
	    LEASE_MAX);
}

static void
test_share(void)
{
	CHECK_EQ_INT(lease_share(PER_S(60), 3), PER_S(20));
	CHECK_EQ_INT(lease_share(10, 1), 10);
	CHECK_EQ_INT(lease_share(10, 0), 10);
	CHECK_EQ_INT(lease_share(2, 3), 1);	/* never 0 */
}

static void
test_credit_then_stock(void)
{
	struct lease		 ls;
	struct lease_ask	 a;

	lease_reset(&ls);
	/* a new bucket: admitted on credit, one call asks a lease */
	CHECK_EQ_INT(lease_wait(&ls, 4, 10), 0);
	lease_take(&ls, 4, 10);
	CHECK_EQ_INT(ls.ls_debt, 1);
	CHECK_EQ_INT(lease_want(&ls, 4, SEC, 10, &a), 1);
	CHECK_EQ_INT(a.la_want, 4);
	CHECK_EQ_INT(a.la_debt, 1);
	CHECK_EQ_INT(ls.ls_debt, 0);
	/* one call out at a time */
	CHECK_EQ_INT(lease_want(&ls, 4, SEC, 20, &a), 0);
	/* credit up to one lease while it is out, then refused */
	lease_take(&ls, 4, 20);
	lease_take(&ls, 4, 20);
	lease_take(&ls, 4, 20);
	lease_take(&ls, 4, 20);
	CHECK_EQ_INT(ls.ls_debt, 4);
	CHECK(lease_wait(&ls, 4, 20) > 0);
	/* granted: stock spent before credit */
	lease_grant(&ls, 4, 0, 30);
	CHECK_EQ_INT(lease_wait(&ls, 4, 30), 0);
	lease_take(&ls, 4, 30);
	CHECK_EQ_INT(ls.ls_stock, 3);
	/* stock above half a lease, but a debt to charge: a call */
	CHECK_EQ_INT(lease_want(&ls, 4, SEC, 30, &a), 1);
	CHECK_EQ_INT(a.la_want, 0);
	CHECK_EQ_INT(a.la_debt, 4);
	lease_grant(&ls, 0, 0, 40);
	CHECK_EQ_INT(lease_want(&ls, 4, SEC, 40, &a), 0);
	lease_take(&ls, 4, 40);		/* stock 2 = size / 2: ask */
	CHECK_EQ_INT(lease_want(&ls, 4, SEC, 40, &a), 1);
	CHECK_EQ_INT(a.la_want, 4);
}

static void
test_empty(void)
{
	struct lease		 ls;
	struct lease_ask	 a;

	lease_reset(&ls);
	CHECK_EQ_INT(lease_want(&ls, 2, SEC, 100, &a), 1);
	lease_grant(&ls, 0, 500000, 100);	/* empty for 0.5 s */
	CHECK_EQ_INT(lease_wait(&ls, 2, 100), 500000);
	CHECK_EQ_INT(lease_wait(&ls, 2, 400100), 100000);
	/* no call while it is empty and nothing is owed */
	CHECK_EQ_INT(lease_want(&ls, 2, SEC, 200, &a), 0);
	/* then credit again, and a call */
	CHECK_EQ_INT(lease_wait(&ls, 2, 500100), 0);
	lease_take(&ls, 2, 500100);
	CHECK_EQ_INT(lease_want(&ls, 2, SEC, 500100, &a), 1);
	CHECK_EQ_INT(a.la_debt, 1);
}

static void
test_failed_and_stale(void)
{
	struct lease		 ls;
	struct lease_ask	 a;

	lease_reset(&ls);
	lease_take(&ls, 3, 1);
	lease_take(&ls, 3, 1);
	CHECK_EQ_INT(lease_want(&ls, 3, 1000, 1, &a), 1);
	/* not sent: the debt comes back, to be charged later */
	lease_failed(&ls, &a);
	CHECK_EQ_INT(ls.ls_debt, 2);
	CHECK_EQ_INT(ls.ls_asked_at, 0);
	CHECK_EQ_INT(lease_want(&ls, 3, 1000, 2, &a), 1);
	/* no answer for longer than stale: asked again */
	CHECK_EQ_INT(lease_want(&ls, 3, 1000, 500, &a), 0);
	CHECK_EQ_INT(lease_want(&ls, 3, 1000, 1002, &a), 1);
}

/* The take script, in C: the same arithmetic on doubles. */
struct fake_redis {
	double		 level;
	uint64_t	 last;
	int		 init;
	uint64_t	 charged;	/* tokens granted + debt */
};

static void
fake_take(struct fake_redis *r, uint64_t rate, uint64_t burst,
    uint64_t want, uint64_t debt, uint64_t now, uint64_t *grant,
    uint64_t *wait)
{
	double	 g = 0;

	if (!r->init) {
		r->level = (double)burst;
		r->last = now;
		r->init = 1;
	}
	if (now > r->last) {
		r->level = fmin((double)burst, r->level +
		    (double)(now - r->last) * (double)rate / 60000000.0);
		r->last = now;
	}
	r->level -= (double)debt;
	if (r->level >= 1) {
		g = fmin((double)want, floor(r->level));
		r->level -= g;
	}
	*grant = (uint64_t)g;
	*wait = r->level < 1 ? (uint64_t)ceil((1 - r->level) * 60000000.0 /
	    (double)rate) : 0;
	r->charged += *grant + debt;
}

#define NINST	3
#define NCALLS	64

struct pending {
	int		 inst;
	uint64_t	 at;		/* delivered at */
	struct lease_ask ask;
	int		 used;
};

/*
 * NINST instances, each offered `offered` per second for dur usec in
 * clumps of `clump` at one instant (a client's parallel requests), one
 * shared bucket (rate, burst) behind calls of rtt usec: tokens admitted.
 * Each instance decides as admission_check() does (lease_admit_wait()):
 * stock, else a lease's credit, else its local share's bucket, owed.
 */
static uint64_t
simulate(uint64_t rate, uint64_t burst, uint64_t offered, unsigned clump,
    uint64_t rtt, uint64_t dur, uint64_t *size_out)
{
	struct lease		 ls[NINST];
	struct tbucket		 tb[NINST];
	struct pending		 q[NCALLS];
	struct fake_redis	 r;
	uint64_t		 t, next[NINST], gap = clump * SEC / offered;
	uint64_t		 size = lease_size(rate, burst, rtt, NINST);
	uint64_t		 g, w, n = 0;
	unsigned int		 k;
	int			 i, j, local;

	memset(&r, 0, sizeof(r));
	memset(q, 0, sizeof(q));
	for (i = 0; i < NINST; i++) {
		lease_reset(&ls[i]);
		tbucket_init(&tb[i], lease_share(rate, NINST),
		    lease_share(burst, NINST), 0);
		next[i] = (uint64_t)i * gap / NINST;
	}
	for (t = 0; t < dur; t += 50) {
		for (j = 0; j < NCALLS; j++) {
			if (!q[j].used || q[j].at > t)
				continue;
			/* Redis sees it half way; the answer lands at t */
			fake_take(&r, rate, burst, q[j].ask.la_want,
			    q[j].ask.la_debt, t - rtt / 2, &g, &w);
			lease_grant(&ls[q[j].inst], g, w, t);
			q[j].used = 0;
		}
		for (i = 0; i < NINST; i++) {
			struct lease_ask	 a;

			if (t < next[i])
				continue;
			next[i] += gap;
			for (k = 0; k < clump; k++) {
				if (lease_admit_wait(&ls[i], &tb[i], size, t,
				    &local) != 0)
					continue;
				lease_spend(&ls[i], &tb[i], size, t, local);
				n++;
			}
			if (lease_want(&ls[i], size, 10 * SEC, t, &a)) {
				for (j = 0; j < NCALLS && q[j].used; j++)
					;
				if (j == NCALLS) {
					lease_failed(&ls[i], &a);
					continue;
				}
				q[j].used = 1;
				q[j].inst = i;
				q[j].at = t + rtt;
				q[j].ask = a;
			}
		}
	}
	*size_out = size;
	return n;
}

static void
check_margin(uint64_t rate_s, uint64_t burst, uint64_t offered,
    unsigned int clump, uint64_t rtt)
{
	uint64_t	 size, dur = 10 * SEC;
	uint64_t	 n = simulate(PER_S(rate_s), burst, offered, clump, rtt,
			    dur, &size);
	double		 ideal = (double)burst + (double)rate_s * 10;
	double		 margin = 1.5 * NINST * (double)size +
			    NINST * (double)lease_share(burst, NINST);

	printf("# rate %llu/s burst %llu, %d instances offered %llu/s each "
	    "in clumps of %u, rtt %llu us: lease %llu, admitted %llu in 10 s "
	    "(ideal %.0f, margin %.1f)\n", (unsigned long long)rate_s,
	    (unsigned long long)burst, NINST, (unsigned long long)offered,
	    clump, (unsigned long long)rtt, (unsigned long long)size,
	    (unsigned long long)n, ideal, margin);
	CHECK((double)n <= ideal + margin);
	CHECK((double)n >= 0.95 * (double)rate_s * 10);
}

static void
test_margin(void)
{
	check_margin(60, 6, 45, 1, 1000);
	check_margin(60, 6, 45, 1, 20000);	/* slow Redis */
	check_margin(1000, 200, 700, 1, 2000);
	check_margin(5000, 5000, 4000, 1, 5000); /* big leases */
	check_margin(30, 3, 200, 1, 500);	/* hard overload */
	/* parallel requests, past a lease's credit: the local share */
	check_margin(60, 6, 45, 6, 1000);
	check_margin(60, 30, 120, 6, 20000);	/* slow Redis, overload */
	check_margin(1000, 200, 2000, 50, 2000);
}

/* RESP read, then interpreted as the take and heartbeat scripts' replies. */
static void
test_replies(void)
{
	struct lease_reply	 r;
	uint64_t		 g = 0, w = 0;
	unsigned int		 n = 0;
	const char		*ok = "*2\r\n:3\r\n:1500\r\n";

	CHECK_EQ_INT(lease_reply_parse(ok, strlen(ok), &r), (long)strlen(ok));
	CHECK_EQ_INT(lease_reply_take(&r, 4, &g, &w), LEASE_REPLY_OK);
	CHECK_EQ_INT(g, 3);
	CHECK_EQ_INT(w, 1500);
	/* more than asked, or negative: refused */
	CHECK_EQ_INT(lease_reply_take(&r, 2, &g, &w), LEASE_REPLY_BAD);
	lease_reply_parse("*2\r\n:-1\r\n:0\r\n", 14, &r);
	CHECK_EQ_INT(lease_reply_take(&r, 4, &g, &w), LEASE_REPLY_BAD);
	/* the wrong shape */
	lease_reply_parse("*3\r\n:1\r\n:0\r\n:0\r\n", 18, &r);
	CHECK_EQ_INT(lease_reply_take(&r, 4, &g, &w), LEASE_REPLY_BAD);
	lease_reply_parse("$1\r\n1\r\n", 7, &r);
	CHECK_EQ_INT(lease_reply_take(&r, 4, &g, &w), LEASE_REPLY_BAD);
	/* the script gone: EVAL it */
	lease_reply_parse("-NOSCRIPT No matching script\r\n", 30, &r);
	CHECK_EQ_INT(lease_reply_take(&r, 4, &g, &w), LEASE_REPLY_NOSCRIPT);
	CHECK_EQ_INT(lease_reply_instances(&r, &n), LEASE_REPLY_NOSCRIPT);
	lease_reply_parse("-ERR WRONGTYPE\r\n", 16, &r);
	CHECK_EQ_INT(lease_reply_take(&r, 4, &g, &w), LEASE_REPLY_BAD);
	/* instances */
	lease_reply_parse(":3\r\n", 4, &r);
	CHECK_EQ_INT(lease_reply_instances(&r, &n), LEASE_REPLY_OK);
	CHECK_EQ_INT(n, 3);
	lease_reply_parse(":0\r\n", 4, &r);
	CHECK_EQ_INT(lease_reply_instances(&r, &n), LEASE_REPLY_BAD);
	/* incomplete, and not RESP */
	CHECK_EQ_INT(lease_reply_parse("*2\r\n:3\r\n", 8, &r), 0);
	CHECK_EQ_INT(lease_reply_parse(":3\r", 3, &r), 0);
	CHECK_EQ_INT(lease_reply_parse("?3\r\n", 4, &r), -1);
	CHECK_EQ_INT(lease_reply_parse(":3\rx", 4, &r), -1);
	CHECK_EQ_INT(lease_reply_parse("$-2\r\n", 5, &r), -1);
	CHECK_EQ_INT(lease_reply_parse(":99999999999999999999\r\n", 24, &r),
	    -1);
	CHECK_EQ_INT(lease_reply_parse("*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n",
	    24, &r), -1);	/* deeper than 4 */
}

/* Admission for an [admission] section, on the fake clock; NULL: failed. */
static struct admission *
admission_of(const char *section, struct config **conf)
{
	static const uint8_t	 seed[16];
	char			 text[512];
	char			*err = NULL;

	snprintf(text, sizeof(text), "[backend]\nserver = 127.0.0.1:1\n"
	    "[admission]\n%s", section);
	*conf = config_parse("t.ini", text, &err);
	CHECK(*conf != NULL);
	if (*conf == NULL) {
		free(err);
		return NULL;
	}
	return admission_new(*conf, seed, SEC);
}

/* Admission in shared mode: leases instead of buckets, the share. */
static void
test_admission_shared(void)
{
	struct config		*conf;
	struct admission	*ad;
	struct admission_verdict v;
	struct admission_ref	 ref = { ADM_BUCKET_GLOBAL, 0, NULL, 0 };
	int			 i, n;

	if ((ad = admission_of("rate = 60/s\nburst = 6\n"
	    "client_rate = 30/s\nclient_burst = 3\n", &conf)) == NULL)
		return;
	/* local, 1/3 each: 2 of the burst of 6 */
	admission_set_shared(ad, 0, 3, SEC);
	for (i = 0, n = 0; i < 10; i++) {
		admission_check(ad, SEC, 0, 0, "a", 1, &v);
		n += !v.refused;
		CHECK_EQ_INT(v.asking[ADM_BUCKET_GLOBAL], 0);
	}
	CHECK_EQ_INT(n, 1);	/* client burst 3 / 3 = 1 */
	/* shared: the first request on credit, and calls for both buckets */
	admission_set_shared(ad, 1, 3, SEC);
	CHECK(admission_shared(ad));
	admission_check(ad, SEC, 0, 0, "b", 1, &v);
	CHECK_EQ_INT(v.refused, 0);
	CHECK_EQ_INT(v.asking[ADM_BUCKET_GLOBAL], 1);
	CHECK_EQ_INT(v.ask[ADM_BUCKET_GLOBAL].la_debt, 1);
	CHECK_EQ_INT(v.rate[ADM_BUCKET_GLOBAL], PER_S(60));	/* whole */
	CHECK_EQ_INT(v.burst[ADM_BUCKET_GLOBAL], 6);
	CHECK_EQ_INT(v.asking[ADM_BUCKET_CLIENT], 1);
	/* the global bucket empty for a second: refused, Retry-After 1 */
	admission_granted(ad, &ref, 0, SEC, SEC);
	admission_check(ad, SEC + 10, 0, 0, "b", 1, &v);
	CHECK_EQ_INT(v.refused, 1);
	CHECK_EQ_INT(v.bucket, ADM_BUCKET_GLOBAL);
	CHECK_EQ_INT(v.retry_after, 1);
	/* a lease granted: admitted from it */
	admission_granted(ad, &ref, 1, 0, SEC + 20);
	ref.ar_bucket = ADM_BUCKET_CLIENT;
	ref.ar_key = "b";
	ref.ar_keylen = 1;
	admission_granted(ad, &ref, 1, 0, SEC + 20);
	admission_check(ad, SEC + 30, 0, 0, "b", 1, &v);
	CHECK_EQ_INT(v.refused, 0);
	/* an answer for a key it no longer has is dropped */
	ref.ar_key = "zz";
	ref.ar_keylen = 2;
	admission_granted(ad, &ref, 1, 0, SEC + 40);
	CHECK_EQ_INT(admission_clients(ad), 2);
	admission_free(ad);
	config_free(conf);
}

/*
 * A new client's parallel requests while its first lease is on its way:
 * past the lease's credit, the local share decides (not a 429 for a round
 * trip), and what it admits is owed to the shared bucket.
 */
static void
test_admission_parallel(void)
{
	struct config		*conf;
	struct admission	*ad;
	struct admission_verdict v;
	struct admission_ref	 ref = { ADM_BUCKET_CLIENT, 0, "c", 1 };
	struct lease_ask	 ask;
	int			 i, n;

	if ((ad = admission_of("client_rate = 10/s\nclient_burst = 20\n",
	    &conf)) == NULL)
		return;
	admission_set_shared(ad, 1, 1, SEC);
	for (i = 0, n = 0; i < 6; i++) {
		admission_check(ad, SEC, 0, 0, "b", 1, &v);
		n += !v.refused;
	}
	CHECK_EQ_INT(n, 6);	/* on credit, then on the local share */
	/*
	 * Three instances: a lease of 1 token; one on credit, charged in
	 * the call it makes, one more on credit while that call is out,
	 * then the local share of 20 / 3 = 6.
	 */
	admission_set_shared(ad, 1, 3, SEC);
	for (i = 0, n = 0; i < 10; i++) {
		admission_check(ad, SEC, 0, 0, "c", 1, &v);
		if (i == 0)
			ask = v.ask[ADM_BUCKET_CLIENT];
		n += !v.refused;
	}
	CHECK_EQ_INT(n, 8);
	CHECK_EQ_INT(v.refused, 1);
	CHECK_EQ_INT(v.bucket, ADM_BUCKET_CLIENT);
	/* the call failed: its debt is owed again, with the seven since */
	admission_ask_failed(ad, &ref, &ask);
	admission_check(ad, SEC + 1, 0, 0, "c", 1, &v);
	CHECK_EQ_INT(v.refused, 1);	/* the local share is spent too */
	CHECK_EQ_INT(v.asking[ADM_BUCKET_CLIENT], 1);
	CHECK_EQ_INT(v.ask[ADM_BUCKET_CLIENT].la_debt, 8);
	admission_free(ad);
	config_free(conf);
}

int
main(void)
{
	RUN(test_size);
	RUN(test_share);
	RUN(test_credit_then_stock);
	RUN(test_empty);
	RUN(test_failed_and_stale);
	RUN(test_margin);
	RUN(test_admission_parallel);
	RUN(test_replies);
	RUN(test_admission_shared);
	return tap_done();
}
