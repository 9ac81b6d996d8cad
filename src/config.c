/*
 * config.c: the configuration file, from text to a validated struct config.
 *
 * One table, keys[], describes every key: its section, name, type, bounds,
 * default (a string parsed by the same code as a user's value, so a default
 * is validated like anything else), where it lands in struct config and
 * whether it may repeat. inih splits the file into sections and key = value
 * pairs; the handler looks each pair up in the table. What mirrors the
 * table is made from it: config_free() and config_json() (GET /status).
 *
 * [class NAME] sections repeat, one per request class, so their keys have
 * a table of their own, class_keys[], whose offsets are into struct
 * class_conf: a class section appends a class to conf->classes and its keys
 * land in that class. When the section ends, the class's keys it left out
 * take their defaults, through the same code, and the class is checked.
 * At the end the default class is moved to, or made at, the end of the
 * list, so a configuration always has at least one class, "default", last.
 *
 * inih is fed through our own reader, one physical line per call, so that:
 *  - we count lines ourselves: Debian's libinih is built without
 *    INI_HANDLER_LINENO, so the handler is never told the line;
 *  - a line longer than inih's buffer is reported ("line too long") instead
 *    of being cut in two and the rest read as a line of its own;
 *  - every syntax error is reported, not just the first one inih returns;
 *  - leading blanks are stripped, which turns off inih's multi-line values
 *    (an indented line would otherwise be another value for the key above);
 *  - "key: value" is refused: inih splits on ':' too, and "server
 *    127.0.0.1:8081" (no '=') would become key "server 127.0.0.1";
 *  - inline comments (';' after a blank) are cut here, by inih's default
 *    rule, so they behave the same whichever way the library was built.
 * The reader hands inih a blank line in place of any line it rejected, so
 * inih's line count and ours stay equal and the handler is called at most
 * once per line, for the line the reader returned last.
 *
 * Errors are collected, never fatal: parsing goes on so that one run lists
 * every problem as "NAME:LINE: message". A problem with no line (a file
 * that cannot be opened) is "NAME: message".
 *
 * Pure: no libevent, no global state, no clock. getaddrinfo() may look up
 * host names unless CONFIG_NUMERIC_HOSTS is given.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L	/* strdup, getaddrinfo under -std=c11 */
#endif

#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ini.h>

#include "config.h"
#include "mbuf.h"

#define CONFIG_MAX_SIZE		(1024 * 1024)	/* bounds lines and errors */
#define CONFIG_MAX_ERRORS	100		/* listed; the rest counted */
#define CONFIG_STR_MAX		4096		/* a path or a cipher list */

enum key_type {
	KT_DURATION,	/* uint64_t milliseconds */
	KT_SIZE,	/* bytes, size_t or uint64_t */
	KT_UINT,	/* unsigned int or uint64_t */
	KT_RATE,	/* uint64_t requests per minute: "N", "N/s", "N/m" */
	KT_LOGFILE,	/* char *: path, "-" (stderr) or NULL (off) */
	KT_BALANCE,	/* enum balance */
	KT_ADDRS,	/* array of struct config_addr and its count */
	KT_BOOL,	/* int, 0 or 1 */
	KT_CLIENT_KEY,	/* enum client_key_kind and its header name */
	KT_PATHS,	/* array of path prefixes and its count */
	KT_METHODS,	/* array of methods and its count */
	KT_HEADER,	/* header name and value (NULL: any) */
	KT_PRIORITY,	/* enum priority */
	KT_ALGO,	/* enum limiter_algo */
	KT_RATIO,	/* double; bounds in thousandths */
	KT_STRING,	/* struct config_str */
	KT_STRINGS,	/* array of struct config_str and its count */
	KT_PROTOCOLS,	/* unsigned int of TLS_PROTO_* bits */
};

/* Every key may change on a reload: the runtime re-applies them all. */
#define KEY_REPEAT	0x01	/* may be given more than once */
#define KEY_REQUIRED	0x04	/* no default: the file must give it */
#define KEY_PASSIVE	0x08	/* address to listen on, not to connect to */
#define KEY_UNIQUE	0x10	/* the same address may not appear twice */
#define KEY_LOOPBACK	0x40	/* an address without host is 127.0.0.1 */
#define KEY_CRITERION	0x20	/* a class matches on it */

/*
 * One key. Offsets are into struct config, or into struct class_conf for
 * class_keys[]. k_aux is the offset of a second field that some types fill
 * too: a list's count, client_key's header name, a class header's value.
 */
struct key {
	const char	*k_section;
	const char	*k_name;
	enum key_type	 k_type;
	uint64_t	 k_min;		/* value; for a list, count */
	uint64_t	 k_max;
	const char	*k_default;	/* NULL: none */
	size_t		 k_offset;
	size_t		 k_size;	/* of the field at k_offset */
	size_t		 k_aux;
	int		 k_flags;
};

#define FIELD(m)	offsetof(struct config, m),			\
			sizeof(((struct config *)0)->m), 0
#define LIST(m, n)	offsetof(struct config, m),			\
			sizeof(((struct config *)0)->m),		\
			offsetof(struct config, n)
#define CFIELD(m)	offsetof(struct class_conf, m),			\
			sizeof(((struct class_conf *)0)->m), 0
#define CLIST(m, n)	offsetof(struct class_conf, m),			\
			sizeof(((struct class_conf *)0)->m),		\
			offsetof(struct class_conf, n)

#define MS_1S		1000ULL
#define MS_1H		(3600 * MS_1S)
#define MS_1D		(24 * MS_1H)
#define KIB		1024ULL
#define MIB		(1024 * KIB)
#define GIB		(1024 * MIB)
#define RATE_MAX	10000000	/* requests per second, or a burst */
#define RATE_MAX_MIN	(RATE_MAX * 60ULL)	/* in requests per minute */
#define LIMIT_MAX	100000	/* concurrency limits and queue size */
#define CLASS_MAX	1000		/* [class NAME] sections */
#define CLASS_NAME_MAX	32

