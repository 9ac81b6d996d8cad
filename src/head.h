/*
 * head.h: the heads spillway writes. The request head as it goes to a
 * backend, a response head as it goes to the client, and spillway's own
 * answers (refusals and errors). Pure: no libevent, no globals, no clock.
 *
 * Their rules are the ones that matter against request smuggling and
 * desync: hop-by-hop fields (the parser marks them) never pass, framing is
 * written afresh from what the parser checked, never copied. Each writer
 * fills a caller's buffer and returns the bytes written, or -1 if they do
 * not fit: a head is never cut. A buffer of the parsed head's length plus
 * HEAD_MARGIN always fits a rewritten head.
 */
#ifndef SPILLWAY_HEAD_H
#define SPILLWAY_HEAD_H

#include <sys/types.h>

#include <stddef.h>
#include <stdint.h>

#include "http.h"
#include "metrics.h"

#define HEAD_MARGIN	512	/* room for what we add to a head */
#define HEAD_OWN_MAX	512	/* one of our own answers, body included */

/* What the request head going upstream says about its client. */
struct head_client {
	const char	*ip;		/* the peer (or the address a PROXY
					   header gave): X-Forwarded-For */
	int		 tls;		/* X-Forwarded-Proto: https */
	const char	*local;		/* address it reached, for an HTTP/1.0
					   request without Host; or NULL */
	int		 local_v6;	/* local is an IPv6 address */
	const char	*client;	/* the real client (realip.h), for
					   X-Real-IP; NULL: ip */
	int		 trusted;	/* ip is a trusted proxy: keep the
					   X-Forwarded-For and Forwarded
					   it sent, and add to them */
};

/*
 * The request head to a backend: HTTP/1.1, hop-by-hop fields removed,
 * X-Forwarded-For, X-Real-IP, Forwarded and X-Forwarded-Proto set by us.
 * What a client sent in them is dropped, not added to: only a trusted
 * proxy's X-Forwarded-For and Forwarded are kept, with the proxy added as
 * the last hop. Framing is written afresh ("Content-Length: N" or
 * "Transfer-Encoding: chunked"), so that a backend reads exactly the
 * framing we checked, whatever its parser makes of case, OWS or leading
 * zeros.
 */
ssize_t		 head_request(char *buf, size_t len, const struct http_head *,
		    const struct head_client *);

/* How a response head goes on to the client. */
struct head_response {
	int		 interim;	/* a 1xx before the final answer */
	int		 dechunk;	/* strip chunking (HTTP/1.0 client) */
	int		 keepalive;	/* client connection kept open */
	int		 client_minor;	/* the client's HTTP/1.x */
};

/*
 * A response head to the client: hop-by-hop fields removed, framing that
 * delimits the body written afresh as for the request, Connection said
 * for a final answer.
 */
ssize_t		 head_response(char *buf, size_t len, const struct http_head *,
		    const struct head_response *);

/*
 * One of our own answers: status line, a short text body (none for HEAD),
 * Retry-After if retry_after > 0, Spillway-Reason if reason is one
 * (not MR_NONE), Connection as keepalive and client_minor say.
 */
ssize_t		 head_own(char *buf, size_t len, int status,
		    enum metrics_reason reason, uint64_t retry_after,
		    int keepalive, int client_minor, int is_head);

#endif /* SPILLWAY_HEAD_H */
