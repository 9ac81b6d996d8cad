/*
 * worker.c: workers, each an event loop on a thread of its own with what
 * only that loop touches (struct worker in spillway.h): its listeners, its
 * client connections, its backend servers' pools, its timers and its
 * counters.
 *
 * Worker 0 is the main thread's loop (beside the admin listener and the
 * signals); the others run worker_main() on threads of their own. With one
 * worker there is no thread at all and nothing below waits on anything.
 *
 * Another thread reaches into a worker in these ways only (never by adding
 * or deleting one of its events: libevent's event_del() from another
 * thread waits for that event's callback, which may wait for a lock the
 * caller holds):
 * - worker_call(): run a function on the worker's loop and wait for it
 *   (reload's prepare, commit and abort, the graceful stop, a scrape of its
 *   counters). Only the main thread calls it, one call at a time, holding
 *   no other lock, so it cannot deadlock; a worker whose loop has ended is
 *   called directly (nothing else touches it any more);
 * - its w_kick event (shed.c), to hand it a waiter's slot or verdict;
 * - its w_health_ev event (upstream.c): a server went out of rotation;
 * - in a reload's prepare, run on worker k by worker_call() while the main
 *   thread (worker 0) waits, worker 0's servers are read to share their
 *   health and limit (upstream.c, shared_server()).
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "spillway.h"
#include "log.h"

#define HANDSHAKE_BATCH		4	/* handshake callbacks per look */

/*
 * The event loop, with SPILLWAY_PRIO_N priorities: TLS handshakes run at
 * the lowest, and the loop looks for new events again after every
 * HANDSHAKE_BATCH of them, so a flood of handshakes cannot hold up
 * requests on established connections (nor their own accepts).
 */
static struct event_base *
base_new(void)
{
	struct event_config	*cfg;
	struct event_base	*base;

	if ((cfg = event_config_new()) == NULL)
		return NULL;
	event_config_set_max_dispatch_interval(cfg, NULL, HANDSHAKE_BATCH,
	    SPILLWAY_PRIO_HANDSHAKE);
	base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	if (base != NULL && event_base_priority_init(base,
	    SPILLWAY_PRIO_N) == -1) {
		event_base_free(base);
		return NULL;
	}
	return base;
}

/* The number of workers conf asks for: auto is one per online core. */
unsigned int
worker_count(const struct config *conf)
{
	long	 n;

	if (conf->proxy.workers != CONFIG_AUTO)
		return (unsigned int)conf->proxy.workers;
	n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : n > 1024 ? 1024 : (unsigned int)n;
}

static void
call_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker	*w = arg;
	void		(*fn)(struct worker *, void *);
	void		*fnarg;

	pthread_mutex_lock(&w->w_call_mtx);
	fn = w->w_call_fn;
	fnarg = w->w_call_arg;
	pthread_mutex_unlock(&w->w_call_mtx);
	if (fn != NULL)
		fn(w, fnarg);
	pthread_mutex_lock(&w->w_call_mtx);
	w->w_call_fn = NULL;
	w->w_call_done = 1;
	pthread_cond_broadcast(&w->w_call_cv);
	pthread_mutex_unlock(&w->w_call_mtx);
}

/* The worker's access log lines go out (every second, and at a reopen). */
static void
alog_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker	*w = arg;

	accesslog_flush(&w->w_alog);
}

