/*
 * legacy-app.c: a small, fragile, database-backed web application, the
 * kind spillway exists to protect.
 *
 * A fixed pool of worker threads answers each request with a real SQLite
 * query on a seeded "orders" table. The query filters on a column nobody
 * indexed, so it reads the whole table: as the data grows, every request
 * costs more, and the capacity planned at launch is quietly wrong. Each
 * database page a query reads costs storage time (--page-us: the latency
 * of the disk, which this machine's page cache would otherwise hide).
 *
 * It fails the way legacy applications do, on purpose:
 *  - one I/O thread accepts every connection and queues every request in
 *    an unbounded FIFO: it never refuses anything;
 *  - a worker takes the oldest request without asking whether its client
 *    is still there: under overload it works for clients that left long
 *    ago, and answers nobody in time;
 *  - the more requests wait, the slower each is served (--degrade: lock
 *    contention, memory pressure): past the knee, goodput falls;
 *  - with --fall-over N it goes down once more than N requests wait, as a
 *    database falls over when its memory runs out.
 *
 * Invariants:
 *  - a connection has at most one request in the pipeline (queued, in
 *    service, or its answer being built); the next is parsed only once
 *    the answer is in the output buffer, so answers keep their order;
 *  - a connection lives while it is open or has a request in the
 *    pipeline; only the I/O thread touches connections, workers see jobs;
 *  - a job goes I/O thread -> work (or grow) queue -> worker (or grower)
 *    -> done queue -> I/O thread, which frees it.
 */

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
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
#include <event2/listener.h>
#include <event2/thread.h>

#include <sqlite3.h>

#define MAX_HEAD	16384
#define MAX_BODY	65536
#define MAX_ROWS	50000000L
#define BODY_LEN	512
#define SEED_TIME	1700000000LL

enum job_kind {
	JOB_ORDERS,	/* a customer's open orders: the page everyone loads */
	JOB_GROW,	/* data growth: append rows */
};

struct app_conn;

struct job {
	TAILQ_ENTRY(job)	 entry;
	enum job_kind		 kind;
	struct app_conn		*conn;		/* NULL: nobody waits (SIGUSR1) */
	int			 head_only;
	long			 customer;
	long			 grow_rows;
	uint64_t		 t_arrival;	/* usec, monotonic */
	int			 status;
	char			 body[BODY_LEN];
	size_t			 body_len;
};
TAILQ_HEAD(job_list, job);

struct app_conn {
	LIST_ENTRY(app_conn)	 entry;
	struct bufferevent	*bev;		/* NULL once the client is gone */
	struct job		*job;		/* in the pipeline, or NULL */
	int			 close_after;
};
LIST_HEAD(conn_list, app_conn);

struct worker {
	pthread_t		 thread;
	sqlite3			*db;
	sqlite3_stmt		*stmt;
};

static struct {
	int		 port;
	unsigned int	 workers;
	long		 rows;
	long		 customers;
	unsigned int	 page_us;
	double		 degrade;
	unsigned int	 fall_over;
	const char	*db_path;
	int		 quiet;
} opt = { 8081, 4, 20000, 1000, 100, 0.02, 0, NULL, 0 };

/* Shared between the I/O thread and the workers, under mtx. */
static pthread_mutex_t	 mtx = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t	 work_cv = PTHREAD_COND_INITIALIZER;
static pthread_cond_t	 grow_cv = PTHREAD_COND_INITIALIZER;
static struct job_list	 work_q = TAILQ_HEAD_INITIALIZER(work_q);
static struct job_list	 grow_q = TAILQ_HEAD_INITIALIZER(grow_q);
static struct job_list	 done_q = TAILQ_HEAD_INITIALIZER(done_q);
static unsigned int	 backlog;	/* jobs in work_q */
static unsigned int	 in_service;
static long		 nrows;		/* rows in the table now */
static int		 stopping;

/* The I/O thread's own. */
static struct event_base	*base;
static struct event		*done_ev;
static struct conn_list		 conns = LIST_HEAD_INITIALIZER(conns);
static unsigned int		 nconns;
static unsigned long long	 nrequests, nserved, nabandoned;
static unsigned long long	 last_served, last_abandoned;
static unsigned int		 max_backlog;
static unsigned long		 next_customer;
static int			 exit_status;
static char			 db_dir[64];
static char			 db_file[PATH_MAX];
static sqlite3			*writer;
static struct worker		*workers;
static pthread_t		 grower;

