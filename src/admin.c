/*
 * admin.c: the admin listener, served by libevent's evhttp: GET /metrics
 * (Prometheus text), GET /status (JSON), GET /history (the last minutes,
 * JSON), GET / (the live dashboard page) and POST /reload.
 *
 * It listens only where [admin] listen says (loopback in the shipped
 * configuration) and is off otherwise: it can reload the configuration.
 * Its socket is bound by us, not by evhttp, so that a reload that keeps
 * the address keeps the socket.
 */
#include <sys/socket.h>
#include <netinet/in.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "spillway.h"
#include "log.h"
#include "history.h"
#include "metrics.h"
#include "metrics_server.h"

#define ADMIN_BACKLOG		64
#define ADMIN_TIMEOUT_SEC	10
#define ADMIN_PAUSE_MSEC	100

static struct proxy	*admin_proxy;	/* for the accept error callback */

/*
 * The admin connections open now, to keep them at [admin]
 * max_connections. evhttp (libevent 2.1) has no such cap and tells
 * nothing when a connection closes, but it lets us make each connection's
 * bufferevent: we keep a reference to every one, and one whose callbacks
 * are gone has been freed by evhttp (bufferevent_free clears them; its
 * descriptor was closed with it). At the cap the listener pauses, and the
 * connections beyond wait in the backlog; a timer looks again every
 * ADMIN_PAUSE_MSEC, as after EMFILE.
 */
static struct bufferevent	**admin_bevs;
static size_t			  admin_nbevs;
static size_t			  admin_cap;	/* room in admin_bevs */
static unsigned int		  admin_max = 64; /* [admin] max_connections */
static int			  admin_paused;	/* by the cap or EMFILE */

/*
 * The dashboard's memory (history.h): a sample a second while an admin
 * listener has been configured, so that GET /history has the last
 * minutes for a page opened mid-incident.
 */
static struct history		 admin_history;
static struct event		*admin_history_ev;

extern const char		dashboard_html[];
extern const unsigned long	dashboard_html_len;

static const char *const lock_names[PXL_COUNT] = {
	[PXL_ADMISSION] = "admission",
	[PXL_SHED] = "shed",
	[PXL_HEALTH] = "health",
};
_Static_assert(PXL_COUNT + 1 <= METRICS_NLOCKS, "METRICS_NLOCKS too small");

/*
 * Sample what metrics does not keep: gauges, now; and sum the workers'
 * counters into m (metrics_free() it after).
 */
static void
sample_gauges(struct proxy *px, struct metrics_gauges *g, struct metrics *m)
{
	struct limiter_state	 st;
	struct queue_state	 qs;
	struct cluster_stats	 cs;
	size_t			 i;

	memset(g, 0, sizeof(*g));
	metrics_init(m);
	metrics_add(m, &px->px_metrics);
	worker_sum(px, m, g);
	g->version = PACKAGE_VERSION;
	g->uptime_seconds = (now_usec() - px->px_started) / 1e6;
	g->generation = px->px_gen->g_id;
	g->algorithm = limiter_algo_name(px->px_conf->limiter.algorithm);
	pthread_mutex_lock(&px->px_shed_mtx);
	upstream_limiter_state(px, &st);
	g->inflight = st.inflight;
	g->limit = (unsigned int)st.limit;
	g->queue_length = queue_length(px->px_queue);
	queue_state(px->px_queue, now_usec(), &qs);
	for (i = 0; i < PRIO_COUNT; i++)
		g->queue_length_prio[i] = queue_length_prio(px->px_queue,
		    (unsigned int)i);
	pthread_mutex_unlock(&px->px_shed_mtx);
	g->limiter_min_rtt_seconds = st.min_rtt_usec / 1e6;
	g->limiter_rtt_seconds = st.short_rtt_usec / 1e6;
	g->limiter_long_rtt_seconds = st.long_rtt_usec / 1e6;
	g->limiter_gradient = st.gradient;
	g->queue_growing = qs.growing;
	g->queue_drain_rate = qs.departure_rate;
	g->loop_lag_seconds = shed_loop_lag(px) / 1e6;
	for (i = 0; i < PXL_COUNT; i++) {
		g->lock_name[i] = lock_names[i];
		g->lock_taken[i] = atomic_load_explicit(
		    &px->px_lockstat[i].ls_taken, memory_order_relaxed);
		g->lock_waited[i] = atomic_load_explicit(
		    &px->px_lockstat[i].ls_waited, memory_order_relaxed);
	}
	g->lock_name[i] = "access_log";
	accesslog_lockstat(&g->lock_taken[i], &g->lock_waited[i]);
	g->nlocks = PXL_COUNT + 1;
	g->queue_wait_seconds = qs.wait_usec / 1e6;
	pthread_mutex_lock(&px->px_adm_mtx);
	g->admission_clients = admission_clients(px->px_adm);
	g->admission_evictions = admission_evictions(px->px_adm);
	pthread_mutex_unlock(&px->px_adm_mtx);
	cluster_stats(px->px_cluster, &cs);
	g->cluster_state = cluster_state_name(cs.cs_state);
	g->cluster_up = cs.cs_state == CL_UP;
	g->cluster_instances = cs.cs_instances;
	g->cluster_calls = cs.cs_calls;
	g->cluster_errors = cs.cs_errors;
	g->cluster_lease_tokens = cs.cs_lease_tokens;
	g->cluster_changes = cs.cs_changes;
	g->cluster_rtt_seconds = cs.cs_rtt_usec / 1e6;
}

