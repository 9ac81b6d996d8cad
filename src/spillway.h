/*
 * spillway.h: the runtime objects of the I/O side (proxy, generation,
 * listener, conn, upstream) and the functions they call on each other. The
 * pure policy modules have headers of their own and know nothing of these.
 *
 * Ownership: a struct proxy owns its generations and its workers; a
 * struct worker owns its listeners, client connections and backend
 * servers (with their pools); a server owns its idle backend
 * connections; a busy backend connection (struct upconn) is owned by the
 * client connection it serves and goes back to its server's pool, or is
 * closed, when that request ends.
 *
 * Dependencies go one way: main.c calls proxy.c, proxy.c calls the rest,
 * nothing calls back up. Within a connection, upstream.c and shed.c keep
 * their own part (struct upstream_req, struct shed_ticket) and ask the
 * connection for the rest through conn_*() functions; conn.c and relay.c
 * own the rest of struct conn.
 */
#ifndef SPILLWAY_SPILLWAY_H
#define SPILLWAY_SPILLWAY_H

#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include <event2/event.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>

#include <openssl/ssl.h>

#include "config.h"
#include "admission.h"
#include "balance.h"
#include "lockstat.h"
#include "cluster.h"
#include "http.h"
#include "limiter.h"
#include "log.h"
#include "metrics.h"
#include "queue.h"
#include "retry.h"

/* Back-pressure: stop reading a side when its peer holds this much. */
#define SPILLWAY_WM_HIGH	(64 * 1024)
#define SPILLWAY_WM_LOW		(16 * 1024)
#define TLS_RECORD_MAX		16384	/* plaintext of one TLS record */

/* Body bytes read and thrown away after our own answer, before closing. */
#define SPILLWAY_DISCARD_MAX	(256 * 1024)

/*
 * Event priorities: everything runs at the default, SPILLWAY_PRIO_N / 2,
 * except client TLS handshakes, at the lowest.
 */
#define SPILLWAY_PRIO_N		3
#define SPILLWAY_PRIO_DEFAULT	(SPILLWAY_PRIO_N / 2)
#define SPILLWAY_PRIO_HANDSHAKE	(SPILLWAY_PRIO_N - 1)

/* File descriptors kept free beyond two per client connection. */
#define SPILLWAY_FD_RESERVE	16

struct proxy;
struct worker;
struct conn;

/* One backend connection. */
enum upconn_state {
	UC_CONNECTING = 0,	/* connect() under way for a request */
	UC_BUSY,		/* serving a client connection's request */
	UC_IDLE,		/* kept alive in its server's pool */
	UC_PROBE,		/* connect() to see if an ejected server is back */
};

struct upconn {
	enum upconn_state	 uc_state;
	struct bufferevent	*uc_bev;
	struct server		*uc_server;
	struct conn		*uc_conn;	/* owner while connecting/busy */
	unsigned int		 uc_requests;	/* requests sent so far */
	TAILQ_ENTRY(upconn)	 uc_entry;	/* idle pool, or connecting */
};
TAILQ_HEAD(upconn_list, upconn);

/*
 * Runtime state of one backend server. It outlives a reload that keeps its
 * address (pool and counters carry over); one that a reload removes is
 * retired: its idle connections are closed and it is freed when its last
 * request ends (those requests still hold the old configuration, so
 * sv_addr stays valid).
 *
 * Every worker has its own struct server per address (its pool, its
 * requests in flight, its counters), but their health is one: sv_health
 * points at worker 0's server's sv_hs, under px_health_mtx. A worker's
 * server takes the pointer when it is made (upstream_prepare(), after
 * worker 0's); reloads commit worker 0 last and a retired server reads its
 * health no more, so the pointer never outlives what it points at.
 */
