/*
 * listener.c: listening sockets, the connection cap and the pause on
 * file descriptor exhaustion.
 *
 * Each worker has its own listeners. Accepting stops while w_nconns is at
 * w_max_conns (a worker's share of max_connections) (new clients wait
 * in the kernel's backlog) and, after EMFILE or ENFILE, for
 * LISTENER_PAUSE_MSEC: a listener whose accept keeps failing must not make
 * the loop spin.
 */
#include <sys/socket.h>
#include <netinet/in.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "spillway.h"
#include "log.h"

/*
 * The kernel caps a listen() backlog at net.core.somaxconn (4096 since
 * Linux 5.4): ask for the most it allows. With nginx's 511, a burst of
 * new connections faster than one loop accepts them (a flood, or a busy
 * core) overflows the queue, and each SYN the kernel drops costs its
 * client a retransmission a second later, the flood's and everyone
 * else's alike.
 */
#define LISTENER_BACKLOG	65535
#define LISTENER_PAUSE_MSEC	100
#define LISTENER_WARN_USEC	10000000	/* EMFILE warnings, at most */

static void	accept_cb(struct evconnlistener *, evutil_socket_t,
		    struct sockaddr *, int, void *);
static void	accept_error_cb(struct evconnlistener *, void *);
static void	resume_cb(evutil_socket_t, short, void *);

/*
 * A listening socket for a configured address (non-blocking, close on
 * exec, v6 only for v6). With several workers, each binds its own socket
 * to the address with SO_REUSEPORT and the kernel spreads the connections
 * among them. Returns it, or -1 with "FILE:LINE: listen ADDR: why" in err.
 * The admin listener binds through here too.
 */
int
listener_bind(const struct config *conf, const struct config_addr *a,
    int backlog, int reuseport, char *err, size_t errlen)
{
	char	 where[1100];
	int	 fd, on = 1;

	fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (fd == -1)
		goto fail;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) == -1)
		goto fail;
	if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on,
	    sizeof(on)) == -1)
		goto fail;
	if (a->ss.ss_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6,
	    IPV6_V6ONLY, &on, sizeof(on)) == -1)
		goto fail;
	if (bind(fd, (const struct sockaddr *)&a->ss, a->sslen) == -1 ||
	    listen(fd, backlog) == -1)
		goto fail;
	return fd;
 fail:
	config_where(conf, a->line, where, sizeof(where));
	snprintf(err, errlen, "%s listen %s: %s", where, a->text,
	    strerror(errno));
	if (fd != -1)
		close(fd);
	return -1;
}

/* A listener on the bound socket fd, not yet accepting; closes fd if not. */
static struct listener *
listener_new(struct worker *w, const struct config_addr *a, int tls, int fd)
{
	struct listener	*ls;

	if ((ls = calloc(1, sizeof(*ls))) == NULL) {
		close(fd);
		return NULL;
	}
	ls->ls_worker = w;
	ls->ls_addr = a;
	ls->ls_tls = tls;
	ls->ls_evl = evconnlistener_new(w->w_base, accept_cb, ls,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC |
	    LEV_OPT_DISABLED, 0, fd);
	if (ls->ls_evl == NULL) {
		close(fd);
		free(ls);
		return NULL;
	}
	evconnlistener_set_error_cb(ls->ls_evl, accept_error_cb);
	return ls;
}

static void
listener_free(struct listener *ls)
{
	evconnlistener_free(ls->ls_evl);
	free(ls);
}

/*
 * First half of making the listeners match conf (at start and on reload):
 * mark the live listeners whose address stays, and bind the new addresses
 * into px_staged, not yet accepting. Nothing live changes, so a failure
 * (-1, err set) is undone by listener_abort() alone.
 */
int
listener_prepare(struct worker *w, const struct config *conf, char *err,
    size_t errlen)
{
	const struct config_addr	*addrs[2] = { conf->proxy.listen,
					    conf->tls.listen };
	size_t				 naddrs[2] = { conf->proxy.nlisten,
					    conf->tls.nlisten };
	const struct config_addr	*a;
	struct listener			*ls;
	size_t				 i;
	int				 fd, tls;

	if (w->w_accept_timer == NULL && (w->w_accept_timer =
	    evtimer_new(w->w_base, resume_cb, w)) == NULL) {
		snprintf(err, errlen, "evtimer_new failed");
		return -1;
	}
	for (tls = 0; tls < 2; tls++) {
		for (i = 0; i < naddrs[tls]; i++) {
			a = &addrs[tls][i];
			TAILQ_FOREACH(ls, &w->w_listeners, ls_entry)
				if (addr_same(ls->ls_addr, a))
					break;
			if (ls != NULL) {	/* kept, maybe changing role */
				ls->ls_next = a;
				ls->ls_next_tls = tls;
				continue;
			}
			if ((fd = listener_bind(conf, a, LISTENER_BACKLOG,
			    w->w_proxy->px_nworkers > 1, err, errlen)) == -1)
				return -1;
			if ((ls = listener_new(w, a, tls, fd)) == NULL) {
				snprintf(err, errlen, "listen %s: out of memory",
				    a->text);
				return -1;
			}
			TAILQ_INSERT_TAIL(&w->w_staged, ls, ls_entry);
		}
	}
	return 0;
}

