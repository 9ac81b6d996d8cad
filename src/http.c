/*
 * http.c: a strict HTTP/1.1 head parser and body framing decoder
 * (RFC 9110, RFC 9112).
 *
 * Invariants of the head parser:
 * - Every byte of a head is looked at once by the scan, in order, and each
 *   check depends only on the bytes at or before the one being scanned. So
 *   a head fed in pieces gives exactly the result (status, error_what, head
 *   length) of the same bytes fed at once; the fuzzers assert this.
 * - head->scanned is the next byte to scan; buf[scanned - 1], if any, has
 *   been checked, so a CR there is tested against the byte after it.
 * - head->line_end is the offset just past the LF of the first line that is
 *   not an empty line before a request line; 0 until it is seen.
 * - During the scan, nheaders only counts complete header lines (for an
 *   early 431) and no header pointer is kept, because the caller's buffer
 *   may move as it grows. Once the end of the head is found, one final pass
 *   over the final buffer fills every pointer and applies the framing rules.
 *   The first-line fields set when that line was checked are pointed again
 *   into the current buffer if a later call fails, so they may be logged.
 *
 * Invariants of the body decoder:
 * - A feed returns a prefix that is all payload or all framing; payload is
 *   only ever returned in HTTP_BODY_DATA, which is left only through its
 *   byte count reaching zero, so total counts exactly the payload consumed.
 * - Each framing line is bounded (HTTP_CHUNK_LINE_MAX, HTTP_TRAILER_MAX), so
 *   nothing grows with the input, and once HTTP_BODY_ERROR is set it stays.
 */

#include <stdint.h>
#include <string.h>

#include "http.h"

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

/* What is being parsed, and the buffer it is parsed from. */
struct parse {
	struct http_head	*h;
	const char		*buf;
	int			 is_req;
	enum http_method	 req_method;	/* for a response */
};

static const struct {
	const char		*name;
	enum http_method	 method;
} methods[] = {
	{ "GET",	HTTP_M_GET },
	{ "HEAD",	HTTP_M_HEAD },
	{ "POST",	HTTP_M_POST },
	{ "PUT",	HTTP_M_PUT },
	{ "DELETE",	HTTP_M_DELETE },
	{ "OPTIONS",	HTTP_M_OPTIONS },
	{ "TRACE",	HTTP_M_TRACE },
	{ "PATCH",	HTTP_M_PATCH },
	{ "CONNECT",	HTTP_M_CONNECT },
};

/* Headers that are hop-by-hop whatever Connection says (RFC 9110 7.6.1). */
static const char *const hop_names[] = {
	"connection", "keep-alive", "te", "upgrade", "proxy-connection",
};

/* Headers a Connection option may never strip: they frame or route. */
static const char *const never_hop_names[] = {
	"content-length", "transfer-encoding", "host",
};

static int
fail(struct parse *p, int status, const char *what)
{
	p->h->error = p->is_req ? status : 502;
	p->h->error_what = what;
	return -1;
}

static int
is_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return 1;
	return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Field value characters: HTAB, SP, VCHAR, obs-text. */
static int
is_vchar_ws(unsigned char c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

/* A control byte that may appear nowhere in a head (CR and LF are lines). */
static int
is_bad_ctl(unsigned char c)
{
	return (c < 0x20 && c != '\t' && c != '\r' && c != '\n') || c == 0x7f;
}

static int
is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static int
hex_value(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static unsigned char
lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c - 'A' + 'a') : c;
}

/* ASCII case-insensitive comparison of a[0..n) and b[0..n). */
static int
ci_memeq(const char *a, const char *b, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++)
		if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
			return 0;
	return 1;
}

/* Is s[0..n) the lowercase string lc, ignoring ASCII case? */
static int
ci_equal(const char *s, size_t n, const char *lc)
{
	return strlen(lc) == n && ci_memeq(s, lc, n);
}

static int
all_tchar(const char *s, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++)
		if (!is_tchar((unsigned char)s[i]))
			return 0;
	return n > 0;
}

