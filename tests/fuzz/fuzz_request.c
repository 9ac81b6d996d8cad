/*
 * fuzz_request.c: libFuzzer target for http_parse_request() and the body
 * decoder after it.
 *
 * The input is a request head (and maybe a body). It is parsed whole, then
 * again in three growing prefixes, each in its own exact-size copy (as if
 * the caller's buffer moved): both must give the same result and fields,
 * at the same offsets. A complete head's body is then decoded.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_http.h"
#include "http.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define MAX_HEAD	2048	/* small, so the size limits are reached */

/* Same outcome and fields, comparing pointers as offsets from their base. */
static int
same_head(const struct http_head *a, const char *abase, ssize_t ra,
    const struct http_head *b, const char *bbase, ssize_t rb)
{
	if (ra != rb)
		return 0;
	if (ra == HTTP_PARSE_ERROR)	/* the request line may be logged */
		return a->error == b->error && a->error_what == b->error_what &&
		    a->method_len == b->method_len &&
		    a->target_len == b->target_len &&
		    (a->method_len == 0 ||
		    memcmp(a->method_str, b->method_str, a->method_len) == 0) &&
		    (a->target_len == 0 ||
		    memcmp(a->target, b->target, a->target_len) == 0);
	if (ra == HTTP_PARSE_AGAIN)
		return 1;
	if (a->method != b->method || a->method_len != b->method_len ||
	    a->method_str - abase != b->method_str - bbase ||
	    a->target_len != b->target_len ||
	    a->target - abase != b->target - bbase ||
	    a->version_minor != b->version_minor ||
	    a->nheaders != b->nheaders || a->framing != b->framing ||
	    a->content_length != b->content_length || a->flags != b->flags)
		return 0;
	return fuzz_same_headers(a, abase, b, bbase);
}

/* Check what a complete head promises. */
static void
check_head(const struct http_head *h, const char *buf, ssize_t r)
{
	int	i;

	if (r <= 0)
		return;
	if (r > MAX_HEAD || h->nheaders > HTTP_MAX_HEADERS ||
	    memcmp(buf + r - 4, "\r\n\r\n", 4) != 0 ||
	    h->method_str < buf || h->target + h->target_len > buf + r ||
	    (h->version_minor != 0 && h->version_minor != 1))
		abort();
	for (i = 0; i < h->nheaders; i++)
		if (h->headers[i].name < buf || h->headers[i].name_len == 0 ||
		    h->headers[i].value + h->headers[i].value_len > buf + r)
			abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct http_head	 whole, part;
	const char		*buf = (const char *)data;
	char			*copy = NULL;
	size_t			 cuts[3], i;
	ssize_t			 rw, rp = HTTP_PARSE_AGAIN;

	http_head_reset(&whole);
	rw = http_parse_request(&whole, buf, size, MAX_HEAD);
	check_head(&whole, buf, rw);

	cuts[0] = size > 0 ? (size_t)data[0] * 7919 % (size + 1) : 0;
	cuts[1] = size > 1 ? (size_t)data[1] * 104729 % (size + 1) : 0;
	if (cuts[0] > cuts[1]) {
		cuts[2] = cuts[0];
		cuts[0] = cuts[1];
		cuts[1] = cuts[2];
	}
	cuts[2] = size;
	http_head_reset(&part);
	for (i = 0; i < 3 && rp == HTTP_PARSE_AGAIN; i++) {
		free(copy);
		if ((copy = malloc(cuts[i] + 1)) == NULL)
			abort();
		memcpy(copy, data, cuts[i]);
		rp = http_parse_request(&part, copy, cuts[i], MAX_HEAD);
	}
	if (!same_head(&whole, buf, rw, &part, copy, rp))
		abort();
	free(copy);

	if (rw > 0)
		fuzz_run_body(&whole, buf + rw, size - (size_t)rw);
	return 0;
}
