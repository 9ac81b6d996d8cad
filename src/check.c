/*
 * check.c: active health checks of the backend servers, as HAProxy's
 * "check": every check_interval (jittered by +-10%), a request of
 * health_check's to the server on a connection of its own (TLS when the
 * backend is), its response head parsed by the same parser as a proxied
 * response, its status compared with check_status; the result goes to
 * upstream_check_result(), which rises and falls the server (health.c).
 *
 * Invariants:
 * - At most one check per server is in flight: a round that finds the
 *   last check still running is skipped (check_timeout <= check_interval
 *   makes that rare). A check ends by its response head, a failure, or
 *   check_timeout, whichever comes first; nothing else of it is read.
 * - A server that a reload keeps keeps its check and schedule; a new
 *   server's first check comes at a random point of its first interval,
 *   so neither a start nor a reload sends a burst of checks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/util.h>

#include <openssl/err.h>

#include "spillway.h"
#include "health.h"
#include "log.h"

#define CHECK_HEAD_MAX	16384	/* a check's response head, at most */

struct check {
	struct server		*ck_server;
	struct event		*ck_next;	/* the next round */
	struct event		*ck_deadline;	/* check_timeout of this one */
	struct bufferevent	*ck_bev;	/* in flight, or NULL */
	struct http_head	 ck_head;
};

static void	check_round(evutil_socket_t, short, void *);

/* A random share of msec, from lo to hi thousandths. */
static uint64_t
jitter(uint64_t msec, unsigned int lo, unsigned int hi)
{
	uint32_t	 r;

	evutil_secure_rng_get_bytes(&r, sizeof(r));
	return msec * (lo + r % (hi - lo + 1)) / 1000;
}

static void
schedule(struct check *ck, uint64_t msec)
{
	struct timeval	 tv = msec_tv(msec);

	evtimer_add(ck->ck_next, &tv);
}

/* The check in flight ends: ok or not, why for the log and /status. */
static void
check_end(struct check *ck, int ok, const char *why)
{
	struct server	*sv = ck->ck_server;

	evtimer_del(ck->ck_deadline);
	if (ck->ck_bev != NULL) {
		tls_release(bufferevent_openssl_get_ssl(ck->ck_bev), 0);
		bufferevent_free(ck->ck_bev);
		ck->ck_bev = NULL;
	}
	snprintf(sv->sv_check_last, sizeof(sv->sv_check_last), "%s", why);
	upstream_check_result(sv, ok, why);
}

static void
check_readcb(struct bufferevent *bev, void *arg)
{
	struct check	*ck = arg;
	const struct backend_conf *bc = &ck->ck_server->sv_worker->w_conf->backend;
	struct evbuffer	*in = bufferevent_get_input(bev);
	char		 why[64];
	const char	*data;
	size_t		 len;
	ssize_t		 r;

	(void)tls_read_pending(bev);	/* records read ahead (tls.c) */
	for (;;) {
		if ((len = evbuffer_get_length(in)) == 0)
			return;
		if (len > CHECK_HEAD_MAX)
			len = CHECK_HEAD_MAX;
		data = (const char *)evbuffer_pullup(in, (ssize_t)len);
		r = http_parse_response(&ck->ck_head, data, len,
		    CHECK_HEAD_MAX, HTTP_M_GET);
		if (r == HTTP_PARSE_AGAIN && len >= CHECK_HEAD_MAX) {
			check_end(ck, 0, "response head too large");
			return;
		}
		if (r == HTTP_PARSE_AGAIN)
			return;
		if (r == HTTP_PARSE_ERROR) {
			snprintf(why, sizeof(why), "invalid response: %s",
			    ck->ck_head.error_what ? ck->ck_head.error_what :
			    "?");
			check_end(ck, 0, why);
			return;
		}
		if (ck->ck_head.status >= 200)
			break;
		/* 1xx: the final answer follows */
		evbuffer_drain(in, (size_t)r);
		http_head_reset(&ck->ck_head);
	}
	snprintf(why, sizeof(why), "status %d", ck->ck_head.status);
	check_end(ck, health_check_status(ck->ck_head.status,
	    bc->check_status), why);
}

