/*
 * http_fields.c: the rules of a head's fields, once the head is complete
 * (http.c scans it): which fields are hop-by-hop, how the message is
 * framed (Content-Length, Transfer-Encoding, or the end of the
 * connection), Host and the target's authority, Expect and Upgrade.
 * Every ambiguity a parser behind us could read differently is an error.
 *
 * Pure: no libevent, no globals, no clock, no allocation.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "http.h"
#include "http_int.h"

/*
 * Is s[0..n) the string literal lit, ignoring ASCII case? lit must be
 * lowercase and made of letters, digits and '-' only (see ci_lit()).
 */
#define CI_LIT(s, n, lit)	\
	((n) == sizeof(lit) - 1 && ci_lit((s), (lit), sizeof(lit) - 1))

/*
 * Header names the head rules look at. header_kind() finds a field's kind
 * with one switch on its length and at most one comparison, instead of a
 * comparison with every name in every rule.
 */
enum header_kind {
	HK_OTHER = 0,
	HK_CONNECTION,		/* hop-by-hop (RFC 9110 7.6.1) ... */
	HK_KEEP_ALIVE,
	HK_TE,
	HK_UPGRADE,
	HK_PROXY_CONNECTION,	/* ... up to here */
	HK_CONTENT_LENGTH,	/* never hop-by-hop: they frame ... */
	HK_TRANSFER_ENCODING,
	HK_HOST,		/* ... or route */
	HK_EXPECT,
};

static const char *const kind_names[] = {
	[HK_CONNECTION] = "connection",
	[HK_KEEP_ALIVE] = "keep-alive",
	[HK_TE] = "te",
	[HK_UPGRADE] = "upgrade",
	[HK_PROXY_CONNECTION] = "proxy-connection",
	[HK_CONTENT_LENGTH] = "content-length",
	[HK_TRANSFER_ENCODING] = "transfer-encoding",
	[HK_HOST] = "host",
	[HK_EXPECT] = "expect",
};

/*
 * Case-insensitive comparison of a word of s with the same word of lc, a
 * lowercase string of letters, digits and '-' only: in it, a letter is a
 * byte with bit 0x40 set, and only there may s differ, by 0x20 (its
 * capital). Exact for any s.
 */
static int
ci_word8(const char *s, const char *lc)
{
	uint64_t	a, b;

	memcpy(&a, s, sizeof(a));
	memcpy(&b, lc, sizeof(b));
	return ((a ^ b) & ~((b >> 1) & 0x2020202020202020ULL)) == 0;
}

static int
ci_word4(const char *s, const char *lc)
{
	uint32_t	a, b;

	memcpy(&a, s, sizeof(a));
	memcpy(&b, lc, sizeof(b));
	return ((a ^ b) & ~((b >> 1) & 0x20202020U)) == 0;
}

/*
 * Is s[0..n) equal to lc[0..n), ignoring ASCII case? lc as for ci_word8().
 * Compared a word at a time, the last word overlapping the one before:
 * header names are compared with a few known ones for every field.
 */
static int
ci_lit(const char *s, const char *lc, size_t n)
{
	size_t	i;

	if (n >= 8) {
		for (i = 0; i + 8 < n; i += 8)
			if (!ci_word8(s + i, lc + i))
				return 0;
		return ci_word8(s + n - 8, lc + n - 8);
	}
	if (n >= 4)
		return ci_word4(s, lc) && ci_word4(s + n - 4, lc + n - 4);
	for (i = 0; i < n; i++)
		if (lower((unsigned char)s[i]) != (unsigned char)lc[i])
			return 0;
	return 1;
}

/* The kind of the header named s[0..n). */
static enum header_kind
header_kind(const char *s, size_t n)
{
	enum header_kind	k;

	switch (n) {
	case 2:
		k = HK_TE;
		break;
	case 4:
		k = HK_HOST;
		break;
	case 6:
		k = HK_EXPECT;
		break;
	case 7:
		k = HK_UPGRADE;
		break;
	case 10:
		k = lower((unsigned char)s[0]) == 'c' ? HK_CONNECTION :
		    HK_KEEP_ALIVE;
		break;
	case 14:
		k = HK_CONTENT_LENGTH;
		break;
	case 16:
		k = HK_PROXY_CONNECTION;
		break;
	case 17:
		k = HK_TRANSFER_ENCODING;
		break;
	default:
		return HK_OTHER;
	}
	return ci_lit(s, kind_names[k], n) ? k : HK_OTHER;
}