static void	conn_close(struct app_conn *);
static void	conn_input(struct app_conn *);

static void __attribute__((noreturn, format(printf, 1, 2)))
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "legacy-app: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(2);
}

static void __attribute__((format(printf, 1, 2)))
logx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "legacy-app: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
}

static uint64_t
now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void
sleep_usec(uint64_t us)
{
	struct timespec ts;

	ts.tv_sec = (time_t)(us / 1000000);
	ts.tv_nsec = (long)(us % 1000000) * 1000;
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* splitmix64: row i's values depend on i alone, so seeding and growth are
 * deterministic whatever the order. */
static uint64_t
mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/*
 * Append rows first+1 .. first+n to the orders table in one transaction,
 * on the writer connection. Returns 0 or -1.
 */
static int
db_append(sqlite3 *db, long first, long n)
{
	static const char *status[] = { "open", "paid", "paid", "shipped",
	    "shipped", "shipped", "cancelled", "open" };
	static const char *items[] = { "oak desk", "desk lamp", "swivel chair",
	    "bookshelf", "filing cabinet", "whiteboard", "monitor arm",
	    "paper shredder", "coat stand", "standing mat" };
	sqlite3_stmt *st = NULL;
	uint64_t r;
	long i;

	if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "INSERT INTO orders (id, customer, status, "
	    "amount, created, item) VALUES (?1, ?2, ?3, ?4, ?5, ?6)", -1, &st,
	    NULL) != SQLITE_OK)
		goto fail;
	for (i = first + 1; i <= first + n; i++) {
		r = mix((uint64_t)i);
		sqlite3_bind_int64(st, 1, i);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)(r % (uint64_t)
		    opt.customers) + 1);
		sqlite3_bind_text(st, 3, status[(r >> 20) % 8], -1,
		    SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, (sqlite3_int64)((r >> 24) % 50000));
		sqlite3_bind_int64(st, 5, SEED_TIME + i * 60);
		sqlite3_bind_text(st, 6, items[(r >> 40) % 10], -1,
		    SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_DONE)
			goto fail;
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	return sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK ?
	    0 : -1;
fail:
	logx("%s: %s", __func__, sqlite3_errmsg(db));
	sqlite3_finalize(st);
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