struct server {
	struct worker		*sv_worker;
	const struct config_addr *sv_addr;
	int			 sv_retired;
	unsigned int		 sv_active;	/* requests in flight */
	unsigned int		 sv_nidle;
	struct upconn_list	 sv_idle;	/* most recently used first */
	struct upconn_list	 sv_connecting;	/* for requests */
	struct upconn		*sv_probe;	/* in flight, or NULL */
	struct check		*sv_check;	/* active checks, or NULL */
	char			 sv_check_last[64]; /* last check's result */
	SSL_SESSION		*sv_tls_sess;	/* to resume, or NULL */
	struct health		*sv_health;	/* sv_hs, or worker 0's: shared */
	struct health		 sv_hs;		/* worker 0's: the servers' */
	_Atomic uint64_t	*sv_quiet;	/* sv_quiet_hs, or worker 0's */
	_Atomic uint64_t	 sv_quiet_hs;	/* health_quiet_from(), published
						   under px_health_mtx */
	struct server_slots	*sv_slots;	/* its limit, all workers' */
	double			 sv_credit;	/* slow start's share, rr */
	uint64_t		 sv_requests;	/* sent to it, all tries */
	uint64_t		 sv_answered;	/* response heads */
	uint64_t		 sv_latency_usec; /* their sum: connect to head */
};

/*
 * A backend server's concurrency limit (per-server limits, issue 14): one
 * for the whole process, however many workers. Every worker's struct
 * server for the address points at it (sv_slots), as at its health; the
 * balancer's list of them is px_slots. Everything in it is under
 * px_shed_mtx, with the queue: the limiter, the slow-start credit, and
 * ss_refs, which counts the servers pointing at it and the requests
 * holding one of its slots (ur_slot, st_slot); the last one frees it, so
 * a slot outlives a reload that removes its server.
 */
struct server_slots {
	struct limiter		*ss_lim;
	const struct health	*ss_health;	/* worker 0's server's, while
						   in px_slots */
	_Atomic uint64_t	*ss_quiet;	/* and its sv_quiet */
	double			 ss_credit;	/* slow start's turns */
	unsigned int		 ss_refs;
};

/*
 * What upstream.c keeps of a client connection's request: the backend
 * connection serving it and the servers tried. Only upstream.c writes it;
 * conn.c and relay.c read ur_up and ur_server.
 */
struct upstream_req {
	struct upconn		*ur_up;
	struct server		*ur_server;	/* counted in sv_active */
	struct server_slots	*ur_slot;	/* its slot's server, or NULL;
					   the pointer is the worker's, what
					   it points at px_shed_mtx's */
	size_t			 ur_idx;	/* last server tried */
	unsigned int		 ur_tries;	/* servers tried */
	int			 ur_retried;	/* resent after a stale conn */
	size_t			 ur_first;	/* first server tried */
	int			 ur_judged;	/* this try's verdict given */
	uint64_t		 ur_t_try;	/* this try began, usec */
	const char		*ur_name;	/* backend address, for the log */
};

/*
 * What shed.c keeps of a client connection's request: its place in the
 * queue and its limiter slot. Only shed.c writes it; conn.c reads it.
 */
enum shed_handoff {
	SH_NONE = 0,		/* not handed over */
	SH_GRANT,		/* popped from the queue with a slot */
	SH_SHED,		/* dropped from the queue: st_why */
};

struct shed_ticket {
	struct conn		*st_conn;	/* whose ticket */
	struct worker		*st_worker;	/* the connection's worker */
	enum shed_handoff	 st_handoff;	/* under px_shed_mtx */
	enum queue_shed		 st_why;	/* SH_SHED: why */
	struct server_slots	*st_slot;	/* SH_GRANT: its server */
	TAILQ_ENTRY(shed_ticket) st_hentry;	/* in st_worker->w_handoff */
	struct queue_item	 st_qitem;	/* while waiting */
	int			 st_has_slot;	/* holds a limiter slot */
	int			 st_pending;	/* in st_worker->w_pending */
	int			 st_retry;	/* pending: a retry (SHED_ECHO) */
	TAILQ_ENTRY(shed_ticket) st_pentry;	/* in w_pending, or a flush's */
	uint64_t		 st_t_queued;	/* entered the queue, usec */
	uint64_t		 st_t_shed;	/* last refused, usec */
	uint64_t		 st_retry_after; /* refused: seconds, worked out
					   with the verdict; 0: not yet */
};
TAILQ_HEAD(ticket_list, shed_ticket);

