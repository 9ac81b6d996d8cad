/*
 * loadgen.c: an open-loop HTTP/1.1 load generator, with a closed-loop mode.
 *
 * Requests leave on a fixed schedule (a constant rate, or Poisson
 * arrivals at that mean rate) whatever the answers, and every latency is
 * measured from the request's scheduled send time, so a slow server cannot
 * slow the load down and hide its own queueing (no coordinated omission).
 *
 * With --closed N it is a closed loop instead: N users, each with one
 * request out at a time, sending the next as soon as the answer is in
 * (retrying at once after a refusal, as wrk does), or, with
 * --honour-retry-after, first waiting for as long as a 429 or 503 says in
 * its Retry-After. After a connection error a user pauses ERROR_PAUSE_USEC.
 * A user's request is "scheduled" when the user decides to send it; it is
 * offered in that second. No user starts a request after the duration.
 *
 * Invariants:
 *  - every scheduled request is counted as offered once, in the second of
 *    its scheduled time, and ends exactly once, as a status, an error or a
 *    timeout, counted in the second it ends;
 *  - a request waits in the pending FIFO until a kept-alive connection is
 *    idle or a new one (up to the cap) is open; its clock runs from its
 *    scheduled time all along, and --timeout covers the wait too;
 *  - one request at a time per connection (no pipelining).
 *
 * One thread, one libevent loop; a 1 ms timer sends what is due.
 */

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#define USEC		1000000ULL
#define TICK_USEC	1000
#define MAX_HEAD_LINE	65536
#define TALLY_MAX	32
#define TALLY_LEN	64
#define ERROR_PAUSE_USEC 10000	/* closed loop: a user's pause after an error */

struct lat_set {
	uint32_t	*v;		/* latencies in usec */
	size_t		 n;
	size_t		 cap;
};

/* Counters for one second of the run, or for all of it. */
struct stats {
	uint64_t	 offered;
	uint64_t	 ok;		/* 2xx */
	uint64_t	 ok_slo;	/* 2xx within --slo */
	uint64_t	 s429;
	uint64_t	 s503;
	uint64_t	 s502;
	uint64_t	 s504;
	uint64_t	 other;		/* any other status */
	uint64_t	 errors;	/* connect error, reset, bad response */
	uint64_t	 timeouts;
	uint64_t	 ra_missing;	/* 429/503 without Retry-After */
	struct lat_set	 ok_lat;
	struct lat_set	 ref_lat;	/* 429 and 503 */
};

struct lreq {
	TAILQ_ENTRY(lreq)	 entry;
	uint64_t		 sched;		/* scheduled send time, usec */
	unsigned int		 path;		/* index into the request heads */
	int			 retried;
};
TAILQ_HEAD(lreq_list, lreq);

/* Response parser states. */
enum pstate {
	P_STATUS,	/* waiting for the status line */
	P_HEADER,	/* header lines */
	P_BODY,		/* Content-Length body */
	P_CHUNK_SIZE,	/* chunk size line */
	P_CHUNK_DATA,	/* chunk payload */
	P_CHUNK_CRLF,	/* CRLF after a chunk */
	P_TRAILER,	/* trailer lines after the last chunk */
	P_EOF,		/* body delimited by connection close */
};

/* Connection states. */
enum cstate {
	C_CONNECTING,	/* connect in progress, no request */
	C_IDLE,		/* open, in the idle list */
	C_BUSY,		/* a request in flight */
};

struct lconn {
	TAILQ_ENTRY(lconn)	 idle_entry;
	LIST_ENTRY(lconn)	 all_entry;
	struct bufferevent	*bev;
	enum cstate		 state;
	struct lreq		*req;
	unsigned int		 nreqs;		/* responses read on it */
	/* response parser */
	enum pstate		 ps;
	int			 status;
	int			 chunked;
	int			 close_after;
	long			 retry_after;	/* seconds; -1: none */
	int64_t			 clen;		/* -1: none */
	char			 tally[TALLY_LEN]; /* --tally-header value */
	uint64_t		 remaining;
	size_t			 got;		/* bytes of this response */
};
TAILQ_HEAD(lconn_tailq, lconn);
LIST_HEAD(lconn_list, lconn);

struct opts {
	double		 rate;
	double		 duration;
	double		 timeout;
	double		 slo;		/* ms */
	unsigned int	 max_conns;
	unsigned int	 closed;	/* users; 0: open loop */
	int		 honour_ra;	/* closed: wait out Retry-After */
	int		 poisson;
	int		 quiet;
	unsigned int	 seed;
	const char	*csv;
	const char	*json;
};

static struct opts	 opt = { 0, 10, 5, 500, 256, 0, 0, 0, 0, 1, NULL,
    NULL };
static struct event_base *base;
static struct sockaddr_storage target_ss;
static socklen_t	 target_len;
static char		*host_hdr;
static char		**paths;
static size_t		 npaths;
static char		**extra_hdrs;
static size_t		 nextra;
static char		**heads;	/* one ready request head per path */
static size_t		*head_lens;

static struct lreq_list	 pending = TAILQ_HEAD_INITIALIZER(pending);
static size_t		 npending;
/* Closed loop: users waiting before their next request, by time due. */
static struct lreq_list	 sleeping = TAILQ_HEAD_INITIALIZER(sleeping);
static size_t		 nsleeping;
static uint64_t		 ra_waits;	/* Retry-After waits taken */
static struct lconn_tailq idle = TAILQ_HEAD_INITIALIZER(idle);
static struct lconn_list all_conns = LIST_HEAD_INITIALIZER(all_conns);
static size_t		 nconns, nconnecting, nbusy;
static uint64_t		 conns_opened;

static uint64_t		 t_start, t_end, t_next, t_stopped;
static uint64_t		 nscheduled, total_to_send;
static unsigned int	 next_path;
static struct stats	*secs;
static size_t		 nsecs, sec_emitted;
static struct stats	 total;
static uint64_t		 ok_in_window;	/* 2xx ended before t_end */
static uint64_t		 ok_slo_in_window; /* ... and within --slo */
static uint64_t		 ra_count, ra_sum; /* Retry-After values seen */
static long		 ra_min = -1, ra_max = -1;

