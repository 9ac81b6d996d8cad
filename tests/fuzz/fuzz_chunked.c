/*
 * fuzz_chunked.c: libFuzzer target for the chunked body decoder.
 *
 * The input is fed once whole and once in pieces whose sizes come from
 * the byte at the start of each piece. Both runs must agree (the decoder
 * works byte by byte, so piece boundaries may not matter), and each feed
 * must keep its promises: a prefix of what it was given, payload only in
 * data prefixes, total equal to the payload returned.
 */
#include <stdint.h>
#include <stdlib.h>

#include "http.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

struct run {
	struct http_body	b;
	size_t			consumed;
	uint64_t		payload;
	int			failed;
};

/* Feed buf[0..len) in pieces of at most piece(buf[pos]) bytes. */
static void
run(struct run *r, const uint8_t *buf, size_t len, int whole)
{
	struct http_head	h = { 0 };
	size_t			n;
	ssize_t			got;
	int			is_data;

	h.framing = HTTP_FRAMING_CHUNKED;
	http_body_init(&r->b, &h);
	r->consumed = 0;
	r->payload = 0;
	r->failed = 0;
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

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct run	a, b;

	run(&a, data, size, 1);
	run(&b, data, size, 0);
	if (a.failed != b.failed || a.b.error_what != b.b.error_what ||
	    a.b.total != b.b.total || a.b.state != b.b.state ||
	    (!a.failed && a.consumed != b.consumed))
		abort();
	return 0;
}
