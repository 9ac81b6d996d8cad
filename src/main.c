/*
 * main.c: the command line, -t, signals and the event loop. The runtime
 * itself (configuration generations, start-up, reload, stop) is proxy.c.
 *
 * Signals are turned into events of the loop: nothing runs in a signal
 * handler. SIGTERM and SIGINT stop gracefully (no new connections, idle
 * ones closed, in-flight requests finished, exit by shutdown_timeout);
 * SIGUSR1 reopens the access log; SIGHUP reloads the configuration (as
 * POST /reload on the admin listener does).
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/crypto.h>

#include "spillway.h"
#include "log.h"
#include "notify.h"

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
		proxy_reopen_log(px);
		break;
	case SIGHUP:
		proxy_reload(px, NULL);
		break;
	}
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
	struct event	*sigev[4] = { NULL, NULL, NULL, NULL };
	sigset_t	 mask;
	struct proxy	*px = &proxy;
	const char	*path = SPILLWAY_CONF;
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

	if (test) {
		if (proxy_check(path) == -1)
			return 1;
		fprintf(stderr, "%s: configuration is valid\n", path);
		return 0;
	}

	signal(SIGPIPE, SIG_IGN);
	/*
	 * The listening sockets open before the loop watches the signals: a
	 * signal sent as soon as they show (a script, a test) waits, blocked,
	 * until it does, rather than kill the process or, ignored, be lost.
	 */
	sigemptyset(&mask);
	for (i = 0; i < sizeof(signals) / sizeof(signals[0]); i++)
		sigaddset(&mask, signals[i]);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	if (proxy_start(px, path) == -1)
		return 1;
	for (i = 0; i < sizeof(signals) / sizeof(signals[0]); i++) {
		sigev[i] = evsignal_new(px->px_base, signals[i], signal_cb, px);
		if (sigev[i] == NULL || evsignal_add(sigev[i], NULL) == -1) {
			log_err("cannot watch signal %d", signals[i]);
			return 1;
		}
	}
	sigprocmask(SIG_UNBLOCK, &mask, NULL);
	if (proxy_run(px) == -1)	/* the other workers, now */
		return 1;
	notify_ready();		/* listening, and signals watched */

	if (event_base_dispatch(px->px_base) == -1) {
		log_err("event loop failed");
		rc = 1;
	}
	for (i = 0; i < sizeof(signals) / sizeof(signals[0]); i++)
		event_free(sigev[i]);
	proxy_free(px);
	log_info("stopped");
	return rc;
}
