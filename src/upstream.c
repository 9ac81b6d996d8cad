/*
 * upstream.c: backend servers, their pools of kept-alive connections, and
 * connecting with failover.
 *
 * A backend connection (struct upconn) is in one of three states: being
 * connected for a request (UC_CONNECTING), serving one (UC_BUSY), or idle
 * in its server's pool (UC_IDLE). It goes back to the pool only after a
 * complete response to a completely sent request; anything else closes it.
 * An idle connection that becomes readable (data or EOF) or stays idle for
 * keepalive_timeout is closed. A connect failure tries the next server:
 * nothing has been sent yet, so nothing can be sent twice.
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
#include "log.h"

static void	up_readcb(struct bufferevent *, void *);
static void	up_writecb(struct bufferevent *, void *);
static void	up_eventcb(struct bufferevent *, short, void *);


static struct server *
server_new(struct worker *w, const struct config_addr *addr)
{
	struct server	*sv;

	if ((sv = calloc(1, sizeof(*sv))) == NULL)
		return NULL;
	sv->sv_worker = w;
	sv->sv_addr = addr;
	TAILQ_INIT(&sv->sv_idle);
	return sv;
}

static void
upconn_free(struct upconn *uc)
{
	struct server	*sv = uc->uc_server;

	if (uc->uc_state == UC_IDLE) {
		TAILQ_REMOVE(&sv->sv_idle, uc, uc_entry);
		sv->sv_nidle--;
	}
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
	SSL_SESSION_free(sv->sv_tls_sess);
	free(sv);
}

/* A request leaves a server: a retired one goes with its last request. */
static void
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

	upstream_abort(w);
	w->w_servers_next = calloc(bc->nservers, sizeof(struct server *));
	w->w_servers_from = calloc(bc->nservers, sizeof(size_t));
	if (w->w_servers_next == NULL || w->w_servers_from == NULL)
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
		    (w->w_servers_next[i] = server_new(w,
		    &bc->servers[i])) == NULL)
			goto fail;
	}
	return 0;
 fail:
	upstream_abort(w);
	return -1;
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

/* The first server to try, by the configured balance. */
static size_t
pick_first(struct worker *w)
{
	size_t	 i, k, best;

	best = w->w_rr_next % w->w_nservers;
	w->w_rr_next++;
	if (w->w_conf->backend.balance != BALANCE_LEASTCONN)
		return best;
	for (k = 1; k < w->w_nservers; k++) {
		i = (best + k) % w->w_nservers;
		if (w->w_servers[i]->sv_active <
		    w->w_servers[best]->sv_active)
			best = i;
	}
	return best;
}

/* A connection starts serving a request; conn sets its timeouts. */
static void
upconn_set_busy(struct upconn *uc, struct conn *c)
{
	int		 on = 1;

	if (uc->uc_state == UC_CONNECTING)
		setsockopt(bufferevent_getfd(uc->uc_bev), IPPROTO_TCP,
		    TCP_NODELAY, &on, sizeof(on));
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
		log_warnx("%s: conn %llu: out of memory", __func__,
		    (unsigned long long)conn_id(c));
		conn_upstream_failed(c, 502, MR_UPSTREAM_ERROR);
		return;
	}
	w->w_metrics.m_upstream_connections++;
	uc->uc_server = sv;
	uc->uc_conn = c;
	uc->uc_state = UC_CONNECTING;
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

/* Give the conn's request a backend connection: pooled, else a new one. */
void
upstream_request(struct conn *c)
{
	struct upstream_req	*ur = conn_upstream_req(c);
	struct worker	*w = conn_worker(c);
	struct server	*sv;
	struct upconn	*uc;
	size_t		 idx;

	if (ur->ur_tries >= w->w_nservers) {
		conn_upstream_failed(c, 502, MR_UPSTREAM_ERROR);
		return;
	}
	if (ur->ur_tries == 0)
		idx = pick_first(w);
	else
		idx = (size_t)(ur->ur_idx + 1) % w->w_nservers;
	ur->ur_tries++;
	ur->ur_idx = idx;
	sv = w->w_servers[idx];
	ur->ur_server = sv;
	ur->ur_name = sv->sv_addr->text;
	sv->sv_active++;

	if (!ur->ur_retried && (uc = TAILQ_FIRST(&sv->sv_idle)) != NULL) {
		TAILQ_REMOVE(&sv->sv_idle, uc, uc_entry);
		sv->sv_nidle--;
		upconn_set_busy(uc, c);
		relay_upstream_ready(c, uc);
		return;
	}
	upconn_connect(c, sv);
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
 * if reuse is set and there is room, else it is closed.
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

	ur->ur_server = NULL;
	ur->ur_up = NULL;
	if (uc != NULL) {
		uc->uc_conn = NULL;
		if (!reuse || bc->keepalive == 0 || w->w_stopping ||
		    uc->uc_server->sv_retired || uc->uc_state != UC_BUSY ||
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
	case UC_CONNECTING:
		if (what & BEV_EVENT_CONNECTED) {
			upconn_set_busy(uc, c);
			relay_upstream_ready(c, uc);
			break;
		}
		sv->sv_worker->w_metrics.m_upstream_connect_failures++;
		log_warnx("%s: conn %llu: connect to %s: %s", __func__,
		    (unsigned long long)conn_id(c), sv->sv_addr->text,
		    (what & BEV_EVENT_TIMEOUT) ? "timed out" :
		    upconn_why(uc, error, why, sizeof(why)));
		conn_upstream_req(c)->ur_server = NULL;
		conn_upstream_req(c)->ur_up = NULL;
		upconn_free(uc);
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
