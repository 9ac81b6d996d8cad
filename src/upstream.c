/*
 * upstream.c: backend servers, their pools of kept-alive connections, and
 * connecting with failover. Per-server limits and the balancer's choice
 * are upstream_slots.c's, health verdicts and their logs
 * upstream_health.c's (upstream_int.h between the three).
 *
 * A backend connection (struct upconn) is in one of four states: being
 * connected for a request (UC_CONNECTING), serving one (UC_BUSY), idle in
 * its server's pool (UC_IDLE), or a trial of an ejected server (UC_PROBE).
 * It goes back to the pool only after a complete response to a completely
 * sent request, and only if its server is in rotation; anything else
 * closes it.
 * An idle connection that becomes readable (data or EOF) or stays idle for
 * keepalive_timeout is closed. The pool holds "keepalive" connections for
 * that long; one put back while it already holds that many is kept for
 * at most SURPLUS_IDLE (see upconn_pool()). A connect failure tries the
 * next server: nothing has been sent yet, so nothing can be sent twice.
 *
 * Health (health.c): every try ends with a verdict on its server (a
 * connect failure, a reset before any byte, a response timeout, a 5xx),
 * given once through server_event(), which logs a change of state. A
 * request goes only to a server that is up, skipping ejected ones; when
 * none is up it is refused at once (503 no_server). An ejected server
 * whose back-off is over is tried by a probe of our own (UC_PROBE: a
 * connect, TLS handshake included, within connect_timeout; with active
 * checks on, the next check instead), never by a client's request, so no
 * client waits on a server known to be down. When a server is ejected,
 * the requests still connecting to it move to another server at once.
 * A try after the first (failover) spends the retry budget (retry.c).
 *
 * Per-server limits (issue 14): each server has a concurrency limiter of
 * its own (limiter.c: learned from that server's answers alone, or fixed
 * by "maxconn=N"), one for the whole process (struct server_slots, under
 * px_shed_mtx: every worker's server for the address points at worker
 * 0's), so one server slowing down shrinks its own limit and no other's.
 * shed.c asks upstream_acquire() for a slot: the balancer (balance.c)
 * sees each server's health (one out of rotation is never picked; one in
 * slow start has its limit times its weight as slots, so it starts low)
 * and free share, and the slot is taken on the server it picks; the
 * request goes there first (ur_slot). When no server is in rotation the
 * request goes on without a slot, to the fast 503 no_server. A request
 * that fails over takes a slot on the server it goes to (past its limit
 * if need be: the retry budget bounds how often), the failure counted
 * against the server that failed. The slot goes back with the request's
 * outcome in upstream_slot_release() (from shed.c's batch). Lock order:
 * px_shed_mtx, then px_health_mtx, never the other way round.
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>

#include <openssl/err.h>

#include "spillway.h"
#include "balance.h"
#include "health.h"
#include "log.h"
#include "upstream_int.h"

static void	up_readcb(struct bufferevent *, void *);
static void	up_writecb(struct bufferevent *, void *);
static void	up_eventcb(struct bufferevent *, short, void *);

static struct server *
server_new(struct worker *w, const struct config *conf,
    const struct config_addr *addr)
{
	struct server		*sv;
	struct limiter_conf	 lc;

	if ((sv = calloc(1, sizeof(*sv))) == NULL)
		return NULL;
	/* its own until upstream_commit() shares worker 0's */
	server_limiter_conf(conf, addr, &lc);
	if ((sv->sv_slots = calloc(1, sizeof(*sv->sv_slots))) == NULL ||
	    (sv->sv_slots->ss_lim = limiter_new(&lc, now_usec())) == NULL) {
		free(sv->sv_slots);
		free(sv);
		return NULL;
	}
	limiter_set_wallclock(sv->sv_slots->ss_lim, now_usec(), wall_usec());
	sv->sv_slots->ss_refs = 1;
	sv->sv_worker = w;
	sv->sv_addr = addr;
	TAILQ_INIT(&sv->sv_idle);
	TAILQ_INIT(&sv->sv_connecting);
	health_init(&sv->sv_hs, now_usec());
	sv->sv_health = &sv->sv_hs;	/* upstream_commit() may share it */
	atomic_init(&sv->sv_quiet_hs, 0);	/* up at once, at full weight */
	sv->sv_quiet = &sv->sv_quiet_hs;
	return sv;
}