static const struct key keys[] = {
	/* section, name, type, min, max, default, field, flags */
	/* no default here: 127.0.0.1:8080 unless [tls] listen is given */
	{ "proxy", "listen", KT_ADDRS, 1, 64, NULL,
	    LIST(proxy.listen, proxy.nlisten),
	    KEY_REPEAT | KEY_PASSIVE | KEY_UNIQUE },
	{ "proxy", "max_connections", KT_UINT, 1, 1000000, "4096",
	    FIELD(proxy.max_connections), 0 },
	{ "proxy", "header_timeout", KT_DURATION, 1, MS_1H, "10s",
	    FIELD(proxy.header_timeout_ms), 0 },
	{ "proxy", "idle_timeout", KT_DURATION, 1, MS_1D, "60s",
	    FIELD(proxy.idle_timeout_ms), 0 },
	{ "proxy", "body_timeout", KT_DURATION, 0, MS_1D, "0",
	    FIELD(proxy.body_timeout_ms), 0 },
	{ "proxy", "max_header_size", KT_SIZE, KIB, MIB, "16k",
	    FIELD(proxy.max_header_size), 0 },
	{ "proxy", "max_body_size", KT_SIZE, 0, 1024 * GIB, "1m",
	    FIELD(proxy.max_body_size), 0 },
	{ "proxy", "shutdown_timeout", KT_DURATION, 0, MS_1H, "10s",
	    FIELD(proxy.shutdown_timeout_ms), 0 },
	{ "proxy", "access_log", KT_LOGFILE, 0, 0, "-",
	    FIELD(proxy.access_log), 0 },

	{ "backend", "server", KT_ADDRS, 1, 1000, NULL,
	    LIST(backend.servers, backend.nservers),
	    KEY_REPEAT | KEY_REQUIRED },
	{ "backend", "connect_timeout", KT_DURATION, 1, MS_1H, "5s",
	    FIELD(backend.connect_timeout_ms), 0 },
	{ "backend", "response_timeout", KT_DURATION, 1, MS_1D, "60s",
	    FIELD(backend.response_timeout_ms), 0 },
	{ "backend", "keepalive", KT_UINT, 0, 10000, "32",
	    FIELD(backend.keepalive), 0 },
	{ "backend", "keepalive_timeout", KT_DURATION, 1, MS_1D, "60s",
	    FIELD(backend.keepalive_timeout_ms), 0 },
	{ "backend", "balance", KT_BALANCE, 0, 0, "roundrobin",
	    FIELD(backend.balance), 0 },

	{ "backend", "tls", KT_BOOL, 0, 0, "no",
	    FIELD(backend.tls), 0 },
	{ "backend", "verify", KT_BOOL, 0, 0, "yes",
	    FIELD(backend.tls_verify), 0 },
	{ "backend", "ca_file", KT_STRING, 0, 0, NULL,
	    FIELD(backend.ca_file), 0 },
	{ "backend", "server_name", KT_STRING, 0, 0, NULL,
	    FIELD(backend.server_name), 0 },

	{ "admission", "rate", KT_RATE, 0, RATE_MAX_MIN, "0",
	    FIELD(admission.rate), 0 },
	{ "admission", "burst", KT_UINT, 0, RATE_MAX, "0",
	    FIELD(admission.burst), 0 },
	{ "admission", "client_rate", KT_RATE, 0, RATE_MAX_MIN, "0",
	    FIELD(admission.client_rate), 0 },
	{ "admission", "client_burst", KT_UINT, 0, RATE_MAX, "0",
	    FIELD(admission.client_burst), 0 },
	{ "admission", "client_key", KT_CLIENT_KEY, 0, 0, "ip",
	    LIST(admission.client_key, admission.client_key_header),
	    0 },
	{ "admission", "max_clients", KT_UINT, 1, RATE_MAX, "100000",
	    FIELD(admission.max_clients), 0 },
	{ "admission", "dry_run", KT_BOOL, 0, 0, "no",
	    FIELD(admission.dry_run), 0 },

	{ "admin", "listen", KT_ADDRS, 0, 1, NULL,
	    LIST(admin.listen, admin.nlisten),
	    KEY_PASSIVE | KEY_LOOPBACK },

	{ "tls", "listen", KT_ADDRS, 0, 64, NULL,
	    LIST(tls.listen, tls.nlisten),
	    KEY_REPEAT | KEY_PASSIVE | KEY_UNIQUE },
	{ "tls", "certificate", KT_STRINGS, 0, 100, NULL,
	    LIST(tls.certs, tls.ncerts), KEY_REPEAT | 0 },
	{ "tls", "private_key", KT_STRINGS, 0, 100, NULL,
	    LIST(tls.keys, tls.nkeys), KEY_REPEAT | 0 },
	{ "tls", "protocols", KT_PROTOCOLS, 0, 0, "TLSv1.2 TLSv1.3",
	    FIELD(tls.protocols), 0 },
	{ "tls", "ciphers", KT_STRING, 0, 0, "HIGH:!aNULL:!MD5",
	    FIELD(tls.ciphers), 0 },
	{ "tls", "ciphersuites", KT_STRING, 0, 0, NULL,
	    FIELD(tls.ciphersuites), 0 },
	{ "tls", "session_tickets", KT_BOOL, 0, 0, "yes",
	    FIELD(tls.session_tickets), 0 },
	{ "tls", "session_cache", KT_UINT, 0, 10000000, "20000",
	    FIELD(tls.session_cache), 0 },
	{ "tls", "session_timeout", KT_DURATION, 1, MS_1D, "5m",
	    FIELD(tls.session_timeout_ms), 0 },
	{ "tls", "handshake_timeout", KT_DURATION, 1, MS_1H, "10s",
	    FIELD(tls.handshake_timeout_ms), 0 },

	{ "limiter", "algorithm", KT_ALGO, 0, 0, "gradient",
	    FIELD(limiter.algorithm), 0 },
	{ "limiter", "limit", KT_UINT, 1, LIMIT_MAX, "4",
	    FIELD(limiter.limit), 0 },
	{ "limiter", "min_limit", KT_UINT, 1, LIMIT_MAX, "2",
	    FIELD(limiter.min_limit), 0 },
	{ "limiter", "max_limit", KT_UINT, 1, LIMIT_MAX, "1000",
	    FIELD(limiter.max_limit), 0 },
	{ "limiter", "queue_size", KT_UINT, 0, LIMIT_MAX, "100",
	    FIELD(limiter.queue_size), 0 },
	{ "limiter", "queue_timeout", KT_DURATION, 1, MS_1H, "1s",
	    FIELD(limiter.queue_timeout_ms), 0 },
	{ "limiter", "codel_target", KT_DURATION, 0, MS_1H, "5ms",
	    FIELD(limiter.codel_target_ms), 0 },
	{ "limiter", "codel_interval", KT_DURATION, 0, MS_1H, "100ms",
	    FIELD(limiter.codel_interval_ms), 0 },
	{ "limiter", "adaptive_lifo", KT_BOOL, 0, 0, "yes",
	    FIELD(limiter.adaptive_lifo), 0 },
	{ "limiter", "backoff", KT_RATIO, 500, 999, "0.9",
	    FIELD(limiter.backoff), 0 },
	{ "limiter", "aimd_latency", KT_DURATION, 1, MS_1H, "1s",
	    FIELD(limiter.aimd_latency_ms), 0 },
	{ "limiter", "smoothing", KT_RATIO, 10, 1000, "0.2",
	    FIELD(limiter.smoothing), 0 },
	{ "limiter", "tolerance", KT_RATIO, 1000, 10000, "1.5",
	    FIELD(limiter.tolerance), 0 },
	{ "limiter", "vegas_alpha", KT_UINT, 1, 1000, "3",
	    FIELD(limiter.vegas_alpha), 0 },
	{ "limiter", "vegas_beta", KT_UINT, 1, 1000, "6",
	    FIELD(limiter.vegas_beta), 0 },
};
#define NKEYS	(sizeof(keys) / sizeof(keys[0]))

/* The keys of a [class NAME] section; offsets into struct class_conf. */
static const struct key class_keys[] = {
	{ "class", "path", KT_PATHS, 1, 1000, NULL,
	    CLIST(paths, npaths), KEY_REPEAT | KEY_CRITERION },
	{ "class", "method", KT_METHODS, 1, 100, NULL,
	    CLIST(methods, nmethods),
	    KEY_REPEAT | KEY_CRITERION },
	{ "class", "header", KT_HEADER, 0, 0, NULL,
	    CLIST(header_name, header_value), KEY_CRITERION },
	{ "class", "priority", KT_PRIORITY, 0, 0, "normal",
	    CFIELD(priority), 0 },
	{ "class", "rate", KT_RATE, 0, RATE_MAX_MIN, "0",
	    CFIELD(rate), 0 },
	{ "class", "burst", KT_UINT, 0, RATE_MAX, "0",
	    CFIELD(burst), 0 },
};
#define NCLASS_KEYS	(sizeof(class_keys) / sizeof(class_keys[0]))

static const char	 class_section[] = "class";
static const char	 default_class[] = "default";

static const char *const balance_names[] = {
	[BALANCE_ROUNDROBIN] = "roundrobin",
	[BALANCE_LEASTCONN] = "leastconn",
};
#define NBALANCE (sizeof(balance_names) / sizeof(balance_names[0]))

static const char *const algo_names[] = {
	[LIMITER_FIXED] = "fixed",
	[LIMITER_AIMD] = "aimd",
	[LIMITER_VEGAS] = "vegas",
	[LIMITER_GRADIENT] = "gradient",
};
#define NALGO (sizeof(algo_names) / sizeof(algo_names[0]))

static const char *const priority_names[] = {
	[PRIO_CRITICAL] = "critical",
	[PRIO_NORMAL] = "normal",
	[PRIO_SHEDDABLE] = "sheddable",
};
#define NPRIORITY (sizeof(priority_names) / sizeof(priority_names[0]))

/* State of one parse, shared by the reader, the handler and validation. */
struct parse {
	const char	*p_name;	/* file name, for messages */
	struct config	*p_conf;
	int		 p_flags;	/* CONFIG_* */

	const char	*p_text;	/* whole input, not NUL-terminated */
	size_t		 p_len;
	size_t		 p_off;
	int		 p_line;	/* line last handed to inih */

	const char	*p_section;	/* table's name; NULL before any */
	int		 p_skip;	/* in an unknown or broken section */
	int		 p_section_line[NKEYS];	/* [section] header of key */
	int		 p_seen[NKEYS];	/* line a key was first given */
	int		 p_in_class;	/* keys go to the last class */
	int		 p_class_seen[NCLASS_KEYS]; /* the same, for it */

	char		*p_err;		/* "NAME:LINE: message\n"... */
	size_t		 p_errlen;
	size_t		 p_errsize;
	int		 p_nerr;
};

/*
 * A setter parses value, given on line (0: a default), into the fields of
 * obj that k names. It returns 0, or -1 having reported the problem.
 */
static int	set_number(struct parse *, const struct key *, void *,
		    const char *, int);
static int	set_logfile(struct parse *, const struct key *, void *,
		    const char *, int);
static int	set_balance(struct parse *, const struct key *, void *,
		    const char *, int);
static int	set_addrs(struct parse *, const struct key *, void *,
		    const char *, int);
static int	set_algo(struct parse *, const struct key *, void *,
		    const char *, int);
static int	set_ratio(struct parse *, const struct key *, void *,
		    const char *, int);
static int	set_bool(struct parse *, const struct key *, void *,
		    const char *, int);
static int	set_client_key(struct parse *, const struct key *, void *,
		    const char *, int);
static int	set_paths(struct parse *, const struct key *, void *,
		    const char *, int);
static int	set_methods(struct parse *, const struct key *, void *,
		    const char *, int);
static int	set_header(struct parse *, const struct key *, void *,
		    const char *, int);
static int	set_priority(struct parse *, const struct key *, void *,
		    const char *, int);
static int	set_string(struct parse *, const struct key *, void *,
		    const char *, int);
static int	set_strings(struct parse *, const struct key *, void *,
		    const char *, int);
static int	set_protocols(struct parse *, const struct key *, void *,
		    const char *, int);

