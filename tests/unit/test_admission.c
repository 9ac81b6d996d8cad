/*
 * Unit tests of admission (token buckets per configuration, per client,
 * per class) on a fake clock, with configurations built by hand.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admission.h"
#include "tap.h"

#define SEC		1000000ULL
#define PER_S(n)	((n) * 60ULL)	/* configured rates are per minute */

static const uint8_t seed[16] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
    13, 14, 15, 16 };

/* A configuration with nclasses classes, the last the default. */
static struct config *
new_conf(size_t nclasses)
{
	struct config	*conf = calloc(1, sizeof(*conf));
	size_t		 i;

	conf->classes = calloc(nclasses, sizeof(*conf->classes));
	conf->nclasses = nclasses;
	static char	*names[] = { "c0", "c1", "c2", "c3" };

	for (i = 0; i < nclasses; i++) {
		conf->classes[i].name = names[i % 4];
		conf->classes[i].priority = PRIO_NORMAL;
	}
	conf->admission.max_clients = 100000;
	return conf;
}

static void
free_conf(struct config *conf)
{
	free(conf->classes);
	free(conf);
}

static int
admit(struct admission *ad, uint64_t now, size_t cls, const char *key,
    struct admission_verdict *v)
{
	admission_check(ad, now, cls, CLIENT_KEY_IP, key, key ? strlen(key) : 0,
	    v);
	return !v->refused;
}

static void
test_off_admits_all(void)
{
	struct config			*conf = new_conf(1);
	struct admission		*ad = admission_new(conf, seed, 0);
	struct admission_verdict	 v;
	int				 i, n = 0;

	for (i = 0; i < 100000; i++)
		n += admit(ad, 0, 0, "10.0.0.1", &v);
	CHECK_EQ_INT(n, 100000);
	CHECK_EQ_INT(admission_counters(ad, 0)->admitted, 100000);
	CHECK_EQ_INT(admission_clients(ad), 0);
	admission_free(ad);
	free_conf(conf);
}

static void
test_global(void)
{
	struct config			*conf = new_conf(1);
	struct admission		*ad;
	struct admission_verdict	 v;
	int				 i, n = 0;

	conf->admission.rate = PER_S(10);
	conf->admission.burst = 5;
	ad = admission_new(conf, seed, 0);
	for (i = 0; i < 5; i++)
		n += admit(ad, 0, 0, "a", &v);
	CHECK_EQ_INT(n, 5);
	CHECK(!admit(ad, 0, 0, "b", &v));
	CHECK_EQ_INT(v.bucket, ADM_BUCKET_GLOBAL);
	CHECK_EQ_INT(v.wait_usec, SEC / 10);
	CHECK_EQ_INT(v.retry_after, 1);
	CHECK(admit(ad, SEC / 10, 0, "b", &v));
	CHECK_EQ_INT(admission_counters(ad, 0)->refused[ADM_BUCKET_GLOBAL], 1);
	CHECK_EQ_INT(admission_counters(ad, 0)->admitted, 6);
	admission_free(ad);
	free_conf(conf);
}

static void
test_burst_defaults_to_rate(void)
{
	struct config			*conf = new_conf(1);
	struct admission		*ad;
	struct admission_verdict	 v;
	int				 i, n = 0;

	conf->admission.rate = PER_S(20);
	ad = admission_new(conf, seed, 0);
	for (i = 0; i < 100; i++)
		n += admit(ad, 0, 0, NULL, &v);
	CHECK_EQ_INT(n, 20);
	admission_free(ad);
	free_conf(conf);
}