void
upconn_free(struct upconn *uc)
{
	struct server	*sv = uc->uc_server;

	if (uc->uc_state == UC_IDLE) {
		TAILQ_REMOVE(&sv->sv_idle, uc, uc_entry);
		sv->sv_nidle--;
	} else if (uc->uc_state == UC_CONNECTING)
		TAILQ_REMOVE(&sv->sv_connecting, uc, uc_entry);
	else if (uc->uc_state == UC_PROBE)
		sv->sv_probe = NULL;
	tls_release(bufferevent_openssl_get_ssl(uc->uc_bev), 1);
	bufferevent_free(uc->uc_bev);
	free(uc);
}

void
drop_idle(struct server *sv)
{
	struct upconn	*uc;

	while ((uc = TAILQ_FIRST(&sv->sv_idle)) != NULL)
		upconn_free(uc);
}

static void
server_free(struct server *sv)
{
	if (sv == NULL)
		return;
	if (sv->sv_probe != NULL)
		upconn_free(sv->sv_probe);
	check_free(sv->sv_check);
	SSL_SESSION_free(sv->sv_tls_sess);
	shed_lock(sv->sv_worker->w_proxy);
	slots_unref(sv->sv_slots);
	shed_unlock(sv->sv_worker->w_proxy);
	free(sv);
}

/* A request leaves a server: a retired one goes with its last request. */
void
server_put(struct server *sv)
{
	sv->sv_active--;
	if (sv->sv_retired && sv->sv_active == 0 && sv->sv_nidle == 0)
		server_free(sv);
}

/*
 * OpenSSL's new-session callback on backend connections: keep the
 * server's newest session, to resume the next handshake with it (a TLS
 * 1.3 ticket comes after the handshake, so it is taken when it arrives).
 * Returns 1: the reference is ours.
 */
int
upstream_tls_session(SSL *ssl, SSL_SESSION *sess)
{
	struct upconn	*uc = SSL_get_app_data(ssl);

	if (uc == NULL)
		return 0;
	SSL_SESSION_free(uc->uc_server->sv_tls_sess);
	uc->uc_server->sv_tls_sess = sess;
	return 1;
}

