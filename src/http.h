/*
 * http.h: a strict HTTP/1.1 message head parser and body framing decoder
 * (RFC 9110, RFC 9112). Pure: no libevent, no globals, no clock, no
 * allocation. The caller owns every buffer.
 *
 * A head is parsed from one contiguous buffer. http_parse_request() and
 * http_parse_response() may be called again and again as bytes arrive on
 * the same growing buffer: they remember how far they have scanned for the
 * end of the head (in struct http_head) so that a head delivered one byte at
 * a time costs linear, not quadratic, work. Parsed names, values and the
 * target point into the caller's buffer and stay valid while it does.
 *
 * Body framing is decoded by struct http_body: it is fed the bytes that
 * follow the head, in pieces of any size, and says how many of them belong
 * to the message and, for chunked bodies, which of them are payload (so a
 * proxy may pass chunked bytes through verbatim, strip the framing for an
 * HTTP/1.0 peer, or write the chunk lines afresh: see rechunk below).
 */
#ifndef SPILLWAY_HTTP_H
#define SPILLWAY_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define HTTP_MAX_HEADERS	100	/* more is 431 (request) or an error */

enum http_method {
	HTTP_M_OTHER = 0,	/* a valid token we do not know: proxied as is */
	HTTP_M_GET,
	HTTP_M_HEAD,
	HTTP_M_POST,
	HTTP_M_PUT,
	HTTP_M_DELETE,
	HTTP_M_OPTIONS,
	HTTP_M_TRACE,
	HTTP_M_PATCH,
	HTTP_M_CONNECT,
};

/* How the body after a head is delimited. */
enum http_framing {
	HTTP_FRAMING_NONE = 0,	/* no body at all */
	HTTP_FRAMING_LENGTH,	/* Content-Length bytes */
	HTTP_FRAMING_CHUNKED,	/* chunked transfer coding, last */
	HTTP_FRAMING_CLOSE,	/* response only: until the server closes */
};

/* Flags found while parsing a head. */
#define HTTP_F_CONN_CLOSE	0x0001	/* Connection: close */
#define HTTP_F_CONN_KEEPALIVE	0x0002	/* Connection: keep-alive */
#define HTTP_F_EXPECT_CONTINUE	0x0004	/* Expect: 100-continue */
#define HTTP_F_UPGRADE		0x0008	/* an Upgrade header is present */
#define HTTP_F_HAS_HOST		0x0010	/* exactly one Host header */

/* Result of a parse call. */
#define HTTP_PARSE_ERROR	-1	/* see head->error and head->error_what */
#define HTTP_PARSE_AGAIN	0	/* head incomplete: call again with more */
/* > 0: the head is complete; the value is its length in bytes. */

struct http_header {
	const char	*name;
	size_t		 name_len;
	const char	*value;		/* leading/trailing OWS stripped */
	size_t		 value_len;
	int		 hop;		/* 1 if hop-by-hop: not to be forwarded */
};

struct http_head {
	/* parser progress, zero before the first call */
	size_t		 scanned;	/* bytes searched for the end of head */
	size_t		 line_end;	/* end of the first line, 0 if not seen */

	/* request line */
	enum http_method method;
	const char	*method_str;
	size_t		 method_len;
	const char	*target;
	size_t		 target_len;

	/* status line */
	int		 status;	/* 100..599 */
	const char	*reason;
	size_t		 reason_len;

	int		 version_minor;	/* HTTP/1.x: 0 or 1 */

	struct http_header headers[HTTP_MAX_HEADERS];
	int		 nheaders;

	enum http_framing framing;
	uint64_t	 content_length;	/* with HTTP_FRAMING_LENGTH */
	unsigned int	 flags;			/* HTTP_F_* */

	/*
	 * On HTTP_PARSE_ERROR: the status a server answers with (400, 414,
	 * 431, 501, 505; 502 for any response error) and a short static
	 * description for the log.
	 */
	int		 error;
	const char	*error_what;
};

/*
 * Parse a request head from buf[0..len). max_size bounds the head: a head
 * not complete within max_size bytes is an error (414 if the request line
 * itself does not fit, else 431). Returns the head length, HTTP_PARSE_AGAIN
 * or HTTP_PARSE_ERROR.
 */
