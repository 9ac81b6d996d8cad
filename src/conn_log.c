/*
 * conn_log.c: the record a request leaves: its "METHOD target" kept for
 * the log, its access log line, and its counts in the metrics (by class,
 * status and reason; latency and upstream time).
 */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "fault.h"
#include "spillway.h"
#include "log.h"

static atomic_ullong	 records;	/* access records made */

/* Copy n bytes of s into dst (size bytes), cut with a '~' if longer. */
static void
save_field(char *dst, size_t size, const char *s, size_t n)
{
	if (n >= size) {
		n = size - 2;
		dst[n + 1] = '\0';
		dst[n] = '~';
	} else
		dst[n] = '\0';
	memcpy(dst, s, n);
}

static void
save_header(char *dst, size_t size, const struct http_head *h,
    const char *name)
{
	const struct http_header	*f = http_head_find(h, name);

	if (f == NULL)
		dst[0] = '\0';
	else
		save_field(dst, size, f->value, f->value_len);
}

/*
 * Keep "METHOD target", Host, User-Agent and Referer for the access log,
 * raw (each format escapes them its own way) and cut to their buffers.
 */
void
conn_save_reqline(struct conn *c, const struct http_head *h)
{
	char	*p = c->cn_reqline;
	size_t	 n = h->method_len;

	if (n > sizeof(c->cn_reqline) / 4)
		n = sizeof(c->cn_reqline) / 4;
	memcpy(p, h->method_str, n);
	p[n] = ' ';
	save_field(p + n + 1, sizeof(c->cn_reqline) - n - 1, h->target,
	    h->target_len);
	save_header(c->cn_host, sizeof(c->cn_host), h, "Host");
	save_header(c->cn_ua, sizeof(c->cn_ua), h, "User-Agent");
	save_header(c->cn_referer, sizeof(c->cn_referer), h, "Referer");
}

/* A request refused before it was classified counts as the default's. */
static const char *
conn_class_name(const struct conn *c)
{
	const struct config	*conf = c->cn_conf;

	return conf->classes[c->cn_class < conf->nclasses ? c->cn_class :
	    conf->nclasses - 1].name;
}

/* Count a wait in the queue, served or shed, in its class's too. */
void
conn_count_wait(struct conn *c, double seconds)
{
	struct metrics	*m = &c->cn_worker->w_metrics;

	metrics_observe_wait(m, metrics_class(m, conn_class_name(c)),
	    seconds);
}

/* Count a finished request: by class and status, refusal reason, times. */
static void
conn_count_request(struct conn *c, uint64_t now)
{
	struct metrics		*m = &c->cn_worker->w_metrics;
	struct class_metrics	*cm;
	double			 upstream = -1;

	m->m_bytes_out += c->cn_resp_bytes;
	cm = metrics_class(m, conn_class_name(c));
	if (c->cn_t_resp_head != 0 && c->cn_t_upstream != 0)
		upstream = (c->cn_t_resp_head - c->cn_t_upstream) / 1e6;
	/* served: admitted, given a slot and sent to a backend */
	metrics_observe_request(m, cm, (now - c->cn_t_start) / 1e6, upstream,
	    c->cn_t_upstream != 0);
	if (cm == NULL)
		return;
	if (c->cn_status >= 100 && c->cn_status <= 599)
		cm->cm_status[c->cn_status - 100]++;
	if (c->cn_note != NULL)
		cm->cm_dry_run++;
	if (c->cn_reason < MR_COUNT)
		cm->cm_refused[c->cn_reason]++;
}

static const char *
field(const char *s)
{
	return s[0] != '\0' ? s : NULL;
}

void
conn_log_request(struct conn *c)
{
	struct access_entry	 e;
	uint64_t		 now = now_usec();
	char			 id[64];

	conn_count_request(c, now);

	/*
	 * Unique in this process (a count of the records, atomic for the
	 * workers to come); the start time tells processes apart.
	 */
	snprintf(id, sizeof(id), "%llx-%llu",
	    (unsigned long long)c->cn_proxy->px_started,
	    (unsigned long long)atomic_fetch_add(&records, 1) + 1);
	/* a client named by a trusted proxy: its address, without port */
	e.client = c->cn_client_hop ? c->cn_client_ip : c->cn_peer;
	e.client_ip = c->cn_client_hop ? c->cn_client_ip : c->cn_peer_ip;
	c->cn_client_hop = 0;
	e.request = c->cn_reqline;
	e.version_minor = c->cn_version_minor;
	e.status = c->cn_status;
	e.bytes = c->cn_resp_bytes;
	e.body_bytes = c->cn_resp_bytes > c->cn_resp_head_bytes ?
	    c->cn_resp_bytes - c->cn_resp_head_bytes : 0;
	e.total_usec = now - c->cn_t_start;
	e.upstream_usec = c->cn_t_upstream != 0 ?
	    (int64_t)(now - c->cn_t_upstream) : -1;
	e.server = c->cn_ur.ur_name;
	e.reason = c->cn_reason != MR_NONE ?
	    metrics_reason_name(c->cn_reason) : c->cn_note != NULL ?
	    c->cn_note : (c->cn_fault & FAULT_DELAY) ? "fault_delay" : NULL;
	e.class = conn_class_name(c);
	e.request_id = id;
	e.host = field(c->cn_host);
	e.user_agent = field(c->cn_ua);
	e.referer = field(c->cn_referer);
	accesslog_write(&c->cn_worker->w_alog, &e);
}