/* What each type is called in messages, how to write it, who parses it. */
static const struct key_type_info {
	const char	*t_name;
	const char	*t_form;
	const char	*t_example;
	int		(*t_set)(struct parse *, const struct key *, void *,
			    const char *, int);
} types[] = {
	[KT_DURATION] = { "duration", "use e.g. 250ms, 10s, 1m", "10s",
	    set_number },
	[KT_SIZE] = { "size", "use e.g. 512, 16k, 1m", "16k", set_number },
	[KT_RATE] = { "rate", "use requests per second or minute, e.g. 100, "
	    "100/s, 5/m", "100/s", set_number },
	[KT_UINT] = { "number", "use a whole number, e.g. 100", "100",
	    set_number },
	[KT_LOGFILE] = { "log file", "use a path, '-' or 'off'", "-",
	    set_logfile },
	[KT_BALANCE] = { "balance", "use roundrobin or leastconn",
	    "roundrobin", set_balance },
	[KT_ADDRS] = { "address", "use host:port or [v6]:port", "host:port",
	    set_addrs },
	[KT_BOOL] = { "boolean", "use yes or no", "no", set_bool },
	[KT_CLIENT_KEY] = { "client key", "use ip or header:NAME", "ip",
	    set_client_key },
	[KT_PATHS] = { "path", "use a path prefix, e.g. /api/", "/api/",
	    set_paths },
	[KT_METHODS] = { "method", "use methods, e.g. GET, HEAD", "GET",
	    set_methods },
	[KT_HEADER] = { "header", "use Name or Name: value", "X-Name: value",
	    set_header },
	[KT_PRIORITY] = { "priority", "use critical, normal or sheddable",
	    "normal", set_priority },
	[KT_ALGO] = { "algorithm", "use fixed, aimd, vegas or gradient",
	    "gradient", set_algo },
	[KT_RATIO] = { "ratio", "use a decimal number, e.g. 0.9", "0.9",
	    set_ratio },
	[KT_STRING] = { "text", "use text", "text", set_string },
	[KT_STRINGS] = { "file", "use a path", "/etc/spillway/site.pem",
	    set_strings },
	[KT_PROTOCOLS] = { "protocols", "use a range of TLSv1, TLSv1.1, "
	    "TLSv1.2, TLSv1.3", "TLSv1.2 TLSv1.3", set_protocols },
};

/*
 * Append "NAME:LINE: message\n" (or "NAME: message\n" for line 0) to the
 * error list. Bytes that could upset a terminal are shown as '?': values
 * come from the file, and fuzzed files hold anything.
 */
static void __attribute__((format(printf, 3, 4)))
parse_error(struct parse *p, int line, const char *fmt, ...)
{
	char	 msg[512], where[32], *nbuf;
	size_t	 need, i, start;
	va_list	 ap;
	int	 n;

	if (++p->p_nerr > CONFIG_MAX_ERRORS)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (line > 0)
		snprintf(where, sizeof(where), ":%d: ", line);
	else
		snprintf(where, sizeof(where), ": ");

	need = p->p_errlen + strlen(p->p_name) + strlen(where) +
	    strlen(msg) + 2;
	if (need > p->p_errsize) {
		if ((nbuf = realloc(p->p_err, need * 2)) == NULL)
			return;		/* counted all the same */
		p->p_err = nbuf;
		p->p_errsize = need * 2;
	}
	start = p->p_errlen;
	n = snprintf(p->p_err + start, p->p_errsize - start, "%s%s%s\n",
	    p->p_name, where, msg);
	p->p_errlen += (size_t)n;
	for (i = start; i < p->p_errlen - 1; i++) {
		if ((unsigned char)p->p_err[i] < 0x20 || p->p_err[i] == 0x7f)
			p->p_err[i] = '?';
	}
}

static void *
field(void *obj, size_t offset)
{
	return (char *)obj + offset;
}

/* Store v into an unsigned field of 4 or 8 bytes; the bounds make it fit. */
static void
store_uint(void *dst, size_t size, uint64_t v)
{
	uint32_t	 v32 = (uint32_t)v;

	if (size == sizeof(uint64_t))
		memcpy(dst, &v, sizeof(v));
	else
		memcpy(dst, &v32, sizeof(v32));
}

/* Decimal digits only, at least one, no sign: 0 and *end past them. */
static int
parse_digits(const char *s, uint64_t *v, const char **end)
{
	uint64_t	 n = 0;
	const char	*c;

	for (c = s; *c >= '0' && *c <= '9'; c++) {
		if (n > (UINT64_MAX - (uint64_t)(*c - '0')) / 10)
			return -1;
		n = n * 10 + (uint64_t)(*c - '0');
	}
	if (c == s)
		return -1;
	*v = n;
	*end = c;
	return 0;
}

static int
scale(uint64_t n, uint64_t unit, uint64_t *v)
{
	if (n > UINT64_MAX / unit)
		return -1;
	*v = n * unit;
	return 0;
}

static int
parse_uint(const char *s, uint64_t *v)
{
	const char	*end;

	if (parse_digits(s, v, &end) == -1 || *end != '\0')
		return -1;
	return 0;
}

int
config_parse_duration(const char *s, uint64_t *ms)
{
	static const struct {
		const char	*u_name;
		uint64_t	 u_ms;
	} units[] = {
		{ "", MS_1S }, { "ms", 1 }, { "s", MS_1S }, { "m", 60 * MS_1S },
		{ "h", MS_1H }, { "d", MS_1D },
	};
	const char	*end;
	uint64_t	 n;
	size_t		 i;

	if (parse_digits(s, &n, &end) == -1)
		return -1;
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(end, units[i].u_name) == 0)
			return scale(n, units[i].u_ms, ms);
	}
	return -1;
}

/* A rate: "N" or "N/s" per second, "N/m" per minute; stored per minute. */
int
config_parse_rate(const char *s, uint64_t *per_min)
{
	const char	*end;
	uint64_t	 n;

	if (parse_digits(s, &n, &end) == -1)
		return -1;
	if (*end == '\0' || strcmp(end, "/s") == 0)
		return scale(n, 60, per_min);
	if (strcmp(end, "/m") == 0) {
		*per_min = n;
		return 0;
	}
	return -1;
}

int
config_parse_size(const char *s, uint64_t *bytes)
{
	const char	*end;
	uint64_t	 n, unit;

	if (parse_digits(s, &n, &end) == -1)
		return -1;
	switch (*end) {
	case '\0':
		unit = 1;
		break;
	case 'k': case 'K':
		unit = KIB;
		break;
	case 'm': case 'M':
		unit = MIB;
		break;
	case 'g': case 'G':
		unit = GIB;
		break;
	default:
		return -1;
	}
	if (*end != '\0' && end[1] != '\0')
		return -1;
	return scale(n, unit, bytes);
}

/* Write v the way a user would: the largest unit that divides it. */
static void
format_value(enum key_type type, uint64_t v, char *buf, size_t len)
{
	static const struct {
		enum key_type	 f_type;
		uint64_t	 f_unit;
		const char	*f_name;
	} units[] = {
		{ KT_DURATION, MS_1D, "d" }, { KT_DURATION, MS_1H, "h" },
		{ KT_DURATION, 60 * MS_1S, "m" }, { KT_DURATION, MS_1S, "s" },
		{ KT_DURATION, 1, "ms" },
		{ KT_SIZE, GIB, "g" }, { KT_SIZE, MIB, "m" },
		{ KT_SIZE, KIB, "k" },
		{ KT_RATE, 60, "/s" }, { KT_RATE, 1, "/m" },
	};
	size_t	 i;

	for (i = 0; v != 0 && i < sizeof(units) / sizeof(units[0]); i++) {
		if (units[i].f_type == type && v % units[i].f_unit == 0) {
			snprintf(buf, len, "%llu%s",
			    (unsigned long long)(v / units[i].f_unit),
			    units[i].f_name);
			return;
		}
	}
	snprintf(buf, len, "%llu", (unsigned long long)v);
}

static int
set_number(struct parse *p, const struct key *k, void *obj, const char *value,
    int line)
{
	char		 lo[32], hi[32];
	uint64_t	 v;
	int		 rc;

	if (k->k_type == KT_DURATION)
		rc = config_parse_duration(value, &v);
	else if (k->k_type == KT_SIZE)
		rc = config_parse_size(value, &v);
	else if (k->k_type == KT_RATE)
		rc = config_parse_rate(value, &v);
	else
		rc = parse_uint(value, &v);
	if (rc == -1) {
		parse_error(p, line, "%s: invalid %s '%s' (%s)", k->k_name,
		    types[k->k_type].t_name, value, types[k->k_type].t_form);
		return -1;
	}
	if (v < k->k_min || v > k->k_max) {
		format_value(k->k_type, k->k_min, lo, sizeof(lo));
		format_value(k->k_type, k->k_max, hi, sizeof(hi));
		parse_error(p, line, "%s: %s is out of range (%s to %s)",
		    k->k_name, value, lo, hi);
		return -1;
	}
	store_uint(field(obj, k->k_offset), k->k_size, v);
	return 0;
}

