/*
 * matrix_backend.c: two model backends for contrib/bench/matrix.sh, built by
 * that script with cc (not part of the build).
 *
 *   --mode cpu  --work-ms W          a CPU-bound app: every request burns W ms
 *                                    of CPU, one thread per connection, so
 *                                    requests share the machine's cores
 *                                    (processor sharing): past the core
 *                                    count, latency grows with concurrency
 *                                    and throughput does not
 *   --mode slot --slots N --service-ms S
 *                                    a slot-limited app: up to N requests at
 *                                    once take S ms each (a sleep); any
 *                                    request beyond N answers 500 at once,
 *                                    as an app does when its database
 *                                    refuses a connection past
 *                                    max_connections
 *
 * Both listen on 127.0.0.1:PORT only (--port, 0: any; the port is printed
 * on stdout), speak HTTP/1.1 with keep-alive (GET and HEAD, bodies with
 * Content-Length are read and ignored), and never refuse a connection.
 * SIGUSR1 doubles W or S, SIGUSR2 halves it (a capacity shift mid-run).
 * SIGTERM or SIGINT ends the process at once, after a line on stdout with
 * the requests served, refused (slot mode) and the most in service at once.
 *
 * Invariants: a connection is served by its own detached thread, one
 * request at a time, in order; the slot count is taken before the service
 * and given back after it, whatever the outcome.
 */

#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define BUF_SIZE	16384
#define STACK_SIZE	(256 * 1024)

enum mode {
	MODE_CPU,	/* burn work_us of CPU per request */
	MODE_SLOT,	/* sleep service_us, at most slots at once */
};

static enum mode	 mode = MODE_CPU;
static unsigned int	 slots = 8;
static atomic_long	 cost_us = 5000;	/* work or service time */
static atomic_int	 in_use;		/* requests in service */
static atomic_int	 max_in_use;
static atomic_long	 nserved, nrefused;
static volatile sig_atomic_t stopping;

static void
fatal(const char *what)
{
	perror(what);
	exit(1);
}

