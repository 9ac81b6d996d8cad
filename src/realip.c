/*
 * realip.c: the real client address behind trusted proxies, from
 * X-Forwarded-For or Forwarded (RFC 7239). See realip.h for the walk.
 *
 * The header values are parsed left to right into hops, keeping the
 * rightmost REALIP_MAX_HOPS, then walked from the right. Forwarded is
 * held to RFC 7239's grammar (RFC 9110 lists of elements, each a ";"
 * list of token=value pairs, values tokens or quoted strings, a parameter
 * once per element): a header that breaks it is not used.
 *
 * Pure: no libevent, no globals, no clock.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "realip.h"

#define NODE_MAX	64	/* a for= value longer is no address */

struct hop {
	int		 h_family;	/* 0: names no address */
	uint8_t		 h_addr[16];
};

struct hops {
	struct hop	 hs_hop[REALIP_MAX_HOPS];
	size_t		 hs_n;		/* kept, at most REALIP_MAX_HOPS */
	size_t		 hs_next;	/* ring position of the next one */
	int		 hs_bad;	/* a header broke its grammar */
};

static int
addr_len(int family)
{
	return family == AF_INET ? 4 : 16;
}

/* An address of either family from n bytes of text; 0 or -1. */
static int
parse_ip(const char *s, size_t n, int *family, uint8_t *addr)
{
	char	 text[INET6_ADDRSTRLEN];

	if (n == 0 || n >= sizeof(text))
		return -1;
	memcpy(text, s, n);
	text[n] = '\0';
	if (inet_pton(AF_INET, text, addr) == 1) {
		*family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, text, addr) == 1) {
		*family = AF_INET6;
		return 0;
	}
	return -1;
}

/* A port after an address: 1 to 5 digits up to 65535, or "_obfport". */
static int
parse_port(const char *s, size_t n, int obfuscated_ok)
{
	unsigned long	 v = 0;
	size_t		 i;

	if (obfuscated_ok && n > 1 && s[0] == '_')
		return 0;
	if (n == 0 || n > 5)
		return -1;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	return v <= 65535 ? 0 : -1;
}

/*
 * A node: "v4", "v4:port", "[v6]", "[v6]:port", and for X-Forwarded-For
 * a bare "v6" too (RFC 7239 insists on the brackets). 0, or -1 if it
 * names no address.
 */
static int
parse_node(const char *s, size_t n, int forwarded, struct hop *h)
{
	const char	*close, *colon;

	if (n > 0 && s[0] == '[') {
		if ((close = memchr(s, ']', n)) == NULL ||
		    parse_ip(s + 1, (size_t)(close - s - 1), &h->h_family,
		    h->h_addr) == -1 || h->h_family != AF_INET6)
			return -1;
		if ((size_t)(close - s) + 1 == n)
			return 0;
		if (close[1] != ':')
			return -1;
		return parse_port(close + 2, n - (size_t)(close - s) - 2,
		    forwarded);
	}
	if (parse_ip(s, n, &h->h_family, h->h_addr) == 0)
		return forwarded && h->h_family == AF_INET6 ? -1 : 0;
	if ((colon = memchr(s, ':', n)) == NULL ||
	    parse_ip(s, (size_t)(colon - s), &h->h_family, h->h_addr) == -1 ||
	    h->h_family != AF_INET)
		return -1;
	return parse_port(colon + 1, n - (size_t)(colon - s) - 1, forwarded);
}

static void
hops_add(struct hops *hs, const struct hop *h)
{
	hs->hs_hop[hs->hs_next] = *h;
	hs->hs_next = (hs->hs_next + 1) % REALIP_MAX_HOPS;
	if (hs->hs_n < REALIP_MAX_HOPS)
		hs->hs_n++;
}

/* The i-th hop from the right (0: the rightmost). */
static const struct hop *
hops_right(const struct hops *hs, size_t i)
{
	return &hs->hs_hop[(hs->hs_next + REALIP_MAX_HOPS - 1 - i) %
	    REALIP_MAX_HOPS];
}

static int
is_ows(char c)
{
	return c == ' ' || c == '\t';
}

/* X-Forwarded-For: a comma list of addresses; empty elements ignored. */
static void
parse_xff(struct hops *hs, const char *v, size_t n)
{
	struct hop	 h;
	size_t		 i = 0, start, end;

	while (i <= n) {
		start = i;
		while (i < n && v[i] != ',')
			i++;
		end = i;
		while (start < end && is_ows(v[start]))
			start++;
		while (end > start && is_ows(v[end - 1]))
			end--;
		if (end > start) {
			memset(&h, 0, sizeof(h));
			if (parse_node(v + start, end - start, 0, &h) == -1)
				h.h_family = 0;
			hops_add(hs, &h);
		}
		i++;	/* past the comma, or past the end */
	}
}

