/* Unit tests of passive health and the retry budget, on a fake clock. */
#include <stdint.h>
#include <string.h>

#include "health.h"
#include "retry.h"
#include "tap.h"

#define SEC	1000000ULL

static const struct health_conf hc = {
	.max_fails = 3,
	.fail_timeout_ms = 10000,
	.max_ejection_time_ms = 60000,
	.max_ejection_percent = 50,
	.slowstart_ms = 0,
};

/* n failures of cause ev while up, one server of nservers out already. */
static int
fail(struct health *h, const struct health_conf *c, int n,
    enum health_event ev, size_t nejected, size_t nservers, uint64_t now)
{
	int	 changed = 0;

	while (n-- > 0)
		changed |= health_event(h, c, ev, 0, nejected, nservers, now);
	return changed;
}

static void
test_eject_after_max_fails(void)
{
	struct health	 h;

	health_init(&h, SEC);
	CHECK_EQ_INT(health_usable(&h, &hc, SEC), 2);
	CHECK_EQ_INT(fail(&h, &hc, 2, HE_CONNECT, 0, 2, SEC), 0);
	CHECK_EQ_INT(h.hs_state, HS_UP);
	CHECK_EQ_INT(fail(&h, &hc, 1, HE_CONNECT_TIMEOUT, 0, 2, SEC), 1);
	CHECK_EQ_INT(h.hs_state, HS_EJECTED);
	CHECK_EQ_INT(health_usable(&h, &hc, SEC), 0);
	CHECK_EQ_INT(health_wait(&h, SEC), 10 * SEC);
	CHECK_EQ_INT(h.hs_ejections, 1);
	CHECK_EQ_INT(h.hs_failures, 3);
	CHECK_EQ_STR(health_event_name(h.hs_last), "connect timed out");
}

/*
 * What the lock-free readers rely on (health_quiet_from()): whenever a
 * server is quiet at now, it is usable, at full weight, not out, and a
 * success or a neutral outcome (not a trial's) changes nothing in it. Over
 * a long random run of events, checks and trials, with slow start on.
 */
static void
test_quiet_is_a_no_op(void)
{
	struct health_conf	 c = hc;
	struct health		 h, before;
	uint64_t		 now = SEC, rng = 42, from;
	unsigned int		 i, quiet = 0, busy = 0, bad = 0;
	enum health_event	 evs[] = { HE_CONNECT, HE_5XX, HE_RESET };
	enum health_event	 ev;

	c.slowstart_ms = 2000;
	c.max_fails = 2;
	health_init(&h, now);
	for (i = 0; i < 20000; i++) {
		rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
		now += (rng >> 33) % 300000;
		from = health_quiet_from(&h, &c);
		if (from != UINT64_MAX && from <= now) {
			quiet++;
			bad += health_usable(&h, &c, now) != 2;
			bad += health_weight(&h, &c, now) != 1;
			bad += health_out(&h) != 0;
			before = h;
			ev = (rng >> 20) & 1 ? HE_OK : HE_NEUTRAL;
			bad += health_event(&h, &c, ev, 0, 0, 2, now) != 0;
			bad += memcmp(&before, &h, sizeof(h)) != 0;
		} else if (from != UINT64_MAX)
			busy++;		/* up, in slow start */
		/* then whatever comes: an event, a trial, a check */
		switch ((rng >> 40) % 10) {
		case 0:
			ev = evs[(rng >> 50) % 3];
			break;
		case 1:
			ev = HE_NEUTRAL;
			break;
		default:
			ev = HE_OK;
			break;
		}
		if (health_usable(&h, &c, now) == 1) {
			health_trial_start(&h, now);
			(void)health_event(&h, &c, ev, 1, 1, 2, now);
		} else
			(void)health_event(&h, &c, ev, 0, 0, 2, now);
	}
	CHECK_EQ_INT(bad, 0);
	CHECK(quiet > 1000);		/* the property was put to the test */
	CHECK(busy > 100);		/* slow start was seen too */
	/* not quiet while failures are counted, up or not */
	health_init(&h, now);
	CHECK_EQ_INT(health_quiet_from(&h, &c), 0);
	fail(&h, &c, 1, HE_5XX, 0, 2, now);
	CHECK(health_quiet_from(&h, &c) == UINT64_MAX);
	fail(&h, &c, 1, HE_5XX, 0, 2, now);
	CHECK_EQ_INT(h.hs_state, HS_EJECTED);
	CHECK(health_quiet_from(&h, &c) == UINT64_MAX);
}

