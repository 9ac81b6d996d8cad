/*
 * config_list.c: the values that are lists or have parts: addresses (with
 * a listener's and a server's words after them), networks, path prefixes,
 * methods, a class's header, the client key. The setters config_value.c's
 * type table points at (config_keys.h); pure, as config_value.c.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L	/* strdup, strndup under -std=c11 */
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

/* Networks split by blanks or commas; the key repeats and adds up. */
int
config_set_cidrs(struct parse *p, const struct key *k, void *obj,
    const char *value, int line)
{
	struct realip_cidr	**list = key_field(obj, k->k_offset), *nlist;
	size_t			 *n = key_field(obj, k->k_aux), len;
	const char		 *c = value;
	char			  one[128], err[256];
	int			  any = 0;

	for (;;) {
		c += strspn(c, " \t,");
		if ((len = strcspn(c, " \t,")) == 0)
			break;
		any = 1;
		if (*n >= k->k_max) {
			config_error(p, line, "%s: too many networks (at most "
			    "%llu)", k->k_name, (unsigned long long)k->k_max);
			return -1;
		}
		snprintf(one, sizeof(one), "%.*s", (int)len, c);
		if ((nlist = realloc(*list, (*n + 1) * sizeof(**list))) ==
		    NULL) {
			config_error(p, line, "%s: out of memory", k->k_name);
			return -1;
		}
		*list = nlist;
		if (len >= sizeof(one) || realip_cidr_parse(one, &nlist[*n],
		    err, sizeof(err)) == -1) {
			config_error(p, line, "%s: %s", k->k_name,
			    len >= sizeof(one) ? "a network too long" : err);
			return -1;
		}
		(*n)++;
		c += len;
	}
	if (!any) {
		config_error(p, line, "%s: no network given (%s)", k->k_name,
		    config_types[k->k_type].t_form);
		return -1;
	}
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
int
config_set_client_key(struct parse *p, const struct key *k, void *obj,
    const char *value, int line)
{
	char			**header = key_field(obj, k->k_aux);
	const char		 *name;
	char			 *s = NULL;
	enum client_key_kind	  kind = CLIENT_KEY_IP;

	if (strncmp(value, "header:", 7) == 0) {
		for (name = value + 7; *name == ' ' || *name == '\t'; name++)
			;
		if (!is_token(name, strlen(name))) {
			config_error(p, line, "%s: invalid header name in '%s' "
			    "(%s)", k->k_name, value, config_types[k->k_type].t_form);
			return -1;
		}
		if ((s = strdup(name)) == NULL) {
			config_error(p, line, "%s: out of memory", k->k_name);
			return -1;
		}
		kind = CLIENT_KEY_HEADER;
	} else if (strcmp(value, "ip") != 0) {
		config_error(p, line, "%s: invalid value '%s' (%s)", k->k_name,
		    value, config_types[k->k_type].t_form);
		return -1;
	}
	store_uint(key_field(obj, k->k_offset), k->k_size, kind);
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
int
config_set_paths(struct parse *p, const struct key *k, void *obj,
    const char *value, int line)
{
	char		***list = key_field(obj, k->k_offset);
	size_t		  *n = key_field(obj, k->k_aux);
	const char	  *c;

	if (*n >= k->k_max) {
		config_error(p, line, "%s: too many (at most %llu)", k->k_name,
		    (unsigned long long)k->k_max);
		return -1;
	}
	if (value[0] != '/') {
		config_error(p, line, "%s: '%s' does not start with '/' (%s)",
		    k->k_name, value, config_types[k->k_type].t_form);
		return -1;
	}
	for (c = value; *c != '\0'; c++) {
		if ((unsigned char)*c <= ' ' || *c == 0x7f) {
			config_error(p, line, "%s: blank or control character "
			    "in '%s'", k->k_name, value);
			return -1;
		}
		if (*c == '?' || *c == '#') {
			config_error(p, line, "%s: '%c' in '%s' (a path prefix "
			    "never matches the query string)", k->k_name, *c,
			    value);
			return -1;
		}
	}
	if (strlist_append(list, n, value, strlen(value)) == -1) {
		config_error(p, line, "%s: out of memory", k->k_name);
		return -1;
	}
	return 0;
}

/*
 * Methods, separated by commas and/or blanks ("GET, HEAD"), each a token
 * of its own in the list. All are checked before any is added.
 */
int
config_set_methods(struct parse *p, const struct key *k, void *obj,
    const char *value, int line)
{
	static const char	  sep[] = ", \t";
	char			***list = key_field(obj, k->k_offset);
	size_t			  *n = key_field(obj, k->k_aux), len, count = 0;
	const char		  *c;

	for (c = value + strspn(value, sep); *c != '\0';
	    c += len, c += strspn(c, sep)) {
		len = strcspn(c, sep);
		if (!is_token(c, len)) {
			config_error(p, line, "%s: invalid method '%.*s' (%s)",
			    k->k_name, (int)len, c, config_types[k->k_type].t_form);
			return -1;
		}
		count++;
	}
	if (count == 0) {
		config_error(p, line, "%s: no method in '%s' (%s)", k->k_name,
		    value, config_types[k->k_type].t_form);
		return -1;
	}
	if (*n + count > k->k_max) {
		config_error(p, line, "%s: too many (at most %llu)", k->k_name,
		    (unsigned long long)k->k_max);
		return -1;
	}
	for (c = value + strspn(value, sep); *c != '\0';
	    c += len, c += strspn(c, sep)) {
		len = strcspn(c, sep);
		if (strlist_append(list, n, c, len) == -1) {
			config_error(p, line, "%s: out of memory", k->k_name);
			return -1;
		}
	}
	return 0;
}

/*
 * "Name: value", an exact value (blanks around it dropped, inner ones
 * kept), or "Name" alone: the header is present, whatever its value.
 */
int
config_set_header(struct parse *p, const struct key *k, void *obj,
    const char *value, int line)
{
	char		**name = key_field(obj, k->k_offset);
	char		**hvalue = key_field(obj, k->k_aux);
	const char	 *colon, *v = NULL, *c;
	char		 *ns = NULL, *vs = NULL;
	size_t		  namelen;

	colon = strchr(value, ':');
	namelen = colon != NULL ? (size_t)(colon - value) : strlen(value);
	if (!is_token(value, namelen)) {
		config_error(p, line, "%s: invalid header name in '%s' (%s)",
		    k->k_name, value, config_types[k->k_type].t_form);
		return -1;
	}
	if (colon != NULL) {
		for (v = colon + 1; *v == ' ' || *v == '\t'; v++)
			;
		if (*v == '\0') {
			config_error(p, line, "%s: missing value after ':' in "
			    "'%s' (%s)", k->k_name, value,
			    config_types[k->k_type].t_form);
			return -1;
		}
		for (c = v; *c != '\0'; c++) {
			if (((unsigned char)*c < ' ' && *c != '\t') ||
			    *c == 0x7f) {
				config_error(p, line, "%s: control character "
				    "in '%s'", k->k_name, value);
				return -1;
			}
		}
	}
	if ((ns = strndup(value, namelen)) == NULL ||
	    (v != NULL && (vs = strdup(v)) == NULL)) {
		free(ns);
		config_error(p, line, "%s: out of memory", k->k_name);
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

/* N of a server's "maxconn=N", wl digits at w: 1 to SERVER_MAXCONN_MAX. */
static int
server_maxconn(const char *w, size_t wl, unsigned int *v)
{
	uint64_t	 n = 0;
	size_t		 i;

	if (wl == 0)
		return -1;
	for (i = 0; i < wl; i++)
		if (w[i] < '0' || w[i] > '9' || (n = n * 10 +
		    (uint64_t)(w[i] - '0')) > SERVER_MAXCONN_MAX)
			return -1;
	if (n == 0)
		return -1;
	*v = (unsigned int)n;
	return 0;
}

/*
 * Append one address to a list key; KEY_UNIQUE refuses one seen before.
 * Words after the address: a listener's proxy_protocol and
 * fault_injection (kept in its text: /status and logs show them), a
 * server's maxconn=N (its text is the address alone: the access log's
 * server field and the metrics' server label).
 */
int
config_set_addrs(struct parse *p, const struct key *k, void *obj,
    const char *value, int line)
{
	struct config_addr	**list = key_field(obj, k->k_offset), *nlist, a;
	size_t			 *n = key_field(obj, k->k_aux), i, alen;
	char			  err[256], local[32], addr[300], text[320];
	const char		 *opt;
	int			  pp = 0;

	if (*n >= k->k_max) {
		config_error(p, line, "%s: too many (at most %llu)", k->k_name,
		    (unsigned long long)k->k_max);
		return -1;
	}
	memset(&a, 0, sizeof(a));
	/* "ADDR proxy_protocol": options after the address, listeners only */
	alen = strcspn(value, " \t");
	for (opt = value + alen; *(opt += strspn(opt, " \t")) != '\0';
	    opt += strcspn(opt, " \t")) {
		if (strncmp(opt, "proxy_protocol", 14) == 0 &&
		    (opt[14] == '\0' || opt[14] == ' ' || opt[14] == '\t') &&
		    (k->k_flags & KEY_LISTENER))
			pp = 1;
		else if (strncmp(opt, "fault_injection", 15) == 0 &&
		    (opt[15] == '\0' || opt[15] == ' ' || opt[15] == '\t') &&
		    (k->k_flags & KEY_LISTENER))
			a.flags |= ADDR_F_FAULT_INJECTION;
		else if (strncmp(opt, "maxconn=", 8) == 0 &&
		    (k->k_flags & KEY_SERVER)) {
			if (server_maxconn(opt + 8, strcspn(opt, " \t") - 8,
			    &a.maxconn) == -1) {
				config_error(p, line, "%s: invalid '%.*s' (use "
				    "maxconn=N, 1 to %u)", k->k_name,
				    (int)strcspn(opt, " \t"), opt,
				    SERVER_MAXCONN_MAX);
				return -1;
			}
		} else {
			config_error(p, line, "%s: unknown option '%.*s'%s",
			    k->k_name, (int)strcspn(opt, " \t"), opt,
			    (k->k_flags & KEY_LISTENER) ? " (use "
			    "proxy_protocol or fault_injection)" :
			    (k->k_flags & KEY_SERVER) ? " (use maxconn=N)" :
			    " (this address takes none)");
			return -1;
		}
	}
	if (alen >= sizeof(addr)) {
		config_error(p, line, "%s: address too long", k->k_name);
		return -1;
	}
	memcpy(addr, value, alen);
	addr[alen] = '\0';
	value = addr;
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
	    (config_numeric_hosts(p)) != 0, &a,
	    err, sizeof(err)) == -1) {
		config_error(p, line, "%s: %s", k->k_name, err);
		return -1;
	}
	for (i = 0; (k->k_flags & KEY_UNIQUE) && i < *n; i++) {
		if (addr_same(&(*list)[i], &a)) {
			config_error(p, line, "%s: %s is the same address as "
			    "'%s' on line %d", k->k_name, value,
			    (*list)[i].text, (*list)[i].line);
			return -1;
		}
	}
	a.line = line;
	a.proxy_protocol = pp;
	snprintf(text, sizeof(text), "%s%s%s", value, pp ? " proxy_protocol" :
	    "", (a.flags & ADDR_F_FAULT_INJECTION) ? " fault_injection" : "");
	if ((a.text = strdup(text)) == NULL ||
	    (nlist = realloc(*list, (*n + 1) * sizeof(**list))) == NULL) {
		free(a.text);
		config_error(p, line, "%s: out of memory", k->k_name);
		return -1;
	}
	nlist[(*n)++] = a;
	*list = nlist;
	return 0;
}
