/*
 * Unit tests of the metrics: class table, histograms, the text buffer,
 * and both renderings. The outputs are checked by two small validators
 * below (Prometheus text 0.0.4 line grammar, JSON grammar), so a
 * rendering bug shows up as a parse failure rather than a dashboard gap.
 */
#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "tap.h"

static const char *const families[][2] = {
	{ "spillway_build_info", "gauge" },
	{ "spillway_uptime_seconds", "gauge" },
	{ "spillway_config_generation", "gauge" },
	{ "spillway_config_reloads_total", "counter" },
	{ "spillway_requests_total", "counter" },
	{ "spillway_refused_total", "counter" },
	{ "spillway_dry_run_refusals_total", "counter" },
	{ "spillway_faults_injected_total", "counter" },
	{ "spillway_requests_in_flight", "gauge" },
	{ "spillway_concurrency_limit", "gauge" },
	{ "spillway_limiter_info", "gauge" },
	{ "spillway_limiter_min_latency_seconds", "gauge" },
	{ "spillway_limiter_latency_seconds", "gauge" },
	{ "spillway_limiter_long_latency_seconds", "gauge" },
	{ "spillway_limiter_gradient", "gauge" },
	{ "spillway_queue_length", "gauge" },
	{ "spillway_queue_length_by_priority", "gauge" },
	{ "spillway_queue_growing", "gauge" },
	{ "spillway_queue_drain_rate", "gauge" },
	{ "spillway_queue_allowed_wait_seconds", "gauge" },
	{ "spillway_event_loop_lag_seconds", "gauge" },
	{ "spillway_lock_acquisitions_total", "counter" },
	{ "spillway_lock_waits_total", "counter" },
	{ "spillway_dry_run_shed_total", "counter" },
	{ "spillway_request_duration_seconds", "histogram" },
	{ "spillway_served_duration_seconds", "histogram" },
	{ "spillway_upstream_duration_seconds", "histogram" },
	{ "spillway_queue_wait_seconds", "histogram" },
	{ "spillway_upstream_connections", "gauge" },
	{ "spillway_upstream_connections_opened_total", "counter" },
	{ "spillway_upstream_connect_failures_total", "counter" },
	{ "spillway_client_connections", "gauge" },
	{ "spillway_client_connections_accepted_total", "counter" },
	{ "spillway_tls_handshakes_total", "counter" },
	{ "spillway_tls_renegotiations_total", "counter" },
	{ "spillway_proxy_protocol_headers_total", "counter" },
	{ "spillway_admission_clients", "gauge" },
	{ "spillway_admission_evictions_total", "counter" },
	{ "spillway_cluster_up", "gauge" },
	{ "spillway_cluster_instances", "gauge" },
	{ "spillway_cluster_calls_total", "counter" },
	{ "spillway_cluster_errors_total", "counter" },
	{ "spillway_cluster_lease_tokens_total", "counter" },
	{ "spillway_cluster_transitions_total", "counter" },
	{ "spillway_cluster_rtt_seconds", "gauge" },
	{ "spillway_response_bytes_total", "counter" },
};
#define NFAMILIES	(sizeof(families) / sizeof(families[0]))

/* A proxy with some history: two classes, a few latencies. */
static void
fixture(struct metrics *m, struct metrics_gauges *g)
{
	struct class_metrics	*cm;
	int			 i;

	metrics_init(m);
	cm = metrics_class(m, "default");
	cm->cm_status[200 - 100] = 90;
	cm->cm_status[429 - 100] = 10;
	cm->cm_status[503 - 100] = 20;
	cm->cm_refused[MR_RATE_LIMITED] = 10;
	cm->cm_refused[MR_OVERLOADED] = 20;
	cm = metrics_class(m, "api");
	cm->cm_status[204 - 100] = 5;
	cm->cm_status[301 - 100] = 1;
	cm->cm_dry_run = 3;
	cm->cm_faults[FAULT_KIND_ABORT] = 4;
	cm->cm_faults[FAULT_KIND_DELAY] = 2;
	/* even: default, odd: api; the first 50 served, 0.01 s upstream */
	for (i = 0; i < 100; i++)
		metrics_observe_request(m, metrics_class(m, i % 2 ? "api" :
		    "default"), i * 0.013, i < 50 ? 0.01 : -1, i < 50);
	metrics_observe_wait(m, metrics_class(m, "default"), 0.3);
	m->m_upstream_connections = 40;
	m->m_client_connections = 120;
	m->m_reloads_ok = 1;
	m->m_bytes_out = 12345;

	memset(g, 0, sizeof(*g));
	g->version = "0.1.0";
	g->uptime_seconds = 12.5;
	g->generation = 2;
	g->client_connections = 3;
	g->inflight = 7;
	g->limit = 12;
	g->algorithm = "gradient";
	g->limiter_min_rtt_seconds = 0.020;
	g->limiter_rtt_seconds = 0.022;
	g->limiter_long_rtt_seconds = 0.021;
	g->limiter_gradient = 1.0;
	g->queue_length = 3;
	g->queue_length_prio[1] = 3;
	g->upstream_active = 7;
	g->upstream_idle = 20;
	g->admission_clients = 100;
}

/* Prometheus text 0.0.4, one line at a time. */

struct prom_family {
	char	 name[128];
	char	 type[16];
	int	 help, closed;
};

struct prom_check {
	struct prom_family	 fam[64];
	int			 nfam;
	int			 cur;		/* family of the last sample */
	char			 err[160];
};

static struct prom_family *
prom_family(struct prom_check *pc, const char *name, size_t len)
{
	int	 i;

	for (i = 0; i < pc->nfam; i++)
		if (strlen(pc->fam[i].name) == len &&
		    strncmp(pc->fam[i].name, name, len) == 0)
			return &pc->fam[i];
	return NULL;
}

static size_t
prom_name(const char *s)
{
	size_t	 n = 0;

	if (!isalpha((unsigned char)s[0]) && s[0] != '_' && s[0] != ':')
		return 0;
	while (isalnum((unsigned char)s[n]) || s[n] == '_' || s[n] == ':')
		n++;
	return n;
}