static void
test_success_clears_and_503_neutral(void)
{
	struct health	 h;

	health_init(&h, SEC);
	fail(&h, &hc, 2, HE_5XX, 0, 2, SEC);
	CHECK_EQ_INT(health_event(&h, &hc, HE_OK, 0, 0, 2, SEC), 0);
	CHECK_EQ_INT(h.hs_fails, 0);
	fail(&h, &hc, 2, HE_RESET, 0, 2, SEC);
	/* a 503 neither clears nor counts */
	CHECK_EQ_INT(fail(&h, &hc, 5, HE_NEUTRAL, 0, 2, SEC), 0);
	CHECK_EQ_INT(h.hs_fails, 2);
	CHECK_EQ_INT(h.hs_state, HS_UP);
	CHECK_EQ_INT(fail(&h, &hc, 1, HE_5XX, 0, 2, SEC), 1);
	CHECK_EQ_INT(h.hs_state, HS_EJECTED);
}

static void
test_max_ejection_percent(void)
{
	struct health	 h;

	/* two servers at 50%: the second may not go while one is out */
	health_init(&h, SEC);
	CHECK_EQ_INT(fail(&h, &hc, 10, HE_CONNECT, 1, 2, SEC), 0);
	CHECK_EQ_INT(h.hs_state, HS_UP);
	CHECK_EQ_INT(h.hs_ejections, 0);
	/* once the other is back, the next failure ejects it */
	CHECK_EQ_INT(fail(&h, &hc, 1, HE_CONNECT, 0, 2, SEC), 1);
	CHECK_EQ_INT(h.hs_state, HS_EJECTED);
	/* a single server at 50% is never ejected; at 100% it is */
	health_init(&h, SEC);
	CHECK_EQ_INT(fail(&h, &hc, 10, HE_CONNECT, 0, 1, SEC), 0);
	{
		struct health_conf	 all = hc;

		all.max_ejection_percent = 100;
		CHECK_EQ_INT(fail(&h, &all, 1, HE_CONNECT, 0, 1, SEC), 1);
	}
}

