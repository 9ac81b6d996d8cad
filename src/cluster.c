/*
 * cluster.c: admission buckets shared on Redis, by hiredis's async API on
 * the proxy's event loop (its libevent adapter). Nothing here blocks:
 * commands are queued on the connection and answered in callbacks.
 *
 * Invariants:
 *   - cl_ac is the one live connection, or NULL; cl_conn numbers it, and
 *     a callback whose call carries another number belongs to a dead one
 *     and only frees its call.
 *   - Replies come in the order of the calls, so cl_sent (a ring of send
 *     times) has the oldest call out at its head; the timeout timer runs
 *     while it is not empty, and a call out longer than the timeout takes
 *     the connection down (Redis slow is Redis down).
 *   - The context is freed by us only from a timer (timeout); when hiredis
 *     gives up on it (EOF, error: NULL replies, then the disconnect
 *     callback) it frees it itself, and we only forget it.
 *   - Admission is shared only in CL_UP; every change of state goes
 *     through set_state(), which logs it once and tells admission.
 *   - Everything here runs on the owner's loop (the main thread's, worker
 *     0's) but cluster_ask() from another worker's thread: that one only
 *     builds its calls and hands them over (cl_pend, under cl_pend_mtx)
 *     for pend_cb() to send. Admission is told under the caller's lock on
 *     it (cl_adm_mtx), never held here across anything else.
 */
#include <sys/queue.h>
#include <sys/random.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "cluster.h"
#include "lease.h"
#include "log.h"

#ifdef HAVE_HIREDIS
#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libevent.h>
#endif

#define CLUSTER_CALLS_MAX	1024	/* calls out at once */
#define CLUSTER_BACKOFF_MIN	100000	/* usec before a reconnect */
#define CLUSTER_BACKOFF_MAX	1000000

enum call_kind {
	CALL_AUTH = 0,
	CALL_BEAT,
	CALL_TAKE,
};

#define CALL_NAME_MAX	256	/* longer client keys are not shared */
#define CALL_KEY_MAX	(CALL_NAME_MAX + 100)

/* One command out; the privdata of its callback. */
struct call {
	struct cluster		*ca_cl;
	uint64_t		 ca_conn;	/* cl_conn it was sent on */
	enum call_kind		 ca_kind;
	uint64_t		 ca_sent;	/* usec */
	int			 ca_evaled;	/* resent as EVAL after NOSCRIPT */
	struct admission_ref	 ca_ref;
	char			 ca_name[CALL_NAME_MAX]; /* ar_key's bytes */
	struct lease_ask	 ca_ask;
	uint64_t		 ca_rate;
	uint64_t		 ca_burst;
	char			 ca_rkey[CALL_KEY_MAX];	/* the key in Redis */
	size_t			 ca_rkeylen;
	TAILQ_ENTRY(call)	 ca_entry;	/* in cl_pend */
};
TAILQ_HEAD(call_list, call);

struct cluster {
	struct event_base	*cl_base;
	struct admission	*cl_adm;
	pthread_mutex_t		*cl_adm_mtx;	/* admission's lock */
	pthread_t		 cl_owner;	/* the thread of cl_base's loop */
	pthread_mutex_t		 cl_pend_mtx;
	struct call_list	 cl_pend;	/* asks from other threads */
	struct event		*cl_pend_ev;
	enum cluster_state	 cl_state;
#ifdef HAVE_HIREDIS
	redisAsyncContext	*cl_ac;
#endif
	uint64_t		 cl_conn;	/* number of cl_ac */
	char			 cl_addr[300];	/* as configured */
	char			 cl_ip[64];
	int			 cl_port;
	char			*cl_password;
	char			 cl_prefix[80];
	uint64_t		 cl_timeout;	/* usec */
	uint64_t		 cl_heartbeat;	/* usec */
	unsigned int		 cl_n;		/* instances sharing */
	uint64_t		 cl_backoff;	/* usec, next reconnect */
	uint64_t		 cl_sent[CLUSTER_CALLS_MAX]; /* ring of send times */
	size_t			 cl_sent_head;
	size_t			 cl_nsent;
	struct event		*cl_timeout_ev;
	struct event		*cl_beat_ev;
	struct event		*cl_retry_ev;
	char			 cl_id[64];	/* this instance, in Redis */
	char			 cl_take_sha[41];
	char			 cl_beat_sha[41];
	struct cluster_stats	 cl_st;
	const char		*cl_broken;	/* why to drop it, from a callback */
};