/* Create the database file and seed it; the writer stays open. */
static void
db_create(void)
{
	static const char *suffix[] = { "", "-wal", "-shm" };
	char path[PATH_MAX + 8];
	const char *tmp = getenv("TMPDIR");
	size_t i;

	if (opt.db_path == NULL) {
		if (tmp == NULL || *tmp == '\0' || strlen(tmp) > 40)
			tmp = "/tmp";
		snprintf(db_dir, sizeof(db_dir), "%s/legacy-app.XXXXXX", tmp);
		if (mkdtemp(db_dir) == NULL)
			fatalx("mkdtemp: %s", strerror(errno));
		snprintf(db_file, sizeof(db_file), "%s/orders.db", db_dir);
	} else
		snprintf(db_file, sizeof(db_file), "%s", opt.db_path);
	for (i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s%s", db_file, suffix[i]);
		unlink(path);
	}
	if (sqlite3_open_v2(db_file, &writer, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK)
		fatalx("%s: %s", db_file, sqlite3_errmsg(writer));
	if (sqlite3_exec(writer, "PRAGMA journal_mode = WAL;"
	    "PRAGMA synchronous = OFF;"
	    "CREATE TABLE orders (id INTEGER PRIMARY KEY, "
	    "customer INTEGER NOT NULL, status TEXT NOT NULL, "
	    "amount INTEGER NOT NULL, created INTEGER NOT NULL, "
	    "item TEXT NOT NULL)", NULL, NULL, NULL) != SQLITE_OK)
		fatalx("%s: %s", db_file, sqlite3_errmsg(writer));
	if (db_append(writer, 0, opt.rows) == -1)
		fatalx("%s: seeding failed", db_file);
	nrows = opt.rows;
}

/* Remove a temporary database (one given by --db stays). */
static void
db_remove(void)
{
	static const char *suffix[] = { "", "-wal", "-shm" };
	char path[PATH_MAX + 8];
	size_t i;

	sqlite3_close(writer);
	writer = NULL;
	if (db_dir[0] == '\0')
		return;
	for (i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s%s", db_file, suffix[i]);
		unlink(path);
	}
	rmdir(db_dir);
}

/*
 * A reader connection of its own for each worker, with a page cache too
 * small to hold the table: every query reads its pages from storage.
 */
static void
worker_open(struct worker *w)
{
	if (sqlite3_open_v2(db_file, &w->db, SQLITE_OPEN_READONLY |
	    SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK)
		fatalx("%s: %s", db_file, sqlite3_errmsg(w->db));
	if (sqlite3_exec(w->db, "PRAGMA cache_size = 8; PRAGMA mmap_size = 0",
	    NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(w->db, "SELECT count(*), "
	    "coalesce(sum(amount), 0), coalesce(max(created), 0) "
	    "FROM orders WHERE customer = ?1 AND status = 'open'", -1,
	    &w->stmt, NULL) != SQLITE_OK)
		fatalx("%s: %s", db_file, sqlite3_errmsg(w->db));
}

/* The orders page: the query, then the storage time of the pages it read,
 * longer the more requests wait (backlog, when service started). */
static void
serve_orders(struct worker *w, struct job *j, unsigned int waiting)
{
	sqlite3_int64 count = 0, sum = 0, last = 0;
	int rc, misses = 0, hi = 0;
	int scanned;
	uint64_t t0 = now_usec(), io;
	double factor;
	long rows;

	sqlite3_db_status(w->db, SQLITE_DBSTATUS_CACHE_MISS, &misses, &hi, 1);
	sqlite3_bind_int64(w->stmt, 1, j->customer);
	while ((rc = sqlite3_step(w->stmt)) == SQLITE_ROW) {
		count = sqlite3_column_int64(w->stmt, 0);
		sum = sqlite3_column_int64(w->stmt, 1);
		last = sqlite3_column_int64(w->stmt, 2);
	}
	scanned = sqlite3_stmt_status(w->stmt, SQLITE_STMTSTATUS_FULLSCAN_STEP,
	    1);
	sqlite3_reset(w->stmt);
	if (rc != SQLITE_DONE) {
		j->status = 500;
		j->body_len = (size_t)snprintf(j->body, sizeof(j->body),
		    "database error: %s\n", sqlite3_errmsg(w->db));
		return;
	}
	sqlite3_db_status(w->db, SQLITE_DBSTATUS_CACHE_MISS, &misses, &hi, 1);
	factor = 1.0 + opt.degrade * waiting / opt.workers;
	if (factor > 20)
		factor = 20;
	io = (uint64_t)((double)misses * opt.page_us * factor);
	sleep_usec(io);
	pthread_mutex_lock(&mtx);
	rows = nrows;
	pthread_mutex_unlock(&mtx);
	j->status = 200;
	j->body_len = (size_t)snprintf(j->body, sizeof(j->body),
	    "{\"customer\": %ld, \"open_orders\": %lld, \"open_amount\": %lld, "
	    "\"last_order\": %lld, \"rows\": %ld, \"rows_scanned\": %d, "
	    "\"pages_read\": %d, \"waited_ms\": %.3f, \"service_ms\": %.3f}\n",
	    j->customer, (long long)count, (long long)sum, (long long)last,
	    rows, scanned, misses, (t0 - j->t_arrival) / 1000.0,
	    (now_usec() - t0) / 1000.0);
}

/* Hand a finished job back to the I/O thread. */
static void
job_done(struct job *j)
{
	pthread_mutex_lock(&mtx);
	TAILQ_INSERT_TAIL(&done_q, j, entry);
	pthread_mutex_unlock(&mtx);
	event_active(done_ev, EV_READ, 0);
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct job *j;
	unsigned int waiting;

	for (;;) {
		pthread_mutex_lock(&mtx);
		while (!stopping && TAILQ_EMPTY(&work_q))
			pthread_cond_wait(&work_cv, &mtx);
		if (stopping) {
			pthread_mutex_unlock(&mtx);
			return NULL;
		}
		j = TAILQ_FIRST(&work_q);
		TAILQ_REMOVE(&work_q, j, entry);
		waiting = --backlog;
		in_service++;
		pthread_mutex_unlock(&mtx);

		serve_orders(w, j, waiting);

		pthread_mutex_lock(&mtx);
		in_service--;
		pthread_mutex_unlock(&mtx);
		job_done(j);
	}
}

/* Data growth: one thread appends rows while the workers go on reading. */
static void *
grower_main(void *arg)
{
	struct job *j;
	uint64_t t0;
	long first;
	int rc;

	(void)arg;
	for (;;) {
		pthread_mutex_lock(&mtx);
		while (!stopping && TAILQ_EMPTY(&grow_q))
			pthread_cond_wait(&grow_cv, &mtx);
		if (stopping) {
			pthread_mutex_unlock(&mtx);
			return NULL;
		}
		j = TAILQ_FIRST(&grow_q);
		TAILQ_REMOVE(&grow_q, j, entry);
		first = nrows;
		pthread_mutex_unlock(&mtx);

		if (j->grow_rows <= 0)
			j->grow_rows = first;
		if (first + j->grow_rows > MAX_ROWS)
			j->grow_rows = MAX_ROWS - first;
		t0 = now_usec();
		rc = db_append(writer, first, j->grow_rows);
		pthread_mutex_lock(&mtx);
		if (rc == 0)
			nrows = first + j->grow_rows;
		first = nrows;
		pthread_mutex_unlock(&mtx);
		j->status = rc == 0 ? 200 : 500;
		j->body_len = (size_t)snprintf(j->body, sizeof(j->body),
		    "{\"rows\": %ld, \"added\": %ld, \"ms\": %.1f}\n", first,
		    rc == 0 ? j->grow_rows : 0, (now_usec() - t0) / 1000.0);
		logx("data growth: %s %ld rows in %.0f ms, %ld rows now",
		    rc == 0 ? "added" : "failed to add", j->grow_rows,
		    (now_usec() - t0) / 1000.0, first);
		job_done(j);
	}
}

static const char *
status_text(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 413: return "Content Too Large";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	default: return "Unknown";
	}
}

/* Queue an answer on the connection; Content-Length framing always. */
static void
conn_respond(struct app_conn *c, int status, const char *type,
    const char *body, size_t len, int head_only)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);

	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nServer: legacy-app\r\n"
	    "Content-Type: %s\r\nContent-Length: %zu\r\n%s\r\n", status,
	    status_text(status), type, len,
	    c->close_after ? "Connection: close\r\n" : "");
	if (!head_only)
		evbuffer_add(out, body, len);
}

