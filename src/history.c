/*
 * history.c: a fixed ring of samples for the dashboard (see history.h).
 *
 * Invariants:
 * - h_len <= h_cap; the samples kept are the last h_len recorded, the
 *   oldest at (h_next - h_len) mod h_cap. Memory is h_cap samples, set
 *   once: recording never allocates.
 * - history_json() writes what parses: the numbers of a sample are
 *   finite (json via metrics' renderers, which write 0 for the rest).
 *
 * Pure: no libevent, no globals, no clock.
 */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "history.h"

int
history_init(struct history *h, size_t cap)
{
	memset(h, 0, sizeof(*h));
	if (cap == 0)
		cap = 1;
	if ((h->h_ring = calloc(cap, sizeof(*h->h_ring))) == NULL)
		return -1;
	h->h_cap = cap;
	return 0;
}

void
history_free(struct history *h)
{
	free(h->h_ring);
	memset(h, 0, sizeof(*h));
}

void
history_record(struct history *h, const struct metrics *m,
    const struct metrics_gauges *g, double uptime)
{
	struct history_sample	*s;
	uint64_t		 byclass[5];

	if (h->h_cap == 0)
		return;
	s = &h->h_ring[h->h_next];
	memset(s, 0, sizeof(*s));
	s->hs_uptime = isfinite(uptime) ? uptime : 0;
	metrics_totals(m, &s->hs_requests, byclass, s->hs_refused,
	    &s->hs_dry_run);
	s->hs_limit = g->limit;
	s->hs_inflight = g->inflight;
	s->hs_queue = g->queue_length;
	s->hs_wait = isfinite(g->queue_wait_seconds) ?
	    g->queue_wait_seconds : 0;
	s->hs_growing = g->queue_growing != 0;
	s->hs_served = m->m_served;
	h->h_next = (h->h_next + 1) % h->h_cap;
	if (h->h_len < h->h_cap)
		h->h_len++;
}

const struct history_sample *
history_get(const struct history *h, size_t i)
{
	if (i >= h->h_len)
		return NULL;
	return &h->h_ring[(h->h_next + h->h_cap - h->h_len + i) % h->h_cap];
}

/* A double with microsecond precision, 0 if not finite. */
static void
json_seconds(struct mbuf *mb, double v)
{
	if (!isfinite(v))
		v = 0;
	mbuf_printf(mb, "%.6f", v);
}

static void
sample_json(struct mbuf *mb, const struct history_sample *s)
{
	mbuf_printf(mb, "{\"uptime_seconds\": ");
	json_seconds(mb, s->hs_uptime);
	mbuf_printf(mb, ", \"totals\": {\"requests\": %" PRIu64 ", "
	    "\"refused\": ", s->hs_requests);
	metrics_json_refused(mb, s->hs_refused);
	mbuf_printf(mb, ", \"dry_run\": %" PRIu64 "}, \"limiter\": "
	    "{\"limit\": %u, \"inflight\": %u}, \"queue\": {\"length\": %zu, "
	    "\"allowed_wait_seconds\": ", s->hs_dry_run, s->hs_limit,
	    s->hs_inflight, s->hs_queue);
	json_seconds(mb, s->hs_wait);
	mbuf_printf(mb, ", \"growing\": %s}, \"served_latency_seconds\": ",
	    s->hs_growing ? "true" : "false");
	metrics_json_histogram(mb, &s->hs_served);
	mbuf_printf(mb, "}");
}

void
history_json(const struct history *h, double uptime, struct mbuf *mb)
{
	size_t	 i;

	mbuf_printf(mb, "{\"period_seconds\": %g, \"capacity\": %zu, "
	    "\"uptime_seconds\": ", HISTORY_PERIOD_MS / 1000.0, h->h_cap);
	json_seconds(mb, uptime);
	mbuf_printf(mb, ", \"samples\": [");
	for (i = 0; i < h->h_len; i++) {
		mbuf_printf(mb, "%s\n", i == 0 ? "" : ",");
		sample_json(mb, history_get(h, i));
	}
	mbuf_printf(mb, "]}");
}
