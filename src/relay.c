/*
 * relay.c: the bytes of a proxied request, from the moment a backend
 * connection is ready: the head and body from the client to the backend,
 * the response head and body back, each with back-pressure; the backend
 * connection's events (a kept-alive one found closed is retried once when
 * nothing can be lost); and a body read and thrown away after our own
 * answer.
 *
 * Invariants:
 * - Memory is bounded by watermarks: neither side is read while its peer's
 *   output holds SPILLWAY_WM_HIGH bytes or more; it resumes when that output
 *   drains to SPILLWAY_WM_LOW (the peer's write callback: client_writecb in
 *   conn.c, relay_upstream_drained() here).
 * - A body moves one framing-consistent step at a time (body_step()), so
 *   it stops exactly at its end, and at the first byte of bad framing.
 * - What ends a request (its response done, a failure) goes back to the
 *   client state machine: conn_end_request(), conn_upstream_failed(),
 *   conn_close().
 */
#include <sys/socket.h>

#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>

#include "head.h"
#include "spillway.h"
#include "log.h"

/*
 * A head is written into one reserved extent of its evbuffer, sized from
 * the head it is made from plus HEAD_MARGIN for what we add: plain
 * copies, one reservation, on the hot path. relay_put_head() reserves;
 * relay_commit_head() commits n bytes, or nothing if n is -1 (the head did
 * not fit, which the margin rules out) and then fails.
 */
ssize_t
relay_put_head(struct evbuffer *out, size_t bound, struct evbuffer_iovec *v)
{
	if (evbuffer_reserve_space(out, (ssize_t)(bound + HEAD_MARGIN), v,
	    1) != 1)
		return -1;
	return (ssize_t)v->iov_len;
}

int
relay_commit_head(struct evbuffer *out, struct evbuffer_iovec *v, ssize_t n)
{
	v->iov_len = n < 0 ? 0 : (size_t)n;
	if (evbuffer_commit_space(out, v, 1) == -1 || n < 0)
		return -1;
	return 0;
}

/*
 * Check the framing of the part of a chunked body that came with its head,
 * before anything is sent: a malformed body is then refused whole, the
 * backend never sees its head (most smuggling attempts arrive in one
 * packet). Bytes past the end of the body belong to the next request.
 * A later framing error still stops the forwarding at the bad byte.
 * Returns 0, or -1 with the decoder's reason in *what.
 */
int
relay_precheck(const struct conn *c, size_t headlen, const char **what)
{
	struct evbuffer		*in = bufferevent_get_input(c->cn_bev);
	struct http_body	 b = c->cn_req_body;
	struct evbuffer_ptr	 ptr;
	struct evbuffer_iovec	 v[4];
	const char		*p;
	size_t			 len;
	ssize_t			 k;
	int			 i, nv, is_data;

	if (b.framing != HTTP_FRAMING_CHUNKED ||
	    evbuffer_get_length(in) <= headlen ||
	    evbuffer_ptr_set(in, &ptr, headlen, EVBUFFER_PTR_SET) == -1)
		return 0;
	while (!http_body_done(&b)) {
		if ((nv = evbuffer_peek(in, -1, &ptr, v, 4)) <= 0)
			return 0;
		for (i = 0; i < nv && i < 4 && !http_body_done(&b); i++) {
			p = v[i].iov_base;
			len = v[i].iov_len;
			while (len > 0 && (k = http_body_feed(&b, p, len,
			    &is_data)) != 0) {
				if (k == -1) {
					*what = b.error_what;
					return -1;
				}
				p += k;
				len -= (size_t)k;
			}
			if (evbuffer_ptr_set(in, &ptr, v[i].iov_len,
			    EVBUFFER_PTR_ADD) == -1)
				return 0;
		}
		if (nv <= 4)
			break;
	}
	return 0;
}

/*
 * Write what pend holds to bev's socket at once if nothing is queued ahead
 * of it, and queue only what the socket did not take. A response that fits
 * the socket buffer then costs one write(2) instead of a trip of the write
 * event through epoll_ctl and the next loop turn; the bufferevent still
 * handles whatever is left, with its timeouts and watermarks.
 *
 * Over TLS the same, through OpenSSL: tls_send().
 */
