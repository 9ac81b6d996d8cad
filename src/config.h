/*
 * config.h: spillway's configuration as plain, immutable data.
 *
 * config_load() parses a whole INI file (through inih and one table of
 * keys, see config.c), validates it and returns a new struct config, or
 * NULL with every problem listed as "FILE:LINE: message" lines. Nothing here
 * touches libevent, a global or the clock, so a reload can build a new
 * configuration beside the running one and swap it in only if it is valid.
 */
#ifndef SPILLWAY_CONFIG_H
#define SPILLWAY_CONFIG_H

#include <sys/types.h>
#include <sys/socket.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "fault.h"
#include "health.h"
#include "limiter.h"
#include "queue.h"
#include "realip.h"


/* A string value and the line that gave it (for errors found later). */
struct config_str {
	char			*text;	/* NULL: not given */
	int			 line;
};

/* What an access log line looks like (log.c writes them). */
enum log_format {
	LOG_FORMAT_SPILLWAY = 0,	/* spillway's own, the default */
	LOG_FORMAT_COMBINED,		/* Apache/nginx combined */
	LOG_FORMAT_JSON,		/* one JSON object per line */
};

struct proxy_conf {
	struct config_addr	*listen;
	size_t			 nlisten;
	unsigned int		 max_connections;
	uint64_t		 workers;	/* threads; CONFIG_AUTO: a core each */
	uint64_t		 header_timeout_ms;
	uint64_t		 idle_timeout_ms;
	uint64_t		 body_timeout_ms;	/* 0: none */
	uint64_t		 shutdown_timeout_ms;
	size_t			 max_header_size;
	uint64_t		 max_body_size;		/* 0: no limit */
	char			*access_log;		/* path, "-", "syslog",
							   "syslog:PATH" or
							   NULL (off) */
	enum log_format		 access_log_format;
	int			 access_log_facility;	/* config_facility_name */
	/* peers whose forwarded_header names the client (realip.h) */
	struct realip_cidr	*trusted_proxies;
	size_t			 ntrusted_proxies;
	enum realip_header	 forwarded_header;
};

enum balance {
	BALANCE_ROUNDROBIN = 0,	/* each server in turn */
	BALANCE_LEASTCONN,	/* the server with fewest active requests */
};

struct backend_conf {
	struct config_addr	*servers;
	size_t			 nservers;
	uint64_t		 connect_timeout_ms;
	uint64_t		 response_timeout_ms;
	uint64_t		 keepalive_timeout_ms;	/* idle pooled conn */
	unsigned int		 keepalive;	/* idle conns kept per server */
	enum balance		 balance;
	int			 tls;		/* speak TLS to the servers */
	int			 tls_verify;	/* check their certificates */
	struct config_str	 ca_file;	/* NULL: the system's store */
	struct config_str	 server_name;	/* NULL: each server's host */
	struct health_conf	 health;	/* passive health, slow start */
	struct config_str	 health_check;	/* METHOD PATH [HOST], or NULL */
	uint64_t		 check_interval_ms;
	uint64_t		 check_timeout_ms;
	unsigned int		 check_status;	/* 0: any 2xx or 3xx */
	double			 retry_budget;	/* share of recent requests */
	unsigned int		 retry_min_per_second;	/* always allowed */
};

/* TLS protocol versions, as bits of tls_conf.protocols. */
#define TLS_PROTO_1_0		0x01
#define TLS_PROTO_1_1		0x02
#define TLS_PROTO_1_2		0x04
#define TLS_PROTO_1_3		0x08

/*
 * [tls]: TLS listeners. certificate and private_key repeat and pair up in
 * order; with no private_key, each certificate file holds its key too. The
 * first certificate is the default; another is chosen when the client's
 * SNI name matches it.
 */