/*
 * Next element of a comma-separated list in [*pos, end), OWS trimmed and
 * empty elements skipped (RFC 9110 5.6.1). Returns 1 with the element, or
 * 0 at the end of the list.
 */
static int
list_next(const char **pos, const char *end, const char **elem, size_t *elen)
{
	const char	*s, *e;

	while (*pos < end) {
		s = *pos;
		e = memchr(s, ',', (size_t)(end - s));
		if (e == NULL)
			e = end;
		*pos = e < end ? e + 1 : end;
		while (s < e && (*s == ' ' || *s == '\t'))
			s++;
		while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if (e > s) {
			*elem = s;
			*elen = (size_t)(e - s);
			return 1;
		}
	}
	return 0;
}

/* Mark hop every header named name[0..n), of kind k. */
static void
mark_hop(struct http_head *h, const char *name, size_t n, enum header_kind k)
{
	int	i;

	/* Never those that frame or route. */
	if (k == HK_CONTENT_LENGTH || k == HK_TRANSFER_ENCODING ||
	    k == HK_HOST)
		return;
	for (i = 0; i < h->nheaders; i++)
		if (h->headers[i].name_len == n &&
		    http_ci_memeq(h->headers[i].name, name, n))
			h->headers[i].hop = 1;
}

/* Connection options set flags and make the headers they name hop-by-hop. */
static int
connection_options(struct parse *p, const struct http_header *hd)
{
	struct http_head	*h = p->h;
	const char		*pos = hd->value, *e;
	size_t			 elen;
	enum header_kind	 k;

	while (list_next(&pos, hd->value + hd->value_len, &e, &elen)) {
		if (!http_all_tchar(e, elen))
			return http_fail(p, 400, "invalid Connection");
		k = header_kind(e, elen);
		if (k == HK_KEEP_ALIVE)
			h->flags |= HTTP_F_CONN_KEEPALIVE;
		else if (CI_LIT(e, elen, "close"))
			h->flags |= HTTP_F_CONN_CLOSE;
		mark_hop(h, e, elen, k);
	}
	return 0;
}

/*
 * A name that reads Content-Length or Transfer-Encoding once each '_' is
 * taken for '-': a CGI-style backend maps both to the same variable, so
 * it would frame the body by a header we did not (a smuggling vector).
 */
static int
framing_lookalike(const char *s, size_t n)
{
	char		 name[17];
	size_t		 i;
	enum header_kind k;

	if ((n != 14 && n != 17) || memchr(s, '_', n) == NULL)
		return 0;
	for (i = 0; i < n; i++)
		name[i] = s[i] == '_' ? '-' : s[i];
	k = header_kind(name, n);
	return k == HK_CONTENT_LENGTH || k == HK_TRANSFER_ENCODING;
}

/* What the head rules need to know of the fields, gathered in one pass. */
struct fields {
	int				 ncl;		/* Content-Length */
	int				 nte;		/* Transfer-Encoding */
	int				 nhost;
	int				 upgrade;	/* an Upgrade header */
	int				 expect_continue;
	const struct http_header	*cl;		/* the last of each */
	const struct http_header	*host;
};

/*
 * One pass over the fields, in order: hop-by-hop headers are marked, the
 * Connection options applied (after every header is parsed: Connection may
 * follow what it names), and the headers the rules need counted.
 */
static int
gather_fields(struct parse *p, struct fields *f)
{
	struct http_head	*h = p->h;
	struct http_header	*hd;
	int			 i;

	memset(f, 0, sizeof(*f));
	for (i = 0; i < h->nheaders; i++) {
		hd = &h->headers[i];
		switch (header_kind(hd->name, hd->name_len)) {
		case HK_CONNECTION:
			hd->hop = 1;
			if (connection_options(p, hd) == -1)
				return -1;
			break;
		case HK_UPGRADE:
			hd->hop = 1;
			f->upgrade = 1;
			break;
		case HK_KEEP_ALIVE:
		case HK_TE:
		case HK_PROXY_CONNECTION:
			hd->hop = 1;
			break;
		case HK_CONTENT_LENGTH:
			f->ncl++;
			f->cl = hd;
			break;
		case HK_TRANSFER_ENCODING:
			f->nte++;
			break;
		case HK_HOST:
			f->nhost++;
			f->host = hd;
			break;
		case HK_EXPECT:
			if (CI_LIT(hd->value, hd->value_len, "100-continue"))
				f->expect_continue = 1;
			break;
		case HK_OTHER:
			if (p->is_req &&
			    framing_lookalike(hd->name, hd->name_len))
				return http_fail(p, 400,
				    "lookalike of a framing header");
			break;
		}
	}
	return 0;
}