/* "off" is no log, "-" or "stderr" is standard error, else a path. */
static int
set_logfile(struct parse *p, const struct key *k, void *obj,
    const char *value, int line)
{
	char	**dst = field(obj, k->k_offset);
	char	 *s = NULL;

	if (strcmp(value, "off") != 0) {
		if (strcmp(value, "stderr") == 0)
			value = "-";
		if ((s = strdup(value)) == NULL) {
			parse_error(p, line, "%s: out of memory", k->k_name);
			return -1;
		}
	}
	free(*dst);
	*dst = s;
	return 0;
}

/* Store the index of value in names[] into an enum field. */
static int
set_enum(struct parse *p, const struct key *k, void *obj, const char *value,
    int line, const char *const *names, size_t nnames)
{
	size_t	 i;

	for (i = 0; i < nnames; i++) {
		if (strcmp(value, names[i]) == 0) {
			store_uint(field(obj, k->k_offset), k->k_size, i);
			return 0;
		}
	}
	parse_error(p, line, "%s: invalid value '%s' (%s)", k->k_name, value,
	    types[k->k_type].t_form);
	return -1;
}

static int
set_balance(struct parse *p, const struct key *k, void *obj,
    const char *value, int line)
{
	return set_enum(p, k, obj, value, line, balance_names, NBALANCE);
}

static int
set_priority(struct parse *p, const struct key *k, void *obj,
    const char *value, int line)
{
	return set_enum(p, k, obj, value, line, priority_names, NPRIORITY);
}

static int
set_algo(struct parse *p, const struct key *k, void *obj,
    const char *value, int line)
{
	return set_enum(p, k, obj, value, line, algo_names, NALGO);
}

/*
 * A decimal ratio with at most three decimals ("0.9", "1.25", "2"), its
 * bounds in thousandths in the table.
 */
static int
set_ratio(struct parse *p, const struct key *k, void *obj,
    const char *value, int line)
{
	const char	*c = value;
	uint64_t	 milli = 0, scale = 1000;
	double		 v;

	if (*c < '0' || *c > '9')
		goto bad;
	for (; *c >= '0' && *c <= '9'; c++)
		if ((milli = milli * 10 + (uint64_t)(*c - '0')) > 1000000)
			goto bad;
	milli *= 1000;
	if (*c == '.') {
		for (c++; *c >= '0' && *c <= '9' && scale > 1; c++) {
			scale /= 10;
			milli += (uint64_t)(*c - '0') * scale;
		}
	}
	if (*c != '\0')
		goto bad;
	if (milli < k->k_min || milli > k->k_max) {
		parse_error(p, line, "%s: %s is out of range (%g to %g)",
		    k->k_name, value, k->k_min / 1000.0, k->k_max / 1000.0);
		return -1;
	}
	v = milli / 1000.0;
	memcpy(field(obj, k->k_offset), &v, sizeof(v));
	return 0;
 bad:
	parse_error(p, line, "%s: invalid %s '%s' (%s)", k->k_name,
	    types[k->k_type].t_name, value, types[k->k_type].t_form);
	return -1;
}

/* yes/no, on/off, true/false, 1/0, in any case. */
static int
set_bool(struct parse *p, const struct key *k, void *obj, const char *value,
    int line)
{
	static const char *const yes[] = { "yes", "on", "true", "1" };
	static const char *const no[] = { "no", "off", "false", "0" };
	int	*dst = field(obj, k->k_offset);
	size_t	 i;

	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(value, yes[i]) == 0) {
			*dst = 1;
			return 0;
		}
		if (strcasecmp(value, no[i]) == 0) {
			*dst = 0;
			return 0;
		}
	}
	parse_error(p, line, "%s: invalid value '%s' (%s)", k->k_name, value,
	    types[k->k_type].t_form);
	return -1;
}

/* Text kept as written, with its line, in one struct config_str. */
static int
store_string(struct parse *p, const struct key *k, struct config_str *dst,
    const char *value, int line)
{
	char	*s;

	if (strlen(value) > CONFIG_STR_MAX) {
		parse_error(p, line, "%s: too long (at most %d bytes)",
		    k->k_name, CONFIG_STR_MAX);
		return -1;
	}
	if ((s = strdup(value)) == NULL) {
		parse_error(p, line, "%s: out of memory", k->k_name);
		return -1;
	}
	free(dst->text);
	dst->text = s;
	dst->line = line;
	return 0;
}

static int
set_string(struct parse *p, const struct key *k, void *obj,
    const char *value, int line)
{
	return store_string(p, k, field(obj, k->k_offset), value, line);
}

/* Append one string to a list key. */
static int
set_strings(struct parse *p, const struct key *k, void *obj,
    const char *value, int line)
{
	struct config_str	**list = field(obj, k->k_offset), *nlist, one;
	size_t			 *n = field(obj, k->k_aux);

	if (*n >= k->k_max) {
		parse_error(p, line, "%s: too many (at most %llu)", k->k_name,
		    (unsigned long long)k->k_max);
		return -1;
	}
	memset(&one, 0, sizeof(one));
	if (store_string(p, k, &one, value, line) == -1)
		return -1;
	if ((nlist = realloc(*list, (*n + 1) * sizeof(**list))) == NULL) {
		free(one.text);
		parse_error(p, line, "%s: out of memory", k->k_name);
		return -1;
	}
	nlist[(*n)++] = one;
	*list = nlist;
	return 0;
}

static const char *const tls_proto_names[] = {
	"TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3",
};
#define NTLS_PROTO (sizeof(tls_proto_names) / sizeof(tls_proto_names[0]))

/* "TLSv1.2 TLSv1.3": versions split by blanks or commas, no gap. */
static int
set_protocols(struct parse *p, const struct key *k, void *obj,
    const char *value, int line)
{
	const char	*c = value;
	unsigned int	 bits = 0, low;
	size_t		 len, i;

	for (;;) {
		c += strspn(c, " \t,");
		if ((len = strcspn(c, " \t,")) == 0)
			break;
		for (i = 0; i < NTLS_PROTO; i++) {
			if (strlen(tls_proto_names[i]) == len &&
			    strncasecmp(c, tls_proto_names[i], len) == 0)
				break;
		}
		if (i == NTLS_PROTO && len == 7 &&
		    strncasecmp(c, "TLSv1.0", 7) == 0)
			i = 0;
		if (i == NTLS_PROTO) {
			parse_error(p, line, "%s: unknown protocol '%.*s' (%s)",
			    k->k_name, (int)len, c, types[k->k_type].t_form);
			return -1;
		}
		bits |= 1U << i;
		c += len;
	}
	low = bits & -bits;
	if (bits == 0 || ((bits + low) & bits) != 0) {
		parse_error(p, line, "%s: '%s' is not a range of versions "
		    "without a gap (%s)", k->k_name, value,
		    types[k->k_type].t_form);
		return -1;
	}
	store_uint(field(obj, k->k_offset), k->k_size, bits);
	return 0;
}

/* An HTTP token (RFC 9110 tchar), len bytes of s, at least one. */
static int
is_token(const char *s, size_t len)
{
	size_t	 i;

	for (i = 0; i < len; i++) {
		if (!isalnum((unsigned char)s[i]) &&
		    strchr("!#$%&'*+-.^_`|~", s[i]) == NULL)
			return 0;
	}
	return len > 0;
}

/* "ip", or "header:NAME" with NAME a header's name. */
static int
set_client_key(struct parse *p, const struct key *k, void *obj,
    const char *value, int line)
{
	char			**header = field(obj, k->k_aux);
	const char		 *name;
	char			 *s = NULL;
	enum client_key_kind	  kind = CLIENT_KEY_IP;

	if (strncmp(value, "header:", 7) == 0) {
		for (name = value + 7; *name == ' ' || *name == '\t'; name++)
			;
		if (!is_token(name, strlen(name))) {
			parse_error(p, line, "%s: invalid header name in '%s' "
			    "(%s)", k->k_name, value, types[k->k_type].t_form);
			return -1;
		}
		if ((s = strdup(name)) == NULL) {
			parse_error(p, line, "%s: out of memory", k->k_name);
			return -1;
		}
		kind = CLIENT_KEY_HEADER;
	} else if (strcmp(value, "ip") != 0) {
		parse_error(p, line, "%s: invalid value '%s' (%s)", k->k_name,
		    value, types[k->k_type].t_form);
		return -1;
	}
	store_uint(field(obj, k->k_offset), k->k_size, kind);
	free(*header);
	*header = s;
	return 0;
}

/* Append a copy of len bytes of s to a list of strings. */
static int
strlist_append(char ***list, size_t *n, const char *s, size_t len)
{
	char	**nlist, *copy;

	if ((copy = strndup(s, len)) == NULL)
		return -1;
	if ((nlist = realloc(*list, (*n + 1) * sizeof(**list))) == NULL) {
		free(copy);
		return -1;
	}
	nlist[(*n)++] = copy;
	*list = nlist;
	return 0;
}

/*
 * A path prefix: starts with '/', has no blank or control character (it
 * could never match a request-target) and no '?' or '#': the query string
 * is not matched, and a fragment is never sent.
 */
