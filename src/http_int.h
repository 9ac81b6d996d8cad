/*
 * http_int.h: what the parts of the HTTP parser share (http.c scans a head,
 * http_fields.c applies the rules of its fields, http_body.c decodes a
 * body): byte classes, small helpers, the state of one parse. Not for
 * other modules: they see http.h.
 */
#ifndef SPILLWAY_HTTP_INT_H
#define SPILLWAY_HTTP_INT_H

#include <sys/types.h>

#include <stddef.h>

#include "http.h"

/*
 * Byte classes, one lookup per byte:
 * C_STOP	stops the scan of a line: CR, LF, and the controls allowed
 *		nowhere in a head (all below SP but HTAB, and DEL);
 * C_TCHAR	token character (RFC 9110 5.6.2);
 * C_HOST	uri-host and port character (RFC 3986): no space, '@', '/'
 *		or '\'.
 */
#define C_STOP	0x01
#define C_TCHAR	0x02
#define C_HOST	0x04

extern const unsigned char	http_cclass[256];

static inline int
is_tchar(unsigned char c)
{
	return (http_cclass[c] & C_TCHAR) != 0;
}

/* Field value characters: HTAB, SP, VCHAR, obs-text. */
static inline int
is_vchar_ws(unsigned char c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static inline int
is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static inline int
hex_value(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static inline unsigned char
lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c - 'A' + 'a') : c;
}

/* What is being parsed, and the buffer it is parsed from. */
struct parse {
	struct http_head	*h;
	const char		*buf;
	int			 is_req;
	enum http_method	 req_method;	/* for a response */
	size_t			 start;		/* h->scanned when called */
};

/* Record the error a parse fails with (a response's is always 502): -1. */
int		 http_fail(struct parse *, int status, const char *what);
int		 http_ci_memeq(const char *, const char *, size_t);
int		 http_all_tchar(const char *, size_t);
int		 http_all_host_chars(const char *, size_t);
/* Point the first line and the fields into the final buffer (http.c). */
int		 http_reparse_head(struct parse *, size_t head_len);
/* The head is buf[0..head_len): apply the rules of its fields. */
ssize_t		 http_finish_head(struct parse *, size_t head_len);
/* Content-Length, Transfer-Encoding, Host: never in a trailer section. */
int		 http_frames_or_routes(const char *name, size_t n);

#endif /* SPILLWAY_HTTP_INT_H */
