/*
 * config_keys.c: the key table. One entry describes every key: its
 * section, name, type, bounds, default (a string parsed by the same code
 * as a user's value, so a default is validated like anything else), where
 * it lands in struct config and whether it may repeat. Every key may
 * change on a reload: the runtime applies the whole new configuration.
 *
 * [class NAME] sections repeat, so their keys have a table of their own,
 * config_class_keys[], whose offsets are into struct class_conf.
 *
 * What mirrors the table is made from it: config_free() and
 * config_json() (GET /status; test_config checks that every key shows).
 *
 * Pure: no libevent, no global state, no clock.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config_keys.h"
#include "limiter.h"
#include "mbuf.h"

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

#define RATE_MAX	10000000	/* requests per second, or a burst */
#define RATE_MAX_MIN	(RATE_MAX * 60ULL)	/* in requests per minute */
#define LIMIT_MAX	100000	/* concurrency limits and queue size */
#define CLASS_MAX	1000		/* [class NAME] sections */
#define CLASS_NAME_MAX	32
#define WORKERS_MAX	1024		/* event loop threads */

const struct key config_keys[CONFIG_NKEYS] = {
	/* section, name, type, min, max, default, field, flags */
	/* no default here: 127.0.0.1:8080 unless [tls] listen is given */
	{ "proxy", "listen", KT_ADDRS, 1, 64, NULL,
	    LIST(proxy.listen, proxy.nlisten),
	    KEY_REPEAT | KEY_PASSIVE | KEY_UNIQUE | KEY_LISTENER },
	{ "proxy", "max_connections", KT_UINT, 1, 1000000, "4096",
	    FIELD(proxy.max_connections), 0 },
	{ "proxy", "workers", KT_UINT, 1, WORKERS_MAX, "1",
	    FIELD(proxy.workers), KEY_AUTO },
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
	{ "proxy", "access_log_format", KT_LOGFORMAT, 0, 0, "spillway",
	    FIELD(proxy.access_log_format), 0 },
	{ "proxy", "access_log_facility", KT_FACILITY, 0, 0, "local7",
	    FIELD(proxy.access_log_facility), 0 },
	{ "proxy", "trusted_proxies", KT_CIDRS, 0, 1000, NULL,
	    LIST(proxy.trusted_proxies, proxy.ntrusted_proxies), KEY_REPEAT },
	{ "proxy", "forwarded_header", KT_FWD_HEADER, 0, 0, "x-forwarded-for",
	    FIELD(proxy.forwarded_header), 0 },

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
	{ "backend", "max_fails", KT_UINT, 0, 1000, "3",
	    FIELD(backend.health.max_fails), 0 },
	{ "backend", "fail_timeout", KT_DURATION, 1, MS_1H, "10s",
	    FIELD(backend.health.fail_timeout_ms), 0 },
	{ "backend", "max_ejection_time", KT_DURATION, 1, MS_1D, "5m",
	    FIELD(backend.health.max_ejection_time_ms), 0 },
	{ "backend", "max_ejection_percent", KT_UINT, 0, 100, "50",
	    FIELD(backend.health.max_ejection_percent), 0 },
	{ "backend", "slowstart", KT_DURATION, 0, MS_1H, "0",
	    FIELD(backend.health.slowstart_ms), 0 },
	{ "backend", "health_check", KT_STRING, 0, 0, NULL,
	    FIELD(backend.health_check), 0 },
	{ "backend", "check_interval", KT_DURATION, 10, MS_1H, "2s",
	    FIELD(backend.check_interval_ms), 0 },
	{ "backend", "check_timeout", KT_DURATION, 1, MS_1H, "1s",
	    FIELD(backend.check_timeout_ms), 0 },
	{ "backend", "check_status", KT_UINT, 0, 599, "0",
	    FIELD(backend.check_status), 0 },
	{ "backend", "check_rise", KT_UINT, 1, 1000, "2",
	    FIELD(backend.health.check_rise), 0 },
	{ "backend", "check_fall", KT_UINT, 1, 1000, "3",
	    FIELD(backend.health.check_fall), 0 },
	{ "backend", "retry_budget", KT_RATIO, 0, 1000, "0.2",
	    FIELD(backend.retry_budget), 0 },
	{ "backend", "retry_min_per_second", KT_UINT, 0, 10000, "3",
	    FIELD(backend.retry_min_per_second), 0 },

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

	{ "cluster", "redis", KT_ADDRS, 0, 1, NULL,
	    LIST(cluster.redis, cluster.nredis), 0 },
	{ "cluster", "password", KT_STRING, 0, 0, NULL,
	    FIELD(cluster.password), 0 },
	{ "cluster", "prefix", KT_STRING, 0, 0, "spillway:",
	    FIELD(cluster.prefix), 0 },
	{ "cluster", "timeout", KT_DURATION, 1, 10 * MS_1S, "50ms",
	    FIELD(cluster.timeout_ms), 0 },
	{ "cluster", "heartbeat", KT_DURATION, 100, MS_1H, "1s",
	    FIELD(cluster.heartbeat_ms), 0 },
	{ "cluster", "instances", KT_UINT, 1, 10000, "1",
	    FIELD(cluster.instances), 0 },

	{ "admin", "listen", KT_ADDRS, 0, 1, NULL,
	    LIST(admin.listen, admin.nlisten),
	    KEY_PASSIVE | KEY_LOOPBACK },
	{ "admin", "max_connections", KT_UINT, 1, 10000, "64",
	    FIELD(admin.max_connections), 0 },

	{ "tls", "listen", KT_ADDRS, 0, 64, NULL,
	    LIST(tls.listen, tls.nlisten),
	    KEY_REPEAT | KEY_PASSIVE | KEY_UNIQUE | KEY_LISTENER },
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
	{ "limiter", "queue_size", KT_UINT, 0, LIMIT_MAX, "1000",
	    FIELD(limiter.queue_size), 0 },
	{ "limiter", "latency_budget", KT_DURATION, 1, MS_1H, "500ms",
	    FIELD(limiter.latency_budget_ms), 0 },
	{ "limiter", "queue_timeout", KT_DURATION, 1, MS_1H, "auto",
	    FIELD(limiter.queue_timeout_ms), KEY_AUTO },
	{ "limiter", "codel_target", KT_DURATION, 0, MS_1H, "auto",
	    FIELD(limiter.codel_target_ms), KEY_AUTO },
	{ "limiter", "codel_interval", KT_DURATION, 0, MS_1H, "100ms",
	    FIELD(limiter.codel_interval_ms), 0 },
	{ "limiter", "adaptive_lifo", KT_BOOL, 0, 0, "yes",
	    FIELD(limiter.adaptive_lifo), 0 },
	{ "limiter", "dry_run", KT_BOOL, 0, 0, "no",
	    FIELD(limiter.dry_run), 0 },
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

/* The keys of a [class NAME] section; offsets into struct class_conf. */
const struct key config_class_keys[CONFIG_NCLASS_KEYS] = {
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
	/* fault injection: refused unless a listener says fault_injection */
	{ "class", "fault_delay", KT_DURATION, 0, MS_1H, "0",
	    CFIELD(fault.delay_ms), KEY_FAULT },
	{ "class", "fault_delay_percent", KT_RATIO, 0, 100000, "0",
	    CFIELD(fault.delay_percent), KEY_FAULT },
	{ "class", "fault_abort", KT_UINT, 400, 599, "503",
	    CFIELD(fault.abort_status), KEY_FAULT },
	{ "class", "fault_abort_percent", KT_RATIO, 0, 100000, "0",
	    CFIELD(fault.abort_percent), KEY_FAULT },
};

_Static_assert(sizeof(config_keys) / sizeof(config_keys[0]) == CONFIG_NKEYS,
    "CONFIG_NKEYS");
_Static_assert(sizeof(config_class_keys) / sizeof(config_class_keys[0]) ==
    CONFIG_NCLASS_KEYS, "CONFIG_NCLASS_KEYS");

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
			addrs = *(struct config_addr **)key_field(obj, k->k_offset);
			count = *(size_t *)key_field(obj, k->k_aux);
			for (j = 0; j < count; j++)
				free(addrs[j].text);
			free(addrs);
			break;
		case KT_CIDRS:
			free(*(struct realip_cidr **)key_field(obj,
			    k->k_offset));
			break;
		case KT_STRINGS:
			strs = *(struct config_str **)key_field(obj, k->k_offset);
			count = *(size_t *)key_field(obj, k->k_aux);
			for (j = 0; j < count; j++)
				free(strs[j].text);
			free(strs);
			break;
		case KT_PATHS:
		case KT_METHODS:
			list = *(char ***)key_field(obj, k->k_offset);
			count = *(size_t *)key_field(obj, k->k_aux);
			for (j = 0; j < count; j++)
				free(list[j]);
			free(list);
			break;
		case KT_STRING:
			free(((struct config_str *)key_field(obj,
			    k->k_offset))->text);
			break;
		case KT_LOGFILE:
			free(*(char **)key_field(obj, k->k_offset));
			break;
		case KT_HEADER:
			free(*(char **)key_field(obj, k->k_offset));
			/* FALLTHROUGH */
		case KT_CLIENT_KEY:
			free(*(char **)key_field(obj, k->k_aux));
			break;
		default:
			break;
		}
	}
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
	const struct realip_cidr	*cidrs;
	char *const			*list;
	const char			*hname, *hvalue;
	size_t				 j, count;
	unsigned int			 bits;
	uint64_t			 v;
	double				 d;
	int				 e;

	switch (k->k_type) {
	case KT_DURATION:
	case KT_SIZE:
	case KT_UINT:
	case KT_RATE:
		v = load_uint(cfield(obj, k->k_offset), k->k_size);
		if ((k->k_flags & KEY_AUTO) && v == CONFIG_AUTO)
			mbuf_printf(mb, "\"auto\"");
		else
			mbuf_printf(mb, "%llu", (unsigned long long)v);
		break;
	case KT_BOOL:
		memcpy(&e, cfield(obj, k->k_offset), sizeof(e));
		mbuf_printf(mb, "%s", e ? "true" : "false");
		break;
	case KT_RATIO:
		memcpy(&d, cfield(obj, k->k_offset), sizeof(d));
		mbuf_printf(mb, "%g", d);
		break;
	case KT_LOGFORMAT:
		memcpy(&e, cfield(obj, k->k_offset), sizeof(e));
		mbuf_json_str(mb, config_log_format_name((enum log_format)e));
		break;
	case KT_FACILITY:
		memcpy(&e, cfield(obj, k->k_offset), sizeof(e));
		mbuf_json_str(mb, config_facility_name(e));
		break;
	case KT_FWD_HEADER:
		memcpy(&e, cfield(obj, k->k_offset), sizeof(e));
		mbuf_json_str(mb,
		    config_forwarded_header_name((enum realip_header)e));
		break;
	case KT_CIDRS:
		count = *(const size_t *)cfield(obj, k->k_aux);
		cidrs = *(struct realip_cidr *const *)cfield(obj, k->k_offset);
		mbuf_printf(mb, "[");
		for (j = 0; j < count; j++) {
			mbuf_printf(mb, j ? ", " : "");
			mbuf_json_str(mb, cidrs[j].rc_text);
		}
		mbuf_printf(mb, "]");
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
		for (j = 0, count = 0; j < 32; j++)
			if (bits & (1U << j))
				mbuf_printf(mb, "%s\"%s\"", count++ ? ", " : "",
				    config_tls_proto_name((unsigned int)j));
		mbuf_printf(mb, "]");
		break;
	}
}