/* uri-host and port characters (RFC 3986): no space, '@', '/' or '\'. */
static int
is_host_char(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c))
		return 1;
	return c != '\0' && strchr("-._~%!$&'()*+,;=:[]", c) != NULL;
}

static int
all_host_chars(const char *s, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++)
		if (!is_host_char((unsigned char)s[i]))
			return 0;
	return 1;
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

/*
 * "HTTP/" DIGIT "." DIGIT. Returns 0 and the minor version (any minor above
 * 0 is treated as 1), 505 for a major version other than 1, 400 otherwise.
 */
static int
parse_version(const char *v, size_t n, int *minor)
{
	if (n != 8 || memcmp(v, "HTTP/", 5) != 0 ||
	    !is_digit((unsigned char)v[5]) || v[6] != '.' ||
	    !is_digit((unsigned char)v[7]))
		return 400;
	if (v[5] != '1')
		return 505;
	*minor = v[7] == '0' ? 0 : 1;
	return 0;
}

static enum http_method
method_lookup(const char *s, size_t n)
{
	size_t	i;

	for (i = 0; i < NELEM(methods); i++)
		if (strlen(methods[i].name) == n &&
		    memcmp(methods[i].name, s, n) == 0)
			return methods[i].method;
	return HTTP_M_OTHER;
}

/* scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) (RFC 3986 3.1) */
static int
is_scheme_char(unsigned char c, int first)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
		return 1;
	return !first && (is_digit(c) || c == '+' || c == '-' || c == '.');
}

/* absolute-form as we accept it: scheme "://" and something after. */
static int
is_absolute_form(const char *t, size_t n)
{
	size_t	i;

	for (i = 0; i < n && t[i] != ':'; i++)
		if (!is_scheme_char((unsigned char)t[i], i == 0))
			return 0;
	return i > 0 && n - i > 3 && memcmp(t + i, "://", 3) == 0;
}

/* authority-form: uri-host ":" port, for CONNECT only. */
static int
is_authority_form(const char *t, size_t n)
{
	size_t	colon, i;

	for (colon = n; colon > 0; colon--)
		if (t[colon - 1] == ':')
			break;
	if (colon < 2 || colon == n)
		return 0;
	for (i = colon; i < n; i++)
		if (!is_digit((unsigned char)t[i]))
			return 0;
	return all_host_chars(t, colon - 1);
}

static int
check_target(struct parse *p)
{
	struct http_head	*h = p->h;
	const char		*t = h->target;
	size_t			 i, n = h->target_len;

	for (i = 0; i < n; i++)
		if ((unsigned char)t[i] < 0x21 || (unsigned char)t[i] > 0x7e)
			return fail(p, 400, "invalid request target");
	if (h->method == HTTP_M_CONNECT) {
		if (!is_authority_form(t, n))
			return fail(p, 400, "CONNECT without authority-form");
		return 0;
	}
	if (t[0] == '/' || is_absolute_form(t, n))
		return 0;
	if (n == 1 && t[0] == '*' && h->method == HTTP_M_OPTIONS)
		return 0;
	return fail(p, 400, "invalid request target");
}

/* method SP request-target SP HTTP-version, in line[0..n). */
static int
parse_request_line(struct parse *p, const char *line, size_t n)
{
	struct http_head	*h = p->h;
	const char		*sp1, *sp2, *end = line + n;
	int			 r;

	if ((sp1 = memchr(line, ' ', n)) == NULL)
		return fail(p, 400, "malformed request line");
	sp2 = memchr(sp1 + 1, ' ', (size_t)(end - sp1 - 1));
	if (sp2 == NULL)
		return fail(p, 400, "missing HTTP version");
	if (sp2 == sp1 + 1)
		return fail(p, 400, "malformed request line");
	r = parse_version(sp2 + 1, (size_t)(end - sp2 - 1), &h->version_minor);
	if (r == 505)
		return fail(p, 505, "unsupported HTTP version");
	if (r != 0)
		return fail(p, 400, "invalid HTTP version");
	if (!all_tchar(line, (size_t)(sp1 - line)))
		return fail(p, 400, "invalid method");
	h->method_str = line;
	h->method_len = (size_t)(sp1 - line);
	h->method = method_lookup(line, h->method_len);
	h->target = sp1 + 1;
	h->target_len = (size_t)(sp2 - sp1 - 1);
	return check_target(p);
}

