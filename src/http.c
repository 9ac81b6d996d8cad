/*
 * http.c: a strict HTTP/1.1 head parser (RFC 9110, RFC 9112); the body
 * framing decoder is http_body.c.
 *
 * Invariants of the head parser:
 * - Every byte of a head is looked at once by the scan, in order, and each
 *   check depends only on the bytes at or before the one being scanned
 *   (and, for a CR, the byte after it, checked as that byte is scanned). So
 *   a head fed in pieces gives exactly the result (status, error_what, head
 *   length) of the same bytes fed at once; the fuzzers assert this.
 * - head->scanned is the next byte to scan; buf[scanned - 1], if any, has
 *   been checked, so a CR there is tested against the byte after it.
 * - head->line_end is the offset just past the LF of the first line that is
 *   not an empty line before a request line; 0 until it is seen.
 * - Once the scan has passed a line, its bytes are known good: no control
 *   byte but HTAB, no CR but the one before its LF. So the line checks
 *   need not look at the bytes of a field value again, and the CR ending a
 *   line is a sentinel that stops a loop over a field name.
 * - During the scan, nheaders counts the complete header lines (for an
 *   early 431) and headers[] is filled as each line is checked, pointing
 *   into the buffer of that call. The caller's buffer may move as it grows,
 *   so if the head spans calls, the first line and the fields are parsed
 *   again from the final buffer once its end is found; a head that arrives
 *   whole (the common case) is parsed once. Slots past nheaders, and every
 *   slot before the head is complete, hold nothing the caller may use.
 *   The first-line fields set when that line was checked are pointed again
 *   into the current buffer if a later call fails, so they may be logged.
 */

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "http.h"
#include "http_chars.h"

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

/*
 * Is s[0..n) the string literal lit, ignoring ASCII case? lit must be
 * lowercase and made of letters, digits and '-' only (see ci_lit()).
 */
#define CI_LIT(s, n, lit)	\
	((n) == sizeof(lit) - 1 && ci_lit((s), (lit), sizeof(lit) - 1))

/* What is being parsed, and the buffer it is parsed from. */
struct parse {
	struct http_head	*h;
	const char		*buf;
	int			 is_req;
	enum http_method	 req_method;	/* for a response */
	size_t			 start;		/* h->scanned when called */
};

static const struct {
	const char		*name;
	size_t			 len;
	enum http_method	 method;
} methods[] = {
	{ "GET",	3,	HTTP_M_GET },
	{ "HEAD",	4,	HTTP_M_HEAD },
	{ "POST",	4,	HTTP_M_POST },
	{ "PUT",	3,	HTTP_M_PUT },
	{ "DELETE",	6,	HTTP_M_DELETE },
	{ "OPTIONS",	7,	HTTP_M_OPTIONS },
	{ "TRACE",	5,	HTTP_M_TRACE },
	{ "PATCH",	5,	HTTP_M_PATCH },
	{ "CONNECT",	7,	HTTP_M_CONNECT },
};

#define S_	C_STOP
#define T_	C_TCHAR
#define H_	C_HOST
#define TH	(C_TCHAR | C_HOST)

const unsigned char http_cclass[256] = {
	/* 0x00: NUL .. SI; HTAB (0x09) is allowed */
	S_, S_, S_, S_, S_, S_, S_, S_, S_, 0,  S_, S_, S_, S_, S_, S_,
	/* 0x10 */
	S_, S_, S_, S_, S_, S_, S_, S_, S_, S_, S_, S_, S_, S_, S_, S_,
	/* 0x20:    !   "   #   $   %   &   '   (   )   *   +   ,   -   .   / */
	0,  TH, 0,  T_, TH, TH, TH, TH, H_, H_, TH, TH, H_, TH, TH, 0,
	/* 0x30: 0-9 : ; < = > ? */
	TH, TH, TH, TH, TH, TH, TH, TH, TH, TH, H_, H_, 0,  H_, 0,  0,
	/* 0x40: @ A-O */
	0,  TH, TH, TH, TH, TH, TH, TH, TH, TH, TH, TH, TH, TH, TH, TH,
	/* 0x50: P-Z [ \ ] ^ _ */
	TH, TH, TH, TH, TH, TH, TH, TH, TH, TH, TH, H_, 0,  H_, T_, TH,
	/* 0x60: ` a-o */
	T_, TH, TH, TH, TH, TH, TH, TH, TH, TH, TH, TH, TH, TH, TH, TH,
	/* 0x70: p-z { | } ~ DEL */
	TH, TH, TH, TH, TH, TH, TH, TH, TH, TH, TH, 0,  T_, 0,  TH, S_,
	/* 0x80 .. 0xff: obs-text, allowed in values, in no token */
};

