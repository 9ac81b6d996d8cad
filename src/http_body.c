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

/*
 * Where a chunk line is, in b->in_ext (RFC 9112 7.1.1):
 *
 *   chunk-size [ chunk-ext ] CRLF
 *   chunk-ext      = *( BWS ";" BWS chunk-ext-name
 *                       [ BWS "=" BWS chunk-ext-val ] )
 *   chunk-ext-name = token
 *   chunk-ext-val  = token / quoted-string
 *
 * BWS belongs before a ";" or "=", never before the CRLF: "5 \r\n" and
 * "5;a \r\n" are refused, as are "5;\r\n" and "5;a=\r\n".
 */
enum chunk_ext {
	CE_SIZE = 0,	/* in the hex digits */
	CE_SIZE_BWS,	/* whitespace after them: ";" must follow */
	CE_NAME0,	/* after ";": BWS, then a name */
	CE_NAME,	/* in a name: CRLF, BWS, ";" or "=" may follow */
	CE_NAME_BWS,	/* whitespace after a name: ";" or "=" must follow */
	CE_VAL0,	/* after "=": BWS, then a token or a quoted-string */
	CE_TOKEN,	/* in a token value */
	CE_QUOTED,	/* in a quoted-string */
	CE_QPAIR,	/* after a backslash in it */
	CE_END,		/* after a closing quote: CRLF, BWS or ";" */
	CE_BWS,		/* whitespace after a value: ";" must follow */
};

/* qdtext (RFC 9110 5.6.4): HTAB, SP, VCHAR but '"' and '\', obs-text. */
static int
is_qdtext(unsigned char c)
{
	return is_vchar_ws(c) && c != '"' && c != '\\';
}

/* One byte of a chunk extension, anything but CR and LF. */
static int
chunk_ext_byte(struct http_body *b, unsigned char c)
{
	int	ws = c == ' ' || c == '\t';

	switch (b->in_ext) {
	case CE_NAME0:
	case CE_VAL0:
		if (ws)
			return 0;
		if (b->in_ext == CE_VAL0 && c == '"') {
			b->in_ext = CE_QUOTED;
			return 0;
		}
		if (!is_tchar(c))
			break;
		b->in_ext = b->in_ext == CE_NAME0 ? CE_NAME : CE_TOKEN;
		return 0;
	case CE_NAME:
	case CE_TOKEN:
		if (is_tchar(c))
			return 0;
		/* FALLTHROUGH */
	case CE_NAME_BWS:
	case CE_END:
	case CE_BWS:
		if (ws) {
			b->in_ext = b->in_ext == CE_NAME ||
			    b->in_ext == CE_NAME_BWS ? CE_NAME_BWS : CE_BWS;
			return 0;
		}
		if (c == ';') {
			b->in_ext = CE_NAME0;
			return 0;
		}
		if (c == '=' && (b->in_ext == CE_NAME ||
		    b->in_ext == CE_NAME_BWS)) {
			b->in_ext = CE_VAL0;
			return 0;
		}
		break;
	case CE_QUOTED:
		if (c == '"')
			b->in_ext = CE_END;
		else if (c == '\\')
			b->in_ext = CE_QPAIR;
		else if (!is_qdtext(c))
			break;
		return 0;
	case CE_QPAIR:
		if (!is_vchar_ws(c))
			break;
		b->in_ext = CE_QUOTED;
		return 0;
	}
	return body_fail(b, "invalid chunk extension");
}

/* Write "HEX\r\n", the chunk line that goes on, into b->chunk_out. */
static void
chunk_line_out(struct http_body *b)
{
	static const char	 hex[] = "0123456789abcdef";
	char			 tmp[16];
	uint64_t		 v = b->remaining;
	size_t			 n = 0, i;

	do {
		tmp[n++] = hex[v & 0xf];
		v >>= 4;
	} while (v > 0);
	for (i = 0; i < n; i++)
		b->chunk_out[i] = tmp[n - 1 - i];
	memcpy(b->chunk_out + n, "\r\n", 2);
	b->chunk_out_len = n + 2;
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
		if (b->size_digits == 0 || b->in_ext == CE_SIZE_BWS)
			return body_fail(b, "invalid chunk size");
		if (b->in_ext != CE_SIZE && b->in_ext != CE_NAME &&
		    b->in_ext != CE_TOKEN && b->in_ext != CE_END)
			return body_fail(b, "invalid chunk extension");
		b->state = HTTP_BODY_SIZE_LF;
		return 0;
	}
	if (b->in_ext == CE_SIZE && (d = hex_value(c)) >= 0) {
		/* Bounded to fit an off_t; leading zeros are free. */
		if (b->remaining > ((uint64_t)INT64_MAX - (uint64_t)d) / 16)
			return body_fail(b, "chunk size overflow");
		b->remaining = b->remaining * 16 + (uint64_t)d;
		b->size_digits++;
		return 0;
	}
	if (b->size_digits == 0)
		return body_fail(b, "invalid chunk size");
	if (b->in_ext != CE_SIZE && b->in_ext != CE_SIZE_BWS)
		return chunk_ext_byte(b, c);
	if (c == ' ' || c == '\t')	/* BWS before ';' */
		b->in_ext = CE_SIZE_BWS;
	else if (c == ';')
		b->in_ext = CE_NAME0;
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
		if (b->rechunk)
			chunk_line_out(b);
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

/* In a chunk line: its size, extensions, CR and LF. */
static int
in_chunk_line(const struct http_body *b)
{
	return b->state == HTTP_BODY_SIZE || b->state == HTTP_BODY_SIZE_LF;
}

ssize_t
http_body_feed(struct http_body *b, const char *buf, size_t len,
    int *is_data)
{
	size_t	i;
	int	line;

	*is_data = 0;
	b->chunk_line = 0;
	b->chunk_out_len = 0;
	if (b->state == HTTP_BODY_ERROR)
		return -1;
	if (b->state == HTTP_BODY_DONE || len == 0)
		return 0;
	if (b->state == HTTP_BODY_DATA) {
		*is_data = 1;
		return body_data(b, len);
	}
	line = in_chunk_line(b);
	for (i = 0; i < len; i++) {
		if (chunk_frame_byte(b, (unsigned char)buf[i]) == -1)
			return -1;
		if (b->state == HTTP_BODY_DATA || b->state == HTTP_BODY_DONE)
			break;
		/* rechunk: a chunk line is a piece of its own */
		if (b->rechunk && in_chunk_line(b) != line)
			break;
	}
	b->chunk_line = b->rechunk && line;
	return (ssize_t)(i < len ? i + 1 : len);
}

int
http_body_done(const struct http_body *b)
{
	return b->state == HTTP_BODY_DONE;
}
