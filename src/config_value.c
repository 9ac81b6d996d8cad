/*
 * config_value.c: the values of the configuration's keys, one type at a
 * time: parse and store (the setters; those of lists and values with
 * parts are config_list.c's), write as JSON for /status, free.
 * Durations, sizes and rates are parsed here for the tests too.
 *
 * Pure: no libevent, no global state, no clock. getaddrinfo() may look up
 * host names unless CONFIG_NUMERIC_HOSTS is given.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L	/* strdup under -std=c11 */
#endif

#include <sys/types.h>
#include <sys/socket.h>

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config_keys.h"
#include "mbuf.h"

static const char *const balance_names[] = {
	[BALANCE_ROUNDROBIN] = "roundrobin",
	[BALANCE_LEASTCONN] = "leastconn",
};
#define NBALANCE (sizeof(balance_names) / sizeof(balance_names[0]))

static const char *const log_format_names[] = {
	[LOG_FORMAT_SPILLWAY] = "spillway",
	[LOG_FORMAT_COMBINED] = "combined",
	[LOG_FORMAT_JSON] = "json",
};
#define NLOGFORMAT (sizeof(log_format_names) / sizeof(log_format_names[0]))

/* log.c maps these, by index, to syslog.h's LOG_USER, LOG_DAEMON, ... */
static const char *const facility_names[] = {
	"user", "daemon", "local0", "local1", "local2", "local3", "local4",
	"local5", "local6", "local7",
};
#define NFACILITY (sizeof(facility_names) / sizeof(facility_names[0]))

/* sizeof(((struct sockaddr_un *)0)->sun_path) on Linux and the BSDs */
#define SYSLOG_PATH_MAX	104

/* The algorithms in value order (set_enum() stores the index). */
static const enum limiter_algo algos[] = {
	LIMITER_FIXED, LIMITER_AIMD, LIMITER_VEGAS, LIMITER_GRADIENT,
};
#define NALGO (sizeof(algos) / sizeof(algos[0]))

static const char *const priority_names[] = {
	[PRIO_CRITICAL] = "critical",
	[PRIO_NORMAL] = "normal",
	[PRIO_SHEDDABLE] = "sheddable",
};
#define NPRIORITY (sizeof(priority_names) / sizeof(priority_names[0]))

static const char *const fwd_header_names[] = {
	[REALIP_XFF] = "x-forwarded-for",
	[REALIP_FORWARDED] = "forwarded",
};
#define NFWD_HEADER (sizeof(fwd_header_names) / sizeof(fwd_header_names[0]))

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
static int	set_algo(struct parse *, const struct key *, void *,
		    const char *, int);
static int	set_ratio(struct parse *, const struct key *, void *,
		    const char *, int);
static int	set_bool(struct parse *, const struct key *, void *,
		    const char *, int);
static int	set_priority(struct parse *, const struct key *, void *,
		    const char *, int);
static int	set_string(struct parse *, const struct key *, void *,
		    const char *, int);
static int	set_strings(struct parse *, const struct key *, void *,
		    const char *, int);
static int	set_protocols(struct parse *, const struct key *, void *,
		    const char *, int);
static int	set_log_format(struct parse *, const struct key *, void *,
		    const char *, int);
static int	set_facility(struct parse *, const struct key *, void *,
		    const char *, int);
static int	set_fwd_header(struct parse *, const struct key *, void *,
		    const char *, int);