static void
conn_error(struct app_conn *c, int status, const char *msg)
{
	c->close_after = 1;
	conn_respond(c, status, "text/plain", msg, strlen(msg), 0);
}

/* "name=value" in a query string: the value as a number, else dflt. */
static long
query_long(const char *query, const char *name, long dflt)
{
	size_t n = strlen(name);
	const char *p = query;
	char *end;
	long v;

	while (p != NULL && *p != '\0') {
		if (strncmp(p, name, n) == 0 && p[n] == '=') {
			errno = 0;
			v = strtol(p + n + 1, &end, 10);
			if (errno == 0 && end != p + n + 1 &&
			    (*end == '\0' || *end == '&'))
				return v;
			return dflt;
		}
		if ((p = strchr(p, '&')) != NULL)
			p++;
	}
	return dflt;
}

static void
stats_json(char *buf, size_t len)
{
	unsigned int b, s;
	long rows;

	pthread_mutex_lock(&mtx);
	b = backlog;
	s = in_service;
	rows = nrows;
	pthread_mutex_unlock(&mtx);
	snprintf(buf, len, "{\"workers\": %u, \"rows\": %ld, \"backlog\": %u, "
	    "\"in_service\": %u, \"max_backlog\": %u, \"connections\": %u, "
	    "\"requests\": %llu, \"served\": %llu, \"served_abandoned\": %llu, "
	    "\"page_us\": %u, \"fall_over\": %u}\n", opt.workers, rows, b, s,
	    max_backlog, nconns, nrequests, nserved, nabandoned, opt.page_us,
	    opt.fall_over);
}

