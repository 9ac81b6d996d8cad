/*
 * main.c: command line, start-up, signals and graceful stop.
 *
 * Signals are turned into events of the loop: nothing runs in a signal
 * handler. SIGTERM and SIGINT stop gracefully (no new connections, idle
 * ones closed, in-flight requests finished, exit by shutdown_timeout);
 * SIGUSR1 reopens the access log; SIGHUP reloads the configuration (as
 * POST /reload on the admin listener does).
 *
 * Configuration generations: px_conf is the one in force and holds one
 * reference; every connection holds one on the generation its request
 * started with. A reload builds and validates the new one, binds what it
 * needs, and only then swaps; the old one is freed when its last reference
 * goes.
 */
#include <sys/random.h>
#include <sys/resource.h>

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/crypto.h>

#include "config.h"
#include "spillway.h"
#include "log.h"
#include "notify.h"

#define HANDSHAKE_BATCH		4	/* handshake callbacks per look */

#ifndef SPILLWAY_CONF
#define SPILLWAY_CONF	"/etc/spillway/spillway.ini"
#endif

static struct proxy	proxy;

#ifndef INIH_VERSION
#define INIH_VERSION	"unknown"
#endif
#ifndef SPILLWAY_FEATURES
#define SPILLWAY_FEATURES	"tls"
#endif

/* -h prints it on stdout and exits 0; a usage error, on stderr with 2. */
static void __attribute__((noreturn))
usage(int status)
{
	fprintf(status ? stderr : stdout,
	    "usage: spillway [-c FILE] [-t] [-V] [-h]\n"
	    "  -c FILE        configuration (default: %s)\n"
	    "  -t             check the configuration and exit\n"
	    "  -V, --version  print the versions and features and exit\n"
	    "  -h, --help     print this help and exit\n", SPILLWAY_CONF);
	exit(status);
}

static void __attribute__((noreturn))
version(void)
{
	printf("spillway %s\n"
	    "libevent %s\n"
	    "%s\n"
	    "inih %s\n"
	    "features: %s\n", PACKAGE_VERSION, event_get_version(),
	    OpenSSL_version(OPENSSL_VERSION), INIH_VERSION, SPILLWAY_FEATURES);
	exit(0);
}

uint64_t
now_usec(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
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

/* A connection went away: accept again, or finish a graceful stop. */
void
proxy_conn_gone(struct proxy *px)
{
	listener_update(px);
	if (px->px_stopping && px->px_nconns == 0)
		event_base_loopexit(px->px_base, NULL);
}

static void
stop_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct proxy	*px = arg;

	log_warnx("shutdown_timeout reached with %u connections open; "
	    "exiting", px->px_nconns);
	event_base_loopexit(px->px_base, NULL);
}

static void
proxy_stop(struct proxy *px)
{
	struct conn	*c, *next;
	struct timeval	 tv;
	uint64_t	 ms = px->px_conf->proxy.shutdown_timeout_ms;

	if (px->px_stopping)
		return;
	px->px_stopping = 1;
	notify_stopping();
	log_info("stopping: %u connections to finish", px->px_nconns);
	listener_close_all(px);
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
	tv = msec_tv(ms);
	px->px_stop_timer = evtimer_new(px->px_base, stop_timeout_cb, px);
	if (px->px_stop_timer == NULL || evtimer_add(px->px_stop_timer,
	    &tv) == -1)
		event_base_loopexit(px->px_base, NULL);
}

static void
signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct proxy	*px = arg;

	switch (sig) {
	case SIGTERM:
	case SIGINT:
		proxy_stop(px);
		break;
	case SIGUSR1:
		log_info("reopening the access log");
		accesslog_reopen();
		break;
	case SIGHUP:
		proxy_reload(px, NULL);
		break;
	}
}

/* A generation and what it holds besides plain data (its TLS contexts). */
static void
conf_free(struct config *conf)
{
	if (conf != NULL)
		tls_free(conf->tls_rt);
	config_free(conf);
}

/*
 * Load a configuration and build its TLS contexts: NULL with every
 * "FILE:LINE: message" in *errors (malloc'd) if either fails.
 */
static struct config *
conf_load(const char *path, char **errors)
{
	struct config	*conf;
	char		 err[1400];

	if ((conf = config_load(path, errors)) == NULL)
		return NULL;
	conf->tls_rt = tls_new(conf, err, sizeof(err));
	if (err[0] != '\0') {
		config_free(conf);
		if ((*errors = malloc(strlen(err) + 2)) != NULL)
			snprintf(*errors, strlen(err) + 2, "%s\n", err);
		return NULL;
	}
	return conf;
}

