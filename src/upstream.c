/*
 * upstream.c: backend servers, their pools of kept-alive connections, and
 * connecting with failover.
 *
 * A backend connection (struct upconn) is in one of four states: being
 * connected for a request (UC_CONNECTING), serving one (UC_BUSY), idle in
 * its server's pool (UC_IDLE), or a trial of an ejected server (UC_PROBE).
 * It goes back to the pool only after a complete response to a completely
 * sent request, and only if its server is in rotation; anything else
 * closes it.
 * An idle connection that becomes readable (data or EOF) or stays idle for
 * keepalive_timeout is closed. A connect failure tries the next server:
 * nothing has been sent yet, so nothing can be sent twice.
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
 * by "maxconn=N"), so one server slowing down shrinks its own limit and
 * no other's. shed.c asks upstream_acquire() for a slot: the balancer
 * (balance.c) looks at each server's health (a server out of rotation is
 * never picked; one in slow start has its limit scaled by its weight, so
 * it starts low) and free share, and the slot is taken on the server it
 * picks; the request goes there first (ur_slot). When no server is in
 * rotation, the request goes on without a slot, to the fast 503
 * no_server. A request that fails over to another server takes its slot
 * there (past that server's limit if need be: the retry budget bounds how
 * often), the failure counted against the server that failed. The slot is
 * given back with the request's outcome, to the server that served it,
 * by upstream_slot_release(). A retired server is freed once it has no
 * request, no idle connection and no slot.
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

static void	up_readcb(struct bufferevent *, void *);
static void	up_writecb(struct bufferevent *, void *);
static void	up_eventcb(struct bufferevent *, short, void *);
static void	probe_start(struct server *, uint64_t);
static void	move_connecting(struct server *);


/* A server's limiter: [limiter]'s, or fixed at its maxconn. */
static void
server_limiter_conf(const struct config *conf, const struct config_addr *a,
    struct limiter_conf *lc)
{
	config_limiter_conf(conf, lc);
	if (a->maxconn > 0) {
		lc->algo = LIMITER_FIXED;
		lc->limit = lc->min_limit = lc->max_limit = a->maxconn;
	}
}

static struct server *
server_new(struct proxy *px, const struct config *conf,
    const struct config_addr *addr)
{
	struct server		*sv;
	struct limiter_conf	 lc;

	if ((sv = calloc(1, sizeof(*sv))) == NULL)
		return NULL;
	server_limiter_conf(conf, addr, &lc);
	if ((sv->sv_lim = limiter_new(&lc, now_usec())) == NULL) {
		free(sv);
		return NULL;
	}
	sv->sv_proxy = px;
	sv->sv_addr = addr;
	TAILQ_INIT(&sv->sv_idle);
	TAILQ_INIT(&sv->sv_connecting);
	health_init(&sv->sv_health, now_usec());
	return sv;
}

static void
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

static void
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
	limiter_free(sv->sv_lim);
	free(sv);
}

/* A retired server goes with its last request, connection and slot. */
static void
server_done(struct server *sv)
{
	if (sv->sv_retired && sv->sv_active == 0 && sv->sv_nidle == 0 &&
	    limiter_inflight(sv->sv_lim) == 0)
		server_free(sv);
}