static void
test_trial_and_backoff(void)
{
	struct health	 h;
	uint64_t	 t = SEC;

	health_init(&h, t);
	fail(&h, &hc, 3, HE_CONNECT, 0, 2, t);
	/* in-flight outcomes after the ejection change nothing */
	CHECK_EQ_INT(health_event(&h, &hc, HE_OK, 0, 1, 2, t), 0);
	CHECK_EQ_INT(h.hs_state, HS_EJECTED);
	t += 10 * SEC;
	CHECK_EQ_INT(health_usable(&h, &hc, t), 1);
	health_trial_start(&h, t);
	CHECK_EQ_INT(h.hs_state, HS_TRIAL);
	CHECK_EQ_INT(health_usable(&h, &hc, t), 0);	/* one trial at a time */
	/* the trial fails: out for twice as long */
	CHECK_EQ_INT(health_event(&h, &hc, HE_CONNECT, 1, 1, 2, t), 1);
	CHECK_EQ_INT(health_wait(&h, t), 20 * SEC);
	CHECK_EQ_INT(h.hs_ejections, 1);
	t += 20 * SEC;
	health_trial_start(&h, t);
	CHECK_EQ_INT(health_event(&h, &hc, HE_CONNECT, 1, 1, 2, t), 1);
	CHECK_EQ_INT(health_wait(&h, t), 40 * SEC);
	t += 40 * SEC;
	health_trial_start(&h, t);
	CHECK_EQ_INT(health_event(&h, &hc, HE_CONNECT, 1, 1, 2, t), 1);
	CHECK_EQ_INT(health_wait(&h, t), 60 * SEC);	/* the cap */
	t += 60 * SEC;
	/* a trial without verdict lets the next request try */
	health_trial_start(&h, t);
	CHECK_EQ_INT(health_event(&h, &hc, HE_NEUTRAL, 1, 1, 2, t), 0);
	CHECK_EQ_INT(health_usable(&h, &hc, t), 1);
	health_trial_start(&h, t);
	CHECK_EQ_INT(health_event(&h, &hc, HE_OK, 1, 1, 2, t), 1);
	CHECK_EQ_INT(h.hs_state, HS_UP);
	CHECK_EQ_INT(health_usable(&h, &hc, t), 2);
	/* on probation: one failure ejects it again, for longer */
	t += SEC;
	CHECK_EQ_INT(fail(&h, &hc, 1, HE_5XX, 0, 2, t), 1);
	CHECK_EQ_INT(health_wait(&h, t), 60 * SEC);
	CHECK_EQ_INT(h.hs_ejections, 2);
	/* a success ends the probation */
	t += 60 * SEC;
	health_trial_start(&h, t);
	health_event(&h, &hc, HE_OK, 1, 1, 2, t);
	health_event(&h, &hc, HE_OK, 0, 0, 2, t);
	CHECK_EQ_INT(fail(&h, &hc, 2, HE_5XX, 0, 2, t), 0);
	CHECK_EQ_INT(fail(&h, &hc, 1, HE_5XX, 0, 2, t), 1);
	CHECK_EQ_INT(health_wait(&h, t), 60 * SEC);
	/* up for max_ejection_time: the back-off starts over */
	t += 60 * SEC;
	health_trial_start(&h, t);
	health_event(&h, &hc, HE_OK, 1, 1, 2, t);
	t += 61 * SEC;
	fail(&h, &hc, 3, HE_TIMEOUT, 0, 2, t);
	CHECK_EQ_INT(health_wait(&h, t), 10 * SEC);
}

static void
test_off(void)
{
	struct health		 h;
	struct health_conf	 off = hc;

	off.max_fails = 0;
	health_init(&h, SEC);
	CHECK_EQ_INT(fail(&h, &off, 1000, HE_CONNECT, 0, 2, SEC), 0);
	CHECK_EQ_INT(h.hs_state, HS_UP);
	CHECK_EQ_INT(h.hs_failures, 1000);
}

static void
test_slowstart(void)
{
	struct health		 h;
	struct health_conf	 ss = hc;
	uint64_t		 t = SEC;

	ss.slowstart_ms = 10000;
	health_init(&h, t);
	/* a server there from the start is at full weight */
	CHECK(health_weight(&h, &ss, t) == 1.0);
	fail(&h, &ss, 3, HE_CONNECT, 0, 2, t);
	CHECK(health_weight(&h, &ss, t) == 0.0);
	t += 10 * SEC;
	health_trial_start(&h, t);
	health_event(&h, &ss, HE_OK, 1, 1, 2, t);
	CHECK(health_weight(&h, &ss, t) == 0.0);
	CHECK(health_weight(&h, &ss, t + 5 * SEC) > 0.49 &&
	    health_weight(&h, &ss, t + 5 * SEC) < 0.51);
	CHECK(health_weight(&h, &ss, t + 10 * SEC) == 1.0);
	CHECK(health_weight(&h, &hc, t) == 1.0);	/* slowstart off */
}

static void
test_names(void)
{
	int	 i;

	for (i = 0; i < HS_NSTATES; i++)
		CHECK(health_state_name((enum health_state)i) != NULL);
	for (i = 0; i < HE_NEVENTS; i++)
		CHECK(health_event_name((enum health_event)i) != NULL);
	CHECK_EQ_STR(health_state_name(HS_TRIAL), "trial");
	CHECK_EQ_STR(health_state_name(HS_NSTATES), "unknown");
}