void
config_free(struct config *conf)
{
	size_t	 i;

	if (conf == NULL)
		return;
	keys_free(conf, config_keys, CONFIG_NKEYS);
	for (i = 0; i < conf->nclasses; i++) {
		keys_free(&conf->classes[i], config_class_keys, CONFIG_NCLASS_KEYS);
		free(conf->classes[i].name);
	}
	free(conf->classes);
	free(conf->path);
	free(conf);
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
	for (i = 0; i < CONFIG_NKEYS; i++) {
		if (section == NULL || strcmp(section, config_keys[i].k_section) != 0) {
			mbuf_printf(mb, "%s, \"%s\": {", section ? "}" : "",
			    config_keys[i].k_section);
			section = config_keys[i].k_section;
			json_key(mb, &config_keys[i], 1);
		} else
			json_key(mb, &config_keys[i], 0);
		json_value(mb, &config_keys[i], conf);
	}
	mbuf_printf(mb, "%s, \"classes\": [", section ? "}" : "");
	for (c = 0; c < conf->nclasses; c++) {
		mbuf_printf(mb, "%s{\"name\": ", c ? ", " : "");
		mbuf_json_str(mb, conf->classes[c].name);
		for (i = 0; i < CONFIG_NCLASS_KEYS; i++) {
			json_key(mb, &config_class_keys[i], 0);
			json_value(mb, &config_class_keys[i], &conf->classes[c]);
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

	if (i >= CONFIG_NKEYS + CONFIG_NCLASS_KEYS)
		return -1;
	k = i < CONFIG_NKEYS ? &config_keys[i] : &config_class_keys[i - CONFIG_NKEYS];
	*section = k->k_section;
	*name = k->k_name;
	return 0;
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
	qc->budget_usec = sc->latency_budget_ms * 1000;
	/* auto: the queue derives the longest wait from the budget */
	qc->timeout_usec = sc->queue_timeout_ms == CONFIG_AUTO ? 0 :
	    sc->queue_timeout_ms * 1000;
	/* auto: a tenth of the budget, the wait a growing queue allows */
	qc->target_usec = sc->codel_target_ms == CONFIG_AUTO ?
	    qc->budget_usec / 10 : sc->codel_target_ms * 1000;
	qc->interval_usec = sc->codel_interval_ms * 1000;
	qc->adaptive_lifo = sc->adaptive_lifo;
}
