/*
 * metrics.c: counters and histograms, rendered as Prometheus text and as
 * JSON.
 *
 * Invariants:
 * - m_classes[0..m_nclasses) are in creation order and their names are
 *   distinct; m_nclasses <= m_cap <= METRICS_CLASSES_MAX. Growing the
 *   array may move it, so a class_metrics pointer is good only until the
 *   next metrics_class() call that creates a class.
 * - A stored class name is the requested name cut to at most
 *   METRICS_CLASS_NAME - 1 bytes, never inside a UTF-8 sequence, and a
 *   lookup cuts the same way: a long name always finds its own class.
 * - For every histogram, h_count is the sum of h_buckets[] and h_sum is
 *   finite and not negative: histogram_observe() is the only writer.
 * - The renderers append to the caller's mbuf and write only what parses:
 *   label and string values are escaped and made valid UTF-8, JSON numbers
 *   are finite.
 */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "metrics.h"

#define CLASSES_INITIAL	8

const double metrics_bucket_le[METRICS_NBUCKETS] = {
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
	10, INFINITY
};

static const char *const reason_names[MR_NONE + 1] = {
	[MR_RATE_LIMITED] = "rate_limited",
	[MR_QUEUE_FULL] = "queue_full",
	[MR_QUEUE_TIMEOUT] = "queue_timeout",
	[MR_OVERLOADED] = "overloaded",
	[MR_UPSTREAM_ERROR] = "upstream_error",
	[MR_UPSTREAM_TIMEOUT] = "upstream_timeout",
	[MR_NO_SERVER] = "no_server",
	[MR_COUNT] = "unknown",
	[MR_CLIENT_CLOSED] = "client_closed",
	[MR_CONNECT_UNSUPPORTED] = "connect_unsupported",
	[MR_FAULT_ABORT] = "fault_abort",
	[MR_NONE] = NULL,
};

/* by enum queue_shed; a dry run never times out */
static const char *const shed_dry_names[METRICS_NSHED] = { "queued",
    "queue_full", NULL, "overloaded" };

const char *
metrics_reason_name(enum metrics_reason r)
{
	if ((unsigned int)r > MR_NONE)
		return "unknown";
	return reason_names[r];
}

void
metrics_init(struct metrics *m)
{
	memset(m, 0, sizeof(*m));
}

void
metrics_free(struct metrics *m)
{
	free(m->m_classes);
	memset(m, 0, sizeof(*m));
}

static void
histogram_add(struct histogram *dst, const struct histogram *src)
{
	size_t	 i;

	for (i = 0; i < METRICS_NBUCKETS; i++)
		dst->h_buckets[i] += src->h_buckets[i];
	dst->h_count += src->h_count;
	dst->h_sum += src->h_sum;
}

/*
 * Add src's counters into dst (workers' counters summed at scrape time);
 * classes by name. -1 if a class could not be made in dst (out of memory,
 * or dst full): its counts are left out.
 */
int
metrics_add(struct metrics *dst, const struct metrics *src)
{
	const struct class_metrics	*sc;
	struct class_metrics		*dc;
	size_t				 i, j;
	int				 rc = 0;

	for (i = 0; i < src->m_nclasses; i++) {
		sc = &src->m_classes[i];
		if ((dc = metrics_class(dst, sc->cm_name)) == NULL) {
			rc = -1;
			continue;
		}
		for (j = 0; j < sizeof(sc->cm_status) /
		    sizeof(sc->cm_status[0]); j++)
			dc->cm_status[j] += sc->cm_status[j];
		for (j = 0; j < MR_COUNT; j++)
			dc->cm_refused[j] += sc->cm_refused[j];
		dc->cm_dry_run += sc->cm_dry_run;
		for (j = 0; j < FAULT_NKINDS; j++)
			dc->cm_faults[j] += sc->cm_faults[j];
		histogram_add(&dc->cm_latency, &sc->cm_latency);
		histogram_add(&dc->cm_served, &sc->cm_served);
		histogram_add(&dc->cm_upstream, &sc->cm_upstream);
		histogram_add(&dc->cm_queue_wait, &sc->cm_queue_wait);
	}
	histogram_add(&dst->m_latency, &src->m_latency);
	histogram_add(&dst->m_served, &src->m_served);
	histogram_add(&dst->m_upstream, &src->m_upstream);
	histogram_add(&dst->m_queue_wait, &src->m_queue_wait);
	dst->m_upstream_connect_failures += src->m_upstream_connect_failures;
	dst->m_upstream_connections += src->m_upstream_connections;
	dst->m_client_connections += src->m_client_connections;
	dst->m_reloads_ok += src->m_reloads_ok;
	dst->m_reloads_failed += src->m_reloads_failed;
	dst->m_bytes_out += src->m_bytes_out;
	dst->m_tls_handshakes += src->m_tls_handshakes;
	dst->m_tls_failed += src->m_tls_failed;
	dst->m_tls_timeouts += src->m_tls_timeouts;
	dst->m_tls_renegotiations += src->m_tls_renegotiations;
	for (j = 0; j < sizeof(src->m_proxyproto) /
	    sizeof(src->m_proxyproto[0]); j++)
		dst->m_proxyproto[j] += src->m_proxyproto[j];
	for (j = 0; j < METRICS_NSHED; j++)
		dst->m_shed_dry_run[j] += src->m_shed_dry_run[j];
	return rc;
}