static void
test_checks(void)
{
	struct health		 h;
	struct health_conf	 ck = hc;
	uint64_t		 t = SEC;

	ck.check_on = 1;
	ck.check_rise = 2;
	ck.check_fall = 3;
	health_init(&h, t);
	/* fall: three failures in a row, a pass in between starts over */
	CHECK_EQ_INT(health_check_result(&h, &ck, 0, t), 0);
	CHECK_EQ_INT(health_check_result(&h, &ck, 0, t), 0);
	CHECK_EQ_INT(health_check_result(&h, &ck, 1, t), 0);
	CHECK_EQ_INT(health_check_result(&h, &ck, 0, t), 0);
	CHECK_EQ_INT(health_check_result(&h, &ck, 0, t), 0);
	CHECK_EQ_INT(h.hs_state, HS_UP);
	/* down whatever max_ejection_percent says */
	CHECK_EQ_INT(health_check_result(&h, &ck, 0, t), 1);
	CHECK_EQ_INT(h.hs_state, HS_DOWN);
	CHECK_EQ_INT(health_usable(&h, &ck, t), 0);
	CHECK(health_out(&h));
	CHECK_EQ_INT(health_check_result(&h, &ck, 0, t), 0);
	/* requests' outcomes do not bring it back */
	CHECK_EQ_INT(health_event(&h, &ck, HE_OK, 0, 1, 2, t), 0);
	/* rise: two passes in a row */
	CHECK_EQ_INT(health_check_result(&h, &ck, 1, t), 0);
	CHECK_EQ_INT(health_check_result(&h, &ck, 0, t), 0);
	CHECK_EQ_INT(health_check_result(&h, &ck, 1, t), 0);
	CHECK_EQ_INT(health_check_result(&h, &ck, 1, t + SEC), 1);
	CHECK_EQ_INT(h.hs_state, HS_UP);
	CHECK_EQ_INT(h.hs_checks, 11);
	CHECK_EQ_INT(h.hs_checks_failed, 7);
	/* ejected by requests: no trial connect, the check after the
	 * back-off is the trial */
	fail(&h, &ck, 3, HE_5XX, 0, 2, t);
	CHECK_EQ_INT(h.hs_state, HS_EJECTED);
	CHECK_EQ_INT(health_check_result(&h, &ck, 1, t + SEC), 0);
	CHECK_EQ_INT(health_usable(&h, &ck, t + 10 * SEC), 0);
	CHECK_EQ_INT(health_check_result(&h, &ck, 1, t + 10 * SEC), 1);
	CHECK_EQ_INT(h.hs_state, HS_UP);
	CHECK_EQ_INT(h.hs_fails, 2);	/* on probation */
	/* checks turned off: a server they held down is up */
	health_check_result(&h, &ck, 0, t);
	health_check_result(&h, &ck, 0, t);
	health_check_result(&h, &ck, 0, t);
	CHECK_EQ_INT(h.hs_state, HS_DOWN);
	CHECK_EQ_INT(health_checks_off(&h, t), 1);
	CHECK_EQ_INT(h.hs_state, HS_UP);
	CHECK_EQ_INT(health_checks_off(&h, t), 0);
}

