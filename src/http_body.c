/*
 * http_body.c: the body framing decoder of http.h (RFC 9112 6, 7): a body
 * delimited by Content-Length, by the chunked coding (with its trailer
 * section) or by the end of the connection, fed in pieces of any size.
 *
 * Invariants:
 * - A feed returns a prefix that is all payload or all framing; payload is
 *   only ever returned in HTTP_BODY_DATA, which is left only through its
 *   byte count reaching zero, so total counts exactly the payload consumed.
 * - Each framing line is bounded (HTTP_CHUNK_LINE_MAX, HTTP_TRAILER_MAX), so
 *   nothing grows with the input, and once HTTP_BODY_ERROR is set it stays.
 *
 * Pure: no libevent, no globals, no clock, no allocation.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "http.h"
#include "http_int.h"

void
http_body_init(struct http_body *b, const struct http_head *h)
{
	memset(b, 0, sizeof(*b));
	b->framing = h->framing;
	switch (h->framing) {
	case HTTP_FRAMING_LENGTH:
		b->remaining = h->content_length;
		b->state = b->remaining > 0 ? HTTP_BODY_DATA : HTTP_BODY_DONE;
		break;
	case HTTP_FRAMING_CHUNKED:
		b->state = HTTP_BODY_SIZE;
		break;
	case HTTP_FRAMING_CLOSE:
		b->state = HTTP_BODY_DATA;
		break;
	default:
		b->state = HTTP_BODY_DONE;
		break;
	}
}

static int
body_fail(struct http_body *b, const char *what)
{
	b->state = HTTP_BODY_ERROR;
	b->error_what = what;
	return -1;
}

/* One byte of a chunk-size line, before its CR. */
static int
chunk_size_byte(struct http_body *b, unsigned char c)
{
	int	d;

	if (++b->line_len > HTTP_CHUNK_LINE_MAX)
		return body_fail(b, "chunk line too long");
	if (c == '\n')
		return body_fail(b, "bare LF in chunk line");
	if (c == '\r') {
		if (b->size_digits == 0 || b->in_ext == 1)
			return body_fail(b, "invalid chunk size");
		b->state = HTTP_BODY_SIZE_LF;
		return 0;
	}
	if (b->in_ext == 0 && (d = hex_value(c)) >= 0) {
		/* Bounded to fit an off_t; leading zeros are free. */
		if (b->remaining > ((uint64_t)INT64_MAX - (uint64_t)d) / 16)
			return body_fail(b, "chunk size overflow");
		b->remaining = b->remaining * 16 + (uint64_t)d;
		b->size_digits++;
		return 0;
	}
	if (b->size_digits == 0)
		return body_fail(b, "invalid chunk size");
	if (b->in_ext == 2)	/* inside chunk-ext: any but CTLs */
		return is_vchar_ws(c) ? 0 :
		    body_fail(b, "invalid chunk extension");
	if (c == ' ' || c == '\t')	/* BWS before ';' */
		b->in_ext = 1;
	else if (c == ';')
		b->in_ext = 2;
	else
		return body_fail(b, "invalid chunk size");
	return 0;
}

/*
 * The trailer field whose name ends here may not frame or route: RFC 9110
 * 6.5.1 forbids it, and a backend that merges trailers into the header
 * section would read them.
 */
static int
trailer_name_ok(const struct http_body *b)
{
	size_t			 n = b->line_len - 1;

	if (n > sizeof(b->trailer_name))
		return 1;
	return !http_frames_or_routes(b->trailer_name, n);
}

