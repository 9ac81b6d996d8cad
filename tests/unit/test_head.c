/*
 * test_head.c: unit tests for the heads spillway writes (head.c): the
 * request head to a backend, response heads to the client, our own
 * answers. Their rules are what keeps a backend and a client reading the
 * framing spillway checked.
 */
#include <stdlib.h>
#include <string.h>

#include "head.h"
#include "http.h"
#include "tap.h"

#define MAX_HEAD	8192

static struct http_head	head;
static char		out[MAX_HEAD + HEAD_MARGIN];

static const struct head_client plain = { "192.0.2.7", 0, NULL, 0, NULL, 0 };

/* The rewritten request head of s, NUL-terminated in out; NULL if none. */
static const char *
request(const char *s, const struct head_client *cl, size_t room)
{
	ssize_t	 r, n;

	http_head_reset(&head);
	r = http_parse_request(&head, s, strlen(s), MAX_HEAD);
	if (r <= 0)
		return NULL;
	if ((n = head_request(out, room, &head, cl)) < 0 ||
	    (size_t)n >= sizeof(out))
		return NULL;
	out[n] = '\0';
	return out;
}

static const char *
response(const char *s, enum http_method m, const struct head_response *hr)
{
	ssize_t	 r, n;

	http_head_reset(&head);
	r = http_parse_response(&head, s, strlen(s), MAX_HEAD, m);
	if (r <= 0)
		return NULL;
	if ((n = head_response(out, (size_t)r + HEAD_MARGIN, &head, hr)) < 0)
		return NULL;
	out[n] = '\0';
	return out;
}

static const char *
own(int status, enum metrics_reason reason, uint64_t retry, int keepalive,
    int minor, int is_head)
{
	ssize_t	 n;

	n = head_own(out, HEAD_OWN_MAX, status, reason, retry, keepalive,
	    minor, is_head);
	if (n < 0)
		return NULL;
	out[n] = '\0';
	return out;
}

static void
test_request_plain(void)
{
	CHECK_EQ_STR(request("GET /a?b HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n"
	    "\r\n", &plain, sizeof(out)),
	    "GET /a?b HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n"
	    "X-Forwarded-For: 192.0.2.7\r\nX-Real-IP: 192.0.2.7\r\n"
	    "Forwarded: for=192.0.2.7;proto=http\r\n"
	    "X-Forwarded-Proto: http\r\n\r\n");
}

static void
test_request_hop_by_hop(void)
{
	const char	*h = request("GET / HTTP/1.1\r\nHost: x\r\n"
	    "Connection: keep-alive, X-Secret\r\nX-Secret: 1\r\n"
	    "Keep-Alive: timeout=5\r\nTE: trailers\r\nX-Kept: 2\r\n\r\n",
	    &plain, sizeof(out));

	CHECK(h != NULL);
	if (h == NULL)
		return;
	CHECK(strstr(h, "Connection") == NULL);
	CHECK(strstr(h, "X-Secret") == NULL);
	CHECK(strstr(h, "Keep-Alive") == NULL);
	CHECK(strstr(h, "TE:") == NULL);
	CHECK(strstr(h, "X-Kept: 2\r\n") != NULL);
}

/*
 * From a peer we do not trust, what the client says about its own address
 * (X-Forwarded-For, X-Real-IP, Forwarded) is replaced, not appended to;
 * X-Forwarded-Proto is always ours.
 */