static int
set_paths(struct parse *p, const struct key *k, void *obj, const char *value,
    int line)
{
	char		***list = field(obj, k->k_offset);
	size_t		  *n = field(obj, k->k_aux);
	const char	  *c;

	if (*n >= k->k_max) {
		parse_error(p, line, "%s: too many (at most %llu)", k->k_name,
		    (unsigned long long)k->k_max);
		return -1;
	}
	if (value[0] != '/') {
		parse_error(p, line, "%s: '%s' does not start with '/' (%s)",
		    k->k_name, value, types[k->k_type].t_form);
		return -1;
	}
	for (c = value; *c != '\0'; c++) {
		if ((unsigned char)*c <= ' ' || *c == 0x7f) {
			parse_error(p, line, "%s: blank or control character "
			    "in '%s'", k->k_name, value);
			return -1;
		}
		if (*c == '?' || *c == '#') {
			parse_error(p, line, "%s: '%c' in '%s' (a path prefix "
			    "never matches the query string)", k->k_name, *c,
			    value);
			return -1;
		}
	}
	if (strlist_append(list, n, value, strlen(value)) == -1) {
		parse_error(p, line, "%s: out of memory", k->k_name);
		return -1;
	}
	return 0;
}

/*
 * Methods, separated by commas and/or blanks ("GET, HEAD"), each a token
 * of its own in the list. All are checked before any is added.
 */
static int
set_methods(struct parse *p, const struct key *k, void *obj,
    const char *value, int line)
{
	static const char	  sep[] = ", \t";
	char			***list = field(obj, k->k_offset);
	size_t			  *n = field(obj, k->k_aux), len, count = 0;
	const char		  *c;

	for (c = value + strspn(value, sep); *c != '\0';
	    c += len, c += strspn(c, sep)) {
		len = strcspn(c, sep);
		if (!is_token(c, len)) {
			parse_error(p, line, "%s: invalid method '%.*s' (%s)",
			    k->k_name, (int)len, c, types[k->k_type].t_form);
			return -1;
		}
		count++;
	}
	if (count == 0) {
		parse_error(p, line, "%s: no method in '%s' (%s)", k->k_name,
		    value, types[k->k_type].t_form);
		return -1;
	}
	if (*n + count > k->k_max) {
		parse_error(p, line, "%s: too many (at most %llu)", k->k_name,
		    (unsigned long long)k->k_max);
		return -1;
	}
	for (c = value + strspn(value, sep); *c != '\0';
	    c += len, c += strspn(c, sep)) {
		len = strcspn(c, sep);
		if (strlist_append(list, n, c, len) == -1) {
			parse_error(p, line, "%s: out of memory", k->k_name);
			return -1;
		}
	}
	return 0;
}

/*
 * "Name: value", an exact value (blanks around it dropped, inner ones
 * kept), or "Name" alone: the header is present, whatever its value.
 */
static int
set_header(struct parse *p, const struct key *k, void *obj,
    const char *value, int line)
{
	char		**name = field(obj, k->k_offset);
	char		**hvalue = field(obj, k->k_aux);
	const char	 *colon, *v = NULL, *c;
	char		 *ns = NULL, *vs = NULL;
	size_t		  namelen;

	colon = strchr(value, ':');
	namelen = colon != NULL ? (size_t)(colon - value) : strlen(value);
	if (!is_token(value, namelen)) {
		parse_error(p, line, "%s: invalid header name in '%s' (%s)",
		    k->k_name, value, types[k->k_type].t_form);
		return -1;
	}
	if (colon != NULL) {
		for (v = colon + 1; *v == ' ' || *v == '\t'; v++)
			;
		if (*v == '\0') {
			parse_error(p, line, "%s: missing value after ':' in "
			    "'%s' (%s)", k->k_name, value,
			    types[k->k_type].t_form);
			return -1;
		}
		for (c = v; *c != '\0'; c++) {
			if (((unsigned char)*c < ' ' && *c != '\t') ||
			    *c == 0x7f) {
				parse_error(p, line, "%s: control character "
				    "in '%s'", k->k_name, value);
				return -1;
			}
		}
	}
	if ((ns = strndup(value, namelen)) == NULL ||
	    (v != NULL && (vs = strdup(v)) == NULL)) {
		free(ns);
		parse_error(p, line, "%s: out of memory", k->k_name);
		return -1;
	}
	free(*name);
	free(*hvalue);
	*name = ns;
	*hvalue = vs;
	return 0;
}

int
config_parse_addr(const char *text, int passive, struct config_addr *a,
    char *err, size_t errlen)
{
	return addr_parse(text, passive, 0, a, err, errlen);
}

/* Append one address to a list key; KEY_UNIQUE refuses one seen before. */
static int
set_addrs(struct parse *p, const struct key *k, void *obj, const char *value,
    int line)
{
	struct config_addr	**list = field(obj, k->k_offset), *nlist, a;
	size_t			 *n = field(obj, k->k_aux), i;
	char			  err[256], local[32];

	if (*n >= k->k_max) {
		parse_error(p, line, "%s: too many (at most %llu)", k->k_name,
		    (unsigned long long)k->k_max);
		return -1;
	}
	memset(&a, 0, sizeof(a));
	/* "8082" or ":8082": loopback, not every address, where it matters */
	if ((k->k_flags & KEY_LOOPBACK) && value[strspn(value, ":")] != '\0' &&
	    strspn(value, ":") <= 1 &&
	    value[strspn(value, ":") + strspn(value + strspn(value, ":"),
	    "0123456789")] == '\0') {
		snprintf(local, sizeof(local), "127.0.0.1:%s",
		    value + strspn(value, ":"));
		value = local;
	}
	if (addr_parse(value, k->k_flags & KEY_PASSIVE,
	    (p->p_flags & CONFIG_NUMERIC_HOSTS) != 0, &a,
	    err, sizeof(err)) == -1) {
		parse_error(p, line, "%s: %s", k->k_name, err);
		return -1;
	}
	for (i = 0; (k->k_flags & KEY_UNIQUE) && i < *n; i++) {
		if (addr_same(&(*list)[i], &a)) {
			parse_error(p, line, "%s: %s is the same address as "
			    "'%s' on line %d", k->k_name, value,
			    (*list)[i].text, (*list)[i].line);
			return -1;
		}
	}
	a.line = line;
	if ((a.text = strdup(value)) == NULL ||
	    (nlist = realloc(*list, (*n + 1) * sizeof(**list))) == NULL) {
		free(a.text);
		parse_error(p, line, "%s: out of memory", k->k_name);
		return -1;
	}
	nlist[(*n)++] = a;
	*list = nlist;
	return 0;
}

static const struct key *
key_find(const struct key *table, size_t n, const char *section,
    const char *name)
{
	size_t	 i;

	for (i = 0; i < n; i++) {
		if (strcmp(table[i].k_section, section) == 0 &&
		    strcmp(table[i].k_name, name) == 0)
			return &table[i];
	}
	return NULL;
}

/* The table's own copy of a section name, or NULL if there is none. */
static const char *
section_find(const char *name, size_t len)
{
	size_t	 i;

	for (i = 0; i < NKEYS; i++) {
		if (strlen(keys[i].k_section) == len &&
		    memcmp(keys[i].k_section, name, len) == 0)
			return keys[i].k_section;
	}
	return NULL;
}

/*
 * inih calls this for each "key = value" on the line the reader returned
 * last. It always returns 1: errors are recorded here with the line, and
 * inih's own return value is kept for syntax errors only.
 */
static int
#if INI_HANDLER_LINENO
handler(void *arg, const char *section, const char *name, const char *value,
    int lineno)
#else
handler(void *arg, const char *section, const char *name, const char *value)
#endif
{
	struct parse		*p = arg;
	const struct key	*table = keys, *k;
	struct class_conf	*cl = NULL;
	size_t			 n = NKEYS, i;
	int			*seen = p->p_seen;
	void			*obj = p->p_conf;

	(void)section;	/* ours is not cut at 50 bytes and knows errors */
#if INI_HANDLER_LINENO
	(void)lineno;
#endif
	if (name == NULL || p->p_skip)	/* a section start, if inih says */
		return 1;
	if (p->p_section == NULL) {
		parse_error(p, p->p_line, "key '%s' outside any section "
		    "(start with [proxy] or [backend])", name);
		return 1;
	}
	if (p->p_in_class) {
		cl = &p->p_conf->classes[p->p_conf->nclasses - 1];
		table = class_keys;
		n = NCLASS_KEYS;
		seen = p->p_class_seen;
		obj = cl;
	}
	if ((k = key_find(table, n, p->p_section, name)) == NULL) {
		if (cl != NULL)
			parse_error(p, p->p_line, "unknown key '%s' in "
			    "[class %s]", name, cl->name);
		else
			parse_error(p, p->p_line, "unknown key '%s' in [%s]",
			    name, p->p_section);
		return 1;
	}
	i = (size_t)(k - table);
	if (seen[i] && !(k->k_flags & KEY_REPEAT)) {
		parse_error(p, p->p_line, "%s: given twice (first on line %d)",
		    k->k_name, seen[i]);
		return 1;
	}
	if (seen[i] == 0)
		seen[i] = p->p_line;
	if (*value == '\0') {
		parse_error(p, p->p_line, "%s: missing value (%s)", k->k_name,
		    types[k->k_type].t_form);
		return 1;
	}
	types[k->k_type].t_set(p, k, obj, value, p->p_line);
	return 1;
}

