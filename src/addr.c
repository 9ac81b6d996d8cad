/*
 * addr.c: addresses, from text to struct sockaddr and back, and the one
 * definition of "the same address".
 *
 * Pure: no libevent, no global state, no clock. addr_parse() may ask
 * getaddrinfo() to look up a host name unless told numeric.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L	/* getaddrinfo under -std=c11 */
#endif

#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"

static int
parse_uint(const char *s, uint64_t *v)
{
	uint64_t	 n = 0;

	if (*s < '0' || *s > '9')
		return -1;
	for (; *s >= '0' && *s <= '9'; s++) {
		if (n > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return -1;
		n = n * 10 + (uint64_t)(*s - '0');
	}
	if (*s != '\0')
		return -1;
	*v = n;
	return 0;
}

/* Host names: letters, digits, '-', '_' and '.'; nothing for a resolver. */
static int
valid_host(const char *host, int bracketed)
{
	const char	*extra = bracketed ? ":.%" : "-_.";

	for (; *host != '\0'; host++) {
		if (!isalnum((unsigned char)*host) &&
		    strchr(extra, *host) == NULL)
			return 0;
	}
	return 1;
}

/* getaddrinfo() the first address; only numeric ones if asked or [v6]. */
static int
resolve(const char *host, uint16_t port, int passive, int bracketed,
    int numeric, struct config_addr *a, char *err, size_t errlen)
{
	struct addrinfo	 hints, *res;
	char		 serv[8];
	int		 rc;

	snprintf(serv, sizeof(serv), "%u", port);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = bracketed ? AF_INET6 : AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
	if (bracketed || numeric)
		hints.ai_flags |= AI_NUMERICHOST;
	if ((rc = getaddrinfo(host, serv, &hints, &res)) != 0) {
		if (bracketed)
			snprintf(err, errlen, "invalid IPv6 address '%s'",
			    host);
		else
			snprintf(err, errlen, "cannot resolve '%s': %s", host,
			    gai_strerror(rc));
		return -1;
	}
	memcpy(&a->ss, res->ai_addr, res->ai_addrlen);
	a->sslen = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

/* "*", "" (passive only): every IPv4 address. */
static void
any_ipv4(uint16_t port, struct config_addr *a)
{
	struct sockaddr_in	*sin = (struct sockaddr_in *)&a->ss;

	memset(&a->ss, 0, sizeof(a->ss));
	sin->sin_family = AF_INET;
	sin->sin_port = htons(port);
	sin->sin_addr.s_addr = htonl(INADDR_ANY);
	a->sslen = sizeof(*sin);
}

/*
 * Split text into host and port: "host:port", "[v6]:port", and when
 * passive "*:port", ":port" or "port". Copies the host to host (without
 * brackets) and returns the port text, or NULL with err set.
 */
static const char *
split_addr(const char *text, int passive, char *host, size_t hostlen,
    int *bracketed, char *err, size_t errlen)
{
	const char	*hstart = text, *hend, *port;
	uint64_t	 n;

	*bracketed = text[0] == '[';
	if (*bracketed) {
		if ((hend = strchr(text, ']')) == NULL || hend[1] != ':') {
			snprintf(err, errlen, "invalid address '%s' "
			    "(use [v6]:port)", text);
			return NULL;
		}
		hstart = text + 1;
		port = hend + 2;
	} else if ((hend = strrchr(text, ':')) != NULL) {
		if (memchr(text, ':', (size_t)(hend - text)) != NULL) {
			snprintf(err, errlen, "IPv6 address without brackets "
			    "in '%s' (use [v6]:port)", text);
			return NULL;
		}
		port = hend + 1;
	} else if (passive && parse_uint(text, &n) == 0) {
		hend = text;	/* a bare port */
		port = text;
	} else {
		snprintf(err, errlen, "missing %s in '%s' (use host:port)",
		    passive ? "port" : "host or port", text);
		return NULL;
	}
	if ((size_t)(hend - hstart) >= hostlen) {
		snprintf(err, errlen, "host name too long in '%s'", text);
		return NULL;
	}
	memcpy(host, hstart, (size_t)(hend - hstart));
	host[hend - hstart] = '\0';
	return port;
}

int
addr_parse(const char *text, int passive, int numeric, struct config_addr *a,
    char *err, size_t errlen)
{
	char		 host[256];
	const char	*port;
	uint64_t	 portnum;
	int		 bracketed;

	port = split_addr(text, passive, host, sizeof(host), &bracketed, err,
	    errlen);
	if (port == NULL)
		return -1;
	if (parse_uint(port, &portnum) == -1 || portnum < 1 ||
	    portnum > 65535) {
		snprintf(err, errlen, "invalid port in '%s' (use 1 to 65535)",
		    text);
		return -1;
	}
	if (!bracketed && (host[0] == '\0' || strcmp(host, "*") == 0)) {
		if (!passive) {
			snprintf(err, errlen, "missing host in '%s' "
			    "(use host:port)", text);
			return -1;
		}
		any_ipv4((uint16_t)portnum, a);
		return 0;
	}
	if (host[0] == '\0' || !valid_host(host, bracketed)) {
		snprintf(err, errlen, "invalid host in '%s'", text);
		return -1;
	}
	return resolve(host, (uint16_t)portnum, passive, bracketed, numeric,
	    a, err, errlen);
}


/*
 * The one definition of "the same address": family, port, address and, for
 * IPv6, scope. A reload keeps the socket of a listener, the admin listener
 * and the pool of a backend server whose address is the same; the loader
 * refuses the same address twice where that matters.
 */
int
addr_same(const struct config_addr *ca, const struct config_addr *cb)
{
	const struct sockaddr_storage	*a = &ca->ss, *b = &cb->ss;
	const struct sockaddr_in	*a4, *b4;
	const struct sockaddr_in6	*a6, *b6;

	if (a->ss_family != b->ss_family)
		return 0;
	if (a->ss_family == AF_INET) {
		a4 = (const struct sockaddr_in *)a;
		b4 = (const struct sockaddr_in *)b;
		return a4->sin_port == b4->sin_port &&
		    a4->sin_addr.s_addr == b4->sin_addr.s_addr;
	}
	if (a->ss_family != AF_INET6)
		return ca->sslen == cb->sslen && memcmp(a, b, ca->sslen) == 0;
	a6 = (const struct sockaddr_in6 *)a;
	b6 = (const struct sockaddr_in6 *)b;
	return a6->sin6_port == b6->sin6_port &&
	    a6->sin6_scope_id == b6->sin6_scope_id &&
	    memcmp(&a6->sin6_addr, &b6->sin6_addr, sizeof(a6->sin6_addr)) == 0;
}

/* The "any" address of its family (0.0.0.0, ::) on some port. */
static int
addr_is_any(const struct sockaddr_storage *a)
{
	if (a->ss_family == AF_INET)
		return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
		    htonl(INADDR_ANY);
	if (a->ss_family == AF_INET6)
		return IN6_IS_ADDR_UNSPECIFIED(
		    &((const struct sockaddr_in6 *)a)->sin6_addr);
	return 0;
}

static in_port_t
addr_port(const struct sockaddr_storage *a)
{
	if (a->ss_family == AF_INET)
		return ((const struct sockaddr_in *)a)->sin_port;
	if (a->ss_family == AF_INET6)
		return ((const struct sockaddr_in6 *)a)->sin6_port;
	return 0;
}

/*
 * Two listen addresses that would take the same connections: the same
 * address, or the same port with either one the "any" address of the
 * family (IPv6 listeners are IPV6_V6ONLY, so [::] leaves IPv4 alone).
 * Also tells whether a listen address accepts a connection made to the
 * local address cb.
 */
int
addr_overlap(const struct config_addr *ca, const struct config_addr *cb)
{
	const struct sockaddr_storage	*a = &ca->ss, *b = &cb->ss;

	if (addr_same(ca, cb))
		return 1;
	if (a->ss_family != b->ss_family || (a->ss_family != AF_INET &&
	    a->ss_family != AF_INET6))
		return 0;
	return addr_port(a) == addr_port(b) && (addr_is_any(a) ||
	    addr_is_any(b));
}

/*
 * A socket address as text: the address alone into ip ("?" if it cannot
 * be written), and with its port into full ("1.2.3.4:80", "[::1]:80");
 * either may be NULL.
 */
void
addr_format(const struct sockaddr *sa, char *ip, size_t iplen, char *full,
    size_t fulllen)
{
	char		 buf[INET6_ADDRSTRLEN];
	const void	*addr;
	in_port_t	 port;

	if (sa->sa_family == AF_INET6) {
		addr = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		port = ((const struct sockaddr_in6 *)sa)->sin6_port;
	} else {
		addr = &((const struct sockaddr_in *)sa)->sin_addr;
		port = ((const struct sockaddr_in *)sa)->sin_port;
	}
	if (inet_ntop(sa->sa_family, addr, buf, sizeof(buf)) == NULL)
		snprintf(buf, sizeof(buf), "%s", "?");
	if (ip != NULL)
		snprintf(ip, iplen, "%s", buf);
	if (full != NULL)
		snprintf(full, fulllen, sa->sa_family == AF_INET6 ?
		    "[%s]:%u" : "%s:%u", buf, ntohs(port));
}
