/* Unit tests of the per-server metrics rendering (metrics_server.c). */
#include <stdlib.h>
#include <string.h>

#include "metrics_server.h"
#include "tap.h"

static struct metrics_server	 sv[2] = {
	{ .name = "10.0.0.1:80", .state = "up", .usable = 1, .weight = 0.5,
	    .inflight = 3, .limit = 8, .idle = 2, .requests = 100,
	    .answered = 90,
	    .latency_seconds = 1.5, .failures = 4, .ejections = 1,
	    .last_failure = "connect failed", .checked = 1, .checks = 10,
	    .checks_failed = 3, .check_last = "status 200" },
	{ .name = "a\"b:1", .state = "down", .usable = 0, .weight = 0,
	    .failures = 0, .checked = 0 },
};
static const struct metrics_retries	 rt = { 7, 2 };

static void
test_prometheus(void)
{
	struct mbuf	 mb = { NULL, 0, 0, 0 };
	const char	*p;

	metrics_server_prometheus(sv, 2, &rt, &mb);
	mbuf_printf(&mb, "%c", '\0');
	CHECK(!mb.mb_failed);
	p = mb.mb_data;
	CHECK(strstr(p, "# TYPE spillway_server_up gauge\n"
	    "spillway_server_up{server=\"10.0.0.1:80\"} 1\n"
	    "spillway_server_up{server=\"a\\\"b:1\"} 0\n") != NULL);
	CHECK(strstr(p, "spillway_server_state{server=\"10.0.0.1:80\","
	    "state=\"up\"} 1\n") != NULL);
	CHECK(strstr(p, "spillway_server_state{server=\"10.0.0.1:80\","
	    "state=\"down\"} 0\n") != NULL);
	CHECK(strstr(p, "spillway_server_state{server=\"a\\\"b:1\","
	    "state=\"down\"} 1\n") != NULL);
	CHECK(strstr(p, "spillway_server_weight{server=\"10.0.0.1:80\"} "
	    "0.500\n") != NULL);
	CHECK(strstr(p, "spillway_server_requests_in_flight{server="
	    "\"10.0.0.1:80\"} 3\n") != NULL);
	CHECK(strstr(p, "# TYPE spillway_server_concurrency_limit gauge\n"
	    "spillway_server_concurrency_limit{server=\"10.0.0.1:80\"} 8\n"
	    "spillway_server_concurrency_limit{server=\"a\\\"b:1\"} 0\n")
	    != NULL);
	CHECK(strstr(p, "spillway_server_response_seconds_sum{server="
	    "\"10.0.0.1:80\"} 1.500000\n"
	    "spillway_server_response_seconds_count{server=\"10.0.0.1:80\"} "
	    "90\n") != NULL);
	CHECK(strstr(p, "spillway_server_checks_total{server=\"10.0.0.1:80\","
	    "result=\"passed\"} 7\n") != NULL);
	CHECK(strstr(p, "spillway_server_checks_total{server=\"10.0.0.1:80\","
	    "result=\"failed\"} 3\n") != NULL);
	/* an unchecked server has no check samples */
	CHECK(strstr(p, "spillway_server_checks_total{server=\"a") == NULL);
	CHECK(strstr(p, "spillway_retries_total 7\n") != NULL);
	CHECK(strstr(p, "spillway_retry_budget_exhausted_total 2\n") != NULL);
	mbuf_free(&mb);
}

static void
test_json(void)
{
	struct mbuf	 mb = { NULL, 0, 0, 0 };
	const char	*p;

	metrics_server_json(sv, 2, &rt, &mb);
	mbuf_printf(&mb, "%c", '\0');
	p = mb.mb_data;
	CHECK(strncmp(p, ",\"servers\":[{\"server\":\"10.0.0.1:80\","
	    "\"state\":\"up\",\"up\":true,\"weight\":0.500,\"inflight\":3,"
	    "\"limit\":8,\"idle\":2,\"requests_total\":100,", 127) == 0);
	CHECK(strstr(p, "\"last_failure\":\"connect failed\",\"checks\":"
	    "{\"total\":10,\"failed\":3,\"last\":\"status 200\"}}") != NULL);
	CHECK(strstr(p, "{\"server\":\"a\\\"b:1\",\"state\":\"down\","
	    "\"up\":false,") != NULL);
	CHECK(strstr(p, "\"last_failure\":null,\"checks\":null}]") != NULL);
	CHECK(strstr(p, ",\"retries\":{\"total\":7,"
	    "\"budget_exhausted_total\":2}") != NULL);
	mbuf_free(&mb);
	/* no servers: empty arrays, nothing else */
	metrics_server_json(NULL, 0, &rt, &mb);
	mbuf_printf(&mb, "%c", '\0');
	CHECK(strncmp(mb.mb_data, ",\"servers\":[],", 14) == 0);
	mbuf_free(&mb);
}

int
main(void)
{
	RUN(test_prometheus);
	RUN(test_json);
	return tap_done();
}