/*
 * Cut an inline comment, a ';' after a blank, off the line s, and the
 * blanks before it. inih's default rule, applied here so that it holds
 * whichever way the library was built.
 */
static void
cut_comment(char *s)
{
	char	*c;

	for (c = s; *c != '\0'; c++) {
		if (*c == ';' && c > s && isspace((unsigned char)c[-1]))
			break;
	}
	while (c > s && isspace((unsigned char)c[-1]))
		c--;
	*c = '\0';
}

/* Give each key of table that seen says was left out its default, in obj. */
static void
set_defaults(struct parse *p, const struct key *table, size_t n,
    const int *seen, void *obj)
{
	size_t	 i;

	for (i = 0; i < n; i++) {
		if (!seen[i] && table[i].k_default != NULL)
			types[table[i].k_type].t_set(p, &table[i], obj,
			    table[i].k_default, 0);
	}
}

static int
is_default_class(const struct class_conf *cl)
{
	return strcmp(cl->name, default_class) == 0;
}

/*
 * The class being defined ends (a new section starts, or the file): its
 * left-out keys take their defaults, and it must match something, unless
 * it is the default class, which must match everything. A criterion given
 * with a bad value counts as given: its error says all there is to say.
 */
static void
class_end(struct parse *p)
{
	struct class_conf	*cl;
	size_t			 i;
	int			 criteria = 0;

	if (!p->p_in_class)
		return;
	p->p_in_class = 0;
	cl = &p->p_conf->classes[p->p_conf->nclasses - 1];
	set_defaults(p, class_keys, NCLASS_KEYS, p->p_class_seen, cl);
	for (i = 0; i < NCLASS_KEYS; i++) {
		if (p->p_class_seen[i] &&
		    (class_keys[i].k_flags & KEY_CRITERION))
			criteria = 1;
	}
	if (is_default_class(cl) && criteria)
		parse_error(p, cl->line, "class default matches every "
		    "request; it takes no path, method or header");
	else if (!is_default_class(cl) && !criteria)
		parse_error(p, cl->line, "class %s has no path, method or "
		    "header to match; name it default to change the default "
		    "class", cl->name);
}

/* Append a class called name, defined on line, to the configuration. */
static struct class_conf *
class_add(struct parse *p, const char *name, size_t len, int line)
{
	struct config		*conf = p->p_conf;
	struct class_conf	*nlist, *cl;

	nlist = realloc(conf->classes,
	    (conf->nclasses + 1) * sizeof(*conf->classes));
	if (nlist == NULL)
		return NULL;
	conf->classes = nlist;
	cl = &conf->classes[conf->nclasses];
	memset(cl, 0, sizeof(*cl));
	if ((cl->name = strndup(name, len)) == NULL)
		return NULL;
	cl->line = line;
	conf->nclasses++;
	return cl;
}

/*
 * "[class NAME]", name pointing past "class" and its blanks: start a new
 * class, or report why not and skip the section's keys.
 */
static void
class_begin(struct parse *p, const char *name, size_t len)
{
	struct config	*conf = p->p_conf;
	size_t		 i;

	p->p_skip = 1;
	if (len == 0) {
		parse_error(p, p->p_line, "[class] needs a name ([class NAME])");
		return;
	}
	for (i = 0; i < len; i++) {
		if (!isalnum((unsigned char)name[i]) &&
		    strchr("_.-", name[i]) == NULL)
			break;
	}
	if (i < len || len > CLASS_NAME_MAX) {
		parse_error(p, p->p_line, "invalid class name '%.*s' (1 to %d "
		    "letters, digits, '_', '.' or '-')", (int)len, name,
		    CLASS_NAME_MAX);
		return;
	}
	for (i = 0; i < conf->nclasses; i++) {
		if (strlen(conf->classes[i].name) == len &&
		    memcmp(conf->classes[i].name, name, len) == 0) {
			parse_error(p, p->p_line, "[class %.*s] given twice "
			    "(first on line %d)", (int)len, name,
			    conf->classes[i].line);
			return;
		}
	}
	if (conf->nclasses >= CLASS_MAX) {
		parse_error(p, p->p_line, "too many classes (at most %d)",
		    CLASS_MAX);
		return;
	}
	if (class_add(p, name, len, p->p_line) == NULL) {
		parse_error(p, p->p_line, "out of memory");
		return;
	}
	memset(p->p_class_seen, 0, sizeof(p->p_class_seen));
	p->p_section = class_section;
	p->p_in_class = 1;
	p->p_skip = 0;
}

/*
 * After the last line: the default class goes last, as given or with
 * every key at its default.
 */
static void
classes_end(struct parse *p)
{
	struct config		*conf = p->p_conf;
	struct class_conf	 cl, *last;
	static const int	 none[NCLASS_KEYS];
	size_t			 i;

	for (i = 0; i < conf->nclasses; i++) {
		if (is_default_class(&conf->classes[i])) {
			cl = conf->classes[i];
			memmove(&conf->classes[i], &conf->classes[i + 1],
			    (conf->nclasses - i - 1) * sizeof(cl));
			conf->classes[conf->nclasses - 1] = cl;
			return;
		}
	}
	if ((last = class_add(p, default_class, strlen(default_class), 0))
	    == NULL) {
		parse_error(p, 0, "out of memory");
		return;
	}
	set_defaults(p, class_keys, NCLASS_KEYS, none, last);
}

/*
 * If the section name, len bytes of s, is "class", blanks and a name, or
 * "class" alone, return where the name starts (s + len if it has none);
 * else NULL.
 */
static const char *
class_name(const char *s, size_t len)
{
	size_t	 n = sizeof(class_section) - 1;

	if (len < n || memcmp(s, class_section, n) != 0 ||
	    (len > n && s[n] != ' ' && s[n] != '\t'))
		return NULL;
	while (n < len && (s[n] == ' ' || s[n] == '\t'))
		n++;
	return s + n;
}

/* A "[section]" line: note which section the following keys belong to. */
static int
check_section(struct parse *p, const char *s)
{
	const char	*end, *rest, *name;
	size_t		 i, len;

	class_end(p);
	if ((end = strchr(s, ']')) == NULL) {
		parse_error(p, p->p_line, "syntax error: missing ']'");
		p->p_skip = 1;
		return -1;
	}
	for (rest = end + 1; isspace((unsigned char)*rest); rest++)
		;
	if (*rest != '\0') {
		parse_error(p, p->p_line, "syntax error: text after ']'");
		p->p_skip = 1;
		return -1;
	}
	len = (size_t)(end - s - 1);
	if ((name = class_name(s + 1, len)) != NULL) {
		class_begin(p, name, (size_t)(end - name));
		return 0;
	}
	p->p_section = section_find(s + 1, len);
	p->p_skip = p->p_section == NULL;
	if (p->p_skip) {
		parse_error(p, p->p_line, "unknown section [%.*s]",
		    (int)(end - s - 1), s + 1);
		return 0;
	}
	for (i = 0; i < NKEYS; i++) {
		if (keys[i].k_section == p->p_section &&
		    p->p_section_line[i] == 0)
			p->p_section_line[i] = p->p_line;
	}
	return 0;
}

/*
 * Check one line (blanks stripped from both ends) the way inih will read
 * it, and report what it would reject. Returns 0 if inih may have it.
 */
static int
check_line(struct parse *p, char *s, int indented)
{
	const char	*sep;

	if (*s == '\0' || *s == ';' || *s == '#')
		return 0;
	cut_comment(s);
	if (*s == '[')
		return check_section(p, s);
	sep = s + strcspn(s, "=:");
	if (*sep != '=') {
		parse_error(p, p->p_line, "syntax error: expected "
		    "'key = value'%s", indented ?
		    " (an indented line does not continue a value)" : "");
		return -1;
	}
	if (sep == s) {
		parse_error(p, p->p_line, "syntax error: missing key before "
		    "'='");
		return -1;
	}
	return 0;
}

/*
 * inih's reader: return the next physical line in buf (of num bytes),
 * stripped of blanks at both ends and ended by "\n". A line that inih must
 * not see is reported here and replaced by an empty one.
 */
static char *
reader(char *buf, int num, void *arg)
{
	struct parse	*p = arg;
	const char	*s, *nl;
	size_t		 len, max;
	int		 indented;

	if (p->p_off >= p->p_len || num < 3)
		return NULL;
	s = p->p_text + p->p_off;
	len = p->p_len - p->p_off;
	if ((nl = memchr(s, '\n', len)) != NULL)
		len = (size_t)(nl - s);
	p->p_off += len + (nl != NULL);
	p->p_line++;
	strcpy(buf, "\n");

	/* inih's "3 more than the longest line": '\r', '\n' and NUL */
	max = (size_t)num - 3;
	if (len > 0 && s[len - 1] == '\r')
		len--;
	if (len > max) {
		parse_error(p, p->p_line, "line too long (more than %zu "
		    "characters)", max);
		while (len > 0 && isspace((unsigned char)*s)) {
			s++;
			len--;
		}
		if (len > 0 && *s == '[') {
			class_end(p);
			p->p_skip = 1;	/* keys below are in no known section */
		}
		return buf;
	}
	if (memchr(s, '\0', len) != NULL) {
		parse_error(p, p->p_line, "NUL character in line");
		return buf;
	}
	if (p->p_line == 1 && len >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0) {
		s += 3;		/* UTF-8 byte order mark */
		len -= 3;
	}
	for (indented = 0; len > 0 && isspace((unsigned char)*s); len--, s++)
		indented = 1;
	while (len > 0 && isspace((unsigned char)s[len - 1]))
		len--;
	memcpy(buf, s, len);
	buf[len] = '\0';
	if (check_line(p, buf, indented) == -1)
		buf[0] = '\0';
	strcat(buf, "\n");
	return buf;
}