static const char	*tally_name;	/* --tally-header */
static struct {
	char		 value[TALLY_LEN];
	uint64_t	 count;
}			 tally[TALLY_MAX];
static size_t		 ntally;
static uint64_t		 tally_other;
static struct lat_set	 lag;		/* scheduled to written, usec */
static FILE		*csv_fp;
static uint64_t		 last_sweep;
static int		 stopping;
static struct event	*tick_ev;

static void	 dispatch(void);
static void	 conn_close(struct lconn *);

static void __attribute__((format(printf, 1, 2), noreturn))
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "loadgen: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(2);
}

static void *
xcalloc(size_t n, size_t sz)
{
	void *p;

	if ((p = calloc(n, sz)) == NULL)
		fatalx("out of memory");
	return p;
}

static uint64_t
now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * USEC + (uint64_t)ts.tv_nsec / 1000;
}

static void
lat_add(struct lat_set *ls, uint64_t usec)
{
	uint32_t *nv;

	if (ls->n == ls->cap) {
		ls->cap = ls->cap ? ls->cap * 2 : 64;
		if ((nv = realloc(ls->v, ls->cap * sizeof(*nv))) == NULL)
			fatalx("out of memory");
		ls->v = nv;
	}
	ls->v[ls->n++] = usec > UINT32_MAX ? UINT32_MAX : (uint32_t)usec;
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile q (0..1) in ms, or -1 for an empty set. */
static double
lat_pct(struct lat_set *ls, double q)
{
	size_t k;

	if (ls->n == 0)
		return -1;
	qsort(ls->v, ls->n, sizeof(*ls->v), cmp_u32);
	k = (size_t)ceil(q * ls->n);
	if (k > 0)
		k--;
	if (k >= ls->n)
		k = ls->n - 1;
	return ls->v[k] / 1000.0;
}

/* The counters of the second that contains time t (usec). */
static struct stats *
sec_at(uint64_t t)
{
	size_t i, n;

	i = t > t_start ? (t - t_start) / USEC : 0;
	if (i >= nsecs) {
		n = i + 16;
		if ((secs = realloc(secs, n * sizeof(*secs))) == NULL)
			fatalx("out of memory");
		memset(secs + nsecs, 0, (n - nsecs) * sizeof(*secs));
		nsecs = n;
	}
	return &secs[i];
}

static void
fmt_ms(char *buf, size_t len, double ms)
{
	if (ms < 0)
		buf[0] = '\0';
	else
		snprintf(buf, len, "%.3f", ms);
}

/* Write the CSV row of second i and fold it into the totals. */
static void
emit_second(size_t i)
{
	struct stats *s = &secs[i];
	char p50[32], p99[32], rp50[32];
	size_t k;

	fmt_ms(p50, sizeof(p50), lat_pct(&s->ok_lat, 0.50));
	fmt_ms(p99, sizeof(p99), lat_pct(&s->ok_lat, 0.99));
	fmt_ms(rp50, sizeof(rp50), lat_pct(&s->ref_lat, 0.50));
	fprintf(csv_fp, "%zu,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu,"
	    "%s,%s,%s,%llu\n", i,
	    (unsigned long long)s->offered, (unsigned long long)s->ok,
	    (unsigned long long)s->s429, (unsigned long long)s->s503,
	    (unsigned long long)s->s502, (unsigned long long)s->s504,
	    (unsigned long long)s->other, (unsigned long long)s->errors,
	    (unsigned long long)s->timeouts, p50, p99, rp50,
	    (unsigned long long)s->ra_missing);
	fflush(csv_fp);
	if (!opt.quiet)
		fprintf(stderr, "[loadgen] %3zus offered %llu 2xx %llu "
		    "429 %llu 503 %llu other %llu err %llu timeout %llu "
		    "p99 %s ms | pending %zu busy %zu conns %zu\n", i,
		    (unsigned long long)s->offered, (unsigned long long)s->ok,
		    (unsigned long long)s->s429, (unsigned long long)s->s503,
		    (unsigned long long)(s->s502 + s->s504 + s->other),
		    (unsigned long long)s->errors,
		    (unsigned long long)s->timeouts, p99[0] ? p99 : "-",
		    npending, nbusy, nconns);
	total.offered += s->offered;
	total.ok += s->ok;
	total.ok_slo += s->ok_slo;
	total.s429 += s->s429;
	total.s503 += s->s503;
	total.s502 += s->s502;
	total.s504 += s->s504;
	total.other += s->other;
	total.errors += s->errors;
	total.timeouts += s->timeouts;
	total.ra_missing += s->ra_missing;
	for (k = 0; k < s->ok_lat.n; k++)
		lat_add(&total.ok_lat, s->ok_lat.v[k]);
	for (k = 0; k < s->ref_lat.n; k++)
		lat_add(&total.ref_lat, s->ref_lat.v[k]);
	free(s->ok_lat.v);
	free(s->ref_lat.v);
	memset(&s->ok_lat, 0, sizeof(s->ok_lat));
	memset(&s->ref_lat, 0, sizeof(s->ref_lat));
}

/* Count one value of the --tally-header, as "STATUS VALUE". */
static void
tally_add(int status, const char *v)
{
	char key[TALLY_LEN];
	size_t i;
	char *p;

	snprintf(key, sizeof(key), "%d %.48s", status, v);
	for (p = key; *p; p++)
		if (*p < 0x20 || *p > 0x7e || *p == '"' || *p == '\\')
			*p = '?';
	for (i = 0; i < ntally; i++)
		if (strcmp(tally[i].value, key) == 0) {
			tally[i].count++;
			return;
		}
	if (ntally == TALLY_MAX) {
		tally_other++;
		return;
	}
	snprintf(tally[ntally].value, TALLY_LEN, "%s", key);
	tally[ntally++].count = 1;
}

/* A request is sent from now on: offered in the second it was due. */
static void
issue(struct lreq *r)
{
	sec_at(r->sched)->offered++;
	TAILQ_INSERT_TAIL(&pending, r, entry);
	npending++;
	nscheduled++;
}

/*
 * Closed loop: a user's request ended at now; the user sends its next one
 * after delay usec, unless the run is over by then.
 */
static void
closed_next(uint64_t now, uint64_t delay)
{
	struct lreq *r, *it;

	if (!opt.closed || stopping || now + delay >= t_end)
		return;
	r = xcalloc(1, sizeof(*r));
	r->sched = now + delay;
	r->path = next_path;
	next_path = (next_path + 1) % npaths;
	if (delay == 0) {
		issue(r);
		return;
	}
	TAILQ_FOREACH_REVERSE(it, &sleeping, lreq_list, entry)
		if (it->sched <= r->sched)
			break;
	if (it == NULL)
		TAILQ_INSERT_HEAD(&sleeping, r, entry);
	else
		TAILQ_INSERT_AFTER(&sleeping, it, r, entry);
	nsleeping++;
}

/*
 * A request ended with an HTTP status; retry_after is the seconds of its
 * Retry-After header, -1 if it had none.
 */
static void
req_done_status(struct lreq *r, int status, long retry_after, uint64_t now)
{
	struct stats *s = sec_at(now);
	uint64_t lat = now > r->sched ? now - r->sched : 0, delay = 0;

	/* Too late, only not swept yet: a timeout all the same. */
	if (lat > (uint64_t)(opt.timeout * USEC)) {
		s->timeouts++;
		free(r);
		closed_next(now, 0);
		return;
	}
	if (status >= 200 && status < 300) {
		s->ok++;
		if (now < t_end)
			ok_in_window++;
		if (lat <= (uint64_t)(opt.slo * 1000)) {
			s->ok_slo++;
			if (now < t_end)
				ok_slo_in_window++;
		}
		lat_add(&s->ok_lat, lat);
	} else if (status == 429 || status == 503) {
		if (status == 429)
			s->s429++;
		else
			s->s503++;
		lat_add(&s->ref_lat, lat);
		if (retry_after < 0)
			s->ra_missing++;
		else {
			ra_count++;
			ra_sum += (uint64_t)retry_after;
			if (ra_min < 0 || retry_after < ra_min)
				ra_min = retry_after;
			if (retry_after > ra_max)
				ra_max = retry_after;
			if (opt.honour_ra && retry_after > 0) {
				delay = (uint64_t)retry_after * USEC;
				ra_waits++;
			}
		}
	} else if (status == 502)
		s->s502++;
	else if (status == 504)
		s->s504++;
	else
		s->other++;
	free(r);
	closed_next(now, delay);
}

static void
req_done_error(struct lreq *r, int timeout, uint64_t now)
{
	struct stats *s = sec_at(now);

	if (timeout)
		s->timeouts++;
	else
		s->errors++;
	free(r);
	closed_next(now, timeout ? 0 : ERROR_PAUSE_USEC);
}

static void
conn_reset_parser(struct lconn *c)
{
	c->ps = P_STATUS;
	c->status = 0;
	c->chunked = 0;
	c->close_after = 0;
	c->retry_after = -1;
	c->clen = -1;
	c->remaining = 0;
	c->got = 0;
	c->tally[0] = '\0';
}

static void
conn_set_idle(struct lconn *c)
{
	if (c->state == C_BUSY)
		nbusy--;
	c->state = C_IDLE;
	c->req = NULL;
	TAILQ_INSERT_TAIL(&idle, c, idle_entry);
}

/*
 * The connection failed or closed. A request in flight on it is retried
 * once if nothing of its response came on a reused connection (the server
 * closed an idle keep-alive connection as we wrote), else it is an error.
 */
static void
conn_fail(struct lconn *c, int timeout)
{
	struct lreq *r = c->req;
	uint64_t now = now_usec();

	c->req = NULL;
	if (r != NULL) {
		if (!timeout && c->got == 0 && c->nreqs > 0 && !r->retried) {
			r->retried = 1;
			TAILQ_INSERT_HEAD(&pending, r, entry);
			npending++;
		} else
			req_done_error(r, timeout, now);
	}
	conn_close(c);
}

static void
conn_close(struct lconn *c)
{
	if (c->state == C_IDLE)
		TAILQ_REMOVE(&idle, c, idle_entry);
	else if (c->state == C_CONNECTING)
		nconnecting--;
	else if (c->state == C_BUSY)
		nbusy--;
	LIST_REMOVE(c, all_entry);
	nconns--;
	bufferevent_free(c->bev);
	free(c->req);
	free(c);
}

/* The response on c is complete. */
static void
conn_response_done(struct lconn *c)
{
	struct lreq *r = c->req;
	int close_after = c->close_after;

	c->nreqs++;
	c->req = NULL;
	if (tally_name != NULL)
		tally_add(c->status, c->tally[0] ? c->tally : "-");
	req_done_status(r, c->status, c->retry_after, now_usec());
	if (close_after)
		conn_close(c);
	else {
		conn_reset_parser(c);
		conn_set_idle(c);
	}
	dispatch();
}

static int
has_token(const char *v, const char *tok)
{
	size_t n = strlen(tok);

	while (*v) {
		while (*v == ' ' || *v == '\t' || *v == ',')
			v++;
		if (strncasecmp(v, tok, n) == 0 &&
		    (v[n] == '\0' || v[n] == ',' || v[n] == ' ' ||
		    v[n] == '\t'))
			return 1;
		while (*v && *v != ',')
			v++;
	}
	return 0;
}

/*
 * Retry-After: delay-seconds, or an HTTP-date (its distance from now, at
 * least 0); anything else reads as 1 s.
 */
static long
retry_after_secs(const char *v)
{
	struct tm tm;
	char *end;
	long n;
	time_t when, now;

	if (*v >= '0' && *v <= '9') {
		errno = 0;
		n = strtol(v, &end, 10);
		if (errno == 0 && (*end == '\0' || *end == ' ' || *end == '\t'))
			return n > 86400 ? 86400 : n;
		return 1;
	}
	memset(&tm, 0, sizeof(tm));
	end = strptime(v, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	if (end == NULL)
		return 1;
	when = timegm(&tm);
	now = time(NULL);
	return when > now ? (long)(when - now) : 0;
}

/* One header line of the response head. */
static int
parse_header(struct lconn *c, char *line)
{
	char *v, *end;
	long long n;

	if ((v = strchr(line, ':')) == NULL)
		return -1;
	*v++ = '\0';
	while (*v == ' ' || *v == '\t')
		v++;
	if (strcasecmp(line, "content-length") == 0) {
		errno = 0;
		n = strtoll(v, &end, 10);
		if (errno || end == v || n < 0)
			return -1;
		c->clen = n;
	} else if (strcasecmp(line, "transfer-encoding") == 0) {
		if (has_token(v, "chunked"))
			c->chunked = 1;
	} else if (strcasecmp(line, "connection") == 0) {
		if (has_token(v, "close"))
			c->close_after = 1;
		else if (has_token(v, "keep-alive"))
			c->close_after = 0;
	} else if (strcasecmp(line, "retry-after") == 0)
		c->retry_after = retry_after_secs(v);
	if (tally_name != NULL && strcasecmp(line, tally_name) == 0)
		snprintf(c->tally, sizeof(c->tally), "%s", v);
	return 0;
}

static int
parse_status(struct lconn *c, const char *line)
{
	if (strncmp(line, "HTTP/1.", 7) != 0 || (line[7] != '0' &&
	    line[7] != '1') || line[8] != ' ')
		return -1;
	if (line[9] < '1' || line[9] > '9' || line[10] < '0' ||
	    line[10] > '9' || line[11] < '0' || line[11] > '9')
		return -1;
	c->status = (line[9] - '0') * 100 + (line[10] - '0') * 10 +
	    (line[11] - '0');
	/* HTTP/1.0 closes unless it says keep-alive. */
	c->close_after = line[7] == '0';
	return 0;
}

/* The head is complete: choose how the body is framed. */
static void
head_done(struct lconn *c)
{
	if (c->status >= 100 && c->status < 200) {
		conn_reset_parser(c);
		c->got = 1;
		return;
	}
	if (c->status == 204 || c->status == 304) {
		c->ps = P_STATUS;
		return;
	}
	if (c->chunked)
		c->ps = P_CHUNK_SIZE;
	else if (c->clen >= 0) {
		c->remaining = (uint64_t)c->clen;
		c->ps = P_BODY;
	} else {
		c->close_after = 1;
		c->ps = P_EOF;
	}
}

/*
 * Advance the parser over what is in the input buffer. Returns 1 when a
 * response is complete, 0 when it needs more bytes, -1 on a bad response.
 */
static int
conn_parse(struct lconn *c, struct evbuffer *in)
{
	char *line = NULL, *end;
	size_t len = 0, n;
	unsigned long long sz;

	for (;;) {
		switch (c->ps) {
		case P_STATUS:
		case P_HEADER:
		case P_CHUNK_SIZE:
		case P_CHUNK_CRLF:
		case P_TRAILER:
			line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF);
			if (line == NULL) {
				if (evbuffer_get_length(in) > MAX_HEAD_LINE)
					return -1;
				return 0;
			}
			c->got += len + 1;
			break;
		case P_BODY:
		case P_CHUNK_DATA:
			n = evbuffer_get_length(in);
			if (n > c->remaining)
				n = c->remaining;
			evbuffer_drain(in, n);
			c->got += n;
			c->remaining -= n;
			if (c->remaining > 0)
				return 0;
			if (c->ps == P_BODY)
				return 1;
			c->ps = P_CHUNK_CRLF;
			continue;
		case P_EOF:
			n = evbuffer_get_length(in);
			evbuffer_drain(in, n);
			c->got += n;
			return 0;
		}

		switch (c->ps) {
		case P_STATUS:
			if (parse_status(c, line) == -1)
				goto bad;
			c->ps = P_HEADER;
			break;
		case P_HEADER:
			if (len == 0) {
				head_done(c);
				free(line);
				if (c->ps == P_STATUS && c->status >= 200)
					return 1;
				if (c->ps == P_BODY && c->remaining == 0)
					return 1;
				continue;
			}
			if (parse_header(c, line) == -1)
				goto bad;
			break;
		case P_CHUNK_SIZE:
			errno = 0;
			sz = strtoull(line, &end, 16);
			if (errno || end == line)
				goto bad;
			if (sz == 0)
				c->ps = P_TRAILER;
			else {
				c->remaining = sz;
				c->ps = P_CHUNK_DATA;
			}
			break;
		case P_CHUNK_CRLF:
			if (len != 0)
				goto bad;
			c->ps = P_CHUNK_SIZE;
			break;
		case P_TRAILER:
			free(line);
			if (len == 0)
				return 1;
			continue;
		default:
			break;
		}
		free(line);
	}
bad:
	free(line);
	return -1;
}

static void
conn_read_cb(struct bufferevent *bev, void *arg)
{
	struct lconn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	int rv;

	if (c->state != C_BUSY) {
		/* Bytes nobody asked for: the stream cannot be trusted. */
		conn_close(c);
		return;
	}
	rv = conn_parse(c, in);
	if (rv == 1)
		conn_response_done(c);
	else if (rv == -1)
		conn_fail(c, 0);
}

static void
conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct lconn *c = arg;
	struct lreq *r;
	int one = 1;

	if (what & BEV_EVENT_CONNECTED) {
		setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY,
		    &one, sizeof(one));
		nconnecting--;
		c->state = C_IDLE;
		c->req = NULL;
		TAILQ_INSERT_TAIL(&idle, c, idle_entry);
		dispatch();
		return;
	}
	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
		return;
	if (c->state == C_BUSY && c->ps == P_EOF && (what & BEV_EVENT_EOF)) {
		c->close_after = 1;
		conn_response_done(c);
		return;
	}
	if (c->state == C_CONNECTING) {
		/* The connect failed: the oldest waiting request fails. */
		if ((r = TAILQ_FIRST(&pending)) != NULL) {
			TAILQ_REMOVE(&pending, r, entry);
			npending--;
			req_done_error(r, 0, now_usec());
		}
		conn_close(c);
		dispatch();
		return;
	}
	conn_fail(c, 0);
	dispatch();
}