const char *
cluster_state_name(enum cluster_state s)
{
	switch (s) {
	case CL_OFF:
		return "off";
	case CL_CONNECTING:
		return "connecting";
	case CL_UP:
		return "up";
	case CL_DOWN:
		return "down";
	}
	return "unknown";
}

void
cluster_stats(const struct cluster *cl, struct cluster_stats *st)
{
	*st = cl->cl_st;
	st->cs_state = cl->cl_state;
	st->cs_instances = cl->cl_n;
}

static uint64_t
clock_usec(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* Admission, told under its lock. */
static void
adm_set_shared(struct cluster *cl, int shared, unsigned int n, uint64_t now)
{
	pthread_mutex_lock(cl->cl_adm_mtx);
	admission_set_shared(cl->cl_adm, shared, n, now);
	pthread_mutex_unlock(cl->cl_adm_mtx);
}

#ifdef HAVE_HIREDIS
static void
adm_ask_failed(struct cluster *cl, const struct admission_ref *ref,
    const struct lease_ask *ask)
{
	pthread_mutex_lock(cl->cl_adm_mtx);
	admission_ask_failed(cl->cl_adm, ref, ask);
	pthread_mutex_unlock(cl->cl_adm_mtx);
}
#endif

/* The one place the state changes: logged once, admission told. */
static void
set_state(struct cluster *cl, enum cluster_state s, const char *why)
{
	uint64_t	 now = clock_usec();

	if (s == cl->cl_state)
		return;
	if (s == CL_UP)
		log_msg(LOG_LVL_WARN, "redis %s up: buckets shared by %u "
		    "instances", cl->cl_addr, cl->cl_n);
	else if (s == CL_DOWN && cl->cl_state == CL_UP)
		log_msg(LOG_LVL_WARN, "redis %s down (%s): local share, "
		    "1/%u of each limit", cl->cl_addr, why,
		    cl->cl_n);
	else if (s == CL_DOWN)
		log_info("redis %s unreachable (%s): local share, 1/%u "
		    "of each limit", cl->cl_addr, why, cl->cl_n);
	if ((s == CL_UP) != (cl->cl_state == CL_UP))
		cl->cl_st.cs_changes++;
	cl->cl_state = s;
	adm_set_shared(cl, s == CL_UP, s == CL_OFF ? 1 : cl->cl_n,
	    now);
}

static void
sha1_hex(const char *text, char hex[41])
{
	unsigned char	 md[SHA_DIGEST_LENGTH];
	int		 i;

	SHA1((const unsigned char *)text, strlen(text), md);
	for (i = 0; i < SHA_DIGEST_LENGTH; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

#ifdef HAVE_HIREDIS

static void	cluster_connect(struct cluster *);

static void
set_timer(struct event *ev, uint64_t usec)
{
	struct timeval	 tv;

	tv.tv_sec = (time_t)(usec / 1000000);
	tv.tv_usec = (suseconds_t)(usec % 1000000);
	evtimer_add(ev, &tv);
}

static int	send_call(struct cluster *, struct call *);

static void
forget_sent(struct cluster *cl)
{
	cl->cl_sent_head = 0;
	cl->cl_nsent = 0;
	evtimer_del(cl->cl_timeout_ev);
}

/*
 * Drop the connection: free_ac says whether we free it (from a timer) or
 * hiredis is freeing it already (from its callbacks). Reconnect later.
 */
static void
cluster_fail(struct cluster *cl, const char *why, int free_ac)
{
	redisAsyncContext	*ac = cl->cl_ac;

	cl->cl_ac = NULL;
	cl->cl_conn++;
	cl->cl_broken = NULL;
	forget_sent(cl);
	cl->cl_st.cs_errors++;
	evtimer_del(cl->cl_beat_ev);
	if (cl->cl_state != CL_OFF)
		set_state(cl, CL_DOWN, why);
	if (ac != NULL && free_ac)
		redisAsyncFree(ac);	/* our callbacks see an old number */
	if (cl->cl_state == CL_DOWN && !evtimer_pending(cl->cl_retry_ev, NULL)) {
		set_timer(cl->cl_retry_ev, cl->cl_backoff);
		cl->cl_backoff *= 2;
		if (cl->cl_backoff > CLUSTER_BACKOFF_MAX)
			cl->cl_backoff = CLUSTER_BACKOFF_MAX;
	}
}

/* A reply arrived: the oldest call out is answered; rtt learned. */
static void
sent_pop(struct cluster *cl, const struct call *ca)
{
	uint64_t	 now = clock_usec(), rtt;

	if (cl->cl_nsent > 0) {
		cl->cl_sent_head = (cl->cl_sent_head + 1) % CLUSTER_CALLS_MAX;
		cl->cl_nsent--;
	}
	rtt = now > ca->ca_sent ? now - ca->ca_sent : 0;
	cl->cl_st.cs_rtt_usec = cl->cl_st.cs_rtt_usec == 0 ? rtt :
	    (7 * cl->cl_st.cs_rtt_usec + rtt) / 8;
	pthread_mutex_lock(cl->cl_adm_mtx);
	admission_set_rtt(cl->cl_adm, cl->cl_st.cs_rtt_usec,
	    2 * cl->cl_timeout);
	pthread_mutex_unlock(cl->cl_adm_mtx);
	if (cl->cl_nsent == 0)
		evtimer_del(cl->cl_timeout_ev);
	else {
		rtt = now - cl->cl_sent[cl->cl_sent_head];
		set_timer(cl->cl_timeout_ev, rtt >= cl->cl_timeout ? 0 :
		    cl->cl_timeout - rtt);
	}
}

static void
timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cluster	*cl = arg;
	uint64_t	 now = clock_usec(), age;

	if (cl->cl_broken != NULL) {	/* see drop_later() */
		cl->cl_broken = NULL;
		cluster_fail(cl, "wrong answers", 1);
		return;
	}
	if (cl->cl_nsent == 0)
		return;
	age = now - cl->cl_sent[cl->cl_sent_head];
	if (age >= cl->cl_timeout) {
		cluster_fail(cl, cl->cl_state == CL_CONNECTING ?
		    "connect timed out" : "timed out", 1);
		return;
	}
	set_timer(cl->cl_timeout_ev, cl->cl_timeout - age);
}

/* Copy what interpreting a reply needs out of hiredis's tree. */
static void
flatten_value(const redisReply *r, struct lease_reply_value *v)
{
	size_t	 n;

	memset(v, 0, sizeof(*v));
	switch (r->type) {
	case REDIS_REPLY_STATUS:
	case REDIS_REPLY_ERROR:
	case REDIS_REPLY_STRING:
		v->lv_type = r->type == REDIS_REPLY_STATUS ? LR_STATUS :
		    r->type == REDIS_REPLY_ERROR ? LR_ERROR : LR_STRING;
		n = (size_t)r->len;
		v->lv_len = n;
		if (n > LEASE_REPLY_STR - 1)
			n = LEASE_REPLY_STR - 1;
		if (r->str != NULL)
			memcpy(v->lv_str, r->str, n);
		break;
	case REDIS_REPLY_INTEGER:
		v->lv_type = LR_INTEGER;
		v->lv_int = r->integer;
		break;
	case REDIS_REPLY_NIL:
		v->lv_type = LR_NIL;
		break;
	case REDIS_REPLY_ARRAY:
		v->lv_type = LR_ARRAY;
		v->lv_int = (long long)r->elements;
		break;
	default:
		v->lv_type = LR_NONE;
	}
}

static void
flatten(const redisReply *r, struct lease_reply *lr)
{
	size_t	 i;

	memset(lr, 0, sizeof(*lr));
	flatten_value(r, &lr->lr_top);
	if (r->type != REDIS_REPLY_ARRAY)
		return;
	lr->lr_n = r->elements;
	for (i = 0; i < r->elements && i < LEASE_REPLY_ELEMS; i++)
		flatten_value(r->element[i], &lr->lr_elem[i]);
}

/*
 * A Redis that answers, but wrongly (a script error, NOAUTH, a key of
 * another type), is as good as down: drop the connection, but from the
 * loop (the timeout event made active), not inside hiredis's callback.
 */
static void
drop_later(struct cluster *cl, const char *why)
{
	cl->cl_st.cs_errors++;
	if (cl->cl_broken != NULL || cl->cl_ac == NULL)
		return;
	cl->cl_broken = why;
	event_active(cl->cl_timeout_ev, EV_TIMEOUT, 0);
}

static void
beat_reply(struct cluster *cl, struct call *ca, const struct lease_reply *lr)
{
	unsigned int	 n;

	switch (lease_reply_instances(lr, &n)) {
	case LEASE_REPLY_OK:
		cl->cl_n = n;
		cl->cl_backoff = CLUSTER_BACKOFF_MIN;
		if (cl->cl_state == CL_UP)	/* a new share to fall back to */
			adm_set_shared(cl, 1, n, clock_usec());
		else
			set_state(cl, CL_UP, NULL);
		break;
	case LEASE_REPLY_NOSCRIPT:
		if (!ca->ca_evaled) {
			ca->ca_evaled = 1;
			if (send_call(cl, ca) == 0)
				return;
		}
		/* FALLTHROUGH */
	default:
		log_debug("%s: bad heartbeat reply from %s: %s", __func__,
		    cl->cl_addr, lr->lr_top.lv_type == LR_ERROR ?
		    lr->lr_top.lv_str : "?");
		drop_later(cl, "wrong answers");
		break;
	}
	free(ca);
}

static void
take_reply(struct cluster *cl, struct call *ca, const struct lease_reply *lr)
{
	uint64_t	 granted, wait;

	switch (lease_reply_take(lr, ca->ca_ask.la_want, &granted, &wait)) {
	case LEASE_REPLY_OK:
		cl->cl_st.cs_lease_tokens += granted;
		pthread_mutex_lock(cl->cl_adm_mtx);
		admission_granted(cl->cl_adm, &ca->ca_ref, granted, wait,
		    clock_usec());
		pthread_mutex_unlock(cl->cl_adm_mtx);
		break;
	case LEASE_REPLY_NOSCRIPT:
		if (!ca->ca_evaled) {
			ca->ca_evaled = 1;
			if (send_call(cl, ca) == 0)
				return;	/* ca goes on */
		}
		/* FALLTHROUGH */
	default:
		log_debug("%s: bad reply from %s: %s", __func__, cl->cl_addr,
		    lr->lr_top.lv_type == LR_ERROR ? lr->lr_top.lv_str : "?");
		adm_ask_failed(cl, &ca->ca_ref, &ca->ca_ask);
		drop_later(cl, "wrong answers");
	}
	free(ca);
}

static void
reply_cb(redisAsyncContext *ac, void *r, void *privdata)
{
	struct call		*ca = privdata;
	struct cluster		*cl = ca->ca_cl;
	struct lease_reply	 lr;

	if (ca->ca_conn != cl->cl_conn) {	/* a dropped connection's */
		if (ca->ca_kind == CALL_TAKE)
			adm_ask_failed(cl, &ca->ca_ref,
			    &ca->ca_ask);
		free(ca);
		return;
	}
	if (r == NULL) {	/* hiredis is dropping the connection */
		if (ca->ca_kind == CALL_TAKE)
			adm_ask_failed(cl, &ca->ca_ref,
			    &ca->ca_ask);
		free(ca);
		cluster_fail(cl, ac->errstr[0] != '\0' ? ac->errstr :
		    "connection lost", 0);
		return;
	}
	sent_pop(cl, ca);
	flatten(r, &lr);
	switch (ca->ca_kind) {
	case CALL_AUTH:
		if (lr.lr_top.lv_type != LR_STATUS) {
			/* once, not at every reconnect */
			log_msg(cl->cl_state == CL_DOWN ? LOG_LVL_DEBUG :
			    LOG_LVL_WARN, "redis %s refused the password: %s",
			    cl->cl_addr, lr.lr_top.lv_str);
			drop_later(cl, "password refused");
		}
		free(ca);
		break;
	case CALL_BEAT:
		beat_reply(cl, ca, &lr);
		break;
	case CALL_TAKE:
		take_reply(cl, ca, &lr);
		break;
	}
}

/* Queue one call on the connection: 0, or -1 (not sent; ca not taken). */
static int
send_call(struct cluster *cl, struct call *ca)
{
	const char	*argv[8];
	size_t		 argvlen[8];
	char		 nums[4][24], ttl[24];
	int		 argc = 0, i, rc;

	if (cl->cl_ac == NULL || cl->cl_nsent >= CLUSTER_CALLS_MAX)
		return -1;
	switch (ca->ca_kind) {
	case CALL_AUTH:
		argv[argc++] = "AUTH";
		argv[argc++] = cl->cl_password;
		break;
	case CALL_BEAT:
		argv[argc++] = ca->ca_evaled ? "EVAL" : "EVALSHA";
		argv[argc++] = ca->ca_evaled ? lease_beat_script : cl->cl_beat_sha;
		argv[argc++] = "1";
		argv[argc++] = ca->ca_rkey;
		argv[argc++] = cl->cl_id;
		snprintf(ttl, sizeof(ttl), "%" PRIu64,
		    3 * cl->cl_heartbeat / 1000);
		argv[argc++] = ttl;
		break;
	case CALL_TAKE:
		argv[argc++] = ca->ca_evaled ? "EVAL" : "EVALSHA";
		argv[argc++] = ca->ca_evaled ? lease_take_script : cl->cl_take_sha;
		argv[argc++] = "1";
		argv[argc++] = ca->ca_rkey;
		snprintf(nums[0], sizeof(nums[0]), "%" PRIu64, ca->ca_rate);
		snprintf(nums[1], sizeof(nums[1]), "%" PRIu64, ca->ca_burst);
		snprintf(nums[2], sizeof(nums[2]), "%" PRIu64,
		    ca->ca_ask.la_want);
		snprintf(nums[3], sizeof(nums[3]), "%" PRIu64,
		    ca->ca_ask.la_debt);
		for (i = 0; i < 4; i++)
			argv[argc++] = nums[i];
		break;
	}
	for (i = 0; i < argc; i++)
		argvlen[i] = strlen(argv[i]);
	if (ca->ca_kind != CALL_AUTH)
		argvlen[3] = ca->ca_rkeylen;	/* a client key is bytes */
	rc = redisAsyncCommandArgv(cl->cl_ac, reply_cb, ca, argc, argv,
	    argvlen);
	if (rc != REDIS_OK)
		return -1;
	ca->ca_conn = cl->cl_conn;
	ca->ca_sent = clock_usec();
	cl->cl_sent[(cl->cl_sent_head + cl->cl_nsent) % CLUSTER_CALLS_MAX] =
	    ca->ca_sent;
	if (cl->cl_nsent++ == 0)
		set_timer(cl->cl_timeout_ev, cl->cl_timeout);
	cl->cl_st.cs_calls++;
	return 0;
}

static struct call *
call_new(struct cluster *cl, enum call_kind kind)
{
	struct call	*ca;

	if ((ca = calloc(1, sizeof(*ca))) == NULL)
		return NULL;
	ca->ca_cl = cl;
	ca->ca_kind = kind;
	return ca;
}

static void
send_beat(struct cluster *cl)
{
	struct call	*ca;

	if ((ca = call_new(cl, CALL_BEAT)) == NULL)
		return;
	ca->ca_rkeylen = (size_t)snprintf(ca->ca_rkey, sizeof(ca->ca_rkey),
	    "%sinstances", cl->cl_prefix);
	if (send_call(cl, ca) == -1)
		free(ca);
}

static void
beat_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cluster	*cl = arg;

	if (cl->cl_ac != NULL)
		send_beat(cl);
}

static void
connect_cb(const redisAsyncContext *ac, int status)
{
	struct cluster	*cl = ac->data;

	if (ac != cl->cl_ac)
		return;
	if (status != REDIS_OK)		/* hiredis frees ac after this */
		cluster_fail(cl, ac->errstr[0] != '\0' ? ac->errstr :
		    "connect failed", 0);
}

static void
disconnect_cb(const redisAsyncContext *ac, int status)
{
	struct cluster	*cl = ac->data;

	if (ac == cl->cl_ac)
		cluster_fail(cl, ac->errstr[0] != '\0' ? ac->errstr :
		    "disconnected", 0);
}

/* Open the connection and queue AUTH and a heartbeat on it. */
static void
cluster_connect(struct cluster *cl)
{
	struct timeval	 tv;
	struct call	*ca;

	if ((cl->cl_ac = redisAsyncConnect(cl->cl_ip, cl->cl_port)) == NULL) {
		cluster_fail(cl, "out of memory", 0);
		return;
	}
	cl->cl_conn++;
	if (cl->cl_ac->err != 0 ||
	    redisLibeventAttach(cl->cl_ac, cl->cl_base) != REDIS_OK) {
		cluster_fail(cl, cl->cl_ac->errstr, 1);
		return;
	}
	cl->cl_ac->data = cl;
	redisAsyncSetConnectCallback(cl->cl_ac, connect_cb);
	redisAsyncSetDisconnectCallback(cl->cl_ac, disconnect_cb);
	if (cl->cl_state != CL_DOWN)
		set_state(cl, CL_CONNECTING, NULL);
	if (cl->cl_password != NULL &&
	    (ca = call_new(cl, CALL_AUTH)) != NULL && send_call(cl, ca) == -1)
		free(ca);
	send_beat(cl);
	tv.tv_sec = (time_t)(cl->cl_heartbeat / 1000000);
	tv.tv_usec = (suseconds_t)(cl->cl_heartbeat % 1000000);
	event_add(cl->cl_beat_ev, &tv);
}

static void
retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cluster	*cl = arg;

	if (cl->cl_ac == NULL && cl->cl_state != CL_OFF)
		cluster_connect(cl);
}

