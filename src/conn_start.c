/*
 * conn_start.c: a request's way in, once its head is read: the head
 * rewritten for the backend, the first door (classification and the token
 * buckets), fault injection, the second door (a limiter slot, the queue or
 * a refusal), and the hand-off to a backend. conn.c reads the head and
 * calls conn_start_request(); shed.c calls back conn_dispatch() and
 * conn_shed() for a request that waited.
 */
#include <sys/socket.h>

#include <string.h>

#include <event2/buffer.h>

#include "classify.h"
#include "fault.h"
#include "head.h"
#include "spillway.h"
#include "log.h"

/*
 * The request head as it goes to the backend (head_request() says how),
 * into cn_uphead: one reservation, plain copies.
 */
static int
build_upstream_head(struct conn *c, const struct http_head *h, size_t len)
{
	struct head_client		 cl;
	struct evbuffer_iovec		 v;
	struct sockaddr_storage		 ss;
	socklen_t			 sslen = sizeof(ss);
	char				 local[64];
	ssize_t				 n;

	cl.ip = c->cn_peer_ip;
	cl.tls = c->cn_tls != 0;
	cl.local = NULL;
	cl.local_v6 = 0;
	cl.client = c->cn_client_ip;
	cl.trusted = realip_trusted(c->cn_conf->proxy.trusted_proxies,
	    c->cn_conf->proxy.ntrusted_proxies, c->cn_peer_ip);
	if (!(h->flags & HTTP_F_HAS_HOST) &&
	    getsockname(bufferevent_getfd(c->cn_bev), (struct sockaddr *)&ss,
	    &sslen) == 0) {
		addr_format((struct sockaddr *)&ss, local, sizeof(local), NULL,
		    0);
		if (strcmp(local, "?") != 0) {
			cl.local = local;
			cl.local_v6 = ss.ss_family == AF_INET6;
		}
	}
	if (relay_put_head(c->cn_uphead, len, &v) == -1)
		return -1;
	n = head_request(v.iov_base, v.iov_len, h, &cl);
	return relay_commit_head(c->cn_uphead, &v, n);
}

#define ADMIT_BATCH	64	/* verdicts under one taking of the lock */

static void	conn_admitted(struct conn *);

/*
 * Under px_adm_mtx: the request's class as admission knows it. A request
 * classified under the generation before a reload that admission has
 * already taken (its batch ran after the reload's commit, or another
 * worker reloaded admission first) is found by its class's name.
 */
static size_t
adm_class(const struct conn *c)
{
	struct proxy	*px = c->cn_proxy;

	if (c->cn_gen->g_id == px->px_adm_gen)
		return c->cn_class;
	return admission_class_of(px->px_adm,
	    c->cn_conf->classes[c->cn_class].name);
}

/* The client key a request waiting for the admission batch keeps. */
static const char *
adm_key(const struct conn *c)
{
	return c->cn_adm_nokey ? NULL : c->cn_adm_key;
}

/*
 * The first door's verdict, given under the admission lock for the
 * request's class and client key: what Redis is to be asked (leases run
 * low), a dry run's note. Returns 0 to let it through, -1 if it is
 * refused; cn_retry_after then says when to come back.
 */
static int
conn_admit_verdict(struct conn *c, const struct admission_verdict *v,
    int shared, const char *key, size_t keylen)
{
	if (shared)	/* leases run low */
		cluster_ask(c->cn_proxy->px_cluster, v,
		    c->cn_class < c->cn_conf->nclasses ?
		    c->cn_conf->classes[c->cn_class].name : "",
		    c->cn_adm_kind, key, keylen);
	if (v->dry_run)
		c->cn_note = "rate_limited(dry_run)";
	if (!v->refused)
		return 0;
	c->cn_retry_after = v->retry_after;
	return -1;
}

/*
 * The first door: classify the request and, if it meets a bucket, ask.
 * Returns 0 to let it through now, -1 if it is refused now (cn_retry_after
 * says when to come back), 1 if it waits for the worker's admission batch
 * (its client key copied: the head goes before the verdict comes).
 */
