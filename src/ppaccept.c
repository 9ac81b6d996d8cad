/*
 * ppaccept.c: a connection accepted on a listener with proxy_protocol,
 * before it is a client connection: read the PROXY header (proxyproto.c)
 * and nothing else, then hand the socket to conn_accept() with the client
 * address the header named. On a TLS listener the header comes before the
 * TLS handshake, so it is read here from the raw socket either way.
 *
 * Invariants:
 * - Not one byte after the header is read: bytes are peeked, and only those
 *   the parser says are header bytes are consumed, so what follows (HTTP
 *   or a TLS ClientHello) is left in the socket for the connection.
 * - A waiting connection counts in w_nconns like a client connection:
 *   max_connections bounds both, and a flood of headers that never come
 *   pauses accepting like any other.
 * - header_timeout bounds the whole wait, from accept, however the bytes
 *   trickle in; on timeout, a bad header or EOF the socket is closed
 *   without an answer (the peer is a balancer, not an HTTP client).
 */
#include <sys/socket.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "spillway.h"
#include "log.h"
#include "proxyproto.h"

struct ppaccept {
	struct worker		*pa_worker;
	evutil_socket_t		 pa_fd;
	int			 pa_tls;
	struct event		*pa_read;
	struct event		*pa_timer;
	struct sockaddr_storage	 pa_peer;
	int			 pa_peerlen;
	char			 pa_peertext[64];	/* "ip:port" */
	size_t			 pa_len;	/* header bytes consumed */
	uint8_t			 pa_buf[PROXYPROTO_MAX];
	TAILQ_ENTRY(ppaccept)	 pa_entry;
};

static void	ppaccept_read_cb(evutil_socket_t, short, void *);
static void	ppaccept_timeout_cb(evutil_socket_t, short, void *);

/* Forget pa; close its socket unless it was handed on (keep_fd). */
static void
ppaccept_free(struct ppaccept *pa, int keep_fd)
{
	struct worker	*w = pa->pa_worker;

	TAILQ_REMOVE(&w->w_ppwait, pa, pa_entry);
	if (pa->pa_read != NULL)
		event_free(pa->pa_read);
	if (pa->pa_timer != NULL)
		event_free(pa->pa_timer);
	if (!keep_fd)
		close(pa->pa_fd);
	free(pa);
	w->w_nconns--;
}

static void
ppaccept_fail(struct ppaccept *pa, const char *why, int result)
{
	struct worker	*w = pa->pa_worker;

	log_info("PROXY header from %s: %s; closing", pa->pa_peertext, why);
	w->w_metrics.m_proxyproto[result]++;
	ppaccept_free(pa, 0);
	listener_update(w);
	if (w->w_stopping && w->w_nconns == 0)
		event_base_loopexit(w->w_base, NULL);
}

void
ppaccept_start(struct worker *w, evutil_socket_t fd, struct sockaddr *sa,
    int salen, int tls)
{
	struct ppaccept	*pa;
	struct timeval	 tv = msec_tv(w->w_conf->proxy.header_timeout_ms);

	if ((pa = calloc(1, sizeof(*pa))) == NULL) {
		log_warnx("out of memory, dropping a connection");
		close(fd);
		return;
	}
	pa->pa_worker = w;
	pa->pa_fd = fd;
	pa->pa_tls = tls;
	if ((size_t)salen > sizeof(pa->pa_peer))
		salen = (int)sizeof(pa->pa_peer);
	memcpy(&pa->pa_peer, sa, (size_t)salen);
	pa->pa_peerlen = salen;
	addr_format(sa, NULL, 0, pa->pa_peertext, sizeof(pa->pa_peertext));
	TAILQ_INSERT_TAIL(&w->w_ppwait, pa, pa_entry);
	w->w_nconns++;
	pa->pa_read = event_new(w->w_base, fd, EV_READ | EV_PERSIST,
	    ppaccept_read_cb, pa);
	pa->pa_timer = evtimer_new(w->w_base, ppaccept_timeout_cb, pa);
	if (pa->pa_read == NULL || pa->pa_timer == NULL ||
	    event_add(pa->pa_read, NULL) == -1 ||
	    evtimer_add(pa->pa_timer, &tv) == -1) {
		log_warnx("out of memory, dropping a connection");
		ppaccept_free(pa, 0);
		return;
	}
	listener_update(w);
	log_debug("%s: from %s%s, waiting for a PROXY header", __func__,
	    pa->pa_peertext, tls ? " (TLS)" : "");
}