/* A request leaves a server. */
static void
server_put(struct server *sv)
{
	sv->sv_active--;
	server_done(sv);
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
upstream_prepare(struct proxy *px, const struct config *conf)
{
	const struct backend_conf	*bc = &conf->backend;
	size_t				 i, j;

	upstream_abort(px);
	px->px_servers_next = calloc(bc->nservers, sizeof(struct server *));
	px->px_servers_from = calloc(bc->nservers, sizeof(size_t));
	px->px_views_next = calloc(bc->nservers, sizeof(struct balance_view));
	if (px->px_servers_next == NULL || px->px_servers_from == NULL ||
	    px->px_views_next == NULL)
		goto fail;
	px->px_nservers_next = bc->nservers;
	/* what each new server is: a kept one (from[i] = j + 1) or new */
	for (i = 0; i < bc->nservers; i++) {
		for (j = 0; j < px->px_nservers; j++) {
			if (addr_same(px->px_servers[j]->sv_addr,
			    &bc->servers[i])) {
				px->px_servers_from[i] = j + 1;
				break;
			}
		}
		if (px->px_servers_from[i] == 0 &&
		    (px->px_servers_next[i] = server_new(px, conf,
		    &bc->servers[i])) == NULL)
			goto fail;
	}
	return 0;
 fail:
	upstream_abort(px);
	return -1;
}

/*
 * Start or stop sv's active checks as conf says; a kept server's checks go
 * on (their schedule too). Checks turned off free a server they held down.
 */
static void
sync_checks(struct server *sv, const struct config *conf)
{
	if (conf->backend.health.check_on) {
		if (sv->sv_check == NULL && check_start(sv, conf) == -1)
			log_warnx("server %s: out of memory; not checked",
			    sv->sv_addr->text);
		return;
	}
	check_free(sv->sv_check);
	sv->sv_check = NULL;
	if (health_checks_off(&sv->sv_health, now_usec()))
		log_info("server %s: down -> up (checks turned off)",
		    sv->sv_addr->text);
}

/*
 * Second half: kept servers take their new address (and lose their pool
 * if the backend's TLS settings changed), new ones start empty, and one
 * that went away is retired (see struct server).
 */
void
upstream_commit(struct proxy *px, const struct config *conf)
{
	const struct backend_conf	*bc = &conf->backend;
	struct server			**nsv = px->px_servers_next, *sv;
	size_t				*from = px->px_servers_from, i, j;
	struct limiter_conf		 lc;

	for (i = 0; i < bc->nservers; i++) {
		if (from[i] == 0)
			continue;
		nsv[i] = px->px_servers[from[i] - 1];
		/* the learned limit carries over; maxconn may fix it now */
		server_limiter_conf(conf, &bc->servers[i], &lc);
		limiter_reconfigure(nsv[i]->sv_lim, &lc, now_usec());
		if (px->px_conf != NULL && !same_tls(&px->px_conf->backend,
		    bc)) {
			drop_idle(nsv[i]);
			SSL_SESSION_free(nsv[i]->sv_tls_sess);
			nsv[i]->sv_tls_sess = NULL;
		}
		nsv[i]->sv_addr = &bc->servers[i];
		px->px_servers[from[i] - 1] = NULL;
	}
	for (j = 0; j < px->px_nservers; j++) {
		if ((sv = px->px_servers[j]) == NULL)
			continue;
		drop_idle(sv);
		check_free(sv->sv_check);
		sv->sv_check = NULL;
		sv->sv_retired = 1;
		server_done(sv);
	}
	free(px->px_servers);
	free(from);
	free(px->px_views);
	px->px_servers = nsv;
	px->px_nservers = bc->nservers;
	px->px_views = px->px_views_next;
	px->px_views_next = NULL;
	px->px_servers_next = NULL;
	px->px_servers_from = NULL;
	px->px_nservers_next = 0;
	for (i = 0; i < px->px_nservers; i++)
		sync_checks(px->px_servers[i], conf);
}

/* Undo upstream_prepare(): free the servers it made. */
void
upstream_abort(struct proxy *px)
{
	size_t	 i;

	for (i = 0; px->px_servers_next != NULL &&
	    px->px_servers_from != NULL && i < px->px_nservers_next; i++)
		if (px->px_servers_from[i] == 0)
			server_free(px->px_servers_next[i]);
	free(px->px_servers_next);
	free(px->px_servers_from);
	free(px->px_views_next);
	px->px_servers_next = NULL;
	px->px_servers_from = NULL;
	px->px_views_next = NULL;
	px->px_nservers_next = 0;
}

/* Close every idle backend connection (at stop, or before a swap). */
void
upstream_drop_idle(struct proxy *px)
{
	size_t	 i;

	for (i = 0; i < px->px_nservers; i++)
		drop_idle(px->px_servers[i]);
}

void
upstream_free(struct proxy *px)
{
	size_t	 i;

	upstream_abort(px);
	for (i = 0; i < px->px_nservers; i++) {
		drop_idle(px->px_servers[i]);
		server_free(px->px_servers[i]);
	}
	free(px->px_servers);
	free(px->px_views);
	px->px_servers = NULL;
	px->px_views = NULL;
	px->px_nservers = 0;
}

/* Servers out of rotation now (for max_ejection_percent). */
static size_t
count_out(const struct proxy *px)
{
	size_t	 i, n = 0;

	for (i = 0; i < px->px_nservers; i++)
		n += health_out(&px->px_servers[i]->sv_health);
	return n;
}

/*
 * The outcome of a try on sv: recorded once per try, logged when it
 * changes the server's state. An ejection moves the requests still
 * connecting to sv to another server. A retired server is judged no more.
 */
static void
server_event(struct server *sv, enum health_event ev, int trial)
{
	struct proxy		*px = sv->sv_proxy;
	const struct health_conf *hc = &px->px_conf->backend.health;
	struct health		*h = &sv->sv_health;
	enum health_state	 was = h->hs_state;
	uint64_t		 now = now_usec();

	if (sv->sv_retired || !health_event(h, hc, ev, trial, count_out(px),
	    px->px_nservers, now))
		return;
	if (h->hs_state == HS_UP) {
		log_info("server %s: %s -> up (%s)%s", sv->sv_addr->text,
		    health_state_name(was),
		    trial ? "trial connect succeeded" : health_event_name(ev),
		    hc->slowstart_ms > 0 ? ", slow start" : "");
		shed_kick(px);
		return;
	}
	log_warnx("server %s: %s -> ejected (%s%s), for %llums",
	    sv->sv_addr->text, health_state_name(was), health_event_name(ev),
	    trial ? ", trial" : was == HS_UP && hc->max_fails > 1 ?
	    ", max_fails in a row" : "",
	    (unsigned long long)(health_wait(h, now) / 1000));
	move_connecting(sv);
	shed_kick(px);
}

/*
 * An active check's result on sv (check.c), logged when it changes the
 * server's state; a server that goes down loses its connects under way.
 */
void
upstream_check_result(struct server *sv, int ok, const char *why)
{
	const struct health_conf *hc = &sv->sv_proxy->px_conf->backend.health;
	struct health		*h = &sv->sv_health;
	enum health_state	 was = h->hs_state;

	if (sv->sv_retired)
		return;
	if (!health_check_result(h, hc, ok, now_usec())) {
		log_debug("%s: server %s: check %s: %s", __func__,
		    sv->sv_addr->text, ok ? "passed" : "failed", why);
		return;
	}
	if (h->hs_state == HS_UP) {
		log_info("server %s: %s -> up (check passed: %s, %u in a "
		    "row)%s", sv->sv_addr->text,
		    health_state_name(was), why, h->hs_check_ok,
		    hc->slowstart_ms > 0 ? ", slow start" : "");
		shed_kick(sv->sv_proxy);
		return;
	}
	log_warnx("server %s: %s -> down (check failed: %s, %u in a row)",
	    sv->sv_addr->text, health_state_name(was), why,
	    h->hs_check_fail);
	move_connecting(sv);
	shed_kick(sv->sv_proxy);
}

/*
 * sv went out of rotation: its idle connections go (they would serve no
 * request before it is back, and may be what failed), and nothing was sent
 * on a connect under way to it: those requests go elsewhere now.
 */
static void
move_connecting(struct server *sv)
{
	struct upconn_list	 moved;
	struct upconn		*uc;
	struct conn		*c;

	drop_idle(sv);
	TAILQ_INIT(&moved);
	TAILQ_CONCAT(&moved, &sv->sv_connecting, uc_entry);
	while ((uc = TAILQ_FIRST(&moved)) != NULL) {
		TAILQ_REMOVE(&moved, uc, uc_entry);
		TAILQ_INSERT_HEAD(&sv->sv_connecting, uc, uc_entry);
		c = uc->uc_conn;
		conn_upstream_req(c)->ur_server = NULL;
		conn_upstream_req(c)->ur_up = NULL;
		upconn_free(uc);
		server_put(sv);
		log_info("conn %llu: %s out of rotation while "
		    "connecting; trying another", (unsigned long long)conn_id(c),
		    sv->sv_addr->text);
		upstream_request(c);
	}
}


/*
 * Each server as the balancer sees it now: in rotation or not (an ejected
 * server whose trial is due is not: a probe tries it), its slow-start
 * weight, its limiter.
 */
static void
sample_views(struct proxy *px, uint64_t now)
{
	const struct health_conf *hc = &px->px_conf->backend.health;
	struct balance_view	*v;
	struct server		*sv;
	size_t			 i;

	for (i = 0; i < px->px_nservers; i++) {
		sv = px->px_servers[i];
		v = &px->px_views[i];
		v->usable = health_usable(&sv->sv_health, hc, now) == 2;
		v->weight = health_weight(&sv->sv_health, hc, now);
		v->inflight = limiter_inflight(sv->sv_lim);
		v->limit = limiter_limit(sv->sv_lim);
	}
}

/*
 * Round robin over the servers with a free slot (views sampled), slow
 * start thinning a server's turns by its weight as pick() does (its
 * credit): a server at weight w takes about w of its turns; if every
 * server with a free slot passed its turn, the first of them. -1 if none
 * has a free slot.
 */
static long
next_in_turn(struct proxy *px, size_t start)
{
	struct balance_view	*v = px->px_views;
	struct server		*sv;
	size_t			 n = px->px_nservers, tries;
	long			 k, first = -1;

	for (tries = 0; tries < n; tries++) {
		if ((k = balance_next(v, n, start)) == -1)
			break;
		if (first == -1)
			first = k;
		sv = px->px_servers[k];
		if (v[k].weight >= 1 || (sv->sv_credit += v[k].weight) >= 1) {
			if (v[k].weight < 1)
				sv->sv_credit -= 1;
			first = k;
			break;
		}
		/* its turn passed: look on from the next one */
		v[k].usable = 0;
		start = (size_t)k + 1;
	}
	return first;
}

/*
 * A slot for the next request, on the server the configured balance
 * picks among those in rotation with a free slot: roundrobin the next in
 * turn, leastconn the most free share of its limit. Returns 0 with *svp
 * holding the slot's server, or with *svp NULL when no server is in
 * rotation (the request goes on, to be refused at once); -1 if every
 * server in rotation is full (the request waits).
 */
int
upstream_acquire(struct proxy *px, uint64_t now, struct server **svp)
{
	size_t	 n = px->px_nservers, i, start;
	long	 k;
	int	 any = 0;

	*svp = NULL;
	if (n == 0 || px->px_views == NULL)
		return 0;
	sample_views(px, now);
	for (i = 0; i < n; i++)
		any |= px->px_views[i].usable;
	if (!any)
		return 0;
	start = px->px_rr_next % n;
	if (px->px_conf->backend.balance == BALANCE_LEASTCONN)
		k = balance_pick(px->px_views, n, start);
	else
		k = next_in_turn(px, start);
	if (k == -1 || limiter_acquire(px->px_servers[k]->sv_lim, now) == -1)
		return -1;
	/* equals take turns; round robin goes on after the one picked */
	px->px_rr_next = px->px_conf->backend.balance == BALANCE_LEASTCONN ?
	    start + 1 : (size_t)k + 1;
	*svp = px->px_servers[k];
	return 0;
}

/* A slot upstream_acquire() gave that no request came to use. */
void
upstream_unacquire(struct server *sv, uint64_t now)
{
	if (sv == NULL)
		return;
	limiter_release(sv->sv_lim, now, 0, LIMITER_IGNORED);
	server_done(sv);
}

/* The conn's request holds sv's slot (or none: NULL): it goes there. */
void
upstream_hold(struct conn *c, struct server *sv)
{
	conn_upstream_req(c)->ur_slot = sv;
}

/*
 * Dry run: a slot on the server in rotation with the least used share,
 * past its limit if need be, so that each limit is learned as it would
 * be; none if no server is in rotation.
 */
void
upstream_take(struct conn *c)
{
	struct proxy	*px = conn_proxy(c);
	struct server	*sv;
	long		 k;

	conn_upstream_req(c)->ur_slot = NULL;
	if (px->px_nservers == 0 || px->px_views == NULL)
		return;
	sample_views(px, now_usec());
	if ((k = balance_pick_any(px->px_views, px->px_nservers,
	    px->px_rr_next++ % px->px_nservers)) == -1)
		return;
	sv = px->px_servers[k];
	limiter_take(sv->sv_lim);
	conn_upstream_req(c)->ur_slot = sv;
}

/* The request is over: its slot goes back with what it taught. */
void
upstream_slot_release(struct conn *c, uint64_t now, uint64_t latency,
    enum limiter_outcome o)
{
	struct upstream_req	*ur = conn_upstream_req(c);
	struct server		*sv = ur->ur_slot;

	if (sv == NULL)
		return;
	ur->ur_slot = NULL;
	limiter_release(sv->sv_lim, now, latency, o);
	server_done(sv);
}

/*
 * The request goes to sv: its slot moves there from the server that
 * failed it (whose limiter learns the failure), or is taken there if it
 * had none. Past sv's limit if need be: a failover must not wait.
 */
static void
slot_move(struct upstream_req *ur, struct server *sv, uint64_t now)
{
	struct server	*old = ur->ur_slot;

	if (old == sv)
		return;
	limiter_take(sv->sv_lim);
	ur->ur_slot = sv;
	if (old == NULL)
		return;
	limiter_release(old->sv_lim, now, 0, old->sv_retired ?
	    LIMITER_IGNORED : LIMITER_DROPPED);
	server_done(old);
}

/*
 * The slots the queue may count on: the servers in rotation, slow start
 * weighing; all of them when none is (1 at least).
 */
unsigned int
upstream_limit(struct proxy *px)
{
	unsigned int	 n = 0, all = 0;
	size_t		 i;

	if (px->px_views == NULL)
		return 1;
	sample_views(px, now_usec());
	for (i = 0; i < px->px_nservers; i++) {
		n += balance_slots(&px->px_views[i]);
		all += px->px_views[i].limit;
	}
	return n > 0 ? n : all > 0 ? all : 1;
}

/* Slots held on every server. */
unsigned int
upstream_inflight(const struct proxy *px)
{
	unsigned int	 n = 0;
	size_t		 i;

	for (i = 0; i < px->px_nservers; i++)
		n += limiter_inflight(px->px_servers[i]->sv_lim);
	return n;
}

/* No server in rotation has a free slot (a request would wait). */
int
upstream_full(struct proxy *px)
{
	if (px->px_views == NULL)
		return 0;
	sample_views(px, now_usec());
	return balance_pick(px->px_views, px->px_nservers, 0) == -1;
}

/*
 * The limiters as one, for the gauges: limits and in-flight summed, the
 * latencies those of the server with the lowest limit (the one an
 * operator looks at first; each server's own are in its metrics).
 */
void
upstream_limiter_state(const struct proxy *px, struct limiter_state *st)
{
	struct limiter_state	 one;
	size_t			 i;
	double			 limit = 0, low = -1;
	unsigned int		 inflight = 0;
	uint64_t		 samples = 0, drops = 0;

	memset(st, 0, sizeof(*st));
	for (i = 0; i < px->px_nservers; i++) {
		limiter_state(px->px_servers[i]->sv_lim, &one);
		limit += one.limit;
		inflight += one.inflight;
		samples += one.samples;
		drops += one.drops;
		if (low < 0 || one.limit < low) {
			low = one.limit;
			*st = one;
		}
	}
	st->limit = limit;
	st->inflight = inflight;
	st->samples = samples;
	st->drops = drops;
}

/*
 * Which server a request tries next: the first try by the configured
 * balance among the servers that are up (slow start thinning a server's
 * share by its weight), a later one the next server up after the last
 * tried, never coming round to the first again. Starts the probes that are
 * due on the way. Returns an index, or SIZE_MAX when no server is left.
 */
static size_t
pick(struct proxy *px, struct upstream_req *ur, uint64_t now)
{
	const struct health_conf *hc = &px->px_conf->backend.health;
	size_t		 n = px->px_nservers, i, k, start, best = SIZE_MAX;
	size_t		 fallback = SIZE_MAX;
	struct server	*sv;
	double		 w, score, best_score = 0;
	int		 u;

	/* round robin goes on after the last server picked, up or not */
	if (ur->ur_tries == 0)
		start = px->px_rr_next % n;
	else
		start = (ur->ur_idx + 1) % n;
	for (k = 0; k < n; k++) {
		i = (start + k) % n;
		if (ur->ur_tries > 0 && i == ur->ur_first)
			break;
		sv = px->px_servers[i];
		if ((u = health_usable(&sv->sv_health, hc, now)) == 1)
			probe_start(sv, now);
		if (u != 2)
			continue;
		if (ur->ur_tries > 0)
			return i;
		if (fallback == SIZE_MAX)
			fallback = i;
		w = health_weight(&sv->sv_health, hc, now);
		if (px->px_conf->backend.balance == BALANCE_LEASTCONN) {
			score = (sv->sv_active + 1) / (w > 0.05 ? w : 0.05);
			if (best == SIZE_MAX || score < best_score) {
				best = i;
				best_score = score;
			}
		} else if (best == SIZE_MAX) {
			if (w >= 1)
				best = i;
			else if ((sv->sv_credit += w) >= 1) {
				sv->sv_credit -= 1;
				best = i;
			}
		}
	}
	if (best == SIZE_MAX)
		best = fallback;
	if (ur->ur_tries == 0)
		px->px_rr_next = px->px_conf->backend.balance ==
		    BALANCE_LEASTCONN || best == SIZE_MAX ? start + 1 :
		    best + 1;
	return best;
}

/*
 * A first try goes to the server whose slot the request holds, if it is
 * still in rotation (upstream_acquire() chose it by the balance); the
 * trials due are started on the way, as pick() does. SIZE_MAX: no such
 * server, pick() chooses.
 */
static size_t
slot_server(struct proxy *px, struct upstream_req *ur, uint64_t now)
{
	const struct health_conf *hc = &px->px_conf->backend.health;
	size_t		 i, idx = SIZE_MAX;
	struct server	*sv;

	if (ur->ur_tries > 0 || ur->ur_slot == NULL)
		return SIZE_MAX;
	for (i = 0; i < px->px_nservers; i++) {
		sv = px->px_servers[i];
		if (sv == ur->ur_slot && health_usable(&sv->sv_health, hc,
		    now) == 2)
			idx = i;
		else if (health_usable(&sv->sv_health, hc, now) == 1)
			probe_start(sv, now);
	}
	return idx;
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
	struct proxy		*px = conn_proxy(c);
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
		uc->uc_bev = bufferevent_openssl_socket_new(px->px_base, -1,
		    ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
		if (uc->uc_bev != NULL)
			bufferevent_openssl_set_allow_dirty_shutdown(
			    uc->uc_bev, 1);
		else
			SSL_free(ssl);
	} else
		uc->uc_bev = bufferevent_socket_new(px->px_base, -1,
		    BEV_OPT_CLOSE_ON_FREE);
	if (uc->uc_bev == NULL) {
 nomem:
		free(uc);
		log_warnx("conn %llu: out of memory",
		    (unsigned long long)conn_id(c));
		conn_upstream_failed(c, 502, MR_UPSTREAM_ERROR);
		return;
	}
	px->px_metrics.m_upstream_connections++;
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

/* Seconds until the first ejected server may be tried again; 1 at least. */
static uint64_t
no_server_retry_after(const struct proxy *px, uint64_t now)
{
	uint64_t	 w, min = UINT64_MAX;
	size_t		 i;

	for (i = 0; i < px->px_nservers; i++)
		if ((w = health_wait(&px->px_servers[i]->sv_health, now)) < min)
			min = w;
	w = (min + 999999) / 1000000;
	return w < 1 ? 1 : w;
}

/*
 * Give the conn's request a backend connection: pooled, else a new one. A
 * try after the first goes to the next server up, within the retry budget.
 */
void
upstream_request(struct conn *c)
{
	struct upstream_req	*ur = conn_upstream_req(c);
	struct proxy	*px = conn_proxy(c);
	const struct backend_conf *bc = &px->px_conf->backend;
	struct server	*sv;
	struct upconn	*uc;
	uint64_t	 now = now_usec();
	size_t		 idx;

	if (ur->ur_tries == 0 && !ur->ur_retried)
		retry_request(&px->px_retry, now);
	if ((idx = slot_server(px, ur, now)) == SIZE_MAX)
		idx = pick(px, ur, now);
	if (idx == SIZE_MAX) {
		if (ur->ur_tries > 0) {
			conn_upstream_failed(c, 502, MR_UPSTREAM_ERROR);
			return;
		}
		log_debug("conn %llu: no backend server is up",
		    (unsigned long long)conn_id(c));
		conn_set_retry_after(c, no_server_retry_after(px, now));
		conn_upstream_failed(c, 503, MR_NO_SERVER);
		return;
	}
	if (ur->ur_tries > 0 && !retry_allow(&px->px_retry, bc->retry_budget,
	    bc->retry_min_per_second, now)) {
		log_info("conn %llu: retry budget spent; not trying %s",
		    (unsigned long long)conn_id(c),
		    px->px_servers[idx]->sv_addr->text);
		conn_upstream_failed(c, 502, MR_UPSTREAM_ERROR);
		return;
	}
	if (ur->ur_tries == 0)
		ur->ur_first = idx;
	ur->ur_tries++;
	ur->ur_idx = idx;
	ur->ur_judged = 0;
	ur->ur_t_try = now;
	sv = px->px_servers[idx];
	slot_move(ur, sv, now);
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
	struct proxy		*px = conn_proxy(c);

	if (px->px_nservers < 2 || ur->ur_tries >= px->px_nservers)
		return -1;
	upstream_release(c, 0);
	upstream_request(c);
	return 0;
}

/* The probe of an ejected server whose back-off is over: a TCP connect. */
static void
probe_start(struct server *sv, uint64_t now)
{
	struct proxy	*px = sv->sv_proxy;
	const struct config *conf = px->px_conf;
	struct upconn	*uc;
	struct timeval	 ctv = msec_tv(conf->backend.connect_timeout_ms);
	SSL		*ssl = NULL;

	if (sv->sv_probe != NULL || sv->sv_retired)
		return;
	if ((uc = calloc(1, sizeof(*uc))) == NULL)
		return;
	/* over TLS, the handshake (certificate checks included) too */
	if (conf->backend.tls) {
		if ((ssl = tls_connect(px->px_gen->g_tls, conf,
		    sv->sv_addr)) != NULL && (uc->uc_bev =
		    bufferevent_openssl_socket_new(px->px_base, -1, ssl,
		    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE)) == NULL)
			SSL_free(ssl);
		if (uc->uc_bev != NULL)
			bufferevent_openssl_set_allow_dirty_shutdown(uc->uc_bev,
			    1);
	} else
		uc->uc_bev = bufferevent_socket_new(px->px_base, -1,
		    BEV_OPT_CLOSE_ON_FREE);
	if (uc->uc_bev == NULL) {
		free(uc);
		return;
	}
	uc->uc_server = sv;
	uc->uc_state = UC_PROBE;
	sv->sv_probe = uc;
	health_trial_start(&sv->sv_health, now);
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

static void
upconn_pool(struct upconn *uc, const struct backend_conf *bc,
    const struct timeval *idle)
{
	struct server	*sv = uc->uc_server;

	uc->uc_state = UC_IDLE;
	bufferevent_setwatermark(uc->uc_bev, EV_WRITE, 0, 0);
	bufferevent_set_timeouts(uc->uc_bev, idle, NULL);
	bufferevent_enable(uc->uc_bev, EV_READ);
	TAILQ_INSERT_HEAD(&sv->sv_idle, uc, uc_entry);
	sv->sv_nidle++;
	if (sv->sv_nidle > bc->keepalive)
		upconn_free(TAILQ_LAST(&sv->sv_idle, upconn_list));
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
	struct proxy	*px = conn_proxy(c);
	const struct backend_conf *bc = &conn_gen(c)->g_conf->backend;
	struct timeval	 tv = msec_tv(bc->keepalive_timeout_ms);

	ur->ur_server = NULL;
	ur->ur_up = NULL;
	if (uc != NULL) {
		uc->uc_conn = NULL;
		if (!reuse || bc->keepalive == 0 || px->px_stopping ||
		    uc->uc_server->sv_retired || uc->uc_state != UC_BUSY ||
		    health_out(&uc->uc_server->sv_health) ||
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
			    "timed out" : upconn_why(uc, error, why, sizeof(why)));
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
		sv->sv_proxy->px_metrics.m_upstream_connect_failures++;
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
