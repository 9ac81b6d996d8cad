/*
 * proxy.c: the proxy runtime. Configuration generations, the one sequence
 * that start-up and reload both run, the graceful stop and the teardown.
 *
 * Start-up is a reload from nothing (nginx's ngx_init_cycle, run from
 * main and from the reload path alike): proxy_configure() makes a
 * generation of a parsed configuration (its TLS contexts built), asks every
 * subsystem to prepare for it beside what runs (listeners and the admin
 * listener bound but not accepting, the access log opened, new backend
 * servers made, on the first run the limiter, queue and admission state),
 * then commits all or aborts all. Nothing live changes before the point of
 * no return, marked below; nothing fails after it. A bad file, a port in
 * use or a missing certificate thus leaves the running generation alone.
 *
 * Generations (gen.c): px_gen is the one in force and holds one reference;
 * every connection holds one on the generation its request started with.
 * The old one is freed when its last reference goes.
 *
 * Nothing calls back into this file: the modules below it are handed what
 * they need (the admin listener its reload function, a connection its
 * generation), so the runtime sits on top of the dependency graph.
 *
 * Workers (worker.c). The line between what is shared and what a worker
 * owns:
 * - shared by every worker: the configuration generation (px_gen; each
 *   worker holds its own reference, w_gen, swapped at a safe point of its
 *   loop; the count is atomic), admission (the token buckets, under
 *   px_adm_mtx), the limiter and the queue with their congestion memory
 *   (under px_shed_mtx), the stop flag, and the admin listener (served on
 *   worker 0's loop, the main thread's);
 * - owned by one worker and touched only from its event loop: its
 *   event_base, its listeners (SO_REUSEPORT: one socket per worker), its
 *   client connections, its backend servers' pools of idle connections,
 *   its timers (accept pause, queue deadline, kick, loop lag, stop) and its
 *   counters, summed at scrape time.
 * The sequence below reaches each worker's part through worker_call();
 * no thread touches another worker's events but to activate them.
 */
#include <sys/random.h>
#include <sys/resource.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "config.h"
#include "fault.h"
#include "spillway.h"
#include "log.h"
#include "notify.h"

/* Every second: each worker writes its access log lines, on its loop. */
static void
flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct proxy	*px = arg;
	unsigned int	 i;

	for (i = 0; i < px->px_nworkers; i++)
		event_active(px->px_workers[i]->w_alog_ev, EV_TIMEOUT, 0);
}

static void
alog_flush_cb(struct worker *w, void *arg)
{
	accesslog_flush(&w->w_alog);
}

/*
 * SIGUSR1: the access log goes to a new file at its path; what the
 * workers buffered before goes to the old one, then it is closed.
 */
void
proxy_reopen_log(struct proxy *px)
{
	unsigned int	 i;

	if (accesslog_reopen() == -1)
		return;
	for (i = 0; i < px->px_nworkers; i++)
		worker_call(px->px_workers[i], alog_flush_cb, NULL);
	accesslog_prev_close();
}

/*
 * A runtime with no configuration yet: its workers (nworkers, one per
 * loop; threads are started by proxy_start), its timers, its seed. With
 * more than one worker, libevent's locking is turned on first.
 */
