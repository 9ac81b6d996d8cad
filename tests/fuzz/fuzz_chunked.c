/*
 * fuzz_chunked.c: libFuzzer target for the chunked body decoder.
 *
 * The input is fed once whole, once in pieces whose sizes come from
 * the byte at the start of each piece, and once so in rechunk mode, as
 * spillway relays a request body. The runs must agree (the decoder works
 * byte by byte, so piece boundaries may not matter), and each feed must
 * keep its promises: a prefix of what it was given, payload only in data
 * prefixes, total equal to the payload returned. In rechunk mode the body
 * as relayed (chunk lines replaced by chunk_out) must be valid chunked
 * framing again, with the same payload and a bare HEX CRLF for every
 * chunk line.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

struct run {
	struct http_body	b;
	size_t			consumed;
	uint64_t		payload;
	int			failed;
	uint8_t			*out;	/* rechunk: the body as relayed */
	size_t			outlen;
	uint8_t			*data;	/* rechunk: its payload */
	size_t			datalen;
};

/* A relayed chunk line: lower-case hex without leading zeros, CRLF. */
static int
bare_line(const uint8_t *s, size_t n)
{
	size_t	i;

	if (n < 3 || s[n - 2] != '\r' || s[n - 1] != '\n' ||
	    (s[0] == '0' && n != 3))
		return 0;
	for (i = 0; i < n - 2; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

/* What rechunk mode promises for one piece; appends what goes on. */
static void
relay(struct run *r, const uint8_t *piece, size_t got, int is_data)
{
	if (r->b.chunk_line) {
		if (is_data || r->b.chunk_out_len > sizeof(r->b.chunk_out))
			abort();
		if (r->b.chunk_out_len > 0 && !bare_line((const uint8_t *)
		    r->b.chunk_out, r->b.chunk_out_len))
			abort();
		memcpy(r->out + r->outlen, r->b.chunk_out, r->b.chunk_out_len);
		r->outlen += r->b.chunk_out_len;
		return;
	}
	if (r->b.chunk_out_len != 0)
		abort();
	memcpy(r->out + r->outlen, piece, got);
	r->outlen += got;
	if (is_data) {
		memcpy(r->data + r->datalen, piece, got);
		r->datalen += got;
	}
}

/* Feed buf[0..len) in pieces of at most piece(buf[pos]) bytes. */
static void
run(struct run *r, const uint8_t *buf, size_t len, int whole, int rechunk)
{
	struct http_head	h = { 0 };
	size_t			n;
	ssize_t			got;
	int			is_data;

	h.framing = HTTP_FRAMING_CHUNKED;
	http_body_init(&r->b, &h);
	r->b.rechunk = rechunk;
	r->consumed = 0;
	r->payload = 0;
	r->failed = 0;
	r->outlen = r->datalen = 0;
	while (r->consumed < len) {
		n = len - r->consumed;
		if (!whole && n > 1)
			n = 1 + buf[r->consumed] % (n < 64 ? n : 64);
		got = http_body_feed(&r->b, (const char *)buf + r->consumed,
		    n, &is_data);
		if (got < 0) {
			if (r->b.state != HTTP_BODY_ERROR ||
			    r->b.error_what == NULL)
				abort();
			r->failed = 1;
			return;
		}
		if ((size_t)got > n || (got == 0 && !http_body_done(&r->b)))
			abort();
		if (got == 0)
			return;
		if (rechunk)
			relay(r, buf + r->consumed, (size_t)got, is_data);
		if (is_data)
			r->payload += (uint64_t)got;
		else if (r->b.state == HTTP_BODY_DATA && r->b.remaining == 0)
			abort();
		r->consumed += (size_t)got;
		if (r->b.total != r->payload || r->b.total > r->consumed ||
		    r->b.line_len > HTTP_CHUNK_LINE_MAX ||
		    r->b.trailer_len > HTTP_TRAILER_MAX)
			abort();
	}
}

static int
same(const struct run *a, const struct run *b)
{
	return a->failed == b->failed && a->b.error_what == b->b.error_what &&
	    a->b.total == b->b.total && a->b.state == b->b.state &&
	    (a->failed || a->consumed == b->consumed);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct run	a, b, c, d;

	run(&a, data, size, 1, 0);
	run(&b, data, size, 0, 0);
	/* a relayed line is never longer than the one it replaces */
	if ((c.out = malloc(size + 1)) == NULL ||
	    (c.data = malloc(size + 1)) == NULL)
		abort();
	run(&c, data, size, 0, 1);
	if (!same(&a, &b) || !same(&a, &c))
		abort();
	if (http_body_done(&c.b)) {
		/* what went on decodes to the same payload, to its end */
		if (c.outlen > c.consumed)
			abort();
		if ((d.out = malloc(c.outlen + 1)) == NULL ||
		    (d.data = malloc(c.outlen + 1)) == NULL)
			abort();
		run(&d, c.out, c.outlen, 0, 1);
		if (!http_body_done(&d.b) || d.consumed != c.outlen ||
		    d.datalen != c.datalen ||
		    memcmp(d.data, c.data, c.datalen) != 0 ||
		    d.outlen != c.outlen || memcmp(d.out, c.out, c.outlen) != 0)
			abort();
		free(d.out);
		free(d.data);
	}
	free(c.out);
	free(c.data);
	return 0;
}