static void
test_request_forwarded(void)
{
	const struct head_client tls = { "2001:db8::1", 1, NULL, 0, NULL, 0 };
	const char	*h;

	h = request("GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 10.0.0.1\r\n"
	    "X-Forwarded-Proto: https\r\nX-Forwarded-For: 10.0.0.2\r\n"
	    "X-Real-IP: 6.6.6.6\r\nForwarded: for=6.6.6.6\r\n"
	    "x-real-ip: 6.6.6.7\r\nforwarded: for=\"[::6]\"\r\n\r\n",
	    &plain, sizeof(out));
	CHECK_EQ_STR(h, "GET / HTTP/1.1\r\nHost: x\r\n"
	    "X-Forwarded-For: 192.0.2.7\r\nX-Real-IP: 192.0.2.7\r\n"
	    "Forwarded: for=192.0.2.7;proto=http\r\n"
	    "X-Forwarded-Proto: http\r\n\r\n");
	h = request("GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-Proto: http\r\n"
	    "\r\n", &tls, sizeof(out));
	CHECK_EQ_STR(h, "GET / HTTP/1.1\r\nHost: x\r\n"
	    "X-Forwarded-For: 2001:db8::1\r\nX-Real-IP: 2001:db8::1\r\n"
	    "Forwarded: for=\"[2001:db8::1]\";proto=https\r\n"
	    "X-Forwarded-Proto: https\r\n\r\n");
}

/*
 * From a trusted proxy, its X-Forwarded-For chain and Forwarded elements
 * are kept and the proxy is added as the last hop; X-Real-IP is the client
 * the walk found, never the one the request named.
 */
static void
test_request_forwarded_trusted(void)
{
	const struct head_client lb = { "10.0.0.9", 0, NULL, 0, "192.0.2.1",
	    1 };
	const char	*h;

	h = request("GET / HTTP/1.1\r\nHost: x\r\n"
	    "X-Forwarded-For: 6.6.6.6, 192.0.2.1\r\nX-Real-IP: 6.6.6.6\r\n"
	    "Forwarded: for=192.0.2.1\r\nX-Forwarded-For: 10.0.0.5\r\n\r\n",
	    &lb, sizeof(out));
	CHECK_EQ_STR(h, "GET / HTTP/1.1\r\nHost: x\r\n"
	    "Forwarded: for=192.0.2.1\r\n"
	    "X-Forwarded-For: 6.6.6.6, 192.0.2.1, 10.0.0.5, 10.0.0.9\r\n"
	    "X-Real-IP: 192.0.2.1\r\n"
	    "Forwarded: for=10.0.0.9;proto=http\r\n"
	    "X-Forwarded-Proto: http\r\n\r\n");
}

/* Framing is written afresh: no leading zeros, no odd case, no OWS. */
static void
test_request_framing(void)
{
	const char	*h;

	h = request("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 005\r\n\r\n",
	    &plain, sizeof(out));
	CHECK(h != NULL && strstr(h, "\r\nContent-Length: 5\r\n") != NULL);
	CHECK(h != NULL && strstr(h, "005") == NULL);
	h = request("POST / HTTP/1.1\r\nHost: x\r\n"
	    "transfer-encoding:   Chunked\r\n\r\n", &plain, sizeof(out));
	CHECK(h != NULL && strstr(h, "\r\nTransfer-Encoding: chunked\r\n") !=
	    NULL);
	CHECK(h != NULL && strstr(h, "Chunked") == NULL);
	h = request("GET / HTTP/1.1\r\nHost: x\r\n\r\n", &plain, sizeof(out));
	CHECK(h != NULL && strstr(h, "Content-Length") == NULL &&
	    strstr(h, "Transfer-Encoding") == NULL);
}

/* HTTP/1.0 without Host: the address the client reached stands in. */
static void
test_request_http10_host(void)
{
	struct head_client	 cl = plain;
	const char		*h;

	cl.local = "198.51.100.1";
	h = request("GET / HTTP/1.0\r\n\r\n", &cl, sizeof(out));
	CHECK_EQ_STR(h, "GET / HTTP/1.1\r\nHost: 198.51.100.1\r\n"
	    "X-Forwarded-For: 192.0.2.7\r\nX-Real-IP: 192.0.2.7\r\n"
	    "Forwarded: for=192.0.2.7;proto=http\r\n"
	    "X-Forwarded-Proto: http\r\n\r\n");
	cl.local = "::1";
	cl.local_v6 = 1;
	h = request("GET / HTTP/1.0\r\n\r\n", &cl, sizeof(out));
	CHECK(h != NULL && strstr(h, "\r\nHost: [::1]\r\n") != NULL);
	h = request("GET / HTTP/1.0\r\nHost: y\r\n\r\n", &cl, sizeof(out));
	CHECK(h != NULL && strstr(h, "[::1]") == NULL);
}

