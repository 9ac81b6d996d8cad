/*
 * head.c: the heads spillway writes: to a backend, to the client, and its
 * own answers. See head.h for the rules; they are tested in
 * tests/unit/test_head.c.
 *
 * Pure: no libevent, no global state, no clock. A head is written with
 * plain copies into the caller's buffer (on the hot path, one reserved
 * extent of an evbuffer); running out of room fails it rather than cut it.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "head.h"

struct headw {
	char		*hw_p;
	char		*hw_start;
	char		*hw_end;
	int		 hw_full;
};

static void
headw_begin(struct headw *w, char *buf, size_t len)
{
	w->hw_start = w->hw_p = buf;
	w->hw_end = buf + len;
	w->hw_full = 0;
}

static void
headw_add(struct headw *w, const char *s, size_t n)
{
	if ((size_t)(w->hw_end - w->hw_p) < n) {
		w->hw_full = 1;
		return;
	}
	memcpy(w->hw_p, s, n);
	w->hw_p += n;
}

#define HEADW_LITERAL(w, s)	headw_add((w), (s), sizeof(s) - 1)

static void
headw_field(struct headw *w, const struct http_header *hd)
{
	headw_add(w, hd->name, hd->name_len);
	HEADW_LITERAL(w, ": ");
	headw_add(w, hd->value, hd->value_len);
	HEADW_LITERAL(w, "\r\n");
}

static void
headw_uint(struct headw *w, unsigned long long v)
{
	char	 digits[24];
	int	 n;

	n = snprintf(digits, sizeof(digits), "%llu", v);
	headw_add(w, digits, (size_t)n);
}

static void
headw_length(struct headw *w, uint64_t length)
{
	HEADW_LITERAL(w, "Content-Length: ");
	headw_uint(w, (unsigned long long)length);
	HEADW_LITERAL(w, "\r\n");
}

/* What was written: the number of bytes, or -1 if it overflowed. */
static ssize_t
headw_end(struct headw *w)
{
	return w->hw_full ? -1 : (ssize_t)(w->hw_p - w->hw_start);
}

static int
name_is(const struct http_header *hd, const char *name)
{
	return hd->name_len == strlen(name) &&
	    strncasecmp(hd->name, name, hd->name_len) == 0;
}

ssize_t
head_request(char *buf, size_t len, const struct http_head *h,
    const struct head_client *cl)
{
	const struct http_header	*hd;
	struct headw			 w;
	const char			*client;
	int				 i;

	headw_begin(&w, buf, len);
	headw_add(&w, h->method_str, h->method_len);
	HEADW_LITERAL(&w, " ");
	headw_add(&w, h->target, h->target_len);
	HEADW_LITERAL(&w, " HTTP/1.1\r\n");
	for (i = 0; i < h->nheaders; i++) {
		hd = &h->headers[i];
		if (hd->hop || name_is(hd, "X-Forwarded-Proto") ||
		    name_is(hd, "X-Forwarded-For") ||
		    name_is(hd, "X-Real-IP") ||
		    (!cl->trusted && name_is(hd, "Forwarded")) ||
		    name_is(hd, "Content-Length") ||
		    name_is(hd, "Transfer-Encoding"))
			continue;
		headw_field(&w, hd);
	}
	if (h->framing == HTTP_FRAMING_CHUNKED)
		HEADW_LITERAL(&w, "Transfer-Encoding: chunked\r\n");
	else if (h->framing == HTTP_FRAMING_LENGTH)
		headw_length(&w, h->content_length);
	if (!(h->flags & HTTP_F_HAS_HOST) && cl->local != NULL) {
		/* HTTP/1.0 without Host: name the address it connected to */
		HEADW_LITERAL(&w, "Host: ");
		if (cl->local_v6)
			HEADW_LITERAL(&w, "[");
		headw_add(&w, cl->local, strlen(cl->local));
		if (cl->local_v6)
			HEADW_LITERAL(&w, "]");
		HEADW_LITERAL(&w, "\r\n");
	}
	HEADW_LITERAL(&w, "X-Forwarded-For: ");
	for (i = 0; cl->trusted && i < h->nheaders; i++) {
		hd = &h->headers[i];
		if (!hd->hop && name_is(hd, "X-Forwarded-For") &&
		    hd->value_len > 0) {
			headw_add(&w, hd->value, hd->value_len);
			HEADW_LITERAL(&w, ", ");
		}
	}
	headw_add(&w, cl->ip, strlen(cl->ip));
	HEADW_LITERAL(&w, "\r\nX-Real-IP: ");
	client = cl->client != NULL ? cl->client : cl->ip;
	headw_add(&w, client, strlen(client));
	/* RFC 7239: an IPv6 node is quoted and bracketed */
	HEADW_LITERAL(&w, "\r\nForwarded: for=");
	if (strchr(cl->ip, ':') != NULL) {
		HEADW_LITERAL(&w, "\"[");
		headw_add(&w, cl->ip, strlen(cl->ip));
		HEADW_LITERAL(&w, "]\"");
	} else
		headw_add(&w, cl->ip, strlen(cl->ip));
	if (cl->tls)
		HEADW_LITERAL(&w, ";proto=https\r\n"
		    "X-Forwarded-Proto: https\r\n\r\n");
	else
		HEADW_LITERAL(&w, ";proto=http\r\n"
		    "X-Forwarded-Proto: http\r\n\r\n");
	return headw_end(&w);
}

