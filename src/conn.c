/*
 * conn.c: a client connection, from accept to close: the state machine,
 * reading the request head, our own answers. What happens to a request
 * once its head is read (admission, faults, the limiter) is
 * conn_start.c's; moving the bytes of a proxied request is relay.c's; the
 * heads we write are head.c's; the access log line is conn_log.c's.
 *
 * States (enum conn_state): CS_HEAD reads a request head; CS_CONNECT waits
 * for a backend connection; CS_PROXY streams the request body up and the
 * response down; CS_CLOSING writes what is left, half-closes and lingers
 * so that a final response is not destroyed by a reset; CS_DEAD means torn
 * down, the struct freed on the next loop turn.
 *
 * Invariants:
 * - One request at a time. Bytes after a complete request (pipelining) stay
 *   in the input buffer, bounded by its read watermark, until the response
 *   is done; then they are parsed as a new request, never as a body.
 * - Memory is bounded by watermarks: neither side is read while its peer's
 *   output holds SPILLWAY_WM_HIGH bytes or more; it resumes when that output
 *   drains to SPILLWAY_WM_LOW.
 * - A connection whose request body was not consumed to its end is never
 *   reused: its stream cannot be trusted.
 * - conn_close() is the only place a connection is torn down. Code that
 *   may have closed the connection checks for CS_DEAD before touching it.
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>

#include <openssl/err.h>

#include "head.h"
#include "spillway.h"
#include "log.h"

#define CONN_LINGER_MSEC	2000

static void	client_readcb(struct bufferevent *, void *);
static void	client_writecb(struct bufferevent *, void *);
static void	client_eventcb(struct bufferevent *, short, void *);
static void	timer_cb(evutil_socket_t, short, void *);
static void	conn_read_head(struct conn *);

const char *
conn_state_name(enum conn_state state)
{
	switch (state) {
	case CS_HEAD:
		return "head";
	case CS_DELAYED:
		return "delayed";
	case CS_QUEUED:
		return "queued";
	case CS_CONNECT:
		return "connect";
	case CS_PROXY:
		return "proxy";
	case CS_DISCARD:
		return "discard";
	case CS_CLOSING:
		return "closing";
	case CS_DEAD:
		return "dead";
	}
	return "unknown";
}

/* What upstream.c and shed.c may ask of a connection. */
struct proxy *
conn_proxy(const struct conn *c)
{
	return c->cn_proxy;
}

struct worker *
conn_worker(const struct conn *c)
{
	return c->cn_worker;
}

struct generation *
conn_gen(const struct conn *c)
{
	return c->cn_gen;
}

uint64_t
conn_id(const struct conn *c)
{
	return c->cn_id;
}

struct upstream_req *
conn_upstream_req(struct conn *c)
{
	return &c->cn_ur;
}

struct shed_ticket *
conn_shed_ticket(struct conn *c)
{
	return &c->cn_st;
}

/* The priority of the request's class. */
unsigned int
conn_priority(const struct conn *c)
{
	return c->cn_conf->classes[c->cn_class].priority;
}

/* A note for the access log's reason field when there is no reason. */
void
conn_note(struct conn *c, const char *note)
{
	c->cn_note = note;
}

/* A refusal's Retry-After, in whole seconds. */
void
conn_set_retry_after(struct conn *c, uint64_t seconds)
{
	c->cn_retry_after = seconds;
}

/* What a finished request tells the limiter about the backend. */
enum limiter_outcome
conn_outcome(const struct conn *c, uint64_t now, uint64_t *latency)
{
	if (c->cn_t_resp_head != 0) {
		*latency = c->cn_t_resp_head - c->cn_t_upstream;
		/* the backend itself says it is overloaded */
		if (c->cn_status == 503 || c->cn_status == 504)
			return LIMITER_DROPPED;
		if (c->cn_status >= 500)
			return LIMITER_FAILED;
		return LIMITER_SUCCESS;
	}
	*latency = now - c->cn_t_upstream;
	if (c->cn_reason != MR_NONE && (c->cn_status == 502 ||
	    c->cn_status == 504))
		return LIMITER_DROPPED;	/* connect failure, timeout */
	return LIMITER_IGNORED;
}