static int
conn_open(void)
{
	struct lconn *c;

	c = xcalloc(1, sizeof(*c));
	c->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		free(c);
		return -1;
	}
	bufferevent_setcb(c->bev, conn_read_cb, NULL, conn_event_cb, c);
	c->state = C_CONNECTING;
	conn_reset_parser(c);
	LIST_INSERT_HEAD(&all_conns, c, all_entry);
	nconns++;
	nconnecting++;
	conns_opened++;
	if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&target_ss,
	    target_len) == -1) {
		/* An immediate failure (EMFILE, ...): an event reports it. */
		return -1;
	}
	bufferevent_enable(c->bev, EV_READ);
	return 0;
}

/* Send waiting requests on idle connections; open more if allowed. */
static void
dispatch(void)
{
	static int in_dispatch;
	struct lconn *c;
	struct lreq *r;
	uint64_t now;

	/* A connect that fails at once calls back in here: the tick retries. */
	if (in_dispatch)
		return;
	in_dispatch = 1;
	while ((r = TAILQ_FIRST(&pending)) != NULL &&
	    (c = TAILQ_FIRST(&idle)) != NULL) {
		TAILQ_REMOVE(&pending, r, entry);
		npending--;
		TAILQ_REMOVE(&idle, c, idle_entry);
		c->state = C_BUSY;
		nbusy++;
		c->req = r;
		conn_reset_parser(c);
		now = now_usec();
		lat_add(&lag, now > r->sched ? now - r->sched : 0);
		if (bufferevent_write(c->bev, heads[r->path],
		    head_lens[r->path]) == -1) {
			conn_fail(c, 0);
			continue;
		}
	}
	while (npending > nconnecting && nconns < opt.max_conns) {
		if (conn_open() == -1)
			break;
	}
	in_dispatch = 0;
}