/* The name of a bucket in Redis: prefix, then g, c:CLASS or k:KIND:KEY. */
static void
call_key(struct cluster *cl, struct call *ca)
{
	const struct admission_ref	*ref = &ca->ca_ref;
	int				 n;

	switch (ref->ar_bucket) {
	case ADM_BUCKET_CLIENT:
		n = snprintf(ca->ca_rkey, sizeof(ca->ca_rkey), "%sk:%d:",
		    cl->cl_prefix, ref->ar_kind);
		break;
	case ADM_BUCKET_CLASS:
		n = snprintf(ca->ca_rkey, sizeof(ca->ca_rkey), "%sc:",
		    cl->cl_prefix);
		break;
	default:
		n = snprintf(ca->ca_rkey, sizeof(ca->ca_rkey), "%sg",
		    cl->cl_prefix);
		ca->ca_rkeylen = (size_t)n;
		return;
	}
	memcpy(ca->ca_rkey + n, ref->ar_key, ref->ar_keylen);
	ca->ca_rkeylen = (size_t)n + ref->ar_keylen;
}

/* The bucket a call names: b of this request. */
static void
ref_of(struct admission_ref *ref, int b, const char *class_name,
    int key_kind, const char *key, size_t keylen)
{
	size_t	 n = 0;

	ref->ar_bucket = (enum admission_bucket)b;
	ref->ar_kind = key_kind;
	ref->ar_key = NULL;
	if (b == ADM_BUCKET_CLIENT) {
		ref->ar_key = key;
		n = keylen;
	} else if (b == ADM_BUCKET_CLASS) {
		ref->ar_key = class_name;
		n = strlen(class_name);
	}
	ref->ar_keylen = n;
}