/*
 * A slot given back, waiting for its worker's next flush of the shed
 * batch (shed.c): its server (NULL: none was in rotation) and what the
 * request taught.
 */
struct shed_release {
	struct server_slots	*sr_slot;	/* its reference */
	uint64_t		 sr_latency;	/* usec */
	enum limiter_outcome	 sr_outcome;
};
#define SHED_BATCH	64	/* releases held at most before a flush */

struct listener {
	struct worker		*ls_worker;
	const struct config_addr *ls_addr;
	const struct config_addr *ls_next;	/* reload: kept, new address */
	int			 ls_tls;	/* a [tls] listener */
	int			 ls_next_tls;
	struct evconnlistener	*ls_evl;
	TAILQ_ENTRY(listener)	 ls_entry;
};
TAILQ_HEAD(listener_list, listener);
struct ppaccept;
TAILQ_HEAD(ppaccept_list, ppaccept);

/* TLS on a client connection. */
#define CONN_TLS_HANDSHAKE	1	/* handshake under way */
#define CONN_TLS_DONE		2	/* established */

/* Client connection states; see conn_state_name(). */
enum conn_state {
	CS_HEAD = 0,	/* waiting for, or reading, a request head */
	CS_DELAYED,	/* admitted; an injected fault delay, no slot held */
	CS_QUEUED,	/* admitted; waiting in the queue for a slot */
	CS_CONNECT,	/* head read; waiting for a backend connection */
	CS_PROXY,	/* request and response flowing through */
	CS_DISCARD,	/* answered by us; reading the body to throw it away */
	CS_CLOSING,	/* last bytes being written, then lingering close */
	CS_DEAD,	/* closed; the struct is freed on the next loop turn */
};

/* Response side of a proxied request. */
enum resp_state {
	RS_NONE = 0,	/* nothing received from the backend yet */
	RS_HEAD,	/* bytes of the response head arriving */
	RS_BODY,	/* head sent to the client, body flowing */
	RS_DONE,	/* whole response relayed */
};

/* A client key longer than this asks the buckets at once, not batched. */
#define CONN_ADM_KEY_MAX	256

struct conn {
	uint64_t		 cn_id;
	enum conn_state		 cn_state;
	struct proxy		*cn_proxy;
	struct worker		*cn_worker;	/* whose loop it is on */
	struct generation	*cn_gen;	/* generation it started with */
	const struct config	*cn_conf;	/* cn_gen->g_conf, for short */
	struct bufferevent	*cn_bev;
	struct event		*cn_timer;	/* header, idle or linger */
	char			 cn_peer[64];	/* "ip:port" */
	char			 cn_peer_ip[48];
	/* the request's real client (realip.h): the peer, or a hop of
	   forwarded_header when the peer is a trusted proxy */
	char			 cn_client_ip[REALIP_TEXT_MAX];
	int			 cn_client_hop;	/* from the header */
	int			 cn_tls;	/* CONN_TLS_*: 0 plain */
	int			 cn_tls_abort;	/* close it: renegotiation */
	int			 cn_tls_lowprio; /* still at handshake priority */
	TAILQ_ENTRY(conn)	 cn_entry;