void
relay_send(struct bufferevent *bev, struct evbuffer *pend)
{
	struct evbuffer	*out = bufferevent_get_output(bev);

	if (evbuffer_get_length(pend) == 0)
		return;
	if (bufferevent_openssl_get_ssl(bev) != NULL) {
		tls_send(bev, pend);
		return;
	}
	if (evbuffer_get_length(out) == 0)
		(void)evbuffer_write(pend, bufferevent_getfd(bev));
	if (evbuffer_get_length(pend) > 0)
		evbuffer_add_buffer(out, pend);
}

/* Bytes bound for bev: queued in its output and still pending. */
size_t
relay_queued(struct bufferevent *bev, struct evbuffer *pend)
{
	return evbuffer_get_length(bufferevent_get_output(bev)) +
	    evbuffer_get_length(pend);
}

/*
 * Move one framing-consistent step of a body from src to dst: payload
 * always, framing too unless strip is set (a chunk line written afresh if
 * the decoder rechunks); with dst NULL, throw it away. Returns bytes taken
 * from src, 0 when nothing more can be taken, -1 on invalid framing.
 */
static ssize_t
body_step(struct http_body *b, struct evbuffer *src, struct evbuffer *dst,
    int strip)
{
	struct evbuffer_iovec	 v;
	ssize_t			 k;
	int			 is_data;

	if (http_body_done(b) || evbuffer_peek(src, -1, NULL, &v, 1) < 1 ||
	    v.iov_len == 0)
		return 0;
	if ((k = http_body_feed(b, v.iov_base, v.iov_len, &is_data)) <= 0)
		return k;
	if (dst == NULL || (strip && !is_data))
		evbuffer_drain(src, (size_t)k);
	else if (b->chunk_line) {
		/* a chunk line goes on written afresh, without extensions */
		evbuffer_drain(src, (size_t)k);
		if (b->chunk_out_len > 0 &&
		    evbuffer_add(dst, b->chunk_out, b->chunk_out_len) == -1)
			return -1;
	} else if (evbuffer_remove_buffer(src, dst, (size_t)k) != (int)k)
		return -1;
	return k;
}

/* Client input to backend output, as far as the body and watermarks go. */
void
relay_request(struct conn *c)
{
	const struct proxy_conf	*pc = &c->cn_conf->proxy;
	struct evbuffer		*in = bufferevent_get_input(c->cn_bev);
	struct evbuffer		*out = c->cn_upend;
	struct bufferevent	*ubev;
	ssize_t			 k;

	if (c->cn_ur.ur_up == NULL)
		return;
	ubev = c->cn_ur.ur_up->uc_bev;
 more:
	while (!c->cn_req_done && evbuffer_get_length(in) > 0) {
		if (relay_queued(ubev, out) >= SPILLWAY_WM_HIGH)
			relay_send(ubev, out);
		if (relay_queued(ubev, out) >= SPILLWAY_WM_HIGH) {
			bufferevent_disable(c->cn_bev, EV_READ);
			bufferevent_setwatermark(c->cn_ur.ur_up->uc_bev, EV_WRITE,
			    SPILLWAY_WM_LOW, 0);
			c->cn_req_paused = 1;
			return;
		}
		if ((k = body_step(&c->cn_req_body, in, out, 0)) == -1) {
			log_info("conn %llu: request body: %s",
			    (unsigned long long)c->cn_id,
			    c->cn_req_body.error_what);
			conn_upstream_failed(c, 400, MR_NONE);
			return;
		}
		if (pc->max_body_size > 0 &&
		    c->cn_req_body.total > pc->max_body_size) {
			conn_upstream_failed(c, 413, MR_NONE);
			return;
		}
		if ((c->cn_req_done = http_body_done(&c->cn_req_body)))
			conn_set_timeouts(c);
		if (k == 0)
			break;
	}
	/* what OpenSSL read ahead, the socket will not announce again */
	if (!c->cn_req_done && c->cn_tls && tls_read_pending(c->cn_bev) > 0)
		goto more;
	relay_send(ubev, out);
}