/* Past --fall-over: the application goes down, for everyone at once. */
static void
fall_over(unsigned int waiting)
{
	logx("%u requests waiting, more than --fall-over %u: out of memory, "
	    "the database falls over; stopping", waiting, opt.fall_over);
	exit_status = 3;
	event_base_loopbreak(base);
}

static void
enqueue(struct app_conn *c, struct job *j)
{
	unsigned int waiting;

	j->conn = c;
	if (c != NULL)
		c->job = j;
	j->t_arrival = now_usec();
	pthread_mutex_lock(&mtx);
	if (j->kind == JOB_GROW) {
		TAILQ_INSERT_TAIL(&grow_q, j, entry);
		pthread_cond_signal(&grow_cv);
		pthread_mutex_unlock(&mtx);
		return;
	}
	TAILQ_INSERT_TAIL(&work_q, j, entry);
	waiting = ++backlog;
	pthread_cond_signal(&work_cv);
	pthread_mutex_unlock(&mtx);
	if (waiting > max_backlog)
		max_backlog = waiting;
	if (opt.fall_over && waiting > opt.fall_over)
		fall_over(waiting);
}

/*
 * One parsed request: answer it at once (health, stats, errors) or queue
 * a job, which the connection then waits for.
 */
static void
dispatch(struct app_conn *c, const char *method, char *target)
{
	char buf[BODY_LEN], *query;
	int head = strcmp(method, "HEAD") == 0;
	int get = head || strcmp(method, "GET") == 0;
	struct job *j;

	nrequests++;
	if ((query = strchr(target, '?')) != NULL)
		*query++ = '\0';
	if (strcmp(target, "/healthz") == 0 && get) {
		conn_respond(c, 200, "text/plain", "ok\n", 3, head);
		return;
	}
	if (strcmp(target, "/stats") == 0 && get) {
		stats_json(buf, sizeof(buf));
		conn_respond(c, 200, "application/json", buf, strlen(buf),
		    head);
		return;
	}
	if (strcmp(target, "/") == 0 || strcmp(target, "/orders") == 0) {
		if (!get) {
			conn_respond(c, 405, "text/plain", "GET or HEAD\n", 12,
			    0);
			return;
		}
		if ((j = calloc(1, sizeof(*j))) == NULL) {
			conn_error(c, 500, "out of memory\n");
			return;
		}
		j->kind = JOB_ORDERS;
		j->head_only = head;
		j->customer = query_long(query, "customer", 0);
		if (j->customer < 1 || j->customer > opt.customers)
			j->customer = (long)(next_customer++ %
			    (unsigned long)opt.customers) + 1;
		enqueue(c, j);
		return;
	}
	if (strcmp(target, "/admin/grow") == 0) {
		if (strcmp(method, "POST") != 0) {
			conn_respond(c, 405, "text/plain", "POST\n", 5, 0);
			return;
		}
		if ((j = calloc(1, sizeof(*j))) == NULL) {
			conn_error(c, 500, "out of memory\n");
			return;
		}
		j->kind = JOB_GROW;
		j->grow_rows = query_long(query, "rows", 0);
		enqueue(c, j);
		return;
	}
	conn_respond(c, 404, "text/plain", "not found\n", 10, head);
}

/*
 * Parse the request heads waiting in the input, one at a time, while no
 * request of this connection is in the pipeline.
 */