static int
conn_admit(struct conn *c, const struct http_head *h)
{
	struct admission_verdict	 v;
	struct worker			*w = c->cn_worker;
	const char			*key;
	size_t				 keylen;
	int				 shared;

	c->cn_class = classify_request(c->cn_conf, h);
	/* no bucket to ask: no lock, nothing shared touched */
	if (!admission_applies(c->cn_conf, c->cn_class))
		return 0;
	c->cn_adm_kind = classify_client_key(c->cn_conf, h, c->cn_client_ip,
	    &key, &keylen);
	if (key == NULL || keylen <= sizeof(c->cn_adm_key)) {
		c->cn_adm_nokey = key == NULL;
		c->cn_adm_keylen = key != NULL ? keylen : 0;
		if (key != NULL)
			memcpy(c->cn_adm_key, key, keylen);
		c->cn_adm_pending = 1;
		TAILQ_INSERT_TAIL(&w->w_admit, c, cn_adm_entry);
		batch_arm(w->w_admit_ev, &w->w_admit_armed);
		return 1;
	}
	/* a key too long to keep: asked now, on its own */
	lock_counted(&c->cn_proxy->px_adm_mtx,
	    &c->cn_proxy->px_lockstat[PXL_ADMISSION]);
	admission_check(c->cn_proxy->px_adm, c->cn_t_start, adm_class(c),
	    c->cn_adm_kind, key, keylen, &v);
	shared = admission_shared(c->cn_proxy->px_adm);
	pthread_mutex_unlock(&c->cn_proxy->px_adm_mtx);
	return conn_admit_verdict(c, &v, shared, key, keylen);
}

/* A request waiting for the admission batch is gone: out of it. */
void
conn_admit_forget(struct conn *c)
{
	if (!c->cn_adm_pending)
		return;
	TAILQ_REMOVE(&c->cn_worker->w_admit, c, cn_adm_entry);
	c->cn_adm_pending = 0;
}

/*
 * A kept-alive connection takes the newest configuration at the start of
 * each request; a request in flight finishes under the one it began with.
 */
static void
conn_use_current_conf(struct conn *c)
{
	struct worker	*w = c->cn_worker;

	if (c->cn_gen == w->w_gen)
		return;
	gen_put(c->cn_gen);
	c->cn_gen = gen_get(w->w_gen);
	c->cn_conf = c->cn_gen->g_conf;
	conn_set_read_limit(c);
}

/*
 * Past admission: ask for a limiter slot. The verdict comes later in the
 * same loop iteration (shed.c's batch): conn_dispatch() with a slot,
 * conn_shed() refused, or nothing yet, waiting in the queue.
 */
static void
conn_enter_shed(struct conn *c)
{
	conn_set_state(c, CS_QUEUED);
	shed_enter(c);
}

/*
 * Did the connection come in on a listener marked fault_injection in its
 * configuration? Its local address is asked once per connection.
 */
static int
conn_fault_allowed(struct conn *c)
{
	const struct config	*conf = c->cn_conf;
	const struct config_addr *lists[2] = { conf->proxy.listen,
				    conf->tls.listen };
	size_t			 counts[2] = { conf->proxy.nlisten,
				    conf->tls.nlisten };
	struct config_addr	 local;
	size_t			 i, j;

	if (c->cn_fault_ok != -1 && c->cn_fault_gen == c->cn_gen->g_id)
		return c->cn_fault_ok;
	memset(&local, 0, sizeof(local));
	local.sslen = sizeof(local.ss);
	c->cn_fault_ok = 0;
	c->cn_fault_gen = c->cn_gen->g_id;
	if (getsockname(bufferevent_getfd(c->cn_bev),
	    (struct sockaddr *)&local.ss, &local.sslen) == -1)
		return 0;
	for (i = 0; i < 2; i++) {
		for (j = 0; j < counts[i]; j++) {
			if ((lists[i][j].flags & ADDR_F_FAULT_INJECTION) &&
			    (c->cn_tls != 0) == (i == 1) &&
			    addr_overlap(&lists[i][j], &local))
				c->cn_fault_ok = 1;
		}
	}
	return c->cn_fault_ok;
}