/*
 * Cut name to what a class stores, into buf (METRICS_CLASS_NAME bytes).
 * A cut that would split a UTF-8 sequence backs off to its lead byte, so
 * the stored name stays valid UTF-8 if the given one was.
 */
static void
class_name_cut(const char *name, char *buf)
{
	size_t	 n;

	for (n = 0; n < METRICS_CLASS_NAME && name[n] != '\0'; n++)
		;
	if (n == METRICS_CLASS_NAME) {
		n = METRICS_CLASS_NAME - 1;
		while (n > 0 && ((unsigned char)name[n] & 0xc0) == 0x80)
			n--;
	}
	memcpy(buf, name, n);
	buf[n] = '\0';
}

struct class_metrics *
metrics_class(struct metrics *m, const char *name)
{
	struct class_metrics	*cm;
	char			 key[METRICS_CLASS_NAME];
	size_t			 i, ncap;

	if (name == NULL)
		return NULL;
	class_name_cut(name, key);
	for (i = 0; i < m->m_nclasses; i++)
		if (strcmp(m->m_classes[i].cm_name, key) == 0)
			return &m->m_classes[i];

	if (m->m_nclasses == METRICS_CLASSES_MAX)
		return NULL;
	if (m->m_nclasses == m->m_cap) {
		ncap = m->m_cap == 0 ? CLASSES_INITIAL : m->m_cap * 2;
		if (ncap > METRICS_CLASSES_MAX)
			ncap = METRICS_CLASSES_MAX;
		cm = realloc(m->m_classes, ncap * sizeof(*cm));
		if (cm == NULL)
			return NULL;
		m->m_classes = cm;
		m->m_cap = ncap;
	}
	cm = &m->m_classes[m->m_nclasses++];
	memset(cm, 0, sizeof(*cm));
	memcpy(cm->cm_name, key, sizeof(key));
	return cm;
}

/*
 * Count one observation. A negative or NaN duration is a caller's clock
 * glitch and counts as 0; +Inf lands in the +Inf bucket but adds nothing
 * to the sum, which would otherwise stay infinite for good.
 */
void
histogram_observe(struct histogram *h, double seconds)
{
	size_t	 i;

	if (!(seconds >= 0))
		seconds = 0;
	for (i = 0; i < METRICS_NBUCKETS - 1; i++)
		if (seconds <= metrics_bucket_le[i])
			break;
	h->h_buckets[i]++;
	h->h_count++;
	if (isfinite(seconds))
		h->h_sum += seconds;
}

void
metrics_observe_wait(struct metrics *m, struct class_metrics *cm,
    double seconds)
{
	histogram_observe(&m->m_queue_wait, seconds);
	if (cm != NULL)
		histogram_observe(&cm->cm_queue_wait, seconds);
}

void
metrics_observe_request(struct metrics *m, struct class_metrics *cm,
    double total, double upstream, int served)
{
	histogram_observe(&m->m_latency, total);
	if (served)
		histogram_observe(&m->m_served, total);
	if (upstream >= 0)
		histogram_observe(&m->m_upstream, upstream);
	if (cm == NULL)
		return;
	histogram_observe(&cm->cm_latency, total);
	if (served)
		histogram_observe(&cm->cm_served, total);
	if (upstream >= 0)
		histogram_observe(&cm->cm_upstream, upstream);
}

/*
 * Format v in buf (at least 32 bytes) with the fewest digits that read
 * back as the same double: 0.1 stays "0.1", 0.0025 stays "0.0025".
 * Non-finite values come out as Prometheus spells them.
 */