static void
conn_input(struct app_conn *c)
{
	struct evbuffer *in;
	struct evbuffer_ptr p;
	char head[MAX_HEAD + 1], *line, *next, *method, *target, *version;
	char *name, *value, *end;
	size_t hlen;
	long long clen;
	int http10, keepalive, closing;

	while (c->bev != NULL && c->job == NULL && !c->close_after) {
		in = bufferevent_get_input(c->bev);
		p = evbuffer_search(in, "\r\n\r\n", 4, NULL);
		if (p.pos < 0) {
			if (evbuffer_get_length(in) > MAX_HEAD)
				conn_error(c, 431, "request head too large\n");
			return;
		}
		hlen = (size_t)p.pos + 4;
		if (hlen > MAX_HEAD) {
			conn_error(c, 431, "request head too large\n");
			return;
		}
		evbuffer_copyout(in, head, hlen);
		head[hlen - 4] = '\0';

		method = head;
		if ((next = strstr(head, "\r\n")) != NULL) {
			*next = '\0';
			next += 2;
		}
		if ((target = strchr(method, ' ')) == NULL ||
		    (*target++ = '\0', (version = strchr(target, ' ')) == NULL)) {
			conn_error(c, 400, "bad request line\n");
			return;
		}
		*version++ = '\0';
		if (strcmp(version, "HTTP/1.1") != 0 &&
		    strcmp(version, "HTTP/1.0") != 0) {
			conn_error(c, 400, "bad HTTP version\n");
			return;
		}
		http10 = strcmp(version, "HTTP/1.0") == 0;
		keepalive = closing = 0;
		clen = 0;
		for (line = next; line != NULL && *line != '\0'; line = next) {
			if ((next = strstr(line, "\r\n")) != NULL) {
				*next = '\0';
				next += 2;
			}
			if ((value = strchr(line, ':')) == NULL) {
				conn_error(c, 400, "bad header line\n");
				return;
			}
			*value++ = '\0';
			value += strspn(value, " \t");
			name = line;
			if (strcasecmp(name, "Connection") == 0) {
				if (strcasestr(value, "close") != NULL)
					closing = 1;
				if (strcasestr(value, "keep-alive") != NULL)
					keepalive = 1;
			} else if (strcasecmp(name, "Content-Length") == 0) {
				errno = 0;
				clen = strtoll(value, &end, 10);
				if (errno || end == value || *end != '\0' ||
				    clen < 0 || clen > MAX_BODY) {
					conn_error(c, 413, "body too large\n");
					return;
				}
			} else if (strcasecmp(name, "Transfer-Encoding") == 0) {
				conn_error(c, 501, "no chunked bodies here\n");
				return;
			}
		}
		/* The body, which nothing here reads, must be complete. */
		if (evbuffer_get_length(in) < hlen + (size_t)clen)
			return;
		evbuffer_drain(in, hlen + (size_t)clen);
		c->close_after = closing || (http10 && !keepalive);
		dispatch(c, method, target);
	}
}

/* The client is gone (or the answer that closes the connection was
 * written): free its socket now, the connection once no job needs it. */
static void
conn_close(struct app_conn *c)
{
	if (c->bev != NULL) {
		bufferevent_free(c->bev);
		c->bev = NULL;
		nconns--;
	}
	if (c->job != NULL)
		return;
	LIST_REMOVE(c, entry);
	free(c);
}

static void
read_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	conn_input(arg);
}

static void
write_cb(struct bufferevent *bev, void *arg)
{
	struct app_conn *c = arg;

	(void)bev;
	if (c->close_after && c->job == NULL)
		conn_close(c);
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)what;
	conn_close(arg);
}

static void
accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct app_conn *c;
	int one = 1;

	(void)l;
	(void)sa;
	(void)salen;
	(void)arg;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (c->bev = bufferevent_socket_new(base, fd,
	    BEV_OPT_CLOSE_ON_FREE)) == NULL) {
		free(c);
		close(fd);
		return;
	}
	LIST_INSERT_HEAD(&conns, c, entry);
	nconns++;
	bufferevent_setwatermark(c->bev, EV_READ, 0, MAX_HEAD + MAX_BODY);
	bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

static void
accept_error_cb(struct evconnlistener *l, void *arg)
{
	static uint64_t last;
	uint64_t now = now_usec();

	(void)l;
	(void)arg;
	/* Legacy to the end: it logs, and goes on accepting. */
	if (now - last > 1000000) {
		logx("accept: %s", strerror(errno));
		last = now;
	}
}