/* Give every key the file left out its default; report required ones. */
static void
apply_defaults(struct parse *p)
{
	const struct key	*k;
	size_t			 i;
	int			 line;

	set_defaults(p, keys, NKEYS, p->p_seen, p->p_conf);
	for (i = 0; i < NKEYS; i++) {
		k = &keys[i];
		if (!p->p_seen[i] && (k->k_flags & KEY_REQUIRED)) {
			line = p->p_section_line[i] ? p->p_section_line[i] :
			    p->p_line;
			parse_error(p, line > 0 ? line : 1, "no %s %s ([%s] %s "
			    "= %s)", k->k_section, k->k_name, k->k_section,
			    k->k_name, types[k->k_type].t_example);
		}
	}
}

/* Keys that make sense only together. */
static void
check_limits(struct parse *p)
{
	const struct shed_conf	*sc = &p->p_conf->limiter;

	if (p->p_nerr > 0)	/* a bad value was reported already */
		return;
	if (sc->algorithm == LIMITER_FIXED)	/* the limit is the limit */
		return;
	if (sc->min_limit > sc->max_limit || sc->limit < sc->min_limit ||
	    sc->limit > sc->max_limit)
		parse_error(p, p->p_line > 0 ? p->p_line : 1, "[limiter] "
		    "needs min_limit <= limit <= max_limit (now %u, %u, %u)",
		    sc->min_limit, sc->limit, sc->max_limit);
}

/* The line a key of keys[] was first given on, else a line to blame. */
static int
key_line(struct parse *p, const char *section, const char *name)
{
	const struct key	*k = key_find(keys, NKEYS, section, name);
	size_t			 i = (size_t)(k - keys);

	if (p->p_seen[i])
		return p->p_seen[i];
	if (p->p_section_line[i])
		return p->p_section_line[i];
	return p->p_line > 0 ? p->p_line : 1;
}

/*
 * Listeners: plain ones default to 127.0.0.1:8080 unless TLS ones are
 * given; no address may be both; a TLS listener needs a certificate, and
 * private keys, if given, pair up with the certificates.
 */
static void
check_listeners(struct parse *p)
{
	struct config		*conf = p->p_conf;
	const struct tls_conf	*tc = &conf->tls;
	const struct key	*k;
	size_t			 i, j;

	if (conf->proxy.nlisten == 0 && tc->nlisten == 0) {
		k = key_find(keys, NKEYS, "proxy", "listen");
		set_addrs(p, k, conf, "127.0.0.1:8080", 0);
	}
	for (i = 0; i < tc->nlisten; i++) {
		for (j = 0; j < conf->proxy.nlisten; j++) {
			if (addr_same(&tc->listen[i],
			    &conf->proxy.listen[j]))
				parse_error(p, tc->listen[i].line, "listen: %s "
				    "is also a plain listener (line %d)",
				    tc->listen[i].text,
				    conf->proxy.listen[j].line);
		}
	}
	if (tc->nlisten > 0 && tc->ncerts == 0)
		parse_error(p, key_line(p, "tls", "listen"), "[tls] listen "
		    "needs a certificate (certificate = %s)",
		    types[KT_STRINGS].t_example);
	if (tc->nkeys > 0 && tc->nkeys != tc->ncerts)
		parse_error(p, key_line(p, "tls", "private_key"), "private_key: "
		    "%zu given for %zu certificates (give one per certificate, "
		    "in order, or none when each certificate file holds its "
		    "key)", tc->nkeys, tc->ncerts);
}

/* Feed the text to inih through reader(), then fill in the defaults. */
static void
parse_lines(struct parse *p)
{
	int	 rc;

	rc = ini_parse_stream(reader, p, handler, p);
	if (rc > 0)		/* a line our reader let through: a bug */
		parse_error(p, rc, "syntax error");
	else if (rc < 0)
		parse_error(p, 0, "out of memory");
	class_end(p);
	apply_defaults(p);
	classes_end(p);
	check_limits(p);
	check_listeners(p);
}

static struct config *
parse(const char *name, const char *text, size_t len, int flags,
    char **errors)
{
	struct parse	 p;
	int		 rc;

	memset(&p, 0, sizeof(p));
	p.p_name = name;
	p.p_flags = flags;
	p.p_text = text;
	p.p_len = len;

	if (len > CONFIG_MAX_SIZE)
		parse_error(&p, 0, "too large (more than %d bytes)",
		    CONFIG_MAX_SIZE);
	else if ((p.p_conf = calloc(1, sizeof(*p.p_conf))) == NULL ||
	    (p.p_conf->path = strdup(name)) == NULL)
		parse_error(&p, 0, "out of memory");
	else
		parse_lines(&p);

	if (p.p_nerr == 0) {
		*errors = NULL;
		return p.p_conf;
	}
	if (p.p_nerr > CONFIG_MAX_ERRORS) {
		rc = p.p_nerr - CONFIG_MAX_ERRORS;
		p.p_nerr = 0;	/* let this one through */
		parse_error(&p, 0, "%d more error%s not shown", rc,
		    rc == 1 ? "" : "s");
	}
	config_free(p.p_conf);
	*errors = p.p_err;	/* NULL only if even that was out of memory */
	return NULL;
}

struct config *
config_parse_flags(const char *name, const char *text, int flags,
    char **errors)
{
	return parse(name, text, strlen(text), flags, errors);
}

struct config *
config_parse(const char *name, const char *text, char **errors)
{
	return parse(name, text, strlen(text), 0, errors);
}

/* Read a whole file, up to one byte more than CONFIG_MAX_SIZE. */
static char *
read_file(FILE *f, size_t *lenp)
{
	char	*buf = NULL, *nbuf;
	size_t	 len = 0, size = 0, n;

	do {
		if (len == size) {
			size = size ? size * 2 : 8192;
			if ((nbuf = realloc(buf, size)) == NULL)
				goto fail;
			buf = nbuf;
		}
		n = fread(buf + len, 1, size - len, f);
		len += n;
	} while (n > 0 && len <= CONFIG_MAX_SIZE);
	if (ferror(f))
		goto fail;
	*lenp = len;
	return buf;
fail:
	free(buf);
	return NULL;
}

struct config *
config_load(const char *path, char **errors)
{
	struct config	*conf;
	struct parse	 p;
	FILE		*f;
	char		*text;
	size_t		 len;

	memset(&p, 0, sizeof(p));
	p.p_name = path;
	if ((f = fopen(path, "r")) == NULL) {
		parse_error(&p, 0, "cannot open: %s", strerror(errno));
		goto fail;
	}
	errno = 0;
	text = read_file(f, &len);
	if (text == NULL)
		parse_error(&p, 0, "cannot read: %s",
		    strerror(errno ? errno : EIO));
	fclose(f);
	if (text == NULL)
		goto fail;
	conf = parse(path, text, len, 0, errors);
	free(text);
	return conf;
fail:
	*errors = p.p_err;
	return NULL;
}

/*
 * What mirrors the key table is made from it: freeing, and the JSON of
 * GET /status. A key added to the table is freed and shown with no other
 * change; test_config checks that /status shows every key.
 */
static const void *
cfield(const void *obj, size_t offset)
{
	return (const char *)obj + offset;
}

static uint64_t
load_uint(const void *src, size_t size)
{
	uint64_t	 v;
	uint32_t	 v32;

	if (size == sizeof(uint64_t)) {
		memcpy(&v, src, sizeof(v));
		return v;
	}
	memcpy(&v32, src, sizeof(v32));
	return v32;
}

/* Free what the keys of table allocated in obj. */
static void
keys_free(void *obj, const struct key *table, size_t n)
{
	const struct key	*k;
	struct config_addr	*addrs;
	struct config_str	*strs;
	char			**list;
	size_t			 i, j, count;

	for (i = 0; i < n; i++) {
		k = &table[i];
		switch (k->k_type) {
		case KT_ADDRS:
			addrs = *(struct config_addr **)field(obj, k->k_offset);
			count = *(size_t *)field(obj, k->k_aux);
			for (j = 0; j < count; j++)
				free(addrs[j].text);
			free(addrs);
			break;
		case KT_STRINGS:
			strs = *(struct config_str **)field(obj, k->k_offset);
			count = *(size_t *)field(obj, k->k_aux);
			for (j = 0; j < count; j++)
				free(strs[j].text);
			free(strs);
			break;
		case KT_PATHS:
		case KT_METHODS:
			list = *(char ***)field(obj, k->k_offset);
			count = *(size_t *)field(obj, k->k_aux);
			for (j = 0; j < count; j++)
				free(list[j]);
			free(list);
			break;
		case KT_STRING:
			free(((struct config_str *)field(obj,
			    k->k_offset))->text);
			break;
		case KT_LOGFILE:
			free(*(char **)field(obj, k->k_offset));
			break;
		case KT_HEADER:
			free(*(char **)field(obj, k->k_offset));
			/* FALLTHROUGH */
		case KT_CLIENT_KEY:
			free(*(char **)field(obj, k->k_aux));
			break;
		default:
			break;
		}
	}
}