static void
check_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct check	*ck = arg;
	SSL		*ssl = bufferevent_openssl_get_ssl(bev);
	unsigned long	 e, err = 0;
	int		 error = EVUTIL_SOCKET_ERROR();
	char		 buf[128], why[160];

	if (what & BEV_EVENT_CONNECTED)
		return;	/* the request was queued: it goes out now */
	if (what & BEV_EVENT_EOF) {
		check_end(ck, 0, "closed before answering");
		return;
	}
	while (ssl != NULL && (e = bufferevent_get_openssl_error(bev)) != 0)
		err = e;
	snprintf(why, sizeof(why), "%s", ssl != NULL && (err != 0 ||
	    SSL_get_verify_result(ssl) != X509_V_OK) ?
	    tls_why(ssl, err, buf, sizeof(buf)) :
	    evutil_socket_error_to_string(error));
	check_end(ck, 0, why);
}

static void
check_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	check_end(arg, 0, "timed out");
}

/* One round: start a check unless one is still in flight; plan the next. */
static void
check_round(evutil_socket_t fd, short what, void *arg)
{
	struct check		*ck = arg;
	struct server		*sv = ck->ck_server;
	struct worker		*w = sv->sv_worker;
	const struct config	*conf = w->w_conf;
	const struct backend_conf *bc = &conf->backend;
	struct timeval		 tv = msec_tv(bc->check_timeout_ms);
	char			 req[2048];
	const char		*why = "cannot make the request";
	long			 n;
	SSL			*ssl;

	(void)fd;
	(void)what;
	schedule(ck, jitter(bc->check_interval_ms, 900, 1100));
	if (ck->ck_bev != NULL) {
		log_debug("%s: server %s: last check still running; skipped",
		    __func__, sv->sv_addr->text);
		return;
	}
	memset(&ck->ck_head, 0, sizeof(ck->ck_head));
	if ((n = health_check_request(bc->health_check.text,
	    sv->sv_addr->text, req, sizeof(req), &why)) == -1)
		goto fail;
	why = "out of memory";
	if (bc->tls) {
		if ((ssl = tls_connect(w->w_gen->g_tls, conf,
		    sv->sv_addr)) == NULL)
			goto fail;
		if ((ck->ck_bev = bufferevent_openssl_socket_new(w->w_base,
		    -1, ssl, BUFFEREVENT_SSL_CONNECTING,
		    BEV_OPT_CLOSE_ON_FREE)) == NULL) {
			SSL_free(ssl);
			goto fail;
		}
		bufferevent_openssl_set_allow_dirty_shutdown(ck->ck_bev, 1);
	} else if ((ck->ck_bev = bufferevent_socket_new(w->w_base, -1,
	    BEV_OPT_CLOSE_ON_FREE)) == NULL)
		goto fail;
	bufferevent_setcb(ck->ck_bev, check_readcb, NULL, check_eventcb, ck);
	if (evbuffer_add(bufferevent_get_output(ck->ck_bev), req,
	    (size_t)n) == -1)
		goto fail;
	bufferevent_enable(ck->ck_bev, EV_READ | EV_WRITE);
	evtimer_add(ck->ck_deadline, &tv);
	if (bufferevent_socket_connect(ck->ck_bev,
	    (const struct sockaddr *)&sv->sv_addr->ss,
	    (int)sv->sv_addr->sslen) == -1) {
		check_end(ck, 0, evutil_socket_error_to_string(
		    EVUTIL_SOCKET_ERROR()));
		return;
	}
	return;
 fail:
	check_end(ck, 0, why);
}

/*
 * Start checking sv: the first round at a random point of the first
 * interval. Returns 0, or -1 if out of memory (the server goes unchecked).
 */
int
check_start(struct server *sv, const struct config *conf)
{
	struct check	*ck;
	struct worker	*w = sv->sv_worker;

	if ((ck = calloc(1, sizeof(*ck))) == NULL)
		return -1;
	ck->ck_server = sv;
	if ((ck->ck_next = evtimer_new(w->w_base, check_round,
	    ck)) == NULL || (ck->ck_deadline = evtimer_new(w->w_base,
	    check_timeout, ck)) == NULL) {
		check_free(ck);
		return -1;
	}
	sv->sv_check = ck;
	schedule(ck, jitter(conf->backend.check_interval_ms, 0, 1000));
	return 0;
}

/* Stop and free a server's checks (a check in flight is cut). */
void
check_free(struct check *ck)
{
	if (ck == NULL)
		return;
	if (ck->ck_bev != NULL) {
		tls_release(bufferevent_openssl_get_ssl(ck->ck_bev), 0);
		bufferevent_free(ck->ck_bev);
	}
	if (ck->ck_next != NULL)
		event_free(ck->ck_next);
	if (ck->ck_deadline != NULL)
		event_free(ck->ck_deadline);
	free(ck);
}