struct tls_conf {
	struct config_addr	*listen;
	size_t			 nlisten;
	struct config_str	*certs;		/* chain files, leaf first */
	size_t			 ncerts;
	struct config_str	*keys;
	size_t			 nkeys;
	unsigned int		 protocols;	/* TLS_PROTO_* bits, contiguous */
	struct config_str	 ciphers;	/* TLS 1.2 and older */
	struct config_str	 ciphersuites;	/* TLS 1.3; NULL: OpenSSL's */
	int			 session_tickets;
	unsigned int		 session_cache;	/* sessions kept; 0: off */
	uint64_t		 session_timeout_ms;
	uint64_t		 handshake_timeout_ms;
};

enum priority {
	PRIO_CRITICAL = 0,	/* served first, shed last */
	PRIO_NORMAL,
	PRIO_SHEDDABLE,		/* served last, shed first */
};
#define PRIO_COUNT	QUEUE_NPRIO	/* the queue keeps one list each */

enum client_key_kind {
	CLIENT_KEY_IP = 0,	/* the client's address */
	CLIENT_KEY_HEADER,	/* the value of a request header */
};

/* [admission]: token buckets in front of everything else. */
struct admission_conf {
	uint64_t		 rate;		/* global, per minute; 0: off */
	uint64_t		 burst;		/* 0: one second's worth */
	uint64_t		 client_rate;	/* per client key, per minute */
	uint64_t		 client_burst;	/* 0: one second's worth */
	enum client_key_kind	 client_key;
	char			*client_key_header; /* CLIENT_KEY_HEADER */
	unsigned int		 max_clients;	/* client buckets kept */
	int			 dry_run;	/* count, refuse nothing */
};

/*
 * [class NAME]: a request belongs to the first class, in file order, whose
 * every given criterion matches; the last class is always "default", which
 * has no criteria and so takes every other request. Header names are kept
 * as written (HTTP compares them without regard to case); paths and
 * methods compare exactly.
 */
struct class_conf {
	char			*name;
	int			 line;		/* of its [class NAME] */
	char			**paths;	/* path prefixes; none: any */
	size_t			 npaths;
	char			**methods;	/* methods; none: any */
	size_t			 nmethods;
	char			*header_name;	/* header to match, or NULL */
	char			*header_value;	/* its exact value; NULL: any */
	enum priority		 priority;
	uint64_t		 rate;		/* own bucket, per minute; 0: none */
	uint64_t		 burst;		/* 0: one second's worth */
	struct fault_rule	 fault;		/* fault_* keys; off by default */
	int			 fault_line;	/* first fault_* key, or 0 */
};

/* A duration given as "auto": derived from another key (config.c). */
#define CONFIG_AUTO	UINT64_MAX

/* [limiter]: the adaptive concurrency limit and the queue before it. */
struct shed_conf {
	enum limiter_algo	 algorithm;
	unsigned int		 limit;		/* initial; fixed: the limit */
	unsigned int		 min_limit;
	unsigned int		 max_limit;
	size_t			 queue_size;	/* waiters at most; 0: none */
	uint64_t		 latency_budget_ms; /* what a request can bear */
	uint64_t		 queue_timeout_ms;	/* CONFIG_AUTO: budget */
	uint64_t		 codel_target_ms;	/* 0: off; CONFIG_AUTO */
	uint64_t		 codel_interval_ms;	/* 0: never growing */
	int			 adaptive_lifo;
	int			 dry_run;	/* learn and count, hold nothing */
	double			 backoff;	/* aimd, vegas: on overload */
	uint64_t		 aimd_latency_ms;
	double			 smoothing;	/* gradient */
	double			 tolerance;	/* gradient */
	unsigned int		 vegas_alpha;
	unsigned int		 vegas_beta;
};

/* [admin]: the admin listener (metrics, status, dashboard, reload). */
struct admin_conf {
	struct config_addr	*listen;	/* at most one; none: off */
	size_t			 nlisten;
	unsigned int		 max_connections; /* open at once; more wait */
};