/* Queue every request whose scheduled time has come. */
static void
schedule(uint64_t now)
{
	struct lreq *r;
	double u;

	if (opt.closed) {
		while ((r = TAILQ_FIRST(&sleeping)) != NULL &&
		    (r->sched <= now || now >= t_end || stopping)) {
			TAILQ_REMOVE(&sleeping, r, entry);
			nsleeping--;
			if (now >= t_end || stopping)
				free(r);	/* the run is over: not sent */
			else
				issue(r);
		}
		if (now >= t_end || stopping)
			total_to_send = nscheduled;
		return;
	}
	while (nscheduled < total_to_send && t_next <= now) {
		if (t_next >= t_end) {
			total_to_send = nscheduled;
			break;
		}
		r = xcalloc(1, sizeof(*r));
		r->sched = t_next;
		r->path = next_path;
		next_path = (next_path + 1) % npaths;
		sec_at(r->sched)->offered++;
		TAILQ_INSERT_TAIL(&pending, r, entry);
		npending++;
		nscheduled++;
		if (opt.poisson) {
			u = (random() + 1.0) / ((double)RAND_MAX + 2.0);
			t_next += (uint64_t)(-log(u) / opt.rate * USEC);
		} else
			t_next = t_start + (uint64_t)((double)nscheduled *
			    USEC / opt.rate);
	}
}