/* A worker with its loop (base, or a new one), its timers; no listener. */
struct worker *
worker_new(struct proxy *px, unsigned int id, struct event_base *base)
{
	struct worker	*w;

	if ((w = calloc(1, sizeof(*w))) == NULL)
		return NULL;
	w->w_proxy = px;
	w->w_id = id;
	TAILQ_INIT(&w->w_listeners);
	TAILQ_INIT(&w->w_staged);
	TAILQ_INIT(&w->w_conns);
	TAILQ_INIT(&w->w_ppwait);
	TAILQ_INIT(&w->w_admit);
	w->w_accepting = 1;
	metrics_init(&w->w_metrics);
	pthread_mutex_init(&w->w_call_mtx, NULL);
	pthread_cond_init(&w->w_call_cv, NULL);
	if ((w->w_base = base != NULL ? base : base_new()) == NULL ||
	    (w->w_call_ev = event_new(w->w_base, -1, 0, call_cb,
	    w)) == NULL ||
	    (w->w_health_ev = event_new(w->w_base, -1, 0, upstream_health_cb,
	    w)) == NULL ||
	    (w->w_alog_ev = event_new(w->w_base, -1, 0, alog_cb, w)) == NULL ||
	    (w->w_admit_ev = event_new(w->w_base, -1, 0, conn_admit_cb,
	    w)) == NULL ||
	    shed_worker_init(w) == -1) {
		worker_free(w);
		return NULL;
	}
	return w;
}

/*
 * Run fn(w, arg) on w's loop and wait until it is done; directly if w has
 * no thread of its own (worker 0) or its loop has ended.
 */
void
worker_call(struct worker *w, void (*fn)(struct worker *, void *),
    void *arg)
{
	pthread_mutex_lock(&w->w_call_mtx);
	if (!w->w_running) {
		pthread_mutex_unlock(&w->w_call_mtx);
		fn(w, arg);
		return;
	}
	w->w_call_fn = fn;
	w->w_call_arg = arg;
	w->w_call_done = 0;
	event_active(w->w_call_ev, EV_READ, 0);
	while (!w->w_call_done)
		pthread_cond_wait(&w->w_call_cv, &w->w_call_mtx);
	pthread_mutex_unlock(&w->w_call_mtx);
}

static void *
worker_main(void *arg)
{
	struct worker	*w = arg;

	if (event_base_loop(w->w_base, EVLOOP_NO_EXIT_ON_EMPTY) == -1)
		log_err("worker %u: event loop failed", w->w_id);
	/* its lines now, not when the last worker is done */
	accesslog_flush(&w->w_alog);
	pthread_mutex_lock(&w->w_call_mtx);
	w->w_running = 0;
	if (w->w_call_fn != NULL && !w->w_call_done) {
		/* asked just as the loop ended: answer it here */
		w->w_call_fn(w, w->w_call_arg);
		w->w_call_fn = NULL;
		w->w_call_done = 1;
		pthread_cond_broadcast(&w->w_call_cv);
	}
	pthread_mutex_unlock(&w->w_call_mtx);
	log_debug("%s: worker %u stopped", __func__, w->w_id);
	return NULL;
}

/*
 * Run w's loop on a thread of its own: 0, or -1 (logged). The thread
 * blocks every signal, so that SIGHUP, SIGTERM and the others always reach
 * the main thread, which watches them.
 */
int
worker_start(struct worker *w)
{
	sigset_t	 all, old;
	int		 error;

	sigfillset(&all);
	pthread_mutex_lock(&w->w_call_mtx);
	w->w_running = 1;
	pthread_sigmask(SIG_BLOCK, &all, &old);
	error = pthread_create(&w->w_thread, NULL, worker_main, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (error != 0) {
		w->w_running = 0;
		pthread_mutex_unlock(&w->w_call_mtx);
		log_err("worker %u: pthread_create: %s", w->w_id,
		    strerror(error));
		return -1;
	}
	w->w_joinable = 1;
	pthread_mutex_unlock(&w->w_call_mtx);
	return 0;
}

/* Wait for w's thread to end, if it has one. */
void
worker_join(struct worker *w)
{
	int	 started;

	pthread_mutex_lock(&w->w_call_mtx);
	started = w->w_joinable;
	w->w_joinable = 0;
	pthread_mutex_unlock(&w->w_call_mtx);
	if (started)
		pthread_join(w->w_thread, NULL);
}

/* On w's loop: take a reference on gen for w's new requests. */
void
worker_use_gen(struct worker *w, struct generation *gen)
{
	struct generation	*old = w->w_gen;

	w->w_gen = gen_get(gen);
	w->w_conf = gen->g_conf;
	if (old != NULL)
		gen_put(old);
}

static void
stop_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker	*w = arg;

	log_warnx("shutdown_timeout reached with %u connections open; "
	    "exiting", w->w_nconns);
	event_base_loopexit(w->w_base, NULL);
}

