/*
 * metrics_server.c: per backend server metrics and the retry budget's
 * counters (see metrics_server.h). Every family is written whole, one
 * sample per server, so a scrape never splits a family.
 */
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "metrics_server.h"

static void
family(struct mbuf *mb, const char *name, const char *type, const char *help)
{
	mbuf_printf(mb, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
	    type);
}

static void
label(struct mbuf *mb, const char *name, const struct metrics_server *s)
{
	mbuf_printf(mb, "%s{server=\"", name);
	mbuf_escaped(mb, s->name, 0);
	mbuf_printf(mb, "\"}");
}

/* A counter of struct metrics_server at offset off: one sample a server. */
static void
counter_family(struct mbuf *mb, const char *name, const char *help,
    const struct metrics_server *sv, size_t n, size_t off)
{
	size_t	 i;

	family(mb, name, "counter", help);
	for (i = 0; i < n; i++) {
		label(mb, name, &sv[i]);
		mbuf_printf(mb, " %" PRIu64 "\n",
		    *(const uint64_t *)(const void *)((const char *)&sv[i] + off));
	}
}

void
metrics_server_prometheus(const struct metrics_server *sv, size_t n,
    const struct metrics_retries *rt, struct mbuf *mb)
{
	static const char *const states[] = { "up", "ejected", "trial",
	    "down" };
	size_t	 i, k;

	family(mb, "spillway_server_up", "gauge",
	    "1 if the backend server takes requests now, else 0.");
	for (i = 0; i < n; i++) {
		label(mb, "spillway_server_up", &sv[i]);
		mbuf_printf(mb, " %d\n", sv[i].usable ? 1 : 0);
	}
	family(mb, "spillway_server_state", "gauge",
	    "The backend server's health state: 1 for the current one.");
	for (i = 0; i < n; i++)
		for (k = 0; k < sizeof(states) / sizeof(states[0]); k++) {
			mbuf_printf(mb, "spillway_server_state{server=\"");
			mbuf_escaped(mb, sv[i].name, 0);
			mbuf_printf(mb, "\",state=\"%s\"} %d\n", states[k],
			    sv[i].state != NULL && strcmp(states[k],
			    sv[i].state) == 0);
		}
	family(mb, "spillway_server_weight", "gauge",
	    "Slow-start weight of the backend server, 0 to 1.");
	for (i = 0; i < n; i++) {
		label(mb, "spillway_server_weight", &sv[i]);
		mbuf_printf(mb, " %.3f\n", sv[i].weight);
	}
	family(mb, "spillway_server_requests_in_flight", "gauge",
	    "Requests at the backend server now.");
	for (i = 0; i < n; i++) {
		label(mb, "spillway_server_requests_in_flight", &sv[i]);
		mbuf_printf(mb, " %u\n", sv[i].inflight);
	}
	counter_family(mb, "spillway_server_requests_total",
	    "Tries sent to the backend server.", sv, n,
	    offsetof(struct metrics_server, requests));
	family(mb, "spillway_server_response_seconds", "summary",
	    "From a try's start to the backend server's response head.");
	for (i = 0; i < n; i++) {
		label(mb, "spillway_server_response_seconds_sum", &sv[i]);
		mbuf_printf(mb, " %.6f\n", sv[i].latency_seconds);
		label(mb, "spillway_server_response_seconds_count", &sv[i]);
		mbuf_printf(mb, " %" PRIu64 "\n", sv[i].answered);
	}
	counter_family(mb, "spillway_server_failures_total",
	    "Failed tries on the backend server (connect, reset, timeout, "
	    "invalid, 5xx but 503).", sv, n,
	    offsetof(struct metrics_server, failures));
	counter_family(mb, "spillway_server_ejections_total",
	    "Times the backend server was taken out of rotation.", sv, n,
	    offsetof(struct metrics_server, ejections));
	family(mb, "spillway_server_checks_total", "counter",
	    "Active health checks of the backend server, by result.");
	for (i = 0; i < n; i++) {
		if (!sv[i].checked && sv[i].checks == 0)
			continue;
		mbuf_printf(mb, "spillway_server_checks_total{server=\"");
		mbuf_escaped(mb, sv[i].name, 0);
		mbuf_printf(mb, "\",result=\"passed\"} %" PRIu64 "\n",
		    sv[i].checks - sv[i].checks_failed);
		mbuf_printf(mb, "spillway_server_checks_total{server=\"");
		mbuf_escaped(mb, sv[i].name, 0);
		mbuf_printf(mb, "\",result=\"failed\"} %" PRIu64 "\n",
		    sv[i].checks_failed);
	}
	family(mb, "spillway_retries_total", "counter",
	    "Requests tried again on another backend server.");
	mbuf_printf(mb, "spillway_retries_total %" PRIu64 "\n", rt->allowed);
	family(mb, "spillway_retry_budget_exhausted_total", "counter",
	    "Retries not made: the retry budget was spent.");
	mbuf_printf(mb, "spillway_retry_budget_exhausted_total %" PRIu64 "\n",
	    rt->denied);
}

void
metrics_server_json(const struct metrics_server *sv, size_t n,
    const struct metrics_retries *rt, struct mbuf *mb)
{
	size_t	 i;

	mbuf_printf(mb, ",\"servers\":[");
	for (i = 0; i < n; i++) {
		mbuf_printf(mb, "%s{\"server\":", i ? "," : "");
		mbuf_json_str(mb, sv[i].name);
		mbuf_printf(mb, ",\"state\":");
		mbuf_json_str(mb, sv[i].state);
		mbuf_printf(mb, ",\"up\":%s,\"weight\":%.3f,\"inflight\":%u,"
		    "\"idle\":%u,\"requests_total\":%" PRIu64 ",\"answered_total\":"
		    "%" PRIu64 ",\"response_seconds_sum\":%.6f,"
		    "\"failures_total\":%" PRIu64 ",\"ejections_total\":%" PRIu64
		    ",\"ejected_for_seconds\":%.3f,\"last_failure\":",
		    sv[i].usable ? "true" : "false", sv[i].weight,
		    sv[i].inflight, sv[i].idle, sv[i].requests, sv[i].answered,
		    sv[i].latency_seconds, sv[i].failures, sv[i].ejections,
		    sv[i].ejected_for_seconds);
		mbuf_json_str(mb, sv[i].last_failure);
		mbuf_printf(mb, ",\"checks\":");
		if (sv[i].checked) {
			mbuf_printf(mb, "{\"total\":%" PRIu64 ",\"failed\":%"
			    PRIu64 ",\"last\":", sv[i].checks,
			    sv[i].checks_failed);
			mbuf_json_str(mb, sv[i].check_last);
			mbuf_printf(mb, "}");
		} else
			mbuf_printf(mb, "null");
		mbuf_printf(mb, "}");
	}
	mbuf_printf(mb, "],\"retries\":{\"total\":%" PRIu64 ",\"budget_"
	    "exhausted_total\":%" PRIu64 "}", rt->allowed, rt->denied);
}
