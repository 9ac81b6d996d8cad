/*
 * fuzz_response.c: libFuzzer target for http_parse_response() and the body
 * decoder after it.
 *
 * The first byte picks the method of the request being answered; the rest
 * is a response head (and maybe a body). It is parsed whole, then again in
 * three growing prefixes, each in its own exact-size copy (as if the
 * caller's buffer moved): both must give the same result and fields, at
 * the same offsets. A complete head's body is then decoded.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_http.h"
#include "http.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define MAX_HEAD	2048	/* small, so the size limits are reached */

static int
same_head(const struct http_head *a, const char *abase, ssize_t ra,
    const struct http_head *b, const char *bbase, ssize_t rb)
{
	if (ra != rb)
		return 0;
	if (ra == HTTP_PARSE_ERROR)	/* the status line may be logged */
		return a->error == b->error && a->error_what == b->error_what &&
		    a->status == b->status && a->reason_len == b->reason_len &&
		    (a->reason_len == 0 ||
		    memcmp(a->reason, b->reason, a->reason_len) == 0);
	if (ra == HTTP_PARSE_AGAIN)
		return 1;
	if (a->status != b->status || a->reason_len != b->reason_len ||
	    a->reason - abase != b->reason - bbase ||
	    a->version_minor != b->version_minor ||
	    a->nheaders != b->nheaders || a->framing != b->framing ||
	    a->content_length != b->content_length || a->flags != b->flags)
		return 0;
	return fuzz_same_headers(a, abase, b, bbase);
}

static void
check_head(const struct http_head *h, const char *buf, ssize_t r,
    enum http_method m)
{
	int	i;

	if (r == HTTP_PARSE_ERROR && (h->error != 502 || h->error_what == NULL))
		abort();
	if (r <= 0)
		return;
	if (r > MAX_HEAD || h->nheaders > HTTP_MAX_HEADERS ||
	    memcmp(buf + r - 4, "\r\n\r\n", 4) != 0 ||
	    h->status < 100 || h->status > 599 ||
	    h->reason + h->reason_len > buf + r)
		abort();
	if ((m == HTTP_M_HEAD || h->status < 200 || h->status == 204 ||
	    h->status == 304) && h->framing != HTTP_FRAMING_NONE)
		abort();
	for (i = 0; i < h->nheaders; i++)
		if (h->headers[i].name < buf || h->headers[i].name_len == 0 ||
		    h->headers[i].value + h->headers[i].value_len > buf + r)
			abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum http_method methods[] = {
		HTTP_M_GET, HTTP_M_HEAD, HTTP_M_POST, HTTP_M_CONNECT,
	};
	static struct http_head	 whole, part;
	enum http_method	 m;
	const char		*buf;
	char			*copy = NULL;
	size_t			 cuts[3], i;
	ssize_t			 rw, rp = HTTP_PARSE_AGAIN;

	if (size == 0)
		return 0;
	m = methods[data[0] % 4];
	buf = (const char *)data + 1;
	size--;

	http_head_reset(&whole);
	rw = http_parse_response(&whole, buf, size, MAX_HEAD, m);
	check_head(&whole, buf, rw, m);

	cuts[0] = size > 0 ? (size_t)(unsigned char)buf[0] * 7919 %
	    (size + 1) : 0;
	cuts[1] = size > 1 ? (size_t)(unsigned char)buf[1] * 104729 %
	    (size + 1) : 0;
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
		memcpy(copy, buf, cuts[i]);
		rp = http_parse_response(&part, copy, cuts[i], MAX_HEAD, m);
	}
	if (!same_head(&whole, buf, rw, &part, copy, rp))
		abort();
	free(copy);

	if (rw > 0)
		fuzz_run_body(&whole, buf + rw, size - (size_t)rw);
	return 0;
}