struct server_sum {
	struct metrics_server	*ss_v;
	size_t			 ss_n;
	struct metrics_retries	*ss_rt;
};

/*
 * On worker w's loop: add its share of each server (by index: every worker
 * has the same servers) and of the retry budget into the views.
 */
static void
sum_servers_cb(struct worker *w, void *arg)
{
	struct server_sum	*ss = arg;
	struct server		*sv;
	size_t			 i;

	ss->ss_rt->allowed += w->w_retry.rt_allowed;
	ss->ss_rt->denied += w->w_retry.rt_denied;
	if (w->w_id == 0)
		return;
	for (i = 0; i < ss->ss_n && i < w->w_nservers; i++) {
		sv = w->w_servers[i];
		ss->ss_v[i].inflight += sv->sv_active;
		ss->ss_v[i].idle += sv->sv_nidle;
		ss->ss_v[i].requests += sv->sv_requests;
		ss->ss_v[i].answered += sv->sv_answered;
		ss->ss_v[i].latency_seconds += sv->sv_latency_usec / 1e6;
	}
}

/*
 * Sample the backend servers into views for metrics_server.c; NULL (and
 * *n 0) if out of memory or there are none. The caller frees. Health is
 * one for all workers (worker 0's servers hold it, under px_health_mtx);
 * the counters of requests and connections are summed over the workers.
 */
static struct metrics_server *
sample_servers(struct proxy *px, size_t *n, struct metrics_retries *rt)
{
	const struct health_conf *hc = &px->px_conf->backend.health;
	struct worker		*w0 = px->px_workers[0];
	struct metrics_server	*v;
	struct server		*sv;
	struct server_sum	 ss;
	uint64_t		 now = now_usec();
	size_t			 i;
	unsigned int		 k;

	rt->allowed = 0;
	rt->denied = 0;
	*n = 0;
	v = w0->w_nservers == 0 ? NULL : calloc(w0->w_nservers, sizeof(*v));
	pthread_mutex_lock(&px->px_health_mtx);
	for (i = 0; v != NULL && i < w0->w_nservers; i++) {
		sv = w0->w_servers[i];
		v[i].name = sv->sv_addr->text;
		v[i].state = health_state_name(sv->sv_health->hs_state);
		v[i].usable = health_usable(sv->sv_health, hc, now) == 2;
		v[i].weight = health_weight(sv->sv_health, hc, now);
		v[i].inflight = sv->sv_active;
		v[i].idle = sv->sv_nidle;
		v[i].requests = sv->sv_requests;
		v[i].answered = sv->sv_answered;
		v[i].latency_seconds = sv->sv_latency_usec / 1e6;
		v[i].failures = sv->sv_health->hs_failures;
		v[i].ejections = sv->sv_health->hs_ejections;
		v[i].last_failure = sv->sv_health->hs_failures > 0 ?
		    health_event_name(sv->sv_health->hs_last) : NULL;
		v[i].ejected_for_seconds = health_wait(sv->sv_health,
		    now) / 1e6;
		v[i].checked = sv->sv_check != NULL;
		v[i].checks = sv->sv_health->hs_checks;
		v[i].checks_failed = sv->sv_health->hs_checks_failed;
		v[i].check_last = sv->sv_check_last[0] != '\0' ?
		    sv->sv_check_last : NULL;
	}
	pthread_mutex_unlock(&px->px_health_mtx);
	/* each server's limit, one for all workers (never under the health
	   lock: the shed lock comes first) */
	pthread_mutex_lock(&px->px_shed_mtx);
	for (i = 0; v != NULL && i < w0->w_nservers; i++)
		v[i].limit = limiter_limit(w0->w_servers[i]->sv_slots->ss_lim);
	pthread_mutex_unlock(&px->px_shed_mtx);
	*n = v != NULL ? w0->w_nservers : 0;
	ss.ss_v = v;
	ss.ss_n = *n;
	ss.ss_rt = rt;
	for (k = 0; k < px->px_nworkers; k++)
		worker_call(px->px_workers[k], sum_servers_cb, &ss);
	return v;
}