static uint64_t
clock_us(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* Spin until this thread has used us microseconds of CPU. */
static void
burn(long us)
{
	uint64_t end = clock_us(CLOCK_THREAD_CPUTIME_ID) + (uint64_t)us;
	volatile uint64_t x = 0;
	int i;

	while (clock_us(CLOCK_THREAD_CPUTIME_ID) < end)
		for (i = 0; i < 2000; i++)
			x += (uint64_t)i * 2654435761u;
}

static void
sleep_us(long us)
{
	struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

static int
write_all(int fd, const char *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		w = write(fd, p, n);
		if (w == -1 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/*
 * Value of header name in head (NUL-terminated, the request line first,
 * every line ending in CRLF), or NULL.
 */
static const char *
header(const char *head, const char *name)
{
	size_t n = strlen(name);
	const char *line = strstr(head, "\r\n");

	while (line != NULL && line[2] != '\0') {
		line += 2;
		if (strncasecmp(line, name, n) == 0 && line[n] == ':') {
			line += n + 1;
			while (*line == ' ' || *line == '\t')
				line++;
			return line;
		}
		line = strstr(line, "\r\n");
	}
	return NULL;
}

/* One request: its answer, and whether the connection stays open. */
static int
serve(int fd, const char *head)
{
	char resp[256];
	const char *v, *eol = strstr(head, "\r\n");
	int keep, status, n, m, head_only;
	const char *body;

	/* HTTP/1.1 keeps the connection open unless it says close. */
	keep = eol - head >= 9 && strncmp(eol - 9, " HTTP/1.1", 9) == 0;
	if ((v = header(head, "Connection")) != NULL) {
		if (strncasecmp(v, "close", 5) == 0)
			keep = 0;
		else if (strncasecmp(v, "keep-alive", 10) == 0)
			keep = 1;
	}
	head_only = strncmp(head, "HEAD ", 5) == 0;
	n = atomic_fetch_add(&in_use, 1) + 1;
	for (m = atomic_load(&max_in_use); n > m &&
	    !atomic_compare_exchange_weak(&max_in_use, &m, n);)
		;
	if (mode == MODE_SLOT && n > (int)slots) {
		status = 500;
		body = "too many connections\n";
		atomic_fetch_add(&nrefused, 1);
	} else {
		if (mode == MODE_CPU)
			burn(atomic_load(&cost_us));
		else
			sleep_us(atomic_load(&cost_us));
		status = 200;
		body = "ok\n";
		atomic_fetch_add(&nserved, 1);
	}
	atomic_fetch_sub(&in_use, 1);
	n = snprintf(resp, sizeof(resp), "HTTP/1.1 %d %s\r\n"
	    "Content-Type: text/plain\r\nContent-Length: %zu\r\n%s\r\n%s",
	    status, status == 200 ? "OK" : "Internal Server Error",
	    strlen(body), keep ? "" : "Connection: close\r\n",
	    head_only ? "" : body);
	if (write_all(fd, resp, (size_t)n) == -1)
		return 0;
	return keep;
}

static void *
conn_main(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char *buf, *eoh;
	size_t len = 0, used;
	long long clen;
	const char *v;
	ssize_t r;

	if ((buf = malloc(BUF_SIZE + 1)) == NULL)
		goto done;
	for (;;) {
		buf[len] = '\0';
		while ((eoh = strstr(buf, "\r\n\r\n")) == NULL) {
			if (len == BUF_SIZE)
				goto done;	/* head too large */
			r = read(fd, buf + len, BUF_SIZE - len);
			if (r == -1 && errno == EINTR)
				continue;
			if (r <= 0)
				goto done;
			len += (size_t)r;
			buf[len] = '\0';
		}
		eoh[2] = '\0';			/* the head, with its last CRLF */
		used = (size_t)(eoh + 4 - buf);
		clen = 0;
		if ((v = header(buf, "Content-Length")) != NULL)
			clen = atoll(v);
		if (header(buf, "Transfer-Encoding") != NULL ||
		    clen < 0)
			goto done;		/* not for this model */
		/* Read and drop the body. */
		while ((long long)(len - used) < clen) {
			clen -= (long long)(len - used);
			len = used = 0;
			r = read(fd, buf, BUF_SIZE);
			if (r == -1 && errno == EINTR)
				continue;
			if (r <= 0)
				goto done;
			len = (size_t)r;
		}
		used += (size_t)clen;
		if (!serve(fd, buf))
			goto done;
		memmove(buf, buf + used, len - used);
		len -= used;
	}
done:
	free(buf);
	close(fd);
	return NULL;
}

static void
on_signal(int sig)
{
	long c = atomic_load(&cost_us);

	if (sig == SIGTERM || sig == SIGINT)
		stopping = 1;
	else if (sig == SIGUSR1)
		atomic_store(&cost_us, c * 2);
	else if (c > 1)
		atomic_store(&cost_us, c / 2);
}

static void
usage(void)
{
	fprintf(stderr, "usage: matrix_backend [--port N] --mode cpu "
	    "[--work-ms W]\n"
	    "       matrix_backend [--port N] --mode slot [--slots N] "
	    "[--service-ms S]\n");
	exit(2);
}

int
main(int argc, char *argv[])
{
	struct sockaddr_in sin;
	socklen_t slen = sizeof(sin);
	pthread_attr_t attr;
	pthread_t t;
	struct sigaction sa;
	int lfd, fd, one = 1, i, port = 0;
	double ms = -1;

	for (i = 1; i < argc; i++) {
		if (i + 1 >= argc)
			usage();
		if (strcmp(argv[i], "--port") == 0)
			port = atoi(argv[++i]);
		else if (strcmp(argv[i], "--mode") == 0) {
			i++;
			if (strcmp(argv[i], "cpu") == 0)
				mode = MODE_CPU;
			else if (strcmp(argv[i], "slot") == 0)
				mode = MODE_SLOT;
			else
				usage();
		} else if (strcmp(argv[i], "--work-ms") == 0 ||
		    strcmp(argv[i], "--service-ms") == 0)
			ms = atof(argv[++i]);
		else if (strcmp(argv[i], "--slots") == 0)
			slots = (unsigned int)atoi(argv[++i]);
		else
			usage();
	}
	if (ms < 0)
		ms = mode == MODE_CPU ? 5 : 15;
	if (ms <= 0 || slots == 0 || port < 0 || port > 65535)
		usage();
	atomic_store(&cost_us, (long)(ms * 1000));

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
	sa.sa_flags = 0;		/* accept() returns EINTR: time to go */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if ((lfd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		fatal("socket");
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((unsigned short)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) == -1)
		fatal("bind");
	if (listen(lfd, 4096) == -1)
		fatal("listen");
	if (getsockname(lfd, (struct sockaddr *)&sin, &slen) == -1)
		fatal("getsockname");
	if (mode == MODE_CPU)
		printf("matrix_backend: cpu, %.1f ms of CPU per request, on "
		    "127.0.0.1:%d\n", ms, ntohs(sin.sin_port));
	else
		printf("matrix_backend: slot, %u slots of %.1f ms, on "
		    "127.0.0.1:%d\n", slots, ms, ntohs(sin.sin_port));
	fflush(stdout);

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, STACK_SIZE);
	while (!stopping) {
		fd = accept(lfd, NULL, NULL);
		if (fd == -1) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE) {
				sleep_us(10000);
				continue;
			}
			fatal("accept");
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (pthread_create(&t, &attr, conn_main,
		    (void *)(intptr_t)fd) != 0)
			close(fd);
	}
	printf("matrix_backend: served %ld, refused %ld, at most %d in "
	    "service at once\n", atomic_load(&nserved),
	    atomic_load(&nrefused), atomic_load(&max_in_use));
	fflush(stdout);
	_exit(0);
}