/* Requests older than --timeout: waiting ones and those in flight. */
static void
expire(uint64_t now)
{
	struct lconn *c, *next;
	struct lreq *r;
	uint64_t tmo = (uint64_t)(opt.timeout * USEC);

	while ((r = TAILQ_FIRST(&pending)) != NULL && r->sched + tmo <= now) {
		TAILQ_REMOVE(&pending, r, entry);
		npending--;
		req_done_error(r, 1, now);
	}
	if (now - last_sweep < 10000 && !stopping)
		return;
	last_sweep = now;
	for (c = LIST_FIRST(&all_conns); c != NULL; c = next) {
		next = LIST_NEXT(c, all_entry);
		if (c->state == C_BUSY && c->req->sched + tmo <= now)
			conn_fail(c, 1);
	}
}

static void
finish(void)
{
	struct lreq *r;
	struct lconn *c;
	uint64_t now = now_usec();

	/* Anything still out when the run is cut short is a timeout. */
	while ((r = TAILQ_FIRST(&sleeping)) != NULL) {
		TAILQ_REMOVE(&sleeping, r, entry);
		nsleeping--;
		free(r);
	}
	while ((r = TAILQ_FIRST(&pending)) != NULL) {
		TAILQ_REMOVE(&pending, r, entry);
		npending--;
		req_done_error(r, 1, now);
	}
	while ((c = LIST_FIRST(&all_conns)) != NULL) {
		if (c->state == C_BUSY)
			conn_fail(c, 1);
		else
			conn_close(c);
	}
	event_base_loopbreak(base);
}

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct timeval tv;
	uint64_t now = now_usec(), grace;

	(void)fd;
	(void)what;
	(void)arg;
	schedule(now);
	expire(now);
	dispatch();
	while (t_start + (sec_emitted + 1) * USEC <= now) {
		sec_at(t_start + sec_emitted * USEC);
		emit_second(sec_emitted++);
	}
	grace = (uint64_t)(opt.timeout * USEC) + USEC;
	if (t_next >= t_end && nscheduled < total_to_send)
		total_to_send = nscheduled;
	if (stopping || (now >= t_end && nscheduled >= total_to_send &&
	    npending == 0 && nbusy == 0) || now >= t_end + grace) {
		finish();
		return;
	}
	/* Wake at the next scheduled send, at least every tick. */
	now = now_usec();
	tv.tv_sec = 0;
	tv.tv_usec = TICK_USEC;
	if (!opt.closed && nscheduled < total_to_send &&
	    t_next < now + TICK_USEC)
		tv.tv_usec = t_next > now ? (suseconds_t)(t_next - now) : 0;
	evtimer_add(tick_ev, &tv);
}