/* The family a sample belongs to: its name, or a histogram's base. */
static struct prom_family *
prom_sample_family(struct prom_check *pc, const char *name, size_t len)
{
	static const char *const sfx[] = { "_bucket", "_sum", "_count" };
	struct prom_family	*f;
	size_t			 i, n;

	if ((f = prom_family(pc, name, len)) != NULL)
		return f;
	for (i = 0; i < 3; i++) {
		n = strlen(sfx[i]);
		if (len > n && strncmp(name + len - n, sfx[i], n) == 0 &&
		    (f = prom_family(pc, name, len - n)) != NULL &&
		    strcmp(f->type, "histogram") == 0)
			return f;
	}
	return NULL;
}

static int
prom_fail(struct prom_check *pc, const char *line, const char *why)
{
	snprintf(pc->err, sizeof(pc->err), "%s: %.100s", why, line);
	return -1;
}

static int
prom_comment(struct prom_check *pc, const char *line)
{
	struct prom_family	*f;
	size_t			 n;
	const char		*p;
	int			 help;

	if (strncmp(line, "# HELP ", 7) == 0)
		help = 1;
	else if (strncmp(line, "# TYPE ", 7) == 0)
		help = 0;
	else
		return 0;
	p = line + 7;
	if ((n = prom_name(p)) == 0 || p[n] != ' ')
		return prom_fail(pc, line, "bad name in comment");
	if ((f = prom_family(pc, p, n)) == NULL) {
		if (pc->nfam == 64 || n >= sizeof(f->name))
			return prom_fail(pc, line, "too many families");
		f = &pc->fam[pc->nfam++];
		memset(f, 0, sizeof(*f));
		memcpy(f->name, p, n);
	}
	if (f->closed)
		return prom_fail(pc, line, "comment after samples");
	if (help) {
		if (f->help++)
			return prom_fail(pc, line, "second HELP");
		return 0;
	}
	if (f->type[0] != '\0')
		return prom_fail(pc, line, "second TYPE");
	p += n + 1;
	if (strcmp(p, "counter") != 0 && strcmp(p, "gauge") != 0 &&
	    strcmp(p, "histogram") != 0 && strcmp(p, "summary") != 0 &&
	    strcmp(p, "untyped") != 0)
		return prom_fail(pc, line, "bad type");
	snprintf(f->type, sizeof(f->type), "%s", p);
	return 0;
}

static int
prom_labels(struct prom_check *pc, const char *line, const char **pp)
{
	const char	*p = *pp;
	size_t		 n;

	if (*p != '{')
		return 0;
	p++;
	while (*p != '}') {
		if ((n = prom_name(p)) == 0 || p[n] != '=' || p[n + 1] != '"')
			return prom_fail(pc, line, "bad label");
		for (p += n + 2; *p != '"'; p++) {
			if (*p == '\0' || *p == '\n')
				return prom_fail(pc, line, "open label");
			if (*p == '\\') {
				p++;
				if (*p != '\\' && *p != '"' && *p != 'n')
					return prom_fail(pc, line,
					    "bad escape");
			}
		}
		p++;
		if (*p == ',')
			p++;
		else if (*p != '}')
			return prom_fail(pc, line, "bad label list");
	}
	*pp = p + 1;
	return 0;
}

static int
prom_sample(struct prom_check *pc, const char *line)
{
	struct prom_family	*f;
	const char		*p = line;
	char			*end;
	size_t			 n;

	if ((n = prom_name(p)) == 0)
		return prom_fail(pc, line, "bad sample name");
	if ((f = prom_sample_family(pc, p, n)) == NULL || f->type[0] == '\0')
		return prom_fail(pc, line, "sample without TYPE");
	if (f->closed)
		return prom_fail(pc, line, "family not contiguous");
	if (pc->cur >= 0 && &pc->fam[pc->cur] != f)
		pc->fam[pc->cur].closed = 1;
	pc->cur = (int)(f - pc->fam);
	p += n;
	if (prom_labels(pc, line, &p) == -1)
		return -1;
	if (*p++ != ' ')
		return prom_fail(pc, line, "no space before value");
	if (strcmp(p, "+Inf") != 0 && strcmp(p, "-Inf") != 0 &&
	    strcmp(p, "NaN") != 0) {
		if (*p == '\0' || isspace((unsigned char)*p))
			return prom_fail(pc, line, "no value");
		(void)strtod(p, &end);
		if (*end != '\0' || isalpha((unsigned char)p[0]) ||
		    isalpha((unsigned char)p[1]))
			return prom_fail(pc, line, "bad value");
	}
	return 0;
}

/* 0 if every line of text parses as Prometheus 0.0.4; else -1 and err. */
static int
prom_validate(const char *text, struct prom_check *pc)
{
	char		 line[1024];
	const char	*p = text, *nl;
	size_t		 n;
	int		 rc;

	memset(pc, 0, sizeof(*pc));
	pc->cur = -1;
	while (*p != '\0') {
		if ((nl = strchr(p, '\n')) == NULL)
			return prom_fail(pc, p, "last line without newline");
		n = (size_t)(nl - p);
		if (n >= sizeof(line))
			return prom_fail(pc, p, "line too long");
		memcpy(line, p, n);
		line[n] = '\0';
		p = nl + 1;
		if (n == 0)
			continue;
		rc = line[0] == '#' ? prom_comment(pc, line) :
		    prom_sample(pc, line);
		if (rc == -1)
			return -1;
	}
	return 0;
}

/* JSON (RFC 8259), by recursive descent; returns the end or NULL. */

static const char *json_value(const char *, int);

static const char *
json_ws(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	return p;
}

static const char *
json_string(const char *p)
{
	int	 i;

	if (*p++ != '"')
		return NULL;
	while (*p != '"') {
		if ((unsigned char)*p < 0x20)	/* NUL included */
			return NULL;
		if (*p++ != '\\')
			continue;
		if (*p == 'u') {
			for (i = 1; i <= 4; i++)
				if (!isxdigit((unsigned char)p[i]))
					return NULL;
			p += 5;
		} else if (*p != '\0' && strchr("\"\\/bfnrt", *p) != NULL)
			p++;
		else
			return NULL;
	}
	return p + 1;
}