static void
reply(struct evhttp_request *req, int code, const char *reason,
    const char *type, const char *data, size_t len)
{
	struct evbuffer	*body = evbuffer_new();
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);

	if (body == NULL || evbuffer_add(body, data, len) == -1) {
		evhttp_send_error(req, HTTP_INTERNAL, NULL);
		if (body != NULL)
			evbuffer_free(body);
		return;
	}
	evhttp_add_header(h, "Content-Type", type);
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_send_reply(req, code, reason, body);
	evbuffer_free(body);
}

static void
reply_mbuf(struct evhttp_request *req, const char *type, struct mbuf *mb)
{
	if (mb->mb_failed)
		evhttp_send_error(req, HTTP_INTERNAL, "out of memory");
	else
		reply(req, HTTP_OK, "OK", type, mb->mb_data, mb->mb_len);
	mbuf_free(mb);
}

static void
serve_metrics(struct proxy *px, struct evhttp_request *req)
{
	struct metrics_gauges	 g;
	struct metrics		 m;
	struct metrics_process	 proc;
	struct mbuf		 mb = { NULL, 0, 0, 0 };
	struct metrics_server	*sv;
	struct metrics_retries	 rt;
	size_t			 n;

	sample_gauges(px, &g, &m);
	procstat_read(&proc);
	g.process = &proc;
	metrics_prometheus(&m, &g, &mb);
	metrics_free(&m);
	sv = sample_servers(px, &n, &rt);
	metrics_server_prometheus(sv, n, &rt, &mb);
	free(sv);
	reply_mbuf(req, "text/plain; version=0.0.4; charset=utf-8", &mb);
}

static void
serve_status(struct proxy *px, struct evhttp_request *req)
{
	struct metrics_gauges	 g;
	struct metrics		 m;
	struct mbuf		 conf = { NULL, 0, 0, 0 };
	struct mbuf		 mb = { NULL, 0, 0, 0 };
	struct metrics_server	*sv;
	struct metrics_retries	 rt;
	size_t			 n;

	sample_gauges(px, &g, &m);
	config_json(px->px_conf, &conf);
	g.config_json = conf.mb_failed ? NULL : conf.mb_data;
	metrics_json(&m, &g, &mb);
	metrics_free(&m);
	/* the servers go inside metrics_json's object: before its "}" */
	if (!mb.mb_failed && mb.mb_len > 0 &&
	    mb.mb_data[mb.mb_len - 1] == '}') {
		mb.mb_len--;
		sv = sample_servers(px, &n, &rt);
		metrics_server_json(sv, n, &rt, &mb);
		free(sv);
		mbuf_printf(&mb, "}");
	}
	mbuf_printf(&mb, "\n");
	mbuf_free(&conf);
	reply_mbuf(req, "application/json", &mb);
}

static void
serve_history(struct proxy *px, struct evhttp_request *req)
{
	struct mbuf	 mb = { NULL, 0, 0, 0 };

	history_json(&admin_history, (now_usec() - px->px_started) / 1e6, &mb);
	mbuf_printf(&mb, "\n");
	reply_mbuf(req, "application/json", &mb);
}

