/*
 * config_keys.h: the key table's own types, shared by the four files of
 * the configuration loader (config.c: the file and its sections;
 * config_keys.c: the table and what mirrors it; config_value.c: each
 * type's values; config_list.c: the lists and values with parts). Not for
 * other modules: they see config.h.
 */
#ifndef SPILLWAY_CONFIG_KEYS_H
#define SPILLWAY_CONFIG_KEYS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "config.h"

#define CONFIG_STR_MAX		4096		/* a path or a cipher list */

/* Units of durations (in ms) and sizes. */
#define MS_1S		1000ULL
#define MS_1H		(3600 * MS_1S)
#define MS_1D		(24 * MS_1H)
#define KIB		1024ULL
#define MIB		(1024 * KIB)
#define GIB		(1024 * MIB)

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
	KT_LOGFORMAT,	/* enum log_format */
	KT_FACILITY,	/* int: index of a syslog facility name */
	KT_CIDRS,	/* array of struct realip_cidr and its count */
	KT_FWD_HEADER,	/* enum realip_header */
};

/* Every key may change on a reload: the runtime re-applies them all. */
#define KEY_REPEAT	0x01	/* may be given more than once */
#define KEY_REQUIRED	0x04	/* no default: the file must give it */
#define KEY_PASSIVE	0x08	/* address to listen on, not to connect to */
#define KEY_UNIQUE	0x10	/* the same address may not appear twice */
#define KEY_LOOPBACK	0x40	/* an address without host is 127.0.0.1 */
#define KEY_CRITERION	0x20	/* a class matches on it */
#define KEY_AUTO	0x80	/* "auto" stores CONFIG_AUTO */
#define KEY_LISTENER	0x100	/* a listener: may add proxy_protocol,
					   fault_injection */
#define KEY_FAULT	0x200	/* a fault injection key (class_end) */
#define KEY_SERVER	0x400	/* a backend server: may add maxconn=N */
#define SERVER_MAXCONN_MAX	100000	/* a limiter's largest limit */

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

/* The tables (config_keys.c); their sizes are checked there. */
#define CONFIG_NKEYS		79
#define CONFIG_NCLASS_KEYS	10
extern const struct key	 config_keys[CONFIG_NKEYS];
extern const struct key	 config_class_keys[CONFIG_NCLASS_KEYS];

/* The state of one parse (config.c). */
struct parse;

/*
 * Append "NAME:LINE: message" to the parse's errors (line 0: "NAME:
 * message"); the parse goes on.
 */
void		 config_error(struct parse *, int line, const char *fmt, ...)
		    __attribute__((format(printf, 3, 4)));
/* CONFIG_NUMERIC_HOSTS was given: no resolver. */
int		 config_numeric_hosts(const struct parse *);

/*
 * What each type is called in messages, how to write it, who parses it.
 * A setter parses value, given on line (0: a default), into the fields of
 * obj that k names. It returns 0, or -1 having reported the problem.
 */
struct key_type_info {
	const char	*t_name;
	const char	*t_form;
	const char	*t_example;
	int		(*t_set)(struct parse *, const struct key *, void *,
			    const char *, int);
};
extern const struct key_type_info config_types[];

/* The field of obj at offset (a key's k_offset or k_aux). */
static inline void *
key_field(void *obj, size_t offset)
{
	return (char *)obj + offset;
}

/* Store v into an unsigned field of 4 or 8 bytes; the bounds make it fit. */
static inline void
store_uint(void *dst, size_t size, uint64_t v)
{
	uint32_t	 v32 = (uint32_t)v;

	if (size == sizeof(uint64_t))
		memcpy(dst, &v, sizeof(v));
	else
		memcpy(dst, &v32, sizeof(v32));
}

/* config_list.c: the setters of the list and structured types */
int		 config_set_addrs(struct parse *, const struct key *, void *,
		    const char *, int);
int		 config_set_cidrs(struct parse *, const struct key *, void *,
		    const char *, int);
int		 config_set_client_key(struct parse *, const struct key *, void *,
		    const char *, int);
int		 config_set_paths(struct parse *, const struct key *, void *,
		    const char *, int);
int		 config_set_methods(struct parse *, const struct key *, void *,
		    const char *, int);
int		 config_set_header(struct parse *, const struct key *, void *,
		    const char *, int);

#endif /* SPILLWAY_CONFIG_KEYS_H */