static const char *
fmt_double(char *buf, size_t size, double v)
{
	int	 prec;

	if (isnan(v))
		return "NaN";
	if (isinf(v))
		return v > 0 ? "+Inf" : "-Inf";
	for (prec = 15; prec <= 17; prec++) {
		snprintf(buf, size, "%.*g", prec, v);
		if (strtod(buf, NULL) == v)
			break;
	}
	return buf;
}

static void
prom_head(struct mbuf *mb, const char *name, const char *type,
    const char *help)
{
	mbuf_printf(mb, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
	    type);
}

/* One family with a single unlabelled sample. */
static void
prom_u64(struct mbuf *mb, const char *name, const char *type,
    const char *help, uint64_t v)
{
	prom_head(mb, name, type, help);
	mbuf_printf(mb, "%s %" PRIu64 "\n", name, v);
}

static const char *const reload_results[] = { "ok", "failed" };
static const char *const conn_states[] = { "active", "idle" };
static const char *const handshake_results[] = { "ok", "failed", "timeout" };
/* m_proxyproto[] in this order */
static const char *const proxyproto_results[] = { "ok", "bad", "timeout" };

/* A family of n samples told apart by one label: name{label="keys[i]"}. */
static void
prom_u64_by(struct mbuf *mb, const char *name, const char *type,
    const char *help, const char *label, const char *const *keys,
    const uint64_t *v, size_t n)
{
	size_t	 i;

	prom_head(mb, name, type, help);
	for (i = 0; i < n; i++)
		mbuf_printf(mb, "%s{%s=\"%s\"} %" PRIu64 "\n", name, label,
		    keys[i], v[i]);
}

static void
prom_double(struct mbuf *mb, const char *name, const char *help, double v)
{
	char	 buf[32];

	prom_head(mb, name, "gauge", help);
	mbuf_printf(mb, "%s %s\n", name, fmt_double(buf, sizeof(buf), v));
}

static void
prom_histogram(struct mbuf *mb, const char *name, const char *help,
    const struct histogram *h)
{
	char		 buf[32];
	uint64_t	 cum = 0;
	size_t		 i;

	prom_head(mb, name, "histogram", help);
	for (i = 0; i < METRICS_NBUCKETS; i++) {
		cum += h->h_buckets[i];
		mbuf_printf(mb, "%s_bucket{le=\"%s\"} %" PRIu64 "\n", name,
		    fmt_double(buf, sizeof(buf), metrics_bucket_le[i]), cum);
	}
	mbuf_printf(mb, "%s_sum %s\n%s_count %" PRIu64 "\n", name,
	    fmt_double(buf, sizeof(buf), h->h_sum), name, h->h_count);
}

/* The buckets, sum and count of h, labelled class="cm's name". */
static void
prom_class_histogram(struct mbuf *mb, const char *name,
    const struct class_metrics *cm, const struct histogram *h)
{
	char		 buf[32];
	uint64_t	 cum = 0;
	size_t		 i;

	for (i = 0; i < METRICS_NBUCKETS; i++) {
		cum += h->h_buckets[i];
		mbuf_printf(mb, "%s_bucket{class=\"", name);
		mbuf_escaped(mb, cm->cm_name, 0);
		mbuf_printf(mb, "\",le=\"%s\"} %" PRIu64 "\n",
		    fmt_double(buf, sizeof(buf), metrics_bucket_le[i]), cum);
	}
	mbuf_printf(mb, "%s_sum{class=\"", name);
	mbuf_escaped(mb, cm->cm_name, 0);
	mbuf_printf(mb, "\"} %s\n%s_count{class=\"", fmt_double(buf,
	    sizeof(buf), h->h_sum), name);
	mbuf_escaped(mb, cm->cm_name, 0);
	mbuf_printf(mb, "\"} %" PRIu64 "\n", h->h_count);
}

/*
 * A histogram family by class. With no class yet, one unlabelled series
 * of the totals, so that the family is never empty.
 */
static void
prom_histogram_by_class(struct mbuf *mb, const struct metrics *m,
    const char *name, const char *help, size_t off,
    const struct histogram *total)
{
	size_t	 i;

	if (m->m_nclasses == 0) {
		prom_histogram(mb, name, help, total);
		return;
	}
	prom_head(mb, name, "histogram", help);
	for (i = 0; i < m->m_nclasses; i++)
		prom_class_histogram(mb, name, &m->m_classes[i],
		    (const struct histogram *)(const void *)
		    ((const char *)&m->m_classes[i] + off));
}

