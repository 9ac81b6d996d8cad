/*
 * test_http.c: unit tests for the HTTP head parser and body decoder.
 */
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "tap.h"

#define MAX_HEAD	8192

static struct http_head	head;

/* Parse a whole request; returns the parse result. */
static ssize_t
req(const char *s)
{
	http_head_reset(&head);
	return http_parse_request(&head, s, strlen(s), MAX_HEAD);
}

/* The status a request is refused with; 0 if accepted, -1 if incomplete. */
static int
req_status(const char *s)
{
	ssize_t	r = req(s);

	if (r > 0)
		return 0;
	return r == HTTP_PARSE_AGAIN ? -1 : head.error;
}

static ssize_t
resp(const char *s, enum http_method m)
{
	http_head_reset(&head);
	return http_parse_response(&head, s, strlen(s), MAX_HEAD, m);
}

static int
resp_status(const char *s, enum http_method m)
{
	ssize_t	r = resp(s, m);

	if (r > 0)
		return 0;
	return r == HTTP_PARSE_AGAIN ? -1 : head.error;
}

static const char *
value_of(const char *name)
{
	static char			 v[256];
	const struct http_header	*hd;

	if ((hd = http_head_find(&head, name)) == NULL ||
	    hd->value_len >= sizeof(v))
		return NULL;
	memcpy(v, hd->value, hd->value_len);
	v[hd->value_len] = '\0';
	return v;
}

static int
hop_of(const char *name)
{
	const struct http_header *hd = http_head_find(&head, name);

	return hd == NULL ? -1 : hd->hop;
}

/*
 * Feed s[0..len) to a fresh head one byte more at a time, each call on its
 * own copy (the caller's buffer may move as it grows), and compare with a
 * whole parse: same result, error and fields.
 */
static int
bytewise_matches(const char *s, size_t len, int is_req)
{
	struct http_head	*a, *b;
	char			*copy = NULL;
	ssize_t			 ra = 0, rb;
	size_t			 i;
	int			 ok = 1, k;

	a = calloc(1, sizeof(*a));
	b = calloc(1, sizeof(*b));
	rb = is_req ? http_parse_request(b, s, len, MAX_HEAD) :
	    http_parse_response(b, s, len, MAX_HEAD, HTTP_M_GET);
	for (i = 1; i <= len; i++) {
		free(copy);
		copy = malloc(i);
		memcpy(copy, s, i);
		ra = is_req ? http_parse_request(a, copy, i, MAX_HEAD) :
		    http_parse_response(a, copy, i, MAX_HEAD, HTTP_M_GET);
		if (ra != HTTP_PARSE_AGAIN)
			break;
	}
	if (ra != rb || a->error != b->error || a->error_what != b->error_what)
		ok = 0;
	if (ok && ra > 0) {
		if (a->nheaders != b->nheaders || a->framing != b->framing ||
		    a->flags != b->flags || a->method != b->method ||
		    a->status != b->status ||
		    a->content_length != b->content_length ||
		    a->target_len != b->target_len ||
		    (is_req && a->target - copy != b->target - s))
			ok = 0;
		for (k = 0; ok && k < a->nheaders; k++)
			if (a->headers[k].value - copy !=
			    b->headers[k].value - s ||
			    a->headers[k].value_len !=
			    b->headers[k].value_len ||
			    a->headers[k].hop != b->headers[k].hop)
				ok = 0;
	}
	free(copy);
	free(a);
	free(b);
	return ok;
}

/*
 * Decode a body of the given framing from s[0..len), feeding at most piece
 * bytes per call. Payload goes to out. Returns the bytes consumed when done,
 * -1 on error (what set), -2 if not done at the end of the input.
 */
static long
decode(struct http_body *b, enum http_framing f, uint64_t cl, const char *s,
    size_t len, size_t piece, char *out, size_t *outlen)
{
	struct http_head	*h;
	size_t			 pos = 0, n;
	ssize_t			 r;
	int			 is_data;

	h = calloc(1, sizeof(*h));
	h->framing = f;
	h->content_length = cl;
	http_body_init(b, h);
	free(h);
	*outlen = 0;
	while (!http_body_done(b) && pos < len) {
		n = len - pos < piece ? len - pos : piece;
		r = http_body_feed(b, s + pos, n, &is_data);
		if (r < 0)
			return -1;
		if (r == 0 || (size_t)r > n)
			return -3;
		if (is_data) {
			memcpy(out + *outlen, s + pos, (size_t)r);
			*outlen += (size_t)r;
		}
		pos += (size_t)r;
	}
	if (!http_body_done(b))
		return -2;
	return (long)pos;
}

static long
dechunk(const char *s, size_t piece, char *out, size_t *outlen)
{
	static struct http_body	b;

	return decode(&b, HTTP_FRAMING_CHUNKED, 0, s, strlen(s), piece, out,
	    outlen);
}

/* Requests that parse. */

static void
test_get_simple(void)
{
	const char	*s = "GET /index.html?q=1 HTTP/1.1\r\n"
			    "Host: example.com\r\n"
			    "User-Agent: t\r\n\r\n";

	CHECK_EQ_INT(req(s), strlen(s));
	CHECK_EQ_INT(head.method, HTTP_M_GET);
	CHECK_EQ_INT(head.method_len, 3);
	CHECK_EQ_INT(head.target_len, strlen("/index.html?q=1"));
	CHECK(memcmp(head.target, "/index.html?q=1", head.target_len) == 0);
	CHECK_EQ_INT(head.version_minor, 1);
	CHECK_EQ_INT(head.nheaders, 2);
	CHECK_EQ_STR(value_of("host"), "example.com");
	CHECK_EQ_STR(value_of("USER-AGENT"), "t");
	CHECK_EQ_INT(head.framing, HTTP_FRAMING_NONE);
	CHECK(head.flags & HTTP_F_HAS_HOST);
	CHECK(http_head_find(&head, "Accept") == NULL);
	CHECK_EQ_INT(hop_of("Host"), 0);
}

static void
test_head_followed_by_body(void)
{
	const char	*s = "POST /up HTTP/1.1\r\nHost: a\r\n"
			    "Content-Length: 5\r\n\r\nhello";

	CHECK_EQ_INT(req(s), strlen(s) - 5);
	CHECK_EQ_INT(head.method, HTTP_M_POST);
	CHECK_EQ_INT(head.framing, HTTP_FRAMING_LENGTH);
	CHECK_EQ_INT(head.content_length, 5);
}

static void
test_post_cl_zero(void)
{
	struct http_body	b;
	int			is_data;

	CHECK(req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")
	    > 0);
	CHECK_EQ_INT(head.framing, HTTP_FRAMING_LENGTH);
	CHECK_EQ_INT(head.content_length, 0);
	http_body_init(&b, &head);
	CHECK(http_body_done(&b));
	CHECK_EQ_INT(http_body_feed(&b, "GET", 3, &is_data), 0);
}

static void
test_cl_leading_zeros_and_max(void)
{
	CHECK(req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\n\r\n")
	    > 0);
	CHECK_EQ_INT(head.content_length, 7);
	CHECK(req("POST / HTTP/1.1\r\nHost: a\r\n"
	    "Content-Length: 9223372036854775807\r\n\r\n") > 0);
	CHECK(head.content_length == (uint64_t)INT64_MAX);
}

static void
test_post_chunked(void)
{
	CHECK(req("POST / HTTP/1.1\r\nHost: a\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n") > 0);
	CHECK_EQ_INT(head.framing, HTTP_FRAMING_CHUNKED);
	CHECK(req("POST / HTTP/1.1\r\nHost: a\r\n"
	    "Transfer-Encoding:  ChUnKeD \t\r\n\r\n") > 0);
	CHECK_EQ_INT(head.framing, HTTP_FRAMING_CHUNKED);
	/* empty list elements are ignored (RFC 9110 5.6.1) */
	CHECK(req("POST / HTTP/1.1\r\nHost: a\r\n"
	    "Transfer-Encoding: , chunked,\r\n\r\n") > 0);
	CHECK_EQ_INT(head.framing, HTTP_FRAMING_CHUNKED);
}

static void
test_absolute_form(void)
{
	CHECK(req("GET http://example.com/x HTTP/1.1\r\nHost: example.com\r\n"
	    "\r\n") > 0);
	CHECK_EQ_INT(head.target_len, strlen("http://example.com/x"));
	CHECK_EQ_INT(req_status("GET https://e:8443/ HTTP/1.1\r\n"
	    "Host: e:8443\r\n\r\n"), 0);
	CHECK_EQ_INT(req_status("GET http:/x HTTP/1.1\r\nHost: e\r\n\r\n"),
	    400);
	CHECK_EQ_INT(req_status("GET 1http://e/ HTTP/1.1\r\nHost: e\r\n\r\n"),
	    400);
	CHECK_EQ_INT(req_status("GET x HTTP/1.1\r\nHost: e\r\n\r\n"), 400);
}

/* The authority of an absolute-form target is the Host, or it is a 400. */
static void
test_absolute_form_host(void)
{
	CHECK_EQ_INT(req_status("GET http://Example.COM/x HTTP/1.1\r\n"
	    "Host: example.com\r\n\r\n"), 0);
	CHECK_EQ_INT(req_status("GET http://e?q HTTP/1.1\r\nHost: e\r\n\r\n"),
	    0);
	CHECK_EQ_INT(req_status("GET http://a/ HTTP/1.1\r\nHost: b\r\n\r\n"),
	    400);
	CHECK_EQ_INT(req_status("GET http://a:80/ HTTP/1.1\r\nHost: a\r\n"
	    "\r\n"), 400);
	CHECK_EQ_INT(req_status("GET http://a/ HTTP/1.1\r\nHost: ab\r\n\r\n"),
	    400);
	CHECK_EQ_INT(req_status("GET http://u@a/ HTTP/1.1\r\nHost: a\r\n"
	    "\r\n"), 400);
	CHECK_EQ_INT(req_status("GET http://u@a/ HTTP/1.0\r\n\r\n"), 400);
	/* CONNECT: the whole authority-form target */
	CHECK_EQ_INT(req_status("CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n"
	    "\r\n"), 0);
	CHECK_EQ_INT(req_status("CONNECT a:443 HTTP/1.1\r\nHost: b:443\r\n"
	    "\r\n"), 400);
	CHECK_EQ_INT(req_status("CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n"),
	    400);
	/* HTTP/1.0 without Host: the target alone routes */
	CHECK_EQ_INT(req_status("GET http://a/ HTTP/1.0\r\n\r\n"), 0);
}