/*
 * HTTP-version SP 3DIGIT SP reason, in line[0..n). Leniency: "HTTP/1.1 200"
 * with no SP and no reason is accepted, as many servers send it.
 */
static int
parse_status_line(struct parse *p, const char *line, size_t n)
{
	struct http_head	*h = p->h;
	size_t			 i;

	if (n < 12 || parse_version(line, 8, &h->version_minor) != 0)
		return fail(p, 502, "invalid status line version");
	if (line[8] != ' ' || !is_digit((unsigned char)line[9]) ||
	    !is_digit((unsigned char)line[10]) ||
	    !is_digit((unsigned char)line[11]))
		return fail(p, 502, "invalid status code");
	h->status = (line[9] - '0') * 100 + (line[10] - '0') * 10 +
	    (line[11] - '0');
	if (h->status < 100 || h->status > 599)
		return fail(p, 502, "invalid status code");
	h->reason = line + n;
	h->reason_len = 0;
	if (n == 12)
		return 0;
	if (line[12] != ' ')
		return fail(p, 502, "invalid status line");
	for (i = 13; i < n; i++)
		if (!is_vchar_ws((unsigned char)line[i]))
			return fail(p, 502, "invalid reason phrase");
	h->reason = line + 13;
	h->reason_len = n - 13;
	return 0;
}

/* The first line ends at line_end (its CRLF included). */
static int
parse_first_line(struct parse *p)
{
	const char	*buf = p->buf;
	size_t		 s = 0, e = p->h->line_end - 2;

	if (!p->is_req)
		return parse_status_line(p, buf, e);
	while (s < e && buf[s] == '\r' && buf[s + 1] == '\n')
		s += 2;
	return parse_request_line(p, buf + s, e - s);
}


/* field-name ":" OWS field-value OWS, in line[0..n), n > 0. */
static int
parse_field(struct parse *p, const char *line, size_t n,
    struct http_header *hd)
{
	const char	*v, *ve;
	size_t		 colon, i;

	if (line[0] == ' ' || line[0] == '\t')
		return fail(p, 400, "obs-fold in head");
	for (colon = 0; colon < n && line[colon] != ':'; colon++) {
		if (line[colon] == ' ' || line[colon] == '\t')
			return fail(p, 400, "whitespace in header name");
		if (!is_tchar((unsigned char)line[colon]))
			return fail(p, 400, "invalid header name");
	}
	if (colon == n)
		return fail(p, 400, "header without colon");
	if (colon == 0)
		return fail(p, 400, "empty header name");
	v = line + colon + 1;
	ve = line + n;
	while (v < ve && (*v == ' ' || *v == '\t'))
		v++;
	while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
		ve--;
	for (i = 0; i < (size_t)(ve - v); i++) {
		if (v[i] == '\0')
			return fail(p, 400, "NUL in header value");
		if (!is_vchar_ws((unsigned char)v[i]))
			return fail(p, 400, "invalid header value");
	}
	hd->name = line;
	hd->name_len = colon;
	hd->value = v;
	hd->value_len = (size_t)(ve - v);
	hd->hop = 0;
	return 0;
}

/* Check one header line and count it; keep it in headers[] if store. */
static int
add_field(struct parse *p, const char *line, size_t n, int store)
{
	struct http_head	*h = p->h;
	struct http_header	 scratch;

	if (h->nheaders >= HTTP_MAX_HEADERS)
		return fail(p, 431, "too many headers");
	if (parse_field(p, line, n, store ? &h->headers[h->nheaders] :
	    &scratch) == -1)
		return -1;
	h->nheaders++;
	return 0;
}

static int
name_in(const char *name, size_t n, const char *const *list, size_t nlist)
{
	size_t	i;

	for (i = 0; i < nlist; i++)
		if (ci_equal(name, n, list[i]))
			return 1;
	return 0;
}