static void
test_per_client(void)
{
	struct config			*conf = new_conf(1);
	struct admission		*ad;
	struct admission_verdict	 v;

	conf->admission.client_rate = PER_S(1);
	conf->admission.client_burst = 2;
	ad = admission_new(conf, seed, 0);
	CHECK(admit(ad, 0, 0, "10.0.0.1", &v));
	CHECK(admit(ad, 0, 0, "10.0.0.1", &v));
	CHECK(!admit(ad, 0, 0, "10.0.0.1", &v));
	CHECK_EQ_INT(v.bucket, ADM_BUCKET_CLIENT);
	CHECK_EQ_INT(v.retry_after, 1);
	/* another client is not affected */
	CHECK(admit(ad, 0, 0, "10.0.0.2", &v));
	CHECK(admit(ad, 0, 0, "10.0.0.2", &v));
	CHECK_EQ_INT(admission_clients(ad), 2);
	/* a key that shares a 64-byte prefix is still another client */
	CHECK(admit(ad, 0, 0, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx-1", &v));
	CHECK(admit(ad, 0, 0, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx-2", &v));
	CHECK(admit(ad, SEC, 0, "10.0.0.1", &v));
	admission_free(ad);
	free_conf(conf);
}

static void
test_per_minute_retry_after(void)
{
	struct config			*conf = new_conf(1);
	struct admission		*ad;
	struct admission_verdict	 v;
	int				 i;

	/* 6 a minute, burst 3: the 4th waits 10 s */
	conf->admission.client_rate = 6;
	conf->admission.client_burst = 3;
	ad = admission_new(conf, seed, 0);
	for (i = 0; i < 3; i++)
		CHECK(admit(ad, 0, 0, "k", &v));
	CHECK(!admit(ad, 0, 0, "k", &v));
	CHECK_EQ_INT(v.retry_after, 10);
	/* rounded up: 2.5 s left is 3 */
	CHECK(!admit(ad, 7 * SEC + SEC / 2, 0, "k", &v));
	CHECK_EQ_INT(v.retry_after, 3);
	CHECK(admit(ad, 10 * SEC, 0, "k", &v));
	admission_free(ad);
	free_conf(conf);
}

static void
test_class_bucket(void)
{
	struct config			*conf = new_conf(2);
	struct admission		*ad;
	struct admission_verdict	 v;
	int				 i, n = 0;

	conf->classes[0].rate = PER_S(1);
	conf->classes[0].burst = 1;
	ad = admission_new(conf, seed, 0);
	CHECK(admit(ad, 0, 0, "a", &v));
	CHECK(!admit(ad, 0, 0, "a", &v));
	CHECK_EQ_INT(v.bucket, ADM_BUCKET_CLASS);
	/* the default class has no bucket of its own */
	for (i = 0; i < 1000; i++)
		n += admit(ad, 0, 1, "a", &v);
	CHECK_EQ_INT(n, 1000);
	CHECK_EQ_INT(admission_counters(ad, 0)->refused[ADM_BUCKET_CLASS], 1);
	CHECK_EQ_INT(admission_counters(ad, 1)->admitted, 1000);
	admission_free(ad);
	free_conf(conf);
}

/*
 * Which requests meet a bucket at all (those that meet none skip the
 * admission lock): each of the three kinds of rate on its own.
 */
static void
test_applies(void)
{
	struct config	*conf = new_conf(2);

	CHECK(!admission_applies(conf, 0));
	CHECK(!admission_applies(conf, 1));
	conf->classes[0].rate = PER_S(1);
	CHECK(admission_applies(conf, 0));
	CHECK(!admission_applies(conf, 1));
	CHECK(!admission_applies(conf, 2));	/* no such class */
	conf->classes[0].rate = 0;
	conf->admission.client_rate = PER_S(5);
	CHECK(admission_applies(conf, 1));
	conf->admission.client_rate = 0;
	conf->admission.rate = PER_S(5);
	CHECK(admission_applies(conf, 1));
	CHECK(admission_applies(conf, 2));
	free_conf(conf);
}

/*
 * A request classified before a reload is found in the new class table
 * by its class's name: a class moved, and one that is gone (no bucket).
 */
static void
test_class_of_across_reload(void)
{
	struct config			*conf = new_conf(3), *next = new_conf(3);
	struct admission		*ad;
	struct admission_verdict	 v;
	size_t				 c1;

	conf->classes[0].name = "api";
	conf->classes[1].name = "static";
	conf->classes[2].name = "default";
	conf->classes[0].rate = PER_S(1);
	conf->classes[0].burst = 1;
	ad = admission_new(conf, seed, 0);
	CHECK_EQ_INT(admission_class_of(ad, "api"), 0);
	CHECK(admit(ad, 0, 0, "a", &v));
	/* the reload puts "api" second and drops "static" */
	next->classes[0].name = "login";
	next->classes[1].name = "api";
	next->classes[2].name = "default";
	next->classes[1].rate = PER_S(1);
	next->classes[1].burst = 1;
	CHECK_EQ_INT(admission_reconfigure(ad, next, 0), 0);
	c1 = admission_class_of(ad, "api");
	CHECK_EQ_INT(c1, 1);
	/* its bucket came along by name, empty: refused */
	CHECK(!admit(ad, 0, c1, "a", &v));
	CHECK_EQ_INT(v.bucket, ADM_BUCKET_CLASS);
	CHECK_EQ_INT(admission_class_of(ad, "static"), 3);
	CHECK(admit(ad, 0, admission_class_of(ad, "static"), "a", &v));
	admission_free(ad);
	free_conf(conf);
	free_conf(next);
}

static void
test_refused_takes_nothing(void)
{
	struct config			*conf = new_conf(2);
	struct admission		*ad;
	struct admission_verdict	 v;

	/* global 2/s burst 1; class 0 1/s burst 1 */
	conf->admission.rate = PER_S(2);
	conf->admission.burst = 1;
	conf->classes[0].rate = PER_S(1);
	conf->classes[0].burst = 1;
	ad = admission_new(conf, seed, 0);
	CHECK(admit(ad, 0, 1, "a", &v));	/* takes the global token */
	CHECK(!admit(ad, 0, 0, "a", &v));	/* refused by global... */
	CHECK_EQ_INT(v.bucket, ADM_BUCKET_GLOBAL);
	/* ...without taking class 0's token, so at 0.5 s it passes */
	CHECK(admit(ad, SEC / 2, 0, "a", &v));
	admission_free(ad);
	free_conf(conf);
}

static void
test_wait_is_the_longest(void)
{
	struct config			*conf = new_conf(1);
	struct admission		*ad;
	struct admission_verdict	 v;

	/* global 10/s and client 1/s: an empty client waits a second */
	conf->admission.rate = PER_S(10);
	conf->admission.burst = 1;
	conf->admission.client_rate = PER_S(1);
	conf->admission.client_burst = 1;
	ad = admission_new(conf, seed, 0);
	CHECK(admit(ad, 0, 0, "a", &v));
	CHECK(!admit(ad, 0, 0, "a", &v));
	CHECK_EQ_INT(v.bucket, ADM_BUCKET_CLIENT);
	CHECK_EQ_INT(v.wait_usec, SEC);
	admission_free(ad);
	free_conf(conf);
}

static void
test_eviction_bounded(void)
{
	struct config			*conf = new_conf(1);
	struct admission		*ad;
	struct admission_verdict	 v;
	char				 key[32];
	int				 i, n = 0;

	conf->admission.client_rate = PER_S(1);
	conf->admission.client_burst = 1;
	conf->admission.max_clients = 1000;
	ad = admission_new(conf, seed, 0);
	/* a victim uses its token */
	CHECK(admit(ad, 0, 0, "victim", &v));
	CHECK(!admit(ad, 0, 0, "victim", &v));
	/* a flood of 100,000 new keys: the table never grows past 1000 */
	for (i = 0; i < 100000; i++) {
		snprintf(key, sizeof(key), "flood-%d", i);
		n += admit(ad, 1, 0, key, &v);
	}
	CHECK_EQ_INT(n, 100000);
	CHECK_EQ_INT(admission_clients(ad), 1000);
	CHECK_EQ_INT(admission_evictions(ad), 100001 - 1000);
	/* the most recent keys are still known and still limited */
	CHECK(!admit(ad, 2, 0, "flood-99999", &v));
	admission_free(ad);
	free_conf(conf);
}

static void
test_recent_keys_survive(void)
{
	struct config			*conf = new_conf(1);
	struct admission		*ad;
	struct admission_verdict	 v;
	char				 key[32];
	int				 i;

	conf->admission.client_rate = 1;	/* one a minute */
	conf->admission.client_burst = 1;
	conf->admission.max_clients = 100;
	ad = admission_new(conf, seed, 0);
	CHECK(admit(ad, 0, 0, "busy", &v));
	/* 99 other keys come and go; busy stays recent, so stays limited */
	for (i = 0; i < 1000; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		admit(ad, 1, 0, key, &v);
		if (i % 50 == 0)
			CHECK(!admit(ad, 1, 0, "busy", &v));
	}
	CHECK(!admit(ad, 2, 0, "busy", &v));
	admission_free(ad);
	free_conf(conf);
}

static void
test_key_kinds_apart(void)
{
	struct config			*conf = new_conf(1);
	struct admission		*ad;
	struct admission_verdict	 v;

	conf->admission.client_rate = 1;
	conf->admission.client_burst = 1;
	ad = admission_new(conf, seed, 0);
	/* a header value spelling an address does not drain that address */
	admission_check(ad, 0, 0, CLIENT_KEY_HEADER, "10.0.0.5", 8, &v);
	CHECK(!v.refused);
	admission_check(ad, 0, 0, CLIENT_KEY_IP, "10.0.0.5", 8, &v);
	CHECK(!v.refused);
	admission_check(ad, 0, 0, CLIENT_KEY_IP, "10.0.0.5", 8, &v);
	CHECK(v.refused);
	CHECK_EQ_INT(admission_clients(ad), 2);
	admission_free(ad);
	free_conf(conf);
}

static void
test_reconfigure_keeps_state(void)
{
	struct config			*conf = new_conf(2);
	struct config			*next = new_conf(3);
	struct admission		*ad;
	struct admission_verdict	 v;
	char				 key[16];
	int				 i;

	conf->admission.rate = PER_S(10);
	conf->admission.burst = 2;
	conf->admission.client_rate = 1;		/* one a minute */
	conf->admission.client_burst = 1;
	conf->classes[0].rate = PER_S(1);
	conf->classes[0].burst = 1;
	ad = admission_new(conf, seed, 0);
	CHECK(admit(ad, 0, 0, "a", &v));		/* class c0 token used */
	CHECK(!admit(ad, 0, 0, "a", &v));		/* and a's */

	/* a reload that reorders classes and changes nothing else */
	next->admission = conf->admission;
	next->classes[0].name = "new";
	next->classes[1].name = "c0";
	next->classes[1].rate = PER_S(1);
	next->classes[1].burst = 1;
	next->classes[2].name = "c1";
	CHECK_EQ_INT(admission_reconfigure(ad, next, 1), 0);
	/* a's bucket and c0's are still empty; counters went with c0 */
	CHECK(!admit(ad, 1, 1, "b", &v));
	CHECK_EQ_INT(v.bucket, ADM_BUCKET_CLASS);
	CHECK(!admit(ad, 1, 2, "a", &v));
	CHECK_EQ_INT(v.bucket, ADM_BUCKET_CLIENT);
	CHECK_EQ_INT(admission_counters(ad, 1)->admitted, 1);

	/* a faster client rate applies to existing buckets, level kept */
	next->admission.client_rate = PER_S(100);
	next->admission.client_burst = 100;
	CHECK_EQ_INT(admission_reconfigure(ad, next, 2), 0);
	CHECK(admit(ad, SEC / 10, 2, "a", &v));

	/* a smaller table evicts the least recent */
	for (i = 0; i < 50; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		admit(ad, SEC, 2, key, &v);
	}
	next->admission.max_clients = 10;
	CHECK_EQ_INT(admission_reconfigure(ad, next, SEC), 0);
	CHECK_EQ_INT(admission_clients(ad), 10);
	admission_free(ad);
	free_conf(conf);
	free_conf(next);
}

static void
test_dry_run(void)
{
	struct config			*conf = new_conf(1);
	struct admission		*ad;
	struct admission_verdict	 v;
	int				 i, n = 0, dry = 0;

	conf->admission.rate = PER_S(1);
	conf->admission.burst = 1;
	conf->admission.dry_run = 1;
	ad = admission_new(conf, seed, 0);
	for (i = 0; i < 10; i++) {
		n += admit(ad, 0, 0, "a", &v);
		dry += v.dry_run;
	}
	CHECK_EQ_INT(n, 10);
	CHECK_EQ_INT(dry, 9);
	CHECK_EQ_INT(admission_counters(ad, 0)->dry_run[ADM_BUCKET_GLOBAL], 9);
	CHECK_EQ_INT(admission_counters(ad, 0)->refused[ADM_BUCKET_GLOBAL], 0);
	admission_free(ad);
	free_conf(conf);
}

static void
test_rate_over_time(void)
{
	struct config			*conf = new_conf(1);
	struct admission		*ad;
	struct admission_verdict	 v;
	uint64_t			 t;
	int				 n = 0;

	/* 100/s offered 1000/s for 10 s: about 1000 (+ burst 10) */
	conf->admission.rate = PER_S(100);
	conf->admission.burst = 10;
	ad = admission_new(conf, seed, 0);
	for (t = 0; t < 10 * SEC; t += 1000)
		n += admit(ad, t, 0, NULL, &v);
	CHECK(n >= 1000 && n <= 1010);
	admission_free(ad);
	free_conf(conf);
}

int
main(void)
{
	RUN(test_off_admits_all);
	RUN(test_global);
	RUN(test_burst_defaults_to_rate);
	RUN(test_per_client);
	RUN(test_per_minute_retry_after);
	RUN(test_class_bucket);
	RUN(test_applies);
	RUN(test_class_of_across_reload);
	RUN(test_refused_takes_nothing);
	RUN(test_wait_is_the_longest);
	RUN(test_eviction_bounded);
	RUN(test_recent_keys_survive);
	RUN(test_key_kinds_apart);
	RUN(test_reconfigure_keeps_state);
	RUN(test_dry_run);
	RUN(test_rate_over_time);
	return tap_done();
}