/* One byte of the trailer section (RFC 9112 7.1.2). */
static int
trailer_byte(struct http_body *b, unsigned char c)
{
	if (++b->trailer_len > HTTP_TRAILER_MAX)
		return body_fail(b, "trailer section too large");
	if (b->trailer_cr) {
		if (c != '\n')
			return body_fail(b, "stray CR in trailer");
		if (b->trailer_bol) {
			b->state = HTTP_BODY_DONE;
			return 0;
		}
		b->trailer_cr = 0;
		b->trailer_bol = 1;
		b->in_ext = 0;
		b->line_len = 0;
		return 0;
	}
	if (c == '\n')
		return body_fail(b, "bare LF in trailer");
	if (c == '\r') {
		if (!b->trailer_bol && !b->in_ext)
			return body_fail(b, "trailer field without colon");
		b->trailer_cr = 1;
		return 0;
	}
	if (b->trailer_bol && (c == ' ' || c == '\t'))
		return body_fail(b, "obs-fold in trailer");
	b->trailer_bol = 0;
	b->line_len++;
	if (b->in_ext)		/* in the field value */
		return is_vchar_ws(c) ? 0 :
		    body_fail(b, "invalid trailer field value");
	if (c == ':' && b->line_len > 1) {
		b->in_ext = 1;
		return trailer_name_ok(b) ? 0 :
		    body_fail(b, "framing or routing field in trailer");
	}
	if (!is_tchar(c))
		return body_fail(b, "invalid trailer field name");
	if (b->line_len <= sizeof(b->trailer_name))
		b->trailer_name[b->line_len - 1] = (char)c;
	return 0;
}

/* One byte of chunked framing: anything but chunk data. */
static int
chunk_frame_byte(struct http_body *b, unsigned char c)
{
	switch (b->state) {
	case HTTP_BODY_SIZE:
		return chunk_size_byte(b, c);
	case HTTP_BODY_SIZE_LF:
		if (c != '\n')
			return body_fail(b, "stray CR in chunk line");
		b->line_len = 0;
		b->size_digits = 0;
		b->in_ext = 0;
		if (b->remaining > 0)
			b->state = HTTP_BODY_DATA;
		else {
			b->state = HTTP_BODY_TRAILER;
			b->trailer_bol = 1;
		}
		return 0;
	case HTTP_BODY_DATA_CR:
		if (c != '\r')
			return body_fail(b, "chunk data overrun");
		b->state = HTTP_BODY_DATA_LF;
		return 0;
	case HTTP_BODY_DATA_LF:
		if (c != '\n')
			return body_fail(b, "chunk data overrun");
		b->state = HTTP_BODY_SIZE;
		return 0;
	case HTTP_BODY_TRAILER:
		return trailer_byte(b, c);
	default:
		return body_fail(b, "invalid body state");
	}
}

/* Payload in HTTP_BODY_DATA: up to the bytes left, without looking. */
static ssize_t
body_data(struct http_body *b, size_t len)
{
	size_t	n = len;

	if (b->framing != HTTP_FRAMING_CLOSE) {
		if ((uint64_t)n > b->remaining)
			n = (size_t)b->remaining;
		b->remaining -= n;
		if (b->remaining == 0)
			b->state = b->framing == HTTP_FRAMING_CHUNKED ?
			    HTTP_BODY_DATA_CR : HTTP_BODY_DONE;
	}
	b->total += n;
	return (ssize_t)n;
}

ssize_t
http_body_feed(struct http_body *b, const char *buf, size_t len,
    int *is_data)
{
	size_t	i;

	*is_data = 0;
	if (b->state == HTTP_BODY_ERROR)
		return -1;
	if (b->state == HTTP_BODY_DONE || len == 0)
		return 0;
	if (b->state == HTTP_BODY_DATA) {
		*is_data = 1;
		return body_data(b, len);
	}
	for (i = 0; i < len; i++) {
		if (chunk_frame_byte(b, (unsigned char)buf[i]) == -1)
			return -1;
		if (b->state == HTTP_BODY_DATA || b->state == HTTP_BODY_DONE)
			return (ssize_t)(i + 1);
	}
	return (ssize_t)len;
}

int
http_body_done(const struct http_body *b)
{
	return b->state == HTTP_BODY_DONE;
}