void
config_free(struct config *conf)
{
	size_t	 i;

	if (conf == NULL)
		return;
	keys_free(conf, keys, NKEYS);
	for (i = 0; i < conf->nclasses; i++) {
		keys_free(&conf->classes[i], class_keys, NCLASS_KEYS);
		free(conf->classes[i].name);
	}
	free(conf->classes);
	free(conf->path);
	free(conf);
}

/* A key's name in the JSON: as in the file, with the unit it is in. */
static void
json_key(struct mbuf *mb, const struct key *k, int first)
{
	const char	*unit = k->k_type == KT_DURATION ? "_ms" :
			    k->k_type == KT_RATE ? "_per_minute" : "";

	mbuf_printf(mb, "%s\"%s%s\": ", first ? "" : ", ", k->k_name, unit);
}

static void
json_value(struct mbuf *mb, const struct key *k, const void *obj)
{
	const struct config_addr	*addrs;
	const struct config_str		*strs;
	char *const			*list;
	const char			*hname, *hvalue;
	size_t				 j, count;
	unsigned int			 bits;
	double				 d;
	int				 e;

	switch (k->k_type) {
	case KT_DURATION:
	case KT_SIZE:
	case KT_UINT:
	case KT_RATE:
		mbuf_printf(mb, "%llu", (unsigned long long)load_uint(
		    cfield(obj, k->k_offset), k->k_size));
		break;
	case KT_BOOL:
		memcpy(&e, cfield(obj, k->k_offset), sizeof(e));
		mbuf_printf(mb, "%s", e ? "true" : "false");
		break;
	case KT_RATIO:
		memcpy(&d, cfield(obj, k->k_offset), sizeof(d));
		mbuf_printf(mb, "%g", d);
		break;
	case KT_BALANCE:
	case KT_PRIORITY:
	case KT_ALGO:
		memcpy(&e, cfield(obj, k->k_offset), sizeof(e));
		mbuf_json_str(mb, k->k_type == KT_BALANCE ?
		    config_balance_name((enum balance)e) :
		    k->k_type == KT_PRIORITY ?
		    config_priority_name((enum priority)e) :
		    limiter_algo_name((enum limiter_algo)e));
		break;
	case KT_LOGFILE:
		hname = *(char *const *)cfield(obj, k->k_offset);
		mbuf_json_str(mb, hname != NULL ? hname : "off");
		break;
	case KT_STRING:
		mbuf_json_str(mb, ((const struct config_str *)cfield(obj,
		    k->k_offset))->text);
		break;
	case KT_CLIENT_KEY:
		memcpy(&e, cfield(obj, k->k_offset), sizeof(e));
		hname = *(char *const *)cfield(obj, k->k_aux);
		if (e != CLIENT_KEY_HEADER || hname == NULL) {
			mbuf_json_str(mb, "ip");
			break;
		}
		mbuf_printf(mb, "\"header:");
		mbuf_escaped(mb, hname, 1);
		mbuf_printf(mb, "\"");
		break;
	case KT_HEADER:
		hname = *(char *const *)cfield(obj, k->k_offset);
		hvalue = *(char *const *)cfield(obj, k->k_aux);
		if (hname == NULL || hvalue == NULL) {
			mbuf_json_str(mb, hname);
			break;
		}
		mbuf_printf(mb, "\"");
		mbuf_escaped(mb, hname, 1);
		mbuf_printf(mb, ": ");
		mbuf_escaped(mb, hvalue, 1);
		mbuf_printf(mb, "\"");
		break;
	case KT_ADDRS:
	case KT_STRINGS:
	case KT_PATHS:
	case KT_METHODS:
		count = *(const size_t *)cfield(obj, k->k_aux);
		addrs = *(struct config_addr *const *)cfield(obj, k->k_offset);
		strs = *(struct config_str *const *)cfield(obj, k->k_offset);
		list = *(char **const *)cfield(obj, k->k_offset);
		mbuf_printf(mb, "[");
		for (j = 0; j < count; j++) {
			mbuf_printf(mb, j ? ", " : "");
			mbuf_json_str(mb, k->k_type == KT_ADDRS ? addrs[j].text :
			    k->k_type == KT_STRINGS ? strs[j].text : list[j]);
		}
		mbuf_printf(mb, "]");
		break;
	case KT_PROTOCOLS:
		memcpy(&bits, cfield(obj, k->k_offset), sizeof(bits));
		mbuf_printf(mb, "[");
		for (j = 0, count = 0; j < NTLS_PROTO; j++)
			if (bits & (1U << j))
				mbuf_printf(mb, "%s\"%s\"", count++ ? ", " : "",
				    tls_proto_names[j]);
		mbuf_printf(mb, "]");
		break;
	}
}

/*
 * The configuration as one JSON object, for GET /status: "file", then one
 * object per section of the table with every key of it, then "classes".
 */
void
config_json(const struct config *conf, struct mbuf *mb)
{
	const char	*section = NULL;
	size_t		 i, c;

	mbuf_printf(mb, "{\"file\": ");
	mbuf_json_str(mb, conf->path);
	for (i = 0; i < NKEYS; i++) {
		if (section == NULL || strcmp(section, keys[i].k_section) != 0) {
			mbuf_printf(mb, "%s, \"%s\": {", section ? "}" : "",
			    keys[i].k_section);
			section = keys[i].k_section;
			json_key(mb, &keys[i], 1);
		} else
			json_key(mb, &keys[i], 0);
		json_value(mb, &keys[i], conf);
	}
	mbuf_printf(mb, "%s, \"classes\": [", section ? "}" : "");
	for (c = 0; c < conf->nclasses; c++) {
		mbuf_printf(mb, "%s{\"name\": ", c ? ", " : "");
		mbuf_json_str(mb, conf->classes[c].name);
		for (i = 0; i < NCLASS_KEYS; i++) {
			json_key(mb, &class_keys[i], 0);
			json_value(mb, &class_keys[i], &conf->classes[c]);
		}
		mbuf_printf(mb, "}");
	}
	mbuf_printf(mb, "]}");
}

/* The keys of the table, for the tests: section and name of key i. */
int
config_key(size_t i, const char **section, const char **name)
{
	const struct key	*k;

	if (i >= NKEYS + NCLASS_KEYS)
		return -1;
	k = i < NKEYS ? &keys[i] : &class_keys[i - NKEYS];
	*section = k->k_section;
	*name = k->k_name;
	return 0;
}

/* "TLSv1".."TLSv1.3" for bit i of tls_conf.protocols. */
const char *
config_tls_proto_name(unsigned int i)
{
	return i < NTLS_PROTO ? tls_proto_names[i] : "unknown";
}

const char *
config_balance_name(enum balance b)
{
	if ((size_t)b < NBALANCE)
		return balance_names[b];
	return "unknown";
}

void
config_where(const struct config *conf, int line, char *buf, size_t len)
{
	if (line > 0)
		snprintf(buf, len, "%s:%d:", conf->path, line);
	else
		snprintf(buf, len, "%s:", conf->path);
}

void
config_limiter_conf(const struct config *conf, struct limiter_conf *lc)
{
	const struct shed_conf	*sc = &conf->limiter;

	memset(lc, 0, sizeof(*lc));
	lc->algo = sc->algorithm;
	lc->limit = sc->limit;
	lc->min_limit = sc->min_limit;
	lc->max_limit = sc->max_limit;
	if (sc->algorithm == LIMITER_FIXED)
		lc->min_limit = lc->max_limit = sc->limit;
	lc->backoff = sc->backoff;
	lc->aimd_latency_usec = sc->aimd_latency_ms * 1000;
	lc->smoothing = sc->smoothing;
	lc->tolerance = sc->tolerance;
	lc->vegas_alpha = sc->vegas_alpha;
	lc->vegas_beta = sc->vegas_beta;
}

void
config_queue_conf(const struct config *conf, struct queue_conf *qc)
{
	const struct shed_conf	*sc = &conf->limiter;

	memset(qc, 0, sizeof(*qc));
	qc->size = sc->queue_size;
	qc->timeout_usec = sc->queue_timeout_ms * 1000;
	qc->codel_target_usec = sc->codel_target_ms * 1000;
	qc->codel_interval_usec = sc->codel_interval_ms * 1000;
	qc->adaptive_lifo = sc->adaptive_lifo;
}

const char *
config_priority_name(enum priority prio)
{
	if ((size_t)prio < NPRIORITY)
		return priority_names[prio];
	return "unknown";
}