/* A fragment is never part of a request target. */
static void
test_target_fragment(void)
{
	CHECK_EQ_INT(req_status("GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
	CHECK_EQ_INT(req_status("GET /# HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
}

/* Content_Length and Transfer_Encoding would frame a CGI backend's body. */
static void
test_framing_lookalike(void)
{
	CHECK_EQ_INT(req_status("POST / HTTP/1.1\r\nHost: a\r\n"
	    "Content_Length: 5\r\n\r\n"), 400);
	CHECK_EQ_INT(req_status("POST / HTTP/1.1\r\nHost: a\r\n"
	    "transfer_encoding: chunked\r\n\r\n"), 400);
	CHECK_EQ_INT(req_status("POST / HTTP/1.1\r\nHost: a\r\n"
	    "Transfer-Encoding: chunked\r\nContent_Length: 5\r\n\r\n"), 400);
	/* other names with '_' pass, and so do responses */
	CHECK_EQ_INT(req_status("GET / HTTP/1.1\r\nHost: a\r\n"
	    "X_Api_Key: 5\r\nContent_Lengths: 1\r\n\r\n"), 0);
	CHECK_EQ_INT(resp_status("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n"
	    "Content_Length: 5\r\n\r\n", HTTP_M_GET), 0);
}

static void
test_options_asterisk(void)
{
	CHECK(req("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n") > 0);
	CHECK_EQ_INT(head.method, HTTP_M_OPTIONS);
	CHECK_EQ_INT(req_status("GET * HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
	CHECK_EQ_INT(req_status("OPTIONS *x HTTP/1.1\r\nHost: a\r\n\r\n"),
	    400);
}

static void
test_connect_authority(void)
{
	CHECK(req("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443"
	    "\r\n\r\n") > 0);
	CHECK_EQ_INT(head.method, HTTP_M_CONNECT);
	CHECK_EQ_INT(req_status("CONNECT [::1]:443 HTTP/1.1\r\n"
	    "Host: [::1]:443\r\n\r\n"), 0);
	CHECK_EQ_INT(req_status("CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
	CHECK_EQ_INT(req_status("CONNECT a: HTTP/1.1\r\nHost: a\r\n\r\n"),
	    400);
	CHECK_EQ_INT(req_status("CONNECT :443 HTTP/1.1\r\nHost: a\r\n\r\n"),
	    400);
	CHECK_EQ_INT(req_status("GET a.b:80 HTTP/1.1\r\nHost: a\r\n\r\n"),
	    400);
}

static void
test_http10(void)
{
	CHECK(req("GET / HTTP/1.0\r\n\r\n") > 0);
	CHECK_EQ_INT(head.version_minor, 0);
	CHECK(!(head.flags & HTTP_F_HAS_HOST));
	CHECK(req("GET / HTTP/1.0\r\nHost: a\r\n\r\n") > 0);
	CHECK(head.flags & HTTP_F_HAS_HOST);
	CHECK_EQ_INT(req_status("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n"),
	    400);
}

static void
test_minor_version(void)
{
	CHECK(req("GET / HTTP/1.9\r\nHost: a\r\n\r\n") > 0);
	CHECK_EQ_INT(head.version_minor, 1);
}

static void
test_leading_crlf(void)
{
	const char	*s = "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";

	CHECK_EQ_INT(req(s), strlen(s));
	CHECK_EQ_INT(head.method, HTTP_M_GET);
	CHECK_EQ_INT(head.method_str - s, 4);
	CHECK_EQ_INT(head.line_end, 4 + strlen("GET / HTTP/1.1\r\n"));
	CHECK_EQ_INT(req("\r\n\r\n"), HTTP_PARSE_AGAIN);
	CHECK_EQ_INT(req_status("\r\n\n"), 400);
}

static void
test_leading_crlf_bounded(void)
{
	static char	buf[MAX_HEAD + 64];
	size_t		i;

	for (i = 0; i + 1 < sizeof(buf); i += 2)
		memcpy(buf + i, "\r\n", 2);
	http_head_reset(&head);
	CHECK_EQ_INT(http_parse_request(&head, buf, sizeof(buf), MAX_HEAD),
	    HTTP_PARSE_ERROR);
	CHECK_EQ_INT(head.error, 414);
}

static void
test_many_headers(void)
{
	char	buf[MAX_HEAD];
	size_t	n;
	int	i;

	n = (size_t)snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: a\r\n");
	for (i = 1; i < HTTP_MAX_HEADERS; i++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n,
		    "X-H%d: v%d\r\n", i, i);
	n += (size_t)snprintf(buf + n, sizeof(buf) - n, "\r\n");
	CHECK_EQ_INT(req(buf), n);
	CHECK_EQ_INT(head.nheaders, HTTP_MAX_HEADERS);
	CHECK_EQ_STR(value_of("x-h99"), "v99");
}

static void
test_too_many_headers(void)
{
	char	buf[MAX_HEAD];
	size_t	n;
	int	i;

	n = (size_t)snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: a\r\n");
	for (i = 1; i <= HTTP_MAX_HEADERS; i++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n,
		    "X-H%d: v\r\n", i);
	/* refused as soon as the 101st line is complete */
	CHECK_EQ_INT(req_status(buf), 431);
	snprintf(buf + n, sizeof(buf) - n, "\r\n");
	CHECK_EQ_INT(req_status(buf), 431);
}

static void
test_ows_trimming(void)
{
	CHECK(req("GET / HTTP/1.1\r\nHost:a\r\nX-A: \t v  w \t \r\n"
	    "X-B:\r\nX-C:   \r\n\r\n") > 0);
	CHECK_EQ_STR(value_of("host"), "a");
	CHECK_EQ_STR(value_of("x-a"), "v  w");
	CHECK_EQ_STR(value_of("x-b"), "");
	CHECK_EQ_STR(value_of("x-c"), "");
}

static void
test_obs_text_value(void)
{
	CHECK(req("GET / HTTP/1.1\r\nHost: a\r\nX-A: caf\xc3\xa9 \xff\r\n\r\n")
	    > 0);
	CHECK_EQ_STR(value_of("x-a"), "caf\xc3\xa9 \xff");
}

static void
test_unknown_method(void)
{
	CHECK(req("PROPFIND /d HTTP/1.1\r\nHost: a\r\n\r\n") > 0);
	CHECK_EQ_INT(head.method, HTTP_M_OTHER);
	CHECK_EQ_INT(head.method_len, 8);
	/* methods are case-sensitive */
	CHECK(req("get / HTTP/1.1\r\nHost: a\r\n\r\n") > 0);
	CHECK_EQ_INT(head.method, HTTP_M_OTHER);
	CHECK(req("DELETE / HTTP/1.1\r\nHost: a\r\n\r\n") > 0);
	CHECK_EQ_INT(head.method, HTTP_M_DELETE);
}

static void
test_incomplete(void)
{
	CHECK_EQ_INT(req(""), HTTP_PARSE_AGAIN);
	CHECK_EQ_INT(req("GET / HTTP/1.1\r\nHost: a\r\n"), HTTP_PARSE_AGAIN);
	CHECK_EQ_INT(req("GET / HTTP/1.1\r\nHost: a\r\n\r"), HTTP_PARSE_AGAIN);
}

static void
test_bytewise_requests(void)
{
	static const char *const good[] = {
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		("\r\nPOST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
		    "Connection: x-a, close\r\nX-A: 1\r\n\r\nabc"),
		("PUT / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
		    "\r\n0\r\n\r\n"),
	};
	static const char *const bad[] = {
		"GET / HTTP/1.1\nHost: a\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\n b\r\n\r\n",
		"GET / HTTP/2.0\r\n\r\n",
		"GET / HTTP/1.1\r\n\r\n",
		("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n"
		    "Content-Length: 1\r\n\r\n"),
	};
	size_t	i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		CHECK(bytewise_matches(good[i], strlen(good[i]), 1));
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK(bytewise_matches(bad[i], strlen(bad[i]), 1));
	CHECK(bytewise_matches("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
	    "\r\nok", 40, 0));
}

static void
test_terminator_straddles_calls(void)
{
	const char	*s = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
	size_t		 n = strlen(s);

	http_head_reset(&head);
	CHECK_EQ_INT(http_parse_request(&head, s, n - 3, MAX_HEAD),
	    HTTP_PARSE_AGAIN);
	CHECK_EQ_INT(http_parse_request(&head, s, n - 1, MAX_HEAD),
	    HTTP_PARSE_AGAIN);
	CHECK_EQ_INT(http_parse_request(&head, s, n, MAX_HEAD), n);
	CHECK_EQ_INT(head.nheaders, 1);
}

static void
test_early_request_line_error(void)
{
	/* the line is refused before the head is complete */
	CHECK_EQ_INT(req_status("G@T / HTTP/1.1\r\n"), 400);
	CHECK_EQ_INT(req_status("GET / HTTP/3.0\r\n"), 505);
	CHECK_EQ_INT(req_status("GET / HTTP/1.1\r\nX\x01"), 400);
}

static void
test_head_reset(void)
{
	CHECK(req_status("GET / HTTP/1.1\r\n\r\n") == 400);
	http_head_reset(&head);
	CHECK_EQ_INT(head.error, 0);
	CHECK(head.error_what == NULL);
	CHECK_EQ_INT(head.scanned, 0);
	CHECK_EQ_INT(head.nheaders, 0);
	CHECK_EQ_INT(http_parse_request(&head, "GET / HTTP/1.0\r\n\r\n", 18,
	    MAX_HEAD), 18);
}

static void
test_error_fields_follow_buffer(void)
{
	const char	*s = "GET /x HTTP/1.1\r\nHost: a\r\n"
			    "Bad Name: 1\r\n\r\n";
	char		*a, *b;
	size_t		 n = strlen(s);

	/* the request line is checked in the first call, from buffer a */
	a = malloc(n);
	memcpy(a, s, 20);
	http_head_reset(&head);
	CHECK_EQ_INT(http_parse_request(&head, a, 20, MAX_HEAD),
	    HTTP_PARSE_AGAIN);
	/* the buffer moves, and the error comes later */
	b = malloc(n);
	memcpy(b, s, n);
	free(a);
	CHECK_EQ_INT(http_parse_request(&head, b, n, MAX_HEAD),
	    HTTP_PARSE_ERROR);
	CHECK_EQ_INT(head.error, 400);
	CHECK(head.method_str == b);
	CHECK(head.target == b + 4);
	CHECK_EQ_INT(head.target_len, 2);
	free(b);
}

/* Malformed requests. */

static void
test_bare_lf(void)
{
	CHECK_EQ_INT(req_status("GET / HTTP/1.1\nHost: a\r\n\r\n"), 400);
	CHECK_EQ_STR(head.error_what, "bare LF in head");
	CHECK_EQ_INT(req_status("GET / HTTP/1.1\r\nHost: a\n\r\n"), 400);
	CHECK_EQ_INT(req_status("GET / HTTP/1.1\r\nHost: a\r\n\n"), 400);
	CHECK_EQ_INT(req_status("\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
}

static void
test_stray_cr(void)
{
	CHECK_EQ_INT(req_status("GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n"),
	    400);
	CHECK_EQ_STR(head.error_what, "stray CR in head");
	CHECK_EQ_INT(req_status("GET /\r HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
	CHECK_EQ_INT(req_status("GET / HTTP/1.1\r\r\nHost: a\r\n\r\n"), 400);
	CHECK_EQ_INT(req_status("GET / HTTP/1.1\r\nHost: a\r\n\r\r\n"), 400);
}

static void
test_obs_fold(void)
{
	CHECK_EQ_INT(req_status("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n"
	    "\r\n"), 400);
	CHECK_EQ_STR(head.error_what, "obs-fold in head");
	CHECK_EQ_INT(req_status("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n"
	    "\r\n"), 400);
	CHECK_EQ_INT(req_status("GET / HTTP/1.1\r\n Host: a\r\n\r\n"), 400);
}

static void
test_nul_in_value(void)
{
	static const char	s[] = "GET / HTTP/1.1\r\nHost: a\r\n"
				    "X: a\0b\r\n\r\n";

	http_head_reset(&head);
	CHECK_EQ_INT(http_parse_request(&head, s, sizeof(s) - 1, MAX_HEAD),
	    HTTP_PARSE_ERROR);
	CHECK_EQ_INT(head.error, 400);
	CHECK_EQ_STR(head.error_what, "NUL in head");
}

static void
test_control_chars(void)
{
	CHECK_EQ_INT(req_status("GET / HTTP/1.1\r\nHost: a\r\nX: a\x01" "b\r\n"
	    "\r\n"), 400);
	CHECK_EQ_INT(req_status("GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f\r\n"
	    "\r\n"), 400);
	CHECK_EQ_INT(req_status("GET / HTTP/1.1\r\nHost: a\r\nX: \x1b[0m\r\n"
	    "\r\n"), 400);
	/* HTAB is fine in a value, not in the request line */
	CHECK_EQ_INT(req_status("GET / HTTP/1.1\r\nHost: a\r\nX: a\tb\r\n"
	    "\r\n"), 0);
	CHECK_EQ_INT(req_status("GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
}

static void
test_space_before_colon(void)
{
	CHECK_EQ_INT(req_status("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), 400);
	CHECK_EQ_STR(head.error_what, "whitespace in header name");
	CHECK_EQ_INT(req_status("GET / HTTP/1.1\r\nHost: a\r\nX\t: b\r\n\r\n"),
	    400);
}

static void
test_invalid_name_char(void)
{
	CHECK_EQ_INT(req_status("GET / HTTP/1.1\r\nHost: a\r\nX(y): b\r\n\r\n"),
	    400);
	CHECK_EQ_INT(req_status("GET / HTTP/1.1\r\nHost: a\r\nX\xc3\xa9: b\r\n"
	    "\r\n"), 400);
	CHECK_EQ_INT(req_status("GET / HTTP/1.1\r\nHost: a\r\nX/Y: b\r\n\r\n"),
	    400);
}

static void
test_empty_name_and_no_colon(void)
{
	CHECK_EQ_INT(req_status("GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n"),
	    400);
	CHECK_EQ_STR(head.error_what, "empty header name");
	CHECK_EQ_INT(req_status("GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n"),
	    400);
	CHECK_EQ_STR(head.error_what, "header without colon");
}

static void
test_cl_and_te(void)
{
	CHECK_EQ_INT(req_status("POST / HTTP/1.1\r\nHost: a\r\n"
	    "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"), 400);
	CHECK_EQ_INT(req_status("POST / HTTP/1.1\r\nHost: a\r\n"
	    "Transfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n"), 400);
}

static void
test_repeated_cl(void)
{
	CHECK_EQ_INT(req_status("POST / HTTP/1.1\r\nHost: a\r\n"
	    "Content-Length: 5\r\nContent-Length: 5\r\n\r\n"), 400);
	CHECK_EQ_STR(head.error_what, "repeated Content-Length");
	CHECK_EQ_INT(req_status("POST / HTTP/1.1\r\nHost: a\r\n"
	    "Content-Length: 5\r\ncontent-length: 6\r\n\r\n"), 400);
}

static void
test_cl_list(void)
{
	CHECK_EQ_INT(req_status("POST / HTTP/1.1\r\nHost: a\r\n"
	    "Content-Length: 5, 5\r\n\r\n"), 400);
	CHECK_EQ_STR(head.error_what, "invalid Content-Length");
	CHECK_EQ_INT(req_status("POST / HTTP/1.1\r\nHost: a\r\n"
	    "Content-Length: 5 5\r\n\r\n"), 400);
}

static void
test_cl_sign(void)
{
	CHECK_EQ_INT(req_status("POST / HTTP/1.1\r\nHost: a\r\n"
	    "Content-Length: +5\r\n\r\n"), 400);
	CHECK_EQ_INT(req_status("POST / HTTP/1.1\r\nHost: a\r\n"
	    "Content-Length: -1\r\n\r\n"), 400);
	CHECK_EQ_INT(req_status("POST / HTTP/1.1\r\nHost: a\r\n"
	    "Content-Length: 0x10\r\n\r\n"), 400);
	CHECK_EQ_INT(req_status("POST / HTTP/1.1\r\nHost: a\r\n"
	    "Content-Length:\r\n\r\n"), 400);
}

static void
test_cl_overflow(void)
{
	CHECK_EQ_INT(req_status("POST / HTTP/1.1\r\nHost: a\r\n"
	    "Content-Length: 9223372036854775808\r\n\r\n"), 400);
	CHECK_EQ_INT(req_status("POST / HTTP/1.1\r\nHost: a\r\n"
	    "Content-Length: 18446744073709551616\r\n\r\n"), 400);
	CHECK_EQ_INT(req_status("POST / HTTP/1.1\r\nHost: a\r\n"
	    "Content-Length: 99999999999999999999999999\r\n\r\n"), 400);
}

static void
test_te_unknown(void)
{
	CHECK_EQ_INT(req_status("POST / HTTP/1.1\r\nHost: a\r\n"
	    "Transfer-Encoding: gzip\r\n\r\n"), 501);
	CHECK_EQ_INT(req_status("POST / HTTP/1.1\r\nHost: a\r\n"
	    "Transfer-Encoding: identity\r\n\r\n"), 501);
	CHECK_EQ_INT(req_status("POST / HTTP/1.1\r\nHost: a\r\n"
	    "Transfer-Encoding: gzip, chunked\r\n\r\n"), 501);
	CHECK_EQ_INT(req_status("POST / HTTP/1.1\r\nHost: a\r\n"
	    "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"),
	    501);
}

static void
test_te_not_last(void)
{
	CHECK_EQ_INT(req_status("POST / HTTP/1.1\r\nHost: a\r\n"
	    "Transfer-Encoding: chunked, gzip\r\n\r\n"), 400);
	CHECK_EQ_INT(req_status("POST / HTTP/1.1\r\nHost: a\r\n"
	    "Transfer-Encoding: chunked, chunked\r\n\r\n"), 400);
	CHECK_EQ_INT(req_status("POST / HTTP/1.1\r\nHost: a\r\n"
	    "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"),
	    400);
}

static void
test_te_malformed(void)
{
	CHECK_EQ_INT(req_status("POST / HTTP/1.1\r\nHost: a\r\n"
	    "Transfer-Encoding: chunked;a=b\r\n\r\n"), 400);
	CHECK_EQ_INT(req_status("POST / HTTP/1.1\r\nHost: a\r\n"
	    "Transfer-Encoding: \"chunked\"\r\n\r\n"), 400);
	CHECK_EQ_INT(req_status("POST / HTTP/1.1\r\nHost: a\r\n"
	    "Transfer-Encoding:\r\n\r\n"), 400);
	CHECK_EQ_INT(req_status("POST / HTTP/1.1\r\nHost: a\r\n"
	    "Transfer-Encoding: chunked x\r\n\r\n"), 400);
	CHECK_EQ_INT(req_status("POST / HTTP/1.1\r\nHost: a\r\n"
	    "Transfer-Encoding: xchunked\r\n\r\n"), 501);
}

static void
test_te_http10(void)
{
	CHECK_EQ_INT(req_status("POST / HTTP/1.0\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n"), 400);
	CHECK_EQ_STR(head.error_what, "Transfer-Encoding in HTTP/1.0");
}

static void
test_missing_host(void)
{
	CHECK_EQ_INT(req_status("GET / HTTP/1.1\r\n\r\n"), 400);
	CHECK_EQ_STR(head.error_what, "missing Host");
	CHECK_EQ_INT(req_status("GET / HTTP/1.1\r\nX-Host: a\r\n\r\n"), 400);
}

static void
test_two_hosts(void)
{
	CHECK_EQ_INT(req_status("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"),
	    400);
	CHECK_EQ_STR(head.error_what, "repeated Host");
	CHECK_EQ_INT(req_status("GET / HTTP/1.1\r\nHost: a\r\nhOsT: b\r\n\r\n"),
	    400);
}

static void
test_bad_host_value(void)
{
	CHECK_EQ_INT(req_status("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), 400);
	CHECK_EQ_INT(req_status("GET / HTTP/1.1\r\nHost: u@a\r\n\r\n"), 400);
	CHECK_EQ_INT(req_status("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"), 400);
	CHECK_EQ_INT(req_status("GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n"),
	    0);
	/* RFC 9110 7.2: empty when the target has no authority */
	CHECK_EQ_INT(req_status("GET / HTTP/1.1\r\nHost:\r\n\r\n"), 0);
}

static void
test_bad_method(void)
{
	CHECK_EQ_INT(req_status("G(T / HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
	CHECK_EQ_STR(head.error_what, "invalid method");
	CHECK_EQ_INT(req_status("GÉT / HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
	CHECK_EQ_INT(req_status(" / HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
}

static void
test_two_spaces(void)
{
	CHECK_EQ_INT(req_status("GET  / HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
	CHECK_EQ_INT(req_status("GET /  HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
	CHECK_EQ_INT(req_status("GET / HTTP/1.1 \r\nHost: a\r\n\r\n"), 400);
	CHECK_EQ_INT(req_status("GET /a b HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
}

static void
test_missing_version(void)
{
	CHECK_EQ_INT(req_status("GET /\r\n\r\n"), 400);
	CHECK_EQ_STR(head.error_what, "missing HTTP version");
	CHECK_EQ_INT(req_status("GET / \r\nHost: a\r\n\r\n"), 400);
	CHECK_EQ_INT(req_status("GET\r\n\r\n"), 400);
}

static void
test_version_505(void)
{
	CHECK_EQ_INT(req_status("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), 505);
	CHECK_EQ_INT(req_status("GET / HTTP/0.9\r\nHost: a\r\n\r\n"), 505);
	CHECK_EQ_INT(req_status("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 505);
}

static void
test_version_garbage(void)
{
	CHECK_EQ_INT(req_status("GET / HTTP/1.1x\r\nHost: a\r\n\r\n"), 400);
	CHECK_EQ_INT(req_status("GET / http/1.1\r\nHost: a\r\n\r\n"), 400);
	CHECK_EQ_INT(req_status("GET / HTTP/1\r\nHost: a\r\n\r\n"), 400);
	CHECK_EQ_INT(req_status("GET / HTTP/11.1\r\nHost: a\r\n\r\n"), 400);
	CHECK_EQ_INT(req_status("GET / HTTP/1,1\r\nHost: a\r\n\r\n"), 400);
}

static void
test_target_chars(void)
{
	CHECK_EQ_INT(req_status("GET /a\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n"),
	    400);
	CHECK_EQ_STR(head.error_what, "invalid request target");
	CHECK_EQ_INT(req_status("GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
}

static void
test_line_too_long(void)
{
	static char	buf[MAX_HEAD + 100];

	memset(buf, 'a', sizeof(buf) - 1);
	memcpy(buf, "GET /", 5);
	CHECK_EQ_INT(req_status(buf), 414);
	CHECK_EQ_STR(head.error_what, "request line too long");
	/* the request line and its CRLF fill max_size: 431 */
	memcpy(buf + MAX_HEAD - 11, " HTTP/1.1\r\n", 11);
	buf[MAX_HEAD] = '\0';
	CHECK_EQ_INT(req_status(buf), 431);
}

static void
test_head_too_large(void)
{
	static char	buf[MAX_HEAD + 100];
	size_t		n;

	n = (size_t)snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: a\r\n"
	    "X: ");
	memset(buf + n, 'v', sizeof(buf) - n - 1);
	CHECK_EQ_INT(req_status(buf), 431);
	CHECK_EQ_STR(head.error_what, "head too large");
}

static void
test_head_exactly_max(void)
{
	static char	buf[MAX_HEAD + 1];
	size_t		n;

	n = (size_t)snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: a\r\n"
	    "X: ");
	memset(buf + n, 'v', MAX_HEAD - n - 4);
	memcpy(buf + MAX_HEAD - 4, "\r\n\r\n", 4);
	CHECK_EQ_INT(req(buf), MAX_HEAD);
	/* one byte more does not fit */
	http_head_reset(&head);
	CHECK_EQ_INT(http_parse_request(&head, buf, MAX_HEAD, MAX_HEAD - 1),
	    HTTP_PARSE_ERROR);
	CHECK_EQ_INT(head.error, 431);
}

/* Connection and other fields. */

static void
test_connection_names_cl(void)
{
	CHECK(req("POST / HTTP/1.1\r\nHost: a\r\nConnection: content-length, "
	    "Transfer-Encoding, host\r\nContent-Length: 2\r\n\r\n") > 0);
	CHECK_EQ_INT(hop_of("content-length"), 0);
	CHECK_EQ_INT(hop_of("host"), 0);
	CHECK_EQ_INT(hop_of("connection"), 1);
	CHECK_EQ_INT(head.framing, HTTP_FRAMING_LENGTH);
}

static void
test_connection_names_xfoo(void)
{
	/* Connection may come before or after the header it names */
	CHECK(req("GET / HTTP/1.1\r\nX-Foo: 1\r\nConnection: X-FOO,x-bar\r\n"
	    "Host: a\r\nX-Bar: 2\r\nX-Baz: 3\r\n\r\n") > 0);
	CHECK_EQ_INT(hop_of("x-foo"), 1);
	CHECK_EQ_INT(hop_of("x-bar"), 1);
	CHECK_EQ_INT(hop_of("x-baz"), 0);
	CHECK_EQ_INT(head.flags & (HTTP_F_CONN_CLOSE | HTTP_F_CONN_KEEPALIVE),
	    0);
}

static void
test_hop_by_hop_fixed(void)
{
	CHECK(req("GET / HTTP/1.1\r\nHost: a\r\nKeep-Alive: 5\r\nTE: trailers"
	    "\r\nUpgrade: websocket\r\nProxy-Connection: x\r\nX: y\r\n\r\n")
	    > 0);
	CHECK_EQ_INT(hop_of("keep-alive"), 1);
	CHECK_EQ_INT(hop_of("te"), 1);
	CHECK_EQ_INT(hop_of("upgrade"), 1);
	CHECK_EQ_INT(hop_of("proxy-connection"), 1);
	CHECK_EQ_INT(hop_of("x"), 0);
	CHECK(head.flags & HTTP_F_UPGRADE);
}

static void
test_connection_flags(void)
{
	CHECK(req("GET / HTTP/1.1\r\nHost: a\r\nConnection: Close\r\n\r\n")
	    > 0);
	CHECK_EQ_INT(head.flags & HTTP_F_CONN_CLOSE, HTTP_F_CONN_CLOSE);
	CHECK(!(head.flags & HTTP_F_CONN_KEEPALIVE));
	CHECK(req("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n") > 0);
	CHECK_EQ_INT(head.flags & HTTP_F_CONN_KEEPALIVE, HTTP_F_CONN_KEEPALIVE);
	CHECK(req("GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n"
	    "Connection: , keep-alive ,close\r\n\r\n") > 0);
	CHECK_EQ_INT(head.flags & (HTTP_F_CONN_CLOSE | HTTP_F_CONN_KEEPALIVE),
	    HTTP_F_CONN_CLOSE | HTTP_F_CONN_KEEPALIVE);
	CHECK(!(head.flags & HTTP_F_UPGRADE));
	CHECK_EQ_INT(req_status("GET / HTTP/1.1\r\nHost: a\r\n"
	    "Connection: a b\r\n\r\n"), 400);
}

static void
test_expect(void)
{
	CHECK(req("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\n"
	    "Content-Length: 1\r\n\r\n") > 0);
	CHECK(head.flags & HTTP_F_EXPECT_CONTINUE);
	CHECK(req("POST / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n") > 0);
	CHECK(!(head.flags & HTTP_F_EXPECT_CONTINUE));
	/* RFC 9110 10.1.1: ignored in an HTTP/1.0 request */
	CHECK(req("POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n") > 0);
	CHECK(!(head.flags & HTTP_F_EXPECT_CONTINUE));
}

/* Responses. */

static void
test_resp_200_cl(void)
{
	const char	*s = "HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n";

	CHECK_EQ_INT(resp(s, HTTP_M_GET), strlen(s));
	CHECK_EQ_INT(head.status, 200);
	CHECK_EQ_INT(head.reason_len, 2);
	CHECK(memcmp(head.reason, "OK", 2) == 0);
	CHECK_EQ_INT(head.framing, HTTP_FRAMING_LENGTH);
	CHECK_EQ_INT(head.content_length, 12);
}

static void
test_resp_chunked(void)
{
	CHECK(resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n"
	    "\r\n", HTTP_M_GET) > 0);
	CHECK_EQ_INT(head.framing, HTTP_FRAMING_CHUNKED);
	/* no coding but chunked: the client's TE never reached the backend */
	CHECK_EQ_INT(resp_status("HTTP/1.1 200 OK\r\n"
	    "Transfer-Encoding: gzip, chunked\r\n\r\n", HTTP_M_GET), 502);
	CHECK_EQ_INT(resp_status("HTTP/1.1 200 OK\r\n"
	    "Transfer-Encoding: chunked, gzip\r\n\r\n", HTTP_M_GET), 502);
	CHECK_EQ_INT(resp_status("HTTP/1.1 200 OK\r\n"
	    "Transfer-Encoding: gzip\r\n\r\n", HTTP_M_GET), 502);
	CHECK_EQ_INT(resp_status("HTTP/1.1 200 OK\r\n"
	    "Transfer-Encoding: chunked, chunked\r\n\r\n", HTTP_M_GET), 502);
	CHECK_EQ_INT(resp_status("HTTP/1.0 200 OK\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n", HTTP_M_GET), 502);
}

static void
test_resp_close_delimited(void)
{
	CHECK(resp("HTTP/1.0 200 OK\r\nServer: x\r\n\r\n", HTTP_M_GET) > 0);
	CHECK_EQ_INT(head.framing, HTTP_FRAMING_CLOSE);
	CHECK_EQ_INT(head.version_minor, 0);
}

static void
test_resp_no_body(void)
{
	CHECK(resp("HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n",
	    HTTP_M_HEAD) > 0);
	CHECK_EQ_INT(head.framing, HTTP_FRAMING_NONE);
	CHECK(resp("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
	    HTTP_M_GET) > 0);
	CHECK_EQ_INT(head.framing, HTTP_FRAMING_NONE);
	CHECK(resp("HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n"
	    "\r\n", HTTP_M_GET) > 0);
	CHECK_EQ_INT(head.framing, HTTP_FRAMING_NONE);
	CHECK(resp("HTTP/1.1 100 Continue\r\n\r\n", HTTP_M_POST) > 0);
	CHECK_EQ_INT(head.framing, HTTP_FRAMING_NONE);
	CHECK(resp("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
	    "Connection: upgrade\r\n\r\n", HTTP_M_GET) > 0);
	CHECK_EQ_INT(head.framing, HTTP_FRAMING_NONE);
	CHECK(head.flags & HTTP_F_UPGRADE);
}

static void
test_resp_connect(void)
{
	CHECK_EQ_INT(resp_status("HTTP/1.1 200 OK\r\n\r\n", HTTP_M_CONNECT),
	    502);
	CHECK_EQ_INT(resp_status("HTTP/1.1 407 Auth\r\nContent-Length: 0\r\n"
	    "\r\n", HTTP_M_CONNECT), 0);
}

static void
test_resp_status_line(void)
{
	CHECK(resp("HTTP/1.1 200\r\n\r\n", HTTP_M_GET) > 0);
	CHECK_EQ_INT(head.status, 200);
	CHECK_EQ_INT(head.reason_len, 0);
	CHECK(resp("HTTP/1.1 404 \r\n\r\n", HTTP_M_GET) > 0);
	CHECK_EQ_INT(head.status, 404);
	CHECK(resp("HTTP/1.1 599 Whatever It Is\t!\r\n\r\n", HTTP_M_GET) > 0);
	CHECK_EQ_INT(head.reason_len, strlen("Whatever It Is\t!"));
}

static void
test_resp_invalid_status(void)
{
	CHECK_EQ_INT(resp_status("HTTP/1.1 099 X\r\n\r\n", HTTP_M_GET), 502);
	CHECK_EQ_INT(resp_status("HTTP/1.1 600 X\r\n\r\n", HTTP_M_GET), 502);
	CHECK_EQ_INT(resp_status("HTTP/1.1 20 X\r\n\r\n", HTTP_M_GET), 502);
	CHECK_EQ_INT(resp_status("HTTP/1.1 2000 X\r\n\r\n", HTTP_M_GET), 502);
	CHECK_EQ_INT(resp_status("HTTP/1.1 abc X\r\n\r\n", HTTP_M_GET), 502);
	CHECK_EQ_INT(resp_status("HTTP/2.0 200 OK\r\n\r\n", HTTP_M_GET), 502);
	CHECK_EQ_INT(resp_status("HTTP/1.1  200 OK\r\n\r\n", HTTP_M_GET), 502);
	CHECK_EQ_INT(resp_status("ICY 200 OK\r\n\r\n", HTTP_M_GET), 502);
	CHECK_EQ_INT(resp_status("\r\nHTTP/1.1 200 OK\r\n\r\n", HTTP_M_GET),
	    502);
}

static void
test_resp_te_cl(void)
{
	CHECK_EQ_INT(resp_status("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n", HTTP_M_GET), 502);
	CHECK_EQ_INT(resp_status("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
	    "Content-Length: 5\r\n\r\n", HTTP_M_GET), 502);
	CHECK_EQ_INT(resp_status("HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
	    HTTP_M_GET), 502);
}

static void
test_resp_errors_are_502(void)
{
	static char	buf[MAX_HEAD + 10];

	CHECK_EQ_INT(resp_status("HTTP/1.1 200 OK\nX: y\r\n\r\n", HTTP_M_GET),
	    502);
	CHECK_EQ_INT(resp_status("HTTP/1.1 200 OK\r\n X: y\r\n\r\n",
	    HTTP_M_GET), 502);
	memset(buf, 'a', sizeof(buf) - 1);
	CHECK_EQ_INT(resp_status(buf, HTTP_M_GET), 502);
}

/* Names. */

static void
test_names(void)
{
	CHECK_EQ_STR(http_method_name(HTTP_M_GET), "GET");
	CHECK_EQ_STR(http_method_name(HTTP_M_CONNECT), "CONNECT");
	CHECK_EQ_STR(http_method_name(HTTP_M_OTHER), "OTHER");
	CHECK_EQ_STR(http_status_reason(200), "OK");
	CHECK_EQ_STR(http_status_reason(431),
	    "Request Header Fields Too Large");
	CHECK_EQ_STR(http_status_reason(505), "HTTP Version Not Supported");
	CHECK_EQ_STR(http_status_reason(299), "Unknown");
	CHECK_EQ_STR(http_framing_name(HTTP_FRAMING_CHUNKED), "chunked");
	CHECK_EQ_STR(http_framing_name(HTTP_FRAMING_CLOSE), "close");
}

/* Body decoder. */

static void
test_body_length(void)
{
	struct http_body	b;
	char			out[64];
	size_t			outlen;

	CHECK_EQ_INT(decode(&b, HTTP_FRAMING_LENGTH, 5, "helloGET", 8, 64, out,
	    &outlen), 5);
	CHECK_EQ_INT(outlen, 5);
	CHECK_EQ_INT(b.total, 5);
	CHECK_EQ_INT(decode(&b, HTTP_FRAMING_LENGTH, 5, "hello", 5, 1, out,
	    &outlen), 5);
	CHECK_EQ_INT(decode(&b, HTTP_FRAMING_LENGTH, 5, "hel", 3, 64, out,
	    &outlen), -2);
	CHECK_EQ_INT(b.remaining, 2);
}

static void
test_body_close_and_none(void)
{
	struct http_body	b;
	struct http_head	*h = calloc(1, sizeof(*h));
	int			is_data;

	h->framing = HTTP_FRAMING_CLOSE;
	http_body_init(&b, h);
	CHECK_EQ_INT(http_body_feed(&b, "abc", 3, &is_data), 3);
	CHECK_EQ_INT(is_data, 1);
	CHECK_EQ_INT(http_body_feed(&b, "de", 2, &is_data), 2);
	CHECK_EQ_INT(b.total, 5);
	CHECK(!http_body_done(&b));
	h->framing = HTTP_FRAMING_NONE;
	http_body_init(&b, h);
	CHECK(http_body_done(&b));
	CHECK_EQ_INT(http_body_feed(&b, "abc", 3, &is_data), 0);
	free(h);
}

static void
test_chunked_simple(void)
{
	const char	*s = "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nNEXT";
	char		 out[64];
	size_t		 outlen;

	CHECK_EQ_INT(dechunk(s, 1000, out, &outlen), strlen(s) - 4);
	CHECK_EQ_INT(outlen, 11);
	CHECK(memcmp(out, "hello world", 11) == 0);
}

static void
test_chunked_prefixes(void)
{
	struct http_body	b;
	struct http_head	*h = calloc(1, sizeof(*h));
	const char		*s = "3\r\nabc\r\n0\r\n\r\n";
	int			 is_data;

	h->framing = HTTP_FRAMING_CHUNKED;
	http_body_init(&b, h);
	CHECK_EQ_INT(http_body_feed(&b, s, strlen(s), &is_data), 3);
	CHECK_EQ_INT(is_data, 0);
	CHECK_EQ_INT(http_body_feed(&b, s + 3, strlen(s) - 3, &is_data), 3);
	CHECK_EQ_INT(is_data, 1);
	CHECK_EQ_INT(http_body_feed(&b, s + 6, strlen(s) - 6, &is_data), 7);
	CHECK_EQ_INT(is_data, 0);
	CHECK(http_body_done(&b));
	CHECK_EQ_INT(b.total, 3);
	CHECK_EQ_INT(http_body_feed(&b, "x", 1, &is_data), 0);
	CHECK_EQ_INT(http_body_feed(&b, s, 0, &is_data), 0);
	free(h);
}

static void
test_chunked_extensions(void)
{
	const char	*s = "5;name=value;q=\"a b;c\" ; x\r\nhello\r\n"
			    "0 ; last\r\n\r\n";
	char		 out[64];
	size_t		 outlen;

	CHECK_EQ_INT(dechunk(s, 1000, out, &outlen), strlen(s));
	CHECK_EQ_INT(outlen, 5);
	CHECK_EQ_INT(dechunk("5 x\r\nhello\r\n0\r\n\r\n", 1000, out, &outlen),
	    -1);
	CHECK_EQ_INT(dechunk("5 \r\nhello\r\n0\r\n\r\n", 1000, out, &outlen),
	    -1);
	CHECK_EQ_INT(dechunk("5;a\x01\r\nhello\r\n0\r\n\r\n", 1000, out,
	    &outlen), -1);
}

/* Chunk extensions against RFC 9112 7.1.1's grammar, one line each. */
static void
test_chunked_ext_grammar(void)
{
	static const char *const good[] = {
		"5;a", "5;a=b", "5 ;a", "5\t;a", "5; a", "5;a =b", "5;a= b",
		"5;a = b", "5;a;b;c", "5;a=b;c=d", "5;a=\"\"", "5;a=\"x y\"",
		"5;a=\"x;y=z\"", "5;a=\"\\\"\"", "5;a=\"\\\\\"", "5;a=\"\\\t\"",
		"5;a=\"caf\xc3\xa9\"", "5;a=\"x\" ;b", "5;a=b ;c", "5;!#$%&'*+",
		"5;a=-.^_`|~", "0;last",
	};
	static const char *const bad[] = {
		"5;", "5; ", "5;;a", "5;a;", "5;=b", "5;a=", "5;a= ", "5;a ",
		"5;a=b ", "5;a=\"x\" ", "5;a b", "5;a=b c", "5;a=b=c",
		"5;bad[=x", "5;a=b[", "5;a=\"x", "5;a=\"x\"y", "5;a=\"x\"=y",
		"5;a=\"x\x01\"", "5;a=\"\\\x01\"", "5;a=\"x\x7f\"", "5;a=\"x\"\"",
		"5;a=x\"y\"", "5;a=\"x\r\"", "5;a,b", "5;a/b", "5;a=b/c",
		"5;(a)", "5;a=\x80", "5;\x80", "5 ", "5 x", "5 ;", "5;a=\"\\",
	};
	char		 in[64], out[64];
	size_t		 i, outlen;
	static struct http_body b;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		snprintf(in, sizeof(in), "%s\r\n%s", good[i],
		    good[i][0] == '0' ? "\r\n" : "hello\r\n0\r\n\r\n");
		if (dechunk(in, 1000, out, &outlen) != (long)strlen(in))
			printf("# refused: %s\n", good[i]);
		CHECK_EQ_INT(dechunk(in, 1000, out, &outlen), strlen(in));
		/* byte by byte too */
		CHECK_EQ_INT(dechunk(in, 1, out, &outlen), strlen(in));
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(in, sizeof(in), "%s\r\nhello\r\n0\r\n\r\n", bad[i]);
		if (dechunk(in, 1000, out, &outlen) != -1)
			printf("# accepted: %s\n", bad[i]);
		CHECK_EQ_INT(dechunk(in, 1000, out, &outlen), -1);
		CHECK_EQ_INT(dechunk(in, 1, out, &outlen), -1);
	}
	/* the two Http11Probe cases, and their reason */
	CHECK_EQ_INT(decode(&b, HTTP_FRAMING_CHUNKED, 0, "5;\r\nhello\r\n0\r\n"
	    "\r\n", 17, 100, out, &outlen), -1);
	CHECK_EQ_STR(b.error_what, "invalid chunk extension");
	CHECK_EQ_INT(decode(&b, HTTP_FRAMING_CHUNKED, 0, "5;bad[=x\r\nhello\r\n"
	    "0\r\n\r\n", 22, 100, out, &outlen), -1);
	CHECK_EQ_STR(b.error_what, "invalid chunk extension");
	/* a size still says it is the size that is wrong */
	CHECK_EQ_INT(decode(&b, HTTP_FRAMING_CHUNKED, 0, "5 \r\n", 4, 100,
	    out, &outlen), -1);
	CHECK_EQ_STR(b.error_what, "invalid chunk size");
}

/*
 * Relay s with rechunk set, fed in pieces of at most piece bytes: payload
 * and framing other than chunk lines as they are, chunk lines as
 * chunk_out. Returns the bytes consumed, -1 on error, -2 if not done.
 */
static long
rechunk(const char *s, size_t piece, char *out, size_t *outlen)
{
	struct http_body	 b;
	struct http_head	 h0 = { 0 };
	size_t			 pos = 0, len = strlen(s), n, linebytes = 0;
	ssize_t			 r;
	int			 is_data;

	h0.framing = HTTP_FRAMING_CHUNKED;
	http_body_init(&b, &h0);
	b.rechunk = 1;
	*outlen = 0;
	while (!http_body_done(&b) && pos < len) {
		n = len - pos < piece ? len - pos : piece;
		if ((r = http_body_feed(&b, s + pos, n, &is_data)) < 0)
			return -1;
		if (r == 0 || (size_t)r > n)
			return -3;
		if (b.chunk_line) {
			/* a chunk line's bytes never come with data */
			if (is_data)
				return -4;
			linebytes += (size_t)r;
			if (b.chunk_out_len > 0) {
				memcpy(out + *outlen, b.chunk_out,
				    b.chunk_out_len);
				*outlen += b.chunk_out_len;
				linebytes = 0;
			}
		} else {
			if (b.chunk_out_len != 0 || linebytes != 0)
				return -5;
			memcpy(out + *outlen, s + pos, (size_t)r);
			*outlen += (size_t)r;
		}
		pos += (size_t)r;
	}
	if (!http_body_done(&b))
		return -2;
	return (long)pos;
}

/* With rechunk, chunk lines go on as "HEX\r\n": no extension, no zeros. */
static void
test_chunked_rechunk(void)
{
	static const struct {
		const char	*in, *out;
	} cases[] = {
		{ "5\r\nhello\r\n0\r\n\r\n", "5\r\nhello\r\n0\r\n\r\n" },
		{ "5;a=b\r\nhello\r\n0;x\r\n\r\n", "5\r\nhello\r\n0\r\n\r\n" },
		{ "0005 ; q=\"a;b\"\r\nhello\r\n000\r\n\r\n",
		    "5\r\nhello\r\n0\r\n\r\n" },
		{ "A;e\r\n0123456789\r\n1F\r\n0123456789012345678901234567890"
		    "\r\n0\r\nX-T: 1\r\nY: 2\r\n\r\n", "a\r\n0123456789\r\n"
		    "1f\r\n0123456789012345678901234567890\r\n0\r\nX-T: 1\r\n"
		    "Y: 2\r\n\r\n" },
		{ "7fffffffffffffff;x\r\n", NULL },
		{ "0\r\n\r\n", "0\r\n\r\n" },
	};
	char	out[256];
	size_t	i, piece, outlen, inlen;
	long	r;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		inlen = strlen(cases[i].in);
		for (piece = 1; piece <= inlen; piece++) {
			r = rechunk(cases[i].in, piece, out, &outlen);
			if (cases[i].out == NULL) {
				/* the largest size: waits for its data */
				CHECK_EQ_INT(r, -2);
				CHECK_EQ_INT(outlen, 18);
				CHECK(memcmp(out, "7fffffffffffffff\r\n", 18) ==
				    0);
				continue;
			}
			CHECK_EQ_INT(r, inlen);
			CHECK_EQ_INT(outlen, strlen(cases[i].out));
			CHECK(outlen == strlen(cases[i].out) &&
			    memcmp(out, cases[i].out, outlen) == 0);
		}
	}
	/* errors are the same with rechunk */
	CHECK_EQ_INT(rechunk("5;\r\nhello\r\n0\r\n\r\n", 100, out, &outlen),
	    -1);
	CHECK_EQ_INT(rechunk("5\r\nhello\r\n0\r\nContent-Length: 1\r\n\r\n",
	    100, out, &outlen), -1);
}

static void
test_chunked_trailers(void)
{
	const char	*s = "3\r\nabc\r\n0\r\nX-Sum: 1\r\nY:\r\n\r\n";
	char		 out[64];
	size_t		 outlen;

	CHECK_EQ_INT(dechunk(s, 1000, out, &outlen), strlen(s));
	CHECK_EQ_INT(outlen, 3);
	CHECK_EQ_INT(dechunk("0\r\nX-Sum 1\r\n\r\n", 1000, out, &outlen), -1);
	CHECK_EQ_INT(dechunk("0\r\n: 1\r\n\r\n", 1000, out, &outlen), -1);
	CHECK_EQ_INT(dechunk("0\r\nX: 1\n\r\n", 1000, out, &outlen), -1);
	CHECK_EQ_INT(dechunk("0\r\nX: 1\r\n b\r\n\r\n", 1000, out, &outlen),
	    -1);
	CHECK_EQ_INT(dechunk("0\r\nX: 1\r\n\r\r\n", 1000, out, &outlen), -1);
	CHECK_EQ_INT(dechunk("0\r\nX: 1\r\n", 1000, out, &outlen), -2);
}

/* Fields that frame or route are not allowed in trailers. */
static void
test_chunked_trailer_framing(void)
{
	char	out[64];
	size_t	outlen;

	CHECK_EQ_INT(dechunk("0\r\nContent-Length: 5\r\n\r\n", 1000, out,
	    &outlen), -1);
	CHECK_EQ_INT(dechunk("0\r\nX: 1\r\ntransfer-encoding: chunked\r\n"
	    "\r\n", 1000, out, &outlen), -1);
	CHECK_EQ_INT(dechunk("0\r\nHOST: a\r\n\r\n", 1000, out, &outlen),
	    -1);
	/* names that only begin or end like them are fine */
	CHECK(dechunk("0\r\nContent-Lengths: 5\r\nXHost: a\r\n"
	    "Transfer-Encoding-X: 1\r\nTe: x\r\n\r\n", 1000, out,
	    &outlen) > 0);
}

static void
test_chunked_trailer_bound(void)
{
	static char	buf[HTTP_TRAILER_MAX + 64];
	char		out[8];
	size_t		outlen, n;

	n = (size_t)snprintf(buf, sizeof(buf), "0\r\nX: ");
	memset(buf + n, 'v', HTTP_TRAILER_MAX - 7);
	memcpy(buf + n + HTTP_TRAILER_MAX - 7, "\r\n\r\n", 5);
	/* trailer section is exactly HTTP_TRAILER_MAX bytes */
	CHECK_EQ_INT(dechunk(buf, 1000, out, &outlen), HTTP_TRAILER_MAX + 3);
	memset(buf + n, 'v', HTTP_TRAILER_MAX);
	memcpy(buf + n + HTTP_TRAILER_MAX, "\r\n\r\n", 5);
	CHECK_EQ_INT(dechunk(buf, 1000, out, &outlen), -1);
}

static void
test_chunked_every_split(void)
{
	const char	*s = "a;x=1\r\n0123456789\r\n1\r\nZ\r\n0\r\n"
			    "T: v\r\n\r\n";
	struct http_body b;
	char		 out[64];
	size_t		 outlen, n = strlen(s), cut, pos;
	ssize_t		 r;
	int		 is_data, ok = 1;

	for (cut = 0; cut <= n; cut++) {
		struct http_head h0 = { 0 };

		h0.framing = HTTP_FRAMING_CHUNKED;
		http_body_init(&b, &h0);
		outlen = 0;
		/* two pieces: [0, cut) then [cut, n), each fed to the end */
		for (pos = 0; pos < n && !http_body_done(&b);) {
			size_t	end = pos < cut ? cut : n;

			r = http_body_feed(&b, s + pos, end - pos, &is_data);
			if (r <= 0) {
				ok = 0;
				break;
			}
			if (is_data) {
				memcpy(out + outlen, s + pos, (size_t)r);
				outlen += (size_t)r;
			}
			pos += (size_t)r;
		}
		if (!http_body_done(&b) || pos != n || outlen != 11 ||
		    memcmp(out, "0123456789Z", 11) != 0 || b.total != 11)
			ok = 0;
	}
	CHECK(ok);
	for (cut = 1; cut <= n; cut++) {
		CHECK_EQ_INT(dechunk(s, cut, out, &outlen), n);
		CHECK_EQ_INT(outlen, 11);
	}
}

static void
test_chunked_hex(void)
{
	char	out[64];
	size_t	outlen;

	CHECK_EQ_INT(dechunk("A\r\n0123456789\r\n0\r\n\r\n", 1000, out,
	    &outlen), 20);
	CHECK_EQ_INT(outlen, 10);
	CHECK_EQ_INT(dechunk("1f\r\n0123456789012345678901234567890\r\n0\r\n"
	    "\r\n", 1000, out, &outlen), 42);
	CHECK_EQ_INT(outlen, 31);
}

static void
test_chunked_leading_zeros(void)
{
	char	out[64];
	size_t	outlen;

	CHECK_EQ_INT(dechunk("0000000000000000000003\r\nabc\r\n000\r\n\r\n",
	    1000, out, &outlen), 36);
	CHECK_EQ_INT(outlen, 3);
}

static void
test_chunked_bad_hex(void)
{
	char	out[64];
	size_t	outlen;

	CHECK_EQ_INT(dechunk("g\r\n", 1000, out, &outlen), -1);
	CHECK_EQ_INT(dechunk("\r\n", 1000, out, &outlen), -1);
	CHECK_EQ_INT(dechunk(";x\r\n", 1000, out, &outlen), -1);
	CHECK_EQ_INT(dechunk("-1\r\n", 1000, out, &outlen), -1);
	CHECK_EQ_INT(dechunk("0x5\r\nhello\r\n", 1000, out, &outlen), -1);
	CHECK_EQ_INT(dechunk(" 5\r\nhello\r\n", 1000, out, &outlen), -1);
}

static void
test_chunked_overflow(void)
{
	static struct http_body	b;
	char			out[64];
	size_t			outlen;

	CHECK_EQ_INT(dechunk("10000000000000000\r\n", 1000, out, &outlen), -1);
	CHECK_EQ_INT(dechunk("8000000000000000\r\n", 1000, out, &outlen), -1);
	CHECK_EQ_INT(decode(&b, HTTP_FRAMING_CHUNKED, 0,
	    "fffffffffffffffffffffff\r\n", 25, 100, out, &outlen), -1);
	CHECK_EQ_STR(b.error_what, "chunk size overflow");
	/* the largest size is accepted, then waits for data */
	CHECK_EQ_INT(dechunk("7fffffffffffffff\r\nab", 1000, out, &outlen), -2);
	CHECK_EQ_INT(outlen, 2);
}

static void
test_chunked_overrun(void)
{
	static struct http_body	b;
	char			out[64];
	size_t			outlen;

	CHECK_EQ_INT(decode(&b, HTTP_FRAMING_CHUNKED, 0,
	    "3\r\nabcd\r\n0\r\n\r\n", 15, 100, out, &outlen), -1);
	CHECK_EQ_STR(b.error_what, "chunk data overrun");
	CHECK_EQ_INT(b.state, HTTP_BODY_ERROR);
	CHECK_EQ_INT(dechunk("3\r\nabc\n0\r\n\r\n", 1000, out, &outlen), -1);
	CHECK_EQ_INT(dechunk("3\r\nabc0\r\n\r\n", 1000, out, &outlen), -1);
}

static void
test_chunked_bare_lf(void)
{
	char	out[64];
	size_t	outlen;

	CHECK_EQ_INT(dechunk("3\nabc\r\n0\r\n\r\n", 1000, out, &outlen), -1);
	CHECK_EQ_INT(dechunk("3;e\nabc\r\n0\r\n\r\n", 1000, out, &outlen), -1);
	CHECK_EQ_INT(dechunk("3\rabc\r\n0\r\n\r\n", 1000, out, &outlen), -1);
	CHECK_EQ_INT(dechunk("0\r\n\n", 1000, out, &outlen), -1);
}

static void
test_chunked_huge_ext(void)
{
	static char	buf[HTTP_CHUNK_LINE_MAX + 64];
	static struct http_body b;
	char		out[64];
	size_t		outlen;

	memset(buf, 'x', sizeof(buf) - 1);
	memcpy(buf, "1;", 2);
	CHECK_EQ_INT(decode(&b, HTTP_FRAMING_CHUNKED, 0, buf, sizeof(buf) - 1,
	    100, out, &outlen), -1);
	CHECK_EQ_STR(b.error_what, "chunk line too long");
	/* a line of exactly HTTP_CHUNK_LINE_MAX bytes with its CR is fine */
	memcpy(buf + HTTP_CHUNK_LINE_MAX - 1, "\r\nZ\r\n0\r\n\r\n", 11);
	CHECK_EQ_INT(dechunk(buf, 100, out, &outlen),
	    HTTP_CHUNK_LINE_MAX + 9);
	CHECK_EQ_INT(outlen, 1);
}

static void
test_chunked_error_sticks(void)
{
	static struct http_body	b;
	char			out[8];
	size_t			outlen;
	int			is_data;

	CHECK_EQ_INT(decode(&b, HTTP_FRAMING_CHUNKED, 0, "z", 1, 1, out,
	    &outlen), -1);
	CHECK_EQ_INT(http_body_feed(&b, "0\r\n\r\n", 5, &is_data), -1);
	CHECK(!http_body_done(&b));
}

static void
test_chunked_total(void)
{
	static struct http_body	b;
	char			out[64];
	size_t			outlen;
	const char		*s = "2\r\nab\r\n3\r\ncde\r\n4\r\nfghi\r\n"
				    "0\r\n\r\n";

	CHECK_EQ_INT(decode(&b, HTTP_FRAMING_CHUNKED, 0, s, strlen(s), 3, out,
	    &outlen), strlen(s));
	CHECK_EQ_INT(b.total, 9);
	CHECK_EQ_INT(outlen, 9);
	CHECK(memcmp(out, "abcdefghi", 9) == 0);
}

static void
test_request_then_body(void)
{
	const char	*s = "POST /x HTTP/1.1\r\nHost: a\r\n"
			    "Transfer-Encoding: chunked\r\n\r\n"
			    "4\r\nwiki\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
	struct http_body b;
	ssize_t		 n, r;
	size_t		 pos;
	int		 is_data;

	n = req(s);
	CHECK(n > 0);
	http_body_init(&b, &head);
	for (pos = (size_t)n; (r = http_body_feed(&b, s + pos,
	    strlen(s) - pos, &is_data)) > 0;)
		pos += (size_t)r;
	CHECK(http_body_done(&b));
	CHECK_EQ_INT(b.total, 4);
	CHECK(strcmp(s + pos, "GET / HTTP/1.1\r\n") == 0);
}

/* Known header names are found in any case, and only they. */
static void
test_known_names_any_case(void)
{
	CHECK_EQ_INT(req_status("POST / HTTP/1.1\r\nhOST: a\r\n"
	    "cOnNeCtIoN: KEEP-alive, ClOsE\r\nCONTENT-LENGTH: 3\r\n"
	    "eXpEcT: 100-CONTINUE\r\nUPGRADE: x\r\n\r\n"), 0);
	CHECK_EQ_INT(head.flags, HTTP_F_HAS_HOST | HTTP_F_CONN_CLOSE |
	    HTTP_F_CONN_KEEPALIVE | HTTP_F_EXPECT_CONTINUE | HTTP_F_UPGRADE);
	CHECK_EQ_INT(head.framing, HTTP_FRAMING_LENGTH);
	CHECK_EQ_INT(head.content_length, 3);
	CHECK_EQ_INT(hop_of("Upgrade"), 1);
	CHECK_EQ_INT(hop_of("Content-Length"), 0);
	CHECK_EQ_INT(req_status("POST / HTTP/1.1\r\nHost: a\r\n"
	    "TRANSFER-ENCODING: CHUNKED\r\nTe: trailers\r\n"
	    "Proxy-CONNECTION: x\r\nKEEP-ALIVE: 5\r\n\r\n"), 0);
	CHECK_EQ_INT(head.framing, HTTP_FRAMING_CHUNKED);
	CHECK_EQ_INT(hop_of("te"), 1);
	CHECK_EQ_INT(hop_of("proxy-connection"), 1);
	CHECK_EQ_INT(hop_of("keep-alive"), 1);
	/* same length and first letter, one byte off: another header */
	CHECK_EQ_INT(req_status("GET / HTTP/1.1\r\nHosT: a\r\n"
	    "Connectiom: close\r\nKeep-alivE: 1\r\nContent-Lengtx: 7\r\n"
	    "Transfer-Encodinf: chunked\r\nExpecu: 100-continue\r\n"
	    "Upgradf: x\r\nT_: y\r\nProxy-Connectiom: z\r\n\r\n"), 0);
	CHECK_EQ_INT(head.flags, HTTP_F_HAS_HOST);
	CHECK_EQ_INT(head.framing, HTTP_FRAMING_NONE);
	CHECK_EQ_INT(hop_of("Connectiom"), 0);
	CHECK_EQ_INT(hop_of("Keep-alivE"), 1);
	CHECK_EQ_INT(hop_of("Upgradf"), 0);
	CHECK_EQ_INT(hop_of("Proxy-Connectiom"), 0);
	/* a name differing only in bit 0x20 of a non-letter */
	CHECK_EQ_INT(req_status("GET / HTTP/1.1\r\nHost: a\r\n"
	    "Content\rLength: 1\r\n\r\n"), 400);
	CHECK_EQ_INT(req_status("GET / HTTP/1.1\r\nHost: a\r\n"
	    "Expect: 100\rcontinue\r\n\r\n"), 400);
	CHECK_EQ_STR(head.error_what, "stray CR in head");
	CHECK_EQ_INT(req_status("GET / HTTP/1.1\r\nHost: a\r\n"
	    "Content.Length: 1\r\nExpect: 100.continue\r\n\r\n"), 0);
	CHECK_EQ_INT(head.framing, HTTP_FRAMING_NONE);
	CHECK_EQ_INT(head.flags, HTTP_F_HAS_HOST);
}

/* A control byte is found wherever it falls in a word of the scan. */
static void
test_control_char_positions(void)
{
	char	s[96];
	size_t	i, base = strlen("GET / HTTP/1.1\r\nHost: a\r\nX: ");

	for (i = 0; i < 20; i++) {
		memset(s, 0, sizeof(s));
		memcpy(s, "GET / HTTP/1.1\r\nHost: a\r\nX: ", base);
		memset(s + base, 'v', 24);
		s[base + 24] = '\r';
		s[base + 25] = '\n';
		s[base + 26] = '\r';
		s[base + 27] = '\n';
		/* an HTAB just before the bad byte must not hide it */
		if (i > 0)
			s[base + i - 1] = '\t';
		s[base + i] = '\x7f';
		http_head_reset(&head);
		CHECK_EQ_INT(http_parse_request(&head, s, base + 28, MAX_HEAD),
		    HTTP_PARSE_ERROR);
		CHECK_EQ_STR(head.error_what, "control character in head");
		CHECK_EQ_INT(head.scanned, base + i);
		s[base + i] = '\0';
		http_head_reset(&head);
		CHECK_EQ_INT(http_parse_request(&head, s, base + 28, MAX_HEAD),
		    HTTP_PARSE_ERROR);
		CHECK_EQ_STR(head.error_what, "NUL in head");
		CHECK_EQ_INT(head.scanned, base + i);
		s[base + i] = '\t';
		CHECK_EQ_INT(req_status(s), 0);
		CHECK_EQ_INT(head.nheaders, 2);
	}
}

/* Reset leaves no header of the last message to be found. */
static void
test_reset_forgets_headers(void)
{
	CHECK_EQ_INT(req_status("GET / HTTP/1.1\r\nHost: a\r\nX-One: 1\r\n"
	    "X-Two: 2\r\nX-Three: 3\r\n\r\n"), 0);
	CHECK_EQ_INT(head.nheaders, 4);
	CHECK_EQ_INT(req_status("GET / HTTP/1.1\r\nHost: b\r\n\r\n"), 0);
	CHECK_EQ_INT(head.nheaders, 1);
	CHECK(http_head_find(&head, "X-Two") == NULL);
	CHECK_EQ_STR(value_of("host"), "b");
	CHECK_EQ_INT(head.flags, HTTP_F_HAS_HOST);
	CHECK_EQ_INT(head.framing, HTTP_FRAMING_NONE);
}

/* Headers seen in an earlier call point into the final buffer. */
static void
test_fields_follow_buffer(void)
{
	const char	*s = "GET /x HTTP/1.1\r\nHost: a\r\n"
			    "Connection: close\r\nX: 1\r\n\r\n";
	char		*a, *b;
	size_t		 n = strlen(s);
	ssize_t		 r;

	a = malloc(n);
	memcpy(a, s, 40);
	http_head_reset(&head);
	CHECK_EQ_INT(http_parse_request(&head, a, 40, MAX_HEAD),
	    HTTP_PARSE_AGAIN);
	CHECK_EQ_INT(head.nheaders, 1);
	b = malloc(n);
	memcpy(b, s, n);
	free(a);
	r = http_parse_request(&head, b, n, MAX_HEAD);
	CHECK_EQ_INT(r, (ssize_t)n);
	CHECK(head.method_str == b);
	CHECK(head.target == b + 4);
	CHECK_EQ_INT(head.nheaders, 3);
	CHECK(head.headers[0].name == b + 17);
	CHECK(head.headers[1].value == b + 38);
	CHECK_EQ_INT(head.headers[1].hop, 1);
	CHECK_EQ_INT(head.flags, HTTP_F_HAS_HOST | HTTP_F_CONN_CLOSE);
	CHECK_EQ_STR(value_of("X"), "1");
	free(b);
}

int
main(void)
{
	RUN(test_get_simple);
	RUN(test_head_followed_by_body);
	RUN(test_post_cl_zero);
	RUN(test_cl_leading_zeros_and_max);
	RUN(test_post_chunked);
	RUN(test_absolute_form);
	RUN(test_absolute_form_host);
	RUN(test_target_fragment);
	RUN(test_framing_lookalike);
	RUN(test_options_asterisk);
	RUN(test_connect_authority);
	RUN(test_http10);
	RUN(test_minor_version);
	RUN(test_leading_crlf);
	RUN(test_leading_crlf_bounded);
	RUN(test_many_headers);
	RUN(test_too_many_headers);
	RUN(test_ows_trimming);
	RUN(test_obs_text_value);
	RUN(test_unknown_method);
	RUN(test_incomplete);
	RUN(test_bytewise_requests);
	RUN(test_terminator_straddles_calls);
	RUN(test_early_request_line_error);
	RUN(test_head_reset);
	RUN(test_error_fields_follow_buffer);
	RUN(test_bare_lf);
	RUN(test_stray_cr);
	RUN(test_obs_fold);
	RUN(test_nul_in_value);
	RUN(test_control_chars);
	RUN(test_space_before_colon);
	RUN(test_invalid_name_char);
	RUN(test_empty_name_and_no_colon);
	RUN(test_cl_and_te);
	RUN(test_repeated_cl);
	RUN(test_cl_list);
	RUN(test_cl_sign);
	RUN(test_cl_overflow);
	RUN(test_te_unknown);
	RUN(test_te_not_last);
	RUN(test_te_malformed);
	RUN(test_te_http10);
	RUN(test_missing_host);
	RUN(test_two_hosts);
	RUN(test_bad_host_value);
	RUN(test_bad_method);
	RUN(test_two_spaces);
	RUN(test_missing_version);
	RUN(test_version_505);
	RUN(test_version_garbage);
	RUN(test_target_chars);
	RUN(test_line_too_long);
	RUN(test_head_too_large);
	RUN(test_head_exactly_max);
	RUN(test_connection_names_cl);
	RUN(test_connection_names_xfoo);
	RUN(test_hop_by_hop_fixed);
	RUN(test_connection_flags);
	RUN(test_expect);
	RUN(test_resp_200_cl);
	RUN(test_resp_chunked);
	RUN(test_resp_close_delimited);
	RUN(test_resp_no_body);
	RUN(test_resp_connect);
	RUN(test_resp_status_line);
	RUN(test_resp_invalid_status);
	RUN(test_resp_te_cl);
	RUN(test_resp_errors_are_502);
	RUN(test_names);
	RUN(test_body_length);
	RUN(test_body_close_and_none);
	RUN(test_chunked_simple);
	RUN(test_chunked_prefixes);
	RUN(test_chunked_extensions);
	RUN(test_chunked_ext_grammar);
	RUN(test_chunked_rechunk);
	RUN(test_chunked_trailers);
	RUN(test_chunked_trailer_framing);
	RUN(test_chunked_trailer_bound);
	RUN(test_chunked_every_split);
	RUN(test_chunked_hex);
	RUN(test_chunked_leading_zeros);
	RUN(test_chunked_bad_hex);
	RUN(test_chunked_overflow);
	RUN(test_chunked_overrun);
	RUN(test_chunked_bare_lf);
	RUN(test_chunked_huge_ext);
	RUN(test_chunked_error_sticks);
	RUN(test_chunked_total);
	RUN(test_request_then_body);
	RUN(test_known_names_any_case);
	RUN(test_control_char_positions);
	RUN(test_reset_forgets_headers);
	RUN(test_fields_follow_buffer);
	return tap_done();
}