#undef S_
#undef T_
#undef H_
#undef TH

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

static int
fail(struct parse *p, int status, const char *what)
{
	p->h->error = p->is_req ? status : 502;
	p->h->error_what = what;
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

static int
all_tchar(const char *s, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++)
		if (!is_tchar((unsigned char)s[i]))
			return 0;
	return n > 0;
}

static int
all_host_chars(const char *s, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++)
		if ((http_cclass[(unsigned char)s[i]] & C_HOST) == 0)
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
		if (methods[i].len == n && memcmp(methods[i].name, s, n) == 0)
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

	/* '#': a fragment is never sent (RFC 9112 3.2); backends differ */
	for (i = 0; i < n; i++)
		if ((unsigned char)t[i] < 0x21 || (unsigned char)t[i] > 0x7e ||
		    t[i] == '#')
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

/*
 * field-name ":" OWS field-value OWS, in line[0..n), n > 0, a line the
 * scan has passed: line[n] is its CR and the value needs no more checks.
 * Stored as headers[nheaders++].
 */
static int
add_field(struct parse *p, const char *line, size_t n)
{
	struct http_head	*h = p->h;
	struct http_header	*hd;
	const char		*v, *ve;
	size_t			 colon;

	if (h->nheaders >= HTTP_MAX_HEADERS)
		return fail(p, 431, "too many headers");
	if (line[0] == ' ' || line[0] == '\t')
		return fail(p, 400, "obs-fold in head");
	/* The CR at line[n] is no tchar: it stops the loop. */
	for (colon = 0; is_tchar((unsigned char)line[colon]); colon++)
		;
	if (colon == n)
		return fail(p, 400, "header without colon");
	if (line[colon] == ' ' || line[colon] == '\t')
		return fail(p, 400, "whitespace in header name");
	if (line[colon] != ':')
		return fail(p, 400, "invalid header name");
	if (colon == 0)
		return fail(p, 400, "empty header name");
	v = line + colon + 1;
	ve = line + n;
	while (v < ve && (*v == ' ' || *v == '\t'))
		v++;
	while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
		ve--;
	hd = &h->headers[h->nheaders++];
	hd->name = line;
	hd->name_len = colon;
	hd->value = v;
	hd->value_len = (size_t)(ve - v);
	hd->hop = 0;
	return 0;
}

/*
 * The head is buf[0..head_len) and began in an earlier call: point the
 * first line and the fields into this, the final, buffer. They were all
 * checked before, on the same bytes, so this cannot fail.
 */
