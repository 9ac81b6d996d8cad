/*
 * realip.h: the real client address of a request that came through
 * proxies spillway trusts ([proxy] trusted_proxies): taken from
 * X-Forwarded-For or Forwarded (RFC 7239), walking the hops from the
 * right, past every trusted one, to the first it does not trust. Pure: no
 * libevent, no globals, no clock.
 *
 * The walk (nginx does the same with real_ip_recursive on):
 * start with the peer; while the current hop is trusted,
 * step one hop left in the header. The first untrusted address is the
 * client. Every hop trusted: the leftmost. A hop that names no address
 * (Forwarded's "unknown" or an obfuscated "_name", an element without for=,
 * an X-Forwarded-For entry that is not an address) cannot be keyed or
 * vouched for: the client is then the last address the walk trusted, the
 * proxy that passed it on. A Forwarded header that breaks RFC 7239's
 * grammar is not used at all: the client is the peer.
 */
#ifndef SPILLWAY_REALIP_H
#define SPILLWAY_REALIP_H

#include <stddef.h>
#include <stdint.h>

#include "http.h"

#define REALIP_TEXT_MAX	48	/* an address as text, NUL included */
#define REALIP_MAX_HOPS	32	/* hops kept, the rightmost */

/* One trusted network: IPv4 or IPv6 address and prefix length. */
struct realip_cidr {
	int		 rc_family;	/* AF_INET or AF_INET6 */
	uint8_t		 rc_addr[16];	/* network order, host bits zero */
	unsigned int	 rc_prefix;	/* 0..32 or 0..128 */
	char		 rc_text[REALIP_TEXT_MAX + 4]; /* "addr/prefix" */
};

/* Which header a trusted proxy's client address is read from. */
enum realip_header {
	REALIP_XFF = 0,		/* X-Forwarded-For */
	REALIP_FORWARDED,	/* Forwarded (RFC 7239) */
};

/* Where realip_client() found the client. */
enum realip_source {
	REALIP_PEER = 0,	/* the connection's peer (or PROXY header) */
	REALIP_HEADER,		/* a hop of the header */
};

/*
 * "ADDR/PREFIX" or a bare "ADDR" (one host), IPv4 or IPv6. Host bits set
 * past the prefix are an error, not silently cleared (10.1.2.3/8 is most
 * likely a typo). Returns 0, or -1 with err set.
 */
int		 realip_cidr_parse(const char *text, struct realip_cidr *,
		    char *err, size_t errlen);

/* Is the address ip (text) inside one of the n networks? */
int		 realip_trusted(const struct realip_cidr *, size_t n,
		    const char *ip);

/*
 * The client address of request h that reached us from peer_ip: the peer
 * itself unless it is trusted; else the walk above over header which.
 * Writes the address as text into out (REALIP_TEXT_MAX bytes) and returns
 * where it came from.
 */
enum realip_source realip_client(const struct http_head *h,
		    enum realip_header which, const char *peer_ip,
		    const struct realip_cidr *, size_t n, char *out);

/*
 * The same walk over the given header values (each one field line's
 * value, in order), for the tests and the fuzzer.
 */
enum realip_source realip_walk(const char *const *values,
		    const size_t *lens, size_t nvalues,
		    enum realip_header which, const char *peer_ip,
		    const struct realip_cidr *, size_t n, char *out);

#endif /* SPILLWAY_REALIP_H */