ssize_t
head_response(char *buf, size_t len, const struct http_head *h,
    const struct head_response *hr)
{
	struct headw	 w;
	const char	*reason = h->reason;
	size_t		 rlen = h->reason_len;
	int		 i, canon;

	if (rlen == 0) {
		reason = http_status_reason(h->status);
		rlen = strlen(reason);
	}
	headw_begin(&w, buf, len);
	HEADW_LITERAL(&w, "HTTP/1.1 ");
	headw_uint(&w, (unsigned long long)h->status);
	HEADW_LITERAL(&w, " ");
	headw_add(&w, reason, rlen);
	HEADW_LITERAL(&w, "\r\n");
	/* framing that delimits this body is written afresh, as upstream */
	canon = !hr->interim && (h->framing == HTTP_FRAMING_LENGTH ||
	    h->framing == HTTP_FRAMING_CHUNKED);
	for (i = 0; i < h->nheaders; i++) {
		if (h->headers[i].hop || ((hr->dechunk || canon) &&
		    name_is(&h->headers[i], "Transfer-Encoding")) ||
		    (canon && name_is(&h->headers[i], "Content-Length")))
			continue;
		headw_field(&w, &h->headers[i]);
	}
	if (h->framing == HTTP_FRAMING_CHUNKED && canon && !hr->dechunk)
		HEADW_LITERAL(&w, "Transfer-Encoding: chunked\r\n");
	else if (h->framing == HTTP_FRAMING_LENGTH && canon)
		headw_length(&w, h->content_length);
	if (!hr->interim) {
		if (!hr->keepalive)
			HEADW_LITERAL(&w, "Connection: close\r\n");
		else if (hr->client_minor == 0)
			HEADW_LITERAL(&w, "Connection: keep-alive\r\n");
	}
	HEADW_LITERAL(&w, "\r\n");
	return headw_end(&w);
}

/* One format, one copy: a refusal must cost next to nothing. */
ssize_t
head_own(char *buf, size_t len, int status, enum metrics_reason reason,
    uint64_t retry_after, int keepalive, int client_minor, int is_head)
{
	const char	*text = http_status_reason(status);
	const char	*name = metrics_reason_name(reason);
	char		 retry[48] = "", why[96] = "";
	int		 n, blen;

	if (retry_after > 0)
		snprintf(retry, sizeof(retry), "Retry-After: %llu\r\n",
		    (unsigned long long)retry_after);
	if (name != NULL)
		snprintf(why, sizeof(why), "Spillway-Reason: %s\r\n", name);
	blen = snprintf(NULL, 0, "%d %s\n", status, text);
	n = snprintf(buf, len, "HTTP/1.1 %d %s\r\n"
	    "Content-Type: text/plain\r\nContent-Length: %d\r\n%s%s%s\r\n",
	    status, text, blen, retry, why, !keepalive ?
	    "Connection: close\r\n" : client_minor == 0 ?
	    "Connection: keep-alive\r\n" : "");
	if (n > 0 && (size_t)n < len && !is_head)
		n += snprintf(buf + n, len - (size_t)n, "%d %s\n", status,
		    text);
	if (n < 0 || (size_t)n >= len)
		return -1;
	return n;
}