	/* the request in progress */
	struct http_head	 cn_req;
	struct http_body	 cn_req_body;
	struct evbuffer		*cn_uphead;	/* head as sent upstream */
	struct evbuffer		*cn_upend;	/* to the backend, unsent */
	struct evbuffer		*cn_cpend;	/* to the client, unsent */
	char			 cn_reqline[256]; /* "METHOD target" for log */
	char			 cn_host[128];	/* Host, for the log */
	char			 cn_ua[256];	/* User-Agent, for the log */
	char			 cn_referer[256]; /* Referer, for the log */
	enum http_method	 cn_method;
	int			 cn_version_minor;
	int			 cn_keepalive;	/* client conn may be reused */
	int			 cn_req_done;	/* request body all forwarded */
	int			 cn_tmode;	/* client timeouts set: 0 unset,
					   1 write only, 2 read and write */
	const struct config	*cn_tconf;	/* ...from this generation */
	int			 cn_head_bytes;	/* a request has begun */
	unsigned int		 cn_requests;	/* requests on this conn */
	int			 cn_req_paused;	/* client read off: backend full,
					   or our answers unread (CS_HEAD) */
	int			 cn_resp_paused; /* backend read off: client full */
	uint64_t		 cn_t_start;	/* head complete, usec */
	uint64_t		 cn_t_upstream;	/* dispatched, usec */

	/* the response */
	struct upstream_req	 cn_ur;		/* upstream.c's */
	struct shed_ticket	 cn_st;		/* shed.c's */
	enum resp_state		 cn_resp_state;
	struct http_head	 cn_resp;
	struct http_body	 cn_resp_body;
	int			 cn_dechunk;	/* strip chunking (1.0 client) */
	int			 cn_up_reuse;	/* backend conn may be pooled */
	int			 cn_status;	/* status sent to the client */
	enum metrics_reason	 cn_reason;	/* Spillway-Reason, or MR_NONE */
	const char		*cn_note;	/* for the log only, or NULL */
	uint64_t		 cn_retry_after; /* seconds, 0: no header */
	size_t			 cn_class;	/* index in cn_conf->classes */
	int			 cn_fault;	/* FAULT_* injected in this one */
	int			 cn_fault_ok;	/* listener allows: -1 not known */
	unsigned long		 cn_fault_gen;	/* ...under this generation id */
	uint64_t		 cn_t_resp_head; /* final response head, usec */
	uint64_t		 cn_resp_bytes;	/* of the current response */
	uint64_t		 cn_resp_head_bytes; /* ...of them in heads */

	/* waiting for its worker's admission batch (conn_start.c) */
	int			 cn_adm_pending;
	TAILQ_ENTRY(conn)	 cn_adm_entry;	/* in w_admit */
	int			 cn_adm_kind;	/* enum client_key_kind */
	int			 cn_adm_nokey;	/* no client key: no client bucket */
	size_t			 cn_adm_keylen;
	char			 cn_adm_key[CONN_ADM_KEY_MAX];
};
TAILQ_HEAD(conn_list, conn);

/*
 * A configuration generation: the plain data of one configuration file and
 * what is built from it (its TLS contexts), counted. The proxy holds one
 * reference on the generation in force; every client connection holds one
 * on the generation its request started with. The last reference frees it.
 */
struct generation {
	struct config		*g_conf;
	struct tls		*g_tls;		/* OpenSSL contexts (tls.c) */
	unsigned long		 g_id;		/* 1 at start, +1 per reload */
	atomic_uint		 g_refs;		/* workers swap at will */
};

/*
 * A worker (worker.c): one event loop on one thread, and what only that
 * loop touches: its listeners (with several workers, one SO_REUSEPORT
 * socket per worker and address), its client connections, its backend
 * servers' pools, its timers and its counters. Worker 0 runs on the main
 * thread, beside the admin listener and the signals; the others each on a
 * thread of their own. Another thread reaches into a worker only through
 * worker_call() (run a function on its loop and wait), by activating one
 * of its events (w_kick, w_health_ev; never adding or deleting one, which
 * from another thread waits for its callback), or, in a reload's prepare
 * on worker k while the main thread waits in worker_call(), by reading
 * worker 0's servers to share their health.
 */