static void
history_cb(evutil_socket_t fd, short what, void *arg)
{
	struct proxy		*px = arg;
	struct metrics_gauges	 g;
	struct metrics		 m;

	sample_gauges(px, &g, &m);
	history_record(&admin_history, &m, &g, g.uptime_seconds);
	metrics_free(&m);
}

/*
 * Start sampling, once, from the first commit with an admin listener; a
 * failure costs the history, not the listener.
 */
static void
history_start(struct proxy *px)
{
	struct timeval	 tv = msec_tv(HISTORY_PERIOD_MS);

	if (admin_history_ev != NULL)
		return;
	if (history_init(&admin_history, HISTORY_SAMPLES) == -1 ||
	    (admin_history_ev = event_new(px->px_base, -1, EV_PERSIST,
	    history_cb, px)) == NULL || event_add(admin_history_ev, &tv) == -1) {
		log_warnx("out of memory: the dashboard has no history");
		if (admin_history_ev != NULL)
			event_free(admin_history_ev);
		admin_history_ev = NULL;
		history_free(&admin_history);
	}
	/* the first sample a period on: start-up is not over yet */
}

static void
serve_reload(struct proxy *px, struct evhttp_request *req)
{
	char	*errors = NULL, msg[128];
	int	 n;

	if (px->px_reload(px, &errors) == -1) {
		reply(req, HTTP_BADREQUEST, "Bad Request",
		    "text/plain; charset=utf-8", errors != NULL ? errors :
		    "reload failed\n", errors != NULL ? strlen(errors) : 14);
		free(errors);
		return;
	}
	n = snprintf(msg, sizeof(msg), "reloaded: configuration generation "
	    "%lu\n", px->px_gen->g_id);
	reply(req, HTTP_OK, "OK", "text/plain; charset=utf-8", msg, (size_t)n);
}

static void
admin_cb(struct evhttp_request *req, void *arg)
{
	struct proxy			*px = arg;
	const struct evhttp_uri		*uri = evhttp_request_get_evhttp_uri(req);
	const char			*path = uri ? evhttp_uri_get_path(uri) : NULL;
	enum evhttp_cmd_type		 cmd = evhttp_request_get_command(req);
	int				 get = cmd == EVHTTP_REQ_GET ||
					    cmd == EVHTTP_REQ_HEAD;

	if (path == NULL || *path == '\0')
		path = "/";
	if (strcmp(path, "/metrics") == 0 && get)
		serve_metrics(px, req);
	else if (strcmp(path, "/status") == 0 && get)
		serve_status(px, req);
	else if (strcmp(path, "/history") == 0 && get)
		serve_history(px, req);
	else if (strcmp(path, "/") == 0 && get) {
		/* the page may load nothing from anywhere but here */
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Content-Security-Policy", "default-src 'none'; "
		    "script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
		    "img-src data:; connect-src 'self'");
		reply(req, HTTP_OK, "OK", "text/html; charset=utf-8",
		    dashboard_html, dashboard_html_len);
	}
	else if (strcmp(path, "/reload") == 0 && cmd == EVHTTP_REQ_POST)
		serve_reload(px, req);
	else if (strcmp(path, "/metrics") == 0 ||
	    strcmp(path, "/status") == 0 || strcmp(path, "/") == 0 ||
	    strcmp(path, "/history") == 0 ||
	    strcmp(path, "/reload") == 0) {
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Allow", strcmp(path, "/reload") == 0 ? "POST" :
		    "GET, HEAD");
		reply(req, 405, "Method Not Allowed",
		    "text/plain; charset=utf-8", "405 Method Not Allowed\n", 23);
	} else
		reply(req, HTTP_NOTFOUND, "Not Found",
		    "text/plain; charset=utf-8", "404 Not Found\n", 14);
}

static void	admin_retire(struct proxy *);
static void	admin_pause(struct proxy *);
static int	admin_reserve(size_t);

/* Forget the connections evhttp has freed since we last looked. */
static void
admin_sweep(void)
{
	void	*arg;
	size_t	 i = 0;

	while (i < admin_nbevs) {
		bufferevent_getcb(admin_bevs[i], NULL, NULL, NULL, &arg);
		if (arg != NULL) {
			i++;
			continue;
		}
		bufferevent_decref(admin_bevs[i]);
		admin_bevs[i] = admin_bevs[--admin_nbevs];
	}
}