/* Start a sample line up to the open class label value. */
static void
prom_class(struct mbuf *mb, const char *name, const struct class_metrics *cm)
{
	mbuf_printf(mb, "%s{class=\"", name);
	mbuf_escaped(mb, cm->cm_name, 0);
}

static void
prom_classes(struct mbuf *mb, const struct metrics *m)
{
	const struct class_metrics	*cm;
	size_t				 i, s;
	int				 r;

	prom_head(mb, "spillway_requests_total", "counter",
	    "Requests answered, by class and status code.");
	for (i = 0; i < m->m_nclasses; i++) {
		cm = &m->m_classes[i];
		for (s = 0; s < 500; s++) {
			if (cm->cm_status[s] == 0)
				continue;
			prom_class(mb, "spillway_requests_total", cm);
			mbuf_printf(mb, "\",code=\"%zu\"} %" PRIu64 "\n",
			    s + 100, cm->cm_status[s]);
		}
	}

	prom_head(mb, "spillway_refused_total", "counter",
	    "Requests spillway answered itself, by class and reason.");
	for (i = 0; i < m->m_nclasses; i++) {
		cm = &m->m_classes[i];
		for (r = 0; r < MR_COUNT; r++) {
			prom_class(mb, "spillway_refused_total", cm);
			mbuf_printf(mb, "\",reason=\"%s\"} %" PRIu64 "\n",
			    reason_names[r], cm->cm_refused[r]);
		}
	}

	prom_head(mb, "spillway_dry_run_refusals_total", "counter",
	    "Requests that would have been rate limited, by class.");
	for (i = 0; i < m->m_nclasses; i++) {
		cm = &m->m_classes[i];
		prom_class(mb, "spillway_dry_run_refusals_total", cm);
		mbuf_printf(mb, "\"} %" PRIu64 "\n", cm->cm_dry_run);
	}

	prom_head(mb, "spillway_faults_injected_total", "counter",
	    "Faults injected on purpose ([class] fault_*), by class and kind.");
	for (i = 0; i < m->m_nclasses; i++) {
		cm = &m->m_classes[i];
		for (r = 0; r < FAULT_NKINDS; r++) {
			prom_class(mb, "spillway_faults_injected_total", cm);
			mbuf_printf(mb, "\",kind=\"%s\"} %" PRIu64 "\n",
			    fault_kind_name((enum fault_kind)r),
			    cm->cm_faults[r]);
		}
	}
}

/* One process_* sample, left out when unknown (< 0). */
static void
prom_process(struct mbuf *mb, const char *name, const char *type,
    const char *help, double v)
{
	char	 buf[32];

	if (!(v >= 0))
		return;
	prom_head(mb, name, type, help);
	mbuf_printf(mb, "%s %s\n", name, fmt_double(buf, sizeof(buf), v));
}

/* The names and help texts of the Prometheus client libraries. */
static void
prom_process_family(struct mbuf *mb, const struct metrics_process *p)
{
	prom_process(mb, "process_cpu_seconds_total", "counter",
	    "Total user and system CPU time spent in seconds.",
	    p->cpu_seconds);
	prom_process(mb, "process_open_fds", "gauge",
	    "Number of open file descriptors.", p->open_fds);
	prom_process(mb, "process_max_fds", "gauge",
	    "Maximum number of open file descriptors.", p->max_fds);
	prom_process(mb, "process_virtual_memory_bytes", "gauge",
	    "Virtual memory size in bytes.", p->virtual_memory_bytes);
	prom_process(mb, "process_resident_memory_bytes", "gauge",
	    "Resident memory size in bytes.", p->resident_memory_bytes);
	prom_process(mb, "process_start_time_seconds", "gauge",
	    "Start time of the process since unix epoch in seconds.",
	    p->start_time_seconds);
}

void
metrics_prometheus(const struct metrics *m, const struct metrics_gauges *g,
    struct mbuf *mb)
{
	int	 p;

	prom_head(mb, "spillway_build_info", "gauge",
	    "Always 1; the version is a label.");
	mbuf_printf(mb, "spillway_build_info{version=\"");
	mbuf_escaped(mb, g->version != NULL ? g->version : "unknown", 0);
	mbuf_printf(mb, "\"} 1\n");
	prom_double(mb, "spillway_uptime_seconds",
	    "Seconds since the process started.", g->uptime_seconds);
	prom_u64(mb, "spillway_config_generation", "gauge",
	    "Generation of the configuration in force, 1 at start.",
	    g->generation);
	prom_u64_by(mb, "spillway_config_reloads_total", "counter",
	    "Configuration reloads, by result.", "result", reload_results,
	    (const uint64_t[]){ m->m_reloads_ok, m->m_reloads_failed }, 2);