/* On the owner's loop: send the calls other workers asked for. */
static void
pend_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cluster		*cl = arg;
	struct call_list	 calls;
	struct call		*ca;

	TAILQ_INIT(&calls);
	pthread_mutex_lock(&cl->cl_pend_mtx);
	TAILQ_CONCAT(&calls, &cl->cl_pend, ca_entry);
	pthread_mutex_unlock(&cl->cl_pend_mtx);
	while ((ca = TAILQ_FIRST(&calls)) != NULL) {
		TAILQ_REMOVE(&calls, ca, ca_entry);
		call_key(cl, ca);
		if (send_call(cl, ca) == 0)
			continue;
		/* not sent: the lease is as if asked and unanswered */
		adm_ask_failed(cl, &ca->ca_ref, &ca->ca_ask);
		free(ca);
	}
}

void
cluster_ask(struct cluster *cl, const struct admission_verdict *v,
    const char *class_name, int key_kind, const char *key, size_t keylen)
{
	struct admission_ref	 ref;
	struct call		*ca;
	int			 b;

	for (b = 0; b < ADM_NBUCKETS; b++) {
		if (!v->asking[b])
			continue;
		ref_of(&ref, b, class_name, key_kind, key, keylen);
		if (ref.ar_keylen <= CALL_NAME_MAX &&
		    (ca = call_new(cl, CALL_TAKE)) != NULL) {
			ca->ca_ref = ref;
			if (ref.ar_key != NULL)
				memcpy(ca->ca_name, ref.ar_key, ref.ar_keylen);
			ca->ca_ref.ar_key = ca->ca_name;
			ca->ca_ask = v->ask[b];
			ca->ca_rate = v->rate[b];
			ca->ca_burst = v->burst[b];
			if (!pthread_equal(pthread_self(), cl->cl_owner)) {
				/* the owner's loop keys and sends it */
				pthread_mutex_lock(&cl->cl_pend_mtx);
				TAILQ_INSERT_TAIL(&cl->cl_pend, ca, ca_entry);
				pthread_mutex_unlock(&cl->cl_pend_mtx);
				event_active(cl->cl_pend_ev, EV_TIMEOUT, 0);
				continue;
			}
			call_key(cl, ca);
			if (send_call(cl, ca) == 0)
				continue;
			free(ca);
		}
		/* not sent: the lease is as if asked and unanswered */
		adm_ask_failed(cl, &ref, &v->ask[b]);
	}
}