/* The backend drained our request body: read more from the client. */
void
relay_upstream_drained(struct conn *c)
{
	if (!c->cn_req_paused)
		return;
	c->cn_req_paused = 0;
	bufferevent_setwatermark(c->cn_ur.ur_up->uc_bev, EV_WRITE, 0, 0);
	bufferevent_enable(c->cn_bev, EV_READ);
	if (c->cn_tls)
		(void)tls_read_pending(c->cn_bev);
	relay_request(c);
}

/*
 * Relay a response head to the client and decide how the two connections
 * go on: the client's is closed after a close-delimited body or when either
 * side asked; an HTTP/1.0 client gets a chunked body without its framing.
 */
static int
response_head(struct conn *c, const struct http_head *h, size_t len,
    int interim)
{
	struct head_response	 hr;
	struct evbuffer_iovec	 v;
	ssize_t			 n;

	if (!interim) {
		/* answered before the body is all in: say we will close */
		if (h->framing == HTTP_FRAMING_CLOSE || !c->cn_req_done)
			c->cn_keepalive = 0;
		if (h->framing == HTTP_FRAMING_CHUNKED &&
		    c->cn_version_minor == 0) {
			c->cn_dechunk = 1;
			c->cn_keepalive = 0;
		}
		if (h->version_minor >= 1)
			c->cn_up_reuse = !(h->flags & HTTP_F_CONN_CLOSE);
		else
			c->cn_up_reuse = (h->flags & HTTP_F_CONN_KEEPALIVE) &&
			    !(h->flags & HTTP_F_CONN_CLOSE);
		if (h->framing == HTTP_FRAMING_CLOSE)
			c->cn_up_reuse = 0;
		c->cn_status = h->status;
	}
	hr.interim = interim;
	hr.dechunk = c->cn_dechunk;
	hr.keepalive = c->cn_keepalive;
	hr.client_minor = c->cn_version_minor;
	if ((n = relay_put_head(c->cn_cpend, len, &v)) == -1)
		return -1;
	n = head_response(v.iov_base, v.iov_len, h, &hr);
	if (relay_commit_head(c->cn_cpend, &v, n) == -1)
		return -1;
	c->cn_resp_bytes += (uint64_t)n;
	c->cn_resp_head_bytes += (uint64_t)n;
	return 0;
}

static void
read_response_head(struct conn *c)
{
	size_t		 max = c->cn_conf->proxy.max_header_size;
	struct evbuffer	*in = bufferevent_get_input(c->cn_ur.ur_up->uc_bev);
	const char	*data;
	size_t		 len, n;
	ssize_t		 r;

	for (;;) {
		if ((len = evbuffer_get_length(in)) == 0)
			return;
		c->cn_resp_state = RS_HEAD;
		n = len < max ? len : max;
		data = (const char *)evbuffer_pullup(in, (ssize_t)n);
		r = http_parse_response(&c->cn_resp, data, n, max,
		    c->cn_method);
		if (r == HTTP_PARSE_AGAIN && len >= max) {
			c->cn_resp.error_what = "response head too large";
			r = HTTP_PARSE_ERROR;
		}
		if (r == HTTP_PARSE_AGAIN)
			return;
		if (r == HTTP_PARSE_ERROR || c->cn_resp.status == 101) {
			log_warnx("conn %llu: %s: invalid response: %s",
			    (unsigned long long)c->cn_id,
			    c->cn_ur.ur_server->sv_addr->text,
			    c->cn_resp.error_what ? c->cn_resp.error_what :
			    "101 Switching Protocols");
			upstream_judge(c, HE_INVALID);
			conn_upstream_failed(c, 502, MR_UPSTREAM_ERROR);
			return;
		}
		if (c->cn_resp.status >= 200)
			break;
		/* 1xx: relay to an HTTP/1.1 client, then read on */
		if (c->cn_version_minor >= 1) {
			if (response_head(c, &c->cn_resp, (size_t)r,
			    1) == -1) {
				conn_close(c, "out of memory");
				return;
			}
			relay_send(c->cn_bev, c->cn_cpend);
		}
		evbuffer_drain(in, (size_t)r);
		http_head_reset(&c->cn_resp);
		c->cn_resp_state = RS_NONE;
	}
	c->cn_t_resp_head = now_usec();
	upstream_answered(c, c->cn_resp.status);
	if (response_head(c, &c->cn_resp, (size_t)r, 0) == -1) {
		conn_upstream_failed(c, 502, MR_UPSTREAM_ERROR);
		return;
	}
	http_body_init(&c->cn_resp_body, &c->cn_resp);
	evbuffer_drain(in, (size_t)r);
	c->cn_resp_state = RS_BODY;
	relay_response(c);
}