	prom_classes(mb, m);

	prom_u64(mb, "spillway_requests_in_flight", "gauge",
	    "Requests holding a concurrency slot.", g->inflight);
	prom_u64(mb, "spillway_concurrency_limit", "gauge",
	    "Current concurrency limit.", g->limit);
	prom_head(mb, "spillway_limiter_info", "gauge",
	    "Always 1; the limiter algorithm is a label.");
	mbuf_printf(mb, "spillway_limiter_info{algorithm=\"");
	mbuf_escaped(mb, g->algorithm != NULL ? g->algorithm : "unknown", 0);
	mbuf_printf(mb, "\"} 1\n");
	prom_double(mb, "spillway_limiter_min_latency_seconds",
	    "Lowest latency the limiter has seen recently.",
	    g->limiter_min_rtt_seconds);
	prom_double(mb, "spillway_limiter_latency_seconds",
	    "Recent latency as the limiter sees it.", g->limiter_rtt_seconds);
	prom_double(mb, "spillway_limiter_long_latency_seconds",
	    "Long-term average latency as the limiter sees it.",
	    g->limiter_long_rtt_seconds);
	prom_double(mb, "spillway_limiter_gradient",
	    "Limiter gradient: long-term over recent latency.",
	    g->limiter_gradient);

	prom_u64(mb, "spillway_queue_length", "gauge",
	    "Requests waiting for a concurrency slot.", g->queue_length);
	prom_head(mb, "spillway_queue_length_by_priority", "gauge",
	    "Requests waiting for a concurrency slot, by priority.");
	for (p = 0; p < QUEUE_NPRIO; p++)
		mbuf_printf(mb, "spillway_queue_length_by_priority"
		    "{priority=\"%s\"} %zu\n",
		    config_priority_name((enum priority)p),
		    g->queue_length_prio[p]);

	prom_u64(mb, "spillway_queue_growing", "gauge",
	    "1 while arrivals outpace departures (overload), else 0.",
	    (uint64_t)g->queue_growing);
	prom_double(mb, "spillway_queue_drain_rate",
	    "Requests per second the backend takes from the queue.",
	    g->queue_drain_rate);
	prom_double(mb, "spillway_queue_allowed_wait_seconds",
	    "Longest a new waiter may wait now.", g->queue_wait_seconds);
	prom_double(mb, "spillway_event_loop_lag_seconds",
	    "How long a ready event waits for the event loop (smoothed; "
	    "the largest of the workers' loops).", g->loop_lag_seconds);
	prom_u64_by(mb, "spillway_lock_acquisitions_total", "counter",
	    "Times a lock the workers share was taken.", "lock",
	    g->lock_name, g->lock_taken, g->nlocks);
	prom_u64_by(mb, "spillway_lock_waits_total", "counter",
	    "Times a lock the workers share was found held and waited for.",
	    "lock", g->lock_name, g->lock_waited, g->nlocks);
	prom_head(mb, "spillway_dry_run_shed_total", "counter",
	    "Limiter dry run: requests past the limit, by what would have "
	    "happened to them.");
	for (p = 0; p < METRICS_NSHED; p++) {
		if (shed_dry_names[p] == NULL)
			continue;
		mbuf_printf(mb, "spillway_dry_run_shed_total{decision=\"%s\"} %"
		    PRIu64 "\n", shed_dry_names[p], m->m_shed_dry_run[p]);
	}

	prom_histogram_by_class(mb, m, "spillway_request_duration_seconds",
	    "Time from request head to the end of the response, every "
	    "request, by class.", offsetof(struct class_metrics, cm_latency),
	    &m->m_latency);
	prom_histogram_by_class(mb, m, "spillway_served_duration_seconds",
	    "Time from request head to the end of the response, requests "
	    "admitted and sent to a backend only, by class.",
	    offsetof(struct class_metrics, cm_served), &m->m_served);
	prom_histogram_by_class(mb, m, "spillway_upstream_duration_seconds",
	    "Time from dispatch to the backend's response head, by class.",
	    offsetof(struct class_metrics, cm_upstream), &m->m_upstream);
	prom_histogram_by_class(mb, m, "spillway_queue_wait_seconds",
	    "Time spent waiting in the queue, served or shed, by class.",
	    offsetof(struct class_metrics, cm_queue_wait), &m->m_queue_wait);