static void
signal_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	if (stopping)
		exit(1);
	/* Stop scheduling; what is out now counts as it ends. */
	stopping = 1;
	t_stopped = now_usec();
	total_to_send = nscheduled;
}

/* A latency for the summary: "12.345" or "-" (stderr), "null" (JSON). */
static const char *
fmt_sum(char *buf, size_t len, double ms, const char *none)
{
	if (ms < 0)
		return none;
	snprintf(buf, len, "%.3f", ms);
	return buf;
}

static void
print_summary(uint64_t elapsed)
{
	double dur = opt.duration, q[6];
	char b[6][32];
	const char *v[6];
	uint64_t ended = total.ok + total.s429 + total.s503 + total.s502 +
	    total.s504 + total.other + total.errors + total.timeouts;
	FILE *fp;
	int i;

	if (opt.closed) {
		if (stopping && t_stopped < t_end)
			dur = (double)(t_stopped - t_start) / USEC;
	} else if (stopping && nscheduled)
		dur = (double)nscheduled / opt.rate;
	q[0] = lat_pct(&total.ok_lat, 0.50);
	q[1] = lat_pct(&total.ok_lat, 0.99);
	q[2] = lat_pct(&total.ok_lat, 0.999);
	q[3] = lat_pct(&total.ref_lat, 0.50);
	q[4] = lat_pct(&lag, 0.50);
	q[5] = lat_pct(&lag, 0.99);
	for (i = 0; i < 6; i++)
		v[i] = fmt_sum(b[i], sizeof(b[i]), q[i], "-");
	if (opt.closed)
		fprintf(stderr, "loadgen: closed loop, %u users%s, for %.1fs, "
		    "%llu connections opened, run %.1fs\n", opt.closed,
		    opt.honour_ra ? " honouring Retry-After" :
		    " retrying at once", dur,
		    (unsigned long long)conns_opened, elapsed / 1e6);
	else
		fprintf(stderr, "loadgen: rate %.1f/s for %.1fs%s, %u "
		    "connections max, %llu opened, run %.1fs\n", opt.rate,
		    dur, opt.poisson ? " (poisson)" : "", opt.max_conns,
		    (unsigned long long)conns_opened, elapsed / 1e6);
	fprintf(stderr,
	    "  offered      %llu\n"
	    "  2xx          %llu (goodput %.1f/s: %llu within the %.1fs; "
	    "%.1f/s within %.0f ms)\n"
	    "  429 / 503    %llu / %llu (refusal p50 %s ms, "
	    "%llu without Retry-After)\n"
	    "  502 / 504    %llu / %llu\n"
	    "  other status %llu\n"
	    "  errors       %llu\n"
	    "  timeouts     %llu\n"
	    "  2xx latency  p50 %s ms  p99 %s ms  p99.9 %s ms\n"
	    "  send lag     p50 %s ms  p99 %s ms (scheduled to written)\n",
	    (unsigned long long)total.offered, (unsigned long long)total.ok,
	    ok_in_window / dur, (unsigned long long)ok_in_window, dur,
	    ok_slo_in_window / dur, opt.slo,
	    (unsigned long long)total.s429,
	    (unsigned long long)total.s503, v[3],
	    (unsigned long long)total.ra_missing,
	    (unsigned long long)total.s502, (unsigned long long)total.s504,
	    (unsigned long long)total.other,
	    (unsigned long long)total.errors,
	    (unsigned long long)total.timeouts, v[0], v[1], v[2], v[4], v[5]);
	if (ra_count)
		fprintf(stderr, "  Retry-After  %llu refusals with it: min %ld "
		    "mean %.2f max %ld s; %llu waits taken\n",
		    (unsigned long long)ra_count, ra_min,
		    (double)ra_sum / ra_count, ra_max,
		    (unsigned long long)ra_waits);
	if (ended != total.offered)
		fprintf(stderr, "loadgen: warning: %llu offered but %llu "
		    "ended\n", (unsigned long long)total.offered,
		    (unsigned long long)ended);
	for (i = 0; i < (int)ntally; i++)
		fprintf(stderr, "  %s: %s  %llu\n", tally_name, tally[i].value,
		    (unsigned long long)tally[i].count);
	if (opt.json == NULL)
		return;
	if ((fp = fopen(opt.json, "w")) == NULL)
		fatalx("%s: %s", opt.json, strerror(errno));
	for (i = 0; i < 6; i++)
		v[i] = fmt_sum(b[i], sizeof(b[i]), q[i], "null");
	fprintf(fp, "{\"rate\": %.3f, \"duration\": %.3f, \"poisson\": %s, "
	    "\"connections_max\": %u, \"connections_opened\": %llu,\n"
	    " \"offered\": %llu, \"ok_2xx\": %llu, \"s429\": %llu, "
	    "\"s503\": %llu, \"s502\": %llu, \"s504\": %llu, "
	    "\"other_status\": %llu, \"errors\": %llu, \"timeouts\": %llu,\n"
	    " \"ok_2xx_in_window\": %llu, \"goodput\": %.3f, "
	    "\"p50_ms\": %s, \"p99_ms\": %s, "
	    "\"p999_ms\": %s, \"refused_p50_ms\": %s, "
	    "\"retry_after_missing\": %llu,\n"
	    " \"send_lag_p50_ms\": %s, \"send_lag_p99_ms\": %s,\n"
	    " \"mode\": \"%s\", \"users\": %u, "
	    "\"honour_retry_after\": %s, \"slo_ms\": %.3f, "
	    "\"ok_2xx_slo\": %llu, \"ok_2xx_slo_in_window\": %llu, "
	    "\"goodput_slo\": %.3f,\n"
	    " \"retry_after_count\": %llu, \"retry_after_min\": %ld, "
	    "\"retry_after_mean\": %.3f, \"retry_after_max\": %ld, "
	    "\"retry_after_waits\": %llu,\n"
	    " \"tally\": {",
	    opt.rate, dur, opt.poisson ? "true" : "false", opt.max_conns,
	    (unsigned long long)conns_opened,
	    (unsigned long long)total.offered, (unsigned long long)total.ok,
	    (unsigned long long)total.s429, (unsigned long long)total.s503,
	    (unsigned long long)total.s502, (unsigned long long)total.s504,
	    (unsigned long long)total.other,
	    (unsigned long long)total.errors,
	    (unsigned long long)total.timeouts,
	    (unsigned long long)ok_in_window, ok_in_window / dur,
	    v[0], v[1], v[2], v[3], (unsigned long long)total.ra_missing,
	    v[4], v[5], opt.closed ? "closed" : "open", opt.closed,
	    opt.honour_ra ? "true" : "false", opt.slo,
	    (unsigned long long)total.ok_slo,
	    (unsigned long long)ok_slo_in_window, ok_slo_in_window / dur,
	    (unsigned long long)ra_count, ra_min,
	    ra_count ? (double)ra_sum / ra_count : 0.0, ra_max,
	    (unsigned long long)ra_waits);
	for (i = 0; i < (int)ntally; i++)
		fprintf(fp, "%s\"%s\": %llu", i ? ", " : "", tally[i].value,
		    (unsigned long long)tally[i].count);
	if (tally_other)
		fprintf(fp, "%s\"(more)\": %llu", ntally ? ", " : "",
		    (unsigned long long)tally_other);
	fprintf(fp, "}}\n");
	fclose(fp);
}