/* Backend input to client output, as far as the body and watermarks go. */
void
relay_response(struct conn *c)
{
	struct bufferevent	*ubev = c->cn_ur.ur_up->uc_bev;
	struct evbuffer		*in = bufferevent_get_input(ubev);
	struct evbuffer		*out = c->cn_cpend;
	size_t			 before;
	ssize_t			 k;

	while (!http_body_done(&c->cn_resp_body) &&
	    evbuffer_get_length(in) > 0) {
		if (relay_queued(c->cn_bev, out) >= SPILLWAY_WM_HIGH)
			relay_send(c->cn_bev, out);
		if (relay_queued(c->cn_bev, out) >= SPILLWAY_WM_HIGH) {
			bufferevent_disable(ubev, EV_READ);
			bufferevent_setwatermark(c->cn_bev, EV_WRITE,
			    SPILLWAY_WM_LOW, 0);
			c->cn_resp_paused = 1;
			return;
		}
		before = evbuffer_get_length(out);
		k = body_step(&c->cn_resp_body, in, out, c->cn_dechunk);
		c->cn_resp_bytes += evbuffer_get_length(out) - before;
		if (k == -1) {
			log_warnx("conn %llu: %s: response body: %s",
			    (unsigned long long)c->cn_id,
			    c->cn_ur.ur_server->sv_addr->text,
			    c->cn_resp_body.error_what);
			conn_close(c, "invalid response body");
			return;
		}
		if (k == 0)
			break;
	}
	relay_send(c->cn_bev, out);
	if (!http_body_done(&c->cn_resp_body))
		return;
	if (evbuffer_get_length(in) > 0) {
		log_warnx("conn %llu: %s: bytes after the response",
		    (unsigned long long)c->cn_id,
		    c->cn_ur.ur_server->sv_addr->text);
		c->cn_up_reuse = 0;
	}
	c->cn_resp_state = RS_DONE;
	if (!c->cn_req_done) {
		/* answered before the body was all sent: stop sending it */
		c->cn_keepalive = 0;
		c->cn_up_reuse = 0;
	}
	conn_end_request(c);
}

void
relay_upstream_read(struct conn *c)
{
	switch (c->cn_resp_state) {
	case RS_NONE:
	case RS_HEAD:
		read_response_head(c);
		break;
	case RS_BODY:
		relay_response(c);
		break;
	case RS_DONE:
		break;
	}
}

/* Read a body nobody will use, to keep the connection; bounded. */
void
relay_discard(struct conn *c)
{
	struct evbuffer	*in = bufferevent_get_input(c->cn_bev);
	ssize_t		 k;

	bufferevent_enable(c->cn_bev, EV_READ);
 more:
	while (!c->cn_req_done && evbuffer_get_length(in) > 0) {
		if ((k = body_step(&c->cn_req_body, in, NULL, 1)) == -1 ||
		    c->cn_req_body.total > SPILLWAY_DISCARD_MAX) {
			c->cn_keepalive = 0;
			break;
		}
		c->cn_req_done = http_body_done(&c->cn_req_body);
		if (k == 0)
			break;
	}
	if (!c->cn_req_done && c->cn_keepalive && c->cn_tls &&
	    tls_read_pending(c->cn_bev) > 0)
		goto more;
	if (c->cn_req_done || !c->cn_keepalive)
		conn_end_request(c);
}