void
conn_set_state(struct conn *c, enum conn_state state)
{
	log_debug("%s: conn %llu: %s -> %s", __func__,
	    (unsigned long long)c->cn_id, conn_state_name(c->cn_state),
	    conn_state_name(state));
	c->cn_state = state;
}

void
conn_arm_timer(struct conn *c, uint64_t msec)
{
	struct timeval	 tv = msec_tv(msec);

	evtimer_add(c->cn_timer, &tv);
}

/* Free what a connection holds of libevent's; each may still be NULL. */
static void
conn_free_io(struct conn *c)
{
	if (c->cn_bev != NULL) {
		tls_release(bufferevent_openssl_get_ssl(c->cn_bev),
		    !c->cn_tls_abort);
		bufferevent_free(c->cn_bev);
	}
	if (c->cn_timer != NULL)
		event_free(c->cn_timer);
	if (c->cn_uphead != NULL)
		evbuffer_free(c->cn_uphead);
	if (c->cn_upend != NULL)
		evbuffer_free(c->cn_upend);
	if (c->cn_cpend != NULL)
		evbuffer_free(c->cn_cpend);
	c->cn_bev = NULL;
	c->cn_timer = NULL;
	c->cn_uphead = NULL;
	c->cn_upend = NULL;
	c->cn_cpend = NULL;
}

/* Room for a whole head plus one read, to tell a head that is too large. */
void
conn_set_read_limit(struct conn *c)
{
	bufferevent_setwatermark(c->cn_bev, EV_READ, 0,
	    c->cn_conf->proxy.max_header_size + 4096);
}

/*
 * A new client: set up its buffers and wait for a request head. On a TLS
 * listener the handshake comes first, bounded by handshake_timeout; the
 * header timeout starts when it is done.
 */