/* Count an injected fault under the request's class. */
static void
conn_count_fault(struct conn *c, enum fault_kind kind)
{
	struct class_metrics	*cm;

	cm = metrics_class(&c->cn_worker->w_metrics,
	    c->cn_conf->classes[c->cn_class].name);
	if (cm != NULL)
		cm->cm_faults[kind]++;
}

/* An injected abort: the class's status, as if from the backend. */
static void
conn_fault_abort(struct conn *c)
{
	conn_count_fault(c, FAULT_KIND_ABORT);
	conn_respond(c, (int)c->cn_conf->classes[c->cn_class].fault.abort_status,
	    MR_FAULT_ABORT, 0);
}

/*
 * Fault injection, after admission and before the limiter: draw the
 * request's faults. A delay waits on the connection's timer in CS_DELAYED,
 * holding no limiter slot and no place in the queue, then goes on (to the
 * abort, if drawn too). Returns 1 if the request was taken (delayed or
 * answered), 0 to go on to the limiter now.
 */
static int
conn_fault(struct conn *c)
{
	const struct fault_rule	*fr = &c->cn_conf->classes[c->cn_class].fault;

	c->cn_fault = 0;
	if (!fault_active(fr) || !conn_fault_allowed(c))
		return 0;
	c->cn_fault = fault_decide(fr,
	    fault_rng_next(&c->cn_worker->w_fault_rng));
	if (c->cn_fault & FAULT_DELAY) {
		conn_count_fault(c, FAULT_KIND_DELAY);
		conn_set_state(c, CS_DELAYED);
		conn_arm_timer(c, fr->delay_ms);
		return 1;
	}
	if (c->cn_fault & FAULT_ABORT) {
		conn_fault_abort(c);
		return 1;
	}
	return 0;
}

/* The injected delay is over. */
void
conn_fault_delayed(struct conn *c)
{
	if (c->cn_fault & FAULT_ABORT)
		conn_fault_abort(c);
	else
		conn_enter_shed(c);
}

void
conn_start_request(struct conn *c, size_t headlen)
{
	const struct proxy_conf	*pc = &c->cn_conf->proxy;
	struct http_head	*h = &c->cn_req;
	struct evbuffer		*in = bufferevent_get_input(c->cn_bev);
	const char		*what = NULL;
	int			 admit;

	evtimer_del(c->cn_timer);
	conn_use_current_conf(c);
	pc = &c->cn_conf->proxy;
	c->cn_t_start = now_usec();
	c->cn_requests++;
	c->cn_method = h->method;
	c->cn_version_minor = h->version_minor;
	conn_save_reqline(c, h);
	c->cn_client_hop = realip_client(h, pc->forwarded_header,
	    c->cn_peer_ip, pc->trusted_proxies, pc->ntrusted_proxies,
	    c->cn_client_ip) == REALIP_HEADER;
	if (h->version_minor >= 1)
		c->cn_keepalive = !(h->flags & HTTP_F_CONN_CLOSE);
	else
		c->cn_keepalive = (h->flags & HTTP_F_CONN_KEEPALIVE) &&
		    !(h->flags & HTTP_F_CONN_CLOSE);
	if (c->cn_worker->w_stopping)
		c->cn_keepalive = 0;

	if (h->method == HTTP_M_CONNECT) {
		/* no tunnels: refused here, never sent to a backend */
		evbuffer_drain(in, headlen);
		conn_respond(c, 501, MR_CONNECT_UNSUPPORTED, 1);
		return;
	}
	if (h->framing == HTTP_FRAMING_LENGTH && pc->max_body_size > 0 &&
	    h->content_length > pc->max_body_size) {
		evbuffer_drain(in, headlen);
		conn_respond(c, 413, MR_NONE, 1);
		return;
	}
	http_body_init(&c->cn_req_body, h);
	c->cn_req_body.rechunk = 1;
	c->cn_req_done = http_body_done(&c->cn_req_body);
	if (relay_precheck(c, headlen, &what) == -1) {
		log_info("conn %llu from %s: 400: request body: %s",
		    (unsigned long long)c->cn_id, c->cn_peer, what);
		evbuffer_drain(in, headlen);
		conn_respond(c, 400, MR_NONE, 1);
		return;
	}
	if ((admit = conn_admit(c, h)) == -1) {
		evbuffer_drain(in, headlen);
		conn_respond(c, 429, MR_RATE_LIMITED, 0);
		return;
	}
	evbuffer_drain(c->cn_uphead, evbuffer_get_length(c->cn_uphead));
	if (build_upstream_head(c, h, headlen) == -1) {
		conn_close(c, "out of memory");
		return;
	}
	evbuffer_drain(in, headlen);	/* h points into it no more */

	c->cn_resp_state = RS_NONE;
	c->cn_t_resp_head = 0;
	if (admit == 1) {
		/* the verdict comes with the batch, in this loop iteration */
		conn_set_state(c, CS_QUEUED);
		return;
	}
	conn_admitted(c);
}

