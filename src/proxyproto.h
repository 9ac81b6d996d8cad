/*
 * proxyproto.h: the PROXY protocol header (HAProxy's proxy-protocol.txt,
 * versions 1 and 2) that an L4 load balancer sends before anything else,
 * naming the client it accepted. Pure: no libevent, no globals, no clock.
 *
 * The parser is given the bytes received so far and says whether they are
 * a whole header (and how long it is), the start of one (read more), or
 * not a header at all. It never reads past the header: the caller consumes
 * exactly pp_len bytes and what follows is the client's (HTTP or TLS).
 */
#ifndef SPILLWAY_PROXYPROTO_H
#define SPILLWAY_PROXYPROTO_H

#include <sys/types.h>
#include <sys/socket.h>

#include <stddef.h>
#include <stdint.h>

#define PROXYPROTO_V1_MAX	107	/* "PROXY ... \r\n", CRLF included */
#define PROXYPROTO_V2_HEAD	16	/* signature, command, family, length */
/*
 * A v2 header longer than this (TLVs included) is refused: it is far
 * more than any load balancer sends (the spec's own recommended receive
 * buffer is 536 bytes), and the bytes are held while the header arrives.
 */
#define PROXYPROTO_MAX		4096

enum proxyproto_result {
	PROXYPROTO_OK = 0,	/* a whole header, pp_len bytes long */
	PROXYPROTO_MORE,	/* a valid start of a header: read more */
	PROXYPROTO_BAD,		/* not a valid header: close the connection */
};

struct proxyproto {
	int			 pp_version;	/* 1 or 2 */
	/*
	 * The client's address and port (pp_src) and the address it
	 * connected to (pp_dst), when the header names them: v1 TCP4/TCP6,
	 * v2 PROXY over INET/INET6 STREAM. 0 for v1 UNKNOWN, v2 LOCAL
	 * (a health check from the balancer itself), v2 UNSPEC, and the
	 * families spillway does not take an address from (v2 UNIX, DGRAM):
	 * then the connection's own addresses stand.
	 */
	int			 pp_has_addr;
	int			 pp_local;	/* v2 LOCAL command */
	int			 pp_unsupported; /* v2 UNIX or DGRAM */
	struct sockaddr_storage	 pp_src;
	socklen_t		 pp_srclen;
	struct sockaddr_storage	 pp_dst;
	socklen_t		 pp_dstlen;
	size_t			 pp_len;	/* bytes of the header */
};

/*
 * Parse the len bytes at buf (all received so far). PROXYPROTO_OK fills
 * *pp; PROXYPROTO_BAD sets *why to a short reason (static text).
 */
enum proxyproto_result proxyproto_parse(const uint8_t *buf, size_t len,
		    struct proxyproto *pp, const char **why);

#endif /* SPILLWAY_PROXYPROTO_H */