void
conn_accept(struct worker *w, evutil_socket_t fd, struct sockaddr *sa,
    int salen, int tls)
{
	const struct config	*conf = w->w_conf;
	struct conn		*c;
	SSL			*ssl = NULL;
	int			 on = 1;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		goto fail;
	/* unique across workers; 1, 2, 3... with one */
	c->cn_id = ++w->w_next_id * w->w_proxy->px_nworkers - w->w_id;
	c->cn_proxy = w->w_proxy;
	c->cn_worker = w;
	c->cn_class = SIZE_MAX;	/* not classified yet */
	c->cn_reason = MR_NONE;
	c->cn_fault_ok = -1;
	if (tls) {
		if ((ssl = tls_accept(w->w_gen->g_tls)) == NULL)
			goto fail;
		SSL_set_app_data(ssl, c);
		c->cn_bev = bufferevent_openssl_socket_new(w->w_base, fd,
		    ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
		if (c->cn_bev == NULL)
			goto fail;
		ssl = NULL;	/* the bufferevent's now */
		bufferevent_openssl_set_allow_dirty_shutdown(c->cn_bev, 1);
		(void)bufferevent_priority_set(c->cn_bev,
		    SPILLWAY_PRIO_HANDSHAKE);
		c->cn_tls = CONN_TLS_HANDSHAKE;
	} else
		c->cn_bev = bufferevent_socket_new(w->w_base, fd,
		    BEV_OPT_CLOSE_ON_FREE);
	c->cn_timer = evtimer_new(w->w_base, timer_cb, c);
	c->cn_uphead = evbuffer_new();
	c->cn_upend = evbuffer_new();
	c->cn_cpend = evbuffer_new();
	if (c->cn_bev == NULL || c->cn_timer == NULL || c->cn_uphead == NULL ||
	    c->cn_upend == NULL || c->cn_cpend == NULL)
		goto fail;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	addr_format(sa, c->cn_peer_ip, sizeof(c->cn_peer_ip), c->cn_peer,
	    sizeof(c->cn_peer));
	snprintf(c->cn_client_ip, sizeof(c->cn_client_ip), "%s",
	    c->cn_peer_ip);
	c->cn_gen = gen_get(w->w_gen);
	c->cn_conf = c->cn_gen->g_conf;
	w->w_metrics.m_client_connections++;

	bufferevent_setcb(c->cn_bev, client_readcb, client_writecb,
	    client_eventcb, c);
	conn_set_read_limit(c);
	c->cn_req_done = 1;		/* no request, so no body to wait for */
	conn_set_timeouts(c);
	bufferevent_enable(c->cn_bev, EV_READ | EV_WRITE);

	TAILQ_INSERT_TAIL(&w->w_conns, c, cn_entry);
	w->w_nconns++;
	listener_update(w);
	conn_arm_timer(c, tls ? conf->tls.handshake_timeout_ms :
	    conf->proxy.header_timeout_ms);
	log_debug("%s: conn %llu from %s%s", __func__,
	    (unsigned long long)c->cn_id, c->cn_peer, tls ? " (TLS)" : "");
	return;
 fail:
	log_warnx("out of memory, dropping a connection");
	SSL_free(ssl);
	if (c == NULL || c->cn_bev == NULL)
		close(fd);
	if (c != NULL) {
		conn_free_io(c);
		free(c);
	}
}

/*
 * OpenSSL's info callback on client connections. A renegotiation attempt
 * (refused by SSL_OP_NO_RENEGOTIATION with a no_renegotiation alert, or,
 * should a peer get one started, a new handshake on an established TLS 1.2
 * connection) marks the connection to be closed on the next loop turn,
 * outside OpenSSL's call stack.
 */
void
conn_tls_info(const SSL *ssl, int where, int ret)
{
	struct conn	*c = SSL_get_app_data(ssl);
	struct timeval	 zero = { 0, 0 };

	if (c == NULL || c->cn_state == CS_DEAD || c->cn_tls_abort)
		return;
	if (((where & SSL_CB_WRITE_ALERT) &&
	    (ret & 0xff) == SSL_AD_NO_RENEGOTIATION) ||
	    ((where & SSL_CB_HANDSHAKE_START) && c->cn_tls == CONN_TLS_DONE &&
	    SSL_version(ssl) < TLS1_3_VERSION)) {
		c->cn_tls_abort = 1;
		c->cn_worker->w_metrics.m_tls_renegotiations++;
		evtimer_add(c->cn_timer, &zero);
	}
}

static void
client_readcb(struct bufferevent *bev, void *arg)
{
	struct conn	*c = arg;

	if (c->cn_tls_lowprio)
		c->cn_tls_lowprio = bufferevent_priority_set(bev,
		    SPILLWAY_PRIO_DEFAULT) == -1;
	if (c->cn_tls)
		(void)tls_read_pending(bev);	/* records read ahead */
	switch (c->cn_state) {
	case CS_HEAD:
		conn_read_head(c);
		break;
	case CS_PROXY:
		if (!c->cn_req_done)
			relay_request(c);
		break;
	case CS_DISCARD:
		relay_discard(c);
		break;
	case CS_CLOSING:
		evbuffer_drain(bufferevent_get_input(bev),
		    evbuffer_get_length(bufferevent_get_input(bev)));
		break;
	case CS_DELAYED:
	case CS_QUEUED:
	case CS_CONNECT:
	case CS_DEAD:
		break;
	}
}

static void
conn_read_head(struct conn *c)
{
	const struct proxy_conf	*pc = &c->cn_conf->proxy;
	struct evbuffer		*in = bufferevent_get_input(c->cn_bev);
	size_t			 len, n;
	const char		*data;
	ssize_t			 r;

	if ((len = evbuffer_get_length(in)) == 0)
		return;
	/*
	 * Answers to pipelined requests are piling up unread: read the next
	 * head only once they drain (client_writecb), or a client that never
	 * reads grows our memory by a refusal per request it sends.
	 */
	if (relay_queued(c->cn_bev, c->cn_cpend) >= SPILLWAY_WM_HIGH) {
		bufferevent_disable(c->cn_bev, EV_READ);
		bufferevent_setwatermark(c->cn_bev, EV_WRITE, SPILLWAY_WM_LOW,
		    0);
		c->cn_req_paused = 1;
		return;
	}
	if (!c->cn_head_bytes) {
		c->cn_head_bytes = 1;
		if (c->cn_requests > 0) {
			evtimer_del(c->cn_timer);
			conn_arm_timer(c, pc->header_timeout_ms);
		}
	}
	n = len < pc->max_header_size ? len : pc->max_header_size;
	if ((data = (const char *)evbuffer_pullup(in, (ssize_t)n)) == NULL) {
		conn_close(c, "out of memory");
		return;
	}
	r = http_parse_request(&c->cn_req, data, n, pc->max_header_size);
	if (r == HTTP_PARSE_AGAIN && len >= pc->max_header_size) {
		c->cn_req.error = c->cn_req.line_end == 0 ? 414 : 431;
		c->cn_req.error_what = "request head too large";
		r = HTTP_PARSE_ERROR;
	}
	if (r == HTTP_PARSE_AGAIN)
		return;
	if (r == HTTP_PARSE_ERROR) {
		log_info("conn %llu from %s: %d: %s",
		    (unsigned long long)c->cn_id, c->cn_peer, c->cn_req.error,
		    c->cn_req.error_what ? c->cn_req.error_what : "invalid");
		if (c->cn_req.method_len > 0 && c->cn_req.target_len > 0)
			conn_save_reqline(c, &c->cn_req);
		else
			snprintf(c->cn_reqline, sizeof(c->cn_reqline), "%s", "- -");
		c->cn_t_start = now_usec();
		c->cn_keepalive = 0;
		conn_respond(c, c->cn_req.error, MR_NONE, 1);
		return;
	}
	conn_start_request(c, (size_t)r);
}


/*
 * The request is all sent: from now on the backend has response_timeout
 * between reads to answer, and the client's reads are no longer timed
 * (it may wait as long as the backend takes). While a body is still
 * coming, a client that sends nothing for idle_timeout is cut off.
 */
void
conn_set_timeouts(struct conn *c)
{
	const struct config	*conf = c->cn_conf;
	struct timeval		 idle = msec_tv(conf->proxy.idle_timeout_ms);
	struct timeval		 resp =
			    msec_tv(conf->backend.response_timeout_ms);
	int			 reading = !c->cn_req_done;

	/* the client's change rarely: re-adding its events costs */
	if (reading + 1 != c->cn_tmode || conf != c->cn_tconf) {
		bufferevent_set_timeouts(c->cn_bev, reading ? &idle : NULL,
		    &idle);
		c->cn_tmode = reading + 1;
		c->cn_tconf = conf;
	}
	if (c->cn_ur.ur_up != NULL)
		bufferevent_set_timeouts(c->cn_ur.ur_up->uc_bev, reading ? NULL :
		    &resp, &resp);
}

/*
 * No response can come from a backend (none reachable, invalid or no
 * answer, or the request body was refused on the way): answer ourselves
 * unless a response is already under way, in which case the client is cut
 * off, the only honest signal left.
 */
void
conn_upstream_failed(struct conn *c, int status, enum metrics_reason reason)
{
	c->cn_up_reuse = 0;
	if (c->cn_resp_state == RS_BODY) {
		conn_close(c, "response cut short");
		return;
	}
	upstream_release(c, 0);
	/* a client error in the body leaves the stream untrustworthy */
	conn_respond(c, status, reason, status < 500);
}

/* The head's share of a response we made: up to its blank line. */
static size_t
own_head_len(const char *buf, size_t n)
{
	size_t	 i;

	for (i = 0; i + 4 <= n; i++)
		if (memcmp(buf + i, "\r\n\r\n", 4) == 0)
			return i + 4;
	return n;
}

/*
 * Our own response: short, honest, with the reason where there is one. If
 * the request's body is still coming and the stream can be trusted
 * (close unset), the body is read and thrown away, up to
 * SPILLWAY_DISCARD_MAX bytes, before the next request is read; otherwise
 * the connection closes after the response.
 */
void
conn_respond(struct conn *c, int status, enum metrics_reason reason,
    int close)
{
	struct evbuffer	*out = c->cn_cpend;
	char		 buf[HEAD_OWN_MAX];
	ssize_t		 n;

	/* a client waiting for 100 Continue may never send its body */
	if (close || (!c->cn_req_done &&
	    ((c->cn_req.flags & HTTP_F_EXPECT_CONTINUE) ||
	    (c->cn_req_body.framing == HTTP_FRAMING_LENGTH &&
	    c->cn_req_body.remaining > SPILLWAY_DISCARD_MAX))))
		c->cn_keepalive = 0;
	n = head_own(buf, sizeof(buf), status, reason, c->cn_retry_after,
	    c->cn_keepalive, c->cn_version_minor, c->cn_method == HTTP_M_HEAD);
	if (n == -1 || evbuffer_add(out, buf, (size_t)n) == -1) {
		conn_close(c, "cannot build a response");
		return;
	}
	c->cn_resp_bytes += (uint64_t)n;
	c->cn_resp_head_bytes += own_head_len(buf, (size_t)n);
	c->cn_status = status;
	c->cn_reason = reason;
	c->cn_resp_state = RS_DONE;
	relay_send(c->cn_bev, out);
	if (c->cn_req_done || !c->cn_keepalive) {
		conn_end_request(c);
		return;
	}
	conn_set_state(c, CS_DISCARD);
	conn_set_timeouts(c);
	if (c->cn_conf->proxy.body_timeout_ms > 0)
		conn_arm_timer(c, c->cn_conf->proxy.body_timeout_ms);
	relay_discard(c);
}

static void
conn_begin_close(struct conn *c)
{
	conn_set_state(c, CS_CLOSING);
	evtimer_del(c->cn_timer);
	bufferevent_enable(c->cn_bev, EV_READ);
	if (evbuffer_get_length(bufferevent_get_output(c->cn_bev)) == 0)
		client_writecb(c->cn_bev, c);
}

/* A request is over: log it, hand back the backend, go on or close. */
void
conn_end_request(struct conn *c)
{
	struct evbuffer	*in = bufferevent_get_input(c->cn_bev);

	evtimer_del(c->cn_timer);	/* a body_timeout */
	conn_log_request(c);
	upstream_release(c, c->cn_up_reuse && c->cn_req_done &&
	    c->cn_resp_state == RS_DONE);
	upstream_reset(c);
	shed_leave(c);
	http_head_reset(&c->cn_req);
	http_head_reset(&c->cn_resp);
	c->cn_head_bytes = 0;
	c->cn_resp_state = RS_NONE;
	c->cn_dechunk = 0;
	c->cn_up_reuse = 0;
	c->cn_status = 0;
	c->cn_reason = MR_NONE;
	c->cn_note = NULL;
	c->cn_retry_after = 0;
	c->cn_resp_bytes = 0;
	c->cn_resp_head_bytes = 0;
	/* a head that never comes (408) must not log the last one's */
	c->cn_host[0] = c->cn_ua[0] = c->cn_referer[0] = '\0';
	c->cn_t_upstream = 0;
	c->cn_class = SIZE_MAX;
	c->cn_fault = 0;
	c->cn_req_paused = 0;
	c->cn_resp_paused = 0;
	c->cn_method = HTTP_M_OTHER;
	if (!c->cn_keepalive || c->cn_worker->w_stopping) {
		conn_begin_close(c);
		return;
	}
	conn_set_state(c, CS_HEAD);
	conn_set_timeouts(c);
	bufferevent_setwatermark(c->cn_bev, EV_WRITE, 0, 0);
	bufferevent_enable(c->cn_bev, EV_READ);
	if (c->cn_tls)
		(void)tls_read_pending(c->cn_bev);	/* a pipelined request */
	if (evbuffer_get_length(in) > 0)
		conn_read_head(c);
	else
		conn_arm_timer(c, c->cn_conf->proxy.idle_timeout_ms);
}

static void
client_writecb(struct bufferevent *bev, void *arg)
{
	struct conn	*c = arg;
	SSL		*ssl;

	if (c->cn_resp_paused && c->cn_ur.ur_up != NULL) {
		c->cn_resp_paused = 0;
		bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
		bufferevent_enable(c->cn_ur.ur_up->uc_bev, EV_READ);
		(void)tls_read_pending(c->cn_ur.ur_up->uc_bev);
		relay_response(c);
		return;
	}
	if (c->cn_req_paused && c->cn_state == CS_HEAD) {
		c->cn_req_paused = 0;
		bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
		bufferevent_enable(bev, EV_READ);
		if (c->cn_tls)
			(void)tls_read_pending(bev);
		conn_read_head(c);
		return;
	}
	if (c->cn_state != CS_CLOSING ||
	    evbuffer_get_length(bufferevent_get_output(bev)) > 0)
		return;
	/* all written: half-close, then read and discard for a while */
	if ((ssl = bufferevent_openssl_get_ssl(bev)) != NULL)
		(void)SSL_shutdown(ssl);	/* close_notify first */
	shutdown(bufferevent_getfd(bev), SHUT_WR);
	conn_arm_timer(c, CONN_LINGER_MSEC);
}

/* The TLS handshake with a client is over: time the first head now. */
static void
conn_tls_established(struct conn *c)
{
	c->cn_tls = CONN_TLS_DONE;
	/* fails while one of its events is active: tried again on a read */
	c->cn_tls_lowprio = bufferevent_priority_set(c->cn_bev,
	    SPILLWAY_PRIO_DEFAULT) == -1;
	c->cn_worker->w_metrics.m_tls_handshakes++;
	conn_arm_timer(c, c->cn_conf->proxy.header_timeout_ms);
	/* the request came with the client's Finished, and was read ahead */
	if (tls_read_pending(c->cn_bev) > 0)
		client_readcb(c->cn_bev, c);
}

/* Count and log a failed TLS handshake (plain HTTP, garbage, a reset). */
static void
conn_tls_failed(struct conn *c)
{
	char		 why[256];
	unsigned long	 e, err = 0;

	while ((e = bufferevent_get_openssl_error(c->cn_bev)) != 0)
		err = e;
	c->cn_worker->w_metrics.m_tls_failed++;
	log_debug("%s: conn %llu from %s: TLS handshake failed: %s", __func__,
	    (unsigned long long)c->cn_id, c->cn_peer,
	    tls_why(NULL, err, why, sizeof(why)));
	conn_close(c, NULL);
}

static void
client_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct conn	*c = arg;

	if (what & BEV_EVENT_CONNECTED) {
		conn_tls_established(c);
		return;
	}
	if (c->cn_tls == CONN_TLS_HANDSHAKE) {
		conn_tls_failed(c);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		if ((what & BEV_EVENT_READING) && c->cn_state == CS_PROXY &&
		    c->cn_resp_state < RS_BODY) {
			log_info("conn %llu from %s: request body stalled",
			    (unsigned long long)c->cn_id, c->cn_peer);
			conn_upstream_failed(c, 408, MR_NONE);
			return;
		}
		conn_close(c, (what & BEV_EVENT_READING) ?
		    "client body stalled" : "client not reading");
		return;
	}
	switch (c->cn_state) {
	case CS_HEAD:
		conn_close(c, c->cn_head_bytes ? "client closed mid-head" :
		    NULL);
		break;
	case CS_CLOSING:
		conn_close(c, NULL);
		break;
	default:
		conn_close(c, "client closed mid-request");
		break;
	}
}