static const char *
json_number(const char *p)
{
	if (*p == '-')
		p++;
	if (*p == '0')
		p++;
	else if (*p >= '1' && *p <= '9')
		while (isdigit((unsigned char)*p))
			p++;
	else
		return NULL;
	if (*p == '.') {
		if (!isdigit((unsigned char)*++p))
			return NULL;
		while (isdigit((unsigned char)*p))
			p++;
	}
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '+' || *p == '-')
			p++;
		if (!isdigit((unsigned char)*p))
			return NULL;
		while (isdigit((unsigned char)*p))
			p++;
	}
	return p;
}

static const char *
json_container(const char *p, int depth)
{
	char	 close = *p == '{' ? '}' : ']';
	int	 obj = *p == '{';

	p = json_ws(p + 1);
	if (*p == close)
		return p + 1;
	for (;;) {
		if (obj) {
			if ((p = json_string(json_ws(p))) == NULL)
				return NULL;
			p = json_ws(p);
			if (*p++ != ':')
				return NULL;
		}
		if ((p = json_value(p, depth + 1)) == NULL)
			return NULL;
		p = json_ws(p);
		if (*p == close)
			return p + 1;
		if (*p++ != ',')
			return NULL;
	}
}

static const char *
json_value(const char *p, int depth)
{
	if (depth > 64)
		return NULL;
	p = json_ws(p);
	switch (*p) {
	case '{':
	case '[':
		return json_container(p, depth);
	case '"':
		return json_string(p);
	case 't':
		return strncmp(p, "true", 4) == 0 ? p + 4 : NULL;
	case 'f':
		return strncmp(p, "false", 5) == 0 ? p + 5 : NULL;
	case 'n':
		return strncmp(p, "null", 4) == 0 ? p + 4 : NULL;
	default:
		return json_number(p);
	}
}

static int
json_valid(const char *text)
{
	const char	*end;

	if (text == NULL || (end = json_value(text, 0)) == NULL)
		return 0;
	return *json_ws(end) == '\0';
}

/* The value of the sample line that starts with prefix, or NaN. */
static double
prom_value(const char *text, const char *prefix)
{
	const char	*p = text;
	size_t		 n = strlen(prefix);

	while (p != NULL && *p != '\0') {
		if (strncmp(p, prefix, n) == 0 && p[n] == ' ')
			return strtod(p + n + 1, NULL);
		if ((p = strchr(p, '\n')) != NULL)
			p++;
	}
	return NAN;
}

static void
test_reason_names(void)
{
	CHECK_EQ_STR(metrics_reason_name(MR_RATE_LIMITED), "rate_limited");
	CHECK_EQ_STR(metrics_reason_name(MR_QUEUE_FULL), "queue_full");
	CHECK_EQ_STR(metrics_reason_name(MR_QUEUE_TIMEOUT), "queue_timeout");
	CHECK_EQ_STR(metrics_reason_name(MR_OVERLOADED), "overloaded");
	CHECK_EQ_STR(metrics_reason_name(MR_UPSTREAM_ERROR),
	    "upstream_error");
	CHECK_EQ_STR(metrics_reason_name(MR_UPSTREAM_TIMEOUT),
	    "upstream_timeout");
	CHECK_EQ_STR(metrics_reason_name(MR_COUNT), "unknown");
}

static void
test_class_find_create(void)
{
	struct metrics		 m;
	struct class_metrics	*a, *b;

	metrics_init(&m);
	CHECK(metrics_class(&m, NULL) == NULL);
	a = metrics_class(&m, "default");
	CHECK(a != NULL);
	CHECK_EQ_STR(a->cm_name, "default");
	CHECK_EQ_INT(a->cm_status[100], 0);
	a->cm_status[100] = 7;
	b = metrics_class(&m, "api");
	CHECK(b != NULL && b != a);
	CHECK_EQ_INT(m.m_nclasses, 2);
	a = metrics_class(&m, "default");
	CHECK_EQ_INT(a->cm_status[100], 7);
	CHECK_EQ_INT(m.m_nclasses, 2);
	/* exact match only: no prefix or case folding */
	CHECK(metrics_class(&m, "Default") != a);
	CHECK(metrics_class(&m, "defaul") != a);
	CHECK_EQ_INT(m.m_nclasses, 4);
	metrics_free(&m);
	CHECK(m.m_classes == NULL && m.m_nclasses == 0);
}

static void
test_class_growth_keeps_counters(void)
{
	struct metrics		 m;
	struct class_metrics	*cm;
	char			 name[32];
	int			 i;

	metrics_init(&m);
	for (i = 0; i < 100; i++) {
		snprintf(name, sizeof(name), "c%d", i);
		cm = metrics_class(&m, name);
		CHECK(cm != NULL);
		if (cm != NULL)
			cm->cm_dry_run = (uint64_t)i + 1;
	}
	CHECK_EQ_INT(m.m_nclasses, 100);
	CHECK(m.m_cap >= 100 && m.m_cap <= 200);
	for (i = 0; i < 100; i++) {
		snprintf(name, sizeof(name), "c%d", i);
		cm = metrics_class(&m, name);
		CHECK(cm != NULL && cm->cm_dry_run == (uint64_t)i + 1);
	}
	metrics_free(&m);
}

static void
test_class_truncate(void)
{
	struct metrics		 m;
	struct class_metrics	*a, *b;
	char			 longname[64], utf[64];

	metrics_init(&m);
	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	a = metrics_class(&m, longname);
	CHECK(a != NULL);
	CHECK_EQ_INT(strlen(a->cm_name), METRICS_CLASS_NAME - 1);
	/* the same long name, or its stored form, finds the same class */
	CHECK(metrics_class(&m, longname) == a);
	b = metrics_class(&m, a->cm_name);
	CHECK(b == a);
	CHECK_EQ_INT(m.m_nclasses, 1);

	/* 31 ASCII bytes then "é": cutting at 32 would split it */
	memset(utf, 'y', 31);
	memcpy(utf + 31, "\xc3\xa9z", 4);
	a = metrics_class(&m, utf);
	CHECK(a != NULL);
	CHECK_EQ_INT(strlen(a->cm_name), 31);
	CHECK(metrics_class(&m, utf) == a);
	metrics_free(&m);
}