static int
same_str(const char *a, const char *b)
{
	return (a == NULL && b == NULL) ||
	    (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* Would a connection made under a serve under b? (TLS settings) */
static int
same_tls(const struct backend_conf *a, const struct backend_conf *b)
{
	return a->tls == b->tls && (!a->tls || (a->tls_verify ==
	    b->tls_verify && same_str(a->ca_file.text, b->ca_file.text) &&
	    same_str(a->server_name.text, b->server_name.text)));
}

/*
 * First half of making the servers match conf (start-up and reload): a
 * server whose address stays will keep its pool and counters, a new one
 * is made now. Nothing live changes; -1 if out of memory, undone by
 * upstream_abort().
 */
int
upstream_prepare(struct worker *w, const struct config *conf)
{
	const struct backend_conf	*bc = &conf->backend;
	size_t				 i, j;

	struct proxy			*px = w->w_proxy;

	upstream_abort(w);
	w->w_servers_next = calloc(bc->nservers, sizeof(struct server *));
	w->w_servers_from = calloc(bc->nservers, sizeof(size_t));
	if (w->w_servers_next == NULL || w->w_servers_from == NULL)
		goto fail;
	/* worker 0's servers are the balancer's: its list, made now */
	if (w->w_id == 0 && ((px->px_slots_next = calloc(bc->nservers,
	    sizeof(*px->px_slots_next))) == NULL ||
	    (px->px_views_next = calloc(bc->nservers,
	    sizeof(*px->px_views_next))) == NULL))
		goto fail;
	w->w_nservers_next = bc->nservers;
	/* what each new server is: a kept one (from[i] = j + 1) or new */
	for (i = 0; i < bc->nservers; i++) {
		for (j = 0; j < w->w_nservers; j++) {
			if (addr_same(w->w_servers[j]->sv_addr,
			    &bc->servers[i])) {
				w->w_servers_from[i] = j + 1;
				break;
			}
		}
		if (w->w_servers_from[i] == 0 &&
		    (w->w_servers_next[i] = server_new(w, conf,
		    &bc->servers[i])) == NULL)
			goto fail;
	}
	return 0;
 fail:
	upstream_abort(w);
	return -1;
}

/*
 * Worker 0's server that worker w's server i shares health and limit
 * with: worker 0's server i once the reload under way is committed.
 * Worker 0 commits last (proxy.c), so its prepared arrays still say which
 * server that is.
 */
struct server *
shared_server(const struct worker *w, size_t i)
{
	const struct worker	*w0 = w->w_proxy->px_workers[0];

	if (w0->w_servers_next == NULL)
		return w0->w_servers[i];
	if (w0->w_servers_from[i] != 0)
		return w0->w_servers[w0->w_servers_from[i] - 1];
	return w0->w_servers_next[i];
}

/*
 * Second half: kept servers take their new address (and lose their pool
 * if the backend's TLS settings changed), new ones start empty, and one
 * that went away is retired (see struct server).
 */
void
upstream_commit(struct worker *w, const struct config *conf)
{
	const struct backend_conf	*bc = &conf->backend;
	struct server			**nsv = w->w_servers_next, *sv;
	size_t				*from = w->w_servers_from, i, j;
	struct server_slots		*ss;

	if (w->w_id == 0)
		slots_commit(w, conf);
	for (i = 0; i < bc->nservers; i++) {
		if (from[i] == 0)
			continue;
		nsv[i] = w->w_servers[from[i] - 1];
		if (w->w_conf != NULL && !same_tls(&w->w_conf->backend,
		    bc)) {
			drop_idle(nsv[i]);
			SSL_SESSION_free(nsv[i]->sv_tls_sess);
			nsv[i]->sv_tls_sess = NULL;
		}
		nsv[i]->sv_addr = &bc->servers[i];
		w->w_servers[from[i] - 1] = NULL;
	}
	for (j = 0; j < w->w_nservers; j++) {
		if ((sv = w->w_servers[j]) == NULL)
			continue;
		drop_idle(sv);
		check_free(sv->sv_check);
		sv->sv_check = NULL;
		sv->sv_retired = 1;
		if (sv->sv_active == 0)
			server_free(sv);
	}
	free(w->w_servers);
	free(from);
	w->w_servers = nsv;
	w->w_nservers = bc->nservers;
	w->w_servers_next = NULL;
	w->w_servers_from = NULL;
	w->w_nservers_next = 0;
	for (i = 0; i < w->w_nservers; i++) {
		if (w->w_id != 0) {
			nsv[i]->sv_health = shared_server(w, i)->sv_health;
			nsv[i]->sv_quiet = shared_server(w, i)->sv_quiet;
			if ((ss = shared_server(w, i)->sv_slots) != nsv[i]->sv_slots) {
				shed_lock(w->w_proxy);
				ss->ss_refs++;
				slots_unref(nsv[i]->sv_slots);
				nsv[i]->sv_slots = ss;
				shed_unlock(w->w_proxy);
			}
		}
		sync_checks(w->w_servers[i], conf);
	}
	shed_kick(w);
}

/* Undo upstream_prepare(): free the servers it made. */
void
upstream_abort(struct worker *w)
{
	size_t	 i;

	for (i = 0; w->w_servers_next != NULL &&
	    w->w_servers_from != NULL && i < w->w_nservers_next; i++)
		if (w->w_servers_from[i] == 0)
			server_free(w->w_servers_next[i]);
	free(w->w_servers_next);
	free(w->w_servers_from);
	w->w_servers_next = NULL;
	w->w_servers_from = NULL;
	w->w_nservers_next = 0;
	if (w->w_id == 0) {
		free(w->w_proxy->px_slots_next);
		free(w->w_proxy->px_views_next);
		w->w_proxy->px_slots_next = NULL;
		w->w_proxy->px_views_next = NULL;
	}
}

/* Close every idle backend connection (at stop, or before a swap). */
void
upstream_drop_idle(struct worker *w)
{
	size_t	 i;

	for (i = 0; i < w->w_nservers; i++)
		drop_idle(w->w_servers[i]);
}

void
upstream_free(struct worker *w)
{
	size_t	 i;

	upstream_abort(w);
	for (i = 0; i < w->w_nservers; i++) {
		drop_idle(w->w_servers[i]);
		server_free(w->w_servers[i]);
	}
	free(w->w_servers);
	w->w_servers = NULL;
	w->w_nservers = 0;
}

/*
 * A first try goes to the server whose slot the request holds, if it is
 * still in rotation (upstream_acquire() chose it by the balance); the
 * trials due are started on the way, as pick() does. SIZE_MAX: no such
 * server here, pick() chooses.
 */
static size_t
slot_server(struct worker *w, struct upstream_req *ur, uint64_t now)
{
	const struct health_conf *hc = &w->w_conf->backend.health;
	struct server	*sv, *probe[PICK_PROBES];
	size_t		 i, idx = SIZE_MAX, nprobe = 0;
	int		 u;

	if (ur->ur_tries > 0 || ur->ur_slot == NULL)
		return SIZE_MAX;
	/* every server plainly up: no trial due, no lock to take */
	for (i = 0; i < w->w_nservers && server_quiet(w->w_servers[i]); i++)
		if (w->w_servers[i]->sv_slots == ur->ur_slot)
			idx = i;
	if (i == w->w_nservers)
		return idx;
	idx = SIZE_MAX;
	health_lock(w);
	for (i = 0; i < w->w_nservers; i++) {
		sv = w->w_servers[i];
		u = health_usable(sv->sv_health, hc, now);
		if (sv->sv_slots == ur->ur_slot && u == 2)
			idx = i;
		else if (u == 1 && sv->sv_probe == NULL &&
		    nprobe < PICK_PROBES) {
			health_trial_start(sv->sv_health, now);
			probe[nprobe++] = sv;
		}
	}
	health_unlock(w);
	for (i = 0; i < nprobe; i++)
		probe_start(probe[i], now);
	return idx;
}

/*
 * Which server a request tries next: the first try by the configured
 * balance among the servers that are up (slow start thinning a server's
 * share by its weight), a later one the next server up after the last
 * tried, never coming round to the first again. Starts the probes that are
 * due on the way. Returns an index, or SIZE_MAX when no server is left.
 */
static size_t
pick(struct worker *w, struct upstream_req *ur, uint64_t now)
{
	const struct health_conf *hc = &w->w_conf->backend.health;
	size_t		 n = w->w_nservers, i, k, start, best = SIZE_MAX;
	size_t		 fallback = SIZE_MAX;
	struct server	*sv, *probe[PICK_PROBES];
	double		 wt, score, best_score = 0;
	size_t		 nprobe = 0;
	int		 u;

	/* round robin goes on after the last server picked, up or not */
	if (ur->ur_tries == 0)
		start = w->w_rr_next % n;
	else
		start = (ur->ur_idx + 1) % n;
	now = health_lock(w);
	for (k = 0; k < n; k++) {
		i = (start + k) % n;
		if (ur->ur_tries > 0 && i == ur->ur_first)
			break;
		sv = w->w_servers[i];
		/* a trial due is this worker's to start, after the lock */
		if ((u = health_usable(sv->sv_health, hc, now)) == 1 &&
		    sv->sv_probe == NULL && nprobe < PICK_PROBES) {
			health_trial_start(sv->sv_health, now);
			probe[nprobe++] = sv;
		}
		if (u != 2)
			continue;
		if (ur->ur_tries > 0) {
			best = i;
			break;
		}
		if (fallback == SIZE_MAX)
			fallback = i;
		wt = health_weight(sv->sv_health, hc, now);
		if (w->w_conf->backend.balance == BALANCE_LEASTCONN) {
			score = (sv->sv_active + 1) / (wt > 0.05 ? wt : 0.05);
			if (best == SIZE_MAX || score < best_score) {
				best = i;
				best_score = score;
			}
		} else if (best == SIZE_MAX) {
			if (wt >= 1)
				best = i;
			else if ((sv->sv_credit += wt) >= 1) {
				sv->sv_credit -= 1;
				best = i;
			}
		}
	}
	health_unlock(w);
	for (k = 0; k < nprobe; k++)
		probe_start(probe[k], now);
	if (ur->ur_tries > 0)
		return best;
	if (best == SIZE_MAX)
		best = fallback;
	w->w_rr_next = w->w_conf->backend.balance == BALANCE_LEASTCONN ||
	    best == SIZE_MAX ? start + 1 : best + 1;
	return best;
}

/* A connection starts serving a request; conn sets its timeouts. */
static void
upconn_set_busy(struct upconn *uc, struct conn *c)
{
	int		 on = 1;

	if (uc->uc_state == UC_CONNECTING) {
		TAILQ_REMOVE(&uc->uc_server->sv_connecting, uc, uc_entry);
		setsockopt(bufferevent_getfd(uc->uc_bev), IPPROTO_TCP,
		    TCP_NODELAY, &on, sizeof(on));
	}
	uc->uc_state = UC_BUSY;
	uc->uc_conn = c;
	uc->uc_requests++;
	conn_upstream_req(c)->ur_up = uc;
	bufferevent_set_timeouts(uc->uc_bev, NULL, NULL);
	/*
	 * Only what is off: enabling EV_WRITE again would add the write event
	 * with nothing to write (an epoll_ctl now and another to drop it).
	 */
	if ((bufferevent_get_enabled(uc->uc_bev) & (EV_READ | EV_WRITE)) !=
	    (EV_READ | EV_WRITE))
		bufferevent_enable(uc->uc_bev, EV_READ | EV_WRITE);
}

static void
upconn_connect(struct conn *c, struct server *sv)
{
	struct upstream_req	*ur = conn_upstream_req(c);
	struct worker		*w = conn_worker(c);
	const struct backend_conf *bc = &conn_gen(c)->g_conf->backend;
	struct upconn		*uc;
	struct timeval		 ctv = msec_tv(bc->connect_timeout_ms);
	SSL			*ssl = NULL;

	if ((uc = calloc(1, sizeof(*uc))) == NULL)
		goto nomem;
	if (bc->tls) {
		/* the handshake is part of connecting: connect_timeout */
		if ((ssl = tls_connect(conn_gen(c)->g_tls, conn_gen(c)->g_conf,
		    sv->sv_addr)) == NULL)
			goto nomem;
		SSL_set_app_data(ssl, uc);
		if (sv->sv_tls_sess != NULL)
			SSL_set_session(ssl, sv->sv_tls_sess);
		uc->uc_bev = bufferevent_openssl_socket_new(w->w_base, -1,
		    ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
		if (uc->uc_bev != NULL)
			bufferevent_openssl_set_allow_dirty_shutdown(
			    uc->uc_bev, 1);
		else
			SSL_free(ssl);
	} else
		uc->uc_bev = bufferevent_socket_new(w->w_base, -1,
		    BEV_OPT_CLOSE_ON_FREE);
	if (uc->uc_bev == NULL) {
 nomem:
		free(uc);
		log_warnx("conn %llu: out of memory", (unsigned long long)conn_id(c));
		conn_upstream_failed(c, 502, MR_UPSTREAM_ERROR);
		return;
	}
	w->w_metrics.m_upstream_connections++;
	uc->uc_server = sv;
	uc->uc_conn = c;
	uc->uc_state = UC_CONNECTING;
	TAILQ_INSERT_TAIL(&sv->sv_connecting, uc, uc_entry);
	ur->ur_up = uc;
	bufferevent_setcb(uc->uc_bev, up_readcb, up_writecb, up_eventcb, uc);
	/*
	 * A pending connect is a pending write: the write timeout bounds it.
	 * A TLS handshake reads too: connect_timeout bounds both.
	 */
	bufferevent_set_timeouts(uc->uc_bev, bc->tls ? &ctv : NULL, &ctv);
	if (bufferevent_socket_connect(uc->uc_bev,
	    (const struct sockaddr *)&sv->sv_addr->ss,
	    (int)sv->sv_addr->sslen) == -1)
		up_eventcb(uc->uc_bev, BEV_EVENT_ERROR, uc);
}

/* A request is over: the next one starts with no server tried. */
void
upstream_reset(struct conn *c)
{
	struct upstream_req	*ur = conn_upstream_req(c);

	ur->ur_tries = 0;
	ur->ur_retried = 0;
	ur->ur_server = NULL;
	ur->ur_name = NULL;
	ur->ur_judged = 0;
}

/*
 * A kept-alive connection was found closed before any answer: send the
 * request again, once, on a new connection (relay.c says when it may).
 */
void
upstream_retry(struct conn *c)
{
	struct upstream_req	*ur = conn_upstream_req(c);

	ur->ur_retried = 1;
	ur->ur_tries = 0;
	upstream_release(c, 0);
	upstream_request(c);
}

/*
 * Give the conn's request a backend connection: pooled, else a new one. A
 * try after the first goes to the next server up, within the retry budget.
 */
void
upstream_request(struct conn *c)
{
	struct upstream_req	*ur = conn_upstream_req(c);
	struct worker	*w = conn_worker(c);
	const struct backend_conf *bc = &w->w_conf->backend;
	struct server	*sv;
	struct upconn	*uc;
	uint64_t	 now = now_usec();
	size_t		 idx;

	if (ur->ur_tries == 0 && !ur->ur_retried)
		retry_request(&w->w_retry, now);
	if ((idx = slot_server(w, ur, now)) == SIZE_MAX)
		idx = pick(w, ur, now);
	if (idx == SIZE_MAX) {
		if (ur->ur_tries > 0) {
			conn_upstream_failed(c, 502, MR_UPSTREAM_ERROR);
			return;
		}
		log_debug("conn %llu: no backend server is up",
		    (unsigned long long)conn_id(c));
		conn_set_retry_after(c, no_server_retry_after(w, now));
		conn_upstream_failed(c, 503, MR_NO_SERVER);
		return;
	}
	if (ur->ur_tries > 0 && !retry_allow(&w->w_retry, bc->retry_budget,
	    bc->retry_min_per_second, now)) {
		log_info("conn %llu: retry budget spent; not trying %s",
		    (unsigned long long)conn_id(c),
		    w->w_servers[idx]->sv_addr->text);
		conn_upstream_failed(c, 502, MR_UPSTREAM_ERROR);
		return;
	}
	if (ur->ur_tries == 0)
		ur->ur_first = idx;
	ur->ur_tries++;
	ur->ur_idx = idx;
	ur->ur_judged = 0;
	ur->ur_t_try = now;
	sv = w->w_servers[idx];
	slot_move(c, sv);
	ur->ur_server = sv;
	ur->ur_name = sv->sv_addr->text;
	sv->sv_active++;
	sv->sv_requests++;

	if (!ur->ur_retried && (uc = TAILQ_FIRST(&sv->sv_idle)) != NULL) {
		TAILQ_REMOVE(&sv->sv_idle, uc, uc_entry);
		sv->sv_nidle--;
		upconn_set_busy(uc, c);
		relay_upstream_ready(c, uc);
		return;
	}
	upconn_connect(c, sv);
}

/*
 * The verdict of the request's try on its server (health.h says which
 * outcomes fail); once per try, whatever reports it first.
 */
void
upstream_judge(struct conn *c, enum health_event ev)
{
	struct upstream_req	*ur = conn_upstream_req(c);

	if (ur->ur_server == NULL || ur->ur_judged)
		return;
	ur->ur_judged = 1;
	server_event(ur->ur_server, ev, 0);
}

/* A response head came from the request's server, with status. */
void
upstream_answered(struct conn *c, int status)
{
	struct upstream_req	*ur = conn_upstream_req(c);

	if (ur->ur_server != NULL && !ur->ur_judged) {
		ur->ur_server->sv_answered++;
		ur->ur_server->sv_latency_usec += now_usec() - ur->ur_t_try;
	}
	upstream_judge(c, status == 503 ? HE_NEUTRAL : status >= 500 ?
	    HE_5XX : HE_OK);
}

/*
 * The request's server failed before any response byte: try another one
 * (the caller checked the request may be sent again). Returns 0 if the
 * request went on (or was answered), -1 if no other server may be tried.
 */
int
upstream_failover(struct conn *c)
{
	struct upstream_req	*ur = conn_upstream_req(c);
	struct worker		*w = conn_worker(c);

	if (w->w_nservers < 2 || ur->ur_tries >= w->w_nservers)
		return -1;
	upstream_release(c, 0);
	upstream_request(c);
	return 0;
}

/*
 * The probe of an ejected server whose back-off is over: a TCP connect.
 * pick() has put its health in trial; a probe that cannot start fails it.
 */
void
probe_start(struct server *sv, uint64_t now)
{
	struct worker	*w = sv->sv_worker;
	const struct config *conf = w->w_conf;
	struct upconn	*uc;
	struct timeval	 ctv = msec_tv(conf->backend.connect_timeout_ms);
	SSL		*ssl = NULL;

	if (sv->sv_probe != NULL || sv->sv_retired ||
	    (uc = calloc(1, sizeof(*uc))) == NULL) {
		server_event(sv, HE_CONNECT, 1);
		return;
	}
	/* over TLS, the handshake (certificate checks included) too */
	if (conf->backend.tls) {
		if ((ssl = tls_connect(w->w_gen->g_tls, conf,
		    sv->sv_addr)) != NULL && (uc->uc_bev =
		    bufferevent_openssl_socket_new(w->w_base, -1, ssl,
		    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE)) == NULL)
			SSL_free(ssl);
		if (uc->uc_bev != NULL)
			bufferevent_openssl_set_allow_dirty_shutdown(uc->uc_bev,
			    1);
	} else
		uc->uc_bev = bufferevent_socket_new(w->w_base, -1,
		    BEV_OPT_CLOSE_ON_FREE);
	if (uc->uc_bev == NULL) {
		free(uc);
		server_event(sv, HE_CONNECT, 1);
		return;
	}
	uc->uc_server = sv;
	uc->uc_state = UC_PROBE;
	sv->sv_probe = uc;
	log_debug("%s: server %s: trial connect", __func__, sv->sv_addr->text);
	bufferevent_setcb(uc->uc_bev, NULL, NULL, up_eventcb, uc);
	bufferevent_set_timeouts(uc->uc_bev, ssl != NULL ? &ctv : NULL, &ctv);
	/* a refusal comes back through up_eventcb, in the loop */
	if (bufferevent_socket_connect(uc->uc_bev,
	    (const struct sockaddr *)&sv->sv_addr->ss,
	    (int)sv->sv_addr->sslen) == -1) {
		log_info("server %s: trial connect: %s", sv->sv_addr->text,
		    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
		upconn_free(uc);
		server_event(sv, HE_CONNECT, 1);
	}
}

/*
 * A connection put back while the pool already holds "keepalive" of them
 * is a surplus: kept for SURPLUS_IDLE, not closed at once. Responses come
 * back in batches (one loop iteration reads dozens), and the waiters they
 * make room for are dispatched after the batch: closing every connection
 * past the cap there closed, and re-opened a moment later, a third of the
 * backend connections per request in front of nginx at 128 clients (7,500
 * connects a second, 1.3x HAProxy's CPU per request). A surplus never
 * holds more connections than were in use at once within the last
 * SURPLUS_IDLE, and at most "keepalive" outlive it: a connection gets the
 * long timeout only when fewer than that are idle.
 */
#define SURPLUS_IDLE	1000	/* msec */

static void
upconn_pool(struct upconn *uc, const struct backend_conf *bc,
    const struct timeval *idle)
{
	struct server	*sv = uc->uc_server;
	struct timeval	 surplus = msec_tv(SURPLUS_IDLE);

	if (sv->sv_nidle >= bc->keepalive && timercmp(&surplus, idle, <))
		idle = &surplus;
	uc->uc_state = UC_IDLE;
	bufferevent_setwatermark(uc->uc_bev, EV_WRITE, 0, 0);
	bufferevent_set_timeouts(uc->uc_bev, idle, NULL);
	bufferevent_enable(uc->uc_bev, EV_READ);
	TAILQ_INSERT_HEAD(&sv->sv_idle, uc, uc_entry);
	sv->sv_nidle++;
}

/*
 * The conn's request is over: its backend connection goes back to the pool
 * if reuse is set, its server is in rotation and there is room, else it is
 * closed.
 */
void
upstream_release(struct conn *c, int reuse)
{
	struct upstream_req	*ur = conn_upstream_req(c);
	struct upconn	*uc = ur->ur_up;
	struct server	*sv = ur->ur_server;
	struct worker	*w = conn_worker(c);
	const struct backend_conf *bc = &conn_gen(c)->g_conf->backend;
	struct timeval	 tv = msec_tv(bc->keepalive_timeout_ms);
	int		 out = 0;

	ur->ur_server = NULL;
	ur->ur_up = NULL;
	if (uc != NULL) {
		uc->uc_conn = NULL;
		if (!uc->uc_server->sv_retired &&
		    !server_quiet(uc->uc_server)) {
			health_lock(w);
			out = health_out(uc->uc_server->sv_health);
			health_unlock(w);
		}
		if (!reuse || bc->keepalive == 0 || w->w_stopping ||
		    uc->uc_server->sv_retired || uc->uc_state != UC_BUSY ||
		    out ||
		    evbuffer_get_length(bufferevent_get_input(uc->uc_bev)) > 0 ||
		    evbuffer_get_length(bufferevent_get_output(uc->uc_bev)) > 0)
			upconn_free(uc);
		else
			upconn_pool(uc, bc, &tv);
	}
	if (sv != NULL)
		server_put(sv);
}

static void
up_readcb(struct bufferevent *bev, void *arg)
{
	struct upconn	*uc = arg;

	if (uc->uc_state == UC_IDLE) {
		log_debug("%s: %s: data on an idle connection", __func__,
		    uc->uc_server->sv_addr->text);
		upconn_free(uc);
		return;
	}
	(void)tls_read_pending(bev);	/* records read ahead (backend TLS) */
	if (uc->uc_conn != NULL)
		relay_upstream_read(uc->uc_conn);
}

static void
up_writecb(struct bufferevent *bev, void *arg)
{
	struct upconn	*uc = arg;

	if (uc->uc_state == UC_BUSY && uc->uc_conn != NULL)
		relay_upstream_drained(uc->uc_conn);
}

/* Why connecting failed: the socket's error, or TLS's. */
static const char *
upconn_why(struct upconn *uc, int error, char *buf, size_t len)
{
	SSL		*ssl = bufferevent_openssl_get_ssl(uc->uc_bev);
	unsigned long	 e, err = 0;

	if (ssl == NULL)
		return evutil_socket_error_to_string(error);
	while ((e = bufferevent_get_openssl_error(uc->uc_bev)) != 0)
		err = e;
	if (err == 0 && error != 0 && SSL_get_verify_result(ssl) == X509_V_OK)
		return evutil_socket_error_to_string(error);
	return tls_why(ssl, err, buf, len);
}

static void
up_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct upconn	*uc = arg;
	struct conn	*c = uc->uc_conn;
	struct server	*sv = uc->uc_server;
	int		 error = EVUTIL_SOCKET_ERROR();
	char		 why[256];

	switch (uc->uc_state) {
	case UC_IDLE:
		upconn_free(uc);
		break;
	case UC_PROBE:
		if (!(what & BEV_EVENT_CONNECTED))
			log_info("server %s: trial connect: %s",
			    sv->sv_addr->text, (what & BEV_EVENT_TIMEOUT) ?
			    "timed out" : upconn_why(uc, error, why,
			    sizeof(why)));
		upconn_free(uc);
		server_event(sv, (what & BEV_EVENT_CONNECTED) ? HE_OK :
		    (what & BEV_EVENT_TIMEOUT) ? HE_CONNECT_TIMEOUT :
		    HE_CONNECT, 1);
		break;
	case UC_CONNECTING:
		if (what & BEV_EVENT_CONNECTED) {
			upconn_set_busy(uc, c);
			relay_upstream_ready(c, uc);
			break;
		}
		sv->sv_worker->w_metrics.m_upstream_connect_failures++;
		log_warnx("conn %llu: connect to %s: %s",
		    (unsigned long long)conn_id(c), sv->sv_addr->text,
		    (what & BEV_EVENT_TIMEOUT) ? "timed out" :
		    upconn_why(uc, error, why, sizeof(why)));
		conn_upstream_req(c)->ur_up = NULL;
		upconn_free(uc);
		upstream_judge(c, (what & BEV_EVENT_TIMEOUT) ?
		    HE_CONNECT_TIMEOUT : HE_CONNECT);
		conn_upstream_req(c)->ur_server = NULL;
		server_put(sv);
		upstream_request(c);
		break;
	case UC_BUSY:
		if (c != NULL)
			relay_upstream_event(c, what);
		else
			upconn_free(uc);
		break;
	}
}