int
proxy_init(struct proxy *px, unsigned int nworkers)
{
	struct timeval	 second = { 1, 0 };
	unsigned int	 i;
	uint8_t		 seed[16];

	memset(px, 0, sizeof(*px));
	px->px_started = now_usec();
	px->px_reload = proxy_reload;
	pthread_mutex_init(&px->px_adm_mtx, NULL);
	pthread_mutex_init(&px->px_shed_mtx, NULL);
	pthread_mutex_init(&px->px_health_mtx, NULL);
	metrics_init(&px->px_metrics);
	if (nworkers > 1 && evthread_use_pthreads() == -1) {
		log_err("cannot turn on libevent's threads support");
		return -1;
	}
	if ((px->px_workers = calloc(nworkers, sizeof(*px->px_workers))) ==
	    NULL) {
		log_err("out of memory");
		return -1;
	}
	px->px_nworkers = nworkers;
	for (i = 0; i < nworkers; i++) {
		if ((px->px_workers[i] = worker_new(px, i, NULL)) == NULL) {
			log_err("cannot create the event loop of worker %u",
			    i);
			return -1;
		}
	}
	px->px_base = px->px_workers[0]->w_base;
	if (getrandom(px->px_seed, sizeof(px->px_seed), 0) !=
	    (ssize_t)sizeof(px->px_seed)) {
		log_err("getrandom: %s", strerror(errno));
		return -1;
	}
	/*
	 * Each worker its own seed: fault draws say nothing of admission's
	 * hash key, nor of each other's.
	 */
	for (i = 0; i < nworkers; i++) {
		if (getrandom(seed, sizeof(seed), 0) != (ssize_t)sizeof(seed)) {
			log_err("getrandom: %s", strerror(errno));
			return -1;
		}
		fault_rng_seed(&px->px_workers[i]->w_fault_rng, seed,
		    sizeof(seed));
	}
	px->px_flush_timer = event_new(px->px_base, -1, EV_PERSIST, flush_cb,
	    px);
	if (px->px_flush_timer == NULL ||
	    evtimer_add(px->px_flush_timer, &second) == -1) {
		log_err("cannot start the log timer");
		return -1;
	}
	return 0;
}

/*
 * Each client may hold two descriptors (its own and a backend's), idle
 * pooled connections hold more: raise the soft limit as far as allowed and
 * lower the connection cap to what fits, keeping a reserve.
 */
static unsigned int
fit_fd_limit(const struct config *conf, unsigned int nworkers)
{
	struct rlimit	 rl;
	uint64_t	 want, pool, fit, fixed;

	/* every worker has its own pools and its own listening sockets */
	pool = (uint64_t)conf->backend.keepalive * conf->backend.nservers *
	    nworkers;
	/* listeners, the reserve, and the admin listener's own connections */
	fixed = SPILLWAY_FD_RESERVE + (uint64_t)(conf->proxy.nlisten +
	    conf->tls.nlisten) * nworkers +
	    (conf->admin.nlisten > 0 ? 1 + conf->admin.max_connections : 0);
	want = 2 * (uint64_t)conf->proxy.max_connections + pool + fixed;
	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		return conf->proxy.max_connections;
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
		rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >
		    want ? want : rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= want)
		return conf->proxy.max_connections;
	if (pool > rl.rlim_cur / 4)
		pool = rl.rlim_cur / 4;
	fit = rl.rlim_cur > pool + fixed ? (rl.rlim_cur - pool - fixed) / 2 :
	    1;
	if (fit < 1)
		fit = 1;
	log_warnx("open file limit %llu allows %llu of max_connections "
	    "%u", (unsigned long long)rl.rlim_cur,
	    (unsigned long long)fit, conf->proxy.max_connections);
	return (unsigned int)fit;
}

/*
 * `spillway -t`: load the file and build its TLS contexts, bind nothing.
 * Every problem goes to stderr as "FILE:LINE: message".
 */
int
proxy_check(const char *path)
{
	struct generation	*gen;
	struct config		*conf;
	char			*errors = NULL, err[1400];

	if ((conf = config_load(path, &errors)) == NULL) {
		fputs(errors != NULL ? errors : "configuration invalid\n",
		    stderr);
		free(errors);
		return -1;
	}
	if ((gen = gen_new(conf, err, sizeof(err))) == NULL) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	gen_free(gen);
	return 0;
}

/*
 * A failed start-up or reload: log each "FILE:LINE: message" line, count
 * a failed reload, and hand the lines to the caller if asked.
 */