/* What each type is called in messages, how to write it, who parses it. */
const struct key_type_info config_types[] = {
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
	    config_set_addrs },
	[KT_BOOL] = { "boolean", "use yes or no", "no", set_bool },
	[KT_CLIENT_KEY] = { "client key", "use ip or header:NAME", "ip",
	    config_set_client_key },
	[KT_PATHS] = { "path", "use a path prefix, e.g. /api/", "/api/",
	    config_set_paths },
	[KT_METHODS] = { "method", "use methods, e.g. GET, HEAD", "GET",
	    config_set_methods },
	[KT_HEADER] = { "header", "use Name or Name: value", "X-Name: value",
	    config_set_header },
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
	[KT_LOGFORMAT] = { "log format", "use spillway, combined or json",
	    "combined", set_log_format },
	[KT_FACILITY] = { "syslog facility", "use user, daemon or local0 to "
	    "local7", "local7", set_facility },
	[KT_CIDRS] = { "networks", "use addresses or CIDR networks, e.g. "
	    "10.0.0.0/8 2001:db8::/32", "10.0.0.0/8", config_set_cidrs },
	[KT_FWD_HEADER] = { "header", "use x-forwarded-for or forwarded",
	    "x-forwarded-for", set_fwd_header },
};

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

	if ((k->k_flags & KEY_AUTO) && strcmp(value, "auto") == 0) {
		store_uint(key_field(obj, k->k_offset), k->k_size, CONFIG_AUTO);
		return 0;
	}
	if (k->k_type == KT_DURATION)
		rc = config_parse_duration(value, &v);
	else if (k->k_type == KT_SIZE)
		rc = config_parse_size(value, &v);
	else if (k->k_type == KT_RATE)
		rc = config_parse_rate(value, &v);
	else
		rc = parse_uint(value, &v);
	if (rc == -1) {
		config_error(p, line, "%s: invalid %s '%s' (%s%s)", k->k_name,
		    config_types[k->k_type].t_name, value,
		    (k->k_flags & KEY_AUTO) ? "auto, or " : "",
		    config_types[k->k_type].t_form);
		return -1;
	}
	if (v < k->k_min || v > k->k_max) {
		format_value(k->k_type, k->k_min, lo, sizeof(lo));
		format_value(k->k_type, k->k_max, hi, sizeof(hi));
		config_error(p, line, "%s: %s is out of range (%s to %s)",
		    k->k_name, value, lo, hi);
		return -1;
	}
	store_uint(key_field(obj, k->k_offset), k->k_size, v);
	return 0;
}

/* "off" is no log, "-" or "stderr" is standard error, else a path. */
static int
set_logfile(struct parse *p, const struct key *k, void *obj,
    const char *value, int line)
{
	char	**dst = key_field(obj, k->k_offset);
	char	 *s = NULL;

	if (strncmp(value, "syslog:", 7) == 0 && (value[7] != '/' ||
	    strlen(value + 7) >= SYSLOG_PATH_MAX)) {
		config_error(p, line, "%s: invalid value '%s' (use syslog:PATH "
		    "with the absolute path of a Unix datagram socket, at most "
		    "%d bytes)", k->k_name, value, SYSLOG_PATH_MAX - 1);
		return -1;
	}
	if (strcmp(value, "off") != 0) {
		if (strcmp(value, "stderr") == 0)
			value = "-";
		if ((s = strdup(value)) == NULL) {
			config_error(p, line, "%s: out of memory", k->k_name);
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
			store_uint(key_field(obj, k->k_offset), k->k_size, i);
			return 0;
		}
	}
	config_error(p, line, "%s: invalid value '%s' (%s)", k->k_name, value,
	    config_types[k->k_type].t_form);
	return -1;
}

static int
set_balance(struct parse *p, const struct key *k, void *obj,
    const char *value, int line)
{
	return set_enum(p, k, obj, value, line, balance_names, NBALANCE);
}

static int
set_log_format(struct parse *p, const struct key *k, void *obj,
    const char *value, int line)
{
	return set_enum(p, k, obj, value, line, log_format_names, NLOGFORMAT);
}

static int
set_facility(struct parse *p, const struct key *k, void *obj,
    const char *value, int line)
{
	return set_enum(p, k, obj, value, line, facility_names, NFACILITY);
}