/* Take the new settings; 1 if the connection must be made again. */
static int
take_conf(struct cluster *cl, const struct cluster_conf *cc)
{
	const struct config_addr	*a = &cc->redis[0];
	char				 ip[64], full[128];
	int				 port, changed = 0;
	const char			*pw = cc->password.text;

	addr_format((const struct sockaddr *)&a->ss, ip, sizeof(ip), full,
	    sizeof(full));
	port = atoi(strrchr(full, ':') + 1);
	if (strcmp(ip, cl->cl_ip) != 0 || port != cl->cl_port ||
	    (pw == NULL) != (cl->cl_password == NULL) ||
	    (pw != NULL && strcmp(pw, cl->cl_password) != 0) ||
	    strcmp(cc->prefix.text != NULL ? cc->prefix.text : "",
	    cl->cl_prefix) != 0)
		changed = 1;
	snprintf(cl->cl_ip, sizeof(cl->cl_ip), "%s", ip);
	cl->cl_port = port;
	snprintf(cl->cl_addr, sizeof(cl->cl_addr), "%s", a->text);
	free(cl->cl_password);
	cl->cl_password = pw != NULL ? strdup(pw) : NULL;
	snprintf(cl->cl_prefix, sizeof(cl->cl_prefix), "%s",
	    cc->prefix.text != NULL ? cc->prefix.text : "");
	cl->cl_timeout = cc->timeout_ms * 1000;
	cl->cl_heartbeat = cc->heartbeat_ms * 1000;
	return changed;
}