/* "http://host:port/path", "host:port/path" or "host:port". */
static void
parse_target(const char *arg, char **pathp)
{
	struct addrinfo hints, *res;
	char *s, *host, *port, *slash, *hp;
	int rv;

	if (strncmp(arg, "http://", 7) == 0)
		arg += 7;
	if ((s = strdup(arg)) == NULL)
		fatalx("out of memory");
	*pathp = NULL;
	if ((slash = strchr(s, '/')) != NULL) {
		if ((*pathp = strdup(slash)) == NULL)
			fatalx("out of memory");
		*slash = '\0';
	}
	if ((hp = strdup(s)) == NULL)
		fatalx("out of memory");
	host = s;
	if (*host == '[') {
		host++;
		if ((port = strchr(host, ']')) == NULL)
			fatalx("bad target %s", arg);
		*port++ = '\0';
		port = *port == ':' ? port + 1 : "80";
	} else if ((port = strrchr(host, ':')) != NULL)
		*port++ = '\0';
	else
		port = "80";
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	if ((rv = getaddrinfo(host, port, &hints, &res)) != 0)
		fatalx("%s: %s", arg, gai_strerror(rv));
	memcpy(&target_ss, res->ai_addr, res->ai_addrlen);
	target_len = res->ai_addrlen;
	freeaddrinfo(res);
	host_hdr = hp;
	free(s);
}

static void
build_heads(void)
{
	size_t i, j, len;
	int has_host = 0;
	char *p;

	for (j = 0; j < nextra; j++)
		if (strncasecmp(extra_hdrs[j], "host:", 5) == 0)
			has_host = 1;
	heads = xcalloc(npaths, sizeof(*heads));
	head_lens = xcalloc(npaths, sizeof(*head_lens));
	for (i = 0; i < npaths; i++) {
		len = strlen(paths[i]) + strlen(host_hdr) + 64;
		for (j = 0; j < nextra; j++)
			len += strlen(extra_hdrs[j]) + 2;
		p = heads[i] = xcalloc(1, len);
		p += sprintf(p, "GET %s HTTP/1.1\r\n", paths[i]);
		if (!has_host)
			p += sprintf(p, "Host: %s\r\n", host_hdr);
		p += sprintf(p, "User-Agent: spillway-loadgen\r\n");
		for (j = 0; j < nextra; j++)
			p += sprintf(p, "%s\r\n", extra_hdrs[j]);
		p += sprintf(p, "\r\n");
		head_lens[i] = (size_t)(p - heads[i]);
	}
}

static void
usage(void)
{
	fprintf(stderr,
"usage: loadgen -r RATE [options] http://HOST:PORT[/PATH]\n"
"       loadgen --closed N [--honour-retry-after] [options] http://...\n"
"  -r, --rate R          requests per second (open loop)\n"
"      --closed N        closed loop instead: N users, each sending its next\n"
"                        request when the last is answered (at once, also\n"
"                        after a refusal); -c is N\n"
"      --honour-retry-after  closed loop: after a 429/503 with Retry-After,\n"
"                        the user waits that long first\n"
"      --slo MS          count 2xx answered within MS ms apart (default 500)\n"
"  -d, --duration S      seconds of scheduled load (default 10)\n"
"  -c, --connections N   keep-alive connection cap (default 256)\n"
"  -t, --timeout S       per request, from its scheduled time (default 5)\n"
"  -p, --path P          request path; repeat to rotate (default /)\n"
"  -H, --header 'N: v'   extra request header; repeatable\n"
"      --poisson         Poisson arrivals instead of evenly spaced\n"
"      --seed N          random seed for --poisson (default 1)\n"
"      --csv FILE        per-second CSV (default: stdout)\n"
"      --json FILE       final summary as JSON\n"
"      --tally-header N  count the values of response header N by status\n"
"  -q, --quiet           no progress lines on stderr\n");
	exit(2);
}

static double
num_arg(const char *s, const char *what, double min)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end != '\0' || !(v >= min))
		fatalx("bad %s: %s", what, s);
	return v;
}

