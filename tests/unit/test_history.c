/*
 * Unit tests of the dashboard's history ring: bounded, oldest first,
 * samples of the totals and of the served latency, JSON that the page
 * replays through the same code as GET /status.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "history.h"
#include "metrics.h"
#include "tap.h"

static void
gauges(struct metrics_gauges *g, unsigned int limit)
{
	memset(g, 0, sizeof(*g));
	g->limit = limit;
	g->inflight = limit / 2;
	g->queue_length = 3;
	g->queue_wait_seconds = 0.25;
	g->queue_growing = 1;
}

static size_t
count(const char *s, const char *what)
{
	size_t	 n = 0;

	while ((s = strstr(s, what)) != NULL) {
		n++;
		s++;
	}
	return n;
}

static void
test_empty(void)
{
	struct history	 h;
	struct mbuf	 mb = { 0 };

	CHECK(history_init(&h, 5) == 0);
	CHECK(history_get(&h, 0) == NULL);
	history_json(&h, 1.5, &mb);
	CHECK_EQ_STR(mb.mb_data, "{\"period_seconds\": 1, \"capacity\": 5, "
	    "\"uptime_seconds\": 1.500000, \"samples\": []}");
	mbuf_free(&mb);
	history_free(&h);
}

/* More samples than room: the last cap stay, oldest first, no more. */
static void
test_wraps(void)
{
	struct history		 h;
	struct metrics		 m;
	struct metrics_gauges	 g;
	struct class_metrics	*cm;
	const struct history_sample *s;
	size_t			 i;

	metrics_init(&m);
	CHECK(history_init(&h, 4) == 0);
	for (i = 0; i < 10; i++) {
		cm = metrics_class(&m, "default");
		cm->cm_status[200 - 100]++;
		gauges(&g, (unsigned int)(10 + i));
		history_record(&h, &m, &g, (double)i);
		CHECK_EQ_INT(h.h_len, i < 4 ? i + 1 : 4);
	}
	for (i = 0; i < 4; i++) {
		s = history_get(&h, i);
		CHECK(s != NULL && s->hs_uptime == 6.0 + (double)i);
		CHECK(s != NULL && s->hs_requests == 7 + i);
		CHECK(s != NULL && s->hs_limit == 16 + i);
	}
	CHECK(history_get(&h, 4) == NULL);
	history_free(&h);
	metrics_free(&m);
}

/* A sample holds the totals over classes and the served latency then. */
static void
test_sample_contents(void)
{
	struct history		 h;
	struct metrics		 m;
	struct metrics_gauges	 g;
	struct mbuf		 mb = { 0 };
	const struct history_sample *s;

	metrics_init(&m);
	CHECK(history_init(&h, HISTORY_SAMPLES) == 0);
	/* 3 served at 20 ms, 5 refused in 0.1 ms, over two classes */
	metrics_observe_request(&m, metrics_class(&m, "api"), 0.020, 0.019, 1);
	metrics_observe_request(&m, metrics_class(&m, "api"), 0.020, 0.019, 1);
	metrics_observe_request(&m, metrics_class(&m, "web"), 0.020, 0.019, 1);
	metrics_class(&m, "api")->cm_status[200 - 100] = 2;
	metrics_class(&m, "web")->cm_status[200 - 100] = 1;
	metrics_class(&m, "web")->cm_status[429 - 100] = 5;
	metrics_class(&m, "web")->cm_refused[MR_RATE_LIMITED] = 5;
	gauges(&g, 8);
	history_record(&h, &m, &g, 2.0);
	/* later counts do not change the sample taken */
	metrics_observe_request(&m, metrics_class(&m, "web"), 5, -1, 0);
	s = history_get(&h, 0);
	CHECK(s->hs_requests == 8);
	CHECK(s->hs_refused[MR_RATE_LIMITED] == 5);
	CHECK(s->hs_served.h_count == 3);
	CHECK(fabs(s->hs_served.h_sum - 0.060) < 1e-9);
	CHECK(s->hs_limit == 8 && s->hs_inflight == 4 && s->hs_queue == 3);
	history_json(&h, 2.5, &mb);
	CHECK(strstr(mb.mb_data, "\"capacity\": 300") != NULL);
	CHECK(strstr(mb.mb_data, "\"uptime_seconds\": 2.500000, "
	    "\"samples\": [\n{\"uptime_seconds\": 2.000000, ") != NULL);
	CHECK(strstr(mb.mb_data, "\"totals\": {\"requests\": 8, \"refused\": "
	    "{\"rate_limited\": 5, ") != NULL);
	CHECK(strstr(mb.mb_data, "\"limiter\": {\"limit\": 8, "
	    "\"inflight\": 4}, \"queue\": {\"length\": 3, "
	    "\"allowed_wait_seconds\": 0.250000, \"growing\": true}") != NULL);
	/* 20 ms lands in the 0.025 bucket: 0 below, 3 from there on */
	CHECK(strstr(mb.mb_data, "\"served_latency_seconds\": {\"count\": 3, "
	    "\"sum\": 0.06, \"buckets\": [[0.001, 0], [0.0025, 0], "
	    "[0.005, 0], [0.01, 0], [0.025, 3], ") != NULL);
	CHECK(strstr(mb.mb_data, "[\"+Inf\", 3]]}}]}") != NULL);
	mbuf_free(&mb);
	history_free(&h);
	metrics_free(&m);
}

/* A full ring of full samples stays one parseable object. */
static void
test_json_full(void)
{
	struct history		 h;
	struct metrics		 m;
	struct metrics_gauges	 g;
	struct mbuf		 mb = { 0 };
	size_t			 i;

	metrics_init(&m);
	CHECK(history_init(&h, HISTORY_SAMPLES) == 0);
	gauges(&g, 4);
	g.queue_wait_seconds = NAN;
	for (i = 0; i < HISTORY_SAMPLES + 7; i++)
		history_record(&h, &m, &g, INFINITY);
	history_json(&h, 1.0, &mb);
	CHECK(!mb.mb_failed);
	CHECK_EQ_INT(count(mb.mb_data, "{\"uptime_seconds\""), HISTORY_SAMPLES);
	/* printf's spellings of NaN and infinity, where a number goes */
	CHECK(strstr(mb.mb_data, ": nan") == NULL &&
	    strstr(mb.mb_data, ": inf") == NULL &&
	    strstr(mb.mb_data, ": -nan") == NULL);
	CHECK(strstr(mb.mb_data, "\"uptime_seconds\": 0.000000, ") != NULL);
	CHECK(strstr(mb.mb_data, "\"allowed_wait_seconds\": 0.000000, ") !=
	    NULL);
	CHECK_EQ_INT(count(mb.mb_data, "["), count(mb.mb_data, "]"));
	CHECK_EQ_INT(count(mb.mb_data, "{"), count(mb.mb_data, "}"));
	mbuf_free(&mb);
	history_free(&h);
	metrics_free(&m);
}

int
main(void)
{
	RUN(test_empty);
	RUN(test_wraps);
	RUN(test_sample_contents);
	RUN(test_json_full);
	return tap_done();
}