static int
is_tchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	    (c >= 'A' && c <= 'Z') || (c != '\0' &&
	    strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/*
 * A Forwarded value at v[*i]: a token or a quoted string, unquoted into
 * out (cut at NODE_MAX, which *outlen then exceeds). 0, or -1 on a
 * grammar error.
 */
static int
fwd_value(const char *v, size_t n, size_t *i, char *out, size_t *outlen)
{
	unsigned char	 c;

	*outlen = 0;
	if (*i < n && v[*i] == '"') {
		for ((*i)++; *i < n && v[*i] != '"'; (*i)++) {
			c = (unsigned char)v[*i];
			if (c == '\\') {
				if (++(*i) == n)
					return -1;
				c = (unsigned char)v[*i];
				if (c != '\t' && (c < 0x20 || c == 0x7f))
					return -1;
			} else if (c != '\t' && (c < 0x20 || c == 0x7f))
				return -1;
			if (*outlen < NODE_MAX)
				out[*outlen] = (char)c;
			(*outlen)++;
		}
		if (*i == n)
			return -1;	/* no closing quote */
		(*i)++;
		return 0;
	}
	for (; *i < n && is_tchar((unsigned char)v[*i]); (*i)++) {
		if (*outlen < NODE_MAX)
			out[*outlen] = v[*i];
		(*outlen)++;
	}
	return *outlen > 0 ? 0 : -1;
}

/* The hop an element's for= names (a node, or no address). */
static void
fwd_hop(const char *node, size_t n, int given, struct hop *h)
{
	memset(h, 0, sizeof(*h));
	/* absent, "unknown", "_obfuscated" or too long: no address */
	if (!given || n > NODE_MAX || (n == 7 &&
	    strncasecmp(node, "unknown", 7) == 0) || (n > 0 && node[0] == '_'))
		return;
	if (parse_node(node, n, 1, h) == -1)
		h->h_family = 0;
}

/* Forwarded: one field line's elements; a grammar error marks hs_bad. */
static void
parse_forwarded(struct hops *hs, const char *v, size_t n)
{
	struct hop	 h;
	char		 node[NODE_MAX], val[NODE_MAX];
	size_t		 i = 0, name, nlen, vlen, forlen = 0;
	int		 has_for, elements = 0;

	for (;;) {
		while (i < n && (is_ows(v[i]) || v[i] == ','))
			i++;	/* empty list elements are allowed */
		if (i == n)
			break;
		has_for = 0;
		for (;;) {	/* pairs, ";" separated, each optional */
			if (i < n && v[i] != ';' && v[i] != ',' &&
			    !is_ows(v[i])) {
				name = i;
				while (i < n && is_tchar((unsigned char)v[i]))
					i++;
				nlen = i - name;
				if (nlen == 0 || i == n || v[i] != '=')
					goto bad;
				i++;
				if (fwd_value(v, n, &i, val, &vlen) == -1)
					goto bad;
				if (nlen == 3 &&
				    strncasecmp(v + name, "for", 3) == 0) {
					if (has_for)
						goto bad;	/* twice */
					has_for = 1;
					forlen = vlen;
					memcpy(node, val, vlen < NODE_MAX ?
					    vlen : NODE_MAX);
				}
			}
			if (i < n && v[i] == ';') {
				i++;
				continue;
			}
			break;
		}
		while (i < n && is_ows(v[i]))
			i++;
		if (i < n && v[i] != ',')
			goto bad;
		fwd_hop(node, forlen, has_for, &h);
		hops_add(hs, &h);
		elements++;
	}
	if (elements == 0)
		goto bad;	/* 1#forwarded-element */
	return;
 bad:
	hs->hs_bad = 1;
}

static int
in_cidr(const struct realip_cidr *rc, int family, const uint8_t *addr)
{
	unsigned int	 full = rc->rc_prefix / 8, rest = rc->rc_prefix % 8;
	uint8_t		 mask;

	if (rc->rc_family != family)
		return 0;
	if (memcmp(rc->rc_addr, addr, full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	mask = (uint8_t)(0xff << (8 - rest));
	return (addr[full] & mask) == rc->rc_addr[full];
}

static int
trusted_addr(const struct realip_cidr *rc, size_t n, int family,
    const uint8_t *addr)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		if (in_cidr(&rc[i], family, addr))
			return 1;
	return 0;
}

int
realip_trusted(const struct realip_cidr *rc, size_t n, const char *ip)
{
	uint8_t	 addr[16];
	int	 family;

	if (n == 0 || parse_ip(ip, strlen(ip), &family, addr) == -1)
		return 0;
	return trusted_addr(rc, n, family, addr);
}

int
realip_cidr_parse(const char *text, struct realip_cidr *rc, char *err,
    size_t errlen)
{
	const char	*slash = strchr(text, '/');
	size_t		 alen = slash ? (size_t)(slash - text) : strlen(text);
	unsigned long	 prefix;
	unsigned int	 i, max;
	char		*end;

	memset(rc, 0, sizeof(*rc));
	if (parse_ip(text, alen, &rc->rc_family, rc->rc_addr) == -1) {
		snprintf(err, errlen, "%s: not an IPv4 or IPv6 address "
		    "(use e.g. 10.0.0.0/8 or 2001:db8::/32)", text);
		return -1;
	}
	max = rc->rc_family == AF_INET ? 32 : 128;
	if (slash == NULL)
		prefix = max;
	else if (slash[1] < '0' || slash[1] > '9' || (slash[1] == '0' &&
	    slash[2] != '\0') || (prefix = strtoul(slash + 1, &end, 10),
	    *end != '\0') || prefix > max) {
		snprintf(err, errlen, "%s: the prefix length must be 0 to %u",
		    text, max);
		return -1;
	}
	rc->rc_prefix = (unsigned int)prefix;
	for (i = 0; i < (unsigned int)addr_len(rc->rc_family) * 8; i++) {
		if (i >= prefix &&
		    (rc->rc_addr[i / 8] & (0x80 >> (i % 8))) != 0) {
			snprintf(err, errlen, "%s: bits set past the /%lu "
			    "prefix", text, prefix);
			return -1;
		}
	}
	snprintf(rc->rc_text, sizeof(rc->rc_text), "%.*s/%u", (int)alen,
	    text, rc->rc_prefix);
	return 0;
}

/* The peer's address as the answer: a plain copy, on every request. */
static enum realip_source
peer_answer(const char *peer_ip, char *out)
{
	size_t	 n = strlen(peer_ip);

	if (n >= REALIP_TEXT_MAX)
		n = REALIP_TEXT_MAX - 1;
	memcpy(out, peer_ip, n);
	out[n] = '\0';
	return REALIP_PEER;
}

enum realip_source
realip_walk(const char *const *values, const size_t *lens, size_t nvalues,
    enum realip_header which, const char *peer_ip,
    const struct realip_cidr *rc, size_t n, char *out)
{
	struct hops	 hs;
	const struct hop *h, *last = NULL;
	size_t		 i;

	peer_answer(peer_ip, out);
	if (!realip_trusted(rc, n, peer_ip))
		return REALIP_PEER;
	memset(&hs, 0, sizeof(hs));
	for (i = 0; i < nvalues; i++) {
		if (which == REALIP_FORWARDED)
			parse_forwarded(&hs, values[i], lens[i]);
		else
			parse_xff(&hs, values[i], lens[i]);
	}
	if (hs.hs_bad)
		return REALIP_PEER;
	for (i = 0; i < hs.hs_n; i++) {
		h = hops_right(&hs, i);
		if (h->h_family == 0)
			break;	/* no address: the last trusted hop stands */
		last = h;
		if (!trusted_addr(rc, n, h->h_family, h->h_addr))
			break;
	}
	if (last == NULL)
		return REALIP_PEER;
	inet_ntop(last->h_family, last->h_addr, out, REALIP_TEXT_MAX);
	return REALIP_HEADER;
}

enum realip_source
realip_client(const struct http_head *h, enum realip_header which,
    const char *peer_ip, const struct realip_cidr *rc, size_t n, char *out)
{
	const char	*values[HTTP_MAX_HEADERS];
	size_t		 lens[HTTP_MAX_HEADERS], nv = 0, namelen;
	const char	*name;
	int		 i;

	if (n == 0)
		return peer_answer(peer_ip, out);	/* no header believed */
	name = which == REALIP_FORWARDED ? "Forwarded" : "X-Forwarded-For";
	namelen = strlen(name);
	for (i = 0; i < h->nheaders; i++) {
		if (h->headers[i].hop || h->headers[i].name_len != namelen ||
		    strncasecmp(h->headers[i].name, name, namelen) != 0)
			continue;
		values[nv] = h->headers[i].value;
		lens[nv++] = h->headers[i].value_len;
	}
	return realip_walk(values, lens, nv, which, peer_ip, rc, n, out);
}