static void
add_str(char ***v, size_t *n, const char *s)
{
	if ((*v = realloc(*v, (*n + 1) * sizeof(**v))) == NULL)
		fatalx("out of memory");
	(*v)[(*n)++] = (char *)s;
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "rate", required_argument, NULL, 'r' },
		{ "duration", required_argument, NULL, 'd' },
		{ "connections", required_argument, NULL, 'c' },
		{ "timeout", required_argument, NULL, 't' },
		{ "path", required_argument, NULL, 'p' },
		{ "header", required_argument, NULL, 'H' },
		{ "poisson", no_argument, NULL, 'P' },
		{ "seed", required_argument, NULL, 'S' },
		{ "csv", required_argument, NULL, 'C' },
		{ "json", required_argument, NULL, 'J' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "tally-header", required_argument, NULL, 'T' },
		{ "closed", required_argument, NULL, 'L' },
		{ "honour-retry-after", no_argument, NULL, 'A' },
		{ "slo", required_argument, NULL, 'O' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct event *sigint_ev, *sigterm_ev;
	struct event_config *cfg;
	struct rlimit rl;
	char *tpath;
	int ch;

	while ((ch = getopt_long(argc, argv, "r:d:c:t:p:H:qh", longopts,
	    NULL)) != -1) {
		switch (ch) {
		case 'r':
			opt.rate = num_arg(optarg, "rate", 0.001);
			break;
		case 'd':
			opt.duration = num_arg(optarg, "duration", 0.001);
			break;
		case 'c':
			opt.max_conns = (unsigned int)num_arg(optarg,
			    "connections", 1);
			break;
		case 't':
			opt.timeout = num_arg(optarg, "timeout", 0.001);
			break;
		case 'p':
			add_str(&paths, &npaths, optarg);
			break;
		case 'H':
			if (strchr(optarg, ':') == NULL ||
			    strpbrk(optarg, "\r\n") != NULL)
				fatalx("bad header: %s", optarg);
			add_str(&extra_hdrs, &nextra, optarg);
			break;
		case 'P':
			opt.poisson = 1;
			break;
		case 'S':
			opt.seed = (unsigned int)num_arg(optarg, "seed", 0);
			break;
		case 'C':
			opt.csv = optarg;
			break;
		case 'J':
			opt.json = optarg;
			break;
		case 'q':
			opt.quiet = 1;
			break;
		case 'T':
			tally_name = optarg;
			break;
		case 'L':
			opt.closed = (unsigned int)num_arg(optarg, "users", 1);
			break;
		case 'A':
			opt.honour_ra = 1;
			break;
		case 'O':
			opt.slo = num_arg(optarg, "slo", 0);
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc != 1 || (opt.rate <= 0) == (opt.closed == 0))
		usage();
	if (opt.closed && opt.poisson)
		fatalx("--poisson is for the open loop, not --closed");
	if (opt.honour_ra && !opt.closed)
		fatalx("--honour-retry-after needs --closed");
	if (opt.closed)
		opt.max_conns = opt.closed;
	parse_target(argv[0], &tpath);
	if (npaths == 0)
		add_str(&paths, &npaths, tpath ? tpath : "/");
	build_heads();
	srandom(opt.seed);

	/* One descriptor per connection, and a few more. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    opt.max_conns + 32 > rl.rlim_cur)
		fatalx("--connections %u needs more descriptors than the "
		    "limit of %llu", opt.max_conns,
		    (unsigned long long)rl.rlim_cur);
	signal(SIGPIPE, SIG_IGN);

	if (opt.csv != NULL) {
		if ((csv_fp = fopen(opt.csv, "w")) == NULL)
			fatalx("%s: %s", opt.csv, strerror(errno));
	} else
		csv_fp = stdout;
	fprintf(csv_fp, "second,offered,ok_2xx,s429,s503,s502,s504,"
	    "other_status,errors,timeouts,p50_ms,p99_ms,refused_p50_ms,"
	    "retry_after_missing\n");

	/* Timers to the microsecond (timerfd), not rounded to milliseconds. */
	if ((cfg = event_config_new()) == NULL)
		fatalx("event_config_new failed");
	event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
	if ((base = event_base_new_with_config(cfg)) == NULL)
		fatalx("event_base_new failed");
	event_config_free(cfg);
	tick_ev = evtimer_new(base, tick_cb, NULL);
	sigint_ev = evsignal_new(base, SIGINT, signal_cb, NULL);
	sigterm_ev = evsignal_new(base, SIGTERM, signal_cb, NULL);
	if (tick_ev == NULL || sigint_ev == NULL || sigterm_ev == NULL)
		fatalx("event_new failed");
	evsignal_add(sigint_ev, NULL);
	evsignal_add(sigterm_ev, NULL);

	t_start = t_next = now_usec();
	t_end = t_start + (uint64_t)(opt.duration * USEC);
	total_to_send = opt.poisson || opt.closed ? UINT64_MAX :
	    (uint64_t)ceil(opt.rate * opt.duration - 1e-9);
	sec_at(t_end);
	if (opt.closed) {
		unsigned int i;

		for (i = 0; i < opt.closed; i++) {
			struct lreq *r = xcalloc(1, sizeof(*r));

			r->sched = t_start;
			r->path = next_path;
			next_path = (next_path + 1) % npaths;
			issue(r);
		}
	}
	if (opt.poisson)
		t_next += (uint64_t)(-log((random() + 1.0) /
		    ((double)RAND_MAX + 2.0)) / opt.rate * USEC);
	tick_cb(-1, 0, NULL);

	event_base_dispatch(base);

	/* The seconds not written yet, up to the last event. */
	while (sec_emitted < nsecs) {
		size_t i;
		int any = 0;

		for (i = sec_emitted; i < nsecs && !any; i++)
			any = secs[i].offered || secs[i].ok || secs[i].s429 ||
			    secs[i].s503 || secs[i].s502 || secs[i].s504 ||
			    secs[i].other || secs[i].errors ||
			    secs[i].timeouts;
		if (!any)
			break;
		emit_second(sec_emitted++);
	}
	print_summary(now_usec() - t_start);
	if (csv_fp != stdout)
		fclose(csv_fp);
	event_free(tick_ev);
	event_free(sigint_ev);
	event_free(sigterm_ev);
	event_base_free(base);
	return 0;
}