/* Finished jobs: answer their clients, if they are still there. */
static void
done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct job_list list = TAILQ_HEAD_INITIALIZER(list);
	struct app_conn *c;
	struct job *j;

	(void)fd;
	(void)what;
	(void)arg;
	pthread_mutex_lock(&mtx);
	TAILQ_CONCAT(&list, &done_q, entry);
	pthread_mutex_unlock(&mtx);
	while ((j = TAILQ_FIRST(&list)) != NULL) {
		TAILQ_REMOVE(&list, j, entry);
		if (j->kind == JOB_ORDERS)
			nserved++;
		if ((c = j->conn) == NULL) {
			free(j);
			continue;
		}
		c->job = NULL;
		if (c->bev == NULL) {
			/* Worked for nobody: the client left while it waited. */
			if (j->kind == JOB_ORDERS)
				nabandoned++;
			conn_close(c);
		} else {
			conn_respond(c, j->status, "application/json", j->body,
			    j->body_len, j->head_only);
			conn_input(c);
		}
		free(j);
	}
}

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
	unsigned int b, s;
	long rows;

	(void)fd;
	(void)what;
	(void)arg;
	if (opt.quiet)
		return;
	pthread_mutex_lock(&mtx);
	b = backlog;
	s = in_service;
	rows = nrows;
	pthread_mutex_unlock(&mtx);
	if (nserved == last_served && b == 0)
		return;
	logx("backlog %u, in service %u, served %llu/s (%llu for clients "
	    "already gone), %u connections, %ld rows", b, s,
	    nserved - last_served, nabandoned - last_abandoned, nconns, rows);
	last_served = nserved;
	last_abandoned = nabandoned;
}

static void
signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct job *j;

	(void)what;
	(void)arg;
	if (sig == SIGUSR1) {
		if ((j = calloc(1, sizeof(*j))) != NULL) {
			j->kind = JOB_GROW;
			enqueue(NULL, j);
		}
		return;
	}
	event_base_loopbreak(base);
}

static void
free_jobs(struct job_list *list)
{
	struct job *j;

	while ((j = TAILQ_FIRST(list)) != NULL) {
		TAILQ_REMOVE(list, j, entry);
		free(j);
	}
}

/* Stop the threads, then free what is left: jobs, connections, database. */
static void
shutdown_all(void)
{
	struct app_conn *c;
	unsigned int i;

	pthread_mutex_lock(&mtx);
	stopping = 1;
	pthread_cond_broadcast(&work_cv);
	pthread_cond_broadcast(&grow_cv);
	pthread_mutex_unlock(&mtx);
	for (i = 0; i < opt.workers; i++) {
		pthread_join(workers[i].thread, NULL);
		sqlite3_finalize(workers[i].stmt);
		sqlite3_close(workers[i].db);
	}
	pthread_join(grower, NULL);
	free(workers);
	free_jobs(&work_q);
	free_jobs(&grow_q);
	free_jobs(&done_q);
	while ((c = LIST_FIRST(&conns)) != NULL) {
		c->job = NULL;
		if (c->bev != NULL)
			bufferevent_free(c->bev);
		LIST_REMOVE(c, entry);
		free(c);
	}
	db_remove();
}

static void
usage(void)
{
	fprintf(stderr,
"usage: legacy-app [options]\n"
"  -p, --port N        TCP port on 127.0.0.1 (default 8081; 0: any)\n"
"  -w, --workers N     worker threads, one request each (default 4)\n"
"  -r, --rows N        orders seeded at start (default 20000)\n"
"      --customers N   distinct customers in the orders (default 1000)\n"
"      --page-us N     storage time per database page read, usec (default 100)\n"
"      --degrade F     service slows by F x backlog / workers (default 0.02)\n"
"      --fall-over N   fall over when more than N requests wait (default 0:\n"
"                      never)\n"
"      --db PATH       database file, kept (default: a temporary one)\n"
"  -q, --quiet         no per-second log lines\n"
"GET / or /orders?customer=N: a customer's open orders (a full table scan)\n"
"GET /healthz, GET /stats; POST /admin/grow?rows=N (default: double), or\n"
"SIGUSR1 (double): data growth\n");
	exit(2);
}

static long
num_arg(const char *s, long min, long max, const char *what)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end != '\0' || v < min || v > max)
		fatalx("%s: %s: not a number from %ld to %ld", what, s, min,
		    max);
	return v;
}