struct worker {
	struct proxy		*w_proxy;
	unsigned int		 w_id;		/* 0: the main thread's */
	struct event_base	*w_base;
	struct generation	*w_gen;		/* for new requests: a reference */
	const struct config	*w_conf;	/* w_gen->g_conf, for short */
	int			 w_stopping;
	struct metrics		 w_metrics;	/* summed at scrape time */
	struct listener_list	 w_listeners;
	struct listener_list	 w_staged;	/* prepared: bound, not live */
	struct conn_list	 w_conns;
	struct ppaccept_list	 w_ppwait;	/* PROXY headers awaited */
	unsigned int		 w_nconns;	/* and those awaiting one */
	unsigned int		 w_max_conns;	/* its share of the cap */
	uint64_t		 w_next_id;
	uint64_t		 w_fault_rng;	/* fault injection draws */
	struct server		**w_servers;
	size_t			 w_nservers;
	size_t			 w_rr_next;
	struct retry		 w_retry;	/* its budget, across reloads */
	struct server		**w_servers_next; /* prepared */
	size_t			*w_servers_from; /* prepared: kept server + 1 */
	size_t			 w_nservers_next;
	struct event		*w_queue_timer;	/* next queue deadline */
	struct event		*w_kick;	/* slots and verdicts handed over */
	struct event		*w_health_ev;	/* a server went out elsewhere */
	struct event		*w_lag_timer;	/* shed.c: loop lag, every 10 ms */
	struct event		*w_lag_probe;	/* ... fires an iteration later */
	uint64_t		 w_lag_t0;	/* when the probe was armed */
	_Atomic uint64_t	 w_lag;		/* smoothed loop lag, usec */
	struct ticket_list	 w_handoff;	/* under px_shed_mtx */
	/* conn_start.c's admission batch, flushed once a loop iteration */
	struct event		*w_admit_ev;
	int			 w_admit_armed;
	TAILQ_HEAD(, conn)	 w_admit;	/* requests awaiting a verdict */
	struct accesslog_buf	 w_alog;	/* its access log lines */
	struct event		*w_alog_ev;	/* flush them (every second) */
	/* shed.c's batch, the worker's own: flushed once a loop iteration */
	struct event		*w_flush;
	int			 w_flush_armed;
	struct ticket_list	 w_pending;	/* requests awaiting a verdict */
	struct shed_release	 w_rel[SHED_BATCH];
	size_t			 w_nrel;
	int			 w_accept_paused; /* on EMFILE */
	uint64_t		 w_emfile_said;   /* last warning, usec */
	unsigned int		 w_emfile_quiet;  /* pauses not said since */
	int			 w_accepting;	  /* listeners enabled */
	struct event		*w_accept_timer;
	struct event		*w_stop_timer;

	/* worker_call(): under w_call_mtx */
	pthread_t		 w_thread;
	int			 w_joinable;	/* w_thread started, not joined */
	int			 w_running;	/* its own thread runs the loop */
	pthread_mutex_t		 w_call_mtx;
	pthread_cond_t		 w_call_cv;
	struct event		*w_call_ev;
	void			(*w_call_fn)(struct worker *, void *);
	void			*w_call_arg;
	int			 w_call_done;
};

/*
 * The locks of the proxy the workers share, counted (lockstat.h); the
 * access log's is log.c's own (accesslog_lockstat()).
 */
enum px_lock { PXL_ADMISSION, PXL_SHED, PXL_HEALTH, PXL_COUNT };

/*
 * The proxy runtime (proxy.c): what every worker shares. The generation in
 * force, admission, the limiter and the queue are one for all workers;
 * admission is under px_adm_mtx, the servers' limiters (struct
 * server_slots) and the queue under px_shed_mtx.
 */