ssize_t		 http_parse_request(struct http_head *, const char *buf,
		    size_t len, size_t max_size);

/*
 * Parse a response head; req_method is the method of the request it answers
 * (a response to HEAD, and 1xx, 204 and 304 responses, have no body; 2xx to
 * CONNECT is refused). Errors set head->error to 502.
 */
ssize_t		 http_parse_response(struct http_head *, const char *buf,
		    size_t len, size_t max_size, enum http_method req_method);

/* Reset a head for the next message on the same connection. */
void		 http_head_reset(struct http_head *);

/* Case-insensitive lookup; returns the first match or NULL. */
const struct http_header *http_head_find(const struct http_head *,
		    const char *name);

const char	*http_method_name(enum http_method);
const char	*http_status_reason(int status);
const char	*http_framing_name(enum http_framing);

/*
 * Body framing decoder. Bounds: a chunk-size line (with extensions) and
 * the trailer section are limited to HTTP_CHUNK_LINE_MAX and
 * HTTP_TRAILER_MAX bytes.
 */
#define HTTP_CHUNK_LINE_MAX	4096
#define HTTP_TRAILER_MAX	8192

enum http_body_state {
	HTTP_BODY_SIZE = 0,	/* chunk-size and extensions, up to CRLF */
	HTTP_BODY_SIZE_LF,	/* the LF after the chunk-size line's CR */
	HTTP_BODY_DATA,		/* chunk data, or Content-Length bytes */
	HTTP_BODY_DATA_CR,	/* the CR after chunk data */
	HTTP_BODY_DATA_LF,	/* the LF after chunk data */
	HTTP_BODY_TRAILER,	/* trailer fields, up to an empty line */
	HTTP_BODY_DONE,		/* message complete */
	HTTP_BODY_ERROR,	/* invalid framing; nothing more is accepted */
};

struct http_body {
	enum http_framing	 framing;
	enum http_body_state	 state;
	uint64_t		 remaining;	/* data bytes left */
	uint64_t		 total;		/* payload bytes seen so far */
	size_t			 line_len;	/* bytes of current line */
	size_t			 trailer_len;	/* bytes of trailer section */
	int			 size_digits;	/* hex digits in chunk-size */
	int			 in_ext;	/* chunk line: where in chunk-ext;
						   trailer: in a field value */
	int			 trailer_bol;	/* at the start of a trailer line */
	int			 trailer_cr;	/* saw CR in trailer section */
	char			 trailer_name[17]; /* a trailer name's start */
	const char		*error_what;

	/*
	 * Set by the caller after http_body_init() to relay a chunked body
	 * with its chunk lines written afresh, without extensions. Then a
	 * piece that http_body_feed() returns is never part chunk line and
	 * part other framing; for a chunk line's bytes it sets chunk_line,
	 * and the caller sends chunk_out (chunk_out_len bytes, "HEX\r\n")
	 * instead of them: empty until the piece that ends the line.
	 */
	int			 rechunk;
	int			 chunk_line;
	char			 chunk_out[20];
	size_t			 chunk_out_len;
};

/* Start decoding a body with the framing of a parsed head. */
void		 http_body_init(struct http_body *, const struct http_head *);

/*
 * Feed bytes that follow the head. Consumes a prefix of buf that is either
 * all payload (*is_data = 1) or all framing (*is_data = 0) and returns its
 * length; the caller moves that many bytes and calls again with the rest.
 * Returns 0 when len is 0 or the body is already done (bytes after a done
 * body belong to the next message), and -1 on invalid framing (error_what
 * says why; the state stays HTTP_BODY_ERROR). http_body_done() tells when
 * the message is complete; with HTTP_FRAMING_NONE it is done from the start.
 * With HTTP_FRAMING_CLOSE everything is payload until the caller sees the
 * end of the stream. total counts the payload bytes consumed so far.
 */
ssize_t		 http_body_feed(struct http_body *, const char *buf,
		    size_t len, int *is_data);

/* 1 once the whole body has been consumed. */
int		 http_body_done(const struct http_body *);

#endif /* SPILLWAY_HTTP_H */