/*
 * Close a connection between requests. Answers still going out (to a slow
 * reader, or pipelined ones) are written first, with a lingering close:
 * a plain close would cut them, or reset them away if input is unread.
 */
static void
conn_close_idle(struct conn *c)
{
	if (evbuffer_get_length(bufferevent_get_output(c->cn_bev)) > 0 ||
	    evbuffer_get_length(bufferevent_get_input(c->cn_bev)) > 0)
		conn_begin_close(c);
	else
		conn_close(c, NULL);
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn	*c = arg;

	if (c->cn_tls_abort) {
		log_info("conn %llu from %s: TLS renegotiation refused; "
		    "closing", (unsigned long long)c->cn_id,
		    c->cn_peer);
		conn_close(c, NULL);
		return;
	}
	if (c->cn_tls == CONN_TLS_HANDSHAKE) {
		c->cn_worker->w_metrics.m_tls_timeouts++;
		log_debug("%s: conn %llu from %s: TLS handshake timed out",
		    __func__, (unsigned long long)c->cn_id, c->cn_peer);
		conn_close(c, NULL);
		return;
	}
	switch (c->cn_state) {
	case CS_HEAD:
		if (!c->cn_head_bytes) {
			conn_close_idle(c);
			break;
		}
		snprintf(c->cn_reqline, sizeof(c->cn_reqline), "%s", "- -");
		c->cn_t_start = now_usec();
		c->cn_version_minor = 1;
		conn_respond(c, 408, MR_NONE, 1);
		break;
	case CS_PROXY:
		/* body_timeout; once a response flows, its end decides */
		if (c->cn_req_done || c->cn_resp_state == RS_BODY)
			break;
		log_info("conn %llu from %s: request body not sent within "
		    "body_timeout", (unsigned long long)c->cn_id,
		    c->cn_peer);
		if (c->cn_req_paused)	/* the backend was not reading it */
			conn_upstream_failed(c, 504, MR_UPSTREAM_TIMEOUT);
		else
			conn_upstream_failed(c, 408, MR_NONE);
		break;
	case CS_DELAYED:
		conn_fault_delayed(c);
		break;
	case CS_DISCARD:
		c->cn_keepalive = 0;
		conn_end_request(c);
		break;
	case CS_CLOSING:
		conn_close(c, NULL);
		break;
	default:
		break;
	}
}

