/*
 * fuzz_logfmt.c: access log lines (src/logfmt.c) from hostile fields.
 *
 * The input's first byte picks the format and the optional fields, the
 * next eight the numbers, and the rest, split at '\n', gives the strings
 * (request, host, user agent, referer, server, class, reason; a NUL ends
 * the input as it ends a C string). Whatever the bytes, a line must be
 * one line ending in '\n'; combined must be printable ASCII with exactly
 * its six quotes; json must be one valid JSON object in valid UTF-8 with
 * no raw control byte. A broken promise aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "logfmt.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define NFIELDS	7

static const char	*p, *end;	/* the JSON validator's cursor */

static int	json_value(int depth);

static void
ws(void)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
}

/* A UTF-8 sequence at p, well formed (no overlong, surrogate, > 10FFFF). */
static int
utf8(void)
{
	const unsigned char	*s = (const unsigned char *)p;
	size_t			 n, i;
	uint32_t		 cp;

	if (s[0] < 0x80)
		n = 1, cp = s[0];
	else if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4, cp = s[0] & 0x07;
	else
		return -1;
	if ((size_t)(end - p) < n)
		return -1;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return -1;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return -1;
	p += n;
	return 0;
}

static int
json_string(void)
{
	int	 i;

	if (p >= end || *p++ != '"')
		return -1;
	while (p < end && *p != '"') {
		if ((unsigned char)*p < 0x20)
			return -1;
		if (*p == '\\') {
			if (++p >= end)
				return -1;
			if (*p == 'u') {
				for (i = 1; i <= 4; i++)
					if (p + i >= end || !strchr(
					    "0123456789abcdefABCDEF", p[i]))
						return -1;
				p += 5;
			} else if (strchr("\"\\/bfnrt", *p) != NULL && *p)
				p++;
			else
				return -1;
		} else if (utf8() == -1)
			return -1;
	}
	if (p >= end)
		return -1;
	p++;
	return 0;
}

static int
json_number(void)
{
	const char	*s = p;

	if (p < end && *p == '-')
		p++;
	while (p < end && strchr("0123456789.eE+-", *p) != NULL && *p)
		p++;
	return p > s ? 0 : -1;
}

static int
json_value(int depth)
{
	if (depth > 8)
		return -1;
	ws();
	if (p >= end)
		return -1;
	if (*p == '"')
		return json_string();
	if (*p == '{') {
		p++;
		ws();
		if (p < end && *p == '}') {
			p++;
			return 0;
		}
		for (;;) {
			ws();
			if (json_string() == -1)
				return -1;
			ws();
			if (p >= end || *p++ != ':')
				return -1;
			if (json_value(depth + 1) == -1)
				return -1;
			ws();
			if (p < end && *p == ',') {
				p++;
				continue;
			}
			if (p < end && *p == '}') {
				p++;
				return 0;
			}
			return -1;
		}
	}
	if ((size_t)(end - p) >= 4 && memcmp(p, "null", 4) == 0) {
		p += 4;
		return 0;
	}
	return json_number();
}

static void
check_line(int format, const char *s, size_t n)
{
	size_t	 i, quotes = 0;

	if (n == 0 || s[n - 1] != '\n' || memchr(s, '\n', n - 1) != NULL)
		abort();
	switch (format) {
	case LOG_FORMAT_COMBINED:
		for (i = 0; i + 1 < n; i++) {
			if ((unsigned char)s[i] < 0x20 ||
			    (unsigned char)s[i] > 0x7e)
				abort();
			if (s[i] == '"')
				quotes++;
		}
		if (quotes != 6)
			abort();
		break;
	case LOG_FORMAT_JSON:
		p = s;
		end = s + n - 1;
		if (*p != '{' || json_value(0) == -1 || p != end)
			abort();
		break;
	default:
		break;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct access_entry	 e;
	struct mbuf		 mb = { NULL, 0, 0, 0 };
	char			*buf, *f[NFIELDS], *s, *nl;
	uint8_t			 flags;
	size_t			 i;
	int			 format;

	if (size < 9)
		return 0;
	flags = data[0];
	if ((buf = malloc(size - 9 + 1)) == NULL)
		return 0;
	memcpy(buf, data + 9, size - 9);
	buf[size - 9] = '\0';
	for (i = 0, s = buf; i < NFIELDS; i++) {
		f[i] = s;
		if ((nl = strchr(s, '\n')) != NULL) {
			*nl = '\0';
			s = nl + 1;
		} else
			s += strlen(s);
	}
	memset(&e, 0, sizeof(e));
	e.client = "127.0.0.1:40000";
	e.client_ip = "127.0.0.1";
	e.request = f[0];
	e.version_minor = data[1] & 1;
	e.status = 100 + data[2] % 500;
	e.bytes = (uint64_t)data[3] << 24 | data[4];
	e.body_bytes = data[4];
	e.total_usec = (uint64_t)data[5] << 16 | data[6];
	e.upstream_usec = data[7] & 1 ? -1 : (int64_t)data[6];
	e.request_id = "1-2-3";
	e.host = flags & 0x04 ? f[1] : NULL;
	e.user_agent = flags & 0x08 ? f[2] : NULL;
	e.referer = flags & 0x10 ? f[3] : NULL;
	e.server = flags & 0x20 ? f[4] : NULL;
	e.class = flags & 0x40 ? f[5] : NULL;
	e.reason = flags & 0x80 ? f[6] : NULL;
	format = flags % 3;
	logfmt_line(&mb, format, &e, (time_t)data[8] * 86400 * 365,
	    (long)data[8] * 1000000);
	if (!mb.mb_failed)
		check_line(format, mb.mb_data, mb.mb_len);
	mbuf_free(&mb);
	free(buf);
	return 0;
}