/* A head that does not fit fails whole; it is never cut. */
static void
test_request_no_room(void)
{
	static const char	 s[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";

	CHECK(request(s, &plain, 20) == NULL);
	CHECK(request(s, &plain, sizeof(out)) != NULL);
}

static void
test_response_keepalive(void)
{
	struct head_response	 hr = { 0, 0, 1, 1 };

	CHECK_EQ_STR(response("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
	    "Connection: keep-alive\r\nServer: t\r\n\r\nok", HTTP_M_GET, &hr),
	    "HTTP/1.1 200 OK\r\nServer: t\r\nContent-Length: 2\r\n\r\n");
	hr.client_minor = 0;
	CHECK_EQ_STR(response("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n",
	    HTTP_M_GET, &hr), "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
	    "Connection: keep-alive\r\n\r\n");
	hr.keepalive = 0;
	CHECK_EQ_STR(response("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n",
	    HTTP_M_GET, &hr), "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
	    "Connection: close\r\n\r\n");
}

static void
test_response_chunked(void)
{
	struct head_response	 hr = { 0, 0, 1, 1 };
	static const char	 s[] = "HTTP/1.1 200 OK\r\n"
	    "Transfer-Encoding: CHUNKED\r\n\r\n";

	CHECK_EQ_STR(response(s, HTTP_M_GET, &hr), "HTTP/1.1 200 OK\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n");
	/* an HTTP/1.0 client: the body goes without its chunking */
	hr.dechunk = 1;
	hr.keepalive = 0;
	hr.client_minor = 0;
	CHECK_EQ_STR(response(s, HTTP_M_GET, &hr), "HTTP/1.1 200 OK\r\n"
	    "Connection: close\r\n\r\n");
}

static void
test_response_interim_and_reason(void)
{
	struct head_response	 hr = { 1, 0, 0, 1 };

	CHECK_EQ_STR(response("HTTP/1.1 100 Continue\r\n\r\n", HTTP_M_POST,
	    &hr), "HTTP/1.1 100 Continue\r\n\r\n");
	hr.interim = 0;
	hr.keepalive = 1;
	CHECK_EQ_STR(response("HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n",
	    HTTP_M_GET, &hr), "HTTP/1.1 404 Not Found\r\n"
	    "Content-Length: 0\r\n\r\n");
}

static void
test_own_refusal(void)
{
	CHECK_EQ_STR(own(429, MR_RATE_LIMITED, 3, 1, 1, 0),
	    "HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain\r\n"
	    "Content-Length: 22\r\nRetry-After: 3\r\n"
	    "Spillway-Reason: rate_limited\r\n\r\n429 Too Many Requests\n");
	CHECK_EQ_STR(own(503, MR_OVERLOADED, 1, 0, 1, 1),
	    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
	    "Content-Length: 24\r\nRetry-After: 1\r\n"
	    "Spillway-Reason: overloaded\r\nConnection: close\r\n\r\n");
	CHECK_EQ_STR(own(400, MR_NONE, 0, 0, 0, 0),
	    "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n"
	    "Content-Length: 16\r\nConnection: close\r\n\r\n400 Bad Request\n");
	CHECK_EQ_STR(own(502, MR_UPSTREAM_ERROR, 0, 1, 0, 0),
	    "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\n"
	    "Content-Length: 16\r\nSpillway-Reason: upstream_error\r\n"
	    "Connection: keep-alive\r\n\r\n502 Bad Gateway\n");
}

int
main(void)
{
	RUN(test_request_plain);
	RUN(test_request_hop_by_hop);
	RUN(test_request_forwarded);
	RUN(test_request_forwarded_trusted);
	RUN(test_request_framing);
	RUN(test_request_http10_host);
	RUN(test_request_no_room);
	RUN(test_response_keepalive);
	RUN(test_response_chunked);
	RUN(test_response_interim_and_reason);
	RUN(test_own_refusal);
	return tap_done();
}