static void
configure_failed(struct proxy *px, const char *errors, char **errorsp)
{
	const char	*line, *nl;

	if (px->px_gen != NULL)
		px->px_metrics.m_reloads_failed++;
	for (line = errors; line != NULL && *line != '\0'; line = nl) {
		if ((nl = strchr(line, '\n')) == NULL)
			nl = line + strlen(line);
		if (px->px_gen != NULL)
			log_warnx("reload failed: %.*s", (int)(nl - line),
			    line);
		else
			log_err("%.*s", (int)(nl - line), line);
		if (*nl == '\n')
			nl++;
	}
	if (errorsp != NULL)
		*errorsp = strdup(errors);
}

/* What every worker prepares, commits or aborts on its own loop. */
struct wstep {
	const struct config	*ws_conf;
	struct generation	*ws_gen;
	unsigned int		 ws_max_conns;	/* a worker's share */
	char			 ws_err[1400];
	int			 ws_rc;
};

static void
prepare_cb(struct worker *w, void *arg)
{
	struct wstep	*ws = arg;

	ws->ws_rc = -1;
	if (listener_prepare(w, ws->ws_conf, ws->ws_err,
	    sizeof(ws->ws_err)) == -1)
		return;
	if (upstream_prepare(w, ws->ws_conf) == -1) {
		snprintf(ws->ws_err, sizeof(ws->ws_err), "out of memory");
		return;
	}
	ws->ws_rc = 0;
}

static void
abort_cb(struct worker *w, void *arg)
{
	listener_abort(w);
	upstream_abort(w);
}

/* The worker's safe point: between two callbacks of its own loop. */
static void
commit_cb(struct worker *w, void *arg)
{
	struct wstep	*ws = arg;

	accesslog_flush(&w->w_alog);	/* for the access log before */
	listener_commit(w);
	upstream_commit(w, ws->ws_conf);	/* compares with w_conf, the old */
	worker_use_gen(w, ws->ws_gen);
	upstream_health_publish(w);	/* slow start's length may change */
	w->w_max_conns = ws->ws_max_conns;
	listener_update(w);
}

/*
 * Put conf in force, taking it: at start-up (no generation yet) or on a
 * reload, the same steps. Every subsystem prepares, then all commit, or
 * all abort and the running generation stays untouched: -1, with every
 * "FILE:LINE: message" line in *errorsp (malloc'd) if asked.
 *
 * With several workers, each prepares, commits or aborts its own part
 * (listeners, backend pools, its generation) on its own loop
 * (worker_call()); the generation is built once, here.
 */
