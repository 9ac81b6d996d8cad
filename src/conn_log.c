/*
 * conn_log.c: the record a request leaves: its "METHOD target" kept for
 * the log, its access log line, and its counts in the metrics (by class,
 * status and reason; latency and upstream time).
 */
#include <stdint.h>
#include <stdio.h>

#include "spillway.h"
#include "log.h"

/* Copy "METHOD target" for the access log, quotes and controls escaped. */
void
conn_save_reqline(struct conn *c, const struct http_head *h)
{
	char		*p = c->cn_reqline;
	char		*end = c->cn_reqline + sizeof(c->cn_reqline) - 5;
	size_t		 i;
	unsigned char	 ch;

	for (i = 0; i < h->method_len && p < end; i++)
		*p++ = h->method_str[i];
	*p++ = ' ';
	for (i = 0; i < h->target_len && p < end; i++) {
		ch = (unsigned char)h->target[i];
		if (ch == '"' || ch == '\\') {
			*p++ = '\\';
			*p++ = (char)ch;
		} else
			*p++ = (char)ch;
	}
	if (i < h->target_len)
		*p++ = '~';
	*p = '\0';
}

/* A request refused before it was classified counts as the default's. */
static const char *
conn_class_name(const struct conn *c)
{
	const struct config	*conf = c->cn_conf;

	return conf->classes[c->cn_class < conf->nclasses ? c->cn_class :
	    conf->nclasses - 1].name;
}

/* Count a finished request: by class and status, refusal reason, times. */
static void
conn_count_request(struct conn *c, uint64_t now)
{
	struct metrics		*m = &c->cn_worker->w_metrics;
	struct class_metrics	*cm;

	histogram_observe(&m->m_latency, (now - c->cn_t_start) / 1e6);
	if (c->cn_t_resp_head != 0 && c->cn_t_upstream != 0)
		histogram_observe(&m->m_upstream,
		    (c->cn_t_resp_head - c->cn_t_upstream) / 1e6);
	m->m_bytes_out += c->cn_resp_bytes;
	if ((cm = metrics_class(m, conn_class_name(c))) == NULL)
		return;
	if (c->cn_status >= 100 && c->cn_status <= 599)
		cm->cm_status[c->cn_status - 100]++;
	if (c->cn_note != NULL)
		cm->cm_dry_run++;
	if (c->cn_reason < MR_COUNT)
		cm->cm_refused[c->cn_reason]++;
}

void
conn_log_request(struct conn *c)
{
	struct access_entry	 e;
	uint64_t		 now = now_usec();

	conn_count_request(c, now);

	/* a client named by a trusted proxy: its address, without port */
	e.client = c->cn_client_hop ? c->cn_client_ip : c->cn_peer;
	c->cn_client_hop = 0;
	e.request = c->cn_reqline;
	e.version_minor = c->cn_version_minor;
	e.status = c->cn_status;
	e.bytes = c->cn_resp_bytes;
	e.total_usec = now - c->cn_t_start;
	e.upstream_usec = c->cn_t_upstream != 0 ?
	    (int64_t)(now - c->cn_t_upstream) : -1;
	e.server = c->cn_ur.ur_name;
	e.reason = c->cn_reason != MR_NONE ?
	    metrics_reason_name(c->cn_reason) : c->cn_note;
	e.class = conn_class_name(c);
	accesslog_write(&e);
}