/* Graceful stop: close an idle connection now, any other after its reply. */
void
conn_stop(struct conn *c)
{
	c->cn_keepalive = 0;
	if (c->cn_state == CS_HEAD && !c->cn_head_bytes)
		conn_close_idle(c);
}

/* At exit, past shutdown_timeout. */
void
conn_shutdown(struct conn *c)
{
	conn_close(c, "shutdown");
}

static void
conn_free_cb(evutil_socket_t fd, short what, void *arg)
{
	free(arg);
}

/*
 * Tear a connection down: the only place that does. A request in progress
 * is logged (499 if nothing was answered) and its backend connection
 * closed. The struct itself is freed on the next loop turn, because the
 * caller may be one of this connection's own callbacks.
 */
void
conn_close(struct conn *c, const char *why)
{
	struct worker	*w = c->cn_worker;
	struct timeval	 zero = { 0, 0 };

	if (c->cn_state == CS_DEAD)
		return;
	if (why != NULL)
		log_debug("%s: conn %llu from %s: %s", __func__,
		    (unsigned long long)c->cn_id, c->cn_peer, why);
	if (c->cn_state == CS_DELAYED || c->cn_state == CS_QUEUED ||
	    c->cn_state == CS_CONNECT ||
	    c->cn_state == CS_PROXY || c->cn_state == CS_DISCARD) {
		if (c->cn_status == 0) {
			c->cn_status = 499;
			c->cn_reason = MR_CLIENT_CLOSED;
		}
		conn_log_request(c);
	}
	upstream_release(c, 0);
	conn_admit_forget(c);
	shed_leave(c);
	conn_set_state(c, CS_DEAD);
	conn_free_io(c);
	gen_put(c->cn_gen);
	TAILQ_REMOVE(&w->w_conns, c, cn_entry);
	w->w_nconns--;
	if (event_base_once(w->w_base, -1, EV_TIMEOUT, conn_free_cb, c,
	    &zero) == -1)
		free(c);
	/* accept again; a graceful stop ends with the last connection */
	listener_update(w);
	if (w->w_stopping && w->w_nconns == 0)
		event_base_loopexit(w->w_base, NULL);
}