int
proxy_configure(struct proxy *px, struct config *conf, char **errorsp)
{
	struct generation	*gen, *old = px->px_gen;
	const char		*path = conf->path;
	char			 err[1400], msg[1500];
	int			 first = old == NULL, rc;
	uint64_t		 now = now_usec();
	unsigned int		 max_conns, i, nprep = 0;
	struct wstep		 ws;

	if (errorsp != NULL)
		*errorsp = NULL;
	/*
	 * The descriptor limit first: raising it is harmless if what follows
	 * fails, and a start-up that fails to bind still says it was short.
	 */
	max_conns = fit_fd_limit(conf, px->px_nworkers);	/* those running */
	if ((gen = gen_new(conf, err, sizeof(err))) == NULL) {
		snprintf(msg, sizeof(msg), "%s\n", err);
		configure_failed(px, msg, errorsp);
		return -1;
	}
	if (!first && worker_count(conf) != px->px_nworkers)
		log_warnx("%s: workers = %u takes a restart; still %u",
		    path, worker_count(conf), px->px_nworkers);

	/* prepare: beside what runs; each step is undone at fail */
	memset(&ws, 0, sizeof(ws));
	ws.ws_conf = conf;
	ws.ws_gen = gen;
	/* the cap is shared out: each worker a share, rounded up */
	ws.ws_max_conns = (max_conns + px->px_nworkers - 1) / px->px_nworkers;
	for (nprep = 0; nprep < px->px_nworkers; nprep++) {
		worker_call(px->px_workers[nprep], prepare_cb, &ws);
		if (ws.ws_rc == -1) {
			nprep++;	/* undo its half-done part too */
			snprintf(err, sizeof(err), "%s", ws.ws_err);
			goto fail;
		}
	}
	if (accesslog_prepare(conf->proxy.access_log,
	    conf->proxy.access_log_format, conf->proxy.access_log_facility,
	    err, sizeof(err)) == -1 ||
	    admin_prepare(px, conf, err, sizeof(err)) == -1)
		goto fail;
	if ((first && shed_init(px, conf) == -1) ||
	    (first && (px->px_adm = admission_new(conf, px->px_seed,
	    now)) == NULL) ||
	    (first && (px->px_cluster = cluster_new(px->px_base,
	    px->px_adm, &px->px_adm_mtx)) == NULL))
		goto nomem;
	if (first)
		px->px_adm_gen = 1;	/* no worker runs yet */
	/*
	 * Admission changes in place; if that fails, only its table of
	 * client buckets may have changed size, nothing else.
	 */
	if (!first) {
		pthread_mutex_lock(&px->px_adm_mtx);
		rc = admission_reconfigure(px->px_adm, conf, now);
		if (rc == 0)
			px->px_adm_gen = old->g_id + 1;	/* gen's, below */
		pthread_mutex_unlock(&px->px_adm_mtx);
		if (rc == -1)
			goto nomem;
	}

	/* the point of no return: commit all, nothing fails from here on */
	accesslog_commit();
	admin_commit(px);
	if (!first)
		shed_reconfigure(px, conf);
	cluster_configure(px->px_cluster, conf);
	gen->g_id = first ? 1 : old->g_id + 1;
	px->px_gen = gen;	/* its one reference is the proxy's now */
	px->px_conf = conf;
	/* every class's series from the start, at zero (NULL: no room) */
	for (i = 0; i < conf->nclasses; i++)
		(void)metrics_class(&px->px_metrics, conf->classes[i].name);
	/*
	 * Worker 0 last: the others' servers share its servers' health
	 * (upstream_commit()), so its retired servers go after theirs.
	 */
	for (i = px->px_nworkers; i > 0; i--)
		worker_call(px->px_workers[i - 1], commit_cb, &ws);
	accesslog_prev_close();
	if (old != NULL)
		gen_put(old);
	if (!first) {
		px->px_metrics.m_reloads_ok++;
		log_info("reloaded %s: configuration generation %lu", path,
		    gen->g_id);
	}
	return 0;

 nomem:
	snprintf(err, sizeof(err), "out of memory");
 fail:
	for (i = 0; i < nprep; i++)
		worker_call(px->px_workers[i], abort_cb, &ws);
	accesslog_abort();
	admin_abort(px);
	if (first) {
		shed_free(px);
		cluster_free(px->px_cluster);
		px->px_cluster = NULL;
		admission_free(px->px_adm);
		px->px_adm = NULL;
	}
	/* errors of binding name their own FILE:LINE; others the file */
	if (strncmp(err, path, strlen(path)) == 0)
		snprintf(msg, sizeof(msg), "%s\n", err);
	else
		snprintf(msg, sizeof(msg), "%s: %s\n", path, err);
	gen_free(gen);
	configure_failed(px, msg, errorsp);
	return -1;
}

/*
 * Start-up: the runtime and the file's configuration in force, listening;
 * the workers beyond the first start with proxy_run(), once main watches
 * the signals.
 */
int
proxy_start(struct proxy *px, const char *path)
{
	struct config	*conf;
	char		*errors = NULL;

	if ((conf = config_load(path, &errors)) == NULL) {
		fputs(errors != NULL ? errors : "configuration invalid\n",
		    stderr);
		free(errors);
		return -1;
	}
	if (proxy_init(px, worker_count(conf)) == -1) {
		config_free(conf);
		return -1;
	}
	if (proxy_configure(px, conf, NULL) == -1)
		return -1;
	return 0;
}