static void
test_class_limit(void)
{
	struct metrics		 m;
	char			 name[32];
	int			 i, made = 0;

	metrics_init(&m);
	for (i = 0; i < METRICS_CLASSES_MAX + 10; i++) {
		snprintf(name, sizeof(name), "class-%d", i);
		if (metrics_class(&m, name) != NULL)
			made++;
	}
	CHECK_EQ_INT(made, METRICS_CLASSES_MAX);
	CHECK_EQ_INT(m.m_nclasses, METRICS_CLASSES_MAX);
	CHECK_EQ_INT(m.m_cap, METRICS_CLASSES_MAX);
	/* full: old names are still found, new ones refused */
	CHECK(metrics_class(&m, "class-0") != NULL);
	CHECK(metrics_class(&m, "class-1023") != NULL);
	CHECK(metrics_class(&m, "class-1024") == NULL);
	metrics_free(&m);
}

static void
test_bucket_bounds(void)
{
	CHECK(metrics_bucket_le[0] == 0.001);
	CHECK(metrics_bucket_le[1] == 0.0025);
	CHECK(metrics_bucket_le[9] == 1);
	CHECK(metrics_bucket_le[12] == 10);
	CHECK(isinf(metrics_bucket_le[METRICS_NBUCKETS - 1]));
}

static void
test_histogram_boundaries(void)
{
	struct histogram	 h;
	size_t			 i;

	memset(&h, 0, sizeof(h));
	histogram_observe(&h, 0.001);	/* le is inclusive */
	CHECK_EQ_INT(h.h_buckets[0], 1);
	histogram_observe(&h, 0.0010001);
	CHECK_EQ_INT(h.h_buckets[1], 1);
	histogram_observe(&h, 0);
	CHECK_EQ_INT(h.h_buckets[0], 2);
	histogram_observe(&h, 10);
	CHECK_EQ_INT(h.h_buckets[12], 1);
	histogram_observe(&h, 11);
	CHECK_EQ_INT(h.h_buckets[13], 1);
	/* each exact bound lands in its own bucket */
	memset(&h, 0, sizeof(h));
	for (i = 0; i < METRICS_NBUCKETS - 1; i++)
		histogram_observe(&h, metrics_bucket_le[i]);
	for (i = 0; i < METRICS_NBUCKETS - 1; i++)
		CHECK_EQ_INT(h.h_buckets[i], 1);
	CHECK_EQ_INT(h.h_buckets[METRICS_NBUCKETS - 1], 0);
}

static void
test_histogram_sum_count(void)
{
	struct histogram	 h;
	uint64_t		 total = 0;
	size_t			 i;

	memset(&h, 0, sizeof(h));
	histogram_observe(&h, 0.5);
	histogram_observe(&h, 0.25);
	histogram_observe(&h, 2);
	CHECK_EQ_INT(h.h_count, 3);
	CHECK(fabs(h.h_sum - 2.75) < 1e-12);
	for (i = 0; i < METRICS_NBUCKETS; i++)
		total += h.h_buckets[i];
	CHECK_EQ_INT(total, h.h_count);
}

static void
test_histogram_bad_values(void)
{
	struct histogram	 h;

	memset(&h, 0, sizeof(h));
	histogram_observe(&h, -1);
	histogram_observe(&h, NAN);
	CHECK_EQ_INT(h.h_buckets[0], 2);
	CHECK_EQ_INT(h.h_count, 2);
	CHECK(h.h_sum == 0);
	histogram_observe(&h, INFINITY);
	CHECK_EQ_INT(h.h_buckets[METRICS_NBUCKETS - 1], 1);
	CHECK_EQ_INT(h.h_count, 3);
	CHECK(isfinite(h.h_sum) && h.h_sum == 0);
}