/* Mark hop every header named name[0..n), unless it frames or routes. */
static void
mark_hop(struct http_head *h, const char *name, size_t n)
{
	int	i;

	if (name_in(name, n, never_hop_names, NELEM(never_hop_names)))
		return;
	for (i = 0; i < h->nheaders; i++)
		if (h->headers[i].name_len == n &&
		    ci_memeq(h->headers[i].name, name, n))
			h->headers[i].hop = 1;
}

/*
 * Connection options set flags and make the headers they name hop-by-hop.
 * Done after every header is parsed: Connection may follow what it names.
 */
static int
connection_options(struct parse *p)
{
	struct http_head		*h = p->h;
	const struct http_header	*hd;
	const char			*pos, *e;
	size_t				 elen;
	int				 i;

	for (i = 0; i < h->nheaders; i++) {
		hd = &h->headers[i];
		if (name_in(hd->name, hd->name_len, hop_names,
		    NELEM(hop_names)))
			h->headers[i].hop = 1;
		if (!ci_equal(hd->name, hd->name_len, "connection"))
			continue;
		pos = hd->value;
		while (list_next(&pos, hd->value + hd->value_len, &e, &elen)) {
			if (!all_tchar(e, elen))
				return fail(p, 400, "invalid Connection");
			if (ci_equal(e, elen, "close"))
				h->flags |= HTTP_F_CONN_CLOSE;
			else if (ci_equal(e, elen, "keep-alive"))
				h->flags |= HTTP_F_CONN_KEEPALIVE;
			mark_hop(h, e, elen);
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
		if (!ci_equal(hd->name, hd->name_len, "transfer-encoding"))
			continue;
		pos = hd->value;
		while (list_next(&pos, hd->value + hd->value_len, &e, &elen)) {
			for (tlen = 0; tlen < elen &&
			    is_tchar((unsigned char)e[tlen]); tlen++)
				;
			chunked = ci_equal(e, tlen, "chunked");
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

static int
count_headers(const struct http_head *h, const char *lc,
    const struct http_header **last)
{
	int	i, n = 0;

	for (i = 0; i < h->nheaders; i++)
		if (ci_equal(h->headers[i].name, h->headers[i].name_len, lc)) {
			n++;
			*last = &h->headers[i];
		}
	return n;
}

/* RFC 9112 6.3 for requests, strictly: anything ambiguous is refused. */
static int
request_framing(struct parse *p)
{
	struct http_head		*h = p->h;
	const struct http_header	*cl = NULL, *te = NULL;
	struct codings			 c;
	int				 ncl, nte;

	ncl = count_headers(h, "content-length", &cl);
	nte = count_headers(h, "transfer-encoding", &te);
	if (nte > 0 && h->version_minor == 0)
		return fail(p, 400, "Transfer-Encoding in HTTP/1.0");
	if (nte > 0 && ncl > 0)
		return fail(p, 400, "Transfer-Encoding with Content-Length");
	if (ncl > 1)
		return fail(p, 400, "repeated Content-Length");
	if (nte > 0) {
		if (transfer_codings(h, &c) == -1)
			return fail(p, 400, "invalid Transfer-Encoding");
		if (c.nchunked == 0)
			return fail(p, 501, "unsupported transfer coding");
		if (c.nchunked > 1 || !c.last_chunked)
			return fail(p, 400, "chunked is not the last coding");
		if (c.n > 1)
			return fail(p, 501, "unsupported transfer coding");
		h->framing = HTTP_FRAMING_CHUNKED;
	} else if (ncl == 1) {
		if (parse_content_length(cl, &h->content_length) == -1)
			return fail(p, 400, "invalid Content-Length");
		h->framing = HTTP_FRAMING_LENGTH;
	} else
		h->framing = HTTP_FRAMING_NONE;
	return 0;
}

/* RFC 9112 6.3 for responses; any error is a 502. */
static int
response_framing(struct parse *p)
{
	struct http_head		*h = p->h;
	const struct http_header	*cl = NULL, *te = NULL;
	struct codings			 c;
	int				 ncl, nte;

	h->framing = HTTP_FRAMING_NONE;
	if (p->req_method == HTTP_M_HEAD || h->status < 200 ||
	    h->status == 204 || h->status == 304)
		return 0;
	if (p->req_method == HTTP_M_CONNECT && h->status < 300)
		return fail(p, 502, "CONNECT tunnel refused");
	ncl = count_headers(h, "content-length", &cl);
	nte = count_headers(h, "transfer-encoding", &te);
	if (nte > 0 && h->version_minor == 0)
		return fail(p, 502, "Transfer-Encoding in HTTP/1.0");
	if (nte > 0 && ncl > 0)
		return fail(p, 502, "Transfer-Encoding with Content-Length");
	if (ncl > 1)
		return fail(p, 502, "repeated Content-Length");
	if (nte > 0) {
		if (transfer_codings(h, &c) == -1)
			return fail(p, 502, "invalid Transfer-Encoding");
		if (c.nchunked > 1)
			return fail(p, 502, "chunked applied twice");
		h->framing = c.last_chunked ? HTTP_FRAMING_CHUNKED :
		    HTTP_FRAMING_CLOSE;
	} else if (ncl == 1) {
		if (parse_content_length(cl, &h->content_length) == -1)
			return fail(p, 502, "invalid Content-Length");
		h->framing = HTTP_FRAMING_LENGTH;
	} else
		h->framing = HTTP_FRAMING_CLOSE;
	return 0;
}

/* Host, Expect and Upgrade rules of a request (RFC 9112 3.2). */
static int
request_fields(struct parse *p)
{
	struct http_head		*h = p->h;
	const struct http_header	*host = NULL, *hd;
	int				 i, nhost;

	nhost = count_headers(h, "host", &host);
	if (nhost > 1)
		return fail(p, 400, "repeated Host");
	if (nhost == 0 && h->version_minor == 1)
		return fail(p, 400, "missing Host");
	if (nhost == 1) {
		if (!all_host_chars(host->value, host->value_len))
			return fail(p, 400, "invalid Host");
		h->flags |= HTTP_F_HAS_HOST;
	}
	for (i = 0; i < h->nheaders; i++) {
		hd = &h->headers[i];
		/* RFC 9110 10.1.1: HTTP/1.0 expectations are ignored. */
		if (h->version_minor == 1 &&
		    ci_equal(hd->name, hd->name_len, "expect") &&
		    ci_equal(hd->value, hd->value_len, "100-continue"))
			h->flags |= HTTP_F_EXPECT_CONTINUE;
	}
	return 0;
}

/*
 * The head is buf[0..head_len): parse it again from the start on this,
 * the final, buffer and apply the message rules.
 */
static ssize_t
finish_head(struct parse *p, size_t head_len)
{
	struct http_head	*h = p->h;
	const struct http_header *up = NULL;
	const char		*buf = p->buf;
	size_t			 s, e;

	h->nheaders = 0;
	if (parse_first_line(p) == -1)
		return -1;
	for (s = h->line_end; s < head_len - 2; s = e + 2) {
		e = s;
		while (buf[e] != '\r')
			e++;
		if (add_field(p, buf + s, e - s, 1) == -1)
			return -1;
	}
	if (connection_options(p) == -1)
		return -1;
	if (count_headers(h, "upgrade", &up) > 0)
		h->flags |= HTTP_F_UPGRADE;
	if (p->is_req) {
		if (request_fields(p) == -1 || request_framing(p) == -1)
			return -1;
	} else if (response_framing(p) == -1)
		return -1;
	return (ssize_t)head_len;
}

/*
 * A LF at buf[i] ends a line. Returns the head length if it ends the head,
 * 0 to go on scanning, -1 on error.
 */
static ssize_t
end_of_line(struct parse *p, size_t i)
{
	struct http_head	*h = p->h;
	const char		*buf = p->buf;
	size_t			 s;

	if (i == 0 || buf[i - 1] != '\r')
		return fail(p, 400, "bare LF in head");
	if (h->line_end == 0) {
		/* RFC 9112 2.2: ignore empty lines before a request line. */
		if (p->is_req && (i == 1 || buf[i - 2] == '\n'))
			return 0;
		h->line_end = i + 1;
		return parse_first_line(p);
	}
	if (buf[i - 2] == '\n')
		return finish_head(p, i + 1);
	for (s = i - 1; s > h->line_end && buf[s - 1] != '\n'; s--)
		;
	return add_field(p, buf + s, i - 1 - s, 0);
}

/*
 * Scan buf from where the last call stopped, up to max_size bytes. Returns
 * the head length, HTTP_PARSE_AGAIN or HTTP_PARSE_ERROR. Once a call has
 * returned anything but HTTP_PARSE_AGAIN, the head must be reset before it
 * parses another message.
 */
static ssize_t
scan_head(struct parse *p, size_t len, size_t max_size)
{
	struct http_head	*h = p->h;
	const char		*buf = p->buf;
	size_t			 i, limit;
	ssize_t			 r;
	unsigned char		 c;

	limit = len < max_size ? len : max_size;
	for (i = h->scanned; i < limit; i++) {
		c = (unsigned char)buf[i];
		if (i > 0 && buf[i - 1] == '\r' && c != '\n') {
			h->scanned = i;
			return fail(p, 400, "stray CR in head");
		}
		if (c == '\n') {
			if ((r = end_of_line(p, i)) != 0) {
				h->scanned = i + 1;
				return r < 0 ? HTTP_PARSE_ERROR : r;
			}
		} else if (is_bad_ctl(c)) {
			h->scanned = i;
			return fail(p, 400, c == '\0' ? "NUL in head" :
			    "control character in head");
		}
	}
	if (i > h->scanned)
		h->scanned = i;
	if (len < max_size)
		return HTTP_PARSE_AGAIN;
	if (h->line_end == 0)
		return fail(p, 414, "request line too long");
	return fail(p, 431, "head too large");
}

/*
 * Scan, and on an error let the first-line fields point into this call's
 * buffer, not a former one: the caller may log them, and its buffer may
 * have moved since the line was parsed. The line parsed then, so it parses
 * again without error.
 */
static ssize_t
parse_head(struct parse *p, size_t len, size_t max_size)
{
	struct http_head	*h = p->h;
	size_t			 start = h->scanned;
	ssize_t			 r;

	if (h->error != 0)
		return HTTP_PARSE_ERROR;
	r = scan_head(p, len, max_size);
	if (r == HTTP_PARSE_ERROR && h->line_end != 0 && h->line_end <= start)
		(void)parse_first_line(p);
	return r;
}

ssize_t
http_parse_request(struct http_head *h, const char *buf, size_t len,
    size_t max_size)
{
	struct parse	p = { h, buf, 1, HTTP_M_OTHER };

	return parse_head(&p, len, max_size);
}

ssize_t
http_parse_response(struct http_head *h, const char *buf, size_t len,
    size_t max_size, enum http_method req_method)
{
	struct parse	p = { h, buf, 0, req_method };

	return parse_head(&p, len, max_size);
}

void
http_head_reset(struct http_head *h)
{
	memset(h, 0, sizeof(*h));
}

const struct http_header *
http_head_find(const struct http_head *h, const char *name)
{
	size_t	n = strlen(name);
	int	i;

	for (i = 0; i < h->nheaders; i++)
		if (h->headers[i].name_len == n &&
		    ci_memeq(h->headers[i].name, name, n))
			return &h->headers[i];
	return NULL;
}

const char *
http_method_name(enum http_method m)
{
	size_t	i;

	for (i = 0; i < NELEM(methods); i++)
		if (methods[i].method == m)
			return methods[i].name;
	return "OTHER";
}

const char *
http_status_reason(int status)
{
	static const struct {
		int		 status;
		const char	*reason;
	} reasons[] = {
		{ 100, "Continue" }, { 101, "Switching Protocols" },
		{ 200, "OK" }, { 201, "Created" }, { 202, "Accepted" },
		{ 203, "Non-Authoritative Information" },
		{ 204, "No Content" }, { 205, "Reset Content" },
		{ 206, "Partial Content" },
		{ 300, "Multiple Choices" }, { 301, "Moved Permanently" },
		{ 302, "Found" }, { 303, "See Other" },
		{ 304, "Not Modified" }, { 305, "Use Proxy" },
		{ 307, "Temporary Redirect" },
		{ 308, "Permanent Redirect" },
		{ 400, "Bad Request" }, { 401, "Unauthorized" },
		{ 402, "Payment Required" }, { 403, "Forbidden" },
		{ 404, "Not Found" }, { 405, "Method Not Allowed" },
		{ 406, "Not Acceptable" },
		{ 407, "Proxy Authentication Required" },
		{ 408, "Request Timeout" }, { 409, "Conflict" },
		{ 410, "Gone" }, { 411, "Length Required" },
		{ 412, "Precondition Failed" }, { 413, "Content Too Large" },
		{ 414, "URI Too Long" }, { 415, "Unsupported Media Type" },
		{ 416, "Range Not Satisfiable" },
		{ 417, "Expectation Failed" },
		{ 421, "Misdirected Request" },
		{ 422, "Unprocessable Content" }, { 425, "Too Early" },
		{ 426, "Upgrade Required" },
		{ 428, "Precondition Required" },
		{ 429, "Too Many Requests" },
		{ 431, "Request Header Fields Too Large" },
		{ 500, "Internal Server Error" }, { 501, "Not Implemented" },
		{ 502, "Bad Gateway" }, { 503, "Service Unavailable" },
		{ 504, "Gateway Timeout" },
		{ 505, "HTTP Version Not Supported" },
	};
	size_t	i;

	for (i = 0; i < NELEM(reasons); i++)
		if (reasons[i].status == status)
			return reasons[i].reason;
	return "Unknown";
}

const char *
http_framing_name(enum http_framing f)
{
	switch (f) {
	case HTTP_FRAMING_NONE:
		return "none";
	case HTTP_FRAMING_LENGTH:
		return "length";
	case HTTP_FRAMING_CHUNKED:
		return "chunked";
	case HTTP_FRAMING_CLOSE:
		return "close";
	}
	return "unknown";
}

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
		if (b->size_digits == 0 || b->in_ext == 1)
			return body_fail(b, "invalid chunk size");
		b->state = HTTP_BODY_SIZE_LF;
		return 0;
	}
	if (b->in_ext == 0 && (d = hex_value(c)) >= 0) {
		/* Bounded to fit an off_t; leading zeros are free. */
		if (b->remaining > ((uint64_t)INT64_MAX - (uint64_t)d) / 16)
			return body_fail(b, "chunk size overflow");
		b->remaining = b->remaining * 16 + (uint64_t)d;
		b->size_digits++;
		return 0;
	}
	if (b->size_digits == 0)
		return body_fail(b, "invalid chunk size");
	if (b->in_ext == 2)	/* inside chunk-ext: any but CTLs */
		return is_vchar_ws(c) ? 0 :
		    body_fail(b, "invalid chunk extension");
	if (c == ' ' || c == '\t')	/* BWS before ';' */
		b->in_ext = 1;
	else if (c == ';')
		b->in_ext = 2;
	else
		return body_fail(b, "invalid chunk size");
	return 0;
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
	if (c == ':' && b->line_len > 1)
		b->in_ext = 1;
	else if (!is_tchar(c))
		return body_fail(b, "invalid trailer field name");
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

ssize_t
http_body_feed(struct http_body *b, const char *buf, size_t len,
    int *is_data)
{
	size_t	i;

	*is_data = 0;
	if (b->state == HTTP_BODY_ERROR)
		return -1;
	if (b->state == HTTP_BODY_DONE || len == 0)
		return 0;
	if (b->state == HTTP_BODY_DATA) {
		*is_data = 1;
		return body_data(b, len);
	}
	for (i = 0; i < len; i++) {
		if (chunk_frame_byte(b, (unsigned char)buf[i]) == -1)
			return -1;
		if (b->state == HTTP_BODY_DATA || b->state == HTTP_BODY_DONE)
			return (ssize_t)(i + 1);
	}
	return (ssize_t)len;
}

int
http_body_done(const struct http_body *b)
{
	return b->state == HTTP_BODY_DONE;
}