/*
 * [cluster]: the admission buckets shared by every instance on one Redis.
 * No redis: off, every instance enforces the whole rate alone.
 */
struct cluster_conf {
	struct config_addr	*redis;		/* at most one; none: off */
	size_t			 nredis;
	struct config_str	 password;	/* AUTH, if given */
	struct config_str	 prefix;	/* of every key in Redis */
	uint64_t		 timeout_ms;	/* a call, or a connect */
	uint64_t		 heartbeat_ms;	/* instance count refreshed */
	unsigned int		 instances;	/* share until Redis says */
};

struct config {
	char			*path;
	struct proxy_conf	 proxy;
	struct backend_conf	 backend;
	struct admission_conf	 admission;
	struct shed_conf	 limiter;
	struct admin_conf	 admin;
	struct tls_conf		 tls;
	struct cluster_conf	 cluster;
	struct class_conf	*classes;	/* default last; at least 1 */
	size_t			 nclasses;
};

/*
 * Load and validate a file. On success returns the configuration and sets
 * *errors to NULL; on failure returns NULL and sets *errors to a malloc'd
 * string of one "FILE:LINE: message\n" per problem (every problem found,
 * not just the first). The caller frees *errors.
 */
struct config	*config_load(const char *path, char **errors);

/* The same from a NUL-terminated string; name stands in for FILE. */
struct config	*config_parse(const char *name, const char *text,
		    char **errors);

void		 config_free(struct config *);

/*
 * The configuration as one JSON object (GET /status), made from the key
 * table: every key, in its section, named as in the file with its unit
 * ("_ms", "_per_minute"); the classes as an array.
 */
struct mbuf;
void		 config_json(const struct config *, struct mbuf *);

/* Section and name of key i of the table (class keys last); -1 past it. */
int		 config_key(size_t i, const char **section, const char **name);

/*
 * Value parsers, exported for the tests. Each returns 0 and stores the
 * value, or -1 and leaves it alone. Durations: an integer with a unit
 * (ms, s, m, h, d; a bare number is seconds), stored in milliseconds.
 * Sizes: an integer with an optional k, m or g (powers of 1024). Rates:
 * "N" or "N/s" per second, "N/m" per minute, stored per minute.
 * Addresses: "host:port", "[v6]:port", "*:port" or "port" (all addresses
 * when passive), resolved numerically or with getaddrinfo(); err gets a
 * message on failure.
 */
int		 config_parse_duration(const char *, uint64_t *ms);
int		 config_parse_size(const char *, uint64_t *bytes);
int		 config_parse_rate(const char *, uint64_t *per_minute);
int		 config_parse_addr(const char *, int passive,
		    struct config_addr *, char *err, size_t errlen);

const char	*config_balance_name(enum balance);
const char	*config_log_format_name(enum log_format);
/* A syslog facility by index: "user", "daemon", "local0".."local7". */
const char	*config_facility_name(int);
const char	*config_forwarded_header_name(enum realip_header);
const char	*config_tls_proto_name(unsigned int bit_index);

/* "FILE:LINE:" (or "FILE:" for line 0), for errors found after parsing. */
void		 config_where(const struct config *, int line, char *buf,
		    size_t len);

/* The limiter's and the queue's parameters, in their own units. */
void		 config_limiter_conf(const struct config *,
		    struct limiter_conf *);
void		 config_queue_conf(const struct config *, struct queue_conf *);
const char	*config_priority_name(enum priority);

/*
 * config_parse() with flags. CONFIG_NUMERIC_HOSTS accepts numeric addresses
 * only and never asks a resolver: for the fuzzer, which must not send
 * made-up host names to DNS. config_parse() is this with flags 0.
 */
#define CONFIG_NUMERIC_HOSTS	0x01

struct config	*config_parse_flags(const char *name, const char *text,
		    int flags, char **errors);

#endif /* SPILLWAY_CONFIG_H */