	prom_u64_by(mb, "spillway_upstream_connections", "gauge",
	    "Backend connections open now, by state.", "state", conn_states,
	    (const uint64_t[]){ g->upstream_active, g->upstream_idle }, 2);
	prom_u64(mb, "spillway_upstream_connections_opened_total", "counter",
	    "Backend connections opened.", m->m_upstream_connections);
	prom_u64(mb, "spillway_upstream_connect_failures_total", "counter",
	    "Backend connection attempts that failed.",
	    m->m_upstream_connect_failures);
	prom_u64(mb, "spillway_client_connections", "gauge",
	    "Client connections open now.", g->client_connections);
	prom_u64(mb, "spillway_client_connections_accepted_total", "counter",
	    "Client connections accepted.", m->m_client_connections);
	prom_u64_by(mb, "spillway_tls_handshakes_total", "counter",
	    "TLS handshakes with clients, by result.", "result",
	    handshake_results, (const uint64_t[]){ m->m_tls_handshakes,
	    m->m_tls_failed, m->m_tls_timeouts }, 3);
	prom_u64(mb, "spillway_tls_renegotiations_total", "counter",
	    "TLS renegotiation attempts refused (the connection closed).",
	    m->m_tls_renegotiations);
	prom_u64_by(mb, "spillway_proxy_protocol_headers_total", "counter",
	    "PROXY protocol headers on the listeners that take them, by "
	    "result.", "result", proxyproto_results, m->m_proxyproto, 3);
	prom_u64(mb, "spillway_admission_clients", "gauge",
	    "Per-client rate buckets kept.", g->admission_clients);
	prom_u64(mb, "spillway_admission_evictions_total", "counter",
	    "Per-client rate buckets evicted to make room.",
	    g->admission_evictions);
	prom_u64(mb, "spillway_cluster_up", "gauge",
	    "1 if the admission buckets are shared on Redis now, else 0 "
	    "(off, or a local share while Redis is away).", g->cluster_up);
	prom_u64(mb, "spillway_cluster_instances", "gauge",
	    "Instances sharing the buckets, as Redis last said (or "
	    "[cluster] instances).", g->cluster_instances);
	prom_u64(mb, "spillway_cluster_calls_total", "counter",
	    "Commands sent to Redis.", g->cluster_calls);
	prom_u64(mb, "spillway_cluster_errors_total", "counter",
	    "Calls to Redis failed, unanswered in time or answered wrongly, "
	    "and failed connects.", g->cluster_errors);
	prom_u64(mb, "spillway_cluster_lease_tokens_total", "counter",
	    "Tokens leased from the shared buckets.", g->cluster_lease_tokens);
	prom_u64(mb, "spillway_cluster_transitions_total", "counter",
	    "Changes between shared (Redis up) and local share.",
	    g->cluster_changes);
	prom_double(mb, "spillway_cluster_rtt_seconds",
	    "Smoothed round trip of a call to Redis.", g->cluster_rtt_seconds);
	prom_u64(mb, "spillway_response_bytes_total", "counter",
	    "Response bytes written to clients.", m->m_bytes_out);
	if (g->process != NULL)
		prom_process_family(mb, g->process);
}


/* JSON has no NaN or Infinity; a gauge that has none yet reads 0. */
static void
json_num(struct mbuf *mb, double v)
{
	char	 buf[32];

	if (!isfinite(v))
		v = 0;
	mbuf_printf(mb, "%s", fmt_double(buf, sizeof(buf), v));
}

void
metrics_json_refused(struct mbuf *mb, const uint64_t refused[MR_COUNT])
{
	int	 r;

	mbuf_printf(mb, "{");
	for (r = 0; r < MR_COUNT; r++)
		mbuf_printf(mb, "%s\"%s\": %" PRIu64, r == 0 ? "" : ", ",
		    reason_names[r], refused[r]);
	mbuf_printf(mb, "}");
}

void
metrics_json_histogram(struct mbuf *mb, const struct histogram *h)
{
	uint64_t	 cum = 0;
	size_t		 i;

	mbuf_printf(mb, "{\"count\": %" PRIu64 ", \"sum\": ", h->h_count);
	json_num(mb, h->h_sum);
	mbuf_printf(mb, ", \"buckets\": [");
	for (i = 0; i < METRICS_NBUCKETS; i++) {
		cum += h->h_buckets[i];
		mbuf_printf(mb, "%s[", i == 0 ? "" : ", ");
		if (isinf(metrics_bucket_le[i]))
			mbuf_printf(mb, "\"+Inf\"");
		else
			json_num(mb, metrics_bucket_le[i]);
		mbuf_printf(mb, ", %" PRIu64 "]", cum);
	}
	mbuf_printf(mb, "]}");
}