/* Undo listener_prepare(): close what it bound, forget its marks. */
void
listener_abort(struct worker *w)
{
	struct listener	*ls;

	while ((ls = TAILQ_FIRST(&w->w_staged)) != NULL) {
		TAILQ_REMOVE(&w->w_staged, ls, ls_entry);
		listener_free(ls);
	}
	TAILQ_FOREACH(ls, &w->w_listeners, ls_entry)
		ls->ls_next = NULL;
}

/*
 * Second half: close the listeners whose address went away, keep the
 * others (same socket, no gap in accepting), and make the staged ones live.
 */
void
listener_commit(struct worker *w)
{
	struct listener	*ls, *next;

	for (ls = TAILQ_FIRST(&w->w_listeners); ls != NULL; ls = next) {
		next = TAILQ_NEXT(ls, ls_entry);
		if (ls->ls_next == NULL) {
			log_info("no longer listening on %s",
			    ls->ls_addr->text);
			TAILQ_REMOVE(&w->w_listeners, ls, ls_entry);
			listener_free(ls);
			continue;
		}
		if (ls->ls_tls != ls->ls_next_tls)
			log_info("listening on %s now with%s TLS",
			    ls->ls_next->text, ls->ls_next_tls ? "" : "out");
		ls->ls_addr = ls->ls_next;
		ls->ls_tls = ls->ls_next_tls;
		ls->ls_next = NULL;
	}
	while ((ls = TAILQ_FIRST(&w->w_staged)) != NULL) {
		TAILQ_REMOVE(&w->w_staged, ls, ls_entry);
		TAILQ_INSERT_TAIL(&w->w_listeners, ls, ls_entry);
		if (w->w_accepting)
			evconnlistener_enable(ls->ls_evl);
		log_info("listening on %s%s", ls->ls_addr->text,
		    ls->ls_tls ? " (TLS)" : "");
	}
}

void
listener_close_all(struct worker *w)
{
	struct listener	*ls;

	listener_abort(w);
	while ((ls = TAILQ_FIRST(&w->w_listeners)) != NULL) {
		TAILQ_REMOVE(&w->w_listeners, ls, ls_entry);
		listener_free(ls);
	}
	if (w->w_accept_timer != NULL) {
		event_free(w->w_accept_timer);
		w->w_accept_timer = NULL;
	}
}

/* Enable or disable accepting after the connection count changed. */
void
listener_update(struct worker *w)
{
	struct listener	*ls;
	int		 accept;

	accept = w->w_nconns < w->w_max_conns && !w->w_accept_paused &&
	    !w->w_stopping;
	if (accept == w->w_accepting)
		return;
	log_debug("%s: %u connections, accepting %s", __func__,
	    w->w_nconns, accept ? "on" : "off");
	w->w_accepting = accept;
	TAILQ_FOREACH(ls, &w->w_listeners, ls_entry) {
		if (accept)
			evconnlistener_enable(ls->ls_evl);
		else
			evconnlistener_disable(ls->ls_evl);
	}
}

static void
accept_cb(struct evconnlistener *evl, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct listener	*ls = arg;

	if (ls->ls_addr->proxy_protocol)
		ppaccept_start(ls->ls_worker, fd, sa, salen, ls->ls_tls);
	else
		conn_accept(ls->ls_worker, fd, sa, salen, ls->ls_tls);
}

static void
accept_error_cb(struct evconnlistener *evl, void *arg)
{
	struct listener	*ls = arg;
	struct worker	*w = ls->ls_worker;
	struct timeval	 tv = { 0, LISTENER_PAUSE_MSEC * 1000 };
	int		 error = EVUTIL_SOCKET_ERROR();
	unsigned int	 quiet;

	switch (error) {
	case EMFILE:
	case ENFILE:
	case ENOBUFS:
	case ENOMEM:
		if (!w->w_accept_paused && listener_warn_pause(w, &quiet))
			log_warnx("accept on %s: %s; pausing %d ms (%u "
			    "pauses since the last warning)", ls->ls_addr->text, strerror(error),
			    LISTENER_PAUSE_MSEC, quiet);
		w->w_accept_paused = 1;
		listener_update(w);
		evtimer_add(w->w_accept_timer, &tv);
		break;
	default:
		log_debug("%s: accept on %s: %s", __func__, ls->ls_addr->text,
		    strerror(error));
		break;
	}
}

/*
 * Out of descriptors, the listeners pause every LISTENER_PAUSE_MSEC: say so
 * at most once per LISTENER_WARN_USEC. Returns 1 if the caller should log,
 * with *quiet set to the pauses not logged since the last warning; 0 if it
 * should keep quiet.
 */
int
listener_warn_pause(struct worker *w, unsigned int *quiet)
{
	uint64_t	 now = now_usec();

	if (w->w_emfile_said != 0 &&
	    now - w->w_emfile_said < LISTENER_WARN_USEC) {
		w->w_emfile_quiet++;
		return 0;
	}
	w->w_emfile_said = now;
	*quiet = w->w_emfile_quiet;
	w->w_emfile_quiet = 0;
	return 1;
}

static void
resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker	*w = arg;

	w->w_accept_paused = 0;
	listener_update(w);
}