/*
 * evhttp makes a connection's bufferevent through us: count it, and pause
 * the listener once max_connections are open. Returns NULL only out of
 * memory (evhttp then tries itself, and the connection goes uncounted).
 */
static struct bufferevent *
admin_bevcb(struct event_base *base, void *arg)
{
	struct proxy		*px = arg;
	struct bufferevent	*bev;

	admin_sweep();
	/* past the cap only by what a listener just moved by a reload took */
	if ((admin_nbevs >= admin_cap && admin_reserve(admin_nbevs + 8) == -1)
	    || (bev = bufferevent_socket_new(base, -1, 0)) == NULL)
		return NULL;
	bufferevent_incref(bev);
	admin_bevs[admin_nbevs++] = bev;
	if (admin_nbevs >= admin_max)
		admin_pause(px);
	return bev;
}

/* Look again after a pause: accept if below the cap, else wait more. */
static void
admin_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct proxy	*px = arg;

	admin_paused = 0;
	if (px->px_admin_sock == NULL)
		return;
	admin_sweep();
	if (admin_nbevs >= admin_max) {
		admin_pause(px);
		return;
	}
	evconnlistener_enable(evhttp_bound_socket_get_listener(
	    px->px_admin_sock));
}

/* Stop accepting for ADMIN_PAUSE_MSEC (one timer at a time). */
static void
admin_pause(struct proxy *px)
{
	struct timeval	 tv = msec_tv(ADMIN_PAUSE_MSEC);

	if (px->px_admin_sock != NULL)
		evconnlistener_disable(evhttp_bound_socket_get_listener(
		    px->px_admin_sock));
	if (admin_paused)
		return;
	if (event_base_once(px->px_base, -1, EV_TIMEOUT, admin_resume_cb, px,
	    &tv) == -1) {
		log_warnx("no timer: admin listener off until a reload");
		return;
	}
	admin_paused = 1;
}

/* Room to count n connections, and more if more are open now. */
static int
admin_reserve(size_t n)
{
	struct bufferevent	**v;

	if (n < admin_nbevs)
		n = admin_nbevs;
	if (n <= admin_cap)
		return 0;
	if ((v = realloc(admin_bevs, n * sizeof(*v))) == NULL)
		return -1;
	admin_bevs = v;
	admin_cap = n;
	return 0;
}

/*
 * accept() failed on the admin socket. Without this callback libevent only
 * warns and leaves the socket readable: out of descriptors, the loop would
 * spin. Pause it instead, as listener.c pauses the proxy's listeners; the
 * timer re-enables whichever admin listener is current by then.
 */
static void
admin_accept_error_cb(struct evconnlistener *evl, void *arg)
{
	int		 error = EVUTIL_SOCKET_ERROR();
	unsigned int	 quiet;

	if (listener_warn_pause(admin_proxy->px_workers[0], &quiet))
		log_warnx("accept: %s; pausing %d ms (%u pauses since the "
		    "last warning)", strerror(error), ADMIN_PAUSE_MSEC,
		    quiet);
	evconnlistener_disable(evl);
	admin_pause(admin_proxy);
}

/*
 * First half of making the admin listener match conf (start-up and
 * reload): keep it if the address is the same, else bind the new one
 * beside it, not yet serving, so that a failed bind leaves the running one
 * alone. Returns 0, or -1 with err set; admin_abort() undoes it.
 */
int
admin_prepare(struct proxy *px, const struct config *conf, char *err,
    size_t errlen)
{
	const struct config_addr	*a = conf->admin.nlisten > 0 ?
					    &conf->admin.listen[0] : NULL;
	struct evhttp			*http = NULL;
	struct evhttp_bound_socket	*sock = NULL;
	int				 fd;

	if (admin_reserve(conf->admin.max_connections) == -1) {
		snprintf(err, errlen, "admin: out of memory");
		return -1;
	}
	admin_abort(px);
	px->px_admin_next_addr = a;
	px->px_admin_next_max = conf->admin.max_connections;
	if (a != NULL && px->px_admin != NULL &&
	    addr_same(a, &px->px_admin_addr)) {
		px->px_admin_keep = 1;
		return 0;
	}
	if (a == NULL)
		return 0;
	if ((fd = listener_bind(conf, a, ADMIN_BACKLOG, 0, err, errlen)) == -1)
		return -1;
	if ((http = evhttp_new(px->px_base)) == NULL ||
	    (sock = evhttp_accept_socket_with_handle(http, fd)) == NULL) {
		if (http != NULL)
			evhttp_free(http);
		close(fd);
		snprintf(err, errlen, "admin listen %s: out of memory",
		    a->text);
		return -1;
	}
	admin_proxy = px;
	evconnlistener_set_error_cb(evhttp_bound_socket_get_listener(sock),
	    admin_accept_error_cb);
	evhttp_set_timeout(http, ADMIN_TIMEOUT_SEC);
	evhttp_set_max_headers_size(http, 16384);
	evhttp_set_max_body_size(http, 4096);
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD |
	    EVHTTP_REQ_POST | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
	    EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
	evhttp_set_gencb(http, admin_cb, px);
	evhttp_set_bevcb(http, admin_bevcb, px);
	px->px_admin_next = http;
	px->px_admin_next_sock = sock;
	return 0;
}