/* 1*DIGIT, at most INT64_MAX so that it fits an off_t. */
static int
parse_content_length(const struct http_header *hd, uint64_t *out)
{
	uint64_t	v = 0;
	size_t		i;
	unsigned int	d;

	if (hd->value_len == 0)
		return -1;
	for (i = 0; i < hd->value_len; i++) {
		if (!is_digit((unsigned char)hd->value[i]))
			return -1;
		d = (unsigned int)(hd->value[i] - '0');
		if (v > ((uint64_t)INT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

struct codings {
	int	n;		/* transfer codings listed */
	int	nchunked;	/* of which "chunked" */
	int	last_chunked;	/* "chunked" is the last one */
};

/*
 * Walk every Transfer-Encoding list, in order. A coding is a token with
 * optional parameters; "chunked" takes none. Returns 0, or -1 if invalid.
 */
static int
transfer_codings(const struct http_head *h, struct codings *c)
{
	const struct http_header	*hd;
	const char			*pos, *e;
	size_t				 elen, tlen;
	int				 i, chunked;

	memset(c, 0, sizeof(*c));
	for (i = 0; i < h->nheaders; i++) {
		hd = &h->headers[i];
		if (!CI_LIT(hd->name, hd->name_len, "transfer-encoding"))
			continue;
		pos = hd->value;
		while (list_next(&pos, hd->value + hd->value_len, &e, &elen)) {
			for (tlen = 0; tlen < elen &&
			    is_tchar((unsigned char)e[tlen]); tlen++)
				;
			chunked = CI_LIT(e, tlen, "chunked");
			if (tlen == 0 || (tlen < elen && chunked))
				return -1;
			while (tlen < elen && (e[tlen] == ' ' ||
			    e[tlen] == '\t'))
				tlen++;
			if (tlen < elen && e[tlen] != ';')
				return -1;
			c->n++;
			c->nchunked += chunked;
			c->last_chunked = chunked;
		}
	}
	return c->n > 0 ? 0 : -1;
}

/* RFC 9112 6.3 for requests, strictly: anything ambiguous is refused. */
static int
request_framing(struct parse *p, const struct fields *f)
{
	struct http_head	*h = p->h;
	struct codings		 c;

	if (f->nte > 0 && h->version_minor == 0)
		return http_fail(p, 400, "Transfer-Encoding in HTTP/1.0");
	if (f->nte > 0 && f->ncl > 0)
		return http_fail(p, 400, "Transfer-Encoding with Content-Length");
	if (f->ncl > 1)
		return http_fail(p, 400, "repeated Content-Length");
	if (f->nte > 0) {
		if (transfer_codings(h, &c) == -1)
			return http_fail(p, 400, "invalid Transfer-Encoding");
		if (c.nchunked == 0)
			return http_fail(p, 501, "unsupported transfer coding");
		if (c.nchunked > 1 || !c.last_chunked)
			return http_fail(p, 400, "chunked is not the last coding");
		if (c.n > 1)
			return http_fail(p, 501, "unsupported transfer coding");
		h->framing = HTTP_FRAMING_CHUNKED;
	} else if (f->ncl == 1) {
		if (parse_content_length(f->cl, &h->content_length) == -1)
			return http_fail(p, 400, "invalid Content-Length");
		h->framing = HTTP_FRAMING_LENGTH;
	} else
		h->framing = HTTP_FRAMING_NONE;
	return 0;
}

/* RFC 9112 6.3 for responses; any error is a 502. */
static int
response_framing(struct parse *p, const struct fields *f)
{
	struct http_head	*h = p->h;
	struct codings		 c;

	h->framing = HTTP_FRAMING_NONE;
	if (p->req_method == HTTP_M_HEAD || h->status < 200 ||
	    h->status == 204 || h->status == 304)
		return 0;
	if (p->req_method == HTTP_M_CONNECT && h->status < 300)
		return http_fail(p, 502, "CONNECT tunnel refused");
	if (f->nte > 0 && h->version_minor == 0)
		return http_fail(p, 502, "Transfer-Encoding in HTTP/1.0");
	if (f->nte > 0 && f->ncl > 0)
		return http_fail(p, 502, "Transfer-Encoding with Content-Length");
	if (f->ncl > 1)
		return http_fail(p, 502, "repeated Content-Length");
	if (f->nte > 0) {
		/*
		 * We remove the client's TE, so chunked is the only coding a
		 * backend may use (RFC 9110 10.1.4); with it alone, the
		 * framing written to the client says all there is.
		 */
		if (transfer_codings(h, &c) == -1)
			return http_fail(p, 502, "invalid Transfer-Encoding");
		if (c.nchunked > 1)
			return http_fail(p, 502, "chunked applied twice");
		if (c.n > 1 || !c.last_chunked)
			return http_fail(p, 502, "transfer coding other than chunked");
		h->framing = HTTP_FRAMING_CHUNKED;
	} else if (f->ncl == 1) {
		if (parse_content_length(f->cl, &h->content_length) == -1)
			return http_fail(p, 502, "invalid Content-Length");
		h->framing = HTTP_FRAMING_LENGTH;
	} else
		h->framing = HTTP_FRAMING_CLOSE;
	return 0;
}

/*
 * The authority of an absolute-form target, or CONNECT's authority-form
 * one, must be the Host (RFC 9112 3.2, 3.2.2): else the backend and a
 * classifier reading Host route the request differently. Userinfo is
 * refused (RFC 9110 4.2.4). Returns 0 or -1.
 */
static int
check_authority(struct parse *p, const struct http_header *host)
{
	const struct http_head	*h = p->h;
	const char		*a, *e, *end = h->target + h->target_len;

	if (h->target[0] == '/' || (h->target_len == 1 &&
	    h->target[0] == '*'))
		return 0;
	if (h->method == HTTP_M_CONNECT) {	/* authority-form */
		a = h->target;
		e = end;
	} else {
		a = (const char *)memchr(h->target, ':', h->target_len) + 3;
		for (e = a; e < end && *e != '/' && *e != '?'; e++)
			if (*e == '@')
				return http_fail(p, 400,
				    "userinfo in request target");
	}
	if (host != NULL && ((size_t)(e - a) != host->value_len ||
	    !http_ci_memeq(a, host->value, host->value_len)))
		return http_fail(p, 400, "Host differs from the target");
	return 0;
}

/* Host and Expect rules of a request (RFC 9112 3.2). */
static int
request_fields(struct parse *p, const struct fields *f)
{
	struct http_head	*h = p->h;

	if (f->nhost > 1)
		return http_fail(p, 400, "repeated Host");
	if (f->nhost == 0 && h->version_minor == 1)
		return http_fail(p, 400, "missing Host");
	if (f->nhost == 1) {
		if (!http_all_host_chars(f->host->value, f->host->value_len))
			return http_fail(p, 400, "invalid Host");
		h->flags |= HTTP_F_HAS_HOST;
	}
	if (check_authority(p, f->nhost == 1 ? f->host : NULL) == -1)
		return -1;
	/* RFC 9110 10.1.1: HTTP/1.0 expectations are ignored. */
	if (h->version_minor == 1 && f->expect_continue)
		h->flags |= HTTP_F_EXPECT_CONTINUE;
	return 0;
}

/* The head is buf[0..head_len): apply the message rules. */
ssize_t
http_finish_head(struct parse *p, size_t head_len)
{
	struct http_head	*h = p->h;
	struct fields		 f;

	if (h->line_end <= p->start && http_reparse_head(p, head_len) == -1)
		return -1;
	if (gather_fields(p, &f) == -1)
		return -1;
	if (f.upgrade)
		h->flags |= HTTP_F_UPGRADE;
	if (p->is_req) {
		if (request_fields(p, &f) == -1 ||
		    request_framing(p, &f) == -1)
			return -1;
	} else if (response_framing(p, &f) == -1)
		return -1;
	return (ssize_t)head_len;
}

/* Does a field of this name frame or route a message? (trailers: never) */
int
http_frames_or_routes(const char *name, size_t n)
{
	enum header_kind	 k = header_kind(name, n);

	return k == HK_CONTENT_LENGTH || k == HK_TRANSFER_ENCODING ||
	    k == HK_HOST;
}