static int
reparse_head(struct parse *p, size_t head_len)
{
	struct http_head	*h = p->h;
	const char		*buf = p->buf, *cr;
	size_t			 s;

	if (parse_first_line(p) == -1)
		return -1;
	h->nheaders = 0;
	for (s = h->line_end; s < head_len - 2; s = (size_t)(cr - buf) + 2) {
		cr = memchr(buf + s, '\r', head_len - s);
		if (add_field(p, buf + s, (size_t)(cr - buf) - s) == -1)
			return -1;
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
		    ci_memeq(h->headers[i].name, name, n))
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
		if (!all_tchar(e, elen))
			return fail(p, 400, "invalid Connection");
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
				return fail(p, 400,
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
		return fail(p, 400, "Transfer-Encoding in HTTP/1.0");
	if (f->nte > 0 && f->ncl > 0)
		return fail(p, 400, "Transfer-Encoding with Content-Length");
	if (f->ncl > 1)
		return fail(p, 400, "repeated Content-Length");
	if (f->nte > 0) {
		if (transfer_codings(h, &c) == -1)
			return fail(p, 400, "invalid Transfer-Encoding");
		if (c.nchunked == 0)
			return fail(p, 501, "unsupported transfer coding");
		if (c.nchunked > 1 || !c.last_chunked)
			return fail(p, 400, "chunked is not the last coding");
		if (c.n > 1)
			return fail(p, 501, "unsupported transfer coding");
		h->framing = HTTP_FRAMING_CHUNKED;
	} else if (f->ncl == 1) {
		if (parse_content_length(f->cl, &h->content_length) == -1)
			return fail(p, 400, "invalid Content-Length");
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
		return fail(p, 502, "CONNECT tunnel refused");
	if (f->nte > 0 && h->version_minor == 0)
		return fail(p, 502, "Transfer-Encoding in HTTP/1.0");
	if (f->nte > 0 && f->ncl > 0)
		return fail(p, 502, "Transfer-Encoding with Content-Length");
	if (f->ncl > 1)
		return fail(p, 502, "repeated Content-Length");
	if (f->nte > 0) {
		/*
		 * We remove the client's TE, so chunked is the only coding a
		 * backend may use (RFC 9110 10.1.4); with it alone, the
		 * framing written to the client says all there is.
		 */
		if (transfer_codings(h, &c) == -1)
			return fail(p, 502, "invalid Transfer-Encoding");
		if (c.nchunked > 1)
			return fail(p, 502, "chunked applied twice");
		if (c.n > 1 || !c.last_chunked)
			return fail(p, 502, "transfer coding other than chunked");
		h->framing = HTTP_FRAMING_CHUNKED;
	} else if (f->ncl == 1) {
		if (parse_content_length(f->cl, &h->content_length) == -1)
			return fail(p, 502, "invalid Content-Length");
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
				return fail(p, 400,
				    "userinfo in request target");
	}
	if (host != NULL && ((size_t)(e - a) != host->value_len ||
	    !ci_memeq(a, host->value, host->value_len)))
		return fail(p, 400, "Host differs from the target");
	return 0;
}

/* Host and Expect rules of a request (RFC 9112 3.2). */
static int
request_fields(struct parse *p, const struct fields *f)
{
	struct http_head	*h = p->h;

	if (f->nhost > 1)
		return fail(p, 400, "repeated Host");
	if (f->nhost == 0 && h->version_minor == 1)
		return fail(p, 400, "missing Host");
	if (f->nhost == 1) {
		if (!all_host_chars(f->host->value, f->host->value_len))
			return fail(p, 400, "invalid Host");
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
static ssize_t
finish_head(struct parse *p, size_t head_len)
{
	struct http_head	*h = p->h;
	struct fields		 f;

	if (h->line_end <= p->start && reparse_head(p, head_len) == -1)
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

/*
 * A CRLF ends at buf[i] (the LF). After the first line, the line began at
 * ls: empty (ls == i - 1), it ends the head, else it is a field line.
 * Returns the head length if it ends the head, 0 to go on scanning, -1 on
 * error.
 */
static ssize_t
end_of_line(struct parse *p, size_t i, size_t ls)
{
	struct http_head	*h = p->h;
	const char		*buf = p->buf;

	if (h->line_end == 0) {
		/* RFC 9112 2.2: ignore empty lines before a request line. */
		if (p->is_req && (i == 1 || buf[i - 2] == '\n'))
			return 0;
		h->line_end = i + 1;
		return parse_first_line(p);
	}
	if (ls == i - 1)
		return finish_head(p, i + 1);
	return add_field(p, buf + ls, i - 1 - ls);
}

/*
 * The bytes of the word at s that are below SP or DEL (C_STOP, or HTAB):
 * 0 if none, else a mask whose lowest set bit is the high bit of the first
 * such byte in memory order, on a little-endian machine. (Bits above it
 * may be set wrongly, by a borrow: only the lowest is exact.)
 */
static uint64_t
ctl_mask(const unsigned char *s)
{
	const uint64_t	ones = 0x0101010101010101ULL;
	const uint64_t	highs = 0x8080808080808080ULL;
	uint64_t	w, del;

	memcpy(&w, s, sizeof(w));
	del = w ^ (0x7f * ones);
	/* the high bit of a byte b is set in (x - n) & ~x for b < n */
	return (((w - 0x20 * ones) & ~w) | ((del - ones) & ~del)) & highs;
}

/* The index of the first byte of the word at s that ctl_mask() flags. */
static size_t
first_ctl(const unsigned char *s, uint64_t mask)
{
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && \
    __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	(void)s;
	return (size_t)__builtin_ctzll(mask) / 8;
#else
	size_t	k;

	(void)mask;
	for (k = 0; s[k] >= 0x20 && s[k] != 0x7f; k++)
		;
	return k;
#endif
}

/*
 * The first byte of class C_STOP in buf[i..limit), or limit. Most bytes
 * of a head are in no class, so they are passed eight at a time; a word
 * with a control byte is passed up to it, and an HTAB (allowed) is passed
 * on its own.
 */
static size_t
skip_plain(const unsigned char *buf, size_t i, size_t limit)
{
	uint64_t	m;

	while (limit - i >= 8) {
		if ((m = ctl_mask(buf + i)) == 0) {
			i += 8;
			continue;
		}
		i += first_ctl(buf + i, m);
		if (http_cclass[buf[i]] & C_STOP)
			return i;
		i++;
	}
	while (i < limit && (http_cclass[buf[i]] & C_STOP) == 0)
		i++;
	return i;
}

/*
 * Scan buf from where the last call stopped, up to max_size bytes. Returns
 * the head length, HTTP_PARSE_AGAIN or HTTP_PARSE_ERROR. Once a call has
 * returned anything but HTTP_PARSE_AGAIN, the head must be reset before it
 * parses another message.
 *
 * Most bytes are in no class but the default, so skip_plain() passes them
 * in words; the few that stop it (CR, LF, a forbidden control) are looked
 * at one by one. The errors are those of a byte-by-byte scan: the first bad
 * byte decides, and for a stray CR it is the byte after the CR.
 */
static ssize_t
scan_head(struct parse *p, size_t len, size_t max_size)
{
	struct http_head	*h = p->h;
	const unsigned char	*buf = (const unsigned char *)p->buf;
	size_t			 i = h->scanned, limit, ls = 0;
	ssize_t			 r;

	limit = len < max_size ? len : max_size;
	if (i >= limit)
		goto more;
	if (i > 0 && buf[i - 1] == '\r' && buf[i] != '\n') {
		h->scanned = i;
		return fail(p, 400, "stray CR in head");
	}
	/* The line being scanned began after the last LF, if a field line. */
	if (h->line_end != 0)
		for (ls = i; ls > h->line_end && buf[ls - 1] != '\n'; ls--)
			;
	while ((i = skip_plain(buf, i, limit)) < limit) {
		if (buf[i] == '\r') {
			if (i + 1 == limit) {	/* the next call checks */
				i++;
				break;
			}
			if (buf[++i] != '\n') {
				h->scanned = i;
				return fail(p, 400, "stray CR in head");
			}
		} else if (buf[i] != '\n') {
			h->scanned = i;
			return fail(p, 400, buf[i] == '\0' ? "NUL in head" :
			    "control character in head");
		} else if (i == 0 || buf[i - 1] != '\r') {
			h->scanned = i + 1;
			return fail(p, 400, "bare LF in head");
		}
		/* buf[i] is a LF after a CR */
		if ((r = end_of_line(p, i, ls)) != 0) {
			h->scanned = i + 1;
			return r < 0 ? HTTP_PARSE_ERROR : r;
		}
		ls = ++i;
	}
	h->scanned = i;
more:
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
	ssize_t			 r;

	if (h->error != 0)
		return HTTP_PARSE_ERROR;
	r = scan_head(p, len, max_size);
	if (r == HTTP_PARSE_ERROR && h->line_end != 0 &&
	    h->line_end <= p->start)
		(void)parse_first_line(p);
	return r;
}

ssize_t
http_parse_request(struct http_head *h, const char *buf, size_t len,
    size_t max_size)
{
	struct parse	p = { h, buf, 1, HTTP_M_OTHER, h->scanned };

	return parse_head(&p, len, max_size);
}

ssize_t
http_parse_response(struct http_head *h, const char *buf, size_t len,
    size_t max_size, enum http_method req_method)
{
	struct parse	p = { h, buf, 0, req_method, h->scanned };

	return parse_head(&p, len, max_size);
}

/*
 * Clear everything but headers[]: nothing reads a slot past nheaders, and
 * the array is most of the struct. The two cleared parts are the members
 * before the array and those after it, nheaders first.
 */
_Static_assert(offsetof(struct http_head, nheaders) ==
    offsetof(struct http_head, headers) +
    sizeof(((struct http_head *)0)->headers),
    "http_head_reset: nheaders must follow headers[]");

void
http_head_reset(struct http_head *h)
{
	memset(h, 0, offsetof(struct http_head, headers));
	memset(&h->nheaders, 0,
	    sizeof(*h) - offsetof(struct http_head, nheaders));
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

/* Does a field of this name frame or route a message? (trailers: never) */
int
http_frames_or_routes(const char *name, size_t n)
{
	enum header_kind	 k = header_kind(name, n);

	return k == HK_CONTENT_LENGTH || k == HK_TRANSFER_ENCODING ||
	    k == HK_HOST;
}
