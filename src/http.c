/*
 * http.c: a strict HTTP/1.1 head parser (RFC 9110, RFC 9112): the scan of
 * a head and its first line; the rules of its fields are http_fields.c,
 * the body framing decoder is http_body.c.
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
#include "http_int.h"

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

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

int
http_fail(struct parse *p, int status, const char *what)
{
	p->h->error = p->is_req ? status : 502;
	p->h->error_what = what;
	return -1;
}

/* ASCII case-insensitive comparison of a[0..n) and b[0..n). */
int
http_ci_memeq(const char *a, const char *b, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++)
		if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
			return 0;
	return 1;
}

int
http_all_tchar(const char *s, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++)
		if (!is_tchar((unsigned char)s[i]))
			return 0;
	return n > 0;
}

int
http_all_host_chars(const char *s, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++)
		if ((http_cclass[(unsigned char)s[i]] & C_HOST) == 0)
			return 0;
	return 1;
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
	return http_all_host_chars(t, colon - 1);
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
			return http_fail(p, 400, "invalid request target");
	if (h->method == HTTP_M_CONNECT) {
		if (!is_authority_form(t, n))
			return http_fail(p, 400, "CONNECT without authority-form");
		return 0;
	}
	if (t[0] == '/' || is_absolute_form(t, n))
		return 0;
	if (n == 1 && t[0] == '*' && h->method == HTTP_M_OPTIONS)
		return 0;
	return http_fail(p, 400, "invalid request target");
}

/* method SP request-target SP HTTP-version, in line[0..n). */
static int
parse_request_line(struct parse *p, const char *line, size_t n)
{
	struct http_head	*h = p->h;
	const char		*sp1, *sp2, *end = line + n;
	int			 r;

	if ((sp1 = memchr(line, ' ', n)) == NULL)
		return http_fail(p, 400, "malformed request line");
	sp2 = memchr(sp1 + 1, ' ', (size_t)(end - sp1 - 1));
	if (sp2 == NULL)
		return http_fail(p, 400, "missing HTTP version");
	if (sp2 == sp1 + 1)
		return http_fail(p, 400, "malformed request line");
	r = parse_version(sp2 + 1, (size_t)(end - sp2 - 1), &h->version_minor);
	if (r == 505)
		return http_fail(p, 505, "unsupported HTTP version");
	if (r != 0)
		return http_fail(p, 400, "invalid HTTP version");
	if (!http_all_tchar(line, (size_t)(sp1 - line)))
		return http_fail(p, 400, "invalid method");
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
		return http_fail(p, 502, "invalid status line version");
	if (line[8] != ' ' || !is_digit((unsigned char)line[9]) ||
	    !is_digit((unsigned char)line[10]) ||
	    !is_digit((unsigned char)line[11]))
		return http_fail(p, 502, "invalid status code");
	h->status = (line[9] - '0') * 100 + (line[10] - '0') * 10 +
	    (line[11] - '0');
	if (h->status < 100 || h->status > 599)
		return http_fail(p, 502, "invalid status code");
	h->reason = line + n;
	h->reason_len = 0;
	if (n == 12)
		return 0;
	if (line[12] != ' ')
		return http_fail(p, 502, "invalid status line");
	for (i = 13; i < n; i++)
		if (!is_vchar_ws((unsigned char)line[i]))
			return http_fail(p, 502, "invalid reason phrase");
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
		return http_fail(p, 431, "too many headers");
	if (line[0] == ' ' || line[0] == '\t')
		return http_fail(p, 400, "obs-fold in head");
	/* The CR at line[n] is no tchar: it stops the loop. */
	for (colon = 0; is_tchar((unsigned char)line[colon]); colon++)
		;
	if (colon == n)
		return http_fail(p, 400, "header without colon");
	if (line[colon] == ' ' || line[colon] == '\t')
		return http_fail(p, 400, "whitespace in header name");
	if (line[colon] != ':')
		return http_fail(p, 400, "invalid header name");
	if (colon == 0)
		return http_fail(p, 400, "empty header name");
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
int
http_reparse_head(struct parse *p, size_t head_len)
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
		return http_finish_head(p, i + 1);
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
		return http_fail(p, 400, "stray CR in head");
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
				return http_fail(p, 400, "stray CR in head");
			}
		} else if (buf[i] != '\n') {
			h->scanned = i;
			return http_fail(p, 400, buf[i] == '\0' ? "NUL in head" :
			    "control character in head");
		} else if (i == 0 || buf[i - 1] != '\r') {
			h->scanned = i + 1;
			return http_fail(p, 400, "bare LF in head");
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
		return http_fail(p, 414, "request line too long");
	return http_fail(p, 431, "head too large");
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
		    http_ci_memeq(h->headers[i].name, name, n))
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