static void
json_histogram(struct mbuf *mb, const char *name, const struct histogram *h)
{
	mbuf_printf(mb, ",\n\"%s\": ", name);
	metrics_json_histogram(mb, h);
}

static void
json_class(struct mbuf *mb, const struct class_metrics *cm)
{
	uint64_t	 req = 0;
	size_t		 s;
	const char	*sep = "";

	for (s = 0; s < 500; s++)
		req += cm->cm_status[s];
	mbuf_printf(mb, "{\"name\": ");
	mbuf_json_str(mb, cm->cm_name);
	mbuf_printf(mb, ", \"requests\": %" PRIu64 ", \"responses\": {", req);
	for (s = 0; s < 500; s++) {
		if (cm->cm_status[s] == 0)
			continue;
		mbuf_printf(mb, "%s\"%zu\": %" PRIu64, sep, s + 100,
		    cm->cm_status[s]);
		sep = ", ";
	}
	mbuf_printf(mb, "}, \"refused\": ");
	metrics_json_refused(mb, cm->cm_refused);
	mbuf_printf(mb, ", \"dry_run\": %" PRIu64 ", \"faults\": {\"delay\": %"
	    PRIu64 ", \"abort\": %" PRIu64 "}}", cm->cm_dry_run,
	    cm->cm_faults[FAULT_KIND_DELAY], cm->cm_faults[FAULT_KIND_ABORT]);
}

/*
 * Totals over every class. 1xx final statuses count in "requests" but
 * have no "responses" key: the contract names 2xx to 5xx only.
 */
void
metrics_totals(const struct metrics *m, uint64_t *requests,
    uint64_t byclass[5], uint64_t refused[MR_COUNT], uint64_t *dry)
{
	const struct class_metrics	*cm;
	size_t				 i, s;
	int				 r;

	*requests = *dry = 0;
	memset(byclass, 0, 5 * sizeof(byclass[0]));
	memset(refused, 0, MR_COUNT * sizeof(refused[0]));
	for (i = 0; i < m->m_nclasses; i++) {
		cm = &m->m_classes[i];
		for (s = 0; s < 500; s++) {
			*requests += cm->cm_status[s];
			byclass[s / 100] += cm->cm_status[s];
		}
		for (r = 0; r < MR_COUNT; r++)
			refused[r] += cm->cm_refused[r];
		*dry += cm->cm_dry_run;
	}
}

/*
 * Totals over every class. 1xx final statuses count in "requests" but
 * have no "responses" key: the contract names 2xx to 5xx only.
 */
static void
json_totals(struct mbuf *mb, const struct metrics *m)
{
	uint64_t	 req, byclass[5], refused[MR_COUNT], dry;

	metrics_totals(m, &req, byclass, refused, &dry);
	mbuf_printf(mb, ",\n\"totals\": {\"requests\": %" PRIu64 ", "
	    "\"responses\": {\"2xx\": %" PRIu64 ", \"3xx\": %" PRIu64 ", "
	    "\"4xx\": %" PRIu64 ", \"5xx\": %" PRIu64 "}, \"refused\": ",
	    req, byclass[1], byclass[2], byclass[3], byclass[4]);
	metrics_json_refused(mb, refused);
	mbuf_printf(mb, ", \"dry_run\": %" PRIu64 ", \"bytes_out\": %" PRIu64
	    "}", dry, m->m_bytes_out);
}

void
metrics_json(const struct metrics *m, const struct metrics_gauges *g,
    struct mbuf *mb)
{
	size_t	 i;

	mbuf_printf(mb, "{\"version\": ");
	mbuf_json_str(mb, g->version != NULL ? g->version : "unknown");
	mbuf_printf(mb, ",\n\"uptime_seconds\": ");
	json_num(mb, g->uptime_seconds);
	mbuf_printf(mb, ",\n\"generation\": %lu", g->generation);
	mbuf_printf(mb, ",\n\"reloads\": {\"ok\": %" PRIu64 ", \"failed\": %"
	    PRIu64 "}", m->m_reloads_ok, m->m_reloads_failed);
	mbuf_printf(mb, ",\n\"clients\": {\"open\": %u, \"accepted_total\": %"
	    PRIu64 "}", g->client_connections, m->m_client_connections);