static void
test_check_request(void)
{
	char		 buf[2048];
	const char	*why = NULL;
	long		 n;

	n = health_check_request("GET /healthz", "10.0.0.1:8081", buf,
	    sizeof(buf), &why);
	CHECK_EQ_STR(buf, "GET /healthz HTTP/1.1\r\nHost: 10.0.0.1:8081\r\n"
	    "User-Agent: spillway-check\r\nConnection: close\r\n\r\n");
	CHECK_EQ_INT(n, (long)strlen(buf));
	n = health_check_request("  HEAD\t/ready?x=1   app.internal ", "h:1",
	    buf, sizeof(buf), &why);
	CHECK(n > 0);
	CHECK(strncmp(buf, "HEAD /ready?x=1 HTTP/1.1\r\nHost: app.internal\r\n"
	    "User", 50) == 0);
	CHECK(health_check_request("GET /x [::1]:80", "h:1", buf, sizeof(buf),
	    &why) > 0);
	CHECK_EQ_INT(health_check_request("", "h:1", buf, sizeof(buf), &why),
	    -1);
	CHECK_EQ_INT(health_check_request("GET", "h:1", buf, sizeof(buf),
	    &why), -1);
	CHECK_EQ_INT(health_check_request("GET healthz", "h:1", buf,
	    sizeof(buf), &why), -1);
	CHECK_EQ_INT(health_check_request("G(T /", "h:1", buf, sizeof(buf),
	    &why), -1);
	CHECK_EQ_INT(health_check_request("GET /\x7f", "h:1", buf,
	    sizeof(buf), &why), -1);
	/* found by fuzz_check: a fragment is no request target */
	CHECK_EQ_INT(health_check_request("A /# T", "h:1", buf,
	    sizeof(buf), &why), -1);
	CHECK_EQ_INT(health_check_request("CONNECT /", "h:1", buf,
	    sizeof(buf), &why), -1);
	CHECK_EQ_INT(health_check_request("GET / a/b", "h:1", buf,
	    sizeof(buf), &why), -1);
	CHECK_EQ_INT(health_check_request("GET / h x", "h:1", buf,
	    sizeof(buf), &why), -1);
	CHECK_EQ_STR(why, "too many words: METHOD PATH [HOST]");
	CHECK_EQ_INT(health_check_request("GET /", "h:1", buf, 10, &why), -1);
	CHECK(health_check_status(200, 0) && health_check_status(302, 0));
	CHECK(!health_check_status(404, 0) && !health_check_status(503, 0));
	CHECK(health_check_status(204, 204) && !health_check_status(200, 204));
}

static void
test_retry_budget(void)
{
	struct retry	 r;
	uint64_t	 t = 100 * SEC;
	int		 i, n = 0;

	/* the floor: 2/s over 10 s, with no requests at all */
	retry_init(&r);
	for (i = 0; i < 100; i++)
		n += retry_allow(&r, 0.2, 2, t);
	CHECK_EQ_INT(n, 20);
	/* 1000 requests in the window: 20% of them on top of the floor */
	retry_init(&r);
	for (i = 0; i < 1000; i++)
		retry_request(&r, t);
	for (n = 0, i = 0; i < 1000; i++)
		n += retry_allow(&r, 0.2, 0, t);
	CHECK_EQ_INT(n, 200);
	CHECK_EQ_INT(r.rt_allowed, 200);
	CHECK_EQ_INT(r.rt_denied, 800);
	/* the window moves on: old requests and retries are forgotten */
	t += RETRY_WINDOW * SEC;
	CHECK_EQ_INT(retry_allow(&r, 0.2, 0, t), 0);
	for (i = 0; i < 10; i++)
		retry_request(&r, t);
	for (n = 0, i = 0; i < 10; i++)
		n += retry_allow(&r, 0.2, 0, t);
	CHECK_EQ_INT(n, 2);
	/* no budget at all: never */
	retry_init(&r);
	for (i = 0; i < 100; i++)
		retry_request(&r, t);
	CHECK_EQ_INT(retry_allow(&r, 0, 0, t), 0);
}

int
main(void)
{
	RUN(test_eject_after_max_fails);
	RUN(test_success_clears_and_503_neutral);
	RUN(test_max_ejection_percent);
	RUN(test_trial_and_backoff);
	RUN(test_off);
	RUN(test_slowstart);
	RUN(test_names);
	RUN(test_checks);
	RUN(test_quiet_is_a_no_op);
	RUN(test_check_request);
	RUN(test_retry_budget);
	return tap_done();
}