/*
 * The workers beyond the first, each on a thread of its own (they block
 * the signals: main, which watches them, must have started to before).
 */
int
proxy_run(struct proxy *px)
{
	unsigned int	 i, max_conns;

	for (i = 1; i < px->px_nworkers; i++)
		if (worker_start(px->px_workers[i]) == -1)
			return -1;
	max_conns = px->px_workers[0]->w_max_conns * px->px_nworkers;
	if (px->px_nworkers == 1)
		log_info("spillway %s started: %zu backend servers, up to %u "
		    "connections", PACKAGE_VERSION,
		    px->px_conf->backend.nservers, max_conns);
	else
		log_info("spillway %s started: %zu backend servers, up to %u "
		    "connections, %u workers", PACKAGE_VERSION,
		    px->px_conf->backend.nservers, max_conns,
		    px->px_nworkers);
	return 0;
}

/*
 * SIGHUP or POST /reload: parse and validate the file again, then
 * proxy_configure(). Anything wrong leaves the running generation
 * untouched: -1, with every "FILE:LINE: message" in *errorsp if asked.
 */
int
proxy_reload(struct proxy *px, char **errorsp)
{
	struct config	*conf;
	char		*errors = NULL;
	int		 rc;

	if (errorsp != NULL)
		*errorsp = NULL;
	if (px->px_stopping) {
		configure_failed(px, "reload refused: stopping\n", errorsp);
		return -1;
	}
	notify_reloading();
	if ((conf = config_load(px->px_conf->path, &errors)) == NULL) {
		configure_failed(px, errors != NULL ? errors : "invalid\n",
		    errorsp);
		free(errors);
		notify_ready();
		return -1;
	}
	rc = proxy_configure(px, conf, errorsp);
	notify_ready();
	return rc;
}

static void
count_cb(struct worker *w, void *arg)
{
	*(unsigned int *)arg += w->w_nconns;
}

static void
stop_cb(struct worker *w, void *arg)
{
	worker_stop(w);
}

/*
 * Graceful stop, on every worker: no new connections, idle ones closed,
 * in-flight requests finished; each worker's loop ends when its last
 * connection goes, or at shutdown_timeout, and proxy_free() waits for them.
 */
void
proxy_stop(struct proxy *px)
{
	unsigned int	 i, n = 0;

	if (px->px_stopping)
		return;
	px->px_stopping = 1;
	notify_stopping();
	for (i = 0; i < px->px_nworkers; i++)
		worker_call(px->px_workers[i], count_cb, &n);
	log_info("stopping: %u connections to finish", n);
	admin_close(px);
	for (i = 0; i < px->px_nworkers; i++)
		worker_call(px->px_workers[i], stop_cb, NULL);
}

/*
 * After the main loop: wait for the other workers' loops to end, cut what
 * is left (past shutdown_timeout), free it all.
 */
void
proxy_free(struct proxy *px)
{
	unsigned int	 i;

	for (i = 1; i < px->px_nworkers; i++)
		worker_join(px->px_workers[i]);
	if (px->px_flush_timer != NULL)
		event_free(px->px_flush_timer);
	admin_close(px);
	/* its events are on worker 0's loop, freed below */
	cluster_free(px->px_cluster);
	px->px_cluster = NULL;
	/* the others first: worker 0's loop is the admin's too */
	for (i = px->px_nworkers; i > 0; i--)
		worker_free(px->px_workers[i - 1]);
	free(px->px_workers);
	shed_free(px);
	admission_free(px->px_adm);
	metrics_free(&px->px_metrics);
	accesslog_close();
	if (px->px_gen != NULL)
		gen_put(px->px_gen);
	pthread_mutex_destroy(&px->px_adm_mtx);
	pthread_mutex_destroy(&px->px_shed_mtx);
	pthread_mutex_destroy(&px->px_health_mtx);
	memset(px, 0, sizeof(*px));
}