/* Drop a reference to a configuration; free it with the last one. */
void
proxy_conf_put(struct proxy *px, struct config *conf)
{
	if (--conf->refs == 0 && conf != px->px_conf)
		conf_free(conf);
}

static void
reload_failed(struct proxy *px, const char *errors, char **errorsp)
{
	const char	*line, *nl;

	px->px_metrics.m_reloads_failed++;
	for (line = errors; line != NULL && *line != '\0'; line = nl) {
		if ((nl = strchr(line, '\n')) == NULL)
			nl = line + strlen(line);
		log_warnx("reload failed: %.*s", (int)(nl - line), line);
		if (*nl == '\n')
			nl++;
	}
	if (errorsp != NULL)
		*errorsp = strdup(errors);
}

/*
 * Reload the configuration file: parse and validate a new generation,
 * bind its new listeners (and admin listener, and open its access log),
 * then swap it in, carrying over listeners, pools, buckets, the learned
 * limit and the waiters. Anything wrong leaves the running one untouched:
 * -1, with every "FILE:LINE: message" in *errors (malloc'd) if asked.
 */
int
proxy_reload(struct proxy *px, char **errorsp)
{
	struct config	*old = px->px_conf, *nc;
	char		*errors = NULL, err[600], msg[700];
	const char	*oldlog = old->proxy.access_log;
	const char	*newlog;
	uint64_t	 now = now_usec();

	if (errorsp != NULL)
		*errorsp = NULL;
	if (px->px_stopping) {
		reload_failed(px, "reload refused: stopping\n", errorsp);
		return -1;
	}
	notify_reloading();
	if ((nc = conf_load(old->path, &errors)) == NULL) {
		reload_failed(px, errors != NULL ? errors : "invalid\n",
		    errorsp);
		free(errors);
		notify_ready();
		return -1;
	}
	newlog = nc->proxy.access_log;
	if (listener_prepare(px, nc, err, sizeof(err)) == -1)
		goto fail;
	if ((oldlog == NULL) != (newlog == NULL) || (oldlog != NULL &&
	    strcmp(oldlog, newlog) != 0)) {
		if (accesslog_open(newlog, err, sizeof(err)) == -1)
			goto fail;
	}
	if (admin_apply(px, nc, err, sizeof(err)) == -1) {
		if (accesslog_open(oldlog, msg, sizeof(msg)) == -1)
			log_warnx("%s", msg);
		goto fail;
	}
	if (upstream_reconfigure(px, nc) == -1 ||
	    admission_reconfigure(px->px_adm, nc, now) == -1) {
		snprintf(err, sizeof(err), "out of memory");
		goto fail;	/* admin may have moved: logged below */
	}
	listener_commit(px);
	shed_reconfigure(px, nc);
	nc->generation = old->generation + 1;
	nc->refs = 1;
	px->px_conf = nc;
	proxy_conf_put(px, old);
	px->px_max_conns = fit_fd_limit(nc);
	listener_update(px);
	px->px_metrics.m_reloads_ok++;
	log_info("reloaded %s: configuration generation %lu", nc->path,
	    nc->generation);
	notify_ready();
	return 0;
 fail:
	listener_abort(px);
	/* errors of binding name their own FILE:LINE; others the file */
	if (strncmp(err, nc->path, strlen(nc->path)) == 0)
		snprintf(msg, sizeof(msg), "%s\n", err);
	else
		snprintf(msg, sizeof(msg), "%s: %s\n", nc->path, err);
	conf_free(nc);
	reload_failed(px, msg, errorsp);
	notify_ready();
	return -1;
}

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

static int
check_config(const char *path, struct config **confp)
{
	char	*errors = NULL;

	if ((*confp = conf_load(path, &errors)) == NULL) {
		fputs(errors != NULL ? errors : "configuration invalid\n",
		    stderr);
		free(errors);
		return -1;
	}
	return 0;
}

