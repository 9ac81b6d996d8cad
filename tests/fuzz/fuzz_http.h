/*
 * fuzz_http.h: checks shared by the request and response fuzz targets.
 * Each aborts on a broken promise of the parser, for libFuzzer to report.
 */
#ifndef SPILLWAY_FUZZ_HTTP_H
#define SPILLWAY_FUZZ_HTTP_H

#include <stdint.h>
#include <stdlib.h>

#include "http.h"

/* The same header fields, pointers compared as offsets from their base. */
static int
fuzz_same_headers(const struct http_head *a, const char *abase,
    const struct http_head *b, const char *bbase)
{
	int	i;

	for (i = 0; i < a->nheaders; i++)
		if (a->headers[i].name - abase != b->headers[i].name - bbase ||
		    a->headers[i].name_len != b->headers[i].name_len ||
		    a->headers[i].value - abase !=
		    b->headers[i].value - bbase ||
		    a->headers[i].value_len != b->headers[i].value_len ||
		    a->headers[i].hop != b->headers[i].hop)
			return 0;
	return 1;
}

/* Decode the body after the head in pieces cut from the data. */
static void
fuzz_run_body(const struct http_head *h, const char *buf, size_t len)
{
	struct http_body	b;
	size_t			pos = 0, n;
	uint64_t		payload = 0;
	ssize_t			r;
	int			is_data;

	http_body_init(&b, h);
	while (pos < len) {
		n = len - pos;
		if (n > 1)
			n = 1 + (unsigned char)buf[pos] % n;
		r = http_body_feed(&b, buf + pos, n, &is_data);
		if (r < 0) {
			if (b.state != HTTP_BODY_ERROR || b.error_what == NULL)
				abort();
			break;
		}
		if ((size_t)r > n || (r == 0 && !http_body_done(&b)))
			abort();
		if (r == 0)
			break;
		if (is_data)
			payload += (uint64_t)r;
		pos += (size_t)r;
		if (b.total != payload || b.total > pos)
			abort();
	}
	if (h->framing == HTTP_FRAMING_LENGTH && http_body_done(&b) &&
	    b.total != h->content_length)
		abort();
	if (h->framing == HTTP_FRAMING_CLOSE && pos != len)
		abort();
}

#endif /* SPILLWAY_FUZZ_HTTP_H */