	mbuf_printf(mb, ",\n\"limiter\": {\"algorithm\": ");
	mbuf_json_str(mb, g->algorithm != NULL ? g->algorithm : "unknown");
	mbuf_printf(mb, ", \"limit\": %u, \"inflight\": %u, "
	    "\"min_rtt_seconds\": ", g->limit, g->inflight);
	json_num(mb, g->limiter_min_rtt_seconds);
	mbuf_printf(mb, ", \"rtt_seconds\": ");
	json_num(mb, g->limiter_rtt_seconds);
	mbuf_printf(mb, ", \"long_rtt_seconds\": ");
	json_num(mb, g->limiter_long_rtt_seconds);
	mbuf_printf(mb, ", \"gradient\": ");
	json_num(mb, g->limiter_gradient);
	mbuf_printf(mb, "}");

	mbuf_printf(mb, ",\n\"queue\": {\"length\": %zu, \"by_priority\": "
	    "{\"%s\": %zu, \"%s\": %zu, \"%s\": %zu}, \"growing\": %s, "
	    "\"drain_rate\": ", g->queue_length,
	    config_priority_name(PRIO_CRITICAL), g->queue_length_prio[0],
	    config_priority_name(PRIO_NORMAL), g->queue_length_prio[1],
	    config_priority_name(PRIO_SHEDDABLE), g->queue_length_prio[2],
	    g->queue_growing ? "true" : "false");
	json_num(mb, g->queue_drain_rate);
	mbuf_printf(mb, ", \"allowed_wait_seconds\": ");
	json_num(mb, g->queue_wait_seconds);
	mbuf_printf(mb, ", \"loop_lag_seconds\": ");
	json_num(mb, g->loop_lag_seconds);
	mbuf_printf(mb, ", \"dry_run\": {\"%s\": %" PRIu64 ", \"%s\": %" PRIu64
	    ", \"%s\": %" PRIu64 "}}", shed_dry_names[0], m->m_shed_dry_run[0],
	    shed_dry_names[1], m->m_shed_dry_run[1], shed_dry_names[3],
	    m->m_shed_dry_run[3]);
	mbuf_printf(mb, ",\n\"upstream\": {\"active\": %u, \"idle\": %u, "
	    "\"opened_total\": %" PRIu64 ", \"connect_failures_total\": %"
	    PRIu64 "}", g->upstream_active, g->upstream_idle,
	    m->m_upstream_connections, m->m_upstream_connect_failures);
	mbuf_printf(mb, ",\n\"tls\": {\"handshakes\": %" PRIu64 ", "
	    "\"failed\": %" PRIu64 ", \"timeouts\": %" PRIu64 ", "
	    "\"renegotiations\": %" PRIu64 "}", m->m_tls_handshakes,
	    m->m_tls_failed, m->m_tls_timeouts, m->m_tls_renegotiations);
	mbuf_printf(mb, ",\n\"admission\": {\"clients\": %zu, "
	    "\"evictions_total\": %" PRIu64 "}", g->admission_clients,
	    g->admission_evictions);
	mbuf_printf(mb, ",\n\"cluster\": {\"state\": \"%s\", \"up\": %d, "
	    "\"instances\": %u, \"calls_total\": %" PRIu64 ", "
	    "\"errors_total\": %" PRIu64 ", \"lease_tokens_total\": %" PRIu64
	    ", \"transitions_total\": %" PRIu64 "}",
	    g->cluster_state != NULL ? g->cluster_state : "off", g->cluster_up,
	    g->cluster_instances, g->cluster_calls, g->cluster_errors,
	    g->cluster_lease_tokens, g->cluster_changes);

	json_totals(mb, m);
	mbuf_printf(mb, ",\n\"classes\": [");
	for (i = 0; i < m->m_nclasses; i++) {
		mbuf_printf(mb, "%s\n  ", i == 0 ? "" : ",");
		json_class(mb, &m->m_classes[i]);
	}
	mbuf_printf(mb, "]");

	json_histogram(mb, "latency_seconds", &m->m_latency);
	json_histogram(mb, "served_latency_seconds", &m->m_served);
	json_histogram(mb, "upstream_latency_seconds", &m->m_upstream);
	json_histogram(mb, "queue_wait_seconds", &m->m_queue_wait);

	/* the admin module renders the configuration; "" would break us */
	if (g->config_json != NULL && g->config_json[0] != '\0')
		mbuf_printf(mb, ",\n\"config\": %s", g->config_json);
	mbuf_printf(mb, "}");
}