/* Past the first door: fault injection, then the second. */
static void
conn_admitted(struct conn *c)
{
	if (conn_fault(c) == 0)
		conn_enter_shed(c);
}

/*
 * The worker's admission batch: the verdicts for the requests of this
 * loop iteration that meet a bucket, ADMIT_BATCH under one taking of the
 * admission lock, then each acted on, in the order they came: refused
 * (429, the head built for the backend unused) or on to the second door.
 */
void
conn_admit_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker	*w = arg;
	struct proxy	*px = w->w_proxy;
	struct conn		*batch[ADMIT_BATCH], *c;
	struct admission_verdict v[ADMIT_BATCH];
	size_t			 i, n;
	int			 shared;

	w->w_admit_armed = 0;
	while (!TAILQ_EMPTY(&w->w_admit)) {
		lock_counted(&px->px_adm_mtx, &px->px_lockstat[PXL_ADMISSION]);
		for (n = 0; n < ADMIT_BATCH &&
		    (c = TAILQ_FIRST(&w->w_admit)) != NULL; n++) {
			TAILQ_REMOVE(&w->w_admit, c, cn_adm_entry);
			c->cn_adm_pending = 0;
			admission_check(px->px_adm, c->cn_t_start,
			    adm_class(c), c->cn_adm_kind, adm_key(c),
			    c->cn_adm_keylen, &v[n]);
			batch[n] = c;
		}
		shared = admission_shared(px->px_adm);
		pthread_mutex_unlock(&px->px_adm_mtx);
		for (i = 0; i < n; i++) {
			c = batch[i];
			if (conn_admit_verdict(c, &v[i], shared, adm_key(c),
			    c->cn_adm_keylen) == -1)
				conn_respond(c, 429, MR_RATE_LIMITED, 0);
			else
				conn_admitted(c);
		}
	}
}

static void
conn_left_queue(struct conn *c, uint64_t now)
{
	if (c->cn_st.st_t_queued == 0)
		return;
	conn_count_wait(c, (now - c->cn_st.st_t_queued) / 1e6);
}

/* The request holds a limiter slot: off to a backend. */
void
conn_dispatch(struct conn *c)
{
	conn_set_state(c, CS_CONNECT);
	c->cn_t_upstream = now_usec();
	conn_left_queue(c, c->cn_t_upstream);
	upstream_request(c);
}

/* A waiter is shed from the queue: refuse it, fast and honestly. */
void
conn_shed(struct conn *c, enum queue_shed why)
{
	conn_left_queue(c, now_usec());
	shed_refused(c);
	conn_respond(c, 503, why == QUEUE_SHED_FULL ? MR_QUEUE_FULL :
	    why == QUEUE_SHED_TIMEOUT ? MR_QUEUE_TIMEOUT : MR_OVERLOADED, 0);
}