int
main(int argc, char *argv[])
{
	static const int signals[] = { SIGTERM, SIGINT, SIGUSR1, SIGHUP };
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct event	*sigev[4], *flush;
	struct timeval	 second = { 1, 0 };
	struct proxy	*px = &proxy;
	struct conn	*c;
	const char	*path = SPILLWAY_CONF;
	char		 err[512];
	uint8_t		 seed[16];
	int		 ch, test = 0, rc = 0;
	size_t		 i;

	opterr = 0;	/* our own messages, named "spillway", not argv[0] */
	while ((ch = getopt_long(argc, argv, ":c:tVh", longopts,
	    NULL)) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 't':
			test = 1;
			break;
		case 'V':
			version();
		case 'h':
			usage(0);
		case ':':
			fprintf(stderr, "spillway: option -%c needs an "
			    "argument\n", optopt);
			usage(2);
		default:
			if (strncmp(argv[optind - 1], "--", 2) == 0)
				fprintf(stderr, "spillway: invalid option "
				    "%s\n", argv[optind - 1]);
			else
				fprintf(stderr, "spillway: unknown option "
				    "-%c\n", optopt);
			usage(2);
		}
	}
	if (optind != argc) {
		fprintf(stderr, "spillway: unexpected argument '%s'\n",
		    argv[optind]);
		usage(2);
	}
	if (getenv("SPILLWAY_DEBUG") != NULL)
		log_init(LOG_LVL_DEBUG);

	if (check_config(path, &px->px_conf) == -1)
		return 1;
	if (test) {
		fprintf(stderr, "%s: configuration is valid\n", path);
		conf_free(px->px_conf);
		return 0;
	}

	signal(SIGPIPE, SIG_IGN);
	TAILQ_INIT(&px->px_listeners);
	TAILQ_INIT(&px->px_staged);
	TAILQ_INIT(&px->px_conns);
	px->px_conf->generation = 1;
	px->px_conf->refs = 1;
	px->px_started = now_usec();
	px->px_accepting = 1;
	metrics_init(&px->px_metrics);
	px->px_max_conns = fit_fd_limit(px->px_conf);
	if ((px->px_base = base_new()) == NULL) {
		log_err("cannot create the event loop");
		return 1;
	}
	if (getrandom(seed, sizeof(seed), 0) != (ssize_t)sizeof(seed)) {
		log_err("getrandom: %s", strerror(errno));
		return 1;
	}
	if ((px->px_adm = admission_new(px->px_conf, seed,
	    now_usec())) == NULL) {
		log_err("cannot set up admission: out of memory");
		return 1;
	}
	if (shed_init(px) == -1) {
		log_err("cannot set up the limiter and queue");
		return 1;
	}
	if (upstream_init(px) == -1) {
		log_err("cannot set up the backend servers: out of memory");
		return 1;
	}
	if (accesslog_open(px->px_conf->proxy.access_log, err,
	    sizeof(err)) == -1 ||
	    listener_prepare(px, px->px_conf, err, sizeof(err)) == -1 ||
	    admin_apply(px, px->px_conf, err, sizeof(err)) == -1) {
		log_err("%s", err);
		return 1;
	}
	listener_commit(px);
	for (i = 0; i < sizeof(signals) / sizeof(signals[0]); i++) {
		sigev[i] = evsignal_new(px->px_base, signals[i], signal_cb, px);
		if (sigev[i] == NULL || evsignal_add(sigev[i], NULL) == -1) {
			log_err("cannot watch signal %d", signals[i]);
			return 1;
		}
	}
	flush = event_new(px->px_base, -1, EV_PERSIST, flush_cb, NULL);
	if (flush == NULL || evtimer_add(flush, &second) == -1) {
		log_err("cannot start the log timer");
		return 1;
	}
	log_info("spillway %s started: %zu backend servers, up to %u "
	    "connections", PACKAGE_VERSION, px->px_nservers, px->px_max_conns);
	notify_ready();

	if (event_base_dispatch(px->px_base) == -1) {
		log_err("event loop failed");
		rc = 1;
	}
	/* past shutdown_timeout: cut what is left, let the frees run */
	while ((c = TAILQ_FIRST(&px->px_conns)) != NULL)
		conn_shutdown(c);
	event_base_loop(px->px_base, EVLOOP_NONBLOCK);
	log_info("stopped");
	for (i = 0; i < sizeof(signals) / sizeof(signals[0]); i++)
		event_free(sigev[i]);
	event_free(flush);
	if (px->px_stop_timer != NULL)
		event_free(px->px_stop_timer);
	listener_close_all(px);
	admin_close(px);
	upstream_free(px);
	shed_free(px);
	admission_free(px->px_adm);
	metrics_free(&px->px_metrics);
	accesslog_close();
	conf_free(px->px_conf);
	event_base_free(px->px_base);
	return rc;
}