struct proxy {
	struct generation	*px_gen;	/* the generation in force */
	const struct config	*px_conf;	/* px_gen->g_conf, for short */
	struct admission	*px_adm;
	unsigned long		 px_adm_gen;	/* the generation id px_adm is
						   built for; under px_adm_mtx */
	struct cluster		*px_cluster;	/* its buckets on Redis */
	/* per-server limits: the servers in force, under px_shed_mtx */
	struct server_slots	**px_slots;	/* worker 0's servers' */
	size_t			 px_nslots;
	struct balance_view	*px_views;	/* one per px_slots */
	struct server_slots	**px_slots_next; /* prepared by worker 0 */
	struct balance_view	*px_views_next;
	size_t			 px_slot_rr;	/* round robin's next */
	struct health_conf	 px_slot_hc;	/* the generation in force's */
	enum balance		 px_slot_balance;
	struct queue		*px_queue;
	uint64_t		 px_wall_at;	/* shed.c, under px_shed_mtx: the
						   wall clock last read */
	pthread_mutex_t		 px_adm_mtx;
	pthread_mutex_t		 px_shed_mtx;
	pthread_mutex_t		 px_health_mtx;	/* every server's sv_health */
	struct lock_stat	 px_lockstat[PXL_COUNT];
	struct metrics		 px_metrics;	/* the main thread's: reloads */
	uint64_t		 px_started;	/* usec */
	uint8_t			 px_seed[16];	/* keys admission's hash */
	int			 px_stopping;
	/* POST /reload: proxy_reload(), handed down to admin.c */
	int			(*px_reload)(struct proxy *, char **errors);

	/* the workers; worker 0's loop is the main thread's */
	struct worker		**px_workers;
	unsigned int		 px_nworkers;
	struct event_base	*px_base;	/* px_workers[0]->w_base */

	/* the admin listener: on the main thread's loop */
	struct evhttp		*px_admin;
	struct evhttp_bound_socket *px_admin_sock;
	struct config_addr	 px_admin_addr;
	struct evhttp		*px_admin_next;	/* prepared: bound, not live */
	struct evhttp_bound_socket *px_admin_next_sock;
	const struct config_addr *px_admin_next_addr;
	unsigned int		 px_admin_next_max; /* its max_connections */
	int			 px_admin_keep;	/* prepared: same address */
	struct evhttp		*px_admin_old;	/* moved away, freed soon */
	struct event		*px_admin_timer;
	struct event		*px_flush_timer;  /* access log, every second */
};

/* proxy.c: the runtime, on top; nothing below calls into it */
int		 proxy_init(struct proxy *, unsigned int nworkers);
int		 proxy_configure(struct proxy *, struct config *, char **errors);
int		 proxy_start(struct proxy *, const char *path);
int		 proxy_run(struct proxy *);
int		 proxy_reload(struct proxy *, char **errors);
void		 proxy_reopen_log(struct proxy *);
int		 proxy_check(const char *path);
void		 proxy_stop(struct proxy *);
void		 proxy_free(struct proxy *);

/* gen.c */
struct generation *gen_new(struct config *, char *err, size_t errlen);
void		 gen_free(struct generation *);
struct generation *gen_get(struct generation *);
void		 gen_put(struct generation *);

/* worker.c */
struct worker	*worker_new(struct proxy *, unsigned int id,
		    struct event_base *);
void		 worker_free(struct worker *);
int		 worker_start(struct worker *);
void		 worker_join(struct worker *);
void		 worker_call(struct worker *, void (*)(struct worker *, void *),
		    void *);
void		 worker_use_gen(struct worker *, struct generation *);
void		 worker_sum(struct proxy *, struct metrics *,
		    struct metrics_gauges *);
void		 worker_stop(struct worker *);
unsigned int	 worker_count(const struct config *);

/* listener.c */
void		 listener_close_all(struct worker *);
void		 listener_update(struct worker *);
int		 listener_bind(const struct config *, const struct config_addr *,
		    int backlog, int reuseport, char *err, size_t errlen);
int		 listener_warn_pause(struct worker *, unsigned int *quiet);
int		 listener_prepare(struct worker *, const struct config *,
		    char *err, size_t errlen);
void		 listener_commit(struct worker *);
void		 listener_abort(struct worker *);