void
cluster_configure(struct cluster *cl, const struct config *conf)
{
	const struct cluster_conf	*cc = &conf->cluster;
	redisAsyncContext		*ac;
	int				 changed;

	if (cc->nredis == 0) {
		if ((ac = cl->cl_ac) != NULL) {
			cl->cl_ac = NULL;
			cl->cl_conn++;
			forget_sent(cl);
			redisAsyncFree(ac);
		}
		evtimer_del(cl->cl_beat_ev);
		evtimer_del(cl->cl_retry_ev);
		cl->cl_ip[0] = '\0';
		cl->cl_n = 1;
		if (cl->cl_state != CL_OFF)
			log_msg(LOG_LVL_WARN, "redis off: buckets local");
		set_state(cl, CL_OFF, NULL);
		return;
	}
	changed = take_conf(cl, cc);
	if (cl->cl_state == CL_OFF || cl->cl_st.cs_changes == 0)
		cl->cl_n = cc->instances;	/* until Redis says */
	if (cl->cl_state == CL_OFF) {
		/* local share until the first heartbeat answers */
		cl->cl_state = CL_DOWN;
		adm_set_shared(cl, 0, cl->cl_n, clock_usec());
		cl->cl_state = CL_CONNECTING;
		cl->cl_backoff = CLUSTER_BACKOFF_MIN;
		cluster_connect(cl);
		return;
	}
	if (!changed) {		/* a new instances hint, maybe */
		adm_set_shared(cl, cl->cl_state == CL_UP,
		    cl->cl_n, clock_usec());
		return;
	}
	log_msg(LOG_LVL_WARN, "redis %s: reconnecting with new settings",
	    cl->cl_addr);
	if ((ac = cl->cl_ac) != NULL) {
		cl->cl_ac = NULL;
		cl->cl_conn++;
		forget_sent(cl);
		redisAsyncFree(ac);
	}
	evtimer_del(cl->cl_retry_ev);
	set_state(cl, CL_DOWN, "new settings");
	cl->cl_backoff = CLUSTER_BACKOFF_MIN;
	cluster_connect(cl);
}

