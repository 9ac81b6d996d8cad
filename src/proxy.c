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
 * Workers. Where worker threads will draw the line (one worker today):
 * - shared by every worker: the configuration generation (px_gen, its
 *   count to become atomic), admission (the token buckets), the limiter
 *   and the queue with their congestion memory, metrics, the stop flag,
 *   and the admin listener (served on the first worker's loop);
 * - owned by one worker and touched only from its event loop: its
 *   event_base, its listeners (SO_REUSEPORT: one socket per worker), its
 *   client connections, its backend servers' pools of idle connections and
 *   its timers (accept pause, queue deadline, kick, log flush, stop).
 * struct proxy (spillway.h) lists its members in these two groups.
 */
#include <sys/random.h>
#include <sys/resource.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "config.h"
#include "fault.h"
#include "spillway.h"
#include "log.h"
#include "notify.h"

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

static void
flush_cb(evutil_socket_t fd, short what, void *arg)
{
	accesslog_flush();
}

/* A runtime with no configuration yet: its loop, its timers, its seed. */
int
proxy_init(struct proxy *px)
{
	struct timeval	 second = { 1, 0 };
	uint8_t		 seed[16];

	memset(px, 0, sizeof(*px));
	TAILQ_INIT(&px->px_listeners);
	TAILQ_INIT(&px->px_staged);
	TAILQ_INIT(&px->px_conns);
	TAILQ_INIT(&px->px_ppwait);
	px->px_started = now_usec();
	px->px_accepting = 1;
	px->px_reload = proxy_reload;
	metrics_init(&px->px_metrics);
	if ((px->px_base = base_new()) == NULL) {
		log_err("cannot create the event loop");
		return -1;
	}
	if (getrandom(px->px_seed, sizeof(px->px_seed), 0) !=
	    (ssize_t)sizeof(px->px_seed)) {
		log_err("getrandom: %s", strerror(errno));
		return -1;
	}
	/* its own seed: fault draws say nothing of admission's hash key */
	if (getrandom(seed, sizeof(seed), 0) != (ssize_t)sizeof(seed)) {
		log_err("getrandom: %s", strerror(errno));
		return -1;
	}
	fault_rng_seed(&px->px_fault_rng, seed, sizeof(seed));
	px->px_flush_timer = event_new(px->px_base, -1, EV_PERSIST, flush_cb,
	    NULL);
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
fit_fd_limit(const struct config *conf)
{
	struct rlimit	 rl;
	uint64_t	 want, pool, fit, fixed;

	pool = (uint64_t)conf->backend.keepalive * conf->backend.nservers;
	/* listeners, the reserve, and the admin listener's own connections */
	fixed = SPILLWAY_FD_RESERVE + conf->proxy.nlisten + conf->tls.nlisten +
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

/*
 * Put conf in force, taking it: at start-up (no generation yet) or on a
 * reload, the same steps. Every subsystem prepares, then all commit, or
 * all abort and the running generation stays untouched: -1, with every
 * "FILE:LINE: message" line in *errorsp (malloc'd) if asked.
 */
int
proxy_configure(struct proxy *px, struct config *conf, char **errorsp)
{
	struct generation	*gen, *old = px->px_gen;
	const char		*path = conf->path;
	char			 err[1400], msg[1500];
	int			 first = old == NULL;
	uint64_t		 now = now_usec();
	unsigned int		 max_conns;
	size_t			 i;

	if (errorsp != NULL)
		*errorsp = NULL;
	/*
	 * The descriptor limit first: raising it is harmless if what follows
	 * fails, and a start-up that fails to bind still says it was short.
	 */
	max_conns = fit_fd_limit(conf);
	if ((gen = gen_new(conf, err, sizeof(err))) == NULL) {
		snprintf(msg, sizeof(msg), "%s\n", err);
		configure_failed(px, msg, errorsp);
		return -1;
	}

	/* prepare: beside what runs; each step is undone at fail */
	if (listener_prepare(px, conf, err, sizeof(err)) == -1 ||
	    accesslog_prepare(conf->proxy.access_log,
	    conf->proxy.access_log_format, conf->proxy.access_log_facility,
	    err, sizeof(err)) == -1 ||
	    admin_prepare(px, conf, err, sizeof(err)) == -1)
		goto fail;
	if (upstream_prepare(px, conf) == -1 ||
	    (first && shed_init(px, conf) == -1) ||
	    (first && (px->px_adm = admission_new(conf, px->px_seed,
	    now)) == NULL) ||
	    (first && (px->px_cluster = cluster_new(px->px_base,
	    px->px_adm)) == NULL))
		goto nomem;
	/*
	 * Admission changes in place; if that fails, only its table of
	 * client buckets may have changed size, nothing else.
	 */
	if (!first && admission_reconfigure(px->px_adm, conf, now) == -1)
		goto nomem;

	/* the point of no return: commit all, nothing fails from here on */
	listener_commit(px);
	accesslog_commit();
	admin_commit(px);
	upstream_commit(px, conf);	/* compares with px_conf, the old */
	if (!first)
		shed_reconfigure(px, conf);
	cluster_configure(px->px_cluster, conf);
	gen->g_id = first ? 1 : old->g_id + 1;
	px->px_gen = gen;	/* its one reference is the proxy's now */
	px->px_conf = conf;
	/* every class's series from the start, at zero (NULL: no room) */
	for (i = 0; i < conf->nclasses; i++)
		(void)metrics_class(&px->px_metrics, conf->classes[i].name);
	if (old != NULL)
		gen_put(old);
	px->px_max_conns = max_conns;
	listener_update(px);
	if (!first) {
		px->px_metrics.m_reloads_ok++;
		log_info("reloaded %s: configuration generation %lu", path,
		    gen->g_id);
	}
	return 0;

 nomem:
	snprintf(err, sizeof(err), "out of memory");
 fail:
	listener_abort(px);
	accesslog_abort();
	admin_abort(px);
	upstream_abort(px);
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

/* Start-up: the runtime and the file's configuration in force. */
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
	if (proxy_init(px) == -1) {
		config_free(conf);
		return -1;
	}
	if (proxy_configure(px, conf, NULL) == -1)
		return -1;
	log_info("spillway %s started: %zu backend servers, up to %u "
	    "connections", PACKAGE_VERSION, px->px_nservers, px->px_max_conns);
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
stop_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct proxy	*px = arg;

	log_warnx("shutdown_timeout reached with %u connections open; "
	    "exiting", px->px_nconns);
	event_base_loopexit(px->px_base, NULL);
}

/*
 * Graceful stop: no new connections, idle ones closed, in-flight requests
 * finished; the loop ends when the last goes, or at shutdown_timeout.
 */
void
proxy_stop(struct proxy *px)
{
	struct conn	*c, *next;
	struct timeval	 tv;

	if (px->px_stopping)
		return;
	px->px_stopping = 1;
	notify_stopping();
	log_info("stopping: %u connections to finish", px->px_nconns);
	listener_close_all(px);
	ppaccept_close_all(px);
	admin_close(px);
	upstream_drop_idle(px);
	for (c = TAILQ_FIRST(&px->px_conns); c != NULL; c = next) {
		next = TAILQ_NEXT(c, cn_entry);
		conn_stop(c);
	}
	if (px->px_nconns == 0) {
		event_base_loopexit(px->px_base, NULL);
		return;
	}
	tv = msec_tv(px->px_conf->proxy.shutdown_timeout_ms);
	px->px_stop_timer = evtimer_new(px->px_base, stop_timeout_cb, px);
	if (px->px_stop_timer == NULL || evtimer_add(px->px_stop_timer,
	    &tv) == -1)
		event_base_loopexit(px->px_base, NULL);
}

/* After the loop: cut what is left (past shutdown_timeout), free it all. */
void
proxy_free(struct proxy *px)
{
	struct conn	*c;

	if (px->px_base != NULL) {
		while ((c = TAILQ_FIRST(&px->px_conns)) != NULL)
			conn_shutdown(c);
		ppaccept_close_all(px);
		upstream_drop_idle(px);
		event_base_loop(px->px_base, EVLOOP_NONBLOCK);
	}
	if (px->px_flush_timer != NULL)
		event_free(px->px_flush_timer);
	if (px->px_stop_timer != NULL)
		event_free(px->px_stop_timer);
	listener_close_all(px);
	admin_close(px);
	upstream_free(px);
	shed_free(px);
	cluster_free(px->px_cluster);
	admission_free(px->px_adm);
	metrics_free(&px->px_metrics);
	accesslog_close();
	if (px->px_gen != NULL)
		gen_put(px->px_gen);
	if (px->px_base != NULL)
		event_base_free(px->px_base);
	memset(px, 0, sizeof(*px));
}