/* procstat.c: the process_* metrics, from /proc/self */
void		 procstat_read(struct metrics_process *);

/* admin.c */
int		 admin_prepare(struct proxy *, const struct config *, char *err,
		    size_t errlen);
void		 admin_commit(struct proxy *);
void		 admin_abort(struct proxy *);
void		 admin_close(struct proxy *);

/* conn.c */
void		 conn_accept(struct worker *, evutil_socket_t,
		    struct sockaddr *, int socklen, int tls);
void		 conn_tls_info(const SSL *, int where, int ret);
void		 conn_upstream_failed(struct conn *, int status,
		    enum metrics_reason);
void		 conn_set_state(struct conn *, enum conn_state);
void		 conn_respond(struct conn *, int status, enum metrics_reason,
		    int close);
void		 conn_set_read_limit(struct conn *);
struct proxy	*conn_proxy(const struct conn *);
struct worker	*conn_worker(const struct conn *);
struct generation *conn_gen(const struct conn *);
uint64_t	 conn_id(const struct conn *);
struct upstream_req *conn_upstream_req(struct conn *);
struct shed_ticket *conn_shed_ticket(struct conn *);
unsigned int	 conn_priority(const struct conn *);
enum limiter_outcome conn_outcome(const struct conn *, uint64_t now,
		    uint64_t *latency);
void		 conn_note(struct conn *, const char *);
void		 conn_set_retry_after(struct conn *, uint64_t seconds);
void		 conn_arm_timer(struct conn *, uint64_t msec);
void		 conn_end_request(struct conn *);
void		 conn_close(struct conn *, const char *why);
void		 conn_set_timeouts(struct conn *);
void		 conn_stop(struct conn *);
void		 conn_shutdown(struct conn *);
const char	*conn_state_name(enum conn_state);

/* conn_start.c */
void		 conn_start_request(struct conn *, size_t headlen);
void		 conn_admit_cb(evutil_socket_t, short, void *);
void		 conn_admit_forget(struct conn *);
void		 conn_fault_delayed(struct conn *);
void		 conn_dispatch(struct conn *);
void		 conn_shed(struct conn *, enum queue_shed);

/* ppaccept.c */
void		 ppaccept_start(struct worker *, evutil_socket_t,
		    struct sockaddr *, int socklen, int tls);
void		 ppaccept_close_all(struct worker *);

/* conn_log.c */
void		 conn_save_reqline(struct conn *, const struct http_head *);
void		 conn_count_wait(struct conn *, double seconds);
void		 conn_log_request(struct conn *);

/* relay.c */
ssize_t		 relay_put_head(struct evbuffer *, size_t bound,
		    struct evbuffer_iovec *);
int		 relay_commit_head(struct evbuffer *, struct evbuffer_iovec *,
		    ssize_t n);
int		 relay_precheck(const struct conn *, size_t headlen,
		    const char **what);
void		 relay_send(struct bufferevent *, struct evbuffer *pend);
size_t		 relay_queued(struct bufferevent *, struct evbuffer *pend);
void		 relay_request(struct conn *);
void		 relay_response(struct conn *);
void		 relay_discard(struct conn *);
void		 relay_upstream_ready(struct conn *, struct upconn *);
void		 relay_upstream_read(struct conn *);
void		 relay_upstream_event(struct conn *, short what);
void		 relay_upstream_drained(struct conn *);

/* upstream.c */
int		 upstream_prepare(struct worker *, const struct config *);
void		 upstream_commit(struct worker *, const struct config *);
void		 upstream_abort(struct worker *);
void		 upstream_free(struct worker *);
void		 upstream_reset(struct conn *);
void		 upstream_request(struct conn *);
void		 upstream_retry(struct conn *);
void		 upstream_judge(struct conn *, enum health_event);
void		 upstream_health_cb(evutil_socket_t, short, void *);
void		 upstream_check_result(struct server *, int ok,
		    const char *why);