/* A backend connection is ours: send the head, then the body. */
void
relay_upstream_ready(struct conn *c, struct upconn *uc)
{
	size_t		 len = evbuffer_get_length(c->cn_uphead);

	evbuffer_drain(c->cn_upend, evbuffer_get_length(c->cn_upend));
	/* a copy: the head is sent again if a reused connection was stale */
	if (evbuffer_add(c->cn_upend, evbuffer_pullup(c->cn_uphead, -1),
	    len) == -1) {
		conn_upstream_failed(c, 502, MR_UPSTREAM_ERROR);
		return;
	}
	conn_set_state(c, CS_PROXY);
	conn_set_timeouts(c);
	if (!c->cn_req_done && c->cn_conf->proxy.body_timeout_ms > 0)
		conn_arm_timer(c, c->cn_conf->proxy.body_timeout_ms);
	if (!c->cn_req_done)
		relay_request(c);
	else
		relay_send(uc->uc_bev, c->cn_upend);
}

/*
 * May a request that reached a backend be sent again? Only if it is
 * idempotent (RFC 9110, 9.2.2) and nothing was lost: no response byte
 * came, and it has no body, or "Content-Length: 0", which many clients
 * send with PUT and DELETE; the head is all there is to send again.
 */
static int
resendable(const struct conn *c)
{
	const struct http_body	*b = &c->cn_req_body;

	if (c->cn_resp_state != RS_NONE ||
	    (b->framing != HTTP_FRAMING_NONE &&
	    !(b->framing == HTTP_FRAMING_LENGTH && b->total == 0 &&
	    http_body_done(b))))
		return 0;
	switch (c->cn_method) {
	case HTTP_M_GET:
	case HTTP_M_HEAD:
	case HTTP_M_OPTIONS:
	case HTTP_M_TRACE:
	case HTTP_M_PUT:
	case HTTP_M_DELETE:
		return 1;
	default:
		return 0;
	}
}

/* A kept-alive connection found closed: retried once, on a fresh one. */
static int
retryable(const struct conn *c)
{
	return !c->cn_ur.ur_retried && c->cn_ur.ur_up != NULL &&
	    c->cn_ur.ur_up->uc_requests >= 2 && resendable(c);
}

void
relay_upstream_event(struct conn *c, short what)
{
	const char	*addr = c->cn_ur.ur_server->sv_addr->text;

	if (what & BEV_EVENT_TIMEOUT) {
		log_warnx("conn %llu: %s: no answer in time",
		    (unsigned long long)c->cn_id, addr);
		if (c->cn_resp_state != RS_BODY)
			upstream_judge(c, HE_TIMEOUT);
		if (c->cn_resp_state == RS_BODY)
			conn_close(c, "upstream timeout mid-response");
		else
			conn_upstream_failed(c, 504, MR_UPSTREAM_TIMEOUT);
		return;
	}
	if (c->cn_resp_state == RS_BODY &&
	    c->cn_resp_body.framing == HTTP_FRAMING_CLOSE &&
	    (what & BEV_EVENT_EOF)) {
		/* the end of a close-delimited body */
		relay_response(c);
		if (c->cn_state == CS_DEAD || c->cn_resp_state == RS_DONE)
			return;
		c->cn_resp_state = RS_DONE;
		c->cn_up_reuse = 0;
		if (!c->cn_req_done)
			c->cn_keepalive = 0;
		conn_end_request(c);
		return;
	}
	if (retryable(c)) {
		log_info("conn %llu: %s: kept-alive connection closed; "
		    "retrying", (unsigned long long)c->cn_id, addr);
		conn_set_state(c, CS_CONNECT);
		upstream_retry(c);
		return;
	}
	log_warnx("conn %llu: %s: connection %s", (unsigned long long)c->cn_id,
	    addr,
	    (what & BEV_EVENT_EOF) ? "closed early" :
	    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	/* a kept-alive connection closing is no sign of a failing server */
	if (c->cn_resp_state != RS_BODY)
		upstream_judge(c, c->cn_ur.ur_up->uc_requests < 2 ||
		    c->cn_resp_state == RS_HEAD ? HE_RESET : HE_NEUTRAL);
	if (resendable(c)) {
		log_info("conn %llu: trying another server",
		    (unsigned long long)c->cn_id);
		conn_set_state(c, CS_CONNECT);
		if (upstream_failover(c) == 0)
			return;
	}
	if (c->cn_resp_state == RS_BODY)
		conn_close(c, "upstream closed mid-response");
	else
		conn_upstream_failed(c, 502, MR_UPSTREAM_ERROR);
}