#else /* !HAVE_HIREDIS: the configuration refuses [cluster] redis */

void
cluster_configure(struct cluster *cl, const struct config *conf)
{
	(void)conf;
	set_state(cl, CL_OFF, NULL);
}

void
cluster_ask(struct cluster *cl, const struct admission_verdict *v,
    const char *class_name, int key_kind, const char *key, size_t keylen)
{
}

static void
timeout_cb(evutil_socket_t fd, short what, void *arg)
{
}

#define beat_cb		timeout_cb
#define retry_cb	timeout_cb
#define pend_cb		timeout_cb

#endif /* HAVE_HIREDIS */

struct cluster *
cluster_new(struct event_base *base, struct admission *adm,
    pthread_mutex_t *adm_mtx)
{
	struct cluster	*cl;
	uint8_t		 rnd[8];
	char		 host[64];

	if ((cl = calloc(1, sizeof(*cl))) == NULL)
		return NULL;
	cl->cl_base = base;
	cl->cl_adm = adm;
	cl->cl_adm_mtx = adm_mtx;
	cl->cl_owner = pthread_self();
	pthread_mutex_init(&cl->cl_pend_mtx, NULL);
	TAILQ_INIT(&cl->cl_pend);
	cl->cl_n = 1;
	cl->cl_backoff = CLUSTER_BACKOFF_MIN;
	if ((cl->cl_timeout_ev = evtimer_new(base, timeout_cb, cl)) == NULL ||
	    (cl->cl_beat_ev = event_new(base, -1, EV_PERSIST, beat_cb,
	    cl)) == NULL ||
	    (cl->cl_retry_ev = evtimer_new(base, retry_cb, cl)) == NULL ||
	    (cl->cl_pend_ev = event_new(base, -1, 0, pend_cb, cl)) == NULL)
		goto fail;
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		memset(rnd, 0, sizeof(rnd));
	if (gethostname(host, sizeof(host)) == -1)
		snprintf(host, sizeof(host), "?");
	host[sizeof(host) - 1] = '\0';
	snprintf(cl->cl_id, sizeof(cl->cl_id), "%.32s:%ld:%02x%02x%02x%02x%02x"
	    "%02x%02x%02x", host, (long)getpid(), rnd[0], rnd[1], rnd[2],
	    rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
	sha1_hex(lease_take_script, cl->cl_take_sha);
	sha1_hex(lease_beat_script, cl->cl_beat_sha);
	return cl;
 fail:
	cluster_free(cl);
	return NULL;
}

void
cluster_free(struct cluster *cl)
{
	struct call	*ca;

	if (cl == NULL)
		return;
#ifdef HAVE_HIREDIS
	if (cl->cl_ac != NULL) {
		redisAsyncContext	*ac = cl->cl_ac;

		cl->cl_ac = NULL;
		cl->cl_conn++;
		redisAsyncFree(ac);
	}
#endif
	if (cl->cl_timeout_ev != NULL)
		event_free(cl->cl_timeout_ev);
	if (cl->cl_beat_ev != NULL)
		event_free(cl->cl_beat_ev);
	if (cl->cl_retry_ev != NULL)
		event_free(cl->cl_retry_ev);
	if (cl->cl_pend_ev != NULL)
		event_free(cl->cl_pend_ev);
	while ((ca = TAILQ_FIRST(&cl->cl_pend)) != NULL) {
		TAILQ_REMOVE(&cl->cl_pend, ca, ca_entry);
		free(ca);
	}
	pthread_mutex_destroy(&cl->cl_pend_mtx);
	free(cl->cl_password);
	free(cl);
}