/* check.c */
struct check;
int		 check_start(struct server *, const struct config *);
void		 check_free(struct check *);
void		 upstream_answered(struct conn *, int status);
int		 upstream_failover(struct conn *);
void		 upstream_release(struct conn *, int reuse);
void		 upstream_drop_idle(struct worker *);
int		 upstream_tls_session(SSL *, SSL_SESSION *);
/* per-server limits: the caller holds px_shed_mtx (shed.c), but for
   upstream_slots_free(), which takes it */
int		 upstream_acquire(struct proxy *, uint64_t now,
		    struct server_slots **);
void		 upstream_unacquire(struct server_slots *, uint64_t now);
void		 upstream_take(struct conn *, uint64_t now);
void		 upstream_health_publish(struct worker *);
void		 upstream_slot_release(struct server_slots *, uint64_t now,
		    uint64_t latency, enum limiter_outcome);
unsigned int	 upstream_limit(struct proxy *, uint64_t now);
unsigned int	 upstream_inflight(const struct proxy *);
int		 upstream_full(struct proxy *, uint64_t now);
void		 upstream_limiter_state(const struct proxy *,
		    struct limiter_state *);
void		 upstream_slots_free(struct proxy *);
void		 upstream_set_wallclock(struct proxy *, uint64_t now,
		    uint64_t wall);

/* tls.c */
struct tls	*tls_new(const struct config *, char *err, size_t errlen);
void		 tls_free(struct tls *);
SSL		*tls_accept(struct tls *);
SSL		*tls_connect(struct tls *, const struct config *,
		    const struct config_addr *);
const char	*tls_why(SSL *, unsigned long err, char *buf, size_t len);
void		 tls_release(SSL *, int keep_session);
void		 tls_send(struct bufferevent *, struct evbuffer *pend);
size_t		 tls_read_pending(struct bufferevent *);

/* shed.c */
int		 shed_init(struct proxy *, const struct config *);
int		 shed_worker_init(struct worker *);
void		 shed_worker_free(struct worker *);
void		 shed_free(struct proxy *);
void		 shed_enter(struct conn *);
void		 shed_leave(struct conn *);
void		 shed_refused(struct conn *);
void		 shed_reconfigure(struct proxy *, const struct config *);
void		 shed_kick(struct worker *);
uint64_t	 shed_loop_lag(const struct proxy *);

/* The monotonic clock in microseconds: the only clock of the I/O side. */
static inline uint64_t
now_usec(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/*
 * The lock on the limiters and the queue (shed.c, upstream_slots.c),
 * counted (spillway_lock_*_total). Returns the time, read under the
 * lock: threads take the lock in turn, so the limiters and the queue see
 * their clock only go forward (a time read before waiting for the lock
 * could be older than one another thread already gave them, and their
 * durations would wrap).
 */
static inline uint64_t
shed_lock(struct proxy *px)
{
	lock_counted(&px->px_shed_mtx, &px->px_lockstat[PXL_SHED]);
	return now_usec();
}

static inline void
shed_unlock(struct proxy *px)
{
	pthread_mutex_unlock(&px->px_shed_mtx);
}

/*
 * The wall clock in microseconds since the epoch: only to align the
 * limiter's probes across instances (limiter_set_wallclock()).
 */
static inline uint64_t
wall_usec(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/*
 * A worker's batch event (shed.c's, conn_start.c's): made active once,
 * however many requests join the batch before it runs; its callback
 * clears *armed first.
 */
static inline void
batch_arm(struct event *ev, int *armed)
{
	if (*armed)
		return;
	*armed = 1;
	event_active(ev, EV_TIMEOUT, 0);
}

/* A duration in milliseconds as a struct timeval for libevent. */
static inline struct timeval
msec_tv(uint64_t msec)
{
	struct timeval	 tv;

	tv.tv_sec = (time_t)(msec / 1000);
	tv.tv_usec = (suseconds_t)((msec % 1000) * 1000);
	return tv;
}

#endif /* SPILLWAY_SPILLWAY_H */