/* The header is whole: the connection starts as its client's. */
static void
ppaccept_done(struct ppaccept *pa, const struct proxyproto *pp)
{
	struct worker		*w = pa->pa_worker;
	struct sockaddr_storage	 ss;
	evutil_socket_t		 fd = pa->pa_fd;
	int			 len, tls = pa->pa_tls;

	if (pp->pp_has_addr) {
		memcpy(&ss, &pp->pp_src, sizeof(ss));
		len = (int)pp->pp_srclen;
	} else {
		/* LOCAL, UNKNOWN, UNSPEC, UNIX: the balancer's own address */
		memcpy(&ss, &pa->pa_peer, sizeof(ss));
		len = pa->pa_peerlen;
	}
	log_debug("%s: PROXY v%d from %s%s%s", __func__, pp->pp_version,
	    pa->pa_peertext, pp->pp_has_addr ? "" : ", no client address",
	    pp->pp_unsupported ? " (family not supported)" : "");
	w->w_metrics.m_proxyproto[METRICS_PP_OK]++;
	ppaccept_free(pa, 1);
	conn_accept(w, fd, (struct sockaddr *)&ss, len, tls);
}

static void
ppaccept_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ppaccept		*pa = arg;
	struct proxyproto	 pp;
	const char		*why = "malformed";
	ssize_t			 n, got;
	int			 done = 0;

	n = recv(fd, pa->pa_buf + pa->pa_len, sizeof(pa->pa_buf) - pa->pa_len,
	    MSG_PEEK);
	if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK ||
	    errno == EINTR))
		return;
	if (n <= 0) {
		ppaccept_fail(pa, n == 0 ? "connection closed before the "
		    "header ended" : strerror(errno), METRICS_PP_BAD);
		return;
	}
	switch (proxyproto_parse(pa->pa_buf, pa->pa_len + (size_t)n, &pp,
	    &why)) {
	case PROXYPROTO_OK:
		/* consume the header's bytes, not one more */
		n = (ssize_t)(pp.pp_len - pa->pa_len);
		done = 1;
		break;
	case PROXYPROTO_MORE:
		/* every byte seen is a header byte: take them all */
		if (pa->pa_len + (size_t)n == sizeof(pa->pa_buf)) {
			ppaccept_fail(pa, "header too long", METRICS_PP_BAD);
			return;
		}
		break;
	case PROXYPROTO_BAD:
		ppaccept_fail(pa, why, METRICS_PP_BAD);
		return;
	}
	got = recv(fd, pa->pa_buf + pa->pa_len, (size_t)n, 0);
	if (got != n) {
		/* peeked bytes are in the socket: only an error loses them */
		ppaccept_fail(pa, got == -1 ? strerror(errno) : "short read",
		    METRICS_PP_BAD);
		return;
	}
	pa->pa_len += (size_t)n;
	if (done)
		ppaccept_done(pa, &pp);
}

static void
ppaccept_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ppaccept	*pa = arg;

	ppaccept_fail(pa, "header_timeout", METRICS_PP_TIMEOUT);
}

/* Stopping: the waiting connections have sent no request; close them. */
void
ppaccept_close_all(struct worker *w)
{
	struct ppaccept	*pa;

	while ((pa = TAILQ_FIRST(&w->w_ppwait)) != NULL)
		ppaccept_free(pa, 0);
}