static void
test_mbuf_growth(void)
{
	struct mbuf	 mb;
	char		 big[5000];
	int		 i;

	memset(&mb, 0, sizeof(mb));
	mbuf_printf(&mb, "%s", "");
	CHECK(mb.mb_data != NULL && mb.mb_len == 0 && mb.mb_data[0] == '\0');
	for (i = 0; i < 1000; i++)
		mbuf_printf(&mb, "%d,", i % 10);
	CHECK_EQ_INT(mb.mb_len, 2000);
	CHECK_EQ_INT(strlen(mb.mb_data), 2000);
	CHECK(mb.mb_cap > mb.mb_len);
	CHECK(strncmp(mb.mb_data + 1980, "0,1,2,3,4,", 10) == 0);
	/* one append larger than the doubled capacity */
	memset(big, 'b', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	mbuf_printf(&mb, "%s!", big);
	CHECK_EQ_INT(mb.mb_len, 2000 + 5000);
	CHECK_EQ_INT(strlen(mb.mb_data), mb.mb_len);
	CHECK(mb.mb_data[mb.mb_len - 1] == '!');
	CHECK_EQ_INT(mb.mb_failed, 0);
	mbuf_free(&mb);
	CHECK(mb.mb_data == NULL && mb.mb_len == 0 && mb.mb_cap == 0);
}

static void
test_mbuf_failed_stops(void)
{
	struct mbuf	 mb;

	memset(&mb, 0, sizeof(mb));
	mbuf_printf(&mb, "abc");
	mb.mb_failed = 1;
	mbuf_printf(&mb, "def");
	CHECK_EQ_STR(mb.mb_data, "abc");
	CHECK_EQ_INT(mb.mb_len, 3);
	mbuf_free(&mb);
}

static void
test_prom_families(void)
{
	struct metrics		 m;
	struct metrics_gauges	 g;
	struct mbuf		 mb = { 0 };
	char			 want[160];
	size_t			 i;

	fixture(&m, &g);
	metrics_prometheus(&m, &g, &mb);
	CHECK(mb.mb_data != NULL && !mb.mb_failed);
	for (i = 0; i < NFAMILIES; i++) {
		snprintf(want, sizeof(want), "\n# HELP %s ", families[i][0]);
		if (strstr(mb.mb_data, want) == NULL &&
		    strncmp(mb.mb_data, want + 1, strlen(want + 1)) != 0) {
			printf("# missing HELP for %s\n", families[i][0]);
			CHECK(0);
		}
		snprintf(want, sizeof(want), "\n# TYPE %s %s\n",
		    families[i][0], families[i][1]);
		if (strstr(mb.mb_data, want) == NULL) {
			printf("# missing TYPE for %s\n", families[i][0]);
			CHECK(0);
		}
	}
	mbuf_free(&mb);
	metrics_free(&m);
}

static void
test_prom_validates(void)
{
	struct metrics		 m;
	struct metrics_gauges	 g;
	struct mbuf		 mb = { 0 };
	struct prom_check	 pc;
	int			 i, typed = 0;

	fixture(&m, &g);
	g.limiter_gradient = NAN;	/* exposition allows NaN */
	metrics_prometheus(&m, &g, &mb);
	CHECK(prom_validate(mb.mb_data, &pc) == 0);
	if (pc.err[0] != '\0')
		printf("# %s\n", pc.err);
	for (i = 0; i < pc.nfam; i++)
		if (pc.fam[i].type[0] != '\0' && pc.fam[i].help)
			typed++;
	CHECK_EQ_INT(typed, NFAMILIES);
	CHECK_EQ_INT(pc.nfam, NFAMILIES);
	/* every name follows the conventions */
	for (i = 0; i < pc.nfam; i++) {
		CHECK(strncmp(pc.fam[i].name, "spillway_", 9) == 0);
		if (strcmp(pc.fam[i].type, "counter") == 0)
			CHECK(strstr(pc.fam[i].name, "_total") != NULL);
	}
	mbuf_free(&mb);
	metrics_free(&m);
}

static void
test_prom_process(void)
{
	struct metrics		 m;
	struct metrics_gauges	 g;
	struct metrics_process	 proc = { 1.7e9 + 0.25, 1.5, 4096 * 1000,
				    1 << 30, 12, -1 };
	struct mbuf		 mb = { 0 };
	struct prom_check	 pc;

	fixture(&m, &g);
	g.process = &proc;
	metrics_prometheus(&m, &g, &mb);
	CHECK(prom_validate(mb.mb_data, &pc) == 0);
	if (pc.err[0] != '\0')
		printf("# %s\n", pc.err);
	/* five of six known: process_max_fds is left out */
	CHECK_EQ_INT(pc.nfam, NFAMILIES + 5);
	CHECK(prom_value(mb.mb_data, "process_start_time_seconds") ==
	    1.7e9 + 0.25);
	CHECK(prom_value(mb.mb_data, "process_cpu_seconds_total") == 1.5);
	CHECK(prom_value(mb.mb_data, "process_resident_memory_bytes") ==
	    4096000);
	CHECK(prom_value(mb.mb_data, "process_virtual_memory_bytes") ==
	    1 << 30);
	CHECK(prom_value(mb.mb_data, "process_open_fds") == 12);
	CHECK(strstr(mb.mb_data, "process_max_fds") == NULL);
	CHECK(strstr(mb.mb_data, "# TYPE process_cpu_seconds_total counter\n")
	    != NULL);
	mbuf_free(&mb);
	metrics_free(&m);
}

static void
test_prom_empty(void)
{
	struct metrics		 m;
	struct metrics_gauges	 g;
	struct mbuf		 mb = { 0 };
	struct prom_check	 pc;

	/* nothing counted yet, no strings: still a valid exposition */
	metrics_init(&m);
	memset(&g, 0, sizeof(g));
	metrics_prometheus(&m, &g, &mb);
	CHECK(prom_validate(mb.mb_data, &pc) == 0);
	if (pc.err[0] != '\0')
		printf("# %s\n", pc.err);
	CHECK(strstr(mb.mb_data, "spillway_build_info{version=\"unknown\"} 1\n")
	    != NULL);
	CHECK(strstr(mb.mb_data, "spillway_requests_total{") == NULL);
	mbuf_free(&mb);
	metrics_free(&m);
}

static void
test_prom_histogram_cumulative(void)
{
	/* the series of class "default" */
	static const char *const names[][2] = {
		{ "spillway_request_duration_seconds", "class=\"default\"," },
		{ "spillway_served_duration_seconds", "class=\"default\"," },
		{ "spillway_upstream_duration_seconds", "class=\"default\"," },
		{ "spillway_queue_wait_seconds", "class=\"default\"," },
	};
	static const double counts[] = { 51, 25, 25, 1 };
	struct metrics		 m;
	struct metrics_gauges	 g;
	struct mbuf		 mb = { 0 };
	char			 pfx[128];
	double			 v, prev, inf, count;
	size_t			 i, b, found;
	const char		*p;

	fixture(&m, &g);
	/* refused: counted in every request's latency, not in served */
	metrics_observe_request(&m, metrics_class(&m, "default"), 30, -1, 0);
	metrics_prometheus(&m, &g, &mb);
	for (i = 0; i < 4; i++) {
		snprintf(pfx, sizeof(pfx), "\n%s_bucket{%sle=\"", names[i][0],
		    names[i][1]);
		prev = 0;
		found = 0;
		for (p = strstr(mb.mb_data, pfx); p != NULL;
		    p = strstr(p + 1, pfx)) {
			p = strchr(p, '}');
			v = strtod(p + 2, NULL);
			CHECK(v >= prev);
			prev = v;
			found++;
		}
		CHECK_EQ_INT(found, METRICS_NBUCKETS);
		snprintf(pfx, sizeof(pfx), "%s_bucket{%sle=\"+Inf\"}",
		    names[i][0], names[i][1]);
		inf = prom_value(mb.mb_data, pfx);
		if (names[i][1][0] != '\0')
			snprintf(pfx, sizeof(pfx), "%s_count{class=\"default\"}",
			    names[i][0]);
		else
			snprintf(pfx, sizeof(pfx), "%s_count", names[i][0]);
		count = prom_value(mb.mb_data, pfx);
		CHECK(inf == count && count == counts[i]);
	}
	/* the totals, in the JSON */
	CHECK(m.m_latency.h_count == 101 && m.m_served.h_count == 50 &&
	    m.m_upstream.h_count == 50);
	CHECK(prom_value(mb.mb_data,
	    "spillway_request_duration_seconds_count{class=\"api\"}") == 50);
	CHECK(prom_value(mb.mb_data,
	    "spillway_request_duration_seconds_bucket{class=\"default\","
	    "le=\"10\"}") == 50);
	/* bounds are printed exactly as written */
	for (b = 0; b < METRICS_NBUCKETS; b++) {
		static const char *const le[] = { "0.001", "0.0025", "0.005",
		    "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5",
		    "5", "10", "+Inf" };
		snprintf(pfx, sizeof(pfx),
		    "\nspillway_queue_wait_seconds_bucket{class=\"default\","
		    "le=\"%s\"} ", le[b]);
		CHECK(strstr(mb.mb_data, pfx) != NULL);
	}
	CHECK(prom_value(mb.mb_data,
	    "spillway_queue_wait_seconds_bucket{class=\"default\","
	    "le=\"0.25\"}") == 0);
	CHECK(prom_value(mb.mb_data,
	    "spillway_queue_wait_seconds_bucket{class=\"default\","
	    "le=\"0.5\"}") == 1);
	CHECK(prom_value(mb.mb_data,
	    "spillway_queue_wait_seconds_count{class=\"api\"}") == 0);
	mbuf_free(&mb);
	metrics_free(&m);
}

static void
test_prom_series(void)
{
	struct metrics		 m;
	struct metrics_gauges	 g;
	struct mbuf		 mb = { 0 };
	const char		*d;
	char			 want[160];
	int			 r;

	d = "spillway_requests_total{class=\"default\",";
	fixture(&m, &g);
	metrics_prometheus(&m, &g, &mb);
	snprintf(want, sizeof(want), "%scode=\"200\"}", d);
	CHECK(prom_value(mb.mb_data, want) == 90);
	snprintf(want, sizeof(want), "%scode=\"503\"}", d);
	CHECK(prom_value(mb.mb_data, want) == 20);
	/* statuses never seen have no series */
	snprintf(want, sizeof(want), "%scode=\"500\"}", d);
	CHECK(isnan(prom_value(mb.mb_data, want)));
	/* every reason for every class, zeros included */
	for (r = 0; r < MR_COUNT; r++) {
		snprintf(want, sizeof(want), "spillway_refused_total{class="
		    "\"api\",reason=\"%s\"}", metrics_reason_name(r));
		CHECK(prom_value(mb.mb_data, want) == 0);
	}
	CHECK(prom_value(mb.mb_data, "spillway_refused_total{class="
	    "\"default\",reason=\"overloaded\"}") == 20);
	CHECK(prom_value(mb.mb_data, "spillway_dry_run_refusals_total{class="
	    "\"api\"}") == 3);
	CHECK(prom_value(mb.mb_data, "spillway_faults_injected_total{class="
	    "\"api\",kind=\"abort\"}") == 4);
	CHECK(prom_value(mb.mb_data, "spillway_faults_injected_total{class="
	    "\"api\",kind=\"delay\"}") == 2);
	CHECK(prom_value(mb.mb_data, "spillway_faults_injected_total{class="
	    "\"default\",kind=\"abort\"}") == 0);
	CHECK(prom_value(mb.mb_data, "spillway_concurrency_limit") == 12);
	CHECK(prom_value(mb.mb_data, "spillway_requests_in_flight") == 7);
	CHECK(prom_value(mb.mb_data, "spillway_uptime_seconds") == 12.5);
	CHECK(prom_value(mb.mb_data,
	    "spillway_limiter_min_latency_seconds") == 0.020);
	CHECK(prom_value(mb.mb_data,
	    "spillway_queue_length_by_priority{priority=\"normal\"}") == 3);
	CHECK(prom_value(mb.mb_data,
	    "spillway_config_reloads_total{result=\"ok\"}") == 1);
	CHECK(prom_value(mb.mb_data,
	    "spillway_upstream_connections{state=\"idle\"}") == 20);
	CHECK(prom_value(mb.mb_data, "spillway_response_bytes_total") ==
	    12345);
	CHECK(strstr(mb.mb_data,
	    "\nspillway_limiter_info{algorithm=\"gradient\"} 1\n") != NULL);
	/* short decimals stay short */
	CHECK(strstr(mb.mb_data,
	    "\nspillway_limiter_latency_seconds 0.022\n") != NULL);
	mbuf_free(&mb);
	metrics_free(&m);
}

static void
test_prom_label_escaping(void)
{
	struct metrics		 m;
	struct metrics_gauges	 g;
	struct mbuf		 mb = { 0 };
	struct prom_check	 pc;
	struct class_metrics	*cm;

	fixture(&m, &g);
	cm = metrics_class(&m, "a\"b\\c\nd");
	cm->cm_status[0] = 1;
	g.version = "1.0 \"beta\"";
	metrics_prometheus(&m, &g, &mb);
	CHECK(strstr(mb.mb_data, "\nspillway_requests_total{class="
	    "\"a\\\"b\\\\c\\nd\",code=\"100\"} 1\n") != NULL);
	CHECK(strstr(mb.mb_data, "version=\"1.0 \\\"beta\\\"\"") != NULL);
	CHECK(prom_validate(mb.mb_data, &pc) == 0);
	if (pc.err[0] != '\0')
		printf("# %s\n", pc.err);
	mbuf_free(&mb);
	metrics_free(&m);
}

static void
test_prom_validator_rejects(void)
{
	struct prom_check	 pc;

	/* the validator itself must catch what it is there to catch */
	CHECK(prom_validate("# TYPE x gauge\nx 1\n", &pc) == 0);
	CHECK(prom_validate("x 1\n", &pc) == -1);
	CHECK(prom_validate("# TYPE x gauge\nx one\n", &pc) == -1);
	CHECK(prom_validate("# TYPE x gauge\nx{a=\"b} 1\n", &pc) == -1);
	CHECK(prom_validate("# TYPE x gauge\nx{a=\"\\q\"} 1\n", &pc) == -1);
	CHECK(prom_validate("# TYPE x gauge\nx 1", &pc) == -1);
	CHECK(prom_validate("# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\n"
	    "h_sum 0.5\nh_count 1\n", &pc) == 0);
	CHECK(prom_validate("# TYPE x gauge\n# TYPE y gauge\nx 1\ny 1\nx 2\n",
	    &pc) == -1);
}

static void
test_json_validator_rejects(void)
{
	CHECK(json_valid("{\"a\": [1, -0.5e+3, \"x\\u00e9\", true, null]}"));
	CHECK(!json_valid("{\"a\": 1,}"));
	CHECK(!json_valid("{\"a\" 1}"));
	CHECK(!json_valid("[01]"));
	CHECK(!json_valid("[1.]"));
	CHECK(!json_valid("[NaN]"));
	CHECK(!json_valid("[\"a\nb\"]"));
	CHECK(!json_valid("[\"\\x\"]"));
	CHECK(!json_valid("{} {}"));
	CHECK(json_valid(" { \"a\" : { } , \"b\" : [ ] } "));
	CHECK(!json_valid("{\"a\": inf}"));
}

static void
test_json_valid(void)
{
	struct metrics		 m;
	struct metrics_gauges	 g;
	struct mbuf		 mb = { 0 };

	fixture(&m, &g);
	metrics_json(&m, &g, &mb);
	CHECK(!mb.mb_failed);
	CHECK(json_valid(mb.mb_data));
	CHECK(mb.mb_len > 0 && mb.mb_data[mb.mb_len - 1] == '}');
	CHECK(strstr(mb.mb_data, "\"config\"") == NULL);
	mbuf_free(&mb);

	/* an empty proxy too */
	metrics_free(&m);
	metrics_init(&m);
	memset(&g, 0, sizeof(g));
	metrics_json(&m, &g, &mb);
	CHECK(json_valid(mb.mb_data));
	CHECK(strstr(mb.mb_data, "\"classes\": []") != NULL);
	mbuf_free(&mb);
	metrics_free(&m);
}

static void
test_json_config(void)
{
	struct metrics		 m;
	struct metrics_gauges	 g;
	struct mbuf		 mb = { 0 };
	const char		*cfg = "{\"limiter\": {\"algorithm\": "
	    "\"gradient\", \"limit\": 20}, \"backend\": {\"server\": "
	    "[\"127.0.0.1:8080\"]}}";
	size_t			 n;

	fixture(&m, &g);
	g.config_json = cfg;
	metrics_json(&m, &g, &mb);
	CHECK(json_valid(mb.mb_data));
	CHECK(strstr(mb.mb_data, "\"config\": ") != NULL);
	n = strlen(cfg);
	CHECK(mb.mb_len > n + 1 &&
	    memcmp(mb.mb_data + mb.mb_len - n - 1, cfg, n) == 0);
	mbuf_free(&mb);

	g.config_json = "";
	metrics_json(&m, &g, &mb);
	CHECK(json_valid(mb.mb_data));
	mbuf_free(&mb);
	metrics_free(&m);
}

static void
test_json_values(void)
{
	struct metrics		 m;
	struct metrics_gauges	 g;
	struct mbuf		 mb = { 0 };
	const char		*p;

	fixture(&m, &g);
	metrics_json(&m, &g, &mb);
	p = mb.mb_data;
	CHECK(strstr(p, "{\"version\": \"0.1.0\"") == p);
	CHECK(strstr(p, "\"uptime_seconds\": 12.5") != NULL);
	CHECK(strstr(p, "\"generation\": 2") != NULL);
	CHECK(strstr(p, "\"reloads\": {\"ok\": 1, \"failed\": 0}") != NULL);
	CHECK(strstr(p, "\"clients\": {\"open\": 3, \"accepted_total\": 120}")
	    != NULL);
	CHECK(strstr(p, "\"limit\": 12") != NULL);
	CHECK(strstr(p, "\"inflight\": 7") != NULL);
	CHECK(strstr(p, "\"min_rtt_seconds\": 0.02,") != NULL);
	CHECK(strstr(p, "\"gradient\": 1}") != NULL);
	CHECK(strstr(p, "\"by_priority\": {\"critical\": 0, \"normal\": 3, "
	    "\"sheddable\": 0}") != NULL);
	CHECK(strstr(p, "\"opened_total\": 40") != NULL);
	/* totals sum both classes: 120 + 6 */
	CHECK(strstr(p, "\"totals\": {\"requests\": 126, \"responses\": "
	    "{\"2xx\": 95, \"3xx\": 1, \"4xx\": 10, \"5xx\": 20}") != NULL);
	CHECK(strstr(p, "\"refused\": {\"rate_limited\": 10, \"queue_full\": 0,"
	    " \"queue_timeout\": 0, \"overloaded\": 20, \"upstream_error\": 0,"
	    " \"upstream_timeout\": 0, \"no_server\": 0}, \"dry_run\": 3,"
	    " \"bytes_out\": 12345}")
	    != NULL);
	CHECK(strstr(p, "{\"name\": \"default\", \"requests\": 120, "
	    "\"responses\": {\"200\": 90, \"429\": 10, \"503\": 20}") != NULL);
	CHECK(strstr(p, "{\"name\": \"api\", \"requests\": 6, "
	    "\"responses\": {\"204\": 5, \"301\": 1}") != NULL);
	CHECK(strstr(p, "\"dry_run\": 3, \"faults\": {\"delay\": 2, "
	    "\"abort\": 4}}") != NULL);
	CHECK(strstr(p, "\"latency_seconds\": {\"count\": 100, ") != NULL);
	CHECK(strstr(p, "\"buckets\": [[0.001, 1], [0.0025, 1], ") != NULL);
	CHECK(strstr(p, "[\"+Inf\", 100]]") != NULL);
	CHECK(strstr(p, "\"queue_wait_seconds\": {\"count\": 1, \"sum\": 0.3, ")
	    != NULL);
	mbuf_free(&mb);
	metrics_free(&m);
}

static void
test_json_escaping(void)
{
	struct metrics		 m;
	struct metrics_gauges	 g;
	struct mbuf		 mb = { 0 };

	fixture(&m, &g);
	metrics_class(&m, "q\"b\\s\x01t\tn\n");
	metrics_class(&m, "bad\xff\xc3utf8 \xc3\xa9");
	g.version = "v\"1\"";
	g.algorithm = NULL;
	metrics_json(&m, &g, &mb);
	CHECK(json_valid(mb.mb_data));
	CHECK(strstr(mb.mb_data,
	    "\"q\\\"b\\\\s\\u0001t\\u0009n\\u000a\"") != NULL);
	CHECK(strstr(mb.mb_data, "\"bad\\ufffd\\ufffdutf8 \xc3\xa9\"") != NULL);
	CHECK(strstr(mb.mb_data, "\"version\": \"v\\\"1\\\"\"") != NULL);
	CHECK(strstr(mb.mb_data, "\"algorithm\": \"unknown\"") != NULL);
	mbuf_free(&mb);
	metrics_free(&m);
}

static void
test_json_nonfinite(void)
{
	struct metrics		 m;
	struct metrics_gauges	 g;
	struct mbuf		 mb = { 0 };

	fixture(&m, &g);
	g.uptime_seconds = INFINITY;
	g.limiter_min_rtt_seconds = NAN;
	g.limiter_gradient = -INFINITY;
	metrics_json(&m, &g, &mb);
	CHECK(json_valid(mb.mb_data));
	CHECK(strstr(mb.mb_data, "\"uptime_seconds\": 0,") != NULL);
	CHECK(strstr(mb.mb_data, "\"min_rtt_seconds\": 0,") != NULL);
	CHECK(strstr(mb.mb_data, "\"gradient\": 0}") != NULL);
	mbuf_free(&mb);
	metrics_free(&m);
}

static void
test_render_appends(void)
{
	struct metrics		 m;
	struct metrics_gauges	 g;
	struct mbuf		 mb = { 0 };
	size_t			 first;

	/* renderers append; a caller may put a prefix in front */
	fixture(&m, &g);
	metrics_json(&m, &g, &mb);
	first = mb.mb_len;
	metrics_json(&m, &g, &mb);
	CHECK_EQ_INT(mb.mb_len, 2 * first);
	CHECK(memcmp(mb.mb_data, mb.mb_data + first, first) == 0);
	mbuf_free(&mb);
	metrics_free(&m);
}

/* Workers' counters summed at scrape time: classes by name, every field. */
static void
test_add_sums(void)
{
	struct metrics		 a, b, sum;
	struct class_metrics	*cm;

	metrics_init(&a);
	metrics_init(&b);
	metrics_init(&sum);
	metrics_class(&a, "api")->cm_status[200 - 100] = 3;
	metrics_class(&a, "web")->cm_refused[MR_QUEUE_FULL] = 1;
	/* the same classes in another order on the other worker */
	metrics_class(&b, "web")->cm_status[503 - 100] = 2;
	metrics_class(&b, "api")->cm_status[200 - 100] = 4;
	metrics_class(&b, "batch")->cm_dry_run = 5;
	metrics_class(&b, "batch")->cm_faults[FAULT_KIND_ABORT] = 2;
	histogram_observe(&metrics_class(&a, "api")->cm_latency, 0.5);
	histogram_observe(&metrics_class(&b, "api")->cm_latency, 0.25);
	histogram_observe(&b.m_served, 0.25);
	histogram_observe(&a.m_latency, 0.001);
	histogram_observe(&b.m_latency, 0.001);
	histogram_observe(&b.m_latency, 100);
	a.m_client_connections = 7;
	b.m_client_connections = 8;
	b.m_shed_dry_run[2] = 9;
	a.m_tls_handshakes = 1;
	b.m_bytes_out = 10;
	a.m_proxyproto[METRICS_PP_OK] = 2;
	b.m_proxyproto[METRICS_PP_OK] = 3;
	b.m_proxyproto[METRICS_PP_TIMEOUT] = 1;
	CHECK_EQ_INT(metrics_add(&sum, &a), 0);
	CHECK_EQ_INT(metrics_add(&sum, &b), 0);
	CHECK_EQ_INT(sum.m_nclasses, 3);
	cm = metrics_class(&sum, "api");
	CHECK_EQ_INT(cm->cm_status[200 - 100], 7);
	cm = metrics_class(&sum, "web");
	CHECK_EQ_INT(cm->cm_status[503 - 100], 2);
	CHECK_EQ_INT(cm->cm_refused[MR_QUEUE_FULL], 1);
	CHECK_EQ_INT(metrics_class(&sum, "batch")->cm_dry_run, 5);
	CHECK_EQ_INT(metrics_class(&sum, "batch")->cm_faults[FAULT_KIND_ABORT],
	    2);
	CHECK_EQ_INT(metrics_class(&sum, "api")->cm_latency.h_count, 2);
	CHECK_EQ_INT(sum.m_served.h_count, 1);
	CHECK_EQ_INT(sum.m_latency.h_count, 3);
	CHECK_EQ_INT(sum.m_latency.h_buckets[METRICS_NBUCKETS - 1], 1);
	CHECK(sum.m_latency.h_sum > 100 && sum.m_latency.h_sum < 100.01);
	CHECK_EQ_INT(sum.m_client_connections, 15);
	CHECK_EQ_INT(sum.m_shed_dry_run[2], 9);
	CHECK_EQ_INT(sum.m_tls_handshakes, 1);
	CHECK_EQ_INT(sum.m_bytes_out, 10);
	CHECK_EQ_INT(sum.m_proxyproto[METRICS_PP_OK], 5);
	CHECK_EQ_INT(sum.m_proxyproto[METRICS_PP_TIMEOUT], 1);
	/* the sources are left as they were */
	CHECK_EQ_INT(a.m_client_connections, 7);
	CHECK_EQ_INT(b.m_nclasses, 3);
	metrics_free(&a);
	metrics_free(&b);
	metrics_free(&sum);
}

int
main(void)
{
	RUN(test_reason_names);
	RUN(test_class_find_create);
	RUN(test_class_growth_keeps_counters);
	RUN(test_class_truncate);
	RUN(test_class_limit);
	RUN(test_bucket_bounds);
	RUN(test_histogram_boundaries);
	RUN(test_histogram_sum_count);
	RUN(test_histogram_bad_values);
	RUN(test_mbuf_growth);
	RUN(test_mbuf_failed_stops);
	RUN(test_prom_validator_rejects);
	RUN(test_prom_families);
	RUN(test_prom_validates);
	RUN(test_prom_empty);
	RUN(test_prom_process);
	RUN(test_prom_histogram_cumulative);
	RUN(test_prom_series);
	RUN(test_prom_label_escaping);
	RUN(test_json_validator_rejects);
	RUN(test_json_valid);
	RUN(test_json_config);
	RUN(test_json_values);
	RUN(test_json_escaping);
	RUN(test_json_nonfinite);
	RUN(test_render_appends);
	RUN(test_add_sums);
	return tap_done();
}