/*
 * Second half: serve on the prepared listener and retire the old one, or
 * keep the old one; the new max_connections applies only now, once the
 * listener is in place.
 */
void
admin_commit(struct proxy *px)
{
	const struct config_addr	*a = px->px_admin_next_addr;

	admin_max = px->px_admin_next_max;
	if (px->px_admin_keep) {
		px->px_admin_keep = 0;
		admin_sweep();	/* a lower cap applies at once */
		if (admin_nbevs >= admin_max)
			admin_pause(px);
		return;
	}
	admin_retire(px);
	px->px_admin = px->px_admin_next;
	px->px_admin_sock = px->px_admin_next_sock;
	px->px_admin_next = NULL;
	px->px_admin_next_sock = NULL;
	if (a != NULL) {
		px->px_admin_addr.ss = a->ss;
		px->px_admin_addr.sslen = a->sslen;
		log_info("admin listening on %s (at most %u connections)",
		    a->text, admin_max);
		history_start(px);
	}
}

/* Undo admin_prepare(): close what it bound. */
void
admin_abort(struct proxy *px)
{
	if (px->px_admin_next != NULL)
		evhttp_free(px->px_admin_next);
	px->px_admin_next = NULL;
	px->px_admin_next_sock = NULL;
	px->px_admin_keep = 0;
}

static void
admin_free_old(struct proxy *px)
{
	if (px->px_admin_old != NULL)
		evhttp_free(px->px_admin_old);
	px->px_admin_old = NULL;
}

static void
admin_free_cb(evutil_socket_t fd, short what, void *arg)
{
	admin_free_old(arg);
}

/*
 * A reload moved or removed the admin listener: stop accepting on the old
 * socket now, but free its evhttp only a second later. The reload may have
 * come from a request on it (POST /reload), whose reply is still to be
 * written by that very evhttp.
 */
static void
admin_retire(struct proxy *px)
{
	struct timeval	 second = { 1, 0 };

	if (px->px_admin == NULL)
		return;
	evhttp_del_accept_socket(px->px_admin, px->px_admin_sock);
	admin_free_old(px);	/* one retired at a time: it had its turn */
	px->px_admin_old = px->px_admin;
	if (px->px_admin_timer == NULL)
		px->px_admin_timer = evtimer_new(px->px_base, admin_free_cb,
		    px);
	if (px->px_admin_timer == NULL ||
	    evtimer_add(px->px_admin_timer, &second) == -1)
		admin_free_old(px);	/* no timer: no choice */
	px->px_admin = NULL;
	px->px_admin_sock = NULL;
}

void
admin_close(struct proxy *px)
{
	admin_abort(px);
	if (px->px_admin != NULL)
		evhttp_free(px->px_admin);
	px->px_admin = NULL;
	px->px_admin_sock = NULL;
	admin_free_old(px);
	if (px->px_admin_timer != NULL)
		event_free(px->px_admin_timer);
	px->px_admin_timer = NULL;
	/* every connection went with its evhttp */
	while (admin_nbevs > 0)
		bufferevent_decref(admin_bevs[--admin_nbevs]);
	free(admin_bevs);
	admin_bevs = NULL;
	admin_cap = 0;
	if (admin_history_ev != NULL)
		event_free(admin_history_ev);
	admin_history_ev = NULL;
	history_free(&admin_history);
}