/*
 * On w's loop, the graceful stop: no new connections, idle ones closed,
 * in-flight requests finished; the loop ends when the last goes, or at
 * shutdown_timeout.
 */
void
worker_stop(struct worker *w)
{
	struct conn	*c, *next;
	struct timeval	 tv;

	if (w->w_stopping)
		return;
	w->w_stopping = 1;
	listener_close_all(w);
	ppaccept_close_all(w);
	upstream_drop_idle(w);
	for (c = TAILQ_FIRST(&w->w_conns); c != NULL; c = next) {
		next = TAILQ_NEXT(c, cn_entry);
		conn_stop(c);
	}
	if (w->w_nconns == 0) {
		event_base_loopexit(w->w_base, NULL);
		return;
	}
	tv = msec_tv(w->w_conf->proxy.shutdown_timeout_ms);
	w->w_stop_timer = evtimer_new(w->w_base, stop_timeout_cb, w);
	if (w->w_stop_timer == NULL || evtimer_add(w->w_stop_timer,
	    &tv) == -1)
		event_base_loopexit(w->w_base, NULL);
}

struct sum {
	struct metrics		*s_metrics;
	struct metrics_gauges	*s_gauges;
};

static void
sum_cb(struct worker *w, void *arg)
{
	struct sum	*s = arg;
	size_t		 i;

	metrics_add(s->s_metrics, &w->w_metrics);
	s->s_gauges->client_connections += w->w_nconns;
	for (i = 0; i < w->w_nservers; i++) {
		s->s_gauges->upstream_active += w->w_servers[i]->sv_active;
		s->s_gauges->upstream_idle += w->w_servers[i]->sv_nidle;
	}
}

/*
 * A scrape: every worker's counters added into m (initialised by the
 * caller), and their connection and pool gauges into g. Each worker adds
 * its own on its own loop, one after the other.
 */
void
worker_sum(struct proxy *px, struct metrics *m, struct metrics_gauges *g)
{
	struct sum	 s = { m, g };
	unsigned int	 i;

	for (i = 0; i < px->px_nworkers; i++)
		worker_call(px->px_workers[i], sum_cb, &s);
}

/*
 * After its loop has ended: cut what is left (past shutdown_timeout) and
 * free it all, its loop too.
 */
void
worker_free(struct worker *w)
{
	struct conn	*c;

	if (w == NULL)
		return;
	w->w_stopping = 1;	/* tells no other worker of its servers */
	if (w->w_base != NULL) {
		while ((c = TAILQ_FIRST(&w->w_conns)) != NULL)
			conn_shutdown(c);
		ppaccept_close_all(w);
		upstream_drop_idle(w);
		event_base_loop(w->w_base, EVLOOP_NONBLOCK);
	}
	if (w->w_stop_timer != NULL)
		event_free(w->w_stop_timer);
	if (w->w_call_ev != NULL)
		event_free(w->w_call_ev);
	if (w->w_health_ev != NULL)
		event_free(w->w_health_ev);
	if (w->w_alog_ev != NULL)
		event_free(w->w_alog_ev);
	if (w->w_admit_ev != NULL)
		event_free(w->w_admit_ev);
	accesslog_buf_free(&w->w_alog);
	listener_close_all(w);
	upstream_free(w);
	shed_worker_free(w);
	metrics_free(&w->w_metrics);
	if (w->w_gen != NULL)
		gen_put(w->w_gen);
	if (w->w_base != NULL)
		event_base_free(w->w_base);
	pthread_mutex_destroy(&w->w_call_mtx);
	pthread_cond_destroy(&w->w_call_cv);
	free(w);
}