static int
set_fwd_header(struct parse *p, const struct key *k, void *obj,
    const char *value, int line)
{
	return set_enum(p, k, obj, value, line, fwd_header_names,
	    NFWD_HEADER);
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
	const char	*names[NALGO];
	size_t		 i;

	for (i = 0; i < NALGO; i++)
		names[i] = limiter_algo_name(algos[i]);
	return set_enum(p, k, obj, value, line, names, NALGO);
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
		config_error(p, line, "%s: %s is out of range (%g to %g)",
		    k->k_name, value, k->k_min / 1000.0, k->k_max / 1000.0);
		return -1;
	}
	v = milli / 1000.0;
	memcpy(key_field(obj, k->k_offset), &v, sizeof(v));
	return 0;
 bad:
	config_error(p, line, "%s: invalid %s '%s' (%s)", k->k_name,
	    config_types[k->k_type].t_name, value, config_types[k->k_type].t_form);
	return -1;
}

/* yes/no, on/off, true/false, 1/0, in any case. */
static int
set_bool(struct parse *p, const struct key *k, void *obj, const char *value,
    int line)
{
	static const char *const yes[] = { "yes", "on", "true", "1" };
	static const char *const no[] = { "no", "off", "false", "0" };
	int	*dst = key_field(obj, k->k_offset);
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
	config_error(p, line, "%s: invalid value '%s' (%s)", k->k_name, value,
	    config_types[k->k_type].t_form);
	return -1;
}

/* Text kept as written, with its line, in one struct config_str. */
static int
store_string(struct parse *p, const struct key *k, struct config_str *dst,
    const char *value, int line)
{
	char	*s;

	if (strlen(value) > CONFIG_STR_MAX) {
		config_error(p, line, "%s: too long (at most %d bytes)",
		    k->k_name, CONFIG_STR_MAX);
		return -1;
	}
	if ((s = strdup(value)) == NULL) {
		config_error(p, line, "%s: out of memory", k->k_name);
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
	return store_string(p, k, key_field(obj, k->k_offset), value, line);
}

/* Append one string to a list key. */
static int
set_strings(struct parse *p, const struct key *k, void *obj,
    const char *value, int line)
{
	struct config_str	**list = key_field(obj, k->k_offset), *nlist, one;
	size_t			 *n = key_field(obj, k->k_aux);

	if (*n >= k->k_max) {
		config_error(p, line, "%s: too many (at most %llu)", k->k_name,
		    (unsigned long long)k->k_max);
		return -1;
	}
	memset(&one, 0, sizeof(one));
	if (store_string(p, k, &one, value, line) == -1)
		return -1;
	if ((nlist = realloc(*list, (*n + 1) * sizeof(**list))) == NULL) {
		free(one.text);
		config_error(p, line, "%s: out of memory", k->k_name);
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
			config_error(p, line, "%s: unknown protocol '%.*s' (%s)",
			    k->k_name, (int)len, c, config_types[k->k_type].t_form);
			return -1;
		}
		bits |= 1U << i;
		c += len;
	}
	low = bits & -bits;
	if (bits == 0 || ((bits + low) & bits) != 0) {
		config_error(p, line, "%s: '%s' is not a range of versions "
		    "without a gap (%s)", k->k_name, value,
		    config_types[k->k_type].t_form);
		return -1;
	}
	store_uint(key_field(obj, k->k_offset), k->k_size, bits);
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

const char *
config_log_format_name(enum log_format f)
{
	if ((size_t)f < NLOGFORMAT)
		return log_format_names[f];
	return "unknown";
}

const char *
config_facility_name(int i)
{
	if (i >= 0 && (size_t)i < NFACILITY)
		return facility_names[i];
	return "unknown";
}

const char *
config_forwarded_header_name(enum realip_header h)
{
	if ((size_t)h < NFWD_HEADER)
		return fwd_header_names[h];
	return "unknown";
}

const char *
config_priority_name(enum priority prio)
{
	if ((size_t)prio < NPRIORITY)
		return priority_names[prio];
	return "unknown";
}

