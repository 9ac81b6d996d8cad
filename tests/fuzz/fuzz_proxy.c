/*
 * fuzz_proxy.c: libFuzzer target for the whole proxy: a client connection
 * (conn.c) over a socketpair, the shedding and the backend connection
 * (shed.c, upstream.c) to a backend on a loopback socket played by this
 * harness, and the parsers behind them, in one event loop.
 *
 * The input is what the client sends, then "\n%%\n", then what the backend
 * answers to whatever comes on a connection (the answer below if the input
 * has no separator). The first byte is flags: bit 0, the backend closes after
 * answering; bit 1, the client half-closes after sending. The loop runs
 * for a bounded number of turns, the client hangs up, and whatever is left
 * is torn down as at exit: every connection must end without a leak or a
 * bad access (ASan, LeakSanitizer), whatever the bytes. Timers are not
 * waited for: the timeouts are not part of it.
 *
 * State that outlives an input (pooled backend connections, limiter) is
 * reset or fixed, so that an input replays the same way. The runtime is
 * the real one (proxy.c), set up as at start-up; the harness plays the
 * listener and the end of the loop.
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "spillway.h"
#include "log.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define TURNS		48	/* loop turns per input */
#define HANGUP_TURN	24	/* the client closes here */
#define MAX_BACKEND	8	/* backend connections per input */
#define MAX_ANSWERS	4	/* answers per backend connection */

static const char	 default_answer[] =
    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

static struct proxy	 proxy;
static int		 backend_fd = -1;

/* A port free a moment ago, for the proxy's own listener (never used). */
static unsigned int
free_port(void)
{
	struct sockaddr_in	 sin;
	socklen_t		 len = sizeof(sin);
	int			 fd;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1 ||
	    bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    getsockname(fd, (struct sockaddr *)&sin, &len) == -1)
		abort();
	close(fd);
	return ntohs(sin.sin_port);
}

static void
setup(void)
{
	struct proxy		*px = &proxy;
	struct sockaddr_in	 sin;
	socklen_t		 len = sizeof(sin);
	struct config		*conf;
	char			 text[1024], *errors = NULL;

	log_init(LOG_LVL_ERR);
	signal(SIGPIPE, SIG_IGN);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((backend_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1 ||
	    bind(backend_fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    listen(backend_fd, 64) == -1 ||
	    getsockname(backend_fd, (struct sockaddr *)&sin, &len) == -1)
		abort();
	snprintf(text, sizeof(text),
	    "[proxy]\nlisten = 127.0.0.1:%u\nmax_connections = 64\n"
	    "max_header_size = 4k\nmax_body_size = 64k\naccess_log = off\n"
	    "[backend]\nserver = 127.0.0.1:%u\nkeepalive = 2\n"
	    "[limiter]\nalgorithm = fixed\nlimit = 4\nqueue_size = 4\n",
	    free_port(), ntohs(sin.sin_port));
	if ((conf = config_parse_flags("fuzz", text, CONFIG_NUMERIC_HOSTS,
	    &errors)) == NULL || proxy_init(px, 1) == -1 ||
	    proxy_configure(px, conf, &errors) == -1) {
		fprintf(stderr, "%s", errors != NULL ? errors : "setup failed\n");
		abort();
	}
}

/*
 * Accept backend connections and drain what they got; answer when
 * something came (a kept-alive connection gets a new request), at most
 * MAX_ANSWERS times per connection.
 */
static void
play_backend(int *fds, int *nfds, int *answered, const uint8_t *answer,
    size_t alen, int close_after)
{
	char	 buf[16384];
	int	 fd, i, got;

	while (*nfds < MAX_BACKEND && (fd = accept4(backend_fd, NULL, NULL,
	    SOCK_NONBLOCK | SOCK_CLOEXEC)) != -1) {
		answered[*nfds] = 0;
		fds[(*nfds)++] = fd;
	}
	for (i = 0; i < *nfds; i++) {
		if (fds[i] == -1)
			continue;
		got = 0;
		while (read(fds[i], buf, sizeof(buf)) > 0)
			got = 1;
		if (!got || answered[i] >= MAX_ANSWERS)
			continue;
		answered[i]++;
		(void)write(fds[i], answer, alen);
		if (close_after) {
			close(fds[i]);
			fds[i] = -1;
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char	 sep[] = "\n%%\n";
	struct proxy		*px = &proxy;
	struct sockaddr_in	 peer;
	struct conn		*c;
	const uint8_t		*client, *answer, *p;
	size_t			 clen, alen, off = 0;
	int			 sv[2], fds[MAX_BACKEND], answered[MAX_BACKEND];
	int			 nfds = 0, flags, turn, i;
	char			 buf[16384];
	ssize_t			 n;

	if (backend_fd == -1)
		setup();
	if (size < 1)
		return 0;
	flags = data[0];
	client = data + 1;
	clen = size - 1;
	answer = (const uint8_t *)default_answer;
	alen = sizeof(default_answer) - 1;
	if ((p = memmem(client, clen, sep, sizeof(sep) - 1)) != NULL) {
		answer = p + sizeof(sep) - 1;
		alen = clen - (size_t)(answer - client);
		clen = (size_t)(p - client);
	}

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
	    sv) == -1)
		abort();
	memset(&peer, 0, sizeof(peer));
	peer.sin_family = AF_INET;
	peer.sin_addr.s_addr = htonl(0x7f000002);
	peer.sin_port = htons(40000);
	conn_accept(px->px_workers[0], sv[0], (struct sockaddr *)&peer, sizeof(peer), 0);

	for (turn = 0; turn < TURNS; turn++) {
		if (sv[1] != -1 && off < clen) {
			if ((n = write(sv[1], client + off, clen - off)) > 0)
				off += (size_t)n;
			if (off == clen && (flags & 2))
				shutdown(sv[1], SHUT_WR);
		}
		while (sv[1] != -1 && read(sv[1], buf, sizeof(buf)) > 0)
			;
		if (turn == HANGUP_TURN && sv[1] != -1) {
			close(sv[1]);
			sv[1] = -1;
		}
		play_backend(fds, &nfds, answered, answer, alen, flags & 1);
		event_base_loop(px->px_base, EVLOOP_NONBLOCK);
		if (sv[1] == -1 && px->px_workers[0]->w_nconns == 0)
			break;
	}

	/* as at exit: cut what is left, let the frees run */
	if (sv[1] != -1)
		close(sv[1]);
	while ((c = TAILQ_FIRST(&px->px_workers[0]->w_conns)) != NULL)
		conn_shutdown(c);
	upstream_drop_idle(px->px_workers[0]);
	event_base_loop(px->px_base, EVLOOP_NONBLOCK);
	for (i = 0; i < nfds; i++)
		if (fds[i] != -1)
			close(fds[i]);
	while ((n = accept4(backend_fd, NULL, NULL, SOCK_CLOEXEC)) != -1)
		close((int)n);
	return 0;
}