static void
parse_args(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "workers", required_argument, NULL, 'w' },
		{ "rows", required_argument, NULL, 'r' },
		{ "customers", required_argument, NULL, 'C' },
		{ "page-us", required_argument, NULL, 'P' },
		{ "degrade", required_argument, NULL, 'D' },
		{ "fall-over", required_argument, NULL, 'F' },
		{ "db", required_argument, NULL, 'B' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	char *end;
	int ch;

	while ((ch = getopt_long(argc, argv, "p:w:r:qh", lopts, NULL)) != -1) {
		switch (ch) {
		case 'p':
			opt.port = (int)num_arg(optarg, 0, 65535, "--port");
			break;
		case 'w':
			opt.workers = (unsigned int)num_arg(optarg, 1, 256,
			    "--workers");
			break;
		case 'r':
			opt.rows = num_arg(optarg, 1, MAX_ROWS, "--rows");
			break;
		case 'C':
			opt.customers = num_arg(optarg, 1, 1000000,
			    "--customers");
			break;
		case 'P':
			opt.page_us = (unsigned int)num_arg(optarg, 0, 1000000,
			    "--page-us");
			break;
		case 'D':
			errno = 0;
			opt.degrade = strtod(optarg, &end);
			if (errno || end == optarg || *end != '\0' ||
			    opt.degrade < 0 || opt.degrade > 100)
				fatalx("--degrade: %s: not a number from 0 to "
				    "100", optarg);
			break;
		case 'F':
			opt.fall_over = (unsigned int)num_arg(optarg, 0,
			    INT_MAX, "--fall-over");
			break;
		case 'B':
			opt.db_path = optarg;
			break;
		case 'q':
			opt.quiet = 1;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
}

int
main(int argc, char **argv)
{
	struct evconnlistener *lev;
	struct sockaddr_in sin;
	socklen_t slen = sizeof(sin);
	struct event *sigs[4], *tick;
	struct timeval one_sec = { 1, 0 };
	struct rlimit rl;
	sigset_t all, old;
	unsigned int i;

	parse_args(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (evthread_use_pthreads() == -1 || (base = event_base_new()) == NULL)
		fatalx("libevent: cannot start");
	db_create();

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)opt.port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((lev = evconnlistener_new_bind(base, accept_cb, NULL,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 4096,
	    (struct sockaddr *)&sin, sizeof(sin))) == NULL) {
		db_remove();
		fatalx("127.0.0.1:%d: %s", opt.port, strerror(errno));
	}
	evconnlistener_set_error_cb(lev, accept_error_cb);
	getsockname(evconnlistener_get_fd(lev), (struct sockaddr *)&sin, &slen);

	done_ev = event_new(base, -1, 0, done_cb, NULL);
	tick = event_new(base, -1, EV_PERSIST, tick_cb, NULL);
	sigs[0] = evsignal_new(base, SIGINT, signal_cb, NULL);
	sigs[1] = evsignal_new(base, SIGTERM, signal_cb, NULL);
	sigs[2] = evsignal_new(base, SIGUSR1, signal_cb, NULL);
	sigs[3] = NULL;
	if (done_ev == NULL || tick == NULL || sigs[0] == NULL ||
	    sigs[1] == NULL || sigs[2] == NULL)
		fatalx("libevent: out of memory");
	for (i = 0; i < 3; i++)
		evsignal_add(sigs[i], NULL);
	evtimer_add(tick, &one_sec);

	/* Signals are the I/O thread's: the other threads block them. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	if ((workers = calloc(opt.workers, sizeof(*workers))) == NULL)
		fatalx("out of memory");
	for (i = 0; i < opt.workers; i++) {
		worker_open(&workers[i]);
		if (pthread_create(&workers[i].thread, NULL, worker_main,
		    &workers[i]) != 0)
			fatalx("pthread_create failed");
	}
	if (pthread_create(&grower, NULL, grower_main, NULL) != 0)
		fatalx("pthread_create failed");
	pthread_sigmask(SIG_SETMASK, &old, NULL);

	logx("listening on 127.0.0.1:%d, %u workers, %ld rows, %u us per "
	    "page read, degrade %.2f, fall-over %u%s", ntohs(sin.sin_port),
	    opt.workers, opt.rows, opt.page_us, opt.degrade, opt.fall_over,
	    opt.fall_over ? "" : " (never)");
	event_base_dispatch(base);

	evconnlistener_free(lev);
	shutdown_all();
	for (i = 0; i < 3; i++)
		event_free(sigs[i]);
	event_free(tick);
	event_free(done_ev);
	event_base_free(base);
	libevent_global_shutdown();
	if (exit_status == 0)
		logx("stopped: served %llu, %llu of them for clients already "
		    "gone", nserved, nabandoned);
	return exit_status;
}
